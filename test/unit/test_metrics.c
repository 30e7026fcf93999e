/*
 * test_metrics.c: histograms and the Prometheus text writer (metrics.h).
 */
#include "metrics.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_observations_fall_in_the_first_bucket_not_below_them(void **state)
{
    (void)state;
    static const double bounds[] = {1, 2, 5};
    metrics_hist_t h;
    metrics_hist_init(&h, bounds, 3);
    metrics_hist_observe(&h, 0.5);
    metrics_hist_observe(&h, 1); /* le="1" holds 1 itself */
    metrics_hist_observe(&h, 1.5);
    metrics_hist_observe(&h, 9);
    assert_int_equal(h.counts[0], 2);
    assert_int_equal(h.counts[1], 1);
    assert_int_equal(h.counts[2], 0);
    assert_int_equal(h.counts[3], 1); /* +Inf */
    assert_int_equal(h.n, 4);
    assert_true(h.sum == 12.0);
    assert_true(metrics_hist_quantile(&h, 0.5) <= 1.0);
    assert_true(metrics_hist_quantile(&h, 0.75) > 1.0 && metrics_hist_quantile(&h, 0.75) <= 2.0);
    assert_true(metrics_hist_quantile(&h, 1.0) == 5.0); /* the +Inf bucket: the largest bound */
    metrics_hist_t empty;
    metrics_hist_init(&empty, bounds, 3);
    assert_true(metrics_hist_quantile(&empty, 0.99) == 0.0);
}

static void test_histogram_text_is_cumulative_with_sum_and_count(void **state)
{
    (void)state;
    static const double bounds[] = {0.1, 0.5};
    metrics_hist_t h;
    metrics_hist_init(&h, bounds, 2);
    metrics_hist_observe(&h, 0.05);
    metrics_hist_observe(&h, 0.3);
    metrics_hist_observe(&h, 0.3);
    metrics_buf_t b = {0};
    const char *labels[] = {"region", "110000", NULL};
    metrics_family(&b, "x_seconds", "histogram", "test");
    metrics_hist_write(&b, "x_seconds", labels, &h);
    assert_false(b.failed);
    assert_string_equal(b.data, "# HELP x_seconds test\n"
                                "# TYPE x_seconds histogram\n"
                                "x_seconds_bucket{region=\"110000\",le=\"0.1\"} 1\n"
                                "x_seconds_bucket{region=\"110000\",le=\"0.5\"} 3\n"
                                "x_seconds_bucket{region=\"110000\",le=\"+Inf\"} 3\n"
                                "x_seconds_sum{region=\"110000\"} 0.65\n"
                                "x_seconds_count{region=\"110000\"} 3\n");
    metrics_buf_free(&b);
}

static void test_label_values_are_escaped_and_special_values_spelled(void **state)
{
    (void)state;
    metrics_buf_t b = {0};
    const char *labels[] = {"reason", "a \"quoted\"\\ line\nnext", NULL};
    metrics_sample(&b, "y_total", labels, 1e15);
    metrics_sample(&b, "z", NULL, INFINITY);
    metrics_sample(&b, "w", NULL, 0.1);
    assert_string_equal(b.data, "y_total{reason=\"a \\\"quoted\\\"\\\\ line\\nnext\"} 1e+15\n"
                                "z +Inf\n"
                                "w 0.1\n");
    metrics_buf_free(&b);
    assert_null(b.data);
}

static void test_buffer_grows_past_its_first_size(void **state)
{
    (void)state;
    metrics_buf_t b = {0};
    for (int i = 0; i < 2000; i++)
        metrics_printf(&b, "line_%d 1\n", i);
    assert_false(b.failed);
    assert_true(b.len > 4096);
    assert_non_null(strstr(b.data, "line_1999 1\n"));
    assert_int_equal(strlen(b.data), b.len);
    metrics_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_observations_fall_in_the_first_bucket_not_below_them),
        cmocka_unit_test(test_histogram_text_is_cumulative_with_sum_and_count),
        cmocka_unit_test(test_label_values_are_escaped_and_special_values_spelled),
        cmocka_unit_test(test_buffer_grows_past_its_first_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
