/* The ring of past events of kv/history.h. */
#include "kv/history.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"

void kv_history_init(struct kv_history *h, size_t cap, size_t bytes_max, uint64_t etcd_index)
{
    h->cap = cap == 0 ? KV_HISTORY_EVENTS_MAX_DEFAULT : cap;
    h->bytes = 0;
    h->bytes_max = bytes_max == 0 ? KV_HISTORY_BYTES_MAX_DEFAULT : bytes_max;
    h->ring = k_xcalloc(h->cap, sizeof(*h->ring));
    h->front = 0;
    h->count = 0;
    h->start_index = etcd_index + 1;
    h->last_index = etcd_index;
}

void kv_history_deinit(struct kv_history *h)
{
    for (size_t i = 0; i < h->count; i++)
        kv_event_unref(h->ring[(h->front + i) % h->cap]);
    free(h->ring);
    memset(h, 0, sizeof(*h));
}

static void history_drop_oldest(struct kv_history *h)
{
    struct kv_event *old = h->ring[h->front];
    k_assert(h->bytes >= old->arena.total_bytes);
    h->bytes -= old->arena.total_bytes;
    kv_event_unref(old);
    h->ring[h->front] = NULL;
    h->front = (h->front + 1) % h->cap;
    h->count--;
}

void kv_history_add(struct kv_history *h, struct kv_event *ev)
{
    k_assert(ev->index == h->last_index + 1); /* every index has exactly one event */
    if (h->count == h->cap) history_drop_oldest(h);
    h->ring[(h->front + h->count) % h->cap] = kv_event_ref(ev);
    h->count++;
    h->bytes += ev->arena.total_bytes;
    while (h->count > 1 && h->bytes > h->bytes_max)
        history_drop_oldest(h);
    h->last_index = ev->index;
    h->start_index = h->ring[h->front]->index;
    k_assert(h->last_index - h->start_index + 1 == h->count);
}

static bool has_prefix(const char *s, size_t len, const char *prefix, size_t plen)
{
    return len >= plen && memcmp(s, prefix, plen) == 0;
}

static bool event_matches(const struct kv_event *e, const char *key, size_t key_len, bool recursive)
{
    const struct kv_node *n = &e->node;
    bool ok = n->key_len == key_len && memcmp(n->key, key, key_len) == 0;
    if (recursive && !ok) {
        /* etcd: strings.HasPrefix(e.Node.Key, key + "/"), with "/" for the root. */
        if (key_len == 1) {
            ok = n->key_len > 1;
        } else {
            ok = n->key_len > key_len && memcmp(n->key, key, key_len) == 0 &&
                 n->key[key_len] == '/';
        }
    }
    if (!ok && (e->action == KV_ACTION_DELETE || e->action == KV_ACTION_EXPIRE) &&
        e->has_prev_node && e->prev_node.dir) {
        ok = has_prefix(key, key_len, e->prev_node.key, e->prev_node.key_len);
    }
    return ok;
}

int kv_history_scan(const struct kv_history *h, const char *key, size_t key_len, bool recursive,
                    uint64_t since_index, struct kv_event **hit, struct kv_error *err)
{
    *hit = NULL;
    if (since_index < h->start_index) {
        return kv_error_set(err, KV_ECODE_EVENT_INDEX_CLEARED, 0,
                            "the requested history has been cleared [%llu/%llu]",
                            (unsigned long long)h->start_index, (unsigned long long)since_index);
    }
    if (since_index > h->last_index) return 0;
    for (size_t i = (size_t)(since_index - h->start_index); i < h->count; i++) {
        struct kv_event *e = h->ring[(h->front + i) % h->cap];
        if (e->refresh) continue;
        if (event_matches(e, key, key_len, recursive)) {
            *hit = e;
            return 0;
        }
    }
    return 0;
}
