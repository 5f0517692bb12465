/*
 * The AWS request core against real peers: moto (an independent AWS
 * implementation) for STS, S3 and CloudFormation over the wire, a local
 * stand-in for IMDSv2 and the container credentials endpoint, and a
 * misbehaving HTTP server for the retry rules. Covers signing and protocol
 * round trips, error parsing of real replies, SDK standard-mode retries, the
 * credential chain in SDK order, AssumeRole and its cache.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ob_aws.h"
#include "ob_awsconfig.h"
#include "ob_credsrc.h"
#include "ob_log.h"
#include "testutil.h"

static const char *moto;
static char http_base[128], cred_base[128];
static pid_t http_pid = -1, cred_pid = -1;

/* ---- a fake environment ---- */

typedef struct env_s {
    const char *kv[40];
} env_t;

static const char *env_get(const char *name, void *ctx)
{
    env_t *e = ctx;
    for (int i = 0; e->kv[i]; i += 2)
        if (!strcmp(e->kv[i], name))
            return e->kv[i + 1];
    return NULL;
}

typedef struct fx_s {
    ob_loop_t *loop;
    ob_http_t *http;
    ob_aws_t *aws;
    ob_awsconfig_t *cfg;
} fx_t;

static void fx_init(fx_t *f, env_t *env, const char *config_text, const char *creds_text)
{
    memset(f, 0, sizeof(*f));
    f->loop = ob_loop_new(NULL, 0);
    f->http = ob_http_new(f->loop, NULL, NULL, 0);
    char cpath[] = "/tmp/ob-aws-config.XXXXXX", kpath[] = "/tmp/ob-aws-creds.XXXXXX";
    int cfd = mkstemp(cpath), kfd = mkstemp(kpath);
    assert_true(cfd >= 0 && kfd >= 0);
    if (config_text)
        assert_true(write(cfd, config_text, strlen(config_text)) >= 0);
    if (creds_text)
        assert_true(write(kfd, creds_text, strlen(creds_text)) >= 0);
    close(cfd);
    close(kfd);
    char err[256];
    assert_int_equal(ob_awsconfig_load_files(cpath, kpath, &f->cfg, err, sizeof(err)), OB_OK);
    unlink(cpath);
    unlink(kpath);
    ob_aws_opts_t o = {.getenv_fn = env_get, .env_ctx = env, .config = f->cfg};
    f->aws = ob_aws_new(f->loop, f->http, &o, err, sizeof(err));
    assert_non_null(f->aws);
}

static void fx_free(fx_t *f)
{
    ob_aws_free(f->aws);
    ob_http_free(f->http);
    ob_awsconfig_destroy(f->cfg);
    ob_loop_free(f->loop);
}

/* ---- calling and waiting ---- */

typedef struct got_s {
    int done;
    ob_aws_result_t res; /* copy without pointers */
    char *body;
} got_t;

static void on_result(ob_aws_result_t *res, void *arg)
{
    got_t *g = arg;
    g->done = 1;
    g->res = *res;
    g->res.headers = NULL;
    memset(&g->res.body, 0, sizeof(g->res.body));
    g->body = strdup(res->body.data ? res->body.data : "");
}

static int got_done(void *arg)
{
    return ((got_t *)arg)->done;
}

static void call(fx_t *f, ob_aws_req_t *req, const ob_aws_target_t *t, got_t *g)
{
    memset(g, 0, sizeof(*g));
    char err[512];
    ob_aws_call_t *c = ob_aws_send(f->aws, req, t, on_result, g, err, sizeof(err));
    if (!c)
        fail_msg("send: %s", err);
    assert_true(ob_test_run_until(f->loop, got_done, g, 30000));
}

static void caller_identity(fx_t *f, ob_credsrc_t *creds, got_t *g)
{
    ob_aws_req_t req;
    memset(&req, 0, sizeof(req));
    assert_int_equal(ob_query_init(&req, OB_SVC_STS, "GetCallerIdentity", NULL, 0), OB_OK);
    ob_aws_target_t t = {.creds = creds};
    call(f, &req, &t, g);
}

static const char *xml_field(const char *body, const char *action, const char *path, char *out,
                             size_t n)
{
    ob_xml_doc_t *doc = NULL;
    const ob_xml_node_t *r = NULL;
    out[0] = '\0';
    if (ob_query_parse_result(body, strlen(body), action, &doc, &r, NULL, 0) == OB_OK) {
        const char *v = ob_xml_path_text(r, path);
        snprintf(out, n, "%s", v ? v : "");
    }
    ob_xml_free(doc);
    return out;
}

/* ---- tests against moto ---- */

static void test_sts_round_trip(void **state)
{
    env_t env = {{"AWS_ENDPOINT_URL", moto, "AWS_REGION", "us-east-1", NULL}};
    fx_t f;
    fx_init(&f, &env, NULL, NULL);
    ob_credsrc_t *creds =
        ob_credsrc_static(f.aws, "AKIAIOSFODNN7EXAMPLE", "secretsecret", NULL, "test");
    got_t g;
    caller_identity(&f, creds, &g);
    assert_int_equal(g.res.err, OB_OK);
    assert_int_equal(g.res.attempts, 1);
    char acct[32];
    xml_field(g.body, "GetCallerIdentity", "Account", acct, sizeof(acct));
    assert_int_equal(strlen(acct), 12);
    free(g.body);
    ob_credsrc_unref(creds);
    fx_free(&f);
}

static int fetches_settled(void *arg)
{
    return !ob_credsrc_peek(arg) ? 0 : 1;
}

typedef struct waitcount_s {
    int ok, failed;
} waitcount_t;

static void count_creds(ob_err_t err, const char *msg, const ob_aws_creds_t *c, void *arg)
{
    waitcount_t *w = arg;
    if (err == OB_OK && c && c->session_token)
        w->ok++;
    else
        w->failed++;
}

static int fifty_done(void *arg)
{
    waitcount_t *w = arg;
    return w->ok + w->failed >= 50;
}

static void test_assume_role_and_cache(void **state)
{
    env_t env = {{"AWS_ENDPOINT_URL", moto, "AWS_REGION", "eu-west-1", NULL}};
    fx_t f;
    fx_init(&f, &env, NULL, NULL);
    ob_credsrc_t *base =
        ob_credsrc_static(f.aws, "AKIAIOSFODNN7EXAMPLE", "secretsecret", NULL, "test");
    ob_assume_cache_opts_t co = {.max_entries = 2};
    ob_assume_cache_t *cache = ob_assume_cache_new(f.aws, base, &co);
    const char *role = "arn:aws:iam::210987654321:role/OrganizationAccountAccessRole";
    ob_credsrc_t *src = ob_assume_cache_get(cache, role, "ext-0123456789abcdef");
    assert_non_null(src);
    assert_ptr_equal(src, ob_assume_cache_get(cache, role, "ext-0123456789abcdef"));
    assert_null(strstr(ob_credsrc_describe(src), "ext-0123456789abcdef"));
    assert_null(ob_credsrc_peek(src));

    /* Fifty waiters, one AssumeRole call. */
    waitcount_t w = {0, 0};
    for (int i = 0; i < 50; i++)
        assert_non_null(ob_credsrc_get(src, count_creds, &w));
    assert_true(ob_test_run_until(f.loop, fifty_done, &w, 30000));
    assert_int_equal(w.ok, 50);
    assert_int_equal(ob_credsrc_fetches(src), 1);
    const ob_aws_creds_t *c = ob_credsrc_peek(src);
    assert_non_null(c);
    assert_string_equal(c->account_id, "210987654321");
    assert_true(c->expires_ms > (int64_t)ob_wall_ms());

    /* The assumed identity is the role in the target account. */
    got_t g;
    caller_identity(&f, src, &g);
    assert_int_equal(g.res.err, OB_OK);
    char arn[256];
    xml_field(g.body, "GetCallerIdentity", "Arn", arn, sizeof(arn));
    assert_non_null(strstr(arn, "210987654321"));
    assert_non_null(strstr(arn, "assumed-role/OrganizationAccountAccessRole"));
    free(g.body);
    assert_true(ob_test_run_until(f.loop, fetches_settled, src, 1000));
    assert_int_equal(ob_credsrc_fetches(src), 1); /* served from the cache */

    /* Bounded: a third role pushes out the least recently used. */
    ob_credsrc_ref(src);
    ob_assume_cache_get(cache, "arn:aws:iam::111111111111:role/r", NULL);
    ob_assume_cache_get(cache, "arn:aws:iam::222222222222:role/r", NULL);
    assert_int_equal(ob_assume_cache_size(cache), 2);
    assert_non_null(ob_credsrc_peek(src)); /* our reference keeps it alive */
    ob_credsrc_unref(src);
    ob_assume_cache_free(cache);
    ob_credsrc_unref(base);
    fx_free(&f);
}

static void test_web_identity(void **state)
{
    char tok[] = "/tmp/ob-webid.XXXXXX";
    int fd = mkstemp(tok);
    const char *jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2ln\n";
    assert_true(write(fd, jwt, strlen(jwt)) > 0);
    close(fd);
    env_t env = {{"AWS_ENDPOINT_URL", moto, "AWS_REGION", "us-west-2",
                  "AWS_WEB_IDENTITY_TOKEN_FILE", tok, "AWS_ROLE_ARN",
                  "arn:aws:iam::123456789012:role/onboard-irsa", "AWS_ROLE_SESSION_NAME", "pod-1",
                  "AWS_EC2_METADATA_DISABLED", "true", NULL}};
    fx_t f;
    fx_init(&f, &env, NULL, NULL);
    char err[256];
    ob_credsrc_t *s = ob_credsrc_chain(f.aws, err, sizeof(err));
    assert_non_null(s);
    assert_non_null(strstr(ob_credsrc_describe(s), "web identity"));
    got_t g;
    caller_identity(&f, s, &g);
    assert_int_equal(g.res.err, OB_OK);
    free(g.body);
    assert_non_null(ob_credsrc_peek(s)->session_token);
    ob_credsrc_unref(s);
    unlink(tok);
    fx_free(&f);
}

static void test_profile_role_chain(void **state)
{
    env_t env = {{"AWS_ENDPOINT_URL", moto, "AWS_PROFILE", "fleet", "AWS_EC2_METADATA_DISABLED",
                  "true", NULL}};
    fx_t f;
    fx_init(&f, &env,
            "[profile fleet]\n"
            "role_arn = arn:aws:iam::333344445555:role/fleet\n"
            "source_profile = base\n"
            "external_id = fleet-external-id\n"
            "region = eu-central-1\n",
            "[base]\n"
            "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
            "aws_secret_access_key = secretsecret\n");
    char err[256];
    ob_credsrc_t *s = ob_credsrc_chain(f.aws, err, sizeof(err));
    if (!s)
        fail_msg("chain: %s", err);
    assert_non_null(
        strstr(ob_credsrc_describe(s), "assume-role arn:aws:iam::333344445555:role/fleet"));
    assert_non_null(strstr(ob_credsrc_describe(s), "via profile fleet"));
    got_t g;
    caller_identity(&f, s, &g);
    assert_int_equal(g.res.err, OB_OK);
    char arn[256];
    xml_field(g.body, "GetCallerIdentity", "Arn", arn, sizeof(arn));
    assert_non_null(strstr(arn, "333344445555"));
    free(g.body);
    ob_credsrc_unref(s);
    fx_free(&f);
}

static void test_s3_and_cloudformation_errors(void **state)
{
    env_t env = {{"AWS_ENDPOINT_URL", moto, "AWS_REGION", "eu-west-1", NULL}};
    fx_t f;
    fx_init(&f, &env, NULL, NULL);
    ob_credsrc_t *creds =
        ob_credsrc_static(f.aws, "AKIAIOSFODNN7EXAMPLE", "secretsecret", NULL, "test");
    char bucket[64];
    snprintf(bucket, sizeof(bucket), "ob-itest-%d", (int)getpid());
    ob_aws_target_t t = {.creds = creds, .s3_bucket = bucket};
    got_t g;

    /* CreateBucket with a LocationConstraint (eu-west-1). */
    ob_aws_req_t req;
    memset(&req, 0, sizeof(req));
    ob_buf_t body = {0};
    assert_int_equal(ob_s3_init(&req, "CreateBucket", "PUT", "/", NULL, NULL, 0), OB_OK);
    assert_int_equal(ob_s3_xml_create_bucket_configuration(&body, "eu-west-1", NULL, 0), OB_OK);
    assert_int_equal(ob_s3_set_body(&req, body.data, body.len, "application/xml", 0, NULL, 0),
                     OB_OK);
    ob_buf_free(&body);
    call(&f, &req, &t, &g);
    assert_int_equal(g.res.err, OB_OK);
    free(g.body);

    /* PutBucketPolicy needs Content-MD5; then read it back. */
    const char *policy = "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
                         "\"Principal\":{\"Service\":\"billingreports.amazonaws.com\"},"
                         "\"Action\":\"s3:PutObject\",\"Resource\":\"arn:aws:s3:::BUCKET/*\"}]}";
    memset(&req, 0, sizeof(req));
    assert_int_equal(ob_s3_init(&req, "PutBucketPolicy", "PUT", "/", "policy", NULL, 0), OB_OK);
    assert_int_equal(ob_s3_set_body(&req, policy, strlen(policy), "application/json", 1, NULL, 0),
                     OB_OK);
    assert_non_null(ob_hdrs_get(&req.headers, "Content-MD5"));
    call(&f, &req, &t, &g);
    assert_int_equal(g.res.err, OB_OK);
    free(g.body);
    memset(&req, 0, sizeof(req));
    assert_int_equal(ob_s3_init(&req, "GetBucketPolicy", "GET", "/", "policy", NULL, 0), OB_OK);
    call(&f, &req, &t, &g);
    assert_int_equal(g.res.err, OB_OK);
    assert_non_null(strstr(g.body, "billingreports.amazonaws.com"));
    free(g.body);

    /* A bucket without a policy: NoSuchBucketPolicy, not retried. */
    char bucket2[64];
    snprintf(bucket2, sizeof(bucket2), "ob-itest-%d-b", (int)getpid());
    ob_aws_target_t t2 = {.creds = creds, .s3_bucket = bucket2, .region = "us-east-1"};
    memset(&req, 0, sizeof(req));
    assert_int_equal(ob_s3_init(&req, "CreateBucket", "PUT", "/", NULL, NULL, 0), OB_OK);
    call(&f, &req, &t2, &g);
    assert_int_equal(g.res.err, OB_OK);
    free(g.body);
    memset(&req, 0, sizeof(req));
    assert_int_equal(ob_s3_init(&req, "GetBucketPolicy", "GET", "/", "policy", NULL, 0), OB_OK);
    call(&f, &req, &t2, &g);
    assert_int_equal(g.res.err, OB_ERR_AWS);
    assert_string_equal(g.res.aws.code, "NoSuchBucketPolicy");
    assert_int_equal(g.res.status, 404);
    assert_int_equal(g.res.attempts, 1);
    assert_int_equal(g.res.retry_class, OB_RETRY_NO);
    free(g.body);

    /* HEAD of a missing bucket: no body, code from the status. */
    ob_aws_target_t t3 = {.creds = creds, .s3_bucket = "ob-itest-no-such-bucket"};
    memset(&req, 0, sizeof(req));
    assert_int_equal(ob_s3_init(&req, "HeadBucket", "HEAD", "/", NULL, NULL, 0), OB_OK);
    call(&f, &req, &t3, &g);
    assert_int_equal(g.res.err, OB_ERR_AWS);
    assert_int_equal(g.res.status, 404);
    assert_string_equal(g.res.aws.code, "NotFound");
    free(g.body);

    /* CloudFormation: a missing stack is a ValidationError that says so. */
    memset(&req, 0, sizeof(req));
    assert_int_equal(ob_query_init(&req, OB_SVC_CLOUDFORMATION, "DescribeStacks", NULL, 0), OB_OK);
    assert_int_equal(ob_query_add(&req, "StackName", "onboard-missing", NULL, 0), OB_OK);
    ob_aws_target_t tc = {.creds = creds};
    call(&f, &req, &tc, &g);
    assert_int_equal(g.res.err, OB_ERR_AWS);
    assert_string_equal(g.res.aws.code, "ValidationError");
    assert_non_null(strstr(g.res.aws.message, "does not exist"));
    assert_non_null(strstr(g.res.errmsg, "cloudformation DescribeStacks: ValidationError"));
    free(g.body);
    ob_credsrc_unref(creds);
    fx_free(&f);
}

/* ---- retries against a misbehaving server ---- */

static double zero_rand(void *ctx)
{
    return 0.0;
}

static void retry_case(const char *path, ob_err_t want_err, ob_retry_class_t want_class,
                       int attempts, ob_retry_verdict_t verdict, int throttled)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", http_base, path);
    env_t env = {{"AWS_ENDPOINT_URL", url, "AWS_REGION", "us-east-1", NULL}};
    fx_t f;
    memset(&f, 0, sizeof(f));
    f.loop = ob_loop_new(NULL, 0);
    f.http = ob_http_new(f.loop, NULL, NULL, 0);
    ob_aws_opts_t o = {
        .getenv_fn = env_get, .env_ctx = &env, .rand01 = zero_rand, .attempt_timeout_ms = 300};
    f.aws = ob_aws_new(f.loop, f.http, &o, NULL, 0);
    ob_credsrc_t *creds = ob_credsrc_static(f.aws, "AKIDEXAMPLE", "secret", NULL, "test");
    got_t g;
    caller_identity(&f, creds, &g);
    assert_int_equal(g.res.err, want_err);
    assert_int_equal(g.res.retry_class, want_class);
    assert_int_equal(g.res.attempts, attempts);
    assert_int_equal(g.res.verdict, verdict);
    ob_aws_stats_t st;
    ob_aws_get_stats(f.aws, &st);
    assert_int_equal(st.attempts, attempts);
    assert_int_equal(st.retries, attempts - 1);
    assert_int_equal(st.throttled, throttled);
    printf("%s -> %s\n", path, g.res.errmsg);
    free(g.body);
    ob_credsrc_unref(creds);
    fx_free(&f);
}

static void test_standard_retry_mode(void **state)
{
    retry_case("/status/503", OB_ERR_AWS, OB_RETRY_TRANSIENT, 3, OB_RETRY_GIVE_UP_ATTEMPTS, 0);
    retry_case("/aws-error/Throttling/400", OB_ERR_AWS, OB_RETRY_THROTTLE, 3,
               OB_RETRY_GIVE_UP_ATTEMPTS, 3);
    retry_case("/aws-error/AccessDenied/403", OB_ERR_AWS, OB_RETRY_NO, 1, OB_RETRY_GIVE_UP_FINAL,
               0);
    retry_case("/silent", OB_ERR_TIMEOUT, OB_RETRY_TIMEOUT, 3, OB_RETRY_GIVE_UP_ATTEMPTS, 0);
    retry_case("/reset", OB_ERR_CONN, OB_RETRY_TRANSIENT, 3, OB_RETRY_GIVE_UP_ATTEMPTS, 0);
}

/* Counts its callbacks: a call is answered exactly once, whatever happens. */
static void on_counted(ob_aws_result_t *res, void *arg)
{
    int *n = arg;
    (*n)++;
    assert_int_equal(res->err, OB_ERR_CANCELLED);
}

/* Freeing the client while calls are out (one on the wire to a server that
 * never answers, one waiting for credentials that never come) answers each
 * once, as cancelled, and leaves nothing behind that points at them: the
 * HTTP client freed after it has no transfer of theirs left to call back. */
static void test_free_with_calls_out(void **state)
{
    char url[256], creds_url[256];
    snprintf(url, sizeof(url), "%s/silent", http_base);
    snprintf(creds_url, sizeof(creds_url), "%s/silent", http_base);
    env_t env = {{"AWS_ENDPOINT_URL", url, "AWS_REGION", "us-east-1",
                  "AWS_CONTAINER_CREDENTIALS_FULL_URI", creds_url, NULL}};
    fx_t f;
    memset(&f, 0, sizeof(f));
    f.loop = ob_loop_new(NULL, 0);
    f.http = ob_http_new(f.loop, NULL, NULL, 0);
    ob_aws_opts_t o = {.getenv_fn = env_get, .env_ctx = &env, .attempt_timeout_ms = 60000};
    f.aws = ob_aws_new(f.loop, f.http, &o, NULL, 0);
    ob_credsrc_t *fixed = ob_credsrc_static(f.aws, "AKIDEXAMPLE", "secret", NULL, "test");
    char err[256];
    ob_credsrc_t *slow = ob_credsrc_container(f.aws, err, sizeof(err));
    assert_non_null(slow);
    int answered[2] = {0, 0};
    ob_credsrc_t *srcs[2] = {fixed, slow};
    for (int i = 0; i < 2; i++) {
        ob_aws_req_t req;
        memset(&req, 0, sizeof(req));
        assert_int_equal(ob_query_init(&req, OB_SVC_STS, "GetCallerIdentity", NULL, 0), OB_OK);
        ob_aws_target_t t = {.creds = srcs[i]};
        assert_non_null(ob_aws_send(f.aws, &req, &t, on_counted, &answered[i], err, sizeof(err)));
        ob_aws_req_free(&req);
    }
    ob_test_run_for(f.loop, 300); /* both out: one on the wire, one waiting */
    assert_int_equal(answered[0] + answered[1], 0);
    ob_credsrc_unref(fixed);
    ob_credsrc_unref(slow);
    ob_aws_free(f.aws);
    assert_int_equal(answered[0], 1);
    assert_int_equal(answered[1], 1);
    ob_http_free(f.http); /* cancels what is left: nothing of the calls' */
    assert_int_equal(answered[0], 1);
    assert_int_equal(answered[1], 1);
    ob_loop_free(f.loop);
}

/* ---- credential chain ---- */

static ob_credsrc_t *chain(fx_t *f, char *err, size_t n)
{
    return ob_credsrc_chain(f->aws, err, n);
}

typedef struct one_s {
    int done;
    ob_err_t err;
    char msg[512];
    char akid[64];
    char account[16];
    int64_t expires;
} one_t;

static void on_one(ob_err_t err, const char *msg, const ob_aws_creds_t *c, void *arg)
{
    one_t *o = arg;
    o->done = 1;
    o->err = err;
    snprintf(o->msg, sizeof(o->msg), "%s", msg ? msg : "");
    if (c) {
        snprintf(o->akid, sizeof(o->akid), "%s", c->access_key_id);
        snprintf(o->account, sizeof(o->account), "%s", c->account_id);
        o->expires = c->expires_ms;
    }
}

static int one_done(void *arg)
{
    return ((one_t *)arg)->done;
}

static void get_one(fx_t *f, ob_credsrc_t *s, one_t *o)
{
    memset(o, 0, sizeof(*o));
    assert_non_null(ob_credsrc_get(s, on_one, o));
    assert_false(o->done); /* never called back synchronously */
    assert_true(ob_test_run_until(f->loop, one_done, o, 10000));
}

static void test_chain_order_and_sources(void **state)
{
    char err[512];
    one_t o;
    fx_t f;

    /* Environment first, even with a profile present. */
    env_t e1 = {{"AWS_ACCESS_KEY_ID", "AKIAENVENVENVENVENV1", "AWS_SECRET_ACCESS_KEY", "s", NULL}};
    fx_init(&f, &e1, NULL,
            "[default]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = x\n");
    ob_credsrc_t *s = chain(&f, err, sizeof(err));
    assert_string_equal(ob_credsrc_describe(s), "environment");
    assert_string_equal(ob_credsrc_peek(s)->access_key_id, "AKIAENVENVENVENVENV1");
    ob_credsrc_unref(s);
    fx_free(&f);

    /* Partial environment credentials are an error, not a fall-through. */
    env_t e2 = {{"AWS_ACCESS_KEY_ID", "AKIAENV", NULL}};
    fx_init(&f, &e2, NULL, NULL);
    assert_null(chain(&f, err, sizeof(err)));
    assert_non_null(strstr(err, "AWS_SECRET_ACCESS_KEY is not"));
    fx_free(&f);

    /* Profile static keys, with a session token. */
    env_t e3 = {{"AWS_PROFILE", "dev", NULL}};
    fx_init(
        &f, &e3, "[profile dev]\nregion = eu-west-1\n",
        "[dev]\naws_access_key_id = AKIADEV\naws_secret_access_key = x\naws_session_token = t\n");
    s = chain(&f, err, sizeof(err));
    assert_non_null(s);
    assert_string_equal(ob_credsrc_peek(s)->access_key_id, "AKIADEV");
    assert_string_equal(ob_credsrc_peek(s)->session_token, "t");
    assert_string_equal(ob_aws_default_region(f.aws), "eu-west-1");
    ob_credsrc_unref(s);
    fx_free(&f);

    /* An explicit profile that does not exist. */
    env_t e4 = {{"AWS_PROFILE", "nope", NULL}};
    fx_init(&f, &e4, NULL, NULL);
    assert_null(chain(&f, err, sizeof(err)));
    assert_non_null(strstr(err, "profile nope not found"));
    fx_free(&f);

    /* A source_profile loop. */
    env_t e5 = {{"AWS_PROFILE", "a", NULL}};
    fx_init(&f, &e5,
            "[profile a]\nrole_arn = arn:aws:iam::123456789012:role/a\nsource_profile = b\n"
            "[profile b]\nrole_arn = arn:aws:iam::123456789012:role/b\nsource_profile = a\n",
            NULL);
    assert_null(chain(&f, err, sizeof(err)));
    assert_non_null(strstr(err, "loop"));
    fx_free(&f);

    /* duration_seconds that is not a whole number STS takes is a config
     * error naming it, not an AssumeRole that fails at every refresh. */
    static const char *const bad_durations[] = {"12h", "", "899", "43201", "3600x", "99999999999"};
    for (size_t i = 0; i < sizeof(bad_durations) / sizeof(bad_durations[0]); i++) {
        char cfg[512];
        snprintf(cfg, sizeof(cfg),
                 "[profile a]\nrole_arn = arn:aws:iam::123456789012:role/a\nsource_profile = b\n"
                 "duration_seconds = %s\n"
                 "[profile b]\naws_access_key_id = AKIAB\naws_secret_access_key = x\n",
                 bad_durations[i]);
        fx_init(&f, &e5, cfg, NULL);
        err[0] = '\0';
        assert_null(chain(&f, err, sizeof(err)));
        assert_non_null(strstr(err, "duration_seconds must be a whole number from 900 to 43200"));
        fx_free(&f);
    }
    fx_init(&f, &e5,
            "[profile a]\nrole_arn = arn:aws:iam::123456789012:role/a\nsource_profile = b\n"
            "duration_seconds = 900\n"
            "[profile b]\naws_access_key_id = AKIAB\naws_secret_access_key = x\n",
            NULL);
    s = chain(&f, err, sizeof(err));
    assert_non_null(s);
    assert_string_equal(ob_credsrc_describe(s),
                        "assume-role arn:aws:iam::123456789012:role/a via profile a");
    ob_credsrc_unref(s);
    fx_free(&f);

    /* Container credentials (full URI on loopback, with a token). */
    char curl[256];
    snprintf(curl, sizeof(curl), "%s/container/creds", cred_base);
    env_t e6 = {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", curl, "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                 "Bearer test-token", NULL}};
    fx_init(&f, &e6, NULL, NULL);
    s = chain(&f, err, sizeof(err));
    assert_non_null(s);
    assert_null(ob_credsrc_peek(s));
    get_one(&f, s, &o);
    assert_int_equal(o.err, OB_OK);
    assert_memory_equal(o.akid, "ASIA", 4);
    assert_string_equal(o.account, "111122223333");
    assert_true(o.expires > (int64_t)ob_wall_ms());
    ob_credsrc_unref(s);
    fx_free(&f);

    /* Wrong container token: a clear error. */
    env_t e7 = {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", curl, "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                 "Bearer wrong", NULL}};
    fx_init(&f, &e7, NULL, NULL);
    s = chain(&f, err, sizeof(err));
    get_one(&f, s, &o);
    assert_int_equal(o.err, OB_ERR_CREDENTIALS);
    assert_non_null(strstr(o.msg, "HTTP 401"));
    assert_null(strstr(o.msg, "wrong"));
    ob_credsrc_unref(s);
    fx_free(&f);

    /* A non-loopback plain-HTTP full URI is refused. */
    env_t e8 = {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://198.51.100.7/creds", NULL}};
    fx_init(&f, &e8, NULL, NULL);
    assert_null(chain(&f, err, sizeof(err)));
    assert_non_null(strstr(err, "HTTPS or a loopback"));
    fx_free(&f);

    /* IMDSv2 last: token, role name, credentials. */
    env_t e9 = {{"AWS_EC2_METADATA_SERVICE_ENDPOINT", cred_base, NULL}};
    fx_init(&f, &e9, NULL, NULL);
    s = chain(&f, err, sizeof(err));
    assert_string_equal(ob_credsrc_describe(s), "instance metadata (IMDSv2)");
    get_one(&f, s, &o);
    assert_int_equal(o.err, OB_OK);
    assert_memory_equal(o.akid, "ASIA", 4);
    assert_int_equal(ob_credsrc_fetches(s), 1);
    ob_credsrc_unref(s);
    fx_free(&f);

    /* Nothing at all, metadata disabled. */
    env_t e10 = {{"AWS_EC2_METADATA_DISABLED", "true", NULL}};
    fx_init(&f, &e10, NULL, NULL);
    assert_null(chain(&f, err, sizeof(err)));
    assert_non_null(strstr(err, "no AWS credentials"));
    fx_free(&f);

    /* IMDS unreachable: a timeout, reported as a credentials error. */
    env_t e11 = {{"AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1", NULL}};
    fx_init(&f, &e11, NULL, NULL);
    s = chain(&f, err, sizeof(err));
    get_one(&f, s, &o);
    assert_int_equal(o.err, OB_ERR_CREDENTIALS);
    assert_non_null(strstr(o.msg, "instance metadata token"));
    ob_credsrc_unref(s);
    fx_free(&f);
}

static int akid_changed(void *arg)
{
    void **a = arg;
    const ob_aws_creds_t *c = ob_credsrc_peek(a[0]);
    return c && strcmp(c->access_key_id, a[1]) != 0;
}

/* Short-lived credentials (4 s): usable at once, refreshed in the background
 * once inside the advisory window (the last third) while still served, and
 * never served inside the mandatory window. Expired on arrival: an error. */
static void test_refresh_before_expiry(void **state)
{
    char url[256], err[256];
    snprintf(url, sizeof(url), "%s/container/creds?ttl=4", cred_base);
    env_t env = {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", url, "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                  "Bearer test-token", NULL}};
    fx_t f;
    fx_init(&f, &env, NULL, NULL);
    ob_credsrc_t *s = ob_credsrc_chain(f.aws, err, sizeof(err));
    one_t o;
    get_one(&f, s, &o);
    assert_int_equal(o.err, OB_OK);
    assert_non_null(ob_credsrc_peek(s));
    assert_int_equal(ob_credsrc_fetches(s), 1);
    /* Before the advisory window: no refresh however often we look. */
    for (int i = 0; i < 5; i++) {
        ob_loop_run_once(f.loop, 100);
        assert_non_null(ob_credsrc_peek(s));
    }
    assert_int_equal(ob_credsrc_fetches(s), 1);
    /* Into the advisory window: peek still answers and refreshes behind. */
    char first[64];
    snprintf(first, sizeof(first), "%s", o.akid);
    void *args[2] = {s, first};
    assert_true(ob_test_run_until(f.loop, akid_changed, args, 8000));
    assert_int_equal(ob_credsrc_fetches(s), 2);
    ob_credsrc_unref(s);
    fx_free(&f);

    snprintf(url, sizeof(url), "%s/container/creds?ttl=0", cred_base);
    env_t env2 = {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", url, "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                   "Bearer test-token", NULL}};
    fx_init(&f, &env2, NULL, NULL);
    s = ob_credsrc_chain(f.aws, err, sizeof(err));
    get_one(&f, s, &o);
    assert_int_equal(o.err, OB_ERR_CREDENTIALS);
    assert_non_null(strstr(o.msg, "expired"));
    assert_null(ob_credsrc_peek(s));
    ob_credsrc_unref(s);
    fx_free(&f);
}

/* A 200 whose body is cut short or is not XML at all is an error that says so,
 * not credentials made of garbage. */
static void hostile_assume(const char *path, const char *want)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", http_base, path);
    env_t env = {{"AWS_ENDPOINT_URL", url, "AWS_REGION", "us-east-1", NULL}};
    fx_t f;
    fx_init(&f, &env, NULL, NULL);
    ob_credsrc_t *base = ob_credsrc_static(f.aws, "AKIDEXAMPLE", "secret", NULL, "test");
    ob_credsrc_t *s = ob_credsrc_assume_role(f.aws, base, "arn:aws:iam::123456789012:role/x", NULL,
                                             NULL, 0, NULL);
    one_t o;
    get_one(&f, s, &o);
    assert_int_equal(o.err, OB_ERR_PARSE);
    if (!strstr(o.msg, want))
        fail_msg("\"%s\" does not mention \"%s\"", o.msg, want);
    assert_null(ob_credsrc_peek(s));
    printf("%s -> %s\n", path, o.msg);
    ob_credsrc_unref(s);
    ob_credsrc_unref(base);
    fx_free(&f);
}

static void test_hostile_success_replies(void **state)
{
    hostile_assume("/xml-truncated", "line 1");
    hostile_assume("/html-200", "AssumeRole");
}

static int setup(void **state)
{
    char *a1[] = {(char *)"python3", (char *)OB_TEST_TOOLS "/http_server.py", NULL};
    char port[32];
    http_pid = ob_test_spawn(a1, port, sizeof(port));
    snprintf(http_base, sizeof(http_base), "http://127.0.0.1:%s", port);
    char *a2[] = {(char *)"python3", (char *)OB_TEST_TOOLS "/cred_server.py",
                  (char *)"Bearer test-token", NULL};
    cred_pid = ob_test_spawn(a2, port, sizeof(port));
    snprintf(cred_base, sizeof(cred_base), "http://127.0.0.1:%s", port);
    return http_pid > 0 && cred_pid > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    ob_test_kill(http_pid);
    ob_test_kill(cred_pid);
    return 0;
}

int main(void)
{
    moto = ob_test_service_env("OB_TEST_MOTO_URL", "moto (an independent AWS implementation)");
    ob_log_set_level(OB_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sts_round_trip),
        cmocka_unit_test(test_assume_role_and_cache),
        cmocka_unit_test(test_web_identity),
        cmocka_unit_test(test_profile_role_chain),
        cmocka_unit_test(test_s3_and_cloudformation_errors),
        cmocka_unit_test(test_standard_retry_mode),
        cmocka_unit_test(test_free_with_calls_out),
        cmocka_unit_test(test_chain_order_and_sources),
        cmocka_unit_test(test_refresh_before_expiry),
        cmocka_unit_test(test_hostile_success_replies),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
