/* The event history that answers watches with a waitIndex in the past (spec §5.3): a ring of
 * the last N (etcd: 1000) events of the store, refresh events included (they hold an index but
 * are skipped by scans). Scanning follows etcd's EventHistory.scan (v2store/event_history.go)
 * including its quirks: a recursive scan does not hide '_' descendants, and a deleted or
 * expired dir matches any watched key that starts with the dir's key as a string. Used by the
 * watch hub (kv/watch.h); single-threaded like it. */
#ifndef KETCH_KV_HISTORY_H
#define KETCH_KV_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "kv/error.h"
#include "kv/event.h"

#define KV_HISTORY_EVENTS_MAX_DEFAULT 1000
#define KV_HISTORY_BYTES_MAX_DEFAULT  (256u << 20)

struct kv_history {
    struct kv_event **ring; /* cap slots; references owned by the history */
    size_t cap;
    size_t front;         /* slot of the oldest event */
    size_t count;         /* events held, <= cap */
    uint64_t start_index; /* index of the oldest event; below it history is cleared */
    uint64_t last_index;  /* index of the newest event (or the store index when empty) */
    size_t bytes;         /* memory the held events use (their arenas) */
    size_t bytes_max;     /* beyond it the oldest events are dropped early */
};

/* An empty history for a store whose etcd index is etcd_index: indexes up to etcd_index count
 * as cleared (after a restart or restore, their events are gone), except on a fresh store.
 * It keeps the last cap events (0: KV_HISTORY_EVENTS_MAX_DEFAULT, etcd's 1000) but drops the
 * oldest sooner when they hold more than bytes_max of memory (0: KV_HISTORY_BYTES_MAX_DEFAULT):
 * etcd has no such bound, and 1000 events of 1.5 MiB values and prevNodes would hold 3 GiB.
 * At least the newest event is always kept. */
void kv_history_init(struct kv_history *h, size_t cap, size_t bytes_max, uint64_t etcd_index);
void kv_history_deinit(struct kv_history *h);

/* Appends ev (taking a reference); its index must be last_index + 1. The oldest event is
 * dropped when full. */
void kv_history_add(struct kv_history *h, struct kv_event *ev);

/* Finds the first non-refresh event with index >= since_index matching key (a cleaned path)
 * and recursive. Returns 0 with *hit (borrowed; NULL when none matches or since_index is in
 * the future), or K_EV2 with 401 "the requested history has been cleared [start/since]"
 * (err->index is left 0 for the caller to set to the store's index). */
K_MUST_USE int kv_history_scan(const struct kv_history *h, const char *key, size_t key_len,
                               bool recursive, uint64_t since_index, struct kv_event **hit,
                               struct kv_error *err);

#endif
