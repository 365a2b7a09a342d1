/* What the v2 store answers: an event (action, node, prevNode, index), the object etcd writes as
 * a response body and delivers to watchers (spec/etcd-v2-api.md §4.3). kv builds events; the
 * server only serializes them (kv/json.h). Not here: errors (kv/error.h).
 *
 * Ownership: an event is reference-counted, and what it shows is immutable once built (the hub
 * only frees its private removed-path list when it publishes it). Every string and node lives
 * in the event's own arena and stays valid while a reference is held. The count is not atomic:
 * an event is handed between threads only as a whole batch (kv/apply.h), and used by one
 * thread at a time. */
#ifndef KETCH_KV_EVENT_H
#define KETCH_KV_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/arena.h"

enum kv_action {
    KV_ACTION_NONE = 0,
    KV_ACTION_GET,
    KV_ACTION_SET,
    KV_ACTION_CREATE,
    KV_ACTION_UPDATE,
    KV_ACTION_COMPARE_AND_SWAP,
    KV_ACTION_DELETE,
    KV_ACTION_COMPARE_AND_DELETE,
    KV_ACTION_EXPIRE,
};

/* One node as etcd shows it (NodeExtern). A field is shown unless it has its empty value. */
struct kv_node {
    const char *key;         /* full path ("/a/b"); NULL for the root, which shows no key */
    size_t key_len;          /* bytes at key; paths may hold any byte but '/' in components */
    const char *value;       /* NULL when no value is shown (dirs; node of delete events) */
    size_t value_len;        /* bytes at value; "" (len 0, value != NULL) is shown */
    bool dir;                /* shown as "dir":true only when true */
    bool has_expiration;     /* the node has a TTL */
    int64_t expiration_ns;   /* Unix time in ns when the node expires, if has_expiration */
    int64_t ttl_s;           /* ceil((expiration - request time) / 1 s); shown if != 0 */
    uint64_t modified_index; /* 0 for the root (omitted) */
    uint64_t created_index;  /* 0 for the root (omitted) */
    struct kv_node *nodes;   /* visible children listed (dirs read by get); NULL when none */
    size_t node_count;       /* entries at nodes; 0 means "nodes" is omitted */
};

struct kv_event {
    enum kv_action action;
    uint64_t index;           /* for writes the event's etcd index (X-Etcd-Index); for get the
                               * store's current index at the read */
    bool refresh;             /* a refresh write: kept in history, never delivered, skipped by
                               * waitIndex scans (spec §4.7) */
    bool has_node;            /* always true for events kv builds */
    struct kv_node node;      /* the node after the action */
    bool has_prev_node;       /* prevNode shown */
    struct kv_node prev_node; /* the node before the action (never with nodes) */

    /* Private to kv. The paths of every node a delete or expire took away (the node and its
     * whole subtree, hidden ones too), as (offset, length) pairs into removed_buf. The watch
     * hub uses them to wake watchers of deleted descendants (spec §5.2) and frees them once
     * the event is published, so history does not keep a big subtree's paths alive. */
    char *removed_buf;
    size_t *removed_offs; /* 2 * removed_count entries: offset, length */
    size_t removed_count;
    uint32_t refs;
    struct kv_arena arena;
};

/* Returns etcd's action name ("compareAndSwap"), a static string; "" for KV_ACTION_NONE. */
const char *kv_action_name(enum kv_action action);

/* Takes one more reference to ev and returns it. */
struct kv_event *kv_event_ref(struct kv_event *ev);

/* Drops one reference; the last frees the event and everything in it. NULL is a no-op. */
void kv_event_unref(struct kv_event *ev);

/* Returns the HTTP status of a successful response carrying ev (spec §4.4): 201 for create
 * and for a set without prevNode, 200 otherwise. */
int kv_event_http_status(const struct kv_event *ev);

#endif
