/* The watch hub: watchers on a key or (recursive) a subtree, one-shot or streaming, from now or
 * from a waitIndex (spec §5). It lives in memory on the thread that owns the connections; the
 * apply step never calls it. The owner feeds it every batch's events in index order with
 * kv_watch_hub_publish(); each watcher gets the events that match it, in index order, in its
 * own bounded queue, and its callback says when to take them.
 *
 * Matching follows etcd's watcherHub (v2store/watcher_hub.go): a watcher on K gets events on
 * K; a recursive one also events below K except through a '_' component below K; a delete or
 * expire of a dir wakes the watchers of every node it removed (the dir's event is delivered);
 * refresh events wake nobody. A waitIndex in the past is answered from the history
 * (kv/history.h). Like etcd (observed on 3.4.23), a streaming watcher on a deleted key gets
 * the delete event twice: once as a removed node, once as the key itself.
 *
 * Bounds: a watcher's queue holds at most queue_max events (etcd: 100). When an event finds it
 * full, the watcher is cut off: unregistered, state KV_WATCHER_CUT_OFF, no more events (etcd
 * drops such a stream watcher silently). So a slow stream reader costs at most queue_max event
 * references. The history keeps 1000 events, and at most 256 MiB of them. */
#ifndef KETCH_KV_WATCH_H
#define KETCH_KV_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "kv/error.h"
#include "kv/event.h"

#define KV_WATCH_QUEUE_MAX_DEFAULT 100

struct kv_watch_hub;
struct kv_watcher;

/* Called from kv_watch_hub_publish() when events were queued on w or w was cut off. It may
 * call kv_watcher_take() and kv_watcher_free() on w (freeing is deferred safely), but must not
 * publish or add watchers. */
typedef void (*kv_watch_cb)(struct kv_watcher *w, void *data);

enum kv_watcher_state {
    KV_WATCHER_ACTIVE = 1,  /* registered, waiting for events */
    KV_WATCHER_DONE = 2,    /* no more events will come: a one-shot watcher got its event, or a
                             * watch was answered from history (a stream too: etcd then stays
                             * silent forever, spec §17 quirk 18) */
    KV_WATCHER_CUT_OFF = 3, /* its queue overflowed; unregistered */
    KV_WATCHER_CLOSED = 4,  /* the hub was freed or reset while it was registered */
};

struct kv_watch_opts {
    const char *key; /* path as given (cleaned like a key); borrowed for the call */
    size_t key_len;
    bool recursive;
    bool stream;         /* keep delivering after the first event */
    uint64_t wait_index; /* first index of interest; 0 = after the current index */
    size_t queue_max;    /* 0 = KV_WATCH_QUEUE_MAX_DEFAULT */
};

/* A hub for a store whose etcd index is etcd_index (kv_store_indexes). history_events_max and
 * history_bytes_max bound the history (kv/history.h; 0 = 1000 events, 256 MiB). Owned by the
 * caller until kv_watch_hub_free(). */
struct kv_watch_hub *kv_watch_hub_new(uint64_t etcd_index, size_t history_events_max,
                                      size_t history_bytes_max);

/* Frees the hub. Watchers still registered become KV_WATCHER_CLOSED and are detached; their
 * owners still free them with kv_watcher_free(). NULL is a no-op. */
void kv_watch_hub_free(struct kv_watch_hub *hub);

/* Delivers events[0..n) (a kv_batch's events: contiguous indexes following the hub's index)
 * to history and watchers, calling callbacks as it goes. Takes its own references. */
void kv_watch_hub_publish(struct kv_watch_hub *hub, struct kv_event *const *events, size_t n);

/* After the store was replaced by a snapshot: clears the history, sets the index, and closes
 * every registered watcher (KV_WATCHER_CLOSED, callback called) so clients re-watch. */
void kv_watch_hub_reset(struct kv_watch_hub *hub, uint64_t etcd_index);

/* The etcd index of the last published event (the store index the hub has seen). */
uint64_t kv_watch_hub_index(const struct kv_watch_hub *hub);

/* Registered watchers (for /v2/stats/store "watchers"). */
size_t kv_watch_hub_watcher_count(const struct kv_watch_hub *hub);

/* Adds a watcher. On success *out is owned by the caller until kv_watcher_free(), and
 * *etcd_index is the X-Etcd-Index of the watch response (the hub's index now). If the
 * history already holds a matching event, it is queued at once (check kv_watcher_take();
 * the callback is not called for it). Returns 0, or K_EV2 with 401 when wait_index is older
 * than the history (err->index = the hub's index). Any key may be watched. */
K_MUST_USE int kv_watch_add(struct kv_watch_hub *hub, const struct kv_watch_opts *opts,
                            kv_watch_cb cb, void *data, struct kv_watcher **out,
                            uint64_t *etcd_index, struct kv_error *err);

/* Takes the oldest queued event (the caller owns the reference: kv_event_unref), or NULL. */
struct kv_event *kv_watcher_take(struct kv_watcher *w);

enum kv_watcher_state kv_watcher_state(const struct kv_watcher *w);

/* Unregisters w (if still registered), drops its queued events and frees it. NULL no-op. */
void kv_watcher_free(struct kv_watcher *w);

#endif
