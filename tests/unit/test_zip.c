/*
 * ob_zip: buffers deflated and inflated again with streams made once, and
 * packs that do not inflate to what the caller expects refused.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ob_zip.h"
#include "testutil.h"

static void test_round_trips(void **state)
{
    ob_zip_t *z = ob_zip_new();
    char text[4096];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = "arn:aws:iam::123456789012:role/billing-engine-access "[i % 53];
    /* The same streams, buffer after buffer: empty, small, repetitive, random. */
    uint8_t noise[2000];
    for (size_t i = 0; i < sizeof(noise); i++)
        noise[i] = (uint8_t)(rand() >> 7);
    const struct {
        const void *p;
        size_t n;
    } in[] = {{"", 0}, {"x", 1}, {text, sizeof(text)}, {noise, sizeof(noise)}, {text, 100}};
    for (size_t k = 0; k < sizeof(in) / sizeof(in[0]); k++) {
        uint8_t *packed = NULL;
        size_t plen = 0;
        ob_zip_pack(z, in[k].p, in[k].n, &packed, &plen);
        assert_non_null(packed);
        if (in[k].p == text && in[k].n == sizeof(text))
            assert_true(plen < sizeof(text) / 10); /* repetitive text packs small */
        char *back = malloc(in[k].n + 1);
        assert_int_equal(ob_zip_unpack(z, packed, plen, back, in[k].n), OB_OK);
        assert_memory_equal(back, in[k].p, in[k].n);
        /* Told the wrong size, or given cut bytes: refused, never overrun. */
        if (in[k].n > 1) {
            assert_int_equal(ob_zip_unpack(z, packed, plen, back, in[k].n - 1), OB_ERR_PARSE);
            assert_int_equal(ob_zip_unpack(z, packed, plen / 2, back, in[k].n), OB_ERR_PARSE);
        }
        free(back);
        free(packed);
    }
    ob_zip_free(z);
    ob_zip_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
