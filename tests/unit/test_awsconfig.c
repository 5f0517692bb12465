/*
 * Unit tests for ob_awsconfig against the fixtures in
 * tests/fixtures/awsconfig (their expected reading was checked against
 * botocore's configloader), plus generated files for byte-level cases.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ob_awsconfig.h"
#include "testutil.h"

#define FIX OB_FIXTURES "/awsconfig"

/* A fake environment: NULL-terminated name/value pairs. */
typedef struct fake_env_s {
    const char *kv[16][2];
} fake_env_t;

static const char *fake_getenv(const char *name, void *ctx)
{
    const fake_env_t *env = ctx;
    for (size_t i = 0; i < 16 && env->kv[i][0]; i++)
        if (strcmp(env->kv[i][0], name) == 0)
            return env->kv[i][1];
    return NULL;
}

static ob_awsconfig_t *load_env(fake_env_t *env)
{
    ob_awsconfig_t *cfg = NULL;
    char err[512] = "";
    ob_err_t e = ob_awsconfig_load(fake_getenv, env, &cfg, err, sizeof(err));
    if (e != OB_OK)
        fail_msg("load: %s: %s", ob_err2str(e), err);
    return cfg;
}

static ob_awsconfig_t *load_fixture(void)
{
    fake_env_t env = {{{"AWS_CONFIG_FILE", FIX "/config"},
                       {"AWS_SHARED_CREDENTIALS_FILE", FIX "/credentials"},
                       {"HOME", "/nonexistent"}}};
    return load_env(&env);
}

static void test_values(void **state)
{
    (void)state;
    ob_awsconfig_t *cfg = load_fixture();
    assert_string_equal(ob_awsconfig_profile(cfg), "default");

    assert_string_equal(ob_awsconfig_get(cfg, NULL, "region"), "us-west-2");
    assert_string_equal(ob_awsconfig_get(cfg, "default", "output"), "json");
    assert_string_equal(ob_awsconfig_get(cfg, "default", "credential_process"),
                        "/bin/echo hello # not a comment: the CLI has no inline comments");
    assert_string_equal(ob_awsconfig_get(cfg, "default", "aws_access_key_id"), "AKIDDEFAULT");
    /* Keys are lowercased, values trimmed at the ends only. */
    assert_string_equal(ob_awsconfig_get(cfg, "dev", "mixed_case_key"), "Value With  Spaces");
    assert_string_equal(ob_awsconfig_get(cfg, "dev", "MIXED_CASE_KEY"), "Value With  Spaces");
    /* "key: value" works; multi-line plain values keep their lines. */
    assert_string_equal(ob_awsconfig_get(cfg, "dev", "multi"), "first\nsecond line\n\nthird");
    assert_string_equal(ob_awsconfig_get(cfg, "dev", "empty"), "");
    assert_null(ob_awsconfig_get(cfg, "dev", "nope"));
    assert_null(ob_awsconfig_get(cfg, "nope", "region"));

    /* Profile names as botocore's shlex split sees them. */
    assert_string_equal(ob_awsconfig_get(cfg, "spaced", "region"), "ap-southeast-2");
    assert_string_equal(ob_awsconfig_get(cfg, "quoted name", "region"), "sa-east-1");
    assert_false(ob_awsconfig_has(cfg, OB_AWSCONFIG_PROFILE, "too"));
    assert_false(ob_awsconfig_has(cfg, OB_AWSCONFIG_PROFILE, "too many words"));
    assert_false(ob_awsconfig_has(cfg, OB_AWSCONFIG_PROFILE, "x"));
    assert_false(ob_awsconfig_has(cfg, OB_AWSCONFIG_PROFILE, "plugins"));
    assert_true(ob_awsconfig_has(cfg, OB_AWSCONFIG_PROFILE, "creds-only"));
    assert_true(ob_awsconfig_has(cfg, OB_AWSCONFIG_SSO_SESSION, "corp"));
    assert_true(ob_awsconfig_has(cfg, OB_AWSCONFIG_SERVICES, "local"));
    assert_false(ob_awsconfig_has(cfg, OB_AWSCONFIG_SERVICES, "missing"));
    assert_false(ob_awsconfig_has(NULL, OB_AWSCONFIG_PROFILE, "default"));

    /* In the credentials file "[profile dev]" is a profile of that name. */
    assert_string_equal(ob_awsconfig_get(cfg, "profile dev", "aws_access_key_id"),
                        "literally-named-profile-dev");
    assert_string_equal(ob_awsconfig_get(cfg, "creds-only", "aws_access_key_id"), "AKIDCREDSONLY");

    /* Other section kinds. */
    assert_string_equal(
        ob_awsconfig_section_get(cfg, OB_AWSCONFIG_SSO_SESSION, "corp", NULL, "sso_start_url"),
        "https://example.awsapps.com/start");
    assert_string_equal(
        ob_awsconfig_section_get(cfg, OB_AWSCONFIG_SERVICES, "local", "s3", "endpoint_url"),
        "http://localhost:4566");
    assert_null(ob_awsconfig_section_get(cfg, OB_AWSCONFIG_SERVICES, NULL, "s3", "endpoint_url"));
    ob_awsconfig_destroy(cfg);

    /* NULL handle: nothing, never a crash. */
    assert_null(ob_awsconfig_get(NULL, "default", "region"));
    assert_null(ob_awsconfig_get_sub(NULL, "default", "s3", "addressing_style"));
    assert_string_equal(ob_awsconfig_profile(NULL), "default");
    ob_awsconfig_destroy(NULL);
}

static void test_nested(void **state)
{
    (void)state;
    ob_awsconfig_t *cfg = load_fixture();
    assert_string_equal(ob_awsconfig_get_sub(cfg, "default", "s3", "addressing_style"), "path");
    assert_string_equal(ob_awsconfig_get_sub(cfg, NULL, "s3", "max_concurrent_requests"), "10");
    /* A nested key has no plain value, and a plain key no nested ones. */
    assert_null(ob_awsconfig_get(cfg, "default", "s3"));
    assert_null(ob_awsconfig_get_sub(cfg, "default", "region", "x"));
    /* Nested keys are matched as written. */
    assert_null(ob_awsconfig_get_sub(cfg, "default", "s3", "Addressing_Style"));
    assert_null(ob_awsconfig_get_sub(cfg, "default", NULL, "region"));
    ob_awsconfig_destroy(cfg);
}

static void test_credentials_precedence(void **state)
{
    (void)state;
    ob_awsconfig_t *cfg = load_fixture();
    /* The credentials file wins for the same profile... */
    assert_string_equal(ob_awsconfig_get(cfg, "dev", "region"), "us-east-2");
    assert_string_equal(ob_awsconfig_get(cfg, "dev", "aws_access_key_id"), "AKIDDEV");
    assert_string_equal(ob_awsconfig_get(cfg, "dev", "aws_session_token"), "tokendev");
    /* ...key by key: config-only keys remain visible... */
    assert_string_equal(ob_awsconfig_get(cfg, "dev", "multi"), "first\nsecond line\n\nthird");
    /* ...and a nested key is replaced as a whole. */
    assert_string_equal(ob_awsconfig_get_sub(cfg, "dev", "s3", "addressing_style"), "virtual");
    ob_awsconfig_destroy(cfg);

    /* [default] and [profile default]: the later section wins whole. */
    ob_awsconfig_t *c2 = NULL;
    char err[256];
    assert_int_equal(
        ob_awsconfig_load_files(FIX "/default_twice.config", NULL, &c2, err, sizeof(err)), OB_OK);
    assert_string_equal(ob_awsconfig_get(c2, "default", "region"), "us-west-1");
    assert_null(ob_awsconfig_get(c2, "default", "only_in_profile_default"));
    ob_awsconfig_destroy(c2);
}

static void test_profile_selection(void **state)
{
    (void)state;
    fake_env_t env = {{{"AWS_CONFIG_FILE", FIX "/config"},
                       {"AWS_SHARED_CREDENTIALS_FILE", FIX "/credentials"},
                       {"AWS_PROFILE", "dev"},
                       {"AWS_DEFAULT_PROFILE", "local"}}};
    ob_awsconfig_t *cfg = load_env(&env);
    assert_string_equal(ob_awsconfig_profile(cfg), "dev");
    assert_string_equal(ob_awsconfig_get(cfg, NULL, "region"), "us-east-2");
    ob_awsconfig_destroy(cfg);

    env.kv[2][1] = ""; /* empty counts as unset */
    cfg = load_env(&env);
    assert_string_equal(ob_awsconfig_profile(cfg), "local");
    assert_string_equal(ob_awsconfig_get(cfg, NULL, "services"), "local");
    ob_awsconfig_destroy(cfg);

    /* A profile only in the credentials file is fine. */
    env.kv[2][1] = "creds-only";
    cfg = load_env(&env);
    assert_string_equal(ob_awsconfig_get(cfg, NULL, "aws_access_key_id"), "AKIDCREDSONLY");
    ob_awsconfig_destroy(cfg);

    env.kv[2][1] = "no-such-profile";
    char err[512];
    cfg = (ob_awsconfig_t *)1;
    assert_int_equal(ob_awsconfig_load(fake_getenv, &env, &cfg, err, sizeof(err)), OB_ERR_CONFIG);
    assert_null(cfg);
    assert_non_null(strstr(err, "no-such-profile"));
    assert_non_null(strstr(err, "AWS_PROFILE"));
}

static void test_paths(void **state)
{
    (void)state;
    /* Missing files are empty. */
    fake_env_t env = {{{"AWS_CONFIG_FILE", "/nonexistent/config"},
                       {"AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"}}};
    ob_awsconfig_t *cfg = load_env(&env);
    assert_null(ob_awsconfig_get(cfg, NULL, "region"));
    assert_false(ob_awsconfig_has(cfg, OB_AWSCONFIG_PROFILE, "default"));
    ob_awsconfig_destroy(cfg);

    /* Default paths under HOME. */
    fake_env_t home = {{{"HOME", FIX "/home"}}};
    cfg = load_env(&home);
    assert_string_equal(ob_awsconfig_get(cfg, NULL, "region"), "eu-north-1");
    assert_string_equal(ob_awsconfig_get(cfg, "home", "region"), "eu-south-1");
    assert_string_equal(ob_awsconfig_get(cfg, "home", "aws_access_key_id"), "AKIDHOME");
    ob_awsconfig_destroy(cfg);

    /* "~" in the variables, with a trailing slash on HOME. */
    fake_env_t tilde = {{{"HOME", FIX "/home/"},
                         {"AWS_CONFIG_FILE", "~/.aws/config"},
                         {"AWS_SHARED_CREDENTIALS_FILE", "~"}}};
    char err[512];
    cfg = NULL;
    /* "~" alone is the home directory: a directory is not a readable file. */
    assert_int_equal(ob_awsconfig_load(fake_getenv, &tilde, &cfg, err, sizeof(err)), OB_ERR_IO);
    assert_null(cfg);
    tilde.kv[2][1] = "~/.aws/credentials";
    cfg = load_env(&tilde);
    assert_string_equal(ob_awsconfig_get(cfg, "home", "region"), "eu-south-1");
    ob_awsconfig_destroy(cfg);

    /* An explicit path whose ~user cannot be expanded is an error. */
    fake_env_t nouser = {{{"AWS_CONFIG_FILE", "~no-such-user-xyz/.aws/config"},
                          {"AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"}}};
    assert_int_equal(ob_awsconfig_load(fake_getenv, &nouser, &cfg, err, sizeof(err)),
                     OB_ERR_CONFIG);
    assert_non_null(strstr(err, "cannot expand"));
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *file, *why;
    } bad[] = {
        {"bad_dup_section.config", ":5: section [default] appears twice"},
        {"bad_dup_key.config", ":4: key 'region' appears twice"},
        {"bad_no_section.config", ":2: a key before any [section]"},
        {"bad_no_delim.config", ":3: expected 'key = value'"},
        {"bad_nested.config", ":2: the nested value of 's3' has a line without '='"},
        {"bad_empty_header.config", ":2: expected 'key = value'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char path[512], err[512] = "";
        snprintf(path, sizeof(path), FIX "/%s", bad[i].file);
        ob_awsconfig_t *cfg = NULL;
        ob_err_t e = ob_awsconfig_load_files(path, NULL, &cfg, err, sizeof(err));
        if (e != OB_ERR_PARSE || !strstr(err, bad[i].why) || !strstr(err, bad[i].file))
            fail_msg("%s: got %s '%s', want '%s'", bad[i].file, ob_err2str(e), err, bad[i].why);
        assert_null(cfg);
    }
    /* Credentials file sections are checked the same way. */
    char err[512];
    ob_awsconfig_t *cfg = NULL;
    assert_int_equal(
        ob_awsconfig_load_files(NULL, FIX "/bad_dup_key.config", &cfg, err, sizeof(err)),
        OB_ERR_PARSE);
    assert_int_equal(ob_awsconfig_load_files(NULL, NULL, NULL, err, sizeof(err)),
                     OB_ERR_INVALID_ARG);
}

static char *write_temp(const void *data, size_t len)
{
    char *path = strdup("/tmp/ob_awsconfig_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    return path;
}

static void test_bytes(void **state)
{
    (void)state;
    char err[512];
    ob_awsconfig_t *cfg = NULL;

    /* UTF-8 BOM, CRLF line ends, tabs as indentation, trailing blank lines. */
    static const char crlf[] = "\xEF\xBB\xBF[default]\r\nregion = eu-west-3\r\n"
                               "s3 =\r\n\taddressing_style = virtual\r\n\r\n\r\n"
                               "[profile x]\r\nk=v\r\n";
    char *p = write_temp(crlf, sizeof(crlf) - 1);
    assert_int_equal(ob_awsconfig_load_files(p, NULL, &cfg, err, sizeof(err)), OB_OK);
    assert_string_equal(ob_awsconfig_get(cfg, "default", "region"), "eu-west-3");
    assert_string_equal(ob_awsconfig_get_sub(cfg, "default", "s3", "addressing_style"), "virtual");
    assert_string_equal(ob_awsconfig_get(cfg, "x", "k"), "v");
    ob_awsconfig_destroy(cfg);
    unlink(p);
    free(p);

    /* An empty file and a file without a final newline. */
    p = write_temp("", 0);
    assert_int_equal(ob_awsconfig_load_files(p, p, &cfg, err, sizeof(err)), OB_OK);
    ob_awsconfig_destroy(cfg);
    unlink(p);
    free(p);
    p = write_temp("[default]\nregion=ca-central-1", 29);
    assert_int_equal(ob_awsconfig_load_files(p, NULL, &cfg, err, sizeof(err)), OB_OK);
    assert_string_equal(ob_awsconfig_get(cfg, NULL, "region"), "ca-central-1");
    ob_awsconfig_destroy(cfg);
    unlink(p);
    free(p);

    /* NUL bytes. */
    p = write_temp("[default]\nregion=a\0b\n", 21);
    assert_int_equal(ob_awsconfig_load_files(p, NULL, &cfg, err, sizeof(err)), OB_ERR_PARSE);
    unlink(p);
    free(p);

    /* Too large. */
    size_t big = OB_AWSCONFIG_MAX_FILE + 10;
    char *data = malloc(big);
    memset(data, '#', big);
    p = write_temp(data, big);
    free(data);
    assert_int_equal(ob_awsconfig_load_files(p, NULL, &cfg, err, sizeof(err)), OB_ERR_TOO_LARGE);
    unlink(p);
    free(p);

    /* Unreadable (only meaningful when not running as root). */
    if (geteuid() != 0) {
        p = write_temp("[default]\n", 10);
        chmod(p, 0);
        assert_int_equal(ob_awsconfig_load_files(p, NULL, &cfg, err, sizeof(err)), OB_ERR_IO);
        unlink(p);
        free(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_nested),
        cmocka_unit_test(test_credentials_precedence),
        cmocka_unit_test(test_profile_selection),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
