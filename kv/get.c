/* Reads (spec §4.5): one node, a dir with its direct visible children, or a whole visible
 * subtree. Children come from the contiguous key range of their dir (kv/kv_int.h), so a
 * non-recursive listing never touches grandchildren. */
#include "kv/get.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "kv/kv_int.h"

int kv__walk_error(const struct kv_store *s, MDB_txn *txn, const char *p, size_t len,
                   uint32_t depth, uint64_t etcd_index, struct kv_error *err)
{
    for (uint32_t i = 1; i <= depth; i++) {
        size_t plen = kv__path_prefix_len(p, len, i);
        struct kv__rec r;
        int rc = K_ENOTFOUND; /* a prefix beyond the limits cannot exist */
        if (plen <= s->limits.key_bytes_max && i <= s->limits.depth_max)
            rc = kv__tree_get(s, txn, p, plen, i, &r);
        if (rc == K_ENOTFOUND) {
            return kv_error_set_path(err, KV_ECODE_KEY_NOT_FOUND, etcd_index, p, plen);
        }
        if (rc < 0) return rc;
        if (!(r.flags & KV__FLAG_DIR) && i < depth) {
            return kv_error_set_path(err, KV_ECODE_NOT_DIR, etcd_index, p, plen);
        }
    }
    /* The node exists after all (the caller saw it missing): report it missing as asked. */
    return kv_error_set_path(err, KV_ECODE_KEY_NOT_FOUND, etcd_index, p, len);
}

int kv__long_path_error(const struct kv_store *s, MDB_txn *txn, const char *raw, size_t raw_len,
                        uint64_t etcd_index, struct kv_error *err)
{
    size_t len;
    uint32_t depth;
    char *p = kv__path_clean_alloc(raw, raw_len, &len, &depth);
    int rc = kv__walk_error(s, txn, p, len, depth, etcd_index, err);
    free(p);
    return rc;
}

struct listing {
    struct kv_event *ev;
    int64_t now_ns;
    struct kv_node *items;
    size_t count;
    size_t cap;
};

static int listing_cb(void *data, const char *path, size_t len, const struct kv__rec *r)
{
    struct listing *l = data;
    if (kv__path_is_hidden(path, len)) return 0;
    if (l->count == l->cap) {
        l->cap = l->cap == 0 ? 16 : 2 * l->cap;
        l->items = k_xrealloc(l->items, l->cap * sizeof(*l->items));
    }
    kv__node_fill(l->ev, &l->items[l->count++], path, len, r, true, l->now_ns);
    return 0;
}

/* Fills n->nodes with the visible children of dir n (at depth), recursing when asked. */
static int list_dir(const struct kv_store *s, MDB_txn *txn, struct kv_event *ev, struct kv_node *n,
                    const char *p, size_t len, uint32_t depth, bool recursive, int64_t now_ns)
{
    struct listing l = { .ev = ev, .now_ns = now_ns };
    int rc = kv__tree_children(s, txn, p, len, depth, listing_cb, &l);
    if (rc < 0) {
        free(l.items);
        return rc;
    }
    if (l.count > 0) {
        n->nodes = kv_arena_alloc(&ev->arena, l.count * sizeof(*n->nodes));
        memcpy(n->nodes, l.items, l.count * sizeof(*n->nodes));
        n->node_count = l.count;
    }
    free(l.items);
    if (!recursive) return 0;
    for (size_t i = 0; i < n->node_count; i++) {
        struct kv_node *c = &n->nodes[i];
        if (!c->dir) continue;
        rc = list_dir(s, txn, ev, c, c->key, c->key_len, depth + 1, true, now_ns);
        if (rc < 0) return rc;
    }
    return 0;
}

int kv__read(const struct kv_store *s, MDB_txn *txn, const struct kv__path *path, bool recursive,
             int64_t now_ns, uint64_t etcd_index, struct kv_event **out, struct kv_error *err)
{
    struct kv__rec r;
    if (path->depth == 0) {
        memset(&r, 0, sizeof(r));
        r.flags = KV__FLAG_DIR;
    } else {
        int rc = kv__tree_get(s, txn, path->buf, path->len, path->depth, &r);
        if (rc == K_ENOTFOUND) {
            return kv__walk_error(s, txn, path->buf, path->len, path->depth, etcd_index, err);
        }
        if (rc < 0) return rc;
    }
    struct kv_event *ev = kv__event_new(KV_ACTION_GET, etcd_index);
    ev->has_node = true;
    kv__node_fill(ev, &ev->node, path->buf, path->len, &r, true, now_ns);
    if (path->depth == 0) {
        ev->node.key = NULL; /* the root shows neither key nor indexes (spec §4.5) */
        ev->node.key_len = 0;
    }
    if (r.flags & KV__FLAG_DIR) {
        int rc = list_dir(s, txn, ev, &ev->node, path->buf, path->len, path->depth, recursive,
                          now_ns);
        if (rc < 0) {
            kv_event_unref(ev);
            return rc;
        }
    }
    *out = ev;
    return 0;
}

int kv_get(struct kv_store *s, const char *path, size_t path_len, bool recursive, bool sorted,
           int64_t now_ns, struct kv_event **out, struct kv_error *err)
{
    (void)sorted; /* children are listed in key order, which sorted asks for and unsorted
                   * allows (etcd's unsorted order is arbitrary) */
    struct kv__path p;
    int beyond_limits = kv__path_clean(&s->limits, path, path_len, &p, err);
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    uint64_t etcd_index;
    rc = kv__meta_get(s, txn, "index", &etcd_index);
    if (rc == 0 && beyond_limits < 0) {
        rc = kv__long_path_error(s, txn, path, path_len, etcd_index, err);
    } else if (rc == 0) {
        rc = kv__read(s, txn, &p, recursive, now_ns, etcd_index, out, err);
    }
    mdb_txn_abort(txn);
    return rc;
}
