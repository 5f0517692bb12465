/*
 * ob_loop: epoll plus a timer heap.
 *
 * Descriptor watchers are heap objects whose address is the epoll user data.
 * A watcher freed while events for it may still sit in the current
 * epoll_wait batch is only marked dead and put on a graveyard list; the list is
 * emptied after the batch, so no callback ever sees freed memory.
 *
 * Timers live in an array-backed binary min-heap ordered by (due, sequence):
 * the sequence number makes timers due at the same millisecond fire in the
 * order they were armed. Each timer remembers its heap index, so stop and
 * re-arm are O(log n). Expired timers are popped before they run, so a
 * callback may re-arm or free its own timer. Only timers due at the start of
 * the expiry pass run in it; one re-armed with delay 0 runs next iteration,
 * so a busy timer cannot starve descriptors.
 *
 * ob_loop_wake() writes to an eventfd watched like any other descriptor.
 */
#include "ob_loop.h"

#include "ob_heap.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "ob_alloc.h"

#define OB_LOOP_MAX_EVENTS 256

struct ob_io_s {
    ob_loop_t *loop;
    int fd;
    unsigned events; /* requested mask */
    int registered;  /* added to epoll */
    int dead;
    ob_io_cb *cb;
    void *arg;
    ob_io_t *next_dead;
};

struct ob_loop_s {
    int epfd;
    int wakefd;
    ob_io_t *wake_io;
    int stop;
    uint64_t now;
    ob_heap_t timers;
    ob_io_t *graveyard;
    int dispatching;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t ob_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t ob_loop_now(const ob_loop_t *loop)
{
    return loop->now;
}

uint64_t ob_loop_update_time(ob_loop_t *loop)
{
    loop->now = mono_ms();
    return loop->now;
}

static void wake_cb(ob_io_t *io, int fd, unsigned events, void *arg)
{
    uint64_t v;
    while (read(fd, &v, sizeof(v)) > 0)
        ;
}

ob_loop_t *ob_loop_new(char *errstr, size_t errstr_size)
{
    ob_loop_t *loop = ob_calloc(1, sizeof(*loop));
    if (!loop) {
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->epfd < 0 || loop->wakefd < 0) {
        ob_errf(errstr, errstr_size, OB_ERR_IO, "cannot create epoll/eventfd: %s", strerror(errno));
        if (loop->epfd >= 0)
            close(loop->epfd);
        if (loop->wakefd >= 0)
            close(loop->wakefd);
        free(loop);
        return NULL;
    }
    loop->now = mono_ms();
    loop->wake_io = ob_io_new(loop, loop->wakefd, wake_cb, NULL);
    if (!loop->wake_io || ob_io_set(loop->wake_io, OB_IO_READ) != OB_OK) {
        ob_errf(errstr, errstr_size, OB_ERR_IO, "cannot watch the wake-up eventfd");
        ob_loop_free(loop);
        return NULL;
    }
    return loop;
}

static void reap(ob_loop_t *loop)
{
    while (loop->graveyard) {
        ob_io_t *io = loop->graveyard;
        loop->graveyard = io->next_dead;
        free(io);
    }
}

void ob_loop_free(ob_loop_t *loop)
{
    if (!loop)
        return;
    ob_io_free(loop->wake_io);
    reap(loop);
    ob_heap_clear(&loop->timers);
    close(loop->wakefd);
    close(loop->epfd);
    free(loop);
}

void ob_loop_stop(ob_loop_t *loop)
{
    loop->stop = 1;
    ob_loop_wake(loop);
}

int ob_loop_stopped(const ob_loop_t *loop)
{
    return loop->stop;
}

void ob_loop_wake(ob_loop_t *loop)
{
    uint64_t one = 1;
    ssize_t r = write(loop->wakefd, &one, sizeof(one));
    (void)r;
}

/* ---- descriptors ---- */

ob_io_t *ob_io_new(ob_loop_t *loop, int fd, ob_io_cb *cb, void *arg)
{
    ob_io_t *io = ob_calloc(1, sizeof(*io));
    if (!io)
        return NULL;
    io->loop = loop;
    io->fd = fd;
    io->cb = cb;
    io->arg = arg;
    return io;
}

ob_err_t ob_io_set(ob_io_t *io, unsigned events)
{
    if (io->dead)
        return OB_ERR_STATE;
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.data.ptr = io;
    if (events & OB_IO_READ)
        ev.events |= EPOLLIN;
    if (events & OB_IO_WRITE)
        ev.events |= EPOLLOUT;
    int op = io->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(io->loop->epfd, op, io->fd, &ev) < 0) {
        /* The descriptor may have been closed and reopened under us. */
        if (errno == ENOENT && op == EPOLL_CTL_MOD)
            op = EPOLL_CTL_ADD;
        else if (errno == EEXIST && op == EPOLL_CTL_ADD)
            op = EPOLL_CTL_MOD;
        else
            return OB_ERR_IO;
        if (epoll_ctl(io->loop->epfd, op, io->fd, &ev) < 0)
            return OB_ERR_IO;
    }
    io->registered = 1;
    io->events = events;
    return OB_OK;
}

unsigned ob_io_events(const ob_io_t *io)
{
    return io->events;
}

void ob_io_free(ob_io_t *io)
{
    if (!io || io->dead)
        return;
    if (io->registered) {
        struct epoll_event ev;
        memset(&ev, 0, sizeof(ev));
        /* EBADF/ENOENT are fine: closing a descriptor removes it already. */
        epoll_ctl(io->loop->epfd, EPOLL_CTL_DEL, io->fd, &ev);
    }
    io->dead = 1;
    io->next_dead = io->loop->graveyard;
    io->loop->graveyard = io;
    if (!io->loop->dispatching)
        reap(io->loop);
}

/* ---- timers ---- */

static ob_timer_t *timer_of(ob_heap_node_t *n)
{
    return OB_HEAP_ENTRY(n, ob_timer_t, node);
}

void ob_timer_init(ob_timer_t *t, ob_loop_t *loop, ob_timer_cb *cb, void *arg)
{
    memset(t, 0, sizeof(*t));
    t->loop = loop;
    t->cb = cb;
    t->arg = arg;
}

ob_timer_t *ob_timer_new(ob_loop_t *loop, ob_timer_cb *cb, void *arg)
{
    ob_timer_t *t = ob_malloc(sizeof(*t));
    ob_timer_init(t, loop, cb, arg);
    return t;
}

void ob_timer_start_at(ob_timer_t *t, uint64_t when_ms)
{
    /* Timers due at the same time fire in the order they were armed. */
    if (ob_heap_push(&t->loop->timers, &t->node, when_ms) != OB_OK)
        abort(); /* a lost timer would stall work silently; fail loudly */
}

void ob_timer_start(ob_timer_t *t, uint64_t delay_ms)
{
    ob_timer_start_at(t, t->loop->now + delay_ms);
}

void ob_timer_stop(ob_timer_t *t)
{
    if (t && t->loop)
        ob_heap_remove(&t->loop->timers, &t->node);
}

int ob_timer_active(const ob_timer_t *t)
{
    return ob_heap_in(&t->node);
}

uint64_t ob_timer_due(const ob_timer_t *t)
{
    return t->node.key;
}

void ob_timer_free(ob_timer_t *t)
{
    if (!t)
        return;
    ob_timer_stop(t);
    free(t);
}

size_t ob_loop_timer_count(const ob_loop_t *loop)
{
    return loop->timers.n;
}

static void run_timers(ob_loop_t *loop)
{
    uint64_t now = loop->now;
    uint64_t limit_seq = loop->timers.seq; /* not the ones callbacks arm now */
    ob_heap_node_t *n;
    while ((n = ob_heap_top(&loop->timers)) && n->key <= now && n->seq <= limit_seq) {
        ob_timer_t *t = timer_of(n);
        ob_heap_remove(&loop->timers, n);
        t->cb(t, t->arg);
    }
}

ob_err_t ob_loop_run_once(ob_loop_t *loop, int timeout_ms)
{
    struct epoll_event evs[OB_LOOP_MAX_EVENTS];
    loop->now = mono_ms();
    if (loop->timers.n > 0) {
        uint64_t due = ob_heap_top(&loop->timers)->key;
        int until =
            due <= loop->now ? 0 : (int)(due - loop->now > 86400000u ? 86400000u : due - loop->now);
        if (timeout_ms < 0 || until < timeout_ms)
            timeout_ms = until;
    }
    int n = epoll_wait(loop->epfd, evs, OB_LOOP_MAX_EVENTS, timeout_ms);
    if (n < 0 && errno != EINTR)
        return OB_ERR_IO;
    loop->now = mono_ms();
    loop->dispatching = 1;
    for (int i = 0; i < n; i++) {
        ob_io_t *io = evs[i].data.ptr;
        if (io->dead)
            continue;
        unsigned e = 0;
        if (evs[i].events & (EPOLLIN | EPOLLRDHUP))
            e |= OB_IO_READ;
        if (evs[i].events & EPOLLOUT)
            e |= OB_IO_WRITE;
        if (evs[i].events & (EPOLLERR | EPOLLHUP))
            e |= OB_IO_ERROR | (io->events & (OB_IO_READ | OB_IO_WRITE));
        io->cb(io, io->fd, e, io->arg);
    }
    loop->dispatching = 0;
    reap(loop);
    loop->now = mono_ms();
    run_timers(loop);
    reap(loop);
    return OB_OK;
}

ob_err_t ob_loop_run(ob_loop_t *loop)
{
    loop->stop = 0;
    while (!loop->stop) {
        ob_err_t err = ob_loop_run_once(loop, -1);
        if (err != OB_OK)
            return err;
    }
    return OB_OK;
}

/* ---- signals ---- */

struct ob_signal_s {
    int fd;
    ob_io_t *io;
    ob_signal_cb *cb;
    void *arg;
};

static void signal_ready(ob_io_t *io, int fd, unsigned events, void *arg)
{
    ob_signal_t *s = arg;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        s->cb(s, (int)si.ssi_signo, s->arg);
}

ob_signal_t *ob_signal_new(ob_loop_t *loop, const int *signals, int nsignals, ob_signal_cb *cb,
                           void *arg, char *errstr, size_t errstr_size)
{
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < nsignals; i++)
        sigaddset(&set, signals[i]);
    ob_signal_t *s = ob_calloc(1, sizeof(*s));
    if (!s) {
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    s->cb = cb;
    s->arg = arg;
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 ||
        (s->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        ob_errf(errstr, errstr_size, OB_ERR_IO, "cannot watch signals: %s", strerror(errno));
        free(s);
        return NULL;
    }
    s->io = ob_io_new(loop, s->fd, signal_ready, s);
    if (!s->io || ob_io_set(s->io, OB_IO_READ) != OB_OK) {
        ob_errf(errstr, errstr_size, OB_ERR_IO, "cannot watch the signal descriptor");
        ob_signal_free(s);
        return NULL;
    }
    return s;
}

void ob_signal_free(ob_signal_t *s)
{
    if (!s)
        return;
    ob_io_free(s->io);
    if (s->fd >= 0)
        close(s->fd);
    free(s);
}

long ob_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit up = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl = up;
    }
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)0x7fffffff ? 0x7fffffff
                                                                            : (long)rl.rlim_cur;
}
