/*
 * testutil: helpers shared by the unit and integration tests (harness.h adds
 * what the integration tests of the stage workers share).
 *
 * Include this instead of <cmocka.h> directly: it pulls in the headers cmocka
 * needs in the right order.
 *
 * Ownership: a char * a helper returns, or leaves in a struct it fills, is
 * malloc'd and the caller's to free(); what a helper is given stays the
 * caller's. Helpers that wait run the loop they are given and fail the test
 * when what they wait for does not come in time. Threading: the test's one
 * thread.
 */
#ifndef OB_TESTUTIL_H
#define OB_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* Exit code CTest reports as "skipped" (SKIP_RETURN_CODE 77). */
#define OB_TEST_SKIP 77

/* Read a whole file into a NUL-terminated malloc'd buffer; NULL if absent.
 * *len (if not NULL) receives the length without the terminator. */
char *ob_test_read_file(const char *path, size_t *len);

/* Service address from the environment, or NULL. When NULL and
 * OB_TEST_REQUIRE_SERVICES=1, prints why and exits 1; otherwise prints a loud
 * SKIPPED line and exits OB_TEST_SKIP. */
const char *ob_test_service_env(const char *var, const char *what);

#include <sys/types.h>

#include "ob_config.h"
#include "ob_loop.h"

/* Start argv[0] with stdout on a pipe and read its first line (e.g. the port
 * a test server picked) into first_line. Returns the pid, or -1. */
pid_t ob_test_spawn(char *const argv[], char *first_line, size_t first_line_size);
/* Settings with the lifecycle.* rules at their defaults and region
 * eu-west-1, everything else zero (the strings are literals: read only). */
ob_config_t ob_test_lifecycle_config(void);
/* SIGKILL and reap. */
void ob_test_kill(pid_t pid);
/* Start `sh -c cmd` in the background; returns its pid. */
pid_t ob_test_sh_async(const char *cmd);
/* Non-blocking: 1 and the exit status in *status once pid has exited, else 0. */
int ob_test_exited(pid_t pid, int *status);
/* A private redis-server of the test's own on 127.0.0.1:port (nothing saved,
 * no log), with these extra arguments (NULL: none), started in the
 * background: its pid (ob_test_kill stops it). */
pid_t ob_test_redis_server(int port, const char *extra_args);

/* Run the loop until done(arg) is true or timeout_ms passes; returns 1 if done. */
int ob_test_run_until(ob_loop_t *loop, int (*done)(void *arg), void *arg, int timeout_ms);
/* Run the loop for ms milliseconds, whatever happens. */
void ob_test_run_for(ob_loop_t *loop, int ms);
/* The names in dir ending with suffix (not hidden), sorted, malloc'd into
 * *out; returns how many (0 and *out NULL when none or no such dir). */
size_t ob_test_list_dir(const char *dir, const char *suffix, char ***out);
void ob_test_free_list(char **v, size_t n);
/* A TCP port on 127.0.0.1 free a moment ago (bound, read, closed). */
int ob_test_free_port(void);

/* ---- HTTP ---- */

#include "ob_http.h"

/* One HTTP exchange's outcome, filled by ob_test_http_reply. */
typedef struct ob_test_http_s {
    int done;
    ob_err_t err;
    char errmsg[256]; /* why, when err is not OB_OK */
    long status;
    char *body; /* malloc'd, NUL-terminated ("" when none); free() it */
    size_t body_len;
    char content_type[128];
} ob_test_http_t;
void ob_test_http_reply(ob_http_resp_t *resp, void *arg); /* arg: ob_test_http_t */
int ob_test_http_done(void *arg);                         /* arg: ob_test_http_t */
/* Send method url (body: NULL for none) with http and run the loop until the
 * answer (the test fails if none comes within timeout_ms); res receives it. */
void ob_test_http(ob_loop_t *loop, ob_http_t *http, const char *method, const char *url,
                  const char *body, int timeout_ms, ob_test_http_t *res);
/* The same for a request of any kind (headers, deadlines). */
void ob_test_http_send(ob_loop_t *loop, ob_http_t *http, const ob_http_req_t *req, int timeout_ms,
                       ob_test_http_t *res);

/* ---- stage hand-offs ---- */

#include <jansson.h>

#include "ob_msg.h"

/* Zero m, then give it the request parsed from request_json (the test fails
 * if it does not parse), the stage it is at and, for a new account, the
 * results the stages before that one hand on (the bucket's; from iam on the
 * report's too). */
void ob_test_handoff_init(ob_stage_msg_t *m, const char *request_json, ob_stage_t stage);
/* The iam stage's result in m: the Billing Engine role's stack
 * (billing-engine-access) with this id, role and ExternalId. */
void ob_test_handoff_stack(ob_stage_msg_t *m, const char *stack_id, const char *role_arn,
                           const char *external_id);
/* Record one attempt at stage s by `worker` in m's trace, started and
 * finished at these times (NULL: now). */
void ob_test_handoff_trace(ob_stage_msg_t *m, ob_stage_t s, const char *worker,
                           const char *started_at, const char *finished_at);
/* m as JSON, as the codec writes it (malloc'd; the test fails if it cannot
 * be written); clears m. */
char *ob_test_handoff_json(ob_stage_msg_t *m);
/* Parse a hand-off a worker produced (as a collector keeps it) into m (the
 * test fails, naming `who`, if it is not one); ob_stage_msg_clear(m) after. */
void ob_test_handoff_parse(const json_t *msg, ob_stage_msg_t *m, const char *who);

/* ---- the Billing Engine's side ---- */

#define OB_TEST_SIGNATURE_LEN 80
/* The X-Onboard-Signature a Billing Engine expects of a POST, computed as
 * the receiver does: "v1=" and the hex HMAC-SHA256, keyed with secret, of
 * ts "." body. */
void ob_test_billing_signature(const char *secret, const char *ts, const void *body, size_t len,
                               char out[OB_TEST_SIGNATURE_LEN]);

/* ---- the simulator in process, and the project's AWS client for it ---- */

#include "ob_aws.h"
#include "ob_credsrc.h"

struct sim_s;
struct sim_opts_s;

/* What the simulator's unit tests drive it with; all of it the fixture's. */
typedef struct ob_test_simfx_s {
    ob_loop_t *loop;
    struct sim_s *sim;
    ob_http_t *http;
    ob_aws_t *aws;        /* AWS_ENDPOINT_URL: the simulator; AWS_REGION: region */
    ob_credsrc_t *mgmt;   /* the management account's static keys */
    ob_credsrc_t *member; /* member_role assumed with mgmt (NULL when none was asked) */
    char endpoint[64];    /* http://127.0.0.1:PORT */
    const char *region;   /* borrowed */
} ob_test_simfx_t;

/* Start a simulator with these options on f->loop (made first when NULL) and
 * a client for it (one attempt per call; ho: the HTTP client's options, NULL
 * for the defaults); with member_role, f->member assumes it (session "test",
 * STS in us-east-1). The test fails if any of it cannot start. */
void ob_test_simfx_start(ob_test_simfx_t *f, const struct sim_opts_s *so, const char *region,
                         const ob_http_opts_t *ho, const char *member_role);
/* Free the client and the simulator, and the loop unless keep_loop. */
void ob_test_simfx_stop(ob_test_simfx_t *f, int keep_loop);
/* A cmocka teardown for a fixture calloc'd into *state: stopped and freed. */
int ob_test_simfx_teardown(void **state);
/* An unsigned admin call (/_sim/...): its JSON reply (new), which must come
 * with want_status and Content-Type application/json (else the test fails). */
json_t *ob_test_simfx_admin(ob_test_simfx_t *f, const char *method, const char *path,
                            const char *body, long want_status);

/* One AWS call's answer, as the simulator's tests look at it. */
typedef struct ob_test_got_s {
    int done;
    ob_err_t err;
    long status;
    char code[128];     /* the AWS error code ("" when none) */
    char message[1024]; /* the AWS error message, or why the call failed */
    char *body;         /* the reply body (malloc'd; "" when none) */
    json_t *json;       /* the body parsed, when it is JSON (NULL otherwise) */
    ob_hdrs_t headers;  /* the reply's headers */
} ob_test_got_t;

/* Send req through f's client (target t may be NULL); *g is cleared first.
 * The test fails when it cannot be sent. f's loop is the caller's to run
 * until g->done (ob_test_got_done). */
void ob_test_aws_send(ob_test_simfx_t *f, ob_aws_req_t *req, const ob_aws_target_t *t,
                      ob_test_got_t *g);
/* ob_test_aws_send, then run f's loop until the answer (at most timeout_ms). */
void ob_test_aws_call(ob_test_simfx_t *f, ob_aws_req_t *req, const ob_aws_target_t *t,
                      ob_test_got_t *g, int timeout_ms);
int ob_test_got_done(void *got);
/* Run f's loop until every one of the n calls in g is answered (the test
 * fails after timeout_ms): calls sent together with ob_test_aws_send. */
void ob_test_got_wait_all(ob_test_simfx_t *f, ob_test_got_t *g, int n, int timeout_ms);
/* What *g holds, freed; *g zeroed. */
void ob_test_got_free(ob_test_got_t *g);

/* ---- worker integration tests ---- */

/* The value of `name` in a {name, value} table ending with {NULL, NULL}, or NULL:
 * the fake environments the worker tests hand to the runtime. */
const char *ob_test_kv_lookup(const char *kv[][2], const char *name);
/* librdkafka settings every worker test uses against the real broker
 * (fast metadata refresh, short sessions, frequent commits). */
void ob_test_kafka_defaults(ob_cfg_kv_t *kv, const char *brokers);
/* Member account i of the simulator's organization (200000000000 + i). */
void ob_test_member_account(int i, char out[16]);
/* The environment a worker needs to talk to the simulator at sim_url as the
 * fleet's management identity (AWS_ENDPOINT_URL, the keys, us-east-1, no
 * config files, no IMDS); NULL for any other name. */
const char *ob_test_sim_env(const char *name, const char *sim_url);
/* Forget what earlier tests recorded for the simulator's member accounts
 * first..last (their states in the Redis at 127.0.0.1:port): a test that
 * starts a new simulator starts from accounts that were never onboarded. */
void ob_test_forget_members(int redis_port, int first, int last);
/* A Cost and Usage Report the account already has in the simulator (what
 * mode existing needs): `name` delivering to `bucket` in `region`. */
struct sim_s;
void ob_test_seed_report(struct sim_s *sim, const char *account, const char *name,
                         const char *bucket, const char *region);
/* The simulator's k-th (1-based) ACTIVE member: every 50th member is
 * SUSPENDED, and the intake refuses those. */
int ob_test_active_member(int k);
/* 1 when the ob_worker_t has nothing in flight (its state writes are done). */
int ob_test_worker_idle(void *worker);

/* ---- Redis ---- */

#include "ob_redis.h"

/* One command's outcome, filled by ob_test_redis_reply. */
typedef struct ob_test_call_s {
    int done;
    ob_err_t err;
    int type;
    long long integer;
    char str[256];
} ob_test_call_t;
void ob_test_redis_reply(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg);
int ob_test_call_done(void *arg);       /* arg: ob_test_call_t */
int ob_test_redis_connected(void *arg); /* arg: ob_redis_t */
/* Send a command with up to two string arguments and wait for its outcome. */
void ob_test_redis_cmd(ob_loop_t *loop, ob_redis_t *r, ob_test_call_t *c, const char *fmt,
                       const char *a, const char *b);
#endif
