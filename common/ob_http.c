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

struct ob_http_s {
    ob_loop_t *loop;
    CURLM *multi;
    ob_timer_t *timer;
    ob_http_opts_t opts;
    char user_agent[64];
    size_t active;
    size_t nqueued;
    uint64_t completed;
    ob_http_xfer_t *xfers;         /* doubly linked list of running transfers */
    ob_http_xfer_t *qhead, *qtail; /* waiting for a transfer slot (max_transfers) */
    int draining;
};

struct ob_http_xfer_s {
    ob_http_t *h;
    CURL *easy;
    struct curl_slist *slist;
    char *body; /* request body copy */
    ob_http_cb *cb;
    void *arg;
    size_t max_body;
    int over_limit;
    uint64_t started;
    ob_http_resp_t resp;
    char curl_err[CURL_ERROR_SIZE];
    int queued; /* in the waiting FIFO, not yet handed to curl */
    ob_http_xfer_t *prev, *next;
};

static void xfer_unlink(ob_http_xfer_t *x)
{
    if (x->queued) {
        ob_http_t *h = x->h;
        if (x->prev)
            x->prev->next = x->next;
        else
            h->qhead = x->next;
        if (x->next)
            x->next->prev = x->prev;
        else
            h->qtail = x->prev;
        x->prev = x->next = NULL;
        return;
    }
    if (x->prev)
        x->prev->next = x->next;
    else
        x->h->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

static void xfer_free(ob_http_xfer_t *x)
{
    if (!x->queued)
        curl_multi_remove_handle(x->h->multi, x->easy);
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->slist);
    free(x->body);
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
    x->cb(r, x->arg);
    xfer_free(x);
    admit(h);
}

/* Hand a transfer to curl. OB_OK or the error (the transfer is then not linked). */
static ob_err_t start_xfer(ob_http_t *h, ob_http_xfer_t *x, char *errstr, size_t errstr_size)
{
    x->queued = 0;
    x->started = ob_loop_update_time(h->loop);
    x->prev = NULL;
    x->next = h->xfers;
    if (h->xfers)
        h->xfers->prev = x;
    h->xfers = x;
    h->active++;
    CURLMcode mc = curl_multi_add_handle(h->multi, x->easy);
    if (mc != CURLM_OK) {
        xfer_unlink(x);
        h->active--;
        x->queued = 1; /* never added: nothing to remove */
        ob_errf(errstr, errstr_size, OB_ERR_HTTP, "curl_multi_add_handle: %s",
                curl_multi_strerror(mc));
        return OB_ERR_HTTP;
    }
    return OB_OK;
}

/* Start waiting transfers while there are free slots. */
static void admit(ob_http_t *h)
{
    while (h->qhead && (h->opts.max_transfers <= 0 || (long)h->active < h->opts.max_transfers)) {
        ob_http_xfer_t *x = h->qhead;
        xfer_unlink(x);
        h->nqueued--;
        char err[256];
        if (start_xfer(h, x, err, sizeof(err)) != OB_OK) {
            x->resp.err = OB_ERR_HTTP;
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

static void socket_ready(ob_io_t *io, int fd, unsigned events, void *arg)
{
    ob_http_t *h = arg;
    int mask = 0, running = 0;
    if (events & OB_IO_READ)
        mask |= CURL_CSELECT_IN;
    if (events & OB_IO_WRITE)
        mask |= CURL_CSELECT_OUT;
    if (events & OB_IO_ERROR)
        mask |= CURL_CSELECT_ERR;
    curl_multi_socket_action(h->multi, fd, mask, &running);
    drain(h);
}

static void timer_fired(ob_timer_t *t, void *arg)
{
    ob_http_t *h = arg;
    int running = 0;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain(h);
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
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            ob_errf(errstr, errstr_size, OB_ERR_HTTP, "curl_global_init failed");
            return NULL;
        }
        global_done = 1;
    }
    ob_http_t *h = calloc(1, sizeof(*h));
    if (!h) {
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        return NULL;
    }
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
    while (h->qhead) {
        ob_http_xfer_t *x = h->qhead;
        xfer_unlink(x);
        h->nqueued--;
        x->resp.err = OB_ERR_CANCELLED;
        x->resp.status = 0;
        snprintf(x->resp.errmsg, sizeof(x->resp.errmsg), "HTTP client shut down");
        x->cb(&x->resp, x->arg);
        xfer_free(x);
    }
    while (h->xfers) {
        ob_http_xfer_t *x = h->xfers;
        xfer_unlink(x);
        h->active--;
        x->resp.err = OB_ERR_CANCELLED;
        x->resp.status = 0;
        snprintf(x->resp.errmsg, sizeof(x->resp.errmsg), "HTTP client shut down");
        x->cb(&x->resp, x->arg);
        xfer_free(x);
    }
    if (h->multi)
        curl_multi_cleanup(h->multi);
    ob_timer_free(h->timer);
    free(h);
}

ob_http_xfer_t *ob_http_send(ob_http_t *h, const ob_http_req_t *req, ob_http_cb *cb, void *arg,
                             char *errstr, size_t errstr_size)
{
    ob_http_xfer_t *x = calloc(1, sizeof(*x));
    if (!x) {
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    x->h = h;
    x->cb = cb;
    x->arg = arg;
    x->max_body = req->max_body ? req->max_body : h->opts.max_body;
    x->easy = curl_easy_init();
    if (!x->easy) {
        free(x);
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "cannot create a curl handle");
        return NULL;
    }
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->curl_err);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms ? req->timeout_ms : h->opts.timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     req->connect_timeout_ms ? req->connect_timeout_ms
                                             : h->opts.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, h->user_agent);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL);
    /* Signed requests must go out exactly as signed: no redirects followed,
     * and no "./" or "../" squashed out of the path (S3 signs it as is). */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);

    const char *method = req->method ? req->method : "GET";
    int has_ct = 0;
    if (req->headers) {
        for (size_t i = 0; i < req->headers->n; i++) {
            const ob_hdr_t *hd = &req->headers->v[i];
            if (!strcasecmp(hd->name, "Content-Type"))
                has_ct = 1;
            char line[8448];
            /* "Name;" sends a header with an empty value in curl. */
            if (hd->value[0])
                snprintf(line, sizeof(line), "%s: %s", hd->name, hd->value);
            else
                snprintf(line, sizeof(line), "%s;", hd->name);
            struct curl_slist *ns = curl_slist_append(x->slist, line);
            if (!ns)
                goto nomem;
            x->slist = ns;
        }
    }
    /* Never send "Expect: 100-continue"; and no form content type curl would
     * add on its own to a body we did not describe. */
    struct curl_slist *ns = curl_slist_append(x->slist, "Expect:");
    if (!ns)
        goto nomem;
    x->slist = ns;
    if (!has_ct) {
        ns = curl_slist_append(x->slist, "Content-Type:");
        if (!ns)
            goto nomem;
        x->slist = ns;
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->slist);

    if (!strcmp(method, "HEAD")) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(method, "GET") && req->body_len == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        x->body = malloc(req->body_len + 1);
        if (!x->body)
            goto nomem;
        if (req->body_len)
            memcpy(x->body, req->body, req->body_len);
        x->body[req->body_len] = '\0';
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }

    if (h->qhead || (h->opts.max_transfers > 0 && (long)h->active >= h->opts.max_transfers)) {
        /* No free slot: wait in line (FIFO), the handle not yet given to curl. */
        x->queued = 1;
        x->prev = h->qtail;
        if (h->qtail)
            h->qtail->next = x;
        else
            h->qhead = x;
        h->qtail = x;
        h->nqueued++;
        return x;
    }
    if (start_xfer(h, x, errstr, errstr_size) != OB_OK) {
        xfer_free(x);
        return NULL;
    }
    return x;

nomem:
    ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->slist);
    free(x->body);
    free(x);
    return NULL;
}

void ob_http_cancel(ob_http_xfer_t *x)
{
    if (!x)
        return;
    ob_http_t *h = x->h;
    int was_running = !x->queued;
    xfer_unlink(x);
    if (was_running)
        h->active--;
    else
        h->nqueued--;
    xfer_free(x);
    if (was_running)
        admit(h);
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
