/* ketch-bench's latency histogram: every value lands in a bucket whose bounds hold it,
 * percentiles stay within the promised relative error of the exact answer (checked against
 * a sorted copy on random data), and merging equals recording everything in one. */
#include <check.h>
#include <stdlib.h>

#include "base/prng.h"
#include "bench/histogram.h"

Suite *test_bench_histogram_suite(void);

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

START_TEST(test_hist_bucket_bounds_contain_value)
{
    struct k_prng p;
    k_prng_init(&p, 7);
    for (int i = 0; i < 100000; i++) {
        uint64_t v = k_prng_next(&p) >> k_prng_below(&p, 64);
        uint32_t b = bench_hist_bucket_of(v);
        ck_assert_uint_ge(bench_hist_bucket_high(b), v);
        if (b > 0) ck_assert_uint_lt(bench_hist_bucket_high(b - 1), v);
    }
    ck_assert_uint_eq(bench_hist_bucket_of(UINT64_MAX), BENCH_HIST_BUCKETS - 1);
    ck_assert_uint_eq(bench_hist_bucket_high(BENCH_HIST_BUCKETS - 1), UINT64_MAX);
    for (uint64_t v = 0; v < 128; v++)
        ck_assert_uint_eq(bench_hist_bucket_high(bench_hist_bucket_of(v)), v);
}
END_TEST

START_TEST(test_hist_quantiles_within_relative_error_of_exact)
{
    enum { N = 20000 };
    static uint64_t vals[N];
    struct k_prng p;
    k_prng_init(&p, 42);
    struct bench_hist h;
    bench_hist_init(&h);
    for (int i = 0; i < N; i++) {
        vals[i] = 50000 + k_prng_below(&p, 5000000) * (1 + k_prng_below(&p, 4));
        bench_hist_record(&h, vals[i]);
    }
    qsort(vals, N, sizeof(vals[0]), cmp_u64);
    const double qs[] = { 0.5, 0.9, 0.99, 0.999 };
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        uint64_t exact = vals[(size_t)(qs[i] * N + 0.999999) - 1];
        uint64_t got = bench_hist_quantile(&h, qs[i]);
        ck_assert_uint_ge(got, exact);
        ck_assert_uint_le(got, exact + exact / 64 + 1);
    }
    ck_assert_uint_eq(bench_hist_quantile(&h, 1.0), vals[N - 1]);
    ck_assert_uint_eq(h.min, vals[0]);
    ck_assert_uint_eq(h.count, N);
}
END_TEST

START_TEST(test_hist_merge_equals_single_recording)
{
    struct bench_hist a, b, all;
    bench_hist_init(&a);
    bench_hist_init(&b);
    bench_hist_init(&all);
    for (uint64_t v = 1; v < 100000; v += 37) {
        bench_hist_record(v % 2 ? &a : &b, v * 13);
        bench_hist_record(&all, v * 13);
    }
    bench_hist_merge(&a, &b);
    ck_assert_uint_eq(a.count, all.count);
    ck_assert_uint_eq(a.min, all.min);
    ck_assert_uint_eq(a.max, all.max);
    ck_assert_uint_eq(a.sum, all.sum);
    ck_assert_uint_eq(bench_hist_quantile(&a, 0.99), bench_hist_quantile(&all, 0.99));
}
END_TEST

START_TEST(test_hist_empty_reports_zero)
{
    struct bench_hist h;
    bench_hist_init(&h);
    ck_assert_uint_eq(bench_hist_quantile(&h, 0.5), 0);
    ck_assert(bench_hist_mean(&h) == 0.0);
}
END_TEST

Suite *test_bench_histogram_suite(void)
{
    Suite *s = suite_create("bench_histogram");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_hist_bucket_bounds_contain_value);
    tcase_add_test(tc, test_hist_quantiles_within_relative_error_of_exact);
    tcase_add_test(tc, test_hist_merge_equals_single_recording);
    tcase_add_test(tc, test_hist_empty_reports_zero);
    suite_add_tcase(s, tc);
    return s;
}
