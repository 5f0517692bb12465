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
#include <time.h>
#include <unistd.h>

#include "ob_http.h"
#include "ob_kafka.h"
#include "ob_log.h"
#include "ob_redis.h"
#include "ob_worker.h"
#include "sim.h"
#include "stages.h"
#include "testutil.h"

static const char *brokers;
static int redis_port;
static char prefix[64];
static char sim_url[64];

static const char *throttling_wait = "200ms";
static const char *rate_limits = "";

static const char *env_get(const char *name, void *ctx)
{
    static char port_s[16];
    const char *kv[][2] = {{"OB_TOPIC_PREFIX", prefix},
                           {"OB_REDIS_PORT", port_s},
                           {"OB_AWS_MAX_ATTEMPTS", "2"},
                           {"OB_AWS_MAX_BACKOFF", "50ms"},
                           {"OB_STAGE_RETRY_MAX", "2"},
                           {"OB_STAGE_RETRY_THROTTLING_MAX", "3"},
                           {"OB_STAGE_RETRY_THROTTLING_WAIT", throttling_wait},
                           {"OB_STAGE_RETRY_WAIT", "200ms"},
                           {"OB_STAGE_RETRY_WINDOW", "1500ms"},
                           {"OB_AWS_RATE_LIMITS", rate_limits},
                           {NULL, NULL}};
    snprintf(port_s, sizeof(port_s), "%d", redis_port);
    const char *v = ob_test_kv_lookup(kv, name);
    return v ? v : ob_test_sim_env(name, sim_url);
}

typedef struct seen_s {
    json_t *cur, *dlq;
} seen_t;

static void on_out(ob_kconsumer_t *c, const rd_kafka_message_t *m, void *arg)
{
    seen_t *s = arg;
    const char *t = rd_kafka_topic_name(m->rkt) + strlen(prefix);
    char key[32];
    snprintf(key, sizeof(key), "%.*s", (int)m->key_len, m->key ? (const char *)m->key : "");
    json_t *j = json_loadb(m->payload, m->len, 0, NULL);
    json_object_set_new(!strcmp(t, "cur") ? s->cur : s->dlq, key, j ? j : json_null());
    ob_kconsumer_store(c, rd_kafka_topic_name(m->rkt), m->partition, m->offset + 1);
}

typedef struct want_s {
    seen_t *s;
    const char *acct;
} want_t;

static int seen_acct(void *arg)
{
    want_t *w = arg;
    return json_object_get(w->s->cur, w->acct) || json_object_get(w->s->dlq, w->acct);
}

static void request(ob_loop_t *loop, int i)
{
    ob_cfg_kv_t kv = {0};
    ob_test_kafka_defaults(&kv, brokers);
    ob_kproducer_opts_t po = {.kafka = &kv};
    ob_kproducer_t *p = ob_kproducer_new(loop, &po, NULL, 0);
    char topic[128], body[512], acct[16];
    snprintf(topic, sizeof(topic), "%srequests", prefix);
    ob_test_member_account(i, acct);
    snprintf(
        body, sizeof(body),
        "{\"schema\":\"onboard.request/1\",\"request_id\":\"%sretry-%d\",\"account_id\":\"%s\","
        "\"cloud\":\"aws\",\"mode\":\"new\",\"region\":\"eu-west-1\",\"role_arn\":"
        "\"arn:aws:iam::%s:role/OrganizationAccountAccessRole\"}",
        prefix, i, acct, acct);
    assert_int_equal(ob_kproducer_send(p, topic, RD_KAFKA_PARTITION_UA, acct, strlen(acct), body,
                                       strlen(body), NULL, NULL, NULL, 0),
                     OB_OK);
    assert_int_equal(ob_kproducer_flush(p, 30000), OB_OK);
    ob_kproducer_free(p);
    ob_cfg_kv_free(&kv);
}

typedef struct post_s {
    int done;
    long status;
} post_t;

static void on_post(ob_http_resp_t *r, void *arg)
{
    post_t *p = arg;
    p->done = 1;
    p->status = r->status;
}

static int post_done(void *arg)
{
    return ((post_t *)arg)->done;
}

static char *state_field(ob_loop_t *loop, const char *acct, const char *field);

static int never(void *arg)
{
    return 0;
}

typedef struct waiting_s {
    ob_loop_t *loop;
    const char *acct;
} waiting_t;

static int is_waiting(void *arg)
{
    waiting_t *w = arg;
    char *v = state_field(w->loop, w->acct, "status");
    int yes = !strcmp(v, "waiting");
    free(v);
    return yes;
}

/* What onboardctl retry sends. */
static void retry_now(ob_loop_t *loop, const char *acct)
{
    ob_cfg_kv_t kv = {0};
    ob_test_kafka_defaults(&kv, brokers);
    ob_kproducer_opts_t po = {.kafka = &kv};
    ob_kproducer_t *p = ob_kproducer_new(loop, &po, NULL, 0);
    char topic[128], body[256];
    snprintf(topic, sizeof(topic), "%srequests", prefix);
    snprintf(body, sizeof(body), "{\"schema\":\"%s\",\"action\":\"%s\",\"account_id\":\"%s\"}",
             OB_SCHEMA_CONTROL, OB_CONTROL_RETRY_NOW, acct);
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, OB_MSG_HDR_CONTROL, -1, OB_CONTROL_RETRY_NOW, -1);
    assert_int_equal(ob_kproducer_send(p, topic, RD_KAFKA_PARTITION_UA, acct, strlen(acct), body,
                                       strlen(body), h, NULL, NULL, 0),
                     OB_OK);
    assert_int_equal(ob_kproducer_flush(p, 30000), OB_OK);
    ob_kproducer_free(p);
    ob_cfg_kv_free(&kv);
}

static void test_stage_retries(void **state)
{
    snprintf(prefix, sizeof(prefix), "itr%ld%d.", (long)time(NULL) % 100000, (int)getpid());
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    char err[512];
    /* Two throttles in a row: both HTTP attempts of the first stage attempt. */
    const char *faults[] = {"s3.PutBucketPolicy=throttle:count=2", NULL};
    sim_opts_t so = {.profile = "instant", .org_accounts = 5, .faults = faults};
    sim_t *sim = sim_new(loop, &so, err, sizeof(err));
    assert_non_null(sim);
    ob_test_forget_members(redis_port, 1, so.org_accounts);
    snprintf(sim_url, sizeof(sim_url), "http://127.0.0.1:%d", sim_port(sim));
    request(loop, 1);

    ob_config_t cfg;
    assert_int_equal(ob_config_load(&cfg, NULL, env_get, NULL, err, sizeof(err)), OB_OK);
    ob_test_kafka_defaults(&cfg.kafka, brokers);
    ob_worker_opts_t wo = {.stage = &ob_stage_bucket,
                           .config = &cfg,
                           .name = "itest-retry",
                           .lock_ttl_ms = 10000,
                           .shutdown_ms = 3000,
                           .getenv_fn = env_get};
    ob_worker_t *w = ob_worker_new(loop, &wo, err, sizeof(err));
    if (!w)
        fail_msg("worker: %s", err);
    seen_t seen = {json_object(), json_object()};
    ob_cfg_kv_t kv = {0};
    ob_test_kafka_defaults(&kv, brokers);
    char tc[128], td[128], group[160];
    snprintf(tc, sizeof(tc), "%scur", prefix);
    snprintf(td, sizeof(td), "%sdlq", prefix);
    snprintf(group, sizeof(group), "%sc", prefix);
    const char *topics[] = {tc, td};
    ob_kconsumer_opts_t co = {.group_id = group,
                              .topics = topics,
                              .ntopics = 2,
                              .kafka = &kv,
                              .on_message = on_out,
                              .arg = &seen};
    ob_kconsumer_t *collector = ob_kconsumer_new(loop, &co, err, sizeof(err));
    assert_non_null(collector);

    char a1[16], a2[16];
    ob_test_member_account(1, a1);
    want_t w1 = {&seen, a1};
    assert_true(ob_test_run_until(loop, seen_acct, &w1, 60000));
    assert_non_null(json_object_get(seen.cur, a1)); /* got through on the second attempt */
    assert_true(ob_test_run_until(loop, ob_test_worker_idle, w, 10000));
    char *v = state_field(loop, a1, "stage_attempts");
    assert_string_equal(v, "2");
    free(v);
    ob_worker_stats_t st;
    ob_worker_get_stats(w, &st);
    assert_int_equal(st.stage_retries, 1);

    /* Throttling that never ends: a dead letter after three attempts. */
    ob_http_t *http = ob_http_new(loop, NULL, NULL, 0);
    char url[128];
    snprintf(url, sizeof(url), "%s/_sim/config", sim_url);
    const char *body = "{\"faults\": {\"s3.PutPublicAccessBlock\": \"throttle:1.0\"}}";
    ob_http_req_t req = {.method = "POST", .url = url, .body = body, .body_len = strlen(body)};
    post_t pr = {0, 0};
    assert_non_null(ob_http_send(http, &req, on_post, &pr, NULL, 0));
    assert_true(ob_test_run_until(loop, post_done, &pr, 5000));
    assert_int_equal(pr.status, 200);
    request(loop, 2);
    ob_test_member_account(2, a2);
    want_t w2 = {&seen, a2};
    assert_true(ob_test_run_until(loop, seen_acct, &w2, 60000));
    json_t *d = json_object_get(seen.dlq, a2);
    assert_non_null(d);
    json_t *e = json_object_get(d, "error");
    assert_string_equal(json_string_value(json_object_get(e, "class")), "retries_exhausted");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "SlowDown");
    assert_int_equal(json_integer_value(json_object_get(d, "attempts")), 3);
    assert_true(ob_test_run_until(loop, ob_test_worker_idle, w, 10000));
    v = state_field(loop, a2, "status");
    assert_string_equal(v, "failed");
    free(v);
    json_t *counts = json_object_get(sim_section(sim, "counts_by_account"), a2);
    /* three stage attempts of two HTTP attempts each */
    assert_int_equal(json_integer_value(json_object_get(counts, "s3.PutPublicAccessBlock")), 6);

    /* A 500 that never ends: the default attempts (2), reason transient. */
    body = "{\"replace\": true, \"faults\": {\"s3.PutBucketEncryption\": \"500:1.0\"}}";
    req.body = body;
    req.body_len = strlen(body);
    pr.done = 0;
    assert_non_null(ob_http_send(http, &req, on_post, &pr, NULL, 0));
    assert_true(ob_test_run_until(loop, post_done, &pr, 5000));
    uint64_t t3 = ob_loop_update_time(loop);
    request(loop, 3);
    char a3[16];
    ob_test_member_account(3, a3);
    want_t w3 = {&seen, a3};
    assert_true(ob_test_run_until(loop, seen_acct, &w3, 60000));
    /* stage.retry.window: the last attempt a whole window (1.5 s) after the
     * first failure, where a full-jitter wait of 200 ms would have spent
     * both attempts at once. */
    printf("500 forever: dead letter after %llu ms\n",
           (unsigned long long)(ob_loop_update_time(loop) - t3));
    assert_true(ob_loop_update_time(loop) - t3 >= 1500);
    d = json_object_get(seen.dlq, a3);
    assert_non_null(d);
    assert_int_equal(json_integer_value(json_object_get(d, "attempts")), 2);
    assert_true(ob_test_run_until(loop, ob_test_worker_idle, w, 10000));
    counts = json_object_get(sim_section(sim, "counts_by_account"), a3);
    assert_int_equal(json_integer_value(json_object_get(counts, "s3.PutBucketEncryption")), 4);
    ob_worker_stop(w);
    ob_worker_run(w);
    ob_worker_free(w);
    ob_config_free(&cfg);

    /* Retry now: a throttled stage set to wait ten minutes goes again as soon
     * as the control message reaches the worker that owns the account. */
    throttling_wait = "10m";
    assert_int_equal(ob_config_load(&cfg, NULL, env_get, NULL, err, sizeof(err)), OB_OK);
    ob_test_kafka_defaults(&cfg.kafka, brokers);
    w = ob_worker_new(loop, &wo, err, sizeof(err));
    if (!w)
        fail_msg("worker: %s", err);
    body = "{\"replace\": true, \"faults\": {\"s3.PutBucketOwnershipControls\": "
           "\"throttle:count=2\"}}";
    req.body = body;
    req.body_len = strlen(body);
    pr.done = 0;
    assert_non_null(ob_http_send(http, &req, on_post, &pr, NULL, 0));
    assert_true(ob_test_run_until(loop, post_done, &pr, 5000));
    request(loop, 4);
    char a4[16];
    ob_test_member_account(4, a4);
    waiting_t wt = {loop, a4};
    assert_true(ob_test_run_until(loop, is_waiting, &wt, 30000));
    v = state_field(loop, a4, "retry_reason");
    assert_string_equal(v, "throttling");
    free(v);
    ob_test_run_until(loop, never, NULL, 500);
    want_t w4 = {&seen, a4};
    assert_false(seen_acct(&w4)); /* still waiting */
    retry_now(loop, a4);
    uint64_t t0 = ob_loop_update_time(loop);
    assert_true(ob_test_run_until(loop, seen_acct, &w4, 20000));
    assert_non_null(json_object_get(seen.cur, a4));
    assert_true(ob_loop_update_time(loop) - t0 < 20000);
    ob_worker_get_stats(w, &st);
    assert_int_equal(st.retry_now, 1);

    ob_http_free(http);
    ob_kconsumer_close(collector);
    ob_kconsumer_free(collector);
    ob_worker_stop(w);
    ob_worker_run(w);
    ob_worker_free(w);
    ob_cfg_kv_free(&kv);
    json_decref(seen.cur);
    json_decref(seen.dlq);
    sim_free(sim);
    ob_config_free(&cfg);
    ob_loop_free(loop);
}

typedef struct hget_s {
    int done;
    char *v;
} hget_t;

static void on_hget(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    hget_t *h = arg;
    h->done = 1;
    h->v = strdup(reply && reply->type == REDIS_REPLY_STRING ? reply->str : "");
}

static int hget_done(void *arg)
{
    return ((hget_t *)arg)->done;
}

static char *state_field(ob_loop_t *loop, const char *acct, const char *field)
{
    ob_redis_opts_t ro = {.host = "127.0.0.1", .port = redis_port};
    ob_redis_t *r = ob_redis_new(loop, &ro, NULL, 0);
    char key[64];
    snprintf(key, sizeof(key), "ob:{%s}:state", acct);
    hget_t h = {0, NULL};
    ob_redis_command(r, on_hget, &h, "HGET %s %s", key, field);
    assert_true(ob_test_run_until(loop, hget_done, &h, 5000));
    ob_redis_free(r);
    return h.v;
}

/* Two replicas of the bucket worker, s3.CreateBucket limited to 5/s (burst 1)
 * for the fleet: 20 new accounts need at least (20 - 1) / 5 = 3.8 s however
 * the partitions fall; each replica alone at 5/s would take half that. */
static void test_fleet_rate_limit(void **state)
{
    snprintf(prefix, sizeof(prefix), "itrl%ld%d.", (long)time(NULL) % 100000, (int)getpid());
    rate_limits = "s3.CreateBucket=5/1";
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    char err[512];
    sim_opts_t so = {.profile = "instant", .org_accounts = 30};
    sim_t *sim = sim_new(loop, &so, err, sizeof(err));
    assert_non_null(sim);
    ob_test_forget_members(redis_port, 1, so.org_accounts);
    snprintf(sim_url, sizeof(sim_url), "http://127.0.0.1:%d", sim_port(sim));
    ob_config_t cfg;
    assert_int_equal(ob_config_load(&cfg, NULL, env_get, NULL, err, sizeof(err)), OB_OK);
    ob_test_kafka_defaults(&cfg.kafka, brokers);
    ob_worker_t *w[2];
    for (int r = 0; r < 2; r++) {
        ob_worker_opts_t wo = {.stage = &ob_stage_bucket,
                               .config = &cfg,
                               .name = "itest-rate",
                               .lock_ttl_ms = 10000,
                               .shutdown_ms = 3000,
                               .getenv_fn = env_get};
        w[r] = ob_worker_new(loop, &wo, err, sizeof(err));
        if (!w[r])
            fail_msg("worker: %s", err);
    }
    seen_t seen = {json_object(), json_object()};
    ob_cfg_kv_t kv = {0};
    ob_test_kafka_defaults(&kv, brokers);
    char tc[128], td[128], group[160];
    snprintf(tc, sizeof(tc), "%scur", prefix);
    snprintf(td, sizeof(td), "%sdlq", prefix);
    snprintf(group, sizeof(group), "%sc", prefix);
    const char *topics[] = {tc, td};
    ob_kconsumer_opts_t co = {.group_id = group,
                              .topics = topics,
                              .ntopics = 2,
                              .kafka = &kv,
                              .on_message = on_out,
                              .arg = &seen};
    ob_kconsumer_t *collector = ob_kconsumer_new(loop, &co, err, sizeof(err));
    assert_non_null(collector);
    /* Both replicas in the group before the batch. */
    ob_test_run_until(loop, never, NULL, 3000);
    uint64_t t0 = ob_loop_update_time(loop);
    for (int i = 1; i <= 20; i++)
        request(loop, i);
    char last[16];
    int done = 0;
    for (int i = 1; i <= 20; i++) {
        ob_test_member_account(i, last);
        want_t wi = {&seen, last};
        done += ob_test_run_until(loop, seen_acct, &wi, 60000);
    }
    double took = (double)(ob_loop_update_time(loop) - t0) / 1000.0;
    assert_int_equal(done, 20);
    assert_int_equal(json_object_size(seen.dlq), 0);
    ob_worker_stats_t s0, s1;
    ob_worker_get_stats(w[0], &s0);
    ob_worker_get_stats(w[1], &s1);
    printf("20 buckets at a fleet-wide 5/s: %.2f s (replicas did %llu and %llu)\n", took,
           (unsigned long long)s0.done, (unsigned long long)s1.done);
    assert_true(s0.done > 0 && s1.done > 0); /* both replicas took part */
    assert_true(took >= 3.5);
    char *v = NULL;
    {
        ob_redis_opts_t ro = {.host = "127.0.0.1", .port = redis_port};
        ob_redis_t *r = ob_redis_new(loop, &ro, NULL, 0);
        hget_t h = {0, NULL};
        ob_redis_command(r, on_hget, &h, "HGET ob:rl:{s3.CreateBucket} base");
        assert_true(ob_test_run_until(loop, hget_done, &h, 5000));
        ob_redis_free(r);
        v = h.v;
    }
    assert_string_equal(v, "5");
    free(v);
    ob_kconsumer_close(collector);
    ob_kconsumer_free(collector);
    for (int r = 0; r < 2; r++) {
        ob_worker_stop(w[r]);
        ob_worker_run(w[r]);
        ob_worker_free(w[r]);
    }
    ob_cfg_kv_free(&kv);
    json_decref(seen.cur);
    json_decref(seen.dlq);
    sim_free(sim);
    ob_config_free(&cfg);
    ob_loop_free(loop);
    rate_limits = "";
}

int main(void)
{
    brokers = ob_test_service_env("OB_TEST_KAFKA_BROKERS", "an Apache Kafka broker");
    redis_port = atoi(ob_test_service_env("OB_TEST_REDIS_PORT", "redis-server"));
    ob_log_set_level(OB_LOG_WARN);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_stage_retries),
                                       cmocka_unit_test(test_fleet_rate_limit)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
