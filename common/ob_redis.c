/*
 * ob_redis: hiredis async on ob_loop.
 *
 * The event-loop adapter is the five hooks hiredis asks for (after
 * hiredis/adapters/ae.h); the descriptor watcher is recreated for every
 * connection. A command is an ob_redis_cmd_t, kept on a FIFO list from
 * submission until its user callback has run. A sent command is also
 * referenced by hiredis (its privdata) until hiredis calls back, possibly with
 * a NULL reply when the connection is freed; `done` marks commands whose user
 * callback already ran (for instance after a deadline), and the memory is
 * released only when hiredis lets go.
 */
#include "ob_redis.h"

#include <hiredis/async.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_log.h"

typedef struct ob_redis_cmd_s {
    ob_redis_t *r;
    ob_redis_cb *cb;
    void *arg;
    uint64_t deadline;
    int sent;        /* handed to hiredis: hiredis owns the memory until it calls back */
    int done;        /* user callback already ran */
    char *formatted; /* RESP bytes, kept until sent */
    size_t formatted_len;
    struct ob_redis_cmd_s *prev, *next;
} ob_redis_cmd_t;

struct ob_redis_s {
    ob_loop_t *loop;
    ob_redis_opts_t opts;
    char *host;
    char *password;
    redisAsyncContext *ac;
    ob_io_t *io;
    unsigned io_events;
    int connected;
    char refused[256]; /* the server's answer to PING when it refuses us ("" : none) */
    const redisAsyncContext *dropped; /* dropped by us, its disconnect not ours to handle */
    uint64_t connects;
    ob_timer_t *deadline_timer;
    ob_timer_t *reconnect_timer;
    ob_timer_t *connect_timer;
    ob_timer_t *ping_timer; /* PING again while the server is still loading its data */
    long backoff_ms;
    ob_redis_cmd_t *head, *tail;  /* not yet answered, in submission order */
    ob_redis_cmd_t *first_unsent; /* the oldest command not handed to hiredis (sent in order) */
    size_t npending;
    size_t nqueued; /* not yet sent */
    ob_redis_state_cb *state_cb;
    void *state_arg;
    int freeing;
};

static void connect_now(ob_redis_t *r);
static void drop_connection(ob_redis_t *r, ob_err_t err, const char *why);

/* ---- command list ---- */

static void list_remove(ob_redis_t *r, ob_redis_cmd_t *c)
{
    if (r->first_unsent == c)
        r->first_unsent = c->next;
    if (c->prev)
        c->prev->next = c->next;
    else
        r->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        r->tail = c->prev;
    c->prev = c->next = NULL;
    r->npending--;
    if (!c->sent)
        r->nqueued--;
}

static void arm_deadline(ob_redis_t *r)
{
    if (r->head)
        ob_timer_start_at(r->deadline_timer, r->head->deadline);
    else
        ob_timer_stop(r->deadline_timer);
}

/* Run the user callback once and take the command off the list. */
static void complete(ob_redis_cmd_t *c, ob_err_t err, redisReply *reply)
{
    ob_redis_t *r = c->r;
    if (c->done)
        return;
    c->done = 1;
    list_remove(r, c);
    free(c->formatted);
    c->formatted = NULL;
    if (c->cb)
        c->cb(r, err, reply, c->arg);
}

/* hiredis reply callback. */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    ob_redis_cmd_t *c = privdata;
    ob_redis_t *r = c->r;
    if (!c->done) {
        if (reply)
            complete(c, OB_OK, reply);
        else
            complete(c, r->freeing ? OB_ERR_CANCELLED : OB_ERR_CONN, NULL);
        if (!r->freeing)
            arm_deadline(r);
    }
    free(c);
}

/* ---- loop adapter ---- */

static void io_ready(ob_io_t *io, int fd, unsigned events, void *arg)
{
    ob_redis_t *r = arg;
    redisAsyncContext *ac = r->ac;
    if (!ac)
        return;
    if (events & (OB_IO_READ | OB_IO_ERROR))
        redisAsyncHandleRead(ac);
    /* The read may have torn the connection down (cleanup clears r->ac). */
    if ((events & OB_IO_WRITE) && r->ac == ac)
        redisAsyncHandleWrite(ac);
}

static void io_update(ob_redis_t *r, unsigned set, unsigned clear)
{
    if (!r->io)
        return;
    unsigned ev = (r->io_events | set) & ~clear;
    if (ev != r->io_events) {
        r->io_events = ev;
        ob_io_set(r->io, ev);
    }
}

static void ev_add_read(void *p)
{
    io_update(p, OB_IO_READ, 0);
}
static void ev_del_read(void *p)
{
    io_update(p, 0, OB_IO_READ);
}
static void ev_add_write(void *p)
{
    io_update(p, OB_IO_WRITE, 0);
}
static void ev_del_write(void *p)
{
    io_update(p, 0, OB_IO_WRITE);
}
static void ev_cleanup(void *p)
{
    ob_redis_t *r = p;
    ob_io_free(r->io);
    r->io = NULL;
    r->io_events = 0;
    r->ac = NULL;
}

/* ---- connection ---- */

static void schedule_reconnect(ob_redis_t *r)
{
    if (r->freeing)
        return;
    ob_timer_start(r->reconnect_timer, (uint64_t)r->backoff_ms);
    r->backoff_ms = r->backoff_ms * 2 > 2000 ? 2000 : r->backoff_ms * 2;
}

static void set_connected(ob_redis_t *r, int connected)
{
    if (r->connected == connected)
        return;
    r->connected = connected;
    if (r->state_cb)
        r->state_cb(r, connected, r->state_arg);
}

/* Fail every sent command (they can no longer be answered). */
static void fail_sent(ob_redis_t *r, ob_err_t err)
{
    ob_redis_cmd_t *c = r->head;
    while (c) {
        ob_redis_cmd_t *next = c->next;
        if (c->sent)
            complete(c, err, NULL);
        c = next;
    }
}

/* Hand the unsent commands to hiredis, oldest first: O(unsent), not
 * O(pending), so thousands of commands in flight cost nothing per submit. */
static void send_queued(ob_redis_t *r)
{
    while (r->first_unsent && r->ac) {
        ob_redis_cmd_t *c = r->first_unsent;
        if (redisAsyncFormattedCommand(r->ac, on_reply, c, c->formatted, c->formatted_len) !=
            REDIS_OK) {
            drop_connection(r, OB_ERR_CONN, "cannot write to the Redis connection");
            return;
        }
        c->sent = 1;
        r->nqueued--;
        free(c->formatted);
        c->formatted = NULL;
        r->first_unsent = c->next;
    }
}

static void on_ping_reply(redisAsyncContext *ac, void *reply, void *privdata);

static void send_ping(ob_redis_t *r)
{
    if (r->ac && redisAsyncCommand(r->ac, on_ping_reply, NULL, "PING") != REDIS_OK)
        drop_connection(r, OB_ERR_CONN, "cannot write to the Redis connection");
}

static void ping_fired(ob_timer_t *t, void *arg)
{
    send_ping(arg);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    ob_redis_t *r = ac->data;
    if (status != REDIS_OK) {
        ob_timer_stop(r->connect_timer);
        /* hiredis frees the context itself after a failed connect. */
        ob_logf(OB_LOG_WARN, "redis", "connect to %s:%d failed: %s", r->host, r->opts.port,
                ac->errstr ? ac->errstr : "unknown error");
        r->ac = NULL;
        schedule_reconnect(r);
        return;
    }
    /* Connected, but a server that just started answers -LOADING until its
     * data (AOF, RDB) is in memory: commands sent now would fail, or worse,
     * a write would be overwritten by the load. Ready when PING says PONG. */
    send_ping(r);
}

/* The server is ready: AUTH and SELECT went first on the pipe (their errors
 * are logged), then PING answered. Send what waited. */
static void on_ready(ob_redis_t *r)
{
    ob_timer_stop(r->connect_timer);
    r->connects++;
    r->backoff_ms = 50;
    if (r->connects > 1)
        ob_logf(OB_LOG_INFO, "redis", "reconnected to %s:%d", r->host, r->opts.port);
    set_connected(r, 1);
    send_queued(r);
    arm_deadline(r);
}

static void on_ping_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    ob_redis_t *r = ac->data;
    redisReply *rep = reply;
    if (!rep || r->freeing || r->ac != ac)
        return; /* the connection went away: on_disconnect handles it */
    if (rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "LOADING", 7)) {
        ob_timer_start(r->ping_timer, 100);
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        /* NOAUTH, WRONGPASS, NOPERM...: connected but refused. Not ready:
         * what waits fails now with the reason, and we try again later (the
         * server's password or ACL may be fixed meanwhile). Redis's answer
         * never contains the password. */
        if (strcmp(r->refused, rep->str) != 0)
            ob_logf(OB_LOG_ERROR, "redis",
                    "%s:%d refuses our commands: %s (check redis.password and the server's "
                    "requirepass or ACL user)",
                    r->host, r->opts.port, rep->str);
        snprintf(r->refused, sizeof(r->refused), "%s", rep->str);
        ob_redis_cmd_t *c = r->head;
        while (c) {
            ob_redis_cmd_t *next = c->next;
            if (!c->sent) {
                complete(c, OB_ERR_REDIS, NULL);
                free(c); /* hiredis never saw it */
            }
            c = next;
        }
        arm_deadline(r);
        drop_connection(r, OB_ERR_REDIS, "the server refuses our commands");
        return;
    }
    r->refused[0] = '\0';
    on_ready(r);
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    const char *what = privdata;
    redisReply *rep = reply;
    if (rep && rep->type == REDIS_REPLY_ERROR)
        ob_logf(OB_LOG_ERROR, "redis", "%s failed: %s", what, rep->str);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    ob_redis_t *r = ac->data;
    /* Freeing, or a connection already dropped from inside one of its own
     * callbacks (hiredis frees it after the callback returns). */
    if (r->freeing || ac == r->dropped)
        return;
    r->ac = NULL;
    ob_timer_stop(r->ping_timer);
    ob_logf(OB_LOG_WARN, "redis", "connection to %s:%d lost: %s", r->host, r->opts.port,
            status == REDIS_OK ? "closed" : (ac->errstr ? ac->errstr : "error"));
    set_connected(r, 0);
    schedule_reconnect(r);
}

/* Tear the current connection down ourselves (deadline passed, write failed). */
static void drop_connection(ob_redis_t *r, ob_err_t err, const char *why)
{
    redisAsyncContext *ac = r->ac;
    if (!ac)
        return;
    ob_logf(OB_LOG_WARN, "redis", "dropping connection to %s:%d: %s", r->host, r->opts.port, why);
    /* Fail sent commands with the real reason before hiredis reports them lost. */
    fail_sent(r, err);
    r->dropped = ac;
    r->freeing = 1; /* silence on_disconnect and on_reply bookkeeping */
    redisAsyncFree(ac);
    r->freeing = 0;
    r->ac = NULL;
    ob_timer_stop(r->ping_timer);
    set_connected(r, 0);
    schedule_reconnect(r);
}

static void connect_timeout(ob_timer_t *t, void *arg)
{
    ob_redis_t *r = arg;
    if (r->ac && !r->connected) {
        ob_logf(OB_LOG_WARN, "redis", "connect to %s:%d timed out after %ld ms", r->host,
                r->opts.port, r->opts.connect_timeout_ms);
        r->freeing = 1;
        redisAsyncFree(r->ac);
        r->freeing = 0;
        r->ac = NULL;
        ob_timer_stop(r->ping_timer);
        schedule_reconnect(r);
    }
}

static void reconnect_fired(ob_timer_t *t, void *arg)
{
    connect_now(arg);
}

static void connect_now(ob_redis_t *r)
{
    if (r->ac || r->freeing)
        return;
    r->dropped = NULL; /* an earlier dropped context is gone by now */
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->opts.port);
    if (!ac || ac->err) {
        ob_logf(OB_LOG_WARN, "redis", "cannot start a connection to %s:%d: %s", r->host,
                r->opts.port, ac && ac->errstr ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    ac->data = r;
    r->ac = ac;
    r->io = ob_io_new(r->loop, ac->c.fd, io_ready, r);
    r->io_events = 0;
    ac->ev.data = r;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (r->password && r->password[0])
        redisAsyncCommand(ac, on_setup_reply, (void *)"AUTH", "AUTH %s", r->password);
    if (r->opts.db != 0)
        redisAsyncCommand(ac, on_setup_reply, (void *)"SELECT", "SELECT %d", r->opts.db);
    ob_timer_start(r->connect_timer, (uint64_t)r->opts.connect_timeout_ms);
}

static void deadline_fired(ob_timer_t *t, void *arg)
{
    ob_redis_t *r = arg;
    uint64_t now = ob_loop_now(r->loop);
    int sent_expired = 0;
    ob_redis_cmd_t *c = r->head;
    while (c && c->deadline <= now) {
        ob_redis_cmd_t *next = c->next;
        if (c->sent)
            sent_expired = 1;
        complete(c, OB_ERR_TIMEOUT, NULL);
        if (!c->sent)
            free(c); /* hiredis never saw it */
        c = next;
    }
    if (sent_expired)
        drop_connection(r, OB_ERR_TIMEOUT, "a command missed its deadline");
    arm_deadline(r);
}

ob_redis_t *ob_redis_new(ob_loop_t *loop, const ob_redis_opts_t *opts, char *errstr,
                         size_t errstr_size)
{
    ob_redis_t *r = calloc(1, sizeof(*r));
    if (!r) {
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    r->loop = loop;
    r->opts = *opts;
    if (r->opts.connect_timeout_ms <= 0)
        r->opts.connect_timeout_ms = 2000;
    if (r->opts.command_timeout_ms <= 0)
        r->opts.command_timeout_ms = 2000;
    if (r->opts.max_queued == 0)
        r->opts.max_queued = 100000;
    r->host = strdup(opts->host ? opts->host : "127.0.0.1");
    r->password = opts->password ? strdup(opts->password) : NULL;
    r->opts.host = r->host;
    r->opts.password = NULL; /* only r->password holds it */
    r->backoff_ms = 50;
    r->deadline_timer = ob_timer_new(loop, deadline_fired, r);
    r->reconnect_timer = ob_timer_new(loop, reconnect_fired, r);
    r->connect_timer = ob_timer_new(loop, connect_timeout, r);
    r->ping_timer = ob_timer_new(loop, ping_fired, r);
    if (!r->host || (opts->password && !r->password) || !r->deadline_timer || !r->reconnect_timer ||
        !r->connect_timer || !r->ping_timer) {
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        ob_redis_free(r);
        return NULL;
    }
    connect_now(r);
    return r;
}

void ob_redis_free(ob_redis_t *r)
{
    if (!r)
        return;
    r->freeing = 1;
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac); /* calls on_reply(NULL) for sent commands: cancelled */
    }
    while (r->head) {
        ob_redis_cmd_t *c = r->head;
        int sent = c->sent;
        complete(c, OB_ERR_CANCELLED, NULL);
        if (!sent)
            free(c);
    }
    ob_timer_free(r->deadline_timer);
    ob_timer_free(r->reconnect_timer);
    ob_timer_free(r->connect_timer);
    ob_timer_free(r->ping_timer);
    ob_io_free(r->io);
    if (r->password) {
        memset(r->password, 0, strlen(r->password));
        free(r->password);
    }
    free(r->host);
    free(r);
}

void ob_redis_set_state_cb(ob_redis_t *r, ob_redis_state_cb *cb, void *arg)
{
    r->state_cb = cb;
    r->state_arg = arg;
}

static ob_err_t submit(ob_redis_t *r, ob_redis_cb *cb, void *arg, char *formatted, long len)
{
    if (len < 0 || !formatted)
        return OB_ERR_INVALID_ARG;
    if (!r->connected && r->nqueued >= r->opts.max_queued) {
        free(formatted);
        return OB_ERR_REDIS;
    }
    ob_redis_cmd_t *c = calloc(1, sizeof(*c));
    if (!c) {
        free(formatted);
        return OB_ERR_NOMEM;
    }
    c->r = r;
    c->cb = cb;
    c->arg = arg;
    c->deadline = ob_loop_update_time(r->loop) + (uint64_t)r->opts.command_timeout_ms;
    c->formatted = formatted;
    c->formatted_len = (size_t)len;
    c->prev = r->tail;
    if (r->tail)
        r->tail->next = c;
    else
        r->head = c;
    r->tail = c;
    if (!r->first_unsent)
        r->first_unsent = c;
    r->npending++;
    r->nqueued++;
    if (r->connected && r->ac)
        send_queued(r);
    if (!ob_timer_active(r->deadline_timer))
        arm_deadline(r);
    return OB_OK;
}

ob_err_t ob_redis_command(ob_redis_t *r, ob_redis_cb *cb, void *arg, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return OB_ERR_INVALID_ARG;
    return submit(r, cb, arg, cmd, len);
}

ob_err_t ob_redis_command_argv(ob_redis_t *r, ob_redis_cb *cb, void *arg, int argc,
                               const char **argv, const size_t *argvlen)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0)
        return OB_ERR_INVALID_ARG;
    return submit(r, cb, arg, cmd, len);
}

int ob_redis_connected(const ob_redis_t *r)
{
    return r->connected;
}

const char *ob_redis_refused(const ob_redis_t *r)
{
    return r->refused[0] ? r->refused : NULL;
}

size_t ob_redis_pending(const ob_redis_t *r)
{
    return r->npending;
}

uint64_t ob_redis_connects(const ob_redis_t *r)
{
    return r->connects;
}

const char *ob_redis_reply_error(const redisReply *reply)
{
    return reply && reply->type == REDIS_REPLY_ERROR ? reply->str : NULL;
}
