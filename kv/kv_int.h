/* kv internals shared between its files; not for other modules.
 *
 * On-disk layout (one LMDB environment, format version KV__FORMAT_VERSION):
 * - DB "nodes": one record per node except the root (which is implicit: a dir with no indexes).
 *   Key, plain form (paths of at most KV__PLAIN_PATH_MAX = 500 bytes): depth (2 bytes,
 *   big-endian: the number of path components) followed by the cleaned path ("/a/b" has
 *   depth 2). LMDB keys are at most 511 bytes, so a longer path has the long form: depth, the
 *   first KV__LONG_PREFIX = 476 bytes of the path, then the SHA-256 of the whole path (32
 *   bytes), 510 bytes in all; its record carries the whole path. The key's length tells the
 *   forms apart (plain <= 502, long = 510).
 *   All children of a dir P at depth d share the prefix (d+1, P + "/") (cut to the first 476
 *   bytes of the path when longer) and nothing else does (when cut, the full paths tell), so a
 *   listing reads the children as one contiguous range. Byte order of the keys is the order of
 *   the paths (the order "sorted=true" asks for) except among keys that share their first 476
 *   path bytes; kv__tree_children sorts those runs by full path.
 *   Value = flags (1 byte: bit 0 dir, bit 1 has expiration, bit 2 long path), createdIndex,
 *   modifiedIndex, expiration in Unix ns (each 8 bytes little-endian; expiration 0 when none);
 *   for a long path then its length (4 bytes LE) and the path; then the value.
 * - DB "expiry": one entry per node with a TTL, ordered by expiration so a SYNC reads only
 *   what expires. Key = expiration (8 bytes big-endian, sign bit flipped so negative times sort
 *   first), createdIndex (8, big-endian), depth (2, big-endian); value = the node's nodes-key.
 *   (expiration, createdIndex, depth) is unique: the nodes created by one write lie on one path,
 *   so they differ in depth.
 * - DB "meta": "applied" = last applied raft index, "index" = etcd index (8 bytes LE each),
 *   "format" = KV__FORMAT_VERSION (8 bytes LE). Format 1 had no long keys; a format 1 store is
 *   a valid format 2 store and is marked 2 when opened.
 */
#ifndef KETCH_KV_KV_INT_H
#define KETCH_KV_KV_INT_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "kv/error.h"
#include "kv/event.h"
#include "kv/store.h"

#define KV__FORMAT_VERSION     2u
#define KV__RECORD_HEAD_BYTES  25
#define KV__PLAIN_PATH_MAX     500
#define KV__LONG_PREFIX        476
#define KV__PATH_DIGEST_BYTES  32
#define KV__LONG_KEY_BYTES     (2 + KV__LONG_PREFIX + KV__PATH_DIGEST_BYTES)
#define KV__NODE_KEY_BYTES_MAX KV__LONG_KEY_BYTES
#define KV__EXPIRY_KEY_BYTES   18
#define KV__INTERNAL_KEY_MAX   500
#define KV__FLAG_DIR           0x01u
#define KV__FLAG_EXPIRES       0x02u
#define KV__FLAG_LONG_PATH     0x04u

/* Expirations before 2000-01-01 are treated as permanent, as etcd does (minExpireTime in
 * v2store/store.go: such times come from a zero time serialized through JavaScript). */
#define KV__MIN_EXPIRE_NS (946684800LL * 1000000000LL)

struct kv_store {
    MDB_env *env;
    MDB_dbi dbi_nodes;
    MDB_dbi dbi_expiry;
    MDB_dbi dbi_meta;
    MDB_dbi dbi_internal; /* etcd's /0 records: path -> value */
    struct kv_limits limits;
};

/* A cleaned path: "/" for the root, else "/c1/c2" with no empty, "." or ".." component. */
struct kv__path {
    char buf[KV_KEY_BYTES_MAX_LIMIT + 1]; /* NUL-terminated */
    size_t len;
    uint32_t depth; /* components; 0 for the root */
};

/* A node record as stored; value and path point into LMDB memory (valid until the next write
 * in the transaction or its end). */
struct kv__rec {
    uint8_t flags;
    uint64_t created_index;
    uint64_t modified_index;
    int64_t expiration_ns; /* meaningful when flags & KV__FLAG_EXPIRES */
    const char *path;      /* the node's path when flags & KV__FLAG_LONG_PATH, else NULL */
    size_t path_len;
    const char *value;
    size_t value_len;
};

/* path.c */
/* Cleans raw like Go's path.Clean("/" + raw) (etcd does the same in the store). Returns 0, or
 * K_EV2 with 209 when the result is longer than limits->key_bytes_max or deeper than
 * limits->depth_max. */
K_MUST_USE int kv__path_clean(const struct kv_limits *limits, const char *raw, size_t raw_len,
                              struct kv__path *out, struct kv_error *err);
/* The same cleaning without limits, into a buffer the caller frees: for keys beyond the limits,
 * which can be read (not found) and watched though never stored. */
char *kv__path_clean_alloc(const char *raw, size_t raw_len, size_t *len, uint32_t *depth);
/* Length of the prefix of p holding its first n components ("/a/b/c", 2 -> 4). */
size_t kv__path_prefix_len(const char *p, size_t len, uint32_t n);
/* Start of the last component (after the last '/'). */
size_t kv__path_base_off(const char *p, size_t len);
/* Whether the node's own name starts with '_' (hidden from listings). */
bool kv__path_is_hidden(const char *p, size_t len);
/* Encodes a nodes-DB key for (path, depth) into out (KV__NODE_KEY_BYTES_MAX), in the plain or
 * the long form; returns its size. */
size_t kv__node_key(uint8_t *out, const char *p, size_t len, uint32_t depth);

/* tree.c: node records in LMDB */
/* Size and encoding of a record; its path is stored when flags has KV__FLAG_LONG_PATH. */
size_t kv__rec_size(const struct kv__rec *r);
void kv__rec_encode(uint8_t *out, const struct kv__rec *r);
K_MUST_USE int kv__rec_decode(const MDB_val *v, struct kv__rec *r); /* 0 or K_ECORRUPT */
/* Reads the node at (p, len, depth). Returns 0, K_ENOTFOUND, K_ECORRUPT or -EIO. */
K_MUST_USE int kv__tree_get(const struct kv_store *s, MDB_txn *txn, const char *p, size_t len,
                            uint32_t depth, struct kv__rec *r);
/* Reads the node stored under a nodes-DB key (as the expiry index names it): its record, its
 * path (into LMDB memory or the key) and its depth. Returns 0, K_ENOTFOUND, K_ECORRUPT or an
 * LMDB error. */
K_MUST_USE int kv__tree_get_by_key(const struct kv_store *s, MDB_txn *txn, const MDB_val *key,
                                   struct kv__rec *r, const char **path, size_t *len,
                                   uint32_t *depth);
/* Writes a node record and keeps the expiry index in step with it (old: the record it replaces,
 * NULL if none). Returns 0 or an error mapped from LMDB. */
K_MUST_USE int kv__tree_put(const struct kv_store *s, MDB_txn *txn, const char *p, size_t len,
                            uint32_t depth, const struct kv__rec *r, const struct kv__rec *old);
/* Whether the dir at (p, depth) has any child (hidden ones count). */
K_MUST_USE int kv__tree_has_children(const struct kv_store *s, MDB_txn *txn, const char *p,
                                     size_t len, uint32_t depth, bool *has);
/* Iterates the children of dir (p, depth) in byte order of their paths, calling cb with each
 * child's path and record; stops early when cb returns non-zero (returned). cb must not write
 * in txn. */
typedef int (*kv__child_cb)(void *data, const char *path, size_t len, const struct kv__rec *r);
K_MUST_USE int kv__tree_children(const struct kv_store *s, MDB_txn *txn, const char *p, size_t len,
                                 uint32_t depth, kv__child_cb cb, void *data);
/* Deletes the node (p, depth) with record r and, for a dir, its whole subtree, with their
 * expiry entries. Appends every removed path to ev's removed list when ev is not NULL. */
K_MUST_USE int kv__tree_remove(const struct kv_store *s, MDB_txn *txn, const char *p, size_t len,
                               uint32_t depth, const struct kv__rec *r, struct kv_event *ev);
/* Maps an LMDB return code to ours: MDB_MAP_FULL -> K_ELIMIT, MDB_CORRUPTED and friends ->
 * K_ECORRUPT, errno values -> -errno, others -> -EIO. */
int kv__mdb_err(int mdb_rc);
void kv__put_u64le(uint8_t *p, uint64_t v);
uint64_t kv__get_u64le(const uint8_t *p);
void kv__put_u64be(uint8_t *p, uint64_t v);

/* meta in store.c */
K_MUST_USE int kv__meta_get(const struct kv_store *s, MDB_txn *txn, const char *name, uint64_t *v);
K_MUST_USE int kv__meta_put(const struct kv_store *s, MDB_txn *txn, const char *name, uint64_t v);

/* event.c */
struct kv_event *kv__event_new(enum kv_action action, uint64_t index);
/* Fills n from a record as etcd's Repr(recursive=false): key, value for files (when
 * with_value), dir, expiration and ttl computed against now_ns, indexes. */
void kv__node_fill(struct kv_event *ev, struct kv_node *n, const char *p, size_t len,
                   const struct kv__rec *r, bool with_value, int64_t now_ns);
/* etcd's ttl: ceil((expiration - now) / 1 s), truncating toward zero below zero. */
int64_t kv__ttl_s(int64_t expiration_ns, int64_t now_ns);
void kv__event_add_removed(struct kv_event *ev, const char *p, size_t len);
void kv__event_drop_removed(struct kv_event *ev);

/* get.c: the read shared by kv_get and GET entries. */
K_MUST_USE int kv__read(const struct kv_store *s, MDB_txn *txn, const struct kv__path *path,
                        bool recursive, int64_t now_ns, uint64_t etcd_index, struct kv_event **out,
                        struct kv_error *err);
/* Finds why path cannot be read: the first missing component (100) or the first file on the
 * way (104). Only call when the node itself was not found. Prefixes beyond the store's limits
 * count as missing (they cannot exist), so p may be any cleaned path. Returns K_EV2 (or an I/O
 * error). */
K_MUST_USE int kv__walk_error(const struct kv_store *s, MDB_txn *txn, const char *p, size_t len,
                              uint32_t depth, uint64_t etcd_index, struct kv_error *err);

/* The answer for a path beyond the limits (raw, uncleaned), which cannot exist: etcd's walk
 * error, 100 for the first missing component or 104 for a file on the way. */
K_MUST_USE int kv__long_path_error(const struct kv_store *s, MDB_txn *txn, const char *raw,
                                   size_t raw_len, uint64_t etcd_index, struct kv_error *err);

#endif
