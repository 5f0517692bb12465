/*
 * ob_kafka against a real Apache Kafka broker: produce with delivery reports
 * on the loop, consume as a consumer-group member, store and commit offsets
 * (checked with the broker's committed offsets), at-least-once redelivery of
 * what was not stored, pausing/resuming partitions, and transactions:
 * output and input offsets committed together or not at all, as a
 * read_committed consumer and the group's committed offsets show.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ob_kafka.h"
#include "ob_log.h"
#include "testutil.h"

static const char *brokers;
static char topic[128];
#define NMSG 200

typedef struct ctx_s {
    int delivered, delivery_errors;
    int received;
    int assigned;
    int revocations;
    int skip_store_partition; /* -1: store everything */
    int per_partition[16];
    ob_kconsumer_t *c;
} ctx_t;

static ob_cfg_kv_t kafka_conf(void)
{
    ob_cfg_kv_t kv = {0};
    ob_test_kafka_defaults(&kv, brokers);
    return kv;
}

static void on_delivery(ob_kproducer_t *p, ob_err_t err, const char *errmsg,
                        const rd_kafka_message_t *msg, void *opaque, void *arg)
{
    ctx_t *ctx = arg;
    if (err == OB_OK)
        ctx->delivered++;
    else
        ctx->delivery_errors++;
}

static void produce(ob_loop_t *loop, ctx_t *ctx, int n, int base)
{
    ob_cfg_kv_t kv = kafka_conf();
    ob_kproducer_opts_t po = {.kafka = &kv, .on_delivery = on_delivery, .arg = ctx};
    char err[512];
    ob_kproducer_t *p = ob_kproducer_new(loop, &po, err, sizeof(err));
    assert_non_null(p);
    ctx->delivered = ctx->delivery_errors = 0;
    for (int i = 0; i < n; i++) {
        char key[32], val[64];
        snprintf(key, sizeof(key), "%012d", base + i);
        snprintf(val, sizeof(val), "{\"n\":%d}", base + i);
        assert_int_equal(ob_kproducer_send(p, topic, RD_KAFKA_PARTITION_UA, key, strlen(key), val,
                                           strlen(val), NULL, NULL, err, sizeof(err)),
                         OB_OK);
    }
    assert_int_equal(ob_kproducer_flush(p, 30000), OB_OK);
    assert_int_equal(ctx->delivered, n);
    assert_int_equal(ctx->delivery_errors, 0);
    ob_kproducer_free(p);
    ob_cfg_kv_free(&kv);
}

static void on_message(ob_kconsumer_t *c, const rd_kafka_message_t *m, void *arg)
{
    ctx_t *ctx = arg;
    ctx->received++;
    ctx->per_partition[m->partition]++;
    if (m->partition != ctx->skip_store_partition)
        assert_int_equal(
            ob_kconsumer_store(c, rd_kafka_topic_name(m->rkt), m->partition, m->offset + 1), OB_OK);
}

static void on_rebalance(ob_kconsumer_t *c, int assigned,
                         const rd_kafka_topic_partition_list_t *parts, void *arg)
{
    ctx_t *ctx = arg;
    ctx->assigned += assigned ? parts->cnt : -parts->cnt;
    ctx->revocations += !assigned;
}

static ob_kconsumer_t *consumer(ob_loop_t *loop, ctx_t *ctx, const char *group, ob_cfg_kv_t *kv)
{
    const char *topics[] = {topic};
    ob_kconsumer_opts_t co = {.group_id = group,
                              .topics = topics,
                              .ntopics = 1,
                              .kafka = kv,
                              .on_message = on_message,
                              .on_rebalance = on_rebalance,
                              .arg = ctx};
    char err[512];
    ob_kconsumer_t *c = ob_kconsumer_new(loop, &co, err, sizeof(err));
    if (!c)
        fprintf(stderr, "consumer: %s\n", err);
    assert_non_null(c);
    ctx->c = c;
    return c;
}

typedef struct want_s {
    ctx_t *ctx;
    int n;
} want_t;

static int received_n(void *arg)
{
    want_t *w = arg;
    return w->ctx->received >= w->n;
}

/* Sum of the group's committed offsets on the topic's partitions, asked of the broker. */
static long long committed_sum(const char *group, int *nparts_out)
{
    ob_cfg_kv_t kv = kafka_conf();
    ob_cfg_kv_set(&kv, "group.id", group);
    char err[512];
    rd_kafka_conf_t *conf = ob_kafka_conf_new(&kv, NULL, err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(rk);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    assert_int_equal(rd_kafka_metadata(rk, 0, rkt, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    int nparts = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(nparts);
    for (int i = 0; i < nparts; i++)
        rd_kafka_topic_partition_list_add(l, topic, i);
    assert_int_equal(rd_kafka_committed(rk, l, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    long long sum = 0;
    for (int i = 0; i < l->cnt; i++)
        if (l->elems[i].offset >= 0)
            sum += l->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    ob_cfg_kv_free(&kv);
    if (nparts_out)
        *nparts_out = nparts;
    return sum;
}

static void test_produce_consume_commit(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.skip_store_partition = -1;
    produce(loop, &ctx, NMSG, 0);

    char group[160];
    snprintf(group, sizeof(group), "%s.g1", topic);
    ob_cfg_kv_t kv = kafka_conf();
    ob_kconsumer_t *c = consumer(loop, &ctx, group, &kv);
    want_t w = {&ctx, NMSG};
    assert_true(ob_test_run_until(loop, received_n, &w, 60000));
    assert_int_equal(ctx.received, NMSG);
    assert_true(ctx.assigned > 0);
    ob_kconsumer_close(c); /* final commit of the stored offsets */
    ob_kconsumer_free(c);
    int nparts = 0;
    assert_int_equal(committed_sum(group, &nparts), NMSG);
    assert_true(nparts > 1);
    ob_cfg_kv_free(&kv);
    ob_loop_free(loop);
}

/* Offsets not stored are not committed: the next member of the group gets
 * exactly those messages again (at-least-once). */
static void test_unstored_messages_come_back(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    char group[160];
    snprintf(group, sizeof(group), "%s.g2", topic);
    ob_cfg_kv_t kv = kafka_conf();

    ctx_t a;
    memset(&a, 0, sizeof(a));
    a.skip_store_partition = 0;
    ob_kconsumer_t *c = consumer(loop, &a, group, &kv);
    want_t w = {&a, NMSG};
    assert_true(ob_test_run_until(loop, received_n, &w, 60000));
    int p0 = a.per_partition[0];
    assert_true(p0 > 0);
    ob_kconsumer_close(c);
    ob_kconsumer_free(c);
    assert_int_equal(committed_sum(group, NULL), NMSG - p0);

    ctx_t b;
    memset(&b, 0, sizeof(b));
    b.skip_store_partition = -1;
    c = consumer(loop, &b, group, &kv);
    want_t wb = {&b, p0};
    assert_true(ob_test_run_until(loop, received_n, &wb, 60000));
    /* Give any wrongly redelivered message a chance to show up. */
    for (int i = 0; i < 10; i++)
        ob_loop_run_once(loop, 100);
    assert_int_equal(b.received, p0);
    assert_int_equal(b.per_partition[0], p0);
    ob_kconsumer_close(c);
    ob_kconsumer_free(c);
    assert_int_equal(committed_sum(group, NULL), NMSG);
    ob_cfg_kv_free(&kv);
    ob_loop_free(loop);
}

static int has_assignment(void *arg)
{
    return ((ctx_t *)arg)->assigned > 0;
}

static void test_pause_resume(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    char group[160];
    snprintf(group, sizeof(group), "%s.g3", topic);
    ob_cfg_kv_t kv = kafka_conf();
    ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.skip_store_partition = -1;
    ob_kconsumer_t *c = consumer(loop, &ctx, group, &kv);
    want_t w = {&ctx, NMSG};
    assert_true(ob_test_run_until(loop, received_n, &w, 60000));
    assert_true(ob_test_run_until(loop, has_assignment, &ctx, 1000));

    assert_int_equal(ob_kconsumer_pause(c, NULL), OB_OK);
    assert_true(ob_kconsumer_paused(c));
    ctx_t pctx;
    memset(&pctx, 0, sizeof(pctx));
    produce(loop, &pctx, 20, NMSG);
    for (int i = 0; i < 20; i++)
        ob_loop_run_once(loop, 100);
    assert_int_equal(ctx.received, NMSG); /* nothing fetched while paused */

    assert_int_equal(ob_kconsumer_resume(c, NULL), OB_OK);
    want_t w2 = {&ctx, NMSG + 20};
    assert_true(ob_test_run_until(loop, received_n, &w2, 30000));
    assert_int_equal(ctx.received, NMSG + 20);
    ob_kconsumer_close(c);
    ob_kconsumer_free(c);
    ob_cfg_kv_free(&kv);
    ob_loop_free(loop);
}

/* A member with nothing to consume still polls: librdkafka would otherwise
 * take it as stuck after max.poll.interval.ms and make it leave the group
 * (its partitions revoked). */
static void test_idle_member_stays(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    char group[160];
    snprintf(group, sizeof(group), "%s.g5", topic);
    ob_cfg_kv_t kv = kafka_conf();
    /* The least librdkafka takes: session.timeout.ms (6 s here). */
    ob_cfg_kv_set(&kv, "max.poll.interval.ms", "6000");
    ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.skip_store_partition = -1;
    ob_kconsumer_t *c = consumer(loop, &ctx, group, &kv);
    assert_true(ob_test_run_until(loop, has_assignment, &ctx, 30000));
    want_t w = {&ctx, NMSG + 20}; /* everything there is, then idle */
    assert_true(ob_test_run_until(loop, received_n, &w, 30000));
    int assigned = ctx.assigned;
    for (int i = 0; i < 120; i++) /* 12 s idle: twice the interval */
        ob_loop_run_once(loop, 100);
    assert_int_equal(ctx.revocations, 0); /* never left the group */
    assert_int_equal(ctx.assigned, assigned);
    ob_kconsumer_close(c);
    ob_kconsumer_free(c);
    ob_cfg_kv_free(&kv);
    ob_loop_free(loop);
}

/* ---- transactions ---- */

typedef struct txctx_s {
    ob_kproducer_t *p;
    ob_kconsumer_t *c;
    rd_kafka_topic_partition_list_t *offsets; /* next offset per partition seen */
    int received, commits, aborts, delivered;
    long long offsets_sum_at_commit; /* sum of the offsets of the last commit */
    char out[160];
} txctx_t;

static void tx_on_message(ob_kconsumer_t *c, const rd_kafka_message_t *m, void *arg)
{
    txctx_t *t = arg;
    t->received++;
    rd_kafka_topic_partition_t *tp =
        rd_kafka_topic_partition_list_find(t->offsets, rd_kafka_topic_name(m->rkt), m->partition);
    if (!tp)
        tp = rd_kafka_topic_partition_list_add(t->offsets, rd_kafka_topic_name(m->rkt),
                                               m->partition);
    tp->offset = m->offset + 1;
    char err[256];
    assert_int_equal(ob_kproducer_send(t->p, t->out, RD_KAFKA_PARTITION_UA, m->key, m->key_len,
                                       m->payload, m->len, NULL, NULL, err, sizeof(err)),
                     OB_OK);
}

static void tx_on_txn(ob_kproducer_t *p, const ob_ktxn_result_t *res, void *arg)
{
    txctx_t *t = arg;
    if (res->err == OB_OK)
        t->commits++;
    else if (res->aborted)
        t->aborts++;
}

static void tx_on_delivery(ob_kproducer_t *p, ob_err_t err, const char *errmsg,
                           const rd_kafka_message_t *msg, void *opaque, void *arg)
{
    txctx_t *t = arg;
    if (err == OB_OK)
        t->delivered++;
}

static int delivered_20(void *arg)
{
    return ((txctx_t *)arg)->delivered >= 20;
}

static int txn_ready(void *arg)
{
    return !ob_kproducer_txn_busy(arg);
}

static int tx_received_n(void *arg)
{
    txctx_t *t = arg;
    return t->received >= NMSG;
}

/* Messages of a topic a fresh consumer with this isolation level reads (it
 * stops after two quiet seconds). */
typedef struct count_s {
    int n;
    uint64_t last;
    ob_loop_t *loop;
} count_t;

static void count_msg(ob_kconsumer_t *c, const rd_kafka_message_t *m, void *arg)
{
    count_t *k = arg;
    k->n++;
    k->last = ob_loop_update_time(k->loop);
}

static int quiet(void *arg)
{
    count_t *k = arg;
    return k->n > 0 && ob_loop_update_time(k->loop) - k->last > 2000;
}

static int count_topic(ob_loop_t *loop, const char *t, const char *isolation, const char *group)
{
    ob_cfg_kv_t kv = kafka_conf();
    ob_cfg_kv_set(&kv, "isolation.level", isolation);
    const char *topics[] = {t};
    count_t k = {0, 0, loop};
    ob_kconsumer_opts_t co = {.group_id = group,
                              .topics = topics,
                              .ntopics = 1,
                              .kafka = &kv,
                              .on_message = count_msg,
                              .arg = &k};
    char err[512];
    ob_kconsumer_t *c = ob_kconsumer_new(loop, &co, err, sizeof(err));
    assert_non_null(c);
    ob_test_run_until(loop, quiet, &k, 30000);
    ob_kconsumer_close(c);
    ob_kconsumer_free(c);
    ob_cfg_kv_free(&kv);
    return k.n;
}

static long long list_sum(const rd_kafka_topic_partition_list_t *l)
{
    long long s = 0;
    for (int i = 0; i < l->cnt; i++)
        s += l->elems[i].offset;
    return s;
}

static void test_transactions(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    /* A topic of its own (the last test: the global name stays changed). */
    strncat(topic, ".tin", sizeof(topic) - strlen(topic) - 1);
    ctx_t pctx;
    memset(&pctx, 0, sizeof(pctx));
    produce(loop, &pctx, NMSG, 0);
    char group[160], txid[200], g[200];
    snprintf(group, sizeof(group), "%s.g4", topic);
    snprintf(txid, sizeof(txid), "%s.tx", topic);
    txctx_t t;
    memset(&t, 0, sizeof(t));
    snprintf(t.out, sizeof(t.out), "%s.out", topic);
    t.offsets = rd_kafka_topic_partition_list_new(8);
    ob_cfg_kv_t kv = kafka_conf();
    char err[512];
    ob_kproducer_opts_t po = {.kafka = &kv,
                              .arg = &t,
                              .on_delivery = tx_on_delivery,
                              .transactional_id = txid,
                              .on_txn = tx_on_txn};
    t.p = ob_kproducer_new(loop, &po, err, sizeof(err));
    assert_non_null(t.p);
    /* Sent while init_transactions runs: kept, produced into the first transaction. */
    assert_int_equal(ob_kproducer_send(t.p, t.out, RD_KAFKA_PARTITION_UA, "k", 1, "early", 5, NULL,
                                       NULL, err, sizeof(err)),
                     OB_OK);
    assert_true(ob_test_run_until(loop, txn_ready, t.p, 30000));
    assert_int_equal(ob_kproducer_txn_pending(t.p), 1);

    const char *topics[] = {topic};
    ob_kconsumer_opts_t co = {.group_id = group,
                              .topics = topics,
                              .ntopics = 1,
                              .kafka = &kv,
                              .on_message = tx_on_message,
                              .arg = &t,
                              .transactional = 1};
    t.c = ob_kconsumer_new(loop, &co, err, sizeof(err));
    assert_non_null(t.c);
    assert_true(ob_test_run_until(loop, tx_received_n, &t, 60000));
    assert_int_equal(t.received, NMSG);
    assert_int_equal(ob_kproducer_txn_pending(t.p), NMSG + 1);

    /* 1. Committed: NMSG + 1 messages and the offsets of NMSG inputs. */
    assert_int_equal(ob_kproducer_txn_commit(t.p, t.offsets, ob_kconsumer_handle(t.c)), OB_OK);
    assert_true(ob_kproducer_txn_busy(t.p));
    /* Sent during the commit: waits for the next transaction. */
    assert_int_equal(ob_kproducer_send(t.p, t.out, RD_KAFKA_PARTITION_UA, "k", 1, "late", 4, NULL,
                                       NULL, err, sizeof(err)),
                     OB_OK);
    assert_int_equal(ob_kproducer_txn_commit(t.p, NULL, NULL), OB_ERR_STATE);
    assert_int_equal(ob_kproducer_txn_wait(t.p, 30000), OB_OK);
    assert_int_equal(t.commits, 1);
    long long committed = list_sum(t.offsets);
    assert_int_equal(committed, NMSG);
    assert_int_equal(ob_kproducer_txn_pending(t.p), 1); /* "late", in a new transaction */

    /* 2. Committed again: the late message, no offsets. */
    assert_int_equal(ob_kproducer_txn_commit(t.p, NULL, NULL), OB_OK);
    assert_int_equal(ob_kproducer_txn_wait(t.p, 30000), OB_OK);
    assert_int_equal(t.commits, 2);

    /* 3. Aborted: 20 outputs, written to the log (delivered) before the abort. */
    t.delivered = 0;
    for (int i = 0; i < 20; i++)
        assert_int_equal(ob_kproducer_send(t.p, t.out, RD_KAFKA_PARTITION_UA, "x", 1, "aborted", 7,
                                           NULL, NULL, err, sizeof(err)),
                         OB_OK);
    assert_true(ob_test_run_until(loop, delivered_20, &t, 30000));
    assert_int_equal(ob_kproducer_txn_abort(t.p), OB_OK);
    assert_int_equal(ob_kproducer_txn_wait(t.p, 30000), OB_OK);
    assert_int_equal(t.aborts, 1);
    assert_int_equal(ob_kproducer_txn_pending(t.p), 0);

    ob_kconsumer_close(t.c);
    ob_kconsumer_free(t.c);
    ob_kproducer_free(t.p);
    /* The group committed exactly the first transaction's offsets (no
     * auto-commit), and read_committed readers see exactly its messages. */
    assert_int_equal(committed_sum(group, NULL), NMSG);
    snprintf(g, sizeof(g), "%s.rc", topic);
    assert_int_equal(count_topic(loop, t.out, "read_committed", g), NMSG + 2);
    snprintf(g, sizeof(g), "%s.ru", topic);
    assert_int_equal(count_topic(loop, t.out, "read_uncommitted", g), NMSG + 2 + 20);
    rd_kafka_topic_partition_list_destroy(t.offsets);
    ob_cfg_kv_free(&kv);
    ob_loop_free(loop);
}

int main(void)
{
    brokers = ob_test_service_env("OB_TEST_KAFKA_BROKERS", "an Apache Kafka broker");
    snprintf(topic, sizeof(topic), "itest.kafka.%ld.%d", (long)time(NULL), (int)getpid());
    ob_log_set_level(OB_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_produce_consume_commit),
        cmocka_unit_test(test_unstored_messages_come_back),
        cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_idle_member_stays),
        cmocka_unit_test(test_transactions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
