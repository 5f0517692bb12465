/*
 * ob_msg: the pipeline's messages, read and written.
 *
 * Design. jansson parses (duplicate keys refused, any top-level value, its
 * own depth limit of 2048); the message's schema in proto/ (compiled in,
 * ob_schema) then checks every member, type, length, range, pattern and enum
 * and the cross-member rules it states (if/then, oneOf), stopping at the
 * first problem so that the error names one field with one code. No limit
 * or pattern is written here: what C code needs as a constant comes from
 * ob_proto_limits.h, which the build generates from the same schemas.
 *
 * What is left to this file: binding a valid document to the structs (the
 * defaults of mode new are the schema's "default" values), the answer for
 * Azure and Google Cloud (unsupported_cloud), and the rules a JSON Schema
 * cannot state (code "mismatch": a role in another account, results that
 * disagree with the request, digests and idempotency keys).
 *
 * Builders never emit what the parsers would refuse: they build the
 * document, then parse it with the same code before handing it out.
 *
 * Error messages echo at most 48 characters of a bad value, with control
 * characters replaced, and never echo an ExternalId (writeOnly).
 */
#include "ob_msg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ob_alloc.h"
#include "ob_buf.h"
#include "ob_crypto.h"
#include "ob_schema.h"
#include "ob_time.h"

#define PTR_LEN             256            /* sizeof(ob_msg_error_t.field) */
#define DLQ_MAX_PARSED_DUMP (128u * 1024u) /* a parsed payload re-serialized larger goes base64 */

/* ------------------------------------------------------------------ errors */

/* snprintf for text that may be cut on purpose (messages, echoes). */
__attribute__((format(printf, 3, 4))) static void sfmt(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}

/* Drop an incomplete UTF-8 sequence at the end of s (after truncation). */
static void utf8_trim_tail(char *s)
{
    size_t n = strlen(s);
    size_t i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80 && n - i < 3)
        i--;
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (lead >= 0x80 && n - (i - 1) < need)
        s[i - 1] = '\0';
}

static ob_err_t failv(ob_msg_error_t *err, const char *field, const char *code, const char *fmt,
                      va_list ap)
{
    char text[sizeof err->message];
    vsnprintf(text, sizeof text, fmt, ap);
    sfmt(err->field, sizeof err->field, "%s", field);
    utf8_trim_tail(err->field);
    sfmt(err->code, sizeof err->code, "%s", code);
    if (field[0])
        sfmt(err->message, sizeof err->message, "%s: %s", field, text);
    else
        sfmt(err->message, sizeof err->message, "%s", text);
    utf8_trim_tail(err->message);
    return strcmp(code, "too_large") == 0 ? OB_ERR_TOO_LARGE : OB_ERR_PARSE;
}

__attribute__((format(printf, 4, 5))) static ob_err_t fail(ob_msg_error_t *err, const char *field,
                                                           const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ob_err_t rc = failv(err, field, code, fmt, ap);
    va_end(ap);
    return rc;
}

static ob_err_t nomem(ob_msg_error_t *err)
{
    snprintf(err->field, sizeof err->field, "%s", "");
    snprintf(err->code, sizeof err->code, "%s", "nomem");
    snprintf(err->message, sizeof err->message, "%s", "out of memory");
    return OB_ERR_NOMEM;
}

/* ------------------------------------------------------------------ UTF-8 */

/* 1 if n bytes are well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF);
 * otherwise 0 and the offset of the first bad byte in *bad. */
static int utf8_valid(const unsigned char *s, size_t n, size_t *bad)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            if (bad)
                *bad = i;
            return 0;
        }
        if (n - i < len) {
            if (bad)
                *bad = i;
            return 0;
        }
        for (size_t k = 1; k < len; k++) {
            unsigned char cc = s[i + k];
            unsigned l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
            if (cc < l || cc > h) {
                if (bad)
                    *bad = i;
                return 0;
            }
        }
        i += len;
    }
    return 1;
}

/* Copy src into dst (dstsz bytes) as valid UTF-8 of at most max_chars code
 * points: invalid bytes become '?'. */
static void utf8_sanitize(char *dst, size_t dstsz, const char *src, size_t srclen, size_t max_chars)
{
    size_t o = 0, chars = 0, i = 0;
    const unsigned char *s = (const unsigned char *)src;
    while (i < srclen && chars < max_chars) {
        size_t len = 1;
        int ok;
        if (s[i] == 0) {
            ok = 0;
        } else if (s[i] < 0x80) {
            ok = 1;
        } else {
            len = s[i] >= 0xF0 ? 4 : s[i] >= 0xE0 ? 3 : 2;
            ok = i + len <= srclen && utf8_valid(s + i, len, NULL);
            if (!ok)
                len = 1;
        }
        if (o + len + 1 > dstsz)
            break;
        if (ok)
            memcpy(dst + o, s + i, len);
        else
            dst[o] = '?';
        o += ok ? len : 1;
        i += len;
        chars++;
    }
    dst[o] = '\0';
}

/* A bad value quoted in an error message: at most 48 characters, control
 * characters as '?', "..." when cut. */
static const char *echo(char *buf, size_t bufsz, const char *s)
{
    size_t o = 0, chars = 0;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c & 0xC0) != 0x80 && ++chars > 48) {
            if (o + 4 < bufsz)
                memcpy(buf + o, "...", 3), o += 3;
            break;
        }
        if (o + 1 >= bufsz - 3)
            break;
        buf[o++] = (c < 0x20 || c == 0x7F || c == '"') ? (c == '"' ? '\'' : '?') : (char)c;
    }
    buf[o] = '\0';
    utf8_trim_tail(buf);
    return buf;
}

#define ECHO(s) echo((char[200]){0}, 200, (s))

/* ---------------------------------------------------------- JSON pointers */

static void ptr_child(char *out, const char *base, const char *key)
{
    size_t i = 0;
    for (; base[i] && i < PTR_LEN - 1; i++)
        out[i] = base[i];
    if (i < PTR_LEN - 1)
        out[i++] = '/';
    for (const char *k = key; *k && i < PTR_LEN - 1; k++) {
        if (*k == '~' || *k == '/') {
            if (i + 2 >= PTR_LEN)
                break;
            out[i++] = '~';
            out[i++] = *k == '~' ? '0' : '1';
        } else {
            out[i++] = *k;
        }
    }
    out[i] = '\0';
    utf8_trim_tail(out);
}

/* -------------------------------------------------------- character sets */

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int all_of(const char *s, const char *extra, int (*cls)(char))
{
    for (; *s; s++)
        if (!cls(*s) && !strchr(extra, *s))
            return 0;
    return 1;
}

/* ------------------------------------------------------------------ ARNs */

/* The parts of an ARN "arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE", of a
 * value the schema has already checked. */
typedef struct arn_s {
    char partition[16];
    char service[32];
    char region[OB_REGION_LEN];
    char account[OB_ACCOUNT_ID_LEN];
    const char *resource;
} arn_t;

static int arn_split(const char *s, arn_t *a)
{
    memset(a, 0, sizeof *a);
    if (strncmp(s, "arn:", 4) != 0)
        return 0;
    const char *p = s + 4;
    char *fields[4] = {a->partition, a->service, a->region, a->account};
    size_t sizes[4] = {sizeof a->partition, sizeof a->service, sizeof a->region, sizeof a->account};
    for (int i = 0; i < 4; i++) {
        const char *c = strchr(p, ':');
        if (!c || (size_t)(c - p) >= sizes[i])
            return 0;
        memcpy(fields[i], p, (size_t)(c - p));
        fields[i][c - p] = '\0';
        p = c + 1;
    }
    a->resource = p;
    return 1;
}

/* The stack name of a stack id ("...:stack/NAME/ID") into out. */
static const char *stack_name_of(const arn_t *a, char out[OB_STACK_NAME_LEN])
{
    const char *nm = strncmp(a->resource, "stack/", 6) == 0 ? a->resource + 6 : "";
    size_t n = strcspn(nm, "/");
    snprintf(out, OB_STACK_NAME_LEN, "%.*s", (int)(n < OB_STACK_NAME_LEN ? n : 0), nm);
    return out;
}

/* ------------------------------------------------------------------ time */

int ob_msg_time_valid(const char *s)
{
    if (!s)
        return 0;
    json_t *v = json_string(s);
    ob_schema_error_t se;
    int ok = v && ob_schema_validate("onboard.defs.v1.json#/$defs/timestamp", v, &se) == OB_OK;
    json_decref(v);
    return ok;
}

/* 1 if s passes the schema part `name` (a value, not a message: no error). */
static int valid_as(const char *name, const char *s)
{
    json_t *v = json_string(s);
    ob_schema_error_t se;
    int ok = v && ob_schema_validate(name, v, &se) == OB_OK;
    json_decref(v);
    return ok;
}

void ob_msg_now(char out[OB_TIME_LEN])
{
    _Static_assert(OB_TIME_ISO_LEN <= OB_TIME_LEN, "a time field holds the form");
    ob_time_now_iso(out);
}

/* ----------------------------------------------------- the schema's rules */

/*
 * Check a message (or a part) against its schema in proto/: every member,
 * type, length, range, pattern and enum, and the cross-member rules the
 * schema states (if/then, oneOf). The answer is the schema validator's:
 * the same pointer, code and sentence.
 */
static ob_err_t validate(const json_t *o, const char *schema, ob_msg_error_t *err)
{
    ob_schema_error_t se;
    ob_err_t rc = ob_schema_validate(schema, o, &se);
    if (rc == OB_OK)
        return OB_OK;
    if (rc != OB_ERR_PARSE)
        return fail(err, "", "schema", "%s", se.message); /* the build's schemas are broken */
    return fail(err, se.field, se.code, "%s",
                se.message + (strncmp(se.message, se.field, strlen(se.field)) == 0 &&
                                      se.message[strlen(se.field)] == ':'
                                  ? strlen(se.field) + 2
                                  : 0));
}

/* A copy of s in *mem (created on first use). */
static const char *keep(ob_arena_t **mem, const char *s)
{
    if (!*mem)
        *mem = ob_arena_new();
    return ob_arena_strdup(*mem, s);
}

/* printf into *mem (created on first use). */
static const char *keepv(ob_arena_t **mem, const char *fmt, va_list ap)
{
    if (!*mem)
        *mem = ob_arena_new();
    return ob_arena_vprintf(*mem, fmt, ap);
}

/* Binding a validated object: its members, "" / 0 / the default when absent. */
static const char *str_of(const json_t *o, const char *key, ob_arena_t **mem)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? keep(mem, s) : "";
}

static int index_of(const char *const *names, const char *s)
{
    for (int i = 0; s && names[i]; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return 0;
}

static int enum_of(const json_t *j, const char *const *names)
{
    return index_of(names, json_string_value(j));
}

/* An array of distinct enum values, as a bit set (bit i for names[i]). */
static unsigned set_of(const json_t *a, const char *const *names)
{
    unsigned set = 0;
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v) set |= 1u << enum_of(v, names);
    return set;
}

/* ----------------------------------------------------------- JSON loading */

static ob_err_t load(const char *json, size_t len, size_t max, json_t **out, ob_msg_error_t *err)
{
    *out = NULL;
    if (len > max)
        return fail(err, "", "too_large", "message is %zu bytes; the limit is %zu", len, max);
    if (len == 0)
        return fail(err, "", "not_json", "empty message");
    size_t bad;
    if (!utf8_valid((const unsigned char *)json, len, &bad))
        return fail(err, "", "not_json", "not UTF-8: invalid byte 0x%02x at offset %zu",
                    (unsigned char)json[bad], bad);
    json_error_t je;
    json_t *v = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!v)
        return fail(err, "", "not_json", "not JSON: %s (line %d, column %d)", je.text, je.line,
                    je.column);
    if (!json_is_object(v)) {
        ob_err_t rc =
            fail(err, "", "not_object", "a message is a JSON object, got %s", ob_schema_type_of(v));
        json_decref(v);
        return rc;
    }
    *out = v;
    return OB_OK;
}

/* ----------------------------------------------------------------- names */

static const char *const CLOUDS[] = {"aws", "azure", "gcp", NULL};
static const char *const MODES[] = {"new", "existing", "offboard", NULL};
static const char *const STAGES[] = {"intake", "bucket", "cur", "iam", "connect", NULL};
static const char *const TIME_UNITS[] = {"HOURLY", "DAILY", "MONTHLY", NULL};
static const char *const FORMATS[] = {"textORcsv", "Parquet", NULL};
static const char *const COMPRESSIONS[] = {"ZIP", "GZIP", "Parquet", NULL};
static const char *const VERSIONINGS[] = {"CREATE_NEW_REPORT", "OVERWRITE_REPORT", NULL};
static const char *const SCHEMA_ELEMS[] = {"RESOURCES", "SPLIT_COST_ALLOCATION_DATA",
                                           "MANUAL_DISCOUNT_COMPATIBILITY", NULL};
static const char *const ARTIFACTS[] = {"REDSHIFT", "QUICKSIGHT", "ATHENA", NULL};
static const char *const DRIFTS[] = {
    "bucket_missing",   "bucket_policy",  "bucket_public_access", "bucket_encryption",
    "bucket_ownership", "report_missing", "report_changed",       "stack_missing",
    "stack_failed",     "stack_drifted",  "role_unassumable",     NULL};
static const char *const DLQ_CLASSES[] = {"invalid_input", "permanent", "retries_exhausted",
                                          "unsupported_cloud", NULL};
#define COUNT_OF(tbl) (sizeof(tbl) / sizeof((tbl)[0]) - 1) /* names before the NULL */
_Static_assert(COUNT_OF(STAGES) == OB_STAGE__COUNT, "a name for every ob_stage_t");
_Static_assert(COUNT_OF(DLQ_CLASSES) == OB_DLQ_CLASS__COUNT, "a name for every ob_dlq_class_t");

static const char *name_of(const char *const *names, size_t n, int v)
{
    return v >= 0 && (size_t)v < n ? names[v] : "?";
}
#define NAME_OF(tbl, v) name_of((tbl), sizeof(tbl) / sizeof((tbl)[0]) - 1, (int)(v))

const char *ob_cloud_name(ob_cloud_t c)
{
    return NAME_OF(CLOUDS, c);
}
const char *ob_mode_name(ob_mode_t m)
{
    return NAME_OF(MODES, m);
}
const char *ob_stage_name(ob_stage_t s)
{
    return NAME_OF(STAGES, s);
}
const char *ob_time_unit_name(ob_time_unit_t t)
{
    return NAME_OF(TIME_UNITS, t);
}
const char *ob_format_name(ob_format_t f)
{
    return NAME_OF(FORMATS, f);
}
const char *ob_compression_name(ob_compression_t c)
{
    return NAME_OF(COMPRESSIONS, c);
}
const char *ob_versioning_name(ob_versioning_t v)
{
    return NAME_OF(VERSIONINGS, v);
}
const char *ob_dlq_class_name(ob_dlq_class_t c)
{
    return NAME_OF(DLQ_CLASSES, c);
}

static const char *bit_name(const char *const *names, unsigned bit)
{
    for (unsigned i = 0; names[i]; i++)
        if (bit == (1u << i))
            return names[i];
    return NULL;
}
const char *ob_schema_elem_name(unsigned bit)
{
    return bit_name(SCHEMA_ELEMS, bit);
}
const char *ob_artifact_name(unsigned bit)
{
    return bit_name(ARTIFACTS, bit);
}
const char *ob_drift_name(unsigned bit)
{
    return bit_name(DRIFTS, bit);
}
unsigned ob_drift_bit(const char *name)
{
    for (unsigned i = 0; name && DRIFTS[i]; i++)
        if (!strcmp(DRIFTS[i], name))
            return 1u << i;
    return 0;
}

const char *ob_msg_schema(ob_msg_kind_t kind)
{
    switch (kind) {
    case OB_MSG_REQUEST:
        return OB_SCHEMA_REQUEST;
    case OB_MSG_STAGE:
        return OB_SCHEMA_STAGE;
    case OB_MSG_CONNECTED:
        return OB_SCHEMA_CONNECTED;
    case OB_MSG_DLQ:
        return OB_SCHEMA_DLQ;
    case OB_MSG_DISCONNECTED:
        return OB_SCHEMA_DISCONNECTED;
    case OB_MSG_VERIFY:
        return OB_SCHEMA_VERIFY;
    case OB_MSG_DRIFT:
        return OB_SCHEMA_DRIFT;
    default:
        return "?";
    }
}

/* ------------------------------------------------------------ the request */

#define REQUEST_SCHEMA   "onboard.request.v1.json"
#define REQUEST_SCHEMA_2 "onboard.request.v2.json"
#define REPORT_SCHEMA    "onboard.defs.v1.json#/$defs/report_settings/properties"
#define STAGE_SCHEMA     "onboard.stage.v1.json"
#define STAGE_SCHEMA_2   "onboard.stage.v2.json"

static const char *arn_partition(const char *arn, char *buf, size_t n)
{
    arn_t a;
    snprintf(buf, n, "%s", arn_split(arn, &a) ? a.partition : "?");
    return buf;
}

/* The 12-digit account of an ARN into out ("" when none). */
static const char *arn_account(const char *arn, char out[OB_ACCOUNT_ID_LEN])
{
    arn_t a;
    snprintf(out, OB_ACCOUNT_ID_LEN, "%s", arn_split(arn, &a) ? a.account : "");
    return out;
}

const char *ob_region_partition(const char *region)
{
    return !strncmp(region, "cn-", 3)       ? "aws-cn"
           : !strncmp(region, "us-gov-", 7) ? "aws-us-gov"
                                            : "aws";
}

const char *ob_request_default_report_name(void)
{
    const char *n = json_string_value(
        json_object_get(json_object_get(ob_schema_get(REPORT_SCHEMA), "name"), "default"));
    return n ? n : "";
}

void ob_request_default_bucket(const char *account_id, const char *region, char out[OB_BUCKET_LEN])
{
    snprintf(out, OB_BUCKET_LEN, "billing-cur-%s-%s", account_id, region);
}

/* The report settings of o (NULL: none given), each absent one the schema's
 * default. */
static void bind_report(const json_t *o, ob_report_settings_t *r, ob_arena_t **mem)
{
    const json_t *props = ob_schema_get(REPORT_SCHEMA);
    const char *key;
    json_t *ps;
    memset(r, 0, sizeof *r);
    json_object_foreach((json_t *)props, key, ps)
    {
        const json_t *j = json_object_get(o, key);
        if (!j)
            j = json_object_get(ps, "default");
        if (!strcmp(key, "name"))
            r->name = j ? keep(mem, json_string_value(j)) : "";
        else if (!strcmp(key, "prefix"))
            r->prefix = j ? keep(mem, json_string_value(j)) : "";
        else if (!strcmp(key, "time_unit"))
            r->time_unit = (ob_time_unit_t)enum_of(j, TIME_UNITS);
        else if (!strcmp(key, "format"))
            r->format = (ob_format_t)enum_of(j, FORMATS);
        else if (!strcmp(key, "compression"))
            r->compression = (ob_compression_t)enum_of(j, COMPRESSIONS);
        else if (!strcmp(key, "schema_elements"))
            r->schema_elements = set_of(j, SCHEMA_ELEMS);
        else if (!strcmp(key, "artifacts"))
            r->artifacts = set_of(j, ARTIFACTS);
        else if (!strcmp(key, "refresh_closed_reports"))
            r->refresh_closed_reports = json_is_true(j);
        else if (!strcmp(key, "versioning"))
            r->versioning = (ob_versioning_t)enum_of(j, VERSIONINGS);
    }
}

/* Whether o's "schema" member is `name` (OB_SCHEMA_*: the schemas' const,
 * as unit.msg checks). */
static int names_schema(const json_t *o, const char *name)
{
    const char *v = json_string_value(json_object_get(o, "schema"));
    return v && !strcmp(v, name);
}

/* The version a request or hand-off says it is (its "schema"), and the
 * schema file that checks it: version 2 by its own file, anything else by
 * version 1's (which names what is wrong with it). */
static int request_version(const json_t *o)
{
    return names_schema(o, OB_SCHEMA_REQUEST_2) ? 2 : 1;
}
static int stage_version(const json_t *o)
{
    return names_schema(o, OB_SCHEMA_STAGE_2) ? 2 : 1;
}
static int is_request(const json_t *o)
{
    return names_schema(o, OB_SCHEMA_REQUEST) || names_schema(o, OB_SCHEMA_REQUEST_2);
}
static int is_stage(const json_t *o)
{
    return names_schema(o, OB_SCHEMA_STAGE) || names_schema(o, OB_SCHEMA_STAGE_2);
}

/* An Azure or Google Cloud request is refused for that reason, whatever else
 * it holds: a cloud the request schema knows, other than aws. */
static ob_err_t check_cloud(const json_t *o, const char *f, ob_msg_error_t *err)
{
    const json_t *cloud = json_object_get(o, "cloud");
    int v = enum_of(cloud, CLOUDS);
    if (!json_is_string(cloud) || v == OB_CLOUD_AWS || strcmp(CLOUDS[v], json_string_value(cloud)))
        return OB_OK;
    return fail(err, f, "unsupported_cloud", "%s (cloud \"%s\")", OB_MSG_UNSUPPORTED_CLOUD_REASON,
                CLOUDS[v]);
}

/* What the schema cannot say of a valid request: its role is in its account,
 * and the role's path is one IAM takes. */
static ob_err_t check_role(const ob_request_t *r, const char *base, ob_msg_error_t *err)
{
    char f[PTR_LEN], acct[OB_ACCOUNT_ID_LEN];
    ptr_child(f, base, "role_arn");
    if (strcmp(arn_account(r->role_arn, acct), r->account_id) != 0)
        return fail(err, f, "mismatch", "the role is in account %s, but account_id is %s", acct,
                    r->account_id);
    /* The path's form is the ARN's pattern's; its length, $defs/role_path's. */
    const char *path = strchr(r->role_arn, '/'), *last = strrchr(r->role_arn, '/');
    size_t n = path ? (size_t)(last - path) + 1 : 0;
    if (n > OB_PROTO_ROLE_PATH_MAX)
        return fail(err, f, "range", "the role's path must be at most %d characters, got %zu",
                    OB_PROTO_ROLE_PATH_MAX, n);
    return OB_OK;
}

/*
 * Bind a request object that its schema has passed, found at JSON pointer
 * `base` ("" at the top, "/request" in a hand-off), then fill the defaults
 * of mode new.
 */
static ob_err_t bind_request(const json_t *o, const char *base, ob_request_t *r,
                             ob_msg_error_t *err)
{
    ob_arena_t *mem = r->mem; /* the caller's, sized for the message: kept */
    r->mem = NULL;
    ob_request_clear(r);
    ob_request_init(r);
    r->mem = mem;
    r->version = request_version(o);
    r->cloud = (ob_cloud_t)enum_of(json_object_get(o, "cloud"), CLOUDS);
    r->request_id = str_of(o, "request_id", &r->mem);
    r->account_id = str_of(o, "account_id", &r->mem);
    r->mode = (ob_mode_t)enum_of(json_object_get(o, "mode"), MODES);
    r->region = str_of(o, "region", &r->mem);
    r->role_arn = str_of(o, "role_arn", &r->mem);
    r->external_id = str_of(o, "external_id", &r->mem);
    const json_t *bucket = json_object_get(o, "bucket");
    if (bucket) {
        r->bucket = str_of(bucket, "name", &r->mem);
        r->has_bucket = 1;
    }
    const json_t *report = json_object_get(o, "report");
    if (report || r->mode == OB_MODE_NEW) {
        bind_report(report, &r->report, &r->mem);
        r->has_report = 1;
    }
    r->requester = str_of(o, "requester", &r->mem);
    r->requested_at = str_of(o, "requested_at", &r->mem);
    const char *key;
    json_t *val;
    json_object_foreach(json_object_get(o, "tags"), key, val)
        ob_request_add_tag(r, key, json_string_value(val));
    r->repair = set_of(json_object_get(o, "repair"), DRIFTS);
    ob_err_t rc = check_role(r, base, err);
    if (rc != OB_OK)
        return rc;
    if (r->mode == OB_MODE_NEW && !r->has_bucket) {
        char b[OB_BUCKET_LEN];
        ob_request_default_bucket(r->account_id, r->region, b);
        r->bucket = keep(&r->mem, b);
        r->has_bucket = 1;
    }
    return OB_OK;
}

/* What a validated message's strings take in an arena (each 8-aligned with
 * its NUL), with room for the one the codec derives as it binds (a default
 * bucket name): the arena of a message in flight holds that, not the length
 * of its JSON text, half of which is names and punctuation. */
#define DERIVED_ROOM ((OB_BUCKET_LEN + 7) & ~7)
static size_t strings_size(const json_t *v)
{
    size_t n = 0;
    if (json_is_string(v))
        return (json_string_length(v) + 1 + 7) & ~(size_t)7;
    if (json_is_object(v)) {
        const char *k;
        const json_t *m;
        json_object_foreach((json_t *)v, k, m)
        {
            n += strings_size(m);
        }
    } else if (json_is_array(v)) {
        size_t i;
        const json_t *m;
        json_array_foreach(v, i, m)
        {
            n += strings_size(m);
        }
    }
    return n;
}

static ob_arena_t *arena_for(const json_t *doc)
{
    return ob_arena_new_sized(strings_size(doc) + DERIVED_ROOM);
}

static ob_err_t parse_request(const json_t *o, ob_request_t *r, ob_msg_error_t *err)
{
    ob_err_t rc;
    if (!json_is_object(o))
        return fail(err, "", "not_object", "expected an object, got %s", ob_schema_type_of(o));
    if (is_request(o) && (rc = check_cloud(o, "/cloud", err)) != OB_OK)
        return rc;
    if ((rc = validate(o, request_version(o) == 2 ? REQUEST_SCHEMA_2 : REQUEST_SCHEMA, err)) !=
        OB_OK)
        return rc;
    if (!r->mem)
        r->mem = arena_for(o);
    return bind_request(o, "", r, err);
}

void ob_request_init(ob_request_t *r)
{
    memset(r, 0, sizeof *r);
    r->version = 1;
    r->request_id = r->account_id = r->region = r->role_arn = r->external_id = r->bucket =
        r->requester = r->requested_at = "";
    r->report.name = r->report.prefix = "";
}

const char *ob_request_str(ob_request_t *r, const char *s)
{
    return keep(&r->mem, s);
}

const char *ob_request_printf(ob_request_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *s = keepv(&r->mem, fmt, ap);
    va_end(ap);
    return s;
}

void ob_request_clear(ob_request_t *r)
{
    if (!r)
        return;
    free(r->tags);
    ob_arena_free(r->mem);
    memset(r, 0, sizeof *r);
}

ob_err_t ob_request_copy(ob_request_t *dst, const ob_request_t *src)
{
    if (!dst || !src)
        return OB_ERR_INVALID_ARG;
    if (dst == src)
        return OB_OK;
    ob_request_t n = *src;
    n.mem = NULL;
    n.tags = NULL;
    n.ntags = 0;
    const char **fields[] = {&n.request_id,  &n.account_id,   &n.region,    &n.role_arn,
                             &n.external_id, &n.bucket,       &n.requester, &n.requested_at,
                             &n.report.name, &n.report.prefix};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        *fields[i] = keep(&n.mem, *fields[i]);
    for (size_t i = 0; i < src->ntags; i++)
        ob_request_add_tag(&n, src->tags[i].key, src->tags[i].value);
    *dst = n;
    return OB_OK;
}

ob_err_t ob_request_add_tag(ob_request_t *r, const char *key, const char *value)
{
    if (!r || !key || !value)
        return OB_ERR_INVALID_ARG;
    r->tags = ob_realloc(r->tags, (r->ntags + 1) * sizeof *r->tags);
    r->tags[r->ntags].key = keep(&r->mem, key);
    r->tags[r->ntags].value = keep(&r->mem, value);
    r->ntags++;
    return OB_OK;
}

static ob_msg_error_t *err_or(ob_msg_error_t *err, ob_msg_error_t *scratch)
{
    memset(scratch, 0, sizeof *scratch);
    if (!err)
        return scratch;
    memset(err, 0, sizeof *err);
    return err;
}

/* What every parser of text does first: the error (or a scratch one)
 * cleared, *out zeroed, the text checked and loaded into *doc. */
static ob_err_t begin(const char *json, size_t len, size_t max, void *out, size_t outsz,
                      json_t **doc, ob_msg_error_t **err, ob_msg_error_t *scratch)
{
    *err = err_or(*err, scratch);
    if (!out)
        return OB_ERR_INVALID_ARG;
    memset(out, 0, outsz);
    if (!json)
        return OB_ERR_INVALID_ARG;
    return load(json, len, max, doc, *err);
}

ob_err_t ob_request_parse_json(const json_t *obj, ob_request_t *out, ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    err = err_or(err, &scratch);
    if (!obj || !out)
        return OB_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    ob_err_t rc = parse_request(obj, out, err);
    if (rc != OB_OK)
        ob_request_clear(out);
    return rc;
}

ob_err_t ob_request_parse(const char *json, size_t len, ob_request_t *out, ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    json_t *doc;
    ob_err_t rc = begin(json, len, OB_MSG_MAX_BYTES, out, sizeof *out, &doc, &err, &scratch);
    if (rc != OB_OK)
        return rc;
    rc = parse_request(doc, out, err);
    json_decref(doc);
    if (rc != OB_OK)
        ob_request_clear(out);
    return rc;
}

/* ------------------------------------------------------------- builders */

/* A string member; bytes that are not UTF-8 become '?' (which then fails the
 * member's pattern, if it has one, when the output is checked). */
static int set_str(json_t *o, const char *key, const char *s)
{
    size_t n = strlen(s);
    json_t *v;
    if (utf8_valid((const unsigned char *)s, n, NULL)) {
        v = json_stringn(s, n);
    } else {
        char *fixed = ob_malloc(n + 1);
        if (!fixed)
            return -1;
        utf8_sanitize(fixed, n + 1, s, n, n);
        v = json_string(fixed);
        free(fixed);
    }
    return v ? json_object_set_new(o, key, v) : -1;
}

static int set_new(json_t *o, const char *key, json_t *v)
{
    return v ? json_object_set_new(o, key, v) : -1;
}

static json_t *enum_set_json(const char *const *names, unsigned set)
{
    json_t *a = json_array();
    for (unsigned i = 0; a && names[i]; i++)
        if ((set & (1u << i)) && json_array_append_new(a, json_string(names[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *report_settings_json(const ob_report_settings_t *s)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = set_str(o, "name", s->name) | set_str(o, "prefix", s->prefix) |
              set_str(o, "time_unit", ob_time_unit_name(s->time_unit)) |
              set_str(o, "format", ob_format_name(s->format)) |
              set_str(o, "compression", ob_compression_name(s->compression)) |
              set_new(o, "schema_elements", enum_set_json(SCHEMA_ELEMS, s->schema_elements)) |
              set_new(o, "artifacts", enum_set_json(ARTIFACTS, s->artifacts)) |
              set_new(o, "refresh_closed_reports", json_boolean(s->refresh_closed_reports)) |
              set_str(o, "versioning", ob_versioning_name(s->versioning));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *ob_request_to_object(const ob_request_t *r)
{
    if (!r)
        return NULL;
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = set_str(o, "schema", r->version == 2 ? OB_SCHEMA_REQUEST_2 : OB_SCHEMA_REQUEST) |
              set_str(o, "request_id", r->request_id) | set_str(o, "account_id", r->account_id) |
              set_str(o, "cloud", ob_cloud_name(r->cloud)) |
              set_str(o, "mode", ob_mode_name(r->mode)) | set_str(o, "region", r->region) |
              set_str(o, "role_arn", r->role_arn);
    if (r->external_id[0])
        bad |= set_str(o, "external_id", r->external_id);
    if (r->has_bucket) {
        json_t *b = json_object();
        bad |= set_new(o, "bucket", b);
        if (b)
            bad |= set_str(b, "name", r->bucket);
    }
    if (r->has_report)
        bad |= set_new(o, "report", report_settings_json(&r->report));
    if (r->requester[0])
        bad |= set_str(o, "requester", r->requester);
    if (r->requested_at[0])
        bad |= set_str(o, "requested_at", r->requested_at);
    if (r->ntags) {
        json_t *t = json_object();
        bad |= set_new(o, "tags", t);
        for (size_t i = 0; t && i < r->ntags; i++)
            bad |= set_str(t, r->tags[i].key, r->tags[i].value);
    }
    if (r->repair)
        bad |= set_new(o, "repair", enum_set_json(DRIFTS, r->repair));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Serialize, then check the bytes with the parser of their kind. */
static ob_err_t parse_stage(const json_t *o, ob_stage_msg_t *m, ob_msg_error_t *err);
static ob_err_t parse_connected(const json_t *o, ob_connected_t *c, ob_msg_error_t *err);

/* Check what we are about to send exactly as a consumer would read it: the
 * object through the same parser (no text round trip: building, dumping and
 * parsing again cost more than the rest of a hand-off), then the text's
 * size and encoding. */
static ob_err_t check_results(const ob_stage_msg_t *m, ob_msg_error_t *err);
static ob_err_t check_connected(const ob_connected_t *c, ob_msg_error_t *err);
static ob_err_t check_disconnected(const ob_disconnected_t *d, ob_msg_error_t *err);
static ob_err_t check_verify(const ob_verify_msg_t *v, ob_msg_error_t *err);
static ob_err_t check_drift(const ob_drift_t *d, ob_msg_error_t *err);

/* Check what we are about to send as a consumer would read it: the object
 * against its schema (no text round trip: building, dumping and parsing again
 * cost more than the rest of a hand-off), then the rules no schema states, on
 * the struct the object was made from. */
static ob_err_t check_object(const json_t *o, ob_msg_kind_t kind, const void *src,
                             ob_msg_error_t *err)
{
    ob_err_t rc;
    switch (kind) {
    case OB_MSG_REQUEST:
        if ((rc = check_cloud(o, "/cloud", err)) != OB_OK ||
            (rc = validate(o, request_version(o) == 2 ? REQUEST_SCHEMA_2 : REQUEST_SCHEMA, err)) !=
                OB_OK)
            return rc;
        return check_role(src, "", err);
    case OB_MSG_STAGE:
        if ((rc = check_cloud(json_object_get(o, "request"), "/request/cloud", err)) != OB_OK ||
            (rc = validate(o, stage_version(o) == 2 ? STAGE_SCHEMA_2 : STAGE_SCHEMA, err)) !=
                OB_OK ||
            (rc = check_role(&((const ob_stage_msg_t *)src)->request, "/request", err)) != OB_OK)
            return rc;
        return check_results(src, err);
    case OB_MSG_CONNECTED:
        if ((rc = validate(o, "onboard.connected.v1.json", err)) != OB_OK)
            return rc;
        return check_connected(src, err);
    case OB_MSG_DISCONNECTED:
        if ((rc = validate(o, "onboard.disconnected.v1.json", err)) != OB_OK)
            return rc;
        return check_disconnected(src, err);
    case OB_MSG_VERIFY:
        if ((rc = validate(o, "onboard.verify.v1.json", err)) != OB_OK)
            return rc;
        return check_verify(src, err);
    case OB_MSG_DRIFT:
        if ((rc = validate(o, "onboard.drift.v1.json", err)) != OB_OK)
            return rc;
        return check_drift(src, err);
    default:
        return OB_ERR_INVALID_ARG;
    }
}

static ob_err_t dump_checked(json_t *o, ob_msg_kind_t kind, const void *src, char **out,
                             size_t *out_len, ob_msg_error_t *err)
{
    if (!o)
        return nomem(err);
    ob_err_t rc = check_object(o, kind, src, err);
    if (rc != OB_OK) {
        json_decref(o);
        return rc;
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        return nomem(err);
    size_t len = strlen(text), bad;
    if (len > OB_MSG_MAX_BYTES)
        rc = fail(err, "", "too_large", "message is %zu bytes; the limit is %zu", len,
                  (size_t)OB_MSG_MAX_BYTES);
    else if (!utf8_valid((const unsigned char *)text, len, &bad))
        rc = fail(err, "", "not_json", "not UTF-8: invalid byte 0x%02x at offset %zu",
                  (unsigned char)text[bad], bad);
    if (rc != OB_OK) {
        free(text);
        return rc;
    }
    *out = text;
    if (out_len)
        *out_len = len;
    return OB_OK;
}

ob_err_t ob_request_to_json(const ob_request_t *r, char **out, size_t *out_len, ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    err = err_or(err, &scratch);
    if (!r || !out)
        return OB_ERR_INVALID_ARG;
    *out = NULL;
    return dump_checked(ob_request_to_object(r), OB_MSG_REQUEST, r, out, out_len, err);
}

/* ------------------------------------------------------- stage hand-offs */

static void bind_report_result(const json_t *o, ob_report_result_t *r, ob_arena_t **mem)
{
    r->name = str_of(o, "name", mem);
    r->bucket = str_of(o, "bucket", mem);
    r->prefix = str_of(o, "prefix", mem);
    r->region = str_of(o, "region", mem);
}

static void bind_trace(const json_t *o, ob_trace_t trace[OB_STAGE__COUNT], ob_arena_t **mem)
{
    for (int i = OB_STAGE_BUCKET; i < OB_STAGE__COUNT; i++) {
        const json_t *e = json_object_get(o, STAGES[i]);
        if (!e)
            continue;
        ob_trace_t *t = &trace[i];
        t->started_at = str_of(e, "started_at", mem);
        t->finished_at = str_of(e, "finished_at", mem);
        t->attempts = (int)json_integer_value(json_object_get(e, "attempts"));
        t->worker = str_of(e, "worker", mem);
        t->present = 1;
    }
}

/* The stack id must name `name` (if not NULL) in this account, region and partition. */
static ob_err_t check_stack_place(const char *f, const char *stack_id, const char *account,
                                  const char *region, const char *partition, const char *name,
                                  ob_msg_error_t *err)
{
    arn_t a;
    char nm[OB_STACK_NAME_LEN];
    if (!arn_split(stack_id, &a))
        return fail(err, f, "pattern", "not a stack ARN");
    if (strcmp(a.account, account) != 0)
        return fail(err, f, "mismatch", "the stack is in account %s, but account_id is %s",
                    a.account, account);
    if (strcmp(a.partition, partition) != 0)
        return fail(err, f, "mismatch", "the stack is in partition %s, but the role is in %s",
                    a.partition, partition);
    if (region && strcmp(a.region, region) != 0)
        return fail(err, f, "mismatch", "the stack is in region %s, but the request's is %s",
                    a.region, region);
    if (name && strcmp(stack_name_of(&a, nm), name) != 0)
        return fail(err, f, "mismatch", "the stack id names stack %s, but the name is %s", nm,
                    name);
    return OB_OK;
}

/* "arn:PARTITION:s3:::BUCKET" of the role's partition. */
#define BUCKET_ARN_LEN (sizeof("arn:aws-us-gov:s3:::") + OB_BUCKET_LEN)
static const char *bucket_arn(const char *role_arn, const char *bucket, char out[BUCKET_ARN_LEN])
{
    char part[16];
    snprintf(out, BUCKET_ARN_LEN, "arn:%s:s3:::%s", arn_partition(role_arn, part, sizeof part),
             bucket);
    return out;
}

/* What the schema cannot say of a valid hand-off: its results agree with
 * its request. */
static ob_err_t check_results(const ob_stage_msg_t *m, ob_msg_error_t *err)
{
    const ob_request_t *r = &m->request;
    if (m->has_bucket) {
        if (strcmp(m->bucket.name, r->bucket) != 0)
            return fail(err, "/results/bucket/name", "mismatch",
                        "the bucket made is %s, but the request names %s", m->bucket.name,
                        r->bucket);
        if (strcmp(m->bucket.region, r->region) != 0)
            return fail(err, "/results/bucket/region", "mismatch",
                        "the bucket is in %s, but the request's region is %s", m->bucket.region,
                        r->region);
        char arn[BUCKET_ARN_LEN];
        bucket_arn(r->role_arn, r->bucket, arn);
        if (strcmp(m->bucket.arn, arn) != 0)
            return fail(err, "/results/bucket/arn", "mismatch", "expected %s, got %s", arn,
                        m->bucket.arn);
    }
    if (m->has_report && r->mode != OB_MODE_NEW) {
        /* The account's own CUR: on the bucket the request names, if it
         * names one. */
        if (r->has_bucket && strcmp(m->report.bucket, r->bucket) != 0)
            return fail(err, "/results/report/bucket", "mismatch",
                        "the account's report delivers to %s, but the request names %s",
                        m->report.bucket, r->bucket);
    } else if (m->has_report) {
        const ob_report_result_t *p = &m->report;
        if (strcmp(p->name, r->report.name) != 0)
            return fail(err, "/results/report/name", "mismatch",
                        "the report made is %s, but the request names %s", p->name, r->report.name);
        if (strcmp(p->bucket, r->bucket) != 0)
            return fail(err, "/results/report/bucket", "mismatch",
                        "the report delivers to %s, but the request's bucket is %s", p->bucket,
                        r->bucket);
        if (strcmp(p->prefix, r->report.prefix) != 0)
            return fail(err, "/results/report/prefix", "mismatch",
                        "the report's prefix is \"%s\", but the request's is \"%s\"", p->prefix,
                        r->report.prefix);
        if (strcmp(p->region, r->region) != 0)
            return fail(err, "/results/report/region", "mismatch",
                        "the report's bucket region is %s, but the request's region is %s",
                        p->region, r->region);
    }
    if (m->has_stack) {
        char part[16], part2[16], acct[OB_ACCOUNT_ID_LEN];
        arn_partition(r->role_arn, part, sizeof part);
        ob_err_t rc = check_stack_place("/results/stack/id", m->stack.id, r->account_id, r->region,
                                        part, m->stack.name, err);
        if (rc != OB_OK)
            return rc;
        if (strcmp(arn_account(m->stack.role_arn, acct), r->account_id) != 0)
            return fail(err, "/results/stack/role_arn", "mismatch",
                        "the Billing Engine role is in account %s, but account_id is %s", acct,
                        r->account_id);
        if (strcmp(arn_partition(m->stack.role_arn, part2, sizeof part2), part) != 0)
            return fail(err, "/results/stack/role_arn", "mismatch",
                        "the Billing Engine role is in partition %s, but the request's is %s",
                        part2, part);
    }
    if (m->has_removed_stacks) {
        /* Stacks removed are the account's, in the role's partition (in
         * whichever region an earlier request made them). */
        char part[16], id[OB_STACK_ID_LEN + 1];
        arn_partition(r->role_arn, part, sizeof part);
        size_t i = 0;
        for (const char *p = m->removed_stacks; *p; i++) {
            size_t n = strcspn(p, ",");
            snprintf(id, sizeof id, "%.*s", (int)n, p);
            char f[64];
            snprintf(f, sizeof f, "/results/removed/stacks/%zu", i);
            ob_err_t rc = check_stack_place(f, id, r->account_id, NULL, part, NULL, err);
            if (rc != OB_OK)
                return rc;
            p += n + (p[n] == ',');
        }
    }
    return OB_OK;
}

/* The strings of a JSON array of strings, comma-separated, in mem ("" for
 * none). The schemas' names and ids have no commas. */
static const char *list_of(const json_t *a, ob_arena_t **mem)
{
    ob_buf_t b = {0};
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v)
    {
        if (i)
            ob_buf_append(&b, ",", 1);
        ob_buf_append(&b, json_string_value(v), json_string_length(v));
    }
    ob_buf_append(&b, "", 1);
    const char *out = keep(mem, b.data ? b.data : "");
    ob_buf_free(&b);
    return out;
}

/* A comma-separated list as a JSON array of strings (NULL: out of memory). */
static json_t *list_json(const char *list)
{
    json_t *a = json_array();
    for (const char *p = list; a && p && *p;) {
        size_t n = strcspn(p, ",");
        if (json_array_append_new(a, json_stringn(p, n)) != 0) {
            json_decref(a);
            return NULL;
        }
        p += n + (p[n] == ',');
    }
    return a;
}

static ob_err_t parse_stage(const json_t *o, ob_stage_msg_t *m, ob_msg_error_t *err)
{
    ob_err_t rc;
    ob_arena_t *mem = m->request.mem; /* the caller's, sized for the message: kept */
    m->request.mem = NULL;
    ob_stage_msg_clear(m);
    ob_stage_msg_init(m);
    m->request.mem = mem;
    const json_t *req = json_object_get(o, "request");
    if (is_stage(o) && json_is_object(req) &&
        (rc = check_cloud(req, "/request/cloud", err)) != OB_OK)
        return rc;
    if ((rc = validate(o, stage_version(o) == 2 ? STAGE_SCHEMA_2 : STAGE_SCHEMA, err)) != OB_OK)
        return rc;
    if (!m->request.mem)
        m->request.mem = arena_for(o);
    if ((rc = bind_request(req, "/request", &m->request, err)) != OB_OK)
        return rc;
    ob_arena_t **sm = &m->request.mem;
    m->stage = (ob_stage_t)enum_of(json_object_get(o, "stage"), STAGES);
    const json_t *res = json_object_get(o, "results"), *e;
    if ((e = json_object_get(res, "bucket"))) {
        m->bucket.name = str_of(e, "name", sm);
        m->bucket.region = str_of(e, "region", sm);
        m->bucket.arn = str_of(e, "arn", sm);
        m->has_bucket = 1;
    }
    if ((e = json_object_get(res, "report"))) {
        bind_report_result(e, &m->report, sm);
        m->has_report = 1;
    }
    if ((e = json_object_get(res, "stack"))) {
        m->stack.id = str_of(e, "id", sm);
        m->stack.name = str_of(e, "name", sm);
        m->stack.role_arn = str_of(e, "role_arn", sm);
        m->stack.external_id = str_of(e, "external_id", sm);
        m->has_stack = 1;
    }
    if ((e = json_object_get(res, "removed"))) {
        m->removed_reports = list_of(json_object_get(e, "reports"), sm);
        m->has_removed = 1;
        const json_t *stacks = json_object_get(e, "stacks");
        if (stacks) {
            m->removed_stacks = list_of(stacks, sm);
            m->has_removed_stacks = 1;
        }
    }
    bind_trace(json_object_get(o, "trace"), m->trace, sm);
    const char *replay = json_string_value(json_object_get(o, "replay_of"));
    snprintf(m->replay_of, sizeof m->replay_of, "%s", replay ? replay : "");
    return check_results(m, err);
}

void ob_stage_msg_init(ob_stage_msg_t *m)
{
    memset(m, 0, sizeof *m);
    ob_request_init(&m->request);
    m->bucket = (ob_bucket_result_t){"", "", ""};
    m->report = (ob_report_result_t){"", "", "", ""};
    m->stack = (ob_stack_result_t){"", "", "", ""};
    for (int i = 0; i < OB_STAGE__COUNT; i++)
        m->trace[i] = (ob_trace_t){0, "", "", 0, ""};
    m->removed_reports = m->removed_stacks = "";
}

void ob_stage_msg_clear(ob_stage_msg_t *m)
{
    if (!m)
        return;
    ob_request_clear(&m->request);
    memset(m, 0, sizeof *m);
}

ob_err_t ob_stage_parse(const char *json, size_t len, ob_stage_msg_t *out, ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    json_t *doc;
    ob_err_t rc = begin(json, len, OB_MSG_MAX_BYTES, out, sizeof *out, &doc, &err, &scratch);
    if (rc != OB_OK)
        return rc;
    rc = parse_stage(doc, out, err);
    json_decref(doc);
    if (rc != OB_OK)
        ob_stage_msg_clear(out);
    return rc;
}

/* ---- packing a parsed hand-off ---- */

/* Every string a hand-off points to, but its tags: what a pack must carry.
 * A string field added to the structs is added here, or a pack loses it
 * (the codec's tests pack and unpack every example and compare). */
#define STAGE_STRS (10 + 3 + 4 + 4 + 2 + 3 * OB_STAGE__COUNT)
static size_t stage_strs(ob_stage_msg_t *m, const char **f[STAGE_STRS])
{
    ob_request_t *r = &m->request;
    size_t n = 0;
    f[n++] = &r->request_id, f[n++] = &r->account_id, f[n++] = &r->region;
    f[n++] = &r->role_arn, f[n++] = &r->external_id, f[n++] = &r->bucket;
    f[n++] = &r->report.name, f[n++] = &r->report.prefix, f[n++] = &r->requester;
    f[n++] = &r->requested_at;
    f[n++] = &m->bucket.name, f[n++] = &m->bucket.region, f[n++] = &m->bucket.arn;
    f[n++] = &m->report.name, f[n++] = &m->report.bucket, f[n++] = &m->report.prefix;
    f[n++] = &m->report.region;
    f[n++] = &m->stack.id, f[n++] = &m->stack.name, f[n++] = &m->stack.role_arn;
    f[n++] = &m->stack.external_id;
    f[n++] = &m->removed_reports, f[n++] = &m->removed_stacks;
    for (int i = 0; i < OB_STAGE__COUNT; i++)
        f[n++] = &m->trace[i].started_at, f[n++] = &m->trace[i].finished_at,
        f[n++] = &m->trace[i].worker;
    return n;
}

struct ob_stage_packed_s {
    size_t raw; /* bytes it inflates to */
    size_t len; /* bytes of data */
    uint8_t data[];
};

/* What a pack inflates to: the struct (its string pointers replaced by
 * 1 + their offset in the strings, 0 for NULL), the tags (two offsets each),
 * then the strings, each with its NUL. */
typedef struct {
    ob_stage_msg_t m;
    size_t strings; /* offset of the strings */
} pack_head_t;

/* s added to the strings: its offset + 1 (0 for NULL). */
static uintptr_t pack_str(ob_buf_t *strs, const char *s)
{
    if (!s)
        return 0;
    uintptr_t off = strs->len + 1;
    ob_buf_append(strs, s, strlen(s) + 1);
    return off;
}

ob_stage_packed_t *ob_stage_msg_pack(ob_zip_t *z, ob_stage_msg_t *m)
{
    pack_head_t h;
    h.m = *m;
    ob_buf_t strs = {0}, raw = {0};
    const char **f[STAGE_STRS];
    size_t n = stage_strs(&h.m, f);
    const char *orig[STAGE_STRS];
    for (size_t i = 0; i < n; i++)
        orig[i] = *f[i];
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < i && orig[k] != orig[i]) /* fields sharing one string share its offset */
            k++;
        *f[i] = k < i ? *f[k] : (const char *)pack_str(&strs, orig[i]);
    }
    h.m.request.mem = NULL;
    h.m.request.tags = NULL;
    size_t ntags = m->request.ntags;
    uintptr_t *tags = ntags ? ob_malloc(2 * ntags * sizeof(*tags)) : NULL;
    for (size_t i = 0; i < ntags; i++) {
        tags[2 * i] = pack_str(&strs, m->request.tags[i].key);
        tags[2 * i + 1] = pack_str(&strs, m->request.tags[i].value);
    }
    h.strings = sizeof(h) + 2 * ntags * sizeof(*tags);
    ob_buf_append(&raw, &h, sizeof(h));
    if (ntags)
        ob_buf_append(&raw, tags, 2 * ntags * sizeof(*tags));
    ob_buf_append(&raw, strs.data ? strs.data : "", strs.len);
    free(tags);
    ob_buf_free(&strs);
    uint8_t *zipped;
    size_t zlen;
    ob_zip_pack(z, raw.data, raw.len, &zipped, &zlen);
    ob_stage_packed_t *p = ob_malloc(sizeof(*p) + zlen);
    p->raw = raw.len;
    p->len = zlen;
    memcpy(p->data, zipped, zlen);
    free(zipped);
    ob_buf_free(&raw);
    ob_stage_msg_clear(m);
    return p;
}

ob_err_t ob_stage_msg_unpack(ob_zip_t *z, ob_stage_packed_t *p, ob_stage_msg_t *out)
{
    ob_stage_msg_init(out);
    uint8_t *raw = ob_malloc(p->raw);
    ob_err_t rc = ob_zip_unpack(z, p->data, p->len, raw, p->raw);
    pack_head_t h;
    if (rc != OB_OK || p->raw < sizeof(h)) {
        free(raw);
        ob_stage_packed_free(p);
        return OB_ERR_PARSE;
    }
    memcpy(&h, raw, sizeof(h));
    size_t ntags = h.m.request.ntags, slen = p->raw - h.strings;
    ob_arena_t *mem = ob_arena_new_sized(slen);
    char *base = ob_arena_alloc(mem, slen ? slen : 1);
    memcpy(base, raw + h.strings, slen);
    const char **f[STAGE_STRS];
    size_t n = stage_strs(&h.m, f);
    for (size_t i = 0; i < n; i++) {
        uintptr_t off = (uintptr_t)*f[i];
        *f[i] = off ? base + off - 1 : NULL;
    }
    h.m.request.mem = mem;
    if (ntags) {
        const uintptr_t *tags = (const uintptr_t *)(raw + sizeof(h));
        h.m.request.tags = ob_malloc(ntags * sizeof(ob_tag_t));
        for (size_t i = 0; i < ntags; i++)
            h.m.request.tags[i] = (ob_tag_t){base + tags[2 * i] - 1, base + tags[2 * i + 1] - 1};
    }
    *out = h.m;
    free(raw);
    ob_stage_packed_free(p);
    return OB_OK;
}

void ob_stage_packed_free(ob_stage_packed_t *p)
{
    free(p);
}

size_t ob_stage_packed_size(const ob_stage_packed_t *p)
{
    return p ? sizeof(*p) + p->len : 0;
}

static json_t *trace_json(const ob_trace_t trace[OB_STAGE__COUNT])
{
    json_t *o = json_object();
    int bad = !o;
    for (int s = OB_STAGE_BUCKET; o && s < OB_STAGE__COUNT; s++) {
        const ob_trace_t *t = &trace[s];
        if (!t->present)
            continue;
        json_t *e = json_object();
        bad |= set_new(o, ob_stage_name((ob_stage_t)s), e);
        if (!e)
            break;
        bad |= set_str(e, "started_at", t->started_at) | set_str(e, "finished_at", t->finished_at) |
               set_new(e, "attempts", json_integer(t->attempts)) | set_str(e, "worker", t->worker);
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *report_result_json(const ob_report_result_t *p)
{
    json_t *o = json_object();
    if (o && (set_str(o, "name", p->name) | set_str(o, "bucket", p->bucket) |
              set_str(o, "prefix", p->prefix) | set_str(o, "region", p->region))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

const char *ob_stage_schema_of(const ob_request_t *r)
{
    return r->version == 2 ? OB_SCHEMA_STAGE_2 : OB_SCHEMA_STAGE;
}

/* The hand-off as a JSON object (NULL: out of memory). */
static json_t *stage_object(const ob_stage_msg_t *m)
{
    json_t *o = json_object(), *res = json_object();
    int bad = !o || !res;
    if (!bad) {
        bad |= set_str(o, "schema", m->request.version == 2 ? OB_SCHEMA_STAGE_2 : OB_SCHEMA_STAGE) |
               set_new(o, "request", ob_request_to_object(&m->request)) |
               set_str(o, "stage", ob_stage_name(m->stage)) | set_new(o, "results", res);
        res = NULL;
        json_t *r = json_object_get(o, "results");
        if (r && m->has_bucket) {
            json_t *b = json_object();
            bad |= set_new(r, "bucket", b);
            if (b)
                bad |= set_str(b, "name", m->bucket.name) | set_str(b, "region", m->bucket.region) |
                       set_str(b, "arn", m->bucket.arn);
        }
        if (r && m->has_report)
            bad |= set_new(r, "report", report_result_json(&m->report));
        if (r && m->has_stack) {
            json_t *s = json_object();
            bad |= set_new(r, "stack", s);
            if (s)
                bad |= set_str(s, "id", m->stack.id) | set_str(s, "name", m->stack.name) |
                       set_str(s, "role_arn", m->stack.role_arn) |
                       set_str(s, "external_id", m->stack.external_id);
        }
        if (r && m->has_removed) {
            json_t *x = json_object();
            bad |= set_new(r, "removed", x);
            if (x) {
                bad |= set_new(x, "reports", list_json(m->removed_reports));
                if (m->has_removed_stacks)
                    bad |= set_new(x, "stacks", list_json(m->removed_stacks));
            }
        }
        bad |= set_new(o, "trace", trace_json(m->trace));
        if (m->replay_of[0])
            bad |= set_str(o, "replay_of", m->replay_of);
    }
    json_decref(res);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

ob_err_t ob_stage_to_json(const ob_stage_msg_t *m, char **out, size_t *out_len, ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    err = err_or(err, &scratch);
    if (!m || !out)
        return OB_ERR_INVALID_ARG;
    *out = NULL;
    return dump_checked(stage_object(m), OB_MSG_STAGE, m, out, out_len, err);
}

ob_stage_t ob_stage_next(ob_mode_t mode, ob_stage_t done)
{
    if (mode == OB_MODE_OFFBOARD && done == OB_STAGE_INTAKE)
        return OB_STAGE_BUCKET;
    if (mode == OB_MODE_NEW || mode == OB_MODE_OFFBOARD) {
        switch (done) {
        case OB_STAGE_INTAKE:
            return OB_STAGE_BUCKET;
        case OB_STAGE_BUCKET:
            return OB_STAGE_CUR;
        case OB_STAGE_CUR:
            return OB_STAGE_IAM;
        case OB_STAGE_IAM:
            return OB_STAGE_CONNECT;
        default:
            return OB_STAGE__COUNT;
        }
    }
    switch (done) {
    case OB_STAGE_INTAKE:
        return OB_STAGE_IAM;
    case OB_STAGE_IAM:
        return OB_STAGE_CONNECT;
    default:
        return OB_STAGE__COUNT;
    }
}

void ob_stage_fill_bucket(ob_stage_msg_t *m)
{
    ob_request_t *r = &m->request;
    m->bucket.name = r->bucket; /* the request's strings: the same arena */
    m->bucket.region = r->region;
    char arn[BUCKET_ARN_LEN];
    m->bucket.arn = ob_request_str(r, bucket_arn(r->role_arn, r->bucket, arn));
    m->has_bucket = 1;
}

void ob_stage_fill_report(ob_stage_msg_t *m)
{
    const ob_request_t *r = &m->request;
    m->report.name = r->report.name;
    m->report.bucket = r->bucket;
    m->report.prefix = r->report.prefix;
    m->report.region = r->region;
    m->has_report = 1;
}

/* ------------------------------------------------------ connected events */

void ob_connected_key(const char *account_id, const char *role_arn, const char *external_id,
                      const ob_report_result_t *report, char out[OB_IDEMPOTENCY_LEN])
{
    /* Valid inputs total under 1,200 bytes; longer ones are invalid anyway. */
    char buf[2048];
    if (report)
        sfmt(buf, sizeof buf, "%s|%s|%s|%s|%s|%s|%s|%s", OB_SCHEMA_CONNECTED, account_id, role_arn,
             external_id, report->name, report->bucket, report->prefix, report->region);
    else
        sfmt(buf, sizeof buf, "%s|%s|%s|%s|", OB_SCHEMA_CONNECTED, account_id, role_arn,
             external_id);
    ob_sha256_hex(buf, strlen(buf), out);
}

typedef struct intake_pos_s {
    long long ts, offset;
    int partition;
    char topic[256];
} intake_pos_t;

static int intake_parse(const char *s, intake_pos_t *p)
{
    char *end;
    p->ts = strtoll(s, &end, 10);
    if (end == s || *end != ':')
        return -1;
    const char *t = end + 1, *colon = strchr(t, ':');
    if (!colon || (size_t)(colon - t) >= sizeof p->topic)
        return -1;
    memcpy(p->topic, t, (size_t)(colon - t));
    p->topic[colon - t] = '\0';
    p->partition = (int)strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != ':')
        return -1;
    const char *o = end + 1;
    p->offset = strtoll(o, &end, 10);
    return end == o || *end ? -1 : 0;
}

int ob_intake_cmp(const char *a, const char *b)
{
    intake_pos_t pa, pb;
    if (!a || !b || intake_parse(a, &pa) != 0 || intake_parse(b, &pb) != 0)
        return 0;
    if (!strcmp(pa.topic, pb.topic) && pa.partition == pb.partition)
        return pa.offset < pb.offset ? -1 : pa.offset > pb.offset;
    return pa.ts < pb.ts ? -1 : pa.ts > pb.ts;
}

void ob_request_desired(const ob_request_t *r, char out[OB_DESIRED_LEN])
{
    ob_buf_t b = {0};
    const ob_report_settings_t *rs = &r->report;
    if (r->mode == OB_MODE_OFFBOARD) {
        /* Every offboarding asks for the same: nothing of the fleet's left. */
        ob_buf_printf(&b, "desired/1|%s|offboard", r->account_id);
        goto digest;
    }
    ob_buf_printf(&b, "desired/1|%s|%s|%s|%s|%d|%s|%d", r->account_id,
                  r->mode == OB_MODE_NEW ? "new" : "existing", r->region, r->role_arn,
                  r->has_bucket, r->has_bucket ? r->bucket : "", r->has_report);
    if (r->has_report)
        ob_buf_printf(&b, "|%s|%s|%d|%d|%d|%u|%u|%d|%d", rs->name, rs->prefix, (int)rs->time_unit,
                      (int)rs->format, (int)rs->compression, rs->schema_elements, rs->artifacts,
                      rs->refresh_closed_reports, (int)rs->versioning);
    for (size_t i = 0; i < r->ntags; i++)
        ob_buf_printf(&b, "|%s=%s", r->tags[i].key, r->tags[i].value);
digest:;
    char hex[OB_SHA256_HEX_LEN];
    ob_sha256_hex(b.data ? b.data : "", b.len, hex);
    ob_buf_free(&b);
    snprintf(out, OB_DESIRED_LEN, "%.32s", hex);
}

static ob_err_t check_connected(const ob_connected_t *c, ob_msg_error_t *err);

static ob_err_t parse_connected(const json_t *o, ob_connected_t *c, ob_msg_error_t *err)
{
    ob_arena_t *mem = c->mem; /* the caller's, if any: kept */
    ob_connected_init(c);
    c->mem = mem;
    ob_err_t rc = validate(o, "onboard.connected.v1.json", err);
    if (rc != OB_OK)
        return rc;
    if (!c->mem)
        c->mem = arena_for(o);
    const char *key = json_string_value(json_object_get(o, "idempotency_key"));
    snprintf(c->idempotency_key, sizeof c->idempotency_key, "%s", key);
    c->account_id = str_of(o, "account_id", &c->mem);
    c->request_id = str_of(o, "request_id", &c->mem);
    c->mode = (ob_mode_t)enum_of(json_object_get(o, "mode"), MODES);
    c->role_arn = str_of(o, "role_arn", &c->mem);
    c->external_id = str_of(o, "external_id", &c->mem);
    const json_t *report = json_object_get(o, "report");
    if (report) {
        bind_report_result(report, &c->report, &c->mem);
        c->has_report = 1;
    }
    c->stack_id = str_of(o, "stack_id", &c->mem);
    c->connected_at = str_of(o, "connected_at", &c->mem);
    c->requested_at = str_of(o, "requested_at", &c->mem);
    bind_trace(json_object_get(o, "trace"), c->trace, &c->mem);
    return check_connected(c, err);
}

/* What the schema cannot say of a valid event: where the role and the stack
 * are, and its key. */
static ob_err_t check_connected(const ob_connected_t *c, ob_msg_error_t *err)
{
    ob_err_t rc;
    char acct[OB_ACCOUNT_ID_LEN], part[16];
    if (strcmp(arn_account(c->role_arn, acct), c->account_id) != 0)
        return fail(err, "/role_arn", "mismatch",
                    "the Billing Engine role is in account %s, but account_id is %s", acct,
                    c->account_id);
    arn_t sa;
    arn_split(c->stack_id, &sa);
    arn_partition(c->role_arn, part, sizeof part);
    if (strcmp(part, sa.partition) != 0)
        return fail(err, "/role_arn", "mismatch",
                    "the role is in partition %s, but the stack is in partition %s", part,
                    sa.partition);
    if ((rc = check_stack_place("/stack_id", c->stack_id, c->account_id, NULL, part, NULL, err)) !=
        OB_OK)
        return rc;
    if (c->has_report && c->mode == OB_MODE_NEW && strcmp(c->report.region, sa.region) != 0)
        return fail(err, "/report/region", "mismatch",
                    "the report's bucket is in %s, but the stack is in %s", c->report.region,
                    sa.region);
    char want[OB_IDEMPOTENCY_LEN];
    ob_connected_key(c->account_id, c->role_arn, c->external_id, c->has_report ? &c->report : NULL,
                     want);
    if (strcmp(want, c->idempotency_key) != 0)
        return fail(err, "/idempotency_key", "mismatch",
                    "expected %s, the SHA-256 of \"%s|%s|%s|<external_id>|<report>\"", want,
                    OB_SCHEMA_CONNECTED, c->account_id, c->role_arn);
    return OB_OK;
}

void ob_connected_init(ob_connected_t *c)
{
    memset(c, 0, sizeof *c);
    c->account_id = c->request_id = c->role_arn = c->external_id = c->stack_id = c->connected_at =
        c->requested_at = "";
    c->report = (ob_report_result_t){"", "", "", ""};
    for (int i = 0; i < OB_STAGE__COUNT; i++)
        c->trace[i] = (ob_trace_t){0, "", "", 0, ""};
}

const char *ob_connected_str(ob_connected_t *c, const char *s)
{
    return keep(&c->mem, s);
}

const char *ob_connected_printf(ob_connected_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *s = keepv(&c->mem, fmt, ap);
    va_end(ap);
    return s;
}

void ob_connected_clear(ob_connected_t *c)
{
    if (!c)
        return;
    ob_arena_free(c->mem);
    memset(c, 0, sizeof *c);
}

ob_err_t ob_connected_parse(const char *json, size_t len, ob_connected_t *out, ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    json_t *doc;
    ob_err_t rc = begin(json, len, OB_MSG_MAX_BYTES, out, sizeof *out, &doc, &err, &scratch);
    if (rc != OB_OK)
        return rc;
    rc = parse_connected(doc, out, err);
    json_decref(doc);
    if (rc != OB_OK)
        ob_connected_clear(out);
    return rc;
}

/* An event's start: the hand-off must be one that ob_stage_parse accepts
 * (its rules; the text is not needed), at stage connect, of an offboarding
 * or not as `offboard` says; `at` (the event's time, `field`) NULL or a
 * date-time. */
static ob_err_t event_of_handoff(const ob_stage_msg_t *m, int offboard, const char *field,
                                 const char *at, ob_msg_error_t *err)
{
    json_t *o = stage_object(m);
    if (!o)
        return nomem(err);
    ob_err_t rc = check_object(o, OB_MSG_STAGE, m, err);
    json_decref(o);
    if (rc != OB_OK)
        return rc;
    if (m->stage != OB_STAGE_CONNECT)
        return fail(err, "/stage", "combination",
                    "the event follows the connect stage, not stage %s", ob_stage_name(m->stage));
    if (offboard != (m->request.mode == OB_MODE_OFFBOARD))
        return fail(err, "/request/mode", "combination",
                    offboard ? "the disconnected event ends an offboarding, not mode %s"
                             : "mode %s ends with the disconnected event, not the connected one",
                    ob_mode_name(m->request.mode));
    if (at && !ob_msg_time_valid(at))
        return fail(err, field, "pattern", "\"%s\" is not an RFC 3339 date-time", ECHO(at));
    return OB_OK;
}

/* The hand-off's trace, copied into mem. */
static void copy_trace(ob_trace_t dst[OB_STAGE__COUNT], const ob_trace_t src[OB_STAGE__COUNT],
                       ob_arena_t **mem)
{
    for (int i = 0; i < OB_STAGE__COUNT; i++) {
        const ob_trace_t *t = &src[i];
        dst[i] = (ob_trace_t){t->present, keep(mem, t->started_at), keep(mem, t->finished_at),
                              t->attempts, keep(mem, t->worker)};
    }
}

ob_err_t ob_connected_from_stage(const ob_stage_msg_t *m, const char *connected_at,
                                 ob_connected_t *out, ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    err = err_or(err, &scratch);
    if (!m || !out)
        return OB_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    ob_err_t rc = event_of_handoff(m, 0, "/connected_at", connected_at, err);
    if (rc != OB_OK)
        return rc;
    const ob_request_t *r = &m->request;
    ob_connected_init(out);
    out->account_id = keep(&out->mem, r->account_id);
    out->request_id = keep(&out->mem, r->request_id);
    out->mode = r->mode;
    out->role_arn = keep(&out->mem, m->stack.role_arn);
    out->external_id = keep(&out->mem, m->stack.external_id);
    if (m->has_report) {
        /* A new account's report, or the CUR an existing one already had. */
        out->report.name = keep(&out->mem, m->report.name);
        out->report.bucket = keep(&out->mem, m->report.bucket);
        out->report.prefix = keep(&out->mem, m->report.prefix);
        out->report.region = keep(&out->mem, m->report.region);
        out->has_report = 1;
    }
    out->stack_id = keep(&out->mem, m->stack.id);
    char now[OB_TIME_LEN];
    if (!connected_at) {
        ob_msg_now(now);
        connected_at = now;
    }
    out->connected_at = keep(&out->mem, connected_at);
    out->requested_at = keep(&out->mem, r->requested_at);
    copy_trace(out->trace, m->trace, &out->mem);
    ob_connected_key(out->account_id, out->role_arn, out->external_id,
                     out->has_report ? &out->report : NULL, out->idempotency_key);
    return OB_OK;
}

ob_err_t ob_connected_to_json(const ob_connected_t *c, char **out, size_t *out_len,
                              ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    err = err_or(err, &scratch);
    if (!c || !out)
        return OB_ERR_INVALID_ARG;
    *out = NULL;
    json_t *o = json_object();
    if (!o)
        return nomem(err);
    int bad = set_str(o, "schema", OB_SCHEMA_CONNECTED) |
              set_str(o, "idempotency_key", c->idempotency_key) |
              set_str(o, "account_id", c->account_id) | set_str(o, "request_id", c->request_id) |
              set_str(o, "mode", ob_mode_name(c->mode)) | set_str(o, "role_arn", c->role_arn) |
              set_str(o, "external_id", c->external_id);
    if (c->has_report)
        bad |= set_new(o, "report", report_result_json(&c->report));
    bad |= set_str(o, "stack_id", c->stack_id) | set_str(o, "connected_at", c->connected_at);
    if (c->requested_at[0])
        bad |= set_str(o, "requested_at", c->requested_at);
    bad |= set_new(o, "trace", trace_json(c->trace));
    if (bad) {
        json_decref(o);
        return nomem(err);
    }
    return dump_checked(o, OB_MSG_CONNECTED, c, out, out_len, err);
}

/* ---------------------------------------------------- disconnected events */

/* The key of an event that names one request's outcome for an account:
 * lowercase hex SHA-256 of "SCHEMA|ACCOUNT|REQUEST_ID". */
static void request_key(const char *schema, const char *account_id, const char *request_id,
                        char out[OB_IDEMPOTENCY_LEN])
{
    char buf[512];
    sfmt(buf, sizeof buf, "%s|%s|%s", schema, account_id, request_id);
    ob_sha256_hex(buf, strlen(buf), out);
}

static ob_err_t check_request_key(const char *schema, const char *account_id,
                                  const char *request_id, const char *have, ob_msg_error_t *err)
{
    char want[OB_IDEMPOTENCY_LEN];
    request_key(schema, account_id, request_id, want);
    if (strcmp(want, have) != 0)
        return fail(err, "/idempotency_key", "mismatch", "expected %s, the SHA-256 of \"%s|%s|%s\"",
                    want, schema, account_id, request_id);
    return OB_OK;
}

/* The start of reading such an event: its schema checked, an arena for its
 * strings (the caller's kept), its key, account and request. */
static ob_err_t event_begin(const json_t *o, const char *file, ob_arena_t **mem,
                            char key[OB_IDEMPOTENCY_LEN], const char **account,
                            const char **request_id, ob_msg_error_t *err)
{
    ob_err_t rc = validate(o, file, err);
    if (rc != OB_OK)
        return rc;
    if (!*mem)
        *mem = arena_for(o);
    snprintf(key, OB_IDEMPOTENCY_LEN, "%s",
             json_string_value(json_object_get(o, "idempotency_key")));
    *account = str_of(o, "account_id", mem);
    *request_id = str_of(o, "request_id", mem);
    return OB_OK;
}

void ob_disconnected_key(const char *account_id, const char *request_id,
                         char out[OB_IDEMPOTENCY_LEN])
{
    request_key(OB_SCHEMA_DISCONNECTED, account_id, request_id, out);
}

void ob_disconnected_init(ob_disconnected_t *d)
{
    memset(d, 0, sizeof *d);
    d->account_id = d->request_id = d->connection_key = d->role_arn = d->removed_reports =
        d->removed_stacks = d->kept_buckets = d->disconnected_at = d->requested_at = "";
    for (int i = 0; i < OB_STAGE__COUNT; i++)
        d->trace[i] = (ob_trace_t){0, "", "", 0, ""};
}

void ob_disconnected_clear(ob_disconnected_t *d)
{
    if (!d)
        return;
    ob_arena_free(d->mem);
    memset(d, 0, sizeof *d);
}

const char *ob_disconnected_str(ob_disconnected_t *d, const char *s)
{
    return keep(&d->mem, s);
}

/* What the schema cannot say of a valid event: the role and the stacks are
 * the account's, and its key. */
static ob_err_t check_disconnected(const ob_disconnected_t *d, ob_msg_error_t *err)
{
    char acct[OB_ACCOUNT_ID_LEN], part[16] = "", id[OB_STACK_ID_LEN + 1], f[64];
    if (d->role_arn[0]) {
        if (strcmp(arn_account(d->role_arn, acct), d->account_id) != 0)
            return fail(err, "/role_arn", "mismatch",
                        "the Billing Engine role was in account %s, but account_id is %s", acct,
                        d->account_id);
        arn_partition(d->role_arn, part, sizeof part);
    }
    size_t i = 0;
    for (const char *p = d->removed_stacks; *p; i++) {
        size_t n = strcspn(p, ",");
        snprintf(id, sizeof id, "%.*s", (int)n, p);
        snprintf(f, sizeof f, "/removed/stacks/%zu", i);
        arn_t sa;
        if (!arn_split(id, &sa))
            return fail(err, f, "pattern", "not a stack ARN");
        ob_err_t rc =
            check_stack_place(f, id, d->account_id, NULL, part[0] ? part : sa.partition, NULL, err);
        if (rc != OB_OK)
            return rc;
        p += n + (p[n] == ',');
    }
    return check_request_key(OB_SCHEMA_DISCONNECTED, d->account_id, d->request_id,
                             d->idempotency_key, err);
}

static ob_err_t parse_disconnected(const json_t *o, ob_disconnected_t *d, ob_msg_error_t *err)
{
    ob_arena_t *mem = d->mem;
    ob_disconnected_init(d);
    d->mem = mem;
    ob_err_t rc = event_begin(o, "onboard.disconnected.v1.json", &d->mem, d->idempotency_key,
                              &d->account_id, &d->request_id, err);
    if (rc != OB_OK)
        return rc;
    d->connection_key = str_of(o, "connection_key", &d->mem);
    d->role_arn = str_of(o, "role_arn", &d->mem);
    const json_t *removed = json_object_get(o, "removed");
    d->removed_reports = list_of(json_object_get(removed, "reports"), &d->mem);
    d->removed_stacks = list_of(json_object_get(removed, "stacks"), &d->mem);
    d->kept_buckets = list_of(json_object_get(o, "kept_buckets"), &d->mem);
    d->disconnected_at = str_of(o, "disconnected_at", &d->mem);
    d->requested_at = str_of(o, "requested_at", &d->mem);
    bind_trace(json_object_get(o, "trace"), d->trace, &d->mem);
    return check_disconnected(d, err);
}

ob_err_t ob_disconnected_parse(const char *json, size_t len, ob_disconnected_t *out,
                               ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    json_t *doc;
    ob_err_t rc = begin(json, len, OB_MSG_MAX_BYTES, out, sizeof *out, &doc, &err, &scratch);
    if (rc != OB_OK)
        return rc;
    rc = parse_disconnected(doc, out, err);
    json_decref(doc);
    if (rc != OB_OK)
        ob_disconnected_clear(out);
    return rc;
}

ob_err_t ob_disconnected_from_stage(const ob_stage_msg_t *m, const char *connection_key,
                                    const char *role_arn, const char *kept_buckets,
                                    const char *disconnected_at, ob_disconnected_t *out,
                                    ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    err = err_or(err, &scratch);
    if (!m || !out)
        return OB_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    ob_err_t rc = event_of_handoff(m, 1, "/disconnected_at", disconnected_at, err);
    if (rc != OB_OK)
        return rc;
    const ob_request_t *r = &m->request;
    ob_disconnected_init(out);
    out->account_id = keep(&out->mem, r->account_id);
    out->request_id = keep(&out->mem, r->request_id);
    out->connection_key = keep(&out->mem, connection_key ? connection_key : "");
    out->role_arn = keep(&out->mem, role_arn ? role_arn : "");
    out->removed_reports = keep(&out->mem, m->removed_reports);
    out->removed_stacks = keep(&out->mem, m->removed_stacks);
    out->kept_buckets = keep(&out->mem, kept_buckets ? kept_buckets : "");
    char now[OB_TIME_LEN];
    if (!disconnected_at) {
        ob_msg_now(now);
        disconnected_at = now;
    }
    out->disconnected_at = keep(&out->mem, disconnected_at);
    out->requested_at = keep(&out->mem, r->requested_at);
    copy_trace(out->trace, m->trace, &out->mem);
    ob_disconnected_key(out->account_id, out->request_id, out->idempotency_key);
    return OB_OK;
}

ob_err_t ob_disconnected_to_json(const ob_disconnected_t *d, char **out, size_t *out_len,
                                 ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    err = err_or(err, &scratch);
    if (!d || !out)
        return OB_ERR_INVALID_ARG;
    *out = NULL;
    json_t *o = json_object(), *removed = json_object();
    int bad = !o || !removed;
    if (!bad) {
        bad |= set_str(o, "schema", OB_SCHEMA_DISCONNECTED) |
               set_str(o, "idempotency_key", d->idempotency_key) |
               set_str(o, "account_id", d->account_id) | set_str(o, "request_id", d->request_id);
        if (d->connection_key[0])
            bad |= set_str(o, "connection_key", d->connection_key);
        if (d->role_arn[0])
            bad |= set_str(o, "role_arn", d->role_arn);
        bad |= set_new(removed, "reports", list_json(d->removed_reports)) |
               set_new(removed, "stacks", list_json(d->removed_stacks)) |
               set_new(o, "removed", removed);
        removed = NULL;
        bad |= set_new(o, "kept_buckets", list_json(d->kept_buckets)) |
               set_str(o, "disconnected_at", d->disconnected_at);
        if (d->requested_at[0])
            bad |= set_str(o, "requested_at", d->requested_at);
        bad |= set_new(o, "trace", trace_json(d->trace));
    }
    json_decref(removed);
    if (bad) {
        json_decref(o);
        return nomem(err);
    }
    return dump_checked(o, OB_MSG_DISCONNECTED, d, out, out_len, err);
}

/* ---------------------------------------------------------- dead letters */

static const char *const TRUNCATED_PARTS[] = {"payload", "key", "headers", NULL};
static const char *const DLQ_STAGES[] = {"intake", "bucket", "cur", "iam", "connect", NULL};

#define TRUNC_PAYLOAD 0x1u
#define TRUNC_KEY     0x2u
#define TRUNC_HEADERS 0x4u

ob_dlq_class_t ob_dlq_class_for(const ob_msg_error_t *err)
{
    return err && strcmp(err->code, "unsupported_cloud") == 0 ? OB_DLQ_UNSUPPORTED_CLOUD
                                                              : OB_DLQ_INVALID_INPUT;
}

void ob_dlq_id(const char *topic, int32_t partition, int64_t offset, char out[OB_DLQ_ID_LEN])
{
    char buf[320];
    char hex[OB_SHA256_HEX_LEN];
    snprintf(buf, sizeof buf, "%s|%s|%ld|%lld", OB_SCHEMA_DLQ, topic, (long)partition,
             (long long)offset);
    ob_sha256_hex(buf, strlen(buf), hex);
    memcpy(out, hex, 32);
    out[32] = '\0';
}

static ob_err_t parse_dlq(const json_t *o, ob_dlq_t *d, ob_msg_error_t *err)
{
    ob_err_t rc = validate(o, "onboard.dlq.v1.json", err);
    if (rc != OB_OK)
        return rc;
    const json_t *orig = json_object_get(o, "original"), *e = json_object_get(o, "error"),
                 *w = json_object_get(o, "worker"), *j;
    d->dlq_id = json_string_value(json_object_get(o, "dlq_id"));
    d->stage = (ob_stage_t)enum_of(json_object_get(o, "stage"), DLQ_STAGES);
    d->account_id = json_string_value(json_object_get(o, "account_id"));
    d->request_id = json_string_value(json_object_get(o, "request_id"));
    d->topic = json_string_value(json_object_get(orig, "topic"));
    d->partition = (int32_t)json_integer_value(json_object_get(orig, "partition"));
    d->offset = (int64_t)json_integer_value(json_object_get(orig, "offset"));
    d->key = json_string_value(json_object_get(orig, "key"));
    d->payload = json_object_get(orig, "payload");
    d->payload_b64 = json_string_value(json_object_get(orig, "payload_base64"));
    d->payload_size = (int64_t)json_integer_value(json_object_get(orig, "payload_size"));
    const char *sha = json_string_value(json_object_get(orig, "payload_sha256"));
    unsigned trunc = set_of(json_object_get(orig, "truncated"), TRUNCATED_PARTS);
    d->truncated = trunc != 0;
    d->cls = (ob_dlq_class_t)enum_of(json_object_get(e, "class"), DLQ_CLASSES);
    d->code = json_string_value(json_object_get(e, "code"));
    d->message = json_string_value(json_object_get(e, "message"));
    d->field = json_string_value(json_object_get(e, "field"));
    d->aws_request_id = json_string_value(json_object_get(e, "aws_request_id"));
    j = json_object_get(e, "http_status");
    d->http_status = j ? (int)json_integer_value(j) : 0;
    d->attempts = (int)json_integer_value(json_object_get(o, "attempts"));
    d->first_failure_at = json_string_value(json_object_get(o, "first_failure_at"));
    d->last_failure_at = json_string_value(json_object_get(o, "last_failure_at"));
    d->worker_name = json_string_value(json_object_get(w, "name"));
    d->worker_version = json_string_value(json_object_get(w, "version"));
    d->worker_host = json_string_value(json_object_get(w, "host"));
    d->replayable = json_is_true(json_object_get(o, "replayable"));

    /* What the schema cannot say: the digests. */
    char id[OB_DLQ_ID_LEN];
    ob_dlq_id(d->topic, d->partition, d->offset, id);
    if (strcmp(id, d->dlq_id) != 0)
        return fail(err, "/dlq_id", "mismatch",
                    "expected %s, the id of topic %s, partition %ld, offset %lld", id, d->topic,
                    (long)d->partition, (long long)d->offset);
    if (d->payload_b64) {
        uint8_t *raw = NULL;
        size_t rawlen = 0;
        if (ob_base64_decode(d->payload_b64, strlen(d->payload_b64), &raw, &rawlen) != OB_OK)
            return fail(err, "/original/payload_base64", "pattern", "is not valid base64");
        char hex[OB_SHA256_HEX_LEN];
        ob_sha256_hex(raw, rawlen, hex);
        free(raw);
        if (trunc & TRUNC_PAYLOAD) {
            if ((int64_t)rawlen >= d->payload_size)
                return fail(err, "/original/payload_size", "mismatch",
                            "a truncated payload keeps fewer bytes (%zu) than payload_size (%lld)",
                            rawlen, (long long)d->payload_size);
        } else {
            if ((int64_t)rawlen != d->payload_size)
                return fail(err, "/original/payload_size", "mismatch",
                            "payload_base64 holds %zu bytes, but payload_size is %lld", rawlen,
                            (long long)d->payload_size);
            if (strcmp(hex, sha) != 0)
                return fail(err, "/original/payload_sha256", "mismatch",
                            "the SHA-256 of payload_base64's bytes is %s", hex);
        }
    }
    return OB_OK;
}

void ob_dlq_clear(ob_dlq_t *d)
{
    if (!d)
        return;
    json_decref(d->doc);
    memset(d, 0, sizeof *d);
}

ob_err_t ob_dlq_parse(const char *json, size_t len, ob_dlq_t *out, ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    json_t *doc;
    ob_err_t rc = begin(json, len, OB_DLQ_MAX_BYTES, out, sizeof *out, &doc, &err, &scratch);
    if (rc != OB_OK)
        return rc;
    out->doc = doc;
    rc = parse_dlq(doc, out, err);
    if (rc != OB_OK)
        ob_dlq_clear(out);
    return rc;
}

ob_err_t ob_dlq_original(const ob_dlq_t *d, char **out, size_t *out_len)
{
    if (!d || !d->doc || !out || !out_len)
        return OB_ERR_INVALID_ARG;
    *out = NULL;
    *out_len = 0;
    const json_t *orig = json_object_get(d->doc, "original");
    const json_t *tr = json_object_get(orig, "truncated");
    size_t i;
    const json_t *v;
    json_array_foreach(tr, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), "payload") == 0)
            return OB_ERR_STATE;
    }
    if (d->payload) {
        char *text = json_dumps(d->payload, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text)
            return OB_ERR_NOMEM;
        *out = text;
        *out_len = strlen(text);
        return OB_OK;
    }
    uint8_t *raw;
    size_t n;
    ob_err_t rc = ob_base64_decode(d->payload_b64, strlen(d->payload_b64), &raw, &n);
    if (rc != OB_OK)
        return rc;
    *out = (char *)raw;
    *out_len = n;
    return OB_OK;
}

/* Nesting depth of a JSON value, counting stops at limit. */
static int json_depth(const json_t *v, int limit)
{
    if (limit <= 0)
        return 1;
    int best = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        json_object_foreach((json_t *)v, k, c)
        {
            int d = json_depth(c, limit - 1);
            if (d > best)
                best = d;
        }
        return best + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        const json_t *c;
        json_array_foreach(v, i, c)
        {
            int d = json_depth(c, limit - 1);
            if (d > best)
                best = d;
        }
        return best + 1;
    }
    return 0;
}

/* The original payload as JSON, or NULL when it must be kept as bytes. */
static json_t *dlq_parse_payload(const void *p, size_t n)
{
    if (!p || n == 0 || n > OB_MSG_MAX_BYTES || memchr(p, 0, n) ||
        !utf8_valid((const unsigned char *)p, n, NULL))
        return NULL;
    json_error_t je;
    json_t *v = json_loadb(p, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!v)
        return NULL;
    /* The record adds two levels; stay well inside jansson's 2048. */
    char *text = json_depth(v, 1100) < 1000 ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (!text || strlen(text) > DLQ_MAX_PARSED_DUMP) {
        free(text);
        json_decref(v);
        return NULL;
    }
    free(text);
    return v;
}

#define ACCOUNT_ID_DEF "onboard.defs.v1.json#/$defs/account_id"
#define REQUEST_ID_DEF "onboard.defs.v1.json#/$defs/request_id"

static void ids_from_payload(const json_t *p, char acct[OB_ACCOUNT_ID_LEN],
                             char rid[OB_REQUEST_ID_LEN])
{
    const json_t *srcs[2] = {p, json_is_object(p) ? json_object_get(p, "request") : NULL};
    for (int i = 0; i < 2; i++) {
        if (!json_is_object(srcs[i]))
            continue;
        const char *a = json_string_value(json_object_get(srcs[i], "account_id"));
        const char *r = json_string_value(json_object_get(srcs[i], "request_id"));
        if (!acct[0] && a && valid_as(ACCOUNT_ID_DEF, a))
            snprintf(acct, OB_ACCOUNT_ID_LEN, "%s", a);
        if (!rid[0] && r && valid_as(REQUEST_ID_DEF, r))
            snprintf(rid, OB_REQUEST_ID_LEN, "%s", r);
    }
}

static int set_b64(json_t *o, const char *key, const void *p, size_t n)
{
    char *b = ob_base64_encode(p, n);
    if (!b)
        return -1;
    int rc = set_str(o, key, b);
    free(b);
    return rc;
}

/* Free text made valid UTF-8 and at most max_chars long; fallback when empty. */
static int set_text(json_t *o, const char *key, const char *s, size_t max_chars,
                    const char *fallback)
{
    if (!s || !*s)
        return set_str(o, key, fallback);
    size_t cap = max_chars * 4 + 1;
    char *buf = ob_malloc(cap);
    if (!buf)
        return -1;
    utf8_sanitize(buf, cap, s, strlen(s), max_chars);
    int rc = set_str(o, key, buf[0] ? buf : fallback);
    free(buf);
    return rc;
}

ob_err_t ob_dlq_build(const ob_dlq_input_t *in, char **out, size_t *out_len, char *errstr,
                      size_t errstr_size)
{
    if (!in || !out)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "dlq: NULL argument");
    *out = NULL;
    if (!in->topic ||
        !valid_as("onboard.dlq.v1.json#/properties/original/properties/topic", in->topic))
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "dlq: topic: %s",
                       in->topic ? "not a Kafka topic name" : "missing");
    if (in->partition < 0 || in->offset < 0)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "dlq: partition and offset must be >= 0");
    if ((unsigned)in->stage >= OB_STAGE__COUNT || (unsigned)in->cls > OB_DLQ_UNSUPPORTED_CLOUD)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "dlq: unknown stage or class");

    json_t *parsed = dlq_parse_payload(in->payload, in->payload_len);
    char acct[OB_ACCOUNT_ID_LEN] = "", rid[OB_REQUEST_ID_LEN] = "";
    if (in->account_id && valid_as(ACCOUNT_ID_DEF, in->account_id))
        snprintf(acct, sizeof acct, "%s", in->account_id);
    if (in->request_id && valid_as(REQUEST_ID_DEF, in->request_id))
        snprintf(rid, sizeof rid, "%s", in->request_id);
    ids_from_payload(parsed, acct, rid);
    if (!acct[0] && in->key && in->key_len < OB_ACCOUNT_ID_LEN &&
        !memchr(in->key, 0, in->key_len)) {
        char k[OB_ACCOUNT_ID_LEN];
        snprintf(k, sizeof k, "%.*s", (int)in->key_len, (const char *)in->key);
        if (valid_as(ACCOUNT_ID_DEF, k))
            snprintf(acct, sizeof acct, "%s", k);
    }

    char id[OB_DLQ_ID_LEN];
    ob_dlq_id(in->topic, in->partition, in->offset, id);
    unsigned trunc = 0;
    json_t *o = json_object(), *orig = json_object(), *hdrs = json_array(), *e = json_object(),
           *w = json_object();
    int bad = !o || !orig || !hdrs || !e || !w;
    if (bad) {
        json_decref(o), json_decref(orig), json_decref(hdrs), json_decref(e), json_decref(w);
        json_decref(parsed);
        return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "dlq: out of memory");
    }
    bad |= set_str(o, "schema", OB_SCHEMA_DLQ) | set_str(o, "dlq_id", id) |
           set_str(o, "stage", DLQ_STAGES[in->stage]);
    if (acct[0])
        bad |= set_str(o, "account_id", acct);
    if (rid[0])
        bad |= set_str(o, "request_id", rid);

    /* original */
    bad |= set_str(orig, "topic", in->topic) |
           set_new(orig, "partition", json_integer(in->partition)) |
           set_new(orig, "offset", json_integer(in->offset));
    if (in->key) {
        size_t kl = in->key_len;
        if (kl <= OB_DLQ_MAX_KEY && !memchr(in->key, 0, kl) &&
            utf8_valid((const unsigned char *)in->key, kl, NULL)) {
            json_t *k = json_stringn(in->key, kl);
            bad |= set_new(orig, "key", k);
        } else {
            if (kl > OB_DLQ_MAX_KEY) {
                kl = OB_DLQ_MAX_KEY;
                trunc |= TRUNC_KEY;
            }
            bad |= set_b64(orig, "key_base64", in->key, kl);
        }
    }
    if (parsed) {
        bad |= set_new(orig, "payload", parsed);
        parsed = NULL;
    } else {
        size_t pl = in->payload ? in->payload_len : 0;
        if (pl > OB_DLQ_MAX_RAW) {
            pl = OB_DLQ_MAX_RAW;
            trunc |= TRUNC_PAYLOAD;
        }
        if (in->arrived_sha256) {
            /* The arrived bytes are gone and no JSON encoding of them was
             * had: nothing of them can be given. */
            pl = 0;
            trunc |= TRUNC_PAYLOAD;
        }
        bad |= set_b64(orig, "payload_base64", in->payload ? in->payload : "", pl);
    }
    char sha[OB_SHA256_HEX_LEN];
    size_t size = in->payload ? in->payload_len : 0;
    if (in->arrived_sha256) {
        ob_hex(in->arrived_sha256, OB_SHA256_LEN, sha);
        size = in->arrived_len;
    } else {
        ob_sha256_hex(in->payload ? in->payload : "", size, sha);
    }
    bad |= set_new(orig, "payload_size", json_integer((json_int_t)size)) |
           set_str(orig, "payload_sha256", sha);
    for (size_t i = 0; i < in->nheaders && in->headers; i++) {
        const ob_msg_header_t *h = &in->headers[i];
        if (json_array_size(hdrs) >= OB_DLQ_MAX_HDRS) {
            trunc |= TRUNC_HEADERS;
            break;
        }
        if (!h->name || !h->name[0] || strlen(h->name) > OB_DLQ_MAX_HNAME ||
            (h->value && h->value_len > OB_DLQ_MAX_HVAL)) {
            trunc |= TRUNC_HEADERS;
            continue;
        }
        json_t *ho = json_object();
        if (!ho || json_array_append_new(hdrs, ho) != 0) {
            bad = 1;
            break;
        }
        bad |= set_text(ho, "name", h->name, OB_DLQ_MAX_HNAME, "?");
        if (h->value) {
            if (!memchr(h->value, 0, h->value_len) &&
                utf8_valid((const unsigned char *)h->value, h->value_len, NULL))
                bad |= set_new(ho, "value", json_stringn(h->value, h->value_len));
            else
                bad |= set_b64(ho, "value_base64", h->value, h->value_len);
        }
    }
    bad |= set_new(orig, "headers", hdrs);
    if (trunc) {
        json_t *t = json_array();
        for (unsigned b = 0; t && TRUNCATED_PARTS[b]; b++)
            if (trunc & (1u << b))
                bad |= json_array_append_new(t, json_string(TRUNCATED_PARTS[b]));
        bad |= set_new(orig, "truncated", t);
    }
    int has_payload = json_object_get(orig, "payload") != NULL;
    bad |= set_new(o, "original", orig);

    /* error */
    char code[65];
    size_t cl = 0;
    for (const char *c = in->code ? in->code : ""; *c && cl < 64; c++)
        code[cl++] = (is_alnum(*c) || strchr("_.:-", *c)) ? *c : '_';
    code[cl] = '\0';
    bad |= set_str(e, "class", DLQ_CLASSES[in->cls]) | set_str(e, "code", cl ? code : "unknown") |
           set_text(e, "message", in->message, OB_PROTO_DLQ_MESSAGE_MAX, "(no message)");
    if (in->field && in->field[0] && strlen(in->field) <= OB_PROTO_DLQ_FIELD_MAX &&
        utf8_valid((const unsigned char *)in->field, strlen(in->field), NULL) &&
        valid_as("onboard.dlq.v1.json#/properties/error/properties/field", in->field))
        bad |= set_str(e, "field", in->field);
    if (in->aws_request_id &&
        valid_as("onboard.dlq.v1.json#/properties/error/properties/aws_request_id",
                 in->aws_request_id))
        bad |= set_str(e, "aws_request_id", in->aws_request_id);
    if (in->http_status >= 100 && in->http_status <= 599)
        bad |= set_new(e, "http_status", json_integer(in->http_status));
    bad |= set_new(o, "error", e);

    char now[OB_TIME_LEN];
    ob_msg_now(now);
    bad |= set_new(o, "attempts", json_integer(in->attempts < 1 ? 1 : in->attempts)) |
           set_str(o, "first_failure_at",
                   ob_msg_time_valid(in->first_failure_at) ? in->first_failure_at : now) |
           set_str(o, "last_failure_at",
                   ob_msg_time_valid(in->last_failure_at) ? in->last_failure_at : now);
    bad |= set_text(w, "name", in->worker_name, OB_PROTO_DLQ_WORKER_MAX, "unknown") |
           set_text(w, "version", in->worker_version, OB_PROTO_DLQ_WORKER_MAX, "unknown") |
           set_text(w, "host", in->worker_host, OB_PROTO_DLQ_WORKER_MAX, "unknown");
    bad |= set_new(o, "worker", w);
    int replayable = in->replayable;
    if (replayable < 0)
        replayable =
            has_payload && (in->cls == OB_DLQ_PERMANENT || in->cls == OB_DLQ_RETRIES_EXHAUSTED);
    bad |= set_new(o, "replayable", json_boolean(replayable && has_payload));
    json_decref(parsed);
    if (bad) {
        json_decref(o);
        return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "dlq: out of memory");
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "dlq: out of memory");
    ob_msg_error_t verr;
    if (ob_msg_validate(OB_MSG_DLQ, text, strlen(text), &verr) != OB_OK) {
        free(text);
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "dlq: the record built does not validate (a bug): %s", verr.message);
    }
    *out = text;
    if (out_len)
        *out_len = strlen(text);
    return OB_OK;
}

/* -------------------------------------------------------------- generic */

ob_err_t ob_msg_validate(ob_msg_kind_t kind, const char *json, size_t len, ob_msg_error_t *err)
{
    ob_err_t rc;
    switch (kind) {
    case OB_MSG_REQUEST: {
        ob_request_t r;
        rc = ob_request_parse(json, len, &r, err);
        ob_request_clear(&r);
        return rc;
    }
    case OB_MSG_STAGE: {
        ob_stage_msg_t *m = ob_malloc(sizeof *m);
        if (!m)
            return OB_ERR_NOMEM;
        rc = ob_stage_parse(json, len, m, err);
        ob_stage_msg_clear(m);
        free(m);
        return rc;
    }
    case OB_MSG_CONNECTED: {
        ob_connected_t *c = ob_malloc(sizeof *c);
        if (!c)
            return OB_ERR_NOMEM;
        rc = ob_connected_parse(json, len, c, err);
        ob_connected_clear(c);
        free(c);
        return rc;
    }
    case OB_MSG_DLQ: {
        ob_dlq_t d;
        rc = ob_dlq_parse(json, len, &d, err);
        ob_dlq_clear(&d);
        return rc;
    }
    case OB_MSG_DISCONNECTED: {
        ob_disconnected_t d;
        rc = ob_disconnected_parse(json, len, &d, err);
        ob_disconnected_clear(&d);
        return rc;
    }
    case OB_MSG_VERIFY: {
        ob_verify_msg_t v;
        rc = ob_verify_parse(json, len, &v, err);
        ob_verify_clear(&v);
        return rc;
    }
    case OB_MSG_DRIFT: {
        ob_drift_t *d = ob_malloc(sizeof(*d));
        rc = ob_drift_parse(json, len, d, err);
        ob_drift_clear(d);
        free(d);
        return rc;
    }
    default:
        return OB_ERR_INVALID_ARG;
    }
}

/* ------------------------------------------------- verification requests */

void ob_verify_init(ob_verify_msg_t *v)
{
    memset(v, 0, sizeof(*v));
    ob_request_init(&v->request);
    v->request_id = v->account_id = v->connection_key = v->stack_id = v->role_arn = v->requester =
        v->requested_at = "";
}

void ob_verify_clear(ob_verify_msg_t *v)
{
    if (!v)
        return;
    ob_request_clear(&v->request);
    memset(v, 0, sizeof(*v));
}

static ob_err_t check_verify(const ob_verify_msg_t *v, ob_msg_error_t *err)
{
    char acct[OB_ACCOUNT_ID_LEN];
    if (strcmp(v->request.account_id, v->account_id) != 0)
        return fail(err, "/request/account_id", "mismatch",
                    "the request is account %s's, but account_id is %s", v->request.account_id,
                    v->account_id);
    if (strcmp(arn_account(v->role_arn, acct), v->account_id) != 0)
        return fail(err, "/connection/role_arn", "mismatch",
                    "the Billing Engine role is in account %s, but account_id is %s", acct,
                    v->account_id);
    return OB_OK;
}

static ob_err_t parse_verify(const json_t *o, ob_verify_msg_t *v, ob_msg_error_t *err)
{
    ob_arena_t *mem = v->request.mem;
    v->request.mem = NULL;
    ob_verify_clear(v);
    ob_verify_init(v);
    v->request.mem = mem;
    ob_err_t rc = validate(o, "onboard.verify.v1.json", err);
    if (rc != OB_OK)
        return rc;
    if (!v->request.mem)
        v->request.mem = arena_for(o);
    if ((rc = bind_request(json_object_get(o, "request"), "/request", &v->request, err)) != OB_OK)
        return rc;
    ob_arena_t **m = &v->request.mem;
    const json_t *c = json_object_get(o, "connection");
    v->request_id = str_of(o, "request_id", m);
    v->account_id = str_of(o, "account_id", m);
    v->connection_key = str_of(c, "idempotency_key", m);
    v->stack_id = str_of(c, "stack_id", m);
    v->role_arn = str_of(c, "role_arn", m);
    v->repair = json_is_true(json_object_get(o, "repair"));
    v->requester = str_of(o, "requester", m);
    v->requested_at = str_of(o, "requested_at", m);
    return check_verify(v, err);
}

ob_err_t ob_verify_parse(const char *json, size_t len, ob_verify_msg_t *out, ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    json_t *doc;
    ob_err_t rc = begin(json, len, OB_MSG_MAX_BYTES, out, sizeof *out, &doc, &err, &scratch);
    if (rc != OB_OK)
        return rc;
    rc = parse_verify(doc, out, err);
    json_decref(doc);
    if (rc != OB_OK)
        ob_verify_clear(out);
    return rc;
}

ob_err_t ob_verify_to_json(const ob_verify_msg_t *v, char **out, size_t *out_len,
                           ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    err = err_or(err, &scratch);
    if (!v || !out)
        return OB_ERR_INVALID_ARG;
    *out = NULL;
    json_t *o = json_object(), *c = json_object();
    int bad = !o || !c;
    if (!bad) {
        bad |= set_str(o, "schema", OB_SCHEMA_VERIFY) | set_str(o, "request_id", v->request_id) |
               set_str(o, "account_id", v->account_id) |
               set_new(o, "request", ob_request_to_object(&v->request));
        bad |= set_str(c, "idempotency_key", v->connection_key);
        if (v->stack_id[0])
            bad |= set_str(c, "stack_id", v->stack_id);
        bad |= set_str(c, "role_arn", v->role_arn) | set_new(o, "connection", c);
        c = NULL;
        bad |= set_new(o, "repair", json_boolean(v->repair));
        if (v->requester[0])
            bad |= set_str(o, "requester", v->requester);
        if (v->requested_at[0])
            bad |= set_str(o, "requested_at", v->requested_at);
    }
    json_decref(c);
    if (bad) {
        json_decref(o);
        return nomem(err);
    }
    return dump_checked(o, OB_MSG_VERIFY, v, out, out_len, err);
}

/* ----------------------------------------------------- drift findings */

void ob_drift_key(const char *account_id, const char *request_id, char out[OB_IDEMPOTENCY_LEN])
{
    request_key(OB_SCHEMA_DRIFT, account_id, request_id, out);
}

void ob_drift_init(ob_drift_t *d)
{
    memset(d, 0, sizeof(*d));
    d->account_id = d->request_id = d->connection_key = d->checked_at = d->repair_request_id = "";
}

void ob_drift_clear(ob_drift_t *d)
{
    if (!d)
        return;
    ob_arena_free(d->mem);
    memset(d, 0, sizeof(*d));
}

const char *ob_drift_str(ob_drift_t *d, const char *s)
{
    return keep(&d->mem, s);
}

unsigned ob_drift_kinds(const ob_drift_t *d)
{
    unsigned k = 0;
    for (size_t i = 0; i < d->nfindings; i++)
        k |= d->findings[i].kind;
    return k;
}

static ob_err_t check_drift(const ob_drift_t *d, ob_msg_error_t *err)
{
    return check_request_key(OB_SCHEMA_DRIFT, d->account_id, d->request_id, d->idempotency_key,
                             err);
}

static ob_err_t parse_drift(const json_t *o, ob_drift_t *d, ob_msg_error_t *err)
{
    ob_arena_t *mem = d->mem;
    ob_drift_init(d);
    d->mem = mem;
    ob_err_t rc = event_begin(o, "onboard.drift.v1.json", &d->mem, d->idempotency_key,
                              &d->account_id, &d->request_id, err);
    if (rc != OB_OK)
        return rc;
    d->connection_key = str_of(o, "connection_key", &d->mem);
    d->checked_at = str_of(o, "checked_at", &d->mem);
    d->repair_request_id = str_of(o, "repair_request_id", &d->mem);
    size_t i;
    const json_t *f;
    json_array_foreach(json_object_get(o, "findings"), i, f)
    {
        ob_drift_finding_t *x = &d->findings[d->nfindings++];
        x->kind = ob_drift_bit(json_string_value(json_object_get(f, "kind")));
        x->resource = str_of(f, "resource", &d->mem);
        x->detail = str_of(f, "detail", &d->mem);
    }
    return check_drift(d, err);
}

ob_err_t ob_drift_parse(const char *json, size_t len, ob_drift_t *out, ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    json_t *doc;
    ob_err_t rc = begin(json, len, OB_MSG_MAX_BYTES, out, sizeof *out, &doc, &err, &scratch);
    if (rc != OB_OK)
        return rc;
    rc = parse_drift(doc, out, err);
    json_decref(doc);
    if (rc != OB_OK)
        ob_drift_clear(out);
    return rc;
}

ob_err_t ob_drift_to_json(ob_drift_t *d, char **out, size_t *out_len, ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    err = err_or(err, &scratch);
    if (!d || !out)
        return OB_ERR_INVALID_ARG;
    *out = NULL;
    ob_drift_key(d->account_id, d->request_id, d->idempotency_key);
    json_t *o = json_object(), *fs = json_array();
    int bad = !o || !fs;
    for (size_t i = 0; !bad && i < d->nfindings; i++) {
        const ob_drift_finding_t *x = &d->findings[i];
        json_t *f = json_object();
        bad |= !f || json_array_append_new(fs, f) != 0;
        if (!bad)
            bad |= set_str(f, "kind", ob_drift_name(x->kind) ? ob_drift_name(x->kind) : "?") |
                   set_str(f, "resource", x->resource) | set_str(f, "detail", x->detail);
    }
    if (!bad) {
        bad |= set_str(o, "schema", OB_SCHEMA_DRIFT) |
               set_str(o, "idempotency_key", d->idempotency_key) |
               set_str(o, "account_id", d->account_id) | set_str(o, "request_id", d->request_id) |
               set_str(o, "connection_key", d->connection_key) |
               set_str(o, "checked_at", d->checked_at) |
               set_str(o, "status", d->nfindings ? "drifted" : "in_sync") |
               set_new(o, "findings", fs);
        fs = NULL;
        if (d->repair_request_id[0])
            bad |= set_str(o, "repair_request_id", d->repair_request_id);
    }
    json_decref(fs);
    if (bad) {
        json_decref(o);
        return nomem(err);
    }
    return dump_checked(o, OB_MSG_DRIFT, d, out, out_len, err);
}

/* ---------------------------------------------------------------- topics */

static const char *const TOPIC_SUFFIXES[] = {"requests",  "cur", "iam", "connect",
                                             "connected", "dlq", NULL};

const char *ob_topic_suffix(ob_topic_t t)
{
    return (unsigned)t < OB_TOPIC__COUNT ? TOPIC_SUFFIXES[t] : NULL;
}

ob_err_t ob_topic_name(const char *prefix, ob_topic_t t, char *out, size_t outsz, char *errstr,
                       size_t errstr_size)
{
    if (!out || outsz == 0 || (unsigned)t >= OB_TOPIC__COUNT)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "topic: bad argument");
    out[0] = '\0';
    if (!prefix)
        prefix = OB_TOPIC_PREFIX_DEFAULT;
    if (!all_of(prefix, "._-", is_alnum))
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                       "topic prefix \"%s\": Kafka topic names use only letters, digits and . _ -",
                       ECHO(prefix));
    size_t n = strlen(prefix) + strlen(TOPIC_SUFFIXES[t]);
    if (n > 249)
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                       "topic prefix: %s%s is longer than Kafka's 249 characters", ECHO(prefix),
                       TOPIC_SUFFIXES[t]);
    if (n + 1 > outsz)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "topic: output buffer too small");
    snprintf(out, outsz, "%s%s", prefix, TOPIC_SUFFIXES[t]);
    return OB_OK;
}
