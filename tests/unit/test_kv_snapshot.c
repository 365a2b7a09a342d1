/* Snapshots (issue 5): two stores fed the same entries give byte-identical compacted copies,
 * and a copy restores into a store that reads, answers and continues exactly like the
 * original. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "base/crc32c.h"
#include "base/prng.h"
#include "kv_test_util.h"

Suite *test_kv_snapshot_suite(void);

enum { ENTRIES = 3000 };

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    struct stat st;
    ck_assert_int_eq(fstat(fileno(f), &st), 0);
    char *buf = k_xmalloc((size_t)st.st_size + 1);
    ck_assert_uint_eq(fread(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size);
    fclose(f);
    *len = (size_t)st.st_size;
    return buf;
}

static char *snapshot_bytes(struct kvt *t, size_t *len, uint64_t *applied)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/snap", t->dir);
    uint64_t etcd;
    ck_assert_int_eq(kv_store_snapshot(t->s, path, applied, &etcd), 0);
    char *bytes = slurp(path, len);
    ck_assert_int_eq(unlink(path), 0);
    return bytes;
}

START_TEST(test_same_entries_give_byte_identical_snapshots)
{
    struct kvt_workload w;
    kvt_workload_make(&w, ENTRIES, 5);
    struct kvt a;
    struct kvt b;
    struct kvt c;
    kvt_open(&a);
    kvt_open(&b);
    kvt_open(&c);
    ck_assert_int_eq(kvt_workload_apply(a.s, &w, 0, ENTRIES, 10, 0), 0);
    ck_assert_int_eq(kvt_workload_apply(b.s, &w, 0, ENTRIES, 10, 0), 0);
    ck_assert_int_eq(kvt_workload_apply(c.s, &w, 0, ENTRIES, 0, 77),
                     0); /* same entries, other batch boundaries */
    size_t la, lb, lc;
    uint64_t ia, ib, ic;
    char *sa = snapshot_bytes(&a, &la, &ia);
    char *sb = snapshot_bytes(&b, &lb, &ib);
    char *sc = snapshot_bytes(&c, &lc, &ic);
    ck_assert_uint_eq(ia, ENTRIES);
    ck_assert_uint_eq(ib, ENTRIES);
    ck_assert_uint_eq(ic, ENTRIES);
    ck_assert_uint_eq(la, lb);
    ck_assert(memcmp(sa, sb, la) == 0);
    /* Other batch boundaries: same logical state (canonical dump), LMDB bytes may differ. */
    struct k_buf da = { 0 };
    struct k_buf dc = { 0 };
    ck_assert_int_eq(kv_store_dump(a.s, kvt__dump_cb, &da), 0);
    ck_assert_int_eq(kv_store_dump(c.s, kvt__dump_cb, &dc), 0);
    ck_assert_uint_gt(da.len, 10000);
    ck_assert_uint_eq(da.len, dc.len);
    ck_assert(memcmp(da.data, dc.data, da.len) == 0);
    uint32_t crc_a;
    uint32_t crc_c;
    ck_assert_int_eq(kv_store_digest(a.s, &crc_a), 0);
    ck_assert_int_eq(kv_store_digest(c.s, &crc_c), 0);
    ck_assert_uint_eq(crc_a, crc_c);
    ck_assert_uint_eq(crc_a, k_crc32c(0, da.data, da.len));
    k_buf_free(&da);
    k_buf_free(&dc);
    free(sa);
    free(sb);
    free(sc);
    kvt_close(&a);
    kvt_close(&b);
    kvt_close(&c);
    kvt_workload_free(&w);
}
END_TEST

START_TEST(test_a_restored_snapshot_reads_and_continues_like_the_original)
{
    struct kvt_workload w;
    kvt_workload_make(&w, ENTRIES, 9);
    struct kvt a;
    kvt_open(&a);
    kv_watch_hub_free(a.hub); /* the workload is not published: no hub */
    a.hub = NULL;
    ck_assert_int_eq(kvt_workload_apply(a.s, &w, 0, ENTRIES, 25, 0), 0);
    a.raft_index = ENTRIES;
    char snap[128];
    snprintf(snap, sizeof(snap), "%s/snap", a.dir);
    uint64_t applied, etcd;
    ck_assert_int_eq(kv_store_snapshot(a.s, snap, &applied, &etcd), 0);
    ck_assert_uint_eq(applied, ENTRIES);
    /* A second snapshot to an existing path fails and leaves the first alone. */
    ck_assert_int_eq(kv_store_snapshot(a.s, snap, &applied, &etcd), -EEXIST);

    struct kvt r;
    kvt_open(&r);
    kv_watch_hub_free(r.hub);
    r.hub = NULL;
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/db", r.dir);
    kv_store_close(r.s);
    struct kv_store_config cfg = { .dir = dir, .map_bytes = 1ull << 30, .no_sync = true };
    ck_assert_int_eq(kv_store_restore(&cfg, snap, &r.s), 0);
    uint64_t r_applied, r_etcd;
    ck_assert_int_eq(kv_store_indexes(r.s, &r_applied, &r_etcd), 0);
    ck_assert_uint_eq(r_applied, applied);
    ck_assert_uint_eq(r_etcd, etcd);
    struct k_buf da = { 0 };
    struct k_buf dr = { 0 };
    ck_assert_int_eq(kv_store_dump(a.s, kvt__dump_cb, &da), 0);
    ck_assert_int_eq(kv_store_dump(r.s, kvt__dump_cb, &dr), 0);
    ck_assert_uint_eq(da.len, dr.len);
    ck_assert(memcmp(da.data, dr.data, da.len) == 0);
    k_buf_free(&da);
    k_buf_free(&dr);
    r.raft_index = a.raft_index;
    r.now_ns = a.now_ns = w.reqs[ENTRIES - 1].time_ns;
    ck_assert_str_eq(kvt_req(&r, "GET", "/", "recursive=true"),
                     kvt_req(&a, "GET", "/", "recursive=true"));
    /* Both continue identically. */
    ck_assert_str_eq(kvt_req(&r, "POST", "/d1", "value=after"),
                     kvt_req(&a, "POST", "/d1", "value=after"));
    a.now_ns += 10ll * 1000000000;
    r.now_ns = a.now_ns;
    ck_assert_str_eq(kvt_sync(&r), kvt_sync(&a));
    ck_assert_str_eq(kvt_req(&r, "GET", "/", "recursive=true"),
                     kvt_req(&a, "GET", "/", "recursive=true"));
    kvt_close(&a);
    kvt_close(&r);
    kvt_workload_free(&w);
}
END_TEST

START_TEST(test_restore_refuses_a_file_that_is_not_a_store)
{
    struct kvt t;
    kvt_open(&t);
    char junk[128];
    snprintf(junk, sizeof(junk), "%s/junk", t.dir);
    FILE *f = fopen(junk, "wb");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 10000; i++)
        fputc(i & 0xff, f);
    fclose(f);
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/other", t.dir);
    struct kv_store_config cfg = { .dir = dir, .no_sync = true };
    struct kv_store *s = NULL;
    ck_assert_int_eq(kv_store_restore(&cfg, junk, &s), K_ECORRUPT);
    ck_assert_ptr_null(s);
    kvt_close(&t);
}
END_TEST

Suite *test_kv_snapshot_suite(void)
{
    Suite *s = suite_create("kv_snapshot");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_same_entries_give_byte_identical_snapshots);
    tcase_add_test(tc, test_a_restored_snapshot_reads_and_continues_like_the_original);
    tcase_add_test(tc, test_restore_refuses_a_file_that_is_not_a_store);
    suite_add_tcase(s, tc);
    return s;
}
