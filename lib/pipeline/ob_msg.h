/*
 * ob_msg: the messages on the pipeline's topics, and the single source of
 * validation truth for the workers.
 *
 * The messages, each a JSON object versioned by its "schema" member and
 * described by a JSON Schema in proto/ (the codec enforces every rule of the
 * schema, plus the cross-member rules a schema cannot express):
 *   onboard.request/1, /2   intake: what an outside producer asks for (/2 adds
 *                           mode offboard and repair)
 *   onboard.stage/1, /2     the hand-off between stages (topics cur, iam,
 *                           connect); a hand-off has its request's version
 *   onboard.connected/1     the event for the Billing Engine
 *   onboard.disconnected/1  the event for the Billing Engine once an account
 *                           is offboarded (on the same topic)
 *   onboard.dlq/1           a dead letter: the original message and the reason
 *   onboard.verify/1        a request to verify a connected account (topic verify)
 *   onboard.drift/1         what verification found (topic drift)
 * The builders write a request's version: a producer writing /1 gets /1
 * hand-offs, readable by workers that predate /2.
 * Every message is keyed by the account id (a DLQ record whose account is not
 * known keeps the original key).
 *
 * Parsing is strict: at most OB_MSG_MAX_BYTES (64 KiB; OB_DLQ_MAX_BYTES for
 * dead letters), valid UTF-8, one JSON object, no duplicate member names, no
 * unknown members, every type, pattern, range and combination checked. The
 * first problem found is reported in an ob_msg_error_t: a JSON pointer to the
 * offending member ("" for the whole message), a stable short code, and a
 * sentence for people that starts with the pointer, e.g.
 *   field "/report/compression", code "combination",
 *   "/report/compression: Parquet format requires Parquet compression, got GZIP"
 * Codes: not_json, not_object, missing, unknown_field, type, pattern (also a
 * date-time that does not exist), range (lengths, counts, numbers), enum
 * (also a wrong "schema" and a repeated array item), combination, too_large,
 * unsupported_cloud, mismatch (two members that must agree do not).
 * Messages never contain secrets: ExternalIds are never echoed.
 *
 * Builders (*_to_json) validate what they produce with the same rules, so a
 * worker can never emit a message its peers would refuse.
 *
 * Ownership: structs are caller-owned values whose strings live in an arena
 * (ob_arena.h) they own, sized to their content: ob_request_t (and the
 * hand-off that embeds it) and ob_connected_t keep it in `mem`, and must be
 * released with their *_clear() function; a struct assignment moves that
 * ownership (clear only one of the two), ob_request_copy() duplicates it.
 * Strings are never NULL once parsed or initialised (*_init): "" is absent.
 * Text returned through `char **out` is malloc'd: free() it. ob_dlq_t owns
 * its parsed document.
 *
 * Thread safety: all functions are reentrant; values belong to one thread.
 */
#ifndef OB_MSG_H
#define OB_MSG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ob_arena.h"
#include "ob_err.h"
#include "ob_proto_limits.h"
#include "ob_zip.h"

#define OB_MSG_MAX_BYTES (64u * 1024u)  /* request, stage and connected messages */
#define OB_DLQ_MAX_BYTES (512u * 1024u) /* dead-letter records */
#define OB_DLQ_MAX_RAW   (256u * 1024u) /* raw bytes of an original kept in payload_base64 */
_Static_assert((OB_DLQ_MAX_RAW + 2) / 3 * 4 <= OB_PROTO_DLQ_PAYLOAD_B64_MAX,
               "the raw bytes kept fit the schema's payload_base64");
/* What a dead letter keeps of the original, from the schema (longer: cut or
 * dropped, as ob_dlq_build says). */
#define OB_DLQ_MAX_KEY   ((unsigned)OB_PROTO_DLQ_KEY_MAX)          /* bytes of the key */
#define OB_DLQ_MAX_HDRS  ((unsigned)OB_PROTO_DLQ_HEADERS_MAX)      /* headers */
#define OB_DLQ_MAX_HNAME ((unsigned)OB_PROTO_DLQ_HEADER_NAME_MAX)  /* bytes of a header name */
#define OB_DLQ_MAX_HVAL  ((unsigned)OB_PROTO_DLQ_HEADER_VALUE_MAX) /* bytes of a header value */

#define OB_SCHEMA_REQUEST      "onboard.request/1"
#define OB_SCHEMA_REQUEST_2    "onboard.request/2"
#define OB_SCHEMA_STAGE        "onboard.stage/1"
#define OB_SCHEMA_STAGE_2      "onboard.stage/2"
#define OB_SCHEMA_CONNECTED    "onboard.connected/1"
#define OB_SCHEMA_DISCONNECTED "onboard.disconnected/1"
#define OB_SCHEMA_DLQ          "onboard.dlq/1"
#define OB_SCHEMA_VERIFY       "onboard.verify/1"
#define OB_SCHEMA_DRIFT        "onboard.drift/1"

/* Kafka header names the workers set on every message they produce. */
#define OB_MSG_HDR_SCHEMA    "ob-schema"    /* the message's "schema" value */
#define OB_MSG_HDR_REPLAY_OF "ob-replay-of" /* the dlq_id a replayed message comes from */
/* Where the request a message belongs to entered the fleet, for telling a
 * newer request of an account from an older one: "TS:TOPIC:PARTITION:OFFSET"
 * (TS the request message's Kafka timestamp in ms). Set by the intake stage,
 * carried on by every later stage's hand-off, event and dead letter. */
#define OB_MSG_HDR_INTAKE "ob-intake"
#define OB_INTAKE_LEN     320
/* An operator's control message on a stage's input topic, keyed by the
 * account (so it reaches the replica that owns the account's partition).
 * Value "retry-now": start the account's waiting stage retry at once. The
 * payload is {"schema":"onboard.control/1","action":"retry-now",
 * "account_id":...,"request_id":...}; workers act on the header alone and
 * never dead-letter a control message. */
#define OB_MSG_HDR_CONTROL   "ob-control"
#define OB_CONTROL_RETRY_NOW "retry-now"
#define OB_SCHEMA_CONTROL    "onboard.control/1"

/* The reason given for Azure and Google Cloud requests (from the manual procedure). */
#define OB_MSG_UNSUPPORTED_CLOUD_REASON                                                            \
    "Azure and Google Cloud accounts are connected through a support ticket"

/* Field sizes, including the terminating NUL: the schemas' limits
 * (ob_proto_limits.h, generated from proto/). The fields they size are
 * ASCII by their patterns, so a character is a byte. */
#define OB_ACCOUNT_ID_LEN  (OB_PROTO_ACCOUNT_ID_MAX + 1)
#define OB_REQUEST_ID_LEN  (OB_PROTO_REQUEST_ID_MAX + 1)
#define OB_REGION_LEN      (OB_PROTO_REGION_MAX + 1)
#define OB_ROLE_ARN_LEN    (OB_PROTO_ROLE_ARN_MAX + 1)
#define OB_EXTERNAL_ID_LEN (OB_PROTO_EXTERNAL_ID_MAX + 1)     /* the request's ExternalId */
#define OB_BE_EXT_ID_LEN   (OB_PROTO_EXTERNAL_ID_HEX_MAX + 1) /* the Billing Engine's */
#define OB_BUCKET_LEN      (OB_PROTO_BUCKET_NAME_MAX + 1)
#define OB_REPORT_NAME_LEN (OB_PROTO_REPORT_NAME_MAX + 1)
#define OB_STACK_NAME_LEN  (OB_PROTO_STACK_NAME_MAX + 1)
#define OB_STACK_ID_LEN    (OB_PROTO_STACK_ID_MAX + 1)
#define OB_DLQ_ID_LEN      (OB_PROTO_DLQ_ID_MAX + 1)
#define OB_TIME_LEN        40 /* what the fleet writes (RFC 3339, ob_time) */
#define OB_IDEMPOTENCY_LEN 65 /* a SHA-256 in hex */
#define OB_MAX_TAGS        OB_PROTO_TAGS_MAX

typedef struct ob_msg_error_s {
    char field[256];   /* JSON pointer of the offending member; "" = the whole message */
    char code[24];     /* stable short code (see above) */
    char message[512]; /* "<field>: <what is wrong>", for people */
} ob_msg_error_t;

typedef enum ob_msg_kind_e {
    OB_MSG_REQUEST = 0,
    OB_MSG_STAGE,
    OB_MSG_CONNECTED,
    OB_MSG_DLQ,
    OB_MSG_DISCONNECTED,
    OB_MSG_VERIFY,
    OB_MSG_DRIFT,
    OB_MSG__KIND_COUNT
} ob_msg_kind_t;

typedef enum ob_cloud_e { OB_CLOUD_AWS = 0, OB_CLOUD_AZURE, OB_CLOUD_GCP } ob_cloud_t;
typedef enum ob_mode_e { OB_MODE_NEW = 0, OB_MODE_EXISTING, OB_MODE_OFFBOARD } ob_mode_t;

/* Pipeline stages. INTAKE is where a request is refused before any work. */
typedef enum ob_stage_e {
    OB_STAGE_INTAKE = 0,
    OB_STAGE_BUCKET,
    OB_STAGE_CUR,
    OB_STAGE_IAM,
    OB_STAGE_CONNECT,
    OB_STAGE__COUNT
} ob_stage_t;

typedef enum ob_time_unit_e {
    OB_TIME_UNIT_HOURLY = 0,
    OB_TIME_UNIT_DAILY,
    OB_TIME_UNIT_MONTHLY
} ob_time_unit_t;
typedef enum ob_format_e { OB_FORMAT_TEXT_OR_CSV = 0, OB_FORMAT_PARQUET } ob_format_t;
typedef enum ob_compression_e {
    OB_COMPRESSION_ZIP = 0,
    OB_COMPRESSION_GZIP,
    OB_COMPRESSION_PARQUET
} ob_compression_t;
typedef enum ob_versioning_e {
    OB_VERSIONING_CREATE_NEW_REPORT = 0,
    OB_VERSIONING_OVERWRITE_REPORT
} ob_versioning_t;

/* Bit sets of AdditionalSchemaElements and AdditionalArtifacts. */
#define OB_SCHEMA_ELEM_RESOURCES                     0x1u
#define OB_SCHEMA_ELEM_SPLIT_COST_ALLOCATION_DATA    0x2u
#define OB_SCHEMA_ELEM_MANUAL_DISCOUNT_COMPATIBILITY 0x4u
#define OB_ARTIFACT_REDSHIFT                         0x1u
#define OB_ARTIFACT_QUICKSIGHT                       0x2u
#define OB_ARTIFACT_ATHENA                           0x4u
/* Bit set of drift kinds (proto/onboard.defs.v1.json $defs/drift_kind, in
 * its order): what verification finds and a repair request names. */
#define OB_DRIFT_BUCKET_MISSING       0x001u
#define OB_DRIFT_BUCKET_POLICY        0x002u
#define OB_DRIFT_BUCKET_PUBLIC_ACCESS 0x004u
#define OB_DRIFT_BUCKET_ENCRYPTION    0x008u
#define OB_DRIFT_BUCKET_OWNERSHIP     0x010u
#define OB_DRIFT_REPORT_MISSING       0x020u
#define OB_DRIFT_REPORT_CHANGED       0x040u
#define OB_DRIFT_STACK_MISSING        0x080u
#define OB_DRIFT_STACK_FAILED         0x100u
#define OB_DRIFT_STACK_DRIFTED        0x200u
#define OB_DRIFT_ROLE_UNASSUMABLE     0x400u
#define OB_DRIFT__ALL                 0x7ffu
/* The kinds each stage repairs. */
#define OB_DRIFT_BUCKET_KINDS 0x01fu
#define OB_DRIFT_REPORT_KINDS 0x060u
#define OB_DRIFT_STACK_KINDS  0x780u

/* Wire names of the enums above ("HOURLY", "textORcsv", "ATHENA", "iam"...). */
const char *ob_cloud_name(ob_cloud_t c);
const char *ob_mode_name(ob_mode_t m);
const char *ob_stage_name(ob_stage_t s);
const char *ob_time_unit_name(ob_time_unit_t t);
const char *ob_format_name(ob_format_t f);
const char *ob_compression_name(ob_compression_t c);
const char *ob_versioning_name(ob_versioning_t v);
/* Name of one bit of a set (NULL for an unknown bit). */
const char *ob_schema_elem_name(unsigned bit);
const char *ob_artifact_name(unsigned bit);
const char *ob_drift_name(unsigned bit);
/* The bit of a drift kind's name (0: unknown). */
unsigned ob_drift_bit(const char *name);

/* The CUR report definition of a request (all members set after parsing). */
typedef struct ob_report_settings_s {
    const char *name;             /* default "billing-engine-cur" */
    const char *prefix;           /* default "CUR" */
    ob_time_unit_t time_unit;     /* default HOURLY */
    ob_format_t format;           /* default textORcsv */
    ob_compression_t compression; /* default GZIP */
    unsigned schema_elements;     /* OB_SCHEMA_ELEM_*; default RESOURCES */
    unsigned artifacts;           /* OB_ARTIFACT_*; default REDSHIFT */
    int refresh_closed_reports;   /* default 1 */
    ob_versioning_t versioning;   /* default OVERWRITE_REPORT */
} ob_report_settings_t;

typedef struct ob_tag_s {
    const char *key;
    const char *value;
} ob_tag_t;

/*
 * A normalized onboarding request. After a successful parse of an AWS
 * request every default is filled: for mode new has_bucket and has_report are
 * 1 (bucket defaults to billing-cur-<account_id>-<region>); for mode existing
 * has_report is 0 and has_bucket says whether the producer named the
 * account's current CUR bucket; mode offboard (version 2) has neither. Empty strings mean "absent"
 * for the optional external_id, requester and requested_at.
 */
typedef struct ob_request_s {
    /* Owns every string below, and those of the value that embeds the
     * request (a hand-off's results and trace): NULL until one is set. */
    ob_arena_t *mem;
    int version; /* 1 or 2: the schema's (onboard.request/N); 0 is taken as 1 */
    const char *request_id;
    const char *account_id;
    ob_cloud_t cloud; /* always OB_CLOUD_AWS after a successful parse */
    ob_mode_t mode;
    const char *region;
    const char *role_arn;
    const char *external_id; /* for assuming role_arn; never log it */
    int has_bucket;
    const char *bucket;
    int has_report;
    ob_report_settings_t report;
    const char *requester;
    const char *requested_at;
    ob_tag_t *tags; /* in mem; ntags entries in the producer's order */
    size_t ntags;
    unsigned repair; /* OB_DRIFT_* (version 2): the drift this request repairs */
} ob_request_t;

/* Every string "" and nothing owned: a request to fill by hand. */
void ob_request_init(ob_request_t *r);
/* A copy of s (NULL: "") owned by the request, for setting its fields (and
 * those of the value that embeds it). */
const char *ob_request_str(ob_request_t *r, const char *s);
const char *ob_request_printf(ob_request_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Release what r owns and zero it. NULL is a no-op. */
void ob_request_clear(ob_request_t *r);
/* Deep copy (dst is overwritten, not cleared first). OB_ERR_NOMEM. */
ob_err_t ob_request_copy(ob_request_t *dst, const ob_request_t *src);
/* Append a tag (no validation here; *_to_json validates). OB_ERR_NOMEM, OB_ERR_INVALID_ARG
 * when a string does not fit. */
ob_err_t ob_request_add_tag(ob_request_t *r, const char *key, const char *value);

/*
 * Parse and validate an intake request: len bytes of json (need not be
 * NUL-terminated). On success *out holds the normalized request (defaults
 * filled) and must be released with ob_request_clear(). Errors (*out zeroed,
 * err filled): OB_ERR_PARSE (any rule; err->code says which, including
 * "unsupported_cloud" for azure and gcp), OB_ERR_TOO_LARGE (code too_large),
 * OB_ERR_NOMEM, OB_ERR_INVALID_ARG (NULL arguments).
 */
ob_err_t ob_request_parse(const char *json, size_t len, ob_request_t *out, ob_msg_error_t *err);
/* The same for a JSON object built in memory (e.g. from a CSV row by onboardctl). */
ob_err_t ob_request_parse_json(const json_t *obj, ob_request_t *out, ob_msg_error_t *err);
/*
 * The normalized request as compact JSON (members in schema order, defaults
 * written out), validated before it is returned. *out is malloc'd, *out_len
 * (if not NULL) its length. Errors: OB_ERR_PARSE (the struct breaks a rule;
 * err says which, as if parsed), OB_ERR_NOMEM.
 */
ob_err_t ob_request_to_json(const ob_request_t *r, char **out, size_t *out_len,
                            ob_msg_error_t *err);
/* The same as a new jansson object (caller owns the reference), not validated. */
json_t *ob_request_to_object(const ob_request_t *r);
/* The partition whose roles serve a region: "aws-cn" for cn-*, "aws-us-gov"
 * for us-gov-*, "aws" otherwise (the request schema's rule). */
const char *ob_region_partition(const char *region);
/* The report name a request has by default (the schema's). */
const char *ob_request_default_report_name(void);
/* The default bucket name for an account and region into out (OB_BUCKET_LEN). */
void ob_request_default_bucket(const char *account_id, const char *region, char out[OB_BUCKET_LEN]);

/* What the bucket, cur and iam stages made. */
/* The results and traces below: strings owned by the value that holds them
 * (a hand-off's request's mem, a connected event's mem), "" when absent. */
typedef struct ob_bucket_result_s {
    const char *name;
    const char *region;
    const char *arn; /* arn:PARTITION:s3:::NAME */
} ob_bucket_result_t;

typedef struct ob_report_result_s {
    const char *name;
    const char *bucket;
    const char *prefix;
    const char *region;
} ob_report_result_t;

typedef struct ob_stack_result_s {
    const char *id; /* the stack's ARN */
    const char *name;
    const char *role_arn;    /* the Billing Engine role (stack output) */
    const char *external_id; /* the per-account ExternalId it trusts; never log it */
} ob_stack_result_t;

typedef struct ob_trace_s {
    int present;
    const char *started_at;
    const char *finished_at;
    int attempts;
    const char *worker;
} ob_trace_t;

/*
 * A stage hand-off. `stage` is the stage that consumes it (CUR, IAM or
 * CONNECT). Results present are exactly those of the stages already done:
 * new accounts: cur has bucket; iam has bucket+report; connect has all three.
 * Existing accounts: iam has the report the intake found in the account (its
 * current CUR, report only); connect has it and the stack. trace is indexed by
 * ob_stage_t (the INTAKE slot is never used).
 */
typedef struct ob_stage_msg_s {
    ob_request_t request;
    ob_stage_t stage;
    int has_bucket;
    ob_bucket_result_t bucket;
    int has_report;
    ob_report_result_t report;
    int has_stack;
    ob_stack_result_t stack;
    ob_trace_t trace[OB_STAGE__COUNT];
    char replay_of[OB_DLQ_ID_LEN]; /* "" when not a replay */
    /* Offboarding (mode offboard): what the cur stage (reports) and the iam
     * stage (stacks) removed, as comma-separated lists ("" : none). */
    int has_removed; /* results.removed (reports) is present */
    const char *removed_reports;
    int has_removed_stacks; /* results.removed.stacks is present */
    const char *removed_stacks;
} ob_stage_msg_t;

/* Every string "" and nothing owned: a hand-off to fill by hand (its
 * strings owned by m->request, see ob_request_str). */
void ob_stage_msg_init(ob_stage_msg_t *m);
/* Release what m owns and zero it. NULL is a no-op. */
void ob_stage_msg_clear(ob_stage_msg_t *m);
/* Parse and validate a hand-off (see ob_request_parse for the errors). */
ob_err_t ob_stage_parse(const char *json, size_t len, ob_stage_msg_t *out, ob_msg_error_t *err);
/*
 * A parsed hand-off kept small while it waits (a stack being made, half a
 * minute): its struct and strings in one block, deflated, at about a third
 * of what the parsed form holds. ob_stage_msg_pack takes m's strings (m is
 * cleared); ob_stage_msg_unpack makes the same hand-off again in *out (its
 * own arena) and frees the pack. OB_ERR_PARSE: the pack does not inflate to
 * what it was (it never happens to one made here; out is left cleared).
 */
typedef struct ob_stage_packed_s ob_stage_packed_t;
ob_stage_packed_t *ob_stage_msg_pack(ob_zip_t *z, ob_stage_msg_t *m);
ob_err_t ob_stage_msg_unpack(ob_zip_t *z, ob_stage_packed_t *p, ob_stage_msg_t *out);
void ob_stage_packed_free(ob_stage_packed_t *p);
/* Bytes a pack holds (for the memory figures). */
size_t ob_stage_packed_size(const ob_stage_packed_t *p);
/* The "schema" of a hand-off of request r: its version's (onboard.stage/N). */
const char *ob_stage_schema_of(const ob_request_t *r);
/* Compact JSON of a hand-off, validated first (OB_ERR_PARSE with err, OB_ERR_NOMEM). */
ob_err_t ob_stage_to_json(const ob_stage_msg_t *m, char **out, size_t *out_len,
                          ob_msg_error_t *err);
/*
 * The stage that runs after `done` for a mode: new: BUCKET->CUR->IAM->CONNECT,
 * existing: INTAKE->IAM->CONNECT, offboard: BUCKET (the intake)->CUR->IAM->CONNECT. OB_STAGE__COUNT
 * after CONNECT (what follows is the connected event) and for a stage the mode never runs.
 */
ob_stage_t ob_stage_next(ob_mode_t mode, ob_stage_t done);
/* Fill the bucket and report results from the request (what the bucket and
 * cur stages must have made), with the bucket ARN in the role's partition. */
void ob_stage_fill_bucket(ob_stage_msg_t *m);
void ob_stage_fill_report(ob_stage_msg_t *m);

/* The event for the Billing Engine. */
typedef struct ob_connected_s {
    ob_arena_t *mem; /* owns every string below (NULL until one is set) */
    char idempotency_key[OB_IDEMPOTENCY_LEN];
    const char *account_id;
    const char *request_id;
    ob_mode_t mode;
    const char *role_arn;    /* the Billing Engine role */
    const char *external_id; /* never log it */
    int has_report;          /* 1: mode new's report, or the CUR an existing account had */
    ob_report_result_t report;
    const char *stack_id;
    const char *connected_at;
    const char *requested_at; /* "" when the request had none */
    ob_trace_t trace[OB_STAGE__COUNT];
} ob_connected_t;

/* Every string "" and nothing owned; and releasing what c owns (zeroed
 * after; NULL is a no-op). ob_connected_parse and ob_connected_from_stage
 * fill a value to release so. */
void ob_connected_init(ob_connected_t *c);
void ob_connected_clear(ob_connected_t *c);
/* A copy of s (NULL: ""), or printf output, owned by c: for setting its fields. */
const char *ob_connected_str(ob_connected_t *c, const char *s);
const char *ob_connected_printf(ob_connected_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The idempotency key of a connection: lowercase hex SHA-256 of
 * "onboard.connected/1|" account "|" role_arn "|" external_id "|" and, when
 * the connection has a report, its name "|" bucket "|" prefix "|" region
 * (nothing otherwise). It names the connection, not the request that made it:
 * a request repeated under another request id gives the same key, and any
 * change the Billing Engine must learn of (another role, ExternalId or
 * report) gives a new one. report NULL: none. */
void ob_connected_key(const char *account_id, const char *role_arn, const char *external_id,
                      const ob_report_result_t *report, char out[OB_IDEMPOTENCY_LEN]);
/* The order of two intake positions (OB_MSG_HDR_INTAKE): of one partition,
 * by offset; of two (the topic's partitions changed), by timestamp. <0: a is
 * older, 0: the same request, >0: a is newer. Malformed positions compare
 * as 0 (nothing is decided on them). */
int ob_intake_cmp(const char *a, const char *b);
/* The desired state a request states for its account, as 32 hex digits: a
 * digest of its mode, region, role, bucket, report settings and tags (not its
 * request id, requester, time or the ExternalId it gives for the role). Two
 * requests with the same digest ask for the same account. */
#define OB_DESIRED_LEN 33
void ob_request_desired(const ob_request_t *r, char out[OB_DESIRED_LEN]);
/*
 * The event for a hand-off that the connect stage has verified: m->stage must
 * be CONNECT with its stack result; connected_at NULL means now. The key is
 * computed. Errors: OB_ERR_PARSE (m is not a valid connect-stage hand-off; err
 * says why), OB_ERR_INVALID_ARG (NULL arguments).
 */
ob_err_t ob_connected_from_stage(const ob_stage_msg_t *m, const char *connected_at,
                                 ob_connected_t *out, ob_msg_error_t *err);
ob_err_t ob_connected_to_json(const ob_connected_t *c, char **out, size_t *out_len,
                              ob_msg_error_t *err);
ob_err_t ob_connected_parse(const char *json, size_t len, ob_connected_t *out, ob_msg_error_t *err);

/* The event for the Billing Engine once an account is offboarded
 * (onboard.disconnected/1, on the connected topic). Lists are comma-separated
 * ("" : empty). */
typedef struct ob_disconnected_s {
    ob_arena_t *mem; /* owns every string below (NULL until one is set) */
    char idempotency_key[OB_IDEMPOTENCY_LEN];
    const char *account_id;
    const char *request_id;
    const char *connection_key; /* "" : the account was not connected */
    const char *role_arn;       /* "" : unknown */
    const char *removed_reports;
    const char *removed_stacks;
    const char *kept_buckets;
    const char *disconnected_at;
    const char *requested_at; /* "" : none */
    ob_trace_t trace[OB_STAGE__COUNT];
} ob_disconnected_t;
void ob_disconnected_init(ob_disconnected_t *d);
void ob_disconnected_clear(ob_disconnected_t *d);
const char *ob_disconnected_str(ob_disconnected_t *d, const char *s);
/* lowercase hex SHA-256 of "onboard.disconnected/1|" account "|" request_id. */
void ob_disconnected_key(const char *account_id, const char *request_id,
                         char out[OB_IDEMPOTENCY_LEN]);
/* The event for an offboarding hand-off at stage connect (its removed
 * lists); connection_key, role_arn and kept_buckets from the account's
 * record ("" / NULL: none); disconnected_at NULL: now. OB_ERR_PARSE (m is
 * not such a hand-off, err says why), OB_ERR_INVALID_ARG. */
ob_err_t ob_disconnected_from_stage(const ob_stage_msg_t *m, const char *connection_key,
                                    const char *role_arn, const char *kept_buckets,
                                    const char *disconnected_at, ob_disconnected_t *out,
                                    ob_msg_error_t *err);
ob_err_t ob_disconnected_to_json(const ob_disconnected_t *d, char **out, size_t *out_len,
                                 ob_msg_error_t *err);
ob_err_t ob_disconnected_parse(const char *json, size_t len, ob_disconnected_t *out,
                               ob_msg_error_t *err);

/* A request to verify one connected account (onboard.verify/1). */
typedef struct ob_verify_msg_s {
    ob_request_t request;   /* the connection's request; its arena owns every string */
    const char *request_id; /* the verification's */
    const char *account_id;
    const char *connection_key; /* the connection checked */
    const char *stack_id;       /* "" : not known */
    const char *role_arn;       /* the Billing Engine role */
    int repair;                 /* repair what is found at once */
    const char *requester;      /* "" : none */
    const char *requested_at;   /* "" : none */
} ob_verify_msg_t;
void ob_verify_init(ob_verify_msg_t *v);
void ob_verify_clear(ob_verify_msg_t *v);
ob_err_t ob_verify_parse(const char *json, size_t len, ob_verify_msg_t *out, ob_msg_error_t *err);
ob_err_t ob_verify_to_json(const ob_verify_msg_t *v, char **out, size_t *out_len,
                           ob_msg_error_t *err);

/* What verification found (onboard.drift/1). */
#define OB_DRIFT_FINDINGS_MAX 32
typedef struct ob_drift_finding_s {
    unsigned kind; /* one OB_DRIFT_* bit */
    const char *resource;
    const char *detail;
} ob_drift_finding_t;
typedef struct ob_drift_s {
    ob_arena_t *mem; /* owns every string below */
    char idempotency_key[OB_IDEMPOTENCY_LEN];
    const char *account_id;
    const char *request_id; /* the verification's */
    const char *connection_key;
    const char *checked_at;
    ob_drift_finding_t findings[OB_DRIFT_FINDINGS_MAX];
    size_t nfindings;              /* 0: in sync */
    const char *repair_request_id; /* "" : no repair sent */
} ob_drift_t;
void ob_drift_init(ob_drift_t *d);
void ob_drift_clear(ob_drift_t *d);
const char *ob_drift_str(ob_drift_t *d, const char *s);
/* lowercase hex SHA-256 of "onboard.drift/1|" account "|" request_id. */
void ob_drift_key(const char *account_id, const char *request_id, char out[OB_IDEMPOTENCY_LEN]);
/* The kinds of its findings (OB_DRIFT_*). */
unsigned ob_drift_kinds(const ob_drift_t *d);
ob_err_t ob_drift_parse(const char *json, size_t len, ob_drift_t *out, ob_msg_error_t *err);
/* The event as JSON, its key computed here. */
ob_err_t ob_drift_to_json(ob_drift_t *d, char **out, size_t *out_len, ob_msg_error_t *err);

typedef enum ob_dlq_class_e {
    OB_DLQ_INVALID_INPUT = 0,
    OB_DLQ_PERMANENT,
    OB_DLQ_RETRIES_EXHAUSTED,
    OB_DLQ_UNSUPPORTED_CLOUD,
    OB_DLQ_CLASS__COUNT
} ob_dlq_class_t;
const char *ob_dlq_class_name(ob_dlq_class_t c);
/* The class for a codec error: UNSUPPORTED_CLOUD or INVALID_INPUT. */
ob_dlq_class_t ob_dlq_class_for(const ob_msg_error_t *err);

/* A Kafka header as librdkafka gives it (value NULL for a null value). */
typedef struct ob_msg_header_s {
    const char *name;
    const void *value;
    size_t value_len;
} ob_msg_header_t;

/*
 * Everything a worker knows when it gives up on a message. Only stage, topic,
 * class and code are required; the rest have fallbacks: account_id and
 * request_id NULL are taken from the payload when it names valid ones
 * (request or hand-off), else the key when it is an account id; message NULL
 * is "(no message)"; field, aws_request_id NULL and http_status 0 are absent;
 * attempts < 1 is 1; times NULL are now; worker strings NULL are "unknown";
 * replayable -1 decides: a parsed payload and class permanent or
 * retries_exhausted. Free text is made valid UTF-8 and cut to the schema's
 * bounds; a code outside [A-Za-z0-9_.:-] has those characters replaced.
 */
typedef struct ob_dlq_input_s {
    ob_stage_t stage;
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *key; /* NULL: no key */
    size_t key_len;
    const void *payload; /* NULL: a null (tombstone) payload */
    size_t payload_len;
    /* Set when payload is not the bytes that arrived but the message encoded
     * again from its parsed form (the worker keeps no second copy): the size
     * and SHA-256 (32 bytes) of the bytes as they arrived, which the record
     * then gives. payload NULL with it set: the message could not be encoded
     * again; the record says its payload was cut. */
    const uint8_t *arrived_sha256;
    size_t arrived_len;
    const ob_msg_header_t *headers;
    size_t nheaders;
    const char *account_id;
    const char *request_id;
    ob_dlq_class_t cls;
    const char *code;
    const char *message;
    const char *field;
    const char *aws_request_id;
    int http_status;
    int attempts;
    const char *first_failure_at;
    const char *last_failure_at;
    const char *worker_name;
    const char *worker_version;
    const char *worker_host;
    int replayable; /* -1 decide, 0, 1 (1 without a parsed payload becomes 0) */
} ob_dlq_input_t;

/* The deterministic id of a dead letter: 32 hex of SHA-256("onboard.dlq/1|" topic "|" partition
 * "|" offset). */
void ob_dlq_id(const char *topic, int32_t partition, int64_t offset, char out[OB_DLQ_ID_LEN]);
/*
 * Build a dead-letter record (compact JSON, at most OB_DLQ_MAX_BYTES). The
 * original payload is kept as JSON when it is UTF-8, at most 64 KiB, and
 * parses (duplicate keys refused); otherwise as base64 of its first
 * OB_DLQ_MAX_RAW bytes. Never fails on content, only on OB_ERR_INVALID_ARG
 * (NULL in/out, a topic that is not a Kafka topic name, partition or offset
 * < 0, an unknown stage or class) and OB_ERR_NOMEM; errstr says why.
 */
ob_err_t ob_dlq_build(const ob_dlq_input_t *in, char **out, size_t *out_len, char *errstr,
                      size_t errstr_size);

/* A parsed dead-letter record. Strings point into doc and live as long as it. */
typedef struct ob_dlq_s {
    json_t *doc; /* owned */
    const char *dlq_id;
    ob_stage_t stage;
    const char *account_id; /* NULL when absent */
    const char *request_id; /* NULL when absent */
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *key;         /* NULL when absent or binary */
    const json_t *payload;   /* NULL when the original is in payload_base64 */
    const char *payload_b64; /* NULL when payload is set */
    int64_t payload_size;
    int truncated; /* 1 when any part of the original was cut */
    ob_dlq_class_t cls;
    const char *code;
    const char *message;
    const char *field;          /* NULL when absent */
    const char *aws_request_id; /* NULL when absent */
    int http_status;            /* 0 when absent */
    int attempts;
    const char *first_failure_at;
    const char *last_failure_at;
    const char *worker_name;
    const char *worker_version;
    const char *worker_host;
    int replayable;
} ob_dlq_t;

ob_err_t ob_dlq_parse(const char *json, size_t len, ob_dlq_t *out, ob_msg_error_t *err);
void ob_dlq_clear(ob_dlq_t *d);
/*
 * The original message bytes for a replay: the payload re-serialized as
 * compact JSON, or the decoded base64. malloc'd into *out (NUL-terminated),
 * length in *out_len. OB_ERR_STATE when the original was truncated,
 * OB_ERR_NOMEM.
 */
ob_err_t ob_dlq_original(const ob_dlq_t *d, char **out, size_t *out_len);

/* Validate any message of a kind (parse and discard). Same errors as the parsers. */
ob_err_t ob_msg_validate(ob_msg_kind_t kind, const char *json, size_t len, ob_msg_error_t *err);
/* The "schema" value of a kind, e.g. "onboard.request/1" (the first version). */
const char *ob_msg_schema(ob_msg_kind_t kind);

/* The current UTC time as 2025-01-31T12:00:00.000Z. */
void ob_msg_now(char out[OB_TIME_LEN]);
/* 1 if s is an RFC 3339 date-time of the form the schemas accept (a real date and time). */
int ob_msg_time_valid(const char *s);

/* Topics: <prefix><suffix>, the prefix defaulting to "onboard.". */
typedef enum ob_topic_e {
    OB_TOPIC_REQUESTS = 0, /* intake, from outside producers; consumed by the bucket worker */
    OB_TOPIC_CUR,
    OB_TOPIC_IAM,
    OB_TOPIC_CONNECT,
    OB_TOPIC_CONNECTED, /* the events for the Billing Engine */
    OB_TOPIC_DLQ,
    OB_TOPIC__COUNT
} ob_topic_t;
#define OB_TOPIC_PREFIX_DEFAULT "onboard."
/* "requests", "cur", ... */
const char *ob_topic_suffix(ob_topic_t t);
/* Prefix + suffix into out; the result must be a Kafka topic name (1-249 of
 * A-Z a-z 0-9 . _ -). prefix NULL means the default. OB_ERR_CONFIG (bad prefix,
 * errstr says why), OB_ERR_INVALID_ARG (unknown topic, out too small). */
ob_err_t ob_topic_name(const char *prefix, ob_topic_t t, char *out, size_t outsz, char *errstr,
                       size_t errstr_size);

#endif
