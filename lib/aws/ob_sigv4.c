/*
 * ob_sigv4: Signature Version 4.
 *
 * One core (sigv4_compute) builds the canonical request, the string to sign
 * and the signature from an already-prepared header list; signing and
 * verification differ only in how they feed it. The signer prepares the
 * headers (date, token, content hash) and signs every eligible header; the
 * verifier reads the date, the payload hash and the header names from the
 * received request and signs exactly the headers the client said it signed.
 * Canonicalisation follows botocore (see the header for the rules), which the
 * AWS test suite in shared/testdata checks. Key material (the "AWS4"+secret
 * HMAC key and each derived key) is wiped with OPENSSL_cleanse after use.
 */
#include "ob_sigv4.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ob_alloc.h"
#include "ob_crypto.h"

#define AMZ_DATE_LEN     16  /* YYYYMMDDTHHMMSSZ */
#define SECRET_MAX       256 /* real secrets are 40 characters */
#define SCOPE_TERMINATOR "aws4_request"

/* ---- small predicates ---------------------------------------------------- */

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return s[n] == '\0';
}

/* RFC 7230 token characters: what a header name may contain. */
static int is_tchar(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* A value that goes into the credential scope or Authorization header: no
 * separators of that syntax, no whitespace, no control characters. */
static int is_scope_part(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == ',' || c == ';' || c == '=' || c == '"')
            return 0;
    }
    return 1;
}

static int is_amz_date(const char *s)
{
    if (!s || strlen(s) != AMZ_DATE_LEN || s[8] != 'T' || s[15] != 'Z')
        return 0;
    for (int i = 0; i < 15; i++)
        if (i != 8 && !isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

/* ---- canonical pieces ---------------------------------------------------- */

static ob_err_t uri_encode(ob_buf_t *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    if (ob_buf_reserve(out, 3 * n) != OB_OK)
        return OB_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c)) {
            out->data[out->len++] = (char)c;
        } else {
            out->data[out->len++] = '%';
            out->data[out->len++] = hex[c >> 4];
            out->data[out->len++] = hex[c & 15];
        }
    }
    out->data[out->len] = '\0';
    return OB_OK;
}

/* Non-S3 path: drop empty and "." segments, let ".." pop one, encode each
 * segment; keep a trailing slash when something is left (botocore's
 * remove_dot_segments followed by quote(safe='/~')). */
static ob_err_t canonical_path(ob_buf_t *out, const char *path, int s3)
{
    if (!path[0])
        return ob_buf_putc(out, '/');
    if (s3)
        return ob_buf_puts(out, path);

    size_t plen = strlen(path), depth = 0;
    size_t *starts = ob_malloc((plen / 2 + 2) * sizeof(*starts));
    if (!starts)
        return OB_ERR_NOMEM;
    ob_err_t err = OB_OK;
    const char *p = path;
    while (*p && err == OB_OK) {
        const char *seg = p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - seg);
        if (*p == '/')
            p++;
        if (n == 0 || (n == 1 && seg[0] == '.'))
            continue;
        if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            if (depth > 0)
                out->len = starts[--depth];
            continue;
        }
        starts[depth++] = out->len;
        if ((err = ob_buf_putc(out, '/')) == OB_OK)
            err = uri_encode(out, seg, n);
    }
    free(starts);
    if (err != OB_OK)
        return err;
    if (out->data) /* ".." may have cut the buffer short */
        out->data[out->len] = '\0';
    if (depth == 0)
        return ob_buf_putc(out, '/');
    if (path[plen - 1] == '/')
        return ob_buf_putc(out, '/');
    return OB_OK;
}

typedef struct qparam_s {
    char *name;  /* encoded */
    char *value; /* encoded */
} qparam_t;

static int qparam_cmp(const void *a, const void *b)
{
    const qparam_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* Percent-decode s[0..n) into tmp, then AWS-encode it; the result is a fresh
 * C string in *enc. */
static ob_err_t requote(const char *s, size_t n, ob_buf_t *tmp, char **enc)
{
    ob_buf_reset(tmp);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return OB_ERR_INVALID_ARG;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (ob_buf_putc(tmp, c) != OB_OK)
            return OB_ERR_NOMEM;
    }
    ob_buf_t e = {0};
    if (uri_encode(&e, tmp->data ? tmp->data : "", tmp->len) != OB_OK) {
        ob_buf_free(&e);
        return OB_ERR_NOMEM;
    }
    *enc = e.data;
    return OB_OK;
}

static ob_err_t canonical_query(ob_buf_t *out, const char *query, char *errstr, size_t errstr_size)
{
    if (!query || !*query)
        return OB_OK;
    size_t cap = 1;
    for (const char *p = query; *p; p++)
        cap += *p == '&';
    qparam_t *v = ob_calloc(cap, sizeof(*v));
    if (!v)
        return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
    ob_buf_t tmp = {0};
    size_t n = 0;
    ob_err_t err = OB_OK;
    const char *p = query;
    while (err == OB_OK) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            size_t klen = eq ? (size_t)(eq - p) : len;
            err = requote(p, klen, &tmp, &v[n].name);
            if (err == OB_OK)
                err = eq ? requote(eq + 1, len - klen - 1, &tmp, &v[n].value)
                         : requote("", 0, &tmp, &v[n].value);
            n++;
            if (err == OB_ERR_INVALID_ARG)
                ob_errf(errstr, errstr_size, err, "query parameter %zu has a malformed %%-escape",
                        n);
        }
        if (!end)
            break;
        p = end + 1;
    }
    if (err == OB_OK) {
        qsort(v, n, sizeof(*v), qparam_cmp);
        for (size_t i = 0; i < n && err == OB_OK; i++)
            err = ob_buf_printf(out, "%s%s=%s", i ? "&" : "", v[i].name, v[i].value);
    }
    if (err == OB_ERR_NOMEM)
        ob_errf(errstr, errstr_size, err, "out of memory");
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
    ob_buf_free(&tmp);
    return err;
}

/* Append a header value trimmed, with whitespace runs collapsed to one space. */
/* The value trimmed, inner runs of spaces as one (never longer than v). */
static ob_err_t put_header_value(ob_buf_t *out, const char *v)
{
    size_t n = strlen(v);
    if (ob_buf_reserve(out, n) != OB_OK)
        return OB_ERR_NOMEM;
    char *d = out->data + out->len;
    int pending_space = 0, any = 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (is_space(*p)) {
            pending_space = any;
            continue;
        }
        if (pending_space)
            *d++ = ' ';
        *d++ = (char)*p;
        pending_space = 0;
        any = 1;
    }
    out->len = (size_t)(d - out->data);
    out->data[out->len] = '\0';
    return OB_OK;
}

static int header_excluded(const char *lname)
{
    return strcmp(lname, "authorization") == 0 || strcmp(lname, "user-agent") == 0 ||
           strcmp(lname, "expect") == 0 || strcmp(lname, "x-amzn-trace-id") == 0;
}

typedef struct hent_s {
    char *lname;
    size_t idx;
} hent_t;

static int hent_cmp(const void *a, const void *b)
{
    const hent_t *x = a, *y = b;
    int c = strcmp(x->lname, y->lname);
    return c ? c : (x->idx < y->idx ? -1 : x->idx > y->idx);
}

/* Client side: canonical headers of every eligible header, and the
 * SignedHeaders list. */
static ob_err_t canonical_headers_all(ob_buf_t *out, ob_buf_t *signed_out, const ob_hdrs_t *h,
                                      char *errstr, size_t errstr_size)
{
    hent_t *v = ob_calloc(h->n ? h->n : 1, sizeof(*v));
    if (!v)
        return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
    ob_err_t err = OB_OK;
    size_t n = 0;
    for (size_t i = 0; i < h->n && err == OB_OK; i++) {
        const char *name = h->v[i].name;
        if (!*name) {
            err = ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "empty header name");
            break;
        }
        char *l = ob_strdup(name);
        if (!l) {
            err = ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
            break;
        }
        for (char *c = l; *c; c++) {
            if (!is_tchar((unsigned char)*c))
                err = ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                              "header name '%.64s' has an invalid character", name);
            *c = (char)tolower((unsigned char)*c);
        }
        if (err != OB_OK || header_excluded(l)) {
            free(l);
            continue;
        }
        v[n].lname = l;
        v[n].idx = i;
        n++;
    }
    if (err == OB_OK) {
        qsort(v, n, sizeof(*v), hent_cmp);
        for (size_t i = 0; i < n && err == OB_OK; i++) {
            int first = i == 0 || strcmp(v[i].lname, v[i - 1].lname) != 0;
            int last = i + 1 == n || strcmp(v[i].lname, v[i + 1].lname) != 0;
            if (first) {
                err = ob_buf_puts(out, v[i].lname);
                if (err == OB_OK)
                    err = ob_buf_putc(out, ':');
                if (err == OB_OK && signed_out->len)
                    err = ob_buf_putc(signed_out, ';');
                if (err == OB_OK)
                    err = ob_buf_puts(signed_out, v[i].lname);
            } else {
                err = ob_buf_putc(out, ',');
            }
            if (err == OB_OK)
                err = put_header_value(out, h->v[v[i].idx].value);
            if (err == OB_OK && last)
                err = ob_buf_putc(out, '\n');
        }
        if (err != OB_OK)
            err = ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        free(v[i].lname);
    free(v);
    return err;
}

/* Server side: canonical headers of exactly the names in `list` (validated
 * by ob_sigv4_parse_authorization: lowercase, sorted, unique). */
static ob_err_t canonical_headers_named(ob_buf_t *out, const ob_hdrs_t *h, const char *list,
                                        char *errstr, size_t errstr_size)
{
    const char *p = list;
    for (;;) {
        size_t n = strcspn(p, ";");
        if (ob_buf_append(out, p, n) != OB_OK || ob_buf_putc(out, ':') != OB_OK)
            return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        int found = 0;
        for (size_t i = 0; i < h->n; i++) {
            const char *name = h->v[i].name;
            if (strlen(name) != n || strncasecmp(name, p, n) != 0)
                continue;
            if ((found && ob_buf_putc(out, ',') != OB_OK) ||
                put_header_value(out, h->v[i].value) != OB_OK)
                return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
            found = 1;
        }
        if (!found)
            return ob_errf(errstr, errstr_size, OB_ERR_AWS,
                           "signed header '%.*s' is not in the request", (int)n, p);
        if (ob_buf_putc(out, '\n') != OB_OK)
            return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        if (!p[n])
            return OB_OK;
        p += n + 1;
    }
}

/* ---- the core ------------------------------------------------------------ */

typedef struct sig_input_s {
    const char *method, *path, *query;
    const ob_hdrs_t *headers;
    const char *signed_list; /* NULL: every eligible header (client side) */
    const char *payload_hash;
    int s3;
    const char *amz_date; /* YYYYMMDDTHHMMSSZ */
    const char *region, *service, *secret;
} sig_input_t;

static void derive_signing_key(const char *secret, const char *date8, const char *region,
                               const char *service, uint8_t key[OB_SHA256_LEN])
{
    char k0[4 + SECRET_MAX];
    size_t sl = strlen(secret);
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, secret, sl);
    uint8_t a[OB_SHA256_LEN], b[OB_SHA256_LEN];
    ob_hmac_sha256(k0, 4 + sl, date8, 8, a);
    ob_hmac_sha256(a, sizeof(a), region, strlen(region), b);
    ob_hmac_sha256(b, sizeof(b), service, strlen(service), a);
    ob_hmac_sha256(a, sizeof(a), SCOPE_TERMINATOR, strlen(SCOPE_TERMINATOR), key);
    OPENSSL_cleanse(k0, sizeof(k0));
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(b, sizeof(b));
}

/* Build the canonical request and string to sign, and the signature in hex.
 * signed_out (client side) receives the SignedHeaders list. */
static ob_err_t sigv4_compute(const sig_input_t *in, ob_buf_t *signed_out,
                              char sig_hex[OB_SHA256_HEX_LEN], ob_sigv4_debug_t *dbg, char *errstr,
                              size_t errstr_size)
{
    ob_buf_t creq = {0}, sts = {0}, sh = {0};
    ob_err_t err;
    char creq_hash[OB_SHA256_HEX_LEN];

    if (ob_buf_printf(&creq, "%s\n", in->method) != OB_OK ||
        canonical_path(&creq, in->path, in->s3) != OB_OK || ob_buf_putc(&creq, '\n') != OB_OK) {
        err = ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((err = canonical_query(&creq, in->query, errstr, errstr_size)) != OB_OK)
        goto out;
    if (ob_buf_putc(&creq, '\n') != OB_OK) {
        err = ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (in->signed_list) {
        err = canonical_headers_named(&creq, in->headers, in->signed_list, errstr, errstr_size);
        if (err == OB_OK && ob_buf_puts(&sh, in->signed_list) != OB_OK)
            err = ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
    } else {
        err = canonical_headers_all(&creq, &sh, in->headers, errstr, errstr_size);
    }
    if (err != OB_OK)
        goto out;
    if (ob_buf_printf(&creq, "\n%s\n%s", sh.data ? sh.data : "", in->payload_hash) != OB_OK) {
        err = ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        goto out;
    }

    ob_sha256_hex(creq.data, creq.len, creq_hash);
    if (ob_buf_printf(&sts, OB_SIGV4_ALGORITHM "\n%s\n%.8s/%s/%s/" SCOPE_TERMINATOR "\n%s",
                      in->amz_date, in->amz_date, in->region, in->service, creq_hash) != OB_OK) {
        err = ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        goto out;
    }

    uint8_t key[OB_SHA256_LEN], sig[OB_SHA256_LEN];
    derive_signing_key(in->secret, in->amz_date, in->region, in->service, key);
    ob_hmac_sha256(key, sizeof(key), sts.data, sts.len, sig);
    OPENSSL_cleanse(key, sizeof(key));
    ob_hex(sig, sizeof(sig), sig_hex);

    if (signed_out) {
        ob_buf_free(signed_out);
        *signed_out = sh;
        sh = (ob_buf_t){0};
    }
    if (dbg) {
        ob_buf_free(&dbg->canonical_request);
        ob_buf_free(&dbg->string_to_sign);
        dbg->canonical_request = creq;
        dbg->string_to_sign = sts;
        creq = sts = (ob_buf_t){0};
    }
out:
    ob_buf_free(&creq);
    ob_buf_free(&sts);
    ob_buf_free(&sh);
    return err;
}

/* ---- client side --------------------------------------------------------- */

ob_err_t ob_sigv4_sign(const char *method, const char *path, const char *query, ob_hdrs_t *headers,
                       const void *body, size_t body_len, const ob_sigv4_creds_t *creds,
                       const ob_sigv4_params_t *params, ob_sigv4_debug_t *dbg, char *errstr,
                       size_t errstr_size)
{
    if (!method || !*method || !path || !headers || !creds || !params || (!body && body_len))
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "sigv4: missing method, path, headers, credentials or parameters");
    if (path[0] != '/')
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "sigv4: request path must start with '/'");
    for (const char *c = method; *c; c++)
        if (!is_tchar((unsigned char)*c))
            return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "sigv4: invalid HTTP method");
    if (!creds->access_key_id || !is_scope_part(creds->access_key_id, 128))
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "sigv4: access key id is empty, too long or has invalid characters");
    if (!creds->secret_access_key || !*creds->secret_access_key ||
        strlen(creds->secret_access_key) > SECRET_MAX)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "sigv4: secret access key is empty or longer than %d bytes", SECRET_MAX);
    const char *token = creds->session_token;
    int has_token = token && *token;
    if (has_token)
        for (const char *c = token; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                               "sigv4: session token contains control characters");
    if (!params->service || !is_scope_part(params->service, 63) || !params->region ||
        !is_scope_part(params->region, 63))
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "sigv4: signing service and region must be non-empty names");
    if (!ob_hdrs_get(headers, "host"))
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "sigv4: the request has no Host header");

    char hash[OB_SHA256_HEX_LEN];
    const char *payload_hash = params->payload_hash;
    if (payload_hash) {
        if (strcmp(payload_hash, OB_SIGV4_UNSIGNED_PAYLOAD) != 0 &&
            !(strlen(payload_hash) == 64 && is_lower_hex(payload_hash, 64)))
            return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                           "sigv4: payload_hash must be 64 lowercase hex digits or "
                           "UNSIGNED-PAYLOAD");
    } else {
        ob_sha256_hex(body ? body : "", body_len, hash);
        payload_hash = hash;
    }

    char amz_date[AMZ_DATE_LEN + 1];
    struct tm tm;
    if (!gmtime_r(&params->now, &tm) ||
        strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm) != AMZ_DATE_LEN)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "sigv4: request time is out of range");

    ob_hdrs_del(headers, "authorization");
    if (ob_hdrs_set(headers, "X-Amz-Date", amz_date) != OB_OK)
        return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
    if (has_token && params->omit_session_token)
        ob_hdrs_del(headers, "x-amz-security-token");
    else if (has_token && ob_hdrs_set(headers, "X-Amz-Security-Token", token) != OB_OK)
        return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
    if (params->s3 && ob_hdrs_set(headers, "x-amz-content-sha256", payload_hash) != OB_OK)
        return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");

    sig_input_t in = {
        .method = method,
        .path = path,
        .query = query,
        .headers = headers,
        .signed_list = NULL,
        .payload_hash = payload_hash,
        .s3 = params->s3,
        .amz_date = amz_date,
        .region = params->region,
        .service = params->service,
        .secret = creds->secret_access_key,
    };
    ob_buf_t signed_headers = {0}, auth = {0};
    char sig[OB_SHA256_HEX_LEN];
    ob_err_t err = sigv4_compute(&in, &signed_headers, sig, dbg, errstr, errstr_size);
    if (err != OB_OK)
        goto out;
    if (ob_buf_printf(&auth,
                      OB_SIGV4_ALGORITHM " Credential=%s/%.8s/%s/%s/" SCOPE_TERMINATOR
                                         ", SignedHeaders=%s, Signature=%s",
                      creds->access_key_id, amz_date, params->region, params->service,
                      signed_headers.data, sig) != OB_OK ||
        (has_token && params->omit_session_token &&
         ob_hdrs_set(headers, "X-Amz-Security-Token", token) != OB_OK) ||
        ob_hdrs_set(headers, "Authorization", auth.data) != OB_OK)
        err = ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
out:
    ob_buf_free(&signed_headers);
    ob_buf_free(&auth);
    return err;
}

/* ---- server side --------------------------------------------------------- */

static int copy_field(char *dst, size_t dstsz, const char *src, size_t n)
{
    if (n == 0 || n >= dstsz)
        return -1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

static ob_err_t parse_credential(const char *v, size_t n, ob_sigv4_auth_t *out, char *errstr,
                                 size_t errstr_size)
{
    const char *part[5];
    size_t len[5];
    size_t k = 0;
    const char *p = v, *end = v + n;
    while (k < 5) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        part[k] = p;
        len[k] = slash ? (size_t)(slash - p) : (size_t)(end - p);
        k++;
        if (!slash)
            break;
        p = slash + 1;
    }
    if (k != 5 || part[4] + len[4] != end)
        return ob_errf(errstr, errstr_size, OB_ERR_PARSE,
                       "Credential must be KEY/DATE/REGION/SERVICE/aws4_request");
    if (copy_field(out->access_key_id, sizeof(out->access_key_id), part[0], len[0]) ||
        !is_scope_part(out->access_key_id, 128))
        return ob_errf(errstr, errstr_size, OB_ERR_PARSE,
                       "Credential has an empty, too long or invalid access key id");
    if (copy_field(out->date, sizeof(out->date), part[1], len[1]) || len[1] != 8)
        return ob_errf(errstr, errstr_size, OB_ERR_PARSE, "Credential date is not YYYYMMDD");
    for (int i = 0; i < 8; i++)
        if (!isdigit((unsigned char)out->date[i]))
            return ob_errf(errstr, errstr_size, OB_ERR_PARSE, "Credential date is not YYYYMMDD");
    if (copy_field(out->region, sizeof(out->region), part[2], len[2]) ||
        !is_scope_part(out->region, 63))
        return ob_errf(errstr, errstr_size, OB_ERR_PARSE,
                       "Credential has an empty, too long or invalid region");
    if (copy_field(out->service, sizeof(out->service), part[3], len[3]) ||
        !is_scope_part(out->service, 63))
        return ob_errf(errstr, errstr_size, OB_ERR_PARSE,
                       "Credential has an empty, too long or invalid service");
    if (len[4] != strlen(SCOPE_TERMINATOR) || memcmp(part[4], SCOPE_TERMINATOR, len[4]) != 0)
        return ob_errf(errstr, errstr_size, OB_ERR_PARSE,
                       "Credential scope does not end in aws4_request");
    return OB_OK;
}

static ob_err_t parse_signed_headers(const char *v, size_t n, ob_sigv4_auth_t *out, char *errstr,
                                     size_t errstr_size)
{
    if (copy_field(out->signed_headers, sizeof(out->signed_headers), v, n))
        return ob_errf(errstr, errstr_size, OB_ERR_PARSE, "SignedHeaders is empty or too long");
    const char *prev = NULL;
    size_t prev_len = 0;
    const char *p = out->signed_headers;
    for (;;) {
        size_t len = strcspn(p, ";");
        if (len == 0)
            return ob_errf(errstr, errstr_size, OB_ERR_PARSE, "SignedHeaders has an empty name");
        for (size_t i = 0; i < len; i++)
            if (!is_tchar((unsigned char)p[i]) || isupper((unsigned char)p[i]))
                return ob_errf(errstr, errstr_size, OB_ERR_PARSE,
                               "SignedHeaders names must be lowercase header names");
        if (prev) {
            size_t m = prev_len < len ? prev_len : len;
            int c = memcmp(prev, p, m);
            if (c > 0 || (c == 0 && prev_len >= len))
                return ob_errf(errstr, errstr_size, OB_ERR_PARSE,
                               "SignedHeaders must be sorted and without duplicates");
        }
        prev = p;
        prev_len = len;
        if (!p[len])
            return OB_OK;
        p += len + 1;
    }
}

ob_err_t ob_sigv4_parse_authorization(const char *value, ob_sigv4_auth_t *out, char *errstr,
                                      size_t errstr_size)
{
    if (!value || !out)
        return ob_errf(errstr, errstr_size, OB_ERR_PARSE, "no Authorization value");
    memset(out, 0, sizeof(*out));
    const char *p = value;
    while (is_space((unsigned char)*p))
        p++;
    size_t alen = strlen(OB_SIGV4_ALGORITHM);
    if (strncmp(p, OB_SIGV4_ALGORITHM, alen) != 0 || p[alen] != ' ')
        return ob_errf(errstr, errstr_size, OB_ERR_PARSE,
                       "Authorization does not start with " OB_SIGV4_ALGORITHM);
    p += alen;

    int seen_cred = 0, seen_sh = 0, seen_sig = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        const char *eq = memchr(p, '=', m);
        if (!eq)
            return ob_errf(errstr, errstr_size, OB_ERR_PARSE,
                           "Authorization component is not NAME=VALUE");
        size_t klen = (size_t)(eq - p), vlen = m - klen - 1;
        const char *v = eq + 1;
        ob_err_t err;
        if (klen == 10 && memcmp(p, "Credential", 10) == 0) {
            if (seen_cred++)
                return ob_errf(errstr, errstr_size, OB_ERR_PARSE, "Credential given twice");
            err = parse_credential(v, vlen, out, errstr, errstr_size);
        } else if (klen == 13 && memcmp(p, "SignedHeaders", 13) == 0) {
            if (seen_sh++)
                return ob_errf(errstr, errstr_size, OB_ERR_PARSE, "SignedHeaders given twice");
            err = parse_signed_headers(v, vlen, out, errstr, errstr_size);
        } else if (klen == 9 && memcmp(p, "Signature", 9) == 0) {
            if (seen_sig++)
                return ob_errf(errstr, errstr_size, OB_ERR_PARSE, "Signature given twice");
            if (vlen != 64 || copy_field(out->signature, sizeof(out->signature), v, vlen) ||
                !is_lower_hex(out->signature, 64))
                return ob_errf(errstr, errstr_size, OB_ERR_PARSE,
                               "Signature is not 64 lowercase hex digits");
            err = OB_OK;
        } else {
            return ob_errf(errstr, errstr_size, OB_ERR_PARSE,
                           "unknown Authorization component '%.*s'", (int)(klen > 32 ? 32 : klen),
                           p);
        }
        if (err != OB_OK)
            return err;
        if (!p[n])
            break;
        p += n + 1;
    }
    if (!seen_cred || !seen_sh || !seen_sig)
        return ob_errf(errstr, errstr_size, OB_ERR_PARSE, "Authorization lacks %s",
                       !seen_cred ? "Credential"
                       : !seen_sh ? "SignedHeaders"
                                  : "Signature");
    return OB_OK;
}

static int list_has(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list;;) {
        size_t len = strcspn(p, ";");
        if (len == n && memcmp(p, name, n) == 0)
            return 1;
        if (!p[len])
            return 0;
        p += len + 1;
    }
}

static size_t count_headers(const ob_hdrs_t *h, const char *name, const char **first)
{
    size_t n = 0;
    *first = NULL;
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->v[i].name, name) == 0 && n++ == 0)
            *first = h->v[i].value;
    return n;
}

ob_err_t ob_sigv4_verify(const char *method, const char *path, const char *query,
                         const ob_hdrs_t *headers, const void *body, size_t body_len,
                         const char *secret_access_key, int s3, char *errstr, size_t errstr_size)
{
    if (!method || !path || !headers || !secret_access_key || (!body && body_len))
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "sigv4 verify: missing method, path, headers or secret");
    if (!*secret_access_key || strlen(secret_access_key) > SECRET_MAX)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "sigv4 verify: secret access key is empty or too long");
    if (path[0] != '/')
        return ob_errf(errstr, errstr_size, OB_ERR_AWS, "request path does not start with '/'");

    const char *authz, *amz_date, *content_sha;
    size_t n = count_headers(headers, "authorization", &authz);
    if (n != 1)
        return ob_errf(errstr, errstr_size, OB_ERR_AWS,
                       n ? "more than one Authorization header" : "no Authorization header");

    ob_sigv4_auth_t auth;
    char why[160];
    if (ob_sigv4_parse_authorization(authz, &auth, why, sizeof(why)) != OB_OK)
        return ob_errf(errstr, errstr_size, OB_ERR_AWS, "malformed Authorization header: %s", why);

    n = count_headers(headers, "x-amz-date", &amz_date);
    if (n != 1 || !is_amz_date(amz_date))
        return ob_errf(errstr, errstr_size, OB_ERR_AWS,
                       "X-Amz-Date must appear once as YYYYMMDDTHHMMSSZ");
    if (memcmp(amz_date, auth.date, 8) != 0)
        return ob_errf(errstr, errstr_size, OB_ERR_AWS,
                       "credential scope date %s does not match X-Amz-Date %.8s", auth.date,
                       amz_date);
    if (!list_has(auth.signed_headers, "host"))
        return ob_errf(errstr, errstr_size, OB_ERR_AWS, "the Host header is not signed");
    if (list_has(auth.signed_headers, "authorization"))
        return ob_errf(errstr, errstr_size, OB_ERR_AWS,
                       "SignedHeaders must not name Authorization");

    char body_hash[OB_SHA256_HEX_LEN];
    ob_sha256_hex(body ? body : "", body_len, body_hash);
    const char *payload_hash = body_hash;
    n = count_headers(headers, "x-amz-content-sha256", &content_sha);
    if (n > 1)
        return ob_errf(errstr, errstr_size, OB_ERR_AWS, "more than one x-amz-content-sha256");
    if (n == 1) {
        if (s3 && strcmp(content_sha, OB_SIGV4_UNSIGNED_PAYLOAD) == 0)
            payload_hash = content_sha;
        else if (strcmp(content_sha, body_hash) != 0)
            return ob_errf(errstr, errstr_size, OB_ERR_AWS,
                           "x-amz-content-sha256 does not match the body (or is an "
                           "unsupported mode)");
    } else if (s3) {
        return ob_errf(errstr, errstr_size, OB_ERR_AWS,
                       "S3 requests must carry x-amz-content-sha256");
    }

    sig_input_t in = {
        .method = method,
        .path = path,
        .query = query,
        .headers = headers,
        .signed_list = auth.signed_headers,
        .payload_hash = payload_hash,
        .s3 = s3,
        .amz_date = amz_date,
        .region = auth.region,
        .service = auth.service,
        .secret = secret_access_key,
    };
    char sig[OB_SHA256_HEX_LEN];
    ob_sigv4_debug_t dbg = {{0}, {0}};
    ob_err_t err = sigv4_compute(&in, NULL, sig, &dbg, errstr, errstr_size);
    if (err == OB_ERR_INVALID_ARG) /* malformed query: the client's fault */
        err = OB_ERR_AWS;
    if (err == OB_OK && ob_ct_memcmp(sig, auth.signature, 64) != 0) {
        char creq_hash[OB_SHA256_HEX_LEN];
        ob_sha256_hex(dbg.canonical_request.data, dbg.canonical_request.len, creq_hash);
        err = ob_errf(errstr, errstr_size, OB_ERR_AWS,
                      "signature does not match (the canonical request computed here has "
                      "SHA-256 %s)",
                      creq_hash);
    }
    OPENSSL_cleanse(sig, sizeof(sig));
    ob_buf_free(&dbg.canonical_request);
    ob_buf_free(&dbg.string_to_sign);
    return err;
}
