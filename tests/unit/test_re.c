/*
 * ob_re: the pattern subset of the message schemas, matched as JSON Schema
 * does (anywhere in the string unless anchored), in linear time; what is
 * outside the subset is refused with a reason. Every pattern written in
 * proto/ compiles, and the ones that carry the messages' rules accept and
 * refuse what the schemas mean them to.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_re.h"
#include "testutil.h"

#ifndef OB_FIXTURES
#define OB_FIXTURES "tests/fixtures"
#endif

static int m(const char *pat, const char *s)
{
    char err[256] = "";
    ob_re_t *re = ob_re_compile(pat, err, sizeof(err));
    if (!re)
        fail_msg("%s", err);
    int r = ob_re_match(re, s, strlen(s));
    ob_re_free(re);
    return r;
}

static void refused(const char *pat, const char *why)
{
    char err[256] = "";
    ob_re_t *re = ob_re_compile(pat, err, sizeof(err));
    if (re)
        fail_msg("pattern %s compiled, expected a refusal", pat);
    if (!strstr(err, why))
        fail_msg("pattern %s: \"%s\" does not say \"%s\"", pat, err, why);
}

static void test_syntax(void **state)
{
    /* Not anchored unless it says so. */
    assert_true(m("\\.\\.", "a..b"));
    assert_false(m("\\.\\.", "a.b.c"));
    assert_true(m("^ab", "abc"));
    assert_false(m("^ab", "cab"));
    assert_true(m("bc$", "abc"));
    assert_false(m("bc$", "bca"));
    assert_true(m("", "anything"));
    assert_true(m("^$", ""));
    assert_false(m("^$", "x"));
    /* Classes, ranges, negation, escapes inside. */
    assert_true(m("^[a-c]+$", "abcabc"));
    assert_false(m("^[a-c]+$", "abcd"));
    assert_true(m("^[^~]*$", "a/b/c"));
    assert_false(m("^[^~]*$", "a~b"));
    assert_true(m("^[\\w+=,.@:/-]+$", "My-Ext_Id+=,.@:/"));
    assert_false(m("^[\\w+=,.@:/-]+$", "no spaces"));
    assert_true(m("^[a-]+$", "a-a"));
    assert_true(m("^\\d{3}\\D$", "123x"));
    assert_false(m("^\\d{3}\\D$", "1234"));
    assert_true(m("^\\s\\S$", " x"));
    assert_true(m("^\\x41\\u0042$", "AB"));
    /* Counts. */
    assert_true(m("^a{2}$", "aa"));
    assert_false(m("^a{2}$", "aaa"));
    assert_true(m("^a{2,}$", "aaaaa"));
    assert_false(m("^a{2,}$", "a"));
    assert_true(m("^a{1,3}b$", "aaab"));
    assert_false(m("^a{1,3}b$", "aaaab"));
    assert_true(m("^a{0,2}$", ""));
    /* Groups and alternation, with anchors inside. */
    assert_true(m("(-s3alias|--ol-s3|\\.mrap)$", "bucket-s3alias"));
    assert_false(m("(-s3alias|--ol-s3|\\.mrap)$", "bucket-s3alias-x"));
    assert_true(m("^(?:ab|cd)+$", "abcdab"));
    assert_false(m("^(?:ab|cd)+$", "abc"));
    assert_true(m("^(a|)b$", "b"));
    assert_true(m("a|^b", "xa"));
    assert_false(m("^b|c$", "abca"));
    /* "." is any byte, a multi-byte character being several. */
    assert_true(m("^.{2}$", "\xc3\xa9"));
    assert_false(m("^[a-z]$", "\xc3\xa9"));
}

static void test_refused(void **state)
{
    refused("(?=a)", "lookaround");
    refused("(?<n>a)", "lookaround");
    refused("a*?", "lazy");
    refused("\\1", "not supported");
    refused("\\p{L}", "not supported");
    refused("\\b", "not supported");
    refused("[a", "unterminated class");
    refused("(a", "missing )");
    refused("a)", "unbalanced )");
    refused("*a", "nothing to repeat");
    refused("a{1001}", "count");
    refused("a{3,2}", "count");
    refused("[z-a]", "out of order");
    refused("^*", "anchor cannot be repeated");
    refused("\\u00e9", "only ASCII");
    refused("(a{1000}){1000}", "instructions");
}

/* Linear time: a nested repetition on a subject that fails at its very end
 * (exponential for a backtracking matcher) is answered, and right. */
static void test_no_blowup(void **state)
{
    size_t n = 20000;
    char *s = malloc(n + 2);
    for (size_t i = 0; i < n; i++)
        s[i] = i % 2 ? 'a' : '/';
    s[n] = '~';
    s[n + 1] = '\0';
    assert_false(m("^(/([^~]|~[01])*)*$", s));
    s[n] = '\0';
    assert_true(m("^(/([^~]|~[01])*)*$", s));
    memset(s, 'a', n);
    s[n] = 'b';
    s[n + 1] = '\0';
    assert_false(m("^(a|a)*(a|a)*$", s));
    /* A program longer than the stack's lists (600 instructions) matches the same. */
    memset(s, 'a', 600);
    s[600] = '\0';
    assert_true(m("^a{600}$", s));
    s[599] = 'b';
    assert_false(m("^a{600}$", s));
    free(s);
}

/* The patterns the schemas write, on values the fleet meets. */
static void test_schema_patterns(void **state)
{
    const char *role =
        "^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/([\\w+=,.@-]+/)*[\\w+=,.@-]{1,64}$";
    assert_true(m(role, "arn:aws:iam::123456789012:role/OrganizationAccountAccessRole"));
    assert_true(m(role, "arn:aws-us-gov:iam::123456789012:role/team/ops/Admin"));
    assert_false(m(role, "arn:aws:iam::12345678901:role/x"));
    assert_false(m(role, "arn:aws-eu:iam::123456789012:role/x"));
    assert_false(m(role, "arn:aws:iam::123456789012:role/"));
    assert_false(m(role, "arn:aws:iam::123456789012:role/a b"));
    const char *region = "^[a-z]{2}(-[a-z]+)+-[0-9]+$";
    assert_true(m(region, "eu-west-1"));
    assert_true(m(region, "us-gov-west-1"));
    assert_false(m(region, "eu-west"));
    assert_false(m(region, "EU-west-1"));
    const char *ts = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-]"
                     "[0-9]{2}:[0-9]{2})$";
    assert_true(m(ts, "2026-12-06T12:00:00Z"));
    assert_true(m(ts, "2026-12-06T12:00:00.123456789+01:00"));
    assert_false(m(ts, "2026-12-06T12:00:00.1234567890Z"));
    assert_false(m(ts, "2026-12-06 12:00:00Z"));
    const char *bucket = "^[a-z0-9][a-z0-9.-]*[a-z0-9]$";
    assert_true(m(bucket, "billing-cur-123456789012-eu-west-1"));
    assert_false(m(bucket, "-bucket"));
    assert_false(m(bucket, "Bucket"));
    const char *ptr = "^(/([^~]|~[01])*)*$";
    assert_true(m(ptr, "/report/compression"));
    assert_true(m(ptr, "/a~1b/~0"));
    assert_false(m(ptr, "/a~2"));
    assert_false(m(ptr, "report"));
}

/* Every "pattern" of the schemas in proto/ compiles. */
static int walk(const json_t *j, int *n, char *err, size_t errsz)
{
    if (json_is_object(j)) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            if (!strcmp(k, "pattern") && json_is_string(v)) {
                ob_re_t *re = ob_re_compile(json_string_value(v), err, errsz);
                if (!re)
                    return -1;
                ob_re_free(re);
                (*n)++;
            } else if (walk(v, n, err, errsz) != 0)
                return -1;
        }
    } else if (json_is_array(j)) {
        size_t i;
        const json_t *v;
        json_array_foreach(j, i, v) if (walk(v, n, err, errsz) != 0) return -1;
    }
    return 0;
}

static void test_every_proto_pattern_compiles(void **state)
{
    static const char *const files[] = {"onboard.defs.v1.json", "onboard.request.v1.json",
                                        "onboard.stage.v1.json", "onboard.connected.v1.json",
                                        "onboard.dlq.v1.json"};
    int n = 0;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[1024], err[512] = "";
        snprintf(path, sizeof(path), "%s/../../proto/%s", OB_FIXTURES, files[i]);
        json_error_t je;
        json_t *doc = json_load_file(path, 0, &je);
        if (!doc)
            fail_msg("%s: %s", path, je.text);
        if (walk(doc, &n, err, sizeof(err)) != 0)
            fail_msg("%s: %s", files[i], err);
        json_decref(doc);
    }
    assert_true(n >= 30);
}

/* The DFA built as subjects need it agrees with a direct check, including a
 * pattern whose DFA needs more states than are kept (2^13: the 13th byte
 * from the end is "a"), where matching falls back to the simulation. */
static int thirteenth_from_end_is_a(const char *s, size_t n)
{
    for (size_t i = 0; i + 13 <= n; i++) /* not anchored at the start */
        if (s[i] == 'a' && i + 13 == n)
            return 1;
    return 0;
}

static void test_dfa_agrees(void **state)
{
    (void)state;
    char err[200];
    ob_re_t *big = ob_re_compile("(a|b)*a(a|b){12}$", err, sizeof(err));
    ob_re_t *small = ob_re_compile("^[a-c]*ab[a-c]?$", err, sizeof(err));
    assert_non_null(big);
    assert_non_null(small);
    unsigned seed = 12345;
    for (int round = 0; round < 4000; round++) {
        char s[40];
        size_t n = 1 + (seed = seed * 1103515245u + 12345u) % 30;
        for (size_t i = 0; i < n; i++)
            s[i] = "abc"[(seed = seed * 1103515245u + 12345u) >> 16 & 1];
        s[n] = '\0';
        assert_int_equal(ob_re_match(big, s, n), thirteenth_from_end_is_a(s, n));
        int want = (n >= 2 && s[n - 2] == 'a' && s[n - 1] == 'b') ||
                   (n >= 3 && s[n - 3] == 'a' && s[n - 2] == 'b');
        assert_int_equal(ob_re_match(small, s, n), want);
    }
    ob_re_free(big);
    ob_re_free(small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_syntax),          cmocka_unit_test(test_refused),
        cmocka_unit_test(test_no_blowup),       cmocka_unit_test(test_dfa_agrees),
        cmocka_unit_test(test_schema_patterns), cmocka_unit_test(test_every_proto_pattern_compiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
