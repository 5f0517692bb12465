/*
 * A worker's metrics and health endpoints against real Kafka, Redis and the
 * simulator: /healthz answers, /readyz says ready once Redis is connected
 * and Kafka transactions are initialised (503 with the reason before), with
 * or without partitions (how many it holds is a metric), /metrics
 * counts what the worker really did (accounts, AWS requests per API,
 * consumer lag in kafka-lag-exporter's names, lag growing while work is
 * slow and draining after, the backlog of messages no job has started on,
 * fresh while the full window keeps the partitions paused) and passes
 * `promtool check metrics`; and 300 idle connections to the port do not
 * keep the probes out.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "ob_http.h"
#include "ob_kafka.h"
#include "ob_log.h"
#include "ob_worker.h"
#include "sim.h"
#include "stages.h"

static ob_test_harness_t H;
static char metrics_port[16];

static long get_at(ob_http_t *http, const char *port, const char *path, char **body)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%s%s", port, path);
    ob_test_http_t g;
    ob_test_http(H.loop, http, "GET", url, NULL, 10000, &g);
    if (body)
        *body = g.body;
    else
        free(g.body);
    return g.status;
}

static long get(ob_http_t *http, const char *path, char **body)
{
    return get_at(http, metrics_port, path, body);
}

/* The value of the sample line starting with `series` (name and labels exactly). */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, series, n) && p[n] == ' ')
            return atof(p + n + 1);
    return -1;
}

/* Sum of every sample of a family with a label fragment (e.g. lag over partitions). */
static double family_sum(const char *text, const char *name, const char *fragment)
{
    double sum = 0;
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, n) != 0 || p[n] != '{')
            continue;
        const char *eol = strchr(p, '\n');
        const char *frag = strstr(p, fragment);
        const char *sp = strchr(p, '}');
        if (frag && (!eol || frag < eol) && sp)
            sum += atof(sp + 2);
    }
    return sum;
}

static void promtool_check(const char *text)
{
    char path[] = "/tmp/ob-metrics-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "command -v promtool >/dev/null 2>&1");
    if (system(cmd) != 0) {
        if (getenv("OB_TEST_REQUIRE_SERVICES") && !strcmp(getenv("OB_TEST_REQUIRE_SERVICES"), "1"))
            fail_msg("promtool (Debian's prometheus package) is required");
        printf("SKIPPED: promtool check metrics (promtool not installed)\n");
        unlink(path);
        return;
    }
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
    int rc = system(cmd);
    unlink(path);
    if (rc != 0)
        fail_msg("promtool check metrics failed (exit %d) on:\n%s", rc, text);
}

/* Requests for members from..to, in one go. */
static void requests(int from, int to)
{
    ob_test_producer_t *p = ob_test_producer(&H);
    char acct[16], rid[32];
    for (int i = from; i <= to; i++) {
        ob_test_member_account(i, acct);
        snprintf(rid, sizeof(rid), "m-%d", i);
        ob_test_req_t rq = {.rid = rid, .account = acct};
        ob_test_send_request(p, &rq);
    }
    ob_test_producer_done(p);
}

typedef struct until_s {
    ob_worker_t *w;
    uint64_t n;
} until_t;

static int done_n(void *arg)
{
    until_t *u = arg;
    ob_worker_stats_t st;
    ob_worker_get_stats(u->w, &st);
    return st.done >= u->n && st.inflight == 0;
}

static int ready(void *arg)
{
    char why[256];
    return ob_worker_ready(arg, why, sizeof(why));
}

static void test_metrics_and_health(void **state)
{
    snprintf(metrics_port, sizeof(metrics_port), "%d", ob_test_free_port());
    /* CreateBucket is slow, so work piles up and the lag shows. */
    const char *lat[] = {"s3.CreateBucket=4000ms", NULL};
    sim_opts_t so = {.profile = "instant", .org_accounts = 20, .latency = lat};
    ob_test_begin(&H, &so);
    ob_loop_t *loop = H.loop;
    ob_test_forget_members(H.redis_port, 1, so.org_accounts);
    ob_worker_t *w = ob_test_worker(&H, &ob_stage_bucket, "itest-metrics", 3000);
    assert_int_equal(ob_worker_metrics_port(w), atoi(metrics_port));
    ob_http_t *http = ob_http_new(loop, NULL, NULL, 0);

    char *body = NULL;
    assert_int_equal(get(http, "/healthz", NULL), 200);
    /* Not ready before Redis answers and the transactional producer is
     * initialised (503 with the reason); then ready although it holds no
     * partition (the topic does not even exist yet): a replica beyond the
     * partition count is healthy. */
    int saw_ready = 0;
    for (int i = 0; i < 100 && !saw_ready; i++) {
        int status = get(http, "/readyz", &body);
        if (status == 503) {
            assert_true(strstr(body, "Redis") || strstr(body, "transactions"));
        } else {
            assert_int_equal(status, 200);
            assert_non_null(strstr(body, "0 partitions"));
            saw_ready = 1;
        }
        free(body);
        if (!saw_ready)
            ob_test_run_for(loop, 100);
    }
    assert_true(saw_ready);
    assert_true(ready(w));
    /* A crowd of idle connections cannot lock the probes out: 300 of them,
     * opened and left silent, and /healthz and /readyz still answer. */
    int idle[300];
    for (int i = 0; i < 300; i++) {
        idle[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(metrics_port))};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(connect(idle[i], (struct sockaddr *)&a, sizeof(a)), 0);
        if (i % 50 == 49)
            ob_test_run_for(loop, 20);
    }
    ob_test_run_for(loop, 200);
    /* Each probe on a connection of its own, as the kubelet makes them. */
    for (int i = 0; i < 2; i++) {
        ob_http_t *probe = ob_http_new(loop, NULL, NULL, 0);
        assert_int_equal(get(probe, i ? "/readyz" : "/healthz", NULL), 200);
        ob_http_free(probe);
    }
    for (int i = 0; i < 300; i++)
        close(idle[i]);
    assert_int_equal(get(http, "/metrics", &body), 200);
    assert_non_null(strstr(body, "onboard_partitions_assigned{"));
    assert_true(family_sum(body, "onboard_partitions_assigned", "") == 0);
    free(body);
    assert_int_equal(get(http, "/nothing", NULL), 404);

    requests(1, 8);

    /* While the slow CreateBucket calls are in flight: lag and its age show. */
    char lag_frag[160];
    snprintf(lag_frag, sizeof(lag_frag), "group=\"%sbucket\"", H.prefix);
    double lag = 0, lag_s = 0;
    for (int tries = 0; tries < 50 && lag <= 0; tries++) {
        ob_test_run_for(loop, 100);
        assert_int_equal(get(http, "/metrics", &body), 200);
        lag = family_sum(body, "onboard_partition_lag", lag_frag);
        lag_s = family_sum(body, "onboard_partition_lag_seconds", lag_frag);
        free(body);
    }
    printf("lag while working: %.0f messages, %.2f s\n", lag, lag_s);
    assert_true(lag >= 1);
    assert_true(lag_s > 0);

    /* The window (4) is full: four messages have a job at work, four wait,
     * and the partitions are paused. Eight more arrive meanwhile: the
     * backlog (what no job has started on) counts them although no fetch
     * brings news of them, and the lag counts the accounts in progress too. */
    char backlog_frag[160];
    snprintf(backlog_frag, sizeof(backlog_frag), "topic=\"%srequests\"", H.prefix);
    double backlog = -1;
    for (int tries = 0; tries < 50 && backlog != 4; tries++) {
        ob_test_run_for(loop, 100);
        assert_int_equal(get(http, "/metrics", &body), 200);
        backlog = family_sum(body, "onboard_backlog_messages", backlog_frag);
        free(body);
    }
    assert_true(backlog == 4);
    requests(9, 16);
    for (int tries = 0; tries < 60 && (backlog != 12 || lag != 16); tries++) {
        ob_test_run_for(loop, 100);
        assert_int_equal(get(http, "/metrics", &body), 200);
        backlog = family_sum(body, "onboard_backlog_messages", backlog_frag);
        lag = family_sum(body, "onboard_partition_lag", lag_frag);
        free(body);
    }
    printf("window full, 8 more arrived: backlog %.0f, lag %.0f\n", backlog, lag);
    assert_true(backlog == 12);
    assert_true(lag == 16);

    until_t u = {w, 16};
    assert_true(ob_test_run_until(loop, done_n, &u, 90000));
    ob_test_run_for(loop, 500);
    assert_int_equal(get(http, "/metrics", &body), 200);
    assert_true(sample(body, "onboard_accounts_total{stage=\"bucket\",result=\"done\"}") == 16);
    assert_true(sample(body, "onboard_messages_received_total{stage=\"bucket\"}") == 16);
    assert_true(sample(body, "onboard_partitions_assigned{stage=\"bucket\"}") >= 1);
    assert_true(sample(body, "onboard_aws_requests_total{stage=\"bucket\",service=\"s3\","
                             "operation=\"CreateBucket\"}") == 16);
    assert_true(sample(body, "onboard_stage_duration_seconds_count{stage=\"bucket\"}") == 16);
    assert_true(sample(body, "onboard_stage_duration_seconds_bucket{stage=\"bucket\",le=\"1\"}") ==
                0); /* each took over 1.5 s */
    assert_true(sample(body, "onboard_inflight{stage=\"bucket\"}") == 0);
    assert_true(sample(body, "onboard_redis_connected{stage=\"bucket\"}") == 1);
    assert_true(family_sum(body, "onboard_partition_lag", lag_frag) == 0);
    assert_true(family_sum(body, "onboard_backlog_messages", backlog_frag) == 0);
    assert_null(strstr(body, "2000000000")); /* no account ids in labels */
    promtool_check(body);
    free(body);

    ob_http_free(http);
    ob_test_end(&H);
}

/* onboard-lag-exporter's /metrics, once it has polled the brokers at least
 * `polls` more times. */
static char *exporter_metrics(ob_http_t *http, const char *port, int polls)
{
    char *body = NULL;
    double want = -1;
    for (int tries = 0; tries < 200; tries++) {
        long st = get_at(http, port, "/metrics", &body);
        double n = st == 200 ? sample(body, "onboard_lag_exporter_polls_total{result=\"ok\"}") : -1;
        if (want < 0 && n >= 0)
            want = n + polls;
        if (want >= 0 && n >= want)
            return body;
        free(body);
        body = NULL;
        ob_test_run_for(H.loop, 100);
    }
    fail_msg("onboard-lag-exporter did not poll the brokers %d times in 20 s", polls);
    return NULL;
}

/* The lines of a family whose labels hold fragment, for the assertion messages. */
static int lines_with(const char *text, const char *name, const char *fragment, const char *also)
{
    int n = 0;
    size_t len = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        char line[1024];
        snprintf(line, sizeof(line), "%.*s", (int)ll, p);
        if (!strncmp(line, name, len) && line[len] == '{' && strstr(line, fragment) &&
            (!also || strstr(line, also)))
            n++;
    }
    return n;
}

/* onboard-lag-exporter against the real broker: the bucket stage works
 * slowly with its window full (its partitions paused), and the cur stage has
 * no worker at all (as if it crash-looped or was scaled to zero). The
 * exporter reports both groups from the brokers: the dead stage's lag
 * (every message the bucket stage sent it) and age growing, with no member;
 * the working stage's owner of each partition; ends that move while the
 * worker fetches nothing; and everything settling to 0 once done. */
static void test_lag_exporter(void **state)
{
    (void)state;
    snprintf(metrics_port, sizeof(metrics_port), "%d", ob_test_free_port());
    char xport[16];
    snprintf(xport, sizeof(xport), "%d", ob_test_free_port());
    const char *lat[] = {"s3.CreateBucket=2000ms", NULL};
    sim_opts_t so = {.profile = "instant", .org_accounts = 20, .latency = lat};
    ob_test_begin(&H, &so);
    ob_loop_t *loop = H.loop;
    ob_test_forget_members(H.redis_port, 1, so.org_accounts);
    ob_worker_t *w = ob_test_worker(&H, &ob_stage_bucket, "itest-lag", 3000);
    ob_http_t *http = ob_http_new(loop, NULL, NULL, 0);
    requests(1, 8);
    char log[256];
    snprintf(log, sizeof(log), "%s/itm-lag-%d.log", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    unlink(log);
    const char *const env[][2] = {{"OB_METRICS_PORT", xport},
                                  {"OB_LAG_INTERVAL", "1s"},
                                  {"OB_LAG_CLUSTER_NAME", "itest"},
                                  {"OB_LOG_LEVEL", "info"},
                                  {NULL, NULL}};
    pid_t x = ob_test_fleet_process(&H, OB_LAG_EXPORTER_BIN, env, log);
    char bucket[160], cur[160], requests_t[160];
    snprintf(bucket, sizeof(bucket), "group=\"%sbucket\"", H.prefix);
    snprintf(cur, sizeof(cur), "group=\"%scur\"", H.prefix);
    snprintf(requests_t, sizeof(requests_t), "topic=\"%srequests\"", H.prefix);

    /* The bucket stage at work, its window (4) full: the group's lag and who
     * owns its partitions, from the brokers. */
    char *body = exporter_metrics(http, xport, 1);
    int tries = 0;
    while (family_sum(body, "kafka_consumergroup_group_lag", bucket) < 1 && tries++ < 50) {
        free(body);
        body = exporter_metrics(http, xport, 1);
    }
    assert_true(family_sum(body, "kafka_consumergroup_group_lag", bucket) >= 1);
    assert_true(lines_with(body, "kafka_consumergroup_group_lag", bucket,
                           "member_host=\"127.0.0.1\"") >= 1);
    assert_true(lines_with(body, "kafka_consumergroup_group_lag", bucket, "client_id=\"\"") == 0);
    assert_true(
        lines_with(body, "kafka_consumergroup_group_lag", "cluster_name=\"itest\"", bucket) >= 1);
    assert_true(family_sum(body, "onboard_consumergroup_members", bucket) == 1);
    double ends0 = family_sum(body, "kafka_partition_latest_offset", requests_t);
    free(body);
    /* Eight more while the partitions are paused: the worker fetches
     * nothing, the ends still move (eight messages, and as many transaction
     * markers: the test's producer commits each), and the lag with them. */
    requests(9, 16);
    double ends = 0, lag = 0;
    for (tries = 0; tries < 50 && ends < ends0 + 8; tries++) {
        body = exporter_metrics(http, xport, 1);
        ends = family_sum(body, "kafka_partition_latest_offset", requests_t);
        lag = family_sum(body, "kafka_consumergroup_group_lag", bucket);
        free(body);
    }
    printf("lag exporter: the requests topic's ends from %.0f to %.0f, lag %.0f\n", ends0, ends,
           lag);
    assert_true(ends >= ends0 + 8);
    assert_true(lag >= 8);

    /* Every account through bucket: its lag 0; the cur stage, with no
     * worker, has all sixteen waiting (in offsets: with the transaction
     * markers), no member, and an age that grows. */
    until_t u = {w, 16};
    assert_true(ob_test_run_until(loop, done_n, &u, 90000));
    double bucket_lag = -1, cur_lag = -1, age1 = -1;
    for (tries = 0; tries < 60 && (bucket_lag != 0 || cur_lag < 16); tries++) {
        body = exporter_metrics(http, xport, 1);
        bucket_lag = family_sum(body, "kafka_consumergroup_group_lag", bucket);
        cur_lag = family_sum(body, "kafka_consumergroup_group_sum_lag", cur);
        age1 = family_sum(body, "kafka_consumergroup_group_max_lag_seconds", cur);
        if (bucket_lag == 0 && cur_lag >= 16) {
            assert_true(family_sum(body, "onboard_consumergroup_members", cur) == 0);
            assert_true(
                lines_with(body, "kafka_consumergroup_group_lag", cur, "member_host=\"\"") >= 1);
            promtool_check(body);
        }
        free(body);
    }
    printf("lag exporter: bucket %.0f, cur (no worker) %.0f messages, %.1f s old\n", bucket_lag,
           cur_lag, age1);
    assert_true(bucket_lag == 0);
    assert_true(cur_lag >= 16); /* sixteen messages, and the bucket worker's markers */
    ob_test_run_for(loop, 2000);
    body = exporter_metrics(http, xport, 1);
    double age2 = family_sum(body, "kafka_consumergroup_group_max_lag_seconds", cur);
    assert_true(family_sum(body, "kafka_consumergroup_group_sum_lag", cur) == cur_lag);
    free(body);
    printf("lag exporter: the cur group's age %.1f s, then %.1f s\n", age1, age2);
    assert_true(age2 >= age1 + 1.5);
    assert_int_equal(get_at(http, xport, "/readyz", NULL), 200);
    assert_int_equal(ob_test_reap(&H, x, SIGTERM, 10000), 0);
    unlink(log);
    ob_http_free(http);
    ob_test_end(&H);
}

int main(void)
{
    ob_test_harness_init(&H, "itm");
    ob_test_set(&H, "OB_METRICS_PORT", metrics_port);
    ob_test_set(&H, "OB_METRICS_BIND", "127.0.0.1");
    ob_test_set(&H, "OB_INFLIGHT_MAX", "4");
    ob_log_set_level(OB_LOG_WARN);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_metrics_and_health),
                                       cmocka_unit_test(test_lag_exporter)};
    return ob_test_run_selected("itest_metrics", tests, sizeof(tests) / sizeof(tests[0]));
}
