/*
 * ob_crypto: thin wrappers over OpenSSL, so callers never see OpenSSL types.
 *
 * SHA-256 and HMAC-SHA256 use OpenSSL's low-level SHA256_* functions (its
 * assembly, on a context on the stack). The EVP one-shots (EVP_Digest, HMAC)
 * look the algorithm up in the provider store under a lock and allocate
 * contexts on every call; a worker signs every AWS request with five HMACs
 * and two digests, and those lookups cost more than the hashing. The
 * low-level API is deprecated in OpenSSL 3 but kept, and SHA-256 has no
 * provider choice to make here (no FIPS module is configured).
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "ob_crypto.h"

#include <ctype.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"

void ob_sha256(const void *data, size_t len, uint8_t out[OB_SHA256_LEN])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, data, len);
    SHA256_Final(out, &c);
    OPENSSL_cleanse(&c, sizeof(c));
}

void ob_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void ob_sha256_hex(const void *data, size_t len, char out[OB_SHA256_HEX_LEN])
{
    uint8_t d[OB_SHA256_LEN];
    ob_sha256(data, len, d);
    ob_hex(d, sizeof(d), out);
}

/* RFC 2104 over SHA-256 (block 64 bytes). */
void ob_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                    uint8_t out[OB_SHA256_LEN])
{
    uint8_t k[SHA256_CBLOCK], pad[SHA256_CBLOCK], inner[OB_SHA256_LEN];
    SHA256_CTX c;
    memset(k, 0, sizeof(k));
    if (key_len > sizeof(k))
        ob_sha256(key, key_len, k);
    else if (key_len)
        memcpy(k, key, key_len);
    for (size_t i = 0; i < sizeof(k); i++)
        pad[i] = k[i] ^ 0x36;
    SHA256_Init(&c);
    SHA256_Update(&c, pad, sizeof(pad));
    SHA256_Update(&c, data, len);
    SHA256_Final(inner, &c);
    for (size_t i = 0; i < sizeof(k); i++)
        pad[i] = k[i] ^ 0x5c;
    SHA256_Init(&c);
    SHA256_Update(&c, pad, sizeof(pad));
    SHA256_Update(&c, inner, sizeof(inner));
    SHA256_Final(out, &c);
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
    OPENSSL_cleanse(inner, sizeof(inner));
    OPENSSL_cleanse(&c, sizeof(c));
}

void ob_md5_base64(const void *data, size_t len, char out[OB_MD5_B64_LEN])
{
    unsigned char d[16];
    unsigned int n = 0;
    EVP_Digest(data, len, d, &n, EVP_md5(), NULL);
    EVP_EncodeBlock((unsigned char *)out, d, 16);
}

char *ob_base64_encode(const void *data, size_t len)
{
    size_t outlen = 4 * ((len + 2) / 3) + 1;
    char *out = ob_malloc(outlen);
    if (!out)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

ob_err_t ob_base64_decode(const char *in, size_t in_len, uint8_t **out, size_t *out_len)
{
    while (in_len > 0 && in[in_len - 1] == '=')
        in_len--;
    if (in_len % 4 == 1)
        return OB_ERR_PARSE;
    uint8_t *o = ob_malloc(in_len / 4 * 3 + 3 + 1);
    if (!o)
        return OB_ERR_NOMEM;
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < in_len; i++) {
        int v = b64val((unsigned char)in[i]);
        if (v < 0) {
            free(o);
            return OB_ERR_PARSE;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[n++] = (uint8_t)(acc >> bits);
        }
    }
    o[n] = 0;
    *out = o;
    *out_len = n;
    return OB_OK;
}

ob_err_t ob_random_bytes(void *out, size_t n)
{
    return RAND_bytes(out, (int)n) == 1 ? OB_OK : OB_ERR_IO;
}

static ob_err_t aead(int seal, const uint8_t *key, const uint8_t *nonce, const void *aad,
                     size_t aad_len, const uint8_t *in, size_t len, uint8_t *tag, uint8_t *out)
{
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    if (!x)
        return OB_ERR_NOMEM;
    int n = 0, ok = EVP_CipherInit_ex(x, EVP_aes_256_gcm(), NULL, NULL, NULL, seal) == 1 &&
                    EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_IVLEN, OB_AEAD_NONCE_LEN, NULL) == 1 &&
                    EVP_CipherInit_ex(x, NULL, NULL, key, nonce, seal) == 1 &&
                    (aad_len == 0 || EVP_CipherUpdate(x, NULL, &n, aad, (int)aad_len) == 1) &&
                    (len == 0 || EVP_CipherUpdate(x, out, &n, in, (int)len) == 1);
    if (ok && !seal)
        ok = EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, OB_AEAD_TAG_LEN, tag) == 1;
    int fin = ok && EVP_CipherFinal_ex(x, out + (ok ? n : 0), &n) == 1;
    if (fin && seal)
        fin = EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, OB_AEAD_TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(x);
    if (!ok)
        return OB_ERR_IO;
    if (!fin) {
        if (!seal)
            OPENSSL_cleanse(out, len);
        return seal ? OB_ERR_IO : OB_ERR_PARSE;
    }
    return OB_OK;
}

ob_err_t ob_aead_seal(const uint8_t key[OB_AEAD_KEY_LEN], const uint8_t nonce[OB_AEAD_NONCE_LEN],
                      const void *aad, size_t aad_len, const void *in, size_t len, uint8_t *out)
{
    return aead(1, key, nonce, aad, aad_len, in, len, out + len, out);
}

ob_err_t ob_aead_open(const uint8_t key[OB_AEAD_KEY_LEN], const uint8_t nonce[OB_AEAD_NONCE_LEN],
                      const void *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out)
{
    if (len < OB_AEAD_TAG_LEN)
        return OB_ERR_INVALID_ARG;
    uint8_t tag[OB_AEAD_TAG_LEN];
    memcpy(tag, in + len - OB_AEAD_TAG_LEN, OB_AEAD_TAG_LEN);
    return aead(0, key, nonce, aad, aad_len, in, len - OB_AEAD_TAG_LEN, tag, out);
}

void ob_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

int ob_ct_memcmp(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The value of `digits` hex digits at p (-1: not that many). */
static long hexrun(const char *p, int digits)
{
    long v = 0;
    for (int i = 0; i < digits; i++) {
        int h = hexval((unsigned char)p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* How many bytes at p spell the character c (0: they do not). */
static size_t spelled(const char *p, unsigned char c)
{
    int want = tolower(c);
    long v;
    if (tolower((unsigned char)p[0]) == want)
        return 1;
    if (p[0] == '%' && (v = hexrun(p + 1, 2)) >= 0 && tolower((int)v) == want)
        return 3;
    if (p[0] == '\\' && p[1] == 'u' && (v = hexrun(p + 2, 4)) >= 0 && v < 256 &&
        tolower((int)v) == want)
        return 6;
    if (p[0] == '\\' && p[1] == 'x' && (v = hexrun(p + 2, 2)) >= 0 && tolower((int)v) == want)
        return 4;
    if (p[0] == '&' && p[1] == '#') {
        int hex = p[2] == 'x' || p[2] == 'X';
        size_t i = hex ? 3 : 2, start = i;
        v = 0;
        while (i < start + 8 &&
               (hex ? hexval((unsigned char)p[i]) >= 0 : isdigit((unsigned char)p[i]))) {
            v = v * (hex ? 16 : 10) + (hex ? hexval((unsigned char)p[i]) : p[i] - '0');
            i++;
        }
        if (i > start && p[i] == ';' && v < 256 && tolower((int)v) == want)
            return i + 1;
    }
    return 0;
}

size_t ob_redact(char *s, size_t size, const char *secret, const char *mark)
{
    size_t n = secret ? strlen(secret) : 0;
    if (!s || n < 2 || !size)
        return 0;
    size_t m = strlen(mark), found = 0;
    for (size_t off = 0; s[off];) {
        size_t end = off;
        for (size_t k = 0; k < n && end != (size_t)-1; k++) {
            size_t len = spelled(s + end, (unsigned char)secret[k]);
            end = len ? end + len : (size_t)-1;
        }
        if (end == (size_t)-1) {
            off++;
            continue;
        }
        found++;
        if (off + m + 1 > size) {
            s[off] = '\0'; /* no room for the mark: cut the text here */
            return found;
        }
        size_t tail = strlen(s + end);
        if (off + m + tail + 1 > size)
            tail = size - off - m - 1;
        memmove(s + off + m, s + end, tail);
        s[off + m + tail] = '\0';
        memcpy(s + off, mark, m);
        off += m;
    }
    return found;
}
