/*
 * ctl: what onboardctl's commands share (the tool's context, reading a
 * topic whole, reaching Redis). Loop thread only, like the tool.
 */
#ifndef OB_CTL_H
#define OB_CTL_H

#include <librdkafka/rdkafka.h>

#include "ob_config.h"
#include "ob_loop.h"
#include "ob_redis.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2
#define EXIT_INVALID 3
#define EXIT_LAGGING 4
#define EXIT_DIFFERS 5 /* check: the records and the topics disagree */
#define EXIT_DRIFTED 6 /* verify: an account is not as the fleet made it */

typedef struct ctl_s {
    ob_config_t cfg;
    ob_loop_t *loop;
    int json;
    int dry_run;
} ctl_t;

/* Each message of the topic <prefix><suffix>, every partition from its start
 * to its end now, as a read_committed reader sees it, without joining a
 * consumer group (nothing is committed). 0, or EXIT_RUNTIME; a topic that
 * does not exist is empty when missing_ok, else an error. */
typedef void(ctl_msg_fn)(ctl_t *c, const rd_kafka_message_t *m, void *arg);
int ctl_topic_scan(ctl_t *c, const char *suffix, ctl_msg_fn *each, void *arg, int missing_ok);

/* Following a topic from its ends now: what others produce after
 * ctl_follow_open, read as a read_committed reader, without a consumer
 * group. A topic that does not exist yet is followed from its start once it
 * does. */
typedef struct ctl_follow_s ctl_follow_t;
ctl_follow_t *ctl_follow_open(ctl_t *c, const char *suffix);
/* Give each message to `each` until *done or timeout_ms pass: 0, or
 * EXIT_RUNTIME on the timeout (the caller says so). */
int ctl_follow(ctl_follow_t *f, ctl_msg_fn *each, void *arg, const int *done, long timeout_ms);
void ctl_follow_close(ctl_follow_t *f);

/* onboardctl verify: ctl_verify.c. */
int ctl_verify(ctl_t *c, int argc, char **argv);

/* Redis as the workers reach it (redis.* settings); NULL (said on stderr)
 * when it cannot be reached in 5 s. */
ob_redis_t *ctl_redis_connect(ctl_t *c);

/* Run the loop until *done is set (a Redis reply, a delivery report, an AWS
 * answer), at most timeout_ms: each of those always comes within its own
 * deadline, but the tool never spins on one that does not. OB_OK, or
 * OB_ERR_TIMEOUT (said on stderr, naming what). */
ob_err_t ctl_wait(ctl_t *c, const int *done, long timeout_ms, const char *what);
/* A Redis command, and its reply awaited: the callback sets *done. OB_OK
 * once it ran; a command that cannot be queued or whose reply never comes is
 * an error said on stderr (the callback then never runs). */
ob_err_t ctl_redis(ctl_t *c, ob_redis_t *r, ob_redis_cb *cb, void *arg, const int *done,
                   const char *fmt, ...);

/* onboardctl check (rebuild 0) and rebuild (1): ctl_check.c. */
int ctl_check(ctl_t *c, int argc, char **argv, int rebuild);

#endif
