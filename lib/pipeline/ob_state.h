/*
 * ob_state: the one owner of the Redis key layout and of the account record.
 *
 * Every key of an account is in the hash slot of "{ACCOUNT}" (Redis Cluster
 * keeps them together, so the lock's scripts may touch them all):
 *   ob:{ACCOUNT}:lock     the per-account lock (ob_lock): the holder's token, with a TTL
 *   ob:{ACCOUNT}:fence    the last fence handed out (a number that never goes back)
 *   ob:{ACCOUNT}:state    the account's record: a hash of the fields below
 *   ob:{ACCOUNT}:replays  the dead letters onboardctl replay already sent (a set)
 *   ob:{ACCOUNT}:history  what happened to the account, newest first (a list of
 *                         JSON entries, ob_state_history_entry; the last
 *                         OB_STATE_HISTORY_KEPT), written with the record
 *
 * The onboard-lifecycle process's keys share the hash tag {lifecycle}:
 *   ob:{lifecycle}:lock, ob:{lifecycle}:fence
 *                         its lease: an ob_lock taken under the name
 *                         "lifecycle" (OB_LIFECYCLE_LEASE), so that one replica
 *                         works at a time
 *   ob:{lifecycle}:watcher  the accounts the watcher enqueued: a hash, account
 *                         -> "sending MS" (before the request is produced) or
 *                         "sent MS" (the broker has it); MS epoch milliseconds
 *   ob:{lifecycle}:verify   the verifications it sent: account -> "MS VERIFY_ID
 *                         REQUEST_ID" (when, which, and the record's
 *                         request_id then; "-": none)
 *
 * The record's fields, by who writes them:
 *
 *  every stage (ob_worker), of the request at hand:
 *   stage, status          where the account is and how it stands there
 *                          (OB_ST_STATUS_*)
 *   stage_attempts         attempts of that stage for this request
 *   request_id, intake     the request (its id; where it entered the fleet,
 *                          OB_MSG_HDR_INTAKE), desired (its desired state)
 *   input                  TOPIC:PARTITION:OFFSET of the message being worked on
 *   started_at, updated_at, next_attempt_at   times (RFC 3339)
 *   error_class, error_code, error_message    why it failed (or "" on success)
 *   progress               what a stage recorded of its work in progress, for
 *                          the next holder of the request (ob_stage_ops_t.resume)
 *   outcome                "unchanged" at intake when nothing is to be done
 *                          (outcome_reason: why, for an offboarding with
 *                          nothing to remove); "connected" / "disconnected"
 *                          when the connect stage announced it
 *   fence                  the fence of the last write (ob_lock: older holders'
 *                          writes are refused)
 *
 *  onboardctl replay:
 *   status "replayed", replay_of   the dead letter it sent back (its dlq_id)
 *
 *  the stages, of what they made (the stage's own state pairs):
 *   bucket                 the CUR bucket (bucket stage)
 *   report, report_outcome, report_changes, retired_reports   (cur stage)
 *   stack_id, stack_status (iam stage)
 *
 *  the account's own fields, kept when a newer request replaces the record
 *  (OB_STATE_ACCOUNT_FIELDS):
 *   connected_request, connected_desired, connected_at, idempotency_key,
 *                          the connection in place and its event's key
 *                          (emptied by an offboarding, but connected_desired:
 *                          the offboarding's, so that another is unchanged)
 *   connected_spec         the connection's request, normalized (JSON): what
 *                          verification compares the account with
 *   disconnected_at, disconnect_key   the last offboarding and its event's key
 *
 *  the verify stage (a side stage: never the request's fields above):
 *   verify_at, verify_error, verify_request, drift_status, drift_kinds,
 *   drift_detail, drift_key, repair_request
 *   role_arn               the Billing Engine role
 *   buckets, old_buckets, reports, stacks   what the fleet made in the account
 *   superseded             requests a newer one replaced
 *
 * Threading: constants and pure functions only.
 */
#ifndef OB_STATE_H
#define OB_STATE_H

#include <stddef.h>

/* Room for any key of an account (an account id is at most 128 characters). */
#define OB_STATE_KEY_LEN 160

/* The pattern of every record's key (SCAN ... MATCH). */
#define OB_STATE_KEY_PATTERN "ob:{*}:state"

/* The keys of an account into out (OB_STATE_KEY_LEN). */
void ob_state_key(const char *account, char *out, size_t outsz);
void ob_state_lock_key(const char *account, char *out, size_t outsz);
void ob_state_fence_key(const char *account, char *out, size_t outsz);
void ob_state_replays_key(const char *account, char *out, size_t outsz);
void ob_state_history_key(const char *account, char *out, size_t outsz);

/* The onboard-lifecycle process's lease name and ledgers (see above). */
#define OB_LIFECYCLE_LEASE   "lifecycle"
#define OB_WATCH_LEDGER_KEY  "ob:{lifecycle}:watcher"
#define OB_VERIFY_LEDGER_KEY "ob:{lifecycle}:verify"

/* Entries of an account's history kept. */
#define OB_STATE_HISTORY_KEPT 100
/* The events of the history. */
#define OB_HIST_REQUESTED    "requested"    /* a request became the account's current one */
#define OB_HIST_UNCHANGED    "unchanged"    /* a request with nothing to do (detail: why) */
#define OB_HIST_FAILED       "failed"       /* dead-lettered (stage, detail: code: reason) */
#define OB_HIST_CONNECTED    "connected"    /* the connected event went out (key) */
#define OB_HIST_REPAIRED     "repaired"     /* a repair ended connected (key, detail: kinds) */
#define OB_HIST_DISCONNECTED "disconnected" /* the disconnected event went out (key) */
#define OB_HIST_DRIFT        "drift"        /* verification found drift (detail: kinds) */
#define OB_HIST_VERIFIED     "verified"     /* verification found none */
#define OB_HIST_REPLAYED     "replayed"     /* onboardctl replay sent a dead letter back */
/* One history entry as compact JSON (malloc'd; NULL: out of memory):
 * {"at", "event", and those of request_id, stage, key, detail that are not
 * NULL or ""}; at NULL: now. */
char *ob_state_history_entry(const char *at, const char *event, const char *request_id,
                             const char *stage, const char *key, const char *detail);
/* The account of a record's key into out; 0, or -1 when key is not one. */
int ob_state_account_of(const char *key, char *out, size_t outsz);

/* The fields (see above). */
#define OB_ST_STAGE             "stage"
#define OB_ST_STATUS            "status"
#define OB_ST_STAGE_ATTEMPTS    "stage_attempts"
#define OB_ST_REQUEST_ID        "request_id"
#define OB_ST_INTAKE            "intake"
#define OB_ST_DESIRED           "desired"
#define OB_ST_INPUT             "input"
#define OB_ST_STARTED_AT        "started_at"
#define OB_ST_UPDATED_AT        "updated_at"
#define OB_ST_NEXT_ATTEMPT_AT   "next_attempt_at"
#define OB_ST_ERROR_CLASS       "error_class"
#define OB_ST_ERROR_CODE        "error_code"
#define OB_ST_ERROR_MESSAGE     "error_message"
#define OB_ST_PROGRESS          "progress"
#define OB_ST_OUTCOME           "outcome"
#define OB_ST_FENCE             "fence"
#define OB_ST_REPLAY_OF         "replay_of"
#define OB_ST_BUCKET            "bucket"
#define OB_ST_REPORT            "report"
#define OB_ST_REPORT_OUTCOME    "report_outcome"
#define OB_ST_REPORT_CHANGES    "report_changes"
#define OB_ST_RETIRED_REPORTS   "retired_reports"
#define OB_ST_STACK_ID          "stack_id"
#define OB_ST_STACK_STATUS      "stack_status"
#define OB_ST_CONNECTED_REQUEST "connected_request"
#define OB_ST_CONNECTED_DESIRED "connected_desired"
#define OB_ST_CONNECTED_AT      "connected_at"
#define OB_ST_IDEMPOTENCY_KEY   "idempotency_key"
#define OB_ST_ROLE_ARN          "role_arn"
#define OB_ST_BUCKETS           "buckets"
#define OB_ST_OLD_BUCKETS       "old_buckets"
#define OB_ST_REPORTS           "reports"
#define OB_ST_STACKS            "stacks"
#define OB_ST_SUPERSEDED        "superseded"
#define OB_ST_OUTCOME_REASON    "outcome_reason"
#define OB_ST_DISCONNECTED_AT   "disconnected_at"
#define OB_ST_DISCONNECT_KEY    "disconnect_key"
#define OB_ST_CONNECTED_SPEC    "connected_spec"
/* The verify stage's (a side stage: "verify_at", "verify_error" besides). */
#define OB_ST_DRIFT_STATUS   "drift_status" /* in_sync | drifted */
#define OB_ST_DRIFT_KINDS    "drift_kinds"  /* what drifted, comma-separated */
#define OB_ST_DRIFT_DETAIL   "drift_detail" /* what differs, for people */
#define OB_ST_DRIFT_KEY      "drift_key"    /* the drift event's key */
#define OB_ST_VERIFY_REQUEST "verify_request"
#define OB_ST_REPAIR_REQUEST "repair_request" /* the repair sent with it ("" none) */

/* Values of status. */
#define OB_ST_STATUS_RUNNING      "running"
#define OB_ST_STATUS_WAITING      "waiting" /* for a stage retry (next_attempt_at) */
#define OB_ST_STATUS_DONE         "done"
#define OB_ST_STATUS_FAILED       "failed"
#define OB_ST_STATUS_CONNECTED    "connected"
#define OB_ST_STATUS_REPLAYED     "replayed"     /* onboardctl replay sent the dead letter back */
#define OB_ST_STATUS_DISCONNECTED "disconnected" /* offboarded: the connect stage announced it */
/* Values of outcome. */
#define OB_ST_OUTCOME_UNCHANGED    "unchanged"
#define OB_ST_OUTCOME_CONNECTED    "connected"
#define OB_ST_OUTCOME_DISCONNECTED "disconnected"

/* The account's own fields (NULL-terminated): what replacing the record for
 * a newer request keeps. */
extern const char *const OB_STATE_ACCOUNT_FIELDS[];

#endif
