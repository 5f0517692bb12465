/*
 * ob_worker: the runtime every stage worker runs on.
 *
 * One event loop drives a Kafka consumer (the stage's input topic, one
 * consumer group per stage), a producer (the next topic and the dead-letter
 * topic), one Redis connection (per-account locks and state), and the AWS
 * client. For every message:
 *
 *   parse (stage) -> wait behind earlier messages of the same account ->
 *   lock the account in Redis (fenced) -> run the stage's steps (AWS calls,
 *   waits) -> record the outcome in the account's state (fenced) and release
 *   the lock -> produce the hand-off or the dead letter into the open
 *   transaction -> committed with the input offset (output.transactions).
 *
 * Without transactions the state is written after the broker acknowledged
 * the output instead, and the offset marked finished then.
 *
 * Thousands of messages are in flight at once (inflight.max); beyond that
 * the partitions are paused, and resumed under 80 % of it. Offsets are
 * committed only up to the lowest unfinished message of each partition (with
 * the finished ones above it beside them), so a worker killed at any point
 * loses nothing: the next owner redoes the unfinished messages, and every
 * stage is idempotent.
 *
 * A stage is pure logic with no I/O (see ob_stage_t): it reads its input,
 * then turns each AWS reply into the next step. That makes every path a unit
 * test with recorded replies (see the stage unit tests).
 *
 * Ownership: the worker owns everything it creates. Threading: loop thread.
 */
#ifndef OB_WORKER_H
#define OB_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "ob_aws.h"
#include "ob_config.h"
#include "ob_err.h"
#include "ob_loop.h"
#include "ob_metrics.h"
#include "ob_msg.h"
#include "ob_redis.h"

typedef enum ob_step_kind_e {
    OB_STEP_CALL = 1, /* send req; the reply comes back to step() */
    OB_STEP_WAIT,     /* come back to step() with no reply after wait_ms */
    OB_STEP_DONE,     /* finished: produce `emit` (if any) to `emit_topic` */
    OB_STEP_FAIL,     /* give up: a dead letter with this reason */
    OB_STEP_HTTP      /* a plain HTTPS call (not AWS): http_*; retried like an AWS call
                       * (transient and throttling statuses, full-jitter backoff); the
                       * reply comes back to step() as an ob_aws_result_t with err OB_OK
                       * for 2xx, OB_ERR_HTTP with the status otherwise */
} ob_step_kind_t;

/* Why a retryable failure failed, for per-class stage retry settings
 * (stage.retry.<class>.max and .wait; see ob_config). */
typedef enum ob_retry_reason_e {
    OB_RR_OTHER = 0,  /* anything else retryable: the defaults apply */
    OB_RR_THROTTLING, /* AWS (or the Billing Engine) asked us to slow down */
    OB_RR_TRANSIENT,  /* 5xx, connection errors */
    OB_RR_TIMEOUT,    /* no answer in time */
    OB_RR_BUSY,       /* a resource still changing or changed under us (stack in progress) */
    OB_RR__COUNT
} ob_retry_reason_t;
const char *ob_retry_reason_name(ob_retry_reason_t r);

#define OB_STEP_STATE_MAX 24 /* name/value slots of ob_step_t.state */

typedef struct ob_step_s {
    ob_step_kind_t kind;
    /* CALL */
    ob_aws_req_t req;
    char region[OB_REGION_LEN]; /* "" : the request's region */
    char s3_bucket[OB_BUCKET_LEN];
    int as_fleet; /* sign with the fleet's own identity instead of the account's role */
    /* WAIT */
    uint64_t wait_ms;
    /* HTTP */
    char http_method[8];
    char *http_url; /* malloc'd */
    ob_hdrs_t http_headers;
    ob_buf_t http_body;
    /* DONE */
    char *emit;             /* malloc'd JSON for the next topic, or NULL */
    const char *emit_topic; /* topic suffix ("cur", "connected"...) */
    const char *emit_schema;
    /* DONE, optionally: a second message (malloc'd JSON) to another topic,
     * produced with emit in the same transaction. */
    char *also;
    const char *also_topic;
    const char *also_schema;
    /* State fields to record with the outcome: NULL-terminated name/value
     * pairs (static or owned by the stage state; read before the next step). */
    const char *state[OB_STEP_STATE_MAX];
    /* Any step: the stage's work in progress, recorded in the account's state
     * at once (field "progress"), so that a new owner of the message (after a
     * rebalance or a kill) continues it through resume(). Owned by the stage
     * state; NULL: nothing new. Never a secret. */
    const char *progress;
    /* FAIL */
    ob_dlq_class_t fail_class;
    ob_retry_reason_t retry_reason; /* for OB_DLQ_RETRIES_EXHAUSTED */
    char code[64];
    char message[512];
    char field[256];
    char aws_request_id[128];
    int http_status;
} ob_step_t;

/* What parse() learns before the account is locked. */
typedef struct ob_job_plan_s {
    char account_id[OB_ACCOUNT_ID_LEN];
    char request_id[OB_REQUEST_ID_LEN];
    char role_arn[OB_ROLE_ARN_LEN];       /* the role to assume in the account */
    char external_id[OB_EXTERNAL_ID_LEN]; /* for it ("" : none) */
    char region[OB_REGION_LEN];
    char desired[OB_DESIRED_LEN]; /* ob_request_desired() of the request */
    int offboard;     /* mode offboard: a no-op (with its reason) when nothing is to remove */
    unsigned repair;  /* OB_DRIFT_*: the drift the request repairs (never unchanged) */
    const char *mode; /* the request's mode (a static name; NULL: unknown) */
} ob_job_plan_t;

typedef struct ob_stage_s {
    const char *name;  /* "bucket", "cur", "iam", "connect" */
    ob_stage_t stage;  /* for dead letters */
    const char *input; /* input topic suffix: "requests", "cur", "iam", "connect", "verify" */
    /* Optional: the topic suffixes it hands on to, space-separated ("cur",
     * "drift requests"): the producer learns them at start, so the first
     * message out does not wait for their metadata. */
    const char *outputs;
    /* Its hand-offs carry the account's session sealed for the next stage
     * (with session.keys), which works in the account through the same
     * role. */
    int pass_session;
    /* A side stage (verify) looks at an account between requests: its
     * outcome never takes the record's request fields (stage, status,
     * request_id...), only the stage's own state pairs, "<name>_at",
     * "<name>_error" and "<name>_request" (its message's request id); a
     * failure is no dead letter (the record says why, and the next run looks
     * again); it has no progress or attempt count in the record, and a
     * redelivered message of it is done again. */
    int side;
    size_t state_size; /* bytes of per-message stage state (zeroed before parse) */
    /* Optional: what the stage keeps across the messages of one worker, for
     * what it learns as it goes (the iam stage's create timings, the bucket
     * stage's pause of the Organizations check). Made once per worker, freed
     * with it, handed to every parse; stage logic keeps no process-global
     * state, so two workers in one process (the tests) never share it. */
    void *(*ctx_new)(void);
    void (*ctx_free)(void *ctx);
    /* Read the message. OB_OK with *plan filled, or not OK with *fail set to
     * a FAIL step (invalid input, unsupported cloud). ctx: ctx_new's (NULL
     * when the stage has none). */
    ob_err_t (*parse)(void *st, void *ctx, const ob_config_t *cfg, const char *payload, size_t len,
                      ob_job_plan_t *plan, ob_step_t *fail);
    /* The next step. res NULL: the first step, or after a WAIT. */
    void (*step)(void *st, const ob_aws_result_t *res, ob_step_t *out);
    /* Optional: the message parse() accepted, encoded again from what the
     * state keeps of it (members in schema order, defaults written out:
     * the same JSON value, read by parse() the same way); *json malloc'd.
     * With it the worker keeps one copy of a message in flight, the parsed
     * one: it lets go of the bytes once parse() accepts them, keeping their
     * size and SHA-256 for a dead letter, and asks for this when it needs the
     * message again (a dead letter, a fresh start of the stage). The stage
     * may change how it keeps the message (unpack it), not the message. */
    ob_err_t (*reencode)(void *st, char **json, size_t *len);
    void (*clear)(void *st);
    /* Optional: before the first step, what an earlier holder of this
     * request at this stage recorded as its progress (never ""). */
    void (*resume)(void *st, const char *progress);
    /* Optional: before the first step, what the account's state said when
     * the lock was taken (any field by name, "" when absent): what earlier
     * requests made (buckets, reports, the connection in place). */
    void (*prior)(void *st, const char *(*get)(const void *ctx, const char *field),
                  const void *ctx);
    /* Optional: the stage's own metrics, from what its ctx counted (the
     * worker's /metrics adds them after its own). */
    void (*metrics)(const void *ctx, ob_metrics_t *m);
    /* Optional: the stage's own work that belongs to no message (the bucket
     * stage's standing listing of the organization), on its ctx. The worker
     * asks for the first step once it has started, and for the next after
     * each reply (res) or WAIT (res NULL), until the worker stops. CALL steps
     * are made as the fleet, after every job's calls waiting for a place;
     * WAIT waits; any other step ends the chore. */
    void (*chore)(void *ctx, const ob_config_t *cfg, const ob_aws_result_t *res, ob_step_t *out);
    /* Optional: the progress to record when the message is handed back in
     * the middle of the stage (its partition revoked, the worker stopping),
     * for resume() in the next holder; NULL: nothing worth recording. */
    const char *(*snapshot)(void *st);
} ob_stage_ops_t;

/* Release what a step owns (the request, emit). */
void ob_step_clear(ob_step_t *s);
/* Helpers for stages building FAIL steps. */
void ob_step_fail(ob_step_t *s, ob_dlq_class_t cls, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A FAIL step from an AWS result (class permanent or retries exhausted). */
void ob_step_fail_aws(ob_step_t *s, const ob_aws_result_t *res);
/* A CALL step of a JSON 1.1 operation (CUR, Organizations) with this body
 * (its reference taken; NULL: out of memory) in region: 0, or -1 with *s a
 * FAIL step saying why. */
int ob_step_json11(ob_step_t *s, ob_aws_svc_t svc, const char *op, json_t *body,
                   const char *region);

typedef struct ob_worker_s ob_worker_t;

typedef struct ob_worker_opts_s {
    const ob_stage_ops_t *stage;
    const ob_config_t *config;
    const char *name;       /* worker name in logs and dead letters */
    long lock_ttl_ms;       /* 0: the lock.ttl setting */
    long shutdown_ms;       /* how long SIGTERM waits for in-flight work (0: 20 s) */
    int install_signals;    /* handle SIGTERM/SIGINT (the worker mains) */
    ob_getenv_fn getenv_fn; /* AWS settings (NULL: getenv) */
    void *env_ctx;
} ob_worker_opts_t;

#define OB_WORKER_PHASES 8 /* the phases a job goes through (by_phase below) */
typedef struct ob_worker_stats_s {
    uint64_t received, done, failed, dead_letters, produced, redelivered_lock_busy;
    uint64_t dead_letters_by_class[OB_DLQ_CLASS__COUNT]; /* ob_dlq_class_t */
    uint64_t retries_by_reason[OB_RR__COUNT];
    uint64_t redis_errors;  /* lock and state commands that failed */
    uint64_t kafka_errors;  /* produce attempts that failed (retried) */
    uint64_t stage_retries; /* retryable failures given another attempt later */
    uint64_t retry_now;     /* waiting retries started early by a control message */
    uint64_t rewinds;       /* partitions the consumer went back on unrevoked */
    /* session.keys: sessions sealed into hand-offs; sessions opened and
     * used instead of an AssumeRole; sessions that came but could not be
     * used (stale: too close to expiry; refused: not sealed for this account
     * and role by a key of the ring, or not of the format) */
    uint64_t sessions_sealed, sessions_used, sessions_stale, sessions_refused;
    uint64_t skipped_done;      /* redelivered messages the account's state shows as done */
    uint64_t resumed;           /* messages that continued a previous holder's progress */
    uint64_t superseded;        /* messages of a request a newer one for the account replaced */
    uint64_t unchanged;         /* requests whose desired state the account already had */
    uint64_t skipped_committed; /* redelivered messages a previous owner finished in a
                                 * committed transaction (its offsets' metadata) */
    size_t inflight;
    size_t running, run_waiting; /* working now (at most run.max), waiting for a place */
    size_t run_peak;             /* most ever working at once */
    uint64_t run_waits;          /* times a job waited for a place */
    /* in flight by phase: new, queued behind the account, locking (or waiting
     * for a retry), running, emitting, finishing, recording (the outcome,
     * before its output in a transaction), committing (output in a
     * transaction not committed yet) */
    size_t by_phase[OB_WORKER_PHASES];
    uint64_t txn_commits, txn_aborts; /* output.transactions */
    int paused;
} ob_worker_stats_t;

/* Redis connection options from the settings (redis.*), for the workers and
 * the tools alike; the strings stay the config's. */
void ob_worker_redis_opts(const ob_config_t *cfg, ob_redis_opts_t *out);

ob_worker_t *ob_worker_new(ob_loop_t *loop, const ob_worker_opts_t *opts, char *errstr,
                           size_t errstr_size);
/* Run until stopped (SIGTERM/SIGINT or ob_worker_stop), then shut down
 * gracefully: stop fetching, finish or hand back in-flight work within
 * shutdown_ms, commit, release locks, leave the group. */
ob_err_t ob_worker_run(ob_worker_t *w);
void ob_worker_stop(ob_worker_t *w);
void ob_worker_free(ob_worker_t *w);
void ob_worker_get_stats(const ob_worker_t *w, ob_worker_stats_t *out);

/* The worker's metrics in the Prometheus text format (what /metrics serves). */
void ob_worker_render_metrics(ob_worker_t *w, ob_buf_t *out);
/* 1 when ready for work: Redis connected and partitions assigned; else 0 and
 * why. */
int ob_worker_ready(ob_worker_t *w, char *why, size_t why_size);
/* The port of the metrics and health server (0: none). */
int ob_worker_metrics_port(const ob_worker_t *w);
/* The worker's librdkafka consumer handle (NULL before it runs), for tests that
 * act on its fetching as librdkafka itself may (e.g. a seek back). */
struct rd_kafka_s *ob_worker_kafka_consumer(ob_worker_t *w);

/* Main for a stage worker: config from the environment/file, logging, run. */
/* The start of a fleet process's main(): --help (the usage line, then
 * about), an unknown argument (exit code 2), the settings (2 when they are
 * wrong, with why on stderr), the log's service and level, SIGPIPE ignored,
 * jansson on the fleet's allocator. -1 when the process goes on with *cfg
 * loaded (release with ob_config_free), else the exit code. */
int ob_process_begin(int argc, char **argv, const char *about, const char *service,
                     ob_config_t *cfg);
int ob_worker_main(const ob_stage_ops_t *stage, int argc, char **argv);

#endif
