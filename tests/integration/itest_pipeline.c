/*
 * The whole pipeline end to end against a real Kafka broker, a real Redis and
 * the AWS simulator: the four stage workers (the real runtime, in this
 * process, on one loop) onboard a mixed batch — new and existing accounts, bad
 * input, good requests under a Kafka key that is not their account (or none),
 * members the organization has suspended, an existing account without a
 * Cost and Usage Report (the others' reports named in their events),
 * a role that does not exist, a bucket name someone else owns — and the
 * test checks what a Billing Engine and an auditor would: exactly one
 * connected event per account (after deduplication by its idempotency key;
 * raw duplicates are counted and printed), every resource exactly once in the
 * simulator with the right settings, each role trusting the Billing Engine
 * with the event's ExternalId, and a dead letter with the right reason for
 * every request meant to fail. Run once with one replica of every worker and
 * once with two.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ob_kafka.h"
#include "ob_log.h"
#include "ob_worker.h"
#include "sim.h"
#include "stages.h"
#include "testutil.h"

#define NNEW      240
#define NEXISTING 40
#define TAKEN     5                      /* asks for a bucket name member 59 owns */
#define NOROLE    9                      /* its role does not exist */
#define MISKEYED  (NNEW + NEXISTING + 1) /* a good request under another Kafka key */
#define UNKEYED   (NNEW + NEXISTING + 2) /* a good request with no key */
#define OUTSIDE   350                    /* not in the organization (it has 300 members) */
#define NOCUR     (NNEW + 2)             /* existing, but without a Cost and Usage Report */
#define MGMT_ROOT "arn:aws:iam::111111111111:root"

static const char *brokers;
static int redis_port;
static char prefix[64];
static char sim_url[64];

static const char *env_get(const char *name, void *ctx)
{
    static char port_s[16];
    const char *kv[][2] = {{"OB_TOPIC_PREFIX", prefix},        {"OB_REDIS_PORT", port_s},
                           {"OB_INFLIGHT_MAX", "25"},          {"OB_BILLING_PRINCIPAL", MGMT_ROOT},
                           {"OB_STACK_POLL", "100ms"},         {"OB_CONNECT_RETRIES", "3"},
                           {"OB_CONNECT_RETRY_WAIT", "200ms"}, {NULL, NULL}};
    snprintf(port_s, sizeof(port_s), "%d", redis_port);
    const char *v = ob_test_kv_lookup(kv, name);
    return v ? v : ob_test_sim_env(name, sim_url);
}

static void kafka_defaults(ob_cfg_kv_t *kv)
{
    ob_test_kafka_defaults(kv, brokers);
}

static void acct_id(int i, char out[16])
{
    ob_test_member_account(i, out);
}

typedef struct out_s {
    json_t *connected; /* idempotency key -> event */
    json_t *dlq;       /* account (or key) -> record */
    int raw_connected;
    int accounts_done;
} out_t;

static void on_out(ob_kconsumer_t *c, const rd_kafka_message_t *m, void *arg)
{
    out_t *o = arg;
    const char *t = rd_kafka_topic_name(m->rkt) + strlen(prefix);
    json_t *j = json_loadb(m->payload, m->len, 0, NULL);
    if (!strcmp(t, "connected")) {
        o->raw_connected++;
        const char *k = json_string_value(json_object_get(j, "idempotency_key"));
        if (k && !json_object_get(o->connected, k)) {
            json_object_set(o->connected, k, j);
            o->accounts_done++;
        }
    } else {
        char key[64];
        snprintf(key, sizeof(key), "%.*s", (int)m->key_len, m->key ? (const char *)m->key : "");
        if (!json_object_get(o->dlq, key)) {
            json_object_set(o->dlq, key, j);
            o->accounts_done++;
        }
    }
    json_decref(j);
    ob_kconsumer_store(c, rd_kafka_topic_name(m->rkt), m->partition, m->offset + 1);
}

typedef struct want_s {
    out_t *o;
    int n;
} want_t;

static int got_all(void *arg)
{
    want_t *w = arg;
    return w->o->accounts_done >= w->n;
}

static void produce(ob_loop_t *loop)
{
    ob_cfg_kv_t kv = {0};
    kafka_defaults(&kv);
    ob_kproducer_opts_t po = {.kafka = &kv};
    ob_kproducer_t *p = ob_kproducer_new(loop, &po, NULL, 0);
    char topic[128], body[1024], acct[16];
    snprintf(topic, sizeof(topic), "%srequests", prefix);
    for (int i = 1; i <= NNEW + NEXISTING; i++) {
        acct_id(i, acct);
        const char *bucket = i == TAKEN ? ",\"bucket\":{\"name\":\"owned-by-member-59\"}" : "";
        snprintf(body, sizeof(body),
                 "{\"schema\":\"onboard.request/1\",\"request_id\":\"%sreq-%d\",\"account_id\":"
                 "\"%s\",\"cloud\":\"aws\",\"mode\":\"%s\",\"region\":\"%s\",\"role_arn\":"
                 "\"arn:aws:iam::%s:role/%s\"%s}",
                 prefix, i, acct, i > NNEW ? "existing" : "new", i % 2 ? "eu-west-1" : "us-east-1",
                 acct, i == NOROLE ? "NoSuchRole" : "OrganizationAccountAccessRole", bucket);
        assert_int_equal(ob_kproducer_send(p, topic, RD_KAFKA_PARTITION_UA, acct, strlen(acct),
                                           body, strlen(body), NULL, NULL, NULL, 0),
                         OB_OK);
    }
    for (int i = MISKEYED; i <= UNKEYED; i++) {
        acct_id(i, acct);
        snprintf(body, sizeof(body),
                 "{\"schema\":\"onboard.request/1\",\"request_id\":\"%sreq-%d\",\"account_id\":"
                 "\"%s\",\"cloud\":\"aws\",\"mode\":\"new\",\"region\":\"eu-west-1\","
                 "\"role_arn\":\"arn:aws:iam::%s:role/OrganizationAccountAccessRole\"}",
                 prefix, i, acct, acct);
        const char *key = i == MISKEYED ? "not-the-account" : NULL;
        assert_int_equal(ob_kproducer_send(p, topic, RD_KAFKA_PARTITION_UA, key,
                                           key ? strlen(key) : 0, body, strlen(body), NULL, NULL,
                                           NULL, 0),
                         OB_OK);
    }
    acct_id(OUTSIDE, acct);
    snprintf(body, sizeof(body),
             "{\"schema\":\"onboard.request/1\",\"request_id\":\"%sreq-out\",\"account_id\":"
             "\"%s\",\"cloud\":\"aws\",\"mode\":\"existing\",\"region\":\"eu-west-1\","
             "\"role_arn\":\"arn:aws:iam::%s:role/OrganizationAccountAccessRole\"}",
             prefix, acct, acct);
    assert_int_equal(ob_kproducer_send(p, topic, RD_KAFKA_PARTITION_UA, acct, strlen(acct), body,
                                       strlen(body), NULL, NULL, NULL, 0),
                     OB_OK);
    const char *bad = "{\"schema\":\"onboard.request/1\",\"account_id\":\"oops";
    assert_int_equal(ob_kproducer_send(p, topic, RD_KAFKA_PARTITION_UA, "bad", 3, bad, strlen(bad),
                                       NULL, NULL, NULL, 0),
                     OB_OK);
    assert_int_equal(ob_kproducer_flush(p, 30000), OB_OK);
    ob_kproducer_free(p);
    ob_cfg_kv_free(&kv);
}

/* The dead letter of member i: its stage, class and code, and its reason
 * naming `says` (NULL: not checked). */
static json_t *expect_dlq(out_t *o, int i, const char *stage, const char *cls, const char *code,
                          const char *says)
{
    char a[16];
    acct_id(i, a);
    json_t *d = json_object_get(o->dlq, a), *e = json_object_get(d, "error");
    if (!d)
        fail_msg("no dead letter for %s (want %s)", a, code);
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (strcmp(json_string_value(json_object_get(d, "stage")), stage) != 0 ||
        strcmp(json_string_value(json_object_get(e, "class")), cls) != 0 ||
        strcmp(json_string_value(json_object_get(e, "code")), code) != 0 ||
        (says && !strstr(msg, says)))
        fail_msg("%s: dead letter %s/%s/%s (%s), want %s/%s/%s naming \"%s\"", a,
                 json_string_value(json_object_get(d, "stage")),
                 json_string_value(json_object_get(e, "class")),
                 json_string_value(json_object_get(e, "code")), msg, stage, cls, code,
                 says ? says : "");
    return d;
}

static void run_pipeline(int replicas)
{
    snprintf(prefix, sizeof(prefix), "itp%d-%ld%d.", replicas, (long)time(NULL) % 100000,
             (int)getpid());
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    char err[512];
    const char *lat[] = {"cloudformation.stack_create=300ms", "cloudformation.stack_update=300ms",
                         "cloudformation.stack_delete=200ms", NULL};
    sim_opts_t so = {.profile = "instant", .org_accounts = 300, .random_seed = 5, .latency = lat};
    sim_t *sim = sim_new(loop, &so, err, sizeof(err));
    assert_non_null(sim);
    ob_test_forget_members(redis_port, 1, so.org_accounts);
    snprintf(sim_url, sizeof(sim_url), "http://127.0.0.1:%d", sim_port(sim));
    /* Existing accounts already have a Cost and Usage Report. */
    for (int i = NNEW + 1; i <= NNEW + NEXISTING; i++) {
        if (i == NOCUR || i % 50 == 0)
            continue;
        char acct[16], bucket[64];
        acct_id(i, acct);
        snprintf(bucket, sizeof(bucket), "cur-of-%s", acct);
        ob_test_seed_report(sim, acct, "their-own-cur", bucket, "eu-central-1");
    }
    json_object_set_new(
        sim_section(sim, "buckets"), "owned-by-member-59",
        json_pack("{s:s, s:s, s:i}", "owner", "200000000059", "region", "eu-west-1", "created", 0));
    produce(loop);

    ob_config_t cfg;
    assert_int_equal(ob_config_load(&cfg, NULL, env_get, NULL, err, sizeof(err)), OB_OK);
    kafka_defaults(&cfg.kafka);
    const ob_stage_ops_t *stages[] = {&ob_stage_bucket, &ob_stage_cur, &ob_stage_iam,
                                      &ob_stage_connect};
    ob_worker_t *workers[8];
    int nw = 0;
    for (int r = 0; r < replicas; r++) {
        for (int s = 0; s < 4; s++) {
            ob_worker_opts_t wo = {.stage = stages[s],
                                   .config = &cfg,
                                   .name = stages[s]->name,
                                   .lock_ttl_ms = 10000,
                                   .shutdown_ms = 5000,
                                   .getenv_fn = env_get};
            workers[nw] = ob_worker_new(loop, &wo, err, sizeof(err));
            if (!workers[nw])
                fail_msg("worker %s: %s", stages[s]->name, err);
            nw++;
        }
    }

    out_t out = {json_object(), json_object(), 0, 0};
    ob_cfg_kv_t kv = {0};
    kafka_defaults(&kv);
    char tc[128], td[128], group[160];
    snprintf(tc, sizeof(tc), "%sconnected", prefix);
    snprintf(td, sizeof(td), "%sdlq", prefix);
    snprintf(group, sizeof(group), "%sauditor", prefix);
    const char *topics[] = {tc, td};
    ob_kconsumer_opts_t co = {.group_id = group,
                              .topics = topics,
                              .ntopics = 2,
                              .kafka = &kv,
                              .on_message = on_out,
                              .arg = &out};
    ob_kconsumer_t *auditor = ob_kconsumer_new(loop, &co, err, sizeof(err));
    assert_non_null(auditor);

    /* TAKEN and NOROLE fail, and the members the organization has
     * SUSPENDED (every 50th) are refused at intake. */
    int suspended = (NNEW + NEXISTING) / 50;
    int expect_connected = NNEW + NEXISTING - 3 - suspended;
    want_t want = {&out, expect_connected + 7 + suspended};
    uint64_t t0 = ob_loop_update_time(loop);
    int ok = ob_test_run_until(loop, got_all, &want, 240000);
    uint64_t took = ob_loop_update_time(loop) - t0;
    printf("%d replica(s): %zu accounts connected, %zu dead letters, %d raw connected events "
           "(%d duplicates) in %.1f s\n",
           replicas, json_object_size(out.connected), json_object_size(out.dlq), out.raw_connected,
           out.raw_connected - (int)json_object_size(out.connected), (double)took / 1000.0);
    if (!ok) {
        /* Where the work stands, to tell a stalled worker from a stalled reader. */
        printf("auditor received %llu messages\n",
               (unsigned long long)ob_kconsumer_received(auditor));
        for (int i = 0; i < nw; i++) {
            ob_worker_stats_t st;
            ob_worker_get_stats(workers[i], &st);
            printf("worker %d (%s): received %llu, done %llu, dead letters %llu, skipped %llu, "
                   "lock busy %llu, redis errors %llu, in flight %zu (new %zu, queued %zu, "
                   "locking %zu, running %zu, emitting %zu, finishing %zu), paused %d\n",
                   i, stages[i % 4]->name, (unsigned long long)st.received,
                   (unsigned long long)st.done, (unsigned long long)st.dead_letters,
                   (unsigned long long)st.skipped_done,
                   (unsigned long long)st.redelivered_lock_busy,
                   (unsigned long long)st.redis_errors, st.inflight, st.by_phase[0], st.by_phase[1],
                   st.by_phase[2], st.by_phase[3], st.by_phase[4], st.by_phase[5], st.paused);
        }
    }
    assert_true(ok);
    assert_int_equal(json_object_size(out.connected), expect_connected);

    /* The dead letters and their reasons. */
    char a[16];
    json_t *d = expect_dlq(&out, TAKEN, "bucket", "permanent", "BucketAlreadyExists", NULL);
    expect_dlq(&out, NOROLE, "bucket", "permanent", "AccessDenied", "NoSuchRole");
    /* Refused at intake, before anything is made: an existing account without
     * a report of its own, an account outside the organization, the members
     * the organization suspended, and a request under another key (or none):
     * the key is what keeps an account's messages on one partition. */
    expect_dlq(&out, NOCUR, "bucket", "permanent", "no_cur_report", "has no Cost and Usage Report");
    expect_dlq(&out, OUTSIDE, "bucket", "permanent", "account_outside_organization",
               "is not a member of the fleet's organization");
    for (int i = 50; i <= NNEW + NEXISTING; i += 50) {
        expect_dlq(&out, i, "bucket", "permanent", "account_not_active", "SUSPENDED");
        acct_id(i, a);
        assert_null(json_object_get(sim_section(sim, "reports"), a));
    }
    expect_dlq(&out, MISKEYED, "bucket", "invalid_input", "key_mismatch",
               "\"not-the-account\" is not the account id");
    expect_dlq(&out, UNKEYED, "bucket", "invalid_input", "key_mismatch", "has no Kafka key");
    for (int i = 50; i <= UNKEYED; i++) {
        if (i % 50 && i < MISKEYED)
            continue;
        acct_id(i, a);
        char name[64];
        snprintf(name, sizeof(name), "billing-cur-%s-%s", a,
                 i % 2 || i >= MISKEYED ? "eu-west-1" : "us-east-1");
        assert_null(json_object_get(sim_section(sim, "buckets"), name));
    }
    d = json_object_get(out.dlq, "bad");
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(json_object_get(d, "error"), "class")),
                        "invalid_input");

    /* Every connected account: one event, one stack, a role that trusts the
     * Billing Engine with exactly the event's ExternalId. */
    json_t *stacks = sim_section(sim, "stacks");
    const char *k;
    json_t *ev;
    json_object_foreach(out.connected, k, ev)
    {
        const char *acct = json_string_value(json_object_get(ev, "account_id"));
        const char *ext = json_string_value(json_object_get(ev, "external_id"));
        const char *role_arn = json_string_value(json_object_get(ev, "role_arn"));
        assert_int_equal(strlen(ext), 32);
        char racct[13], rname[128];
        assert_int_equal(sim_parse_role_arn(role_arn, racct, rname, sizeof(rname)), 0);
        assert_string_equal(racct, acct);
        json_t *role = sim_get_role(sim, racct, rname);
        assert_non_null(role);
        char *trust = json_dumps(json_object_get(role, "AssumeRolePolicyDocument"), 0);
        assert_non_null(strstr(trust, MGMT_ROOT));
        assert_non_null(strstr(trust, ext));
        free(trust);
        int live = 0;
        const char *sid;
        json_t *st;
        json_object_foreach(stacks, sid, st)
        {
            if (strstr(sid, acct) &&
                !strstr(json_string_value(json_object_get(st, "StackStatus"))
                            ? json_string_value(json_object_get(st, "StackStatus"))
                            : "",
                        "DELETE"))
                live++;
        }
        assert_int_equal(live, 1);
    }
    /* New accounts: one bucket set up in full and one report with the seed's settings. */
    json_t *buckets = sim_section(sim, "buckets"), *reports = sim_section(sim, "reports");
    for (int i = 1; i <= NNEW; i++) {
        if (i == TAKEN || i == NOROLE || i % 50 == 0)
            continue;
        acct_id(i, a);
        char name[64];
        snprintf(name, sizeof(name), "billing-cur-%s-%s", a, i % 2 ? "eu-west-1" : "us-east-1");
        json_t *b = json_object_get(buckets, name);
        assert_non_null(b);
        assert_non_null(json_object_get(b, "policy"));
        json_t *rep = json_object_get(json_object_get(reports, a), "billing-engine-cur");
        if (!rep)
            fail_msg("report missing for %s", a);
        assert_string_equal(json_string_value(json_object_get(rep, "TimeUnit")), "HOURLY");
        assert_string_equal(json_string_value(json_object_get(rep, "S3Prefix")), "CUR");
        assert_string_equal(json_string_value(json_object_get(rep, "Compression")), "GZIP");
        assert_int_equal(json_object_size(json_object_get(reports, a)), 1);
    }
    /* Existing accounts keep the report they had (no other made), and their
     * event names it. */
    for (int i = NNEW + 1; i <= NNEW + NEXISTING; i++) {
        if (i % 50 == 0 || i == NOCUR)
            continue;
        acct_id(i, a);
        assert_int_equal(json_object_size(json_object_get(reports, a)), 1);
        assert_non_null(json_object_get(json_object_get(reports, a), "their-own-cur"));
    }
    json_object_foreach(out.connected, k, ev)
    {
        const char *acct = json_string_value(json_object_get(ev, "account_id"));
        if (strcmp(json_string_value(json_object_get(ev, "mode")), "existing") != 0)
            continue;
        json_t *rep = json_object_get(ev, "report");
        char theirs[64];
        snprintf(theirs, sizeof(theirs), "cur-of-%s", acct);
        assert_string_equal(json_string_value(json_object_get(rep, "name")), "their-own-cur");
        assert_string_equal(json_string_value(json_object_get(rep, "bucket")), theirs);
        assert_string_equal(json_string_value(json_object_get(rep, "region")), "eu-central-1");
    }

    ob_kconsumer_close(auditor);
    ob_kconsumer_free(auditor);
    for (int i = 0; i < nw; i++) {
        ob_worker_stop(workers[i]);
        ob_worker_run(workers[i]);
        ob_worker_free(workers[i]);
    }
    ob_cfg_kv_free(&kv);
    json_decref(out.connected);
    json_decref(out.dlq);
    sim_free(sim);
    ob_config_free(&cfg);
    ob_loop_free(loop);
}

static void test_one_replica(void **state)
{
    run_pipeline(1);
}

static void test_two_replicas(void **state)
{
    run_pipeline(2);
}

int main(void)
{
    brokers = ob_test_service_env("OB_TEST_KAFKA_BROKERS", "an Apache Kafka broker");
    redis_port = atoi(ob_test_service_env("OB_TEST_REDIS_PORT", "redis-server"));
    ob_log_set_level(OB_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_replica),
        cmocka_unit_test(test_two_replicas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
