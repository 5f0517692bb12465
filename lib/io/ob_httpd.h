/*
 * ob_httpd: a non-blocking HTTP/1.1 server on the event loop.
 *
 * It serves the AWS simulator (which real AWS clients talk to, and which must
 * inject faults: late replies, requests never answered, connection resets,
 * truncated bodies) and the workers' /metrics, /healthz and /readyz
 * endpoints. Every connection lives on the loop thread; there is never a
 * thread per connection.
 *
 * Requests on one connection are handled strictly one at a time: the next
 * request is parsed only once the current one has been answered and its
 * response fully written, so pipelined requests are answered in order and a
 * client that stops reading costs at most one response plus a bounded amount
 * of read-ahead. The handler may answer at once or later (from a timer, after
 * a Kafka or Redis round trip); a request never answered just stays pending
 * until the client goes away or the server is freed.
 *
 * The server itself answers malformed or refused requests with a short
 * plain-text body and closes the connection: 400 (malformed request line or
 * header, bad chunk, missing Host on HTTP/1.1, Content-Length together with
 * chunked, conflicting Content-Length), 408 (request not complete within
 * request_timeout_ms), 413 (body over max_body_bytes), 414 (request-target
 * over 8 KiB), 417 (an Expect other than 100-continue), 431 (header section
 * over max_header_bytes), 501 (a transfer coding other than chunked), 505 (not
 * HTTP/1.x). Such requests never reach the handler.
 *
 * A client that closes its side (EOF) while its request is pending is taken
 * as gone: the request's on_close callback runs and the connection is closed,
 * as Go's net/http cancels the request context. Clients that half-close after
 * sending and still expect an answer are therefore not supported.
 *
 * Ownership: the caller owns the server and must free it before the loop.
 * Everything reachable from an ob_httpd_req_t (strings, headers, body) and
 * the ob_httpd_conn_t itself belong to the server and stay valid until the
 * request is answered (ob_httpd_respond, ob_httpd_respond_truncated,
 * ob_httpd_reset) or its connection dies (the on_close callback runs, then
 * the conn is invalid). The respond functions copy what they need from their
 * arguments, which may point into the request (an echo handler is fine).
 *
 * Threading: loop thread only. ob_httpd_free() must not be called from
 * inside the server's own callbacks (handler, on_close); call it from a timer
 * or another loop callback.
 */
#ifndef OB_HTTPD_H
#define OB_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "ob_buf.h"
#include "ob_err.h"
#include "ob_loop.h"

typedef struct ob_httpd_s ob_httpd_t;
/* One request awaiting its response (internally: its connection). */
typedef struct ob_httpd_conn_s ob_httpd_conn_t;

/* Longest request-target accepted; longer ones get 414. */
#define OB_HTTPD_MAX_TARGET 8192

typedef struct ob_httpd_req_s {
    const char *method;       /* "GET" ... (case kept, methods are case-sensitive) */
    const char *target;       /* raw request-target as received, e.g. "/bucket?policy" */
    const char *path;         /* raw path part (no query, NOT percent-decoded) */
    const char *query;        /* raw query without '?', "" when none */
    const ob_hdrs_t *headers; /* as received, order kept; chunked trailers appended */
    const char *body;         /* de-chunked if Transfer-Encoding: chunked; NUL-terminated */
    size_t body_len;
    const char *peer; /* "127.0.0.1:54321", "[::1]:54321" */
    int version;      /* 10 for HTTP/1.0, 11 for HTTP/1.1 */
    int keep_alive;   /* the connection stays open after the response */
} ob_httpd_req_t;

typedef void(ob_httpd_handler)(ob_httpd_conn_t *conn, const ob_httpd_req_t *req, void *arg);

/* Zero fields take the default. */
typedef struct ob_httpd_opts_s {
    const char *bind_addr;   /* numeric IPv4/IPv6 or host name; default "127.0.0.1" */
    int port;                /* 0: pick a free port (read it back with ob_httpd_port) */
    size_t max_header_bytes; /* header section (request line excluded); default 64 KiB -> 431 */
    size_t max_body_bytes;   /* default 8 MiB -> 413 */
    long idle_timeout_ms;    /* keep-alive idle close, also a stalled write; default 60 s */
    long request_timeout_ms; /* whole request must arrive within, default 30 s -> 408 + close */
    size_t max_connections;  /* default 20000; beyond: accept and close at once (but see
                              * reuse_idle) */
    size_t max_per_peer;     /* connections from one peer address (0: no limit); beyond:
                              * that peer's oldest idle one is closed to make room, or the
                              * new one when none is idle */
    int reuse_idle;          /* at max_connections, close the oldest idle connection (no
                              * request being answered: idle keep-alive, or a request still
                              * arriving) to take the new one, as nginx drains reusable
                              * connections: a crowd of idle connections cannot lock out a
                              * health check */
    const char *server_name; /* "Server:" header value, default "onboard" */
} ob_httpd_opts_t;

/* Listen and start accepting on loop. Raises RLIMIT_NOFILE to the hard limit.
 * Options are copied. Returns NULL with errstr filled on failure. */
ob_httpd_t *ob_httpd_new(ob_loop_t *loop, const ob_httpd_opts_t *opts, ob_httpd_handler *h,
                         void *arg, char *errstr, size_t errstr_size);
/* The port actually bound. */
int ob_httpd_port(const ob_httpd_t *s);
/* Close the listener and every connection; pending conns become invalid
 * (their on_close callbacks run first). NULL is fine. */
void ob_httpd_free(ob_httpd_t *s);

/* Respond (now, or later from a timer: the request and conn stay valid until
 * one of the respond/reset calls or until the client goes away). Adds
 * Content-Length (for HEAD the headers only are sent, with Content-Length
 * len as given; none for 204), Date and Server (unless headers has them), and
 * Connection. Content-Length, Transfer-Encoding and Connection in headers are
 * ignored. headers may be NULL; status must be 200..999. On success the
 * conn must not be used again (a client found gone while writing is not an
 * error: the response is dropped). Errors: OB_ERR_STATE (not pending),
 * OB_ERR_INVALID_ARG (bad status, CR/LF in a header), OB_ERR_NOMEM; on an
 * error the request is still pending. */
ob_err_t ob_httpd_respond(ob_httpd_conn_t *c, int status, const ob_hdrs_t *headers,
                          const void *body, size_t len);
/* Fault injection: advertise Content-Length len, send only the first `send`
 * bytes of the body (clamped to len), then close the connection (FIN). */
ob_err_t ob_httpd_respond_truncated(ob_httpd_conn_t *c, int status, const ob_hdrs_t *headers,
                                    const void *body, size_t len, size_t send);
/* Fault injection: close the connection with a TCP RST (SO_LINGER 0) without
 * answering. The conn is invalid afterwards. */
void ob_httpd_reset(ob_httpd_conn_t *c);
/* Told when the connection of a pending request dies (client closed or reset,
 * server freed) so async work can be cancelled. After the callback, c is
 * invalid. Not called after a respond/reset. Calling it again replaces the
 * callback; cb NULL removes it. */
void ob_httpd_on_close(ob_httpd_conn_t *c, void (*cb)(ob_httpd_conn_t *c, void *arg), void *arg);
/* The request a pending conn carries (the same pointer the handler got). */
const ob_httpd_req_t *ob_httpd_conn_request(const ob_httpd_conn_t *c);

/* Stats for benchmarks and tests. */
typedef struct ob_httpd_stats_s {
    uint64_t accepted;        /* connections accepted and served */
    uint64_t requests;        /* requests handed to the handler */
    uint64_t responses;       /* handler answers (respond and respond_truncated) */
    uint64_t resets;          /* ob_httpd_reset calls */
    uint64_t rejected;        /* connections closed at accept (max_connections) */
    uint64_t evicted;         /* idle connections closed to make room (reuse_idle,
                               * max_per_peer) */
    uint64_t protocol_errors; /* error replies the server made itself (400..505) */
    uint64_t timeouts;        /* connections closed by idle, request or write timeout */
    size_t open_connections;
    size_t pending; /* requests handed to the handler and not yet answered */
} ob_httpd_stats_t;
void ob_httpd_get_stats(const ob_httpd_t *s, ob_httpd_stats_t *out);

/* Reason phrase of a status ("Not Found"), "Unknown" if none; never NULL. */
const char *ob_httpd_reason(int status);

/*
 * For tests and fuzzing only, not for serving: run the request parser over
 * data as if it arrived on one connection in reads of at most `chunk` bytes
 * (0: all at once), each complete request answered at once. cb runs for
 * every request parsed (status 0; req and everything it points to valid
 * during the call only) and, when the server would refuse the input, once
 * more with the status of its error reply (400..505, req NULL), after which
 * the connection would close. A request without keep-alive ends the input
 * too. Of opts only the size limits are used (NULL: the defaults). Returns
 * the number of requests parsed (0 without parsing when no socket pair can
 * be had: an interim 100 Continue is written to one).
 */
typedef void(ob_httpd_test_cb)(const ob_httpd_req_t *req, int status, void *arg);
size_t ob_httpd_test_parse(const char *data, size_t len, size_t chunk, const ob_httpd_opts_t *opts,
                           ob_httpd_test_cb *cb, void *arg);

#endif
