/*
 * ob_kafka: a Kafka consumer-group member and a producer on the event loop.
 *
 * Both wrap librdkafka handles. librdkafka runs its own threads; our code only
 * runs on the loop thread. Each handle's queue is set to write a byte to a
 * pipe when it goes from empty to non-empty (rd_kafka_queue_io_event_enable);
 * the loop watches the pipe and drains the queue, in batches of `batch`
 * messages per loop iteration so that one busy partition cannot starve timers
 * and other descriptors (a zero-delay timer continues the drain).
 *
 * Consumer: offsets are committed at-least-once. Auto offset store is off:
 * the application stores, per partition, the next offset to consume once
 * every earlier message is finished (ob_kconsumer_store), and librdkafka's
 * auto-commit commits what was stored. Rebalances are handled for both the
 * eager and cooperative protocols; the application hears about them through
 * the rebalance callback before partitions are revoked, so it can drop the
 * work of partitions it loses.
 *
 * Producer: idempotent (enable.idempotence=true, acks=all) unless configured
 * otherwise; every message gets one delivery report through the callback, on
 * the loop thread.
 *
 * Configuration: the `kafka.*` settings (ob_config) are applied to both
 * handles unchanged, after our defaults, so an operator can override them.
 *
 * Ownership: the caller owns the handles; close the consumer (commits the
 * stored offsets and leaves the group) before freeing it. Messages passed to
 * the message callback are valid only during the callback.
 * Threading: loop thread only.
 */
#ifndef OB_KAFKA_H
#define OB_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "ob_config.h"
#include "ob_err.h"
#include "ob_loop.h"

typedef struct ob_kconsumer_s ob_kconsumer_t;
typedef struct ob_kproducer_s ob_kproducer_t;
typedef struct ob_kadmin_s ob_kadmin_t;

/* A message (msg->err == 0) from an assigned partition. */
typedef void(ob_kconsumer_msg_cb)(ob_kconsumer_t *c, const rd_kafka_message_t *msg, void *arg);
/* assigned: 1 for partitions added to this member, 0 for partitions taken away
 * (called before they are released). */
typedef void(ob_kconsumer_rebalance_cb)(ob_kconsumer_t *c, int assigned,
                                        const rd_kafka_topic_partition_list_t *parts, void *arg);

typedef struct ob_kconsumer_opts_s {
    const char *group_id;
    const char *const *topics; /* subscription */
    size_t ntopics;
    const ob_cfg_kv_t *kafka; /* passthrough settings (may be NULL) */
    ob_kconsumer_msg_cb *on_message;
    ob_kconsumer_rebalance_cb *on_rebalance; /* may be NULL */
    void *arg;
    size_t batch; /* messages per loop iteration (0: 500) */
    /* Offsets are committed in the transactions of a producer
     * (ob_kproducer_txn_commit), not by auto-commit. */
    int transactional;
    const char *group_instance_id; /* static membership (NULL or "": dynamic) */
} ob_kconsumer_opts_t;

ob_kconsumer_t *ob_kconsumer_new(ob_loop_t *loop, const ob_kconsumer_opts_t *opts, char *errstr,
                                 size_t errstr_size);
/* Store `next_offset` (the offset of the next message to process) for the
 * partition; auto-commit sends it to the broker. */
ob_err_t ob_kconsumer_store(ob_kconsumer_t *c, const char *topic, int32_t partition,
                            int64_t next_offset);
/* Commit stored offsets now (asynchronously). */
ob_err_t ob_kconsumer_commit(ob_kconsumer_t *c);
/* Pause or resume fetching from these partitions (or all assigned when NULL). */
ob_err_t ob_kconsumer_pause(ob_kconsumer_t *c, rd_kafka_topic_partition_list_t *parts);
ob_err_t ob_kconsumer_resume(ob_kconsumer_t *c, rd_kafka_topic_partition_list_t *parts);
int ob_kconsumer_paused(const ob_kconsumer_t *c);
/* Partitions currently assigned (caller destroys), or NULL. */
rd_kafka_topic_partition_list_t *ob_kconsumer_assignment(ob_kconsumer_t *c);
/* Leave the group: final commit of stored offsets, revoke callback. Blocks
 * (shutdown only) at most OB_KAFKA_CLOSE_TIMEOUT_MS: with the brokers gone it
 * gives up and the group notices the member's absence by its session timeout. */
#define OB_KAFKA_CLOSE_TIMEOUT_MS 10000
void ob_kconsumer_close(ob_kconsumer_t *c);
void ob_kconsumer_free(ob_kconsumer_t *c);
rd_kafka_t *ob_kconsumer_handle(ob_kconsumer_t *c);
uint64_t ob_kconsumer_received(const ob_kconsumer_t *c);
/* Assignment changes of a rebalance that librdkafka refused (each logged
 * with its reason; the partitions are then neither fetched nor reported to
 * on_rebalance). */
uint64_t ob_kconsumer_assign_failures(const ob_kconsumer_t *c);
/* Ask the brokers where the assigned partitions end now (ListOffsets, the
 * last stable offset, asynchronously; one request out at a time). librdkafka
 * learns a partition's end only from its fetches, which stop while the
 * partition is paused: a backed-up stage would read as caught up. */
ob_err_t ob_kconsumer_refresh_ends(ob_kconsumer_t *c);
/* The group's committed offsets of newly assigned partitions, as the owner
 * read them (rd_kafka_committed): where it starts in them. (Not asked of the
 * group coordinator with ListConsumerGroupOffsets: librdkafka up to 2.14
 * aborts on a coordinator-targeted admin request that fails to send, as when
 * the coordinator's broker dies.) */
void ob_kconsumer_note_committed(ob_kconsumer_t *c, const rd_kafka_topic_partition_list_t *l);
/* Where the member stands in the partition: the offset of the next message
 * it takes (its position, or, before its first message, the committed offset
 * noted at assignment; -1: unknown). */
int64_t ob_kconsumer_start(ob_kconsumer_t *c, const char *topic, int32_t partition);
/* The offset after the partition's last message, the newer of the last
 * answer to ob_kconsumer_refresh_ends and what fetches said (-1: unknown). */
int64_t ob_kconsumer_end(ob_kconsumer_t *c, const char *topic, int32_t partition);

/* Delivery report: err OB_OK when the broker acknowledged the message. */
typedef void(ob_kproducer_dr_cb)(ob_kproducer_t *p, ob_err_t err, const char *errmsg,
                                 const rd_kafka_message_t *msg, void *msg_opaque, void *arg);

/* The outcome of a transaction (see "Transactions" below). */
typedef struct ob_ktxn_result_s {
    ob_err_t err; /* OB_OK: committed, its messages and offsets visible together */
    int aborted;  /* aborted: no read_committed consumer ever sees its messages,
                   * and its offsets were not committed */
    int fatal;    /* the producer cannot go on (fenced by a newer producer with
                   * the same transactional.id, or a broken configuration) */
    char message[256];
} ob_ktxn_result_t;
typedef void(ob_ktxn_cb)(ob_kproducer_t *p, const ob_ktxn_result_t *res, void *arg);

typedef struct ob_kproducer_opts_s {
    const ob_cfg_kv_t *kafka;
    ob_kproducer_dr_cb *on_delivery; /* may be NULL */
    void *arg;
    /* Non-NULL: a transactional producer with this transactional.id. */
    const char *transactional_id;
    ob_ktxn_cb *on_txn; /* every commit's outcome (transactional producers) */
} ob_kproducer_opts_t;

ob_kproducer_t *ob_kproducer_new(ob_loop_t *loop, const ob_kproducer_opts_t *opts, char *errstr,
                                 size_t errstr_size);
/* Queue a message (copied). headers may be NULL; ownership of headers passes
 * to the producer whatever the outcome. partition RD_KAFKA_PARTITION_UA means
 * "by key". */
ob_err_t ob_kproducer_send(ob_kproducer_t *p, const char *topic, int32_t partition, const void *key,
                           size_t keylen, const void *value, size_t vlen,
                           rd_kafka_headers_t *headers, void *msg_opaque, char *errstr,
                           size_t errstr_size);
/* Messages not yet acknowledged. */
int ob_kproducer_outstanding(ob_kproducer_t *p);
/* Wait for outstanding deliveries, running the loop meanwhile; OB_ERR_TIMEOUT
 * if some are still outstanding after timeout_ms. */
ob_err_t ob_kproducer_flush(ob_kproducer_t *p, int timeout_ms);
void ob_kproducer_free(ob_kproducer_t *p);
rd_kafka_t *ob_kproducer_handle(ob_kproducer_t *p);
/* A topic this producer will send to: its partitions and leaders are asked
 * for now (asynchronously) and kept current, so that the first message sent
 * to it does not wait for librdkafka's once-a-second scan of unknown topics
 * (up to a second per hop for the first account after a start). Repeating a
 * topic is harmless; at most OB_KPRODUCER_KNOWN_MAX topics are kept, the rest
 * are learnt on first use as before. */
#define OB_KPRODUCER_KNOWN_MAX 8
void ob_kproducer_learn_topic(ob_kproducer_t *p, const char *topic);

/*
 * Transactions (exactly-once output). A transactional producer puts every
 * message sent between two commits into one Kafka transaction, committed with
 * the input offsets the caller gives (KIP-447: fenced by the consumer group's
 * metadata, so a member that lost its partitions cannot commit for them).
 * librdkafka's transactional calls wait for network round trips: they run on
 * a thread of the producer's own, and the loop hears of the outcome through
 * on_txn. The loop thread blocks only in ob_kproducer_txn_wait().
 *
 * Sending: while the producer is initialising (init_transactions, retried
 * until the brokers answer) or a commit is under way, ob_kproducer_send()
 * keeps the message (copied) and produces it into the next transaction, in
 * order. Delivery reports still come for every produced message, on the loop
 * thread; a failed delivery makes the transaction abort at its commit.
 *
 * A commit whose transaction cannot be committed is aborted (reported with
 * aborted set): the caller sends its messages again, they go into the next
 * transaction. Retriable errors are retried inside the commit.
 */
/* Messages produced into (or waiting for) the open transaction. */
size_t ob_kproducer_txn_pending(const ob_kproducer_t *p);
/* Not transactional, or its transactions are initialised and usable. */
int ob_kproducer_txn_ready(const ob_kproducer_t *p);
/* A transaction operation (initialisation, commit) is under way. */
int ob_kproducer_txn_busy(const ob_kproducer_t *p);
/* Commit the open transaction with these input offsets (copied; NULL or empty:
 * none) of `consumer`'s group, on the producer's thread. OB_ERR_STATE while
 * another operation is under way; OB_OK with nothing to do (on_txn is not
 * called then) when no transaction is open and offsets is empty. */
ob_err_t ob_kproducer_txn_commit(ob_kproducer_t *p, const rd_kafka_topic_partition_list_t *offsets,
                                 rd_kafka_t *consumer);
/* Abort the open transaction, on the producer's thread (OB_OK with nothing
 * to do when none is open: on_txn is not called then). */
ob_err_t ob_kproducer_txn_abort(ob_kproducer_t *p);
/* Wait, blocking the loop thread at most about timeout_ms, for the operation
 * under way to end; its on_txn runs before this returns. OB_ERR_TIMEOUT when
 * it is still under way. For rebalances and shutdown, where a commit must be
 * over before going on. */
ob_err_t ob_kproducer_txn_wait(ob_kproducer_t *p, int timeout_ms);

/* Build a librdkafka configuration: our defaults, then the passthrough keys.
 * Exposed for tools (onboardctl) that need plain handles. */
rd_kafka_conf_t *ob_kafka_conf_new(const ob_cfg_kv_t *kafka, const char *const *defaults,
                                   char *errstr, size_t errstr_size);

/* ---- admin client ----
 * A handle for the admin API (ListOffsets, DescribeTopics, consumer groups)
 * whose results arrive on the loop: make a request with librdkafka's admin
 * calls on ob_kadmin_handle() and ob_kadmin_queue(); each result event is
 * passed to on_result (borrowed: destroyed after the callback), which tells
 * requests apart by rd_kafka_event_opaque() (AdminOptions_set_opaque).
 *
 * The handle is a consumer of group_id that never subscribes (nothing is
 * ever committed under it): librdkafka (2.8) answers a ListConsumerGroupOffsets
 * whose coordinator moved or is still loading by asking the handle's own
 * consumer group to look for its coordinator again, and a producer handle,
 * which has none, crashes there (a NULL group). */
typedef void(ob_kadmin_result_cb)(ob_kadmin_t *a, rd_kafka_event_t *ev, void *arg);

ob_kadmin_t *ob_kadmin_new(ob_loop_t *loop, const ob_cfg_kv_t *kafka, const char *group_id,
                           ob_kadmin_result_cb *on_result, void *arg, char *errstr,
                           size_t errstr_size);
rd_kafka_t *ob_kadmin_handle(ob_kadmin_t *a);
rd_kafka_queue_t *ob_kadmin_queue(ob_kadmin_t *a);
/* NULL is fine. Results not delivered yet are dropped. */
void ob_kadmin_free(ob_kadmin_t *a);

#endif
