/*
 * sim_core: the simulator's server, identity, dispatch, faults, latency,
 * admin API and persistence.
 *
 * A request goes: admin path? -> who signed it (SigV4 credential scope names
 * the service and region; the access key names the account and principal;
 * the signature is verified with the key's secret) -> parameters decoded
 * (Query forms and JSON bodies here; S3 in its module) -> the module names
 * the operation -> counters -> a request quota may throttle it (sim_quota.c;
 * a throttled call changes nothing) -> a fault may replace the reply -> the
 * module handles it -> the reply is sent now or after the configured latency.
 *
 * Latency and faults are keyed by "<service>.<Operation>" (service ids from
 * ob_awssvc: s3, sts, cloudformation, cur, organizations), with "<service>.*"
 * and "*" as fallbacks. Latency specs: "250ms", "2s", "100ms-300ms" (uniform).
 * Fault specs: "KIND:RATE" (0..1) or "KIND:count=N" (the next N requests),
 * KIND one of throttle, 500, 503, reset, hang, truncate, and rollback, which
 * only the exact name "cloudformation.stack_create" takes: it is not an API
 * call but a stack being created, and sim_cfn.c asks sim_rollback_fault()
 * whether the stack fails (every other kind given for a stack timer name is
 * accepted and has no effect, as before). Request quotas (sim_quota.c) name
 * APIs the same way, "SERVICE.Operation" or "SERVICE.*".
 */
#include "sim.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "ob_alloc.h"
#include "ob_config.h"
#include "ob_crypto.h"
#include "ob_log.h"
#include "ob_sigv4.h"
#include "ob_time.h"
#include "ob_xml.h"

#define MAX_RULES 256

typedef struct latency_rule_s {
    char api[96];
    uint64_t min_ms, max_ms;
} latency_rule_t;

typedef enum fault_kind_e {
    FAULT_THROTTLE,
    FAULT_500,
    FAULT_503,
    FAULT_RESET,
    FAULT_HANG,
    FAULT_TRUNCATE,
    FAULT_ROLLBACK, /* cloudformation.stack_create only: the stack fails once */
    FAULT__COUNT
} fault_kind_t;

static const char *const fault_names[FAULT__COUNT] = {"throttle", "500",      "503",     "reset",
                                                      "hang",     "truncate", "rollback"};

/* The API name the rollback kind applies to (exactly). */
#define ROLLBACK_API "cloudformation.stack_create"

typedef struct fault_rule_s {
    char api[96];
    fault_kind_t kind;
    double rate; /* probability per request, or */
    long count;  /* the next `count` requests (when > 0) */
} fault_rule_t;

typedef struct pending_s {
    sim_call_t call;
    ob_httpd_conn_t *conn;
    ob_timer_t *timer;
    int truncate;
    struct pending_s *prev, *next;
} pending_t;

struct sim_s {
    ob_loop_t *loop;
    ob_httpd_t *httpd;
    sim_opts_t opts;
    char *state_file;
    char *seed_file;
    char profile[32];
    json_t *state;
    latency_rule_t latency[MAX_RULES];
    int nlatency;
    fault_rule_t faults[MAX_RULES];
    int nfaults;
    sim_quotas_t *quotas;
    unsigned short rng[3];
    pending_t *pending; /* replies waiting for their latency, or hanging */
    ob_timer_t *persist_timer;
    int dirty;
    uint64_t requests;
    uint64_t faults_injected;
};

static const sim_service_t *const services[OB_SVC__COUNT] = {
    [OB_SVC_S3] = &sim_s3_service,
    [OB_SVC_STS] = &sim_sts_service,
    [OB_SVC_CLOUDFORMATION] = &sim_cfn_service,
    [OB_SVC_CUR] = &sim_cur_service,
    [OB_SVC_ORGANIZATIONS] = &sim_org_service,
};

/* ---- small helpers ---- */

int64_t sim_now_ms(void)
{
    return (int64_t)ob_wall_ms();
}

void sim_iso8601(int64_t ms, char out[32])
{
    _Static_assert(OB_TIME_ISO_LEN <= 32, "sim_iso8601's buffer holds the form");
    ob_time_format_ms(ms, out);
}

/* Every request takes a request id, every reply to S3 two more: asking
 * OpenSSL for a few bytes each time cost more than the rest of the id, so
 * the bytes come from a block drawn at once; a byte handed out is wiped from
 * the block (the simulator is single-threaded and does not fork). */
static unsigned char rnd_pool[4096];
static size_t rnd_left;

void sim_random_bytes(void *out, size_t n)
{
    if (n > sizeof(rnd_pool) / 4) {
        ob_random_bytes(out, n);
        return;
    }
    if (n > rnd_left) {
        if (ob_random_bytes(rnd_pool, sizeof(rnd_pool)) != OB_OK) {
            ob_random_bytes(out, n);
            return;
        }
        rnd_left = sizeof(rnd_pool);
    }
    unsigned char *from = rnd_pool + sizeof(rnd_pool) - rnd_left;
    memcpy(out, from, n);
    OPENSSL_cleanse(from, n);
    rnd_left -= n;
}

void sim_random_id(const char *prefix, int n, char *out, size_t out_size)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    unsigned char rnd[128];
    if (n > (int)sizeof(rnd))
        n = (int)sizeof(rnd);
    sim_random_bytes(rnd, (size_t)n);
    size_t p = (size_t)snprintf(out, out_size, "%s", prefix);
    for (int i = 0; i < n && p + 1 < out_size; i++)
        out[p++] = alphabet[rnd[i] & 31];
    out[p < out_size ? p : out_size - 1] = '\0';
}

static void random_secret(char *out, size_t n)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char rnd[512];
    size_t len = n - 1 < sizeof(rnd) ? n - 1 : sizeof(rnd);
    sim_random_bytes(rnd, len);
    for (size_t i = 0; i < len; i++)
        out[i] = alphabet[rnd[i] & 63];
    out[len] = '\0';
}

void sim_xml_text(ob_buf_t *b, const char *s)
{
    ob_xml_escape(b, s ? s : "");
}

json_t *sim_state(sim_t *sim)
{
    return sim->state;
}

json_t *sim_section(sim_t *sim, const char *name)
{
    json_t *s = json_object_get(sim->state, name);
    if (!s) {
        s = json_object();
        json_object_set_new(sim->state, name, s);
    }
    return s;
}

ob_loop_t *sim_loop(sim_t *sim)
{
    return sim->loop;
}

const char *sim_management_account(sim_t *sim)
{
    const char *id =
        json_string_value(json_object_get(json_object_get(sim->state, "org"), "MasterAccountId"));
    return id ? id : SIM_MGMT_ACCOUNT;
}

int sim_port(const sim_t *sim)
{
    return ob_httpd_port(sim->httpd);
}

/* ---- identities ---- */

int sim_parse_role_arn(const char *arn, char account[13], char *name, size_t name_size)
{
    /* arn:aws:iam::123456789012:role/path/Name */
    if (!arn || strncmp(arn, "arn:aws:iam::", 13) != 0)
        return -1;
    const char *p = arn + 13;
    for (int i = 0; i < 12; i++)
        if (!isdigit((unsigned char)p[i]))
            return -1;
    if (p[12] != ':' || strncmp(p + 13, "role/", 5) != 0)
        return -1;
    memcpy(account, p, 12);
    account[12] = '\0';
    const char *rest = p + 18;
    const char *slash = strrchr(rest, '/');
    const char *nm = slash ? slash + 1 : rest;
    if (!*nm || strlen(nm) >= name_size)
        return -1;
    snprintf(name, name_size, "%s", nm);
    return 0;
}

json_t *sim_put_role(sim_t *sim, const char *account, const char *name, const char *path,
                     json_t *trust, const char *stack_id)
{
    char key[128], id[32], arn[512];
    snprintf(key, sizeof(key), "%s/%s", account, name);
    sim_random_id("AROA", 17, id, sizeof(id));
    if (!path || !*path)
        path = "/";
    snprintf(arn, sizeof(arn), "arn:aws:iam::%s:role%s%s", account, path, name);
    json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:o, s:{}, s:[], s:s?, s:I}", "RoleName", name,
                          "RoleId", id, "Arn", arn, "Path", path, "AssumeRolePolicyDocument",
                          trust ? trust : json_object(), "Policies", "ManagedPolicyArns", "StackId",
                          stack_id, "CreateDate", (json_int_t)(sim_now_ms() / 1000));
    json_object_set_new(sim_section(sim, "roles"), key, r);
    sim_touch(sim);
    return r;
}

json_t *sim_get_role(sim_t *sim, const char *account, const char *name)
{
    char key[128];
    snprintf(key, sizeof(key), "%s/%s", account, name);
    return json_object_get(sim_section(sim, "roles"), key);
}

void sim_delete_role(sim_t *sim, const char *account, const char *name)
{
    char key[128];
    snprintf(key, sizeof(key), "%s/%s", account, name);
    json_object_del(sim_section(sim, "roles"), key);
    sim_touch(sim);
}

json_t *sim_issue_session(sim_t *sim, const char *account, const char *role_arn,
                          const char *session_name, int duration_s, const char **akid,
                          const char **secret, const char **token, int64_t *expires_ms)
{
    char id[32], sec[41], tok[361], arn[512], role_name[128] = "", acct[13];
    sim_random_id("ASIA", 16, id, sizeof(id));
    random_secret(sec, sizeof(sec));
    random_secret(tok, sizeof(tok));
    if (sim_parse_role_arn(role_arn, acct, role_name, sizeof(role_name)) != 0)
        snprintf(role_name, sizeof(role_name), "role");
    snprintf(arn, sizeof(arn), "arn:aws:sts::%s:assumed-role/%s/%s", account, role_name,
             session_name);
    int64_t exp = sim_now_ms() + (int64_t)duration_s * 1000;
    json_t *k = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "secret", sec, "token", tok, "account",
                          account, "arn", arn, "role_arn", role_arn, "expires_ms", (json_int_t)exp);
    json_t *keys = sim_section(sim, "keys");
    json_object_set_new(keys, id, k);
    sim_touch(sim);
    /* Hand out pointers into the stored entry. */
    if (akid)
        *akid = json_object_iter_key(json_object_iter_at(keys, id));
    if (secret)
        *secret = json_string_value(json_object_get(k, "secret"));
    if (token)
        *token = json_string_value(json_object_get(k, "token"));
    if (expires_ms)
        *expires_ms = exp;
    return k;
}

/* ---- latency ---- */

static int parse_duration(const char *s, uint64_t *out)
{
    long long v;
    if (ob_cfg_parse_ms(s, &v) != OB_OK || v < 0)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* "250ms", "1s-3s" -> min,max */
static int parse_latency_spec(const char *spec, uint64_t *min_ms, uint64_t *max_ms)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", spec);
    char *dash = strchr(buf, '-');
    if (dash) {
        *dash = '\0';
        if (parse_duration(buf, min_ms) || parse_duration(dash + 1, max_ms) || *max_ms < *min_ms)
            return -1;
        return 0;
    }
    if (parse_duration(buf, min_ms))
        return -1;
    *max_ms = *min_ms;
    return 0;
}

static ob_err_t set_latency(sim_t *sim, const char *api, const char *spec, char *errstr,
                            size_t errstr_size)
{
    uint64_t lo, hi;
    if (parse_latency_spec(spec, &lo, &hi) != 0)
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                       "latency %s: cannot read \"%s\" (use 250ms, 2s or 100ms-300ms)", api, spec);
    for (int i = 0; i < sim->nlatency; i++) {
        if (!strcmp(sim->latency[i].api, api)) {
            sim->latency[i].min_ms = lo;
            sim->latency[i].max_ms = hi;
            return OB_OK;
        }
    }
    if (sim->nlatency == MAX_RULES)
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "too many latency rules");
    latency_rule_t *r = &sim->latency[sim->nlatency++];
    snprintf(r->api, sizeof(r->api), "%s", api);
    r->min_ms = lo;
    r->max_ms = hi;
    return OB_OK;
}

/* Per-API latencies close to what AWS answers in (a few to a few hundred ms
 * per call; IAM stacks in tens of seconds). Account creation takes AWS
 * minutes, which would stall every run that creates one: a few seconds
 * keep IN_PROGRESS visible to a poller without that. */
static const char *const aws_typical[] = {"s3.*",
                                          "40ms-90ms",
                                          "sts.*",
                                          "60ms-150ms",
                                          "cur.*",
                                          "150ms-400ms",
                                          "cloudformation.*",
                                          "80ms-200ms",
                                          "cloudformation.CreateStack",
                                          "150ms-350ms",
                                          "cloudformation.stack_create",
                                          "25s-40s",
                                          "cloudformation.stack_update",
                                          "20s-35s",
                                          "cloudformation.stack_delete",
                                          "15s-30s",
                                          "organizations.*",
                                          "100ms-250ms",
                                          "organizations.account_create",
                                          "4s-8s",
                                          "cloudformation.drift_detect",
                                          "2s-5s",
                                          NULL};

static ob_err_t set_profile(sim_t *sim, const char *profile, char *errstr, size_t errstr_size)
{
    sim->nlatency = 0;
    if (!profile || !*profile || !strcmp(profile, "instant")) {
        snprintf(sim->profile, sizeof(sim->profile), "instant");
        return OB_OK;
    }
    int quotas = !strcmp(profile, "aws-quotas");
    if (strcmp(profile, "aws-typical") != 0 && !quotas)
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                       "unknown latency profile \"%s\" (instant, aws-typical, aws-quotas)",
                       profile);
    snprintf(sim->profile, sizeof(sim->profile), "%s", profile);
    for (int i = 0; aws_typical[i]; i += 2)
        set_latency(sim, aws_typical[i], aws_typical[i + 1], NULL, 0);
    /* aws-quotas: the same latencies, and AWS's request quotas on top. */
    if (quotas)
        sim_quotas_preset(sim->quotas, "aws", NULL, 0);
    return OB_OK;
}

static const latency_rule_t *find_latency(const sim_t *sim, const char *api)
{
    char wild[96];
    const char *dot = strchr(api, '.');
    snprintf(wild, sizeof(wild), "%.*s.*", dot ? (int)(dot - api) : (int)strlen(api), api);
    const latency_rule_t *w = NULL, *any = NULL;
    for (int i = 0; i < sim->nlatency; i++) {
        if (!strcmp(sim->latency[i].api, api))
            return &sim->latency[i];
        if (!strcmp(sim->latency[i].api, wild))
            w = &sim->latency[i];
        if (!strcmp(sim->latency[i].api, "*"))
            any = &sim->latency[i];
    }
    /* Stack timings are not API calls: only an exact rule applies. */
    if (dot && islower((unsigned char)dot[1]))
        return NULL;
    return w ? w : any;
}

uint64_t sim_latency_ms(sim_t *sim, const char *name)
{
    const latency_rule_t *r = find_latency(sim, name);
    if (!r)
        return 0;
    double ms = (double)r->min_ms;
    if (r->max_ms > r->min_ms)
        ms += erand48(sim->rng) * (double)(r->max_ms - r->min_ms);
    double scale = sim->opts.scale > 0 ? sim->opts.scale : 1.0;
    return (uint64_t)llround(ms * scale);
}

/* ---- faults ---- */

static ob_err_t add_fault(sim_t *sim, const char *api, const char *spec, char *errstr,
                          size_t errstr_size)
{
    char kind[32];
    const char *colon = strchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof(kind))
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                       "fault %s: \"%s\" is not KIND:RATE or KIND:count=N", api, spec);
    snprintf(kind, sizeof(kind), "%.*s", (int)(colon - spec), spec);
    int k = -1;
    for (int i = 0; i < FAULT__COUNT; i++)
        if (!strcmp(kind, fault_names[i]))
            k = i;
    if (k < 0)
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                       "fault %s: unknown kind \"%s\" (throttle, 500, 503, reset, hang, "
                       "truncate, rollback)",
                       api, kind);
    if (k == FAULT_ROLLBACK && strcmp(api, ROLLBACK_API) != 0)
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                       "fault %s: kind rollback applies only to " ROLLBACK_API
                       " (exactly): a stack whose resources fail to create, once per stack name",
                       api);
    if (sim->nfaults == MAX_RULES)
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "too many fault rules");
    fault_rule_t r;
    memset(&r, 0, sizeof(r));
    snprintf(r.api, sizeof(r.api), "%s", api);
    r.kind = (fault_kind_t)k;
    char *end;
    if (!strncmp(colon + 1, "count=", 6)) {
        r.count = strtol(colon + 7, &end, 10);
        if (*end || r.count <= 0)
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "fault %s: bad count", api);
    } else {
        r.rate = strtod(colon + 1, &end);
        if (*end || !(r.rate >= 0 && r.rate <= 1))
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                           "fault %s: rate must be between 0 and 1", api);
    }
    sim->faults[sim->nfaults++] = r;
    return OB_OK;
}

static int api_matches(const char *rule, const char *api)
{
    if (!strcmp(rule, "*") || !strcmp(rule, api))
        return 1;
    size_t n = strlen(rule);
    return n >= 2 && rule[n - 1] == '*' && rule[n - 2] == '.' && !strncmp(rule, api, n - 1);
}

/* The fault to inject for this request, or -1. */
static int pick_fault(sim_t *sim, const char *api)
{
    for (int i = 0; i < sim->nfaults; i++) {
        fault_rule_t *r = &sim->faults[i];
        if (r->kind == FAULT_ROLLBACK || !api_matches(r->api, api))
            continue;
        if (r->count > 0) {
            r->count--;
            return (int)r->kind;
        }
        if (r->rate > 0 && erand48(sim->rng) < r->rate)
            return (int)r->kind;
    }
    return -1;
}

int sim_rollback_fault(sim_t *sim, const char *name)
{
    if (!name || strcmp(name, ROLLBACK_API) != 0)
        return 0;
    for (int i = 0; i < sim->nfaults; i++) {
        fault_rule_t *r = &sim->faults[i];
        if (r->kind != FAULT_ROLLBACK || strcmp(r->api, name) != 0)
            continue;
        int fire = 0;
        if (r->count > 0) {
            r->count--;
            fire = 1;
        } else if (r->rate > 0 && erand48(sim->rng) < r->rate) {
            fire = 1;
        }
        if (fire) {
            sim->faults_injected++;
            return 1;
        }
    }
    return 0;
}

/* ---- replies ---- */

static const char *svc_id(ob_aws_svc_t svc)
{
    const ob_aws_svc_info_t *i = ob_aws_svc_info(svc);
    return i ? i->id : "unknown";
}

void sim_reply(sim_call_t *c, int status, const char *content_type, const char *body, size_t len)
{
    c->status = status;
    ob_buf_reset(&c->body);
    if (body && len)
        ob_buf_append(&c->body, body, len);
    if (content_type)
        ob_hdrs_set(&c->headers, "Content-Type", content_type);
    c->replied = 1;
}

/* Appends the pieces in order (NULL ends the list); what ob_buf_printf's "%s"
 * would write, without formatting each reply twice. */
static void buf_cat(ob_buf_t *b, ...) __attribute__((sentinel));

static void buf_cat(ob_buf_t *b, ...)
{
    va_list ap;
    va_start(ap, b);
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL)
        ob_buf_puts(b, s);
    va_end(ap);
}

void sim_reply_query(sim_call_t *c, const char *inner_xml)
{
    const ob_aws_svc_info_t *info = ob_aws_svc_info(c->svc);
    const char *ns = info->xml_namespace ? info->xml_namespace : "(null)";
    ob_buf_t b = {0};
    buf_cat(&b, "<", c->op, "Response xmlns=\"", ns, "\">\n", NULL);
    if (inner_xml)
        buf_cat(&b, "  <", c->op, "Result>\n", inner_xml, "\n  </", c->op, "Result>\n", NULL);
    buf_cat(&b, "  <ResponseMetadata>\n    <RequestId>", c->request_id,
            "</RequestId>\n  </ResponseMetadata>\n</", c->op, "Response>\n", NULL);
    ob_hdrs_set(&c->headers, "x-amzn-RequestId", c->request_id);
    sim_reply(c, 200, "text/xml", b.data, b.len);
    ob_buf_free(&b);
}

void sim_reply_json(sim_call_t *c, json_t *body)
{
    if (!body)
        body = json_object();
    char *s = json_dumps(body, JSON_COMPACT);
    ob_hdrs_set(&c->headers, "x-amzn-RequestId", c->request_id);
    sim_reply(c, 200, "application/x-amz-json-1.1", s, strlen(s));
    free(s);
    json_decref(body);
}

static void s3_ids(sim_call_t *c)
{
    char id2[80];
    sim_random_id("", 56, id2, sizeof(id2));
    ob_hdrs_set(&c->headers, "x-amz-request-id", c->request_id);
    ob_hdrs_set(&c->headers, "x-amz-id-2", id2);
}

void sim_reply_s3(sim_call_t *c, int status, const char *xml)
{
    s3_ids(c);
    if (xml) {
        ob_buf_t b = {0};
        buf_cat(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", xml, NULL);
        sim_reply(c, status, "application/xml", b.data, b.len);
        ob_buf_free(&b);
    } else {
        sim_reply(c, status, NULL, NULL, 0);
    }
}

void sim_error(sim_call_t *c, int status, const char *code, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ob_buf_t b = {0};
    const ob_aws_svc_info_t *info = ob_aws_svc_info(c->svc);
    ob_aws_proto_t proto = info ? info->protocol : OB_PROTO_QUERY;
    if (proto == OB_PROTO_REST_XML) {
        s3_ids(c);
        if (strcmp(c->http->method, "HEAD") != 0) {
            ob_buf_printf(&b,
                          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
                          "<Message>",
                          code);
            sim_xml_text(&b, msg);
            ob_buf_printf(&b, "</Message><RequestId>%s</RequestId><HostId>%s</HostId></Error>",
                          c->request_id, ob_hdrs_get(&c->headers, "x-amz-id-2"));
        }
        sim_reply(c, status, b.len ? "application/xml" : NULL, b.data, b.len);
    } else if (proto == OB_PROTO_JSON11) {
        json_t *j = json_pack("{s:s, s:s}", "__type", code, "message", msg);
        char *s = json_dumps(j, JSON_COMPACT);
        ob_hdrs_set(&c->headers, "x-amzn-RequestId", c->request_id);
        sim_reply(c, status, "application/x-amz-json-1.1", s, strlen(s));
        free(s);
        json_decref(j);
    } else {
        ob_buf_printf(&b, "<ErrorResponse xmlns=\"%s\">\n  <Error>\n    <Type>%s</Type>\n",
                      info ? info->xml_namespace : "", status >= 500 ? "Receiver" : "Sender");
        ob_buf_printf(&b, "    <Code>%s</Code>\n    <Message>", code);
        sim_xml_text(&b, msg);
        ob_buf_printf(&b, "</Message>\n  </Error>\n  <RequestId>%s</RequestId>\n</ErrorResponse>\n",
                      c->request_id);
        ob_hdrs_set(&c->headers, "x-amzn-RequestId", c->request_id);
        sim_reply(c, status, "text/xml", b.data, b.len);
    }
    ob_buf_free(&b);
}

/* A throttled call, in the words of its service: S3 503 SlowDown, the
 * Query services (STS, CloudFormation) 400 Throttling "Rate exceeded",
 * Organizations 400 TooManyRequestsException, CUR (JSON 1.1) 400
 * ThrottlingException. */
static void throttle_reply(sim_call_t *c)
{
    if (c->svc == OB_SVC_S3)
        sim_error(c, 503, "SlowDown", "Please reduce your request rate.");
    else if (c->svc == OB_SVC_ORGANIZATIONS)
        sim_error(c, 400, "TooManyRequestsException",
                  "You have sent too many requests in too short a period of time. Try again "
                  "later.");
    else if (ob_aws_svc_info(c->svc)->protocol == OB_PROTO_JSON11)
        sim_error(c, 400, "ThrottlingException", "Rate exceeded");
    else
        sim_error(c, 400, "Throttling", "Rate exceeded");
}

/* ---- persistence ---- */

static ob_err_t save_state(sim_t *sim)
{
    if (!sim->state_file)
        return OB_OK;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", sim->state_file);
    if (json_dump_file(sim->state, tmp, JSON_COMPACT) != 0 || rename(tmp, sim->state_file) != 0) {
        ob_logf(OB_LOG_ERROR, "awssim", "cannot write state file %s: %s", sim->state_file,
                strerror(errno));
        return OB_ERR_IO;
    }
    sim->dirty = 0;
    return OB_OK;
}

static void persist_fired(ob_timer_t *t, void *arg)
{
    save_state(arg);
}

void sim_touch(sim_t *sim)
{
    sim->dirty = 1;
    if (sim->state_file && !ob_timer_active(sim->persist_timer))
        ob_timer_start(sim->persist_timer, 500);
}

/* ---- seeding ---- */

static json_t *trust_account_root(const char *account)
{
    char arn[64];
    snprintf(arn, sizeof(arn), "arn:aws:iam::%s:root", account);
    return json_pack("{s:s, s:[{s:s, s:{s:s}, s:s}]}", "Version", "2012-10-17", "Statement",
                     "Effect", "Allow", "Principal", "AWS", arn, "Action", "sts:AssumeRole");
}

const char *sim_root_id(sim_t *sim)
{
    /* States saved before the organization had a root have none recorded. */
    const char *id =
        json_string_value(json_object_get(json_object_get(sim->state, "org"), "RootId"));
    return id ? id : SIM_ROOT_ID;
}

json_t *sim_put_account(sim_t *sim, const char *id, const char *name, const char *email,
                        const char *state, const char *joined, const char *parent_id)
{
    char arn[128];
    const char *org = json_string_value(json_object_get(json_object_get(sim->state, "org"), "Id"));
    snprintf(arn, sizeof(arn), "arn:aws:organizations::%s:account/%s/%s",
             sim_management_account(sim), org ? org : "o-sim", id);
    json_t *a = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "Id", id, "Arn", arn, "Email",
                          email, "Name", name, "State", state, "JoinedMethod", joined,
                          "JoinedTimestamp", (json_int_t)(sim_now_ms() / 1000), "ParentId",
                          parent_id ? parent_id : sim_root_id(sim));
    json_object_set_new(sim_section(sim, "accounts"), id, a);
    sim_touch(sim);
    return a;
}

json_t *sim_put_org_role(sim_t *sim, const char *account, const char *name)
{
    return sim_put_role(sim, account, name, "/", trust_account_root(sim_management_account(sim)),
                        NULL);
}

static void add_key(sim_t *sim, const char *akid, const char *secret, const char *account,
                    const char *user)
{
    char arn[256];
    snprintf(arn, sizeof(arn), "arn:aws:iam::%s:user/%s", account, user);
    json_object_set_new(sim_section(sim, "keys"), akid,
                        json_pack("{s:s, s:n, s:s, s:s, s:n, s:I}", "secret", secret, "token",
                                  "account", account, "arn", arn, "role_arn", "expires_ms",
                                  (json_int_t)0));
}

/* Check a seed document (what --seed reads and POST /_sim/seed takes) before
 * anything of it is applied; what names it in messages ("seed file F", "seed"). */
static ob_err_t seed_check(sim_t *sim, json_t *seed, const char *what, char *errstr,
                           size_t errstr_size)
{
    if (!json_is_object(seed))
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "%s: must be a JSON object", what);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(seed, "accounts"), i, v)
    {
        const char *id = json_string_value(json_object_get(v, "Id"));
        if (!id || strlen(id) != 12)
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                           "%s: account %zu needs a 12-digit Id", what, i);
    }
    json_array_foreach(json_object_get(seed, "keys"), i, v)
    {
        if (!json_string_value(json_object_get(v, "AccessKeyId")) ||
            !json_string_value(json_object_get(v, "SecretAccessKey")) ||
            !json_string_value(json_object_get(v, "Account")))
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                           "%s: key %zu needs AccessKeyId, SecretAccessKey, Account", what, i);
    }
    json_array_foreach(json_object_get(seed, "roles"), i, v)
    {
        if (!json_string_value(json_object_get(v, "Account")) ||
            !json_string_value(json_object_get(v, "RoleName")) ||
            !json_is_object(json_object_get(v, "AssumeRolePolicyDocument")))
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                           "%s: role %zu needs Account, RoleName and an "
                           "AssumeRolePolicyDocument object",
                           what, i);
    }
    json_array_foreach(json_object_get(seed, "buckets"), i, v)
    {
        if (!json_string_value(json_object_get(v, "Name")) ||
            !json_string_value(json_object_get(v, "Owner")))
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                           "%s: bucket %zu needs Name and Owner", what, i);
    }
    json_array_foreach(json_object_get(seed, "reports"), i, v)
    {
        const json_t *d = json_object_get(v, "ReportDefinition");
        if (!json_string_value(json_object_get(v, "Account")) ||
            !json_string_value(json_object_get(d, "ReportName")) ||
            !json_string_value(json_object_get(d, "S3Bucket")) ||
            !json_string_value(json_object_get(d, "S3Region")))
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                           "%s: report %zu needs Account and a ReportDefinition with ReportName, "
                           "S3Bucket and S3Region",
                           what, i);
    }
    return sim_org_seed_check(sim, seed, what, errstr, errstr_size);
}

/* Add or replace every item of a checked seed document. */
static void seed_apply(sim_t *sim, json_t *seed)
{
    size_t i;
    json_t *v;
    sim_org_seed_apply(sim, seed);
    json_array_foreach(json_object_get(seed, "accounts"), i, v)
    {
        const char *id = json_string_value(json_object_get(v, "Id"));
        const char *st = json_string_value(json_object_get(v, "State"));
        const char *nm = json_string_value(json_object_get(v, "Name"));
        const char *em = json_string_value(json_object_get(v, "Email"));
        char defname[64], defmail[96];
        snprintf(defname, sizeof(defname), "account-%s", id);
        snprintf(defmail, sizeof(defmail), "aws+%s@example.com", id);
        sim_put_account(sim, id, nm ? nm : defname, em ? em : defmail, st ? st : "ACTIVE",
                        "CREATED", json_string_value(json_object_get(v, "ParentId")));
    }
    json_array_foreach(json_object_get(seed, "keys"), i, v)
    {
        const char *user = json_string_value(json_object_get(v, "UserName"));
        add_key(sim, json_string_value(json_object_get(v, "AccessKeyId")),
                json_string_value(json_object_get(v, "SecretAccessKey")),
                json_string_value(json_object_get(v, "Account")), user ? user : "seeded");
    }
    json_array_foreach(json_object_get(seed, "roles"), i, v)
    {
        sim_put_role(sim, json_string_value(json_object_get(v, "Account")),
                     json_string_value(json_object_get(v, "RoleName")),
                     json_string_value(json_object_get(v, "Path")),
                     json_deep_copy(json_object_get(v, "AssumeRolePolicyDocument")), NULL);
    }
    json_array_foreach(json_object_get(seed, "buckets"), i, v)
    {
        const char *region = json_string_value(json_object_get(v, "Region"));
        json_object_set_new(
            sim_section(sim, "buckets"), json_string_value(json_object_get(v, "Name")),
            json_pack("{s:s, s:s, s:I}", "owner", json_string_value(json_object_get(v, "Owner")),
                      "region", region ? region : "us-east-1", "created",
                      (json_int_t)(sim_now_ms() / 1000)));
    }
    json_array_foreach(json_object_get(seed, "reports"), i, v)
    {
        /* A report the account already had (the seed's word for it: its
         * bucket need not exist here). */
        const json_t *d = json_object_get(v, "ReportDefinition");
        json_t *all = sim_section(sim, "reports");
        const char *acct = json_string_value(json_object_get(v, "Account"));
        json_t *mine = json_object_get(all, acct);
        if (!mine) {
            mine = json_object();
            json_object_set_new(all, acct, mine);
        }
        json_t *def =
            json_pack("{s:s, s:s, s:s, s:[s], s:s, s:s, s:s, s:b, s:s}", "TimeUnit", "HOURLY",
                      "Format", "textORcsv", "Compression", "GZIP", "AdditionalSchemaElements",
                      "RESOURCES", "S3Bucket", "", "S3Prefix", "", "S3Region", "",
                      "RefreshClosedReports", 1, "ReportVersioning", "OVERWRITE_REPORT");
        json_object_update(def, (json_t *)d);
        json_object_set_new(mine, json_string_value(json_object_get(d, "ReportName")), def);
    }
    sim_touch(sim);
}

static ob_err_t load_seed_file(sim_t *sim, const char *path, char *errstr, size_t errstr_size)
{
    json_error_t je;
    json_t *seed = json_load_file(path, 0, &je);
    if (!seed)
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "seed file %s: line %d: %s", path,
                       je.line, je.text);
    char what[4200];
    snprintf(what, sizeof(what), "seed file %s", path);
    ob_err_t e = seed_check(sim, seed, what, errstr, errstr_size);
    if (e == OB_OK)
        seed_apply(sim, seed);
    json_decref(seed);
    return e;
}

static ob_err_t seed(sim_t *sim, char *errstr, size_t errstr_size)
{
    json_decref(sim->state);
    sim->state = json_object();
    json_object_set_new(sim->state, "org",
                        json_pack("{s:s, s:s, s:s, s:s}", "Id", "o-sim0000001", "Arn",
                                  "arn:aws:organizations::" SIM_MGMT_ACCOUNT
                                  ":organization/o-sim0000001",
                                  "MasterAccountId", SIM_MGMT_ACCOUNT, "RootId", SIM_ROOT_ID));
    sim_put_account(sim, SIM_MGMT_ACCOUNT, "management", "aws+management@example.com", "ACTIVE",
                    "CREATED", NULL);
    add_key(sim, SIM_MGMT_AKID, SIM_MGMT_SECRET, SIM_MGMT_ACCOUNT, "onboard");
    for (int i = 1; i <= sim->opts.org_accounts; i++) {
        char id[16], name[32], email[64];
        snprintf(id, sizeof(id), "%012llu", SIM_MEMBER_BASE + (unsigned long long)i);
        snprintf(name, sizeof(name), "member-%d", i);
        snprintf(email, sizeof(email), "aws+member-%d@example.com", i);
        /* Every 50th member is suspended, as real organizations have some. */
        sim_put_account(sim, id, name, email, i % 50 == 0 ? "SUSPENDED" : "ACTIVE", "CREATED",
                        NULL);
        sim_put_org_role(sim, id, "OrganizationAccountAccessRole");
    }
    sim_section(sim, "ous");
    sim_section(sim, "keys");
    sim_section(sim, "roles");
    sim_section(sim, "buckets");
    sim_section(sim, "reports");
    sim_section(sim, "stacks");
    sim_section(sim, "counts");
    sim_section(sim, "counts_by_account");
    if (sim->seed_file)
        return load_seed_file(sim, sim->seed_file, errstr, errstr_size);
    return OB_OK;
}

/* ---- the request path ---- */

static void pending_unlink(sim_t *sim, pending_t *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else if (sim->pending == p)
        sim->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
}

static void pending_free(pending_t *p)
{
    ob_timer_free(p->timer);
    ob_hdrs_clear(&p->call.headers);
    ob_buf_free(&p->call.body);
    json_decref(p->call.params);
    free(p);
}

static void send_reply(sim_t *sim, pending_t *p)
{
    sim_call_t *c = &p->call;
    if (p->truncate && c->body.len > 1)
        ob_httpd_respond_truncated(p->conn, c->status, &c->headers, c->body.data, c->body.len,
                                   c->body.len / 2);
    else
        ob_httpd_respond(p->conn, c->status ? c->status : 500, &c->headers, c->body.data,
                         c->body.len);
    pending_unlink(sim, p);
    pending_free(p);
}

static void delay_fired(ob_timer_t *t, void *arg)
{
    pending_t *p = arg;
    send_reply(p->call.sim, p);
}

static void conn_closed(ob_httpd_conn_t *conn, void *arg)
{
    pending_t *p = arg;
    pending_unlink(p->call.sim, p);
    pending_free(p);
}

/* counts[api] += 1, in place when the counter exists. */
static void count_in(json_t *counts, const char *api)
{
    json_t *n = json_object_get(counts, api);
    if (json_is_integer(n))
        json_integer_set(n, json_integer_value(n) + 1);
    else
        json_object_set_new(counts, api, json_integer(1));
}

static void count_op(sim_t *sim, sim_call_t *c, const char *api)
{
    count_in(sim_section(sim, "counts"), api);
    if (c->account[0]) {
        json_t *by = sim_section(sim, "counts_by_account");
        json_t *a = json_object_get(by, c->account);
        if (!a) {
            a = json_object();
            json_object_set_new(by, c->account, a);
        }
        count_in(a, api);
    }
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decode a form component ('+' is a space) into out (n + 1 bytes),
 * NUL-terminated; a '%' not followed by two hex digits stays as it is. */
static void form_decode(const char *s, size_t n, char *out)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '+') {
            out[j++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && (hi = hex_value(s[i + 1])) >= 0 &&
                   (lo = hex_value(s[i + 2])) >= 0) {
            out[j++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[j++] = s[i];
        }
    }
    out[j] = '\0';
}

static void parse_form(json_t *obj, const char *s, size_t n)
{
    /* One scratch buffer for every field: its name and value decode to at
     * most their own lengths, each with a NUL. */
    char small[1024];
    char *buf = n + 2 <= sizeof(small) ? small : ob_malloc(n + 2);
    if (!buf)
        return;
    size_t i = 0;
    while (i < n) {
        const char *amp = memchr(s + i, '&', n - i);
        size_t end = amp ? (size_t)(amp - s) : n;
        const char *eq = memchr(s + i, '=', end - i);
        size_t kl = eq ? (size_t)(eq - (s + i)) : end - i;
        char *k = buf, *v = buf + kl + 1;
        form_decode(s + i, kl, k);
        if (eq)
            form_decode(eq + 1, (size_t)(s + end - (eq + 1)), v);
        else
            v[0] = '\0';
        if (*k)
            json_object_set_new(obj, k, json_string(v));
        i = end + 1;
    }
    if (buf != small)
        free(buf);
}

static void auth_error(sim_call_t *c, int status, const char *query_code, const char *json_code,
                       const char *s3_code, const char *msg)
{
    const ob_aws_svc_info_t *info = ob_aws_svc_info(c->svc);
    const char *code = info->protocol == OB_PROTO_REST_XML ? s3_code
                       : info->protocol == OB_PROTO_JSON11 ? json_code
                                                           : query_code;
    sim_error(c, status, code, "%s", msg);
}

static const char SIG_MISMATCH[] =
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details.";

/* Who is calling? 0 when the request may proceed; otherwise an error reply is set. */
static int authenticate(sim_t *sim, sim_call_t *c)
{
    const ob_httpd_req_t *r = c->http;
    const char *authz = ob_hdrs_get(r->headers, "Authorization");
    if (!authz) {
        /* Unsigned: only AssumeRoleWithWebIdentity may be (STS, Query body). */
        c->svc = OB_SVC_STS;
        snprintf(c->region, sizeof(c->region), "us-east-1");
        if (r->body && strstr(r->body, "Action=AssumeRoleWithWebIdentity"))
            return 0;
        if (!strncmp(r->path, "/", 1) && !ob_hdrs_get(r->headers, "X-Amz-Target") &&
            !(r->body && strstr(r->body, "Action=")))
            c->svc = OB_SVC_S3;
        auth_error(c, 403, "MissingAuthenticationToken", "MissingAuthenticationTokenException",
                   "AccessDenied",
                   c->svc == OB_SVC_S3 ? "Access Denied"
                                       : "Request is missing Authentication Token");
        return -1;
    }
    ob_sigv4_auth_t a;
    char err[512];
    if (ob_sigv4_parse_authorization(authz, &a, err, sizeof(err)) != OB_OK) {
        c->svc = OB_SVC_STS;
        sim_error(c, 400, "IncompleteSignature", "%s", err);
        return -1;
    }
    ob_aws_svc_t svc = ob_aws_svc_by_name(a.service);
    if (svc == OB_SVC__COUNT) {
        c->svc = OB_SVC_STS;
        sim_error(c, 400, "InvalidAction", "This endpoint does not serve service %s", a.service);
        return -1;
    }
    c->svc = svc;
    snprintf(c->region, sizeof(c->region), "%s", a.region);
    json_t *key = json_object_get(sim_section(sim, "keys"), a.access_key_id);
    if (!key) {
        auth_error(
            c, 403, "InvalidClientTokenId", "UnrecognizedClientException", "InvalidAccessKeyId",
            svc == OB_SVC_S3 ? "The AWS Access Key Id you provided does not exist in our records."
                             : "The security token included in the request is invalid.");
        return -1;
    }
    /* S3 wants the payload hash header on every SigV4 request, and it must
     * be the body's (before the signature is looked at). */
    if (svc == OB_SVC_S3) {
        const char *sha = ob_hdrs_get(r->headers, "x-amz-content-sha256");
        if (!sha) {
            sim_error(c, 400, "InvalidRequest",
                      "Missing required header for this request: x-amz-content-sha256");
            return -1;
        }
        if (strcmp(sha, "UNSIGNED-PAYLOAD") != 0 && strncmp(sha, "STREAMING-", 10) != 0) {
            char hex[OB_SHA256_HEX_LEN];
            ob_sha256_hex(r->body ? r->body : "", r->body_len, hex);
            if (strcmp(sha, hex) != 0) {
                sim_error(c, 400, "XAmzContentSHA256Mismatch",
                          "The provided 'x-amz-content-sha256' header does not match what was "
                          "computed.");
                return -1;
            }
        }
    }
    const char *secret = json_string_value(json_object_get(key, "secret"));
    if (ob_sigv4_verify(r->method, r->path, r->query, r->headers, r->body, r->body_len, secret,
                        svc == OB_SVC_S3, err, sizeof(err)) != OB_OK) {
        ob_logkv(OB_LOG_DEBUG, "awssim", "signature mismatch", "reason", err, NULL);
        auth_error(c, 403, "SignatureDoesNotMatch", "InvalidSignatureException",
                   "SignatureDoesNotMatch", SIG_MISMATCH);
        return -1;
    }
    /* A signed request is good for 15 minutes either side of its X-Amz-Date. */
    const char *amzdate = ob_hdrs_get(r->headers, "X-Amz-Date");
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (amzdate && strptime(amzdate, "%Y%m%dT%H%M%SZ", &tm)) {
        int64_t skew = (int64_t)timegm(&tm) * 1000 - sim_now_ms();
        if (skew > 15 * 60 * 1000 || skew < -15 * 60 * 1000) {
            if (svc == OB_SVC_S3)
                sim_error(c, 403, "RequestTimeTooSkewed",
                          "The difference between the request time and the current time is too "
                          "large.");
            else
                auth_error(c, 403, "SignatureDoesNotMatch", "InvalidSignatureException", "",
                           "Signature expired: the request time is more than 15 minutes away "
                           "from the current time.");
            return -1;
        }
    }
    const char *token = json_string_value(json_object_get(key, "token"));
    if (token) {
        const char *sent = ob_hdrs_get(r->headers, "X-Amz-Security-Token");
        if (!sent || strcmp(sent, token) != 0) {
            /* S3 answers a bad token with 400 InvalidToken, the others with 403. */
            auth_error(c, svc == OB_SVC_S3 ? 400 : 403, "InvalidClientTokenId",
                       "UnrecognizedClientException", "InvalidToken",
                       svc == OB_SVC_S3 ? "The provided token is malformed or otherwise invalid."
                                        : "The security token included in the request is invalid.");
            return -1;
        }
        int64_t exp = json_integer_value(json_object_get(key, "expires_ms"));
        if (exp && sim_now_ms() >= exp) {
            auth_error(c, 400, "ExpiredToken", "ExpiredTokenException", "ExpiredToken",
                       "The security token included in the request is expired");
            if (svc == OB_SVC_S3)
                c->status = 400;
            return -1;
        }
    }
    c->caller_key = key;
    snprintf(c->account, sizeof(c->account), "%s",
             json_string_value(json_object_get(key, "account")));
    snprintf(c->caller_arn, sizeof(c->caller_arn), "%s",
             json_string_value(json_object_get(key, "arn")));
    return 0;
}

static void parse_params(sim_call_t *c)
{
    const ob_httpd_req_t *r = c->http;
    const ob_aws_svc_info_t *info = ob_aws_svc_info(c->svc);
    if (info->protocol == OB_PROTO_QUERY) {
        c->params = json_object();
        if (r->query && *r->query)
            parse_form(c->params, r->query, strlen(r->query));
        if (r->body_len)
            parse_form(c->params, r->body, r->body_len);
    } else if (info->protocol == OB_PROTO_JSON11) {
        json_error_t je;
        c->params = r->body_len ? json_loadb(r->body, r->body_len, 0, &je) : json_object();
    } else {
        c->params = json_object();
    }
}

static void handle_admin(sim_t *sim, ob_httpd_conn_t *conn, const ob_httpd_req_t *r);

static void on_request(ob_httpd_conn_t *conn, const ob_httpd_req_t *r, void *arg)
{
    sim_t *sim = arg;
    if (!strncmp(r->path, "/_sim/", 6)) {
        handle_admin(sim, conn, r);
        return;
    }
    sim->requests++;
    pending_t *p = ob_calloc(1, sizeof(*p));
    if (!p) {
        ob_httpd_respond(conn, 500, NULL, "out of memory\n", 14);
        return;
    }
    p->conn = conn;
    sim_call_t *c = &p->call;
    c->sim = sim;
    c->http = r;
    c->svc = OB_SVC_STS;
    snprintf(c->op, sizeof(c->op), "Unknown");
    sim_random_id("", 32, c->request_id, sizeof(c->request_id));
    for (char *q = c->request_id; *q; q++)
        *q = (char)tolower((unsigned char)*q);

    if (authenticate(sim, c) == 0) {
        parse_params(c);
        const sim_service_t *svc = services[c->svc];
        if (!c->params) {
            sim_error(c, 400, "SerializationException",
                      "Start of structure or map found where not expected");
        } else if (svc->identify(c) == OB_OK && !c->replied) {
            char api[128];
            snprintf(api, sizeof(api), "%s.%s", svc_id(c->svc), c->op);
            count_op(sim, c, api);
            /* Over its quota, the call is refused before anything else
             * (faults included) sees it. */
            if (!sim_quotas_admit(sim->quotas, api, c->account, c->region,
                                  ob_loop_now(sim->loop))) {
                throttle_reply(c);
            } else {
                int fault = pick_fault(sim, api);
                if (fault >= 0)
                    sim->faults_injected++;
                switch (fault) {
                case FAULT_THROTTLE:
                    throttle_reply(c);
                    break;
                case FAULT_500:
                    sim_error(c, 500,
                              c->svc == OB_SVC_S3 ? "InternalError"
                              : ob_aws_svc_info(c->svc)->protocol == OB_PROTO_JSON11
                                  ? "InternalErrorException"
                                  : "InternalFailure",
                              "We encountered an internal error. Please try again.");
                    break;
                case FAULT_503:
                    sim_error(c, 503, "ServiceUnavailable", "Service is unable to handle request.");
                    break;
                case FAULT_RESET:
                    ob_httpd_reset(conn);
                    pending_free(p);
                    return;
                case FAULT_HANG:
                    p->next = sim->pending;
                    if (sim->pending)
                        sim->pending->prev = p;
                    sim->pending = p;
                    ob_httpd_on_close(conn, conn_closed, p);
                    return;
                case FAULT_TRUNCATE:
                    p->truncate = 1;
                    /* the operation happens, its reply is cut */
                    __attribute__((fallthrough));
                default:
                    svc->handle(c);
                    if (!c->replied)
                        sim_error(c, 500, "InternalFailure", "operation %s produced no reply",
                                  c->op);
                }
            }
        }
    }
    uint64_t delay = 0;
    if (c->replied) {
        char api[128];
        snprintf(api, sizeof(api), "%s.%s", svc_id(c->svc), c->op);
        delay = sim_latency_ms(sim, api);
    }
    p->next = sim->pending;
    if (sim->pending)
        sim->pending->prev = p;
    sim->pending = p;
    if (delay == 0) {
        send_reply(sim, p);
        return;
    }
    p->timer = ob_timer_new(sim->loop, delay_fired, p);
    ob_httpd_on_close(conn, conn_closed, p);
    ob_timer_start(p->timer, delay);
}

/* ---- admin API ---- */

static void admin_json(ob_httpd_conn_t *conn, int status, json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
    ob_hdrs_t h = {0};
    ob_hdrs_add(&h, "Content-Type", "application/json");
    ob_httpd_respond(conn, status, &h, s, strlen(s));
    ob_hdrs_clear(&h);
    free(s);
    json_decref(j);
}

static void admin_error(ob_httpd_conn_t *conn, int status, const char *msg)
{
    admin_json(conn, status, json_pack("{s:s}", "error", msg));
}

static json_t *rules_json(const sim_t *sim)
{
    json_t *faults = json_array();
    for (int i = 0; i < sim->nfaults; i++) {
        const fault_rule_t *r = &sim->faults[i];
        json_t *f = json_pack("{s:s, s:s}", "api", r->api, "kind", fault_names[r->kind]);
        if (r->count > 0)
            json_object_set_new(f, "count", json_integer(r->count));
        else
            json_object_set_new(f, "rate", json_real(r->rate));
        json_array_append_new(faults, f);
    }
    json_t *lat = json_object();
    for (int i = 0; i < sim->nlatency; i++) {
        char spec[64];
        const latency_rule_t *r = &sim->latency[i];
        if (r->min_ms == r->max_ms)
            snprintf(spec, sizeof(spec), "%llums", (unsigned long long)r->min_ms);
        else
            snprintf(spec, sizeof(spec), "%llums-%llums", (unsigned long long)r->min_ms,
                     (unsigned long long)r->max_ms);
        json_object_set_new(lat, r->api, json_string(spec));
    }
    return json_pack("{s:o, s:s, s:f, s:o, s:o}", "faults", faults, "profile", sim->profile,
                     "scale", sim->opts.scale > 0 ? sim->opts.scale : 1.0, "latency", lat, "quotas",
                     sim_quotas_rules_json(sim->quotas));
}

/* POST /_sim/seed: merge a seed document (the --seed format) into the state. */
static void admin_seed(sim_t *sim, ob_httpd_conn_t *conn, const ob_httpd_req_t *r)
{
    static const char *const sections[] = {"accounts", "ous",     "keys",
                                           "roles",    "buckets", "reports"};
    char err[512] = "";
    json_error_t je;
    json_t *j = r->body_len ? json_loadb(r->body, r->body_len, 0, &je) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        admin_error(conn, 400,
                    "body must be a JSON object like the --seed file: {\"accounts\": [...], "
                    "\"keys\": [...], \"roles\": [...], \"buckets\": [...]}");
        return;
    }
    int any = 0;
    for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
        json_t *v = json_object_get(j, sections[i]);
        if (v && !json_is_array(v)) {
            snprintf(err, sizeof(err), "seed: \"%s\" must be an array", sections[i]);
            break;
        }
        any |= v != NULL;
    }
    if (!err[0] && !any)
        snprintf(err, sizeof(err),
                 "seed: nothing to add (give accounts, ous, keys, roles, buckets or reports)");
    if (err[0] || seed_check(sim, j, "seed", err, sizeof(err)) != OB_OK) {
        json_decref(j);
        admin_error(conn, 400, err);
        return;
    }
    seed_apply(sim, j);
    json_t *out = json_pack("{s:s}", "status", "seeded");
    for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
        json_object_set_new(
            out, sections[i],
            json_integer((json_int_t)json_array_size(json_object_get(j, sections[i]))));
    json_decref(j);
    admin_json(conn, 200, out);
}

json_t *sim_admin_err(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return json_pack("{s:s}", "error", msg);
}

/* An admin call a module serves (sim.h): the body must be a JSON object. */
static void admin_module(sim_t *sim, ob_httpd_conn_t *conn, const ob_httpd_req_t *r,
                         int (*fn)(sim_t *, json_t *, json_t **))
{
    json_error_t je;
    json_t *j = r->body_len ? json_loadb(r->body, r->body_len, 0, &je) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        admin_error(conn, 400, "body must be a JSON object");
        return;
    }
    json_t *out = NULL;
    int status = fn(sim, j, &out);
    json_decref(j);
    admin_json(conn, status, out);
}

/* DELETE /_sim/buckets/NAME: remove a bucket, whoever owns it. */
static void admin_delete_bucket(sim_t *sim, ob_httpd_conn_t *conn, const char *name)
{
    char msg[512];
    json_t *buckets = sim_section(sim, "buckets");
    json_t *b = *name && !strchr(name, '/') ? json_object_get(buckets, name) : NULL;
    if (!b) {
        snprintf(msg, sizeof(msg), "no bucket \"%.400s\"", name);
        admin_error(conn, 404, msg);
        return;
    }
    json_t *out = json_pack("{s:s, s:s, s:O?}", "status", "deleted", "bucket", name, "owner",
                            json_object_get(b, "owner"));
    json_object_del(buckets, name);
    sim_touch(sim);
    admin_json(conn, 200, out);
}

static void services_init(sim_t *sim)
{
    for (int i = 0; i < OB_SVC__COUNT; i++)
        if (services[i]->init)
            services[i]->init(sim);
}

static void services_fini(sim_t *sim)
{
    for (int i = 0; i < OB_SVC__COUNT; i++)
        if (services[i]->fini)
            services[i]->fini(sim);
}

/* The quota members of a POST /_sim/config body, checked before anything of
 * the body is applied: "quotas" is "aws" or "none", "quota" an object of
 * "API": "RATE[/BURST]". */
static ob_err_t check_quota_body(json_t *body, char *errstr, size_t errstr_size)
{
    json_t *table = json_object_get(body, "quotas");
    const char *name = json_string_value(table);
    if (table && (!name || (strcmp(name, "aws") != 0 && strcmp(name, "none") != 0)))
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                       "\"quotas\" must be \"aws\" or \"none\"");
    json_t *rules = json_object_get(body, "quota");
    if (rules && !json_is_object(rules))
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                       "\"quota\" must be an object: {\"API\": \"RATE[/BURST]\"}");
    const char *k;
    json_t *v;
    json_object_foreach(rules, k, v)
    {
        if (!json_is_string(v))
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                           "quota %s: give \"RATE\" or \"RATE/BURST\" as a string", k);
        if (sim_quotas_check(k, json_string_value(v), errstr, errstr_size) != OB_OK)
            return OB_ERR_CONFIG;
    }
    return OB_OK;
}

static void handle_admin(sim_t *sim, ob_httpd_conn_t *conn, const ob_httpd_req_t *r)
{
    const char *p = r->path + 6;
    int get = !strcmp(r->method, "GET"),
        post = !strcmp(r->method, "POST") || !strcmp(r->method, "PUT");
    char err[512] = "";
    if (!strcmp(p, "health") && get) {
        admin_json(conn, 200, json_pack("{s:s}", "status", "ok"));
    } else if (!strcmp(p, "state") && get) {
        admin_json(conn, 200, json_incref(sim->state));
    } else if (!strcmp(p, "stats") && get) {
        ob_httpd_stats_t st;
        ob_httpd_get_stats(sim->httpd, &st);
        admin_json(conn, 200,
                   json_pack("{s:I, s:I, s:O, s:O, s:I, s:I, s:I, s:O, s:I, s:I}", "requests",
                             (json_int_t)sim->requests, "faults_injected",
                             (json_int_t)sim->faults_injected, "counts", sim_section(sim, "counts"),
                             "counts_by_account", sim_section(sim, "counts_by_account"),
                             "open_connections", (json_int_t)st.open_connections, "accepted",
                             (json_int_t)st.accepted, "pending", (json_int_t)st.pending,
                             "throttled", sim_quotas_throttled(sim->quotas), "throttled_total",
                             (json_int_t)sim_quotas_throttled_total(sim->quotas), "quota_buckets",
                             (json_int_t)sim_quotas_buckets(sim->quotas)));
    } else if (!strcmp(p, "reset") && post) {
        services_fini(sim);
        if (seed(sim, err, sizeof(err)) != OB_OK) {
            admin_error(conn, 500, err);
            return;
        }
        services_init(sim);
        sim_quotas_reset(sim->quotas);
        sim_touch(sim);
        admin_json(conn, 200, json_pack("{s:s}", "status", "reset"));
    } else if (!strcmp(p, "seed") && post) {
        admin_seed(sim, conn, r);
    } else if (!strcmp(p, "accounts") && post) {
        admin_module(sim, conn, r, sim_org_admin_account);
    } else if (!strcmp(p, "ous") && post) {
        admin_module(sim, conn, r, sim_org_admin_ou);
    } else if (!strcmp(p, "drift") && post) {
        admin_module(sim, conn, r, sim_admin_drift);
    } else if (!strncmp(p, "buckets/", 8) && !strcmp(r->method, "DELETE")) {
        admin_delete_bucket(sim, conn, p + 8);
    } else if ((!strcmp(p, "faults") || !strcmp(p, "latency") || !strcmp(p, "config") ||
                !strcmp(p, "quotas")) &&
               (get || post || !strcmp(r->method, "DELETE"))) {
        if (!strcmp(r->method, "DELETE")) {
            if (!strcmp(p, "faults"))
                sim->nfaults = 0;
            else if (!strcmp(p, "quotas"))
                sim_quotas_preset(sim->quotas, "none", NULL, 0);
            else
                set_profile(sim, "instant", NULL, 0);
        } else if (post) {
            /* {"faults": {"api": "spec", ...} or [["api","spec"],...], "replace": true,
             *  "profile": "...", "scale": 1.0, "latency": {"api": "spec"},
             *  "quotas": "aws"|"none", "quota": {"api": "RATE[/BURST]"}} */
            json_error_t je;
            json_t *j = json_loadb(r->body, r->body_len, 0, &je);
            if (!json_is_object(j)) {
                json_decref(j);
                admin_error(conn, 400, "body must be a JSON object");
                return;
            }
            if (check_quota_body(j, err, sizeof(err)) != OB_OK) {
                json_decref(j);
                admin_error(conn, 400, err);
                return;
            }
            json_t *profile = json_object_get(j, "profile");
            if (json_is_string(profile) &&
                set_profile(sim, json_string_value(profile), err, sizeof(err)) != OB_OK) {
                json_decref(j);
                admin_error(conn, 400, err);
                return;
            }
            json_t *scale = json_object_get(j, "scale");
            if (json_is_number(scale))
                sim->opts.scale = json_number_value(scale);
            if (json_is_true(json_object_get(j, "replace")) || !strcmp(p, "faults"))
                if (json_object_get(j, "faults"))
                    sim->nfaults = 0;
            const char *k;
            json_t *v;
            json_object_foreach(json_object_get(j, "faults"), k, v)
            {
                if (add_fault(sim, k, json_string_value(v) ? json_string_value(v) : "", err,
                              sizeof(err)) != OB_OK)
                    break;
            }
            if (!err[0]) {
                json_object_foreach(json_object_get(j, "latency"), k, v)
                {
                    if (set_latency(sim, k, json_string_value(v) ? json_string_value(v) : "", err,
                                    sizeof(err)) != OB_OK)
                        break;
                }
            }
            /* Checked above: the table first, then the rules on top of it. */
            json_t *table = json_object_get(j, "quotas");
            if (!err[0] && table)
                sim_quotas_preset(sim->quotas, json_string_value(table), NULL, 0);
            json_object_foreach(json_object_get(j, "quota"), k, v)
            {
                if (!err[0])
                    sim_quotas_set(sim->quotas, k, json_string_value(v), err, sizeof(err));
            }
            json_decref(j);
            if (err[0]) {
                admin_error(conn, 400, err);
                return;
            }
        }
        admin_json(conn, 200, rules_json(sim));
    } else {
        admin_error(conn, 404,
                    "unknown admin call; GET /_sim/{health,state,stats,config}, POST "
                    "/_sim/{reset,seed,accounts,ous,drift,config,faults,latency,quotas}, DELETE "
                    "/_sim/{faults,latency,quotas,buckets/NAME}");
    }
}

/* ---- lifecycle ---- */

sim_t *sim_new(ob_loop_t *loop, const sim_opts_t *opts, char *errstr, size_t errstr_size)
{
    sim_t *sim = ob_calloc(1, sizeof(*sim));
    if (!sim) {
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    sim->loop = loop;
    if (opts)
        sim->opts = *opts;
    sim->state_file = sim->opts.state_file ? ob_strdup(sim->opts.state_file) : NULL;
    sim->seed_file = sim->opts.seed_file ? ob_strdup(sim->opts.seed_file) : NULL;
    sim->opts.state_file = sim->opts.seed_file = NULL;
    sim->opts.latency = sim->opts.faults = sim->opts.quota = NULL;
    sim->opts.quotas = NULL;
    unsigned seedv = sim->opts.random_seed ? sim->opts.random_seed : (unsigned)time(NULL);
    sim->rng[0] = (unsigned short)seedv;
    sim->rng[1] = (unsigned short)(seedv >> 16);
    sim->rng[2] = 0x330e;
    sim->persist_timer = ob_timer_new(loop, persist_fired, sim);
    sim->quotas = sim_quotas_new();
    ob_err_t e = set_profile(sim, opts ? opts->profile : NULL, errstr, errstr_size);
    for (int i = 0; e == OB_OK && opts && opts->latency && opts->latency[i]; i++) {
        char api[96];
        const char *eq = strchr(opts->latency[i], '=');
        if (!eq || (size_t)(eq - opts->latency[i]) >= sizeof(api)) {
            e = ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "latency \"%s\": expected API=SPEC",
                        opts->latency[i]);
            break;
        }
        snprintf(api, sizeof(api), "%.*s", (int)(eq - opts->latency[i]), opts->latency[i]);
        e = set_latency(sim, api, eq + 1, errstr, errstr_size);
    }
    for (int i = 0; e == OB_OK && opts && opts->faults && opts->faults[i]; i++) {
        char api[96];
        const char *eq = strchr(opts->faults[i], '=');
        if (!eq || (size_t)(eq - opts->faults[i]) >= sizeof(api)) {
            e = ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "fault \"%s\": expected API=KIND:RATE",
                        opts->faults[i]);
            break;
        }
        snprintf(api, sizeof(api), "%.*s", (int)(eq - opts->faults[i]), opts->faults[i]);
        e = add_fault(sim, api, eq + 1, errstr, errstr_size);
    }
    /* The quota table (overriding the profile's), then the rules on top. */
    if (e == OB_OK && opts && opts->quotas)
        e = sim_quotas_preset(sim->quotas, opts->quotas, errstr, errstr_size);
    for (int i = 0; e == OB_OK && opts && opts->quota && opts->quota[i]; i++) {
        char api[96];
        const char *eq = strchr(opts->quota[i], '=');
        if (!eq || (size_t)(eq - opts->quota[i]) >= sizeof(api)) {
            e = ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                        "quota \"%s\": expected API=RATE or API=RATE/BURST", opts->quota[i]);
            break;
        }
        snprintf(api, sizeof(api), "%.*s", (int)(eq - opts->quota[i]), opts->quota[i]);
        e = sim_quotas_set(sim->quotas, api, eq + 1, errstr, errstr_size);
    }
    if (e == OB_OK && sim->state_file && access(sim->state_file, R_OK) == 0) {
        json_error_t je;
        sim->state = json_load_file(sim->state_file, 0, &je);
        if (!json_is_object(sim->state))
            e = ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "state file %s: line %d: %s",
                        sim->state_file, je.line, je.text);
        else
            ob_logf(OB_LOG_INFO, "awssim", "state restored from %s", sim->state_file);
    } else if (e == OB_OK) {
        e = seed(sim, errstr, errstr_size);
    }
    if (e == OB_OK) {
        ob_httpd_opts_t ho = {.bind_addr = sim->opts.bind_addr,
                              .port = sim->opts.port,
                              .server_name = "AmazonS3-awssim"};
        sim->httpd = ob_httpd_new(loop, &ho, on_request, sim, errstr, errstr_size);
        if (!sim->httpd)
            e = OB_ERR_IO;
    }
    if (e != OB_OK) {
        sim_free(sim);
        return NULL;
    }
    services_init(sim);
    return sim;
}

void sim_free(sim_t *sim)
{
    if (!sim)
        return;
    if (sim->httpd)
        services_fini(sim);
    /* Free the server first: hanging and delayed replies see their
     * connections close and release themselves. */
    ob_httpd_free(sim->httpd);
    while (sim->pending) {
        pending_t *p = sim->pending;
        pending_unlink(sim, p);
        pending_free(p);
    }
    if (sim->dirty)
        save_state(sim);
    ob_timer_free(sim->persist_timer);
    sim_quotas_free(sim->quotas);
    json_decref(sim->state);
    free(sim->state_file);
    free(sim->seed_file);
    free(sim);
}
