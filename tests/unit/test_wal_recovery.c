/* The WAL gives back exactly what was written, repairs a torn tail, and refuses damaged
 * synced data with the file and offset (raft/wal.h, "Crash recovery"). */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fsutil.h"
#include "raft/wal.h"

Suite *test_wal_recovery_suite(void);

static char dir[256];
static char err[512];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ketch-wal-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    ck_assert_int_eq(k_remove_tree(dir), 0);
}

/* Entry i carries "entry-<i>-<term>" so a mixed-up entry shows. */
static void make_entry(struct raft_entry *e, char *buf, uint64_t index, uint64_t term)
{
    int n = snprintf(buf, 64, "entry-%llu-%llu", (unsigned long long)index,
                     (unsigned long long)term);
    e->index = index;
    e->term = term;
    e->type = RAFT_ENTRY_NORMAL;
    e->data = (const uint8_t *)buf;
    e->data_len = (size_t)n;
}

static void write_range(struct raft_wal *w, uint64_t from, uint64_t to, uint64_t term)
{
    struct raft_entry es[64];
    char bufs[64][64];
    size_t n = 0;
    for (uint64_t i = from; i <= to; i++) {
        make_entry(&es[n], bufs[n], i, term);
        n++;
        if (n == 64 || i == to) {
            struct raft_hard_state hs = { .term = term, .vote = 1, .commit = es[n - 1].index };
            ck_assert_int_eq(raft_wal_write(w, es, n, &hs), 0);
            n = 0;
        }
    }
}

static void check_entries(const struct raft_wal_recovery *rec, uint64_t from, uint64_t to,
                          uint64_t (*term_of)(uint64_t))
{
    ck_assert_uint_eq(rec->entries_n, to - from + 1);
    for (uint64_t i = from; i <= to; i++) {
        const struct raft_entry *e = &rec->entries[i - from];
        char want[64];
        snprintf(want, sizeof(want), "entry-%llu-%llu", (unsigned long long)i,
                 (unsigned long long)term_of(i));
        ck_assert_uint_eq(e->index, i);
        ck_assert_uint_eq(e->term, term_of(i));
        ck_assert_uint_eq(e->data_len, strlen(want));
        ck_assert(memcmp(e->data, want, e->data_len) == 0);
    }
}

static uint64_t term_one(uint64_t i)
{
    (void)i;
    return 1;
}

static struct raft_wal *open_ok(uint64_t snap, struct raft_wal_recovery *rec, uint64_t seg)
{
    struct raft_wal *w = NULL;
    struct raft_wal_options o = { .segment_bytes = seg };
    int rc = raft_wal_open(dir, &o, snap, &w, rec, err, sizeof(err));
    ck_assert_msg(rc == 0, "open failed: %s (%s)", k_strerror(rc), err);
    return w;
}

/* Path of the single (or first) segment file. */
static void first_segment(char *out, size_t len)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "ls %s/*.wal | head -1", dir);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(fgets(out, (int)len, p));
    out[strcspn(out, "\n")] = '\0';
    pclose(p);
}

static uint64_t written_bytes(const char *path)
{
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    uint8_t *buf = malloc((size_t)st.st_size);
    ck_assert_int_eq(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    uint64_t end = (uint64_t)st.st_size;
    while (end > 0 && buf[end - 1] == 0)
        end--;
    free(buf);
    return end;
}

static void flip_byte(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    uint8_t b;
    ck_assert_int_eq(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x5A;
    ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

START_TEST(test_wal_returns_entries_and_hard_state_written)
{
    struct raft_wal_recovery rec;
    struct raft_wal *w = open_ok(0, &rec, 0);
    ck_assert_uint_eq(rec.entries_n, 0);
    raft_wal_recovery_free(&rec);
    write_range(w, 1, 300, 1);
    struct raft_hard_state hs = { .term = 3, .vote = 7, .commit = 250 };
    ck_assert_int_eq(raft_wal_write(w, NULL, 0, &hs), 0);
    ck_assert_int_eq(raft_wal_close(w), 0);

    w = open_ok(0, &rec, 0);
    check_entries(&rec, 1, 300, term_one);
    ck_assert_uint_eq(rec.hard_state.term, 3);
    ck_assert_uint_eq(rec.hard_state.vote, 7);
    ck_assert_uint_eq(rec.hard_state.commit, 250);
    ck_assert_uint_eq(rec.torn_bytes, 0);
    raft_wal_recovery_free(&rec);
    ck_assert_int_eq(raft_wal_close(w), 0);
}
END_TEST

static uint64_t term_conflict(uint64_t i)
{
    return i <= 5 ? 1 : 2;
}

START_TEST(test_wal_later_entry_replaces_conflicting_suffix)
{
    struct raft_wal_recovery rec;
    struct raft_wal *w = open_ok(0, &rec, 0);
    raft_wal_recovery_free(&rec);
    write_range(w, 1, 10, 1);
    write_range(w, 6, 8, 2); /* Raft §5.3: a new leader overwrote 6..10 */
    ck_assert_int_eq(raft_wal_close(w), 0);
    w = open_ok(0, &rec, 0);
    check_entries(&rec, 1, 8, term_conflict);
    raft_wal_recovery_free(&rec);
    ck_assert_int_eq(raft_wal_close(w), 0);
}
END_TEST

START_TEST(test_wal_truncates_torn_tail_and_keeps_prefix)
{
    struct raft_wal_recovery rec;
    struct raft_wal *w = open_ok(0, &rec, 0);
    raft_wal_recovery_free(&rec);
    write_range(w, 1, 64, 1);  /* one batch */
    write_range(w, 65, 70, 1); /* the last batch: its tail gets torn */
    ck_assert_int_eq(raft_wal_close(w), 0);
    char path[400];
    first_segment(path, sizeof(path));
    uint64_t end = written_bytes(path);
    /* The last page never reached the disk: the batch's final record (its hard state) is
     * cut short. Its entries survive; the hard state is the previous batch's. */
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    static const uint8_t zeros[10];
    ck_assert_int_eq(pwrite(fd, zeros, sizeof(zeros), (off_t)(end - sizeof(zeros))), 10);
    close(fd);

    w = open_ok(0, &rec, 0);
    check_entries(&rec, 1, 70, term_one);
    ck_assert_uint_eq(rec.hard_state.commit, 64);
    ck_assert_uint_gt(rec.torn_bytes, 0);
    raft_wal_recovery_free(&rec);
    write_range(w, 71, 80, 1); /* appending after the repair works */
    ck_assert_int_eq(raft_wal_close(w), 0);
    w = open_ok(0, &rec, 0);
    check_entries(&rec, 1, 80, term_one);
    ck_assert_uint_eq(rec.torn_bytes, 0);
    raft_wal_recovery_free(&rec);
    ck_assert_int_eq(raft_wal_close(w), 0);
}
END_TEST

START_TEST(test_wal_drops_torn_batch_even_if_later_records_of_it_survived)
{
    /* Pages of the unsynced batch can reach the disk in any order: the first record lost,
     * later ones present. Still a torn tail, since no later batch exists. */
    struct raft_wal_recovery rec;
    struct raft_wal *w = open_ok(0, &rec, 0);
    raft_wal_recovery_free(&rec);
    write_range(w, 1, 10, 1);
    char path[400];
    first_segment(path, sizeof(path));
    uint64_t before = written_bytes(path);
    write_range(w, 11, 20, 1);
    ck_assert_int_eq(raft_wal_close(w), 0);
    flip_byte(path, before + 20); /* first record of the last batch */
    w = open_ok(0, &rec, 0);
    check_entries(&rec, 1, 10, term_one);
    raft_wal_recovery_free(&rec);
    ck_assert_int_eq(raft_wal_close(w), 0);
}
END_TEST

START_TEST(test_wal_flipped_byte_in_synced_data_refuses_to_open)
{
    struct raft_wal_recovery rec;
    struct raft_wal *w = open_ok(0, &rec, 0);
    raft_wal_recovery_free(&rec);
    write_range(w, 1, 200, 1);
    ck_assert_int_eq(raft_wal_close(w), 0);
    char path[400];
    first_segment(path, sizeof(path));
    flip_byte(path, 1000); /* an early batch: later batches prove it was synced */
    w = NULL;
    int rc = raft_wal_open(dir, NULL, 0, &w, &rec, err, sizeof(err));
    ck_assert_int_eq(rc, K_ECORRUPT);
    ck_assert_ptr_null(w);
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_ptr_nonnull(strstr(err, "offset"));
}
END_TEST

START_TEST(test_wal_rolls_segments_and_releases_those_behind_a_snapshot)
{
    struct raft_wal_recovery rec;
    struct raft_wal *w = open_ok(0, &rec, 16 * 1024);
    raft_wal_recovery_free(&rec);
    write_range(w, 1, 2000, 1);
    struct raft_wal_stats st;
    raft_wal_stats(w, &st);
    ck_assert_uint_gt(st.segments, 3);
    ck_assert_int_eq(raft_wal_close(w), 0);

    w = open_ok(0, &rec, 16 * 1024);
    check_entries(&rec, 1, 2000, term_one);
    raft_wal_recovery_free(&rec);
    ck_assert_int_eq(raft_wal_mark_snapshot(w, 1500, 1), 0);
    int dropped = raft_wal_release(w, 1500);
    ck_assert_int_gt(dropped, 0);
    raft_wal_stats(w, &st);
    uint64_t left = st.segments;
    write_range(w, 2001, 2010, 1);
    ck_assert_int_eq(raft_wal_close(w), 0);

    w = open_ok(1500, &rec, 16 * 1024);
    ck_assert_uint_eq(rec.snapshot_index, 1500);
    ck_assert_uint_eq(rec.entries[0].index, 1501);
    ck_assert_uint_eq(rec.entries_n, 510);
    ck_assert_uint_eq(rec.hard_state.commit, 2010);
    raft_wal_stats(w, &st);
    ck_assert_uint_eq(st.segments, left);
    raft_wal_recovery_free(&rec);
    ck_assert_int_eq(raft_wal_close(w), 0);
}
END_TEST

/* A follower that fell behind installs the leader's snapshot at 100 while its log ends at 20;
 * its log then goes on at 101. */
START_TEST(test_wal_entries_may_follow_a_snapshot_marker_ahead_of_the_log)
{
    struct raft_wal_recovery rec;
    struct raft_wal *w = open_ok(0, &rec, 0);
    raft_wal_recovery_free(&rec);
    write_range(w, 1, 20, 1);
    ck_assert_int_eq(raft_wal_mark_snapshot(w, 100, 1), 0);
    write_range(w, 101, 110, 1);
    ck_assert_int_eq(raft_wal_close(w), 0);
    w = open_ok(100, &rec, 0);
    check_entries(&rec, 101, 110, term_one);
    raft_wal_recovery_free(&rec);
    ck_assert_int_eq(raft_wal_close(w), 0);
}
END_TEST

/* Regression (bench/compare, a restart after kill -9): each segment opens with the latest
 * snapshot marker, which lies behind its first entry; once older segments are released,
 * recovery starts at such a marker and must not take the distance to the first entry for
 * a gap. */
START_TEST(test_wal_first_segment_opening_marker_behind_its_entries_recovers)
{
    struct raft_wal_recovery rec;
    struct raft_wal *w = open_ok(0, &rec, 16 * 1024);
    raft_wal_recovery_free(&rec);
    write_range(w, 1, 500, 1);
    ck_assert_int_eq(raft_wal_mark_snapshot(w, 300, 1), 0);
    write_range(w, 501, 2000, 1); /* new segments open with marker 300 */
    ck_assert_int_eq(raft_wal_mark_snapshot(w, 1500, 1), 0);
    ck_assert_int_gt(raft_wal_release(w, 1500), 0);
    ck_assert_int_eq(raft_wal_close(w), 0);
    w = open_ok(1500, &rec, 16 * 1024);
    check_entries(&rec, 1501, 2000, term_one);
    raft_wal_recovery_free(&rec);
    ck_assert_int_eq(raft_wal_close(w), 0);
}
END_TEST

START_TEST(test_wal_marker_newer_than_snapshot_file_is_refused)
{
    struct raft_wal_recovery rec;
    struct raft_wal *w = open_ok(0, &rec, 0);
    raft_wal_recovery_free(&rec);
    write_range(w, 1, 20, 1);
    ck_assert_int_eq(raft_wal_mark_snapshot(w, 15, 1), 0);
    ck_assert_int_eq(raft_wal_close(w), 0);
    w = NULL;
    ck_assert_int_eq(raft_wal_open(dir, NULL, 10, &w, &rec, err, sizeof(err)), K_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(err, "snapshot"));
}
END_TEST

START_TEST(test_wal_missing_middle_segment_is_refused)
{
    struct raft_wal_recovery rec;
    struct raft_wal *w = open_ok(0, &rec, 16 * 1024);
    raft_wal_recovery_free(&rec);
    write_range(w, 1, 2000, 1);
    ck_assert_int_eq(raft_wal_close(w), 0);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm %s/0000000000000002-*.wal", dir);
    ck_assert_int_eq(system(cmd), 0);
    w = NULL;
    ck_assert_int_eq(raft_wal_open(dir, NULL, 0, &w, &rec, err, sizeof(err)), K_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(err, "missing segment"));
}
END_TEST

START_TEST(test_wal_removes_segment_whose_creation_was_torn)
{
    struct raft_wal_recovery rec;
    struct raft_wal *w = open_ok(0, &rec, 0);
    raft_wal_recovery_free(&rec);
    write_range(w, 1, 30, 1);
    ck_assert_int_eq(raft_wal_close(w), 0);
    char path[400];
    snprintf(path, sizeof(path), "%s/0000000000000002-000000000000001f.wal", dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, 4096), 0); /* preallocated, nothing written */
    close(fd);
    w = open_ok(0, &rec, 0);
    check_entries(&rec, 1, 30, term_one);
    raft_wal_recovery_free(&rec);
    write_range(w, 31, 40, 1);
    ck_assert_int_eq(raft_wal_close(w), 0);
    w = open_ok(0, &rec, 0);
    check_entries(&rec, 1, 40, term_one);
    raft_wal_recovery_free(&rec);
    ck_assert_int_eq(raft_wal_close(w), 0);
}
END_TEST

START_TEST(test_wal_defers_commit_only_hard_state_until_next_batch_or_close)
{
    struct raft_wal_recovery rec;
    struct raft_wal *w = open_ok(0, &rec, 0);
    raft_wal_recovery_free(&rec);
    write_range(w, 1, 10, 1); /* hard state {1, 1, 10} */
    struct raft_wal_stats before;
    raft_wal_stats(w, &before);
    struct raft_hard_state hs = { .term = 1, .vote = 1, .commit = 12 };
    ck_assert_int_eq(raft_wal_write(w, NULL, 0, &hs), 0);
    struct raft_wal_stats after;
    raft_wal_stats(w, &after);
    ck_assert_uint_eq(after.batches, before.batches); /* no fsync for a commit bump */
    /* A crash now loses the bump: simulate by reopening the directory from a copy. */
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "cp -r %s %s.crash", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(raft_wal_close(w), 0); /* a clean close writes it */
    w = open_ok(0, &rec, 0);
    ck_assert_uint_eq(rec.hard_state.commit, 12);
    raft_wal_recovery_free(&rec);
    ck_assert_int_eq(raft_wal_close(w), 0);
    char crashed[300];
    snprintf(crashed, sizeof(crashed), "%s.crash", dir);
    struct raft_wal *w2 = NULL;
    ck_assert_int_eq(raft_wal_open(crashed, NULL, 0, &w2, &rec, err, sizeof(err)), 0);
    ck_assert_uint_eq(rec.hard_state.commit, 10);
    ck_assert_uint_eq(rec.entries_n, 10);
    raft_wal_recovery_free(&rec);
    ck_assert_int_eq(raft_wal_close(w2), 0);
    ck_assert_int_eq(k_remove_tree(crashed), 0);
}
END_TEST

Suite *test_wal_recovery_suite(void)
{
    Suite *s = suite_create("wal_recovery");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_wal_returns_entries_and_hard_state_written);
    tcase_add_test(tc, test_wal_later_entry_replaces_conflicting_suffix);
    tcase_add_test(tc, test_wal_truncates_torn_tail_and_keeps_prefix);
    tcase_add_test(tc, test_wal_drops_torn_batch_even_if_later_records_of_it_survived);
    tcase_add_test(tc, test_wal_flipped_byte_in_synced_data_refuses_to_open);
    tcase_add_test(tc, test_wal_rolls_segments_and_releases_those_behind_a_snapshot);
    tcase_add_test(tc, test_wal_marker_newer_than_snapshot_file_is_refused);
    tcase_add_test(tc, test_wal_entries_may_follow_a_snapshot_marker_ahead_of_the_log);
    tcase_add_test(tc, test_wal_first_segment_opening_marker_behind_its_entries_recovers);
    tcase_add_test(tc, test_wal_missing_middle_segment_is_refused);
    tcase_add_test(tc, test_wal_removes_segment_whose_creation_was_torn);
    tcase_add_test(tc, test_wal_defers_commit_only_hard_state_until_next_batch_or_close);
    suite_add_tcase(s, tc);
    return s;
}
