/*
 * HTTP client on the loop against a real local server (tests/tools/http_server.py):
 * concurrency through curl multi, echo of method/headers/body, status codes,
 * deadline on a silent server, connection reset, truncated body, body limit,
 * cancel, and shutdown with requests in flight.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_http.h"
#include "testutil.h"

static char base[128];
static pid_t server = -1;

typedef struct result_s {
    int done;
    ob_err_t err;
    long status;
    char errmsg[256];
    char *body;
    size_t body_len;
    char content_type[128];
} result_t;

static void on_done(ob_http_resp_t *resp, void *arg)
{
    result_t *r = arg;
    r->done = 1;
    r->err = resp->err;
    r->status = resp->status;
    snprintf(r->errmsg, sizeof(r->errmsg), "%s", resp->errmsg);
    const char *ct = ob_hdrs_get(&resp->headers, "content-type");
    snprintf(r->content_type, sizeof(r->content_type), "%s", ct ? ct : "");
    r->body_len = resp->body.len;
    r->body = resp->body.data ? strdup(resp->body.data) : strdup("");
}

static int is_done(void *arg)
{
    return ((result_t *)arg)->done;
}

static void fetch(ob_http_t *h, ob_loop_t *loop, ob_http_req_t *req, result_t *r, int wait_ms)
{
    memset(r, 0, sizeof(*r));
    char err[256];
    assert_non_null(ob_http_send(h, req, on_done, r, err, sizeof(err)));
    assert_true(ob_test_run_until(loop, is_done, r, wait_ms));
}

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
    fetch(h, loop, &req, &r, 10000);
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
    fetch(h, loop, &put, &r, 10000);
    j = json_loads(r.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "PUT");
    jh = json_object_get(j, "headers");
    assert_null(json_object_get(jh, "content-type"));
    assert_string_equal(json_string_value(json_object_get(jh, "content-length")), "0");
    json_decref(j);
    free(r.body);

    /* HEAD: status without a body. */
    ob_http_req_t head = {.method = "HEAD", .url = url};
    fetch(h, loop, &head, &r, 10000);
    assert_int_equal(r.err, OB_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    free(r.body);

    ob_hdrs_clear(&hd);
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
    fetch(h, loop, &req, &r, 10000);
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
        assert_non_null(ob_http_send(h, &req, on_done, &rs[i], NULL, 0));
    assert_int_equal(ob_http_active(h), NCONC);
    assert_true(ob_test_run_until(loop, all_done, rs, 30000));
    for (int i = 0; i < NCONC; i++) {
        assert_int_equal(rs[i].err, OB_OK);
        assert_int_equal(rs[i].status, 200);
        free(rs[i].body);
    }
    assert_int_equal(ob_http_active(h), 0);
    assert_true(ob_http_completed(h) >= NCONC);

    snprintf(url, sizeof(url), "%s/stats", base);
    ob_http_req_t st = {.method = "GET", .url = url};
    result_t r;
    fetch(h, loop, &st, &r, 10000);
    json_t *j = json_loads(r.body, 0, NULL);
    long peak = (long)json_integer_value(json_object_get(j, "peak"));
    printf("server saw a peak of %ld concurrent requests\n", peak);
    assert_true(peak >= NCONC / 2);
    json_decref(j);
    free(r.body);
    ob_http_free(h);
    ob_loop_free(loop);
}

static long server_peak(ob_http_t *h, ob_loop_t *loop)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/stats?clear=1", base);
    ob_http_req_t st = {.method = "GET", .url = url};
    result_t r;
    fetch(h, loop, &st, &r, 10000);
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
        assert_non_null(xs[i] = ob_http_send(h, &req, on_done, &rs[i], NULL, 0));
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
        assert_non_null(ob_http_send(h, &req, on_done, &a[i], NULL, 0));
    ob_http_free(h);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(a[i].done, 1);
        assert_int_equal(a[i].err, OB_ERR_CANCELLED);
        free(a[i].body);
    }
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
    fetch(h, loop, &req, &r, 10000);
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
    fetch(h, loop, &req, &r, 10000);
    assert_int_equal(r.err, OB_ERR_CONN);
    printf("reset: %s\n", r.errmsg);
    free(r.body);

    snprintf(url, sizeof(url), "%s/truncated", base);
    fetch(h, loop, &req, &r, 10000);
    assert_int_equal(r.err, OB_ERR_CONN);
    assert_int_equal(r.status, 0);
    printf("truncated: %s\n", r.errmsg);
    free(r.body);

    /* Nothing listens on port 1. */
    ob_http_req_t refused = {.method = "GET", .url = "http://127.0.0.1:1/"};
    fetch(h, loop, &refused, &r, 10000);
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
    fetch(h, loop, &req, &r, 10000);
    assert_int_equal(r.err, OB_OK);
    assert_int_equal(r.body_len, 4096);
    free(r.body);
    snprintf(url, sizeof(url), "%s/big?n=1000000", base);
    fetch(h, loop, &req, &r, 10000);
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
    ob_http_xfer_t *xa = ob_http_send(h, &req, on_done, &a, NULL, 0);
    assert_non_null(ob_http_send(h, &req, on_done, &b, NULL, 0));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_and_headers),
        cmocka_unit_test(test_status_is_not_transport_error),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_transfer_limit),
        cmocka_unit_test(test_timeout_on_silent_server),
        cmocka_unit_test(test_reset_and_truncated),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_cancel_and_shutdown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
