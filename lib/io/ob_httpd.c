/*
 * ob_httpd: an HTTP/1.1 server as a state machine per connection, driven by
 * the loop.
 *
 * A connection moves IDLE -> HEAD -> BODY -> PENDING -> WRITING -> IDLE (or
 * LINGER -> closed). Bytes read are appended to the connection's input buffer
 * and consumed by an incremental parser: the head line by line (each line is
 * parsed and copied out as soon as it is complete, and the search for the
 * next line end resumes where it stopped, so a head arriving a byte at a time
 * costs linear work), then the body by Content-Length or chunk by chunk. Only
 * one request per connection is ever in flight: the parser stops at PENDING
 * and resumes once the response is fully written, which gives pipelining its
 * order and bounds what a slow reader costs. While a request is pending or its
 * response is being written we keep reading (to notice a client that goes
 * away) but at most READ_AHEAD bytes, then stop watching for input.
 *
 * A response goes out in one gather write (sendmsg with two iovecs: head and
 * body straight from the caller's memory; sendmsg rather than writev only to
 * pass MSG_NOSIGNAL, as a library must not touch SIGPIPE). Only what the
 * kernel did not take is copied into the connection's output buffer and
 * finished on OB_IO_WRITE.
 *
 * Each connection has one timer used lazily: state changes only move a
 * deadline field, and the timer is re-armed only when the new deadline is
 * earlier than its due time; when it fires early it re-arms itself to the
 * current deadline. Keep-alive traffic therefore costs no heap operations per
 * request.
 *
 * Connections we close after an answer (errors, Connection: close, truncated
 * replies) are closed gracefully: shutdown(SHUT_WR), then input is read and
 * discarded until the client closes or LINGER_MS passes, so unread client
 * bytes do not turn our close into a reset that destroys the answer.
 *
 * Memory safety under callbacks: `busy` counts our own frames on the stack
 * for a connection; closing marks it DEAD and releases the descriptor at
 * once, but the struct is freed only when busy drops to zero.
 */
#include "ob_httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "ob_alloc.h"
#include "ob_list.h"
#include "ob_log.h"

#define COMP             "httpd"
#define ACCEPT_BATCH     256   /* accepts per wake-up, so one busy listener cannot starve */
#define ACCEPT_PAUSE_MS  100   /* back-off when out of descriptors */
#define READ_CHUNK       65536 /* one recv() at most */
#define READ_AHEAD       65536 /* unparsed input kept while a request is being answered */
#define MAX_METHOD       32    /* longest method token */
#define MAX_REQLINE      (OB_HTTPD_MAX_TARGET + MAX_METHOD + 16)
#define MAX_HEADERS      1000    /* header fields per request -> 431 */
#define MAX_CHUNK_LINE   4096    /* chunk-size line with extensions -> 400 */
#define MAX_LEADING_CRLF 8       /* empty lines tolerated before a request line */
#define LINGER_MS        2000    /* graceful close: how long to wait for the client's FIN */
#define LINGER_BYTES     1048576 /* graceful close: how much to discard before giving up */
#define KEEP_BUF         65536   /* buffers larger than this are released between requests */

enum conn_state { ST_IDLE, ST_HEAD, ST_BODY, ST_PENDING, ST_WRITING, ST_LINGER, ST_DEAD };
enum body_mode { BODY_NONE, BODY_LENGTH, BODY_CHUNKED };
enum chunk_state { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER };
enum deadline_kind { DL_NONE, DL_IDLE, DL_REQUEST, DL_WRITE, DL_LINGER };
enum parse_result { P_MORE, P_READY, P_ERROR };

struct ob_httpd_conn_s {
    ob_httpd_t *s;
    ob_list_t node; /* in s->conns */
    int fd;
    ob_io_t *io;
    ob_timer_t *timer;
    enum conn_state state;
    int busy;        /* our frames on the stack for this conn */
    int peer_eof;    /* the client closed its side */
    int close_after; /* close once the current response is written */
    uint64_t deadline;
    enum deadline_kind dl_kind;
    uint64_t since; /* loop time of its accept or its last answered request */
    char peer[64];
    char peer_addr[64]; /* the address alone, for max_per_peer */

    /* Input: bytes [in_pos, in.len) are not consumed yet. */
    ob_buf_t in;
    size_t in_pos;
    size_t scan; /* the search for the next '\n' resumes here */
    size_t linger_bytes;

    /* The request being parsed or awaiting its answer. */
    int got_reqline;
    int leading_crlf;
    size_t head_bytes; /* header section so far (or trailer section) */
    ob_buf_t meta;     /* "method\0target\0path\0query\0" */
    size_t m_target, m_path, m_query;
    ob_hdrs_t hdrs;
    ob_buf_t body;
    int version;
    int is_head;
    int keep_alive;
    enum body_mode bmode;
    uint64_t remaining; /* Content-Length bytes, or bytes of the current chunk */
    enum chunk_state ch;
    int err_status;
    const char *err_detail;
    ob_httpd_req_t req;
    void (*on_close)(ob_httpd_conn_t *c, void *arg);
    void *on_close_arg;

    /* Output: bytes [out_pos, out.len) are not written yet. */
    ob_buf_t out;
    size_t out_pos;
};

struct ob_httpd_s {
    ob_loop_t *loop;
    int lfd;
    ob_io_t *lio;
    ob_timer_t *accept_timer;
    int accept_paused;
    int port;
    ob_httpd_handler *handler;
    void *arg;
    ob_httpd_opts_t opts;
    char bind_addr[256];
    char server_name[128];
    ob_list_t conns; /* open connections, newest first */
    ob_httpd_stats_t st;
    int freeing;
    ob_buf_t head; /* scratch: response heads are built here */
    time_t date_sec;
    char date[40];
    char rbuf[READ_CHUNK];
};

static void conn_process(ob_httpd_conn_t *c);

/* ---- small helpers ---- */

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {200, "OK"},
    {100, "Continue"},
    {101, "Switching Protocols"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *ob_httpd_reason(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}

/* RFC 9110 tchar. */
static int is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return 1;
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int is_token(const char *p, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)p[i]))
            return 0;
    return 1;
}

/* Field values: visible characters, SP, HTAB and obs-text; no other controls. */
static int is_field_value(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return 0;
    }
    return 1;
}

/* Does the comma-separated list v contain token tok (case-insensitive)? */
static int list_has(const char *v, const char *tok)
{
    size_t tl = strlen(tok);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *e = v;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - v) == tl && strncasecmp(v, tok, tl) == 0)
            return 1;
        v = e;
    }
    return 0;
}

static const char *date_now(ob_httpd_t *s)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    if (now != s->date_sec || !s->date[0]) {
        struct tm tm;
        gmtime_r(&now, &tm);
        snprintf(s->date, sizeof(s->date), "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
                 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
        s->date_sec = now;
    }
    return s->date;
}

/* Free names and values but keep the array for the next request. */
static void hdrs_reset(ob_hdrs_t *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->v[i].name);
        free(h->v[i].value);
    }
    h->n = 0;
    if (h->cap > 64) {
        free(h->v);
        h->v = NULL;
        h->cap = 0;
    }
}

static void buf_recycle(ob_buf_t *b)
{
    if (b->cap > KEEP_BUF)
        ob_buf_free(b);
    else
        ob_buf_reset(b);
}

/* ---- deadlines ---- */

static void set_deadline(ob_httpd_conn_t *c, enum deadline_kind kind, long ms)
{
    c->dl_kind = kind;
    if (kind == DL_NONE) {
        c->deadline = 0; /* the timer, if armed, fires and finds nothing */
        return;
    }
    c->deadline = ob_loop_now(c->s->loop) + (uint64_t)(ms > 0 ? ms : 0);
    if (!ob_timer_active(c->timer) || ob_timer_due(c->timer) > c->deadline)
        ob_timer_start_at(c->timer, c->deadline);
}

/* ---- connection lifetime ---- */

static void req_reset(ob_httpd_conn_t *c)
{
    hdrs_reset(&c->hdrs);
    buf_recycle(&c->body);
    ob_buf_reset(&c->meta);
    c->got_reqline = 0;
    c->leading_crlf = 0;
    c->head_bytes = 0;
    c->version = 11;
    c->is_head = 0;
    c->keep_alive = 1;
    c->bmode = BODY_NONE;
    c->remaining = 0;
    c->ch = CH_SIZE;
    c->err_status = 0;
    c->err_detail = NULL;
    c->on_close = NULL;
    c->on_close_arg = NULL;
    memset(&c->req, 0, sizeof(c->req));
}

#define CONN_OF(n) OB_LIST_ENTRY((n), ob_httpd_conn_t, node)

static void conn_unlink(ob_httpd_conn_t *c)
{
    ob_list_remove(&c->node);
}

/* Close at once. notify: run the pending request's on_close callback. The
 * struct itself is freed by conn_release() once no frame uses it. */
static void conn_close(ob_httpd_conn_t *c, int notify)
{
    if (c->state == ST_DEAD)
        return;
    ob_httpd_t *s = c->s;
    int was_pending = c->state == ST_PENDING;
    c->state = ST_DEAD;
    if (was_pending)
        s->st.pending--;
    conn_unlink(c);
    s->st.open_connections--;
    ob_io_free(c->io);
    c->io = NULL;
    ob_timer_stop(c->timer);
    close(c->fd);
    c->fd = -1;
    if (was_pending && notify && c->on_close) {
        void (*cb)(ob_httpd_conn_t *, void *) = c->on_close;
        c->on_close = NULL;
        c->busy++;
        cb(c, c->on_close_arg);
        c->busy--;
    }
}

/* Drop the input's consumed bytes (nothing points into them). */
static void in_compact(ob_httpd_conn_t *c)
{
    if (c->in_pos == 0)
        return;
    size_t left = c->in.len - c->in_pos;
    if (left)
        memmove(c->in.data, c->in.data + c->in_pos, left);
    c->in.len = left;
    c->in.data[left] = '\0';
    c->scan = c->scan > c->in_pos ? c->scan - c->in_pos : 0;
    c->in_pos = 0;
}

/* What a connection owns, and the connection. */
static void conn_free(ob_httpd_conn_t *c)
{
    ob_hdrs_clear(&c->hdrs);
    ob_buf_free(&c->in);
    ob_buf_free(&c->body);
    ob_buf_free(&c->meta);
    ob_buf_free(&c->out);
    ob_timer_free(c->timer);
    free(c);
}

static void conn_release(ob_httpd_conn_t *c)
{
    if (c->state != ST_DEAD || c->busy > 0)
        return;
    conn_free(c);
}

static void conn_update_io(ob_httpd_conn_t *c)
{
    if (c->state == ST_DEAD)
        return;
    unsigned ev = 0;
    size_t unparsed = c->in.len - c->in_pos;
    switch (c->state) {
    case ST_IDLE:
    case ST_HEAD:
    case ST_BODY:
    case ST_LINGER:
        if (!c->peer_eof)
            ev |= OB_IO_READ;
        break;
    case ST_PENDING:
    case ST_WRITING:
        if (!c->peer_eof && unparsed < READ_AHEAD)
            ev |= OB_IO_READ;
        break;
    case ST_DEAD:
        return;
    }
    if (c->out_pos < c->out.len)
        ev |= OB_IO_WRITE;
    if (ev != ob_io_events(c->io) && ob_io_set(c->io, ev) != OB_OK)
        conn_close(c, 1);
}

/* ---- output ---- */

/* Write head+body now, keeping what the kernel does not take. Returns 1 when
 * everything is written, 0 when some is queued, -1 when the connection is
 * broken (or memory ran out). */
static int write_out(ob_httpd_conn_t *c, const char *h, size_t hl, const char *b, size_t bl)
{
    if (c->out_pos == c->out.len) {
        struct iovec iov[2] = {{(void *)h, hl}, {(void *)b, bl}};
        struct msghdr msg;
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = iov;
        msg.msg_iovlen = bl ? 2 : 1;
        ssize_t n;
        do
            n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -1;
            n = 0;
        }
        size_t w = (size_t)n;
        if (w == hl + bl)
            return 1;
        ob_buf_reset(&c->out);
        c->out_pos = 0;
        if (w < hl) {
            if (ob_buf_append(&c->out, h + w, hl - w) != OB_OK ||
                ob_buf_append(&c->out, b, bl) != OB_OK)
                return -1;
        } else if (ob_buf_append(&c->out, b + (w - hl), bl - (w - hl)) != OB_OK) {
            return -1;
        }
        return 0;
    }
    if (ob_buf_append(&c->out, h, hl) != OB_OK || ob_buf_append(&c->out, b, bl) != OB_OK)
        return -1;
    return 0; /* flushed by the caller or on OB_IO_WRITE */
}

static void start_linger(ob_httpd_conn_t *c)
{
    c->state = ST_LINGER;
    buf_recycle(&c->in);
    c->in_pos = c->scan = 0;
    if (c->peer_eof || shutdown(c->fd, SHUT_WR) < 0) {
        conn_close(c, 0);
        return;
    }
    set_deadline(c, DL_LINGER, LINGER_MS);
}

/* The current response is fully written. */
static void after_write(ob_httpd_conn_t *c)
{
    if (c->out.cap > KEEP_BUF)
        ob_buf_free(&c->out);
    else
        ob_buf_reset(&c->out);
    c->out_pos = 0;
    if (c->close_after || c->s->freeing) {
        start_linger(c);
        return;
    }
    c->state = ST_IDLE;
    c->since = ob_loop_update_time(c->s->loop);
    set_deadline(c, DL_IDLE, c->s->opts.idle_timeout_ms);
}

/* Continue writing queued output. 1: all written, 0: blocked, -1: broken. */
static int flush(ob_httpd_conn_t *c)
{
    while (c->out_pos < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_pos, c->out.len - c->out_pos, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_pos += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->state == ST_WRITING) /* progress or not, the stall clock restarts */
                set_deadline(c, DL_WRITE, c->s->opts.idle_timeout_ms);
            return 0;
        }
        return -1;
    }
    if (c->state == ST_WRITING) {
        after_write(c);
    } else { /* an interim 100 Continue went out */
        ob_buf_reset(&c->out);
        c->out_pos = 0;
    }
    return 1;
}

/* Queue a response whose head is in s->head; body_send bytes of body go out.
 * The request is finished (and its memory recycled) once this returns. */
static void send_response(ob_httpd_conn_t *c, const char *body, size_t body_send)
{
    ob_httpd_t *s = c->s;
    int r = write_out(c, s->head.data, s->head.len, body, body_send);
    req_reset(c);
    if (r < 0) {
        conn_close(c, 0);
        return;
    }
    c->state = ST_WRITING;
    if (r == 1)
        after_write(c);
    else
        set_deadline(c, DL_WRITE, s->opts.idle_timeout_ms);
}

static ob_err_t head_add(ob_buf_t *b, const char *name, const char *value)
{
    if (ob_buf_puts(b, name) != OB_OK || ob_buf_append(b, ": ", 2) != OB_OK ||
        ob_buf_puts(b, value) != OB_OK || ob_buf_append(b, "\r\n", 2) != OB_OK)
        return OB_ERR_NOMEM;
    return OB_OK;
}

/* Build the response head into s->head. */
static ob_err_t build_head(ob_httpd_conn_t *c, int status, const ob_hdrs_t *headers, size_t len,
                           int closing)
{
    ob_httpd_t *s = c->s;
    ob_buf_t *b = &s->head;
    char line[96];
    int has_date = 0, has_server = 0;
    ob_buf_reset(b);
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, ob_httpd_reason(status));
    if (ob_buf_append(b, line, (size_t)n) != OB_OK)
        return OB_ERR_NOMEM;
    for (size_t i = 0; headers && i < headers->n; i++) {
        const char *name = headers->v[i].name;
        if (!strcasecmp(name, "Content-Length") || !strcasecmp(name, "Transfer-Encoding") ||
            !strcasecmp(name, "Connection"))
            continue;
        if (!strcasecmp(name, "Date"))
            has_date = 1;
        else if (!strcasecmp(name, "Server"))
            has_server = 1;
        if (head_add(b, name, headers->v[i].value) != OB_OK)
            return OB_ERR_NOMEM;
    }
    if (!has_server && s->server_name[0] && head_add(b, "Server", s->server_name) != OB_OK)
        return OB_ERR_NOMEM;
    if (!has_date && head_add(b, "Date", date_now(s)) != OB_OK)
        return OB_ERR_NOMEM;
    if (status != 204 && status != 304) {
        n = snprintf(line, sizeof(line), "Content-Length: %zu\r\n", len);
        if (ob_buf_append(b, line, (size_t)n) != OB_OK)
            return OB_ERR_NOMEM;
    }
    const char *conn = closing ? "Connection: close\r\n\r\n" : "Connection: keep-alive\r\n\r\n";
    return ob_buf_puts(b, conn);
}

static ob_err_t check_headers(const ob_hdrs_t *h)
{
    for (size_t i = 0; h && i < h->n; i++) {
        const char *name = h->v[i].name, *value = h->v[i].value;
        if (!name || !value || !is_token(name, strlen(name)) || strpbrk(value, "\r\n") != NULL)
            return OB_ERR_INVALID_ARG;
    }
    return OB_OK;
}

/* The server's own error reply; the connection closes after it. */
static void send_error(ob_httpd_conn_t *c, int counts_as_timeout)
{
    ob_httpd_t *s = c->s;
    int status = c->err_status ? c->err_status : 400;
    char body[256];
    int n = snprintf(body, sizeof(body), "%d %s: %s\n", status, ob_httpd_reason(status),
                     c->err_detail ? c->err_detail : "malformed request");
    size_t bl = n < 0 ? 0 : (size_t)n >= sizeof(body) ? sizeof(body) - 1 : (size_t)n;
    if (counts_as_timeout)
        s->st.timeouts++;
    else
        s->st.protocol_errors++;
    OB_DEBUG(COMP, "%s: %d %s", c->peer, status, c->err_detail ? c->err_detail : "");
    ob_hdrs_t h = {0};
    ob_hdr_t ct = {(char *)"Content-Type", (char *)"text/plain; charset=utf-8"};
    h.v = &ct;
    h.n = h.cap = 1;
    c->close_after = 1;
    if (build_head(c, status, &h, bl, 1) != OB_OK) {
        conn_close(c, 0);
        return;
    }
    send_response(c, body, c->is_head ? 0 : bl);
}

/* ---- request parsing ---- */

static enum parse_result fail(ob_httpd_conn_t *c, int status, const char *detail)
{
    c->err_status = status;
    c->err_detail = detail;
    return P_ERROR;
}

/* Take the next complete line (without its LF or CRLF) from the input. */
static int next_line(ob_httpd_conn_t *c, char **line, size_t *len)
{
    if (c->scan < c->in_pos)
        c->scan = c->in_pos;
    if (c->scan >= c->in.len)
        return 0;
    char *base = c->in.data;
    char *nl = memchr(base + c->scan, '\n', c->in.len - c->scan);
    if (!nl) {
        c->scan = c->in.len;
        return 0;
    }
    size_t start = c->in_pos, l = (size_t)(nl - (base + start));
    c->in_pos = c->scan = (size_t)(nl - base) + 1;
    if (l > 0 && base[start + l - 1] == '\r')
        l--;
    *line = base + start;
    *len = l;
    return 1;
}

static int is_version_digits(const char *p, size_t n)
{
    if (n == 0 || p[0] < '0' || p[0] > '9')
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((p[i] < '0' || p[i] > '9') && p[i] != '.')
            return 0;
    return 1;
}

static enum parse_result parse_request_line(ob_httpd_conn_t *c, char *line, size_t len)
{
    char *sp1 = memchr(line, ' ', len);
    if (!sp1)
        return fail(c, 400, "malformed request line");
    size_t ml = (size_t)(sp1 - line);
    if (ml > MAX_METHOD || !is_token(line, ml))
        return fail(c, 400, "malformed method");
    char *target = sp1 + 1;
    char *end = line + len;
    char *sp2 = memchr(target, ' ', (size_t)(end - target));
    if (!sp2 || sp2 == target)
        return fail(c, 400, "malformed request line");
    size_t tl = (size_t)(sp2 - target);
    char *ver = sp2 + 1;
    size_t vl = (size_t)(end - ver);
    if (memchr(ver, ' ', vl))
        return fail(c, 400, "malformed request line");
    if (tl > OB_HTTPD_MAX_TARGET)
        return fail(c, 414, "request-target too long");
    for (size_t i = 0; i < tl; i++) {
        unsigned char ch = (unsigned char)target[i];
        if (ch <= 0x20 || ch == 0x7f)
            return fail(c, 400, "invalid character in request-target");
    }
    if (vl < 6 || memcmp(ver, "HTTP/", 5) != 0 || !is_version_digits(ver + 5, vl - 5))
        return fail(c, 400, "malformed HTTP version");
    if (vl == 8 && ver[5] == '1' && ver[6] == '.' && ver[7] >= '0' && ver[7] <= '9')
        c->version = ver[7] == '0' ? 10 : 11;
    else
        return fail(c, 505, "only HTTP/1.x is supported");

    /* Split the target into path and query. */
    const char *path = target, *pend = target + tl;
    if (target[0] == '/') {
        /* origin-form */
    } else if (tl == 1 && target[0] == '*') {
        if (ml != 7 || memcmp(line, "OPTIONS", 7) != 0)
            return fail(c, 400, "asterisk-form is for OPTIONS only");
    } else {
        /* absolute-form: scheme "://" authority [path] */
        const char *sep = NULL;
        for (const char *p = target; p + 2 < pend; p++) {
            if (p[0] == ':' && p[1] == '/' && p[2] == '/') {
                sep = p;
                break;
            }
        }
        if (!sep || sep == target)
            return fail(c, 400, "malformed request-target");
        for (const char *p = target; p < sep; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (p > target &&
                   ((*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.'))))
                return fail(c, 400, "malformed request-target");
        path = sep + 3;
        while (path < pend && *path != '/' && *path != '?')
            path++;
    }
    const char *q = memchr(path, '?', (size_t)(pend - path));
    const char *path_end = q ? q : pend;

    ob_buf_t *m = &c->meta;
    ob_buf_reset(m);
    int ok = ob_buf_append(m, line, ml) == OB_OK && ob_buf_putc(m, '\0') == OB_OK;
    c->m_target = m->len;
    ok = ok && ob_buf_append(m, target, tl) == OB_OK && ob_buf_putc(m, '\0') == OB_OK;
    c->m_path = m->len;
    if (path == path_end) /* absolute-form without a path */
        ok = ok && ob_buf_putc(m, '/') == OB_OK;
    ok = ok && ob_buf_append(m, path, (size_t)(path_end - path)) == OB_OK &&
         ob_buf_putc(m, '\0') == OB_OK;
    c->m_query = m->len;
    if (q)
        ok = ok && ob_buf_append(m, q + 1, (size_t)(pend - q - 1)) == OB_OK;
    ok = ok && ob_buf_putc(m, '\0') == OB_OK;
    if (!ok)
        return fail(c, 500, "out of memory");
    c->is_head = ml == 4 && memcmp(line, "HEAD", 4) == 0;
    c->got_reqline = 1;
    return P_MORE;
}

/* Framing fields have no business in a trailer section. */
static int trailer_forbidden(const char *name)
{
    return !strcasecmp(name, "Content-Length") || !strcasecmp(name, "Transfer-Encoding") ||
           !strcasecmp(name, "Host") || !strcasecmp(name, "Connection") ||
           !strcasecmp(name, "Expect") || !strcasecmp(name, "Trailer") || !strcasecmp(name, "TE");
}

static enum parse_result parse_field_line(ob_httpd_conn_t *c, char *line, size_t len, int trailer)
{
    if (line[0] == ' ' || line[0] == '\t')
        return fail(c, 400, "obsolete line folding");
    char *colon = memchr(line, ':', len);
    if (!colon)
        return fail(c, 400, "header line without a colon");
    size_t nl = (size_t)(colon - line);
    if (!is_token(line, nl))
        return fail(c, 400, "malformed header name");
    char *v = colon + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (!is_field_value(v, (size_t)(end - v)))
        return fail(c, 400, "invalid character in header value");
    if (c->hdrs.n >= MAX_HEADERS)
        return fail(c, 431, "too many header fields");
    /* The line is consumed: terminate name and value in place. */
    *colon = '\0';
    *end = '\0';
    if (trailer && trailer_forbidden(line))
        return P_MORE;
    if (ob_hdrs_add(&c->hdrs, line, v) != OB_OK)
        return fail(c, 500, "out of memory");
    return P_MORE;
}

/* Content-Length: a list of equal decimal values. 0 ok, -1 malformed. */
static int parse_content_length(const char *v, uint64_t *out, int *have)
{
    while (*v) {
        while (*v == ' ' || *v == '\t')
            v++;
        if (*v < '0' || *v > '9')
            return -1;
        uint64_t n = 0;
        while (*v >= '0' && *v <= '9') {
            uint64_t d = (uint64_t)(*v - '0');
            n = n > (UINT64_MAX - d) / 10 ? UINT64_MAX : n * 10 + d;
            v++;
        }
        while (*v == ' ' || *v == '\t')
            v++;
        if (*v == ',')
            v++;
        else if (*v)
            return -1;
        if (*have && *out != n)
            return -1;
        *out = n;
        *have = 1;
    }
    return 0;
}

static enum parse_result headers_done(ob_httpd_conn_t *c)
{
    ob_httpd_t *s = c->s;
    int hosts = 0, has_close = 0, has_ka = 0, have_cl = 0, has_te = 0, chunked_last = 0;
    int unknown_coding = 0, chunked_not_last = 0;
    uint64_t cl = 0;
    const char *expect = NULL;
    for (size_t i = 0; i < c->hdrs.n; i++) {
        const char *name = c->hdrs.v[i].name, *value = c->hdrs.v[i].value;
        if (!strcasecmp(name, "Host")) {
            hosts++;
        } else if (!strcasecmp(name, "Connection")) {
            has_close |= list_has(value, "close");
            has_ka |= list_has(value, "keep-alive");
        } else if (!strcasecmp(name, "Content-Length")) {
            if (parse_content_length(value, &cl, &have_cl) < 0)
                return fail(c, 400, "malformed or conflicting Content-Length");
        } else if (!strcasecmp(name, "Transfer-Encoding")) {
            /* Codings across all Transfer-Encoding lines, in order. */
            const char *p = value;
            while (*p) {
                while (*p == ' ' || *p == '\t' || *p == ',')
                    p++;
                if (!*p)
                    break;
                const char *e = p;
                while (*e && *e != ',' && *e != ';')
                    e++;
                const char *t = e;
                while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
                    t--;
                if (chunked_last)
                    chunked_not_last = 1; /* another coding after chunked */
                chunked_last = (size_t)(t - p) == 7 && !strncasecmp(p, "chunked", 7);
                if (!chunked_last)
                    unknown_coding = 1;
                while (*e && *e != ',')
                    e++; /* skip coding parameters */
                p = e;
                has_te = 1;
            }
            if (!has_te)
                return fail(c, 400, "empty Transfer-Encoding");
        } else if (!strcasecmp(name, "Expect")) {
            expect = value;
        }
    }
    if (c->version == 11 && hosts != 1)
        return fail(c, 400, hosts ? "more than one Host header" : "missing Host header");
    if (c->version == 10 && hosts > 1)
        return fail(c, 400, "more than one Host header");
    c->keep_alive = c->version == 11 ? !has_close : (has_ka && !has_close);
    if (has_te) {
        if (have_cl)
            return fail(c, 400, "both Content-Length and Transfer-Encoding");
        if (unknown_coding)
            return fail(c, 501, "unsupported transfer coding");
        if (!chunked_last || chunked_not_last)
            return fail(c, 400, "chunked must be the last transfer coding");
        if (c->version == 10)
            c->keep_alive = 0; /* RFC 9112 6.1: framing from a 1.0 client is suspect */
        c->bmode = BODY_CHUNKED;
        c->ch = CH_SIZE;
    } else if (have_cl && cl > 0) {
        if (cl > s->opts.max_body_bytes)
            return fail(c, 413, "request body too large");
        c->bmode = BODY_LENGTH;
        c->remaining = cl;
    } else {
        c->bmode = BODY_NONE;
    }
    int send_continue = 0;
    if (expect) {
        if (strcasecmp(expect, "100-continue") != 0)
            return fail(c, 417, "unsupported expectation");
        send_continue = c->version == 11 && c->bmode != BODY_NONE && c->in_pos == c->in.len;
    }
    c->head_bytes = 0;
    if (c->bmode == BODY_NONE)
        return P_READY;
    c->state = ST_BODY;
    if (send_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (write_out(c, cont, sizeof(cont) - 1, NULL, 0) < 0)
            conn_close(c, 0);
    }
    return P_MORE;
}

static enum parse_result parse_head(ob_httpd_conn_t *c)
{
    ob_httpd_t *s = c->s;
    char *line;
    size_t len;
    while (c->state == ST_HEAD) {
        size_t before = c->in_pos;
        if (!next_line(c, &line, &len)) {
            size_t partial = c->in.len - c->in_pos;
            if (!c->got_reqline && partial > MAX_REQLINE) {
                if (memchr(c->in.data + c->in_pos, ' ', partial))
                    return fail(c, 414, "request-target too long");
                return fail(c, 400, "malformed request line");
            }
            if (c->got_reqline && c->head_bytes + partial > s->opts.max_header_bytes)
                return fail(c, 431, "header section too large");
            return P_MORE;
        }
        if (!c->got_reqline) {
            if (len == 0) {
                if (++c->leading_crlf > MAX_LEADING_CRLF)
                    return fail(c, 400, "empty lines instead of a request");
                continue;
            }
            if (len > MAX_REQLINE)
                return memchr(line, ' ', len) ? fail(c, 414, "request-target too long")
                                              : fail(c, 400, "malformed request line");
            enum parse_result r = parse_request_line(c, line, len);
            if (r != P_MORE)
                return r;
            continue;
        }
        c->head_bytes += c->in_pos - before;
        if (c->head_bytes > s->opts.max_header_bytes)
            return fail(c, 431, "header section too large");
        if (len == 0)
            return headers_done(c);
        enum parse_result r = parse_field_line(c, line, len, 0);
        if (r != P_MORE)
            return r;
    }
    return P_MORE;
}

static enum parse_result body_take(ob_httpd_conn_t *c, size_t avail)
{
    size_t take = c->remaining < avail ? (size_t)c->remaining : avail;
    if (take && ob_buf_append(&c->body, c->in.data + c->in_pos, take) != OB_OK)
        return fail(c, 500, "out of memory");
    c->in_pos += take;
    c->remaining -= take;
    return P_MORE;
}

static enum parse_result parse_chunk_size(ob_httpd_conn_t *c, const char *line, size_t len)
{
    size_t i = 0;
    uint64_t n = 0;
    uint64_t room = c->s->opts.max_body_bytes - c->body.len;
    int too_big = 0;
    while (i < len) {
        char ch = line[i];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (d < 0)
            break;
        if (n > (UINT64_MAX >> 4))
            too_big = 1;
        else
            n = n * 16 + (uint64_t)d;
        i++;
    }
    if (i == 0)
        return fail(c, 400, "bad chunk size");
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i < len && line[i] != ';')
        return fail(c, 400, "bad chunk size");
    if (!is_field_value(line + i, len - i))
        return fail(c, 400, "bad chunk extension");
    if (too_big || n > room)
        return fail(c, 413, "request body too large");
    if (n == 0) {
        c->ch = CH_TRAILER;
        c->head_bytes = 0;
    } else {
        c->remaining = n;
        c->ch = CH_DATA;
    }
    return P_MORE;
}

static enum parse_result parse_body(ob_httpd_conn_t *c)
{
    ob_httpd_t *s = c->s;
    char *line;
    size_t len;
    while (c->state == ST_BODY) {
        size_t avail = c->in.len - c->in_pos;
        if (c->bmode == BODY_LENGTH) {
            if (body_take(c, avail) != P_MORE)
                return P_ERROR;
            return c->remaining == 0 ? P_READY : P_MORE;
        }
        size_t before = c->in_pos;
        enum parse_result r;
        switch (c->ch) {
        case CH_SIZE:
            if (!next_line(c, &line, &len))
                return avail > MAX_CHUNK_LINE ? fail(c, 400, "bad chunk size") : P_MORE;
            r = parse_chunk_size(c, line, len);
            if (r != P_MORE)
                return r;
            break;
        case CH_DATA:
            if (avail == 0)
                return P_MORE;
            if (body_take(c, avail) != P_MORE)
                return P_ERROR;
            if (c->remaining == 0)
                c->ch = CH_DATA_END;
            break;
        case CH_DATA_END:
            if (!next_line(c, &line, &len))
                return avail > 2 ? fail(c, 400, "bad chunk: data longer than its size") : P_MORE;
            if (len != 0)
                return fail(c, 400, "bad chunk: data longer than its size");
            c->ch = CH_SIZE;
            break;
        case CH_TRAILER:
            if (!next_line(c, &line, &len)) {
                if (c->head_bytes + avail > s->opts.max_header_bytes)
                    return fail(c, 431, "trailer section too large");
                return P_MORE;
            }
            c->head_bytes += c->in_pos - before;
            if (c->head_bytes > s->opts.max_header_bytes)
                return fail(c, 431, "trailer section too large");
            if (len == 0)
                return P_READY;
            r = parse_field_line(c, line, len, 1);
            if (r != P_MORE)
                return r;
            break;
        }
    }
    return P_MORE;
}

static enum parse_result parse(ob_httpd_conn_t *c)
{
    if (c->state == ST_HEAD) {
        enum parse_result r = parse_head(c);
        if (r != P_MORE || c->state != ST_BODY)
            return r;
    }
    if (c->state == ST_BODY)
        return parse_body(c);
    return P_MORE;
}

/* ---- the per-connection driver ---- */

/* The parsed request as the handler sees it (pointers into the connection). */
static ob_httpd_req_t *fill_request(ob_httpd_conn_t *c)
{
    ob_httpd_req_t *r = &c->req;
    r->method = c->meta.data;
    r->target = c->meta.data + c->m_target;
    r->path = c->meta.data + c->m_path;
    r->query = c->meta.data + c->m_query;
    r->headers = &c->hdrs;
    r->body = c->body.data ? c->body.data : "";
    r->body_len = c->body.len;
    r->peer = c->peer;
    r->version = c->version;
    r->keep_alive = c->keep_alive;
    return r;
}

static void dispatch(ob_httpd_conn_t *c)
{
    ob_httpd_t *s = c->s;
    ob_httpd_req_t *r = fill_request(c);
    if (!c->keep_alive)
        c->close_after = 1;
    c->state = ST_PENDING;
    set_deadline(c, DL_NONE, 0);
    s->st.pending++;
    s->st.requests++;
    s->handler(c, r, s->arg);
}

/* Parse and dispatch what is buffered, one request at a time. */
static void conn_process(ob_httpd_conn_t *c)
{
    ob_httpd_t *s = c->s;
    c->busy++;
    while (!s->freeing) {
        if (c->state == ST_IDLE) {
            if (c->in_pos == c->in.len) {
                /* All consumed: an idle connection keeps no big buffer. */
                buf_recycle(&c->in);
                c->in_pos = c->scan = 0;
                break;
            }
            c->state = ST_HEAD;
            set_deadline(c, DL_REQUEST, s->opts.request_timeout_ms);
        }
        if (c->state != ST_HEAD && c->state != ST_BODY)
            break;
        enum parse_result r = parse(c);
        if (c->state == ST_DEAD)
            break;
        if (r == P_MORE)
            break;
        if (r == P_ERROR)
            send_error(c, 0);
        else
            dispatch(c);
    }
    if (c->peer_eof) {
        /* Nothing more will arrive: whatever is not complete never will be. */
        switch (c->state) {
        case ST_IDLE:
        case ST_HEAD:
        case ST_BODY:
        case ST_LINGER:
            conn_close(c, 0);
            break;
        case ST_PENDING:
            conn_close(c, 1);
            break;
        case ST_WRITING:
        case ST_DEAD:
            break;
        }
    }
    conn_update_io(c);
    c->busy--;
    conn_release(c);
}

/* Read what is available. Returns -1 when the connection is broken. */
static int conn_read(ob_httpd_conn_t *c)
{
    ob_httpd_t *s = c->s;
    for (int i = 0; i < 4 && !c->peer_eof; i++) {
        size_t room = READ_CHUNK;
        if (c->state == ST_PENDING || c->state == ST_WRITING) {
            size_t unparsed = c->in.len - c->in_pos;
            if (unparsed >= READ_AHEAD)
                break;
            if (room > READ_AHEAD - unparsed)
                room = READ_AHEAD - unparsed;
        }
        ssize_t n = recv(c->fd, s->rbuf, room, 0);
        if (n == 0) {
            c->peer_eof = 1;
            break;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        if (c->state == ST_LINGER) {
            c->linger_bytes += (size_t)n;
            if (c->linger_bytes > LINGER_BYTES)
                return -1;
            continue;
        }
        in_compact(c);
        if (ob_buf_append(&c->in, s->rbuf, (size_t)n) != OB_OK)
            return -1;
        if ((size_t)n < room)
            break;
    }
    return 0;
}

static void conn_io_cb(ob_io_t *io, int fd, unsigned events, void *arg)
{
    ob_httpd_conn_t *c = arg;
    if (c->state == ST_DEAD)
        return;
    c->busy++;
    if (events & OB_IO_ERROR) {
        conn_close(c, 1);
    } else {
        if ((events & OB_IO_WRITE) && flush(c) < 0)
            conn_close(c, 1);
        if ((events & OB_IO_READ) && c->state != ST_DEAD && conn_read(c) < 0)
            conn_close(c, 1);
        if (c->state != ST_DEAD)
            conn_process(c);
    }
    c->busy--;
    conn_release(c);
}

static void conn_timer_cb(ob_timer_t *t, void *arg)
{
    ob_httpd_conn_t *c = arg;
    if (c->state == ST_DEAD || c->dl_kind == DL_NONE)
        return;
    if (ob_loop_now(c->s->loop) < c->deadline) {
        ob_timer_start_at(t, c->deadline);
        return;
    }
    c->busy++;
    switch (c->dl_kind) {
    case DL_REQUEST:
        if (c->state == ST_HEAD || c->state == ST_BODY) {
            c->err_status = 408;
            c->err_detail = "request not received in time";
            send_error(c, 1);
        }
        break;
    case DL_IDLE:
    case DL_WRITE:
        c->s->st.timeouts++;
        conn_close(c, 1);
        break;
    case DL_LINGER:
    case DL_NONE:
        conn_close(c, 1);
        break;
    }
    conn_update_io(c);
    c->busy--;
    conn_release(c);
}

/* The peer's address alone ("127.0.0.1", "::1"). */
static void peer_address(const struct sockaddr_storage *ss, char *out, size_t out_size)
{
    snprintf(out, out_size, "?");
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)out_size);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out,
                  (socklen_t)out_size);
}

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t out_size)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        port = ntohs(a->sin_port);
        snprintf(out, out_size, "%s:%u", ip, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
        snprintf(out, out_size, "[%s]:%u", ip, port);
    } else {
        snprintf(out, out_size, "unknown");
    }
}

static int conn_new(ob_httpd_t *s, int fd, const struct sockaddr_storage *ss)
{
    ob_httpd_conn_t *c = ob_calloc(1, sizeof(*c));
    if (!c)
        return -1;
    c->s = s;
    c->fd = fd;
    c->io = ob_io_new(s->loop, fd, conn_io_cb, c);
    c->timer = ob_timer_new(s->loop, conn_timer_cb, c);
    if (!c->io || !c->timer || ob_io_set(c->io, OB_IO_READ) != OB_OK) {
        ob_io_free(c->io);
        ob_timer_free(c->timer);
        free(c);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    format_peer(ss, c->peer, sizeof(c->peer));
    peer_address(ss, c->peer_addr, sizeof(c->peer_addr));
    req_reset(c);
    c->state = ST_IDLE;
    c->since = ob_loop_update_time(s->loop);
    ob_list_push_front(&s->conns, &c->node);
    s->st.open_connections++;
    s->st.accepted++;
    set_deadline(c, DL_IDLE, s->opts.idle_timeout_ms);
    return 0;
}

/* ---- listener ---- */

static void accept_resume(ob_timer_t *t, void *arg)
{
    ob_httpd_t *s = arg;
    s->accept_paused = 0;
    ob_io_set(s->lio, OB_IO_READ);
}

/* Whether a connection can be closed to make room: nothing of its own is
 * being answered (idle on keep-alive, or a request still arriving). */
static int evictable(const ob_httpd_conn_t *c)
{
    return c->state == ST_IDLE || c->state == ST_HEAD || c->state == ST_BODY;
}

/* The oldest evictable connection (of the peer `addr`; NULL: any) and how many
 * connections that peer has. */
static ob_httpd_conn_t *oldest_idle(ob_httpd_t *s, const char *addr, size_t *count)
{
    ob_httpd_conn_t *best = NULL;
    *count = 0;
    for (ob_list_t *pos = s->conns.next; pos != &s->conns; pos = pos->next) {
        ob_httpd_conn_t *c = CONN_OF(pos);
        if (addr && strcmp(c->peer_addr, addr) != 0)
            continue;
        (*count)++;
        if (evictable(c) && c->busy == 0 && (!best || c->since <= best->since))
            best = c;
    }
    return best;
}

static void evict(ob_httpd_conn_t *c)
{
    c->s->st.evicted++;
    conn_close(c, 1);
    conn_release(c);
}

/* Room for a new connection from ss: 0, after closing an idle one if
 * needed (max_per_peer, reuse_idle), or -1 when it must be refused. */
static int make_room(ob_httpd_t *s, const struct sockaddr_storage *ss)
{
    size_t n;
    if (s->opts.max_per_peer) {
        char addr[64];
        peer_address(ss, addr, sizeof(addr));
        ob_httpd_conn_t *old = oldest_idle(s, addr, &n);
        if (n >= s->opts.max_per_peer) {
            if (!old)
                return -1;
            evict(old);
        }
    }
    if (s->st.open_connections < s->opts.max_connections)
        return 0;
    ob_httpd_conn_t *old = s->opts.reuse_idle ? oldest_idle(s, NULL, &n) : NULL;
    if (!old)
        return -1;
    evict(old);
    return 0;
}

static void accept_cb(ob_io_t *io, int fd, unsigned events, void *arg)
{
    ob_httpd_t *s = arg;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* Out of descriptors or memory: the listener would stay readable and
             * spin the loop, so stop watching it for a moment. */
            if (!s->accept_paused)
                OB_WARN(COMP, "accept failed, pausing %d ms: %s", ACCEPT_PAUSE_MS, strerror(errno));
            s->accept_paused = 1;
            ob_io_set(io, 0);
            ob_timer_start(s->accept_timer, ACCEPT_PAUSE_MS);
            return;
        }
        if (make_room(s, &ss) != 0) {
            s->st.rejected++;
            close(cfd);
            continue;
        }
        if (conn_new(s, cfd, &ss) < 0) {
            s->st.rejected++;
            close(cfd);
        }
    }
}

ob_httpd_t *ob_httpd_new(ob_loop_t *loop, const ob_httpd_opts_t *opts, ob_httpd_handler *h,
                         void *arg, char *errstr, size_t errstr_size)
{
    if (!loop || !h) {
        ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "ob_httpd_new needs a loop and a handler");
        return NULL;
    }
    ob_httpd_opts_t o = {0};
    if (opts)
        o = *opts;
    if (o.port < 0 || o.port > 65535) {
        ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "port %d is out of range", o.port);
        return NULL;
    }
    const char *bind_addr = o.bind_addr && *o.bind_addr ? o.bind_addr : "127.0.0.1";
    const char *name = o.server_name ? o.server_name : "onboard";
    if (strlen(bind_addr) >= 256 || strlen(name) >= 128 || strpbrk(name, "\r\n")) {
        ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                "bind address or server name too long or malformed");
        return NULL;
    }
    ob_httpd_t *s = ob_calloc(1, sizeof(*s));
    ob_list_init(&s->conns);
    s->loop = loop;
    s->lfd = -1;
    s->handler = h;
    s->arg = arg;
    snprintf(s->bind_addr, sizeof(s->bind_addr), "%s", bind_addr);
    snprintf(s->server_name, sizeof(s->server_name), "%s", name);
    s->opts = o;
    s->opts.bind_addr = s->bind_addr;
    s->opts.server_name = s->server_name;
    if (!s->opts.max_header_bytes)
        s->opts.max_header_bytes = 64 * 1024;
    if (!s->opts.max_body_bytes)
        s->opts.max_body_bytes = 8u << 20;
    if (s->opts.idle_timeout_ms <= 0)
        s->opts.idle_timeout_ms = 60000;
    if (s->opts.request_timeout_ms <= 0)
        s->opts.request_timeout_ms = 30000;
    if (!s->opts.max_connections)
        s->opts.max_connections = 20000;

    ob_raise_nofile();

    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof(port), "%d", o.port);
    int gai = getaddrinfo(s->bind_addr, port, &hints, &ai);
    if (gai != 0 || !ai) {
        ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "cannot resolve bind address %s: %s",
                s->bind_addr, gai_strerror(gai));
        free(s);
        return NULL;
    }
    s->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (s->lfd < 0 || setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(s->lfd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(s->lfd, 4096) < 0) {
        ob_errf(errstr, errstr_size, OB_ERR_IO, "cannot listen on %s port %d: %s", s->bind_addr,
                o.port, strerror(errno));
        freeaddrinfo(ai);
        ob_httpd_free(s);
        return NULL;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(s->lfd, (struct sockaddr *)&ss, &sl) == 0)
        s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    s->lio = ob_io_new(loop, s->lfd, accept_cb, s);
    s->accept_timer = ob_timer_new(loop, accept_resume, s);
    if (!s->lio || !s->accept_timer || ob_io_set(s->lio, OB_IO_READ) != OB_OK) {
        ob_errf(errstr, errstr_size, OB_ERR_IO, "cannot watch the listening socket");
        ob_httpd_free(s);
        return NULL;
    }
    return s;
}

int ob_httpd_port(const ob_httpd_t *s)
{
    return s->port;
}

void ob_httpd_free(ob_httpd_t *s)
{
    if (!s)
        return;
    s->freeing = 1;
    ob_io_free(s->lio);
    ob_timer_free(s->accept_timer);
    if (s->lfd >= 0)
        close(s->lfd);
    /* A callback may answer or close other conns; always take the list head. */
    while (!ob_list_empty(&s->conns)) {
        ob_httpd_conn_t *c = CONN_OF(ob_list_first(&s->conns));
        c->busy++;
        conn_close(c, 1);
        c->busy--;
        conn_release(c);
    }
    ob_buf_free(&s->head);
    free(s);
}

/* ---- answering ---- */

static ob_err_t respond(ob_httpd_conn_t *c, int status, const ob_hdrs_t *headers, const void *body,
                        size_t len, size_t send_len, int truncate)
{
    if (!c || c->state != ST_PENDING)
        return OB_ERR_STATE;
    /* HEAD may give the length of a body it does not pass. */
    if (status < 200 || status > 999 || (len && !body && !c->is_head) ||
        check_headers(headers) != OB_OK)
        return OB_ERR_INVALID_ARG;
    ob_httpd_t *s = c->s;
    ob_err_t err = build_head(c, status, headers, len, truncate || c->close_after || s->freeing);
    if (err != OB_OK)
        return err;
    if (truncate)
        c->close_after = 1;
    int outer = c->busy == 0;
    c->busy++;
    c->state = ST_WRITING;
    s->st.pending--;
    s->st.responses++;
    size_t body_send = c->is_head || status == 204 || status == 304 ? 0 : send_len;
    send_response(c, body, body_send);
    if (outer && c->state != ST_DEAD)
        conn_process(c); /* answered from outside: continue with pipelined input */
    c->busy--;
    conn_release(c);
    return OB_OK;
}

ob_err_t ob_httpd_respond(ob_httpd_conn_t *c, int status, const ob_hdrs_t *headers,
                          const void *body, size_t len)
{
    return respond(c, status, headers, body, len, len, 0);
}

ob_err_t ob_httpd_respond_truncated(ob_httpd_conn_t *c, int status, const ob_hdrs_t *headers,
                                    const void *body, size_t len, size_t send_bytes)
{
    return respond(c, status, headers, body, len, send_bytes < len ? send_bytes : len, 1);
}

void ob_httpd_reset(ob_httpd_conn_t *c)
{
    if (!c || c->state != ST_PENDING)
        return;
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    c->s->st.resets++;
    c->busy++;
    conn_close(c, 0);
    c->busy--;
    conn_release(c);
}

void ob_httpd_on_close(ob_httpd_conn_t *c, void (*cb)(ob_httpd_conn_t *c, void *arg), void *arg)
{
    if (!c || c->state != ST_PENDING)
        return;
    c->on_close = cb;
    c->on_close_arg = arg;
}

const ob_httpd_req_t *ob_httpd_conn_request(const ob_httpd_conn_t *c)
{
    return c && c->state == ST_PENDING ? &c->req : NULL;
}

void ob_httpd_get_stats(const ob_httpd_t *s, ob_httpd_stats_t *out)
{
    *out = s->st;
}

/* ---- the parser without a socket (tests and fuzzing) ---- */

/* Everything below drives the same parser functions as conn_read() and
 * conn_process() do, with every request answered at once. Only the 100
 * Continue of headers_done() writes to the connection: it gets one end of a
 * socket pair whose other end nobody reads. */
size_t ob_httpd_test_parse(const char *data, size_t len, size_t chunk, const ob_httpd_opts_t *opts,
                           ob_httpd_test_cb *cb, void *arg)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return 0;
    ob_httpd_t *s = ob_calloc(1, sizeof(*s));
    ob_httpd_conn_t *c = ob_calloc(1, sizeof(*c));
    s->lfd = -1;
    if (opts)
        s->opts = *opts;
    if (!s->opts.max_header_bytes)
        s->opts.max_header_bytes = 64 * 1024;
    if (!s->opts.max_body_bytes)
        s->opts.max_body_bytes = 8u << 20;
    c->s = s;
    c->fd = sv[0];
    snprintf(c->peer, sizeof(c->peer), "test");
    req_reset(c);
    c->state = ST_IDLE;

    size_t requests = 0, off = 0;
    int done = 0;
    while (!done && off < len) {
        size_t take = chunk && chunk < len - off ? chunk : len - off;
        in_compact(c); /* as conn_read() */
        if (ob_buf_append(&c->in, data + off, take) != OB_OK)
            break;
        off += take;
        while (!done) { /* as conn_process() */
            if (c->state == ST_IDLE) {
                if (c->in_pos == c->in.len) {
                    buf_recycle(&c->in);
                    c->in_pos = c->scan = 0;
                    break;
                }
                c->state = ST_HEAD;
            }
            enum parse_result r = parse(c);
            if (c->state == ST_DEAD) {
                done = 1;
            } else if (r == P_ERROR) {
                cb(NULL, c->err_status ? c->err_status : 400, arg);
                done = 1;
            } else if (r == P_READY) { /* as dispatch() */
                requests++;
                cb(fill_request(c), 0, arg);
                done = !c->keep_alive;
                req_reset(c);
                c->state = ST_IDLE;
            }
            if (r == P_MORE)
                break;
        }
    }
    conn_free(c); /* its timer is NULL: never made outside a loop */
    free(s);
    close(sv[0]);
    close(sv[1]);
    return requests;
}
