/* The v2 store's home: one LMDB environment per member (a directory), opened, synced,
 * snapshotted and restored here. Applying entries is kv/apply.h, reading is kv/get.h, watching
 * is kv/watch.h. Layout and encodings are in kv/kv_int.h.
 *
 * Durability (issue 5). The environment is opened with MDB_NOMETASYNC: each write transaction
 * (one kv_apply_batch) fdatasyncs its data pages before writing its meta page, but does not
 * sync the meta page itself; the next commit or kv_store_sync() makes it durable. LMDB
 * documents this mode as keeping integrity (atomicity and consistency) on a system crash while
 * possibly undoing the last committed transaction, whatever order the file system writes pages
 * in. We do not use MDB_NOSYNC: without the data sync, a file system that reorders writes can
 * persist a meta page before the pages it points to, and a power loss then leaves a corrupt
 * tree. The applied raft index is written in the same transaction as the effects of the
 * entries up to it, so after a crash the store is intact at some applied index A (what the last
 * durable meta page names) and the server replays the WAL from A + 1: every entry is applied
 * exactly once. The store may lag the WAL but is never ahead of it PROVIDED the server applies
 * only entries its own WAL has made durable (fdatasync done) — that ordering is the server's.
 * Before truncating the WAL below an index, call kv_store_sync() so the store's copy of those
 * entries is durable first.
 *
 * config.no_sync (MDB_NOSYNC) drops even the data sync: no fsync at all. A store opened so
 * survives a crash of the process (the kernel keeps its pages, and LMDB's write order keeps
 * them consistent) but not a power loss, after which it must not be trusted. ketchd runs it
 * this way, so a write pays only the WAL's fsync, and makes it safe from outside: a marker
 * beside the store names the boot that last wrote it, and a store left dirty by an earlier
 * boot is rebuilt from the newest snapshot and the WAL (server/node.c, "the store's sync
 * guard"; tests/integration/test_powerloss.py). */
#ifndef KETCH_KV_STORE_H
#define KETCH_KV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"

/* Paths are bounded by the request line (spec 1.6: etcd serves 4096-byte request lines; ketchd
 * reads request targets up to 8 KiB), so the store takes any path up to 8 KiB and, as etcd,
 * any depth that fits (a path of n components has at least 2n bytes). Paths too long for an
 * LMDB key are stored under a digest (kv/kv_int.h). */
#define KV_KEY_BYTES_MAX_DEFAULT   8192
#define KV_KEY_BYTES_MAX_LIMIT     8192
#define KV_VALUE_BYTES_MAX_DEFAULT (1536u * 1024u) /* etcd's default request limit, 1.5 MiB */
#define KV_DEPTH_MAX_DEFAULT       (KV_KEY_BYTES_MAX_LIMIT / 2)
#define KV_MAP_BYTES_DEFAULT       (64ull << 30) /* sparse: address space, not disk */

/* Every member must use the same limits: they decide whether an entry applies (determinism). */
struct kv_limits {
    size_t key_bytes_max;   /* cleaned path length ("/a/b" is 4); <= KV_KEY_BYTES_MAX_LIMIT */
    size_t value_bytes_max; /* value length */
    uint32_t depth_max;     /* path components ("/a/b" has 2) */
};

struct kv_store_config {
    const char *dir;         /* environment directory (data.mdb, lock.mdb); created if missing;
                              * borrowed during kv_store_open only */
    uint64_t map_bytes;      /* LMDB map size; 0 = KV_MAP_BYTES_DEFAULT */
    struct kv_limits limits; /* zero fields take the defaults above */
    bool no_sync;            /* MDB_NOSYNC: no fsync at all; see "no_sync" above */
};

struct kv_store;

/* Opens (creating if needed) the store in config->dir. On success *out is owned by the caller
 * until kv_store_close(). Returns 0; -errno for file errors; K_ECONFIG for impossible limits;
 * K_ECORRUPT if the directory holds an LMDB environment that is not a ketch store (or an
 * unknown format version). */
K_MUST_USE int kv_store_open(const struct kv_store_config *config, struct kv_store **out);

/* Closes the environment (without syncing: call kv_store_sync first if you need it) and frees
 * the store. No transaction may be running. NULL is a no-op. */
void kv_store_close(struct kv_store *s);

/* Makes every committed transaction durable (mdb_env_sync with force), the meta page too.
 * Returns 0 or -errno. Call before truncating the WAL, periodically, and before a clean exit. */
K_MUST_USE int kv_store_sync(struct kv_store *s);

/* The raft index of the last applied entry and the store's etcd index as of the last committed
 * transaction (read in a fresh read transaction). Return 0 or an LMDB error mapped to -EIO. */
K_MUST_USE int kv_store_indexes(struct kv_store *s, uint64_t *applied_index, uint64_t *etcd_index);

/* The earliest expiration among the nodes with a TTL (read in a fresh read transaction): lets
 * the leader skip SYNC proposals while nothing is due (etcd proposes one every 500 ms
 * regardless). *has is false when no node has a TTL. Returns 0 or an LMDB error. */
K_MUST_USE int kv_store_next_expiration(struct kv_store *s, bool *has, int64_t *expiration_ns);

/* The number of nodes (files and dirs, hidden ones too; not the root) as of the last committed
 * transaction; LMDB keeps the count, so this is O(1). Returns 0 or an LMDB error as -EIO. */
K_MUST_USE int kv_store_node_count(struct kv_store *s, uint64_t *count);

/* etcd's internal /0 records (member records, the cluster version) as applied from the log
 * (proto KV_METHOD_INTERNAL). Calls cb for each record whose path starts with prefix, in path
 * order, within one read transaction; cb returns 0 to go on. Returns 0, cb's non-zero value,
 * or an LMDB error. */
typedef int (*kv_internal_cb)(void *data, const char *path, size_t path_len, const char *value,
                              size_t value_len);
K_MUST_USE int kv_store_internal_scan(struct kv_store *s, const char *prefix, kv_internal_cb cb,
                                      void *data);

/* The limits in force (defaults filled in). */
const struct kv_limits *kv_store_limits(const struct kv_store *s);

/* Writes a consistent, compacted copy of the store to a new file at path (mdb_env_copyfd2 with
 * MDB_CP_COMPACT from a read transaction, so writers are not blocked), fsyncs it, and returns
 * the applied raft index and etcd index the copy holds. path must not exist. The copy is an
 * LMDB data file: kv_store_restore() turns it back into a store. Returns 0, -errno, or
 * K_ECORRUPT if the copy cannot be read back. On failure the partial file is removed. */
K_MUST_USE int kv_store_snapshot(struct kv_store *s, const char *path, uint64_t *applied_index,
                                 uint64_t *etcd_index);

/* Determinism. Two stores that applied the same entries in the same batches produce
 * byte-identical snapshots (tests/unit/test_kv_snapshot.c). With other batch boundaries the
 * state is identical but the bytes are not: LMDB copies each page whole, including leftover
 * bytes in its free space, and page reuse depends on transaction boundaries. Raft members
 * batch differently, so to compare members' state use kv_store_dump, a canonical encoding of
 * the logical state that depends only on the entries applied. */

/* Called with consecutive pieces of a dump; returns 0 to go on, anything else to stop. */
typedef int (*kv_dump_cb)(void *data, const void *bytes, size_t len);

/* Writes the store's logical state in one read transaction as a canonical byte stream:
 * "KETCHKV1", applied index, etcd index (8 bytes LE each), then every node in key order and
 * every expiry entry in order, each as key length (4 bytes LE), key, value length, value
 * (the on-disk encodings of kv/kv_int.h), each table ended by a zero length. Returns 0, the
 * callback's non-zero value, or an LMDB error. */
K_MUST_USE int kv_store_dump(struct kv_store *s, kv_dump_cb cb, void *data);

/* CRC-32C of kv_store_dump's bytes: a cheap way for members (or the simulator) to compare
 * their state at the same applied index. Returns 0 or an LMDB error. */
K_MUST_USE int kv_store_digest(struct kv_store *s, uint32_t *crc32c);

/* Replaces the store in config->dir with the snapshot file at snapshot_path (which is moved
 * there by rename, so it must be on the same file system) and opens it, as kv_store_open.
 * No store may be open on config->dir. The snapshot is checked to be a ketch store first;
 * on failure the directory is left as it was. */
K_MUST_USE int kv_store_restore(const struct kv_store_config *config, const char *snapshot_path,
                                struct kv_store **out);

#endif
