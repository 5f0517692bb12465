/*
 * The cur worker end to end against a real Kafka broker, a real Redis and
 * the AWS simulator: cur-stage hand-offs produced to the cur topic; the worker
 * (the real runtime: consumer group, window, per-account locks, offsets)
 * makes each account's report through AssumeRole into the account, in
 * us-east-1; the test reads what came out on the iam and dead-letter topics
 * and checks the simulator's reports, its call counts and Redis.
 *
 * The accounts (members of the simulated organization):
 *   101-120  a bucket with the CUR delivery policy (what the bucket stage
 *            writes, ob_cur_bucket_policy): the report is created;
 *   121      a bucket without a policy: AWS refuses (ValidationException);
 *   122      five reports already (the AWS limit): ReportLimitReachedException;
 *   123      ours already there, identical, after five others so that it is
 *            found on the second DescribeReportDefinitions page;
 *   124      ours already there with other settings: ModifyReportDefinition;
 * plus two bad messages (not JSON; an iam-stage hand-off on the cur topic).
 * Then the same hand-offs again: nothing changes, nothing is created twice.
 * Then a changed setting (versioning) for five accounts: they are modified.
 */
#include <hiredis/hiredis.h>
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

#define FIRST       101 /* members 101-120 get their report */
#define LAST_OK     120
#define NOK         (LAST_OK - FIRST + 1)
#define A_NO_POLICY 121
#define A_LIMIT     122
#define A_PAGED     123
#define A_DIFFERENT 124
#define NCHANGED    5 /* round 3: members 101-105 ask for CREATE_NEW_REPORT */

static const char *brokers;
static int redis_port;
static char prefix[64];
static char sim_url[64];

static const char *env_get(const char *name, void *ctx)
{
    static char port_s[16];
    const char *kv[][2] = {
        {"AWS_ENDPOINT_URL", sim_url},
        {"AWS_ACCESS_KEY_ID", SIM_MGMT_AKID},
        {"AWS_SECRET_ACCESS_KEY", SIM_MGMT_SECRET},
        {"AWS_REGION", "eu-west-1"}, /* not us-east-1: the stage must name CUR's region */
        {"AWS_CONFIG_FILE", "/dev/null"},
        {"AWS_SHARED_CREDENTIALS_FILE", "/dev/null"},
        {"AWS_EC2_METADATA_DISABLED", "true"},
        {"OB_TOPIC_PREFIX", prefix},
        {"OB_REDIS_PORT", port_s},
        {"OB_INFLIGHT_MAX", "8"}, /* smaller than the batch: the window must pause */
        {NULL, NULL}};
    snprintf(port_s, sizeof(port_s), "%d", redis_port);
    return ob_test_kv_lookup(kv, name);
}

static void kafka_defaults(ob_cfg_kv_t *kv)
{
    ob_test_kafka_defaults(kv, brokers);
}

static void acct_of(int i, char out[16])
{
    ob_test_member_account(i, out);
}

static const char *region_of(int i)
{
    return i % 2 ? "eu-west-1" : "us-east-1";
}

static void bucket_of(int i, char out[OB_BUCKET_LEN])
{
    char acct[16];
    acct_of(i, acct);
    ob_request_default_bucket(acct, region_of(i), out);
}

/* ---- the simulator's state before the run ---- */

/* A report definition as PutReportDefinition stores it. */
static json_t *stored_def(int i, const char *name, const char *time_unit, const char *versioning)
{
    char bucket[OB_BUCKET_LEN];
    bucket_of(i, bucket);
    return json_pack("{s:s, s:s, s:s, s:s, s:[s], s:s, s:s, s:s, s:[s], s:b, s:s}", "ReportName",
                     name, "TimeUnit", time_unit, "Format", "textORcsv", "Compression", "GZIP",
                     "AdditionalSchemaElements", "RESOURCES", "S3Bucket", bucket, "S3Prefix", "CUR",
                     "S3Region", region_of(i), "AdditionalArtifacts", "REDSHIFT",
                     "RefreshClosedReports", 1, "ReportVersioning", versioning);
}

static void seed_sim(sim_t *sim)
{
    json_t *buckets = sim_section(sim, "buckets");
    json_t *reports = sim_section(sim, "reports");
    for (int i = FIRST; i <= A_DIFFERENT; i++) {
        char acct[16], bucket[OB_BUCKET_LEN];
        acct_of(i, acct);
        bucket_of(i, bucket);
        json_t *b = json_pack("{s:s, s:s, s:i, s:s}", "owner", acct, "region", region_of(i),
                              "created", 1, "ownership", "BucketOwnerEnforced");
        if (i != A_NO_POLICY) {
            char *policy = ob_cur_bucket_policy("aws", acct, bucket);
            json_object_set_new(b, "policy", json_string(policy));
            free(policy);
        }
        json_object_set_new(buckets, bucket, b);
    }
    char acct[16], name[32];
    json_t *mine = json_object();
    acct_of(A_LIMIT, acct);
    for (int k = 1; k <= 5; k++) {
        snprintf(name, sizeof(name), "legacy-%d", k);
        json_object_set_new(mine, name, stored_def(A_LIMIT, name, "DAILY", "CREATE_NEW_REPORT"));
    }
    json_object_set_new(reports, acct, mine);
    /* Five others sorting before ours, so ours is on the second page (the API
     * would refuse a sixth; an account may still hold them, e.g. from before). */
    mine = json_object();
    acct_of(A_PAGED, acct);
    for (int k = 1; k <= 5; k++) {
        snprintf(name, sizeof(name), "aaa-%d", k);
        json_object_set_new(mine, name, stored_def(A_PAGED, name, "DAILY", "CREATE_NEW_REPORT"));
    }
    json_object_set_new(mine, "billing-engine-cur",
                        stored_def(A_PAGED, "billing-engine-cur", "HOURLY", "OVERWRITE_REPORT"));
    json_object_set_new(reports, acct, mine);
    mine = json_object();
    acct_of(A_DIFFERENT, acct);
    json_object_set_new(
        mine, "billing-engine-cur",
        stored_def(A_DIFFERENT, "billing-engine-cur", "DAILY", "CREATE_NEW_REPORT"));
    json_object_set_new(reports, acct, mine);
}

/* ---- the hand-offs ---- */

/* A cur-stage hand-off for member i, as the bucket stage makes it. */
static char *handoff(int i, int round, const char *report, ob_stage_t stage)
{
    char acct[16], req[1024];
    acct_of(i, acct);
    snprintf(req, sizeof(req),
             "{\"schema\":\"onboard.request/1\",\"request_id\":\"%sr%d-%d\",\"account_id\":\"%s\","
             "\"cloud\":\"aws\",\"mode\":\"new\",\"region\":\"%s\",\"role_arn\":"
             "\"arn:aws:iam::%s:role/OrganizationAccountAccessRole\"%s%s}",
             prefix, round, i, acct, region_of(i), acct, report ? ",\"report\":" : "",
             report ? report : "");
    ob_stage_msg_t m;
    ob_msg_error_t me;
    ob_stage_msg_init(&m);
    if (ob_request_parse(req, strlen(req), &m.request, &me) != OB_OK)
        fail_msg("request: %s", me.message);
    m.stage = stage;
    ob_stage_fill_bucket(&m);
    if (stage == OB_STAGE_IAM)
        ob_stage_fill_report(&m);
    ob_trace_t *t = &m.trace[OB_STAGE_BUCKET];
    t->present = 1;
    char now[OB_TIME_LEN];
    ob_msg_now(now);
    t->started_at = t->finished_at = ob_request_str(&m.request, now);
    t->attempts = 1;
    t->worker = ob_request_printf(&m.request, "bucket");
    char *json = NULL;
    if (ob_stage_to_json(&m, &json, NULL, &me) != OB_OK)
        fail_msg("hand-off: %s", me.message);
    ob_stage_msg_clear(&m);
    return json;
}

static void send_one(ob_kproducer_t *p, const char *topic, const char *key, const char *body)
{
    assert_int_equal(ob_kproducer_send(p, topic, RD_KAFKA_PARTITION_UA, key, strlen(key), body,
                                       strlen(body), NULL, NULL, NULL, 0),
                     OB_OK);
}

/* Round 1 and 2: every account with the seed's settings, plus the bad ones.
 * Round 3: only members FIRST..FIRST+NCHANGED-1, asking for CREATE_NEW_REPORT. */
static int produce_handoffs(ob_loop_t *loop, int round)
{
    ob_cfg_kv_t kv = {0};
    kafka_defaults(&kv);
    ob_kproducer_opts_t po = {.kafka = &kv};
    ob_kproducer_t *p = ob_kproducer_new(loop, &po, NULL, 0);
    assert_non_null(p);
    char topic[128], acct[16];
    snprintf(topic, sizeof(topic), "%scur", prefix);
    int n = 0;
    int last = round == 3 ? FIRST + NCHANGED - 1 : A_DIFFERENT;
    for (int i = FIRST; i <= last; i++) {
        acct_of(i, acct);
        char *body = handoff(i, round, round == 3 ? "{\"versioning\":\"CREATE_NEW_REPORT\"}" : NULL,
                             OB_STAGE_CUR);
        send_one(p, topic, acct, body);
        free(body);
        n++;
    }
    if (round != 3) {
        send_one(p, topic, "bad-0", "{not json");
        char *iam = handoff(LAST_OK + 50, round, NULL, OB_STAGE_IAM); /* the wrong topic */
        send_one(p, topic, "bad-1", iam);
        free(iam);
        n += 2;
    }
    assert_int_equal(ob_kproducer_flush(p, 30000), OB_OK);
    ob_kproducer_free(p);
    ob_cfg_kv_free(&kv);
    return n;
}

/* ---- collecting the outputs ---- */

typedef struct seen_s {
    json_t *iam, *dlq; /* account -> array of messages */
    int total;
} seen_t;

static void on_out(ob_kconsumer_t *c, const rd_kafka_message_t *m, void *arg)
{
    seen_t *s = arg;
    const char *t = rd_kafka_topic_name(m->rkt) + strlen(prefix);
    json_t *bucket = !strcmp(t, "iam") ? s->iam : s->dlq;
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

typedef struct want_s {
    seen_t *s;
    int n;
} want_t;

static int got_all(void *arg)
{
    want_t *w = arg;
    return w->s->total >= w->n;
}

static void seen_reset(seen_t *s)
{
    json_object_clear(s->iam);
    json_object_clear(s->dlq);
    s->total = 0;
}

/* ---- checks ---- */

static json_t *first_of(json_t *by_key, int i)
{
    char acct[16];
    acct_of(i, acct);
    json_t *m = json_array_get(json_object_get(by_key, acct), 0);
    if (!m)
        fail_msg("no message for %s", acct);
    return m;
}

/* The iam hand-off of member i: valid, stage iam, with the report result. */
static void check_iam(seen_t *s, int i, const char *versioning)
{
    char acct[16], bucket[OB_BUCKET_LEN];
    acct_of(i, acct);
    bucket_of(i, bucket);
    char *text = json_dumps(first_of(s->iam, i), JSON_COMPACT);
    ob_stage_msg_t m;
    ob_msg_error_t me;
    if (ob_stage_parse(text, strlen(text), &m, &me) != OB_OK)
        fail_msg("%s: %s", acct, me.message);
    free(text);
    assert_int_equal(m.stage, OB_STAGE_IAM);
    assert_string_equal(m.request.account_id, acct);
    assert_true(m.has_report);
    assert_string_equal(m.report.name, "billing-engine-cur");
    assert_string_equal(m.report.bucket, bucket);
    assert_string_equal(m.report.prefix, "CUR");
    assert_string_equal(m.report.region, region_of(i));
    assert_string_equal(ob_versioning_name(m.request.report.versioning), versioning);
    assert_true(m.trace[OB_STAGE_BUCKET].present);
    assert_true(m.trace[OB_STAGE_CUR].present);
    ob_stage_msg_clear(&m);
}

static void check_dlq(seen_t *s, const char *key, const char *cls, const char *code,
                      const char *text)
{
    json_t *d = json_array_get(json_object_get(s->dlq, key), 0);
    if (!d)
        fail_msg("no dead letter for %s", key);
    json_t *e = json_object_get(d, "error");
    const char *got = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (!got || strcmp(got, code) != 0)
        fail_msg("%s: code %s, want %s (%s)", key, got ? got : "(none)", code, msg ? msg : "");
    assert_string_equal(json_string_value(json_object_get(e, "class")), cls);
    assert_string_equal(json_string_value(json_object_get(d, "stage")), "cur");
    if (text && (!msg || !strstr(msg, text)))
        fail_msg("%s: \"%s\" not in: %s", key, text, msg ? msg : "(none)");
    printf("dead letter %s: %s: %s\n", key, code, msg);
}

/* The stored report of member i must have the seed's settings. */
static void check_report(sim_t *sim, int i, const char *versioning)
{
    char acct[16], bucket[OB_BUCKET_LEN];
    acct_of(i, acct);
    bucket_of(i, bucket);
    json_t *d =
        json_object_get(json_object_get(sim_section(sim, "reports"), acct), "billing-engine-cur");
    if (!d)
        fail_msg("no report in %s", acct);
    json_t *want = stored_def(i, "billing-engine-cur", "HOURLY", versioning);
    if (!json_equal(d, want)) {
        char *a = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
        char *b = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
        fail_msg("%s: report %s, want %s", acct, a, b);
    }
    json_decref(want);
}

static long long count_for(sim_t *sim, int i, const char *api)
{
    char acct[16];
    acct_of(i, acct);
    return json_integer_value(
        json_object_get(json_object_get(sim_section(sim, "counts_by_account"), acct), api));
}

/* One field of the account's state in Redis (a plain blocking client: the
 * worker's loop is not running while the test reads). */
static char *redis_state(redisContext *rc, int i, const char *field)
{
    char acct[16], key[64];
    acct_of(i, acct);
    snprintf(key, sizeof(key), "ob:{%s}:state", acct);
    redisReply *r = redisCommand(rc, "HGET %s %s", key, field);
    assert_non_null(r);
    char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : strdup("");
    freeReplyObject(r);
    return v;
}

static void expect_state(redisContext *rc, int i, const char *field, const char *want)
{
    char *v = redis_state(rc, i, field);
    if (strcmp(v, want) != 0)
        fail_msg("member %d: state %s is \"%s\", want \"%s\"", i, field, v, want);
    free(v);
}

static ob_worker_t *the_worker;

static void run_round(ob_loop_t *loop, seen_t *seen, int round)
{
    seen_reset(seen);
    int n = produce_handoffs(loop, round);
    want_t want = {seen, n};
    int ok = ob_test_run_until(loop, got_all, &want, 120000);
    printf("round %d: %d of %d outputs\n", round, seen->total, n);
    assert_true(ok);
    assert_true(ob_test_run_until(loop, ob_test_worker_idle, the_worker, 30000));
}

static void test_cur_worker(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    char err[512];
    sim_opts_t so = {.profile = "instant", .org_accounts = 130, .random_seed = 12};
    sim_t *sim = sim_new(loop, &so, err, sizeof(err));
    assert_non_null(sim);
    snprintf(sim_url, sizeof(sim_url), "http://127.0.0.1:%d", sim_port(sim));
    seed_sim(sim);
    redisContext *rc = redisConnect("127.0.0.1", redis_port);
    assert_true(rc && !rc->err);

    ob_config_t cfg;
    assert_int_equal(ob_config_load(&cfg, NULL, env_get, NULL, err, sizeof(err)), OB_OK);
    kafka_defaults(&cfg.kafka);
    ob_worker_opts_t wo = {.stage = &ob_stage_cur,
                           .config = &cfg,
                           .name = "itest-cur",
                           .lock_ttl_ms = 10000,
                           .shutdown_ms = 5000,
                           .getenv_fn = env_get};
    ob_worker_t *w = ob_worker_new(loop, &wo, err, sizeof(err));
    the_worker = w;
    if (!w)
        fail_msg("worker: %s", err);

    seen_t seen = {json_object(), json_object(), 0};
    ob_cfg_kv_t kv = {0};
    kafka_defaults(&kv);
    char ti[128], td[128], group[160];
    snprintf(ti, sizeof(ti), "%siam", prefix);
    snprintf(td, sizeof(td), "%sdlq", prefix);
    snprintf(group, sizeof(group), "%scollector", prefix);
    const char *topics[] = {ti, td};
    ob_kconsumer_opts_t co = {.group_id = group,
                              .topics = topics,
                              .ntopics = 2,
                              .kafka = &kv,
                              .on_message = on_out,
                              .arg = &seen};
    ob_kconsumer_t *collector = ob_kconsumer_new(loop, &co, err, sizeof(err));
    assert_non_null(collector);

    /* ---- round 1 ---- */
    run_round(loop, &seen, 1);
    ob_worker_stats_t ws;
    ob_worker_get_stats(w, &ws);
    printf("worker: received %llu, done %llu, dead letters %llu\n", (unsigned long long)ws.received,
           (unsigned long long)ws.done, (unsigned long long)ws.dead_letters);
    assert_int_equal(json_object_size(seen.iam), NOK + 2);
    assert_int_equal(json_object_size(seen.dlq), 4);
    for (int i = FIRST; i <= LAST_OK; i++)
        check_iam(&seen, i, "OVERWRITE_REPORT");
    check_iam(&seen, A_PAGED, "OVERWRITE_REPORT");
    check_iam(&seen, A_DIFFERENT, "OVERWRITE_REPORT");
    char k_nopol[16], k_limit[16];
    acct_of(A_NO_POLICY, k_nopol);
    acct_of(A_LIMIT, k_limit);
    check_dlq(&seen, k_nopol, "permanent", "ValidationException",
              "Failed to verify customer bucket permission");
    check_dlq(&seen, k_limit, "permanent", "ReportLimitReachedException", "already has 5");
    check_dlq(&seen, "bad-0", "invalid_input", "not_json", NULL);
    check_dlq(&seen, "bad-1", "invalid_input", "enum", "/stage");

    /* The simulator: one report per account, with the seed's settings. */
    json_t *reports = sim_section(sim, "reports");
    for (int i = FIRST; i <= LAST_OK; i++) {
        char acct[16];
        acct_of(i, acct);
        assert_int_equal(json_object_size(json_object_get(reports, acct)), 1);
        check_report(sim, i, "OVERWRITE_REPORT");
        assert_int_equal(count_for(sim, i, "cur.PutReportDefinition"), 1);
        assert_int_equal(count_for(sim, i, "cur.ModifyReportDefinition"), 0);
    }
    assert_int_equal(json_object_size(json_object_get(reports, k_nopol)), 0);
    assert_int_equal(json_object_size(json_object_get(reports, k_limit)), 5);
    assert_null(json_object_get(json_object_get(reports, k_limit), "billing-engine-cur"));
    char k_paged[16], k_diff[16];
    acct_of(A_PAGED, k_paged);
    acct_of(A_DIFFERENT, k_diff);
    assert_int_equal(json_object_size(json_object_get(reports, k_paged)), 6);
    check_report(sim, A_PAGED, "OVERWRITE_REPORT");
    assert_true(count_for(sim, A_PAGED, "cur.DescribeReportDefinitions") >= 2);
    assert_int_equal(count_for(sim, A_PAGED, "cur.PutReportDefinition"), 0);
    assert_int_equal(count_for(sim, A_PAGED, "cur.ModifyReportDefinition"), 0);
    assert_int_equal(json_object_size(json_object_get(reports, k_diff)), 1);
    check_report(sim, A_DIFFERENT, "OVERWRITE_REPORT");
    assert_int_equal(count_for(sim, A_DIFFERENT, "cur.ModifyReportDefinition"), 1);
    assert_int_equal(count_for(sim, A_DIFFERENT, "cur.PutReportDefinition"), 0);

    /* Redis: each account's outcome. */
    expect_state(rc, FIRST, "stage", "cur");
    expect_state(rc, FIRST, "status", "done");
    expect_state(rc, FIRST, "report", "billing-engine-cur");
    expect_state(rc, FIRST, "report_outcome", "created");
    expect_state(rc, A_PAGED, "report_outcome", "unchanged");
    expect_state(rc, A_DIFFERENT, "report_outcome", "modified");
    char *changes = redis_state(rc, A_DIFFERENT, "report_changes");
    assert_non_null(strstr(changes, "TimeUnit DAILY -> HOURLY"));
    free(changes);
    expect_state(rc, A_NO_POLICY, "status", "failed");
    expect_state(rc, A_NO_POLICY, "error_code", "ValidationException");
    expect_state(rc, A_LIMIT, "error_code", "ReportLimitReachedException");

    /* ---- round 2: the same hand-offs; nothing changes ---- */
    json_t *before = json_deep_copy(reports);
    long long modifies = json_integer_value(
        json_object_get(sim_section(sim, "counts"), "cur.ModifyReportDefinition"));
    run_round(loop, &seen, 2);
    assert_int_equal(json_object_size(seen.iam), NOK + 2);
    assert_int_equal(json_object_size(seen.dlq), 4);
    check_dlq(&seen, k_nopol, "permanent", "ValidationException", NULL);
    check_dlq(&seen, k_limit, "permanent", "ReportLimitReachedException", NULL);
    assert_true(json_equal(before, reports));
    assert_int_equal(json_integer_value(
                         json_object_get(sim_section(sim, "counts"), "cur.ModifyReportDefinition")),
                     modifies);
    for (int i = FIRST; i <= LAST_OK; i++)
        assert_int_equal(count_for(sim, i, "cur.PutReportDefinition"), 1);
    expect_state(rc, FIRST, "report_outcome", "unchanged");
    expect_state(rc, A_DIFFERENT, "report_outcome", "unchanged");
    json_decref(before);

    /* ---- round 3: a changed setting leads to ModifyReportDefinition ---- */
    run_round(loop, &seen, 3);
    assert_int_equal(json_object_size(seen.iam), NCHANGED);
    assert_int_equal(json_object_size(seen.dlq), 0);
    for (int i = FIRST; i <= LAST_OK; i++) {
        int changed = i < FIRST + NCHANGED;
        const char *v = changed ? "CREATE_NEW_REPORT" : "OVERWRITE_REPORT";
        char acct[16];
        acct_of(i, acct);
        assert_int_equal(json_object_size(json_object_get(reports, acct)), 1);
        check_report(sim, i, v);
        if (changed) {
            check_iam(&seen, i, v);
            expect_state(rc, i, "report_outcome", "modified");
            char *c = redis_state(rc, i, "report_changes");
            assert_non_null(strstr(c, "ReportVersioning OVERWRITE_REPORT -> CREATE_NEW_REPORT"));
            free(c);
        }
        assert_int_equal(count_for(sim, i, "cur.ModifyReportDefinition"), changed ? 1 : 0);
        assert_int_equal(count_for(sim, i, "cur.PutReportDefinition"), 1);
    }
    json_t *counts = sim_section(sim, "counts");
    printf("CUR calls: Describe %lld, Put %lld, Modify %lld\n",
           (long long)json_integer_value(json_object_get(counts, "cur.DescribeReportDefinitions")),
           (long long)json_integer_value(json_object_get(counts, "cur.PutReportDefinition")),
           (long long)json_integer_value(json_object_get(counts, "cur.ModifyReportDefinition")));

    ob_kconsumer_close(collector);
    ob_kconsumer_free(collector);
    ob_worker_stop(w);
    assert_int_equal(ob_worker_run(w), OB_OK); /* returns at once: the graceful shutdown */
    ob_worker_free(w);
    ob_cfg_kv_free(&kv);
    json_decref(seen.iam);
    json_decref(seen.dlq);
    redisFree(rc);
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
        cmocka_unit_test(test_cur_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
