/* Snapshot files: what is written comes back (metadata and data, streamed), the newest
 * wins, a flipped byte anywhere is refused naming the file, leftovers are cleaned. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fsutil.h"
#include "base/prng.h"
#include "raft/snap.h"

Suite *test_snap_files_suite(void);

static char dir[256];
static char err[512];
enum { DATA_BYTES = 3 * 1024 * 1024 + 17 };
static uint8_t *data;

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ketch-snap-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    data = malloc(DATA_BYTES);
    struct k_prng p;
    k_prng_init(&p, 99);
    for (size_t i = 0; i < DATA_BYTES; i++)
        data[i] = (uint8_t)k_prng_next(&p);
}

static void teardown(void)
{
    free(data);
    ck_assert_int_eq(k_remove_tree(dir), 0);
}

static void write_snapshot(uint64_t index, uint64_t term, char *path, size_t path_len)
{
    struct raft_snapshot_meta meta;
    memset(&meta, 0, sizeof(meta));
    meta.index = index;
    meta.term = term;
    meta.conf.voters[0] = 11;
    meta.conf.voters[1] = 22;
    meta.conf.voters_n = 2;
    meta.conf.learners[0] = 33;
    meta.conf.learners_n = 1;
    struct raft_snap_writer *w;
    ck_assert_int_eq(raft_snap_begin(dir, &meta, &w), 0);
    /* Half through the API, half straight to the descriptor as LMDB's copy does. */
    size_t half = DATA_BYTES / 2;
    for (size_t off = 0; off < half; off += 65536) {
        size_t n = half - off < 65536 ? half - off : 65536;
        ck_assert_int_eq(raft_snap_write(w, data + off, n), 0);
    }
    ck_assert_int_eq(write(raft_snap_writer_fd(w), data + half, DATA_BYTES - half),
                     DATA_BYTES - half);
    ck_assert_int_eq(raft_snap_finish(w, path, path_len), 0);
}

START_TEST(test_snap_round_trips_metadata_and_data)
{
    char path[4096];
    write_snapshot(500, 3, path, sizeof(path));
    struct raft_snap_info info;
    ck_assert_int_eq(raft_snap_load_newest(dir, &info, err, sizeof(err)), 0);
    ck_assert_str_eq(info.path, path);
    ck_assert_uint_eq(info.meta.index, 500);
    ck_assert_uint_eq(info.meta.term, 3);
    ck_assert_uint_eq(info.meta.conf.voters_n, 2);
    ck_assert_uint_eq(info.meta.conf.voters[1], 22);
    ck_assert_uint_eq(info.meta.conf.learners_n, 1);
    ck_assert_uint_eq(info.meta.conf.learners[0], 33);
    ck_assert_uint_eq(info.data_len, DATA_BYTES);
    char out[512];
    snprintf(out, sizeof(out), "%s/extracted", dir);
    ck_assert_int_eq(raft_snap_extract(&info, out), 0);
    int fd = open(out, O_RDONLY);
    uint8_t *back = malloc(DATA_BYTES + 1);
    ck_assert_int_eq(read(fd, back, DATA_BYTES + 1), DATA_BYTES);
    close(fd);
    ck_assert(memcmp(back, data, DATA_BYTES) == 0);
    free(back);
}
END_TEST

START_TEST(test_snap_newest_wins_and_purge_keeps_the_newest)
{
    char path[4096];
    write_snapshot(100, 1, path, sizeof(path));
    write_snapshot(300, 2, path, sizeof(path));
    write_snapshot(200, 2, path, sizeof(path));
    struct raft_snap_info info;
    ck_assert_int_eq(raft_snap_load_newest(dir, &info, err, sizeof(err)), 0);
    ck_assert_uint_eq(info.meta.index, 300);
    ck_assert_int_eq(raft_snap_purge(dir, 1), 2);
    ck_assert_int_eq(raft_snap_load_newest(dir, &info, err, sizeof(err)), 0);
    ck_assert_uint_eq(info.meta.index, 300);
    ck_assert_int_eq(raft_snap_purge(dir, 1), 0);
}
END_TEST

START_TEST(test_snap_flipped_byte_anywhere_is_refused_with_the_file_named)
{
    char path[4096];
    write_snapshot(100, 1, path, sizeof(path));
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    uint64_t offsets[] = { 3, 44, 50, 4096, (uint64_t)st.st_size / 2, (uint64_t)st.st_size - 5 };
    for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
        int fd = open(path, O_RDWR);
        uint8_t b;
        ck_assert_int_eq(pread(fd, &b, 1, (off_t)offsets[i]), 1);
        b ^= 1;
        ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)offsets[i]), 1);
        struct raft_snap_info info;
        ck_assert_int_eq(raft_snap_load_newest(dir, &info, err, sizeof(err)), K_ECORRUPT);
        ck_assert_ptr_nonnull(strstr(err, path));
        b ^= 1;
        ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)offsets[i]), 1);
        close(fd);
        ck_assert_int_eq(raft_snap_load_newest(dir, &info, err, sizeof(err)), 0);
    }
    ck_assert_int_eq(truncate(path, st.st_size - 1), 0);
    struct raft_snap_info info;
    ck_assert_int_eq(raft_snap_load_newest(dir, &info, err, sizeof(err)), K_ECORRUPT);
}
END_TEST

START_TEST(test_snap_none_is_not_found_and_interrupted_writes_are_removed)
{
    struct raft_snap_info info;
    ck_assert_int_eq(raft_snap_load_newest(dir, &info, err, sizeof(err)), K_ENOTFOUND);
    /* A crash inside raft_snap_begin..finish leaves only the .tmp file behind: it must not
     * count, and it is cleaned up. */
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s/0000000000000001-0000000000000009.snap.tmp", dir);
    int fd = open(tmp, O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "KETCHSNP", 8), 8);
    close(fd);
    ck_assert_int_eq(raft_snap_load_newest(dir, &info, err, sizeof(err)), K_ENOTFOUND);
    ck_assert_int_eq(access(tmp, F_OK), -1);
}
END_TEST

Suite *test_snap_files_suite(void)
{
    Suite *s = suite_create("snap_files");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_snap_round_trips_metadata_and_data);
    tcase_add_test(tc, test_snap_newest_wins_and_purge_keeps_the_newest);
    tcase_add_test(tc, test_snap_flipped_byte_anywhere_is_refused_with_the_file_named);
    tcase_add_test(tc, test_snap_none_is_not_found_and_interrupted_writes_are_removed);
    suite_add_tcase(s, tc);
    return s;
}
