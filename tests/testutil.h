/*
 * testutil: helpers shared by the unit and integration tests.
 *
 * Include this instead of <cmocka.h> directly: it pulls in the headers cmocka
 * needs in the right order.
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
/* SIGKILL and reap. */
void ob_test_kill(pid_t pid);
/* Start `sh -c cmd` in the background; returns its pid. */
pid_t ob_test_sh_async(const char *cmd);
/* Non-blocking: 1 and the exit status in *status once pid has exited, else 0. */
int ob_test_exited(pid_t pid, int *status);

/* Run the loop until done(arg) is true or timeout_ms passes; returns 1 if done. */
int ob_test_run_until(ob_loop_t *loop, int (*done)(void *arg), void *arg, int timeout_ms);
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
