/*
 * The cur stage as pure logic, driven with recorded JSON 1.1 replies of the
 * CUR API: the calls it asks for (always in us-east-1, in the account's
 * identity) with their exact bodies; describe pages followed by NextToken,
 * including a report found on the second page; absent -> Put, identical ->
 * nothing, different -> Modify with the full definition; the races
 * (DuplicateReportNameException, a report deleted before Modify); every
 * error (ReportLimitReachedException, ValidationException with AWS's message,
 * with the bucket-permission message and with the empty message of a
 * combination rule, throttling and 5xx after the HTTP retries, transport
 * errors, replies that are not JSON, pages that never end); the hand-off it
 * emits for the iam topic; and the dead-letter reasons for bad input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stages.h"
#include "testutil.h"

#define ACCT   "123456789012"
#define ROLE   "arn:aws:iam::" ACCT ":role/OrganizationAccountAccessRole"
#define BUCKET "billing-cur-" ACCT "-eu-west-1"
#define VIEW   "arn:aws:billing::" ACCT ":billingview/primary"

/* A valid cur-stage hand-off, built by the codec from a request in `region`
 * (role in `partition`) whose members after "role_arn" are `extra` (report
 * settings, tags...). */
static char *handoff_at(const char *region, const char *partition, const char *extra)
{
    char req[2048];
    snprintf(
        req, sizeof(req),
        "{\"schema\":\"onboard.request/1\",\"request_id\":\"req-1\",\"account_id\":\"" ACCT
        "\",\"cloud\":\"aws\",\"mode\":\"new\",\"region\":\"%s\",\"role_arn\":\"arn:%s:iam::" ACCT
        ":role/OrganizationAccountAccessRole\"%s}",
        region, partition, extra ? extra : "");
    ob_stage_msg_t m;
    ob_msg_error_t me;
    ob_stage_msg_init(&m);
    if (ob_request_parse(req, strlen(req), &m.request, &me) != OB_OK)
        fail_msg("request: %s", me.message);
    m.stage = OB_STAGE_CUR;
    ob_stage_fill_bucket(&m);
    ob_trace_t *t = &m.trace[OB_STAGE_BUCKET];
    t->present = 1;
    t->started_at = ob_request_printf(&m.request, "2025-06-02T10:00:00.120Z");
    t->finished_at = ob_request_printf(&m.request, "2025-06-02T10:00:01.480Z");
    t->attempts = 1;
    t->worker = ob_request_printf(&m.request, "bucket");
    char *json = NULL;
    if (ob_stage_to_json(&m, &json, NULL, &me) != OB_OK)
        fail_msg("hand-off: %s", me.message);
    ob_stage_msg_clear(&m);
    return json;
}

static char *handoff(const char *extra)
{
    return handoff_at("eu-west-1", "aws", extra);
}

typedef struct run_s {
    void *st;
    ob_job_plan_t plan;
    ob_step_t s;
} run_t;

static ob_err_t start(run_t *r, const char *payload)
{
    r->st = calloc(1, ob_stage_cur.state_size);
    memset(&r->plan, 0, sizeof(r->plan));
    memset(&r->s, 0, sizeof(r->s));
    return ob_stage_cur.parse(r->st, NULL, NULL, payload, strlen(payload), &r->plan, &r->s);
}

static void finish(run_t *r)
{
    ob_step_clear(&r->s);
    ob_stage_cur.clear(r->st);
    free(r->st);
}

/* Feed a reply (NULL: the first step) and get the next step in r->s. */
static ob_step_t *step(run_t *r, ob_aws_result_t *res)
{
    ob_step_clear(&r->s);
    ob_stage_cur.step(r->st, res, &r->s);
    return &r->s;
}

/* A 200 reply with a JSON body (the buffer is the test's). */
static ob_aws_result_t reply(const char *body)
{
    ob_aws_result_t res;
    memset(&res, 0, sizeof(res));
    res.err = OB_OK;
    res.status = 200;
    res.svc = OB_SVC_CUR;
    res.body.data = (char *)body;
    res.body.len = strlen(body);
    return res;
}

static ob_aws_result_t aws_error(long status, const char *code, const char *message,
                                 ob_retry_class_t cls)
{
    ob_aws_result_t res;
    memset(&res, 0, sizeof(res));
    res.err = OB_ERR_AWS;
    res.status = status;
    res.svc = OB_SVC_CUR;
    res.retry_class = cls;
    res.attempts = cls == OB_RETRY_NO ? 1 : 3;
    snprintf(res.aws.code, sizeof(res.aws.code), "%s", code);
    snprintf(res.aws.message, sizeof(res.aws.message), "%s", message);
    snprintf(res.aws.request_id, sizeof(res.aws.request_id), "RID-%s", code);
    snprintf(res.errmsg, sizeof(res.errmsg), "cur: %s: %s", code, message);
    return res;
}

/* The step must be a CUR call in us-east-1; returns its parsed body. */
static json_t *expect_call(ob_step_t *s, const char *op)
{
    if (s->kind != OB_STEP_CALL)
        fail_msg("expected %s, got step kind %d (%s: %s)", op, s->kind, s->code, s->message);
    assert_string_equal(s->req.op, op);
    assert_int_equal(s->req.svc, OB_SVC_CUR);
    assert_string_equal(s->req.method, "POST");
    assert_string_equal(s->region, "us-east-1");
    assert_string_equal(s->s3_bucket, "");
    assert_false(s->as_fleet);
    char target[128];
    snprintf(target, sizeof(target), "AWSOrigamiServiceGatewayService.%s", op);
    assert_string_equal(ob_hdrs_get(&s->req.headers, "X-Amz-Target"), target);
    assert_string_equal(ob_hdrs_get(&s->req.headers, "Content-Type"), "application/x-amz-json-1.1");
    json_t *body = json_loadb(s->req.body.data, s->req.body.len, 0, NULL);
    assert_non_null(body);
    return body;
}

static void expect_describe(ob_step_t *s, const char *token)
{
    json_t *b = expect_call(s, "DescribeReportDefinitions");
    assert_int_equal(json_integer_value(json_object_get(b, "MaxResults")), 5);
    if (token)
        assert_string_equal(json_string_value(json_object_get(b, "NextToken")), token);
    else
        assert_null(json_object_get(b, "NextToken"));
    assert_int_equal(json_object_size(b), token ? 2 : 1);
    json_decref(b);
}

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    if (!s)
        fail_msg("member %s missing", k);
    return s;
}

/* The definition the seed's defaults make for account ACCT in eu-west-1. */
static void expect_seed_definition(const json_t *d)
{
    assert_int_equal(json_object_size(d), 11);
    assert_string_equal(str(d, "ReportName"), "billing-engine-cur");
    assert_string_equal(str(d, "TimeUnit"), "HOURLY");
    assert_string_equal(str(d, "Format"), "textORcsv");
    assert_string_equal(str(d, "Compression"), "GZIP");
    json_t *el = json_object_get(d, "AdditionalSchemaElements");
    assert_int_equal(json_array_size(el), 1);
    assert_string_equal(json_string_value(json_array_get(el, 0)), "RESOURCES");
    assert_string_equal(str(d, "S3Bucket"), BUCKET);
    assert_string_equal(str(d, "S3Prefix"), "CUR");
    assert_string_equal(str(d, "S3Region"), "eu-west-1");
    json_t *ar = json_object_get(d, "AdditionalArtifacts");
    assert_int_equal(json_array_size(ar), 1);
    assert_string_equal(json_string_value(json_array_get(ar, 0)), "REDSHIFT");
    assert_true(json_is_true(json_object_get(d, "RefreshClosedReports")));
    assert_string_equal(str(d, "ReportVersioning"), "OVERWRITE_REPORT");
}

/* A report as DescribeReportDefinitions returns it (AWS adds BillingViewArn
 * and ReportStatus). */
#define DEF(name, time_unit, versioning)                                                           \
    "{\"ReportName\":\"" name "\",\"TimeUnit\":\"" time_unit "\",\"Format\":\"textORcsv\","        \
    "\"Compression\":\"GZIP\",\"AdditionalSchemaElements\":[\"RESOURCES\"],\"S3Bucket\":"          \
    "\"" BUCKET "\",\"S3Prefix\":\"CUR\",\"S3Region\":\"eu-west-1\",\"AdditionalArtifacts\":"      \
    "[\"REDSHIFT\"],\"RefreshClosedReports\":true,\"ReportVersioning\":\"" versioning "\","        \
    "\"BillingViewArn\":\"" VIEW "\",\"ReportStatus\":{\"lastDelivery\":\"20250601T031500Z\","     \
    "\"lastStatus\":\"SUCCESS\"}}"
#define OURS      DEF("billing-engine-cur", "HOURLY", "OVERWRITE_REPORT")
#define OTHER(n)  DEF("finance-" n, "DAILY", "CREATE_NEW_REPORT")
#define FIVE      OTHER("1") "," OTHER("2") "," OTHER("3") "," OTHER("4") "," OTHER("5")
#define PAGE1_TOK "AAEAAXJlcG9ydC1wYWdlLTI="

/* The DONE step: the iam hand-off and the state fields. */
static void expect_done(ob_step_t *s, const char *outcome)
{
    if (s->kind != OB_STEP_DONE)
        fail_msg("expected DONE, got kind %d (%s: %s)", s->kind, s->code, s->message);
    assert_string_equal(s->emit_topic, "iam");
    assert_string_equal(s->emit_schema, OB_SCHEMA_STAGE);
    ob_stage_msg_t m;
    ob_msg_error_t me;
    if (ob_stage_parse(s->emit, strlen(s->emit), &m, &me) != OB_OK)
        fail_msg("hand-off: %s", me.message);
    assert_int_equal(m.stage, OB_STAGE_IAM);
    assert_true(m.has_bucket);
    assert_string_equal(m.bucket.name, BUCKET);
    assert_true(m.has_report);
    assert_false(m.has_stack);
    assert_string_equal(m.report.name, m.request.report.name);
    assert_string_equal(m.report.bucket, BUCKET);
    assert_string_equal(m.report.prefix, m.request.report.prefix);
    assert_string_equal(m.report.region, "eu-west-1");
    assert_true(m.trace[OB_STAGE_BUCKET].present);
    assert_string_equal(m.trace[OB_STAGE_BUCKET].worker, "bucket");
    assert_true(m.trace[OB_STAGE_CUR].present);
    assert_string_equal(m.trace[OB_STAGE_CUR].worker, "cur");
    assert_int_equal(m.trace[OB_STAGE_CUR].attempts, 1);
    assert_false(m.trace[OB_STAGE_IAM].present);
    ob_stage_msg_clear(&m);
    assert_string_equal(s->state[0], "report");
    assert_string_equal(s->state[2], "report_outcome");
    assert_string_equal(s->state[3], outcome);
    assert_string_equal(s->state[4], "report_changes");
    assert_non_null(s->state[5]);
    assert_string_equal(s->state[6], "reports");
    assert_string_equal(s->state[7], s->state[1]);
}

static void expect_fail(ob_step_t *s, ob_dlq_class_t cls, const char *code, const char *field)
{
    if (s->kind != OB_STEP_FAIL)
        fail_msg("expected FAIL %s, got kind %d", code, s->kind);
    assert_int_equal(s->fail_class, cls);
    assert_string_equal(s->code, code);
    assert_string_equal(s->field, field);
    assert_true(strlen(s->message) > 0);
}

/* What the account's state said when the lock was taken (a test's list of
 * pairs). */
static const char *prior_get(const void *ctx, const char *field)
{
    const char *const *kv = ctx;
    for (size_t i = 0; kv[i]; i += 2)
        if (!strcmp(kv[i], field))
            return kv[i + 1];
    return "";
}

/* Reports an earlier request had the fleet make under other names are
 * deleted once this request's report is in place, one call each: a report
 * already gone counts as deleted, and any other failure fails the stage (the
 * old report would go on delivering). Reports the fleet did not make are
 * never touched. */
static void test_earlier_reports_retired(void **state)
{
    run_t r;
    char *p = handoff(NULL);
    assert_int_equal(start(&r, p), OB_OK);
    const char *kv[] = {"reports", "old-cur,billing-engine-cur,older-cur", NULL};
    ob_stage_cur.prior(r.st, prior_get, kv);
    expect_describe(step(&r, NULL), NULL);
    ob_aws_result_t page = reply("{\"ReportDefinitions\":[{\"ReportName\":\"someone-elses\"}]}");
    json_decref(expect_call(step(&r, &page), "PutReportDefinition"));
    ob_aws_result_t ok = reply("{}");
    json_t *b = expect_call(step(&r, &ok), "DeleteReportDefinition");
    assert_string_equal(json_string_value(json_object_get(b, "ReportName")), "old-cur");
    json_decref(b);
    ob_aws_result_t deleted =
        reply("{\"ResponseMessage\":\"Successfully deleted report: old-cur\"}");
    b = expect_call(step(&r, &deleted), "DeleteReportDefinition");
    assert_string_equal(json_string_value(json_object_get(b, "ReportName")), "older-cur");
    json_decref(b);
    ob_aws_result_t gone =
        aws_error(400, "ValidationException",
                  "The specified report (older-cur) in the request doesn't exist.", OB_RETRY_NO);
    expect_done(step(&r, &gone), "created");
    assert_string_equal(r.s.state[10], "retired_reports");
    assert_string_equal(r.s.state[11], "old-cur");
    finish(&r);

    /* A delete that fails otherwise fails the stage. */
    assert_int_equal(start(&r, p), OB_OK);
    const char *kv2[] = {"report", "old-cur", NULL};
    ob_stage_cur.prior(r.st, prior_get, kv2);
    expect_describe(step(&r, NULL), NULL);
    page = reply("{\"ReportDefinitions\":[]}");
    json_decref(expect_call(step(&r, &page), "PutReportDefinition"));
    json_decref(expect_call(step(&r, &ok), "DeleteReportDefinition"));
    ob_aws_result_t throttled =
        aws_error(400, "ThrottlingException", "Rate exceeded", OB_RETRY_THROTTLE);
    step(&r, &throttled);
    assert_int_equal(r.s.kind, OB_STEP_FAIL);
    assert_string_equal(r.s.code, "ThrottlingException");
    finish(&r);
    free(p);
}

static void test_absent_report_is_created(void **state)
{
    run_t r;
    char *p = handoff(NULL);
    assert_int_equal(start(&r, p), OB_OK);
    assert_string_equal(r.plan.account_id, ACCT);
    assert_string_equal(r.plan.request_id, "req-1");
    assert_string_equal(r.plan.role_arn, ROLE);
    assert_string_equal(r.plan.external_id, "");
    assert_string_equal(r.plan.region, "eu-west-1");

    expect_describe(step(&r, NULL), NULL);
    ob_aws_result_t page = reply("{\"ReportDefinitions\":[]}");
    json_t *b = expect_call(step(&r, &page), "PutReportDefinition");
    assert_int_equal(json_object_size(b), 1); /* no Tags: the request has none */
    expect_seed_definition(json_object_get(b, "ReportDefinition"));
    json_decref(b);

    ob_aws_result_t ok = reply("{}");
    expect_done(step(&r, &ok), "created");
    assert_string_equal(r.s.state[1], "billing-engine-cur");
    assert_string_equal(r.s.state[5], "");
    finish(&r);
    free(p);
}

static void test_empty_describe_body_and_tags(void **state)
{
    /* botocore reads an empty body as {}; the request's tags go on the new report. */
    run_t r;
    char *p = handoff(",\"report\":{\"name\":\"team-cur\",\"versioning\":\"CREATE_NEW_REPORT\"},"
                      "\"tags\":{\"cost-center\":\"cc-1234\",\"env\":\"prod\"}");
    assert_int_equal(start(&r, p), OB_OK);
    expect_describe(step(&r, NULL), NULL);
    ob_aws_result_t empty = reply("");
    json_t *b = expect_call(step(&r, &empty), "PutReportDefinition");
    json_t *d = json_object_get(b, "ReportDefinition");
    assert_string_equal(str(d, "ReportName"), "team-cur");
    assert_string_equal(str(d, "ReportVersioning"), "CREATE_NEW_REPORT");
    json_t *tags = json_object_get(b, "Tags");
    assert_int_equal(json_array_size(tags), 2);
    assert_string_equal(str(json_array_get(tags, 0), "Key"), "cost-center");
    assert_string_equal(str(json_array_get(tags, 0), "Value"), "cc-1234");
    assert_string_equal(str(json_array_get(tags, 1), "Key"), "env");
    json_decref(b);
    ob_aws_result_t ok = reply("{}");
    expect_done(step(&r, &ok), "created");
    assert_string_equal(r.s.state[1], "team-cur");
    finish(&r);
    free(p);
}

static void test_pages_followed_then_created(void **state)
{
    run_t r;
    char *p = handoff(NULL);
    assert_int_equal(start(&r, p), OB_OK);
    expect_describe(step(&r, NULL), NULL);
    ob_aws_result_t p1 =
        reply("{\"ReportDefinitions\":[" FIVE "],\"NextToken\":\"" PAGE1_TOK "\"}");
    expect_describe(step(&r, &p1), PAGE1_TOK);
    /* The last page: a sixth report (accounts that predate the limit), no NextToken. */
    ob_aws_result_t p2 = reply("{\"ReportDefinitions\":[" OTHER("6") "]}");
    json_t *b = expect_call(step(&r, &p2), "PutReportDefinition");
    expect_seed_definition(json_object_get(b, "ReportDefinition"));
    json_decref(b);
    ob_aws_result_t ok = reply("{}");
    expect_done(step(&r, &ok), "created");
    finish(&r);
    free(p);
}

static void test_found_on_page_2_identical(void **state)
{
    run_t r;
    char *p = handoff(NULL);
    assert_int_equal(start(&r, p), OB_OK);
    expect_describe(step(&r, NULL), NULL);
    ob_aws_result_t p1 =
        reply("{\"ReportDefinitions\":[" FIVE "],\"NextToken\":\"" PAGE1_TOK "\"}");
    expect_describe(step(&r, &p1), PAGE1_TOK);
    ob_aws_result_t p2 = reply("{\"ReportDefinitions\":[" OURS "],\"NextToken\":\"\"}");
    expect_done(step(&r, &p2), "unchanged");
    assert_string_equal(r.s.state[5], "");
    finish(&r);
    free(p);
}

static void test_identical_sets_and_defaults(void **state)
{
    /* Lists compare as sets; an absent ReportVersioning is AWS's CREATE_NEW_REPORT. */
    run_t r;
    char *p =
        handoff(",\"report\":{\"artifacts\":[\"REDSHIFT\",\"QUICKSIGHT\"],\"schema_elements\":"
                "[\"RESOURCES\",\"SPLIT_COST_ALLOCATION_DATA\"],\"versioning\":"
                "\"CREATE_NEW_REPORT\"}");
    assert_int_equal(start(&r, p), OB_OK);
    expect_describe(step(&r, NULL), NULL);
    ob_aws_result_t page = reply(
        "{\"ReportDefinitions\":[{\"ReportName\":\"billing-engine-cur\",\"TimeUnit\":\"HOURLY\","
        "\"Format\":\"textORcsv\",\"Compression\":\"GZIP\",\"AdditionalSchemaElements\":"
        "[\"SPLIT_COST_ALLOCATION_DATA\",\"RESOURCES\"],\"S3Bucket\":\"" BUCKET "\",\"S3Prefix\":"
        "\"CUR\",\"S3Region\":\"eu-west-1\",\"AdditionalArtifacts\":[\"QUICKSIGHT\",\"REDSHIFT\"],"
        "\"RefreshClosedReports\":true}]}");
    expect_done(step(&r, &page), "unchanged");
    finish(&r);
    free(p);
}

static void test_different_is_modified(void **state)
{
    run_t r;
    char *p = handoff(NULL);
    assert_int_equal(start(&r, p), OB_OK);
    expect_describe(step(&r, NULL), NULL);
    /* Ours on page 1 among others, with another granularity and versioning. */
    ob_aws_result_t page = reply("{\"ReportDefinitions\":[" OTHER("1") "," DEF(
        "billing-engine-cur", "DAILY", "CREATE_NEW_REPORT") "]}");
    json_t *b = expect_call(step(&r, &page), "ModifyReportDefinition");
    assert_int_equal(json_object_size(b), 2);
    assert_string_equal(str(b, "ReportName"), "billing-engine-cur");
    json_t *d = json_object_get(b, "ReportDefinition");
    /* The full definition, plus the view AWS had (not ours to change). */
    assert_string_equal(str(d, "BillingViewArn"), VIEW);
    json_object_del(d, "BillingViewArn");
    expect_seed_definition(d);
    json_decref(b);

    ob_aws_result_t ok = reply("{}");
    expect_done(step(&r, &ok), "modified");
    const char *changes = r.s.state[5];
    assert_non_null(strstr(changes, "TimeUnit DAILY -> HOURLY"));
    assert_non_null(strstr(changes, "ReportVersioning CREATE_NEW_REPORT -> OVERWRITE_REPORT"));
    assert_null(strstr(changes, "S3Bucket"));
    finish(&r);
    free(p);
}

static void test_each_difference_is_seen(void **state)
{
    /* One member changed at a time: each one alone leads to Modify. */
    const char *variants[][2] = {
        {"\"Format\":\"textORcsv\"", "\"Format\":\"Parquet\""},
        {"\"Compression\":\"GZIP\"", "\"Compression\":\"ZIP\""},
        {"[\"RESOURCES\"]", "[]"},
        {"\"S3Bucket\":\"" BUCKET "\"", "\"S3Bucket\":\"old-bucket\""},
        {"\"S3Prefix\":\"CUR\"", "\"S3Prefix\":\"cur/\""},
        {"\"S3Region\":\"eu-west-1\"", "\"S3Region\":\"us-east-1\""},
        {"[\"REDSHIFT\"]", "[\"REDSHIFT\",\"QUICKSIGHT\"]"},
        {"\"RefreshClosedReports\":true", "\"RefreshClosedReports\":false"},
        {"\"RefreshClosedReports\":true,", ""},             /* absent: unknown, made explicit */
        {"\"ReportVersioning\":\"OVERWRITE_REPORT\",", ""}, /* absent: CREATE_NEW_REPORT */
    };
    const char *ours = OURS;
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        const char *at = strstr(ours, variants[i][0]);
        assert_non_null(at);
        char body[4096];
        snprintf(body, sizeof(body), "{\"ReportDefinitions\":[%.*s%s%s]}", (int)(at - ours), ours,
                 variants[i][1], at + strlen(variants[i][0]));
        run_t r;
        char *p = handoff(NULL);
        assert_int_equal(start(&r, p), OB_OK);
        step(&r, NULL);
        ob_aws_result_t page = reply(body);
        json_t *b = expect_call(step(&r, &page), "ModifyReportDefinition");
        json_decref(b);
        finish(&r);
        free(p);
    }
}

static void test_duplicate_name_race(void **state)
{
    /* Another attempt created it between our describe and our put: look again. */
    run_t r;
    char *p = handoff(NULL);
    assert_int_equal(start(&r, p), OB_OK);
    expect_describe(step(&r, NULL), NULL);
    ob_aws_result_t empty = reply("{\"ReportDefinitions\":[]}");
    json_decref(expect_call(step(&r, &empty), "PutReportDefinition"));
    ob_aws_result_t dup = aws_error(400, "DuplicateReportNameException",
                                    "A report with the specified name already exists in the "
                                    "account. Specify a different report name.",
                                    OB_RETRY_NO);
    expect_describe(step(&r, &dup), NULL);
    ob_aws_result_t found = reply("{\"ReportDefinitions\":[" OURS "]}");
    expect_done(step(&r, &found), "unchanged");
    finish(&r);

    /* It keeps happening (the report vanishes and reappears): give up after a few rounds. */
    assert_int_equal(start(&r, p), OB_OK);
    expect_describe(step(&r, NULL), NULL);
    for (int i = 0; i < 3; i++) {
        json_decref(expect_call(step(&r, &empty), "PutReportDefinition"));
        expect_describe(step(&r, &dup), NULL);
    }
    json_decref(expect_call(step(&r, &empty), "PutReportDefinition"));
    step(&r, &dup);
    expect_fail(&r.s, OB_DLQ_RETRIES_EXHAUSTED, "DuplicateReportNameException", "/report/name");
    assert_non_null(strstr(r.s.message, "another attempt"));
    finish(&r);
    free(p);
}

static void test_deleted_before_modify(void **state)
{
    run_t r;
    char *p = handoff(NULL);
    assert_int_equal(start(&r, p), OB_OK);
    step(&r, NULL);
    ob_aws_result_t page = reply(
        "{\"ReportDefinitions\":[" DEF("billing-engine-cur", "DAILY", "OVERWRITE_REPORT") "]}");
    json_decref(expect_call(step(&r, &page), "ModifyReportDefinition"));
    ob_aws_result_t gone = aws_error(
        400, "ValidationException",
        "The specified report (billing-engine-cur) in the request doesn't exist.", OB_RETRY_NO);
    expect_describe(step(&r, &gone), NULL);
    ob_aws_result_t empty = reply("{\"ReportDefinitions\":[]}");
    json_decref(expect_call(step(&r, &empty), "PutReportDefinition"));
    ob_aws_result_t ok = reply("{}");
    expect_done(step(&r, &ok), "created");
    finish(&r);
    free(p);
}

static void test_report_limit(void **state)
{
    run_t r;
    char *p = handoff(NULL);
    assert_int_equal(start(&r, p), OB_OK);
    step(&r, NULL);
    ob_aws_result_t page = reply("{\"ReportDefinitions\":[" FIVE "]}");
    json_decref(expect_call(step(&r, &page), "PutReportDefinition"));
    ob_aws_result_t limit = aws_error(400, "ReportLimitReachedException",
                                      "This account already has five reports defined. To define a "
                                      "new report, you must delete an existing report.",
                                      OB_RETRY_NO);
    step(&r, &limit);
    expect_fail(&r.s, OB_DLQ_PERMANENT, "ReportLimitReachedException", "/report/name");
    assert_non_null(strstr(r.s.message, "account " ACCT " already has 5"));
    assert_non_null(strstr(r.s.message, "finance-1, finance-2, finance-3, finance-4, finance-5"));
    assert_non_null(strstr(r.s.message, "billing-engine-cur"));
    assert_string_equal(r.s.aws_request_id, "RID-ReportLimitReachedException");
    assert_int_equal(r.s.http_status, 400);
    finish(&r);
    free(p);
}

static void test_validation_errors(void **state)
{
    char *p = handoff(NULL);
    run_t r;
    ob_aws_result_t empty = reply("{\"ReportDefinitions\":[]}");

    /* The bucket policy is missing or wrong: AWS's message, and what to do. */
    assert_int_equal(start(&r, p), OB_OK);
    step(&r, NULL);
    step(&r, &empty);
    ob_aws_result_t perm = aws_error(400, "ValidationException",
                                     "Failed to verify customer bucket permission. accountId= " ACCT
                                     ", bucket name: " BUCKET ", bucket region: eu-west-1",
                                     OB_RETRY_NO);
    step(&r, &perm);
    expect_fail(&r.s, OB_DLQ_PERMANENT, "ValidationException", "/bucket/name");
    assert_non_null(strstr(r.s.message, "Failed to verify customer bucket permission"));
    assert_non_null(strstr(r.s.message, "billingreports.amazonaws.com"));
    assert_non_null(strstr(r.s.message, "bucket stage"));
    assert_string_equal(r.s.aws_request_id, "RID-ValidationException");
    finish(&r);

    /* A constraint AWS names: its message as is. */
    assert_int_equal(start(&r, p), OB_OK);
    step(&r, NULL);
    step(&r, &empty);
    const char *named = "1 validation error detected: Value 'eu-west-1' at "
                        "'reportDefinition.s3Region' failed to satisfy constraint: Member must "
                        "satisfy enum value set: [us-east-1]";
    ob_aws_result_t v = aws_error(400, "ValidationException", named, OB_RETRY_NO);
    step(&r, &v);
    expect_fail(&r.s, OB_DLQ_PERMANENT, "ValidationException", "/report");
    assert_non_null(strstr(r.s.message, named));
    assert_non_null(strstr(r.s.message, "PutReportDefinition"));
    finish(&r);

    /* A combination AWS refuses with an empty message: say what was sent. */
    assert_int_equal(start(&r, p), OB_OK);
    step(&r, NULL);
    step(&r, &empty);
    ob_aws_result_t bare = aws_error(400, "ValidationException", "", OB_RETRY_NO);
    step(&r, &bare);
    expect_fail(&r.s, OB_DLQ_PERMANENT, "ValidationException", "/report");
    const char *want[] = {"TimeUnit HOURLY",
                          "Format textORcsv",
                          "Compression GZIP",
                          "AdditionalSchemaElements [RESOURCES]",
                          "AdditionalArtifacts [REDSHIFT]",
                          "ReportVersioning OVERWRITE_REPORT",
                          "RefreshClosedReports true",
                          "S3Bucket " BUCKET,
                          "S3Region eu-west-1",
                          "S3Prefix \"CUR\"",
                          "ReportName billing-engine-cur"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(r.s.message, want[i]))
            fail_msg("\"%s\" not in: %s", want[i], r.s.message);
    finish(&r);

    /* On Modify too (a report cannot be renamed, and so on). */
    assert_int_equal(start(&r, p), OB_OK);
    step(&r, NULL);
    ob_aws_result_t diff = reply(
        "{\"ReportDefinitions\":[" DEF("billing-engine-cur", "MONTHLY", "OVERWRITE_REPORT") "]}");
    json_decref(expect_call(step(&r, &diff), "ModifyReportDefinition"));
    step(&r, &bare);
    expect_fail(&r.s, OB_DLQ_PERMANENT, "ValidationException", "/report");
    assert_non_null(strstr(r.s.message, "ModifyReportDefinition"));
    assert_non_null(strstr(r.s.message, "TimeUnit HOURLY"));
    finish(&r);
    free(p);
}

static void test_throttling_5xx_and_transport(void **state)
{
    char *p = handoff(NULL);
    run_t r;

    /* Describe throttled through all HTTP retries. */
    assert_int_equal(start(&r, p), OB_OK);
    step(&r, NULL);
    ob_aws_result_t thr = aws_error(400, "ThrottlingException", "Rate exceeded", OB_RETRY_THROTTLE);
    step(&r, &thr);
    expect_fail(&r.s, OB_DLQ_RETRIES_EXHAUSTED, "ThrottlingException", "");
    assert_int_equal(r.s.http_status, 400);
    assert_string_equal(r.s.aws_request_id, "RID-ThrottlingException");
    finish(&r);

    /* Put answered 500 every time. */
    assert_int_equal(start(&r, p), OB_OK);
    step(&r, NULL);
    ob_aws_result_t empty = reply("{\"ReportDefinitions\":[]}");
    step(&r, &empty);
    ob_aws_result_t ie =
        aws_error(500, "InternalErrorException", "Internal error", OB_RETRY_TRANSIENT);
    step(&r, &ie);
    expect_fail(&r.s, OB_DLQ_RETRIES_EXHAUSTED, "InternalErrorException", "");
    assert_int_equal(r.s.http_status, 500);
    finish(&r);

    /* Modify: 503 without a body. */
    assert_int_equal(start(&r, p), OB_OK);
    step(&r, NULL);
    ob_aws_result_t diff = reply(
        "{\"ReportDefinitions\":[" DEF("billing-engine-cur", "DAILY", "OVERWRITE_REPORT") "]}");
    step(&r, &diff);
    ob_aws_result_t unavailable =
        aws_error(503, "ServiceUnavailable", "Service Unavailable", OB_RETRY_TRANSIENT);
    step(&r, &unavailable);
    expect_fail(&r.s, OB_DLQ_RETRIES_EXHAUSTED, "ServiceUnavailable", "");
    finish(&r);

    /* The role does not allow cur:*: permanent, AWS's words. */
    assert_int_equal(start(&r, p), OB_OK);
    step(&r, NULL);
    ob_aws_result_t denied =
        aws_error(400, "AccessDeniedException",
                  "User: arn:aws:sts::" ACCT ":assumed-role/x/y is not authorized to perform: "
                  "cur:DescribeReportDefinitions",
                  OB_RETRY_NO);
    step(&r, &denied);
    expect_fail(&r.s, OB_DLQ_PERMANENT, "AccessDeniedException", "");
    assert_non_null(strstr(r.s.message, "not authorized"));
    finish(&r);

    /* Connection errors through all retries. */
    assert_int_equal(start(&r, p), OB_OK);
    step(&r, NULL);
    ob_aws_result_t conn;
    memset(&conn, 0, sizeof(conn));
    conn.err = OB_ERR_CONN;
    conn.retry_class = OB_RETRY_TRANSIENT;
    snprintf(conn.errmsg, sizeof(conn.errmsg), "cur: connection refused");
    step(&r, &conn);
    expect_fail(&r.s, OB_DLQ_RETRIES_EXHAUSTED, ob_err2str(OB_ERR_CONN), "");
    finish(&r);
    free(p);
}

static void test_bad_replies(void **state)
{
    char *p = handoff(NULL);
    run_t r;
    const char *bodies[] = {
        "<html>proxy error</html>",                       /* not JSON */
        "{\"ReportDefinitions\":{\"ReportName\":\"x\"}}", /* not a list */
        "{\"ReportDefinitions\":[],\"NextToken\":5}",     /* token not a string */
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        assert_int_equal(start(&r, p), OB_OK);
        step(&r, NULL);
        ob_aws_result_t bad = reply(bodies[i]);
        step(&r, &bad);
        expect_fail(&r.s, OB_DLQ_RETRIES_EXHAUSTED, "bad_reply", "");
        assert_non_null(strstr(r.s.message, "DescribeReportDefinitions"));
        finish(&r);
    }

    /* The same NextToken again: the pages would never end. */
    assert_int_equal(start(&r, p), OB_OK);
    step(&r, NULL);
    ob_aws_result_t loop = reply("{\"ReportDefinitions\":[" OTHER("1") "],\"NextToken\":\"p1\"}");
    expect_describe(step(&r, &loop), "p1");
    step(&r, &loop);
    expect_fail(&r.s, OB_DLQ_RETRIES_EXHAUSTED, "bad_reply", "");
    finish(&r);

    /* New tokens forever: stop after a bounded number of pages. */
    assert_int_equal(start(&r, p), OB_OK);
    step(&r, NULL);
    int calls = 0;
    for (;;) {
        char body[128];
        snprintf(body, sizeof(body), "{\"ReportDefinitions\":[],\"NextToken\":\"t%d\"}", calls);
        ob_aws_result_t pg = reply(body);
        step(&r, &pg);
        if (r.s.kind != OB_STEP_CALL)
            break;
        assert_true(++calls < 100);
    }
    expect_fail(&r.s, OB_DLQ_RETRIES_EXHAUSTED, "bad_reply", "");
    assert_true(calls >= 2);
    finish(&r);
    free(p);
}

static void test_partitions(void **state)
{
    /* China: CUR lives in cn-northwest-1, whatever the account's region. */
    run_t r;
    char *p = handoff_at("cn-north-1", "aws-cn", NULL);
    assert_int_equal(start(&r, p), OB_OK);
    ob_step_t *s = step(&r, NULL);
    assert_int_equal(s->kind, OB_STEP_CALL);
    assert_string_equal(s->req.op, "DescribeReportDefinitions");
    assert_string_equal(s->region, "cn-northwest-1");
    ob_aws_result_t empty = reply("{\"ReportDefinitions\":[]}");
    s = step(&r, &empty);
    assert_string_equal(s->region, "cn-northwest-1");
    json_t *b = json_loadb(s->req.body.data, s->req.body.len, 0, NULL);
    assert_string_equal(str(json_object_get(b, "ReportDefinition"), "S3Region"), "cn-north-1");
    json_decref(b);
    finish(&r);
    free(p);

    /* GovCloud has no CUR: refused before any call, with the reason. */
    p = handoff_at("us-gov-west-1", "aws-us-gov", NULL);
    assert_int_not_equal(start(&r, p), OB_OK);
    expect_fail(&r.s, OB_DLQ_PERMANENT, "unsupported_partition", "/request/region");
    assert_non_null(strstr(r.s.message, "GovCloud"));
    finish(&r);
    free(p);
}

static void test_bad_input(void **state)
{
    /* A valid hand-off for the next stage, produced to the wrong topic. */
    char *iam = handoff(NULL);
    ob_stage_msg_t m;
    ob_msg_error_t me;
    assert_int_equal(ob_stage_parse(iam, strlen(iam), &m, &me), OB_OK);
    free(iam);
    m.stage = OB_STAGE_IAM;
    ob_stage_fill_report(&m);
    assert_int_equal(ob_stage_to_json(&m, &iam, NULL, &me), OB_OK);
    ob_stage_msg_clear(&m);

    char *good = handoff(NULL);
    /* A hand-off without its bucket result. */
    json_t *j = json_loads(good, 0, NULL);
    json_object_del(json_object_get(j, "results"), "bucket");
    char *nobucket = json_dumps(j, JSON_COMPACT);
    /* The intake request itself on the cur topic. */
    char *request = json_dumps(json_object_get(j, "request"), JSON_COMPACT);
    /* Settings AWS would refuse (Parquet format with GZIP): caught before any call. */
    json_t *rep = json_object_get(json_object_get(j, "request"), "report");
    json_object_set_new(rep, "format", json_string("Parquet"));
    json_object_set_new(rep, "artifacts", json_array());
    char *combo = json_dumps(j, JSON_COMPACT);
    json_decref(j);

    struct {
        const char *payload;
        ob_dlq_class_t cls;
        const char *code;
        const char *field;
    } cases[] = {
        {"not json", OB_DLQ_INVALID_INPUT, "not_json", ""},
        {"[]", OB_DLQ_INVALID_INPUT, "not_object", ""},
        {iam, OB_DLQ_INVALID_INPUT, "enum", "/stage"},
        {nobucket, OB_DLQ_INVALID_INPUT, "missing", "/results/bucket"},
        {request, OB_DLQ_INVALID_INPUT, "enum", "/schema"},
        {combo, OB_DLQ_INVALID_INPUT, "combination", "/request/report/compression"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_t r;
        assert_int_not_equal(start(&r, cases[i].payload), OB_OK);
        if (strcmp(r.s.code, cases[i].code) || strcmp(r.s.field, cases[i].field))
            fail_msg("case %zu: got %s at \"%s\": %s", i, r.s.code, r.s.field, r.s.message);
        expect_fail(&r.s, cases[i].cls, cases[i].code, cases[i].field);
        finish(&r);
    }
    free(iam);
    free(good);
    free(nobucket);
    free(request);
    free(combo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absent_report_is_created),
        cmocka_unit_test(test_earlier_reports_retired),
        cmocka_unit_test(test_empty_describe_body_and_tags),
        cmocka_unit_test(test_pages_followed_then_created),
        cmocka_unit_test(test_found_on_page_2_identical),
        cmocka_unit_test(test_identical_sets_and_defaults),
        cmocka_unit_test(test_different_is_modified),
        cmocka_unit_test(test_each_difference_is_seen),
        cmocka_unit_test(test_duplicate_name_race),
        cmocka_unit_test(test_deleted_before_modify),
        cmocka_unit_test(test_report_limit),
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_throttling_5xx_and_transport),
        cmocka_unit_test(test_bad_replies),
        cmocka_unit_test(test_partitions),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
