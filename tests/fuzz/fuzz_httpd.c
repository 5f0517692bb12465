/*
 * fuzz_httpd: the HTTP server's request parser (lib/io/ob_httpd.c), through
 * ob_httpd_test_parse(): the server's own parser fed from memory, without a
 * socket or an event loop, so that a run takes microseconds.
 *
 * The input is one connection's bytes (pipelined requests welcome). It is
 * parsed twice: all at once, and in small reads (1 to 16 bytes, from the
 * input's length), as a slow client would send it. Properties:
 *   - every request handed on is one the server may hand on: a method token,
 *     a request-target without spaces or controls, HTTP/1.0 or 1.1, one Host
 *     on 1.1, header names that are tokens and values without CR, LF or NUL,
 *     a NUL-terminated body no longer than the limit;
 *   - read boundaries change nothing: the requests both runs parse are the
 *     same, and when neither run refuses the input, both parse as many (a
 *     limit checked on a partial line may refuse earlier, never differently).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "ob_httpd.h"

#define MAX_BODY   (64 * 1024)
#define MAX_HEADER (4 * 1024)

typedef struct run_s {
    ob_buf_t reqs[64]; /* the first parsed requests, serialised */
    size_t n;          /* of reqs */
    size_t total;      /* requests parsed */
    int error;         /* the status refusing the input, 0 if none */
} run_t;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void check_request(const ob_httpd_req_t *r)
{
    size_t ml = strlen(r->method);
    if (ml == 0 || ml > 32)
        fuzz_fail("method of %zu bytes", ml);
    for (size_t i = 0; i < ml; i++)
        if (!is_tchar((unsigned char)r->method[i]))
            fuzz_fail("method with 0x%02x", (unsigned char)r->method[i]);
    size_t tl = strlen(r->target);
    if (tl == 0 || tl > OB_HTTPD_MAX_TARGET)
        fuzz_fail("request-target of %zu bytes", tl);
    for (size_t i = 0; i < tl; i++)
        if ((unsigned char)r->target[i] <= 0x20 || r->target[i] == 0x7f)
            fuzz_fail("request-target with 0x%02x", (unsigned char)r->target[i]);
    if (!r->path[0] || strchr(r->path, '?'))
        fuzz_fail("path \"%s\" of \"%s\"", r->path, r->target);
    if (r->version != 10 && r->version != 11)
        fuzz_fail("HTTP version %d", r->version);
    size_t hosts = 0;
    for (size_t i = 0; i < r->headers->n; i++) {
        const char *name = r->headers->v[i].name, *value = r->headers->v[i].value;
        if (!*name)
            fuzz_fail("an empty header name");
        for (const char *p = name; *p; p++)
            if (!is_tchar((unsigned char)*p))
                fuzz_fail("header name with 0x%02x", (unsigned char)*p);
        if (strpbrk(value, "\r\n"))
            fuzz_fail("header value with CR or LF");
        if (value[0] == ' ' || value[0] == '\t')
            fuzz_fail("header value not trimmed");
        hosts += strcasecmp(name, "Host") == 0;
    }
    if (r->version == 11 && hosts != 1)
        fuzz_fail("HTTP/1.1 request with %zu Host headers", hosts);
    if (r->body_len > MAX_BODY)
        fuzz_fail("body of %zu bytes over the limit", r->body_len);
    if (r->body[r->body_len] != '\0')
        fuzz_fail("body not NUL-terminated");
}

static void on_request(const ob_httpd_req_t *req, int status, void *arg)
{
    run_t *run = arg;
    if (!req) {
        if (status < 400 || status > 505)
            fuzz_fail("refused with status %d", status);
        run->error = status;
        return;
    }
    check_request(req);
    run->total++;
    if (run->n == sizeof(run->reqs) / sizeof(run->reqs[0]))
        return;
    ob_buf_t *b = &run->reqs[run->n++];
    int ok = ob_buf_printf(b, "%s %s %s ? %s HTTP/%d ka=%d\n", req->method, req->target, req->path,
                           req->query, req->version, req->keep_alive) == OB_OK;
    for (size_t i = 0; ok && i < req->headers->n; i++)
        ok = ob_buf_printf(b, "%s: %s\n", req->headers->v[i].name, req->headers->v[i].value) ==
             OB_OK;
    ok = ok && ob_buf_printf(b, "\n%zu\n", req->body_len) == OB_OK &&
         ob_buf_append(b, req->body, req->body_len) == OB_OK;
    if (!ok)
        fuzz_fail("out of memory");
}

static void run_free(run_t *run)
{
    for (size_t i = 0; i < run->n; i++)
        ob_buf_free(&run->reqs[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ob_httpd_opts_t opts = {.max_header_bytes = MAX_HEADER, .max_body_bytes = MAX_BODY};
    run_t whole = {0}, slow = {0};
    size_t chunk = 1 + size % 16;
    size_t nw = ob_httpd_test_parse((const char *)data, size, 0, &opts, on_request, &whole);
    size_t ns = ob_httpd_test_parse((const char *)data, size, chunk, &opts, on_request, &slow);
    if (nw != whole.total || ns != slow.total)
        fuzz_fail("request counts disagree with the callbacks");
    size_t common = whole.n < slow.n ? whole.n : slow.n;
    for (size_t i = 0; i < common; i++)
        if (whole.reqs[i].len != slow.reqs[i].len ||
            memcmp(whole.reqs[i].data, slow.reqs[i].data, whole.reqs[i].len) != 0)
            fuzz_fail("request %zu parses differently in %zu-byte reads:\n%s\n---\n%s", i, chunk,
                      whole.reqs[i].data, slow.reqs[i].data);
    if (!whole.error && !slow.error && whole.total != slow.total)
        fuzz_fail("%zu requests at once, %zu in %zu-byte reads", whole.total, slow.total, chunk);
    run_free(&whole);
    run_free(&slow);
    return 0;
}
