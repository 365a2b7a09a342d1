/* Snapshot files: raft metadata (index, term, configuration) and the application's state
 * (for ketchd, kv's compacted LMDB copy) in one checksummed file, written to a temporary
 * name, fsynced, renamed into place and the directory fsynced, so a crash leaves either the
 * old set of snapshots or the new one. The data is streamed in and out, never held whole
 * in memory. Not here: when to snapshot (server/), what the data means (kv/).
 *
 * In the snapshot directory: <term:16 hex>-<index:16 hex>.snap, laid out as
 *   offset 0   "KETCHSNP", u32 version, u32 meta_len, u64 data_len, u64 index, u64 term,
 *              u32 crc of bytes 0..43 (all little-endian; 48 bytes with 4 zero)
 *          48  meta: raftpb.SnapshotMetadata (index, term, conf state), meta_len bytes
 *              data: data_len bytes
 *              u32 CRC32C of meta and data, "KSNPEND\0"
 * A file that fails any check is corrupt: the member refuses to start rather than serve
 * state it cannot trust. */
#ifndef KETCH_RAFT_SNAP_H
#define KETCH_RAFT_SNAP_H

#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "raft/raft.h"

enum { RAFT_SNAP_HEAD_BYTES = 48, RAFT_SNAP_TAIL_BYTES = 12 };

struct raft_snap_writer;

/* Starts a snapshot file in dir for meta. Returns 0 and *out, or a negative errno. */
K_MUST_USE int raft_snap_begin(const char *dir, const struct raft_snapshot_meta *meta,
                               struct raft_snap_writer **out);

/* The file descriptor data may be written to directly with write() at its current offset
 * (mdb_env_copyfd2 does this), instead of or interleaved with raft_snap_write(). Owned by
 * the writer; valid until raft_snap_finish/abort. */
int raft_snap_writer_fd(const struct raft_snap_writer *w);

/* Appends len bytes of data (borrowed). 0 or a negative errno. */
K_MUST_USE int raft_snap_write(struct raft_snap_writer *w, const void *data, size_t len);

/* Seals the file (checksums, fsync, rename, directory fsync) and frees w. Writes the final
 * path to path_out if not NULL. 0 or a negative errno (the temporary file is removed). */
K_MUST_USE int raft_snap_finish(struct raft_snap_writer *w, char *path_out, size_t path_len);

/* Drops an unfinished snapshot and frees w; w may be NULL. */
void raft_snap_abort(struct raft_snap_writer *w);

/* A snapshot file found and verified. */
struct raft_snap_info {
    char path[4096];
    struct raft_snapshot_meta meta;
    uint64_t data_offset; /* where data starts in the file */
    uint64_t data_len;
};

/* Finds the newest snapshot in dir (highest index) and verifies it whole. Returns 0 and
 * *out; K_ENOTFOUND when there is none; K_ECORRUPT with a message in err naming the file
 * when it fails a check; a negative errno otherwise. Leftover temporary files are removed. */
K_MUST_USE int raft_snap_load_newest(const char *dir, struct raft_snap_info *out, char *err,
                                     size_t err_len);

/* Copies the data of a verified snapshot into a new file at dst (fsynced). */
K_MUST_USE int raft_snap_extract(const struct raft_snap_info *info, const char *dst);

/* Removes all but the keep newest snapshot files (keep >= 1). Returns how many it removed
 * or a negative errno. */
K_MUST_USE int raft_snap_purge(const char *dir, unsigned keep);

#endif
