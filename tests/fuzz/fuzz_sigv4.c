/*
 * fuzz_sigv4: SigV4 canonicalisation, signing and verification
 * (lib/aws/ob_sigv4.h).
 *
 * The input is a request in the form of the AWS SigV4 test suite's .req
 * files: "METHOD TARGET HTTP/1.1", header lines "Name:value" (a line starting
 * with white space continues the previous value), an empty line, the body.
 * The target is split at its first '?' into path and query. The suite's
 * files are seeds as they are.
 *
 * With it:
 *   - an Authorization header's value goes through
 *     ob_sigv4_parse_authorization() and the request through
 *     ob_sigv4_verify() (S3 rules off and on), as the simulator would;
 *   - the request is signed (S3 rules off and on) and, when signing
 *     succeeds, must verify with the same secret: the signer never makes a
 *     request its own verifier refuses. (Not checked when the input brings
 *     its own x-amz-content-sha256 without S3 rules, which need not match the
 *     body, or signs more header names than an Authorization header holds.)
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "ob_sigv4.h"

#define KEY_ID  "AKIDEXAMPLE"
#define SECRET  "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define REGION  "us-east-1"
#define SERVICE "service"
#define WHEN    1440938160 /* 20150830T123600Z */

typedef struct req_s {
    char *method, *path;
    const char *query;
    ob_hdrs_t headers;
    const char *body;
    size_t body_len;
    char *text; /* owns method, path and query */
} req_t;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

/* Split the input; 0 when it has no request line. */
static int parse_req(const uint8_t *data, size_t size, req_t *r)
{
    memset(r, 0, sizeof(*r));
    const char *raw = (const char *)data;
    const char *head_end = NULL;
    for (size_t i = 0; i + 1 < size; i++)
        if (raw[i] == '\n' && raw[i + 1] == '\n') {
            head_end = raw + i;
            break;
        }
    size_t hl = head_end ? (size_t)(head_end - raw) : size;
    if (head_end) {
        r->body = head_end + 2;
        r->body_len = size - hl - 2;
    }
    r->text = fuzz_strndup(raw, hl); /* a NUL in the head ends it */
    char *line = r->text, *next = strchr(line, '\n');
    if (next)
        *next++ = '\0';
    char *sp = strchr(line, ' ');
    char *ver = strstr(line, " HTTP/");
    if (!sp || !ver || ver < sp)
        return 0;
    *sp = '\0';
    *ver = '\0';
    r->method = line;
    r->path = sp + 1;
    char *q = strchr(r->path, '?');
    r->query = q ? q + 1 : "";
    if (q)
        *q = '\0';

    ob_buf_t value = {0};
    char *name = NULL;
    for (line = next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if ((line[0] == ' ' || line[0] == '\t') && name) {
            if (ob_buf_putc(&value, '\n') != OB_OK || ob_buf_puts(&value, line) != OB_OK)
                fuzz_fail("out of memory");
            continue;
        }
        if (name && ob_hdrs_add(&r->headers, name, value.data ? value.data : "") != OB_OK)
            fuzz_fail("out of memory");
        name = NULL;
        ob_buf_reset(&value);
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        name = line;
        if (ob_buf_puts(&value, colon + 1) != OB_OK)
            fuzz_fail("out of memory");
    }
    if (name && ob_hdrs_add(&r->headers, name, value.data ? value.data : "") != OB_OK)
        fuzz_fail("out of memory");
    ob_buf_free(&value);
    return 1;
}

static void req_free(req_t *r)
{
    ob_hdrs_clear(&r->headers);
    free(r->text);
}

static void copy_headers(ob_hdrs_t *dst, const ob_hdrs_t *src)
{
    for (size_t i = 0; i < src->n; i++)
        if (ob_hdrs_add(dst, src->v[i].name, src->v[i].value) != OB_OK)
            fuzz_fail("out of memory");
}

static void check_authorization(const char *value)
{
    ob_sigv4_auth_t auth;
    char errstr[256];
    if (ob_sigv4_parse_authorization(value, &auth, errstr, sizeof(errstr)) != OB_OK)
        return;
    if (strlen(auth.date) != 8 || strlen(auth.signature) != 64 || !auth.access_key_id[0] ||
        !auth.region[0] || !auth.service[0] || !auth.signed_headers[0])
        fuzz_fail("a parsed Authorization with a field missing: %s", value);
    for (const char *p = auth.signed_headers; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            fuzz_fail("SignedHeaders with upper case accepted: %s", auth.signed_headers);
}

static void sign_and_verify(const req_t *r, int s3)
{
    ob_hdrs_t h = {0};
    copy_headers(&h, &r->headers);
    if (!ob_hdrs_get(&h, "host") && ob_hdrs_add(&h, "Host", "example.amazonaws.com") != OB_OK)
        fuzz_fail("out of memory");
    ob_sigv4_creds_t creds = {KEY_ID, SECRET, NULL};
    ob_sigv4_params_t params = {.service = SERVICE, .region = REGION, .now = WHEN, .s3 = s3};
    ob_sigv4_debug_t dbg = {{0}, {0}};
    char errstr[512];
    ob_err_t rc = ob_sigv4_sign(r->method, r->path, r->query, &h, r->body, r->body_len, &creds,
                                &params, &dbg, errstr, sizeof(errstr));
    if (rc == OB_OK) {
        const char *authz = ob_hdrs_get(&h, "authorization");
        if (!authz)
            fuzz_fail("signed without an Authorization header");
        const char *sh = strstr(authz, "SignedHeaders=");
        const char *end = sh ? strstr(sh, ", Signature=") : NULL;
        if (!sh || !end)
            fuzz_fail("an Authorization header of another form: %s", authz);
        size_t shl = (size_t)(end - sh) - strlen("SignedHeaders=");
        int own_hash = !s3 && ob_hdrs_get(&r->headers, "x-amz-content-sha256") != NULL;
        if (!own_hash && shl < sizeof(((ob_sigv4_auth_t *)0)->signed_headers)) {
            char verr[512];
            if (ob_sigv4_verify(r->method, r->path, r->query, &h, r->body, r->body_len, SECRET, s3,
                                verr, sizeof(verr)) != OB_OK)
                fuzz_fail("a request signed here does not verify (s3 %d): %s\n"
                          "canonical request:\n%s",
                          s3, verr, dbg.canonical_request.data);
        }
    }
    ob_buf_free(&dbg.canonical_request);
    ob_buf_free(&dbg.string_to_sign);
    ob_hdrs_clear(&h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    req_t r;
    if (!parse_req(data, size, &r)) {
        /* Not a request: the whole input as an Authorization value. */
        char *v = fuzz_strndup(data, size);
        check_authorization(v);
        free(v);
        req_free(&r);
        return 0;
    }
    const char *authz = ob_hdrs_get(&r.headers, "authorization");
    if (authz) {
        check_authorization(authz);
        char errstr[512];
        for (int s3 = 0; s3 <= 1; s3++)
            (void)ob_sigv4_verify(r.method, r.path, r.query, &r.headers, r.body, r.body_len, SECRET,
                                  s3, errstr, sizeof(errstr));
    }
    sign_and_verify(&r, 0);
    sign_and_verify(&r, 1);
    req_free(&r);
    return 0;
}
