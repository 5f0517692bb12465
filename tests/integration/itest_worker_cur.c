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

#define FIRST       101 /* members 101-120 get their report */
#define LAST_OK     120
#define NOK         (LAST_OK - FIRST + 1)
#define A_NO_POLICY 121
#define A_LIMIT     122
#define A_PAGED     123
#define A_DIFFERENT 124
#define NCHANGED    5 /* round 3: members 101-105 ask for CREATE_NEW_REPORT */

static ob_test_harness_t H;

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
    char acct[16], rid[32], extra[256], req[1024];
    acct_of(i, acct);
    snprintf(rid, sizeof(rid), "r%d-%d", round, i);
    snprintf(extra, sizeof(extra), "%s%s", report ? ",\"report\":" : "", report ? report : "");
    ob_test_req_t rq = {.rid = rid, .account = acct, .region = region_of(i), .extra = extra};
    ob_test_request_json(&H, &rq, req, sizeof(req));
    ob_stage_msg_t m;
    ob_test_handoff_init(&m, req, stage);
    ob_test_handoff_trace(&m, OB_STAGE_BUCKET, "bucket", NULL, NULL);
    return ob_test_handoff_json(&m);
}

/* Round 1 and 2: every account with the seed's settings, plus the bad ones.
 * Round 3: only members FIRST..FIRST+NCHANGED-1, asking for CREATE_NEW_REPORT. */
static int produce_handoffs(int round)
{
    ob_test_producer_t *p = ob_test_producer(&H);
    char acct[16];
    int n = 0;
    int last = round == 3 ? FIRST + NCHANGED - 1 : A_DIFFERENT;
    for (int i = FIRST; i <= last; i++) {
        acct_of(i, acct);
        char *body = handoff(i, round, round == 3 ? "{\"versioning\":\"CREATE_NEW_REPORT\"}" : NULL,
                             OB_STAGE_CUR);
        ob_test_send(p, "cur", acct, body);
        free(body);
        n++;
    }
    if (round != 3) {
        ob_test_send(p, "cur", "bad-0", "{not json");
        char *iam = handoff(LAST_OK + 50, round, NULL, OB_STAGE_IAM); /* the wrong topic */
        ob_test_send(p, "cur", "bad-1", iam);
        free(iam);
        n += 2;
    }
    ob_test_producer_done(p);
    return n;
}

/* ---- checks ---- */

static json_t *first_of(ob_test_out_t *out, int i)
{
    char acct[16];
    acct_of(i, acct);
    json_t *m = ob_test_out_first(out, "iam", acct);
    if (!m)
        fail_msg("no message for %s", acct);
    return m;
}

/* The iam hand-off of member i: valid, stage iam, with the report result. */
static void check_iam(ob_test_out_t *out, int i, const char *versioning)
{
    char acct[16], bucket[OB_BUCKET_LEN];
    acct_of(i, acct);
    bucket_of(i, bucket);
    ob_stage_msg_t m;
    ob_test_handoff_parse(first_of(out, i), &m, acct);
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

static void check_dlq(ob_test_out_t *out, const char *key, const char *cls, const char *code,
                      const char *text)
{
    json_t *d = ob_test_expect_dlq(out, key, "cur", cls, code, text);
    printf("dead letter %s: %s: %s\n", key, code,
           json_string_value(json_object_get(json_object_get(d, "error"), "message")));
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
    return ob_test_sim_account_count(sim, acct, api);
}

static void run_round(ob_test_out_t *out, ob_worker_t *w, int round)
{
    ob_test_out_clear(out);
    int n = produce_handoffs(round);
    int ok = ob_test_out_wait(out, n, 120000);
    printf("round %d: %d of %d outputs\n", round, out->keys, n);
    assert_true(ok);
    assert_true(ob_test_run_until(H.loop, ob_test_worker_idle, w, 30000));
}

static void test_cur_worker(void **state)
{
    sim_opts_t so = {.profile = "instant", .org_accounts = 130, .random_seed = 12};
    ob_test_begin(&H, &so);
    sim_t *sim = H.sim;
    seed_sim(sim);
    ob_test_redis(&H);

    ob_worker_t *w = ob_test_worker(&H, &ob_stage_cur, "itest-cur", 5000);
    ob_test_out_opts_t oo = {.group = "collector", .topics = {"iam", "dlq"}};
    ob_test_out_t *out = ob_test_out_new(&H, &oo);
    json_t *iam = ob_test_out_map(out, "iam"), *dlq = ob_test_out_map(out, "dlq");

    /* ---- round 1 ---- */
    run_round(out, w, 1);
    ob_worker_stats_t ws;
    ob_worker_get_stats(w, &ws);
    printf("worker: received %llu, done %llu, dead letters %llu\n", (unsigned long long)ws.received,
           (unsigned long long)ws.done, (unsigned long long)ws.dead_letters);
    assert_int_equal(json_object_size(iam), NOK + 2);
    assert_int_equal(json_object_size(dlq), 4);
    for (int i = FIRST; i <= LAST_OK; i++)
        check_iam(out, i, "OVERWRITE_REPORT");
    check_iam(out, A_PAGED, "OVERWRITE_REPORT");
    check_iam(out, A_DIFFERENT, "OVERWRITE_REPORT");
    char k_nopol[16], k_limit[16];
    acct_of(A_NO_POLICY, k_nopol);
    acct_of(A_LIMIT, k_limit);
    check_dlq(out, k_nopol, "permanent", "ValidationException",
              "Failed to verify customer bucket permission");
    check_dlq(out, k_limit, "permanent", "ReportLimitReachedException", "already has 5");
    check_dlq(out, "bad-0", "invalid_input", "not_json", NULL);
    check_dlq(out, "bad-1", "invalid_input", "enum", "/stage");

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
    ob_test_expect_state(&H, FIRST, "stage", "cur");
    ob_test_expect_state(&H, FIRST, "status", "done");
    ob_test_expect_state(&H, FIRST, "report", "billing-engine-cur");
    ob_test_expect_state(&H, FIRST, "report_outcome", "created");
    ob_test_expect_state(&H, A_PAGED, "report_outcome", "unchanged");
    ob_test_expect_state(&H, A_DIFFERENT, "report_outcome", "modified");
    char *changes = ob_test_member_state(&H, A_DIFFERENT, "report_changes");
    assert_non_null(strstr(changes, "TimeUnit DAILY -> HOURLY"));
    free(changes);
    ob_test_expect_state(&H, A_NO_POLICY, "status", "failed");
    ob_test_expect_state(&H, A_NO_POLICY, "error_code", "ValidationException");
    ob_test_expect_state(&H, A_LIMIT, "error_code", "ReportLimitReachedException");

    /* ---- round 2: the same hand-offs; nothing changes ---- */
    json_t *before = json_deep_copy(reports);
    long long modifies = ob_test_sim_count(sim, "cur.ModifyReportDefinition");
    run_round(out, w, 2);
    assert_int_equal(json_object_size(iam), NOK + 2);
    assert_int_equal(json_object_size(dlq), 4);
    check_dlq(out, k_nopol, "permanent", "ValidationException", NULL);
    check_dlq(out, k_limit, "permanent", "ReportLimitReachedException", NULL);
    assert_true(json_equal(before, reports));
    assert_int_equal(ob_test_sim_count(sim, "cur.ModifyReportDefinition"), modifies);
    for (int i = FIRST; i <= LAST_OK; i++)
        assert_int_equal(count_for(sim, i, "cur.PutReportDefinition"), 1);
    ob_test_expect_state(&H, FIRST, "report_outcome", "unchanged");
    ob_test_expect_state(&H, A_DIFFERENT, "report_outcome", "unchanged");
    json_decref(before);

    /* ---- round 3: a changed setting leads to ModifyReportDefinition ---- */
    run_round(out, w, 3);
    assert_int_equal(json_object_size(iam), NCHANGED);
    assert_int_equal(json_object_size(dlq), 0);
    for (int i = FIRST; i <= LAST_OK; i++) {
        int changed = i < FIRST + NCHANGED;
        const char *v = changed ? "CREATE_NEW_REPORT" : "OVERWRITE_REPORT";
        char acct[16];
        acct_of(i, acct);
        assert_int_equal(json_object_size(json_object_get(reports, acct)), 1);
        check_report(sim, i, v);
        if (changed) {
            check_iam(out, i, v);
            ob_test_expect_state(&H, i, "report_outcome", "modified");
            char *c = ob_test_member_state(&H, i, "report_changes");
            assert_non_null(strstr(c, "ReportVersioning OVERWRITE_REPORT -> CREATE_NEW_REPORT"));
            free(c);
        }
        assert_int_equal(count_for(sim, i, "cur.ModifyReportDefinition"), changed ? 1 : 0);
        assert_int_equal(count_for(sim, i, "cur.PutReportDefinition"), 1);
    }
    printf("CUR calls: Describe %lld, Put %lld, Modify %lld\n",
           ob_test_sim_count(sim, "cur.DescribeReportDefinitions"),
           ob_test_sim_count(sim, "cur.PutReportDefinition"),
           ob_test_sim_count(sim, "cur.ModifyReportDefinition"));

    assert_int_equal(ob_test_end(&H), OB_OK); /* the worker's graceful shutdown */
}

int main(void)
{
    ob_test_harness_init(&H, "itc");
    ob_test_set(&H, "AWS_REGION",
                "eu-west-1");                /* not us-east-1: the stage must name CUR's region */
    ob_test_set(&H, "OB_INFLIGHT_MAX", "8"); /* smaller than the batch: the window must pause */
    ob_log_set_level(OB_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cur_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
