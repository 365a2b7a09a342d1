/* The tree of nodes in LMDB: record encoding, lookups, children ranges, puts that keep the
 * expiry index in step, and subtree removal. Layout in kv/kv_int.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "kv/kv_int.h"

void kv__put_u64le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t kv__get_u64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void kv__put_u64be(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

int kv__mdb_err(int mdb_rc)
{
    k_assert(mdb_rc != MDB_SUCCESS);
    if (mdb_rc > 0) return -mdb_rc; /* an errno value */
    switch (mdb_rc) {
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
    case MDB_DBS_FULL:
    case MDB_READERS_FULL:
        return K_ELIMIT;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
        return K_ECORRUPT;
    case MDB_NOTFOUND:
        return K_ENOTFOUND;
    default:
        return -EIO;
    }
}

void kv__rec_encode(uint8_t *out, const struct kv__rec *r)
{
    out[0] = r->flags;
    kv__put_u64le(out + 1, r->created_index);
    kv__put_u64le(out + 9, r->modified_index);
    kv__put_u64le(out + 17, (r->flags & KV__FLAG_EXPIRES) ? (uint64_t)r->expiration_ns : 0);
    if (r->value_len > 0) memcpy(out + KV__RECORD_HEAD_BYTES, r->value, r->value_len);
}

int kv__rec_decode(const MDB_val *v, struct kv__rec *r)
{
    if (v->mv_size < KV__RECORD_HEAD_BYTES) return K_ECORRUPT;
    const uint8_t *p = v->mv_data;
    r->flags = p[0];
    if (r->flags & ~(KV__FLAG_DIR | KV__FLAG_EXPIRES)) return K_ECORRUPT;
    r->created_index = kv__get_u64le(p + 1);
    r->modified_index = kv__get_u64le(p + 9);
    r->expiration_ns = (int64_t)kv__get_u64le(p + 17);
    r->value = (const char *)p + KV__RECORD_HEAD_BYTES;
    r->value_len = v->mv_size - KV__RECORD_HEAD_BYTES;
    if ((r->flags & KV__FLAG_DIR) && r->value_len != 0) return K_ECORRUPT;
    return 0;
}

int kv__tree_get(const struct kv_store *s, MDB_txn *txn, const char *p, size_t len, uint32_t depth,
                 struct kv__rec *r)
{
    uint8_t kbuf[KV__NODE_KEY_BYTES_MAX];
    MDB_val k = { .mv_size = kv__node_key(kbuf, p, len, depth), .mv_data = kbuf };
    MDB_val v;
    int rc = mdb_get(txn, s->dbi_nodes, &k, &v);
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    return kv__rec_decode(&v, r);
}

static void expiry_key(uint8_t *out, const struct kv__rec *r, uint32_t depth)
{
    kv__put_u64be(out, (uint64_t)r->expiration_ns ^ (1ull << 63));
    kv__put_u64be(out + 8, r->created_index);
    out[16] = (uint8_t)(depth >> 8);
    out[17] = (uint8_t)depth;
}

static int expiry_del(const struct kv_store *s, MDB_txn *txn, const struct kv__rec *r,
                      uint32_t depth)
{
    uint8_t ek[KV__EXPIRY_KEY_BYTES];
    expiry_key(ek, r, depth);
    MDB_val k = { .mv_size = sizeof(ek), .mv_data = ek };
    int rc = mdb_del(txn, s->dbi_expiry, &k, NULL);
    if (rc == MDB_NOTFOUND) return K_ECORRUPT; /* the index lost an entry the node names */
    return rc == MDB_SUCCESS ? 0 : kv__mdb_err(rc);
}

int kv__tree_put(const struct kv_store *s, MDB_txn *txn, const char *p, size_t len, uint32_t depth,
                 const struct kv__rec *r, const struct kv__rec *old)
{
    k_assert(!(r->flags & KV__FLAG_DIR) || r->value_len == 0);
    uint8_t kbuf[KV__NODE_KEY_BYTES_MAX];
    MDB_val k = { .mv_size = kv__node_key(kbuf, p, len, depth), .mv_data = kbuf };
    int rc;
    if (old != NULL && (old->flags & KV__FLAG_EXPIRES)) {
        rc = expiry_del(s, txn, old, depth);
        if (rc < 0) return rc;
    }
    MDB_val v = { .mv_size = KV__RECORD_HEAD_BYTES + r->value_len, .mv_data = NULL };
    rc = mdb_put(txn, s->dbi_nodes, &k, &v, MDB_RESERVE);
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    kv__rec_encode(v.mv_data, r);
    if (r->flags & KV__FLAG_EXPIRES) {
        uint8_t ek[KV__EXPIRY_KEY_BYTES];
        expiry_key(ek, r, depth);
        MDB_val ekv = { .mv_size = sizeof(ek), .mv_data = ek };
        rc = mdb_put(txn, s->dbi_expiry, &ekv, &k, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST) return K_ECORRUPT; /* uniqueness argued in kv_int.h */
        if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    }
    return 0;
}

/* The prefix (depth + 1, P + "/") shared by the children of dir P. */
static size_t children_prefix(uint8_t *out, const char *p, size_t len, uint32_t depth)
{
    uint32_t d = depth + 1;
    out[0] = (uint8_t)(d >> 8);
    out[1] = (uint8_t)d;
    if (depth == 0) {
        out[2] = '/';
        return 3;
    }
    memcpy(out + 2, p, len);
    out[2 + len] = '/';
    return len + 3;
}

int kv__tree_children(const struct kv_store *s, MDB_txn *txn, const char *p, size_t len,
                      uint32_t depth, kv__child_cb cb, void *data)
{
    uint8_t prefix[KV__NODE_KEY_BYTES_MAX + 1];
    size_t plen = children_prefix(prefix, p, len, depth);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->dbi_nodes, &cur);
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    MDB_val k = { .mv_size = plen, .mv_data = prefix };
    MDB_val v;
    int op = MDB_SET_RANGE;
    int ret = 0;
    for (;;) {
        rc = mdb_cursor_get(cur, &k, &v, op);
        op = MDB_NEXT;
        if (rc == MDB_NOTFOUND) break;
        if (rc != MDB_SUCCESS) {
            ret = kv__mdb_err(rc);
            break;
        }
        if (k.mv_size <= plen || memcmp(k.mv_data, prefix, plen) != 0) break;
        struct kv__rec r;
        ret = kv__rec_decode(&v, &r);
        if (ret < 0) break;
        ret = cb(data, (const char *)k.mv_data + 2, k.mv_size - 2, &r);
        if (ret != 0) break;
    }
    mdb_cursor_close(cur);
    return ret;
}

static int first_child_cb(void *data, const char *path, size_t len, const struct kv__rec *r)
{
    *(bool *)data = true;
    return 1;
}

int kv__tree_has_children(const struct kv_store *s, MDB_txn *txn, const char *p, size_t len,
                          uint32_t depth, bool *has)
{
    *has = false;
    int rc = kv__tree_children(s, txn, p, len, depth, first_child_cb, has);
    return rc < 0 ? rc : 0;
}

/* Children of one dir, copied out of LMDB so they can be deleted after the cursor closes. */
struct child_list {
    char *paths; /* concatenated paths */
    size_t paths_len;
    size_t paths_cap;
    struct child_item {
        size_t off;
        size_t len;
        struct kv__rec rec; /* value pointers not kept */
    } * items;
    size_t count;
    size_t cap;
};

static int collect_cb(void *data, const char *path, size_t len, const struct kv__rec *r)
{
    struct child_list *l = data;
    if (l->paths_len + len > l->paths_cap) {
        l->paths_cap = (l->paths_cap + len) * 2;
        l->paths = k_xrealloc(l->paths, l->paths_cap);
    }
    if (l->count == l->cap) {
        l->cap = l->cap == 0 ? 16 : l->cap * 2;
        l->items = k_xrealloc(l->items, l->cap * sizeof(*l->items));
    }
    memcpy(l->paths + l->paths_len, path, len);
    struct child_item *it = &l->items[l->count++];
    it->off = l->paths_len;
    it->len = len;
    it->rec = *r;
    it->rec.value = NULL;
    it->rec.value_len = 0;
    l->paths_len += len;
    return 0;
}

static int node_del(const struct kv_store *s, MDB_txn *txn, const char *p, size_t len,
                    uint32_t depth, const struct kv__rec *r)
{
    uint8_t kbuf[KV__NODE_KEY_BYTES_MAX];
    MDB_val k = { .mv_size = kv__node_key(kbuf, p, len, depth), .mv_data = kbuf };
    int rc = mdb_del(txn, s->dbi_nodes, &k, NULL);
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    if (r->flags & KV__FLAG_EXPIRES) return expiry_del(s, txn, r, depth);
    return 0;
}

int kv__tree_remove(const struct kv_store *s, MDB_txn *txn, const char *p, size_t len,
                    uint32_t depth, const struct kv__rec *r, struct kv_event *ev)
{
    if (r->flags & KV__FLAG_DIR) {
        struct child_list l = { 0 };
        int rc = kv__tree_children(s, txn, p, len, depth, collect_cb, &l);
        for (size_t i = 0; rc == 0 && i < l.count; i++) {
            rc = kv__tree_remove(s, txn, l.paths + l.items[i].off, l.items[i].len, depth + 1,
                                 &l.items[i].rec, ev);
        }
        free(l.paths);
        free(l.items);
        if (rc < 0) return rc;
    }
    if (ev != NULL) kv__event_add_removed(ev, p, len);
    return node_del(s, txn, p, len, depth, r);
}
