/* The member's data directory: where each kind of state lives, who the member is, and a
 * lock so two processes never share one directory. Everything ketchd writes is under
 * <data-dir>/ketch/, so a directory real etcd used (it has member/) is recognised and
 * refused instead of being mixed with ours:
 *
 *   <data-dir>/ketch/lock       flock()ed while a ketchd runs on it
 *   <data-dir>/ketch/identity   name, member id, cluster id (text, replaced atomically)
 *   <data-dir>/ketch/wal/       raft/wal.h segments (or --wal-dir)
 *   <data-dir>/ketch/snap/      raft/snap.h snapshot files
 *   <data-dir>/ketch/kv/        the kv store's LMDB environment */
#ifndef KETCH_SERVER_DATA_DIR_H
#define KETCH_SERVER_DATA_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"

struct srv_identity {
    char name[128];
    uint64_t member_id;
    uint64_t cluster_id;
};

struct srv_data_dir {
    char root[3900];     /* <data-dir>/ketch */
    char wal_dir[4096];  /* <data-dir>/ketch/wal or --wal-dir */
    char snap_dir[4096]; /* <data-dir>/ketch/snap */
    char kv_dir[4096];   /* <data-dir>/ketch/kv */
    int lock_fd;         /* holds the lock; -1 when closed */
    bool has_identity;   /* identity was read: this is a restart, not a first start */
    struct srv_identity identity;
};

/* Opens (creating) the layout for data_dir, takes the lock and reads the identity if one
 * exists. wal_dir may be NULL. name is --name: a directory that belongs to another name is
 * refused. Returns 0, or K_ECONFIG / a negative errno with one line in err saying what to
 * fix. On failure nothing stays locked or open. */
K_MUST_USE int srv_data_dir_open(struct srv_data_dir *d, const char *data_dir, const char *wal_dir,
                                 const char *name, char *err, size_t err_len);

/* Writes the identity durably (temp file, fsync, rename, directory fsync). */
K_MUST_USE int srv_data_dir_save_identity(struct srv_data_dir *d, const struct srv_identity *id);

/* Releases the lock; d may be zeroed or already closed. */
void srv_data_dir_close(struct srv_data_dir *d);

#endif
