/*
 * ob_session: an assumed-role session sealed for the next stage (see
 * ob_session.h for the format).
 */
#include "ob_session.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"
#include "ob_crypto.h"

#define VERSION     1
#define KEY_ID_MAX  32
#define KEYS_MAX    8
#define AAD_CONTEXT "onboard-session/1"

typedef struct {
    char id[KEY_ID_MAX + 1];
    uint8_t key[OB_AEAD_KEY_LEN];
} key_t_;

struct ob_session_keys_s {
    size_t n;
    key_t_ keys[KEYS_MAX];
};

static int id_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

void ob_session_keys_free(ob_session_keys_t *k)
{
    if (!k)
        return;
    OPENSSL_cleanse(k, sizeof(*k));
    free(k);
}

ob_session_keys_t *ob_session_keys_parse(const char *text, char *errstr, size_t errstr_size)
{
    ob_session_keys_t *k = ob_calloc(1, sizeof(*k));
    const char *p = text ? text : "";
    size_t pos = 0;
    while (*p) {
        pos++;
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
            p++;
        size_t len = strcspn(p, ",\n");
        const char *colon = memchr(p, ':', len);
        size_t idlen = colon ? (size_t)(colon - p) : 0;
        if (!colon || idlen == 0 || idlen > KEY_ID_MAX) {
            ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                    "session key %zu: expected ID:BASE64 (an id of 1 to %d characters)", pos,
                    KEY_ID_MAX);
            goto bad;
        }
        for (size_t i = 0; i < idlen; i++)
            if (!id_char(p[i])) {
                ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                        "session key %zu: the id may hold only letters, digits, '.', '_' and '-'",
                        pos);
                goto bad;
            }
        size_t blen = len - idlen - 1;
        while (blen && (colon[blen] == ' ' || colon[blen] == '\r' || colon[blen] == '\t'))
            blen--;
        uint8_t *raw = NULL;
        size_t rlen = 0;
        if (ob_base64_decode(colon + 1, blen, &raw, &rlen) != OB_OK || rlen != OB_AEAD_KEY_LEN) {
            if (raw) {
                OPENSSL_cleanse(raw, rlen);
                free(raw);
            }
            ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                    "session key %zu (%.*s): the key must be 32 bytes in base64 (openssl rand "
                    "-base64 32)",
                    pos, (int)idlen, p);
            goto bad;
        }
        if (k->n == KEYS_MAX) {
            OPENSSL_cleanse(raw, rlen);
            free(raw);
            ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "at most %d session keys", KEYS_MAX);
            goto bad;
        }
        for (size_t i = 0; i < k->n; i++)
            if (strlen(k->keys[i].id) == idlen && !memcmp(k->keys[i].id, p, idlen)) {
                OPENSSL_cleanse(raw, rlen);
                free(raw);
                ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "session key id %.*s given twice",
                        (int)idlen, p);
                goto bad;
            }
        memcpy(k->keys[k->n].id, p, idlen);
        memcpy(k->keys[k->n].key, raw, OB_AEAD_KEY_LEN);
        k->n++;
        OPENSSL_cleanse(raw, rlen);
        free(raw);
        p += len;
        if (*p)
            p++;
    }
    if (k->n == 0) {
        ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "no session key");
        goto bad;
    }
    return k;
bad:
    ob_session_keys_free(k);
    return NULL;
}

const char *ob_session_keys_current(const ob_session_keys_t *k)
{
    return k && k->n ? k->keys[0].id : "";
}

/* The authenticated data: context, key id, account, role, ExternalId. */
static char *aad_of(const char *id, const char *account, const char *role_arn,
                    const char *external_id, size_t *len)
{
    const char *parts[] = {AAD_CONTEXT, id, account ? account : "", role_arn ? role_arn : "",
                           external_id ? external_id : ""};
    size_t n = 0;
    for (size_t i = 0; i < 5; i++)
        n += strlen(parts[i]) + 1;
    char *a = ob_malloc(n), *q = a;
    for (size_t i = 0; i < 5; i++) {
        size_t l = strlen(parts[i]) + 1;
        memcpy(q, parts[i], l);
        q += l;
    }
    *len = n;
    return a;
}

static void put16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

ob_err_t ob_session_seal(const ob_session_keys_t *k, const ob_aws_creds_t *creds,
                         const char *account, const char *role_arn, const char *external_id,
                         uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!k || !k->n || !creds || !creds->access_key_id || !creds->secret_access_key ||
        !creds->session_token || creds->expires_ms <= 0)
        return OB_ERR_INVALID_ARG;
    const char *f[3] = {creds->access_key_id, creds->secret_access_key, creds->session_token};
    size_t fl[3], tlen = 8;
    for (int i = 0; i < 3; i++) {
        fl[i] = strlen(f[i]);
        if (fl[i] > 0xffff)
            return OB_ERR_INVALID_ARG;
        tlen += 2 + fl[i];
    }
    uint8_t *text = ob_malloc(tlen), *q = text;
    uint64_t exp = (uint64_t)creds->expires_ms;
    for (int i = 7; i >= 0; i--)
        *q++ = (uint8_t)(exp >> (8 * i));
    for (int i = 0; i < 3; i++) {
        put16(q, fl[i]);
        memcpy(q + 2, f[i], fl[i]);
        q += 2 + fl[i];
    }
    const key_t_ *key = &k->keys[0];
    size_t idlen = strlen(key->id);
    size_t hlen = 2 + idlen + OB_AEAD_NONCE_LEN;
    uint8_t *blob = ob_malloc(hlen + tlen + OB_AEAD_TAG_LEN);
    blob[0] = VERSION;
    blob[1] = (uint8_t)idlen;
    memcpy(blob + 2, key->id, idlen);
    uint8_t *nonce = blob + 2 + idlen;
    ob_err_t e = ob_random_bytes(nonce, OB_AEAD_NONCE_LEN);
    size_t alen = 0;
    char *aad = aad_of(key->id, account, role_arn, external_id, &alen);
    if (e == OB_OK)
        e = ob_aead_seal(key->key, nonce, aad, alen, text, tlen, blob + hlen);
    free(aad);
    OPENSSL_cleanse(text, tlen);
    free(text);
    if (e != OB_OK) {
        free(blob);
        return e;
    }
    *out = blob;
    *out_len = hlen + tlen + OB_AEAD_TAG_LEN;
    return OB_OK;
}

static size_t get16(const uint8_t *p)
{
    return ((size_t)p[0] << 8) | p[1];
}

ob_err_t ob_session_open(const ob_session_keys_t *k, const void *blob, size_t len,
                         const char *account, const char *role_arn, const char *external_id,
                         ob_aws_creds_t *creds)
{
    const uint8_t *b = blob;
    if (!k || !b || len < 2 || b[0] != VERSION)
        return OB_ERR_INVALID_ARG;
    size_t idlen = b[1];
    if (idlen == 0 || idlen > KEY_ID_MAX ||
        len < 2 + idlen + OB_AEAD_NONCE_LEN + 8 + 6 + OB_AEAD_TAG_LEN)
        return OB_ERR_INVALID_ARG;
    const key_t_ *key = NULL;
    for (size_t i = 0; i < k->n && !key; i++)
        if (strlen(k->keys[i].id) == idlen && !memcmp(k->keys[i].id, b + 2, idlen))
            key = &k->keys[i];
    if (!key)
        return OB_ERR_PARSE;
    const uint8_t *nonce = b + 2 + idlen;
    const uint8_t *sealed = nonce + OB_AEAD_NONCE_LEN;
    size_t slen = len - (size_t)(sealed - b);
    size_t tlen = slen - OB_AEAD_TAG_LEN;
    uint8_t *text = ob_malloc(tlen + 1);
    size_t alen = 0;
    char *aad = aad_of(key->id, account, role_arn, external_id, &alen);
    ob_err_t e = ob_aead_open(key->key, nonce, aad, alen, sealed, slen, text);
    free(aad);
    if (e != OB_OK) {
        free(text);
        return e;
    }
    /* Authentic: the layout is ours, but check it all the same. */
    char *f[3] = {NULL, NULL, NULL};
    const uint8_t *q = text + 8, *end = text + tlen;
    e = OB_OK;
    for (int i = 0; i < 3 && e == OB_OK; i++) {
        size_t l = end - q >= 2 ? get16(q) : (size_t)-1;
        if (l == (size_t)-1 || (size_t)(end - q - 2) < l || memchr(q + 2, '\0', l)) {
            e = OB_ERR_INVALID_ARG;
            break;
        }
        f[i] = ob_malloc(l + 1);
        memcpy(f[i], q + 2, l);
        f[i][l] = '\0';
        q += 2 + l;
    }
    uint64_t exp = 0;
    for (int i = 0; i < 8; i++)
        exp = (exp << 8) | text[i];
    if (e == OB_OK &&
        (q != end || !f[0][0] || !f[1][0] || !f[2][0] || exp == 0 || exp > (uint64_t)INT64_MAX))
        e = OB_ERR_INVALID_ARG;
    if (e == OB_OK)
        e = ob_aws_creds_set(creds, f[0], f[1], f[2], (int64_t)exp);
    for (int i = 0; i < 3; i++)
        ob_aws_secret_free(f[i]);
    OPENSSL_cleanse(text, tlen);
    free(text);
    return e;
}
