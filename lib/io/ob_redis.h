/*
 * ob_redis: one asynchronous Redis connection on the event loop (hiredis),
 * with command deadlines, transparent reconnects, AUTH and SELECT.
 *
 * Commands are pipelined on one connection and answered in order. Each has a
 * deadline (command_timeout_ms from submission). Because deadlines and replies
 * are both in submission order, one loop timer on the oldest unanswered
 * command covers them all. When a sent command misses its deadline the
 * connection is assumed stuck (a paused or overloaded server): that command
 * and every other command already sent fail with OB_ERR_TIMEOUT and the
 * connection is dropped and re-established.
 *
 * A connection counts as up once PING answers PONG (a server still loading
 * its data answers -LOADING; PING is repeated every 100 ms until it is
 * ready), so no command is sent to a server that would refuse it or whose
 * load would overwrite it. While disconnected, commands are queued (up to
 * max_queued) and sent once the connection is back; those whose deadline passes first fail with
 * OB_ERR_TIMEOUT. Reconnects back off from 50 ms to 2 s. A command that was
 * sent on a connection that then broke fails with OB_ERR_CONN: it may or may
 * not have run, so callers make their writes idempotent (fencing tokens,
 * compare-and-set scripts), exactly as for any network call.
 *
 * TLS (tls_enabled): every connection, Sentinel's too, is TLS 1.2+ with the
 * server's certificate checked against tls_ca (a PEM file; NULL: the system's
 * CAs) and its name against tls_server_name (NULL: the host connected to; an
 * IP address is checked as one). A client certificate with tls_cert/tls_key.
 *
 * Sentinel (sentinels: "host:port,host:port"): before every connection the
 * client asks the sentinels in turn for the address of sentinel_master's
 * primary (SENTINEL get-master-addr-by-name), connects there and checks with
 * ROLE that it is the primary. A lost connection, a server that turns out to
 * be a replica, and a write refused with READONLY (the primary was demoted)
 * all drop the connection and ask again, so the client follows a failover.
 * READONLY also drops the connection without Sentinel: a DNS name that moves
 * to the new primary (a managed service's primary endpoint) is resolved again.
 * The refused command fails with OB_ERR_CONN: it did not run.
 *
 * Callbacks: `reply` is valid only during the callback. err is OB_OK with a
 * reply (which may itself be a Redis error reply: see ob_redis_reply_error),
 * or another code with reply NULL. Callbacks never run inside
 * ob_redis_command(): a failure to queue is the return value instead.
 * Do not call ob_redis_free() from a callback.
 *
 * Threading: loop thread only.
 */
#ifndef OB_REDIS_H
#define OB_REDIS_H

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "ob_err.h"
#include "ob_loop.h"

typedef struct ob_redis_s ob_redis_t;

typedef struct ob_redis_opts_s {
    const char *host;
    int port;
    const char *password; /* NULL or "": no AUTH */
    int db;
    long connect_timeout_ms; /* 0: 2000 */
    long command_timeout_ms; /* 0: 2000 */
    size_t max_queued;       /* commands held while disconnected (0: 100000) */
    int tls_enabled;
    const char *tls_ca, *tls_cert, *tls_key, *tls_server_name; /* NULL or "": none */
    const char *sentinels;         /* NULL or "": host and port are the server */
    const char *sentinel_master;   /* NULL or "": "mymaster" */
    const char *sentinel_password; /* NULL or "": no AUTH to the sentinels */
} ob_redis_opts_t;

typedef void(ob_redis_cb)(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg);
/* Connection state changes: connected 1 after connect (+AUTH/SELECT sent), 0 on loss. */
typedef void(ob_redis_state_cb)(ob_redis_t *r, int connected, void *arg);

/* Create and start connecting (non-blocking; host should be an IP literal or
 * a name resolvable quickly: hiredis resolves names synchronously). */
ob_redis_t *ob_redis_new(ob_loop_t *loop, const ob_redis_opts_t *opts, char *errstr,
                         size_t errstr_size);
/* Pending commands fail with OB_ERR_CANCELLED. */
void ob_redis_free(ob_redis_t *r);
void ob_redis_set_state_cb(ob_redis_t *r, ob_redis_state_cb *cb, void *arg);

/* Queue a command (hiredis printf-style format, e.g. "SET %s %b"). The
 * callback runs exactly once, later, if and only if this returns OB_OK;
 * otherwise (OB_ERR_REDIS: disconnected with max_queued commands waiting
 * already; OB_ERR_INVALID_ARG: a bad format) it never runs. */
ob_err_t ob_redis_command(ob_redis_t *r, ob_redis_cb *cb, void *arg, const char *fmt, ...);
ob_err_t ob_redis_commandv(ob_redis_t *r, ob_redis_cb *cb, void *arg, const char *fmt, va_list ap);
ob_err_t ob_redis_command_argv(ob_redis_t *r, ob_redis_cb *cb, void *arg, int argc,
                               const char **argv, const size_t *argvlen);

int ob_redis_connected(const ob_redis_t *r);
/* The server's last refusal (NOAUTH, WRONGPASS...: a wrong redis.password),
 * or NULL. While it refuses, the client is not connected, waiting commands
 * fail with OB_ERR_REDIS and it keeps trying with a backoff. */
const char *ob_redis_refused(const ob_redis_t *r);
/* Commands submitted and not yet answered. */
size_t ob_redis_pending(const ob_redis_t *r);
/* Successful connections so far (1 after the first, 2 after one reconnect...). */
uint64_t ob_redis_connects(const ob_redis_t *r);
/* The server connected to or last tried ("host:port"). */
const char *ob_redis_server(const ob_redis_t *r);

/* Text of a Redis error reply, or NULL when reply is not an error. */
const char *ob_redis_reply_error(const redisReply *reply);

#endif
