/*
 * ob_lock against a real redis-server: mutual exclusion between two
 * connections (two replicas), fencing tokens that increase, a stale holder's
 * state write refused, renewal keeping a lock past its TTL, loss detected
 * when the lock is taken away, and release only by the holder.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ob_lock.h"
#include "ob_log.h"
#include "testutil.h"

static int port;
static char account[16];

typedef struct ev_s {
    int n;
    ob_lock_event_t last;
    uint64_t fence;
    long retry_ms;
} ev_t;

static void on_lock(ob_lock_t *l, ob_lock_event_t e, uint64_t fence, long retry_ms, ob_err_t err,
                    void *arg)
{
    ev_t *ev = arg;
    ev->n++;
    ev->last = e;
    ev->fence = fence;
    ev->retry_ms = retry_ms;
}

static int ev_seen(void *arg)
{
    return ((ev_t *)arg)->n > 0;
}

static ob_redis_t *conn(ob_loop_t *loop)
{
    ob_redis_opts_t o = {.host = "127.0.0.1", .port = port};
    return ob_redis_new(loop, &o, NULL, 0);
}

typedef struct cmd_s {
    int done;
    long long integer;
    char str[128];
    ob_err_t err;
} cmd_t;

static void on_cmd(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    cmd_t *c = arg;
    c->done = 1;
    c->err = err;
    if (reply) {
        c->integer = reply->integer;
        snprintf(c->str, sizeof(c->str), "%s", reply->str ? reply->str : "");
    }
}

static int cmd_done(void *arg)
{
    return ((cmd_t *)arg)->done;
}

static void redis_cmd(ob_loop_t *loop, ob_redis_t *r, cmd_t *c, const char *fmt, const char *a)
{
    memset(c, 0, sizeof(*c));
    assert_int_equal(ob_redis_command(r, on_cmd, c, fmt, a), OB_OK);
    assert_true(ob_test_run_until(loop, cmd_done, c, 5000));
}

typedef struct wr_s {
    int done;
    ob_err_t err;
} wr_t;

static void on_write(ob_err_t err, void *arg)
{
    wr_t *w = arg;
    w->done = 1;
    w->err = err;
}

static int wr_done(void *arg)
{
    return ((wr_t *)arg)->done;
}

static ob_err_t state_write(ob_loop_t *loop, ob_redis_t *r, uint64_t fence, const char *stage)
{
    const char *fields[] = {"stage", stage, NULL};
    wr_t w = {0, OB_OK};
    assert_int_equal(ob_lock_state_write(r, account, fence, fields, on_write, &w), OB_OK);
    assert_true(ob_test_run_until(loop, wr_done, &w, 5000));
    return w.err;
}

static void test_exclusion_and_fencing(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_t *a = conn(loop), *b = conn(loop);
    ev_t ea = {0}, eb = {0};
    ob_lock_t *la = ob_lock_acquire(a, loop, account, 5000, on_lock, &ea);
    assert_true(ob_test_run_until(loop, ev_seen, &ea, 5000));
    assert_int_equal(ea.last, OB_LOCK_ACQUIRED);
    uint64_t f1 = ea.fence;
    assert_true(f1 >= 1);

    ob_lock_t *lb = ob_lock_acquire(b, loop, account, 5000, on_lock, &eb);
    assert_true(ob_test_run_until(loop, ev_seen, &eb, 5000));
    assert_int_equal(eb.last, OB_LOCK_BUSY);
    assert_true(eb.retry_ms > 0 && eb.retry_ms <= 5000);
    ob_lock_release(lb);

    assert_int_equal(state_write(loop, a, f1, "bucket"), OB_OK);
    ob_lock_release(la);

    memset(&eb, 0, sizeof(eb));
    lb = ob_lock_acquire(b, loop, account, 5000, on_lock, &eb);
    assert_true(ob_test_run_until(loop, ev_seen, &eb, 5000));
    assert_int_equal(eb.last, OB_LOCK_ACQUIRED);
    assert_true(eb.fence > f1);
    assert_int_equal(state_write(loop, b, eb.fence, "cur"), OB_OK);
    /* The old holder wakes up and writes: refused, state unchanged. */
    assert_int_equal(state_write(loop, a, f1, "stale"), OB_ERR_STATE);
    cmd_t c;
    char key[64];
    snprintf(key, sizeof(key), "ob:{%s}:state", account);
    redis_cmd(loop, a, &c, "HGET %s stage", key);
    assert_string_equal(c.str, "cur");
    ob_lock_release(lb);
    for (int i = 0; i < 5; i++)
        ob_loop_run_once(loop, 20);
    snprintf(key, sizeof(key), "ob:{%s}:lock", account);
    redis_cmd(loop, a, &c, "EXISTS %s", key);
    assert_int_equal(c.integer, 0);
    ob_redis_free(a);
    ob_redis_free(b);
    ob_loop_free(loop);
}

static void test_renewal_and_loss(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_t *a = conn(loop);
    ev_t ea = {0};
    ob_lock_t *la = ob_lock_acquire(a, loop, account, 300, on_lock, &ea);
    assert_true(ob_test_run_until(loop, ev_seen, &ea, 5000));
    assert_int_equal(ea.last, OB_LOCK_ACQUIRED);
    /* Three TTLs later the lock is still ours thanks to renewals. */
    for (int i = 0; i < 18; i++)
        ob_loop_run_once(loop, 50);
    assert_int_equal(ea.n, 1);
    cmd_t c;
    char key[64];
    snprintf(key, sizeof(key), "ob:{%s}:lock", account);
    redis_cmd(loop, a, &c, "PTTL %s", key);
    assert_true(c.integer > 0);
    /* Someone takes it away: the next renewal reports the loss. */
    redis_cmd(loop, a, &c, "SET %s intruder", key);
    for (int i = 0; i < 20 && ea.n < 2; i++)
        ob_loop_run_once(loop, 50);
    assert_int_equal(ea.n, 2);
    assert_int_equal(ea.last, OB_LOCK_LOST);
    ob_lock_release(la);
    for (int i = 0; i < 5; i++)
        ob_loop_run_once(loop, 20);
    /* Our release did not delete the intruder's lock. */
    redis_cmd(loop, a, &c, "GET %s", key);
    assert_string_equal(c.str, "intruder");
    redis_cmd(loop, a, &c, "DEL %s", key);
    ob_redis_free(a);
    ob_loop_free(loop);
}

/* Redis loses the account's keys (a replica promoted without the last
 * writes, a flush): the next holder's fence is still above the fences of
 * holders still at work, so its writes go through and theirs are refused. */
static void test_fence_survives_lost_keys(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_t *a = conn(loop), *b = conn(loop);
    ev_t ea = {0}, eb = {0};
    ob_lock_t *la = ob_lock_acquire(a, loop, account, 5000, on_lock, &ea);
    assert_true(ob_test_run_until(loop, ev_seen, &ea, 5000));
    assert_int_equal(ea.last, OB_LOCK_ACQUIRED);
    cmd_t c;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "DEL ob:{%s}:lock ob:{%s}:fence ob:{%s}:state", account, account,
             account);
    redis_cmd(loop, b, &c, cmd, NULL);
    assert_true(c.integer >= 2); /* the state too, if an earlier test left one */
    ob_lock_t *lb = ob_lock_acquire(b, loop, account, 5000, on_lock, &eb);
    assert_true(ob_test_run_until(loop, ev_seen, &eb, 5000));
    assert_int_equal(eb.last, OB_LOCK_ACQUIRED);
    assert_true(eb.fence > ea.fence);
    assert_int_equal(state_write(loop, b, eb.fence, "after"), OB_OK);
    assert_int_equal(state_write(loop, a, ea.fence, "stale"), OB_ERR_STATE);
    char key[64];
    snprintf(key, sizeof(key), "ob:{%s}:state", account);
    redis_cmd(loop, a, &c, "HGET %s stage", key);
    assert_string_equal(c.str, "after");
    /* Fences still rise one by one when the clock has not moved on. */
    snprintf(cmd, sizeof(cmd), "SET ob:{%s}:fence 8000000000000000", account);
    redis_cmd(loop, a, &c, cmd, NULL);
    ob_lock_release(lb);
    memset(&eb, 0, sizeof(eb));
    lb = ob_lock_acquire(b, loop, account, 5000, on_lock, &eb);
    assert_true(ob_test_run_until(loop, ev_seen, &eb, 5000));
    assert_int_equal(eb.last, OB_LOCK_ACQUIRED);
    assert_true(eb.fence == 8000000000000001ULL);
    ob_lock_release(la);
    ob_lock_release(lb);
    for (int i = 0; i < 5; i++)
        ob_loop_run_once(loop, 20);
    ob_redis_free(a);
    ob_redis_free(b);
    ob_loop_free(loop);
}

/* A lock taken for a partition: another owner waits, the next holder of the
 * same partition takes it over at once (the previous one died or lost the
 * partition), with a higher fence, and the previous holder finds it lost. */
static void test_takeover_by_the_same_owner(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_t *a = conn(loop), *b = conn(loop);
    ev_t ea = {0}, eb = {0}, ec = {0};
    ob_lock_t *la = ob_lock_acquire_as(a, loop, account, 900, "t.iam:3", on_lock, &ea);
    assert_true(ob_test_run_until(loop, ev_seen, &ea, 5000));
    assert_int_equal(ea.last, OB_LOCK_ACQUIRED);
    /* Another partition's holder (or one without an owner) waits. */
    ob_lock_t *lb = ob_lock_acquire_as(b, loop, account, 900, "t.iam:4", on_lock, &eb);
    assert_true(ob_test_run_until(loop, ev_seen, &eb, 5000));
    assert_int_equal(eb.last, OB_LOCK_BUSY);
    ob_lock_release(lb);
    memset(&eb, 0, sizeof(eb));
    lb = ob_lock_acquire(b, loop, account, 900, on_lock, &eb);
    assert_true(ob_test_run_until(loop, ev_seen, &eb, 5000));
    assert_int_equal(eb.last, OB_LOCK_BUSY);
    ob_lock_release(lb);
    /* A name that only starts like it is another owner. */
    memset(&eb, 0, sizeof(eb));
    lb = ob_lock_acquire_as(b, loop, account, 900, "t.iam:", on_lock, &eb);
    assert_true(ob_test_run_until(loop, ev_seen, &eb, 5000));
    assert_int_equal(eb.last, OB_LOCK_BUSY);
    ob_lock_release(lb);
    /* The partition's next holder. */
    ob_lock_t *lc = ob_lock_acquire_as(b, loop, account, 900, "t.iam:3", on_lock, &ec);
    assert_true(ob_test_run_until(loop, ev_seen, &ec, 5000));
    assert_int_equal(ec.last, OB_LOCK_ACQUIRED);
    assert_true(ec.fence > ea.fence);
    assert_int_equal(state_write(loop, b, ec.fence, "taken-over"), OB_OK);
    assert_int_equal(state_write(loop, a, ea.fence, "stale"), OB_ERR_STATE);
    /* The previous holder's next renewal (a third of the TTL) finds it lost. */
    for (int i = 0; i < 20 && ea.n < 2; i++)
        ob_loop_run_once(loop, 50);
    assert_int_equal(ea.last, OB_LOCK_LOST);
    ob_lock_release(la);
    ob_lock_release(lc);
    for (int i = 0; i < 5; i++)
        ob_loop_run_once(loop, 20);
    cmd_t c;
    char key[64];
    snprintf(key, sizeof(key), "ob:{%s}:lock", account);
    redis_cmd(loop, a, &c, "EXISTS %s", key);
    assert_int_equal(c.integer, 0);
    ob_redis_free(a);
    ob_redis_free(b);
    ob_loop_free(loop);
}

int main(void)
{
    port = atoi(ob_test_service_env("OB_TEST_REDIS_PORT", "redis-server"));
    snprintf(account, sizeof(account), "9%011d", (int)getpid());
    ob_log_set_level(OB_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exclusion_and_fencing),
        cmocka_unit_test(test_renewal_and_loss),
        cmocka_unit_test(test_takeover_by_the_same_owner),
        cmocka_unit_test(test_fence_survives_lost_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
