/*
 * ob_ratelimit against a real redis-server, with two limiters on separate
 * connections standing for two worker replicas: one rate shared by both
 * (the elapsed time proves it), a throttle reported by one slowing the other
 * and recovering over recover_s, at most one decrease per second fleet-wide,
 * unlimited APIs, cancels, leased tokens, NOSCRIPT after SCRIPT FLUSH, and
 * failing open to the base rate when Redis is unreachable, erroring or
 * killed, then going back to it (a private redis-server started here).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ob_log.h"
#include "ob_ratelimit.h"
#include "testutil.h"

static int port;
static char prefix[64]; /* per run, so reruns against one server start clean */

/* ---- helpers ---- */

static ob_redis_t *conn_to(ob_loop_t *loop, int p, long cmd_timeout_ms)
{
    ob_redis_opts_t o = {.host = "127.0.0.1",
                         .port = p,
                         .command_timeout_ms = cmd_timeout_ms,
                         .connect_timeout_ms = 500};
    ob_redis_t *r = ob_redis_new(loop, &o, NULL, 0);
    assert_non_null(r);
    return r;
}

static ob_redis_t *conn(ob_loop_t *loop)
{
    ob_redis_t *r = conn_to(loop, port, 2000);
    assert_true(ob_test_run_until(loop, ob_test_redis_connected, r, 5000));
    return r;
}

static ob_ratelimit_t *limiter(ob_loop_t *loop, ob_redis_t *r, double recover_s, long lease_ms,
                               const char *spec)
{
    ob_ratelimit_opts_t o = {.key_prefix = prefix, .recover_s = recover_s, .lease_ms = lease_ms};
    char err[256];
    ob_ratelimit_t *rl = ob_ratelimit_new(loop, r, &o, err, sizeof(err));
    assert_non_null(rl);
    assert_int_equal(ob_ratelimit_configure(rl, spec, err, sizeof(err)), OB_OK);
    return rl;
}

typedef struct reply_s {
    int done;
    ob_err_t err;
    int type;
    long long integer;
    size_t n;
    char fields[16][32]; /* array replies: the elements as text */
} reply_t;

static void on_reply(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    reply_t *c = arg;
    c->done = 1;
    c->err = err;
    if (!reply)
        return;
    c->type = reply->type;
    c->integer = reply->integer;
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements && i < 16; i++)
        snprintf(c->fields[c->n++], sizeof(c->fields[0]), "%s",
                 reply->element[i]->str ? reply->element[i]->str : "");
}

static int reply_done(void *arg)
{
    return ((reply_t *)arg)->done;
}

static void redis_cmd(ob_loop_t *loop, ob_redis_t *r, reply_t *c, const char *fmt, const char *a)
{
    memset(c, 0, sizeof(*c));
    assert_int_equal(ob_redis_command(r, on_reply, c, fmt, a), OB_OK);
    assert_true(ob_test_run_until(loop, reply_done, c, 5000));
}

/* Value of `field` in an HGETALL reply, or NULL. */
static const char *hfield(const reply_t *c, const char *field)
{
    for (size_t i = 0; i + 1 < c->n; i += 2)
        if (strcmp(c->fields[i], field) == 0)
            return c->fields[i + 1];
    return NULL;
}

static void bucket_key(const char *api, char *out, size_t n)
{
    snprintf(out, n, "%s{%s}", prefix, api);
}

/* A counter that callbacks bump, with the loop time of the last bump. */
typedef struct count_s {
    ob_loop_t *loop;
    int n;
    int target;
    uint64_t last_ms;
} count_t;

static void on_token(void *arg)
{
    count_t *c = arg;
    c->n++;
    c->last_ms = ob_loop_update_time(c->loop);
}

static int count_reached(void *arg)
{
    count_t *c = arg;
    return c->n >= c->target;
}

typedef struct pair_s {
    count_t *a, *b;
} pair_t;

static int both_reached(void *arg)
{
    pair_t *p = arg;
    return count_reached(p->a) && count_reached(p->b);
}

static void run_for(ob_loop_t *loop, int ms)
{
    uint64_t end = ob_loop_update_time(loop) + (uint64_t)ms;
    for (uint64_t now = ob_loop_update_time(loop); now < end; now = ob_loop_update_time(loop))
        ob_loop_run_once(loop, (int)(end - now));
}

/* Take one token through rl and wait for it (so that rl has fetched). */
static void take_one(ob_loop_t *loop, ob_ratelimit_t *rl, const char *api)
{
    count_t c = {loop, 0, 1, 0};
    assert_non_null(ob_ratelimit_acquire(rl, api, on_token, &c));
    assert_true(ob_test_run_until(loop, count_reached, &c, 5000));
}

typedef struct rate_probe_s {
    ob_ratelimit_t *rl;
    const char *api;
    double below;
} rate_probe_t;

static int rate_below(void *arg)
{
    rate_probe_t *p = arg;
    double r = ob_ratelimit_current(p->rl, p->api);
    return r > 0 && r < p->below;
}

/* ---- tests ---- */

/* Two replicas, 50/s burst 5, 200 tokens: (200 - 5) / 50 = 3.9 s. Each alone
 * at 50/s would finish its 100 in about 2 s, so >= 3 s proves one shared
 * bucket. */
static void test_shared_rate(void **state)
{
    const char *api = "test.Shared";
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_t *ra = conn(loop), *rb = conn(loop);
    ob_ratelimit_t *a = limiter(loop, ra, 0, 0, "test.Shared=50/5");
    ob_ratelimit_t *b = limiter(loop, rb, 0, 0, "test.Shared=50/5");
    count_t ca = {loop, 0, 100, 0}, cb = {loop, 0, 100, 0};
    uint64_t t0 = ob_loop_update_time(loop);
    for (int i = 0; i < 100; i++) {
        assert_non_null(ob_ratelimit_acquire(a, api, on_token, &ca));
        assert_non_null(ob_ratelimit_acquire(b, api, on_token, &cb));
    }
    assert_int_equal(ca.n + cb.n, 0); /* never from inside acquire */
    pair_t p = {&ca, &cb};
    assert_true(ob_test_run_until(loop, both_reached, &p, 10000));
    double ta = (double)(ca.last_ms - t0) / 1000.0, tb = (double)(cb.last_ms - t0) / 1000.0;
    double total = ta > tb ? ta : tb;
    print_message("shared 50/s burst 5, 2 x 100 tokens: A done after %.2f s, B after %.2f s "
                  "(expected about 3.9 s)\n",
                  ta, tb);
    assert_true(total >= 3.0 && total <= 6.0);
    /* Both replicas progressed side by side, neither starved. */
    assert_true(ta >= 2.5 && tb >= 2.5);

    ob_ratelimit_stats_t sa, sb;
    ob_ratelimit_get_stats(a, &sa);
    ob_ratelimit_get_stats(b, &sb);
    print_message("A: granted %llu waited %llu fetches %llu; B: granted %llu waited %llu "
                  "fetches %llu\n",
                  (unsigned long long)sa.granted, (unsigned long long)sa.waited,
                  (unsigned long long)sa.fetches, (unsigned long long)sb.granted,
                  (unsigned long long)sb.waited, (unsigned long long)sb.fetches);
    assert_int_equal(sa.granted, 100);
    assert_int_equal(sb.granted, 100);
    assert_true(sa.waited > 50 && sb.waited > 50);
    assert_int_equal(sa.redis_errors + sb.redis_errors, 0);
    /* Contended, each replica polls about once per token interval (the next
     * token's time is what Redis reports), so about one fetch per replica per
     * token; far more would mean a busy loop. */
    assert_true(sa.fetches + sb.fetches >= 40 && sa.fetches + sb.fetches <= 450);
    assert_true(ob_ratelimit_current(a, api) > 49.9 && ob_ratelimit_current(a, api) < 50.1);

    char key[128];
    bucket_key(api, key, sizeof(key));
    reply_t c;
    redis_cmd(loop, ra, &c, "HGETALL %s", key);
    assert_int_equal(c.type, REDIS_REPLY_ARRAY);
    const char *need[] = {"tokens", "ts", "frac", "rate", "base", "burst", "last_throttle"};
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
        assert_non_null(hfield(&c, need[i]));
    assert_string_equal(hfield(&c, "base"), "50");
    assert_string_equal(hfield(&c, "burst"), "5");
    assert_string_equal(hfield(&c, "frac"), "1");
    assert_true(atof(hfield(&c, "tokens")) < 1.0); /* drained */
    redis_cmd(loop, ra, &c, "PTTL %s", key);
    assert_true(c.integer > 590000 && c.integer <= 600000);

    ob_ratelimit_free(a);
    ob_ratelimit_free(b);
    ob_redis_free(ra);
    ob_redis_free(rb);
    ob_loop_free(loop);
}

/* A throttle reported by A halves the rate B sees; a second report within the
 * second (from B) does not halve it again; B's throughput drops accordingly
 * and the rate climbs back to the base within recover_s (2 s). */
static void test_throttle_shared_and_recovers(void **state)
{
    const char *api = "test.Throttle";
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_t *ra = conn(loop), *rb = conn(loop);
    ob_ratelimit_t *a = limiter(loop, ra, 2, 0, "test.Throttle=50/5");
    ob_ratelimit_t *b = limiter(loop, rb, 2, 0, "test.Throttle=50/5");
    take_one(loop, b, api);
    assert_true(ob_ratelimit_current(b, api) > 49.9);

    uint64_t t0 = ob_loop_update_time(loop);
    ob_ratelimit_throttled(a, api);
    ob_ratelimit_throttled(a, api); /* same volley: one command */
    rate_probe_t pa = {a, api, 40};
    assert_true(ob_test_run_until(loop, rate_below, &pa, 5000));
    double ra_now = ob_ratelimit_current(a, api);
    assert_true(ra_now > 24 && ra_now < 27);

    /* The other replica reports too, within the same second: no second halving. */
    ob_ratelimit_throttled(b, api);
    rate_probe_t pb = {b, api, 40};
    assert_true(ob_test_run_until(loop, rate_below, &pb, 5000));
    double rb_now = ob_ratelimit_current(b, api);
    print_message("after a throttle: A sees %.2f/s, B sees %.2f/s\n", ra_now, rb_now);
    assert_true(rb_now > 24 && rb_now < 30);

    ob_ratelimit_stats_t sa, sb;
    ob_ratelimit_get_stats(a, &sa);
    ob_ratelimit_get_stats(b, &sb);
    assert_int_equal(sa.throttles, 2);
    assert_int_equal(sb.throttles, 1);

    char key[128];
    bucket_key(api, key, sizeof(key));
    reply_t c;
    redis_cmd(loop, ra, &c, "HGETALL %s", key);
    double frac = atof(hfield(&c, "frac"));
    assert_true(frac > 0.49 && frac < 0.6);
    assert_true(atof(hfield(&c, "last_throttle")) > 0);

    /* Throughput over the next 0.5 s from an empty bucket: the ramp from 25/s
     * gives about 15; at the unthrottled 50/s it would be 25 or more. */
    count_t cnt = {loop, 0, 1000, 0};
    ob_ratelimit_wait_t *w[100];
    for (int i = 0; i < 100; i++)
        w[i] = ob_ratelimit_acquire(b, api, on_token, &cnt);
    run_for(loop, 500);
    double mid = ob_ratelimit_current(b, api);
    print_message("throttled: %d tokens in 0.5 s (unthrottled: >= 25), rate then %.2f/s\n", cnt.n,
                  mid);
    assert_true(cnt.n >= 8 && cnt.n <= 21);
    assert_true(mid > 27 && mid < 47);
    for (int i = cnt.n; i < 100; i++)
        ob_ratelimit_cancel(w[i]);

    /* recover_s after the throttle the rate is back at the base. */
    uint64_t now = ob_loop_update_time(loop);
    if (now < t0 + 2100)
        run_for(loop, (int)(t0 + 2100 - now));
    take_one(loop, b, api);
    double back = ob_ratelimit_current(b, api);
    print_message("%.1f s after the throttle: %.2f/s\n",
                  (double)(ob_loop_update_time(loop) - t0) / 1000.0, back);
    assert_true(back > 49.9);

    ob_ratelimit_free(a);
    ob_ratelimit_free(b);
    ob_redis_free(ra);
    ob_redis_free(rb);
    ob_loop_free(loop);
}

static void test_unlimited(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_t *r = conn(loop);
    ob_ratelimit_t *rl = limiter(loop, r, 0, 0, "test.Limited=5");
    count_t c = {loop, 0, 1, 0};
    assert_null(ob_ratelimit_acquire(rl, "test.Other", on_token, &c));
    assert_int_equal(ob_ratelimit_limited(rl, "test.Other"), 0);
    assert_int_equal(ob_ratelimit_limited(rl, "test.Limited"), 1);
    assert_true(ob_ratelimit_current(rl, "test.Other") == 0);
    ob_ratelimit_throttled(rl, "test.Other"); /* no-op */
    run_for(loop, 50);
    assert_int_equal(c.n, 0);
    assert_int_equal(ob_redis_pending(r), 0);
    ob_ratelimit_stats_t s;
    ob_ratelimit_get_stats(rl, &s);
    assert_int_equal(s.throttles, 0);
    assert_int_equal(s.fetches, 0);
    /* Reconfigured to nothing: the old API is unlimited too. */
    assert_int_equal(ob_ratelimit_configure(rl, "", NULL, 0), OB_OK);
    assert_null(ob_ratelimit_acquire(rl, "test.Limited", on_token, &c));
    ob_ratelimit_free(rl);
    ob_redis_free(r);
    ob_loop_free(loop);
}

typedef struct canc_s {
    ob_loop_t *loop;
    int ran[6];
    ob_ratelimit_wait_t *w[6];
    int cancel_from_cb; /* index the first callback cancels */
} canc_t;

typedef struct canc_arg_s {
    canc_t *t;
    int i;
} canc_arg_t;

static void on_canc(void *arg)
{
    canc_arg_t *a = arg;
    a->t->ran[a->i]++;
    a->t->w[a->i] = NULL; /* freed by the limiter */
    if (a->i == 0 && a->t->w[a->t->cancel_from_cb]) {
        ob_ratelimit_cancel(a->t->w[a->t->cancel_from_cb]);
        a->t->w[a->t->cancel_from_cb] = NULL;
    }
}

static int canc_done(void *arg)
{
    canc_t *t = arg;
    return t->ran[0] && t->ran[2] && t->ran[5];
}

/* Cancelled waiters never run (also one cancelled from another's callback);
 * the rest run once each, in order. Then leased tokens: waiters cancelled
 * while their fetch was in flight leave the tokens for the next acquire
 * (no new fetch) until lease_ms passes. */
static void test_cancel_and_lease(void **state)
{
    const char *api = "test.Cancel";
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_t *r = conn(loop);
    ob_ratelimit_t *rl = limiter(loop, r, 0, 300, "test.Cancel=10/1,test.Lease=100/10");
    canc_t t = {.loop = loop, .cancel_from_cb = 4};
    canc_arg_t args[6];
    for (int i = 0; i < 6; i++) {
        args[i] = (canc_arg_t){&t, i};
        t.w[i] = ob_ratelimit_acquire(rl, api, on_canc, &args[i]);
        assert_non_null(t.w[i]);
    }
    ob_ratelimit_cancel(t.w[1]);
    ob_ratelimit_cancel(t.w[3]);
    t.w[1] = t.w[3] = NULL;
    assert_true(ob_test_run_until(loop, canc_done, &t, 5000));
    run_for(loop, 300);
    assert_int_equal(t.ran[0], 1);
    assert_int_equal(t.ran[1], 0);
    assert_int_equal(t.ran[2], 1);
    assert_int_equal(t.ran[3], 0);
    assert_int_equal(t.ran[4], 0);
    assert_int_equal(t.ran[5], 1);
    ob_ratelimit_stats_t s;
    ob_ratelimit_get_stats(rl, &s);
    assert_int_equal(s.granted, 3);

    /* Leases. */
    count_t c = {loop, 0, 3, 0};
    ob_ratelimit_wait_t *lw[3];
    for (int i = 0; i < 3; i++)
        lw[i] = ob_ratelimit_acquire(rl, "test.Lease", on_token, &c);
    ob_loop_run_once(loop, 0); /* the 0 ms timer: the fetch goes out */
    assert_int_equal(ob_redis_pending(r), 1);
    for (int i = 0; i < 3; i++)
        ob_ratelimit_cancel(lw[i]);
    for (int i = 0; i < 100 && ob_redis_pending(r) > 0; i++)
        ob_loop_run_once(loop, 10);
    ob_ratelimit_get_stats(rl, &s);
    uint64_t fetches = s.fetches;
    c.target = 2;
    assert_non_null(ob_ratelimit_acquire(rl, "test.Lease", on_token, &c));
    assert_non_null(ob_ratelimit_acquire(rl, "test.Lease", on_token, &c));
    assert_true(ob_test_run_until(loop, count_reached, &c, 2000));
    ob_ratelimit_get_stats(rl, &s);
    assert_int_equal(s.fetches, fetches); /* served from the lease */
    run_for(loop, 350);                   /* the last leased token expires */
    c.target = 3;
    assert_non_null(ob_ratelimit_acquire(rl, "test.Lease", on_token, &c));
    assert_true(ob_test_run_until(loop, count_reached, &c, 2000));
    ob_ratelimit_get_stats(rl, &s);
    assert_int_equal(s.fetches, fetches + 1);

    /* Freed with waits pending: no callbacks, nothing leaked (valgrind). */
    count_t never = {loop, 0, 1, 0};
    for (int i = 0; i < 5; i++)
        assert_non_null(ob_ratelimit_acquire(rl, api, on_token, &never));
    ob_loop_run_once(loop, 0); /* a fetch is in flight when we free */
    ob_ratelimit_free(rl);
    run_for(loop, 50);
    assert_int_equal(never.n, 0);
    ob_redis_free(r);
    ob_loop_free(loop);
}

/* The server forgets its scripts (restart, SCRIPT FLUSH): EVALSHA gets
 * NOSCRIPT, the limiter resends with EVAL, nothing counts as an error. */
static void test_noscript(void **state)
{
    const char *api = "test.Noscript";
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_t *r = conn(loop);
    ob_ratelimit_t *rl = limiter(loop, r, 0, 0, "test.Noscript=100");
    reply_t c;
    redis_cmd(loop, r, &c, "SCRIPT %s", "FLUSH");
    take_one(loop, rl, api);
    redis_cmd(loop, r, &c, "SCRIPT %s", "FLUSH");
    run_for(loop, 1100); /* past the lease */
    take_one(loop, rl, api);
    ob_ratelimit_stats_t s;
    ob_ratelimit_get_stats(rl, &s);
    assert_int_equal(s.redis_errors, 0);
    assert_int_equal(s.fetches, 2);
    assert_true(ob_ratelimit_current(rl, api) > 99.9);
    ob_ratelimit_free(rl);
    ob_redis_free(r);
    ob_loop_free(loop);
}

static int count_lines_with(const char *path, const char *needle)
{
    char *text = ob_test_read_file(path, NULL);
    int n = 0;
    for (char *p = text; p && (p = strstr(p, needle)); p++)
        n++;
    free(text);
    return n;
}

/* Nothing listens where Redis should be: tokens still flow, from the local
 * bucket at the base rate (20/s burst 2: 40 tokens in about 1.9 s plus the
 * first command's 200 ms deadline), errors are counted and the warning is
 * logged once. */
static void test_redis_away(void **state)
{
    const char *api = "test.Away";
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_t *r = conn_to(loop, ob_test_free_port(), 200);
    char logpath[] = "/tmp/itest_ratelimit_log_XXXXXX";
    int logfd = mkstemp(logpath);
    assert_true(logfd >= 0);
    ob_log_set_fd(logfd);
    ob_log_set_level(OB_LOG_WARN);
    ob_ratelimit_t *rl = limiter(loop, r, 0, 0, "test.Away=20/2");
    count_t c = {loop, 0, 40, 0};
    uint64_t t0 = ob_loop_update_time(loop);
    for (int i = 0; i < 40; i++)
        assert_non_null(ob_ratelimit_acquire(rl, api, on_token, &c));
    assert_true(ob_test_run_until(loop, count_reached, &c, 10000));
    double el = (double)(c.last_ms - t0) / 1000.0;
    ob_ratelimit_stats_t s;
    ob_ratelimit_get_stats(rl, &s);
    ob_ratelimit_throttled(rl, api); /* Redis still away: nothing breaks */
    run_for(loop, 300);
    ob_log_set_fd(2);
    ob_log_set_level(OB_LOG_ERROR);
    close(logfd);
    int warnings = count_lines_with(logpath, "fall back to local buckets");
    unlink(logpath);
    print_message("Redis away, 20/s burst 2: 40 tokens in %.2f s, redis_errors %llu, "
                  "%d warning(s)\n",
                  el, (unsigned long long)s.redis_errors, warnings);
    assert_true(el >= 1.6 && el <= 3.5);
    assert_true(s.redis_errors > 0);
    assert_int_equal(s.granted, 40);
    assert_int_equal(warnings, 1);
    assert_true(ob_ratelimit_current(rl, api) == 0); /* never heard from Redis */
    ob_ratelimit_free(rl);
    ob_redis_free(r);
    ob_loop_free(loop);
}

/* A private redis-server on a free port, started and killed here: while it
 * is down tokens come from the local bucket; once it is up the next fetch
 * uses Redis again; killed while tokens flow, the waiters still all go. */
static void test_redis_outage_and_return(void **state)
{
    const char *api = "test.Outage";
    int p = ob_test_free_port();
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_t *r = conn_to(loop, p, 300);
    ob_ratelimit_t *rl = limiter(loop, r, 0, 0, "test.Outage=20/2");
    count_t c = {loop, 0, 10, 0};
    for (int i = 0; i < 10; i++)
        assert_non_null(ob_ratelimit_acquire(rl, api, on_token, &c));
    assert_true(ob_test_run_until(loop, count_reached, &c, 5000));
    ob_ratelimit_stats_t s;
    ob_ratelimit_get_stats(rl, &s);
    uint64_t errors_down = s.redis_errors;
    assert_true(errors_down >= 1);
    assert_true(ob_ratelimit_current(rl, api) == 0);

    pid_t pid = ob_test_redis_server(p, NULL);
    assert_true(pid > 0);
    assert_true(ob_test_run_until(loop, ob_test_redis_connected, r, 5000));
    take_one(loop, rl, api);
    assert_true(ob_ratelimit_current(rl, api) > 19.9); /* from Redis again */
    ob_ratelimit_get_stats(rl, &s);
    assert_int_equal(s.redis_errors, errors_down);

    count_t c2 = {loop, 0, 20, 0};
    uint64_t t0 = ob_loop_update_time(loop);
    for (int i = 0; i < 20; i++)
        assert_non_null(ob_ratelimit_acquire(rl, api, on_token, &c2));
    run_for(loop, 200);
    int before_kill = c2.n;
    ob_test_kill(pid);
    assert_true(ob_test_run_until(loop, count_reached, &c2, 5000));
    double el = (double)(c2.last_ms - t0) / 1000.0;
    ob_ratelimit_get_stats(rl, &s);
    print_message("private Redis killed after %d of 20 tokens: all done in %.2f s, "
                  "redis_errors %llu -> %llu\n",
                  before_kill, el, (unsigned long long)errors_down,
                  (unsigned long long)s.redis_errors);
    assert_true(before_kill >= 1 && before_kill < 20);
    assert_true(s.redis_errors > errors_down);
    assert_true(el <= 2.5);
    ob_ratelimit_free(rl);
    ob_redis_free(r);
    ob_loop_free(loop);
}

/* Redis answers with errors (the key holds a string: WRONGTYPE): fail open at
 * the base rate; once the key is fixed the next fetch uses Redis again. */
static void test_redis_error_then_back(void **state)
{
    const char *api = "test.Wrongtype";
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_t *r = conn(loop);
    char key[128];
    bucket_key(api, key, sizeof(key));
    reply_t rep;
    redis_cmd(loop, r, &rep, "SET %s not-a-hash", key);
    ob_ratelimit_t *rl = limiter(loop, r, 0, 0, "test.Wrongtype=20/2");
    count_t c = {loop, 0, 20, 0};
    uint64_t t0 = ob_loop_update_time(loop);
    for (int i = 0; i < 20; i++)
        assert_non_null(ob_ratelimit_acquire(rl, api, on_token, &c));
    assert_true(ob_test_run_until(loop, count_reached, &c, 10000));
    double el = (double)(c.last_ms - t0) / 1000.0;
    ob_ratelimit_stats_t s;
    ob_ratelimit_get_stats(rl, &s);
    print_message("WRONGTYPE, 20/s burst 2: 20 tokens in %.2f s, redis_errors %llu\n", el,
                  (unsigned long long)s.redis_errors);
    assert_true(el >= 0.7 && el <= 1.6); /* (20 - 2) / 20 = 0.9 s */
    assert_true(s.redis_errors > 0);
    assert_true(ob_ratelimit_current(rl, api) == 0);

    redis_cmd(loop, r, &rep, "DEL %s", key);
    take_one(loop, rl, api);
    assert_true(ob_ratelimit_current(rl, api) > 19.9);
    redis_cmd(loop, r, &rep, "EXISTS %s", key);
    assert_int_equal(rep.integer, 1);
    ob_ratelimit_free(rl);
    ob_redis_free(r);
    ob_loop_free(loop);
}

/* The spec parser through the real object (more cases in unit.ratelimit). */
static void test_spec_errors(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_redis_t *r = conn(loop);
    ob_ratelimit_t *rl = limiter(loop, r, 0, 0, "test.Keep=5");
    const char *bad[] = {"sts.AssumeRole", "x=0", "x=abc", "x=5/0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        assert_int_equal(ob_ratelimit_configure(rl, bad[i], err, sizeof(err)), OB_ERR_CONFIG);
        print_message("\"%s\": %s\n", bad[i], err);
        assert_non_null(strstr(err, bad[i]));
    }
    assert_int_equal(ob_ratelimit_limited(rl, "test.Keep"), 1); /* unchanged */
    ob_ratelimit_free(rl);
    ob_redis_free(r);
    ob_loop_free(loop);
}

int main(void)
{
    port = atoi(ob_test_service_env("OB_TEST_REDIS_PORT", "redis-server"));
    snprintf(prefix, sizeof(prefix), "ob:rltest:%d:", (int)getpid());
    ob_log_set_level(OB_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_rate),
        cmocka_unit_test(test_throttle_shared_and_recovers),
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_cancel_and_lease),
        cmocka_unit_test(test_noscript),
        cmocka_unit_test(test_redis_away),
        cmocka_unit_test(test_redis_outage_and_return),
        cmocka_unit_test(test_redis_error_then_back),
        cmocka_unit_test(test_spec_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
