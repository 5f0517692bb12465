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

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

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
    char *out = malloc(outlen);
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
    uint8_t *o = malloc(in_len / 4 * 3 + 3 + 1);
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

int ob_ct_memcmp(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n);
}
