/*
 * The connect stage as pure logic, driven with recorded STS and Billing
 * Engine replies: the AssumeRole it asks for (the stack's role, its
 * ExternalId, signed as the fleet, the request's region); AccessDenied tried
 * again connect.retries times connect.retry.wait apart and then a permanent
 * failure that names the role and the principal but never the ExternalId;
 * throttling and other AWS errors after the HTTP retries; the connected event
 * and the state it records; the signed POST (the signature recomputed here),
 * 2xx, a 400 refusal quoting the reply, 503 and timeouts exhausted, 408
 * tried again by the stage; no billing.url; bad billing settings and bad
 * input. The billing secret must never appear in anything the stage writes.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ob_crypto.h"
#include "stages.h"
#include "testutil.h"

#define ACCT      "123456789012"
#define BE_ROLE   "arn:aws:iam::" ACCT ":role/BillingEngineReadOnly"
#define EXT_ID    "4f1c2b9e8d7a6f5e4d3c2b1a09f8e7d6"
#define STACK_ID  "arn:aws:cloudformation:eu-west-1:" ACCT ":stack/billing-engine-access/5b918d10"
#define SECRET    "whsec-Sup3r-s3cret-do-not-print"
#define URL       "https://billing.example.com/hooks/onboard?token=t0ken"
#define PRINCIPAL "arn:aws:iam::999999999999:root"

/* ---- configuration ---- */

static const char *env_url, *env_secret, *env_retries, *env_wait, *env_attempts;

static const char *env_get(const char *name, void *ctx)
{
    if (!strcmp(name, "OB_BILLING_URL"))
        return env_url;
    if (!strcmp(name, "OB_BILLING_SECRET"))
        return env_secret;
    if (!strcmp(name, "OB_BILLING_PRINCIPAL"))
        return PRINCIPAL;
    if (!strcmp(name, "OB_CONNECT_RETRIES"))
        return env_retries;
    if (!strcmp(name, "OB_CONNECT_RETRY_WAIT"))
        return env_wait;
    if (!strcmp(name, "OB_AWS_MAX_ATTEMPTS"))
        return env_attempts;
    return NULL;
}

static void load_cfg(ob_config_t *cfg, const char *url, const char *secret, const char *retries)
{
    env_url = url;
    env_secret = secret;
    env_retries = retries;
    env_wait = "250ms";
    env_attempts = "3";
    char err[512];
    if (ob_config_load(cfg, NULL, env_get, NULL, err, sizeof(err)) != OB_OK)
        fail_msg("config: %s", err);
}

/* ---- input ---- */

/* A connect hand-off built with the codec: mode new (bucket, report and
 * stack results) or existing (stack only). */
static char *handoff(const char *mode)
{
    char req[1024];
    snprintf(req, sizeof(req),
             "{\"schema\":\"onboard.request/1\",\"request_id\":\"req-7\",\"account_id\":\"" ACCT
             "\",\"cloud\":\"aws\",\"mode\":\"%s\",\"region\":\"eu-west-1\",\"role_arn\":"
             "\"arn:aws:iam::" ACCT ":role/OnboardingAccess\"}",
             mode);
    ob_stage_msg_t m;
    ob_test_handoff_init(&m, req, OB_STAGE_CONNECT);
    ob_test_handoff_stack(&m, STACK_ID, BE_ROLE, EXT_ID);
    ob_test_handoff_trace(&m, OB_STAGE_IAM, "iam", "2025-06-02T10:00:00.120Z",
                          "2025-06-02T10:03:40.900Z");
    return ob_test_handoff_json(&m);
}

/* ---- running the stage ---- */

typedef struct run_s {
    void *st;
    ob_config_t cfg;
    ob_job_plan_t plan;
    ob_step_t s;
    char *payload;
} run_t;

static ob_err_t start_with(run_t *r, const char *payload)
{
    memset(&r->s, 0, sizeof(r->s));
    memset(&r->plan, 0, sizeof(r->plan));
    r->st = calloc(1, ob_stage_connect.state_size);
    return ob_stage_connect.parse(r->st, NULL, &r->cfg, payload, strlen(payload), &r->plan, &r->s);
}

static void start(run_t *r, const char *mode, const char *url, const char *secret,
                  const char *retries)
{
    load_cfg(&r->cfg, url, secret, retries);
    r->payload = handoff(mode);
    assert_int_equal(start_with(r, r->payload), OB_OK);
}

/* Nothing the stage writes may hold the billing secret; texts never hold
 * the ExternalId. */
static void no_secrets(const ob_step_t *s)
{
    assert_null(strstr(s->message, SECRET));
    assert_null(strstr(s->message, EXT_ID));
    assert_null(strstr(s->message, "t0ken"));
    if (s->emit)
        assert_null(strstr(s->emit, SECRET));
    if (s->http_body.data)
        assert_null(strstr(s->http_body.data, SECRET));
    for (size_t i = 0; i < s->http_headers.n; i++)
        assert_null(strstr(s->http_headers.v[i].value, SECRET));
}

static void step(run_t *r, const ob_aws_result_t *res)
{
    ob_step_clear(&r->s);
    ob_stage_connect.step(r->st, res, &r->s);
    no_secrets(&r->s);
}

static void finish(run_t *r)
{
    ob_step_clear(&r->s);
    ob_stage_connect.clear(r->st);
    free(r->st);
    free(r->payload);
    ob_config_free(&r->cfg);
}

/* ---- recorded replies ---- */

/* After the AWS STS API Reference AssumeRole example. */
static const char ASSUME_OK[] =
    "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
    "  <AssumeRoleResult>\n"
    "    <AssumedRoleUser>\n"
    "      <Arn>arn:aws:sts::" ACCT ":assumed-role/BillingEngineReadOnly/billing-engine-verify"
    "</Arn>\n"
    "      <AssumedRoleId>ARO123EXAMPLE123:billing-engine-verify</AssumedRoleId>\n"
    "    </AssumedRoleUser>\n"
    "    <Credentials>\n"
    "      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>\n"
    "      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>\n"
    "      <SessionToken>AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQW"
    "</SessionToken>\n"
    "      <Expiration>2019-11-09T13:34:41Z</Expiration>\n"
    "    </Credentials>\n"
    "    <PackedPolicySize>6</PackedPolicySize>\n"
    "  </AssumeRoleResult>\n"
    "  <ResponseMetadata>\n"
    "    <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>\n"
    "  </ResponseMetadata>\n"
    "</AssumeRoleResponse>\n";

static ob_aws_result_t ok_body(const char *body)
{
    ob_aws_result_t res;
    memset(&res, 0, sizeof(res));
    res.err = OB_OK;
    res.status = 200;
    res.attempts = 1;
    if (body)
        ob_buf_puts(&res.body, body);
    return res;
}

static ob_aws_result_t aws_error(long status, const char *code, const char *msg,
                                 ob_retry_class_t cls)
{
    ob_aws_result_t res;
    memset(&res, 0, sizeof(res));
    res.err = OB_ERR_AWS;
    res.status = status;
    res.retry_class = cls;
    res.attempts = cls == OB_RETRY_NO ? 1 : 3;
    snprintf(res.aws.code, sizeof(res.aws.code), "%s", code);
    snprintf(res.aws.message, sizeof(res.aws.message), "%s", msg);
    snprintf(res.aws.request_id, sizeof(res.aws.request_id), "RID-%s", code);
    snprintf(res.errmsg, sizeof(res.errmsg), "sts AssumeRole: %s: %s (HTTP %ld)", code, msg,
             status);
    return res;
}

static ob_aws_result_t denied(void)
{
    return aws_error(403, "AccessDenied",
                     "User: arn:aws:iam::111111111111:user/fleet is not authorized to perform: "
                     "sts:AssumeRole on resource: " BE_ROLE,
                     OB_RETRY_NO);
}

/* What the runtime hands back for an HTTP step that did not get a 2xx. */
static ob_aws_result_t http_status(long status, const char *body, ob_retry_class_t cls,
                                   int attempts)
{
    ob_aws_result_t res;
    memset(&res, 0, sizeof(res));
    res.err = OB_ERR_HTTP;
    res.status = status;
    res.retry_class = cls;
    res.attempts = attempts;
    res.op = "HTTP";
    snprintf(res.errmsg, sizeof(res.errmsg), "POST %s: HTTP %ld", URL, status);
    if (body)
        ob_buf_puts(&res.body, body);
    return res;
}

/* ---- checks ---- */

static void expect_assume(const ob_step_t *s)
{
    assert_int_equal(s->kind, OB_STEP_CALL);
    assert_int_equal(s->req.svc, OB_SVC_STS);
    assert_string_equal(s->req.op, "AssumeRole");
    assert_string_equal(s->req.method, "POST");
    assert_int_equal(s->as_fleet, 1);
    assert_string_equal(s->region, "eu-west-1");
    const char *b = s->req.body.data;
    assert_non_null(strstr(b, "Action=AssumeRole"));
    assert_non_null(
        strstr(b, "&RoleArn=arn%3Aaws%3Aiam%3A%3A" ACCT "%3Arole%2FBillingEngineReadOnly"));
    assert_non_null(strstr(b, "&RoleSessionName=billing-engine-verify"));
    assert_non_null(strstr(b, "&ExternalId=" EXT_ID));
    assert_non_null(strstr(b, "&DurationSeconds=900"));
}

/* The DONE step: the event on the connected topic and the state written. */
static void expect_done(const ob_step_t *s, const char *mode, int attempts)
{
    assert_int_equal(s->kind, OB_STEP_DONE);
    assert_string_equal(s->emit_topic, "connected");
    assert_string_equal(s->emit_schema, OB_SCHEMA_CONNECTED);
    ob_connected_t c;
    ob_msg_error_t me;
    if (ob_connected_parse(s->emit, strlen(s->emit), &c, &me) != OB_OK)
        fail_msg("event: %s", me.message);
    char key[OB_IDEMPOTENCY_LEN];
    ob_report_result_t rep = {.name = "billing-engine-cur",
                              .bucket = "billing-cur-" ACCT "-eu-west-1",
                              .prefix = "CUR",
                              .region = "eu-west-1"};
    ob_connected_key(ACCT, BE_ROLE, EXT_ID, c.has_report ? &rep : NULL, key);
    assert_string_equal(c.idempotency_key, key);
    assert_string_equal(c.account_id, ACCT);
    assert_string_equal(c.role_arn, BE_ROLE);
    assert_string_equal(c.external_id, EXT_ID);
    assert_string_equal(c.stack_id, STACK_ID);
    assert_string_equal(ob_mode_name(c.mode), mode);
    assert_int_equal(c.has_report, !strcmp(mode, "new"));
    assert_true(c.trace[OB_STAGE_IAM].present);
    assert_true(c.trace[OB_STAGE_CONNECT].present);
    assert_int_equal(c.trace[OB_STAGE_CONNECT].attempts, attempts);
    /* State: status connected, the role and when. */
    const char *want[][2] = {{"status", "connected"},
                             {"role_arn", BE_ROLE},
                             {"connected_at", c.connected_at},
                             {"idempotency_key", key},
                             {"stack_id", STACK_ID}};
    for (size_t w = 0; w < 5; w++) {
        int found = 0;
        for (size_t i = 0; i + 1 < OB_STEP_STATE_MAX && s->state[i]; i += 2)
            if (!strcmp(s->state[i], want[w][0])) {
                assert_string_equal(s->state[i + 1], want[w][1]);
                found = 1;
            }
        if (!found)
            fail_msg("state field %s missing", want[w][0]);
    }
    ob_connected_clear(&c);
}

/* ---- AssumeRole ---- */

static void test_verify_without_url(void **state)
{
    const char *modes[] = {"new", "existing"};
    for (int i = 0; i < 2; i++) {
        run_t r;
        start(&r, modes[i], "", "", "2");
        assert_string_equal(r.plan.account_id, ACCT);
        assert_string_equal(r.plan.request_id, "req-7");
        assert_string_equal(r.plan.region, "eu-west-1");
        step(&r, NULL);
        expect_assume(&r.s);
        ob_aws_result_t ok = ok_body(ASSUME_OK);
        step(&r, &ok);
        ob_buf_free(&ok.body);
        expect_done(&r.s, modes[i], 1);
        finish(&r);
    }
}

static void test_access_denied_then_success(void **state)
{
    run_t r;
    start(&r, "new", "", "", "2");
    step(&r, NULL);
    expect_assume(&r.s);
    ob_aws_result_t d = denied();
    step(&r, &d);
    assert_int_equal(r.s.kind, OB_STEP_WAIT);
    assert_int_equal(r.s.wait_ms, 250);
    step(&r, NULL);
    expect_assume(&r.s);
    ob_aws_result_t ok = ok_body(ASSUME_OK);
    step(&r, &ok);
    ob_buf_free(&ok.body);
    expect_done(&r.s, "new", 2);
    finish(&r);
}

static void test_access_denied_forever(void **state)
{
    run_t r;
    start(&r, "new", "", "", "2");
    int calls = 0, waits = 0;
    ob_aws_result_t d = denied();
    /* An AWS message that quoted the ExternalId must not leak it. */
    snprintf(d.aws.message, sizeof(d.aws.message),
             "User: arn:aws:iam::111111111111:user/fleet is not authorized (ExternalId " EXT_ID
             ")");
    step(&r, NULL);
    while (r.s.kind != OB_STEP_FAIL) {
        if (r.s.kind == OB_STEP_CALL) {
            expect_assume(&r.s);
            calls++;
            step(&r, &d);
        } else {
            assert_int_equal(r.s.kind, OB_STEP_WAIT);
            assert_int_equal(r.s.wait_ms, 250);
            waits++;
            step(&r, NULL);
        }
        assert_true(calls <= 10);
    }
    assert_int_equal(calls, 3); /* the first try and connect.retries = 2 more */
    assert_int_equal(waits, 2);
    assert_int_equal(r.s.fail_class, OB_DLQ_PERMANENT);
    assert_string_equal(r.s.code, "AccessDenied");
    assert_string_equal(r.s.field, "/results/stack/role_arn");
    assert_string_equal(r.s.aws_request_id, "RID-AccessDenied");
    assert_int_equal(r.s.http_status, 403);
    assert_non_null(strstr(r.s.message, "role " BE_ROLE " does not trust the Billing Engine "
                                        "principal " PRINCIPAL " with this ExternalId"));
    assert_non_null(strstr(r.s.message, "denied 3 times over 500 ms"));
    assert_non_null(strstr(r.s.message, "[ExternalId]"));
    finish(&r);

    /* connect.retries 0: the first AccessDenied is final. */
    start(&r, "existing", "", "", "0");
    step(&r, NULL);
    d = denied();
    step(&r, &d);
    assert_int_equal(r.s.kind, OB_STEP_FAIL);
    assert_string_equal(r.s.code, "AccessDenied");
    assert_non_null(strstr(r.s.message, "denied 1 time over 0 ms"));
    finish(&r);
}

static void test_aws_errors(void **state)
{
    struct {
        ob_aws_result_t res;
        ob_dlq_class_t cls;
        const char *code;
    } cases[] = {
        {aws_error(400, "Throttling", "Rate exceeded", OB_RETRY_THROTTLE), OB_DLQ_RETRIES_EXHAUSTED,
         "Throttling"},
        {aws_error(503, "ServiceUnavailable", "try later", OB_RETRY_TRANSIENT),
         OB_DLQ_RETRIES_EXHAUSTED, "ServiceUnavailable"},
        {aws_error(400, "ValidationError", "1 validation error detected: ExternalId " EXT_ID,
                   OB_RETRY_NO),
         OB_DLQ_PERMANENT, "ValidationError"},
        {aws_error(403, "RegionDisabledException", "STS is not activated in this region",
                   OB_RETRY_NO),
         OB_DLQ_PERMANENT, "RegionDisabledException"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_t r;
        start(&r, "new", "", "", "2");
        step(&r, NULL);
        step(&r, &cases[i].res);
        assert_int_equal(r.s.kind, OB_STEP_FAIL);
        assert_int_equal(r.s.fail_class, cases[i].cls);
        assert_string_equal(r.s.code, cases[i].code);
        assert_int_equal(r.s.http_status, (int)cases[i].res.status);
        finish(&r);
    }

    /* An error text whose ExternalId would be cut in half by the reason's size. */
    {
        run_t r;
        start(&r, "new", "", "", "2");
        step(&r, NULL);
        ob_aws_result_t v = aws_error(400, "ValidationError", "x", OB_RETRY_NO);
        memset(v.errmsg, 'z', 505);
        snprintf(v.errmsg + 505, sizeof(v.errmsg) - 505, "%s", EXT_ID);
        step(&r, &v);
        assert_int_equal(r.s.kind, OB_STEP_FAIL);
        assert_null(strstr(r.s.message, "4f1c2b"));
        finish(&r);
    }

    /* A transport failure after the HTTP retries. */
    run_t r;
    start(&r, "new", "", "", "2");
    step(&r, NULL);
    ob_aws_result_t t;
    memset(&t, 0, sizeof(t));
    t.err = OB_ERR_TIMEOUT;
    t.retry_class = OB_RETRY_TIMEOUT;
    t.attempts = 3;
    snprintf(t.errmsg, sizeof(t.errmsg), "sts AssumeRole: timeout after 3 attempts");
    step(&r, &t);
    assert_int_equal(r.s.kind, OB_STEP_FAIL);
    assert_int_equal(r.s.fail_class, OB_DLQ_RETRIES_EXHAUSTED);
    finish(&r);
}

static void test_unexpected_replies(void **state)
{
    const char *bodies[] = {
        "<html>proxy error</html>",
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        "<AssumeRoleResult><PackedPolicySize>6</PackedPolicySize></AssumeRoleResult>"
        "</AssumeRoleResponse>",
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        "<AssumeRoleResult><AssumedRoleUser><Arn>arn:aws:sts::999999999999:assumed-role/X/"
        "billing-engine-verify</Arn></AssumedRoleUser><Credentials><AccessKeyId>ASIA1"
        "</AccessKeyId></Credentials></AssumeRoleResult></AssumeRoleResponse>",
    };
    for (size_t i = 0; i < 3; i++) {
        run_t r;
        start(&r, "new", "", "", "2");
        step(&r, NULL);
        ob_aws_result_t res = ok_body(bodies[i]);
        step(&r, &res);
        ob_buf_free(&res.body);
        assert_int_equal(r.s.kind, OB_STEP_FAIL);
        assert_string_equal(r.s.code, "unexpected_reply");
        assert_int_equal(r.s.fail_class, OB_DLQ_RETRIES_EXHAUSTED);
        finish(&r);
    }
}

/* ---- the POST ---- */

/* Check the HTTP step as a receiver would; returns the body (owned by s). */
static const char *expect_signed_post(const ob_step_t *s)
{
    assert_int_equal(s->kind, OB_STEP_HTTP);
    assert_string_equal(s->http_method, "POST");
    assert_string_equal(s->http_url, URL);
    assert_string_equal(ob_hdrs_get(&s->http_headers, "Content-Type"), "application/json");
    const char *ts = ob_hdrs_get(&s->http_headers, "X-Onboard-Timestamp");
    const char *key = ob_hdrs_get(&s->http_headers, "X-Onboard-Idempotency-Key");
    const char *sig = ob_hdrs_get(&s->http_headers, "X-Onboard-Signature");
    assert_non_null(ts);
    assert_non_null(key);
    assert_non_null(sig);
    long long t = atoll(ts);
    long long now = (long long)time(NULL);
    assert_true(t >= now - 5 && t <= now + 1);
    /* v1= hex HMAC-SHA256(secret, ts "." body) */
    char want[OB_TEST_SIGNATURE_LEN];
    ob_test_billing_signature(SECRET, ts, s->http_body.data, s->http_body.len, want);
    assert_string_equal(sig, want);
    /* The body is the event, and the key header is its key. */
    ob_connected_t c;
    ob_msg_error_t me;
    assert_int_equal(ob_connected_parse(s->http_body.data, s->http_body.len, &c, &me), OB_OK);
    assert_string_equal(key, c.idempotency_key);
    ob_connected_clear(&c);
    return s->http_body.data;
}

static void test_post_signed_2xx(void **state)
{
    long statuses[] = {200, 202, 204};
    for (int i = 0; i < 3; i++) {
        run_t r;
        start(&r, "new", URL, SECRET, "2");
        step(&r, NULL);
        ob_aws_result_t ok = ok_body(ASSUME_OK);
        step(&r, &ok);
        ob_buf_free(&ok.body);
        char *posted = strdup(expect_signed_post(&r.s));
        ob_aws_result_t res = ok_body(NULL);
        res.status = statuses[i];
        step(&r, &res);
        expect_done(&r.s, "new", 1);
        /* The topic gets exactly the bytes the Billing Engine got. */
        assert_string_equal(r.s.emit, posted);
        free(posted);
        finish(&r);
    }
}

/* A new account's event POSTed and refused with this status and reply. */
static void refused_with(run_t *r, long status, const char *body)
{
    start(r, "new", URL, SECRET, "2");
    step(r, NULL);
    ob_aws_result_t ok = ok_body(ASSUME_OK);
    step(r, &ok);
    ob_buf_free(&ok.body);
    ob_aws_result_t res = http_status(status, body, OB_RETRY_NO, 1);
    step(r, &res);
    ob_buf_free(&res.body);
    assert_string_equal(r->s.code, "billing_refused");
}

static void test_post_refused(void **state)
{
    run_t r;
    start(&r, "new", URL, SECRET, "2");
    step(&r, NULL);
    ob_aws_result_t ok = ok_body(ASSUME_OK);
    step(&r, &ok);
    ob_buf_free(&ok.body);
    expect_signed_post(&r.s);
    /* A reply that echoes the ExternalId and goes on for 600 bytes. */
    char body[700];
    int n = snprintf(body, sizeof(body), "{\"error\":\"unknown account\",\n\"external_id\":\"%s\",",
                     EXT_ID);
    memset(body + n, 'x', sizeof(body) - (size_t)n - 2);
    body[sizeof(body) - 2] = 'Z';
    body[sizeof(body) - 1] = '\0';
    ob_aws_result_t res = http_status(400, body, OB_RETRY_NO, 1);
    step(&r, &res);
    ob_buf_free(&res.body);
    assert_int_equal(r.s.kind, OB_STEP_FAIL);
    assert_int_equal(r.s.fail_class, OB_DLQ_PERMANENT);
    assert_string_equal(r.s.code, "billing_refused");
    assert_int_equal(r.s.http_status, 400);
    assert_non_null(strstr(r.s.message, "the Billing Engine at https://billing.example.com "
                                        "refused the event: HTTP 400: {\"error\":\"unknown "
                                        "account\", \"external_id\":\"[ExternalId]\""));
    assert_null(strstr(r.s.message, "Z")); /* cut at 200 bytes of the reply */
    assert_null(strstr(r.s.message, "/hooks"));
    assert_null(strchr(r.s.message, '\n'));
    finish(&r);

    /* A reply that spells it otherwise: upper case, percent-escaped, as JSON
     * and XML escapes. None of them gets through. */
    char upper[40], pct[120], json[240], xml[240];
    const char *e = EXT_ID;
    size_t u = 0, p = 0, jn = 0, x = 0;
    for (size_t i = 0; e[i]; i++) {
        upper[u++] = (char)toupper((unsigned char)e[i]);
        p += (size_t)snprintf(pct + p, sizeof(pct) - p, "%%%02X", (unsigned char)e[i]);
        jn += (size_t)snprintf(json + jn, sizeof(json) - jn, "\\u%04x", (unsigned char)e[i]);
        x += (size_t)snprintf(xml + x, sizeof(xml) - x, i % 2 ? "&#%d;" : "&#x%X;",
                              (unsigned char)e[i]);
    }
    upper[u] = '\0';
    snprintf(body, sizeof(body), "a=%s b=%s c=%s", upper, pct, json);
    refused_with(&r, 400, body);
    assert_non_null(strstr(r.s.message, "a=[ExternalId] b=[ExternalId] c=[ExternalId]"));
    finish(&r);
    snprintf(body, sizeof(body), "<Id>%s</Id>", xml);
    refused_with(&r, 400, body);
    assert_non_null(strstr(r.s.message, "<Id>[ExternalId]</Id>"));
    finish(&r);

    /* An ExternalId that straddles the 200-byte cut leaves no piece behind. */
    memset(body, 'y', 190);
    snprintf(body + 190, sizeof(body) - 190, "%s and more", EXT_ID);
    refused_with(&r, 422, body);
    assert_null(strstr(r.s.message, "4f1c2b9e"));
    assert_non_null(strstr(r.s.message, "yyyy[ExternalI"));
    finish(&r);

    /* Other 4xx are refusals too; 3xx as well (billing.url must be the endpoint). */
    long refused[] = {401, 403, 404, 409, 422, 301};
    for (int i = 0; i < 6; i++) {
        start(&r, "existing", URL, SECRET, "2");
        step(&r, NULL);
        ok = ok_body(ASSUME_OK);
        step(&r, &ok);
        ob_buf_free(&ok.body);
        res = http_status(refused[i], NULL, OB_RETRY_NO, 1);
        step(&r, &res);
        assert_int_equal(r.s.kind, OB_STEP_FAIL);
        assert_int_equal(r.s.fail_class, OB_DLQ_PERMANENT);
        assert_string_equal(r.s.code, "billing_refused");
        assert_int_equal(r.s.http_status, (int)refused[i]);
        finish(&r);
    }
}

static void test_post_exhausted(void **state)
{
    /* 503 (and 429) retried by the runtime until aws.max.attempts. */
    long statuses[] = {503, 429};
    for (int i = 0; i < 2; i++) {
        run_t r;
        start(&r, "new", URL, SECRET, "2");
        step(&r, NULL);
        ob_aws_result_t ok = ok_body(ASSUME_OK);
        step(&r, &ok);
        ob_buf_free(&ok.body);
        ob_aws_result_t res = http_status(statuses[i], "busy", OB_RETRY_TRANSIENT, 3);
        step(&r, &res);
        ob_buf_free(&res.body);
        assert_int_equal(r.s.kind, OB_STEP_FAIL);
        assert_int_equal(r.s.fail_class, OB_DLQ_RETRIES_EXHAUSTED);
        assert_string_equal(r.s.code, "billing_unavailable");
        assert_int_equal(r.s.http_status, (int)statuses[i]);
        char want[128];
        snprintf(want, sizeof(want), "did not take the event after 3 attempts: HTTP %ld: busy",
                 statuses[i]);
        assert_non_null(strstr(r.s.message, want));
        finish(&r);
    }

    /* A timeout: the reason has curl's words but not the URL's path or query. */
    run_t r;
    start(&r, "new", URL, SECRET, "2");
    step(&r, NULL);
    ob_aws_result_t ok = ok_body(ASSUME_OK);
    step(&r, &ok);
    ob_buf_free(&ok.body);
    ob_aws_result_t t;
    memset(&t, 0, sizeof(t));
    t.err = OB_ERR_TIMEOUT;
    t.retry_class = OB_RETRY_TIMEOUT;
    t.attempts = 3;
    snprintf(t.errmsg, sizeof(t.errmsg), "POST %s: Operation timed out after 30000 ms", URL);
    step(&r, &t);
    assert_int_equal(r.s.kind, OB_STEP_FAIL);
    assert_int_equal(r.s.fail_class, OB_DLQ_RETRIES_EXHAUSTED);
    assert_string_equal(r.s.code, "billing_unavailable");
    assert_non_null(strstr(r.s.message, "https://billing.example.com did not take the event "
                                        "after 3 attempts: Operation timed out after 30000 ms"));
    finish(&r);
}

static void test_post_408_retried(void **state)
{
    /* 408 then 200: a second POST, signed again. */
    run_t r;
    start(&r, "new", URL, SECRET, "2");
    step(&r, NULL);
    ob_aws_result_t ok = ok_body(ASSUME_OK);
    step(&r, &ok);
    ob_buf_free(&ok.body);
    expect_signed_post(&r.s);
    ob_aws_result_t slow = http_status(408, NULL, OB_RETRY_NO, 1);
    step(&r, &slow);
    assert_int_equal(r.s.kind, OB_STEP_WAIT);
    assert_int_equal(r.s.wait_ms, 250);
    step(&r, NULL);
    expect_signed_post(&r.s);
    ob_aws_result_t fine = ok_body(NULL);
    step(&r, &fine);
    expect_done(&r.s, "new", 1);
    finish(&r);

    /* 408 every time: aws.max.attempts POSTs, then retries exhausted. */
    start(&r, "new", URL, SECRET, "2");
    step(&r, NULL);
    ok = ok_body(ASSUME_OK);
    step(&r, &ok);
    ob_buf_free(&ok.body);
    int posts = 0;
    while (r.s.kind == OB_STEP_HTTP || r.s.kind == OB_STEP_WAIT) {
        if (r.s.kind == OB_STEP_HTTP) {
            expect_signed_post(&r.s);
            posts++;
            step(&r, &slow);
        } else {
            step(&r, NULL);
        }
        assert_true(posts <= 10);
    }
    assert_int_equal(posts, 3);
    assert_int_equal(r.s.kind, OB_STEP_FAIL);
    assert_int_equal(r.s.fail_class, OB_DLQ_RETRIES_EXHAUSTED);
    assert_int_equal(r.s.http_status, 408);
    assert_non_null(strstr(r.s.message, "after 3 attempts: HTTP 408"));
    finish(&r);
}

/* ---- settings and input ---- */

static void test_bad_settings(void **state)
{
    struct {
        const char *url, *secret, *why;
    } cases[] = {
        {"http://billing.example.com/x", SECRET, "must be https://"},
        {"ftp://billing.example.com/x", SECRET, "must start with https://"},
        {"https://", SECRET, "has no host"},
        {"https://billing.example.com/a b", SECRET, "spaces"},
        {URL, "", "billing.secret is empty"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_t r;
        load_cfg(&r.cfg, cases[i].url, cases[i].secret, "2");
        r.payload = handoff("new");
        /* Whatever the message: the settings are checked first. */
        assert_int_not_equal(start_with(&r, "{}"), OB_OK);
        assert_int_equal(r.s.kind, OB_STEP_FAIL);
        assert_string_equal(r.s.code, "billing_config");
        ob_step_clear(&r.s);
        ob_stage_connect.clear(r.st);
        free(r.st);
        assert_int_not_equal(start_with(&r, r.payload), OB_OK);
        assert_string_equal(r.s.code, "billing_config");
        assert_int_equal(r.s.fail_class, OB_DLQ_PERMANENT);
        assert_non_null(strstr(r.s.message, cases[i].why));
        no_secrets(&r.s);
        finish(&r);
    }
    /* Loopback http is fine (a local receiver), with user info kept out of texts. */
    const char *fine[] = {"http://127.0.0.1:8080/events", "http://localhost/e", "http://[::1]:9/e",
                          "https://user:pw@billing.example.com/e"};
    for (int i = 0; i < 4; i++) {
        run_t r;
        start(&r, "new", fine[i], SECRET, "2");
        finish(&r);
    }
}

static void test_bad_input(void **state)
{
    /* A valid hand-off for another stage. */
    const char *cur =
        "{\"schema\":\"onboard.stage/1\",\"request\":{\"schema\":\"onboard.request/1\","
        "\"request_id\":\"req-0001\",\"account_id\":\"123456789012\",\"cloud\":\"aws\","
        "\"mode\":\"new\",\"region\":\"us-east-1\",\"role_arn\":"
        "\"arn:aws:iam::123456789012:role/OnboardingAccess\",\"bucket\":{\"name\":"
        "\"billing-cur-123456789012-us-east-1\"},\"report\":{\"name\":\"billing-engine-cur\","
        "\"prefix\":\"CUR\",\"time_unit\":\"HOURLY\",\"format\":\"textORcsv\",\"compression\":"
        "\"GZIP\",\"schema_elements\":[\"RESOURCES\"],\"artifacts\":[\"REDSHIFT\"],"
        "\"refresh_closed_reports\":true,\"versioning\":\"OVERWRITE_REPORT\"}},\"stage\":\"cur\","
        "\"results\":{\"bucket\":{\"name\":\"billing-cur-123456789012-us-east-1\",\"region\":"
        "\"us-east-1\",\"arn\":\"arn:aws:s3:::billing-cur-123456789012-us-east-1\"}},\"trace\":"
        "{\"bucket\":{\"started_at\":\"2025-06-02T10:00:00.120Z\",\"finished_at\":"
        "\"2025-06-02T10:00:01.480Z\",\"attempts\":1,\"worker\":\"bucket\"}}}";
    struct {
        const char *payload;
        ob_dlq_class_t cls;
        const char *code;
        const char *field;
    } cases[] = {
        {"not json", OB_DLQ_INVALID_INPUT, "not_json", ""},
        {"[]", OB_DLQ_INVALID_INPUT, "not_object", ""},
        {"{\"schema\":\"onboard.request/1\"}", OB_DLQ_INVALID_INPUT, "enum", "/schema"},
        {cur, OB_DLQ_INVALID_INPUT, "enum", "/stage"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_t r;
        load_cfg(&r.cfg, URL, SECRET, "2");
        r.payload = NULL;
        assert_int_not_equal(start_with(&r, cases[i].payload), OB_OK);
        assert_int_equal(r.s.kind, OB_STEP_FAIL);
        assert_int_equal(r.s.fail_class, cases[i].cls);
        assert_string_equal(r.s.code, cases[i].code);
        assert_string_equal(r.s.field, cases[i].field);
        assert_true(strlen(r.s.message) > 0);
        finish(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_without_url),
        cmocka_unit_test(test_access_denied_then_success),
        cmocka_unit_test(test_access_denied_forever),
        cmocka_unit_test(test_aws_errors),
        cmocka_unit_test(test_unexpected_replies),
        cmocka_unit_test(test_post_signed_2xx),
        cmocka_unit_test(test_post_refused),
        cmocka_unit_test(test_post_exhausted),
        cmocka_unit_test(test_post_408_retried),
        cmocka_unit_test(test_bad_settings),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
