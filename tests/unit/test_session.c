/*
 * ob_session and the AEAD under it: AES-256-GCM against the GCM
 * specification's vectors, the key ring's text, a sealed session opening
 * only for its account, role and ExternalId under a key of the ring, and
 * ob_credsrc_offer taking a session instead of fetching one.
 */
#include <stdlib.h>
#include <string.h>

#include "ob_creds.h"
#include "ob_crypto.h"
#include "ob_loop.h"
#include "ob_session.h"
#include "ob_time.h"
#include "testutil.h"

static void unhex(const char *h, uint8_t *out)
{
    for (size_t i = 0; h[2 * i]; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

/* The GCM specification (McGrew and Viega), test cases 13 and 14: AES-256,
 * an all-zero key and IV. */
static void test_aead_vectors(void **state)
{
    (void)state;
    uint8_t key[32] = {0}, nonce[12] = {0}, zero[16] = {0}, out[32], want[32], back[16];
    assert_int_equal(ob_aead_seal(key, nonce, NULL, 0, NULL, 0, out), OB_OK);
    unhex("530f8afbc74536b9a963b4f1c4cb738b", want);
    assert_memory_equal(out, want, 16);
    assert_int_equal(ob_aead_open(key, nonce, NULL, 0, out, 16, back), OB_OK);

    assert_int_equal(ob_aead_seal(key, nonce, NULL, 0, zero, 16, out), OB_OK);
    unhex("cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919", want);
    assert_memory_equal(out, want, 32);
    assert_int_equal(ob_aead_open(key, nonce, NULL, 0, out, 32, back), OB_OK);
    assert_memory_equal(back, zero, 16);
    /* A changed bit, other authenticated data, or a short input: refused. */
    out[3] ^= 1;
    assert_int_equal(ob_aead_open(key, nonce, NULL, 0, out, 32, back), OB_ERR_PARSE);
    out[3] ^= 1;
    assert_int_equal(ob_aead_open(key, nonce, "x", 1, out, 32, back), OB_ERR_PARSE);
    assert_int_equal(ob_aead_open(key, nonce, NULL, 0, out, 15, back), OB_ERR_INVALID_ARG);
}

#define K1 "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define K2 "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="

static void test_keys_text(void **state)
{
    (void)state;
    char err[256];
    ob_session_keys_t *k = ob_session_keys_parse(K1, err, sizeof(err));
    assert_non_null(k);
    assert_string_equal(ob_session_keys_current(k), "k1");
    ob_session_keys_free(k);
    k = ob_session_keys_parse(" " K2 ",\n" K1 "\n", err, sizeof(err));
    assert_non_null(k);
    assert_string_equal(ob_session_keys_current(k), "k2");
    ob_session_keys_free(k);

    const struct {
        const char *text, *says;
    } bad[] = {
        {"", "no session key"},
        {"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "expected ID:BASE64"},
        {"k1:AAECAwQF", "32 bytes in base64"},
        {"k1:!!!!", "32 bytes in base64"},
        {"k/1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "only letters"},
        {K1 "," K1, "given twice"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_null(ob_session_keys_parse(bad[i].text, err, sizeof(err)));
        if (!strstr(err, bad[i].says))
            fail_msg("%s: %s", bad[i].text, err);
        /* The error never quotes a key. */
        assert_null(strstr(err, "AAECAwQF"));
    }
}

#define ACCT  "200000000001"
#define ROLE  "arn:aws:iam::200000000001:role/OrganizationAccountAccessRole"
#define AKID  "ASIAEXAMPLEEXAMPLE01"
#define SEC   "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzSECRET"
#define TOKEN "FwoGZXIvYXdzEXAMPLETOKENtokentokentokentoken=="

static void sealed(const ob_session_keys_t *k, const char *ext, uint8_t **b, size_t *n)
{
    ob_aws_creds_t c = {0};
    assert_int_equal(ob_aws_creds_set(&c, AKID, SEC, TOKEN, 1796000000000LL), OB_OK);
    assert_int_equal(ob_session_seal(k, &c, ACCT, ROLE, ext, b, n), OB_OK);
    ob_aws_creds_clear(&c);
}

static void test_seal_open(void **state)
{
    (void)state;
    char err[256];
    ob_session_keys_t *k1 = ob_session_keys_parse(K1, err, sizeof(err));
    ob_session_keys_t *k2 = ob_session_keys_parse(K2, err, sizeof(err));
    ob_session_keys_t *rot = ob_session_keys_parse(K2 "," K1, err, sizeof(err));
    uint8_t *b = NULL;
    size_t n = 0;
    sealed(k1, NULL, &b, &n);
    /* Nothing of the session is readable in the header. */
    assert_null(memmem(b, n, AKID, strlen(AKID)));
    assert_null(memmem(b, n, SEC, 8));
    assert_null(memmem(b, n, TOKEN, 8));
    assert_int_equal(b[0], 1);
    assert_memory_equal(b + 1, "\002k1", 3);

    ob_aws_creds_t c = {0};
    assert_int_equal(ob_session_open(k1, b, n, ACCT, ROLE, NULL, &c), OB_OK);
    assert_string_equal(c.access_key_id, AKID);
    assert_string_equal(c.secret_access_key, SEC);
    assert_string_equal(c.session_token, TOKEN);
    assert_int_equal(c.expires_ms, 1796000000000LL);
    ob_aws_creds_clear(&c);
    /* ExternalId "" and none are the same. */
    assert_int_equal(ob_session_open(k1, b, n, ACCT, ROLE, "", &c), OB_OK);
    ob_aws_creds_clear(&c);
    /* A rotated ring opens what the old key sealed. */
    assert_int_equal(ob_session_open(rot, b, n, ACCT, ROLE, NULL, &c), OB_OK);
    ob_aws_creds_clear(&c);

    /* Only for its account, role and ExternalId, and under a key of the ring. */
    assert_int_equal(ob_session_open(k1, b, n, "200000000002", ROLE, NULL, &c), OB_ERR_PARSE);
    assert_int_equal(
        ob_session_open(k1, b, n, ACCT, "arn:aws:iam::200000000001:role/Other", NULL, &c),
        OB_ERR_PARSE);
    assert_int_equal(ob_session_open(k1, b, n, ACCT, ROLE, "ext-1", &c), OB_ERR_PARSE);
    assert_int_equal(ob_session_open(k2, b, n, ACCT, ROLE, NULL, &c), OB_ERR_PARSE);
    /* A changed byte anywhere after the key id, or a key id changed to
     * another of the ring. */
    for (size_t i = 4; i < n; i += 7) {
        b[i] ^= 0x40;
        assert_int_equal(ob_session_open(k1, b, n, ACCT, ROLE, NULL, &c), OB_ERR_PARSE);
        b[i] ^= 0x40;
    }
    b[3] = '2';
    assert_int_equal(ob_session_open(rot, b, n, ACCT, ROLE, NULL, &c), OB_ERR_PARSE);
    b[3] = '1';
    /* Not of the format: another version, cut short. */
    b[0] = 2;
    assert_int_equal(ob_session_open(k1, b, n, ACCT, ROLE, NULL, &c), OB_ERR_INVALID_ARG);
    b[0] = 1;
    assert_int_equal(ob_session_open(k1, b, 20, ACCT, ROLE, NULL, &c), OB_ERR_INVALID_ARG);
    assert_int_equal(ob_session_open(k1, b, n - 1, ACCT, ROLE, NULL, &c), OB_ERR_PARSE);
    assert_null(c.access_key_id);
    free(b);
    /* With an ExternalId: bound to it. */
    sealed(k1, "ext-1", &b, &n);
    assert_int_equal(ob_session_open(k1, b, n, ACCT, ROLE, "ext-1", &c), OB_OK);
    ob_aws_creds_clear(&c);
    assert_int_equal(ob_session_open(k1, b, n, ACCT, ROLE, NULL, &c), OB_ERR_PARSE);
    free(b);
    /* Only sessions can be sealed: a token and an expiry. */
    assert_int_equal(ob_aws_creds_set(&c, AKID, SEC, NULL, 1796000000000LL), OB_OK);
    assert_int_equal(ob_session_seal(k1, &c, ACCT, ROLE, NULL, &b, &n), OB_ERR_INVALID_ARG);
    ob_aws_creds_clear(&c);
    ob_session_keys_free(k1);
    ob_session_keys_free(k2);
    ob_session_keys_free(rot);
}

/* A source that counts its fetches and answers each with a fresh hour. */
static void fetch_hour(ob_credsrc_t *s)
{
    ob_aws_creds_t c = {0};
    ob_aws_creds_set(&c, "ASIAFETCHED", "fetched-secret", "fetched-token",
                     (int64_t)ob_wall_ms() + 3600000);
    ob_credsrc_fetched(s, OB_OK, NULL, &c);
    ob_aws_creds_clear(&c);
}

static const ob_credsrc_ops_t counting = {"test", fetch_hour, NULL};

static int got;
static void on_creds(ob_err_t err, const char *msg, const ob_aws_creds_t *c, void *arg)
{
    (void)msg;
    assert_int_equal(err, OB_OK);
    assert_string_equal(c->access_key_id, (const char *)arg);
    got++;
}

static void test_offer(void **state)
{
    (void)state;
    ob_loop_t *loop = ob_loop_new(NULL, 0);
    ob_credsrc_t *s = ob_credsrc_new(loop, &counting, NULL);
    int64_t now = (int64_t)ob_wall_ms();
    ob_aws_creds_t c = {0};
    /* Ten minutes left: the source would refresh them at once, not taken. */
    ob_aws_creds_set(&c, "ASIASTALE", "s", "t", now + 10 * 60000);
    assert_int_equal(ob_credsrc_offer(s, &c), 0);
    assert_null(ob_credsrc_peek(s));
    /* An hour left: taken, and handed out without a fetch. */
    ob_aws_creds_set(&c, "ASIASEALED", "s", "t", now + 3600000);
    assert_int_equal(ob_credsrc_offer(s, &c), 1);
    assert_string_equal(ob_credsrc_peek(s)->access_key_id, "ASIASEALED");
    got = 0;
    assert_non_null(ob_credsrc_get(s, on_creds, (void *)"ASIASEALED"));
    while (!got)
        ob_loop_run_once(loop, 100);
    assert_int_equal(ob_credsrc_fetches(s), 0);
    /* Shorter-lived than what the source has: not taken. */
    ob_aws_creds_set(&c, "ASIASHORTER", "s", "t", now + 1800000);
    assert_int_equal(ob_credsrc_offer(s, &c), 0);
    assert_string_equal(ob_credsrc_peek(s)->access_key_id, "ASIASEALED");
    /* Invalidated (an ExpiredToken): the next get fetches. */
    ob_credsrc_invalidate(s);
    got = 0;
    assert_non_null(ob_credsrc_get(s, on_creds, (void *)"ASIAFETCHED"));
    while (!got)
        ob_loop_run_once(loop, 100);
    assert_int_equal(ob_credsrc_fetches(s), 1);
    ob_aws_creds_clear(&c);
    ob_credsrc_unref(s);
    ob_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aead_vectors),
        cmocka_unit_test(test_keys_text),
        cmocka_unit_test(test_seal_open),
        cmocka_unit_test(test_offer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
