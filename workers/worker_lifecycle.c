/*
 * onboard-lifecycle: the fleet's own initiative. Two jobs on one loop, both
 * off unless their interval is set:
 *
 *   the watcher (watcher.interval): lists the organization as the fleet's
 *     identity (ob_watch: ListAccounts, or the tree when the lifecycle.*
 *     rules name OUs) and enqueues, on <prefix>requests, every ACTIVE
 *     account the rules take that the fleet does not know: no record in
 *     Redis, and not in the watcher's ledger (ob:{lifecycle}:watcher). At
 *     most watcher.max.per.interval a round; the rest wait for the next.
 *     Each account's request is "watcher:ACCOUNT", marked "sending" in the
 *     ledger before it is produced and "sent" once the broker has it, so a
 *     restart enqueues nothing twice: an account left "sending" by a holder
 *     that died is sent again, under the same request id, which the stages
 *     see as the same request.
 *   the periodic verification (verify.interval): every round (every
 *     verify.interval, at most every minute) it reads the records, and sends
 *     an onboard.verify/1 to <prefix>verify for each connected account whose
 *     last verification and last one sent are both verify.interval old (at
 *     most verify.max.per.round a round), with repair when verify.repair.
 *     Its ledger (ob:{lifecycle}:verify) keeps, per account, "MS REQUEST
 *     RECORD_REQUEST sending" before the produce and "... sent" once the
 *     broker has it: a verification its holder died with, still in the
 *     producer's queue, is sent again (same request id) after two lease
 *     lifetimes instead of being waited for as if under way.
 *
 * Why a process of its own rather than a mode of a stage worker: the jobs
 * consume no topic, so they must not hold a consumer group's partitions
 * hostage to a lease, and a stage worker's replicas all work at once, while
 * these must work on one replica at a time: the one holding the lease
 * (ob:{lifecycle}:lock, an ob_lock renewed at a third of
 * lifecycle.lease.ttl). The others stand by and take over when the holder's
 * lease expires (or at once when it shuts down and releases it). A holder
 * that loses its lease stops where it is; its ledgers keep what it did.
 *
 * /metrics, /healthz, /readyz on metrics.port, as the workers.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ob_alloc.h"
#include "ob_aws.h"
#include "ob_awsconfig.h"
#include "ob_credsrc.h"
#include "ob_crypto.h"
#include "ob_kafka.h"
#include "ob_lifecycle.h"
#include "ob_lock.h"
#include "ob_log.h"
#include "ob_metrics.h"
#include "ob_probes.h"
#include "ob_state.h"
#include "ob_time.h"
#include "ob_watch.h"
#include "ob_worker.h"

#ifndef OB_VERSION
#define OB_VERSION "dev"
#endif

#define VERIFY_ROUND_MAX_MS 60000
#define PROBE_BATCH         1000 /* accounts asked about at once */
/* status, idempotency_key, connected_spec, stack_id, role_arn, verify_at,
 * repair_request, connected_request, verify_request, request_id */
#define VERIFY_FIELDS 10

typedef struct lc_s lc_t;

/* One account of a round waiting for Redis's answers. */
typedef struct probe_s {
    lc_t *lc;
    char account[OB_ACCOUNT_ID_LEN];
    ob_mode_t mode;
    int answers; /* of 2 */
    int known;   /* a record, or "sent" in the ledger */
    int resend;  /* "sending" long ago: its holder died before the broker had it */
    int busy;    /* "sending" just now */
    char *fields[VERIFY_FIELDS];
    uint64_t sent_ms;
    int sent_unconfirmed; /* the ledger says "sending" */
    char sent_request[OB_REQUEST_ID_LEN];
    char sent_record_request[OB_REQUEST_ID_LEN];
} probe_t;

/* A produced message awaiting its delivery report. */
typedef struct sent_s {
    lc_t *lc;
    int verify;
    int resend; /* a request a predecessor left "sending" */
    char account[OB_ACCOUNT_ID_LEN];
    char ledger[32 + 2 * OB_REQUEST_ID_LEN]; /* a verification's entry, once sent */
} sent_t;

typedef struct stats_s {
    uint64_t rounds_ok, rounds_failed, enqueued, resent, delivery_failed;
    uint64_t verify_rounds, verify_sent, verify_failed, verify_resent;
    /* the last watcher round */
    size_t listed, active, excluded, known, backlog, calls;
    int64_t last_ok_ms;
    int64_t verify_last_ms;
    size_t unverifiable; /* the last complete round's */
    uint64_t takeovers;
} stats_t;

struct lc_s {
    ob_loop_t *loop;
    const ob_config_t *cfg;
    ob_lifecycle_rules_t rules;
    ob_signal_t *signals;
    ob_http_t *http;
    ob_awsconfig_t *awscfg;
    ob_aws_t *aws;
    ob_credsrc_t *fleet;
    ob_redis_t *redis;
    ob_kproducer_t *producer;
    ob_probes_t *endpoints; /* /metrics, /healthz, /readyz */
    char topic_requests[256], topic_verify[256];
    char org_region[OB_REGION_LEN];
    int stopping;

    ob_lock_t *lease;
    int leader;
    ob_timer_t lease_timer, watch_timer, verify_timer;
    size_t in_delivery;

    /* the watcher's round under way */
    struct {
        int running;
        ob_watch_t *listing;
        ob_aws_call_t *call;
        probe_t **probes; /* the batch asked about */
        size_t nprobes, answered;
        size_t next; /* the listing's next account */
        size_t active, excluded, known, sent, backlog;
    } w;
    /* the verification's round under way */
    struct {
        int running;
        char cursor[32];
        int scanning;
        int sending; /* 0: scanning the records for the stalest due; 1: sending those */
        ob_verify_picks_t picks;
        probe_t **probes;
        size_t nprobes, answered, sent;
        size_t unverifiable; /* connected, without the connection's request */
    } v;
    stats_t st;
};

static void watch_round(ob_timer_t *t, void *arg);
static void verify_round(ob_timer_t *t, void *arg);
static void lease_try(ob_timer_t *t, void *arg);

static void probe_free(probe_t *p)
{
    if (!p)
        return;
    for (int i = 0; i < VERIFY_FIELDS; i++)
        free(p->fields[i]);
    free(p);
}

/* A round's probes: those with both answers go now; an answer still on
 * its way frees its probe (lc NULL: the round is gone). */
static void probes_free(probe_t ***probes, size_t *n)
{
    for (size_t i = 0; i < *n; i++) {
        probe_t *p = (*probes)[i];
        if (p && p->answers == 2)
            probe_free(p);
        else if (p)
            p->lc = NULL;
    }
    free(*probes);
    *probes = NULL;
    *n = 0;
}

/* ---- the watcher ---- */

static void watch_end(lc_t *lc, int ok, const char *why)
{
    if (!lc->w.running)
        return;
    lc->w.running = 0;
    if (lc->w.call) {
        ob_aws_cancel(lc->w.call);
        lc->w.call = NULL;
    }
    ob_watch_free(lc->w.listing);
    lc->w.listing = NULL;
    probes_free(&lc->w.probes, &lc->w.nprobes);
    if (ok) {
        lc->st.rounds_ok++;
        lc->st.last_ok_ms = ob_time_wall_ms();
    } else if (!lc->stopping) { /* a round cut short by a shutdown did not fail */
        lc->st.rounds_failed++;
        ob_logkv(OB_LOG_WARN, "watcher", "round failed", "reason", why, NULL);
    }
    if (lc->leader && !lc->stopping)
        ob_timer_start(&lc->watch_timer, (uint64_t)lc->cfg->watcher_interval_ms);
}

static void on_delivery(ob_kproducer_t *p, ob_err_t err, const char *errmsg,
                        const rd_kafka_message_t *msg, void *msg_opaque, void *arg)
{
    (void)p;
    (void)msg;
    lc_t *lc = arg;
    sent_t *s = msg_opaque;
    if (!s)
        return;
    lc->in_delivery--;
    char now[32];
    snprintf(now, sizeof(now), "%" PRId64, ob_time_wall_ms());
    if (s->verify) {
        if (err != OB_OK) {
            lc->st.verify_failed++;
            ob_logkv(OB_LOG_WARN, "verify", "not sent", "account", s->account, "reason", errmsg,
                     NULL);
            /* Asked again at the next round. */
            ob_redis_command(lc->redis, NULL, NULL, "HDEL %s %s", OB_VERIFY_LEDGER_KEY, s->account);
        } else {
            lc->st.verify_sent++;
            ob_redis_command(lc->redis, NULL, NULL, "HSET %s %s %s", OB_VERIFY_LEDGER_KEY,
                             s->account, s->ledger);
        }
    } else if (err != OB_OK) {
        lc->st.delivery_failed++;
        ob_logkv(OB_LOG_WARN, "watcher", "not enqueued", "account", s->account, "reason", errmsg,
                 NULL);
        ob_redis_command(lc->redis, NULL, NULL, "HDEL %s %s", OB_WATCH_LEDGER_KEY, s->account);
    } else {
        char v[48];
        snprintf(v, sizeof(v), "sent %s", now);
        ob_redis_command(lc->redis, NULL, NULL, "HSET %s %s %s", OB_WATCH_LEDGER_KEY, s->account,
                         v);
        lc->st.enqueued++;
        lc->st.resent += s->resend;
        ob_logkv(OB_LOG_INFO, "watcher", s->resend ? "enqueued again" : "enqueued", "account",
                 s->account, NULL);
    }
    free(s);
}

static int produce(lc_t *lc, int verify, int resend, const char *account, const char *json,
                   const char *schema, const char *ledger)
{
    char err[512];
    sent_t *s = ob_calloc(1, sizeof(*s));
    s->lc = lc;
    s->verify = verify;
    s->resend = resend;
    snprintf(s->account, sizeof(s->account), "%s", account);
    snprintf(s->ledger, sizeof(s->ledger), "%s", ledger ? ledger : "");
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, OB_MSG_HDR_SCHEMA, -1, schema, -1);
    if (ob_kproducer_send(lc->producer, verify ? lc->topic_verify : lc->topic_requests,
                          RD_KAFKA_PARTITION_UA, account, strlen(account), json, strlen(json), h, s,
                          err, sizeof(err)) != OB_OK) {
        ob_logkv(OB_LOG_WARN, verify ? "verify" : "watcher", "cannot produce", "account", account,
                 "reason", err, NULL);
        free(s);
        return -1;
    }
    lc->in_delivery++;
    return 0;
}

/* The ledger says "sending" and Redis has it: produce the request. */
static void on_marked(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    (void)r;
    probe_t *p = arg;
    lc_t *lc = p->lc;
    if (lc && err == OB_OK && reply && reply->type != REDIS_REPLY_ERROR && lc->leader) {
        char why[512];
        char *json = ob_watch_request(&lc->rules, p->account, p->mode, why, sizeof(why));
        if (!json || produce(lc, 0, p->resend, p->account, json, OB_SCHEMA_REQUEST, NULL) != 0) {
            if (!json)
                ob_logkv(OB_LOG_WARN, "watcher", "no request", "account", p->account, "reason", why,
                         NULL);
            ob_redis_command(lc->redis, NULL, NULL, "HDEL %s %s", OB_WATCH_LEDGER_KEY, p->account);
        }
        free(json);
    }
    probe_free(p);
}

static void watch_probe_batch(lc_t *lc);

/* A batch's answers are in: enqueue its unknown accounts while the round's
 * cap allows, then the next batch. */
static void watch_enqueue(lc_t *lc)
{
    size_t cap = (size_t)lc->cfg->watcher_max_per_interval;
    char v[48];
    snprintf(v, sizeof(v), "sending %" PRId64, ob_time_wall_ms());
    for (size_t i = 0; i < lc->w.nprobes; i++) {
        probe_t *p = lc->w.probes[i];
        if (p->known || p->busy) {
            lc->w.known += p->known;
            continue;
        }
        if (lc->w.sent >= cap) {
            lc->w.backlog++;
            continue;
        }
        if (ob_redis_command(lc->redis, on_marked, p, "HSET %s %s %s", OB_WATCH_LEDGER_KEY,
                             p->account, v) != OB_OK) {
            watch_end(lc, 0, "Redis is not reachable");
            return;
        }
        lc->w.probes[i] = NULL; /* on_marked frees it */
        lc->w.sent++;
    }
    probes_free(&lc->w.probes, &lc->w.nprobes);
    lc->w.answered = 0;
    watch_probe_batch(lc);
}

static void on_probe(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    (void)r;
    probe_t *p = arg;
    lc_t *lc = p->lc;
    if (!lc) { /* the round was abandoned */
        if (++p->answers == 2)
            probe_free(p);
        return;
    }
    p->answers++;
    if (err != OB_OK || !reply || reply->type == REDIS_REPLY_ERROR) {
        watch_end(lc, 0, "Redis did not answer whether the accounts are known"); /* frees p */
        return;
    }
    if (reply->type == REDIS_REPLY_INTEGER)
        p->known |= reply->integer > 0; /* EXISTS of the record */
    else if (reply->type == REDIS_REPLY_STRING && reply->str) {
        long long ms = 0;
        if (!strncmp(reply->str, "sent", 4))
            p->known = 1;
        else if (sscanf(reply->str, "sending %lld", &ms) == 1) {
            /* Another holder's send that never reached "sent": after two
             * lease lifetimes it is not under way any more. */
            if (ob_time_wall_ms() - ms > 2 * lc->cfg->lifecycle_lease_ttl_ms)
                p->resend = 1;
            else
                p->busy = 1;
        }
    }
    if (p->answers == 2 && ++lc->w.answered == lc->w.nprobes)
        watch_enqueue(lc);
}

/* Ask Redis about the next PROBE_BATCH accounts the rules take (a bounded
 * number in flight, whatever the organization's size); after the last, the
 * round ends. */
static void watch_probe_batch(lc_t *lc)
{
    ob_watch_t *l = lc->w.listing;
    size_t n = ob_watch_count(l);
    lc->w.probes = ob_calloc(PROBE_BATCH, sizeof(*lc->w.probes));
    for (; lc->w.next < n && lc->w.nprobes < PROBE_BATCH; lc->w.next++) {
        const ob_watch_account_t *a = ob_watch_account(l, lc->w.next);
        if (!a->active)
            continue;
        lc->w.active++;
        ob_mode_t mode;
        char why[256];
        if (!ob_lifecycle_decide(&lc->rules, a->id, a->ous, &mode, why, sizeof(why))) {
            lc->w.excluded++;
            continue;
        }
        probe_t *p = ob_calloc(1, sizeof(*p));
        p->lc = lc;
        p->mode = mode;
        snprintf(p->account, sizeof(p->account), "%s", a->id);
        char key[OB_STATE_KEY_LEN];
        ob_state_key(a->id, key, sizeof(key));
        if (ob_redis_command(lc->redis, on_probe, p, "EXISTS %s", key) != OB_OK) {
            free(p);
            watch_end(lc, 0, "Redis is not reachable");
            return;
        }
        if (ob_redis_command(lc->redis, on_probe, p, "HGET %s %s", OB_WATCH_LEDGER_KEY, a->id) !=
            OB_OK) {
            p->answers++; /* the EXISTS answer frees it */
            p->lc = NULL;
            watch_end(lc, 0, "Redis is not reachable");
            return;
        }
        lc->w.probes[lc->w.nprobes++] = p;
    }
    if (lc->w.nprobes)
        return; /* on_probe goes on */
    lc->st.listed = n;
    lc->st.calls = ob_watch_calls(l);
    lc->st.active = lc->w.active;
    lc->st.excluded = lc->w.excluded;
    lc->st.known = lc->w.known;
    lc->st.backlog = lc->w.backlog;
    ob_logf(OB_LOG_INFO, "watcher",
            "round: %zu accounts listed (%zu calls), %zu active, %zu excluded, %zu known, "
            "%zu to enqueue, %zu left for the next round",
            n, lc->st.calls, lc->w.active, lc->w.excluded, lc->w.known, lc->w.sent, lc->w.backlog);
    watch_end(lc, 1, NULL);
}

static void watch_call(lc_t *lc);

static void on_org(ob_aws_result_t *res, void *arg)
{
    lc_t *lc = arg;
    lc->w.call = NULL;
    if (!lc->w.running)
        return;
    if (res->err != OB_OK) {
        char why[1024];
        if (res->err == OB_ERR_AWS && (!strcmp(res->aws.code, "AccessDeniedException") ||
                                       !strcmp(res->aws.code, "AWSOrganizationsNotInUseException")))
            snprintf(why, sizeof(why),
                     "%s: %s: the fleet's identity cannot list the organization (run the "
                     "lifecycle process as the management account or a delegated administrator "
                     "with organizations:List*)",
                     res->op, res->aws.code);
        else
            snprintf(why, sizeof(why), "%s: %s", res->op, res->errmsg);
        watch_end(lc, 0, why);
        return;
    }
    char why[256];
    if (ob_watch_reply(lc->w.listing, res->body.data ? (const char *)res->body.data : "",
                       res->body.len, why, sizeof(why)) != OB_OK) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s: %s", res->op, why);
        watch_end(lc, 0, msg);
        return;
    }
    watch_call(lc);
}

static void watch_call(lc_t *lc)
{
    const char *op;
    json_t *body;
    if (!lc->leader) {
        watch_end(lc, 0, "the lease was lost");
        return;
    }
    if (!ob_watch_next(lc->w.listing, &op, &body)) {
        watch_probe_batch(lc);
        return;
    }
    ob_aws_req_t req;
    char err[512];
    ob_err_t e = ob_json11_init_obj(&req, OB_SVC_ORGANIZATIONS, op, body, err, sizeof(err));
    json_decref(body);
    if (e != OB_OK) {
        watch_end(lc, 0, err);
        return;
    }
    ob_aws_target_t tgt = {.region = lc->org_region, .creds = lc->fleet};
    lc->w.call = ob_aws_send(lc->aws, &req, &tgt, on_org, lc, err, sizeof(err));
    if (!lc->w.call)
        watch_end(lc, 0, err);
}

static void watch_round(ob_timer_t *t, void *arg)
{
    (void)t;
    lc_t *lc = arg;
    if (!lc->leader || lc->stopping || lc->w.running)
        return;
    memset(&lc->w, 0, sizeof(lc->w));
    lc->w.running = 1;
    lc->w.listing = ob_watch_new(&lc->rules);
    watch_call(lc);
}

/* ---- the periodic verification ---- */

static uint64_t verify_period(const lc_t *lc)
{
    uint64_t i = (uint64_t)lc->cfg->verify_interval_ms;
    return i < VERIFY_ROUND_MAX_MS ? i : VERIFY_ROUND_MAX_MS;
}

static void verify_end(lc_t *lc, int ok, const char *why)
{
    if (!lc->v.running)
        return;
    lc->v.running = 0;
    probes_free(&lc->v.probes, &lc->v.nprobes);
    ob_verify_picks_free(&lc->v.picks);
    lc->st.verify_rounds++;
    lc->st.verify_last_ms = ob_time_wall_ms();
    if (!ok && !lc->stopping)
        ob_logkv(OB_LOG_WARN, "verify", "round failed", "reason", why, NULL);
    else if (lc->v.sent)
        ob_logf(OB_LOG_INFO, "verify", "round: %zu verifications sent%s", lc->v.sent,
                lc->cfg->verify_repair ? " (repair)" : "");
    if (ok) {
        if (lc->v.unverifiable && lc->v.unverifiable != lc->st.unverifiable)
            ob_logf(OB_LOG_WARN, "verify",
                    "%zu connected accounts cannot be verified: their records do not keep the "
                    "connection's request (connected before verification existed, or rebuilt "
                    "after the requests topic dropped it): onboard them again",
                    lc->v.unverifiable);
        lc->st.unverifiable = lc->v.unverifiable;
    }
    if (lc->leader && !lc->stopping)
        ob_timer_start(&lc->verify_timer, verify_period(lc));
}

static void verify_scan(lc_t *lc);
static int verify_ask(lc_t *lc, const char *acct, const char *key);

/* What the probe's record and the ledger say, for ob_verify_due. */
static ob_verify_seen_t seen_of(const lc_t *lc, const probe_t *p)
{
    char *const *f = p->fields;
    return (ob_verify_seen_t){.verify_at = f[5],
                              .verify_request = f[8],
                              .sent_ms = p->sent_ms,
                              .unconfirmed = p->sent_unconfirmed,
                              .lost_after_ms = 2 * (uint64_t)lc->cfg->lifecycle_lease_ttl_ms,
                              .sent_request = p->sent_request,
                              .sent_record_request = p->sent_record_request,
                              .record_request = f[9],
                              .repair_request = f[6],
                              .connected_request = f[7]};
}

/* Connected, with the connection's request to compare with, and due. */
static int verify_wanted(lc_t *lc, const probe_t *p, uint64_t now)
{
    char *const *f = p->fields;
    if (!f[0] || strcmp(f[0], OB_ST_STATUS_CONNECTED) != 0)
        return 0;
    if (!f[2] || !f[2][0]) {
        if (!lc->v.sending)
            lc->v.unverifiable++; /* nothing to compare the account with */
        return 0;
    }
    ob_verify_seen_t seen = seen_of(lc, p);
    return ob_verify_due(&seen, now, (uint64_t)lc->cfg->verify_interval_ms);
}

/* The chosen accounts' records (read again) are in: send their
 * verifications, and the round ends. */
static void verify_send(lc_t *lc)
{
    uint64_t now = (uint64_t)ob_time_wall_ms();
    for (size_t i = 0; i < lc->v.nprobes; i++) {
        probe_t *p = lc->v.probes[i];
        char **f = p->fields;
        if (!verify_wanted(lc, p, now))
            continue;
        char rid[OB_REQUEST_ID_LEN], why[512];
        if (p->sent_unconfirmed && p->sent_request[0]) {
            /* Its sender died before the broker had it: the same request
             * again, so that a copy that did get through is the same
             * verification (the same drift event, the same repair). */
            snprintf(rid, sizeof(rid), "%s", p->sent_request);
            lc->st.verify_resent++;
        } else {
            uint8_t rnd[8];
            char hex[17];
            ob_random_bytes(rnd, sizeof(rnd));
            ob_hex(rnd, sizeof(rnd), hex);
            snprintf(rid, sizeof(rid), "verify:%s", hex);
        }
        char *json = ob_verify_of_record(p->account, f[0], f[1], f[2], f[3], f[4], rid,
                                         lc->cfg->verify_repair, "onboard-lifecycle/verify", why,
                                         sizeof(why));
        if (!json) {
            ob_logkv(OB_LOG_WARN, "verify", "cannot verify", "account", p->account, "reason", why,
                     NULL);
            continue;
        }
        char sending[48 + 2 * OB_REQUEST_ID_LEN], sent[48 + 2 * OB_REQUEST_ID_LEN];
        snprintf(sent, sizeof(sent), "%" PRIu64 " %s %s sent", now, rid, f[9][0] ? f[9] : "-");
        snprintf(sending, sizeof(sending), "%" PRIu64 " %s %s sending", now, rid,
                 f[9][0] ? f[9] : "-");
        /* The ledger first: a verification is asked at most once an
         * interval, and not again before it is answered. */
        ob_redis_command(lc->redis, NULL, NULL, "HSET %s %s %s", OB_VERIFY_LEDGER_KEY, p->account,
                         sending);
        if (produce(lc, 1, 0, p->account, json, OB_SCHEMA_VERIFY, sent) == 0)
            lc->v.sent++;
        else /* not sent: due again next round, not after the answer wait */
            ob_redis_command(lc->redis, NULL, NULL, "HDEL %s %s", OB_VERIFY_LEDGER_KEY, p->account);
        free(json);
    }
    verify_end(lc, 1, NULL);
}

/* A page's records are in: the due ones are candidates (the round keeps
 * the stalest verify.max.per.round); after the last page, their records
 * are read again and their verifications sent. */
static void verify_page_done(lc_t *lc)
{
    uint64_t now = (uint64_t)ob_time_wall_ms();
    for (size_t i = 0; i < lc->v.nprobes; i++) {
        probe_t *p = lc->v.probes[i];
        if (verify_wanted(lc, p, now)) {
            ob_verify_seen_t seen = seen_of(lc, p);
            ob_verify_picks_offer(&lc->v.picks, p->account, ob_verify_last_ms(&seen));
        }
    }
    probes_free(&lc->v.probes, &lc->v.nprobes);
    lc->v.answered = 0;
    if (strcmp(lc->v.cursor, "0") != 0) {
        verify_scan(lc);
        return;
    }
    ob_verify_picks_sort(&lc->v.picks);
    lc->v.sending = 1;
    lc->v.probes = ob_calloc(lc->v.picks.n ? lc->v.picks.n : 1, sizeof(*lc->v.probes));
    for (size_t i = 0; i < lc->v.picks.n; i++) {
        char key[OB_STATE_KEY_LEN];
        ob_state_key(lc->v.picks.v[i].account, key, sizeof(key));
        if (verify_ask(lc, lc->v.picks.v[i].account, key) != 0)
            return;
    }
    if (lc->v.nprobes == 0)
        verify_send(lc);
}

static void on_verify_probe(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    (void)r;
    probe_t *p = arg;
    lc_t *lc = p->lc;
    p->answers++;
    if (!lc) {
        if (p->answers == 2)
            probe_free(p);
        return;
    }
    if (err != OB_OK || !reply || reply->type == REDIS_REPLY_ERROR) {
        verify_end(lc, 0, "Redis did not answer with the records"); /* frees p */
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == VERIFY_FIELDS) {
        for (int k = 0; k < VERIFY_FIELDS; k++)
            p->fields[k] = ob_strdup(reply->element[k]->str ? reply->element[k]->str : "");
    } else if (reply->type == REDIS_REPLY_STRING && reply->str) {
        unsigned long long ms = 0;
        char rid[OB_REQUEST_ID_LEN] = "", rec[OB_REQUEST_ID_LEN] = "", how[16] = "";
        if (sscanf(reply->str, "%llu %128s %128s %15s", &ms, rid, rec, how) >= 1) {
            p->sent_ms = ms;
            p->sent_unconfirmed = !strcmp(how, "sending");
            snprintf(p->sent_request, sizeof(p->sent_request), "%s", rid);
            snprintf(p->sent_record_request, sizeof(p->sent_record_request), "%s",
                     strcmp(rec, "-") ? rec : "");
        }
    }
    if (p->answers == 2 && ++lc->v.answered == lc->v.nprobes) {
        if (lc->v.sending)
            verify_send(lc);
        else
            verify_page_done(lc);
    }
}

/* Read an account's record and its ledger entry (on_verify_probe); -1
 * when Redis cannot be asked (the round is over). */
static int verify_ask(lc_t *lc, const char *acct, const char *key)
{
    probe_t *p = ob_calloc(1, sizeof(*p));
    p->lc = lc;
    snprintf(p->account, sizeof(p->account), "%s", acct);
    if (ob_redis_command(lc->redis, on_verify_probe, p,
                         "HMGET %s " OB_ST_STATUS " " OB_ST_IDEMPOTENCY_KEY " " OB_ST_CONNECTED_SPEC
                         " " OB_ST_STACK_ID " " OB_ST_ROLE_ARN " verify_at " OB_ST_REPAIR_REQUEST
                         " " OB_ST_CONNECTED_REQUEST " verify_request " OB_ST_REQUEST_ID,
                         key) != OB_OK) {
        free(p);
        verify_end(lc, 0, "Redis is not reachable");
        return -1;
    }
    if (ob_redis_command(lc->redis, on_verify_probe, p, "HGET %s %s", OB_VERIFY_LEDGER_KEY, acct) !=
        OB_OK) {
        p->answers++;
        p->lc = NULL;
        verify_end(lc, 0, "Redis is not reachable");
        return -1;
    }
    lc->v.probes[lc->v.nprobes++] = p;
    return 0;
}

static void on_verify_scan(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    (void)r;
    lc_t *lc = arg;
    if (!lc->v.running || !lc->v.scanning)
        return;
    lc->v.scanning = 0;
    if (err != OB_OK || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        verify_end(lc, 0, "Redis did not answer the scan of the records");
        return;
    }
    snprintf(lc->v.cursor, sizeof(lc->v.cursor), "%s", reply->element[0]->str);
    redisReply *keys = reply->element[1];
    lc->v.probes = ob_calloc(keys->elements ? keys->elements : 1, sizeof(*lc->v.probes));
    for (size_t i = 0; i < keys->elements; i++) {
        char acct[OB_STATE_KEY_LEN];
        if (ob_state_account_of(keys->element[i]->str, acct, sizeof(acct)) != 0 ||
            strlen(acct) >= OB_ACCOUNT_ID_LEN)
            continue;
        if (verify_ask(lc, acct, keys->element[i]->str) != 0)
            return;
    }
    if (lc->v.nprobes == 0)
        verify_page_done(lc);
}

static void verify_scan(lc_t *lc)
{
    if (!lc->leader) {
        verify_end(lc, 0, "the lease was lost");
        return;
    }
    lc->v.scanning = 1;
    if (ob_redis_command(lc->redis, on_verify_scan, lc,
                         "SCAN %s MATCH " OB_STATE_KEY_PATTERN " COUNT 1000",
                         lc->v.cursor) != OB_OK) {
        lc->v.scanning = 0;
        verify_end(lc, 0, "Redis is not reachable");
    }
}

static void verify_round(ob_timer_t *t, void *arg)
{
    (void)t;
    lc_t *lc = arg;
    if (!lc->leader || lc->stopping || lc->v.running)
        return;
    lc->v.running = 1;
    lc->v.sent = 0;
    lc->v.unverifiable = 0;
    lc->v.sending = 0;
    ob_verify_picks_init(&lc->v.picks, (size_t)lc->cfg->verify_max_per_round);
    lc->v.answered = 0;
    snprintf(lc->v.cursor, sizeof(lc->v.cursor), "0");
    verify_scan(lc);
}

/* ---- the lease ---- */

static void lead(lc_t *lc, int on)
{
    if (lc->leader == on)
        return;
    lc->leader = on;
    if (on) {
        lc->st.takeovers++;
        ob_logf(OB_LOG_INFO, "lifecycle", "took the lease (fence %" PRIu64 "): %s%s%s",
                ob_lock_fence(lc->lease),
                lc->cfg->watcher_interval_ms ? "watching the organization" : "",
                lc->cfg->watcher_interval_ms && lc->cfg->verify_interval_ms ? ", " : "",
                lc->cfg->verify_interval_ms ? "verifying connected accounts" : "");
        if (lc->cfg->watcher_interval_ms)
            ob_timer_start(&lc->watch_timer, 0);
        if (lc->cfg->verify_interval_ms)
            ob_timer_start(&lc->verify_timer, 0);
    } else {
        ob_timer_stop(&lc->watch_timer);
        ob_timer_stop(&lc->verify_timer);
        watch_end(lc, 0, "the lease was lost");
        verify_end(lc, 0, "the lease was lost");
    }
}

static void on_lease(ob_lock_t *l, ob_lock_event_t ev, uint64_t fence, long retry_ms, ob_err_t err,
                     void *arg)
{
    (void)fence;
    lc_t *lc = arg;
    long ttl = (long)lc->cfg->lifecycle_lease_ttl_ms, again = ttl / 3;
    switch (ev) {
    case OB_LOCK_ACQUIRED:
        ob_lock_prior_drop(l);
        lead(lc, 1);
        return;
    case OB_LOCK_BUSY:
        /* Someone holds it: look again when it would expire, or sooner. */
        if (retry_ms > 0 && retry_ms < again)
            again = retry_ms + 50;
        break;
    case OB_LOCK_ERROR:
        ob_logkv(OB_LOG_WARN, "lifecycle", "lease not taken", "reason", ob_err2str(err), NULL);
        again = 1000;
        break;
    case OB_LOCK_LOST:
        ob_logf(OB_LOG_WARN, "lifecycle", "lost the lease: standing by");
        lead(lc, 0);
        again = 1000;
        break;
    }
    ob_lock_release(l);
    lc->lease = NULL;
    if (!lc->stopping)
        ob_timer_start(&lc->lease_timer, (uint64_t)again);
}

static void lease_try(ob_timer_t *t, void *arg)
{
    (void)t;
    lc_t *lc = arg;
    if (lc->lease || lc->stopping)
        return;
    lc->lease = ob_lock_acquire(lc->redis, lc->loop, OB_LIFECYCLE_LEASE,
                                (long)lc->cfg->lifecycle_lease_ttl_ms, on_lease, lc);
    if (!lc->lease)
        ob_timer_start(&lc->lease_timer, 1000);
}

/* ---- metrics and probes ---- */

static void render_metrics(lc_t *lc, ob_buf_t *out)
{
    ob_metrics_t m;
    ob_metrics_begin(&m, out);
    const char *l_build[] = {"version", OB_VERSION, "stage", "lifecycle", NULL};
    ob_metrics_family(&m, "onboard_build_info", "gauge", "The worker's version and stage.");
    ob_metrics_sample(&m, "onboard_build_info", l_build, 1);
    ob_metrics_family(&m, "onboard_lifecycle_leader", "gauge",
                      "1 while this replica holds the lifecycle lease (the one that works).");
    ob_metrics_sample(&m, "onboard_lifecycle_leader", NULL, lc->leader);
    ob_metrics_family(&m, "onboard_lifecycle_takeovers_total", "counter",
                      "Times this replica took the lease.");
    ob_metrics_sample(&m, "onboard_lifecycle_takeovers_total", NULL, (double)lc->st.takeovers);
    ob_metrics_family(&m, "onboard_watcher_rounds_total", "counter",
                      "Listings of the organization, by result.");
    const char *l_ok[] = {"result", "ok", NULL}, *l_failed[] = {"result", "failed", NULL};
    ob_metrics_sample(&m, "onboard_watcher_rounds_total", l_ok, (double)lc->st.rounds_ok);
    ob_metrics_sample(&m, "onboard_watcher_rounds_total", l_failed, (double)lc->st.rounds_failed);
    ob_metrics_family(&m, "onboard_watcher_enqueued_total", "counter",
                      "Accounts the watcher enqueued (resent: a predecessor's send sent again).");
    const char *l_new[] = {"kind", "new", NULL}, *l_re[] = {"kind", "resent", NULL};
    ob_metrics_sample(&m, "onboard_watcher_enqueued_total", l_new,
                      (double)(lc->st.enqueued - lc->st.resent));
    ob_metrics_sample(&m, "onboard_watcher_enqueued_total", l_re, (double)lc->st.resent);
    ob_metrics_family(&m, "onboard_watcher_accounts", "gauge",
                      "The last listing's accounts: listed, active, excluded by the rules, "
                      "known to the fleet, and left for the next round by the cap.");
    const char *kinds[] = {"listed", "active", "excluded", "known", "backlog"};
    const size_t vals[] = {lc->st.listed, lc->st.active, lc->st.excluded, lc->st.known,
                           lc->st.backlog};
    for (int i = 0; i < 5; i++) {
        const char *l[] = {"state", kinds[i], NULL};
        ob_metrics_sample(&m, "onboard_watcher_accounts", l, (double)vals[i]);
    }
    ob_metrics_family(&m, "onboard_watcher_last_success_timestamp_seconds", "gauge",
                      "When the watcher last listed the organization completely (0: never).");
    ob_metrics_sample(&m, "onboard_watcher_last_success_timestamp_seconds", NULL,
                      (double)lc->st.last_ok_ms / 1000.0);
    ob_metrics_family(&m, "onboard_verify_scheduled_total", "counter",
                      "Periodic verifications, by result: sent (the broker has it), failed "
                      "(not sent: asked again next round), resent (a predecessor's that never "
                      "reached the broker, sent again).");
    const char *l_sent[] = {"result", "sent", NULL}, *l_nf[] = {"result", "failed", NULL},
               *l_vre[] = {"result", "resent", NULL};
    ob_metrics_sample(&m, "onboard_verify_scheduled_total", l_sent, (double)lc->st.verify_sent);
    ob_metrics_sample(&m, "onboard_verify_scheduled_total", l_nf, (double)lc->st.verify_failed);
    ob_metrics_sample(&m, "onboard_verify_scheduled_total", l_vre, (double)lc->st.verify_resent);
    ob_metrics_family(&m, "onboard_verify_unverifiable_accounts", "gauge",
                      "Connected accounts the last round could not verify: their records do not "
                      "keep the connection's request (onboard them again).");
    ob_metrics_sample(&m, "onboard_verify_unverifiable_accounts", NULL,
                      (double)lc->st.unverifiable);
    ob_metrics_family(&m, "onboard_verify_last_round_timestamp_seconds", "gauge",
                      "When the periodic verification last went through the records.");
    ob_metrics_sample(&m, "onboard_verify_last_round_timestamp_seconds", NULL,
                      (double)lc->st.verify_last_ms / 1000.0);
}

static void probe_metrics(void *arg, ob_buf_t *out)
{
    render_metrics(arg, out);
}

/* A standby is ready: it is what takes over. */
static int probe_ready(void *arg, char *why, size_t n)
{
    lc_t *lc = arg;
    int ok = ob_redis_connected(lc->redis);
    snprintf(why, n, "%s",
             !ok          ? "Redis is not reachable"
             : lc->leader ? "ready: holding the lease"
                          : "ready: standing by");
    return ok;
}

/* ---- the process ---- */

static void on_signal(ob_signal_t *s, int signo, void *arg)
{
    (void)s;
    lc_t *lc = arg;
    ob_logf(OB_LOG_INFO, "lifecycle", "signal %d: shutting down", signo);
    lc->stopping = 1;
    ob_loop_stop(lc->loop);
}

/* Where Organizations answers for the partition of lifecycle.region. */
static void org_region_of(const char *region, char *out, size_t n)
{
    const char *p = ob_region_partition(region[0] ? region : "us-east-1");
    snprintf(out, n, "%s",
             !strcmp(p, "aws-cn")       ? "cn-northwest-1"
             : !strcmp(p, "aws-us-gov") ? "us-gov-west-1"
                                        : "us-east-1");
}

static void lc_free(lc_t *lc)
{
    lc->stopping = 1;
    ob_timer_stop(&lc->lease_timer);
    ob_timer_stop(&lc->watch_timer);
    ob_timer_stop(&lc->verify_timer);
    watch_end(lc, 0, "shutting down");
    verify_end(lc, 0, "shutting down");
    if (lc->lease)
        ob_lock_release(lc->lease);
    lc->lease = NULL;
    ob_probes_free(lc->endpoints);
    ob_kproducer_free(lc->producer);
    ob_redis_free(lc->redis);
    ob_credsrc_unref(lc->fleet);
    ob_aws_free(lc->aws);
    ob_http_free(lc->http);
    ob_awsconfig_destroy(lc->awscfg);
    ob_signal_free(lc->signals);
    ob_lifecycle_rules_free(&lc->rules);
}

static int lc_start(lc_t *lc, char *err, size_t n)
{
    const ob_config_t *cfg = lc->cfg;
    if (ob_lifecycle_rules_load(cfg, &lc->rules, err, n) != OB_OK)
        return -1;
    if (cfg->watcher_interval_ms && !lc->rules.region[0]) {
        snprintf(err, n,
                 "watcher.interval is set but lifecycle.region is not: the watcher "
                 "cannot make requests (set lifecycle.region)");
        return -1;
    }
    org_region_of(lc->rules.region, lc->org_region, sizeof(lc->org_region));
    snprintf(lc->topic_requests, sizeof(lc->topic_requests), "%srequests", cfg->topic_prefix);
    snprintf(lc->topic_verify, sizeof(lc->topic_verify), "%sverify", cfg->topic_prefix);
    const int sigs[] = {SIGINT, SIGTERM};
    lc->signals = ob_signal_new(lc->loop, sigs, 2, on_signal, lc, err, n);
    if (!lc->signals)
        return -1;
    ob_http_opts_t ho = {.timeout_ms = (long)cfg->http_timeout_ms,
                         .connect_timeout_ms = (long)cfg->http_connect_timeout_ms,
                         .max_body = (size_t)cfg->http_max_body,
                         .max_connections = 8,
                         .max_transfers = 8};
    lc->http = ob_http_new(lc->loop, &ho, err, n);
    if (!lc->http || ob_awsconfig_load(NULL, NULL, &lc->awscfg, err, n) != OB_OK)
        return -1;
    ob_aws_opts_t ao = {.config = lc->awscfg,
                        .max_attempts = (int)cfg->aws_max_attempts,
                        .max_backoff_s = (double)cfg->aws_max_backoff_ms / 1000.0};
    lc->aws = ob_aws_new(lc->loop, lc->http, &ao, err, n);
    if (!lc->aws || !(lc->fleet = ob_credsrc_chain(lc->aws, err, n)))
        return -1;
    ob_redis_opts_t ro;
    ob_worker_redis_opts(cfg, &ro);
    lc->redis = ob_redis_new(lc->loop, &ro, err, n);
    if (!lc->redis)
        return -1;
    ob_kproducer_opts_t po = {.kafka = &cfg->kafka, .on_delivery = on_delivery, .arg = lc};
    lc->producer = ob_kproducer_new(lc->loop, &po, err, n);
    if (!lc->producer)
        return -1;
    if (cfg->metrics_port > 0) {
        lc->endpoints = ob_probes_new(lc->loop, cfg->metrics_bind, (int)cfg->metrics_port,
                                      "onboard-lifecycle", probe_metrics, probe_ready, lc, err, n);
        if (!lc->endpoints)
            return -1;
    }
    ob_timer_init(&lc->lease_timer, lc->loop, lease_try, lc);
    ob_timer_init(&lc->watch_timer, lc->loop, watch_round, lc);
    ob_timer_init(&lc->verify_timer, lc->loop, verify_round, lc);
    char wi[32], vi[32];
    snprintf(wi, sizeof(wi), "%lldms", cfg->watcher_interval_ms);
    snprintf(vi, sizeof(vi), "%lldms", cfg->verify_interval_ms);
    ob_logkv(OB_LOG_INFO, "lifecycle", "started", "watcher", cfg->watcher_interval_ms ? wi : "off",
             "verify", cfg->verify_interval_ms ? vi : "off", "organizations_region", lc->org_region,
             "credentials", ob_credsrc_describe(lc->fleet), NULL);
    if (!cfg->watcher_interval_ms && !cfg->verify_interval_ms)
        ob_logf(OB_LOG_WARN, "lifecycle",
                "watcher.interval and verify.interval are both 0: nothing to do (idle)");
    else
        ob_timer_start(&lc->lease_timer, 0);
    return 0;
}

int main(int argc, char **argv)
{
    char err[1024];
    ob_config_t cfg;
    int begun = ob_process_begin(argc, argv,
                                 "The fleet's lifecycle process: the organization watcher "
                                 "(watcher.*) and the\nperiodic verification (verify.*), on one "
                                 "replica at a time under a lease in\nRedis "
                                 "(lifecycle.lease.ttl).",
                                 "lifecycle", &cfg);
    if (begun >= 0)
        return begun;
    lc_t lc;
    memset(&lc, 0, sizeof(lc));
    lc.cfg = &cfg;
    lc.loop = ob_loop_new(err, sizeof(err));
    int rc = 0;
    if (!lc.loop || lc_start(&lc, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: cannot start: %s\n", argv[0], err);
        rc = lc.loop && !lc.rules.region[0] && cfg.watcher_interval_ms ? 2 : 1;
    } else {
        ob_loop_run(lc.loop);
        /* The lease goes first, so a standby takes over at once; then what
         * was produced reaches the broker (and the ledger says so). A request
         * not produced yet stays "sending": the new holder sends it again. */
        lc.stopping = 1;
        lc.leader = 0;
        if (lc.lease) {
            ob_lock_release(lc.lease);
            lc.lease = NULL;
        }
        ob_kproducer_flush(lc.producer, 10000);
        for (int i = 0; i < 20 && (lc.in_delivery || ob_redis_pending(lc.redis)); i++)
            ob_loop_run_once(lc.loop, 50);
        ob_logf(OB_LOG_INFO, "lifecycle",
                "stopped: %" PRIu64 " enqueued, %" PRIu64 " verifications sent", lc.st.enqueued,
                lc.st.verify_sent);
    }
    if (lc.loop) {
        lc_free(&lc);
        ob_loop_free(lc.loop);
    }
    ob_config_free(&cfg);
    return rc;
}
