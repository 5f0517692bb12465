/*
 * ob_loop: timer ordering, re-arm and free from callbacks, many timers,
 * descriptor readiness, freeing a watcher while its events are pending, and
 * wake-ups from another thread.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ob_loop.h"
#include "testutil.h"

typedef struct rec_s {
    int order[64];
    int n;
} rec_t;

typedef struct tctx_s {
    rec_t *rec;
    int id;
    int rearm_left;
    ob_timer_t *self;
} tctx_t;

static void record(ob_timer_t *t, void *arg)
{
    tctx_t *c = arg;
    c->rec->order[c->rec->n++] = c->id;
    if (c->rearm_left > 0) {
        c->rearm_left--;
        ob_timer_start(t, 1);
    }
}

static void test_timers_fire_in_due_order(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    rec_t rec = {.n = 0};
    tctx_t c[5];
    ob_timer_t *t[5];
    uint64_t delays[5] = {30, 10, 20, 10, 0};
    for (int i = 0; i < 5; i++) {
        c[i] = (tctx_t){&rec, i, 0, NULL};
        t[i] = ob_timer_new(loop, record, &c[i]);
        ob_timer_start(t[i], delays[i]);
    }
    assert_int_equal(ob_loop_timer_count(loop), 5);
    while (rec.n < 5)
        ob_loop_run_once(loop, 100);
    /* Equal due times fire in arming order (1 before 3). */
    int want[5] = {4, 1, 3, 2, 0};
    for (int i = 0; i < 5; i++)
        assert_int_equal(rec.order[i], want[i]);
    assert_int_equal(ob_loop_timer_count(loop), 0);
    for (int i = 0; i < 5; i++)
        ob_timer_free(t[i]);
    ob_loop_free(loop);
}

static void test_stop_and_rearm(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    rec_t rec = {.n = 0};
    tctx_t a = {&rec, 1, 2, NULL}, b = {&rec, 2, 0, NULL};
    ob_timer_t *ta = ob_timer_new(loop, record, &a);
    ob_timer_t *tb = ob_timer_new(loop, record, &b);
    ob_timer_start(ta, 0);
    ob_timer_start(tb, 5);
    ob_timer_stop(tb);
    assert_false(ob_timer_active(tb));
    for (int i = 0; i < 20 && rec.n < 3; i++)
        ob_loop_run_once(loop, 20);
    assert_int_equal(rec.n, 3); /* a fired three times (re-armed twice), b never */
    for (int i = 0; i < 3; i++)
        assert_int_equal(rec.order[i], 1);
    ob_timer_free(ta);
    ob_timer_free(tb);
    ob_loop_free(loop);
}

static void free_self(ob_timer_t *t, void *arg)
{
    (*(int *)arg)++;
    ob_timer_free(t);
}

static void test_free_from_callback(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    int fired = 0;
    ob_timer_t *t = ob_timer_new(loop, free_self, &fired);
    ob_timer_start(t, 0);
    ob_loop_run_once(loop, 10);
    assert_int_equal(fired, 1);
    ob_loop_free(loop);
}

static void count_cb(ob_timer_t *t, void *arg)
{
    (*(int *)arg)++;
}

/* 20,000 timers with random deadlines, half of them stopped: exactly the
 * others fire, and the heap ends empty. */
static void test_many_timers(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    enum { N = 20000 };
    ob_timer_t **t = calloc(N, sizeof(*t));
    int fired = 0;
    srand(42);
    for (int i = 0; i < N; i++) {
        t[i] = ob_timer_new(loop, count_cb, &fired);
        ob_timer_start(t[i], (uint64_t)(rand() % 50));
    }
    for (int i = 0; i < N; i += 2)
        ob_timer_stop(t[i]);
    assert_int_equal(ob_loop_timer_count(loop), N / 2);
    while (ob_loop_timer_count(loop) > 0)
        ob_loop_run_once(loop, 100);
    assert_int_equal(fired, N / 2);
    for (int i = 0; i < N; i++)
        ob_timer_free(t[i]);
    free(t);
    ob_loop_free(loop);
}

typedef struct ioctx_s {
    int reads;
    ob_io_t *other; /* freed from our callback */
    int other_fired;
} ioctx_t;

static void on_read(ob_io_t *io, int fd, unsigned ev, void *arg)
{
    ioctx_t *c = arg;
    char buf[16];
    ssize_t r = read(fd, buf, sizeof(buf));
    (void)r;
    c->reads++;
    if (c->other) {
        ob_io_free(c->other);
        c->other = NULL;
    }
}

static void on_other(ob_io_t *io, int fd, unsigned ev, void *arg)
{
    ((ioctx_t *)arg)->other_fired++;
}

static void test_io_and_free_while_pending(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    int p1[2], p2[2];
    assert_int_equal(pipe(p1), 0);
    assert_int_equal(pipe(p2), 0);
    ioctx_t c = {0};
    ob_io_t *a = ob_io_new(loop, p1[0], on_read, &c);
    ob_io_t *b = ob_io_new(loop, p2[0], on_other, &c);
    assert_int_equal(ob_io_set(a, OB_IO_READ), OB_OK);
    assert_int_equal(ob_io_set(b, OB_IO_READ), OB_OK);
    c.other = b;
    /* Both ready in the same batch; whichever runs first, b must not run
     * after a freed it (and must not crash either way). */
    assert_int_equal(write(p1[1], "x", 1), 1);
    assert_int_equal(write(p2[1], "y", 1), 1);
    ob_loop_run_once(loop, 100);
    assert_int_equal(c.reads, 1);
    assert_true(c.other_fired <= 1);
    int before = c.other_fired;
    ob_loop_run_once(loop, 20);
    assert_int_equal(c.other_fired, before); /* b no longer watched */

    /* Paused watcher: no callbacks. */
    assert_int_equal(ob_io_set(a, 0), OB_OK);
    assert_int_equal(write(p1[1], "z", 1), 1);
    ob_loop_run_once(loop, 20);
    assert_int_equal(c.reads, 1);
    assert_int_equal(ob_io_set(a, OB_IO_READ), OB_OK);
    ob_loop_run_once(loop, 20);
    assert_int_equal(c.reads, 2);
    ob_io_free(a);
    close(p1[0]);
    close(p1[1]);
    close(p2[0]);
    close(p2[1]);
    ob_loop_free(loop);
}

static void *waker(void *arg)
{
    usleep(50000);
    ob_loop_stop(arg);
    return NULL;
}

static void test_stop_from_other_thread(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    pthread_t th;
    pthread_create(&th, NULL, waker, loop);
    /* No timers, no descriptors: only the wake-up can end this. */
    assert_int_equal(ob_loop_run(loop), OB_OK);
    assert_true(ob_loop_stopped(loop));
    pthread_join(th, NULL);
    ob_loop_free(loop);
}

static void on_signal(ob_signal_t *s, int signo, void *arg)
{
    *(int *)arg = signo;
}

static void test_signals_are_loop_events(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    int got = 0;
    const int sigs[] = {SIGUSR1, SIGTERM};
    ob_signal_t *s = ob_signal_new(loop, sigs, 2, on_signal, &got, NULL, 0);
    assert_non_null(s);
    /* Blocked: the default action (terminate) does not happen. */
    kill(getpid(), SIGTERM);
    for (int i = 0; i < 10 && !got; i++)
        ob_loop_run_once(loop, 50);
    assert_int_equal(got, SIGTERM);
    got = 0;
    kill(getpid(), SIGUSR1);
    for (int i = 0; i < 10 && !got; i++)
        ob_loop_run_once(loop, 50);
    assert_int_equal(got, SIGUSR1);
    ob_signal_free(s);
    ob_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_fire_in_due_order),
        cmocka_unit_test(test_stop_and_rearm),
        cmocka_unit_test(test_free_from_callback),
        cmocka_unit_test(test_many_timers),
        cmocka_unit_test(test_io_and_free_while_pending),
        cmocka_unit_test(test_stop_from_other_thread),
        cmocka_unit_test(test_signals_are_loop_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
