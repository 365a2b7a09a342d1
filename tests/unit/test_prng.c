/* The seeded PRNG: reproducible from a seed (the simulator's replay depends on it), the
 * published xoshiro256** output for a known state, and unbiased bounded draws. */
#include <check.h>
#include <string.h>

#include "base/prng.h"

Suite *test_prng_suite(void);

START_TEST(test_prng_same_seed_gives_same_sequence)
{
    struct k_prng a;
    struct k_prng b;
    k_prng_init(&a, 12345);
    k_prng_init(&b, 12345);
    for (int i = 0; i < 10000; i++)
        ck_assert_uint_eq(k_prng_next(&a), k_prng_next(&b));
}
END_TEST

START_TEST(test_prng_different_seeds_diverge)
{
    struct k_prng a;
    struct k_prng b;
    k_prng_init(&a, 1);
    k_prng_init(&b, 2);
    int equal = 0;
    for (int i = 0; i < 1000; i++)
        equal += k_prng_next(&a) == k_prng_next(&b);
    ck_assert_int_eq(equal, 0);
}
END_TEST

START_TEST(test_prng_matches_reference_xoshiro256starstar)
{
    /* State {1, 2, 3, 4}: the reference implementation's first outputs. */
    struct k_prng p = { .s = { 1, 2, 3, 4 } };
    ck_assert_uint_eq(k_prng_next(&p), 11520ull);
    ck_assert_uint_eq(k_prng_next(&p), 0ull);
    ck_assert_uint_eq(k_prng_next(&p), 1509978240ull);
    ck_assert_uint_eq(k_prng_next(&p), 1215971899390074240ull);
}
END_TEST

START_TEST(test_prng_below_stays_in_bound_and_covers_it_evenly)
{
    struct k_prng p;
    k_prng_init(&p, 7);
    enum { BUCKETS = 10, DRAWS = 100000 };
    unsigned counts[BUCKETS];
    memset(counts, 0, sizeof(counts));
    for (int i = 0; i < DRAWS; i++) {
        uint64_t v = k_prng_below(&p, BUCKETS);
        ck_assert_uint_lt(v, BUCKETS);
        counts[v]++;
    }
    /* Each bucket expects 10,000; 5 standard deviations is about +-475. */
    for (int b = 0; b < BUCKETS; b++) {
        ck_assert_uint_gt(counts[b], 9500);
        ck_assert_uint_lt(counts[b], 10500);
    }
    ck_assert_uint_eq(k_prng_below(&p, 1), 0);
}
END_TEST

Suite *test_prng_suite(void)
{
    Suite *s = suite_create("prng");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_prng_same_seed_gives_same_sequence);
    tcase_add_test(tc, test_prng_different_seeds_diverge);
    tcase_add_test(tc, test_prng_matches_reference_xoshiro256starstar);
    tcase_add_test(tc, test_prng_below_stays_in_bound_and_covers_it_evenly);
    suite_add_tcase(s, tc);
    return s;
}
