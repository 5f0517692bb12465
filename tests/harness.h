/*
 * harness: what the integration tests of the stage workers share.
 *
 * Such a test runs one or more stage workers (the real runtime) in its own
 * process, on one loop, against the real Kafka broker and Redis
 * (OB_TEST_KAFKA_BROKERS, OB_TEST_REDIS_PORT) and, as a rule, the AWS
 * simulator on a free port. It feeds them messages and reads what they
 * produce, what the simulator holds and what Redis says of each account. The
 * pieces:
 *
 *   ob_test_harness_t    the services' addresses, a topic prefix of the run's
 *                        own, the settings the workers read (their fake
 *                        environment), and for one test the loop, the
 *                        simulator and everything started below;
 *   ob_test_worker       a stage worker on those settings;
 *   ob_test_producer     requests and other messages produced to a topic;
 *   ob_test_out          a collector of output topics, messages by Kafka key;
 *   ob_test_state        an account's state in Redis, read with a blocking
 *                        client (the loop is not run while it reads);
 *   ob_test_sim_*        the simulator's call counts, stacks and admin calls.
 *
 * A test file keeps one harness for the whole process (the prefix and the
 * settings outlive each test case, as the topics do):
 *
 *   static ob_test_harness_t H;
 *   main:   ob_test_harness_init(&H, "itw"); ob_test_set(&H, "OB_INFLIGHT_MAX", "16");
 *   a test: ob_test_begin(&H, &sim_opts); w = ob_test_worker(&H, &ob_stage_bucket, ...);
 *           ... ob_test_end(&H);
 *
 * Ownership: between ob_test_begin and ob_test_end the harness owns the loop,
 * the simulator, the workers (and their configs), the collectors and its
 * Redis and HTTP clients; ob_test_end frees them all. A producer is the
 * test's until ob_test_producer_done frees it. The strings given to
 * ob_test_set and the per-worker settings are borrowed: they must outlive
 * the workers reading them (literals, or buffers that live as long).
 * Threading: the loop thread; tests are single-threaded.
 */
#ifndef OB_TEST_HARNESS_H
#define OB_TEST_HARNESS_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "ob_http.h"
#include "ob_kafka.h"
#include "ob_worker.h"
#include "sim.h"
#include "testutil.h"

#define OB_TEST_SETTINGS_MAX 32 /* settings a harness holds */
#define OB_TEST_OUT_TOPICS   4  /* topics one collector reads */

typedef struct ob_test_worker_s ob_test_worker_t;
typedef struct ob_test_out_s ob_test_out_t;

typedef struct ob_test_harness_s {
    /* The whole run (ob_test_harness_init). */
    const char *brokers; /* OB_TEST_KAFKA_BROKERS */
    int redis_port;      /* OB_TEST_REDIS_PORT */
    char prefix[64];     /* topic prefix: every topic and group of the run is under it */
    const char *settings[OB_TEST_SETTINGS_MAX + 1][2]; /* ob_test_set; {NULL, NULL} ends */
    /* One test (ob_test_begin .. ob_test_end). */
    ob_loop_t *loop;
    sim_t *sim;       /* NULL when the test asked for none */
    char sim_url[64]; /* http://127.0.0.1:PORT of the simulator ("" when none) */
    char redis_port_s[16];
    ob_test_worker_t *workers;
    ob_test_out_t *outs;
    redisContext *rc; /* ob_test_redis */
    ob_http_t *http;  /* ob_test_sim_config */
} ob_test_harness_t;

/* Read the services' addresses from the environment (skipping or failing the
 * test as ob_test_service_env does when one is missing) and make a prefix
 * from `tag`, the time and the pid ("itw12345678." for "itw"). */
void ob_test_harness_init(ob_test_harness_t *h, const char *tag);
/* A prefix of its own for what follows (a test that wants fresh topics). */
void ob_test_new_prefix(ob_test_harness_t *h, const char *tag);

/* A setting the workers read, by its environment name ("OB_INFLIGHT_MAX",
 * "AWS_REGION"): replaces an earlier value of the name. A NULL value answers
 * "not set" (the setting's default) rather than passing the name on. Before
 * these settings come each worker's own (ob_test_worker_env), after them
 * OB_TOPIC_PREFIX (the prefix), OB_REDIS_PORT (the test's Redis) and, when
 * the test has a simulator, the environment of its management identity
 * (ob_test_sim_env: AWS_ENDPOINT_URL and the rest). */
void ob_test_set(ob_test_harness_t *h, const char *name, const char *value);

/* Start one test: a loop and, when so is not NULL, a simulator with these
 * options on a free port (sim_url). Fails the test if it cannot start. What
 * an earlier test that failed (and so never ended) started is left alone. */
void ob_test_begin(ob_test_harness_t *h, const sim_opts_t *so);
/* End it: close the collectors, stop the workers still running (each
 * gracefully, as SIGTERM does, in the order they started), free them, the
 * harness's Redis and HTTP clients, the simulator and the loop. Returns
 * OB_OK, or the first error a worker's graceful shutdown returned. */
ob_err_t ob_test_end(ob_test_harness_t *h);

/* ---- workers ---- */

/* A worker of `stage` named `name` (NULL: the stage's name) on the harness's
 * settings as they are now (its config is loaded here and kept with it),
 * with the Kafka settings of ob_test_kafka_defaults, a 10 s lock TTL and
 * shutdown_ms for a graceful stop. Fails the test if it cannot start. */
ob_worker_t *ob_test_worker(ob_test_harness_t *h, const ob_stage_ops_t *stage, const char *name,
                            long shutdown_ms);
/* The same with settings of this worker alone, looked up before the
 * harness's: a {name, value} table ending with {NULL, NULL} (borrowed). */
ob_worker_t *ob_test_worker_env(ob_test_harness_t *h, const ob_stage_ops_t *stage, const char *name,
                                long shutdown_ms, const char *const (*env)[2]);
/* The four stage workers (bucket, cur, iam, connect; ob_test_worker each)
 * into w, after a fresh prefix from `tag`, a test begun with a simulator of
 * the instant profile with `members` organization accounts (their records
 * forgotten), stacks taking 300 ms to create or update and 200 ms to
 * delete, and `seed` for its random draws. */
void ob_test_fleet(ob_test_harness_t *h, const char *tag, int members, int seed, ob_worker_t *w[4]);
/* Stop the worker gracefully and free it: what ob_worker_run returned. */
ob_err_t ob_test_worker_stop(ob_test_harness_t *h, ob_worker_t *w);
/* Free a worker whose run has already ended (it stopped by itself). */
void ob_test_worker_free(ob_test_harness_t *h, ob_worker_t *w);
/* 1 when no worker of the harness has anything in flight. */
int ob_test_workers_idle(void *harness);

/* ---- producing ---- */

/* A request (onboard.request/1) as the tests send them. */
typedef struct ob_test_req_s {
    const char *rid;     /* the request id after the prefix ("r1-7": "<prefix>r1-7") */
    const char *account; /* 12 digits */
    const char *mode;    /* NULL: "new" */
    const char *region;  /* NULL: "eu-west-1" */
    const char *role;    /* the role's name in the account; NULL: OrganizationAccountAccessRole */
    const char *extra;   /* members after role_arn, e.g. ",\"bucket\":{...}"; NULL: none */
} ob_test_req_t;

/* The request as JSON into out (the test fails if it does not fit). */
void ob_test_request_json(const ob_test_harness_t *h, const ob_test_req_t *r, char *out,
                          size_t size);

/* A plain (not transactional) producer on the harness's loop. */
typedef struct ob_test_producer_s {
    ob_test_harness_t *h;
    ob_kproducer_t *p;
    ob_cfg_kv_t kv;
} ob_test_producer_t;

ob_test_producer_t *ob_test_producer(ob_test_harness_t *h);
/* Queue body to <prefix><topic> under key (NULL: no key), partitioned by key. */
void ob_test_send(ob_test_producer_t *p, const char *topic, const char *key, const char *body);
/* The same to one partition (RD_KAFKA_PARTITION_UA: by key), with headers
 * (NULL: none; the producer owns them after this call). */
void ob_test_send_to(ob_test_producer_t *p, const char *topic, int32_t partition, const char *key,
                     const char *body, rd_kafka_headers_t *headers);
/* A request to the requests topic under its account's key. */
void ob_test_send_request(ob_test_producer_t *p, const ob_test_req_t *r);
/* Wait until the broker has every message (30 s at most, or the test
 * fails), then free the producer. */
void ob_test_producer_done(ob_test_producer_t *p);

/* ---- collecting the outputs ---- */

/* Called for each message a collector keeps, after keeping it: the topic
 * (its suffix, "dlq"), the Kafka key ("" when none) and the message. */
typedef void ob_test_out_cb(ob_test_out_t *o, const char *topic, const char *key,
                            const rd_kafka_message_t *m, void *arg);

typedef struct ob_test_out_opts_s {
    const char *group;                          /* consumer group, after the prefix */
    const char *topics[OB_TEST_OUT_TOPICS + 1]; /* suffixes ("cur", "dlq"), NULL-terminated */
    int raw;          /* keep each payload as a JSON string instead of parsing it */
    const char *only; /* not NULL: pass over messages without this text (their offsets stored) */
    ob_test_out_cb *on_message; /* may be NULL */
    void *arg;
} ob_test_out_opts_t;

/* A collector: a consumer of the topics in group <prefix><group> keeping
 * every message by topic and Kafka key, in the order seen. Fields for the
 * test to read (and reset, as ob_test_out_clear does): */
struct ob_test_out_s {
    ob_test_out_opts_t o;
    /* Per topic, as in o.topics: key -> array of the messages under it; each
     * the parsed JSON, or the payload as a JSON string (raw, or not JSON). */
    json_t *by_key[OB_TEST_OUT_TOPICS];
    int n[OB_TEST_OUT_TOPICS]; /* messages kept, per topic */
    /* (topic, key) pairs seen for the first time: accounts, not messages
     * (a rebalance may deliver a message twice). */
    int keys;
    ob_test_harness_t *h;
    ob_kconsumer_t *c;
    ob_cfg_kv_t kv;
    char names[OB_TEST_OUT_TOPICS][128];
    ob_test_out_t *next;
};

/* Start a collector (the harness closes it at ob_test_end). */
ob_test_out_t *ob_test_out_new(ob_test_harness_t *h, const ob_test_out_opts_t *opts);
/* The key -> messages object of a topic (the test fails on an unknown one). */
json_t *ob_test_out_map(ob_test_out_t *o, const char *topic);
/* Messages of a topic under key: how many, the first and the last (NULL: none). */
size_t ob_test_out_count(ob_test_out_t *o, const char *topic, const char *key);
json_t *ob_test_out_first(ob_test_out_t *o, const char *topic, const char *key);
json_t *ob_test_out_last(ob_test_out_t *o, const char *topic, const char *key);
/* Messages kept of a topic, in all. */
int ob_test_out_seen(ob_test_out_t *o, const char *topic);
/* Forget everything kept (every topic, the counts). */
void ob_test_out_clear(ob_test_out_t *o);
/* Run the loop until o->keys >= n or timeout_ms passes; 1 if reached. */
int ob_test_out_wait(ob_test_out_t *o, int n, int timeout_ms);

/* A dead-letter record's stage, class and code, and its reason naming
 * `says` (NULL: not checked); `who` names it in the failure. */
void ob_test_check_dlq(const json_t *d, const char *who, const char *stage, const char *cls,
                       const char *code, const char *says);
/* A dead letter's original is the message as it was sent (len bytes): its
 * payload, as JSON, says all the message said (the worker may give it
 * encoded again, defaults written out), and its size and SHA-256 are those
 * of the bytes sent. */
void ob_test_check_dlq_original(const json_t *d, const char *who, const char *sent, size_t len);
/* The first dead letter under key in the collector's "dlq" topic, checked
 * as above (the test fails when there is none); borrowed. */
json_t *ob_test_expect_dlq(ob_test_out_t *o, const char *key, const char *stage, const char *cls,
                           const char *code, const char *says);

/* ---- Redis: the accounts' state ---- */

/* A blocking client of the test's Redis, on the database the workers use
 * (OB_REDIS_DB when set), connected at the first call (the test fails if it
 * cannot be); the harness's until ob_test_redis_close or ob_test_end. */
redisContext *ob_test_redis(ob_test_harness_t *h);
void ob_test_redis_close(ob_test_harness_t *h);
/* HGET key field: the value (malloc'd; "" when absent). */
char *ob_test_hget(ob_test_harness_t *h, const char *key, const char *field);
/* A field of the account's record (ob_state_key: ob:{ACCOUNT}:state), as ob_test_hget. */
char *ob_test_state(ob_test_harness_t *h, const char *account, const char *field);
/* The same for simulator member i (ob_test_member_account). */
char *ob_test_member_state(ob_test_harness_t *h, int member, const char *field);
/* Member i's state field must be `want`. */
void ob_test_expect_state(ob_test_harness_t *h, int member, const char *field, const char *want);
/* The account's whole state as {field: value} (a new reference). */
json_t *ob_test_state_all(ob_test_harness_t *h, const char *account);

/* ---- the simulator ---- */

/* Calls the simulator served of one API ("cur.PutReportDefinition"), in
 * all or for one account. */
long long ob_test_sim_count(sim_t *sim, const char *api);
long long ob_test_sim_account_count(sim_t *sim, const char *account, const char *api);
/* Calls that change something in AWS (create, put, modify, delete of a
 * bucket and its settings, a report, a stack), made so far (all accounts). */
long long ob_test_sim_mutations(sim_t *sim);
/* The account's stacks not deleted (no status with DELETE in it) whose id
 * has `in` in it (":eu-west-1:"; NULL: any). */
int ob_test_sim_live_stacks(sim_t *sim, const char *account, const char *in);
/* POST body to the test simulator's /_sim/config (faults, latency) and wait
 * for the answer (5 s at most, or the test fails): its HTTP status. */
long ob_test_sim_config(ob_test_harness_t *h, const char *body);
/* The same to any admin path ("/_sim/seed"). */
long ob_test_sim_post(ob_test_harness_t *h, const char *path, const char *body);

/* ---- onboardctl ---- */

/* Run `tool args` (onboardctl at its build path) on the harness's topics,
 * Redis and broker, the loop not running meanwhile; the last non-empty line
 * it printed (stdout and stderr) into out. Its exit status (-1: killed). */
int ob_test_ctl(const ob_test_harness_t *h, const char *tool, const char *args, char *out,
                size_t n);
/* The same with the harness's loop running meanwhile (the workers of the
 * test go on working: a tool that waits on them). */
int ob_test_ctl_live(ob_test_harness_t *h, const char *tool, const char *args, char *out, size_t n);

/* ---- processes of the fleet ---- */

/* Start an executable of the fleet (onboard-lifecycle) as a process of its
 * own on the harness's services and simulator: the harness's settings, its
 * topic prefix, Redis and broker, the simulator's endpoint and credentials,
 * then env (NULL or {NULL, NULL}-ended pairs; a NULL value unsets). Its
 * stdout and stderr go to the file log (appended). OB_TEST_FLEET_WRAPPER,
 * when set, is a command line it runs under (valgrind). Its pid. */
pid_t ob_test_fleet_process(ob_test_harness_t *h, const char *exe, const char *const (*env)[2],
                            const char *log);
/* Send sig to pid (0: none) and wait for it to exit, the harness's loop
 * running meanwhile; the test fails after timeout_ms. Its exit status, or
 * 128 + the signal that ended it. */
int ob_test_reap(ob_test_harness_t *h, pid_t pid, int sig, int timeout_ms);

/* Run the tests, or with OB_TEST_ONLY only those it names (by commas; one it
 * names that is not among them is an error, exit code 2). */
int ob_test_run_selected(const char *group, const struct CMUnitTest *tests, size_t n);

#endif
