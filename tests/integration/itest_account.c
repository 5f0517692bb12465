/*
 * The account, not the request, is the unit: the four stage workers (the
 * real runtime, on one loop) against a real Kafka broker, a real Redis and
 * the simulator, fed what operators really send:
 *   - the same batch enqueued twice (new request ids): one connection per
 *     account, one key, nothing done in AWS the second time, and each
 *     account's record says the second request changed nothing;
 *   - 20 requests for one account, each with another bucket, at once: the
 *     account ends as the newest asks (its bucket, one report pointing at
 *     it, one stack), the record names the requests it superseded and the
 *     buckets earlier requests made (kept), and no key is announced twice;
 *   - a second request while the first is half-way (at iam): the first
 *     stops at its next stage boundary and is never announced, the second
 *     ends as the account's one connection, the first's bucket listed;
 *   - a request for another region (the stack must move: the role's name is
 *     fixed and IAM is global): the old region's stack is deleted first,
 *     the new one keeps the ExternalId, one report points at the new
 *     region's bucket, and nothing is delivered twice;
 *   - Redis stopped for seconds while accounts are at connect, and Redis
 *     flushed mid-batch: every account connected once, and every record
 *     there is true (connected, under its event's key), none left behind at
 *     an earlier stage; onboardctl check names the accounts whose record
 *     the flush took, rebuild writes them back from the topics, and then
 *     everything agrees;
 *   - a request that renames the report: the old report is deleted once the
 *     new one is in place (billing data is never delivered twice), and the
 *     new connection gets a key of its own.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "ob_kafka.h"
#include "ob_log.h"
#include "ob_state.h"
#include "ob_worker.h"
#include "sim.h"
#include "stages.h"

#define MGMT_ROOT "arn:aws:iam::111111111111:root"
#define NTWICE    10 /* members 1..10: enqueued twice */
#define MANY      20 /* member 20: 20 requests at once */
#define RENAMED   30 /* member 30: its report renamed */
#define MIDWAY    25 /* member 25: a second request while the first is at iam */
#define MOVED     35 /* member 35: another region */

static ob_test_harness_t H;

/* Requests in one go: request i of n for account member[i] in region,
 * with extra members (",\"bucket\":..." or ""). */
static void produce_in(const int *member, const char *const *rid, const char *const *extra, int n,
                       const char *region)
{
    ob_test_producer_t *p = ob_test_producer(&H);
    char acct[16];
    for (int i = 0; i < n; i++) {
        ob_test_member_account(member[i], acct);
        ob_test_req_t rq = {.rid = rid[i], .account = acct, .region = region, .extra = extra[i]};
        ob_test_send_request(p, &rq);
    }
    ob_test_producer_done(p);
}

static void produce(const int *member, const char *const *rid, const char *const *extra, int n)
{
    produce_in(member, rid, extra, n, "eu-west-1");
}

/* The four stage workers on one loop and an auditor of what they announce. */
typedef struct fleet_s {
    ob_worker_t *w[4];
    ob_test_out_t *out; /* connected and dlq */
    json_t *events;     /* account -> [event...] in the order seen */
    json_t *dlq;        /* account -> [record...] */
} fleet_t;

/* Connected events seen (raw: a redelivered one counts again). */
static int raw_events(const fleet_t *f)
{
    return ob_test_out_seen(f->out, "connected");
}

typedef struct wait_state_s {
    const int *member;
    int n;
    const char *field, *want_prefix; /* want: prefix + this suffix */
    const char *const *want;
} wait_state_t;

/* Every member's state field is the wanted value and the workers are idle. */
static int states_are(void *arg)
{
    wait_state_t *ws = arg;
    if (!ob_test_workers_idle(&H))
        return 0;
    for (int i = 0; i < ws->n; i++) {
        char *v = ob_test_member_state(&H, ws->member[i], ws->field);
        char want[256];
        snprintf(want, sizeof(want), "%s%s", ws->want_prefix, ws->want[i]);
        int ok = !strcmp(v, want);
        free(v);
        if (!ok)
            return 0;
    }
    return 1;
}

static void wait_states(const int *member, int n, const char *field, const char *want_prefix,
                        const char *const *want)
{
    wait_state_t ws = {member, n, field, want_prefix, want};
    if (!ob_test_run_until(H.loop, states_are, &ws, 120000)) {
        for (int i = 0; i < n; i++) {
            char *v = ob_test_member_state(&H, member[i], field),
                 *st = ob_test_member_state(&H, member[i], "status");
            printf("member %d: %s=%s (want %s%s), status %s\n", member[i], field, v, want_prefix,
                   want[i], st);
            free(v);
            free(st);
        }
        fail_msg("the accounts' states never showed %s", field);
    }
}

static void fleet_start(fleet_t *f)
{
    memset(f, 0, sizeof(*f));
    ob_test_fleet(&H, "ita", 40, 9, f->w);
    ob_test_out_opts_t oo = {.group = "auditor", .topics = {"connected", "dlq"}};
    f->out = ob_test_out_new(&H, &oo);
    f->events = ob_test_out_map(f->out, "connected");
    f->dlq = ob_test_out_map(f->out, "dlq");
    ob_test_redis(&H);
}

static void events_have_distinct_keys(fleet_t *f, const char *acct)
{
    json_t *evs = json_object_get(f->events, acct), *ev;
    json_t *keys = json_object();
    size_t i;
    json_array_foreach(evs, i, ev)
    {
        const char *k = json_string_value(json_object_get(ev, "idempotency_key"));
        assert_non_null(k);
        if (json_object_get(keys, k))
            fail_msg("account %s: the key %s announced twice", acct, k);
        json_object_set_new(keys, k, json_true());
    }
    json_decref(keys);
}

typedef struct want_events_s {
    fleet_t *f;
    int n;
} want_events_t;

static int events_seen(void *arg)
{
    want_events_t *w = arg;
    return raw_events(w->f) >= w->n;
}

/* The auditor has seen n events (they are committed after the states). */
static void wait_events(fleet_t *f, int n)
{
    want_events_t w = {f, n};
    if (!ob_test_run_until(H.loop, events_seen, &w, 30000))
        fail_msg("%d connected events seen, %d expected", raw_events(f), n);
}

static void test_enqueued_twice(void **state)
{
    fleet_t f;
    fleet_start(&f);
    int member[NTWICE];
    const char *rid[NTWICE], *extra[NTWICE], *ids[NTWICE];
    char rbuf[NTWICE][32], ibuf[NTWICE][32];
    for (int i = 0; i < NTWICE; i++) {
        member[i] = i + 1;
        snprintf(rbuf[i], sizeof(rbuf[i]), "first-%d", i + 1);
        rid[i] = rbuf[i];
        extra[i] = "";
    }
    produce(member, rid, extra, NTWICE);
    wait_states(member, NTWICE, "connected_request", H.prefix, rid);
    wait_events(&f, NTWICE);
    long long made = ob_test_sim_mutations(H.sim);
    assert_int_equal(raw_events(&f), NTWICE);

    /* The same rows again, as a second `onboardctl enqueue` sends them. */
    for (int i = 0; i < NTWICE; i++) {
        snprintf(ibuf[i], sizeof(ibuf[i]), "second-%d", i + 1);
        ids[i] = ibuf[i];
    }
    produce(member, ids, extra, NTWICE);
    const char *unchanged[NTWICE];
    for (int i = 0; i < NTWICE; i++)
        unchanged[i] = "unchanged";
    wait_states(member, NTWICE, "outcome", "", unchanged);
    ob_test_run_for(H.loop, 1000); /* anything late would show now */
    printf("enqueued twice: %d connected events for %d accounts, %lld AWS changes the first "
           "time, %lld the second\n",
           raw_events(&f), NTWICE, made, ob_test_sim_mutations(H.sim) - made);
    assert_int_equal(raw_events(&f), NTWICE);
    assert_int_equal(ob_test_sim_mutations(H.sim), made);
    for (int i = 0; i < NTWICE; i++) {
        char acct[16];
        ob_test_member_account(member[i], acct);
        assert_int_equal(json_array_size(json_object_get(f.events, acct)), 1);
        char *v = ob_test_member_state(&H, member[i], "request_id");
        char want[96];
        snprintf(want, sizeof(want), "%s%s", H.prefix, ids[i]);
        assert_string_equal(v, want);
        free(v);
        v = ob_test_member_state(&H, member[i], "status");
        assert_string_equal(v, "connected");
        free(v);
    }
    ob_worker_stats_t st;
    ob_worker_get_stats(f.w[0], &st);
    assert_int_equal(st.unchanged, NTWICE);
    ob_test_end(&H);
}

static void test_many_requests_one_account(void **state)
{
    fleet_t f;
    fleet_start(&f);
    char acct[16];
    ob_test_member_account(MANY, acct);
    int member[MANY];
    const char *rid[MANY], *extra[MANY];
    char rbuf[MANY][32], ebuf[MANY][96];
    for (int i = 0; i < MANY; i++) {
        member[i] = MANY;
        snprintf(rbuf[i], sizeof(rbuf[i]), "many-%d", i + 1);
        snprintf(ebuf[i], sizeof(ebuf[i]), ",\"bucket\":{\"name\":\"cur-%s-%d\"}", acct, i + 1);
        rid[i] = rbuf[i];
        extra[i] = ebuf[i];
    }
    produce(member, rid, extra, MANY);
    const char *last[] = {rid[MANY - 1]};
    wait_states(member, 1, "connected_request", H.prefix, last);
    wait_events(&f, 1);
    ob_test_run_for(H.loop, 1000);

    char want_bucket[64];
    snprintf(want_bucket, sizeof(want_bucket), "cur-%s-%d", acct, MANY);
    char *bucket = ob_test_member_state(&H, MANY, "bucket"),
         *superseded = ob_test_member_state(&H, MANY, "superseded");
    char *old = ob_test_member_state(&H, MANY, "old_buckets"),
         *status = ob_test_member_state(&H, MANY, "status");
    printf("20 requests: %zu connected events; superseded: %s; old buckets: %s\n",
           json_array_size(json_object_get(f.events, acct)), superseded, old);
    assert_string_equal(status, "connected");
    assert_string_equal(bucket, want_bucket);
    /* Every earlier request is named as superseded. */
    for (int i = 0; i < MANY - 1; i++) {
        char name[96];
        snprintf(name, sizeof(name), "%s%s", H.prefix, rid[i]);
        if (!ob_list_has(superseded, name))
            fail_msg("%s is not listed as superseded (%s)", name, superseded);
    }
    /* Buckets earlier requests made are kept and listed; no other bucket
     * of the account exists. */
    json_t *buckets = sim_section(H.sim, "buckets");
    const char *name;
    json_t *b;
    int made = 0;
    json_object_foreach(buckets, name, b)
    {
        if (strncmp(name, "cur-", 4) != 0 || !strstr(name, acct))
            continue;
        made++;
        if (strcmp(name, want_bucket) != 0 && !ob_list_has(old, name))
            fail_msg("bucket %s was made but is not listed (%s)", name, old);
    }
    assert_true(json_object_get(buckets, want_bucket) != NULL);
    /* One report, pointing at the newest bucket; one live stack. */
    json_t *reports = json_object_get(sim_section(H.sim, "reports"), acct);
    assert_int_equal(json_object_size(reports), 1);
    json_t *rep = json_object_get(reports, "billing-engine-cur");
    assert_non_null(rep);
    assert_string_equal(json_string_value(json_object_get(rep, "S3Bucket")), want_bucket);
    assert_int_equal(ob_test_sim_live_stacks(H.sim, acct, NULL), 1);
    /* The last event announces the newest bucket; no key twice. */
    json_t *evs = json_object_get(f.events, acct);
    assert_true(json_array_size(evs) >= 1);
    json_t *ev = json_array_get(evs, json_array_size(evs) - 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "report"), "bucket")),
                        want_bucket);
    events_have_distinct_keys(&f, acct);
    assert_int_equal(json_object_size(f.dlq), 0);
    printf("20 requests: %d buckets made\n", made);
    free(bucket);
    free(superseded);
    free(old);
    free(status);
    ob_test_end(&H);
}

/* Y (midway-y) is done at iam: the record says so. */
static int y_done_at_iam(void *arg)
{
    (void)arg;
    char *stage = ob_test_member_state(&H, MIDWAY, "stage"),
         *status = ob_test_member_state(&H, MIDWAY, "status"),
         *rid = ob_test_member_state(&H, MIDWAY, "request_id");
    char want[96];
    snprintf(want, sizeof(want), "%smidway-y", H.prefix);
    int done = !strcmp(stage, "iam") && !strcmp(status, "done") && !strcmp(rid, want);
    free(stage);
    free(status);
    free(rid);
    return done;
}

static void test_superseded_midway(void **state)
{
    fleet_t f;
    fleet_start(&f);
    char acct[16];
    ob_test_member_account(MIDWAY, acct);
    int member[] = {MIDWAY};
    const char *x[] = {"midway-x"}, *ex[] = {",\"bucket\":{\"name\":\"cur-x-midway\"}"};
    produce(member, x, ex, 1);
    /* Look at the record only. */
    for (int i = 0; i < 3000; i++) {
        char *v = ob_test_member_state(&H, MIDWAY, "stage");
        int there = !strcmp(v, "iam");
        free(v);
        if (there)
            break;
        ob_test_run_for(H.loop, 10);
    }
    /* X is at iam. Its hand-off to connect waits there (the connect worker
     * stopped) while Y comes in: which of X's connect and Y's intake takes
     * the account's lock first is a race a hand-off of milliseconds wins,
     * and this test is about Y replacing X under way. */
    assert_int_equal(ob_test_worker_stop(&H, f.w[3]), OB_OK);
    const char *y[] = {"midway-y"}, *ey[] = {",\"bucket\":{\"name\":\"cur-y-midway\"}"};
    produce(member, y, ey, 1);
    assert_true(ob_test_run_until(H.loop, y_done_at_iam, NULL, 120000));
    f.w[3] = ob_test_worker(&H, &ob_stage_connect, NULL, 5000);
    wait_states(member, 1, "connected_request", H.prefix, y);
    wait_events(&f, 1);
    ob_test_run_for(H.loop, 1500);
    char *sup = ob_test_member_state(&H, MIDWAY, "superseded"),
         *old = ob_test_member_state(&H, MIDWAY, "old_buckets");
    char xname[96];
    snprintf(xname, sizeof(xname), "%smidway-x", H.prefix);
    printf("superseded midway: %d events; superseded %s; old buckets %s\n", raw_events(&f), sup,
           old);
    assert_true(ob_list_has(sup, xname));
    assert_true(ob_list_has(old, "cur-x-midway"));
    assert_non_null(json_object_get(sim_section(H.sim, "buckets"), "cur-x-midway")); /* kept */
    json_t *reports = json_object_get(sim_section(H.sim, "reports"), acct);
    assert_int_equal(json_object_size(reports), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(reports, "billing-engine-cur"), "S3Bucket")),
                        "cur-y-midway");
    assert_int_equal(raw_events(&f), 1);
    ob_worker_stats_t st;
    int superseded = 0;
    for (int i = 1; i < 4; i++) {
        ob_worker_get_stats(f.w[i], &st);
        superseded += (int)st.superseded;
    }
    assert_int_equal(superseded, 1); /* x's hand-off from iam, stopped at connect */
    free(sup);
    free(old);
    ob_test_end(&H);
}

static void test_region_moved(void **state)
{
    fleet_t f;
    fleet_start(&f);
    char acct[16];
    ob_test_member_account(MOVED, acct);
    int member[] = {MOVED};
    const char *a[] = {"region-a"}, *none[] = {""};
    produce_in(member, a, none, 1, "us-east-1");
    wait_states(member, 1, "connected_request", H.prefix, a);
    wait_events(&f, 1);
    const char *b[] = {"region-b"};
    produce_in(member, b, none, 1, "eu-west-1");
    wait_states(member, 1, "connected_request", H.prefix, b);
    wait_events(&f, 2);
    json_t *evs = json_object_get(f.events, acct);
    json_t *ea1 = json_array_get(evs, 0), *eb1 = json_array_get(evs, 1);
    events_have_distinct_keys(&f, acct);
    /* The same role and ExternalId: what the Billing Engine knows stays. */
    assert_string_equal(json_string_value(json_object_get(ea1, "role_arn")),
                        json_string_value(json_object_get(eb1, "role_arn")));
    assert_string_equal(json_string_value(json_object_get(ea1, "external_id")),
                        json_string_value(json_object_get(eb1, "external_id")));
    assert_non_null(strstr(json_string_value(json_object_get(eb1, "stack_id")), ":eu-west-1:"));
    /* One live stack, in the new region. */
    assert_int_equal(ob_test_sim_live_stacks(H.sim, acct, NULL), 1);
    assert_int_equal(ob_test_sim_live_stacks(H.sim, acct, ":eu-west-1:"), 1);
    /* One report, on the new region's bucket; the old bucket kept, listed. */
    json_t *reports = json_object_get(sim_section(H.sim, "reports"), acct);
    assert_int_equal(json_object_size(reports), 1);
    json_t *rep = json_object_get(reports, "billing-engine-cur");
    char want[64], old_name[64];
    snprintf(want, sizeof(want), "billing-cur-%s-eu-west-1", acct);
    snprintf(old_name, sizeof(old_name), "billing-cur-%s-us-east-1", acct);
    assert_string_equal(json_string_value(json_object_get(rep, "S3Bucket")), want);
    assert_string_equal(json_string_value(json_object_get(rep, "S3Region")), "eu-west-1");
    char *old = ob_test_member_state(&H, MOVED, "old_buckets");
    assert_true(ob_list_has(old, old_name));
    free(old);
    assert_int_equal(json_object_size(f.dlq), 0);
    ob_test_end(&H);
}

#define NBATCH 40 /* members 1..40: the Redis trouble batches */

/* The batch of members 1..NBATCH, with request ids tag-i. */
static void produce_batch(fleet_t *f, const char *tag, int *member, const char **rid,
                          char rbuf[][32])
{
    const char *extra[NBATCH];
    for (int i = 0; i < NBATCH; i++) {
        member[i] = i + 1;
        snprintf(rbuf[i], 32, "%s-%d", tag, i + 1);
        rid[i] = rbuf[i];
        extra[i] = "";
    }
    produce(member, rid, extra, NBATCH);
}

/* Every record there is true: connected, by its own request, under the key
 * of the account's one event. Returns how many accounts have no record. */
static int records_true(fleet_t *f, const int *member, const char *const *rid)
{
    int missing = 0;
    for (int i = 0; i < NBATCH; i++) {
        char acct[16], want[96];
        ob_test_member_account(member[i], acct);
        json_t *evs = json_object_get(f->events, acct);
        if (json_array_size(evs) < 1)
            fail_msg("account %s: no connected event", acct);
        events_have_distinct_keys(f, acct);
        char *status = ob_test_member_state(&H, member[i], "status");
        if (!status[0]) {
            missing++;
            free(status);
            continue;
        }
        char *key = ob_test_member_state(&H, member[i], "idempotency_key");
        char *by = ob_test_member_state(&H, member[i], "connected_request");
        snprintf(want, sizeof(want), "%s%s", H.prefix, rid[i]);
        if (strcmp(status, "connected") != 0 || strcmp(by, want) != 0 ||
            strcmp(key, json_string_value(
                            json_object_get(json_array_get(evs, 0), "idempotency_key"))) != 0)
            fail_msg("account %s: the record says %s by %s under %s", acct, status, by, key);
        free(status);
        free(key);
        free(by);
    }
    return missing;
}

static void run_services(const char *what)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' %s '%s' >/dev/null 2>&1",
             ob_test_service_env("OB_TEST_SERVICES_SCRIPT", "scripts/services.sh"), what,
             ob_test_service_env("OB_TEST_SERVICES_DIR", "the services' run directory"));
    assert_int_equal(system(cmd), 0);
}

/* Run onboardctl CMD on this fleet's topics and Redis: its exit code, and
 * the last line of its output in out. */
static int ctl(fleet_t *f, const char *cmd, char *out, size_t n)
{
    (void)f;
    return ob_test_ctl(&H, OB_ONBOARDCTL, cmd, out, n);
}

static void test_redis_stopped(void **state)
{
    fleet_t f;
    ob_test_set(&H, "OB_INFLIGHT_MAX",
                "4"); /* the batch in waves: most accounts are mid-way at any time */
    fleet_start(&f);
    int member[NBATCH];
    const char *rid[NBATCH];
    char rbuf[NBATCH][32];
    produce_batch(&f, "stopped", member, rid, rbuf);
    wait_events(&f, 1);
    /* Accounts are at connect (and earlier): Redis goes away for 8 s. */
    ob_test_redis_close(&H);
    run_services("stop-redis");
    ob_test_run_for(H.loop, 8000);
    run_services("start-redis");
    ob_test_redis(&H);
    wait_states(member, NBATCH, "connected_request", H.prefix, rid);
    wait_events(&f, NBATCH);
    ob_test_run_for(H.loop, 1000);
    printf("Redis stopped 8 s: %d events for %d accounts\n", raw_events(&f), NBATCH);
    assert_int_equal(records_true(&f, member, rid), 0);
    assert_int_equal(raw_events(&f), NBATCH);
    ob_test_end(&H);
    ob_test_set(&H, "OB_INFLIGHT_MAX", NULL);
}

static void test_flushall_midbatch(void **state)
{
    fleet_t f;
    ob_test_set(&H, "OB_INFLIGHT_MAX", "4");
    fleet_start(&f);
    int member[NBATCH];
    const char *rid[NBATCH];
    char rbuf[NBATCH][32];
    produce_batch(&f, "flushed", member, rid, rbuf);
    wait_events(&f, 1);
    int before = raw_events(&f);
    /* The flush, and at the same instant how many of the batch's records
     * said connected: an
     * outcome is recorded before its transaction commits, so an account can
     * be recorded with its event not out yet. Only those may lose their
     * record to the flush. */
    static const char script[] = "local n = 0 "
                                 "for _, k in ipairs(KEYS) do "
                                 "if redis.call('HGET', k, 'status') == 'connected' then "
                                 "n = n + 1 end end "
                                 "redis.call('FLUSHALL') return n";
    const char *argv[3 + NBATCH];
    char keys[NBATCH][OB_STATE_KEY_LEN], nkeys[8];
    snprintf(nkeys, sizeof(nkeys), "%d", NBATCH);
    argv[0] = "EVAL", argv[1] = script, argv[2] = nkeys;
    for (int i = 0; i < NBATCH; i++) {
        char acct[16];
        ob_test_member_account(member[i], acct);
        ob_state_key(acct, keys[i], sizeof(keys[i]));
        argv[3 + i] = keys[i];
    }
    redisReply *r = redisCommandArgv(ob_test_redis(&H), 3 + NBATCH, argv, NULL);
    assert_true(r && r->type == REDIS_REPLY_INTEGER);
    int recorded = (int)r->integer;
    freeReplyObject(r);
    wait_events(&f, NBATCH);
    /* Whatever was in flight finishes with a record again. */
    ob_test_run_until(H.loop, ob_test_workers_idle, &H, 60000);
    ob_test_run_for(H.loop, 1000);
    int missing = records_true(&f, member, rid);
    printf("FLUSHALL after %d of %d events (%d records said connected): %d events in all, "
           "%d accounts without a record (connected before the flush)\n",
           before, NBATCH, recorded, raw_events(&f), missing);
    assert_int_equal(raw_events(&f), NBATCH);
    /* Only accounts recorded as connected before the flush may have lost
     * their record; none is left saying an earlier stage. */
    assert_true(missing <= recorded);
    assert_true(before < NBATCH / 2); /* the flush came mid-batch */

    /* The topics still know: check names each account without a record,
     * rebuild writes them back, and then everything agrees. */
    char out[256];
    int rc = ctl(&f, "check", out, sizeof(out));
    printf("check after the flush: exit %d: %s\n", rc, out);
    assert_int_equal(rc, missing ? 5 : 0);
    char want[96];
    snprintf(want, sizeof(want), "%d accounts agree with the topics, %d differ", NBATCH - missing,
             missing);
    assert_non_null(strstr(out, want));
    rc = ctl(&f, "rebuild", out, sizeof(out));
    printf("rebuild: exit %d: %s\n", rc, out);
    assert_int_equal(rc, 0);
    snprintf(want, sizeof(want), "%d records written", missing);
    assert_non_null(strstr(out, want));
    assert_int_equal(records_true(&f, member, rid), 0);
    rc = ctl(&f, "check", out, sizeof(out));
    assert_int_equal(rc, 0);
    snprintf(want, sizeof(want), "%d accounts agree with the topics, 0 differ", NBATCH);
    assert_non_null(strstr(out, want));
    ob_test_end(&H);
    ob_test_set(&H, "OB_INFLIGHT_MAX", NULL);
}

static void test_report_renamed(void **state)
{
    fleet_t f;
    fleet_start(&f);
    char acct[16];
    ob_test_member_account(RENAMED, acct);
    int member[] = {RENAMED};
    const char *a[] = {"named-a"}, *ea[] = {",\"report\":{\"name\":\"cur-a\"}"};
    produce(member, a, ea, 1);
    wait_states(member, 1, "connected_request", H.prefix, a);
    const char *b[] = {"named-b"}, *eb[] = {",\"report\":{\"name\":\"cur-b\"}"};
    produce(member, b, eb, 1);
    wait_states(member, 1, "connected_request", H.prefix, b);
    wait_events(&f, 2);
    json_t *reports = json_object_get(sim_section(H.sim, "reports"), acct);
    assert_int_equal(json_object_size(reports), 1);
    assert_non_null(json_object_get(reports, "cur-b"));
    char *retired = ob_test_member_state(&H, RENAMED, "retired_reports");
    assert_string_equal(retired, "cur-a");
    free(retired);
    json_t *evs = json_object_get(f.events, acct);
    assert_int_equal(json_array_size(evs), 2);
    events_have_distinct_keys(&f, acct);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(evs, 1), "report"), "name")),
                        "cur-b");
    ob_test_end(&H);
}

int main(void)
{
    ob_test_harness_init(&H, "ita");
    ob_test_set(&H, "OB_BILLING_PRINCIPAL", MGMT_ROOT);
    ob_test_set(&H, "OB_STACK_POLL", "100ms");
    ob_test_set(&H, "OB_CONNECT_RETRIES", "3");
    ob_test_set(&H, "OB_CONNECT_RETRY_WAIT", "200ms");
    ob_test_set(&H, "OB_INFLIGHT_MAX", NULL); /* the default, but for the Redis trouble batches */
    ob_log_set_level(OB_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enqueued_twice),    cmocka_unit_test(test_many_requests_one_account),
        cmocka_unit_test(test_superseded_midway), cmocka_unit_test(test_region_moved),
        cmocka_unit_test(test_report_renamed),    cmocka_unit_test(test_redis_stopped),
        cmocka_unit_test(test_flushall_midbatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
