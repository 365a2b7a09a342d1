/* Watches (spec/etcd-v2-api.md §5): from now, from the past (history), from a cleared past
 * (401), one-shot and streaming, recursive and hidden-key rules, ancestors' deletes and expiry,
 * refresh invisibility, and the bound that cuts off a slow stream. */
#include <check.h>

#include "kv/history.h"
#include "kv_test_util.h"

Suite *test_kv_watch_suite(void);

struct seen {
    int calls;
    bool free_in_cb;
    char log[8192]; /* every event taken, as JSON lines */
};

static void seen_cb(struct kv_watcher *w, void *data)
{
    struct seen *s = data;
    s->calls++;
    if (s->free_in_cb) kv_watcher_free(w);
}

/* Takes every queued event of w and returns them as JSON lines. */
static const char *drain(struct kv_watcher *w, struct seen *s)
{
    struct k_buf b = { 0 };
    k_buf_append(&b, "", 0);
    struct kv_event *ev;
    while ((ev = kv_watcher_take(w)) != NULL) {
        kv_json_event(ev, false, &b);
        kv_event_unref(ev);
    }
    ck_assert_uint_lt(b.len, sizeof(s->log));
    memcpy(s->log, b.data, b.len + 1);
    k_buf_free(&b);
    return s->log;
}

static struct kv_watcher *watch(struct kvt *t, const char *key, bool recursive, bool stream,
                                uint64_t wait_index, struct seen *s, uint64_t *etcd_index)
{
    struct kv_watch_opts o = { .key = key,
                               .key_len = strlen(key),
                               .recursive = recursive,
                               .stream = stream,
                               .wait_index = wait_index };
    struct kv_watcher *w = NULL;
    struct kv_error err;
    uint64_t idx;
    int rc = kv_watch_add(t->hub, &o, seen_cb, s, &w, etcd_index ? etcd_index : &idx, &err);
    ck_assert_int_eq(rc, 0);
    return w;
}

START_TEST(test_watch_from_now_fires_once_on_the_next_event_of_its_key)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/other", "value=0");
    struct seen s = { 0 };
    uint64_t idx;
    struct kv_watcher *w = watch(&t, "/w5", false, false, 0, &s, &idx);
    ck_assert_uint_eq(idx, 1); /* X-Etcd-Index: the index when the watch started */
    ck_assert_uint_eq(kv_watch_hub_watcher_count(t.hub), 1);
    kvt_req(&t, "PUT", "/other", "value=1");
    ck_assert_int_eq(s.calls, 0);
    kvt_req(&t, "PUT", "/w5", "value=1");
    ck_assert_int_eq(s.calls, 1);
    ck_assert_int_eq(kv_watcher_state(w), KV_WATCHER_DONE);
    ck_assert_uint_eq(kv_watch_hub_watcher_count(t.hub), 0);
    ck_assert_str_eq(drain(w, &s), "{\"action\":\"set\",\"node\":{\"key\":\"/w5\",\"value\":\"1\","
                                   "\"modifiedIndex\":3,\"createdIndex\":3}}\n");
    kvt_req(&t, "PUT", "/w5", "value=2");
    ck_assert_int_eq(s.calls, 1);
    kv_watcher_free(w);
    kvt_close(&t);
}
END_TEST

START_TEST(test_only_recursive_watches_see_children_and_never_hidden_ones)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/hid2", "dir=true");
    struct seen plain = { 0 };
    struct seen rec = { 0 };
    struct seen direct = { 0 };
    struct kv_watcher *wp = watch(&t, "/hid2", false, true, 0, &plain, NULL);
    struct kv_watcher *wr = watch(&t, "/hid2", true, true, 0, &rec, NULL);
    struct kv_watcher *wd = watch(&t, "/hid2/_sec", false, true, 0, &direct, NULL);
    kvt_req(&t, "PUT", "/hid2/_sec", "value=s");
    kvt_req(&t, "PUT", "/hid2/_d/x", "value=x");
    kvt_req(&t, "PUT", "/hid2/vis", "value=v");
    ck_assert_int_eq(plain.calls, 0);
    ck_assert_int_eq(rec.calls, 1);
    ck_assert_int_eq(direct.calls, 1);
    ck_assert_str_eq(drain(wr, &rec),
                     "{\"action\":\"set\",\"node\":{\"key\":\"/hid2/vis\",\"value\":"
                     "\"v\",\"modifiedIndex\":4,\"createdIndex\":4}}\n");
    ck_assert_str_eq(drain(wd, &direct),
                     "{\"action\":\"set\",\"node\":{\"key\":\"/hid2/_sec\",\"value\":\"s\","
                     "\"modifiedIndex\":2,\"createdIndex\":2}}\n");
    /* The dir's own events reach the plain watcher. */
    kvt_req(&t, "PUT", "/hid2", "dir=true&ttl=5&prevExist=true");
    ck_assert_int_eq(plain.calls, 1);
    kv_watcher_free(wp);
    kv_watcher_free(wr);
    kv_watcher_free(wd);
    kvt_close(&t);
}
END_TEST

START_TEST(test_expiry_of_an_ancestor_reaches_watchers_of_existing_descendants)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/expdir", "dir=true&ttl=1");
    kvt_req(&t, "PUT", "/expdir/child", "value=c");
    struct seen child = { 0 };
    struct seen ghost = { 0 };
    struct seen root = { 0 };
    struct kv_watcher *wc = watch(&t, "/expdir/child", false, false, 0, &child, NULL);
    struct kv_watcher *wg = watch(&t, "/expdir/never", false, false, 0, &ghost, NULL);
    struct kv_watcher *wr = watch(&t, "/", true, false, 0, &root, NULL);
    t.now_ns += 1000000000;
    kvt_sync(&t);
    ck_assert_int_eq(child.calls, 1);
    ck_assert_int_eq(ghost.calls, 0); /* live: only nodes that existed */
    ck_assert_int_eq(root.calls, 1);
    ck_assert_str_eq(drain(wc, &child),
                     "{\"action\":\"expire\",\"node\":{\"key\":\"/expdir\",\"dir\":true,"
                     "\"modifiedIndex\":3,\"createdIndex\":1},\"prevNode\":{\"key\":\"/expdir\","
                     "\"dir\":true,\"expiration\":\"2027-01-15T08:00:01Z\",\"modifiedIndex\":1,"
                     "\"createdIndex\":1}}\n");
    /* From history, the ancestor's expire matches even a key that never existed (source). */
    struct seen past = { 0 };
    struct kv_watcher *wpast = watch(&t, "/expdir/never", false, false, 3, &past, NULL);
    ck_assert_int_eq(kv_watcher_state(wpast), KV_WATCHER_DONE);
    ck_assert_str_eq(drain(wpast, &past), child.log);
    kv_watcher_free(wc);
    kv_watcher_free(wg);
    kv_watcher_free(wr);
    kv_watcher_free(wpast);
    kvt_close(&t);
}
END_TEST

START_TEST(test_wait_index_in_the_past_returns_the_first_match_from_history)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/a", "value=1");
    kvt_req(&t, "PUT", "/b", "value=2");
    kvt_req(&t, "PUT", "/a", "value=3");
    struct seen s = { 0 };
    uint64_t idx;
    struct kv_watcher *w = watch(&t, "/a", false, false, 2, &s, &idx);
    ck_assert_uint_eq(idx, 3); /* for a history hit, the current index */
    ck_assert_int_eq(kv_watcher_state(w), KV_WATCHER_DONE);
    ck_assert_int_eq(s.calls, 0);
    ck_assert_str_eq(
            drain(w, &s),
            "{\"action\":\"set\",\"node\":{\"key\":\"/a\",\"value\":\"3\",\"modifiedIndex\":3,"
            "\"createdIndex\":3},\"prevNode\":{\"key\":\"/a\",\"value\":\"1\","
            "\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    kv_watcher_free(w);
    /* A stream answered from history sends that one event and then stays silent (quirk 18). */
    struct seen st = { 0 };
    w = watch(&t, "/", true, true, 1, &st, NULL);
    ck_assert_int_eq(kv_watcher_state(w), KV_WATCHER_DONE);
    kvt_req(&t, "PUT", "/a", "value=4");
    ck_assert_int_eq(st.calls, 0);
    ck_assert_str_eq(drain(w, &st), "{\"action\":\"set\",\"node\":{\"key\":\"/a\",\"value\":\"1\","
                                    "\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    kv_watcher_free(w);
    kvt_close(&t);
}
END_TEST

START_TEST(test_wait_index_in_the_future_waits_for_that_index)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/a", "value=1");
    struct seen s = { 0 };
    struct kv_watcher *w = watch(&t, "/a", false, false, 3, &s, NULL);
    ck_assert_int_eq(kv_watcher_state(w), KV_WATCHER_ACTIVE);
    kvt_req(&t, "PUT", "/a", "value=2"); /* index 2 < 3 */
    ck_assert_int_eq(s.calls, 0);
    kvt_req(&t, "PUT", "/a", "value=3");
    ck_assert_int_eq(s.calls, 1);
    ck_assert_str_eq(
            drain(w, &s),
            "{\"action\":\"set\",\"node\":{\"key\":\"/a\",\"value\":\"3\",\"modifiedIndex\":3,"
            "\"createdIndex\":3},\"prevNode\":{\"key\":\"/a\",\"value\":\"2\","
            "\"modifiedIndex\":2,\"createdIndex\":2}}\n");
    kv_watcher_free(w);
    kvt_close(&t);
}
END_TEST

START_TEST(test_wait_index_older_than_1000_events_returns_401)
{
    struct kvt t;
    kvt_open(&t);
    /* 1167 writes in batches, as the spec's example: history keeps 168..1167. */
    enum { N = 1167 };
    Kvpb__KvRequest reqs[100];
    const Kvpb__KvRequest *ptrs[100];
    uint64_t idx[100];
    for (int done = 0; done < N;) {
        int n = N - done < 100 ? N - done : 100;
        for (int i = 0; i < n; i++) {
            kvpb__kv_request__init(&reqs[i]);
            reqs[i].method = KVPB__KV_METHOD__KV_METHOD_PUT;
            reqs[i].path.data = (uint8_t *)"/w1";
            reqs[i].path.len = 3;
            reqs[i].time_ns = t.now_ns;
            ptrs[i] = &reqs[i];
            idx[i] = ++t.raft_index;
        }
        struct kv_batch b;
        ck_assert_int_eq(kv_apply_requests(t.s, ptrs, idx, (size_t)n, &b), 0);
        kv_watch_hub_publish(t.hub, b.events, b.event_count);
        kv_batch_free(&b);
        done += n;
    }
    struct kv_watch_opts o = { .key = "/w1", .key_len = 3, .wait_index = 5 };
    struct kv_watcher *w = NULL;
    struct kv_error err;
    uint64_t at;
    ck_assert_int_eq(kv_watch_add(t.hub, &o, seen_cb, NULL, &w, &at, &err), K_EV2);
    struct k_buf b = { 0 };
    kv_json_error(&err, &b);
    ck_assert_str_eq(b.data, "{\"errorCode\":401,\"message\":\"The event in requested index is "
                             "outdated and cleared\",\"cause\":\"the requested history has been "
                             "cleared [168/5]\",\"index\":1167}\n");
    k_buf_free(&b);
    /* The oldest remembered index still works. */
    struct seen s = { 0 };
    w = watch(&t, "/w1", false, false, 168, &s, NULL);
    ck_assert_int_eq(kv_watcher_state(w), KV_WATCHER_DONE);
    kv_watcher_free(w);
    kvt_close(&t);
}
END_TEST

START_TEST(test_refresh_wakes_no_watcher_and_is_skipped_by_history)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/rf", "value=keep&ttl=100");
    struct seen s = { 0 };
    struct kv_watcher *w = watch(&t, "/rf", false, false, 0, &s, NULL);
    kvt_req(&t, "PUT", "/rf", "refresh=true&ttl=200&prevExist=true");
    ck_assert_int_eq(s.calls, 0);
    kvt_req(&t, "PUT", "/rf", "value=changed&prevExist=true");
    ck_assert_int_eq(s.calls, 1);
    kv_watcher_free(w);
    /* waitIndex 2 names the refresh: the scan skips it and finds the update at 3. */
    struct seen p = { 0 };
    w = watch(&t, "/rf", false, false, 2, &p, NULL);
    ck_assert_int_eq(kv_watcher_state(w), KV_WATCHER_DONE);
    const char *got = drain(w, &p);
    ck_assert_ptr_nonnull(
            strstr(got, "{\"action\":\"update\",\"node\":{\"key\":\"/rf\",\"value\":\"changed\""));
    ck_assert_ptr_nonnull(strstr(got, "\"modifiedIndex\":3"));
    kv_watcher_free(w);
    kvt_close(&t);
}
END_TEST

START_TEST(test_a_stream_gets_every_event_in_order_until_it_falls_behind)
{
    struct kvt t;
    kvt_open(&t);
    struct seen s = { 0 };
    struct kv_watch_opts o = {
        .key = "/s", .key_len = 2, .recursive = true, .stream = true, .queue_max = 3
    };
    struct kv_watcher *w;
    struct kv_error err;
    uint64_t idx;
    ck_assert_int_eq(kv_watch_add(t.hub, &o, seen_cb, &s, &w, &idx, &err), 0);
    kvt_req(&t, "PUT", "/s/a", "value=1");
    kvt_req(&t, "PUT", "/s/b", "value=2");
    ck_assert_str_eq(drain(w, &s), "{\"action\":\"set\",\"node\":{\"key\":\"/s/a\",\"value\":\"1\","
                                   "\"modifiedIndex\":1,\"createdIndex\":1}}\n"
                                   "{\"action\":\"set\",\"node\":{\"key\":\"/s/b\",\"value\":\"2\","
                                   "\"modifiedIndex\":2,\"createdIndex\":2}}\n");
    kvt_req(&t, "DELETE", "/s/a", "");
    kvt_req(&t, "PUT", "/s/c", "value=3");
    kvt_req(&t, "PUT", "/s/d", "value=4");
    ck_assert_int_eq(kv_watcher_state(w), KV_WATCHER_ACTIVE);
    kvt_req(&t, "PUT", "/s/e", "value=5"); /* a fourth undelivered event: cut off */
    ck_assert_int_eq(kv_watcher_state(w), KV_WATCHER_CUT_OFF);
    ck_assert_uint_eq(kv_watch_hub_watcher_count(t.hub), 0);
    int calls = s.calls;
    kvt_req(&t, "PUT", "/s/f", "value=6");
    ck_assert_int_eq(s.calls, calls);
    const char *left = drain(w, &s); /* the three queued ones can still be written */
    ck_assert_ptr_nonnull(strstr(left, "\"modifiedIndex\":5"));
    ck_assert_ptr_null(strstr(left, "\"modifiedIndex\":6"));
    kv_watcher_free(w);
    kvt_close(&t);
}
END_TEST

START_TEST(test_a_stream_on_a_deleted_key_gets_the_delete_twice_like_etcd)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/sw", "value=1");
    struct seen s = { 0 };
    struct kv_watcher *w = watch(&t, "/sw", false, true, 0, &s, NULL);
    kvt_req(&t, "DELETE", "/sw", "");
    const char *del = "{\"action\":\"delete\",\"node\":{\"key\":\"/sw\",\"modifiedIndex\":2,"
                      "\"createdIndex\":1},\"prevNode\":{\"key\":\"/sw\",\"value\":\"1\","
                      "\"modifiedIndex\":1,\"createdIndex\":1}}\n";
    char twice[1024];
    snprintf(twice, sizeof(twice), "%s%s", del, del);
    ck_assert_str_eq(drain(w, &s), twice);
    kv_watcher_free(w);
    kvt_close(&t);
}
END_TEST

START_TEST(test_a_watcher_may_free_itself_in_its_callback)
{
    struct kvt t;
    kvt_open(&t);
    struct seen a = { .free_in_cb = true };
    struct seen b = { .free_in_cb = true };
    watch(&t, "/k", false, true, 0, &a, NULL);
    watch(&t, "/", true, false, 0, &b, NULL);
    kvt_req(&t, "PUT", "/k", "value=1");
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_eq(b.calls, 1);
    ck_assert_uint_eq(kv_watch_hub_watcher_count(t.hub), 0);
    kvt_req(&t, "PUT", "/k", "value=2");
    ck_assert_int_eq(a.calls, 1);
    kvt_close(&t);
}
END_TEST

START_TEST(test_reset_closes_watchers_and_clears_history)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/a", "value=1");
    struct seen s = { 0 };
    struct kv_watcher *w = watch(&t, "/a", false, true, 0, &s, NULL);
    kv_watch_hub_reset(t.hub, 50);
    ck_assert_int_eq(s.calls, 1);
    ck_assert_int_eq(kv_watcher_state(w), KV_WATCHER_CLOSED);
    ck_assert_uint_eq(kv_watch_hub_index(t.hub), 50);
    struct kv_watch_opts o = { .key = "/a", .key_len = 2, .wait_index = 1 };
    struct kv_watcher *w2;
    struct kv_error err;
    uint64_t idx;
    ck_assert_int_eq(kv_watch_add(t.hub, &o, seen_cb, &s, &w2, &idx, &err), K_EV2);
    ck_assert_int_eq(err.ecode, KV_ECODE_EVENT_INDEX_CLEARED);
    ck_assert_str_eq(err.cause, "the requested history has been cleared [51/1]");
    ck_assert_uint_eq(err.index, 50);
    kv_watcher_free(w);
    /* A watcher outliving its hub is closed and can still be freed. */
    struct kv_watcher *w3 = watch(&t, "/b", false, false, 0, &s, NULL);
    kv_watch_hub_free(t.hub);
    t.hub = NULL;
    ck_assert_int_eq(kv_watcher_state(w3), KV_WATCHER_CLOSED);
    kv_watcher_free(w3);
    kvt_close(&t);
}
END_TEST

START_TEST(test_history_scans_keep_etcds_quirks_for_hidden_keys_and_dir_prefixes)
{
    /* Both seen on etcd 3.4.23: a recursive watch from history returns a hidden event that a
     * live recursive watch never delivers, and a deleted dir /pq matches a watch on /pqrs
     * (etcd compares the strings, not the components). */
    struct kvt t;
    kvt_open(&t);
    struct seen live = { 0 };
    struct kv_watcher *wl = watch(&t, "/", true, false, 0, &live, NULL);
    kvt_req(&t, "PUT", "/_q", "value=1");
    ck_assert_int_eq(live.calls, 0);
    struct seen past = { 0 };
    struct kv_watcher *wp = watch(&t, "/", true, false, 1, &past, NULL);
    ck_assert_str_eq(drain(wp, &past), "{\"action\":\"set\",\"node\":{\"key\":\"/_q\",\"value\":"
                                       "\"1\",\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    kv_watcher_free(wp);
    kvt_req(&t, "PUT", "/pq", "dir=true");
    kvt_req(&t, "DELETE", "/pq", "dir=true");
    wp = watch(&t, "/pqrs", false, false, 3, &past, NULL);
    ck_assert_int_eq(kv_watcher_state(wp), KV_WATCHER_DONE);
    ck_assert_ptr_nonnull(
            strstr(drain(wp, &past), "\"action\":\"delete\",\"node\":{\"key\":\"/pq\""));
    kv_watcher_free(wp);
    kv_watcher_free(wl);
    kvt_close(&t);
}
END_TEST

START_TEST(test_history_drops_old_events_early_beyond_its_byte_budget)
{
    struct kvt t;
    kvt_open(&t);
    kv_watch_hub_free(t.hub);
    t.hub = kv_watch_hub_new(0, 0, 64 * 1024);
    static char params[20100];
    memcpy(params, "value=", 6);
    memset(params + 6, 'v', 20000);
    params[20006] = '\0';
    for (int i = 0; i < 10; i++)
        kvt_req(&t, "PUT", "/big", params);
    /* Each event holds ~40 KB (value and prevNode): only the newest one or two fit. */
    struct kv_watch_opts o = { .key = "/big", .key_len = 4, .wait_index = 5 };
    struct kv_watcher *w;
    struct kv_error err;
    uint64_t idx;
    ck_assert_int_eq(kv_watch_add(t.hub, &o, seen_cb, NULL, &w, &idx, &err), K_EV2);
    ck_assert_int_eq(err.ecode, KV_ECODE_EVENT_INDEX_CLEARED);
    ck_assert_uint_eq(err.index, 10);
    o.wait_index = 10;
    ck_assert_int_eq(kv_watch_add(t.hub, &o, seen_cb, NULL, &w, &idx, &err), 0);
    ck_assert_int_eq(kv_watcher_state(w), KV_WATCHER_DONE);
    kv_watcher_free(w);
    kvt_close(&t);
}
END_TEST

Suite *test_kv_watch_suite(void)
{
    Suite *s = suite_create("kv_watch");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_watch_from_now_fires_once_on_the_next_event_of_its_key);
    tcase_add_test(tc, test_only_recursive_watches_see_children_and_never_hidden_ones);
    tcase_add_test(tc, test_expiry_of_an_ancestor_reaches_watchers_of_existing_descendants);
    tcase_add_test(tc, test_wait_index_in_the_past_returns_the_first_match_from_history);
    tcase_add_test(tc, test_wait_index_in_the_future_waits_for_that_index);
    tcase_add_test(tc, test_wait_index_older_than_1000_events_returns_401);
    tcase_add_test(tc, test_refresh_wakes_no_watcher_and_is_skipped_by_history);
    tcase_add_test(tc, test_a_stream_gets_every_event_in_order_until_it_falls_behind);
    tcase_add_test(tc, test_a_stream_on_a_deleted_key_gets_the_delete_twice_like_etcd);
    tcase_add_test(tc, test_a_watcher_may_free_itself_in_its_callback);
    tcase_add_test(tc, test_reset_closes_watchers_and_clears_history);
    tcase_add_test(tc, test_history_drops_old_events_early_beyond_its_byte_budget);
    tcase_add_test(tc, test_history_scans_keep_etcds_quirks_for_hidden_keys_and_dir_prefixes);
    suite_add_tcase(s, tc);
    return s;
}
