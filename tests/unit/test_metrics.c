/*
 * ob_metrics: the Prometheus text format as the exposition format document
 * specifies it: HELP/TYPE lines, label value escaping, integers printed
 * exactly, special values, and cumulative histogram buckets with _sum and
 * _count.
 */
#include <math.h>
#include <string.h>

#include "ob_metrics.h"
#include "testutil.h"

static void test_samples_and_escaping(void **state)
{
    ob_buf_t b = {0};
    ob_metrics_t m;
    ob_metrics_begin(&m, &b);
    ob_metrics_family(&m, "x_total", "counter", "Line one\nwith \\ backslash.");
    const char *l[] = {"a", "q\"uo\\te\nnl", "b", "plain", NULL};
    ob_metrics_sample(&m, "x_total", l, 12345678901234.0);
    ob_metrics_sample(&m, "x_total", NULL, 0.25);
    ob_metrics_sample(&m, "x_total", NULL, NAN);
    ob_metrics_sample(&m, "x_total", NULL, -INFINITY);
    assert_string_equal(b.data, "# HELP x_total Line one\\nwith \\\\ backslash.\n"
                                "# TYPE x_total counter\n"
                                "x_total{a=\"q\\\"uo\\\\te\\nnl\",b=\"plain\"} 12345678901234\n"
                                "x_total 0.25\n"
                                "x_total NaN\n"
                                "x_total -Inf\n");
    ob_buf_free(&b);
}

static void test_histogram(void **state)
{
    static const double bounds[] = {0.1, 1, 10};
    ob_histogram_t h;
    ob_histogram_init(&h, bounds, 3);
    ob_histogram_observe(&h, 0.05);
    ob_histogram_observe(&h, 0.1); /* le is inclusive */
    ob_histogram_observe(&h, 5);
    ob_histogram_observe(&h, 50);
    ob_buf_t b = {0};
    ob_metrics_t m;
    ob_metrics_begin(&m, &b);
    const char *l[] = {"stage", "iam", NULL};
    ob_metrics_histogram(&m, "d_seconds", l, &h);
    assert_string_equal(b.data, "d_seconds_bucket{stage=\"iam\",le=\"0.1\"} 2\n"
                                "d_seconds_bucket{stage=\"iam\",le=\"1\"} 2\n"
                                "d_seconds_bucket{stage=\"iam\",le=\"10\"} 3\n"
                                "d_seconds_bucket{stage=\"iam\",le=\"+Inf\"} 4\n"
                                "d_seconds_sum{stage=\"iam\"} 55.15\n"
                                "d_seconds_count{stage=\"iam\"} 4\n");
    ob_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_samples_and_escaping),
                                       cmocka_unit_test(test_histogram)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
