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
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ob_kafka.h"
#include "ob_log.h"
#include "ob_worker.h"
#include "sim.h"
#include "stages.h"

#define NACCT     20 /* members 1..NACCT; 1..14 new, 15..20 existing */
#define NNEW      14
#define ROLLBACK1 7 /* rolls back once, then succeeds */
#define DOOMED    8 /* rolls back every time: dead letter */
#define UPDATED   20
#define PRINCIPAL "arn:aws:iam::111111111111:root"
#define STACK     "billing-engine-access"

static ob_test_harness_t H;

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
    char acct[16], rid[32], req[1024];
    acct_of(i, acct);
    snprintf(rid, sizeof(rid), "iam-%d", i);
    ob_test_req_t rq = {.rid = rid,
                        .account = acct,
                        .mode = is_new(i) ? "new" : "existing",
                        .region = region_of(i),
                        .extra = extra};
    ob_test_request_json(&H, &rq, req, sizeof(req));
    ob_stage_msg_t m;
    ob_test_handoff_init(&m, req, OB_STAGE_IAM);
    if (is_new(i)) {
        ob_test_handoff_trace(&m, OB_STAGE_BUCKET, "bucket", NULL, NULL);
        ob_test_handoff_trace(&m, OB_STAGE_CUR, "cur", NULL, NULL);
    }
    return ob_test_handoff_json(&m);
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
    ob_test_out_t *out;
    int n;
    int role_freed; /* the test removed member ROLLBACK1's conflicting role */
} want_t;

/* Done when n accounts have an output. On the way, once member ROLLBACK1's
 * first stack has rolled back, remove the role that made it fail. */
static int got_all(void *arg)
{
    want_t *w = arg;
    if (!w->role_freed) {
        char acct[16];
        acct_of(ROLLBACK1, acct);
        const char *id =
            jstr(json_object_get(live_stacks(H.sim, acct), region_of(ROLLBACK1)), STACK);
        json_t *st = id ? stack_by_id(H.sim, id) : NULL;
        if (st && !strcmp(jstr(st, "StackStatus"), "ROLLBACK_COMPLETE")) {
            sim_delete_role(H.sim, acct, STACK);
            w->role_freed = 1;
        }
    }
    return w->out->keys >= w->n;
}

/* What is sent for member i: its hand-off, and for the doomed member the
 * same message indented and with its members reversed, as another producer
 * might write it (its dead letter must still give what was sent). */
static char *sent_body(int i, const char *extra)
{
    char *body = handoff(i, extra);
    if (i != DOOMED)
        return body;
    json_t *o = json_loads(body, 0, NULL), *r = json_object();
    assert_non_null(o);
    free(body);
    const char *k[64];
    size_t n = 0;
    json_t *v;
    const char *key;
    json_object_foreach(o, key, v)
    {
        assert_true(n < 64);
        k[n++] = key;
    }
    while (n--)
        json_object_set(r, k[n], json_object_get(o, k[n]));
    body = json_dumps(r, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    json_decref(r);
    return body;
}

static char *sent_doomed; /* what produce() last sent for it */

static void produce(int only, const char *extra)
{
    ob_test_producer_t *p = ob_test_producer(&H);
    char acct[16];
    for (int i = 1; i <= NACCT; i++) {
        if (only && i != only)
            continue;
        acct_of(i, acct);
        char *body = sent_body(i, extra);
        ob_test_send(p, "iam", acct, body);
        if (i == DOOMED) {
            free(sent_doomed);
            sent_doomed = body;
        } else {
            free(body);
        }
    }
    if (!only)
        ob_test_send(p, "iam", "bad-0", "{\"schema\":\"onboard.stage/1\",\"stage\":\"iam\"");
    ob_test_producer_done(p);
}

/* What one account's connect hand-off says. */
typedef struct got_s {
    char stack_id[OB_STACK_ID_LEN];
    char role_arn[OB_ROLE_ARN_LEN];
    char external_id[OB_BE_EXT_ID_LEN];
} got_t;

static void handoff_of(ob_test_out_t *out, int i, got_t *g)
{
    char acct[16];
    acct_of(i, acct);
    json_t *first = ob_test_out_first(out, "connect", acct);
    if (!first)
        fail_msg("no connect hand-off for member %d", i);
    char who[48];
    snprintf(who, sizeof(who), "member %d hand-off", i);
    ob_stage_msg_t m;
    ob_test_handoff_parse(first, &m, who);
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
static json_t *redis_state(int i, const char *never)
{
    char acct[16];
    acct_of(i, acct);
    json_t *o = ob_test_state_all(&H, acct);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (never && never[0] && strstr(json_string_value(v), never))
            fail_msg("member %d: the ExternalId is in state field %s", i, k);
    }
    return o;
}

/* Make the account's state say its iam stage is still running (what a crash
 * between the hand-off's acknowledgement and the state write leaves). */
static void forget_done(int i)
{
    char acct[16];
    acct_of(i, acct);
    /* Odd members keep the progress recorded with their outcome (a message
     * whose transaction was aborted: its redo continues the stack); even
     * ones lose it (a state written before progress was kept: the redo
     * starts over, and UpdateStack finds nothing to update). */
    redisContext *rc = ob_test_redis(&H);
    redisReply *r =
        i % 2 ? redisCommand(rc, "HSET ob:{%s}:state status running", acct)
              : redisCommand(rc, "HSET ob:{%s}:state status running progress %s", acct, "");
    assert_non_null(r);
    freeReplyObject(r);
}

static void test_iam_worker(void **state)
{
    const char *latency[] = {"cloudformation.stack_create=300ms",
                             "cloudformation.stack_delete=200ms",
                             "cloudformation.stack_update=300ms", NULL};
    sim_opts_t so = {
        .profile = "instant", .org_accounts = 60, .random_seed = 13, .latency = latency};
    ob_test_begin(&H, &so);
    sim_t *sim = H.sim;
    /* A role named like the template's, not made by any stack. */
    char acct7[16], acct8[16];
    acct_of(ROLLBACK1, acct7);
    acct_of(DOOMED, acct8);
    sim_put_role(sim, acct7, STACK, "/",
                 json_pack("{s:s, s:[]}", "Version", "2012-10-17", "Statement"), NULL);
    sim_put_role(sim, acct8, STACK, "/",
                 json_pack("{s:s, s:[]}", "Version", "2012-10-17", "Statement"), NULL);

    produce(0, NULL);

    ob_worker_t *w = ob_test_worker(&H, &ob_stage_iam, "itest-iam", 5000);
    ob_test_out_opts_t oo = {.group = "collector", .topics = {"connect", "dlq"}};
    ob_test_out_t *out = ob_test_out_new(&H, &oo);
    json_t *connect = ob_test_out_map(out, "connect"), *dlq = ob_test_out_map(out, "dlq");

    /* Round 1: 19 accounts connected, member 8 and the bad message dead. */
    want_t want = {out, NACCT + 1, 0};
    uint64_t t0 = ob_loop_update_time(H.loop);
    int ok = ob_test_run_until(H.loop, got_all, &want, 120000);
    ob_test_run_until(H.loop, ob_test_worker_idle, w, 30000);
    ob_worker_stats_t ws;
    ob_worker_get_stats(w, &ws);
    printf("round 1: %d outputs in %llu ms; worker: received %llu, done %llu, dead letters %llu\n",
           out->keys, (unsigned long long)(ob_loop_update_time(H.loop) - t0),
           (unsigned long long)ws.received, (unsigned long long)ws.done,
           (unsigned long long)ws.dead_letters);
    assert_true(ok);
    assert_true(want.role_freed);
    assert_int_equal(json_object_size(connect), NACCT - 1);
    assert_int_equal(json_object_size(dlq), 2);

    ob_test_redis(&H);
    got_t got[NACCT + 1];
    for (int i = 1; i <= NACCT; i++) {
        if (i == DOOMED)
            continue;
        char acct[16];
        acct_of(i, acct);
        handoff_of(out, i, &got[i]);
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
        long long creates = ob_test_sim_account_count(sim, acct, "cloudformation.CreateStack");
        assert_int_equal(creates, i == ROLLBACK1 ? 2 : 1);
        assert_int_equal(ob_test_sim_account_count(sim, acct, "cloudformation.DeleteStack"),
                         i == ROLLBACK1);
        json_t *st = redis_state(i, got[i].external_id);
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
    json_t *d8 = ob_test_out_first(out, "dlq", acct8);
    json_t *e8 = json_object_get(d8, "error");
    assert_string_equal(jstr(e8, "class"), "permanent");
    assert_string_equal(jstr(e8, "code"), "stack_failed");
    printf("member 8: %s\n", jstr(e8, "message"));
    assert_non_null(strstr(jstr(e8, "message"), "after 2 redos"));
    assert_non_null(strstr(jstr(e8, "message"), "billing-engine-access already exists"));
    assert_int_equal(ob_test_sim_account_count(sim, acct8, "cloudformation.CreateStack"), 3);
    assert_int_equal(ob_test_sim_account_count(sim, acct8, "cloudformation.DeleteStack"), 2);
    /* Its hand-off was kept parsed only: the dead letter gives it encoded
     * again, with the size and SHA-256 of the bytes sent. */
    ob_test_check_dlq_original(d8, "member 8", sent_doomed, strlen(sent_doomed));
    json_t *st8 = redis_state(DOOMED, NULL);
    assert_string_equal(jstr(st8, "status"), "failed");
    assert_string_equal(jstr(st8, "error_code"), "stack_failed");
    json_decref(st8);
    json_t *d0 = ob_test_out_first(out, "dlq", "bad-0");
    assert_string_equal(jstr(json_object_get(d0, "error"), "class"), "invalid_input");

    /* Round 2: the same hand-offs again, as a worker redoes them when their
     * outputs were lost after the state recorded them (an aborted
     * transaction), and as one did before outputs were transactional.
     * Nothing is made; every ExternalId stays. */
    for (int i = 1; i <= NACCT; i++)
        forget_done(i);
    ob_test_out_clear(out);
    size_t nstacks = json_object_size(sim_section(sim, "stacks"));
    long long creates_before = ob_test_sim_count(sim, "cloudformation.CreateStack");
    t0 = ob_loop_update_time(H.loop);
    produce(0, NULL);
    assert_true(ob_test_run_until(H.loop, got_all, &want, 120000));
    assert_true(ob_test_run_until(H.loop, ob_test_worker_idle, w, 30000));
    printf("round 2: %d outputs in %llu ms\n", out->keys,
           (unsigned long long)(ob_loop_update_time(H.loop) - t0));
    assert_int_equal(json_object_size(connect), NACCT - 1);
    for (int i = 1; i <= NACCT; i++) {
        if (i == DOOMED)
            continue;
        char acct[16];
        acct_of(i, acct);
        got_t again;
        handoff_of(out, i, &again);
        assert_string_equal(again.stack_id, got[i].stack_id);
        assert_string_equal(again.role_arn, got[i].role_arn);
        assert_string_equal(again.external_id, got[i].external_id);
        /* "No updates are to be performed.": still CREATE_COMPLETE, never updated. */
        check_account(sim, i, &got[i], "CREATE_COMPLETE");
        assert_null(json_object_get(stack_by_id(sim, got[i].stack_id), "LastUpdatedTime"));
        assert_int_equal(ob_test_sim_account_count(sim, acct, "cloudformation.UpdateStack"),
                         i % 2 ? 0 : 1);
        assert_int_equal(ob_test_sim_account_count(sim, acct, "cloudformation.CreateStack"),
                         i == ROLLBACK1 ? 2 : 1);
    }
    /* Only member 8 made stacks again (its redos, which fail the same way). */
    long long creates_after = ob_test_sim_count(sim, "cloudformation.CreateStack");
    printf("CreateStack calls: %lld before round 2, %lld after (member 8's redos)\n",
           creates_before, creates_after);
    assert_int_equal(creates_after - creates_before, 2);
    assert_int_equal(json_object_size(sim_section(sim, "stacks")), nstacks + 2);

    /* Round 3: existing member 20 now names its CUR bucket: a real update
     * that keeps the ExternalId (UsePreviousValue) and grants that bucket. */
    ob_test_out_clear(out);
    want_t one = {out, 1, want.role_freed};
    forget_done(UPDATED);
    produce(UPDATED, ",\"bucket\":{\"name\":\"acme-cur-20\"}");
    assert_true(ob_test_run_until(H.loop, got_all, &one, 60000));
    got_t upd;
    handoff_of(out, UPDATED, &upd);
    assert_string_equal(upd.stack_id, got[UPDATED].stack_id);
    assert_string_equal(upd.external_id, got[UPDATED].external_id);
    json_t *role = check_account(sim, UPDATED, &upd, "UPDATE_COMPLETE");
    char *pol = policy_text(role);
    assert_non_null(strstr(pol, "arn:aws:s3:::acme-cur-20/*"));
    free(pol);

    free(sent_doomed);
    sent_doomed = NULL;
    assert_int_equal(ob_test_end(&H), OB_OK); /* the worker's graceful shutdown */
}

int main(void)
{
    ob_test_harness_init(&H, "itiam");
    ob_test_set(&H, "OB_INFLIGHT_MAX", "8"); /* smaller than the batch: the window pauses */
    ob_test_set(&H, "OB_BILLING_PRINCIPAL", PRINCIPAL);
    ob_test_set(&H, "OB_STACK_POLL", "100ms");
    ob_test_set(&H, "OB_STACK_REDO_MAX", "2");
    ob_log_set_level(OB_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iam_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
