/*
 * The simulator's CUR module, driven in-process over HTTP by the project's
 * own AWS client (ob_aws, JSON 1.1, SigV4) and, for a request signed for a
 * region other than us-east-1, by a request signed here. Every validation
 * rule is checked with its error code and AWS's exact message: the model's
 * field constraints, the combination rules (an empty ValidationException),
 * the five-report limit, duplicate names, and the delivery bucket's owner,
 * region and policy. Buckets are written straight into the simulator's state
 * (the S3 module has its own tests); a member account of the organization is
 * reached through STS AssumeRole.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ob_aws.h"
#include "ob_credsrc.h"
#include "ob_http.h"
#include "ob_sigv4.h"
#include "sim.h"
#include "testutil.h"

#define MEMBER_ROLE "arn:aws:iam::200000000001:role/OrganizationAccountAccessRole"
#define BUCKET      "cur-111111111111"

typedef ob_test_simfx_t fx_t;

/* The delivery policy of AWS-WIRE.md (both principal families). */
static char *cur_policy(const char *bucket, const char *account)
{
    json_t *p = json_pack(
        "{s:s, s:[{s:s, s:s, s:{s:s}, s:[s,s], s:s, s:{s:{s:s, s:s}}},"
        " {s:s, s:s, s:{s:s}, s:s, s:s, s:{s:{s:s, s:s}}},"
        " {s:s, s:{s:s}, s:[s,s], s:[s,s], s:{s:{s:s, s:s}}}]}",
        "Version", "2012-10-17", "Statement", "Sid", "CurRead", "Effect", "Allow", "Principal",
        "Service", "billingreports.amazonaws.com", "Action", "s3:GetBucketAcl",
        "s3:GetBucketPolicy", "Resource", "arn:aws:s3:::" BUCKET, "Condition", "StringEquals",
        "aws:SourceArn", "arn:aws:cur:us-east-1:111111111111:definition/*", "aws:SourceAccount",
        account, "Sid", "CurWrite", "Effect", "Allow", "Principal", "Service",
        "billingreports.amazonaws.com", "Action", "s3:PutObject", "Resource",
        "arn:aws:s3:::" BUCKET "/*", "Condition", "StringEquals", "aws:SourceArn",
        "arn:aws:cur:us-east-1:111111111111:definition/*", "aws:SourceAccount", account, "Effect",
        "Allow", "Principal", "Service", "bcm-data-exports.amazonaws.com", "Action", "s3:PutObject",
        "s3:GetBucketPolicy", "Resource", "arn:aws:s3:::" BUCKET, "arn:aws:s3:::" BUCKET "/*",
        "Condition", "StringLike", "aws:SourceArn",
        "arn:aws:bcm-data-exports:us-east-1:111111111111:export/*", "aws:SourceAccount", account);
    (void)bucket;
    char *s = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    return s;
}

static void put_bucket(fx_t *f, const char *name, const char *owner, const char *region,
                       const char *policy)
{
    json_t *b = json_pack("{s:s, s:s, s:i}", "owner", owner, "region", region, "created", 1);
    if (policy)
        json_object_set_new(b, "policy", json_string(policy));
    json_object_set_new(sim_section(f->sim, "buckets"), name, b);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    sim_opts_t o = {.port = 0, .profile = "instant", .org_accounts = 1, .random_seed = 3};
    ob_test_simfx_start(f, &o, "eu-west-1", NULL, MEMBER_ROLE);
    char *pol = cur_policy(BUCKET, SIM_MGMT_ACCOUNT);
    put_bucket(f, BUCKET, SIM_MGMT_ACCOUNT, "us-east-1", pol);
    free(pol);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    ob_test_simfx_stop(*state, 0);
    free(*state);
    return 0;
}

/* ---- calling ---- */

typedef ob_test_got_t got_t;

static void cur_as(fx_t *f, ob_credsrc_t *creds, const char *op, json_t *params, got_t *g)
{
    ob_aws_req_t req;
    memset(&req, 0, sizeof(req));
    char err[512];
    assert_int_equal(ob_json11_init_obj(&req, OB_SVC_CUR, op, params, err, sizeof(err)), OB_OK);
    json_decref(params);
    ob_aws_target_t t = {.creds = creds};
    ob_test_aws_call(f, &req, &t, g, 10000);
}

static void cur(fx_t *f, const char *op, json_t *params, got_t *g)
{
    cur_as(f, f->mgmt, op, params, g);
}

static void expect_ok(got_t *g)
{
    if (g->err != OB_OK)
        fail_msg("expected success, got %ld %s: %s", g->status, g->code, g->message);
    assert_int_equal(g->status, 200);
}

static void expect_err(got_t *g, long status, const char *code, const char *message)
{
    if (g->err != OB_ERR_AWS || g->status != status || strcmp(g->code, code) != 0)
        fail_msg("expected %ld %s, got err=%d %ld %s: %s", status, code, g->err, g->status, g->code,
                 g->message);
    if (message && strcmp(g->message, message) != 0)
        fail_msg("message:\n  got  \"%s\"\n  want \"%s\"", g->message, message);
}

/* The seed's default report (MISSION.md): a fresh object to modify. */
static json_t *definition(const char *name)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:[s], s:s, s:s, s:s, s:[s], s:b, s:s}", "ReportName",
                     name, "TimeUnit", "HOURLY", "Format", "textORcsv", "Compression", "GZIP",
                     "AdditionalSchemaElements", "RESOURCES", "S3Bucket", BUCKET, "S3Prefix", "CUR",
                     "S3Region", "us-east-1", "AdditionalArtifacts", "REDSHIFT",
                     "RefreshClosedReports", 1, "ReportVersioning", "OVERWRITE_REPORT");
}

static void put_def(fx_t *f, json_t *def, got_t *g)
{
    cur(f, "PutReportDefinition", json_pack("{s:o}", "ReportDefinition", def), g);
}

static void expect_put_error(fx_t *f, json_t *def, const char *code, const char *message)
{
    got_t g;
    put_def(f, def, &g);
    expect_err(&g, 400, code, message);
    ob_test_got_free(&g);
}

/* ---- tests ---- */

static void test_put_and_describe(void **state)
{
    fx_t *f = *state;
    got_t g;
    json_t *def = definition("onboard-cur");
    put_def(f, json_incref(def), &g);
    expect_ok(&g);
    assert_int_equal(json_object_size(g.json), 0);
    ob_test_got_free(&g);
    cur(f, "DescribeReportDefinitions", json_pack("{s:i}", "MaxResults", 5), &g);
    expect_ok(&g);
    json_t *list = json_object_get(g.json, "ReportDefinitions");
    assert_int_equal(json_array_size(list), 1);
    assert_true(json_equal(json_array_get(list, 0), def));
    assert_null(json_object_get(g.json, "NextToken"));
    ob_test_got_free(&g);
    json_decref(def);
    json_t *stored = json_object_get(
        json_object_get(sim_section(f->sim, "reports"), SIM_MGMT_ACCOUNT), "onboard-cur");
    assert_string_equal(json_string_value(json_object_get(stored, "S3Prefix")), "CUR");
}

static void test_required_members(void **state)
{
    fx_t *f = *state;
    got_t g;
    cur(f, "PutReportDefinition", json_object(), &g);
    expect_err(&g, 400, "ValidationException",
               "1 validation error detected: Value null at 'reportDefinition' failed to satisfy "
               "constraint: Member must not be null");
    ob_test_got_free(&g);
    expect_put_error(
        f, json_pack("{s:s}", "ReportName", "r"), "ValidationException",
        "7 validation errors detected: "
        "Value null at 'reportDefinition.timeUnit' failed to satisfy constraint: Member must not "
        "be null; "
        "Value null at 'reportDefinition.format' failed to satisfy constraint: Member must not be "
        "null; "
        "Value null at 'reportDefinition.compression' failed to satisfy constraint: Member must "
        "not be null; "
        "Value null at 'reportDefinition.additionalSchemaElements' failed to satisfy constraint: "
        "Member must not be null; "
        "Value null at 'reportDefinition.s3Bucket' failed to satisfy constraint: Member must not "
        "be null; "
        "Value null at 'reportDefinition.s3Prefix' failed to satisfy constraint: Member must not "
        "be null; "
        "Value null at 'reportDefinition.s3Region' failed to satisfy constraint: Member must not "
        "be null");
    json_t *d = definition("x");
    json_object_set_new(d, "ReportName", json_null());
    expect_put_error(f, d, "ValidationException",
                     "1 validation error detected: Value null at 'reportDefinition.reportName' "
                     "failed to satisfy constraint: Member must not be null");
}

static void test_enums(void **state)
{
    fx_t *f = *state;
    static const char *const cases[][3] = {
        {"TimeUnit", "WEEKLY",
         "Value 'WEEKLY' at 'reportDefinition.timeUnit' failed to satisfy constraint: Member "
         "must satisfy enum value set: [HOURLY, DAILY, MONTHLY]"},
        {"Format", "csv",
         "Value 'csv' at 'reportDefinition.format' failed to satisfy constraint: Member must "
         "satisfy enum value set: [textORcsv, Parquet]"},
        {"Compression", "BZIP2",
         "Value 'BZIP2' at 'reportDefinition.compression' failed to satisfy constraint: Member "
         "must satisfy enum value set: [ZIP, GZIP, Parquet]"},
        {"S3Region", "mars-1",
         "Value 'mars-1' at 'reportDefinition.s3Region' failed to satisfy constraint: Member "
         "must satisfy enum value set: [af-south-1, ap-east-1, ap-south-1, ap-southeast-1, "
         "ap-southeast-2, ap-southeast-3, ap-northeast-1, ap-northeast-2, ap-northeast-3, "
         "ca-central-1, eu-central-1, eu-west-1, eu-west-2, eu-west-3, eu-north-1, eu-south-1, "
         "eu-south-2, me-central-1, me-south-1, sa-east-1, us-east-1, us-east-2, us-west-1, "
         "us-west-2, cn-north-1, cn-northwest-1]"},
        {"ReportVersioning", "KEEP",
         "Value 'KEEP' at 'reportDefinition.reportVersioning' failed to satisfy constraint: "
         "Member must satisfy enum value set: [CREATE_NEW_REPORT, OVERWRITE_REPORT]"},
        {NULL, NULL, NULL}};
    for (int i = 0; cases[i][0]; i++) {
        json_t *d = definition("r");
        json_object_set_new(d, cases[i][0], json_string(cases[i][1]));
        char want[1024];
        snprintf(want, sizeof(want), "1 validation error detected: %s", cases[i][2]);
        expect_put_error(f, d, "ValidationException", want);
    }
    json_t *d = definition("r");
    json_object_set_new(d, "AdditionalSchemaElements", json_pack("[s,s]", "RESOURCES", "TAGS"));
    expect_put_error(f, d, "ValidationException",
                     "1 validation error detected: Value '[RESOURCES, TAGS]' at "
                     "'reportDefinition.additionalSchemaElements' failed to satisfy constraint: "
                     "Member must satisfy constraint: [Member must satisfy enum value set: "
                     "[RESOURCES, SPLIT_COST_ALLOCATION_DATA, MANUAL_DISCOUNT_COMPATIBILITY]]");
    d = definition("r");
    json_object_set_new(d, "AdditionalArtifacts", json_pack("[s]", "EXCEL"));
    expect_put_error(f, d, "ValidationException",
                     "1 validation error detected: Value '[EXCEL]' at "
                     "'reportDefinition.additionalArtifacts' failed to satisfy constraint: "
                     "Member must satisfy constraint: [Member must satisfy enum value set: "
                     "[REDSHIFT, QUICKSIGHT, ATHENA]]");
    /* The newer schema elements are accepted. */
    got_t g;
    d = definition("split");
    json_object_set_new(d, "AdditionalSchemaElements",
                        json_pack("[s,s]", "RESOURCES", "SPLIT_COST_ALLOCATION_DATA"));
    put_def(f, d, &g);
    expect_ok(&g);
    ob_test_got_free(&g);
}

static void test_patterns_and_lengths(void **state)
{
    fx_t *f = *state;
    json_t *d = definition("bad name");
    expect_put_error(f, d, "ValidationException",
                     "1 validation error detected: Value 'bad name' at "
                     "'reportDefinition.reportName' failed to satisfy constraint: Member must "
                     "satisfy regular expression pattern: [0-9A-Za-z!\\-_.*\\'()]+");
    char longname[300];
    memset(longname, 'a', 257);
    longname[257] = '\0';
    d = definition(longname);
    char want[1024];
    snprintf(want, sizeof(want),
             "1 validation error detected: Value '%s' at 'reportDefinition.reportName' failed to "
             "satisfy constraint: Member must have length less than or equal to 256",
             longname);
    expect_put_error(f, d, "ValidationException", want);
    d = definition("");
    expect_put_error(f, d, "ValidationException",
                     "1 validation error detected: Value '' at 'reportDefinition.reportName' "
                     "failed to satisfy constraint: Member must satisfy regular expression "
                     "pattern: [0-9A-Za-z!\\-_.*\\'()]+");
    d = definition("r");
    json_object_set_new(d, "S3Prefix", json_string("cur reports"));
    json_object_set_new(d, "S3Bucket", json_string("bad/bucket"));
    expect_put_error(f, d, "ValidationException",
                     "2 validation errors detected: Value 'bad/bucket' at "
                     "'reportDefinition.s3Bucket' failed to satisfy constraint: Member must "
                     "satisfy regular expression pattern: [A-Za-z0-9_\\.\\-]+; Value 'cur "
                     "reports' at 'reportDefinition.s3Prefix' failed to satisfy constraint: "
                     "Member must satisfy regular expression pattern: "
                     "[0-9A-Za-z!\\-_.*\\'()/]*");
    d = definition("r");
    json_object_set_new(d, "BillingViewArn", json_string("arn:aws:billing::12:billingview/x y"));
    expect_put_error(f, d, "ValidationException",
                     "1 validation error detected: Value 'arn:aws:billing::12:billingview/x y' "
                     "at 'reportDefinition.billingViewArn' failed to satisfy constraint: Member "
                     "must satisfy regular expression pattern: "
                     "(arn:aws(-cn)?:billing::[0-9]{12}:billingview/)?[a-zA-Z0-9_\\+=\\.\\-@]"
                     ".{1,30}");
    /* Valid unusual values: every allowed character, a nested prefix, a billing view. */
    got_t g;
    d = definition("Az09!-_.*'()");
    json_object_set_new(d, "S3Prefix", json_string("a/b/c"));
    json_object_set_new(d, "BillingViewArn",
                        json_string("arn:aws:billing::111111111111:billingview/primary"));
    put_def(f, d, &g);
    expect_ok(&g);
    ob_test_got_free(&g);
}

static void test_shapes(void **state)
{
    fx_t *f = *state;
    json_t *d = definition("r");
    json_object_set_new(d, "ReportName", json_integer(5));
    expect_put_error(f, d, "SerializationException", NULL);
    d = definition("r");
    json_object_set_new(d, "RefreshClosedReports", json_string("yes"));
    expect_put_error(f, d, "SerializationException", NULL);
    d = definition("r");
    json_object_set_new(d, "AdditionalSchemaElements", json_string("RESOURCES"));
    expect_put_error(f, d, "SerializationException", NULL);
    got_t g;
    cur(f, "PutReportDefinition", json_pack("{s:s}", "ReportDefinition", "x"), &g);
    expect_err(&g, 400, "SerializationException", NULL);
    ob_test_got_free(&g);
}

static void test_combination_rules(void **state)
{
    fx_t *f = *state;
    /* {artifacts (comma list or ""), format, compression, versioning, prefix, ok} */
    static const char *const cases[][6] = {
        {"ATHENA", "Parquet", "Parquet", "OVERWRITE_REPORT", "athena", "ok"},
        {"ATHENA,REDSHIFT", "Parquet", "Parquet", "OVERWRITE_REPORT", "p", "bad"},
        {"ATHENA", "textORcsv", "GZIP", "OVERWRITE_REPORT", "p", "bad"},
        {"ATHENA", "Parquet", "Parquet", "CREATE_NEW_REPORT", "p", "bad"},
        {"ATHENA", "Parquet", "Parquet", NULL, "p", "bad"},
        {"ATHENA", "Parquet", "Parquet", "OVERWRITE_REPORT", "", "bad"},
        {"REDSHIFT", "Parquet", "Parquet", "OVERWRITE_REPORT", "p", "bad"},
        {"QUICKSIGHT", "Parquet", "Parquet", "OVERWRITE_REPORT", "p", "bad"},
        {"", "Parquet", "GZIP", "OVERWRITE_REPORT", "p", "bad"},
        {"", "textORcsv", "Parquet", "OVERWRITE_REPORT", "p", "bad"},
        {"", "Parquet", "Parquet", "CREATE_NEW_REPORT", "", "ok"},
        {"QUICKSIGHT", "textORcsv", "ZIP", "CREATE_NEW_REPORT", "", "ok"},
        {NULL, NULL, NULL, NULL, NULL, NULL}};
    for (int i = 0; cases[i][0]; i++) {
        char name[32];
        snprintf(name, sizeof(name), "combo-%d", i);
        json_t *d = definition(name);
        json_t *arts = json_array();
        char buf[64];
        snprintf(buf, sizeof(buf), "%s", cases[i][0]);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
            json_array_append_new(arts, json_string(tok));
        json_object_set_new(d, "AdditionalArtifacts", arts);
        json_object_set_new(d, "Format", json_string(cases[i][1]));
        json_object_set_new(d, "Compression", json_string(cases[i][2]));
        if (cases[i][3])
            json_object_set_new(d, "ReportVersioning", json_string(cases[i][3]));
        else
            json_object_del(d, "ReportVersioning");
        json_object_set_new(d, "S3Prefix", json_string(cases[i][4]));
        got_t g;
        put_def(f, d, &g);
        if (!strcmp(cases[i][5], "ok")) {
            expect_ok(&g);
            got_t del;
            cur(f, "DeleteReportDefinition", json_pack("{s:s}", "ReportName", name), &del);
            expect_ok(&del);
            ob_test_got_free(&del);
        } else {
            expect_err(&g, 400, "ValidationException", "");
        }
        ob_test_got_free(&g);
    }
}

static void test_duplicate_and_limit(void **state)
{
    fx_t *f = *state;
    got_t g;
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof(name), "r%d", i);
        put_def(f, definition(name), &g);
        expect_ok(&g);
        ob_test_got_free(&g);
    }
    expect_put_error(f, definition("r0"), "DuplicateReportNameException",
                     "A report with the specified name already exists in the account. Specify a "
                     "different report name.");
    expect_put_error(f, definition("r5"), "ReportLimitReachedException",
                     "This account already has five reports defined. To define a new report, "
                     "you must delete an existing report.");
    /* Another account has its own five. */
    cur_as(f, f->member, "DescribeReportDefinitions", json_object(), &g);
    expect_ok(&g);
    assert_int_equal(json_array_size(json_object_get(g.json, "ReportDefinitions")), 0);
    ob_test_got_free(&g);
}

static void expect_bucket_refused(fx_t *f, json_t *d, const char *bucket, const char *region)
{
    char want[512];
    snprintf(want, sizeof(want),
             "Failed to verify customer bucket permission. accountId= 111111111111, bucket name: "
             "%s, bucket region: %s",
             bucket, region);
    expect_put_error(f, d, "ValidationException", want);
}

static void test_bucket_rules(void **state)
{
    fx_t *f = *state;
    json_t *d;

    /* No such bucket. */
    d = definition("r");
    json_object_set_new(d, "S3Bucket", json_string("no-such-bucket"));
    expect_bucket_refused(f, d, "no-such-bucket", "us-east-1");

    /* Another account's bucket, even with a good policy. */
    char *pol = cur_policy(BUCKET, SIM_MGMT_ACCOUNT);
    put_bucket(f, "foreign", "200000000001", "us-east-1", pol);
    d = definition("r");
    json_object_set_new(d, "S3Bucket", json_string("foreign"));
    expect_bucket_refused(f, d, "foreign", "us-east-1");

    /* S3Region is not the bucket's region. */
    d = definition("r");
    json_object_set_new(d, "S3Region", json_string("eu-west-1"));
    expect_bucket_refused(f, d, BUCKET, "eu-west-1");

    /* No policy. */
    put_bucket(f, BUCKET, SIM_MGMT_ACCOUNT, "us-east-1", NULL);
    expect_bucket_refused(f, definition("r"), BUCKET, "us-east-1");

    /* A policy for the CUR 2.0 principal only. */
    const char *bcm = "{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Service\":"
                      "\"bcm-data-exports.amazonaws.com\"},\"Action\":[\"s3:PutObject\","
                      "\"s3:GetBucketPolicy\",\"s3:GetBucketAcl\"],\"Resource\":"
                      "[\"arn:aws:s3:::" BUCKET "\",\"arn:aws:s3:::" BUCKET "/*\"]}]}";
    put_bucket(f, BUCKET, SIM_MGMT_ACCOUNT, "us-east-1", bcm);
    expect_bucket_refused(f, definition("r"), BUCKET, "us-east-1");

    /* Read access without PutObject. */
    const char *read_only = "{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Service\":"
                            "\"billingreports.amazonaws.com\"},\"Action\":[\"s3:GetBucketAcl\","
                            "\"s3:GetBucketPolicy\"],\"Resource\":\"arn:aws:s3:::" BUCKET "\"}]}";
    put_bucket(f, BUCKET, SIM_MGMT_ACCOUNT, "us-east-1", read_only);
    expect_bucket_refused(f, definition("r"), BUCKET, "us-east-1");

    /* PutObject only under another prefix. */
    const char *other_prefix =
        "{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Service\":"
        "\"billingreports.amazonaws.com\"},\"Action\":[\"s3:GetBucketAcl\","
        "\"s3:GetBucketPolicy\"],\"Resource\":\"arn:aws:s3:::" BUCKET "\"},{\"Effect\":\"Allow\","
        "\"Principal\":{\"Service\":\"billingreports.amazonaws.com\"},\"Action\":\"s3:PutObject\","
        "\"Resource\":\"arn:aws:s3:::" BUCKET "/elsewhere/*\"}]}";
    put_bucket(f, BUCKET, SIM_MGMT_ACCOUNT, "us-east-1", other_prefix);
    expect_bucket_refused(f, definition("r"), BUCKET, "us-east-1");

    /* Conditions naming another account. */
    free(pol);
    pol = cur_policy(BUCKET, "999999999999");
    put_bucket(f, BUCKET, SIM_MGMT_ACCOUNT, "us-east-1", pol);
    expect_bucket_refused(f, definition("r"), BUCKET, "us-east-1");

    /* A good policy undone by a Deny. */
    const char *deny =
        "{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"s3:*\","
        "\"Resource\":[\"arn:aws:s3:::" BUCKET "\",\"arn:aws:s3:::" BUCKET "/*\"]},{\"Effect\":"
        "\"Deny\",\"Principal\":{\"Service\":\"billingreports.amazonaws.com\"},\"Action\":"
        "\"s3:PutObject\",\"Resource\":\"arn:aws:s3:::" BUCKET "/*\"}]}";
    put_bucket(f, BUCKET, SIM_MGMT_ACCOUNT, "us-east-1", deny);
    expect_bucket_refused(f, definition("r"), BUCKET, "us-east-1");

    /* Wildcards, StringLike/ArnLike conditions and a TLS-only Deny are fine. */
    const char *wild =
        "{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Service\":["
        "\"billingreports.amazonaws.com\"]},\"Action\":[\"s3:Get*\",\"s3:Put*\"],\"Resource\":["
        "\"arn:aws:s3:::" BUCKET "\",\"arn:aws:s3:::" BUCKET "/CUR/*\"],\"Condition\":{"
        "\"ArnLike\":{\"aws:SourceArn\":\"arn:aws:cur:us-east-1:111111111111:definition/*\"},"
        "\"StringEquals\":{\"aws:SourceAccount\":[\"111111111111\"]}}},{\"Effect\":\"Deny\","
        "\"Principal\":\"*\",\"Action\":\"s3:*\",\"Resource\":\"arn:aws:s3:::" BUCKET "/*\","
        "\"Condition\":{\"Bool\":{\"aws:SecureTransport\":\"false\"}}}]}";
    put_bucket(f, BUCKET, SIM_MGMT_ACCOUNT, "us-east-1", wild);
    got_t g;
    put_def(f, definition("r"), &g);
    expect_ok(&g);
    ob_test_got_free(&g);

    /* A member account's report needs a bucket of its own. */
    d = definition("member-report");
    json_t *params = json_pack("{s:o}", "ReportDefinition", d);
    cur_as(f, f->member, "PutReportDefinition", params, &g);
    expect_err(&g, 400, "ValidationException",
               "Failed to verify customer bucket permission. accountId= 200000000001, bucket "
               "name: " BUCKET ", bucket region: us-east-1");
    ob_test_got_free(&g);
    free(pol);
}

static void test_describe_pagination(void **state)
{
    fx_t *f = *state;
    got_t g;
    cur(f, "DescribeReportDefinitions", json_pack("{s:i}", "MaxResults", 3), &g);
    expect_err(&g, 400, "ValidationException",
               "1 validation error detected: Value '3' at 'maxResults' failed to satisfy "
               "constraint: Member must have value greater than or equal to 5");
    ob_test_got_free(&g);
    cur(f, "DescribeReportDefinitions", json_pack("{s:i}", "MaxResults", 6), &g);
    expect_err(&g, 400, "ValidationException",
               "1 validation error detected: Value '6' at 'maxResults' failed to satisfy "
               "constraint: Member must have value less than or equal to 5");
    ob_test_got_free(&g);
    cur(f, "DescribeReportDefinitions", json_pack("{s:s}", "NextToken", "not a token"), &g);
    expect_err(&g, 400, "ValidationException",
               "1 validation error detected: Value 'not a token' at 'nextToken' failed to "
               "satisfy constraint: Member must satisfy regular expression pattern: "
               "[A-Za-z0-9_\\.\\-=]*");
    ob_test_got_free(&g);
    cur(f, "DescribeReportDefinitions", json_pack("{s:s}", "MaxResults", "5"), &g);
    expect_err(&g, 400, "SerializationException", NULL);
    ob_test_got_free(&g);

    /* Seven reports (more than Put allows, written into the state): two pages. */
    json_t *mine = json_object();
    for (int i = 0; i < 7; i++) {
        char name[16];
        snprintf(name, sizeof(name), "page-%d", 6 - i);
        json_object_set_new(mine, name, definition(name));
    }
    json_object_set_new(sim_section(f->sim, "reports"), SIM_MGMT_ACCOUNT, mine);
    cur(f, "DescribeReportDefinitions", json_object(), &g);
    expect_ok(&g);
    json_t *list = json_object_get(g.json, "ReportDefinitions");
    assert_int_equal(json_array_size(list), 5);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "ReportName")),
                        "page-0");
    const char *next = json_string_value(json_object_get(g.json, "NextToken"));
    assert_non_null(next);
    json_t *params = json_pack("{s:i, s:s}", "MaxResults", 5, "NextToken", next);
    ob_test_got_free(&g);
    cur(f, "DescribeReportDefinitions", params, &g);
    expect_ok(&g);
    list = json_object_get(g.json, "ReportDefinitions");
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "ReportName")),
                        "page-6");
    assert_null(json_object_get(g.json, "NextToken"));
    ob_test_got_free(&g);
}

static void test_modify(void **state)
{
    fx_t *f = *state;
    got_t g;
    put_def(f, definition("m"), &g);
    expect_ok(&g);
    ob_test_got_free(&g);
    json_t *d = definition("m");
    json_object_set_new(d, "TimeUnit", json_string("DAILY"));
    cur(f, "ModifyReportDefinition",
        json_pack("{s:s, s:o}", "ReportName", "m", "ReportDefinition", d), &g);
    expect_ok(&g);
    ob_test_got_free(&g);
    json_t *stored =
        json_object_get(json_object_get(sim_section(f->sim, "reports"), SIM_MGMT_ACCOUNT), "m");
    assert_string_equal(json_string_value(json_object_get(stored, "TimeUnit")), "DAILY");

    cur(f, "ModifyReportDefinition",
        json_pack("{s:s, s:o}", "ReportName", "ghost", "ReportDefinition", definition("ghost")),
        &g);
    expect_err(&g, 400, "ValidationException",
               "The specified report (ghost) in the request doesn't exist.");
    ob_test_got_free(&g);
    cur(f, "ModifyReportDefinition",
        json_pack("{s:s, s:o}", "ReportName", "m", "ReportDefinition", definition("renamed")), &g);
    expect_err(&g, 400, "ValidationException", "");
    ob_test_got_free(&g);
    cur(f, "ModifyReportDefinition", json_pack("{s:o}", "ReportDefinition", definition("m")), &g);
    expect_err(&g, 400, "ValidationException",
               "1 validation error detected: Value null at 'reportName' failed to satisfy "
               "constraint: Member must not be null");
    ob_test_got_free(&g);
    d = definition("m");
    json_object_set_new(d, "Format", json_string("Parquet"));
    cur(f, "ModifyReportDefinition",
        json_pack("{s:s, s:o}", "ReportName", "m", "ReportDefinition", d), &g);
    expect_err(&g, 400, "ValidationException", "");
    ob_test_got_free(&g);
    /* Modify checks the bucket again. */
    d = definition("m");
    json_object_set_new(d, "S3Bucket", json_string("gone"));
    cur(f, "ModifyReportDefinition",
        json_pack("{s:s, s:o}", "ReportName", "m", "ReportDefinition", d), &g);
    expect_err(&g, 400, "ValidationException",
               "Failed to verify customer bucket permission. accountId= 111111111111, bucket "
               "name: gone, bucket region: us-east-1");
    ob_test_got_free(&g);
}

static void test_delete(void **state)
{
    fx_t *f = *state;
    got_t g;
    put_def(f, definition("d"), &g);
    expect_ok(&g);
    ob_test_got_free(&g);
    cur(f, "DeleteReportDefinition", json_pack("{s:s}", "ReportName", "d"), &g);
    expect_ok(&g);
    assert_non_null(json_string_value(json_object_get(g.json, "ResponseMessage")));
    ob_test_got_free(&g);
    cur(f, "DeleteReportDefinition", json_pack("{s:s}", "ReportName", "d"), &g);
    expect_err(&g, 400, "ValidationException",
               "The specified report (d) in the request doesn't exist.");
    ob_test_got_free(&g);
    cur(f, "DeleteReportDefinition", json_object(), &g);
    expect_err(&g, 400, "ValidationException",
               "1 validation error detected: Value null at 'reportName' failed to satisfy "
               "constraint: Member must not be null");
    ob_test_got_free(&g);
    cur(f, "DeleteReportDefinition", json_pack("{s:s}", "ReportName", "a b"), &g);
    expect_err(&g, 400, "ValidationException",
               "1 validation error detected: Value 'a b' at 'reportName' failed to satisfy "
               "constraint: Member must satisfy regular expression pattern: "
               "[0-9A-Za-z!\\-_.*\\'()]+");
    ob_test_got_free(&g);
}

/* A CUR request signed here, for any region. */
static void on_http(ob_http_resp_t *resp, void *arg)
{
    got_t *g = arg;
    ob_aws_error_t e;
    g->done = 1;
    g->status = resp->status;
    ob_aws_parse_error(OB_SVC_CUR, resp->status, &resp->headers, resp->body.data, resp->body.len,
                       &e);
    snprintf(g->code, sizeof(g->code), "%s", e.code);
    snprintf(g->message, sizeof(g->message), "%s", e.message);
    g->err = resp->status == 200 ? OB_OK : OB_ERR_AWS;
}

static void raw_cur(fx_t *f, const char *region, const char *target, got_t *g)
{
    memset(g, 0, sizeof(*g));
    ob_hdrs_t h = {0};
    char err[256], host[64];
    snprintf(host, sizeof(host), "127.0.0.1:%d", sim_port(f->sim));
    ob_hdrs_set(&h, "Host", host);
    ob_hdrs_set(&h, "Content-Type", "application/x-amz-json-1.1");
    ob_hdrs_set(&h, "X-Amz-Target", target);
    ob_sigv4_creds_t cr = {SIM_MGMT_AKID, SIM_MGMT_SECRET, NULL};
    ob_sigv4_params_t p = {.service = "cur", .region = region, .now = time(NULL)};
    assert_int_equal(ob_sigv4_sign("POST", "/", NULL, &h, "{}", 2, &cr, &p, NULL, err, sizeof(err)),
                     OB_OK);
    char url[128];
    snprintf(url, sizeof(url), "%s/", f->endpoint);
    ob_http_req_t r = {.method = "POST", .url = url, .headers = &h, .body = "{}", .body_len = 2};
    assert_non_null(ob_http_send(f->http, &r, on_http, g, err, sizeof(err)));
    assert_true(ob_test_run_until(f->loop, ob_test_got_done, g, 10000));
    ob_hdrs_clear(&h);
}

static void test_protocol_errors(void **state)
{
    fx_t *f = *state;
    got_t g;
    raw_cur(f, "eu-west-1", "AWSOrigamiServiceGatewayService.DescribeReportDefinitions", &g);
    expect_err(&g, 403, "InvalidSignatureException",
               "Credential should be scoped to a valid region, not 'eu-west-1'. ");
    raw_cur(f, "us-east-1", "AWSOrigamiServiceGatewayService.DescribeReportDefinitions", &g);
    assert_int_equal(g.status, 200);
    raw_cur(f, "us-east-1", "AWSOrigamiServiceGatewayService.ListTagsForResource", &g);
    expect_err(&g, 400, "UnknownOperationException", NULL);
    raw_cur(f, "us-east-1", "SomethingElse.DescribeReportDefinitions", &g);
    expect_err(&g, 400, "UnknownOperationException", NULL);
    assert_int_equal(json_integer_value(json_object_get(sim_section(f->sim, "counts"),
                                                        "cur.DescribeReportDefinitions")),
                     2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_and_describe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_required_members, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enums, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patterns_and_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_combination_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_and_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bucket_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_describe_pagination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protocol_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
