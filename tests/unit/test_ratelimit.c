/*
 * ob_ratelimit without Redis (redis NULL: local buckets only): the spec
 * parser's answers and error texts, option checks, and the local machinery
 * (FIFO grants from the loop, never inside acquire; reconfiguring with waits
 * pending).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_log.h"
#include "ob_ratelimit.h"
#include "testutil.h"

typedef struct fixture_s {
    ob_loop_t *loop;
    ob_ratelimit_t *rl;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->loop = ob_loop_new(NULL, 0);
    f->rl = ob_ratelimit_new(f->loop, NULL, NULL, NULL, 0);
    if (!f->loop || !f->rl)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    ob_ratelimit_free(f->rl);
    ob_loop_free(f->loop);
    free(f);
    return 0;
}

static void expect_config_error(ob_ratelimit_t *rl, const char *spec, const char *named)
{
    char err[256] = "";
    assert_int_equal(ob_ratelimit_configure(rl, spec, err, sizeof(err)), OB_ERR_CONFIG);
    if (!strstr(err, named))
        fail_msg("spec \"%s\": error \"%s\" does not name \"%s\"", spec, err, named);
}

static void test_spec_errors(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(ob_ratelimit_configure(f->rl, "keep.Me=3", NULL, 0), OB_OK);
    expect_config_error(f->rl, "sts.AssumeRole", "sts.AssumeRole");
    expect_config_error(f->rl, "x=0", "x=0");
    expect_config_error(f->rl, "x=abc", "x=abc");
    expect_config_error(f->rl, "x=5/0", "x=5/0");
    expect_config_error(f->rl, "x=-1", "x=-1");
    expect_config_error(f->rl, "x=", "x=");
    expect_config_error(f->rl, "x=5/", "x=5/");
    expect_config_error(f->rl, "x=5/0.5", "x=5/0.5");
    expect_config_error(f->rl, "x=inf", "x=inf");
    expect_config_error(f->rl, "x=nan", "x=nan");
    expect_config_error(f->rl, "x=5x", "x=5x");
    expect_config_error(f->rl, "=5", "=5");
    expect_config_error(f->rl, "a b=5", "a b=5");
    expect_config_error(f->rl, "a{b}=5", "a{b}=5");
    expect_config_error(f->rl, "ok.One=5, bad.Two=zero", "bad.Two=zero");
    expect_config_error(f->rl, "a=1,a=2", "a=2");
    expect_config_error(f->rl, "a=1,,b=2", "empty item");
    expect_config_error(f->rl, "a=1,", "empty item");
    /* A failed configure changes nothing. */
    assert_int_equal(ob_ratelimit_limited(f->rl, "keep.Me"), 1);
    assert_int_equal(ob_ratelimit_limited(f->rl, "ok.One"), 0);
}

static void test_spec_ok(void **state)
{
    fixture_t *f = *state;
    char err[256];
    assert_int_equal(ob_ratelimit_configure(f->rl,
                                            " sts.AssumeRole=500 , cloudformation.CreateStack="
                                            "20/40,s3.Slow=0.5,iam:x-y_z=1e2",
                                            err, sizeof(err)),
                     OB_OK);
    assert_int_equal(ob_ratelimit_limited(f->rl, "sts.AssumeRole"), 1);
    assert_int_equal(ob_ratelimit_limited(f->rl, "cloudformation.CreateStack"), 1);
    assert_int_equal(ob_ratelimit_limited(f->rl, "s3.Slow"), 1);
    assert_int_equal(ob_ratelimit_limited(f->rl, "iam:x-y_z"), 1);
    assert_int_equal(ob_ratelimit_limited(f->rl, "sts.GetCallerIdentity"), 0);
    assert_int_equal(ob_ratelimit_limited(f->rl, NULL), 0);
    /* Replaces: only the new list counts. */
    assert_int_equal(ob_ratelimit_configure(f->rl, "s3.Slow=2", err, sizeof(err)), OB_OK);
    assert_int_equal(ob_ratelimit_limited(f->rl, "sts.AssumeRole"), 0);
    assert_int_equal(ob_ratelimit_limited(f->rl, "s3.Slow"), 1);
    assert_int_equal(ob_ratelimit_configure(f->rl, "  ", err, sizeof(err)), OB_OK);
    assert_int_equal(ob_ratelimit_limited(f->rl, "s3.Slow"), 0);
    assert_int_equal(ob_ratelimit_configure(f->rl, NULL, err, sizeof(err)), OB_OK);
    /* Many APIs (the table grows). */
    char spec[4096] = "";
    for (int i = 0; i < 100; i++) {
        char item[32];
        snprintf(item, sizeof(item), "%sapi%d=%d", i ? "," : "", i, i + 1);
        strcat(spec, item);
    }
    assert_int_equal(ob_ratelimit_configure(f->rl, spec, err, sizeof(err)), OB_OK);
    assert_int_equal(ob_ratelimit_limited(f->rl, "api0"), 1);
    assert_int_equal(ob_ratelimit_limited(f->rl, "api99"), 1);
    assert_int_equal(ob_ratelimit_limited(f->rl, "api100"), 0);
    /* A service's rule limits its calls without a rule of their own, with
     * one rate they share. */
    assert_int_equal(ob_ratelimit_configure(f->rl,
                                            "organizations.*=10,organizations.ListAccounts=3", err,
                                            sizeof(err)),
                     OB_OK);
    assert_int_equal(ob_ratelimit_limited(f->rl, "organizations.DescribeAccount"), 1);
    assert_int_equal(ob_ratelimit_limited(f->rl, "organizations.ListAccounts"), 1);
    assert_int_equal(ob_ratelimit_limited(f->rl, "sts.AssumeRole"), 0);
    assert_int_equal(ob_ratelimit_limited(f->rl, "organizations"), 0);
    expect_config_error(f->rl, ".*=5", ".*=5");
    expect_config_error(f->rl, "a.*.*=5", "a.*.*=5");
    expect_config_error(f->rl, "sts*=5", "sts*=5");
}

static void test_bad_options(void **state)
{
    fixture_t *f = *state;
    char err[256];
    ob_ratelimit_opts_t o = {.min_fraction = 1.5};
    assert_null(ob_ratelimit_new(f->loop, NULL, &o, err, sizeof(err)));
    assert_non_null(strstr(err, "min_fraction"));
    o = (ob_ratelimit_opts_t){.recover_s = -1};
    assert_null(ob_ratelimit_new(f->loop, NULL, &o, err, sizeof(err)));
    assert_non_null(strstr(err, "recover_s"));
    o = (ob_ratelimit_opts_t){.lease_ms = -5};
    assert_null(ob_ratelimit_new(f->loop, NULL, &o, err, sizeof(err)));
    assert_non_null(strstr(err, "lease_ms"));
}

typedef struct seq_s {
    ob_loop_t *loop;
    int order[64];
    int n;
    uint64_t last_ms;
} seq_t;

typedef struct seq_arg_s {
    seq_t *s;
    int i;
} seq_arg_t;

static void on_seq(void *arg)
{
    seq_arg_t *a = arg;
    a->s->order[a->s->n++] = a->i;
    a->s->last_ms = ob_loop_update_time(a->s->loop);
}

static int seq_n(void *arg)
{
    seq_t *s = arg;
    return s->n >= 15;
}

/* 10/s, burst 10 (default): 15 tokens take about 0.5 s, in FIFO order, and
 * none is handed out inside acquire even with tokens available. */
static void test_local_fifo_and_rate(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(ob_ratelimit_configure(f->rl, "t.Local=10", NULL, 0), OB_OK);
    seq_t s = {.loop = f->loop};
    seq_arg_t args[15];
    uint64_t t0 = ob_loop_update_time(f->loop);
    for (int i = 0; i < 15; i++) {
        args[i] = (seq_arg_t){&s, i};
        assert_non_null(ob_ratelimit_acquire(f->rl, "t.Local", on_seq, &args[i]));
    }
    assert_int_equal(s.n, 0);
    assert_true(ob_test_run_until(f->loop, seq_n, &s, 5000));
    double el = (double)(s.last_ms - t0) / 1000.0;
    print_message("local 10/s burst 10: 15 tokens in %.2f s\n", el);
    assert_true(el >= 0.4 && el <= 1.0);
    for (int i = 0; i < 15; i++)
        assert_int_equal(s.order[i], i);
    ob_ratelimit_stats_t st;
    ob_ratelimit_get_stats(f->rl, &st);
    assert_int_equal(st.granted, 15);
    assert_int_equal(st.waited, 5);
    assert_int_equal(st.fetches, 0); /* no Redis */
    assert_int_equal(st.redis_errors, 0);
}

/* Calls of one service without rules of their own share the service's
 * bucket: 10 tokens at 10/s, burst 5, asked for by two operations take
 * about half a second together (separate buckets would grant all ten at
 * once). */
static void test_service_rule_is_shared(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(ob_ratelimit_configure(f->rl, "org.*=10/5", NULL, 0), OB_OK);
    seq_t s = {.loop = f->loop};
    seq_arg_t args[15];
    uint64_t t0 = ob_loop_update_time(f->loop);
    for (int i = 0; i < 15; i++) {
        args[i] = (seq_arg_t){&s, i};
        assert_non_null(ob_ratelimit_acquire(
            f->rl, i % 2 ? "org.ListAccounts" : "org.DescribeAccount", on_seq, &args[i]));
    }
    assert_true(ob_test_run_until(f->loop, seq_n, &s, 5000));
    double el = (double)(s.last_ms - t0) / 1000.0;
    print_message("org.* 10/s burst 5, two operations: 15 tokens in %.2f s\n", el);
    assert_true(el >= 0.8 && el <= 2.0);
    for (int i = 0; i < 15; i++)
        assert_int_equal(s.order[i], i);
}

typedef struct recfg_s {
    ob_ratelimit_t *rl;
    int n;
    int reconfigure_in_cb;
} recfg_t;

static void on_recfg(void *arg)
{
    recfg_t *r = arg;
    r->n++;
    if (r->reconfigure_in_cb && r->n == 1)
        assert_int_equal(ob_ratelimit_configure(r->rl, "other.Api=1", NULL, 0), OB_OK);
}

static int recfg_n(void *arg)
{
    return ((recfg_t *)arg)->n >= 4;
}

/* An API that loses its limit releases its waiters at once; one that keeps it
 * keeps them (and the new rate applies). Also from inside a callback. */
static void test_reconfigure_with_waiters(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(ob_ratelimit_configure(f->rl, "t.Slow=0.2/1", NULL, 0), OB_OK);
    recfg_t r = {f->rl, 0, 0};
    for (int i = 0; i < 4; i++)
        assert_non_null(ob_ratelimit_acquire(f->rl, "t.Slow", on_recfg, &r));
    for (int i = 0; i < 3; i++)
        ob_loop_run_once(f->loop, 20);
    assert_int_equal(r.n, 1); /* the burst; the next token is 5 s away */
    /* Same API, faster: the waiters stay and go at the new rate. */
    assert_int_equal(ob_ratelimit_configure(f->rl, "t.Slow=20/1", NULL, 0), OB_OK);
    uint64_t t0 = ob_loop_update_time(f->loop);
    assert_true(ob_test_run_until(f->loop, recfg_n, &r, 3000));
    /* The retry timer armed at the old rate waits at most 1 s. */
    assert_true(ob_loop_update_time(f->loop) - t0 <= 1500);

    /* Dropped from inside a callback: the rest are released. */
    assert_int_equal(ob_ratelimit_configure(f->rl, "t.Drop=0.2/1", NULL, 0), OB_OK);
    assert_int_equal(ob_ratelimit_limited(f->rl, "t.Slow"), 0);
    recfg_t r2 = {f->rl, 0, 1};
    for (int i = 0; i < 4; i++)
        assert_non_null(ob_ratelimit_acquire(f->rl, "t.Drop", on_recfg, &r2));
    assert_true(ob_test_run_until(f->loop, recfg_n, &r2, 1000));
    assert_int_equal(ob_ratelimit_limited(f->rl, "t.Drop"), 0);
    assert_int_equal(ob_ratelimit_limited(f->rl, "other.Api"), 1);
}

/* Cancel from the loop's point of view: a cancelled wait never runs. */
static void test_cancel_local(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(ob_ratelimit_configure(f->rl, "t.C=100", NULL, 0), OB_OK);
    recfg_t a = {f->rl, 0, 0}, b = {f->rl, 0, 0};
    ob_ratelimit_wait_t *wa = ob_ratelimit_acquire(f->rl, "t.C", on_recfg, &a);
    assert_non_null(ob_ratelimit_acquire(f->rl, "t.C", on_recfg, &b));
    ob_ratelimit_cancel(wa);
    ob_ratelimit_cancel(NULL);
    for (int i = 0; i < 5; i++)
        ob_loop_run_once(f->loop, 10);
    assert_int_equal(a.n, 0);
    assert_int_equal(b.n, 1);
    /* Throttles without Redis only count. */
    ob_ratelimit_throttled(f->rl, "t.C");
    ob_ratelimit_throttled(f->rl, "t.Unknown");
    ob_ratelimit_stats_t st;
    ob_ratelimit_get_stats(f->rl, &st);
    assert_int_equal(st.throttles, 1);
    assert_true(ob_ratelimit_current(f->rl, "t.C") == 0);
}

int main(void)
{
    ob_log_set_level(OB_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_spec_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spec_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_fifo_and_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_rule_is_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconfigure_with_waiters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_local, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
