/*
 * ob_httpd: the HTTP/1.1 server, driven from the same loop two ways. Raw
 * sockets send byte-exact requests (pipelining, splits down to single bytes,
 * chunked bodies with trailers, 100-continue, every error status, timeouts,
 * thousands of pending requests, slow readers, fuzzed byte streams); the
 * project's curl client (ob_http) checks what a real client sees (methods,
 * keep-alive reuse, delayed answers, resets, truncated bodies).
 *
 * Run as `test_httpd --serve PORT_FILE` the binary is instead the benchmark
 * server of bench/httpd_bench.sh: it answers "hello" to everything on a free
 * loopback port, writes the port to PORT_FILE and runs until SIGTERM.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ob_http.h"
#include "ob_httpd.h"
#include "testutil.h"

/* ---- the server under test ---- */

#define MAX_HELD 4096

typedef struct ctx_s {
    ob_loop_t *loop;
    ob_httpd_t *srv;
    int port;
    int closes; /* on_close callbacks seen */
    ob_httpd_conn_t *held[MAX_HELD];
    int nheld;
    ob_err_t bad_results[4];
} ctx_t;

typedef struct delay_s {
    ctx_t *x;
    ob_timer_t *t;
    ob_httpd_conn_t *c;
    char body[128];
} delay_t;

static long qint(const char *query, const char *key, long def)
{
    size_t kl = strlen(key);
    for (const char *p = query; p && *p;) {
        if (!strncmp(p, key, kl) && p[kl] == '=')
            return atol(p + kl + 1);
        p = strchr(p, '&');
        if (p)
            p++;
    }
    return def;
}

static void echo(ob_httpd_conn_t *c, const ob_httpd_req_t *req)
{
    ob_buf_t b = {0};
    ob_buf_printf(&b, "%s %s %s %zu\n", req->method, req->path, req->query, req->body_len);
    ob_buf_append(&b, req->body, req->body_len);
    ob_hdrs_t h = {0};
    ob_hdrs_add(&h, "Content-Type", "text/plain");
    const char *t = ob_hdrs_get(req->headers, "x-trailer");
    if (t)
        ob_hdrs_add(&h, "X-Got-Trailer", t);
    ob_hdrs_add(&h, "X-Peer", req->peer);
    assert_int_equal(ob_httpd_respond(c, 200, &h, b.data, b.len), OB_OK);
    ob_hdrs_clear(&h);
    ob_buf_free(&b);
}

static void count_close(ob_httpd_conn_t *c, void *arg)
{
    ((ctx_t *)arg)->closes++;
}

static void held_closed(ob_httpd_conn_t *c, void *arg)
{
    ctx_t *x = arg;
    for (int i = 0; i < x->nheld; i++)
        if (x->held[i] == c)
            x->held[i] = NULL;
    x->closes++;
}

static void delay_fire(ob_timer_t *t, void *arg)
{
    delay_t *d = arg;
    assert_int_equal(ob_httpd_respond(d->c, 200, NULL, d->body, strlen(d->body)), OB_OK);
    ob_timer_free(t);
    free(d);
}

static void delay_cancel(ob_httpd_conn_t *c, void *arg)
{
    delay_t *d = arg;
    d->x->closes++;
    ob_timer_free(d->t);
    free(d);
}

static void handler(ob_httpd_conn_t *c, const ob_httpd_req_t *req, void *arg)
{
    ctx_t *x = arg;
    if (!strcmp(req->path, "/echo")) {
        echo(c, req);
    } else if (!strcmp(req->path, "/delay")) {
        delay_t *d = calloc(1, sizeof(*d));
        d->x = x;
        d->c = c;
        snprintf(d->body, sizeof(d->body), "delayed %s", req->query);
        d->t = ob_timer_new(x->loop, delay_fire, d);
        ob_timer_start(d->t, (uint64_t)qint(req->query, "ms", 0));
        ob_httpd_on_close(c, delay_cancel, d);
    } else if (!strcmp(req->path, "/never")) {
        ob_httpd_on_close(c, count_close, x);
    } else if (!strcmp(req->path, "/hold")) {
        assert_true(x->nheld < MAX_HELD);
        x->held[x->nheld++] = c;
        ob_httpd_on_close(c, held_closed, x);
    } else if (!strcmp(req->path, "/reset")) {
        ob_httpd_reset(c);
    } else if (!strcmp(req->path, "/truncated")) {
        char body[100];
        memset(body, 'z', sizeof(body));
        assert_int_equal(ob_httpd_respond_truncated(c, 200, NULL, body, sizeof(body), 10), OB_OK);
    } else if (!strcmp(req->path, "/big")) {
        size_t n = (size_t)qint(req->query, "n", 0);
        char *body = malloc(n + 1);
        memset(body, 'x', n);
        assert_int_equal(ob_httpd_respond(c, 200, NULL, body, n), OB_OK);
        free(body);
    } else if (!strcmp(req->path, "/badrespond")) {
        ob_hdrs_t h = {0};
        ob_hdrs_add(&h, "X-Evil", "a\r\nInjected: 1");
        x->bad_results[0] = ob_httpd_respond(c, 99, NULL, "x", 1);
        x->bad_results[1] = ob_httpd_respond(c, 200, &h, "x", 1);
        x->bad_results[2] = ob_httpd_respond(c, 200, NULL, "fine", 4);
        x->bad_results[3] = ob_httpd_respond(c, 200, NULL, "twice", 5);
        ob_hdrs_clear(&h);
    } else {
        ob_hdrs_t h = {0};
        ob_hdrs_add(&h, "Server", "AmazonS3");
        ob_httpd_respond(c, 404, &h, "not found\n", 10);
        ob_hdrs_clear(&h);
    }
}

static ctx_t *start(const ob_httpd_opts_t *o)
{
    ctx_t *x = calloc(1, sizeof(*x));
    char err[256];
    x->loop = ob_loop_new(err, sizeof(err));
    assert_non_null(x->loop);
    x->srv = ob_httpd_new(x->loop, o, handler, x, err, sizeof(err));
    if (!x->srv)
        fail_msg("ob_httpd_new: %s", err);
    x->port = ob_httpd_port(x->srv);
    assert_true(x->port > 0);
    return x;
}

static void stop(ctx_t *x)
{
    ob_httpd_free(x->srv);
    ob_loop_free(x->loop);
    free(x);
}

static ob_httpd_stats_t stats(const ctx_t *x)
{
    ob_httpd_stats_t st;
    ob_httpd_get_stats(x->srv, &st);
    return st;
}

/* Run the loop until cond holds or ms pass. */
#define RUN_UNTIL(x, cond, ms)                                                                     \
    do {                                                                                           \
        uint64_t end_ = ob_loop_update_time((x)->loop) + (ms);                                     \
        while (!(cond) && ob_loop_update_time((x)->loop) < end_)                                   \
            ob_loop_run_once((x)->loop, 5);                                                        \
    } while (0)

/* ---- a raw client ---- */

typedef struct cli_s {
    int fd;
    char *buf;
    size_t len, cap;
    int eof, reset;
} cli_t;

typedef struct resp_s {
    int status;
    int got_continue;
    char head[4096];
    char *body;
    size_t body_len;
} resp_t;

/* rcvbuf > 0: a small receive buffer, to play a slow reader. */
static cli_t *cli_open_rcvbuf(int port, int rcvbuf)
{
    cli_t *c = calloc(1, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    if (rcvbuf > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    return c;
}

/* A client from another loopback address (127.0.0.X), as another peer. */
static cli_t *cli_open_from(int port, const char *addr)
{
    cli_t *c = calloc(1, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, addr, &a.sin_addr), 1);
    assert_int_equal(bind(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    return c;
}

static cli_t *cli_open(int port)
{
    return cli_open_rcvbuf(port, 0);
}

static void cli_free(cli_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    free(c);
}

/* Close with a TCP reset. */
static void cli_abort(cli_t *c)
{
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    cli_free(c);
}

static void cli_send(ob_loop_t *loop, cli_t *c, const void *p, size_t n)
{
    const char *s = p;
    uint64_t end = ob_loop_update_time(loop) + 20000;
    while (n) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w > 0) {
            s += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            assert_true(ob_loop_update_time(loop) < end);
            ob_loop_run_once(loop, 5);
            continue;
        }
        return; /* the server closed: the caller checks what it answered */
    }
}

static void cli_sends(ob_loop_t *loop, cli_t *c, const char *s)
{
    cli_send(loop, c, s, strlen(s));
}

/* Read more. 1: got bytes, 0: timeout, -1: closed (eof or reset). */
static int cli_fill(ob_loop_t *loop, cli_t *c, int timeout_ms)
{
    uint64_t end = ob_loop_update_time(loop) + (uint64_t)timeout_ms;
    for (;;) {
        if (c->cap - c->len < 65536) {
            c->cap = c->cap ? c->cap * 2 : 131072;
            c->buf = realloc(c->buf, c->cap);
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
        if (n > 0) {
            c->len += (size_t)n;
            c->buf[c->len] = '\0';
            return 1;
        }
        if (n == 0) {
            c->eof = 1;
            return -1;
        }
        if (errno == ECONNRESET) {
            c->reset = 1;
            return -1;
        }
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        if (ob_loop_update_time(loop) >= end)
            return 0;
        ob_loop_run_once(loop, 5);
    }
}

static void cli_consume(cli_t *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    c->buf[c->len] = '\0';
}

/* Value of a header in a raw response head, or NULL. */
static const char *head_value(const char *head, const char *name, char *out, size_t out_size)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *l = p + 2;
        if (!strncasecmp(l, name, nl) && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t vl = e ? (size_t)(e - v) : strlen(v);
            if (vl >= out_size)
                vl = out_size - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
    }
    return NULL;
}

/* Read one response (skipping a 100 Continue). 1 when complete. */
static int cli_response(ob_loop_t *loop, cli_t *c, resp_t *r, int no_body, int timeout_ms)
{
    memset(r, 0, sizeof(*r));
    for (;;) {
        char *e = c->buf ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (e) {
            size_t hl = (size_t)(e + 4 - c->buf);
            assert_memory_equal(c->buf, "HTTP/1.1 ", 9);
            int status = atoi(c->buf + 9);
            if (status == 100) {
                r->got_continue = 1;
                cli_consume(c, hl);
                continue;
            }
            size_t keep = hl < sizeof(r->head) ? hl : sizeof(r->head) - 1;
            memcpy(r->head, c->buf, keep);
            r->head[keep] = '\0';
            char v[64];
            size_t cl = head_value(r->head, "Content-Length", v, sizeof(v)) ? (size_t)atol(v) : 0;
            if (no_body)
                cl = 0;
            if (c->len >= hl + cl) {
                r->status = status;
                r->body = malloc(cl + 1);
                memcpy(r->body, c->buf + hl, cl);
                r->body[cl] = '\0';
                r->body_len = cl;
                cli_consume(c, hl + cl);
                return 1;
            }
        }
        if (c->eof || c->reset)
            return 0;
        if (cli_fill(loop, c, timeout_ms) == 0)
            return 0;
    }
}

/* Wait until the server closes the connection. 1 if it did. */
static int cli_wait_close(ob_loop_t *loop, cli_t *c, int timeout_ms)
{
    uint64_t end = ob_loop_update_time(loop) + (uint64_t)timeout_ms;
    while (!c->eof && !c->reset) {
        int left = (int)(end - ob_loop_update_time(loop));
        if (left <= 0 || cli_fill(loop, c, left) == 0)
            return 0;
    }
    return 1;
}

/* One request on a fresh connection; returns the status (0 if none). */
static int raw_status(ctx_t *x, const char *req, size_t len, resp_t *r)
{
    cli_t *c = cli_open(x->port);
    cli_send(x->loop, c, req, len);
    int ok = cli_response(x->loop, c, r, 0, 5000);
    cli_free(c);
    return ok ? r->status : 0;
}

/* ---- the curl client ---- */

typedef struct result_s {
    int done;
    ob_err_t err;
    long status;
    char *body;
    size_t body_len;
    char server[64], clen[32], date[64];
    uint64_t elapsed_ms;
} result_t;

static void on_done(ob_http_resp_t *resp, void *arg)
{
    result_t *r = arg;
    r->done = 1;
    r->err = resp->err;
    r->status = resp->status;
    r->elapsed_ms = resp->elapsed_ms;
    r->body_len = resp->body.len;
    r->body = strdup(resp->body.data ? resp->body.data : "");
    const char *v = ob_hdrs_get(&resp->headers, "server");
    snprintf(r->server, sizeof(r->server), "%s", v ? v : "");
    v = ob_hdrs_get(&resp->headers, "content-length");
    snprintf(r->clen, sizeof(r->clen), "%s", v ? v : "");
    v = ob_hdrs_get(&resp->headers, "date");
    snprintf(r->date, sizeof(r->date), "%s", v ? v : "");
}

static int is_done(void *arg)
{
    return ((result_t *)arg)->done;
}

static void fetch(ob_http_t *h, ob_loop_t *loop, const char *method, const char *url,
                  const char *body, result_t *r)
{
    memset(r, 0, sizeof(*r));
    ob_http_req_t req = {.method = method,
                         .url = url,
                         .body = body,
                         .body_len = body ? strlen(body) : 0,
                         .timeout_ms = 10000};
    char err[256];
    assert_non_null(ob_http_send(h, &req, on_done, r, err, sizeof(err)));
    assert_true(ob_test_run_until(loop, is_done, r, 15000));
}

/* ---- tests ---- */

static void test_methods_via_curl(void **state)
{
    ctx_t *x = start(NULL);
    ob_http_t *h = ob_http_new(x->loop, NULL, NULL, 0);
    char url[256];
    result_t r;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo?a=1&b=%%20", x->port);
    fetch(h, x->loop, "GET", url, NULL, &r);
    assert_int_equal(r.err, OB_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "GET /echo a=1&b=%20 0\n");
    assert_string_equal(r.server, "onboard");
    assert_true(strlen(r.date) == 29 && !strcmp(r.date + 26, "GMT"));
    free(r.body);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", x->port);
    fetch(h, x->loop, "POST", url, "hello world", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "POST /echo  11\nhello world");
    free(r.body);
    fetch(h, x->loop, "PUT", url, "{\"k\":1}", &r);
    assert_string_equal(r.body, "PUT /echo  7\n{\"k\":1}");
    free(r.body);
    fetch(h, x->loop, "DELETE", url, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "DELETE /echo  0\n");
    free(r.body);
    /* HEAD: headers only, Content-Length of the body the handler gave. */
    fetch(h, x->loop, "HEAD", url, NULL, &r);
    assert_int_equal(r.err, OB_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(r.clen, "14"); /* "HEAD /echo  0\n" */
    free(r.body);
    /* A handler's own Server header wins. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/nope", x->port);
    fetch(h, x->loop, "GET", url, NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.server, "AmazonS3");
    free(r.body);

    ob_httpd_stats_t st = stats(x);
    assert_int_equal(st.requests, 6);
    assert_int_equal(st.responses, 6);
    assert_int_equal(st.pending, 0);
    ob_http_free(h);
    stop(x);
}

static void test_keepalive_reuse(void **state)
{
    ctx_t *x = start(NULL);
    ob_http_t *h = ob_http_new(x->loop, NULL, NULL, 0);
    char url[256], want[64];
    result_t r;
    for (int i = 0; i < 50; i++) {
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo?i=%d", x->port, i);
        fetch(h, x->loop, i % 2 ? "POST" : "GET", url, i % 2 ? "body" : NULL, &r);
        assert_int_equal(r.status, 200);
        snprintf(want, sizeof(want), "%s /echo i=%d %d\n%s", i % 2 ? "POST" : "GET", i,
                 i % 2 ? 4 : 0, i % 2 ? "body" : "");
        assert_string_equal(r.body, want);
        free(r.body);
    }
    ob_httpd_stats_t st = stats(x);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(st.requests, 50);
    assert_int_equal(st.open_connections, 1);
    ob_http_free(h);
    RUN_UNTIL(x, stats(x).open_connections == 0, 2000);
    assert_int_equal(stats(x).open_connections, 0);
    stop(x);
}

static void test_pipelined_in_order(void **state)
{
    ctx_t *x = start(NULL);
    cli_t *c = cli_open(x->port);
    cli_sends(x->loop, c,
              "GET /echo?n=1 HTTP/1.1\r\nHost: a\r\n\r\n"
              "GET /delay?ms=50&n=2 HTTP/1.1\r\nHost: a\r\n\r\n"
              "POST /echo?n=3 HTTP/1.1\r\nHost: a\r\ncontent-LENGTH: 5\r\n\r\nhello"
              "GET /echo?n=4 HTTP/1.1\r\nhost: a\r\n\r\n");
    /* One at a time: the third is not even parsed while the second waits. */
    RUN_UNTIL(x, stats(x).pending == 1, 2000);
    assert_int_equal(stats(x).requests, 2);
    resp_t r;
    const char *want[] = {"GET /echo n=1 0\n", "delayed ms=50&n=2", "POST /echo n=3 5\nhello",
                          "GET /echo n=4 0\n"};
    for (int i = 0; i < 4; i++) {
        assert_true(cli_response(x->loop, c, &r, 0, 5000));
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, want[i]);
        free(r.body);
    }
    char v[64];
    assert_non_null(head_value(r.head, "X-Peer", v, sizeof(v)));
    assert_memory_equal(v, "127.0.0.1:", 10);
    assert_int_equal(stats(x).accepted, 1);
    assert_int_equal(stats(x).requests, 4);
    cli_free(c);
    stop(x);
}

static void test_chunked_upload(void **state)
{
    ctx_t *x = start(NULL);
    cli_t *c = cli_open(x->port);
    const char *parts[] = {
        "POST /echo HTTP/1.1\r\nHost: a\r\ntransfer-ENCODING: Chunked\r\nTrailer: X-Trailer\r\n\r\n"
        "5;name=value\r\nhel",
        "lo\r\n1\r\n \r\nA\r\n0123",
        "456789\r\n0\r\nX-Trailer: yes\r\n",
        "\r\n",
    };
    for (int i = 0; i < 4; i++) {
        cli_sends(x->loop, c, parts[i]);
        for (int k = 0; k < 5; k++)
            ob_loop_run_once(x->loop, 1);
        if (i < 3)
            assert_int_equal(stats(x).requests, 0);
    }
    resp_t r;
    char v[64];
    assert_true(cli_response(x->loop, c, &r, 0, 5000));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "POST /echo  16\nhello 0123456789");
    assert_non_null(head_value(r.head, "X-Got-Trailer", v, sizeof(v)));
    assert_string_equal(v, "yes");
    free(r.body);
    /* The connection carries on after a chunked body; an empty chunked body is fine. */
    cli_sends(x->loop, c,
              "PUT /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_true(cli_response(x->loop, c, &r, 0, 5000));
    assert_string_equal(r.body, "PUT /echo  0\n");
    free(r.body);
    assert_int_equal(stats(x).accepted, 1);
    cli_free(c);
    stop(x);
}

static void test_expect_continue(void **state)
{
    ob_httpd_opts_t o = {.max_body_bytes = 1 << 20};
    ctx_t *x = start(&o);
    cli_t *c = cli_open(x->port);
    cli_sends(x->loop, c,
              "PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    while (c->len < 25 && cli_fill(x->loop, c, 2000) == 1)
        ;
    assert_string_equal(c->buf, "HTTP/1.1 100 Continue\r\n\r\n");
    assert_int_equal(stats(x).requests, 0);
    cli_sends(x->loop, c, "hello");
    resp_t r;
    assert_true(cli_response(x->loop, c, &r, 0, 5000));
    assert_int_equal(r.got_continue, 1);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "PUT /echo  5\nhello");
    free(r.body);
    /* The body arrived with the head: no interim answer needed. */
    cli_sends(x->loop, c,
              "PUT /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
              "Expect: 100-Continue\r\n\r\n2\r\nok\r\n0\r\n\r\n");
    assert_true(cli_response(x->loop, c, &r, 0, 5000));
    assert_int_equal(r.got_continue, 0);
    assert_string_equal(r.body, "PUT /echo  2\nok");
    free(r.body);
    cli_free(c);
    /* Too large: 413 instead of 100, so the client never sends the body. */
    c = cli_open(x->port);
    cli_sends(x->loop, c,
              "PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n"
              "Expect: 100-continue\r\n\r\n");
    assert_true(cli_response(x->loop, c, &r, 0, 5000));
    assert_int_equal(r.got_continue, 0);
    assert_int_equal(r.status, 413);
    free(r.body);
    assert_true(cli_wait_close(x->loop, c, 3000));
    cli_free(c);
    stop(x);
}

typedef struct bad_case_s {
    const char *req;
    int status;
} bad_case_t;

static void test_error_statuses(void **state)
{
    ob_httpd_opts_t o = {.max_header_bytes = 4096, .max_body_bytes = 1 << 20};
    ctx_t *x = start(&o);
    static const bad_case_t cases[] = {
        {"GARBAGE\r\n\r\n", 400},
        {"GET  /echo HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"G@T /echo HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET /echo HTTP/1.1\r\n\r\n", 400},
        {"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"GET /echo HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n", 400},
        {"GET /echo HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400},
        {"GET /echo HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", 400},
        {"GET /echo HTTP/1.1\r\nHost: a\r\n  folded\r\n\r\n", 400},
        {"GET /echo HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
        {"GET /echo HTTP/1.1\r\nHost: a\r\nX: a\001b\r\n\r\n", 400},
        {"GET /ec\x01ho HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET /echo FTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET /echo HTTP/1.1x\r\nHost: a\r\n\r\n", 400},
        {"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
         "Transfer-Encoding: chunked\r\n\r\n",
         400},
        {"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
         400},
        {"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd", 400},
        {"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
        {"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", 400},
        {"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
        {"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n",
         400},
        {"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400},
        {"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n", 413},
        {"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413},
        {"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n", 413},
        {"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
        {"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
         "Transfer-Encoding: identity\r\n\r\n",
         501},
        {"GET /echo HTTP/2.0\r\nHost: a\r\n\r\n", 505},
        {"GET /echo HTTP/0.9\r\n\r\n", 505},
        {"GET /echo HTTP/3\r\n\r\n", 505},
        {"GET /echo HTTP/1.1\r\nHost: a\r\nExpect: bogus\r\n\r\n", 417},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    resp_t r;
    char v[128];
    for (size_t i = 0; i < n; i++) {
        cli_t *c = cli_open(x->port);
        cli_sends(x->loop, c, cases[i].req);
        if (!cli_response(x->loop, c, &r, 0, 5000))
            fail_msg("case %zu: no response", i);
        if (r.status != cases[i].status)
            fail_msg("case %zu: status %d, want %d (%s)", i, r.status, cases[i].status, r.body);
        char want[8];
        snprintf(want, sizeof(want), "%d ", cases[i].status);
        assert_memory_equal(r.body, want, 4);
        assert_string_equal(head_value(r.head, "Connection", v, sizeof(v)), "close");
        assert_string_equal(head_value(r.head, "Content-Type", v, sizeof(v)),
                            "text/plain; charset=utf-8");
        free(r.body);
        assert_true(cli_wait_close(x->loop, c, 3000));
        cli_free(c);
    }
    /* Long target: 414, whether the line is complete or still arriving. */
    ob_buf_t b = {0};
    ob_buf_puts(&b, "GET /");
    for (int i = 0; i < 9000; i++)
        ob_buf_putc(&b, 'a');
    size_t partial = b.len;
    ob_buf_puts(&b, " HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(raw_status(x, b.data, b.len, &r), 414);
    free(r.body);
    assert_int_equal(raw_status(x, b.data, partial, &r), 414);
    free(r.body);
    /* Exactly 8 KiB is fine (404 from the handler). */
    ob_buf_reset(&b);
    ob_buf_puts(&b, "GET /");
    for (int i = 0; i < OB_HTTPD_MAX_TARGET - 1; i++)
        ob_buf_putc(&b, 'a');
    ob_buf_puts(&b, " HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(raw_status(x, b.data, b.len, &r), 404);
    free(r.body);
    /* Header section over max_header_bytes: 431, complete or still arriving. */
    ob_buf_reset(&b);
    ob_buf_puts(&b, "GET /echo HTTP/1.1\r\nHost: a\r\nX-Big: ");
    for (int i = 0; i < 5000; i++)
        ob_buf_putc(&b, 'b');
    partial = b.len;
    ob_buf_puts(&b, "\r\n\r\n");
    assert_int_equal(raw_status(x, b.data, b.len, &r), 431);
    free(r.body);
    assert_int_equal(raw_status(x, b.data, partial, &r), 431);
    free(r.body);
    ob_buf_free(&b);
    assert_int_equal(stats(x).protocol_errors, n + 4);
    assert_int_equal(stats(x).requests, 1);

    /* Tolerated: bare LF line ends, equal duplicate lengths, absolute-form, OPTIONS *. */
    const char *ok1 = "GET /echo HTTP/1.1\nHost: a\n\n";
    assert_int_equal(raw_status(x, ok1, strlen(ok1), &r), 200);
    free(r.body);
    const char *ok2 = "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                      "Content-Length: 3\r\n\r\nabc";
    assert_int_equal(raw_status(x, ok2, strlen(ok2), &r), 200);
    assert_string_equal(r.body, "POST /echo  3\nabc");
    free(r.body);
    const char *ok3 = "GET http://a:80/echo?x=1 HTTP/1.1\r\nHost: a:80\r\n\r\n";
    assert_int_equal(raw_status(x, ok3, strlen(ok3), &r), 200);
    assert_string_equal(r.body, "GET /echo x=1 0\n");
    free(r.body);
    const char *ok4 = "\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(raw_status(x, ok4, strlen(ok4), &r), 404);
    free(r.body);
    stop(x);
}

static void test_split_byte_by_byte(void **state)
{
    ctx_t *x = start(NULL);
    cli_t *c = cli_open(x->port);
    const char *reqs[] = {
        "POST /echo?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
        "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n",
    };
    const char *want[] = {"POST /echo x=1 11\nhello world", "POST /echo  5\nabcde"};
    for (int k = 0; k < 2; k++) {
        size_t n = strlen(reqs[k]);
        uint64_t before = stats(x).requests;
        for (size_t i = 0; i < n; i++) {
            cli_send(x->loop, c, reqs[k] + i, 1);
            ob_loop_run_once(x->loop, 0);
            ob_loop_run_once(x->loop, 0);
            if (i + 1 < n)
                assert_int_equal(stats(x).requests, before);
        }
        resp_t r;
        assert_true(cli_response(x->loop, c, &r, 0, 5000));
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, want[k]);
        free(r.body);
    }
    cli_free(c);
    stop(x);
}

static int all_results_done(void *arg)
{
    result_t *rs = arg;
    for (int i = 0; i < 100; i++)
        if (!rs[i].done)
            return 0;
    return 1;
}

static void test_delayed_response(void **state)
{
    ctx_t *x = start(NULL);
    ob_http_opts_t ho = {.max_connections = 100};
    ob_http_t *h = ob_http_new(x->loop, &ho, NULL, 0);
    char url[256];
    result_t r;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/delay?ms=200", x->port);
    fetch(h, x->loop, "GET", url, NULL, &r);
    assert_int_equal(r.err, OB_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "delayed ms=200");
    assert_true(r.elapsed_ms >= 190);
    free(r.body);
    /* 100 at once, all waiting on timers: done in about one delay, not a hundred. */
    static result_t rs[100];
    memset(rs, 0, sizeof(rs));
    ob_http_req_t req = {.method = "GET", .url = url, .timeout_ms = 10000};
    uint64_t t0 = ob_loop_update_time(x->loop);
    for (int i = 0; i < 100; i++)
        assert_non_null(ob_http_send(h, &req, on_done, &rs[i], NULL, 0));
    assert_true(ob_test_run_until(x->loop, all_results_done, rs, 15000));
    uint64_t took = ob_loop_update_time(x->loop) - t0;
    printf("100 concurrent 200 ms requests took %llu ms\n", (unsigned long long)took);
    assert_true(took < 5000);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(rs[i].status, 200);
        free(rs[i].body);
    }
    ob_http_free(h);
    stop(x);
}

static void test_reset_and_truncated(void **state)
{
    ctx_t *x = start(NULL);
    ob_http_t *h = ob_http_new(x->loop, NULL, NULL, 0);
    char url[256];
    result_t r;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/reset", x->port);
    fetch(h, x->loop, "GET", url, NULL, &r);
    assert_int_equal(r.err, OB_ERR_CONN);
    assert_int_equal(r.status, 0);
    free(r.body);
    assert_true(stats(x).resets >= 1);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/truncated", x->port);
    fetch(h, x->loop, "GET", url, NULL, &r);
    assert_int_not_equal(r.err, OB_OK);
    assert_int_equal(r.err, OB_ERR_CONN);
    assert_int_equal(r.status, 0);
    free(r.body);
    ob_http_free(h);

    /* What a raw client sees: a reset; 10 of 100 advertised bytes, then FIN. */
    cli_t *c = cli_open(x->port);
    cli_sends(x->loop, c, "GET /reset HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(cli_wait_close(x->loop, c, 3000));
    assert_int_equal(c->reset, 1);
    assert_int_equal(c->len, 0);
    cli_free(c);
    c = cli_open(x->port);
    cli_sends(x->loop, c, "GET /truncated HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(cli_wait_close(x->loop, c, 3000));
    assert_int_equal(c->eof, 1);
    char *e = strstr(c->buf, "\r\n\r\n");
    assert_non_null(e);
    assert_non_null(strstr(c->buf, "Content-Length: 100\r\n"));
    assert_non_null(strstr(c->buf, "Connection: close\r\n"));
    assert_string_equal(e + 4, "zzzzzzzzzz");
    cli_free(c);
    stop(x);
}

static void test_on_close_when_client_leaves(void **state)
{
    ctx_t *x = start(NULL);
    cli_t *a = cli_open(x->port), *b = cli_open(x->port), *d = cli_open(x->port);
    cli_sends(x->loop, a, "GET /never HTTP/1.1\r\nHost: a\r\n\r\n");
    cli_sends(x->loop, b, "GET /never HTTP/1.1\r\nHost: a\r\n\r\n");
    cli_sends(x->loop, d, "GET /delay?ms=60000 HTTP/1.1\r\nHost: a\r\n\r\n");
    RUN_UNTIL(x, stats(x).pending == 3, 3000);
    assert_int_equal(stats(x).pending, 3);
    cli_free(a); /* FIN */
    RUN_UNTIL(x, x->closes == 1, 3000);
    assert_int_equal(x->closes, 1);
    assert_int_equal(stats(x).pending, 2);
    cli_abort(b); /* RST */
    RUN_UNTIL(x, x->closes == 2, 3000);
    assert_int_equal(x->closes, 2);
    cli_free(d); /* the delayed answer's timer is cancelled in on_close */
    RUN_UNTIL(x, x->closes == 3, 3000);
    assert_int_equal(x->closes, 3);
    ob_httpd_stats_t st = stats(x);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.open_connections, 0);
    assert_int_equal(st.responses, 0);
    stop(x);
}

static void test_free_with_pending(void **state)
{
    ctx_t *x = start(NULL);
    cli_t *c[5];
    for (int i = 0; i < 5; i++)
        c[i] = cli_open(x->port);
    cli_sends(x->loop, c[0], "GET /never HTTP/1.1\r\nHost: a\r\n\r\n");
    cli_sends(x->loop, c[1], "GET /never HTTP/1.1\r\nHost: a\r\n\r\n");
    cli_sends(x->loop, c[2], "GET /delay?ms=60000 HTTP/1.1\r\nHost: a\r\n\r\n");
    cli_sends(x->loop, c[3], "GET /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    RUN_UNTIL(x, stats(x).pending == 3 && stats(x).open_connections == 5, 3000);
    ob_httpd_free(x->srv);
    x->srv = NULL;
    assert_int_equal(x->closes, 3);
    for (int i = 0; i < 5; i++) {
        assert_true(cli_wait_close(x->loop, c[i], 3000));
        cli_free(c[i]);
    }
    stop(x);
}

static void test_timeouts(void **state)
{
    ob_httpd_opts_t o = {.idle_timeout_ms = 150, .request_timeout_ms = 200};
    ctx_t *x = start(&o);
    resp_t r;
    /* Connected, silent: closed after the idle timeout. */
    cli_t *c = cli_open(x->port);
    uint64_t t0 = ob_loop_update_time(x->loop);
    assert_true(cli_wait_close(x->loop, c, 3000));
    uint64_t took = ob_loop_update_time(x->loop) - t0;
    assert_true(took >= 120 && took < 2000);
    assert_int_equal(c->len, 0);
    cli_free(c);
    /* Head never finished: 408, then closed. */
    c = cli_open(x->port);
    cli_sends(x->loop, c, "GET /echo HTTP/1.1\r\nHost: a\r\n");
    t0 = ob_loop_update_time(x->loop);
    assert_true(cli_response(x->loop, c, &r, 0, 3000));
    assert_int_equal(r.status, 408);
    assert_true(ob_loop_update_time(x->loop) - t0 >= 150);
    free(r.body);
    assert_true(cli_wait_close(x->loop, c, 3000));
    cli_free(c);
    /* Body never finished: 408 as well. */
    c = cli_open(x->port);
    cli_sends(x->loop, c, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    assert_true(cli_response(x->loop, c, &r, 0, 3000));
    assert_int_equal(r.status, 408);
    free(r.body);
    cli_free(c);
    /* A slow but steady request beats the idle timeout, not the request one. */
    c = cli_open(x->port);
    cli_sends(x->loop, c, "GET /echo HTTP/1.1\r\n");
    RUN_UNTIL(x, 0, 100);
    cli_sends(x->loop, c, "Host: a\r\n\r\n");
    assert_true(cli_response(x->loop, c, &r, 0, 3000));
    assert_int_equal(r.status, 200);
    free(r.body);
    /* Then idle on keep-alive: closed. */
    assert_true(cli_wait_close(x->loop, c, 3000));
    assert_int_equal(c->eof, 1);
    cli_free(c);
    assert_int_equal(stats(x).timeouts, 4);
    assert_int_equal(stats(x).open_connections, 0);
    stop(x);
}

static void test_max_connections(void **state)
{
    ob_httpd_opts_t o = {.max_connections = 3};
    ctx_t *x = start(&o);
    cli_t *c[4];
    for (int i = 0; i < 3; i++)
        c[i] = cli_open(x->port);
    RUN_UNTIL(x, stats(x).open_connections == 3, 3000);
    c[3] = cli_open(x->port);
    assert_true(cli_wait_close(x->loop, c[3], 3000));
    assert_int_equal(stats(x).rejected, 1);
    assert_int_equal(stats(x).accepted, 3);
    resp_t r;
    cli_sends(x->loop, c[1], "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(cli_response(x->loop, c[1], &r, 0, 3000));
    assert_int_equal(r.status, 200);
    free(r.body);
    /* Room again once one leaves. */
    cli_free(c[0]);
    RUN_UNTIL(x, stats(x).open_connections == 2, 3000);
    c[0] = cli_open(x->port);
    cli_sends(x->loop, c[0], "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(cli_response(x->loop, c[0], &r, 0, 3000));
    assert_int_equal(r.status, 200);
    free(r.body);
    for (int i = 0; i < 4; i++)
        cli_free(c[i]);
    stop(x);
}

/* reuse_idle: at the limit, the oldest connection with nothing being
 * answered makes room; a flood of idle connections never locks out a
 * request, and requests being answered are never thrown out. */
static void test_reuse_idle(void **state)
{
    ob_httpd_opts_t o = {.max_connections = 4, .reuse_idle = 1};
    ctx_t *x = start(&o);
    resp_t r;
    cli_t *held = cli_open(x->port);
    cli_sends(x->loop, held, "GET /never HTTP/1.1\r\nHost: a\r\n\r\n");
    RUN_UNTIL(x, stats(x).pending == 1, 3000);
    cli_t *flood[300];
    for (int i = 0; i < 300; i++) {
        flood[i] = cli_open(x->port);
        if (i == 150) /* half a request, still arriving: evictable too */
            cli_sends(x->loop, flood[i], "GET /echo HTTP/1.1\r\n");
        RUN_UNTIL(x, stats(x).accepted == (uint64_t)i + 2, 3000);
    }
    assert_int_equal(stats(x).open_connections, 4);
    assert_int_equal(stats(x).evicted, 297);
    assert_int_equal(stats(x).rejected, 0);
    /* The newest are kept, the oldest gone (closed by the server). */
    assert_true(cli_wait_close(x->loop, flood[0], 3000));
    /* A health check gets through, and the pending request is still there. */
    cli_t *probe = cli_open(x->port);
    cli_sends(x->loop, probe, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(cli_response(x->loop, probe, &r, 0, 3000));
    assert_int_equal(r.status, 200);
    free(r.body);
    assert_int_equal(stats(x).pending, 1);
    for (int i = 0; i < 300; i++)
        cli_free(flood[i]);
    cli_free(probe);
    RUN_UNTIL(x, stats(x).open_connections == 1, 3000);
    /* Every place answering a request: the newcomer is refused. */
    cli_t *more[3];
    for (int i = 0; i < 3; i++) {
        more[i] = cli_open(x->port);
        cli_sends(x->loop, more[i], "GET /never HTTP/1.1\r\nHost: a\r\n\r\n");
        RUN_UNTIL(x, stats(x).pending == (size_t)i + 2, 3000);
    }
    cli_t *late = cli_open(x->port);
    assert_true(cli_wait_close(x->loop, late, 3000));
    assert_int_equal(stats(x).rejected, 1);
    assert_int_equal(stats(x).pending, 4);
    cli_free(late);
    for (int i = 0; i < 3; i++)
        cli_free(more[i]);
    cli_free(held);
    stop(x);
}

/* max_per_peer: one peer's crowd only pushes out its own idle connections;
 * another peer keeps its own, and a peer whose connections are all busy is
 * refused a new one. */
static void test_max_per_peer(void **state)
{
    ob_httpd_opts_t o = {.max_connections = 100, .max_per_peer = 3};
    ctx_t *x = start(&o);
    resp_t r;
    cli_t *other = cli_open_from(x->port, "127.0.0.2");
    RUN_UNTIL(x, stats(x).open_connections == 1, 3000);
    cli_t *c[50];
    for (int i = 0; i < 50; i++) {
        c[i] = cli_open(x->port);
        RUN_UNTIL(x, stats(x).accepted == (uint64_t)i + 2, 3000);
    }
    assert_int_equal(stats(x).open_connections, 4);
    assert_int_equal(stats(x).evicted, 47);
    cli_sends(x->loop, other, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(cli_response(x->loop, other, &r, 0, 3000));
    assert_int_equal(r.status, 200);
    free(r.body);
    for (int i = 47; i < 50; i++)
        cli_sends(x->loop, c[i], "GET /never HTTP/1.1\r\nHost: a\r\n\r\n");
    RUN_UNTIL(x, stats(x).pending == 3, 3000);
    cli_t *late = cli_open(x->port);
    assert_true(cli_wait_close(x->loop, late, 3000));
    assert_int_equal(stats(x).rejected, 1);
    cli_free(late);
    for (int i = 0; i < 50; i++)
        cli_free(c[i]);
    cli_free(other);
    stop(x);
}

static void test_many_pending(void **state)
{
    ctx_t *x = start(NULL); /* raises RLIMIT_NOFILE */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    int n = 2000;
    if ((rlim_t)n * 2 + 200 > rl.rlim_cur)
        n = (int)((rl.rlim_cur - 200) / 2);
    printf("%d concurrent connections with a pending request (fd limit %llu)\n", n,
           (unsigned long long)rl.rlim_cur);
    cli_t **c = calloc((size_t)n, sizeof(*c));
    char req[128];
    for (int i = 0; i < n; i++) {
        c[i] = cli_open(x->port);
        snprintf(req, sizeof(req), "GET /hold?id=%d HTTP/1.1\r\nHost: a\r\n\r\n", i);
        cli_sends(x->loop, c[i], req);
        if (i % 100 == 0)
            ob_loop_run_once(x->loop, 0);
    }
    RUN_UNTIL(x, stats(x).pending == (size_t)n, 30000);
    assert_int_equal(stats(x).pending, n);
    assert_int_equal(stats(x).open_connections, n);
    /* Answer in reverse arrival order. */
    for (int i = x->nheld - 1; i >= 0; i--) {
        const ob_httpd_req_t *rq = ob_httpd_conn_request(x->held[i]);
        assert_non_null(rq);
        char body[64];
        snprintf(body, sizeof(body), "id=%ld", qint(rq->query, "id", -1));
        assert_int_equal(ob_httpd_respond(x->held[i], 200, NULL, body, strlen(body)), OB_OK);
    }
    resp_t r;
    for (int i = 0; i < n; i++) {
        assert_true(cli_response(x->loop, c[i], &r, 0, 10000));
        char want[64];
        snprintf(want, sizeof(want), "id=%d", i);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, want);
        free(r.body);
        cli_free(c[i]);
    }
    free(c);
    assert_int_equal(stats(x).responses, n);
    RUN_UNTIL(x, stats(x).open_connections == 0, 10000);
    assert_int_equal(stats(x).open_connections, 0);
    assert_int_equal(stats(x).pending, 0);
    stop(x);
}

/* A big response to a client that does not read: the requests pipelined
 * behind it wait unparsed, and all arrive in order once it reads. */
static void test_slow_reader(void **state)
{
    ctx_t *x = start(NULL);
    cli_t *c = cli_open_rcvbuf(x->port, 16384);
    ob_buf_t b = {0};
    ob_buf_puts(&b, "GET /big?n=8000000 HTTP/1.1\r\nHost: a\r\n\r\n");
    for (int i = 0; i < 100; i++)
        ob_buf_printf(&b, "GET /echo?i=%d HTTP/1.1\r\nHost: a\r\n\r\n", i);
    cli_send(x->loop, c, b.data, b.len);
    ob_buf_free(&b);
    RUN_UNTIL(x, 0, 200);
    assert_int_equal(stats(x).requests, 1);
    resp_t r;
    assert_true(cli_response(x->loop, c, &r, 0, 10000));
    assert_int_equal(r.body_len, 8000000);
    assert_true(r.body[0] == 'x' && r.body[7999999] == 'x');
    free(r.body);
    for (int i = 0; i < 100; i++) {
        char want[64];
        snprintf(want, sizeof(want), "GET /echo i=%d 0\n", i);
        assert_true(cli_response(x->loop, c, &r, 0, 5000));
        assert_string_equal(r.body, want);
        free(r.body);
    }
    assert_int_equal(stats(x).requests, 101);
    cli_free(c);
    stop(x);
}

/* A client that never reads: dropped once writing has made no progress for
 * the idle timeout, so it cannot hold a response in memory forever. */
static void test_write_stall(void **state)
{
    ob_httpd_opts_t o = {.idle_timeout_ms = 200};
    ctx_t *x = start(&o);
    cli_t *c = cli_open_rcvbuf(x->port, 16384);
    cli_sends(x->loop, c, "GET /big?n=8000000 HTTP/1.1\r\nHost: a\r\n\r\n");
    RUN_UNTIL(x, stats(x).requests == 1, 2000);
    RUN_UNTIL(x, stats(x).open_connections == 0, 5000);
    assert_int_equal(stats(x).open_connections, 0);
    assert_int_equal(stats(x).timeouts, 1);
    cli_free(c);
    stop(x);
}

static void test_http10_and_connection_close(void **state)
{
    ctx_t *x = start(NULL);
    resp_t r;
    char v[64];
    /* 1.0 without keep-alive: answered, then closed. */
    cli_t *c = cli_open(x->port);
    cli_sends(x->loop, c, "GET /echo HTTP/1.0\r\n\r\n");
    assert_true(cli_response(x->loop, c, &r, 0, 3000));
    assert_int_equal(r.status, 200);
    assert_string_equal(head_value(r.head, "Connection", v, sizeof(v)), "close");
    free(r.body);
    assert_true(cli_wait_close(x->loop, c, 3000));
    cli_free(c);
    /* 1.0 with keep-alive: two requests on one connection. */
    c = cli_open(x->port);
    for (int i = 0; i < 2; i++) {
        cli_sends(x->loop, c, "GET /echo HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert_true(cli_response(x->loop, c, &r, 0, 3000));
        assert_string_equal(head_value(r.head, "Connection", v, sizeof(v)), "keep-alive");
        free(r.body);
    }
    cli_free(c);
    /* 1.1 Connection: close: the request pipelined behind it is never handled. */
    uint64_t before = stats(x).requests;
    c = cli_open(x->port);
    cli_sends(x->loop, c,
              "GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
              "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(cli_response(x->loop, c, &r, 0, 3000));
    assert_string_equal(head_value(r.head, "Connection", v, sizeof(v)), "close");
    free(r.body);
    assert_true(cli_wait_close(x->loop, c, 3000));
    assert_int_equal(c->len, 0);
    cli_free(c);
    assert_int_equal(stats(x).requests, before + 1);
    /* HEAD over a raw socket: Content-Length but no body bytes. */
    c = cli_open(x->port);
    cli_sends(x->loop, c,
              "HEAD /echo HTTP/1.1\r\nHost: a\r\n\r\nGET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(cli_response(x->loop, c, &r, 1, 3000));
    assert_string_equal(head_value(r.head, "Content-Length", v, sizeof(v)), "14");
    free(r.body);
    assert_true(cli_response(x->loop, c, &r, 0, 3000));
    assert_string_equal(r.body, "GET /echo  0\n");
    free(r.body);
    cli_free(c);
    stop(x);
}

static void test_respond_misuse(void **state)
{
    ctx_t *x = start(NULL);
    resp_t r;
    const char *req = "GET /badrespond HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(raw_status(x, req, strlen(req), &r), 200);
    assert_string_equal(r.body, "fine");
    assert_null(strstr(r.head, "Injected"));
    free(r.body);
    assert_int_equal(x->bad_results[0], OB_ERR_INVALID_ARG);
    assert_int_equal(x->bad_results[1], OB_ERR_INVALID_ARG);
    assert_int_equal(x->bad_results[2], OB_OK);
    assert_int_equal(x->bad_results[3], OB_ERR_STATE);
    stop(x);
}

/* ---- fuzzing ---- */

static uint64_t rng_state;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static const char *const fuzz_templates[] = {
    "GET /echo?a=1 HTTP/1.1\r\nHost: a\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
    "PUT /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "HEAD /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
};

static void fuzz_input(ob_buf_t *b)
{
    static const char interesting[] = "\r\n :;,0123456789abcdefABCDEF\t\x00\x7f\xff-/?HTTP";
    size_t nt = sizeof(fuzz_templates) / sizeof(fuzz_templates[0]);
    ob_buf_reset(b);
    switch (rnd() % 5) {
    case 0: /* noise, plain or from protocol characters */
        for (size_t i = 0, n = rnd() % 3000; i < n; i++)
            ob_buf_putc(b,
                        rnd() % 2 ? (char)rnd() : interesting[rnd() % (sizeof(interesting) - 1)]);
        break;
    case 1: /* valid requests cut anywhere */
        for (int i = 0, n = 1 + (int)(rnd() % 3); i < n; i++)
            ob_buf_puts(b, fuzz_templates[rnd() % nt]);
        b->len = rnd() % (b->len + 1);
        break;
    case 2: /* valid requests with a few bytes replaced, inserted or deleted */
        for (int i = 0, n = 1 + (int)(rnd() % 3); i < n; i++)
            ob_buf_puts(b, fuzz_templates[rnd() % nt]);
        for (int k = 0, n = 1 + (int)(rnd() % 8); k < n && b->len > 1; k++) {
            size_t at = rnd() % b->len;
            char ch = rnd() % 2 ? (char)rnd() : interesting[rnd() % (sizeof(interesting) - 1)];
            switch (rnd() % 3) {
            case 0:
                b->data[at] = ch;
                break;
            case 1:
                ob_buf_putc(b, '\0');
                memmove(b->data + at + 1, b->data + at, b->len - at - 1);
                b->data[at] = ch;
                break;
            default:
                memmove(b->data + at, b->data + at + 1, b->len - at - 1);
                b->len--;
            }
        }
        break;
    case 3: { /* chunked bodies whose sizes may lie */
        ob_buf_puts(b, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (int i = 0, n = (int)(rnd() % 6); i < n; i++) {
            size_t sz = rnd() % 300, said = rnd() % 8 ? sz : rnd() % 400;
            ob_buf_printf(b, "%zx%s\r\n", said, rnd() % 4 ? "" : ";ext=\"v\"");
            for (size_t k = 0; k < sz; k++)
                ob_buf_putc(b, (char)('a' + k % 26));
            ob_buf_puts(b, rnd() % 10 ? "\r\n" : "\n");
        }
        ob_buf_puts(b, "0\r\n");
        if (rnd() % 2)
            ob_buf_puts(b, "X-Trailer: ok\r\n");
        ob_buf_puts(b, "\r\n");
        break;
    }
    default: /* well-formed pipelines */
        for (int i = 0, n = 1 + (int)(rnd() % 4); i < n; i++)
            ob_buf_puts(b, fuzz_templates[rnd() % (nt - 1)]);
    }
}

static void test_fuzz_streams(void **state)
{
    ob_httpd_opts_t o = {.max_header_bytes = 2048,
                         .max_body_bytes = 4096,
                         .idle_timeout_ms = 300,
                         .request_timeout_ms = 300};
    ctx_t *x = start(&o);
    const char *env = getenv("OB_HTTPD_FUZZ_SEED");
    rng_state = env ? strtoull(env, NULL, 0) : (uint64_t)ob_wall_ms();
    if (!rng_state)
        rng_state = 1;
    uint64_t seed = rng_state;
    env = getenv("OB_HTTPD_FUZZ_ITERS");
    int iters = env ? atoi(env) : 400;
    printf("fuzz: %d streams, seed %llu (OB_HTTPD_FUZZ_SEED to replay)\n", iters,
           (unsigned long long)seed);
    cli_t *pool[32] = {0};
    ob_buf_t b = {0};
    for (int it = 0; it < iters; it++) {
        fuzz_input(&b);
        cli_t *c = cli_open(x->port);
        size_t off = 0;
        while (off < b.len) {
            size_t piece = 1 + rnd() % (rnd() % 4 ? 64 : b.len);
            if (piece > b.len - off)
                piece = b.len - off;
            cli_send(x->loop, c, b.data + off, piece);
            off += piece;
            ob_loop_run_once(x->loop, 0);
        }
        ob_loop_run_once(x->loop, 0);
        unsigned how = rnd() % 4;
        if (how == 0) {
            cli_free(c);
        } else if (how == 1) {
            cli_abort(c);
        } else { /* keep it open for a while, half-closed or not */
            if (how == 2)
                shutdown(c->fd, SHUT_WR);
            int slot = (int)(rnd() % 32);
            if (pool[slot])
                cli_free(pool[slot]);
            pool[slot] = c;
        }
    }
    ob_buf_free(&b);
    RUN_UNTIL(x, 0, 400); /* the request and idle timeouts fire on whatever is left open */
    for (int i = 0; i < 32; i++)
        if (pool[i])
            cli_free(pool[i]);
    RUN_UNTIL(x, stats(x).open_connections == 0, 10000);
    ob_httpd_stats_t st = stats(x);
    printf("fuzz: %llu accepted, %llu requests, %llu protocol errors, %llu timeouts\n",
           (unsigned long long)st.accepted, (unsigned long long)st.requests,
           (unsigned long long)st.protocol_errors, (unsigned long long)st.timeouts);
    assert_int_equal(st.open_connections, 0);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.requests, st.responses);

    /* Still serving, to raw and curl clients alike. */
    resp_t r;
    const char *req = "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok";
    assert_int_equal(raw_status(x, req, strlen(req), &r), 200);
    assert_string_equal(r.body, "POST /echo  2\nok");
    free(r.body);
    ob_http_t *h = ob_http_new(x->loop, NULL, NULL, 0);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", x->port);
    result_t res;
    fetch(h, x->loop, "GET", url, NULL, &res);
    assert_int_equal(res.status, 200);
    free(res.body);
    ob_http_free(h);
    stop(x);
}

/* Out of descriptors at accept: the listener pauses instead of spinning, and
 * the waiting clients are served once descriptors are back. */
static void test_fd_exhaustion(void **state)
{
    /* Valgrind virtualises RLIMIT_NOFILE (its own descriptors sit above the
     * soft limit), so lowering and restoring it does not act as on a kernel. */
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "valgrind")) {
        printf("skipped under valgrind\n");
        skip();
    }
    ctx_t *x = start(NULL);
    cli_t *c[2];
    for (int i = 0; i < 2; i++) {
        c[i] = cli_open(x->port); /* connected in the kernel backlog, not accepted yet */
        cli_sends(x->loop, c[i], "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    }
    struct rlimit saved, low;
    getrlimit(RLIMIT_NOFILE, &saved);
    int probe = dup(0); /* the lowest free descriptor: all below it are in use */
    assert_true(probe >= 0);
    close(probe);
    low = saved;
    low.rlim_cur = (rlim_t)probe;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    uint64_t t0 = ob_loop_update_time(x->loop);
    int wakeups = 0;
    while (ob_loop_update_time(x->loop) - t0 < 50) {
        ob_loop_run_once(x->loop, 5);
        wakeups++;
    }
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    assert_int_equal(stats(x).accepted, 0);
    assert_true(wakeups < 40); /* paused, not spinning on a readable listener */
    resp_t r;
    for (int i = 0; i < 2; i++) {
        assert_true(cli_response(x->loop, c[i], &r, 0, 3000));
        assert_int_equal(r.status, 200);
        free(r.body);
        cli_free(c[i]);
    }
    assert_int_equal(stats(x).accepted, 2);
    stop(x);
}

static void test_bad_options(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    char err[256];
    ob_httpd_opts_t o = {.port = 70000};
    assert_null(ob_httpd_new(loop, &o, handler, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "70000"));
    o = (ob_httpd_opts_t){.bind_addr = "203.0.113.7"}; /* not ours: bind fails */
    assert_null(ob_httpd_new(loop, &o, handler, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "203.0.113.7"));
    /* Two servers cannot share a port. */
    ob_httpd_t *a = ob_httpd_new(loop, NULL, handler, NULL, err, sizeof(err));
    assert_non_null(a);
    o = (ob_httpd_opts_t){.port = ob_httpd_port(a)};
    assert_null(ob_httpd_new(loop, &o, handler, NULL, err, sizeof(err)));
    ob_httpd_free(a);
    ob_loop_free(loop);
}

/* ---- benchmark server mode ---- */

static void hello(ob_httpd_conn_t *c, const ob_httpd_req_t *req, void *arg)
{
    static ob_hdrs_t h;
    if (!h.n)
        ob_hdrs_add(&h, "Content-Type", "text/plain");
    ob_httpd_respond(c, 200, &h, "hello", 5);
}

static void on_signal(ob_signal_t *s, int signo, void *arg)
{
    ob_loop_stop(arg);
}

static int serve(const char *port_file)
{
    char err[256];
    ob_loop_t *loop = ob_loop_new(err, sizeof(err));
    int sigs[] = {SIGTERM, SIGINT};
    ob_signal_t *sig =
        loop ? ob_signal_new(loop, sigs, 2, on_signal, loop, err, sizeof(err)) : NULL;
    ob_httpd_t *s = sig ? ob_httpd_new(loop, NULL, hello, NULL, err, sizeof(err)) : NULL;
    if (!s) {
        fprintf(stderr, "serve: %s\n", err);
        return 1;
    }
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", ob_httpd_port(s)) < 0 || fclose(f) != 0 ||
        rename(tmp, port_file) != 0) {
        fprintf(stderr, "serve: cannot write %s\n", port_file);
        return 1;
    }
    ob_loop_run(loop);
    ob_httpd_stats_t st;
    ob_httpd_get_stats(s, &st);
    fprintf(stderr,
            "serve: %llu connections, %llu requests, %llu responses, %llu rejected, "
            "%llu protocol errors, %llu timeouts\n",
            (unsigned long long)st.accepted, (unsigned long long)st.requests,
            (unsigned long long)st.responses, (unsigned long long)st.rejected,
            (unsigned long long)st.protocol_errors, (unsigned long long)st.timeouts);
    ob_httpd_free(s);
    ob_signal_free(sig);
    ob_loop_free(loop);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--serve"))
        return serve(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_methods_via_curl),
        cmocka_unit_test(test_keepalive_reuse),
        cmocka_unit_test(test_pipelined_in_order),
        cmocka_unit_test(test_chunked_upload),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_error_statuses),
        cmocka_unit_test(test_split_byte_by_byte),
        cmocka_unit_test(test_delayed_response),
        cmocka_unit_test(test_reset_and_truncated),
        cmocka_unit_test(test_on_close_when_client_leaves),
        cmocka_unit_test(test_free_with_pending),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_reuse_idle),
        cmocka_unit_test(test_max_per_peer),
        cmocka_unit_test(test_many_pending),
        cmocka_unit_test(test_slow_reader),
        cmocka_unit_test(test_write_stall),
        cmocka_unit_test(test_http10_and_connection_close),
        cmocka_unit_test(test_respond_misuse),
        cmocka_unit_test(test_fuzz_streams),
        cmocka_unit_test(test_fd_exhaustion),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
