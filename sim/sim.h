/*
 * awssim: the project's local AWS endpoint (S3, CUR, CloudFormation, STS,
 * Organizations) on one port, for the quickstart, the end-to-end tests, the
 * failure tests and the benchmarks. Real AWS clients (awscli, boto3) must work
 * against it unchanged, so it speaks the real wire protocols, verifies SigV4,
 * and words its errors as AWS does.
 *
 * Structure: sim_core.c owns the server, identity (access keys -> account and
 * principal), request dispatch, fault injection, latency, statistics and the
 * admin API. Each service is a module (sim_s3.c, sim_cur.c, sim_cfn.c,
 * sim_sts.c, sim_org.c) with two functions: identify() names the operation and
 * reads its parameters; handle() does it and fills the reply. Handlers are
 * synchronous and pure with respect to I/O: they read and change the state
 * and write the reply; the core decides when the reply is sent (latency) or
 * whether a fault replaces it. Work that takes time (a stack being created,
 * a drift detection, an account being created) is driven by loop timers the
 * module arms itself. sim_drift.c is no service: it makes drift (POST
 * /_sim/drift, handing the S3 and CUR kinds to those modules) and finds it
 * for CloudFormation's drift detection. sim_quota.c is no service either: it
 * keeps AWS's request quotas (token buckets) that the core checks each call
 * against before the module sees it.
 *
 * The state is one jansson document, so that dumping it (admin API),
 * persisting it (state file) and restoring it are one call each. Layout:
 *
 *   "org":      {"Id": "o-...", "Arn": ..., "MasterAccountId": "111111111111",
 *                "RootId": "r-sim0"}
 *   "accounts": {"<12 digits>": {"Id","Arn","Email","Name","State",
 *                                "JoinedMethod","JoinedTimestamp" (epoch s),
 *                                "ParentId" (the root or an OU)}}
 *   "ous":      {"ou-sim0-<8>": {"Id","Arn","Name","ParentId"}}
 *   "create_account_requests": {"car-<32 hex>": {"Id","AccountName","Email",
 *                 "RoleName","State","RequestedMs","Seq","DueMs", and once done
 *                 "CompletedMs","AccountId" or "FailureReason"}} (sim_org.c)
 *   "keys":     {"<AccessKeyId>": {"secret", "token" (string or null),
 *                 "account", "arn" (principal ARN), "role_arn" (assumed roles
 *                 only, else null), "expires_ms" (0: never)}}
 *   "roles":    {"<account>/<RoleName>": {"RoleName","RoleId","Arn","Path",
 *                 "AssumeRolePolicyDocument": <object>, "Policies": {name: <object>},
 *                 "ManagedPolicyArns": [..], "StackId" (or null), "CreateDate" (epoch s)}}
 *   "buckets":  {"<name>": {"owner","region","created" (epoch s),
 *                 "policy" (string, absent when none), "public_access_block" {...},
 *                 "encryption" {...}, "ownership" (string)}}
 *   "reports":  {"<account>": {"<ReportName>": <ReportDefinition object>}}
 *   "stacks":   {"<StackId>": {...}}, "stack_names": {account: {region: {name: StackId}}},
 *   "stack_tokens": {account: {region: {ClientRequestToken: call}}},
 *   "stack_faults": {account: {region: {StackName: epoch ms}}}, the stack names the
 *                   rollback fault has failed (each fails once),
 *   "stack_drift_detections": {"<uuid>": {...}} (all owned by sim_cfn.c)
 *   "counts":   {"<service>.<Op>": n, ...} and "counts_by_account": {acct: {op: n}}
 *
 * Threading: everything runs on the loop thread.
 */
#ifndef OB_SIM_H
#define OB_SIM_H

#include <jansson.h>
#include <stdint.h>

#include "ob_awsproto.h"
#include "ob_awssvc.h"
#include "ob_buf.h"
#include "ob_err.h"
#include "ob_httpd.h"
#include "ob_loop.h"

typedef struct sim_s sim_t;
typedef struct sim_call_s sim_call_t;

/* One request being served. */
struct sim_call_s {
    sim_t *sim;
    const ob_httpd_req_t *http;
    ob_aws_svc_t svc;
    char region[64];      /* from the credential scope (or the endpoint for unsigned STS) */
    char op[64];          /* set by identify(): "CreateBucket", "AssumeRole", ... */
    char account[13];     /* caller's account ("" when unsigned) */
    char caller_arn[256]; /* caller's principal ARN */
    json_t *caller_key;   /* the caller's "keys" entry (borrowed), NULL when unsigned */
    char request_id[40];
    /* Parameters, filled by identify():
     *   Query services: the decoded form fields {"Action": "...", "RoleArn": ...};
     *   JSON 1.1 services: the parsed request body;
     *   S3: {"bucket": "...", "key": "..." or absent, "subresource": "policy"|...,
     *        plus every query parameter}. */
    json_t *params;
    /* The reply. */
    int status;
    ob_hdrs_t headers;
    ob_buf_t body;
    int replied;
};

typedef struct sim_service_s {
    ob_aws_svc_t svc;
    /* Name the operation (c->op) and parse parameters (c->params). On a
     * malformed request, reply with the error (sim_error) and return non-OK. */
    ob_err_t (*identify)(sim_call_t *c);
    /* Perform c->op; reply with sim_reply_* or sim_error. */
    void (*handle)(sim_call_t *c);
    /* Called once at start-up and after an admin reset (may be NULL). */
    void (*init)(sim_t *sim);
    /* Release module resources (timers) at shutdown or reset (may be NULL). */
    void (*fini)(sim_t *sim);
} sim_service_t;

extern const sim_service_t sim_s3_service;
extern const sim_service_t sim_cur_service;
extern const sim_service_t sim_cfn_service;
extern const sim_service_t sim_sts_service;
extern const sim_service_t sim_org_service;

/* ---- lifecycle ---- */
typedef struct sim_opts_s {
    const char *bind_addr;      /* default 127.0.0.1 */
    int port;                   /* 0: a free port */
    const char *seed_file;      /* JSON seed (accounts, keys, roles, buckets), or NULL */
    int org_accounts;           /* member accounts to create, each with
                                 * OrganizationAccountAccessRole trusting the management account */
    const char *profile;        /* latency profile: "instant" (default), "aws-typical" or
                                 * "aws-quotas" (aws-typical with the "aws" quota table) */
    double scale;               /* latency scale factor (0: 1.0) */
    const char *state_file;     /* persist state here (load at start if present), or NULL */
    const char *const *latency; /* NULL-terminated "api=spec" overrides (see sim_core.c) */
    const char *const *faults;  /* NULL-terminated "api=spec" fault rules */
    const char *quotas;         /* quota table: "aws" or "none" (NULL: the profile's) */
    const char *const *quota;   /* NULL-terminated "api=RATE[/BURST]" quota rules, applied
                                 * after the table */
    unsigned random_seed;       /* 0: from the clock */
} sim_opts_t;

/* Default identity of the management account (AWS's documentation example key). */
#define SIM_MGMT_ACCOUNT "111111111111"
#define SIM_MGMT_AKID    "AKIAIOSFODNN7EXAMPLE"
#define SIM_MGMT_SECRET  "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
/* The organization's root; OU ids are "ou-sim0-" and 8 more characters. */
#define SIM_ROOT_ID "r-sim0"
/* Member account i (1-based) of --org-accounts: 200000000000 + i. */
#define SIM_MEMBER_BASE 200000000000ULL

sim_t *sim_new(ob_loop_t *loop, const sim_opts_t *opts, char *errstr, size_t errstr_size);
int sim_port(const sim_t *sim);
void sim_free(sim_t *sim);

/* ---- state ---- */
json_t *sim_state(sim_t *sim);                     /* the whole document (borrowed) */
json_t *sim_section(sim_t *sim, const char *name); /* state[name], created as {} if absent */
ob_loop_t *sim_loop(sim_t *sim);
/* The organization's management account id. */
const char *sim_management_account(sim_t *sim);
/* Mark the state changed (persisted soon when a state file is configured). */
void sim_touch(sim_t *sim);

/* ---- identities ---- */
/* Issue temporary credentials for an assumed role (STS). Returns the new key
 * entry (borrowed) with "AccessKeyId" etc. filled in *out_* fields. */
json_t *sim_issue_session(sim_t *sim, const char *account, const char *role_arn,
                          const char *session_name, int duration_s, const char **akid,
                          const char **secret, const char **token, int64_t *expires_ms);
/* The organization's root ("r-sim0"). */
const char *sim_root_id(sim_t *sim);
/* Add (or replace) an account of the organization, as --org-accounts, the
 * seed, CreateAccount and POST /_sim/accounts make one: joined is "CREATED"
 * or "INVITED", parent_id NULL for the root. Returns the entry (borrowed). */
json_t *sim_put_account(sim_t *sim, const char *id, const char *name, const char *email,
                        const char *state, const char *joined, const char *parent_id);
/* The role Organizations makes in an account it creates: `name` at path /,
 * which the management account (arn:aws:iam::MGMT:root) may assume. */
json_t *sim_put_org_role(sim_t *sim, const char *account, const char *name);
/* Create (or replace) a role. trust is stolen. Returns the role entry. */
json_t *sim_put_role(sim_t *sim, const char *account, const char *name, const char *path,
                     json_t *trust, const char *stack_id);
json_t *sim_get_role(sim_t *sim, const char *account, const char *name);
void sim_delete_role(sim_t *sim, const char *account, const char *name);
/* "arn:aws:iam::123456789012:role/path/Name" -> account and name; 0 on success. */
int sim_parse_role_arn(const char *arn, char account[13], char *name, size_t name_size);

/* ---- latency ---- */
/* Milliseconds configured for a named delay ("cloudformation.stack_create",
 * "s3.CreateBucket"...), already scaled and drawn (random ranges). */
uint64_t sim_latency_ms(sim_t *sim, const char *name);

/* ---- faults ---- */
/* Whether a `rollback` fault rule for exactly `name` (only
 * "cloudformation.stack_create" takes one) fires now: consumes one of its
 * count or draws against its rate, and counts in faults_injected. 0 when no
 * such rule fires. */
int sim_rollback_fault(sim_t *sim, const char *name);

/* ---- quotas (sim_quota.c) ---- */
/* The request quotas: rules ("SERVICE.Operation" or "SERVICE.*", a rate per
 * second and a burst), each a token bucket per scope (caller account and
 * Region for STS, target account and Region for CloudFormation, target
 * account for S3, CUR and Organizations). Owned by the core. */
typedef struct sim_quotas_s sim_quotas_t;
sim_quotas_t *sim_quotas_new(void);
void sim_quotas_free(sim_quotas_t *q);
/* Replace every rule with a table: "aws" (the documented quotas, and the
 * simulator's choices where AWS documents none) or "none". */
ob_err_t sim_quotas_preset(sim_quotas_t *q, const char *name, char *errstr, size_t errstr_size);
/* Set or override one rule; spec is "RATE" or "RATE/BURST" (burst default:
 * the rate). Every bucket starts full again after a rule changes. */
ob_err_t sim_quotas_set(sim_quotas_t *q, const char *api, const char *spec, char *errstr,
                        size_t errstr_size);
/* Whether sim_quotas_set would take (api, spec); changes nothing. */
ob_err_t sim_quotas_check(const char *api, const char *spec, char *errstr, size_t errstr_size);
/* Take a token for one call of api ("sts.AssumeRole") by account (the
 * caller's; "" for an unsigned call, never limited) signed for region, at
 * now_ms (monotonic): 1 when the call may go on, 0 when it is throttled
 * (counted per API). */
int sim_quotas_admit(sim_quotas_t *q, const char *api, const char *account, const char *region,
                     uint64_t now_ms);
/* {"API": {"rate": R, "burst": B, "scope": "caller-region"|"account-region"|"account"}} (new). */
json_t *sim_quotas_rules_json(const sim_quotas_t *q);
/* {"API": throttled calls} (borrowed), their total, and the live buckets. */
json_t *sim_quotas_throttled(const sim_quotas_t *q);
uint64_t sim_quotas_throttled_total(const sim_quotas_t *q);
size_t sim_quotas_buckets(const sim_quotas_t *q);
/* Every bucket full again, the throttle counts zero (the rules stay). */
void sim_quotas_reset(sim_quotas_t *q);

/* ---- the modules' parts of the seed and the admin API ---- */
/* Check the "ous" of a seed document and the accounts' "ParentId" (against
 * the seed's own OUs and the state's); what names the document in messages. */
ob_err_t sim_org_seed_check(sim_t *sim, json_t *seed, const char *what, char *errstr,
                            size_t errstr_size);
/* Add or replace the seed's OUs (checked first). */
void sim_org_seed_apply(sim_t *sim, json_t *seed);
/* Admin calls a module serves: body is the request's JSON object
 * (borrowed); the HTTP status is returned and *out (new) is the answer, or
 * {"error": why}. POST /_sim/accounts, POST /_sim/ous (sim_org.c) and POST
 * /_sim/drift (sim_drift.c, which hands the S3 and CUR kinds on). */
int sim_org_admin_account(sim_t *sim, json_t *body, json_t **out);
int sim_org_admin_ou(sim_t *sim, json_t *body, json_t **out);
int sim_admin_drift(sim_t *sim, json_t *body, json_t **out);
int sim_s3_drift(sim_t *sim, const char *account, const char *kind, json_t *body, json_t **out);
int sim_cur_drift(sim_t *sim, const char *account, const char *kind, json_t *body, json_t **out);
/* {"error": printf(fmt, ...)} (new), for those answers. */
json_t *sim_admin_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- drift (sim_drift.c) ---- */
/* What CloudFormation's drift detection finds for one resource of a stack
 * of account now: entry is the stack's resource (Type, PhysicalResourceId,
 * Properties as the template set them), resources all of the stack's (an
 * AWS::IAM::Policy of the stack is not drift of the role it names). A new
 * {"LogicalResourceId", "PhysicalResourceId", "ResourceType",
 * "StackResourceDriftStatus", "ExpectedProperties", "ActualProperties" (JSON
 * text), "PropertyDifferences": [...]}, or NULL for a type the simulator
 * does not check (AWS leaves those out of the results too). */
json_t *sim_drift_check(sim_t *sim, const char *account, json_t *entry, json_t *resources);

/* ---- replies ---- */
void sim_reply(sim_call_t *c, int status, const char *content_type, const char *body, size_t len);
/* Query protocol success: <OpResponse xmlns=ns><OpResult>inner</OpResult>
 * <ResponseMetadata><RequestId/></ResponseMetadata></OpResponse>; inner may be "". */
void sim_reply_query(sim_call_t *c, const char *inner_xml);
/* JSON 1.1 success (body stolen; NULL means {}). */
void sim_reply_json(sim_call_t *c, json_t *body);
/* S3 success: status with an XML body (may be NULL for an empty body). */
void sim_reply_s3(sim_call_t *c, int status, const char *xml);
/* An error in the service's protocol: Query <ErrorResponse>, JSON
 * {"__type":..,"message":..}, S3 <Error> (no body for HEAD). type is
 * "Sender" or "Receiver" for Query (NULL: Sender). */
void sim_error(sim_call_t *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- small helpers ---- */
/* XML-escaped append (ob_xml_escape) that ignores allocation failure checks. */
void sim_xml_text(ob_buf_t *b, const char *s);
/* ISO 8601 UTC "2026-11-26T05:50:06.000Z" of epoch ms. */
void sim_iso8601(int64_t ms, char out[32]);
int64_t sim_now_ms(void);
/* n random bytes (OpenSSL's generator, drawn a block at a time). */
void sim_random_bytes(void *out, size_t n);
/* Random identifiers: `prefix` + n chars from [A-Z0-9]. */
void sim_random_id(const char *prefix, int n, char *out, size_t out_size);

#endif
