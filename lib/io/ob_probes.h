/*
 * ob_probes: the HTTP endpoints every process of the fleet serves on
 * metrics.port: GET (or HEAD) /metrics (Prometheus text, as the owner
 * renders it), /healthz (answering at all proves the loop turns) and
 * /readyz (200 or 503 with the owner's one-line reason). Anything else is
 * 404, another method 405.
 *
 * Whoever reaches the port must not be able to starve the probes: few
 * connections, a few per peer, short timeouts, and the oldest idle one
 * makes room for a newcomer.
 *
 * Ownership: the caller owns the server (ob_probes_free). Threading: loop
 * thread only.
 */
#ifndef OB_PROBES_H
#define OB_PROBES_H

#include <stddef.h>

#include "ob_buf.h"
#include "ob_loop.h"

typedef struct ob_probes_s ob_probes_t;

typedef void(ob_probes_metrics_fn)(void *arg, ob_buf_t *out);
/* 1 when ready; why (one line) either way. */
typedef int(ob_probes_ready_fn)(void *arg, char *why, size_t why_size);

/* Listen on bind:port (0: any free port). NULL with errstr on failure. */
ob_probes_t *ob_probes_new(ob_loop_t *loop, const char *bind, int port, const char *server_name,
                           ob_probes_metrics_fn *metrics, ob_probes_ready_fn *ready, void *arg,
                           char *errstr, size_t errstr_size);
/* The port bound. */
int ob_probes_port(const ob_probes_t *p);
/* NULL is fine. */
void ob_probes_free(ob_probes_t *p);

#endif
