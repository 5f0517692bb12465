/*
 * ob_creds: AWS credentials, where they come from, and keeping them fresh.
 *
 * A credentials source (ob_credsrc_t) hands out credentials and refreshes
 * them before they expire, on the event loop, without blocking anyone:
 *
 *  - ob_credsrc_peek() returns credentials that are good to sign with now, or
 *    NULL. Inside the "advisory" window before expiry it still returns them
 *    but starts a background refresh; inside the "mandatory" window it returns
 *    NULL and the caller must wait.
 *  - ob_credsrc_get() waits: its callback runs on the loop once credentials
 *    are there (or the fetch failed). Only one fetch runs per source however
 *    many callers wait (single flight). A failed fetch is remembered for a
 *    second so a crowd of callers does not turn into a crowd of requests.
 *
 * Sources, in the order of the SDKs' default chain (ob_credsrc_chain):
 *  1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;
 *  2. the profile (AWS_PROFILE or "default") with role_arn: AssumeRole with
 *     credentials from source_profile (recursively) or credential_source
 *     (Environment, Ec2InstanceMetadata, EcsContainer), external_id,
 *     role_session_name, duration_seconds; or with web_identity_token_file;
 *  3. web identity from the environment (EKS IRSA): AWS_WEB_IDENTITY_TOKEN_FILE,
 *     AWS_ROLE_ARN, AWS_ROLE_SESSION_NAME -> AssumeRoleWithWebIdentity;
 *  4. static keys of the profile in the shared credentials or config file;
 *  5. container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (ECS) or
 *     AWS_CONTAINER_CREDENTIALS_FULL_URI (loopback, ECS/EKS link-local hosts,
 *     or HTTPS) with AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE);
 *  6. EC2 instance metadata, IMDSv2 only (token PUT, then the role's
 *     credentials), unless AWS_EC2_METADATA_DISABLED=true;
 *     AWS_EC2_METADATA_SERVICE_ENDPOINT overrides the address.
 *
 * Target accounts are reached with ob_assume_cache_t: one AssumeRole source
 * per (role ARN, ExternalId), built on the fleet's own credentials, kept
 * until a few minutes before expiry and refreshed in the background, bounded
 * in size (least recently used sources are dropped first).
 *
 * Secrets: secret keys, session tokens, web identity tokens and ExternalIds
 * are never logged or put in error messages; ob_credsrc_describe() names a
 * source without them.
 *
 * Ownership: sources are reference counted (ob_credsrc_ref/unref); a source
 * built on another takes a reference to it. Credentials returned by peek or
 * passed to a callback are valid until the source refreshes; copy them
 * (ob_aws_creds_copy) to keep them. Threading: loop thread only.
 */
#ifndef OB_CREDS_H
#define OB_CREDS_H

#include <stdint.h>

#include "ob_aws.h"
#include "ob_config.h"
#include "ob_err.h"
#include "ob_retry.h"

typedef struct ob_aws_creds_s {
    char *access_key_id;
    char *secret_access_key;
    char *session_token; /* NULL when none */
    int64_t expires_ms;  /* wall clock, ms since the epoch; 0: never expires */
    char account_id[16]; /* when known (AssumeRole, container, IMDS), else "" */
} ob_aws_creds_t;

ob_err_t ob_aws_creds_set(ob_aws_creds_t *c, const char *akid, const char *secret,
                          const char *token, int64_t expires_ms);
ob_err_t ob_aws_creds_copy(ob_aws_creds_t *dst, const ob_aws_creds_t *src);
/* Wipe and free the secrets. */
void ob_aws_creds_clear(ob_aws_creds_t *c);

typedef struct ob_credsrc_s ob_credsrc_t;
typedef struct ob_creds_wait_s ob_creds_wait_t;

/* err OB_OK with creds, or an error (OB_ERR_CREDENTIALS, OB_ERR_AWS, transport
 * codes) with a message safe to log and creds NULL. */
typedef void(ob_creds_cb)(ob_err_t err, const char *errmsg, const ob_aws_creds_t *creds, void *arg);

/* Fixed credentials (never refreshed). */
ob_credsrc_t *ob_credsrc_static(ob_aws_t *aws, const char *akid, const char *secret,
                                const char *token, const char *describe);
/* AssumeRole with `base`'s credentials (a reference to base is taken).
 * external_id and session_name may be NULL; duration_s 0 means 3600. */
ob_credsrc_t *ob_credsrc_assume_role(ob_aws_t *aws, ob_credsrc_t *base, const char *role_arn,
                                     const char *external_id, const char *session_name,
                                     int duration_s, const char *region);
/* AssumeRoleWithWebIdentity; the token file is read at every refresh. */
ob_credsrc_t *ob_credsrc_web_identity(ob_aws_t *aws, const char *token_file, const char *role_arn,
                                      const char *session_name, const char *region);
/* Container credentials from the environment; NULL (with errstr) when not
 * configured or the URI is not allowed. */
ob_credsrc_t *ob_credsrc_container(ob_aws_t *aws, char *errstr, size_t errstr_size);
/* IMDSv2 instance-role credentials. */
ob_credsrc_t *ob_credsrc_imds(ob_aws_t *aws);

/* The default chain (see above), resolved from the client's environment and
 * shared config. NULL with errstr when the configuration is wrong (unknown
 * AWS_PROFILE, a role_arn without a source, a source_profile loop...). */
ob_credsrc_t *ob_credsrc_chain(ob_aws_t *aws, char *errstr, size_t errstr_size);

ob_credsrc_t *ob_credsrc_ref(ob_credsrc_t *s);
void ob_credsrc_unref(ob_credsrc_t *s);

const ob_aws_creds_t *ob_credsrc_peek(ob_credsrc_t *s);
/* Wait for credentials; NULL only when out of memory. The callback always
 * runs later, on the loop, never inside this call. */
ob_creds_wait_t *ob_credsrc_get(ob_credsrc_t *s, ob_creds_cb *cb, void *arg);
void ob_creds_wait_cancel(ob_creds_wait_t *w);
/* Forget the current credentials (e.g. after ExpiredToken). */
void ob_credsrc_invalidate(ob_credsrc_t *s);
/* What the last failed fetch was, for the call that waited on it: its retry
 * class (a denial is OB_RETRY_NO; STS throttling, a 5xx, a reset, a timeout
 * or a truncated reply are retryable) and its code (STS's error code, or the
 * transport error's name; "" when none). Not text to parse. */
void ob_credsrc_last_failure(const ob_credsrc_t *s, ob_retry_class_t *cls, const char **code);
/* "environment", "profile prod (shared credentials file)", "assume-role
 * arn:aws:iam::123456789012:role/x", ... (no secrets). */
const char *ob_credsrc_describe(const ob_credsrc_t *s);
/* Fetches started so far (tests, metrics). */
uint64_t ob_credsrc_fetches(const ob_credsrc_t *s);

/* Refresh windows, as fractions capped by absolute times (botocore uses 15 and
 * 10 minutes; short-lived credentials get proportionally shorter windows). */
#define OB_CREDS_ADVISORY_MS  (15 * 60 * 1000)
#define OB_CREDS_MANDATORY_MS (10 * 60 * 1000)

typedef struct ob_assume_cache_s ob_assume_cache_t;

typedef struct ob_assume_cache_opts_s {
    size_t max_entries;       /* 0: 10000 */
    int duration_s;           /* 0: 3600 */
    const char *session_name; /* 0: "onboard" */
    const char *region;       /* STS region (NULL: the client's default) */
} ob_assume_cache_opts_t;

ob_assume_cache_t *ob_assume_cache_new(ob_aws_t *aws, ob_credsrc_t *base,
                                       const ob_assume_cache_opts_t *opts);
/* The source for this role and ExternalId (created on first use). The pointer
 * is borrowed: take a reference to keep it past the current callback. */
ob_credsrc_t *ob_assume_cache_get(ob_assume_cache_t *c, const char *role_arn,
                                  const char *external_id);
size_t ob_assume_cache_size(const ob_assume_cache_t *c);
void ob_assume_cache_free(ob_assume_cache_t *c);

#endif
