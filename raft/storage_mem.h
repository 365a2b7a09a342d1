/* An in-memory raft log: the struct raft_storage the core reads, plus the calls a driver
 * makes to append, compact and install snapshots. Used by tests and the simulator, and by
 * ketchd as the cache in front of its WAL (as etcd keeps MemoryStorage). Entries live in
 * fixed chunks, each with its own byte arena, so appends never move existing entries (the
 * Ready contract needs that) and the steady state allocates once per chunk, not per entry. */
#ifndef KETCH_RAFT_STORAGE_MEM_H
#define KETCH_RAFT_STORAGE_MEM_H

#include "raft/raft.h"

struct raft_storage_mem;

/* Creates an empty log (no entries, no snapshot, zero hard state); free with
 * raft_storage_mem_free(). */
struct raft_storage_mem *raft_storage_mem_new(void);
void raft_storage_mem_free(struct raft_storage_mem *s); /* NULL is a no-op */

/* The view the core reads; owned by s, valid until s is freed. */
const struct raft_storage *raft_storage_mem_storage(struct raft_storage_mem *s);

/* Starts a new cluster: an initial snapshot at index 1, term 1, with configuration cs, and
 * hard state {term 1, commit 1}. A member joining later starts empty instead and receives
 * a snapshot from the leader (its first index is 2, so it always needs one). Returns 0 or
 * K_ECONFIG if s is not empty. */
K_MUST_USE int raft_storage_mem_bootstrap(struct raft_storage_mem *s,
                                          const struct raft_conf_state *cs);

void raft_storage_mem_set_hard_state(struct raft_storage_mem *s, const struct raft_hard_state *hs);
void raft_storage_mem_hard_state(const struct raft_storage_mem *s, struct raft_hard_state *hs);

/* Appends n entries (bytes copied), replacing any at >= ents[0].index; entries at or below
 * the compaction point are skipped. Returns 0, or K_EUNAVAILABLE if ents[0].index leaves a
 * gap after the last entry. */
K_MUST_USE int raft_storage_mem_append(struct raft_storage_mem *s, const struct raft_entry *ents,
                                       size_t n);

/* Replaces the whole log with a snapshot (a follower installing one). Returns 0 or
 * K_ECOMPACTED if meta is not newer than the current snapshot. */
K_MUST_USE int raft_storage_mem_apply_snapshot(struct raft_storage_mem *s,
                                               const struct raft_snapshot_meta *meta);

/* Records that the application has a snapshot at index (<= last) under configuration cs;
 * it becomes what raft_storage.snapshot returns. Returns 0, K_ECOMPACTED (not newer than the
 * current one), K_EUNAVAILABLE (index past the last entry). */
K_MUST_USE int raft_storage_mem_create_snapshot(struct raft_storage_mem *s, uint64_t index,
                                                const struct raft_conf_state *cs);

/* Drops entries up to and including index, which must not pass the snapshot (a leader must
 * be able to send one covering what is gone). Returns 0, K_ECOMPACTED (already gone),
 * K_EUNAVAILABLE (index past the snapshot). */
K_MUST_USE int raft_storage_mem_compact(struct raft_storage_mem *s, uint64_t index);

/* The snapshot's metadata (index 0 if none). */
void raft_storage_mem_snapshot_meta(const struct raft_storage_mem *s,
                                    struct raft_snapshot_meta *meta);

uint64_t raft_storage_mem_first_index(const struct raft_storage_mem *s);
uint64_t raft_storage_mem_last_index(const struct raft_storage_mem *s);
/* Heap allocations made so far (for the benchmark). */
uint64_t raft_storage_mem_allocations(const struct raft_storage_mem *s);

#endif
