/*
 * ob_probes: /metrics, /healthz and /readyz (see ob_probes.h).
 */
#include "ob_probes.h"

#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"
#include "ob_httpd.h"

struct ob_probes_s {
    ob_httpd_t *httpd;
    ob_probes_metrics_fn *metrics;
    ob_probes_ready_fn *ready;
    void *arg;
};

static void on_request(ob_httpd_conn_t *conn, const ob_httpd_req_t *req, void *arg)
{
    ob_probes_t *p = arg;
    ob_hdrs_t h = {0};
    ob_buf_t body = {0};
    int status = 200;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        status = 405;
        ob_hdrs_add(&h, "Allow", "GET, HEAD");
        ob_buf_puts(&body, "method not allowed\n");
    } else if (!strcmp(req->path, "/metrics")) {
        ob_hdrs_add(&h, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        p->metrics(p->arg, &body);
    } else if (!strcmp(req->path, "/healthz")) {
        ob_buf_puts(&body, "ok\n");
    } else if (!strcmp(req->path, "/readyz")) {
        char why[256] = "";
        status = p->ready(p->arg, why, sizeof(why)) ? 200 : 503;
        ob_buf_printf(&body, "%s\n", why);
    } else {
        status = 404;
        ob_buf_puts(&body, "not found: /metrics, /healthz, /readyz\n");
    }
    if (!ob_hdrs_get(&h, "Content-Type"))
        ob_hdrs_add(&h, "Content-Type", "text/plain; charset=utf-8");
    ob_httpd_respond(conn, status, &h, body.data, body.len);
    ob_hdrs_clear(&h);
    ob_buf_free(&body);
}

ob_probes_t *ob_probes_new(ob_loop_t *loop, const char *bind, int port, const char *server_name,
                           ob_probes_metrics_fn *metrics, ob_probes_ready_fn *ready, void *arg,
                           char *errstr, size_t errstr_size)
{
    ob_probes_t *p = ob_calloc(1, sizeof(*p));
    *p = (ob_probes_t){NULL, metrics, ready, arg};
    ob_httpd_opts_t o = {.bind_addr = bind,
                         .port = port,
                         .max_connections = 64,
                         .max_per_peer = 16,
                         .reuse_idle = 1,
                         .idle_timeout_ms = 15000,
                         .request_timeout_ms = 5000,
                         .max_header_bytes = 16384,
                         .max_body_bytes = 4096,
                         .server_name = server_name};
    p->httpd = ob_httpd_new(loop, &o, on_request, p, errstr, errstr_size);
    if (!p->httpd) {
        free(p);
        return NULL;
    }
    return p;
}

int ob_probes_port(const ob_probes_t *p)
{
    return ob_httpd_port(p->httpd);
}

void ob_probes_free(ob_probes_t *p)
{
    if (!p)
        return;
    ob_httpd_free(p->httpd);
    free(p);
}
