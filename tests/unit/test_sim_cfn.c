/*
 * The simulator's CloudFormation module, driven in-process over HTTP by the
 * project's own AWS client (ob_aws, Query protocol, SigV4) on one loop: a
 * stack going from CREATE_IN_PROGRESS to CREATE_COMPLETE with its IAM role
 * really created and its outputs evaluated; parameters, defaults,
 * constraints and conditions; every validation rule with its AWS error code
 * and exact message; ClientRequestToken idempotency; a failing resource
 * rolling back (ROLLBACK_COMPLETE with AWS's reason), then AlreadyExists
 * until the stack is deleted; OnFailure DO_NOTHING and DELETE; updates
 * ("No updates are to be performed.", in place, rename, failure and update
 * rollback); a thousand stacks created at once, pagination and the stack
 * quota; one template shared by several stacks (each with its own values,
 * failures not remembered); a stack in progress resuming after the state is saved and
 * restored by a new simulator; and the rollback fault (a stack name that
 * fails to create once, with every OnFailure, its memory kept in a restored
 * state) and the rules it may be given on.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ob_aws.h"
#include "ob_credsrc.h"
#include "ob_http.h"
#include "sim.h"
#include "testutil.h"

#define REGION "eu-west-1"
#define ACCT   SIM_MGMT_ACCOUNT
/* One byte over the 51,200-byte template limit, plus the terminator. */
#define CFN_BIG_SIZE (51200 + 2)

typedef ob_test_simfx_t fx_t;

/* A simulator with these latency overrides and fault rules ("api=spec",
 * NULL-terminated, may be NULL) and state file (may be NULL), and a client
 * for it. */
static void fx_start_faults(fx_t *f, const char *const *latency, const char *const *faults,
                            const char *state_file)
{
    sim_opts_t o = {.port = 0,
                    .profile = "instant",
                    .latency = latency,
                    .faults = faults,
                    .state_file = state_file,
                    .random_seed = 7};
    ob_http_opts_t ho = {.max_connections = 64};
    ob_test_simfx_start(f, &o, REGION, &ho, NULL);
}

static void fx_start(fx_t *f, const char *const *latency, const char *state_file)
{
    fx_start_faults(f, latency, NULL, state_file);
}

/* Stop the client and the simulator; keep the loop unless all is set. */
static void fx_stop(fx_t *f, int all)
{
    ob_test_simfx_stop(f, !all);
}

/* ---- calling ---- */

typedef ob_test_got_t got_t;

/* Start a call; kv is "Key", "Value", ..., NULL. action must be a literal. */
static void send_kv(fx_t *f, got_t *g, const char *action, const char *const *kv)
{
    ob_aws_req_t req;
    char err[256];
    memset(&req, 0, sizeof(req));
    assert_int_equal(ob_query_init(&req, OB_SVC_CLOUDFORMATION, action, err, sizeof(err)), OB_OK);
    for (int i = 0; kv && kv[i]; i += 2)
        assert_int_equal(ob_query_add(&req, kv[i], kv[i + 1], err, sizeof(err)), OB_OK);
    ob_aws_target_t t = {.creds = f->mgmt};
    ob_test_aws_send(f, &req, &t, g);
}

static void call_kv(fx_t *f, got_t *g, const char *action, const char *const *kv)
{
    send_kv(f, g, action, kv);
    assert_true(ob_test_run_until(f->loop, ob_test_got_done, g, 30000));
}

#define CALL(f, g, action, ...)                                                                    \
    do {                                                                                           \
        const char *const kv_[] = {__VA_ARGS__, NULL};                                             \
        call_kv(f, g, action, kv_);                                                                \
    } while (0)

/* The call failed with this code and message. */
static void expect_error(got_t *g, const char *code, const char *message)
{
    if (g->err != OB_ERR_AWS || strcmp(g->code, code) != 0 || strcmp(g->message, message) != 0)
        fail_msg("expected %s \"%s\", got err %d status %ld %s \"%s\"", code, message, g->err,
                 g->status, g->code, g->message);
    assert_int_equal(g->status, 400);
    ob_test_got_free(g);
}

static void expect_ok(got_t *g)
{
    if (g->err != OB_OK)
        fail_msg("expected success, got %s: %s", g->code, g->message);
    assert_int_equal(g->status, 200);
}

/* Text at path in the result of action, copied to out ("" when absent). */
static const char *result_text(got_t *g, const char *action, const char *path, char *out, size_t n)
{
    ob_xml_doc_t *doc = NULL;
    const ob_xml_node_t *r = NULL;
    char err[256];
    out[0] = '\0';
    if (ob_query_parse_result(g->body, strlen(g->body), action, &doc, &r, err, sizeof(err)) !=
        OB_OK)
        fail_msg("reply of %s does not parse: %s", action, err);
    const char *v = ob_xml_path_text(r, path);
    snprintf(out, n, "%s", v ? v : "");
    ob_xml_free(doc);
    return out;
}

/* Single quotes to double quotes, so templates read well in C. */
static char *tmpl(const char *s)
{
    char *out = strdup(s);
    for (char *p = out; *p; p++)
        if (*p == '\'')
            *p = '"';
    return out;
}

/* ---- describing ---- */

typedef struct stack_s {
    ob_xml_doc_t *doc;
    const ob_xml_node_t *m; /* Stacks/member */
} stack_t;

static int describe(fx_t *f, const char *name, stack_t *s)
{
    got_t g;
    char err[256];
    const ob_xml_node_t *r = NULL;
    memset(s, 0, sizeof(*s));
    CALL(f, &g, "DescribeStacks", "StackName", name);
    if (g.err != OB_OK) {
        ob_test_got_free(&g);
        return -1;
    }
    if (ob_query_parse_result(g.body, strlen(g.body), "DescribeStacks", &s->doc, &r, err,
                              sizeof(err)) != OB_OK)
        fail_msg("DescribeStacks reply does not parse: %s", err);
    assert_int_equal(ob_xml_child_count(ob_xml_child(r, "Stacks"), "member"), 1);
    s->m = ob_xml_path(r, "Stacks/member");
    ob_test_got_free(&g);
    return 0;
}

static const char *field(const stack_t *s, const char *path)
{
    const char *v = ob_xml_path_text(s->m, path);
    return v ? v : "";
}

/* Value of a Key/Value style list member: list "Outputs", key field
 * "OutputKey", value field "OutputValue". NULL when absent. */
static const char *member_value(const stack_t *s, const char *list, const char *kf, const char *key,
                                const char *vf)
{
    const ob_xml_node_t *m = ob_xml_child(ob_xml_child(s->m, list), "member");
    for (; m; m = ob_xml_next(m, "member"))
        if (!strcmp(ob_xml_path_text(m, kf) ? ob_xml_path_text(m, kf) : "", key))
            return ob_xml_path_text(m, vf);
    return NULL;
}

static const char *output(const stack_t *s, const char *key)
{
    return member_value(s, "Outputs", "OutputKey", key, "OutputValue");
}

static void stack_free(stack_t *s)
{
    ob_xml_free(s->doc);
    memset(s, 0, sizeof(*s));
}

static void status_of(fx_t *f, const char *name, char *out, size_t n)
{
    stack_t s;
    if (describe(f, name, &s) != 0) {
        snprintf(out, n, "(none)");
        return;
    }
    snprintf(out, n, "%s", field(&s, "StackStatus"));
    stack_free(&s);
}

/* Poll until the stack has this status; seen (may be NULL) collects every
 * status observed, separated by spaces. */
static void wait_status(fx_t *f, const char *name, const char *want, char *seen, size_t seen_size)
{
    char st[64] = "", last[64] = "";
    uint64_t end = ob_loop_update_time(f->loop) + 20000;
    if (seen)
        seen[0] = '\0';
    for (;;) {
        status_of(f, name, st, sizeof(st));
        if (seen && strcmp(st, last) != 0) {
            size_t l = strlen(seen);
            snprintf(seen + l, seen_size - l, "%s%s", l ? " " : "", st);
            snprintf(last, sizeof(last), "%s", st);
        }
        if (!strcmp(st, want))
            return;
        if (ob_loop_update_time(f->loop) > end)
            fail_msg("stack %s: waited for %s, still %s", name, want, st);
        ob_loop_run_once(f->loop, 10);
    }
}

/* ---- templates ---- */

/* A named role with an inline policy resource, parameters, a condition and
 * outputs using most intrinsic functions. */
static const char *const T_ROLE =
    "{'AWSTemplateFormatVersion':'2010-09-09','Description':'billing role',"
    " 'Parameters':{"
    "  'ExternalId':{'Type':'String','NoEcho':true,'AllowedPattern':'[a-zA-Z0-9+=,.@:/_-]{2,64}'},"
    "  'RoleName':{'Type':'String','Default':'BillingRole'},"
    "  'Env':{'Type':'String','Default':'dev','AllowedValues':['dev','prod']}},"
    " 'Conditions':{'IsProd':{'Fn::Equals':[{'Ref':'Env'},'prod']}},"
    " 'Resources':{"
    "  'Role':{'Type':'AWS::IAM::Role','Properties':{'RoleName':{'Ref':'RoleName'},"
    "   'Path':'/onboard/',"
    "   'AssumeRolePolicyDocument':{'Version':'2012-10-17','Statement':[{'Effect':'Allow',"
    "    'Principal':{'AWS':{'Fn::Sub':'arn:${AWS::Partition}:iam::${AWS::AccountId}:root'}},"
    "    'Action':'sts:AssumeRole',"
    "    'Condition':{'StringEquals':{'sts:ExternalId':{'Ref':'ExternalId'}}}}]},"
    "   'ManagedPolicyArns':[{'Fn::If':['IsProd','arn:aws:iam::aws:policy/ReadOnlyAccess',"
    "    'arn:aws:iam::aws:policy/job-function/ViewOnlyAccess']}]}},"
    "  'Read':{'Type':'AWS::IAM::Policy','Properties':{'PolicyName':'cur-read',"
    "   'Roles':[{'Ref':'Role'}],'PolicyDocument':{'Version':'2012-10-17',"
    "   'Statement':[{'Effect':'Allow','Action':'s3:GetObject','Resource':'*'}]}}}},"
    " 'Outputs':{"
    "  'RoleArn':{'Value':{'Fn::GetAtt':['Role','Arn']},'Description':'the role'},"
    "  'RoleId':{'Value':{'Fn::GetAtt':'Role.RoleId'}},"
    "  'Where':{'Value':{'Fn::Join':['/',[{'Ref':'AWS::AccountId'},{'Ref':'AWS::Region'},"
    "   {'Ref':'AWS::StackName'}]]}},"
    "  'Sub':{'Value':{'Fn::Sub':['${Role.Arn}|${RoleName}|${!Literal}|${X}',{'X':'x'}]}},"
    "  'Pick':{'Value':{'Fn::Select':[1,{'Fn::Split':[',','a,b,c']}]}},"
    "  'ProdOnly':{'Condition':'IsProd','Value':'yes'}}}";

/* A role whose name CloudFormation generates (needs only CAPABILITY_IAM). */
static const char *const T_GENERATED =
    "{'Resources':{'Role':{'Type':'AWS::IAM::Role','Properties':{"
    " 'AssumeRolePolicyDocument':{'Version':'2012-10-17','Statement':[{'Effect':'Allow',"
    " 'Principal':{'Service':'ec2.amazonaws.com'},'Action':'sts:AssumeRole'}]}}}},"
    " 'Outputs':{'Arn':{'Value':{'Fn::GetAtt':['Role','Arn']}}}}";

/* Two roles, one of them named: Taken collides when that role exists. */
static const char *const T_TWO_ROLES =
    "{'Parameters':{'Name':{'Type':'String','Default':'Taken'}},"
    " 'Resources':{"
    "  'BillingRole':{'Type':'AWS::IAM::Role','Properties':{'RoleName':{'Ref':'Name'},"
    "   'AssumeRolePolicyDocument':{'Statement':[]}}},"
    "  'FreeRole':{'Type':'AWS::IAM::Role','Properties':{'RoleName':'FreeRole',"
    "   'AssumeRolePolicyDocument':'{\\'Statement\\':[]}'}}}}";

static void create_role_stack(fx_t *f, got_t *g, const char *name, const char *extid,
                              const char *env)
{
    char *body = tmpl(T_ROLE);
    CALL(f, g, "CreateStack", "StackName", name, "TemplateBody", body,
         "Parameters.member.1.ParameterKey", "ExternalId", "Parameters.member.1.ParameterValue",
         extid, "Parameters.member.2.ParameterKey", "Env", "Parameters.member.2.ParameterValue",
         env, "Capabilities.member.1", "CAPABILITY_NAMED_IAM", "Tags.member.1.Key", "team",
         "Tags.member.1.Value", "finops");
    free(body);
}

/* ---- tests ---- */

static void test_create_in_progress_then_complete(void **state)
{
    const char *const lat[] = {"cloudformation.stack_create=200ms", NULL};
    fx_t f = {0};
    fx_start(&f, lat, NULL);
    got_t g;
    char id[512], buf[512];
    uint64_t t0 = ob_loop_update_time(f.loop);
    create_role_stack(&f, &g, "onboard", "ext-0123456789", "dev");
    expect_ok(&g);
    result_text(&g, "CreateStack", "StackId", id, sizeof(id));
    ob_test_got_free(&g);
    const char *prefix = "arn:aws:cloudformation:" REGION ":" ACCT ":stack/onboard/";
    assert_int_equal(strncmp(id, prefix, strlen(prefix)), 0);
    assert_int_equal(strlen(id), strlen(prefix) + 36); /* a UUID */

    stack_t s;
    assert_int_equal(describe(&f, "onboard", &s), 0);
    assert_string_equal(field(&s, "StackStatus"), "CREATE_IN_PROGRESS");
    assert_string_equal(field(&s, "StackId"), id);
    stack_free(&s);
    assert_null(sim_get_role(f.sim, ACCT, "BillingRole"));

    char seen[256];
    wait_status(&f, "onboard", "CREATE_COMPLETE", seen, sizeof(seen));
    assert_string_equal(seen, "CREATE_IN_PROGRESS CREATE_COMPLETE");
    assert_true(ob_loop_update_time(f.loop) - t0 >= 190);

    /* The role is real: trust, path, policies, owned by the stack. */
    json_t *role = sim_get_role(f.sim, ACCT, "BillingRole");
    assert_non_null(role);
    assert_string_equal(json_string_value(json_object_get(role, "StackId")), id);
    assert_string_equal(json_string_value(json_object_get(role, "Arn")),
                        "arn:aws:iam::" ACCT ":role/onboard/BillingRole");
    json_t *stmt = json_array_get(
        json_object_get(json_object_get(role, "AssumeRolePolicyDocument"), "Statement"), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(stmt, "Principal"), "AWS")),
        "arn:aws:iam::" ACCT ":root");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(stmt, "Condition"), "StringEquals"), "sts:ExternalId")),
        "ext-0123456789");
    assert_non_null(json_object_get(json_object_get(role, "Policies"), "cur-read"));
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(role, "ManagedPolicyArns"), 0)),
        "arn:aws:iam::aws:policy/job-function/ViewOnlyAccess");

    /* What DescribeStacks shows, as AWS shows it. */
    assert_int_equal(describe(&f, id, &s), 0);
    assert_string_equal(field(&s, "StackName"), "onboard");
    assert_string_equal(field(&s, "Description"), "billing role");
    assert_null(ob_xml_path(s.m, "StackStatusReason"));
    assert_string_equal(output(&s, "RoleArn"), json_string_value(json_object_get(role, "Arn")));
    assert_string_equal(output(&s, "RoleId"), json_string_value(json_object_get(role, "RoleId")));
    assert_string_equal(member_value(&s, "Outputs", "OutputKey", "RoleArn", "Description"),
                        "the role");
    assert_string_equal(output(&s, "Where"), ACCT "/" REGION "/onboard");
    snprintf(buf, sizeof(buf), "%s|BillingRole|${Literal}|x",
             json_string_value(json_object_get(role, "Arn")));
    assert_string_equal(output(&s, "Sub"), buf);
    assert_string_equal(output(&s, "Pick"), "b");
    assert_null(output(&s, "ProdOnly"));
    assert_string_equal(
        member_value(&s, "Parameters", "ParameterKey", "ExternalId", "ParameterValue"), "****");
    assert_string_equal(
        member_value(&s, "Parameters", "ParameterKey", "RoleName", "ParameterValue"),
        "BillingRole");
    assert_string_equal(member_value(&s, "Parameters", "ParameterKey", "Env", "ParameterValue"),
                        "dev");
    assert_string_equal(field(&s, "Capabilities/member"), "CAPABILITY_NAMED_IAM");
    assert_string_equal(member_value(&s, "Tags", "Key", "team", "Value"), "finops");
    assert_string_equal(field(&s, "DriftInformation/StackDriftStatus"), "NOT_CHECKED");
    assert_string_equal(field(&s, "DisableRollback"), "false");
    assert_string_equal(field(&s, "EnableTerminationProtection"), "false");
    assert_int_equal(strlen(field(&s, "CreationTime")), 24);
    stack_free(&s);

    /* Events, newest first, and the template back. */
    CALL(&f, &g, "DescribeStackEvents", "StackName", "onboard");
    expect_ok(&g);
    assert_string_equal(result_text(&g, "DescribeStackEvents", "StackEvents/member/ResourceStatus",
                                    buf, sizeof(buf)),
                        "CREATE_COMPLETE");
    assert_string_equal(result_text(&g, "DescribeStackEvents",
                                    "StackEvents/member/LogicalResourceId", buf, sizeof(buf)),
                        "onboard");
    assert_non_null(strstr(g.body, "<LogicalResourceId>Read</LogicalResourceId>"));
    ob_test_got_free(&g);
    CALL(&f, &g, "GetTemplate", "StackName", "onboard");
    expect_ok(&g);
    char *body = tmpl(T_ROLE), tb[4096];
    assert_string_equal(result_text(&g, "GetTemplate", "TemplateBody", tb, sizeof(tb)), body);
    free(body);
    ob_test_got_free(&g);

    /* The state stays plain JSON. */
    char *dump = json_dumps(sim_state(f.sim), JSON_COMPACT);
    assert_non_null(dump);
    free(dump);
    fx_stop(&f, 1);
}

static void test_parameters_and_conditions(void **state)
{
    fx_t f = {0};
    fx_start(&f, NULL, NULL);
    got_t g;
    char *body = tmpl(T_ROLE);

    /* A condition switches a list item and an output. */
    create_role_stack(&f, &g, "prod", "ext-1", "prod");
    expect_ok(&g);
    ob_test_got_free(&g);
    wait_status(&f, "prod", "CREATE_COMPLETE", NULL, 0);
    stack_t s;
    assert_int_equal(describe(&f, "prod", &s), 0);
    assert_string_equal(output(&s, "ProdOnly"), "yes");
    stack_free(&s);
    assert_string_equal(
        json_string_value(json_array_get(
            json_object_get(sim_get_role(f.sim, ACCT, "BillingRole"), "ManagedPolicyArns"), 0)),
        "arn:aws:iam::aws:policy/ReadOnlyAccess");

    CALL(&f, &g, "CreateStack", "StackName", "p2", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_NAMED_IAM");
    expect_error(&g, "ValidationError", "Parameters: [ExternalId] must have values");
    CALL(&f, &g, "CreateStack", "StackName", "p2", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_NAMED_IAM", "Parameters.member.1.ParameterKey", "ExternalId",
         "Parameters.member.1.ParameterValue", "ext-1", "Parameters.member.2.ParameterKey", "Bogus",
         "Parameters.member.2.ParameterValue", "1", "Parameters.member.3.ParameterKey", "Also",
         "Parameters.member.3.ParameterValue", "2");
    expect_error(&g, "ValidationError", "Parameters: [Also, Bogus] do not exist in the template");
    CALL(&f, &g, "CreateStack", "StackName", "p2", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_NAMED_IAM", "Parameters.member.1.ParameterKey", "ExternalId",
         "Parameters.member.1.ParameterValue", "ext-1", "Parameters.member.2.ParameterKey", "Env",
         "Parameters.member.2.ParameterValue", "qa");
    expect_error(&g, "ValidationError", "Parameter 'Env' must be one of AllowedValues");
    CALL(&f, &g, "CreateStack", "StackName", "p2", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_NAMED_IAM", "Parameters.member.1.ParameterKey", "ExternalId",
         "Parameters.member.1.ParameterValue", "x");
    expect_error(&g, "ValidationError",
                 "Parameter 'ExternalId' must match pattern [a-zA-Z0-9+=,.@:/_-]{2,64}");
    free(body);

    /* Number, length and pattern constraints (\d translated), ConstraintDescription. */
    body = tmpl("{'Parameters':{'Port':{'Type':'Number','Default':'443','MinValue':1,"
                "'MaxValue':65535},'Code':{'Type':'String','Default':'A1',"
                "'AllowedPattern':'[A-Z]\\\\d','MaxLength':2},"
                "'Team':{'Type':'String','Default':'ok','MinLength':2,"
                "'ConstraintDescription':'must name a team'},"
                "'Zones':{'Type':'CommaDelimitedList','Default':'a,b'}},"
                "'Resources':{'H':{'Type':'AWS::CloudFormation::WaitConditionHandle'}},"
                "'Outputs':{'P':{'Value':{'Fn::Sub':'${Port}-${Code}'}},"
                "'Z':{'Value':{'Fn::Join':['+',{'Ref':'Zones'}]}}}}");
    const char *const bad[][3] = {
        {"Port", "http", "Parameter 'Port' must be a number"},
        {"Port", "0", "Parameter 'Port' must be a number not less than 1"},
        {"Port", "70000", "Parameter 'Port' must be a number not greater than 65535"},
        {"Code", "AB", "Parameter 'Code' must match pattern [A-Z]\\d"},
        {"Code", "A12", "Parameter 'Code' must contain at most 2 characters"},
        {"Team", "x", "Parameter 'Team' failed to satisfy constraint: must name a team"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CALL(&f, &g, "CreateStack", "StackName", "nums", "TemplateBody", body,
             "Parameters.member.1.ParameterKey", bad[i][0], "Parameters.member.1.ParameterValue",
             bad[i][1]);
        expect_error(&g, "ValidationError", bad[i][2]);
    }
    CALL(&f, &g, "CreateStack", "StackName", "nums", "TemplateBody", body,
         "Parameters.member.1.ParameterKey", "Code", "Parameters.member.1.ParameterValue", "Z9",
         "Parameters.member.2.ParameterKey", "Zones", "Parameters.member.2.ParameterValue",
         "x,y,z");
    expect_ok(&g);
    ob_test_got_free(&g);
    wait_status(&f, "nums", "CREATE_COMPLETE", NULL, 0);
    assert_int_equal(describe(&f, "nums", &s), 0);
    assert_string_equal(output(&s, "P"), "443-Z9");
    assert_string_equal(output(&s, "Z"), "x+y+z");
    stack_free(&s);
    free(body);

    /* Template errors, found at CreateStack time as AWS does. */
    const char *const broken[][2] = {
        {"{'Resources':{'R':{'Type':'AWS::CloudFormation::WaitConditionHandle'}},"
         "'Outputs':{'O':{'Value':{'Ref':'Nope'}}}}",
         "Template format error: Unresolved resource dependencies [Nope] in the Outputs block "
         "of the template"},
        {"{'Resources':{'R':{'Type':'AWS::IAM::Role','Properties':{'RoleName':{'Ref':'Nope'}}}}}",
         "Template format error: Unresolved resource dependencies [Nope] in the Resources block "
         "of the template"},
        {"{'Resources':{'R':{'Type':'AWS::Nope'},'S':{'Type':'Bad::Type::X'}}}",
         "Template format error: Unrecognized resource types: [AWS::Nope, Bad::Type::X]"},
        {"{'Resources':{}}",
         "Template format error: At least one Resources member must be defined."},
        {"{'Resources':{'R':{'Properties':{}}}}",
         "Template format error: [/Resources/R] Every Resources object must contain a Type "
         "member."},
        {"{'Resources':{'R':{'Type':'AWS::CloudFormation::WaitConditionHandle'}},'Bogus':1}",
         "Template format error: Invalid template property or properties [Bogus]"},
        {"{'Resources':{'A':{'Type':'AWS::CloudFormation::WaitConditionHandle','DependsOn':'B'},"
         "'B':{'Type':'AWS::CloudFormation::WaitConditionHandle','DependsOn':'A'}}}",
         "Circular dependency between resources: [A, B]"},
        {"{'Resources':{'R':{'Type':'AWS::CloudFormation::WaitConditionHandle'}},"
         "'Outputs':{'O':{'Value':{'Fn::GetAtt':['Nope','Arn']}}}}",
         "Template error: instance of Fn::GetAtt references undefined resource Nope"},
        {"{'Resources':{'R':{'Type':'AWS::CloudFormation::WaitConditionHandle'}},"
         "'Outputs':{'O':{'Value':{'Fn::If':['Nope','a','b']}}}}",
         "Template error: unresolved condition dependency Nope in Fn::If"},
        {"{'Resources':{'R':{'Type':'AWS::CloudFormation::WaitConditionHandle'}},"
         "'Outputs':{'O':{}}}",
         "Template format error: Every Outputs member must contain a Value object"},
        {"{'Parameters':{'P':{'Default':'x'}},"
         "'Resources':{'R':{'Type':'AWS::CloudFormation::WaitConditionHandle'}}}",
         "Template format error: Every Parameters object must contain a Type member."},
        {"{'Resources': [", "Template format error: JSON not well-formed. (line 1,  column 15)"},
        {"Resources:\n  R:\n    Type: AWS::SNS::Topic\n",
         "Template format error: awssim accepts JSON templates only (YAML is not supported); "
         "send the template as a JSON object"},
    };
    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
        body = tmpl(broken[i][0]);
        CALL(&f, &g, "CreateStack", "StackName", "broken", "TemplateBody", body,
             "Capabilities.member.1", "CAPABILITY_NAMED_IAM");
        expect_error(&g, "ValidationError", broken[i][1]);
        free(body);
    }
    CALL(&f, &g, "DescribeStacks", "StackName", "broken");
    expect_error(&g, "ValidationError", "Stack with id broken does not exist");
    fx_stop(&f, 1);
}

static void test_validation_errors(void **state)
{
    const char *const lat[] = {"cloudformation.stack_create=10s", NULL};
    fx_t f = {0};
    fx_start(&f, lat, NULL);
    got_t g;
    char *body = tmpl(T_GENERATED), *named = tmpl(T_ROLE);
    char big[CFN_BIG_SIZE];

    CALL(&f, &g, "FooBar", "StackName", "x");
    expect_error(&g, "InvalidAction", "Could not find operation FooBar for version 2010-05-15");
    CALL(&f, &g, "CreateStack", "StackName", "1bad", "TemplateBody", body);
    expect_error(&g, "ValidationError",
                 "1 validation error detected: Value '1bad' at 'stackName' failed to satisfy "
                 "constraint: Member must satisfy regular expression pattern: "
                 "[a-zA-Z][-a-zA-Z0-9]*");
    CALL(&f, &g, "CreateStack", "StackName", "has_underscore", "TemplateBody", body);
    expect_error(&g, "ValidationError",
                 "1 validation error detected: Value 'has_underscore' at 'stackName' failed to "
                 "satisfy constraint: Member must satisfy regular expression pattern: "
                 "[a-zA-Z][-a-zA-Z0-9]*");
    char longname[140], msg[1024];
    memset(longname, 'a', 129);
    longname[129] = '\0';
    CALL(&f, &g, "CreateStack", "StackName", longname, "TemplateBody", body);
    snprintf(msg, sizeof(msg),
             "1 validation error detected: Value '%s' at 'stackName' failed to satisfy "
             "constraint: Member must have length less than or equal to 128",
             longname);
    expect_error(&g, "ValidationError", msg);
    CALL(&f, &g, "CreateStack", "StackName", "tok", "TemplateBody", body, "ClientRequestToken",
         "-bad");
    expect_error(&g, "ValidationError",
                 "1 validation error detected: Value '-bad' at 'clientRequestToken' failed to "
                 "satisfy constraint: Member must satisfy regular expression pattern: "
                 "[a-zA-Z0-9][-a-zA-Z0-9]*");
    CALL(&f, &g, "CreateStack", "StackName", "nobody");
    expect_error(&g, "ValidationError", "Either Template URL or Template Body must be specified.");
    CALL(&f, &g, "CreateStack", "StackName", "url", "TemplateURL",
         "https://s3.amazonaws.com/b/t.json");
    expect_error(&g, "ValidationError",
                 "TemplateURL is not supported by awssim; send the template as TemplateBody");
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "{\"Resources\":{}}", 16);
    CALL(&f, &g, "CreateStack", "StackName", "big", "TemplateBody", big);
    expect_error(&g, "ValidationError",
                 "Templates with a size greater than 51,200 bytes must be deployed via an S3 "
                 "Bucket. Please add the template to an S3 bucket and try again.");
    CALL(&f, &g, "CreateStack", "StackName", "onfail", "TemplateBody", body, "OnFailure",
         "EXPLODE");
    expect_error(&g, "ValidationError",
                 "1 validation error detected: Value 'EXPLODE' at 'onFailure' failed to satisfy "
                 "constraint: Member must satisfy enum value set: [DO_NOTHING, ROLLBACK, DELETE]");
    CALL(&f, &g, "CreateStack", "StackName", "caps", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_EVERYTHING");
    expect_error(&g, "ValidationError",
                 "1 validation error detected: Value '[CAPABILITY_EVERYTHING]' at 'capabilities' "
                 "failed to satisfy constraint: Member must satisfy constraint: [Member must "
                 "satisfy enum value set: [CAPABILITY_AUTO_EXPAND, CAPABILITY_NAMED_IAM, "
                 "CAPABILITY_IAM]]");

    /* Capabilities: unnamed IAM needs CAPABILITY_IAM, named needs CAPABILITY_NAMED_IAM. */
    CALL(&f, &g, "CreateStack", "StackName", "caps", "TemplateBody", body);
    expect_error(&g, "InsufficientCapabilitiesException",
                 "Requires capabilities : [CAPABILITY_IAM]");
    CALL(&f, &g, "CreateStack", "StackName", "caps", "TemplateBody", named,
         "Parameters.member.1.ParameterKey", "ExternalId", "Parameters.member.1.ParameterValue",
         "ext-1");
    expect_error(&g, "InsufficientCapabilitiesException",
                 "Requires capabilities : [CAPABILITY_NAMED_IAM]");
    CALL(&f, &g, "CreateStack", "StackName", "caps", "TemplateBody", named,
         "Parameters.member.1.ParameterKey", "ExternalId", "Parameters.member.1.ParameterValue",
         "ext-1", "Capabilities.member.1", "CAPABILITY_IAM");
    expect_error(&g, "InsufficientCapabilitiesException",
                 "Requires capabilities : [CAPABILITY_NAMED_IAM]");

    /* Unknown stacks: Describe and Update fail, Delete succeeds (as in AWS). */
    CALL(&f, &g, "DescribeStacks", "StackName", "nope");
    expect_error(&g, "ValidationError", "Stack with id nope does not exist");
    CALL(&f, &g, "UpdateStack", "StackName", "nope", "TemplateBody", body);
    expect_error(&g, "ValidationError", "Stack with id nope does not exist");
    CALL(&f, &g, "DeleteStack", "StackName", "nope");
    expect_ok(&g);
    ob_test_got_free(&g);
    CALL(&f, &g, "DescribeStackEvents", "StackName", "nope");
    expect_error(&g, "ValidationError", "Stack with id nope does not exist");

    /* A stack in progress: AlreadyExists, no update; deleting it is allowed. */
    char id[512];
    CALL(&f, &g, "CreateStack", "StackName", "slow", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_IAM");
    expect_ok(&g);
    result_text(&g, "CreateStack", "StackId", id, sizeof(id));
    ob_test_got_free(&g);
    CALL(&f, &g, "CreateStack", "StackName", "slow", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_IAM");
    expect_error(&g, "AlreadyExistsException", "Stack [slow] already exists");
    CALL(&f, &g, "UpdateStack", "StackName", "slow", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_IAM");
    snprintf(msg, sizeof(msg), "Stack:%s is in CREATE_IN_PROGRESS state and can not be updated.",
             id);
    expect_error(&g, "ValidationError", msg);
    CALL(&f, &g, "DeleteStack", "StackName", "slow");
    expect_ok(&g);
    ob_test_got_free(&g);
    wait_status(&f, id, "DELETE_COMPLETE", NULL, 0);
    CALL(&f, &g, "DescribeStacks", "StackName", "slow");
    expect_error(&g, "ValidationError", "Stack with id slow does not exist");

    /* Termination protection. */
    CALL(&f, &g, "CreateStack", "StackName", "kept", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_IAM", "EnableTerminationProtection", "true");
    expect_ok(&g);
    ob_test_got_free(&g);
    CALL(&f, &g, "DeleteStack", "StackName", "kept");
    expect_error(&g, "ValidationError",
                 "Stack [kept] cannot be deleted while TerminationProtection is enabled");
    free(body);
    free(named);
    fx_stop(&f, 1);
}

static void test_client_request_token(void **state)
{
    const char *const lat[] = {"cloudformation.stack_create=300ms", NULL};
    fx_t f = {0};
    fx_start(&f, lat, NULL);
    got_t g;
    char *body = tmpl(T_GENERATED);
    char id1[512], id2[512];
    CALL(&f, &g, "CreateStack", "StackName", "tok", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_IAM", "ClientRequestToken", "create-1");
    expect_ok(&g);
    result_text(&g, "CreateStack", "StackId", id1, sizeof(id1));
    ob_test_got_free(&g);
    /* The retry gets the same stack, not AlreadyExists, while in progress and after. */
    CALL(&f, &g, "CreateStack", "StackName", "tok", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_IAM", "ClientRequestToken", "create-1");
    expect_ok(&g);
    assert_string_equal(result_text(&g, "CreateStack", "StackId", id2, sizeof(id2)), id1);
    ob_test_got_free(&g);
    wait_status(&f, "tok", "CREATE_COMPLETE", NULL, 0);
    CALL(&f, &g, "CreateStack", "StackName", "tok", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_IAM", "ClientRequestToken", "create-1");
    expect_ok(&g);
    assert_string_equal(result_text(&g, "CreateStack", "StackId", id2, sizeof(id2)), id1);
    ob_test_got_free(&g);
    /* The same token for another stack. */
    CALL(&f, &g, "CreateStack", "StackName", "other", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_IAM", "ClientRequestToken", "create-1");
    assert_int_equal(g.err, OB_ERR_AWS);
    assert_string_equal(g.code, "TokenAlreadyExistsException");
    ob_test_got_free(&g);
    CALL(&f, &g, "DescribeStacks", "StackName", "other");
    expect_error(&g, "ValidationError", "Stack with id other does not exist");

    /* Only one stack was made. */
    CALL(&f, &g, "ListStacks", "StackStatusFilter.member.1", "CREATE_COMPLETE");
    expect_ok(&g);
    ob_xml_doc_t *doc;
    const ob_xml_node_t *r;
    assert_int_equal(ob_query_parse_result(g.body, strlen(g.body), "ListStacks", &doc, &r, NULL, 0),
                     OB_OK);
    assert_int_equal(ob_xml_child_count(ob_xml_child(r, "StackSummaries"), "member"), 1);
    ob_xml_free(doc);
    ob_test_got_free(&g);

    /* Delete with a token, retried: both succeed. */
    CALL(&f, &g, "DeleteStack", "StackName", "tok", "ClientRequestToken", "delete-1");
    expect_ok(&g);
    ob_test_got_free(&g);
    CALL(&f, &g, "DeleteStack", "StackName", id1, "ClientRequestToken", "delete-1");
    expect_ok(&g);
    ob_test_got_free(&g);
    wait_status(&f, id1, "DELETE_COMPLETE", NULL, 0);
    free(body);
    fx_stop(&f, 1);
}

static void test_rollback_then_delete_then_create(void **state)
{
    const char *const lat[] = {"cloudformation.stack_create=100ms",
                               "cloudformation.stack_delete=100ms", NULL};
    fx_t f = {0};
    fx_start(&f, lat, NULL);
    got_t g;
    char *body = tmpl(T_TWO_ROLES);
    char id[512], msg[1024], seen[256];
    sim_put_role(f.sim, ACCT, "Taken", "/", json_object(), NULL);

    CALL(&f, &g, "CreateStack", "StackName", "rb", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_NAMED_IAM");
    expect_ok(&g);
    result_text(&g, "CreateStack", "StackId", id, sizeof(id));
    ob_test_got_free(&g);
    wait_status(&f, "rb", "ROLLBACK_IN_PROGRESS", seen, sizeof(seen));
    assert_string_equal(seen, "CREATE_IN_PROGRESS ROLLBACK_IN_PROGRESS");
    assert_non_null(sim_get_role(f.sim, ACCT, "FreeRole")); /* created, not yet rolled back */
    wait_status(&f, "rb", "ROLLBACK_COMPLETE", NULL, 0);
    stack_t s;
    assert_int_equal(describe(&f, "rb", &s), 0);
    assert_string_equal(field(&s, "StackStatusReason"),
                        "The following resource(s) failed to create: [BillingRole]. Rollback "
                        "requested by user.");
    stack_free(&s);
    assert_null(sim_get_role(f.sim, ACCT, "FreeRole"));
    json_t *taken = sim_get_role(f.sim, ACCT, "Taken");
    assert_non_null(taken); /* not the stack's: left alone */
    assert_null(json_string_value(json_object_get(taken, "StackId")));
    CALL(&f, &g, "DescribeStackEvents", "StackName", "rb");
    expect_ok(&g);
    assert_non_null(strstr(g.body, "<ResourceStatusReason>Taken already exists"
                                   "</ResourceStatusReason>"));
    ob_test_got_free(&g);

    /* A ROLLBACK_COMPLETE stack must be deleted before the name is reused. */
    CALL(&f, &g, "CreateStack", "StackName", "rb", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_NAMED_IAM");
    expect_error(&g, "AlreadyExistsException", "Stack [rb] already exists");
    CALL(&f, &g, "UpdateStack", "StackName", "rb", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_NAMED_IAM");
    snprintf(msg, sizeof(msg), "Stack:%s is in ROLLBACK_COMPLETE state and can not be updated.",
             id);
    expect_error(&g, "ValidationError", msg);
    CALL(&f, &g, "DeleteStack", "StackName", "rb");
    expect_ok(&g);
    ob_test_got_free(&g);
    wait_status(&f, id, "DELETE_COMPLETE", seen, sizeof(seen));
    assert_string_equal(seen, "DELETE_IN_PROGRESS DELETE_COMPLETE");
    assert_int_equal(describe(&f, id, &s), 0);
    assert_int_equal(strlen(field(&s, "DeletionTime")), 24);
    stack_free(&s);
    CALL(&f, &g, "DescribeStacks", "StackName", "rb");
    expect_error(&g, "ValidationError", "Stack with id rb does not exist");

    /* The name is free again; with a free role name the stack completes. */
    CALL(&f, &g, "CreateStack", "StackName", "rb", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_NAMED_IAM", "Parameters.member.1.ParameterKey", "Name",
         "Parameters.member.1.ParameterValue", "Mine");
    expect_ok(&g);
    char id2[512];
    result_text(&g, "CreateStack", "StackId", id2, sizeof(id2));
    assert_string_not_equal(id, id2);
    ob_test_got_free(&g);
    wait_status(&f, "rb", "CREATE_COMPLETE", NULL, 0);
    assert_non_null(sim_get_role(f.sim, ACCT, "Mine"));
    assert_non_null(sim_get_role(f.sim, ACCT, "FreeRole"));

    /* DescribeStacks without a name skips deleted stacks; ListStacks keeps them. */
    CALL(&f, &g, "DescribeStacks", "NextToken", "0");
    expect_ok(&g);
    assert_non_null(strstr(g.body, id2));
    assert_null(strstr(g.body, id));
    ob_test_got_free(&g);
    CALL(&f, &g, "ListStacks", "StackStatusFilter.member.1", "DELETE_COMPLETE");
    expect_ok(&g);
    assert_non_null(strstr(g.body, id));
    assert_null(strstr(g.body, id2));
    ob_test_got_free(&g);
    CALL(&f, &g, "ListStacks", "StackStatusFilter.member.1", "BOGUS");
    assert_string_equal(g.code, "ValidationError");
    ob_test_got_free(&g);
    CALL(&f, &g, "DeleteStack", "StackName", "rb");
    expect_ok(&g);
    ob_test_got_free(&g);
    wait_status(&f, id2, "DELETE_COMPLETE", NULL, 0);
    assert_null(sim_get_role(f.sim, ACCT, "Mine"));
    assert_null(sim_get_role(f.sim, ACCT, "FreeRole"));

    /* OnFailure=DO_NOTHING stays CREATE_FAILED with what was created. */
    CALL(&f, &g, "CreateStack", "StackName", "keep", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_NAMED_IAM", "OnFailure", "DO_NOTHING");
    expect_ok(&g);
    ob_test_got_free(&g);
    wait_status(&f, "keep", "CREATE_FAILED", NULL, 0);
    assert_int_equal(describe(&f, "keep", &s), 0);
    assert_string_equal(field(&s, "StackStatusReason"),
                        "The following resource(s) failed to create: [BillingRole]. ");
    assert_string_equal(field(&s, "DisableRollback"), "false");
    stack_free(&s);
    assert_non_null(sim_get_role(f.sim, ACCT, "FreeRole"));
    CALL(&f, &g, "DeleteStack", "StackName", "keep");
    expect_ok(&g);
    ob_test_got_free(&g);
    CALL(&f, &g, "DescribeStacks", "StackName", "keep");
    expect_ok(&g);
    ob_test_got_free(&g);
    for (int i = 0; i < 100 && sim_get_role(f.sim, ACCT, "FreeRole"); i++)
        ob_loop_run_once(f.loop, 10);
    assert_null(sim_get_role(f.sim, ACCT, "FreeRole"));

    /* OnFailure=DELETE ends deleted; DisableRollback=true is DO_NOTHING. */
    CALL(&f, &g, "CreateStack", "StackName", "gone", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_NAMED_IAM", "OnFailure", "DELETE");
    expect_ok(&g);
    result_text(&g, "CreateStack", "StackId", id, sizeof(id));
    ob_test_got_free(&g);
    wait_status(&f, id, "DELETE_COMPLETE", seen, sizeof(seen));
    assert_string_equal(seen, "CREATE_IN_PROGRESS DELETE_IN_PROGRESS DELETE_COMPLETE");
    CALL(&f, &g, "CreateStack", "StackName", "both", "TemplateBody", body, "Capabilities.member.1",
         "CAPABILITY_NAMED_IAM", "OnFailure", "DELETE", "DisableRollback", "true");
    expect_error(&g, "ValidationError",
                 "You can specify either DisableRollback or OnFailure, but not both.");
    free(body);

    /* A resource type awssim does not create fails the stack with the reason. */
    body = tmpl("{'Resources':{'Bucket':{'Type':'AWS::S3::Bucket'},"
                "'H':{'Type':'AWS::CloudFormation::WaitConditionHandle'}}}");
    CALL(&f, &g, "CreateStack", "StackName", "s3", "TemplateBody", body);
    expect_ok(&g);
    ob_test_got_free(&g);
    wait_status(&f, "s3", "ROLLBACK_COMPLETE", NULL, 0);
    assert_int_equal(describe(&f, "s3", &s), 0);
    assert_string_equal(field(&s, "StackStatusReason"),
                        "The following resource(s) failed to create: [Bucket]. Rollback "
                        "requested by user.");
    stack_free(&s);
    CALL(&f, &g, "DescribeStackEvents", "StackName", "s3");
    expect_ok(&g);
    assert_non_null(strstr(g.body, "awssim does not implement resource type AWS::S3::Bucket"));
    ob_test_got_free(&g);
    free(body);
    fx_stop(&f, 1);
}

static void update(fx_t *f, got_t *g, const char *name, const char *body, const char *role_name,
                   const char *env)
{
    CALL(f, g, "UpdateStack", "StackName", name, "TemplateBody", body,
         "Parameters.member.1.ParameterKey", "ExternalId", "Parameters.member.1.UsePreviousValue",
         "true", "Parameters.member.2.ParameterKey", "RoleName",
         "Parameters.member.2.ParameterValue", role_name, "Parameters.member.3.ParameterKey", "Env",
         "Parameters.member.3.ParameterValue", env, "Capabilities.member.1",
         "CAPABILITY_NAMED_IAM");
}

static void test_update(void **state)
{
    const char *const lat[] = {"cloudformation.stack_update=200ms", NULL};
    fx_t f = {0};
    fx_start(&f, lat, NULL);
    got_t g;
    char *body = tmpl(T_ROLE);
    char id[512], msg[1024], seen[256];
    create_role_stack(&f, &g, "up", "ext-1", "dev");
    expect_ok(&g);
    result_text(&g, "CreateStack", "StackId", id, sizeof(id));
    ob_test_got_free(&g);
    wait_status(&f, "up", "CREATE_COMPLETE", NULL, 0);
    char role_id[64];
    snprintf(
        role_id, sizeof(role_id), "%s",
        json_string_value(json_object_get(sim_get_role(f.sim, ACCT, "BillingRole"), "RoleId")));

    /* Same template and values, written three ways: nothing to do. */
    update(&f, &g, "up", body, "BillingRole", "dev");
    expect_error(&g, "ValidationError", "No updates are to be performed.");
    CALL(&f, &g, "UpdateStack", "StackName", id, "UsePreviousTemplate", "true",
         "Parameters.member.1.ParameterKey", "ExternalId", "Parameters.member.1.UsePreviousValue",
         "true", "Parameters.member.2.ParameterKey", "Env", "Parameters.member.2.UsePreviousValue",
         "true", "Capabilities.member.1", "CAPABILITY_NAMED_IAM");
    expect_error(&g, "ValidationError", "No updates are to be performed.");
    CALL(&f, &g, "UpdateStack", "StackName", "up", "UsePreviousTemplate", "true",
         "Parameters.member.1.ParameterKey", "ExternalId", "Parameters.member.1.ParameterValue",
         "ext-1", "Capabilities.member.1", "CAPABILITY_NAMED_IAM");
    expect_error(&g, "ValidationError", "No updates are to be performed.");
    CALL(&f, &g, "UpdateStack", "StackName", "up", "UsePreviousTemplate", "true",
         "Capabilities.member.1", "CAPABILITY_NAMED_IAM");
    expect_error(&g, "ValidationError", "Parameters: [ExternalId] must have values");
    CALL(&f, &g, "UpdateStack", "StackName", "up", "UsePreviousTemplate", "true",
         "Parameters.member.1.ParameterKey", "ExternalId", "Parameters.member.1.UsePreviousValue",
         "true");
    expect_error(&g, "InsufficientCapabilitiesException",
                 "Requires capabilities : [CAPABILITY_NAMED_IAM]");

    /* A real change, in place: the role keeps its id. */
    update(&f, &g, "up", body, "BillingRole", "prod");
    expect_ok(&g);
    ob_test_got_free(&g);
    update(&f, &g, "up", body, "BillingRole", "dev");
    snprintf(msg, sizeof(msg), "Stack:%s is in UPDATE_IN_PROGRESS state and can not be updated.",
             id);
    expect_error(&g, "ValidationError", msg);
    CALL(&f, &g, "DeleteStack", "StackName", "up");
    snprintf(msg, sizeof(msg), "Stack [%s] cannot be deleted while in status UPDATE_IN_PROGRESS",
             id);
    expect_error(&g, "ValidationError", msg);
    wait_status(&f, "up", "UPDATE_COMPLETE", seen, sizeof(seen));
    assert_string_equal(seen, "UPDATE_IN_PROGRESS UPDATE_COMPLETE");
    json_t *role = sim_get_role(f.sim, ACCT, "BillingRole");
    assert_string_equal(json_string_value(json_object_get(role, "RoleId")), role_id);
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(role, "ManagedPolicyArns"), 0)),
        "arn:aws:iam::aws:policy/ReadOnlyAccess");
    assert_non_null(json_object_get(json_object_get(role, "Policies"), "cur-read"));
    stack_t s;
    assert_int_equal(describe(&f, "up", &s), 0);
    assert_string_equal(output(&s, "ProdOnly"), "yes");
    assert_string_equal(
        member_value(&s, "Parameters", "ParameterKey", "ExternalId", "ParameterValue"), "****");
    assert_int_equal(strlen(field(&s, "LastUpdatedTime")), 24);
    stack_free(&s);

    /* A failing update (the new role name is taken) rolls back to the old one. */
    sim_put_role(f.sim, ACCT, "Taken", "/", json_object(), NULL);
    update(&f, &g, "up", body, "Taken", "prod");
    expect_ok(&g);
    ob_test_got_free(&g);
    wait_status(&f, "up", "UPDATE_ROLLBACK_COMPLETE", seen, sizeof(seen));
    assert_string_equal(seen, "UPDATE_IN_PROGRESS UPDATE_ROLLBACK_IN_PROGRESS "
                              "UPDATE_ROLLBACK_COMPLETE");
    assert_int_equal(describe(&f, "up", &s), 0);
    assert_string_equal(field(&s, "StackStatusReason"),
                        "The following resource(s) failed to update: [Role]. ");
    assert_string_equal(
        member_value(&s, "Parameters", "ParameterKey", "RoleName", "ParameterValue"),
        "BillingRole");
    stack_free(&s);
    role = sim_get_role(f.sim, ACCT, "BillingRole");
    assert_non_null(role);
    assert_string_equal(json_string_value(json_object_get(role, "StackId")), id);
    assert_non_null(json_object_get(json_object_get(role, "Policies"), "cur-read"));
    assert_null(json_string_value(json_object_get(sim_get_role(f.sim, ACCT, "Taken"), "StackId")));

    /* Renaming replaces the role: the new one gets the inline policy, the old one goes. */
    update(&f, &g, "up", body, "Renamed", "prod");
    expect_ok(&g);
    ob_test_got_free(&g);
    wait_status(&f, "up", "UPDATE_COMPLETE", NULL, 0);
    assert_null(sim_get_role(f.sim, ACCT, "BillingRole"));
    role = sim_get_role(f.sim, ACCT, "Renamed");
    assert_non_null(role);
    assert_non_null(json_object_get(json_object_get(role, "Policies"), "cur-read"));
    assert_int_equal(describe(&f, "up", &s), 0);
    assert_string_equal(output(&s, "RoleArn"), "arn:aws:iam::" ACCT ":role/onboard/Renamed");
    stack_free(&s);

    CALL(&f, &g, "DeleteStack", "StackName", "up");
    expect_ok(&g);
    ob_test_got_free(&g);
    wait_status(&f, id, "DELETE_COMPLETE", NULL, 0);
    assert_null(sim_get_role(f.sim, ACCT, "Renamed"));
    assert_non_null(sim_get_role(f.sim, ACCT, "Taken"));
    free(body);
    fx_stop(&f, 1);
}

typedef struct batch_s {
    got_t *g;
    int n;
} batch_t;

static int batch_done(void *arg)
{
    batch_t *b = arg;
    for (int i = 0; i < b->n; i++)
        if (!b->g[i].done)
            return 0;
    return 1;
}

/* Create stacks from..to-1 (named sN) at once; all must be accepted. */
static void create_many(fx_t *f, const char *body, int from, int to)
{
    batch_t b = {calloc((size_t)(to - from), sizeof(got_t)), to - from};
    char(*names)[16] = calloc((size_t)(to - from), sizeof(*names));
    for (int i = from; i < to; i++) {
        snprintf(names[i - from], sizeof(names[0]), "s%d", i);
        const char *const kv[] = {"StackName", names[i - from],         "TemplateBody",
                                  body,        "Capabilities.member.1", "CAPABILITY_IAM",
                                  NULL};
        send_kv(f, &b.g[i - from], "CreateStack", kv);
    }
    assert_true(ob_test_run_until(f->loop, batch_done, &b, 60000));
    for (int i = 0; i < b.n; i++) {
        expect_ok(&b.g[i]);
        ob_test_got_free(&b.g[i]);
    }
    free(b.g);
    free(names);
}

static int count_status(fx_t *f, const char *status)
{
    int n = 0;
    const char *k;
    json_t *st;
    json_object_foreach(sim_section(f->sim, "stacks"), k, st)
    {
        n += !strcmp(json_string_value(json_object_get(st, "StackStatus")), status);
    }
    return n;
}

static int all_complete(void *arg)
{
    return count_status(arg, "CREATE_IN_PROGRESS") == 0;
}

static void test_thousand_stacks_at_once(void **state)
{
    const char *const lat[] = {"cloudformation.stack_create=5s", NULL};
    fx_t f = {0};
    fx_start(&f, lat, NULL);
    char *body = tmpl(T_GENERATED);
    create_many(&f, body, 0, 1000);
    /* All accepted before any finished: one loop, nothing blocked. */
    assert_true(count_status(&f, "CREATE_IN_PROGRESS") > 900);
    assert_true(ob_test_run_until(f.loop, all_complete, &f, 30000));
    assert_int_equal(count_status(&f, "CREATE_COMPLETE"), 1000);
    int roles = 0;
    const char *k;
    json_t *r;
    json_object_foreach(sim_section(f.sim, "roles"), k, r)
    {
        roles += json_string_value(json_object_get(r, "StackId")) != NULL;
        /* Generated names: STACK-LOGICALID-RANDOM. */
        if (json_string_value(json_object_get(r, "StackId")))
            assert_true(!strncmp(k, ACCT "/s", 14) && strstr(k, "-Role-"));
    }
    assert_int_equal(roles, 1000);

    /* DescribeStacks pages through all of them, 100 at a time. */
    char token[32] = "";
    int listed = 0, pages = 0;
    do {
        got_t g;
        if (token[0])
            CALL(&f, &g, "DescribeStacks", "NextToken", token);
        else
            call_kv(&f, &g, "DescribeStacks", NULL);
        expect_ok(&g);
        ob_xml_doc_t *doc;
        const ob_xml_node_t *res;
        assert_int_equal(
            ob_query_parse_result(g.body, strlen(g.body), "DescribeStacks", &doc, &res, NULL, 0),
            OB_OK);
        const ob_xml_node_t *m = ob_xml_child(ob_xml_child(res, "Stacks"), "member");
        for (; m; m = ob_xml_next(m, "member")) {
            assert_string_equal(ob_xml_path_text(m, "StackStatus"), "CREATE_COMPLETE");
            listed++;
        }
        const char *nt = ob_xml_path_text(res, "NextToken");
        snprintf(token, sizeof(token), "%s", nt ? nt : "");
        ob_xml_free(doc);
        ob_test_got_free(&g);
        pages++;
    } while (token[0]);
    assert_int_equal(listed, 1000);
    assert_int_equal(pages, 10);

    /* The quota: 2,000 stacks per account and region. */
    create_many(&f, body, 1000, 2000);
    got_t g;
    CALL(&f, &g, "CreateStack", "StackName", "one-too-many", "TemplateBody", body,
         "Capabilities.member.1", "CAPABILITY_IAM");
    assert_int_equal(g.err, OB_ERR_AWS);
    assert_string_equal(g.code, "LimitExceededException");
    ob_test_got_free(&g);
    free(body);
    fx_stop(&f, 1);
}

/* One template text, parsed once and shared by the stacks made from it: each
 * stack still gets its own parameters, names and mapped values (a mapped list
 * becomes part of a role, which is then changed, and the next stack's copy
 * is untouched), a template that fails its checks fails every time, and a
 * new simulator starts from nothing. */
static const char *const T_SHARED =
    "{'Parameters':{'Tier':{'Type':'String','AllowedValues':['gold','free']},"
    "  'Who':{'Type':'String','AllowedPattern':'[a-z]+'}},"
    " 'Mappings':{'Tiers':{'gold':{'Arns':['arn:aws:iam::aws:policy/ReadOnlyAccess']},"
    "  'free':{'Arns':['arn:aws:iam::aws:policy/job-function/ViewOnlyAccess']}}},"
    " 'Resources':{'Role':{'Type':'AWS::IAM::Role','Properties':{"
    "  'RoleName':{'Fn::Sub':'${Who}-${Tier}'},"
    "  'ManagedPolicyArns':{'Fn::FindInMap':['Tiers',{'Ref':'Tier'},'Arns']},"
    "  'AssumeRolePolicyDocument':{'Version':'2012-10-17','Statement':[]}}}},"
    " 'Outputs':{'Name':{'Value':{'Ref':'Role'}},"
    "  'First':{'Value':{'Fn::Select':[0,{'Fn::FindInMap':['Tiers',{'Ref':'Tier'},'Arns']}]}}}}";

static void create_shared(fx_t *f, const char *body, const char *name, const char *tier,
                          const char *who, got_t *g)
{
    CALL(f, g, "CreateStack", "StackName", name, "TemplateBody", body,
         "Parameters.member.1.ParameterKey", "Tier", "Parameters.member.1.ParameterValue", tier,
         "Parameters.member.2.ParameterKey", "Who", "Parameters.member.2.ParameterValue", who,
         "Capabilities.member.1", "CAPABILITY_NAMED_IAM");
}

static void test_shared_template(void **state)
{
    fx_t f = {0};
    got_t g;
    stack_t s;
    char *body = tmpl(T_SHARED);
    for (int round = 0; round < 2; round++) {
        fx_start(&f, NULL, NULL);
        create_shared(&f, body, "a", "gold", "ann", &g);
        expect_ok(&g);
        ob_test_got_free(&g);
        wait_status(&f, "a", "CREATE_COMPLETE", NULL, 0);
        /* What the stack made is changed afterwards (as IAM calls would). */
        json_t *arns = json_object_get(sim_get_role(f.sim, ACCT, "ann-gold"), "ManagedPolicyArns");
        assert_int_equal(json_array_size(arns), 1);
        json_array_clear(arns);
        create_shared(&f, body, "b", "gold", "bob", &g);
        expect_ok(&g);
        ob_test_got_free(&g);
        create_shared(&f, body, "c", "free", "cid", &g);
        expect_ok(&g);
        ob_test_got_free(&g);
        create_shared(&f, body, "d", "gold", "D1", &g);
        expect_error(&g, "ValidationError", "Parameter 'Who' must match pattern [a-z]+");
        wait_status(&f, "b", "CREATE_COMPLETE", NULL, 0);
        wait_status(&f, "c", "CREATE_COMPLETE", NULL, 0);
        const char *const want[][3] = {
            {"b", "bob-gold", "arn:aws:iam::aws:policy/ReadOnlyAccess"},
            {"c", "cid-free", "arn:aws:iam::aws:policy/job-function/ViewOnlyAccess"},
        };
        for (int i = 0; i < 2; i++) {
            assert_int_equal(describe(&f, want[i][0], &s), 0);
            assert_string_equal(output(&s, "Name"), want[i][1]);
            assert_string_equal(output(&s, "First"), want[i][2]);
            stack_free(&s);
            arns = json_object_get(sim_get_role(f.sim, ACCT, want[i][1]), "ManagedPolicyArns");
            assert_int_equal(json_array_size(arns), 1);
            assert_string_equal(json_string_value(json_array_get(arns, 0)), want[i][2]);
        }
        /* A template that fails its checks fails each time it is sent. */
        char *broken = tmpl("{'Resources':{'R':{'Type':'AWS::Nope'}}}");
        for (int i = 0; i < 2; i++) {
            CALL(&f, &g, "CreateStack", "StackName", "broken", "TemplateBody", broken);
            expect_error(&g, "ValidationError",
                         "Template format error: Unrecognized resource types: [AWS::Nope]");
        }
        free(broken);
        fx_stop(&f, round == 1);
    }
    free(body);
}

static void test_restored_state_resumes(void **state)
{
    const char *const lat[] = {"cloudformation.stack_create=600ms", NULL};
    char path[] = "/tmp/ob-sim-cfn-state.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path); /* the simulator creates it */
    fx_t f = {0};
    fx_start(&f, lat, path);
    got_t g;
    char *body = tmpl(T_GENERATED);
    char id[512];
    CALL(&f, &g, "CreateStack", "StackName", "persisted", "TemplateBody", body,
         "Capabilities.member.1", "CAPABILITY_IAM");
    expect_ok(&g);
    result_text(&g, "CreateStack", "StackId", id, sizeof(id));
    ob_test_got_free(&g);
    fx_stop(&f, 0); /* saves the state with the stack in progress */

    fx_start(&f, NULL, path);
    char st[64];
    status_of(&f, "persisted", st, sizeof(st));
    assert_string_equal(st, "CREATE_IN_PROGRESS");
    wait_status(&f, id, "CREATE_COMPLETE", NULL, 0);
    stack_t s;
    assert_int_equal(describe(&f, "persisted", &s), 0);
    const char *arn = output(&s, "Arn");
    assert_non_null(arn);
    char acct[13], name[128];
    assert_int_equal(sim_parse_role_arn(arn, acct, name, sizeof(name)), 0);
    assert_non_null(sim_get_role(f.sim, ACCT, name));
    stack_free(&s);
    free(body);
    fx_stop(&f, 1);
    unlink(path);
}

/* ---- the rollback fault ---- */

/* The project's stack in small: a role named after the stack, and an
 * independent role the stack also makes (created before the failure is
 * known, removed by the rollback). */
static const char *const T_BILLING =
    "{'Resources':{"
    "  'BillingEngineRole':{'Type':'AWS::IAM::Role','Properties':{"
    "   'RoleName':{'Ref':'AWS::StackName'},"
    "   'AssumeRolePolicyDocument':{'Version':'2012-10-17','Statement':[{'Effect':'Allow',"
    "    'Principal':{'AWS':'arn:aws:iam::999999999999:root'},'Action':'sts:AssumeRole'}]}}},"
    "  'Side':{'Type':'AWS::IAM::Role','Properties':{"
    "   'RoleName':{'Fn::Sub':'${AWS::StackName}-side'},"
    "   'AssumeRolePolicyDocument':{'Statement':[]}}}},"
    " 'Outputs':{'RoleArn':{'Value':{'Fn::GetAtt':['BillingEngineRole','Arn']}}}}";

#define FAULT_WHY                                                                                  \
    "Internal Failure (injected by awssim: fault cloudformation.stack_create=rollback)"
#define BILLING_FAILED "The following resource(s) failed to create: [BillingEngineRole]. "

/* CreateStack of T_BILLING; on_failure NULL: the default (ROLLBACK). The StackId goes to id. */
static void create_billing(fx_t *f, const char *name, const char *on_failure, char *id, size_t n)
{
    got_t g;
    char *body = tmpl(T_BILLING);
    if (on_failure)
        CALL(f, &g, "CreateStack", "StackName", name, "TemplateBody", body, "Capabilities.member.1",
             "CAPABILITY_NAMED_IAM", "OnFailure", on_failure);
    else
        CALL(f, &g, "CreateStack", "StackName", name, "TemplateBody", body, "Capabilities.member.1",
             "CAPABILITY_NAMED_IAM");
    free(body);
    expect_ok(&g);
    result_text(&g, "CreateStack", "StackId", id, n);
    ob_test_got_free(&g);
}

static void expect_reason(fx_t *f, const char *name, const char *status, const char *reason)
{
    stack_t s;
    assert_int_equal(describe(f, name, &s), 0);
    assert_string_equal(field(&s, "StackStatus"), status);
    assert_string_equal(field(&s, "StackStatusReason"), reason);
    stack_free(&s);
}

static json_t *failed_names(fx_t *f)
{
    return json_object_get(json_object_get(sim_section(f->sim, "stack_faults"), ACCT), REGION);
}

/* An admin call; the reply's JSON (NULL when none) is returned, the status in *status. */
static json_t *admin(fx_t *f, const char *method, const char *path, const char *body, long *status)
{
    char url[256];
    ob_test_http_t a;
    snprintf(url, sizeof(url), "%s%s", f->endpoint, path);
    ob_test_http(f->loop, f->http, method, url, body, 10000, &a);
    json_t *j = json_loads(a.body, 0, NULL);
    free(a.body);
    *status = a.status;
    return j;
}

static long faults_injected(fx_t *f)
{
    long st;
    json_t *j = admin(f, "GET", "/_sim/stats", NULL, &st);
    assert_int_equal(st, 200);
    long n = (long)json_integer_value(json_object_get(j, "faults_injected"));
    json_decref(j);
    return n;
}

static void test_rollback_fault_fails_once(void **state)
{
    const char *const lat[] = {"cloudformation.stack_create=100ms",
                               "cloudformation.stack_delete=100ms", NULL};
    const char *const faults[] = {"cloudformation.stack_create=rollback:count=1", NULL};
    fx_t f = {0};
    fx_start_faults(&f, lat, faults, NULL);
    got_t g;
    char id[512], id2[512], seen[256];

    /* The stack's role fails to create: CREATE_FAILED, then the rollback. */
    create_billing(&f, "onboard-a", NULL, id, sizeof(id));
    wait_status(&f, "onboard-a", "ROLLBACK_IN_PROGRESS", seen, sizeof(seen));
    assert_string_equal(seen, "CREATE_IN_PROGRESS ROLLBACK_IN_PROGRESS");
    expect_reason(&f, "onboard-a", "ROLLBACK_IN_PROGRESS",
                  BILLING_FAILED "Rollback requested by user.");
    assert_null(sim_get_role(f.sim, ACCT, "onboard-a"));
    assert_non_null(sim_get_role(f.sim, ACCT, "onboard-a-side")); /* made, not yet rolled back */
    wait_status(&f, "onboard-a", "ROLLBACK_COMPLETE", NULL, 0);
    expect_reason(&f, "onboard-a", "ROLLBACK_COMPLETE",
                  BILLING_FAILED "Rollback requested by user.");
    assert_null(sim_get_role(f.sim, ACCT, "onboard-a"));
    assert_null(sim_get_role(f.sim, ACCT, "onboard-a-side"));
    assert_int_equal(faults_injected(&f), 1);
    assert_non_null(json_object_get(failed_names(&f), "onboard-a"));
    assert_null(
        json_object_get(json_object_get(sim_section(f.sim, "stacks"), id), "InjectedFault"));

    /* The events tell it as AWS would. */
    CALL(&f, &g, "DescribeStackEvents", "StackName", "onboard-a");
    expect_ok(&g);
    assert_non_null(strstr(g.body, "<LogicalResourceId>BillingEngineRole</LogicalResourceId>"));
    assert_non_null(strstr(g.body, "<ResourceStatus>CREATE_FAILED</ResourceStatus>"));
    assert_non_null(strstr(g.body, "<ResourceStatusReason>" FAULT_WHY "</ResourceStatusReason>"));
    assert_non_null(strstr(g.body, "<ResourceStatusReason>" BILLING_FAILED
                                   "</ResourceStatusReason>")); /* the stack's CREATE_FAILED */
    ob_test_got_free(&g);

    /* Deleted and created again, the same name succeeds with its role. */
    CALL(&f, &g, "DeleteStack", "StackName", "onboard-a");
    expect_ok(&g);
    ob_test_got_free(&g);
    wait_status(&f, id, "DELETE_COMPLETE", NULL, 0);
    create_billing(&f, "onboard-a", NULL, id2, sizeof(id2));
    assert_string_not_equal(id, id2);
    wait_status(&f, "onboard-a", "CREATE_COMPLETE", NULL, 0);
    json_t *role = sim_get_role(f.sim, ACCT, "onboard-a");
    assert_non_null(role);
    assert_string_equal(json_string_value(json_object_get(role, "StackId")), id2);
    assert_non_null(sim_get_role(f.sim, ACCT, "onboard-a-side"));

    /* The count is used up: another name is not touched. */
    create_billing(&f, "onboard-b", NULL, id, sizeof(id));
    wait_status(&f, "onboard-b", "CREATE_COMPLETE", NULL, 0);
    assert_non_null(sim_get_role(f.sim, ACCT, "onboard-b"));
    assert_null(json_object_get(failed_names(&f), "onboard-b"));
    assert_int_equal(faults_injected(&f), 1);
    fx_stop(&f, 1);
}

static void test_rollback_fault_on_failure_and_restart(void **state)
{
    const char *const lat[] = {"cloudformation.stack_create=100ms",
                               "cloudformation.stack_delete=100ms", NULL};
    const char *const faults[] = {"cloudformation.stack_create=rollback:count=2", NULL};
    char path[] = "/tmp/ob-sim-cfn-fault.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    fx_t f = {0};
    fx_start_faults(&f, lat, faults, path);
    got_t g;
    char id[512], seen[256];

    /* DO_NOTHING: it stays CREATE_FAILED, what it made left in place. */
    create_billing(&f, "keep", "DO_NOTHING", id, sizeof(id));
    wait_status(&f, "keep", "CREATE_FAILED", NULL, 0);
    expect_reason(&f, "keep", "CREATE_FAILED", BILLING_FAILED);
    assert_null(sim_get_role(f.sim, ACCT, "keep"));
    assert_non_null(sim_get_role(f.sim, ACCT, "keep-side"));
    /* Saved and restored with the same rule (its count full again): the name
     * is remembered and fails no more. */
    fx_stop(&f, 0);
    fx_start_faults(&f, lat, faults, path);
    assert_non_null(json_object_get(failed_names(&f), "keep"));
    CALL(&f, &g, "DeleteStack", "StackName", "keep");
    expect_ok(&g);
    ob_test_got_free(&g);
    wait_status(&f, id, "DELETE_COMPLETE", NULL, 0);
    assert_null(sim_get_role(f.sim, ACCT, "keep-side"));
    create_billing(&f, "keep", "DO_NOTHING", id, sizeof(id));
    wait_status(&f, "keep", "CREATE_COMPLETE", NULL, 0);
    assert_non_null(sim_get_role(f.sim, ACCT, "keep"));
    assert_int_equal(faults_injected(&f), 0); /* counted by this simulator: none yet */

    /* DELETE: deleted after the failure; the count then runs out. */
    create_billing(&f, "gone", "DELETE", id, sizeof(id));
    wait_status(&f, id, "DELETE_COMPLETE", seen, sizeof(seen));
    assert_string_equal(seen, "CREATE_IN_PROGRESS DELETE_IN_PROGRESS DELETE_COMPLETE");
    assert_null(sim_get_role(f.sim, ACCT, "gone-side"));
    create_billing(&f, "late", NULL, id, sizeof(id));
    wait_status(&f, "late", "ROLLBACK_COMPLETE", NULL, 0);
    create_billing(&f, "later", NULL, id, sizeof(id));
    wait_status(&f, "later", "CREATE_COMPLETE", NULL, 0);
    assert_int_equal(faults_injected(&f), 2);

    /* POST /_sim/reset forgets the names with the rest. */
    long st;
    json_decref(admin(&f, "POST", "/_sim/reset", NULL, &st));
    assert_int_equal(st, 200);
    assert_null(failed_names(&f));
    fx_stop(&f, 1);
    unlink(path);
}

static void test_rollback_fault_rules(void **state)
{
    char err[256];
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    /* rollback is for cloudformation.stack_create exactly. */
    const char *const bad[] = {"s3.CreateBucket=rollback:1", "cloudformation.*=rollback:count=1",
                               "*=rollback:0.5", "cloudformation.stack_update=rollback:count=1",
                               "cloudformation.CreateStack=rollback:count=1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *const faults[] = {bad[i], NULL};
        sim_opts_t o = {.profile = "instant", .faults = faults};
        sim_t *sim = sim_new(loop, &o, err, sizeof(err));
        if (sim)
            fail_msg("%s was accepted", bad[i]);
        if (!strstr(err, "kind rollback applies only to cloudformation.stack_create"))
            fail_msg("%s: %s", bad[i], err);
    }
    const char *const faults[] = {"cloudformation.stack_create=rollback:2", NULL};
    sim_opts_t o = {.profile = "instant", .faults = faults};
    assert_null(sim_new(loop, &o, err, sizeof(err)));
    assert_string_equal(err, "fault cloudformation.stack_create: rate must be between 0 and 1");
    ob_loop_free(loop);

    /* Other kinds on the stack names are accepted and change nothing, as
     * before; the admin API refuses rollback elsewhere with the same words. */
    const char *const inert[] = {"cloudformation.stack_create=500:1",
                                 "cloudformation.stack_delete=reset:count=5", NULL};
    fx_t f = {0};
    fx_start_faults(&f, NULL, inert, NULL);
    char id[512];
    create_billing(&f, "plain", NULL, id, sizeof(id));
    wait_status(&f, "plain", "CREATE_COMPLETE", NULL, 0);
    long st;
    json_t *j = admin(&f, "POST", "/_sim/config",
                      "{\"faults\": {\"sts.AssumeRole\": \"rollback:count=1\"}}", &st);
    assert_int_equal(st, 400);
    assert_string_equal(json_string_value(json_object_get(j, "error")),
                        "fault sts.AssumeRole: kind rollback applies only to "
                        "cloudformation.stack_create (exactly): a stack whose resources fail to "
                        "create, once per stack name");
    json_decref(j);
    j = admin(&f, "POST", "/_sim/faults",
              "{\"faults\": {\"cloudformation.stack_create\": \"rollback:1\"}}", &st);
    assert_int_equal(st, 200);
    json_t *rule = json_array_get(json_object_get(j, "faults"), 0);
    assert_string_equal(json_string_value(json_object_get(rule, "kind")), "rollback");
    assert_string_equal(json_string_value(json_object_get(rule, "api")),
                        "cloudformation.stack_create");
    assert_int_equal(json_array_size(json_object_get(j, "faults")), 1);
    json_decref(j);
    create_billing(&f, "always", NULL, id, sizeof(id));
    wait_status(&f, "always", "ROLLBACK_COMPLETE", NULL, 0);
    fx_stop(&f, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_in_progress_then_complete),
        cmocka_unit_test(test_parameters_and_conditions),
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_client_request_token),
        cmocka_unit_test(test_rollback_then_delete_then_create),
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_thousand_stacks_at_once),
        cmocka_unit_test(test_shared_template),
        cmocka_unit_test(test_restored_state_resumes),
        cmocka_unit_test(test_rollback_fault_fails_once),
        cmocka_unit_test(test_rollback_fault_on_failure_and_restart),
        cmocka_unit_test(test_rollback_fault_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
