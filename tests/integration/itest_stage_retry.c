/*
 * Stage-level retries against real Kafka, Redis and the simulator's fault
 * injection: a throttling burst longer than the HTTP retries is ridden out by
 * a later stage attempt (the count kept in the account's Redis state); a
 * throttling that never ends becomes a dead letter of class
 * retries_exhausted after stage.retry.throttling.max attempts, and a 500 that
 * never ends after stage.retry.max (the per-class settings), its attempts
 * spread over stage.retry.window; and an operator's
 * retry-now control message starts a retry that was set to wait ten minutes;
 * and two replicas share one fleet-wide rate for an API through Redis.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ob_kafka.h"
#include "ob_log.h"
#include "ob_worker.h"
#include "sim.h"
#include "stages.h"

static ob_test_harness_t H;

typedef struct want_s {
    ob_test_out_t *out;
    const char *acct;
} want_t;

/* The account's hand-off to cur or its dead letter has come. */
static int seen_acct(void *arg)
{
    want_t *w = arg;
    return ob_test_out_last(w->out, "cur", w->acct) || ob_test_out_last(w->out, "dlq", w->acct);
}

static void request(int i)
{
    char acct[16], rid[32];
    ob_test_member_account(i, acct);
    snprintf(rid, sizeof(rid), "retry-%d", i);
    ob_test_req_t rq = {.rid = rid, .account = acct};
    ob_test_producer_t *p = ob_test_producer(&H);
    ob_test_send_request(p, &rq);
    ob_test_producer_done(p);
}

typedef struct waiting_s {
    const char *acct;
} waiting_t;

static int is_waiting(void *arg)
{
    waiting_t *w = arg;
    char *v = ob_test_state(&H, w->acct, "status");
    int yes = !strcmp(v, "waiting");
    free(v);
    return yes;
}

/* What onboardctl retry sends. */
static void retry_now(const char *acct)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"schema\":\"%s\",\"action\":\"%s\",\"account_id\":\"%s\"}",
             OB_SCHEMA_CONTROL, OB_CONTROL_RETRY_NOW, acct);
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, OB_MSG_HDR_CONTROL, -1, OB_CONTROL_RETRY_NOW, -1);
    ob_test_producer_t *p = ob_test_producer(&H);
    ob_test_send_to(p, "requests", RD_KAFKA_PARTITION_UA, acct, body, h);
    ob_test_producer_done(p);
}

/* The collector of both tests: the bucket stage's hand-offs and dead letters. */
static ob_test_out_t *collector(void)
{
    ob_test_out_opts_t oo = {.group = "c", .topics = {"cur", "dlq"}};
    return ob_test_out_new(&H, &oo);
}

static void test_stage_retries(void **state)
{
    ob_test_new_prefix(&H, "itr");
    /* Two throttles in a row: both HTTP attempts of the first stage attempt. */
    const char *faults[] = {"s3.PutBucketPolicy=throttle:count=2", NULL};
    sim_opts_t so = {.profile = "instant", .org_accounts = 5, .faults = faults};
    ob_test_begin(&H, &so);
    sim_t *sim = H.sim;
    ob_test_forget_members(H.redis_port, 1, so.org_accounts);
    request(1);

    ob_worker_t *w = ob_test_worker(&H, &ob_stage_bucket, "itest-retry", 3000);
    ob_test_out_t *out = collector();

    char a1[16], a2[16];
    ob_test_member_account(1, a1);
    want_t w1 = {out, a1};
    assert_true(ob_test_run_until(H.loop, seen_acct, &w1, 60000));
    assert_non_null(ob_test_out_last(out, "cur", a1)); /* got through on the second attempt */
    assert_true(ob_test_run_until(H.loop, ob_test_worker_idle, w, 10000));
    char *v = ob_test_state(&H, a1, "stage_attempts");
    assert_string_equal(v, "2");
    free(v);
    ob_worker_stats_t st;
    ob_worker_get_stats(w, &st);
    assert_int_equal(st.stage_retries, 1);

    /* Throttling that never ends: a dead letter after three attempts. */
    assert_int_equal(
        ob_test_sim_config(&H, "{\"faults\": {\"s3.PutPublicAccessBlock\": \"throttle:1.0\"}}"),
        200);
    request(2);
    ob_test_member_account(2, a2);
    want_t w2 = {out, a2};
    assert_true(ob_test_run_until(H.loop, seen_acct, &w2, 60000));
    json_t *d = ob_test_out_last(out, "dlq", a2);
    assert_non_null(d);
    json_t *e = json_object_get(d, "error");
    assert_string_equal(json_string_value(json_object_get(e, "class")), "retries_exhausted");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "SlowDown");
    assert_int_equal(json_integer_value(json_object_get(d, "attempts")), 3);
    assert_true(ob_test_run_until(H.loop, ob_test_worker_idle, w, 10000));
    v = ob_test_state(&H, a2, "status");
    assert_string_equal(v, "failed");
    free(v);
    /* three stage attempts of two HTTP attempts each */
    assert_int_equal(ob_test_sim_account_count(sim, a2, "s3.PutPublicAccessBlock"), 6);

    /* A 500 that never ends: the default attempts (2), reason transient. */
    ob_test_sim_config(&H, "{\"replace\": true, \"faults\": {\"s3.PutBucketEncryption\": "
                           "\"500:1.0\"}}");
    uint64_t t3 = ob_loop_update_time(H.loop);
    request(3);
    char a3[16];
    ob_test_member_account(3, a3);
    want_t w3 = {out, a3};
    assert_true(ob_test_run_until(H.loop, seen_acct, &w3, 60000));
    /* stage.retry.window: the last attempt a whole window (1.5 s) after the
     * first failure, where a full-jitter wait of 200 ms would have spent
     * both attempts at once. */
    printf("500 forever: dead letter after %llu ms\n",
           (unsigned long long)(ob_loop_update_time(H.loop) - t3));
    assert_true(ob_loop_update_time(H.loop) - t3 >= 1500);
    d = ob_test_out_last(out, "dlq", a3);
    assert_non_null(d);
    assert_int_equal(json_integer_value(json_object_get(d, "attempts")), 2);
    assert_true(ob_test_run_until(H.loop, ob_test_worker_idle, w, 10000));
    assert_int_equal(ob_test_sim_account_count(sim, a3, "s3.PutBucketEncryption"), 4);
    ob_test_worker_stop(&H, w);

    /* Retry now: a throttled stage set to wait ten minutes goes again as soon
     * as the control message reaches the worker that owns the account. */
    ob_test_set(&H, "OB_STAGE_RETRY_THROTTLING_WAIT", "10m");
    w = ob_test_worker(&H, &ob_stage_bucket, "itest-retry", 3000);
    ob_test_sim_config(&H, "{\"replace\": true, \"faults\": {\"s3.PutBucketOwnershipControls\": "
                           "\"throttle:count=2\"}}");
    request(4);
    char a4[16];
    ob_test_member_account(4, a4);
    waiting_t wt = {a4};
    assert_true(ob_test_run_until(H.loop, is_waiting, &wt, 30000));
    v = ob_test_state(&H, a4, "retry_reason");
    assert_string_equal(v, "throttling");
    free(v);
    ob_test_run_for(H.loop, 500);
    want_t w4 = {out, a4};
    assert_false(seen_acct(&w4)); /* still waiting */
    retry_now(a4);
    uint64_t t0 = ob_loop_update_time(H.loop);
    assert_true(ob_test_run_until(H.loop, seen_acct, &w4, 20000));
    assert_non_null(ob_test_out_last(out, "cur", a4));
    assert_true(ob_loop_update_time(H.loop) - t0 < 20000);
    ob_worker_get_stats(w, &st);
    assert_int_equal(st.retry_now, 1);

    ob_test_end(&H);
}

/* Two replicas of the bucket worker, s3.CreateBucket limited to 5/s (burst 1)
 * for the fleet: 20 new accounts need at least (20 - 1) / 5 = 3.8 s however
 * the partitions fall; each replica alone at 5/s would take half that. */
static void test_fleet_rate_limit(void **state)
{
    ob_test_new_prefix(&H, "itrl");
    ob_test_set(&H, "OB_AWS_RATE_LIMITS", "s3.CreateBucket=5/1");
    sim_opts_t so = {.profile = "instant", .org_accounts = 30};
    ob_test_begin(&H, &so);
    ob_test_forget_members(H.redis_port, 1, so.org_accounts);
    ob_worker_t *w[2];
    for (int r = 0; r < 2; r++)
        w[r] = ob_test_worker(&H, &ob_stage_bucket, "itest-rate", 3000);
    ob_test_out_t *out = collector();
    /* Both replicas in the group before the batch. */
    ob_test_run_for(H.loop, 3000);
    uint64_t t0 = ob_loop_update_time(H.loop);
    for (int i = 1; i <= 20; i++)
        request(i);
    char last[16];
    int done = 0;
    for (int i = 1; i <= 20; i++) {
        ob_test_member_account(i, last);
        want_t wi = {out, last};
        done += ob_test_run_until(H.loop, seen_acct, &wi, 60000);
    }
    double took = (double)(ob_loop_update_time(H.loop) - t0) / 1000.0;
    assert_int_equal(done, 20);
    assert_int_equal(json_object_size(ob_test_out_map(out, "dlq")), 0);
    ob_worker_stats_t s0, s1;
    ob_worker_get_stats(w[0], &s0);
    ob_worker_get_stats(w[1], &s1);
    printf("20 buckets at a fleet-wide 5/s: %.2f s (replicas did %llu and %llu)\n", took,
           (unsigned long long)s0.done, (unsigned long long)s1.done);
    assert_true(s0.done > 0 && s1.done > 0); /* both replicas took part */
    assert_true(took >= 3.5);
    char *v = ob_test_hget(&H, "ob:rl:{s3.CreateBucket}", "base");
    assert_string_equal(v, "5");
    free(v);
    ob_test_end(&H);
    ob_test_set(&H, "OB_AWS_RATE_LIMITS", "");
}

int main(void)
{
    ob_test_harness_init(&H, "itr");
    ob_test_set(&H, "OB_AWS_MAX_ATTEMPTS", "2");
    ob_test_set(&H, "OB_AWS_MAX_BACKOFF", "50ms");
    ob_test_set(&H, "OB_STAGE_RETRY_MAX", "2");
    ob_test_set(&H, "OB_STAGE_RETRY_THROTTLING_MAX", "3");
    ob_test_set(&H, "OB_STAGE_RETRY_THROTTLING_WAIT", "200ms");
    ob_test_set(&H, "OB_STAGE_RETRY_WAIT", "200ms");
    ob_test_set(&H, "OB_STAGE_RETRY_WINDOW", "1500ms");
    ob_test_set(&H, "OB_AWS_RATE_LIMITS", "");
    ob_log_set_level(OB_LOG_WARN);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_stage_retries),
                                       cmocka_unit_test(test_fleet_rate_limit)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
