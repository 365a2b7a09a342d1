/* The watch hub of kv/watch.h: watchers indexed by their cleaned key in a hash table (so an
 * event visits only the watchers of its key, its ancestors and, for deletes, its removed
 * descendants, as etcd's watcherHub does), bounded queues, and deferred unlinking so callbacks
 * may free their watcher while the hub iterates. */
#include "kv/watch.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "kv/history.h"
#include "kv/kv_int.h"

struct watch_entry {
    struct watch_entry *next; /* hash chain */
    uint64_t hash;
    char *key;
    size_t key_len;
    struct kv_watcher **ws; /* in registration order; may hold unregistered ones while the
                             * hub publishes (unlinked right after) */
    size_t count;
    size_t cap;
};

struct kv_watcher {
    struct kv_watch_hub *hub;    /* NULL once the hub is freed */
    struct kv_watcher *all_prev; /* every live watcher of the hub */
    struct kv_watcher *all_next;
    struct watch_entry *entry; /* the entry whose ws holds it, NULL if none */
    kv_watch_cb cb;
    void *data;
    bool recursive;
    bool stream;
    bool freed;          /* the owner freed it during a publish */
    bool unlink_pending; /* in hub->pending */
    enum kv_watcher_state state;
    uint64_t since_index;
    struct kv_event **queue; /* ring of queue_max */
    size_t queue_max;
    size_t queue_head;
    size_t queue_count;
};

struct kv_watch_hub {
    struct kv_history history;
    uint64_t index;
    struct watch_entry **buckets;
    size_t bucket_count; /* power of two */
    size_t entry_count;
    size_t watcher_count; /* ACTIVE watchers */
    struct kv_watcher *all;
    bool publishing;
    struct kv_watcher **pending; /* unregistered during a publish: unlink afterwards */
    size_t pending_count;
    size_t pending_cap;
    struct kv_watcher **zombies; /* freed during a publish: free afterwards */
    size_t zombie_count;
    size_t zombie_cap;
};

static uint64_t key_hash(const char *k, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ull;
    }
    return h;
}

static struct watch_entry *entry_find(struct kv_watch_hub *hub, const char *k, size_t len)
{
    uint64_t h = key_hash(k, len);
    struct watch_entry *e = hub->buckets[h & (hub->bucket_count - 1)];
    for (; e != NULL; e = e->next) {
        if (e->hash == h && e->key_len == len && memcmp(e->key, k, len) == 0) return e;
    }
    return NULL;
}

static void buckets_grow(struct kv_watch_hub *hub)
{
    size_t n = hub->bucket_count * 2;
    struct watch_entry **b = k_xcalloc(n, sizeof(*b));
    for (size_t i = 0; i < hub->bucket_count; i++) {
        struct watch_entry *e = hub->buckets[i];
        while (e != NULL) {
            struct watch_entry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(hub->buckets);
    hub->buckets = b;
    hub->bucket_count = n;
}

static struct watch_entry *entry_get(struct kv_watch_hub *hub, const char *k, size_t len)
{
    struct watch_entry *e = entry_find(hub, k, len);
    if (e != NULL) return e;
    if (hub->entry_count >= hub->bucket_count) buckets_grow(hub);
    e = k_xcalloc(1, sizeof(*e));
    e->hash = key_hash(k, len);
    e->key = k_xstrndup(k, len);
    e->key_len = len;
    size_t b = e->hash & (hub->bucket_count - 1);
    e->next = hub->buckets[b];
    hub->buckets[b] = e;
    hub->entry_count++;
    return e;
}

static void entry_delete(struct kv_watch_hub *hub, struct watch_entry *e)
{
    struct watch_entry **pp = &hub->buckets[e->hash & (hub->bucket_count - 1)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    hub->entry_count--;
    free(e->key);
    free(e->ws);
    free(e);
}

static void unlink_now(struct kv_watch_hub *hub, struct kv_watcher *w)
{
    struct watch_entry *e = w->entry;
    if (e == NULL) return;
    size_t i = 0;
    while (i < e->count && e->ws[i] != w)
        i++;
    k_assert(i < e->count);
    memmove(&e->ws[i], &e->ws[i + 1], (e->count - i - 1) * sizeof(*e->ws));
    e->count--;
    w->entry = NULL;
    if (e->count == 0) entry_delete(hub, e);
}

static void push_ptr(struct kv_watcher ***arr, size_t *count, size_t *cap, struct kv_watcher *w)
{
    if (*count == *cap) {
        *cap = *cap == 0 ? 8 : 2 * *cap;
        *arr = k_xrealloc(*arr, *cap * sizeof(**arr));
    }
    (*arr)[(*count)++] = w;
}

/* Takes an ACTIVE watcher out of the hub, now or (while publishing) right after. */
static void unregister(struct kv_watch_hub *hub, struct kv_watcher *w, enum kv_watcher_state state)
{
    k_assert(w->state == KV_WATCHER_ACTIVE);
    k_assert(state != KV_WATCHER_ACTIVE);
    w->state = state;
    hub->watcher_count--;
    if (hub->publishing) {
        if (!w->unlink_pending) {
            w->unlink_pending = true;
            push_ptr(&hub->pending, &hub->pending_count, &hub->pending_cap, w);
        }
    } else {
        unlink_now(hub, w);
    }
}

static void watcher_destroy(struct kv_watcher *w)
{
    while (w->queue_count > 0) {
        kv_event_unref(w->queue[w->queue_head]);
        w->queue_head = (w->queue_head + 1) % w->queue_max;
        w->queue_count--;
    }
    struct kv_watch_hub *hub = w->hub;
    if (hub != NULL) {
        if (w->all_prev != NULL)
            w->all_prev->all_next = w->all_next;
        else
            hub->all = w->all_next;
        if (w->all_next != NULL) w->all_next->all_prev = w->all_prev;
    }
    free(w->queue);
    free(w);
}

/* Ends a publish (or reset): unlinks watchers unregistered meanwhile, frees the freed ones. */
static void publish_finish(struct kv_watch_hub *hub)
{
    hub->publishing = false;
    for (size_t i = 0; i < hub->pending_count; i++) {
        struct kv_watcher *w = hub->pending[i];
        w->unlink_pending = false;
        unlink_now(hub, w);
    }
    hub->pending_count = 0;
    for (size_t i = 0; i < hub->zombie_count; i++)
        watcher_destroy(hub->zombies[i]);
    hub->zombie_count = 0;
}

struct kv_watch_hub *kv_watch_hub_new(uint64_t etcd_index, size_t history_events_max,
                                      size_t history_bytes_max)
{
    struct kv_watch_hub *hub = k_xcalloc(1, sizeof(*hub));
    kv_history_init(&hub->history, history_events_max, history_bytes_max, etcd_index);
    hub->index = etcd_index;
    hub->bucket_count = 64;
    hub->buckets = k_xcalloc(hub->bucket_count, sizeof(*hub->buckets));
    return hub;
}

static void entries_clear(struct kv_watch_hub *hub)
{
    for (size_t i = 0; i < hub->bucket_count; i++) {
        while (hub->buckets[i] != NULL) {
            struct watch_entry *e = hub->buckets[i];
            for (size_t j = 0; j < e->count; j++)
                e->ws[j]->entry = NULL;
            entry_delete(hub, e);
        }
    }
}

void kv_watch_hub_free(struct kv_watch_hub *hub)
{
    if (hub == NULL) return;
    k_assert(!hub->publishing);
    for (struct kv_watcher *w = hub->all; w != NULL; w = w->all_next) {
        if (w->state == KV_WATCHER_ACTIVE) w->state = KV_WATCHER_CLOSED;
        w->hub = NULL;
        w->all_prev = NULL;
    }
    entries_clear(hub);
    kv_history_deinit(&hub->history);
    free(hub->buckets);
    free(hub->pending);
    free(hub->zombies);
    free(hub);
}

/* etcd's isHidden(watchPath, keyPath): a '_' component in key below watch. */
static bool hidden_below(const char *watch, size_t wlen, const char *key, size_t klen)
{
    if (wlen > klen) return false;
    size_t i = wlen == 1 ? 0 : wlen;
    for (; i + 1 < klen; i++) {
        if (key[i] == '/' && key[i + 1] == '_') return true;
    }
    return false;
}

static void deliver(struct kv_watch_hub *hub, struct kv_watcher *w, struct kv_event *ev)
{
    if (w->queue_count == w->queue_max) {
        unregister(hub, w, KV_WATCHER_CUT_OFF);
    } else {
        w->queue[(w->queue_head + w->queue_count) % w->queue_max] = kv_event_ref(ev);
        w->queue_count++;
        if (!w->stream) unregister(hub, w, KV_WATCHER_DONE);
    }
    w->cb(w, w->data);
}

static void notify_path(struct kv_watch_hub *hub, const char *p, size_t plen, struct kv_event *ev,
                        bool deleted)
{
    struct watch_entry *e = entry_find(hub, p, plen);
    if (e == NULL) return;
    bool original = ev->node.key_len == plen && memcmp(ev->node.key, p, plen) == 0;
    if (!original && hidden_below(p, plen, ev->node.key, ev->node.key_len)) return;
    for (size_t i = 0; i < e->count; i++) {
        struct kv_watcher *w = e->ws[i];
        if (w->state != KV_WATCHER_ACTIVE) continue;
        if (!(w->recursive || original || deleted)) continue;
        if (ev->index < w->since_index) continue;
        deliver(hub, w, ev);
    }
}

static void publish_one(struct kv_watch_hub *hub, struct kv_event *ev)
{
    k_assert(ev->index == hub->index + 1);
    k_assert(ev->has_node && ev->node.key != NULL);
    kv_history_add(&hub->history, ev);
    hub->index = ev->index;
    if (!ev->refresh) {
        bool deleted = ev->action == KV_ACTION_DELETE ||
                       ev->action == KV_ACTION_COMPARE_AND_DELETE || ev->action == KV_ACTION_EXPIRE;
        if (deleted) {
            for (size_t i = 0; i < ev->removed_count; i++) {
                notify_path(hub, ev->removed_buf + ev->removed_offs[2 * i],
                            ev->removed_offs[2 * i + 1], ev, true);
            }
        }
        /* Walk "/", "/a", "/a/b", ... as etcd's notify does. */
        const char *k = ev->node.key;
        notify_path(hub, "/", 1, ev, false);
        for (size_t i = 1; i <= ev->node.key_len; i++) {
            if (i == ev->node.key_len || k[i] == '/') notify_path(hub, k, i, ev, false);
        }
    }
    kv__event_drop_removed(ev);
}

void kv_watch_hub_publish(struct kv_watch_hub *hub, struct kv_event *const *events, size_t n)
{
    k_assert(!hub->publishing);
    hub->publishing = true;
    for (size_t i = 0; i < n; i++)
        publish_one(hub, events[i]);
    publish_finish(hub);
}

void kv_watch_hub_reset(struct kv_watch_hub *hub, uint64_t etcd_index)
{
    k_assert(!hub->publishing);
    hub->publishing = true;
    for (struct kv_watcher *w = hub->all; w != NULL; w = w->all_next) {
        if (w->state != KV_WATCHER_ACTIVE) continue;
        unregister(hub, w, KV_WATCHER_CLOSED);
        w->cb(w, w->data);
    }
    publish_finish(hub);
    size_t events_max = hub->history.cap;
    size_t bytes_max = hub->history.bytes_max;
    kv_history_deinit(&hub->history);
    kv_history_init(&hub->history, events_max, bytes_max, etcd_index);
    hub->index = etcd_index;
}

uint64_t kv_watch_hub_index(const struct kv_watch_hub *hub)
{
    return hub->index;
}

size_t kv_watch_hub_watcher_count(const struct kv_watch_hub *hub)
{
    return hub->watcher_count;
}

int kv_watch_add(struct kv_watch_hub *hub, const struct kv_watch_opts *opts, kv_watch_cb cb,
                 void *data, struct kv_watcher **out, uint64_t *etcd_index, struct kv_error *err)
{
    k_assert(!hub->publishing);
    k_assert(cb != NULL);
    /* Any key can be watched, also one beyond the store's limits (it never changes, but an
     * ancestor's delete can still be found in history). */
    size_t key_len;
    uint32_t depth;
    char *key = kv__path_clean_alloc(opts->key, opts->key_len, &key_len, &depth);
    uint64_t since = opts->wait_index != 0 ? opts->wait_index : hub->index + 1;
    struct kv_event *hit;
    int rc = kv_history_scan(&hub->history, key, key_len, opts->recursive, since, &hit, err);
    if (rc < 0) {
        free(key);
        err->index = hub->index;
        return rc;
    }
    struct kv_watcher *w = k_xcalloc(1, sizeof(*w));
    w->hub = hub;
    w->cb = cb;
    w->data = data;
    w->recursive = opts->recursive;
    w->stream = opts->stream;
    w->since_index = since;
    w->queue_max = opts->queue_max != 0 ? opts->queue_max : KV_WATCH_QUEUE_MAX_DEFAULT;
    w->queue = k_xcalloc(w->queue_max, sizeof(*w->queue));
    w->all_next = hub->all;
    if (hub->all != NULL) hub->all->all_prev = w;
    hub->all = w;
    if (hit != NULL) {
        w->queue[0] = kv_event_ref(hit);
        w->queue_count = 1;
        w->state = KV_WATCHER_DONE;
    } else {
        struct watch_entry *e = entry_get(hub, key, key_len);
        if (e->count == e->cap) {
            e->cap = e->cap == 0 ? 4 : 2 * e->cap;
            e->ws = k_xrealloc(e->ws, e->cap * sizeof(*e->ws));
        }
        e->ws[e->count++] = w;
        w->entry = e;
        w->state = KV_WATCHER_ACTIVE;
        hub->watcher_count++;
    }
    free(key);
    *out = w;
    *etcd_index = hub->index;
    return 0;
}

struct kv_event *kv_watcher_take(struct kv_watcher *w)
{
    if (w->queue_count == 0) return NULL;
    struct kv_event *ev = w->queue[w->queue_head];
    w->queue[w->queue_head] = NULL;
    w->queue_head = (w->queue_head + 1) % w->queue_max;
    w->queue_count--;
    return ev;
}

enum kv_watcher_state kv_watcher_state(const struct kv_watcher *w)
{
    return w->state;
}

void kv_watcher_free(struct kv_watcher *w)
{
    if (w == NULL) return;
    k_assert(!w->freed);
    struct kv_watch_hub *hub = w->hub;
    if (hub != NULL && w->state == KV_WATCHER_ACTIVE) unregister(hub, w, KV_WATCHER_CLOSED);
    if (hub != NULL && hub->publishing) {
        w->freed = true;
        push_ptr(&hub->zombies, &hub->zombie_count, &hub->zombie_cap, w);
        return;
    }
    if (hub != NULL) unlink_now(hub, w);
    watcher_destroy(w);
}
