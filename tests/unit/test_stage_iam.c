/*
 * The iam stage as pure logic, driven with Query XML replies of the shapes
 * CloudFormation sends (DescribeStacks with Parameters and Outputs, the
 * recorded "does not exist", AlreadyExists, "No updates are to be performed."
 * and Throttling replies from tests/fixtures/aws, DescribeStackEvents): the
 * calls it asks for (in the request's region, in the account's identity) and
 * their exact parameters; create and poll to CREATE_COMPLETE; stacks found in
 * progress, complete, rolled back or broken; UpdateStack for reruns with the
 * ExternalId kept (UsePreviousValue); the delete-and-create redo of a
 * rolled-back stack up to stack.redo.max, then the failure with the
 * resource's reason; the races (AlreadyExistsException, a token CloudFormation
 * ties to a deleted stack); ClientRequestTokens that are deterministic; every
 * error class; the hand-off to the connect topic; the configuration and input
 * checks; and that the ExternalId never appears in a message or state field.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ob_awsproto.h"
#include "ob_retry.h"
#include "stages.h"
#include "testutil.h"

/* The worker's stage context, as one worker holds it across messages. */
static void *iam_ctx;

#define ACCT      "123456789012"
#define ROLE      "arn:aws:iam::" ACCT ":role/OrganizationAccountAccessRole"
#define BUCKET    "billing-cur-" ACCT "-eu-west-1"
#define PRINCIPAL "arn:aws:iam::111111111111:root"
#define STACK     "billing-engine-access"
#define STACK_ID                                                                                   \
    "arn:aws:cloudformation:eu-west-1:" ACCT ":stack/" STACK "/8d1c0c40-5bb1-11ef-b8d3-"           \
    "0a8a5e1e4b1f"
#define STACK_ID2                                                                                  \
    "arn:aws:cloudformation:eu-west-1:" ACCT ":stack/" STACK "/1f0e6a20-5bb2-11ef-9d11-"           \
    "06b7c1d6a0e3"
#define BE_ROLE "arn:aws:iam::" ACCT ":role/" STACK
#define EXT_OLD "0f1e2d3c4b5a69788796a5b4c3d2e1f0"

/* ---- configuration and input ---- */

static char cfg_principal[256] = PRINCIPAL;
static char cfg_stack[256] = STACK;

static ob_config_t config(long long redo_max)
{
    ob_config_t c;
    memset(&c, 0, sizeof(c));
    c.billing_principal = cfg_principal;
    c.stack_name_prefix = cfg_stack;
    c.stack_poll_ms = 100;
    c.stack_redo_max = redo_max;
    return c;
}

/* A valid iam-stage hand-off built by the codec: new accounts with the
 * bucket and report results, existing ones with none; `extra` are request
 * members after "role_arn". */
static char *handoff(const char *mode, const char *request_id, const char *extra)
{
    char req[2048];
    snprintf(req, sizeof(req),
             "{\"schema\":\"onboard.request/1\",\"request_id\":\"%s\",\"account_id\":\"" ACCT
             "\",\"cloud\":\"aws\",\"mode\":\"%s\",\"region\":\"eu-west-1\",\"role_arn\":\"" ROLE
             "\"%s}",
             request_id, mode, extra ? extra : "");
    ob_stage_msg_t m;
    ob_test_handoff_init(&m, req, OB_STAGE_IAM);
    if (m.request.mode == OB_MODE_NEW) {
        ob_test_handoff_trace(&m, OB_STAGE_BUCKET, "bucket", "2025-06-02T10:00:00.120Z",
                              "2025-06-02T10:00:01.480Z");
        ob_test_handoff_trace(&m, OB_STAGE_CUR, "cur", "2025-06-02T10:00:00.120Z",
                              "2025-06-02T10:00:01.480Z");
    }
    return ob_test_handoff_json(&m);
}

/* ---- running the stage ---- */

typedef struct run_s {
    void *st;
    ob_config_t cfg;
    ob_job_plan_t plan;
    ob_step_t s;
} run_t;

static ob_err_t start_cfg(run_t *r, const char *payload, const ob_config_t *cfg)
{
    r->st = calloc(1, ob_stage_iam.state_size);
    r->cfg = *cfg;
    memset(&r->plan, 0, sizeof(r->plan));
    memset(&r->s, 0, sizeof(r->s));
    return ob_stage_iam.parse(r->st, iam_ctx, &r->cfg, payload, strlen(payload), &r->plan, &r->s);
}

static void start(run_t *r, const char *payload, long long redo_max)
{
    ob_config_t c = config(redo_max);
    if (start_cfg(r, payload, &c) != OB_OK)
        fail_msg("parse: %s: %s", r->s.code, r->s.message);
}

static void finish(run_t *r)
{
    ob_step_clear(&r->s);
    ob_stage_iam.clear(r->st);
    free(r->st);
}

static ob_step_t *step(run_t *r, ob_aws_result_t *res)
{
    ob_step_clear(&r->s);
    ob_stage_iam.step(r->st, res, &r->s);
    return &r->s;
}

/* ---- replies ---- */

/* A 200 reply. The body is copied into a small ring, so that the caller may
 * free its text at once and a reply may be fed more than once. */
static ob_aws_result_t reply(const char *op, const char *text)
{
    static char *ring[32];
    static unsigned next;
    char *body = strdup(text);
    free(ring[next % 32]);
    ring[next++ % 32] = body;
    ob_aws_result_t res;
    memset(&res, 0, sizeof(res));
    res.err = OB_OK;
    res.status = 200;
    res.svc = OB_SVC_CLOUDFORMATION;
    res.op = op;
    res.body.data = (char *)body;
    res.body.len = strlen(body);
    return res;
}

/* An error reply as the runtime hands it over: the body parsed by
 * ob_aws_parse_error, classified by the SDK retry rules, the HTTP retries
 * spent when it is retryable. */
static ob_aws_result_t error_body(const char *op, long status, const char *body)
{
    ob_aws_result_t res;
    memset(&res, 0, sizeof(res));
    res.err = OB_ERR_AWS;
    res.status = status;
    res.svc = OB_SVC_CLOUDFORMATION;
    res.op = op;
    assert_int_equal(
        ob_aws_parse_error(OB_SVC_CLOUDFORMATION, status, NULL, body, strlen(body), &res.aws),
        OB_OK);
    res.retry_class = ob_retry_classify(OB_SVC_CLOUDFORMATION, OB_OK, status, res.aws.code);
    res.attempts = res.retry_class == OB_RETRY_NO ? 1 : 3;
    snprintf(res.errmsg, sizeof(res.errmsg), "cloudformation %s: %s: %.400s (HTTP %ld)", op,
             res.aws.code, res.aws.message, status);
    return res;
}

static ob_aws_result_t error_fixture(const char *op, long status, const char *file)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/aws/%s", OB_FIXTURES, file);
    char *body = ob_test_read_file(path, NULL);
    if (!body)
        fail_msg("fixture %s missing", path);
    ob_aws_result_t res = error_body(op, status, body);
    free(body);
    return res;
}

static ob_aws_result_t error_composed(const char *op, long status, const char *code,
                                      const char *message)
{
    char body[2048];
    snprintf(body, sizeof(body),
             "<ErrorResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\">\n"
             "  <Error>\n    <Type>Sender</Type>\n    <Code>%s</Code>\n"
             "    <Message>%s</Message>\n  </Error>\n"
             "  <RequestId>5ccc7dcd-744c-11e5-be70-0a2f9b3c1d4e</RequestId>\n</ErrorResponse>\n",
             code, message);
    return error_body(op, status, body);
}

/* A DescribeStacks reply with one stack, in the shape CloudFormation sends:
 * parameters in template order, outputs once complete, tags, drift info.
 * ext NULL: no ExternalId parameter; role NULL: no outputs. */
static char *stack_xml(const char *id, const char *status, const char *reason, const char *ext,
                       const char *bucket, const char *role)
{
    char params[2048] = "", outputs[1024] = "", why[512] = "";
    if (ext)
        snprintf(params, sizeof(params),
                 "<Parameters><member><ParameterKey>BillingEnginePrincipal</ParameterKey>"
                 "<ParameterValue>" PRINCIPAL "</ParameterValue></member>"
                 "<member><ParameterKey>ExternalId</ParameterKey><ParameterValue>%s"
                 "</ParameterValue></member>"
                 "<member><ParameterKey>CurBucket</ParameterKey><ParameterValue>%s"
                 "</ParameterValue></member></Parameters>",
                 ext, bucket ? bucket : "");
    if (role)
        snprintf(outputs, sizeof(outputs),
                 "<Outputs><member><OutputKey>RoleName</OutputKey><OutputValue>" STACK
                 "</OutputValue><Description>The role's name</Description></member>"
                 "<member><OutputKey>RoleArn</OutputKey><OutputValue>%s</OutputValue>"
                 "<Description>The role the Billing Engine assumes (with the ExternalId)"
                 "</Description></member></Outputs>",
                 role);
    if (reason)
        snprintf(why, sizeof(why), "<StackStatusReason>%s</StackStatusReason>", reason);
    char *x = malloc(8192);
    snprintf(x, 8192,
             "<DescribeStacksResponse "
             "xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\">\n"
             "  <DescribeStacksResult>\n    <Stacks>\n      <member>\n"
             "        <StackName>" STACK "</StackName>\n"
             "        <StackId>%s</StackId>\n"
             "        <Description>Billing Engine read-only access (onboard template v1)"
             "</Description>\n        %s\n"
             "        <CreationTime>2025-06-02T10:00:03.512Z</CreationTime>\n"
             "        <RollbackConfiguration/>\n"
             "        <StackStatus>%s</StackStatus>\n        %s\n"
             "        <DisableRollback>false</DisableRollback>\n"
             "        <NotificationARNs/>\n"
             "        <Capabilities><member>CAPABILITY_NAMED_IAM</member></Capabilities>\n"
             "        %s\n"
             "        <Tags><member><Key>onboard:managed-by</Key><Value>onboard-iam</Value>"
             "</member></Tags>\n"
             "        <EnableTerminationProtection>false</EnableTerminationProtection>\n"
             "        <DriftInformation><StackDriftStatus>NOT_CHECKED</StackDriftStatus>"
             "</DriftInformation>\n"
             "      </member>\n    </Stacks>\n  </DescribeStacksResult>\n"
             "  <ResponseMetadata>\n    <RequestId>b9b4b068-3a41-11e5-94eb-0a8a5e1e4b1f"
             "</RequestId>\n  </ResponseMetadata>\n</DescribeStacksResponse>\n",
             id, params, status, why, outputs);
    return x;
}

static const char *stack_id_reply(const char *op, const char *id)
{
    static char x[1024];
    snprintf(x, sizeof(x),
             "<%sResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\">\n"
             "  <%sResult>\n    <StackId>%s</StackId>\n  </%sResult>\n"
             "  <ResponseMetadata>\n    <RequestId>2d06e36c-ac1d-11e0-a958-f9382b6eb86b"
             "</RequestId>\n  </ResponseMetadata>\n</%sResponse>\n",
             op, op, id, op, op);
    return x;
}

static const char DELETE_REPLY[] =
    "<DeleteStackResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\">\n"
    "  <ResponseMetadata>\n    <RequestId>42b3c2e1-0f1e-4d3a-9c8b-7a6f5e4d3c2b</RequestId>\n"
    "  </ResponseMetadata>\n</DeleteStackResponse>\n";

/* DescribeStackEvents of a create that failed on the role and rolled back
 * (newest first, as CloudFormation lists them). */
static char *events_xml(const char *id, const char *resource_reason)
{
    char *x = malloc(8192);
    snprintf(
        x, 8192,
        "<DescribeStackEventsResponse "
        "xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\">\n"
        "  <DescribeStackEventsResult>\n    <StackEvents>\n"
        "      <member><StackId>%s</StackId><EventId>e5</EventId><StackName>" STACK
        "</StackName><LogicalResourceId>" STACK "</LogicalResourceId><PhysicalResourceId>%s"
        "</PhysicalResourceId><ResourceType>AWS::CloudFormation::Stack</ResourceType>"
        "<Timestamp>2025-06-02T10:00:09.101Z</Timestamp><ResourceStatus>ROLLBACK_COMPLETE"
        "</ResourceStatus></member>\n"
        "      <member><StackId>%s</StackId><EventId>e4</EventId><StackName>" STACK
        "</StackName><LogicalResourceId>" STACK "</LogicalResourceId><PhysicalResourceId>%s"
        "</PhysicalResourceId><ResourceType>AWS::CloudFormation::Stack</ResourceType>"
        "<Timestamp>2025-06-02T10:00:07.301Z</Timestamp><ResourceStatus>ROLLBACK_IN_PROGRESS"
        "</ResourceStatus><ResourceStatusReason>The following resource(s) failed to create: "
        "[BillingEngineRole]. Rollback requested by user.</ResourceStatusReason></member>\n"
        "      <member><StackId>%s</StackId><EventId>BillingEngineRole-CREATE_FAILED</EventId>"
        "<StackName>" STACK "</StackName><LogicalResourceId>BillingEngineRole"
        "</LogicalResourceId><PhysicalResourceId></PhysicalResourceId><ResourceType>"
        "AWS::IAM::Role</ResourceType><Timestamp>2025-06-02T10:00:07.001Z</Timestamp>"
        "<ResourceStatus>CREATE_FAILED</ResourceStatus><ResourceStatusReason>%s"
        "</ResourceStatusReason></member>\n"
        "      <member><StackId>%s</StackId><EventId>BillingEngineRole-CREATE_IN_PROGRESS"
        "</EventId><StackName>" STACK "</StackName><LogicalResourceId>BillingEngineRole"
        "</LogicalResourceId><PhysicalResourceId></PhysicalResourceId><ResourceType>"
        "AWS::IAM::Role</ResourceType><Timestamp>2025-06-02T10:00:04.001Z</Timestamp>"
        "<ResourceStatus>CREATE_IN_PROGRESS</ResourceStatus></member>\n"
        "      <member><StackId>%s</StackId><EventId>e1</EventId><StackName>" STACK
        "</StackName><LogicalResourceId>" STACK "</LogicalResourceId><PhysicalResourceId>%s"
        "</PhysicalResourceId><ResourceType>AWS::CloudFormation::Stack</ResourceType>"
        "<Timestamp>2025-06-02T10:00:03.512Z</Timestamp><ResourceStatus>CREATE_IN_PROGRESS"
        "</ResourceStatus><ResourceStatusReason>User Initiated</ResourceStatusReason></member>\n"
        "      <member><StackId>%s</StackId><EventId>e0</EventId><StackName>" STACK
        "</StackName><LogicalResourceId>OldRole</LogicalResourceId><PhysicalResourceId>"
        "</PhysicalResourceId><ResourceType>AWS::IAM::Role</ResourceType>"
        "<Timestamp>2025-06-01T10:00:03.512Z</Timestamp><ResourceStatus>CREATE_FAILED"
        "</ResourceStatus><ResourceStatusReason>an older operation</ResourceStatusReason>"
        "</member>\n"
        "    </StackEvents>\n  </DescribeStackEventsResult>\n"
        "  <ResponseMetadata><RequestId>5f0b1c2d-3e4f-5a6b-7c8d-9e0f1a2b3c4d</RequestId>"
        "</ResponseMetadata>\n</DescribeStackEventsResponse>\n",
        id, id, id, id, id, resource_reason, id, id, id, id);
    return x;
}

/* ---- checking calls ---- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c - 'a' + 10;
}

/* The Query form body as {key: decoded value}. */
static json_t *form(const ob_step_t *s)
{
    json_t *o = json_object();
    const char *p = s->req.body.data ? s->req.body.data : "";
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        char *kv = calloc(1, n + 1), *dec = calloc(1, n + 1);
        memcpy(kv, p, n);
        char *eq = strchr(kv, '=');
        assert_non_null(eq);
        *eq = '\0';
        size_t j = 0;
        for (const char *c = eq + 1; *c; c++) {
            if (*c == '%' && c[1] && c[2]) {
                dec[j++] = (char)(hexval(c[1]) * 16 + hexval(c[2]));
                c += 2;
            } else {
                dec[j++] = *c;
            }
        }
        json_object_set_new(o, kv, json_stringn(dec, j));
        free(kv);
        free(dec);
        p += n + (amp ? 1 : 0);
    }
    return o;
}

static const char *fget(json_t *f, const char *k)
{
    return json_string_value(json_object_get(f, k));
}

static const char *body_of(const ob_step_t *s)
{
    return s->req.body.data ? s->req.body.data : "";
}

/* The step must be this CloudFormation action in eu-west-1; returns its form. */
static json_t *expect_call(ob_step_t *s, const char *action)
{
    if (s->kind != OB_STEP_CALL)
        fail_msg("expected %s, got step kind %d (%s: %s)", action, s->kind, s->code, s->message);
    assert_int_equal(s->req.svc, OB_SVC_CLOUDFORMATION);
    assert_string_equal(s->req.op, action);
    assert_string_equal(s->req.method, "POST");
    assert_string_equal(s->region, "eu-west-1");
    assert_false(s->as_fleet);
    json_t *f = form(s);
    assert_string_equal(fget(f, "Action"), action);
    assert_string_equal(fget(f, "Version"), "2010-05-15");
    return f;
}

static void expect_describe(ob_step_t *s)
{
    json_t *f = expect_call(s, "DescribeStacks");
    assert_string_equal(fget(f, "StackName"), STACK);
    assert_int_equal(json_object_size(f), 3);
    json_decref(f);
}

static void expect_wait(ob_step_t *s)
{
    if (s->kind != OB_STEP_WAIT)
        fail_msg("expected a WAIT, got step kind %d (%s: %s)", s->kind, s->code, s->message);
    /* stack.poll, or less: a probe's first polls come sooner (probe_ramp). */
    assert_true(s->wait_ms >= 10 && s->wait_ms <= 100);
}

static int is_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    return 1;
}

/* A create or update sends the template compact: the same JSON, members in
 * the same order, without the file's indentation. */
static void expect_template(const char *body)
{
    json_t *want = json_loads(ob_iam_template, 0, NULL), *got = json_loads(body, 0, NULL);
    assert_non_null(got);
    assert_true(json_equal(want, got));
    char *compact = json_dumps(want, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(body, compact);
    assert_true(strlen(body) * 4 < strlen(ob_iam_template) * 3);
    free(compact);
    json_decref(want);
    json_decref(got);
}

/* Checks a CreateStack and returns its ExternalId and token. */
static void expect_create(ob_step_t *s, const char *bucket, char ext[33], char token[64])
{
    json_t *f = expect_call(s, "CreateStack");
    assert_string_equal(fget(f, "StackName"), STACK);
    expect_template(fget(f, "TemplateBody"));
    assert_string_equal(fget(f, "Parameters.member.1.ParameterKey"), "BillingEnginePrincipal");
    assert_string_equal(fget(f, "Parameters.member.1.ParameterValue"), PRINCIPAL);
    assert_string_equal(fget(f, "Parameters.member.2.ParameterKey"), "ExternalId");
    const char *e = fget(f, "Parameters.member.2.ParameterValue");
    assert_non_null(e);
    assert_true(is_hex(e, 32));
    snprintf(ext, 33, "%s", e);
    assert_string_equal(fget(f, "Parameters.member.3.ParameterKey"), "CurBucket");
    assert_string_equal(fget(f, "Parameters.member.3.ParameterValue"), bucket);
    assert_string_equal(fget(f, "Capabilities.member.1"), "CAPABILITY_NAMED_IAM");
    assert_null(fget(f, "Capabilities.member.2"));
    assert_string_equal(fget(f, "OnFailure"), "ROLLBACK");
    assert_string_equal(fget(f, "Tags.member.1.Key"), "onboard:managed-by");
    assert_string_equal(fget(f, "Tags.member.1.Value"), "onboard-iam");
    const char *t = fget(f, "ClientRequestToken");
    assert_non_null(t);
    assert_true(strlen(t) == 43 && !strncmp(t, "ob-", 3) && is_hex(t + 3, 40));
    snprintf(token, 64, "%s", t);
    json_decref(f);
}

/* The ExternalId must appear in no dead-letter text and no state field. */
static void expect_no_leak(const ob_step_t *s, const char *ext)
{
    assert_null(strstr(s->message, ext));
    assert_null(strstr(s->code, ext));
    assert_null(strstr(s->field, ext));
    for (int i = 0; i < OB_STEP_STATE_MAX && s->state[i]; i++)
        assert_null(strstr(s->state[i], ext));
}

/* The DONE step's hand-off, parsed and checked; returns it (clear it). */
static ob_stage_msg_t expect_done(ob_step_t *s, const char *mode, const char *ext,
                                  const char *stack_id)
{
    if (s->kind != OB_STEP_DONE)
        fail_msg("expected DONE, got step kind %d (%s: %s)", s->kind, s->code, s->message);
    assert_string_equal(s->emit_topic, "connect");
    assert_string_equal(s->emit_schema, OB_SCHEMA_STAGE);
    ob_stage_msg_t m;
    ob_msg_error_t me;
    if (ob_stage_parse(s->emit, strlen(s->emit), &m, &me) != OB_OK)
        fail_msg("hand-off: %s", me.message);
    assert_int_equal(m.stage, OB_STAGE_CONNECT);
    assert_string_equal(ob_mode_name(m.request.mode), mode);
    assert_true(m.has_stack);
    assert_string_equal(m.stack.id, stack_id);
    assert_string_equal(m.stack.name, STACK);
    assert_string_equal(m.stack.role_arn, BE_ROLE);
    assert_string_equal(m.stack.external_id, ext);
    assert_true(m.trace[OB_STAGE_IAM].present);
    assert_string_equal(m.trace[OB_STAGE_IAM].worker, "iam");
    /* State: stack id and role ARN, never the ExternalId. */
    assert_string_equal(s->state[0], "stack_id");
    assert_string_equal(s->state[1], stack_id);
    assert_string_equal(s->state[2], "role_arn");
    assert_string_equal(s->state[3], BE_ROLE);
    expect_no_leak(s, ext);
    return m;
}

/* ---- paths ---- */

static void test_new_account_create_and_poll(void **state)
{
    char *p = handoff("new", "req-1", NULL);
    run_t r;
    start(&r, p, 2);
    assert_string_equal(r.plan.account_id, ACCT);
    assert_string_equal(r.plan.request_id, "req-1");
    assert_string_equal(r.plan.role_arn, ROLE);
    assert_string_equal(r.plan.region, "eu-west-1");

    expect_describe(step(&r, NULL));
    ob_aws_result_t gone =
        error_fixture("DescribeStacks", 400, "cfn_describe_stacks_does_not_exist.xml");
    char ext[33], token[64];
    expect_create(step(&r, &gone), BUCKET, ext, token);

    ob_aws_result_t created = reply("CreateStack", stack_id_reply("CreateStack", STACK_ID));
    expect_wait(step(&r, &created));
    expect_describe(step(&r, NULL));
    char *x = stack_xml(STACK_ID, "CREATE_IN_PROGRESS", "User Initiated", ext, BUCKET, NULL);
    ob_aws_result_t busy = reply("DescribeStacks", x);
    expect_wait(step(&r, &busy));
    free(x);
    expect_describe(step(&r, NULL));
    x = stack_xml(STACK_ID, "CREATE_COMPLETE", NULL, ext, BUCKET, BE_ROLE);
    ob_aws_result_t done = reply("DescribeStacks", x);
    ob_stage_msg_t m = expect_done(step(&r, &done), "new", ext, STACK_ID);
    free(x);
    /* The earlier stages' results and traces travel on. */
    assert_true(m.has_bucket);
    assert_string_equal(m.bucket.name, BUCKET);
    assert_true(m.has_report);
    assert_true(m.trace[OB_STAGE_BUCKET].present);
    assert_true(m.trace[OB_STAGE_CUR].present);
    ob_stage_msg_clear(&m);
    finish(&r);
    free(p);
}

static void test_external_ids_are_random_and_tokens_deterministic(void **state)
{
    char *p1 = handoff("new", "req-1", NULL), *p2 = handoff("new", "req-2", NULL);
    char ext[3][33], tok[3][64];
    const char *payloads[3] = {p1, p1, p2};
    for (int i = 0; i < 3; i++) {
        run_t r;
        start(&r, payloads[i], 2);
        step(&r, NULL);
        ob_aws_result_t gone =
            error_fixture("DescribeStacks", 400, "cfn_describe_stacks_does_not_exist.xml");
        expect_create(step(&r, &gone), BUCKET, ext[i], tok[i]);
        finish(&r);
    }
    /* Same request: same token, so CloudFormation deduplicates a redelivery;
     * another request: another token. The ExternalId is fresh each time a
     * stack has to be made (it is kept by the stack, not by the worker). */
    assert_string_equal(tok[0], tok[1]);
    assert_string_not_equal(tok[0], tok[2]);
    assert_string_not_equal(ext[0], ext[1]);
    assert_string_not_equal(ext[0], ext[2]);
    free(p1);
    free(p2);
}

static void test_existing_account_found_complete_no_updates(void **state)
{
    char *p = handoff("existing", "req-9", NULL);
    run_t r;
    start(&r, p, 2);
    expect_describe(step(&r, NULL));
    char *x = stack_xml(STACK_ID, "CREATE_COMPLETE", NULL, EXT_OLD, "old-cur-bucket", BE_ROLE);
    ob_aws_result_t found = reply("DescribeStacks", x);
    json_t *f = expect_call(step(&r, &found), "UpdateStack");
    assert_string_equal(fget(f, "StackName"), STACK);
    expect_template(fget(f, "TemplateBody"));
    assert_string_equal(fget(f, "Parameters.member.1.ParameterKey"), "BillingEnginePrincipal");
    assert_string_equal(fget(f, "Parameters.member.1.ParameterValue"), PRINCIPAL);
    /* The ExternalId is the stack's: UsePreviousValue, never sent again. */
    assert_string_equal(fget(f, "Parameters.member.2.ParameterKey"), "ExternalId");
    assert_string_equal(fget(f, "Parameters.member.2.UsePreviousValue"), "true");
    assert_null(fget(f, "Parameters.member.2.ParameterValue"));
    /* No bucket in the request: the one the stack reads is kept. */
    assert_string_equal(fget(f, "Parameters.member.3.ParameterKey"), "CurBucket");
    assert_string_equal(fget(f, "Parameters.member.3.UsePreviousValue"), "true");
    assert_null(fget(f, "Parameters.member.3.ParameterValue"));
    assert_string_equal(fget(f, "Capabilities.member.1"), "CAPABILITY_NAMED_IAM");
    assert_null(fget(f, "OnFailure")); /* not an UpdateStack parameter */
    const char *t = fget(f, "ClientRequestToken");
    assert_true(t && !strncmp(t, "ob-", 3) && is_hex(t + 3, 40));
    assert_null(strstr(body_of(&r.s), EXT_OLD));
    json_decref(f);
    ob_aws_result_t none = error_fixture("UpdateStack", 400, "cfn_update_stack_no_updates.xml");
    ob_stage_msg_t m = expect_done(step(&r, &none), "existing", EXT_OLD, STACK_ID);
    assert_false(m.has_bucket);
    assert_false(m.has_report);
    ob_stage_msg_clear(&m);
    free(x);
    finish(&r);
    free(p);
}

static void test_existing_account_with_bucket_updates_and_polls(void **state)
{
    char *p = handoff("existing", "req-10",
                      ",\"bucket\":{\"name\":\"acme-cur\"},\"tags\":{\"cost-center\":\"cc-1\"}");
    run_t r;
    start(&r, p, 2);
    expect_describe(step(&r, NULL));
    char *x = stack_xml(STACK_ID, "UPDATE_COMPLETE", NULL, EXT_OLD, "", BE_ROLE);
    ob_aws_result_t found = reply("DescribeStacks", x);
    free(x);
    json_t *f = expect_call(step(&r, &found), "UpdateStack");
    assert_string_equal(fget(f, "Parameters.member.3.ParameterValue"), "acme-cur");
    assert_null(fget(f, "Parameters.member.3.UsePreviousValue"));
    /* Our tag, then the request's. */
    assert_string_equal(fget(f, "Tags.member.1.Key"), "onboard:managed-by");
    assert_string_equal(fget(f, "Tags.member.2.Key"), "cost-center");
    assert_string_equal(fget(f, "Tags.member.2.Value"), "cc-1");
    json_decref(f);
    ob_aws_result_t ok = reply("UpdateStack", stack_id_reply("UpdateStack", STACK_ID));
    expect_wait(step(&r, &ok));
    const char *statuses[] = {"UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"};
    for (int i = 0; i < 2; i++) {
        expect_describe(step(&r, NULL));
        x = stack_xml(STACK_ID, statuses[i], NULL, EXT_OLD, "acme-cur", BE_ROLE);
        ob_aws_result_t busy = reply("DescribeStacks", x);
        expect_wait(step(&r, &busy));
        free(x);
    }
    expect_describe(step(&r, NULL));
    x = stack_xml(STACK_ID, "UPDATE_COMPLETE", NULL, EXT_OLD, "acme-cur", BE_ROLE);
    ob_aws_result_t done = reply("DescribeStacks", x);
    ob_stage_msg_t m = expect_done(step(&r, &done), "existing", EXT_OLD, STACK_ID);
    assert_string_equal(r.s.state[5], "UPDATE_COMPLETE");
    ob_stage_msg_clear(&m);
    free(x);
    finish(&r);
    free(p);
}

static void test_existing_account_without_stack_creates(void **state)
{
    char *p = handoff("existing", "req-11", NULL);
    run_t r;
    start(&r, p, 2);
    step(&r, NULL);
    ob_aws_result_t gone =
        error_fixture("DescribeStacks", 400, "cfn_describe_stacks_does_not_exist.xml");
    char ext[33], token[64];
    expect_create(step(&r, &gone), "", ext, token); /* no bucket to read */
    ob_aws_result_t created = reply("CreateStack", stack_id_reply("CreateStack", STACK_ID));
    expect_wait(step(&r, &created));
    step(&r, NULL);
    char *x = stack_xml(STACK_ID, "CREATE_COMPLETE", NULL, ext, "", BE_ROLE);
    ob_aws_result_t done = reply("DescribeStacks", x);
    ob_stage_msg_t m = expect_done(step(&r, &done), "existing", ext, STACK_ID);
    ob_stage_msg_clear(&m);
    free(x);
    finish(&r);
    free(p);
}

/* A stack in progress at the start (a worker died after its CreateStack):
 * poll it, never create; once complete, converge with an update. */
static void test_in_progress_at_start_is_polled(void **state)
{
    char *p = handoff("new", "req-12", NULL);
    run_t r;
    start(&r, p, 2);
    step(&r, NULL);
    char *x = stack_xml(STACK_ID, "CREATE_IN_PROGRESS", "User Initiated", EXT_OLD, BUCKET, NULL);
    ob_aws_result_t busy = reply("DescribeStacks", x);
    expect_wait(step(&r, &busy));
    free(x);
    expect_describe(step(&r, NULL));
    x = stack_xml(STACK_ID, "CREATE_COMPLETE", NULL, EXT_OLD, BUCKET, BE_ROLE);
    ob_aws_result_t done = reply("DescribeStacks", x);
    json_t *f = expect_call(step(&r, &done), "UpdateStack");
    assert_string_equal(fget(f, "Parameters.member.3.ParameterValue"), BUCKET);
    json_decref(f);
    free(x);
    ob_aws_result_t none = error_fixture("UpdateStack", 400, "cfn_update_stack_no_updates.xml");
    ob_stage_msg_t m = expect_done(step(&r, &none), "new", EXT_OLD, STACK_ID);
    ob_stage_msg_clear(&m);
    finish(&r);
    free(p);
}

static void test_update_rolled_back(void **state)
{
    char *p = handoff("existing", "req-13", NULL);
    run_t r;
    start(&r, p, 2);
    step(&r, NULL);
    /* Found rolled back (an earlier update failed): the update is tried again. */
    char *x =
        stack_xml(STACK_ID, "UPDATE_ROLLBACK_COMPLETE", "earlier failure", EXT_OLD, "", BE_ROLE);
    ob_aws_result_t found = reply("DescribeStacks", x);
    free(x);
    json_decref(expect_call(step(&r, &found), "UpdateStack"));
    ob_aws_result_t ok = reply("UpdateStack", stack_id_reply("UpdateStack", STACK_ID));
    expect_wait(step(&r, &ok));
    step(&r, NULL);
    x = stack_xml(STACK_ID, "UPDATE_ROLLBACK_IN_PROGRESS",
                  "The following resource(s) failed to update: [BillingEngineRole]. ", EXT_OLD, "",
                  BE_ROLE);
    ob_aws_result_t rolling = reply("DescribeStacks", x);
    expect_wait(step(&r, &rolling));
    free(x);
    step(&r, NULL);
    /* Our update rolled back: permanent, with the reason. */
    x = stack_xml(STACK_ID, "UPDATE_ROLLBACK_COMPLETE",
                  "The following resource(s) failed to update: [BillingEngineRole]. ", EXT_OLD, "",
                  BE_ROLE);
    ob_aws_result_t back = reply("DescribeStacks", x);
    free(x);
    json_t *f = expect_call(step(&r, &back), "DescribeStackEvents");
    assert_string_equal(fget(f, "StackName"), STACK_ID);
    json_decref(f);
    /* The events cannot be read: the stack's own reason is enough. */
    ob_aws_result_t slow = error_fixture("DescribeStackEvents", 400, "cfn_throttling.xml");
    ob_step_t *s = step(&r, &slow);
    assert_int_equal(s->kind, OB_STEP_FAIL);
    assert_int_equal(s->fail_class, OB_DLQ_PERMANENT);
    assert_string_equal(s->code, "stack_failed");
    assert_non_null(strstr(s->message, "UPDATE_ROLLBACK_COMPLETE"));
    assert_non_null(strstr(s->message, "failed to update: [BillingEngineRole]"));
    assert_string_equal(s->state[0], "stack_id");
    assert_string_equal(s->state[1], STACK_ID);
    expect_no_leak(s, EXT_OLD);
    finish(&r);
    free(p);
}

/* Created, rolled back, deleted, created again with the same ExternalId and
 * a new token, complete. */
static void test_rollback_redo_then_success(void **state)
{
    char *p = handoff("new", "req-14", NULL);
    run_t r;
    start(&r, p, 2);
    step(&r, NULL);
    ob_aws_result_t gone =
        error_fixture("DescribeStacks", 400, "cfn_describe_stacks_does_not_exist.xml");
    char ext[33], tok[64], ext2[33], tok2[64];
    expect_create(step(&r, &gone), BUCKET, ext, tok);
    ob_aws_result_t created = reply("CreateStack", stack_id_reply("CreateStack", STACK_ID));
    expect_wait(step(&r, &created));
    step(&r, NULL);
    char *x = stack_xml(STACK_ID, "ROLLBACK_COMPLETE",
                        "The following resource(s) failed to create: [BillingEngineRole]. "
                        "Rollback requested by user.",
                        ext, BUCKET, NULL);
    ob_aws_result_t back = reply("DescribeStacks", x);
    free(x);
    json_t *f = expect_call(step(&r, &back), "DeleteStack");
    assert_string_equal(fget(f, "StackName"), STACK_ID); /* by id, never a newer stack */
    const char *dt = fget(f, "ClientRequestToken");
    assert_true(dt && !strncmp(dt, "ob-", 3) && strcmp(dt, tok) != 0);
    json_decref(f);
    ob_aws_result_t deleted = reply("DeleteStack", DELETE_REPLY);
    expect_wait(step(&r, &deleted));
    expect_describe(step(&r, NULL));
    x = stack_xml(STACK_ID, "DELETE_IN_PROGRESS", NULL, ext, BUCKET, NULL);
    ob_aws_result_t deleting = reply("DescribeStacks", x);
    expect_wait(step(&r, &deleting));
    free(x);
    step(&r, NULL);
    expect_create(step(&r, &gone), BUCKET, ext2, tok2);
    assert_string_equal(ext2, ext);     /* the account keeps its ExternalId */
    assert_string_not_equal(tok2, tok); /* a new stack: a new token */
    ob_aws_result_t created2 = reply("CreateStack", stack_id_reply("CreateStack", STACK_ID2));
    expect_wait(step(&r, &created2));
    step(&r, NULL);
    x = stack_xml(STACK_ID2, "CREATE_COMPLETE", NULL, ext, BUCKET, BE_ROLE);
    ob_aws_result_t done = reply("DescribeStacks", x);
    ob_stage_msg_t m = expect_done(step(&r, &done), "new", ext, STACK_ID2);
    ob_stage_msg_clear(&m);
    free(x);
    finish(&r);
    free(p);
}

static void test_redo_limit(void **state)
{
    const char *role_reason = "billing-engine-access already exists";
    char *p = handoff("new", "req-15", NULL);
    run_t r;
    start(&r, p, 1);
    step(&r, NULL);
    ob_aws_result_t gone =
        error_fixture("DescribeStacks", 400, "cfn_describe_stacks_does_not_exist.xml");
    char ext[33], tok[64];
    const char *ids[2] = {STACK_ID, STACK_ID2};
    for (int i = 0; i < 2; i++) {
        expect_create(step(&r, &gone), BUCKET, ext, tok);
        ob_aws_result_t created = reply("CreateStack", stack_id_reply("CreateStack", ids[i]));
        expect_wait(step(&r, &created));
        step(&r, NULL);
        char *x = stack_xml(ids[i], "ROLLBACK_COMPLETE",
                            "The following resource(s) failed to create: [BillingEngineRole]. "
                            "Rollback requested by user.",
                            ext, BUCKET, NULL);
        ob_aws_result_t back = reply("DescribeStacks", x);
        free(x);
        if (i == 0) {
            json_decref(expect_call(step(&r, &back), "DeleteStack"));
            ob_aws_result_t deleted = reply("DeleteStack", DELETE_REPLY);
            expect_wait(step(&r, &deleted));
            step(&r, NULL);
            continue;
        }
        /* stack.redo.max (1) is spent: find the resource that failed. */
        json_t *f = expect_call(step(&r, &back), "DescribeStackEvents");
        assert_string_equal(fget(f, "StackName"), STACK_ID2);
        json_decref(f);
    }
    char *ev = events_xml(STACK_ID2, role_reason);
    ob_aws_result_t events = reply("DescribeStackEvents", ev);
    ob_step_t *s = step(&r, &events);
    assert_int_equal(s->kind, OB_STEP_FAIL);
    assert_int_equal(s->fail_class, OB_DLQ_PERMANENT);
    assert_string_equal(s->code, "stack_failed");
    assert_non_null(strstr(s->message, "ROLLBACK_COMPLETE after 1 redo"));
    assert_non_null(strstr(s->message, "BillingEngineRole: billing-engine-access already exists"));
    assert_non_null(strstr(s->message, "Rollback requested by user."));
    assert_null(strstr(s->message, "an older operation")); /* only the last operation counts */
    assert_string_equal(s->state[1], STACK_ID2);
    assert_string_equal(s->state[3], "ROLLBACK_COMPLETE");
    expect_no_leak(s, ext);
    free(ev);
    finish(&r);

    /* stack.redo.max 0 and a rolled-back stack at the start: no redo at all. */
    start(&r, p, 0);
    step(&r, NULL);
    char *x = stack_xml(STACK_ID, "ROLLBACK_COMPLETE", "Rollback requested by user.", EXT_OLD,
                        BUCKET, NULL);
    ob_aws_result_t back = reply("DescribeStacks", x);
    free(x);
    json_decref(expect_call(step(&r, &back), "DescribeStackEvents"));
    ev = events_xml(STACK_ID, "Access denied for iam:CreateRole");
    ob_aws_result_t events2 = reply("DescribeStackEvents", ev);
    s = step(&r, &events2);
    assert_int_equal(s->kind, OB_STEP_FAIL);
    assert_int_equal(s->fail_class, OB_DLQ_PERMANENT);
    assert_non_null(strstr(s->message, "after 0 redos"));
    assert_non_null(strstr(s->message, "Access denied for iam:CreateRole"));
    expect_no_leak(s, EXT_OLD);
    free(ev);
    finish(&r);
    free(p);
}

/* AlreadyExistsException: another create won the race; its stack (and its
 * ExternalId) is the one kept. */
static void test_already_exists_race(void **state)
{
    char *p = handoff("new", "req-16", NULL);
    run_t r;
    start(&r, p, 2);
    step(&r, NULL);
    ob_aws_result_t gone =
        error_fixture("DescribeStacks", 400, "cfn_describe_stacks_does_not_exist.xml");
    char ext[33], tok[64];
    expect_create(step(&r, &gone), BUCKET, ext, tok);
    ob_aws_result_t exists =
        error_fixture("CreateStack", 400, "cfn_create_stack_already_exists.xml");
    expect_describe(step(&r, &exists));
    char *x = stack_xml(STACK_ID, "CREATE_IN_PROGRESS", NULL, EXT_OLD, BUCKET, NULL);
    ob_aws_result_t busy = reply("DescribeStacks", x);
    expect_wait(step(&r, &busy));
    free(x);
    step(&r, NULL);
    x = stack_xml(STACK_ID, "CREATE_COMPLETE", NULL, EXT_OLD, BUCKET, BE_ROLE);
    ob_aws_result_t done = reply("DescribeStacks", x);
    json_decref(expect_call(step(&r, &done), "UpdateStack"));
    free(x);
    ob_aws_result_t none = error_fixture("UpdateStack", 400, "cfn_update_stack_no_updates.xml");
    ob_stage_msg_t m = expect_done(step(&r, &none), "new", EXT_OLD, STACK_ID);
    ob_stage_msg_clear(&m);
    expect_no_leak(&r.s, ext);
    finish(&r);
    free(p);
}

/* CreateStack answers with a stack that is already gone (the token was used
 * by a stack deleted earlier): a new token; TokenAlreadyExistsException too. */
static void test_stale_tokens(void **state)
{
    char *p = handoff("new", "req-17", NULL);
    run_t r;
    start(&r, p, 2);
    step(&r, NULL);
    ob_aws_result_t gone =
        error_fixture("DescribeStacks", 400, "cfn_describe_stacks_does_not_exist.xml");
    char ext[33], tok[4][64], e2[33];
    expect_create(step(&r, &gone), BUCKET, ext, tok[0]);
    ob_aws_result_t replayed = reply("CreateStack", stack_id_reply("CreateStack", STACK_ID));
    expect_wait(step(&r, &replayed));
    step(&r, NULL);
    expect_create(step(&r, &gone), BUCKET, e2, tok[1]);
    assert_string_equal(e2, ext);
    assert_string_not_equal(tok[1], tok[0]);
    ob_aws_result_t taken = error_composed(
        "CreateStack", 400, "TokenAlreadyExistsException",
        "Another CreateStack request with the same client request token already exists");
    expect_create(step(&r, &taken), BUCKET, e2, tok[2]);
    assert_string_not_equal(tok[2], tok[1]);
    ob_aws_result_t created = reply("CreateStack", stack_id_reply("CreateStack", STACK_ID2));
    expect_wait(step(&r, &created));
    step(&r, NULL);
    char *x = stack_xml(STACK_ID2, "CREATE_COMPLETE", NULL, ext, BUCKET, BE_ROLE);
    ob_aws_result_t done = reply("DescribeStacks", x);
    ob_stage_msg_t m = expect_done(step(&r, &done), "new", ext, STACK_ID2);
    ob_stage_msg_clear(&m);
    free(x);
    finish(&r);

    /* A stack that keeps vanishing is given up. */
    start(&r, p, 2);
    step(&r, NULL);
    ob_step_t *s = step(&r, &gone);
    for (int i = 0; i < 4; i++) {
        assert_string_equal(s->req.op, "CreateStack");
        expect_wait(step(&r, &replayed));
        step(&r, NULL);
        s = step(&r, &gone);
    }
    assert_int_equal(s->kind, OB_STEP_FAIL);
    assert_int_equal(s->fail_class, OB_DLQ_RETRIES_EXHAUSTED);
    assert_string_equal(s->code, "stack_vanished");
    finish(&r);
    free(p);
}

static void test_create_errors(void **state)
{
    struct {
        ob_aws_result_t res;
        ob_dlq_class_t cls;
        const char *code, *says;
    } cases[] = {
        {error_composed("CreateStack", 400, "LimitExceededException",
                        "Cannot exceed quota for StacksPerRegion: 2000"),
         OB_DLQ_PERMANENT, "LimitExceededException", "quota"},
        {error_composed("CreateStack", 400, "InsufficientCapabilitiesException",
                        "Requires capabilities : [CAPABILITY_NAMED_IAM]"),
         OB_DLQ_PERMANENT, "InsufficientCapabilitiesException", "CAPABILITY_NAMED_IAM"},
        {error_composed("CreateStack", 400, "ValidationError",
                        "Template format error: Unresolved resource dependencies [X] in the "
                        "Resources block of the template"),
         OB_DLQ_PERMANENT, "ValidationError", "Template format error"},
        {error_composed("CreateStack", 403, "AccessDenied",
                        "User: arn:aws:sts::123456789012:assumed-role/OrganizationAccountAccess"
                        "Role/onboard is not authorized to perform: cloudformation:CreateStack"),
         OB_DLQ_PERMANENT, "AccessDenied", "not authorized"},
        {error_fixture("CreateStack", 400, "cfn_throttling.xml"), OB_DLQ_RETRIES_EXHAUSTED,
         "Throttling", "Rate exceeded"},
        {error_composed("CreateStack", 503, "ServiceUnavailable", "Service is unavailable"),
         OB_DLQ_RETRIES_EXHAUSTED, "ServiceUnavailable", "unavailable"},
    };
    char *p = handoff("new", "req-18", NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_t r;
        start(&r, p, 2);
        step(&r, NULL);
        ob_aws_result_t gone =
            error_fixture("DescribeStacks", 400, "cfn_describe_stacks_does_not_exist.xml");
        char ext[33], tok[64];
        expect_create(step(&r, &gone), BUCKET, ext, tok);
        ob_step_t *s = step(&r, &cases[i].res);
        if (s->kind != OB_STEP_FAIL)
            fail_msg("case %zu: step kind %d", i, s->kind);
        assert_int_equal(s->fail_class, cases[i].cls);
        assert_string_equal(s->code, cases[i].code);
        assert_non_null(strstr(s->message, cases[i].says));
        assert_string_equal(s->aws_request_id, cases[i].res.aws.request_id);
        assert_int_equal(s->http_status, cases[i].res.status);
        expect_no_leak(s, ext);
        finish(&r);
    }
    free(p);
}

static void test_describe_and_update_errors(void **state)
{
    char *p = handoff("existing", "req-19", NULL);
    run_t r;
    /* Describe throttled through the HTTP retries; access denied. */
    ob_aws_result_t slow = error_fixture("DescribeStacks", 400, "cfn_throttling.xml");
    ob_aws_result_t denied = error_composed("DescribeStacks", 403, "AccessDenied",
                                            "not authorized to perform: "
                                            "cloudformation:DescribeStacks");
    ob_aws_result_t timeout;
    memset(&timeout, 0, sizeof(timeout));
    timeout.err = OB_ERR_TIMEOUT;
    timeout.retry_class = OB_RETRY_TIMEOUT;
    snprintf(timeout.errmsg, sizeof(timeout.errmsg), "cloudformation DescribeStacks: timeout");
    ob_aws_result_t *errs[] = {&slow, &denied, &timeout};
    ob_dlq_class_t cls[] = {OB_DLQ_RETRIES_EXHAUSTED, OB_DLQ_PERMANENT, OB_DLQ_RETRIES_EXHAUSTED};
    for (int i = 0; i < 3; i++) {
        start(&r, p, 2);
        step(&r, NULL);
        ob_step_t *s = step(&r, errs[i]);
        assert_int_equal(s->kind, OB_STEP_FAIL);
        assert_int_equal(s->fail_class, cls[i]);
        finish(&r);
    }

    char *x = stack_xml(STACK_ID, "CREATE_COMPLETE", NULL, EXT_OLD, "", BE_ROLE);
    ob_aws_result_t found = reply("DescribeStacks", x);
    /* UpdateStack: a ValidationError other than the two known ones is permanent. */
    start(&r, p, 2);
    step(&r, NULL);
    step(&r, &found);
    ob_aws_result_t bad = error_composed("UpdateStack", 400, "ValidationError",
                                         "Parameters: [BillingEnginePrincipal] must have values");
    ob_step_t *s = step(&r, &bad);
    assert_int_equal(s->kind, OB_STEP_FAIL);
    assert_int_equal(s->fail_class, OB_DLQ_PERMANENT);
    assert_string_equal(s->code, "ValidationError");
    assert_string_equal(s->state[1], STACK_ID);
    finish(&r);

    /* The stack is busy with someone else's operation: wait for it. */
    start(&r, p, 2);
    step(&r, NULL);
    step(&r, &found);
    ob_aws_result_t busy =
        error_composed("UpdateStack", 400, "ValidationError",
                       "Stack:" STACK_ID " is in UPDATE_IN_PROGRESS state and can not be updated.");
    expect_wait(step(&r, &busy));
    expect_describe(step(&r, NULL));
    finish(&r);

    /* Deleted between the describe and the update: created again with the
     * ExternalId the account already has. */
    start(&r, p, 2);
    step(&r, NULL);
    step(&r, &found);
    ob_aws_result_t gone =
        error_composed("UpdateStack", 400, "ValidationError", "Stack [" STACK "] does not exist");
    char ext[33], tok[64];
    expect_create(step(&r, &gone), "", ext, tok);
    assert_string_equal(ext, EXT_OLD);
    finish(&r);
    free(x);
    free(p);
}

static void test_stacks_that_need_a_person(void **state)
{
    const char *statuses[] = {"ROLLBACK_FAILED", "UPDATE_ROLLBACK_FAILED", "DELETE_FAILED",
                              "UPDATE_FAILED"};
    char *p = handoff("new", "req-20", NULL);
    for (int i = 0; i < 4; i++) {
        run_t r;
        start(&r, p, 2);
        step(&r, NULL);
        char *x =
            stack_xml(STACK_ID, statuses[i], "Role could not be deleted", EXT_OLD, BUCKET, NULL);
        ob_aws_result_t seen = reply("DescribeStacks", x);
        ob_step_t *s = step(&r, &seen);
        assert_int_equal(s->kind, OB_STEP_FAIL);
        assert_int_equal(s->fail_class, OB_DLQ_PERMANENT);
        assert_string_equal(s->code, "stack_failed");
        assert_non_null(strstr(s->message, statuses[i]));
        assert_non_null(strstr(s->message, "Role could not be deleted"));
        assert_string_equal(s->state[3], statuses[i]);
        expect_no_leak(s, EXT_OLD);
        free(x);
        finish(&r);
    }
    free(p);
}

static void test_unusable_stacks(void **state)
{
    char *p = handoff("new", "req-21", NULL);
    struct {
        const char *ext, *role, *code, *says;
    } cases[] = {
        {"****", BE_ROLE, "external_id", "NoEcho"},
        {NULL, BE_ROLE, "external_id", "no ExternalId parameter"},
        {EXT_OLD, NULL, "stack_output", "no RoleArn output"},
    };
    for (int i = 0; i < 3; i++) {
        run_t r;
        start(&r, p, 2);
        step(&r, NULL);
        char *x = stack_xml(STACK_ID, "CREATE_COMPLETE", NULL, cases[i].ext, BUCKET, cases[i].role);
        ob_aws_result_t seen = reply("DescribeStacks", x);
        ob_step_t *s = step(&r, &seen);
        if (i == 2) { /* found complete: the update first, then the output is missing */
            json_decref(expect_call(s, "UpdateStack"));
            ob_aws_result_t none =
                error_fixture("UpdateStack", 400, "cfn_update_stack_no_updates.xml");
            s = step(&r, &none);
        }
        assert_int_equal(s->kind, OB_STEP_FAIL);
        assert_int_equal(s->fail_class, OB_DLQ_PERMANENT);
        assert_string_equal(s->code, cases[i].code);
        assert_non_null(strstr(s->message, cases[i].says));
        expect_no_leak(s, EXT_OLD);
        free(x);
        finish(&r);
    }
    free(p);
}

static void test_polling_and_bad_replies_are_bounded(void **state)
{
    char *p = handoff("new", "req-22", NULL);
    run_t r;
    /* Ten-minute polls: after an hour in progress the stage gives up. */
    ob_config_t c = config(2);
    c.stack_poll_ms = 600000;
    assert_int_equal(start_cfg(&r, p, &c), OB_OK);
    char *x = stack_xml(STACK_ID, "CREATE_IN_PROGRESS", NULL, EXT_OLD, BUCKET, NULL);
    ob_aws_result_t busy = reply("DescribeStacks", x);
    int waits = 0;
    ob_step_t *s;
    for (;;) {
        step(&r, NULL);
        s = step(&r, &busy);
        if (s->kind != OB_STEP_WAIT)
            break;
        assert_int_equal(s->wait_ms, 600000);
        waits++;
    }
    assert_int_equal(waits, 6);
    assert_int_equal(s->kind, OB_STEP_FAIL);
    assert_int_equal(s->fail_class, OB_DLQ_RETRIES_EXHAUSTED);
    assert_string_equal(s->code, "stack_timeout");
    free(x);
    finish(&r);

    /* A 200 that is not a DescribeStacks reply: asked again, three times. */
    start(&r, p, 2);
    ob_aws_result_t junk = reply("DescribeStacks", "<html><body>proxy</body></html>");
    for (int i = 0; i < 3; i++) {
        expect_describe(step(&r, NULL));
        expect_wait(step(&r, &junk));
    }
    step(&r, NULL);
    s = step(&r, &junk);
    assert_int_equal(s->kind, OB_STEP_FAIL);
    assert_int_equal(s->fail_class, OB_DLQ_RETRIES_EXHAUSTED);
    assert_string_equal(s->code, "bad_reply");
    finish(&r);
    free(p);
}

/* ---- when to poll a stack we created ---- */

static uint64_t fake_now;

static uint64_t fake_clock(void)
{
    return fake_now;
}

/* A new account's run up to its CreateStack answered; returns that step. */
static ob_step_t *created(run_t *r, const char *request_id, char ext[33])
{
    char *p = handoff("new", request_id, NULL);
    start(r, p, 2);
    free(p);
    expect_describe(step(r, NULL));
    ob_aws_result_t gone =
        error_fixture("DescribeStacks", 400, "cfn_describe_stacks_does_not_exist.xml");
    char token[64];
    expect_create(step(r, &gone), BUCKET, ext, token);
    ob_aws_result_t ok = reply("CreateStack", stack_id_reply("CreateStack", STACK_ID));
    return step(r, &ok);
}

static void complete(run_t *r, const char *ext)
{
    expect_describe(step(r, NULL));
    char *x = stack_xml(STACK_ID, "CREATE_COMPLETE", NULL, ext, BUCKET, BE_ROLE);
    ob_aws_result_t done = reply("DescribeStacks", x);
    ob_stage_msg_t m = expect_done(step(r, &done), "new", ext, STACK_ID);
    free(x);
    ob_stage_msg_clear(&m);
}

#define NPROBES 32

static void test_polls_from_the_learned_create_time(void **state)
{
    (void)state;
    fake_now = 1000000;
    ob_stage_iam_timing_reset(iam_ctx, fake_clock);
    assert_int_equal(ob_stage_iam_first_poll_ms(iam_ctx), -1);
    /* The first 32 creates are probes: polled every stack.poll (100 ms). */
    static run_t probes[NPROBES];
    char pext[NPROBES][33];
    for (int i = 0; i < NPROBES; i++) {
        char id[32];
        snprintf(id, sizeof(id), "req-probe-%d", i);
        expect_wait(created(&probes[i], id, pext[i]));
        expect_describe(step(&probes[i], NULL));
        char *x = stack_xml(STACK_ID, "CREATE_IN_PROGRESS", NULL, pext[i], BUCKET, NULL);
        ob_aws_result_t busy = reply("DescribeStacks", x);
        expect_wait(step(&probes[i], &busy));
        free(x);
    }
    /* The 33rd, with no estimate yet: waits without a call, looking again
     * every stack.poll. */
    run_t late;
    char lext[33];
    fake_now += 500;
    expect_wait(created(&late, "req-late", lext));
    for (int i = 0; i < 5; i++) {
        fake_now += 100;
        expect_wait(step(&late, NULL));
    }
    /* Three probes finish after 20 s: the estimate is 20 s from then on. */
    fake_now = 1000000 + 20000;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ob_stage_iam_first_poll_ms(iam_ctx), -1);
        complete(&probes[i], pext[i]);
        finish(&probes[i]);
    }
    assert_int_equal(ob_stage_iam_first_poll_ms(iam_ctx), 20000);
    /* New creates take the free probe places. */
    static run_t fill[3];
    char fext[3][33];
    for (int i = 0; i < 3; i++)
        expect_wait(created(&fill[i], "req-fill", fext[i]));
    /* The waiting stack is 19.5 s old: half a second more, then it polls. */
    ob_step_t *s = step(&late, NULL);
    assert_int_equal(s->kind, OB_STEP_WAIT);
    assert_int_equal(s->wait_ms, 500);
    fake_now += 500;
    complete(&late, lext);
    finish(&late);
    /* A new create is first polled 20 s after it was answered, with one call. */
    run_t next;
    char next_ext[33];
    s = created(&next, "req-next", next_ext);
    assert_int_equal(s->kind, OB_STEP_WAIT);
    assert_int_equal(s->wait_ms, 20000);
    fake_now += 20000;
    complete(&next, next_ext);
    finish(&next);
    /* Slower than the estimate: polled every stack.poll after it. */
    s = created(&next, "req-slow", next_ext);
    assert_int_equal(s->wait_ms, 20000);
    fake_now += 20000;
    expect_describe(step(&next, NULL));
    char *x = stack_xml(STACK_ID, "CREATE_IN_PROGRESS", NULL, next_ext, BUCKET, NULL);
    ob_aws_result_t busy = reply("DescribeStacks", x);
    expect_wait(step(&next, &busy));
    free(x);
    fake_now += 100;
    complete(&next, next_ext);
    finish(&next);
    for (int i = 3; i < NPROBES; i++)
        finish(&probes[i]);
    for (int i = 0; i < 3; i++)
        finish(&fill[i]);

    /* Samples are taken from probes only, and the estimate is their 10th
     * percentile: 3 more probes at 30 s, then 4 at 10 s. */
    ob_stage_iam_timing_reset(iam_ctx, fake_clock);
    long long want[] = {30000, 30000, 30000, 10000, 10000, 10000, 10000};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        run_t r;
        char e[33];
        uint64_t t0 = fake_now;
        expect_wait(created(&r, "req-sample", e));
        fake_now = t0 + (uint64_t)want[i];
        complete(&r, e);
        finish(&r);
    }
    assert_int_equal(ob_stage_iam_first_poll_ms(iam_ctx), 10000);
    ob_stage_iam_timing_reset(iam_ctx, NULL);
}

static unsigned long long wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
}

/* Resumed from `progress` (a stack created 5 s ago, 20 s expected): the
 * first step waits the 15 s left, then the stack is handed on. */
static void expect_reencoded(run_t *r, const char *payload)
{
    ob_stage_msg_t m;
    ob_msg_error_t err;
    char *want = NULL, *got = NULL;
    size_t len = 0;
    assert_int_equal(ob_stage_parse(payload, strlen(payload), &m, &err), OB_OK);
    assert_int_equal(ob_stage_to_json(&m, &want, NULL, &err), OB_OK);
    ob_stage_msg_clear(&m);
    assert_int_equal(ob_stage_iam.reencode(r->st, &got, &len), OB_OK);
    assert_int_equal(len, strlen(got));
    assert_string_equal(got, want);
    free(want);
    free(got);
}

static void resumed_waits_15s(const char *payload, const char *progress, const char *ext)
{
    run_t r;
    start(&r, payload, 2);
    ob_stage_iam.resume(r.st, progress);
    ob_step_t *s = step(&r, NULL);
    assert_int_equal(s->kind, OB_STEP_WAIT);
    assert_true(s->wait_ms > 14000 && s->wait_ms <= 15000);
    /* The hand-off waits packed; asked for it (a dead letter now), the stage
     * gives it whole, and goes on from there. */
    expect_reencoded(&r, payload);
    fake_now += s->wait_ms;
    complete(&r, ext); /* handed on, no UpdateStack */
    finish(&r);
}

/* A new holder of a request (after a rebalance or a kill) continues what the
 * previous one recorded: the stack it created is its own (handed on when
 * complete, no UpdateStack), first described when creates take that long. */
static void test_resume_from_recorded_progress(void **state)
{
    (void)state;
    fake_now = 9000000;
    ob_stage_iam_timing_reset(iam_ctx, fake_clock);
    run_t a;
    char ext[33];
    ob_step_t *s = created(&a, "req-resume", ext);
    expect_wait(s);
    assert_non_null(s->progress);
    char progress[512];
    snprintf(progress, sizeof(progress), "%s", s->progress);
    assert_true(!strncmp(progress, "created ", 8));
    assert_non_null(strstr(progress, STACK_ID));
    assert_null(strstr(progress, ext)); /* never the ExternalId */
    /* Handed back later: the same stack and create time. */
    const char *snap = ob_stage_iam.snapshot(a.st);
    assert_non_null(snap);
    assert_int_equal(strncmp(snap, progress, strlen(progress) - 3), 0);
    finish(&a);

    /* Nothing learnt in this process yet: a probe, described at once, then
     * polled; seen in progress first, its create time is a sample (20 s). */
    char *p = handoff("new", "req-resume", NULL);
    run_t b;
    start(&b, p, 2);
    ob_stage_iam.resume(b.st, progress);
    expect_describe(step(&b, NULL));
    char *x = stack_xml(STACK_ID, "CREATE_IN_PROGRESS", NULL, ext, BUCKET, NULL);
    ob_aws_result_t busy = reply("DescribeStacks", x);
    expect_wait(step(&b, &busy));
    free(x);
    fake_now += 20000;
    complete(&b, ext); /* CREATE_COMPLETE: handed on, no UpdateStack */
    finish(&b);

    /* Nothing learnt here, but the creating process had an estimate (20 s,
     * in the progress): a stack created 5 s ago waits 15 s. */
    snprintf(progress, sizeof(progress), "created %llu %s 20000", wall_now_ms() - 5000, STACK_ID);
    resumed_waits_15s(p, progress, ext);
    assert_int_equal(ob_stage_iam_first_poll_ms(iam_ctx), -1);

    /* With an estimate (3 more probes at 20 s): a stack created 5 s ago waits
     * 15 s (and, polled at the estimate, is no sample). */
    for (int i = 0; i < 3; i++) {
        run_t r;
        char e[33];
        uint64_t t0 = fake_now;
        expect_wait(created(&r, "req-sample", e));
        fake_now = t0 + 20000;
        complete(&r, e);
        finish(&r);
    }
    assert_int_equal(ob_stage_iam_first_poll_ms(iam_ctx), 20000);
    snprintf(progress, sizeof(progress), "created %llu %s", wall_now_ms() - 5000, STACK_ID);
    resumed_waits_15s(p, progress, ext);
    assert_int_equal(ob_stage_iam_first_poll_ms(iam_ctx), 20000); /* no sample from it */

    /* An update recorded by the previous holder: UPDATE_COMPLETE of that
     * stack is handed on. Unreadable progress is ignored. */
    run_t d;
    start(&d, p, 2);
    ob_stage_iam.resume(d.st, "garbage");
    ob_stage_iam.resume(d.st, "updated 0 " STACK_ID);
    expect_describe(step(&d, NULL));
    x = stack_xml(STACK_ID, "UPDATE_COMPLETE", NULL, ext, BUCKET, BE_ROLE);
    ob_aws_result_t upd = reply("DescribeStacks", x);
    ob_stage_msg_t m = expect_done(step(&d, &upd), "new", ext, STACK_ID);
    ob_stage_msg_clear(&m);
    free(x);
    finish(&d);
    free(p);
    ob_stage_iam_timing_reset(iam_ctx, NULL);
}

/* A probe's first polls come at stack.poll/16, /8, /4, /2, then every
 * stack.poll (100 ms here, at least 10 ms); a stack that is not a probe is
 * first polled at the learned create time even when that is under
 * stack.poll. */
static void test_probe_polls_ramp_up(void **state)
{
    (void)state;
    fake_now = 5000000;
    ob_stage_iam_timing_reset(iam_ctx, fake_clock);
    run_t r;
    char e[33];
    ob_step_t *s = created(&r, "req-ramp", e);
    long long want[] = {10, 12, 25, 50, 100, 100, 100};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(s->kind, OB_STEP_WAIT);
        assert_int_equal(s->wait_ms, want[i]);
        fake_now += s->wait_ms;
        expect_describe(step(&r, NULL));
        char *x = stack_xml(STACK_ID, "CREATE_IN_PROGRESS", NULL, e, BUCKET, NULL);
        ob_aws_result_t busy = reply("DescribeStacks", x);
        s = step(&r, &busy);
        free(x);
    }
    complete(&r, e);
    finish(&r);
    /* Quick creates (30 ms) learnt from three probes... */
    ob_stage_iam_timing_reset(iam_ctx, fake_clock);
    for (int i = 0; i < 3; i++) {
        run_t q;
        char qe[33];
        expect_wait(created(&q, "req-quick", qe));
        fake_now += 30;
        complete(&q, qe);
        finish(&q);
    }
    assert_int_equal(ob_stage_iam_first_poll_ms(iam_ctx), 30);
    /* ...and a stack past the probes is first polled at 30 ms, not 100. */
    static run_t busy_probes[NPROBES];
    char bext[NPROBES][33];
    for (int i = 0; i < NPROBES; i++)
        expect_wait(created(&busy_probes[i], "req-probe", bext[i]));
    run_t late;
    char lext[33];
    s = created(&late, "req-late", lext);
    assert_int_equal(s->kind, OB_STEP_WAIT);
    assert_int_equal(s->wait_ms, 30);
    fake_now += 30;
    complete(&late, lext);
    finish(&late);
    for (int i = 0; i < NPROBES; i++)
        finish(&busy_probes[i]);
}

static void test_waiting_without_estimate_is_bounded(void **state)
{
    (void)state;
    fake_now = 5000000;
    ob_stage_iam_timing_reset(iam_ctx, fake_clock);
    static run_t probes[NPROBES];
    char pext[NPROBES][33];
    for (int i = 0; i < NPROBES; i++)
        expect_wait(created(&probes[i], "req-probe", pext[i]));
    run_t a, b;
    char aext[33], bext[33];
    expect_wait(created(&a, "req-a", aext));
    expect_wait(created(&b, "req-b", bext));
    fake_now += 100;
    expect_wait(step(&a, NULL));
    expect_wait(step(&b, NULL));
    /* A probe ends without a sample (its message finished elsewhere): the
     * next stack to look becomes a probe and polls at once. */
    finish(&probes[0]);
    expect_describe(step(&a, NULL));
    ob_step_clear(&a.s);
    expect_wait(step(&b, NULL));
    /* No estimate for two minutes: it polls anyway. */
    fake_now += 120000;
    expect_describe(step(&b, NULL));
    finish(&a);
    finish(&b);
    for (int i = 1; i < NPROBES; i++)
        finish(&probes[i]);
    ob_stage_iam_timing_reset(iam_ctx, NULL);
}

static void test_configuration_and_input(void **state)
{
    char *p = handoff("new", "req-23", NULL);
    struct {
        const char *principal, *stack, *says;
    } bad[] = {
        {"", STACK, "billing.principal (OB_BILLING_PRINCIPAL) is not set"},
        {"billing-engine", STACK, "is not an account id"},
        {"arn:aws:iam::11111111111:root", STACK, "is not an account id"},
        {"arn:aws:s3:::bucket", STACK, "is not an account id"},
        {PRINCIPAL, "9-starts-with-a-digit", "stack.name.prefix"},
        {PRINCIPAL, "has_underscore", "stack.name.prefix"},
        {PRINCIPAL, "a-stack-name-that-is-much-too-long-to-also-be-the-name-of-an-iam-role",
         "1-64"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        run_t r;
        snprintf(cfg_principal, sizeof(cfg_principal), "%s", bad[i].principal);
        snprintf(cfg_stack, sizeof(cfg_stack), "%s", bad[i].stack);
        ob_config_t c = config(2);
        assert_int_not_equal(start_cfg(&r, p, &c), OB_OK);
        assert_int_equal(r.s.kind, OB_STEP_FAIL);
        assert_int_equal(r.s.fail_class, OB_DLQ_PERMANENT);
        assert_string_equal(r.s.code, "config");
        if (!strstr(r.s.message, bad[i].says))
            fail_msg("case %zu: %s", i, r.s.message);
        assert_string_equal(r.plan.account_id, ACCT); /* the dead letter names the account */
        finish(&r);
    }
    const char *good[] = {"111111111111", "arn:aws:iam::111111111111:role/billing/Engine",
                          "arn:aws-cn:iam::111111111111:user/engine@corp"};
    for (size_t i = 0; i < 3; i++) {
        run_t r;
        snprintf(cfg_principal, sizeof(cfg_principal), "%s", good[i]);
        snprintf(cfg_stack, sizeof(cfg_stack), "%s", STACK);
        ob_config_t c = config(2);
        assert_int_equal(start_cfg(&r, p, &c), OB_OK);
        finish(&r);
    }
    snprintf(cfg_principal, sizeof(cfg_principal), "%s", PRINCIPAL);

    /* No configuration at all. */
    run_t r;
    r.st = calloc(1, ob_stage_iam.state_size);
    memset(&r.s, 0, sizeof(r.s));
    assert_int_not_equal(ob_stage_iam.parse(r.st, iam_ctx, NULL, p, strlen(p), &r.plan, &r.s),
                         OB_OK);
    assert_string_equal(r.s.code, "config");
    finish(&r);

    /* Bad input. */
    ob_config_t c = config(2);
    assert_int_not_equal(start_cfg(&r, "{not json", &c), OB_OK);
    assert_int_equal(r.s.fail_class, OB_DLQ_INVALID_INPUT);
    assert_string_equal(r.s.code, "not_json");
    finish(&r);
    /* A hand-off for another stage (cur) on the iam topic. */
    ob_stage_msg_t m;
    ob_msg_error_t me;
    assert_int_equal(ob_stage_parse(p, strlen(p), &m, &me), OB_OK);
    m.stage = OB_STAGE_CUR;
    m.has_report = 0;
    memset(&m.trace[OB_STAGE_CUR], 0, sizeof(m.trace[OB_STAGE_CUR]));
    char *cur = ob_test_handoff_json(&m);
    assert_int_not_equal(start_cfg(&r, cur, &c), OB_OK);
    assert_int_equal(r.s.fail_class, OB_DLQ_INVALID_INPUT);
    assert_string_equal(r.s.code, "wrong_stage");
    assert_string_equal(r.s.field, "/stage");
    finish(&r);
    free(cur);
    free(p);
}

/* The compiled-in template is the file in the repo, and has the shape the
 * stage relies on. */
static void test_template(void **state)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/../../workers/templates/billing-engine-role.json",
             OB_FIXTURES);
    char *file = ob_test_read_file(path, NULL);
    assert_non_null(file);
    assert_string_equal(file, ob_iam_template);
    free(file);
    json_error_t je;
    json_t *t = json_loads(ob_iam_template, JSON_REJECT_DUPLICATES, &je);
    if (!t)
        fail_msg("template: line %d: %s", je.line, je.text);
    assert_true(strlen(ob_iam_template) <= 51200);
    assert_true(strlen(json_string_value(json_object_get(t, "Description"))) <= 1024);
    json_t *params = json_object_get(t, "Parameters");
    assert_int_equal(json_object_size(params), 3);
    json_t *ext = json_object_get(params, "ExternalId");
    assert_true(json_is_false(json_object_get(ext, "NoEcho")));
    assert_non_null(json_object_get(json_object_get(params, "CurBucket"), "Default"));
    assert_non_null(json_object_get(params, "BillingEnginePrincipal"));
    json_t *role = json_object_get(json_object_get(t, "Resources"), "BillingEngineRole");
    assert_string_equal(json_string_value(json_object_get(role, "Type")), "AWS::IAM::Role");
    json_t *props = json_object_get(role, "Properties");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(props, "RoleName"), "Ref")),
        "AWS::StackName");
    json_t *trust = json_array_get(
        json_object_get(json_object_get(props, "AssumeRolePolicyDocument"), "Statement"), 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(trust, "Principal"), "AWS"), "Ref")),
                        "BillingEnginePrincipal");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(json_object_get(trust, "Condition"), "StringEquals"),
                            "sts:ExternalId"),
            "Ref")),
        "ExternalId");
    assert_non_null(json_object_get(json_object_get(t, "Outputs"), "RoleArn"));
    assert_non_null(json_object_get(json_object_get(t, "Outputs"), "RoleName"));
    /* Least privilege: no write action anywhere. */
    char *flat = json_dumps(json_object_get(props, "Policies"), JSON_COMPACT);
    const char *writes[] = {"Put", "Create", "Delete", "Update", "\"*\",\"Resource\"", "s3:*"};
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++)
        assert_null(strstr(flat, writes[i]));
    free(flat);
    json_decref(t);
}

int main(void)
{
    iam_ctx = ob_stage_iam.ctx_new();
    ob_stage_iam_timing_reset(iam_ctx, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_account_create_and_poll),
        cmocka_unit_test(test_external_ids_are_random_and_tokens_deterministic),
        cmocka_unit_test(test_existing_account_found_complete_no_updates),
        cmocka_unit_test(test_existing_account_with_bucket_updates_and_polls),
        cmocka_unit_test(test_existing_account_without_stack_creates),
        cmocka_unit_test(test_in_progress_at_start_is_polled),
        cmocka_unit_test(test_update_rolled_back),
        cmocka_unit_test(test_rollback_redo_then_success),
        cmocka_unit_test(test_redo_limit),
        cmocka_unit_test(test_already_exists_race),
        cmocka_unit_test(test_stale_tokens),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_describe_and_update_errors),
        cmocka_unit_test(test_stacks_that_need_a_person),
        cmocka_unit_test(test_unusable_stacks),
        cmocka_unit_test(test_polling_and_bad_replies_are_bounded),
        cmocka_unit_test(test_polls_from_the_learned_create_time),
        cmocka_unit_test(test_probe_polls_ramp_up),
        cmocka_unit_test(test_waiting_without_estimate_is_bounded),
        cmocka_unit_test(test_resume_from_recorded_progress),
        cmocka_unit_test(test_configuration_and_input),
        cmocka_unit_test(test_template),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    ob_stage_iam.ctx_free(iam_ctx);
    return failed;
}
