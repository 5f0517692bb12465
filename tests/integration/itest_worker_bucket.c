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
#include <time.h>
#include <unistd.h>

#include "ob_kafka.h"
#include "ob_log.h"
#include "ob_redis.h"
#include "ob_worker.h"
#include "sim.h"
#include "stages.h"
#include "testutil.h"

#define NNEW 40

static const char *brokers;
static int redis_port;
static char prefix[64];
static char sim_url[64];
static const char *instance_id = ""; /* OB_INSTANCE_ID */
static const char *stage_retry_wait; /* OB_STAGE_RETRY_WAIT (NULL: the default) */

static const char *env_get(const char *name, void *ctx)
{
    static char port_s[16];
    const char *kv[][2] = {
        {"OB_TOPIC_PREFIX", prefix},
        {"OB_REDIS_PORT", port_s},
        {"OB_INFLIGHT_MAX", "16"}, /* smaller than the batch: the window must pause */
        {"OB_RUN_MAX", "3"},       /* smaller than the window: jobs wait for a place */
        {"OB_INSTANCE_ID", instance_id},
        {"OB_STAGE_RETRY_WAIT", stage_retry_wait},
        {"OB_STAGE_RETRY_WINDOW", stage_retry_wait ? "1s" : NULL},
        {NULL, NULL}};
    snprintf(port_s, sizeof(port_s), "%d", redis_port);
    const char *v = ob_test_kv_lookup(kv, name);
    return v ? v : ob_test_sim_env(name, sim_url);
}

static void kafka_defaults(ob_cfg_kv_t *kv)
{
    ob_test_kafka_defaults(kv, brokers);
}

/* ---- collecting the outputs ---- */

typedef struct seen_s {
    json_t *cur, *iam, *dlq; /* account -> array of messages */
    int total;
    const char *only; /* count only messages containing this (a round's request ids) */
} seen_t;

static void on_out(ob_kconsumer_t *c, const rd_kafka_message_t *m, void *arg)
{
    seen_t *s = arg;
    if (s->only && !memmem(m->payload, m->len, s->only, strlen(s->only))) {
        ob_kconsumer_store(c, rd_kafka_topic_name(m->rkt), m->partition, m->offset + 1);
        return;
    }
    const char *t = rd_kafka_topic_name(m->rkt) + strlen(prefix);
    json_t *bucket = !strcmp(t, "cur") ? s->cur : !strcmp(t, "iam") ? s->iam : s->dlq;
    json_t *j = json_loadb(m->payload, m->len, 0, NULL);
    char key[64];
    snprintf(key, sizeof(key), "%.*s", (int)m->key_len, m->key ? (const char *)m->key : "");
    json_t *arr = json_object_get(bucket, key);
    if (!arr) {
        arr = json_array();
        json_object_set_new(bucket, key, arr);
    }
    json_array_append_new(arr, j ? j : json_string("unparseable"));
    /* Count accounts, not messages: a rebalance may deliver a message twice. */
    if (json_array_size(arr) == 1)
        s->total++;
    ob_kconsumer_store(c, rd_kafka_topic_name(m->rkt), m->partition, m->offset + 1);
}

/* A consumer in group <prefix><group> of the worker's output topics (cur,
 * iam, dlq) collecting into *seen. */
static ob_kconsumer_t *start_collector(ob_loop_t *loop, ob_cfg_kv_t *kv, const char *group,
                                       seen_t *seen)
{
    char tc[128], ti[128], td[128], g[160], err[512];
    snprintf(tc, sizeof(tc), "%scur", prefix);
    snprintf(ti, sizeof(ti), "%siam", prefix);
    snprintf(td, sizeof(td), "%sdlq", prefix);
    snprintf(g, sizeof(g), "%s%s", prefix, group);
    const char *topics[] = {tc, ti, td};
    ob_kconsumer_opts_t co = {.group_id = g,
                              .topics = topics,
                              .ntopics = 3,
                              .kafka = kv,
                              .on_message = on_out,
                              .arg = seen};
    ob_kconsumer_t *c = ob_kconsumer_new(loop, &co, err, sizeof(err));
    if (!c)
        fail_msg("collector: %s", err);
    return c;
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

static void produce_requests(ob_loop_t *loop, int round)
{
    ob_cfg_kv_t kv = {0};
    kafka_defaults(&kv);
    ob_kproducer_opts_t po = {.kafka = &kv};
    ob_kproducer_t *p = ob_kproducer_new(loop, &po, NULL, 0);
    assert_non_null(p);
    char topic[128], body[1024], acct[16];
    snprintf(topic, sizeof(topic), "%srequests", prefix);
    for (int i = 1; i <= NNEW + 3; i++) {
        snprintf(acct, sizeof(acct), "%012llu", SIM_MEMBER_BASE + (unsigned long long)i);
        const char *mode = i > NNEW ? "existing" : "new";
        const char *region = i % 2 ? "eu-west-1" : "us-east-1";
        const char *bucket = i == 7 ? ",\"bucket\":{\"name\":\"taken-by-someone-else\"}" : "";
        snprintf(body, sizeof(body),
                 "{\"schema\":\"onboard.request/1\",\"request_id\":\"%sr%d-%d\",\"account_id\":"
                 "\"%s\",\"cloud\":\"aws\",\"mode\":\"%s\",\"region\":\"%s\",\"role_arn\":"
                 "\"arn:aws:iam::%s:role/OrganizationAccountAccessRole\"%s}",
                 prefix, round, i, acct, mode, region, acct, bucket);
        assert_int_equal(ob_kproducer_send(p, topic, RD_KAFKA_PARTITION_UA, acct, strlen(acct),
                                           body, strlen(body), NULL, NULL, NULL, 0),
                         OB_OK);
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
        assert_int_equal(ob_kproducer_send(p, topic, RD_KAFKA_PARTITION_UA, key, strlen(key),
                                           bad[i], strlen(bad[i]), NULL, NULL, NULL, 0),
                         OB_OK);
    }
    assert_int_equal(ob_kproducer_flush(p, 30000), OB_OK);
    ob_kproducer_free(p);
    ob_cfg_kv_free(&kv);
}

/* The existing members (after the NNEW new ones) already have a report. */
static void seed_existing(sim_t *sim)
{
    for (int i = NNEW + 1; i <= NNEW + 3; i++) {
        char acct[16], bucket[64];
        ob_test_member_account(i, acct);
        snprintf(bucket, sizeof(bucket), "cur-of-%s", acct);
        ob_test_seed_report(sim, acct, "their-own-cur", bucket, "us-east-1");
    }
}

static void test_bucket_worker(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    char err[512];
    sim_opts_t so = {.profile = "instant", .org_accounts = 60, .random_seed = 11};
    sim_t *sim = sim_new(loop, &so, err, sizeof(err));
    assert_non_null(sim);
    ob_test_forget_members(redis_port, 1, so.org_accounts);
    seed_existing(sim);
    snprintf(sim_url, sizeof(sim_url), "http://127.0.0.1:%d", sim_port(sim));
    /* Someone else (member 55) owns the name member 7 asks for. */
    json_object_set_new(
        sim_section(sim, "buckets"), "taken-by-someone-else",
        json_pack("{s:s, s:s, s:i}", "owner", "200000000055", "region", "eu-west-1", "created", 0));

    produce_requests(loop, 1);

    ob_config_t cfg;
    assert_int_equal(ob_config_load(&cfg, NULL, env_get, NULL, err, sizeof(err)), OB_OK);
    kafka_defaults(&cfg.kafka);
    ob_worker_opts_t wo = {.stage = &ob_stage_bucket,
                           .config = &cfg,
                           .name = "itest-bucket",
                           .lock_ttl_ms = 10000,
                           .shutdown_ms = 5000,
                           .getenv_fn = env_get};
    ob_worker_t *w = ob_worker_new(loop, &wo, err, sizeof(err));
    if (!w)
        fail_msg("worker: %s", err);

    seen_t seen = {json_object(), json_object(), json_object(), 0, NULL};
    ob_cfg_kv_t kv = {0};
    kafka_defaults(&kv);
    ob_kconsumer_t *collector = start_collector(loop, &kv, "collector", &seen);

    /* 40 new (one with a taken name), 3 existing, 3 bad. */
    want_t want = {&seen, NNEW + 3 + 3};
    int ok = ob_test_run_until(loop, got_all, &want, 120000);
    ob_worker_stats_t ws;
    ob_worker_get_stats(w, &ws);
    printf("round 1: %d outputs; worker: received %llu, done %llu, dead letters %llu\n", seen.total,
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
    assert_int_equal(json_object_size(seen.cur), NNEW - 1);
    assert_int_equal(json_object_size(seen.iam), 3);
    assert_int_equal(json_object_size(seen.dlq), 4);
    /* Existing accounts: their own report travels to iam. */
    const char *ik;
    json_t *iv;
    json_object_foreach(seen.iam, ik, iv)
    {
        json_t *rep = json_object_get(json_object_get(json_array_get(iv, 0), "results"), "report");
        assert_string_equal(json_string_value(json_object_get(rep, "name")), "their-own-cur");
    }

    /* The dead letters say why. */
    json_t *d7 = json_array_get(json_object_get(seen.dlq, "200000000007"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(d7, "error"), "code")),
                        "BucketAlreadyExists");
    assert_string_equal(json_string_value(json_object_get(json_object_get(d7, "error"), "class")),
                        "permanent");
    json_t *d0 = json_array_get(json_object_get(seen.dlq, "bad-0"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(d0, "error"), "code")),
                        "not_json");
    assert_non_null(json_object_get(json_object_get(d0, "original"), "payload_base64"));
    json_t *d1 = json_array_get(json_object_get(seen.dlq, "bad-1"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(d1, "error"), "class")),
                        "unsupported_cloud");

    /* The simulator holds exactly the buckets asked for, each set up in full. */
    json_t *buckets = sim_section(sim, "buckets");
    for (int i = 1; i <= NNEW; i++) {
        if (i == 7)
            continue;
        char acct[16], name[64];
        snprintf(acct, sizeof(acct), "%012llu", SIM_MEMBER_BASE + (unsigned long long)i);
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
    json_object_clear(seen.cur);
    json_object_clear(seen.iam);
    json_object_clear(seen.dlq);
    seen.total = 0;
    produce_requests(loop, 2);
    assert_true(ob_test_run_until(loop, got_all, &want, 120000));
    assert_int_equal(json_object_size(seen.cur), NNEW - 1);
    assert_int_equal(json_object_size(buckets), nbuckets);
    json_t *counts = sim_section(sim, "counts");
    printf("CreateBucket calls: %lld for %zu buckets\n",
           (long long)json_integer_value(json_object_get(counts, "s3.CreateBucket")), nbuckets);

    ob_kconsumer_close(collector);
    ob_kconsumer_free(collector);
    ob_worker_stop(w);
    assert_int_equal(ob_worker_run(w), OB_OK); /* returns at once: the graceful shutdown */
    ob_worker_free(w);
    ob_cfg_kv_free(&kv);
    json_decref(seen.cur);
    json_decref(seen.iam);
    json_decref(seen.dlq);
    sim_free(sim);
    ob_config_free(&cfg);
    ob_loop_free(loop);
}

/* A simulator on a free port (its URL in sim_url, which the worker reads). */
static sim_t *start_sim(ob_loop_t *loop, const sim_opts_t *so)
{
    char err[512];
    sim_t *sim = sim_new(loop, so, err, sizeof(err));
    if (!sim)
        fail_msg("awssim: %s", err);
    ob_test_forget_members(redis_port, 1, so->org_accounts);
    seed_existing(sim);
    snprintf(sim_url, sizeof(sim_url), "http://127.0.0.1:%d", sim_port(sim));
    return sim;
}

/* A bucket worker on the settings env_get gives now (loaded into cfg). */
static ob_worker_t *start_worker(ob_loop_t *loop, ob_config_t *cfg, const char *name,
                                 long shutdown_ms)
{
    char err[512];
    assert_int_equal(ob_config_load(cfg, NULL, env_get, NULL, err, sizeof(err)), OB_OK);
    kafka_defaults(&cfg->kafka);
    ob_worker_opts_t wo = {.stage = &ob_stage_bucket,
                           .config = cfg,
                           .name = name,
                           .lock_ttl_ms = 10000,
                           .shutdown_ms = shutdown_ms,
                           .getenv_fn = env_get};
    ob_worker_t *w = ob_worker_new(loop, &wo, err, sizeof(err));
    if (!w)
        fail_msg("worker: %s", err);
    return w;
}

static int creating_buckets(void *arg)
{
    return json_integer_value(json_object_get(sim_section(arg, "counts"), "s3.CreateBucket")) > 0;
}

/* Another producer with the worker's transactional id (its instance id) fences
 * it: the worker's transactions can never commit again. It stops at once,
 * handing back what is in flight uncommitted, rather than draining for the
 * shutdown's 20 s: produce retries on a fenced producer cannot succeed, and
 * its partitions should go to a replica that can work. */
static void test_fenced_worker_stops_at_once(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    char err[512];
    const char *lat[] = {"s3.CreateBucket=2s", NULL};
    sim_opts_t so = {.profile = "instant", .org_accounts = 60, .random_seed = 12, .latency = lat};
    sim_t *sim = start_sim(loop, &so);
    instance_id = "fence-me";
    ob_config_t cfg;
    ob_worker_t *w = start_worker(loop, &cfg, "itest-bucket-fenced", 20000);
    produce_requests(loop, 3); /* new request ids: rounds 1 and 2 are done */
    /* Buckets being created (2 s each), the dead letters of the bad input out. */
    assert_true(ob_test_run_until(loop, creating_buckets, sim, 60000));

    /* The same transactional id, initialised elsewhere. */
    ob_cfg_kv_t kv = {0};
    kafka_defaults(&kv);
    char tid[256];
    snprintf(tid, sizeof(tid), "%sbucket-fence-me", prefix);
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
    uint64_t t0 = ob_loop_update_time(loop);
    assert_int_equal(ob_worker_run(w), OB_ERR_KAFKA);
    uint64_t took = ob_loop_update_time(loop) - t0;
    printf("fenced: the worker's run ended after %llu ms\n", (unsigned long long)took);
    assert_true(took < 10000); /* not also the 20 s drain */
    ob_worker_free(w);
    rd_kafka_destroy(rival);
    ob_cfg_kv_free(&kv);
    sim_free(sim);
    ob_config_free(&cfg);
    ob_loop_free(loop);
    instance_id = "";
}

/* AssumeRole, the first call of every account's stage, failing the way
 * networks fail: its reply cut short, or its connection reset on every try
 * of the call. Those are retried as the stage's other calls are, never
 * dead-lettered as a permanent credentials error. */
static void sts_faults_round(const char *fault, int round)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    const char *faults[] = {fault, NULL};
    sim_opts_t so = {
        .profile = "instant", .org_accounts = 60, .random_seed = 13 + round, .faults = faults};
    sim_t *sim = start_sim(loop, &so);
    stage_retry_wait = "100ms";
    ob_config_t cfg;
    ob_worker_t *w = start_worker(loop, &cfg, "itest-bucket-sts", 5000);
    char tag[96];
    snprintf(tag, sizeof(tag), "%sr%d-", prefix, round);
    seen_t seen = {json_object(), json_object(), json_object(), 0, tag};
    ob_cfg_kv_t kv = {0};
    kafka_defaults(&kv);
    char group[32];
    snprintf(group, sizeof(group), "collector-%d", round);
    ob_kconsumer_t *collector = start_collector(loop, &kv, group, &seen);
    produce_requests(loop, round);
    /* Every account of the round out: NNEW new ones (the name member 7 asks
     * for is free in this simulator) and 3 existing. */
    want_t want = {&seen, NNEW + 3};
    int ok = ob_test_run_until(loop, got_all, &want, 120000);
    long long assumes =
        json_integer_value(json_object_get(sim_section(sim, "counts"), "sts.AssumeRole"));
    printf("%s: %zu to cur, %zu to iam, %zu dead letters; %lld AssumeRole calls\n", fault,
           json_object_size(seen.cur), json_object_size(seen.iam), json_object_size(seen.dlq),
           assumes);
    const char *k;
    json_t *v;
    json_object_foreach(seen.dlq, k, v)
    {
        char *t = json_dumps(json_array_get(v, 0), 0);
        printf("dead letter %s: %.300s\n", k, t);
        free(t);
    }
    assert_true(ok);
    assert_int_equal(json_object_size(seen.dlq), 0);
    assert_int_equal(json_object_size(seen.cur), NNEW);
    assert_int_equal(json_object_size(seen.iam), 3);
    ob_kconsumer_close(collector);
    ob_kconsumer_free(collector);
    ob_worker_stop(w);
    assert_int_equal(ob_worker_run(w), OB_OK);
    ob_worker_free(w);
    ob_cfg_kv_free(&kv);
    json_decref(seen.cur);
    json_decref(seen.iam);
    json_decref(seen.dlq);
    sim_free(sim);
    ob_config_free(&cfg);
    ob_loop_free(loop);
    stage_retry_wait = NULL;
}

static void test_sts_faults_are_retried(void **state)
{
    sts_faults_round("sts.AssumeRole=truncate:count=12", 4);
    sts_faults_round("sts.AssumeRole=reset:count=12", 5);
}

int main(void)
{
    brokers = ob_test_service_env("OB_TEST_KAFKA_BROKERS", "an Apache Kafka broker");
    redis_port = atoi(ob_test_service_env("OB_TEST_REDIS_PORT", "redis-server"));
    snprintf(prefix, sizeof(prefix), "itw%ld%d.", (long)time(NULL) % 100000, (int)getpid());
    ob_log_set_level(OB_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_worker),
        cmocka_unit_test(test_fenced_worker_stops_at_once),
        cmocka_unit_test(test_sts_faults_are_retried),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
