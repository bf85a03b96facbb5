/* test_metrics.c - metrics.c's number format (Go's shortest 'g', which
 * Prometheus' Go client prints) and the disk histograms' buckets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../metrics.c"

static void test_go_float(void **state)
{
    (void)state;
    /* the expected texts are strconv.FormatFloat(v, 'g', -1, 64) */
    static const struct {
        double v;
        const char *s;
    } cases[] = {
        {0, "0"},           {2, "2"},
        {-1, "-1"},         {0.25, "0.25"},
        {0.001, "0.001"},   {8.192, "8.192"},
        {123456, "123456"}, {1234567, "1.234567e+06"},
        {2147483648.0, "2.147483648e+09"},
        {1795412870.76, "1.79541287076e+09"},
        {0.00629356, "0.00629356"},
        {1e-05, "1e-05"},   {0.0001, "0.0001"},
        {0.1 + 0.2, "0.30000000000000004"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[48];
        go_float(out, sizeof out, cases[i].v);
        assert_string_equal(out, cases[i].s);
    }
}

/* Buckets are upper bounds, inclusive; past the last only +Inf (the count)
 * holds it; the text is cumulative. */
static void test_histogram(void **state)
{
    (void)state;
    struct metrics_hist h = {0};
    metrics_observe(&h, 0.0005);
    metrics_observe(&h, 0.001);
    metrics_observe(&h, 0.0015);
    metrics_observe(&h, 9);
    assert_int_equal(h.h_buckets[0], 2);
    assert_int_equal(h.h_buckets[1], 1);
    assert_int_equal(h.h_count, 4);
    struct mem_buf b = {0};
    assert_int_equal(histogram(&b, "x", "help", &h), 0);
    assert_non_null(memmem(b.data, b.len, "x_bucket{le=\"0.001\"} 2\nx_bucket{le=\"0.002\"} 3\n", 46));
    assert_non_null(memmem(b.data, b.len, "x_bucket{le=\"8.192\"} 3\nx_bucket{le=\"+Inf\"} 4\n", 45));
    assert_non_null(memmem(b.data, b.len, "x_sum 9.003\nx_count 4\n", 22));
    mem_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_go_float),
        cmocka_unit_test(test_histogram),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
