/* The store's lifecycle and failure paths: reopening keeps data and indexes, a full LMDB map
 * fails the whole batch and leaves the store at its previous applied index, foreign
 * environments and impossible limits are refused. */
#include <check.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "kv_test_util.h"

Suite *test_kv_store_suite(void);

START_TEST(test_reopening_keeps_data_and_indexes)
{
    struct kvt t;
    kvt_open(&t);
    kvt_req(&t, "PUT", "/a/b", "value=1&ttl=100");
    kvt_req(&t, "POST", "/q", "value=j");
    kvt_req(&t, "PUT", "/a/b", "value=2&prevExist=false"); /* a failed write still applies */
    const char *before = kvt_req(&t, "GET", "/", "recursive=true");
    kv_store_close(t.s);
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/db", t.dir);
    struct kv_store_config cfg = { .dir = dir, .map_bytes = 1ull << 30 };
    ck_assert_int_eq(kv_store_open(&cfg, &t.s), 0);
    uint64_t applied, etcd;
    ck_assert_int_eq(kv_store_indexes(t.s, &applied, &etcd), 0);
    ck_assert_uint_eq(applied, 3);
    ck_assert_uint_eq(etcd, 2);
    ck_assert_str_eq(kvt_req(&t, "GET", "/", "recursive=true"), before);
    kvt_close(&t);
}
END_TEST

START_TEST(test_a_full_map_fails_the_batch_and_applies_nothing_of_it)
{
    char base[64];
    kvt_mkdtemp(base, sizeof(base));
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/db", base);
    struct kv_store_config cfg = { .dir = dir, .map_bytes = 1 << 20, .no_sync = true };
    struct kv_store *s;
    ck_assert_int_eq(kv_store_open(&cfg, &s), 0);
    static char value[100000];
    memset(value, 'v', sizeof(value));
    Kvpb__KvRequest r = KVPB__KV_REQUEST__INIT;
    r.method = KVPB__KV_METHOD__KV_METHOD_PUT;
    r.value.data = (uint8_t *)value;
    r.value.len = sizeof(value);
    char path[32];
    r.path.data = (uint8_t *)path;
    uint64_t idx = 0;
    int rc = 0;
    uint64_t last_good = 0;
    for (int i = 0; i < 64 && rc == 0; i++) {
        r.path.len = (size_t)snprintf(path, sizeof(path), "/k%d", i);
        const Kvpb__KvRequest *rp = &r;
        uint64_t ri = ++idx;
        struct kv_batch b;
        rc = kv_apply_requests(s, &rp, &ri, 1, &b);
        if (rc == 0) last_good = ri;
        kv_batch_free(&b);
    }
    ck_assert_int_eq(rc, K_ELIMIT);
    uint64_t applied, etcd;
    ck_assert_int_eq(kv_store_indexes(s, &applied, &etcd), 0);
    ck_assert_uint_eq(applied, last_good);
    ck_assert_uint_eq(etcd, last_good);
    struct kv_event *ev;
    struct kv_error err;
    ck_assert_int_eq(kv_get(s, "/", 1, false, false, 0, &ev, &err), 0);
    ck_assert_uint_eq(ev->node.node_count, last_good);
    kv_event_unref(ev);
    kv_store_close(s);
    kvt_rm_rf(base);
}
END_TEST

START_TEST(test_foreign_environments_and_bad_limits_are_refused)
{
    char base[64];
    kvt_mkdtemp(base, sizeof(base));
    kvt_raw_meta_put(base, "applied", 5); /* data, but no format record */
    struct kv_store_config cfg = { .dir = base, .map_bytes = 1ull << 30, .no_sync = true };
    struct kv_store *s = NULL;
    ck_assert_int_eq(kv_store_open(&cfg, &s), K_ECORRUPT);
    cfg.limits.key_bytes_max = KV_KEY_BYTES_MAX_LIMIT + 1;
    ck_assert_int_eq(kv_store_open(&cfg, &s), K_ECONFIG);
    ck_assert_ptr_null(s);
    kvt_rm_rf(base);
}
END_TEST

START_TEST(test_next_expiration_names_the_earliest_ttl)
{
    struct kvt t;
    kvt_open(&t);
    bool has;
    int64_t at;
    ck_assert_int_eq(kv_store_next_expiration(t.s, &has, &at), 0);
    ck_assert(!has);
    kvt_req(&t, "PUT", "/late", "value=1&ttl=50");
    kvt_req(&t, "PUT", "/soon", "value=1&ttl=5");
    kvt_req(&t, "PUT", "/never", "value=1");
    ck_assert_int_eq(kv_store_next_expiration(t.s, &has, &at), 0);
    ck_assert(has);
    ck_assert_int_eq(at, KVT_T0_NS + 5000000000LL);
    kvt_req(&t, "PUT", "/soon", "value=2&prevExist=true"); /* TTL removed */
    ck_assert_int_eq(kv_store_next_expiration(t.s, &has, &at), 0);
    ck_assert_int_eq(at, KVT_T0_NS + 50000000000LL);
    kvt_close(&t);
}
END_TEST

struct reader {
    struct kv_store *s;
    atomic_bool stop;
    int reads;
    int failures;
    uint64_t last_index;
    bool went_back;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    while (!atomic_load(&r->stop)) {
        struct kv_event *ev;
        struct kv_error err;
        int rc = kv_get(r->s, "/d1", 3, true, true, KVT_T0_NS, &ev, &err);
        if (rc == 0) {
            if (ev->index < r->last_index) r->went_back = true;
            r->last_index = ev->index;
            kv_event_unref(ev);
        } else if (rc != K_EV2 || err.ecode != KV_ECODE_KEY_NOT_FOUND) {
            r->failures++;
        }
        r->reads++;
    }
    return NULL;
}

START_TEST(test_reads_on_another_thread_see_consistent_growing_states_during_apply)
{
    /* The server reads (kv_get) on its loop thread while a worker applies: each read is one
     * consistent LMDB snapshot, and the index it reports never goes back. */
    struct kvt t;
    kvt_open(&t);
    struct kvt_workload w;
    kvt_workload_make(&w, 3000, 3);
    struct reader r = { .s = t.s };
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, reader_main, &r), 0);
    ck_assert_int_eq(kvt_workload_apply(t.s, &w, 0, w.n, 7, 0), 0);
    atomic_store(&r.stop, true);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_gt(r.reads, 0);
    ck_assert_int_eq(r.failures, 0);
    ck_assert(!r.went_back);
    kvt_workload_free(&w);
    kvt_close(&t);
}
END_TEST

Suite *test_kv_store_suite(void)
{
    Suite *s = suite_create("kv_store");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_reopening_keeps_data_and_indexes);
    tcase_add_test(tc, test_a_full_map_fails_the_batch_and_applies_nothing_of_it);
    tcase_add_test(tc, test_foreign_environments_and_bad_limits_are_refused);
    tcase_add_test(tc, test_next_expiration_names_the_earliest_ttl);
    tcase_add_test(tc, test_reads_on_another_thread_see_consistent_growing_states_during_apply);
    suite_add_tcase(s, tc);
    return s;
}
