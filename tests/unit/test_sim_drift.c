/*
 * Drift in the simulator, made and found, driven in-process over HTTP by the
 * project's own AWS client and the unsigned admin API.
 *
 * Found: DetectStackDrift stays DETECTION_IN_PROGRESS ("User Initiated")
 * for the cloudformation.drift_detect latency, one at a time per stack, then
 * DescribeStackDriftDetectionStatus, DescribeStackResourceDrifts and
 * DescribeStacks' DriftInformation tell IN_SYNC from DRIFTED: a role deleted
 * (DELETED), its trust policy or inline policies changed, added or removed
 * (MODIFIED, with JSON-pointer paths and ADD / REMOVE / NOT_EQUAL), Path,
 * Description and MaxSessionDuration changed; policies compared normalised
 * (Statement object or list, one-element lists, order of actions), the
 * stack's own AWS::IAM::Policy not counted against its role, types that are
 * not checked left out; the fleet's own template (billing-engine-role.json)
 * in sync until its trust is drifted; status filters, pagination,
 * LogicalResourceIds, every validation error; the stack statuses drift
 * cannot be detected in; a stack deleted during a detection
 * (DETECTION_FAILED); a detection resuming in a restored simulator.
 *
 * Made: every kind of POST /_sim/drift and its errors, each checked through
 * the API the fleet verifies with: STS AssumeRole (a deleted role is
 * AccessDenied), S3 GetBucketPolicy, GetPublicAccessBlock,
 * GetBucketOwnershipControls, GetBucketEncryption, HeadBucket,
 * GetBucketLocation, and CUR DescribeReportDefinitions.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ob_aws.h"
#include "ob_credsrc.h"
#include "ob_http.h"
#include "ob_xml.h"
#include "sim.h"
#include "testutil.h"

#define REGION "eu-west-1"
#define ACCT   SIM_MGMT_ACCOUNT
#define MEMBER "200000000001"
#define BUCKET "drift-cur-111111111111"

typedef ob_test_simfx_t fx_t;
typedef ob_test_got_t got_t;

static void start(fx_t *f, const char *drift_latency, const char *state_file)
{
    const char *lat[] = {"cloudformation.stack_create=20ms", "cloudformation.stack_delete=20ms",
                         drift_latency, NULL};
    sim_opts_t o = {.profile = "instant",
                    .org_accounts = 2,
                    .latency = lat,
                    .state_file = state_file,
                    .random_seed = 13};
    ob_test_simfx_start(f, &o, REGION, NULL, NULL);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    start(f, "cloudformation.drift_detect=300ms", NULL);
    *state = f;
    return 0;
}

/* ---- admin calls ---- */

/* POST /_sim/drift with this body; the answer (new). */
static json_t *drift(fx_t *f, const char *body, long status)
{
    return ob_test_simfx_admin(f, "POST", "/_sim/drift", body, status);
}

static void drift_fails(fx_t *f, const char *body, long status, const char *message)
{
    json_t *j = drift(f, body, status);
    const char *e = json_string_value(json_object_get(j, "error"));
    if (!e || strcmp(e, message) != 0)
        fail_msg("drift %s: error \"%s\", wanted \"%s\"", body, e ? e : "(none)", message);
    json_decref(j);
}

/* ---- CloudFormation calls ---- */

static void call_kv(fx_t *f, got_t *g, const char *region, const char *action,
                    const char *const *kv)
{
    ob_aws_req_t req;
    char err[256];
    memset(&req, 0, sizeof(req));
    assert_int_equal(ob_query_init(&req, OB_SVC_CLOUDFORMATION, action, err, sizeof(err)), OB_OK);
    for (int i = 0; kv && kv[i]; i += 2)
        assert_int_equal(ob_query_add(&req, kv[i], kv[i + 1], err, sizeof(err)), OB_OK);
    ob_aws_target_t t = {.creds = f->mgmt, .region = region};
    ob_test_aws_call(f, &req, &t, g, 30000);
}

#define CALL(f, g, action, ...)                                                                    \
    do {                                                                                           \
        const char *const kv_[] = {__VA_ARGS__, NULL};                                             \
        call_kv(f, g, NULL, action, kv_);                                                          \
    } while (0)

static void expect_ok(got_t *g)
{
    if (g->err != OB_OK)
        fail_msg("expected success, got %ld %s: %s", g->status, g->code, g->message);
}

static void expect_error(got_t *g, const char *code, const char *message)
{
    if (g->err != OB_ERR_AWS || g->status != 400 || strcmp(g->code, code) != 0 ||
        (message && strcmp(g->message, message) != 0))
        fail_msg("expected %s \"%s\", got %d %ld %s \"%s\"", code, message ? message : "", g->err,
                 g->status, g->code, g->message);
    ob_test_got_free(g);
}

/* The result element of a Query reply (the document is kept in *doc). */
static const ob_xml_node_t *result(got_t *g, const char *action, ob_xml_doc_t **doc)
{
    const ob_xml_node_t *r = NULL;
    char err[256];
    if (ob_query_parse_result(g->body, strlen(g->body), action, doc, &r, err, sizeof(err)) != OB_OK)
        fail_msg("%s reply does not parse: %s", action, err);
    return r;
}

static const char *text(const ob_xml_node_t *n, const char *path)
{
    const char *v = ob_xml_path_text(n, path);
    return v ? v : "";
}

static char *tmpl(const char *s)
{
    char *out = strdup(s);
    for (char *p = out; *p; p++)
        if (*p == '\'')
            *p = '"';
    return out;
}

/* Two roles, the stack's own inline policy on one, and a resource type
 * drift detection does not check. */
static const char T_ROLES[] =
    "{'Parameters':{'ExternalId':{'Type':'String'}},"
    " 'Resources':{"
    "  'Role':{'Type':'AWS::IAM::Role','Properties':{'RoleName':'DriftRole','Path':'/onboard/',"
    "   'Description':'billing access','MaxSessionDuration':'7200',"
    "   'AssumeRolePolicyDocument':{'Version':'2012-10-17','Statement':{'Effect':'Allow',"
    "    'Principal':{'AWS':'arn:aws:iam::111111111111:root'},'Action':['sts:AssumeRole'],"
    "    'Condition':{'StringEquals':{'sts:ExternalId':{'Ref':'ExternalId'}}}}},"
    "   'Policies':[{'PolicyName':'read','PolicyDocument':{'Version':'2012-10-17',"
    "    'Statement':[{'Effect':'Allow','Action':['s3:ListBucket','s3:GetObject'],"
    "    'Resource':'*'}]}}]}},"
    "  'Other':{'Type':'AWS::IAM::Role','Properties':{'RoleName':'OtherRole',"
    "   'AssumeRolePolicyDocument':{'Statement':[{'Effect':'Allow',"
    "    'Principal':{'Service':'ec2.amazonaws.com'},'Action':'sts:AssumeRole'}]}}},"
    "  'Extra':{'Type':'AWS::IAM::Policy','Properties':{'PolicyName':'from-stack',"
    "   'Roles':[{'Ref':'Role'}],'PolicyDocument':{'Statement':[{'Effect':'Allow',"
    "   'Action':'s3:PutObject','Resource':'*'}]}}},"
    "  'Handle':{'Type':'AWS::CloudFormation::WaitConditionHandle'}}}";

/* The trust as the template sets it, with another ExternalId (text for a body). */
static const char TRUST_EXT_2[] =
    "{\"Version\": \"2012-10-17\", \"Statement\": [{\"Effect\": \"Allow\", \"Principal\": "
    "{\"AWS\": [\"arn:aws:iam::111111111111:root\"]}, \"Action\": \"sts:AssumeRole\", "
    "\"Condition\": {\"StringEquals\": {\"sts:ExternalId\": [\"ext-2\"]}}}]}";
static const char TRUST_EXT_1[] =
    "{\"Version\": \"2012-10-17\", \"Statement\": [{\"Effect\": \"Allow\", \"Principal\": "
    "{\"AWS\": \"arn:aws:iam::111111111111:root\"}, \"Action\": [\"sts:AssumeRole\"], "
    "\"Condition\": {\"StringEquals\": {\"sts:ExternalId\": \"ext-1\"}}}]}";
static const char READ_POLICY[] =
    "{\"Version\": \"2012-10-17\", \"Statement\": [{\"Effect\": \"Allow\", \"Action\": "
    "[\"s3:ListBucket\", \"s3:GetObject\"], \"Resource\": \"*\"}]}";

static int stack_settled(void *arg)
{
    void **a = arg;
    got_t g;
    CALL(a[0], &g, "DescribeStacks", "StackName", a[1]);
    int done = g.err == OB_OK && !strstr(g.body, "_IN_PROGRESS</StackStatus>");
    ob_test_got_free(&g);
    return done;
}

static void wait_stack(fx_t *f, const char *name)
{
    void *a[2] = {f, (void *)name};
    assert_true(ob_test_run_until(f->loop, stack_settled, a, 20000));
}

static void create_stack(fx_t *f, const char *name, const char *body_template)
{
    got_t g;
    char *body = tmpl(body_template);
    CALL(f, &g, "CreateStack", "StackName", name, "TemplateBody", body,
         "Parameters.member.1.ParameterKey", "ExternalId", "Parameters.member.1.ParameterValue",
         "ext-1", "Capabilities.member.1", "CAPABILITY_NAMED_IAM");
    free(body);
    expect_ok(&g);
    ob_test_got_free(&g);
    wait_stack(f, name);
}

/* DescribeStacks: status, DriftInformation's status and LastCheckTimestamp. */
static void stack_drift_info(fx_t *f, const char *name, char *status, char *drift, char *checked)
{
    got_t g;
    ob_xml_doc_t *doc = NULL;
    CALL(f, &g, "DescribeStacks", "StackName", name);
    expect_ok(&g);
    const ob_xml_node_t *m = ob_xml_path(result(&g, "DescribeStacks", &doc), "Stacks/member");
    snprintf(status, 64, "%s", text(m, "StackStatus"));
    snprintf(drift, 64, "%s", text(m, "DriftInformation/StackDriftStatus"));
    snprintf(checked, 64, "%s", text(m, "DriftInformation/LastCheckTimestamp"));
    ob_xml_free(doc);
    ob_test_got_free(&g);
}

/* DescribeStackDriftDetectionStatus as JSON: its members, absent ones left out. */
static json_t *detection(fx_t *f, const char *id)
{
    got_t g;
    ob_xml_doc_t *doc = NULL;
    CALL(f, &g, "DescribeStackDriftDetectionStatus", "StackDriftDetectionId", id);
    expect_ok(&g);
    const ob_xml_node_t *r = result(&g, "DescribeStackDriftDetectionStatus", &doc);
    json_t *out = json_object();
    for (const ob_xml_node_t *n = ob_xml_first_child(r); n; n = ob_xml_next(n, NULL))
        json_object_set_new(out, ob_xml_name(n), json_string(ob_xml_text(n)));
    ob_xml_free(doc);
    ob_test_got_free(&g);
    return out;
}

static const char *js(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int detection_done(void *arg)
{
    void **a = arg;
    json_t *d = detection(a[0], a[1]);
    int done = strcmp(js(d, "DetectionStatus"), "DETECTION_IN_PROGRESS") != 0;
    json_decref(d);
    return done;
}

static char *detect_start(fx_t *f, const char *name)
{
    got_t g;
    ob_xml_doc_t *doc = NULL;
    CALL(f, &g, "DetectStackDrift", "StackName", name);
    expect_ok(&g);
    char *id = strdup(text(result(&g, "DetectStackDrift", &doc), "StackDriftDetectionId"));
    ob_xml_free(doc);
    ob_test_got_free(&g);
    assert_int_equal(strlen(id), 36);
    return id;
}

/* Detect the stack's drift and wait for the outcome (new). */
static json_t *detect(fx_t *f, const char *name)
{
    char *id = detect_start(f, name);
    void *a[2] = {f, id};
    assert_true(ob_test_run_until(f->loop, detection_done, a, 10000));
    json_t *d = detection(f, id);
    free(id);
    return d;
}

/* DescribeStackResourceDrifts (kv: more parameters, may be NULL) as JSON:
 * {"drifts": [{member: text, "PropertyDifferences": [{...}]}], "NextToken"}. */
static json_t *resource_drifts(fx_t *f, const char *name, const char *const *kv)
{
    const char *all[32] = {"StackName", name};
    int n = 2;
    for (int i = 0; kv && kv[i]; i++)
        all[n++] = kv[i];
    all[n] = NULL;
    got_t g;
    ob_xml_doc_t *doc = NULL;
    call_kv(f, &g, NULL, "DescribeStackResourceDrifts", all);
    expect_ok(&g);
    const ob_xml_node_t *r = result(&g, "DescribeStackResourceDrifts", &doc);
    json_t *list = json_array();
    const ob_xml_node_t *m = ob_xml_child(ob_xml_child(r, "StackResourceDrifts"), "member");
    for (; m; m = ob_xml_next(m, "member")) {
        json_t *o = json_object();
        for (const ob_xml_node_t *c = ob_xml_first_child(m); c; c = ob_xml_next(c, NULL)) {
            if (strcmp(ob_xml_name(c), "PropertyDifferences") != 0) {
                json_object_set_new(o, ob_xml_name(c), json_string(ob_xml_text(c)));
                continue;
            }
            json_t *diffs = json_array();
            const ob_xml_node_t *p = ob_xml_child(c, "member");
            for (; p; p = ob_xml_next(p, "member"))
                json_array_append_new(diffs, json_pack("{s:s, s:s, s:s, s:s}", "PropertyPath",
                                                       text(p, "PropertyPath"), "ExpectedValue",
                                                       text(p, "ExpectedValue"), "ActualValue",
                                                       text(p, "ActualValue"), "DifferenceType",
                                                       text(p, "DifferenceType")));
            json_object_set_new(o, "PropertyDifferences", diffs);
        }
        json_array_append_new(list, o);
    }
    json_t *out = json_pack("{s:o}", "drifts", list);
    if (ob_xml_child(r, "NextToken"))
        json_object_set_new(out, "NextToken", json_string(text(r, "NextToken")));
    ob_xml_free(doc);
    ob_test_got_free(&g);
    return out;
}

/* The drift of one logical resource in the last results (borrowed from all). */
static json_t *drift_of(json_t *all, const char *logical)
{
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(all, "drifts"), i, d)
    {
        if (!strcmp(js(d, "LogicalResourceId"), logical))
            return d;
    }
    fail_msg("no drift result for %s", logical);
    return NULL;
}

/* The role's differences as "PATH TYPE EXPECTED -> ACTUAL" lines. */
static void diff_lines(json_t *d, char *out, size_t n)
{
    size_t i, len = 0;
    json_t *p;
    out[0] = '\0';
    json_array_foreach(json_object_get(d, "PropertyDifferences"), i, p)
    {
        len += (size_t)snprintf(out + len, n - len, "%s%s %s %s -> %s", len ? "\n" : "",
                                js(p, "PropertyPath"), js(p, "DifferenceType"),
                                js(p, "ExpectedValue"), js(p, "ActualValue"));
    }
}

/* Detect, and expect the Role's status and differences (want: diff_lines). */
static void expect_role_drift(fx_t *f, const char *name, const char *status, const char *want)
{
    json_t *d = detect(f, name);
    int drifted = strcmp(status, "IN_SYNC") != 0;
    assert_string_equal(js(d, "DetectionStatus"), "DETECTION_COMPLETE");
    assert_string_equal(js(d, "StackDriftStatus"), drifted ? "DRIFTED" : "IN_SYNC");
    assert_string_equal(js(d, "DriftedStackResourceCount"), drifted ? "1" : "0");
    json_decref(d);
    json_t *all = resource_drifts(f, name, NULL);
    json_t *role = drift_of(all, "Role");
    assert_string_equal(js(role, "StackResourceDriftStatus"), status);
    assert_string_equal(js(drift_of(all, "Other"), "StackResourceDriftStatus"), "IN_SYNC");
    char lines[4096];
    diff_lines(role, lines, sizeof(lines));
    if (strcmp(lines, want) != 0)
        fail_msg("differences:\n%s\nwanted:\n%s", lines, want);
    json_decref(all);
}

/* AssumeRole by the management account; the error code ("" on success). */
static void assume(fx_t *f, const char *arn, const char *extid, char code[128])
{
    ob_aws_req_t req;
    got_t g;
    memset(&req, 0, sizeof(req));
    assert_int_equal(ob_query_init(&req, OB_SVC_STS, "AssumeRole", NULL, 0), OB_OK);
    assert_int_equal(ob_query_add(&req, "RoleArn", arn, NULL, 0), OB_OK);
    assert_int_equal(ob_query_add(&req, "RoleSessionName", "verify", NULL, 0), OB_OK);
    if (extid)
        assert_int_equal(ob_query_add(&req, "ExternalId", extid, NULL, 0), OB_OK);
    ob_aws_target_t t = {.creds = f->mgmt, .region = "us-east-1"};
    ob_test_aws_call(f, &req, &t, &g, 10000);
    snprintf(code, 128, "%s", g.err == OB_OK ? "" : g.code);
    ob_test_got_free(&g);
}

/* ---- drift detection ---- */

static void test_detect_in_sync(void **state)
{
    fx_t *f = *state;
    char status[64], dstat[64], checked[64];
    create_stack(f, "drifty", T_ROLES);
    stack_drift_info(f, "drifty", status, dstat, checked);
    assert_string_equal(dstat, "NOT_CHECKED");
    assert_string_equal(checked, "");
    json_t *all = resource_drifts(f, "drifty", NULL);
    assert_int_equal(json_array_size(json_object_get(all, "drifts")), 0);
    json_decref(all);

    uint64_t t0 = ob_loop_update_time(f->loop);
    char *id = detect_start(f, "drifty");
    json_t *d = detection(f, id);
    assert_string_equal(js(d, "DetectionStatus"), "DETECTION_IN_PROGRESS");
    assert_string_equal(js(d, "DetectionStatusReason"), "User Initiated");
    assert_string_equal(js(d, "StackDriftDetectionId"), id);
    const char *prefix = "arn:aws:cloudformation:" REGION ":" ACCT ":stack/drifty/";
    assert_int_equal(strncmp(js(d, "StackId"), prefix, strlen(prefix)), 0);
    assert_null(json_object_get(d, "StackDriftStatus"));
    assert_null(json_object_get(d, "DriftedStackResourceCount"));
    assert_int_equal(strlen(js(d, "Timestamp")), 24);
    char when[64];
    snprintf(when, sizeof(when), "%s", js(d, "Timestamp"));
    json_decref(d);
    got_t g;
    CALL(f, &g, "DetectStackDrift", "StackName", "drifty");
    char msg[512];
    d = detection(f, id);
    snprintf(msg, sizeof(msg), "Drift detection is already in progress for stack [%s]",
             js(d, "StackId"));
    json_decref(d);
    expect_error(&g, "ValidationError", msg);
    /* Still NOT_CHECKED while it runs. */
    stack_drift_info(f, "drifty", status, dstat, checked);
    assert_string_equal(dstat, "NOT_CHECKED");

    void *a[2] = {f, id};
    assert_true(ob_test_run_until(f->loop, detection_done, a, 10000));
    assert_true(ob_loop_update_time(f->loop) - t0 >= 290);
    d = detection(f, id);
    assert_string_equal(js(d, "DetectionStatus"), "DETECTION_COMPLETE");
    assert_string_equal(js(d, "StackDriftStatus"), "IN_SYNC");
    assert_string_equal(js(d, "DriftedStackResourceCount"), "0");
    assert_null(json_object_get(d, "DetectionStatusReason"));
    json_decref(d);
    free(id);
    stack_drift_info(f, "drifty", status, dstat, checked);
    assert_string_equal(status, "CREATE_COMPLETE");
    assert_string_equal(dstat, "IN_SYNC");
    assert_string_equal(checked, when);

    /* Both roles checked and in sync; the policy and the handle are not checked. */
    all = resource_drifts(f, "drifty", NULL);
    json_t *list = json_object_get(all, "drifts");
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(js(json_array_get(list, 0), "LogicalResourceId"), "Other");
    json_t *role = json_array_get(list, 1);
    assert_string_equal(js(role, "LogicalResourceId"), "Role");
    assert_string_equal(js(role, "PhysicalResourceId"), "DriftRole");
    assert_string_equal(js(role, "ResourceType"), "AWS::IAM::Role");
    assert_string_equal(js(role, "StackResourceDriftStatus"), "IN_SYNC");
    assert_string_equal(js(role, "StackId"), js(json_array_get(list, 0), "StackId"));
    assert_int_equal(strlen(js(role, "Timestamp")), 24);
    assert_null(json_object_get(role, "PropertyDifferences"));
    assert_string_equal(js(role, "ExpectedProperties"), js(role, "ActualProperties"));
    /* Normalised: one Statement list, a one-action list is the action. */
    json_t *exp = json_loads(js(role, "ExpectedProperties"), 0, NULL);
    json_t *trust = json_object_get(exp, "AssumeRolePolicyDocument");
    json_t *st0 = json_array_get(json_object_get(trust, "Statement"), 0);
    assert_string_equal(js(st0, "Action"), "sts:AssumeRole");
    assert_string_equal(
        js(json_object_get(json_object_get(st0, "Condition"), "StringEquals"), "sts:ExternalId"),
        "ext-1");
    assert_string_equal(js(exp, "Path"), "/onboard/");
    assert_string_equal(js(exp, "RoleName"), "DriftRole");
    assert_int_equal(json_array_size(json_object_get(exp, "Policies")), 1);
    json_decref(exp);
    json_decref(all);
}

static void test_role_drifts(void **state)
{
    fx_t *f = *state;
    char code[128];
    const char *arn = "arn:aws:iam::" ACCT ":role/onboard/DriftRole";
    create_stack(f, "drifty", T_ROLES);
    expect_role_drift(f, "drifty", "IN_SYNC", "");
    assume(f, arn, NULL, code);
    assert_string_equal(code, "AccessDenied");

    /* The default trust drift: the ExternalId condition removed. */
    json_t *j = drift(f,
                      "{\"Account\": \"" ACCT "\", \"Kind\": \"trust_policy\", \"RoleName\": "
                      "\"DriftRole\"}",
                      200);
    assert_string_equal(js(j, "status"), "drifted");
    assert_string_equal(js(j, "kind"), "trust_policy");
    assert_null(json_object_get(
        json_array_get(json_object_get(json_object_get(j, "AssumeRolePolicyDocument"), "Statement"),
                       0),
        "Condition"));
    json_decref(j);
    assume(f, arn, NULL, code);
    assert_string_equal(code, "");
    expect_role_drift(f, "drifty", "MODIFIED",
                      "/AssumeRolePolicyDocument/Statement/0/Condition REMOVE "
                      "{\"StringEquals\":{\"sts:ExternalId\":\"ext-1\"}} -> null");
    char status[64], dstat[64], checked[64];
    stack_drift_info(f, "drifty", status, dstat, checked);
    assert_string_equal(dstat, "DRIFTED");
    json_t *all = resource_drifts(f, "drifty", NULL);
    json_t *role = drift_of(all, "Role");
    json_t *act = json_loads(js(role, "ActualProperties"), 0, NULL);
    assert_null(json_object_get(
        json_array_get(
            json_object_get(json_object_get(act, "AssumeRolePolicyDocument"), "Statement"), 0),
        "Condition"));
    json_decref(act);
    json_decref(all);

    /* Another ExternalId, written differently but equivalently otherwise. */
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"Account\": \"" ACCT "\", \"Kind\": \"trust_policy\", \"RoleName\": "
             "\"DriftRole\", \"Policy\": %s}",
             TRUST_EXT_2);
    json_decref(drift(f, body, 200));
    expect_role_drift(f, "drifty", "MODIFIED",
                      "/AssumeRolePolicyDocument/Statement/0/Condition/StringEquals/sts:ExternalId "
                      "NOT_EQUAL ext-1 -> ext-2");
    assume(f, arn, "ext-2", code);
    assert_string_equal(code, "");

    /* The template's trust, as a statement list with a one-element action
     * list (and as text): in sync again. */
    json_t *pol = json_string(TRUST_EXT_1);
    j = json_pack("{s:s, s:s, s:s, s:O}", "Account", ACCT, "Kind", "trust_policy", "RoleName",
                  "DriftRole", "Policy", pol);
    char *s = json_dumps(j, 0);
    json_decref(drift(f, s, 200));
    free(s);
    json_decref(j);
    json_decref(pol);
    expect_role_drift(f, "drifty", "IN_SYNC", "");

    /* Inline policies: the actions in another order are the same set; one
     * more action is ADD to the list; a policy added by hand is ADD (the
     * stack's own AWS::IAM::Policy is not); a removed one is REMOVE. */
    const char *reorder = "{\"Account\": \"" ACCT "\", \"Kind\": \"role_policy\", \"RoleName\": "
                          "\"DriftRole\", \"PolicyName\": \"read\", \"Policy\": {\"Version\": "
                          "\"2012-10-17\", \"Statement\": {\"Effect\": \"Allow\", \"Action\": "
                          "[\"s3:GetObject\", \"s3:ListBucket\"], \"Resource\": \"*\"}}}";
    json_decref(drift(f, reorder, 200));
    expect_role_drift(f, "drifty", "IN_SYNC", "");
    const char *more = "{\"Account\": \"" ACCT "\", \"Kind\": \"role_policy\", \"RoleName\": "
                       "\"DriftRole\", \"PolicyName\": \"read\", \"Policy\": {\"Version\": "
                       "\"2012-10-17\", \"Statement\": [{\"Effect\": \"Allow\", \"Action\": "
                       "[\"s3:GetObject\", \"s3:ListBucket\", \"s3:PutObject\"], \"Resource\": "
                       "\"*\"}]}}";
    json_decref(drift(f, more, 200));
    expect_role_drift(f, "drifty", "MODIFIED",
                      "/Policies/0/PolicyDocument/Statement/0/Action/2 ADD null -> s3:PutObject");
    snprintf(body, sizeof(body),
             "{\"Account\": \"" ACCT "\", \"Kind\": \"role_policy\", \"RoleName\": \"DriftRole\", "
             "\"PolicyName\": \"read\", \"Policy\": %s}",
             READ_POLICY);
    json_decref(drift(f, body, 200));
    const char *added = "{\"Account\": \"" ACCT "\", \"Kind\": \"role_policy\", \"RoleName\": "
                        "\"DriftRole\", \"PolicyName\": \"by-hand\", \"Policy\": {\"Statement\": "
                        "[{\"Effect\": \"Allow\", \"Action\": \"iam:*\", \"Resource\": \"*\"}]}}";
    json_decref(drift(f, added, 200));
    expect_role_drift(f, "drifty", "MODIFIED",
                      "/Policies/1 ADD null -> {\"PolicyDocument\":{\"Statement\":[{\"Action\":"
                      "\"iam:*\",\"Effect\":\"Allow\",\"Resource\":\"*\"}]},\"PolicyName\":"
                      "\"by-hand\"}");
    json_decref(drift(f,
                      "{\"Account\": \"" ACCT "\", \"Kind\": \"role_policy\", \"RoleName\": "
                      "\"DriftRole\", \"PolicyName\": \"by-hand\"}",
                      200));
    j = drift(f,
              "{\"Account\": \"" ACCT "\", \"Kind\": \"role_policy\", \"RoleName\": "
              "\"DriftRole\", \"PolicyName\": \"read\"}",
              200);
    assert_true(json_is_null(json_object_get(j, "PolicyDocument")));
    json_decref(j);
    expect_role_drift(f, "drifty", "MODIFIED",
                      "/Policies/0 REMOVE {\"PolicyDocument\":{\"Statement\":[{\"Action\":"
                      "[\"s3:GetObject\",\"s3:ListBucket\"],\"Effect\":\"Allow\",\"Resource\":"
                      "\"*\"}],\"Version\":\"2012-10-17\"},\"PolicyName\":\"read\"} -> null");
    json_decref(drift(f, body, 200));

    /* Path, Description and MaxSessionDuration, changed behind the stack's back. */
    json_t *r = sim_get_role(f->sim, ACCT, "DriftRole");
    json_object_set_new(r, "Description", json_string("changed by hand"));
    json_object_set_new(r, "MaxSessionDuration", json_integer(3600));
    json_object_set_new(r, "Path", json_string("/"));
    expect_role_drift(f, "drifty", "MODIFIED",
                      "/Description NOT_EQUAL billing access -> changed by hand\n"
                      "/MaxSessionDuration NOT_EQUAL 7200 -> 3600\n"
                      "/Path NOT_EQUAL /onboard/ -> /");
    json_object_set_new(r, "MaxSessionDuration", json_integer(7200)); /* "7200" as a number */
    json_object_set_new(r, "Path", json_string("/onboard/"));
    json_object_del(r, "Description");
    expect_role_drift(f, "drifty", "MODIFIED", "/Description REMOVE billing access -> null");
    json_object_set_new(r, "Description", json_string("billing access"));
    expect_role_drift(f, "drifty", "IN_SYNC", "");

    /* Deleted: the role is gone for STS, the stack still lists it. */
    j = drift(f,
              "{\"Account\": \"" ACCT "\", \"Kind\": \"delete_role\", \"RoleName\": "
              "\"DriftRole\"}",
              200);
    assert_string_equal(js(j, "role"), "DriftRole");
    json_decref(j);
    assume(f, arn, "ext-1", code);
    assert_string_equal(code, "AccessDenied");
    json_t *d = detect(f, "drifty");
    assert_string_equal(js(d, "StackDriftStatus"), "DRIFTED");
    assert_string_equal(js(d, "DriftedStackResourceCount"), "1");
    json_decref(d);
    all = resource_drifts(f, "drifty", NULL);
    role = drift_of(all, "Role");
    assert_string_equal(js(role, "StackResourceDriftStatus"), "DELETED");
    assert_null(json_object_get(role, "ExpectedProperties"));
    assert_null(json_object_get(role, "ActualProperties"));
    assert_null(json_object_get(role, "PropertyDifferences"));
    json_decref(all);
    stack_drift_info(f, "drifty", status, dstat, checked);
    assert_string_equal(status, "CREATE_COMPLETE");
    assert_string_equal(dstat, "DRIFTED");
    const char *sid;
    json_t *st;
    json_object_foreach(sim_section(f->sim, "stacks"), sid, st)
    {
        assert_string_equal(
            js(json_object_get(json_object_get(st, "Resources"), "Role"), "PhysicalResourceId"),
            "DriftRole");
    }
}

static void test_filters_and_paging(void **state)
{
    fx_t *f = *state;
    create_stack(f, "drifty", T_ROLES);
    json_decref(drift(f,
                      "{\"Account\": \"" ACCT "\", \"Kind\": \"delete_role\", \"RoleName\": "
                      "\"DriftRole\"}",
                      200));
    json_decref(detect(f, "drifty"));
    struct {
        const char *const kv[8];
        const char *want;
    } cases[] = {
        {{"StackResourceDriftStatusFilters.member.1", "DELETED", NULL}, "Role"},
        {{"StackResourceDriftStatusFilters.member.1", "IN_SYNC", NULL}, "Other"},
        {{"StackResourceDriftStatusFilters.member.1", "MODIFIED", NULL}, ""},
        {{"StackResourceDriftStatusFilters.member.1", "MODIFIED",
          "StackResourceDriftStatusFilters.member.2", "IN_SYNC",
          "StackResourceDriftStatusFilters.member.3", "DELETED", NULL},
         "Other Role"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *all = resource_drifts(f, "drifty", cases[i].kv);
        char got[256] = "";
        size_t k, len = 0;
        json_t *d;
        json_array_foreach(json_object_get(all, "drifts"), k, d)
        {
            len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%s", len ? " " : "",
                                    js(d, "LogicalResourceId"));
        }
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("filter %s: \"%s\", wanted \"%s\"", cases[i].kv[1], got, cases[i].want);
        json_decref(all);
    }
    /* One per page. */
    const char *one[] = {"MaxResults", "1", NULL};
    json_t *p1 = resource_drifts(f, "drifty", one);
    assert_int_equal(json_array_size(json_object_get(p1, "drifts")), 1);
    assert_string_equal(js(json_array_get(json_object_get(p1, "drifts"), 0), "LogicalResourceId"),
                        "Other");
    const char *next[] = {"MaxResults", "1", "NextToken", js(p1, "NextToken"), NULL};
    json_t *p2 = resource_drifts(f, "drifty", next);
    assert_string_equal(js(json_array_get(json_object_get(p2, "drifts"), 0), "LogicalResourceId"),
                        "Role");
    assert_null(json_object_get(p2, "NextToken"));
    json_decref(p1);
    json_decref(p2);

    /* LogicalResourceIds: only Other is checked now; Role keeps its last result. */
    got_t g;
    ob_xml_doc_t *doc = NULL;
    CALL(f, &g, "DetectStackDrift", "StackName", "drifty", "LogicalResourceIds.member.1", "Other");
    expect_ok(&g);
    char *id = strdup(text(result(&g, "DetectStackDrift", &doc), "StackDriftDetectionId"));
    ob_xml_free(doc);
    ob_test_got_free(&g);
    void *a[2] = {f, id};
    assert_true(ob_test_run_until(f->loop, detection_done, a, 10000));
    json_t *d = detection(f, id);
    assert_string_equal(js(d, "StackDriftStatus"), "IN_SYNC");
    assert_string_equal(js(d, "DriftedStackResourceCount"), "0");
    json_decref(d);
    free(id);
    json_t *all = resource_drifts(f, "drifty", NULL);
    assert_string_equal(js(drift_of(all, "Role"), "StackResourceDriftStatus"), "DELETED");
    assert_string_equal(js(drift_of(all, "Other"), "StackResourceDriftStatus"), "IN_SYNC");
    json_decref(all);
    char status[64], dstat[64], checked[64];
    stack_drift_info(f, "drifty", status, dstat, checked);
    assert_string_equal(dstat, "DRIFTED");

    /* Errors. */
    CALL(f, &g, "DetectStackDrift", "StackName", "drifty", "LogicalResourceIds.member.1", "Nope");
    expect_error(&g, "ValidationError", "Resource [Nope] does not exist in stack [drifty]");
    CALL(f, &g, "DescribeStackResourceDrifts", "StackName", "drifty",
         "StackResourceDriftStatusFilters.member.1", "GONE");
    expect_error(&g, "ValidationError",
                 "1 validation error detected: Value '[GONE]' at "
                 "'stackResourceDriftStatusFilters' failed to satisfy constraint: Member must "
                 "satisfy constraint: [Member must satisfy enum value set: [IN_SYNC, MODIFIED, "
                 "DELETED, NOT_CHECKED, UNKNOWN, UNSUPPORTED]]");
    CALL(f, &g, "DescribeStackResourceDrifts", "StackName", "drifty",
         "StackResourceDriftStatusFilters.member.1", "IN_SYNC",
         "StackResourceDriftStatusFilters.member.2", "MODIFIED",
         "StackResourceDriftStatusFilters.member.3", "DELETED",
         "StackResourceDriftStatusFilters.member.4", "NOT_CHECKED",
         "StackResourceDriftStatusFilters.member.5", "UNKNOWN");
    expect_error(&g, "ValidationError", NULL);
    CALL(f, &g, "DescribeStackResourceDrifts", "StackName", "drifty", "MaxResults", "0");
    expect_error(&g, "ValidationError",
                 "1 validation error detected: Value '0' at 'maxResults' failed to satisfy "
                 "constraint: Member must have value greater than or equal to 1");
    CALL(f, &g, "DescribeStackResourceDrifts", "StackName", "drifty", "MaxResults", "101");
    expect_error(&g, "ValidationError",
                 "1 validation error detected: Value '101' at 'maxResults' failed to satisfy "
                 "constraint: Member must have value less than or equal to 100");
    CALL(f, &g, "DescribeStackResourceDrifts", "StackName", "drifty", "NextToken", "x");
    expect_error(&g, "ValidationError", "Invalid NextToken");
    CALL(f, &g, "DescribeStackResourceDrifts", "StackName", "nope");
    expect_error(&g, "ValidationError", "Stack with id nope does not exist");
    CALL(f, &g, "DetectStackDrift", "StackName", "nope");
    expect_error(&g, "ValidationError", "Stack with id nope does not exist");
    CALL(f, &g, "DescribeStackDriftDetectionStatus", "StackDriftDetectionId",
         "00000000-0000-4000-8000-000000000000");
    expect_error(&g, "ValidationError",
                 "Drift detection with id 00000000-0000-4000-8000-000000000000 does not exist");
    CALL(f, &g, "DescribeStackDriftDetectionStatus", "StackDriftDetectionId",
         "0123456789012345678901234567890123456");
    expect_error(&g, "ValidationError",
                 "1 validation error detected: Value '0123456789012345678901234567890123456' at "
                 "'stackDriftDetectionId' failed to satisfy constraint: Member must have length "
                 "less than or equal to 36");
    const char *none[] = {NULL};
    call_kv(f, &g, NULL, "DescribeStackDriftDetectionStatus", none);
    expect_error(&g, "ValidationError",
                 "1 validation error detected: Value null at 'stackDriftDetectionId' failed to "
                 "satisfy constraint: Member must not be null");
    /* A detection belongs to its account and region. */
    id = detect_start(f, "drifty");
    const char *kv[] = {"StackDriftDetectionId", id, NULL};
    call_kv(f, &g, "us-west-2", "DescribeStackDriftDetectionStatus", kv);
    char msg[128];
    snprintf(msg, sizeof(msg), "Drift detection with id %s does not exist", id);
    expect_error(&g, "ValidationError", msg);
    free(id);
}

static void test_detect_states(void **state)
{
    fx_t f = {0};
    const char *lat[] = {"cloudformation.stack_create=600ms", "cloudformation.stack_delete=20ms",
                         NULL};
    sim_opts_t o = {.profile = "instant", .latency = lat, .random_seed = 5};
    ob_test_simfx_start(&f, &o, REGION, NULL, NULL);
    got_t g;
    ob_xml_doc_t *doc = NULL;
    char *body = tmpl(T_ROLES), msg[512];
    CALL(&f, &g, "CreateStack", "StackName", "busy", "TemplateBody", body,
         "Parameters.member.1.ParameterKey", "ExternalId", "Parameters.member.1.ParameterValue",
         "x1", "Capabilities.member.1", "CAPABILITY_NAMED_IAM");
    expect_ok(&g);
    char *sid = strdup(text(result(&g, "CreateStack", &doc), "StackId"));
    ob_xml_free(doc);
    ob_test_got_free(&g);
    CALL(&f, &g, "DetectStackDrift", "StackName", "busy");
    snprintf(msg, sizeof(msg),
             "Stack [%s] is in CREATE_IN_PROGRESS state and can not be checked "
             "for drift",
             sid);
    expect_error(&g, "ValidationError", msg);
    wait_stack(&f, "busy");
    /* A stack that rolled back (its role name is taken) and a deleted one. */
    CALL(&f, &g, "CreateStack", "StackName", "failed", "TemplateBody", body,
         "Parameters.member.1.ParameterKey", "ExternalId", "Parameters.member.1.ParameterValue",
         "x1", "Capabilities.member.1", "CAPABILITY_NAMED_IAM");
    expect_ok(&g);
    ob_test_got_free(&g);
    wait_stack(&f, "failed");
    CALL(&f, &g, "DetectStackDrift", "StackName", "failed");
    assert_non_null(strstr(g.message, "is in ROLLBACK_COMPLETE state and can not be checked"));
    expect_error(&g, "ValidationError", NULL);
    CALL(&f, &g, "DeleteStack", "StackName", "busy");
    expect_ok(&g);
    ob_test_got_free(&g);
    wait_stack(&f, sid);
    CALL(&f, &g, "DetectStackDrift", "StackName", sid);
    snprintf(msg, sizeof(msg),
             "Stack [%s] is in DELETE_COMPLETE state and can not be checked for drift", sid);
    expect_error(&g, "ValidationError", msg);
    free(body);
    free(sid);
    ob_test_simfx_stop(&f, 0);
}

static void test_detection_failed(void **state)
{
    fx_t *f = *state;
    got_t g;
    create_stack(f, "doomed", T_ROLES);
    char *id = detect_start(f, "doomed");
    CALL(f, &g, "DeleteStack", "StackName", "doomed");
    expect_ok(&g);
    ob_test_got_free(&g);
    void *a[2] = {f, id};
    assert_true(ob_test_run_until(f->loop, detection_done, a, 10000));
    json_t *d = detection(f, id);
    assert_string_equal(js(d, "DetectionStatus"), "DETECTION_FAILED");
    assert_string_equal(js(d, "StackDriftStatus"), "UNKNOWN");
    char want[512];
    snprintf(want, sizeof(want), "Stack [%s] was deleted while its drift was being detected",
             js(d, "StackId"));
    assert_string_equal(js(d, "DetectionStatusReason"), want);
    assert_null(json_object_get(d, "DriftedStackResourceCount"));
    json_decref(d);
    free(id);
}

static void test_restored_detection_resumes(void **state)
{
    char path[] = "/tmp/test_sim_drift_state_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    fx_t f = {0};
    start(&f, "cloudformation.drift_detect=500ms", path);
    create_stack(&f, "kept", T_ROLES);
    char *id = detect_start(&f, "kept");
    ob_test_simfx_stop(&f, 1);
    start(&f, "cloudformation.drift_detect=500ms", path);
    json_t *d = detection(&f, id);
    assert_string_equal(js(d, "DetectionStatus"), "DETECTION_IN_PROGRESS");
    json_decref(d);
    void *a[2] = {&f, id};
    assert_true(ob_test_run_until(f.loop, detection_done, a, 10000));
    d = detection(&f, id);
    assert_string_equal(js(d, "StackDriftStatus"), "IN_SYNC");
    json_decref(d);
    free(id);
    ob_test_simfx_stop(&f, 0);
    unlink(path);
}

static void test_fleet_template(void **state)
{
    fx_t *f = *state;
    char *body =
        ob_test_read_file(OB_FIXTURES "/../../workers/templates/billing-engine-role.json", NULL);
    assert_non_null(body);
    got_t g;
    const char *ext = "0123456789abcdef0123456789abcdef";
    CALL(f, &g, "CreateStack", "StackName", "billing-engine-access", "TemplateBody", body,
         "Parameters.member.1.ParameterKey", "BillingEnginePrincipal",
         "Parameters.member.1.ParameterValue", "arn:aws:iam::" ACCT ":root",
         "Parameters.member.2.ParameterKey", "ExternalId", "Parameters.member.2.ParameterValue",
         ext, "Parameters.member.3.ParameterKey", "CurBucket", "Parameters.member.3.ParameterValue",
         "cur-bucket-1", "Capabilities.member.1", "CAPABILITY_NAMED_IAM");
    free(body);
    expect_ok(&g);
    ob_test_got_free(&g);
    wait_stack(f, "billing-engine-access");
    json_t *d = detect(f, "billing-engine-access");
    assert_string_equal(js(d, "StackDriftStatus"), "IN_SYNC");
    json_decref(d);
    json_decref(drift(f,
                      "{\"Account\": \"" ACCT "\", \"Kind\": \"trust_policy\", \"RoleName\": "
                      "\"billing-engine-access\"}",
                      200));
    d = detect(f, "billing-engine-access");
    assert_string_equal(js(d, "StackDriftStatus"), "DRIFTED");
    json_decref(d);
    json_t *all = resource_drifts(f, "billing-engine-access", NULL);
    json_t *role = drift_of(all, "BillingEngineRole");
    assert_string_equal(js(role, "StackResourceDriftStatus"), "MODIFIED");
    char lines[1024], want[512];
    diff_lines(role, lines, sizeof(lines));
    snprintf(want, sizeof(want),
             "/AssumeRolePolicyDocument/Statement/0/Condition REMOVE "
             "{\"StringEquals\":{\"sts:ExternalId\":\"%s\"}} -> null",
             ext);
    assert_string_equal(lines, want);
    json_decref(all);
}

static void test_latency_names(void **state)
{
    fx_t *f = *state;
    assert_int_equal(sim_latency_ms(f->sim, "cloudformation.drift_detect"), 300);
    fx_t g = {0};
    sim_opts_t o = {.profile = "aws-typical", .random_seed = 3};
    ob_test_simfx_start(&g, &o, REGION, NULL, NULL);
    for (int i = 0; i < 20; i++) {
        uint64_t ms = sim_latency_ms(g.sim, "cloudformation.drift_detect");
        assert_true(ms >= 2000 && ms <= 5000);
    }
    ob_test_simfx_stop(&g, 0);
    /* instant: done by the time the next call is served. */
    fx_t h = {0};
    const char *lat[] = {"cloudformation.stack_create=20ms", NULL};
    sim_opts_t oi = {.profile = "instant", .latency = lat, .random_seed = 3};
    ob_test_simfx_start(&h, &oi, REGION, NULL, NULL);
    assert_int_equal(sim_latency_ms(h.sim, "cloudformation.drift_detect"), 0);
    create_stack(&h, "quick", T_ROLES);
    char *id = detect_start(&h, "quick");
    json_t *d = detection(&h, id);
    assert_string_equal(js(d, "DetectionStatus"), "DETECTION_COMPLETE");
    json_decref(d);
    free(id);
    ob_test_simfx_stop(&h, 0);
}

/* ---- making drift: S3, CUR, roles ---- */

static void s3(fx_t *f, const char *method, const char *bucket, const char *query, const char *body,
               got_t *g)
{
    ob_aws_req_t req;
    char err[256];
    memset(&req, 0, sizeof(req));
    assert_int_equal(ob_s3_init(&req, "S3", method, "/", query, err, sizeof(err)), OB_OK);
    if (body)
        assert_int_equal(
            ob_s3_set_body(&req, body, strlen(body), "application/json", 1, err, sizeof(err)),
            OB_OK);
    ob_aws_target_t t = {.region = "us-east-1", .creds = f->mgmt, .s3_bucket = bucket};
    ob_test_aws_call(f, &req, &t, g, 10000);
}

/* The call fails with status and code (HEAD: no body, so any code). */
static void s3_fails(fx_t *f, const char *method, const char *query, long status, const char *code)
{
    got_t g;
    s3(f, method, BUCKET, query, NULL, &g);
    if (g.err == OB_OK || g.status != status || (code && strcmp(g.code, code) != 0))
        fail_msg("%s ?%s: wanted %ld %s, got %ld %s", method, query ? query : "", status, code,
                 g.status, g.code);
    ob_test_got_free(&g);
}

static void s3_text(fx_t *f, const char *query, const char *path, char *out, size_t n)
{
    got_t g;
    ob_xml_doc_t *doc = NULL;
    s3(f, "GET", BUCKET, query, NULL, &g);
    expect_ok(&g);
    assert_int_equal(ob_xml_parse(g.body, strlen(g.body), &doc, NULL, 0), OB_OK);
    const char *v = ob_xml_path_text(ob_xml_root(doc), path);
    snprintf(out, n, "%s", v ? v : "(absent)");
    ob_xml_free(doc);
    ob_test_got_free(&g);
}

static const char CUR_POLICY[] =
    "{\"Version\": \"2012-10-17\", \"Statement\": ["
    "{\"Sid\": \"DenyInsecure\", \"Effect\": \"Deny\", \"Principal\": \"*\", \"Action\": \"s3:*\","
    " \"Resource\": [\"arn:aws:s3:::" BUCKET "\", \"arn:aws:s3:::" BUCKET "/*\"],"
    " \"Condition\": {\"Bool\": {\"aws:SecureTransport\": \"false\"}}},"
    "{\"Sid\": \"CurRead\", \"Effect\": \"Allow\", \"Principal\": {\"Service\": "
    "\"billingreports.amazonaws.com\"}, \"Action\": [\"s3:GetBucketAcl\", \"s3:GetBucketPolicy\"],"
    " \"Resource\": \"arn:aws:s3:::" BUCKET "\"},"
    "{\"Sid\": \"CurWrite\", \"Effect\": \"Allow\", \"Principal\": {\"Service\": "
    "[\"billingreports.amazonaws.com\"]}, \"Action\": \"s3:PutObject\", \"Resource\": "
    "\"arn:aws:s3:::" BUCKET "/*\"}]}";

static void test_drift_bucket(void **state)
{
    fx_t *f = *state;
    got_t g;
    char v[256];
    s3(f, "PUT", BUCKET, NULL, NULL, &g);
    expect_ok(&g);
    ob_test_got_free(&g);
    s3(f, "PUT", BUCKET, "policy", CUR_POLICY, &g);
    expect_ok(&g);
    ob_test_got_free(&g);
    const char *pre = "{\"Account\": \"" ACCT "\", \"Bucket\": \"" BUCKET "\", \"Kind\": ";
    char body[2048];

    /* The policy without its statements for billingreports. */
    snprintf(body, sizeof(body), "%s\"bucket_policy\"}", pre);
    json_t *j = drift(f, body, 200);
    assert_string_equal(js(j, "bucket"), BUCKET);
    json_decref(j);
    s3(f, "GET", BUCKET, "policy", NULL, &g);
    expect_ok(&g);
    json_t *p = json_loads(g.body, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(p, "Statement")), 1);
    assert_string_equal(js(json_array_get(json_object_get(p, "Statement"), 0), "Sid"),
                        "DenyInsecure");
    assert_null(strstr(g.body, "billingreports"));
    json_decref(p);
    ob_test_got_free(&g);
    drift_fails(f, body, 400,
                "bucket " BUCKET " has no statement for billingreports.amazonaws.com; give the "
                "Policy to set");
    /* A policy given: checked as S3 checks one. */
    snprintf(body, sizeof(body),
             "%s\"bucket_policy\", \"Policy\": {\"Statement\": [{\"Principal\":"
             " \"*\", \"Action\": \"s3:GetObject\", \"Resource\": \"*\"}]}}",
             pre);
    drift_fails(f, body, 400, "Policy: Missing required field Effect");
    snprintf(body, sizeof(body), "%s\"bucket_policy\", \"Policy\": %s}", pre, CUR_POLICY);
    json_decref(drift(f, body, 200));
    s3(f, "GET", BUCKET, "policy", NULL, &g);
    assert_non_null(strstr(g.body, "CurWrite"));
    ob_test_got_free(&g);
    /* Gone. */
    snprintf(body, sizeof(body), "%s\"delete_bucket_policy\"}", pre);
    json_decref(drift(f, body, 200));
    s3_fails(f, "GET", "policy", 404, "NoSuchBucketPolicy");
    drift_fails(f, body, 404, "bucket " BUCKET " has no policy");
    snprintf(body, sizeof(body), "%s\"bucket_policy\"}", pre);
    drift_fails(f, body, 404, "bucket " BUCKET " has no policy; give the Policy to set");

    /* Block Public Access removed. */
    s3_text(f, "publicAccessBlock", "BlockPublicPolicy", v, sizeof(v));
    assert_string_equal(v, "true");
    snprintf(body, sizeof(body), "%s\"public_access\"}", pre);
    json_decref(drift(f, body, 200));
    s3_fails(f, "GET", "publicAccessBlock", 404, "NoSuchPublicAccessBlockConfiguration");
    drift_fails(f, body, 404, "bucket " BUCKET " has no public access block");

    /* Ownership: ACLs back on, then no controls at all. */
    snprintf(body, sizeof(body), "%s\"ownership\"}", pre);
    j = drift(f, body, 200);
    assert_string_equal(js(j, "ownership"), "ObjectWriter");
    json_decref(j);
    s3_text(f, "ownershipControls", "Rule/ObjectOwnership", v, sizeof(v));
    assert_string_equal(v, "ObjectWriter");
    snprintf(body, sizeof(body), "%s\"ownership\", \"Ownership\": \"Mine\"}", pre);
    drift_fails(
        f, body, 400,
        "Ownership must be ObjectWriter, BucketOwnerPreferred, BucketOwnerEnforced or null");
    snprintf(body, sizeof(body), "%s\"ownership\", \"Ownership\": null}", pre);
    json_decref(drift(f, body, 200));
    s3_fails(f, "GET", "ownershipControls", 404, "OwnershipControlsNotFoundError");
    drift_fails(f, body, 404, "bucket " BUCKET " has no ownership controls");

    /* Encryption: SSE-KMS with the AWS managed key, or one named. */
    snprintf(body, sizeof(body), "%s\"encryption\"}", pre);
    json_decref(drift(f, body, 200));
    s3_text(f, "encryption", "Rule/ApplyServerSideEncryptionByDefault/SSEAlgorithm", v, sizeof(v));
    assert_string_equal(v, "aws:kms");
    s3_text(f, "encryption", "Rule/ApplyServerSideEncryptionByDefault/KMSMasterKeyID", v,
            sizeof(v));
    assert_string_equal(v, "(absent)");
    snprintf(body, sizeof(body),
             "%s\"encryption\", \"KMSMasterKeyID\": \"arn:aws:kms:us-east-1:" ACCT
             ":key/1234abcd-12ab-34cd-56ef-1234567890ab\"}",
             pre);
    json_decref(drift(f, body, 200));
    s3_text(f, "encryption", "Rule/ApplyServerSideEncryptionByDefault/KMSMasterKeyID", v,
            sizeof(v));
    assert_string_equal(v,
                        "arn:aws:kms:us-east-1:" ACCT ":key/1234abcd-12ab-34cd-56ef-1234567890ab");

    /* Not this account's bucket; then the bucket gone. */
    drift_fails(
        f, "{\"Account\": \"" MEMBER "\", \"Bucket\": \"" BUCKET "\", \"Kind\": \"public_access\"}",
        404, "account " MEMBER " has no bucket " BUCKET);
    drift_fails(f, "{\"Account\": \"" ACCT "\", \"Kind\": \"encryption\"}", 400,
                "encryption needs a Bucket");
    s3(f, "HEAD", BUCKET, NULL, NULL, &g);
    expect_ok(&g);
    ob_test_got_free(&g);
    snprintf(body, sizeof(body), "%s\"delete_bucket\"}", pre);
    json_decref(drift(f, body, 200));
    s3_fails(f, "HEAD", NULL, 404, NULL);
    s3_fails(f, "GET", "location", 404, "NoSuchBucket");
    drift_fails(f, body, 404, "account " ACCT " has no bucket " BUCKET);
}

/* DescribeReportDefinitions of the management account: name -> definition (new). */
static json_t *reports(fx_t *f)
{
    ob_aws_req_t req;
    got_t g;
    char err[256];
    memset(&req, 0, sizeof(req));
    json_t *params = json_object();
    assert_int_equal(
        ob_json11_init_obj(&req, OB_SVC_CUR, "DescribeReportDefinitions", params, err, sizeof(err)),
        OB_OK);
    json_decref(params);
    ob_aws_target_t t = {.creds = f->mgmt, .region = "us-east-1"};
    ob_test_aws_call(f, &req, &t, &g, 10000);
    expect_ok(&g);
    json_t *out = json_object();
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(g.json, "ReportDefinitions"), i, d)
    {
        json_object_set(out, js(d, "ReportName"), d);
    }
    ob_test_got_free(&g);
    return out;
}

static void test_drift_report(void **state)
{
    fx_t *f = *state;
    json_decref(
        ob_test_simfx_admin(f, "POST", "/_sim/seed",
                            "{\"reports\": [{\"Account\": \"" ACCT "\", \"ReportDefinition\": "
                            "{\"ReportName\": \"finance\", \"S3Bucket\": \"b-1\", \"S3Prefix\": "
                            "\"cur\", \"S3Region\": \"us-east-1\"}}]}",
                            200));
    const char *pre = "{\"Account\": \"" ACCT "\", \"ReportName\": \"finance\", \"Kind\": ";
    char body[1024];
    snprintf(body, sizeof(body),
             "%s\"change_report\", \"Changes\": {\"TimeUnit\": \"DAILY\", "
             "\"S3Prefix\": \"moved\"}}",
             pre);
    json_t *j = drift(f, body, 200);
    assert_string_equal(js(json_object_get(j, "ReportDefinition"), "TimeUnit"), "DAILY");
    json_decref(j);
    json_t *r = reports(f);
    json_t *def = json_object_get(r, "finance");
    assert_string_equal(js(def, "TimeUnit"), "DAILY");
    assert_string_equal(js(def, "S3Prefix"), "moved");
    assert_string_equal(js(def, "S3Bucket"), "b-1");
    json_decref(r);
    /* Only changes a definition could have. */
    snprintf(body, sizeof(body), "%s\"change_report\", \"Changes\": {\"TimeUnit\": \"WEEKLY\"}}",
             pre);
    drift_fails(f, body, 400,
                "Changes: the report would be invalid: Value 'WEEKLY' at "
                "'reportDefinition.timeUnit' failed to satisfy constraint: Member must satisfy "
                "enum value set: [HOURLY, DAILY, MONTHLY]");
    snprintf(body, sizeof(body), "%s\"change_report\", \"Changes\": {\"Format\": \"Parquet\"}}",
             pre);
    drift_fails(f, body, 400,
                "Changes: the report would be invalid: the console's combination rules (ATHENA, "
                "Parquet, versioning) refuse it");
    snprintf(body, sizeof(body), "%s\"change_report\", \"Changes\": {\"ReportName\": \"x\"}}", pre);
    drift_fails(f, body, 400,
                "Changes: ReportName is not a ReportDefinition member that can change");
    snprintf(body, sizeof(body), "%s\"change_report\", \"Changes\": {\"TimeUnit\": 5}}", pre);
    drift_fails(f, body, 400, "Changes: TimeUnit must be a String");
    snprintf(body, sizeof(body), "%s\"change_report\"}", pre);
    drift_fails(f, body, 400,
                "change_report needs Changes: {member: value} of the ReportDefinition");
    r = reports(f);
    assert_string_equal(js(json_object_get(r, "finance"), "TimeUnit"), "DAILY");
    json_decref(r);
    /* Deleted. */
    snprintf(body, sizeof(body), "%s\"delete_report\"}", pre);
    json_decref(drift(f, body, 200));
    r = reports(f);
    assert_int_equal(json_object_size(r), 0);
    json_decref(r);
    drift_fails(f, body, 404, "account " ACCT " has no report finance");
    drift_fails(f, "{\"Account\": \"" ACCT "\", \"Kind\": \"delete_report\"}", 400,
                "delete_report needs a ReportName");
}

static void test_drift_roles_and_errors(void **state)
{
    fx_t *f = *state;
    char code[128];
    const char *arn = "arn:aws:iam::" MEMBER ":role/OrganizationAccountAccessRole";
    const char *pre = "{\"Account\": \"" MEMBER "\", \"RoleName\": "
                      "\"OrganizationAccountAccessRole\", \"Kind\": ";
    char body[1024];
    /* This role has no ExternalId condition to drop. */
    snprintf(body, sizeof(body), "%s\"trust_policy\"}", pre);
    drift_fails(f, body, 400,
                "the trust policy of role OrganizationAccountAccessRole has no sts:ExternalId "
                "condition to remove; give the Policy to set");
    snprintf(body, sizeof(body), "%s\"trust_policy\", \"Policy\": 5}", pre);
    drift_fails(f, body, 400, "Policy must be a policy document (an object, or text holding one)");
    snprintf(body, sizeof(body), "%s\"trust_policy\", \"Policy\": \"{not json\"}", pre);
    drift_fails(f, body, 400, "Policy must be a policy document (an object, or text holding one)");
    /* A trust naming another account: the management account is refused. */
    assume(f, arn, NULL, code);
    assert_string_equal(code, "");
    snprintf(
        body, sizeof(body),
        "%s\"trust_policy\", \"Policy\": {\"Version\": \"2012-10-17\", \"Statement\": "
        "[{\"Effect\": \"Allow\", \"Principal\": {\"AWS\": \"arn:aws:iam::999999999999:root\"}, "
        "\"Action\": \"sts:AssumeRole\"}]}}",
        pre);
    json_decref(drift(f, body, 200));
    assume(f, arn, NULL, code);
    assert_string_equal(code, "AccessDenied");
    snprintf(body, sizeof(body), "%s\"role_policy\"}", pre);
    drift_fails(f, body, 400, "role_policy needs a PolicyName");
    snprintf(body, sizeof(body), "%s\"role_policy\", \"PolicyName\": \"none\"}", pre);
    drift_fails(f, body, 404, "role OrganizationAccountAccessRole has no inline policy none");
    snprintf(body, sizeof(body), "%s\"delete_role\"}", pre);
    json_decref(drift(f, body, 200));
    assume(f, arn, NULL, code);
    assert_string_equal(code, "AccessDenied");
    assert_null(sim_get_role(f->sim, MEMBER, "OrganizationAccountAccessRole"));
    drift_fails(f, body, 404, "account " MEMBER " has no role OrganizationAccountAccessRole");
    drift_fails(f, "{\"Account\": \"" MEMBER "\", \"Kind\": \"delete_role\"}", 400,
                "delete_role needs a RoleName");
    /* The call itself. */
    drift_fails(f, "{\"Kind\": \"delete_role\"}", 400,
                "drift needs an Account (12 digits) and a Kind");
    drift_fails(f, "{\"Account\": \"12\", \"Kind\": \"delete_role\"}", 400,
                "drift needs an Account (12 digits) and a Kind");
    drift_fails(f, "{\"Account\": \"" MEMBER "\", \"Kind\": \"melt\"}", 400,
                "unknown Kind \"melt\" (delete_role, trust_policy, role_policy, bucket_policy, "
                "delete_bucket_policy, public_access, ownership, encryption, delete_bucket, "
                "delete_report, change_report)");
    drift_fails(f, "not json", 400, "body must be a JSON object");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_detect_in_sync, setup, ob_test_simfx_teardown),
        cmocka_unit_test_setup_teardown(test_role_drifts, setup, ob_test_simfx_teardown),
        cmocka_unit_test_setup_teardown(test_filters_and_paging, setup, ob_test_simfx_teardown),
        cmocka_unit_test(test_detect_states),
        cmocka_unit_test_setup_teardown(test_detection_failed, setup, ob_test_simfx_teardown),
        cmocka_unit_test(test_restored_detection_resumes),
        cmocka_unit_test_setup_teardown(test_fleet_template, setup, ob_test_simfx_teardown),
        cmocka_unit_test_setup_teardown(test_latency_names, setup, ob_test_simfx_teardown),
        cmocka_unit_test_setup_teardown(test_drift_bucket, setup, ob_test_simfx_teardown),
        cmocka_unit_test_setup_teardown(test_drift_report, setup, ob_test_simfx_teardown),
        cmocka_unit_test_setup_teardown(test_drift_roles_and_errors, setup, ob_test_simfx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
