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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ob_alloc.h"
#include "ob_log.h"

typedef struct wake_s {
    int fds[2];
    ob_io_t *io;
    ob_timer_t *more; /* continue a partial drain */
} wake_t;

/* A partition's end and the group's committed offset in it, as the brokers
 * last said (end -1: not known; committed -1: none, -2: not known). */
typedef struct end_s {
    char *topic;
    int32_t partition;
    int64_t end;
    int64_t committed;
} end_t;

struct ob_kconsumer_s {
    ob_loop_t *loop;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    wake_t wake;
    rd_kafka_queue_t *aq; /* ListOffsets results */
    wake_t awake;
    int ends_asked; /* a ListOffsets is out */
    end_t *ends;
    size_t nends, cap_ends;
    ob_timer_t *keepalive; /* polls an idle consumer (max.poll.interval.ms) */
    ob_kconsumer_msg_cb *on_message;
    ob_kconsumer_rebalance_cb *on_rebalance;
    void *arg;
    size_t batch;
    int paused;
    int closed;
    int close_timed_out;
    uint64_t received;
    uint64_t assign_failures; /* assignment changes librdkafka refused */
};

/* A message kept while the transactional producer cannot produce. */
typedef struct txn_msg_s {
    struct txn_msg_s *next;
    char *topic;
    int32_t partition;
    void *key, *value;
    size_t keylen, vlen;
    rd_kafka_headers_t *headers;
    void *opaque;
} txn_msg_t;

typedef enum txn_state_e { T_INIT = 0, T_IDLE, T_OPEN, T_BUSY, T_FATAL } txn_state_t;
typedef enum txn_op_e { OP_NONE = 0, OP_INIT, OP_COMMIT, OP_ABORT, OP_QUIT } txn_op_t;

struct ob_kproducer_s {
    ob_loop_t *loop;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    wake_t wake;
    ob_kproducer_dr_cb *on_delivery;
    void *arg;
    /* Transactions: the state is the loop thread's; op, its inputs and res
     * are shared with the thread under mu. */
    int txn;
    txn_state_t tstate;
    ob_ktxn_cb *on_txn;
    size_t txn_msgs;           /* produced into the open transaction */
    txn_msg_t *qhead, **qtail; /* waiting for the next transaction */
    size_t nqueued;
    pthread_t thr;
    int thr_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    txn_op_t op;      /* for the thread (OP_NONE: nothing to do) */
    txn_op_t op_done; /* the thread finished this one (OP_NONE: none) */
    int quit;
    rd_kafka_topic_partition_list_t *op_offsets;
    rd_kafka_consumer_group_metadata_t *op_cgmd;
    ob_ktxn_result_t res;
    wake_t twake;
    rd_kafka_topic_t *known[OB_KPRODUCER_KNOWN_MAX]; /* ob_kproducer_learn_topic */
    size_t nknown;
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
    if (q)
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

/* Take (assign 1) or give up (0) parts, incrementally or eagerly. 1 when
 * done; 0 when librdkafka refused, which is logged with its reason and
 * counted (ob_kconsumer_assign_failures): the group goes on without those
 * partitions here until the next rebalance. */
static int assignment_changed(ob_kconsumer_t *c, int cooperative,
                              rd_kafka_topic_partition_list_t *parts, int assign)
{
    const char *why = NULL;
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t re = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (cooperative)
        e = assign ? rd_kafka_incremental_assign(c->rk, parts)
                   : rd_kafka_incremental_unassign(c->rk, parts);
    else
        re = rd_kafka_assign(c->rk, assign ? parts : NULL);
    if (e)
        why = rd_kafka_error_string(e);
    else if (re)
        why = rd_kafka_err2str(re);
    if (why) {
        c->assign_failures++;
        char list[512] = "";
        size_t n = 0;
        for (int i = 0; parts && i < parts->cnt && n + 1 < sizeof(list); i++)
            n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s [%d]", i ? ", " : "",
                                  parts->elems[i].topic, (int)parts->elems[i].partition);
        ob_logkv(OB_LOG_ERROR, "kafka",
                 assign ? "partitions assigned by the group could not be taken"
                        : "partitions revoked by the group could not be given up",
                 "error", why, "partitions", list, NULL);
    }
    if (e)
        rd_kafka_error_destroy(e);
    return why == NULL;
}

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
        /* Partitions that could not be taken are not fetched: the caller is
         * not told it owns them (it would track work that never comes). */
        if (!assignment_changed(c, cooperative, parts, 1))
            return;
        /* A paused consumer stays paused for new partitions too. */
        if (c->paused)
            rd_kafka_pause_partitions(rk, parts);
        if (c->on_rebalance)
            c->on_rebalance(c, 1, parts, c->arg);
    } else {
        if (c->on_rebalance)
            c->on_rebalance(c, 0, parts, c->arg);
        assignment_changed(c, cooperative, parts, 0);
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

/* librdkafka takes a member that has not polled for max.poll.interval.ms
 * (5 minutes) as stuck and makes it leave the group; a consumer woken only by
 * its queue would not poll at all while there is nothing to consume. */
#define CONSUMER_KEEPALIVE_MS 1000

static void consumer_keepalive(ob_timer_t *t, void *arg)
{
    ob_kconsumer_t *c = arg;
    consumer_drain(c);
    ob_timer_start(t, CONSUMER_KEEPALIVE_MS);
}

static void consumer_more(ob_timer_t *t, void *arg)
{
    consumer_drain(arg);
}

/* ---- partition ends ---- */

static end_t *end_find(ob_kconsumer_t *c, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < c->nends; i++)
        if (c->ends[i].partition == partition && !strcmp(c->ends[i].topic, topic))
            return &c->ends[i];
    return NULL;
}

static end_t *end_get(ob_kconsumer_t *c, const char *topic, int32_t partition)
{
    end_t *e = end_find(c, topic, partition);
    if (!e) {
        if (c->nends == c->cap_ends) {
            size_t cap = c->cap_ends ? c->cap_ends * 2 : 16;
            end_t *n = ob_realloc(c->ends, cap * sizeof(*n));
            if (!n)
                return NULL;
            c->ends = n;
            c->cap_ends = cap;
        }
        char *t = ob_strdup(topic);
        if (!t)
            return NULL;
        e = &c->ends[c->nends++];
        e->topic = t;
        e->partition = partition;
        e->end = -1;
        e->committed = -2;
    }
    return e;
}

static void ends_drain(ob_kconsumer_t *c)
{
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(c->aq, 0))) {
        if (rd_kafka_event_error(ev))
            ob_logkv(OB_LOG_DEBUG, "kafka", "listing partition ends failed", "error",
                     rd_kafka_event_error_string(ev), NULL);
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_LISTOFFSETS_RESULT) {
            c->ends_asked = 0;
            const rd_kafka_ListOffsets_result_t *res = rd_kafka_event_ListOffsets_result(ev);
            size_t n = 0;
            const rd_kafka_ListOffsetsResultInfo_t **infos =
                res ? rd_kafka_ListOffsets_result_infos(res, &n) : NULL;
            for (size_t i = 0; i < n; i++) {
                const rd_kafka_topic_partition_t *tp =
                    rd_kafka_ListOffsetsResultInfo_topic_partition(infos[i]);
                end_t *e = tp && !tp->err ? end_get(c, tp->topic, tp->partition) : NULL;
                if (e && tp->offset > e->end)
                    e->end = tp->offset;
            }
        }
        rd_kafka_event_destroy(ev);
    }
}

static void ends_wake(ob_io_t *io, int fd, unsigned events, void *arg)
{
    wake_drain_pipe(fd);
    ends_drain(arg);
}

static void ends_more(ob_timer_t *t, void *arg)
{
    ends_drain(arg);
}

ob_err_t ob_kconsumer_refresh_ends(ob_kconsumer_t *c)
{
    if (c->ends_asked || c->closed)
        return OB_OK;
    rd_kafka_topic_partition_list_t *own = NULL;
    if (rd_kafka_assignment(c->rk, &own) || !own)
        return OB_ERR_KAFKA;
    if (own->cnt == 0) {
        rd_kafka_topic_partition_list_destroy(own);
        return OB_OK;
    }
    for (int i = 0; i < own->cnt; i++)
        own->elems[i].offset = RD_KAFKA_OFFSET_SPEC_LATEST;
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(c->rk, RD_KAFKA_ADMIN_OP_LISTOFFSETS);
    char err[256];
    rd_kafka_error_t *e =
        o ? rd_kafka_AdminOptions_set_isolation_level(o, RD_KAFKA_ISOLATION_LEVEL_READ_COMMITTED)
          : NULL;
    if (e)
        rd_kafka_error_destroy(e);
    if (o)
        rd_kafka_AdminOptions_set_request_timeout(o, 10000, err, sizeof(err));
    if (o) {
        rd_kafka_ListOffsets(c->rk, own, o, c->aq);
        c->ends_asked = 1;
        rd_kafka_AdminOptions_destroy(o);
    }
    rd_kafka_topic_partition_list_destroy(own);
    return o ? OB_OK : OB_ERR_NOMEM;
}

void ob_kconsumer_note_committed(ob_kconsumer_t *c, const rd_kafka_topic_partition_list_t *l)
{
    for (int i = 0; l && i < l->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &l->elems[i];
        end_t *e = tp->err ? NULL : end_get(c, tp->topic, tp->partition);
        if (e)
            e->committed = tp->offset >= 0 ? tp->offset : -1;
    }
}

int64_t ob_kconsumer_start(ob_kconsumer_t *c, const char *topic, int32_t partition)
{
    rd_kafka_topic_partition_list_t *pos = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(pos, topic, partition);
    int64_t next = -1;
    if (rd_kafka_position(c->rk, pos) == RD_KAFKA_RESP_ERR_NO_ERROR && pos->elems[0].offset >= 0)
        next = pos->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(pos);
    if (next >= 0)
        return next;
    const end_t *e = end_find(c, topic, partition);
    if (e && e->committed >= 0)
        return e->committed;
    /* Nothing committed: the consumer starts at the log's start (auto.offset.reset
     * earliest), 0 until a fetch has told where that is. */
    int64_t lo = -1, hi = -1;
    if (!e || e->committed != -1)
        return -1;
    if (rd_kafka_get_watermark_offsets(c->rk, topic, partition, &lo, &hi) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        lo < 0)
        lo = 0;
    return lo;
}

int64_t ob_kconsumer_end(ob_kconsumer_t *c, const char *topic, int32_t partition)
{
    int64_t lo = -1, hi = -1;
    if (rd_kafka_get_watermark_offsets(c->rk, topic, partition, &lo, &hi) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
        hi = -1;
    const end_t *e = end_find(c, topic, partition);
    return e && e->end > hi ? e->end : hi;
}

ob_kconsumer_t *ob_kconsumer_new(ob_loop_t *loop, const ob_kconsumer_opts_t *opts, char *errstr,
                                 size_t errstr_size)
{
    /* cooperative-sticky: a join or a leave moves only the partitions that
     * change owner; the others keep their work. A member that died without
     * leaving is noticed within 10 s (Kafka's default is 45 s), and
     * rebalances are heard of within a second. fetch.wait.max.ms 100: the
     * broker does not always answer a waiting fetch when a message arrives
     * (measured: an enqueued request sat out the whole 500 ms default), so
     * an idle worker asks again every 100 ms (a busy one never waits); it
     * costs the broker about 1 % of a core per idle consumer (50 ms: 2 %). */
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
                                           "partition.assignment.strategy",
                                           "cooperative-sticky",
                                           "session.timeout.ms",
                                           "10000",
                                           "heartbeat.interval.ms",
                                           "1000",
                                           "fetch.wait.max.ms",
                                           "100",
                                           NULL};
    if (!opts->group_id || !opts->on_message || opts->ntopics == 0) {
        ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                "a consumer needs a group id, topics and a message callback");
        return NULL;
    }
    ob_kconsumer_t *c = ob_calloc(1, sizeof(*c));
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
    c->awake.fds[0] = c->awake.fds[1] = -1;

    rd_kafka_conf_t *conf = ob_kafka_conf_new(opts->kafka, defaults, errstr, errstr_size);
    if (!conf) {
        free(c);
        return NULL;
    }
    char err[512];
    const char *set[8];
    size_t nset = 0;
    set[nset++] = "group.id";
    set[nset++] = opts->group_id;
    if (opts->transactional) {
        set[nset++] = "enable.auto.commit";
        set[nset++] = "false";
        set[nset++] = "isolation.level";
        set[nset++] = "read_committed";
    }
    if (opts->group_instance_id && opts->group_instance_id[0]) {
        set[nset++] = "group.instance.id";
        set[nset++] = opts->group_instance_id;
    }
    for (size_t i = 0; i < nset; i += 2) {
        if (rd_kafka_conf_set(conf, set[i], set[i + 1], err, sizeof(err)) != RD_KAFKA_CONF_OK) {
            ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "%s: %s", set[i], err);
            rd_kafka_conf_destroy(conf);
            free(c);
            return NULL;
        }
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
    c->aq = rd_kafka_queue_new(c->rk);
    if (wake_init(&c->wake, loop, c->q, consumer_wake, consumer_more, c, errstr, errstr_size) !=
            OB_OK ||
        wake_init(&c->awake, loop, c->aq, ends_wake, ends_more, c, errstr, errstr_size) != OB_OK) {
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
    c->keepalive = ob_timer_new(loop, consumer_keepalive, c);
    if (c->keepalive)
        ob_timer_start(c->keepalive, CONSUMER_KEEPALIVE_MS);
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
    if (c->keepalive)
        ob_timer_stop(c->keepalive);
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
            int coop = !strcmp(rd_kafka_rebalance_protocol(c->rk), "COOPERATIVE");
            if (parts || !coop)
                assignment_changed(c, coop, parts, 0);
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
}

void ob_kconsumer_free(ob_kconsumer_t *c)
{
    if (!c)
        return;
    ob_timer_free(c->keepalive);
    c->keepalive = NULL;
    wake_fini(&c->wake, c->q);
    if (c->q)
        rd_kafka_queue_destroy(c->q);
    wake_fini(&c->awake, c->aq);
    if (c->aq)
        rd_kafka_queue_destroy(c->aq);
    for (size_t i = 0; i < c->nends; i++)
        free(c->ends[i].topic);
    free(c->ends);
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

uint64_t ob_kconsumer_assign_failures(const ob_kconsumer_t *c)
{
    return c->assign_failures;
}

uint64_t ob_kconsumer_received(const ob_kconsumer_t *c)
{
    return c->received;
}

/* ---- producer ---- */

static void delivered(ob_kproducer_t *p, const rd_kafka_message_t *m)
{
    if (!p->on_delivery)
        return;
    p->on_delivery(p, m->err ? OB_ERR_KAFKA : OB_OK, m->err ? rd_kafka_err2str(m->err) : NULL, m,
                   m->_private, p->arg);
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    delivered(opaque, m);
}

static void producer_drain(ob_kproducer_t *p)
{
    if (!p->txn) {
        /* rd_kafka_poll(0) serves every queued event, so it drains fully. */
        rd_kafka_poll(p->rk, 0);
        return;
    }
    /* Delivery reports as events: a commit flushes on the producer's thread,
     * and with callbacks librdkafka would run them there. Other events
     * (errors, logs) are served through their callbacks by the poll. */
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(p->q, 0))) {
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_DR) {
            const rd_kafka_message_t *m;
            while ((m = rd_kafka_event_message_next(ev)))
                delivered(p, m);
        }
        rd_kafka_event_destroy(ev);
    }
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

/* ---- transactions: the producer's thread ---- */

#define TXN_CALL_TIMEOUT_MS 10000
#define TXN_RETRIES         6

static void txn_error(ob_ktxn_result_t *res, const char *what, rd_kafka_error_t *e)
{
    snprintf(res->message, sizeof(res->message), "%s: %s: %s", what, rd_kafka_error_name(e),
             rd_kafka_error_string(e));
    res->err = OB_ERR_KAFKA;
    if (rd_kafka_error_is_fatal(e))
        res->fatal = 1;
    rd_kafka_error_destroy(e);
}

static int txn_quitting(ob_kproducer_t *p)
{
    pthread_mutex_lock(&p->mu);
    int q = p->quit;
    pthread_mutex_unlock(&p->mu);
    return q;
}

static void txn_do_init(ob_kproducer_t *p, ob_ktxn_result_t *res)
{
    for (;;) {
        rd_kafka_error_t *e = rd_kafka_init_transactions(p->rk, TXN_CALL_TIMEOUT_MS);
        if (!e)
            return;
        if (!rd_kafka_error_is_retriable(e) || txn_quitting(p)) {
            txn_error(res, "init_transactions", e);
            res->fatal = 1;
            return;
        }
        ob_logf(OB_LOG_WARN, "kafka", "init_transactions: %s (retrying)", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

static void txn_do_abort(ob_kproducer_t *p, ob_ktxn_result_t *res)
{
    for (int i = 0;; i++) {
        rd_kafka_error_t *e = rd_kafka_abort_transaction(p->rk, TXN_CALL_TIMEOUT_MS);
        if (!e)
            break;
        if (!rd_kafka_error_is_retriable(e) || i >= TXN_RETRIES || txn_quitting(p)) {
            txn_error(res, "abort_transaction", e);
            res->fatal = 1;
            return;
        }
        rd_kafka_error_destroy(e);
    }
    res->aborted = 1;
    res->err = OB_ERR_KAFKA;
    if (!res->message[0])
        snprintf(res->message, sizeof(res->message), "aborted");
}

/* After a failed call of a commit: 1 to make it again (retriable), 0 when
 * the failure is settled in res (fatal, or the transaction aborted). */
static int txn_failed(ob_kproducer_t *p, rd_kafka_error_t *e, const char *what, int attempt,
                      ob_ktxn_result_t *res)
{
    int fatal = rd_kafka_error_is_fatal(e);
    if (!fatal && !rd_kafka_error_txn_requires_abort(e) && rd_kafka_error_is_retriable(e) &&
        attempt < TXN_RETRIES && !txn_quitting(p)) {
        rd_kafka_error_destroy(e);
        return 1;
    }
    txn_error(res, what, e);
    if (!fatal)
        txn_do_abort(p, res);
    return 0;
}

static void txn_do_commit(ob_kproducer_t *p, rd_kafka_topic_partition_list_t *offsets,
                          rd_kafka_consumer_group_metadata_t *cgmd, ob_ktxn_result_t *res)
{
    rd_kafka_error_t *e;
    for (int i = 0; offsets && offsets->cnt > 0; i++) {
        e = rd_kafka_send_offsets_to_transaction(p->rk, offsets, cgmd, TXN_CALL_TIMEOUT_MS);
        if (!e)
            break;
        if (!txn_failed(p, e, "send_offsets_to_transaction", i, res))
            return;
    }
    for (int i = 0;; i++) {
        e = rd_kafka_commit_transaction(p->rk, TXN_CALL_TIMEOUT_MS);
        if (!e || !txn_failed(p, e, "commit_transaction", i, res))
            return;
    }
}

static void *txn_thread(void *arg)
{
    ob_kproducer_t *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->op == OP_NONE)
            pthread_cond_wait(&p->cv, &p->mu);
        txn_op_t op = p->op;
        if (op == OP_QUIT)
            break;
        rd_kafka_topic_partition_list_t *offsets = p->op_offsets;
        rd_kafka_consumer_group_metadata_t *cgmd = p->op_cgmd;
        p->op_offsets = NULL;
        p->op_cgmd = NULL;
        pthread_mutex_unlock(&p->mu);
        ob_ktxn_result_t res;
        memset(&res, 0, sizeof(res));
        if (op == OP_INIT)
            txn_do_init(p, &res);
        else if (op == OP_ABORT)
            txn_do_abort(p, &res);
        else
            txn_do_commit(p, offsets, cgmd, &res);
        if (offsets)
            rd_kafka_topic_partition_list_destroy(offsets);
        if (cgmd)
            rd_kafka_consumer_group_metadata_destroy(cgmd);
        pthread_mutex_lock(&p->mu);
        p->res = res;
        p->op = OP_NONE;
        p->op_done = op;
        pthread_cond_broadcast(&p->cv);
        if (p->twake.fds[1] >= 0) {
            ssize_t wr = write(p->twake.fds[1], "t", 1);
            (void)wr; /* a full pipe already wakes the loop */
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- transactions: the loop thread ---- */

static void txn_start_op(ob_kproducer_t *p, txn_op_t op,
                         const rd_kafka_topic_partition_list_t *offsets, rd_kafka_t *consumer)
{
    p->tstate = T_BUSY;
    pthread_mutex_lock(&p->mu);
    p->op = op;
    p->op_done = OP_NONE;
    p->op_offsets =
        offsets && offsets->cnt > 0 ? rd_kafka_topic_partition_list_copy(offsets) : NULL;
    p->op_cgmd = p->op_offsets && consumer ? rd_kafka_consumer_group_metadata(consumer) : NULL;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static rd_kafka_resp_err_t produce_now(ob_kproducer_t *p, const char *topic, int32_t partition,
                                       const void *key, size_t keylen, const void *value,
                                       size_t vlen, rd_kafka_headers_t *headers, void *opaque)
{
    if (headers)
        return rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                 RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE((void *)value, vlen),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(opaque),
                                 RD_KAFKA_V_END);
    return rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                             RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE((void *)value, vlen),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(opaque),
                             RD_KAFKA_V_END);
}

/* Open a transaction if none is; 0 when one is open. */
static int txn_open(ob_kproducer_t *p, char *errstr, size_t errstr_size)
{
    if (p->tstate == T_OPEN)
        return 0;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(p->rk);
    if (e) {
        ob_errf(errstr, errstr_size, OB_ERR_KAFKA, "begin_transaction: %s",
                rd_kafka_error_string(e));
        if (rd_kafka_error_is_fatal(e))
            p->tstate = T_FATAL;
        rd_kafka_error_destroy(e);
        return -1;
    }
    p->tstate = T_OPEN;
    p->txn_msgs = 0;
    return 0;
}

static void txn_msg_free(txn_msg_t *m)
{
    if (m->headers)
        rd_kafka_headers_destroy(m->headers);
    free(m->topic);
    free(m->key);
    free(m->value);
    free(m);
}

/* Produce what waited for a transaction, in order. A message librdkafka
 * refuses now (its queue is full) stays first in line for the next try. */
static void txn_send_queued(ob_kproducer_t *p)
{
    char err[256];
    while (p->qhead && (p->tstate == T_IDLE || p->tstate == T_OPEN)) {
        txn_msg_t *m = p->qhead;
        if (txn_open(p, err, sizeof(err)) != 0)
            return;
        rd_kafka_resp_err_t e = produce_now(p, m->topic, m->partition, m->key, m->keylen, m->value,
                                            m->vlen, m->headers, m->opaque);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            ob_timer_start(p->twake.more, 10);
            return;
        }
        if (e) {
            /* Never produced: report it failed, as a delivery would. */
            rd_kafka_message_t fake;
            memset(&fake, 0, sizeof(fake));
            fake.err = e;
            fake._private = m->opaque;
            if (m->headers)
                rd_kafka_headers_destroy(m->headers);
            m->headers = NULL;
            delivered(p, &fake);
        } else {
            m->headers = NULL; /* the message took them */
            p->txn_msgs++;
        }
        p->qhead = m->next;
        if (!p->qhead)
            p->qtail = &p->qhead;
        p->nqueued--;
        txn_msg_free(m);
    }
}

static void txn_finished(ob_kproducer_t *p)
{
    pthread_mutex_lock(&p->mu);
    txn_op_t op = p->op_done;
    ob_ktxn_result_t res = p->res;
    p->op_done = OP_NONE;
    pthread_mutex_unlock(&p->mu);
    if (op == OP_NONE) {
        txn_send_queued(p); /* a retry after librdkafka's queue was full */
        return;
    }
    p->tstate = res.fatal ? T_FATAL : T_IDLE;
    if (res.fatal)
        ob_logf(OB_LOG_ERROR, "kafka", "transactional producer failed: %s", res.message);
    else if (res.aborted)
        ob_logf(op == OP_ABORT ? OB_LOG_INFO : OB_LOG_WARN, "kafka", "transaction aborted: %s",
                res.message);
    /* Delivery reports of the transaction come before its outcome. */
    producer_drain(p);
    if (op != OP_INIT && p->on_txn)
        p->on_txn(p, &res, p->arg);
    txn_send_queued(p);
}

static void txn_wake(ob_io_t *io, int fd, unsigned events, void *arg)
{
    wake_drain_pipe(fd);
    txn_finished(arg);
}

static void txn_more(ob_timer_t *t, void *arg)
{
    txn_finished(arg);
}

size_t ob_kproducer_txn_pending(const ob_kproducer_t *p)
{
    return p->txn ? (p->tstate == T_OPEN ? p->txn_msgs : 0) + p->nqueued : 0;
}

int ob_kproducer_txn_ready(const ob_kproducer_t *p)
{
    return !p->txn || (p->tstate != T_INIT && p->tstate != T_FATAL);
}

int ob_kproducer_txn_busy(const ob_kproducer_t *p)
{
    return p->txn && (p->tstate == T_BUSY || p->tstate == T_INIT);
}

ob_err_t ob_kproducer_txn_commit(ob_kproducer_t *p, const rd_kafka_topic_partition_list_t *offsets,
                                 rd_kafka_t *consumer)
{
    if (!p->txn)
        return OB_ERR_INVALID_ARG;
    if (p->tstate == T_FATAL)
        return OB_ERR_KAFKA;
    if (p->tstate == T_BUSY || p->tstate == T_INIT)
        return OB_ERR_STATE;
    if (p->tstate == T_IDLE) {
        if (!offsets || offsets->cnt == 0)
            return OB_OK;
        char err[256];
        if (txn_open(p, err, sizeof(err)) != 0)
            return OB_ERR_KAFKA;
    }
    txn_start_op(p, OP_COMMIT, offsets, consumer);
    return OB_OK;
}

/* Wait for the thread's operation under way and report it. */
static ob_err_t txn_wait(ob_kproducer_t *p, uint64_t end)
{
    while (p->tstate == T_BUSY || p->tstate == T_INIT) {
        pthread_mutex_lock(&p->mu);
        while (p->op_done == OP_NONE && p->op != OP_NONE && ob_wall_ms() < end) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&p->cv, &p->mu, &ts);
            /* Delivery reports the commit's flush waits for are the loop's to
             * serve; serve them here (events only: nothing else runs). */
            pthread_mutex_unlock(&p->mu);
            producer_drain(p);
            pthread_mutex_lock(&p->mu);
        }
        int done = p->op_done != OP_NONE;
        pthread_mutex_unlock(&p->mu);
        if (!done)
            return OB_ERR_TIMEOUT;
        txn_finished(p);
    }
    return OB_OK;
}

ob_err_t ob_kproducer_txn_abort(ob_kproducer_t *p)
{
    if (!p->txn)
        return OB_ERR_INVALID_ARG;
    if (p->tstate == T_FATAL)
        return OB_ERR_KAFKA;
    if (p->tstate == T_BUSY || p->tstate == T_INIT)
        return OB_ERR_STATE;
    if (p->tstate == T_OPEN)
        txn_start_op(p, OP_ABORT, NULL, NULL);
    return OB_OK;
}

ob_err_t ob_kproducer_txn_wait(ob_kproducer_t *p, int timeout_ms)
{
    if (!p->txn)
        return OB_OK;
    return txn_wait(p, ob_wall_ms() + (uint64_t)timeout_ms);
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
    ob_kproducer_t *p = ob_calloc(1, sizeof(*p));
    if (!p) {
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    p->loop = loop;
    p->on_delivery = opts ? opts->on_delivery : NULL;
    p->arg = opts ? opts->arg : NULL;
    p->wake.fds[0] = p->wake.fds[1] = -1;
    p->twake.fds[0] = p->twake.fds[1] = -1;
    p->qtail = &p->qhead;
    p->txn = opts && opts->transactional_id && opts->transactional_id[0];
    p->on_txn = opts ? opts->on_txn : NULL;
    rd_kafka_conf_t *conf =
        ob_kafka_conf_new(opts ? opts->kafka : NULL, defaults, errstr, errstr_size);
    if (!conf) {
        free(p);
        return NULL;
    }
    char err[512];
    if (p->txn) {
        /* A transaction left open by a predecessor with the same id (a
         * restarted replica) is aborted by init_transactions; one left by a
         * process that is gone for good holds back read_committed consumers
         * of its partitions until this timeout. */
        if (rd_kafka_conf_set(conf, "transactional.id", opts->transactional_id, err, sizeof(err)) !=
                RD_KAFKA_CONF_OK ||
            (!ob_cfg_kv_get(opts->kafka, "transaction.timeout.ms") &&
             rd_kafka_conf_set(conf, "transaction.timeout.ms", "10000", err, sizeof(err)) !=
                 RD_KAFKA_CONF_OK)) {
            ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "transactions: %s", err);
            rd_kafka_conf_destroy(conf);
            free(p);
            return NULL;
        }
        rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR);
    } else {
        rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    }
    rd_kafka_conf_set_opaque(conf, p);
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
    if (p->txn) {
        p->tstate = T_INIT;
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->cv, NULL);
        if (wake_init(&p->twake, loop, NULL, txn_wake, txn_more, p, errstr, errstr_size) != OB_OK ||
            pthread_create(&p->thr, NULL, txn_thread, p) != 0) {
            ob_errf(errstr, errstr_size, OB_ERR_KAFKA, "cannot start the transaction thread");
            ob_kproducer_free(p);
            return NULL;
        }
        p->thr_started = 1;
        txn_start_op(p, OP_INIT, NULL, NULL);
        p->tstate = T_INIT;
    }
    return p;
}

ob_err_t ob_kproducer_send(ob_kproducer_t *p, const char *topic, int32_t partition, const void *key,
                           size_t keylen, const void *value, size_t vlen,
                           rd_kafka_headers_t *headers, void *msg_opaque, char *errstr,
                           size_t errstr_size)
{
    if (p->txn) {
        if (p->tstate == T_FATAL) {
            if (headers)
                rd_kafka_headers_destroy(headers);
            return ob_errf(errstr, errstr_size, OB_ERR_KAFKA,
                           "the transactional producer has failed");
        }
        if (p->tstate == T_INIT || p->tstate == T_BUSY || p->qhead) {
            txn_msg_t *m = ob_calloc(1, sizeof(*m));
            if (!m || !(m->topic = ob_strdup(topic)) ||
                !(m->key = ob_malloc(keylen ? keylen : 1)) ||
                !(m->value = ob_malloc(vlen ? vlen : 1))) {
                if (m) {
                    m->headers = headers;
                    txn_msg_free(m);
                } else if (headers) {
                    rd_kafka_headers_destroy(headers);
                }
                return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
            }
            memcpy(m->key, key, keylen);
            memcpy(m->value, value, vlen);
            m->keylen = keylen;
            m->vlen = vlen;
            m->partition = partition;
            m->headers = headers;
            m->opaque = msg_opaque;
            *p->qtail = m;
            p->qtail = &m->next;
            p->nqueued++;
            return OB_OK;
        }
        if (txn_open(p, errstr, errstr_size) != 0) {
            if (headers)
                rd_kafka_headers_destroy(headers);
            return OB_ERR_KAFKA;
        }
    }
    rd_kafka_resp_err_t e =
        produce_now(p, topic, partition, key, keylen, value, vlen, headers, msg_opaque);
    if (e) {
        if (headers)
            rd_kafka_headers_destroy(headers); /* not taken over on failure */
        return ob_errf(errstr, errstr_size, OB_ERR_KAFKA, "produce to %s failed: %s", topic,
                       rd_kafka_err2str(e));
    }
    if (p->txn)
        p->txn_msgs++;
    return OB_OK;
}

int ob_kproducer_outstanding(ob_kproducer_t *p)
{
    return rd_kafka_outq_len(p->rk) + (int)p->nqueued;
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
    if (p->thr_started) {
        pthread_mutex_lock(&p->mu);
        p->quit = 1;
        pthread_mutex_unlock(&p->mu);
        /* An operation under way ends within its timeouts (it sees quit
         * between retries); then the thread takes OP_QUIT. */
        pthread_mutex_lock(&p->mu);
        while (p->op != OP_NONE)
            pthread_cond_wait(&p->cv, &p->mu);
        p->op = OP_QUIT;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thr, NULL);
        if (p->op_offsets)
            rd_kafka_topic_partition_list_destroy(p->op_offsets);
        if (p->op_cgmd)
            rd_kafka_consumer_group_metadata_destroy(p->op_cgmd);
    }
    wake_fini(&p->twake, NULL);
    while (p->qhead) {
        txn_msg_t *m = p->qhead;
        p->qhead = m->next;
        txn_msg_free(m);
    }
    wake_fini(&p->wake, p->q);
    if (p->q)
        rd_kafka_queue_destroy(p->q);
    for (size_t i = 0; i < p->nknown; i++)
        rd_kafka_topic_destroy(p->known[i]);
    if (p->rk)
        rd_kafka_destroy(p->rk);
    if (p->thr_started) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
    }
    free(p);
}

rd_kafka_t *ob_kproducer_handle(ob_kproducer_t *p)
{
    return p->rk;
}

void ob_kproducer_learn_topic(ob_kproducer_t *p, const char *topic)
{
    for (size_t i = 0; i < p->nknown; i++)
        if (!strcmp(rd_kafka_topic_name(p->known[i]), topic))
            return;
    if (p->nknown == OB_KPRODUCER_KNOWN_MAX)
        return;
    /* A new topic handle asks the brokers for the topic at once (a leader
     * query); while the application holds it, the once-a-second scan asks
     * again until it is known. */
    rd_kafka_topic_t *t = rd_kafka_topic_new(p->rk, topic, NULL);
    if (t)
        p->known[p->nknown++] = t;
}

/* ---- admin client ---- */

struct ob_kadmin_s {
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    wake_t wake;
    ob_kadmin_result_cb *on_result;
    void *arg;
};

static void admin_drain(ob_kadmin_t *a)
{
    rd_kafka_poll(a->rk, 0); /* the handle's own callbacks: logs, errors */
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(a->q, 0))) {
        a->on_result(a, ev, a->arg);
        rd_kafka_event_destroy(ev);
    }
}

static void admin_wake(ob_io_t *io, int fd, unsigned events, void *arg)
{
    (void)io;
    (void)events;
    wake_drain_pipe(fd);
    admin_drain(arg);
}

static void admin_more(ob_timer_t *t, void *arg)
{
    (void)t;
    admin_drain(arg);
}

ob_kadmin_t *ob_kadmin_new(ob_loop_t *loop, const ob_cfg_kv_t *kafka, const char *group_id,
                           ob_kadmin_result_cb *on_result, void *arg, char *errstr,
                           size_t errstr_size)
{
    ob_kadmin_t *a = ob_calloc(1, sizeof(*a));
    a->on_result = on_result;
    a->arg = arg;
    a->wake.fds[0] = a->wake.fds[1] = -1;
    char err[512];
    /* A consumer that never subscribes: see ob_kafka.h. */
    const char *defaults[] = {"group.id", group_id, "enable.auto.commit", "false", NULL};
    rd_kafka_conf_t *conf = ob_kafka_conf_new(kafka, defaults, errstr, errstr_size);
    if (!conf) {
        free(a);
        return NULL;
    }
    a->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!a->rk) {
        ob_errf(errstr, errstr_size, OB_ERR_KAFKA, "cannot create the admin client: %s", err);
        rd_kafka_conf_destroy(conf);
        free(a);
        return NULL;
    }
    a->q = rd_kafka_queue_new(a->rk);
    if (wake_init(&a->wake, loop, a->q, admin_wake, admin_more, a, errstr, errstr_size) != OB_OK) {
        ob_kadmin_free(a);
        return NULL;
    }
    return a;
}

rd_kafka_t *ob_kadmin_handle(ob_kadmin_t *a)
{
    return a->rk;
}

rd_kafka_queue_t *ob_kadmin_queue(ob_kadmin_t *a)
{
    return a->q;
}

void ob_kadmin_free(ob_kadmin_t *a)
{
    if (!a)
        return;
    wake_fini(&a->wake, a->q);
    if (a->q)
        rd_kafka_queue_destroy(a->q);
    if (a->rk)
        rd_kafka_destroy(a->rk);
    free(a);
}
