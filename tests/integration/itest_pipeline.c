/*
 * The whole pipeline end to end against a real Kafka broker, a real Redis and
 * the AWS simulator: the four stage workers (the real runtime, in this
 * process, on one loop) onboard a mixed batch — new and existing accounts, bad
 * input, good requests under a Kafka key that is not their account (or none),
 * members the organization has suspended, an existing account without a
 * Cost and Usage Report (the others' reports named in their events),
 * a role that does not exist, a bucket name someone else owns — and the
 * test checks what a Billing Engine and an auditor would: exactly one
 * connected event per account (after deduplication by its idempotency key;
 * raw duplicates are counted and printed), every resource exactly once in the
 * simulator with the right settings, each role trusting the Billing Engine
 * with the event's ExternalId, and a dead letter with the right reason for
 * every request meant to fail. Run once with one replica of every worker and
 * once with two.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ob_kafka.h"
#include "ob_log.h"
#include "ob_session.h"
#include "ob_worker.h"
#include "sim.h"
#include "stages.h"

#define NNEW      240
#define NEXISTING 40
#define TAKEN     5                      /* asks for a bucket name member 59 owns */
#define NOROLE    9                      /* its role does not exist */
#define MISKEYED  (NNEW + NEXISTING + 1) /* a good request under another Kafka key */
#define UNKEYED   (NNEW + NEXISTING + 2) /* a good request with no key */
#define OUTSIDE   350                    /* not in the organization (it has 300 members) */
#define NOCUR     (NNEW + 2)             /* existing, but without a Cost and Usage Report */
#define MGMT_ROOT "arn:aws:iam::111111111111:root"

static ob_test_harness_t H;

static void acct_id(int i, char out[16])
{
    ob_test_member_account(i, out);
}

/* What an auditor makes of the events: one per connection. */
typedef struct out_s {
    json_t *connected; /* idempotency key -> event (the first seen) */
    ob_test_out_t *o;  /* the topics as read */
} out_t;

static void on_event(ob_test_out_t *o, const char *topic, const char *key,
                     const rd_kafka_message_t *m, void *arg)
{
    out_t *out = arg;
    if (strcmp(topic, "connected") != 0)
        return;
    json_t *ev = ob_test_out_last(o, topic, key);
    const char *k = json_string_value(json_object_get(ev, "idempotency_key"));
    if (k && !json_object_get(out->connected, k))
        json_object_set(out->connected, k, ev);
}

/* Accounts done: connected (one per idempotency key) or dead-lettered (one
 * per Kafka key). */
static int accounts_done(const out_t *out)
{
    return (int)(json_object_size(out->connected) +
                 json_object_size(ob_test_out_map(out->o, "dlq")));
}

typedef struct want_s {
    out_t *o;
    int n;
} want_t;

static int got_all(void *arg)
{
    want_t *w = arg;
    return accounts_done(w->o) >= w->n;
}

static void produce(void)
{
    ob_test_producer_t *p = ob_test_producer(&H);
    char acct[16], rid[32], body[1024];
    for (int i = 1; i <= NNEW + NEXISTING; i++) {
        acct_id(i, acct);
        snprintf(rid, sizeof(rid), "req-%d", i);
        ob_test_req_t rq = {.rid = rid,
                            .account = acct,
                            .mode = i > NNEW ? "existing" : "new",
                            .region = i % 2 ? "eu-west-1" : "us-east-1",
                            .role = i == NOROLE ? "NoSuchRole" : NULL,
                            .extra = i == TAKEN ? ",\"bucket\":{\"name\":\"owned-by-member-59\"}"
                                                : NULL};
        ob_test_send_request(p, &rq);
    }
    for (int i = MISKEYED; i <= UNKEYED; i++) {
        acct_id(i, acct);
        snprintf(rid, sizeof(rid), "req-%d", i);
        ob_test_req_t rq = {.rid = rid, .account = acct};
        ob_test_request_json(&H, &rq, body, sizeof(body));
        ob_test_send(p, "requests", i == MISKEYED ? "not-the-account" : NULL, body);
    }
    acct_id(OUTSIDE, acct);
    ob_test_req_t out = {.rid = "req-out", .account = acct, .mode = "existing"};
    ob_test_send_request(p, &out);
    ob_test_send(p, "requests", "bad", "{\"schema\":\"onboard.request/1\",\"account_id\":\"oops");
    ob_test_producer_done(p);
}

/* The dead letter of member i: its stage, class and code, and its reason
 * naming `says` (NULL: not checked). */
static json_t *expect_dlq(out_t *o, int i, const char *stage, const char *cls, const char *code,
                          const char *says)
{
    char a[16];
    acct_id(i, a);
    return ob_test_expect_dlq(o->o, a, stage, cls, code, says);
}

static void run_pipeline(int replicas)
{
    char tag[16];
    snprintf(tag, sizeof(tag), "itp%d-", replicas);
    ob_test_new_prefix(&H, tag);
    const char *lat[] = {"cloudformation.stack_create=300ms", "cloudformation.stack_update=300ms",
                         "cloudformation.stack_delete=200ms", NULL};
    sim_opts_t so = {.profile = "instant", .org_accounts = 300, .random_seed = 5, .latency = lat};
    ob_test_begin(&H, &so);
    sim_t *sim = H.sim;
    ob_test_forget_members(H.redis_port, 1, so.org_accounts);
    /* Existing accounts already have a Cost and Usage Report. */
    for (int i = NNEW + 1; i <= NNEW + NEXISTING; i++) {
        if (i == NOCUR || i % 50 == 0)
            continue;
        char acct[16], bucket[64];
        acct_id(i, acct);
        snprintf(bucket, sizeof(bucket), "cur-of-%s", acct);
        ob_test_seed_report(sim, acct, "their-own-cur", bucket, "eu-central-1");
    }
    json_object_set_new(
        sim_section(sim, "buckets"), "owned-by-member-59",
        json_pack("{s:s, s:s, s:i}", "owner", "200000000059", "region", "eu-west-1", "created", 0));
    produce();

    const ob_stage_ops_t *stages[] = {&ob_stage_bucket, &ob_stage_cur, &ob_stage_iam,
                                      &ob_stage_connect};
    ob_worker_t *workers[8];
    int nw = 0;
    for (int r = 0; r < replicas; r++)
        for (int s = 0; s < 4; s++)
            workers[nw++] = ob_test_worker(&H, stages[s], NULL, 5000);

    out_t out = {json_object(), NULL};
    ob_test_out_opts_t oo = {
        .group = "auditor", .topics = {"connected", "dlq"}, .on_message = on_event, .arg = &out};
    out.o = ob_test_out_new(&H, &oo);

    /* TAKEN and NOROLE fail, and the members the organization has
     * SUSPENDED (every 50th) are refused at intake. */
    int suspended = (NNEW + NEXISTING) / 50;
    int expect_connected = NNEW + NEXISTING - 3 - suspended;
    want_t want = {&out, expect_connected + 7 + suspended};
    uint64_t t0 = ob_loop_update_time(H.loop);
    int ok = ob_test_run_until(H.loop, got_all, &want, 240000);
    uint64_t took = ob_loop_update_time(H.loop) - t0;
    printf("%d replica(s): %zu accounts connected, %zu dead letters, %d raw connected events "
           "(%d duplicates) in %.1f s\n",
           replicas, json_object_size(out.connected),
           json_object_size(ob_test_out_map(out.o, "dlq")), ob_test_out_seen(out.o, "connected"),
           ob_test_out_seen(out.o, "connected") - (int)json_object_size(out.connected),
           (double)took / 1000.0);
    if (!ok) {
        /* Where the work stands, to tell a stalled worker from a stalled reader. */
        printf("auditor received %llu messages\n",
               (unsigned long long)ob_kconsumer_received(out.o->c));
        for (int i = 0; i < nw; i++) {
            ob_worker_stats_t st;
            ob_worker_get_stats(workers[i], &st);
            printf("worker %d (%s): received %llu, done %llu, dead letters %llu, skipped %llu, "
                   "lock busy %llu, redis errors %llu, in flight %zu (new %zu, queued %zu, "
                   "locking %zu, running %zu, emitting %zu, finishing %zu), paused %d\n",
                   i, stages[i % 4]->name, (unsigned long long)st.received,
                   (unsigned long long)st.done, (unsigned long long)st.dead_letters,
                   (unsigned long long)st.skipped_done,
                   (unsigned long long)st.redelivered_lock_busy,
                   (unsigned long long)st.redis_errors, st.inflight, st.by_phase[0], st.by_phase[1],
                   st.by_phase[2], st.by_phase[3], st.by_phase[4], st.by_phase[5], st.paused);
        }
    }
    assert_true(ok);
    assert_int_equal(json_object_size(out.connected), expect_connected);

    /* The dead letters and their reasons. */
    char a[16];
    json_t *d = expect_dlq(&out, TAKEN, "bucket", "permanent", "BucketAlreadyExists", NULL);
    expect_dlq(&out, NOROLE, "bucket", "permanent", "AccessDenied", "NoSuchRole");
    /* Refused at intake, before anything is made: an existing account without
     * a report of its own, an account outside the organization, the members
     * the organization suspended, and a request under another key (or none):
     * the key is what keeps an account's messages on one partition. */
    expect_dlq(&out, NOCUR, "bucket", "permanent", "no_cur_report", "has no Cost and Usage Report");
    expect_dlq(&out, OUTSIDE, "bucket", "permanent", "account_outside_organization",
               "is not a member of the fleet's organization");
    for (int i = 50; i <= NNEW + NEXISTING; i += 50) {
        expect_dlq(&out, i, "bucket", "permanent", "account_not_active", "SUSPENDED");
        acct_id(i, a);
        assert_null(json_object_get(sim_section(sim, "reports"), a));
    }
    expect_dlq(&out, MISKEYED, "bucket", "invalid_input", "key_mismatch",
               "\"not-the-account\" is not the account id");
    expect_dlq(&out, UNKEYED, "bucket", "invalid_input", "key_mismatch", "has no Kafka key");
    for (int i = 50; i <= UNKEYED; i++) {
        if (i % 50 && i < MISKEYED)
            continue;
        acct_id(i, a);
        char name[64];
        snprintf(name, sizeof(name), "billing-cur-%s-%s", a,
                 i % 2 || i >= MISKEYED ? "eu-west-1" : "us-east-1");
        assert_null(json_object_get(sim_section(sim, "buckets"), name));
    }
    d = ob_test_out_first(out.o, "dlq", "bad");
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(json_object_get(d, "error"), "class")),
                        "invalid_input");

    /* Every connected account: one event, one stack, a role that trusts the
     * Billing Engine with exactly the event's ExternalId. */
    const char *k;
    json_t *ev;
    json_object_foreach(out.connected, k, ev)
    {
        const char *acct = json_string_value(json_object_get(ev, "account_id"));
        const char *ext = json_string_value(json_object_get(ev, "external_id"));
        const char *role_arn = json_string_value(json_object_get(ev, "role_arn"));
        assert_int_equal(strlen(ext), 32);
        char racct[13], rname[128];
        assert_int_equal(sim_parse_role_arn(role_arn, racct, rname, sizeof(rname)), 0);
        assert_string_equal(racct, acct);
        json_t *role = sim_get_role(sim, racct, rname);
        assert_non_null(role);
        char *trust = json_dumps(json_object_get(role, "AssumeRolePolicyDocument"), 0);
        assert_non_null(strstr(trust, MGMT_ROOT));
        assert_non_null(strstr(trust, ext));
        free(trust);
        assert_int_equal(ob_test_sim_live_stacks(sim, acct, NULL), 1);
    }
    /* New accounts: one bucket set up in full and one report with the seed's settings. */
    json_t *buckets = sim_section(sim, "buckets"), *reports = sim_section(sim, "reports");
    for (int i = 1; i <= NNEW; i++) {
        if (i == TAKEN || i == NOROLE || i % 50 == 0)
            continue;
        acct_id(i, a);
        char name[64];
        snprintf(name, sizeof(name), "billing-cur-%s-%s", a, i % 2 ? "eu-west-1" : "us-east-1");
        json_t *b = json_object_get(buckets, name);
        assert_non_null(b);
        assert_non_null(json_object_get(b, "policy"));
        json_t *rep = json_object_get(json_object_get(reports, a), "billing-engine-cur");
        if (!rep)
            fail_msg("report missing for %s", a);
        assert_string_equal(json_string_value(json_object_get(rep, "TimeUnit")), "HOURLY");
        assert_string_equal(json_string_value(json_object_get(rep, "S3Prefix")), "CUR");
        assert_string_equal(json_string_value(json_object_get(rep, "Compression")), "GZIP");
        assert_int_equal(json_object_size(json_object_get(reports, a)), 1);
    }
    /* Existing accounts keep the report they had (no other made), and their
     * event names it. */
    for (int i = NNEW + 1; i <= NNEW + NEXISTING; i++) {
        if (i % 50 == 0 || i == NOCUR)
            continue;
        acct_id(i, a);
        assert_int_equal(json_object_size(json_object_get(reports, a)), 1);
        assert_non_null(json_object_get(json_object_get(reports, a), "their-own-cur"));
    }
    json_object_foreach(out.connected, k, ev)
    {
        const char *acct = json_string_value(json_object_get(ev, "account_id"));
        if (strcmp(json_string_value(json_object_get(ev, "mode")), "existing") != 0)
            continue;
        json_t *rep = json_object_get(ev, "report");
        char theirs[64];
        snprintf(theirs, sizeof(theirs), "cur-of-%s", acct);
        assert_string_equal(json_string_value(json_object_get(rep, "name")), "their-own-cur");
        assert_string_equal(json_string_value(json_object_get(rep, "bucket")), theirs);
        assert_string_equal(json_string_value(json_object_get(rep, "region")), "eu-central-1");
    }

    ob_test_end(&H);
    json_decref(out.connected);
}

/* Sealed sessions (session.keys): the bucket stage assumes an account's role
 * and seals the session into its hand-off; cur opens it and assumes nothing;
 * iam, on a key ring without that key, cannot open it and assumes the role
 * itself (a refused session is no failure). The session header is on the
 * hand-offs and nowhere else (not on the connected events). */
#define SK_A "ka:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define SK_B "kb:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="

typedef struct {
    int handoffs, sealed, connected, sealed_elsewhere;
} headers_seen_t;

static void on_headers(ob_test_out_t *o, const char *topic, const char *key,
                       const rd_kafka_message_t *m, void *arg)
{
    (void)o;
    (void)key;
    headers_seen_t *hs = arg;
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t vl = 0;
    int has =
        rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(h, OB_SESSION_HEADER, &v, &vl) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        vl > 0;
    if (!strcmp(topic, "cur") || !strcmp(topic, "iam")) {
        hs->handoffs++;
        hs->sealed += has;
        /* Sealed: the session's access key (the simulator's start with
         * ASIA) is nowhere in it. */
        if (has && memmem(v, vl, "ASIA", 4))
            fail_msg("a sealed session shows an access key id");
    } else {
        hs->connected += !strcmp(topic, "connected");
        hs->sealed_elsewhere += has;
    }
}

static int assume_count(void)
{
    return (int)json_integer_value(json_object_get(sim_section(H.sim, "counts"), "sts.AssumeRole"));
}

static void test_sealed_sessions(void **state)
{
    (void)state;
    enum { N = 12 };
    ob_test_new_prefix(&H, "itps-");
    const char *lat[] = {"cloudformation.stack_create=200ms", NULL};
    sim_opts_t so = {.profile = "instant", .org_accounts = 40, .random_seed = 9, .latency = lat};
    ob_test_begin(&H, &so);
    ob_test_forget_members(H.redis_port, 1, so.org_accounts);
    static const char *const ring_a[][2] = {{"OB_SESSION_KEYS", SK_A}, {NULL, NULL}};
    static const char *const ring_b[][2] = {{"OB_SESSION_KEYS", SK_B}, {NULL, NULL}};
    ob_worker_t *b = ob_test_worker_env(&H, &ob_stage_bucket, NULL, 5000, ring_a);
    ob_worker_t *c = ob_test_worker_env(&H, &ob_stage_cur, NULL, 5000, ring_a);
    ob_worker_t *i = ob_test_worker_env(&H, &ob_stage_iam, NULL, 5000, ring_b);
    ob_test_worker(&H, &ob_stage_connect, NULL, 5000);
    headers_seen_t hs = {0};
    ob_test_out_opts_t oo = {.group = "headers",
                             .topics = {"cur", "iam", "connected", "dlq"},
                             .raw = 1,
                             .on_message = on_headers,
                             .arg = &hs};
    ob_test_out_t *o = ob_test_out_new(&H, &oo);
    ob_test_producer_t *p = ob_test_producer(&H);
    for (int k = 1; k <= N; k++) {
        char acct[16], rid[32];
        snprintf(acct, sizeof(acct), "%012lld", 200000000000LL + k);
        snprintf(rid, sizeof(rid), "sess-%d", k);
        ob_test_req_t rq = {.rid = rid, .account = acct, .mode = "new", .region = "us-east-1"};
        ob_test_send_request(p, &rq);
    }
    ob_test_producer_done(p);
    /* N hand-offs on each of cur and iam, N connected events. */
    assert_true(ob_test_out_wait(o, 3 * N, 120000));
    assert_int_equal(ob_test_out_seen(o, "dlq"), 0);
    assert_int_equal(hs.connected, N);
    assert_int_equal(hs.handoffs, 2 * N);
    assert_int_equal(hs.sealed, 2 * N);
    assert_int_equal(hs.sealed_elsewhere, 0);
    ob_worker_stats_t sb, sc, si;
    ob_worker_get_stats(b, &sb);
    ob_worker_get_stats(c, &sc);
    ob_worker_get_stats(i, &si);
    assert_int_equal(sb.sessions_sealed, N);
    assert_int_equal(sc.sessions_used, N);
    assert_int_equal(sc.sessions_sealed, N);
    assert_int_equal(si.sessions_refused, N);
    assert_int_equal(si.sessions_used, 0);
    /* AssumeRole: bucket's, iam's (refused the session) and connect's check;
     * none by cur (four per account without sealing). */
    assert_int_equal(assume_count(), 3 * N);
    ob_test_end(&H);
}

/* An idle worker commits its output at once: with output.commit.interval at
 * 20 s, one account goes through all four stages in seconds (on a fixed
 * 20 s tick each hand-off would wait for its worker's next tick). */
static void test_idle_worker_commits_at_once(void **state)
{
    (void)state;
    ob_test_new_prefix(&H, "itpi-");
    const char *lat[] = {"cloudformation.stack_create=100ms", NULL};
    sim_opts_t so = {.profile = "instant", .org_accounts = 5, .random_seed = 3, .latency = lat};
    ob_test_begin(&H, &so);
    ob_test_forget_members(H.redis_port, 1, so.org_accounts);
    static const char *const slow_commits[][2] = {{"OB_OUTPUT_COMMIT_INTERVAL", "20s"},
                                                  {NULL, NULL}};
    const ob_stage_ops_t *stages[] = {&ob_stage_bucket, &ob_stage_cur, &ob_stage_iam,
                                      &ob_stage_connect};
    for (int k = 0; k < 4; k++)
        ob_test_worker_env(&H, stages[k], NULL, 5000, slow_commits);
    ob_test_out_opts_t oo = {.group = "auditor", .topics = {"connected", "dlq"}};
    ob_test_out_t *o = ob_test_out_new(&H, &oo);
    /* The workers' first commits would come 20 s after they started. */
    ob_test_producer_t *p = ob_test_producer(&H);
    ob_test_req_t rq = {.rid = "idle-1", .account = "200000000001", .mode = "new"};
    ob_test_send_request(p, &rq);
    ob_test_producer_done(p);
    uint64_t t0 = ob_loop_update_time(H.loop);
    assert_true(ob_test_out_wait(o, 1, 15000));
    uint64_t took = ob_loop_update_time(H.loop) - t0;
    printf("one account through four stages committing every 20 s at most: %.1f s\n",
           (double)took / 1000.0);
    assert_int_equal(ob_test_out_seen(o, "connected"), 1);
    assert_true(took < 15000);
    ob_test_end(&H);
}

static void test_one_replica(void **state)
{
    run_pipeline(1);
}

static void test_two_replicas(void **state)
{
    run_pipeline(2);
}

int main(void)
{
    ob_test_harness_init(&H, "itp");
    ob_test_set(&H, "OB_INFLIGHT_MAX", "25");
    ob_test_set(&H, "OB_BILLING_PRINCIPAL", MGMT_ROOT);
    ob_test_set(&H, "OB_STACK_POLL", "100ms");
    ob_test_set(&H, "OB_CONNECT_RETRIES", "3");
    ob_test_set(&H, "OB_CONNECT_RETRY_WAIT", "200ms");
    ob_log_set_level(OB_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_replica),
        cmocka_unit_test(test_two_replicas),
        cmocka_unit_test(test_sealed_sessions),
        cmocka_unit_test(test_idle_worker_commits_at_once),
    };
    return ob_test_run_selected("itest_pipeline", tests, sizeof(tests) / sizeof(tests[0]));
}
