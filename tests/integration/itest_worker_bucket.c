/*
 * The bucket worker end to end against a real Kafka broker, a real Redis and
 * the AWS simulator: requests produced to the intake topic; the worker (the
 * real runtime: consumer group, window, per-account locks, offsets) creates
 * the buckets through AssumeRole into each account; the test reads what came
 * out on the cur, iam and dead-letter topics and checks the simulator's state
 * and Redis. Then the same requests again: nothing is created twice.
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

#define NNEW 40

static ob_test_harness_t H;

/* A consumer in group <prefix><group> of the worker's output topics (cur,
 * iam, dlq), counting only the messages that contain `only` (NULL: all). */
static ob_test_out_t *start_collector(const char *group, const char *only)
{
    ob_test_out_opts_t oo = {.group = group, .topics = {"cur", "iam", "dlq"}, .only = only};
    return ob_test_out_new(&H, &oo);
}

static void produce_requests(int round)
{
    ob_test_producer_t *p = ob_test_producer(&H);
    char acct[16], rid[32];
    for (int i = 1; i <= NNEW + 3; i++) {
        ob_test_member_account(i, acct);
        snprintf(rid, sizeof(rid), "r%d-%d", round, i);
        ob_test_req_t rq = {.rid = rid,
                            .account = acct,
                            .mode = i > NNEW ? "existing" : "new",
                            .region = i % 2 ? "eu-west-1" : "us-east-1",
                            .extra =
                                i == 7 ? ",\"bucket\":{\"name\":\"taken-by-someone-else\"}" : NULL};
        ob_test_send_request(p, &rq);
    }
    /* Bad input: not JSON, another cloud, a role in another account. */
    const char *bad[] = {
        "{not json",
        "{\"schema\":\"onboard.request/1\",\"request_id\":\"az\",\"account_id\":\"200000000099\","
        "\"cloud\":\"azure\",\"mode\":\"new\",\"region\":\"eu-west-1\",\"role_arn\":"
        "\"arn:aws:iam::200000000099:role/x\"}",
        "{\"schema\":\"onboard.request/1\",\"request_id\":\"mm\",\"account_id\":\"200000000098\","
        "\"cloud\":\"aws\",\"mode\":\"new\",\"region\":\"eu-west-1\",\"role_arn\":"
        "\"arn:aws:iam::200000000001:role/OrganizationAccountAccessRole\"}"};
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof(key), "bad-%d", i);
        ob_test_send(p, "requests", key, bad[i]);
    }
    ob_test_producer_done(p);
}

/* A simulator (60 members) with this seed and these latencies and faults;
 * the existing members (after the NNEW new ones) already have a report. */
static sim_t *start_sim(int seed, const char *const *latency, const char *const *faults)
{
    sim_opts_t so = {.profile = "instant",
                     .org_accounts = 60,
                     .random_seed = seed,
                     .latency = latency,
                     .faults = faults};
    ob_test_begin(&H, &so);
    ob_test_forget_members(H.redis_port, 1, so.org_accounts);
    for (int i = NNEW + 1; i <= NNEW + 3; i++) {
        char acct[16], bucket[64];
        ob_test_member_account(i, acct);
        snprintf(bucket, sizeof(bucket), "cur-of-%s", acct);
        ob_test_seed_report(H.sim, acct, "their-own-cur", bucket, "us-east-1");
    }
    return H.sim;
}

static void test_bucket_worker(void **state)
{
    sim_t *sim = start_sim(11, NULL, NULL);
    /* Someone else (member 55) owns the name member 7 asks for. */
    json_object_set_new(
        sim_section(sim, "buckets"), "taken-by-someone-else",
        json_pack("{s:s, s:s, s:i}", "owner", "200000000055", "region", "eu-west-1", "created", 0));

    produce_requests(1);
    ob_worker_t *w = ob_test_worker(&H, &ob_stage_bucket, "itest-bucket", 5000);
    ob_test_out_t *out = start_collector("collector", NULL);
    json_t *cur = ob_test_out_map(out, "cur"), *iam = ob_test_out_map(out, "iam"),
           *dlq = ob_test_out_map(out, "dlq");

    /* 40 new (one with a taken name), 3 existing, 3 bad. */
    int ok = ob_test_out_wait(out, NNEW + 3 + 3, 120000);
    ob_worker_stats_t ws;
    ob_worker_get_stats(w, &ws);
    printf("round 1: %d outputs; worker: received %llu, done %llu, dead letters %llu\n", out->keys,
           (unsigned long long)ws.received, (unsigned long long)ws.done,
           (unsigned long long)ws.dead_letters);
    assert_true(ok);
    /* run.max: never more than 3 accounts worked on at once, the others of
     * the window waited their turn (and all got it). */
    printf("run.max 3: peak %zu working, %llu waits for a place\n", ws.run_peak,
           (unsigned long long)ws.run_waits);
    assert_true(ws.run_peak <= 3);
    assert_true(ws.run_peak >= 2);
    assert_true(ws.run_waits > 0);
    assert_int_equal(json_object_size(cur), NNEW - 1);
    assert_int_equal(json_object_size(iam), 3);
    assert_int_equal(json_object_size(dlq), 4);
    /* Existing accounts: their own report travels to iam. */
    const char *ik;
    json_t *iv;
    json_object_foreach(iam, ik, iv)
    {
        json_t *rep = json_object_get(json_object_get(json_array_get(iv, 0), "results"), "report");
        assert_string_equal(json_string_value(json_object_get(rep, "name")), "their-own-cur");
    }

    /* The dead letters say why. */
    json_t *d7 = ob_test_out_first(out, "dlq", "200000000007");
    assert_string_equal(json_string_value(json_object_get(json_object_get(d7, "error"), "code")),
                        "BucketAlreadyExists");
    assert_string_equal(json_string_value(json_object_get(json_object_get(d7, "error"), "class")),
                        "permanent");
    json_t *d0 = ob_test_out_first(out, "dlq", "bad-0");
    assert_string_equal(json_string_value(json_object_get(json_object_get(d0, "error"), "code")),
                        "not_json");
    assert_non_null(json_object_get(json_object_get(d0, "original"), "payload_base64"));
    json_t *d1 = ob_test_out_first(out, "dlq", "bad-1");
    assert_string_equal(json_string_value(json_object_get(json_object_get(d1, "error"), "class")),
                        "unsupported_cloud");

    /* The simulator holds exactly the buckets asked for, each set up in full. */
    json_t *buckets = sim_section(sim, "buckets");
    for (int i = 1; i <= NNEW; i++) {
        if (i == 7)
            continue;
        char acct[16], name[64];
        ob_test_member_account(i, acct);
        snprintf(name, sizeof(name), "billing-cur-%s-%s", acct, i % 2 ? "eu-west-1" : "us-east-1");
        json_t *b = json_object_get(buckets, name);
        if (!b)
            fail_msg("bucket %s missing", name);
        assert_string_equal(json_string_value(json_object_get(b, "owner")), acct);
        assert_string_equal(json_string_value(json_object_get(b, "region")),
                            i % 2 ? "eu-west-1" : "us-east-1");
        const char *policy = json_string_value(json_object_get(b, "policy"));
        assert_non_null(policy);
        assert_non_null(strstr(policy, "billingreports.amazonaws.com"));
        assert_non_null(strstr(policy, "bcm-data-exports.amazonaws.com"));
        assert_string_equal(json_string_value(json_object_get(b, "ownership")),
                            "BucketOwnerEnforced");
    }
    size_t nbuckets = json_object_size(buckets);
    assert_int_equal(nbuckets, NNEW - 1 + 1); /* + the one someone else owns */

    /* Round 2: the same requests again. Nothing new is created. */
    ob_test_out_clear(out);
    produce_requests(2);
    assert_true(ob_test_out_wait(out, NNEW + 3 + 3, 120000));
    assert_int_equal(json_object_size(cur), NNEW - 1);
    assert_int_equal(json_object_size(buckets), nbuckets);
    printf("CreateBucket calls: %lld for %zu buckets\n", ob_test_sim_count(sim, "s3.CreateBucket"),
           nbuckets);

    assert_int_equal(ob_test_end(&H), OB_OK); /* the worker's graceful shutdown */
}

static int creating_buckets(void *arg)
{
    return ob_test_sim_count(arg, "s3.CreateBucket") > 0;
}

/* Another producer with the worker's transactional id (its instance id) fences
 * it: the worker's transactions can never commit again. It stops at once,
 * handing back what is in flight uncommitted, rather than draining for the
 * shutdown's 20 s: produce retries on a fenced producer cannot succeed, and
 * its partitions should go to a replica that can work. */
static void test_fenced_worker_stops_at_once(void **state)
{
    const char *lat[] = {"s3.CreateBucket=2s", NULL};
    sim_t *sim = start_sim(12, lat, NULL);
    ob_test_set(&H, "OB_INSTANCE_ID", "fence-me");
    ob_worker_t *w = ob_test_worker(&H, &ob_stage_bucket, "itest-bucket-fenced", 20000);
    produce_requests(3); /* new request ids: rounds 1 and 2 are done */
    /* Buckets being created (2 s each), the dead letters of the bad input out. */
    assert_true(ob_test_run_until(H.loop, creating_buckets, sim, 60000));

    /* The same transactional id, initialised elsewhere. */
    ob_cfg_kv_t kv = {0};
    ob_test_kafka_defaults(&kv, H.brokers);
    char tid[256], err[512];
    snprintf(tid, sizeof(tid), "%sbucket-fence-me", H.prefix);
    rd_kafka_conf_t *conf = ob_kafka_conf_new(&kv, NULL, err, sizeof(err));
    assert_non_null(conf);
    assert_int_equal(rd_kafka_conf_set(conf, "transactional.id", tid, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_t *rival = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    assert_non_null(rival);
    rd_kafka_error_t *e = rd_kafka_init_transactions(rival, 30000);
    if (e)
        fail_msg("init_transactions: %s", rd_kafka_error_string(e));

    /* The worker runs as in its process: its next transaction (when the
     * first CreateBucket calls end, 2 s) is refused, and it stops. */
    uint64_t t0 = ob_loop_update_time(H.loop);
    assert_int_equal(ob_worker_run(w), OB_ERR_KAFKA);
    uint64_t took = ob_loop_update_time(H.loop) - t0;
    printf("fenced: the worker's run ended after %llu ms\n", (unsigned long long)took);
    assert_true(took < 10000); /* not also the 20 s drain */
    ob_test_worker_free(&H, w);
    rd_kafka_destroy(rival);
    ob_cfg_kv_free(&kv);
    ob_test_end(&H);
    ob_test_set(&H, "OB_INSTANCE_ID", "");
}

/* AssumeRole, the first call of every account's stage, failing the way
 * networks fail: its reply cut short, or its connection reset on every try
 * of the call. Those are retried as the stage's other calls are, never
 * dead-lettered as a permanent credentials error. */
static void sts_faults_round(const char *fault, int round)
{
    const char *faults[] = {fault, NULL};
    sim_t *sim = start_sim(13 + round, NULL, faults);
    ob_test_set(&H, "OB_STAGE_RETRY_WAIT", "100ms");
    ob_test_set(&H, "OB_STAGE_RETRY_WINDOW", "1s");
    ob_test_worker(&H, &ob_stage_bucket, "itest-bucket-sts", 5000);
    char tag[96], group[32];
    snprintf(tag, sizeof(tag), "%sr%d-", H.prefix, round);
    snprintf(group, sizeof(group), "collector-%d", round);
    ob_test_out_t *out = start_collector(group, tag);
    json_t *cur = ob_test_out_map(out, "cur"), *iam = ob_test_out_map(out, "iam"),
           *dlq = ob_test_out_map(out, "dlq");
    produce_requests(round);
    /* Every account of the round out: NNEW new ones (the name member 7 asks
     * for is free in this simulator) and 3 existing. */
    int ok = ob_test_out_wait(out, NNEW + 3, 120000);
    printf("%s: %zu to cur, %zu to iam, %zu dead letters; %lld AssumeRole calls\n", fault,
           json_object_size(cur), json_object_size(iam), json_object_size(dlq),
           ob_test_sim_count(sim, "sts.AssumeRole"));
    const char *k;
    json_t *v;
    json_object_foreach(dlq, k, v)
    {
        char *t = json_dumps(json_array_get(v, 0), 0);
        printf("dead letter %s: %.300s\n", k, t);
        free(t);
    }
    assert_true(ok);
    assert_int_equal(json_object_size(dlq), 0);
    assert_int_equal(json_object_size(cur), NNEW);
    assert_int_equal(json_object_size(iam), 3);
    assert_int_equal(ob_test_end(&H), OB_OK);
    ob_test_set(&H, "OB_STAGE_RETRY_WAIT", NULL);
    ob_test_set(&H, "OB_STAGE_RETRY_WINDOW", NULL);
}

static void test_sts_faults_are_retried(void **state)
{
    sts_faults_round("sts.AssumeRole=truncate:count=12", 4);
    sts_faults_round("sts.AssumeRole=reset:count=12", 5);
}

typedef struct outputs_s {
    ob_test_out_t *out;
    ob_worker_t *w;
    int n;
} outputs_t;

static int half_done(void *arg)
{
    outputs_t *o = arg;
    ob_worker_stats_t st;
    ob_worker_get_stats(o->w, &st);
    return (int)st.done >= o->n;
}

/* The consumer goes back on its partitions without a revocation (as
 * librdkafka does when a partition given back to its previous owner is reset
 * to the committed offset after fetching from where that owner was): the
 * worker handles it as the partitions given up and given back at the earlier
 * offset, and does not stop. Every account's output is produced once, no
 * bucket is created twice, and every request is finished. */
static void test_consumer_goes_back(void **state)
{
    (void)state;
    const char *lat[] = {"s3.CreateBucket=200ms", NULL};
    ob_test_new_prefix(&H, "itwr"); /* topics of its own: outputs of this test only */
    sim_t *sim = start_sim(13, lat, NULL);
    produce_requests(1);
    ob_worker_t *w = ob_test_worker(&H, &ob_stage_bucket, "itest-rewind", 5000);
    ob_test_out_t *out = start_collector("collector-rewind", NULL);
    outputs_t half = {out, w, 12};
    assert_true(ob_test_run_until(H.loop, half_done, &half, 90000));
    /* Back to the start of every partition the worker holds. */
    rd_kafka_t *rk = ob_worker_kafka_consumer(w);
    rd_kafka_topic_partition_list_t *a = NULL;
    assert_int_equal(rd_kafka_assignment(rk, &a), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_true(a->cnt > 0);
    for (int i = 0; i < a->cnt; i++)
        a->elems[i].offset = 0;
    rd_kafka_error_t *e = rd_kafka_seek_partitions(rk, a, 5000);
    assert_null(e);
    rd_kafka_topic_partition_list_destroy(a);
    assert_true(ob_test_out_wait(out, NNEW + 3 + 3, 120000));
    ob_test_run_for(H.loop, 2000); /* a late duplicate would show */
    ob_worker_stats_t ws;
    ob_worker_get_stats(w, &ws);
    printf("rewinds %llu, received %llu, done %llu, skipped %llu\n", (unsigned long long)ws.rewinds,
           (unsigned long long)ws.received, (unsigned long long)ws.done,
           (unsigned long long)ws.skipped_done);
    assert_true(ws.rewinds >= 1);
    for (int i = 1; i <= NNEW + 3; i++) {
        char acct[16];
        ob_test_member_account(i, acct);
        size_t n = ob_test_out_count(out, i > NNEW ? "iam" : "cur", acct) +
                   ob_test_out_count(out, "dlq", acct);
        if (n != 1)
            fail_msg("account %s: %zu outputs", acct, n);
    }
    /* What was finished is not done again: a bucket is asked for once, but
     * for the jobs working when the consumer went back (at most run.max, 3,
     * each time), handed back in the middle of their CreateBucket and redone
     * by the new assignment (their second call finds the bucket theirs).
     * Redoing the finished work would ask for every bucket again. */
    long long calls = ob_test_sim_count(sim, "s3.CreateBucket");
    printf("CreateBucket calls: %lld for %d buckets\n", calls, NNEW);
    assert_true(calls >= NNEW);
    assert_true(calls <= NNEW + 3 * (long long)ws.rewinds);
    assert_int_equal(ob_test_end(&H), OB_OK);
}

/* The worker's /metrics says its snapshot of the organization is complete. */
static int snapshot_ready(void *arg)
{
    ob_buf_t b = {0};
    ob_worker_render_metrics(arg, &b);
    ob_buf_putc(&b, '\0');
    int ready = b.data && strstr(b.data, "\nonboard_org_snapshot_ready 1") != NULL;
    ob_buf_free(&b);
    return ready;
}

/* intake.organization.standing: the worker lists the organization once it
 * starts (60 members and the management account, 4 ListAccounts pages of
 * 20), so the batch that comes
 * then is checked against the listing without one DescribeAccount, even the
 * first accounts of the burst; the suspended member is still refused. */
static void test_standing_snapshot(void **state)
{
    (void)state;
    ob_test_new_prefix(&H, "itws");
    sim_t *sim = start_sim(17, NULL, NULL);
    ob_worker_t *w = ob_test_worker(&H, &ob_stage_bucket, "itest-standing", 5000);
    assert_true(ob_test_run_until(H.loop, snapshot_ready, w, 30000));
    assert_int_equal(ob_test_sim_count(sim, "organizations.ListAccounts"), 4);
    produce_requests(1);
    ob_test_out_t *out = start_collector("collector-standing", NULL);
    assert_true(ob_test_out_wait(out, NNEW + 3 + 3, 120000));
    long long described = ob_test_sim_count(sim, "organizations.DescribeAccount");
    long long listed = ob_test_sim_count(sim, "organizations.ListAccounts");
    printf("standing snapshot: %lld ListAccounts, %lld DescribeAccount for %d accounts\n", listed,
           described, NNEW + 3);
    assert_int_equal(described, 0);
    assert_int_equal(listed, 4);
    assert_int_equal(ob_test_out_count(out, "cur", "200000000007") +
                         ob_test_out_count(out, "dlq", "200000000007"),
                     1);
    assert_int_equal(ob_test_end(&H), OB_OK);
}

int main(void)
{
    ob_test_harness_init(&H, "itw");
    ob_test_set(&H, "OB_INFLIGHT_MAX", "16"); /* smaller than the batch: the window must pause */
    ob_test_set(&H, "OB_RUN_MAX", "3");       /* smaller than the window: jobs wait for a place */
    ob_test_set(&H, "OB_INSTANCE_ID", "");
    ob_test_set(&H, "OB_STAGE_RETRY_WAIT", NULL); /* the defaults, but for the STS faults */
    ob_test_set(&H, "OB_STAGE_RETRY_WINDOW", NULL);
    ob_log_set_level(OB_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_worker),
        cmocka_unit_test(test_fenced_worker_stops_at_once),
        cmocka_unit_test(test_standing_snapshot),
        cmocka_unit_test(test_sts_faults_are_retried),
        cmocka_unit_test(test_consumer_goes_back),
    };
    return ob_test_run_selected("itest_worker_bucket", tests, sizeof(tests) / sizeof(tests[0]));
}
