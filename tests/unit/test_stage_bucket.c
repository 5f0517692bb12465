/*
 * The bucket stage as pure logic: the AWS calls it asks for, in order and
 * with the right bodies; how each reply moves it on (BucketAlreadyOwnedByYou
 * is a rerun, BucketAlreadyExists is permanent, throttling after the HTTP
 * retries is retries-exhausted); the hand-off it emits; the routing of
 * existing accounts; and the dead-letter reasons for bad input.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_xml.h"
#include "stages.h"
#include "testutil.h"

#define ROLE "arn:aws:iam::123456789012:role/OrganizationAccountAccessRole"

static char *request(const char *mode, const char *region, const char *extra)
{
    char *s = malloc(2048);
    snprintf(s, 2048,
             "{\"schema\":\"onboard.request/1\",\"request_id\":\"req-1\",\"account_id\":"
             "\"123456789012\",\"cloud\":\"aws\",\"mode\":\"%s\",\"region\":\"%s\","
             "\"role_arn\":\"" ROLE "\"%s}",
             mode, region, extra ? extra : "");
    return s;
}

typedef struct run_s {
    void *st;
    ob_job_plan_t plan;
} run_t;

static ob_err_t start(run_t *r, const char *payload, ob_step_t *fail)
{
    r->st = calloc(1, ob_stage_bucket.state_size);
    memset(&r->plan, 0, sizeof(r->plan));
    return ob_stage_bucket.parse(r->st, NULL, NULL, payload, strlen(payload), &r->plan, fail);
}

/* A request parsed as a worker with the Organizations check on parses it,
 * with that worker's context. */
static ob_err_t start_org(run_t *r, void *ctx, const char *payload, ob_step_t *fail)
{
    ob_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.intake_org_check = 1;
    r->st = calloc(1, ob_stage_bucket.state_size);
    memset(&r->plan, 0, sizeof(r->plan));
    return ob_stage_bucket.parse(r->st, ctx, &cfg, payload, strlen(payload), &r->plan, fail);
}

static void finish(run_t *r)
{
    ob_stage_bucket.clear(r->st);
    free(r->st);
}

static ob_aws_result_t ok_result(void)
{
    ob_aws_result_t res;
    memset(&res, 0, sizeof(res));
    res.err = OB_OK;
    res.status = 200;
    return res;
}

static ob_aws_result_t aws_error(long status, const char *code, ob_retry_class_t cls)
{
    ob_aws_result_t res;
    memset(&res, 0, sizeof(res));
    res.err = OB_ERR_AWS;
    res.status = status;
    res.retry_class = cls;
    snprintf(res.aws.code, sizeof(res.aws.code), "%s", code);
    snprintf(res.aws.request_id, sizeof(res.aws.request_id), "RID123");
    snprintf(res.errmsg, sizeof(res.errmsg), "s3: %s", code);
    return res;
}

static void expect_call(ob_step_t *s, const char *op, const char *query)
{
    assert_int_equal(s->kind, OB_STEP_CALL);
    assert_string_equal(s->req.op, op);
    assert_string_equal(s->req.method, "PUT");
    assert_string_equal(s->s3_bucket, "billing-cur-123456789012-eu-west-1");
    assert_string_equal(s->region, "eu-west-1");
    assert_string_equal(s->req.query.data ? s->req.query.data : "", query);
}

static void test_new_account_happy_path(void **state)
{
    run_t r;
    ob_step_t s;
    memset(&s, 0, sizeof(s));
    char *p = request("new", "eu-west-1", NULL);
    assert_int_equal(start(&r, p, &s), OB_OK);
    assert_string_equal(r.plan.account_id, "123456789012");
    assert_string_equal(r.plan.role_arn, ROLE);
    assert_string_equal(r.plan.region, "eu-west-1");

    ob_stage_bucket.step(r.st, NULL, &s);
    expect_call(&s, "CreateBucket", "");
    assert_non_null(strstr(s.req.body.data, "<LocationConstraint>eu-west-1</LocationConstraint>"));
    ob_step_clear(&s);

    ob_aws_result_t ok = ok_result();
    ob_stage_bucket.step(r.st, &ok, &s);
    expect_call(&s, "PutBucketPolicy", "policy");
    assert_non_null(ob_hdrs_get(&s.req.headers, "Content-MD5"));
    json_t *pol = json_loads(s.req.body.data, 0, NULL);
    assert_non_null(pol);
    json_t *st0 = json_array_get(json_object_get(pol, "Statement"), 0);
    json_t *st1 = json_array_get(json_object_get(pol, "Statement"), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(st0, "Principal"), "Service")),
        "billingreports.amazonaws.com");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(st1, "Principal"), "Service")),
        "bcm-data-exports.amazonaws.com");
    json_t *cond = json_object_get(json_object_get(st0, "Condition"), "StringEquals");
    assert_string_equal(json_string_value(json_object_get(cond, "aws:SourceAccount")),
                        "123456789012");
    assert_string_equal(json_string_value(json_object_get(cond, "aws:SourceArn")),
                        "arn:aws:cur:us-east-1:123456789012:definition/*");
    json_decref(pol);
    ob_step_clear(&s);

    ob_stage_bucket.step(r.st, &ok, &s);
    expect_call(&s, "PutPublicAccessBlock", "publicAccessBlock");
    assert_non_null(strstr(s.req.body.data, "<BlockPublicPolicy>true</BlockPublicPolicy>"));
    ob_step_clear(&s);
    ob_stage_bucket.step(r.st, &ok, &s);
    expect_call(&s, "PutBucketEncryption", "encryption");
    assert_non_null(strstr(s.req.body.data, "AES256"));
    ob_step_clear(&s);
    ob_stage_bucket.step(r.st, &ok, &s);
    expect_call(&s, "PutBucketOwnershipControls", "ownershipControls");
    assert_non_null(strstr(s.req.body.data, "BucketOwnerEnforced"));
    ob_step_clear(&s);

    ob_stage_bucket.step(r.st, &ok, &s);
    assert_int_equal(s.kind, OB_STEP_DONE);
    assert_string_equal(s.emit_topic, "cur");
    ob_stage_msg_t m;
    ob_msg_error_t me;
    assert_int_equal(ob_stage_parse(s.emit, strlen(s.emit), &m, &me), OB_OK);
    assert_int_equal(m.stage, OB_STAGE_CUR);
    assert_true(m.has_bucket);
    assert_string_equal(m.bucket.name, "billing-cur-123456789012-eu-west-1");
    assert_string_equal(m.bucket.arn, "arn:aws:s3:::billing-cur-123456789012-eu-west-1");
    assert_true(m.trace[OB_STAGE_BUCKET].present);
    ob_stage_msg_clear(&m);
    ob_step_clear(&s);
    finish(&r);
    free(p);
}

static void test_us_east_1_has_no_constraint(void **state)
{
    run_t r;
    ob_step_t s;
    memset(&s, 0, sizeof(s));
    char *p = request("new", "us-east-1", ",\"bucket\":{\"name\":\"my-cur-bucket\"}");
    assert_int_equal(start(&r, p, &s), OB_OK);
    ob_stage_bucket.step(r.st, NULL, &s);
    assert_int_equal(s.kind, OB_STEP_CALL);
    assert_string_equal(s.req.op, "CreateBucket");
    assert_string_equal(s.s3_bucket, "my-cur-bucket");
    assert_int_equal(s.req.body.len, 0);
    ob_step_clear(&s);
    finish(&r);
    free(p);
}

static void test_bucket_errors(void **state)
{
    run_t r;
    ob_step_t s;
    memset(&s, 0, sizeof(s));
    char *p = request("new", "eu-west-1", NULL);

    /* A rerun: the bucket is ours already. */
    assert_int_equal(start(&r, p, &s), OB_OK);
    ob_stage_bucket.step(r.st, NULL, &s);
    ob_step_clear(&s);
    ob_aws_result_t owned = aws_error(409, "BucketAlreadyOwnedByYou", OB_RETRY_NO);
    ob_stage_bucket.step(r.st, &owned, &s);
    assert_int_equal(s.kind, OB_STEP_CALL);
    assert_string_equal(s.req.op, "PutBucketPolicy");
    ob_step_clear(&s);
    finish(&r);

    /* Someone else's bucket: permanent, with the field to fix. */
    assert_int_equal(start(&r, p, &s), OB_OK);
    ob_stage_bucket.step(r.st, NULL, &s);
    ob_step_clear(&s);
    ob_aws_result_t taken = aws_error(409, "BucketAlreadyExists", OB_RETRY_NO);
    ob_stage_bucket.step(r.st, &taken, &s);
    assert_int_equal(s.kind, OB_STEP_FAIL);
    assert_int_equal(s.fail_class, OB_DLQ_PERMANENT);
    assert_string_equal(s.code, "BucketAlreadyExists");
    assert_string_equal(s.field, "/bucket/name");
    assert_string_equal(s.aws_request_id, "RID123");
    assert_non_null(strstr(s.message, "taken by another AWS account"));
    ob_step_clear(&s);
    finish(&r);

    /* Throttled through all HTTP retries: retries exhausted. */
    assert_int_equal(start(&r, p, &s), OB_OK);
    ob_stage_bucket.step(r.st, NULL, &s);
    ob_step_clear(&s);
    ob_aws_result_t ok = ok_result();
    ob_stage_bucket.step(r.st, &ok, &s);
    ob_step_clear(&s);
    ob_aws_result_t slow = aws_error(503, "SlowDown", OB_RETRY_THROTTLE);
    ob_stage_bucket.step(r.st, &slow, &s);
    assert_int_equal(s.kind, OB_STEP_FAIL);
    assert_int_equal(s.fail_class, OB_DLQ_RETRIES_EXHAUSTED);
    assert_string_equal(s.code, "SlowDown");
    assert_int_equal(s.http_status, 503);
    ob_step_clear(&s);
    finish(&r);
    free(p);
}

/* A 200 with a JSON body (the buffer is the test's). */
static ob_aws_result_t json_reply(const char *body)
{
    ob_aws_result_t res = ok_result();
    res.body.data = (char *)body;
    res.body.len = strlen(body);
    return res;
}

/* The step must be a page of DescribeReportDefinitions (token: the
 * NextToken it must send, NULL: none). */
static void expect_describe(const ob_step_t *s, const char *region, const char *token)
{
    assert_int_equal(s->kind, OB_STEP_CALL);
    assert_string_equal(s->req.op, "DescribeReportDefinitions");
    assert_int_equal(s->req.svc, OB_SVC_CUR);
    assert_string_equal(s->region, region);
    json_t *b = json_loadb(s->req.body.data, s->req.body.len, 0, NULL);
    assert_non_null(b);
    assert_int_equal(json_integer_value(json_object_get(b, "MaxResults")), 5);
    if (token)
        assert_string_equal(json_string_value(json_object_get(b, "NextToken")), token);
    else
        assert_null(json_object_get(b, "NextToken"));
    json_decref(b);
}

#define REPORT(name, bucket)                                                                       \
    "{\"ReportName\":\"" name "\",\"S3Bucket\":\"" bucket "\",\"S3Prefix\":\"cur/\","              \
    "\"S3Region\":\"eu-central-1\",\"TimeUnit\":\"HOURLY\"}"

/* An existing account: its CUR is looked up (the report on the bucket the
 * request names, across pages, or the first one), and travels with the
 * hand-off to iam; none is a permanent failure; GovCloud has no CUR to look
 * in. */
static void test_existing_account_goes_to_iam(void **state)
{
    run_t r;
    ob_step_t s;
    memset(&s, 0, sizeof(s));
    char *p = request("existing", "eu-west-1", NULL);
    assert_int_equal(start(&r, p, &s), OB_OK);
    ob_stage_bucket.step(r.st, NULL, &s);
    expect_describe(&s, "us-east-1", NULL);
    ob_step_clear(&s);
    ob_aws_result_t page = json_reply("{\"ReportDefinitions\":[" REPORT(
        "finance", "acme-cur") "," REPORT("other", "acme-other") "]}");
    ob_stage_bucket.step(r.st, &page, &s);
    assert_int_equal(s.kind, OB_STEP_DONE);
    assert_string_equal(s.emit_topic, "iam");
    ob_stage_msg_t m;
    ob_msg_error_t me;
    assert_int_equal(ob_stage_parse(s.emit, strlen(s.emit), &m, &me), OB_OK);
    assert_int_equal(m.stage, OB_STAGE_IAM);
    assert_false(m.has_bucket);
    assert_true(m.has_report);
    assert_string_equal(m.report.name, "finance");
    assert_string_equal(m.report.bucket, "acme-cur");
    assert_string_equal(m.report.prefix, "cur/");
    assert_string_equal(m.report.region, "eu-central-1");
    ob_stage_msg_clear(&m);
    ob_step_clear(&s);
    finish(&r);
    free(p);

    /* The request names the bucket: the report there, on page 2. */
    p = request("existing", "eu-west-1", ",\"bucket\":{\"name\":\"acme-other\"}");
    assert_int_equal(start(&r, p, &s), OB_OK);
    ob_stage_bucket.step(r.st, NULL, &s);
    ob_step_clear(&s);
    page = json_reply(
        "{\"ReportDefinitions\":[" REPORT("finance", "acme-cur") "],"
                                                                 "\"NextToken\":\"t2\"}");
    ob_stage_bucket.step(r.st, &page, &s);
    expect_describe(&s, "us-east-1", "t2");
    ob_step_clear(&s);
    page = json_reply("{\"ReportDefinitions\":[" REPORT("other", "acme-other") "]}");
    ob_stage_bucket.step(r.st, &page, &s);
    assert_int_equal(s.kind, OB_STEP_DONE);
    assert_int_equal(ob_stage_parse(s.emit, strlen(s.emit), &m, &me), OB_OK);
    assert_string_equal(m.report.name, "other");
    ob_stage_msg_clear(&m);
    ob_step_clear(&s);
    finish(&r);

    /* No report on that bucket: refused, naming what there is. */
    assert_int_equal(start(&r, p, &s), OB_OK);
    ob_stage_bucket.step(r.st, NULL, &s);
    ob_step_clear(&s);
    page = json_reply("{\"ReportDefinitions\":[" REPORT("finance", "acme-cur") "]}");
    ob_stage_bucket.step(r.st, &page, &s);
    assert_int_equal(s.kind, OB_STEP_FAIL);
    assert_int_equal(s.fail_class, OB_DLQ_PERMANENT);
    assert_string_equal(s.code, "no_cur_report");
    assert_string_equal(s.field, "/bucket/name");
    assert_non_null(strstr(s.message, "finance (bucket acme-cur)"));
    ob_step_clear(&s);
    finish(&r);
    free(p);

    /* No report at all. */
    p = request("existing", "eu-west-1", NULL);
    assert_int_equal(start(&r, p, &s), OB_OK);
    ob_stage_bucket.step(r.st, NULL, &s);
    ob_step_clear(&s);
    page = json_reply("{\"ReportDefinitions\":[]}");
    ob_stage_bucket.step(r.st, &page, &s);
    assert_int_equal(s.kind, OB_STEP_FAIL);
    assert_string_equal(s.code, "no_cur_report");
    assert_string_equal(s.field, "/mode");
    ob_step_clear(&s);
    finish(&r);
    free(p);

    /* China keeps CUR in cn-northwest-1; GovCloud has none: straight on. */
    char gov[2048];
    snprintf(gov, sizeof(gov),
             "{\"schema\":\"onboard.request/1\",\"request_id\":\"req-1\",\"account_id\":"
             "\"123456789012\",\"cloud\":\"aws\",\"mode\":\"existing\",\"region\":"
             "\"us-gov-west-1\",\"role_arn\":\"arn:aws-us-gov:iam::123456789012:role/Onboard\"}");
    assert_int_equal(start(&r, gov, &s), OB_OK);
    ob_stage_bucket.step(r.st, NULL, &s);
    assert_int_equal(s.kind, OB_STEP_DONE);
    assert_int_equal(ob_stage_parse(s.emit, strlen(s.emit), &m, &me), OB_OK);
    assert_false(m.has_report);
    ob_stage_msg_clear(&m);
    ob_step_clear(&s);
    finish(&r);
}

static void test_bad_input(void **state)
{
    struct {
        const char *payload;
        ob_dlq_class_t cls;
        const char *code;
        const char *field;
    } cases[] = {
        {"not json", OB_DLQ_INVALID_INPUT, "not_json", ""},
        {"[]", OB_DLQ_INVALID_INPUT, "not_object", ""},
        {"{\"schema\":\"onboard.request/1\",\"request_id\":\"r\",\"account_id\":\"12345\","
         "\"cloud\":\"aws\",\"mode\":\"new\",\"region\":\"eu-west-1\",\"role_arn\":\"" ROLE "\"}",
         OB_DLQ_INVALID_INPUT, "pattern", "/account_id"},
        {"{\"schema\":\"onboard.request/1\",\"request_id\":\"r\",\"account_id\":\"123456789012\","
         "\"cloud\":\"azure\",\"mode\":\"new\",\"region\":\"eu-west-1\",\"role_arn\":\"" ROLE "\"}",
         OB_DLQ_UNSUPPORTED_CLOUD, "unsupported_cloud", "/cloud"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_t r;
        ob_step_t s;
        memset(&s, 0, sizeof(s));
        assert_int_not_equal(start(&r, cases[i].payload, &s), OB_OK);
        assert_int_equal(s.kind, OB_STEP_FAIL);
        assert_int_equal(s.fail_class, cases[i].cls);
        assert_string_equal(s.code, cases[i].code);
        assert_string_equal(s.field, cases[i].field);
        assert_true(strlen(s.message) > 0);
        ob_step_clear(&s);
        finish(&r);
    }
}

/* Handed back after CreateBucket and PutBucketPolicy: the snapshot says so,
 * and the next holder goes on with PutPublicAccessBlock. Nothing to record
 * before the first call is answered; nonsense is ignored. */
static void test_hand_back_and_resume(void **state)
{
    run_t a;
    ob_step_t s;
    memset(&s, 0, sizeof(s));
    char *p = request("new", "eu-west-1", NULL);
    assert_int_equal(start(&a, p, &s), OB_OK);
    assert_null(ob_stage_bucket.snapshot(a.st));
    ob_stage_bucket.step(a.st, NULL, &s);
    expect_call(&s, "CreateBucket", "");
    ob_step_clear(&s);
    assert_null(ob_stage_bucket.snapshot(a.st)); /* its call is not answered yet */
    ob_aws_result_t ok = ok_result();
    ob_stage_bucket.step(a.st, &ok, &s);
    expect_call(&s, "PutBucketPolicy", "policy");
    ob_step_clear(&s);
    ob_stage_bucket.step(a.st, &ok, &s);
    expect_call(&s, "PutPublicAccessBlock", "publicAccessBlock");
    ob_step_clear(&s);
    char progress[64];
    snprintf(progress, sizeof(progress), "%s", ob_stage_bucket.snapshot(a.st));
    finish(&a);

    run_t b;
    assert_int_equal(start(&b, p, &s), OB_OK);
    ob_stage_bucket.resume(b.st, "nonsense");
    ob_stage_bucket.resume(b.st, "bucket-calls-done 99");
    ob_stage_bucket.resume(b.st, progress);
    ob_stage_bucket.step(b.st, NULL, &s);
    expect_call(&s, "PutPublicAccessBlock", "publicAccessBlock");
    ob_step_clear(&s);
    ob_stage_bucket.step(b.st, &ok, &s);
    expect_call(&s, "PutBucketEncryption", "encryption");
    ob_step_clear(&s);
    finish(&b);

    /* Without it, a new holder starts over with CreateBucket. */
    run_t c;
    assert_int_equal(start(&c, p, &s), OB_OK);
    ob_stage_bucket.resume(c.st, "bucket-calls-done 99");
    ob_stage_bucket.step(c.st, NULL, &s);
    expect_call(&s, "CreateBucket", "");
    ob_step_clear(&s);
    finish(&c);
    free(p);
}

/* A fleet that cannot see an organization stops asking for a while, and
 * what it learned is its own worker's: another worker (another context)
 * still asks. */
static void test_org_blindness_is_per_worker(void **state)
{
    void *ctx_a = ob_stage_bucket.ctx_new();
    void *ctx_b = ob_stage_bucket.ctx_new();
    run_t r;
    ob_step_t s;
    memset(&s, 0, sizeof(s));
    char *p = request("new", "eu-west-1", NULL);

    /* Worker A asks, and hears that its identity sees no organization. */
    assert_int_equal(start_org(&r, ctx_a, p, &s), OB_OK);
    ob_stage_bucket.step(r.st, NULL, &s);
    assert_int_equal(s.kind, OB_STEP_CALL);
    assert_string_equal(s.req.op, "DescribeAccount");
    assert_true(s.as_fleet);
    ob_step_clear(&s);
    ob_aws_result_t denied = aws_error(400, "AWSOrganizationsNotInUseException", OB_RETRY_NO);
    ob_stage_bucket.step(r.st, &denied, &s);
    expect_call(&s, "CreateBucket", ""); /* on with the stage's own work */
    ob_step_clear(&s);
    finish(&r);

    /* Its next request goes straight to the bucket. */
    assert_int_equal(start_org(&r, ctx_a, p, &s), OB_OK);
    ob_stage_bucket.step(r.st, NULL, &s);
    expect_call(&s, "CreateBucket", "");
    ob_step_clear(&s);
    finish(&r);

    /* Worker B has learned nothing: it asks. */
    assert_int_equal(start_org(&r, ctx_b, p, &s), OB_OK);
    ob_stage_bucket.step(r.st, NULL, &s);
    assert_string_equal(s.req.op, "DescribeAccount");
    ob_step_clear(&s);
    finish(&r);

    free(p);
    ob_stage_bucket.ctx_free(ctx_a);
    ob_stage_bucket.ctx_free(ctx_b);
}

/* ---- the Organizations check in bulk ---- */

static uint64_t fake_now;
static uint64_t fake_clock(void)
{
    return fake_now;
}

/* A worker's ctx on the fake clock, set to start. */
static void *org_ctx(uint64_t start)
{
    void *ctx = ob_stage_bucket.ctx_new();
    fake_now = start;
    ob_stage_bucket_clock(ctx, fake_clock);
    return ctx;
}

static char *member_request(int i)
{
    char *s = malloc(1024);
    snprintf(s, 1024,
             "{\"schema\":\"onboard.request/1\",\"request_id\":\"req-%d\",\"account_id\":"
             "\"%012lld\",\"cloud\":\"aws\",\"mode\":\"new\",\"region\":\"eu-west-1\","
             "\"role_arn\":\"arn:aws:iam::%012lld:role/OrganizationAccountAccessRole\"}",
             i, 200000000000LL + i, 200000000000LL + i);
    return s;
}

/* Member i's job, started on ctx, and its first step. */
static ob_step_t *org_start(run_t *r, void *ctx, int i, ob_step_t *s)
{
    char *p = member_request(i);
    memset(s, 0, sizeof(*s));
    assert_int_equal(start_org(r, ctx, p, s), OB_OK);
    free(p);
    ob_stage_bucket.step(r->st, NULL, s);
    return s;
}

static void expect_op(ob_step_t *s, const char *op)
{
    if (s->kind != OB_STEP_CALL || strcmp(s->req.op, op) != 0)
        fail_msg("expected a call of %s, got step kind %d %s (%s: %s)", op, s->kind,
                 s->kind == OB_STEP_CALL ? s->req.op : "", s->code, s->message);
    ob_step_clear(s);
}

/* A ListAccounts page must ask for 20 from token (NULL: the first). */
static void expect_list(ob_step_t *s, const char *token)
{
    assert_int_equal(s->kind, OB_STEP_CALL);
    assert_string_equal(s->req.op, "ListAccounts");
    assert_true(s->as_fleet);
    assert_string_equal(s->region, "us-east-1");
    json_t *b = json_loadb(s->req.body.data, s->req.body.len, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(b, "MaxResults")), 20);
    if (token)
        assert_string_equal(json_string_value(json_object_get(b, "NextToken")), token);
    else
        assert_null(json_object_get(b, "NextToken"));
    json_decref(b);
    ob_step_clear(s);
}

static void expect_wait_ms(ob_step_t *s, uint64_t ms)
{
    assert_int_equal(s->kind, OB_STEP_WAIT);
    assert_int_equal(s->wait_ms, ms);
}

/* Members 1 to 20 reach the check within a second and are asked about one
 * by one; the 21st (r[21], left running) lists the organization. */
static void burst_starts_listing(void *ctx, run_t *r)
{
    ob_step_t s;
    for (int i = 1; i <= 20; i++) {
        expect_op(org_start(&r[i], ctx, i, &s), "DescribeAccount");
        finish(&r[i]);
    }
    expect_list(org_start(&r[21], ctx, 21, &s), NULL);
}

/* Many accounts at once: the first 20 are asked about one by one, the 21st
 * lists the organization (two pages) while the others wait, then each is
 * checked against the listing without a call: an ACTIVE member goes on, a
 * SUSPENDED one is refused, one not listed is asked about. The listing is
 * forgotten after five minutes. */
static void test_org_check_in_bulk(void **state)
{
    (void)state;
    void *ctx = org_ctx(1000000);
    enum { N = 26 };
    static run_t r[N + 1];
    ob_step_t s;
    burst_starts_listing(ctx, r);
    expect_wait_ms(org_start(&r[22], ctx, 22, &s), 100);
    ob_stage_bucket.step(r[22].st, NULL, &s);
    expect_wait_ms(&s, 200);
    expect_wait_ms(org_start(&r[23], ctx, 23, &s), 100);
    expect_wait_ms(org_start(&r[24], ctx, 24, &s), 100);
    ob_aws_result_t page1 =
        json_reply("{\"Accounts\":[{\"Id\":\"200000000022\",\"State\":\"ACTIVE\"},"
                   "{\"Id\":\"200000000023\",\"State\":\"SUSPENDED\",\"Status\":\"SUSPENDED\"},"
                   "{\"Id\":\"200000000021\",\"Status\":\"ACTIVE\"}],\"NextToken\":\"page-2\"}");
    ob_stage_bucket.step(r[21].st, &page1, &s);
    expect_list(&s, "page-2");
    /* A waiter the first page lists goes on before the listing ends; one it
     * does not list waits on. */
    ob_stage_bucket.step(r[22].st, NULL, &s);
    expect_op(&s, "CreateBucket");
    finish(&r[22]);
    ob_stage_bucket.step(r[24].st, NULL, &s);
    expect_wait_ms(&s, 200);
    ob_aws_result_t page2 =
        json_reply("{\"Accounts\":[{\"Id\":\"200000000025\",\"State\":\"ACTIVE\"},{\"Id\":\"bad\"},"
                   "{\"Id\":\"200000000010\",\"State\":\"ACTIVE\"}]}");
    ob_stage_bucket.step(r[21].st, &page2, &s);
    expect_op(&s, "CreateBucket"); /* the lister's own check, from the listing */
    finish(&r[21]);
    ob_stage_bucket.step(r[23].st, NULL, &s);
    assert_int_equal(s.kind, OB_STEP_FAIL);
    assert_string_equal(s.code, "account_not_active");
    assert_non_null(strstr(s.message, "SUSPENDED"));
    ob_step_clear(&s);
    finish(&r[23]);
    ob_stage_bucket.step(r[24].st, NULL, &s);
    expect_op(&s, "DescribeAccount"); /* not listed: joined since, or outside */
    finish(&r[24]);
    expect_op(org_start(&r[25], ctx, 25, &s), "CreateBucket");
    finish(&r[25]);
    expect_op(org_start(&r[10], ctx, 10, &s), "CreateBucket"); /* merged in order */
    finish(&r[10]);
    /* Five minutes on, the listing is forgotten. */
    fake_now += 5 * 60 * 1000;
    expect_op(org_start(&r[25], ctx, 25, &s), "DescribeAccount");
    finish(&r[25]);
    ob_stage_bucket.ctx_free(ctx);
}

/* A listing that fails is forgotten: the lister and the waiters ask for
 * themselves, and no listing starts for a minute. A lister handed back
 * (its state cleared) lets a waiter list. A listing that makes no progress
 * for 30 s sends the waiters to ask for themselves. */
static void test_org_listing_failures(void **state)
{
    (void)state;
    void *ctx = org_ctx(5000000);
    static run_t r[30];
    ob_step_t s;
    burst_starts_listing(ctx, r);
    expect_wait_ms(org_start(&r[22], ctx, 22, &s), 100);
    ob_aws_result_t throttled = aws_error(400, "TooManyRequestsException", OB_RETRY_THROTTLE);
    ob_stage_bucket.step(r[21].st, &throttled, &s);
    expect_op(&s, "DescribeAccount");
    finish(&r[21]);
    ob_stage_bucket.step(r[22].st, NULL, &s);
    expect_op(&s, "DescribeAccount");
    finish(&r[22]);
    expect_op(org_start(&r[23], ctx, 23, &s), "DescribeAccount"); /* none for a minute */
    finish(&r[23]);

    /* A minute on: a burst lists again; its lister is handed back, and a
     * waiter takes the listing over. */
    fake_now += 61 * 1000;
    burst_starts_listing(ctx, r);
    expect_wait_ms(org_start(&r[22], ctx, 22, &s), 100);
    expect_wait_ms(org_start(&r[23], ctx, 23, &s), 100);
    finish(&r[21]);
    ob_stage_bucket.step(r[22].st, NULL, &s);
    expect_list(&s, NULL);
    /* It stalls: after 30 s without a page the waiter asks for itself. */
    fake_now += 29 * 1000;
    ob_stage_bucket.step(r[23].st, NULL, &s);
    expect_wait_ms(&s, 200);
    fake_now += 1000;
    ob_stage_bucket.step(r[23].st, NULL, &s);
    expect_op(&s, "DescribeAccount");
    finish(&r[23]);
    finish(&r[22]);
    ob_stage_bucket.ctx_free(ctx);
}

/* ---- the standing snapshot (intake.organization.standing) ---- */

static const char *chore_region; /* lifecycle.region */

static void chore(void *ctx, int standing, const ob_aws_result_t *res, ob_step_t *s)
{
    ob_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.intake_org_check = 1;
    cfg.intake_org_standing = standing;
    cfg.lifecycle_region = (char *)chore_region;
    memset(s, 0, sizeof(*s));
    ob_stage_bucket.chore(ctx, &cfg, res, s);
}

/* Member i's check: 1 it went on without a call (CreateBucket next), 0 it
 * asked Organizations, -1 it was refused (state not ACTIVE). */
static int checked(void *ctx, int i)
{
    run_t r;
    ob_step_t s;
    org_start(&r, ctx, i, &s);
    int rc = s.kind == OB_STEP_FAIL && !strcmp(s.code, "account_not_active")  ? -1
             : s.kind == OB_STEP_CALL && !strcmp(s.req.op, "CreateBucket")    ? 1
             : s.kind == OB_STEP_CALL && !strcmp(s.req.op, "DescribeAccount") ? 0
                                                                              : -2;
    if (rc == -2)
        fail_msg("member %d: unexpected step kind %d %s (%s)", i, s.kind,
                 s.kind == OB_STEP_CALL ? s.req.op : "", s.code);
    ob_step_clear(&s);
    finish(&r);
    return rc;
}

/* The worker's chore lists the organization from its start: an account
 * that comes alone meanwhile is asked about (no reason to hold it back), a
 * listed one then goes on without a call. The listing is made again from
 * 3 min 45 s on, while the old one serves, only once the snapshot answered
 * as many checks as its listing made calls; the new listing's states
 * replace the old. A refresh that fails leaves the old serving until it
 * expires and is not tried again for a minute; a snapshot that expires
 * while a refresh runs is replaced by the refresh's pages so far. */
static void test_org_standing_snapshot(void **state)
{
    (void)state;
    void *ctx = org_ctx(9000000);
    ob_step_t s;
    chore(ctx, 0, NULL, &s);
    assert_int_equal(s.kind, OB_STEP_DONE); /* off: nothing to keep */
    chore(ctx, 1, NULL, &s);
    expect_list(&s, NULL);
    assert_int_equal(checked(ctx, 5), 0); /* alone, while the listing runs */
    ob_aws_result_t page1 =
        json_reply("{\"Accounts\":[{\"Id\":\"200000000001\",\"State\":\"ACTIVE\"},"
                   "{\"Id\":\"200000000002\",\"State\":\"ACTIVE\"}],\"NextToken\":\"t2\"}");
    chore(ctx, 1, &page1, &s);
    expect_list(&s, "t2");
    assert_int_equal(checked(ctx, 1), 1); /* listed so far */
    ob_aws_result_t page2 =
        json_reply("{\"Accounts\":[{\"Id\":\"200000000003\",\"State\":\"ACTIVE\"}]}");
    chore(ctx, 1, &page2, &s);
    expect_wait_ms(&s, 1000);
    assert_int_equal(checked(ctx, 3), 1);
    assert_int_equal(checked(ctx, 4), 0); /* not listed */

    /* 4 minutes on: one check answered for two calls made, not worth a
     * refresh; a second check makes it worth one. */
    fake_now += 4 * 60 * 1000;
    chore(ctx, 1, NULL, &s);
    expect_wait_ms(&s, 1000);
    assert_int_equal(checked(ctx, 1), 1);
    chore(ctx, 1, NULL, &s);
    expect_list(&s, NULL);
    chore(ctx, 1, NULL, &s); /* a tick while its page is out: nothing more */
    expect_wait_ms(&s, 1000);
    assert_int_equal(checked(ctx, 2), 1); /* the old snapshot serves meanwhile */
    ob_aws_result_t fresh =
        json_reply("{\"Accounts\":[{\"Id\":\"200000000002\",\"State\":\"SUSPENDED\"},"
                   "{\"Id\":\"200000000004\",\"State\":\"ACTIVE\"}]}");
    chore(ctx, 1, &fresh, &s);
    expect_wait_ms(&s, 1000);
    assert_int_equal(checked(ctx, 2), -1);
    assert_int_equal(checked(ctx, 4), 1);
    assert_int_equal(checked(ctx, 1), 0); /* left the organization, or never listed again */

    /* 4 minutes on (2 checks answered for 1 call): the refresh is
     * throttled. */
    fake_now += 4 * 60 * 1000;
    chore(ctx, 1, NULL, &s);
    expect_list(&s, NULL);
    ob_aws_result_t throttled = aws_error(400, "TooManyRequestsException", OB_RETRY_THROTTLE);
    chore(ctx, 1, &throttled, &s);
    expect_wait_ms(&s, 1000);
    assert_int_equal(checked(ctx, 4), 1); /* serves on */
    fake_now += 30 * 1000;
    chore(ctx, 1, NULL, &s);
    expect_wait_ms(&s, 1000); /* none within a minute of the failure */
    fake_now += 31 * 1000;
    chore(ctx, 1, NULL, &s);
    expect_list(&s, NULL);
    ob_aws_result_t part = json_reply(
        "{\"Accounts\":[{\"Id\":\"200000000004\",\"State\":\"ACTIVE\"}],\"NextToken\":\"x\"}");
    chore(ctx, 1, &part, &s);
    expect_list(&s, "x");
    /* The snapshot expires with the refresh at its first page: that page
     * serves, the rest is asked about. */
    fake_now += 60 * 1000;
    assert_int_equal(checked(ctx, 4), 1);
    assert_int_equal(checked(ctx, 2), 0);
    ob_aws_result_t last =
        json_reply("{\"Accounts\":[{\"Id\":\"200000000002\",\"State\":\"ACTIVE\"}]}");
    chore(ctx, 1, &last, &s);
    expect_wait_ms(&s, 1000);
    assert_int_equal(checked(ctx, 2), 1);
    ob_stage_bucket.ctx_free(ctx);
}

/* A fleet that cannot see an organization: the chore's listing is refused,
 * and the chore lists nothing while the check is skipped; a job's burst
 * never lists while the chore does. */
static void test_org_standing_blind(void **state)
{
    (void)state;
    void *ctx = org_ctx(20000000);
    ob_step_t s;
    chore(ctx, 1, NULL, &s);
    expect_list(&s, NULL);
    /* A burst while the chore lists: they wait for its pages. */
    static run_t r[30];
    for (int i = 1; i <= 20; i++) {
        expect_op(org_start(&r[i], ctx, i, &s), "DescribeAccount");
        finish(&r[i]);
    }
    expect_wait_ms(org_start(&r[21], ctx, 21, &s), 100);
    /* The next second: its first account waits too (the second before was
     * a burst), and so does the one that waited, whatever this second's
     * count. */
    fake_now += 1000;
    expect_wait_ms(org_start(&r[22], ctx, 22, &s), 100);
    ob_stage_bucket.step(r[21].st, NULL, &s);
    expect_wait_ms(&s, 200);
    ob_aws_result_t denied = aws_error(400, "AccessDeniedException", OB_RETRY_NO);
    chore(ctx, 1, &denied, &s);
    expect_wait_ms(&s, 1000);
    ob_stage_bucket.step(r[21].st, NULL, &s);
    expect_op(&s, "CreateBucket"); /* blind: the check is skipped */
    finish(&r[21]);
    ob_stage_bucket.step(r[22].st, NULL, &s);
    expect_op(&s, "CreateBucket");
    finish(&r[22]);
    fake_now += 9 * 60 * 1000;
    chore(ctx, 1, NULL, &s);
    expect_wait_ms(&s, 1000);
    ob_stage_bucket.ctx_free(ctx);
}

/* The first listing is tried again a minute after it failed; a listing
 * that took two minutes is made again 105 s after it began (one and a half
 * times as long, and 15 s, before the snapshot expires), not at 3 min 45 s,
 * so the next is complete before it. */
static void test_org_standing_timing(void **state)
{
    (void)state;
    void *ctx = org_ctx(30000000);
    ob_step_t s;
    chore(ctx, 1, NULL, &s);
    expect_list(&s, NULL);
    ob_aws_result_t throttled = aws_error(400, "TooManyRequestsException", OB_RETRY_THROTTLE);
    chore(ctx, 1, &throttled, &s);
    expect_wait_ms(&s, 1000);
    fake_now += 59 * 1000;
    chore(ctx, 1, NULL, &s);
    expect_wait_ms(&s, 1000);
    fake_now += 1000;
    chore(ctx, 1, NULL, &s);
    expect_list(&s, NULL);
    uint64_t began = fake_now;
    ob_aws_result_t p1 = json_reply(
        "{\"Accounts\":[{\"Id\":\"200000000001\",\"State\":\"ACTIVE\"}],\"NextToken\":\"n\"}");
    fake_now += 60 * 1000;
    chore(ctx, 1, &p1, &s);
    expect_list(&s, "n");
    ob_aws_result_t p2 =
        json_reply("{\"Accounts\":[{\"Id\":\"200000000002\",\"State\":\"ACTIVE\"}]}");
    fake_now += 60 * 1000;
    chore(ctx, 1, &p2, &s);
    expect_wait_ms(&s, 1000);
    assert_int_equal(checked(ctx, 1), 1);
    assert_int_equal(checked(ctx, 2), 1);
    fake_now = began + 104 * 1000;
    chore(ctx, 1, NULL, &s);
    expect_wait_ms(&s, 1000);
    fake_now = began + 105 * 1000;
    chore(ctx, 1, NULL, &s);
    expect_list(&s, NULL);
    ob_stage_bucket.ctx_free(ctx);

    /* A fleet in GovCloud (lifecycle.region) lists its partition's
     * organization from the start. */
    ctx = org_ctx(40000000);
    chore_region = "us-gov-east-1";
    chore(ctx, 1, NULL, &s);
    chore_region = NULL;
    assert_int_equal(s.kind, OB_STEP_CALL);
    assert_string_equal(s.req.op, "ListAccounts");
    assert_string_equal(s.region, "us-gov-west-1");
    ob_step_clear(&s);
    ob_stage_bucket.ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_org_blindness_is_per_worker),
        cmocka_unit_test(test_org_check_in_bulk),
        cmocka_unit_test(test_org_standing_snapshot),
        cmocka_unit_test(test_org_standing_blind),
        cmocka_unit_test(test_org_standing_timing),
        cmocka_unit_test(test_org_listing_failures),
        cmocka_unit_test(test_new_account_happy_path),
        cmocka_unit_test(test_us_east_1_has_no_constraint),
        cmocka_unit_test(test_bucket_errors),
        cmocka_unit_test(test_existing_account_goes_to_iam),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_hand_back_and_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
