/*
 * ob_http: HTTP requests on the event loop through curl's multi_socket API.
 *
 * Any number of requests run at once on one thread: curl tells us which
 * sockets to watch and when its next timeout is due; the loop calls back into
 * curl when a socket is ready or the timer fires; finished transfers are
 * collected in one place and their callbacks run there. Connections are
 * reused through curl's connection cache (keep-alive), bounded by
 * max_connections.
 *
 * Every request has a total deadline (connect included) and a reply body
 * limit, so a slow, silent or hostile server costs at most the deadline and
 * the limit in memory. Transport failures map to project codes:
 * OB_ERR_TIMEOUT (deadline), OB_ERR_CONN (refused, reset, closed early,
 * nothing received), OB_ERR_TOO_LARGE (body over the limit), OB_ERR_HTTP
 * (anything else). An HTTP error status is not a transport failure: it comes
 * back as err OB_OK with the status set.
 *
 * Ownership: ob_http_send() copies everything in the request; the caller may
 * free it at once. The response passed to a callback is valid only during the
 * callback (take what you need: ob_http_resp_take_body()). A callback may
 * start new requests. ob_http_cancel() stops a transfer without calling its
 * callback. ob_http_free() cancels everything still running (callbacks are
 * called with OB_ERR_CANCELLED) and must run before ob_loop_free().
 *
 * Threading: loop thread only.
 */
#ifndef OB_HTTP_H
#define OB_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "ob_buf.h"
#include "ob_err.h"
#include "ob_loop.h"

typedef struct ob_http_s ob_http_t;
typedef struct ob_http_xfer_s ob_http_xfer_t;

typedef struct ob_http_opts_s {
    long timeout_ms;         /* default total deadline per request (0: 30 s) */
    long connect_timeout_ms; /* default connect deadline (0: 5 s) */
    size_t max_body;         /* default reply body limit (0: 8 MiB) */
    long max_connections;    /* total concurrent connections (0: 256) */
    long max_transfers;      /* transfers handed to curl at once; more wait in a FIFO, their
                              * deadlines starting when they start (0: no limit). Each
                              * running transfer holds curl's buffers, and curl's per-handle
                              * bookkeeping grows with their number: bound it. A waiting
                              * transfer holds only its request; curl easy handles are kept
                              * idle (at most this many) and reused. */
    const char *user_agent;  /* NULL: "onboard/<version>" */
} ob_http_opts_t;

typedef struct ob_http_req_s {
    const char *method; /* "GET", "PUT", "POST", "HEAD", "DELETE" */
    const char *url;
    const ob_hdrs_t *headers; /* may be NULL */
    const void *body;
    size_t body_len;
    /* 1: body outlives the transfer (until its callback runs or it is
     * cancelled), so the transfer points at it instead of keeping a copy. */
    int body_kept;
    long timeout_ms;         /* 0: the client's default */
    long connect_timeout_ms; /* 0: the client's default */
    size_t max_body;         /* 0: the client's default */
    /* When transfers wait for a slot (max_transfers), the lowest value starts
     * first, in arrival order within one value (all 0: first come, first
     * served). Workers pass their message's arrival order, so the accounts
     * that came first finish first instead of all advancing together. */
    uint64_t priority;
} ob_http_req_t;

typedef struct ob_http_resp_s {
    ob_err_t err;        /* OB_OK when an HTTP reply was received */
    char errmsg[256];    /* why, when err != OB_OK */
    long status;         /* HTTP status, 0 when none was received */
    ob_hdrs_t headers;   /* reply headers of the final response */
    ob_buf_t body;       /* reply body (NUL-terminated) */
    uint64_t elapsed_ms; /* time from send to completion */
} ob_http_resp_t;

typedef void(ob_http_cb)(ob_http_resp_t *resp, void *arg);

ob_http_t *ob_http_new(ob_loop_t *loop, const ob_http_opts_t *opts, char *errstr,
                       size_t errstr_size);
void ob_http_free(ob_http_t *h);

/* Start a request. Returns a handle usable with ob_http_cancel() until the
 * callback runs, or NULL with errstr filled (the callback is then never
 * called). */
ob_http_xfer_t *ob_http_send(ob_http_t *h, const ob_http_req_t *req, ob_http_cb *cb, void *arg,
                             char *errstr, size_t errstr_size);
void ob_http_cancel(ob_http_xfer_t *x);

/* Requests currently running. */
size_t ob_http_active(const ob_http_t *h);
/* Easy handles kept idle for the next transfers: as many as ran at once lately,
 * falling a quarter of the way each second once use falls, down to
 * OB_HTTP_IDLE_HANDLES. */
#define OB_HTTP_IDLE_HANDLES 32
size_t ob_http_idle_handles(const ob_http_t *h);
/* Total requests completed (any outcome) since creation. */
uint64_t ob_http_completed(const ob_http_t *h);

/* Move the body out of a response (caller frees with ob_buf_free()). */
void ob_http_resp_take_body(ob_http_resp_t *resp, ob_buf_t *out);

#endif
