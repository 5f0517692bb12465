/*
 * The verify stage: is a connected account still as the fleet made it?
 *
 * Input: onboard.verify/1 on the verify topic (onboardctl verify, or the
 * fleet's periodic verification): the account, the request that made its
 * connection and the connection (its key, stack, Billing Engine role). A
 * side stage (ob_worker.h): it takes the account's lock like the others, so
 * it never looks at an account a request is changing, and it writes only its
 * own fields of the record. The record must still hold that connection (its
 * key); otherwise the account changed since the verification was asked for
 * and nothing is checked.
 *
 * In the account's identity, reading only, in this order (mode existing: the
 * bucket and the report are the account's own, so from the stack on):
 *   S3 GetBucketPolicy        the CUR delivery statements are there
 *                             (bucket_missing, bucket_policy)
 *   GetPublicAccessBlock      all four settings on (bucket_public_access)
 *   GetBucketEncryption       SSE-S3, as the fleet set it (bucket_encryption)
 *   GetBucketOwnershipControls  BucketOwnerEnforced (bucket_ownership)
 *   CUR DescribeReportDefinitions  the report exists (report_missing) and is
 *                             the one the request asks for (report_changed)
 *   CloudFormation DescribeStacks  the stack exists (stack_missing) in a
 *                             *_COMPLETE state (stack_failed); its ExternalId
 *   DetectStackDrift, then DescribeStackDriftDetectionStatus every poll until
 *                             the detection is done; DRIFTED: the resources
 *                             MODIFIED or DELETED (DescribeStackResourceDrifts)
 *                             with what differs (stack_drifted)
 *   STS AssumeRole, as the fleet (the Billing Engine's principal), on the
 *                             role with its ExternalId (role_unassumable)
 * -> onboard.drift/1 on the drift topic: in_sync, or drifted with each
 *    finding; with repair (the message's), also the repair request, in the same
 *    transaction: the connection's request again as onboard.request/2 with
 *    repair = the kinds found, so that the stages that fix them run (request
 *    id "repair:" + the event's key: a redelivered verification sends the same
 *    request). The record: drift_status, drift_kinds, drift_detail,
 *    drift_key, verify_request, repair_request; the history: verified / drift.
 *
 * Secrets: the ExternalId read from the stack goes to STS only, and is cut
 * out of any text this stage writes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"
#include "ob_awsproto.h"
#include "ob_crypto.h"
#include "ob_metrics.h"
#include "ob_state.h"
#include "ob_xml.h"
#include "stages.h"

#define VERIFY_SESSION   "billing-engine-verify"
#define VERIFY_POLLS_MAX 120 /* drift detection polls before giving up */
#define VERIFY_BUSY_MAX  60  /* polls of a stack still changing */
#define CUR_PAGES_MAX    20

typedef enum vstep_e {
    V_START = 0,
    V_POLICY,
    V_PUBLIC_ACCESS,
    V_ENCRYPTION,
    V_OWNERSHIP,
    V_REPORTS,
    V_STACK,
    V_DETECT,
    V_DETECT_STATUS,
    V_DRIFTS,
    V_ASSUME,
} vstep_t;

/* What one worker counted, for /metrics. */
#define KINDS 11 /* the drift kinds (OB_DRIFT_* bits) */
typedef struct verify_ctx_s {
    uint64_t verified, in_sync, drifted;
    uint64_t findings[KINDS], repairs[KINDS];
} verify_ctx_t;
_Static_assert(OB_DRIFT__ALL == (1u << KINDS) - 1, "a counter for every drift kind");

typedef struct verify_st_s {
    verify_ctx_t *ctx;
    ob_verify_msg_t msg;
    ob_drift_t drift; /* the findings, and the event */
    vstep_t pending;  /* the call whose reply comes next */
    int waiting;      /* a WAIT step is out: ask again */
    char stack_name[OB_STACK_NAME_LEN];
    long long poll_ms;
    int polls;
    char detection[80];
    char external_id[OB_BE_EXT_ID_LEN]; /* the stack's; never logged */
    char *cur_token;
    int cur_pages;
    int stale; /* the record no longer holds this connection */
    char *repair;
    char repair_id[OB_REQUEST_ID_LEN];
    char kinds[512];
    char detail[1024];
} verify_st_t;

static int is_aws(const ob_aws_result_t *res, const char *code)
{
    return res->err == OB_ERR_AWS && !strcmp(res->aws.code, code);
}

/* A finding; the detail is scrubbed of the ExternalId. */
static void find(verify_st_t *st, unsigned kind, const char *resource, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void find(verify_st_t *st, unsigned kind, const char *resource, const char *fmt, ...)
{
    if (st->drift.nfindings >= OB_DRIFT_FINDINGS_MAX)
        return;
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    ob_redact(detail, sizeof(detail), st->external_id, "[ExternalId]");
    ob_drift_finding_t *f = &st->drift.findings[st->drift.nfindings++];
    f->kind = kind;
    f->resource = ob_drift_str(&st->drift, resource && resource[0] ? resource : "?");
    f->detail = ob_drift_str(&st->drift, detail);
}

/* ---- calls ---- */

static void s3_get(verify_st_t *st, ob_step_t *out, vstep_t next, const char *op, const char *query)
{
    memset(out, 0, sizeof(*out));
    char err[256];
    if (ob_s3_init(&out->req, op, "GET", "/", query, err, sizeof(err)) != OB_OK) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "request_error", "%s: %s", op, err);
        return;
    }
    out->kind = OB_STEP_CALL;
    snprintf(out->region, sizeof(out->region), "%s", st->msg.request.region);
    snprintf(out->s3_bucket, sizeof(out->s3_bucket), "%s", st->msg.request.bucket);
    st->pending = next;
}

static int query_call(verify_st_t *st, ob_step_t *out, vstep_t next, ob_aws_svc_t svc,
                      const char *action)
{
    memset(out, 0, sizeof(*out));
    char err[256];
    if (ob_query_init(&out->req, svc, action, err, sizeof(err)) != OB_OK) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "request_error", "%s: %s", action, err);
        return -1;
    }
    out->kind = OB_STEP_CALL;
    snprintf(out->region, sizeof(out->region), "%s", st->msg.request.region);
    st->pending = next;
    return 0;
}

static void q(ob_step_t *out, const char *key, const char *value)
{
    char err[256];
    if (out->kind == OB_STEP_CALL && ob_query_add(&out->req, key, value, err, sizeof(err)) != OB_OK)
        ob_step_fail(out, OB_DLQ_PERMANENT, "request_error", "%s: %s", key, err);
}

static void reports_call(verify_st_t *st, ob_step_t *out)
{
    json_t *body = json_pack("{s:i}", "MaxResults", 5);
    if (body && st->cur_token)
        json_object_set_new(body, "NextToken", json_string(st->cur_token));
    if (ob_step_json11(out, OB_SVC_CUR, "DescribeReportDefinitions", body,
                       ob_cur_region(st->msg.request.role_arn)) == 0)
        st->pending = V_REPORTS;
}

static void wait_poll(verify_st_t *st, ob_step_t *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = OB_STEP_WAIT;
    out->wait_ms = (uint64_t)st->poll_ms;
    st->waiting = 1;
}

static void done(verify_st_t *st, ob_step_t *out);

/* The next check after `after` (mode existing starts at the stack). */
static void next_check(verify_st_t *st, ob_step_t *out, vstep_t after)
{
    const ob_request_t *r = &st->msg.request;
    int ours = r->mode == OB_MODE_NEW; /* the bucket and the report are the fleet's */
    switch (after) {
    case V_START:
        if (ours) {
            s3_get(st, out, V_POLICY, "GetBucketPolicy", "policy");
            return;
        }
        /* an existing account's bucket and report are its own */
        __attribute__((fallthrough));
    case V_REPORTS:
        if (query_call(st, out, V_STACK, OB_SVC_CLOUDFORMATION, "DescribeStacks") == 0)
            q(out, "StackName", st->stack_name);
        return;
    case V_POLICY:
        s3_get(st, out, V_PUBLIC_ACCESS, "GetPublicAccessBlock", "publicAccessBlock");
        return;
    case V_PUBLIC_ACCESS:
        s3_get(st, out, V_ENCRYPTION, "GetBucketEncryption", "encryption");
        return;
    case V_ENCRYPTION:
        s3_get(st, out, V_OWNERSHIP, "GetBucketOwnershipControls", "ownershipControls");
        return;
    case V_OWNERSHIP:
        if (ob_cur_region(r->role_arn)[0]) {
            reports_call(st, out);
            return;
        }
        next_check(st, out, V_REPORTS); /* GovCloud has no CUR */
        return;
    case V_STACK:
    case V_DETECT:
    case V_DETECT_STATUS:
    case V_DRIFTS:
        if (!st->external_id[0]) {
            find(st, OB_DRIFT_ROLE_UNASSUMABLE, st->msg.role_arn,
                 "the stack has no readable ExternalId parameter: the Billing Engine cannot be "
                 "given one to assume the role with");
            done(st, out);
            return;
        }
        if (query_call(st, out, V_ASSUME, OB_SVC_STS, "AssumeRole") == 0) {
            q(out, "RoleArn", st->msg.role_arn);
            q(out, "RoleSessionName", VERIFY_SESSION);
            q(out, "DurationSeconds", "900");
            q(out, "ExternalId", st->external_id);
            out->as_fleet = 1;
        }
        return;
    case V_ASSUME:
        done(st, out);
        return;
    }
}

/* ---- what the replies say ---- */

/* Each of the statements we write is in the policy (normalized: key order
 * and one-element lists do not count). */
static json_t *norm(const json_t *v)
{
    if (json_is_array(v) && json_array_size(v) == 1)
        return norm(json_array_get(v, 0));
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        const json_t *x;
        json_array_foreach(v, i, x) json_array_append_new(a, norm(x));
        return a;
    }
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            if (strcmp(k, "Sid") != 0)
                json_object_set_new(o, k, norm(x));
        }
        return o;
    }
    return json_deep_copy(v);
}

static int statement_in(const json_t *want, const json_t *have_list)
{
    json_t *w = norm(want);
    int found = 0;
    size_t i;
    const json_t *h;
    const json_t *list = json_is_array(have_list) ? have_list : NULL;
    if (!list && json_is_object(have_list)) {
        json_t *hn = norm(have_list);
        found = json_equal(w, hn);
        json_decref(hn);
    }
    json_array_foreach(list, i, h)
    {
        json_t *hn = norm(h);
        found |= json_equal(w, hn);
        json_decref(hn);
    }
    json_decref(w);
    return found;
}

static int on_policy(verify_st_t *st, const ob_aws_result_t *res)
{
    const ob_request_t *r = &st->msg.request;
    if (is_aws(res, "NoSuchBucket")) {
        find(st, OB_DRIFT_BUCKET_MISSING, r->bucket, "the bucket does not exist");
        return 0; /* nothing more to look at in it */
    }
    if (is_aws(res, "NoSuchBucketPolicy")) {
        find(st, OB_DRIFT_BUCKET_POLICY, r->bucket,
             "no bucket policy: AWS cannot deliver the report into it");
        return 1;
    }
    if (res->err != OB_OK)
        return -1;
    char *want_text =
        ob_cur_bucket_policy(ob_role_partition(r->role_arn), r->account_id, r->bucket);
    json_t *want = want_text ? json_loads(want_text, 0, NULL) : NULL;
    free(want_text);
    json_t *have = json_loadb(res->body.data ? res->body.data : "", res->body.len, 0, NULL);
    size_t i;
    const json_t *s;
    json_array_foreach(json_object_get(want, "Statement"), i, s)
    {
        if (!statement_in(s, json_object_get(have, "Statement"))) {
            find(st, OB_DRIFT_BUCKET_POLICY, r->bucket,
                 "the policy lacks the statement letting %s deliver reports (or it was changed)",
                 json_string_value(json_object_get(json_object_get(s, "Principal"), "Service")));
            break;
        }
    }
    json_decref(want);
    json_decref(have);
    return 1;
}

static const char *xml_text(const ob_aws_result_t *res, const char *path, char *out, size_t n)
{
    out[0] = '\0';
    ob_xml_doc_t *doc = NULL;
    char err[128];
    if (ob_xml_parse(res->body.data ? res->body.data : "", res->body.len, &doc, err, sizeof(err)) ==
        OB_OK) {
        const char *t = ob_xml_path_text(ob_xml_root(doc), path);
        snprintf(out, n, "%s", t ? t : "");
    }
    ob_xml_free(doc);
    return out;
}

static int on_public_access(verify_st_t *st, const ob_aws_result_t *res)
{
    const char *b = st->msg.request.bucket;
    if (is_aws(res, "NoSuchPublicAccessBlockConfiguration")) {
        find(st, OB_DRIFT_BUCKET_PUBLIC_ACCESS, b, "the bucket has no public access block");
        return 1;
    }
    if (res->err != OB_OK)
        return -1;
    static const char *const flags[] = {"BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy",
                                        "RestrictPublicBuckets", NULL};
    for (int i = 0; flags[i]; i++) {
        char v[16];
        if (strcmp(xml_text(res, flags[i], v, sizeof(v)), "true") != 0) {
            find(st, OB_DRIFT_BUCKET_PUBLIC_ACCESS, b, "%s is %s, not true", flags[i],
                 v[0] ? v : "absent");
            break;
        }
    }
    return 1;
}

static int on_encryption(verify_st_t *st, const ob_aws_result_t *res)
{
    if (res->err != OB_OK && !is_aws(res, "ServerSideEncryptionConfigurationNotFoundError"))
        return -1;
    char v[64];
    xml_text(res, "Rule/ApplyServerSideEncryptionByDefault/SSEAlgorithm", v, sizeof(v));
    if (strcmp(v, "AES256") != 0)
        find(st, OB_DRIFT_BUCKET_ENCRYPTION, st->msg.request.bucket,
             "default encryption is %s, not SSE-S3 (AES256) as the fleet set it",
             v[0] ? v : "not set");
    return 1;
}

static int on_ownership(verify_st_t *st, const ob_aws_result_t *res)
{
    if (res->err != OB_OK && !is_aws(res, "OwnershipControlsNotFoundError"))
        return -1;
    char v[64];
    xml_text(res, "Rule/ObjectOwnership", v, sizeof(v));
    if (strcmp(v, "BucketOwnerEnforced") != 0)
        find(st, OB_DRIFT_BUCKET_OWNERSHIP, st->msg.request.bucket,
             "object ownership is %s, not BucketOwnerEnforced", v[0] ? v : "not set");
    return 1;
}

/* 1: look at the next page; 0: done with the reports; -1: a failure. */
static int on_reports(verify_st_t *st, const ob_aws_result_t *res)
{
    if (res->err != OB_OK)
        return -1;
    json_t *reply = NULL;
    char err[256];
    if (ob_aws_json_parse(res->body.data, res->body.len, &reply, err, sizeof(err)) != OB_OK)
        return -1;
    const ob_request_t *r = &st->msg.request;
    size_t i;
    const json_t *d;
    json_array_foreach(json_object_get(reply, "ReportDefinitions"), i, d)
    {
        const char *name = json_string_value(json_object_get(d, "ReportName"));
        if (!name || strcmp(name, r->report.name) != 0)
            continue;
        json_t *want = ob_cur_definition(r, r->bucket, r->region);
        char changes[512];
        if (want && ob_cur_differences(d, want, changes, sizeof(changes)) > 0)
            find(st, OB_DRIFT_REPORT_CHANGED, r->report.name, "%s", changes);
        json_decref(want);
        json_decref(reply);
        return 0;
    }
    const char *next = json_string_value(json_object_get(reply, "NextToken"));
    if (next && *next && ++st->cur_pages < CUR_PAGES_MAX) {
        free(st->cur_token);
        st->cur_token = ob_strdup(next);
        json_decref(reply);
        return 1;
    }
    json_decref(reply);
    find(st, OB_DRIFT_REPORT_MISSING, r->report.name, "no report definition of that name");
    return 0;
}

static const char *ends(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix) ? s : NULL;
}

/* 1: go on to drift detection; 0: the stack settles the matter (done);
 * 2: poll it again; -1: a failure. */
static int on_stack(verify_st_t *st, const ob_aws_result_t *res)
{
    if (is_aws(res, "ValidationError") && strstr(res->aws.message, "does not exist")) {
        find(st, OB_DRIFT_STACK_MISSING, st->stack_name,
             "the stack is gone, and with it the Billing Engine role");
        return 0;
    }
    if (res->err != OB_OK)
        return -1;
    ob_xml_doc_t *doc = NULL;
    const ob_xml_node_t *result = NULL;
    char err[256], status[64] = "", reason[256] = "";
    if (ob_query_parse_result(res->body.data ? res->body.data : "", res->body.len, "DescribeStacks",
                              &doc, &result, err, sizeof(err)) != OB_OK)
        return -1;
    const ob_xml_node_t *m = ob_xml_path(result, "Stacks/member"), *p;
    const char *t = m ? ob_xml_path_text(m, "StackStatus") : NULL;
    snprintf(status, sizeof(status), "%s", t ? t : "");
    t = m ? ob_xml_path_text(m, "StackStatusReason") : NULL;
    snprintf(reason, sizeof(reason), "%s", t ? t : "");
    for (p = m ? ob_xml_child(ob_xml_child(m, "Parameters"), "member") : NULL; p;
         p = ob_xml_next(p, "member")) {
        const char *k = ob_xml_path_text(p, "ParameterKey");
        const char *v = ob_xml_path_text(p, "ParameterValue");
        if (k && v && !strcmp(k, "ExternalId") && strlen(v) == 32 &&
            strspn(v, "0123456789abcdef") == 32)
            snprintf(st->external_id, sizeof(st->external_id), "%s", v);
    }
    ob_xml_free(doc);
    if (!m || !status[0] || !strcmp(status, "DELETE_COMPLETE")) {
        find(st, OB_DRIFT_STACK_MISSING, st->stack_name,
             "the stack is gone, and with it the Billing Engine role");
        return 0;
    }
    if (ends(status, "_IN_PROGRESS"))
        return 2;
    if (!ends(status, "_COMPLETE") || !strcmp(status, "ROLLBACK_COMPLETE")) {
        find(st, OB_DRIFT_STACK_FAILED, st->stack_name, "the stack is %s%s%s", status,
             reason[0] ? ": " : "", reason);
        return 0;
    }
    return 1;
}

/* The drift detection's state: 1 done and drifted, 0 done in sync, 2 not
 * done yet, -1 a failure. */
static int on_detect_status(verify_st_t *st, const ob_aws_result_t *res)
{
    if (res->err != OB_OK)
        return -1;
    ob_xml_doc_t *doc = NULL;
    const ob_xml_node_t *result = NULL;
    char err[256];
    if (ob_query_parse_result(res->body.data ? res->body.data : "", res->body.len,
                              "DescribeStackDriftDetectionStatus", &doc, &result, err,
                              sizeof(err)) != OB_OK)
        return -1;
    const char *d = ob_xml_path_text(result, "DetectionStatus");
    const char *s = ob_xml_path_text(result, "StackDriftStatus");
    int rc = !d ? -1 : !strcmp(d, "DETECTION_IN_PROGRESS") ? 2 : s && !strcmp(s, "DRIFTED") ? 1 : 0;
    ob_xml_free(doc);
    return rc;
}

static void on_drifts(verify_st_t *st, const ob_aws_result_t *res)
{
    ob_xml_doc_t *doc = NULL;
    const ob_xml_node_t *result = NULL;
    char err[256];
    if (res->err != OB_OK || ob_query_parse_result(res->body.data ? res->body.data : "",
                                                   res->body.len, "DescribeStackResourceDrifts",
                                                   &doc, &result, err, sizeof(err)) != OB_OK) {
        find(st, OB_DRIFT_STACK_DRIFTED, st->stack_name,
             "CloudFormation says the stack drifted (its resources could not be listed)");
        return;
    }
    for (const ob_xml_node_t *m =
             ob_xml_child(ob_xml_child(result, "StackResourceDrifts"), "member");
         m; m = ob_xml_next(m, "member")) {
        const char *status = ob_xml_path_text(m, "StackResourceDriftStatus");
        if (!status || (strcmp(status, "MODIFIED") != 0 && strcmp(status, "DELETED") != 0))
            continue;
        char what[768] = "";
        size_t used = 0;
        for (const ob_xml_node_t *d =
                 ob_xml_child(ob_xml_child(m, "PropertyDifferences"), "member");
             d && used + 1 < sizeof(what); d = ob_xml_next(d, "member")) {
            const char *path = ob_xml_path_text(d, "PropertyPath");
            const char *type = ob_xml_path_text(d, "DifferenceType");
            used += (size_t)snprintf(what + used, sizeof(what) - used, "%s%s %s", used ? "; " : "",
                                     path ? path : "?", type ? type : "?");
        }
        const char *logical = ob_xml_path_text(m, "LogicalResourceId");
        find(st, OB_DRIFT_STACK_DRIFTED, logical ? logical : st->stack_name, "%s%s%s", status,
             what[0] ? ": " : "", what);
    }
    ob_xml_free(doc);
}

/* ---- the outcome ---- */

static void done(verify_st_t *st, ob_step_t *out)
{
    memset(out, 0, sizeof(*out));
    ob_drift_t *d = &st->drift;
    char now[OB_TIME_LEN];
    ob_msg_now(now);
    d->account_id = ob_drift_str(d, st->msg.account_id);
    d->request_id = ob_drift_str(d, st->msg.request_id);
    d->connection_key = ob_drift_str(d, st->msg.connection_key);
    d->checked_at = ob_drift_str(d, now);
    unsigned kinds = ob_drift_kinds(d);
    ob_drift_key(d->account_id, d->request_id, d->idempotency_key);
    if (kinds && st->msg.repair) {
        /* The connection's request again, to repair what was found. */
        snprintf(st->repair_id, sizeof(st->repair_id), "repair:%.32s", d->idempotency_key);
        ob_request_t r = st->msg.request; /* shallow: the message owns the strings */
        r.version = 2;
        r.repair = kinds & (r.mode == OB_MODE_NEW ? OB_DRIFT__ALL : OB_DRIFT_STACK_KINDS);
        r.request_id = st->repair_id;
        r.requester = "onboard-verify";
        r.requested_at = d->checked_at;
        ob_msg_error_t me;
        free(st->repair);
        st->repair = NULL;
        if (r.repair && ob_request_to_json(&r, &st->repair, NULL, &me) != OB_OK) {
            ob_step_fail(out, OB_DLQ_PERMANENT, me.code, "cannot build the repair request: %s",
                         me.message);
            return;
        }
        if (st->repair)
            d->repair_request_id = ob_drift_str(d, st->repair_id);
    }
    if (st->ctx) {
        verify_ctx_t *c = st->ctx;
        c->verified++;
        c->in_sync += !kinds;
        c->drifted += !!kinds;
        for (size_t i = 0; i < d->nfindings; i++)
            for (unsigned k = 0; k < KINDS; k++)
                c->findings[k] += d->findings[i].kind == (1u << k);
        for (unsigned k = 0; st->repair && k < KINDS; k++)
            c->repairs[k] += !!(kinds & (1u << k));
    }
    ob_msg_error_t me;
    char *json = NULL;
    if (ob_drift_to_json(d, &json, NULL, &me) != OB_OK) {
        ob_step_fail(out, OB_DLQ_PERMANENT, me.code, "cannot build the drift event: %s",
                     me.message);
        return;
    }
    out->kind = OB_STEP_DONE;
    out->emit = json;
    out->emit_topic = "drift";
    out->emit_schema = OB_SCHEMA_DRIFT;
    if (st->repair) {
        out->also = st->repair;
        st->repair = NULL;
        out->also_topic = "requests";
        out->also_schema = OB_SCHEMA_REQUEST_2;
    }
    size_t used = 0, dused = 0;
    st->kinds[0] = st->detail[0] = '\0';
    for (size_t i = 0; i < d->nfindings; i++) {
        const char *name = ob_drift_name(d->findings[i].kind);
        if (!strstr(st->kinds, name) && used + 1 < sizeof(st->kinds))
            used += (size_t)snprintf(st->kinds + used, sizeof(st->kinds) - used, "%s%s",
                                     used ? "," : "", name);
        if (dused + 1 < sizeof(st->detail))
            dused += (size_t)snprintf(st->detail + dused, sizeof(st->detail) - dused, "%s%s %s: %s",
                                      dused ? "; " : "", name, d->findings[i].resource,
                                      d->findings[i].detail);
    }
    const char *kv[] = {OB_ST_DRIFT_STATUS,   kinds ? "drifted" : "in_sync",
                        OB_ST_DRIFT_KINDS,    st->kinds,
                        OB_ST_DRIFT_DETAIL,   st->detail,
                        OB_ST_DRIFT_KEY,      d->idempotency_key,
                        OB_ST_VERIFY_REQUEST, st->msg.request_id,
                        OB_ST_REPAIR_REQUEST, out->also ? st->repair_id : ""};
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
        out->state[i] = kv[i];
}

static void fail_call(verify_st_t *st, const ob_aws_result_t *res, ob_step_t *out, const char *what)
{
    ob_step_fail_aws(out, res);
    char msg[sizeof(out->message) + 64];
    snprintf(msg, sizeof(msg), "verify (%s): %s", what, out->message);
    ob_redact(msg, sizeof(msg), st->external_id, "[ExternalId]");
    snprintf(out->message, sizeof(out->message), "%.*s", (int)sizeof(out->message) - 1, msg);
}

static void verify_step(void *p, const ob_aws_result_t *res, ob_step_t *out)
{
    verify_st_t *st = p;
    memset(out, 0, sizeof(*out));
    if (!res && st->stale) {
        /* The account changed since: nothing of this connection to check. */
        out->kind = OB_STEP_DONE;
        return;
    }
    if (!res && !st->waiting) {
        next_check(st, out, V_START);
        return;
    }
    if (!res) {
        /* After a WAIT: ask again. */
        st->waiting = 0;
        if (st->pending == V_STACK) {
            if (query_call(st, out, V_STACK, OB_SVC_CLOUDFORMATION, "DescribeStacks") == 0)
                q(out, "StackName", st->stack_name);
        } else if (query_call(st, out, V_DETECT_STATUS, OB_SVC_CLOUDFORMATION,
                              "DescribeStackDriftDetectionStatus") == 0) {
            q(out, "StackDriftDetectionId", st->detection);
        }
        return;
    }
    int rc;
    switch (st->pending) {
    case V_START:
        next_check(st, out, V_START);
        return;
    case V_POLICY:
        if ((rc = on_policy(st, res)) < 0)
            fail_call(st, res, out, "GetBucketPolicy");
        else if (rc == 0)
            next_check(st, out, V_OWNERSHIP); /* no bucket: on to the report */
        else
            next_check(st, out, V_POLICY);
        return;
    case V_PUBLIC_ACCESS:
        if (on_public_access(st, res) < 0)
            fail_call(st, res, out, "GetPublicAccessBlock");
        else
            next_check(st, out, V_PUBLIC_ACCESS);
        return;
    case V_ENCRYPTION:
        if (on_encryption(st, res) < 0)
            fail_call(st, res, out, "GetBucketEncryption");
        else
            next_check(st, out, V_ENCRYPTION);
        return;
    case V_OWNERSHIP:
        if (on_ownership(st, res) < 0)
            fail_call(st, res, out, "GetBucketOwnershipControls");
        else
            next_check(st, out, V_OWNERSHIP);
        return;
    case V_REPORTS:
        if ((rc = on_reports(st, res)) < 0)
            fail_call(st, res, out, "DescribeReportDefinitions");
        else if (rc == 1)
            reports_call(st, out);
        else
            next_check(st, out, V_REPORTS);
        return;
    case V_STACK:
        rc = on_stack(st, res);
        if (rc < 0) {
            fail_call(st, res, out, "DescribeStacks");
        } else if (rc == 2) {
            if (++st->polls > VERIFY_BUSY_MAX) {
                ob_step_fail(out, OB_DLQ_RETRIES_EXHAUSTED, "stack_busy",
                             "stack %s is still changing: verify again later", st->stack_name);
                out->retry_reason = OB_RR_BUSY;
                return;
            }
            wait_poll(st, out);
        } else if (rc == 0) {
            done(st, out);
        } else if (query_call(st, out, V_DETECT, OB_SVC_CLOUDFORMATION, "DetectStackDrift") == 0) {
            q(out, "StackName", st->stack_name);
        }
        return;
    case V_DETECT: {
        ob_xml_doc_t *doc = NULL;
        const ob_xml_node_t *result = NULL;
        char err[256];
        if (res->err != OB_OK ||
            ob_query_parse_result(res->body.data ? res->body.data : "", res->body.len,
                                  "DetectStackDrift", &doc, &result, err, sizeof(err)) != OB_OK) {
            ob_xml_free(doc);
            fail_call(st, res, out, "DetectStackDrift");
            return;
        }
        const char *id = ob_xml_path_text(result, "StackDriftDetectionId");
        snprintf(st->detection, sizeof(st->detection), "%s", id ? id : "");
        ob_xml_free(doc);
        st->polls = 0;
        st->pending = V_DETECT_STATUS;
        wait_poll(st, out);
        return;
    }
    case V_DETECT_STATUS:
        rc = on_detect_status(st, res);
        if (rc < 0) {
            fail_call(st, res, out, "DescribeStackDriftDetectionStatus");
        } else if (rc == 2) {
            if (++st->polls > VERIFY_POLLS_MAX) {
                ob_step_fail(out, OB_DLQ_RETRIES_EXHAUSTED, "drift_detection_timeout",
                             "drift detection of stack %s did not finish", st->stack_name);
                out->retry_reason = OB_RR_BUSY;
                return;
            }
            wait_poll(st, out);
        } else if (rc == 1) {
            if (query_call(st, out, V_DRIFTS, OB_SVC_CLOUDFORMATION,
                           "DescribeStackResourceDrifts") == 0) {
                q(out, "StackName", st->stack_name);
                q(out, "StackResourceDriftStatusFilters.member.1", "MODIFIED");
                q(out, "StackResourceDriftStatusFilters.member.2", "DELETED");
            }
        } else {
            next_check(st, out, V_DRIFTS);
        }
        return;
    case V_DRIFTS:
        on_drifts(st, res);
        next_check(st, out, V_DRIFTS);
        return;
    case V_ASSUME:
        if (res->err == OB_OK)
            next_check(st, out, V_ASSUME);
        else if (is_aws(res, "AccessDenied")) {
            find(st, OB_DRIFT_ROLE_UNASSUMABLE, st->msg.role_arn,
                 "STS AssumeRole with the account's ExternalId was denied: %.300s",
                 res->aws.message);
            next_check(st, out, V_ASSUME);
        } else
            fail_call(st, res, out, "AssumeRole");
        return;
    }
}

static ob_err_t verify_parse(void *p, void *ctx, const ob_config_t *cfg, const char *payload,
                             size_t len, ob_job_plan_t *plan, ob_step_t *fail)
{
    verify_st_t *st = p;
    st->ctx = ctx;
    ob_drift_init(&st->drift);
    ob_msg_error_t me;
    memset(&me, 0, sizeof(me));
    if (ob_verify_parse(payload, len, &st->msg, &me) != OB_OK) {
        ob_step_fail(fail, ob_dlq_class_for(&me), me.code, "%s", me.message);
        snprintf(fail->field, sizeof(fail->field), "%s", me.field);
        return OB_ERR_PARSE;
    }
    const ob_request_t *r = &st->msg.request;
    snprintf(plan->account_id, sizeof(plan->account_id), "%s", st->msg.account_id);
    snprintf(plan->request_id, sizeof(plan->request_id), "%s", st->msg.request_id);
    snprintf(plan->role_arn, sizeof(plan->role_arn), "%s", r->role_arn);
    snprintf(plan->external_id, sizeof(plan->external_id), "%s", r->external_id);
    snprintf(plan->region, sizeof(plan->region), "%s", r->region);
    plan->mode = "verify";
    snprintf(st->stack_name, sizeof(st->stack_name), "%s",
             cfg && cfg->stack_name_prefix ? cfg->stack_name_prefix : "");
    st->poll_ms = cfg && cfg->stack_poll_ms > 0 ? cfg->stack_poll_ms : 5000;
    return OB_OK;
}

/* The record must still hold the connection this verification is about. */
static void verify_prior(void *p, const char *(*get)(const void *ctx, const char *field),
                         const void *ctx)
{
    verify_st_t *st = p;
    st->stale = strcmp(get(ctx, OB_ST_STATUS), OB_ST_STATUS_CONNECTED) != 0 ||
                strcmp(get(ctx, OB_ST_IDEMPOTENCY_KEY), st->msg.connection_key) != 0;
}

static ob_err_t verify_reencode(void *p, char **json, size_t *len)
{
    ob_msg_error_t me;
    return ob_verify_to_json(&((const verify_st_t *)p)->msg, json, len, &me);
}

static void verify_clear(void *p)
{
    verify_st_t *st = p;
    ob_verify_clear(&st->msg);
    ob_drift_clear(&st->drift);
    free(st->cur_token);
    free(st->repair);
    st->cur_token = st->repair = NULL;
    memset(st->external_id, 0, sizeof(st->external_id));
}

static void *verify_ctx_new(void)
{
    return ob_calloc(1, sizeof(verify_ctx_t));
}

static void verify_ctx_free(void *ctx)
{
    free(ctx);
}

static void verify_metrics(const void *ctx, ob_metrics_t *m)
{
    const verify_ctx_t *c = ctx;
    if (!c)
        return;
    ob_metrics_family(m, "onboard_verifications_total", "counter",
                      "Accounts verified, by result (in_sync, drifted).");
    const char *l_in[] = {"result", "in_sync", NULL}, *l_dr[] = {"result", "drifted", NULL};
    ob_metrics_sample(m, "onboard_verifications_total", l_in, (double)c->in_sync);
    ob_metrics_sample(m, "onboard_verifications_total", l_dr, (double)c->drifted);
    ob_metrics_family(m, "onboard_drift_findings_total", "counter",
                      "Drift found by verification, by kind.");
    for (unsigned k = 0; k < KINDS; k++) {
        const char *l[] = {"kind", ob_drift_name(1u << k), NULL};
        ob_metrics_sample(m, "onboard_drift_findings_total", l, (double)c->findings[k]);
    }
    ob_metrics_family(m, "onboard_drift_repairs_total", "counter",
                      "Repairs sent for drift found, by kind.");
    for (unsigned k = 0; k < KINDS; k++) {
        const char *l[] = {"kind", ob_drift_name(1u << k), NULL};
        ob_metrics_sample(m, "onboard_drift_repairs_total", l, (double)c->repairs[k]);
    }
}

const ob_stage_ops_t ob_stage_verify = {
    .name = "verify",
    .stage = OB_STAGE_CONNECT,
    .input = "verify",
    .outputs = "drift requests",
    .side = 1,
    .state_size = sizeof(verify_st_t),
    .ctx_new = verify_ctx_new,
    .ctx_free = verify_ctx_free,
    .metrics = verify_metrics,
    .parse = verify_parse,
    .step = verify_step,
    .reencode = verify_reencode,
    .clear = verify_clear,
    .prior = verify_prior,
};
