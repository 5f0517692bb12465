/*
 * ob_http: curl multi_socket on ob_loop (after curl's ephiperfifo example,
 * without its demo habits). One ob_io_t per curl socket, bound to the socket
 * with curl_multi_assign(); one loop timer for curl's timeout. Completions are
 * collected by drain() after every socket action and only there, so no user
 * callback ever runs inside a curl callback.
 */
#include "ob_http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ob_alloc.h"
#include "ob_heap.h"
#include "ob_list.h"
#include "ob_log.h"

struct ob_http_s {
    ob_loop_t *loop;
    CURLM *multi;
    ob_timer_t *timer;
    ob_http_opts_t opts;
    char user_agent[64];
    size_t active;
    uint64_t completed;
    uint64_t multi_errors; /* curl_multi_socket_action failures */
    ob_list_t xfers;       /* running transfers, newest first */
    /* Waiting for a transfer slot (max_transfers): lowest priority value
     * first, in arrival order within one. */
    ob_heap_t queue;
    /* Idle easy handles, reset and ready for the next transfer (LIFO): a
     * handle goes back here when its transfer ends, unless the handles kept
     * would be more than were in use lately (mark) or than can run at once
     * (idle_max). */
    CURL **idle;
    size_t nidle, idle_cap, idle_max;
    size_t mark;      /* transfers running at once lately: follows a rise at once, */
    uint64_t mark_at; /* and falls a quarter of the way to what runs each second */
    int draining;
};

enum req_kind { REQ_GET, REQ_HEAD, REQ_BODY };

/* One allocation per request: this struct, then the curl_slist nodes of the
 * request headers, then the text they point to, the URL, the custom method
 * and the body. The easy handle is taken from the idle list when the transfer
 * starts and given back when it ends, so a waiting transfer holds none. */
struct ob_http_xfer_s {
    ob_http_t *h;
    CURL *easy; /* set only while handed to curl (in the multi handle) */
    struct curl_slist *slist;
    const char *url;
    const char *custom_method; /* CURLOPT_CUSTOMREQUEST, or NULL */
    const char *body; /* request body (REQ_BODY): a copy, NUL-terminated, or the caller's */
    size_t body_len;
    enum req_kind kind;
    long timeout_ms;
    long connect_timeout_ms;
    ob_http_cb *cb;
    void *arg;
    size_t max_body;
    int over_limit;
    uint64_t started;
    ob_http_resp_t resp;
    char curl_err[CURL_ERROR_SIZE];
    ob_heap_node_t qnode; /* in h->queue while waiting for a slot (key: priority) */
    ob_list_t node;       /* in h->xfers while running */
    struct curl_slist nodes[];
};

static ob_http_xfer_t *xfer_of(ob_heap_node_t *n)
{
    return OB_HEAP_ENTRY(n, ob_http_xfer_t, qnode);
}

static void xfer_unlink(ob_http_xfer_t *x)
{
    if (ob_heap_in(&x->qnode)) {
        ob_heap_remove(&x->h->queue, &x->qnode);
        return;
    }
    ob_list_remove(&x->node);
}

/* An easy handle for a new transfer: an idle one (already reset) or a new one. */
static CURL *easy_get(ob_http_t *h)
{
    if (h->nidle)
        return h->idle[--h->nidle];
    return curl_easy_init();
}

/* How many handles to keep, idle and running: the transfers that ran at once
 * lately (never fewer than OB_HTTP_IDLE_HANDLES). */
static size_t handles_wanted(ob_http_t *h)
{
    uint64_t now = ob_loop_now(h->loop);
    if (h->active >= h->mark) {
        h->mark = h->active;
        h->mark_at = now;
    }
    while (h->mark > h->active && now - h->mark_at >= 1000) {
        h->mark -= (h->mark - h->active + 3) / 4;
        h->mark_at += 1000;
    }
    return h->mark > OB_HTTP_IDLE_HANDLES ? h->mark : OB_HTTP_IDLE_HANDLES;
}

/* Take back a handle no longer in the multi handle. curl_easy_reset() drops
 * every option (URL, callbacks, CURLOPT_PRIVATE, the error buffer and header
 * list pointers) and so every reference to the finished transfer's memory;
 * setup_easy() sets them all again. */
static void easy_put(ob_http_t *h, CURL *e)
{
    /* A burst's handles (about 10 KiB each: state and receive buffer) are kept
     * while bursts go on, and let go of within seconds once they stop: a
     * worker whose accounts wait for their stacks has nothing to send. */
    size_t wanted = handles_wanted(h);
    while (h->nidle && h->nidle + h->active >= wanted)
        curl_easy_cleanup(h->idle[--h->nidle]);
    if (h->active >= wanted) {
        curl_easy_cleanup(e);
        return;
    }
    if (h->nidle == h->idle_cap && h->idle_cap < h->idle_max) {
        size_t cap = h->idle_cap ? h->idle_cap * 2 : 16;
        if (cap > h->idle_max)
            cap = h->idle_max;
        CURL **v = ob_realloc(h->idle, cap * sizeof(*v));
        if (v) {
            h->idle = v;
            h->idle_cap = cap;
        }
    }
    if (h->nidle == h->idle_cap) {
        curl_easy_cleanup(e);
        return;
    }
    curl_easy_reset(e);
    h->idle[h->nidle++] = e;
}

/* Take a running transfer's handle out of curl and back to the idle list. */
static void xfer_release_easy(ob_http_xfer_t *x)
{
    if (!x->easy)
        return;
    CURL *e = x->easy;
    x->easy = NULL;
    if (curl_multi_remove_handle(x->h->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e); /* not known to be out of curl: never reuse it */
        return;
    }
    easy_put(x->h, e);
}

static void xfer_free(ob_http_xfer_t *x)
{
    xfer_release_easy(x);
    ob_hdrs_clear(&x->resp.headers);
    ob_buf_free(&x->resp.body);
    free(x);
}

static void admit(ob_http_t *h);

static void finish(ob_http_xfer_t *x, CURLcode rc)
{
    ob_http_t *h = x->h;
    ob_http_resp_t *r = &x->resp;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r->status);
    r->elapsed_ms = ob_loop_update_time(h->loop) - x->started;
    if (rc == CURLE_OK) {
        r->err = OB_OK;
    } else {
        const char *detail = x->curl_err[0] ? x->curl_err : curl_easy_strerror(rc);
        switch (rc) {
        case CURLE_OPERATION_TIMEDOUT:
            r->err = OB_ERR_TIMEOUT;
            break;
        case CURLE_WRITE_ERROR:
            r->err = x->over_limit ? OB_ERR_TOO_LARGE : OB_ERR_HTTP;
            break;
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_SSL_CONNECT_ERROR:
            r->err = OB_ERR_CONN;
            break;
        default:
            r->err = OB_ERR_HTTP;
        }
        if (x->over_limit)
            snprintf(r->errmsg, sizeof(r->errmsg), "reply body exceeds the limit of %zu bytes",
                     x->max_body);
        else
            snprintf(r->errmsg, sizeof(r->errmsg), "%s", detail);
        /* A partial reply is not a reply. */
        if (r->err != OB_OK && rc != CURLE_OK)
            r->status = r->err == OB_ERR_TOO_LARGE ? r->status : 0;
    }
    xfer_unlink(x);
    h->active--;
    h->completed++;
    /* The handle is free before the callback: a request it starts takes it. */
    xfer_release_easy(x);
    x->cb(r, x->arg);
    xfer_free(x);
    admit(h);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata);
static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata);

/* Every option of a transfer, on a new or reset handle. */
static CURLcode setup_easy(ob_http_xfer_t *x, CURL *e)
{
    ob_http_t *h = x->h;
    CURLcode rc = CURLE_OK, c;
#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        c = curl_easy_setopt(e, opt, val);                                                         \
        if (c != CURLE_OK && rc == CURLE_OK)                                                       \
            rc = c;                                                                                \
    } while (0)
    SETOPT(CURLOPT_URL, x->url);
    SETOPT(CURLOPT_PRIVATE, x);
    SETOPT(CURLOPT_ERRORBUFFER, x->curl_err);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_TIMEOUT_MS, x->timeout_ms);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, x->connect_timeout_ms);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    /* curl's receive buffer (16 KiB by default) is held by every handle, in
     * flight or idle, a thousand of them under load; AWS answers the workers
     * in a few KiB, read as well in 4 KiB steps. */
    SETOPT(CURLOPT_BUFFERSIZE, 4096L);
    SETOPT(CURLOPT_USERAGENT, h->user_agent);
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, x);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, x);
    SETOPT(CURLOPT_ACCEPT_ENCODING, (char *)NULL);
    /* Signed requests must go out exactly as signed: no redirects followed,
     * and no "./" or "../" squashed out of the path (S3 signs it as is). */
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_PATH_AS_IS, 1L);
    /* Over TLS (HTTP/1.1) curl copies every request into an upload buffer of
     * this size, allocated per transfer: 64 KiB by default, 16 KiB is its
     * minimum and one TLS record. The receive buffer keeps curl's default
     * (16 KiB): CURLOPT_BUFFERSIZE cannot be set again on a reused handle
     * that still holds its buffer. */
    SETOPT(CURLOPT_UPLOAD_BUFFERSIZE, (long)CURL_MAX_WRITE_SIZE);
    SETOPT(CURLOPT_HTTPHEADER, x->slist);
    switch (x->kind) {
    case REQ_HEAD:
        SETOPT(CURLOPT_NOBODY, 1L);
        break;
    case REQ_GET:
        SETOPT(CURLOPT_HTTPGET, 1L);
        break;
    case REQ_BODY:
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
        SETOPT(CURLOPT_POSTFIELDS, x->body);
        if (x->custom_method)
            SETOPT(CURLOPT_CUSTOMREQUEST, x->custom_method);
        break;
    }
#undef SETOPT
    return rc;
}

/* Hand a transfer to curl. OB_OK or the error (the transfer is then not
 * linked and holds no handle). */
static ob_err_t start_xfer(ob_http_t *h, ob_http_xfer_t *x, char *errstr, size_t errstr_size)
{
    CURL *e = easy_get(h);
    if (!e)
        return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "cannot create a curl handle");
    CURLcode rc = setup_easy(x, e);
    if (rc != CURLE_OK) {
        easy_put(h, e);
        return ob_errf(errstr, errstr_size, rc == CURLE_OUT_OF_MEMORY ? OB_ERR_NOMEM : OB_ERR_HTTP,
                       "curl_easy_setopt: %s", curl_easy_strerror(rc));
    }
    x->started = ob_loop_update_time(h->loop);
    CURLMcode mc = curl_multi_add_handle(h->multi, e);
    if (mc != CURLM_OK) {
        easy_put(h, e);
        return ob_errf(errstr, errstr_size, OB_ERR_HTTP, "curl_multi_add_handle: %s",
                       curl_multi_strerror(mc));
    }
    x->easy = e;
    ob_list_push_front(&h->xfers, &x->node);
    h->active++;
    if (h->active > h->mark) { /* the mark follows a rise at once */
        h->mark = h->active;
        h->mark_at = ob_loop_now(h->loop);
    }
    return OB_OK;
}

/* Start waiting transfers while there are free slots. */
static void admit(ob_http_t *h)
{
    while (h->queue.n && (h->opts.max_transfers <= 0 || (long)h->active < h->opts.max_transfers)) {
        ob_http_xfer_t *x = xfer_of(ob_heap_top(&h->queue));
        xfer_unlink(x);
        char err[256];
        ob_err_t e = start_xfer(h, x, err, sizeof(err));
        if (e != OB_OK) {
            x->resp.err = e;
            x->resp.status = 0;
            snprintf(x->resp.errmsg, sizeof(x->resp.errmsg), "%s", err);
            x->cb(&x->resp, x->arg);
            xfer_free(x);
        }
    }
}

static void drain(ob_http_t *h)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(h->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        ob_http_xfer_t *x = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        finish(x, msg->data.result);
    }
}

/* Let curl work on a socket (or, CURL_SOCKET_TIMEOUT, on whatever is due),
 * then hand out what finished. If curl could not (out of memory, an internal
 * error), its transfers would wait for an event that may never come: it is
 * logged, counted, and curl is driven again shortly. A socket curl closed
 * between the event and this call (CURLM_BAD_SOCKET) is nothing to report. */
static void socket_action(ob_http_t *h, curl_socket_t fd, int mask)
{
    int running = 0;
    CURLMcode mc = curl_multi_socket_action(h->multi, fd, mask, &running);
    if (mc != CURLM_OK && mc != CURLM_BAD_SOCKET) {
        h->multi_errors++;
        ob_logkv(OB_LOG_ERROR, "http", "curl could not drive its transfers: trying again", "error",
                 curl_multi_strerror(mc), NULL);
        ob_timer_start(h->timer, 10);
    }
    drain(h);
}

static void socket_ready(ob_io_t *io, int fd, unsigned events, void *arg)
{
    ob_http_t *h = arg;
    int mask = 0;
    if (events & OB_IO_READ)
        mask |= CURL_CSELECT_IN;
    if (events & OB_IO_WRITE)
        mask |= CURL_CSELECT_OUT;
    if (events & OB_IO_ERROR)
        mask |= CURL_CSELECT_ERR;
    socket_action(h, fd, mask);
}

static void timer_fired(ob_timer_t *t, void *arg)
{
    socket_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    ob_http_t *h = userp;
    ob_io_t *io = socketp;
    if (what == CURL_POLL_REMOVE) {
        ob_io_free(io);
        curl_multi_assign(h->multi, s, NULL);
        return 0;
    }
    if (!io) {
        io = ob_io_new(h->loop, s, socket_ready, h);
        if (!io)
            return -1;
        curl_multi_assign(h->multi, s, io);
    }
    unsigned ev = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        ev |= OB_IO_READ;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        ev |= OB_IO_WRITE;
    return ob_io_set(io, ev) == OB_OK ? 0 : -1;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    ob_http_t *h = userp;
    if (timeout_ms < 0)
        ob_timer_stop(h->timer);
    else
        ob_timer_start(h->timer, (uint64_t)timeout_ms);
    return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    ob_http_xfer_t *x = userdata;
    size_t n = size * nmemb;
    if (x->resp.body.len + n > x->max_body) {
        x->over_limit = 1;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    if (ob_buf_append(&x->resp.body, ptr, n) != OB_OK)
        return 0;
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    ob_http_xfer_t *x = userdata;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
        /* A new status line (after 100 Continue or a redirect): start over. */
        ob_hdrs_clear(&x->resp.headers);
        return n;
    }
    const char *colon = memchr(ptr, ':', n);
    if (!colon)
        return n;
    if (x->resp.headers.n >= 256)
        return n; /* a hostile server cannot make us keep unbounded headers */
    char name[256], value[8192];
    size_t nl = (size_t)(colon - ptr);
    if (nl == 0 || nl >= sizeof(name))
        return n;
    memcpy(name, ptr, nl);
    name[nl] = '\0';
    const char *v = colon + 1, *end = ptr + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vl = (size_t)(end - v);
    if (vl >= sizeof(value))
        vl = sizeof(value) - 1;
    memcpy(value, v, vl);
    value[vl] = '\0';
    ob_hdrs_add(&x->resp.headers, name, value);
    return n;
}

ob_http_t *ob_http_new(ob_loop_t *loop, const ob_http_opts_t *opts, char *errstr,
                       size_t errstr_size)
{
    static int global_done;
    if (!global_done) {
        /* curl allocates under the project's out-of-memory policy (ob_alloc.h). */
        if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, ob_malloc, free, ob_realloc, ob_strdup,
                                 ob_calloc) != CURLE_OK) {
            ob_errf(errstr, errstr_size, OB_ERR_HTTP, "curl_global_init failed");
            return NULL;
        }
        global_done = 1;
    }
    ob_http_t *h = ob_calloc(1, sizeof(*h));
    ob_list_init(&h->xfers);
    h->loop = loop;
    if (opts)
        h->opts = *opts;
    if (h->opts.timeout_ms <= 0)
        h->opts.timeout_ms = 30000;
    if (h->opts.connect_timeout_ms <= 0)
        h->opts.connect_timeout_ms = 5000;
    if (h->opts.max_body == 0)
        h->opts.max_body = 8u << 20;
    if (h->opts.max_connections <= 0)
        h->opts.max_connections = 256;
    /* Idle handles kept: at most as many as may run at once (with no limit
     * on transfers, as many as there may be connections); fewer once use
     * falls (easy_put). */
    h->idle_max =
        (size_t)(h->opts.max_transfers > 0 ? h->opts.max_transfers : h->opts.max_connections);
    snprintf(h->user_agent, sizeof(h->user_agent), "%s",
             h->opts.user_agent ? h->opts.user_agent : "onboard/" OB_VERSION);
    h->opts.user_agent = h->user_agent;
    h->multi = curl_multi_init();
    h->timer = ob_timer_new(loop, timer_fired, h);
    if (!h->multi || !h->timer) {
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "cannot create the curl multi handle");
        ob_http_free(h);
        return NULL;
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, h->opts.max_connections);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, h->opts.max_connections);
    return h;
}

void ob_http_free(ob_http_t *h)
{
    if (!h)
        return;
    while (h->queue.n) {
        ob_http_xfer_t *x = xfer_of(ob_heap_top(&h->queue));
        xfer_unlink(x);
        x->resp.err = OB_ERR_CANCELLED;
        x->resp.status = 0;
        snprintf(x->resp.errmsg, sizeof(x->resp.errmsg), "HTTP client shut down");
        x->cb(&x->resp, x->arg);
        xfer_free(x);
    }
    while (!ob_list_empty(&h->xfers)) {
        ob_http_xfer_t *x = OB_LIST_ENTRY(ob_list_first(&h->xfers), ob_http_xfer_t, node);
        xfer_unlink(x);
        h->active--;
        xfer_release_easy(x);
        x->resp.err = OB_ERR_CANCELLED;
        x->resp.status = 0;
        snprintf(x->resp.errmsg, sizeof(x->resp.errmsg), "HTTP client shut down");
        x->cb(&x->resp, x->arg);
        xfer_free(x);
    }
    while (h->nidle)
        curl_easy_cleanup(h->idle[--h->nidle]);
    free(h->idle);
    ob_heap_clear(&h->queue);
    if (h->multi)
        curl_multi_cleanup(h->multi);
    ob_timer_free(h->timer);
    free(h);
}

/* A request header line as curl takes it, cut like the 8 KiB line it always
 * was: "Name: value", or "Name;" for an empty value (curl then sends the
 * header with no value). Its length without the NUL when buf is NULL. */
#define HDR_LINE_MAX 8447

static char *put_cut(char *p, const char *end, const char *s, size_t n)
{
    size_t room = (size_t)(end - p);
    if (n > room)
        n = room;
    memcpy(p, s, n);
    return p + n;
}

static size_t hdr_line(char *buf, const ob_hdr_t *hd)
{
    size_t nl = strlen(hd->name), vl = strlen(hd->value);
    size_t full = vl ? nl + 2 + vl : nl + 1;
    size_t len = full < HDR_LINE_MAX ? full : HDR_LINE_MAX;
    if (buf) {
        const char *end = buf + len;
        char *p = put_cut(buf, end, hd->name, nl);
        p = vl ? put_cut(p, end, ": ", 2) : put_cut(p, end, ";", 1);
        p = put_cut(p, end, hd->value, vl);
        *p = '\0';
    }
    return len;
}

ob_http_xfer_t *ob_http_send(ob_http_t *h, const ob_http_req_t *req, ob_http_cb *cb, void *arg,
                             char *errstr, size_t errstr_size)
{
    const char *method = req->method ? req->method : "GET";
    enum req_kind kind = !strcmp(method, "HEAD")                          ? REQ_HEAD
                         : (!strcmp(method, "GET") && req->body_len == 0) ? REQ_GET
                                                                          : REQ_BODY;
    int custom = kind == REQ_BODY && strcmp(method, "POST") != 0;

    /* The request's headers, URL, method and body go in the same allocation
     * as the transfer: sizes first. Never send "Expect: 100-continue"; and no
     * form content type curl would add on its own to a body we did not
     * describe. */
    static const char expect_line[] = "Expect:", ct_line[] = "Content-Type:";
    size_t nhdr = req->headers ? req->headers->n : 0;
    int has_ct = 0;
    size_t text = 0;
    for (size_t i = 0; i < nhdr; i++) {
        const ob_hdr_t *hd = &req->headers->v[i];
        if (!strcasecmp(hd->name, "Content-Type"))
            has_ct = 1;
        text += hdr_line(NULL, hd) + 1;
    }
    size_t nnodes = nhdr + 1 + !has_ct;
    text += sizeof(expect_line) + (has_ct ? 0 : sizeof(ct_line));
    size_t url_len = req->url ? strlen(req->url) : 0;
    text += url_len + 1;
    if (custom)
        text += strlen(method) + 1;
    size_t fixed = sizeof(ob_http_xfer_t) + nnodes * sizeof(struct curl_slist);
    int copy_body = kind == REQ_BODY && !(req->body_kept && req->body);
    if (copy_body) {
        if (req->body_len > SIZE_MAX - fixed - text - 1) {
            ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
            return NULL;
        }
        text += req->body_len + 1;
    }
    ob_http_xfer_t *x = ob_malloc(fixed + text);
    if (!x) {
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    memset(x, 0, sizeof(*x));
    x->h = h;
    x->cb = cb;
    x->arg = arg;
    x->kind = kind;
    x->max_body = req->max_body ? req->max_body : h->opts.max_body;
    x->timeout_ms = req->timeout_ms ? req->timeout_ms : h->opts.timeout_ms;
    x->connect_timeout_ms =
        req->connect_timeout_ms ? req->connect_timeout_ms : h->opts.connect_timeout_ms;

    char *p = (char *)&x->nodes[nnodes];
    size_t k = 0;
    for (size_t i = 0; i < nhdr; i++) {
        x->nodes[k++].data = p;
        p += hdr_line(p, &req->headers->v[i]) + 1;
    }
    x->nodes[k++].data = memcpy(p, expect_line, sizeof(expect_line));
    p += sizeof(expect_line);
    if (!has_ct) {
        x->nodes[k++].data = memcpy(p, ct_line, sizeof(ct_line));
        p += sizeof(ct_line);
    }
    for (size_t i = 0; i < nnodes; i++)
        x->nodes[i].next = i + 1 < nnodes ? &x->nodes[i + 1] : NULL;
    x->slist = x->nodes;

    if (req->url) {
        memcpy(p, req->url, url_len + 1);
        x->url = p;
    }
    p += url_len + 1;
    if (custom) {
        size_t ml = strlen(method);
        memcpy(p, method, ml + 1);
        x->custom_method = p;
        p += ml + 1;
    }
    if (copy_body) {
        char *b = p;
        if (req->body_len)
            memcpy(b, req->body, req->body_len);
        b[req->body_len] = '\0';
        x->body = b;
        x->body_len = req->body_len;
    } else if (kind == REQ_BODY) {
        x->body = req->body; /* the caller's, kept for the transfer's life */
        x->body_len = req->body_len;
    }

    if (h->queue.n || (h->opts.max_transfers > 0 && (long)h->active >= h->opts.max_transfers)) {
        /* No free slot: wait in line, with no curl handle yet. */
        if (ob_heap_push(&h->queue, &x->qnode, req->priority) != OB_OK) {
            xfer_free(x);
            ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
            return NULL;
        }
        return x;
    }
    if (start_xfer(h, x, errstr, errstr_size) != OB_OK) {
        xfer_free(x);
        return NULL;
    }
    return x;
}

void ob_http_cancel(ob_http_xfer_t *x)
{
    if (!x)
        return;
    ob_http_t *h = x->h;
    int was_running = !ob_heap_in(&x->qnode);
    xfer_unlink(x);
    if (was_running)
        h->active--;
    xfer_free(x);
    if (was_running)
        admit(h);
}

size_t ob_http_idle_handles(const ob_http_t *h)
{
    return h ? h->nidle : 0;
}

size_t ob_http_active(const ob_http_t *h)
{
    return h->active;
}

uint64_t ob_http_completed(const ob_http_t *h)
{
    return h->completed;
}

void ob_http_resp_take_body(ob_http_resp_t *resp, ob_buf_t *out)
{
    *out = resp->body;
    memset(&resp->body, 0, sizeof(resp->body));
}
