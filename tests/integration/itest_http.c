/*
 * HTTP client on the loop against a real local server (tests/tools/http_server.py):
 * concurrency through curl multi, echo of method/headers/body, status codes,
 * deadline on a silent server, connection reset, truncated body, body limit,
 * cancel, shutdown with requests in flight, and reuse of curl easy handles
 * (no request's options, headers or body leak into the next one).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <curl/curl.h>
#include <dlfcn.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_http.h"
#include "testutil.h"

static char base[128];
static pid_t server = -1;

/* Count the easy handles ob_http creates and destroys: these definitions take
 * the place of libcurl's for this executable and call through to them. */
static unsigned long easy_inits, easy_cleanups;

CURL *curl_easy_init(void)
{
    static CURL *(*real)(void);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "curl_easy_init");
    easy_inits++;
    return real();
}

void curl_easy_cleanup(CURL *e)
{
    static void (*real)(CURL *);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "curl_easy_cleanup");
    if (e)
        easy_cleanups++;
    real(e);
}

/* One exchange's outcome: ob_test_http_reply fills it. */
typedef ob_test_http_t result_t;

static int setup(void **state)
{
    char *argv[] = {(char *)"python3", (char *)OB_TEST_TOOLS "/http_server.py", NULL};
    char port[32];
    server = ob_test_spawn(argv, port, sizeof(port));
    if (server < 0)
        return -1;
    snprintf(base, sizeof(base), "http://127.0.0.1:%s", port);
    return 0;
}

static int teardown(void **state)
{
    ob_test_kill(server);
    return 0;
}

static void test_echo_and_headers(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_http_t *h = ob_http_new(loop, NULL, NULL, 0);
    ob_hdrs_t hd = {0};
    ob_hdrs_add(&hd, "X-Amz-Target", "AWSOrigamiServiceGatewayService.PutReportDefinition");
    ob_hdrs_add(&hd, "Content-Type", "application/x-amz-json-1.1");
    char url[256];
    snprintf(url, sizeof(url), "%s/echo?a=1", base);
    const char *body = "{\"MaxResults\":5}";
    ob_http_req_t req = {
        .method = "POST", .url = url, .headers = &hd, .body = body, .body_len = strlen(body)};
    result_t r;
    ob_test_http_send(loop, h, &req, 10000, &r);
    assert_int_equal(r.err, OB_OK);
    assert_int_equal(r.status, 200);
    json_t *j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(j, "body")), body);
    json_t *jh = json_object_get(j, "headers");
    assert_string_equal(json_string_value(json_object_get(jh, "x-amz-target")),
                        "AWSOrigamiServiceGatewayService.PutReportDefinition");
    assert_string_equal(json_string_value(json_object_get(jh, "content-type")),
                        "application/x-amz-json-1.1");
    /* We disable Expect: 100-continue. */
    assert_null(json_object_get(jh, "expect"));
    assert_string_equal(r.content_type, "application/json");
    json_decref(j);
    free(r.body);

    /* PUT with an empty body and no content type: no form content type sneaks in. */
    snprintf(url, sizeof(url), "%s/echo", base);
    ob_http_req_t put = {.method = "PUT", .url = url};
    ob_test_http_send(loop, h, &put, 10000, &r);
    j = json_loads(r.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "PUT");
    jh = json_object_get(j, "headers");
    assert_null(json_object_get(jh, "content-type"));
    assert_string_equal(json_string_value(json_object_get(jh, "content-length")), "0");
    json_decref(j);
    free(r.body);

    /* HEAD: status without a body. */
    ob_http_req_t head = {.method = "HEAD", .url = url};
    ob_test_http_send(loop, h, &head, 10000, &r);
    assert_int_equal(r.err, OB_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    free(r.body);

    ob_hdrs_clear(&hd);
    ob_http_free(h);
    ob_loop_free(loop);
}

/* body_kept: the transfer sends the caller's bytes as they are when it runs
 * (no copy is kept); without it, the bytes as they were at ob_http_send. */
static void test_body_kept(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_http_t *h = ob_http_new(loop, NULL, NULL, 0);
    char url[256];
    snprintf(url, sizeof(url), "%s/echo", base);
    char kept[] = "{\"v\":\"before\"}", copied[] = "{\"v\":\"before\"}";
    ob_http_req_t a = {
        .method = "POST", .url = url, .body = kept, .body_len = strlen(kept), .body_kept = 1};
    ob_http_req_t b = {.method = "POST", .url = url, .body = copied, .body_len = strlen(copied)};
    result_t ra, rb;
    memset(&ra, 0, sizeof(ra));
    memset(&rb, 0, sizeof(rb));
    assert_non_null(ob_http_send(h, &a, ob_test_http_reply, &ra, NULL, 0));
    assert_non_null(ob_http_send(h, &b, ob_test_http_reply, &rb, NULL, 0));
    /* Nothing went out yet: the loop has not run. Same length, new bytes. */
    memcpy(strstr(kept, "before"), "after!", 6);
    memcpy(strstr(copied, "before"), "after!", 6);
    for (int t = 0; t < 100 && !(ra.done && rb.done); t++)
        ob_loop_run_once(loop, 100);
    assert_true(ra.done && rb.done);
    result_t both[2];
    both[0] = ra;
    both[1] = rb;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(both[i].err, OB_OK);
        json_t *j = json_loads(both[i].body, 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "body")),
                            i == 0 ? "{\"v\":\"after!\"}" : "{\"v\":\"before\"}");
        json_decref(j);
        free(both[i].body);
    }
    ob_http_free(h);
    ob_loop_free(loop);
}

static void test_status_is_not_transport_error(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_http_t *h = ob_http_new(loop, NULL, NULL, 0);
    char url[256];
    snprintf(url, sizeof(url), "%s/status/503", base);
    ob_http_req_t req = {.method = "GET", .url = url};
    result_t r;
    ob_test_http_send(loop, h, &req, 10000, &r);
    assert_int_equal(r.err, OB_OK);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "{\"status\":503}");
    free(r.body);
    ob_http_free(h);
    ob_loop_free(loop);
}

#define NCONC 64

static int all_done(void *arg)
{
    result_t *rs = arg;
    for (int i = 0; i < NCONC; i++)
        if (!rs[i].done)
            return 0;
    return 1;
}

typedef struct all_s {
    result_t *rs;
    int n;
} all_t;

static int all_done_n(void *arg)
{
    all_t *a = arg;
    for (int i = 0; i < a->n; i++)
        if (!a->rs[i].done)
            return 0;
    return 1;
}

/* 64 requests that each take 300 ms at the server must be in flight at once:
 * the server itself reports the peak it saw. */
static void test_concurrency(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_http_t *h = ob_http_new(loop, NULL, NULL, 0);
    static result_t rs[NCONC];
    memset(rs, 0, sizeof(rs));
    char url[256];
    snprintf(url, sizeof(url), "%s/slow?ms=300", base);
    ob_http_req_t req = {.method = "GET", .url = url};
    for (int i = 0; i < NCONC; i++)
        assert_non_null(ob_http_send(h, &req, ob_test_http_reply, &rs[i], NULL, 0));
    assert_int_equal(ob_http_active(h), NCONC);
    assert_true(ob_test_run_until(loop, all_done, rs, 30000));
    for (int i = 0; i < NCONC; i++) {
        assert_int_equal(rs[i].err, OB_OK);
        assert_int_equal(rs[i].status, 200);
        free(rs[i].body);
    }
    assert_int_equal(ob_http_active(h), 0);
    assert_true(ob_http_completed(h) >= NCONC);
    /* The burst's handles are kept for the next burst... */
    assert_int_equal(ob_http_idle_handles(h), NCONC);

    snprintf(url, sizeof(url), "%s/stats", base);
    ob_http_req_t st = {.method = "GET", .url = url};
    result_t r;
    ob_test_http_send(loop, h, &st, 10000, &r);
    json_t *j = json_loads(r.body, 0, NULL);
    long peak = (long)json_integer_value(json_object_get(j, "peak"));
    printf("server saw a peak of %ld concurrent requests\n", peak);
    assert_true(peak >= NCONC / 2);
    json_decref(j);
    free(r.body);
    /* ...and let go of within seconds once bursts stop: the next transfer to
     * end finds the mark fallen (64, 48, 36, 27: a few kept). */
    ob_test_run_for(loop, 3100);
    ob_test_http_send(loop, h, &st, 10000, &r);
    free(r.body);
    assert_int_equal(ob_http_idle_handles(h), OB_HTTP_IDLE_HANDLES);
    ob_http_free(h);
    ob_loop_free(loop);
}

static long server_peak(ob_http_t *h, ob_loop_t *loop)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/stats?clear=1", base);
    ob_http_req_t st = {.method = "GET", .url = url};
    result_t r;
    ob_test_http_send(loop, h, &st, 10000, &r);
    json_t *j = json_loads(r.body, 0, NULL);
    long peak = (long)json_integer_value(json_object_get(j, "peak"));
    json_decref(j);
    free(r.body);
    return peak;
}

/* max_transfers: at most that many requests reach the server at once, the
 * rest wait in order and all complete; a waiting one can be cancelled (never
 * called back); the client's shutdown calls the waiting ones back as
 * cancelled. */
static void test_transfer_limit(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_http_opts_t o = {.max_transfers = 4};
    ob_http_t *h = ob_http_new(loop, &o, NULL, 0);
    server_peak(h, loop);
    static result_t rs[24];
    memset(rs, 0, sizeof(rs));
    char url[256];
    snprintf(url, sizeof(url), "%s/slow?ms=200", base);
    ob_http_req_t req = {.method = "GET", .url = url};
    ob_http_xfer_t *xs[24];
    for (int i = 0; i < 24; i++)
        assert_non_null(xs[i] = ob_http_send(h, &req, ob_test_http_reply, &rs[i], NULL, 0));
    assert_int_equal(ob_http_active(h), 4);
    ob_http_cancel(xs[10]); /* waiting */
    rs[10].done = 1;        /* for all_done: it is never called back */
    uint64_t t0 = ob_loop_update_time(loop);
    assert_true(ob_test_run_until(loop, all_done_n, &(all_t){rs, 24}, 30000));
    uint64_t took = ob_loop_update_time(loop) - t0;
    for (int i = 0; i < 24; i++) {
        if (i == 10)
            continue;
        assert_int_equal(rs[i].err, OB_OK);
        assert_int_equal(rs[i].status, 200);
        free(rs[i].body);
    }
    assert_null(rs[10].body);
    long peak = server_peak(h, loop);
    printf("23 requests, at most 4 at once: %llu ms, server peak %ld\n", (unsigned long long)took,
           peak);
    assert_true(peak <= 4);
    assert_true(took >= 5 * 200); /* 23 in waves of 4 */

    /* Shutdown with requests waiting: every one is called back as cancelled. */
    result_t a[6];
    memset(a, 0, sizeof(a));
    for (int i = 0; i < 6; i++)
        assert_non_null(ob_http_send(h, &req, ob_test_http_reply, &a[i], NULL, 0));
    ob_http_free(h);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(a[i].done, 1);
        assert_int_equal(a[i].err, OB_ERR_CANCELLED);
        free(a[i].body);
    }
    ob_loop_free(loop);
}

/* Transfers waiting for a slot start lowest priority first, in arrival
 * order within one; a waiting one cancelled leaves the order intact. */
static int prio_order[16], prio_n;

static void on_prio(ob_http_resp_t *resp, void *arg)
{
    (void)resp;
    prio_order[prio_n++] = (int)(intptr_t)arg;
}

static int prio_all(void *arg)
{
    return prio_n >= *(int *)arg;
}

static void test_priority_order(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_http_opts_t o = {.max_transfers = 1};
    ob_http_t *h = ob_http_new(loop, &o, NULL, 0);
    char slow[256], fast[256];
    snprintf(slow, sizeof(slow), "%s/slow?ms=200", base);
    snprintf(fast, sizeof(fast), "%s/slow?ms=1", base);
    prio_n = 0;
    ob_http_req_t first = {.method = "GET", .url = slow, .priority = 100};
    assert_non_null(ob_http_send(h, &first, on_prio, (void *)(intptr_t)100, NULL, 0));
    /* index i has priority prio[i]; the 100 above holds the only slot */
    static const uint64_t prio[] = {5, 3, 9, 3, 1, 7, 1, 5, 2};
    ob_http_xfer_t *xs[9];
    for (int i = 0; i < 9; i++) {
        ob_http_req_t r = {.method = "GET", .url = fast, .priority = prio[i]};
        assert_non_null(xs[i] = ob_http_send(h, &r, on_prio, (void *)(intptr_t)i, NULL, 0));
    }
    ob_http_cancel(xs[8]); /* the 2, waiting */
    int want_n = 9;
    assert_true(ob_test_run_until(loop, prio_all, &want_n, 30000));
    static const int want[] = {100, 4, 6, 1, 3, 0, 7, 5, 2};
    for (int i = 0; i < 9; i++)
        assert_int_equal(prio_order[i], want[i]);
    ob_http_free(h);
    ob_loop_free(loop);
}

static void test_timeout_on_silent_server(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_http_t *h = ob_http_new(loop, NULL, NULL, 0);
    char url[256];
    snprintf(url, sizeof(url), "%s/silent", base);
    ob_http_req_t req = {.method = "GET", .url = url, .timeout_ms = 400};
    result_t r;
    ob_test_http_send(loop, h, &req, 10000, &r);
    assert_int_equal(r.err, OB_ERR_TIMEOUT);
    assert_int_equal(r.status, 0);
    assert_true(strlen(r.errmsg) > 0);
    free(r.body);
    ob_http_free(h);
    ob_loop_free(loop);
}

static void test_reset_and_truncated(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_http_t *h = ob_http_new(loop, NULL, NULL, 0);
    char url[256];
    result_t r;
    snprintf(url, sizeof(url), "%s/reset", base);
    ob_http_req_t req = {.method = "GET", .url = url};
    ob_test_http_send(loop, h, &req, 10000, &r);
    assert_int_equal(r.err, OB_ERR_CONN);
    printf("reset: %s\n", r.errmsg);
    free(r.body);

    snprintf(url, sizeof(url), "%s/truncated", base);
    ob_test_http_send(loop, h, &req, 10000, &r);
    assert_int_equal(r.err, OB_ERR_CONN);
    assert_int_equal(r.status, 0);
    printf("truncated: %s\n", r.errmsg);
    free(r.body);

    /* Nothing listens on port 1. */
    ob_http_req_t refused = {.method = "GET", .url = "http://127.0.0.1:1/"};
    ob_test_http_send(loop, h, &refused, 10000, &r);
    assert_int_equal(r.err, OB_ERR_CONN);
    free(r.body);
    ob_http_free(h);
    ob_loop_free(loop);
}

static void test_body_limit(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_http_opts_t o = {.max_body = 4096};
    ob_http_t *h = ob_http_new(loop, &o, NULL, 0);
    char url[256];
    result_t r;
    snprintf(url, sizeof(url), "%s/big?n=4096", base);
    ob_http_req_t req = {.method = "GET", .url = url};
    ob_test_http_send(loop, h, &req, 10000, &r);
    assert_int_equal(r.err, OB_OK);
    assert_int_equal(r.body_len, 4096);
    free(r.body);
    snprintf(url, sizeof(url), "%s/big?n=1000000", base);
    ob_test_http_send(loop, h, &req, 10000, &r);
    assert_int_equal(r.err, OB_ERR_TOO_LARGE);
    assert_non_null(strstr(r.errmsg, "4096"));
    free(r.body);
    ob_http_free(h);
    ob_loop_free(loop);
}

static void test_cancel_and_shutdown(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_http_t *h = ob_http_new(loop, NULL, NULL, 0);
    char url[256];
    snprintf(url, sizeof(url), "%s/slow?ms=2000", base);
    ob_http_req_t req = {.method = "GET", .url = url};
    result_t a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    ob_http_xfer_t *xa = ob_http_send(h, &req, ob_test_http_reply, &a, NULL, 0);
    assert_non_null(ob_http_send(h, &req, ob_test_http_reply, &b, NULL, 0));
    for (int i = 0; i < 5; i++)
        ob_loop_run_once(loop, 20);
    ob_http_cancel(xa);
    assert_int_equal(ob_http_active(h), 1);
    ob_http_free(h); /* b is called back as cancelled */
    assert_int_equal(a.done, 0);
    assert_int_equal(b.done, 1);
    assert_int_equal(b.err, OB_ERR_CANCELLED);
    free(b.body);
    ob_loop_free(loop);
}

/* One echo request and what must come back for it. */
typedef struct echo_case_s {
    const char *method;
    const char *hdr_name, *hdr_value; /* one request header, or NULL */
    const char *ctype;                /* Content-Type sent, or NULL */
    const char *body;                 /* request body, or NULL */
} echo_case_t;

static const echo_case_t echo_cases[] = {
    {"POST", "X-Trace", "post-1", "application/json", "{\"n\":1}"},
    {"GET", NULL, NULL, NULL, NULL},
    {"PUT", "X-Other", "put-2", NULL, "second body, longer than the first one"},
    {"DELETE", NULL, NULL, NULL, NULL},
    {"POST", "X-Empty", "", "text/plain", "x"},
    {"GET", "X-Trace", "get-5", NULL, NULL},
    {"PUT", NULL, NULL, NULL, ""},
    {"POST", NULL, NULL, NULL, "{\"n\":7}"},
    {"GET", NULL, NULL, NULL, "a GET with a body"},
};
#define NECHO (sizeof(echo_cases) / sizeof(echo_cases[0]))

static void send_echo(ob_http_t *h, size_t i, int tag, result_t *r)
{
    const echo_case_t *c = &echo_cases[i % NECHO];
    ob_hdrs_t hd = {0};
    char tagv[32];
    snprintf(tagv, sizeof(tagv), "%d", tag);
    ob_hdrs_add(&hd, "X-Tag", tagv);
    if (c->hdr_name)
        ob_hdrs_add(&hd, c->hdr_name, c->hdr_value);
    if (c->ctype)
        ob_hdrs_add(&hd, "Content-Type", c->ctype);
    char url[256];
    snprintf(url, sizeof(url), "%s/echo?tag=%d", base, tag);
    ob_http_req_t req = {.method = c->method,
                         .url = url,
                         .headers = &hd,
                         .body = c->body,
                         .body_len = c->body ? strlen(c->body) : 0};
    memset(r, 0, sizeof(*r));
    char err[256];
    assert_non_null(ob_http_send(h, &req, ob_test_http_reply, r, err, sizeof(err)));
    ob_hdrs_clear(&hd); /* the client copied it */
}

/* The reply to send_echo(i, tag) is exactly that request's: method, path,
 * its own headers and body and nothing left from another request. */
static void check_echo(size_t i, int tag, const result_t *r)
{
    const echo_case_t *c = &echo_cases[i % NECHO];
    assert_int_equal(r->done, 1);
    if (r->err != OB_OK)
        printf("tag %d (%s): %s\n", tag, c->method, r->errmsg);
    assert_int_equal(r->err, OB_OK);
    assert_int_equal(r->status, 200);
    json_t *j = json_loads(r->body, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "method")), c->method);
    char path[64];
    snprintf(path, sizeof(path), "/echo?tag=%d", tag);
    assert_string_equal(json_string_value(json_object_get(j, "path")), path);
    assert_string_equal(json_string_value(json_object_get(j, "body")), c->body ? c->body : "");
    json_t *jh = json_object_get(j, "headers");
    char tagv[32];
    snprintf(tagv, sizeof(tagv), "%d", tag);
    assert_string_equal(json_string_value(json_object_get(jh, "x-tag")), tagv);
    static const char *const custom[] = {"x-trace", "x-other", "x-empty"};
    for (size_t k = 0; k < sizeof(custom) / sizeof(custom[0]); k++) {
        json_t *v = json_object_get(jh, custom[k]);
        if (c->hdr_name && !strcasecmp(c->hdr_name, custom[k])) {
            assert_non_null(v);
            assert_string_equal(json_string_value(v), c->hdr_value);
        } else {
            assert_null(v);
        }
    }
    json_t *ct = json_object_get(jh, "content-type");
    if (c->ctype)
        assert_string_equal(json_string_value(ct), c->ctype);
    else
        assert_null(ct);
    json_t *cl = json_object_get(jh, "content-length");
    if (c->body) {
        char len[32];
        snprintf(len, sizeof(len), "%zu", strlen(c->body));
        assert_string_equal(json_string_value(cl), len);
    } else if (!strcmp(c->method, "GET")) {
        assert_null(cl); /* no body carried over from an earlier request */
    } else {
        assert_string_equal(json_string_value(cl), "0");
    }
    assert_null(json_object_get(jh, "expect"));
    assert_string_equal(json_string_value(json_object_get(jh, "user-agent")),
                        "onboard/" OB_VERSION);
    json_decref(j);
}

/* One transfer at a time: every request runs on the same easy handle, reset
 * in between, and gets its own reply; a HEAD, a short deadline, a small body
 * limit or a failed transfer does not stick to the handle either. */
static void test_handle_reuse_sequential(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_http_opts_t o = {.max_transfers = 1};
    ob_http_t *h = ob_http_new(loop, &o, NULL, 0);
    unsigned long inits0 = easy_inits, cleanups0 = easy_cleanups;
    result_t r;
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < NECHO; i++) {
            int tag = round * 100 + (int)i;
            send_echo(h, i, tag, &r);
            assert_true(ob_test_run_until(loop, ob_test_http_done, &r, 10000));
            check_echo(i, tag, &r);
            free(r.body);
        }
    }
    char url[256];
    snprintf(url, sizeof(url), "%s/echo", base);
    ob_http_req_t head = {.method = "HEAD", .url = url};
    ob_test_http_send(loop, h, &head, 10000, &r);
    assert_int_equal(r.err, OB_OK);
    assert_int_equal(r.body_len, 0);
    free(r.body);
    send_echo(h, 1, 900, &r); /* a GET after the HEAD has a body again */
    assert_true(ob_test_run_until(loop, ob_test_http_done, &r, 10000));
    check_echo(1, 900, &r);
    assert_true(r.body_len > 0);
    free(r.body);

    snprintf(url, sizeof(url), "%s/silent", base);
    ob_http_req_t silent = {.method = "GET", .url = url, .timeout_ms = 300};
    ob_test_http_send(loop, h, &silent, 10000, &r);
    assert_int_equal(r.err, OB_ERR_TIMEOUT);
    free(r.body);
    snprintf(url, sizeof(url), "%s/slow?ms=600", base); /* the default deadline again */
    ob_http_req_t slow = {.method = "GET", .url = url};
    ob_test_http_send(loop, h, &slow, 10000, &r);
    assert_int_equal(r.err, OB_OK);
    assert_string_equal(r.body, "slow");
    assert_string_equal(r.errmsg, "");
    free(r.body);

    snprintf(url, sizeof(url), "%s/big?n=100", base);
    ob_http_req_t small = {.method = "GET", .url = url, .max_body = 10};
    ob_test_http_send(loop, h, &small, 10000, &r);
    assert_int_equal(r.err, OB_ERR_TOO_LARGE);
    free(r.body);
    ob_http_req_t big = {.method = "GET", .url = url};
    ob_test_http_send(loop, h, &big, 10000, &r);
    assert_int_equal(r.err, OB_OK);
    assert_int_equal(r.body_len, 100);
    free(r.body);

    snprintf(url, sizeof(url), "%s/reset", base);
    ob_http_req_t reset = {.method = "GET", .url = url};
    ob_test_http_send(loop, h, &reset, 10000, &r);
    assert_int_equal(r.err, OB_ERR_CONN);
    free(r.body);
    send_echo(h, 0, 901, &r);
    assert_true(ob_test_run_until(loop, ob_test_http_done, &r, 10000));
    check_echo(0, 901, &r);
    free(r.body);

    /* A header line longer than 8 KiB is cut as it always was (8447 bytes). */
    char *longv = malloc(9001);
    memset(longv, 'v', 9000);
    longv[9000] = '\0';
    ob_hdrs_t hd = {0};
    ob_hdrs_add(&hd, "X-Long", longv);
    snprintf(url, sizeof(url), "%s/echo", base);
    ob_http_req_t lreq = {.method = "GET", .url = url, .headers = &hd};
    ob_test_http_send(loop, h, &lreq, 10000, &r);
    json_t *j = json_loads(r.body, 0, NULL);
    const char *got = json_string_value(json_object_get(json_object_get(j, "headers"), "x-long"));
    assert_non_null(got);
    assert_int_equal(strlen(got), 8447 - strlen("X-Long: "));
    json_decref(j);
    free(r.body);
    ob_hdrs_clear(&hd);
    free(longv);

    printf("%d transfers, %lu easy handle(s) created\n", 3 * (int)NECHO + 9, easy_inits - inits0);
    assert_int_equal(easy_inits - inits0, 1);
    assert_int_equal(easy_cleanups - cleanups0, 0);
    ob_http_free(h);
    assert_int_equal(easy_cleanups - cleanups0, 1);
    ob_loop_free(loop);
}

#define NREUSE 60

/* Many different requests queued at once over three transfer slots: each
 * gets exactly its own reply, and only three easy handles ever exist. */
static void test_handle_reuse_concurrent(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_http_opts_t o = {.max_transfers = 3};
    ob_http_t *h = ob_http_new(loop, &o, NULL, 0);
    unsigned long inits0 = easy_inits;
    static result_t rs[NREUSE];
    for (int i = 0; i < NREUSE; i++)
        send_echo(h, (size_t)i, 1000 + i, &rs[i]);
    assert_int_equal(ob_http_active(h), 3);
    assert_true(ob_test_run_until(loop, all_done_n, &(all_t){rs, NREUSE}, 30000));
    for (int i = 0; i < NREUSE; i++) {
        check_echo((size_t)i, 1000 + i, &rs[i]);
        free(rs[i].body);
    }
    assert_int_equal(easy_inits - inits0, 3);
    ob_http_free(h);
    ob_loop_free(loop);
}

/* A callback that starts the next request: the finished transfer's handle
 * is already free, so a chain of requests runs on one handle. */
typedef struct chain_s {
    ob_http_t *h;
    int next, total, failed;
    result_t r;
} chain_t;

static void chain_step(ob_http_resp_t *resp, void *arg)
{
    chain_t *c = arg;
    ob_test_http_reply(resp, &c->r);
    check_echo((size_t)c->next, 2000 + c->next, &c->r);
    free(c->r.body);
    c->r.body = NULL;
    if (++c->next < c->total) {
        const echo_case_t *ec = &echo_cases[(size_t)c->next % NECHO];
        char url[256];
        snprintf(url, sizeof(url), "%s/echo?tag=%d", base, 2000 + c->next);
        ob_hdrs_t hd = {0};
        char tagv[32];
        snprintf(tagv, sizeof(tagv), "%d", 2000 + c->next);
        ob_hdrs_add(&hd, "X-Tag", tagv);
        if (ec->hdr_name)
            ob_hdrs_add(&hd, ec->hdr_name, ec->hdr_value);
        if (ec->ctype)
            ob_hdrs_add(&hd, "Content-Type", ec->ctype);
        ob_http_req_t req = {.method = ec->method,
                             .url = url,
                             .headers = &hd,
                             .body = ec->body,
                             .body_len = ec->body ? strlen(ec->body) : 0};
        if (!ob_http_send(c->h, &req, chain_step, c, NULL, 0))
            c->failed = 1;
        ob_hdrs_clear(&hd);
    }
}

static int chain_done(void *arg)
{
    chain_t *c = arg;
    return c->failed || c->next >= c->total;
}

static void test_handle_reuse_from_callback(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_http_opts_t o = {.max_transfers = 1};
    ob_http_t *h = ob_http_new(loop, &o, NULL, 0);
    unsigned long inits0 = easy_inits;
    chain_t c = {.h = h, .total = 20};
    ob_hdrs_t hd = {0};
    ob_hdrs_add(&hd, "X-Tag", "2000");
    ob_hdrs_add(&hd, "X-Trace", "post-1");
    ob_hdrs_add(&hd, "Content-Type", "application/json");
    char url[256];
    snprintf(url, sizeof(url), "%s/echo?tag=2000", base);
    ob_http_req_t req = {.method = "POST",
                         .url = url,
                         .headers = &hd,
                         .body = echo_cases[0].body,
                         .body_len = strlen(echo_cases[0].body)};
    assert_non_null(ob_http_send(h, &req, chain_step, &c, NULL, 0));
    ob_hdrs_clear(&hd);
    assert_true(ob_test_run_until(loop, chain_done, &c, 30000));
    assert_int_equal(c.failed, 0);
    assert_int_equal(c.next, c.total);
    assert_int_equal(easy_inits - inits0, 1);
    ob_http_free(h);
    ob_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_and_headers),
        cmocka_unit_test(test_body_kept),
        cmocka_unit_test(test_status_is_not_transport_error),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_transfer_limit),
        cmocka_unit_test(test_priority_order),
        cmocka_unit_test(test_timeout_on_silent_server),
        cmocka_unit_test(test_reset_and_truncated),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_cancel_and_shutdown),
        cmocka_unit_test(test_handle_reuse_sequential),
        cmocka_unit_test(test_handle_reuse_concurrent),
        cmocka_unit_test(test_handle_reuse_from_callback),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
