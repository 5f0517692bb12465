/*
 * The iam worker end to end against a real Kafka broker, a real Redis and
 * the AWS simulator (stacks created in 300 ms, deleted in 200 ms, polled
 * every 100 ms): iam-stage hand-offs for new and existing accounts produced
 * to the iam topic; the worker (the real runtime: consumer group, window,
 * per-account locks, offsets) launches the Billing Engine role stack through
 * AssumeRole into each account; the test reads the connect and dead-letter
 * topics and checks the simulator's stacks and roles and the accounts' state
 * in Redis.
 *
 * Two accounts already have a role named like the template's: in one the
 * test removes it when the first stack has rolled back (deterministic: the
 * check runs between loop iterations, and the redo takes a delete and a
 * create, 500 ms, before the role is made again), so that account goes
 * through delete-and-create once; in the other it stays, so the redos run
 * out and the account ends in the dead-letter topic with the reason.
 *
 * Then the same hand-offs again: nothing is created, every ExternalId stays,
 * complete stacks answer "No updates are to be performed.". Last, an
 * existing account names its CUR bucket: a real update, same ExternalId,
 * and the role now reads that bucket.
 */
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ob_kafka.h"
#include "ob_log.h"
#include "ob_redis.h"
#include "ob_worker.h"
#include "sim.h"
#include "stages.h"
#include "testutil.h"

#define NACCT     20 /* members 1..NACCT; 1..14 new, 15..20 existing */
#define NNEW      14
#define ROLLBACK1 7 /* rolls back once, then succeeds */
#define DOOMED    8 /* rolls back every time: dead letter */
#define UPDATED   20
#define PRINCIPAL "arn:aws:iam::111111111111:root"
#define STACK     "billing-engine-access"

static const char *brokers;
static int redis_port;
static char prefix[64];
static char sim_url[64];

static const char *env_get(const char *name, void *ctx)
{
    static char port_s[16];
    const char *kv[][2] = {{"OB_TOPIC_PREFIX", prefix},
                           {"OB_REDIS_PORT", port_s},
                           {"OB_INFLIGHT_MAX", "8"}, /* smaller than the batch: the window pauses */
                           {"OB_BILLING_PRINCIPAL", PRINCIPAL},
                           {"OB_STACK_POLL", "100ms"},
                           {"OB_STACK_REDO_MAX", "2"},
                           {NULL, NULL}};
    snprintf(port_s, sizeof(port_s), "%d", redis_port);
    const char *v = ob_test_kv_lookup(kv, name);
    return v ? v : ob_test_sim_env(name, sim_url);
}

static void kafka_defaults(ob_cfg_kv_t *kv)
{
    ob_test_kafka_defaults(kv, brokers);
}

static void acct_of(int i, char out[16])
{
    ob_test_member_account(i, out);
}

static const char *region_of(int i)
{
    return i % 2 ? "eu-west-1" : "us-east-1";
}

static int is_new(int i)
{
    return i <= NNEW;
}

/* The iam-stage hand-off for member i, built by the codec as the cur (new)
 * and bucket (existing) stages build it. */
static char *handoff(int i, const char *extra)
{
    char acct[16], req[1024];
    acct_of(i, acct);
    snprintf(req, sizeof(req),
             "{\"schema\":\"onboard.request/1\",\"request_id\":\"%siam-%d\",\"account_id\":\"%s\","
             "\"cloud\":\"aws\",\"mode\":\"%s\",\"region\":\"%s\",\"role_arn\":"
             "\"arn:aws:iam::%s:role/OrganizationAccountAccessRole\"%s}",
             prefix, i, acct, is_new(i) ? "new" : "existing", region_of(i), acct,
             extra ? extra : "");
    ob_stage_msg_t m;
    ob_msg_error_t me;
    ob_stage_msg_init(&m);
    if (ob_request_parse(req, strlen(req), &m.request, &me) != OB_OK)
        fail_msg("request %d: %s", i, me.message);
    m.stage = OB_STAGE_IAM;
    if (is_new(i)) {
        ob_stage_fill_bucket(&m);
        ob_stage_fill_report(&m);
        for (int s = OB_STAGE_BUCKET; s <= OB_STAGE_CUR; s++) {
            ob_trace_t *t = &m.trace[s];
            t->present = 1;
            char now[OB_TIME_LEN];
            ob_msg_now(now);
            t->started_at = t->finished_at = ob_request_str(&m.request, now);
            t->attempts = 1;
            t->worker =
                ob_request_printf(&m.request, "%s", s == OB_STAGE_BUCKET ? "bucket" : "cur");
        }
    }
    char *json = NULL;
    if (ob_stage_to_json(&m, &json, NULL, &me) != OB_OK)
        fail_msg("hand-off %d: %s", i, me.message);
    ob_stage_msg_clear(&m);
    return json;
}

/* ---- collecting the outputs ---- */

typedef struct seen_s {
    json_t *connect, *dlq; /* account -> array of messages */
    int total;
    sim_t *sim;
    int role_freed; /* the test removed member ROLLBACK1's conflicting role */
} seen_t;

static void on_out(ob_kconsumer_t *c, const rd_kafka_message_t *m, void *arg)
{
    seen_t *s = arg;
    const char *t = rd_kafka_topic_name(m->rkt) + strlen(prefix);
    json_t *bucket = !strcmp(t, "connect") ? s->connect : s->dlq;
    json_t *j = json_loadb(m->payload, m->len, 0, NULL);
    char key[64];
    snprintf(key, sizeof(key), "%.*s", (int)m->key_len, m->key ? (const char *)m->key : "");
    json_t *arr = json_object_get(bucket, key);
    if (!arr) {
        arr = json_array();
        json_object_set_new(bucket, key, arr);
    }
    json_array_append_new(arr, j ? j : json_string("unparseable"));
    if (json_array_size(arr) == 1) /* accounts, not messages: a rebalance may redeliver */
        s->total++;
    ob_kconsumer_store(c, rd_kafka_topic_name(m->rkt), m->partition, m->offset + 1);
}

/* The live stacks of an account: {region: {name: StackId}}, or NULL. */
static json_t *live_stacks(sim_t *sim, const char *acct)
{
    return json_object_get(sim_section(sim, "stack_names"), acct);
}

static json_t *stack_by_id(sim_t *sim, const char *id)
{
    return json_object_get(sim_section(sim, "stacks"), id);
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

typedef struct want_s {
    seen_t *s;
    int n;
} want_t;

/* Done when n accounts have an output. On the way, once member ROLLBACK1's
 * first stack has rolled back, remove the role that made it fail. */
static int got_all(void *arg)
{
    want_t *w = arg;
    seen_t *s = w->s;
    if (!s->role_freed) {
        char acct[16];
        acct_of(ROLLBACK1, acct);
        const char *id =
            jstr(json_object_get(live_stacks(s->sim, acct), region_of(ROLLBACK1)), STACK);
        json_t *st = id ? stack_by_id(s->sim, id) : NULL;
        if (st && !strcmp(jstr(st, "StackStatus"), "ROLLBACK_COMPLETE")) {
            sim_delete_role(s->sim, acct, STACK);
            s->role_freed = 1;
        }
    }
    return s->total >= w->n;
}

static void produce(ob_loop_t *loop, int only, const char *extra)
{
    ob_cfg_kv_t kv = {0};
    kafka_defaults(&kv);
    ob_kproducer_opts_t po = {.kafka = &kv};
    ob_kproducer_t *p = ob_kproducer_new(loop, &po, NULL, 0);
    assert_non_null(p);
    char topic[128], acct[16];
    snprintf(topic, sizeof(topic), "%siam", prefix);
    for (int i = 1; i <= NACCT; i++) {
        if (only && i != only)
            continue;
        acct_of(i, acct);
        char *body = handoff(i, extra);
        assert_int_equal(ob_kproducer_send(p, topic, RD_KAFKA_PARTITION_UA, acct, strlen(acct),
                                           body, strlen(body), NULL, NULL, NULL, 0),
                         OB_OK);
        free(body);
    }
    if (!only) {
        const char *bad = "{\"schema\":\"onboard.stage/1\",\"stage\":\"iam\"";
        assert_int_equal(ob_kproducer_send(p, topic, RD_KAFKA_PARTITION_UA, "bad-0", 5, bad,
                                           strlen(bad), NULL, NULL, NULL, 0),
                         OB_OK);
    }
    assert_int_equal(ob_kproducer_flush(p, 30000), OB_OK);
    ob_kproducer_free(p);
    ob_cfg_kv_free(&kv);
}

static long long count_of(sim_t *sim, const char *acct, const char *op)
{
    return json_integer_value(
        json_object_get(json_object_get(sim_section(sim, "counts_by_account"), acct), op));
}

/* What one account's connect hand-off says. */
typedef struct got_s {
    char stack_id[OB_STACK_ID_LEN];
    char role_arn[OB_ROLE_ARN_LEN];
    char external_id[OB_BE_EXT_ID_LEN];
} got_t;

static void handoff_of(seen_t *s, int i, got_t *g)
{
    char acct[16];
    acct_of(i, acct);
    json_t *arr = json_object_get(s->connect, acct);
    if (!arr)
        fail_msg("no connect hand-off for member %d", i);
    char *text = json_dumps(json_array_get(arr, 0), JSON_COMPACT);
    ob_stage_msg_t m;
    ob_msg_error_t me;
    if (ob_stage_parse(text, strlen(text), &m, &me) != OB_OK)
        fail_msg("member %d hand-off: %s", i, me.message);
    free(text);
    assert_int_equal(m.stage, OB_STAGE_CONNECT);
    assert_true(m.has_stack);
    assert_string_equal(m.stack.name, STACK);
    assert_int_equal(m.has_bucket, is_new(i));
    assert_int_equal(m.has_report, is_new(i));
    assert_true(m.trace[OB_STAGE_IAM].present);
    snprintf(g->stack_id, sizeof(g->stack_id), "%s", m.stack.id);
    snprintf(g->role_arn, sizeof(g->role_arn), "%s", m.stack.role_arn);
    snprintf(g->external_id, sizeof(g->external_id), "%s", m.stack.external_id);
    ob_stage_msg_clear(&m);
}

/* Exactly one live stack, CREATE_COMPLETE (or `status`), and the role it
 * made trusting the Billing Engine with this account's ExternalId. Returns
 * the role. */
static json_t *check_account(sim_t *sim, int i, const got_t *g, const char *status)
{
    char acct[16], arn[128];
    acct_of(i, acct);
    json_t *live = live_stacks(sim, acct);
    assert_int_equal(json_object_size(live), 1); /* one region */
    json_t *names = json_object_get(live, region_of(i));
    assert_int_equal(json_object_size(names), 1); /* one stack */
    assert_string_equal(jstr(names, STACK), g->stack_id);
    json_t *st = stack_by_id(sim, g->stack_id);
    assert_non_null(st);
    if (strcmp(jstr(st, "StackStatus"), status) != 0)
        fail_msg("member %d: stack %s, expected %s", i, jstr(st, "StackStatus"), status);
    json_t *role = sim_get_role(sim, acct, STACK);
    assert_non_null(role);
    snprintf(arn, sizeof(arn), "arn:aws:iam::%s:role/%s", acct, STACK);
    assert_string_equal(jstr(role, "Arn"), arn);
    assert_string_equal(g->role_arn, arn);
    assert_string_equal(jstr(role, "StackId"), g->stack_id);
    json_t *trust = json_object_get(role, "AssumeRolePolicyDocument");
    json_t *stmts = json_object_get(trust, "Statement");
    assert_int_equal(json_array_size(stmts), 1);
    json_t *s0 = json_array_get(stmts, 0);
    assert_string_equal(jstr(s0, "Effect"), "Allow");
    assert_string_equal(jstr(s0, "Action"), "sts:AssumeRole");
    assert_string_equal(jstr(json_object_get(s0, "Principal"), "AWS"), PRINCIPAL);
    const char *ext =
        jstr(json_object_get(json_object_get(s0, "Condition"), "StringEquals"), "sts:ExternalId");
    assert_non_null(ext);
    assert_string_equal(ext, g->external_id);
    assert_int_equal(strlen(ext), 32);
    return role;
}

/* The role's inline policy as text. */
static char *policy_text(json_t *role)
{
    return json_dumps(json_object_get(json_object_get(role, "Policies"), "BillingEngineRead"),
                      JSON_COMPACT | JSON_SORT_KEYS);
}

/* The account's state hash in Redis: what the worker recorded, and never
 * the ExternalId. */
static json_t *redis_state(redisContext *rc, int i, const char *never)
{
    char acct[16];
    acct_of(i, acct);
    redisReply *r = redisCommand(rc, "HGETALL ob:{%s}:state", acct);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    json_t *o = json_object();
    for (size_t k = 0; k + 1 < r->elements; k += 2) {
        const char *v = r->element[k + 1]->str;
        if (never && never[0] && strstr(v, never))
            fail_msg("member %d: the ExternalId is in state field %s", i, r->element[k]->str);
        json_object_set_new(o, r->element[k]->str, json_string(v));
    }
    freeReplyObject(r);
    return o;
}

static void forget_done(redisContext *rc, int i);

static void test_iam_worker(void **state)
{
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    char err[512];
    const char *latency[] = {"cloudformation.stack_create=300ms",
                             "cloudformation.stack_delete=200ms",
                             "cloudformation.stack_update=300ms", NULL};
    sim_opts_t so = {
        .profile = "instant", .org_accounts = 60, .random_seed = 13, .latency = latency};
    sim_t *sim = sim_new(loop, &so, err, sizeof(err));
    assert_non_null(sim);
    snprintf(sim_url, sizeof(sim_url), "http://127.0.0.1:%d", sim_port(sim));
    /* A role named like the template's, not made by any stack. */
    char acct7[16], acct8[16];
    acct_of(ROLLBACK1, acct7);
    acct_of(DOOMED, acct8);
    sim_put_role(sim, acct7, STACK, "/",
                 json_pack("{s:s, s:[]}", "Version", "2012-10-17", "Statement"), NULL);
    sim_put_role(sim, acct8, STACK, "/",
                 json_pack("{s:s, s:[]}", "Version", "2012-10-17", "Statement"), NULL);

    produce(loop, 0, NULL);

    ob_config_t cfg;
    assert_int_equal(ob_config_load(&cfg, NULL, env_get, NULL, err, sizeof(err)), OB_OK);
    kafka_defaults(&cfg.kafka);
    ob_worker_opts_t wo = {.stage = &ob_stage_iam,
                           .config = &cfg,
                           .name = "itest-iam",
                           .lock_ttl_ms = 10000,
                           .shutdown_ms = 5000,
                           .getenv_fn = env_get};
    ob_worker_t *w = ob_worker_new(loop, &wo, err, sizeof(err));
    if (!w)
        fail_msg("worker: %s", err);

    seen_t seen = {json_object(), json_object(), 0, sim, 0};
    ob_cfg_kv_t kv = {0};
    kafka_defaults(&kv);
    char tc[128], td[128], group[160];
    snprintf(tc, sizeof(tc), "%sconnect", prefix);
    snprintf(td, sizeof(td), "%sdlq", prefix);
    snprintf(group, sizeof(group), "%scollector", prefix);
    const char *topics[] = {tc, td};
    ob_kconsumer_opts_t co = {.group_id = group,
                              .topics = topics,
                              .ntopics = 2,
                              .kafka = &kv,
                              .on_message = on_out,
                              .arg = &seen};
    ob_kconsumer_t *collector = ob_kconsumer_new(loop, &co, err, sizeof(err));
    assert_non_null(collector);

    /* Round 1: 19 accounts connected, member 8 and the bad message dead. */
    want_t want = {&seen, NACCT + 1};
    uint64_t t0 = ob_loop_update_time(loop);
    int ok = ob_test_run_until(loop, got_all, &want, 120000);
    ob_test_run_until(loop, ob_test_worker_idle, w, 30000);
    ob_worker_stats_t ws;
    ob_worker_get_stats(w, &ws);
    printf("round 1: %d outputs in %llu ms; worker: received %llu, done %llu, dead letters %llu\n",
           seen.total, (unsigned long long)(ob_loop_update_time(loop) - t0),
           (unsigned long long)ws.received, (unsigned long long)ws.done,
           (unsigned long long)ws.dead_letters);
    assert_true(ok);
    assert_true(seen.role_freed);
    assert_int_equal(json_object_size(seen.connect), NACCT - 1);
    assert_int_equal(json_object_size(seen.dlq), 2);

    redisContext *rc = redisConnect("127.0.0.1", redis_port);
    assert_true(rc && !rc->err);
    got_t got[NACCT + 1];
    for (int i = 1; i <= NACCT; i++) {
        if (i == DOOMED)
            continue;
        char acct[16];
        acct_of(i, acct);
        handoff_of(&seen, i, &got[i]);
        json_t *role = check_account(sim, i, &got[i], "CREATE_COMPLETE");
        char *pol = policy_text(role);
        char bucket_arn[128];
        snprintf(bucket_arn, sizeof(bucket_arn), "arn:aws:s3:::billing-cur-%s-%s/*", acct,
                 region_of(i));
        if (is_new(i))
            assert_non_null(strstr(pol, bucket_arn)); /* reads its CUR bucket */
        else
            assert_null(strstr(pol, "s3:")); /* no bucket named: no S3 access at all */
        assert_non_null(strstr(pol, "cur:DescribeReportDefinitions"));
        free(pol);
        long long creates = count_of(sim, acct, "cloudformation.CreateStack");
        assert_int_equal(creates, i == ROLLBACK1 ? 2 : 1);
        assert_int_equal(count_of(sim, acct, "cloudformation.DeleteStack"), i == ROLLBACK1);
        json_t *st = redis_state(rc, i, got[i].external_id);
        assert_string_equal(jstr(st, "stage"), "iam");
        assert_string_equal(jstr(st, "status"), "done");
        assert_string_equal(jstr(st, "stack_id"), got[i].stack_id);
        assert_string_equal(jstr(st, "role_arn"), got[i].role_arn);
        json_decref(st);
    }
    /* Member 7: the rolled-back stack is gone (deleted), its successor made the role. */
    size_t deleted7 = 0;
    const char *id;
    json_t *stv;
    json_object_foreach(sim_section(sim, "stacks"), id, stv)
    {
        if (!strcmp(jstr(stv, "Account"), acct7) &&
            !strcmp(jstr(stv, "StackStatus"), "DELETE_COMPLETE"))
            deleted7++;
    }
    assert_int_equal(deleted7, 1);

    /* Member 8: three creates (two redos), then a permanent dead letter that says why. */
    json_t *d8 = json_array_get(json_object_get(seen.dlq, acct8), 0);
    json_t *e8 = json_object_get(d8, "error");
    assert_string_equal(jstr(e8, "class"), "permanent");
    assert_string_equal(jstr(e8, "code"), "stack_failed");
    printf("member 8: %s\n", jstr(e8, "message"));
    assert_non_null(strstr(jstr(e8, "message"), "after 2 redos"));
    assert_non_null(strstr(jstr(e8, "message"), "billing-engine-access already exists"));
    assert_int_equal(count_of(sim, acct8, "cloudformation.CreateStack"), 3);
    assert_int_equal(count_of(sim, acct8, "cloudformation.DeleteStack"), 2);
    json_t *st8 = redis_state(rc, DOOMED, NULL);
    assert_string_equal(jstr(st8, "status"), "failed");
    assert_string_equal(jstr(st8, "error_code"), "stack_failed");
    json_decref(st8);
    json_t *d0 = json_array_get(json_object_get(seen.dlq, "bad-0"), 0);
    assert_string_equal(jstr(json_object_get(d0, "error"), "class"), "invalid_input");

    /* Round 2: the same hand-offs again, as a worker redoes them when their
     * outputs were lost after the state recorded them (an aborted
     * transaction), and as one did before outputs were transactional.
     * Nothing is made; every ExternalId stays. */
    for (int i = 1; i <= NACCT; i++)
        forget_done(rc, i);
    json_object_clear(seen.connect);
    json_object_clear(seen.dlq);
    seen.total = 0;
    size_t nstacks = json_object_size(sim_section(sim, "stacks"));
    long long creates_before = json_integer_value(
        json_object_get(sim_section(sim, "counts"), "cloudformation.CreateStack"));
    t0 = ob_loop_update_time(loop);
    produce(loop, 0, NULL);
    assert_true(ob_test_run_until(loop, got_all, &want, 120000));
    assert_true(ob_test_run_until(loop, ob_test_worker_idle, w, 30000));
    printf("round 2: %d outputs in %llu ms\n", seen.total,
           (unsigned long long)(ob_loop_update_time(loop) - t0));
    assert_int_equal(json_object_size(seen.connect), NACCT - 1);
    for (int i = 1; i <= NACCT; i++) {
        if (i == DOOMED)
            continue;
        char acct[16];
        acct_of(i, acct);
        got_t again;
        handoff_of(&seen, i, &again);
        assert_string_equal(again.stack_id, got[i].stack_id);
        assert_string_equal(again.role_arn, got[i].role_arn);
        assert_string_equal(again.external_id, got[i].external_id);
        /* "No updates are to be performed.": still CREATE_COMPLETE, never updated. */
        check_account(sim, i, &got[i], "CREATE_COMPLETE");
        assert_null(json_object_get(stack_by_id(sim, got[i].stack_id), "LastUpdatedTime"));
        assert_int_equal(count_of(sim, acct, "cloudformation.UpdateStack"), i % 2 ? 0 : 1);
        assert_int_equal(count_of(sim, acct, "cloudformation.CreateStack"), i == ROLLBACK1 ? 2 : 1);
    }
    /* Only member 8 made stacks again (its redos, which fail the same way). */
    long long creates_after = json_integer_value(
        json_object_get(sim_section(sim, "counts"), "cloudformation.CreateStack"));
    printf("CreateStack calls: %lld before round 2, %lld after (member 8's redos)\n",
           creates_before, creates_after);
    assert_int_equal(creates_after - creates_before, 2);
    assert_int_equal(json_object_size(sim_section(sim, "stacks")), nstacks + 2);

    /* Round 3: existing member 20 now names its CUR bucket: a real update
     * that keeps the ExternalId (UsePreviousValue) and grants that bucket. */
    json_object_clear(seen.connect);
    json_object_clear(seen.dlq);
    seen.total = 0;
    want_t one = {&seen, 1};
    forget_done(rc, UPDATED);
    produce(loop, UPDATED, ",\"bucket\":{\"name\":\"acme-cur-20\"}");
    assert_true(ob_test_run_until(loop, got_all, &one, 60000));
    got_t upd;
    handoff_of(&seen, UPDATED, &upd);
    assert_string_equal(upd.stack_id, got[UPDATED].stack_id);
    assert_string_equal(upd.external_id, got[UPDATED].external_id);
    json_t *role = check_account(sim, UPDATED, &upd, "UPDATE_COMPLETE");
    char *pol = policy_text(role);
    assert_non_null(strstr(pol, "arn:aws:s3:::acme-cur-20/*"));
    free(pol);

    redisFree(rc);
    ob_kconsumer_close(collector);
    ob_kconsumer_free(collector);
    ob_worker_stop(w);
    assert_int_equal(ob_worker_run(w), OB_OK); /* returns at once: the graceful shutdown */
    ob_worker_free(w);
    ob_cfg_kv_free(&kv);
    json_decref(seen.connect);
    json_decref(seen.dlq);
    sim_free(sim);
    ob_config_free(&cfg);
    ob_loop_free(loop);
}

/* Make the account's state say its iam stage is still running (what a crash
 * between the hand-off's acknowledgement and the state write leaves). */
static void forget_done(redisContext *rc, int i)
{
    char acct[16];
    acct_of(i, acct);
    /* Odd members keep the progress recorded with their outcome (a message
     * whose transaction was aborted: its redo continues the stack); even
     * ones lose it (a state written before progress was kept: the redo
     * starts over, and UpdateStack finds nothing to update). */
    redisReply *r =
        i % 2 ? redisCommand(rc, "HSET ob:{%s}:state status running", acct)
              : redisCommand(rc, "HSET ob:{%s}:state status running progress %s", acct, "");
    assert_non_null(r);
    freeReplyObject(r);
}

int main(void)
{
    brokers = ob_test_service_env("OB_TEST_KAFKA_BROKERS", "an Apache Kafka broker");
    redis_port = atoi(ob_test_service_env("OB_TEST_REDIS_PORT", "redis-server"));
    snprintf(prefix, sizeof(prefix), "itiam%ld%d.", (long)time(NULL) % 100000, (int)getpid());
    ob_log_set_level(OB_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iam_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
