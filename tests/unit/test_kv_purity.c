/* A cheap guard for determinism (STYLE.md §5): the files on kv's apply path never mention a
 * clock, randomness, the environment, threads or floating point. A deliberate use needs a
 * reason and an edit here. */
#include <check.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *test_kv_purity_suite(void);

static bool is_ident(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* Whether word occurs in text as a whole identifier ("time(" matches calls only). */
static bool mentions(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = strstr(text, word); p != NULL; p = strstr(p + 1, word)) {
        bool start = p == text || !is_ident(p[-1]);
        bool end = word[n - 1] == '(' || !is_ident(p[n]);
        if (start && end) return true;
    }
    return false;
}

START_TEST(test_apply_path_files_use_no_clock_randomness_threads_or_floats)
{
    static const char *const files[] = { "apply.c", "tree.c",  "path.c",    "event.c",
                                         "get.c",   "dump.c",  "history.c", "watch.c",
                                         "json.c",  "arena.c", "error.c",   "params.c" };
    static const char *const banned[] = {
        "time(",  "clock_gettime", "gettimeofday",   "clock(", "rand(",  "random(",   "srand(",
        "getpid", "getenv",        "pthread_create", "float",  "double", "localtime", "gmtime",
    };
    char root[512];
    snprintf(root, sizeof(root), "%s", __FILE__);
    char *cut = strstr(root, "/tests/unit/");
    ck_assert_ptr_nonnull(cut);
    *cut = '\0';
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[640];
        snprintf(path, sizeof(path), "%s/kv/%s", root, files[i]);
        FILE *f = fopen(path, "r");
        ck_assert_msg(f != NULL, "cannot open %s", path);
        static char text[1 << 20];
        size_t n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[n] = '\0';
        for (size_t j = 0; j < sizeof(banned) / sizeof(banned[0]); j++)
            ck_assert_msg(!mentions(text, banned[j]), "kv/%s mentions %s", files[i], banned[j]);
    }
}
END_TEST

Suite *test_kv_purity_suite(void)
{
    Suite *s = suite_create("kv_purity");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_apply_path_files_use_no_clock_randomness_threads_or_floats);
    suite_add_tcase(s, tc);
    return s;
}
