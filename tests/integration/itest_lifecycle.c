/*
 * The rest of an account's life: the four stage workers (the real runtime,
 * on one loop) against a real Kafka broker, a real Redis and the simulator.
 *
 * Offboarding, as an operator does it (`onboardctl offboard`, the real tool):
 *   - a batch of connected accounts (mode new, and one of mode existing with
 *     a report of its own) is offboarded: every stack of the fleet's is
 *     gone (and with it the Billing Engine role), every report definition
 *     the fleet made is gone, the account's own report is kept even when an
 *     older record listed it as the fleet's, every bucket stays; one
 *     onboard.disconnected/1 per account on the connected topic, naming the
 *     connection it ends (its key), what was removed and the buckets kept;
 *     each record says disconnected and no longer holds the connection;
 *   - offboarding them again, and offboarding an account the fleet never
 *     onboarded, changes nothing in AWS and announces nothing: each record
 *     says unchanged, with the reason;
 *   - a later mode new request onboards an offboarded account again, with a
 *     fresh ExternalId (a new connection key), and `onboardctl check` agrees
 *     with the records throughout;
 * Accounts joining, as AWS announces them (the real example events of
 * proto/examples/aws-events on the intake topic, each delivered twice):
 * Organizations' CreateAccountResult and AcceptHandshake and Control Tower's
 * CreateManagedAccount (through the role Control Tower makes) each onboard
 * their account once; every other event is a dead letter naming it.
 *
 *   - `onboardctl status` tells the account's story in order: requested,
 *     connected, requested (offboard), disconnected, unchanged (with the
 *     reason), requested, connected (under the new key).
 * Drift (`onboardctl verify`): what operators change by hand is found, by
 * kind, then repaired through the stages and found in sync.
 * onboard-lifecycle, as processes of their own (two replicas):
 *   - the watcher onboards the organization's accounts, a capped number a
 *     round, and those that join while it runs (the simulator's admin API,
 *     CreateAccount through the AWS CLI), each exactly once (one request
 *     watcher:ACCOUNT on the intake topic, one connection), while the
 *     working replica is killed (the standby takes over when the lease
 *     expires) and shut down (at once); the management account and an
 *     excluded OU's accounts are never enqueued, nor is an account the
 *     ledger says a predecessor sent; one it left "sending" is sent again;
 *   - the periodic verification with repair finds a role and a stack
 *     deleted by hand (the AWS CLI), repairs each once (the stack with a new
 *     connection: its ExternalId went with it) and finds them in sync.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "ob_buf.h"
#include "ob_log.h"
#include "ob_msg.h"
#include "ob_state.h"
#include "ob_time.h"
#include "ob_worker.h"
#include "sim.h"
#include "stages.h"

#define MGMT_ROOT "arn:aws:iam::111111111111:root"
#define NBATCH    6  /* members 1..6: mode new, offboarded */
#define EXISTING  7  /* member 7: mode existing, a report of its own */
#define NEVER     9  /* member 9: never onboarded */
#define LOST      14 /* member 14: its record lost before it is offboarded */
#define OWN_CUR   "finance-cur"

static ob_test_harness_t H;

typedef struct fleet_s {
    ob_worker_t *w[4];
    ob_test_out_t *out; /* connected (both events) and dlq */
    json_t *events;     /* account -> [event...] */
} fleet_t;

static void fleet_start(fleet_t *f)
{
    memset(f, 0, sizeof(*f));
    ob_test_fleet(&H, "itl", 20, 5, f->w);
    ob_test_out_opts_t oo = {.group = "auditor", .topics = {"connected", "dlq"}};
    f->out = ob_test_out_new(&H, &oo);
    f->events = ob_test_out_map(f->out, "connected");
    ob_test_redis(&H);
}

typedef struct acct_want_s {
    const char *const *acct;
    int n;
    const char *field, *value;
} acct_want_t;

static int accounts_are(void *arg)
{
    acct_want_t *w = arg;
    if (!ob_test_workers_idle(&H))
        return 0;
    for (int i = 0; i < w->n; i++) {
        char *v = ob_test_state(&H, w->acct[i], w->field);
        int ok = !strcmp(v, w->value);
        free(v);
        if (!ok)
            return 0;
    }
    return 1;
}

static void wait_accounts(const char *const *acct, int n, const char *field, const char *value)
{
    acct_want_t w = {acct, n, field, value};
    if (!ob_test_run_until(H.loop, accounts_are, &w, 120000)) {
        for (int i = 0; i < n; i++) {
            char *v = ob_test_state(&H, acct[i], field),
                 *e = ob_test_state(&H, acct[i], "error_message");
            printf("%s: %s=%s (want %s), error %s\n", acct[i], field, v, value, e);
            free(v);
            free(e);
        }
        fail_msg("the records never showed %s=%s", field, value);
    }
}

/* Every member's record has field = value, and the workers are idle. */
static void wait_field(const int *member, int n, const char *field, const char *value)
{
    char accts[64][16];
    const char *acct[64];
    assert_true(n <= 64);
    for (int i = 0; i < n; i++) {
        ob_test_member_account(member[i], accts[i]);
        acct[i] = accts[i];
    }
    wait_accounts(acct, n, field, value);
}

/* Events of one kind ("onboard.connected/1") kept for an account. */
static int events_of(fleet_t *f, const char *acct, const char *schema)
{
    json_t *evs = json_object_get(f->events, acct), *ev;
    size_t i;
    int n = 0;
    json_array_foreach(evs, i, ev)
    {
        n += !strcmp(json_string_value(json_object_get(ev, "schema")), schema);
    }
    return n;
}

static json_t *last_event(fleet_t *f, const char *acct, const char *schema)
{
    json_t *evs = json_object_get(f->events, acct), *ev, *last = NULL;
    size_t i;
    json_array_foreach(evs, i, ev)
    {
        if (!strcmp(json_string_value(json_object_get(ev, "schema")), schema))
            last = ev;
    }
    return last;
}

typedef struct want_events_s {
    fleet_t *f;
    const char *schema;
    int n;
} want_events_t;

static int all_events(void *arg)
{
    want_events_t *w = arg;
    int n = 0;
    const char *key;
    json_t *evs;
    json_object_foreach(w->f->events, key, evs)
    {
        n += events_of(w->f, key, w->schema);
    }
    return n >= w->n;
}

static void wait_events(fleet_t *f, const char *schema, int n)
{
    want_events_t w = {f, schema, n};
    if (!ob_test_run_until(H.loop, all_events, &w, 30000))
        fail_msg("fewer than %d %s events seen", n, schema);
}

static void onboard(const int *member, int n, const char *tag, const char *mode)
{
    ob_test_producer_t *p = ob_test_producer(&H);
    char acct[16], rid[32];
    for (int i = 0; i < n; i++) {
        ob_test_member_account(member[i], acct);
        snprintf(rid, sizeof(rid), "%s-%d", tag, member[i]);
        ob_test_req_t rq = {.rid = rid, .account = acct, .mode = mode, .region = "eu-west-1"};
        ob_test_send_request(p, &rq);
    }
    ob_test_producer_done(p);
}

/* `onboardctl offboard` of the members (its exit status). */
static int offboard(const int *member, int n, char *out, size_t outn)
{
    char args[1024] = "offboard --region eu-west-1 --requester itest";
    for (int i = 0; i < n; i++) {
        char acct[16];
        ob_test_member_account(member[i], acct);
        size_t used = strlen(args);
        snprintf(args + used, sizeof(args) - used, " %s", acct);
    }
    return ob_test_ctl(&H, OB_ONBOARDCTL, args, out, outn);
}

static const char *str_of(const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

static int bucket_exists(const char *name)
{
    return json_object_get(sim_section(H.sim, "buckets"), name) != NULL;
}

static void test_offboard(void **state)
{
    (void)state;
    fleet_t f;
    fleet_start(&f);
    char acct[16], out[512];
    /* Member EXISTING has a report of its own, delivering to its own bucket. */
    ob_test_member_account(EXISTING, acct);
    char seed[512];
    snprintf(
        seed, sizeof(seed),
        "{\"reports\":[{\"Account\":\"%s\",\"ReportDefinition\":{\"ReportName\":\"" OWN_CUR
        "\",\"S3Bucket\":\"acme-own-cur\",\"S3Prefix\":\"cur/\",\"S3Region\":\"us-east-1\"}}]}",
        acct);
    assert_int_equal(ob_test_sim_post(&H, "/_sim/seed", seed), 200);

    int all[NBATCH + 1];
    for (int i = 0; i < NBATCH; i++)
        all[i] = i + 1;
    all[NBATCH] = EXISTING;
    onboard(all, NBATCH, "on", "new");
    onboard(all + NBATCH, 1, "on", "existing");
    wait_field(all, NBATCH + 1, "status", "connected");
    wait_events(&f, "onboard.connected/1", NBATCH + 1);
    /* An older version listed an existing account's own report as the
     * fleet's: offboarding must still leave it (it delivers elsewhere). */
    char key[64];
    ob_state_key(acct, key, sizeof(key));
    redisReply *r = redisCommand(ob_test_redis(&H), "HSET %s reports %s", key, OWN_CUR);
    assert_non_null(r);
    freeReplyObject(r);

    long long stacks_deleted = ob_test_sim_count(H.sim, "cloudformation.DeleteStack");
    assert_int_equal(offboard(all, NBATCH + 1, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "enqueued 7 requests"));
    wait_field(all, NBATCH + 1, "status", "disconnected");
    wait_events(&f, "onboard.disconnected/1", NBATCH + 1);
    printf("offboarded %d accounts: %lld DeleteStack, %lld DeleteReportDefinition\n", NBATCH + 1,
           ob_test_sim_count(H.sim, "cloudformation.DeleteStack") - stacks_deleted,
           ob_test_sim_count(H.sim, "cur.DeleteReportDefinition"));

    json_t *reports = sim_section(H.sim, "reports");
    for (int i = 0; i <= NBATCH; i++) {
        int m = all[i];
        ob_test_member_account(m, acct);
        int existing = m == EXISTING;
        /* AWS: no stack of the fleet's, no report of the fleet's, the bucket kept. */
        assert_int_equal(ob_test_sim_live_stacks(H.sim, acct, NULL), 0);
        json_t *mine = json_object_get(reports, acct);
        assert_null(json_object_get(mine, "billing-engine-cur"));
        char bucket[64];
        snprintf(bucket, sizeof(bucket), "billing-cur-%s-eu-west-1", acct);
        if (existing)
            assert_non_null(json_object_get(mine, OWN_CUR));
        else
            assert_true(bucket_exists(bucket));
        /* One event each way; the disconnection names the connection. */
        assert_int_equal(events_of(&f, acct, "onboard.connected/1"), 1);
        assert_int_equal(events_of(&f, acct, "onboard.disconnected/1"), 1);
        json_t *con = last_event(&f, acct, "onboard.connected/1");
        json_t *dis = last_event(&f, acct, "onboard.disconnected/1");
        assert_string_equal(str_of(dis, "connection_key"), str_of(con, "idempotency_key"));
        assert_string_equal(str_of(dis, "role_arn"), str_of(con, "role_arn"));
        json_t *removed = json_object_get(dis, "removed");
        assert_int_equal(json_array_size(json_object_get(removed, "stacks")), 1);
        assert_string_equal(
            json_string_value(json_array_get(json_object_get(removed, "stacks"), 0)),
            str_of(con, "stack_id"));
        json_t *rr = json_object_get(removed, "reports");
        json_t *kept = json_object_get(dis, "kept_buckets");
        if (existing) {
            assert_int_equal(json_array_size(rr), 0);
            assert_int_equal(json_array_size(kept), 0);
        } else {
            assert_int_equal(json_array_size(rr), 1);
            assert_string_equal(json_string_value(json_array_get(rr, 0)), "billing-engine-cur");
            assert_int_equal(json_array_size(kept), 1);
            assert_string_equal(json_string_value(json_array_get(kept, 0)), bucket);
        }
        /* Redis: disconnected, the connection forgotten, the bucket listed. */
        json_t *rec = ob_test_state_all(&H, acct);
        assert_string_equal(str_of(rec, "outcome"), "disconnected");
        assert_string_equal(str_of(rec, "disconnect_key"), str_of(dis, "idempotency_key"));
        assert_string_equal(str_of(rec, "connected_request"), "");
        assert_string_equal(str_of(rec, "idempotency_key"), "");
        assert_string_equal(str_of(rec, "role_arn"), "");
        assert_string_equal(str_of(rec, "stacks"), "");
        if (!existing)
            assert_non_null(strstr(str_of(rec, "buckets"), bucket));
        json_decref(rec);
    }
    assert_int_equal(ob_test_ctl(&H, OB_ONBOARDCTL, "check", out, sizeof(out)), 0);

    /* Redis lost an account's record (a flush, a restore): offboarding still
     * finds what the fleet made, by its names, and removes it. */
    int lost[] = {LOST};
    onboard(lost, 1, "on", "new");
    wait_field(lost, 1, "status", "connected");
    wait_events(&f, "onboard.connected/1", NBATCH + 2);
    ob_test_member_account(LOST, acct);
    ob_state_key(acct, key, sizeof(key));
    r = redisCommand(ob_test_redis(&H), "DEL %s", key);
    assert_non_null(r);
    freeReplyObject(r);
    assert_int_equal(offboard(lost, 1, out, sizeof(out)), 0);
    wait_field(lost, 1, "status", "disconnected");
    wait_events(&f, "onboard.disconnected/1", NBATCH + 2);
    assert_int_equal(ob_test_sim_live_stacks(H.sim, acct, NULL), 0);
    assert_null(json_object_get(json_object_get(reports, acct), "billing-engine-cur"));
    json_t *gone = json_object_get(last_event(&f, acct, "onboard.disconnected/1"), "removed");
    assert_int_equal(json_array_size(json_object_get(gone, "stacks")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(gone, "reports"), 0)),
                        "billing-engine-cur");

    /* Again, and an account never onboarded: nothing happens, with reasons. */
    long long made = ob_test_sim_mutations(H.sim);
    int again[] = {1, 2, NEVER};
    assert_int_equal(offboard(again, 3, out, sizeof(out)), 0);
    wait_field(again, 3, "outcome", "unchanged");
    ob_test_run_for(H.loop, 1000); /* anything late would show now */
    assert_int_equal(ob_test_sim_mutations(H.sim), made);
    for (int i = 0; i < 3; i++) {
        ob_test_member_account(again[i], acct);
        assert_int_equal(events_of(&f, acct, "onboard.disconnected/1"), again[i] == NEVER ? 0 : 1);
        char *why = ob_test_member_state(&H, again[i], "outcome_reason");
        assert_non_null(strstr(why, again[i] == NEVER ? "never onboarded" : "already offboarded"));
        free(why);
    }

    /* Onboarded again: a fresh ExternalId, so a new connection key. */
    int back[] = {1};
    ob_test_member_account(1, acct);
    json_t *first = json_deep_copy(last_event(&f, acct, "onboard.connected/1"));
    onboard(back, 1, "back", "new");
    wait_field(back, 1, "status", "connected");
    wait_events(&f, "onboard.connected/1", NBATCH + 3); /* the batch, EXISTING, LOST, this */
    json_t *second = last_event(&f, acct, "onboard.connected/1");
    assert_int_equal(events_of(&f, acct, "onboard.connected/1"), 2);
    assert_string_not_equal(str_of(second, "external_id"), str_of(first, "external_id"));
    assert_string_not_equal(str_of(second, "idempotency_key"), str_of(first, "idempotency_key"));
    assert_int_equal(ob_test_sim_live_stacks(H.sim, acct, NULL), 1);
    json_decref(first);
    static char chk[1 << 15];
    if (ob_test_ctl(&H, OB_ONBOARDCTL, "check --json", chk, sizeof(chk)) != 0)
        fail_msg("onboardctl check: %s", chk);

    /* The account's story, as onboardctl status tells it. */
    char args[64], big[16384];
    snprintf(args, sizeof(args), "status --json %s", acct);
    assert_int_equal(ob_test_ctl(&H, OB_ONBOARDCTL, args, big, sizeof(big)), 0);
    json_t *st = json_loads(big, 0, NULL);
    assert_non_null(st);
    json_t *hist = json_object_get(st, "history");
    static const char *const story[] = {"requested", "connected", "requested", "disconnected",
                                        "unchanged", "requested", "connected"};
    size_t nstory = sizeof(story) / sizeof(story[0]);
    if (json_array_size(hist) != nstory)
        fail_msg("history of %zu events, %zu expected: %s", json_array_size(hist), nstory, big);
    for (size_t i = 0; i < nstory; i++)
        assert_string_equal(str_of(json_array_get(hist, i), "event"), story[i]);
    assert_non_null(strstr(str_of(json_array_get(hist, 2), "detail"), "mode offboard"));
    assert_non_null(strstr(str_of(json_array_get(hist, 4), "detail"), "already offboarded"));
    assert_string_equal(str_of(json_array_get(hist, 6), "key"), str_of(second, "idempotency_key"));
    json_decref(st);
    ob_test_end(&H);
}

/* An example event of proto/examples/aws-events with its account replaced
 * by `acct` (malloc'd). */
static char *example_event(const char *name, const char *from, const char *acct)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", OB_EVENTS, name);
    size_t len;
    char *text = ob_test_read_file(path, &len);
    if (!text)
        fail_msg("no example event %s", path);
    for (char *p = strstr(text, from); p; p = strstr(p + 12, from))
        memcpy(p, acct, 12);
    return text;
}

static void test_events(void **state)
{
    (void)state;
    fleet_t f;
    fleet_start(&f);
    /* Control Tower's account factory makes its own role in the account;
     * there, the organization's usual role lets the fleet in no more. */
    char acct[16], seed[1024];
    ob_test_member_account(13, acct);
    snprintf(seed, sizeof(seed),
             "{\"roles\":[{\"Account\":\"%s\",\"RoleName\":\"AWSControlTowerExecution\","
             "\"AssumeRolePolicyDocument\":{\"Version\":\"2012-10-17\",\"Statement\":[{"
             "\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" MGMT_ROOT "\"},"
             "\"Action\":\"sts:AssumeRole\"}]}},{\"Account\":\"%s\",\"RoleName\":"
             "\"OrganizationAccountAccessRole\",\"AssumeRolePolicyDocument\":{\"Version\":"
             "\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":"
             "\"arn:aws:iam::999999999999:root\"},\"Action\":\"sts:AssumeRole\"}]}}]}",
             acct, acct);
    assert_int_equal(ob_test_sim_post(&H, "/_sim/seed", seed), 200);
    static const struct {
        const char *file, *from;
        int member;
    } joins[] = {{"accepted/organizations-create-account-result.json", "222222222222", 11},
                 {"accepted/organizations-accept-handshake.json", "333333333333", 12},
                 {"accepted/controltower-create-managed-account.json", "444444444444", 13}};
    static const char *const refused[] = {"refused/organizations-create-account-result-failed.json",
                                          "refused/organizations-invite-account-open.json",
                                          "refused/controltower-update-managed-account.json",
                                          "refused/ec2-instance-state-change.json"};
    ob_test_producer_t *p = ob_test_producer(&H);
    int member[3];
    for (int round = 0; round < 2; round++) /* EventBridge delivers at least once */
        for (int i = 0; i < 3; i++) {
            member[i] = joins[i].member;
            ob_test_member_account(member[i], acct);
            char *ev = example_event(joins[i].file, joins[i].from, acct);
            ob_test_send(p, "requests", acct, ev);
            free(ev);
        }
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        char *ev = example_event(refused[i], "999999999999", "999999999999");
        ob_test_send(p, "requests", "event", ev);
        free(ev);
    }
    ob_test_producer_done(p);
    wait_field(member, 3, "status", "connected");
    wait_events(&f, "onboard.connected/1", 3);
    ob_test_run_for(H.loop, 1000); /* a second connection would show now */
    for (int i = 0; i < 3; i++) {
        ob_test_member_account(member[i], acct);
        assert_int_equal(events_of(&f, acct, "onboard.connected/1"), 1);
        char *rid = ob_test_member_state(&H, member[i], "connected_request");
        assert_int_equal(strncmp(rid, "eventbridge:", 12), 0);
        free(rid);
        assert_int_equal(ob_test_sim_live_stacks(H.sim, acct, NULL), 1);
    }
    /* Everything else: dead letters naming the event. */
    json_t *dlq = ob_test_out_map(f.out, "dlq");
    int tries = 0;
    while (json_array_size(json_object_get(dlq, "event")) < 4 && tries++ < 100)
        ob_test_run_for(H.loop, 100);
    json_t *letters = json_object_get(dlq, "event"), *d;
    assert_int_equal(json_array_size(letters), 4);
    static const char *const names[] = {"CreateAccountResult", "InviteAccountToOrganization",
                                        "UpdateManagedAccount", "aws.ec2"};
    size_t i;
    json_array_foreach(letters, i, d)
    {
        ob_test_check_dlq(d, refused[i], "bucket", "invalid_input", "unsupported_event", names[i]);
    }
    ob_test_end(&H);
}

/* Every member of m has a record whose request_id starts with `prefix` (after
 * the run's) and status connected, and the workers are idle. */
typedef struct repaired_s {
    const int *m;
    int n;
} repaired_t;

static int all_repaired(void *arg)
{
    repaired_t *r = arg;
    if (!ob_test_workers_idle(&H))
        return 0;
    for (int i = 0; i < r->n; i++) {
        char *rid = ob_test_member_state(&H, r->m[i], "request_id");
        char *st = ob_test_member_state(&H, r->m[i], "status");
        int ok = !strncmp(rid, "repair:", 7) && !strcmp(st, "connected");
        free(rid);
        free(st);
        if (!ok)
            return 0;
    }
    return 1;
}

/* `onboardctl verify ARGS --json`: its exit status, the answer in *out. */
static int verify(const char *args, json_t **out)
{
    static char big[1 << 16];
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "verify --json --timeout 120s %s", args);
    int rc = ob_test_ctl_live(&H, OB_ONBOARDCTL, cmd, big, sizeof(big));
    *out = json_loads(big, 0, NULL);
    if (!*out)
        fail_msg("onboardctl %s: exit %d: %s", cmd, rc, big);
    if (rc != 0 && rc != 6)
        fail_msg("onboardctl %s: exit %d: %s", cmd, rc, big);
    return rc;
}

/* The kinds an account's finding names, sorted into "a,b" (its row of a
 * verify answer). */
static void kinds_of(json_t *answer, const char *acct, char *out, size_t n)
{
    out[0] = '\0';
    size_t i, k;
    json_t *row, *f;
    json_array_foreach(json_object_get(answer, "accounts"), i, row)
    {
        if (strcmp(str_of(row, "account_id"), acct) != 0)
            continue;
        const char *names[OB_DRIFT_FINDINGS_MAX];
        size_t nn = 0;
        json_array_foreach(json_object_get(row, "findings"), k, f)
        {
            const char *kind = str_of(f, "kind");
            int seen = 0;
            for (size_t j = 0; j < nn; j++)
                seen |= !strcmp(names[j], kind);
            if (!seen && nn < OB_DRIFT_FINDINGS_MAX)
                names[nn++] = kind;
        }
        for (size_t a = 0; a < nn; a++)
            for (size_t b = a + 1; b < nn; b++)
                if (strcmp(names[b], names[a]) < 0) {
                    const char *t = names[a];
                    names[a] = names[b];
                    names[b] = t;
                }
        size_t used = 0;
        for (size_t a = 0; a < nn && used < n; a++)
            used += (size_t)snprintf(out + used, n - used, "%s%s", a ? "," : "", names[a]);
        if (!nn)
            snprintf(out, n, "%s", str_of(row, "status"));
        return;
    }
    snprintf(out, n, "(not in the answer)");
}

static void test_drift(void **state)
{
    (void)state;
    fleet_t f;
    /* A database of its own: `verify --all` takes every connected account. */
    ob_test_set(&H, "OB_REDIS_DB", "7");
    fleet_start(&f);
    redisReply *flushed = redisCommand(ob_test_redis(&H), "FLUSHDB");
    assert_non_null(flushed);
    freeReplyObject(flushed);
    ob_worker_t *vw = ob_test_worker(&H, &ob_stage_verify, NULL, 5000);
    char acct[16], body[1024], out[512];
    ob_test_member_account(EXISTING, acct);
    snprintf(
        body, sizeof(body),
        "{\"reports\":[{\"Account\":\"%s\",\"ReportDefinition\":{\"ReportName\":\"" OWN_CUR
        "\",\"S3Bucket\":\"acme-own-cur\",\"S3Prefix\":\"cur/\",\"S3Region\":\"us-east-1\"}}]}",
        acct);
    assert_int_equal(ob_test_sim_post(&H, "/_sim/seed", body), 200);
    int news[] = {1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13}, ex[] = {EXISTING};
    int all[] = {1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, EXISTING};
    int nall = (int)(sizeof(all) / sizeof(all[0]));
    onboard(news, (int)(sizeof(news) / sizeof(news[0])), "on", "new");
    onboard(ex, 1, "on", "existing");
    wait_field(all, nall, "status", "connected");
    wait_events(&f, "onboard.connected/1", nall);

    /* Nothing changed yet: every account is in sync. */
    json_t *ans;
    assert_int_equal(verify("--all", &ans), 0);
    assert_int_equal(json_integer_value(json_object_get(ans, "in_sync")), nall);
    json_decref(ans);

    /* What operators do by hand. */
    static const struct {
        int member;
        const char *drift; /* the /_sim/drift body after Account */
        const char *kinds; /* what verification must find, sorted */
    } hand[] = {
        {1, "\"Kind\":\"delete_role\",\"RoleName\":\"billing-engine-access\"",
         "role_unassumable,stack_drifted"},
        {2, "\"Kind\":\"trust_policy\",\"RoleName\":\"billing-engine-access\"", "stack_drifted"},
        {3, "\"Kind\":\"delete_report\",\"ReportName\":\"billing-engine-cur\"", "report_missing"},
        {4,
         "\"Kind\":\"change_report\",\"ReportName\":\"billing-engine-cur\",\"Changes\":{"
         "\"TimeUnit\":\"DAILY\"}",
         "report_changed"},
        {5, "\"Kind\":\"bucket_policy\",\"Bucket\":\"billing-cur-%s-eu-west-1\"", "bucket_policy"},
        {6, "\"Kind\":\"public_access\",\"Bucket\":\"billing-cur-%s-eu-west-1\"",
         "bucket_public_access"},
        {10, "\"Kind\":\"encryption\",\"Bucket\":\"billing-cur-%s-eu-west-1\"",
         "bucket_encryption"},
        {11, "\"Kind\":\"ownership\",\"Bucket\":\"billing-cur-%s-eu-west-1\"", "bucket_ownership"},
        {12, "\"Kind\":\"delete_bucket_policy\",\"Bucket\":\"billing-cur-%s-eu-west-1\"",
         "bucket_policy"},
        {13, "\"Kind\":\"delete_bucket\",\"Bucket\":\"billing-cur-%s-eu-west-1\"",
         "bucket_missing"},
        {EXISTING, "\"Kind\":\"delete_role\",\"RoleName\":\"billing-engine-access\"",
         "role_unassumable,stack_drifted"},
    };
    size_t nhand = sizeof(hand) / sizeof(hand[0]);
    for (size_t i = 0; i < nhand; i++) {
        char d[512];
        ob_test_member_account(hand[i].member, acct);
        snprintf(d, sizeof(d), hand[i].drift, acct);
        snprintf(body, sizeof(body), "{\"Account\":\"%s\",%s}", acct, d);
        if (ob_test_sim_post(&H, "/_sim/drift", body) != 200)
            fail_msg("/_sim/drift %s refused", body);
    }
    long long made = ob_test_sim_mutations(H.sim);
    assert_int_equal(verify("--all", &ans), 6);
    assert_int_equal(ob_test_sim_mutations(H.sim), made); /* verification only reads */
    for (size_t i = 0; i < nhand; i++) {
        char kinds[256];
        ob_test_member_account(hand[i].member, acct);
        kinds_of(ans, acct, kinds, sizeof(kinds));
        if (strcmp(kinds, hand[i].kinds) != 0)
            fail_msg("member %d: found %s, want %s", hand[i].member, kinds, hand[i].kinds);
        char *st = ob_test_member_state(&H, hand[i].member, "drift_status");
        assert_string_equal(st, "drifted");
        free(st);
    }
    ob_test_member_account(8, acct);
    char kinds[256];
    kinds_of(ans, acct, kinds, sizeof(kinds));
    assert_string_equal(kinds, "in_sync");
    json_decref(ans);
    /* summary counts what the last verifications found; the verify worker's
     * metrics count findings per kind. */
    static char sum[4096];
    assert_int_equal(ob_test_ctl(&H, OB_ONBOARDCTL, "summary --json", sum, sizeof(sum)), 0);
    json_t *sj = json_loads(sum, 0, NULL);
    json_t *bd = json_object_get(sj, "by_drift_status");
    assert_int_equal(json_integer_value(json_object_get(bd, "drifted")), 11);
    assert_int_equal(json_integer_value(json_object_get(bd, "in_sync")), 1);
    json_decref(sj);
    ob_buf_t met = {0};
    ob_worker_render_metrics(vw, &met);
    ob_buf_append(&met, "", 1);
    assert_non_null(strstr(met.data, "onboard_drift_findings_total{kind=\"stack_drifted\"} 3"));
    assert_non_null(strstr(met.data, "onboard_drift_findings_total{kind=\"report_missing\"} 1"));
    assert_non_null(strstr(met.data, "onboard_verifications_total{result=\"drifted\"} 11"));
    ob_buf_free(&met);

    /* Repaired through the stages that fix each, then verified again. */
    assert_int_equal(verify("--all --repair", &ans), 6);
    json_decref(ans);
    int drifted[] = {1, 2, 3, 4, 5, 6, 10, 11, 12, 13, EXISTING};
    repaired_t rw = {drifted, (int)(sizeof(drifted) / sizeof(drifted[0]))};
    if (!ob_test_run_until(H.loop, all_repaired, &rw, 120000))
        fail_msg("the repairs never finished");
    ob_buf_t rm = {0};
    ob_worker_render_metrics(vw, &rm);
    ob_buf_append(&rm, "", 1);
    assert_non_null(strstr(rm.data, "onboard_drift_repairs_total{kind=\"role_unassumable\"} 2"));
    assert_non_null(strstr(rm.data, "onboard_drift_repairs_total{kind=\"bucket_policy\"} 2"));
    ob_buf_free(&rm);
    assert_int_equal(verify("--all", &ans), 0);
    assert_int_equal(json_integer_value(json_object_get(ans, "in_sync")), nall);
    json_decref(ans);
    for (int i = 0; i < nall; i++) {
        ob_test_member_account(all[i], acct);
        /* The same connection: nothing new for the Billing Engine. */
        assert_int_equal(events_of(&f, acct, "onboard.connected/1"), 1);
        assert_int_equal(ob_test_sim_live_stacks(H.sim, acct, NULL), 1);
    }
    ob_test_member_account(EXISTING, acct);
    assert_non_null(json_object_get(json_object_get(sim_section(H.sim, "reports"), acct), OWN_CUR));
    /* The story of a repaired account. */
    snprintf(out, sizeof(out), "status --json %s", "200000000001");
    static char big[16384];
    assert_int_equal(ob_test_ctl(&H, OB_ONBOARDCTL, out, big, sizeof(big)), 0);
    json_t *stj = json_loads(big, 0, NULL);
    json_t *hist = json_object_get(stj, "history");
    static const char *const story[] = {"requested", "connected", "verified", "drift",
                                        "drift",     "requested", "repaired", "verified"};
    size_t nstory = sizeof(story) / sizeof(story[0]);
    if (json_array_size(hist) != nstory)
        fail_msg("history of %zu events, %zu expected: %s", json_array_size(hist), nstory, big);
    for (size_t i = 0; i < nstory; i++)
        assert_string_equal(str_of(json_array_get(hist, i), "event"), story[i]);
    json_decref(stj);
    ob_test_end(&H);
    ob_test_set(&H, "OB_REDIS_DB", NULL);
}

/* ---- the onboard-lifecycle process ---- */

typedef struct logged_s {
    const char *path;
    const char *text;
    int times;
} logged_t;

/* How many times text is in the file at path. */
static int count_in(const char *path, const char *text)
{
    size_t len;
    char *all = ob_test_read_file(path, &len);
    int n = 0;
    for (const char *p = all ? all : ""; (p = strstr(p, text)) != NULL; p += strlen(text))
        n++;
    free(all);
    return n;
}

static int logged(void *arg)
{
    logged_t *l = arg;
    return count_in(l->path, l->text) >= l->times;
}

static void wait_logged(const char *path, const char *text, int times)
{
    logged_t l = {path, text, times};
    if (!ob_test_run_until(H.loop, logged, &l, 30000)) {
        size_t len;
        char *all = ob_test_read_file(path, &len);
        fail_msg("%s never said \"%s\" (%d times): %s", path, text, times, all ? all : "");
    }
}

/* The id of the organization's OU or account named name (sim section). */
static const char *sim_id_named(const char *section, const char *name)
{
    const char *id;
    json_t *v;
    json_object_foreach(sim_section(H.sim, section), id, v)
    {
        if (!strcmp(str_of(v, "Name"), name))
            return id;
    }
    return NULL;
}

/* A shell script run with the management account's credentials, the
 * simulator's endpoint in $EP (the real AWS CLI, as an operator runs it);
 * the harness's loop runs meanwhile. Its exit status; its last line in out. */
static int as_operator(const char *script, char *out, size_t n)
{
    char path[256], args[512];
    snprintf(path, sizeof(path), "%s/itl-operator-%d.sh",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "set -e\nexport AWS_ACCESS_KEY_ID='%s' AWS_SECRET_ACCESS_KEY='%s' AWS_REGION=us-east-1 "
            "AWS_DEFAULT_REGION=us-east-1 "
            "AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null "
            "AWS_EC2_METADATA_DISABLED=true AWS_PAGER=''\nEP='%s'\n%s\n",
            ob_test_sim_env("AWS_ACCESS_KEY_ID", H.sim_url),
            ob_test_sim_env("AWS_SECRET_ACCESS_KEY", H.sim_url), H.sim_url, script);
    fclose(f);
    snprintf(args, sizeof(args), "%s", path);
    int rc = ob_test_ctl_live(&H, "/bin/sh", args, out, n);
    unlink(path);
    return rc;
}

/* The watcher onboards the organization's accounts, and those that join
 * while it runs, each once, with two replicas of onboard-lifecycle: one
 * works at a time, the other takes over when it is killed (the lease
 * expires) or shut down (the lease is released), and neither enqueues an
 * account twice. */
static void test_watcher(void **state)
{
    (void)state;
    fleet_t f;
    /* A database of its own: the watcher's ledger and lease start empty. */
    ob_test_set(&H, "OB_REDIS_DB", "8");
    fleet_start(&f);
    redisReply *flushed = redisCommand(ob_test_redis(&H), "FLUSHDB");
    assert_non_null(flushed);
    freeReplyObject(flushed);
    ob_test_out_opts_t ro = {.group = "requests-auditor", .topics = {"requests"}};
    ob_test_out_t *reqs = ob_test_out_new(&H, &ro);
    /* A sandbox OU the rules leave out, with an account in it already. */
    assert_int_equal(ob_test_sim_post(&H, "/_sim/ous", "{\"Name\":\"sandbox\"}"), 200);
    const char *sandbox = sim_id_named("ous", "sandbox");
    assert_non_null(sandbox);
    char body[512];
    snprintf(body, sizeof(body),
             "{\"Name\":\"sandboxed-1\",\"Id\":\"300000000001\",\"ParentId\":\"%s\"}", sandbox);
    assert_int_equal(ob_test_sim_post(&H, "/_sim/accounts", body), 200);

    char log_a[256], log_b[256];
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(log_a, sizeof(log_a), "%s/itl-lifecycle-a-%d.log", tmp, (int)getpid());
    snprintf(log_b, sizeof(log_b), "%s/itl-lifecycle-b-%d.log", tmp, (int)getpid());
    unlink(log_a);
    unlink(log_b);
    const char *const env[][2] = {{"OB_WATCHER_INTERVAL", "1s"},
                                  {"OB_WATCHER_MAX_PER_INTERVAL", "8"},
                                  {"OB_LIFECYCLE_LEASE_TTL", "2s"},
                                  {"OB_LIFECYCLE_EXCLUDE_ACCOUNTS", "111111111111"},
                                  {"OB_LIFECYCLE_EXCLUDE_OUS", sandbox},
                                  {"OB_LOG_LEVEL", "info"},
                                  {NULL, NULL}};
    /* The ledger as a predecessor left it: member 20's request was being
     * sent when that holder died long ago (sent again, under the same id),
     * and an account already sent, whose request the intake has not read
     * yet (not sent again). */
    assert_int_equal(ob_test_sim_post(&H, "/_sim/accounts",
                                      "{\"Name\":\"sent-before\",\"Id\":\"300000000005\"}"),
                     200);
    redisReply *led = redisCommand(ob_test_redis(&H), "HSET %s 200000000020 %s 300000000005 %s",
                                   OB_WATCH_LEDGER_KEY, "sending 1000", "sent 1000");
    assert_non_null(led);
    freeReplyObject(led);
    pid_t a = ob_test_fleet_process(&H, OB_LIFECYCLE_BIN, env, log_a);
    wait_logged(log_a, "took the lease", 1);
    pid_t b = ob_test_fleet_process(&H, OB_LIFECYCLE_BIN, env, log_b);

    /* The organization's 20 members, 8 a round. */
    char accts[32][16];
    const char *acct[32];
    int n = 0;
    for (int i = 1; i <= 20; i++, n++) {
        ob_test_member_account(i, accts[n]);
        acct[n] = accts[n];
    }
    wait_accounts(acct, n, "status", "connected");
    assert_int_equal(count_in(log_a, "8 to enqueue, 12 left for the next round"), 1);
    assert_int_equal(count_in(log_b, "took the lease"), 0); /* standing by */

    /* The working replica dies; accounts join meanwhile: one added by the
     * organization's admin, one made with CreateAccount (the AWS CLI), one
     * in the sandbox. */
    assert_int_equal(ob_test_reap(&H, a, SIGKILL, 10000), 128 + SIGKILL);
    assert_int_equal(
        ob_test_sim_post(&H, "/_sim/accounts", "{\"Name\":\"joined-1\",\"Id\":\"300000000002\"}"),
        200);
    snprintf(body, sizeof(body),
             "{\"Name\":\"sandboxed-2\",\"Id\":\"300000000003\",\"ParentId\":\"%s\"}", sandbox);
    assert_int_equal(ob_test_sim_post(&H, "/_sim/accounts", body), 200);
    char out[1024];
    int rc = as_operator("aws --endpoint-url \"$EP\" organizations create-account "
                         "--email aws+created-1@example.com --account-name created-1 "
                         "--query CreateAccountStatus.State --output text",
                         out, sizeof(out));
    if (rc != 0)
        fail_msg("aws organizations create-account: exit %d: %s", rc, out);
    for (int tries = 0; !sim_id_named("accounts", "created-1") && tries < 100; tries++)
        ob_test_run_for(H.loop, 100);
    const char *created = sim_id_named("accounts", "created-1");
    assert_non_null(created);
    snprintf(accts[n], sizeof(accts[n]), "%s", "300000000002");
    acct[n] = accts[n];
    n++;
    snprintf(accts[n], sizeof(accts[n]), "%s", created);
    acct[n] = accts[n];
    n++;
    wait_logged(log_b, "took the lease", 1); /* once the dead one's lease expired */
    wait_accounts(acct, n, "status", "connected");

    /* A replica comes back (standing by); the working one shuts down and
     * hands the lease over at once; another account joins. */
    a = ob_test_fleet_process(&H, OB_LIFECYCLE_BIN, env, log_a);
    ob_test_run_for(H.loop, 500);
    assert_int_equal(ob_test_reap(&H, b, SIGTERM, 20000), 0);
    assert_int_equal(
        ob_test_sim_post(&H, "/_sim/accounts", "{\"Name\":\"joined-2\",\"Id\":\"300000000004\"}"),
        200);
    wait_logged(log_a, "took the lease", 2);
    snprintf(accts[n], sizeof(accts[n]), "%s", "300000000004");
    acct[n] = accts[n];
    n++;
    wait_accounts(acct, n, "status", "connected");
    ob_test_run_for(H.loop, 3000); /* more rounds: nothing more may be enqueued */
    assert_int_equal(ob_test_reap(&H, a, SIGTERM, 20000), 0);

    for (int i = 0; i < n; i++) {
        char rid[64];
        snprintf(rid, sizeof(rid), "watcher:%s", acct[i]);
        if (ob_test_out_count(reqs, "requests", acct[i]) != 1)
            fail_msg("%s: %zu requests enqueued, 1 expected", acct[i],
                     ob_test_out_count(reqs, "requests", acct[i]));
        assert_string_equal(str_of(ob_test_out_first(reqs, "requests", acct[i]), "request_id"),
                            rid);
        char *cr = ob_test_state(&H, acct[i], "connected_request");
        assert_string_equal(cr, rid);
        free(cr);
        assert_int_equal(events_of(&f, acct[i], "onboard.connected/1"), 1);
        char *sent = ob_test_hget(&H, OB_WATCH_LEDGER_KEY, acct[i]);
        assert_int_equal(strncmp(sent, "sent ", 5), 0);
        free(sent);
    }
    /* Left out: the management account (excluded by id) and the sandbox's. */
    assert_int_equal(count_in(log_a, "\"msg\":\"enqueued again\",\"account\":\"200000000020\""), 1);
    const char *out_of_scope[] = {"111111111111", "300000000001", "300000000003", "300000000005"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ob_test_out_count(reqs, "requests", out_of_scope[i]), 0);
        char *st = ob_test_state(&H, out_of_scope[i], "status");
        assert_string_equal(st, "");
        free(st);
    }
    assert_int_equal(ob_test_out_seen(reqs, "requests"), n);
    ob_test_end(&H);
    unlink(log_a);
    unlink(log_b);
    ob_test_set(&H, "OB_REDIS_DB", NULL);
}

/* The periodic verification, with repair: every connected account is
 * verified once an interval; a role deleted by hand and a stack deleted by
 * hand (the AWS CLI) are found and repaired through the stages, then found
 * in sync. */
static void test_periodic_verify(void **state)
{
    (void)state;
    fleet_t f;
    ob_test_set(&H, "OB_REDIS_DB", "9");
    fleet_start(&f);
    redisReply *flushed = redisCommand(ob_test_redis(&H), "FLUSHDB");
    assert_non_null(flushed);
    freeReplyObject(flushed);
    ob_worker_t *vw = ob_test_worker(&H, &ob_stage_verify, NULL, 5000);
    int m[] = {1, 2, 3, 4};
    onboard(m, 4, "on", "new");
    wait_field(m, 4, "status", "connected");
    char acct[16], body[512], out[1024];
    /* A role deleted by hand, and a stack. */
    ob_test_member_account(1, acct);
    snprintf(body, sizeof(body),
             "{\"Account\":\"%s\",\"Kind\":\"delete_role\",\"RoleName\":\"billing-engine-access\"}",
             acct);
    assert_int_equal(ob_test_sim_post(&H, "/_sim/drift", body), 200);
    ob_test_member_account(2, acct);
    char *stack = ob_test_member_state(&H, 2, "stack_id");
    char *old_key = ob_test_member_state(&H, 2, "idempotency_key");
    char script[2048];
    snprintf(script, sizeof(script),
             "set -- $(aws --endpoint-url \"$EP\" sts assume-role --role-arn "
             "arn:aws:iam::%s:role/OrganizationAccountAccessRole --role-session-name by-hand "
             "--query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text)\n"
             "AWS_ACCESS_KEY_ID=$1 AWS_SECRET_ACCESS_KEY=$2 AWS_SESSION_TOKEN=$3 "
             "aws --endpoint-url \"$EP\" --region eu-west-1 cloudformation delete-stack "
             "--stack-name '%s'\necho deleted",
             acct, stack);
    int rc = as_operator(script, out, sizeof(out));
    if (rc != 0)
        fail_msg("deleting the stack by hand: exit %d: %s", rc, out);
    free(stack);

    /* The ledger as a predecessor left it: its verification of member 1
     * was in its producer's queue when it died, ten seconds ago. Sent again
     * under the same request id after two lease lifetimes (4 s), not waited
     * for 15 minutes as if under way: the repair's request id says so. */
    ob_test_member_account(1, acct);
    char *rec = ob_test_member_state(&H, 1, "request_id");
    char lost[256], want_repair[OB_REQUEST_ID_LEN], key[OB_IDEMPOTENCY_LEN];
    snprintf(lost, sizeof(lost), "%lld verify:lost1 %s sending",
             (long long)ob_time_wall_ms() - 10000, rec);
    free(rec);
    redisReply *led =
        redisCommand(ob_test_redis(&H), "HSET %s %s %s", OB_VERIFY_LEDGER_KEY, acct, lost);
    assert_non_null(led);
    freeReplyObject(led);
    ob_drift_key(acct, "verify:lost1", key);
    snprintf(want_repair, sizeof(want_repair), "repair:%.32s", key);

    char log[256];
    snprintf(log, sizeof(log), "%s/itl-verify-%d.log", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    unlink(log);
    /* Two a round for four accounts: each round must take the stalest, or
     * the first two in Redis's order would be the only ones verified. */
    const char *const env[][2] = {
        {"OB_VERIFY_INTERVAL", "2s"},     {"OB_VERIFY_REPAIR", "true"},
        {"OB_VERIFY_MAX_PER_ROUND", "2"}, {"OB_LIFECYCLE_LEASE_TTL", "2s"},
        {"OB_LOG_LEVEL", "info"},         {NULL, NULL}};
    pid_t p = ob_test_fleet_process(&H, OB_LIFECYCLE_BIN, env, log);
    /* Repaired: each drifted account's record shows the repair connected. */
    repaired_t rw = {m, 2};
    if (!ob_test_run_until(H.loop, all_repaired, &rw, 120000))
        fail_msg("the repairs never finished");
    char *repaired_by = ob_test_member_state(&H, 1, "request_id");
    assert_string_equal(repaired_by, want_repair);
    free(repaired_by);
    /* Then verified again, in sync, like the others. */
    wait_field(m, 4, "drift_status", "in_sync");
    assert_int_equal(ob_test_reap(&H, p, SIGTERM, 20000), 0);
    /* The role's repair keeps its connection; the stack's makes a new one
     * (the ExternalId went with the stack: a new connected event says so). */
    ob_test_member_account(1, acct);
    assert_int_equal(events_of(&f, acct, "onboard.connected/1"), 1);
    ob_test_member_account(2, acct);
    assert_int_equal(events_of(&f, acct, "onboard.connected/1"), 2);
    char *new_key = ob_test_member_state(&H, 2, "idempotency_key");
    assert_string_not_equal(new_key, old_key);
    free(new_key);
    free(old_key);
    assert_int_equal(ob_test_sim_live_stacks(H.sim, acct, NULL), 1);
    for (int i = 0; i < 4; i++) {
        /* Each account's last verification acknowledged by the broker. */
        ob_test_member_account(m[i], acct);
        char *sent = ob_test_hget(&H, OB_VERIFY_LEDGER_KEY, acct);
        assert_non_null(strstr(sent, " sent"));
        free(sent);
    }
    /* What it found, by kind: the verify worker's metrics. */
    ob_buf_t met = {0};
    ob_worker_render_metrics(vw, &met);
    ob_buf_append(&met, "", 1);
    assert_non_null(strstr(met.data, "onboard_drift_findings_total{kind=\"stack_missing\"} 1"));
    assert_non_null(strstr(met.data, "onboard_drift_repairs_total{kind=\"stack_missing\"} 1"));
    /* Each drift found and repaired once: an account is not verified again
     * while its verification or its repair is under way. */
    assert_non_null(strstr(met.data, "onboard_drift_findings_total{kind=\"stack_drifted\"} 1"));
    assert_non_null(strstr(met.data, "onboard_drift_findings_total{kind=\"role_unassumable\"} 1"));
    assert_non_null(strstr(met.data, "onboard_drift_repairs_total{kind=\"role_unassumable\"} 1"));
    ob_buf_free(&met);
    ob_test_end(&H);
    unlink(log);
    ob_test_set(&H, "OB_REDIS_DB", NULL);
}

int main(void)
{
    ob_test_harness_init(&H, "itl");
    ob_test_set(&H, "OB_BILLING_PRINCIPAL", MGMT_ROOT);
    ob_test_set(&H, "OB_STACK_POLL", "100ms");
    ob_test_set(&H, "OB_CONNECT_RETRIES", "3");
    ob_test_set(&H, "OB_CONNECT_RETRY_WAIT", "200ms");
    ob_test_set(&H, "OB_LIFECYCLE_REGION", "eu-west-1");
    ob_log_set_level(OB_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offboard),        cmocka_unit_test(test_events),
        cmocka_unit_test(test_drift),           cmocka_unit_test(test_watcher),
        cmocka_unit_test(test_periodic_verify),
    };
    return ob_test_run_selected("itest_lifecycle", tests, sizeof(tests) / sizeof(tests[0]));
}
