/*
 * The simulator's admin calls that repair the world, driven in-process over
 * HTTP (plain, unsigned requests to /_sim/...) next to the project's own AWS
 * client: POST /_sim/seed merges accounts, keys, roles and buckets into the
 * running state (a seeded role can then be assumed through its trust
 * policy, a replaced role has the new one, nothing else is reset, a bad
 * document changes nothing); DELETE /_sim/buckets/NAME frees a name another
 * account held so a second account can create it; the errors are JSON.
 * And the request quotas as the admin API shows and takes them (the "aws"
 * table, rules, the aws-quotas profile, what is refused, the same at start
 * up), CloudFormation's buckets per target account and Region, a throttled
 * CreateBucket that leaves no bucket with S3's SlowDown, Organizations' and
 * CUR's throttle errors, POST /_sim/reset refilling, idle buckets dropped.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_aws.h"
#include "ob_credsrc.h"
#include "ob_http.h"
#include "ob_xml.h"
#include "sim.h"
#include "testutil.h"

#define OTHER      "333333333333"
#define OTHER_AKID "AKIAOTHER00000000001"
#define OTHER_KEY  "s3cr3t-other-account-key"
#define ONBOARD    "arn:aws:iam::" OTHER ":role/Onboard"

typedef ob_test_simfx_t fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    sim_opts_t o = {.profile = "instant", .org_accounts = 2, .random_seed = 5};
    ob_test_simfx_start(f, &o, "us-east-1", NULL, NULL);
    *state = f;
    return 0;
}

/* ---- admin calls ---- */

/* The call fails with this status and {"error": message}. */
static void admin_fails(fx_t *f, const char *method, const char *path, const char *body,
                        long status, const char *message)
{
    json_t *j = ob_test_simfx_admin(f, method, path, body, status);
    const char *e = json_string_value(json_object_get(j, "error"));
    if (!e || strcmp(e, message) != 0)
        fail_msg("%s %s: error \"%s\", wanted \"%s\"", method, path, e ? e : "(none)", message);
    json_decref(j);
}

static json_int_t jint(json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

/* ---- AWS calls ---- */

typedef ob_test_got_t got_t;

/* AssumeRole by the management account; extid may be NULL. */
static void assume(fx_t *f, const char *role_arn, const char *extid, got_t *g)
{
    ob_aws_req_t req;
    memset(&req, 0, sizeof(req));
    assert_int_equal(ob_query_init(&req, OB_SVC_STS, "AssumeRole", NULL, 0), OB_OK);
    assert_int_equal(ob_query_add(&req, "RoleArn", role_arn, NULL, 0), OB_OK);
    assert_int_equal(ob_query_add(&req, "RoleSessionName", "repair", NULL, 0), OB_OK);
    if (extid)
        assert_int_equal(ob_query_add(&req, "ExternalId", extid, NULL, 0), OB_OK);
    ob_aws_target_t t = {.creds = f->mgmt};
    ob_test_aws_call(f, &req, &t, g, 10000);
}

static void expect_assumed(got_t *g, const char *role_name)
{
    ob_xml_doc_t *doc = NULL;
    const ob_xml_node_t *r = NULL;
    char want[256];
    if (g->err != OB_OK)
        fail_msg("AssumeRole: %ld %s: %s", g->status, g->code, g->message);
    assert_int_equal(
        ob_query_parse_result(g->body, strlen(g->body), "AssumeRole", &doc, &r, NULL, 0), OB_OK);
    snprintf(want, sizeof(want), "arn:aws:sts::" OTHER ":assumed-role/%s/repair", role_name);
    assert_string_equal(ob_xml_path_text(r, "AssumedRoleUser/Arn"), want);
    assert_non_null(ob_xml_path_text(r, "Credentials/SessionToken"));
    ob_xml_free(doc);
}

static void expect_denied(got_t *g)
{
    if (g->err != OB_ERR_AWS || g->status != 403 || strcmp(g->code, "AccessDenied") != 0)
        fail_msg("AssumeRole: wanted 403 AccessDenied, got err %d %ld %s", g->err, g->status,
                 g->code);
}

/* CreateBucket in us-east-1 with these credentials. */
static void create_bucket(fx_t *f, ob_credsrc_t *creds, const char *bucket, got_t *g)
{
    ob_aws_req_t req;
    memset(&req, 0, sizeof(req));
    assert_int_equal(ob_s3_init(&req, "CreateBucket", "PUT", "/", NULL, NULL, 0), OB_OK);
    ob_aws_target_t t = {.region = "us-east-1", .creds = creds, .s3_bucket = bucket};
    ob_test_aws_call(f, &req, &t, g, 10000);
}

static json_t *role_trust_stmt(fx_t *f, const char *account, const char *name)
{
    json_t *role = sim_get_role(f->sim, account, name);
    assert_non_null(role);
    return json_array_get(
        json_object_get(json_object_get(role, "AssumeRolePolicyDocument"), "Statement"), 0);
}

/* A seed with the other account, its key, its Onboard role (trusting the
 * management account with this ExternalId) and a bucket it owns. */
static char *seed_doc(const char *extid, int with_all)
{
    char *s = NULL;
    const char *all =
        "\"accounts\": [{\"Id\": \"" OTHER "\", \"Name\": \"other\"}],"
        " \"keys\": [{\"AccessKeyId\": \"" OTHER_AKID "\", \"SecretAccessKey\": \"" OTHER_KEY
        "\", \"Account\": \"" OTHER "\", \"UserName\": \"ops\"}],"
        " \"buckets\": [{\"Name\": \"taken-bucket\", \"Owner\": \"" OTHER "\"}],";
    if (asprintf(
            &s,
            "{%s \"roles\": [{\"Account\": \"" OTHER "\", \"RoleName\": \"Onboard\","
            " \"AssumeRolePolicyDocument\": {\"Version\": \"2012-10-17\", \"Statement\": "
            "[{\"Effect\": \"Allow\", \"Principal\": {\"AWS\": \"arn:aws:iam::" SIM_MGMT_ACCOUNT
            ":root\"}, \"Action\": \"sts:AssumeRole\", \"Condition\": {\"StringEquals\": "
            "{\"sts:ExternalId\": \"%s\"}}}]}}]}",
            with_all ? all : "", extid) < 0)
        fail_msg("asprintf");
    return s;
}

/* ---- tests ---- */

static void test_seed_merges_and_role_can_be_assumed(void **state)
{
    fx_t *f = *state;
    got_t g;

    /* Before: no such role, account or key. */
    assume(f, ONBOARD, "ext-1", &g);
    assert_int_equal(g.err, OB_ERR_AWS);
    ob_test_got_free(&g);
    json_t *accounts_before = json_deep_copy(sim_section(f->sim, "accounts"));
    size_t keys_before = json_object_size(sim_section(f->sim, "keys"));

    char *doc = seed_doc("ext-1", 1);
    json_t *j = ob_test_simfx_admin(f, "POST", "/_sim/seed", doc, 200);
    free(doc);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "seeded");
    assert_int_equal(jint(j, "accounts"), 1);
    assert_int_equal(jint(j, "keys"), 1);
    assert_int_equal(jint(j, "roles"), 1);
    assert_int_equal(jint(j, "buckets"), 1);
    json_decref(j);

    /* Merged: the new items are there, nothing else was reset. */
    json_t *accounts = sim_section(f->sim, "accounts");
    assert_int_equal(json_object_size(accounts), json_object_size(accounts_before) + 1);
    const char *k;
    json_t *v;
    json_object_foreach(accounts_before, k, v)
    {
        assert_true(json_equal(json_object_get(accounts, k), v));
    }
    json_decref(accounts_before);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(accounts, OTHER), "Name")), "other");
    assert_int_equal(json_object_size(sim_section(f->sim, "keys")), keys_before + 1);
    assert_non_null(sim_get_role(f->sim, "200000000001", "OrganizationAccountAccessRole"));

    /* The role is real: its trust policy decides. */
    assume(f, ONBOARD, "ext-1", &g);
    expect_assumed(&g, "Onboard");
    ob_test_got_free(&g);
    assume(f, ONBOARD, NULL, &g);
    expect_denied(&g);
    ob_test_got_free(&g);
    assume(f, ONBOARD, "ext-2", &g);
    expect_denied(&g);
    ob_test_got_free(&g);

    /* The seeded key signs for its account. */
    ob_credsrc_t *other = ob_credsrc_static(f->aws, OTHER_AKID, OTHER_KEY, NULL, "other");
    create_bucket(f, other, "other-own-bucket", &g);
    if (g.err != OB_OK)
        fail_msg("CreateBucket as the seeded key: %ld %s: %s", g.status, g.code, g.message);
    ob_test_got_free(&g);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(sim_section(f->sim, "buckets"), "other-own-bucket"), "owner")),
        OTHER);
    ob_credsrc_unref(other);

    /* Seeding the role again replaces its trust policy; the rest stays. */
    doc = seed_doc("ext-2", 0);
    j = ob_test_simfx_admin(f, "POST", "/_sim/seed", doc, 200);
    free(doc);
    assert_int_equal(jint(j, "roles"), 1);
    assert_int_equal(jint(j, "accounts"), 0);
    json_decref(j);
    json_t *stmt = role_trust_stmt(f, OTHER, "Onboard");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(stmt, "Condition"), "StringEquals"), "sts:ExternalId")),
        "ext-2");
    assume(f, ONBOARD, "ext-1", &g);
    expect_denied(&g);
    ob_test_got_free(&g);
    assume(f, ONBOARD, "ext-2", &g);
    expect_assumed(&g, "Onboard");
    ob_test_got_free(&g);
    assert_non_null(json_object_get(sim_section(f->sim, "accounts"), OTHER));
    assert_non_null(json_object_get(sim_section(f->sim, "buckets"), "taken-bucket"));

    /* A member account's role can be repaired the same way (here: broken,
     * then fixed). */
    const char *broken =
        "{\"roles\": [{\"Account\": \"200000000002\", \"RoleName\": "
        "\"OrganizationAccountAccessRole\", \"AssumeRolePolicyDocument\": {\"Statement\": []}}]}";
    json_decref(ob_test_simfx_admin(f, "POST", "/_sim/seed", broken, 200));
    assume(f, "arn:aws:iam::200000000002:role/OrganizationAccountAccessRole", NULL, &g);
    expect_denied(&g);
    ob_test_got_free(&g);
    const char *fixed = "{\"roles\": [{\"Account\": \"200000000002\", \"RoleName\": "
                        "\"OrganizationAccountAccessRole\", \"AssumeRolePolicyDocument\": "
                        "{\"Version\": \"2012-10-17\", \"Statement\": [{\"Effect\": \"Allow\", "
                        "\"Principal\": {\"AWS\": \"arn:aws:iam::" SIM_MGMT_ACCOUNT ":root\"}, "
                        "\"Action\": \"sts:AssumeRole\"}]}}]}";
    json_decref(ob_test_simfx_admin(f, "POST", "/_sim/seed", fixed, 200));
    assume(f, "arn:aws:iam::200000000002:role/OrganizationAccountAccessRole", NULL, &g);
    if (g.err != OB_OK)
        fail_msg("AssumeRole after the repair: %s: %s", g.code, g.message);
    ob_test_got_free(&g);
}

static void test_seed_errors_change_nothing(void **state)
{
    fx_t *f = *state;
    char *before = json_dumps(sim_state(f->sim), JSON_SORT_KEYS | JSON_COMPACT);

    admin_fails(f, "POST", "/_sim/seed", "not json", 400,
                "body must be a JSON object like the --seed file: {\"accounts\": [...], "
                "\"keys\": [...], \"roles\": [...], \"buckets\": [...]}");
    admin_fails(f, "POST", "/_sim/seed", NULL, 400,
                "body must be a JSON object like the --seed file: {\"accounts\": [...], "
                "\"keys\": [...], \"roles\": [...], \"buckets\": [...]}");
    admin_fails(f, "POST", "/_sim/seed", "{}", 400,
                "seed: nothing to add (give accounts, ous, keys, roles, buckets or reports)");
    admin_fails(f, "POST", "/_sim/seed", "{\"role\": []}", 400,
                "seed: nothing to add (give accounts, ous, keys, roles, buckets or reports)");
    admin_fails(f, "POST", "/_sim/seed", "{\"roles\": {}}", 400,
                "seed: \"roles\" must be an array");
    /* One bad item: the good ones before it are not applied either. */
    admin_fails(f, "POST", "/_sim/seed",
                "{\"accounts\": [{\"Id\": \"444444444444\"}], "
                "\"roles\": [{\"Account\": \"444444444444\", \"RoleName\": \"R\"}]}",
                400, "seed: role 0 needs Account, RoleName and an AssumeRolePolicyDocument object");
    admin_fails(f, "POST", "/_sim/seed", "{\"accounts\": [{\"Id\": \"12\"}]}", 400,
                "seed: account 0 needs a 12-digit Id");
    admin_fails(f, "POST", "/_sim/seed", "{\"keys\": [{\"AccessKeyId\": \"AKIAX\"}]}", 400,
                "seed: key 0 needs AccessKeyId, SecretAccessKey, Account");
    admin_fails(f, "POST", "/_sim/seed", "{\"buckets\": [{\"Name\": \"b\"}]}", 400,
                "seed: bucket 0 needs Name and Owner");
    admin_fails(f, "GET", "/_sim/seed", NULL, 404,
                "unknown admin call; GET /_sim/{health,state,stats,config}, POST "
                "/_sim/{reset,seed,accounts,ous,drift,config,faults,latency,quotas}, DELETE "
                "/_sim/{faults,latency,quotas,buckets/NAME}");

    char *after = json_dumps(sim_state(f->sim), JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(after, before);
    free(before);
    free(after);
}

static void test_delete_bucket_frees_the_name(void **state)
{
    fx_t *f = *state;
    got_t g;
    const char *seed = "{\"buckets\": [{\"Name\": \"held-by-other\", \"Owner\": \"" OTHER
                       "\", \"Region\": \"eu-west-1\"}]}";
    json_decref(ob_test_simfx_admin(f, "POST", "/_sim/seed", seed, 200));

    /* Another account holds the name. */
    create_bucket(f, f->mgmt, "held-by-other", &g);
    if (g.err != OB_ERR_AWS || g.status != 409 || strcmp(g.code, "BucketAlreadyExists") != 0)
        fail_msg("CreateBucket: wanted 409 BucketAlreadyExists, got %ld %s", g.status, g.code);
    ob_test_got_free(&g);

    json_t *j = ob_test_simfx_admin(f, "DELETE", "/_sim/buckets/held-by-other", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "deleted");
    assert_string_equal(json_string_value(json_object_get(j, "bucket")), "held-by-other");
    assert_string_equal(json_string_value(json_object_get(j, "owner")), OTHER);
    json_decref(j);
    assert_null(json_object_get(sim_section(f->sim, "buckets"), "held-by-other"));

    /* Now the management account gets it. */
    create_bucket(f, f->mgmt, "held-by-other", &g);
    if (g.err != OB_OK)
        fail_msg("CreateBucket after the delete: %ld %s: %s", g.status, g.code, g.message);
    ob_test_got_free(&g);
    json_t *b = json_object_get(sim_section(f->sim, "buckets"), "held-by-other");
    assert_string_equal(json_string_value(json_object_get(b, "owner")), SIM_MGMT_ACCOUNT);
    assert_string_equal(json_string_value(json_object_get(b, "region")), "us-east-1");

    /* Absent names, and no name at all. */
    admin_fails(f, "DELETE", "/_sim/buckets/never-there", NULL, 404, "no bucket \"never-there\"");
    admin_fails(f, "DELETE", "/_sim/buckets/", NULL, 404, "no bucket \"\"");
    admin_fails(f, "DELETE", "/_sim/buckets/held-by-other/x", NULL, 404,
                "no bucket \"held-by-other/x\"");
    /* The whole state is still JSON the admin API serves. */
    json_decref(ob_test_simfx_admin(f, "GET", "/_sim/state", NULL, 200));
}

/* ---- request quotas ---- */

#define MEMBER1 "200000000001"

/* config["quotas"][api] (borrowed from cfg), which must be there with this
 * rate, burst and scope. */
static void expect_rule(json_t *cfg, const char *api, double rate, double burst, const char *scope)
{
    json_t *r = json_object_get(json_object_get(cfg, "quotas"), api);
    if (!r)
        fail_msg("no quota rule %s", api);
    assert_true(json_number_value(json_object_get(r, "rate")) == rate);
    assert_true(json_number_value(json_object_get(r, "burst")) == burst);
    assert_string_equal(json_string_value(json_object_get(r, "scope")), scope);
}

static size_t nquotas(json_t *cfg)
{
    json_t *q = json_object_get(cfg, "quotas");
    assert_true(json_is_object(q));
    return json_object_size(q);
}

static void post_config(fx_t *f, const char *body)
{
    json_decref(ob_test_simfx_admin(f, "POST", "/_sim/config", body, 200));
}

/* stats[member][api] (or stats[member] for NULL api), 0 when absent. */
static json_int_t stats_value(fx_t *f, const char *member, const char *api)
{
    json_t *st = ob_test_simfx_admin(f, "GET", "/_sim/stats", NULL, 200);
    json_t *v = json_object_get(st, member);
    json_int_t n = json_integer_value(api ? json_object_get(v, api) : v);
    json_decref(st);
    return n;
}

/* Temporary credentials of a session of account's organization role, made
 * without a call (so that no STS quota is spent on them). */
static ob_credsrc_t *session_of(fx_t *f, const char *account)
{
    char role[128];
    const char *akid, *secret, *token;
    int64_t exp;
    snprintf(role, sizeof(role), "arn:aws:iam::%s:role/OrganizationAccountAccessRole", account);
    sim_issue_session(f->sim, account, role, "quota", 900, &akid, &secret, &token, &exp);
    return ob_credsrc_static(f->aws, akid, secret, token, account);
}

/* n calls of op (a Query action, or a JSON 1.1 operation with an empty
 * body) by creds signed for region, sent together: how many went through.
 * Every other one must have failed with status and code. */
static int burst(fx_t *f, ob_aws_svc_t svc, const char *op, ob_credsrc_t *creds, const char *region,
                 int n, long status, const char *code)
{
    got_t g[16];
    assert_true(n <= 16);
    for (int i = 0; i < n; i++) {
        ob_aws_req_t req;
        memset(&req, 0, sizeof(req));
        if (svc == OB_SVC_CUR || svc == OB_SVC_ORGANIZATIONS)
            assert_int_equal(ob_json11_init(&req, svc, op, "{}", NULL, 0), OB_OK);
        else
            assert_int_equal(ob_query_init(&req, svc, op, NULL, 0), OB_OK);
        ob_aws_target_t t = {.region = region, .creds = creds};
        ob_test_aws_send(f, &req, &t, &g[i]);
    }
    ob_test_got_wait_all(f, g, n, 10000);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        if (g[i].err == OB_OK)
            ok++;
        else if (g[i].err != OB_ERR_AWS || g[i].status != status || strcmp(g[i].code, code) != 0)
            fail_msg("%s: wanted success or %ld %s, got err %d %ld %s \"%s\"", op, status, code,
                     g[i].err, g[i].status, g[i].code, g[i].message);
        ob_test_got_free(&g[i]);
    }
    return ok;
}

static void test_quota_config(void **state)
{
    fx_t *f = *state;
    /* None by default. */
    json_t *cfg = ob_test_simfx_admin(f, "GET", "/_sim/config", NULL, 200);
    assert_int_equal(nquotas(cfg), 0);
    json_decref(cfg);

    /* The documented table. */
    cfg = ob_test_simfx_admin(f, "POST", "/_sim/config", "{\"quotas\": \"aws\"}", 200);
    expect_rule(cfg, "sts.*", 600, 600, "caller-region");
    expect_rule(cfg, "cloudformation.CreateStack", 5, 5, "account-region");
    expect_rule(cfg, "cloudformation.DescribeStacks", 5, 5, "account-region");
    expect_rule(cfg, "cloudformation.DetectStackDrift", 5, 5, "account-region");
    expect_rule(cfg, "cloudformation.DescribeStackDriftDetectionStatus", 5, 5, "account-region");
    expect_rule(cfg, "cloudformation.*", 5, 5, "account-region");
    expect_rule(cfg, "s3.*", 3500, 3500, "account");
    expect_rule(cfg, "cur.*", 5, 5, "account");
    expect_rule(cfg, "organizations.*", 10, 10, "account");
    size_t table = nquotas(cfg);
    json_decref(cfg);

    /* Rules on top: an override, a new one, a default burst (at least 1). */
    cfg = ob_test_simfx_admin(f, "POST", "/_sim/config",
                              "{\"quota\": {\"cloudformation.*\": \"2/4\", \"sts.AssumeRole\": "
                              "\"0.5\", \"s3.CreateBucket\": \"7\"}}",
                              200);
    expect_rule(cfg, "cloudformation.*", 2, 4, "account-region");
    expect_rule(cfg, "sts.AssumeRole", 0.5, 1, "caller-region");
    expect_rule(cfg, "s3.CreateBucket", 7, 7, "account");
    expect_rule(cfg, "sts.*", 600, 600, "caller-region");
    assert_int_equal(nquotas(cfg), table + 2);
    json_decref(cfg);
    /* GET shows the same; so does /_sim/quotas. */
    cfg = ob_test_simfx_admin(f, "GET", "/_sim/quotas", NULL, 200);
    expect_rule(cfg, "sts.AssumeRole", 0.5, 1, "caller-region");
    json_decref(cfg);

    /* What is refused changes nothing. */
    cfg = ob_test_simfx_admin(f, "GET", "/_sim/config", NULL, 200);
    char *before = json_dumps(cfg, JSON_SORT_KEYS);
    json_decref(cfg);
    admin_fails(f, "POST", "/_sim/config", "{\"quotas\": \"sometimes\"}", 400,
                "\"quotas\" must be \"aws\" or \"none\"");
    admin_fails(f, "POST", "/_sim/config", "{\"quota\": \"sts.*=5\"}", 400,
                "\"quota\" must be an object: {\"API\": \"RATE[/BURST]\"}");
    admin_fails(f, "POST", "/_sim/config", "{\"quota\": {\"sts.*\": 5}}", 400,
                "quota sts.*: give \"RATE\" or \"RATE/BURST\" as a string");
    admin_fails(f, "POST", "/_sim/config", "{\"quota\": {\"sts.*\": \"0\"}}", 400,
                "quota sts.*: cannot read \"0\" (use RATE or RATE/BURST: requests per second "
                "above 0, and a burst of at least 1)");
    admin_fails(f, "POST", "/_sim/config", "{\"quota\": {\"sts.*\": \"5/0\"}}", 400,
                "quota sts.*: cannot read \"5/0\" (use RATE or RATE/BURST: requests per second "
                "above 0, and a burst of at least 1)");
    admin_fails(f, "POST", "/_sim/config", "{\"quota\": {\"sts.*\": \"fast\"}}", 400,
                "quota sts.*: cannot read \"fast\" (use RATE or RATE/BURST: requests per second "
                "above 0, and a burst of at least 1)");
    admin_fails(f, "POST", "/_sim/config", "{\"quota\": {\"ec2.*\": \"5\"}}", 400,
                "quota ec2.*: unknown service \"ec2\" (s3, sts, cloudformation, cur, "
                "organizations)");
    admin_fails(f, "POST", "/_sim/config", "{\"quota\": {\"*\": \"5\"}}", 400,
                "quota *: name an API as SERVICE.Operation or SERVICE.* (s3, sts, "
                "cloudformation, cur, organizations)");
    admin_fails(f, "POST", "/_sim/config", "{\"quota\": {\"cloudformation.stack_create\": \"5\"}}",
                400,
                "quota cloudformation.stack_create: quotas apply to API calls "
                "(SERVICE.Operation, SERVICE.*), not to work that takes time");
    /* One bad rule: nothing of the body is applied (the profile neither). */
    admin_fails(f, "POST", "/_sim/config",
                "{\"profile\": \"aws-typical\", \"quotas\": \"none\", \"quota\": "
                "{\"sts.*\": \"1\", \"s3.*\": \"-1\"}}",
                400,
                "quota s3.*: cannot read \"-1\" (use RATE or RATE/BURST: requests per second "
                "above 0, and a burst of at least 1)");
    cfg = ob_test_simfx_admin(f, "GET", "/_sim/config", NULL, 200);
    char *after = json_dumps(cfg, JSON_SORT_KEYS);
    json_decref(cfg);
    assert_string_equal(after, before);
    free(before);
    free(after);

    /* DELETE /_sim/latency leaves the quotas; DELETE /_sim/quotas drops them. */
    cfg = ob_test_simfx_admin(f, "DELETE", "/_sim/latency", NULL, 200);
    assert_int_equal(nquotas(cfg), table + 2);
    json_decref(cfg);
    cfg = ob_test_simfx_admin(f, "DELETE", "/_sim/quotas", NULL, 200);
    assert_int_equal(nquotas(cfg), 0);
    json_decref(cfg);

    /* The aws-quotas profile: aws-typical's latencies and the table. */
    cfg = ob_test_simfx_admin(f, "POST", "/_sim/config", "{\"profile\": \"aws-quotas\"}", 200);
    assert_string_equal(json_string_value(json_object_get(cfg, "profile")), "aws-quotas");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(cfg, "latency"), "sts.*")), "60ms-150ms");
    assert_int_equal(nquotas(cfg), table);
    json_decref(cfg);
    /* Another profile keeps them; "quotas": "none" with it drops them. */
    cfg = ob_test_simfx_admin(f, "POST", "/_sim/config", "{\"profile\": \"instant\"}", 200);
    assert_int_equal(nquotas(cfg), table);
    json_decref(cfg);
    cfg = ob_test_simfx_admin(f, "POST", "/_sim/config",
                              "{\"profile\": \"aws-quotas\", \"quotas\": \"none\", \"quota\": "
                              "{\"cur.*\": \"1/3\"}}",
                              200);
    assert_int_equal(nquotas(cfg), 1);
    expect_rule(cfg, "cur.*", 1, 3, "account");
    json_decref(cfg);

    /* The same at start-up: the profile's table, --quotas over it, --quota on top. */
    const char *const rules[] = {"s3.*=7/9", "organizations.ListAccounts=2", NULL};
    sim_opts_t o = {.profile = "aws-quotas", .quotas = "none", .quota = rules};
    char err[256];
    sim_t *other = sim_new(f->loop, &o, err, sizeof(err));
    if (!other)
        fail_msg("sim_new: %s", err);
    ob_test_simfx_t g = *f;
    g.sim = other;
    snprintf(g.endpoint, sizeof(g.endpoint), "http://127.0.0.1:%d", sim_port(other));
    cfg = ob_test_simfx_admin(&g, "GET", "/_sim/config", NULL, 200);
    assert_int_equal(nquotas(cfg), 2);
    expect_rule(cfg, "s3.*", 7, 9, "account");
    expect_rule(cfg, "organizations.ListAccounts", 2, 2, "account");
    json_decref(cfg);
    sim_free(other);
    const char *const bad[] = {"sts.AssumeRole", NULL};
    sim_opts_t ob = {.quota = bad};
    assert_null(sim_new(f->loop, &ob, err, sizeof(err)));
    assert_string_equal(err, "quota \"sts.AssumeRole\": expected API=RATE or API=RATE/BURST");
    sim_opts_t ot = {.quotas = "sometimes"};
    assert_null(sim_new(f->loop, &ot, err, sizeof(err)));
    assert_string_equal(err, "unknown quota table \"sometimes\" (aws, none)");
}

static void test_quota_cloudformation_per_account_and_region(void **state)
{
    fx_t *f = *state;
    post_config(f, "{\"quota\": {\"cloudformation.DescribeStacks\": \"0.5/2\"}}");
    assert_int_equal(burst(f, OB_SVC_CLOUDFORMATION, "DescribeStacks", f->mgmt, "us-east-1", 3, 400,
                           "Throttling"),
                     2);
    /* Another target account: its own bucket, in the same Region. */
    ob_credsrc_t *member = session_of(f, MEMBER1);
    assert_int_equal(burst(f, OB_SVC_CLOUDFORMATION, "DescribeStacks", member, "us-east-1", 3, 400,
                           "Throttling"),
                     2);
    ob_credsrc_unref(member);
    /* The same account in another Region: its own too. */
    assert_int_equal(burst(f, OB_SVC_CLOUDFORMATION, "DescribeStacks", f->mgmt, "eu-west-1", 3, 400,
                           "Throttling"),
                     2);
    assert_int_equal(burst(f, OB_SVC_CLOUDFORMATION, "DescribeStacks", f->mgmt, "us-east-1", 1, 400,
                           "Throttling"),
                     0);
    /* The rule is DescribeStacks' alone. */
    assert_int_equal(
        burst(f, OB_SVC_CLOUDFORMATION, "ListStacks", f->mgmt, "us-east-1", 4, 400, "Throttling"),
        4);
    assert_int_equal(stats_value(f, "throttled", "cloudformation.DescribeStacks"), 4);
    assert_int_equal(stats_value(f, "throttled_total", NULL), 4);
    assert_int_equal(stats_value(f, "faults_injected", NULL), 0);
    /* Buckets live: management in two Regions and the member. */
    assert_int_equal(stats_value(f, "quota_buckets", NULL), 3);
}

static void test_quota_throttled_call_changes_nothing(void **state)
{
    fx_t *f = *state;
    got_t g;
    char *doc = seed_doc("ext-1", 1);
    json_decref(ob_test_simfx_admin(f, "POST", "/_sim/seed", doc, 200));
    free(doc);
    post_config(f, "{\"quota\": {\"s3.*\": \"0.5/1\"}}");
    create_bucket(f, f->mgmt, "quota-first", &g);
    if (g.err != OB_OK)
        fail_msg("CreateBucket: %ld %s: %s", g.status, g.code, g.message);
    ob_test_got_free(&g);
    /* Over the quota: S3's SlowDown, and no bucket. */
    create_bucket(f, f->mgmt, "quota-second", &g);
    if (g.err != OB_ERR_AWS || g.status != 503 || strcmp(g.code, "SlowDown") != 0 ||
        strcmp(g.message, "Please reduce your request rate.") != 0)
        fail_msg("CreateBucket over the quota: wanted 503 SlowDown, got %ld %s: %s", g.status,
                 g.code, g.message);
    ob_test_got_free(&g);
    json_t *buckets = sim_section(f->sim, "buckets");
    assert_non_null(json_object_get(buckets, "quota-first"));
    assert_null(json_object_get(buckets, "quota-second"));
    assert_int_equal(stats_value(f, "throttled", "s3.CreateBucket"), 1);
    /* Another account's bucket operations have their own quota. */
    ob_credsrc_t *other = ob_credsrc_static(f->aws, OTHER_AKID, OTHER_KEY, NULL, "other");
    create_bucket(f, other, "quota-other", &g);
    if (g.err != OB_OK)
        fail_msg("CreateBucket by another account: %ld %s: %s", g.status, g.code, g.message);
    ob_test_got_free(&g);
    ob_credsrc_unref(other);

    /* Organizations and CUR, each in its own words. */
    post_config(f, "{\"quota\": {\"organizations.*\": \"0.5/1\", \"cur.*\": \"0.5/1\"}}");
    assert_int_equal(burst(f, OB_SVC_ORGANIZATIONS, "ListAccounts", f->mgmt, NULL, 2, 400,
                           "TooManyRequestsException"),
                     1);
    assert_int_equal(burst(f, OB_SVC_CUR, "DescribeReportDefinitions", f->mgmt, NULL, 2, 400,
                           "ThrottlingException"),
                     1);
    assert_int_equal(stats_value(f, "throttled", "organizations.ListAccounts"), 1);
    assert_int_equal(stats_value(f, "throttled", "cur.DescribeReportDefinitions"), 1);
    assert_int_equal(stats_value(f, "throttled_total", NULL), 3);

    /* A reset refills every bucket and zeroes the counts; the rules stay. */
    json_decref(ob_test_simfx_admin(f, "POST", "/_sim/reset", NULL, 200));
    assert_int_equal(stats_value(f, "throttled_total", NULL), 0);
    assert_int_equal(stats_value(f, "quota_buckets", NULL), 0);
    assert_int_equal(burst(f, OB_SVC_ORGANIZATIONS, "ListAccounts", f->mgmt, NULL, 2, 400,
                           "TooManyRequestsException"),
                     1);
}

static void test_quota_idle_buckets_expire(void **state)
{
    fx_t *f = *state;
    /* Full again 200 ms after the last call. */
    post_config(f, "{\"quota\": {\"organizations.*\": \"5/1\", \"cur.*\": \"5/1\"}}");
    ob_credsrc_t *m1 = session_of(f, "200000000001"), *m2 = session_of(f, "200000000002");
    assert_int_equal(burst(f, OB_SVC_CUR, "DescribeReportDefinitions", f->mgmt, NULL, 1, 400, "x"),
                     1);
    assert_int_equal(burst(f, OB_SVC_CUR, "DescribeReportDefinitions", m1, NULL, 1, 400, "x"), 1);
    assert_int_equal(burst(f, OB_SVC_CUR, "DescribeReportDefinitions", m2, NULL, 1, 400, "x"), 1);
    assert_int_equal(burst(f, OB_SVC_ORGANIZATIONS, "ListRoots", f->mgmt, NULL, 1, 400, "x"), 1);
    assert_int_equal(stats_value(f, "quota_buckets", NULL), 4);
    ob_test_run_for(f->loop, 300);
    /* The next call sweeps its rule's idle buckets (and another rule's). */
    assert_int_equal(burst(f, OB_SVC_CUR, "DescribeReportDefinitions", m1, NULL, 1, 400, "x"), 1);
    assert_int_equal(stats_value(f, "quota_buckets", NULL), 1);
    ob_credsrc_unref(m1);
    ob_credsrc_unref(m2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seed_merges_and_role_can_be_assumed, setup,
                                        ob_test_simfx_teardown),
        cmocka_unit_test_setup_teardown(test_seed_errors_change_nothing, setup,
                                        ob_test_simfx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_bucket_frees_the_name, setup,
                                        ob_test_simfx_teardown),
        cmocka_unit_test_setup_teardown(test_quota_config, setup, ob_test_simfx_teardown),
        cmocka_unit_test_setup_teardown(test_quota_cloudformation_per_account_and_region, setup,
                                        ob_test_simfx_teardown),
        cmocka_unit_test_setup_teardown(test_quota_throttled_call_changes_nothing, setup,
                                        ob_test_simfx_teardown),
        cmocka_unit_test_setup_teardown(test_quota_idle_buckets_expire, setup,
                                        ob_test_simfx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
