/*
 * ob_redis against a real redis-server: round trips through the loop, binary
 * safe arguments, error replies, a command deadline against a paused server
 * (CLIENT PAUSE), and survival of a real Redis restart with commands queued
 * while it was down.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ob_log.h"
#include "ob_redis.h"
#include "testutil.h"

static int port;

static ob_redis_t *connect_redis(ob_loop_t *loop, long cmd_timeout)
{
    ob_redis_opts_t o = {.host = "127.0.0.1",
                         .port = port,
                         .command_timeout_ms = cmd_timeout,
                         .connect_timeout_ms = 1000};
    char err[256];
    ob_redis_t *r = ob_redis_new(loop, &o, err, sizeof(err));
    assert_non_null(r);
    assert_true(ob_test_run_until(loop, ob_test_redis_connected, r, 5000));
    return r;
}

static void test_round_trip(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_t *r = connect_redis(loop, 2000);
    ob_test_call_t c;
    ob_test_redis_cmd(loop, r, &c, "SET %s %s", "ob:test:k", "v1");
    assert_int_equal(c.err, OB_OK);
    assert_int_equal(c.type, REDIS_REPLY_STATUS);
    ob_test_redis_cmd(loop, r, &c, "GET %s", "ob:test:k", NULL);
    assert_string_equal(c.str, "v1");

    /* Binary-safe argv with an embedded NUL. */
    const char *argv[] = {"SET", "ob:test:bin", "a\0b"};
    size_t lens[] = {3, 11, 3};
    memset(&c, 0, sizeof(c));
    assert_int_equal(ob_redis_command_argv(r, ob_test_redis_reply, &c, 3, argv, lens), OB_OK);
    assert_true(ob_test_run_until(loop, ob_test_call_done, &c, 5000));
    ob_test_redis_cmd(loop, r, &c, "STRLEN %s", "ob:test:bin", NULL);
    assert_int_equal(c.integer, 3);

    /* A Redis error reply is a reply, not a transport failure. */
    ob_test_redis_cmd(loop, r, &c, "INCR %s", "ob:test:k", NULL);
    assert_int_equal(c.err, OB_OK);
    assert_int_equal(c.type, REDIS_REPLY_ERROR);

    /* Many pipelined commands complete in order. */
    static ob_test_call_t many[1000];
    memset(many, 0, sizeof(many));
    ob_test_redis_cmd(loop, r, &c, "DEL %s", "ob:test:ctr", NULL);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(ob_redis_command(r, ob_test_redis_reply, &many[i], "INCR ob:test:ctr"),
                         OB_OK);
    assert_true(ob_test_run_until(loop, ob_test_call_done, &many[999], 10000));
    for (int i = 0; i < 1000; i++)
        assert_int_equal(many[i].integer, i + 1);
    assert_int_equal(ob_redis_pending(r), 0);
    ob_redis_free(r);
    ob_loop_free(loop);
}

/* CLIENT PAUSE holds every command; a 300 ms deadline must fire, the stuck
 * connection is replaced, and commands work again once the pause ends. */
static void test_deadline_and_recovery(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_t *r = connect_redis(loop, 300);
    ob_test_call_t c, slow;
    ob_test_redis_cmd(loop, r, &c, "CLIENT PAUSE %s ALL", "1500", NULL);
    assert_int_equal(c.err, OB_OK);
    ob_test_redis_cmd(loop, r, &slow, "GET %s", "ob:test:k", NULL);
    assert_int_equal(slow.err, OB_ERR_TIMEOUT);
    /* Keep trying until the pause is over; the client reconnects meanwhile. */
    int ok = 0;
    for (int i = 0; i < 40 && !ok; i++) {
        ob_test_redis_cmd(loop, r, &c, "PING", NULL, NULL);
        ok = c.err == OB_OK && !strcmp(c.str, "PONG");
    }
    assert_true(ok);
    assert_true(ob_redis_connects(r) >= 2);
    ob_redis_free(r);
    ob_loop_free(loop);
}

static int exited(void *arg)
{
    return ob_test_exited(*(pid_t *)arg, NULL);
}

static void test_survives_restart(void **state)
{
    const char *script = ob_test_service_env("OB_TEST_SERVICES_SCRIPT", "the services script");
    const char *dir = ob_test_service_env("OB_TEST_SERVICES_DIR", "the services directory");
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_t *r = connect_redis(loop, 10000);
    ob_test_call_t c;
    ob_test_redis_cmd(loop, r, &c, "SET %s %s", "ob:test:restart", "before");
    assert_int_equal(c.err, OB_OK);

    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s stop-redis %s", script, dir);
    pid_t pid = ob_test_sh_async(cmd);
    assert_true(ob_test_run_until(loop, exited, &pid, 30000));
    /* The loop notices the loss. */
    for (int i = 0; i < 50 && ob_redis_connected(r); i++)
        ob_loop_run_once(loop, 100);
    assert_false(ob_redis_connected(r));

    /* Queued while Redis is down, sent once it is back. */
    ob_test_call_t queued;
    memset(&queued, 0, sizeof(queued));
    assert_int_equal(
        ob_redis_command(r, ob_test_redis_reply, &queued, "SET %s %s", "ob:test:restart", "after"),
        OB_OK);
    snprintf(cmd, sizeof(cmd), "%s start-redis %s", script, dir);
    pid = ob_test_sh_async(cmd);
    assert_true(ob_test_run_until(loop, exited, &pid, 30000));
    assert_true(ob_test_run_until(loop, ob_test_call_done, &queued, 10000));
    assert_int_equal(queued.err, OB_OK);
    ob_test_redis_cmd(loop, r, &c, "GET %s", "ob:test:restart", NULL);
    assert_string_equal(c.str, "after");
    assert_int_equal(ob_redis_connects(r), 2);
    ob_redis_free(r);
    ob_loop_free(loop);
}

/* A private redis-server with requirepass: the right password works, a wrong
 * one makes commands fail with Redis's reason, and neither password is ever
 * written to the log. */
static void test_password(void **state)
{
    int p = ob_test_free_port();
    pid_t pid = ob_test_redis_server(p, "--requirepass 'pw-Right-7f3a'");
    char logpath[] = "/tmp/ob-redis-log-XXXXXX";
    int logfd = mkstemp(logpath);
    assert_true(logfd >= 0);
    ob_log_set_level(OB_LOG_DEBUG);
    ob_log_set_fd(logfd);
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_opts_t o = {.host = "127.0.0.1", .port = p, .password = "pw-Right-7f3a"};
    ob_redis_t *r = NULL;
    for (int i = 0; i < 50 && !(r && ob_redis_connected(r)); i++) {
        if (!r)
            r = ob_redis_new(loop, &o, NULL, 0);
        ob_test_run_until(loop, ob_test_redis_connected, r, 200);
    }
    assert_true(ob_redis_connected(r));
    ob_test_call_t c;
    ob_test_redis_cmd(loop, r, &c, "SET %s %s", "ob:test:auth", "yes");
    assert_int_equal(c.err, OB_OK);
    assert_int_equal(c.type, REDIS_REPLY_STATUS);
    ob_test_redis_cmd(loop, r, &c, "GET %s", "ob:test:auth", NULL);
    assert_string_equal(c.str, "yes");
    ob_redis_free(r);

    /* A wrong password: never connected (so a worker is not ready), the
     * command fails at once with OB_ERR_REDIS, and the refusal says why. */
    o.password = "pw-Wrong-9c1e";
    r = ob_redis_new(loop, &o, NULL, 0);
    ob_test_redis_cmd(loop, r, &c, "GET %s", "ob:test:auth", NULL);
    assert_int_equal(c.err, OB_ERR_REDIS);
    assert_false(ob_redis_connected(r));
    const char *why = ob_redis_refused(r);
    assert_non_null(why);
    assert_true(strstr(why, "NOAUTH") || strstr(why, "WRONGPASS"));
    /* It keeps trying: still refused a while later, never connected. */
    ob_test_run_until(loop, ob_test_redis_connected, r, 1500);
    assert_false(ob_redis_connected(r));
    assert_non_null(ob_redis_refused(r));
    ob_redis_free(r);
    ob_loop_free(loop);
    ob_log_set_fd(2);
    ob_log_set_level(OB_LOG_WARN);
    close(logfd);
    char *logs = ob_test_read_file(logpath, NULL);
    unlink(logpath);
    assert_non_null(logs);
    assert_non_null(strstr(logs, "AUTH failed")); /* the wrong password was reported */
    assert_non_null(strstr(logs, "refuses our commands"));
    assert_null(strstr(logs, "pw-Right"));
    assert_null(strstr(logs, "pw-Wrong"));
    free(logs);
    ob_test_kill(pid);
}

static void test_free_cancels_pending(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_opts_t o = {.host = "127.0.0.1", .port = 1, .connect_timeout_ms = 200};
    ob_redis_t *r = ob_redis_new(loop, &o, NULL, 0);
    assert_non_null(r);
    ob_test_call_t c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(ob_redis_command(r, ob_test_redis_reply, &c, "PING"), OB_OK);
    for (int i = 0; i < 3; i++)
        ob_loop_run_once(loop, 50);
    assert_false(ob_redis_connected(r));
    ob_redis_free(r);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.err, OB_ERR_CANCELLED);
    ob_loop_free(loop);
}

int main(void)
{
    port = atoi(ob_test_service_env("OB_TEST_REDIS_PORT", "redis-server"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_deadline_and_recovery),
        cmocka_unit_test(test_free_cancels_pending),
        cmocka_unit_test(test_survives_restart),
        cmocka_unit_test(test_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
