/*
 * ctl: what onboardctl's commands share (see ctl.h).
 */
#include "ctl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "ob_alloc.h"
#include "ob_kafka.h"
#include "ob_worker.h"

ob_redis_t *ctl_redis_connect(ctl_t *c)
{
    ob_redis_opts_t ro;
    ob_worker_redis_opts(&c->cfg, &ro);
    ro.command_timeout_ms = 5000;
    char err[512] = "";
    ob_redis_t *r = ob_redis_new(c->loop, &ro, err, sizeof(err));
    if (!r && err[0]) {
        fprintf(stderr, "onboardctl: %s\n", err);
        return NULL;
    }
    for (int i = 0; r && i < 50 && !ob_redis_connected(r); i++)
        ob_loop_run_once(c->loop, 100);
    if (!r || !ob_redis_connected(r)) {
        fprintf(stderr, "onboardctl: cannot reach Redis at %s:%lld\n", c->cfg.redis_host,
                c->cfg.redis_port);
        ob_redis_free(r);
        return NULL;
    }
    return r;
}

ob_err_t ctl_wait(ctl_t *c, const int *done, long timeout_ms, const char *what)
{
    uint64_t end = ob_loop_update_time(c->loop) + (uint64_t)timeout_ms;
    while (!*done) {
        if (ob_loop_update_time(c->loop) >= end) {
            ctl_progress_clear();
            fprintf(stderr, "onboardctl: no answer from %s in %ld ms\n", what, timeout_ms);
            return OB_ERR_TIMEOUT;
        }
        ob_loop_run_once(c->loop, 100);
    }
    return OB_OK;
}

ob_err_t ctl_redis(ctl_t *c, ob_redis_t *r, ob_redis_cb *cb, void *arg, const int *done,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ob_err_t e = ob_redis_commandv(r, cb, arg, fmt, ap);
    va_end(ap);
    if (e != OB_OK) {
        ctl_progress_clear();
        fprintf(stderr, "onboardctl: Redis: the command could not be sent: %s\n", ob_err2str(e));
        return e;
    }
    /* Replies come within the command timeout (5 s), or the command fails. */
    return ctl_wait(c, done, 15000, "Redis");
}

int ctl_topic_scan(ctl_t *c, const char *suffix, ctl_msg_fn *each, void *arg, int missing_ok)
{
    char err[512], topic[256];
    snprintf(topic, sizeof(topic), "%s%s", c->cfg.topic_prefix, suffix);
    /* The end of a partition is where the broker says it is (partition EOF):
     * the workers write in transactions, whose markers take the last
     * offsets of the log without being messages. */
    static const char *const defaults[] = {
        "group.id", "onboardctl-reader", "enable.auto.commit", "false", "enable.partition.eof",
        "true",     "isolation.level",   "read_committed",     NULL};
    rd_kafka_conf_t *conf = ob_kafka_conf_new(&c->cfg.kafka, defaults, err, sizeof(err));
    rd_kafka_t *rk = conf ? rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)) : NULL;
    if (!rk) {
        fprintf(stderr, "onboardctl: %s\n", err);
        return EXIT_RUNTIME;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    if (e || md->topic_cnt != 1 || md->topics[0].err) {
        rd_kafka_resp_err_t why = e ? e : md->topics[0].err;
        int absent = why == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
        if (!(absent && missing_ok))
            fprintf(stderr, "onboardctl: cannot read topic %s: %s\n", topic, rd_kafka_err2str(why));
        if (md)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
        return absent && missing_ok ? 0 : EXIT_RUNTIME;
    }
    int nparts = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_topic_partition_list_t *assign = rd_kafka_topic_partition_list_new(nparts);
    size_t np = (size_t)(nparts ? nparts : 1);
    int64_t *end = ob_calloc(np, sizeof(*end)), *at = ob_calloc(np, sizeof(*at));
    char *ended = ob_calloc(np, 1);
    int remaining = 0, rc = 0;
    size_t total = 0, done = 0; /* offsets, for the progress line */
    for (int p = 0; p < nparts; p++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000) == 0 && hi > lo) {
            rd_kafka_topic_partition_list_add(assign, topic, p)->offset = lo;
            end[p] = hi;
            at[p] = lo;
            total += (size_t)(hi - lo);
            remaining++;
        }
    }
    rd_kafka_assign(rk, assign);
    rd_kafka_topic_partition_list_destroy(assign);
    if (c->scan_progress) {
        char label[300];
        snprintf(label, sizeof(label), "read %s:", topic);
        ctl_progress_start(label, total);
    }
    while (remaining > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 10000);
        if (!m) {
            ctl_progress_clear();
            fprintf(stderr, "onboardctl: timed out reading %s\n", topic);
            rc = EXIT_RUNTIME;
            break;
        }
        int p = m->partition;
        if (!m->err)
            each(c, m, arg);
        /* The end of a partition: its last message, or EOF past the
         * transaction markers that end it. */
        int mine = p >= 0 && p < nparts && !ended[p];
        int64_t next =
            m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ? end[mine ? p : 0] : m->offset + 1;
        if (mine && (!m->err || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)) {
            done += next > at[p] ? (size_t)(next - at[p]) : 0;
            at[p] = next > at[p] ? next : at[p];
            if (next >= end[p] || m->err) {
                ended[p] = 1;
                remaining--;
            }
        }
        rd_kafka_message_destroy(m);
        if (c->scan_progress)
            ctl_progress(done);
    }
    if (c->scan_progress)
        ctl_progress_stop();
    free(end);
    free(at);
    free(ended);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

struct ctl_follow_s {
    ctl_t *c;
    rd_kafka_t *rk;
    char topic[256];
    int assigned; /* the topic exists and its partitions are assigned */
};

/* Assign every partition of the topic at `from_end` ends now, else from its
 * start; 0 when the topic does not exist yet. */
static int follow_assign(ctl_follow_t *f, int from_end)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(f->rk, f->topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(f->rk, 0, rkt, &md, 10000);
    int n = !e && md->topic_cnt == 1 && !md->topics[0].err ? md->topics[0].partition_cnt : 0;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if (n <= 0)
        return 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++) {
        int64_t lo = 0, hi = 0;
        if (from_end && rd_kafka_query_watermark_offsets(f->rk, f->topic, p, &lo, &hi, 10000) != 0)
            hi = RD_KAFKA_OFFSET_END;
        rd_kafka_topic_partition_list_add(l, f->topic, p)->offset =
            from_end ? hi : RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(f->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    f->assigned = 1;
    return 1;
}

ctl_follow_t *ctl_follow_open(ctl_t *c, const char *suffix)
{
    char err[512];
    static const char *const defaults[] = {"group.id", "onboardctl-follower", "enable.auto.commit",
                                           "false",    "isolation.level",     "read_committed",
                                           NULL};
    ctl_follow_t *f = ob_calloc(1, sizeof(*f));
    f->c = c;
    snprintf(f->topic, sizeof(f->topic), "%s%s", c->cfg.topic_prefix, suffix);
    rd_kafka_conf_t *conf = ob_kafka_conf_new(&c->cfg.kafka, defaults, err, sizeof(err));
    f->rk = conf ? rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)) : NULL;
    if (!f->rk) {
        fprintf(stderr, "onboardctl: %s\n", err);
        free(f);
        return NULL;
    }
    follow_assign(f, 1);
    return f;
}

int ctl_follow(ctl_follow_t *f, ctl_msg_fn *each, void *arg, const int *done, long timeout_ms)
{
    uint64_t until = ob_loop_update_time(f->c->loop) + (uint64_t)timeout_ms;
    while (!*done) {
        if (ob_loop_update_time(f->c->loop) >= until)
            return EXIT_RUNTIME;
        if (!f->assigned && !follow_assign(f, 0)) {
            ob_loop_run_once(f->c->loop,
                             200); /* not there yet: it is made with its first message */
            continue;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(f->rk, 200);
        ob_loop_run_once(f->c->loop, 0);
        if (!m)
            continue;
        if (!m->err)
            each(f->c, m, arg);
        rd_kafka_message_destroy(m);
    }
    return 0;
}

void ctl_follow_close(ctl_follow_t *f)
{
    if (!f)
        return;
    rd_kafka_consumer_close(f->rk);
    rd_kafka_destroy(f->rk);
    free(f);
}
