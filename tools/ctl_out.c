/*
 * ctl_out: what onboardctl writes for people and for programs: JSON
 * documents on stdout, and the progress line on a terminal (see ctl.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

void ctl_json_begin(ctl_t *c, const char *rows_key)
{
    c->json_rows = 0;
    printf("{\"%s\":[", rows_key);
}

void ctl_json_row(ctl_t *c, json_t *row)
{
    char *s = row ? json_dumps(row, JSON_COMPACT) : NULL;
    if (s)
        printf("%s%s", c->json_rows++ ? "," : "", s);
    free(s);
    json_decref(row);
}

void ctl_json_end(ctl_t *c, json_t *summary)
{
    char *s = json_object_size(summary) ? json_dumps(summary, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    /* The summary's members go on after the rows: its text without its "{". */
    if (s)
        printf("],%s\n", s + 1);
    else
        printf("]}\n");
    free(s);
    json_decref(summary);
    c->json_rows = 0;
}

void ctl_json_print(json_t *doc)
{
    char *s = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    printf("%s\n", s ? s : "null");
    free(s);
    json_decref(doc);
}

/* ---- the progress line ---- */

/* One per process: there is one stderr. */
static struct {
    int on;     /* started, and stderr is a terminal */
    int drawn;  /* the line is on the screen */
    size_t len; /* of what was drawn */
    char label[96];
    size_t total;
    uint64_t start_ms, drawn_ms;
} P;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* n with thousands separators: 12,000. */
static const char *grouped(size_t n, char *buf, size_t size)
{
    char digits[32];
    int len = snprintf(digits, sizeof(digits), "%zu", n);
    size_t k = 0;
    for (int i = 0; i < len && k + 2 < size; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            buf[k++] = ',';
        buf[k++] = digits[i];
    }
    buf[k] = '\0';
    return buf;
}

static void draw(size_t done)
{
    uint64_t now = mono_ms();
    double secs = (double)(now - P.start_ms) / 1000.0;
    char d[32], t[32], r[48] = "", line[256];
    if (secs >= 0.001) {
        char g[32];
        snprintf(r, sizeof(r), " (%s/s)", grouped((size_t)((double)done / secs), g, sizeof(g)));
    }
    int n;
    if (P.total)
        n = snprintf(line, sizeof(line), "%s %s of %s%s", P.label, grouped(done, d, sizeof(d)),
                     grouped(P.total, t, sizeof(t)), r);
    else
        n = snprintf(line, sizeof(line), "%s %s%s", P.label, grouped(done, d, sizeof(d)), r);
    size_t len = n < 0 ? 0 : (size_t)n >= sizeof(line) ? sizeof(line) - 1 : (size_t)n;
    /* Over what was there: spaces where the new line is shorter. */
    fprintf(stderr, "\r%s%*s", line, P.len > len ? (int)(P.len - len) : 0, "");
    if (P.len > len)
        fprintf(stderr, "\r%s", line);
    fflush(stderr);
    P.len = len;
    P.drawn = 1;
    P.drawn_ms = now;
}

void ctl_progress_start(const char *label, size_t total)
{
    ctl_progress_clear();
    memset(&P, 0, sizeof(P));
    P.on = isatty(STDERR_FILENO);
    snprintf(P.label, sizeof(P.label), "%s", label);
    P.total = total;
    P.start_ms = mono_ms();
    if (P.on)
        draw(0);
}

void ctl_progress(size_t done)
{
    if (P.on && (!P.drawn || mono_ms() - P.drawn_ms >= 100))
        draw(done);
}

void ctl_progress_clear(void)
{
    if (!P.on || !P.drawn)
        return;
    fflush(stdout);
    fprintf(stderr, "\r%*s\r", (int)P.len, "");
    fflush(stderr);
    P.drawn = 0;
    P.len = 0;
}

void ctl_progress_stop(void)
{
    ctl_progress_clear();
    P.on = 0;
}

void ctl_progress_end(size_t done)
{
    if (!P.on)
        return;
    draw(done);
    fputc('\n', stderr);
    P.on = 0;
    P.drawn = 0;
}
