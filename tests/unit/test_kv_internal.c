/* etcd's internal /0 writes (membership records, the cluster version) take etcd indexes and
 * history slots, so ketchd's indexes match etcd's (spec §3: a fresh N-member cluster answers
 * its first request with 2N+1), yet no client ever sees them. */
#include <check.h>
#include <string.h>

#include "kv/store.h"
#include "kv/watch.h"
#include "kv_test_util.h"

Suite *test_kv_internal_suite(void);

static void bootstrap_like_etcd(struct kvt *t)
{
    kvt_req(t, "INTERNAL", "/0/members/2e1259d415f2a040/raftAttributes",
            "value={\"peerURLs\":[\"http://127.0.0.1:2380\"]}");
    kvt_req(t, "INTERNAL", "/0/members/2e1259d415f2a040/attributes",
            "value={\"name\":\"n1\",\"clientURLs\":[\"http://127.0.0.1:2379\"]}");
    kvt_req(t, "INTERNAL", "/0/version", "value=3.4.0");
}

START_TEST(test_internal_writes_take_indexes_like_etcds_bootstrap)
{
    struct kvt t;
    kvt_open(&t);
    bootstrap_like_etcd(&t);
    ck_assert_str_eq(kvt_req(&t, "GET", "/", ""),
                     "200 {\"action\":\"get\",\"node\":{\"dir\":true}}\n");
    ck_assert_str_eq(kvt_req(&t, "PUT", "/foo", "value=bar"),
                     "201 {\"action\":\"set\",\"node\":{\"key\":\"/foo\",\"value\":\"bar\","
                     "\"modifiedIndex\":4,\"createdIndex\":4}}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_internal_writes_are_never_listed_or_readable)
{
    struct kvt t;
    kvt_open(&t);
    bootstrap_like_etcd(&t);
    ck_assert_str_eq(kvt_req(&t, "GET", "/0", ""),
                     "404 {\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/0\","
                     "\"index\":3}\n");
    ck_assert_str_eq(kvt_req(&t, "GET", "/", "recursive=true"),
                     "200 {\"action\":\"get\",\"node\":{\"dir\":true}}\n");
    kvt_close(&t);
}
END_TEST

static void on_event(struct kv_watcher *w, void *data)
{
    (void)w;
    (*(int *)data)++;
}

START_TEST(test_internal_writes_wake_no_watcher_and_no_history_scan)
{
    struct kvt t;
    kvt_open(&t);
    int woken = 0;
    struct kv_watcher *now_w;
    uint64_t idx;
    struct kv_error err;
    struct kv_watch_opts all = { .key = "/", .key_len = 1, .recursive = true, .stream = true };
    ck_assert_int_eq(kv_watch_add(t.hub, &all, on_event, &woken, &now_w, &idx, &err), 0);
    bootstrap_like_etcd(&t);
    ck_assert_int_eq(woken, 0);
    ck_assert_ptr_null(kv_watcher_take(now_w));
    /* A watch from index 1 skips the internal events and waits for the first user write. */
    struct kv_watch_opts past = { .key = "/", .key_len = 1, .recursive = true, .wait_index = 1 };
    struct kv_watcher *past_w;
    int past_woken = 0;
    ck_assert_int_eq(kv_watch_add(t.hub, &past, on_event, &past_woken, &past_w, &idx, &err), 0);
    ck_assert_uint_eq(idx, 3);
    ck_assert_ptr_null(kv_watcher_take(past_w));
    kvt_req(&t, "PUT", "/foo", "value=bar");
    struct kv_event *ev = kv_watcher_take(past_w);
    ck_assert_ptr_nonnull(ev);
    ck_assert_uint_eq(ev->index, 4);
    kv_event_unref(ev);
    kv_watcher_free(past_w);
    kv_watcher_free(now_w);
    kvt_close(&t);
}
END_TEST

START_TEST(test_internal_write_outside_0_is_refused)
{
    struct kvt t;
    kvt_open(&t);
    const char *r = kvt_req(&t, "INTERNAL", "/foo", "value=x");
    ck_assert_msg(strncmp(r, "400 {\"errorCode\":209", 20) == 0, "%s", r);
    ck_assert_str_eq(kvt_req(&t, "PUT", "/a", "value=1"),
                     "201 {\"action\":\"set\",\"node\":{\"key\":\"/a\",\"value\":\"1\","
                     "\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    kvt_close(&t);
}
END_TEST

START_TEST(test_node_count_counts_files_and_dirs_but_not_internal_records)
{
    struct kvt t;
    kvt_open(&t);
    bootstrap_like_etcd(&t);
    uint64_t n = 99;
    ck_assert_int_eq(kv_store_node_count(t.s, &n), 0);
    ck_assert_uint_eq(n, 0);
    kvt_req(&t, "PUT", "/a/b", "value=1");
    kvt_req(&t, "PUT", "/a/_c", "value=2");
    kvt_req(&t, "PUT", "/d", "dir=true");
    ck_assert_int_eq(kv_store_node_count(t.s, &n), 0);
    ck_assert_uint_eq(n, 4); /* /a, /a/b, /a/_c, /d */
    kvt_req(&t, "DELETE", "/a", "recursive=true");
    ck_assert_int_eq(kv_store_node_count(t.s, &n), 0);
    ck_assert_uint_eq(n, 1);
    kvt_close(&t);
}
END_TEST

Suite *test_kv_internal_suite(void)
{
    Suite *s = suite_create("kv_internal");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_internal_writes_take_indexes_like_etcds_bootstrap);
    tcase_add_test(tc, test_internal_writes_are_never_listed_or_readable);
    tcase_add_test(tc, test_internal_writes_wake_no_watcher_and_no_history_scan);
    tcase_add_test(tc, test_internal_write_outside_0_is_refused);
    tcase_add_test(tc, test_node_count_counts_files_and_dirs_but_not_internal_records);
    suite_add_tcase(s, tc);
    return s;
}
