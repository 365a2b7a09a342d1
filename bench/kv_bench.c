/* kv benchmark (issue 5; figures, not assertions): applies per second of `set` with 256-byte
 * values over 1,000,000 distinct keys in batches of 100 entries per write transaction, through
 * the encoded KvRequest path the server uses; bytes on disk per key (data file and compacted
 * snapshot); and a recursive GET of a dir with 10,000 children, with and without JSON.
 * Usage: kv_bench [dir] [keys] [--no-sync]   (dir is created; default /tmp/ketch-kv-bench) */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/err.h"
#include "kv/apply.h"
#include "kv/get.h"
#include "kv/json.h"
#include "kv/store.h"
#include "proto/kv.pb-c.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of this process (user + system): robust where wall time suffers from a shared
 * machine. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "kv_bench: %s: %s\n", what, k_strerror(rc));
    exit(1);
}

/* Applies count sets of 256-byte values to fmt-named keys (fmt takes i % 1000 and i; NULL for
 * keys in increasing order in one dir), batch entries per transaction. */
static double apply_sets(struct kv_store *s, uint64_t *raft_index, const char *fmt, uint64_t count,
                         size_t batch)
{
    char value[256];
    memset(value, 'v', sizeof(value));
    struct kv_entry *entries = k_xcalloc(batch, sizeof(*entries));
    uint8_t **bufs = k_xcalloc(batch, sizeof(*bufs));
    for (size_t i = 0; i < batch; i++)
        bufs[i] = k_xmalloc(1024);
    double t0 = now_s();
    for (uint64_t done = 0; done < count;) {
        size_t n = count - done < batch ? (size_t)(count - done) : batch;
        for (size_t i = 0; i < n; i++) {
            char path[64];
            int plen = fmt != NULL
                               ? snprintf(path, sizeof(path), fmt, (unsigned)((done + i) % 1000),
                                          (unsigned long long)(done + i))
                               : snprintf(path, sizeof(path), "/seq/k%09llu",
                                          (unsigned long long)(done + i));
            Kvpb__KvRequest r = KVPB__KV_REQUEST__INIT;
            r.id = *raft_index + 1;
            r.method = KVPB__KV_METHOD__KV_METHOD_PUT;
            r.path.data = (uint8_t *)path;
            r.path.len = (size_t)plen;
            r.value.data = (uint8_t *)value;
            r.value.len = sizeof(value);
            r.time_ns = 1800000000LL * 1000000000LL;
            entries[i].raft_index = ++*raft_index;
            entries[i].len = kvpb__kv_request__pack(&r, bufs[i]);
            entries[i].data = bufs[i];
        }
        struct kv_batch b;
        int rc = kv_apply_batch(s, entries, n, &b);
        if (rc < 0) die("apply", rc);
        kv_batch_free(&b);
        done += n;
    }
    double dt = now_s() - t0;
    for (size_t i = 0; i < batch; i++)
        free(bufs[i]);
    free(bufs);
    free(entries);
    return dt;
}

int main(int argc, char **argv)
{
    const char *base = argc > 1 ? argv[1] : "/tmp/ketch-kv-bench";
    uint64_t keys = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
    bool no_sync = argc > 3 && strcmp(argv[3], "--no-sync") == 0;
    nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    if (mkdir(base, 0700) < 0) die("mkdir", K_ECONFIG);
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/db", base);
    struct kv_store_config cfg = { .dir = dir, .no_sync = no_sync };
    struct kv_store *s;
    int rc = kv_store_open(&cfg, &s);
    if (rc < 0) die("open", rc);
    uint64_t raft_index = 0;

    double c0 = cpu_s();
    double dt = apply_sets(s, &raft_index, "/bench/d%03u/k%07llu", keys, 100);
    double cpu = cpu_s() - c0;
    printf("set 256 B x %llu distinct keys, 100 per txn (%s): %.2f s, %.0f applies/s "
           "(CPU %.2f s, %.2f us/apply)\n",
           (unsigned long long)keys, no_sync ? "MDB_NOSYNC" : "MDB_NOMETASYNC", dt,
           (double)keys / dt, cpu, cpu / (double)keys * 1e6);
    rc = kv_store_sync(s);
    if (rc < 0) die("sync", rc);
    uint64_t seq_keys = keys / 10;
    dt = apply_sets(s, &raft_index, NULL, seq_keys, 100);
    printf("  for comparison, %llu more keys in increasing order in one dir: %.0f applies/s\n",
           (unsigned long long)seq_keys, (double)seq_keys / dt);

    char path[600];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    struct stat st;
    if (stat(path, &st) < 0) die("stat", K_ECONFIG);
    printf("data.mdb: %lld bytes, %.1f bytes/key (allocated %.1f bytes/key)\n",
           (long long)st.st_size, (double)st.st_size / (double)(keys + seq_keys),
           (double)st.st_blocks * 512.0 / (double)(keys + seq_keys));
    snprintf(path, sizeof(path), "%s/snap", base);
    uint64_t applied, etcd;
    double t0 = now_s();
    rc = kv_store_snapshot(s, path, &applied, &etcd);
    if (rc < 0) die("snapshot", rc);
    double snap_s = now_s() - t0;
    if (stat(path, &st) < 0) die("stat", K_ECONFIG);
    printf("snapshot (compacted copy): %.2f s, %lld bytes, %.1f bytes/key\n", snap_s,
           (long long)st.st_size, (double)st.st_size / (double)(keys + seq_keys));

    dt = apply_sets(s, &raft_index, "/big/%03u%07llu", 10000, 100);
    enum { REPS = 20 };
    double get_s = 0;
    double json_s = 0;
    size_t json_bytes = 0;
    for (int i = 0; i < REPS; i++) {
        struct kv_event *ev;
        struct kv_error err;
        t0 = now_s();
        rc = kv_get(s, "/big", 4, true, true, 0, &ev, &err);
        if (rc < 0) die("get", rc);
        double t1 = now_s();
        struct k_buf b = { 0 };
        kv_json_event(ev, false, &b);
        json_s += now_s() - t1;
        get_s += t1 - t0;
        json_bytes = b.len;
        if (ev->node.node_count != 10000) die("get count", K_ECORRUPT);
        k_buf_free(&b);
        kv_event_unref(ev);
    }
    printf("recursive GET of a dir with 10,000 children: %.2f ms read + %.2f ms JSON "
           "(%zu bytes)\n",
           get_s / REPS * 1e3, json_s / REPS * 1e3, json_bytes);
    kv_store_close(s);
    nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
