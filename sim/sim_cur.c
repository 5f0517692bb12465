/*
 * sim_cur: the Cost and Usage Report API of the simulator (JSON 1.1,
 * X-Amz-Target AWSOrigamiServiceGatewayService.<Op>, 2017-01-06):
 * PutReportDefinition, DescribeReportDefinitions, ModifyReportDefinition and
 * DeleteReportDefinition, with AWS's validation in AWS's order:
 *
 *  1. Shapes: a member of the wrong JSON type is a SerializationException.
 *  2. Constraints of the service model (required members, enums, lengths,
 *     patterns, MaxResults fixed at 5), all collected into one
 *     ValidationException worded the way AWS's JSON services word it:
 *     "1 validation error detected: Value 'x' at 'reportDefinition.reportName'
 *     failed to satisfy constraint: Member must satisfy regular expression
 *     pattern: [0-9A-Za-z!\-_.*\'()]+" (several: "N validation errors
 *     detected: A; B").
 *  3. The combination rules of the console, for which AWS answers a
 *     ValidationException with an empty message: ATHENA must be the only
 *     artifact and needs Parquet, OVERWRITE_REPORT and a non-empty prefix;
 *     REDSHIFT/QUICKSIGHT need textORcsv; Parquet format if and only if
 *     Parquet compression.
 *  4. DuplicateReportNameException, ReportLimitReachedException (five per
 *     account), with the messages of the API reference.
 *  5. The bucket: it must exist, belong to the caller's account, be in
 *     S3Region, and carry a policy that lets billingreports.amazonaws.com do
 *     s3:GetBucketAcl and s3:GetBucketPolicy on the bucket and s3:PutObject
 *     under the prefix. Otherwise: ValidationException "Failed to verify
 *     customer bucket permission. accountId= A, bucket name: B, bucket
 *     region: R" (the text AWS returns, e.g. terraform-provider-aws#28912).
 *
 * The policy evaluation covers Allow/Deny (Deny wins), Principal "*",
 * {"AWS": "*"} and {"Service": ...} (and NotPrincipal), Action/NotAction and
 * Resource/NotResource with wildcards, and the condition operators String*,
 * Arn* (with IfExists), Bool and Null on aws:SourceArn, aws:SourceAccount,
 * aws:SecureTransport. aws:SourceArn is the report's definition ARN or the
 * wildcard form (arn:aws:cur:us-east-1:ACCOUNT:definition/ then an asterisk)
 * that AWS's own documentation puts under StringEquals. Conditions on anything else make a
 * statement not apply.
 *
 * CUR lives only in us-east-1: a request signed for another region is
 * refused as AWS's JSON endpoints refuse a wrong credential scope (403
 * InvalidSignatureException "Credential should be scoped to a valid region,
 * not 'eu-west-1'. ").
 *
 * State: sim_section(sim, "reports")[account][ReportName] = the
 * ReportDefinition object as stored (known members only).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ob_alloc.h"
#include "sim.h"

#define MAX_REPORTS 5
#define PAGE_SIZE   5

static const char TARGET_PREFIX[] = "AWSOrigamiServiceGatewayService.";

static const char *const ops[] = {"PutReportDefinition", "DescribeReportDefinitions",
                                  "ModifyReportDefinition", "DeleteReportDefinition", NULL};

/* ---- the service model's constraints ---- */

typedef enum kind_e { K_STRING, K_LIST, K_BOOL } kind_t;

typedef struct member_s {
    const char *name;  /* "ReportName" */
    const char *field; /* "reportName", as AWS names it in messages */
    kind_t kind;
    int required;
    int max_len; /* 0: none */
    int (*pattern)(const char *s);
    const char *pattern_text;
    const char *const *enum_values; /* for strings, or list members */
} member_t;

static const char *const time_units[] = {"HOURLY", "DAILY", "MONTHLY", NULL};
static const char *const formats[] = {"textORcsv", "Parquet", NULL};
static const char *const compressions[] = {"ZIP", "GZIP", "Parquet", NULL};
static const char *const schema_elements[] = {"RESOURCES", "SPLIT_COST_ALLOCATION_DATA",
                                              "MANUAL_DISCOUNT_COMPATIBILITY", NULL};
static const char *const artifacts[] = {"REDSHIFT", "QUICKSIGHT", "ATHENA", NULL};
static const char *const versionings[] = {"CREATE_NEW_REPORT", "OVERWRITE_REPORT", NULL};
/* AWSRegion of the service model (botocore cur/2017-01-06). */
static const char *const regions[] = {"af-south-1",     "ap-east-1",      "ap-south-1",
                                      "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
                                      "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
                                      "ca-central-1",   "eu-central-1",   "eu-west-1",
                                      "eu-west-2",      "eu-west-3",      "eu-north-1",
                                      "eu-south-1",     "eu-south-2",     "me-central-1",
                                      "me-south-1",     "sa-east-1",      "us-east-1",
                                      "us-east-2",      "us-west-1",      "us-west-2",
                                      "cn-north-1",     "cn-northwest-1", NULL};

static int all_chars(const char *s, const char *extra, int allow_empty)
{
    if (!*s && !allow_empty)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
            return 0;
    return 1;
}

static int pat_report_name(const char *s)
{
    return all_chars(s, "!-_.*'()", 0);
}

static int pat_s3_prefix(const char *s)
{
    return all_chars(s, "!-_.*'()/", 1);
}

static int pat_s3_bucket(const char *s)
{
    return all_chars(s, "_.-", 0);
}

static int pat_generic_string(const char *s)
{
    return all_chars(s, "_.-=", 1);
}

/* (arn:aws(-cn)?:billing::[0-9]{12}:billingview/)?[a-zA-Z0-9_\+=\.\-@].{1,30} */
static int pat_billing_view_tail(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > 31 || !(isalnum((unsigned char)s[0]) || strchr("_+=.-@", s[0])))
        return 0;
    return strchr(s, '\n') == NULL && strchr(s, '\r') == NULL;
}

static int pat_billing_view(const char *s)
{
    if (pat_billing_view_tail(s))
        return 1;
    const char *p = NULL;
    if (!strncmp(s, "arn:aws:billing::", 17))
        p = s + 17;
    else if (!strncmp(s, "arn:aws-cn:billing::", 20))
        p = s + 20;
    if (!p)
        return 0;
    for (int i = 0; i < 12; i++)
        if (!isdigit((unsigned char)p[i]))
            return 0;
    if (strncmp(p + 12, ":billingview/", 13) != 0)
        return 0;
    return pat_billing_view_tail(p + 25);
}

static const member_t report_members[] = {
    {"ReportName", "reportName", K_STRING, 1, 256, pat_report_name, "[0-9A-Za-z!\\-_.*\\'()]+",
     NULL},
    {"TimeUnit", "timeUnit", K_STRING, 1, 0, NULL, NULL, time_units},
    {"Format", "format", K_STRING, 1, 0, NULL, NULL, formats},
    {"Compression", "compression", K_STRING, 1, 0, NULL, NULL, compressions},
    {"AdditionalSchemaElements", "additionalSchemaElements", K_LIST, 1, 0, NULL, NULL,
     schema_elements},
    {"S3Bucket", "s3Bucket", K_STRING, 1, 256, pat_s3_bucket, "[A-Za-z0-9_\\.\\-]+", NULL},
    {"S3Prefix", "s3Prefix", K_STRING, 1, 256, pat_s3_prefix, "[0-9A-Za-z!\\-_.*\\'()/]*", NULL},
    {"S3Region", "s3Region", K_STRING, 1, 0, NULL, NULL, regions},
    {"AdditionalArtifacts", "additionalArtifacts", K_LIST, 0, 0, NULL, NULL, artifacts},
    {"RefreshClosedReports", "refreshClosedReports", K_BOOL, 0, 0, NULL, NULL, NULL},
    {"ReportVersioning", "reportVersioning", K_STRING, 0, 0, NULL, NULL, versionings},
    {"BillingViewArn", "billingViewArn", K_STRING, 0, 128, pat_billing_view,
     "(arn:aws(-cn)?:billing::[0-9]{12}:billingview/)?[a-zA-Z0-9_\\+=\\.\\-@].{1,30}", NULL},
    {NULL, NULL, K_STRING, 0, 0, NULL, NULL, NULL},
};

static const member_t report_name_member = {
    "ReportName", "reportName", K_STRING, 1, 256, pat_report_name, "[0-9A-Za-z!\\-_.*\\'()]+",
    NULL};

/* ---- collecting validation errors ---- */

typedef struct verrs_s {
    int n;
    ob_buf_t text;
} verrs_t;

static void verr(verrs_t *v, const char *value, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void verr(verrs_t *v, const char *value, const char *path, const char *fmt, ...)
{
    char constraint[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(constraint, sizeof(constraint), fmt, ap);
    va_end(ap);
    if (v->n++)
        ob_buf_puts(&v->text, "; ");
    if (value)
        ob_buf_printf(&v->text, "Value '%s' at '%s' failed to satisfy constraint: %s", value, path,
                      constraint);
    else
        ob_buf_printf(&v->text, "Value null at '%s' failed to satisfy constraint: %s", path,
                      constraint);
}

static void enum_text(ob_buf_t *b, const char *const *values)
{
    ob_buf_puts(b, "[");
    for (int i = 0; values[i]; i++)
        ob_buf_printf(b, "%s%s", i ? ", " : "", values[i]);
    ob_buf_puts(b, "]");
}

static int in_enum(const char *s, const char *const *values)
{
    for (int i = 0; values[i]; i++)
        if (!strcmp(s, values[i]))
            return 1;
    return 0;
}

/* Length in characters (UTF-8 code points). */
static size_t char_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void check_member(verrs_t *v, const member_t *m, json_t *val, const char *prefix)
{
    char path[128];
    snprintf(path, sizeof(path), "%s%s", prefix, m->field);
    if (!val || json_is_null(val)) {
        if (m->required)
            verr(v, NULL, path, "Member must not be null");
        return;
    }
    if (m->kind == K_STRING) {
        const char *s = json_string_value(val);
        if (m->max_len && char_len(s) > (size_t)m->max_len)
            verr(v, s, path, "Member must have length less than or equal to %d", m->max_len);
        if (m->pattern && !m->pattern(s))
            verr(v, s, path, "Member must satisfy regular expression pattern: %s", m->pattern_text);
        if (m->enum_values && !in_enum(s, m->enum_values)) {
            ob_buf_t e = {0};
            enum_text(&e, m->enum_values);
            verr(v, s, path, "Member must satisfy enum value set: %s", e.data);
            ob_buf_free(&e);
        }
    } else if (m->kind == K_LIST && m->enum_values) {
        int bad = 0;
        size_t i;
        json_t *e;
        json_array_foreach(val, i, e)
        {
            bad |= !in_enum(json_string_value(e), m->enum_values);
        }
        if (bad) {
            ob_buf_t shown = {0}, set = {0};
            ob_buf_puts(&shown, "[");
            json_array_foreach(val, i, e)
            {
                ob_buf_printf(&shown, "%s%s", i ? ", " : "", json_string_value(e));
            }
            ob_buf_puts(&shown, "]");
            enum_text(&set, m->enum_values);
            verr(v, shown.data, path,
                 "Member must satisfy constraint: [Member must satisfy enum value set: %s]",
                 set.data);
            ob_buf_free(&shown);
            ob_buf_free(&set);
        }
    }
}

/* Reply the collected errors; 1 when there were any. */
static int verrs_reply(sim_call_t *c, verrs_t *v)
{
    int n = v->n;
    if (n)
        sim_error(c, 400, "ValidationException", "%d validation error%s detected: %s", n,
                  n == 1 ? "" : "s", v->text.data);
    ob_buf_free(&v->text);
    return n;
}

/* ---- shapes (JSON types) ---- */

static const char *json_kind_name(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "START_OBJECT";
    case JSON_ARRAY:
        return "START_ARRAY";
    case JSON_STRING:
        return "STRING_VALUE";
    case JSON_INTEGER:
    case JSON_REAL:
        return "NUMBER_VALUE";
    case JSON_TRUE:
        return "TRUE_VALUE";
    case JSON_FALSE:
        return "FALSE_VALUE";
    default:
        return "NULL_VALUE";
    }
}

static int shape_error(sim_call_t *c, json_t *v, const char *want)
{
    sim_error(c, 400, "SerializationException", "%s can not be converted to %s", json_kind_name(v),
              want);
    return -1;
}

/* The value of v (or of its element) that does not have the member's JSON
 * type, and *want the type; NULL when v is fine. */
static json_t *shape_mismatch(const member_t *m, json_t *v, const char **want)
{
    if (!v || json_is_null(v))
        return NULL;
    *want = m->kind == K_STRING ? "a String" : m->kind == K_BOOL ? "a Boolean" : "a List";
    if ((m->kind == K_STRING && !json_is_string(v)) || (m->kind == K_BOOL && !json_is_boolean(v)))
        return v;
    if (m->kind == K_LIST) {
        if (!json_is_array(v))
            return v;
        size_t i;
        json_t *e;
        *want = "a String";
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e))
                return e;
        }
    }
    return NULL;
}

static int check_shape(sim_call_t *c, const member_t *m, json_t *v)
{
    const char *want;
    json_t *bad = shape_mismatch(m, v, &want);
    return bad ? shape_error(c, bad, want) : 0;
}

/* Shape-check the ReportDefinition; -1 when an error was replied. */
static int check_definition_shape(sim_call_t *c, json_t *def)
{
    if (!def || json_is_null(def))
        return 0;
    if (!json_is_object(def))
        return shape_error(c, def, "a Structure");
    for (const member_t *m = report_members; m->name; m++)
        if (check_shape(c, m, json_object_get(def, m->name)) != 0)
            return -1;
    return 0;
}

static void check_definition(verrs_t *v, json_t *def)
{
    if (!def || json_is_null(def)) {
        verr(v, NULL, "reportDefinition", "Member must not be null");
        return;
    }
    for (const member_t *m = report_members; m->name; m++)
        check_member(v, m, json_object_get(def, m->name), "reportDefinition.");
}

static const char *def_str(json_t *def, const char *k)
{
    const char *s = json_string_value(json_object_get(def, k));
    return s ? s : "";
}

static int has_value(json_t *list, const char *s)
{
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        if (!strcmp(json_string_value(e), s))
            return 1;
    }
    return 0;
}

/* The console's combination rules; 0 when the definition satisfies them. */
static int combination_ok(json_t *def)
{
    json_t *arts = json_object_get(def, "AdditionalArtifacts");
    const char *format = def_str(def, "Format"), *compression = def_str(def, "Compression");
    const char *versioning = json_object_get(def, "ReportVersioning")
                                 ? def_str(def, "ReportVersioning")
                                 : "CREATE_NEW_REPORT";
    int parquet = !strcmp(format, "Parquet");
    if (has_value(arts, "ATHENA")) {
        if (json_array_size(arts) > 1 || !*def_str(def, "S3Prefix") ||
            strcmp(versioning, "OVERWRITE_REPORT") != 0 || !parquet)
            return 0;
    } else if (json_array_size(arts) > 0 && parquet) {
        return 0;
    }
    return parquet == !strcmp(compression, "Parquet");
}

/* ---- the bucket policy ---- */

typedef struct ctx_s {
    const char *account;
    const char *source_arn;
} ctx_t;

/* Case-insensitive glob with '*' and '?'. */
static int glob_match(const char *pat, const char *s)
{
    if (!*pat)
        return !*s;
    if (*pat == '*')
        return glob_match(pat + 1, s) || (*s && glob_match(pat, s + 1));
    if (!*s)
        return 0;
    if (*pat == '?' || tolower((unsigned char)*pat) == tolower((unsigned char)*s))
        return glob_match(pat + 1, s + 1);
    return 0;
}

/* i-th string of a policy value that is a string or a list (numbers and
 * booleans as text); NULL past the end. */
static const char *item(json_t *v, size_t i, char *buf, size_t n)
{
    json_t *e = json_is_array(v) ? json_array_get(v, i) : (i == 0 ? v : NULL);
    if (json_is_string(e))
        return json_string_value(e);
    if (json_is_integer(e)) {
        snprintf(buf, n, "%lld", (long long)json_integer_value(e));
        return buf;
    }
    if (json_is_boolean(e))
        return json_is_true(e) ? "true" : "false";
    return NULL;
}

static int any_glob(json_t *patterns, const char *s)
{
    char buf[32];
    const char *p;
    for (size_t i = 0; (p = item(patterns, i, buf, sizeof(buf))); i++)
        if (glob_match(p, s))
            return 1;
    return 0;
}

static int principal_is_everyone(json_t *p)
{
    if (json_is_string(p))
        return !strcmp(json_string_value(p), "*");
    json_t *aws = json_object_get(p, "AWS");
    char buf[32];
    const char *s;
    for (size_t i = 0; (s = item(aws, i, buf, sizeof(buf))); i++)
        if (!strcmp(s, "*"))
            return 1;
    return 0;
}

static int principal_matches(json_t *p)
{
    return principal_is_everyone(p) ||
           any_glob(json_object_get(p, "Service"), "billingreports.amazonaws.com");
}

static const char *context_value(const ctx_t *x, const char *key)
{
    if (!strcasecmp(key, "aws:SourceAccount"))
        return x->account;
    if (!strcasecmp(key, "aws:SourceArn"))
        return x->source_arn;
    if (!strcasecmp(key, "aws:SecureTransport"))
        return "true";
    if (!strcasecmp(key, "aws:PrincipalServiceName"))
        return "billingreports.amazonaws.com";
    return NULL;
}

/* One condition operator block; 1 when satisfied, 0 when not or unsupported. */
static int condition_holds(const char *op_in, json_t *block, const ctx_t *x)
{
    char op[64];
    snprintf(op, sizeof(op), "%s", op_in);
    int if_exists = 0;
    size_t n = strlen(op);
    if (n > 8 && !strcmp(op + n - 8, "IfExists")) {
        if_exists = 1;
        op[n - 8] = '\0';
    }
    if (!json_is_object(block))
        return 0;
    const char *key;
    json_t *vals;
    json_object_foreach(block, key, vals)
    {
        const char *have = context_value(x, key);
        char buf[32];
        if (!strcmp(op, "Null")) {
            const char *want = item(vals, 0, buf, sizeof(buf));
            if (!want || (!strcasecmp(want, "true")) != (have == NULL))
                return 0;
            continue;
        }
        int negated = !strncmp(op, "StringNot", 9) || !strncmp(op, "ArnNot", 6);
        if (!have) {
            if (if_exists || negated)
                continue;
            return 0;
        }
        int like =
            !strcmp(op, "StringLike") || !strcmp(op, "StringNotLike") || !strncmp(op, "Arn", 3);
        int icase = !strcmp(op, "StringEqualsIgnoreCase") ||
                    !strcmp(op, "StringNotEqualsIgnoreCase") || !strcmp(op, "Bool");
        int known = like || icase || !strcmp(op, "StringEquals") || !strcmp(op, "StringNotEquals");
        if (!known)
            return 0;
        int hit = 0;
        const char *w;
        for (size_t i = 0; (w = item(vals, i, buf, sizeof(buf))); i++) {
            if (like)
                hit |= glob_match(w, have);
            else if (icase)
                hit |= !strcasecmp(w, have);
            else
                hit |= !strcmp(w, have);
        }
        if (hit == negated)
            return 0;
    }
    return 1;
}

static int statement_applies(json_t *s, const char *action, const char *resource, const ctx_t *x)
{
    json_t *p = json_object_get(s, "Principal"), *np = json_object_get(s, "NotPrincipal");
    if (p ? !principal_matches(p) : (!np || principal_matches(np)))
        return 0;
    json_t *a = json_object_get(s, "Action"), *na = json_object_get(s, "NotAction");
    if (a ? !any_glob(a, action) : (!na || any_glob(na, action)))
        return 0;
    json_t *r = json_object_get(s, "Resource"), *nr = json_object_get(s, "NotResource");
    if (r ? !any_glob(r, resource) : (!nr || any_glob(nr, resource)))
        return 0;
    json_t *cond = json_object_get(s, "Condition");
    const char *op;
    json_t *block;
    json_object_foreach(cond, op, block)
    {
        if (!condition_holds(op, block, x))
            return 0;
    }
    return 1;
}

static int policy_allows(json_t *policy, const char *action, const char *resource, const ctx_t *x)
{
    json_t *st = json_object_get(policy, "Statement");
    size_t n = json_is_array(st) ? json_array_size(st) : (json_is_object(st) ? 1 : 0);
    int allowed = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_array(st) ? json_array_get(st, i) : st;
        if (!json_is_object(s) || !statement_applies(s, action, resource, x))
            continue;
        const char *effect = json_string_value(json_object_get(s, "Effect"));
        if (effect && !strcmp(effect, "Deny"))
            return 0;
        if (effect && !strcmp(effect, "Allow"))
            allowed = 1;
    }
    return allowed;
}

/* Does the bucket let billingreports.amazonaws.com deliver this report? */
static int bucket_ok(sim_call_t *c, json_t *def)
{
    const char *name = def_str(def, "S3Bucket");
    json_t *b = json_object_get(sim_section(c->sim, "buckets"), name);
    const char *owner = json_string_value(json_object_get(b, "owner"));
    const char *region = json_string_value(json_object_get(b, "region"));
    const char *text = json_string_value(json_object_get(b, "policy"));
    if (!b || !owner || strcmp(owner, c->account) != 0 ||
        strcmp(region ? region : "us-east-1", def_str(def, "S3Region")) != 0 || !text)
        return 0;
    json_error_t je;
    json_t *policy = json_loads(text, 0, &je);
    if (!json_is_object(policy)) {
        json_decref(policy);
        return 0;
    }
    const char *prefix = def_str(def, "S3Prefix"), *report = def_str(def, "ReportName");
    ob_buf_t bucket_arn = {0}, object_arn = {0}, arn_wild = {0}, arn_report = {0};
    ob_buf_printf(&bucket_arn, "arn:aws:s3:::%s", name);
    ob_buf_printf(&object_arn, "arn:aws:s3:::%s/%s%s%s/20260101-20260201/%s-Manifest.json", name,
                  prefix, *prefix ? "/" : "", report, report);
    ob_buf_printf(&arn_wild, "arn:aws:cur:us-east-1:%s:definition/*", c->account);
    ob_buf_printf(&arn_report, "arn:aws:cur:us-east-1:%s:definition/%s", c->account, report);
    int ok = 0;
    for (int i = 0; i < 2 && !ok; i++) {
        ctx_t x = {c->account, i == 0 ? arn_wild.data : arn_report.data};
        ok = policy_allows(policy, "s3:GetBucketAcl", bucket_arn.data, &x) &&
             policy_allows(policy, "s3:GetBucketPolicy", bucket_arn.data, &x) &&
             policy_allows(policy, "s3:PutObject", object_arn.data, &x);
    }
    ob_buf_free(&bucket_arn);
    ob_buf_free(&object_arn);
    ob_buf_free(&arn_wild);
    ob_buf_free(&arn_report);
    json_decref(policy);
    return ok;
}

/* ---- operations ---- */

/* The caller's reports; with create, made on first use (reads never add an entry). */
static json_t *account_reports(sim_call_t *c, int create)
{
    json_t *all = sim_section(c->sim, "reports");
    json_t *mine = json_object_get(all, c->account);
    if (!json_is_object(mine) && create) {
        mine = json_object();
        json_object_set_new(all, c->account, mine);
    }
    return json_is_object(mine) ? mine : NULL;
}

/* The definition as stored: known members only, nulls dropped. */
static json_t *stored_definition(json_t *def)
{
    json_t *out = json_object();
    for (const member_t *m = report_members; m->name; m++) {
        json_t *v = json_object_get(def, m->name);
        if (v && !json_is_null(v))
            json_object_set_new(out, m->name, json_deep_copy(v));
    }
    return out;
}

/* Everything a Put or Modify checks about the definition itself (steps 1-3);
 * 0 when valid, else the error was replied. */
static int validate_definition(sim_call_t *c, json_t *def, json_t *top_name)
{
    if ((top_name && check_shape(c, &report_name_member, top_name) != 0) ||
        check_definition_shape(c, def) != 0)
        return -1;
    verrs_t v = {0};
    if (top_name || !strcmp(c->op, "ModifyReportDefinition"))
        check_member(&v, &report_name_member, top_name, "");
    check_definition(&v, def);
    if (verrs_reply(c, &v))
        return -1;
    if (!combination_ok(def)) {
        sim_error(c, 400, "ValidationException", "%s", "");
        return -1;
    }
    return 0;
}

static int verify_bucket(sim_call_t *c, json_t *def)
{
    if (bucket_ok(c, def))
        return 0;
    sim_error(c, 400, "ValidationException",
              "Failed to verify customer bucket permission. accountId= %s, bucket name: %s, "
              "bucket region: %s",
              c->account, def_str(def, "S3Bucket"), def_str(def, "S3Region"));
    return -1;
}

static void put_report(sim_call_t *c)
{
    json_t *def = json_object_get(c->params, "ReportDefinition");
    if (validate_definition(c, def, NULL) != 0)
        return;
    json_t *mine = account_reports(c, 0);
    const char *name = def_str(def, "ReportName");
    if (json_object_get(mine, name)) {
        sim_error(c, 400, "DuplicateReportNameException",
                  "A report with the specified name already exists in the account. Specify a "
                  "different report name.");
        return;
    }
    if (json_object_size(mine) >= MAX_REPORTS) {
        sim_error(c, 400, "ReportLimitReachedException",
                  "This account already has five reports defined. To define a new report, you "
                  "must delete an existing report.");
        return;
    }
    if (verify_bucket(c, def) != 0)
        return;
    json_object_set_new(account_reports(c, 1), name, stored_definition(def));
    sim_touch(c->sim);
    sim_reply_json(c, json_object()); /* {}; NULL would leak in sim_reply_json */
}

static void modify_report(sim_call_t *c)
{
    json_t *def = json_object_get(c->params, "ReportDefinition");
    json_t *top = json_object_get(c->params, "ReportName");
    if (validate_definition(c, def, top) != 0)
        return;
    const char *name = json_string_value(top);
    json_t *mine = account_reports(c, 0);
    if (!json_object_get(mine, name)) {
        sim_error(c, 400, "ValidationException",
                  "The specified report (%s) in the request doesn't exist.", name);
        return;
    }
    if (strcmp(name, def_str(def, "ReportName")) != 0) {
        /* A report cannot be renamed; AWS says no more than this. */
        sim_error(c, 400, "ValidationException", "%s", "");
        return;
    }
    if (verify_bucket(c, def) != 0)
        return;
    json_object_set_new(mine, name, stored_definition(def));
    sim_touch(c->sim);
    sim_reply_json(c, json_object()); /* {}; NULL would leak in sim_reply_json */
}

static void delete_report(sim_call_t *c)
{
    json_t *top = json_object_get(c->params, "ReportName");
    if (check_shape(c, &report_name_member, top) != 0)
        return;
    verrs_t v = {0};
    check_member(&v, &report_name_member, top, "");
    if (verrs_reply(c, &v))
        return;
    const char *name = json_string_value(top);
    json_t *mine = account_reports(c, 0);
    if (!json_object_get(mine, name)) {
        sim_error(c, 400, "ValidationException",
                  "The specified report (%s) in the request doesn't exist.", name);
        return;
    }
    json_object_del(mine, name);
    sim_touch(c->sim);
    sim_reply_json(c,
                   json_pack("{s:s+}", "ResponseMessage", "Successfully deleted report: ", name));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void describe_reports(sim_call_t *c)
{
    json_t *mr = json_object_get(c->params, "MaxResults");
    json_t *nt = json_object_get(c->params, "NextToken");
    if (mr && !json_is_null(mr) && !json_is_integer(mr)) {
        shape_error(c, mr, "an Integer");
        return;
    }
    static const member_t token_member = {
        "NextToken", "nextToken", K_STRING, 0, 256, pat_generic_string, "[A-Za-z0-9_\\.\\-=]*",
        NULL};
    if (check_shape(c, &token_member, nt) != 0)
        return;
    verrs_t v = {0};
    if (json_is_integer(mr)) {
        json_int_t m = json_integer_value(mr);
        char shown[32];
        snprintf(shown, sizeof(shown), "%lld", (long long)m);
        if (m < PAGE_SIZE)
            verr(&v, shown, "maxResults", "Member must have value greater than or equal to %d",
                 PAGE_SIZE);
        if (m > PAGE_SIZE)
            verr(&v, shown, "maxResults", "Member must have value less than or equal to %d",
                 PAGE_SIZE);
    }
    check_member(&v, &token_member, nt, "");
    if (verrs_reply(c, &v))
        return;
    /* Tokens are "p<offset>" over the reports in name order. */
    size_t start = 0;
    const char *tok = json_string_value(nt);
    if (tok && *tok) {
        char *end = NULL;
        unsigned long long off = tok[0] == 'p' ? strtoull(tok + 1, &end, 10) : 0;
        if (!end || *end || end == tok + 1) {
            sim_error(c, 400, "ValidationException", "Invalid NextToken: %s", tok);
            return;
        }
        start = (size_t)off;
    }
    json_t *mine = account_reports(c, 0);
    size_t n = json_object_size(mine), k = 0;
    const char **names = ob_malloc((n ? n : 1) * sizeof(*names));
    const char *name;
    json_t *d;
    if (!names) {
        sim_error(c, 500, "InternalErrorException", "Internal error");
        return;
    }
    json_object_foreach(mine, name, d)
    {
        names[k++] = name;
    }
    qsort(names, k, sizeof(*names), cmp_str);
    json_t *list = json_array();
    size_t i = start;
    for (; i < k && i < start + PAGE_SIZE; i++)
        json_array_append(list, json_object_get(mine, names[i]));
    json_t *reply = json_pack("{s:o}", "ReportDefinitions", list);
    if (i < k) {
        char next[32];
        snprintf(next, sizeof(next), "p%zu", i);
        json_object_set_new(reply, "NextToken", json_string(next));
    }
    free(names);
    sim_reply_json(c, reply);
}

/* ---- identify and dispatch ---- */

static ob_err_t cur_identify(sim_call_t *c)
{
    const char *target = ob_hdrs_get(c->http->headers, "X-Amz-Target");
    size_t pl = strlen(TARGET_PREFIX);
    if (target && !strncmp(target, TARGET_PREFIX, pl)) {
        for (int i = 0; ops[i]; i++) {
            if (strcmp(target + pl, ops[i]) != 0)
                continue;
            snprintf(c->op, sizeof(c->op), "%s", ops[i]);
            if (!json_is_object(c->params)) {
                sim_error(c, 400, "SerializationException",
                          "Start of structure or map found where not expected.");
                return OB_ERR_AWS;
            }
            return OB_OK;
        }
    }
    sim_error(c, 400, "UnknownOperationException", "Operation %s is not supported",
              target ? target : "(no X-Amz-Target)");
    return OB_ERR_AWS;
}

static void cur_handle(sim_call_t *c)
{
    if (!c->account[0]) {
        sim_error(c, 400, "MissingAuthenticationTokenException",
                  "Request is missing Authentication Token");
        return;
    }
    if (strcmp(c->region, "us-east-1") != 0) {
        sim_error(c, 403, "InvalidSignatureException",
                  "Credential should be scoped to a valid region, not '%s'. ", c->region);
        return;
    }
    if (!strcmp(c->op, "PutReportDefinition"))
        put_report(c);
    else if (!strcmp(c->op, "DescribeReportDefinitions"))
        describe_reports(c);
    else if (!strcmp(c->op, "ModifyReportDefinition"))
        modify_report(c);
    else
        delete_report(c);
}

const sim_service_t sim_cur_service = {OB_SVC_CUR, cur_identify, cur_handle, NULL, NULL};

/* ---- drift (POST /_sim/drift, sim_drift.c) ---- */

/* change_report: Changes {member: value} applied to the stored definition,
 * which must still be one ModifyReportDefinition accepts (steps 1-3: types,
 * the model's constraints, the console's combinations); the bucket is not
 * checked again, as AWS checks it only when a definition is put. A null
 * value removes an optional member. */
static int change_report(json_t *mine, const char *name, json_t *changes, json_t *res)
{
    if (!json_is_object(changes) || !json_object_size(changes)) {
        json_object_set_new(res, "error",
                            json_string("change_report needs Changes: {member: value} of the "
                                        "ReportDefinition"));
        return 400;
    }
    json_t *def = json_deep_copy(json_object_get(mine, name));
    const char *k;
    json_t *v;
    json_object_foreach(changes, k, v)
    {
        const member_t *m = report_members;
        while (m->name && strcmp(m->name, k) != 0)
            m++;
        const char *want = NULL;
        if (!m->name || !strcmp(k, "ReportName") || shape_mismatch(m, v, &want)) {
            json_object_set_new(res, "error",
                                json_sprintf(want ? "Changes: %s must be %s"
                                                  : "Changes: %s is not a ReportDefinition "
                                                    "member that can change",
                                             k, want));
            json_decref(def);
            return 400;
        }
        if (json_is_null(v))
            json_object_del(def, k);
        else
            json_object_set(def, k, v);
    }
    verrs_t errs = {0};
    check_definition(&errs, def);
    if (errs.n || !combination_ok(def)) {
        json_object_set_new(res, "error",
                            json_sprintf("Changes: the report would be invalid: %s",
                                         errs.n ? errs.text.data
                                                : "the console's combination rules (ATHENA, "
                                                  "Parquet, versioning) refuse it"));
        ob_buf_free(&errs.text);
        json_decref(def);
        return 400;
    }
    json_t *stored = stored_definition(def);
    json_decref(def);
    json_object_set_new(mine, name, stored);
    json_object_set(res, "ReportDefinition", stored);
    return 200;
}

int sim_cur_drift(sim_t *sim, const char *account, const char *kind, json_t *body, json_t **out)
{
    const char *name = json_string_value(json_object_get(body, "ReportName"));
    json_t *mine = json_object_get(sim_section(sim, "reports"), account);
    if (!name) {
        *out = sim_admin_err("%s needs a ReportName", kind);
        return 400;
    }
    if (!json_object_get(mine, name)) {
        *out = sim_admin_err("account %s has no report %s", account, name);
        return 404;
    }
    json_t *res = json_pack("{s:s, s:s, s:s, s:s}", "status", "drifted", "kind", kind, "account",
                            account, "report", name);
    int status = 200;
    if (!strcmp(kind, "delete_report"))
        json_object_del(mine, name);
    else
        status = change_report(mine, name, json_object_get(body, "Changes"), res);
    if (status != 200) {
        *out = json_pack("{s:O}", "error", json_object_get(res, "error"));
        json_decref(res);
        return status;
    }
    sim_touch(sim);
    *out = res;
    return 200;
}
