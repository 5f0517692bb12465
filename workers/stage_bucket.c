/*
 * The bucket stage, the first for new accounts (and the intake router).
 *
 * Input: onboard.request/1 or /2 from the intake topic, or an EventBridge
 * event about an account joining the organization, read as the request it
 * asks for (ob_lifecycle.h: anything else in such an envelope is a dead
 * letter naming the event). Invalid requests and other
 * clouds become dead letters with the codec's reason; existing accounts go
 * straight to the iam topic. First, unless intake.organization.check is off,
 * Organizations DescribeAccount (as the fleet, in the partition's
 * Organizations region) says whether the account is a member of the fleet's
 * organization: not ACTIVE (suspended, closing) is refused, and so is an
 * account outside the organization (AccountNotFoundException) unless
 * intake.allow.outside.accounts; a fleet that cannot see an organization
 * (AccessDenied, not in use) skips the check for ORG_BLIND_MS. An existing
 * account must already have a Cost and Usage Report: DescribeReportDefinitions
 * (in the account's identity, where the partition keeps CUR; GovCloud has
 * none, so nothing is checked there) pages until it finds the report on the
 * bucket the request names, or any report when it names none; none is a
 * permanent failure (no_cur_report), and the report found travels with the
 * hand-off into the connected event. Then for new accounts, in the account's
 * own identity:
 *   CreateBucket (LocationConstraint except in us-east-1; "already owned by
 *   you" is success, "already exists" is someone else's bucket: permanent)
 *   -> PutBucketPolicy (the CUR delivery policy) -> PutPublicAccessBlock
 *   -> PutBucketEncryption (SSE-S3) -> PutBucketOwnershipControls
 *   (BucketOwnerEnforced) -> hand-off to the cur topic.
 * Every call is a PUT of a fixed document, so re-running the stage is a no-op.
 *
 * A repair (onboard.request/2 with repair) runs the calls above only when a
 * bucket_* drift is named; otherwise it goes on at once, to the cur stage
 * (report_*) or straight to iam (the stack and the role).
 *
 * Offboarding (onboard.request/2, mode offboard) makes no call here: no
 * Organizations check (an account leaving the organization is what is most
 * often offboarded) and nothing of the bucket is touched (it stays, with the
 * reports delivered into it); -> hand-off to the cur topic. Whether there is
 * anything to remove is the worker's call at intake (the account's record).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ob_alloc.h"
#include "ob_awsproto.h"
#include "ob_lifecycle.h"
#include "ob_log.h"
#include "ob_state.h"
#include "stages.h"

typedef enum step_e {
    B_CREATE = 0,
    B_POLICY,
    B_PUBLIC_ACCESS,
    B_ENCRYPTION,
    B_OWNERSHIP,
    B_DONE
} bstep_t;

typedef struct bucket_st_s {
    ob_request_t req;
    bstep_t next;
    char started_at[OB_TIME_LEN];
    int calls;
    char progress[32];
    int org_check;        /* ask Organizations first (intake.organization.check) */
    int allow_outside;    /* intake.allow.outside.accounts */
    int org_asked;        /* DescribeAccount is in flight */
    int org_listing;      /* a ListAccounts page for the worker's snapshot is in flight */
    int org_counted;      /* counted among the checks of this second (org_recent) */
    uint64_t org_wait_ms; /* its last wait for a listing (they double up to a second) */
    int report_check;     /* existing: look for the account's CUR (intake.existing.report.check) */
    int cur_asked;        /* existing: DescribeReportDefinitions is in flight */
    int cur_pages;
    char *cur_token; /* its NextToken (malloc'd; NULL: the first page) */
    int has_found;   /* existing: the account's report */
    ob_report_result_t found;
    char seen[256];    /* names and buckets of the reports seen (for the reason) */
    char *buckets;     /* every bucket the fleet made in the account, this one last (malloc'd) */
    char *old_buckets; /* those but this one: kept, their data is the customer's (malloc'd) */
    struct bucket_ctx_s *ctx; /* the worker's (NULL: none, nothing is remembered) */
} bucket_st_t;

#define BUCKETS_KEPT 100 /* buckets the account's record lists */
/* How long a fleet that cannot see an organization skips the check. */
#define ORG_BLIND_MS (10LL * 60 * 1000)

/* The Organizations check in bulk. DescribeAccount costs one call per
 * account against the fleet's own Organizations quota, the lowest AWS puts
 * on a batch (the benchmark's quota run: 10 accounts a second); ListAccounts
 * answers for 20 accounts a call. When more than ORG_BULK_MIN accounts reach
 * the check within a second, one of them (the lister) lists the whole
 * organization, a page a step, into the worker's snapshot while the others
 * wait; then each is checked against the snapshot, without a call, for
 * ORG_SNAPSHOT_MS. An account the snapshot does not hold (it joined since,
 * or is outside) is asked about with DescribeAccount, as is every account
 * when few arrive at a time. Waiters ask for themselves when the listing
 * makes no progress for ORG_STALL_MS (throttled, failing); a failed listing
 * is not tried again for ORG_RETRY_MS. */
#define ORG_BULK_MIN    20
#define ORG_SNAPSHOT_MS (5LL * 60 * 1000)
/* The standing snapshot (intake.organization.standing): the worker's chore
 * lists the organization once the worker starts (again every ORG_RETRY_MS
 * until a listing completes), then again from ORG_REFRESH_MS after a
 * listing began (sooner when listing takes long: by one and a half times
 * the last listing's time, and 15 s, before the snapshot expires), into a
 * fresh set while the one it replaces serves, so checks never find none;
 * but only while the snapshot answers as many checks as its listing made
 * calls (a fleet checking an account now and then asks about each
 * instead). */
#define ORG_REFRESH_MS    (ORG_SNAPSHOT_MS * 3 / 4)
#define ORG_CHORE_TICK_MS 1000
#define ORG_STALL_MS      (30LL * 1000)
#define ORG_RETRY_MS      (60LL * 1000)
#define ORG_WAIT_STEP_MS  100
#define ORG_MEMBERS_MAX   1000000 /* AWS's limit is far below: a bound on memory */

typedef struct org_member_s {
    char id[13];
    char state[19]; /* ACTIVE, SUSPENDED, PENDING_CLOSURE, CLOSED ("": none given) */
} org_member_t;

typedef struct org_set_s {
    org_member_t *m; /* sorted by id */
    size_t n, cap;
} org_set_t;

enum { ORG_NONE, ORG_LISTING, ORG_READY };

/* What the stage remembers across one worker's messages. */
typedef struct bucket_ctx_s {
    uint64_t org_blind_until; /* monotonic ms: no Organizations check before */
    uint64_t (*now)(void);    /* the clock (mono_ms; tests set their own) */
    /* The snapshot (above): its state, the job listing it (or the chore),
     * the listing's next page, the Region it is of, the members (the pages
     * listed so far while LISTING), when its listing began, when a listing
     * may be tried again, when the last page came, and the checks started
     * this second. */
    int org_state;
    struct bucket_st_s *org_lister;
    int org_chore;  /* the chore lists: into members (LISTING) or fresh */
    int org_paging; /* the chore's page is in flight */
    int org_refreshing;
    char *org_token;
    char org_region[32];
    org_set_t members, fresh; /* fresh: the refresh's pages */
    uint64_t org_listed_at, org_retry_at, org_progress_at, org_list_began;
    uint64_t org_took; /* how long the last complete listing took */
    uint64_t org_second;
    int org_recent, org_prev; /* checks started this second, and in the one before */
    /* The snapshot's worth: checks it answered and calls its listing made;
     * and for /metrics, listings and pages. */
    uint64_t org_hits, org_pages_made, org_last_pages;
    uint64_t org_listings_ok, org_listings_failed, org_pages_total, org_hits_total;
    /* The lifecycle rules, for AWS's events about accounts joining: read
     * from the settings at the first event (rules_state 1: loaded, -1: the
     * settings are wrong, rules_error says why). */
    int rules_state;
    ob_lifecycle_rules_t rules;
    char rules_error[256];
} bucket_ctx_t;

static uint64_t mono_ms(void);

static void *bucket_ctx_new(void)
{
    bucket_ctx_t *c = ob_calloc(1, sizeof(bucket_ctx_t));
    c->now = mono_ms;
    return c;
}

static void org_set_clear(org_set_t *s)
{
    free(s->m);
    memset(s, 0, sizeof(*s));
}

/* The snapshot is gone (stale, its listing failed or was given up), and
 * any listing with it. */
static void org_forget(bucket_ctx_t *c)
{
    c->org_state = ORG_NONE;
    c->org_lister = NULL;
    c->org_chore = c->org_refreshing = 0;
    free(c->org_token);
    c->org_token = NULL;
    org_set_clear(&c->members);
    org_set_clear(&c->fresh);
}

/* The refresh's set (its pages so far, or all of them) replaces the
 * snapshot's. */
static void org_take_fresh(bucket_ctx_t *c)
{
    org_set_clear(&c->members);
    c->members = c->fresh;
    memset(&c->fresh, 0, sizeof(c->fresh));
    c->org_refreshing = 0;
}

/* The snapshot has expired: a refresh under way becomes the listing of the
 * next (its pages so far serve); otherwise it is gone. */
static void org_expire(bucket_ctx_t *c)
{
    if (!c->org_refreshing) {
        org_forget(c);
        return;
    }
    org_take_fresh(c);
    c->org_state = ORG_LISTING;
}

static void bucket_ctx_free(void *ctx)
{
    bucket_ctx_t *c = ctx;
    if (!c)
        return;
    if (c->rules_state == 1)
        ob_lifecycle_rules_free(&c->rules);
    org_forget(c);
    free(ctx);
}

void ob_stage_bucket_clock(void *ctx, uint64_t (*now_ms)(void))
{
    bucket_ctx_t *c = ctx;
    org_forget(c);
    c->org_blind_until = c->org_retry_at = c->org_second = 0;
    c->org_recent = c->org_prev = 0;
    c->org_paging = 0;
    c->org_took = 0;
    c->org_hits = c->org_pages_made = c->org_last_pages = 0;
    c->now = now_ms ? now_ms : mono_ms;
}

/* An EventBridge event about an account joining, read into the request it
 * asks for (ob_event_request). 0: it was one (OB_OK or a refusal in *rc);
 * -1: not an event, read it as a request. */
static int read_event(bucket_st_t *st, const ob_config_t *cfg, const char *payload, size_t len,
                      ob_msg_error_t *me, ob_err_t *rc)
{
    if (!memmem(payload, len, "\"detail-type\"", 13))
        return -1; /* what the intake reads every time stays one parse */
    json_t *doc = json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL);
    if (!ob_event_is_envelope(doc)) {
        json_decref(doc);
        return -1;
    }
    bucket_ctx_t *c = st->ctx;
    ob_lifecycle_rules_t scratch, *rules = &scratch;
    if (c && c->rules_state == 0)
        c->rules_state = cfg && ob_lifecycle_rules_load(cfg, &c->rules, c->rules_error,
                                                        sizeof(c->rules_error)) == OB_OK
                             ? 1
                             : -1;
    if (c && c->rules_state == 1) {
        rules = &c->rules;
    } else if (c || !cfg ||
               ob_lifecycle_rules_load(cfg, &scratch, me->message, sizeof(me->message)) != OB_OK) {
        if (c)
            snprintf(me->message, sizeof(me->message), "%s", c->rules_error);
        snprintf(me->code, sizeof(me->code), "lifecycle_config");
        me->field[0] = '\0';
        json_decref(doc);
        *rc = OB_ERR_PARSE;
        return 0;
    }
    *rc = ob_event_request(doc, rules, &st->req, me);
    if (rules == &scratch)
        ob_lifecycle_rules_free(&scratch);
    json_decref(doc);
    return 0;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* What the stages need to know of a partition: its name, where its
 * Organizations endpoint is, and where it keeps CUR ("": nowhere). */
typedef struct partition_s {
    const char *arn_prefix, *name, *org_region, *cur_region;
} partition_t;

static const partition_t PARTITIONS[] = {
    {"arn:aws-cn:", "aws-cn", "cn-northwest-1", "cn-northwest-1"},
    {"arn:aws-us-gov:", "aws-us-gov", "us-gov-west-1", ""}, /* GovCloud has no CUR */
    {"arn:", "aws", "us-east-1", "us-east-1"},
};

/* The partition of a region ("" or NULL: the commercial one). */
static const partition_t *partition_of_region(const char *region)
{
    if (region && !strncmp(region, "cn-", 3))
        return &PARTITIONS[0];
    if (region && !strncmp(region, "us-gov-", 7))
        return &PARTITIONS[1];
    return &PARTITIONS[2];
}

/* The partition of a role ARN (the codec has checked it is the region's). */
static const partition_t *partition_of(const char *role_arn)
{
    size_t n = sizeof(PARTITIONS) / sizeof(PARTITIONS[0]);
    for (size_t i = 0; i + 1 < n; i++)
        if (!strncmp(role_arn, PARTITIONS[i].arn_prefix, strlen(PARTITIONS[i].arn_prefix)))
            return &PARTITIONS[i];
    return &PARTITIONS[n - 1];
}

const char *ob_role_partition(const char *role_arn)
{
    return partition_of(role_arn)->name;
}

const char *ob_cur_region(const char *role_arn)
{
    return partition_of(role_arn)->cur_region;
}

char *ob_cur_bucket_policy(const char *partition, const char *account_id, const char *bucket)
{
    char b[128], objs[128], cur_src[128], bcm_src[128];
    snprintf(b, sizeof(b), "arn:%s:s3:::%s", partition, bucket);
    snprintf(objs, sizeof(objs), "arn:%s:s3:::%s/*", partition, bucket);
    snprintf(cur_src, sizeof(cur_src), "arn:%s:cur:us-east-1:%s:definition/*", partition,
             account_id);
    snprintf(bcm_src, sizeof(bcm_src), "arn:%s:bcm-data-exports:us-east-1:%s:export/*", partition,
             account_id);
    json_t *doc = json_pack(
        "{s:s, s:[{s:s, s:s, s:{s:s}, s:[s,s,s], s:[s,s], s:{s:{s:s, s:s}}},"
        "         {s:s, s:s, s:{s:s}, s:[s,s], s:[s,s], s:{s:{s:s, s:s}}}]}",
        "Version", "2012-10-17", "Statement", "Sid", "BillingReportsDelivery", "Effect", "Allow",
        "Principal", "Service", "billingreports.amazonaws.com", "Action", "s3:GetBucketAcl",
        "s3:GetBucketPolicy", "s3:PutObject", "Resource", b, objs, "Condition", "StringEquals",
        "aws:SourceArn", cur_src, "aws:SourceAccount", account_id, "Sid", "DataExportsDelivery",
        "Effect", "Allow", "Principal", "Service", "bcm-data-exports.amazonaws.com", "Action",
        "s3:PutObject", "s3:GetBucketPolicy", "Resource", b, objs, "Condition", "StringEquals",
        "aws:SourceArn", bcm_src, "aws:SourceAccount", account_id);
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return s;
}

static ob_err_t bucket_parse(void *p, void *ctx, const ob_config_t *cfg, const char *payload,
                             size_t len, ob_job_plan_t *plan, ob_step_t *fail)
{
    bucket_st_t *st = p;
    st->ctx = ctx;
    ob_msg_error_t me;
    memset(&me, 0, sizeof(me));
    ob_err_t rc = OB_OK;
    if (read_event(st, cfg, payload, len, &me, &rc) != 0)
        rc = ob_request_parse(payload, len, &st->req, &me);
    if (rc != OB_OK) {
        /* An event the rules leave out, or settings to fix, can be replayed
         * once they change: a permanent failure, not invalid input. */
        int later = !strcmp(me.code, "excluded") || !strcmp(me.code, "lifecycle_config");
        ob_step_fail(fail, later ? OB_DLQ_PERMANENT : ob_dlq_class_for(&me), me.code, "%s",
                     me.message);
        snprintf(fail->field, sizeof(fail->field), "%s", me.field);
        return OB_ERR_PARSE;
    }
    snprintf(plan->account_id, sizeof(plan->account_id), "%s", st->req.account_id);
    snprintf(plan->request_id, sizeof(plan->request_id), "%s", st->req.request_id);
    ob_request_desired(&st->req, plan->desired);
    plan->offboard = st->req.mode == OB_MODE_OFFBOARD;
    plan->repair = st->req.repair;
    plan->mode = ob_mode_name(st->req.mode);
    st->org_check = cfg && st->req.mode != OB_MODE_OFFBOARD ? cfg->intake_org_check : 0;
    st->allow_outside = cfg ? cfg->intake_allow_outside : 0;
    st->report_check = cfg ? cfg->intake_existing_report : 1;
    snprintf(plan->role_arn, sizeof(plan->role_arn), "%s", st->req.role_arn);
    snprintf(plan->external_id, sizeof(plan->external_id), "%s", st->req.external_id);
    snprintf(plan->region, sizeof(plan->region), "%s", st->req.region);
    ob_msg_now(st->started_at);
    return OB_OK;
}

/* The hand-off to the next stage. */
static void hand_off(bucket_st_t *st, ob_step_t *out)
{
    ob_stage_msg_t m;
    ob_stage_msg_init(&m);
    if (ob_request_copy(&m.request, &st->req) != OB_OK) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "out_of_memory", "cannot build the hand-off");
        return;
    }
    ob_stage_t next = st->req.mode == OB_MODE_EXISTING ? OB_STAGE_IAM : OB_STAGE_CUR;
    /* A repair of the stack alone goes straight to the stage that fixes it,
     * with what the bucket and cur stages made (the connection's). */
    unsigned repair = st->req.repair;
    if (st->req.mode == OB_MODE_NEW && repair &&
        !(repair & (OB_DRIFT_BUCKET_KINDS | OB_DRIFT_REPORT_KINDS)))
        next = OB_STAGE_IAM;
    m.stage = next;
    if (st->req.mode == OB_MODE_EXISTING && st->has_found) {
        m.has_report = 1;
        m.report = st->found;
    }
    if (st->req.mode == OB_MODE_NEW)
        ob_stage_fill_bucket(&m);
    if (st->req.mode == OB_MODE_NEW && next == OB_STAGE_IAM)
        ob_stage_fill_report(&m);
    /* An existing account's hand-off has no bucket stage to trace. */
    if (ob_stage_hand_on(&m, st->req.mode == OB_MODE_EXISTING ? OB_STAGE_INTAKE : OB_STAGE_BUCKET,
                         st->started_at, out) != 0)
        return;
    if (st->req.mode == OB_MODE_OFFBOARD)
        return; /* the record's bucket stays what it was */
    out->state[0] = OB_ST_BUCKET;
    out->state[1] = st->req.mode == OB_MODE_NEW ? st->req.bucket : "";
    if (st->req.mode == OB_MODE_NEW && st->buckets && st->old_buckets) {
        /* Buckets earlier requests made stay (their reports' data is the
         * customer's) and are listed. */
        out->state[2] = OB_ST_BUCKETS;
        out->state[3] = st->buckets;
        out->state[4] = OB_ST_OLD_BUCKETS;
        out->state[5] = st->old_buckets;
    }
}

static void s3_call(bucket_st_t *st, ob_step_t *out, const char *op, const char *query,
                    const char *body, const char *ctype, int md5)
{
    memset(out, 0, sizeof(*out));
    char err[256];
    ob_err_t e = ob_s3_init(&out->req, op, "PUT", "/", query, err, sizeof(err));
    if (e == OB_OK && body)
        e = ob_s3_set_body(&out->req, body, strlen(body), ctype, md5, err, sizeof(err));
    if (e != OB_OK) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "request_error", "%s: %s", op, err);
        return;
    }
    out->kind = OB_STEP_CALL;
    snprintf(out->region, sizeof(out->region), "%s", st->req.region);
    snprintf(out->s3_bucket, sizeof(out->s3_bucket), "%s", st->req.bucket);
    st->calls++;
}

static void next_call(bucket_st_t *st, ob_step_t *out)
{
    ob_buf_t body = {0};
    char err[256];
    switch (st->next) {
    case B_CREATE:
        ob_s3_xml_create_bucket_configuration(&body, st->req.region, err, sizeof(err));
        s3_call(st, out, "CreateBucket", NULL, body.len ? body.data : NULL, "application/xml", 0);
        break;
    case B_POLICY: {
        char *policy = ob_cur_bucket_policy(partition_of(st->req.role_arn)->name,
                                            st->req.account_id, st->req.bucket);
        s3_call(st, out, "PutBucketPolicy", "policy", policy, "application/json", 1);
        free(policy);
        break;
    }
    case B_PUBLIC_ACCESS:
        ob_s3_xml_public_access_block(&body, err, sizeof(err));
        s3_call(st, out, "PutPublicAccessBlock", "publicAccessBlock", body.data, "application/xml",
                1);
        break;
    case B_ENCRYPTION:
        ob_s3_xml_sse_aes256(&body, err, sizeof(err));
        s3_call(st, out, "PutBucketEncryption", "encryption", body.data, "application/xml", 1);
        break;
    case B_OWNERSHIP:
        ob_s3_xml_ownership_enforced(&body, err, sizeof(err));
        s3_call(st, out, "PutBucketOwnershipControls", "ownershipControls", body.data,
                "application/xml", 1);
        break;
    case B_DONE:
        hand_off(st, out);
        break;
    }
    ob_buf_free(&body);
}

static void org_call(bucket_st_t *st, ob_step_t *out)
{
    json_t *body = json_pack("{s:s}", "AccountId", st->req.account_id);
    if (ob_step_json11(out, OB_SVC_ORGANIZATIONS, "DescribeAccount", body,
                       partition_of(st->req.role_arn)->org_region) != 0)
        return;
    out->as_fleet = 1;
    st->org_asked = 1;
}

/* An account's state in an Organizations reply: State is the newer field
 * (ACTIVE, SUSPENDED, PENDING_CLOSURE, CLOSED), Status the retiring one. */
static const char *account_state(const json_t *acct)
{
    const char *state = json_string_value(json_object_get(acct, "State"));
    return state ? state : json_string_value(json_object_get(acct, "Status"));
}

/* 1 go on (ACTIVE), 0 *out is a FAIL. */
static int state_verdict(bucket_st_t *st, const char *state, ob_step_t *out)
{
    if (state && !strcmp(state, "ACTIVE"))
        return 1;
    ob_step_fail(out, OB_DLQ_PERMANENT, "account_not_active",
                 "account %s is %s in the organization, not ACTIVE: a suspended or closing "
                 "account cannot be onboarded",
                 st->req.account_id, state ? state : "of an unknown state");
    return 0;
}

/* What Organizations said of the account: 1 go on, 0 *out is a FAIL. */
static int org_verdict(bucket_st_t *st, const ob_aws_result_t *res, ob_step_t *out)
{
    st->org_asked = 0;
    st->org_check = 0;
    if (res->err == OB_ERR_AWS && (!strcmp(res->aws.code, "AccessDeniedException") ||
                                   !strcmp(res->aws.code, "AWSOrganizationsNotInUseException"))) {
        /* The fleet's identity sees no organization: nothing to check
         * against, and no use asking again for a while. */
        if (st->ctx)
            st->ctx->org_blind_until = st->ctx->now() + ORG_BLIND_MS;
        return 1;
    }
    if (res->err == OB_ERR_AWS && !strcmp(res->aws.code, "AccountNotFoundException")) {
        if (st->allow_outside)
            return 1;
        ob_step_fail(out, OB_DLQ_PERMANENT, "account_outside_organization",
                     "account %s is not a member of the fleet's organization: onboard it from "
                     "its own organization's fleet, invite it first, or set "
                     "intake.allow.outside.accounts=true to onboard accounts outside it",
                     st->req.account_id);
        snprintf(out->field, sizeof(out->field), "/account_id");
        return 0;
    }
    if (res->err != OB_OK) {
        ob_step_fail_aws(out, res);
        return 0;
    }
    json_t *reply = NULL;
    char err[256];
    if (ob_aws_json_parse(res->body.data, res->body.len, &reply, err, sizeof(err)) != OB_OK) {
        ob_step_fail(out, OB_DLQ_RETRIES_EXHAUSTED, "bad_reply", "DescribeAccount: %s", err);
        out->retry_reason = OB_RR_TRANSIENT;
        return 0;
    }
    int active = state_verdict(st, account_state(json_object_get(reply, "Account")), out);
    json_decref(reply);
    return active;
}

/* ---- the Organizations check in bulk (ORG_BULK_MIN) ---- */

/* The listing's next page: 0, or -1 with *out a FAIL. */
static int list_call(bucket_ctx_t *c, ob_step_t *out)
{
    json_t *body = json_pack("{s:i}", "MaxResults", 20);
    if (body && c->org_token)
        json_object_set_new(body, "NextToken", json_string(c->org_token));
    if (ob_step_json11(out, OB_SVC_ORGANIZATIONS, "ListAccounts", body, c->org_region) != 0)
        return -1;
    out->as_fleet = 1;
    c->org_pages_made++;
    c->org_pages_total++;
    return 0;
}

/* A listing begins (the job's or the chore's): into the members, or, with a
 * snapshot serving, into a fresh set. */
static void list_begin(bucket_ctx_t *c, const char *partition_region, uint64_t now)
{
    char region[sizeof(c->org_region)];
    snprintf(region, sizeof(region), "%s", partition_region); /* may be c->org_region */
    free(c->org_token);
    c->org_token = NULL;
    if (c->org_state == ORG_READY && !strcmp(region, c->org_region)) {
        c->org_refreshing = 1;
        org_set_clear(&c->fresh);
    } else {
        org_forget(c);
        c->org_state = ORG_LISTING;
    }
    c->org_progress_at = c->org_list_began = now;
    c->org_pages_made = 0;
    snprintf(c->org_region, sizeof(c->org_region), "%s", region);
}

/* The listing failed or was given up. */
static void list_failed(bucket_ctx_t *c, uint64_t now)
{
    c->org_listings_failed++;
    if (c->org_refreshing) {
        /* The snapshot serving goes on until it expires. */
        org_set_clear(&c->fresh);
        c->org_refreshing = 0;
        c->org_chore = 0;
        free(c->org_token);
        c->org_token = NULL;
    } else {
        org_forget(c);
    }
    c->org_retry_at = now + ORG_RETRY_MS;
}

static int member_cmp(const void *a, const void *b)
{
    return strcmp(((const org_member_t *)a)->id, ((const org_member_t *)b)->id);
}

/* A page of the listing: 1 it is complete, or failed and forgotten (a job
 * lister goes on to its own check), 0 *out asks for the next page. */
static int list_page(bucket_ctx_t *c, const ob_aws_result_t *res, ob_step_t *out)
{
    uint64_t now = c->now();
    json_t *reply = NULL;
    char err[256] = "";
    if (res->err != OB_OK ||
        ob_aws_json_parse(res->body.data, res->body.len, &reply, err, sizeof(err)) != OB_OK) {
        if (res->err == OB_ERR_AWS && (!strcmp(res->aws.code, "AccessDeniedException") ||
                                       !strcmp(res->aws.code, "AWSOrganizationsNotInUseException")))
            c->org_blind_until = now + ORG_BLIND_MS;
        ob_logkv(OB_LOG_WARN, "bucket",
                 "listing the organization failed: each account is asked about on its own", "error",
                 res->err != OB_OK ? (res->aws.code[0] ? res->aws.code : res->errmsg) : err, NULL);
        json_decref(reply);
        list_failed(c, now);
        return 1;
    }
    org_set_t *into = c->org_refreshing ? &c->fresh : &c->members;
    /* The page, sorted, merged into the members (kept sorted: waiters look
     * themselves up as the pages come). */
    const json_t *list = json_object_get(reply, "Accounts");
    size_t n = 0, i;
    org_member_t *pg = ob_calloc(json_array_size(list) + 1, sizeof(*pg));
    json_t *a;
    json_array_foreach(list, i, a)
    {
        const char *id = json_string_value(json_object_get(a, "Id"));
        const char *state = account_state(a);
        if (!id || strlen(id) != 12 || into->n + n >= ORG_MEMBERS_MAX)
            continue;
        snprintf(pg[n].id, sizeof(pg[n].id), "%s", id);
        snprintf(pg[n].state, sizeof(pg[n].state), "%s", state ? state : "");
        n++;
    }
    if (n)
        qsort(pg, n, sizeof(*pg), member_cmp);
    if (into->n + n > into->cap) {
        while (into->n + n > into->cap)
            into->cap = into->cap ? 2 * into->cap : 256;
        into->m = ob_realloc(into->m, into->cap * sizeof(*into->m));
    }
    size_t k = into->n, j = n;
    into->n += n;
    for (size_t to = into->n; j > 0; to--) { /* merge from the end */
        if (k > 0 && member_cmp(&into->m[k - 1], &pg[j - 1]) > 0)
            into->m[to - 1] = into->m[--k];
        else
            into->m[to - 1] = pg[--j];
    }
    free(pg);
    c->org_progress_at = now;
    const char *next = json_string_value(json_object_get(reply, "NextToken"));
    if (next && *next) {
        free(c->org_token);
        c->org_token = ob_strdup(next);
        json_decref(reply);
        if (list_call(c, out) == 0)
            return 0;
        list_failed(c, now);
        return 1;
    }
    json_decref(reply);
    free(c->org_token);
    c->org_token = NULL;
    if (c->org_refreshing)
        org_take_fresh(c);
    c->org_state = ORG_READY;
    c->org_lister = NULL;
    c->org_chore = 0;
    /* A member suspended while the pages were listed may be listed ACTIVE:
     * the snapshot's lifetime runs from the listing's start. */
    c->org_listed_at = c->org_list_began;
    c->org_took = now - c->org_list_began;
    c->org_last_pages = c->org_pages_made;
    c->org_hits = 0;
    c->org_listings_ok++;
    return 1;
}

/* The Organizations check: 0 passed, 1 *out is set (a call, a wait or a
 * FAIL). */
static int org_check(bucket_st_t *st, ob_step_t *out)
{
    bucket_ctx_t *c = st->ctx;
    if (!c) {
        org_call(st, out);
        return 1;
    }
    uint64_t now = c->now();
    const char *region = partition_of(st->req.role_arn)->org_region;
    if (c->org_state == ORG_READY && now - c->org_listed_at >= ORG_SNAPSHOT_MS)
        org_expire(c);
    if (c->org_state == ORG_NONE && !c->org_chore)
        snprintf(c->org_region, sizeof(c->org_region), "%s", region); /* the chore's next */
    int same = !strcmp(region, c->org_region);
    if (c->org_state != ORG_NONE && same) {
        /* Listed (or in the pages listed so far). */
        org_member_t key;
        snprintf(key.id, sizeof(key.id), "%s", st->req.account_id);
        const org_member_t *m =
            c->members.n ? bsearch(&key, c->members.m, c->members.n, sizeof(*m), member_cmp) : NULL;
        if (m) {
            st->org_check = 0;
            c->org_hits++;
            c->org_hits_total++;
            return state_verdict(st, m->state[0] ? m->state : NULL, out) ? 0 : 1;
        }
        if (c->org_state == ORG_READY) {
            org_call(st, out); /* joined since the listing, or outside the organization */
            return 1;
        }
    }
    if (!st->org_counted) {
        st->org_counted = 1;
        if (now / 1000 != c->org_second) {
            c->org_prev = now / 1000 == c->org_second + 1 ? c->org_recent : 0;
            c->org_second = now / 1000;
            c->org_recent = 0;
        }
        c->org_recent++;
    }
    if (c->org_state == ORG_NONE && c->org_recent > ORG_BULK_MIN && now >= c->org_retry_at) {
        list_begin(c, region, now);
        c->org_lister = st;
        if (list_call(c, out) == 0)
            st->org_listing = 1;
        else
            list_failed(c, now);
        return 1;
    }
    /* Waiting for the pages is worth it in a burst (the chore's listing,
     * when a few accounts come, is no reason to hold them back): more than
     * ORG_BULK_MIN checks this second or the one before, and a job that
     * waited once waits on (the first of a new second are no fewer). */
    int burst = c->org_recent > ORG_BULK_MIN || c->org_prev > ORG_BULK_MIN || st->org_wait_ms;
    if (c->org_state == ORG_LISTING && same && now - c->org_progress_at < ORG_STALL_MS &&
        (c->org_lister || burst)) {
        st->org_wait_ms = st->org_wait_ms ? 2 * st->org_wait_ms : ORG_WAIT_STEP_MS;
        if (st->org_wait_ms > 1000)
            st->org_wait_ms = 1000;
        memset(out, 0, sizeof(*out));
        out->kind = OB_STEP_WAIT;
        out->wait_ms = st->org_wait_ms;
        return 1;
    }
    org_call(st, out);
    return 1;
}

/* The standing listing (intake.organization.standing), the worker's chore:
 * lists at the start, then refreshes from ORG_REFRESH_MS while the
 * snapshot answered at least as many checks as its listing made calls;
 * never while a job lists, after a failure within ORG_RETRY_MS, or while
 * the fleet cannot see an organization. */
static void bucket_chore(void *ctx, const ob_config_t *cfg, const ob_aws_result_t *res,
                         ob_step_t *out)
{
    bucket_ctx_t *c = ctx;
    if (!cfg || !cfg->intake_org_check || !cfg->intake_org_standing) {
        out->kind = OB_STEP_DONE; /* nothing to keep */
        return;
    }
    if (res && c->org_paging) {
        c->org_paging = 0;
        if (c->org_chore) {
            if (!list_page(c, res, out)) {
                c->org_paging = 1;
                return;
            }
            c->org_chore = 0;
        }
    }
    uint64_t now = c->now();
    if (c->org_state == ORG_READY && now - c->org_listed_at >= ORG_SNAPSHOT_MS)
        org_expire(c);
    int never = !c->org_listings_ok; /* none complete yet: at the start, and after failures */
    int worth = c->org_hits >= c->org_last_pages && c->org_hits > 0;
    uint64_t lead = c->org_took * 3 / 2 + 15000;
    uint64_t refresh = ORG_SNAPSHOT_MS > lead ? ORG_SNAPSHOT_MS - lead : 0;
    if (refresh > ORG_REFRESH_MS)
        refresh = ORG_REFRESH_MS;
    int due = (c->org_state == ORG_NONE && (never || worth)) ||
              (c->org_state == ORG_READY && !c->org_refreshing &&
               now - c->org_listed_at >= refresh && worth);
    if (due && !c->org_lister && !c->org_chore && now >= c->org_retry_at &&
        now >= c->org_blind_until) {
        /* The partition of the last account checked, or else of the fleet's
         * own requests (lifecycle.region), or else the commercial one. */
        list_begin(c,
                   c->org_region[0] ? c->org_region
                                    : partition_of_region(cfg->lifecycle_region)->org_region,
                   now);
        c->org_chore = 1;
        if (list_call(c, out) == 0) {
            c->org_paging = 1;
            return;
        }
        ob_logkv(OB_LOG_WARN, "bucket", "cannot list the organization", "error", out->message,
                 NULL);
        ob_step_clear(out);
        memset(out, 0, sizeof(*out));
        list_failed(c, now);
    }
    out->kind = OB_STEP_WAIT;
    out->wait_ms = ORG_CHORE_TICK_MS;
}

/* The snapshot's figures for /metrics. */
static void bucket_metrics(const void *ctx, ob_metrics_t *m)
{
    const bucket_ctx_t *c = ctx;
    ob_metrics_family(m, "onboard_org_snapshot_members", "gauge",
                      "Accounts in the bucket stage's snapshot of the organization (listed so "
                      "far while the first listing runs).");
    ob_metrics_sample(m, "onboard_org_snapshot_members", NULL, (double)c->members.n);
    ob_metrics_family(m, "onboard_org_snapshot_ready", "gauge",
                      "1 when the snapshot is complete and within its lifetime.");
    ob_metrics_sample(
        m, "onboard_org_snapshot_ready", NULL,
        c->org_state == ORG_READY && c->now() - c->org_listed_at < (uint64_t)ORG_SNAPSHOT_MS ? 1
                                                                                             : 0);
    ob_metrics_family(m, "onboard_org_listings_total", "counter",
                      "Listings of the organization, by how they ended.");
    const char *ok[] = {"result", "complete", NULL}, *bad[] = {"result", "failed", NULL};
    ob_metrics_sample(m, "onboard_org_listings_total", ok, (double)c->org_listings_ok);
    ob_metrics_sample(m, "onboard_org_listings_total", bad, (double)c->org_listings_failed);
    ob_metrics_family(m, "onboard_org_list_calls_total", "counter",
                      "ListAccounts calls made for the snapshot.");
    ob_metrics_sample(m, "onboard_org_list_calls_total", NULL, (double)c->org_pages_total);
    ob_metrics_family(m, "onboard_org_snapshot_hits_total", "counter",
                      "Organizations checks the snapshot answered without a call.");
    ob_metrics_sample(m, "onboard_org_snapshot_hits_total", NULL, (double)c->org_hits_total);
}

static void cur_call(bucket_st_t *st, ob_step_t *out)
{
    memset(out, 0, sizeof(*out));
    json_t *body = json_pack("{s:i}", "MaxResults", 5);
    if (st->cur_token)
        json_object_set_new(body, "NextToken", json_string(st->cur_token));
    char err[256];
    ob_err_t e = ob_json11_init_obj(&out->req, OB_SVC_CUR, "DescribeReportDefinitions", body, err,
                                    sizeof(err));
    json_decref(body);
    if (e != OB_OK) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "request_error", "DescribeReportDefinitions: %s", err);
        return;
    }
    out->kind = OB_STEP_CALL;
    snprintf(out->region, sizeof(out->region), "%s", ob_cur_region(st->req.role_arn));
    st->cur_asked = 1;
}

/* A page of the account's reports: 1 done (found, or none left: *out is then
 * a FAIL), 0 *out asks for the next page. */
static int cur_page(bucket_st_t *st, const ob_aws_result_t *res, ob_step_t *out)
{
    st->cur_asked = 0;
    if (res->err != OB_OK) {
        ob_step_fail_aws(out, res);
        return 1;
    }
    json_t *reply = NULL;
    char err[256];
    if (ob_aws_json_parse(res->body.data, res->body.len, &reply, err, sizeof(err)) != OB_OK) {
        ob_step_fail(out, OB_DLQ_RETRIES_EXHAUSTED, "bad_reply", "DescribeReportDefinitions: %s",
                     err);
        out->retry_reason = OB_RR_TRANSIENT;
        return 1;
    }
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(reply, "ReportDefinitions"), i, d)
    {
        const char *name = json_string_value(json_object_get(d, "ReportName"));
        const char *bucket = json_string_value(json_object_get(d, "S3Bucket"));
        const char *prefix = json_string_value(json_object_get(d, "S3Prefix"));
        const char *region = json_string_value(json_object_get(d, "S3Region"));
        if (!name || !bucket || !region)
            continue;
        size_t n = strlen(st->seen);
        snprintf(st->seen + n, sizeof(st->seen) - n, "%s%s (bucket %s)", n ? ", " : "", name,
                 bucket);
        if (st->has_found || (st->req.has_bucket && strcmp(bucket, st->req.bucket) != 0))
            continue;
        st->has_found = 1;
        st->found.name = ob_request_str(&st->req, name);
        st->found.bucket = ob_request_str(&st->req, bucket);
        st->found.prefix = ob_request_str(&st->req, prefix);
        st->found.region = ob_request_str(&st->req, region);
    }
    const char *next = json_string_value(json_object_get(reply, "NextToken"));
    if (!st->has_found && next && *next && ++st->cur_pages < 20) {
        free(st->cur_token);
        st->cur_token = ob_strdup(next);
        json_decref(reply);
        cur_call(st, out);
        return 0;
    }
    json_decref(reply);
    if (st->has_found)
        return 1;
    if (st->req.has_bucket)
        ob_step_fail(out, OB_DLQ_PERMANENT, "no_cur_report",
                     "account %s has no Cost and Usage Report delivering to bucket %s (found: "
                     "%s): mode existing connects the CUR an account already has; name its "
                     "bucket, or use mode new to create one",
                     st->req.account_id, st->req.bucket, st->seen[0] ? st->seen : "none");
    else
        ob_step_fail(out, OB_DLQ_PERMANENT, "no_cur_report",
                     "account %s has no Cost and Usage Report: mode existing connects the CUR an "
                     "account already has; use mode new to create one",
                     st->req.account_id);
    snprintf(out->field, sizeof(out->field), "%s", st->req.has_bucket ? "/bucket/name" : "/mode");
    return 1;
}

static void bucket_step(void *p, const ob_aws_result_t *res, ob_step_t *out)
{
    bucket_st_t *st = p;
    if (st->org_asked && res) {
        if (!org_verdict(st, res, out))
            return;
        res = NULL; /* on to the stage's own first call */
    }
    if (st->org_listing && res) {
        st->org_listing = 0;
        if (st->ctx && st->ctx->org_lister == st && !list_page(st->ctx, res, out)) {
            st->org_listing = 1;
            return;
        }
        res = NULL; /* the lister's own check, from the snapshot */
    }
    if (st->org_check && (!st->ctx || st->ctx->now() >= st->ctx->org_blind_until) &&
        org_check(st, out))
        return;
    if (st->req.mode == OB_MODE_OFFBOARD) {
        hand_off(st, out);
        return;
    }
    if (st->req.mode == OB_MODE_EXISTING) {
        if (st->cur_asked && res) {
            if (!cur_page(st, res, out) || out->kind == OB_STEP_FAIL)
                return;
        } else if (st->report_check && ob_cur_region(st->req.role_arn)[0]) {
            cur_call(st, out);
            return;
        }
        hand_off(st, out);
        return;
    }
    if (!res && st->next == B_CREATE && st->req.repair &&
        !(st->req.repair & OB_DRIFT_BUCKET_KINDS)) {
        hand_off(st, out); /* the bucket is as it should be: on to what drifted */
        return;
    }
    if (res) {
        int ok = res->err == OB_OK;
        if (!ok && st->next == B_CREATE && res->err == OB_ERR_AWS &&
            !strcmp(res->aws.code, "BucketAlreadyOwnedByYou"))
            ok = 1; /* a rerun: it is ours already */
        if (!ok) {
            if (st->next == B_CREATE && res->err == OB_ERR_AWS &&
                !strcmp(res->aws.code, "BucketAlreadyExists")) {
                ob_step_fail(out, OB_DLQ_PERMANENT, "BucketAlreadyExists",
                             "bucket name %s is taken by another AWS account; choose another "
                             "bucket name in the request (bucket.name)",
                             st->req.bucket);
                snprintf(out->aws_request_id, sizeof(out->aws_request_id), "%s",
                         res->aws.request_id);
                out->http_status = (int)res->status;
                snprintf(out->field, sizeof(out->field), "/bucket/name");
                return;
            }
            ob_step_fail_aws(out, res);
            return;
        }
        st->next++;
    }
    next_call(st, out);
}

/* Handed back after some of its calls: the next holder of this request
 * goes on from the first one not done (they are PUTs of fixed documents, so
 * this only saves calls). */
static const char *bucket_snapshot(void *p)
{
    bucket_st_t *st = p;
    if (st->req.mode == OB_MODE_EXISTING || st->next <= B_CREATE || st->next >= B_DONE)
        return NULL;
    snprintf(st->progress, sizeof(st->progress), "bucket-calls-done %d", (int)st->next);
    return st->progress;
}

static void bucket_resume(void *p, const char *progress)
{
    bucket_st_t *st = p;
    int done = 0;
    if (st->req.mode == OB_MODE_NEW && sscanf(progress, "bucket-calls-done %d", &done) == 1 &&
        done > B_CREATE && done < B_DONE)
        st->next = (bstep_t)done;
}

static void bucket_clear(void *p)
{
    bucket_st_t *st = p;
    if (st->ctx && st->ctx->org_lister == st) {
        /* The lister is gone (handed back, stopped): another may list. */
        org_forget(st->ctx);
        st->ctx->org_retry_at = 0;
    }
    ob_request_clear(&st->req);
    free(st->cur_token);
    st->cur_token = NULL;
    free(st->buckets);
    free(st->old_buckets);
    st->buckets = st->old_buckets = NULL;
}

static void bucket_prior(void *p, const char *(*get)(const void *ctx, const char *field),
                         const void *ctx)
{
    bucket_st_t *st = p;
    free(st->buckets);
    free(st->old_buckets);
    st->buckets = st->old_buckets = NULL;
    if (st->req.mode != OB_MODE_NEW)
        return;
    /* The record lists them; one made before the record did is its bucket. */
    char *known = ob_list_with(get(ctx, OB_ST_BUCKETS), get(ctx, OB_ST_BUCKET), BUCKETS_KEPT);
    st->buckets = known ? ob_list_with(known, st->req.bucket, BUCKETS_KEPT) : NULL;
    free(known);
    st->old_buckets = st->buckets ? ob_list_without(st->buckets, st->req.bucket) : NULL;
}

static ob_err_t bucket_reencode(void *p, char **json, size_t *len)
{
    ob_msg_error_t me;
    return ob_request_to_json(&((const bucket_st_t *)p)->req, json, len, &me);
}

const ob_stage_ops_t ob_stage_bucket = {
    .name = "bucket",
    .stage = OB_STAGE_BUCKET,
    .input = "requests",
    .outputs = "cur",
    .pass_session = 1,
    .state_size = sizeof(bucket_st_t),
    .ctx_new = bucket_ctx_new,
    .ctx_free = bucket_ctx_free,
    .parse = bucket_parse,
    .step = bucket_step,
    .reencode = bucket_reencode,
    .clear = bucket_clear,
    .prior = bucket_prior,
    .resume = bucket_resume,
    .snapshot = bucket_snapshot,
    .chore = bucket_chore,
    .metrics = bucket_metrics,
};
