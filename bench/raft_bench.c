/* raft-bench: proposals committed per second through a 3-member in-memory cluster (no I/O,
 * messages handed over as structs), 128-byte entries proposed in batches, and heap
 * allocations per committed entry, counted by wrapping malloc. A figure, not a test (CI does
 * not run it): use the Release build. Usage: raft-bench [entries] [batch] [entry_bytes] */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/prng.h"
#include "raft/raft.h"
#include "raft/storage_mem.h"

/* Counting allocator: glibc's own entry points do the work. */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
static uint64_t allocations;

void *malloc(size_t size)
{
    allocations++;
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    allocations++;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    allocations++;
    return __libc_realloc(p, size);
}

enum { MEMBERS = 3 };
static const uint64_t snapshot_every_entries = 16384;
static const uint64_t compact_keep_entries = 4096;

struct member {
    struct raft *r;
    struct raft_storage_mem *disk;
    struct k_prng prng;
    uint64_t applied;
    uint64_t checksum; /* keeps the apply loop from being optimized away */
};

static struct member members[MEMBERS + 1];

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall time, and the CPU time this process got: on a shared machine the second is the
 * steadier figure. */
static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

static double cpu_s(void)
{
    return clock_s(CLOCK_PROCESS_CPUTIME_ID);
}

/* Handles one Ready of m: persist, hand messages straight to the other members' cores
 * (they are not inside a Ready, so they may step), apply, advance. */
static int pump(struct member *m)
{
    struct raft_ready rd;
    if (!raft_ready(m->r, &rd)) return 0;
    if (rd.entries_n) {
        int rc = raft_storage_mem_append(m->disk, rd.entries, rd.entries_n);
        if (rc) abort();
    }
    if (rd.hard_state_changed) raft_storage_mem_set_hard_state(m->disk, &rd.hard_state);
    for (size_t i = 0; i < rd.messages_n; i++) {
        int rc = raft_step(members[rd.messages[i].to].r, &rd.messages[i]);
        if (rc != 0) abort();
    }
    for (size_t i = 0; i < rd.committed_n; i++) {
        const struct raft_entry *e = &rd.committed[i];
        if (e->data_len) m->checksum += e->data[0] + e->data[e->data_len - 1];
        m->applied = e->index;
    }
    raft_advance(m->r, &rd);
    /* Compact as a server does (etcd's --snapshot-count), or the benchmark measures page
     * faults of an ever-growing log instead of raft. After advance: compaction frees
     * entries the Ready pointed at. */
    struct raft_snapshot_meta snap;
    raft_storage_mem_snapshot_meta(m->disk, &snap);
    if (m->applied >= snap.index + snapshot_every_entries) {
        if (raft_storage_mem_create_snapshot(m->disk, m->applied, raft_conf(m->r)) != 0) abort();
        if (raft_storage_mem_compact(m->disk, m->applied - compact_keep_entries) != 0) abort();
    }
    return 1;
}

static void pump_all(void)
{
    for (int busy = 1; busy;) {
        busy = 0;
        for (int id = 1; id <= MEMBERS; id++)
            busy |= pump(&members[id]);
    }
}

int main(int argc, char **argv)
{
    uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 10) : 4000000;
    uint32_t batch = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 1024;
    size_t entry_bytes = argc > 3 ? strtoul(argv[3], NULL, 10) : 128;
    struct raft_conf_state cs = { .voters = { 1, 2, 3 }, .voters_n = 3 };
    for (int id = 1; id <= MEMBERS; id++) {
        struct member *m = &members[id];
        m->disk = raft_storage_mem_new();
        if (raft_storage_mem_bootstrap(m->disk, &cs) != 0) abort();
        k_prng_init(&m->prng, (uint64_t)id);
        struct raft_config c;
        raft_config_default(&c, (uint64_t)id);
        c.prng = &m->prng;
        c.storage = raft_storage_mem_storage(m->disk);
        c.append_entries_max = batch;
        c.committed_max = 4 * batch;
        c.uncommitted_max = 16 * batch;
        if (raft_new(&c, &m->r) != 0) abort();
    }
    raft_campaign(members[1].r);
    pump_all();
    if (raft_state(members[1].r) != RAFT_STATE_LEADER) abort();
    uint8_t *payload = malloc(entry_bytes);
    memset(payload, 'x', entry_bytes);
    struct raft *leader = members[1].r;

    /* Warm up (arenas and rings reach their steady size), then measure. */
    uint64_t proposed = 0;
    uint64_t warm = total / 10;
    uint64_t start_applied = 0;
    uint64_t start_allocs = 0;
    double t0 = 0;
    double c0 = 0;
    bool measuring = false;
    while (members[1].applied < raft_last_index(leader) || proposed < warm + total) {
        if (!measuring && proposed >= warm) {
            pump_all();
            measuring = true;
            start_applied = members[1].applied;
            start_allocs = allocations;
            t0 = now_s();
            c0 = cpu_s();
        }
        for (uint32_t i = 0; i < batch && proposed < warm + total; i++) {
            payload[0] = (uint8_t)proposed;
            int rc = raft_propose(leader, payload, entry_bytes);
            if (rc == K_ELIMIT) break; /* window of uncommitted entries is full: pump */
            if (rc != 0) abort();
            proposed++;
        }
        pump(&members[1]);
        pump(&members[2]);
        pump(&members[3]);
        pump(&members[1]);
    }
    pump_all();
    double secs = now_s() - t0;
    double cpu_secs = cpu_s() - c0;
    uint64_t committed = members[1].applied - start_applied;
    uint64_t allocs = allocations - start_allocs;
    if (members[2].applied != members[1].applied || members[3].applied != members[1].applied) {
        /* Followers learn the last commit with the next heartbeat; tick once. */
        raft_tick(leader);
        pump_all();
    }
    printf("raft-bench: %d members, %zu-byte entries, batches of %u\n", MEMBERS, entry_bytes,
           batch);
    printf("raft-bench: %" PRIu64 " entries committed in %.3f s: %.0f entries/s "
           "(%.3f s of CPU: %.0f entries per CPU second)\n",
           committed, secs, (double)committed / secs, cpu_secs, (double)committed / cpu_secs);
    printf("raft-bench: %" PRIu64 " heap allocations while measuring: %.5f per entry "
           "(core stats: leader %" PRIu64 ", storage %" PRIu64 ")\n",
           allocs, (double)allocs / (double)committed, raft_stats(leader)->allocations,
           raft_storage_mem_allocations(members[1].disk));
    printf("raft-bench: applied %" PRIu64 " %" PRIu64 " %" PRIu64 " (checksum %" PRIu64 ")\n",
           members[1].applied, members[2].applied, members[3].applied, members[1].checksum);
    for (int id = 1; id <= MEMBERS; id++) {
        raft_free(members[id].r);
        raft_storage_mem_free(members[id].disk);
    }
    free(payload);
    return 0;
}
