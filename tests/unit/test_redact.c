/*
 * ob_redact: a secret is cut out of a text however the text spells it (any
 * letter case; percent, JSON, C and XML escapes, mixed within one
 * occurrence), near misses are left alone, and a buffer too small for the
 * mark is cut where the secret began rather than keeping a piece of it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ob_crypto.h"

#define SECRET "ab12cd34ef56ab12cd34ef56ab12cd34"

static void check(const char *in, const char *want, size_t want_n)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", in);
    size_t n = ob_redact(buf, sizeof(buf), SECRET, "[X]");
    if (strcmp(buf, want) != 0 || n != want_n)
        fail_msg("ob_redact(\"%s\") = \"%s\" (%zu), want \"%s\" (%zu)", in, buf, n, want, want_n);
}

static void test_spellings(void **state)
{
    (void)state;
    check("id " SECRET " end", "id [X] end", 1);
    check("id AB12CD34EF56AB12CD34EF56AB12CD34", "id [X]", 1);
    check("id Ab12cD34eF56aB12Cd34Ef56ab12CD34!", "id [X]!", 1);
    /* percent escapes, either case of hex digit, mixed with plain characters */
    check("x=%61%62%31%32cd34ef56ab12cd34ef56ab12cd3%34&y", "x=[X]&y", 1);
    check("%41%42%31%32%43%44%33%34%45%46%35%36%61%62%31%32%63%64%33%34%65%66%35%36%61%62%31%32%63%"
          "64%33%34",
          "[X]", 1);
    /* JSON \u and C \x escapes */
    check("\"\\u0061\\u0062\\u0031\\u00322cd34ef56ab12cd34ef56ab12cd34\"",
          "\"\\u0061\\u0062\\u0031\\u00322cd34ef56ab12cd34ef56ab12cd34\"", 0);
    check("\"\\u0061\\u0062\\u0031\\u0032cd34ef56ab12cd34ef56ab12cd34\"", "\"[X]\"", 1);
    check("\\x61\\x62\\x31\\x32cd34ef56ab12cd34ef56ab12cd34", "[X]", 1);
    /* XML / HTML character references, hex and decimal, any case */
    check("<a>&#x61;&#98;&#X31;&#0050;cd34ef56ab12cd34ef56ab12cd34</a>", "<a>[X]</a>", 1);
    /* several occurrences */
    check(SECRET "," SECRET, "[X],[X]", 2);
}

static void test_near_misses(void **state)
{
    (void)state;
    /* one character short, one character off, an escape of the wrong character */
    check("ab12cd34ef56ab12cd34ef56ab12cd3", "ab12cd34ef56ab12cd34ef56ab12cd3", 0);
    check("ab12cd34ef56ab12cd34ef56ab12cd35", "ab12cd34ef56ab12cd34ef56ab12cd35", 0);
    check("%62b12cd34ef56ab12cd34ef56ab12cd34", "%62b12cd34ef56ab12cd34ef56ab12cd34", 0);
    /* escapes cut short at the end of the text */
    check("ab12cd34ef56ab12cd34ef56ab12cd3%3", "ab12cd34ef56ab12cd34ef56ab12cd3%3", 0);
    check("ab12cd34ef56ab12cd34ef56ab12cd3&#x3", "ab12cd34ef56ab12cd34ef56ab12cd3&#x3", 0);
    check("", "", 0);
}

static void test_small_buffers(void **state)
{
    (void)state;
    /* The mark does not fit: the text ends where the secret began. */
    char buf[16];
    snprintf(buf, sizeof(buf), "01234567s3cr3t");
    assert_int_equal(ob_redact(buf, sizeof(buf), "s3cr3t", "[ExternalId]"), 1);
    assert_string_equal(buf, "01234567");
    /* The mark fits but the rest does not: the rest is cut. */
    char big[24];
    snprintf(big, sizeof(big), "ab s3cr3t tail");
    assert_int_equal(ob_redact(big, sizeof(big), "S3CR3T", "[ExternalId]"), 1);
    assert_string_equal(big, "ab [ExternalId] tail");
    snprintf(big, 18, "ab s3cr3t tail");
    assert_int_equal(ob_redact(big, 18, "s3cr3t", "[ExternalId]"), 1);
    assert_string_equal(big, "ab [ExternalId] t");
    /* Secrets too short to look for, and none at all. */
    snprintf(buf, sizeof(buf), "a b c");
    assert_int_equal(ob_redact(buf, sizeof(buf), "a", "[X]"), 0);
    assert_int_equal(ob_redact(buf, sizeof(buf), NULL, "[X]"), 0);
    assert_string_equal(buf, "a b c");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spellings),
        cmocka_unit_test(test_near_misses),
        cmocka_unit_test(test_small_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
