/* Purity (issue 4, STYLE.md §5): two clusters fed the same inputs emit the same bytes, and
 * the core's sources call nothing that reads the world (clock, randomness, environment, files). */
#include <stdio.h>

#include "raft_test_util.h"

Suite *test_raft_determinism_suite(void);

/* Runs a scripted scenario with message loss drawn from seed; returns a hash of every
 * message byte the cluster sent. */
static uint64_t run_scenario(uint64_t node_seed_base, uint64_t loss_seed)
{
    struct tnet t;
    tnet_seed_base = node_seed_base;
    tnet_init(&t, 5, 0, 0, true, true);
    struct k_prng loss;
    k_prng_init(&loss, loss_seed);
    uint64_t h = 0xcbf29ce484222325ull;
    uint64_t value = 0;
    for (int tick = 0; tick < 400; tick++) {
        for (uint64_t id = 1; id <= 5; id++) {
            raft_tick(t.nodes[id].r);
            if (raft_state(t.nodes[id].r) == RAFT_STATE_LEADER && tick % 3 == 0) {
                ck_assert_int_eq(tnet_propose(&t, id, value++), 0);
            }
        }
        tnet_ready_all(&t);
        for (size_t i = 0; i < t.queue_n; i++) {
            for (size_t j = 0; j < t.queue[i].len; j++)
                h = (h ^ t.queue[i].bytes[j]) * 0x100000001B3ull;
        }
        /* Drop about a fifth of the messages, then deliver one round. */
        size_t w = 0;
        for (size_t i = 0; i < t.queue_n; i++) {
            if (k_prng_chance(&loss, 200000)) {
                free(t.queue[i].bytes);
            } else {
                t.queue[w++] = t.queue[i];
            }
        }
        t.queue_n = w;
        tnet_deliver(&t, 1);
    }
    tnet_free(&t);
    return h;
}

START_TEST(test_same_inputs_give_the_same_bytes)
{
    uint64_t a = run_scenario(1000, 99);
    uint64_t b = run_scenario(1000, 99);
    ck_assert_uint_eq(a, b);
    /* The election jitter comes from the injected PRNG: other seeds, other elections. */
    uint64_t c = run_scenario(12345, 99);
    ck_assert_uint_ne(a, c);
}
END_TEST

/* A cheap guard: the core's sources mention no call that reads the clock, randomness,
 * the environment, files, sockets or threads, and no floating point. */
START_TEST(test_core_sources_call_nothing_impure)
{
    static const char *const files[] = { "arena.c",    "codec.c",      "confchange.c", "log.c",
                                         "progress.c", "quorum.c",     "raft.c",       "readonly.c",
                                         "ready.c",    "storage_mem.c" };
    static const char *const banned[] = {
        "time(",       "clock_gettime", "gettimeofday", "rand(",
        "random(",     "getpid",        "getenv",       "fopen",
        "open(",       "socket",        "pthread",      "float ",
        "double ",     "printf",        "static int ",  "static uint64_t ",
        "static bool "
    };
    char root[4096];
    snprintf(root, sizeof(root), "%s", __FILE__);
    char *cut = strstr(root, "tests/unit/");
    ck_assert_ptr_nonnull(cut);
    *cut = '\0';
    for (size_t f = 0; f < K_ARRAY_LEN(files); f++) {
        char path[4200];
        snprintf(path, sizeof(path), "%sraft/%s", root, files[f]);
        FILE *fp = fopen(path, "r");
        ck_assert_msg(fp != NULL, "cannot open %s", path);
        char line[1024];
        int lineno = 0;
        while (fgets(line, sizeof(line), fp)) {
            lineno++;
            for (size_t b = 0; b < K_ARRAY_LEN(banned); b++) {
                const char *hit = strstr(line, banned[b]);
                /* Mutable globals are "static T name" at column 0 without "(". */
                if (hit && strncmp(banned[b], "static ", 7) == 0) {
                    if (hit != line || strchr(line, '(') || strstr(line, "const")) hit = NULL;
                }
                ck_assert_msg(hit == NULL, "%s:%d uses %s", path, lineno, banned[b]);
            }
        }
        fclose(fp);
    }
}
END_TEST

Suite *test_raft_determinism_suite(void)
{
    Suite *s = suite_create("raft_determinism");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_same_inputs_give_the_same_bytes);
    tcase_add_test(tc, test_core_sources_call_nothing_impure);
    suite_add_tcase(s, tc);
    return s;
}
