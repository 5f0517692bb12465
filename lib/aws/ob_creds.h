/*
 * ob_creds: AWS credentials, and the credential source every kind shares.
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
 * This core needs only the event loop; the AWS client (ob_aws) signs with
 * what it hands out. The kinds of sources, which fetch through the AWS
 * client or HTTP (STS, web identity, container, IMDS, the default chain and
 * the assume-role cache), sit above the client, in ob_credsrc.h.
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

#include "ob_err.h"
#include "ob_loop.h"
#include "ob_retry.h"

/* Made by ob_aws_creds_set only: the three strings are one allocation (access_key_id's),
 * which ob_aws_creds_clear wipes and frees. */
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

ob_credsrc_t *ob_credsrc_ref(ob_credsrc_t *s);
void ob_credsrc_unref(ob_credsrc_t *s);

const ob_aws_creds_t *ob_credsrc_peek(ob_credsrc_t *s);
/* Wait for credentials; NULL only when out of memory. The callback always
 * runs later, on the loop, never inside this call. */
ob_creds_wait_t *ob_credsrc_get(ob_credsrc_t *s, ob_creds_cb *cb, void *arg);
void ob_creds_wait_cancel(ob_creds_wait_t *w);
/* Credentials got elsewhere for what this source fetches (a session the
 * previous stage sealed for this role): taken, without a fetch, when more
 * than OB_CREDS_ADVISORY_MS of their life is left (the source would not
 * refresh them at once) and they last longer than what the source has. 1 when taken, 0 when not
 * (the source fetches as usual); waiters are answered. */
int ob_credsrc_offer(ob_credsrc_t *s, const ob_aws_creds_t *creds);
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

/* ---- for the kinds of sources ---- */

typedef struct ob_credsrc_ops_s {
    const char *kind; /* the describe() text until the kind sets its own */
    /* Start a fetch. It ends, now or later on the loop, in exactly one
     * ob_credsrc_fetched(). NULL: the source never fetches (fixed keys). */
    void (*fetch)(ob_credsrc_t *s);
    void (*destroy)(void *data); /* free the kind's data (may be NULL) */
} ob_credsrc_ops_t;

/* A new source (one reference) of a kind; data is the kind's own, handed to
 * ops->destroy with the source's last reference. */
ob_credsrc_t *ob_credsrc_new(ob_loop_t *loop, const ob_credsrc_ops_t *ops, void *data);
void *ob_credsrc_data(const ob_credsrc_t *s);
ob_loop_t *ob_credsrc_loop(const ob_credsrc_t *s);
/* What describe() says (no secrets, at most 319 bytes). */
void ob_credsrc_set_describe(ob_credsrc_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Credentials that never expire, for a source that never fetches. OB_ERR_NOMEM. */
ob_err_t ob_credsrc_set_fixed(ob_credsrc_t *s, const char *akid, const char *secret,
                              const char *token);
/* A fetch ended: creds (copied) on success, else err with a message safe to
 * log. Waiters are answered; the reference the fetch held is dropped, so s
 * may be gone when this returns. */
void ob_credsrc_fetched(ob_credsrc_t *s, ob_err_t err, const char *msg,
                        const ob_aws_creds_t *creds);
/* What a failing fetch was (see ob_credsrc_last_failure), before it ends. */
void ob_credsrc_note_failure(ob_credsrc_t *s, ob_retry_class_t cls, const char *code);
/* Wipe a secret string and free it (NULL is fine). */
void ob_aws_secret_free(char *s);

#endif
