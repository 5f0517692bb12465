/*
 * ob_redis against Redis as a managed service runs it (scripts/services.sh
 * start RUN redis_ha): TLS only, a primary, a replica and a Sentinel. The
 * client finds the primary through the Sentinel and checks the certificate
 * chain and name (a wrong CA or name never connects); a server that turns
 * out to be a replica refuses writes with READONLY, which fails the write
 * with OB_ERR_CONN (it did not run) and sends the client back to the
 * Sentinel; and a failover, asked for or by SIGKILL of the primary, is
 * followed: every write either succeeds on the new primary or fails with a
 * transport error, never silently. (That fences keep rising when a promoted
 * replica lacks the last writes is integration.lock's.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ob_log.h"
#include "ob_redis.h"
#include "testutil.h"

static const char *sentinels, *ca, *script, *dir;

static int never(void *arg)
{
    return 0;
}

static ob_redis_t *open_ha(ob_loop_t *loop, const char *ca_file, const char *name)
{
    ob_redis_opts_t o = {.host = "127.0.0.1",
                         .port = 1, /* unused: the Sentinel says where */
                         .tls_enabled = 1,
                         .tls_ca = ca_file,
                         .tls_server_name = name,
                         .sentinels = sentinels,
                         .sentinel_master = "mymaster",
                         .command_timeout_ms = 3000,
                         .connect_timeout_ms = 1000};
    char err[256];
    ob_redis_t *r = ob_redis_new(loop, &o, err, sizeof(err));
    if (!r)
        fail_msg("ob_redis_new: %s", err);
    return r;
}

/* The primary's address from the Sentinel, and TLS with checks. */
static void test_tls_through_sentinel(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_t *r = open_ha(loop, ca, NULL);
    assert_true(ob_test_run_until(loop, ob_test_redis_connected, r, 10000));
    ob_test_call_t c;
    ob_test_redis_cmd(loop, r, &c, "SET %s %s", "ob:ha:k", "v");
    assert_int_equal(c.err, OB_OK);
    assert_string_equal(c.str, "OK");
    ob_test_redis_cmd(loop, r, &c, "ROLE", NULL, NULL);
    assert_int_equal(c.err, OB_OK);
    printf("connected to %s through the Sentinel\n", ob_redis_server(r));
    ob_redis_free(r);

    /* The system's CAs do not sign the test CA's certificates; a name the
     * certificate does not carry is refused as well. Neither ever connects. */
    ob_redis_t *bad_ca = open_ha(loop, NULL, NULL);
    ob_redis_t *bad_name = open_ha(loop, ca, "redis.example.com");
    ob_test_run_until(loop, never, NULL, 3000);
    assert_false(ob_redis_connected(bad_ca));
    assert_false(ob_redis_connected(bad_name));
    assert_int_equal(ob_redis_connects(bad_ca), 0);
    assert_int_equal(ob_redis_connects(bad_name), 0);
    ob_test_call_t lost;
    memset(&lost, 0, sizeof(lost));
    assert_int_equal(ob_redis_command(bad_name, ob_test_redis_reply, &lost, "GET ob:ha:k"), OB_OK);
    assert_true(ob_test_run_until(loop, ob_test_call_done, &lost, 10000));
    assert_int_equal(lost.err, OB_ERR_TIMEOUT);
    ob_redis_free(bad_ca);
    ob_redis_free(bad_name);
    ob_loop_free(loop);
}

/* Writes go on across failovers: each one answered OK on the primary of
 * the moment, or failed as a transport error; the fences keep rising. */
static void follow_failover(const char *how)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_t *r = open_ha(loop, ca, NULL);
    assert_true(ob_test_run_until(loop, ob_test_redis_connected, r, 10000));
    char before[300];
    snprintf(before, sizeof(before), "%s", ob_redis_server(r));
    ob_test_call_t c;
    ob_test_redis_cmd(loop, r, &c, "SET %s %s", "ob:ha:fo", "before");
    assert_int_equal(c.err, OB_OK);

    char full[1024];
    snprintf(full, sizeof(full), "%s failover-redis %s %s", script, dir, how);
    pid_t pid = ob_test_sh_async(full);
    /* Writes all along: none may vanish. */
    int ok = 0, transport = 0;
    while (!ob_test_exited(pid, NULL)) {
        ob_test_redis_cmd(loop, r, &c, "INCR %s", "ob:ha:count", NULL);
        if (c.err == OB_OK && c.type == REDIS_REPLY_INTEGER)
            ok++;
        else if (c.err == OB_ERR_CONN || c.err == OB_ERR_TIMEOUT)
            transport++;
        else
            fail_msg("a write during the failover ended %s (%s)", ob_err2str(c.err), c.str);
        ob_test_run_until(loop, never, NULL, 20);
    }
    /* Then the new primary takes the writes. The old one goes on taking
     * them until the Sentinel makes it a replica (Redis's own window, which
     * min-replicas-to-write bounds); from then on it answers READONLY, and
     * the client is sent to the new one. */
    int after = 0;
    for (int i = 0; i < 200 && !after; i++) {
        ob_test_redis_cmd(loop, r, &c, "SET %s %s", "ob:ha:fo", "after");
        after = c.err == OB_OK && !strcmp(c.str, "OK") && strcmp(before, ob_redis_server(r)) != 0;
        if (!after)
            ob_test_run_until(loop, never, NULL, 100);
    }
    printf("failover (%s): %s -> %s; %d writes answered, %d failed as transport errors\n", how,
           before, ob_redis_server(r), ok, transport);
    assert_true(after);
    assert_string_not_equal(before, ob_redis_server(r));
    ob_test_redis_cmd(loop, r, &c, "ROLE", NULL, NULL);
    assert_int_equal(c.err, OB_OK);
    ob_redis_free(r);
    ob_loop_free(loop);
}

/* A write to a replica (a primary demoted behind a DNS name) is refused
 * with READONLY: the write fails as a transport error, since it did not run,
 * and the connection is made again (to whatever the name points at then). */
static void test_readonly_replica(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_t *s = open_ha(loop, ca, NULL);
    assert_true(ob_test_run_until(loop, ob_test_redis_connected, s, 10000));
    int primary = atoi(strrchr(ob_redis_server(s), ':') + 1);
    ob_redis_free(s);
    int replica = 0;
    for (int n = 1; n <= 2 && !replica; n++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/redis_ha/port%d", dir, n);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        int p = 0;
        assert_int_equal(fscanf(f, "%d", &p), 1);
        fclose(f);
        if (p != primary)
            replica = p;
    }
    assert_true(replica > 0);
    ob_redis_opts_t o = {.host = "127.0.0.1",
                         .port = replica,
                         .tls_enabled = 1,
                         .tls_ca = ca,
                         .command_timeout_ms = 3000,
                         .connect_timeout_ms = 1000};
    char err[256];
    ob_redis_t *r = ob_redis_new(loop, &o, err, sizeof(err));
    assert_non_null(r);
    assert_true(ob_test_run_until(loop, ob_test_redis_connected, r, 10000));
    ob_test_call_t c;
    ob_test_redis_cmd(loop, r, &c, "GET %s", "ob:ha:k", NULL);
    assert_int_equal(c.err, OB_OK); /* reads are fine */
    ob_test_redis_cmd(loop, r, &c, "SET %s %s", "ob:ha:k", "to-a-replica");
    assert_int_equal(c.err, OB_ERR_CONN);
    assert_true(ob_test_run_until(loop, ob_test_redis_connected, r, 10000));
    assert_int_equal(ob_redis_connects(r), 2);
    ob_redis_free(r);
    ob_loop_free(loop);
}

static void test_failover_switch(void **state)
{
    follow_failover("switch");
}

static void test_failover_kill(void **state)
{
    follow_failover("kill");
}

int main(void)
{
    sentinels = ob_test_service_env("OB_TEST_REDIS_HA_SENTINELS", "Redis with a Sentinel (TLS)");
    ca = ob_test_service_env("OB_TEST_REDIS_HA_CA", "the test CA of Redis's TLS");
    script = ob_test_service_env("OB_TEST_SERVICES_SCRIPT", "the services script");
    dir = ob_test_service_env("OB_TEST_SERVICES_DIR", "the services directory");
    ob_log_set_level(OB_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_through_sentinel),
        cmocka_unit_test(test_readonly_replica),
        cmocka_unit_test(test_failover_switch),
        cmocka_unit_test(test_failover_kill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
