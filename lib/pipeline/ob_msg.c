/*
 * ob_msg: strict, hand-written validation of the pipeline's messages.
 *
 * Design. jansson parses (duplicate keys refused, any top-level value, its
 * own depth limit of 2048); everything else is checked here, member by
 * member, in the order of each schema's "properties", stopping at the first
 * problem so that the error names one field with one code. The rules mirror
 * the schemas in proto/ keyword for keyword (minLength/maxLength -> "range", pattern
 * -> "pattern", enum/const -> "enum", required -> "missing",
 * additionalProperties -> "unknown_field", if/then -> "combination"); the
 * patterns are written as small scanners rather than regular expressions, so
 * there is no regex engine to trust and every failure can say precisely what
 * is wrong. Cross-member rules that a schema cannot state ("mismatch") come
 * after the member checks.
 *
 * Builders never emit what the parsers would refuse: they serialize, then
 * parse their own output with the same code before handing it out.
 *
 * Lengths are counted in Unicode code points, as JSON Schema counts them.
 * Error messages echo at most 48 characters of a bad value, with control
 * characters replaced, and never echo an ExternalId.
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

/* Code points in a valid UTF-8 string. */
static size_t utf8_count(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
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

static void ptr_index(char *out, const char *base, size_t idx)
{
    char num[24];
    snprintf(num, sizeof num, "%zu", idx);
    ptr_child(out, base, num);
}

static const char *jtype(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction or exponent";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "something else";
}

/* -------------------------------------------------------- character sets */

static int is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}
static int is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}
static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}
static int is_alnum(char c)
{
    return is_lower(c) || is_upper(c) || is_digit(c);
}
static int is_word(char c) /* JavaScript \w */
{
    return is_alnum(c) || c == '_';
}
static int is_hex_lower(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f');
}
static int all_of(const char *s, const char *extra, int (*cls)(char))
{
    for (; *s; s++)
        if (!cls(*s) && !(extra && strchr(extra, *s)))
            return 0;
    return 1;
}
static int digits_n(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i]))
            return 0;
    return 1;
}
static int hex_exact(const char *s, size_t n)
{
    size_t i = 0;
    for (; s[i]; i++)
        if (!is_hex_lower(s[i]))
            return 0;
    return i == n;
}
static int base64_chars(const char *s)
{
    size_t i = 0;
    while (s[i] && (is_alnum(s[i]) || s[i] == '+' || s[i] == '/'))
        i++;
    size_t pad = 0;
    while (s[i] == '=' && pad < 2)
        i++, pad++;
    return s[i] == '\0';
}

/* ----------------------------------------------------------- the patterns */

/* Each returns 1 when s matches, else 0 and a reason in why. */
typedef int (*pat_fn)(const char *s, char *why, size_t whysz);

static int pat_request_id(const char *s, char *why, size_t n)
{
    if (all_of(s, "._:-", is_alnum))
        return 1;
    snprintf(why, n, "may contain only letters, digits and . _ : -");
    return 0;
}

static int pat_account_id(const char *s, char *why, size_t n)
{
    if (strlen(s) == 12 && digits_n(s, 12))
        return 1;
    snprintf(why, n, "an AWS account id is exactly 12 digits");
    return 0;
}

/* ^[a-z]{2}(-[a-z]+)+-[0-9]+$ */
static int region_shape(const char *s)
{
    if (!is_lower(s[0]) || !is_lower(s[1]))
        return 0;
    const char *p = s + 2;
    int groups = 0;
    for (;;) {
        if (*p != '-')
            return 0;
        p++;
        if (is_digit(*p)) {
            while (is_digit(*p))
                p++;
            return *p == '\0' && groups > 0;
        }
        if (!is_lower(*p))
            return 0;
        while (is_lower(*p))
            p++;
        groups++;
    }
}

static int pat_region(const char *s, char *why, size_t n)
{
    if (!region_shape(s)) {
        snprintf(why, n, "must be an AWS region name such as us-east-1");
        return 0;
    }
    if (strncmp(s, "us-iso", 6) == 0 || strncmp(s, "eu-iso", 6) == 0) {
        snprintf(why, n, "is in an isolated AWS partition, which the fleet does not serve");
        return 0;
    }
    return 1;
}

static int role_char(char c)
{
    return is_word(c) || (c && strchr("+=,.@-", c));
}

/* arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64} */
static int role_arn_shape(const char *s, size_t *path_len)
{
    const char *p;
    if (strncmp(s, "arn:aws:", 8) == 0)
        p = s + 8;
    else if (strncmp(s, "arn:aws-cn:", 11) == 0)
        p = s + 11;
    else if (strncmp(s, "arn:aws-us-gov:", 15) == 0)
        p = s + 15;
    else
        return 0;
    if (strncmp(p, "iam::", 5) != 0)
        return 0;
    p += 5;
    if (!digits_n(p, 12) || p[12] != ':')
        return 0;
    p += 13;
    if (strncmp(p, "role/", 5) != 0)
        return 0;
    p += 4; /* at the '/' that starts the path */
    const char *path_start = p;
    const char *seg = p + 1;
    for (;;) {
        const char *q = seg;
        while (role_char(*q))
            q++;
        if (q == seg)
            return 0; /* empty segment or name */
        if (*q == '/') {
            seg = q + 1;
            continue;
        }
        if (*q != '\0' || q - seg > 64)
            return 0;
        if (path_len)
            *path_len = (size_t)(seg - path_start);
        return 1;
    }
}

static int pat_role_arn(const char *s, char *why, size_t n)
{
    if (role_arn_shape(s, NULL))
        return 1;
    snprintf(why, n,
             "must be an IAM role ARN arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME (partition aws, "
             "aws-cn or aws-us-gov; a name of 1-64 letters, digits and _+=,.@-)");
    return 0;
}

static int pat_external_id(const char *s, char *why, size_t n)
{
    if (all_of(s, "_+=,.@:/-", is_alnum))
        return 1;
    snprintf(why, n, "may contain only letters, digits and _ + = , . @ : / -");
    return 0;
}

static int pat_report_name(const char *s, char *why, size_t n)
{
    if (all_of(s, "!-_.*'()", is_alnum))
        return 1;
    snprintf(why, n, "may contain only letters, digits and ! - _ . * ' ( )");
    return 0;
}

static int pat_prefix(const char *s, char *why, size_t n)
{
    if (all_of(s, "!-_.*'()/", is_alnum))
        return 1;
    snprintf(why, n, "may contain only letters, digits and ! - _ . * ' ( ) /");
    return 0;
}

static int tag_char(char c)
{
    return is_alnum(c) || (c && strchr(" _.:/=+@-", c));
}

static int pat_tag_key(const char *s, char *why, size_t n)
{
    for (const char *p = s; *p; p++)
        if (!tag_char(*p)) {
            snprintf(why, n,
                     "tag keys may contain only letters, digits, space and _ . : / = + - @");
            return 0;
        }
    if (strncasecmp(s, "aws:", 4) == 0) {
        snprintf(why, n, "tag keys starting with aws: are reserved by AWS");
        return 0;
    }
    return 1;
}

static int pat_tag_value(const char *s, char *why, size_t n)
{
    for (const char *p = s; *p; p++)
        if (!tag_char(*p)) {
            snprintf(why, n,
                     "tag values may contain only letters, digits, space and _ . : / = + - @");
            return 0;
        }
    return 1;
}

static int pat_hex32(const char *s, char *why, size_t n)
{
    if (hex_exact(s, 32))
        return 1;
    snprintf(why, n, "must be 32 lowercase hex digits (128 bits)");
    return 0;
}

static int pat_hex64(const char *s, char *why, size_t n)
{
    if (hex_exact(s, 64))
        return 1;
    snprintf(why, n, "must be 64 lowercase hex digits (a SHA-256)");
    return 0;
}

static int pat_stack_name(const char *s, char *why, size_t n)
{
    size_t len = strlen(s);
    if (len >= 1 && len <= 128 && (is_lower(s[0]) || is_upper(s[0])) && all_of(s, "-", is_alnum))
        return 1;
    snprintf(why, n, "a stack name is 1-128 letters, digits and hyphens, starting with a letter");
    return 0;
}

/* The parts of an ARN "arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE". */
typedef struct arn_s {
    char partition[16];
    char service[32];
    char region[OB_REGION_LEN];
    char account[16];
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

static int partition_ok(const char *p)
{
    return strcmp(p, "aws") == 0 || strcmp(p, "aws-cn") == 0 || strcmp(p, "aws-us-gov") == 0;
}

/* arn:aws(-cn|-us-gov)?:cloudformation:REGION:[0-9]{12}:stack/NAME/[A-Za-z0-9-]{1,64} */
static int stack_id_shape(const char *s, arn_t *a, char name[OB_STACK_NAME_LEN])
{
    if (!arn_split(s, a) || !partition_ok(a->partition) ||
        strcmp(a->service, "cloudformation") != 0 || !region_shape(a->region) ||
        strlen(a->account) != 12 || !digits_n(a->account, 12) ||
        strncmp(a->resource, "stack/", 6) != 0)
        return 0;
    const char *nm = a->resource + 6;
    const char *slash = strchr(nm, '/');
    if (!slash || slash == nm || (size_t)(slash - nm) >= OB_STACK_NAME_LEN)
        return 0;
    memcpy(name, nm, (size_t)(slash - nm));
    name[slash - nm] = '\0';
    char why[200];
    if (!pat_stack_name(name, why, sizeof why))
        return 0;
    const char *uuid = slash + 1;
    size_t ulen = strlen(uuid);
    return ulen >= 1 && ulen <= 64 && all_of(uuid, "-", is_alnum);
}

static int pat_stack_id(const char *s, char *why, size_t n)
{
    arn_t a;
    char name[OB_STACK_NAME_LEN];
    if (stack_id_shape(s, &a, name))
        return 1;
    snprintf(why, n,
             "must be a CloudFormation stack ARN "
             "arn:PARTITION:cloudformation:REGION:ACCOUNT:stack/NAME/ID");
    return 0;
}

/* arn:aws(-cn|-us-gov)?:s3:::[a-z0-9.-]{3,63} */
static int pat_bucket_arn(const char *s, char *why, size_t n)
{
    arn_t a;
    if (arn_split(s, &a) && partition_ok(a.partition) && strcmp(a.service, "s3") == 0 &&
        !a.region[0] && !a.account[0] && strlen(a.resource) >= 3 && strlen(a.resource) <= 63 &&
        all_of(a.resource, ".-", is_alnum) && !strpbrk(a.resource, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        return 1;
    snprintf(why, n, "must be an S3 bucket ARN arn:PARTITION:s3:::NAME");
    return 0;
}

static int pat_topic(const char *s, char *why, size_t n)
{
    size_t len = strlen(s);
    if (len >= 1 && len <= 249 && all_of(s, "._-", is_alnum))
        return 1;
    snprintf(why, n, "a Kafka topic name is 1-249 letters, digits and . _ -");
    return 0;
}

static int pat_base64(const char *s, char *why, size_t n)
{
    if (base64_chars(s))
        return 1;
    snprintf(why, n, "must be standard base64 (A-Z a-z 0-9 + / and = padding)");
    return 0;
}

static int pat_pointer(const char *s, char *why, size_t n)
{
    if (s[0] && s[0] != '/') {
        snprintf(why, n, "must be a JSON pointer: empty or starting with /");
        return 0;
    }
    for (const char *p = s; *p; p++)
        if (*p == '~' && p[1] != '0' && p[1] != '1') {
            snprintf(why, n, "must be a JSON pointer: ~ is followed by 0 or 1");
            return 0;
        }
    return 1;
}

static int pat_aws_request_id(const char *s, char *why, size_t n)
{
    size_t len = strlen(s);
    if (len >= 1 && len <= 256 && all_of(s, "+/=._:-", is_alnum))
        return 1;
    snprintf(why, n, "must be 1-256 letters, digits and + / = . _ : -");
    return 0;
}

static int pat_code(const char *s, char *why, size_t n)
{
    size_t len = strlen(s);
    if (len >= 1 && len <= 64 && all_of(s, "_.:-", is_alnum))
        return 1;
    snprintf(why, n, "a code is 1-64 letters, digits and _ . : -");
    return 0;
}

static int pat_dlq_id(const char *s, char *why, size_t n)
{
    if (hex_exact(s, 32))
        return 1;
    snprintf(why, n, "a dead-letter id is 32 lowercase hex digits");
    return 0;
}

/* ------------------------------------------------------------------ time */

static int two(const char *p)
{
    return (p[0] - '0') * 10 + (p[1] - '0');
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
        return 29;
    return dim[m - 1];
}

/* 0 ok; 1 wrong shape; 2 shape right but not a real date or time. */
static int time_check(const char *s)
{
    /* YYYY-MM-DDTHH:MM:SS(.F{1,9})?(Z|[+-]HH:MM) */
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t i = 0;
    for (; shape[i]; i++) {
        if (shape[i] == 'd' ? !is_digit(s[i]) : s[i] != shape[i])
            return 1;
    }
    const char *p = s + i;
    if (*p == '.') {
        size_t f = 0;
        p++;
        while (is_digit(p[f]))
            f++;
        if (f < 1 || f > 9)
            return 1;
        p += f;
    }
    int tzh = 0, tzm = 0;
    if (*p == 'Z') {
        p++;
    } else if ((*p == '+' || *p == '-') && is_digit(p[1]) && is_digit(p[2]) && p[3] == ':' &&
               is_digit(p[4]) && is_digit(p[5])) {
        tzh = two(p + 1);
        tzm = two(p + 4);
        p += 6;
    } else {
        return 1;
    }
    if (*p)
        return 1;
    int y = two(s) * 100 + two(s + 2), mo = two(s + 5), d = two(s + 8);
    int h = two(s + 11), mi = two(s + 14), se = two(s + 17);
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return 2;
    /* A leap second only at 23:59:60 (local, as ajv-formats checks it). */
    if (h > 23 || mi > 59 || (se > 59 && !(se == 60 && h == 23 && mi == 59)))
        return 2;
    if (tzh > 23 || tzm > 59)
        return 2;
    return 0;
}

int ob_msg_time_valid(const char *s)
{
    return s && time_check(s) == 0;
}

void ob_msg_now(char out[OB_TIME_LEN])
{
    _Static_assert(OB_TIME_ISO_LEN <= OB_TIME_LEN, "a time field holds the form");
    ob_time_now_iso(out);
}

/* ------------------------------------------------------- generic checks */

/* Suggest the allowed name closest to a typo (edit distance <= 2). */
static const char *closest(const char *key, const char *const *allowed)
{
    size_t kl = strlen(key);
    if (kl > 40)
        return NULL;
    const char *best = NULL;
    size_t best_d = 3;
    for (const char *const *a = allowed; *a; a++) {
        size_t al = strlen(*a);
        size_t row[42];
        for (size_t j = 0; j <= al && j < 42; j++)
            row[j] = j;
        if (al > 40)
            continue;
        for (size_t i = 1; i <= kl; i++) {
            size_t prev = row[0];
            row[0] = i;
            for (size_t j = 1; j <= al; j++) {
                size_t cur = row[j];
                size_t cost = key[i - 1] == (*a)[j - 1] ? 0 : 1;
                size_t v = prev + cost;
                if (row[j] + 1 < v)
                    v = row[j] + 1;
                if (row[j - 1] + 1 < v)
                    v = row[j - 1] + 1;
                row[j] = v;
                prev = cur;
            }
        }
        if (row[al] < best_d) {
            best_d = row[al];
            best = *a;
        }
    }
    return best;
}

static ob_err_t check_members(const json_t *obj, const char *base, const char *const *allowed,
                              ob_msg_error_t *err)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, key) == 0;
        if (ok)
            continue;
        char f[PTR_LEN];
        ptr_child(f, base, key);
        const char *near = closest(key, allowed);
        if (near)
            return fail(err, f, "unknown_field", "unknown member \"%s\" (did you mean \"%s\"?)",
                        ECHO(key), near);
        return fail(err, f, "unknown_field", "unknown member \"%s\"", ECHO(key));
    }
    return OB_OK;
}

/* *out = the member or NULL; a required absent member is an error. */
static ob_err_t member(const json_t *obj, const char *base, const char *key, int required,
                       const json_t **out, char f[PTR_LEN], ob_msg_error_t *err)
{
    ptr_child(f, base, key);
    *out = json_object_get(obj, key);
    if (!*out && required)
        return fail(err, f, "missing", "required member \"%s\" is missing", key);
    return OB_OK;
}

static ob_err_t need_object(const json_t *j, const char *f, ob_msg_error_t *err)
{
    if (!json_is_object(j))
        return fail(err, f, "type", "expected an object, got %s", jtype(j));
    return OB_OK;
}

/* A string of min..max code points (max 0: unbounded) matching pat (NULL: any). */
static ob_err_t check_str(const json_t *j, const char *f, size_t min, size_t max, pat_fn pat,
                          int secret, const char **out, ob_msg_error_t *err)
{
    if (!json_is_string(j))
        return fail(err, f, "type", "expected a string, got %s", jtype(j));
    const char *s = json_string_value(j);
    if (strlen(s) != json_string_length(j))
        return fail(err, f, "pattern", "contains a NUL character");
    size_t n = utf8_count(s);
    if (n < min || (max && n > max)) {
        if (max == 0)
            return fail(err, f, "range", "must be at least %zu characters, got %zu", min, n);
        if (min == 0)
            return fail(err, f, "range", "must be at most %zu characters, got %zu", max, n);
        return fail(err, f, "range", "must be %zu to %zu characters, got %zu", min, max, n);
    }
    if (pat) {
        char why[200];
        if (!pat(s, why, sizeof why)) {
            if (secret)
                return fail(err, f, "pattern", "%s (value not shown)", why);
            return fail(err, f, "pattern", "%s, got \"%s\"", why, ECHO(s));
        }
    }
    if (out)
        *out = s;
    return OB_OK;
}

/* A copy of s in *mem (created on first use). */
static const char *keep(ob_arena_t **mem, const char *s)
{
    if (!*mem)
        *mem = ob_arena_new();
    return ob_arena_strdup(*mem, s);
}

/* check_str, then keep a copy in *mem at *dst. */
static ob_err_t get_strm(const json_t *j, const char *f, size_t min, size_t max, pat_fn pat,
                         int secret, ob_arena_t **mem, const char **dst, ob_msg_error_t *err)
{
    const char *s = NULL;
    ob_err_t rc = check_str(j, f, min, max, pat, secret, &s, err);
    if (rc == OB_OK)
        *dst = keep(mem, s);
    return rc;
}

/* check_str, then copy into a fixed buffer (which the bounds guarantee fits). */
static ob_err_t get_str(const json_t *j, const char *f, size_t min, size_t max, pat_fn pat,
                        int secret, char *dst, size_t dstsz, ob_msg_error_t *err)
{
    const char *s = NULL;
    ob_err_t rc = check_str(j, f, min, max, pat, secret, &s, err);
    if (rc != OB_OK)
        return rc;
    if (strlen(s) >= dstsz)
        return fail(err, f, "range", "is too long");
    memcpy(dst, s, strlen(s) + 1);
    return OB_OK;
}

static ob_err_t check_enum(const json_t *j, const char *f, const char *const *names, int *out,
                           ob_msg_error_t *err)
{
    if (!json_is_string(j))
        return fail(err, f, "type", "expected a string, got %s", jtype(j));
    const char *s = json_string_value(j);
    char list[256] = "";
    for (int i = 0; names[i]; i++) {
        if (strcmp(names[i], s) == 0 && strlen(s) == json_string_length(j)) {
            *out = i;
            return OB_OK;
        }
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", names[i]);
    }
    return fail(err, f, "enum", "must be one of %s; got \"%s\"", list, ECHO(s));
}

static ob_err_t check_int(const json_t *j, const char *f, json_int_t min, json_int_t max,
                          json_int_t *out, ob_msg_error_t *err)
{
    if (!json_is_integer(j))
        return fail(err, f, "type", "expected an integer, got %s", jtype(j));
    json_int_t v = json_integer_value(j);
    if (v < min || v > max)
        return fail(err, f, "range", "must be %lld to %lld, got %lld", (long long)min,
                    (long long)max, (long long)v);
    *out = v;
    return OB_OK;
}

static ob_err_t check_bool(const json_t *j, const char *f, int *out, ob_msg_error_t *err)
{
    if (!json_is_boolean(j))
        return fail(err, f, "type", "expected true or false, got %s", jtype(j));
    *out = json_is_true(j);
    return OB_OK;
}

static ob_err_t check_time(const json_t *j, const char *f, char out[OB_TIME_LEN],
                           ob_msg_error_t *err)
{
    if (!json_is_string(j))
        return fail(err, f, "type", "expected an RFC 3339 date-time string, got %s", jtype(j));
    const char *s = json_string_value(j);
    int t = strlen(s) < OB_TIME_LEN ? time_check(s) : 1;
    if (t == 1)
        return fail(err, f, "pattern",
                    "must be an RFC 3339 date-time such as 2025-01-31T12:00:00Z (T, seconds, at "
                    "most 9 fraction digits, Z or +HH:MM), got \"%s\"",
                    ECHO(s));
    if (t == 2)
        return fail(err, f, "pattern", "\"%s\" is not a real date and time", ECHO(s));
    memcpy(out, s, strlen(s) + 1);
    return OB_OK;
}

static ob_err_t check_timem(const json_t *j, const char *f, ob_arena_t **mem, const char **dst,
                            ob_msg_error_t *err)
{
    char t[OB_TIME_LEN];
    ob_err_t rc = check_time(j, f, t, err);
    if (rc == OB_OK)
        *dst = keep(mem, t);
    return rc;
}

/* The "schema" member: present, a string, exactly `want`. */
static ob_err_t check_schema(const json_t *obj, const char *base, const char *want,
                             ob_msg_error_t *err)
{
    char f[PTR_LEN];
    const json_t *j;
    ob_err_t rc = member(obj, base, "schema", 1, &j, f, err);
    if (rc != OB_OK)
        return rc;
    if (!json_is_string(j))
        return fail(err, f, "type", "expected the string \"%s\", got %s", want, jtype(j));
    if (strcmp(json_string_value(j), want) != 0 || json_string_length(j) != strlen(want))
        return fail(err, f, "enum", "expected \"%s\", got \"%s\"", want,
                    ECHO(json_string_value(j)));
    return OB_OK;
}

/* An array of distinct enum values, as a bit set (bit i for names[i]). */
static ob_err_t check_enum_set(const json_t *j, const char *f, const char *const *names,
                               unsigned *out, ob_msg_error_t *err)
{
    if (!json_is_array(j))
        return fail(err, f, "type", "expected an array, got %s", jtype(j));
    unsigned set = 0;
    size_t i;
    const json_t *v;
    json_array_foreach(j, i, v)
    {
        char fi[PTR_LEN];
        int idx;
        ptr_index(fi, f, i);
        ob_err_t rc = check_enum(v, fi, names, &idx, err);
        if (rc != OB_OK)
            return rc;
        if (set & (1u << idx))
            return fail(err, fi, "enum", "\"%s\" appears more than once", names[idx]);
        set |= 1u << idx;
    }
    *out = set;
    return OB_OK;
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
        ob_err_t rc = fail(err, "", "not_object", "a message is a JSON object, got %s", jtype(v));
        json_decref(v);
        return rc;
    }
    *out = v;
    return OB_OK;
}

/* ----------------------------------------------------------------- names */

static const char *const CLOUDS[] = {"aws", "azure", "gcp", NULL};
static const char *const MODES[] = {"new", "existing", NULL};
static const char *const STAGES[] = {"intake", "bucket", "cur", "iam", "connect", NULL};
static const char *const TIME_UNITS[] = {"HOURLY", "DAILY", "MONTHLY", NULL};
static const char *const FORMATS[] = {"textORcsv", "Parquet", NULL};
static const char *const COMPRESSIONS[] = {"ZIP", "GZIP", "Parquet", NULL};
static const char *const VERSIONINGS[] = {"CREATE_NEW_REPORT", "OVERWRITE_REPORT", NULL};
static const char *const SCHEMA_ELEMS[] = {"RESOURCES", "SPLIT_COST_ALLOCATION_DATA",
                                           "MANUAL_DISCOUNT_COMPATIBILITY", NULL};
static const char *const ARTIFACTS[] = {"REDSHIFT", "QUICKSIGHT", "ATHENA", NULL};
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

/* "[ATHENA, REDSHIFT]" */
static const char *set_names(char *buf, size_t n, const char *const *names, unsigned set)
{
    sfmt(buf, n, "[");
    for (unsigned i = 0; names[i]; i++)
        if (set & (1u << i)) {
            size_t o = strlen(buf);
            sfmt(buf + o, n - o, "%s%s", o > 1 ? ", " : "", names[i]);
        }
    size_t o = strlen(buf);
    sfmt(buf + o, n - o, "]");
    return buf;
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
    default:
        return "?";
    }
}

/* ------------------------------------------------------------ the request */

static const char *const REQUEST_MEMBERS[] = {
    "schema",      "request_id", "account_id", "cloud",     "mode",         "region", "role_arn",
    "external_id", "bucket",     "report",     "requester", "requested_at", "tags",   NULL};
static const char *const BUCKET_MEMBERS[] = {"name", NULL};
static const char *const REPORT_MEMBERS[] = {"name",        "prefix",
                                             "time_unit",   "format",
                                             "compression", "schema_elements",
                                             "artifacts",   "refresh_closed_reports",
                                             "versioning",  NULL};

#define DEFAULT_REPORT_NAME "billing-engine-cur"
#define DEFAULT_PREFIX      "CUR"

/* S3 general purpose bucket naming rules, one reason per rule. */
static ob_err_t check_bucket_name(const json_t *j, const char *f, ob_arena_t **mem,
                                  const char **out, ob_msg_error_t *err)
{
    const char *s;
    ob_err_t rc = check_str(j, f, 3, 63, NULL, 0, &s, err);
    if (rc != OB_OK)
        return rc;
    size_t n = strlen(s);
    static const char *const prefixes[] = {"xn--", "sthree-", "amzn-s3-demo-", NULL};
    static const char *const suffixes[] = {"-s3alias", "--ol-s3",    ".mrap",
                                           "--x-s3",   "--table-s3", NULL};
    for (const char *p = s; *p; p++)
        if (!is_lower(*p) && !is_digit(*p) && *p != '.' && *p != '-')
            return fail(err, f, "pattern",
                        "bucket names use only lowercase letters, digits, '.' and '-', got \"%s\"",
                        ECHO(s));
    if (!is_lower(s[0]) && !is_digit(s[0]))
        return fail(err, f, "pattern", "a bucket name starts with a letter or digit, got \"%s\"",
                    ECHO(s));
    if (!is_lower(s[n - 1]) && !is_digit(s[n - 1]))
        return fail(err, f, "pattern", "a bucket name ends with a letter or digit, got \"%s\"",
                    ECHO(s));
    if (strstr(s, ".."))
        return fail(err, f, "pattern", "a bucket name has no two adjacent periods, got \"%s\"",
                    ECHO(s));
    /* ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ */
    int dots = 0, ip = 1;
    for (const char *p = s; *p && ip; p++) {
        if (*p == '.')
            ip = p > s && is_digit(p[-1]) && is_digit(p[1]) && ++dots <= 3;
        else if (!is_digit(*p))
            ip = 0;
    }
    if (ip && dots == 3)
        return fail(err, f, "pattern", "a bucket name must not be an IP address, got \"%s\"", s);
    for (int i = 0; prefixes[i]; i++)
        if (strncmp(s, prefixes[i], strlen(prefixes[i])) == 0)
            return fail(err, f, "pattern",
                        "the bucket name prefix %s is reserved by AWS, got \"%s\"", prefixes[i], s);
    for (int i = 0; suffixes[i]; i++) {
        size_t l = strlen(suffixes[i]);
        if (n >= l && strcmp(s + n - l, suffixes[i]) == 0)
            return fail(err, f, "pattern",
                        "the bucket name suffix %s is reserved by AWS, got \"%s\"", suffixes[i], s);
    }
    *out = keep(mem, s);
    return OB_OK;
}

static ob_err_t check_role_arn(const json_t *j, const char *f, ob_arena_t **mem, const char **out,
                               ob_msg_error_t *err)
{
    ob_err_t rc = get_strm(j, f, 0, 613, pat_role_arn, 0, mem, out, err);
    if (rc != OB_OK)
        return rc;
    size_t path_len = 0;
    role_arn_shape(*out, &path_len);
    if (path_len > 512)
        return fail(err, f, "range", "an IAM role path is at most 512 characters, got %zu",
                    path_len);
    return OB_OK;
}

static const char *arn_partition(const char *arn, char *buf, size_t n)
{
    arn_t a;
    snprintf(buf, n, "%s", arn_split(arn, &a) ? a.partition : "?");
    return buf;
}

static const char *region_partition(const char *region)
{
    if (strncmp(region, "cn-", 3) == 0)
        return "aws-cn";
    if (strncmp(region, "us-gov-", 7) == 0)
        return "aws-us-gov";
    return "aws";
}

/* The 12-digit account of an ARN into out ("" when none). */
static const char *arn_account(const char *arn, char out[16])
{
    arn_t a;
    snprintf(out, 16, "%s", arn_split(arn, &a) ? a.account : "");
    return out;
}

void ob_request_default_bucket(const char *account_id, const char *region, char out[OB_BUCKET_LEN])
{
    snprintf(out, OB_BUCKET_LEN, "billing-cur-%s-%s", account_id, region);
}

static void report_defaults(ob_report_settings_t *r)
{
    memset(r, 0, sizeof *r);
    r->name = DEFAULT_REPORT_NAME; /* static: an arena string or a literal alike */
    r->prefix = DEFAULT_PREFIX;
    r->time_unit = OB_TIME_UNIT_HOURLY;
    r->format = OB_FORMAT_TEXT_OR_CSV;
    r->compression = OB_COMPRESSION_GZIP;
    r->schema_elements = OB_SCHEMA_ELEM_RESOURCES;
    r->artifacts = OB_ARTIFACT_REDSHIFT;
    r->refresh_closed_reports = 1;
    r->versioning = OB_VERSIONING_OVERWRITE_REPORT;
}

/* The report object: members, defaults for the absent ones, then the AWS
 * combination rules on the effective values. normalized: every member must be
 * present (the form inside a stage hand-off). */
static ob_err_t parse_report(const json_t *o, const char *base, int normalized,
                             ob_report_settings_t *r, ob_arena_t **mem, ob_msg_error_t *err)
{
    char f[PTR_LEN];
    const json_t *j;
    ob_err_t rc;
    int v;
    int given[9] = {0};
    report_defaults(r);
    if ((rc = need_object(o, base, err)) != OB_OK ||
        (rc = check_members(o, base, REPORT_MEMBERS, err)) != OB_OK)
        return rc;
    for (int i = 0; REPORT_MEMBERS[i]; i++) {
        if ((rc = member(o, base, REPORT_MEMBERS[i], normalized, &j, f, err)) != OB_OK)
            return rc;
        if (!j)
            continue;
        given[i] = 1;
        switch (i) {
        case 0:
            rc = get_strm(j, f, 1, 256, pat_report_name, 0, mem, &r->name, err);
            break;
        case 1:
            rc = get_strm(j, f, 0, 256, pat_prefix, 0, mem, &r->prefix, err);
            break;
        case 2:
            if ((rc = check_enum(j, f, TIME_UNITS, &v, err)) == OB_OK)
                r->time_unit = (ob_time_unit_t)v;
            break;
        case 3:
            if ((rc = check_enum(j, f, FORMATS, &v, err)) == OB_OK)
                r->format = (ob_format_t)v;
            break;
        case 4:
            if ((rc = check_enum(j, f, COMPRESSIONS, &v, err)) == OB_OK)
                r->compression = (ob_compression_t)v;
            break;
        case 5:
            rc = check_enum_set(j, f, SCHEMA_ELEMS, &r->schema_elements, err);
            break;
        case 6:
            rc = check_enum_set(j, f, ARTIFACTS, &r->artifacts, err);
            break;
        case 7:
            rc = check_bool(j, f, &r->refresh_closed_reports, err);
            break;
        case 8:
            if ((rc = check_enum(j, f, VERSIONINGS, &v, err)) == OB_OK)
                r->versioning = (ob_versioning_t)v;
            break;
        }
        if (rc != OB_OK)
            return rc;
    }
    /* The combination rules (AWS answers a bare ValidationException). */
    const char *dflt = " (the default)";
    char arts[96];
    if (r->artifacts & OB_ARTIFACT_ATHENA) {
        if (r->artifacts != OB_ARTIFACT_ATHENA) {
            ptr_child(f, base, "artifacts");
            return fail(err, f, "combination", "ATHENA must be the only artifact, got %s",
                        set_names(arts, sizeof arts, ARTIFACTS, r->artifacts));
        }
        if (r->format != OB_FORMAT_PARQUET) {
            ptr_child(f, base, "format");
            return fail(err, f, "combination", "the ATHENA artifact needs Parquet format, got %s%s",
                        FORMATS[r->format], given[3] ? "" : dflt);
        }
        if (r->versioning != OB_VERSIONING_OVERWRITE_REPORT) {
            ptr_child(f, base, "versioning");
            return fail(err, f, "combination",
                        "the ATHENA artifact needs OVERWRITE_REPORT versioning, got %s",
                        VERSIONINGS[r->versioning]);
        }
        if (!r->prefix[0]) {
            ptr_child(f, base, "prefix");
            return fail(err, f, "combination", "the ATHENA artifact needs a non-empty prefix");
        }
    }
    if (r->format == OB_FORMAT_PARQUET && r->compression != OB_COMPRESSION_PARQUET) {
        ptr_child(f, base, "compression");
        return fail(err, f, "combination", "Parquet format requires Parquet compression, got %s%s",
                    COMPRESSIONS[r->compression], given[4] ? "" : dflt);
    }
    if (r->compression == OB_COMPRESSION_PARQUET && r->format != OB_FORMAT_PARQUET) {
        ptr_child(f, base, "format");
        return fail(err, f, "combination", "Parquet compression requires Parquet format, got %s%s",
                    FORMATS[r->format], given[3] ? "" : dflt);
    }
    if (r->format == OB_FORMAT_PARQUET &&
        (r->artifacts & (OB_ARTIFACT_REDSHIFT | OB_ARTIFACT_QUICKSIGHT))) {
        ptr_child(f, base, "artifacts");
        return fail(err, f, "combination",
                    "%s need%s textORcsv format, not Parquet%s; set artifacts to [] or "
                    "[\"ATHENA\"]",
                    set_names(arts, sizeof arts, ARTIFACTS,
                              r->artifacts & (OB_ARTIFACT_REDSHIFT | OB_ARTIFACT_QUICKSIGHT)),
                    (r->artifacts & OB_ARTIFACT_REDSHIFT) && (r->artifacts & OB_ARTIFACT_QUICKSIGHT)
                        ? ""
                        : "s",
                    given[6] ? "" : " (the default artifacts are [REDSHIFT])");
    }
    return OB_OK;
}

static ob_err_t parse_tags(const json_t *o, const char *f, ob_request_t *r, ob_msg_error_t *err)
{
    ob_err_t rc;
    if ((rc = need_object(o, f, err)) != OB_OK)
        return rc;
    size_t n = json_object_size(o);
    if (n > OB_MAX_TAGS)
        return fail(err, f, "range", "at most %d tags, got %zu", OB_MAX_TAGS, n);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)o, key, val)
    {
        char fk[PTR_LEN];
        ptr_child(fk, f, key);
        json_t *k = json_string(key);
        const char *tk = NULL, *tv = NULL;
        rc = check_str(k, fk, 1, 128, pat_tag_key, 0, &tk, err);
        if (rc == OB_OK)
            rc = check_str(val, fk, 0, 256, pat_tag_value, 0, &tv, err);
        if (rc == OB_OK)
            rc = ob_request_add_tag(r, tk, tv);
        json_decref(k);
        if (rc != OB_OK)
            return rc;
    }
    return OB_OK;
}

/*
 * Validate and normalize a request object found at JSON pointer `base`
 * ("" at the top, "/request" in a hand-off). normalized: the hand-off form,
 * where the defaults must already be written out.
 */
static ob_err_t parse_request(const json_t *o, const char *base, int normalized, ob_request_t *r,
                              ob_msg_error_t *err)
{
    char f[PTR_LEN];
    const json_t *j;
    ob_err_t rc;
    int v;
    ob_arena_t *mem = r->mem; /* the caller's, sized for the message: kept */
    r->mem = NULL;
    ob_request_clear(r);
    ob_request_init(r);
    r->mem = mem;
    if (!json_is_object(o))
        return fail(err, base, base[0] ? "type" : "not_object", "expected an object, got %s",
                    jtype(o));
    if ((rc = check_schema(o, base, OB_SCHEMA_REQUEST, err)) != OB_OK)
        return rc;
    /* The cloud first: an Azure or Google Cloud request is refused for that
     * reason, whatever else it holds. */
    if ((rc = member(o, base, "cloud", 1, &j, f, err)) != OB_OK ||
        (rc = check_enum(j, f, CLOUDS, &v, err)) != OB_OK)
        return rc;
    r->cloud = (ob_cloud_t)v;
    if (r->cloud != OB_CLOUD_AWS)
        return fail(err, f, "unsupported_cloud", "%s (cloud \"%s\")",
                    OB_MSG_UNSUPPORTED_CLOUD_REASON, CLOUDS[v]);
    if ((rc = check_members(o, base, REQUEST_MEMBERS, err)) != OB_OK)
        return rc;

    if ((rc = member(o, base, "request_id", 1, &j, f, err)) != OB_OK ||
        (rc = get_strm(j, f, 1, 128, pat_request_id, 0, &r->mem, &r->request_id, err)) != OB_OK)
        return rc;
    if ((rc = member(o, base, "account_id", 1, &j, f, err)) != OB_OK ||
        (rc = get_strm(j, f, 0, 0, pat_account_id, 0, &r->mem, &r->account_id, err)) != OB_OK)
        return rc;
    if ((rc = member(o, base, "mode", 1, &j, f, err)) != OB_OK ||
        (rc = check_enum(j, f, MODES, &v, err)) != OB_OK)
        return rc;
    r->mode = (ob_mode_t)v;
    if ((rc = member(o, base, "region", 1, &j, f, err)) != OB_OK ||
        (rc = get_strm(j, f, 0, 32, pat_region, 0, &r->mem, &r->region, err)) != OB_OK)
        return rc;
    if ((rc = member(o, base, "role_arn", 1, &j, f, err)) != OB_OK ||
        (rc = check_role_arn(j, f, &r->mem, &r->role_arn, err)) != OB_OK)
        return rc;
    if ((rc = member(o, base, "external_id", 0, &j, f, err)) != OB_OK ||
        (j && (rc = get_strm(j, f, 2, 1224, pat_external_id, 1, &r->mem, &r->external_id, err)) !=
                  OB_OK))
        return rc;
    int need_defaults = normalized && r->mode == OB_MODE_NEW;
    if ((rc = member(o, base, "bucket", need_defaults, &j, f, err)) != OB_OK)
        return rc;
    if (j) {
        char fb[PTR_LEN];
        const json_t *name;
        if ((rc = need_object(j, f, err)) != OB_OK ||
            (rc = check_members(j, f, BUCKET_MEMBERS, err)) != OB_OK ||
            (rc = member(j, f, "name", 1, &name, fb, err)) != OB_OK ||
            (rc = check_bucket_name(name, fb, &r->mem, &r->bucket, err)) != OB_OK)
            return rc;
        r->has_bucket = 1;
    }
    char freport[PTR_LEN];
    if ((rc = member(o, base, "report", need_defaults, &j, freport, err)) != OB_OK)
        return rc;
    if (j) {
        if ((rc = parse_report(j, freport, normalized, &r->report, &r->mem, err)) != OB_OK)
            return rc;
        r->has_report = 1;
    }
    if ((rc = member(o, base, "requester", 0, &j, f, err)) != OB_OK ||
        (j && (rc = get_strm(j, f, 1, 256, NULL, 0, &r->mem, &r->requester, err)) != OB_OK))
        return rc;
    if ((rc = member(o, base, "requested_at", 0, &j, f, err)) != OB_OK ||
        (j && (rc = check_timem(j, f, &r->mem, &r->requested_at, err)) != OB_OK))
        return rc;
    if ((rc = member(o, base, "tags", 0, &j, f, err)) != OB_OK ||
        (j && (rc = parse_tags(j, f, r, err)) != OB_OK))
        return rc;

    /* Cross-member rules. */
    char acct[16], part[16];
    ptr_child(f, base, "role_arn");
    if (strcmp(arn_account(r->role_arn, acct), r->account_id) != 0)
        return fail(err, f, "mismatch", "the role is in account %s, but account_id is %s", acct,
                    r->account_id);
    if (strcmp(arn_partition(r->role_arn, part, sizeof part), region_partition(r->region)) != 0)
        return fail(err, f, "mismatch",
                    "the role is in partition %s, but region %s is in partition %s", part,
                    r->region, region_partition(r->region));
    if (r->mode == OB_MODE_EXISTING && r->has_report)
        return fail(err, freport, "combination",
                    "mode existing keeps the account's current CUR: report settings apply to mode "
                    "new only");

    /* Defaults. */
    if (r->mode == OB_MODE_NEW) {
        if (!r->has_bucket) {
            char b[OB_BUCKET_LEN];
            ob_request_default_bucket(r->account_id, r->region, b);
            r->bucket = keep(&r->mem, b);
        }
        if (!r->has_report)
            report_defaults(&r->report);
        r->has_bucket = r->has_report = 1;
    }
    return OB_OK;
}

void ob_request_init(ob_request_t *r)
{
    memset(r, 0, sizeof *r);
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
    if (!r->mem)
        r->mem = ob_arena_new();
    va_list ap;
    va_start(ap, fmt);
    const char *s = ob_arena_vprintf(r->mem, fmt, ap);
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

ob_err_t ob_request_parse_json(const json_t *obj, ob_request_t *out, ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    err = err_or(err, &scratch);
    if (!obj || !out)
        return OB_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    ob_err_t rc = parse_request(obj, "", 0, out, err);
    if (rc != OB_OK)
        ob_request_clear(out);
    return rc;
}

ob_err_t ob_request_parse(const char *json, size_t len, ob_request_t *out, ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    err = err_or(err, &scratch);
    if (!out)
        return OB_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    if (!json)
        return OB_ERR_INVALID_ARG;
    json_t *doc;
    ob_err_t rc = load(json, len, OB_MSG_MAX_BYTES, &doc, err);
    if (rc != OB_OK)
        return rc;
    out->mem = ob_arena_new_sized(len); /* the strings fit in the text they come from */
    rc = parse_request(doc, "", 0, out, err);
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
    int bad = set_str(o, "schema", OB_SCHEMA_REQUEST) | set_str(o, "request_id", r->request_id) |
              set_str(o, "account_id", r->account_id) |
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
static ob_err_t check_object(const json_t *o, ob_msg_kind_t kind, ob_msg_error_t *err)
{
    ob_err_t rc;
    switch (kind) {
    case OB_MSG_REQUEST: {
        ob_request_t r;
        memset(&r, 0, sizeof r);
        rc = parse_request(o, "", 0, &r, err);
        ob_request_clear(&r);
        return rc;
    }
    case OB_MSG_STAGE: {
        ob_stage_msg_t *m = ob_calloc(1, sizeof *m);
        if (!m)
            return nomem(err);
        rc = parse_stage(o, m, err);
        ob_stage_msg_clear(m);
        free(m);
        return rc;
    }
    case OB_MSG_CONNECTED: {
        ob_connected_t *c = ob_calloc(1, sizeof *c);
        if (!c)
            return nomem(err);
        rc = parse_connected(o, c, err);
        ob_connected_clear(c);
        free(c);
        return rc;
    }
    default:
        return OB_ERR_INVALID_ARG;
    }
}

static ob_err_t dump_checked(json_t *o, ob_msg_kind_t kind, char **out, size_t *out_len,
                             ob_msg_error_t *err)
{
    if (!o)
        return nomem(err);
    ob_err_t rc = check_object(o, kind, err);
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
    return dump_checked(ob_request_to_object(r), OB_MSG_REQUEST, out, out_len, err);
}

/* ------------------------------------------------------- stage hand-offs */

static const char *const STAGE_MEMBERS[] = {"schema", "request",   "stage", "results",
                                            "trace",  "replay_of", NULL};
static const char *const HANDOFF_STAGES[] = {"cur", "iam", "connect", NULL};
static const char *const RESULT_MEMBERS[] = {"bucket", "report", "stack", NULL};
static const char *const BUCKET_RESULT_MEMBERS[] = {"name", "region", "arn", NULL};
static const char *const REPORT_RESULT_MEMBERS[] = {"name", "bucket", "prefix", "region", NULL};
static const char *const STACK_RESULT_MEMBERS[] = {"id", "name", "role_arn", "external_id", NULL};
static const char *const TRACE_MEMBERS[] = {"bucket", "cur", "iam", "connect", NULL};
static const char *const TRACE_ENTRY_MEMBERS[] = {"started_at", "finished_at", "attempts", "worker",
                                                  NULL};

static ob_err_t parse_report_result(const json_t *o, const char *base, ob_report_result_t *r,
                                    ob_arena_t **mem, ob_msg_error_t *err)
{
    char f[PTR_LEN];
    const json_t *j;
    ob_err_t rc;
    if ((rc = need_object(o, base, err)) != OB_OK ||
        (rc = check_members(o, base, REPORT_RESULT_MEMBERS, err)) != OB_OK ||
        (rc = member(o, base, "name", 1, &j, f, err)) != OB_OK ||
        (rc = get_strm(j, f, 1, 256, pat_report_name, 0, mem, &r->name, err)) != OB_OK ||
        (rc = member(o, base, "bucket", 1, &j, f, err)) != OB_OK ||
        (rc = check_bucket_name(j, f, mem, &r->bucket, err)) != OB_OK ||
        (rc = member(o, base, "prefix", 1, &j, f, err)) != OB_OK ||
        (rc = get_strm(j, f, 0, 256, pat_prefix, 0, mem, &r->prefix, err)) != OB_OK ||
        (rc = member(o, base, "region", 1, &j, f, err)) != OB_OK ||
        (rc = get_strm(j, f, 0, 32, pat_region, 0, mem, &r->region, err)) != OB_OK)
        return rc;
    return OB_OK;
}

static ob_err_t parse_trace(const json_t *o, const char *base, ob_trace_t trace[OB_STAGE__COUNT],
                            ob_arena_t **mem, ob_msg_error_t *err)
{
    ob_err_t rc;
    if ((rc = need_object(o, base, err)) != OB_OK ||
        (rc = check_members(o, base, TRACE_MEMBERS, err)) != OB_OK)
        return rc;
    for (int i = 0; TRACE_MEMBERS[i]; i++) {
        char fe[PTR_LEN], f[PTR_LEN];
        const json_t *e, *j;
        ob_trace_t *t = &trace[OB_STAGE_BUCKET + i];
        json_int_t n;
        if ((rc = member(o, base, TRACE_MEMBERS[i], 0, &e, fe, err)) != OB_OK)
            return rc;
        if (!e)
            continue;
        if ((rc = need_object(e, fe, err)) != OB_OK ||
            (rc = check_members(e, fe, TRACE_ENTRY_MEMBERS, err)) != OB_OK ||
            (rc = member(e, fe, "started_at", 1, &j, f, err)) != OB_OK ||
            (rc = check_timem(j, f, mem, &t->started_at, err)) != OB_OK ||
            (rc = member(e, fe, "finished_at", 1, &j, f, err)) != OB_OK ||
            (rc = check_timem(j, f, mem, &t->finished_at, err)) != OB_OK ||
            (rc = member(e, fe, "attempts", 1, &j, f, err)) != OB_OK ||
            (rc = check_int(j, f, 1, 1000000, &n, err)) != OB_OK ||
            (rc = member(e, fe, "worker", 1, &j, f, err)) != OB_OK ||
            (rc = get_strm(j, f, 1, 256, NULL, 0, mem, &t->worker, err)) != OB_OK)
            return rc;
        t->attempts = (int)n;
        t->present = 1;
    }
    return OB_OK;
}

/* The stack id must name `name` (if not NULL) in this account, region and partition. */
static ob_err_t check_stack_place(const char *f, const char *stack_id, const char *account,
                                  const char *region, const char *partition, const char *name,
                                  ob_msg_error_t *err)
{
    arn_t a;
    char nm[OB_STACK_NAME_LEN];
    if (!stack_id_shape(stack_id, &a, nm))
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
    if (name && strcmp(nm, name) != 0)
        return fail(err, f, "mismatch", "the stack id names stack %s, but the name is %s", nm,
                    name);
    return OB_OK;
}

static void bucket_arn(const char *role_arn, const char *bucket, char out[OB_BUCKET_ARN_LEN])
{
    char part[16];
    snprintf(out, OB_BUCKET_ARN_LEN, "arn:%s:s3:::%s", arn_partition(role_arn, part, sizeof part),
             bucket);
}

static ob_err_t parse_stage(const json_t *o, ob_stage_msg_t *m, ob_msg_error_t *err)
{
    char f[PTR_LEN], fres[PTR_LEN];
    const json_t *j, *res, *e;
    ob_err_t rc;
    int v;
    ob_arena_t *mem = m->request.mem; /* the caller's, sized for the message: kept */
    m->request.mem = NULL;
    ob_stage_msg_clear(m);
    ob_stage_msg_init(m);
    m->request.mem = mem;
    if ((rc = check_schema(o, "", OB_SCHEMA_STAGE, err)) != OB_OK ||
        (rc = check_members(o, "", STAGE_MEMBERS, err)) != OB_OK ||
        (rc = member(o, "", "request", 1, &j, f, err)) != OB_OK ||
        (rc = parse_request(j, f, 1, &m->request, err)) != OB_OK ||
        (rc = member(o, "", "stage", 1, &j, f, err)) != OB_OK ||
        (rc = check_enum(j, f, HANDOFF_STAGES, &v, err)) != OB_OK)
        return rc;
    m->stage = (ob_stage_t)(OB_STAGE_CUR + v);
    if ((rc = member(o, "", "results", 1, &res, fres, err)) != OB_OK ||
        (rc = need_object(res, fres, err)) != OB_OK ||
        (rc = check_members(res, fres, RESULT_MEMBERS, err)) != OB_OK)
        return rc;
    if ((rc = member(res, fres, "bucket", 0, &e, f, err)) != OB_OK)
        return rc;
    if (e) {
        char fb[PTR_LEN];
        ob_bucket_result_t *b = &m->bucket;
        if ((rc = need_object(e, f, err)) != OB_OK ||
            (rc = check_members(e, f, BUCKET_RESULT_MEMBERS, err)) != OB_OK ||
            (rc = member(e, f, "name", 1, &j, fb, err)) != OB_OK ||
            (rc = check_bucket_name(j, fb, &m->request.mem, &b->name, err)) != OB_OK ||
            (rc = member(e, f, "region", 1, &j, fb, err)) != OB_OK ||
            (rc = get_strm(j, fb, 0, 32, pat_region, 0, &m->request.mem, &b->region, err)) !=
                OB_OK ||
            (rc = member(e, f, "arn", 1, &j, fb, err)) != OB_OK ||
            (rc = get_strm(j, fb, 0, 0, pat_bucket_arn, 0, &m->request.mem, &b->arn, err)) != OB_OK)
            return rc;
        m->has_bucket = 1;
    }
    if ((rc = member(res, fres, "report", 0, &e, f, err)) != OB_OK)
        return rc;
    if (e) {
        if ((rc = parse_report_result(e, f, &m->report, &m->request.mem, err)) != OB_OK)
            return rc;
        m->has_report = 1;
    }
    if ((rc = member(res, fres, "stack", 0, &e, f, err)) != OB_OK)
        return rc;
    if (e) {
        char fs[PTR_LEN];
        ob_stack_result_t *s = &m->stack;
        if ((rc = need_object(e, f, err)) != OB_OK ||
            (rc = check_members(e, f, STACK_RESULT_MEMBERS, err)) != OB_OK ||
            (rc = member(e, f, "id", 1, &j, fs, err)) != OB_OK ||
            (rc = get_strm(j, fs, 0, 0, pat_stack_id, 0, &m->request.mem, &s->id, err)) != OB_OK ||
            (rc = member(e, f, "name", 1, &j, fs, err)) != OB_OK ||
            (rc = get_strm(j, fs, 0, 0, pat_stack_name, 0, &m->request.mem, &s->name, err)) !=
                OB_OK ||
            (rc = member(e, f, "role_arn", 1, &j, fs, err)) != OB_OK ||
            (rc = check_role_arn(j, fs, &m->request.mem, &s->role_arn, err)) != OB_OK ||
            (rc = member(e, f, "external_id", 1, &j, fs, err)) != OB_OK ||
            (rc = get_strm(j, fs, 0, 0, pat_hex32, 1, &m->request.mem, &s->external_id, err)) !=
                OB_OK)
            return rc;
        m->has_stack = 1;
    }
    if ((rc = member(o, "", "trace", 1, &j, f, err)) != OB_OK ||
        (rc = parse_trace(j, f, m->trace, &m->request.mem, err)) != OB_OK)
        return rc;
    if ((rc = member(o, "", "replay_of", 0, &j, f, err)) != OB_OK ||
        (j && (rc = get_str(j, f, 0, 0, pat_dlq_id, 0, m->replay_of, sizeof m->replay_of, err)) !=
                  OB_OK))
        return rc;

    /* Which results the stage must and must not have. */
    const ob_request_t *r = &m->request;
    int is_new = r->mode == OB_MODE_NEW;
    if (!is_new && m->stage == OB_STAGE_CUR)
        return fail(err, "/stage", "combination",
                    "existing accounts skip the bucket and cur stages: stage cur needs mode new");
    struct {
        const char *name;
        int has, need, may;
    } want[3] = {
        {"bucket", m->has_bucket, is_new, is_new},
        /* an existing account's report: the CUR the intake found */
        {"report", m->has_report, is_new && m->stage >= OB_STAGE_IAM, m->stage >= OB_STAGE_IAM},
        {"stack", m->has_stack, m->stage >= OB_STAGE_CONNECT, m->stage >= OB_STAGE_CONNECT},
    };
    for (int i = 0; i < 3; i++) {
        ptr_child(f, fres, want[i].name);
        if (want[i].need && !want[i].has)
            return fail(err, f, "missing",
                        "the %s result is required at stage %s (mode %s): its stage is done",
                        want[i].name, ob_stage_name(m->stage), ob_mode_name(r->mode));
        if (!want[i].may && want[i].has)
            return fail(err, f, "combination",
                        "no %s result is expected at stage %s (mode %s): its stage is not done",
                        want[i].name, ob_stage_name(m->stage), ob_mode_name(r->mode));
    }

    /* The results agree with the request. */
    if (m->has_bucket) {
        char arn[OB_BUCKET_ARN_LEN];
        if (strcmp(m->bucket.name, r->bucket) != 0)
            return fail(err, "/results/bucket/name", "mismatch",
                        "the bucket made is %s, but the request names %s", m->bucket.name,
                        r->bucket);
        if (strcmp(m->bucket.region, r->region) != 0)
            return fail(err, "/results/bucket/region", "mismatch",
                        "the bucket is in %s, but the request's region is %s", m->bucket.region,
                        r->region);
        bucket_arn(r->role_arn, r->bucket, arn);
        if (strcmp(m->bucket.arn, arn) != 0)
            return fail(err, "/results/bucket/arn", "mismatch", "expected %s, got %s", arn,
                        m->bucket.arn);
    }
    if (m->has_report && !is_new) {
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
        char part[16], acct[16];
        arn_partition(r->role_arn, part, sizeof part);
        if ((rc = check_stack_place("/results/stack/id", m->stack.id, r->account_id, r->region,
                                    part, m->stack.name, err)) != OB_OK)
            return rc;
        if (strcmp(arn_account(m->stack.role_arn, acct), r->account_id) != 0)
            return fail(err, "/results/stack/role_arn", "mismatch",
                        "the Billing Engine role is in account %s, but account_id is %s", acct,
                        r->account_id);
        char part2[16];
        if (strcmp(arn_partition(m->stack.role_arn, part2, sizeof part2), part) != 0)
            return fail(err, "/results/stack/role_arn", "mismatch",
                        "the Billing Engine role is in partition %s, but the request's is %s",
                        part2, part);
    }
    return OB_OK;
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
    err = err_or(err, &scratch);
    if (!out)
        return OB_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    if (!json)
        return OB_ERR_INVALID_ARG;
    json_t *doc;
    ob_err_t rc = load(json, len, OB_MSG_MAX_BYTES, &doc, err);
    if (rc != OB_OK)
        return rc;
    out->request.mem = ob_arena_new_sized(len);
    rc = parse_stage(doc, out, err);
    json_decref(doc);
    if (rc != OB_OK)
        ob_stage_msg_clear(out);
    return rc;
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

ob_err_t ob_stage_to_json(const ob_stage_msg_t *m, char **out, size_t *out_len, ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    err = err_or(err, &scratch);
    if (!m || !out)
        return OB_ERR_INVALID_ARG;
    *out = NULL;
    json_t *o = json_object(), *res = json_object();
    int bad = !o || !res;
    if (!bad) {
        bad |= set_str(o, "schema", OB_SCHEMA_STAGE) |
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
        bad |= set_new(o, "trace", trace_json(m->trace));
        if (m->replay_of[0])
            bad |= set_str(o, "replay_of", m->replay_of);
    }
    json_decref(res);
    if (bad) {
        json_decref(o);
        return nomem(err);
    }
    return dump_checked(o, OB_MSG_STAGE, out, out_len, err);
}

ob_stage_t ob_stage_next(ob_mode_t mode, ob_stage_t done)
{
    if (mode == OB_MODE_NEW) {
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
    char arn[OB_BUCKET_ARN_LEN];
    bucket_arn(r->role_arn, r->bucket, arn);
    m->bucket.name = r->bucket; /* the request's strings: the same arena */
    m->bucket.region = r->region;
    m->bucket.arn = ob_request_str(r, arn);
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

static const char *const CONNECTED_MEMBERS[] = {
    "schema", "idempotency_key", "account_id",   "request_id",   "mode",  "role_arn", "external_id",
    "report", "stack_id",        "connected_at", "requested_at", "trace", NULL};

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
    ob_buf_printf(&b, "desired/1|%s|%s|%s|%s|%d|%s|%d", r->account_id,
                  r->mode == OB_MODE_NEW ? "new" : "existing", r->region, r->role_arn,
                  r->has_bucket, r->has_bucket ? r->bucket : "", r->has_report);
    if (r->has_report)
        ob_buf_printf(&b, "|%s|%s|%d|%d|%d|%u|%u|%d|%d", rs->name, rs->prefix, (int)rs->time_unit,
                      (int)rs->format, (int)rs->compression, rs->schema_elements, rs->artifacts,
                      rs->refresh_closed_reports, (int)rs->versioning);
    for (size_t i = 0; i < r->ntags; i++)
        ob_buf_printf(&b, "|%s=%s", r->tags[i].key, r->tags[i].value);
    char hex[OB_SHA256_HEX_LEN];
    ob_sha256_hex(b.data ? b.data : "", b.len, hex);
    ob_buf_free(&b);
    snprintf(out, OB_DESIRED_LEN, "%.32s", hex);
}

static ob_err_t parse_connected(const json_t *o, ob_connected_t *c, ob_msg_error_t *err)
{
    char f[PTR_LEN], freport[PTR_LEN];
    const json_t *j;
    ob_err_t rc;
    int v;
    ob_arena_t *mem = c->mem; /* the caller's, sized for the message: kept */
    ob_connected_init(c);
    c->mem = mem;
    if ((rc = check_schema(o, "", OB_SCHEMA_CONNECTED, err)) != OB_OK ||
        (rc = check_members(o, "", CONNECTED_MEMBERS, err)) != OB_OK ||
        (rc = member(o, "", "idempotency_key", 1, &j, f, err)) != OB_OK ||
        (rc = get_str(j, f, 0, 0, pat_hex64, 0, c->idempotency_key, sizeof c->idempotency_key,
                      err)) != OB_OK ||
        (rc = member(o, "", "account_id", 1, &j, f, err)) != OB_OK ||
        (rc = get_strm(j, f, 0, 0, pat_account_id, 0, &c->mem, &c->account_id, err)) != OB_OK ||
        (rc = member(o, "", "request_id", 1, &j, f, err)) != OB_OK ||
        (rc = get_strm(j, f, 1, 128, pat_request_id, 0, &c->mem, &c->request_id, err)) != OB_OK ||
        (rc = member(o, "", "mode", 1, &j, f, err)) != OB_OK ||
        (rc = check_enum(j, f, MODES, &v, err)) != OB_OK)
        return rc;
    c->mode = (ob_mode_t)v;
    if ((rc = member(o, "", "role_arn", 1, &j, f, err)) != OB_OK ||
        (rc = check_role_arn(j, f, &c->mem, &c->role_arn, err)) != OB_OK ||
        (rc = member(o, "", "external_id", 1, &j, f, err)) != OB_OK ||
        (rc = get_strm(j, f, 0, 0, pat_hex32, 1, &c->mem, &c->external_id, err)) != OB_OK ||
        (rc = member(o, "", "report", 0, &j, freport, err)) != OB_OK)
        return rc;
    if (j) {
        if ((rc = parse_report_result(j, freport, &c->report, &c->mem, err)) != OB_OK)
            return rc;
        c->has_report = 1;
    }
    if ((rc = member(o, "", "stack_id", 1, &j, f, err)) != OB_OK ||
        (rc = get_strm(j, f, 0, 0, pat_stack_id, 0, &c->mem, &c->stack_id, err)) != OB_OK ||
        (rc = member(o, "", "connected_at", 1, &j, f, err)) != OB_OK ||
        (rc = check_timem(j, f, &c->mem, &c->connected_at, err)) != OB_OK ||
        (rc = member(o, "", "requested_at", 0, &j, f, err)) != OB_OK ||
        (j && (rc = check_timem(j, f, &c->mem, &c->requested_at, err)) != OB_OK) ||
        (rc = member(o, "", "trace", 1, &j, f, err)) != OB_OK ||
        (rc = parse_trace(j, f, c->trace, &c->mem, err)) != OB_OK)
        return rc;

    if (c->mode == OB_MODE_NEW && !c->has_report)
        return fail(err, freport, "missing",
                    "required member \"report\" is missing: a new account's event names its CUR");
    char acct[16], part[16];
    if (strcmp(arn_account(c->role_arn, acct), c->account_id) != 0)
        return fail(err, "/role_arn", "mismatch",
                    "the Billing Engine role is in account %s, but account_id is %s", acct,
                    c->account_id);
    arn_t sa;
    char sname[OB_STACK_NAME_LEN];
    stack_id_shape(c->stack_id, &sa, sname);
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
    char key[OB_IDEMPOTENCY_LEN];
    ob_connected_key(c->account_id, c->role_arn, c->external_id, c->has_report ? &c->report : NULL,
                     key);
    if (strcmp(key, c->idempotency_key) != 0)
        return fail(err, "/idempotency_key", "mismatch",
                    "expected %s, the SHA-256 of \"%s|%s|%s|<external_id>|<report>\"", key,
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
    if (!c->mem)
        c->mem = ob_arena_new();
    va_list ap;
    va_start(ap, fmt);
    const char *s = ob_arena_vprintf(c->mem, fmt, ap);
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
    err = err_or(err, &scratch);
    if (!out)
        return OB_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    if (!json)
        return OB_ERR_INVALID_ARG;
    json_t *doc;
    ob_err_t rc = load(json, len, OB_MSG_MAX_BYTES, &doc, err);
    if (rc != OB_OK)
        return rc;
    out->mem = ob_arena_new_sized(len);
    rc = parse_connected(doc, out, err);
    json_decref(doc);
    if (rc != OB_OK)
        ob_connected_clear(out);
    return rc;
}

ob_err_t ob_connected_from_stage(const ob_stage_msg_t *m, const char *connected_at,
                                 ob_connected_t *out, ob_msg_error_t *err)
{
    ob_msg_error_t scratch;
    err = err_or(err, &scratch);
    if (!m || !out)
        return OB_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    /* The hand-off must be one that ob_stage_parse accepts. */
    char *text;
    ob_err_t rc = ob_stage_to_json(m, &text, NULL, err);
    if (rc != OB_OK)
        return rc;
    free(text);
    if (m->stage != OB_STAGE_CONNECT)
        return fail(err, "/stage", "combination",
                    "the connected event follows the connect stage, not stage %s",
                    ob_stage_name(m->stage));
    if (connected_at && !ob_msg_time_valid(connected_at))
        return fail(err, "/connected_at", "pattern", "\"%s\" is not an RFC 3339 date-time",
                    ECHO(connected_at));
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
    for (int i = 0; i < OB_STAGE__COUNT; i++) {
        const ob_trace_t *t = &m->trace[i];
        out->trace[i] =
            (ob_trace_t){t->present, keep(&out->mem, t->started_at),
                         keep(&out->mem, t->finished_at), t->attempts, keep(&out->mem, t->worker)};
    }
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
    return dump_checked(o, OB_MSG_CONNECTED, out, out_len, err);
}

/* ---------------------------------------------------------- dead letters */

static const char *const DLQ_MEMBERS[] = {
    "schema",   "dlq_id",     "stage",    "account_id",       "request_id",
    "original", "error",      "attempts", "first_failure_at", "last_failure_at",
    "worker",   "replayable", NULL};
static const char *const ORIGINAL_MEMBERS[] = {
    "topic",          "partition",    "offset",         "key",     "key_base64", "payload",
    "payload_base64", "payload_size", "payload_sha256", "headers", "truncated",  NULL};
static const char *const HEADER_MEMBERS[] = {"name", "value", "value_base64", NULL};
static const char *const ERROR_MEMBERS[] = {"class",          "code",        "message", "field",
                                            "aws_request_id", "http_status", NULL};
static const char *const WORKER_MEMBERS[] = {"name", "version", "host", NULL};
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
    char f[PTR_LEN], fo[PTR_LEN], fe[PTR_LEN], fw[PTR_LEN];
    const json_t *j, *orig, *e, *w;
    ob_err_t rc;
    int v;
    json_int_t n;
    unsigned trunc = 0;
    if ((rc = check_schema(o, "", OB_SCHEMA_DLQ, err)) != OB_OK ||
        (rc = check_members(o, "", DLQ_MEMBERS, err)) != OB_OK ||
        (rc = member(o, "", "dlq_id", 1, &j, f, err)) != OB_OK ||
        (rc = check_str(j, f, 0, 0, pat_dlq_id, 0, &d->dlq_id, err)) != OB_OK ||
        (rc = member(o, "", "stage", 1, &j, f, err)) != OB_OK ||
        (rc = check_enum(j, f, DLQ_STAGES, &v, err)) != OB_OK)
        return rc;
    d->stage = (ob_stage_t)v;
    if ((rc = member(o, "", "account_id", 0, &j, f, err)) != OB_OK ||
        (j && (rc = check_str(j, f, 0, 0, pat_account_id, 0, &d->account_id, err)) != OB_OK) ||
        (rc = member(o, "", "request_id", 0, &j, f, err)) != OB_OK ||
        (j && (rc = check_str(j, f, 1, 128, pat_request_id, 0, &d->request_id, err)) != OB_OK))
        return rc;

    /* original */
    const json_t *key, *key64, *pay, *pay64, *hdrs;
    const char *sha = NULL, *s;
    if ((rc = member(o, "", "original", 1, &orig, fo, err)) != OB_OK ||
        (rc = need_object(orig, fo, err)) != OB_OK ||
        (rc = check_members(orig, fo, ORIGINAL_MEMBERS, err)) != OB_OK ||
        (rc = member(orig, fo, "topic", 1, &j, f, err)) != OB_OK ||
        (rc = check_str(j, f, 0, 0, pat_topic, 0, &d->topic, err)) != OB_OK ||
        (rc = member(orig, fo, "partition", 1, &j, f, err)) != OB_OK ||
        (rc = check_int(j, f, 0, INT32_MAX, &n, err)) != OB_OK)
        return rc;
    d->partition = (int32_t)n;
    if ((rc = member(orig, fo, "offset", 1, &j, f, err)) != OB_OK ||
        (rc = check_int(j, f, 0, INT64_MAX, &n, err)) != OB_OK)
        return rc;
    d->offset = (int64_t)n;
    if ((rc = member(orig, fo, "key", 0, &key, f, err)) != OB_OK ||
        (key && (rc = check_str(key, f, 0, OB_DLQ_MAX_KEY, NULL, 0, &d->key, err)) != OB_OK) ||
        (rc = member(orig, fo, "key_base64", 0, &key64, f, err)) != OB_OK ||
        (key64 && (rc = check_str(key64, f, 0, 1368, pat_base64, 0, &s, err)) != OB_OK) ||
        (rc = member(orig, fo, "payload", 0, &pay, f, err)) != OB_OK ||
        (rc = member(orig, fo, "payload_base64", 0, &pay64, f, err)) != OB_OK ||
        (pay64 &&
         (rc = check_str(pay64, f, 0, 349528, pat_base64, 0, &d->payload_b64, err)) != OB_OK) ||
        (rc = member(orig, fo, "payload_size", 1, &j, f, err)) != OB_OK ||
        (rc = check_int(j, f, 0, INT64_MAX, &n, err)) != OB_OK)
        return rc;
    d->payload_size = (int64_t)n;
    d->payload = pay;
    if ((rc = member(orig, fo, "payload_sha256", 1, &j, f, err)) != OB_OK ||
        (rc = check_str(j, f, 0, 0, pat_hex64, 0, &sha, err)) != OB_OK ||
        (rc = member(orig, fo, "headers", 1, &hdrs, f, err)) != OB_OK)
        return rc;
    if (!json_is_array(hdrs))
        return fail(err, f, "type", "expected an array, got %s", jtype(hdrs));
    if (json_array_size(hdrs) > OB_DLQ_MAX_HDRS)
        return fail(err, f, "range", "at most %u headers, got %zu", OB_DLQ_MAX_HDRS,
                    json_array_size(hdrs));
    size_t i;
    const json_t *h;
    json_array_foreach(hdrs, i, h)
    {
        char fh[PTR_LEN], fm[PTR_LEN];
        const json_t *val, *val64;
        ptr_index(fh, f, i);
        if ((rc = need_object(h, fh, err)) != OB_OK ||
            (rc = check_members(h, fh, HEADER_MEMBERS, err)) != OB_OK ||
            (rc = member(h, fh, "name", 1, &j, fm, err)) != OB_OK ||
            (rc = check_str(j, fm, 1, OB_DLQ_MAX_HNAME, NULL, 0, NULL, err)) != OB_OK ||
            (rc = member(h, fh, "value", 0, &val, fm, err)) != OB_OK ||
            (val && (rc = check_str(val, fm, 0, OB_DLQ_MAX_HVAL, NULL, 0, NULL, err)) != OB_OK) ||
            (rc = member(h, fh, "value_base64", 0, &val64, fm, err)) != OB_OK ||
            (val64 && (rc = check_str(val64, fm, 0, 1368, pat_base64, 0, NULL, err)) != OB_OK))
            return rc;
        if (val && val64)
            return fail(err, fm, "combination",
                        "a header value is text (value) or bytes (value_base64), not both");
    }
    if ((rc = member(orig, fo, "truncated", 0, &j, f, err)) != OB_OK)
        return rc;
    if (j) {
        if ((rc = check_enum_set(j, f, TRUNCATED_PARTS, &trunc, err)) != OB_OK)
            return rc;
        if (!trunc)
            return fail(err, f, "range", "lists at least one part when present");
        d->truncated = 1;
    }
    if (key && key64)
        return fail(err, "/original/key_base64", "combination",
                    "the key is text (key) or bytes (key_base64), not both");
    if (pay && pay64)
        return fail(err, "/original/payload_base64", "combination",
                    "the original is parsed JSON (payload) or raw bytes (payload_base64), not "
                    "both");
    if (!pay && !pay64)
        return fail(err, "/original/payload", "missing",
                    "the original is required: payload (parsed JSON) or payload_base64 (raw "
                    "bytes)");

    /* error */
    if ((rc = member(o, "", "error", 1, &e, fe, err)) != OB_OK ||
        (rc = need_object(e, fe, err)) != OB_OK ||
        (rc = check_members(e, fe, ERROR_MEMBERS, err)) != OB_OK ||
        (rc = member(e, fe, "class", 1, &j, f, err)) != OB_OK ||
        (rc = check_enum(j, f, DLQ_CLASSES, &v, err)) != OB_OK)
        return rc;
    d->cls = (ob_dlq_class_t)v;
    if ((rc = member(e, fe, "code", 1, &j, f, err)) != OB_OK ||
        (rc = check_str(j, f, 0, 0, pat_code, 0, &d->code, err)) != OB_OK ||
        (rc = member(e, fe, "message", 1, &j, f, err)) != OB_OK ||
        (rc = check_str(j, f, 1, 2048, NULL, 0, &d->message, err)) != OB_OK ||
        (rc = member(e, fe, "field", 0, &j, f, err)) != OB_OK ||
        (j && (rc = check_str(j, f, 0, 256, pat_pointer, 0, &d->field, err)) != OB_OK) ||
        (rc = member(e, fe, "aws_request_id", 0, &j, f, err)) != OB_OK ||
        (j &&
         (rc = check_str(j, f, 0, 0, pat_aws_request_id, 0, &d->aws_request_id, err)) != OB_OK) ||
        (rc = member(e, fe, "http_status", 0, &j, f, err)) != OB_OK ||
        (j && (rc = check_int(j, f, 100, 599, &n, err)) != OB_OK))
        return rc;
    d->http_status = j ? (int)n : 0;

    char t1[OB_TIME_LEN], t2[OB_TIME_LEN];
    int replayable = 0;
    if ((rc = member(o, "", "attempts", 1, &j, f, err)) != OB_OK ||
        (rc = check_int(j, f, 1, 1000000, &n, err)) != OB_OK)
        return rc;
    d->attempts = (int)n;
    if ((rc = member(o, "", "first_failure_at", 1, &j, f, err)) != OB_OK ||
        (rc = check_time(j, f, t1, err)) != OB_OK)
        return rc;
    d->first_failure_at = json_string_value(j);
    if ((rc = member(o, "", "last_failure_at", 1, &j, f, err)) != OB_OK ||
        (rc = check_time(j, f, t2, err)) != OB_OK)
        return rc;
    d->last_failure_at = json_string_value(j);
    if ((rc = member(o, "", "worker", 1, &w, fw, err)) != OB_OK ||
        (rc = need_object(w, fw, err)) != OB_OK ||
        (rc = check_members(w, fw, WORKER_MEMBERS, err)) != OB_OK ||
        (rc = member(w, fw, "name", 1, &j, f, err)) != OB_OK ||
        (rc = check_str(j, f, 1, 256, NULL, 0, &d->worker_name, err)) != OB_OK ||
        (rc = member(w, fw, "version", 1, &j, f, err)) != OB_OK ||
        (rc = check_str(j, f, 1, 256, NULL, 0, &d->worker_version, err)) != OB_OK ||
        (rc = member(w, fw, "host", 1, &j, f, err)) != OB_OK ||
        (rc = check_str(j, f, 1, 256, NULL, 0, &d->worker_host, err)) != OB_OK ||
        (rc = member(o, "", "replayable", 1, &j, f, err)) != OB_OK ||
        (rc = check_bool(j, f, &replayable, err)) != OB_OK)
        return rc;
    d->replayable = replayable;
    if (replayable && !pay)
        return fail(err, "/replayable", "combination",
                    "only a parsed payload can be replayed; this original is raw bytes");

    /* Digests. */
    char id[OB_DLQ_ID_LEN];
    ob_dlq_id(d->topic, d->partition, d->offset, id);
    if (strcmp(id, d->dlq_id) != 0)
        return fail(err, "/dlq_id", "mismatch",
                    "expected %s, the id of topic %s, partition %ld, offset %lld", id, d->topic,
                    (long)d->partition, (long long)d->offset);
    if (pay64) {
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
    err = err_or(err, &scratch);
    if (!out)
        return OB_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    if (!json)
        return OB_ERR_INVALID_ARG;
    json_t *doc;
    ob_err_t rc = load(json, len, OB_DLQ_MAX_BYTES, &doc, err);
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

static void ids_from_payload(const json_t *p, char acct[OB_ACCOUNT_ID_LEN],
                             char rid[OB_REQUEST_ID_LEN])
{
    const json_t *srcs[2] = {p, json_is_object(p) ? json_object_get(p, "request") : NULL};
    char why[200];
    for (int i = 0; i < 2; i++) {
        if (!json_is_object(srcs[i]))
            continue;
        const char *a = json_string_value(json_object_get(srcs[i], "account_id"));
        const char *r = json_string_value(json_object_get(srcs[i], "request_id"));
        if (!acct[0] && a && pat_account_id(a, why, sizeof why))
            snprintf(acct, OB_ACCOUNT_ID_LEN, "%s", a);
        if (!rid[0] && r && strlen(r) >= 1 && strlen(r) <= 128 &&
            pat_request_id(r, why, sizeof why))
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
    char why[200];
    if (!in || !out)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "dlq: NULL argument");
    *out = NULL;
    if (!in->topic || !pat_topic(in->topic, why, sizeof why))
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "dlq: topic: %s",
                       in->topic ? why : "missing");
    if (in->partition < 0 || in->offset < 0)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "dlq: partition and offset must be >= 0");
    if ((unsigned)in->stage >= OB_STAGE__COUNT || (unsigned)in->cls > OB_DLQ_UNSUPPORTED_CLOUD)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "dlq: unknown stage or class");

    json_t *parsed = dlq_parse_payload(in->payload, in->payload_len);
    char acct[OB_ACCOUNT_ID_LEN] = "", rid[OB_REQUEST_ID_LEN] = "";
    if (in->account_id && pat_account_id(in->account_id, why, sizeof why))
        snprintf(acct, sizeof acct, "%s", in->account_id);
    if (in->request_id && strlen(in->request_id) >= 1 && strlen(in->request_id) <= 128 &&
        pat_request_id(in->request_id, why, sizeof why))
        snprintf(rid, sizeof rid, "%s", in->request_id);
    ids_from_payload(parsed, acct, rid);
    if (!acct[0] && in->key && in->key_len == 12 && digits_n(in->key, 12))
        memcpy(acct, in->key, 12), acct[12] = '\0';

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
        bad |= set_b64(orig, "payload_base64", in->payload ? in->payload : "", pl);
    }
    char sha[OB_SHA256_HEX_LEN];
    ob_sha256_hex(in->payload ? in->payload : "", in->payload ? in->payload_len : 0, sha);
    bad |= set_new(orig, "payload_size",
                   json_integer((json_int_t)(in->payload ? in->payload_len : 0))) |
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
           set_text(e, "message", in->message, 2048, "(no message)");
    if (in->field && in->field[0] && strlen(in->field) <= 256 &&
        utf8_valid((const unsigned char *)in->field, strlen(in->field), NULL) &&
        pat_pointer(in->field, why, sizeof why))
        bad |= set_str(e, "field", in->field);
    if (in->aws_request_id && pat_aws_request_id(in->aws_request_id, why, sizeof why))
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
    bad |= set_text(w, "name", in->worker_name, 256, "unknown") |
           set_text(w, "version", in->worker_version, 256, "unknown") |
           set_text(w, "host", in->worker_host, 256, "unknown");
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
    default:
        return OB_ERR_INVALID_ARG;
    }
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
