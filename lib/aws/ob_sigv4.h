/*
 * ob_sigv4: AWS Signature Version 4 for request headers, both sides of it.
 *
 * The client side (ob_sigv4_sign) signs a request that is about to go on the
 * wire: it adds X-Amz-Date, X-Amz-Security-Token (temporary credentials; the
 * token is signed), x-amz-content-sha256 (S3) and Authorization to the header
 * list. The server side (ob_sigv4_parse_authorization, ob_sigv4_verify) is for
 * the project's AWS simulator: it recomputes the signature of a received
 * request from the headers named in SignedHeaders and compares in constant
 * time.
 *
 * Canonical form, as botocore builds it:
 *   - path: for S3 the wire path as is; for every other service dot segments
 *     are removed, repeated slashes collapsed and each segment URI-encoded, so
 *     an already percent-encoded wire path is encoded twice;
 *   - query: split on '&' (empty pieces ignored), each name and value
 *     percent-decoded then encoded with the unreserved set A-Z a-z 0-9 - _ . ~,
 *     sorted by name then value; "name" without '=' becomes "name=". A '+' is
 *     a literal plus, not a space: callers encode spaces as %20;
 *   - headers: every header except Authorization, User-Agent, Expect and
 *     X-Amzn-Trace-Id (which proxies may rewrite), names lowercased, values
 *     trimmed with inner whitespace runs (including folded lines) collapsed to
 *     one space, repeated names joined with ',' in order.
 *
 * Ownership: nothing is retained. Strings passed in are borrowed for the call;
 * `headers` is modified in place; debug buffers are filled (after a reset) and
 * belong to the caller, who frees them with ob_buf_free().
 *
 * Thread safety: all functions are reentrant; a given header list must not be
 * used by two threads at once. Secrets never appear in error messages.
 */
#ifndef OB_SIGV4_H
#define OB_SIGV4_H

#include <stddef.h>
#include <time.h>

#include "ob_buf.h"
#include "ob_err.h"

#define OB_SIGV4_ALGORITHM        "AWS4-HMAC-SHA256"
#define OB_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* Hex SHA-256 of the empty string (body of GET/HEAD/DELETE). */
#define OB_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct ob_sigv4_creds_s {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL (or "") if none */
} ob_sigv4_creds_t;

typedef struct ob_sigv4_params_s {
    const char *service;      /* signing name, e.g. "s3", "sts" */
    const char *region;       /* signing region, e.g. "us-east-1" */
    time_t now;               /* request time (UTC) */
    int s3;                   /* S3 rules: path used as is (no normalisation, no second
                               * encoding), x-amz-content-sha256 always added */
    const char *payload_hash; /* optional lowercase hex SHA-256 of the body, or
                               * "UNSIGNED-PAYLOAD"; NULL: computed from the body */
    int omit_session_token;   /* rare: add the token header after signing, unsigned (leave 0) */
} ob_sigv4_params_t;

/* Intermediate values, for logs and tests. Zero-initialise; caller frees both. */
typedef struct ob_sigv4_debug_s {
    ob_buf_t canonical_request;
    ob_buf_t string_to_sign;
} ob_sigv4_debug_t;

/*
 * Sign a request. `method`, `path` and `query` are exactly as they go on the
 * wire (`path` starts with '/', `query` has no '?' and may be NULL or "").
 * `headers` must already hold Host. Adds (replacing earlier values, so a
 * retry can simply be signed again) X-Amz-Date, X-Amz-Security-Token when the
 * credentials have a token, x-amz-content-sha256 when params->s3, and
 * Authorization. `body` may be NULL when body_len is 0; `dbg` may be NULL.
 *
 * Errors: OB_ERR_INVALID_ARG (missing Host, bad path, bad payload_hash,
 * malformed %-escape in the query, empty credentials...), OB_ERR_NOMEM. On
 * error `headers` may hold some of the added headers but no Authorization.
 */
ob_err_t ob_sigv4_sign(const char *method, const char *path, const char *query, ob_hdrs_t *headers,
                       const void *body, size_t body_len, const ob_sigv4_creds_t *creds,
                       const ob_sigv4_params_t *params, ob_sigv4_debug_t *dbg, char *errstr,
                       size_t errstr_size);

/* A parsed Authorization header (server side). */
typedef struct ob_sigv4_auth_s {
    char access_key_id[129];
    char date[9]; /* YYYYMMDD from the credential scope */
    char region[64];
    char service[64];
    char signed_headers[1024]; /* lowercase names, sorted, ';'-separated */
    char signature[65];        /* 64 lowercase hex digits */
} ob_sigv4_auth_t;

/*
 * Parse "AWS4-HMAC-SHA256 Credential=AKID/YYYYMMDD/REGION/SERVICE/aws4_request,
 * SignedHeaders=a;b, Signature=hex" (spaces after the commas optional).
 * Errors: OB_ERR_PARSE with the reason; `out` is then unspecified.
 */
ob_err_t ob_sigv4_parse_authorization(const char *value, ob_sigv4_auth_t *out, char *errstr,
                                      size_t errstr_size);

/*
 * Verify a received request (server side): recompute its signature with the
 * secret belonging to the access key in its Authorization header (parse it
 * first to look the secret up), using only the headers named in
 * SignedHeaders and the X-Amz-Date header, and compare in constant time.
 * Requires Host to be signed and X-Amz-Date to match the credential scope
 * date. The payload hash is the body's; a x-amz-content-sha256 header must
 * match the body (S3 may send UNSIGNED-PAYLOAD instead), and S3 requests
 * (s3 != 0) must carry it. Request time is not checked against a clock.
 *
 * Returns OB_OK when the signature matches; OB_ERR_AWS with the reason when it
 * does not or the request is malformed (never the secret nor the expected
 * signature); OB_ERR_INVALID_ARG for NULL arguments; OB_ERR_NOMEM.
 */
ob_err_t ob_sigv4_verify(const char *method, const char *path, const char *query,
                         const ob_hdrs_t *headers, const void *body, size_t body_len,
                         const char *secret_access_key, int s3, char *errstr, size_t errstr_size);

#endif
