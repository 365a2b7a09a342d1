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

static int collect(void *data, const char *path, size_t plen, const char *value, size_t vlen)
{
    struct k_buf *b = data;
    k_buf_append(b, path, plen);
    k_buf_append(b, "=", 1);
    k_buf_append(b, value, vlen);
    k_buf_append(b, ";", 1);
    return 0;
}

static const char *scan(struct kvt *t, const char *prefix)
{
    struct k_buf b = { 0 };
    k_buf_append(&b, "", 0);
    ck_assert_int_eq(kv_store_internal_scan(t->s, prefix, collect, &b), 0);
    return kvt_keep(t, b.data ? b.data : k_xstrdup(""));
}

/* etcd removes a member with two store writes in one raft entry: the member's records go, a
 * removed_members record comes; each takes an index. */
START_TEST(test_internal_records_are_kept_and_removal_chains_two_writes)
{
    struct kvt t;
    kvt_open(&t);
    bootstrap_like_etcd(&t);
    kvt_req(&t, "INTERNAL", "/0/members/2e1259d415f2a041/raftAttributes",
            "value={\"peerURLs\":[]}");
    ck_assert_str_eq(scan(&t, "/0/members/2e1259d415f2a040/"),
                     "/0/members/2e1259d415f2a040/attributes={\"name\":\"n1\",\"clientURLs\":"
                     "[\"http://127.0.0.1:2379\"]};/0/members/2e1259d415f2a040/raftAttributes="
                     "{\"peerURLs\":[\"http://127.0.0.1:2380\"]};");
    Kvpb__KvRequest second = KVPB__KV_REQUEST__INIT;
    second.method = KVPB__KV_METHOD__KV_METHOD_INTERNAL;
    second.path.data = (uint8_t *)"/0/removed_members/2e1259d415f2a040";
    second.path.len = strlen((const char *)second.path.data);
    second.value.data = (uint8_t *)"removed";
    second.value.len = 7;
    Kvpb__KvRequest first = KVPB__KV_REQUEST__INIT;
    first.id = 77;
    first.method = KVPB__KV_METHOD__KV_METHOD_INTERNAL;
    first.path.data = (uint8_t *)"/0/members/2e1259d415f2a040";
    first.path.len = strlen((const char *)first.path.data);
    first.recursive = true;
    first.then = &second;
    uint8_t buf[256];
    size_t len = kvpb__kv_request__pack(&first, buf);
    struct kv_entry e = { .raft_index = ++t.raft_index, .data = buf, .len = len };
    struct kv_batch b;
    ck_assert_int_eq(kv_apply_batch(t.s, &e, 1, &b), 0);
    ck_assert_uint_eq(b.event_count, 2);
    ck_assert_uint_eq(b.results[0].request_id, 77);
    ck_assert_uint_eq(b.results[0].etcd_index, 6);
    kv_watch_hub_publish(t.hub, b.events, b.event_count);
    kv_batch_free(&b);
    /* The other member, whose id shares a prefix, keeps its record. */
    ck_assert_str_eq(scan(&t, "/0/members/"),
                     "/0/members/2e1259d415f2a041/raftAttributes={\"peerURLs\":[]};");
    ck_assert_str_eq(scan(&t, "/0/removed_members/"),
                     "/0/removed_members/2e1259d415f2a040=removed;");
    ck_assert_str_eq(kvt_req(&t, "PUT", "/foo", "value=bar"),
                     "201 {\"action\":\"set\",\"node\":{\"key\":\"/foo\",\"value\":\"bar\","
                     "\"modifiedIndex\":7,\"createdIndex\":7}}\n");
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
    tcase_add_test(tc, test_internal_records_are_kept_and_removal_chains_two_writes);
    suite_add_tcase(s, tc);
    return s;
}
