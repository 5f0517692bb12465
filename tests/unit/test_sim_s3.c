/*
 * The simulator's S3 module, driven in-process over HTTP by the project's
 * own AWS client (ob_aws, SigV4, path-style addressing behind
 * AWS_ENDPOINT_URL) and, for what a client cannot be made to send (another
 * Host header, a missing checksum, a request signed for another region), by
 * requests signed here with ob_sigv4. Every rule is checked with its HTTP
 * status, error code and message. A member account of the organization is
 * reached through STS AssumeRole into OrganizationAccountAccessRole.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ob_aws.h"
#include "ob_credsrc.h"
#include "ob_crypto.h"
#include "ob_http.h"
#include "ob_sigv4.h"
#include "ob_xml.h"
#include "sim.h"
#include "testutil.h"

#define MEMBER_ROLE "arn:aws:iam::200000000001:role/OrganizationAccountAccessRole"

typedef ob_test_simfx_t fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    sim_opts_t o = {.port = 0, .profile = "instant", .org_accounts = 2, .random_seed = 7};
    ob_test_simfx_start(f, &o, "us-east-1", NULL, MEMBER_ROLE);
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

/* An S3 call. bucket NULL: path-style path taken from `path` as is. md5: add
 * Content-MD5. hname/hval: one extra header (hval NULL removes it). */
static void s3x(fx_t *f, ob_credsrc_t *creds, const char *region, const char *method,
                const char *bucket, const char *path, const char *query, const char *body, int md5,
                const char *hname, const char *hval, got_t *g)
{
    ob_aws_req_t req;
    memset(&req, 0, sizeof(req));
    char err[256];
    assert_int_equal(ob_s3_init(&req, "S3", method, path ? path : "/", query, err, sizeof(err)),
                     OB_OK);
    if (body)
        assert_int_equal(
            ob_s3_set_body(&req, body, strlen(body), "application/xml", md5, err, sizeof(err)),
            OB_OK);
    if (hname && hval)
        ob_hdrs_set(&req.headers, hname, hval);
    else if (hname)
        ob_hdrs_del(&req.headers, hname);
    ob_aws_target_t t = {.region = region, .creds = creds, .s3_bucket = bucket};
    ob_test_aws_call(f, &req, &t, g, 10000);
}

static void s3(fx_t *f, const char *region, const char *method, const char *bucket,
               const char *query, const char *body, got_t *g)
{
    s3x(f, f->mgmt, region, method, bucket, NULL, query, body, 1, NULL, NULL, g);
}

static void expect_ok(got_t *g, long status)
{
    if (g->err != OB_OK)
        fail_msg("expected %ld, got %ld %s: %s", status, g->status, g->code, g->message);
    assert_int_equal(g->status, status);
}

static void expect_err(got_t *g, long status, const char *code, const char *message)
{
    if (g->err != OB_ERR_AWS || g->status != status || strcmp(g->code, code) != 0)
        fail_msg("expected %ld %s, got err=%d %ld %s: %s", status, code, g->err, g->status, g->code,
                 g->message);
    if (message && strcmp(g->message, message) != 0)
        fail_msg("message:\n  got  \"%s\"\n  want \"%s\"", g->message, message);
}

static void create(fx_t *f, ob_credsrc_t *creds, const char *region, const char *bucket)
{
    got_t g;
    char body[256] = "";
    if (strcmp(region, "us-east-1") != 0)
        snprintf(body, sizeof(body),
                 "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                 "<LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>",
                 region);
    s3x(f, creds, region, "PUT", bucket, NULL, NULL, body[0] ? body : NULL, 0, NULL, NULL, &g);
    expect_ok(&g, 200);
    ob_test_got_free(&g);
}

static const char *xml_text(const char *body, const char *path, char *out, size_t n)
{
    ob_xml_doc_t *doc = NULL;
    out[0] = '\0';
    if (ob_xml_parse(body, strlen(body), &doc, NULL, 0) == OB_OK) {
        const char *v = ob_xml_path_text(ob_xml_root(doc), path);
        snprintf(out, n, "%s", v ? v : "(absent)");
    }
    ob_xml_free(doc);
    return out;
}

/* A request signed here, sent with a chosen Host header. */
static void on_http(ob_http_resp_t *resp, void *arg)
{
    got_t *g = arg;
    g->done = 1;
    g->err = resp->err;
    g->status = resp->status;
    g->body = strdup(resp->body.data ? resp->body.data : "");
    ob_aws_error_t e;
    if (resp->status >= 300) {
        ob_aws_parse_error(OB_SVC_S3, resp->status, &resp->headers, resp->body.data, resp->body.len,
                           &e);
        snprintf(g->code, sizeof(g->code), "%s", e.code);
        snprintf(g->message, sizeof(g->message), "%s", e.message);
        g->err = OB_ERR_AWS;
    }
    for (size_t i = 0; i < resp->headers.n; i++)
        ob_hdrs_add(&g->headers, resp->headers.v[i].name, resp->headers.v[i].value);
}

static void raw(fx_t *f, const char *method, const char *host, const char *path, const char *query,
                const char *region, ob_hdrs_t *h, const char *body, got_t *g)
{
    memset(g, 0, sizeof(*g));
    char err[256], url[512];
    ob_hdrs_set(h, "Host", host);
    ob_sigv4_creds_t cr = {SIM_MGMT_AKID, SIM_MGMT_SECRET, NULL};
    ob_sigv4_params_t p = {.service = "s3", .region = region, .now = time(NULL), .s3 = 1};
    size_t len = body ? strlen(body) : 0;
    assert_int_equal(
        ob_sigv4_sign(method, path, query, h, body, len, &cr, &p, NULL, err, sizeof(err)), OB_OK);
    snprintf(url, sizeof(url), "%s%s%s%s", f->endpoint, path, query && *query ? "?" : "",
             query ? query : "");
    ob_http_req_t r = {.method = method, .url = url, .headers = h, .body = body, .body_len = len};
    assert_non_null(ob_http_send(f->http, &r, on_http, g, err, sizeof(err)));
    assert_true(ob_test_run_until(f->loop, ob_test_got_done, g, 10000));
    ob_hdrs_clear(h);
}

static const char *cur_policy(char *out, size_t n, const char *bucket, const char *account)
{
    snprintf(out, n,
             "{\"Version\":\"2008-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":"
             "{\"Service\":\"billingreports.amazonaws.com\"},\"Action\":[\"s3:GetBucketAcl\","
             "\"s3:GetBucketPolicy\"],\"Resource\":\"arn:aws:s3:::%s\",\"Condition\":"
             "{\"StringEquals\":{\"aws:SourceArn\":\"arn:aws:cur:us-east-1:%s:definition/*\","
             "\"aws:SourceAccount\":\"%s\"}}},{\"Effect\":\"Allow\",\"Principal\":{\"Service\":"
             "\"billingreports.amazonaws.com\"},\"Action\":\"s3:PutObject\",\"Resource\":"
             "\"arn:aws:s3:::%s/*\"}]}",
             bucket, account, account, bucket);
    return out;
}

/* ---- tests ---- */

static void test_create_bucket_us_east_1_defaults(void **state)
{
    fx_t *f = *state;
    got_t g;
    char v[256];
    s3(f, "us-east-1", "PUT", "cur-111", NULL, NULL, &g);
    expect_ok(&g, 200);
    assert_string_equal(ob_hdrs_get(&g.headers, "Location"), "/cur-111");
    assert_non_null(ob_hdrs_get(&g.headers, "x-amz-request-id"));
    assert_non_null(ob_hdrs_get(&g.headers, "x-amz-id-2"));
    ob_test_got_free(&g);

    s3(f, "us-east-1", "HEAD", "cur-111", NULL, NULL, &g);
    expect_ok(&g, 200);
    assert_string_equal(ob_hdrs_get(&g.headers, "x-amz-bucket-region"), "us-east-1");
    ob_test_got_free(&g);

    /* The modern defaults: Block Public Access on, SSE-S3, BucketOwnerEnforced. */
    s3(f, "us-east-1", "GET", "cur-111", "publicAccessBlock", NULL, &g);
    expect_ok(&g, 200);
    assert_string_equal(xml_text(g.body, "BlockPublicAcls", v, sizeof(v)), "true");
    assert_string_equal(xml_text(g.body, "RestrictPublicBuckets", v, sizeof(v)), "true");
    ob_test_got_free(&g);
    s3(f, "us-east-1", "GET", "cur-111", "encryption", NULL, &g);
    expect_ok(&g, 200);
    assert_string_equal(
        xml_text(g.body, "Rule/ApplyServerSideEncryptionByDefault/SSEAlgorithm", v, sizeof(v)),
        "AES256");
    assert_string_equal(xml_text(g.body, "Rule/BucketKeyEnabled", v, sizeof(v)), "false");
    ob_test_got_free(&g);
    s3(f, "us-east-1", "GET", "cur-111", "ownershipControls", NULL, &g);
    expect_ok(&g, 200);
    assert_string_equal(xml_text(g.body, "Rule/ObjectOwnership", v, sizeof(v)),
                        "BucketOwnerEnforced");
    ob_test_got_free(&g);

    s3(f, "us-east-1", "GET", "cur-111", "location", NULL, &g);
    expect_ok(&g, 200);
    assert_string_equal(xml_text(g.body, "", v, sizeof(v)), "");
    ob_test_got_free(&g);

    json_t *b = json_object_get(sim_section(f->sim, "buckets"), "cur-111");
    assert_string_equal(json_string_value(json_object_get(b, "owner")), SIM_MGMT_ACCOUNT);
    assert_string_equal(json_string_value(json_object_get(b, "region")), "us-east-1");
}

static void test_create_bucket_regional(void **state)
{
    fx_t *f = *state;
    got_t g;
    char v[256];
    create(f, f->mgmt, "eu-west-1", "cur-eu");
    s3(f, "eu-west-1", "GET", "cur-eu", "location", NULL, &g);
    expect_ok(&g, 200);
    assert_string_equal(xml_text(g.body, "", v, sizeof(v)), "eu-west-1");
    ob_test_got_free(&g);
    s3(f, "eu-west-1", "HEAD", "cur-eu", NULL, NULL, &g);
    expect_ok(&g, 200);
    assert_string_equal(ob_hdrs_get(&g.headers, "x-amz-bucket-region"), "eu-west-1");
    ob_test_got_free(&g);

    const char *cfg =
        "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<LocationConstraint>ap-southeast-2</LocationConstraint>"
        "</CreateBucketConfiguration>";
    s3(f, "ap-southeast-2", "PUT", "cur-ap", NULL, cfg, &g);
    expect_ok(&g, 200);
    assert_string_equal(ob_hdrs_get(&g.headers, "Location"), "http://cur-ap.s3.amazonaws.com/");
    ob_test_got_free(&g);
    /* The legacy global endpoint (us-east-1) may create in any region. */
    const char *cfg2 = "<CreateBucketConfiguration><LocationConstraint>us-west-2"
                       "</LocationConstraint></CreateBucketConfiguration>";
    s3(f, "us-east-1", "PUT", "cur-usw2", NULL, cfg2, &g);
    expect_ok(&g, 200);
    ob_test_got_free(&g);
    json_t *b = json_object_get(sim_section(f->sim, "buckets"), "cur-usw2");
    assert_string_equal(json_string_value(json_object_get(b, "region")), "us-west-2");
}

static void test_location_constraint_rules(void **state)
{
    fx_t *f = *state;
    got_t g;
    const char *east =
        "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<LocationConstraint>us-east-1</LocationConstraint>"
        "</CreateBucketConfiguration>";
    s3(f, "us-east-1", "PUT", "lc-a", NULL, east, &g);
    expect_err(&g, 400, "InvalidLocationConstraint",
               "The specified location-constraint is not valid");
    ob_test_got_free(&g);

    s3(f, "eu-west-1", "PUT", "lc-b", NULL, NULL, &g);
    expect_err(&g, 400, "IllegalLocationConstraintException",
               "The unspecified location constraint is incompatible for the region specific "
               "endpoint this request was sent to.");
    ob_test_got_free(&g);

    const char *usw2 = "<CreateBucketConfiguration><LocationConstraint>us-west-2"
                       "</LocationConstraint></CreateBucketConfiguration>";
    s3(f, "eu-west-1", "PUT", "lc-c", NULL, usw2, &g);
    expect_err(&g, 400, "IllegalLocationConstraintException",
               "The us-west-2 location constraint is incompatible for the region specific "
               "endpoint this request was sent to.");
    ob_test_got_free(&g);

    const char *mars = "<CreateBucketConfiguration><LocationConstraint>mars-north-1"
                       "</LocationConstraint></CreateBucketConfiguration>";
    s3(f, "us-east-1", "PUT", "lc-d", NULL, mars, &g);
    expect_err(&g, 400, "InvalidLocationConstraint",
               "The specified location-constraint is not valid");
    ob_test_got_free(&g);

    s3(f, "eu-west-1", "PUT", "lc-e", NULL, "<CreateBucketConfiguration><Location", &g);
    expect_err(&g, 400, "MalformedXML",
               "The XML you provided was not well-formed or did not validate against our "
               "published schema");
    ob_test_got_free(&g);
    s3(f, "eu-west-1", "PUT", "lc-e", NULL, "<Other/>", &g);
    expect_err(&g, 400, "MalformedXML", NULL);
    ob_test_got_free(&g);
    assert_int_equal(json_object_size(sim_section(f->sim, "buckets")), 0);
}

static void test_bucket_names(void **state)
{
    fx_t *f = *state;
    static const char *const bad[] = {
        "ab",
        "Upper-case",
        "under_score",
        "-start",
        "end-",
        "two..dots",
        "192.168.5.4",
        "xn--punycode",
        "sthree-bucket",
        "amzn-s3-demo-bucket",
        "name-s3alias",
        "name--ol-s3",
        "name.mrap",
        "name--x-s3",
        "a234567890123456789012345678901234567890123456789012345678901234",
        NULL};
    for (int i = 0; bad[i]; i++) {
        got_t g;
        char path[128];
        snprintf(path, sizeof(path), "/%s", bad[i]);
        s3x(f, f->mgmt, "us-east-1", "PUT", NULL, path, NULL, NULL, 0, NULL, NULL, &g);
        if (g.status != 400)
            fail_msg("name %s accepted", bad[i]);
        expect_err(&g, 400, "InvalidBucketName", "The specified bucket is not valid.");
        ob_test_got_free(&g);
    }
    static const char *const good[] = {
        "abc", "a.b-c", "192.168.5.bucket",
        "a23456789012345678901234567890123456789012345678901234567890123", NULL};
    for (int i = 0; good[i]; i++)
        create(f, f->mgmt, "us-east-1", good[i]);
}

static void test_already_exists(void **state)
{
    fx_t *f = *state;
    got_t g;
    create(f, f->mgmt, "us-east-1", "dup-east");
    /* us-east-1 keeps its legacy answer: 200 for your own bucket. */
    create(f, f->mgmt, "us-east-1", "dup-east");
    create(f, f->mgmt, "eu-west-1", "dup-eu");
    const char *cfg = "<CreateBucketConfiguration><LocationConstraint>eu-west-1"
                      "</LocationConstraint></CreateBucketConfiguration>";
    s3(f, "eu-west-1", "PUT", "dup-eu", NULL, cfg, &g);
    expect_err(&g, 409, "BucketAlreadyOwnedByYou",
               "Your previous request to create the named bucket succeeded and you already own "
               "it.");
    ob_test_got_free(&g);
    /* Another account (an organization member, through AssumeRole). */
    s3x(f, f->member, "us-east-1", "PUT", "dup-east", NULL, NULL, NULL, 0, NULL, NULL, &g);
    expect_err(&g, 409, "BucketAlreadyExists",
               "The requested bucket name is not available. The bucket namespace is shared by "
               "all users of the system. Please select a different name and try again.");
    ob_test_got_free(&g);
    s3x(f, f->member, "eu-west-1", "PUT", "dup-eu", NULL, NULL, cfg, 0, NULL, NULL, &g);
    expect_err(&g, 409, "BucketAlreadyExists", NULL);
    ob_test_got_free(&g);
    /* The member's own bucket is its own. */
    create(f, f->member, "us-east-1", "member-bucket");
    json_t *b = json_object_get(sim_section(f->sim, "buckets"), "member-bucket");
    assert_string_equal(json_string_value(json_object_get(b, "owner")), "200000000001");
}

static void test_missing_and_foreign_buckets(void **state)
{
    fx_t *f = *state;
    got_t g;
    static const char *const subs[] = {
        "policy", "publicAccessBlock", "encryption", "ownershipControls", "location", NULL};
    for (int i = 0; subs[i]; i++) {
        s3(f, "us-east-1", "GET", "no-such-bucket", subs[i], NULL, &g);
        expect_err(&g, 404, "NoSuchBucket", "The specified bucket does not exist");
        ob_test_got_free(&g);
    }
    s3(f, "us-east-1", "DELETE", "no-such-bucket", NULL, NULL, &g);
    expect_err(&g, 404, "NoSuchBucket", "The specified bucket does not exist");
    ob_test_got_free(&g);
    s3(f, "us-east-1", "HEAD", "no-such-bucket", NULL, NULL, &g);
    assert_int_equal(g.status, 404);
    assert_string_equal(g.body, "");
    ob_test_got_free(&g);

    create(f, f->member, "us-east-1", "theirs");
    for (int i = 0; subs[i]; i++) {
        s3(f, "us-east-1", "GET", "theirs", subs[i], NULL, &g);
        expect_err(&g, 403, "AccessDenied", "Access Denied");
        ob_test_got_free(&g);
    }
    char pol[1024];
    s3(f, "us-east-1", "PUT", "theirs", "policy", cur_policy(pol, sizeof(pol), "theirs", "1"), &g);
    expect_err(&g, 403, "AccessDenied", "Access Denied");
    ob_test_got_free(&g);
    s3(f, "us-east-1", "HEAD", "theirs", NULL, NULL, &g);
    assert_int_equal(g.status, 403);
    assert_string_equal(g.body, "");
    assert_string_equal(ob_hdrs_get(&g.headers, "x-amz-bucket-region"), "us-east-1");
    ob_test_got_free(&g);
}

static void test_region_redirect(void **state)
{
    fx_t *f = *state;
    got_t g;
    create(f, f->mgmt, "eu-west-1", "far-away");
    s3(f, "us-east-1", "GET", "far-away", "policy", NULL, &g);
    expect_err(&g, 301, "PermanentRedirect",
               "The bucket you are attempting to access must be addressed using the specified "
               "endpoint. Please send all future requests to this endpoint.");
    assert_string_equal(ob_hdrs_get(&g.headers, "x-amz-bucket-region"), "eu-west-1");
    ob_test_got_free(&g);
    s3(f, "us-east-1", "HEAD", "far-away", NULL, NULL, &g);
    assert_int_equal(g.status, 301);
    assert_string_equal(g.body, "");
    assert_string_equal(ob_hdrs_get(&g.headers, "x-amz-bucket-region"), "eu-west-1");
    ob_test_got_free(&g);
    /* GetBucketLocation answers from any region. */
    s3(f, "us-east-1", "GET", "far-away", "location", NULL, &g);
    expect_ok(&g, 200);
    ob_test_got_free(&g);
}

static void test_policy_round_trip(void **state)
{
    fx_t *f = *state;
    got_t g;
    char pol[1024];
    create(f, f->mgmt, "us-east-1", "pol-bucket");
    s3(f, "us-east-1", "GET", "pol-bucket", "policy", NULL, &g);
    expect_err(&g, 404, "NoSuchBucketPolicy", "The bucket policy does not exist");
    ob_test_got_free(&g);
    cur_policy(pol, sizeof(pol), "pol-bucket", SIM_MGMT_ACCOUNT);
    s3(f, "us-east-1", "PUT", "pol-bucket", "policy", pol, &g);
    expect_ok(&g, 204);
    ob_test_got_free(&g);
    s3(f, "us-east-1", "GET", "pol-bucket", "policy", NULL, &g);
    expect_ok(&g, 200);
    assert_string_equal(g.body, pol);
    ob_test_got_free(&g);
    s3(f, "us-east-1", "DELETE", "pol-bucket", "policy", NULL, &g);
    expect_ok(&g, 204);
    ob_test_got_free(&g);
    s3(f, "us-east-1", "GET", "pol-bucket", "policy", NULL, &g);
    expect_err(&g, 404, "NoSuchBucketPolicy", "The bucket policy does not exist");
    ob_test_got_free(&g);
}

static void test_policy_malformed(void **state)
{
    fx_t *f = *state;
    create(f, f->mgmt, "us-east-1", "mpb");
    static const char *const cases[][2] = {
        {"not json", "Policies must be valid JSON and the first byte must be '{'"},
        {" {\"Statement\":[]}", "Policies must be valid JSON and the first byte must be '{'"},
        {"{\"Statement\": [", "Policies must be valid JSON and the first byte must be '{'"},
        {"{\"Version\":\"2012-10-17\"}", "Missing required field Statement"},
        {"{\"Statement\":[{\"Principal\":\"*\",\"Action\":\"s3:GetObject\","
         "\"Resource\":\"arn:aws:s3:::mpb/*\"}]}",
         "Missing required field Effect"},
        {"{\"Statement\":[{\"Effect\":\"Permit\",\"Principal\":\"*\",\"Action\":\"s3:GetObject\","
         "\"Resource\":\"arn:aws:s3:::mpb/*\"}]}",
         "Invalid effect: Permit"},
        {"{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\","
         "\"Resource\":\"arn:aws:s3:::mpb/*\"}]}",
         "Missing required field Principal"},
        {"{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Nobody\":\"x\"},"
         "\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::mpb/*\"}]}",
         "Invalid principal in policy"},
        {"{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"bob\"},"
         "\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::mpb/*\"}]}",
         "Invalid principal in policy"},
        {"{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Service\":"
         "\"billingreports.amazonaws.com\"},\"Resource\":\"arn:aws:s3:::mpb/*\"}]}",
         "Missing required field Action"},
        {"{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Service\":"
         "\"billingreports.amazonaws.com\"},\"Action\":\"s3:PutObject\"}]}",
         "Missing required field Resource"},
        {"{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Service\":"
         "\"billingreports.amazonaws.com\"},\"Action\":\"s3:PutObjekt\","
         "\"Resource\":\"arn:aws:s3:::mpb/*\"}]}",
         "Policy has invalid action"},
        {"{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Service\":"
         "\"billingreports.amazonaws.com\"},\"Action\":\"ec2:RunInstances\","
         "\"Resource\":\"arn:aws:s3:::mpb/*\"}]}",
         "Policy has invalid action"},
        {"{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Service\":"
         "\"billingreports.amazonaws.com\"},\"Action\":\"s3:PutObject\","
         "\"Resource\":\"arn:aws:s3:::other-bucket/*\"}]}",
         "Policy has invalid resource"},
        {"{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Service\":"
         "\"billingreports.amazonaws.com\"},\"Action\":\"s3:PutObject\","
         "\"Resource\":\"arn:aws:s3:::mpb\"}]}",
         "Action does not apply to any resource(s) in statement"},
        {"{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Service\":"
         "\"billingreports.amazonaws.com\"},\"Action\":\"s3:GetBucketAcl\","
         "\"Resource\":\"arn:aws:s3:::mpb/*\"}]}",
         "Action does not apply to any resource(s) in statement"},
        {"{\"Statment\":[]}", "Unknown field Statment"},
        {NULL, NULL}};
    for (int i = 0; cases[i][0]; i++) {
        got_t g;
        s3(f, "us-east-1", "PUT", "mpb", "policy", cases[i][0], &g);
        expect_err(&g, 400, "MalformedPolicy", cases[i][1]);
        ob_test_got_free(&g);
    }
    /* Larger than 20 KB. */
    size_t n = 20 * 1024 + 200;
    char *big = malloc(n + 1);
    char pol[1024];
    cur_policy(pol, sizeof(pol), "mpb", SIM_MGMT_ACCOUNT);
    memset(big, ' ', n);
    memcpy(big, pol, strlen(pol));
    big[n] = '\0';
    got_t g;
    s3(f, "us-east-1", "PUT", "mpb", "policy", big, &g);
    expect_err(&g, 400, "PolicyTooLarge", "Policy exceeds the maximum allowed document size.");
    ob_test_got_free(&g);
    free(big);

    /* A public policy is refused while BlockPublicPolicy is on. */
    const char *pub = "{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\","
                      "\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::mpb/*\"}]}";
    s3(f, "us-east-1", "PUT", "mpb", "policy", pub, &g);
    expect_err(&g, 403, "AccessDenied",
               "User: arn:aws:iam::111111111111:user/onboard is not authorized to perform: "
               "s3:PutBucketPolicy on resource: \"arn:aws:s3:::mpb\" because public policies are "
               "blocked by the BlockPublicPolicy block public access setting.");
    ob_test_got_free(&g);
    const char *off = "<PublicAccessBlockConfiguration><BlockPublicAcls>true</BlockPublicAcls>"
                      "<BlockPublicPolicy>false</BlockPublicPolicy>"
                      "</PublicAccessBlockConfiguration>";
    s3(f, "us-east-1", "PUT", "mpb", "publicAccessBlock", off, &g);
    expect_ok(&g, 200);
    ob_test_got_free(&g);
    s3(f, "us-east-1", "PUT", "mpb", "policy", pub, &g);
    expect_ok(&g, 204);
    ob_test_got_free(&g);
}

/* CRC-32 (IEEE, reflected), written independently of the module's. */
static uint32_t test_crc32(const char *s, size_t n)
{
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++)
        crc = table[(crc ^ (unsigned char)s[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

static char *crc32_b64(const char *s)
{
    uint32_t v = test_crc32(s, strlen(s));
    unsigned char be[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                           (unsigned char)(v >> 8), (unsigned char)v};
    return ob_base64_encode(be, 4);
}

static void test_content_md5_and_checksums(void **state)
{
    fx_t *f = *state;
    got_t g;
    char pol[1024];
    assert_int_equal(test_crc32("123456789", 9), 0xCBF43926u);
    create(f, f->mgmt, "us-east-1", "md5");
    cur_policy(pol, sizeof(pol), "md5", SIM_MGMT_ACCOUNT);
    static const char *const subs[][2] = {
        {"policy", NULL},
        {"publicAccessBlock", "<PublicAccessBlockConfiguration><BlockPublicAcls>true"
                              "</BlockPublicAcls></PublicAccessBlockConfiguration>"},
        {"encryption", "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryption"
                       "ByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryption"
                       "ByDefault></Rule></ServerSideEncryptionConfiguration>"},
        {"ownershipControls", "<OwnershipControls><Rule><ObjectOwnership>BucketOwnerEnforced"
                              "</ObjectOwnership></Rule></OwnershipControls>"},
        {NULL, NULL}};
    for (int i = 0; subs[i][0]; i++) {
        const char *body = subs[i][1] ? subs[i][1] : pol;
        s3x(f, f->mgmt, "us-east-1", "PUT", "md5", NULL, subs[i][0], body, 0, NULL, NULL, &g);
        expect_err(&g, 400, "InvalidRequest",
                   "Missing required header for this request: Content-MD5");
        ob_test_got_free(&g);
        s3x(f, f->mgmt, "us-east-1", "PUT", "md5", NULL, subs[i][0], body, 0, "Content-MD5",
            "1B2M2Y8AsgTpgAmY7PhCfg==", &g);
        expect_err(&g, 400, "BadDigest",
                   "The Content-MD5 you specified did not match what we received.");
        ob_test_got_free(&g);
        s3x(f, f->mgmt, "us-east-1", "PUT", "md5", NULL, subs[i][0], body, 0, "Content-MD5",
            "not base64!", &g);
        expect_err(&g, 400, "InvalidDigest", "The Content-MD5 you specified is not valid.");
        ob_test_got_free(&g);
        s3x(f, f->mgmt, "us-east-1", "PUT", "md5", NULL, subs[i][0], body, 0, "Content-MD5", "AAAA",
            &g);
        expect_err(&g, 400, "InvalidDigest", "The Content-MD5 you specified is not valid.");
        ob_test_got_free(&g);
        /* Newer SDKs send a flexible checksum instead. */
        char *crc = crc32_b64(body);
        s3x(f, f->mgmt, "us-east-1", "PUT", "md5", NULL, subs[i][0], body, 0,
            "x-amz-checksum-crc32", crc, &g);
        expect_ok(&g, subs[i][1] ? 200 : 204);
        ob_test_got_free(&g);
        free(crc);
        s3x(f, f->mgmt, "us-east-1", "PUT", "md5", NULL, subs[i][0], body, 0,
            "x-amz-checksum-crc32", "AAAAAA==", &g);
        expect_err(&g, 400, "BadDigest",
                   "The CRC32 you specified did not match the calculated "
                   "checksum.");
        ob_test_got_free(&g);
        s3x(f, f->mgmt, "us-east-1", "PUT", "md5", NULL, subs[i][0], body, 0,
            "x-amz-checksum-crc32", "AAAA", &g);
        expect_err(&g, 400, "InvalidRequest", "Value for x-amz-checksum-crc32 header is invalid.");
        ob_test_got_free(&g);
        uint8_t sha[OB_SHA256_LEN];
        ob_sha256(body, strlen(body), sha);
        char *sha64 = ob_base64_encode(sha, sizeof(sha));
        s3x(f, f->mgmt, "us-east-1", "PUT", "md5", NULL, subs[i][0], body, 0,
            "x-amz-checksum-sha256", sha64, &g);
        expect_ok(&g, subs[i][1] ? 200 : 204);
        ob_test_got_free(&g);
        sha64[0] = sha64[0] == 'A' ? 'B' : 'A';
        s3x(f, f->mgmt, "us-east-1", "PUT", "md5", NULL, subs[i][0], body, 0,
            "x-amz-checksum-sha256", sha64, &g);
        expect_err(&g, 400, "BadDigest",
                   "The SHA256 you specified did not match the calculated "
                   "checksum.");
        ob_test_got_free(&g);
        free(sha64);
    }
}

static void test_bucket_configuration(void **state)
{
    fx_t *f = *state;
    got_t g;
    char v[256];
    create(f, f->mgmt, "eu-west-1", "cfg");
    const char *pab = "<PublicAccessBlockConfiguration xmlns=\"http://s3.amazonaws.com/doc/"
                      "2006-03-01/\"><BlockPublicAcls>true</BlockPublicAcls><IgnorePublicAcls>"
                      "false</IgnorePublicAcls><BlockPublicPolicy>true</BlockPublicPolicy>"
                      "<RestrictPublicBuckets>false</RestrictPublicBuckets>"
                      "</PublicAccessBlockConfiguration>";
    s3(f, "eu-west-1", "PUT", "cfg", "publicAccessBlock", pab, &g);
    expect_ok(&g, 200);
    ob_test_got_free(&g);
    s3(f, "eu-west-1", "GET", "cfg", "publicAccessBlock", NULL, &g);
    expect_ok(&g, 200);
    assert_string_equal(xml_text(g.body, "IgnorePublicAcls", v, sizeof(v)), "false");
    assert_string_equal(xml_text(g.body, "BlockPublicPolicy", v, sizeof(v)), "true");
    ob_test_got_free(&g);

    const char *kms =
        "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault>"
        "<SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>arn:aws:kms:eu-west-1:"
        "111111111111:key/k</KMSMasterKeyID></ApplyServerSideEncryptionByDefault>"
        "<BucketKeyEnabled>true</BucketKeyEnabled></Rule>"
        "</ServerSideEncryptionConfiguration>";
    s3(f, "eu-west-1", "PUT", "cfg", "encryption", kms, &g);
    expect_ok(&g, 200);
    ob_test_got_free(&g);
    s3(f, "eu-west-1", "GET", "cfg", "encryption", NULL, &g);
    expect_ok(&g, 200);
    assert_string_equal(
        xml_text(g.body, "Rule/ApplyServerSideEncryptionByDefault/KMSMasterKeyID", v, sizeof(v)),
        "arn:aws:kms:eu-west-1:111111111111:key/k");
    assert_string_equal(xml_text(g.body, "Rule/BucketKeyEnabled", v, sizeof(v)), "true");
    ob_test_got_free(&g);
    s3(f, "eu-west-1", "DELETE", "cfg", "encryption", NULL, &g);
    expect_ok(&g, 204);
    ob_test_got_free(&g);
    s3(f, "eu-west-1", "GET", "cfg", "encryption", NULL, &g);
    expect_ok(&g, 200);
    assert_string_equal(
        xml_text(g.body, "Rule/ApplyServerSideEncryptionByDefault/SSEAlgorithm", v, sizeof(v)),
        "AES256");
    ob_test_got_free(&g);

    const char *own = "<OwnershipControls><Rule><ObjectOwnership>ObjectWriter</ObjectOwnership>"
                      "</Rule></OwnershipControls>";
    s3(f, "eu-west-1", "PUT", "cfg", "ownershipControls", own, &g);
    expect_ok(&g, 200);
    ob_test_got_free(&g);
    s3(f, "eu-west-1", "GET", "cfg", "ownershipControls", NULL, &g);
    assert_string_equal(xml_text(g.body, "Rule/ObjectOwnership", v, sizeof(v)), "ObjectWriter");
    ob_test_got_free(&g);

    static const char *const malformed[][2] = {
        {"publicAccessBlock", "<PublicAccessBlockConfiguration><BlockPublicAcls>yes"
                              "</BlockPublicAcls></PublicAccessBlockConfiguration>"},
        {"publicAccessBlock", "<PublicAccessBlockConfiguration><BlockEverything>true"
                              "</BlockEverything></PublicAccessBlockConfiguration>"},
        {"publicAccessBlock", "<OwnershipControls/>"},
        {"publicAccessBlock", "<PublicAccessBlockConfiguration>"},
        {"encryption",
         "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault>"
         "<SSEAlgorithm>DES</SSEAlgorithm></ApplyServerSideEncryptionByDefault>"
         "</Rule></ServerSideEncryptionConfiguration>"},
        {"encryption", "<ServerSideEncryptionConfiguration/>"},
        {"ownershipControls", "<OwnershipControls><Rule><ObjectOwnership>Anyone"
                              "</ObjectOwnership></Rule></OwnershipControls>"},
        {"ownershipControls", "<OwnershipControls xmlns=\"urn:other\"><Rule><ObjectOwnership>"
                              "ObjectWriter</ObjectOwnership></Rule></OwnershipControls>"},
        {NULL, NULL}};
    for (int i = 0; malformed[i][0]; i++) {
        s3(f, "eu-west-1", "PUT", "cfg", malformed[i][0], malformed[i][1], &g);
        expect_err(&g, 400, "MalformedXML",
                   "The XML you provided was not well-formed or did not validate against our "
                   "published schema");
        ob_test_got_free(&g);
    }
    const char *aes_kms = "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryption"
                          "ByDefault><SSEAlgorithm>AES256</SSEAlgorithm><KMSMasterKeyID>k"
                          "</KMSMasterKeyID></ApplyServerSideEncryptionByDefault></Rule>"
                          "</ServerSideEncryptionConfiguration>";
    s3(f, "eu-west-1", "PUT", "cfg", "encryption", aes_kms, &g);
    expect_err(&g, 400, "InvalidArgument",
               "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms or "
               "aws:kms:dsse");
    ob_test_got_free(&g);

    /* Deleting ownership controls and the public access block removes them. */
    s3(f, "eu-west-1", "DELETE", "cfg", "ownershipControls", NULL, &g);
    expect_ok(&g, 204);
    ob_test_got_free(&g);
    s3(f, "eu-west-1", "GET", "cfg", "ownershipControls", NULL, &g);
    expect_err(&g, 404, "OwnershipControlsNotFoundError",
               "The bucket ownership controls were not found");
    ob_test_got_free(&g);
    s3(f, "eu-west-1", "DELETE", "cfg", "publicAccessBlock", NULL, &g);
    expect_ok(&g, 204);
    ob_test_got_free(&g);
    s3(f, "eu-west-1", "GET", "cfg", "publicAccessBlock", NULL, &g);
    expect_err(&g, 404, "NoSuchPublicAccessBlockConfiguration",
               "The public access block configuration was not found");
    ob_test_got_free(&g);

    /* A bucket with no configuration at all (as a seed file makes them). */
    json_object_set_new(sim_section(f->sim, "buckets"), "seeded",
                        json_pack("{s:s, s:s, s:i}", "owner", SIM_MGMT_ACCOUNT, "region",
                                  "us-east-1", "created", 1700000000));
    s3(f, "us-east-1", "GET", "seeded", "encryption", NULL, &g);
    expect_err(&g, 404, "ServerSideEncryptionConfigurationNotFoundError",
               "The server side encryption configuration was not found");
    ob_test_got_free(&g);
    s3(f, "us-east-1", "GET", "seeded", "publicAccessBlock", NULL, &g);
    expect_err(&g, 404, "NoSuchPublicAccessBlockConfiguration", NULL);
    ob_test_got_free(&g);
    s3(f, "us-east-1", "GET", "seeded", "ownershipControls", NULL, &g);
    expect_err(&g, 404, "OwnershipControlsNotFoundError", NULL);
    ob_test_got_free(&g);
}

static void test_list_and_delete(void **state)
{
    fx_t *f = *state;
    got_t g;
    char v[256];
    create(f, f->mgmt, "us-east-1", "zeta");
    create(f, f->mgmt, "eu-west-1", "alpha");
    create(f, f->member, "us-east-1", "not-mine");
    s3(f, "us-east-1", "GET", NULL, NULL, NULL, &g);
    expect_ok(&g, 200);
    assert_string_equal(xml_text(g.body, "Buckets/Bucket/Name", v, sizeof(v)), "alpha");
    assert_int_equal(strlen(xml_text(g.body, "Owner/ID", v, sizeof(v))), 64);
    assert_non_null(strstr(g.body, "<Name>zeta</Name>"));
    assert_null(strstr(g.body, "not-mine"));
    assert_non_null(strstr(g.body, "<CreationDate>20"));
    ob_test_got_free(&g);

    s3(f, "us-east-1", "DELETE", "zeta", NULL, NULL, &g);
    expect_ok(&g, 204);
    ob_test_got_free(&g);
    s3(f, "us-east-1", "HEAD", "zeta", NULL, NULL, &g);
    assert_int_equal(g.status, 404);
    ob_test_got_free(&g);
    s3(f, "us-east-1", "DELETE", "not-mine", NULL, NULL, &g);
    expect_err(&g, 403, "AccessDenied", "Access Denied");
    ob_test_got_free(&g);
}

static void test_addressing(void **state)
{
    fx_t *f = *state;
    got_t g;
    char v[256], host[128];
    ob_hdrs_t h = {0};
    create(f, f->mgmt, "eu-west-1", "vhost.bucket");
    raw(f, "GET", "vhost.bucket.s3.eu-west-1.amazonaws.com", "/", "location", "eu-west-1", &h, NULL,
        &g);
    expect_ok(&g, 200);
    assert_string_equal(xml_text(g.body, "", v, sizeof(v)), "eu-west-1");
    ob_test_got_free(&g);
    raw(f, "GET", "vhost.bucket.s3.amazonaws.com", "/", "location", "eu-west-1", &h, NULL, &g);
    expect_ok(&g, 200);
    ob_test_got_free(&g);
    snprintf(host, sizeof(host), "vhost.bucket.localhost:%d", sim_port(f->sim));
    raw(f, "HEAD", host, "/", NULL, "eu-west-1", &h, NULL, &g);
    expect_ok(&g, 200);
    ob_test_got_free(&g);
    /* A plain endpoint host: path style. */
    raw(f, "GET", "s3.eu-west-1.amazonaws.com", "/vhost.bucket", "location", "eu-west-1", &h, NULL,
        &g);
    expect_ok(&g, 200);
    ob_test_got_free(&g);

    /* Operations awssim does not serve. */
    s3(f, "eu-west-1", "GET", "vhost.bucket", "acl", NULL, &g);
    expect_err(&g, 501, "NotImplemented", NULL);
    ob_test_got_free(&g);
    s3x(f, f->mgmt, "eu-west-1", "GET", NULL, "/vhost.bucket/some/key", NULL, NULL, 0, NULL, NULL,
        &g);
    expect_err(&g, 501, "NotImplemented", NULL);
    ob_test_got_free(&g);
    s3(f, "eu-west-1", "POST", "vhost.bucket", "policy", NULL, &g);
    expect_err(&g, 405, "MethodNotAllowed",
               "The specified method is not allowed against this resource.");
    ob_test_got_free(&g);
    s3x(f, f->mgmt, "us-east-1", "PUT", NULL, "/", NULL, NULL, 0, NULL, NULL, &g);
    expect_err(&g, 405, "MethodNotAllowed", NULL);
    ob_test_got_free(&g);
    assert_int_equal(
        json_integer_value(json_object_get(sim_section(f->sim, "counts"), "s3.GetBucketLocation")),
        3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_bucket_us_east_1_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_bucket_regional, setup, teardown),
        cmocka_unit_test_setup_teardown(test_location_constraint_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bucket_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_already_exists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_and_foreign_buckets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_region_redirect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_content_md5_and_checksums, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bucket_configuration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_addressing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
