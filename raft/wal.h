/* The write-ahead log: raft's entries and hard state on disk, in segment files of
 * length-prefixed, CRC32C-checked records. One raft_wal_write() is one batch: all its
 * records are written together and made durable by one fdatasync, never one per request.
 * Not here: snapshot files (raft/snap.h); what the records mean to raft (raft/raft.h).
 *
 * On disk, in the WAL directory:
 *   <seq:16 hex>-<first index:16 hex>.wal   segments, seq counting up from 1
 * A segment is preallocated (zero-filled) to segment_bytes and holds 8-byte aligned records:
 *
 *   offset 0  u32 crc      CRC32C of bytes 4..15 of this head and of the payload
 *          4  u32 length   payload bytes (the record then pads to a multiple of 8)
 *          8  u8  type     enum raft_wal_record_type (0 never: zeros mean "end of data")
 *          9  u8  flags    RAFT_WAL_FLAG_BATCH_START on the first record of each batch
 *         10  u16 zero
 *         12  u32 batch    batch number within the segment, from 1
 *         16  payload      an encoded proto raftpb.Entry / HardState / SnapshotMetadata ...
 *
 * Every integer is little-endian. Each segment opens with a batch holding a segment header,
 * the current hard state and the latest snapshot marker, so older segments can be deleted
 * without losing either.
 *
 * Crash recovery (raft_wal_open). Only the batch written last can be torn, because a batch
 * is written only after the previous one was fsynced. So at the first record that is not
 * valid, in the last segment: if a valid record of a LATER batch lies beyond it, the bad
 * record was in synced data, which is corruption and open fails naming file and offset;
 * otherwise it is a torn tail, truncated (zeroed) so later appends continue from there.
 * An invalid record in any segment but the last is always corruption. So is an entry
 * whose term goes backwards or whose index skips ahead.
 * Residual risk, accepted: a bit flip inside the very last batch before a crash is taken
 * for a torn write and that batch is dropped; a raft peer re-sends it in a cluster.
 *
 * Threading: a struct raft_wal is used by one thread at a time (ketchd's WAL thread). */
#ifndef KETCH_RAFT_WAL_H
#define KETCH_RAFT_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "raft/raft.h"

enum raft_wal_record_type {
    RAFT_WAL_RECORD_SEGMENT = 1,    /* payload: "KETCHWAL", u32 version, u64 seq */
    RAFT_WAL_RECORD_ENTRY = 2,      /* payload: raftpb.Entry */
    RAFT_WAL_RECORD_HARD_STATE = 3, /* payload: raftpb.HardState */
    RAFT_WAL_RECORD_SNAPSHOT = 4,   /* payload: raftpb.SnapshotMetadata (index, term) */
};

enum {
    RAFT_WAL_HEAD_BYTES = 16,
    RAFT_WAL_FLAG_BATCH_START = 1,
    RAFT_WAL_SEGMENT_BYTES_DEFAULT = 64 * 1024 * 1024,
    /* Largest payload of one record: a raft entry of the largest request (10 MiB form
     * body, spec §1.6) plus its encoding. A larger length field is corruption. */
    RAFT_WAL_RECORD_BYTES_MAX = 16 * 1024 * 1024,
};

struct raft_wal_options {
    uint64_t segment_bytes; /* roll to a new segment past this size; 0 = default */
};

/* What the WAL held when opened: the newest snapshot marker, the latest hard state and
 * the entries after the marker, in index order, as raft should load them. */
struct raft_wal_recovery {
    uint64_t snapshot_index;           /* newest snapshot marker, 0 if none */
    uint64_t snapshot_term;            /* its term */
    struct raft_hard_state hard_state; /* zeroed if none was written */
    struct raft_entry *entries;        /* entries_n entries; data owned by the recovery */
    size_t entries_n;
    uint64_t torn_bytes; /* bytes of torn tail that were cut off (0 on a clean open) */
};

struct raft_wal;

/* Opens (creating if needed) the WAL in dir and reads it back into *rec. snapshot_index
 * is the index of the snapshot file the caller loaded (0 if none): entries at or below it
 * are not returned. Returns 0; K_ECORRUPT with a message in err (file and offset) when
 * synced data is damaged; a negative errno for OS failures (err says which file).
 * On success the caller owns *wal (raft_wal_close) and *rec (raft_wal_recovery_free). */
K_MUST_USE int raft_wal_open(const char *dir, const struct raft_wal_options *opts,
                             uint64_t snapshot_index, struct raft_wal **wal,
                             struct raft_wal_recovery *rec, char *err, size_t err_len);

/* Frees what raft_wal_open put in rec; rec may be zeroed. */
void raft_wal_recovery_free(struct raft_wal_recovery *rec);

/* Appends one batch and makes it durable with one fdatasync: the entries (in index order;
 * an entry at an index already in the log replaces it and everything after it, as raft
 * truncates a conflicting suffix) and, if hs is not NULL, the hard state. A batch of only a
 * hard state that changes nothing but the commit index is kept in memory and goes out with
 * the next batch, or at close (a lost commit index is learned again; etcd's MustSync). Entry
 * data is
 * borrowed for the call. Returns 0 or a negative errno; after a failed write or fdatasync
 * the WAL is broken for good (every later call fails with -EIO: a retried fsync can
 * falsely succeed), and the member must stop. */
K_MUST_USE int raft_wal_write(struct raft_wal *wal, const struct raft_entry *entries,
                              size_t entries_n, const struct raft_hard_state *hs);

/* Records, durably, that a snapshot covers the log up to index (with term), so recovery
 * starts after it. Call after the snapshot file itself is durable. */
K_MUST_USE int raft_wal_mark_snapshot(struct raft_wal *wal, uint64_t index, uint64_t term);

/* Deletes segments whose every entry is at or below index (covered by a snapshot), keeping
 * the open segment. Returns the number of segments removed, or a negative errno. */
K_MUST_USE int raft_wal_release(struct raft_wal *wal, uint64_t index);

/* Syncs and closes; wal may be NULL. Returns 0 or the first error met. */
int raft_wal_close(struct raft_wal *wal);

/* Counters for /metrics; read on the WAL's own thread or after it stopped. */
struct raft_wal_stats {
    uint64_t batches;    /* fdatasyncs done for raft_wal_write */
    uint64_t bytes;      /* record bytes written */
    uint64_t segments;   /* segment files in the directory now */
    uint64_t last_index; /* index of the last entry written */
};
void raft_wal_stats(const struct raft_wal *wal, struct raft_wal_stats *out);

#endif
