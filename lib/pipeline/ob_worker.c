/*
 * ob_worker: the stage runtime (see ob_worker.h).
 *
 * A job is one Kafka message. Its life:
 *   NEW -> (queued behind the account's current job) -> LOCKING -> RUNNING
 *   (CALL / WAIT steps) -> EMITTING (produce, wait for the broker's ack) ->
 *   FINISHING (state write) -> freed, offset marked done.
 * With output transactions the outcome is recorded first:
 *   RUNNING -> RECORDING (state write) -> EMITTING (produce into the open
 *   transaction) -> COMMITTING (its offset goes with it) -> freed.
 * Jobs of one account run one at a time in arrival order (same key, same
 * partition); jobs of different accounts run concurrently, up to the window.
 *
 * A partition taken away by a rebalance drops its jobs at once (calls and
 * timers cancelled, locks released); a job already waiting for its produce
 * acknowledgement is only detached and freed when the acknowledgement comes.
 * The new owner redoes all of them: stages are idempotent.
 */
#include "ob_worker.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ob_alloc.h"
#include "ob_awsconfig.h"
#include "ob_credsrc.h"
#include "ob_crypto.h"
#include "ob_hash.h"
#include "ob_heap.h"
#include "ob_http.h"
#include "ob_kafka.h"
#include "ob_list.h"
#include "ob_lock.h"
#include "ob_log.h"
#include "ob_metrics.h"
#include "ob_offsets.h"
#include "ob_probes.h"
#include "ob_ratelimit.h"
#include "ob_redis.h"
#include "ob_session.h"
#include "ob_state.h"
#include "ob_time.h"

typedef enum phase_e {
    PH_NEW = 0,
    PH_QUEUED,
    PH_LOCKING,
    PH_RUNNING,
    PH_EMITTING,
    PH_FINISHING,
    PH_RECORDING,  /* outcome being recorded before its output (output.transactions) */
    PH_COMMITTING, /* output in a transaction not committed yet (output.transactions) */
    PH__COUNT
} phase_t;
_Static_assert(PH__COUNT == OB_WORKER_PHASES, "ob_worker_stats_t.by_phase has a slot a phase");

typedef struct acct_s acct_t;

/* The plan kept by a job: parse()'s strings, in one allocation. */
typedef struct job_plan_s {
    const char *account_id, *request_id, *role_arn, *external_id, *region, *desired;
    char *mem;
    unsigned char offboard; /* ob_job_plan_t's */
    unsigned repair;
    const char *mode;
} job_plan_t;

typedef struct job_s {
    struct ob_worker_s *w;
    const char *topic; /* interned by the worker */
    int32_t partition;
    int64_t offset;
    uint64_t seq;         /* arrival order: its HTTP requests and its turn to run go by it */
    int busy;             /* holds one of run.max places */
    ob_heap_node_t rnode; /* in w->runq while waiting for a place (key: seq) */
    char *key;
    size_t key_len;
    char *payload; /* the bytes that arrived; NULL once the stage keeps them parsed */
    size_t len;    /* their size */
    uint8_t arrived_sha256[OB_SHA256_LEN]; /* theirs, once payload is NULL */
    ob_msg_header_t *headers;              /* the message's, but the sealed session */
    size_t nheaders;
    uint8_t *session; /* the sealed session it came with (session.keys), until used */
    size_t session_len;
    phase_t phase;
    int detached;           /* partition revoked while the produce was in flight */
    int offset_done;        /* its offset is marked finished */
    int retry_wait;         /* waiting for a stage retry (PH_LOCKING, on its timer) */
    struct job_s *txn_next; /* in w->txn_open or w->txn_committing */
    int failed;             /* outcome is a dead letter */
    job_plan_t plan;
    void *st;
    ob_step_t *last; /* the DONE or FAIL step (NULL until there is one) */
    ob_lock_t *lock;
    uint64_t fence;
    ob_credsrc_t *creds;
    ob_aws_call_t *call;
    ob_http_xfer_t *xfer;
    ob_step_t *http; /* the HTTP step being tried (NULL: none) */
    int http_attempts;
    ob_timer_t timer; /* retries, polls and waits of this job */
    int lock_attempts;
    int state_attempts;         /* tries of the outcome's state write */
    int state_inflight;         /* the outcome's state write awaits its reply (PH_RECORDING) */
    int recorded;               /* the outcome is in the account's state (PH_RECORDING done) */
    int skipped;                /* already done: nothing was run */
    int unchanged;              /* intake: the account already has the desired state */
    int deliveries;             /* messages of its outcome not acknowledged yet */
    int delivery_failed;        /* one of them failed (no transactions) */
    const char *unchanged_why;  /* its reason for the record (static text) */
    char *intake;               /* OB_MSG_HDR_INTAKE of the request (malloc'd; NULL: unknown) */
    char *superseded;           /* intake: the account's superseded requests, with any this one
                                 * replaced (malloc'd; NULL: none) */
    uint64_t t_start;           /* loop time the stage first ran (0: not yet) */
    int64_t ts_ms;              /* the message's Kafka timestamp (-1: none) */
    int attempts;               /* AWS and HTTP calls made (all stage attempts) */
    int stage_attempt;          /* this stage's attempt for this request (1-based, kept in Redis) */
    int64_t first_failure_wall; /* wall ms of the first failure here (0: none yet) */
    uint64_t first_failure_ms;  /* loop time of the first failure here (0: none yet) */
    acct_t *acct;
    struct job_s *acct_next; /* queued behind the account's active job */
    ob_list_t node;          /* in w->jobs, newest first */
    char key_mem[];          /* where key points (NULL key: none) */
} job_t;

#define JOB_OF(n) OB_LIST_ENTRY((n), job_t, node)

struct acct_s {
    ob_hnode_t hnode; /* in w->accts, by id */
    ob_list_t all;    /* in w->acct_list */
    char id[OB_ACCOUNT_ID_LEN];
    job_t *active;
    job_t *qhead, *qtail;
};

/* An input offset waiting to be committed in a transaction. */
typedef struct pend_s {
    const char *topic; /* interned */
    int32_t partition;
    int64_t offset; /* the next offset to consume */
    uint64_t ver;   /* changes whenever a message of the partition finishes */
} pend_t;

/* Messages of a newly assigned partition that its previous owner finished
 * out of order (above the committed offset) in a committed transaction: a
 * bitmap from `base`, from the commit's metadata. */
typedef struct skip_s {
    const char *topic; /* interned */
    int32_t partition;
    int64_t base;
    unsigned char *map;
    size_t len;
} skip_t;

/* The committed offset's metadata: "ob1:" and the base64 of the finished
 * offsets' bitmap (ob_offsets_done_map). Brokers keep at most
 * offset.metadata.max.bytes (4096 by default) of it. */
#define DONE_MAP_PREFIX "ob1:"
#define DONE_MAP_MAX    1536 /* bytes of bitmap: 12,288 offsets, 2,048 characters of base64 */

struct ob_worker_s {
    ob_loop_t *loop;
    ob_worker_opts_t opts;
    const ob_stage_ops_t *stage;
    const ob_config_t *cfg;
    char name[128];
    char host[128];
    char topic_in[256];
    int intake; /* the stage that takes requests (input "requests") */
    /* A side stage's own fields of the record: "<name>_at", "<name>_error". */
    char side_at_field[40], side_error_field[40], side_request_field[40];
    char topic_dlq[256];
    char **topics; /* topic names jobs point to (interned) */
    size_t ntopics;
    uint64_t job_seq;
    /* run.max: jobs working at once (busy); the others wait in runq, a heap
     * by arrival order, for a place. A job gives its place back while it
     * waits (a stack poll, a retry, a busy lock) and when it has finished
     * its stage (producing and recording the outcome takes no place). */
    size_t run_max, run_busy;
    ob_heap_t runq;
    ob_timer_t *run_timer;
    ob_kconsumer_t *consumer;
    ob_kproducer_t *producer;
    ob_redis_t *redis;
    ob_ratelimit_t *limiter;
    ob_http_t *http;
    ob_awsconfig_t *awscfg;
    ob_aws_t *aws;
    ob_credsrc_t *fleet;
    ob_assume_cache_t *assume;
    ob_session_keys_t *session_keys; /* session.keys (NULL: not set) */
    uint64_t refused_logged_at;      /* loop time a refused session was last logged */
    ob_offsets_t *offsets;
    ob_signal_t *signals;
    ob_htab_t accts;     /* acct_t by id: the accounts with work here */
    ob_list_t acct_list; /* the same accounts, to go through them all */
    ob_list_t jobs;      /* every job in flight */
    void *stage_ctx;     /* the stage's own across messages (ob_stage_ops_t.ctx_new) */
    size_t inflight, max_inflight;
    int paused;
    int stopping;
    unsigned short rng[3]; /* jitter: seeded per process, so replicas do not retry in step */
    ob_worker_stats_t stats;
    char group[256];
    /* output.transactions: jobs whose output is in the open transaction, and
     * in the one being committed; the input offsets to commit with the next
     * one, and those of the commit under way. */
    int txn;
    int freeing;
    int failed_fatal; /* the transactional producer failed: exit non-zero */
    char txn_id[512];
    ob_timer_t *commit_timer;
    /* When every message in flight is in the open transaction (nothing else
     * could join it), it is committed without waiting for the tick
     * (commit_soon), though never sooner than output.commit.interval after
     * the last commit started (commit_at, loop time): one account alone is
     * handed on at once. Otherwise commit_timer's tick commits, once an
     * interval: committing whenever output came after a pause made 40 %
     * more commits in a burst of 10,000 accounts, and cost the broker 15 %
     * more CPU. */
    ob_timer_t *commit_soon;
    /* The stage's chore (ob_stage_ops_t.chore): its call in flight, or the
     * timer of its wait; ended once it returned another step. */
    ob_aws_call_t *chore_call;
    ob_timer_t *chore_timer;
    int chore_ended;
    uint64_t commit_at;
    size_t ntxn_open; /* jobs in txn_open */
    uint64_t ends_at; /* loop time the partitions' ends were last asked for */
    job_t *txn_open, *txn_committing;
    pend_t *pend, *snap;
    size_t npend, cap_pend, nsnap;
    pend_t *marked; /* per partition, the offset last stored or pended */
    size_t nmarked, cap_marked;
    /* Partitions whose finished marks are no longer true: a job of theirs
     * was dropped after its transaction aborted. Nothing more is committed
     * for them until they are revoked (the new owner redoes from the last
     * commit). */
    pend_t *frozen;
    size_t nfrozen, cap_frozen;
    /* Positions librdkafka still reported for partitions when they were
     * assigned (left from an earlier assignment): not to be trusted until
     * this assignment has consumed something. */
    pend_t *stale;
    size_t nstale, cap_stale;
    /* Partitions the consumer went back on (rewound()): the committed offset,
     * below which every message is finished and its output committed, so not
     * done again. Until the partition is revoked. */
    pend_t *floor;
    size_t nfloor, cap_floor;
    skip_t *skips;
    size_t nskips;
    const rd_kafka_topic_partition_list_t *revoking; /* during a revocation's commit */
    ob_probes_t *probes;                             /* /metrics, /healthz, /readyz */
    ob_histogram_t duration; /* seconds from a stage's first run to its outcome */
};

static const double duration_bounds[] = {0.05, 0.1, 0.25, 0.5, 1,   2.5, 5,
                                         10,   30,  60,   120, 300, 600, 1800};

static void job_start_lock(job_t *j);
static void job_begin(job_t *j);
static void job_continue(job_t *j);
static int slot_take(job_t *j);
static void job_run_step(job_t *j, const ob_aws_result_t *res);
static void job_execute(job_t *j, ob_step_t *s);
static void job_finish(job_t *j);
static void commit_kick(ob_worker_t *w);

/* ---- steps ---- */

int ob_step_json11(ob_step_t *s, ob_aws_svc_t svc, const char *op, json_t *body, const char *region)
{
    memset(s, 0, sizeof(*s));
    char err[256];
    ob_err_t e = body ? ob_json11_init_obj(&s->req, svc, op, body, err, sizeof(err)) : OB_ERR_NOMEM;
    json_decref(body);
    if (e != OB_OK) {
        ob_step_fail(s, OB_DLQ_PERMANENT, "request_error", "%s: %s", op,
                     e == OB_ERR_NOMEM ? "out of memory" : err);
        return -1;
    }
    s->kind = OB_STEP_CALL;
    snprintf(s->region, sizeof(s->region), "%s", region);
    return 0;
}

void ob_step_clear(ob_step_t *s)
{
    ob_aws_req_free(&s->req);
    free(s->emit);
    free(s->also);
    free(s->http_url);
    ob_hdrs_clear(&s->http_headers);
    ob_buf_free(&s->http_body);
    memset(s, 0, sizeof(*s));
}

void ob_step_fail(ob_step_t *s, ob_dlq_class_t cls, const char *code, const char *fmt, ...)
{
    ob_step_clear(s);
    s->kind = OB_STEP_FAIL;
    s->fail_class = cls;
    snprintf(s->code, sizeof(s->code), "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->message, sizeof(s->message), fmt, ap);
    va_end(ap);
}

const char *ob_retry_reason_name(ob_retry_reason_t r)
{
    static const char *const names[OB_RR__COUNT] = {"other", "throttling", "transient", "timeout",
                                                    "busy"};
    return (unsigned)r < OB_RR__COUNT ? names[r] : "other";
}

void ob_step_fail_aws(ob_step_t *s, const ob_aws_result_t *res)
{
    /* A role that could not be assumed carries STS's own code and class
     * (AccessDenied is final; throttling, a 5xx, a reset, a timeout or a
     * truncated reply are retried), as any call's failure does. */
    int retryable = res->retry_class != OB_RETRY_NO;
    int has_code = res->err == OB_ERR_AWS || (res->err == OB_ERR_CREDENTIALS && res->aws.code[0]);
    ob_step_fail(s, retryable ? OB_DLQ_RETRIES_EXHAUSTED : OB_DLQ_PERMANENT,
                 has_code ? res->aws.code : ob_err2str(res->err), "%s", res->errmsg);
    s->retry_reason = res->retry_class == OB_RETRY_THROTTLE  ? OB_RR_THROTTLING
                      : res->retry_class == OB_RETRY_TIMEOUT ? OB_RR_TIMEOUT
                      : retryable                            ? OB_RR_TRANSIENT
                                                             : OB_RR_OTHER;
    if (res->err == OB_ERR_AWS) {
        snprintf(s->aws_request_id, sizeof(s->aws_request_id), "%s", res->aws.request_id);
        s->http_status = (int)res->status;
    }
}

static void now_iso(char out[OB_TIME_LEN])
{
    ob_time_now_iso(out);
}

/* ---- accounts ---- */

static int acct_eq(const ob_hnode_t *n, const void *id)
{
    return !strcmp(OB_HNODE_ENTRY(n, acct_t, hnode)->id, id);
}

static acct_t *acct_get(ob_worker_t *w, const char *id, int create)
{
    uint64_t h = ob_hash_str(id);
    ob_hnode_t *n = ob_htab_find(&w->accts, h, acct_eq, id);
    if (n || !create)
        return n ? OB_HNODE_ENTRY(n, acct_t, hnode) : NULL;
    acct_t *a = ob_calloc(1, sizeof(*a));
    snprintf(a->id, sizeof(a->id), "%s", id);
    ob_htab_insert(&w->accts, &a->hnode, h);
    ob_list_push_back(&w->acct_list, &a->all);
    return a;
}

static void acct_drop(ob_worker_t *w, acct_t *a)
{
    ob_htab_remove(&w->accts, &a->hnode);
    ob_list_remove(&a->all);
    free(a);
}

static void acct_drop_if_idle(ob_worker_t *w, acct_t *a)
{
    if (!a->active && !a->qhead)
        acct_drop(w, a);
}

/* Take j off its account (active or queued); start the next one if j was active. */
static void acct_release(job_t *j, int start_next)
{
    ob_worker_t *w = j->w;
    acct_t *a = j->acct;
    if (!a)
        return;
    j->acct = NULL;
    if (a->active == j) {
        a->active = NULL;
        job_t *next = a->qhead;
        if (next) {
            a->qhead = next->acct_next;
            if (!a->qhead)
                a->qtail = NULL;
            next->acct_next = NULL;
            a->active = next;
            if (start_next && slot_take(next))
                job_start_lock(next);
        }
    } else {
        job_t **pp = &a->qhead;
        job_t *prev = NULL;
        while (*pp && *pp != j) {
            prev = *pp;
            pp = &(*pp)->acct_next;
        }
        if (*pp) {
            *pp = j->acct_next;
            if (a->qtail == j)
                a->qtail = prev;
        }
        j->acct_next = NULL;
    }
    acct_drop_if_idle(w, a);
}

/* ---- run.max: the jobs working at once ---- */

static job_t *job_of(ob_heap_node_t *n)
{
    return OB_HEAP_ENTRY(n, job_t, rnode);
}

static void rq_push(ob_worker_t *w, job_t *j)
{
    if (ob_heap_push(&w->runq, &j->rnode, j->seq) != OB_OK) {
        ob_logf(OB_LOG_ERROR, "worker", "out of memory: stopping");
        abort();
    }
}

static void slot_grant(ob_worker_t *w, job_t *j)
{
    j->busy = 1;
    if (++w->run_busy > w->stats.run_peak)
        w->stats.run_peak = w->run_busy;
}

/* A place to work in, now (1), or a turn in line (0: the job continues from
 * job_resume when its turn comes). */
static int slot_take(job_t *j)
{
    ob_worker_t *w = j->w;
    if (j->busy)
        return 1;
    int waiting = ob_heap_in(&j->rnode);
    if (!waiting && (w->run_max == 0 || w->run_busy < w->run_max) && w->runq.n == 0) {
        slot_grant(w, j);
        return 1;
    }
    if (!waiting) {
        rq_push(w, j);
        w->stats.run_waits++;
    }
    if (w->run_max == 0 || w->run_busy < w->run_max)
        ob_timer_start(w->run_timer, 0);
    return 0;
}

static void slot_give(job_t *j)
{
    ob_worker_t *w = j->w;
    ob_heap_remove(&w->runq, &j->rnode);
    if (!j->busy)
        return;
    j->busy = 0;
    w->run_busy--;
    if (w->runq.n)
        ob_timer_start(w->run_timer, 0);
}

/* A job's turn came: carry on from where it waited. */
static void job_resume(job_t *j)
{
    if (j->phase == PH_NEW)
        job_begin(j);
    else if (j->phase == PH_QUEUED)
        job_start_lock(j);
    else
        job_continue(j);
}

static void run_dispatch(ob_timer_t *t, void *arg)
{
    (void)t;
    ob_worker_t *w = arg;
    job_t *held = NULL; /* new jobs held back while stopping */
    while (w->runq.n && (w->run_max == 0 || w->run_busy < w->run_max)) {
        job_t *j = job_of(ob_heap_top(&w->runq));
        ob_heap_remove(&w->runq, &j->rnode);
        if (w->stopping && j->phase == PH_NEW) {
            j->acct_next = held; /* unused before the job begins */
            held = j;
            continue;
        }
        slot_grant(w, j);
        job_resume(j);
    }
    while (held) {
        job_t *j = held;
        held = j->acct_next;
        j->acct_next = NULL;
        rq_push(w, j);
    }
}

/* ---- window ---- */

static void window_check(ob_worker_t *w)
{
    if (!w->consumer || w->stopping)
        return;
    if (!w->paused && w->inflight >= w->max_inflight) {
        if (ob_kconsumer_pause(w->consumer, NULL) == OB_OK) {
            w->paused = 1;
            ob_logf(OB_LOG_DEBUG, "worker", "window full (%zu): partitions paused", w->inflight);
        }
    } else if (w->paused && w->inflight <= w->max_inflight * 8 / 10) {
        if (ob_kconsumer_resume(w->consumer, NULL) == OB_OK) {
            w->paused = 0;
            ob_logf(OB_LOG_DEBUG, "worker", "window at %zu: partitions resumed", w->inflight);
        }
    }
}

/* ---- job lifetime ---- */

/* Jobs keep only what they use: the steps are allocated when there is one
 * (thousands of jobs wait in flight), the plan's strings in one block. */
static const ob_step_t no_step;

static void step_drop(ob_step_t **s)
{
    if (*s) {
        ob_step_clear(*s);
        free(*s);
        *s = NULL;
    }
}

/* A zeroed step for j->last; a worker that cannot allocate this little
 * stops (its messages are uncommitted and redelivered). */
static ob_step_t *step_new(void)
{
    ob_step_t *s = ob_calloc(1, sizeof(*s));
    return s;
}

static ob_step_t *job_last(job_t *j)
{
    if (!j->last)
        j->last = step_new();
    return j->last;
}

static const ob_step_t *last_of(const job_t *j)
{
    return j->last ? j->last : &no_step;
}

static void plan_keep(job_t *j, const ob_job_plan_t *p)
{
    const char *src[6] = {p->account_id,  p->request_id, p->role_arn,
                          p->external_id, p->region,     p->desired};
    size_t len[6], total = 0;
    for (int i = 0; i < 6; i++)
        total += (len[i] = strnlen(src[i], 2048)) + 1;
    char *m = ob_malloc(total);
    const char **dst[6] = {&j->plan.account_id,  &j->plan.request_id, &j->plan.role_arn,
                           &j->plan.external_id, &j->plan.region,     &j->plan.desired};
    char *at = m;
    for (int i = 0; i < 6; i++) {
        memcpy(at, src[i], len[i]);
        at[len[i]] = '\0';
        *dst[i] = at;
        at += len[i] + 1;
    }
    free(j->plan.mem);
    j->plan.mem = m;
    j->plan.offboard = !!p->offboard;
    j->plan.repair = p->repair;
    j->plan.mode = p->mode;
}

static const char *topic_intern(ob_worker_t *w, const char *name)
{
    if (!strcmp(name, w->topic_in))
        return w->topic_in;
    for (size_t i = 0; i < w->ntopics; i++)
        if (!strcmp(w->topics[i], name))
            return w->topics[i];
    char **t = ob_realloc(w->topics, (w->ntopics + 1) * sizeof(*t));
    char *d = ob_strdup(name);
    if (!t || !d) {
        ob_logf(OB_LOG_ERROR, "worker", "out of memory: stopping");
        abort();
    }
    w->topics = t;
    w->topics[w->ntopics++] = d;
    return d;
}

static void job_free(job_t *j)
{
    free(j->intake);
    free(j->superseded);
    ob_worker_t *w = j->w;
    ob_list_remove(&j->node);
    slot_give(j);
    if (j->call)
        ob_aws_cancel(j->call);
    if (j->xfer)
        ob_http_cancel(j->xfer);
    step_drop(&j->http);
    ob_timer_stop(&j->timer);
    if (j->lock)
        ob_lock_release(j->lock);
    if (j->creds)
        ob_credsrc_unref(j->creds);
    if (j->st) {
        if (w->stage->clear)
            w->stage->clear(j->st);
        free(j->st);
    }
    step_drop(&j->last);
    free(j->plan.mem);
    for (size_t i = 0; i < j->nheaders; i++) {
        free((char *)j->headers[i].name);
        free((void *)j->headers[i].value);
    }
    free(j->headers);
    if (j->session) {
        ob_wipe(j->session, j->session_len);
        free(j->session);
    }
    free(j->payload);
    free(j);
    w->inflight--;
    window_check(w);
}

/* ---- input offsets ---- */

/* Raise (or add) a partition's offset in a small table; returns 1 when it
 * moved. */
static int table_raise(pend_t **tab, size_t *n, size_t *cap, const char *topic, int32_t partition,
                       int64_t offset)
{
    for (size_t i = 0; i < *n; i++) {
        if ((*tab)[i].partition == partition && (*tab)[i].topic == topic) {
            if (offset <= (*tab)[i].offset)
                return 0;
            (*tab)[i].offset = offset;
            return 1;
        }
    }
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 16;
        pend_t *t = ob_realloc(*tab, c * sizeof(*t));
        if (!t) {
            ob_logf(OB_LOG_ERROR, "worker", "out of memory: offset not recorded");
            return 0;
        }
        *tab = t;
        *cap = c;
    }
    (*tab)[(*n)++] = (pend_t){topic, partition, offset, 0};
    return 1;
}

static int is_frozen(const ob_worker_t *w, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < w->nfrozen; i++)
        if (w->frozen[i].partition == partition && !strcmp(w->frozen[i].topic, topic))
            return 1;
    return 0;
}

static void freeze(ob_worker_t *w, const char *topic, int32_t partition)
{
    if (is_frozen(w, topic, partition))
        return;
    table_raise(&w->frozen, &w->nfrozen, &w->cap_frozen, topic, partition, 0);
    for (size_t i = 0; i < w->npend; i++)
        if (w->pend[i].partition == partition && w->pend[i].topic == topic) {
            w->pend[i] = w->pend[--w->npend];
            break;
        }
    ob_logkv(OB_LOG_WARN, "worker",
             "a partition's finished work was lost with an aborted transaction: nothing more is "
             "committed for it here, its next owner redoes it",
             "topic", topic, NULL);
}

/* In a transaction, every finished message of a partition is news for the
 * next commit (its offset, or the bitmap of what finished above it). */
static void pend_touch(ob_worker_t *w, const char *topic, int32_t partition)
{
    if (is_frozen(w, topic, partition))
        return;
    int64_t off = ob_offsets_committable(w->offsets, topic, partition);
    for (size_t i = 0; i < w->nmarked; i++)
        if (w->marked[i].topic == topic && w->marked[i].partition == partition &&
            w->marked[i].offset > off)
            off = w->marked[i].offset;
    if (off < 0)
        return;
    table_raise(&w->pend, &w->npend, &w->cap_pend, topic, partition, off);
    for (size_t i = 0; i < w->npend; i++)
        if (w->pend[i].topic == topic && w->pend[i].partition == partition)
            w->pend[i].ver++;
}

static void table_forget(pend_t *tab, size_t *n, const rd_kafka_topic_partition_list_t *parts)
{
    for (size_t i = 0; i < *n;) {
        int gone = 0;
        for (int k = 0; k < parts->cnt && !gone; k++)
            gone = parts->elems[k].partition == tab[i].partition &&
                   !strcmp(parts->elems[k].topic, tab[i].topic);
        if (gone)
            tab[i] = tab[--*n];
        else
            i++;
    }
}

/* Commit `offset` for the partition: auto-commit, or the next transaction. */
static void commit_offset(ob_worker_t *w, const char *topic, int32_t partition, int64_t offset)
{
    if (w->txn && is_frozen(w, topic, partition))
        return;
    if (!table_raise(&w->marked, &w->nmarked, &w->cap_marked, topic, partition, offset))
        return;
    if (w->txn)
        pend_touch(w, topic, partition);
    else
        ob_kconsumer_store(w->consumer, topic, partition, offset);
}

/* Partitions with nothing in flight commit the consumer's position: past the
 * last message, it is also past the transaction markers that follow it, so
 * a partition that is done shows no lag. */
static void commit_idle_positions(ob_worker_t *w)
{
    rd_kafka_topic_partition_list_t *a = w->consumer ? ob_kconsumer_assignment(w->consumer) : NULL;
    if (!a)
        return;
    if (a->cnt > 0 && rd_kafka_position(ob_kconsumer_handle(w->consumer), a) == 0) {
        for (int i = 0; i < a->cnt; i++) {
            rd_kafka_topic_partition_t *tp = &a->elems[i];
            if (tp->err || tp->offset < 0 ||
                ob_offsets_pending(w->offsets, tp->topic, tp->partition) > 0)
                continue;
            const char *topic = topic_intern(w, tp->topic);
            int stale = 0;
            for (size_t k = 0; k < w->nstale; k++)
                if (w->stale[k].topic == topic && w->stale[k].partition == tp->partition) {
                    stale = w->stale[k].offset == tp->offset;
                    if (!stale)
                        w->stale[k] = w->stale[--w->nstale];
                    break;
                }
            if (stale)
                continue;
            /* Every message handed to us is finished: the position (the
             * offset after the last one, and after any marker that followed
             * it) is safe to commit. */
            commit_offset(w, topic, tp->partition, tp->offset);
        }
    }
    rd_kafka_topic_partition_list_destroy(a);
}

/* A message of this partition is finished: commit up to the lowest
 * unfinished one, through auto-commit, or with the next transaction. */
/* A message entered processing: its offset is tracked, so that nothing after
 * it is committed before it is finished. A message that cannot be tracked
 * must not be worked on untracked, or a later offset's commit would pass it:
 * the worker stops, and its restart resumes from the committed offset (a
 * consumer that went back is handled before: rewound()). */
static void track(ob_worker_t *w, const char *topic, int32_t partition, int64_t offset)
{
    ob_err_t e = ob_offsets_add(w->offsets, topic, partition, offset);
    if (e != OB_OK) {
        ob_logf(OB_LOG_ERROR, "worker",
                "cannot track offset %lld of %s [%d] (%s): stopping so that nothing is committed "
                "past it",
                (long long)offset, topic, (int)partition, ob_err2str(e));
        abort();
    }
}

static void mark_done(ob_worker_t *w, const char *topic, int32_t partition, int64_t offset)
{
    int64_t commit;
    int moved = ob_offsets_done(w->offsets, topic, partition, offset, &commit);
    if (moved == 1)
        commit_offset(w, topic, partition, commit);
    else if (moved == 0 && w->txn)
        pend_touch(w, topic, partition);
}

/* ---- sealed sessions (session.keys) ---- */

/* The session the previous stage sealed for this account and role: offered
 * to the job's credentials source, which then needs no AssumeRole. */
static void session_take(job_t *j)
{
    ob_worker_t *w = j->w;
    uint8_t *blob = j->session;
    size_t len = j->session_len;
    j->session = NULL;
    j->session_len = 0;
    if (!w->session_keys) {
        free(blob);
        return;
    }
    ob_aws_creds_t c;
    memset(&c, 0, sizeof(c));
    ob_err_t e = ob_session_open(w->session_keys, blob, len, j->plan.account_id, j->plan.role_arn,
                                 j->plan.external_id, &c);
    ob_wipe(blob, len);
    free(blob);
    if (e != OB_OK) {
        w->stats.sessions_refused++;
        /* A ring that differs between stages refuses every message: once a
         * minute is enough to say so (the metric counts them all). */
        uint64_t now = ob_loop_update_time(w->loop);
        if (!w->refused_logged_at || now - w->refused_logged_at >= 60000) {
            w->refused_logged_at = now;
            char n[24];
            snprintf(n, sizeof(n), "%llu", (unsigned long long)w->stats.sessions_refused);
            ob_logkv(OB_LOG_WARN, "worker",
                     "a sealed session could not be opened: assuming the role instead (do the "
                     "stages have the same session.keys?)",
                     "account", j->plan.account_id, "reason",
                     e == OB_ERR_PARSE ? "not sealed for this account and role by a key of "
                                         "session.keys"
                                       : "not a sealed session of this version",
                     "refused_so_far", n, NULL);
        }
        return;
    }
    /* Not taken while the source has as good already: no call either way. */
    if (ob_credsrc_offer(j->creds, &c) || ob_credsrc_peek(j->creds))
        w->stats.sessions_used++;
    else
        w->stats.sessions_stale++;
    ob_aws_creds_clear(&c);
}

/* Seal the job's session into its hand-off for the next stage. */
static void session_pass(job_t *j, rd_kafka_headers_t *hdrs)
{
    ob_worker_t *w = j->w;
    const ob_aws_creds_t *c = w->session_keys && j->creds ? ob_credsrc_peek(j->creds) : NULL;
    if (!c || !c->session_token || c->expires_ms <= 0)
        return;
    uint8_t *blob = NULL;
    size_t len = 0;
    if (ob_session_seal(w->session_keys, c, j->plan.account_id, j->plan.role_arn,
                        j->plan.external_id, &blob, &len) != OB_OK)
        return;
    rd_kafka_header_add(hdrs, OB_SESSION_HEADER, -1, blob, (ssize_t)len);
    free(blob);
    w->stats.sessions_sealed++;
}

static void offset_done(job_t *j)
{
    if (j->offset_done || j->detached)
        return;
    j->offset_done = 1;
    mark_done(j->w, j->topic, j->partition, j->offset);
}

/* The message is finished: its offset may be committed. */
static void job_complete(job_t *j)
{
    ob_worker_t *w = j->w;
    uint64_t took = j->t_start ? ob_loop_update_time(w->loop) - j->t_start : 0;
    if (j->t_start && !j->skipped)
        ob_histogram_observe(&w->duration, (double)took / 1000.0);
    if (j->plan.account_id[0] && (j->t_start || j->failed)) {
        /* One line per account and stage: what an operator searches for. */
        char ms[24], attempts[16];
        snprintf(ms, sizeof(ms), "%llu", (unsigned long long)took);
        snprintf(attempts, sizeof(attempts), "%d", j->stage_attempt);
        ob_logkv(j->failed ? OB_LOG_WARN : OB_LOG_INFO, "worker",
                 j->skipped  ? "stage skipped: already done"
                 : j->failed ? "stage failed: dead letter"
                             : "stage done",
                 "account", j->plan.account_id, "request_id", j->plan.request_id, "stage",
                 w->stage->name, "duration_ms", ms, "stage_attempts", attempts, "error",
                 j->failed ? last_of(j)->code : NULL, NULL);
    }
    offset_done(j);
    if (j->lock) {
        ob_lock_release(j->lock);
        j->lock = NULL;
    }
    acct_release(j, !w->stopping);
    job_free(j);
}

static void http_attempt(job_t *j);
static void write_state(job_t *j);
static void record_outcome(job_t *j);

static void timer_fired(ob_timer_t *t, void *arg)
{
    job_t *j = arg;
    if (j->phase == PH_EMITTING) {
        job_finish(j); /* produce retry: no place needed */
        return;
    }
    if (j->phase == PH_FINISHING) {
        write_state(j); /* the outcome's record, again */
        return;
    }
    if (j->phase == PH_RECORDING) {
        record_outcome(j);
        return;
    }
    /* Shutting down: a job that waits long (a stack poll, a stage retry)
     * starts nothing new; it is handed back with its progress recorded. */
    if (j->w->stopping && (j->retry_wait || j->phase == PH_RUNNING))
        return;
    j->retry_wait = 0;
    if (slot_take(j))
        job_continue(j);
}

static void job_continue(job_t *j)
{
    if (j->phase == PH_LOCKING)
        job_start_lock(j);
    else if (j->phase == PH_RUNNING && j->http && j->http->kind == OB_STEP_HTTP)
        http_attempt(j);
    else if (j->phase == PH_RUNNING)
        job_run_step(j, NULL);
    else if (j->phase == PH_EMITTING)
        job_finish(j); /* produce retry */
}

/* ---- finishing: produce, then state, then release ---- */

#define STATE_WRITE_TRIES 10

static void on_state_written(ob_err_t err, void *arg)
{
    job_t *j = arg;
    if (err != OB_OK && err != OB_ERR_STATE && !j->w->freeing &&
        ++j->state_attempts < STATE_WRITE_TRIES) {
        /* Redis away or restarting: the outcome is out, its record must
         * follow, or the account's state would say it never happened (the
         * message is committed: nobody comes back to it). */
        j->w->stats.redis_errors++;
        ob_timer_start(&j->timer, 200 * (uint64_t)j->state_attempts);
        return;
    }
    if (err == OB_ERR_STATE)
        ob_logkv(OB_LOG_WARN, "worker", "state write fenced out: a newer holder has the account",
                 "account", j->plan.account_id, NULL);
    else if (err != OB_OK) {
        j->w->stats.redis_errors++;
        ob_logkv(OB_LOG_WARN, "worker", "state write failed", "account", j->plan.account_id,
                 "error", ob_err2str(err), NULL);
    }
    job_complete(j);
}

/* Slots of an outcome's field list: at most 13 name/value pairs of the
 * worker's own (below), the stage's state pairs, and the NULL. */
#define OUTCOME_OWN_PAIRS 13
#define OUTCOME_FIELDS    (2 * OUTCOME_OWN_PAIRS + OB_STEP_STATE_MAX + 1)

/* The outcome's fields in the account's state, in `fields` (NULL-terminated;
 * `now`, `attempts` and `input` hold the strings they point to). */
static void outcome_fields(job_t *j, const char **fields, size_t max, char now[OB_TIME_LEN],
                           char attempts[16], char input[320])
{
    ob_worker_t *w = j->w;
    now_iso(now);
    snprintf(attempts, 16, "%d", j->stage_attempt);
    snprintf(input, 320, "%s:%d:%lld", j->topic, (int)j->partition, (long long)j->offset);
    size_t n = 0;
    if (w->stage->side) {
        /* Only the stage's own fields: the record stays the request's. */
        fields[n++] = w->side_at_field;
        fields[n++] = now;
        fields[n++] = w->side_error_field;
        fields[n++] = j->failed ? last_of(j)->message : "";
        fields[n++] = w->side_request_field;
        fields[n++] = j->plan.request_id;
        const ob_step_t *last = last_of(j);
        for (size_t i = 0; !j->failed && i + 1 < OB_STEP_STATE_MAX && last->state[i] &&
                           last->state[i + 1] && n + 3 < max;
             i += 2) {
            fields[n++] = last->state[i];
            fields[n++] = last->state[i + 1];
        }
        fields[n] = NULL;
        return;
    }
    if (!j->unchanged) {
        fields[n++] = OB_ST_STAGE;
        fields[n++] = w->stage->name;
        fields[n++] = OB_ST_STATUS;
        fields[n++] = j->failed ? OB_ST_STATUS_FAILED : OB_ST_STATUS_DONE;
        fields[n++] = OB_ST_STAGE_ATTEMPTS;
        fields[n++] = attempts;
    }
    fields[n++] = OB_ST_UPDATED_AT;
    fields[n++] = now;
    fields[n++] = OB_ST_REQUEST_ID;
    fields[n++] = j->plan.request_id;
    fields[n++] = OB_ST_INPUT;
    fields[n++] = input;
    if (j->intake) {
        fields[n++] = OB_ST_INTAKE;
        fields[n++] = j->intake;
    }
    if (j->plan.desired[0]) {
        fields[n++] = OB_ST_DESIRED;
        fields[n++] = j->plan.desired;
    }
    if (j->superseded) {
        fields[n++] = OB_ST_SUPERSEDED;
        fields[n++] = j->superseded;
    }
    if (j->unchanged) {
        /* The account is as the request wants it: the record says so and
         * names the request; the connection's fields stay as they are. */
        fields[n++] = OB_ST_OUTCOME;
        fields[n++] = OB_ST_OUTCOME_UNCHANGED;
        fields[n++] = OB_ST_OUTCOME_REASON;
        fields[n++] = j->unchanged_why ? j->unchanged_why : "";
        fields[n] = NULL;
        return;
    }
    if (j->failed) {
        fields[n++] = OB_ST_ERROR_CLASS;
        fields[n++] = ob_dlq_class_name(last_of(j)->fail_class);
        fields[n++] = OB_ST_ERROR_CODE;
        fields[n++] = last_of(j)->code;
        fields[n++] = OB_ST_ERROR_MESSAGE;
        fields[n++] = last_of(j)->message;
    } else {
        fields[n++] = OB_ST_ERROR_CODE;
        fields[n++] = "";
    }
    if (j->failed || !w->txn) {
        /* The stage is over: nothing to continue. (A success recorded
         * before its transaction commits keeps it: if the transaction
         * aborts, whoever redoes the message continues from it.) */
        fields[n++] = OB_ST_PROGRESS;
        fields[n++] = "";
    }
    const ob_step_t *last = last_of(j);
    for (size_t i = 0;
         i + 1 < OB_STEP_STATE_MAX && last->state[i] && last->state[i + 1] && n + 3 < max; i += 2) {
        fields[n++] = last->state[i];
        fields[n++] = last->state[i + 1];
    }
    fields[n] = NULL;
}

/* The value of `name` among NULL-terminated name/value pairs (NULL: none):
 * the last one, as Redis sets them in order (a stage's pair overrides the
 * worker's). */
static const char *field_of(const char *const *fields, const char *name)
{
    const char *v = NULL;
    for (size_t i = 0; fields[i] && fields[i + 1]; i += 2)
        if (!strcmp(fields[i], name))
            v = fields[i + 1];
    return v;
}

/* The drift kinds of a repair as text ("report_missing, stack_drifted") into out. */
static const char *repair_text(unsigned kinds, char *out, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (unsigned bit = 1; bit && bit <= OB_DRIFT__ALL && used < n; bit <<= 1)
        if ((kinds & bit) && ob_drift_name(bit))
            used += (size_t)snprintf(out + used, n - used, "%s%s", used ? ", " : "",
                                     ob_drift_name(bit));
    return out;
}

/* What the account's history gets with an outcome (malloc'd; NULL: nothing
 * worth telling: a stage done on the way). */
static char *history_of(const job_t *j, const char *const *fields)
{
    ob_worker_t *w = j->w;
    char detail[640];
    if (j->unchanged)
        return ob_state_history_entry(NULL, OB_HIST_UNCHANGED, j->plan.request_id, w->stage->name,
                                      NULL, j->unchanged_why);
    if (j->failed) {
        const ob_step_t *s = last_of(j);
        snprintf(detail, sizeof(detail), "%s: %s", s->code, s->message);
        return ob_state_history_entry(NULL, OB_HIST_FAILED, j->plan.request_id, w->stage->name,
                                      NULL, detail);
    }
    const char *drift = field_of(fields, OB_ST_DRIFT_STATUS);
    if (drift)
        return ob_state_history_entry(
            NULL, !strcmp(drift, "in_sync") ? OB_HIST_VERIFIED : OB_HIST_DRIFT, j->plan.request_id,
            w->stage->name, field_of(fields, OB_ST_DRIFT_KEY), field_of(fields, OB_ST_DRIFT_KINDS));
    const char *outcome = field_of(fields, OB_ST_OUTCOME);
    const char *status = field_of(fields, OB_ST_STATUS);
    const char *why = field_of(fields, OB_ST_OUTCOME_REASON);
    if (outcome && !strcmp(outcome, OB_ST_OUTCOME_UNCHANGED) && why && why[0])
        return ob_state_history_entry(NULL, OB_HIST_UNCHANGED, j->plan.request_id, w->stage->name,
                                      NULL, why);
    if (j->plan.repair && status && !strcmp(status, OB_ST_STATUS_CONNECTED))
        /* A repair ends connected: the same connection, announced or not. */
        return ob_state_history_entry(NULL, OB_HIST_REPAIRED, j->plan.request_id, w->stage->name,
                                      field_of(fields, OB_ST_IDEMPOTENCY_KEY),
                                      repair_text(j->plan.repair, detail, sizeof(detail)));
    if (outcome && !strcmp(outcome, OB_ST_OUTCOME_CONNECTED))
        return ob_state_history_entry(
            NULL, j->plan.repair ? OB_HIST_REPAIRED : OB_HIST_CONNECTED, j->plan.request_id,
            w->stage->name, field_of(fields, OB_ST_IDEMPOTENCY_KEY),
            j->plan.repair ? repair_text(j->plan.repair, detail, sizeof(detail)) : NULL);
    if (outcome && !strcmp(outcome, OB_ST_OUTCOME_DISCONNECTED))
        return ob_state_history_entry(NULL, OB_HIST_DISCONNECTED, j->plan.request_id,
                                      w->stage->name, field_of(fields, OB_ST_DISCONNECT_KEY), NULL);
    return NULL;
}

/* An outcome's write: at intake the record is replaced (one request's
 * record, never a mix of two; the account's own fields kept), elsewhere the
 * fields are set; what it means for the account goes to its history in the
 * same script. */
static ob_err_t outcome_write(job_t *j, const char *const *fields, ob_lock_write_cb *cb)
{
    ob_worker_t *w = j->w;
    char *h = history_of(j, fields);
    ob_err_t e;
    if (w->intake && !j->unchanged)
        e = ob_lock_state_replace_h(w->redis, j->plan.account_id, j->fence, OB_STATE_ACCOUNT_FIELDS,
                                    fields, h, cb, j);
    else
        e = ob_lock_state_write_h(w->redis, j->plan.account_id, j->fence, fields, h, cb, j);
    free(h);
    return e;
}

static void write_state(job_t *j)
{
    j->phase = PH_FINISHING;
    if (!j->plan.account_id[0] || !j->fence) {
        job_complete(j);
        return;
    }
    char now[OB_TIME_LEN], attempts[16], input[320];
    const char *fields[OUTCOME_FIELDS];
    outcome_fields(j, fields, sizeof(fields) / sizeof(fields[0]), now, attempts, input);
    if (outcome_write(j, fields, on_state_written) != OB_OK) {
        job_complete(j);
        return;
    }
    if (j->lock && j->phase == PH_FINISHING) {
        ob_lock_release(j->lock);
        j->lock = NULL;
    }
}

/* output.transactions: the outcome is recorded before its output joins the
 * open transaction, and nothing is written after the commit. A worker killed
 * between a commit and a later write would leave the state behind forever
 * (the message is committed: nobody comes back to it); recorded first, the
 * state can only be ahead of an output that is then aborted, and an aborted
 * output's message is always delivered again (its offset was in the same
 * transaction), to whoever redoes it and records it again. */
static void on_recorded(ob_err_t err, void *arg)
{
    job_t *j = arg;
    ob_worker_t *w = j->w;
    j->state_inflight = 0;
    if (j->detached || w->freeing) {
        /* Let go meanwhile: nothing was produced, the message comes again. */
        acct_release(j, 0);
        job_free(j);
        return;
    }
    if (err != OB_OK && err != OB_ERR_STATE) {
        /* Redis away: nothing moves without it anyway (locks), so keep
         * trying; a revocation or a shutdown lets the job go meanwhile. */
        w->stats.redis_errors++;
        if (w->stopping) {
            acct_release(j, 0);
            job_free(j);
            return;
        }
        j->state_attempts++;
        ob_timer_start(&j->timer,
                       (uint64_t)(j->state_attempts < 10 ? 200 * j->state_attempts : 2000));
        return;
    }
    if (err == OB_ERR_STATE)
        ob_logkv(OB_LOG_WARN, "worker", "state write fenced out: a newer holder has the account",
                 "account", j->plan.account_id, NULL);
    j->recorded = 1;
    if (j->lock) {
        ob_lock_release(j->lock);
        j->lock = NULL;
    }
    job_finish(j);
}

static void record_outcome(job_t *j)
{
    j->phase = PH_RECORDING;
    char now[OB_TIME_LEN], attempts[16], input[320];
    const char *fields[OUTCOME_FIELDS];
    outcome_fields(j, fields, sizeof(fields) / sizeof(fields[0]), now, attempts, input);
    if (outcome_write(j, fields, on_recorded) == OB_OK) {
        j->state_inflight = 1;
        return;
    }
    on_recorded(OB_ERR_REDIS, j);
}

/* A job whose outcome produces nothing: recorded (unless it already is),
 * then done. */
static void write_state(job_t *j);
static void finish_without_output(job_t *j)
{
    if (j->recorded)
        job_complete(j);
    else
        write_state(j);
}

static void produce_failed_later(job_t *j, const char *why)
{
    j->w->stats.kafka_errors++;
    ob_logkv(OB_LOG_WARN, "worker", "produce failed; retrying", "error", why, NULL);
    ob_timer_start(&j->timer, 1000);
}

/* The message again when only its parsed form is kept: encoded by the
 * stage (malloc'd; NULL when it cannot be). */
static char *job_reencode(const job_t *j, size_t *len)
{
    char *json = NULL;
    *len = 0;
    if (j->w->stage->reencode(j->st, &json, len) != OB_OK) {
        free(json);
        return NULL;
    }
    return json;
}

static void job_finish(job_t *j)
{
    ob_worker_t *w = j->w;
    slot_give(j);
    if (w->txn && !j->recorded && j->plan.account_id[0] && j->fence) {
        record_outcome(j);
        return;
    }
    j->phase = PH_EMITTING;
    char err[512] = "";
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(2);
    if (j->intake)
        rd_kafka_header_add(hdrs, OB_MSG_HDR_INTAKE, -1, j->intake, -1);
    const char *key = j->plan.account_id[0] ? j->plan.account_id : j->key;
    size_t klen = j->plan.account_id[0] ? strlen(j->plan.account_id) : j->key_len;
    ob_err_t e;
    if (j->failed && w->stage->side) {
        /* A side stage's failure is no dead letter: the account's record
         * says why (<name>_error, its history), and the next run of the
         * stage looks again. */
        ob_logkv(OB_LOG_WARN, "worker", "failed", "account",
                 j->plan.account_id[0] ? j->plan.account_id : "(unknown)", "stage", w->stage->name,
                 "error", last_of(j)->code, "reason", last_of(j)->message, NULL);
        w->stats.failed++;
        rd_kafka_headers_destroy(hdrs);
        finish_without_output(j);
        return;
    }
    if (j->failed) {
        char host[128];
        snprintf(host, sizeof(host), "%s", w->host);
        char now[OB_TIME_LEN];
        now_iso(now);
        char first[OB_TIME_LEN] = "";
        if (j->first_failure_wall)
            ob_time_format_ms(j->first_failure_wall, first);
        size_t again_len = 0;
        char *again = j->payload ? NULL : job_reencode(j, &again_len);
        ob_dlq_input_t in = {
            .stage = w->stage->stage,
            .topic = j->topic,
            .partition = j->partition,
            .offset = j->offset,
            .key = j->key,
            .key_len = j->key_len,
            .payload = j->payload ? j->payload : again,
            .payload_len = j->payload ? j->len : again_len,
            .arrived_sha256 = j->payload ? NULL : j->arrived_sha256,
            .arrived_len = j->len,
            .headers = j->headers,
            .nheaders = j->nheaders,
            .account_id = j->plan.account_id[0] ? j->plan.account_id : NULL,
            .request_id = j->plan.request_id[0] ? j->plan.request_id : NULL,
            .cls = last_of(j)->fail_class,
            .code = last_of(j)->code,
            .message = last_of(j)->message,
            .field = last_of(j)->field[0] ? last_of(j)->field : NULL,
            .aws_request_id = last_of(j)->aws_request_id[0] ? last_of(j)->aws_request_id : NULL,
            .http_status = last_of(j)->http_status,
            .attempts = j->stage_attempt > 0 ? j->stage_attempt : 1,
            .first_failure_at = j->first_failure_wall ? first : now,
            .last_failure_at = now,
            .worker_name = w->name,
            .worker_version = OB_VERSION,
            .worker_host = host,
            .replayable = -1,
        };
        char *dlq = NULL;
        size_t dlq_len = 0;
        e = ob_dlq_build(&in, &dlq, &dlq_len, err, sizeof(err));
        free(again);
        if (e == OB_OK) {
            rd_kafka_header_add(hdrs, OB_MSG_HDR_SCHEMA, -1, OB_SCHEMA_DLQ, -1);
            e = ob_kproducer_send(w->producer, w->topic_dlq, RD_KAFKA_PARTITION_UA, key, klen, dlq,
                                  dlq_len, hdrs, j, err, sizeof(err));
            hdrs = NULL;
        }
        free(dlq);
    } else if (last_of(j)->emit) {
        const ob_step_t *last = last_of(j);
        j->deliveries = 1;
        if (last->also) {
            /* The second message first: each carries the job, and the job
             * goes on once both are acknowledged (or, in a transaction, with
             * the commit that holds both). */
            char topic2[256];
            snprintf(topic2, sizeof(topic2), "%s%s", w->cfg->topic_prefix, last->also_topic);
            rd_kafka_headers_t *h2 = rd_kafka_headers_copy(hdrs);
            if (last->also_schema)
                rd_kafka_header_add(h2, OB_MSG_HDR_SCHEMA, -1, last->also_schema, -1);
            e = ob_kproducer_send(w->producer, topic2, RD_KAFKA_PARTITION_UA, key, klen, last->also,
                                  strlen(last->also), h2, j, err, sizeof(err));
            if (e != OB_OK) {
                rd_kafka_headers_destroy(hdrs);
                produce_failed_later(j, err);
                return;
            }
            j->deliveries = 2;
        }
        char topic[256];
        snprintf(topic, sizeof(topic), "%s%s", w->cfg->topic_prefix, last->emit_topic);
        if (last->emit_schema)
            rd_kafka_header_add(hdrs, OB_MSG_HDR_SCHEMA, -1, last->emit_schema, -1);
        if (w->stage->pass_session)
            session_pass(j, hdrs);
        e = ob_kproducer_send(w->producer, topic, RD_KAFKA_PARTITION_UA, key, klen, last->emit,
                              strlen(last->emit), hdrs, j, err, sizeof(err));
        hdrs = NULL;
    } else {
        rd_kafka_headers_destroy(hdrs);
        finish_without_output(j);
        return;
    }
    if (hdrs)
        rd_kafka_headers_destroy(hdrs);
    if (e != OB_OK) {
        produce_failed_later(j, err);
        return;
    }
    if (w->txn) {
        /* In the open transaction with its input offset: both are committed
         * together, or neither (the transaction's outcome, on_txn). */
        j->phase = PH_COMMITTING;
        j->txn_next = w->txn_open;
        w->txn_open = j;
        w->ntxn_open++;
        offset_done(j);
        commit_kick(w);
    }
}

/* An outcome is out: count it. */
static void count_outcome(ob_worker_t *w, job_t *j)
{
    w->stats.produced++;
    if (j->failed) {
        w->stats.failed++;
        w->stats.dead_letters++;
        w->stats.dead_letters_by_class[last_of(j)->fail_class]++;
    } else {
        w->stats.done++;
    }
}

static void on_delivery(ob_kproducer_t *p, ob_err_t err, const char *errmsg,
                        const rd_kafka_message_t *msg, void *opaque, void *arg)
{
    job_t *j = opaque;
    ob_worker_t *w = arg;
    if (!j)
        return;
    if (w->txn) {
        /* The transaction's commit decides: a failed delivery makes it abort,
         * and every message of it is sent again. */
        if (err != OB_OK) {
            w->stats.kafka_errors++;
            ob_logkv(OB_LOG_WARN, "worker", "delivery failed: the transaction will be aborted",
                     "error", errmsg ? errmsg : "delivery failed", NULL);
        }
        return;
    }
    if (j->deliveries > 1) {
        /* The first of two: the job waits for the other (a failure of
         * either has both sent again, at least once). */
        j->deliveries--;
        if (err != OB_OK)
            j->delivery_failed = 1;
        return;
    }
    if (err != OB_OK || j->delivery_failed) {
        j->delivery_failed = 0;
        produce_failed_later(j, errmsg ? errmsg : "delivery failed");
        return;
    }
    count_outcome(w, j);
    /* The hand-off is on its topic: record it, and let the next stage have
     * the account at once. The state write and the lock release go out on
     * one Redis connection in that order, so whoever takes the lock next
     * (the next stage, or this stage's new owner when the partition moved
     * meanwhile: a detached job) finds the outcome already written and does
     * not redo it; and the next stage does not wait a round trip for it. */
    write_state(j);
}

/* ---- transactions (output.transactions) ---- */

static int same_partition(const job_t *j, const rd_kafka_topic_partition_list_t *parts);

/* Start committing the open transaction with the offsets finished so far. */
static void txn_commit_start(ob_worker_t *w)
{
    if (!w->producer || ob_kproducer_txn_busy(w->producer) || (!w->txn_open && !w->npend))
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)w->npend);
    unsigned char map[DONE_MAP_MAX];
    for (size_t i = 0; i < w->npend; i++) {
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_add(l, w->pend[i].topic, w->pend[i].partition);
        tp->offset = w->pend[i].offset;
        /* What finished above it goes into the same transaction as its
         * outputs, so that a new owner skips exactly those messages. */
        size_t n = ob_offsets_done_map(w->offsets, w->pend[i].topic, w->pend[i].partition,
                                       tp->offset, map, sizeof(map));
        char *b64 = n ? ob_base64_encode(map, n) : NULL;
        size_t blen = b64 ? strlen(b64) : 0;
        char *meta = b64 ? ob_malloc(sizeof(DONE_MAP_PREFIX) + blen) : NULL;
        if (meta) {
            memcpy(meta, DONE_MAP_PREFIX, sizeof(DONE_MAP_PREFIX) - 1);
            memcpy(meta + sizeof(DONE_MAP_PREFIX) - 1, b64, blen + 1);
            tp->metadata = meta; /* the list frees it */
            tp->metadata_size = sizeof(DONE_MAP_PREFIX) - 1 + blen;
        }
        free(b64);
    }
    ob_err_t e = ob_kproducer_txn_commit(w->producer, l, ob_kconsumer_handle(w->consumer));
    rd_kafka_topic_partition_list_destroy(l);
    if (e != OB_OK || !ob_kproducer_txn_busy(w->producer))
        return;
    w->commit_at = ob_loop_update_time(w->loop);
    w->txn_committing = w->txn_open;
    w->txn_open = NULL;
    w->ntxn_open = 0;
    free(w->snap);
    w->snap = NULL;
    w->nsnap = 0;
    if (w->npend && (w->snap = ob_malloc(w->npend * sizeof(*w->snap)))) {
        memcpy(w->snap, w->pend, w->npend * sizeof(*w->snap));
        w->nsnap = w->npend;
    }
}

/* How often the partitions' ends are asked for (see ob_kconsumer_refresh_ends). */
#define ENDS_REFRESH_MS 2000

static void commit_tick(ob_timer_t *t, void *arg)
{
    ob_worker_t *w = arg;
    uint64_t now = ob_loop_update_time(w->loop);
    if (w->consumer && now - w->ends_at >= ENDS_REFRESH_MS) {
        w->ends_at = now;
        ob_kconsumer_refresh_ends(w->consumer);
    }
    commit_idle_positions(w);
    /* A busy worker's output, and offsets finished without output (skipped,
     * handed back), wait for this tick. */
    if (w->txn && now - w->commit_at >= (uint64_t)w->cfg->output_commit_interval_ms)
        txn_commit_start(w);
    ob_timer_start(t, (uint64_t)w->cfg->output_commit_interval_ms);
}

static void commit_soon_cb(ob_timer_t *t, void *arg)
{
    (void)t;
    txn_commit_start(arg);
}

/* There is output in the open transaction: commit it without waiting for
 * the tick when nothing else in flight could join it (see commit_soon). A
 * commit under way defers to its outcome, which asks again (on_txn). */
static void commit_kick(ob_worker_t *w)
{
    if (!w->txn || !w->commit_soon || !w->txn_open || ob_timer_active(w->commit_soon) ||
        ob_kproducer_txn_busy(w->producer) || w->inflight > w->ntxn_open)
        return;
    uint64_t now = ob_loop_update_time(w->loop);
    uint64_t next = w->commit_at + (uint64_t)w->cfg->output_commit_interval_ms;
    ob_timer_start(w->commit_soon, next > now ? next - now : 0);
}

/* The outcome of the transaction being committed. */
static void on_txn(ob_kproducer_t *p, const ob_ktxn_result_t *res, void *arg)
{
    ob_worker_t *w = arg;
    job_t *list = w->txn_committing;
    w->txn_committing = NULL;
    if (res->err == OB_OK) {
        w->stats.txn_commits++;
        /* Offsets committed: what has not moved on since is no longer pending. */
        for (size_t i = 0; i < w->nsnap; i++)
            for (size_t k = 0; k < w->npend; k++)
                if (w->pend[k].topic == w->snap[i].topic &&
                    w->pend[k].partition == w->snap[i].partition &&
                    w->pend[k].ver == w->snap[i].ver) {
                    w->pend[k] = w->pend[--w->npend];
                    break;
                }
        while (list) {
            job_t *j = list;
            list = j->txn_next;
            j->txn_next = NULL;
            count_outcome(w, j);
            /* Recorded before it was produced (record_outcome). */
            job_complete(j);
        }
        commit_kick(w);
        return;
    }
    w->stats.txn_aborts++;
    if (res->fatal) {
        ob_logkv(OB_LOG_ERROR, "worker",
                 "the transactional producer cannot go on: stopping (what is in flight is handed "
                 "back uncommitted)",
                 "error", res->message, NULL);
        w->failed_fatal = 1;
        ob_worker_stop(w);
    }
    /* Nothing of it was committed: send again what is still ours. */
    while (list) {
        job_t *j = list;
        list = j->txn_next;
        j->txn_next = NULL;
        if (res->fatal || j->detached || (w->revoking && same_partition(j, w->revoking))) {
            /* Its offset is marked finished, its output is gone. */
            freeze(w, j->topic, j->partition);
            acct_release(j, 0);
            job_free(j);
        } else {
            job_finish(j);
        }
    }
}

/* ---- running the stage ---- */

static void on_aws(ob_aws_result_t *res, void *arg)
{
    job_t *j = arg;
    j->call = NULL;
    if (res->err != OB_OK && !j->first_failure_wall)
        j->first_failure_wall = ob_time_wall_ms();
    job_run_step(j, res);
}

/* scheme://host[:port] of a URL: error texts never show its path, query or user info. */
static void url_origin(const char *url, char *out, size_t n)
{
    const char *p = strstr(url, "://");
    const char *host = p ? p + 3 : url;
    const char *at = strchr(host, '@');
    const char *end = host + strcspn(host, "/?#");
    if (at && at < end)
        host = at + 1;
    snprintf(out, n, "%.*s%.*s", p ? (int)(p + 3 - url) : 0, url, (int)(end - host), host);
}

/* Rebuild the stage's state from the message, as for a fresh start. */
static void job_reset_stage(job_t *j)
{
    ob_worker_t *w = j->w;
    size_t len = j->len;
    char *again = NULL;
    if (!j->payload) {
        again = job_reencode(j, &len);
        if (!again) {
            /* The state stays as it is: the same message, further along. */
            ob_logf(OB_LOG_ERROR, "worker",
                    "%s[%d]@%lld: cannot encode the message again; its stage continues where "
                    "it was",
                    j->topic, (int)j->partition, (long long)j->offset);
            return;
        }
    }
    if (w->stage->clear)
        w->stage->clear(j->st);
    memset(j->st, 0, w->stage->state_size);
    ob_job_plan_t plan;
    ob_step_t fail;
    memset(&fail, 0, sizeof(fail));
    w->stage->parse(j->st, w->stage_ctx, w->cfg, again ? again : j->payload, len, &plan, &fail);
    ob_step_clear(&fail);
    free(again);
}

/* A retryable failure with attempts left: record it, let go of the account,
 * and come back after an exponential, full-jitter wait. The message stays in
 * flight (its offset uncommitted), so a worker killed meanwhile hands it to
 * the next owner, which continues the count from Redis. */
static int stage_retry_max(const ob_worker_t *w, ob_retry_reason_t r);

/* The wait before the next stage attempt: exponential with full jitter, but
 * never earlier than its share of stage.retry.window from the first failure
 * (retry i of n starts at least window * (2^i - 1) / (2^n - 1) after it: soon
 * after a blip, the last one a whole window later), so that the attempts of
 * one request span at least the window and an outage shorter than that
 * cannot use them all up. */
static uint64_t stage_retry_delay(job_t *j, const ob_step_t *s)
{
    ob_worker_t *w = j->w;
    double cap = (double)w->cfg->stage_retry_max_wait_ms;
    long long base = w->cfg->stage_retry_class_wait_ms[s->retry_reason % OB_RR__COUNT];
    double exp = (double)(base > 0 ? base : w->cfg->stage_retry_wait_ms);
    for (int i = 1; i < j->stage_attempt && exp < cap; i++)
        exp *= 2;
    if (exp > cap)
        exp = cap;
    uint64_t delay = (uint64_t)(erand48(w->rng) * exp);
    uint64_t now_ms = ob_loop_update_time(w->loop);
    if (!j->first_failure_ms)
        j->first_failure_ms = now_ms;
    int retries = stage_retry_max(w, s->retry_reason) - 1;
    if (w->cfg->stage_retry_window_ms > 0 && retries > 0) {
        int n = retries < 30 ? retries : 30;
        int i = j->stage_attempt < n ? j->stage_attempt : n;
        double share = (double)((1ULL << i) - 1) / (double)((1ULL << n) - 1);
        uint64_t earliest =
            j->first_failure_ms + (uint64_t)((double)w->cfg->stage_retry_window_ms * share);
        if (earliest > now_ms + delay)
            delay = earliest - now_ms;
    }
    return delay;
}

static void schedule_stage_retry(job_t *j, ob_step_t *s)
{
    ob_worker_t *w = j->w;
    uint64_t delay = stage_retry_delay(j, s);
    char attempts[16], next[OB_TIME_LEN], now[OB_TIME_LEN];
    snprintf(attempts, sizeof(attempts), "%d", j->stage_attempt);
    now_iso(now);
    ob_time_format_ms((int64_t)(ob_wall_ms() + delay), next);
    const char *fields[] = {OB_ST_STAGE,
                            w->stage->name,
                            OB_ST_STATUS,
                            OB_ST_STATUS_WAITING,
                            OB_ST_REQUEST_ID,
                            j->plan.request_id,
                            OB_ST_STAGE_ATTEMPTS,
                            attempts,
                            OB_ST_NEXT_ATTEMPT_AT,
                            next,
                            OB_ST_UPDATED_AT,
                            now,
                            OB_ST_ERROR_CLASS,
                            ob_dlq_class_name(s->fail_class),
                            "retry_reason",
                            ob_retry_reason_name(s->retry_reason),
                            OB_ST_ERROR_CODE,
                            s->code,
                            OB_ST_ERROR_MESSAGE,
                            s->message,
                            NULL};
    if (!w->stage->side)
        ob_lock_state_write(w->redis, j->plan.account_id, j->fence, fields, NULL, NULL);
    ob_logkv(OB_LOG_INFO, "worker", "stage will be retried", "account", j->plan.account_id, "stage",
             w->stage->name, "attempt", attempts, "next_attempt_at", next, "error", s->code,
             "reason", ob_retry_reason_name(s->retry_reason), NULL);
    w->stats.stage_retries++;
    w->stats.retries_by_reason[s->retry_reason % OB_RR__COUNT]++;
    ob_step_clear(s);
    ob_lock_release(j->lock);
    j->lock = NULL;
    if (j->creds) {
        ob_credsrc_unref(j->creds);
        j->creds = NULL;
    }
    job_reset_stage(j);
    j->phase = PH_LOCKING;
    j->retry_wait = 1;
    slot_give(j);
    ob_timer_start(&j->timer, delay);
}

static void on_http_done(ob_http_resp_t *resp, void *arg)
{
    job_t *j = arg;
    ob_worker_t *w = j->w;
    j->xfer = NULL;
    ob_aws_result_t res;
    memset(&res, 0, sizeof(res));
    res.status = resp->status;
    res.attempts = j->http_attempts;
    res.headers = &resp->headers;
    res.op = "HTTP";
    int ok = resp->err == OB_OK && resp->status >= 200 && resp->status < 300;
    if (ok) {
        res.err = OB_OK;
    } else {
        res.err = resp->err != OB_OK ? resp->err : OB_ERR_HTTP;
        res.retry_class = resp->err != OB_OK ? ob_retry_classify(OB_SVC_STS, resp->err, 0, NULL)
                          : resp->status == 429 || resp->status >= 500 ? OB_RETRY_TRANSIENT
                                                                       : OB_RETRY_NO;
        char origin[256];
        url_origin(j->http->http_url, origin, sizeof(origin));
        if (resp->err != OB_OK)
            snprintf(res.errmsg, sizeof(res.errmsg), "%s %s: %s", j->http->http_method, origin,
                     ob_err2str(resp->err));
        else
            snprintf(res.errmsg, sizeof(res.errmsg), "%s %s: HTTP %ld", j->http->http_method,
                     origin, resp->status);
        int max = (int)w->cfg->aws_max_attempts;
        if (res.retry_class != OB_RETRY_NO && j->http_attempts < max) {
            double cap = (double)w->cfg->aws_max_backoff_ms / 1000.0;
            double d = ob_retry_delay_s(j->http_attempts, erand48(w->rng), cap);
            ob_timer_start(&j->timer, (uint64_t)(d * 1000.0));
            return;
        }
        res.verdict =
            res.retry_class == OB_RETRY_NO ? OB_RETRY_GIVE_UP_FINAL : OB_RETRY_GIVE_UP_ATTEMPTS;
    }
    ob_http_resp_take_body(resp, &res.body);
    step_drop(&j->http);
    job_run_step(j, &res);
    ob_buf_free(&res.body);
}

static void http_attempt(job_t *j)
{
    ob_worker_t *w = j->w;
    ob_http_req_t req = {.method = j->http->http_method,
                         .url = j->http->http_url,
                         .headers = &j->http->http_headers,
                         .body = j->http->http_body.data,
                         .body_len = j->http->http_body.len,
                         .priority = j->seq};
    char err[512];
    j->http_attempts++;
    j->attempts++;
    j->xfer = ob_http_send(w->http, &req, on_http_done, j, err, sizeof(err));
    if (!j->xfer) {
        step_drop(&j->http);
        ob_step_fail(job_last(j), OB_DLQ_PERMANENT, "request_error", "%s", err);
        j->failed = 1;
        job_finish(j);
    }
}

/* Stage attempts allowed for a retry reason. */
static int stage_retry_max(const ob_worker_t *w, ob_retry_reason_t r)
{
    long long m = w->cfg->stage_retry_class_max[r % OB_RR__COUNT];
    return (int)(m > 0 ? m : w->cfg->stage_retry_max);
}

/* The stage's work in progress, in the account's state (fenced; nothing
 * waits for it): a new owner of the message continues from it. */
static void record_progress(job_t *j, const char *progress)
{
    ob_worker_t *w = j->w;
    if (!j->fence || !j->plan.account_id[0] || w->stage->side)
        return;
    const char *fields[] = {OB_ST_STAGE,          w->stage->name,   OB_ST_STATUS,
                            OB_ST_STATUS_RUNNING, OB_ST_REQUEST_ID, j->plan.request_id,
                            OB_ST_PROGRESS,       progress,         NULL};
    ob_lock_state_write(w->redis, j->plan.account_id, j->fence, fields, NULL, NULL);
}

/* A job given up in the middle of its stage (its partition revoked, the
 * worker stopping): what it achieved is recorded for the next holder, before
 * its lock is released (in that order, on one connection). */
static void job_hand_back(job_t *j)
{
    ob_worker_t *w = j->w;
    if (j->phase == PH_RUNNING && j->lock && j->st && w->stage->snapshot) {
        const char *progress = w->stage->snapshot(j->st);
        if (progress && progress[0])
            record_progress(j, progress);
    }
    acct_release(j, 0);
    job_free(j);
}

/* A job whose partition is being given up (revoked, or the worker
 * stopping): one whose outcome is on its way (produced, being committed or
 * recorded) finishes through its pending callback, without touching offsets;
 * one whose output is in no transaction yet is dropped (after an abort it
 * was marked finished: its partition is frozen); any other is handed back
 * with its progress. */
static void job_let_go(job_t *j)
{
    ob_worker_t *w = j->w;
    if (w->txn && j->phase == PH_EMITTING) {
        if (j->offset_done)
            freeze(w, j->topic, j->partition);
        acct_release(j, 0);
        job_free(j);
    } else if (j->phase == PH_RECORDING && !j->state_inflight) {
        acct_release(j, 0); /* waiting to try its record again: nothing produced */
        job_free(j);
    } else if (j->phase == PH_EMITTING || j->phase == PH_FINISHING || j->phase == PH_RECORDING ||
               j->phase == PH_COMMITTING) {
        j->detached = 1;
    } else {
        job_hand_back(j);
    }
}

static void job_execute(job_t *j, ob_step_t *s)
{
    ob_worker_t *w = j->w;
    if (s->progress && s->kind != OB_STEP_DONE && s->kind != OB_STEP_FAIL)
        record_progress(j, s->progress);
    switch (s->kind) {
    case OB_STEP_HTTP:
        step_drop(&j->http);
        j->http = step_new();
        *j->http = *s;
        memset(s, 0, sizeof(*s));
        j->http_attempts = 0;
        http_attempt(j);
        return;
    case OB_STEP_CALL: {
        ob_aws_target_t t = {.region = s->region[0] ? s->region : j->plan.region,
                             .creds = s->as_fleet ? w->fleet : j->creds,
                             .s3_bucket = s->s3_bucket[0] ? s->s3_bucket : NULL,
                             .priority = j->seq};
        char err[512];
        j->attempts++;
        j->call = ob_aws_send(w->aws, &s->req, &t, on_aws, j, err, sizeof(err));
        ob_step_clear(s);
        if (!j->call) {
            ob_step_fail(job_last(j), OB_DLQ_PERMANENT, "request_error", "%s", err);
            j->failed = 1;
            job_finish(j);
        }
        return;
    }
    case OB_STEP_WAIT:
        slot_give(j);
        ob_timer_start(&j->timer, s->wait_ms);
        ob_step_clear(s);
        return;
    case OB_STEP_FAIL:
        /* The ExternalId the request gave for its role is a secret: a reply
         * that quoted it, however spelled, never reaches a dead letter, the
         * account's state or a log line. */
        ob_redact(s->message, sizeof(s->message), j->plan.external_id, "[ExternalId]");
        ob_redact(s->field, sizeof(s->field), j->plan.external_id, "[ExternalId]");
        if (s->fail_class == OB_DLQ_RETRIES_EXHAUSTED && j->lock &&
            j->stage_attempt < stage_retry_max(w, s->retry_reason)) {
            schedule_stage_retry(j, s);
            return;
        }
        __attribute__((fallthrough));
    case OB_STEP_DONE:
        step_drop(&j->last);
        j->last = step_new();
        *j->last = *s;
        memset(s, 0, sizeof(*s));
        j->failed = j->last->kind == OB_STEP_FAIL;
        if (j->failed && !j->first_failure_wall)
            j->first_failure_wall = ob_time_wall_ms();
        job_finish(j);
        return;
    }
    ob_step_fail(job_last(j), OB_DLQ_PERMANENT, "stage_error", "stage %s returned no step",
                 w->stage->name);
    j->failed = 1;
    job_finish(j);
}

static void job_run_step(job_t *j, const ob_aws_result_t *res)
{
    ob_step_t s;
    memset(&s, 0, sizeof(s));
    j->w->stage->step(j->st, res, &s);
    job_execute(j, &s);
}

static int stage_rank(const char *name)
{
    static const char *const order[] = {"bucket", "cur", "iam", "connect"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, order[i]))
            return i;
    return -1;
}

/* Whether the account's state (read when the lock was taken) shows that this
 * request already went through this stage: a later stage has it, or this
 * stage finished it (done, connected, or dead-lettered). A replay resets the
 * status to "replayed", so a replayed message always runs.
 *
 * With output transactions, an outcome is recorded before its transaction
 * commits, and a committed message is not delivered again (its offset, or
 * the finished-offsets map beside it, says so): this very message recorded
 * as finished here means its transaction was aborted, so it is redone.
 * Another message of the same request (sent twice) is still skipped. */
static int already_done(const ob_worker_t *w, const ob_lock_t *l, const job_t *j)
{
    if (w->stage->side)
        return 0; /* a look, not a change: done again */
    const char *rid, *stage;
    int attempts;
    ob_lock_prior(l, &rid, &stage, &attempts);
    const char *status = ob_lock_prior_status(l);
    if (!j->plan.request_id[0] || strcmp(rid, j->plan.request_id) != 0)
        return 0;
    int have = stage_rank(stage), ours = stage_rank(w->stage->name);
    if (have < 0 || ours < 0)
        return 0;
    if (have > ours)
        return !!strcmp(status, OB_ST_STATUS_REPLAYED);
    if (have != ours ||
        (strcmp(status, OB_ST_STATUS_DONE) != 0 && strcmp(status, OB_ST_STATUS_CONNECTED) != 0 &&
         strcmp(status, OB_ST_STATUS_DISCONNECTED) != 0 &&
         strcmp(status, OB_ST_STATUS_FAILED) != 0))
        return 0;
    if (w->txn) {
        char input[320];
        snprintf(input, sizeof(input), "%s:%d:%lld", j->topic, (int)j->partition,
                 (long long)j->offset);
        return strcmp(ob_lock_prior_input(l), input) != 0;
    }
    return 1;
}

#define SUPERSEDED_KEPT 20 /* request ids the record lists as superseded */

/* Fields of a write that replaces the record at intake: this request's
 * first fields (NULL-terminated, into `f`), and the bucket and report of
 * the record it replaces folded into the account's lists (`lists` holds
 * the strings; free them after the write). */
static void takeover_fields(job_t *j, const ob_lock_t *l, const char **f, char now[OB_TIME_LEN],
                            char *lists[3])
{
    size_t n = 0;
    lists[0] =
        ob_list_with(ob_lock_prior_get(l, OB_ST_BUCKETS), ob_lock_prior_get(l, OB_ST_BUCKET), 100);
    lists[1] =
        ob_list_with(ob_lock_prior_get(l, OB_ST_REPORTS), ob_lock_prior_get(l, OB_ST_REPORT), 20);
    lists[2] =
        ob_list_with(ob_lock_prior_get(l, OB_ST_STACKS), ob_lock_prior_get(l, OB_ST_STACK_ID), 20);
    if (lists[0] && lists[0][0]) {
        f[n++] = OB_ST_BUCKETS;
        f[n++] = lists[0];
    }
    if (lists[1] && lists[1][0]) {
        f[n++] = OB_ST_REPORTS;
        f[n++] = lists[1];
    }
    if (lists[2] && lists[2][0]) {
        f[n++] = OB_ST_STACKS;
        f[n++] = lists[2];
    }
    now_iso(now);
    f[n++] = OB_ST_REQUEST_ID;
    f[n++] = j->plan.request_id;
    f[n++] = OB_ST_STAGE;
    f[n++] = j->w->stage->name;
    f[n++] = OB_ST_STATUS;
    f[n++] = OB_ST_STATUS_RUNNING;
    f[n++] = OB_ST_UPDATED_AT;
    f[n++] = now;
    if (j->intake) {
        f[n++] = OB_ST_INTAKE;
        f[n++] = j->intake;
    }
    if (j->plan.desired[0]) {
        f[n++] = OB_ST_DESIRED;
        f[n++] = j->plan.desired;
    }
    if (j->superseded) {
        f[n++] = OB_ST_SUPERSEDED;
        f[n++] = j->superseded;
    }
    f[n] = NULL;
}

/* Why a request at intake has nothing to do (NULL: it has): the account
 * is connected as it asks (a repair always has work), already offboarded,
 * or, for an offboarding, holds nothing the fleet made and no onboarding
 * under way. */
static const char *unchanged_reason(const job_t *j, const ob_lock_t *l, const char *status)
{
    if (!j->plan.desired[0])
        return NULL;
    int same = !strcmp(ob_lock_prior_get(l, OB_ST_CONNECTED_DESIRED), j->plan.desired);
    if (!j->plan.offboard)
        return !j->plan.repair && same && !strcmp(status, OB_ST_STATUS_CONNECTED)
                   ? "the account is connected as the request asks"
                   : NULL;
    if (same && !strcmp(status, OB_ST_STATUS_DISCONNECTED))
        return "already offboarded: nothing of the fleet's is left in the account";
    static const char *const made[] = {
        OB_ST_CONNECTED_REQUEST, OB_ST_STACK_ID, OB_ST_STACKS, OB_ST_REPORT, OB_ST_REPORTS, NULL};
    for (int i = 0; made[i]; i++)
        if (ob_lock_prior_get(l, made[i])[0])
            return NULL;
    if (!strcmp(status, OB_ST_STATUS_RUNNING) || !strcmp(status, OB_ST_STATUS_WAITING))
        return NULL; /* an onboarding under way may be making something now */
    /* No record at all may be Redis having lost it: the stages look in the
     * account (by name) and say "never onboarded" only if they find nothing. */
    if (!ob_lock_prior_get(l, OB_ST_REQUEST_ID)[0])
        return NULL;
    return "never onboarded: the fleet made no report or stack in the account to remove";
}

/*
 * The account's side of a message, before any work. Requests for an account
 * are applied in the order they entered the fleet (OB_MSG_HDR_INTAKE):
 *   - a message of a request older than the account's current one stops
 *     here, superseded: its work would undo the newer request's (nothing is
 *     produced; the record is the newer request's and lists it);
 *   - at intake, a request asking for exactly what the account already has
 *     (its desired state is the connection's) is unchanged: recorded, and
 *     nothing is done in AWS or produced;
 *   - any other request at intake becomes the account's current request:
 *     its record replaces the previous one (the account's own fields kept),
 *     listing the request it replaced if that one was still under way.
 * 1: the job is over (superseded) or on its way out (unchanged).
 */
static int account_turn(job_t *j, const ob_lock_t *l)
{
    ob_worker_t *w = j->w;
    const char *cur = ob_lock_prior_get(l, OB_ST_INTAKE);
    const char *cur_rid = ob_lock_prior_get(l, OB_ST_REQUEST_ID);
    int same = !strcmp(cur_rid, j->plan.request_id);
    if (j->intake && cur[0] && !same && ob_intake_cmp(j->intake, cur) < 0) {
        w->stats.superseded++;
        j->skipped = 1;
        ob_logkv(OB_LOG_INFO, "worker", "superseded: a newer request for the account replaced it",
                 "account", j->plan.account_id, "request_id", j->plan.request_id, "newer", cur_rid,
                 "stage", w->stage->name, NULL);
        job_complete(j);
        return 1;
    }
    if (!w->intake)
        return 0;
    job_t *newer = j->acct ? j->acct->qhead : NULL;
    if (newer) {
        /* A newer request for the account waits right behind this one:
         * it decides what the account becomes, so this one makes nothing
         * in AWS that the newer one would replace. The newer one's record
         * names it. */
        char *more =
            ob_list_with(j->superseded ? j->superseded : "", j->plan.request_id, SUPERSEDED_KEPT);
        if (more) {
            free(newer->superseded);
            newer->superseded = more;
        }
        w->stats.superseded++;
        j->skipped = 1;
        ob_logkv(OB_LOG_INFO, "worker", "superseded: a newer request for the account is queued",
                 "account", j->plan.account_id, "request_id", j->plan.request_id, "newer",
                 newer->plan.request_id, "stage", w->stage->name, NULL);
        job_complete(j);
        return 1;
    }
    if (same)
        return 0;
    /* The requests the record names as superseded: those it named, the one
     * under way that this one replaces, and those this one overtook in the
     * queue. */
    const char *status = ob_lock_prior_status(l);
    char *list = ob_strdup(ob_lock_prior_get(l, OB_ST_SUPERSEDED));
    if (list && cur_rid[0] && strcmp(status, OB_ST_STATUS_CONNECTED) != 0 &&
        strcmp(status, OB_ST_STATUS_DISCONNECTED) != 0 &&
        strcmp(status, OB_ST_STATUS_FAILED) != 0) {
        char *more = ob_list_with(list, cur_rid, SUPERSEDED_KEPT);
        free(list);
        list = more;
    }
    for (char *save = NULL, *name = j->superseded ? strtok_r(j->superseded, ",", &save) : NULL;
         name && list; name = strtok_r(NULL, ",", &save)) {
        char *more = ob_list_with(list, name, SUPERSEDED_KEPT);
        free(list);
        list = more;
    }
    free(j->superseded);
    j->superseded = list && list[0] ? list : NULL;
    if (!j->superseded)
        free(list);
    const char *why = unchanged_reason(j, l, status);
    if (why) {
        w->stats.unchanged++;
        j->unchanged = 1;
        j->unchanged_why = why;
        ob_logkv(OB_LOG_INFO, "worker", "unchanged: the account already is as the request asks",
                 "account", j->plan.account_id, "request_id", j->plan.request_id, "why", why,
                 "connected_by", ob_lock_prior_get(l, OB_ST_CONNECTED_REQUEST), NULL);
        ob_step_t *done = job_last(j);
        ob_step_clear(done);
        done->kind = OB_STEP_DONE;
        job_finish(j);
        return 1;
    }
    char now[OB_TIME_LEN], *lists[3];
    const char *f[24];
    takeover_fields(j, l, f, now, lists);
    char detail[640] = "";
    if (j->plan.repair)
        snprintf(detail, sizeof(detail), "mode %s, repair: ", j->plan.mode ? j->plan.mode : "?");
    else
        snprintf(detail, sizeof(detail), "mode %s", j->plan.mode ? j->plan.mode : "?");
    if (j->plan.repair) {
        size_t used = strlen(detail);
        repair_text(j->plan.repair, detail + used, sizeof(detail) - used);
    }
    char *h = ob_state_history_entry(now, OB_HIST_REQUESTED, j->plan.request_id, w->stage->name,
                                     NULL, detail);
    ob_lock_state_replace_h(w->redis, j->plan.account_id, j->fence, OB_STATE_ACCOUNT_FIELDS, f, h,
                            NULL, NULL);
    free(h);
    for (int i = 0; i < 3; i++)
        free(lists[i]);
    return 0;
}

static const char *prior_field(const void *ctx, const char *field)
{
    return ob_lock_prior_get(ctx, field);
}

static void on_lock(ob_lock_t *l, ob_lock_event_t ev, uint64_t fence, long retry_ms, ob_err_t err,
                    void *arg)
{
    job_t *j = arg;
    ob_worker_t *w = j->w;
    switch (ev) {
    case OB_LOCK_ACQUIRED: {
        j->fence = fence;
        j->phase = PH_RUNNING;
        if (!j->t_start)
            j->t_start = ob_loop_update_time(w->loop);
        if (already_done(w, l, j)) {
            /* A redelivered message (its worker died or lost the partition
             * after finishing it, before the offset was committed): the
             * state, written only after the broker acknowledged the hand-off
             * or the dead letter, says it is done. Doing it again would only
             * make duplicates. */
            w->stats.skipped_done++;
            j->skipped = 1;
            ob_logkv(OB_LOG_INFO, "worker", "already done: redelivered message skipped", "account",
                     j->plan.account_id, "stage", w->stage->name, NULL);
            job_complete(j);
            return;
        }
        if (account_turn(j, l))
            return;
        if (j->stage_attempt == 0) {
            /* A redelivered message continues the count its previous owner kept. */
            const char *rid, *stage;
            int prior;
            ob_lock_prior(l, &rid, &stage, &prior);
            if (!strcmp(rid, j->plan.request_id) && !strcmp(stage, w->stage->name) && prior > 0)
                j->stage_attempt = prior;
        }
        j->stage_attempt++;
        if (j->stage_attempt > 1 && !w->stage->side) {
            char n[16];
            snprintf(n, sizeof(n), "%d", j->stage_attempt);
            const char *fields[] = {OB_ST_STAGE,
                                    w->stage->name,
                                    OB_ST_STATUS,
                                    OB_ST_STATUS_RUNNING,
                                    OB_ST_REQUEST_ID,
                                    j->plan.request_id,
                                    OB_ST_STAGE_ATTEMPTS,
                                    n,
                                    NULL};
            ob_lock_state_write(w->redis, j->plan.account_id, fence, fields, NULL, NULL);
        }
        if (w->stage->resume) {
            /* A message another holder was working on: continue its work. */
            const char *rid, *stage;
            int prior;
            ob_lock_prior(l, &rid, &stage, &prior);
            const char *progress = ob_lock_prior_progress(l);
            if (progress[0] && !strcmp(rid, j->plan.request_id) && !strcmp(stage, w->stage->name)) {
                w->stats.resumed++;
                w->stage->resume(j->st, progress);
            }
        }
        if (w->stage->prior)
            w->stage->prior(j->st, prior_field, l);
        ob_lock_prior_drop(l); /* read: the stage keeps what it needs */
        j->creds = ob_credsrc_ref(ob_assume_cache_get(
            w->assume, j->plan.role_arn, j->plan.external_id[0] ? j->plan.external_id : NULL));
        if (j->creds && j->session)
            session_take(j);
        if (!j->creds) {
            ob_step_fail(job_last(j), OB_DLQ_PERMANENT, "out_of_memory",
                         "cannot create credentials");
            j->failed = 1;
            job_finish(j);
            return;
        }
        job_run_step(j, NULL);
        return;
    }
    case OB_LOCK_BUSY:
    case OB_LOCK_ERROR:
        /* Another replica (or a dead one whose lock has not expired yet) has
         * the account, or Redis is away: try again later. */
        ob_lock_release(j->lock);
        j->lock = NULL;
        if (ev == OB_LOCK_BUSY)
            w->stats.redelivered_lock_busy++;
        else
            w->stats.redis_errors++;
        j->lock_attempts++;
        /* Usually the previous stage's worker is a moment away from releasing
         * it: retry soon and back off (50 ms, 100 ms, ... up to 5 s), never
         * later than the holder's lock expires. */
        long delay = 50L << (j->lock_attempts < 7 ? j->lock_attempts - 1 : 6);
        if (ev == OB_LOCK_BUSY && retry_ms > 0 && retry_ms < delay)
            delay = retry_ms;
        if (ev == OB_LOCK_ERROR && delay < 500)
            delay = 500;
        slot_give(j);
        ob_timer_start(&j->timer, (uint64_t)(delay < 5000 ? delay : 5000));
        return;
    case OB_LOCK_LOST:
        /* Someone else may now be working on the account: our results would
         * be fenced out. Start over (stages are idempotent). */
        ob_logkv(OB_LOG_WARN, "worker", "account lock lost; restarting the message", "account",
                 j->plan.account_id, NULL);
        if (j->phase == PH_RUNNING) {
            if (j->call) {
                ob_aws_cancel(j->call);
                j->call = NULL;
            }
            if (j->xfer) {
                ob_http_cancel(j->xfer);
                j->xfer = NULL;
            }
            step_drop(&j->http);
            ob_lock_release(j->lock);
            j->lock = NULL;
            j->phase = PH_LOCKING;
            slot_give(j);
            ob_timer_start(&j->timer, 1000);
            /* The stage state is rebuilt from the message. The attempt was
             * interrupted, not failed: it does not use up one of the stage's
             * attempts (taking the lock again counts it once more). */
            job_reset_stage(j);
            if (j->stage_attempt > 0)
                j->stage_attempt--;
        }
        return;
    }
}

static void job_start_lock(job_t *j)
{
    ob_worker_t *w = j->w;
    j->phase = PH_LOCKING;
    long ttl = w->opts.lock_ttl_ms > 0 ? w->opts.lock_ttl_ms : (long)w->cfg->lock_ttl_ms;
    /* The lock is the partition's: its next owner (after a rebalance, or
     * this replica's death) takes it over without waiting for lock.ttl;
     * Kafka gives a partition to one member at a time, and the fence keeps
     * a previous holder that is still alive from writing. */
    char owner[300];
    snprintf(owner, sizeof(owner), "%.250s:%d", j->topic, (int)j->partition);
    j->lock = ob_lock_acquire_as(w->redis, w->loop, j->plan.account_id, ttl, owner, on_lock, j);
    if (!j->lock) {
        slot_give(j);
        ob_timer_start(&j->timer, 500);
    }
}

/* ---- messages finished by a previous owner ---- */

static void skip_drop(ob_worker_t *w, size_t i)
{
    free(w->skips[i].map);
    w->skips[i] = w->skips[--w->nskips];
}

/* Newly assigned partitions: where the group stands in them (the committed
 * offsets, read once here), and with output transactions what their previous
 * owner finished out of order in its last committed transaction (the
 * committed offset's metadata). */
static void skips_load(ob_worker_t *w, const rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *c = rd_kafka_topic_partition_list_copy(parts);
    rd_kafka_resp_err_t e = rd_kafka_committed(ob_kconsumer_handle(w->consumer), c, 10000);
    if (e) {
        ob_logf(OB_LOG_WARN, "worker",
                "cannot read the committed offsets of new partitions (%s): messages finished "
                "by their previous owner are recognised from the accounts' state only",
                rd_kafka_err2str(e));
    } else {
        /* Where this member starts in them (the backlog metric). */
        ob_kconsumer_note_committed(w->consumer, c);
    }
    for (int i = 0; !e && w->txn && i < c->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &c->elems[i];
        size_t plen = sizeof(DONE_MAP_PREFIX) - 1;
        if (tp->err || tp->offset < 0 || !tp->metadata || tp->metadata_size <= plen ||
            memcmp(tp->metadata, DONE_MAP_PREFIX, plen) != 0)
            continue;
        uint8_t *map = NULL;
        size_t len = 0;
        if (ob_base64_decode((const char *)tp->metadata + plen, tp->metadata_size - plen, &map,
                             &len) != OB_OK ||
            len == 0) {
            free(map);
            continue;
        }
        skip_t *n = ob_realloc(w->skips, (w->nskips + 1) * sizeof(*n));
        if (!n) {
            free(map);
            continue;
        }
        w->skips = n;
        w->skips[w->nskips++] =
            (skip_t){topic_intern(w, tp->topic), tp->partition, tp->offset, map, len};
    }
    rd_kafka_topic_partition_list_destroy(c);
}

/* 1 when the partition's previous owner finished this message and committed
 * its outcome: it is not done again. */
static int finished_before(ob_worker_t *w, const char *topic, int32_t partition, int64_t offset)
{
    for (size_t i = 0; i < w->nskips; i++) {
        skip_t *k = &w->skips[i];
        if (k->topic != topic || k->partition != partition)
            continue;
        if (offset < k->base)
            return 0;
        uint64_t bit = (uint64_t)(offset - k->base);
        if (bit / 8 >= k->len) {
            skip_drop(w, i); /* past what it finished */
            return 0;
        }
        return (k->map[bit / 8] >> (bit % 8)) & 1;
    }
    return 0;
}

/* ---- Kafka ---- */

/* An operator's control message (OB_MSG_HDR_CONTROL): act on it, mark its
 * offset finished, and return 1; 0 for any other message. */
static int control_message(ob_worker_t *w, const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *val = NULL;
    size_t vlen = 0;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(hdrs, OB_MSG_HDR_CONTROL, &val, &vlen) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    const char *topic = topic_intern(w, rd_kafka_topic_name(m->rkt));
    track(w, topic, m->partition, m->offset);
    mark_done(w, topic, m->partition, m->offset);
    char acct[OB_ACCOUNT_ID_LEN] = "";
    if (m->key && m->key_len < sizeof(acct))
        snprintf(acct, sizeof(acct), "%.*s", (int)m->key_len, (const char *)m->key);
    char action[32];
    snprintf(action, sizeof(action), "%.*s", val ? (int)(vlen < 31 ? vlen : 31) : 0,
             val ? (const char *)val : "");
    if (strcmp(action, OB_CONTROL_RETRY_NOW) != 0) {
        ob_logkv(OB_LOG_WARN, "worker", "unknown control message ignored", "action", action,
                 "account", acct, NULL);
        return 1;
    }
    acct_t *a = acct[0] ? acct_get(w, acct, 0) : NULL;
    job_t *j = a ? a->active : NULL;
    if (j && j->phase == PH_LOCKING && !j->lock && ob_timer_active(&j->timer)) {
        /* Waiting for a stage retry (or for the account's lock): go now. */
        ob_timer_start(&j->timer, 0);
        w->stats.retry_now++;
        ob_logkv(OB_LOG_INFO, "worker", "retrying now at the operator's request", "account", acct,
                 "stage", w->stage->name, NULL);
    } else {
        ob_logkv(OB_LOG_INFO, "worker", "retry-now: nothing of this account is waiting here",
                 "account", acct, "stage", w->stage->name, NULL);
    }
    return 1;
}

static void on_rebalance(ob_kconsumer_t *c, int assigned,
                         const rd_kafka_topic_partition_list_t *parts, void *arg);
static void chore_fired(ob_timer_t *t, void *arg);

rd_kafka_t *ob_worker_kafka_consumer(ob_worker_t *w)
{
    return w->consumer ? ob_kconsumer_handle(w->consumer) : NULL;
}

/* The consumer went back on a partition it was not asked to give up: a
 * message at or below one already taken (seen under autoscaling's quick
 * rebalances: a partition given back to its previous owner is fetched from
 * where that owner was, then reset to the committed offset, here none: the
 * log's start). That is the partition taken away and given back at the
 * earlier offset, and it is handled as such, by the code that handles that:
 * what was finished of it is committed as on a revocation, its jobs are
 * handed back, its tracking forgotten, and this message starts the new
 * assignment. Everything redone from there is recognised as finished from the
 * accounts' state (the same as a redelivery to a new owner). */
static void rewound(ob_worker_t *w, const rd_kafka_message_t *m, int64_t last)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    char off[24], was[24];
    snprintf(off, sizeof(off), "%lld", (long long)m->offset);
    snprintf(was, sizeof(was), "%lld", (long long)last);
    ob_logkv(OB_LOG_WARN, "worker",
             "the consumer went back on a partition without a revocation: handled as the "
             "partition given up and given back at the earlier offset",
             "topic", topic, "offset", off, "after", was, NULL);
    w->stats.rewinds++;
    rd_kafka_topic_partition_list_t *p = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(p, topic, m->partition);
    on_rebalance(w->consumer, 0, p, w);
    on_rebalance(w->consumer, 1, p, w);
    /* What is below the committed offset is finished and its output
     * committed with it: not done again (its account's state could not tell:
     * a redelivery above the committed offset must send its output again).
     * The fetch goes forward to it, and what comes before is passed over. */
    rd_kafka_t *rk = ob_kconsumer_handle(w->consumer);
    if (rd_kafka_committed(rk, p, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR && !p->elems[0].err &&
        p->elems[0].offset > m->offset) {
        table_raise(&w->floor, &w->nfloor, &w->cap_floor, topic_intern(w, topic), m->partition,
                    p->elems[0].offset);
        rd_kafka_error_t *e = rd_kafka_seek_partitions(rk, p, 0);
        if (e) {
            ob_logkv(OB_LOG_WARN, "worker", "cannot seek to the committed offset", "topic", topic,
                     "error", rd_kafka_error_string(e), NULL);
            rd_kafka_error_destroy(e);
        }
    }
    rd_kafka_topic_partition_list_destroy(p);
}

/* Below the floor rewound() set: finished and committed, passed over. */
static int below_floor(const ob_worker_t *w, const char *topic, int32_t partition, int64_t offset)
{
    for (size_t i = 0; i < w->nfloor; i++)
        if (w->floor[i].partition == partition && !strcmp(w->floor[i].topic, topic))
            return offset < w->floor[i].offset;
    return 0;
}

static void on_message(ob_kconsumer_t *c, const rd_kafka_message_t *m, void *arg)
{
    ob_worker_t *w = arg;
    int64_t last = ob_offsets_last(w->offsets, rd_kafka_topic_name(m->rkt), m->partition);
    if (m->offset <= last)
        rewound(w, m, last);
    if (w->nfloor && below_floor(w, rd_kafka_topic_name(m->rkt), m->partition, m->offset)) {
        w->stats.skipped_committed++;
        return;
    }
    if (control_message(w, m))
        return;
    if (w->nskips) {
        const char *topic = topic_intern(w, rd_kafka_topic_name(m->rkt));
        if (finished_before(w, topic, m->partition, m->offset)) {
            w->stats.skipped_committed++;
            track(w, topic, m->partition, m->offset);
            mark_done(w, topic, m->partition, m->offset);
            return;
        }
    }
    /* The key lives at the job's end, in the same allocation. */
    job_t *j = ob_calloc(1, sizeof(*j) + (m->key ? m->key_len + 1 : 0));
    j->w = w;
    ob_timer_init(&j->timer, w->loop, timer_fired, j);
    j->seq = ++w->job_seq;
    j->topic = topic_intern(w, rd_kafka_topic_name(m->rkt));
    j->partition = m->partition;
    j->offset = m->offset;
    j->ts_ms = rd_kafka_message_timestamp(m, NULL);
    if (m->key) {
        j->key = j->key_mem;
        memcpy(j->key, m->key, m->key_len);
        j->key[m->key_len] = '\0';
        j->key_len = m->key_len;
    }
    j->payload = ob_malloc(m->len + 1);
    if (m->len)
        memcpy(j->payload, m->payload, m->len);
    j->payload[m->len] = '\0';
    j->len = m->len;
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        size_t n = rd_kafka_header_cnt(hdrs);
        j->headers = ob_calloc(n ? n : 1, sizeof(*j->headers));
        for (size_t i = 0; i < n; i++) {
            const char *name;
            const void *val;
            size_t vlen;
            if (rd_kafka_header_get_all(hdrs, i, &name, &val, &vlen))
                break;
            if (!strcmp(name, OB_SESSION_HEADER)) {
                /* Kept apart: it is opened when the job starts, and never
                 * goes on (a dead letter, a replay) with the message. */
                if (val && vlen && !j->session) {
                    j->session = ob_malloc(vlen);
                    memcpy(j->session, val, vlen);
                    j->session_len = vlen;
                }
                continue;
            }
            j->headers[j->nheaders].name = ob_strdup(name);
            if (val) {
                void *v = ob_malloc(vlen + 1);
                memcpy(v, val, vlen);
                ((char *)v)[vlen] = '\0';
                j->headers[j->nheaders].value = v;
                j->headers[j->nheaders].value_len = vlen;
            }
            j->nheaders++;
        }
    }
    j->plan.account_id = j->plan.request_id = j->plan.role_arn = j->plan.external_id =
        j->plan.region = j->plan.desired = "";
    if (w->intake) {
        /* Where the request enters the fleet: its order among the
         * account's requests, carried by everything that follows from it. */
        char pos[OB_INTAKE_LEN];
        snprintf(pos, sizeof(pos), "%lld:%s:%d:%lld",
                 (long long)(j->ts_ms >= 0 ? j->ts_ms : (int64_t)ob_wall_ms()), j->topic,
                 (int)j->partition, (long long)j->offset);
        j->intake = ob_strdup(pos);
    } else {
        for (size_t i = 0; i < j->nheaders; i++)
            if (!strcmp(j->headers[i].name, OB_MSG_HDR_INTAKE) && j->headers[i].value &&
                j->headers[i].value_len < OB_INTAKE_LEN)
                j->intake = ob_strdup(j->headers[i].value);
    }
    ob_list_push_front(&w->jobs, &j->node);
    w->inflight++;
    w->stats.received++;
    track(w, j->topic, j->partition, j->offset);
    window_check(w);
    if (slot_take(j))
        job_begin(j);
}

/* Whether the message's Kafka key is not its account id (then *fail says
 * so). Every message of an account must carry the account id as its key:
 * that keeps them on one partition, where they are taken in order and one
 * replica at a time; a message under another key (or none) could overtake
 * or race the account's other messages. */
static int key_mismatch(job_t *j, ob_step_t *fail)
{
    const char *acct = j->plan.account_id;
    if (!acct[0] || (j->key && j->key_len == strlen(acct) && !memcmp(j->key, acct, j->key_len)))
        return 0;
    int printable = j->key && j->key_len <= 64;
    for (size_t i = 0; printable && i < j->key_len; i++)
        printable = j->key[i] >= 0x21 && j->key[i] < 0x7f && j->key[i] != '"';
    if (!j->key)
        ob_step_fail(fail, OB_DLQ_INVALID_INPUT, "key_mismatch",
                     "the message has no Kafka key: it must be the account id %s, so that every "
                     "message of the account lands on one partition, in order",
                     acct);
    else if (printable)
        ob_step_fail(fail, OB_DLQ_INVALID_INPUT, "key_mismatch",
                     "the Kafka key \"%.*s\" is not the account id %s: every message of an account "
                     "must have it as its key, so that they land on one partition, in order",
                     (int)j->key_len, j->key, acct);
    else
        ob_step_fail(fail, OB_DLQ_INVALID_INPUT, "key_mismatch",
                     "the Kafka key (%zu bytes, not shown) is not the account id %s: every message "
                     "of an account must have it as its key, so that they land on one partition, "
                     "in order",
                     j->key_len, acct);
    snprintf(fail->field, sizeof(fail->field), "/account_id");
    return 1;
}

/* A job's first turn: read the message, then lock the account (or wait
 * behind the account's active job). The stage state exists from here on. */
static void job_begin(job_t *j)
{
    ob_worker_t *w = j->w;
    j->st = ob_calloc(1, w->stage->state_size ? w->stage->state_size : 1);
    ob_step_t fail;
    memset(&fail, 0, sizeof(fail));
    ob_job_plan_t *plan = ob_calloc(1, sizeof(*plan));
    ob_err_t parsed = w->stage->parse(j->st, w->stage_ctx, w->cfg, j->payload, j->len, plan, &fail);
    plan_keep(j, plan);
    free(plan);
    if (parsed != OB_OK) {
        if (fail.kind != OB_STEP_FAIL)
            ob_step_fail(&fail, OB_DLQ_INVALID_INPUT, "invalid_input", "the message was refused");
        job_execute(j, &fail);
        return;
    }
    if (key_mismatch(j, &fail)) {
        job_execute(j, &fail);
        return;
    }
    if (w->stage->reencode) {
        /* One copy of the message in flight: the parsed one. */
        ob_sha256(j->payload, j->len, j->arrived_sha256);
        free(j->payload);
        j->payload = NULL;
    }
    acct_t *a = acct_get(w, j->plan.account_id, 1);
    j->acct = a;
    if (a && a->active) {
        j->phase = PH_QUEUED;
        if (a->qtail)
            a->qtail->acct_next = j;
        else
            a->qhead = j;
        a->qtail = j;
        slot_give(j); /* acct_release gives it its turn */
        return;
    }
    if (a)
        a->active = j;
    job_start_lock(j);
}

/* Revoked partitions: nothing of them is tracked any more. */
static void partitions_forget(ob_worker_t *w, const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++)
        ob_offsets_forget(w->offsets, parts->elems[i].topic, parts->elems[i].partition);
    table_forget(w->pend, &w->npend, parts);
    table_forget(w->marked, &w->nmarked, parts);
    table_forget(w->frozen, &w->nfrozen, parts);
    table_forget(w->stale, &w->nstale, parts);
    table_forget(w->floor, &w->nfloor, parts);
    for (size_t i = 0; i < w->nskips;) {
        int gone = 0;
        for (int k = 0; k < parts->cnt && !gone; k++)
            gone = parts->elems[k].partition == w->skips[i].partition &&
                   !strcmp(parts->elems[k].topic, w->skips[i].topic);
        if (gone)
            skip_drop(w, i);
        else
            i++;
    }
}

static int same_partition(const job_t *j, const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].partition == j->partition && !strcmp(parts->elems[i].topic, j->topic))
            return 1;
    return 0;
}

/* Partitions are being taken away: what this member finished of them goes
 * out now, in one transaction with their offsets, so that the new owner
 * starts after it (KIP-447's fencing refuses the commit once the group has
 * moved on without us; a lost assignment is aborted instead). */
static void txn_revoke(ob_worker_t *w, const rd_kafka_topic_partition_list_t *parts)
{
    int lost = rd_kafka_assignment_lost(ob_kconsumer_handle(w->consumer));
    w->revoking = parts;
    if (ob_kproducer_txn_wait(w->producer, 15000) == OB_OK) {
        /* The commit under way aborted and lost outputs of the revoked
         * partitions (they are frozen now): the open transaction may hold
         * outputs of others of their jobs, whose offsets can no longer be
         * committed with them. Abort it as for a lost assignment. */
        for (int i = 0; i < parts->cnt && !lost; i++)
            lost = is_frozen(w, parts->elems[i].topic, parts->elems[i].partition);
        if (lost) {
            /* Nothing may be committed for them: abort, and send again only
             * the outputs of partitions still ours. */
            if (ob_kproducer_txn_abort(w->producer) == OB_OK &&
                ob_kproducer_txn_busy(w->producer)) {
                w->txn_committing = w->txn_open;
                w->txn_open = NULL;
                w->ntxn_open = 0;
            }
        } else {
            txn_commit_start(w);
        }
        if (ob_kproducer_txn_wait(w->producer, 15000) != OB_OK)
            ob_logf(OB_LOG_ERROR, "worker",
                    "revocation: the transaction did not end within 15 s (Kafka unreachable?)");
    } else {
        ob_logf(OB_LOG_ERROR, "worker",
                "revocation: the commit under way did not end within 15 s (Kafka unreachable?)");
    }
    w->revoking = NULL;
}

static void on_rebalance(ob_kconsumer_t *c, int assigned,
                         const rd_kafka_topic_partition_list_t *parts, void *arg)
{
    ob_worker_t *w = arg;
    if (assigned) {
        /* librdkafka keeps a partition's pause flag across an unassign and a
         * later assign: one revoked while the window was full comes back
         * paused even if the window has emptied since, and would never be
         * fetched again. Give the new partitions the window's current state. */
        rd_kafka_topic_partition_list_t *copy = rd_kafka_topic_partition_list_copy(parts);
        if (w->paused)
            ob_kconsumer_pause(w->consumer, copy);
        else
            ob_kconsumer_resume(w->consumer, copy);
        rd_kafka_topic_partition_list_destroy(copy);
        rd_kafka_topic_partition_list_t *pos = rd_kafka_topic_partition_list_copy(parts);
        if (rd_kafka_position(ob_kconsumer_handle(w->consumer), pos) == 0)
            for (int i = 0; i < pos->cnt; i++)
                if (!pos->elems[i].err && pos->elems[i].offset >= 0)
                    table_raise(&w->stale, &w->nstale, &w->cap_stale,
                                topic_intern(w, pos->elems[i].topic), pos->elems[i].partition,
                                pos->elems[i].offset);
        rd_kafka_topic_partition_list_destroy(pos);
        skips_load(w, parts);
        return;
    }
    if (w->txn && !w->freeing)
        txn_revoke(w, parts);
    /* Drop the revoked partitions' work; queued jobs of other accounts stay. */
    size_t dropped = 0;
    ob_list_t *pos, *tmp;
    OB_LIST_FOREACH(pos, tmp, &w->jobs)
    {
        job_t *j = JOB_OF(pos);
        if (!j->detached && same_partition(j, parts)) {
            dropped++;
            job_let_go(j);
        }
    }
    /* Accounts whose active job was dropped: start the next queued one. */
    OB_LIST_FOREACH(pos, tmp, &w->acct_list)
    {
        acct_t *a = OB_LIST_ENTRY(pos, acct_t, all);
        if (!a->active && a->qhead) {
            job_t *n = a->qhead;
            a->qhead = n->acct_next;
            if (!a->qhead)
                a->qtail = NULL;
            n->acct_next = NULL;
            a->active = n;
            if (slot_take(n))
                job_start_lock(n);
        }
    }
    partitions_forget(w, parts);
    if (dropped)
        ob_logf(OB_LOG_INFO, "worker", "revoked partitions: %zu messages handed back", dropped);
}

/* ---- metrics and health ---- */

int ob_worker_metrics_port(const ob_worker_t *w)
{
    return w->probes ? ob_probes_port(w->probes) : 0;
}

int ob_worker_ready(ob_worker_t *w, char *why, size_t why_size)
{
    if (w->stopping) {
        snprintf(why, why_size, "shutting down");
        return 0;
    }
    if (!w->redis || !ob_redis_connected(w->redis)) {
        const char *refused = w->redis ? ob_redis_refused(w->redis) : NULL;
        if (refused)
            snprintf(why, why_size, "Redis refuses our commands: %.200s (check redis.password)",
                     refused);
        else
            snprintf(why, why_size, "Redis is not connected");
        return 0;
    }
    if (w->producer && !ob_kproducer_txn_ready(w->producer)) {
        snprintf(why, why_size,
                 "Kafka transactions are not initialised yet (brokers unreachable?)");
        return 0;
    }
    /* Holding no partition is not a reason to be unready: a replica beyond
     * the partition count, or one waiting out a rebalance, is healthy and
     * takes work as soon as it is given some (onboard_partitions_assigned
     * says how much it has). */
    rd_kafka_topic_partition_list_t *a = w->consumer ? ob_kconsumer_assignment(w->consumer) : NULL;
    int n = a ? a->cnt : 0;
    if (a)
        rd_kafka_topic_partition_list_destroy(a);
    snprintf(why, why_size, "ready: %d partition%s of %s%s", n, n == 1 ? "" : "s", w->topic_in,
             n ? "" : " (a rebalance, or more replicas than partitions)");
    return 1;
}

/* A partition's figures: its lag (messages from the oldest unfinished one, or
 * from the consumer's position when none is in flight, to the partition's
 * end), the age of that oldest message (the time lag of the committed
 * position), and its backlog: the messages no job has started on (not
 * fetched yet, or fetched and waiting for a place or behind their account's
 * job), what more replicas would take on; a stage's accounts in progress are
 * not backlog. -1 when unknown. */
static void partition_figures(ob_worker_t *w, const char *topic, int32_t partition, int64_t *lag,
                              double *lag_s, int64_t *backlog)
{
    *lag = *backlog = -1;
    *lag_s = 0;
    int64_t end = ob_kconsumer_end(w->consumer, topic, partition);
    if (end < 0)
        return;
    const job_t *oldest = NULL;
    int64_t waiting = 0;
    const ob_list_t *pos;
    for (pos = w->jobs.next; pos != &w->jobs; pos = pos->next) {
        const job_t *j = JOB_OF(pos);
        if (j->detached || j->partition != partition || strcmp(j->topic, topic) != 0)
            continue;
        if (!oldest || j->offset < oldest->offset)
            oldest = j;
        waiting += j->phase == PH_NEW || j->phase == PH_QUEUED;
    }
    int64_t next = ob_kconsumer_start(w->consumer, topic, partition);
    if (next >= 0)
        *backlog = (end > next ? end - next : 0) + waiting;
    int64_t from = oldest ? oldest->offset : next;
    if (oldest && oldest->ts_ms > 0) {
        int64_t age = (int64_t)ob_wall_ms() - oldest->ts_ms;
        *lag_s = age > 0 ? (double)age / 1000.0 : 0;
    }
    if (from >= 0)
        *lag = end > from ? end - from : 0;
}

/* One sample of a counter family per result: {stage, result}. */
static void sample_by_result(ob_metrics_t *m, const char *family, const char *stage,
                             const char *const *results, const uint64_t *counts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *l[] = {"stage", stage, "result", results[i], NULL};
        ob_metrics_sample(m, family, l, (double)counts[i]);
    }
}

void ob_worker_render_metrics(ob_worker_t *w, ob_buf_t *out)
{
    ob_metrics_t m;
    ob_metrics_begin(&m, out);
    const char *stage = w->stage->name;
    const char *l_stage[] = {"stage", stage, NULL};
    ob_metrics_family(&m, "onboard_build_info", "gauge", "The worker's version and stage.");
    const char *l_build[] = {"version", OB_VERSION, "stage", stage, NULL};
    ob_metrics_sample(&m, "onboard_build_info", l_build, 1);

    ob_metrics_family(&m, "onboard_messages_received_total", "counter",
                      "Messages received from the stage's input topic.");
    ob_metrics_sample(&m, "onboard_messages_received_total", l_stage, (double)w->stats.received);
    ob_metrics_family(&m, "onboard_accounts_total", "counter",
                      "Accounts this stage finished, by result (done: handed on; failed: dead "
                      "letter; skipped: a redelivery of finished work; superseded: a newer "
                      "request for the account replaced it; unchanged: the account already had "
                      "what the request asks for).");
    const char *results[] = {"done", "failed", "skipped", "superseded", "unchanged"};
    const uint64_t counts[] = {w->stats.done, w->stats.failed,
                               w->stats.skipped_done + w->stats.skipped_committed,
                               w->stats.superseded, w->stats.unchanged};
    sample_by_result(&m, "onboard_accounts_total", stage, results, counts, 5);
    ob_metrics_family(&m, "onboard_dead_letters_total", "counter",
                      "Dead-letter records produced, by class.");
    for (int c = 0; c < OB_DLQ_CLASS__COUNT; c++) {
        const char *l[] = {"stage", stage, "class", ob_dlq_class_name((ob_dlq_class_t)c), NULL};
        ob_metrics_sample(&m, "onboard_dead_letters_total", l,
                          (double)w->stats.dead_letters_by_class[c]);
    }
    ob_metrics_family(&m, "onboard_stage_retries_total", "counter",
                      "Stage attempts scheduled again after a retryable failure, by reason.");
    for (int r = 0; r < OB_RR__COUNT; r++) {
        const char *l[] = {"stage", stage, "reason", ob_retry_reason_name((ob_retry_reason_t)r),
                           NULL};
        ob_metrics_sample(&m, "onboard_stage_retries_total", l,
                          (double)w->stats.retries_by_reason[r]);
    }
    ob_metrics_family(&m, "onboard_stage_duration_seconds", "histogram",
                      "Time from a stage's first run for an account to its outcome (retries "
                      "and waits included).");
    ob_metrics_histogram(&m, "onboard_stage_duration_seconds", l_stage, &w->duration);
    ob_metrics_family(&m, "onboard_inflight", "gauge", "Messages in flight in this worker.");
    ob_metrics_sample(&m, "onboard_inflight", l_stage, (double)w->inflight);
    ob_metrics_family(&m, "onboard_running", "gauge",
                      "Accounts this worker is working on (at most run.max).");
    ob_metrics_sample(&m, "onboard_running", l_stage, (double)w->run_busy);
    ob_metrics_family(&m, "onboard_run_waiting", "gauge",
                      "Accounts in flight waiting for a place among run.max.");
    ob_metrics_sample(&m, "onboard_run_waiting", l_stage, (double)w->runq.n);
    ob_metrics_family(&m, "onboard_partitions_paused", "gauge",
                      "1 while the in-flight window is full and fetching is paused.");
    ob_metrics_sample(&m, "onboard_partitions_paused", l_stage, w->paused);
    rd_kafka_topic_partition_list_t *asg =
        w->consumer ? ob_kconsumer_assignment(w->consumer) : NULL;
    ob_metrics_family(&m, "onboard_partitions_assigned", "gauge",
                      "Partitions of the stage's input topic this replica holds (0: more replicas "
                      "than partitions, or a rebalance under way).");
    ob_metrics_sample(&m, "onboard_partitions_assigned", l_stage, asg ? (double)asg->cnt : 0);
    if (asg)
        rd_kafka_topic_partition_list_destroy(asg);
    ob_metrics_family(&m, "onboard_lock_busy_total", "counter",
                      "Account lock attempts that found the lock held (contention).");
    ob_metrics_sample(&m, "onboard_lock_busy_total", l_stage,
                      (double)w->stats.redelivered_lock_busy);
    ob_metrics_family(&m, "onboard_consumer_rewinds_total", "counter",
                      "Partitions the consumer went back on without a revocation (handled as "
                      "given up and given back: their work redone from the earlier offset).");
    ob_metrics_sample(&m, "onboard_consumer_rewinds_total", l_stage, (double)w->stats.rewinds);
    ob_metrics_family(&m, "onboard_sessions_total", "counter",
                      "Assumed-role sessions sealed into hand-offs for the next stage (sealed), "
                      "opened and used instead of an AssumeRole (used), or come but not usable: "
                      "too close to expiry (stale) or not sealed for the account and role by a "
                      "key of session.keys (refused).");
    const char *kinds[] = {"sealed", "used", "stale", "refused"};
    const uint64_t sessions[] = {w->stats.sessions_sealed, w->stats.sessions_used,
                                 w->stats.sessions_stale, w->stats.sessions_refused};
    sample_by_result(&m, "onboard_sessions_total", stage, kinds, sessions, 4);
    ob_metrics_family(&m, "onboard_retry_now_total", "counter",
                      "Waiting retries started early by an operator's control message.");
    ob_metrics_sample(&m, "onboard_retry_now_total", l_stage, (double)w->stats.retry_now);
    ob_metrics_family(&m, "onboard_redis_errors_total", "counter",
                      "Redis lock and state commands that failed.");
    ob_metrics_sample(&m, "onboard_redis_errors_total", l_stage, (double)w->stats.redis_errors);
    ob_metrics_family(&m, "onboard_kafka_errors_total", "counter",
                      "Produce attempts that failed and were retried.");
    ob_metrics_sample(&m, "onboard_kafka_errors_total", l_stage, (double)w->stats.kafka_errors);
    ob_metrics_family(&m, "onboard_kafka_assign_failures_total", "counter",
                      "Partitions a rebalance gave this replica that could not be taken (or "
                      "given up), by librdkafka's refusal; each is logged with its reason.");
    ob_metrics_sample(&m, "onboard_kafka_assign_failures_total", l_stage,
                      (double)(w->consumer ? ob_kconsumer_assign_failures(w->consumer) : 0));
    ob_metrics_family(&m, "onboard_transactions_total", "counter",
                      "Kafka transactions of this worker's output, by outcome "
                      "(output.transactions).");
    const char *l_committed[] = {"stage", w->stage->name, "outcome", "committed", NULL};
    const char *l_aborted[] = {"stage", w->stage->name, "outcome", "aborted", NULL};
    ob_metrics_sample(&m, "onboard_transactions_total", l_committed, (double)w->stats.txn_commits);
    ob_metrics_sample(&m, "onboard_transactions_total", l_aborted, (double)w->stats.txn_aborts);
    ob_metrics_family(&m, "onboard_redis_connected", "gauge", "1 while Redis is connected.");
    ob_metrics_sample(&m, "onboard_redis_connected", l_stage,
                      w->redis && ob_redis_connected(w->redis));

    ob_aws_api_stat_t apis[OB_AWS_MAX_APIS];
    size_t napis = w->aws ? ob_aws_api_stats(w->aws, apis, OB_AWS_MAX_APIS) : 0;
    ob_metrics_family(&m, "onboard_aws_requests_total", "counter",
                      "HTTP requests sent to AWS (attempts, retries included), by API.");
    for (size_t i = 0; i < napis; i++) {
        const char *l[] = {"stage",           stage, "service", apis[i].service, "operation",
                           apis[i].operation, NULL};
        ob_metrics_sample(&m, "onboard_aws_requests_total", l, (double)apis[i].requests);
    }
    ob_metrics_family(&m, "onboard_aws_throttles_total", "counter",
                      "AWS answers that asked us to slow down, by API.");
    for (size_t i = 0; i < napis; i++) {
        const char *l[] = {"stage",           stage, "service", apis[i].service, "operation",
                           apis[i].operation, NULL};
        ob_metrics_sample(&m, "onboard_aws_throttles_total", l, (double)apis[i].throttles);
    }
    if (w->limiter) {
        ob_ratelimit_stats_t rs;
        ob_ratelimit_get_stats(w->limiter, &rs);
        ob_metrics_family(&m, "onboard_rate_limit_waits_total", "counter",
                          "AWS attempts that waited for the fleet-wide rate limiter.");
        ob_metrics_sample(&m, "onboard_rate_limit_waits_total", l_stage, (double)rs.waited);
    }

    /* The lag of the partitions this replica owns (every partition of every
     * group, whoever owns it, is onboard-lag-exporter's, in kafka-lag-exporter's
     * names: these would be counted twice beside them). */
    rd_kafka_topic_partition_list_t *a = w->consumer ? ob_kconsumer_assignment(w->consumer) : NULL;
    int nparts = a ? a->cnt : 0;
    int64_t *lags = ob_calloc((size_t)(nparts ? nparts : 1), 2 * sizeof(*lags));
    int64_t *backlogs = lags ? lags + (nparts ? nparts : 1) : NULL;
    double *ages = ob_calloc((size_t)(nparts ? nparts : 1), sizeof(*ages));
    for (int i = 0; lags && ages && i < nparts; i++)
        partition_figures(w, a->elems[i].topic, a->elems[i].partition, &lags[i], &ages[i],
                          &backlogs[i]);
    for (int f = 0; f < 2; f++) {
        const char *name = f ? "onboard_partition_lag_seconds" : "onboard_partition_lag";
        ob_metrics_family(&m, name, "gauge",
                          f ? "Age of the oldest message of the partition not yet finished (0 "
                              "when none is in flight)."
                            : "Messages of the partition not yet finished by the group.");
        for (int i = 0; lags && ages && i < nparts; i++) {
            if (lags[i] < 0)
                continue;
            char part[16];
            snprintf(part, sizeof(part), "%d", (int)a->elems[i].partition);
            const char *l[] = {"stage",           stage,       "group", w->group, "topic",
                               a->elems[i].topic, "partition", part,    NULL};
            ob_metrics_sample(&m, name, l, f ? ages[i] : (double)lags[i]);
        }
    }
    ob_metrics_family(&m, "onboard_backlog_messages", "gauge",
                      "Messages of the partition that no job has started on: not fetched yet, "
                      "or waiting for a place or behind their account's job. What KEDA scales "
                      "on (the lag also counts the accounts in progress).");
    for (int i = 0; lags && ages && i < nparts; i++) {
        if (backlogs[i] < 0)
            continue;
        char part[16];
        snprintf(part, sizeof(part), "%d", (int)a->elems[i].partition);
        const char *l[] = {"stage", stage, "topic", a->elems[i].topic, "partition", part, NULL};
        ob_metrics_sample(&m, "onboard_backlog_messages", l, (double)backlogs[i]);
    }
    free(lags);
    free(ages);
    if (a)
        rd_kafka_topic_partition_list_destroy(a);
    if (w->stage->metrics)
        w->stage->metrics(w->stage_ctx, &m);
}

static void probe_metrics(void *arg, ob_buf_t *out)
{
    ob_worker_render_metrics(arg, out);
}

static int probe_ready(void *arg, char *why, size_t n)
{
    return ob_worker_ready(arg, why, n);
}

/* ---- lifecycle ---- */

static void on_signal(ob_signal_t *s, int signo, void *arg)
{
    ob_worker_t *w = arg;
    ob_logf(OB_LOG_INFO, "worker", "signal %d: shutting down", signo);
    ob_worker_stop(w);
}

void ob_worker_stop(ob_worker_t *w)
{
    w->stopping = 1;
    ob_loop_stop(w->loop);
}

void ob_worker_redis_opts(const ob_config_t *cfg, ob_redis_opts_t *out)
{
    *out = (ob_redis_opts_t){.host = cfg->redis_host,
                             .port = (int)cfg->redis_port,
                             .password = cfg->redis_password,
                             .db = (int)cfg->redis_db,
                             .connect_timeout_ms = (long)cfg->redis_connect_timeout_ms,
                             .command_timeout_ms = (long)cfg->redis_command_timeout_ms,
                             .tls_enabled = cfg->redis_tls,
                             .tls_ca = cfg->redis_tls_ca,
                             .tls_cert = cfg->redis_tls_cert,
                             .tls_key = cfg->redis_tls_key,
                             .tls_server_name = cfg->redis_tls_server_name,
                             .sentinels = cfg->redis_sentinels,
                             .sentinel_master = cfg->redis_sentinel_master,
                             .sentinel_password = cfg->redis_sentinel_password};
}

/* The topics this worker sends to, known to its producer before the first
 * message goes out (ob_kproducer_learn_topic). */
static void learn_outputs(ob_worker_t *w)
{
    ob_kproducer_learn_topic(w->producer, w->topic_dlq);
    const char *o = w->stage->outputs ? w->stage->outputs : "";
    while (*o) {
        size_t n = strcspn(o, " ");
        if (n) {
            char topic[320];
            snprintf(topic, sizeof(topic), "%s%.*s", w->cfg->topic_prefix, (int)n, o);
            ob_kproducer_learn_topic(w->producer, topic);
        }
        o += n + (o[n] == ' ');
    }
}

ob_worker_t *ob_worker_new(ob_loop_t *loop, const ob_worker_opts_t *opts, char *errstr,
                           size_t errstr_size)
{
    ob_worker_t *w = ob_calloc(1, sizeof(*w));
    if (!w) {
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    w->loop = loop;
    w->opts = *opts;
    w->stage = opts->stage;
    w->cfg = opts->config;
    snprintf(w->name, sizeof(w->name), "%s", opts->name ? opts->name : w->stage->name);
    if (gethostname(w->host, sizeof(w->host)) != 0)
        snprintf(w->host, sizeof(w->host), "unknown");
    snprintf(w->topic_in, sizeof(w->topic_in), "%s%s", w->cfg->topic_prefix, w->stage->input);
    w->intake = !strcmp(w->stage->input, "requests");
    snprintf(w->side_at_field, sizeof(w->side_at_field), "%s_at", w->stage->name);
    snprintf(w->side_error_field, sizeof(w->side_error_field), "%s_error", w->stage->name);
    snprintf(w->side_request_field, sizeof(w->side_request_field), "%s_request", w->stage->name);
    snprintf(w->topic_dlq, sizeof(w->topic_dlq), "%sdlq", w->cfg->topic_prefix);
    w->max_inflight = (size_t)w->cfg->inflight_max;
    w->run_max = (size_t)w->cfg->run_max;
    ob_list_init(&w->acct_list);
    w->stage_ctx = w->stage->ctx_new ? w->stage->ctx_new() : NULL;
    ob_list_init(&w->jobs);
    w->run_timer = ob_timer_new(loop, run_dispatch, w);
    ob_histogram_init(&w->duration, duration_bounds,
                      sizeof(duration_bounds) / sizeof(duration_bounds[0]));
    if (ob_random_bytes(w->rng, sizeof(w->rng)) != OB_OK)
        w->rng[0] = (unsigned short)getpid();
    w->offsets = ob_offsets_new();
    if (opts->install_signals) {
        const int sigs[] = {SIGINT, SIGTERM};
        w->signals = ob_signal_new(loop, sigs, 2, on_signal, w, errstr, errstr_size);
        if (!w->signals)
            goto fail;
    }
    /* A descriptor per connection, plus Kafka's, Redis's and the loop's. */
    long conns = (long)w->cfg->http_max_connections, nofile = ob_raise_nofile();
    if (nofile > 0 && conns > nofile - 128) {
        long fit = nofile > 256 ? nofile - 128 : nofile / 2;
        OB_WARN("worker",
                "http.max.connections %ld does not fit the open-file limit %ld: using %ld", conns,
                nofile, fit);
        conns = fit;
    }
    ob_http_opts_t ho = {.timeout_ms = (long)w->cfg->http_timeout_ms,
                         .connect_timeout_ms = (long)w->cfg->http_connect_timeout_ms,
                         .max_body = (size_t)w->cfg->http_max_body,
                         .max_connections = conns,
                         .max_transfers = conns};
    w->http = ob_http_new(loop, &ho, errstr, errstr_size);
    if (!w->http)
        goto fail;
    if (ob_awsconfig_load(opts->getenv_fn, opts->env_ctx, &w->awscfg, errstr, errstr_size) != OB_OK)
        goto fail;
    ob_aws_opts_t ao = {.getenv_fn = opts->getenv_fn,
                        .env_ctx = opts->env_ctx,
                        .config = w->awscfg,
                        .max_attempts = (int)w->cfg->aws_max_attempts,
                        .max_backoff_s = (double)w->cfg->aws_max_backoff_ms / 1000.0};
    w->aws = ob_aws_new(loop, w->http, &ao, errstr, errstr_size);
    if (!w->aws)
        goto fail;
    if (w->cfg->session_keys && w->cfg->session_keys[0]) {
        char kerr[256];
        w->session_keys = ob_session_keys_parse(w->cfg->session_keys, kerr, sizeof(kerr));
        if (!w->session_keys) {
            ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "session.keys: %s", kerr);
            goto fail;
        }
    }
    w->fleet = ob_credsrc_chain(w->aws, errstr, errstr_size);
    if (!w->fleet)
        goto fail;
    /* Sessions of accounts no job uses any more are kept for a retry or a
     * redelivery, not for the whole batch: twice run.max of them. */
    ob_assume_cache_opts_t co = {.session_name = "onboard",
                                 .max_entries = w->run_max ? 2 * w->run_max : 0};
    w->assume = ob_assume_cache_new(w->aws, w->fleet, &co);
    ob_redis_opts_t ro;
    ob_worker_redis_opts(w->cfg, &ro);
    w->redis = ob_redis_new(loop, &ro, errstr, errstr_size);
    if (!w->redis || !w->assume)
        goto fail;
    /* A side stage's rates are its own buckets: its throttling never takes
     * from what the onboarding stages may call. */
    char rl_prefix[64];
    snprintf(rl_prefix, sizeof(rl_prefix), "ob:rl:%s:", w->stage->name);
    ob_ratelimit_opts_t rlo = {.key_prefix = rl_prefix};
    w->limiter =
        ob_ratelimit_new(loop, w->redis, w->stage->side ? &rlo : NULL, errstr, errstr_size);
    if (!w->limiter ||
        ob_ratelimit_configure(w->limiter, w->cfg->rate_limits, errstr, errstr_size) != OB_OK)
        goto fail;
    ob_aws_limiter_t lim = ob_ratelimit_aws_limiter(w->limiter);
    ob_aws_set_limiter(w->aws, &lim);
    snprintf(w->group, sizeof(w->group), "%s%s", w->cfg->topic_prefix, w->stage->name);
    w->txn = w->cfg->output_transactions;
    if (w->txn) {
        /* A stable instance keeps its transactional.id across restarts, so
         * the restarted process aborts what its predecessor left open at
         * once; without one, an id of this process alone. */
        if (w->cfg->instance_id && w->cfg->instance_id[0]) {
            snprintf(w->txn_id, sizeof(w->txn_id), "%.250s-%.250s", w->group, w->cfg->instance_id);
        } else {
            unsigned char rnd[4] = {0};
            (void)ob_random_bytes(rnd, sizeof(rnd));
            snprintf(w->txn_id, sizeof(w->txn_id), "%.250s-%.127s-%d-%02x%02x%02x%02x", w->group,
                     w->host, (int)getpid(), rnd[0], rnd[1], rnd[2], rnd[3]);
        }
    }
    ob_kproducer_opts_t po = {.kafka = &w->cfg->kafka,
                              .on_delivery = on_delivery,
                              .arg = w,
                              .transactional_id = w->txn ? w->txn_id : NULL,
                              .on_txn = on_txn};
    w->producer = ob_kproducer_new(loop, &po, errstr, errstr_size);
    if (!w->producer)
        goto fail;
    learn_outputs(w);
    const char *topics[] = {w->topic_in};
    ob_kconsumer_opts_t kc = {.group_id = w->group,
                              .topics = topics,
                              .ntopics = 1,
                              .kafka = &w->cfg->kafka,
                              .on_message = on_message,
                              .on_rebalance = on_rebalance,
                              .arg = w,
                              .transactional = w->txn,
                              .group_instance_id = w->cfg->instance_id};
    w->consumer = ob_kconsumer_new(loop, &kc, errstr, errstr_size);
    if (!w->consumer)
        goto fail;
    w->commit_timer = ob_timer_new(loop, commit_tick, w);
    w->commit_soon = ob_timer_new(loop, commit_soon_cb, w);
    if (!w->commit_timer || !w->commit_soon)
        goto fail;
    ob_timer_start(w->commit_timer, (uint64_t)w->cfg->output_commit_interval_ms);
    if (w->stage->chore) {
        w->chore_timer = ob_timer_new(loop, chore_fired, w);
        if (!w->chore_timer)
            goto fail;
        ob_timer_start(w->chore_timer, 0);
    }
    if (w->cfg->metrics_port > 0) {
        w->probes =
            ob_probes_new(loop, w->cfg->metrics_bind, (int)w->cfg->metrics_port, "onboard-worker",
                          probe_metrics, probe_ready, w, errstr, errstr_size);
        if (!w->probes)
            goto fail;
    }
    ob_logkv(OB_LOG_INFO, "worker", "started", "stage", w->stage->name, "input", w->topic_in,
             "group", w->group, "credentials", ob_credsrc_describe(w->fleet), "output",
             w->txn ? "transactions" : "idempotent", "transactional_id", w->txn ? w->txn_id : NULL,
             NULL);
    return w;
fail:
    ob_worker_free(w);
    return NULL;
}

/* ---- the stage's chore ---- */

#define CHORE_PRIORITY (UINT64_MAX / 2) /* after every job's call */

static void chore_next(ob_worker_t *w, const ob_aws_result_t *res);

static void on_chore_aws(ob_aws_result_t *res, void *arg)
{
    ob_worker_t *w = arg;
    w->chore_call = NULL;
    chore_next(w, res);
}

static void chore_fired(ob_timer_t *t, void *arg)
{
    (void)t;
    chore_next(arg, NULL);
}

static void chore_next(ob_worker_t *w, const ob_aws_result_t *res)
{
    if (w->stopping || w->chore_ended)
        return;
    ob_step_t s;
    memset(&s, 0, sizeof(s));
    w->stage->chore(w->stage_ctx, w->cfg, res, &s);
    if (s.kind == OB_STEP_CALL) {
        ob_aws_target_t t = {
            .region = s.region[0] ? s.region : NULL, .creds = w->fleet, .priority = CHORE_PRIORITY};
        char err[512];
        w->chore_call = ob_aws_send(w->aws, &s.req, &t, on_chore_aws, w, err, sizeof(err));
        if (!w->chore_call) {
            ob_logkv(OB_LOG_ERROR, "worker", "the stage's own work stops: its call failed", "stage",
                     w->stage->name, "error", err, NULL);
            w->chore_ended = 1;
        }
    } else if (s.kind == OB_STEP_WAIT) {
        ob_timer_start(w->chore_timer, s.wait_ms);
    } else {
        w->chore_ended = 1;
    }
    ob_step_clear(&s);
}

static void chore_stop(ob_worker_t *w)
{
    w->chore_ended = 1;
    if (w->chore_call)
        ob_aws_cancel(w->chore_call);
    w->chore_call = NULL;
    if (w->chore_timer)
        ob_timer_stop(w->chore_timer);
}

static int drained(void *arg)
{
    ob_worker_t *w = arg;
    /* Work under way is finished: calls, their next steps, outcomes on
     * their way out, locks being taken. What waits long is handed back at
     * once: a stack being polled and a stage retry (the new owner continues
     * from their recorded progress), and what has not started (new
     * messages, and those queued behind their account's job). A rolling
     * restart thus pauses a partition for a few calls, not for a stack's
     * lifetime. */
    for (ob_list_t *pos = w->jobs.next; pos != &w->jobs; pos = pos->next) {
        job_t *j = JOB_OF(pos);
        int in_line = ob_heap_in(&j->rnode) && j->phase != PH_NEW;
        switch (j->phase) {
        case PH_NEW:
        case PH_QUEUED:
            if (in_line)
                return 0;
            break;
        case PH_LOCKING:
            if (!j->retry_wait)
                return 0;
            break;
        case PH_RUNNING:
            if (j->call || j->xfer || j->busy || in_line)
                return 0;
            break;
        default:
            return 0;
        }
    }
    return 1;
}

ob_err_t ob_worker_run(ob_worker_t *w)
{
    ob_err_t e = w->stopping ? OB_OK : ob_loop_run(w->loop);
    /* Graceful shutdown: no new messages, let running jobs finish for a
     * while, then hand back the rest (uncommitted, locks released). */
    w->stopping = 1;
    chore_stop(w);
    if (w->consumer)
        ob_kconsumer_pause(w->consumer, NULL);
    /* A producer that failed for good produces nothing more: there is
     * nothing to wait for, and the partitions go to a replica that can. */
    long limit = w->failed_fatal ? 0 : w->opts.shutdown_ms > 0 ? w->opts.shutdown_ms : 20000;
    uint64_t end = ob_loop_update_time(w->loop) + (uint64_t)limit;
    while (!drained(w) && ob_loop_update_time(w->loop) < end)
        ob_loop_run_once(w->loop, 100);
    if (w->txn && w->producer && w->consumer && !w->failed_fatal) {
        /* What is finished goes out with its offsets before leaving. */
        ob_kproducer_txn_wait(w->producer, 15000);
        txn_commit_start(w);
        ob_kproducer_txn_wait(w->producer, 15000);
    }
    size_t handed_back = 0;
    ob_list_t *pos, *tmp;
    OB_LIST_FOREACH(pos, tmp, &w->jobs)
    {
        handed_back++;
        job_let_go(JOB_OF(pos));
    }
    if (w->producer)
        ob_kproducer_flush(w->producer, 5000);
    /* Let lock releases reach Redis. */
    for (int i = 0; i < 10 && w->redis && ob_redis_pending(w->redis) > 0; i++)
        ob_loop_run_once(w->loop, 50);
    if (w->consumer)
        ob_kconsumer_close(w->consumer);
    ob_logf(OB_LOG_INFO, "worker", "stopped: %llu done, %llu dead letters, %zu handed back",
            (unsigned long long)w->stats.done, (unsigned long long)w->stats.dead_letters,
            handed_back);
    return w->failed_fatal ? OB_ERR_KAFKA : e;
}

void ob_worker_free(ob_worker_t *w)
{
    if (!w)
        return;
    w->stopping = 1;
    w->freeing = 1;
    w->txn_open = w->txn_committing = NULL; /* their jobs are freed below */
    ob_timer_free(w->commit_timer);
    w->commit_timer = NULL;
    ob_timer_free(w->commit_soon);
    w->commit_soon = NULL;
    chore_stop(w);
    ob_timer_free(w->chore_timer);
    w->chore_timer = NULL;
    /* Jobs with no callback pending go first (their locks are released
     * through Redis); those waiting for a produce acknowledgement never get
     * it once the producer is gone; those waiting for a state write are
     * completed by ob_redis_free() calling their callbacks. */
    ob_list_t *pos, *tmp;
    OB_LIST_FOREACH(pos, tmp, &w->jobs)
    {
        job_t *j = JOB_OF(pos);
        j->detached = 1;
        if (j->phase != PH_FINISHING && j->phase != PH_RECORDING) {
            acct_release(j, 0);
            job_free(j);
        }
    }
    ob_probes_free(w->probes);
    w->probes = NULL;
    ob_kconsumer_free(w->consumer);
    w->consumer = NULL;
    ob_kproducer_free(w->producer);
    w->producer = NULL;
    if (w->aws)
        ob_aws_set_limiter(w->aws, NULL);
    ob_ratelimit_free(w->limiter);
    w->limiter = NULL;
    ob_redis_free(w->redis);
    w->redis = NULL;
    while (!ob_list_empty(&w->jobs)) {
        job_t *j = JOB_OF(ob_list_first(&w->jobs));
        j->lock = NULL; /* Redis is gone: nothing left to release it with */
        acct_release(j, 0);
        job_free(j);
    }
    while (!ob_list_empty(&w->acct_list))
        acct_drop(w, OB_LIST_ENTRY(ob_list_first(&w->acct_list), acct_t, all));
    ob_htab_clear(&w->accts);
    if (w->stage->ctx_free)
        w->stage->ctx_free(w->stage_ctx);
    ob_assume_cache_free(w->assume);
    ob_session_keys_free(w->session_keys);
    ob_credsrc_unref(w->fleet);
    ob_aws_free(w->aws);
    ob_http_free(w->http);
    ob_awsconfig_destroy(w->awscfg);
    ob_signal_free(w->signals);
    ob_offsets_free(w->offsets);
    for (size_t i = 0; i < w->ntopics; i++)
        free(w->topics[i]);
    free(w->topics);
    ob_timer_free(w->run_timer);
    ob_heap_clear(&w->runq);
    free(w->pend);
    free(w->snap);
    free(w->marked);
    free(w->frozen);
    free(w->stale);
    free(w->floor);
    while (w->nskips)
        skip_drop(w, 0);
    free(w->skips);
    free(w);
}

void ob_worker_get_stats(const ob_worker_t *w, ob_worker_stats_t *out)
{
    *out = w->stats;
    out->inflight = w->inflight;
    out->running = w->run_busy;
    out->run_waiting = w->runq.n;
    memset(out->by_phase, 0, sizeof(out->by_phase));
    for (const ob_list_t *pos = w->jobs.next; pos != &w->jobs; pos = pos->next)
        out->by_phase[JOB_OF(pos)->phase]++;
    out->paused = w->paused;
}

int ob_process_begin(int argc, char **argv, const char *about, const char *service,
                     ob_config_t *cfg)
{
    json_set_alloc_funcs(ob_malloc, free); /* the out-of-memory policy: ob_alloc.h */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf(
                "usage: %s\n%s\nSettings come from the environment (OB_*) and the file named by\n"
                "OB_CONFIG_FILE; kafka.* settings go to librdkafka; AWS settings follow the\n"
                "SDK conventions. See the README's configuration section.\n",
                argv[0], about);
            return 0;
        }
        fprintf(stderr, "%s: unknown argument %s (try --help)\n", argv[0], argv[i]);
        return 2;
    }
    char err[1024];
    if (ob_config_load(cfg, NULL, NULL, NULL, err, sizeof(err)) != OB_OK) {
        fprintf(stderr, "%s: configuration: %s\n", argv[0], err);
        return 2;
    }
    ob_log_set_service(service);
    ob_log_set_level((ob_log_level_t)ob_log_level_parse(cfg->log_level));
    signal(SIGPIPE, SIG_IGN);
    return -1;
}

int ob_worker_main(const ob_stage_ops_t *stage, int argc, char **argv)
{
    char about[128], svc[64], err[1024];
    snprintf(about, sizeof(about), "The %s stage worker.", stage->name);
    snprintf(svc, sizeof(svc), "worker-%s", stage->name);
    ob_config_t cfg;
    int rc = ob_process_begin(argc, argv, about, svc, &cfg);
    if (rc >= 0)
        return rc;
    ob_loop_t *loop = ob_loop_new(err, sizeof(err));
    if (!loop) {
        fprintf(stderr, "%s: %s\n", argv[0], err);
        ob_config_free(&cfg);
        return 1;
    }
    ob_worker_opts_t o = {.stage = stage, .config = &cfg, .name = svc, .install_signals = 1};
    ob_worker_t *w = ob_worker_new(loop, &o, err, sizeof(err));
    if (!w) {
        ob_logf(OB_LOG_ERROR, "worker", "cannot start: %s", err);
        ob_loop_free(loop);
        ob_config_free(&cfg);
        return 1;
    }
    ob_err_t e = ob_worker_run(w);
    ob_worker_free(w);
    ob_loop_free(loop);
    ob_config_free(&cfg);
    return e == OB_OK ? 0 : 1;
}
