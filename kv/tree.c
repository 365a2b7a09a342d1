/* The tree of nodes in LMDB: record encoding, lookups, children ranges, puts that keep the
 * expiry index in step, and subtree removal. Layout in kv/kv_int.h. */
#include <errno.h>
#include <stdbool.h>
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

static void put_u32le(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

size_t kv__rec_size(const struct kv__rec *r)
{
    size_t n = KV__RECORD_HEAD_BYTES + r->value_len;
    if (r->flags & KV__FLAG_LONG_PATH) n += 4 + r->path_len;
    return n;
}

void kv__rec_encode(uint8_t *out, const struct kv__rec *r)
{
    out[0] = r->flags;
    kv__put_u64le(out + 1, r->created_index);
    kv__put_u64le(out + 9, r->modified_index);
    kv__put_u64le(out + 17, (r->flags & KV__FLAG_EXPIRES) ? (uint64_t)r->expiration_ns : 0);
    size_t off = KV__RECORD_HEAD_BYTES;
    if (r->flags & KV__FLAG_LONG_PATH) {
        k_assert(r->path_len > KV__PLAIN_PATH_MAX && r->path_len <= UINT32_MAX);
        put_u32le(out + off, (uint32_t)r->path_len);
        memcpy(out + off + 4, r->path, r->path_len);
        off += 4 + r->path_len;
    }
    if (r->value_len > 0) memcpy(out + off, r->value, r->value_len);
}

int kv__rec_decode(const MDB_val *v, struct kv__rec *r)
{
    if (v->mv_size < KV__RECORD_HEAD_BYTES) return K_ECORRUPT;
    const uint8_t *p = v->mv_data;
    r->flags = p[0];
    if (r->flags & ~(KV__FLAG_DIR | KV__FLAG_EXPIRES | KV__FLAG_LONG_PATH)) return K_ECORRUPT;
    r->created_index = kv__get_u64le(p + 1);
    r->modified_index = kv__get_u64le(p + 9);
    r->expiration_ns = (int64_t)kv__get_u64le(p + 17);
    size_t off = KV__RECORD_HEAD_BYTES;
    r->path = NULL;
    r->path_len = 0;
    if (r->flags & KV__FLAG_LONG_PATH) {
        if (v->mv_size - off < 4) return K_ECORRUPT;
        size_t plen = get_u32le(p + off);
        off += 4;
        if (plen <= KV__PLAIN_PATH_MAX || plen > v->mv_size - off) return K_ECORRUPT;
        r->path = (const char *)p + off;
        r->path_len = plen;
        off += plen;
    }
    r->value = (const char *)p + off;
    r->value_len = v->mv_size - off;
    if ((r->flags & KV__FLAG_DIR) && r->value_len != 0) return K_ECORRUPT;
    return 0;
}

/* The path and depth of the node stored under key k with record r: from the key in the plain
 * form, from the record in the long one. */
static int key_path(const MDB_val *k, const struct kv__rec *r, const char **path, size_t *len,
                    uint32_t *depth)
{
    const uint8_t *kb = k->mv_data;
    bool long_key = k->mv_size == KV__LONG_KEY_BYTES;
    if (k->mv_size < 3 || (!long_key && k->mv_size > 2 + KV__PLAIN_PATH_MAX)) return K_ECORRUPT;
    if (long_key != ((r->flags & KV__FLAG_LONG_PATH) != 0)) return K_ECORRUPT;
    *depth = (uint32_t)kb[0] << 8 | kb[1];
    if (!long_key) {
        *path = (const char *)kb + 2;
        *len = k->mv_size - 2;
        return 0;
    }
    if (memcmp(r->path, kb + 2, KV__LONG_PREFIX) != 0) return K_ECORRUPT;
    *path = r->path;
    *len = r->path_len;
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
    rc = kv__rec_decode(&v, r);
    if (rc < 0) return rc;
    bool long_key = len > KV__PLAIN_PATH_MAX; /* a plain key is the path itself: found, it is p */
    if (long_key != ((r->flags & KV__FLAG_LONG_PATH) != 0)) return K_ECORRUPT;
    /* Under a long key, another path would mean damage or a SHA-256 collision (none is known). */
    if (long_key && (r->path_len != len || memcmp(r->path, p, len) != 0)) return K_ECORRUPT;
    return 0;
}

int kv__tree_get_by_key(const struct kv_store *s, MDB_txn *txn, const MDB_val *key,
                        struct kv__rec *r, const char **path, size_t *len, uint32_t *depth)
{
    MDB_val k = *key;
    MDB_val v;
    int rc = mdb_get(txn, s->dbi_nodes, &k, &v);
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    rc = kv__rec_decode(&v, r);
    if (rc < 0) return rc;
    return key_path(key, r, path, len, depth);
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
    /* The record names its path exactly when the key cannot (kv_int.h). */
    struct kv__rec w = *r;
    w.flags &= (uint8_t)~KV__FLAG_LONG_PATH;
    w.path = NULL;
    w.path_len = 0;
    if (len > KV__PLAIN_PATH_MAX) {
        w.flags |= KV__FLAG_LONG_PATH;
        w.path = p;
        w.path_len = len;
    }
    MDB_val v = { .mv_size = kv__rec_size(&w), .mv_data = NULL };
    rc = mdb_put(txn, s->dbi_nodes, &k, &v, MDB_RESERVE);
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    kv__rec_encode(v.mv_data, &w);
    if (w.flags & KV__FLAG_EXPIRES) {
        uint8_t ek[KV__EXPIRY_KEY_BYTES];
        expiry_key(ek, &w, depth);
        MDB_val ekv = { .mv_size = sizeof(ek), .mv_data = ek };
        rc = mdb_put(txn, s->dbi_expiry, &ekv, &k, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST) return K_ECORRUPT; /* uniqueness argued in kv_int.h */
        if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    }
    return 0;
}

/* The key prefix shared by the children of dir P: (depth + 1, P + "/"), the path part cut to
 * KV__LONG_PREFIX bytes (*cut tells). */
static size_t children_prefix(uint8_t *out, const char *p, size_t len, uint32_t depth, bool *cut)
{
    uint32_t d = depth + 1;
    out[0] = (uint8_t)(d >> 8);
    out[1] = (uint8_t)d;
    size_t n = depth == 0 ? 0 : len; /* the root's children start with "/" alone */
    *cut = n + 1 > KV__LONG_PREFIX;
    if (*cut) {
        memcpy(out + 2, p, KV__LONG_PREFIX);
        return 2 + KV__LONG_PREFIX;
    }
    memcpy(out + 2, p, n);
    out[2 + n] = '/';
    return n + 3;
}

struct child {
    const char *path; /* LMDB memory (no write happens while children are listed) */
    size_t len;
    struct kv__rec rec;
};

static int child_cmp(const void *a, const void *b)
{
    const struct child *x = a;
    const struct child *y = b;
    int c = memcmp(x->path, y->path, x->len < y->len ? x->len : y->len);
    if (c != 0) return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* Decodes the entry at the cursor; *is_child is false when the range was cut and the entry
 * belongs to another dir sharing the cut prefix. */
static int child_read(const MDB_val *k, const MDB_val *v, const char *dir, size_t dir_len,
                      struct child *c, bool *is_child)
{
    int rc = kv__rec_decode(v, &c->rec);
    if (rc < 0) return rc;
    uint32_t depth;
    rc = key_path(k, &c->rec, &c->path, &c->len, &depth);
    if (rc < 0) return rc;
    *is_child =
            c->len > dir_len + 1 && memcmp(c->path, dir, dir_len) == 0 && c->path[dir_len] == '/';
    return 0;
}

int kv__tree_children(const struct kv_store *s, MDB_txn *txn, const char *p, size_t len,
                      uint32_t depth, kv__child_cb cb, void *data)
{
    uint8_t prefix[2 + KV__LONG_PREFIX + 1];
    bool cut;
    size_t plen = children_prefix(prefix, p, len, depth, &cut);
    size_t dir_len = depth == 0 ? 0 : len;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->dbi_nodes, &cur);
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    MDB_val k = { .mv_size = plen, .mv_data = prefix };
    MDB_val v;
    struct child *run = NULL;
    size_t run_cap = 0;
    int ret = 0;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (ret == 0 && rc == MDB_SUCCESS && k.mv_size > plen &&
           memcmp(k.mv_data, prefix, plen) == 0) {
        struct child c;
        bool is_child;
        ret = child_read(&k, &v, p, dir_len, &c, &is_child);
        if (ret < 0) break;
        if (k.mv_size < 2 + KV__LONG_PREFIX) {
            if (is_child) ret = cb(data, c.path, c.len, &c.rec);
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        /* Keys sharing their first KV__LONG_PREFIX path bytes are contiguous, but among them
         * key order is not path order (digests, or a plain key against a long one): list the
         * run sorted by path. */
        uint8_t run_key[2 + KV__LONG_PREFIX];
        memcpy(run_key, k.mv_data, sizeof(run_key));
        size_t run_n = 0;
        for (;;) {
            if (is_child) {
                if (run_n == run_cap) {
                    run_cap = run_cap == 0 ? 8 : 2 * run_cap;
                    run = k_xrealloc(run, run_cap * sizeof(*run));
                }
                run[run_n++] = c;
            }
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            if (rc != MDB_SUCCESS || k.mv_size < sizeof(run_key) ||
                memcmp(k.mv_data, run_key, sizeof(run_key)) != 0)
                break;
            ret = child_read(&k, &v, p, dir_len, &c, &is_child);
            if (ret < 0) break;
        }
        if (run_n > 1) qsort(run, run_n, sizeof(*run), child_cmp);
        for (size_t i = 0; ret == 0 && i < run_n; i++)
            ret = cb(data, run[i].path, run[i].len, &run[i].rec);
    }
    if (ret == 0 && rc != MDB_SUCCESS && rc != MDB_NOTFOUND) ret = kv__mdb_err(rc);
    free(run);
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
        struct kv__rec rec; /* value and path pointers not kept */
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
    it->rec.path = NULL;
    it->rec.path_len = 0;
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
