/* The v2 store's write operations, applied at raft indexes (kv/apply.h). Each operation follows
 * etcd 3.4's v2store (store.go, node.go) and applier (etcdserver/apply_v2.go) step by step, in
 * the same order of checks, so that errors, causes and indexes match spec/etcd-v2-api.md §4.6 to
 * §4.10. Every check that can fail runs before the first write, so a failed request changes
 * nothing. No clock, no randomness, no allocation-order dependence: deterministic. */
#include "kv/apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/err.h"
#include "kv/kv_int.h"
#include "proto/kv.pb-c.h"

struct apply_ctx {
    struct kv_store *s;
    MDB_txn *txn;
    uint64_t index; /* the etcd index: the last event's */
    struct kv_batch *batch;
};

static void batch_add_event(struct kv_batch *b, struct kv_event *ev)
{
    size_t n = b->event_count;
    if ((n & (n - 1)) == 0) {
        size_t cap = n == 0 ? 4 : 2 * n;
        if (cap < 4) cap = 4;
        if (n == 0 || n >= 4) b->events = k_xrealloc(b->events, cap * sizeof(*b->events));
    }
    b->events[b->event_count++] = kv_event_ref(ev);
    k_assert(n == 0 || b->events[n - 1]->index < ev->index);
}

/* Whether the request would store a node at its path (so the path must fit the limits). Other
 * requests only read or change existing nodes: beyond the limits they find nothing (100). */
static bool request_stores_path(const Kvpb__KvRequest *req)
{
    enum kv_action a = kv_request_action(req);
    return a == KV_ACTION_SET || a == KV_ACTION_CREATE;
}

/* The request-level checks: value sizes and the TTL (index 0 errors). */
static int request_check_values(const struct kv_limits *limits, const Kvpb__KvRequest *req,
                                struct kv_error *err)
{
    if (req->value.len > limits->value_bytes_max) {
        return kv_error_set(err, KV_ECODE_INVALID_FIELD, 0, "value is larger than %zu bytes",
                            limits->value_bytes_max);
    }
    if (req->prev_value.len > limits->value_bytes_max) {
        return kv_error_set(err, KV_ECODE_INVALID_FIELD, 0, "prevValue is larger than %zu bytes",
                            limits->value_bytes_max);
    }
    /* expiration = time + ttl must fit a signed 64-bit ns count (spec §4.7: etcd misbehaves
     * beyond; ketch answers 202 as the spec allows). */
    if (req->has_ttl) {
        const uint64_t ttl_s_max = (uint64_t)INT64_MAX / 1000000000u;
        int64_t sum;
        if (req->ttl_s > ttl_s_max ||
            __builtin_add_overflow(req->time_ns, (int64_t)req->ttl_s * 1000000000, &sum)) {
            return kv_error_set(err, KV_ECODE_TTL_NAN, 0, "invalid value for \"ttl\"");
        }
    }
    return 0;
}

int kv_request_check(const struct kv_limits *limits, const Kvpb__KvRequest *req,
                     struct kv_error *err)
{
    int rc = request_check_values(limits, req, err);
    if (rc < 0 || !request_stores_path(req)) return rc;
    struct kv__path p;
    return kv__path_clean(limits, (const char *)req->path.data, req->path.len, &p, err);
}

/* The expiration a request asks for: none without a ttl; before 2000 counts as none. */
static void request_expiration(const Kvpb__KvRequest *req, bool *has, int64_t *exp)
{
    *has = false;
    *exp = 0;
    if (!req->has_ttl) return;
    int64_t e = req->time_ns + (int64_t)req->ttl_s * 1000000000;
    if (e < KV__MIN_EXPIRE_NS) return;
    *has = true;
    *exp = e;
}

static void rec_set_expiration(struct kv__rec *r, const Kvpb__KvRequest *req)
{
    bool has;
    int64_t exp;
    request_expiration(req, &has, &exp);
    r->flags = (uint8_t)((r->flags & ~KV__FLAG_EXPIRES) | (has ? KV__FLAG_EXPIRES : 0));
    r->expiration_ns = has ? exp : 0;
}

/* Looks up the node at path; on absence fills err with etcd's walk error (100 or 104). */
static int node_lookup(struct apply_ctx *c, const struct kv__path *p, struct kv__rec *r,
                       struct kv_error *err)
{
    int rc = kv__tree_get(c->s, c->txn, p->buf, p->len, p->depth, r);
    if (rc == K_ENOTFOUND)
        return kv__walk_error(c->s, c->txn, p->buf, p->len, p->depth, c->index, err);
    return rc;
}

/* etcd's walk with checkDir over the parents of p: fails with 104 on a file (always before any
 * dir was created, since a file can only sit in an existing dir), else creates the missing
 * dirs with both indexes = new_index. */
static int parents_ensure(struct apply_ctx *c, const struct kv__path *p, uint64_t new_index,
                          struct kv_error *err)
{
    if (p->depth <= 1) return 0;
    struct kv__rec r;
    size_t parent_len = kv__path_base_off(p->buf, p->len) - 1;
    int rc = kv__tree_get(c->s, c->txn, p->buf, parent_len, p->depth - 1, &r);
    if (rc == 0 && (r.flags & KV__FLAG_DIR)) return 0; /* the common case: parent exists */
    if (rc < 0 && rc != K_ENOTFOUND) return rc;
    bool creating = false;
    for (uint32_t i = 1; i < p->depth; i++) {
        size_t plen = kv__path_prefix_len(p->buf, p->len, i);
        if (!creating) {
            rc = kv__tree_get(c->s, c->txn, p->buf, plen, i, &r);
            if (rc == 0 && (r.flags & KV__FLAG_DIR)) continue;
            if (rc == 0) {
                return kv_error_set_path(err, KV_ECODE_NOT_DIR, c->index, p->buf, plen);
            }
            if (rc != K_ENOTFOUND) return rc;
            creating = true;
        }
        struct kv__rec d = { .flags = KV__FLAG_DIR,
                             .created_index = new_index,
                             .modified_index = new_index };
        rc = kv__tree_put(c->s, c->txn, p->buf, plen, i, &d, NULL);
        if (rc < 0) return rc;
    }
    return 0;
}

static void cause_append_u64(struct k_buf *b, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
    k_buf_append(b, num, (size_t)n);
}

/* etcd's Compare and getCompareFailCause (v2store/node.go, store.go): "" and 0 mean "not
 * given"; the cause names what failed, in the order value then index. */
static int compare(struct apply_ctx *c, const struct kv__rec *r, const Kvpb__KvRequest *req,
                   struct kv_error *err)
{
    bool index_ok = req->prev_index == 0 || r->modified_index == req->prev_index;
    bool value_ok =
            req->prev_value.len == 0 || (r->value_len == req->prev_value.len &&
                                         memcmp(r->value, req->prev_value.data, r->value_len) == 0);
    if (index_ok && value_ok) return 0;
    struct k_buf b = { 0 };
    k_buf_append(&b, "", 0);
    if (!value_ok) {
        k_buf_append(&b, "[", 1);
        k_buf_append(&b, (const char *)req->prev_value.data, req->prev_value.len);
        k_buf_append(&b, " != ", 4);
        k_buf_append(&b, r->value, r->value_len);
        k_buf_append(&b, "]", 1);
    }
    if (!index_ok) {
        if (!value_ok) k_buf_append(&b, " ", 1);
        k_buf_append(&b, "[", 1);
        cause_append_u64(&b, req->prev_index);
        k_buf_append(&b, " != ", 4);
        cause_append_u64(&b, r->modified_index);
        k_buf_append(&b, "]", 1);
    }
    /* Whole, as etcd answers it (values may hold NUL bytes). */
    int rc = kv_error_set_path(err, KV_ECODE_TEST_FAILED, c->index, b.data, b.len);
    k_buf_free(&b);
    return rc;
}

static int root_ronly(struct apply_ctx *c, struct kv_error *err)
{
    return kv_error_set(err, KV_ECODE_ROOT_RONLY, c->index, "/");
}

/* etcd's internalCreate: set (replace), create, and POST (unique). prev is the node replaced by
 * a set (already known to be a file), NULL otherwise. */
static int node_create(struct apply_ctx *c, const Kvpb__KvRequest *req, const struct kv__path *p,
                       enum kv_action action, const char *value, size_t value_len,
                       struct kv_event **out, struct kv_error *err)
{
    if (p->depth == 0) return root_ronly(c, err);
    uint64_t next = c->index + 1;
    int rc = parents_ensure(c, p, next, err);
    if (rc < 0) return rc;
    struct kv__rec old;
    rc = kv__tree_get(c->s, c->txn, p->buf, p->len, p->depth, &old);
    if (rc < 0 && rc != K_ENOTFOUND) return rc;
    bool exists = rc == 0;
    if (exists && action != KV_ACTION_SET) {
        return kv_error_set_path(err, KV_ECODE_NODE_EXIST, c->index, p->buf, p->len);
    }
    if (exists && (old.flags & KV__FLAG_DIR)) {
        return kv_error_set_path(err, KV_ECODE_NOT_FILE, c->index, p->buf, p->len);
    }
    struct kv_event *ev = kv__event_new(action, next);
    ev->has_node = true;
    if (exists) {
        ev->has_prev_node = true;
        kv__node_fill(ev, &ev->prev_node, p->buf, p->len, &old, true, req->time_ns);
    }
    struct kv__rec r = { .flags = req->dir ? KV__FLAG_DIR : 0,
                         .created_index = next,
                         .modified_index = next };
    if (!req->dir) {
        r.value = value;
        r.value_len = value_len;
    }
    rec_set_expiration(&r, req);
    kv__node_fill(ev, &ev->node, p->buf, p->len, &r, true, req->time_ns);
    rc = kv__tree_put(c->s, c->txn, p->buf, p->len, p->depth, &r, exists ? &old : NULL);
    if (rc < 0) {
        kv_event_unref(ev);
        return rc;
    }
    c->index = next;
    *out = ev;
    return 0;
}

static int op_set(struct apply_ctx *c, const Kvpb__KvRequest *req, const struct kv__path *p,
                  struct kv_event **out, struct kv_error *err)
{
    /* etcd's Set reads the node first: any error but 100 is returned as is; a refresh needs
     * the node (and keeps its value). */
    const char *value = (const char *)req->value.data;
    size_t value_len = req->value.len;
    char *kept = NULL;
    if (p->depth > 0) {
        struct kv__rec cur;
        int rc = node_lookup(c, p, &cur, err);
        if (rc < 0 && (rc != K_EV2 || err->ecode != KV_ECODE_KEY_NOT_FOUND)) return rc;
        if (rc < 0 && req->refresh) return rc;
        if (rc == K_EV2) kv_error_release(err); /* not found: Set creates it */
        if (rc == 0 && req->refresh) {
            kept = k_xmalloc(cur.value_len + 1); /* LMDB memory moves with the writes below */
            memcpy(kept, cur.value, cur.value_len);
            value = kept;
            value_len = cur.value_len;
        }
    }
    int rc = node_create(c, req, p, KV_ACTION_SET, value, value_len, out, err);
    free(kept);
    if (rc == 0) (*out)->refresh = req->refresh;
    return rc;
}

/* etcd's Update (prevExist=true without conditions). */
static int op_update(struct apply_ctx *c, const Kvpb__KvRequest *req, const struct kv__path *p,
                     struct kv_event **out, struct kv_error *err)
{
    if (p->depth == 0) return root_ronly(c, err);
    struct kv__rec cur;
    int rc = node_lookup(c, p, &cur, err);
    if (rc < 0) return rc;
    bool is_dir = (cur.flags & KV__FLAG_DIR) != 0;
    if (is_dir && req->value.len != 0) {
        return kv_error_set_path(err, KV_ECODE_NOT_FILE, c->index, p->buf, p->len);
    }
    uint64_t next = c->index + 1;
    struct kv_event *ev = kv__event_new(KV_ACTION_UPDATE, next);
    ev->refresh = req->refresh;
    ev->has_node = true;
    ev->has_prev_node = true;
    kv__node_fill(ev, &ev->prev_node, p->buf, p->len, &cur, true, req->time_ns);
    struct kv__rec r = cur;
    if (!is_dir) {
        if (!req->refresh) {
            r.value = (const char *)req->value.data;
            r.value_len = req->value.len;
        } else {
            r.value = ev->prev_node.value; /* a stable copy: LMDB memory moves on write */
        }
        r.modified_index = next;
    }
    /* A dir keeps its modifiedIndex: etcd's node.Write fails on a dir and Update ignores it,
     * so the event shows the new index but a later GET the old one (spec §17 quirk 4). */
    rec_set_expiration(&r, req);
    kv__node_fill(ev, &ev->node, p->buf, p->len, &r, true, req->time_ns);
    ev->node.modified_index = next;
    rc = kv__tree_put(c->s, c->txn, p->buf, p->len, p->depth, &r, &cur);
    if (rc < 0) {
        kv_event_unref(ev);
        return rc;
    }
    c->index = next;
    *out = ev;
    return 0;
}

/* etcd's CompareAndSwap. */
static int op_cas(struct apply_ctx *c, const Kvpb__KvRequest *req, const struct kv__path *p,
                  struct kv_event **out, struct kv_error *err)
{
    if (p->depth == 0) return root_ronly(c, err);
    struct kv__rec cur;
    int rc = node_lookup(c, p, &cur, err);
    if (rc < 0) return rc;
    if (cur.flags & KV__FLAG_DIR)
        return kv_error_set_path(err, KV_ECODE_NOT_FILE, c->index, p->buf, p->len);
    rc = compare(c, &cur, req, err);
    if (rc < 0) return rc;
    uint64_t next = c->index + 1;
    struct kv_event *ev = kv__event_new(KV_ACTION_COMPARE_AND_SWAP, next);
    ev->refresh = req->refresh;
    ev->has_node = true;
    ev->has_prev_node = true;
    kv__node_fill(ev, &ev->prev_node, p->buf, p->len, &cur, true, req->time_ns);
    struct kv__rec r = cur;
    if (req->refresh) {
        r.value = ev->prev_node.value;
    } else {
        r.value = (const char *)req->value.data;
        r.value_len = req->value.len;
    }
    r.modified_index = next;
    rec_set_expiration(&r, req);
    kv__node_fill(ev, &ev->node, p->buf, p->len, &r, true, req->time_ns);
    rc = kv__tree_put(c->s, c->txn, p->buf, p->len, p->depth, &r, &cur);
    if (rc < 0) {
        kv_event_unref(ev);
        return rc;
    }
    c->index = next;
    *out = ev;
    return 0;
}

/* The event of a removal (delete, compareAndDelete, expire): node with key, dir, the new index
 * and the old createdIndex, no value; prevNode as it was. */
static struct kv_event *removal_event(enum kv_action action, uint64_t index,
                                      const struct kv__path *p, const struct kv__rec *cur,
                                      int64_t now_ns)
{
    struct kv_event *ev = kv__event_new(action, index);
    ev->has_node = true;
    ev->has_prev_node = true;
    kv__node_fill(ev, &ev->prev_node, p->buf, p->len, cur, true, now_ns);
    struct kv_node *n = &ev->node;
    n->key = ev->prev_node.key;
    n->key_len = p->len;
    n->dir = (cur->flags & KV__FLAG_DIR) != 0;
    n->modified_index = index;
    n->created_index = cur->created_index;
    return ev;
}

static int remove_node(struct apply_ctx *c, enum kv_action action, const struct kv__path *p,
                       const struct kv__rec *cur, int64_t now_ns, struct kv_event **out)
{
    uint64_t next = c->index + 1;
    struct kv_event *ev = removal_event(action, next, p, cur, now_ns);
    int rc = kv__tree_remove(c->s, c->txn, p->buf, p->len, p->depth, cur, ev);
    if (rc < 0) {
        kv_event_unref(ev);
        return rc;
    }
    c->index = next;
    *out = ev;
    return 0;
}

/* etcd's Delete (no conditions) and CompareAndDelete (prevValue or prevIndex given). */
static int op_delete(struct apply_ctx *c, const Kvpb__KvRequest *req, const struct kv__path *p,
                     struct kv_event **out, struct kv_error *err)
{
    if (p->depth == 0) return root_ronly(c, err);
    bool cond = req->prev_value.len > 0 || req->prev_index > 0;
    struct kv__rec cur;
    int rc = node_lookup(c, p, &cur, err);
    if (rc < 0) return rc;
    bool is_dir = (cur.flags & KV__FLAG_DIR) != 0;
    if (cond) {
        if (is_dir) return kv_error_set_path(err, KV_ECODE_NOT_FILE, c->index, p->buf, p->len);
        rc = compare(c, &cur, req, err);
        if (rc < 0) return rc;
        return remove_node(c, KV_ACTION_COMPARE_AND_DELETE, p, &cur, req->time_ns, out);
    }
    if (is_dir) {
        bool dir = req->dir || req->recursive; /* recursive implies dir */
        if (!dir) return kv_error_set_path(err, KV_ECODE_NOT_FILE, c->index, p->buf, p->len);
        bool has_children;
        rc = kv__tree_has_children(c->s, c->txn, p->buf, p->len, p->depth, &has_children);
        if (rc < 0) return rc;
        if (has_children && !req->recursive) {
            return kv_error_set_path(err, KV_ECODE_DIR_NOT_EMPTY, c->index, p->buf, p->len);
        }
    }
    return remove_node(c, KV_ACTION_DELETE, p, &cur, req->time_ns, out);
}

/* etcd's DeleteExpiredKeys: every node whose expiration is not after the leader's time, in
 * order of expiration, one index and one expire event each; a dir takes its subtree along. */
static int op_sync(struct apply_ctx *c, const Kvpb__KvRequest *req)
{
    for (;;) {
        MDB_cursor *cur;
        int rc = mdb_cursor_open(c->txn, c->s->dbi_expiry, &cur);
        if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
        MDB_val k;
        MDB_val v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        struct kv__path p;
        struct kv__rec r;
        if (rc == MDB_SUCCESS) {
            const char *path;
            rc = K_ECORRUPT;
            if (k.mv_size == KV__EXPIRY_KEY_BYTES)
                rc = kv__tree_get_by_key(c->s, c->txn, &v, &r, &path, &p.len, &p.depth);
            if (rc == K_ENOTFOUND) rc = K_ECORRUPT; /* index entry without its node */
            if (rc == 0 && p.len > KV_KEY_BYTES_MAX_LIMIT) rc = K_ECORRUPT;
            if (rc == 0) {
                memcpy(p.buf, path, p.len);
                p.buf[p.len] = '\0';
            }
            mdb_cursor_close(cur);
            if (rc < 0) return rc;
        } else {
            mdb_cursor_close(cur);
            if (rc == MDB_NOTFOUND) return 0;
            return kv__mdb_err(rc);
        }
        if (!(r.flags & KV__FLAG_EXPIRES)) return K_ECORRUPT;
        if (r.expiration_ns > req->time_ns) return 0;
        struct kv_event *ev;
        rc = remove_node(c, KV_ACTION_EXPIRE, &p, &r, req->time_ns, &ev);
        if (rc < 0) return rc;
        batch_add_event(c->batch, ev);
        kv_event_unref(ev);
    }
}

/* etcd's internal writes (/0/members/<id>/raftAttributes and attributes, /0/version): each
 * takes one etcd index and one history slot, exactly as in etcd, so indexes match etcd's
 * (a fresh cluster of N members answers its first request with 2N+1, spec §3). Clients never
 * see them: the event is kept like a refresh (never delivered, skipped by waitIndex scans)
 * and nothing is stored in the tree. */
/* Removes the internal record at path and every record under path + "/". */
static int internal_remove_tree(struct apply_ctx *c, const uint8_t *path, size_t len)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(c->txn, c->s->dbi_internal, &cur);
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    MDB_val k = { .mv_size = len, .mv_data = (void *)path };
    MDB_val d;
    rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
    while (rc == MDB_SUCCESS) {
        bool inside = k.mv_size >= len && memcmp(k.mv_data, path, len) == 0 &&
                      (k.mv_size == len || ((const uint8_t *)k.mv_data)[len] == '/');
        if (!inside) break;
        rc = mdb_cursor_del(cur, 0);
        if (rc != MDB_SUCCESS) break;
        k.mv_size = len;
        k.mv_data = (void *)path;
        rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
    }
    mdb_cursor_close(cur);
    return rc == MDB_SUCCESS || rc == MDB_NOTFOUND ? 0 : kv__mdb_err(rc);
}

static int op_internal(struct apply_ctx *c, const Kvpb__KvRequest *req, struct kv_event **out,
                       struct kv_error *err)
{
    if (req->path.len < 3 || memcmp(req->path.data, "/0/", 3) != 0 ||
        req->path.len > KV__INTERNAL_KEY_MAX) {
        return kv_error_set(err, KV_ECODE_INVALID_FIELD, 0, "internal key outside /0/");
    }
    MDB_val k = { .mv_size = req->path.len, .mv_data = req->path.data };
    int rc;
    if (req->recursive) {
        rc = internal_remove_tree(c, req->path.data, req->path.len);
    } else {
        MDB_val d = { .mv_size = req->value.len, .mv_data = req->value.data };
        rc = mdb_put(c->txn, c->s->dbi_internal, &k, &d, 0);
        rc = rc == MDB_SUCCESS ? 0 : kv__mdb_err(rc);
    }
    if (rc < 0) return rc;
    uint64_t next = c->index + 1;
    struct kv_event *ev = kv__event_new(req->recursive ? KV_ACTION_DELETE : KV_ACTION_SET, next);
    ev->has_node = true;
    ev->refresh = true;
    struct kv__rec r = { .created_index = next,
                         .modified_index = next,
                         .value = (const char *)req->value.data,
                         .value_len = req->value.len };
    kv__node_fill(ev, &ev->node, (const char *)req->path.data, req->path.len, &r, true,
                  req->time_ns);
    c->index = next;
    *out = ev;
    return 0;
}

/* POST: create a child of the dir named by the new index, 20 digits zero-padded. */
static int op_post(struct apply_ctx *c, const Kvpb__KvRequest *req, const struct kv__path *dir,
                   struct kv_event **out, struct kv_error *err)
{
    char raw[KV_KEY_BYTES_MAX_LIMIT + 32];
    int n = snprintf(raw, sizeof(raw), "%s/%020llu", dir->buf, (unsigned long long)(c->index + 1));
    k_assert(n > 0 && (size_t)n < sizeof(raw));
    struct kv__path p;
    int rc = kv__path_clean(&c->s->limits, raw, (size_t)n, &p, err);
    if (rc < 0) return rc;
    return node_create(c, req, &p, KV_ACTION_CREATE, (const char *)req->value.data, req->value.len,
                       out, err);
}

enum kv_action kv_request_action(const Kvpb__KvRequest *req)
{
    bool cond = req->prev_value.len > 0 || req->prev_index > 0;
    switch (req->method) {
    case KVPB__KV_METHOD__KV_METHOD_GET:
        return KV_ACTION_GET;
    case KVPB__KV_METHOD__KV_METHOD_PUT:
        if (req->prev_exist == KVPB__KV_PREV_EXIST__KV_PREV_EXIST_FALSE) return KV_ACTION_CREATE;
        if (cond) return KV_ACTION_COMPARE_AND_SWAP;
        if (req->prev_exist == KVPB__KV_PREV_EXIST__KV_PREV_EXIST_TRUE) return KV_ACTION_UPDATE;
        return KV_ACTION_SET;
    case KVPB__KV_METHOD__KV_METHOD_POST:
        return KV_ACTION_CREATE;
    case KVPB__KV_METHOD__KV_METHOD_DELETE:
        return cond ? KV_ACTION_COMPARE_AND_DELETE : KV_ACTION_DELETE;
    case KVPB__KV_METHOD__KV_METHOD_SYNC:
        return KV_ACTION_EXPIRE;
    default:
        return KV_ACTION_NONE;
    }
}

/* etcd's applier dispatch of PUT (apply_v2.go Put). */
static int op_put(struct apply_ctx *c, const Kvpb__KvRequest *req, const struct kv__path *p,
                  struct kv_event **out, struct kv_error *err)
{
    switch (kv_request_action(req)) {
    case KV_ACTION_CREATE:
        return node_create(c, req, p, KV_ACTION_CREATE, (const char *)req->value.data,
                           req->value.len, out, err);
    case KV_ACTION_COMPARE_AND_SWAP:
        return op_cas(c, req, p, out, err);
    case KV_ACTION_UPDATE:
        return op_update(c, req, p, out, err);
    default:
        return op_set(c, req, p, out, err);
    }
}

/* Applies one request; fills res. Returns 0 (also for v2 errors, which are in res) or a store
 * failure that aborts the batch. */
static int apply_one(struct apply_ctx *c, const Kvpb__KvRequest *req, struct kv_result *res)
{
    res->request_id = req->id;
    res->action = kv_request_action(req);
    struct kv_event *ev = NULL;
    int rc = 0;
    if (req->method == KVPB__KV_METHOD__KV_METHOD_NONE) return 0;
    if (req->method == KVPB__KV_METHOD__KV_METHOD_SYNC) {
        rc = op_sync(c, req);
        res->etcd_index = c->index;
        return rc;
    }
    if (req->method == KVPB__KV_METHOD__KV_METHOD_INTERNAL) {
        for (const Kvpb__KvRequest *r = req; r; r = r->then) {
            rc = op_internal(c, r, &ev, &res->err);
            if (rc == K_EV2) {
                res->rc = K_EV2;
                return 0;
            }
            if (rc < 0) return rc;
            kv_event_unref(res->event);
            res->event = ev;
            res->etcd_index = ev->index;
            batch_add_event(c->batch, ev);
        }
        return 0;
    }
    struct kv__path p;
    rc = request_check_values(&c->s->limits, req, &res->err);
    if (rc == 0) {
        rc = kv__path_clean(&c->s->limits, (const char *)req->path.data, req->path.len, &p,
                            &res->err);
        /* A key beyond the limits cannot exist: reads and changes of it answer as etcd would
         * for a missing key; only storing one is refused (209, kept in res->err). */
        if (rc == K_EV2 && !request_stores_path(req) &&
            req->method != KVPB__KV_METHOD__KV_METHOD_POST) {
            rc = kv__long_path_error(c->s, c->txn, (const char *)req->path.data, req->path.len,
                                     c->index, &res->err);
        }
    }
    if (rc == 0) {
        switch (req->method) {
        case KVPB__KV_METHOD__KV_METHOD_GET:
            rc = kv__read(c->s, c->txn, &p, req->recursive, req->time_ns, c->index, &ev, &res->err);
            break;
        case KVPB__KV_METHOD__KV_METHOD_PUT:
            rc = op_put(c, req, &p, &ev, &res->err);
            break;
        case KVPB__KV_METHOD__KV_METHOD_POST:
            rc = op_post(c, req, &p, &ev, &res->err);
            break;
        case KVPB__KV_METHOD__KV_METHOD_DELETE:
            rc = op_delete(c, req, &p, &ev, &res->err);
            break;
        default:
            rc = kv_error_set(&res->err, KV_ECODE_INVALID_FIELD, 0, "unknown method %d",
                              (int)req->method);
            break;
        }
    }
    if (rc == K_EV2) {
        res->rc = K_EV2;
        res->etcd_index = res->err.index;
        return 0;
    }
    if (rc < 0) return rc;
    k_assert(ev != NULL);
    res->event = ev;
    res->etcd_index = ev->index;
    if (ev->action != KV_ACTION_GET) {
        k_assert(ev->index == c->index);
        batch_add_event(c->batch, ev);
    }
    return 0;
}

void kv_batch_free(struct kv_batch *b)
{
    for (size_t i = 0; i < b->result_count; i++) {
        kv_event_unref(b->results[i].event);
        if (b->results[i].rc == K_EV2) kv_error_release(&b->results[i].err);
    }
    for (size_t i = 0; i < b->event_count; i++)
        kv_event_unref(b->events[i]);
    free(b->results);
    free(b->events);
    memset(b, 0, sizeof(*b));
}

/* One entry: either a decoded request or bytes to decode. */
struct apply_item {
    uint64_t raft_index;
    const Kvpb__KvRequest *req;
    const uint8_t *data;
    size_t len;
};

static int apply_items(struct kv_store *s, const struct apply_item *items, size_t n,
                       struct kv_batch *out)
{
    memset(out, 0, sizeof(*out));
    out->results = k_xcalloc(n == 0 ? 1 : n, sizeof(*out->results));
    struct apply_ctx c = { .s = s, .batch = out };
    int rc = mdb_txn_begin(s->env, NULL, 0, &c.txn);
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    uint64_t applied;
    rc = kv__meta_get(s, c.txn, "applied", &applied);
    if (rc == 0) rc = kv__meta_get(s, c.txn, "index", &c.index);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct apply_item *it = &items[i];
        if (it->raft_index <= applied) continue; /* replayed from the WAL: already applied */
        struct kv_result *res = &out->results[out->result_count++];
        res->raft_index = it->raft_index;
        res->etcd_index = c.index;
        const Kvpb__KvRequest *req = it->req;
        Kvpb__KvRequest *decoded = NULL;
        if (req == NULL && it->data != NULL && it->len > 0) {
            decoded = kvpb__kv_request__unpack(NULL, it->len, it->data);
            if (decoded == NULL) res->rc = K_ECORRUPT;
            req = decoded;
        }
        if (req != NULL) rc = apply_one(&c, req, res);
        if (decoded != NULL) kvpb__kv_request__free_unpacked(decoded, NULL);
        applied = it->raft_index;
    }
    if (rc == 0) rc = kv__meta_put(s, c.txn, "applied", applied);
    if (rc == 0) rc = kv__meta_put(s, c.txn, "index", c.index);
    if (rc < 0) {
        mdb_txn_abort(c.txn);
        kv_batch_free(out);
        return rc;
    }
    rc = mdb_txn_commit(c.txn);
    if (rc != MDB_SUCCESS) {
        kv_batch_free(out);
        return kv__mdb_err(rc);
    }
    out->applied_index = applied;
    out->etcd_index = c.index;
    return 0;
}

int kv_apply_batch(struct kv_store *s, const struct kv_entry *entries, size_t n,
                   struct kv_batch *out)
{
    struct apply_item *items = k_xcalloc(n == 0 ? 1 : n, sizeof(*items));
    for (size_t i = 0; i < n; i++) {
        k_assert(i == 0 || entries[i].raft_index > entries[i - 1].raft_index);
        items[i].raft_index = entries[i].raft_index;
        items[i].data = entries[i].data;
        items[i].len = entries[i].len;
    }
    int rc = apply_items(s, items, n, out);
    free(items);
    return rc;
}

int kv_apply_requests(struct kv_store *s, const Kvpb__KvRequest *const *reqs,
                      const uint64_t *raft_indexes, size_t n, struct kv_batch *out)
{
    struct apply_item *items = k_xcalloc(n == 0 ? 1 : n, sizeof(*items));
    for (size_t i = 0; i < n; i++) {
        k_assert(i == 0 || raft_indexes[i] > raft_indexes[i - 1]);
        items[i].raft_index = raft_indexes[i];
        items[i].req = reqs[i];
    }
    int rc = apply_items(s, items, n, out);
    free(items);
    return rc;
}
