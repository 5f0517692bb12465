/*
 * ob_kafka: librdkafka handles driven by ob_loop.
 *
 * The consumer redirects librdkafka's main queue (logs, errors, stats) into
 * the consumer queue (rd_kafka_poll_set_consumer), so one pipe wakes the loop
 * for messages, rebalances and errors alike. The producer's main queue
 * carries delivery reports and errors. A queue's io event only fires on the
 * empty -> non-empty transition, so after a partial drain we must continue by
 * ourselves: a zero-delay timer does that without blocking the loop.
 */
#include "ob_kafka.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ob_log.h"

typedef struct wake_s {
    int fds[2];
    ob_io_t *io;
    ob_timer_t *more; /* continue a partial drain */
} wake_t;

struct ob_kconsumer_s {
    ob_loop_t *loop;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    wake_t wake;
    ob_kconsumer_msg_cb *on_message;
    ob_kconsumer_rebalance_cb *on_rebalance;
    void *arg;
    size_t batch;
    int paused;
    int closed;
    int close_timed_out;
    uint64_t received;
};

struct ob_kproducer_s {
    ob_loop_t *loop;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    wake_t wake;
    ob_kproducer_dr_cb *on_delivery;
    void *arg;
};

/* librdkafka's log callback runs on its threads; ob_log is thread-safe. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    ob_log_level_t l = level <= 3   ? OB_LOG_ERROR
                       : level <= 4 ? OB_LOG_WARN
                       : level <= 6 ? OB_LOG_INFO
                                    : OB_LOG_DEBUG;
    /* Shared kafka.* settings are applied to consumer and producer alike, so
     * "consumer property ignored by this producer" is expected, not a warning. */
    if (!strcmp(fac, "CONFWARN") && l == OB_LOG_WARN)
        l = OB_LOG_INFO;
    ob_logkv(l, "kafka", buf, "facility", fac, "client", rd_kafka_name(rk), NULL);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    ob_log_level_t l = rd_kafka_fatal_error(rk, NULL, 0) ? OB_LOG_ERROR : OB_LOG_WARN;
    ob_logkv(l, "kafka", reason, "error", rd_kafka_err2name((rd_kafka_resp_err_t)err), "client",
             rd_kafka_name(rk), NULL);
}

rd_kafka_conf_t *ob_kafka_conf_new(const ob_cfg_kv_t *kafka, const char *const *defaults,
                                   char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[512];
    for (size_t i = 0; defaults && defaults[i]; i += 2) {
        if (rd_kafka_conf_set(conf, defaults[i], defaults[i + 1], err, sizeof(err)) !=
            RD_KAFKA_CONF_OK) {
            ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "kafka.%s: %s", defaults[i], err);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    for (size_t i = 0; kafka && i < kafka->n; i++) {
        if (rd_kafka_conf_set(conf, kafka->keys[i], kafka->values[i], err, sizeof(err)) !=
            RD_KAFKA_CONF_OK) {
            /* err never echoes the value, so a password stays out of it. */
            ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "kafka.%s: %s", kafka->keys[i], err);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    return conf;
}

static ob_err_t wake_init(wake_t *w, ob_loop_t *loop, rd_kafka_queue_t *q, ob_io_cb *cb,
                          ob_timer_cb *more_cb, void *arg, char *errstr, size_t errstr_size)
{
    w->fds[0] = w->fds[1] = -1;
    if (pipe2(w->fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return ob_errf(errstr, errstr_size, OB_ERR_IO, "pipe: %s", strerror(errno));
    w->io = ob_io_new(loop, w->fds[0], cb, arg);
    w->more = ob_timer_new(loop, more_cb, arg);
    if (!w->io || !w->more || ob_io_set(w->io, OB_IO_READ) != OB_OK)
        return ob_errf(errstr, errstr_size, OB_ERR_IO, "cannot watch the Kafka queue");
    rd_kafka_queue_io_event_enable(q, w->fds[1], "1", 1);
    return OB_OK;
}

static void wake_drain_pipe(int fd)
{
    char buf[256];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

static void wake_fini(wake_t *w, rd_kafka_queue_t *q)
{
    if (q)
        rd_kafka_queue_io_event_enable(q, -1, NULL, 0);
    ob_io_free(w->io);
    ob_timer_free(w->more);
    w->io = NULL;
    w->more = NULL;
    for (int i = 0; i < 2; i++)
        if (w->fds[i] >= 0)
            close(w->fds[i]);
    w->fds[0] = w->fds[1] = -1;
}

/* ---- consumer ---- */

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    ob_kconsumer_t *c = opaque;
    int cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    for (int i = 0; i < parts->cnt; i++)
        ob_logf(OB_LOG_INFO, "kafka", "%s %s [%d]",
                err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "assigned" : "revoked",
                parts->elems[i].topic, (int)parts->elems[i].partition);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_error_t *e = NULL;
        if (cooperative)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
        if (e) {
            ob_logf(OB_LOG_ERROR, "kafka", "incremental assign failed: %s",
                    rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
        /* A paused consumer stays paused for new partitions too. */
        if (c->paused)
            rd_kafka_pause_partitions(rk, parts);
        if (c->on_rebalance)
            c->on_rebalance(c, 1, parts, c->arg);
    } else {
        if (c->on_rebalance)
            c->on_rebalance(c, 0, parts, c->arg);
        if (cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
            if (e)
                rd_kafka_error_destroy(e);
        } else {
            rd_kafka_assign(rk, NULL);
        }
    }
}

static void consumer_drain(ob_kconsumer_t *c)
{
    size_t n = 0;
    while (n < c->batch) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 0);
        if (!m)
            return;
        n++;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            c->received++;
            c->on_message(c, m, c->arg);
        } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            ob_logkv(OB_LOG_WARN, "kafka", rd_kafka_message_errstr(m), "error",
                     rd_kafka_err2name(m->err), "topic",
                     m->rkt ? rd_kafka_topic_name(m->rkt) : NULL, NULL);
        }
        rd_kafka_message_destroy(m);
    }
    /* Batch used up: more may be waiting and no new wake-up will come. */
    ob_timer_start(c->wake.more, 0);
}

static void consumer_wake(ob_io_t *io, int fd, unsigned events, void *arg)
{
    ob_kconsumer_t *c = arg;
    wake_drain_pipe(fd);
    consumer_drain(c);
}

static void consumer_more(ob_timer_t *t, void *arg)
{
    consumer_drain(arg);
}

ob_kconsumer_t *ob_kconsumer_new(ob_loop_t *loop, const ob_kconsumer_opts_t *opts, char *errstr,
                                 size_t errstr_size)
{
    static const char *const defaults[] = {"enable.auto.commit",
                                           "true",
                                           "enable.auto.offset.store",
                                           "false",
                                           "auto.offset.reset",
                                           "earliest",
                                           "enable.partition.eof",
                                           "false",
                                           "client.id",
                                           "onboard",
                                           NULL};
    if (!opts->group_id || !opts->on_message || opts->ntopics == 0) {
        ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                "a consumer needs a group id, topics and a message callback");
        return NULL;
    }
    ob_kconsumer_t *c = calloc(1, sizeof(*c));
    if (!c) {
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    c->loop = loop;
    c->on_message = opts->on_message;
    c->on_rebalance = opts->on_rebalance;
    c->arg = opts->arg;
    c->batch = opts->batch ? opts->batch : 500;
    c->wake.fds[0] = c->wake.fds[1] = -1;

    rd_kafka_conf_t *conf = ob_kafka_conf_new(opts->kafka, defaults, errstr, errstr_size);
    if (!conf) {
        free(c);
        return NULL;
    }
    char err[512];
    if (rd_kafka_conf_set(conf, "group.id", opts->group_id, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "group.id: %s", err);
        rd_kafka_conf_destroy(conf);
        free(c);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, c);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!c->rk) {
        ob_errf(errstr, errstr_size, OB_ERR_KAFKA, "cannot create the consumer: %s", err);
        rd_kafka_conf_destroy(conf);
        free(c);
        return NULL;
    }
    conf = NULL; /* owned by the handle now */
    rd_kafka_poll_set_consumer(c->rk);
    c->q = rd_kafka_queue_get_consumer(c->rk);
    if (wake_init(&c->wake, loop, c->q, consumer_wake, consumer_more, c, errstr, errstr_size) !=
        OB_OK) {
        ob_kconsumer_free(c);
        return NULL;
    }
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new((int)opts->ntopics);
    for (size_t i = 0; i < opts->ntopics; i++)
        rd_kafka_topic_partition_list_add(subs, opts->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e) {
        ob_errf(errstr, errstr_size, OB_ERR_KAFKA, "subscribe failed: %s", rd_kafka_err2str(e));
        ob_kconsumer_free(c);
        return NULL;
    }
    /* Anything queued before the io event was enabled. */
    ob_timer_start(c->wake.more, 0);
    return c;
}

ob_err_t ob_kconsumer_store(ob_kconsumer_t *c, const char *topic, int32_t partition,
                            int64_t next_offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = next_offset;
    rd_kafka_resp_err_t e = rd_kafka_offsets_store(c->rk, l);
    if (!e && l->elems[0].err)
        e = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    /* __STATE: the partition is no longer assigned; the new owner redoes it. */
    return e ? OB_ERR_KAFKA : OB_OK;
}

ob_err_t ob_kconsumer_commit(ob_kconsumer_t *c)
{
    rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, NULL, 1);
    return e && e != RD_KAFKA_RESP_ERR__NO_OFFSET ? OB_ERR_KAFKA : OB_OK;
}

static ob_err_t pause_resume(ob_kconsumer_t *c, rd_kafka_topic_partition_list_t *parts, int pause)
{
    rd_kafka_topic_partition_list_t *own = NULL;
    if (!parts) {
        if (rd_kafka_assignment(c->rk, &own))
            return OB_ERR_KAFKA;
        parts = own;
        c->paused = pause;
    }
    rd_kafka_resp_err_t e =
        pause ? rd_kafka_pause_partitions(c->rk, parts) : rd_kafka_resume_partitions(c->rk, parts);
    if (own)
        rd_kafka_topic_partition_list_destroy(own);
    return e ? OB_ERR_KAFKA : OB_OK;
}

ob_err_t ob_kconsumer_pause(ob_kconsumer_t *c, rd_kafka_topic_partition_list_t *parts)
{
    return pause_resume(c, parts, 1);
}

ob_err_t ob_kconsumer_resume(ob_kconsumer_t *c, rd_kafka_topic_partition_list_t *parts)
{
    return pause_resume(c, parts, 0);
}

int ob_kconsumer_paused(const ob_kconsumer_t *c)
{
    return c->paused;
}

rd_kafka_topic_partition_list_t *ob_kconsumer_assignment(ob_kconsumer_t *c)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(c->rk, &l))
        return NULL;
    return l;
}

/* Leave the group through the non-blocking close (rd_kafka_consumer_close_queue)
 * served here with a deadline: a plain rd_kafka_consumer_close() can wait for
 * ever when the brokers are gone, and shutdown must be bounded. */
void ob_kconsumer_close(ob_kconsumer_t *c)
{
    if (!c || c->closed)
        return;
    c->closed = 1;
    rd_kafka_queue_t *q = rd_kafka_queue_new(c->rk);
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(c->rk, q);
    if (e) {
        ob_logf(OB_LOG_WARN, "kafka", "consumer close: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rd_kafka_queue_destroy(q);
        c->close_timed_out = 1;
        return;
    }
    uint64_t end = ob_wall_ms() + OB_KAFKA_CLOSE_TIMEOUT_MS;
    while (!rd_kafka_consumer_closed(c->rk)) {
        if (ob_wall_ms() >= end) {
            ob_logf(OB_LOG_WARN, "kafka",
                    "consumer close did not finish within %d ms (brokers unreachable?): "
                    "leaving without a final commit",
                    OB_KAFKA_CLOSE_TIMEOUT_MS);
            c->close_timed_out = 1;
            break;
        }
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);
        if (!ev)
            continue;
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE) {
            rd_kafka_topic_partition_list_t *parts = rd_kafka_event_topic_partition_list(ev);
            if (rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && parts &&
                c->on_rebalance)
                c->on_rebalance(c, 0, parts, c->arg);
            if (!strcmp(rd_kafka_rebalance_protocol(c->rk), "COOPERATIVE")) {
                rd_kafka_error_t *ue = parts ? rd_kafka_incremental_unassign(c->rk, parts) : NULL;
                if (ue)
                    rd_kafka_error_destroy(ue);
            } else {
                rd_kafka_assign(c->rk, NULL);
            }
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
}

void ob_kconsumer_free(ob_kconsumer_t *c)
{
    if (!c)
        return;
    wake_fini(&c->wake, c->q);
    if (c->q)
        rd_kafka_queue_destroy(c->q);
    if (c->rk) {
        if (!c->closed)
            ob_kconsumer_close(c);
        if (c->close_timed_out)
            rd_kafka_destroy_flags(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        else
            rd_kafka_destroy(c->rk);
    }
    free(c);
}

rd_kafka_t *ob_kconsumer_handle(ob_kconsumer_t *c)
{
    return c->rk;
}

uint64_t ob_kconsumer_received(const ob_kconsumer_t *c)
{
    return c->received;
}

/* ---- producer ---- */

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    ob_kproducer_t *p = opaque;
    if (!p->on_delivery)
        return;
    p->on_delivery(p, m->err ? OB_ERR_KAFKA : OB_OK, m->err ? rd_kafka_err2str(m->err) : NULL, m,
                   m->_private, p->arg);
}

static void producer_drain(ob_kproducer_t *p)
{
    /* rd_kafka_poll(0) serves every queued event, so it drains fully. */
    rd_kafka_poll(p->rk, 0);
}

static void producer_wake(ob_io_t *io, int fd, unsigned events, void *arg)
{
    wake_drain_pipe(fd);
    producer_drain(arg);
}

static void producer_more(ob_timer_t *t, void *arg)
{
    producer_drain(arg);
}

ob_kproducer_t *ob_kproducer_new(ob_loop_t *loop, const ob_kproducer_opts_t *opts, char *errstr,
                                 size_t errstr_size)
{
    /* linger.ms 25: hand-offs go out in batches (40 % less of the broker's
     * CPU at 10,000 accounts in a burst, against 5 ms); 25 ms per stage is
     * nothing next to an onboarding. kafka.linger.ms overrides it. */
    static const char *const defaults[] = {
        "enable.idempotence", "true",    "acks", "all", "linger.ms", "25",
        "client.id",          "onboard", NULL};
    ob_kproducer_t *p = calloc(1, sizeof(*p));
    if (!p) {
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    p->loop = loop;
    p->on_delivery = opts ? opts->on_delivery : NULL;
    p->arg = opts ? opts->arg : NULL;
    p->wake.fds[0] = p->wake.fds[1] = -1;
    rd_kafka_conf_t *conf =
        ob_kafka_conf_new(opts ? opts->kafka : NULL, defaults, errstr, errstr_size);
    if (!conf) {
        free(p);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_opaque(conf, p);
    char err[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!p->rk) {
        ob_errf(errstr, errstr_size, OB_ERR_KAFKA, "cannot create the producer: %s", err);
        rd_kafka_conf_destroy(conf);
        free(p);
        return NULL;
    }
    p->q = rd_kafka_queue_get_main(p->rk);
    if (wake_init(&p->wake, loop, p->q, producer_wake, producer_more, p, errstr, errstr_size) !=
        OB_OK) {
        ob_kproducer_free(p);
        return NULL;
    }
    return p;
}

ob_err_t ob_kproducer_send(ob_kproducer_t *p, const char *topic, int32_t partition, const void *key,
                           size_t keylen, const void *value, size_t vlen,
                           rd_kafka_headers_t *headers, void *msg_opaque, char *errstr,
                           size_t errstr_size)
{
    rd_kafka_resp_err_t e;
    if (headers)
        e = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                              RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE((void *)value, vlen),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
                              RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
    else
        e = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                              RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE((void *)value, vlen),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
    if (e) {
        if (headers)
            rd_kafka_headers_destroy(headers); /* not taken over on failure */
        return ob_errf(errstr, errstr_size, OB_ERR_KAFKA, "produce to %s failed: %s", topic,
                       rd_kafka_err2str(e));
    }
    return OB_OK;
}

int ob_kproducer_outstanding(ob_kproducer_t *p)
{
    return rd_kafka_outq_len(p->rk);
}

ob_err_t ob_kproducer_flush(ob_kproducer_t *p, int timeout_ms)
{
    uint64_t end = ob_loop_update_time(p->loop) + (uint64_t)timeout_ms;
    while (rd_kafka_outq_len(p->rk) > 0) {
        uint64_t now = ob_loop_update_time(p->loop);
        if (now >= end)
            return OB_ERR_TIMEOUT;
        rd_kafka_flush(p->rk, 0);
        uint64_t left = end - now;
        ob_loop_run_once(p->loop, left > 50 ? 50 : (int)left);
    }
    producer_drain(p);
    return OB_OK;
}

void ob_kproducer_free(ob_kproducer_t *p)
{
    if (!p)
        return;
    wake_fini(&p->wake, p->q);
    if (p->q)
        rd_kafka_queue_destroy(p->q);
    if (p->rk)
        rd_kafka_destroy(p->rk);
    free(p);
}

rd_kafka_t *ob_kproducer_handle(ob_kproducer_t *p)
{
    return p->rk;
}
