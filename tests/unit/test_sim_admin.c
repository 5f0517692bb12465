/*
 * The simulator's admin calls that repair the world, driven in-process over
 * HTTP (plain, unsigned requests to /_sim/...) next to the project's own AWS
 * client: POST /_sim/seed merges accounts, keys, roles and buckets into the
 * running state (a seeded role can then be assumed through its trust
 * policy, a replaced role has the new one, nothing else is reset, a bad
 * document changes nothing); DELETE /_sim/buckets/NAME frees a name another
 * account held so a second account can create it; the errors are JSON.
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
                "/_sim/{reset,seed,accounts,ous,drift,config,faults,latency}, DELETE "
                "/_sim/{faults,latency,buckets/NAME}");

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seed_merges_and_role_can_be_assumed, setup,
                                        ob_test_simfx_teardown),
        cmocka_unit_test_setup_teardown(test_seed_errors_change_nothing, setup,
                                        ob_test_simfx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_bucket_frees_the_name, setup,
                                        ob_test_simfx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
