/*
 * ob_config: defaults, file, environment precedence, kafka.* passthrough,
 * units, bounds, unknown keys, and that secrets stay out of error text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ob_config.h"
#include "testutil.h"

typedef struct fakeenv_s {
    const char *kv[16];
} fakeenv_t;

static const char *fake_getenv(const char *name, void *ctx)
{
    fakeenv_t *e = ctx;
    for (int i = 0; e->kv[i]; i += 2)
        if (!strcmp(e->kv[i], name))
            return e->kv[i + 1];
    return NULL;
}

static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/ob-config-test.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_defaults_are_valid(void **state)
{
    fakeenv_t env = {{NULL}};
    ob_config_t cfg;
    char err[256] = "";
    assert_int_equal(ob_config_load(&cfg, NULL, fake_getenv, &env, err, sizeof(err)), OB_OK);
    assert_string_equal(cfg.topic_prefix, "onboard.");
    assert_int_equal(cfg.redis_port, 6379);
    assert_int_equal(cfg.http_timeout_ms, 30000);
    assert_int_equal(cfg.http_max_body, 8 * 1024 * 1024);
    assert_int_equal(cfg.aws_max_attempts, 3);
    assert_int_equal(cfg.kafka.n, 0);
    ob_config_free(&cfg);
}

static void test_file_then_env(void **state)
{
    char *path = write_tmp("# comment\n"
                           "redis.port = 7000\n"
                           "redis.host=10.0.0.5\n"
                           "  http.timeout = 2m  \n"
                           "kafka.bootstrap.servers = k1:9092,k2:9092\n"
                           "kafka.security.protocol=SASL_SSL\n"
                           "\n");
    fakeenv_t env = {{"OB_REDIS_PORT", "7001", "OB_HTTP_MAX_BODY", "64k", NULL}};
    ob_config_t cfg;
    char err[256] = "";
    assert_int_equal(ob_config_load(&cfg, path, fake_getenv, &env, err, sizeof(err)), OB_OK);
    assert_int_equal(cfg.redis_port, 7001);          /* env beats file */
    assert_string_equal(cfg.redis_host, "10.0.0.5"); /* file beats default */
    assert_int_equal(cfg.http_timeout_ms, 120000);
    assert_int_equal(cfg.http_max_body, 65536);
    assert_string_equal(ob_cfg_kv_get(&cfg.kafka, "bootstrap.servers"), "k1:9092,k2:9092");
    assert_string_equal(ob_cfg_kv_get(&cfg.kafka, "security.protocol"), "SASL_SSL");
    ob_config_free(&cfg);
    unlink(path);
    free(path);
}

static void test_config_file_from_env_and_kafka_env(void **state)
{
    char *path = write_tmp("kafka.client.id=from-file\ninflight.max=10\n");
    setenv("OB_CONFIG_FILE", path, 1);
    setenv("OB_KAFKA_CLIENT_ID", "from-env", 1);
    setenv("OB_KAFKA_STATISTICS_INTERVAL_MS", "1000", 1);
    ob_config_t cfg;
    char err[256] = "";
    assert_int_equal(ob_config_load(&cfg, NULL, NULL, NULL, err, sizeof(err)), OB_OK);
    assert_int_equal(cfg.inflight_max, 10);
    assert_string_equal(ob_cfg_kv_get(&cfg.kafka, "client.id"), "from-env");
    assert_string_equal(ob_cfg_kv_get(&cfg.kafka, "statistics.interval.ms"), "1000");
    ob_config_free(&cfg);
    unsetenv("OB_CONFIG_FILE");
    unsetenv("OB_KAFKA_CLIENT_ID");
    unsetenv("OB_KAFKA_STATISTICS_INTERVAL_MS");
    unlink(path);
    free(path);
}

static void expect_error(const char *file_text, const char **envkv, const char *needle)
{
    char *path = file_text ? write_tmp(file_text) : NULL;
    fakeenv_t env = {{NULL}};
    for (int i = 0; envkv && envkv[i]; i++)
        env.kv[i] = envkv[i];
    ob_config_t cfg;
    char err[512] = "";
    assert_int_equal(ob_config_load(&cfg, path, fake_getenv, &env, err, sizeof(err)),
                     OB_ERR_CONFIG);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
    if (path) {
        unlink(path);
        free(path);
    }
}

static void test_errors_name_key_and_source(void **state)
{
    expect_error("redis.prot = 1\n", NULL, "unknown setting \"redis.prot\"");
    expect_error("redis.port = 1\nredis.port = 70000\n", NULL, ":2): 70000 is out of bounds");
    expect_error("http.timeout = soon\n", NULL, "cannot read \"soon\" as a duration");
    expect_error("just a line\n", NULL, "expected key = value");
    const char *env1[] = {"OB_INFLIGHT_MAX", "0", NULL};
    expect_error(NULL, env1, "OB_INFLIGHT_MAX");
    const char *env2[] = {"OB_LOG_LEVEL", "loud", NULL};
    expect_error(NULL, env2, "log.level");
}

static void test_secret_not_echoed(void **state)
{
    /* A password is a string, so it cannot fail to parse; a secret integer
     * row is made up here to prove the value stays out of the message. */
    typedef struct s_s {
        long long pin;
    } s_t;
    const ob_cfg_def_t table[] = {
        {"vault.pin", OB_CFG_INT, "1", 0, 10, offsetof(s_t, pin), 1, "a secret"}};
    fakeenv_t env = {{"OB_VAULT_PIN", "hunter2", NULL}};
    s_t s = {0};
    char err[256] = "";
    assert_int_equal(ob_cfg_load(table, 1, &s, NULL, fake_getenv, &env, NULL, err, sizeof(err)),
                     OB_ERR_CONFIG);
    assert_null(strstr(err, "hunter2"));
    assert_non_null(strstr(err, "vault.pin"));
}

static void test_unit_parsers(void **state)
{
    long long v;
    assert_int_equal(ob_cfg_parse_ms("250ms", &v), OB_OK);
    assert_int_equal(v, 250);
    assert_int_equal(ob_cfg_parse_ms("3s", &v), OB_OK);
    assert_int_equal(v, 3000);
    assert_int_equal(ob_cfg_parse_ms("1h", &v), OB_OK);
    assert_int_equal(v, 3600000);
    assert_int_equal(ob_cfg_parse_ms("42", &v), OB_OK);
    assert_int_equal(v, 42);
    assert_int_equal(ob_cfg_parse_ms("-1s", &v), OB_ERR_PARSE);
    assert_int_equal(ob_cfg_parse_ms("1 fortnight", &v), OB_ERR_PARSE);
    assert_int_equal(ob_cfg_parse_ms("99999999999999999999", &v), OB_ERR_PARSE);
    assert_int_equal(ob_cfg_parse_size("16M", &v), OB_OK);
    assert_int_equal(v, 16 * 1024 * 1024);
    assert_int_equal(ob_cfg_parse_size("9223372036854775807G", &v), OB_ERR_PARSE);
    int b;
    assert_int_equal(ob_cfg_parse_bool("Yes", &b), OB_OK);
    assert_int_equal(b, 1);
    assert_int_equal(ob_cfg_parse_bool("off", &b), OB_OK);
    assert_int_equal(b, 0);
    assert_int_equal(ob_cfg_parse_bool("maybe", &b), OB_ERR_PARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_valid),
        cmocka_unit_test(test_file_then_env),
        cmocka_unit_test(test_config_file_from_env_and_kafka_env),
        cmocka_unit_test(test_errors_name_key_and_source),
        cmocka_unit_test(test_secret_not_echoed),
        cmocka_unit_test(test_unit_parsers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
