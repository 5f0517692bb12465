/*
 * ob_buf, ob_hdrs and ob_crypto: growth and NUL termination, header
 * case-insensitivity and order, and digests against published vectors
 * (FIPS 180-2 SHA-256, RFC 4231 HMAC-SHA256, RFC 1321 MD5, RFC 4648 base64).
 */
#include <stdlib.h>
#include <string.h>

#include "ob_buf.h"
#include "ob_crypto.h"
#include "testutil.h"

static void test_buf_growth(void **state)
{
    ob_buf_t b = {0};
    for (int i = 0; i < 10000; i++)
        assert_int_equal(ob_buf_printf(&b, "%d,", i % 10), OB_OK);
    assert_int_equal(b.len, 20000);
    assert_int_equal(b.data[b.len], '\0');
    assert_memory_equal(b.data, "0,1,2,", 6);
    ob_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_int_equal(ob_buf_append(&b, "a\0b", 3), OB_OK);
    assert_int_equal(b.len, 3);
    char *s = ob_buf_steal(&b);
    assert_memory_equal(s, "a\0b", 4);
    assert_null(b.data);
    free(s);
    s = ob_buf_steal(&b);
    assert_string_equal(s, "");
    free(s);
    ob_buf_free(&b);
    /* Reserving on an empty buffer still leaves an empty string. */
    assert_int_equal(ob_buf_reserve(&b, 100), OB_OK);
    assert_string_equal(b.data, "");
    ob_buf_free(&b);
}

/* A fitted buffer holds its contents and no more, and still grows. */
static void test_buf_fit(void **state)
{
    ob_buf_t b = {0};
    ob_buf_fit(&b); /* empty: nothing to do */
    assert_null(b.data);
    for (int i = 0; i < 100; i++)
        assert_int_equal(ob_buf_putc(&b, 'a' + i % 26), OB_OK);
    assert_true(b.cap > 101);
    ob_buf_fit(&b);
    assert_int_equal(b.cap, 101);
    assert_int_equal(b.len, 100);
    assert_int_equal(b.data[100], '\0');
    assert_int_equal(b.data[99], 'a' + 99 % 26);
    assert_int_equal(ob_buf_puts(&b, "more"), OB_OK);
    assert_string_equal(b.data + 100, "more");
    ob_buf_free(&b);
}

static void test_headers(void **state)
{
    ob_hdrs_t h = {0};
    ob_hdrs_add(&h, "X-Amz-Date", "1");
    ob_hdrs_add(&h, "Host", "example.com");
    ob_hdrs_add(&h, "x-amz-date", "2");
    assert_string_equal(ob_hdrs_get(&h, "X-AMZ-DATE"), "1");
    ob_hdrs_set(&h, "x-Amz-Date", "3");
    assert_int_equal(h.n, 2);
    assert_string_equal(h.v[0].name, "Host");
    assert_string_equal(ob_hdrs_get(&h, "x-amz-date"), "3");
    ob_hdrs_del(&h, "host");
    assert_null(ob_hdrs_get(&h, "Host"));
    assert_int_equal(h.n, 1);
    ob_hdrs_clear(&h);
    assert_int_equal(h.n, 0);
}

static void test_digests(void **state)
{
    char hex[OB_SHA256_HEX_LEN];
    ob_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ob_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* RFC 4231 test case 2. */
    uint8_t mac[OB_SHA256_LEN];
    const char *data = "what do ya want for nothing?";
    ob_hmac_sha256("Jefe", 4, data, strlen(data), mac);
    ob_hex(mac, sizeof(mac), hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* RFC 4231 test case 6: a key longer than the block is hashed first. */
    uint8_t longkey[131];
    memset(longkey, 0xaa, sizeof(longkey));
    data = "Test Using Larger Than Block-Size Key - Hash Key First";
    ob_hmac_sha256(longkey, sizeof(longkey), data, strlen(data), mac);
    ob_hex(mac, sizeof(mac), hex);
    assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    /* RFC 4231 test case 4: a 25-byte key, 50 bytes of data. */
    uint8_t key4[25], data4[50];
    for (size_t i = 0; i < sizeof(key4); i++)
        key4[i] = (uint8_t)(i + 1);
    memset(data4, 0xcd, sizeof(data4));
    ob_hmac_sha256(key4, sizeof(key4), data4, sizeof(data4), mac);
    ob_hex(mac, sizeof(mac), hex);
    assert_string_equal(hex, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
    /* FIPS 180-2's two-block message. */
    data = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    ob_sha256_hex(data, strlen(data), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char md5[OB_MD5_B64_LEN];
    ob_md5_base64("", 0, md5);
    assert_string_equal(md5, "1B2M2Y8AsgTpgAmY7PhCfg==");
    ob_md5_base64("abc", 3, md5); /* 900150983cd24fb0d6963f7d28e17f72 */
    assert_string_equal(md5, "kAFQmDzST7DWlj99KOF/cg==");
}

static void test_base64(void **state)
{
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *e = ob_base64_encode(in[i], strlen(in[i]));
        assert_string_equal(e, out[i]);
        uint8_t *d = NULL;
        size_t n = 0;
        assert_int_equal(ob_base64_decode(e, strlen(e), &d, &n), OB_OK);
        assert_int_equal(n, strlen(in[i]));
        assert_memory_equal(d, in[i], n);
        free(d);
        free(e);
    }
    uint8_t *d = NULL;
    size_t n = 0;
    assert_int_equal(ob_base64_decode("Zm9v!", 5, &d, &n), OB_ERR_PARSE);
    assert_int_equal(ob_base64_decode("Z", 1, &d, &n), OB_ERR_PARSE);
}

static void test_random(void **state)
{
    uint8_t a[16], b[16];
    assert_int_equal(ob_random_bytes(a, sizeof(a)), OB_OK);
    assert_int_equal(ob_random_bytes(b, sizeof(b)), OB_OK);
    assert_int_not_equal(memcmp(a, b, sizeof(a)), 0);
    assert_int_equal(ob_ct_memcmp(a, a, sizeof(a)), 0);
    assert_int_not_equal(ob_ct_memcmp(a, b, sizeof(a)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_growth), cmocka_unit_test(test_buf_fit),
        cmocka_unit_test(test_headers),    cmocka_unit_test(test_digests),
        cmocka_unit_test(test_base64),     cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
