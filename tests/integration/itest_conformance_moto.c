/*
 * The conformance run against moto: the whole pipeline (the four stage
 * workers, the real runtime, in this process, on one loop, with a real Kafka
 * broker and a real Redis) with S3, STS and CloudFormation served by moto, an
 * AWS implementation that is not ours, and the Cost and Usage Reports by
 * awssim (moto has none). Each service is chosen the way an operator would,
 * with the SDK variables AWS_ENDPOINT_URL_S3, _STS, _CLOUDFORMATION and
 * _COST_AND_USAGE_REPORT_SERVICE; AWS_ENDPOINT_URL is not set.
 *
 * Two AWS implementations in one run need two bridges, both here in the test
 * and none in the workers:
 *   - Credentials: the cur worker's account session must come from the AWS
 *     that serves CUR, since moto's temporary keys mean nothing to awssim
 *     (which verifies every signature). So the cur worker alone resolves STS
 *     to awssim (its own getenv), where each account has the
 *     OrganizationAccountAccessRole the requests name.
 *   - Buckets: awssim's CUR, like AWS, accepts a report only on a bucket that
 *     exists, is the caller's, is in S3Region and carries the delivery
 *     policy. The stages therefore run in order: bucket, iam and connect
 *     first; once every new account's hand-off is on the cur topic, boto3
 *     reads each bucket back from moto (listed by its account, its location
 *     and the policy moto holds) and the test copies it into awssim's state;
 *     only then does the cur worker start.
 *
 * The batch: new accounts in three regions, existing accounts without a
 * stack, with a stack already made from this template (the update is a
 * no-op: "No updates are to be performed.") and with a stack from an older
 * template (a real update that must keep the ExternalId). Every account must
 * reach connected with no dead letter. Then, the records in Redis deleted (as
 * a total loss would), every request is sent again (new request ids): each
 * stage must find its work done and make nothing twice (same stack, role and
 * ExternalId; no second report), and each event names the same connection
 * under the same key. The final audit is
 * made by boto3 (tests/clients/conformance_moto.py check), a real AWS client,
 * against moto (bucket, policy, public access block, encryption, ownership;
 * the stack, its template, parameters, tags and Outputs; the IAM role moto
 * made from the template, its trust policy naming the Billing Engine
 * principal with the event's sts:ExternalId, its inline policy) and against
 * awssim (the reports). Where moto 5.2.5 is known to differ from AWS (a role
 * policy returned as a Python repr, AWS::NoValue kept as a null list element,
 * an update that leaves the role's policies as they were) and the difference
 * is exactly that, the audit prints it and does not fail.
 *
 * Account ids are new on every run, so a moto server shared by several runs
 * holds nothing of an earlier one. Skipped (77) without Kafka, Redis, moto
 * (OB_TEST_MOTO_URL) or /usr/bin/python3 with boto3, unless
 * OB_TEST_REQUIRE_SERVICES=1 makes that a failure. OB_TEST_LOG_LEVEL=info
 * (or debug) shows the workers' logs.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "ob_kafka.h"
#include "ob_log.h"
#include "ob_worker.h"
#include "sim.h"
#include "stages.h"

#define NNEW       12
#define NEXISTING  4
#define NALL       (NNEW + NEXISTING)
#define PRESET_CUR (NNEW + 1) /* existing, with a stack from the current template */
#define PRESET_OLD (NNEW + 2) /* existing, with a stack from an older template */
#define ORG_ROLE   "OrganizationAccountAccessRole"
#define STACK_NAME "billing-engine-access"
/* The fleet's identity as moto sees it (any key is account 123456789012 there):
 * the principal the Billing Engine role trusts. */
#define BILLING_PRINCIPAL "arn:aws:iam::123456789012:root"
#define PYTHON            "/usr/bin/python3"
#define SCRIPT            OB_FIXTURES "/../clients/conformance_moto.py"
#define TEMPLATE          OB_FIXTURES "/../../workers/templates/billing-engine-role.json"

static ob_test_harness_t H;
static const char *moto_url;
static unsigned long long account_base;
static char workdir[64];

/* The cur worker: STS from awssim, the AWS that serves CUR. */
static const char *const cur_env[][2] = {{"AWS_ENDPOINT_URL_STS", H.sim_url}, {NULL, NULL}};

static void acct_id(int i, char out[16])
{
    snprintf(out, 16, "%012llu", account_base + (unsigned long long)i);
}

static const char *region_of(int i)
{
    static const char *const regions[] = {"us-east-1", "eu-west-1", "ap-southeast-2"};
    return regions[i % 3];
}

/* The ExternalId the pre-existing stacks were made with: 32 hex digits. */
static void preset_external_id(int i, char out[40])
{
    char a[16];
    acct_id(i, a);
    snprintf(out, 40, "ee000000000000000000%s", a);
}

/* ---- what comes out of the fleet ---- */

typedef struct out_s {
    ob_test_out_t *o;  /* cur (account -> the bucket stage's hand-off), connected, dlq */
    json_t *connected; /* account -> event (the first run's) */
    json_t *rerun;     /* account -> event (the rerun's) */
} out_t;

static void on_out(ob_test_out_t *o, const char *topic, const char *key,
                   const rd_kafka_message_t *m, void *arg)
{
    out_t *out = arg;
    json_t *j = ob_test_out_last(o, topic, key);
    if (!strcmp(topic, "connected")) {
        const char *a = json_string_value(json_object_get(j, "account_id"));
        const char *rid = json_string_value(json_object_get(j, "request_id"));
        json_t *into = rid && strstr(rid, "-rerun") ? out->rerun : out->connected;
        if (a && !json_object_get(into, a))
            json_object_set(into, a, j);
    } else if (!strcmp(topic, "dlq") && ob_test_out_count(o, topic, key) == 1) {
        char *s = json_dumps(j, JSON_COMPACT);
        printf("dead letter for %s: %s\n", key, s ? s : "?");
        free(s);
    }
}

static size_t dead_letters(out_t *o)
{
    return json_object_size(ob_test_out_map(o->o, "dlq"));
}

static int cur_handoffs_in(void *arg)
{
    out_t *o = arg;
    return json_object_size(ob_test_out_map(o->o, "cur")) >= NNEW || dead_letters(o) > 0;
}

static int all_connected(void *arg)
{
    out_t *o = arg;
    return json_object_size(o->connected) >= NALL || dead_letters(o) > 0;
}

static int all_rerun(void *arg)
{
    out_t *o = arg;
    return json_object_size(o->rerun) >= NALL || dead_letters(o) > 0;
}

/* ---- boto3 (tests/clients/conformance_moto.py) ---- */

typedef struct child_s {
    pid_t pid;
    int status;
} child_t;

static int child_done(void *arg)
{
    child_t *c = arg;
    return ob_test_exited(c->pid, &c->status);
}

/* Run the script with `cmd` on in.json (and out.json) while the loop keeps
 * serving awssim; its exit status. */
static int run_boto3(ob_loop_t *loop, const char *cmd, json_t *in, const char *out_path,
                     int timeout_ms)
{
    char in_path[128], line[1024];
    snprintf(in_path, sizeof(in_path), "%s/%s.json", workdir, cmd);
    json_object_set_new(in, "moto", json_string(moto_url));
    json_object_set_new(in, "sim", json_string(H.sim_url));
    json_object_set_new(in, "fleet", json_pack("[s, s]", SIM_MGMT_AKID, SIM_MGMT_SECRET));
    json_object_set_new(in, "principal", json_string(BILLING_PRINCIPAL));
    json_object_set_new(in, "stack_name", json_string(STACK_NAME));
    assert_int_equal(json_dump_file(in, in_path, JSON_INDENT(1)), 0);
    snprintf(line, sizeof(line), "exec %s -B %s %s %s %s", PYTHON, SCRIPT, cmd, in_path,
             out_path ? out_path : "");
    fflush(stdout);
    fflush(stderr);
    child_t c = {ob_test_sh_async(line), -1};
    assert_true(c.pid > 0);
    if (!ob_test_run_until(loop, child_done, &c, timeout_ms)) {
        ob_test_kill(c.pid);
        fail_msg("boto3 %s did not finish within %d ms", cmd, timeout_ms);
    }
    return c.status;
}

/* ---- the run ---- */

/* Every account's request; the rerun sends them again with new request ids. */
static void produce(const char *rid_suffix)
{
    ob_test_producer_t *p = ob_test_producer(&H);
    char acct[16], rid[32];
    for (int i = 1; i <= NALL; i++) {
        acct_id(i, acct);
        snprintf(rid, sizeof(rid), "conf-%d%s", i, rid_suffix);
        ob_test_req_t rq = {.rid = rid,
                            .account = acct,
                            .mode = i > NNEW ? "existing" : "new",
                            .region = region_of(i),
                            .role = ORG_ROLE};
        ob_test_send_request(p, &rq);
    }
    ob_test_producer_done(p);
}

/* The stacks some existing accounts already have, made in moto by boto3. */
static void setup_stacks(ob_loop_t *loop)
{
    char a[16], ext[40];
    json_t *stacks = json_array();
    for (int i = PRESET_CUR; i <= PRESET_OLD; i++) {
        acct_id(i, a);
        preset_external_id(i, ext);
        json_array_append_new(stacks, json_pack("{s:s, s:s, s:s, s:s}", "account", a, "region",
                                                region_of(i), "external_id", ext, "template",
                                                i == PRESET_CUR ? "current" : "older"));
    }
    json_t *in = json_pack("{s:o, s:s}", "stacks", stacks, "template", TEMPLATE);
    assert_int_equal(run_boto3(loop, "setup", in, NULL, 60000), 0);
    json_decref(in);
}

/* Copy every bucket the bucket stage made in moto into awssim, as boto3 reads
 * it from moto: owner (the account that lists it), region and policy. */
static void mirror_buckets(ob_loop_t *loop, sim_t *sim, out_t *out)
{
    json_t *list = json_array();
    const char *acct;
    json_t *h;
    json_object_foreach(ob_test_out_map(out->o, "cur"), acct, h)
    {
        json_t *b = json_object_get(json_object_get(json_array_get(h, 0), "results"), "bucket");
        json_array_append_new(list, json_pack("{s:s, s:O, s:O}", "account", acct, "name",
                                              json_object_get(b, "name"), "region",
                                              json_object_get(b, "region")));
    }
    json_t *in = json_pack("{s:o}", "buckets", list);
    char out_path[128];
    snprintf(out_path, sizeof(out_path), "%s/mirror-out.json", workdir);
    assert_int_equal(run_boto3(loop, "mirror", in, out_path, 60000), 0);
    json_decref(in);
    json_error_t je;
    json_t *got = json_load_file(out_path, 0, &je);
    assert_non_null(got);
    json_t *buckets = sim_section(sim, "buckets");
    const char *name;
    json_t *b;
    int n = 0;
    json_object_foreach(json_object_get(got, "buckets"), name, b)
    {
        json_object_set_new(buckets, name,
                            json_pack("{s:O, s:O, s:I, s:O}", "owner", json_object_get(b, "owner"),
                                      "region", json_object_get(b, "region"), "created",
                                      (json_int_t)time(NULL), "policy",
                                      json_object_get(b, "policy")));
        n++;
    }
    sim_touch(sim);
    json_decref(got);
    assert_int_equal(n, NNEW);
}

/* Calls awssim served, per service ("s3", "sts", "cloudformation", "cur"). */
static long sim_calls(sim_t *sim, const char *svc)
{
    long n = 0;
    size_t len = strlen(svc);
    const char *api;
    json_t *v;
    json_object_foreach(sim_section(sim, "counts"), api, v)
    {
        if (!strncmp(api, svc, len) && api[len] == '.')
            n += (long)json_integer_value(v);
    }
    return n;
}

static void test_conformance(void **state)
{
    (void)state;
    account_base =
        300000000000ULL +
        (((unsigned long long)time(NULL) * 7 + (unsigned)getpid()) % 100000ULL) * 1000000ULL;
    snprintf(workdir, sizeof(workdir), "/tmp/ob-conformance-XXXXXX");
    assert_non_null(mkdtemp(workdir));
    char a[16];
    sim_opts_t so = {.profile = "instant", .random_seed = 7};
    ob_test_begin(&H, &so);
    ob_loop_t *loop = H.loop;
    sim_t *sim = H.sim;
    /* In awssim, each account's role for the cur worker's session. */
    for (int i = 1; i <= NALL; i++) {
        acct_id(i, a);
        sim_put_role(sim, a, ORG_ROLE, "/",
                     json_pack("{s:s, s:[{s:s, s:{s:s}, s:s}]}", "Version", "2012-10-17",
                               "Statement", "Effect", "Allow", "Principal", "AWS",
                               "arn:aws:iam::" SIM_MGMT_ACCOUNT ":root", "Action",
                               "sts:AssumeRole"),
                     NULL);
    }
    acct_id(1, a);
    printf("accounts %s.. (%d new, %d existing), moto %s, awssim %s, work dir %s\n", a, NNEW,
           NEXISTING, moto_url, H.sim_url, workdir);
    uint64_t t0 = ob_loop_update_time(loop);
    setup_stacks(loop);
    produce("");

    ob_worker_t *workers[4];
    int nw = 0;
    workers[nw++] = ob_test_worker(&H, &ob_stage_bucket, NULL, 5000);
    workers[nw++] = ob_test_worker(&H, &ob_stage_iam, NULL, 5000);
    workers[nw++] = ob_test_worker(&H, &ob_stage_connect, NULL, 5000);

    out_t out = {NULL, json_object(), json_object()};
    ob_test_out_opts_t oo = {.group = "auditor",
                             .topics = {"cur", "connected", "dlq"},
                             .on_message = on_out,
                             .arg = &out};
    out.o = ob_test_out_new(&H, &oo);

    /* Stage by stage: bucket (and iam, connect for the existing accounts). */
    int ok = ob_test_run_until(loop, cur_handoffs_in, &out, 120000);
    uint64_t t1 = ob_loop_update_time(loop);
    printf("bucket stage: %zu hand-offs to cur, %zu connected, %zu dead letters in %.1f s\n",
           json_object_size(ob_test_out_map(out.o, "cur")), json_object_size(out.connected),
           dead_letters(&out), (double)(t1 - t0) / 1000.0);
    assert_int_equal(dead_letters(&out), 0);
    assert_true(ok);
    mirror_buckets(loop, sim, &out);
    workers[nw++] = ob_test_worker_env(&H, &ob_stage_cur, NULL, 5000, cur_env);

    ok = ob_test_run_until(loop, all_connected, &out, 120000);
    uint64_t t2 = ob_loop_update_time(loop);
    int raw = ob_test_out_seen(out.o, "connected");
    printf("all stages: %zu accounts connected, %zu dead letters, %d raw connected events "
           "(%d duplicates) in %.1f s\n",
           json_object_size(out.connected), dead_letters(&out), raw,
           raw - (int)json_object_size(out.connected), (double)(t2 - t0) / 1000.0);
    assert_int_equal(dead_letters(&out), 0);
    assert_true(ok);
    assert_int_equal(json_object_size(out.connected), NALL);

    /* The rerun: every request again (new request ids) with every worker up.
     * Each stage must find its work done and make nothing twice: the buckets
     * are there (BucketAlreadyOwnedByYou, or 200 in us-east-1), the reports
     * unchanged, the stacks need no update, the same roles and ExternalIds. */
    /* As if Redis had lost every record: otherwise the intake would find
     * each account already as the requests ask, and do nothing at all. */
    for (int i = 1; i <= NALL; i++) {
        acct_id(i, a);
        freeReplyObject(redisCommand(ob_test_redis(&H), "DEL ob:{%s}:state", a));
    }
    ob_test_redis_close(&H);
    produce("-rerun");
    ok = ob_test_run_until(loop, all_rerun, &out, 120000);
    uint64_t t3 = ob_loop_update_time(loop);
    raw = ob_test_out_seen(out.o, "connected");
    printf("rerun: %zu accounts connected again, %zu dead letters, %d raw connected events in "
           "all (%d duplicates) in %.1f s\n",
           json_object_size(out.rerun), dead_letters(&out), raw,
           raw - (int)(json_object_size(out.connected) + json_object_size(out.rerun)),
           (double)(t3 - t2) / 1000.0);
    assert_int_equal(dead_letters(&out), 0);
    assert_true(ok);
    const char *acct;
    json_t *first;
    json_object_foreach(out.connected, acct, first)
    {
        json_t *again = json_object_get(out.rerun, acct);
        assert_non_null(again);
        const char *same[] = {"role_arn", "external_id", "stack_id", NULL};
        for (int k = 0; same[k]; k++)
            if (!json_equal(json_object_get(first, same[k]), json_object_get(again, same[k])))
                fail_msg("%s: the rerun's %s differs from the first run's", acct, same[k]);
        /* The same connection: the same key, whichever request made it. */
        assert_true(json_equal(json_object_get(first, "idempotency_key"),
                               json_object_get(again, "idempotency_key")));
    }
    assert_int_equal(ob_test_sim_count(sim, "cur.PutReportDefinition"), NNEW);
    assert_int_equal(ob_test_sim_count(sim, "cur.ModifyReportDefinition"), 0);

    for (int i = 0; i < nw; i++) {
        ob_worker_stats_t ws;
        ob_worker_get_stats(workers[i], &ws);
        printf("worker %-7s received %llu, done %llu, failed %llu, lock busy %llu\n",
               i == 3 ? "cur" : (i == 0 ? "bucket" : (i == 1 ? "iam" : "connect")),
               (unsigned long long)ws.received, (unsigned long long)ws.done,
               (unsigned long long)ws.failed, (unsigned long long)ws.redelivered_lock_busy);
    }
    for (int i = 0; i < nw; i++)
        ob_test_worker_stop(&H, workers[i]);

    /* S3 and CloudFormation never reached awssim; STS there only for CUR. */
    printf("awssim served: s3 %ld, cloudformation %ld, sts %ld, cur %ld calls\n",
           sim_calls(sim, "s3"), sim_calls(sim, "cloudformation"), sim_calls(sim, "sts"),
           sim_calls(sim, "cur"));
    assert_int_equal(sim_calls(sim, "s3"), 0);
    assert_int_equal(sim_calls(sim, "cloudformation"), 0);
    assert_true(sim_calls(sim, "cur") >= 3 * NNEW); /* describe, put; describe on the rerun */
    assert_true(sim_calls(sim, "sts") >= 1);

    /* The audit, by boto3. */
    json_t *accounts = json_array();
    for (int i = 1; i <= NALL; i++) {
        acct_id(i, a);
        json_t *ev = json_object_get(out.connected, a);
        assert_non_null(ev);
        json_t *e =
            json_pack("{s:s, s:s, s:s, s:O, s:s}", "account", a, "mode",
                      i > NNEW ? "existing" : "new", "region", region_of(i), "event", ev,
                      "want_status", i == PRESET_OLD ? "UPDATE_COMPLETE" : "CREATE_COMPLETE");
        if (i == PRESET_CUR || i == PRESET_OLD) {
            char ext[40];
            preset_external_id(i, ext);
            json_object_set_new(e, "preset_external_id", json_string(ext));
            json_object_set_new(e, "preset", json_string(i == PRESET_CUR ? "current" : "older"));
        }
        json_array_append_new(accounts, e);
    }
    json_t *in = json_pack("{s:o, s:s}", "accounts", accounts, "template", TEMPLATE);
    int rc = run_boto3(loop, "check", in, NULL, 180000);
    json_decref(in);
    printf("whole run %.1f s\n", (double)(ob_loop_update_time(loop) - t0) / 1000.0);
    assert_int_equal(rc, 0);

    ob_test_end(&H);
    json_decref(out.connected);
    json_decref(out.rerun);
    char rm[128];
    snprintf(rm, sizeof(rm), "rm -rf %s", workdir);
    if (system(rm) != 0)
        printf("could not remove %s\n", workdir);
}

/* /usr/bin/python3 with boto3, or skip (77) / fail under OB_TEST_REQUIRE_SERVICES=1. */
static void need_boto3(void)
{
    if (system(PYTHON " -c 'import boto3' >/dev/null 2>&1") == 0)
        return;
    const char *req = getenv("OB_TEST_REQUIRE_SERVICES");
    if (req && !strcmp(req, "1")) {
        fprintf(stderr, "FAILED: %s with boto3 is required (OB_TEST_REQUIRE_SERVICES=1)\n", PYTHON);
        exit(1);
    }
    fprintf(stderr, "SKIPPED: %s with boto3 is not available (apt-get install python3-boto3)\n",
            PYTHON);
    exit(OB_TEST_SKIP);
}

int main(void)
{
    ob_test_harness_init(&H, "itc-");
    moto_url = ob_test_service_env("OB_TEST_MOTO_URL", "moto");
    /* Each service chosen as an operator would; AWS_ENDPOINT_URL is not set
     * (the rest of the fleet's identity is the simulator's management one). */
    ob_test_set(&H, "AWS_ENDPOINT_URL", NULL);
    ob_test_set(&H, "AWS_ENDPOINT_URL_S3", moto_url);
    ob_test_set(&H, "AWS_ENDPOINT_URL_STS", moto_url);
    ob_test_set(&H, "AWS_ENDPOINT_URL_CLOUDFORMATION", moto_url);
    ob_test_set(&H, "AWS_ENDPOINT_URL_COST_AND_USAGE_REPORT_SERVICE", H.sim_url);
    ob_test_set(&H, "OB_INFLIGHT_MAX", "50");
    ob_test_set(&H, "OB_BILLING_PRINCIPAL", BILLING_PRINCIPAL);
    ob_test_set(&H, "OB_STACK_POLL", "200ms");
    ob_test_set(&H, "OB_CONNECT_RETRIES", "3");
    ob_test_set(&H, "OB_CONNECT_RETRY_WAIT", "200ms");
    /* accounts of its own, outside any organization */
    ob_test_set(&H, "OB_INTAKE_ORGANIZATION_CHECK", "false");
    /* S3 and STS are moto's: the intake cannot read awssim's CUR as the account */
    ob_test_set(&H, "OB_INTAKE_EXISTING_REPORT_CHECK", "false");
    need_boto3();
    /* OB_TEST_LOG_LEVEL=info (or debug) shows what the workers did against moto. */
    const char *lv = getenv("OB_TEST_LOG_LEVEL");
    int level = lv ? ob_log_level_parse(lv) : -1;
    ob_log_set_level(level >= 0 ? (ob_log_level_t)level : OB_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conformance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
