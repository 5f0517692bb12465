/*
 * ob_metrics: the Prometheus text exposition format (version 0.0.4), written
 * into a buffer, and a fixed-bucket histogram.
 *
 *   ob_metrics_t m;
 *   ob_metrics_begin(&m, &buf);
 *   ob_metrics_family(&m, "onboard_accounts_total", "counter", "Accounts finished.");
 *   const char *l[] = {"stage", "iam", "result", "done", NULL};
 *   ob_metrics_sample(&m, "onboard_accounts_total", l, 42);
 *
 * Label values are escaped (backslash, double quote, newline); HELP text too.
 * A family's HELP and TYPE lines are written once, before its samples, and
 * all samples of a family must follow it (the format requires it).
 *
 * Ownership: the writer borrows the buffer. Threading: one writer per thread.
 */
#ifndef OB_METRICS_H
#define OB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "ob_buf.h"

typedef struct ob_metrics_s {
    ob_buf_t *out;
} ob_metrics_t;

void ob_metrics_begin(ob_metrics_t *m, ob_buf_t *out);
/* type: "counter", "gauge" or "histogram". */
void ob_metrics_family(ob_metrics_t *m, const char *name, const char *type, const char *help);
/* labels: NULL or NULL-terminated name, value pairs. */
void ob_metrics_sample(ob_metrics_t *m, const char *name, const char *const *labels, double value);

#define OB_HISTOGRAM_MAX_BUCKETS 24

typedef struct ob_histogram_s {
    const double *bounds; /* upper bounds, increasing (borrowed, usually static) */
    size_t n;             /* at most OB_HISTOGRAM_MAX_BUCKETS */
    uint64_t counts[OB_HISTOGRAM_MAX_BUCKETS]; /* per bucket, not cumulative */
    uint64_t count;                            /* all observations (+Inf) */
    double sum;
} ob_histogram_t;

void ob_histogram_init(ob_histogram_t *h, const double *bounds, size_t n);
void ob_histogram_observe(ob_histogram_t *h, double v);
/* name_bucket{labels,le="..."} (cumulative), name_sum, name_count. */
void ob_metrics_histogram(ob_metrics_t *m, const char *name, const char *const *labels,
                          const ob_histogram_t *h);

#endif
