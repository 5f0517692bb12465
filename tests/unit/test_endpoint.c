/*
 * Unit tests for ob_endpoint: region resolution, endpoint resolution order
 * (environment, services section, profile endpoint_url, standard), override
 * URL validation and S3 bucket addressing. The environment is a fake; the
 * shared config comes from tests/fixtures/awsconfig.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_awsconfig.h"
#include "ob_endpoint.h"
#include "testutil.h"

#define FIX OB_FIXTURES "/awsconfig"

typedef struct fake_env_s {
    const char *kv[16][2];
} fake_env_t;

static const char *fake_getenv(const char *name, void *ctx)
{
    const fake_env_t *env = ctx;
    for (size_t i = 0; env && i < 16 && env->kv[i][0]; i++)
        if (strcmp(env->kv[i][0], name) == 0)
            return env->kv[i][1];
    return NULL;
}

static int setup(void **state)
{
    ob_awsconfig_t *cfg = NULL;
    char err[256];
    if (ob_awsconfig_load_files(FIX "/config", FIX "/credentials", &cfg, err, sizeof(err)) !=
        OB_OK) {
        fprintf(stderr, "fixture: %s\n", err);
        return -1;
    }
    *state = cfg;
    return 0;
}

static int teardown(void **state)
{
    ob_awsconfig_destroy(*state);
    return 0;
}

static void resolve_ok(ob_aws_svc_t svc, const char *region, fake_env_t *env,
                       const ob_awsconfig_t *cfg, const char *profile, ob_endpoint_t *ep)
{
    char err[512] = "";
    ob_err_t e =
        ob_endpoint_resolve(svc, region, fake_getenv, env, cfg, profile, ep, err, sizeof(err));
    if (e != OB_OK)
        fail_msg("resolve %d %s: %s: %s", (int)svc, region, ob_err2str(e), err);
}

static ob_err_t resolve_err(ob_aws_svc_t svc, const char *region, fake_env_t *env,
                            const ob_awsconfig_t *cfg, const char *profile, char *err, size_t errsz)
{
    ob_endpoint_t ep;
    err[0] = '\0';
    return ob_endpoint_resolve(svc, region, fake_getenv, env, cfg, profile, &ep, err, errsz);
}

static void test_region_valid(void **state)
{
    (void)state;
    const char *good[] = {"us-east-1",      "eu-central-2", "us-gov-west-1", "cn-north-1",
                          "ap-southeast-5", "il-central-1", "local"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!ob_aws_region_valid(good[i]))
            fail_msg("%s should be valid", good[i]);
    const char *bad[] = {
        "",           "US-EAST-1",
        "us_east_1",  "us-east-1-",
        "-us-east-1", "1us-east",
        "us--east-1", "us-east-1.evil.com",
        "us east 1",  "us-east-1 # prod",
        "us-east-1/", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ob_aws_region_valid(bad[i]))
            fail_msg("'%s' should be invalid", bad[i]);
    assert_false(ob_aws_region_valid(NULL));
}

static void test_region_resolve(void **state)
{
    const ob_awsconfig_t *cfg = *state;
    char r[OB_REGION_MAX];
    fake_env_t env = {{{"AWS_REGION", "eu-west-1"}, {"AWS_DEFAULT_REGION", "eu-west-2"}}};
    assert_int_equal(ob_aws_region_resolve(fake_getenv, &env, cfg, "dev", r, sizeof(r)), OB_OK);
    assert_string_equal(r, "eu-west-1");
    env.kv[0][1] = ""; /* empty is unset */
    assert_int_equal(ob_aws_region_resolve(fake_getenv, &env, cfg, "dev", r, sizeof(r)), OB_OK);
    assert_string_equal(r, "eu-west-2");
    env.kv[1][1] = "";
    /* Profile: the credentials file's region wins for dev. */
    assert_int_equal(ob_aws_region_resolve(fake_getenv, &env, cfg, "dev", r, sizeof(r)), OB_OK);
    assert_string_equal(r, "us-east-2");
    assert_int_equal(ob_aws_region_resolve(fake_getenv, &env, cfg, NULL, r, sizeof(r)), OB_OK);
    assert_string_equal(r, "us-west-2");
    assert_int_equal(ob_aws_region_resolve(fake_getenv, &env, cfg, "creds-only", r, sizeof(r)),
                     OB_ERR_NOT_FOUND);
    assert_string_equal(r, "");
    assert_int_equal(ob_aws_region_resolve(fake_getenv, &env, NULL, NULL, r, sizeof(r)),
                     OB_ERR_NOT_FOUND);
    assert_int_equal(ob_aws_region_resolve(fake_getenv, &env, cfg, "badregion", r, sizeof(r)),
                     OB_ERR_CONFIG);
    env.kv[0][1] = "US-EAST-1";
    assert_int_equal(ob_aws_region_resolve(fake_getenv, &env, cfg, NULL, r, sizeof(r)),
                     OB_ERR_CONFIG);
    env.kv[0][1] = "us-east-1";
    assert_int_equal(ob_aws_region_resolve(fake_getenv, &env, cfg, NULL, r, 5), OB_ERR_INVALID_ARG);
    assert_int_equal(ob_aws_region_resolve(fake_getenv, &env, cfg, NULL, NULL, 0),
                     OB_ERR_INVALID_ARG);
}

static void test_standard_endpoints(void **state)
{
    (void)state;
    static const struct {
        ob_aws_svc_t svc;
        const char *region, *host, *signing;
    } cases[] = {
        {OB_SVC_S3, "eu-west-1", "s3.eu-west-1.amazonaws.com", "eu-west-1"},
        {OB_SVC_S3, "us-east-1", "s3.us-east-1.amazonaws.com", "us-east-1"},
        {OB_SVC_STS, "ap-south-1", "sts.ap-south-1.amazonaws.com", "ap-south-1"},
        {OB_SVC_STS, "us-east-1", "sts.us-east-1.amazonaws.com", "us-east-1"},
        {OB_SVC_CLOUDFORMATION, "eu-central-2", "cloudformation.eu-central-2.amazonaws.com",
         "eu-central-2"},
        {OB_SVC_CLOUDFORMATION, "cn-north-1", "cloudformation.cn-north-1.amazonaws.com.cn",
         "cn-north-1"},
        {OB_SVC_S3, "us-gov-west-1", "s3.us-gov-west-1.amazonaws.com", "us-gov-west-1"},
        {OB_SVC_CUR, "eu-west-1", "cur.us-east-1.amazonaws.com", "us-east-1"},
        {OB_SVC_CUR, "us-east-1", "cur.us-east-1.amazonaws.com", "us-east-1"},
        {OB_SVC_CUR, "cn-north-1", "cur.cn-northwest-1.amazonaws.com.cn", "cn-northwest-1"},
        {OB_SVC_ORGANIZATIONS, "ap-northeast-1", "organizations.us-east-1.amazonaws.com",
         "us-east-1"},
        {OB_SVC_ORGANIZATIONS, "us-gov-east-1", "organizations.us-gov-west-1.amazonaws.com",
         "us-gov-west-1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ob_endpoint_t ep;
        char url[400];
        resolve_ok(cases[i].svc, cases[i].region, NULL, NULL, NULL, &ep);
        snprintf(url, sizeof(url), "https://%s", cases[i].host);
        assert_string_equal(ep.host, cases[i].host);
        assert_string_equal(ep.url, url);
        assert_string_equal(ep.signing_region, cases[i].signing);
        assert_string_equal(ep.base_path, "");
        assert_false(ep.is_override);
        assert_false(ep.path_style);
    }

    char err[512];
    assert_int_equal(resolve_err(OB_SVC_CUR, "us-gov-west-1", NULL, NULL, NULL, err, sizeof(err)),
                     OB_ERR_CONFIG);
    assert_non_null(strstr(err, "not offered"));
    assert_int_equal(resolve_err(OB_SVC_S3, "us-iso-east-1", NULL, NULL, NULL, err, sizeof(err)),
                     OB_ERR_CONFIG);
    assert_non_null(strstr(err, "isolated"));
    assert_int_equal(
        resolve_err(OB_SVC_S3, "us-east-1.evil.com", NULL, NULL, NULL, err, sizeof(err)),
        OB_ERR_CONFIG);
    assert_non_null(strstr(err, "invalid region"));
    assert_int_equal(resolve_err(OB_SVC_S3, NULL, NULL, NULL, NULL, err, sizeof(err)),
                     OB_ERR_CONFIG);
    assert_int_equal(resolve_err(OB_SVC__COUNT, "us-east-1", NULL, NULL, NULL, err, sizeof(err)),
                     OB_ERR_INVALID_ARG);
}

static void test_env_overrides(void **state)
{
    const ob_awsconfig_t *cfg = *state;
    ob_endpoint_t ep;
    fake_env_t env = {{{"AWS_ENDPOINT_URL_S3", "http://MinIO:9000/"},
                       {"AWS_ENDPOINT_URL", "https://Proxy.Example.Test:443/prefix//"},
                       {"AWS_ENDPOINT_URL_COST_AND_USAGE_REPORT_SERVICE", "http://[::1]:8080"}}};

    /* The service-specific variable wins over the global one... */
    resolve_ok(OB_SVC_S3, "eu-west-1", &env, cfg, "local", &ep);
    assert_string_equal(ep.url, "http://minio:9000");
    assert_string_equal(ep.host, "minio:9000");
    assert_string_equal(ep.base_path, "");
    assert_string_equal(ep.signing_region, "eu-west-1");
    assert_true(ep.is_override);
    assert_true(ep.path_style);

    /* ...and the global one over the config file; default ports are dropped. */
    resolve_ok(OB_SVC_STS, "eu-west-1", &env, cfg, "local", &ep);
    assert_string_equal(ep.url, "https://proxy.example.test");
    assert_string_equal(ep.host, "proxy.example.test");
    assert_string_equal(ep.base_path, "/prefix");
    assert_string_equal(ep.signing_region, "eu-west-1");

    /* CUR's variable suffix; single-region services still sign their region. */
    resolve_ok(OB_SVC_CUR, "eu-west-1", &env, cfg, NULL, &ep);
    assert_string_equal(ep.url, "http://[::1]:8080");
    assert_string_equal(ep.host, "[::1]:8080");
    assert_string_equal(ep.signing_region, "us-east-1");

    /* AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true turns all of it off. */
    env.kv[3][0] = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS";
    env.kv[3][1] = "TRUE";
    resolve_ok(OB_SVC_S3, "eu-west-1", &env, cfg, "local", &ep);
    assert_string_equal(ep.url, "https://s3.eu-west-1.amazonaws.com");
    assert_false(ep.is_override);
    assert_false(ep.path_style);
    env.kv[3][1] = "false";
    resolve_ok(OB_SVC_S3, "eu-west-1", &env, cfg, "local", &ep);
    assert_true(ep.is_override);
    /* The environment's "false" beats the profile's "true". */
    resolve_ok(OB_SVC_S3, "eu-west-1", &env, cfg, "ignore", &ep);
    assert_true(ep.is_override);
    assert_string_equal(ep.host, "minio:9000");
}

static void test_config_overrides(void **state)
{
    const ob_awsconfig_t *cfg = *state;
    ob_endpoint_t ep;
    char err[512];

    /* [services local] entries. */
    resolve_ok(OB_SVC_S3, "us-east-1", NULL, cfg, "local", &ep);
    assert_string_equal(ep.url, "http://localhost:4566");
    assert_string_equal(ep.host, "localhost:4566");
    assert_true(ep.path_style);
    resolve_ok(OB_SVC_STS, "us-east-1", NULL, cfg, "local", &ep);
    assert_string_equal(ep.url, "http://localhost:4566");
    assert_string_equal(ep.base_path, "/sts");
    resolve_ok(OB_SVC_CUR, "eu-west-1", NULL, cfg, "local", &ep);
    assert_string_equal(ep.url, "https://cur.example.test:8443");
    assert_string_equal(ep.signing_region, "us-east-1");
    /* Not in the services section: the profile's endpoint_url. */
    resolve_ok(OB_SVC_CLOUDFORMATION, "us-east-1", NULL, cfg, "local", &ep);
    assert_string_equal(ep.url, "http://global.example.test:9000");
    assert_true(ep.is_override);
    /* A bad URL names where it came from. */
    assert_int_equal(ob_endpoint_resolve(OB_SVC_ORGANIZATIONS, "us-east-1", fake_getenv, NULL, cfg,
                                         "local", &ep, err, sizeof(err)),
                     OB_ERR_CONFIG);
    assert_non_null(strstr(err, "[services local] organizations.endpoint_url"));
    assert_string_equal(ep.url, "");

    resolve_ok(OB_SVC_S3, "eu-west-1", NULL, cfg, "globalonly", &ep);
    assert_string_equal(ep.url, "https://proxy.example.test");
    assert_string_equal(ep.base_path, "/base");

    /* A profile naming a missing services section is an error... */
    assert_int_equal(resolve_err(OB_SVC_S3, "eu-west-1", NULL, cfg, "dangling", err, sizeof(err)),
                     OB_ERR_CONFIG);
    assert_non_null(strstr(err, "'missing', which does not exist"));
    /* ...unless the environment decides first, as in botocore. */
    fake_env_t env = {{{"AWS_ENDPOINT_URL", "http://127.0.0.1:80/a/b/"}}};
    resolve_ok(OB_SVC_S3, "eu-west-1", &env, cfg, "dangling", &ep);
    assert_string_equal(ep.url, "http://127.0.0.1");
    assert_string_equal(ep.base_path, "/a/b");

    /* ignore_configured_endpoint_urls in the profile. */
    resolve_ok(OB_SVC_S3, "us-east-1", NULL, cfg, "ignore", &ep);
    assert_string_equal(ep.url, "https://s3.us-east-1.amazonaws.com");

    /* No config, or a profile without endpoints: standard. */
    resolve_ok(OB_SVC_S3, "eu-west-1", NULL, cfg, NULL, &ep);
    assert_false(ep.is_override);
}

static void test_addressing_style(void **state)
{
    const ob_awsconfig_t *cfg = *state;
    ob_endpoint_t ep;
    char err[512];
    resolve_ok(OB_SVC_S3, "eu-west-1", NULL, cfg, "pathstyle", &ep);
    assert_false(ep.is_override);
    assert_true(ep.path_style);
    /* dev: addressing_style = virtual (credentials file) even behind an override. */
    fake_env_t env = {{{"AWS_ENDPOINT_URL_S3", "http://localhost:9000"}}};
    resolve_ok(OB_SVC_S3, "eu-west-1", &env, cfg, "dev", &ep);
    assert_true(ep.is_override);
    assert_false(ep.path_style);
    assert_int_equal(resolve_err(OB_SVC_S3, "eu-west-1", NULL, cfg, "badstyle", err, sizeof(err)),
                     OB_ERR_CONFIG);
    assert_non_null(strstr(err, "sideways"));
    /* Other services do not care. */
    resolve_ok(OB_SVC_STS, "eu-west-1", NULL, cfg, "badstyle", &ep);
}

static void test_bad_override_urls(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "ftp://host",        "localhost:4566",      "http://",
        "http:///path",      "http://user:pw@host", "http://host:0",
        "http://host:65536", "http://host:123456",  "http://host:abc",
        "http://host:",      "http://host/p?x=1",   "http://host#frag",
        "http://ho st",      "http://[::1",         "http://[zz::1]",
        "http://[::1]x",     "http://-host",        "http://a..b",
        "http://host/pa th", "http://host/%zz",     "http://host/%2",
        " http://host",      "http://host\r\nX: y", "https://.example.com",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fake_env_t env = {{{"AWS_ENDPOINT_URL_STS", bad[i]}}};
        ob_endpoint_t ep;
        char err[512] = "";
        ob_err_t e = ob_endpoint_resolve(OB_SVC_STS, "us-east-1", fake_getenv, &env, NULL, NULL,
                                         &ep, err, sizeof(err));
        if (e != OB_ERR_CONFIG || !strstr(err, "AWS_ENDPOINT_URL_STS"))
            fail_msg("'%s' accepted or unclear: %s %s", bad[i], ob_err2str(e), err);
        assert_string_equal(ep.host, "");
    }
    static const struct {
        const char *in, *url, *host, *base;
    } good[] = {
        {"http://[::1]:9000", "http://[::1]:9000", "[::1]:9000", ""},
        {"HTTPS://Example.COM:443/", "https://example.com", "example.com", ""},
        {"https://example.com:80", "https://example.com:80", "example.com:80", ""},
        {"http://minio_1:9000/a%20b/c", "http://minio_1:9000", "minio_1:9000", "/a%20b/c"},
        {"http://10.0.0.1", "http://10.0.0.1", "10.0.0.1", ""},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        fake_env_t env = {{{"AWS_ENDPOINT_URL", good[i].in}}};
        ob_endpoint_t ep;
        resolve_ok(OB_SVC_STS, "us-east-1", &env, NULL, NULL, &ep);
        assert_string_equal(ep.url, good[i].url);
        assert_string_equal(ep.host, good[i].host);
        assert_string_equal(ep.base_path, good[i].base);
    }
}

static void check_s3(const ob_endpoint_t *ep, const char *bucket, const char *key, const char *host,
                     const char *path)
{
    ob_buf_t p = {0}, h = {0};
    ob_buf_puts(&p, "stale");
    assert_int_equal(ob_s3_url(ep, bucket, key, &p, &h), OB_OK);
    assert_string_equal(h.data, host);
    assert_string_equal(p.data, path);
    ob_buf_free(&p);
    ob_buf_free(&h);
}

static void test_s3_url(void **state)
{
    (void)state;
    ob_endpoint_t ep;
    resolve_ok(OB_SVC_S3, "eu-west-1", NULL, NULL, NULL, &ep);
    check_s3(&ep, "my-bucket", NULL, "my-bucket.s3.eu-west-1.amazonaws.com", "/");
    check_s3(&ep, "my-bucket", "dir/a b+c~.txt", "my-bucket.s3.eu-west-1.amazonaws.com",
             "/dir/a%20b%2Bc~.txt");
    check_s3(&ep, "b01", "\xC3\xBC/%/?#", "b01.s3.eu-west-1.amazonaws.com", "/%C3%BC/%25/%3F%23");
    /* Names that cannot be a TLS-valid host label go path style. */
    check_s3(&ep, "my.bucket", "dir/x", "s3.eu-west-1.amazonaws.com", "/my.bucket/dir/x");
    check_s3(&ep, "MyLegacy_Bucket", NULL, "s3.eu-west-1.amazonaws.com", "/MyLegacy_Bucket");
    check_s3(&ep, "ab", NULL, "s3.eu-west-1.amazonaws.com", "/ab");
    check_s3(&ep, "bucket-", NULL, "s3.eu-west-1.amazonaws.com", "/bucket-");

    /* Overrides: path style under the base path. */
    fake_env_t env = {{{"AWS_ENDPOINT_URL_S3", "http://localhost:4566/base/"}}};
    resolve_ok(OB_SVC_S3, "eu-west-1", &env, NULL, NULL, &ep);
    check_s3(&ep, "my-bucket", NULL, "localhost:4566", "/base/my-bucket");
    check_s3(&ep, "my-bucket", "k/v", "localhost:4566", "/base/my-bucket/k/v");
    /* Forced virtual host on an override. */
    ep.path_style = 0;
    check_s3(&ep, "my-bucket", "k", "my-bucket.localhost:4566", "/base/k");

    ob_buf_t p = {0}, h = {0};
    assert_int_equal(ob_s3_url(&ep, "", NULL, &p, &h), OB_ERR_INVALID_ARG);
    assert_int_equal(ob_s3_url(&ep, "a/b", NULL, &p, &h), OB_ERR_INVALID_ARG);
    assert_int_equal(ob_s3_url(&ep, "bucket?x", NULL, &p, &h), OB_ERR_INVALID_ARG);
    assert_int_equal(ob_s3_url(&ep, "bucket", "", &p, &h), OB_ERR_INVALID_ARG);
    assert_int_equal(ob_s3_url(NULL, "bucket", NULL, &p, &h), OB_ERR_INVALID_ARG);
    assert_int_equal(ob_s3_url(&ep, NULL, NULL, &p, &h), OB_ERR_INVALID_ARG);
    assert_int_equal(ob_s3_url(&ep, "bucket", NULL, NULL, &h), OB_ERR_INVALID_ARG);
    ob_buf_free(&p);
    ob_buf_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_region_valid),       cmocka_unit_test(test_region_resolve),
        cmocka_unit_test(test_standard_endpoints), cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_config_overrides),   cmocka_unit_test(test_addressing_style),
        cmocka_unit_test(test_bad_override_urls),  cmocka_unit_test(test_s3_url),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
