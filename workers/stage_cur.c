/*
 * The cur stage, the second for new accounts: make the account's Cost and
 * Usage Report exist exactly as the request's settings say.
 *
 * Input: onboard.stage/1 from the cur topic, stage "cur" (invalid hand-offs
 * become dead letters with the codec's reason; the codec has already checked
 * the AWS combination rules and filled the seed's defaults). In the account's
 * own identity, always in us-east-1 (CUR lives only there; in the China
 * partition only in cn-northwest-1; GovCloud has none: a permanent failure):
 *   DescribeReportDefinitions (MaxResults 5, following NextToken) until the
 *   report is found by name or the pages end;
 *   absent -> PutReportDefinition; present and identical -> nothing to do;
 *   present but different -> ModifyReportDefinition with the full definition
 *   (the existing BillingViewArn is kept: it is not a setting we manage);
 *   then every report the fleet made in the account under another name (the
 *   account's record lists them: an earlier request's) is deleted, so that
 *   billing data is never delivered twice (a report another request renamed
 *   or moved); reports the fleet did not make are never touched;
 *   -> hand-off to the iam topic with the report result.
 * Offboarding (mode offboard, onboard.stage/2): the same describe, then every
 * report the fleet made in the account (the record's report and reports)
 * that delivers into a bucket the fleet made (the record's buckets) is
 * deleted; a report of that name delivering elsewhere is the account's own
 * and kept. -> hand-off to the iam topic with results.removed.reports: the
 * fleet's reports that are gone now (deleted here or by an earlier attempt).
 * Races with another attempt (DuplicateReportNameException on Put, a report
 * deleted before Modify) start the describe again, a few times at most.
 * ReportLimitReachedException and ValidationException are permanent, with a
 * reason an operator can act on (AWS sends an empty message for combination
 * errors: then the reason lists the settings sent). Throttling and 5xx that
 * outlast the HTTP retries are retries-exhausted.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"
#include "ob_awsproto.h"
#include "ob_state.h"
#include "stages.h"

#define CUR_PAGE_SIZE        5  /* DescribeReportDefinitions: MaxResults is exactly 5 */
#define CUR_MAX_PAGES        20 /* an account holds at most 5 reports: more pages is a bad reply */
#define CUR_MAX_RACES        3  /* describe rounds restarted after losing a race */
#define CUR_TOKEN_MAX        4096
#define CUR_BILLING_VIEW_LEN 256

typedef enum ccall_e { C_DESCRIBE = 0, C_PUT, C_MODIFY, C_DELETE } ccall_t;

#define REPORTS_KEPT 20 /* report names the account's record lists */

typedef struct cur_st_s {
    ob_stage_msg_t msg;
    const char *cur_region;                  /* where the partition's CUR lives */
    ccall_t call;                            /* the call whose reply comes next */
    char *token;                             /* NextToken of the next page (NULL: first) */
    int pages;                               /* pages read in this describe round */
    int races;                               /* describe rounds restarted after a race */
    char billing_view[CUR_BILLING_VIEW_LEN]; /* the existing report's BillingViewArn */
    char changes[512];                       /* what differed from the existing report */
    char others[512];                        /* names of the account's other reports */
    int nothers;
    const char *outcome; /* "created", "modified", "unchanged" */
    char started_at[OB_TIME_LEN];
    char *retire;  /* reports the fleet made here under other names, still to delete
                    * (malloc'd list; NULL: none) */
    char *retired; /* those deleted, for the record (malloc'd list) */
    char deleting[OB_REPORT_NAME_LEN];
    /* Offboarding: the fleet's reports and buckets in the account (the
     * record's lists), and the reports of those names found delivering
     * elsewhere (the account's own: kept). malloc'd lists, NULL: none. */
    char *fleet_reports, *fleet_buckets, *not_ours;
    int guessed; /* the record listed nothing: those are the defaults */
} cur_st_t;

static int offboarding(const cur_st_t *st)
{
    return st->msg.request.mode == OB_MODE_OFFBOARD;
}

/* ---- steps ---- */

static void cur_call(cur_st_t *st, ob_step_t *out, ccall_t call, const char *op, json_t *body)
{
    memset(out, 0, sizeof(*out));
    char err[256];
    if (!body) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "out_of_memory", "%s: cannot build the request", op);
        return;
    }
    ob_err_t e = ob_json11_init_obj(&out->req, OB_SVC_CUR, op, body, err, sizeof(err));
    json_decref(body);
    if (e != OB_OK) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "request_error", "%s: %s", op, err);
        return;
    }
    out->kind = OB_STEP_CALL;
    snprintf(out->region, sizeof(out->region), "%s", st->cur_region);
    st->call = call;
}

static void describe_call(cur_st_t *st, ob_step_t *out)
{
    json_t *body = json_pack("{s:i}", "MaxResults", CUR_PAGE_SIZE);
    if (body && st->token)
        json_object_set_new(body, "NextToken", json_string(st->token));
    cur_call(st, out, C_DESCRIBE, "DescribeReportDefinitions", body);
}

/* A new describe round from the first page. */
static void describe_from_start(cur_st_t *st, ob_step_t *out)
{
    free(st->token);
    st->token = NULL;
    st->pages = 0;
    st->others[0] = '\0';
    st->nothers = 0;
    st->billing_view[0] = '\0';
    describe_call(st, out);
}

static json_t *tags_json(const ob_request_t *r)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < r->ntags; i++)
        json_array_append_new(
            a, json_pack("{s:s, s:s}", "Key", r->tags[i].key, "Value", r->tags[i].value));
    return a;
}

static void put_call(cur_st_t *st, ob_step_t *out)
{
    json_t *body =
        json_pack("{s:o}", "ReportDefinition",
                  ob_cur_definition(&st->msg.request, st->msg.bucket.name, st->msg.bucket.region));
    if (body && st->msg.request.ntags)
        json_object_set_new(body, "Tags", tags_json(&st->msg.request));
    cur_call(st, out, C_PUT, "PutReportDefinition", body);
}

static void modify_call(cur_st_t *st, ob_step_t *out)
{
    json_t *def = ob_cur_definition(&st->msg.request, st->msg.bucket.name, st->msg.bucket.region);
    if (def && st->billing_view[0])
        json_object_set_new(def, "BillingViewArn", json_string(st->billing_view));
    json_t *body =
        json_pack("{s:s, s:o}", "ReportName", st->msg.request.report.name, "ReportDefinition", def);
    cur_call(st, out, C_MODIFY, "ModifyReportDefinition", body);
}

/* The hand-off to the iam stage. */
static void hand_off(cur_st_t *st, const char *outcome, ob_step_t *out);
static void offboard_hand_off(cur_st_t *st, ob_step_t *out);
static int is_aws(const ob_aws_result_t *res, const char *code);

/* The report is in place: delete the next retired one, or hand off. */
static void retire_next(cur_st_t *st, const char *outcome, ob_step_t *out)
{
    st->outcome = outcome;
    const char *list = st->retire ? st->retire : "";
    const char *comma = strchr(list, ',');
    size_t n = comma ? (size_t)(comma - list) : strlen(list);
    if (!n || n >= sizeof(st->deleting)) {
        if (offboarding(st))
            offboard_hand_off(st, out);
        else
            hand_off(st, outcome, out);
        return;
    }
    memcpy(st->deleting, list, n);
    st->deleting[n] = '\0';
    char *rest = ob_list_without(list, st->deleting);
    free(st->retire);
    st->retire = rest;
    json_t *body = json_pack("{s:s}", "ReportName", st->deleting);
    cur_call(st, out, C_DELETE, "DeleteReportDefinition", body);
}

static void on_delete(cur_st_t *st, const ob_aws_result_t *res, ob_step_t *out)
{
    if (res->err == OB_OK) {
        char *more = ob_list_with(st->retired ? st->retired : "", st->deleting, REPORTS_KEPT);
        free(st->retired);
        st->retired = more;
    } else if (!(is_aws(res, "ValidationException") &&
                 (strstr(res->aws.message, "doesn't exist") ||
                  strstr(res->aws.message, "does not exist")))) {
        /* Gone already is as good as deleted; anything else is a failure of
         * this stage (retried like any call): the old report would keep
         * delivering. */
        ob_step_fail_aws(out, res);
        return;
    }
    retire_next(st, st->outcome, out);
}

/* Offboarding: the fleet's reports are gone. */
static void offboard_hand_off(cur_st_t *st, ob_step_t *out)
{
    ob_stage_msg_t m;
    ob_stage_msg_init(&m);
    if (ob_request_copy(&m.request, &st->msg.request) != OB_OK) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "out_of_memory", "cannot build the hand-off");
        return;
    }
    m.stage = OB_STAGE_IAM;
    m.has_removed = 1;
    /* Every report the record names but those found to be the account's own
     * (gone now, whether deleted here or by an earlier attempt); without a
     * record, those deleted here. */
    char *gone = ob_strdup(st->guessed         ? (st->retired ? st->retired : "")
                           : st->fleet_reports ? st->fleet_reports
                                               : "");
    for (const char *p = st->not_ours ? st->not_ours : ""; *p && gone;) {
        char name[OB_REPORT_NAME_LEN];
        size_t n = strcspn(p, ",");
        snprintf(name, sizeof name, "%.*s", (int)n, p);
        char *less = ob_list_without(gone, name);
        free(gone);
        gone = less;
        p += n + (p[n] == ',');
    }
    m.removed_reports = ob_request_str(&m.request, gone ? gone : "");
    free(gone);
    memcpy(m.trace, st->msg.trace, sizeof(m.trace));
    if (ob_stage_hand_on(&m, OB_STAGE_CUR, st->started_at, out) != 0)
        return;
    st->outcome = "removed";
    /* The record forgets the reports that are gone (the account's own stay
     * out of it). */
    out->state[0] = OB_ST_REPORT;
    out->state[1] = "";
    out->state[2] = OB_ST_REPORTS;
    out->state[3] = "";
    out->state[4] = OB_ST_REPORT_OUTCOME;
    out->state[5] = st->outcome;
    out->state[6] = OB_ST_RETIRED_REPORTS;
    out->state[7] = st->retired ? st->retired : "";
}

static void hand_off(cur_st_t *st, const char *outcome, ob_step_t *out)
{
    ob_stage_msg_t m;
    ob_stage_msg_init(&m);
    if (ob_request_copy(&m.request, &st->msg.request) != OB_OK) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "out_of_memory", "cannot build the hand-off");
        return;
    }
    m.stage = OB_STAGE_IAM;
    m.has_bucket = 1;
    m.bucket = st->msg.bucket;
    ob_stage_fill_report(&m);
    memcpy(m.trace, st->msg.trace, sizeof(m.trace));
    if (ob_stage_hand_on(&m, OB_STAGE_CUR, st->started_at, out) != 0)
        return;
    st->outcome = outcome;
    out->state[0] = OB_ST_REPORT;
    out->state[1] = st->msg.request.report.name;
    out->state[2] = OB_ST_REPORT_OUTCOME;
    out->state[3] = st->outcome;
    out->state[4] = OB_ST_REPORT_CHANGES;
    out->state[5] = st->changes;
    out->state[6] = OB_ST_REPORTS;
    out->state[7] = st->msg.request.report.name;
    out->state[8] = OB_ST_BUCKET; /* the bucket stage's, again (a lost write made good) */
    out->state[9] = st->msg.bucket.name;
    if (st->retired) {
        out->state[10] = OB_ST_RETIRED_REPORTS;
        out->state[11] = st->retired;
    }
}

/* A FAIL step that keeps AWS's request id and status; the reason is cut to fit. */
static void fail_from(ob_step_t *out, const ob_aws_result_t *res, ob_dlq_class_t cls,
                      const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void fail_from(ob_step_t *out, const ob_aws_result_t *res, ob_dlq_class_t cls,
                      const char *code, const char *field, const char *fmt, ...)
{
    char msg[sizeof(out->message)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ob_step_fail(out, cls, code, "%s", msg);
    snprintf(out->field, sizeof(out->field), "%s", field);
    snprintf(out->aws_request_id, sizeof(out->aws_request_id), "%s", res->aws.request_id);
    out->http_status = (int)res->status;
}

static int is_aws(const ob_aws_result_t *res, const char *code)
{
    return res->err == OB_ERR_AWS && !strcmp(res->aws.code, code);
}

/* Another attempt changed the report between our describe and our write:
 * look again, a few times at most. */
static void race(cur_st_t *st, const ob_aws_result_t *res, ob_step_t *out, const char *what)
{
    if (++st->races > CUR_MAX_RACES) {
        fail_from(out, res, OB_DLQ_RETRIES_EXHAUSTED, res->aws.code, "/report/name",
                  "report %s kept changing under this attempt (%s, %d times): another attempt "
                  "is working on the same account; replay later",
                  st->msg.request.report.name, what, st->races);
        out->retry_reason = OB_RR_BUSY;
        return;
    }
    describe_from_start(st, out);
}

static void validation_failed(cur_st_t *st, const ob_aws_result_t *res, ob_step_t *out,
                              const char *op)
{
    const ob_report_settings_t *s = &st->msg.request.report;
    if (strstr(res->aws.message, "bucket permission")) {
        fail_from(out, res, OB_DLQ_PERMANENT, "ValidationException", "/bucket/name",
                  "%s: %s. The bucket %s must be this account's, in %s, with a policy letting "
                  "billingreports.amazonaws.com call s3:GetBucketAcl, s3:GetBucketPolicy and "
                  "s3:PutObject (the bucket stage writes it): replay from the bucket stage",
                  op, res->aws.message, st->msg.bucket.name, st->msg.bucket.region);
        return;
    }
    if (res->aws.message[0]) {
        fail_from(out, res, OB_DLQ_PERMANENT, "ValidationException", "/report",
                  "%s refused report %s: %s", op, s->name, res->aws.message);
        return;
    }
    char elems[96], arts[96];
    ob_cur_set_text(elems, sizeof(elems), s->schema_elements, ob_schema_elem_name);
    ob_cur_set_text(arts, sizeof(arts), s->artifacts, ob_artifact_name);
    /* The settings first: a long name or prefix is what gets cut. */
    fail_from(out, res, OB_DLQ_PERMANENT, "ValidationException", "/report",
              "%s: AWS refused the definition with no reason (it does so for setting "
              "combinations it does not accept); sent TimeUnit %s, Format %s, Compression %s, "
              "AdditionalSchemaElements %s, AdditionalArtifacts %s, ReportVersioning %s, "
              "RefreshClosedReports %s, S3Bucket %s, S3Region %s, S3Prefix \"%s\", ReportName %s",
              op, ob_time_unit_name(s->time_unit), ob_format_name(s->format),
              ob_compression_name(s->compression), elems, arts, ob_versioning_name(s->versioning),
              s->refresh_closed_reports ? "true" : "false", st->msg.bucket.name,
              st->msg.bucket.region, s->prefix, s->name);
}

static void remember_other(cur_st_t *st, const char *name)
{
    size_t used = strlen(st->others);
    if (used + 1 < sizeof(st->others))
        snprintf(st->others + used, sizeof(st->others) - used, "%s%s", used ? ", " : "", name);
    st->nothers++;
}

static void bad_reply(ob_step_t *out, const ob_aws_result_t *res, const char *why)
{
    fail_from(out, res, OB_DLQ_RETRIES_EXHAUSTED, "bad_reply", "", "DescribeReportDefinitions: %s",
              why);
}

/* Offboarding: a report the fleet made (by name, delivering into a bucket
 * it made) is to delete; of its name but elsewhere, the account's own. */
static void offboard_sort(cur_st_t *st, const json_t *d)
{
    const char *name = json_string_value(json_object_get(d, "ReportName"));
    const char *bucket = json_string_value(json_object_get(d, "S3Bucket"));
    if (!name || !st->fleet_reports || !ob_list_has(st->fleet_reports, name))
        return;
    char **to = bucket && st->fleet_buckets && ob_list_has(st->fleet_buckets, bucket)
                    ? &st->retire
                    : &st->not_ours;
    char *more = ob_list_with(*to ? *to : "", name, REPORTS_KEPT);
    if (more) {
        free(*to);
        *to = more;
    }
}

static void on_describe(cur_st_t *st, const ob_aws_result_t *res, ob_step_t *out)
{
    if (res->err != OB_OK) {
        ob_step_fail_aws(out, res);
        return;
    }
    json_t *reply = NULL;
    char err[256];
    if (ob_aws_json_parse(res->body.data, res->body.len, &reply, err, sizeof(err)) != OB_OK) {
        char why[320];
        snprintf(why, sizeof(why), "the reply is not a JSON object: %s", err);
        bad_reply(out, res, why);
        return;
    }
    st->pages++;
    const json_t *defs = json_object_get(reply, "ReportDefinitions");
    const json_t *token = json_object_get(reply, "NextToken");
    if ((defs && !json_is_null(defs) && !json_is_array(defs)) ||
        (token && !json_is_null(token) && !json_is_string(token))) {
        json_decref(reply);
        bad_reply(out, res, "ReportDefinitions is not a list or NextToken not a string");
        return;
    }
    const char *want = st->msg.request.report.name;
    const json_t *found = NULL;
    size_t i;
    const json_t *d;
    json_array_foreach(defs, i, d)
    {
        if (offboarding(st)) {
            offboard_sort(st, d);
            continue;
        }
        const char *name = json_string_value(json_object_get(d, "ReportName"));
        if (!name)
            continue;
        if (!strcmp(name, want)) {
            found = d;
            break;
        }
        remember_other(st, name);
    }
    if (found) {
        json_t *ours =
            ob_cur_definition(&st->msg.request, st->msg.bucket.name, st->msg.bucket.region);
        const char *view = json_string_value(json_object_get(found, "BillingViewArn"));
        snprintf(st->billing_view, sizeof(st->billing_view), "%s", view ? view : "");
        int n = ours ? ob_cur_differences(found, ours, st->changes, sizeof(st->changes)) : -1;
        json_decref(ours);
        json_decref(reply);
        if (n < 0)
            ob_step_fail(out, OB_DLQ_PERMANENT, "out_of_memory", "cannot build the definition");
        else if (n == 0)
            retire_next(st, "unchanged", out);
        else
            modify_call(st, out);
        return;
    }
    const char *next = json_string_value(token);
    if (next && *next) {
        if (st->pages >= CUR_MAX_PAGES || strlen(next) > CUR_TOKEN_MAX ||
            (st->token && !strcmp(st->token, next))) {
            json_decref(reply);
            bad_reply(out, res,
                      "the pages do not end (more pages than an account can fill, or "
                      "the same NextToken again)");
            return;
        }
        free(st->token);
        st->token = ob_strdup(next);
        json_decref(reply);
        if (!st->token) {
            ob_step_fail(out, OB_DLQ_PERMANENT, "out_of_memory", "cannot keep the NextToken");
            return;
        }
        describe_call(st, out);
        return;
    }
    json_decref(reply);
    if (offboarding(st))
        retire_next(st, "removed", out);
    else
        put_call(st, out);
}

static void on_put(cur_st_t *st, const ob_aws_result_t *res, ob_step_t *out)
{
    if (res->err == OB_OK) {
        st->changes[0] = '\0';
        retire_next(st, "created", out);
    } else if (is_aws(res, "DuplicateReportNameException")) {
        race(st, res, out, "created by someone else after our describe");
    } else if (is_aws(res, "ReportLimitReachedException")) {
        fail_from(out, res, OB_DLQ_PERMANENT, "ReportLimitReachedException", "/report/name",
                  "account %s already has 5 Cost and Usage Reports, the AWS limit, and none is "
                  "named %s (found: %s); delete one it no longer needs or name an existing one "
                  "in the request (report.name), then replay",
                  st->msg.request.account_id, st->msg.request.report.name,
                  st->nothers ? st->others : "none listed");
    } else if (is_aws(res, "ValidationException")) {
        validation_failed(st, res, out, "PutReportDefinition");
    } else {
        ob_step_fail_aws(out, res);
    }
}

static void on_modify(cur_st_t *st, const ob_aws_result_t *res, ob_step_t *out)
{
    if (res->err == OB_OK) {
        retire_next(st, "modified", out);
    } else if (is_aws(res, "ValidationException") && (strstr(res->aws.message, "doesn't exist") ||
                                                      strstr(res->aws.message, "does not exist"))) {
        race(st, res, out, "deleted by someone else after our describe");
    } else if (is_aws(res, "ValidationException")) {
        validation_failed(st, res, out, "ModifyReportDefinition");
    } else {
        ob_step_fail_aws(out, res);
    }
}

static void cur_step(void *p, const ob_aws_result_t *res, ob_step_t *out)
{
    cur_st_t *st = p;
    if (!res) {
        describe_from_start(st, out);
        return;
    }
    switch (st->call) {
    case C_DESCRIBE:
        on_describe(st, res, out);
        break;
    case C_PUT:
        on_put(st, res, out);
        break;
    case C_MODIFY:
        on_modify(st, res, out);
        break;
    case C_DELETE:
        on_delete(st, res, out);
        break;
    }
}

static ob_err_t cur_parse(void *p, void *ctx, const ob_config_t *cfg, const char *payload,
                          size_t len, ob_job_plan_t *plan, ob_step_t *fail)
{
    cur_st_t *st = p;
    (void)cfg;
    ob_msg_error_t me;
    memset(&me, 0, sizeof(me));
    if (ob_stage_parse(payload, len, &st->msg, &me) != OB_OK) {
        ob_step_fail(fail, ob_dlq_class_for(&me), me.code, "%s", me.message);
        snprintf(fail->field, sizeof(fail->field), "%s", me.field);
        return OB_ERR_PARSE;
    }
    if (st->msg.stage != OB_STAGE_CUR) {
        ob_step_fail(fail, OB_DLQ_INVALID_INPUT, "enum",
                     "/stage: the cur worker takes hand-offs for stage cur, got %s (produced to "
                     "the wrong topic?)",
                     ob_stage_name(st->msg.stage));
        snprintf(fail->field, sizeof(fail->field), "/stage");
        return OB_ERR_PARSE;
    }
    const ob_request_t *r = &st->msg.request;
    /* The codec has checked that the role's partition is the region's. */
    st->cur_region = ob_cur_region(r->role_arn);
    if (!st->cur_region[0]) {
        ob_step_fail(
            fail, OB_DLQ_PERMANENT, "unsupported_partition",
            "/request/region: Cost and Usage Reports are not offered in AWS GovCloud (US); a "
            "GovCloud account's costs are reported in its associated standard account, "
            "which is the one to onboard");
        snprintf(fail->field, sizeof(fail->field), "/request/region");
        return OB_ERR_PARSE;
    }
    snprintf(plan->account_id, sizeof(plan->account_id), "%s", r->account_id);
    snprintf(plan->request_id, sizeof(plan->request_id), "%s", r->request_id);
    ob_request_desired(r, plan->desired);
    plan->offboard = r->mode == OB_MODE_OFFBOARD;
    plan->repair = r->repair;
    plan->mode = ob_mode_name(r->mode);
    snprintf(plan->role_arn, sizeof(plan->role_arn), "%s", r->role_arn);
    snprintf(plan->external_id, sizeof(plan->external_id), "%s", r->external_id);
    snprintf(plan->region, sizeof(plan->region), "%s", r->region);
    ob_msg_now(st->started_at);
    return OB_OK;
}

static void cur_clear(void *p)
{
    cur_st_t *st = p;
    ob_stage_msg_clear(&st->msg);
    free(st->token);
    free(st->retire);
    free(st->retired);
    free(st->fleet_reports);
    free(st->fleet_buckets);
    free(st->not_ours);
    st->token = st->retire = st->retired = NULL;
    st->fleet_reports = st->fleet_buckets = st->not_ours = NULL;
    st->guessed = 0;
}

/* The reports earlier requests had the fleet make in the account, under
 * other names than this request's: to retire once this one is in place. */
static void cur_prior(void *p, const char *(*get)(const void *ctx, const char *field),
                      const void *ctx)
{
    cur_st_t *st = p;
    free(st->retire);
    char *all = ob_list_with(get(ctx, OB_ST_REPORTS), get(ctx, OB_ST_REPORT), REPORTS_KEPT);
    if (offboarding(st)) {
        /* What to delete is decided from the describe (offboard_sort). */
        st->retire = NULL;
        free(st->fleet_reports);
        free(st->fleet_buckets);
        char *b = ob_list_with(get(ctx, OB_ST_BUCKETS), get(ctx, OB_ST_BUCKET), 100);
        st->fleet_buckets = b ? ob_list_with(b, get(ctx, OB_ST_OLD_BUCKETS), 200) : NULL;
        free(b);
        if (all && !all[0] && st->fleet_buckets && !st->fleet_buckets[0]) {
            /* The record lists nothing (Redis lost it): what the fleet
             * makes by default, the report of the default name delivering
             * into the default bucket of the request's region. */
            char bucket[OB_BUCKET_LEN];
            ob_request_default_bucket(st->msg.request.account_id, st->msg.request.region, bucket);
            free(all);
            free(st->fleet_buckets);
            all = ob_strdup(ob_request_default_report_name());
            st->fleet_buckets = ob_strdup(bucket);
            st->guessed = 1;
        }
        st->fleet_reports = all;
        return;
    }
    st->retire = all ? ob_list_without(all, st->msg.request.report.name) : NULL;
    free(all);
}

static ob_err_t cur_reencode(void *p, char **json, size_t *len)
{
    ob_msg_error_t me;
    return ob_stage_to_json(&((const cur_st_t *)p)->msg, json, len, &me);
}

const ob_stage_ops_t ob_stage_cur = {
    .name = "cur",
    .stage = OB_STAGE_CUR,
    .input = "cur",
    .outputs = "iam",
    .pass_session = 1,
    .state_size = sizeof(cur_st_t),
    .parse = cur_parse,
    .step = cur_step,
    .reencode = cur_reencode,
    .clear = cur_clear,
    .prior = cur_prior,
};
