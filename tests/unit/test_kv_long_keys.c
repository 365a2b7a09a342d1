/* Keys longer than an LMDB key (kv/kv_int.h's long form) and paths of thousands of components:
 * etcd takes any key its 4 KiB request line can carry (spec §1.6) and has no depth limit
 * (spec §12). The randomized model test covers their ordering against short keys; these pin the
 * edges: the longest keys, whole causes, expiry, deep nesting, and the store format change. */
#include <check.h>

#include "kv_test_util.h"

Suite *test_kv_long_keys_suite(void);

/* "/<prefix><n times c>" in a heap string the test frees. */
static char *key_of(const char *prefix, char c, size_t n)
{
    size_t plen = strlen(prefix);
    char *k = k_xmalloc(1 + plen + n + 1);
    k[0] = '/';
    memcpy(k + 1, prefix, plen);
    memset(k + 1 + plen, c, n);
    k[1 + plen + n] = '\0';
    return k;
}

/* kvt_req with params built from a value that may be long. */
static const char *put_value(struct kvt *t, const char *path, const char *extra, const char *value)
{
    size_t n = strlen(extra) + strlen(value) + 16;
    char *params = k_xmalloc(n);
    snprintf(params, n, "%svalue=%s", extra, value);
    const char *r = kvt_req(t, "PUT", path, params);
    free(params);
    return r;
}

static bool contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

START_TEST(test_a_key_of_a_4096_byte_request_line_is_stored_read_listed_and_removed)
{
    struct kvt t;
    kvt_open(&t);
    char *k = key_of("d/", 'L', 4070); /* "/d/" + 4070: the 4072 characters of spec §1.6 */
    char *expect = k_xmalloc(strlen(k) + 64);
    snprintf(expect, strlen(k) + 64, "\"key\":\"%s\",\"value\":\"v\"", k);
    ck_assert(contains(kvt_req(&t, "PUT", k, "value=v"), expect));
    ck_assert(contains(kvt_req(&t, "GET", k, ""), expect));
    ck_assert(contains(kvt_req(&t, "GET", "/d", ""), expect));
    /* A missing long key is named whole in the cause, as etcd does. */
    k[strlen(k) - 1] = 'M';
    const char *miss = kvt_req(&t, "GET", k, "");
    ck_assert(strncmp(miss, "404 {\"errorCode\":100,", 21) == 0);
    snprintf(expect, strlen(k) + 64, "\"cause\":\"%s\"", k);
    ck_assert(contains(miss, expect));
    k[strlen(k) - 1] = 'L';
    ck_assert(contains(kvt_req(&t, "DELETE", k, ""), "\"action\":\"delete\""));
    ck_assert(contains(kvt_req(&t, "GET", "/d", ""), "\"dir\":true,\"modifiedIndex\":1"));
    ck_assert(!contains(kvt_req(&t, "GET", "/d", ""), "LLLL"));
    free(expect);
    free(k);
    kvt_close(&t);
}
END_TEST

START_TEST(test_keys_of_the_limit_are_taken_and_longer_ones_refused_with_209)
{
    struct kvt t;
    kvt_open(&t);
    char *k = key_of("", 'x', KV_KEY_BYTES_MAX_LIMIT - 1);
    ck_assert(strncmp(kvt_req(&t, "PUT", k, "value=1"), "201 ", 4) == 0);
    ck_assert(strncmp(kvt_req(&t, "GET", k, ""), "200 ", 4) == 0);
    free(k);
    k = key_of("", 'x', KV_KEY_BYTES_MAX_LIMIT);
    ck_assert_str_eq(kvt_req(&t, "PUT", k, "value=1"),
                     "400 {\"errorCode\":209,\"message\":\"Invalid field\",\"cause\":"
                     "\"key is longer than 8192 bytes\",\"index\":0}\n");
    /* Read, it cannot exist: etcd's walk answers for it. */
    ck_assert(strncmp(kvt_req(&t, "GET", k, ""), "404 {\"errorCode\":100,", 21) == 0);
    free(k);
    kvt_close(&t);
}
END_TEST

START_TEST(test_a_failed_compare_names_long_values_whole)
{
    struct kvt t;
    kvt_open(&t);
    char big[701];
    memset(big, 'b', 700);
    big[700] = '\0';
    char *k = key_of("k", 'K', 600);
    ck_assert(strncmp(put_value(&t, k, "", big), "201 ", 4) == 0);
    const char *r = put_value(&t, k, "prevValue=nope&", "x");
    char *expect = k_xmalloc(800);
    snprintf(expect, 800, "\"cause\":\"[nope != %s]\",\"index\":1}", big);
    ck_assert(strncmp(r, "412 {\"errorCode\":101,", 21) == 0);
    ck_assert(contains(r, expect));
    free(expect);
    free(k);
    kvt_close(&t);
}
END_TEST

START_TEST(test_long_keys_with_a_ttl_expire_under_their_whole_names)
{
    struct kvt t;
    kvt_open(&t);
    char *dir = key_of("dir", 'D', 520);
    char *k = k_xmalloc(strlen(dir) + 600);
    snprintf(k, strlen(dir) + 600, "%s/%0550d", dir, 7);
    ck_assert(strncmp(kvt_req(&t, "PUT", k, "value=v&ttl=1"), "201 ", 4) == 0);
    ck_assert(strncmp(kvt_req(&t, "PUT", dir, "dir=true&ttl=2&prevExist=true"), "200 ", 4) == 0);
    t.now_ns += 1500000000LL;
    const char *ev = kvt_sync(&t);
    char *expect = k_xmalloc(strlen(k) + 64);
    snprintf(expect, strlen(k) + 64, "{\"action\":\"expire\",\"node\":{\"key\":\"%s\"", k);
    ck_assert(strncmp(ev, expect, strlen(expect)) == 0);
    ck_assert(strchr(ev, '\n') == ev + strlen(ev) - 1); /* one event: the dir is not due */
    t.now_ns += 1000000000LL;
    snprintf(expect, strlen(k) + 64, "{\"action\":\"expire\",\"node\":{\"key\":\"%s\"", dir);
    ck_assert(strncmp(kvt_sync(&t), expect, strlen(expect)) == 0);
    ck_assert_str_eq(kvt_req(&t, "GET", "/", ""),
                     "200 {\"action\":\"get\",\"node\":{\"dir\":true}}\n");
    uint64_t count;
    ck_assert_int_eq(kv_store_node_count(t.s, &count), 0);
    ck_assert_uint_eq(count, 0);
    free(expect);
    free(k);
    free(dir);
    kvt_close(&t);
}
END_TEST

START_TEST(test_four_thousand_components_nest_list_and_unwind)
{
    struct kvt t;
    kvt_open(&t);
    enum { DEPTH = KV_KEY_BYTES_MAX_LIMIT / 2 };
    char *k = k_xmalloc(2 * DEPTH + 1);
    for (size_t i = 0; i < DEPTH; i++)
        memcpy(k + 2 * i, "/a", 2);
    k[2 * DEPTH] = '\0';
    ck_assert(strncmp(kvt_req(&t, "PUT", k, "value=deep"), "201 ", 4) == 0);
    uint64_t count;
    ck_assert_int_eq(kv_store_node_count(t.s, &count), 0);
    ck_assert_uint_eq(count, DEPTH);
    const char *all = kvt_req(&t, "GET", "/", "recursive=true");
    ck_assert(contains(all, "\"value\":\"deep\""));
    size_t nodes = 0;
    for (const char *p = all; (p = strstr(p, "\"nodes\":[")) != NULL; p++)
        nodes++;
    ck_assert_uint_eq(nodes, DEPTH); /* the root and every dir above the file */
    ck_assert(strncmp(kvt_req(&t, "DELETE", "/a", "recursive=true"), "200 ", 4) == 0);
    ck_assert_int_eq(kv_store_node_count(t.s, &count), 0);
    ck_assert_uint_eq(count, 0);
    free(k);
    kvt_close(&t);
}
END_TEST

START_TEST(test_a_format_1_store_opens_and_a_newer_one_is_refused)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/old", "value=kept");
    kv_store_close(t.s);
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/db", t.dir);
    struct kv_store_config cfg = { .dir = sub, .map_bytes = 1ull << 30, .no_sync = true };
    kvt_raw_meta_put(sub, "format", 1); /* what stores written before long keys say */
    ck_assert_int_eq(kv_store_open(&cfg, &t.s), 0);
    ck_assert(contains(kvt_req(&t, "GET", "/old", ""), "\"value\":\"kept\""));
    char *k = key_of("", 'n', 900);
    ck_assert(strncmp(kvt_req(&t, "PUT", k, "value=new"), "201 ", 4) == 0);
    free(k);
    kv_store_close(t.s);
    kvt_raw_meta_put(sub, "format", 3);
    t.s = NULL;
    ck_assert_int_eq(kv_store_open(&cfg, &t.s), K_ECORRUPT);
    kvt_raw_meta_put(sub, "format", 2);
    ck_assert_int_eq(kv_store_open(&cfg, &t.s), 0);
    kvt_close(&t);
}
END_TEST

Suite *test_kv_long_keys_suite(void)
{
    Suite *s = suite_create("kv_long_keys");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_a_key_of_a_4096_byte_request_line_is_stored_read_listed_and_removed);
    tcase_add_test(tc, test_keys_of_the_limit_are_taken_and_longer_ones_refused_with_209);
    tcase_add_test(tc, test_a_failed_compare_names_long_values_whole);
    tcase_add_test(tc, test_long_keys_with_a_ttl_expire_under_their_whole_names);
    tcase_add_test(tc, test_four_thousand_components_nest_list_and_unwind);
    tcase_add_test(tc, test_a_format_1_store_opens_and_a_newer_one_is_refused);
    suite_add_tcase(s, tc);
    return s;
}
