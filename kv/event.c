/* Events: allocation, reference counting, action names, and turning a stored record into the
 * node etcd shows (its Repr with recursive=false). */
#include "kv/event.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "kv/kv_int.h"

const char *kv_action_name(enum kv_action action)
{
    switch (action) {
    case KV_ACTION_NONE:
        return "";
    case KV_ACTION_GET:
        return "get";
    case KV_ACTION_SET:
        return "set";
    case KV_ACTION_CREATE:
        return "create";
    case KV_ACTION_UPDATE:
        return "update";
    case KV_ACTION_COMPARE_AND_SWAP:
        return "compareAndSwap";
    case KV_ACTION_DELETE:
        return "delete";
    case KV_ACTION_COMPARE_AND_DELETE:
        return "compareAndDelete";
    case KV_ACTION_EXPIRE:
        return "expire";
    }
    return "";
}

struct kv_event *kv__event_new(enum kv_action action, uint64_t index)
{
    struct kv_event *ev = k_xcalloc(1, sizeof(*ev));
    ev->action = action;
    ev->index = index;
    ev->refs = 1;
    kv_arena_init(&ev->arena);
    return ev;
}

struct kv_event *kv_event_ref(struct kv_event *ev)
{
    k_assert(ev->refs > 0);
    ev->refs++;
    return ev;
}

void kv_event_unref(struct kv_event *ev)
{
    if (ev == NULL) return;
    k_assert(ev->refs > 0);
    if (--ev->refs > 0) return;
    kv__event_drop_removed(ev);
    kv_arena_deinit(&ev->arena);
    free(ev);
}

int kv_event_http_status(const struct kv_event *ev)
{
    if (ev->action == KV_ACTION_CREATE) return 201;
    if (ev->action == KV_ACTION_SET && !ev->has_prev_node) return 201;
    return 200;
}

int64_t kv__ttl_s(int64_t expiration_ns, int64_t now_ns)
{
    /* Go: ttl := d / time.Second; if d % time.Second > 0 { ttl++ } (v2store/node.go). The
     * difference is computed in 128 bits: Go's Time.Sub saturates, ours cannot overflow. */
    __int128 d = (__int128)expiration_ns - (__int128)now_ns;
    __int128 ttl = d / 1000000000;
    if (d % 1000000000 > 0) ttl++;
    if (ttl > INT64_MAX) return INT64_MAX;
    if (ttl < INT64_MIN) return INT64_MIN;
    return (int64_t)ttl;
}

void kv__node_fill(struct kv_event *ev, struct kv_node *n, const char *p, size_t len,
                   const struct kv__rec *r, bool with_value, int64_t now_ns)
{
    memset(n, 0, sizeof(*n));
    n->key = kv_arena_memdup(&ev->arena, p, len);
    n->key_len = len;
    n->dir = (r->flags & KV__FLAG_DIR) != 0;
    if (!n->dir && with_value) {
        n->value = kv_arena_memdup(&ev->arena, r->value, r->value_len);
        n->value_len = r->value_len;
    }
    if (r->flags & KV__FLAG_EXPIRES) {
        n->has_expiration = true;
        n->expiration_ns = r->expiration_ns;
        n->ttl_s = kv__ttl_s(r->expiration_ns, now_ns);
    }
    n->modified_index = r->modified_index;
    n->created_index = r->created_index;
}

void kv__event_add_removed(struct kv_event *ev, const char *p, size_t len)
{
    /* Capacity doubles when the count reaches a power of two; the buffer grows by doubling. */
    size_t n = ev->removed_count;
    size_t used = n == 0 ? 0 : ev->removed_offs[2 * (n - 1)] + ev->removed_offs[2 * (n - 1) + 1];
    if ((n & (n - 1)) == 0) {
        size_t cap = n == 0 ? 1 : 2 * n;
        ev->removed_offs = k_xrealloc(ev->removed_offs, 2 * cap * sizeof(size_t));
    }
    size_t buf_cap = 64;
    while (buf_cap < used)
        buf_cap *= 2;
    size_t need_cap = buf_cap;
    while (need_cap < used + len)
        need_cap *= 2;
    if (ev->removed_buf == NULL || need_cap != buf_cap) {
        ev->removed_buf = k_xrealloc(ev->removed_buf, need_cap);
    }
    memcpy(ev->removed_buf + used, p, len);
    ev->removed_offs[2 * n] = used;
    ev->removed_offs[2 * n + 1] = len;
    ev->removed_count = n + 1;
}

void kv__event_drop_removed(struct kv_event *ev)
{
    free(ev->removed_buf);
    free(ev->removed_offs);
    ev->removed_buf = NULL;
    ev->removed_offs = NULL;
    ev->removed_count = 0;
}
