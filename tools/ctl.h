/*
 * ctl: what onboardctl's commands share (the tool's context, reading a
 * topic whole, reaching Redis). Loop thread only, like the tool.
 */
#ifndef OB_CTL_H
#define OB_CTL_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>

#include "ob_config.h"
#include "ob_loop.h"
#include "ob_redis.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2
#define EXIT_INVALID 3
#define EXIT_LAGGING 4
#define EXIT_DIFFERS 5 /* check: the records and the topics disagree */
#define EXIT_DRIFTED 6 /* verify: an account is not as the fleet made it */
#define EXIT_MISSING 7 /* lag: a topic or consumer group named does not exist */

typedef struct ctl_s {
    ob_config_t cfg;
    ob_loop_t *loop;
    int json; /* --output json (or --json): one JSON document on stdout */
    int dry_run;
    int scan_progress; /* ctl_topic_scan draws a progress line */
    size_t json_rows;  /* rows written by ctl_json_row since ctl_json_begin */
} ctl_t;

/* ---- the command line: ctl_cli.c ---- */

/* What main learns from the options every command takes (kcat's and the
 * Kafka scripts' spelling): -b/--bootstrap-server, -X key=value, --config
 * FILE, -o/--output table|json (--json), --version. They may come before or
 * after the command. */
typedef struct ctl_cli_s {
    const char *config_file; /* --config: instead of OB_CONFIG_FILE */
    char **sets;             /* "key=value" of -X; -b as "bootstrap.servers=..." */
    const char **flags;      /* the flag each came from: "-X", "-b" */
    size_t nsets;
    int json, version;
    int argc; /* the command and its own arguments, globals taken out */
    char **argv;
} ctl_cli_t;

/* Take the global options out of argv (argv[0] excluded): 0, or EXIT_USAGE
 * said on stderr. The arrays are the caller's to release (ctl_cli_free). */
int ctl_cli_parse(int argc, char **argv, ctl_cli_t *cli);
void ctl_cli_free(ctl_cli_t *cli);
/* The settings, lowest precedence first: the defaults, the file (--config,
 * else OB_CONFIG_FILE), the OB_* environment, then -b and -X in the order
 * given. -X takes a setting of the fleet (redis.port, topic.prefix, ...), a
 * kafka.* one, or any librdkafka property; one that librdkafka does not know
 * or whose value it refuses is said here, naming it. 0, or EXIT_USAGE said
 * on stderr. */
int ctl_config_load(ctl_t *c, const ctl_cli_t *cli);
/* onboardctl --version / version. */
int ctl_version(ctl_t *c, int argc, char **argv);

/* ---- help: ctl_help.c ---- */

/* Whether a is -h or --help. */
int ctl_is_help(const char *a);
/* The usage of one command (NULL: the whole tool) on f. */
void ctl_usage(FILE *f, const char *cmd);
/* `onboardctl CMD --help`: the command's usage on stdout; 0. */
int ctl_help(const char *cmd);

/* ---- output: ctl_out.c ---- */

/* A JSON document of rows, written as they come on one line of stdout:
 * {"<rows_key>":[row,...],<the summary's members>}. The summary's members
 * follow the rows, so that the document's last line (its only one) still
 * reads as the summary did when --json printed a line per row. */
void ctl_json_begin(ctl_t *c, const char *rows_key);
void ctl_json_row(ctl_t *c, json_t *row);     /* takes row */
void ctl_json_end(ctl_t *c, json_t *summary); /* takes summary (may be NULL) */
/* A whole document on one line of stdout (takes doc). */
void ctl_json_print(json_t *doc);

/* A progress line on stderr, updated in place, while a long operation runs
 * ("enqueued 12,000 of 50,000 (2,400/s)"), only when stderr is a terminal:
 * in a pipe nothing is written. One at a time. total 0: unknown. */
void ctl_progress_start(const char *label, size_t total);
/* At most ten redraws a second, whatever the calls. */
void ctl_progress(size_t done);
/* Erase the line before printing something else on the terminal; the next
 * ctl_progress draws it again. */
void ctl_progress_clear(void);
/* The final count drawn and the line ended, left on the screen. */
void ctl_progress_end(size_t done);
/* The line erased, and no progress any more. */
void ctl_progress_stop(void);

/* Each message of the topic <prefix><suffix>, every partition from its start
 * to its end now, as a read_committed reader sees it, without joining a
 * consumer group (nothing is committed). 0, or EXIT_RUNTIME; a topic that
 * does not exist is empty when missing_ok, else an error. With
 * c->scan_progress, a progress line while it reads. */
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

/* onboardctl lag: ctl_lag.c. */
int ctl_lag(ctl_t *c, int argc, char **argv);

#endif
