/* ketch-bench's key distributions: every key drawn is inside the key space, sequential
 * wraps in order, uniform reaches every key, and zipf makes key 0 the hottest with a
 * steep head (the point of the distribution), all reproducible from a seed. */
#include <check.h>
#include <stdlib.h>

#include "base/prng.h"
#include "bench/keygen.h"

Suite *test_bench_keygen_suite(void);

START_TEST(test_keygen_sequential_wraps_in_order)
{
    struct bench_keygen g;
    struct k_prng p;
    k_prng_init(&p, 1);
    bench_keygen_init(&g, BENCH_KEYS_SEQUENTIAL, 5);
    for (uint64_t i = 0; i < 12; i++)
        ck_assert_uint_eq(bench_keygen_next(&g, &p), i % 5);
}
END_TEST

START_TEST(test_keygen_uniform_reaches_every_key_and_stays_in_range)
{
    enum { KEYS = 100 };
    int hits[KEYS] = { 0 };
    struct bench_keygen g;
    struct k_prng p;
    k_prng_init(&p, 2);
    bench_keygen_init(&g, BENCH_KEYS_UNIFORM, KEYS);
    for (int i = 0; i < 100000; i++) {
        uint64_t k = bench_keygen_next(&g, &p);
        ck_assert_uint_lt(k, KEYS);
        hits[k]++;
    }
    for (int k = 0; k < KEYS; k++)
        ck_assert_int_gt(hits[k], 800); /* expected 1000 each */
}
END_TEST

START_TEST(test_keygen_zipf_makes_key_zero_hottest)
{
    enum { KEYS = 1000, DRAWS = 200000 };
    static int hits[KEYS];
    struct bench_keygen g;
    struct k_prng p;
    k_prng_init(&p, 3);
    bench_keygen_init(&g, BENCH_KEYS_ZIPF, KEYS);
    for (int i = 0; i < DRAWS; i++) {
        uint64_t k = bench_keygen_next(&g, &p);
        ck_assert_uint_lt(k, KEYS);
        hits[k]++;
    }
    for (int k = 1; k < KEYS; k++)
        ck_assert_int_ge(hits[0], hits[k]);
    /* theta 0.99 over 1000 keys: key 0 takes about 1/zeta(1000) = 13% of draws, and the
     * top 10 keys about 39%; a uniform draw would give 0.1% and 1%. */
    int top10 = 0;
    for (int k = 0; k < 10; k++)
        top10 += hits[k];
    ck_assert_int_gt(hits[0], DRAWS / 10);
    ck_assert_int_gt(top10, DRAWS / 3);
}
END_TEST

START_TEST(test_keygen_parse_names_round_trip)
{
    enum bench_key_dist d;
    ck_assert_int_eq(bench_key_dist_parse("zipf", &d), 0);
    ck_assert_str_eq(bench_key_dist_name(d), "zipf");
    ck_assert_int_eq(bench_key_dist_parse("sequential", &d), 0);
    ck_assert_str_eq(bench_key_dist_name(d), "sequential");
    ck_assert_int_lt(bench_key_dist_parse("gaussian", &d), 0);
}
END_TEST

Suite *test_bench_keygen_suite(void)
{
    Suite *s = suite_create("bench_keygen");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_keygen_sequential_wraps_in_order);
    tcase_add_test(tc, test_keygen_uniform_reaches_every_key_and_stays_in_range);
    tcase_add_test(tc, test_keygen_zipf_makes_key_zero_hottest);
    tcase_add_test(tc, test_keygen_parse_names_round_trip);
    suite_add_tcase(s, tc);
    return s;
}
