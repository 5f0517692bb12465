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
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "ob_crypto.h"
#include "ob_httpd.h"
#include "ob_kafka.h"
#include "ob_log.h"
#include "ob_worker.h"
#include "sim.h"
#include "stages.h"

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

static ob_test_harness_t H;
static char billing_url[96];

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
    char acct[16], rid[32], extra[64] = "", req[1024];
    acct_of(i, acct);
    snprintf(rid, sizeof(rid), "r%d-%d", round, i);
    /* From round 4 on, another report (its prefix): a connection of its
     * own, announced with its own key. */
    if (round >= 4 && i % 3)
        snprintf(extra, sizeof(extra), ",\"report\":{\"prefix\":\"R%d\"}", round);
    ob_test_req_t rq = {.rid = rid,
                        .account = acct,
                        .mode = i % 3 ? "new" : "existing",
                        .region = region_of(i),
                        .extra = extra};
    ob_test_request_json(&H, &rq, req, sizeof(req));
    ob_stage_msg_t m;
    ob_test_handoff_init(&m, req, OB_STAGE_CONNECT);
    char role[128], stack[256], ext[OB_BE_EXT_ID_LEN];
    role_of(i, role);
    stack_of(i, stack);
    ext_of(i, i == WRONG_EXT ? "wrong" : "role", ext);
    ob_test_handoff_stack(&m, stack, role, ext);
    ob_test_handoff_trace(&m, OB_STAGE_IAM, "iam", NULL, NULL);
    return ob_test_handoff_json(&m);
}

static void produce_handoffs_to(const int *members, int n, int round, int32_t partition)
{
    ob_test_producer_t *p = ob_test_producer(&H);
    char acct[16];
    for (int k = 0; k < n; k++) {
        acct_of(members[k], acct);
        char *body = handoff(members[k], round);
        ob_test_send_to(p, "connect", partition, acct, body, NULL);
        free(body);
    }
    ob_test_producer_done(p);
}

static void produce_handoffs(const int *members, int n, int round)
{
    produce_handoffs_to(members, n, round, RD_KAFKA_PARTITION_UA);
}

/* Where partition 0 of the connect topic ends: the offset of its next message. */
static int64_t p0_end(void)
{
    ob_test_producer_t *p = ob_test_producer(&H);
    char topic[128];
    snprintf(topic, sizeof(topic), "%sconnect", H.prefix);
    int64_t lo = 0, hi = 0;
    assert_int_equal(
        rd_kafka_query_watermark_offsets(ob_kproducer_handle(p->p), topic, 0, &lo, &hi, 10000),
        RD_KAFKA_RESP_ERR_NO_ERROR);
    ob_test_producer_done(p);
    return hi;
}

/* ---- the Billing Engine ---- */

typedef struct billing_s {
    json_t *accepted; /* account -> [{"key":..,"body":..}] */
    int posts, answered_503, refused_400, bad;
    int flaky_done;
    char last_bad[256];
    int pause_redis;    /* round 4: pause Redis's writes on the next POST */
    uint64_t paused_at; /* loop time of that pause (0: none yet) */
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
    char want[OB_TEST_SIGNATURE_LEN];
    ob_test_billing_signature(SECRET, ts, req->body, req->body_len, want);
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
    if (b->pause_redis && !b->paused_at) {
        /* The event is accepted: the job's outcome is all that is left, and
         * Redis takes no write for the next 1.5 s. */
        redisReply *r = redisCommand(ob_test_redis(&H), "CLIENT PAUSE 1500 WRITE");
        assert_true(r && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
        b->paused_at = ob_loop_update_time(H.loop);
    }
    ob_hdrs_t h = {0};
    ob_hdrs_add(&h, "Content-Type", "application/json");
    ob_httpd_respond(conn, 202, &h, "{\"ok\":true}", 11);
    ob_hdrs_clear(&h);
}

/* ---- collecting the outputs ---- */

/* Round 4: each event, as it is seen, must be in the account's state. */
typedef struct watch_s {
    int on;
    int ahead;        /* events seen before their state said so */
    uint64_t seen_at; /* loop time the last event was seen */
} watch_t;

static void on_out(ob_test_out_t *o, const char *topic, const char *key,
                   const rd_kafka_message_t *m, void *arg)
{
    watch_t *wt = arg;
    if (!wt->on || strcmp(topic, "connected") != 0)
        return;
    /* Whoever sees the event must find it in the account's state. */
    ob_connected_t ev;
    ob_msg_error_t me;
    redisReply *r = redisCommand(ob_test_redis(&H), "HMGET ob:{%s}:state status request_id", key);
    assert_true(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    if (ob_connected_parse(m->payload, m->len, &ev, &me) != OB_OK ||
        r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "connected") != 0 ||
        r->element[1]->type != REDIS_REPLY_STRING || strcmp(r->element[1]->str, ev.request_id) != 0)
        wt->ahead++;
    ob_connected_clear(&ev);
    freeReplyObject(r);
    wt->seen_at = ob_loop_update_time(H.loop);
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
static void check_event(ob_test_out_t *out, billing_t *bill, int i, int round, int attempts)
{
    char acct[16], role[128], ext[OB_BE_EXT_ID_LEN], req_id[128], key[OB_IDEMPOTENCY_LEN];
    acct_of(i, acct);
    role_of(i, role);
    ext_of(i, "role", ext);
    snprintf(req_id, sizeof(req_id), "%sr%d-%d", H.prefix, round, i);
    size_t n = ob_test_out_count(out, "connected", acct);
    if (n != 1)
        fail_msg("account %s: %zu connected events", acct, n);
    const char *payload = json_string_value(ob_test_out_first(out, "connected", acct));
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

/* The dead letter of member i: its code, class and reason (parsed; the
 * caller releases it), never the secret nor an ExternalId. */
static json_t *check_dlq(ob_test_out_t *out, int i, const char *code, const char *cls)
{
    char acct[16];
    acct_of(i, acct);
    size_t n = ob_test_out_count(out, "dlq", acct);
    if (n != 1)
        fail_msg("account %s: %zu dead letters", acct, n);
    const char *text = json_string_value(ob_test_out_first(out, "dlq", acct));
    assert_null(strstr(text, SECRET));
    json_t *d = json_loads(text, 0, NULL);
    assert_non_null(d);
    ob_test_check_dlq(d, acct, "connect", cls, code, NULL);
    const char *msg = str_at(d, "error", "message");
    printf("dead letter %s: %s: %s\n", acct, code, msg);
    char ext[OB_BE_EXT_ID_LEN];
    ext_of(i, "role", ext);
    assert_null(strstr(msg, ext));
    ext_of(i, "wrong", ext);
    assert_null(strstr(msg, ext));
    return d;
}

/* ---- round 2: a role that IAM has not propagated yet ---- */

typedef struct late_s {
    sim_t *sim;
    ob_timer_t *t;
    long long base;
    int created;
} late_t;

/* Create the role once the first AssumeRole for it has been denied. */
static void late_poll(ob_timer_t *t, void *arg)
{
    late_t *l = arg;
    if (ob_test_sim_count(l->sim, "sts.AssumeRole") > l->base) {
        put_role(l->sim, LATE, FLEET);
        l->created = 1;
        return;
    }
    ob_timer_start(t, 2);
}

/* Forget what the collector kept of the connected topic (the dead letters
 * stay) and start counting accounts again. */
static void forget_connected(ob_test_out_t *out)
{
    json_object_clear(ob_test_out_map(out, "connected"));
    out->keys = 0;
}

static void test_connect_worker(void **state)
{
    sim_opts_t so = {.profile = "instant", .org_accounts = 30, .random_seed = 17};
    ob_test_begin(&H, &so);
    sim_t *sim = H.sim;
    for (int i = 1; i <= REFUSED; i++)
        put_role(sim, i, i == OTHER ? "arn:aws:iam::333333333333:root" : FLEET);

    billing_t bill;
    memset(&bill, 0, sizeof(bill));
    bill.accepted = json_object();
    char err[512];
    ob_httpd_t *httpd = ob_httpd_new(H.loop, NULL, billing_handler, &bill, err, sizeof(err));
    assert_non_null(httpd);
    snprintf(billing_url, sizeof(billing_url), "http://127.0.0.1:%d/billing/events",
             ob_httpd_port(httpd));

    /* A clean slate for these accounts' state (the database is this test's). */
    redisContext *rc = ob_test_redis(&H);
    for (int i = 1; i <= LATE; i++) {
        char acct[16];
        acct_of(i, acct);
        freeReplyObject(redisCommand(rc, "DEL ob:{%s}:state", acct));
    }

    int members[REFUSED];
    for (int i = 0; i < REFUSED; i++)
        members[i] = i + 1;
    produce_handoffs(members, REFUSED, 1);

    ob_worker_t *w = ob_test_worker(&H, &ob_stage_connect, "itest-connect", 5000);
    watch_t watch = {0};
    ob_test_out_opts_t oo = {.group = "collector",
                             .topics = {"connected", "dlq"},
                             .raw = 1, /* the very bytes, to compare with the Billing Engine's */
                             .on_message = on_out,
                             .arg = &watch};
    ob_test_out_t *out = ob_test_out_new(&H, &oo);
    json_t *connected = ob_test_out_map(out, "connected"), *dlq = ob_test_out_map(out, "dlq");

    /* Round 1: 20 connect, 3 dead letters. */
    int ok = ob_test_out_wait(out, REFUSED, 120000);
    ob_test_run_for(H.loop, 1500); /* anything extra would show up now */
    ob_worker_stats_t ws;
    ob_worker_get_stats(w, &ws);
    printf("round 1: %d accounts out; worker: received %llu, done %llu, dead letters %llu; "
           "Billing Engine: %d POSTs, %d answered 503, %d refused, %d bad\n",
           out->keys, (unsigned long long)ws.received, (unsigned long long)ws.done,
           (unsigned long long)ws.dead_letters, bill.posts, bill.answered_503, bill.refused_400,
           bill.bad);
    assert_true(ok);
    if (bill.bad)
        fail_msg("the Billing Engine refused %d POSTs: %s", bill.bad, bill.last_bad);
    assert_int_equal(json_object_size(connected), NOK);
    assert_int_equal(json_object_size(dlq), 3);
    for (int i = 1; i <= NOK; i++)
        check_event(out, &bill, i, 1, 1);
    assert_int_equal(json_object_size(bill.accepted), NOK);
    assert_int_equal(bill.answered_503, 1);
    assert_int_equal(bill.refused_400, 1);
    assert_int_equal(bill.posts, NOK + 1 + 1); /* + the 503 retried, + the refused one */

    json_t *d = check_dlq(out, WRONG_EXT, "AccessDenied", "permanent");
    assert_non_null(strstr(str_at(d, "error", "message"),
                           "does not trust the Billing Engine principal " FLEET
                           " with this ExternalId"));
    /* One stage attempt (a permanent failure is not retried), whose three
     * AssumeRole denials the reason counts. */
    assert_int_equal(json_integer_value(json_object_get(d, "attempts")), 1);
    json_decref(d);
    d = check_dlq(out, OTHER, "AccessDenied", "permanent");
    assert_int_equal(json_integer_value(json_object_get(d, "attempts")), 1);
    json_decref(d);
    d = check_dlq(out, REFUSED, "billing_refused", "permanent");
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
        ob_test_expect_state(&H, i, "stage", "connect");
        ob_test_expect_state(&H, i, "status", "connected");
        ob_test_expect_state(&H, i, "role_arn", role);
        char *at = ob_test_member_state(&H, i, "connected_at");
        assert_true(ob_msg_time_valid(at));
        free(at);
    }
    ob_test_expect_state(&H, WRONG_EXT, "status", "failed");
    ob_test_expect_state(&H, WRONG_EXT, "error_code", "AccessDenied");
    ob_test_expect_state(&H, REFUSED, "error_code", "billing_refused");

    /* Round 2: the role exists only after the first AssumeRole was denied. */
    json_object_clear(connected);
    json_object_clear(dlq);
    out->keys = 0;
    late_t late = {.sim = sim, .base = ob_test_sim_count(sim, "sts.AssumeRole")};
    late.t = ob_timer_new(H.loop, late_poll, &late);
    ob_timer_start(late.t, 2);
    int late_member[] = {LATE};
    produce_handoffs(late_member, 1, 2);
    assert_true(ob_test_out_wait(out, 1, 60000));
    assert_true(late.created);
    assert_int_equal(json_object_size(dlq), 0);
    check_event(out, &bill, LATE, 2, 2);
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
    forget_connected(out);
    int again[] = {1};
    ob_worker_stats_t before, after;
    /* The last round's events are seen before its state writes finish. */
    assert_true(ob_test_run_until(H.loop, ob_test_worker_idle, w, 30000));
    ob_worker_get_stats(w, &before);
    produce_handoffs(again, 1, 1);
    skipped_t sk = {w, before.skipped_done};
    assert_true(ob_test_run_until(H.loop, skipped_one, &sk, 60000));
    ob_worker_get_stats(w, &after);
    assert_int_equal(after.done, before.done);
    assert_int_equal(json_object_size(connected), 0);
    redisReply *rr = redisCommand(rc, "HSET ob:{%s}:state status replayed", acct1);
    assert_non_null(rr);
    freeReplyObject(rr);
    produce_handoffs(again, 1, 1);
    assert_true(ob_test_out_wait(out, 1, 60000));
    json_t *ev = json_loads(json_string_value(ob_test_out_first(out, "connected", acct1)), 0, NULL);
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
    assert_true(ob_test_run_until(H.loop, ob_test_worker_idle, w, 30000));
    forget_connected(out);
    watch.on = 1;
    bill.pause_redis = 1;
    int member2[] = {2};
    produce_handoffs(member2, 1, 4);
    assert_true(ob_test_out_wait(out, 1, 60000));
    printf("round 4: the event seen %llu ms after Redis stopped taking writes for 1500 ms\n",
           (unsigned long long)(watch.seen_at - bill.paused_at));
    assert_true(bill.paused_at > 0);
    assert_int_equal(watch.ahead, 0);
    assert_true(watch.seen_at >= bill.paused_at + 1400);
    char acct2[16];
    acct_of(2, acct2);
    assert_int_equal(ob_test_out_count(out, "connected", acct2), 1);
    assert_int_equal(json_array_size(json_object_get(bill.accepted, acct2)), 2); /* rounds 1, 4 */
    ob_test_expect_state(&H, 2, "status", "connected");
    watch.on = 0;
    bill.pause_redis = 0;

    /* Round 5: the state says connected for this very message (its outcome
     * was recorded, its transaction then aborted): done again. The same
     * hand-off sent once more (another message of the request) is skipped. */
    assert_true(ob_test_run_until(H.loop, ob_test_worker_idle, w, 30000));
    forget_connected(out);
    char acct3[16], rid3[128], input[256];
    acct_of(3, acct3);
    snprintf(rid3, sizeof(rid3), "%sr5-3", H.prefix);
    ob_worker_get_stats(w, &before);
    /* Written before the message exists: the worker may take it at once. */
    snprintf(input, sizeof(input), "%sconnect:0:%lld", H.prefix, (long long)p0_end());
    rr = redisCommand(rc,
                      "HSET ob:{%s}:state stage connect status connected request_id %s input %s "
                      "connected_request %s",
                      acct3, rid3, input, rid3);
    assert_non_null(rr);
    freeReplyObject(rr);
    int member3[] = {3};
    produce_handoffs_to(member3, 1, 5, 0);
    assert_true(ob_test_out_wait(out, 1, 60000));
    assert_int_equal(ob_test_out_count(out, "connected", acct3), 1);
    assert_int_equal(json_array_size(json_object_get(bill.accepted, acct3)), 2); /* rounds 1, 5 */
    assert_true(ob_test_run_until(H.loop, ob_test_worker_idle, w, 30000));
    ob_test_expect_state(&H, 3, "input", input);
    ob_worker_get_stats(w, &after);
    assert_int_equal(after.skipped_done, before.skipped_done);
    produce_handoffs_to(member3, 1, 5, 0);
    skipped_t sk5 = {w, after.skipped_done};
    assert_true(ob_test_run_until(H.loop, skipped_one, &sk5, 60000));
    ob_test_run_for(H.loop, 500);
    assert_int_equal(ob_test_out_count(out, "connected", acct3), 1);
    assert_int_equal(json_array_size(json_object_get(bill.accepted, acct3)), 2);

    assert_int_equal(ob_test_worker_stop(&H, w), OB_OK); /* the graceful shutdown */
    ob_httpd_free(httpd);
    ob_test_end(&H);
    json_decref(bill.accepted);
}

int main(void)
{
    ob_test_harness_init(&H, "itc");
    ob_test_set(&H, "OB_REDIS_DB", REDIS_DB);
    ob_test_set(&H, "OB_INFLIGHT_MAX", "8"); /* smaller than the batch */
    ob_test_set(&H, "OB_BILLING_PRINCIPAL", FLEET);
    ob_test_set(&H, "OB_BILLING_URL", billing_url);
    ob_test_set(&H, "OB_BILLING_SECRET", SECRET);
    ob_test_set(&H, "OB_CONNECT_RETRIES", "2");
    ob_test_set(&H, "OB_CONNECT_RETRY_WAIT", "100ms");
    ob_test_set(&H, "OB_AWS_MAX_BACKOFF", "200ms");
    ob_log_set_level(OB_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
