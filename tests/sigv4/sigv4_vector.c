/*
 * sigv4_vector: runs one case of the AWS SigV4 test suite (botocore's copy in
 * shared/testdata, never copied here). tests/sigv4_vectors.cmake registers one
 * CTest test per case directory; the directory's base name names its files.
 *
 * The .req file is parsed as botocore's runner does, with one difference: the
 * request target is everything between the first space and the last
 * " HTTP/", so a raw space in the path (normalize-path/get-space) parses and
 * that case runs instead of being skipped. The path and query are handed to
 * the signer as they appear (raw UTF-8 and spaces are encoded once there,
 * which is what the vectors expect of a not-yet-encoded path). Folded header
 * lines are kept with their line break; the signer's whitespace collapsing
 * turns them into single spaces, as the suite expects.
 *
 * Session tokens: the suite gives the token only in its expected outputs. As
 * in botocore's runner, a token that appears in the .creq is the session
 * token (signed); a token that appears only in the .sreq is added after
 * signing (post-sts-header-after; omit_session_token). Each case compares the
 * canonical request, string to sign and Authorization exactly, then checks
 * that ob_sigv4_verify accepts the signed request.
 *
 * Skips: none are needed. botocore skips normalize-path/get-space (its HTTP
 * parser rejects the request line) and the get-vanilla-query-order-* cases
 * with repeated keys (its query handling is a dict); our request-line split
 * and sort-by-name-then-value handle both. A case directory without its
 * .creq/.sts/.authz files would be reported skipped (exit 77) with a reason.
 *
 * Usage: sigv4_vector CASE_DIR | sigv4_vector --missing SUITE_DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ob_sigv4.h"
#include "testutil.h"

#define KEY_ID  "AKIDEXAMPLE"
#define SECRET  "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define REGION  "us-east-1"
#define SERVICE "service"
#define WHEN    1440938160 /* 20150830T123600Z */

typedef struct vreq_s {
    char *method, *path, *query;
    ob_hdrs_t headers;
    const char *body;
    size_t body_len;
} vreq_t;

static char *read_case_file(const char *dir, const char *base, const char *ext)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.%s", dir, base, ext);
    char *s = ob_test_read_file(path, NULL);
    if (s) { /* some copies of the suite use CRLF */
        char *w = s;
        for (char *r = s; *r; r++)
            if (*r != '\r')
                *w++ = *r;
        *w = '\0';
    }
    return s;
}

/* Split the raw request in place. Returns 0 or -1 with a message. */
static int parse_req(char *raw, vreq_t *r)
{
    char *line_end = strchr(raw, '\n');
    if (line_end)
        *line_end = '\0';
    char *sp = strchr(raw, ' ');
    if (!sp) {
        fprintf(stderr, "request line has no target\n");
        return -1;
    }
    *sp = '\0';
    r->method = raw;
    char *target = sp + 1, *ver = NULL;
    for (char *p = strstr(target, " HTTP/"); p; p = strstr(p + 1, " HTTP/"))
        ver = p;
    if (ver)
        *ver = '\0';
    char *q = strchr(target, '?');
    if (q)
        *q++ = '\0';
    r->path = target;
    r->query = q;

    char *p = line_end ? line_end + 1 : NULL;
    while (p && *p && *p != '\n') {
        char *e = strchr(p, '\n');
        if (e)
            *e = '\0';
        if ((*p == ' ' || *p == '\t') && r->headers.n > 0) {
            ob_hdr_t *last = &r->headers.v[r->headers.n - 1];
            size_t a = strlen(last->value), b = strlen(p);
            char *v = realloc(last->value, a + b + 2);
            if (!v)
                return -1;
            v[a] = '\n';
            memcpy(v + a + 1, p, b + 1);
            last->value = v;
        } else {
            char *colon = strchr(p, ':');
            if (!colon) {
                fprintf(stderr, "header line without ':': %s\n", p);
                return -1;
            }
            *colon = '\0';
            if (ob_hdrs_add(&r->headers, p, colon + 1) != OB_OK)
                return -1;
        }
        p = e ? e + 1 : NULL;
    }
    r->body = p && *p == '\n' ? p + 1 : "";
    r->body_len = strlen(r->body);
    return 0;
}

/* Value of "name:value" (case-insensitive name) on its own line in text, as a
 * malloc'd string, or NULL. */
static char *find_line_value(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            size_t len = strcspn(v, "\n");
            char *s = malloc(len + 1);
            if (s) {
                memcpy(s, v, len);
                s[len] = '\0';
            }
            return s;
        }
    }
    return NULL;
}

static int compare(const char *what, const char *got, const char *want)
{
    if (strcmp(got, want) == 0)
        return 0;
    fprintf(stderr, "MISMATCH in %s\n--- expected ---\n%s\n--- got ---\n%s\n---\n", what, want,
            got);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--missing") == 0) {
        fprintf(stderr,
                "SKIPPED: AWS SigV4 test suite not found at %s (set -DOB_SIGV4_SUITE=...)\n",
                argv[2]);
        printf("SKIPPED: AWS SigV4 test suite not found at %s\n", argv[2]);
        return OB_TEST_SKIP;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: %s CASE_DIR | --missing SUITE_DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;

    char *raw = read_case_file(dir, base, "req");
    if (!raw) {
        fprintf(stderr, "FAILED: cannot read %s/%s.req\n", dir, base);
        return 1;
    }
    char *creq = read_case_file(dir, base, "creq"), *sts = read_case_file(dir, base, "sts");
    char *authz = read_case_file(dir, base, "authz"), *sreq = read_case_file(dir, base, "sreq");
    if (!creq || !sts || !authz) {
        printf("SKIPPED: %s lacks its .creq/.sts/.authz files\n", base);
        free(raw), free(creq), free(sts), free(authz), free(sreq);
        return OB_TEST_SKIP;
    }

    int rc = 1;
    vreq_t r = {0};
    ob_sigv4_debug_t dbg = {{0}, {0}};
    char err[256] = "";
    char *signed_token = find_line_value(creq, "x-amz-security-token");
    char *late_token = signed_token || !sreq ? NULL : find_line_value(sreq, "X-Amz-Security-Token");
    if (parse_req(raw, &r) != 0)
        goto out;

    ob_sigv4_creds_t creds = {KEY_ID, SECRET, signed_token ? signed_token : late_token};
    ob_sigv4_params_t params = {SERVICE, REGION, (time_t)WHEN, 0, NULL, late_token != NULL};
    ob_err_t e = ob_sigv4_sign(r.method, r.path, r.query, &r.headers, r.body, r.body_len, &creds,
                               &params, &dbg, err, sizeof(err));
    if (e != OB_OK) {
        fprintf(stderr, "FAILED: sign: %s: %s\n", ob_err2str(e), err);
        goto out;
    }
    int bad = compare("canonical request", dbg.canonical_request.data, creq);
    bad |= compare("string to sign", dbg.string_to_sign.data, sts);
    const char *got_authz = ob_hdrs_get(&r.headers, "Authorization");
    bad |= compare("Authorization", got_authz ? got_authz : "(none)", authz);
    if (creds.session_token) {
        const char *t = ob_hdrs_get(&r.headers, "X-Amz-Security-Token");
        bad |= compare("X-Amz-Security-Token", t ? t : "(none)", creds.session_token);
    }
    e = ob_sigv4_verify(r.method, r.path, r.query, &r.headers, r.body, r.body_len, SECRET, 0, err,
                        sizeof(err));
    if (e != OB_OK) {
        fprintf(stderr, "FAILED: verify of the signed request: %s\n", err);
        bad = 1;
    }
    if (!bad) {
        printf("PASSED: %s\n", base);
        rc = 0;
    }
out:
    ob_buf_free(&dbg.canonical_request);
    ob_buf_free(&dbg.string_to_sign);
    ob_hdrs_clear(&r.headers);
    free(signed_token), free(late_token);
    free(raw), free(creq), free(sts), free(authz), free(sreq);
    return rc;
}
