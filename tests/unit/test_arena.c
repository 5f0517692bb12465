/*
 * ob_arena: strings copied back to back, sized to their content, aligned
 * blocks zeroed, growth past a chunk and past the largest chunk, and
 * everything gone with one free (the leak checkers of the sanitizer pass and
 * valgrind see to that).
 */
#include <stdint.h>
#include <string.h>

#include "ob_arena.h"
#include "testutil.h"

static void test_strings(void **state)
{
    ob_arena_t *a = ob_arena_new();
    const char *x = ob_arena_strdup(a, "123456789012");
    const char *y = ob_arena_printf(a, "arn:aws:iam::%s:role/%s", x, "Admin");
    const char *z = ob_arena_strndup(a, "billing-cur-extra", 11);
    assert_string_equal(x, "123456789012");
    assert_string_equal(y, "arn:aws:iam::123456789012:role/Admin");
    assert_string_equal(z, "billing-cur");
    assert_string_equal(ob_arena_strdup(a, NULL), "");
    assert_string_equal(ob_arena_strndup(a, "x", 0), "");
    assert_string_equal(ob_arena_printf(a, "%s", ""), "");
    /* Sized to content: three short strings take tens of bytes, not KiB. */
    assert_true(ob_arena_used(a) <= 13 + 8 + 37 + 8 + 12 + 8);
    assert_true(ob_arena_held(a) <= 512);
    ob_arena_free(a);
    ob_arena_free(NULL);
}

static void test_growth(void **state)
{
    ob_arena_t *a = ob_arena_new();
    const char *first = ob_arena_strdup(a, "first");
    char big[100000];
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    const char *b = ob_arena_strdup(a, big); /* larger than any chunk */
    assert_int_equal(strlen(b), sizeof(big) - 1);
    for (int i = 0; i < 2000; i++) {
        const char *s = ob_arena_printf(a, "item-%d", i);
        assert_non_null(s);
        uint64_t *blk = ob_arena_alloc(a, 24);
        assert_int_equal((uintptr_t)blk % 8, 0);
        assert_int_equal(blk[0] | blk[1] | blk[2], 0);
        blk[0] = 1;
    }
    assert_string_equal(first, "first"); /* earlier strings stay put */
    ob_arena_free(a);
}

/* A first chunk sized to what was known to come, then a string more: the
 * next chunk is a small one, not as large again. */
static void test_sized(void **state)
{
    ob_arena_t *a = ob_arena_new_sized(1000);
    assert_int_equal(ob_arena_held(a), 0);
    ob_arena_alloc(a, 1000);
    assert_int_equal(ob_arena_held(a), 1000);
    assert_string_equal(ob_arena_strdup(a, "one more"), "one more");
    assert_int_equal(ob_arena_held(a), 1000 + 256);
    ob_arena_alloc(a, 300);
    assert_int_equal(ob_arena_held(a), 1000 + 256 + 512); /* then doubling */
    ob_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_sized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
