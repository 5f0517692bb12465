/*
 * The connect worker end to end against a real Kafka broker, a real Redis,
 * the AWS simulator and an in-process Billing Engine: roles made in member
 * accounts (each trusting the fleet's identity, arn:aws:iam::111111111111:root,
 * with its own ExternalId), connect-stage hand-offs produced to the connect
 * topic, and the real runtime (consumer group, window, per-account locks,
 * offsets) running ob_stage_connect. The receiver is an ob_httpd on a free
 * port that checks every POST as a Billing Engine must (signature over
 * timestamp "." body with the shared secret, timestamp within 5 minutes,
 * idempotency key = the event's) and answers 503 to the first POST of one
 * account, 400 to every POST of another.
 *
 * Round 1: exactly one connected event per good account, with the right
 * idempotency key, role and ExternalId, and the very bytes the receiver
 * accepted once each; dead letters for a wrong ExternalId, a role that
 * trusts someone else and the refused account, each with its reason (never
 * the ExternalId, never the secret); the state in Redis. Round 2: a role that
 * appears only after the first AssumeRole was denied (IAM's eventual
 * consistency) connects on the second try. Round 3: the same hand-off again
 * is skipped; replayed, it gives a second event with the same idempotency
 * key. Round 4: with Redis taking no writes once the Billing Engine has the
 * event, the event is not out before its state says so. Round 5: a message
 * that the state records as finished (its transaction aborted) is done
 * again; another message of the same request is still skipped.
 */
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ob_crypto.h"
#include "ob_httpd.h"
#include "ob_kafka.h"
#include "ob_log.h"
#include "ob_worker.h"
#include "sim.h"
#include "stages.h"
#include "testutil.h"

#define NOK       20 /* members 1..20 connect */
#define WRONG_EXT 21 /* the hand-off carries another ExternalId */
#define OTHER     22 /* the role trusts another principal */
#define REFUSED   23 /* the Billing Engine answers 400 */
#define LATE      24 /* round 2: the role appears after the first AssumeRole */
#define FLAKY     5  /* the first POST is answered 503 */
#define REDIS_DB  "9"
#define SECRET    "itest-billing-secret-0123456789"
#define FLEET     "arn:aws:iam::111111111111:root"
#define ROLE_NAME "BillingEngineReadOnly"

static const char *brokers;
static int redis_port;
static char prefix[64];
static char sim_url[64];
static char billing_url[96];

static const char *env_get(const char *name, void *ctx)
{
    static char port_s[16];
    const char *kv[][2] = {{"OB_TOPIC_PREFIX", prefix},
                           {"OB_REDIS_PORT", port_s},
                           {"OB_REDIS_DB", REDIS_DB},
                           {"OB_INFLIGHT_MAX", "8"}, /* smaller than the batch */
                           {"OB_BILLING_PRINCIPAL", FLEET},
                           {"OB_BILLING_URL", billing_url},
                           {"OB_BILLING_SECRET", SECRET},
                           {"OB_CONNECT_RETRIES", "2"},
                           {"OB_CONNECT_RETRY_WAIT", "100ms"},
                           {"OB_AWS_MAX_BACKOFF", "200ms"},
                           {NULL, NULL}};
    snprintf(port_s, sizeof(port_s), "%d", redis_port);
    const char *v = ob_test_kv_lookup(kv, name);
    return v ? v : ob_test_sim_env(name, sim_url);
}

static void kafka_defaults(ob_cfg_kv_t *kv)
{
    ob_test_kafka_defaults(kv, brokers);
}

/* ---- accounts ---- */

static void acct_of(int i, char out[16])
{
    ob_test_member_account(i, out);
}

static const char *region_of(int i)
{
    return i % 2 ? "eu-west-1" : "us-east-1";
}

/* The ExternalId the iam stage would have made for member i (32 hex). */
static void ext_of(int i, const char *salt, char out[OB_BE_EXT_ID_LEN])
{
    char seed[64], hex[OB_SHA256_HEX_LEN];
    snprintf(seed, sizeof(seed), "ext|%s|%d", salt, i);
    ob_sha256_hex(seed, strlen(seed), hex);
    snprintf(out, OB_BE_EXT_ID_LEN, "%.32s", hex);
}

static void role_of(int i, char out[128])
{
    char acct[16];
    acct_of(i, acct);
    snprintf(out, 128, "arn:aws:iam::%s:role/%s", acct, ROLE_NAME);
}

static void stack_of(int i, char out[256])
{
    char acct[16];
    acct_of(i, acct);
    snprintf(out, 256, "arn:aws:cloudformation:%s:%s:stack/billing-engine-access/%08d-cd98-11ea",
             region_of(i), acct, i);
}

/* The role the iam stage would have made: trusted by `principal` with the
 * member's ExternalId. */
static void put_role(sim_t *sim, int i, const char *principal)
{
    char acct[16], ext[OB_BE_EXT_ID_LEN], stack[256];
    acct_of(i, acct);
    ext_of(i, "role", ext);
    stack_of(i, stack);
    json_t *trust =
        json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:{s:{s:s}}}]}", "Version", "2012-10-17",
                  "Statement", "Effect", "Allow", "Principal", "AWS", principal, "Action",
                  "sts:AssumeRole", "Condition", "StringEquals", "sts:ExternalId", ext);
    sim_put_role(sim, acct, ROLE_NAME, "/", trust, stack);
}

/* A connect-stage hand-off for member i, built with the codec. */
static char *handoff(int i, int round)
{
    char acct[16], req[1024];
    acct_of(i, acct);
    snprintf(req, sizeof(req),
             "{\"schema\":\"onboard.request/1\",\"request_id\":\"%sr%d-%d\",\"account_id\":\"%s\","
             "\"cloud\":\"aws\",\"mode\":\"%s\",\"region\":\"%s\",\"role_arn\":"
             "\"arn:aws:iam::%s:role/OrganizationAccountAccessRole\"}",
             prefix, round, i, acct, i % 3 ? "new" : "existing", region_of(i), acct);
    if (round >= 4 && i % 3) {
        /* Another report (its prefix): a connection of its own, announced
         * with its own key. */
        size_t n = strlen(req);
        snprintf(req + n - 1, sizeof(req) - n + 1, ",\"report\":{\"prefix\":\"R%d\"}}", round);
    }
    ob_stage_msg_t m;
    ob_stage_msg_init(&m);
    ob_msg_error_t me;
    if (ob_request_parse(req, strlen(req), &m.request, &me) != OB_OK)
        fail_msg("request: %s", me.message);
    m.stage = OB_STAGE_CONNECT;
    if (m.request.mode == OB_MODE_NEW) {
        ob_stage_fill_bucket(&m);
        ob_stage_fill_report(&m);
    }
    m.has_stack = 1;
    char role[128], stack[256];
    role_of(i, role);
    stack_of(i, stack);
    m.stack.id = ob_request_printf(&m.request, "%s", stack);
    m.stack.name = ob_request_printf(&m.request, "billing-engine-access");
    m.stack.role_arn = ob_request_printf(&m.request, "%s", role);
    char ext[OB_BE_EXT_ID_LEN], now[OB_TIME_LEN];
    ext_of(i, i == WRONG_EXT ? "wrong" : "role", ext);
    m.stack.external_id = ob_request_str(&m.request, ext);
    ob_trace_t *t = &m.trace[OB_STAGE_IAM];
    t->present = 1;
    ob_msg_now(now);
    t->started_at = t->finished_at = ob_request_str(&m.request, now);
    t->attempts = 1;
    t->worker = ob_request_printf(&m.request, "iam");
    char *json = NULL;
    if (ob_stage_to_json(&m, &json, NULL, &me) != OB_OK)
        fail_msg("hand-off: %s", me.message);
    ob_stage_msg_clear(&m);
    return json;
}

static void produce_handoffs_to(ob_loop_t *loop, const int *members, int n, int round,
                                int32_t partition)
{
    ob_cfg_kv_t kv = {0};
    kafka_defaults(&kv);
    ob_kproducer_opts_t po = {.kafka = &kv};
    ob_kproducer_t *p = ob_kproducer_new(loop, &po, NULL, 0);
    assert_non_null(p);
    char topic[128], acct[16];
    snprintf(topic, sizeof(topic), "%sconnect", prefix);
    for (int k = 0; k < n; k++) {
        acct_of(members[k], acct);
        char *body = handoff(members[k], round);
        assert_int_equal(ob_kproducer_send(p, topic, partition, acct, strlen(acct), body,
                                           strlen(body), NULL, NULL, NULL, 0),
                         OB_OK);
        free(body);
    }
    assert_int_equal(ob_kproducer_flush(p, 30000), OB_OK);
    ob_kproducer_free(p);
    ob_cfg_kv_free(&kv);
}

static void produce_handoffs(ob_loop_t *loop, const int *members, int n, int round)
{
    produce_handoffs_to(loop, members, n, round, RD_KAFKA_PARTITION_UA);
}

/* Where partition 0 of the connect topic ends: the offset of its next message. */
static int64_t p0_end(ob_loop_t *loop)
{
    ob_cfg_kv_t kv = {0};
    kafka_defaults(&kv);
    ob_kproducer_opts_t po = {.kafka = &kv};
    ob_kproducer_t *p = ob_kproducer_new(loop, &po, NULL, 0);
    assert_non_null(p);
    char topic[128];
    snprintf(topic, sizeof(topic), "%sconnect", prefix);
    int64_t lo = 0, hi = 0;
    assert_int_equal(
        rd_kafka_query_watermark_offsets(ob_kproducer_handle(p), topic, 0, &lo, &hi, 10000),
        RD_KAFKA_RESP_ERR_NO_ERROR);
    ob_kproducer_free(p);
    ob_cfg_kv_free(&kv);
    return hi;
}

/* ---- the Billing Engine ---- */

typedef struct billing_s {
    json_t *accepted; /* account -> [{"key":..,"body":..}] */
    int posts, answered_503, refused_400, bad;
    int flaky_done;
    char last_bad[256];
    redisContext *pause_rc; /* round 4: pause Redis's writes on the next POST */
    uint64_t paused_at;     /* loop time of that pause (0: none yet) */
    ob_loop_t *loop;
} billing_t;

static void reject(billing_t *b, ob_httpd_conn_t *conn, int status, const char *why)
{
    b->bad++;
    snprintf(b->last_bad, sizeof(b->last_bad), "%s", why);
    ob_httpd_respond(conn, status, NULL, why, strlen(why));
}

/* What a Billing Engine does with a POST: verify, refuse replays, record. */
static void billing_handler(ob_httpd_conn_t *conn, const ob_httpd_req_t *req, void *arg)
{
    billing_t *b = arg;
    b->posts++;
    const char *ctype = ob_hdrs_get(req->headers, "Content-Type");
    const char *ts = ob_hdrs_get(req->headers, "X-Onboard-Timestamp");
    const char *key = ob_hdrs_get(req->headers, "X-Onboard-Idempotency-Key");
    const char *sig = ob_hdrs_get(req->headers, "X-Onboard-Signature");
    if (strcmp(req->method, "POST") != 0 || strcmp(req->path, "/billing/events") != 0) {
        reject(b, conn, 404, "not here");
        return;
    }
    if (!ctype || strcmp(ctype, "application/json") != 0 || !ts || !key || !sig) {
        reject(b, conn, 400, "missing headers");
        return;
    }
    long long t = atoll(ts), now = (long long)time(NULL);
    if (t < now - 300 || t > now + 300) {
        reject(b, conn, 401, "stale timestamp");
        return;
    }
    ob_buf_t text = {0};
    ob_buf_printf(&text, "%s.", ts);
    ob_buf_append(&text, req->body, req->body_len);
    uint8_t mac[OB_SHA256_LEN];
    char hex[OB_SHA256_HEX_LEN], want[80];
    ob_hmac_sha256(SECRET, strlen(SECRET), text.data, text.len, mac);
    ob_hex(mac, sizeof(mac), hex);
    snprintf(want, sizeof(want), "v1=%s", hex);
    ob_buf_free(&text);
    if (strlen(sig) != strlen(want) || ob_ct_memcmp(sig, want, strlen(want)) != 0) {
        reject(b, conn, 401, "bad signature");
        return;
    }
    ob_connected_t c;
    ob_msg_error_t me;
    if (ob_connected_parse(req->body, req->body_len, &c, &me) != OB_OK ||
        strcmp(c.idempotency_key, key) != 0) {
        ob_connected_clear(&c);
        reject(b, conn, 400, "not an onboard.connected/1 event with this key");
        return;
    }
    char acct[16];
    acct_of(REFUSED, acct);
    if (!strcmp(c.account_id, acct)) {
        ob_connected_clear(&c);
        b->refused_400++;
        const char *no = "{\"error\":\"account is closed for billing\"}";
        ob_httpd_respond(conn, 400, NULL, no, strlen(no));
        return;
    }
    acct_of(FLAKY, acct);
    if (!strcmp(c.account_id, acct) && !b->flaky_done) {
        ob_connected_clear(&c);
        b->flaky_done = 1;
        b->answered_503++;
        ob_httpd_respond(conn, 503, NULL, "busy", 4);
        return;
    }
    json_t *arr = json_object_get(b->accepted, c.account_id);
    if (!arr) {
        arr = json_array();
        json_object_set_new(b->accepted, c.account_id, arr);
    }
    json_array_append_new(arr,
                          json_pack("{s:s, s:s%}", "key", key, "body", req->body, req->body_len));
    ob_connected_clear(&c);
    if (b->pause_rc && !b->paused_at) {
        /* The event is accepted: the job's outcome is all that is left, and
         * Redis takes no write for the next 1.5 s. */
        redisReply *r = redisCommand(b->pause_rc, "CLIENT PAUSE 1500 WRITE");
        assert_true(r && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
        b->paused_at = ob_loop_update_time(b->loop);
    }
    ob_hdrs_t h = {0};
    ob_hdrs_add(&h, "Content-Type", "application/json");
    ob_httpd_respond(conn, 202, &h, "{\"ok\":true}", 11);
    ob_hdrs_clear(&h);
}

/* ---- collecting the outputs ---- */

typedef struct seen_s {
    json_t *connected, *dlq; /* account -> array of payload strings */
    int total;               /* accounts seen */
    redisContext *rc;        /* round 4: the account's state, read as each event is seen */
    int ahead;               /* events seen before their state said so */
    uint64_t seen_at;        /* loop time the last event was seen */
    ob_loop_t *loop;
} seen_t;

static void on_out(ob_kconsumer_t *c, const rd_kafka_message_t *m, void *arg)
{
    seen_t *s = arg;
    const char *t = rd_kafka_topic_name(m->rkt) + strlen(prefix);
    json_t *bucket = !strcmp(t, "connected") ? s->connected : s->dlq;
    char key[64];
    snprintf(key, sizeof(key), "%.*s", (int)m->key_len, m->key ? (const char *)m->key : "");
    json_t *arr = json_object_get(bucket, key);
    if (!arr) {
        arr = json_array();
        json_object_set_new(bucket, key, arr);
        s->total++;
    }
    json_array_append_new(arr, json_stringn(m->payload, m->len));
    ob_kconsumer_store(c, rd_kafka_topic_name(m->rkt), m->partition, m->offset + 1);
    if (s->rc && bucket == s->connected) {
        /* Whoever sees the event must find it in the account's state. */
        ob_connected_t ev;
        ob_msg_error_t me;
        redisReply *r = redisCommand(s->rc, "HMGET ob:{%s}:state status request_id", key);
        assert_true(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
        if (ob_connected_parse(m->payload, m->len, &ev, &me) != OB_OK ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            strcmp(r->element[0]->str, "connected") != 0 ||
            r->element[1]->type != REDIS_REPLY_STRING ||
            strcmp(r->element[1]->str, ev.request_id) != 0)
            s->ahead++;
        ob_connected_clear(&ev);
        freeReplyObject(r);
        s->seen_at = ob_loop_update_time(s->loop);
    }
}

typedef struct want_s {
    seen_t *s;
    int n;
} want_t;

static int got_all(void *arg)
{
    want_t *w = arg;
    return w->s->total >= w->n;
}

static int never(void *arg)
{
    return 0;
}

static const char *str_at(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    return json_string_value(b ? json_object_get(v, b) : v);
}

typedef struct skipped_s {
    ob_worker_t *w;
    uint64_t base;
} skipped_t;

static int skipped_one(void *arg)
{
    skipped_t *s = arg;
    ob_worker_stats_t st;
    ob_worker_get_stats(s->w, &st);
    return st.skipped_done > s->base && st.inflight == 0;
}

/* The one connected event of member i (parsed), checked against what went in. */
static void check_event(seen_t *seen, billing_t *bill, int i, int round, int attempts)
{
    char acct[16], role[128], ext[OB_BE_EXT_ID_LEN], req_id[128], key[OB_IDEMPOTENCY_LEN];
    acct_of(i, acct);
    role_of(i, role);
    ext_of(i, "role", ext);
    snprintf(req_id, sizeof(req_id), "%sr%d-%d", prefix, round, i);
    json_t *arr = json_object_get(seen->connected, acct);
    if (json_array_size(arr) != 1)
        fail_msg("account %s: %zu connected events", acct, json_array_size(arr));
    const char *payload = json_string_value(json_array_get(arr, 0));
    ob_connected_t c;
    ob_msg_error_t me;
    if (ob_connected_parse(payload, strlen(payload), &c, &me) != OB_OK)
        fail_msg("account %s: %s", acct, me.message);
    /* The key names the connection: the member's role, its ExternalId and
     * the report the hand-off carried. */
    ob_connected_key(acct, role, ext, c.has_report ? &c.report : NULL, key);
    assert_string_equal(c.idempotency_key, key);
    assert_string_equal(c.role_arn, role);
    assert_string_equal(c.external_id, ext);
    assert_string_equal(c.request_id, req_id);
    assert_int_equal(c.mode, i % 3 ? OB_MODE_NEW : OB_MODE_EXISTING);
    assert_int_equal(c.trace[OB_STAGE_CONNECT].attempts, attempts);
    /* The Billing Engine got the very same bytes, once, under the same key. */
    json_t *got = json_object_get(bill->accepted, acct);
    if (json_array_size(got) != 1)
        fail_msg("account %s: the Billing Engine got %zu events", acct, json_array_size(got));
    assert_string_equal(str_at(json_array_get(got, 0), "key", NULL), key);
    assert_string_equal(str_at(json_array_get(got, 0), "body", NULL), payload);
    ob_connected_clear(&c);
}

/* The dead letter of member i: its code, class and reason. */
static json_t *check_dlq(seen_t *seen, int i, const char *code, const char *cls)
{
    char acct[16];
    acct_of(i, acct);
    json_t *arr = json_object_get(seen->dlq, acct);
    if (json_array_size(arr) != 1)
        fail_msg("account %s: %zu dead letters", acct, json_array_size(arr));
    const char *text = json_string_value(json_array_get(arr, 0));
    assert_null(strstr(text, SECRET));
    json_t *d = json_loads(text, 0, NULL);
    assert_non_null(d);
    assert_string_equal(str_at(d, "error", "code"), code);
    assert_string_equal(str_at(d, "error", "class"), cls);
    const char *msg = str_at(d, "error", "message");
    printf("dead letter %s: %s: %s\n", acct, code, msg);
    char ext[OB_BE_EXT_ID_LEN];
    ext_of(i, "role", ext);
    assert_null(strstr(msg, ext));
    ext_of(i, "wrong", ext);
    assert_null(strstr(msg, ext));
    assert_string_equal(str_at(d, "stage", NULL), "connect");
    return d;
}

/* ---- Redis state ---- */

static char *state_get(redisContext *rc, int i, const char *field)
{
    char acct[16];
    acct_of(i, acct);
    redisReply *r = redisCommand(rc, "HGET ob:{%s}:state %s", acct, field);
    assert_non_null(r);
    char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : strdup("");
    freeReplyObject(r);
    return v;
}

static void expect_state(redisContext *rc, int i, const char *field, const char *want)
{
    char *v = state_get(rc, i, field);
    if (strcmp(v, want) != 0)
        fail_msg("state of member %d: %s is \"%s\", want \"%s\"", i, field, v, want);
    free(v);
}

/* ---- round 2: a role that IAM has not propagated yet ---- */

typedef struct late_s {
    sim_t *sim;
    ob_timer_t *t;
    long long base;
    int created;
} late_t;

static long long assume_count(sim_t *sim)
{
    return json_integer_value(json_object_get(sim_section(sim, "counts"), "sts.AssumeRole"));
}

/* Create the role once the first AssumeRole for it has been denied. */
static void late_poll(ob_timer_t *t, void *arg)
{
    late_t *l = arg;
    if (assume_count(l->sim) > l->base) {
        put_role(l->sim, LATE, FLEET);
        l->created = 1;
        return;
    }
    ob_timer_start(t, 2);
}

static void test_connect_worker(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    char err[512];
    sim_opts_t so = {.profile = "instant", .org_accounts = 30, .random_seed = 17};
    sim_t *sim = sim_new(loop, &so, err, sizeof(err));
    assert_non_null(sim);
    snprintf(sim_url, sizeof(sim_url), "http://127.0.0.1:%d", sim_port(sim));
    for (int i = 1; i <= REFUSED; i++)
        put_role(sim, i, i == OTHER ? "arn:aws:iam::333333333333:root" : FLEET);

    billing_t bill;
    memset(&bill, 0, sizeof(bill));
    bill.accepted = json_object();
    ob_httpd_t *httpd = ob_httpd_new(loop, NULL, billing_handler, &bill, err, sizeof(err));
    assert_non_null(httpd);
    snprintf(billing_url, sizeof(billing_url), "http://127.0.0.1:%d/billing/events",
             ob_httpd_port(httpd));

    /* A clean slate for these accounts' state (the database is this test's). */
    redisContext *rc = redisConnect("127.0.0.1", redis_port);
    assert_true(rc && !rc->err);
    freeReplyObject(redisCommand(rc, "SELECT %s", REDIS_DB));
    for (int i = 1; i <= LATE; i++) {
        char acct[16];
        acct_of(i, acct);
        freeReplyObject(redisCommand(rc, "DEL ob:{%s}:state", acct));
    }

    int members[REFUSED];
    for (int i = 0; i < REFUSED; i++)
        members[i] = i + 1;
    produce_handoffs(loop, members, REFUSED, 1);

    ob_config_t cfg;
    assert_int_equal(ob_config_load(&cfg, NULL, env_get, NULL, err, sizeof(err)), OB_OK);
    kafka_defaults(&cfg.kafka);
    ob_worker_opts_t wo = {.stage = &ob_stage_connect,
                           .config = &cfg,
                           .name = "itest-connect",
                           .lock_ttl_ms = 10000,
                           .shutdown_ms = 5000,
                           .getenv_fn = env_get};
    ob_worker_t *w = ob_worker_new(loop, &wo, err, sizeof(err));
    if (!w)
        fail_msg("worker: %s", err);

    seen_t seen = {.connected = json_object(), .dlq = json_object()};
    ob_cfg_kv_t kv = {0};
    kafka_defaults(&kv);
    char tc[128], td[128], group[160];
    snprintf(tc, sizeof(tc), "%sconnected", prefix);
    snprintf(td, sizeof(td), "%sdlq", prefix);
    snprintf(group, sizeof(group), "%scollector", prefix);
    const char *topics[] = {tc, td};
    ob_kconsumer_opts_t co = {.group_id = group,
                              .topics = topics,
                              .ntopics = 2,
                              .kafka = &kv,
                              .on_message = on_out,
                              .arg = &seen};
    ob_kconsumer_t *collector = ob_kconsumer_new(loop, &co, err, sizeof(err));
    assert_non_null(collector);

    /* Round 1: 20 connect, 3 dead letters. */
    want_t want = {&seen, REFUSED};
    int ok = ob_test_run_until(loop, got_all, &want, 120000);
    ob_test_run_until(loop, never, NULL, 1500); /* anything extra would show up now */
    ob_worker_stats_t ws;
    ob_worker_get_stats(w, &ws);
    printf("round 1: %d accounts out; worker: received %llu, done %llu, dead letters %llu; "
           "Billing Engine: %d POSTs, %d answered 503, %d refused, %d bad\n",
           seen.total, (unsigned long long)ws.received, (unsigned long long)ws.done,
           (unsigned long long)ws.dead_letters, bill.posts, bill.answered_503, bill.refused_400,
           bill.bad);
    assert_true(ok);
    if (bill.bad)
        fail_msg("the Billing Engine refused %d POSTs: %s", bill.bad, bill.last_bad);
    assert_int_equal(json_object_size(seen.connected), NOK);
    assert_int_equal(json_object_size(seen.dlq), 3);
    for (int i = 1; i <= NOK; i++)
        check_event(&seen, &bill, i, 1, 1);
    assert_int_equal(json_object_size(bill.accepted), NOK);
    assert_int_equal(bill.answered_503, 1);
    assert_int_equal(bill.refused_400, 1);
    assert_int_equal(bill.posts, NOK + 1 + 1); /* + the 503 retried, + the refused one */

    json_t *d = check_dlq(&seen, WRONG_EXT, "AccessDenied", "permanent");
    assert_non_null(strstr(str_at(d, "error", "message"),
                           "does not trust the Billing Engine principal " FLEET
                           " with this ExternalId"));
    /* One stage attempt (a permanent failure is not retried), whose three
     * AssumeRole denials the reason counts. */
    assert_int_equal(json_integer_value(json_object_get(d, "attempts")), 1);
    json_decref(d);
    d = check_dlq(&seen, OTHER, "AccessDenied", "permanent");
    assert_int_equal(json_integer_value(json_object_get(d, "attempts")), 1);
    json_decref(d);
    d = check_dlq(&seen, REFUSED, "billing_refused", "permanent");
    assert_non_null(strstr(str_at(d, "error", "message"),
                           "refused the event: HTTP 400: {\"error\":\"account is closed for "
                           "billing\"}"));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(d, "error"), "http_status")), 400);
    json_decref(d);

    /* The account state says so. */
    for (int i = 1; i <= NOK; i++) {
        char role[128];
        role_of(i, role);
        expect_state(rc, i, "stage", "connect");
        expect_state(rc, i, "status", "connected");
        expect_state(rc, i, "role_arn", role);
        char *at = state_get(rc, i, "connected_at");
        assert_true(ob_msg_time_valid(at));
        free(at);
    }
    expect_state(rc, WRONG_EXT, "status", "failed");
    expect_state(rc, WRONG_EXT, "error_code", "AccessDenied");
    expect_state(rc, REFUSED, "error_code", "billing_refused");

    /* Round 2: the role exists only after the first AssumeRole was denied. */
    json_object_clear(seen.connected);
    json_object_clear(seen.dlq);
    seen.total = 0;
    late_t late = {.sim = sim, .base = assume_count(sim)};
    late.t = ob_timer_new(loop, late_poll, &late);
    ob_timer_start(late.t, 2);
    int late_member[] = {LATE};
    produce_handoffs(loop, late_member, 1, 2);
    want.n = 1;
    assert_true(ob_test_run_until(loop, got_all, &want, 60000));
    assert_true(late.created);
    assert_int_equal(json_object_size(seen.dlq), 0);
    check_event(&seen, &bill, LATE, 2, 2);
    ob_timer_free(late.t);

    /* Round 3: the same hand-off again is a redelivery of finished work:
     * skipped (the state says connected), no second POST. Replayed (the
     * state reset as onboardctl replay does), it is done again: a second
     * event with the same key. */
    char acct1[16], key1[OB_IDEMPOTENCY_LEN], role1[128];
    acct_of(1, acct1);
    role_of(1, role1);
    char ext1[OB_BE_EXT_ID_LEN];
    ext_of(1, "role", ext1);
    char bucket1[OB_BUCKET_LEN];
    snprintf(bucket1, sizeof(bucket1), "billing-cur-%s-%s", acct1, region_of(1));
    ob_report_result_t rep1 = {
        .name = "billing-engine-cur", .bucket = bucket1, .prefix = "CUR", .region = region_of(1)};
    ob_connected_key(acct1, role1, ext1, &rep1, key1);
    json_object_clear(seen.connected);
    seen.total = 0;
    int again[] = {1};
    ob_worker_stats_t before, after;
    /* The last round's events are seen before its state writes finish. */
    assert_true(ob_test_run_until(loop, ob_test_worker_idle, w, 30000));
    ob_worker_get_stats(w, &before);
    produce_handoffs(loop, again, 1, 1);
    skipped_t sk = {w, before.skipped_done};
    assert_true(ob_test_run_until(loop, skipped_one, &sk, 60000));
    ob_worker_get_stats(w, &after);
    assert_int_equal(after.done, before.done);
    assert_int_equal(json_object_size(seen.connected), 0);
    redisReply *rr = redisCommand(rc, "HSET ob:{%s}:state status replayed", acct1);
    assert_non_null(rr);
    freeReplyObject(rr);
    produce_handoffs(loop, again, 1, 1);
    assert_true(ob_test_run_until(loop, got_all, &want, 60000));
    json_t *ev = json_loads(
        json_string_value(json_array_get(json_object_get(seen.connected, acct1), 0)), 0, NULL);
    assert_string_equal(str_at(ev, "idempotency_key", NULL), key1);
    json_decref(ev);
    json_t *got = json_object_get(bill.accepted, acct1);
    assert_int_equal(json_array_size(got), 2);
    assert_string_equal(str_at(json_array_get(got, 1), "key", NULL), key1);
    assert_int_equal(bill.bad, 0);

    /* Round 4: the outcome is recorded before the event is out. Redis
     * takes no write for 1.5 s from the moment the Billing Engine accepts
     * the event: the event must not be seen before that, nor before the
     * account's state names its request (a worker killed between an event
     * committed and its state written would leave the state behind for
     * good). */
    assert_true(ob_test_run_until(loop, ob_test_worker_idle, w, 30000));
    json_object_clear(seen.connected);
    seen.total = 0;
    seen.rc = rc;
    seen.loop = loop;
    bill.pause_rc = rc;
    bill.loop = loop;
    int member2[] = {2};
    produce_handoffs(loop, member2, 1, 4);
    assert_true(ob_test_run_until(loop, got_all, &want, 60000));
    printf("round 4: the event seen %llu ms after Redis stopped taking writes for 1500 ms\n",
           (unsigned long long)(seen.seen_at - bill.paused_at));
    assert_true(bill.paused_at > 0);
    assert_int_equal(seen.ahead, 0);
    assert_true(seen.seen_at >= bill.paused_at + 1400);
    char acct2[16];
    acct_of(2, acct2);
    assert_int_equal(json_array_size(json_object_get(seen.connected, acct2)), 1);
    assert_int_equal(json_array_size(json_object_get(bill.accepted, acct2)), 2); /* rounds 1, 4 */
    expect_state(rc, 2, "status", "connected");
    seen.rc = NULL;
    bill.pause_rc = NULL;

    /* Round 5: the state says connected for this very message (its outcome
     * was recorded, its transaction then aborted): done again. The same
     * hand-off sent once more (another message of the request) is skipped. */
    assert_true(ob_test_run_until(loop, ob_test_worker_idle, w, 30000));
    json_object_clear(seen.connected);
    seen.total = 0;
    char acct3[16], rid3[128], input[256];
    acct_of(3, acct3);
    snprintf(rid3, sizeof(rid3), "%sr5-3", prefix);
    ob_worker_get_stats(w, &before);
    char topic_in[128];
    snprintf(topic_in, sizeof(topic_in), "%sconnect", prefix);
    /* Written before the message exists: the worker may take it at once. */
    snprintf(input, sizeof(input), "%s:0:%lld", topic_in, (long long)p0_end(loop));
    rr = redisCommand(rc,
                      "HSET ob:{%s}:state stage connect status connected request_id %s input %s "
                      "connected_request %s",
                      acct3, rid3, input, rid3);
    assert_non_null(rr);
    freeReplyObject(rr);
    int member3[] = {3};
    produce_handoffs_to(loop, member3, 1, 5, 0);
    assert_true(ob_test_run_until(loop, got_all, &want, 60000));
    assert_int_equal(json_array_size(json_object_get(seen.connected, acct3)), 1);
    assert_int_equal(json_array_size(json_object_get(bill.accepted, acct3)), 2); /* rounds 1, 5 */
    assert_true(ob_test_run_until(loop, ob_test_worker_idle, w, 30000));
    expect_state(rc, 3, "input", input);
    ob_worker_get_stats(w, &after);
    assert_int_equal(after.skipped_done, before.skipped_done);
    produce_handoffs_to(loop, member3, 1, 5, 0);
    skipped_t sk5 = {w, after.skipped_done};
    assert_true(ob_test_run_until(loop, skipped_one, &sk5, 60000));
    ob_test_run_until(loop, never, NULL, 500);
    assert_int_equal(json_array_size(json_object_get(seen.connected, acct3)), 1);
    assert_int_equal(json_array_size(json_object_get(bill.accepted, acct3)), 2);

    redisFree(rc);
    ob_kconsumer_close(collector);
    ob_kconsumer_free(collector);
    ob_worker_stop(w);
    assert_int_equal(ob_worker_run(w), OB_OK); /* returns at once: the graceful shutdown */
    ob_worker_free(w);
    ob_httpd_free(httpd);
    ob_cfg_kv_free(&kv);
    json_decref(seen.connected);
    json_decref(seen.dlq);
    json_decref(bill.accepted);
    sim_free(sim);
    ob_config_free(&cfg);
    ob_loop_free(loop);
}

int main(void)
{
    brokers = ob_test_service_env("OB_TEST_KAFKA_BROKERS", "an Apache Kafka broker");
    redis_port = atoi(ob_test_service_env("OB_TEST_REDIS_PORT", "redis-server"));
    snprintf(prefix, sizeof(prefix), "itc%ld%d.", (long)time(NULL) % 100000, (int)getpid());
    ob_log_set_level(OB_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
