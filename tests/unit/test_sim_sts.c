/*
 * The simulator's identity layer, STS and Organizations, driven in-process by
 * the project's own AWS client: caller identities, AssumeRole with trust
 * policies (principals, Deny, the sts:ExternalId condition), field
 * validation, session duration and role chaining limits, web identity
 * (unsigned), expired and wrong credentials, skewed request times, and
 * ListAccounts pagination and permissions. Each error is checked with its
 * status, code and message. And STS's request quota: one token bucket per
 * caller account and signing Region that all of STS's signed operations
 * share (a burst over it is Throttling for the excess, counted in
 * /_sim/stats, and issues no session), refilled with time, and the
 * documented 600 per second of the "aws" table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ob_aws.h"
#include "ob_credsrc.h"
#include "ob_http.h"
#include "ob_sigv4.h"
#include "ob_xml.h"
#include "sim.h"
#include "testutil.h"

#define MEMBER1  "200000000001"
#define ORG_ROLE "arn:aws:iam::" MEMBER1 ":role/OrganizationAccountAccessRole"

static ob_test_simfx_t F;

static int setup(void **state)
{
    sim_opts_t o = {.profile = "instant", .org_accounts = 60, .random_seed = 3};
    ob_test_simfx_start(&F, &o, "us-east-1", NULL, NULL);
    return 0;
}

static int teardown(void **state)
{
    ob_test_simfx_stop(&F, 0);
    return 0;
}

typedef ob_test_got_t got_t;

/* Call; *g must be zeroed or hold an earlier answer (which is freed). */
static void call(ob_aws_req_t *req, ob_credsrc_t *creds, got_t *g)
{
    ob_test_got_free(g);
    ob_aws_target_t t = {.creds = creds};
    ob_test_aws_call(&F, req, &t, g, 10000);
}

/* Query call with up to four name/value pairs. */
static void sts(const char *action, ob_credsrc_t *creds, got_t *g, const char *k1, const char *v1,
                const char *k2, const char *v2, const char *k3, const char *v3)
{
    ob_aws_req_t req;
    memset(&req, 0, sizeof(req));
    assert_int_equal(ob_query_init(&req, OB_SVC_STS, action, NULL, 0), OB_OK);
    const char *kv[] = {k1, v1, k2, v2, k3, v3};
    for (int i = 0; i < 6; i += 2)
        if (kv[i])
            assert_int_equal(ob_query_add(&req, kv[i], kv[i + 1], NULL, 0), OB_OK);
    call(&req, creds, g);
}

static const char *field(const got_t *g, const char *action, const char *path, char *out, size_t n)
{
    ob_xml_doc_t *doc = NULL;
    const ob_xml_node_t *r = NULL;
    out[0] = '\0';
    if (ob_query_parse_result(g->body, strlen(g->body), action, &doc, &r, NULL, 0) == OB_OK) {
        const char *v = ob_xml_path_text(r, path);
        snprintf(out, n, "%s", v ? v : "");
    }
    ob_xml_free(doc);
    return out;
}

static void expect_error(const got_t *g, long status, const char *code, const char *msg_part)
{
    assert_int_equal(g->err, OB_ERR_AWS);
    assert_int_equal(g->status, status);
    assert_string_equal(g->code, code);
    if (!strstr(g->message, msg_part))
        fail_msg("message \"%s\" lacks \"%s\"", g->message, msg_part);
}

static json_t *trust(const char *principal_kind, const char *principal, const char *action,
                     const char *external_id)
{
    json_t *st = json_pack("{s:s, s:{s:s}, s:s}", "Effect", "Allow", "Principal", principal_kind,
                           principal, "Action", action);
    if (external_id)
        json_object_set_new(st, "Condition",
                            json_pack("{s:{s:s}}", "StringEquals", "sts:ExternalId", external_id));
    return json_pack("{s:s, s:[o]}", "Version", "2012-10-17", "Statement", st);
}

static void test_caller_identity(void **state)
{
    got_t g = {0};
    char v[256];
    sts("GetCallerIdentity", F.mgmt, &g, NULL, NULL, NULL, NULL, NULL, NULL);
    assert_int_equal(g.err, OB_OK);
    assert_string_equal(field(&g, "GetCallerIdentity", "Account", v, sizeof(v)), SIM_MGMT_ACCOUNT);
    assert_string_equal(field(&g, "GetCallerIdentity", "Arn", v, sizeof(v)),
                        "arn:aws:iam::111111111111:user/onboard");
    ob_test_got_free(&g);
}

static void test_assume_role_and_use_it(void **state)
{
    ob_credsrc_t *m = ob_credsrc_assume_role(F.aws, F.mgmt, ORG_ROLE, NULL, "sess-1", 0, NULL);
    got_t g = {0};
    char v[256];
    sts("GetCallerIdentity", m, &g, NULL, NULL, NULL, NULL, NULL, NULL);
    assert_int_equal(g.err, OB_OK);
    assert_string_equal(field(&g, "GetCallerIdentity", "Account", v, sizeof(v)), MEMBER1);
    assert_string_equal(field(&g, "GetCallerIdentity", "Arn", v, sizeof(v)),
                        "arn:aws:sts::" MEMBER1
                        ":assumed-role/OrganizationAccountAccessRole/sess-1");
    assert_memory_equal(field(&g, "GetCallerIdentity", "UserId", v, sizeof(v)), "AROA", 4);

    /* Role chaining (a role session assuming a role that trusts its role): one hour at most. */
    sim_put_role(F.sim, MEMBER1, "Chained", "/", trust("AWS", ORG_ROLE, "sts:AssumeRole", NULL),
                 NULL);
    sts("AssumeRole", m, &g, "RoleArn", "arn:aws:iam::" MEMBER1 ":role/Chained", "RoleSessionName",
        "chain", "DurationSeconds", "3600");
    assert_int_equal(g.err, OB_OK);
    sts("AssumeRole", m, &g, "RoleArn", "arn:aws:iam::" MEMBER1 ":role/Chained", "RoleSessionName",
        "chain", "DurationSeconds", "3601");
    expect_error(&g, 400, "ValidationError",
                 "1 hour session limit for roles assumed by role chaining");
    ob_credsrc_unref(m);
    ob_test_got_free(&g);
}

static void test_trust_policy_and_external_id(void **state)
{
    const char *arn = "arn:aws:iam::" MEMBER1 ":role/BillingEngine";
    sim_put_role(F.sim, MEMBER1, "BillingEngine", "/",
                 trust("AWS", "arn:aws:iam::111111111111:root", "sts:AssumeRole",
                       "0123456789abcdef0123456789abcdef"),
                 NULL);
    got_t g = {0};
    sts("AssumeRole", F.mgmt, &g, "RoleArn", arn, "RoleSessionName", "be", NULL, NULL);
    expect_error(&g, 403, "AccessDenied",
                 "User: arn:aws:iam::111111111111:user/onboard is not authorized to perform: "
                 "sts:AssumeRole on resource: arn:aws:iam::" MEMBER1 ":role/BillingEngine");
    sts("AssumeRole", F.mgmt, &g, "RoleArn", arn, "RoleSessionName", "be", "ExternalId",
        "ffffffffffffffffffffffffffffffff");
    expect_error(&g, 403, "AccessDenied", "not authorized");
    sts("AssumeRole", F.mgmt, &g, "RoleArn", arn, "RoleSessionName", "be", "ExternalId",
        "0123456789abcdef0123456789abcdef");
    assert_int_equal(g.err, OB_OK);
    char v[512];
    assert_memory_equal(field(&g, "AssumeRole", "Credentials/AccessKeyId", v, sizeof(v)), "ASIA",
                        4);
    assert_true(strlen(field(&g, "AssumeRole", "Credentials/SessionToken", v, sizeof(v))) > 100);

    /* A role in another account (not trusted) and a role that does not exist. */
    sim_put_role(F.sim, MEMBER1, "OnlyOther", "/",
                 trust("AWS", "333333333333", "sts:AssumeRole", NULL), NULL);
    sts("AssumeRole", F.mgmt, &g, "RoleArn", "arn:aws:iam::" MEMBER1 ":role/OnlyOther",
        "RoleSessionName", "x1", NULL, NULL);
    expect_error(&g, 403, "AccessDenied", "not authorized");
    sts("AssumeRole", F.mgmt, &g, "RoleArn", "arn:aws:iam::" MEMBER1 ":role/Nope",
        "RoleSessionName", "x1", NULL, NULL);
    expect_error(&g, 403, "AccessDenied", "not authorized");

    /* Deny wins over Allow. */
    json_t *doc = trust("AWS", "*", "sts:*", NULL);
    json_array_append_new(json_object_get(doc, "Statement"),
                          json_pack("{s:s, s:{s:s}, s:s}", "Effect", "Deny", "Principal", "AWS",
                                    "111111111111", "Action", "sts:AssumeRole"));
    sim_put_role(F.sim, MEMBER1, "Denied", "/", doc, NULL);
    sts("AssumeRole", F.mgmt, &g, "RoleArn", "arn:aws:iam::" MEMBER1 ":role/Denied",
        "RoleSessionName", "x1", NULL, NULL);
    expect_error(&g, 403, "AccessDenied", "not authorized");
    ob_test_got_free(&g);
}

static void test_field_validation(void **state)
{
    got_t g = {0};
    sts("AssumeRole", F.mgmt, &g, "RoleSessionName", "s", NULL, NULL, NULL, NULL);
    expect_error(&g, 400, "ValidationError",
                 "Value null at 'roleArn' failed to satisfy constraint: Member must not be null");
    sts("AssumeRole", F.mgmt, &g, "RoleArn", ORG_ROLE, "RoleSessionName", "a", NULL, NULL);
    expect_error(&g, 400, "ValidationError", "at 'roleSessionName' failed to satisfy constraint");
    sts("AssumeRole", F.mgmt, &g, "RoleArn", ORG_ROLE, "RoleSessionName", "ok", "DurationSeconds",
        "899");
    expect_error(&g, 400, "ValidationError", "Member must have value greater than or equal to 900");
    sts("AssumeRole", F.mgmt, &g, "RoleArn", ORG_ROLE, "RoleSessionName", "ok", "DurationSeconds",
        "43201");
    expect_error(&g, 400, "ValidationError", "less than or equal to 43200");
    sts("AssumeRole", F.mgmt, &g, "RoleArn", ORG_ROLE, "RoleSessionName", "ok", "DurationSeconds",
        "7200");
    expect_error(&g, 400, "ValidationError", "exceeds the MaxSessionDuration set for this role");
    sts("AssumeRole", F.mgmt, &g, "RoleArn", ORG_ROLE, "RoleSessionName", "ok", "ExternalId",
        "a b");
    expect_error(&g, 400, "ValidationError", "'externalId'");
    sts("NoSuchAction", F.mgmt, &g, NULL, NULL, NULL, NULL, NULL, NULL);
    expect_error(&g, 400, "InvalidAction", "Could not find operation NoSuchAction");
    ob_test_got_free(&g);
}

static void test_web_identity_unsigned(void **state)
{
    sim_put_role(F.sim, MEMBER1, "Irsa", "/",
                 trust("Federated", "arn:aws:iam::" MEMBER1 ":oidc-provider/oidc.eks.local",
                       "sts:AssumeRoleWithWebIdentity", NULL),
                 NULL);
    got_t g = {0};
    char v[256];
    sts("AssumeRoleWithWebIdentity", NULL, &g, "RoleArn", "arn:aws:iam::" MEMBER1 ":role/Irsa",
        "RoleSessionName", "pod", "WebIdentityToken", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln");
    assert_int_equal(g.err, OB_OK);
    assert_memory_equal(
        field(&g, "AssumeRoleWithWebIdentity", "Credentials/AccessKeyId", v, sizeof(v)), "ASIA", 4);
    /* The organization role does not trust a web identity. */
    sts("AssumeRoleWithWebIdentity", NULL, &g, "RoleArn", ORG_ROLE, "RoleSessionName", "pod",
        "WebIdentityToken", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln");
    expect_error(&g, 403, "AccessDenied",
                 "Not authorized to perform sts:AssumeRoleWithWebIdentity");
    /* Anything else unsigned is refused. */
    sts("GetCallerIdentity", NULL, &g, NULL, NULL, NULL, NULL, NULL, NULL);
    expect_error(&g, 403, "MissingAuthenticationToken", "missing Authentication Token");
    ob_test_got_free(&g);
}

static void test_bad_credentials(void **state)
{
    got_t g = {0};
    ob_credsrc_t *wrong = ob_credsrc_static(F.aws, SIM_MGMT_AKID, "not-the-secret", NULL, "w");
    sts("GetCallerIdentity", wrong, &g, NULL, NULL, NULL, NULL, NULL, NULL);
    expect_error(&g, 403, "SignatureDoesNotMatch",
                 "The request signature we calculated does not "
                 "match the signature you provided");
    ob_credsrc_unref(wrong);
    ob_credsrc_t *unknown = ob_credsrc_static(F.aws, "AKIAUNKNOWNKEY000000", "x", NULL, "u");
    sts("GetCallerIdentity", unknown, &g, NULL, NULL, NULL, NULL, NULL, NULL);
    expect_error(&g, 403, "InvalidClientTokenId",
                 "The security token included in the request is invalid.");
    ob_credsrc_unref(unknown);

    /* A session whose expiry has passed. */
    const char *akid, *secret, *token;
    int64_t exp;
    json_t *k =
        sim_issue_session(F.sim, MEMBER1, ORG_ROLE, "old", 900, &akid, &secret, &token, &exp);
    json_object_set_new(k, "expires_ms", json_integer(sim_now_ms() - 1000));
    ob_credsrc_t *old = ob_credsrc_static(F.aws, akid, secret, token, "expired");
    sts("GetCallerIdentity", old, &g, NULL, NULL, NULL, NULL, NULL, NULL);
    expect_error(&g, 400, "ExpiredToken", "expired");
    ob_credsrc_unref(old);
    /* The same session without its token. */
    k = sim_issue_session(F.sim, MEMBER1, ORG_ROLE, "tok", 900, &akid, &secret, &token, &exp);
    ob_credsrc_t *notoken = ob_credsrc_static(F.aws, akid, secret, NULL, "no token");
    sts("GetCallerIdentity", notoken, &g, NULL, NULL, NULL, NULL, NULL, NULL);
    expect_error(&g, 403, "InvalidClientTokenId", "invalid");
    ob_credsrc_unref(notoken);
    ob_test_got_free(&g);
}

static void test_skewed_clock(void **state)
{
    const char *body = "Action=GetCallerIdentity&Version=2011-06-15";
    char host[64];
    snprintf(host, sizeof(host), "127.0.0.1:%d", sim_port(F.sim));
    ob_hdrs_t hd = {0};
    ob_hdrs_add(&hd, "Host", host);
    ob_hdrs_add(&hd, "Content-Type", "application/x-www-form-urlencoded; charset=utf-8");
    ob_sigv4_creds_t c = {SIM_MGMT_AKID, SIM_MGMT_SECRET, NULL};
    ob_sigv4_params_t p = {.service = "sts", .region = "us-east-1", .now = time(NULL) - 20 * 60};
    assert_int_equal(ob_sigv4_sign("POST", "/", "", &hd, body, strlen(body), &c, &p, NULL, NULL, 0),
                     OB_OK);
    ob_http_req_t req = {.method = "POST",
                         .url = F.endpoint,
                         .headers = &hd,
                         .body = body,
                         .body_len = strlen(body)};
    ob_test_http_t r;
    ob_test_http_send(F.loop, F.http, &req, 5000, &r);
    assert_int_equal(r.status, 403);
    assert_non_null(strstr(r.body, "<Code>SignatureDoesNotMatch</Code>"));
    assert_non_null(strstr(r.body, "Signature expired"));
    free(r.body);
    ob_hdrs_clear(&hd);
}

static void org(const char *op, ob_credsrc_t *creds, const char *json, got_t *g)
{
    ob_aws_req_t req;
    memset(&req, 0, sizeof(req));
    assert_int_equal(ob_json11_init(&req, OB_SVC_ORGANIZATIONS, op, json, NULL, 0), OB_OK);
    call(&req, creds, g);
}

static void test_list_accounts(void **state)
{
    got_t g = {0};
    char next[64] = "", body[128];
    int total = 0, suspended = 0, pages = 0;
    do {
        if (next[0])
            snprintf(body, sizeof(body), "{\"MaxResults\":7,\"NextToken\":\"%s\"}", next);
        else
            snprintf(body, sizeof(body), "{\"MaxResults\":7}");
        org("ListAccounts", F.mgmt, body, &g);
        assert_int_equal(g.err, OB_OK);
        json_t *j = json_loads(g.body, 0, NULL);
        json_t *accts = json_object_get(j, "Accounts");
        assert_true(json_array_size(accts) <= 7);
        size_t i;
        json_t *a;
        json_array_foreach(accts, i, a)
        {
            total++;
            if (!strcmp(json_string_value(json_object_get(a, "State")), "SUSPENDED"))
                suspended++;
        }
        const char *nt = json_string_value(json_object_get(j, "NextToken"));
        snprintf(next, sizeof(next), "%s", nt ? nt : "");
        json_decref(j);
        pages++;
    } while (next[0]);
    assert_int_equal(total, 61);    /* management + 60 members */
    assert_int_equal(suspended, 1); /* member 50 */
    assert_int_equal(pages, 9);

    org("ListAccounts", F.mgmt, "{\"MaxResults\":21}", &g);
    expect_error(&g, 400, "InvalidInputException", "less than or equal to 20");
    org("ListAccounts", F.mgmt, "{\"NextToken\":\"garbage\"}", &g);
    expect_error(&g, 400, "InvalidInputException", "invalid value for nextToken");
    ob_credsrc_t *m = ob_credsrc_assume_role(F.aws, F.mgmt, ORG_ROLE, NULL, "s1", 0, NULL);
    org("ListAccounts", m, "{}", &g);
    expect_error(&g, 400, "AccessDeniedException", "You don't have permissions");
    ob_credsrc_unref(m);
    ob_test_got_free(&g);
}

/* ---- request quotas ---- */

/* A quota rule set for the test (POST /_sim/config), or all of them dropped. */
static void post_config(const char *body)
{
    json_decref(ob_test_simfx_admin(&F, "POST", "/_sim/config", body, 200));
}

static int drop_quotas(void **state)
{
    json_decref(ob_test_simfx_admin(&F, "DELETE", "/_sim/quotas", NULL, 200));
    return 0;
}

/* stats["throttled"][api] (0 when absent), or throttled_total for NULL. */
static json_int_t throttled(const char *api)
{
    json_t *st = ob_test_simfx_admin(&F, "GET", "/_sim/stats", NULL, 200);
    json_t *v = api ? json_object_get(json_object_get(st, "throttled"), api)
                    : json_object_get(st, "throttled_total");
    assert_true(!api || !v || json_is_integer(v));
    json_int_t n = json_integer_value(v);
    json_decref(st);
    return n;
}

/* n calls of action (AssumeRole of the organization role, or
 * GetCallerIdentity) by creds signed for region, sent together: how many
 * went through. Every other one must be STS's throttle: 400 Throttling
 * "Rate exceeded". */
static int sts_burst(const char *action, ob_credsrc_t *creds, const char *region, int n)
{
    got_t g[32];
    assert_true(n <= 32);
    for (int i = 0; i < n; i++) {
        ob_aws_req_t req;
        memset(&req, 0, sizeof(req));
        assert_int_equal(ob_query_init(&req, OB_SVC_STS, action, NULL, 0), OB_OK);
        if (!strcmp(action, "AssumeRole")) {
            assert_int_equal(ob_query_add(&req, "RoleArn", ORG_ROLE, NULL, 0), OB_OK);
            assert_int_equal(ob_query_add(&req, "RoleSessionName", "burst", NULL, 0), OB_OK);
        }
        ob_aws_target_t t = {.region = region, .creds = creds};
        ob_test_aws_send(&F, &req, &t, &g[i]);
    }
    ob_test_got_wait_all(&F, g, n, 10000);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        if (g[i].err == OB_OK)
            ok++;
        else if (g[i].err != OB_ERR_AWS || g[i].status != 400 ||
                 strcmp(g[i].code, "Throttling") != 0 || strcmp(g[i].message, "Rate exceeded") != 0)
            fail_msg("%s in %s: wanted success or 400 Throttling \"Rate exceeded\", got err %d "
                     "%ld %s \"%s\"",
                     action, region, g[i].err, g[i].status, g[i].code, g[i].message);
        ob_test_got_free(&g[i]);
    }
    return ok;
}

static void test_quota_burst_throttles_the_excess(void **state)
{
    json_int_t total = throttled(NULL), assumed = throttled("sts.AssumeRole");
    size_t keys = json_object_size(sim_section(F.sim, "keys"));
    json_int_t calls =
        json_integer_value(json_object_get(sim_section(F.sim, "counts"), "sts.AssumeRole"));
    /* A bucket of 5 that refills one token per 2 s: the burst is decided by
     * its size alone. */
    post_config("{\"quota\": {\"sts.*\": \"0.5/5\"}}");
    assert_int_equal(sts_burst("AssumeRole", F.mgmt, "us-east-1", 8), 5);
    /* The excess is counted per API and in the total, apart from faults. */
    assert_int_equal(throttled("sts.AssumeRole") - assumed, 3);
    assert_int_equal(throttled(NULL) - total, 3);
    /* Every call arrived (counts), only the admitted ones issued a session. */
    assert_int_equal(
        json_integer_value(json_object_get(sim_section(F.sim, "counts"), "sts.AssumeRole")) - calls,
        8);
    assert_int_equal(json_object_size(sim_section(F.sim, "keys")), keys + 5);
    /* STS's operations share the quota: GetCallerIdentity finds it spent. */
    assert_int_equal(sts_burst("GetCallerIdentity", F.mgmt, "us-east-1", 1), 0);
    assert_int_equal(throttled("sts.GetCallerIdentity") >= 1, 1);
    /* The admin API is never limited. */
    for (int i = 0; i < 10; i++)
        json_decref(ob_test_simfx_admin(&F, "GET", "/_sim/health", NULL, 200));
}

static void test_quota_per_caller_and_region(void **state)
{
    post_config("{\"quota\": {\"sts.*\": \"0.5/2\"}}");
    assert_int_equal(sts_burst("GetCallerIdentity", F.mgmt, "us-east-1", 3), 2);
    /* Another signing Region (its Regional endpoint) has a quota of its own. */
    assert_int_equal(sts_burst("GetCallerIdentity", F.mgmt, "eu-west-1", 3), 2);
    assert_int_equal(sts_burst("GetCallerIdentity", F.mgmt, "us-east-1", 1), 0);
    assert_int_equal(sts_burst("GetCallerIdentity", F.mgmt, "eu-west-1", 1), 0);
    /* Another caller account has its own, in the same Region. */
    const char *akid, *secret, *token;
    int64_t exp;
    sim_issue_session(F.sim, MEMBER1, ORG_ROLE, "quota", 900, &akid, &secret, &token, &exp);
    ob_credsrc_t *member = ob_credsrc_static(F.aws, akid, secret, token, "member");
    assert_int_equal(sts_burst("GetCallerIdentity", member, "us-east-1", 3), 2);
    /* A cross-account AssumeRole counts against the caller (spent), not
     * against the account of the role. */
    assert_int_equal(sts_burst("AssumeRole", F.mgmt, "us-east-1", 1), 0);
    ob_credsrc_unref(member);
}

static void test_quota_refills_with_time(void **state)
{
    /* 5 tokens a second, a bucket of one: one call in 200 ms. */
    post_config("{\"quota\": {\"sts.*\": \"5/1\"}}");
    assert_int_equal(sts_burst("GetCallerIdentity", F.mgmt, "us-east-1", 2), 1);
    assert_int_equal(sts_burst("GetCallerIdentity", F.mgmt, "us-east-1", 1), 0);
    ob_test_run_for(F.loop, 300);
    assert_int_equal(sts_burst("GetCallerIdentity", F.mgmt, "us-east-1", 2), 1);
    ob_test_run_for(F.loop, 300);
    assert_int_equal(sts_burst("GetCallerIdentity", F.mgmt, "us-east-1", 1), 1);
}

static void test_quota_aws_table(void **state)
{
    json_t *cfg = ob_test_simfx_admin(&F, "POST", "/_sim/config", "{\"quotas\": \"aws\"}", 200);
    json_t *rule = json_object_get(json_object_get(cfg, "quotas"), "sts.*");
    assert_int_equal(json_integer_value(json_object_get(rule, "rate")), 600);
    assert_int_equal(json_integer_value(json_object_get(rule, "burst")), 600);
    assert_string_equal(json_string_value(json_object_get(rule, "scope")), "caller-region");
    json_decref(cfg);
    /* 600 a second is far more than the fleet's share here. */
    json_int_t total = throttled(NULL);
    assert_int_equal(sts_burst("GetCallerIdentity", F.mgmt, "us-east-1", 30), 30);
    assert_int_equal(sts_burst("AssumeRole", F.mgmt, "us-east-1", 30), 30);
    assert_int_equal(throttled(NULL), total);
    /* Unsigned calls have no caller account: never limited. */
    post_config("{\"quota\": {\"sts.*\": \"0.5/1\"}}");
    got_t g = {0};
    sim_put_role(F.sim, MEMBER1, "IrsaQuota", "/",
                 trust("Federated", "arn:aws:iam::" MEMBER1 ":oidc-provider/oidc.eks.local",
                       "sts:AssumeRoleWithWebIdentity", NULL),
                 NULL);
    for (int i = 0; i < 3; i++) {
        sts("AssumeRoleWithWebIdentity", NULL, &g, "RoleArn",
            "arn:aws:iam::" MEMBER1 ":role/IrsaQuota", "RoleSessionName", "pod", "WebIdentityToken",
            "eyJhbGciOiJSUzI1NiJ9.e30.c2ln");
        assert_int_equal(g.err, OB_OK);
    }
    ob_test_got_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caller_identity),
        cmocka_unit_test(test_assume_role_and_use_it),
        cmocka_unit_test(test_trust_policy_and_external_id),
        cmocka_unit_test(test_field_validation),
        cmocka_unit_test(test_web_identity_unsigned),
        cmocka_unit_test(test_bad_credentials),
        cmocka_unit_test(test_skewed_clock),
        cmocka_unit_test(test_list_accounts),
        cmocka_unit_test_teardown(test_quota_burst_throttles_the_excess, drop_quotas),
        cmocka_unit_test_teardown(test_quota_per_caller_and_region, drop_quotas),
        cmocka_unit_test_teardown(test_quota_refills_with_time, drop_quotas),
        cmocka_unit_test_teardown(test_quota_aws_table, drop_quotas),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
