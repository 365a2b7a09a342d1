/* Crash safety (issue 5): a child process applies a workload with the production sync mode
 * (MDB_NOMETASYNC) and is killed with SIGKILL at an arbitrary moment, possibly inside a
 * commit. After reopening, the applied index must name exactly the entries whose effects the
 * store holds (its canonical dump equals a reference store that applied entries 1..applied),
 * and replaying the "WAL" from an earlier index must skip what was applied and converge on the
 * reference state. The parent never sleeps: it reads the child's progress from a pipe and kills
 * it right after the k-th commit (k from a seed), while the child runs on. */
#include <check.h>
#include <signal.h>
#include <sys/wait.h>

#include "kv_test_util.h"

Suite *test_kv_crash_suite(void);

enum { ENTRIES = 1500, BATCH = 15, ROUNDS = 16 };

static void child_run(const char *dir, const struct kvt_workload *w, int fd)
{
    struct kv_store_config cfg = { .dir = dir, .map_bytes = 1ull << 30 };
    struct kv_store *s;
    if (kv_store_open(&cfg, &s) != 0) _exit(2);
    for (size_t done = 0; done < w->n; done += BATCH) {
        if (kvt_workload_apply(s, w, done, done + BATCH, BATCH, 0) != 0) _exit(3);
        char c = 'c';
        if (write(fd, &c, 1) != 1) _exit(4);
    }
    kv_store_close(s);
    _exit(0);
}

static void crash_round(const struct kvt_workload *w, uint64_t seed)
{
    struct k_prng g;
    k_prng_init(&g, seed);
    size_t kill_after = 1 + (size_t)k_prng_below(&g, ENTRIES / BATCH - 1);
    char base[64];
    kvt_mkdtemp(base, sizeof(base));
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/db", base);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        child_run(dir, w, fds[1]);
    }
    close(fds[1]);
    size_t commits = 0;
    char c;
    while (commits < kill_after && read(fds[0], &c, 1) == 1)
        commits++;
    /* A seeded amount of busy work moves the kill point into the following batches, commits
     * (and their fdatasync) included; it bounds the wait without sleeping. */
    volatile uint64_t spin = 0;
    for (uint64_t i = k_prng_below(&g, 4000000); i > 0; i--)
        spin += i;
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    close(fds[0]);
    ck_assert(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0));

    struct kv_store_config cfg = { .dir = dir, .map_bytes = 1ull << 30 };
    struct kv_store *s;
    ck_assert_int_eq(kv_store_open(&cfg, &s), 0);
    uint64_t applied, etcd;
    ck_assert_int_eq(kv_store_indexes(s, &applied, &etcd), 0);
    ck_assert_uint_ge(applied, kill_after * BATCH); /* every commit the child reported */
    (void)spin;
    ck_assert_uint_eq(applied % BATCH, 0); /* batches are atomic */
    ck_assert_uint_le(applied, ENTRIES);
    if (getenv("KV_CRASH_DEBUG"))
        fprintf(stderr, "killed after %zu commits: applied %llu\n", kill_after,
                (unsigned long long)applied);

    /* The state is exactly that of entries 1..applied. */
    struct kvt ref;
    kvt_open(&ref);
    ck_assert_int_eq(kvt_workload_apply(ref.s, w, 0, applied, BATCH, 0), 0);
    struct k_buf want = kvt_dump(ref.s);
    struct k_buf got = kvt_dump(s);
    ck_assert_uint_eq(got.len, want.len);
    ck_assert(memcmp(got.data, want.data, got.len) == 0);
    k_buf_free(&got);
    k_buf_free(&want);

    /* Replay from an earlier point, as a WAL replay would: applied entries are skipped. */
    size_t from = applied >= 3 * BATCH ? applied - 3 * BATCH : 0;
    ck_assert_int_eq(kvt_workload_apply(s, w, from, ENTRIES, BATCH, 0), 0);
    ck_assert_int_eq(kvt_workload_apply(ref.s, w, applied, ENTRIES, BATCH, 0), 0);
    want = kvt_dump(ref.s);
    got = kvt_dump(s);
    ck_assert_uint_eq(got.len, want.len);
    ck_assert(memcmp(got.data, want.data, got.len) == 0);
    k_buf_free(&got);
    k_buf_free(&want);
    kvt_close(&ref);
    kv_store_close(s);
    kvt_rm_rf(base);
}

START_TEST(test_a_killed_apply_leaves_applied_index_and_data_in_agreement)
{
    struct kvt_workload w;
    kvt_workload_make(&w, ENTRIES, 31);
    for (uint64_t round = 0; round < ROUNDS; round++)
        crash_round(&w, 1000 + round);
    kvt_workload_free(&w);
}
END_TEST

Suite *test_kv_crash_suite(void)
{
    Suite *s = suite_create("kv_crash");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_a_killed_apply_leaves_applied_index_and_data_in_agreement);
    suite_add_tcase(s, tc);
    return s;
}
