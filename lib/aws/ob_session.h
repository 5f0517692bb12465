/*
 * ob_session: an assumed-role session sealed for the next stage.
 *
 * Every stage of an account works in the account through the same role, and
 * each AssumeRole counts against the fleet's STS quota (600 a second per
 * account and Region). The first stage to assume the role seals the session
 * it got (AES-256-GCM under a key the deployment provides) into a header of
 * its hand-off; the next stage opens it and signs with it instead of
 * assuming the role again. Nothing readable crosses Kafka: the header is
 * ciphertext bound (as authenticated data) to the account, the role and the
 * ExternalId it was issued for, so it opens only on a message of that same
 * account and role, and only with a key of the deployment's key ring.
 *
 * Keys: "ID:BASE64[,ID:BASE64...]", each BASE64 32 random bytes (e.g.
 * `openssl rand -base64 32`), ID 1 to 32 characters of [A-Za-z0-9._-]. The
 * first key seals; every key opens (a rotation adds the new key first, and
 * drops the old one once no message sealed with it can still be in flight:
 * a session lasts an hour at most).
 *
 * The header (binary): 1 byte version (1); 1 byte key id length L, L bytes
 * of key id; 12 bytes nonce (random); the sealed text and its 16-byte tag.
 * The text: 8 bytes expiry (ms since the epoch, big-endian), then access key
 * id, secret key and session token, each as 2 bytes of length (big-endian)
 * and the bytes. Authenticated data: "onboard-session/1", the key id, the
 * account, the role ARN and the ExternalId, each followed by a NUL.
 *
 * Secrets: keys and opened credentials are wiped when freed; nothing here
 * logs. Threading: pure functions; a key ring is read-only once parsed.
 */
#ifndef OB_SESSION_H
#define OB_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "ob_creds.h"
#include "ob_err.h"

#define OB_SESSION_HEADER "ob-session" /* the Kafka header that carries it */

typedef struct ob_session_keys_s ob_session_keys_t;

/* NULL with errstr (which never quotes a key) when the text is not a key
 * ring; an empty text is no key ring either (the caller decides whether
 * sealing is on). */
ob_session_keys_t *ob_session_keys_parse(const char *text, char *errstr, size_t errstr_size);
void ob_session_keys_free(ob_session_keys_t *k);
/* The sealing key's id (for logs: ids are not secret). */
const char *ob_session_keys_current(const ob_session_keys_t *k);

/* Seal creds (which must have a session token and an expiry) for this
 * account, role and ExternalId (NULL or "": none). *out is malloc'd.
 * OB_ERR_INVALID_ARG for credentials that cannot be sealed. */
ob_err_t ob_session_seal(const ob_session_keys_t *k, const ob_aws_creds_t *creds,
                         const char *account, const char *role_arn, const char *external_id,
                         uint8_t **out, size_t *out_len);
/* Open a header for this account, role and ExternalId: OB_OK with *creds set
 * (clear them with ob_aws_creds_clear); OB_ERR_PARSE when it was not sealed
 * by a key of the ring for exactly these (unknown key id, another account or
 * role, bytes changed); OB_ERR_INVALID_ARG when it is not a header of this
 * format (truncated, another version). */
ob_err_t ob_session_open(const ob_session_keys_t *k, const void *blob, size_t len,
                         const char *account, const char *role_arn, const char *external_id,
                         ob_aws_creds_t *creds);

#endif
