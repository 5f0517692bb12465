/*
 * harness: the stage workers of an integration test, their settings, what
 * they are fed and what comes out of them (see harness.h).
 *
 * The workers read their settings through one getenv function whose context
 * is the worker's record: its own settings first, then the harness's, then
 * the prefix and the Redis port, then the simulator's environment. Collectors
 * and workers are kept on lists so that ob_test_end can stop them in the
 * order the tests always used: the collectors leave their groups first, then
 * the workers shut down gracefully.
 */
#include "harness.h"
#include "stages.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "json_within.h"
#include "ob_buf.h"
#include "ob_crypto.h"
#include "ob_state.h"

struct ob_test_worker_s {
    ob_test_harness_t *h;
    ob_worker_t *w;
    ob_config_t cfg;
    const char *const (*env)[2]; /* this worker's own settings, or NULL */
    ob_test_worker_t *next;
};

void ob_test_harness_init(ob_test_harness_t *h, const char *tag)
{
    memset(h, 0, sizeof(*h));
    h->brokers = ob_test_service_env("OB_TEST_KAFKA_BROKERS", "an Apache Kafka broker");
    h->redis_port = atoi(ob_test_service_env("OB_TEST_REDIS_PORT", "redis-server"));
    ob_test_new_prefix(h, tag);
}

void ob_test_new_prefix(ob_test_harness_t *h, const char *tag)
{
    snprintf(h->prefix, sizeof(h->prefix), "%s%ld%d.", tag, (long)time(NULL) % 100000,
             (int)getpid());
}

void ob_test_set(ob_test_harness_t *h, const char *name, const char *value)
{
    int i = 0;
    for (; h->settings[i][0]; i++)
        if (!strcmp(h->settings[i][0], name))
            break;
    if (i >= OB_TEST_SETTINGS_MAX)
        fail_msg("more than %d settings", OB_TEST_SETTINGS_MAX);
    h->settings[i][0] = name;
    h->settings[i][1] = value;
}

/* The harness's answer for `name` (a NULL setting is an answer: "not set"). */
static const char *harness_lookup(ob_test_harness_t *h, const char *name)
{
    for (int i = 0; h->settings[i][0]; i++)
        if (!strcmp(h->settings[i][0], name))
            return h->settings[i][1];
    if (!strcmp(name, "OB_TOPIC_PREFIX"))
        return h->prefix;
    if (!strcmp(name, "OB_REDIS_PORT")) {
        snprintf(h->redis_port_s, sizeof(h->redis_port_s), "%d", h->redis_port);
        return h->redis_port_s;
    }
    return h->sim_url[0] ? ob_test_sim_env(name, h->sim_url) : NULL;
}

static const char *worker_getenv(const char *name, void *ctx)
{
    ob_test_worker_t *r = ctx;
    for (int i = 0; r->env && r->env[i][0]; i++)
        if (!strcmp(r->env[i][0], name))
            return r->env[i][1];
    return harness_lookup(r->h, name);
}

void ob_test_begin(ob_test_harness_t *h, const sim_opts_t *so)
{
    /* A test that failed never reached ob_test_end: what it started is left
     * as it was (on its own loop), not stopped here. */
    h->workers = NULL;
    h->outs = NULL;
    h->rc = NULL;
    h->http = NULL;
    h->loop = ob_loop_new(NULL, 0);
    assert_non_null(h->loop);
    h->sim = NULL;
    h->sim_url[0] = '\0';
    if (so) {
        char err[512];
        h->sim = sim_new(h->loop, so, err, sizeof(err));
        if (!h->sim)
            fail_msg("awssim: %s", err);
        snprintf(h->sim_url, sizeof(h->sim_url), "http://127.0.0.1:%d", sim_port(h->sim));
    }
}

static void out_free(ob_test_out_t *o);

ob_err_t ob_test_end(ob_test_harness_t *h)
{
    while (h->outs) {
        ob_test_out_t *o = h->outs;
        h->outs = o->next;
        out_free(o);
    }
    ob_err_t first = OB_OK;
    while (h->workers) {
        ob_err_t e = ob_test_worker_stop(h, h->workers->w);
        if (first == OB_OK)
            first = e;
    }
    ob_test_redis_close(h);
    if (h->http)
        ob_http_free(h->http);
    h->http = NULL;
    if (h->sim)
        sim_free(h->sim);
    h->sim = NULL;
    h->sim_url[0] = '\0';
    ob_loop_free(h->loop);
    h->loop = NULL;
    return first;
}

/* ---- workers ---- */

ob_worker_t *ob_test_worker_env(ob_test_harness_t *h, const ob_stage_ops_t *stage, const char *name,
                                long shutdown_ms, const char *const (*env)[2])
{
    ob_test_worker_t *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->h = h;
    r->env = env;
    char err[512];
    if (ob_config_load(&r->cfg, NULL, worker_getenv, r, err, sizeof(err)) != OB_OK)
        fail_msg("config: %s", err);
    ob_test_kafka_defaults(&r->cfg.kafka, h->brokers);
    ob_worker_opts_t wo = {.stage = stage,
                           .config = &r->cfg,
                           .name = name ? name : stage->name,
                           .lock_ttl_ms = 10000,
                           .shutdown_ms = shutdown_ms,
                           .getenv_fn = worker_getenv,
                           .env_ctx = r};
    r->w = ob_worker_new(h->loop, &wo, err, sizeof(err));
    if (!r->w)
        fail_msg("worker %s: %s", wo.name, err);
    ob_test_worker_t **tail = &h->workers; /* in start order: ob_test_end stops them so */
    while (*tail)
        tail = &(*tail)->next;
    *tail = r;
    return r->w;
}

void ob_test_fleet(ob_test_harness_t *h, const char *tag, int members, int seed, ob_worker_t *w[4])
{
    ob_test_new_prefix(h, tag);
    const char *lat[] = {"cloudformation.stack_create=300ms", "cloudformation.stack_update=300ms",
                         "cloudformation.stack_delete=200ms", NULL};
    sim_opts_t so = {.profile = "instant",
                     .org_accounts = members,
                     .random_seed = (uint64_t)seed,
                     .latency = lat};
    ob_test_begin(h, &so);
    ob_test_forget_members(h->redis_port, 1, so.org_accounts);
    const ob_stage_ops_t *stages[] = {&ob_stage_bucket, &ob_stage_cur, &ob_stage_iam,
                                      &ob_stage_connect};
    for (int s = 0; s < 4; s++)
        w[s] = ob_test_worker(h, stages[s], NULL, 5000);
}

ob_worker_t *ob_test_worker(ob_test_harness_t *h, const ob_stage_ops_t *stage, const char *name,
                            long shutdown_ms)
{
    return ob_test_worker_env(h, stage, name, shutdown_ms, NULL);
}

/* Take w's record off the list. */
static ob_test_worker_t *worker_unlink(ob_test_harness_t *h, ob_worker_t *w)
{
    for (ob_test_worker_t **p = &h->workers; *p; p = &(*p)->next) {
        if ((*p)->w == w) {
            ob_test_worker_t *r = *p;
            *p = r->next;
            return r;
        }
    }
    fail_msg("not a worker of the harness");
    return NULL;
}

ob_err_t ob_test_worker_stop(ob_test_harness_t *h, ob_worker_t *w)
{
    ob_test_worker_t *r = worker_unlink(h, w);
    ob_worker_stop(r->w);
    ob_err_t e = ob_worker_run(r->w); /* returns at once: the graceful shutdown */
    ob_worker_free(r->w);
    ob_config_free(&r->cfg);
    free(r);
    return e;
}

void ob_test_worker_free(ob_test_harness_t *h, ob_worker_t *w)
{
    ob_test_worker_t *r = worker_unlink(h, w);
    ob_worker_free(r->w);
    ob_config_free(&r->cfg);
    free(r);
}

int ob_test_workers_idle(void *harness)
{
    ob_test_harness_t *h = harness;
    for (ob_test_worker_t *r = h->workers; r; r = r->next)
        if (!ob_test_worker_idle(r->w))
            return 0;
    return 1;
}

/* ---- producing ---- */

void ob_test_request_json(const ob_test_harness_t *h, const ob_test_req_t *r, char *out,
                          size_t size)
{
    int n =
        snprintf(out, size,
                 "{\"schema\":\"onboard.request/1\",\"request_id\":\"%s%s\",\"account_id\":\"%s\","
                 "\"cloud\":\"aws\",\"mode\":\"%s\",\"region\":\"%s\",\"role_arn\":"
                 "\"arn:aws:iam::%s:role/%s\"%s}",
                 h->prefix, r->rid, r->account, r->mode ? r->mode : "new",
                 r->region ? r->region : "eu-west-1", r->account,
                 r->role ? r->role : "OrganizationAccountAccessRole", r->extra ? r->extra : "");
    if (n < 0 || (size_t)n >= size)
        fail_msg("request %s%s: longer than %zu bytes", h->prefix, r->rid, size);
}

ob_test_producer_t *ob_test_producer(ob_test_harness_t *h)
{
    ob_test_producer_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    p->h = h;
    ob_test_kafka_defaults(&p->kv, h->brokers);
    ob_kproducer_opts_t po = {.kafka = &p->kv};
    char err[512];
    p->p = ob_kproducer_new(h->loop, &po, err, sizeof(err));
    if (!p->p)
        fail_msg("producer: %s", err);
    return p;
}

void ob_test_send_to(ob_test_producer_t *p, const char *topic, int32_t partition, const char *key,
                     const char *body, rd_kafka_headers_t *headers)
{
    char t[192], err[512];
    snprintf(t, sizeof(t), "%s%s", p->h->prefix, topic);
    if (ob_kproducer_send(p->p, t, partition, key, key ? strlen(key) : 0, body, strlen(body),
                          headers, NULL, err, sizeof(err)) != OB_OK)
        fail_msg("produce to %s: %s", t, err);
}

void ob_test_send(ob_test_producer_t *p, const char *topic, const char *key, const char *body)
{
    ob_test_send_to(p, topic, RD_KAFKA_PARTITION_UA, key, body, NULL);
}

void ob_test_send_request(ob_test_producer_t *p, const ob_test_req_t *r)
{
    char body[2048];
    ob_test_request_json(p->h, r, body, sizeof(body));
    ob_test_send(p, "requests", r->account, body);
}

void ob_test_producer_done(ob_test_producer_t *p)
{
    assert_int_equal(ob_kproducer_flush(p->p, 30000), OB_OK);
    ob_kproducer_free(p->p);
    ob_cfg_kv_free(&p->kv);
    free(p);
}

/* ---- collecting the outputs ---- */

static int out_topic(const ob_test_out_t *o, const char *topic)
{
    for (int i = 0; o->o.topics[i]; i++)
        if (!strcmp(o->o.topics[i], topic))
            return i;
    return -1;
}

static void out_message(ob_kconsumer_t *c, const rd_kafka_message_t *m, void *arg)
{
    ob_test_out_t *o = arg;
    const char *full = rd_kafka_topic_name(m->rkt);
    if (o->o.only && !memmem(m->payload, m->len, o->o.only, strlen(o->o.only))) {
        ob_kconsumer_store(c, full, m->partition, m->offset + 1);
        return;
    }
    int t = out_topic(o, full + strlen(o->h->prefix));
    assert_true(t >= 0);
    char key[128];
    snprintf(key, sizeof(key), "%.*s", (int)m->key_len, m->key ? (const char *)m->key : "");
    json_t *j = o->o.raw ? NULL : json_loadb(m->payload, m->len, 0, NULL);
    if (!j)
        j = json_stringn(m->payload, m->len);
    json_t *arr = json_object_get(o->by_key[t], key);
    if (!arr) {
        arr = json_array();
        json_object_set_new(o->by_key[t], key, arr);
        o->keys++;
    }
    json_array_append_new(arr, j);
    o->n[t]++;
    ob_kconsumer_store(c, full, m->partition, m->offset + 1);
    if (o->o.on_message)
        o->o.on_message(o, o->o.topics[t], key, m, o->o.arg);
}

ob_test_out_t *ob_test_out_new(ob_test_harness_t *h, const ob_test_out_opts_t *opts)
{
    ob_test_out_t *o = calloc(1, sizeof(*o));
    assert_non_null(o);
    o->o = *opts;
    o->h = h;
    const char *topics[OB_TEST_OUT_TOPICS];
    size_t n = 0;
    for (; n < OB_TEST_OUT_TOPICS && opts->topics[n]; n++) {
        snprintf(o->names[n], sizeof(o->names[n]), "%s%s", h->prefix, opts->topics[n]);
        topics[n] = o->names[n];
        o->by_key[n] = json_object();
    }
    char group[192], err[512];
    snprintf(group, sizeof(group), "%s%s", h->prefix, opts->group);
    ob_test_kafka_defaults(&o->kv, h->brokers);
    ob_kconsumer_opts_t co = {.group_id = group,
                              .topics = topics,
                              .ntopics = n,
                              .kafka = &o->kv,
                              .on_message = out_message,
                              .arg = o};
    o->c = ob_kconsumer_new(h->loop, &co, err, sizeof(err));
    if (!o->c)
        fail_msg("collector: %s", err);
    o->next = h->outs;
    h->outs = o;
    return o;
}

static void out_free(ob_test_out_t *o)
{
    ob_kconsumer_close(o->c);
    ob_kconsumer_free(o->c);
    ob_cfg_kv_free(&o->kv);
    for (int i = 0; i < OB_TEST_OUT_TOPICS; i++)
        json_decref(o->by_key[i]);
    free(o);
}

json_t *ob_test_out_map(ob_test_out_t *o, const char *topic)
{
    int t = out_topic(o, topic);
    if (t < 0)
        fail_msg("the collector does not read %s", topic);
    return o->by_key[t];
}

size_t ob_test_out_count(ob_test_out_t *o, const char *topic, const char *key)
{
    return json_array_size(json_object_get(ob_test_out_map(o, topic), key));
}

json_t *ob_test_out_first(ob_test_out_t *o, const char *topic, const char *key)
{
    return json_array_get(json_object_get(ob_test_out_map(o, topic), key), 0);
}

json_t *ob_test_out_last(ob_test_out_t *o, const char *topic, const char *key)
{
    json_t *arr = json_object_get(ob_test_out_map(o, topic), key);
    size_t n = json_array_size(arr);
    return n ? json_array_get(arr, n - 1) : NULL;
}

int ob_test_out_seen(ob_test_out_t *o, const char *topic)
{
    int t = out_topic(o, topic);
    if (t < 0)
        fail_msg("the collector does not read %s", topic);
    return o->n[t];
}

void ob_test_out_clear(ob_test_out_t *o)
{
    for (int i = 0; o->o.topics[i]; i++) {
        json_object_clear(o->by_key[i]);
        o->n[i] = 0;
    }
    o->keys = 0;
}

typedef struct out_want_s {
    ob_test_out_t *o;
    int n;
} out_want_t;

static int out_reached(void *arg)
{
    out_want_t *w = arg;
    return w->o->keys >= w->n;
}

int ob_test_out_wait(ob_test_out_t *o, int n, int timeout_ms)
{
    out_want_t w = {o, n};
    return ob_test_run_until(o->h->loop, out_reached, &w, timeout_ms);
}

static const char *str_or(const json_t *o, const char *k, const char *dflt)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : dflt;
}

void ob_test_check_dlq(const json_t *d, const char *who, const char *stage, const char *cls,
                       const char *code, const char *says)
{
    const json_t *e = json_object_get(d, "error");
    const char *msg = str_or(e, "message", NULL);
    if (strcmp(str_or(d, "stage", ""), stage) != 0 || strcmp(str_or(e, "class", ""), cls) != 0 ||
        strcmp(str_or(e, "code", ""), code) != 0 || (says && (!msg || !strstr(msg, says))))
        fail_msg("%s: dead letter %s/%s/%s (%s), want %s/%s/%s naming \"%s\"", who,
                 str_or(d, "stage", "(none)"), str_or(e, "class", "(none)"),
                 str_or(e, "code", "(none)"), msg ? msg : "(none)", stage, cls, code,
                 says ? says : "");
}

void ob_test_check_dlq_original(const json_t *d, const char *who, const char *sent, size_t len)
{
    const json_t *o = json_object_get(d, "original");
    json_t *want = json_loadb(sent, len, 0, NULL);
    assert_non_null(want);
    if (!ob_json_within(want, json_object_get(o, "payload"))) {
        char *got = json_dumps(json_object_get(o, "payload"), JSON_COMPACT | JSON_ENCODE_ANY);
        fail_msg("%s: the dead letter's payload does not say what was sent:\n%.*s\n%s", who,
                 (int)len, sent, got ? got : "(none)");
    }
    json_decref(want);
    char sha[OB_SHA256_HEX_LEN];
    ob_sha256_hex(sent, len, sha);
    assert_string_equal(str_or(o, "payload_sha256", ""), sha);
    assert_int_equal(json_integer_value(json_object_get(o, "payload_size")), (json_int_t)len);
}

json_t *ob_test_expect_dlq(ob_test_out_t *o, const char *key, const char *stage, const char *cls,
                           const char *code, const char *says)
{
    json_t *d = ob_test_out_first(o, "dlq", key);
    if (!d)
        fail_msg("no dead letter for %s (want %s)", key, code);
    ob_test_check_dlq(d, key, stage, cls, code, says);
    return d;
}

/* ---- Redis: the accounts' state ---- */

redisContext *ob_test_redis(ob_test_harness_t *h)
{
    if (h->rc)
        return h->rc;
    h->rc = redisConnect("127.0.0.1", h->redis_port);
    if (!h->rc || h->rc->err)
        fail_msg("redis at 127.0.0.1:%d: %s", h->redis_port, h->rc ? h->rc->errstr : "no memory");
    const char *db = harness_lookup(h, "OB_REDIS_DB");
    if (db && *db) {
        redisReply *r = redisCommand(h->rc, "SELECT %s", db);
        assert_true(r && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
    }
    return h->rc;
}

void ob_test_redis_close(ob_test_harness_t *h)
{
    if (h->rc)
        redisFree(h->rc);
    h->rc = NULL;
}

char *ob_test_hget(ob_test_harness_t *h, const char *key, const char *field)
{
    redisReply *r = redisCommand(ob_test_redis(h), "HGET %s %s", key, field);
    assert_non_null(r);
    char *v = strdup(r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return v;
}

char *ob_test_state(ob_test_harness_t *h, const char *account, const char *field)
{
    char key[OB_STATE_KEY_LEN];
    ob_state_key(account, key, sizeof(key));
    return ob_test_hget(h, key, field);
}

char *ob_test_member_state(ob_test_harness_t *h, int member, const char *field)
{
    char acct[16];
    ob_test_member_account(member, acct);
    return ob_test_state(h, acct, field);
}

void ob_test_expect_state(ob_test_harness_t *h, int member, const char *field, const char *want)
{
    char *v = ob_test_member_state(h, member, field);
    if (strcmp(v, want) != 0)
        fail_msg("member %d: state %s is \"%s\", want \"%s\"", member, field, v, want);
    free(v);
}

json_t *ob_test_state_all(ob_test_harness_t *h, const char *account)
{
    char key[OB_STATE_KEY_LEN];
    ob_state_key(account, key, sizeof(key));
    redisReply *r = redisCommand(ob_test_redis(h), "HGETALL %s", key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    json_t *o = json_object();
    for (size_t k = 0; k + 1 < r->elements; k += 2)
        json_object_set_new(o, r->element[k]->str, json_string(r->element[k + 1]->str));
    freeReplyObject(r);
    return o;
}

/* ---- the simulator ---- */

long long ob_test_sim_count(sim_t *sim, const char *api)
{
    return json_integer_value(json_object_get(sim_section(sim, "counts"), api));
}

long long ob_test_sim_account_count(sim_t *sim, const char *account, const char *api)
{
    return json_integer_value(
        json_object_get(json_object_get(sim_section(sim, "counts_by_account"), account), api));
}

int ob_test_sim_live_stacks(sim_t *sim, const char *account, const char *in)
{
    int live = 0;
    const char *id;
    json_t *st;
    json_object_foreach(sim_section(sim, "stacks"), id, st)
    {
        const char *s = json_string_value(json_object_get(st, "StackStatus"));
        if (strstr(id, account) && !strstr(s ? s : "", "DELETE") && (!in || strstr(id, in)))
            live++;
    }
    return live;
}

long long ob_test_sim_mutations(sim_t *sim)
{
    static const char *const ops[] = {"s3.CreateBucket",
                                      "s3.DeleteBucket",
                                      "s3.PutBucketPolicy",
                                      "s3.PutPublicAccessBlock",
                                      "s3.PutBucketEncryption",
                                      "s3.PutBucketOwnershipControls",
                                      "cur.PutReportDefinition",
                                      "cur.ModifyReportDefinition",
                                      "cur.DeleteReportDefinition",
                                      "cloudformation.CreateStack",
                                      "cloudformation.UpdateStack",
                                      "cloudformation.DeleteStack",
                                      NULL};
    long long n = 0;
    for (int i = 0; ops[i]; i++)
        n += ob_test_sim_count(sim, ops[i]);
    return n;
}

long ob_test_sim_config(ob_test_harness_t *h, const char *body)
{
    return ob_test_sim_post(h, "/_sim/config", body);
}

/* The command line of a tool on the harness's services. */
static void ctl_line(const ob_test_harness_t *h, const char *tool, const char *args, char *line,
                     size_t n)
{
    const char *db = "0";
    for (int i = 0; h->settings[i][0]; i++)
        if (!strcmp(h->settings[i][0], "OB_REDIS_DB") && h->settings[i][1])
            db = h->settings[i][1];
    snprintf(line, n,
             "OB_TOPIC_PREFIX='%s' OB_REDIS_PORT=%d OB_REDIS_DB=%s OB_KAFKA_BOOTSTRAP_SERVERS='%s' "
             "'%s' %s 2>&1",
             h->prefix, h->redis_port, db, h->brokers, tool, args);
}

/* The last non-empty line of text into out. */
static void last_line(const char *text, char *out, size_t n)
{
    out[0] = '\0';
    for (const char *p = text; *p;) {
        size_t k = strcspn(p, "\n");
        if (k) {
            size_t c = k < n ? k : n - 1;
            memcpy(out, p, c);
            out[c] = '\0';
        }
        p += k + (p[k] == '\n');
    }
}

int ob_test_ctl_live(ob_test_harness_t *h, const char *tool, const char *args, char *out, size_t n)
{
    char line[1024];
    ctl_line(h, tool, args, line, sizeof(line));
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execl("/bin/sh", "sh", "-c", line, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    ob_buf_t text = {0};
    int status = 0, ended = 0;
    char buf[4096];
    ssize_t got;
    while (!ended) {
        ob_test_run_for(h->loop, 50);
        while ((got = read(fds[0], buf, sizeof(buf))) > 0)
            ob_buf_append(&text, buf, (size_t)got);
        ended = waitpid(pid, &status, WNOHANG) == pid;
    }
    while ((got = read(fds[0], buf, sizeof(buf))) > 0)
        ob_buf_append(&text, buf, (size_t)got);
    close(fds[0]);
    ob_buf_append(&text, "", 1);
    last_line(text.data, out, n);
    ob_buf_free(&text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int ob_test_ctl(const ob_test_harness_t *h, const char *tool, const char *args, char *out, size_t n)
{
    char line[1024];
    ctl_line(h, tool, args, line, sizeof(line));
    FILE *p = popen(line, "r");
    assert_non_null(p);
    out[0] = '\0';
    char *got = NULL;
    size_t cap = 0;
    while (getline(&got, &cap, p) >= 0) {
        size_t k = strcspn(got, "\n");
        if (!k)
            continue;
        if (k >= n)
            k = n - 1;
        memcpy(out, got, k);
        out[k] = '\0';
    }
    free(got);
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

long ob_test_sim_post(ob_test_harness_t *h, const char *path, const char *body)
{
    if (!h->http)
        h->http = ob_http_new(h->loop, NULL, NULL, 0);
    assert_non_null(h->http);
    char url[128];
    snprintf(url, sizeof(url), "%s%s", h->sim_url, path);
    ob_test_http_t res;
    ob_test_http(h->loop, h->http, "POST", url, body, 5000, &res);
    free(res.body);
    return res.status;
}

/* ---- processes of the fleet ---- */

/* The processes started and not reaped yet: killed when the test program
 * exits (a failed test never reaps its own), so that none outlives it. */
#define PROCS_MAX 32
static pid_t procs[PROCS_MAX];

static void procs_kill(void)
{
    for (int i = 0; i < PROCS_MAX; i++)
        if (procs[i] > 0) {
            kill(procs[i], SIGKILL);
            waitpid(procs[i], NULL, 0);
            procs[i] = 0;
        }
}

/* envp: environ with name set to value (NULL: removed). */
static void env_put(char ***envp, size_t *n, const char *name, const char *value)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < *n; i++)
        if (!strncmp((*envp)[i], name, len) && (*envp)[i][len] == '=') {
            free((*envp)[i]);
            (*envp)[i] = (*envp)[--*n];
            break;
        }
    if (!value)
        return;
    *envp = realloc(*envp, (*n + 2) * sizeof(**envp));
    assert_non_null(*envp);
    (*envp)[*n] = malloc(len + strlen(value) + 2);
    assert_non_null((*envp)[*n]);
    sprintf((*envp)[*n], "%s=%s", name, value);
    (*envp)[++*n] = NULL;
}

pid_t ob_test_fleet_process(ob_test_harness_t *h, const char *exe, const char *const (*env)[2],
                            const char *log)
{
    static const char *const aws[] = {"AWS_ENDPOINT_URL",          "AWS_ACCESS_KEY_ID",
                                      "AWS_SECRET_ACCESS_KEY",     "AWS_REGION",
                                      "AWS_CONFIG_FILE",           "AWS_SHARED_CREDENTIALS_FILE",
                                      "AWS_EC2_METADATA_DISABLED", NULL};
    /* Everything is made before the fork: the test runs librdkafka's
     * threads, and the child of a threaded process may only call
     * async-signal-safe functions before it execs. */
    extern char **environ;
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = calloc(n + 1, sizeof(*envp));
    assert_non_null(envp);
    for (size_t i = 0; i < n; i++)
        envp[i] = strdup(environ[i]);
    for (int i = 0; h->settings[i][0]; i++)
        env_put(&envp, &n, h->settings[i][0], h->settings[i][1]);
    char port[16];
    snprintf(port, sizeof(port), "%d", h->redis_port);
    env_put(&envp, &n, "OB_TOPIC_PREFIX", h->prefix);
    env_put(&envp, &n, "OB_REDIS_PORT", port);
    env_put(&envp, &n, "OB_KAFKA_BOOTSTRAP_SERVERS", h->brokers);
    for (int i = 0; h->sim_url[0] && aws[i]; i++) {
        const char *v = ob_test_sim_env(aws[i], h->sim_url);
        if (v)
            env_put(&envp, &n, aws[i], v);
    }
    for (int i = 0; env && env[i][0]; i++)
        env_put(&envp, &n, env[i][0], env[i][1]);
    /* A wrapper (valgrind, for the valgrind.* tests) runs it instead. */
    const char *wrap = getenv("OB_TEST_FLEET_WRAPPER");
    char line[2048];
    snprintf(line, sizeof(line), "exec %s '%s'", wrap ? wrap : "", exe);
    char *const sh_argv[] = {(char *)"sh", (char *)"-c", line, NULL};
    char *const exe_argv[] = {(char *)exe, NULL};
    int wrapped = wrap && wrap[0];
    fflush(NULL);
    static int registered;
    if (!registered++)
        atexit(procs_kill);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execve(wrapped ? "/bin/sh" : exe, wrapped ? sh_argv : exe_argv, envp);
        _exit(127);
    }
    for (size_t i = 0; i < n; i++)
        free(envp[i]);
    free(envp);
    for (int i = 0; i < PROCS_MAX; i++)
        if (procs[i] <= 0) {
            procs[i] = pid;
            break;
        }
    return pid;
}

int ob_test_reap(ob_test_harness_t *h, pid_t pid, int sig, int timeout_ms)
{
    if (sig)
        kill(pid, sig);
    int status = 0;
    for (int waited = 0; waitpid(pid, &status, WNOHANG) != pid; waited += 50) {
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            for (int i = 0; i < PROCS_MAX; i++)
                if (procs[i] == pid)
                    procs[i] = 0;
            fail_msg("process %d did not exit within %d ms", (int)pid, timeout_ms);
        }
        ob_test_run_for(h->loop, 50);
    }
    for (int i = 0; i < PROCS_MAX; i++)
        if (procs[i] == pid)
            procs[i] = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int ob_test_run_selected(const char *group, const struct CMUnitTest *tests, size_t n)
{
    const char *only = getenv("OB_TEST_ONLY");
    if (!only || !only[0])
        return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
    struct CMUnitTest *picked = calloc(n ? n : 1, sizeof(*picked));
    assert_non_null(picked);
    size_t k = 0, named = 0;
    for (const char *p = only; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
        size_t len = strcspn(p, ",");
        named++;
        for (size_t i = 0; i < n; i++)
            if (strlen(tests[i].name) == len && !strncmp(tests[i].name, p, len) && k < n)
                picked[k++] = tests[i];
    }
    if (k != named) {
        fprintf(stderr, "OB_TEST_ONLY=%s names a test that is not here\n", only);
        free(picked);
        return 2;
    }
    int rc = _cmocka_run_group_tests(group, picked, k, NULL, NULL);
    free(picked);
    return rc;
}
