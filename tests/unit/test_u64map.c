/* The u64 map against a plain array model on random insert/remove/lookup sequences. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/prng.h"
#include "base/u64map.h"

Suite *test_u64map_suite(void);

enum { KEYS = 512, STEPS = 200000 };

START_TEST(test_u64map_matches_a_model_under_random_churn)
{
    struct k_u64map m;
    k_u64map_init(&m);
    void *model[KEYS] = { 0 };
    size_t model_count = 0;
    struct k_prng p;
    uint64_t seed = getenv("KETCH_SEED") ? strtoull(getenv("KETCH_SEED"), NULL, 0) : 7;
    k_prng_init(&p, seed);
    for (int step = 0; step < STEPS; step++) {
        /* Few distinct keys, many collisions: keys are small multiples so probes run long. */
        uint64_t k = 1 + k_prng_below(&p, KEYS);
        uint64_t key = k * 1024;
        void *v = (void *)(uintptr_t)(step + 1);
        switch (k_prng_below(&p, 3)) {
        case 0:
            if (!model[k - 1]) model_count++;
            model[k - 1] = v;
            k_u64map_put(&m, key, v);
            break;
        case 1:
            ck_assert_ptr_eq(k_u64map_remove(&m, key), model[k - 1]);
            if (model[k - 1]) model_count--;
            model[k - 1] = NULL;
            break;
        default:
            ck_assert_ptr_eq(k_u64map_get(&m, key), model[k - 1]);
        }
        ck_assert_uint_eq(m.count, model_count);
    }
    for (uint64_t k = 1; k <= KEYS; k++)
        ck_assert_ptr_eq(k_u64map_get(&m, k * 1024), model[k - 1]);
    ck_assert_ptr_null(k_u64map_get(&m, 0));
    k_u64map_deinit(&m);
}
END_TEST

Suite *test_u64map_suite(void)
{
    Suite *s = suite_create("u64map");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_u64map_matches_a_model_under_random_churn);
    suite_add_tcase(s, tc);
    return s;
}
