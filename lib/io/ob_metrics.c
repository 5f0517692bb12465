/*
 * ob_metrics: Prometheus text exposition (see ob_metrics.h).
 */
#include "ob_metrics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void ob_metrics_begin(ob_metrics_t *m, ob_buf_t *out)
{
    m->out = out;
}

static void escape(ob_buf_t *b, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            ob_buf_puts(b, "\\\\");
        else if (*s == '\n')
            ob_buf_puts(b, "\\n");
        else if (*s == '"' && quote)
            ob_buf_puts(b, "\\\"");
        else
            ob_buf_append(b, s, 1);
    }
}

void ob_metrics_family(ob_metrics_t *m, const char *name, const char *type, const char *help)
{
    ob_buf_printf(m->out, "# HELP %s ", name);
    escape(m->out, help, 0);
    ob_buf_printf(m->out, "\n# TYPE %s %s\n", name, type);
}

static void labels_out(ob_buf_t *b, const char *const *labels, const char *le)
{
    int any = 0;
    for (size_t i = 0; labels && labels[i] && labels[i + 1]; i += 2) {
        ob_buf_puts(b, any ? "," : "{");
        ob_buf_printf(b, "%s=\"", labels[i]);
        escape(b, labels[i + 1], 1);
        ob_buf_puts(b, "\"");
        any = 1;
    }
    if (le) {
        ob_buf_printf(b, "%sle=\"%s\"", any ? "," : "{", le);
        any = 1;
    }
    if (any)
        ob_buf_puts(b, "}");
}

static void value_out(ob_buf_t *b, double v)
{
    if (isnan(v))
        ob_buf_puts(b, " NaN\n");
    else if (isinf(v))
        ob_buf_puts(b, v > 0 ? " +Inf\n" : " -Inf\n");
    else if (v == (double)(int64_t)v && (v < 0 ? -v : v) < 9e15)
        ob_buf_printf(b, " %lld\n", (long long)v);
    else
        ob_buf_printf(b, " %.10g\n", v);
}

void ob_metrics_sample(ob_metrics_t *m, const char *name, const char *const *labels, double value)
{
    ob_buf_puts(m->out, name);
    labels_out(m->out, labels, NULL);
    value_out(m->out, value);
}

void ob_histogram_init(ob_histogram_t *h, const double *bounds, size_t n)
{
    memset(h, 0, sizeof(*h));
    h->bounds = bounds;
    h->n = n < OB_HISTOGRAM_MAX_BUCKETS ? n : OB_HISTOGRAM_MAX_BUCKETS;
}

void ob_histogram_observe(ob_histogram_t *h, double v)
{
    for (size_t i = 0; i < h->n; i++) {
        if (v <= h->bounds[i]) {
            h->counts[i]++;
            break;
        }
    }
    h->count++;
    h->sum += v;
}

void ob_metrics_histogram(ob_metrics_t *m, const char *name, const char *const *labels,
                          const ob_histogram_t *h)
{
    char metric[256], le[64];
    uint64_t cum = 0;
    snprintf(metric, sizeof(metric), "%s_bucket", name);
    for (size_t i = 0; i < h->n; i++) {
        cum += h->counts[i];
        snprintf(le, sizeof(le), "%g", h->bounds[i]);
        ob_buf_puts(m->out, metric);
        labels_out(m->out, labels, le);
        value_out(m->out, (double)cum);
    }
    ob_buf_puts(m->out, metric);
    labels_out(m->out, labels, "+Inf");
    value_out(m->out, (double)h->count);
    snprintf(metric, sizeof(metric), "%s_sum", name);
    ob_metrics_sample(m, metric, labels, h->sum);
    snprintf(metric, sizeof(metric), "%s_count", name);
    ob_metrics_sample(m, metric, labels, (double)h->count);
}
