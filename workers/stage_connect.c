/*
 * The connect stage, the last of every onboarding: prove that the Billing
 * Engine can really use the account, then announce it.
 *
 * Input: onboard.stage/1 with stage "connect" and results.stack (the role the
 * iam stage made and the per-account ExternalId it trusts). Steps:
 *   STS AssumeRole on results.stack.role_arn with that ExternalId, signed as
 *   the fleet itself (the fleet's identity plays the Billing Engine principal
 *   the role trusts), session "billing-engine-verify", in the request's
 *   region. AccessDenied just after the stack completed can be IAM's eventual
 *   consistency: it is tried connect.retries more times, connect.retry.wait
 *   apart, and then fails permanently saying that the role does not trust the
 *   Billing Engine principal with this ExternalId. The credentials it returns
 *   are thrown away unread.
 *   -> the onboard.connected/1 event (ob_connected_from_stage: the
 *   idempotency key is a hash of account, role and request id, so every
 *   redelivery of one hand-off carries the same key).
 *   -> when billing.url is set, a signed POST of exactly those bytes (see
 *   "The signed POST" below); 2xx is success, 408 is tried again here, 429
 *   and 5xx are retried by the runtime, any other status is a refusal.
 *   -> DONE: the same bytes to the connected topic, and the account's state
 *   (status connected, role_arn, connected_at, idempotency_key, stack_id).
 *
 * The signed POST (for the Billing Engine's receiver):
 *   Content-Type: application/json
 *   X-Onboard-Timestamp: unix seconds when the POST was built
 *   X-Onboard-Idempotency-Key: the event's idempotency_key
 *   X-Onboard-Signature: "v1=" + lowercase hex of
 *       HMAC-SHA256(key = billing.secret, data = timestamp + "." + body)
 * The receiver recomputes the HMAC over the raw body bytes, compares it in
 * constant time, refuses timestamps more than 5 minutes from its clock
 * (replays), and dedupes on the idempotency key (a redelivered hand-off POSTs
 * the same event again, with a fresh timestamp and connected_at).
 *
 * Secrets: billing.secret only ever enters the HMAC; the ExternalId goes to
 * STS and into the event, and is cut out of every text this stage writes
 * (reasons, the Billing Engine's reply). billing.url must be https:// (http://
 * only to a loopback address), since the event carries the ExternalId; it is
 * named in texts by its origin only (no user info, path or query).
 *
 * Offboarding (mode offboard, onboard.stage/2, after the cur and iam stages
 * removed the fleet's reports and stacks): nothing to verify in AWS (the
 * role went with its stack); -> the onboard.disconnected/1 event (naming the
 * connection it ends, from the account's record, and the buckets kept) on
 * the connected topic, POSTed like the connected event when billing.url is
 * set; -> DONE: the record says disconnected and forgets the connection. An
 * account that had no connection and in which nothing was removed gets no
 * event: the record says it was never onboarded.
 *
 * parse() checks the billing settings before it reads the message, so a bad
 * configuration is refused with code "billing_config" whatever the payload
 * (the worker's main uses that to refuse to start).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ob_alloc.h"
#include "ob_awsproto.h"
#include "ob_crypto.h"
#include "ob_state.h"
#include "stages.h"

#define SESSION_NAME      "billing-engine-verify"
#define VERIFY_DURATION_S "900" /* the shortest session STS issues: it is never used */
#define REPLY_SNIPPET     200   /* bytes of a refusing Billing Engine's reply quoted */
#define DEFAULT_RETRIES   10
#define DEFAULT_RETRY_MS  2000
#define DEFAULT_POSTS     3

typedef enum cphase_e {
    C_START = 0, /* nothing sent yet */
    C_ASSUME,    /* AssumeRole in flight */
    C_DENIED,    /* waiting before the next AssumeRole */
    C_POST,      /* the POST in flight */
    C_POST_WAIT  /* waiting before POSTing again after a 408 */
} cphase_t;

typedef struct connect_st_s {
    ob_stage_msg_t msg;
    cphase_t phase;
    /* settings (copied from the configuration; pointers borrowed from it) */
    long long retries, retry_ms, max_posts;
    const char *principal;
    const char *url; /* NULL: no POST */
    const char *secret;
    char origin[300]; /* the URL as texts name it */
    /* progress */
    int assume_calls;
    int denied;
    int posts;         /* POST steps issued (each retried by the runtime) */
    int post_attempts; /* HTTP attempts they made */
    char started_at[OB_TIME_LEN];
    char connected_at[OB_TIME_LEN];
    char idem[OB_IDEMPOTENCY_LEN];
    char *event; /* the connected event, malloc'd */
    char *spec;  /* the request connected, normalized (malloc'd JSON): what verification checks */
    char desired[OB_DESIRED_LEN];
    /* the connection in place (the account's state): its key and the
     * request whose event announced it */
    char prior_key[OB_IDEMPOTENCY_LEN];
    char prior_request[OB_REQUEST_ID_LEN];
    /* offboarding: the connection's role and the buckets the fleet made,
     * from the record (malloc'd; NULL: none) */
    char *prior_role;
    char *prior_buckets;
    int unchanged; /* that connection is this one, announced by another request */
} connect_st_t;

/* ---- helpers ---- */

/* Cut the ExternalId out of a text, however a reply spelled it (ob_redact). */
static void scrub(char *s, size_t size, const char *secret)
{
    ob_redact(s, size, secret, "[ExternalId]");
}

static int is_loopback(const char *host, size_t n)
{
    if ((n == 9 && !strncasecmp(host, "localhost", 9)) || (n == 5 && !strncmp(host, "[::1]", 5)))
        return 1;
    if (n < 4 || strncmp(host, "127.", 4) != 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((host[i] < '0' || host[i] > '9') && host[i] != '.')
            return 0;
    return 1;
}

/* Check billing.url and write its origin (scheme://host[:port]) to origin.
 * NULL when fine, else why not. */
static const char *check_url(const char *url, char *origin, size_t origin_size)
{
    int https = !strncasecmp(url, "https://", 8);
    if (!https && strncasecmp(url, "http://", 7) != 0)
        return "billing.url must start with https://";
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return "billing.url must not contain spaces or control characters";
    const char *auth = url + (https ? 8 : 7);
    size_t alen = strcspn(auth, "/?#");
    /* Drop any user info: it is a credential. */
    const char *at = NULL;
    for (const char *p = auth; p < auth + alen; p++)
        if (*p == '@')
            at = p;
    const char *host = at ? at + 1 : auth;
    size_t hlen = alen - (size_t)(host - auth);
    if (hlen == 0)
        return "billing.url has no host";
    size_t name = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":");
    if (name > hlen)
        name = hlen;
    if (!https && !is_loopback(host, name))
        return "billing.url must be https:// (the event carries the ExternalId); http:// is "
               "allowed only to a loopback address";
    snprintf(origin, origin_size, "%s://%.*s", https ? "https" : "http", (int)hlen, host);
    return NULL;
}

/* The settings check parse() runs first. OB_OK, or a FAIL step in *fail. */
static ob_err_t load_settings(connect_st_t *st, const ob_config_t *cfg, ob_step_t *fail)
{
    st->retries = cfg ? cfg->connect_retries : DEFAULT_RETRIES;
    st->retry_ms = cfg ? cfg->connect_retry_ms : DEFAULT_RETRY_MS;
    st->max_posts = cfg && cfg->aws_max_attempts > 0 ? cfg->aws_max_attempts : DEFAULT_POSTS;
    st->principal = cfg && cfg->billing_principal ? cfg->billing_principal : "";
    st->url = cfg && cfg->billing_url && cfg->billing_url[0] ? cfg->billing_url : NULL;
    st->secret = cfg && cfg->billing_secret ? cfg->billing_secret : "";
    if (!st->url)
        return OB_OK;
    const char *why = check_url(st->url, st->origin, sizeof(st->origin));
    if (!why && !st->secret[0])
        why = "billing.url is set but billing.secret is empty: events would go unsigned";
    if (!why)
        return OB_OK;
    ob_step_fail(fail, OB_DLQ_PERMANENT, "billing_config", "%s", why);
    return OB_ERR_CONFIG;
}

/* ---- parse ---- */

static ob_err_t connect_parse(void *p, void *ctx, const ob_config_t *cfg, const char *payload,
                              size_t len, ob_job_plan_t *plan, ob_step_t *fail)
{
    connect_st_t *st = p;
    if (load_settings(st, cfg, fail) != OB_OK)
        return OB_ERR_CONFIG;
    ob_msg_error_t me;
    memset(&me, 0, sizeof(me));
    if (ob_stage_parse(payload, len, &st->msg, &me) != OB_OK) {
        ob_step_fail(fail, ob_dlq_class_for(&me), me.code, "%s", me.message);
        snprintf(fail->field, sizeof(fail->field), "%s", me.field);
        return OB_ERR_PARSE;
    }
    const ob_request_t *r = &st->msg.request;
    /* Fill the plan first: the dead letter names the account either way. */
    snprintf(plan->account_id, sizeof(plan->account_id), "%s", r->account_id);
    snprintf(plan->request_id, sizeof(plan->request_id), "%s", r->request_id);
    ob_request_desired(r, plan->desired);
    plan->offboard = r->mode == OB_MODE_OFFBOARD;
    plan->repair = r->repair;
    plan->mode = ob_mode_name(r->mode);
    snprintf(st->desired, sizeof(st->desired), "%s", plan->desired);
    snprintf(plan->role_arn, sizeof(plan->role_arn), "%s", r->role_arn);
    snprintf(plan->external_id, sizeof(plan->external_id), "%s", r->external_id);
    snprintf(plan->region, sizeof(plan->region), "%s", r->region);
    if (st->msg.stage != OB_STAGE_CONNECT ||
        (!st->msg.has_stack && st->msg.request.mode != OB_MODE_OFFBOARD)) {
        ob_step_fail(fail, OB_DLQ_INVALID_INPUT, "enum",
                     "/stage: the connect worker takes hand-offs for stage \"connect\", got "
                     "\"%s\"",
                     ob_stage_name(st->msg.stage));
        snprintf(fail->field, sizeof(fail->field), "/stage");
        return OB_ERR_PARSE;
    }
    ob_msg_now(st->started_at);
    return OB_OK;
}

/* ---- AssumeRole ---- */

static void assume_call(connect_st_t *st, ob_step_t *out)
{
    memset(out, 0, sizeof(*out));
    char err[256];
    const ob_stack_result_t *k = &st->msg.stack;
    if (ob_query_init(&out->req, OB_SVC_STS, "AssumeRole", err, sizeof(err)) != OB_OK ||
        ob_query_add(&out->req, "RoleArn", k->role_arn, err, sizeof(err)) != OB_OK ||
        ob_query_add(&out->req, "RoleSessionName", SESSION_NAME, err, sizeof(err)) != OB_OK ||
        ob_query_add(&out->req, "DurationSeconds", VERIFY_DURATION_S, err, sizeof(err)) != OB_OK ||
        ob_query_add(&out->req, "ExternalId", k->external_id, err, sizeof(err)) != OB_OK) {
        scrub(err, sizeof(err), k->external_id);
        ob_step_fail(out, OB_DLQ_PERMANENT, "request_error", "AssumeRole: %s", err);
        return;
    }
    out->kind = OB_STEP_CALL;
    out->as_fleet = 1;
    snprintf(out->region, sizeof(out->region), "%s", st->msg.request.region);
    st->phase = C_ASSUME;
    st->assume_calls++;
}

static void fail_denied(connect_st_t *st, const ob_aws_result_t *res, ob_step_t *out)
{
    const ob_stack_result_t *k = &st->msg.stack;
    char aws_msg[sizeof(res->aws.message)];
    snprintf(aws_msg, sizeof(aws_msg), "%s", res->aws.message);
    scrub(aws_msg, sizeof(aws_msg), k->external_id);
    long long waited = (long long)st->denied * st->retry_ms;
    ob_step_fail(out, OB_DLQ_PERMANENT, "AccessDenied",
                 "role %s does not trust the Billing Engine principal %s with this ExternalId: "
                 "STS AssumeRole was denied %d time%s over %lld ms (%.160s); check the role's "
                 "trust policy (Principal, sts:ExternalId condition) and the ExternalId kept for "
                 "the account",
                 k->role_arn, st->principal[0] ? st->principal : "(the fleet's identity)",
                 st->assume_calls, st->assume_calls == 1 ? "" : "s", waited,
                 aws_msg[0] ? aws_msg : "no message");
    snprintf(out->field, sizeof(out->field), "/results/stack/role_arn");
    snprintf(out->aws_request_id, sizeof(out->aws_request_id), "%s", res->aws.request_id);
    out->http_status = (int)res->status;
}

/* A 2xx AssumeRole reply: credentials for a session of the stack's role. */
static int assume_reply_ok(const connect_st_t *st, const ob_aws_result_t *res, char *why,
                           size_t why_size)
{
    ob_xml_doc_t *doc = NULL;
    const ob_xml_node_t *result = NULL;
    if (ob_query_parse_result(res->body.data ? res->body.data : "", res->body.len, "AssumeRole",
                              &doc, &result, why, why_size) != OB_OK)
        return 0;
    int ok = 1;
    const char *akid = ob_xml_path_text(result, "Credentials/AccessKeyId");
    const char *arn = ob_xml_path_text(result, "AssumedRoleUser/Arn");
    if (!akid || !akid[0]) {
        snprintf(why, why_size, "the AssumeRole reply has no credentials");
        ok = 0;
    } else if (arn) {
        /* arn:PARTITION:sts::ACCOUNT:assumed-role/NAME/SESSION */
        char want[128];
        const char *part = st->msg.stack.role_arn + 4;
        size_t plen = strcspn(part, ":");
        snprintf(want, sizeof(want), "arn:%.*s:sts::%s:assumed-role/", (int)plen, part,
                 st->msg.request.account_id);
        if (strncmp(arn, want, strlen(want)) != 0) {
            snprintf(why, why_size, "STS returned a session of %.200s, not of a role in %s", arn,
                     st->msg.request.account_id);
            ok = 0;
        }
    }
    ob_xml_free(doc);
    return ok;
}

/* ---- the event and the POST ---- */

static int build_event(connect_st_t *st, ob_step_t *out)
{
    ob_connected_t c;
    ob_msg_error_t me;
    memset(&me, 0, sizeof(me));
    ob_msg_now(st->connected_at);
    if (ob_connected_from_stage(&st->msg, st->connected_at, &c, &me) != OB_OK) {
        ob_step_fail(out, OB_DLQ_PERMANENT, me.code, "cannot build the connected event: %s",
                     me.message);
        snprintf(out->field, sizeof(out->field), "%s", me.field);
        return 0;
    }
    ob_trace_t *t = &c.trace[OB_STAGE_CONNECT];
    t->present = 1;
    t->started_at = st->started_at; /* st outlives c */
    t->finished_at = st->connected_at;
    t->attempts = st->assume_calls > 0 ? st->assume_calls : 1;
    t->worker = "connect";
    free(st->event);
    st->event = NULL;
    if (ob_connected_to_json(&c, &st->event, NULL, &me) != OB_OK) {
        ob_step_fail(out, OB_DLQ_PERMANENT, me.code, "cannot build the connected event: %s",
                     me.message);
        snprintf(out->field, sizeof(out->field), "%s", me.field);
        ob_connected_clear(&c);
        return 0;
    }
    snprintf(st->idem, sizeof(st->idem), "%s", c.idempotency_key);
    ob_connected_clear(&c);
    return 1;
}

static void post_event(connect_st_t *st, ob_step_t *out)
{
    memset(out, 0, sizeof(*out));
    size_t blen = strlen(st->event);
    char ts[24];
    snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
    /* v1 = hex HMAC-SHA256(secret, timestamp "." body) */
    ob_buf_t signed_text = {0};
    uint8_t mac[OB_SHA256_LEN];
    char hex[OB_SHA256_HEX_LEN], sig[OB_SHA256_HEX_LEN + 3] = "";
    ob_err_t e = ob_buf_printf(&signed_text, "%s.", ts);
    if (e == OB_OK)
        e = ob_buf_append(&signed_text, st->event, blen);
    if (e == OB_OK) {
        ob_hmac_sha256(st->secret, strlen(st->secret), signed_text.data, signed_text.len, mac);
        ob_hex(mac, sizeof(mac), hex);
        snprintf(sig, sizeof(sig), "v1=%s", hex);
    }
    ob_buf_free(&signed_text);
    out->kind = OB_STEP_HTTP;
    snprintf(out->http_method, sizeof(out->http_method), "POST");
    out->http_url = ob_strdup(st->url);
    if (e != OB_OK || !out->http_url ||
        ob_hdrs_add(&out->http_headers, "Content-Type", "application/json") != OB_OK ||
        ob_hdrs_add(&out->http_headers, "X-Onboard-Timestamp", ts) != OB_OK ||
        ob_hdrs_add(&out->http_headers, "X-Onboard-Idempotency-Key", st->idem) != OB_OK ||
        ob_hdrs_add(&out->http_headers, "X-Onboard-Signature", sig) != OB_OK ||
        ob_buf_append(&out->http_body, st->event, blen) != OB_OK) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "out_of_memory", "cannot build the POST");
        return;
    }
    st->phase = C_POST;
    st->posts++;
}

/* Offboarding: the disconnected event, in st->event (0: a FAIL step is in out). */
static int build_disconnected(connect_st_t *st, ob_step_t *out)
{
    ob_disconnected_t d;
    ob_msg_error_t me;
    memset(&me, 0, sizeof(me));
    ob_msg_now(st->connected_at);
    if (ob_disconnected_from_stage(&st->msg, st->prior_key, st->prior_role, st->prior_buckets,
                                   st->connected_at, &d, &me) != OB_OK) {
        ob_step_fail(out, OB_DLQ_PERMANENT, me.code, "cannot build the disconnected event: %s",
                     me.message);
        snprintf(out->field, sizeof(out->field), "%s", me.field);
        return 0;
    }
    d.trace[OB_STAGE_CONNECT] = (ob_trace_t){1, st->started_at, st->connected_at, 1, "connect"};
    free(st->event);
    st->event = NULL;
    if (ob_disconnected_to_json(&d, &st->event, NULL, &me) != OB_OK) {
        ob_step_fail(out, OB_DLQ_PERMANENT, me.code, "cannot build the disconnected event: %s",
                     me.message);
        snprintf(out->field, sizeof(out->field), "%s", me.field);
        ob_disconnected_clear(&d);
        return 0;
    }
    snprintf(st->idem, sizeof(st->idem), "%s", d.idempotency_key);
    ob_disconnected_clear(&d);
    return 1;
}

/* Offboarding an account in which the stages found nothing of the fleet's
 * and that had no connection: no event. The record says why, and another
 * offboarding stops at intake. */
static void nothing_to_disconnect(connect_st_t *st, ob_step_t *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = OB_STEP_DONE;
    const char *kv[] = {OB_ST_STATUS,
                        OB_ST_STATUS_DISCONNECTED,
                        OB_ST_OUTCOME,
                        OB_ST_OUTCOME_UNCHANGED,
                        OB_ST_OUTCOME_REASON,
                        "never onboarded: nothing of the fleet's was found in the account",
                        OB_ST_CONNECTED_DESIRED,
                        st->desired};
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
        out->state[i] = kv[i];
}

static void disconnected(connect_st_t *st, ob_step_t *out)
{
    memset(out, 0, sizeof(*out));
    out->emit = ob_strdup(st->event);
    if (!out->emit) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "out_of_memory", "cannot emit the disconnected event");
        return;
    }
    out->kind = OB_STEP_DONE;
    out->emit_topic = "connected";
    out->emit_schema = OB_SCHEMA_DISCONNECTED;
    /* The account is disconnected: the connection's fields are emptied
     * (the buckets stay listed: they stay in the account). */
    const char *kv[] = {OB_ST_STATUS,
                        OB_ST_STATUS_DISCONNECTED,
                        OB_ST_OUTCOME,
                        OB_ST_OUTCOME_DISCONNECTED,
                        OB_ST_DISCONNECTED_AT,
                        st->connected_at,
                        OB_ST_DISCONNECT_KEY,
                        st->idem,
                        OB_ST_CONNECTED_REQUEST,
                        "",
                        OB_ST_CONNECTED_DESIRED,
                        st->desired,
                        OB_ST_CONNECTED_AT,
                        "",
                        OB_ST_IDEMPOTENCY_KEY,
                        "",
                        OB_ST_ROLE_ARN,
                        "",
                        OB_ST_CONNECTED_SPEC,
                        ""};
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
        out->state[i] = kv[i];
}

/* The connection is the one in place, announced by another request's event
 * (a request repeated, or one whose change the Billing Engine does not see):
 * nothing to announce. The record says the desired state is reached. */
static void done_unchanged(connect_st_t *st, ob_step_t *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = OB_STEP_DONE;
    const char *kv[] = {OB_ST_STATUS, OB_ST_STATUS_CONNECTED, OB_ST_CONNECTED_DESIRED,
                        st->desired,  OB_ST_OUTCOME,          OB_ST_OUTCOME_UNCHANGED};
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
        out->state[i] = kv[i];
}

/* The normalized request of the connection, for the record ("" when it
 * cannot be encoded: verification then has nothing to compare with). */
static const char *spec_of(connect_st_t *st)
{
    free(st->spec);
    st->spec = NULL;
    ob_request_t r = st->msg.request; /* shallow: only read */
    r.repair = 0;                     /* what the account should be, not what a repair found */
    /* The request was checked when the hand-off was read: encoded again
     * without a second schema check (one per connection). */
    json_t *o = ob_request_to_object(&r);
    st->spec = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return st->spec ? st->spec : "";
}

static void done(connect_st_t *st, ob_step_t *out)
{
    memset(out, 0, sizeof(*out));
    out->emit = ob_strdup(st->event);
    if (!out->emit) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "out_of_memory", "cannot emit the connected event");
        return;
    }
    out->kind = OB_STEP_DONE;
    out->emit_topic = "connected";
    out->emit_schema = OB_SCHEMA_CONNECTED;
    const char *kv[] = {
        OB_ST_STATUS, OB_ST_STATUS_CONNECTED, OB_ST_ROLE_ARN, st->msg.stack.role_arn,
        OB_ST_CONNECTED_AT, st->connected_at, OB_ST_IDEMPOTENCY_KEY, st->idem, OB_ST_STACK_ID,
        st->msg.stack.id, OB_ST_CONNECTED_REQUEST, st->msg.request.request_id,
        OB_ST_CONNECTED_DESIRED, st->desired, OB_ST_OUTCOME, OB_ST_OUTCOME_CONNECTED,
        /* what the earlier stages recorded, again: a write of
         * theirs that Redis lost is made good here */
        OB_ST_BUCKET, st->msg.has_bucket ? st->msg.bucket.name : "", OB_ST_REPORT,
        /* the fleet's report: an existing account's own is not (offboarding
         * deletes the reports the record names) */
        st->msg.has_report && st->msg.request.mode == OB_MODE_NEW ? st->msg.report.name : "",
        OB_ST_STACKS, st->msg.stack.id, OB_ST_CONNECTED_SPEC, spec_of(st)};
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
        out->state[i] = kv[i];
}

/* Up to REPLY_SNIPPET bytes of a reply, one line, never the ExternalId (nor
 * a piece of it: the reply is scrubbed before it is cut). out holds at least
 * REPLY_SNIPPET + 1 bytes. */
static void reply_snippet(const connect_st_t *st, const ob_aws_result_t *res, char *out,
                          size_t size)
{
    /* Room for an ExternalId begun just before the cut, however spelled
     * (up to 12 bytes a character: "&#x00000061;"). */
    char tmp[REPLY_SNIPPET + 12 * OB_BE_EXT_ID_LEN + 16];
    size_t n = res->body.data ? res->body.len : 0;
    if (n > sizeof(tmp) - 1)
        n = sizeof(tmp) - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)res->body.data[i];
        tmp[i] = ch < ' ' || ch == 0x7f ? ' ' : (char)ch;
    }
    tmp[n] = '\0';
    scrub(tmp, sizeof(tmp), st->msg.stack.external_id);
    n = strlen(tmp);
    if (n > REPLY_SNIPPET) {
        n = REPLY_SNIPPET;
        /* Do not cut a UTF-8 sequence. */
        while (n > 0 && ((unsigned char)tmp[n] & 0xC0) == 0x80)
            n--;
    }
    if (n >= size)
        n = size - 1;
    memcpy(out, tmp, n);
    out[n] = '\0';
}

/* What went wrong with a POST, without the URL (the runtime's errmsg starts
 * "POST <url>: "). */
static const char *post_detail(const connect_st_t *st, const ob_aws_result_t *res)
{
    size_t ulen = strlen(st->url);
    if (!strncmp(res->errmsg, "POST ", 5) && !strncmp(res->errmsg + 5, st->url, ulen) &&
        !strncmp(res->errmsg + 5 + ulen, ": ", 2))
        return res->errmsg + 5 + ulen + 2;
    return ob_err2str(res->err);
}

static void post_result(connect_st_t *st, const ob_aws_result_t *res, ob_step_t *out)
{
    if (res->err == OB_OK) {
        if (st->msg.request.mode == OB_MODE_OFFBOARD)
            disconnected(st, out);
        else
            done(st, out);
        return;
    }
    char reply[REPLY_SNIPPET + 16];
    reply_snippet(st, res, reply, sizeof(reply));
    st->post_attempts += res->attempts > 0 ? res->attempts : 1;
    if (res->status == 408 && res->retry_class == OB_RETRY_NO && st->posts < st->max_posts) {
        /* The runtime does not retry 408 (Request Timeout): do it here, with
         * a fresh timestamp. */
        memset(out, 0, sizeof(*out));
        out->kind = OB_STEP_WAIT;
        out->wait_ms = (uint64_t)st->retry_ms;
        st->phase = C_POST_WAIT;
        return;
    }
    int status = (int)res->status;
    int retryable = res->retry_class != OB_RETRY_NO || status == 408 || status == 429 ||
                    status >= 500 || status == 0;
    if (retryable) {
        char what[REPLY_SNIPPET + 300];
        if (status)
            snprintf(what, sizeof(what), "HTTP %d%s%s", status, reply[0] ? ": " : "", reply);
        else
            snprintf(what, sizeof(what), "%.280s", post_detail(st, res));
        ob_step_fail(out, OB_DLQ_RETRIES_EXHAUSTED, "billing_unavailable",
                     "the Billing Engine at %s did not take the event after %d attempt%s: %s",
                     st->origin, st->post_attempts, st->post_attempts == 1 ? "" : "s", what);
        out->retry_reason = status == 429 ? OB_RR_THROTTLING
                            : status == 408 || res->retry_class == OB_RETRY_TIMEOUT
                                ? OB_RR_TIMEOUT
                                : OB_RR_TRANSIENT;
    } else {
        ob_step_fail(out, OB_DLQ_PERMANENT, "billing_refused",
                     "the Billing Engine at %s refused the event: HTTP %d%s%s", st->origin, status,
                     reply[0] ? ": " : "", reply);
    }
    out->http_status = status;
    scrub(out->message, sizeof(out->message), st->msg.stack.external_id);
}

/* ---- the stage ---- */

static void verified(connect_st_t *st, ob_step_t *out)
{
    if (!build_event(st, out))
        return;
    /* The same connection as the one in place, whose event another request
     * sent: announcing it again would only repeat it. (This request's own
     * event recorded and then not committed comes again, and is sent.) */
    if (st->prior_key[0] && !strcmp(st->prior_key, st->idem) && st->prior_request[0] &&
        strcmp(st->prior_request, st->msg.request.request_id) != 0) {
        st->unchanged = 1;
        done_unchanged(st, out);
        return;
    }
    if (st->url)
        post_event(st, out);
    else
        done(st, out);
}

static void connect_step(void *p, const ob_aws_result_t *res, ob_step_t *out)
{
    connect_st_t *st = p;
    if (st->msg.request.mode == OB_MODE_OFFBOARD && st->phase == C_START) {
        if (!st->prior_key[0] && !st->msg.removed_reports[0] && !st->msg.removed_stacks[0]) {
            nothing_to_disconnect(st, out);
            return;
        }
        if (!build_disconnected(st, out))
            return;
        if (st->url)
            post_event(st, out);
        else
            disconnected(st, out);
        return;
    }
    switch (st->phase) {
    case C_START:
    case C_DENIED:
        assume_call(st, out);
        return;
    case C_POST_WAIT:
        post_event(st, out);
        return;
    case C_POST:
        if (!res) {
            ob_step_fail(out, OB_DLQ_PERMANENT, "stage_error",
                         "the POST came back without a result");
            return;
        }
        post_result(st, res, out);
        return;
    case C_ASSUME:
        break;
    }
    if (!res) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "stage_error", "AssumeRole came back without a result");
        return;
    }
    if (res->err == OB_OK) {
        char why[512];
        if (!assume_reply_ok(st, res, why, sizeof(why))) {
            scrub(why, sizeof(why), st->msg.stack.external_id);
            ob_step_fail(out, OB_DLQ_RETRIES_EXHAUSTED, "unexpected_reply",
                         "STS AssumeRole on %s: %s", st->msg.stack.role_arn, why);
            return;
        }
        verified(st, out);
        return;
    }
    if (res->err == OB_ERR_AWS && !strcmp(res->aws.code, "AccessDenied")) {
        if (st->denied < st->retries) {
            /* Maybe IAM has not propagated the new role or trust yet. */
            st->denied++;
            st->phase = C_DENIED;
            memset(out, 0, sizeof(*out));
            out->kind = OB_STEP_WAIT;
            out->wait_ms = (uint64_t)st->retry_ms;
            return;
        }
        fail_denied(st, res, out);
        return;
    }
    /* Scrub the whole text before it is cut to the reason's size. */
    char msg[sizeof(res->errmsg)];
    snprintf(msg, sizeof(msg), "%s", res->errmsg);
    scrub(msg, sizeof(msg), st->msg.stack.external_id);
    ob_step_fail_aws(out, res);
    snprintf(out->message, sizeof(out->message), "%.*s", (int)sizeof(out->message) - 1, msg);
}

static void connect_clear(void *p)
{
    connect_st_t *st = p;
    ob_stage_msg_clear(&st->msg);
    free(st->event);
    free(st->spec);
    free(st->prior_role);
    free(st->prior_buckets);
    st->event = st->spec = st->prior_role = st->prior_buckets = NULL;
}

static void connect_prior(void *p, const char *(*get)(const void *ctx, const char *field),
                          const void *ctx)
{
    connect_st_t *st = p;
    snprintf(st->prior_key, sizeof(st->prior_key), "%s", get(ctx, OB_ST_IDEMPOTENCY_KEY));
    snprintf(st->prior_request, sizeof(st->prior_request), "%s", get(ctx, OB_ST_CONNECTED_REQUEST));
    if (st->msg.request.mode != OB_MODE_OFFBOARD)
        return;
    free(st->prior_role);
    free(st->prior_buckets);
    st->prior_role = ob_strdup(get(ctx, OB_ST_ROLE_ARN));
    char *b = ob_list_with(get(ctx, OB_ST_BUCKETS), get(ctx, OB_ST_BUCKET), 100);
    st->prior_buckets = b ? ob_list_with(b, get(ctx, OB_ST_OLD_BUCKETS), 100) : NULL;
    free(b);
}

static ob_err_t connect_reencode(void *p, char **json, size_t *len)
{
    ob_msg_error_t me;
    return ob_stage_to_json(&((const connect_st_t *)p)->msg, json, len, &me);
}

const ob_stage_ops_t ob_stage_connect = {
    .name = "connect",
    .stage = OB_STAGE_CONNECT,
    .input = "connect",
    .outputs = "connected",
    .state_size = sizeof(connect_st_t),
    .parse = connect_parse,
    .step = connect_step,
    .reencode = connect_reencode,
    .clear = connect_clear,
    .prior = connect_prior,
};
