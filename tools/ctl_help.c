/*
 * ctl_help: onboardctl's usage, the whole tool's and each command's (see
 * ctl.h). What a command prints with -o json is said in its own text.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

typedef struct help_s {
    const char *cmd;
    const char *synopsis; /* after "onboardctl "; its next lines are indented under it */
    const char *summary;  /* a line of the tool's usage */
    const char *text;
} help_t;

static const help_t HELP[] = {
    {"enqueue",
     "enqueue [FILE|-] [--format csv|jsonl] [--dry-run]\n"
     "enqueue --from-organization --region R [--mode new|existing]\n"
     "  [--role-name NAME] [--dry-run]",
     "validate onboarding requests and publish them",
     "Validate onboarding requests (CSV with a header row, or JSON lines; - or no FILE:\n"
     "stdin) and publish one request per account to the intake topic. CSV columns:\n"
     "account_id, mode, region, role_arn, and optionally external_id, bucket,\n"
     "report_name, requester, request_id. Nothing is sent unless every row is valid\n"
     "(bad rows are named with their line numbers, exit code 3). --dry-run prints the\n"
     "normalized requests instead of sending them.\n"
     "--from-organization: one request per ACTIVE account of the AWS Organization\n"
     "(ListAccounts with the management account's credentials); other states are\n"
     "skipped with a reason. The role is arn:aws:iam::ACCOUNT:role/NAME (default\n"
     "OrganizationAccountAccessRole).\n"
     "On a terminal, a progress line on stderr while it reads and sends.\n"
     "-o json: {\"topic\", \"dry_run\", \"valid\", \"invalid\", \"enqueued\", \"failed\",\n"
     "\"errors\": [{\"line\", \"error\"}], \"requests\": [...] (the dry run's)}"},
    {"offboard",
     "offboard ACCOUNT... | --file F|- [--region R] [--role-name NAME]\n"
     "  [--requester WHO] [--dry-run]",
     "one offboarding request per account",
     "One offboarding request per account (onboard.request/2, mode offboard): the\n"
     "workers delete the fleet's report definitions and stack (and so the Billing\n"
     "Engine role), keep the bucket and the reports in it, and emit one account\n"
     "disconnected event. R (default AWS_REGION) is where the stack of the fleet's\n"
     "name is looked for (stacks the account's record lists are deleted wherever they\n"
     "are); the role assumed is arn:PARTITION:iam::ACCOUNT:role/NAME (default\n"
     "OrganizationAccountAccessRole). An account with nothing of the fleet's, or\n"
     "already offboarded, is a no-op with the reason in its record. --file: one\n"
     "account per line (# comments).\n"
     "-o json: as enqueue's."},
    {"verify", "verify ACCOUNT... | --all [--repair] [--timeout T] [--no-wait]",
     "check connected accounts against what the fleet made",
     "Check connected accounts against what the fleet made (the verify workers:\n"
     "bucket policy and settings, the report, the stack and CloudFormation's drift\n"
     "detection, the Billing Engine role with its ExternalId) and print each finding;\n"
     "--repair sends the account back through the stages that fix what drifted.\n"
     "T (default 5m) bounds the wait for the findings; --no-wait only sends. On a\n"
     "terminal, a progress line on stderr while it waits. Exit code 6 when one\n"
     "drifted, 1 when one could not be verified or the findings did not all come.\n"
     "-o json: {\"accounts\": [{\"account_id\", \"request_id\", \"status\", \"findings\":\n"
     "[{\"kind\", \"resource\", \"detail\"}], \"repair_request_id\", \"reason\"}], \"skipped\":\n"
     "[{\"account_id\", \"reason\"}], \"in_sync\", \"drifted\", \"failed\", \"unanswered\"}"},
    {"status", "status ACCOUNT", "an account's record and history",
     "The account's record in Redis and its history (requested, connected, failed,\n"
     "drift found, repaired, disconnected: times, requests, reasons; the last 100\n"
     "events).\n"
     "-o json: the record's fields, with \"account_id\", \"known\" and \"history\":\n"
     "[{\"at\", \"event\", \"request_id\", \"stage\", \"key\", \"detail\"}] (an account with\n"
     "no record: {\"account_id\", \"known\": false})"},
    {"summary", "summary", "accounts per stage and status",
     "How many accounts are at each stage and status (connected, disconnected,\n"
     "failed...), and what their last verification found (in sync, drifted).\n"
     "-o json: {\"accounts\", \"by_stage_status\": {\"STAGE/STATUS\": N},\n"
     "\"by_drift_status\": {\"in_sync\": N, \"drifted\": N}}"},
    {"dlq",
     "dlq list [--account A] [--stage S] [--code C] [--since T] [--until T]\n"
     "  [--id ID]",
     "the dead letters and their reasons",
     "The dead letters (oldest first) with their reasons, and counts per stage and\n"
     "error code, read from the dead-letter topic without joining a consumer group.\n"
     "T is an RFC 3339 time (compared with the last failure). Original payloads are\n"
     "not printed.\n"
     "-o json: {\"dead_letters\": [{\"dlq_id\", \"account_id\", \"request_id\", \"stage\",\n"
     "\"class\", \"code\", \"message\", \"attempts\", \"first_failure_at\",\n"
     "\"last_failure_at\", \"replayable\"}], \"records\", \"matching\", \"unreadable\",\n"
     "\"by_stage_code\": {\"STAGE/CODE\": N}}"},
    {"replay",
     "replay [--account A] [--stage S] [--code C] [--since T] [--until T]\n"
     "  [--id ID] [--limit N] [--dry-run] [--force]",
     "put dead letters back",
     "Put dead letters back: each chosen record's original goes to the topic of the\n"
     "stage where it failed, with header ob-replay-of and the stage's attempts reset.\n"
     "Only the newest record of an account is replayed; one already replayed, an\n"
     "account connected since or moved on to another request is skipped (--force\n"
     "replays those); invalid input and records whose original cannot be read are\n"
     "refused with the reason. Running it twice replays nothing twice. --dry-run\n"
     "shows what would be replayed. On a terminal, a progress line on stderr.\n"
     "-o json: {\"results\": [{\"dlq_id\", \"action\", \"account_id\", \"stage\", \"code\",\n"
     "\"reason\"}], \"records\", \"unreadable\", \"superseded\", \"replayed\",\n"
     "\"would_replay\", \"skipped\", \"refused\", \"failed\", \"dry_run\"}"},
    {"retry", "retry ACCOUNT [--no-wait]", "start an account's waiting stage retry now",
     "Start an account's waiting stage retry now: a control message to its stage's\n"
     "input topic, keyed by the account; then wait (15 s) for its state to show the\n"
     "new attempt, unless --no-wait.\n"
     "-o json: {\"account_id\", \"topic\", \"waited\", \"retrying\", \"status\", \"stage\",\n"
     "\"stage_attempts\"}"},
    {"lag", "lag [--stage S | --group G [--topic T]] [--threshold N]",
     "consumer lag per partition, with its owner",
     "For each worker group (or the consumer group G, on T or on every topic it has\n"
     "offsets or members for): each partition's committed offset, log end, lag, the\n"
     "age of the oldest unprocessed message and the member that owns it (consumer\n"
     "id, host, client id: \"-\" when none does), and totals per group. Read from the\n"
     "broker, so also with no worker running: a stage whose group no worker has\n"
     "joined yet counts its lag from the log's start. A topic that does not exist,\n"
     "or a group named with --group that does not, is an error (exit code 7).\n"
     "Exit code 4 when a group's total lag is over N messages.\n"
     "-o json: {\"partitions\": [{\"group\", \"topic\", \"partition\", \"committed\", \"end\",\n"
     "\"lag\", \"lag_seconds\", \"consumer_id\", \"host\", \"client_id\"}], \"groups\":\n"
     "{GROUP: {\"lag\", \"max_lag_seconds\", \"members\", \"state\"}}, \"over_threshold\"}"},
    {"check", "check [--account A]", "the records in Redis against the topics",
     "Each account's record in Redis against the topics (requests, hand-offs,\n"
     "connected events, dead letters): every disagreement named; exit code 5 when\n"
     "there is one.\n"
     "-o json: {\"accounts\": [{\"account_id\", \"action\", \"why\", \"record\"}],\n"
     "\"summary\": {\"messages\", \"unreadable\", \"agree\", \"differ\", \"written\", \"kept\"}}"},
    {"rebuild", "rebuild [--account A] [--force] [--dry-run]", "write the records the topics tell",
     "Write the record the topics tell for every account that has none (after Redis\n"
     "lost its data); --force also replaces records that disagree. Run it with the\n"
     "fleet stopped or idle.\n"
     "-o json: as check's"},
    {"version", "version", "the tool's version",
     "The tool's version (also --version).\n"
     "-o json: {\"version\", \"librdkafka\"}"},
};

#define NHELP (sizeof(HELP) / sizeof(HELP[0]))

static const char GLOBAL[] =
    "global options (before or after the command):\n"
    "  -b, --bootstrap-server HOST:PORT[,...]   the Kafka brokers\n"
    "  -X KEY=VALUE      a setting of the fleet (topic.prefix, redis.host, redis.port...),\n"
    "                    kafka.PROPERTY, or any librdkafka PROPERTY (security.protocol=ssl)\n"
    "  --config FILE     key = value lines, as the workers' file (instead of OB_CONFIG_FILE)\n"
    "  -o, --output table|json   what to print (--json: -o json)\n"
    "  -h, --help        this help (onboardctl COMMAND --help: the command's)\n"
    "  --version         the version\n"
    "Settings, highest precedence first: -b and -X, the OB_* environment (OB_ and the\n"
    "key in upper case, dots as underscores: OB_REDIS_PORT, OB_KAFKA_BOOTSTRAP_SERVERS),\n"
    "the file, the defaults.\n";

static const char EXITS[] =
    "Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration, 3 invalid rows,\n"
    "4 lag over the threshold, 5 records that disagree with the topics (check),\n"
    "6 accounts not as the fleet made them (verify), 7 no such topic or group (lag).\n";

int ctl_is_help(const char *a)
{
    return !strcmp(a, "-h") || !strcmp(a, "--help");
}

static const help_t *help_of(const char *cmd)
{
    for (size_t i = 0; cmd && i < NHELP; i++)
        if (!strcmp(HELP[i].cmd, cmd))
            return &HELP[i];
    return NULL;
}

/* The synopsis after `first`, its next lines after `indent`. */
static void synopsis(FILE *f, const char *first, const char *indent, const char *s)
{
    fputs(first, f);
    for (const char *nl; (nl = strchr(s, '\n')); s = nl + 1)
        fprintf(f, "%.*s\n%s", (int)(nl - s), s, indent);
    fprintf(f, "%s\n", s);
}

void ctl_usage(FILE *f, const char *cmd)
{
    const help_t *h = help_of(cmd);
    if (h) {
        synopsis(f, "usage: onboardctl ", "                  ", h->synopsis);
        fprintf(f, "\n%s\n\n%s%s", h->text, GLOBAL, EXITS);
        return;
    }
    fprintf(f, "usage: onboardctl [global options] COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < NHELP; i++) {
        synopsis(f, "  ", "  ", HELP[i].synopsis);
        fprintf(f, "      %s\n", HELP[i].summary);
    }
    fprintf(f, "\nonboardctl COMMAND --help (or onboardctl help COMMAND) tells more.\n\n%s%s",
            GLOBAL, EXITS);
}

int ctl_help(const char *cmd)
{
    ctl_usage(stdout, cmd);
    return 0;
}
