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

#include <arpa/inet.h>
#include <hiredis/async.h>
#include <hiredis/hiredis_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"
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
    SSL_CTX *tls; /* NULL: plain TCP */
    char *tls_name;
    /* Sentinel: where to ask for the primary (nsentinels 0: host is the server). */
    char **sentinel_host;
    int *sentinel_port;
    int nsentinels;
    int sentinel_next; /* the one to ask next */
    int asking;        /* r->ac is a connection to sentinel_next */
    int primary_known; /* host and port are what a sentinel said */
    char *sentinel_master;
    char *sentinel_password;
    char server[300]; /* "host:port" connected to or last tried */
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
    const redisReply *rep = reply;
    if (!c->done && rep && rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "READONLY", 8) &&
        !r->freeing && r->ac == ac) {
        /* A replica now: the primary was demoted (a failover). The command
         * did not run; the connection goes, and the next one finds the new
         * primary (through Sentinel, or a name that follows it). */
        complete(c, OB_ERR_CONN, NULL);
        r->primary_known = 0;
        drop_connection(r, OB_ERR_CONN, "the server is a replica now (READONLY)");
        arm_deadline(r);
        free(c);
        return;
    }
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
static void on_role_reply(redisAsyncContext *ac, void *reply, void *privdata);

static void send_ping(ob_redis_t *r)
{
    if (r->ac && redisAsyncCommand(r->ac, on_ping_reply, NULL, "PING") != REDIS_OK)
        drop_connection(r, OB_ERR_CONN, "cannot write to the Redis connection");
}

static void ping_fired(ob_timer_t *t, void *arg)
{
    send_ping(arg);
}

static void on_sentinel_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* The next connection asks the next sentinel. */
static void sentinel_failed(ob_redis_t *r)
{
    r->asking = 0;
    r->sentinel_next = (r->sentinel_next + 1) % r->nsentinels;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    ob_redis_t *r = ac->data;
    if (status != REDIS_OK) {
        ob_timer_stop(r->connect_timer);
        /* hiredis frees the context itself after a failed connect. */
        ob_logf(OB_LOG_WARN, "redis", "connect to %s%s failed: %s", r->asking ? "sentinel " : "",
                r->server, ac->errstr ? ac->errstr : "unknown error");
        r->ac = NULL;
        if (r->asking)
            sentinel_failed(r);
        else
            r->primary_known = 0;
        schedule_reconnect(r);
        return;
    }
    if (r->asking) {
        if (redisAsyncCommand(r->ac, on_sentinel_reply, NULL, "SENTINEL get-master-addr-by-name %s",
                              r->sentinel_master) != REDIS_OK) {
            sentinel_failed(r);
            drop_connection(r, OB_ERR_CONN, "cannot write to the sentinel");
        }
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
        ob_logf(OB_LOG_INFO, "redis", "reconnected to %s", r->server);
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
                    "%s refuses our commands: %s (check redis.password and the server's "
                    "requirepass or ACL user)",
                    r->server, rep->str);
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
    if (r->nsentinels) {
        /* What Sentinel said may be out of date by now (a failover under
         * way): only the primary will do. */
        if (redisAsyncCommand(r->ac, on_role_reply, NULL, "ROLE") != REDIS_OK)
            drop_connection(r, OB_ERR_CONN, "cannot write to the Redis connection");
        return;
    }
    on_ready(r);
}

static void on_role_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    ob_redis_t *r = ac->data;
    redisReply *rep = reply;
    if (!rep || r->freeing || r->ac != ac)
        return;
    /* An ACL user without ROLE cannot tell: a demoted primary still shows
     * itself with READONLY. */
    if (rep->type == REDIS_REPLY_ERROR ||
        (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
         rep->element[0]->type == REDIS_REPLY_STRING && !strcmp(rep->element[0]->str, "master"))) {
        on_ready(r);
        return;
    }
    r->primary_known = 0;
    drop_connection(r, OB_ERR_CONN,
                    "not the primary (a failover under way?): asking Sentinel again");
}

static void on_sentinel_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    ob_redis_t *r = ac->data;
    redisReply *rep = reply;
    if (!rep || r->freeing || r->ac != ac)
        return;
    char was[300];
    snprintf(was, sizeof(was), "%s", r->server);
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING ||
        rep->element[1]->type != REDIS_REPLY_STRING) {
        ob_logf(OB_LOG_WARN, "redis", "sentinel %s does not know a primary named %s: %s", was,
                r->sentinel_master,
                rep->type == REDIS_REPLY_ERROR ? rep->str : "no address in its answer");
        sentinel_failed(r);
        drop_connection(r, OB_ERR_CONN, "no primary from this sentinel");
        return;
    }
    char *host = ob_strdup(rep->element[0]->str);
    int port = atoi(rep->element[1]->str);
    if (!host || port <= 0 || port > 65535) {
        free(host);
        sentinel_failed(r);
        drop_connection(r, OB_ERR_CONN, "a sentinel's answer is not an address");
        return;
    }
    if (strcmp(host, r->host) != 0 || port != r->opts.port)
        ob_logf(OB_LOG_INFO, "redis", "sentinel %s: the primary of %s is %s:%d", was,
                r->sentinel_master, host, port);
    free(r->host);
    r->host = host;
    r->opts.host = host;
    r->opts.port = port;
    r->primary_known = 1;
    r->asking = 0;
    /* Off to the primary at once (after hiredis lets go of this context). */
    drop_connection(r, OB_ERR_CONN, NULL);
    ob_timer_stop(r->reconnect_timer);
    ob_timer_start(r->reconnect_timer, 0);
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
    ob_logf(OB_LOG_WARN, "redis", "connection to %s%s lost: %s", r->asking ? "sentinel " : "",
            r->server, status == REDIS_OK ? "closed" : (ac->errstr ? ac->errstr : "error"));
    if (r->asking)
        sentinel_failed(r);
    else
        r->primary_known = 0;
    set_connected(r, 0);
    schedule_reconnect(r);
}

/* Tear the current connection down ourselves (deadline passed, write failed). */
static void drop_connection(ob_redis_t *r, ob_err_t err, const char *why)
{
    redisAsyncContext *ac = r->ac;
    if (!ac)
        return;
    if (why)
        ob_logf(OB_LOG_WARN, "redis", "dropping connection to %s: %s", r->server, why);
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
        ob_logf(OB_LOG_WARN, "redis", "connect to %s%s timed out after %ld ms",
                r->asking ? "sentinel " : "", r->server, r->opts.connect_timeout_ms);
        if (r->asking)
            sentinel_failed(r);
        else
            r->primary_known = 0;
        r->freeing = 1;
        redisAsyncFree(r->ac);
        r->freeing = 0;
        r->ac = NULL;
        ob_timer_stop(r->ping_timer);
        schedule_reconnect(r);
    }
}

static int is_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* TLS on a connection being made: hiredis drives the handshake; the
 * certificate must chain to our CAs and carry the expected name. */
static int tls_start(ob_redis_t *r, redisAsyncContext *ac, const char *host)
{
    SSL *ssl = SSL_new(r->tls);
    if (!ssl)
        return -1;
    const char *name = r->tls_name ? r->tls_name : host;
    int ok = is_ip(name)
                 ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1
                 : SSL_set_tlsext_host_name(ssl, name) == 1 && SSL_set1_host(ssl, name) == 1;
    if (!ok || redisInitiateSSL(&ac->c, ssl) != REDIS_OK) {
        SSL_free(ssl); /* hiredis took it only on success */
        return -1;
    }
    return 0;
}

static const char *tls_error(void)
{
    unsigned long e = ERR_get_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    return why ? why : "unknown error";
}

static SSL_CTX *tls_context(const ob_redis_opts_t *o, char *errstr, size_t errstr_size)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "redis TLS: %s", tls_error());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    const char *what = NULL;
    if (o->tls_ca && o->tls_ca[0] ? SSL_CTX_load_verify_locations(ctx, o->tls_ca, NULL) != 1
                                  : SSL_CTX_set_default_verify_paths(ctx) != 1)
        what = "redis.tls.ca.file";
    else if (o->tls_cert && o->tls_cert[0] &&
             SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert) != 1)
        what = "redis.tls.cert.file";
    else if (o->tls_cert && o->tls_cert[0] &&
             (!o->tls_key || !o->tls_key[0] ||
              SSL_CTX_use_PrivateKey_file(ctx, o->tls_key, SSL_FILETYPE_PEM) != 1 ||
              SSL_CTX_check_private_key(ctx) != 1))
        what = "redis.tls.key.file";
    if (what) {
        ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "%s: %s", what, tls_error());
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* "host:port,host:port" into the sentinel list. */
static ob_err_t parse_sentinels(ob_redis_t *r, const char *list, char *errstr, size_t errstr_size)
{
    int n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    r->sentinel_host = ob_calloc((size_t)n, sizeof(*r->sentinel_host));
    r->sentinel_port = ob_calloc((size_t)n, sizeof(*r->sentinel_port));
    if (!r->sentinel_host || !r->sentinel_port)
        return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *colon = NULL;
        for (size_t i = 0; i < len; i++)
            if (p[i] == ':')
                colon = p + i;
        char *tail = NULL;
        long port = colon ? strtol(colon + 1, &tail, 10) : 0;
        if (!colon || colon == p || tail != p + len || port < 1 || port > 65535)
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                           "redis.sentinels: \"%.*s\" is not host:port", (int)len, p);
        char *host = ob_strndup(p, (size_t)(colon - p));
        if (!host)
            return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        r->sentinel_host[r->nsentinels] = host;
        r->sentinel_port[r->nsentinels++] = (int)port;
        p += len;
        if (*p == ',')
            p++;
    }
    if (!r->nsentinels)
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "redis.sentinels: no sentinel");
    return OB_OK;
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
    const char *host = r->host;
    int port = r->opts.port;
    r->asking = r->nsentinels > 0 && !r->primary_known;
    if (r->asking) {
        host = r->sentinel_host[r->sentinel_next];
        port = r->sentinel_port[r->sentinel_next];
    }
    snprintf(r->server, sizeof(r->server), "%s:%d", host, port);
    redisAsyncContext *ac = redisAsyncConnect(host, port);
    const char *why = ac && !ac->err ? NULL : ac && ac->errstr[0] ? ac->errstr : "out of memory";
    if (!why && r->tls && tls_start(r, ac, host) != 0)
        why = ac->errstr[0] ? ac->errstr : "cannot start TLS";
    if (why) {
        ob_logf(OB_LOG_WARN, "redis", "cannot start a connection to %s%s: %s",
                r->asking ? "sentinel " : "", r->server, why);
        if (ac)
            redisAsyncFree(ac);
        if (r->asking)
            sentinel_failed(r);
        else
            r->primary_known = 0; /* the sentinels may know better by the next try */
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
    if (r->asking) {
        if (r->sentinel_password && r->sentinel_password[0])
            redisAsyncCommand(ac, on_setup_reply, (void *)"AUTH (sentinel)", "AUTH %s",
                              r->sentinel_password);
    } else {
        if (r->password && r->password[0])
            redisAsyncCommand(ac, on_setup_reply, (void *)"AUTH", "AUTH %s", r->password);
        if (r->opts.db != 0)
            redisAsyncCommand(ac, on_setup_reply, (void *)"SELECT", "SELECT %d", r->opts.db);
    }
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
    static int allocators_set;
    if (!allocators_set) {
        /* hiredis allocates under the project's out-of-memory policy (ob_alloc.h). */
        hiredisAllocFuncs fns = {.mallocFn = ob_malloc,
                                 .callocFn = ob_calloc,
                                 .reallocFn = ob_realloc,
                                 .strdupFn = ob_strdup,
                                 .freeFn = free};
        hiredisSetAllocators(&fns);
        allocators_set = 1;
    }
    ob_redis_t *r = ob_calloc(1, sizeof(*r));
    r->loop = loop;
    r->opts = *opts;
    if (r->opts.connect_timeout_ms <= 0)
        r->opts.connect_timeout_ms = 2000;
    if (r->opts.command_timeout_ms <= 0)
        r->opts.command_timeout_ms = 2000;
    if (r->opts.max_queued == 0)
        r->opts.max_queued = 100000;
    r->host = ob_strdup(opts->host ? opts->host : "127.0.0.1");
    r->password = opts->password ? ob_strdup(opts->password) : NULL;
    r->opts.host = r->host;
    r->opts.password = NULL; /* only r->password holds it */
    r->backoff_ms = 50;
    r->deadline_timer = ob_timer_new(loop, deadline_fired, r);
    r->reconnect_timer = ob_timer_new(loop, reconnect_fired, r);
    r->connect_timer = ob_timer_new(loop, connect_timeout, r);
    r->ping_timer = ob_timer_new(loop, ping_fired, r);
    r->opts.tls_ca = r->opts.tls_cert = r->opts.tls_key = r->opts.tls_server_name = NULL;
    r->opts.sentinels = r->opts.sentinel_master = r->opts.sentinel_password = NULL;
    r->sentinel_master = ob_strdup(
        opts->sentinel_master && opts->sentinel_master[0] ? opts->sentinel_master : "mymaster");
    r->sentinel_password = opts->sentinel_password && opts->sentinel_password[0]
                               ? ob_strdup(opts->sentinel_password)
                               : NULL;
    r->tls_name =
        opts->tls_server_name && opts->tls_server_name[0] ? ob_strdup(opts->tls_server_name) : NULL;
    if (!r->host || (opts->password && !r->password) || !r->deadline_timer || !r->reconnect_timer ||
        !r->connect_timer || !r->ping_timer || !r->sentinel_master) {
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        ob_redis_free(r);
        return NULL;
    }
    if ((opts->tls_enabled && !(r->tls = tls_context(opts, errstr, errstr_size))) ||
        (opts->sentinels && opts->sentinels[0] &&
         parse_sentinels(r, opts->sentinels, errstr, errstr_size) != OB_OK)) {
        ob_redis_free(r);
        return NULL;
    }
    snprintf(r->server, sizeof(r->server), "%s:%d", r->host, r->opts.port);
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
    if (r->sentinel_password) {
        memset(r->sentinel_password, 0, strlen(r->sentinel_password));
        free(r->sentinel_password);
    }
    for (int i = 0; i < r->nsentinels; i++)
        free(r->sentinel_host[i]);
    free(r->sentinel_host);
    free(r->sentinel_port);
    free(r->sentinel_master);
    free(r->tls_name);
    if (r->tls)
        SSL_CTX_free(r->tls);
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
    ob_redis_cmd_t *c = ob_calloc(1, sizeof(*c));
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

ob_err_t ob_redis_commandv(ob_redis_t *r, ob_redis_cb *cb, void *arg, const char *fmt, va_list ap)
{
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    if (len < 0)
        return OB_ERR_INVALID_ARG;
    return submit(r, cb, arg, cmd, len);
}

ob_err_t ob_redis_command(ob_redis_t *r, ob_redis_cb *cb, void *arg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ob_err_t e = ob_redis_commandv(r, cb, arg, fmt, ap);
    va_end(ap);
    return e;
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

const char *ob_redis_server(const ob_redis_t *r)
{
    return r->server;
}

const char *ob_redis_reply_error(const redisReply *reply)
{
    return reply && reply->type == REDIS_REPLY_ERROR ? reply->str : NULL;
}
