/*
 * ob_crypto: the few digests and encodings the AWS core needs, on OpenSSL 3.
 *
 * All functions are pure and thread-safe. Output buffers are sized by the
 * OB_*_LEN constants (which include the terminating NUL where text).
 */
#ifndef OB_CRYPTO_H
#define OB_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "ob_err.h"

#define OB_SHA256_LEN     32
#define OB_SHA256_HEX_LEN 65 /* 64 hex digits + NUL */
#define OB_MD5_B64_LEN    25 /* base64 of 16 bytes + NUL */

void ob_sha256(const void *data, size_t len, uint8_t out[OB_SHA256_LEN]);
void ob_sha256_hex(const void *data, size_t len, char out[OB_SHA256_HEX_LEN]);
void ob_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                    uint8_t out[OB_SHA256_LEN]);
/* Base64 of the MD5 digest, as S3's Content-MD5 header wants it. */
void ob_md5_base64(const void *data, size_t len, char out[OB_MD5_B64_LEN]);
/* Lowercase hex of n bytes; out holds 2n+1 chars. */
void ob_hex(const uint8_t *in, size_t n, char *out);
/* Standard base64 with padding; returns a malloc'd string or NULL. */
char *ob_base64_encode(const void *data, size_t len);
/* Decode standard base64 (padding optional); malloc'd bytes in *out, length
 * in *out_len (a NUL follows them). OB_ERR_PARSE on bad input. */
ob_err_t ob_base64_decode(const char *in, size_t in_len, uint8_t **out, size_t *out_len);
/* Cryptographically random bytes (OpenSSL RAND_bytes). */
ob_err_t ob_random_bytes(void *out, size_t n);
/* Replace every occurrence of `secret` in s (NUL-terminated, in a buffer of
 * size bytes) by `mark`, however the text spells it: in any letter case, and
 * each character also as a percent escape (%41, %2f), a JSON or C escape
 * (\u0041, \x41) or an XML/HTML character reference (&#x41; &#65;), as
 * error replies quote what they were sent. When the mark does not fit, the
 * text is cut where the secret began. Secrets shorter than 2 characters are
 * left alone. Returns how many occurrences were replaced. */
size_t ob_redact(char *s, size_t size, const char *secret, const char *mark);
/* AES-256-GCM: 12-byte nonce, 16-byte tag. Seal writes len bytes of
 * ciphertext to out and the tag after them (out holds len + 16 bytes); open
 * checks the tag over the ciphertext and aad and writes len - 16 bytes of
 * plaintext. OB_ERR_PARSE when the tag does not match (a wrong key, or bytes
 * changed), OB_ERR_INVALID_ARG for a short input. */
#define OB_AEAD_KEY_LEN   32
#define OB_AEAD_NONCE_LEN 12
#define OB_AEAD_TAG_LEN   16
ob_err_t ob_aead_seal(const uint8_t key[OB_AEAD_KEY_LEN], const uint8_t nonce[OB_AEAD_NONCE_LEN],
                      const void *aad, size_t aad_len, const void *in, size_t len, uint8_t *out);
ob_err_t ob_aead_open(const uint8_t key[OB_AEAD_KEY_LEN], const uint8_t nonce[OB_AEAD_NONCE_LEN],
                      const void *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out);
/* Overwrite n bytes with zeros in a way the compiler keeps (OPENSSL_cleanse). */
void ob_wipe(void *p, size_t n);
/* Constant-time comparison (CRYPTO_memcmp); 0 when equal. */
int ob_ct_memcmp(const void *a, const void *b, size_t n);

#endif
