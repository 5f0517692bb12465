/*
 * ob_log: every line is one valid JSON object with the fields given, levels
 * filter, control characters and invalid UTF-8 are escaped, and long lines
 * are truncated but stay valid JSON.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ob_log.h"
#include "testutil.h"

static int fds[2];

static json_t *read_line(void)
{
    static char buf[70000];
    size_t n = 0;
    char c;
    while (n + 1 < sizeof(buf) && read(fds[0], &c, 1) == 1 && c != '\n')
        buf[n++] = c;
    buf[n] = '\0';
    json_error_t e;
    json_t *j = json_loads(buf, 0, &e);
    if (!j)
        fail_msg("not JSON: %s (%s)", buf, e.text);
    return j;
}

static int setup(void **state)
{
    if (pipe(fds) < 0)
        return -1;
    ob_log_set_fd(fds[1]);
    ob_log_set_level(OB_LOG_DEBUG);
    return 0;
}

static void test_fields(void **state)
{
    ob_log_set_service("worker-test");
    ob_logkv(OB_LOG_WARN, "kafka", "partition \"revoked\"", "topic", "onboard.bucket", "partition",
             "3", "none", NULL, NULL);
    json_t *j = read_line();
    assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(j, "service")), "worker-test");
    assert_string_equal(json_string_value(json_object_get(j, "component")), "kafka");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "partition \"revoked\"");
    assert_string_equal(json_string_value(json_object_get(j, "topic")), "onboard.bucket");
    assert_true(json_is_null(json_object_get(j, "none")));
    const char *ts = json_string_value(json_object_get(j, "ts"));
    assert_int_equal(strlen(ts), 24); /* 2026-11-26T05:50:06.123Z */
    assert_int_equal(ts[23], 'Z');
    json_decref(j);
    ob_log_set_service(NULL);
}

static void test_escaping(void **state)
{
    ob_logf(OB_LOG_INFO, "t", "tab\there\nnew \x01 bad\xff utf8 \xe2\x82\xac");
    json_t *j = read_line();
    const char *msg = json_string_value(json_object_get(j, "msg"));
    assert_non_null(strstr(msg, "tab\there\nnew \x01 bad"));
    assert_non_null(strstr(msg, "\xef\xbf\xbd utf8 \xe2\x82\xac")); /* U+FFFD, euro kept */
    json_decref(j);
}

static void test_levels(void **state)
{
    ob_log_set_level(OB_LOG_WARN);
    ob_logf(OB_LOG_INFO, "t", "hidden");
    ob_logf(OB_LOG_ERROR, "t", "shown");
    json_t *j = read_line();
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "shown");
    json_decref(j);
    ob_log_set_level(OB_LOG_DEBUG);
    assert_int_equal(ob_log_level_parse("warning"), OB_LOG_WARN);
    assert_int_equal(ob_log_level_parse("verbose"), -1);
}

static void test_truncation(void **state)
{
    char *big = malloc(40000);
    memset(big, 'a', 39999);
    big[39999] = '\0';
    ob_logkv(OB_LOG_INFO, "t", "big", "payload", big, NULL);
    json_t *j = read_line();
    assert_true(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_truncation),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
