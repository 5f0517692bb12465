/*
 * ob_lagtab: the lag's age from end offsets alone.
 */
#include "ob_lagtab.h"
#include "testutil.h"

#define T0 1800000000000LL

static void test_empty_and_caught_up(void **state)
{
    (void)state;
    ob_lagtab_t t = {0};
    assert_true(ob_lagtab_seconds(&t, 5, T0) == 0); /* nothing seen */
    ob_lagtab_add(&t, 100, T0);
    assert_true(ob_lagtab_seconds(&t, 100, T0 + 60000) == 0);
    assert_true(ob_lagtab_seconds(&t, 150, T0 + 60000) == 0);
}

static void test_interpolated(void **state)
{
    (void)state;
    ob_lagtab_t t = {0};
    /* 10 messages a second for 100 s. */
    for (int s = 0; s <= 100; s += 10)
        ob_lagtab_add(&t, 1000 + 10 * s, T0 + 1000LL * s);
    /* Offset 1499 was written in the 50th second: at 100 s it is ~50 s old. */
    double age = ob_lagtab_seconds(&t, 1499, T0 + 100000);
    assert_true(age > 49.0 && age < 51.0);
    /* The end stops moving and the consumer with it: the age grows by the
     * clock, with no new point. */
    size_t n = t.n;
    for (int s = 110; s <= 400; s += 10)
        ob_lagtab_add(&t, 2000, T0 + 1000LL * s);
    assert_int_equal(t.n, n);
    age = ob_lagtab_seconds(&t, 1499, T0 + 400000);
    assert_true(age > 349.0 && age < 351.0);
}

static void test_before_first_sample(void **state)
{
    (void)state;
    ob_lagtab_t t = {0};
    ob_lagtab_add(&t, 1000, T0);
    /* One point: at least as old as it. */
    assert_true(ob_lagtab_seconds(&t, 0, T0 + 30000) >= 30.0);
    ob_lagtab_add(&t, 1100, T0 + 10000); /* 10 a second */
    /* Offset 900 is 100 messages before the first sample: ~10 s before it. */
    double age = ob_lagtab_seconds(&t, 900, T0 + 10000);
    assert_true(age > 19.0 && age < 21.0);
}

static void test_full_table_keeps_its_span(void **state)
{
    (void)state;
    ob_lagtab_t t = {0};
    /* A day of polls every 10 s, the end moving at each. */
    for (int64_t s = 0; s <= 86400; s += 10)
        ob_lagtab_add(&t, 1 + s, T0 + 1000 * s);
    assert_true(t.n <= OB_LAGTAB_POINTS);
    assert_true(t.pt[0].ms == T0); /* the first point kept */
    for (size_t i = 1; i < t.n; i++)
        assert_true(t.pt[i].offset > t.pt[i - 1].offset && t.pt[i].ms > t.pt[i - 1].ms);
    /* A consumer stalled at the very first offset reads a day. */
    double age = ob_lagtab_seconds(&t, 1, T0 + 86400000LL);
    assert_true(age > 86000.0 && age < 86500.0);
    /* One stalled at noon reads about twelve hours, within the coarser
     * resolution. */
    age = ob_lagtab_seconds(&t, 43201, T0 + 86400000LL);
    assert_true(age > 40000.0 && age < 46000.0);
}

static void test_recreated_topic(void **state)
{
    (void)state;
    ob_lagtab_t t = {0};
    ob_lagtab_add(&t, 5000, T0);
    ob_lagtab_add(&t, 6000, T0 + 10000);
    ob_lagtab_add(&t, 10, T0 + 20000); /* lower: the topic is new */
    assert_int_equal(t.n, 1);
    assert_true(ob_lagtab_seconds(&t, 5, T0 + 25000) >= 5.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_caught_up),
        cmocka_unit_test(test_interpolated),
        cmocka_unit_test(test_before_first_sample),
        cmocka_unit_test(test_full_table_keeps_its_span),
        cmocka_unit_test(test_recreated_topic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
