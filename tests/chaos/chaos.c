/*
 * The chaos run: the four stage workers as separate processes against the
 * real Kafka broker, the real Redis and the AWS simulator (in this process),
 * onboarding a batch of accounts while things go wrong:
 *
 *   - the simulator throttles, fails (500) and resets a few percent of the
 *     calls to every API, and makes some stacks roll back once;
 *   - some requests name a role that does not exist, some a bucket name
 *     another account owns, a few are not even JSON;
 *   - each worker is killed with SIGKILL at random moments and restarted;
 *   - Redis is restarted once (append-only file on) and the Kafka broker once,
 *     and later FLUSHALL wipes everything Redis holds;
 *   - some accounts are enqueued twice (the same request again, as a second
 *     run of an enqueue sends it), and some get a second, conflicting request
 *     (another bucket) right after the first.
 *
 * Then it checks what an operator would: every account connected or in the
 * dead-letter topic with the reason the run meant it to have, none missing,
 * one connected event per account after deduplication (raw duplicates
 * printed; a conflicting account may have its first request's too, under
 * another key), each account's record in Redis naming its last event's
 * request and key (after onboardctl rebuild restored the records the flush
 * took, and onboardctl check found nothing else to disagree with), the
 * simulator holding each resource once (a conflicting account's report on
 * its second bucket) and nothing left behind for failed accounts; then it
 * repairs the world (creates the missing roles,
 * frees the taken names), replays the dead letters with onboardctl, and
 * checks that those accounts connect, and that a second replay does nothing.
 * Last, accounts join the organization (and its members nobody enqueued are
 * there too): two replicas of onboard-lifecycle watch it, one killed or the
 * other every few seconds and the intake once, Organizations throttling a
 * tenth of their calls; every such account must connect exactly once, by
 * its watcher:ACCOUNT request, and the management account (excluded) never.
 *
 *   ob-chaos --workers DIR --onboardctl PATH [--accounts N] [--seed S]
 *
 * Needs OB_TEST_KAFKA_BROKERS, OB_TEST_REDIS_PORT, OB_TEST_SERVICES_SCRIPT and
 * OB_TEST_SERVICES_DIR (scripts/services.sh env). Exit 0: all checks passed.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "ob_http.h"
#include "ob_kafka.h"
#include "ob_log.h"
#include "ob_redis.h"
#include "sim.h"
#include "testutil.h"

#define MGMT_ROOT "arn:aws:iam::111111111111:root"
#define NPOISON   5
#define JOIN_MAX  200 /* accounts joining the organization in phase 3, at most */
#define JOIN_LIVE 20  /* of them, those added while the watcher runs */

typedef enum want_e { W_CONNECT = 0, W_NOROLE, W_TAKEN } want_t;

typedef struct acct_s {
    char id[16];
    int existing;
    want_t want;
    int connected;     /* unique connected events seen */
    int dlq;           /* dead letters seen */
    json_t *event;     /* the first connected event */
    json_t *last;      /* the newest connected event */
    int repeat;        /* enqueued twice, the same request */
    int conflict;      /* a second request with another bucket */
    int second_seen;   /* that request's event is out */
    json_t *dead;      /* the newest dead letter */
    int replay_target; /* meant to fail, then replayed */
    /* A stage gave up on it (retries exhausted: a run of faults and kills
     * longer than its attempts): replayed in phase 2, as an operator does. */
    int exhausted;
    int joined; /* phase 3: joined the organization, enqueued by the watcher */
    /* phase 3: drifted by hand (1: role deleted, 2: report deleted), to be
     * found and repaired by the periodic verification; or offboarded */
    int drift;
    int offboard;
    int disconnected; /* unique disconnected events seen */
} acct_t;

static struct {
    const char *brokers;
    int redis_port;
    const char *svc_script, *svc_dir;
    const char *workers_dir, *ctl;
    char prefix[64];
    char sim_url[64];
    char logdir[256];
    int n;
    acct_t *a;
    json_t *by_id;      /* account -> index */
    json_t *seen_idem;  /* idempotency keys */
    json_t *poison_dlq; /* key -> record */
    int raw_connected, raw_disconnected;
    pid_t verify_pid;
    int kills, restarts_redis, restarts_kafka, flushes;
    int dups_shown;
    unsigned short rng[3];
    pid_t worker_pid[4];
    ob_loop_t *loop;
    sim_t *sim;
    int failures;
} G;

static const char *const STAGES[4] = {"bucket", "cur", "iam", "connect"};

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...)
{
    if (ok)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "CHECK FAILED: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    G.failures++;
}

/* A line of the run's figures: on stdout, and appended to
 * $OB_TEST_SERVICES_DIR/chaos-summary.txt, which scripts/test.sh prints (CTest
 * shows a passing test's output only when asked). */
static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
    char path[512];
    snprintf(path, sizeof(path), "%s/chaos-summary.txt", G.svc_dir ? G.svc_dir : "/tmp");
    FILE *f = fopen(path, "a");
    if (f) {
        va_start(ap, fmt);
        vfprintf(f, fmt, ap);
        va_end(ap);
        fclose(f);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- workers as processes ---- */

static void start_worker(int s)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "exec '%s/onboard-%s' >>'%s/%s.log' 2>&1", G.workers_dir, STAGES[s],
             G.logdir, STAGES[s]);
    G.worker_pid[s] = ob_test_sh_async(cmd);
}

static void reap_workers(void)
{
    for (int s = 0; s < 4; s++) {
        int st;
        if (G.worker_pid[s] > 0 && ob_test_exited(G.worker_pid[s], &st)) {
            fprintf(stderr, "chaos: worker %s exited on its own (status %d); restarting\n",
                    STAGES[s], st);
            check(0, "worker %s exited without being killed (status %d)", STAGES[s], st);
            start_worker(s);
        }
    }
}

/* ---- the auditor: connected events and dead letters ---- */

static acct_t *find(const char *id)
{
    json_t *i = json_object_get(G.by_id, id);
    return i ? &G.a[json_integer_value(i)] : NULL;
}

static void on_out(ob_kconsumer_t *c, const rd_kafka_message_t *m, void *arg)
{
    const char *t = rd_kafka_topic_name(m->rkt) + strlen(G.prefix);
    json_t *j = json_loadb(m->payload, m->len, 0, NULL);
    char key[128];
    snprintf(key, sizeof(key), "%.*s", (int)(m->key_len < 100 ? m->key_len : 100),
             m->key ? (const char *)m->key : "");
    const char *schema = json_string_value(json_object_get(j, "schema"));
    if (!strcmp(t, "connected") && schema && !strncmp(schema, "onboard.disconnected/", 21)) {
        G.raw_disconnected++;
        const char *k = json_string_value(json_object_get(j, "idempotency_key"));
        acct_t *a = find(json_string_value(json_object_get(j, "account_id")));
        check(k && a && a->offboard, "a disconnected event of an account not offboarded: %.200s",
              (const char *)m->payload);
        if (k && a && !json_object_get(G.seen_idem, k)) {
            json_object_set_new(G.seen_idem, k, json_integer(1));
            a->disconnected++;
        }
    } else if (!strcmp(t, "connected")) {
        G.raw_connected++;
        const char *k = json_string_value(json_object_get(j, "idempotency_key"));
        acct_t *a = find(json_string_value(json_object_get(j, "account_id")));
        check(k && a, "connected event without a known account or key: %.200s",
              (const char *)m->payload);
        if (k && a && !json_object_get(G.seen_idem, k)) {
            json_object_set_new(G.seen_idem, k, json_integer(1));
            a->connected++;
            if (!a->event)
                a->event = json_incref(j);
        } else if (k && a) {
            /* A raw duplicate: which account, which request, where on the topic. */
            json_int_t n = json_integer_value(json_object_get(G.seen_idem, k)) + 1;
            json_object_set_new(G.seen_idem, k, json_integer(n));
            if (G.dups_shown++ < 10)
                fprintf(stderr,
                        "chaos: a raw duplicate: account %s request %s, partition %d offset "
                        "%lld (copy %lld of its key)\n",
                        a->id, json_string_value(json_object_get(j, "request_id")),
                        (int)m->partition, (long long)m->offset, (long long)n);
        }
        if (k && a) {
            json_decref(a->last);
            a->last = json_incref(j);
            char second[64];
            snprintf(second, sizeof(second), "chaos-second-%s", a->id);
            const char *b =
                json_string_value(json_object_get(json_object_get(j, "report"), "bucket"));
            if (a->conflict && b && !strcmp(b, second))
                a->second_seen = 1;
        }
    } else {
        acct_t *a = find(key);
        if (a) {
            a->dlq++;
            json_decref(a->dead);
            a->dead = json_incref(j);
            const char *cls =
                json_string_value(json_object_get(json_object_get(j, "error"), "class"));
            if (a->want == W_CONNECT && !a->connected && cls && !strcmp(cls, "retries_exhausted"))
                a->exhausted = 1;
        } else {
            json_object_set(G.poison_dlq, key, j ? j : json_null());
        }
    }
    json_decref(j);
    ob_kconsumer_store(c, rd_kafka_topic_name(m->rkt), m->partition, m->offset + 1);
}

static int settled(const acct_t *a)
{
    if (a->exhausted && !a->replay_target)
        return 1; /* settled for now: phase 2 replays it */
    if (a->conflict)
        return a->second_seen;
    return a->want == W_CONNECT || a->replay_target == 2 ? a->connected > 0 : a->dlq > 0;
}

static int all_settled(void *arg)
{
    (void)arg;
    reap_workers();
    for (int i = 0; i < G.n; i++)
        if (!settled(&G.a[i]))
            return 0;
    return json_object_size(G.poison_dlq) >= NPOISON;
}

static int count_settled(void)
{
    int n = 0;
    for (int i = 0; i < G.n; i++)
        n += settled(&G.a[i]);
    return n;
}

/* ---- requests ---- */

static void enqueue(void)
{
    ob_cfg_kv_t kv = {0};
    ob_test_kafka_defaults(&kv, G.brokers);
    ob_kproducer_opts_t po = {.kafka = &kv};
    char err[256];
    ob_kproducer_t *p = ob_kproducer_new(G.loop, &po, err, sizeof(err));
    if (!p) {
        fprintf(stderr, "chaos: producer: %s\n", err);
        exit(1);
    }
    char topic[128], body[1024];
    snprintf(topic, sizeof(topic), "%srequests", G.prefix);
    for (int i = 0; i < G.n; i++) {
        acct_t *a = &G.a[i];
        char bucket[128] = "";
        if (a->want == W_TAKEN)
            snprintf(bucket, sizeof(bucket), ",\"bucket\":{\"name\":\"chaos-taken-%s\"}", a->id);
        snprintf(body, sizeof(body),
                 "{\"schema\":\"onboard.request/1\",\"request_id\":\"%sreq-%d\",\"account_id\":"
                 "\"%s\",\"cloud\":\"aws\",\"mode\":\"%s\",\"region\":\"%s\",\"role_arn\":"
                 "\"arn:aws:iam::%s:role/%s\"%s}",
                 G.prefix, i, a->id, a->existing ? "existing" : "new",
                 i % 3 ? "us-east-1" : "eu-west-1", a->id,
                 a->want == W_NOROLE ? "ChaosMissingRole" : "OrganizationAccountAccessRole",
                 bucket);
        while (ob_kproducer_send(p, topic, RD_KAFKA_PARTITION_UA, a->id, strlen(a->id), body,
                                 strlen(body), NULL, NULL, NULL, 0) != OB_OK)
            ob_loop_run_once(G.loop, 20);
    }
    /* The same request again, and conflicting ones: right behind the batch. */
    for (int i = 0; i < G.n; i++) {
        acct_t *a = &G.a[i];
        if (!a->repeat && !a->conflict)
            continue;
        char bucket[128] = "";
        if (a->conflict)
            snprintf(bucket, sizeof(bucket), ",\"bucket\":{\"name\":\"chaos-second-%s\"}", a->id);
        snprintf(body, sizeof(body),
                 "{\"schema\":\"onboard.request/1\",\"request_id\":\"%sreq2-%d\",\"account_id\":"
                 "\"%s\",\"cloud\":\"aws\",\"mode\":\"%s\",\"region\":\"%s\",\"role_arn\":"
                 "\"arn:aws:iam::%s:role/OrganizationAccountAccessRole\"%s}",
                 G.prefix, i, a->id, a->existing ? "existing" : "new",
                 i % 3 ? "us-east-1" : "eu-west-1", a->id, bucket);
        while (ob_kproducer_send(p, topic, RD_KAFKA_PARTITION_UA, a->id, strlen(a->id), body,
                                 strlen(body), NULL, NULL, NULL, 0) != OB_OK)
            ob_loop_run_once(G.loop, 20);
    }
    for (int k = 0; k < NPOISON; k++) {
        char key[32];
        snprintf(key, sizeof(key), "poison-%d", k);
        const char *bad[] = {"{\"schema\":\"onboard.request/1\",\"account_id\":\"oops",
                             "\xff\xfe not json", "[]", "{\"schema\":\"onboard.request/9\"}",
                             "{\"schema\":\"onboard.request/1\",\"account_id\":\"123\"}"};
        ob_kproducer_send(p, topic, RD_KAFKA_PARTITION_UA, key, strlen(key), bad[k], strlen(bad[k]),
                          NULL, NULL, NULL, 0);
    }
    if (ob_kproducer_flush(p, 60000) != OB_OK) {
        fprintf(stderr, "chaos: could not enqueue the batch\n");
        exit(1);
    }
    ob_kproducer_free(p);
    ob_cfg_kv_free(&kv);
}

/* ---- chaos ---- */

typedef struct chaos_s {
    double t0;
    double next_kill;
    int killed_stage; /* -1 none */
    double restart_at;
    pid_t svc; /* a services.sh restart in progress */
    int kafka_done, redis_done, flush_done;
    double svc_started;
    int max_kills;
    int killed[4]; /* kills per worker */
} chaos_t;

static int chaos_step(void *arg)
{
    chaos_t *c = arg;
    double t = now_s() - c->t0;
    if (c->killed_stage >= 0 && t >= c->restart_at) {
        start_worker(c->killed_stage);
        c->killed_stage = -1;
    }
    if (c->killed_stage < 0 && t >= c->next_kill && G.kills < c->max_kills) {
        /* Every worker is killed at least once; after that, any of them. */
        int s = (int)(erand48(G.rng) * 4) % 4;
        for (int k = 0; k < 4; k++) {
            if (!c->killed[(s + k) % 4]) {
                s = (s + k) % 4;
                break;
            }
        }
        if (G.worker_pid[s] > 0) {
            kill(G.worker_pid[s], SIGKILL);
            int st;
            waitpid(G.worker_pid[s], &st, 0);
            G.worker_pid[s] = -1;
            G.kills++;
            c->killed[s]++;
            c->killed_stage = s;
            c->restart_at = t + 0.3 + erand48(G.rng) * 2.0;
            fprintf(stderr, "chaos: %5.1fs SIGKILL %s (%d settled)\n", t, STAGES[s],
                    count_settled());
        }
        c->next_kill = t + 1.0 + erand48(G.rng) * 2.5;
    }
    int st;
    if (c->svc > 0 && ob_test_exited(c->svc, &st)) {
        fprintf(stderr, "chaos: %5.1fs restart done in %.1fs (status %d)\n", t,
                now_s() - c->svc_started, st);
        check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a service restart failed (status %d)", st);
        c->svc = 0;
    }
    if (c->svc == 0 && !c->kafka_done && t >= 6) {
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "'%s' restart-kafka '%s' >>'%s/services.log' 2>&1", G.svc_script,
                 G.svc_dir, G.logdir);
        fprintf(stderr, "chaos: %5.1fs restarting the Kafka broker (%d settled)\n", t,
                count_settled());
        c->svc = ob_test_sh_async(cmd);
        c->svc_started = now_s();
        c->kafka_done = 1;
        G.restarts_kafka++;
    } else if (c->svc == 0 && c->kafka_done && !c->redis_done && t >= 14) {
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "'%s' restart-redis '%s' >>'%s/services.log' 2>&1", G.svc_script,
                 G.svc_dir, G.logdir);
        fprintf(stderr, "chaos: %5.1fs restarting Redis (%d settled)\n", t, count_settled());
        c->svc = ob_test_sh_async(cmd);
        c->svc_started = now_s();
        c->redis_done = 1;
        G.restarts_redis++;
    }
    if (c->svc == 0 && c->redis_done && !c->flush_done && count_settled() >= G.n / 3) {
        /* A third of the accounts done, Redis loses everything: records,
         * locks, fences, rates. */
        redisContext *rc = redisConnect("127.0.0.1", G.redis_port);
        redisReply *r = rc && !rc->err ? redisCommand(rc, "FLUSHALL") : NULL;
        if (r) {
            fprintf(stderr, "chaos: %5.1fs FLUSHALL (%d settled)\n", t, count_settled());
            c->flush_done = 1;
            G.flushes++;
        }
        freeReplyObject(r);
        if (rc)
            redisFree(rc);
    }
    return all_settled(NULL) && c->svc == 0 && c->killed_stage < 0 && c->flush_done &&
           c->killed[0] && c->killed[1] && c->killed[2] && c->killed[3];
}

/* ---- Redis and the simulator's admin API ---- */

typedef struct hq_s {
    int done;
    json_t *out;
} hq_t;

static void on_hgetall(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    hq_t *q = arg;
    q->done = 1;
    q->out = json_object();
    if (err != OB_OK || !reply || reply->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < reply->elements; i += 2)
        json_object_set_new(q->out, reply->element[i]->str,
                            json_string(reply->element[i + 1]->str));
}

static int hq_done(void *arg)
{
    return ((hq_t *)arg)->done;
}

static json_t *state_of(ob_redis_t *r, const char *acct)
{
    char key[64];
    snprintf(key, sizeof(key), "ob:{%s}:state", acct);
    hq_t q = {0, NULL};
    ob_redis_command(r, on_hgetall, &q, "HGETALL %s", key);
    ob_test_run_until(G.loop, hq_done, &q, 10000);
    return q.out ? q.out : json_object();
}

typedef struct post_s {
    int done;
    long status;
    json_t *body;
} post_t;

static void on_post(ob_http_resp_t *r, void *arg)
{
    post_t *p = arg;
    p->done = 1;
    p->status = r->status;
    ob_buf_t b = {0};
    ob_http_resp_take_body(r, &b);
    p->body = b.len ? json_loadb((const char *)b.data, b.len, 0, NULL) : NULL;
    ob_buf_free(&b);
}

static int post_done(void *arg)
{
    return ((post_t *)arg)->done;
}

static long admin(ob_http_t *http, const char *method, const char *path, const char *body,
                  json_t **reply)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", G.sim_url, path);
    ob_http_req_t req = {
        .method = method, .url = url, .body = body, .body_len = body ? strlen(body) : 0};
    post_t p = {0, 0, NULL};
    if (!ob_http_send(http, &req, on_post, &p, NULL, 0))
        return -1;
    ob_test_run_until(G.loop, post_done, &p, 10000);
    if (reply)
        *reply = p.body;
    else
        json_decref(p.body);
    return p.status;
}

/* Run onboardctl (the loop keeps serving the simulator meanwhile). */
static int run_ctl(const char *args, const char *out)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "'%s' %s >'%s' 2>>'%s/onboardctl.log'", G.ctl, args, out, G.logdir);
    pid_t pid = ob_test_sh_async(cmd);
    int code = 0;
    /* A deadline in time, not in loop turns: a busy loop (the simulator
     * serving the workers) turns far more often than every 50 ms. */
    double end = now_s() + 120;
    while (!ob_test_exited(pid, &code)) {
        if (now_s() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            fprintf(stderr, "chaos: onboardctl %s did not finish within 120 s\n", args);
            return -1;
        }
        ob_loop_run_once(G.loop, 50);
    }
    return code; /* ob_test_exited gives the exit code (128: killed) */
}

static json_t *last_json_line(const char *path)
{
    char *text = ob_test_read_file(path, NULL);
    if (!text)
        return NULL;
    char *last = NULL;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        last = line;
    json_t *j = last ? json_loads(last, 0, NULL) : NULL;
    free(text);
    return j;
}

/* ---- checks ---- */

/* A string member of a state or record, "" when absent. */
static const char *str(const json_t *o, const char *f)
{
    const char *v = json_string_value(json_object_get(o, f));
    return v ? v : "";
}

static const char *err_field(const json_t *d, const char *f)
{
    const char *v = json_string_value(json_object_get(json_object_get(d, "error"), f));
    return v ? v : "";
}

static int live_stacks(json_t *stacks, const char *acct)
{
    int live = 0;
    const char *sid;
    json_t *st;
    json_object_foreach(stacks, sid, st)
    {
        const char *status = json_string_value(json_object_get(st, "StackStatus"));
        if (strstr(sid, acct) && status && strcmp(status, "DELETE_COMPLETE") != 0)
            live++;
    }
    return live;
}

static void check_connected(acct_t *a, json_t *state, int i)
{
    /* A conflicting account may have had its first request announced before
     * the second replaced it: under another key. */
    check(a->connected == 1 || (a->conflict && a->connected == 2),
          "%s: %d distinct connected events", a->id, a->connected);
    check(!strcmp(str(state, "status"), "connected"), "%s: Redis status %s, want connected", a->id,
          json_string_value(json_object_get(state, "status")));
    /* The record names the account's last event: its key, its request. */
    check(a->last && !strcmp(str(state, "idempotency_key"), str(a->last, "idempotency_key")) &&
              !strcmp(str(state, "connected_request"), str(a->last, "request_id")),
          "%s: the record says key %.16s by %s; the last event is %.16s by %s", a->id,
          str(state, "idempotency_key"), str(state, "connected_request"),
          str(a->last, "idempotency_key"), str(a->last, "request_id"));
    /* And the connection's request, what verification compares it with
     * (rebuilt from the requests topic where Redis lost it). */
    check(str(state, "connected_spec")[0] != '\0', "%s: the record keeps no connection's request",
          a->id);
    if (!a->event)
        return;
    const char *ext = json_string_value(json_object_get(a->event, "external_id"));
    const char *role_arn = json_string_value(json_object_get(a->event, "role_arn"));
    char racct[13], rname[128];
    check(role_arn && sim_parse_role_arn(role_arn, racct, rname, sizeof(rname)) == 0 &&
              !strcmp(racct, a->id),
          "%s: the event's role %s", a->id, role_arn ? role_arn : "(none)");
    json_t *role = role_arn ? sim_get_role(G.sim, a->id, rname) : NULL;
    char *trust = role ? json_dumps(json_object_get(role, "AssumeRolePolicyDocument"), 0) : NULL;
    check(trust && ext && strstr(trust, ext) && strstr(trust, MGMT_ROOT),
          "%s: the role does not trust the Billing Engine with the event's ExternalId", a->id);
    free(trust);
    check(live_stacks(sim_section(G.sim, "stacks"), a->id) == 1, "%s: %d live stacks", a->id,
          live_stacks(sim_section(G.sim, "stacks"), a->id));
    json_t *reports = json_object_get(sim_section(G.sim, "reports"), a->id);
    if (a->existing) {
        /* The report it had, and no other; the event names it. */
        check(json_object_size(reports) == 1 && json_object_get(reports, "their-own-cur"),
              "%s: an existing account's reports changed (%zu)", a->id, json_object_size(reports));
        check(a->last && !strcmp(str(json_object_get(a->last, "report"), "name"), "their-own-cur"),
              "%s: the event does not name the account's own report", a->id);
        return;
    }
    check(json_object_size(reports) == 1, "%s: %zu reports", a->id, json_object_size(reports));
    char name[96];
    if (a->want == W_TAKEN)
        snprintf(name, sizeof(name), "chaos-taken-%s", a->id);
    else if (a->conflict)
        snprintf(name, sizeof(name), "chaos-second-%s", a->id);
    else
        snprintf(name, sizeof(name), "billing-cur-%s-%s", a->id, i % 3 ? "us-east-1" : "eu-west-1");
    const char *on = json_string_value(
        json_object_get(json_object_get(reports, "billing-engine-cur"), "S3Bucket"));
    check(on && !strcmp(on, name), "%s: the report delivers to %s, want %s", a->id,
          on ? on : "(none)", name);
    json_t *b = json_object_get(sim_section(G.sim, "buckets"), name);
    check(b && !strcmp(str(b, "owner"), a->id) && json_object_get(b, "policy"),
          "%s: bucket %s missing, not its own, or without its policy", a->id, name);
}

static void check_failed(acct_t *a, json_t *state)
{
    check(a->connected == 0, "%s: connected, but it was meant to fail", a->id);
    check(a->dead != NULL, "%s: no dead letter", a->id);
    if (!a->dead)
        return;
    const char *stage = json_string_value(json_object_get(a->dead, "stage"));
    const char *code = err_field(a->dead, "code"), *msg = err_field(a->dead, "message");
    if (a->want == W_TAKEN) {
        check(!strcmp(stage, "bucket") && !strcmp(code, "BucketAlreadyExists"),
              "%s: dead letter %s/%s, want bucket/BucketAlreadyExists", a->id, stage, code);
    } else {
        /* The intake is the first to use the role: it creates a new
         * account's bucket, and reads an existing account's report. */
        check(!strcmp(stage, "bucket") && strstr(msg, "ChaosMissingRole") &&
                  !strcmp(code, "AccessDenied") &&
                  !strcmp(err_field(a->dead, "class"), "permanent"),
              "%s: dead letter %s/%s (%s), want bucket/permanent naming the role", a->id, stage,
              code, msg);
    }
    check(!strcmp(str(state, "status"), "failed") && !strcmp(str(state, "error_code"), code),
          "%s: Redis state %s/%s, want failed/%s", a->id,
          json_string_value(json_object_get(state, "status")),
          json_string_value(json_object_get(state, "error_code")), code);
    check(live_stacks(sim_section(G.sim, "stacks"), a->id) == 0,
          "%s: a stack left behind for a failed account", a->id);
    check(!json_object_get(sim_section(G.sim, "reports"), a->id) ||
              (a->existing &&
               json_object_size(json_object_get(sim_section(G.sim, "reports"), a->id)) == 1),
          "%s: a report left behind", a->id);
}

/* ---- secrets in logs ---- */

static int secret_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/' || c == '=';
}

/* Every run of secret-looking characters in the workers' and onboardctl's
 * logs, looked up among the secrets of the run (the fleet's secret key,
 * every session secret and token the simulator issued, every ExternalId);
 * returns how many lines leak one. */
static int scan_logs(json_t *secrets, size_t *bytes)
{
    static const char *const files[] = {"bucket.log", "cur.log", "iam.log", "connect.log",
                                        "onboardctl.log"};
    int leaks = 0;
    *bytes = 0;
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", G.logdir, files[f]);
        size_t len = 0;
        char *text = ob_test_read_file(path, &len);
        if (!text)
            continue;
        *bytes += len;
        for (size_t i = 0; i < len;) {
            if (!secret_char((unsigned char)text[i])) {
                i++;
                continue;
            }
            size_t j = i;
            while (j < len && secret_char((unsigned char)text[j]))
                j++;
            if (j - i >= 16) {
                char save = text[j];
                text[j] = '\0';
                if (json_object_get(secrets, text + i)) {
                    leaks++;
                    fprintf(stderr, "chaos: %s leaks a secret (%.6s...)\n", files[f], text + i);
                }
                text[j] = save;
            }
            i = j;
        }
        free(text);
    }
    return leaks;
}

/* ---- main ---- */

/* ---- phase 3: accounts joining, onboarded by the watcher ---- */

static pid_t start_lifecycle(int replica)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "OB_WATCHER_INTERVAL=1s OB_WATCHER_MAX_PER_INTERVAL=25 OB_LIFECYCLE_LEASE_TTL=2s "
             "OB_VERIFY_INTERVAL=4s OB_VERIFY_REPAIR=true OB_VERIFY_MAX_PER_ROUND=300 "
             "OB_LIFECYCLE_REGION=us-east-1 OB_LIFECYCLE_EXCLUDE_ACCOUNTS=111111111111 "
             "exec '%s/onboard-lifecycle' >>'%s/lifecycle-%d.log' 2>&1",
             G.workers_dir, G.logdir, replica);
    return ob_test_sh_async(cmd);
}

/* An account that joined: the watcher must connect it (room made in G.a). */
static void add_joined(const char *id)
{
    acct_t *a = &G.a[G.n];
    memset(a, 0, sizeof(*a));
    snprintf(a->id, sizeof(a->id), "%s", id);
    a->want = W_CONNECT;
    a->joined = 1;
    json_object_set_new(G.by_id, a->id, json_integer(G.n));
    G.n++;
}

/* Every member of the organization the fleet does not know yet (those
 * made for the run and never enqueued) is a joined account to expect. */
static int expect_unknown_members(int limit)
{
    int added = 0;
    const char *id;
    json_t *acct;
    json_object_foreach(sim_section(G.sim, "accounts"), id, acct)
    {
        const char *state = json_string_value(json_object_get(acct, "State"));
        if (find(id) || !strcmp(id, "111111111111") || !state || strcmp(state, "ACTIVE") != 0 ||
            G.n >= limit)
            continue;
        add_joined(id);
        added++;
    }
    return added;
}

/* Whether every drifted account of the batch shows its repair connected. */
static int all_repaired_seen(int batch, ob_redis_t *redis)
{
    for (int i = 0; i < batch; i++) {
        acct_t *a = &G.a[i];
        if (!a->drift)
            continue;
        json_t *st = state_of(redis, a->id);
        int ok = !strncmp(str(st, "request_id"), "repair:", 7) &&
                 !strcmp(str(st, "status"), "connected");
        json_decref(st);
        if (!ok)
            return 0;
    }
    return 1;
}

static void phase_join(ob_http_t *http, ob_redis_t *redis)
{
    int before = G.n, batch = G.n;
    /* The organization's members nobody enqueued are onboarded too: the
     * watcher does not know what the operator meant. */
    int idle_members = expect_unknown_members(batch + JOIN_MAX - JOIN_LIVE);
    check(admin(http, "POST", "/_sim/config",
                "{\"faults\": {\"organizations.*\": \"throttle:0.1\", \"*\": \"500:0.01\"}}",
                NULL) == 200,
          "faults for phase 3");
    /* Among the connected accounts: some drift by hand (the periodic
     * verification finds and repairs them), some are offboarded. */
    int n_drift = 0, n_off = 0;
    char off_args[4096];
    int off_len = snprintf(off_args, sizeof(off_args), "offboard --region us-east-1");
    for (int i = 0; i < batch && (n_drift < 10 || n_off < 10); i++) {
        acct_t *a = &G.a[i];
        if (a->want != W_CONNECT || a->existing || a->conflict || a->exhausted || i % 3 == 0 ||
            a->connected != 1)
            continue;
        char body[256];
        if (n_drift < 10) {
            a->drift = n_drift % 2 ? 2 : 1;
            snprintf(body, sizeof(body),
                     a->drift == 1 ? "{\"Account\":\"%s\",\"Kind\":\"delete_role\","
                                     "\"RoleName\":\"billing-engine-access\"}"
                                   : "{\"Account\":\"%s\",\"Kind\":\"delete_report\","
                                     "\"ReportName\":\"billing-engine-cur\"}",
                     a->id);
            check(admin(http, "POST", "/_sim/drift", body, NULL) == 200, "drifting %s", a->id);
            n_drift++;
        } else {
            a->offboard = 1;
            off_len +=
                snprintf(off_args + off_len, sizeof(off_args) - (size_t)off_len, " %s", a->id);
            n_off++;
        }
    }
    char vcmd[1024];
    snprintf(vcmd, sizeof(vcmd), "exec '%s/onboard-verify' >>'%s/verify.log' 2>&1", G.workers_dir,
             G.logdir);
    G.verify_pid = ob_test_sh_async(vcmd);
    pid_t lc[2] = {start_lifecycle(0), start_lifecycle(1)};
    char out[512];
    snprintf(out, sizeof(out), "%s/offboard.out", G.logdir);
    check(run_ctl(off_args, out) == 0, "onboardctl %s failed", off_args);
    double t0 = now_s(), next_join = t0 + 1, next_kill = t0 + 2.5, last_progress = t0;
    int joined_live = 0, lc_kills = 0, worker_kill = 0;
    while (now_s() - t0 < 300) {
        ob_loop_run_once(G.loop, 100);
        reap_workers();
        double t = now_s();
        if (joined_live < JOIN_LIVE && t >= next_join) {
            char body[128];
            snprintf(body, sizeof(body), "{\"Name\": \"joined-%d\"}", joined_live);
            json_t *ans = NULL;
            check(admin(http, "POST", "/_sim/accounts", body, &ans) == 200, "adding %s", body);
            const char *id =
                json_string_value(json_object_get(json_object_get(ans, "account"), "Id"));
            if (id && G.n < batch + JOIN_MAX)
                add_joined(id);
            json_decref(ans);
            joined_live++;
            next_join = t + 0.3 + erand48(G.rng) * 0.7;
        }
        if (lc_kills < 6 && t >= next_kill) {
            /* Either replica, working or standing by; back after a while. */
            int r = (int)(erand48(G.rng) * 2) % 2;
            kill(lc[r], SIGKILL);
            waitpid(lc[r], NULL, 0);
            lc_kills++;
            fprintf(stderr, "chaos: phase 3: %5.1fs SIGKILL lifecycle replica %d\n", t - t0, r);
            lc[r] = start_lifecycle(r);
            next_kill = t + 1.5 + erand48(G.rng) * 2.5;
        }
        if (worker_kill < 3 && t - t0 > 4 + 3 * worker_kill) {
            /* The intake, iam and the verify worker, once each. */
            pid_t *pid = worker_kill == 0   ? &G.worker_pid[0]
                         : worker_kill == 1 ? &G.worker_pid[2]
                                            : &G.verify_pid;
            if (*pid > 0) {
                kill(*pid, SIGKILL);
                waitpid(*pid, NULL, 0);
            }
            if (worker_kill < 2)
                start_worker(worker_kill == 0 ? 0 : 2);
            else
                G.verify_pid = ob_test_sh_async(vcmd);
            worker_kill++;
        }
        int done = joined_live == JOIN_LIVE && lc_kills == 6 && worker_kill == 3;
        /* Repaired is what must happen; verified in sync after the repair is
         * waited for a minute past everything else, then counted. */
        int insync_wait = t - last_progress < 60;
        for (int i = before; done && i < G.n; i++)
            done = G.a[i].connected > 0;
        for (int i = 0; done && i < batch; i++) {
            acct_t *a = &G.a[i];
            if (a->offboard)
                done = a->disconnected > 0;
            else if (a->drift) {
                json_t *st = state_of(redis, a->id);
                done = !strncmp(str(st, "request_id"), "repair:", 7) &&
                       !strcmp(str(st, "status"), "connected") &&
                       (!insync_wait || !strcmp(str(st, "drift_status"), "in_sync"));
                json_decref(st);
            }
        }
        if (done)
            break;
        if (!all_repaired_seen(batch, redis))
            last_progress = t;
    }
    for (int i = 0; i < 30; i++) /* late duplicates */
        ob_loop_run_once(G.loop, 100);
    double took = now_s() - t0;
    int connected = 0, twice = 0;
    for (int i = before; i < G.n; i++) {
        acct_t *a = &G.a[i];
        connected += a->connected > 0;
        twice += a->connected > 1;
        check(a->connected == 1, "joined account %s: %d connections", a->id, a->connected);
        json_t *state = state_of(redis, a->id);
        const char *rid = str(state, "connected_request");
        check(!strncmp(rid, "watcher:", 8) && !strcmp(rid + 8, a->id),
              "joined account %s: connected by %s, not watcher:%s", a->id, rid, a->id);
        json_decref(state);
    }
    int n_repaired = 0, n_disconnected = 0, n_insync = 0;
    json_t *stacks = sim_section(G.sim, "stacks");
    for (int i = 0; i < batch; i++) {
        acct_t *a = &G.a[i];
        if (!a->drift && !a->offboard)
            continue;
        json_t *st = state_of(redis, a->id);
        if (a->drift) {
            /* Repaired in place: the same connection, no second event, and
             * what was deleted by hand is back. */
            int ok = !strncmp(str(st, "request_id"), "repair:", 7) &&
                     !strcmp(str(st, "status"), "connected");
            int back = a->drift == 1
                           ? sim_get_role(G.sim, a->id, "billing-engine-access") != NULL
                           : json_object_get(json_object_get(sim_section(G.sim, "reports"), a->id),
                                             "billing-engine-cur") != NULL;
            check(ok && back, "drifted account %s: request %s, status %s, %s %s", a->id,
                  str(st, "request_id"), str(st, "status"), a->drift == 1 ? "role" : "report",
                  back ? "back" : "still missing");
            check(a->connected == 1, "drifted account %s: %d connections", a->id, a->connected);
            n_repaired += ok && back;
            n_insync += !strcmp(str(st, "drift_status"), "in_sync");
        } else {
            int ok = a->disconnected == 1 && !strcmp(str(st, "status"), "disconnected") &&
                     live_stacks(stacks, a->id) == 0;
            check(ok, "offboarded account %s: %d disconnected events, status %s, %d stacks", a->id,
                  a->disconnected, str(st, "status"), live_stacks(stacks, a->id));
            n_disconnected += ok;
        }
        json_decref(st);
    }
    json_t *mgmt = state_of(redis, "111111111111");
    check(json_object_size(mgmt) == 0, "the management account (excluded) has a record");
    json_decref(mgmt);
    /* Both replicas stop cleanly, releasing the lease. */
    for (int r = 0; r < 2; r++)
        kill(lc[r], SIGTERM);
    for (int r = 0; r < 2; r++) {
        int st = 0;
        for (int i = 0; i < 400 && !ob_test_exited(lc[r], &st); i++)
            ob_loop_run_once(G.loop, 50);
        check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "lifecycle replica %d: exit status %d", r, st);
    }
    admin(http, "DELETE", "/_sim/faults", NULL, NULL);
    report("chaos: phase 3: %d accounts joined (%d idle members, %d while it ran); the watcher "
           "onboarded %d in %.1f s, %d twice, with Organizations throttling 10%% of its calls, "
           "%d kills of its 2 replicas, one each of the intake, iam and verify workers; %d of %d "
           "drifted accounts repaired by the periodic verification (one connection each; %d "
           "verified in sync after the repair), %d of %d offboarded (one disconnected event "
           "each, %d raw)\n",
           G.n - before, idle_members, joined_live, connected, took, twice, lc_kills, n_repaired,
           n_drift, n_insync, n_disconnected, n_off, G.raw_disconnected);
    /* A repaired account is verified again by the next rounds; most must be
     * by now (one run saw two of ten whose verification after the repair
     * went unanswered across the verify worker's kill). */
    check(n_insync * 2 >= n_drift, "only %d of %d repaired accounts verified in sync again",
          n_insync, n_drift);
}

static void usage(void)
{
    fprintf(stderr, "usage: ob-chaos --workers DIR --onboardctl PATH [--accounts N] [--seed S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    long seed = (long)time(NULL);
    G.n = 1000;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "--workers"))
            G.workers_dir = argv[++i];
        else if (!strcmp(argv[i], "--onboardctl"))
            G.ctl = argv[++i];
        else if (!strcmp(argv[i], "--accounts"))
            G.n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed"))
            seed = atol(argv[++i]);
        else
            usage();
    }
    if (!G.workers_dir || !G.ctl || G.n < 100)
        usage();
    G.brokers = ob_test_service_env("OB_TEST_KAFKA_BROKERS", "an Apache Kafka broker");
    G.redis_port = atoi(ob_test_service_env("OB_TEST_REDIS_PORT", "redis-server"));
    G.svc_script = ob_test_service_env("OB_TEST_SERVICES_SCRIPT", "scripts/services.sh");
    G.svc_dir = ob_test_service_env("OB_TEST_SERVICES_DIR", "the services' run directory");
    ob_log_set_level(OB_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);
    G.rng[0] = (unsigned short)seed;
    G.rng[1] = (unsigned short)(seed >> 16);
    G.rng[2] = 0x330e;
    snprintf(G.prefix, sizeof(G.prefix), "chaos%ld%d.", (long)time(NULL) % 100000, (int)getpid());
    snprintf(G.logdir, sizeof(G.logdir), "%s/chaos-%d", G.svc_dir, (int)getpid());
    mkdir(G.logdir, 0755);
    report("chaos: seed %ld, %d accounts, logs in %s\n", seed, G.n, G.logdir);

    /* Who is meant to fail, and why. */
    /* Room for the accounts that join in phase 3. */
    G.a = calloc((size_t)G.n + JOIN_MAX, sizeof(*G.a));
    G.by_id = json_object();
    G.seen_idem = json_object();
    G.poison_dlq = json_object();
    int n_norole = 0, n_taken = 0, n_existing = 0, n_repeat = 0, n_conflict = 0;
    for (int i = 0; i < G.n; i++) {
        acct_t *a = &G.a[i];
        ob_test_member_account(ob_test_active_member(i + 1), a->id);
        a->existing = i % 10 == 9;
        a->want = i % 50 == 7 || i % 100 == 29 ? W_NOROLE : i % 50 == 13 ? W_TAKEN : W_CONNECT;
        a->repeat = a->want == W_CONNECT && i % 17 == 3;
        a->conflict = a->want == W_CONNECT && !a->existing && !a->repeat && i % 19 == 5;
        n_norole += a->want == W_NOROLE;
        n_taken += a->want == W_TAKEN;
        n_existing += a->existing;
        n_repeat += a->repeat;
        n_conflict += a->conflict;
        json_object_set_new(G.by_id, a->id, json_integer(i));
    }

    G.loop = ob_loop_new(NULL, 0);
    char err[512];
    const char *lat[] = {"*=1ms-8ms", "cloudformation.stack_create=300ms-1500ms",
                         "cloudformation.stack_update=300ms-1s",
                         "cloudformation.stack_delete=200ms-600ms", NULL};
    const char *faults[] = {"*=throttle:0.02", "*=500:0.01", "*=reset:0.005",
                            "cloudformation.stack_create=rollback:0.05", NULL};
    sim_opts_t so = {.profile = "instant",
                     .org_accounts = ob_test_active_member(G.n) + 60,
                     .random_seed = (unsigned)seed,
                     .latency = lat,
                     .faults = faults};
    G.sim = sim_new(G.loop, &so, err, sizeof(err));
    if (!G.sim) {
        fprintf(stderr, "chaos: awssim: %s\n", err);
        return 1;
    }
    snprintf(G.sim_url, sizeof(G.sim_url), "http://127.0.0.1:%d", sim_port(G.sim));
    ob_test_forget_members(G.redis_port, 1, so.org_accounts);
    /* Existing accounts already have a Cost and Usage Report. */
    for (int i = 0; i < G.n; i++) {
        char bucket[64];
        snprintf(bucket, sizeof(bucket), "cur-of-%s", G.a[i].id);
        if (G.a[i].existing)
            ob_test_seed_report(G.sim, G.a[i].id, "their-own-cur", bucket, "us-east-1");
    }
    char owner[16];
    ob_test_member_account(G.n + 50, owner);
    for (int i = 0; i < G.n; i++) {
        if (G.a[i].want != W_TAKEN)
            continue;
        char name[96];
        snprintf(name, sizeof(name), "chaos-taken-%s", G.a[i].id);
        json_object_set_new(
            sim_section(G.sim, "buckets"), name,
            json_pack("{s:s, s:s, s:i}", "owner", owner, "region", "us-east-1", "created", 0));
    }

    /* The workers' settings: the environment, as in a deployment. */
    char port_s[16];
    snprintf(port_s, sizeof(port_s), "%d", G.redis_port);
    const char *env[][2] = {{"AWS_ENDPOINT_URL", G.sim_url},
                            {"AWS_ACCESS_KEY_ID", SIM_MGMT_AKID},
                            {"AWS_SECRET_ACCESS_KEY", SIM_MGMT_SECRET},
                            {"AWS_REGION", "us-east-1"},
                            {"AWS_CONFIG_FILE", "/dev/null"},
                            {"AWS_SHARED_CREDENTIALS_FILE", "/dev/null"},
                            {"AWS_EC2_METADATA_DISABLED", "true"},
                            {"OB_TOPIC_PREFIX", G.prefix},
                            {"OB_REDIS_PORT", port_s},
                            {"OB_BILLING_PRINCIPAL", MGMT_ROOT},
                            {"OB_STACK_POLL", "200ms"},
                            {"OB_CONNECT_RETRIES", "5"},
                            {"OB_CONNECT_RETRY_WAIT", "200ms"},
                            {"OB_STAGE_RETRY_WAIT", "500ms"},
                            {"OB_STAGE_RETRY_MAX_WAIT", "4s"},
                            {"OB_STAGE_RETRY_WINDOW", "8s"},
                            {"OB_LOCK_TTL", "4s"},
                            {"OB_LOG_LEVEL", "info"},
                            {"OB_KAFKA_BOOTSTRAP_SERVERS", G.brokers},
                            {"OB_KAFKA_SESSION_TIMEOUT_MS", "6000"},
                            {"OB_KAFKA_HEARTBEAT_INTERVAL_MS", "1000"},
                            {"OB_KAFKA_TOPIC_METADATA_REFRESH_INTERVAL_MS", "2000"},
                            {"OB_KAFKA_AUTO_COMMIT_INTERVAL_MS", "500"},
                            {NULL, NULL}};
    for (int i = 0; env[i][0]; i++)
        setenv(env[i][0], env[i][1], 1);

    double t0 = now_s();
    enqueue();
    for (int s = 0; s < 4; s++)
        start_worker(s);

    ob_cfg_kv_t kv = {0};
    ob_test_kafka_defaults(&kv, G.brokers);
    char tc[128], td[128], group[160];
    snprintf(tc, sizeof(tc), "%sconnected", G.prefix);
    snprintf(td, sizeof(td), "%sdlq", G.prefix);
    snprintf(group, sizeof(group), "%sauditor", G.prefix);
    const char *topics[] = {tc, td};
    ob_kconsumer_opts_t co = {
        .group_id = group, .topics = topics, .ntopics = 2, .kafka = &kv, .on_message = on_out};
    ob_kconsumer_t *auditor = ob_kconsumer_new(G.loop, &co, err, sizeof(err));
    if (!auditor) {
        fprintf(stderr, "chaos: auditor: %s\n", err);
        return 1;
    }

    /* Phase 1: the batch under chaos. */
    chaos_t ch = {.t0 = t0, .next_kill = 2.0, .killed_stage = -1, .max_kills = 40};
    int ok = 0;
    double next_report = t0 + 5;
    while (!ok && now_s() - t0 < 20 * 60) {
        ob_loop_run_once(G.loop, 100);
        ok = chaos_step(&ch);
        if (now_s() >= next_report) {
            fprintf(stderr, "chaos: %5.1fs %d of %d accounts settled, %d poison dead letters\n",
                    now_s() - t0, count_settled(), G.n, (int)json_object_size(G.poison_dlq));
            next_report += 5;
        }
    }
    double took = now_s() - t0;
    check(ok, "not every account settled in 20 minutes: %d of %d", count_settled(), G.n);
    for (int i = 0; i < G.n && !ok; i++)
        if (!settled(&G.a[i]))
            fprintf(stderr, "  unsettled: %s (%s, want %d)\n", G.a[i].id,
                    G.a[i].existing ? "existing" : "new", (int)G.a[i].want);

    /* Let late duplicates arrive before counting. */
    for (int i = 0; i < 30; i++)
        ob_loop_run_once(G.loop, 100);

    /* Redis lost everything mid-run: the records the fleet wrote since are
     * true; the others the topics tell again. */
    char cout[512];
    snprintf(cout, sizeof(cout), "%s/check-before.out", G.logdir);
    int crc = run_ctl("check --json", cout);
    json_t *cs = last_json_line(cout);
    long long differ0 =
        json_integer_value(json_object_get(json_object_get(cs, "summary"), "differ"));
    /* The records of the accounts done before the flush are gone. */
    check(cs && crc == 5 && differ0 > 0, "check after the flush: exit %d, %lld differ", crc,
          differ0);
    json_decref(cs);
    snprintf(cout, sizeof(cout), "%s/rebuild.out", G.logdir);
    crc = run_ctl("rebuild --json", cout);
    cs = last_json_line(cout);
    long long written =
        json_integer_value(json_object_get(json_object_get(cs, "summary"), "written"));
    check(cs && crc == 0, "rebuild: exit %d", crc);
    json_decref(cs);
    snprintf(cout, sizeof(cout), "%s/check-after.out", G.logdir);
    crc = run_ctl("check --json", cout);
    cs = last_json_line(cout);
    long long differ1 =
        json_integer_value(json_object_get(json_object_get(cs, "summary"), "differ"));
    long long agree = json_integer_value(json_object_get(json_object_get(cs, "summary"), "agree"));
    check(cs && crc == 0 && differ1 == 0, "check after the rebuild: exit %d, %lld differ", crc,
          differ1);
    json_decref(cs);
    report("chaos: after the FLUSHALL: check found %lld records disagreeing with the topics, "
           "rebuild wrote %lld, check then found %lld of %lld accounts disagreeing\n",
           differ0, written, differ1, agree + differ1);

    ob_redis_opts_t ro = {.host = "127.0.0.1", .port = G.redis_port, .command_timeout_ms = 5000};
    ob_redis_t *redis = ob_redis_new(G.loop, &ro, NULL, 0);
    int n_connected = 0, n_dead = 0, n_exhausted = 0;
    for (int i = 0; i < G.n; i++) {
        acct_t *a = &G.a[i];
        json_t *state = state_of(redis, a->id);
        if (a->exhausted) {
            n_exhausted++;
        } else if (a->want == W_CONNECT) {
            check_connected(a, state, i);
            n_connected += a->connected > 0;
        } else {
            check_failed(a, state);
            n_dead += a->dead != NULL;
        }
        json_decref(state);
    }
    check(json_object_size(G.poison_dlq) == NPOISON, "%zu poison dead letters, want %d",
          json_object_size(G.poison_dlq), NPOISON);
    const char *pk;
    json_t *pd;
    json_object_foreach(G.poison_dlq, pk, pd)
    {
        check(!strcmp(err_field(pd, "class"), "invalid_input"), "poison %s: class %s", pk,
              err_field(pd, "class"));
        json_t *orig = json_object_get(pd, "original");
        check(json_object_get(orig, "payload") || json_object_get(orig, "payload_base64"),
              "poison %s: the raw bytes were not kept", pk);
    }
    ob_http_t *http = ob_http_new(G.loop, NULL, NULL, 0);
    json_t *simstats = NULL;
    admin(http, "GET", "/_sim/stats", NULL, &simstats);
    unsigned long long faults_injected =
        (unsigned long long)json_integer_value(json_object_get(simstats, "faults_injected"));
    unsigned long long aws_requests =
        (unsigned long long)json_integer_value(json_object_get(simstats, "requests"));
    json_decref(simstats);
    report("chaos: phase 1: %d accounts (%d existing) in %.1f s: %d connected, %d dead letters "
           "(%d wrong role, %d taken bucket) + %d poison; %llu AWS requests, %llu faults injected, "
           "%d worker kills (bucket %d, cur %d, iam %d, connect %d), "
           "%d Kafka restart, %d Redis restart, %d FLUSHALL; %d raw connected events, %d "
           "duplicates; %d accounts enqueued twice, %d with a conflicting second request\n",
           G.n, n_existing, took, n_connected, n_dead, n_norole, n_taken,
           (int)json_object_size(G.poison_dlq), aws_requests, faults_injected, G.kills,
           ch.killed[0], ch.killed[1], ch.killed[2], ch.killed[3], G.restarts_kafka,
           G.restarts_redis, G.flushes, G.raw_connected,
           G.raw_connected - (int)json_object_size(G.seen_idem), n_repeat, n_conflict);

    /* Losing an account to exhausted retries is rare (a kill, a lost lock
     * and faults all landing on it): at most 1 in 100, each replayed below. */
    check(n_exhausted * 100 <= G.n, "%d accounts dead-lettered with their retries exhausted",
          n_exhausted);
    report("chaos: %d account%s dead-lettered with retries exhausted, replayed in phase 2\n",
           n_exhausted, n_exhausted == 1 ? "" : "s");

    /* Phase 2: repair the world, replay, and every account connects. */
    check(admin(http, "DELETE", "/_sim/faults", NULL, NULL) == 200, "clearing the faults");
    for (int i = 0; i < G.n; i++) {
        acct_t *a = &G.a[i];
        if (a->exhausted)
            a->replay_target = 2;
        if (a->want == W_CONNECT)
            continue;
        a->replay_target = 2;
        if (a->want == W_NOROLE) {
            char body[1024];
            snprintf(body, sizeof(body),
                     "{\"roles\":[{\"Account\":\"%s\",\"RoleName\":\"ChaosMissingRole\","
                     "\"AssumeRolePolicyDocument\":{\"Version\":\"2012-10-17\",\"Statement\":[{"
                     "\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"%s\"},\"Action\":"
                     "\"sts:AssumeRole\"}]}}]}",
                     a->id, MGMT_ROOT);
            check(admin(http, "POST", "/_sim/seed", body, NULL) == 200, "seeding a role for %s",
                  a->id);
        } else {
            char path[128];
            snprintf(path, sizeof(path), "/_sim/buckets/chaos-taken-%s", a->id);
            check(admin(http, "DELETE", path, NULL, NULL) == 200, "freeing the bucket name for %s",
                  a->id);
        }
    }
    char out[512];
    snprintf(out, sizeof(out), "%s/replay-dry.out", G.logdir);
    int rc = run_ctl("replay --dry-run --json", out);
    json_t *sum = last_json_line(out);
    char *sumtext = sum ? json_dumps(sum, 0) : NULL;
    check(rc == 0 && sum &&
              json_integer_value(json_object_get(sum, "would_replay")) ==
                  n_norole + n_taken + n_exhausted,
          "replay --dry-run: exit %d, %s", rc, sumtext ? sumtext : "no summary");
    free(sumtext);
    json_decref(sum);
    double t1 = now_s();
    snprintf(out, sizeof(out), "%s/replay.out", G.logdir);
    rc = run_ctl("replay --json", out);
    sum = last_json_line(out);
    int replayed = (int)json_integer_value(json_object_get(sum, "replayed"));
    int refused = (int)json_integer_value(json_object_get(sum, "refused"));
    check(rc == 0 && replayed == n_norole + n_taken + n_exhausted && refused == NPOISON,
          "replay: exit %d, replayed %d (want %d), refused %d (want %d, the poison)", rc, replayed,
          n_norole + n_taken + n_exhausted, refused, NPOISON);
    json_decref(sum);
    ok = ob_test_run_until(G.loop, all_settled, NULL, 300000);
    check(ok, "replayed accounts did not all connect: %d of %d settled", count_settled(), G.n);
    double took2 = now_s() - t1;
    for (int i = 0; i < 30; i++)
        ob_loop_run_once(G.loop, 100);
    for (int i = 0; i < G.n; i++) {
        acct_t *a = &G.a[i];
        if (a->want == W_CONNECT && !a->exhausted)
            continue;
        json_t *state = state_of(redis, a->id);
        check_connected(a, state, i);
        json_decref(state);
    }
    snprintf(out, sizeof(out), "%s/replay-again.out", G.logdir);
    rc = run_ctl("replay --json", out);
    sum = last_json_line(out);
    check(rc == 0 && sum && json_integer_value(json_object_get(sum, "replayed")) == 0,
          "a second replay replayed %lld",
          (long long)json_integer_value(json_object_get(sum, "replayed")));
    json_decref(sum);
    report("chaos: phase 2: repaired and replayed %d dead letters; all connected in %.1f s; a "
           "second replay replayed none; %d raw connected events in all, %d duplicates\n",
           replayed, took2, G.raw_connected, G.raw_connected - (int)json_object_size(G.seen_idem));

    /* Phase 3: accounts join the organization and the watcher onboards
     * them, its replicas killed under it. */
    phase_join(http, redis);

    /* No secret of the run in any log line. */
    json_t *secrets = json_object();
    json_object_set_new(secrets, SIM_MGMT_SECRET, json_true());
    const char *kid;
    json_t *key;
    json_object_foreach(sim_section(G.sim, "keys"), kid, key)
    {
        for (const char *f = "secret"; f; f = !strcmp(f, "secret") ? "token" : NULL)
            if (json_string_value(json_object_get(key, f)))
                json_object_set_new(secrets, json_string_value(json_object_get(key, f)),
                                    json_true());
    }
    for (int i = 0; i < G.n; i++) {
        const char *ext = json_string_value(json_object_get(G.a[i].event, "external_id"));
        if (ext)
            json_object_set_new(secrets, ext, json_true());
    }
    size_t log_bytes = 0;
    int leaks = scan_logs(secrets, &log_bytes);
    report("chaos: %zu secrets (keys, session tokens, ExternalIds) looked for in %zu bytes of "
           "logs: %d leaks\n",
           json_object_size(secrets), log_bytes, leaks);
    check(leaks == 0, "%d log lines leak a secret", leaks);
    check(log_bytes > 0, "no worker logs to scan");
    json_decref(secrets);

    /* Stop the workers gracefully: each must exit 0 on SIGTERM. */
    if (G.verify_pid > 0) {
        kill(G.verify_pid, SIGTERM);
        int st = 0;
        for (int i = 0; i < 600 && !ob_test_exited(G.verify_pid, &st); i++)
            ob_loop_run_once(G.loop, 50);
        check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker verify: exit status %d on SIGTERM",
              st);
    }
    for (int s = 0; s < 4; s++)
        if (G.worker_pid[s] > 0)
            kill(G.worker_pid[s], SIGTERM);
    for (int s = 0; s < 4; s++) {
        if (G.worker_pid[s] <= 0)
            continue;
        int st = 0;
        for (int i = 0; i < 600 && !ob_test_exited(G.worker_pid[s], &st); i++)
            ob_loop_run_once(G.loop, 50);
        check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker %s: exit status %d on SIGTERM",
              STAGES[s], st);
    }
    ob_kconsumer_close(auditor);
    ob_kconsumer_free(auditor);
    ob_cfg_kv_free(&kv);
    ob_http_free(http);
    ob_redis_free(redis);
    for (int i = 0; i < G.n; i++) {
        json_decref(G.a[i].event);
        json_decref(G.a[i].last);
        json_decref(G.a[i].dead);
    }
    free(G.a);
    json_decref(G.by_id);
    json_decref(G.seen_idem);
    json_decref(G.poison_dlq);
    sim_free(G.sim);
    ob_loop_free(G.loop);
    if (G.failures) {
        report("chaos: %d checks FAILED (worker logs in %s)\n", G.failures, G.logdir);
        return 1;
    }
    report("chaos: all checks passed\n");
    return 0;
}
