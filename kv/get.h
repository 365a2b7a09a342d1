/* Serializable reads (spec §4.5): a GET served from the local store in a read transaction,
 * without raft. A quorum GET is the same call after the server's ReadIndex round. Safe to call
 * from any thread while another applies (the environment uses MDB_NOTLS). */
#ifndef KETCH_KV_GET_H
#define KETCH_KV_GET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "kv/error.h"
#include "kv/event.h"
#include "kv/store.h"

/* Reads path (uncleaned bytes, as from the URL; cleaned like etcd) with recursive and sorted as
 * etcd's GET. now_ns is the time the ttl fields are computed against (the server's clock: a
 * read is not replicated, so it need not be deterministic). On success *out is a "get" event,
 * whose index is the store's etcd index (X-Etcd-Index); the caller drops it with
 * kv_event_unref(). Children are always in byte order of their keys, which satisfies both
 * sorted and unsorted reads. Returns 0; K_EV2 with *err (100 key not found, also for keys
 * beyond the store's limits, which cannot exist; 104 not a directory); -EIO on an LMDB
 * failure. */
K_MUST_USE int kv_get(struct kv_store *s, const char *path, size_t path_len, bool recursive,
                      bool sorted, int64_t now_ns, struct kv_event **out, struct kv_error *err);

#endif
