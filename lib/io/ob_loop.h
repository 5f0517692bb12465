/*
 * ob_loop: the single-threaded event loop every worker runs on.
 *
 * One epoll instance watches file descriptors (Kafka queue wake-ups, curl
 * sockets, the Redis socket, signalfd, listening sockets); one binary min-heap
 * holds timers (HTTP timeouts, retries, stack polls, lock renewals), so
 * thousands of pending timers cost O(log n) each. The loop sleeps in
 * epoll_wait until the earliest timer is due or a descriptor is ready.
 *
 * Ownership: the caller owns the loop and every ob_io_t / ob_timer_t it
 * creates, and must free them before ob_loop_free(). Freeing an ob_io_t from
 * inside any callback is safe (release is deferred until the current batch of
 * events has been dispatched). A timer may be started, stopped or freed from
 * its own callback.
 *
 * Threading: every function must be called from the loop thread, except
 * ob_loop_wake(), which any thread (or a signal handler) may call.
 */
#ifndef OB_LOOP_H
#define OB_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "ob_err.h"
#include "ob_heap.h"

typedef struct ob_loop_s ob_loop_t;
typedef struct ob_io_s ob_io_t;
typedef struct ob_timer_s ob_timer_t;

/* Event bits for ob_io_set(). */
#define OB_IO_READ  0x1u
#define OB_IO_WRITE 0x2u
/* Extra bit passed to callbacks on EPOLLERR/EPOLLHUP. */
#define OB_IO_ERROR 0x4u

typedef void(ob_io_cb)(ob_io_t *io, int fd, unsigned events, void *arg);
typedef void(ob_timer_cb)(ob_timer_t *t, void *arg);

ob_loop_t *ob_loop_new(char *errstr, size_t errstr_size);
void ob_loop_free(ob_loop_t *loop);

/* Run until ob_loop_stop(). Returns OB_OK, or OB_ERR_IO if epoll fails. */
ob_err_t ob_loop_run(ob_loop_t *loop);
/* Run one iteration: wait at most timeout_ms (-1: until an event or timer),
 * dispatch what is ready. */
ob_err_t ob_loop_run_once(ob_loop_t *loop, int timeout_ms);
/* Make ob_loop_run() return after the current iteration. */
void ob_loop_stop(ob_loop_t *loop);
int ob_loop_stopped(const ob_loop_t *loop);
/* Wake a sleeping loop from any thread (async-signal-safe). */
void ob_loop_wake(ob_loop_t *loop);

/* Monotonic milliseconds, refreshed once per iteration (cheap to call). */
uint64_t ob_loop_now(const ob_loop_t *loop);
/* Refresh the cached time now. */
uint64_t ob_loop_update_time(ob_loop_t *loop);
/* Wall-clock milliseconds since the epoch (not cached). */
uint64_t ob_wall_ms(void);

/* Watch fd. The watcher starts with no events; call ob_io_set(). */
ob_io_t *ob_io_new(ob_loop_t *loop, int fd, ob_io_cb *cb, void *arg);
/* Set the event mask (OB_IO_READ | OB_IO_WRITE, 0 to pause). */
ob_err_t ob_io_set(ob_io_t *io, unsigned events);
unsigned ob_io_events(const ob_io_t *io);
/* Stop watching and release (does not close fd). NULL is fine. */
void ob_io_free(ob_io_t *io);

/* A timer, embedded in its owner (ob_timer_init) or on its own
 * (ob_timer_new / ob_timer_free). Its members are the loop's: use the
 * functions below. */
struct ob_timer_s {
    ob_loop_t *loop;
    ob_heap_node_t node; /* key: when it is due; in the loop's heap while armed */
    ob_timer_cb *cb;
    void *arg;
};
/* Set up an embedded timer (not armed). Stop it before its owner's memory
 * goes; a zeroed timer that was never set up may be stopped too. */
void ob_timer_init(ob_timer_t *t, ob_loop_t *loop, ob_timer_cb *cb, void *arg);
ob_timer_t *ob_timer_new(ob_loop_t *loop, ob_timer_cb *cb, void *arg);
/* (Re)arm to fire once after delay_ms (0 fires on the next iteration). */
void ob_timer_start(ob_timer_t *t, uint64_t delay_ms);
/* Arm at an absolute ob_loop_now() time. */
void ob_timer_start_at(ob_timer_t *t, uint64_t when_ms);
void ob_timer_stop(ob_timer_t *t);
int ob_timer_active(const ob_timer_t *t);
uint64_t ob_timer_due(const ob_timer_t *t);
void ob_timer_free(ob_timer_t *t);

/* Signals as loop events (signalfd). The signals are blocked for the calling
 * thread, so create this before any other thread (librdkafka's) starts: new
 * threads inherit the mask and the signals then reach only the loop. The
 * callback runs on the loop with the signal number. */
typedef struct ob_signal_s ob_signal_t;
typedef void(ob_signal_cb)(ob_signal_t *s, int signo, void *arg);
ob_signal_t *ob_signal_new(ob_loop_t *loop, const int *signals, int nsignals, ob_signal_cb *cb,
                           void *arg, char *errstr, size_t errstr_size);
/* Stop watching; the signals stay blocked. */
void ob_signal_free(ob_signal_t *s);

/* Number of armed timers (for metrics and tests). */
size_t ob_loop_timer_count(const ob_loop_t *loop);

/* Raise the process's open-file soft limit to its hard limit (servers and
 * workers hold a descriptor per connection). Returns the soft limit now in
 * force, or -1 when it cannot be read. */
long ob_raise_nofile(void);

#endif
