/* Randomized differential test: long random sequences of v2 requests (all methods, dirs,
 * hidden keys, TTLs, refresh, CAS/CAD conditions, expiry sweeps) applied to the store in random
 * batch sizes and to a small, obviously-correct in-memory model of etcd's v2 store written
 * here from spec/etcd-v2-api.md; every response must match byte for byte, and so must a read
 * of every node at the end. Prints its seed; KETCH_SEED=<n> replays one. */
#include <check.h>
#include <stdio.h>

#include "base/prng.h"
#include "kv_test_util.h"

Suite *test_kv_model_suite(void);

enum { MODEL_NODES_MAX = 512, PATH_MAX_BYTES = 2048 };

struct mnode {
    char path[PATH_MAX_BYTES];
    bool dir;
    char value[16];
    uint64_t created;
    uint64_t modified;
    bool has_exp;
    int64_t exp;
};

struct model {
    struct mnode nodes[MODEL_NODES_MAX];
    size_t n;
    uint64_t index;
};

/* The answer of the model: an event or an error, rendered like the store's. */
struct manswer {
    struct kv_event *ev;
    struct kv_error err;
    bool is_err;
};

static struct mnode *m_find(struct model *m, const char *p)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->nodes[i].path, p) == 0) return &m->nodes[i];
    }
    return NULL;
}

static bool is_child(const char *parent, const char *p)
{
    size_t pl = strcmp(parent, "/") == 0 ? 0 : strlen(parent);
    if (strncmp(p, parent, pl) != 0 || p[pl] != '/') return false;
    return strchr(p + pl + 1, '/') == NULL;
}

static bool is_below(const char *anc, const char *p)
{
    size_t al = strlen(anc);
    return strncmp(p, anc, al) == 0 && p[al] == '/';
}

static int64_t m_ttl(int64_t exp, int64_t now)
{
    int64_t d = exp - now; /* small in this test: no overflow */
    int64_t t = d / 1000000000;
    if (d % 1000000000 > 0) t++;
    return t;
}

static void m_fill(struct kv_event *ev, struct kv_node *n, const struct mnode *x, int64_t now,
                   bool with_value)
{
    memset(n, 0, sizeof(*n));
    n->key = kv_arena_memdup(&ev->arena, x->path, strlen(x->path));
    n->key_len = strlen(x->path);
    n->dir = x->dir;
    if (!x->dir && with_value) {
        n->value = kv_arena_memdup(&ev->arena, x->value, strlen(x->value));
        n->value_len = strlen(x->value);
    }
    if (x->has_exp) {
        n->has_expiration = true;
        n->expiration_ns = x->exp;
        n->ttl_s = m_ttl(x->exp, now);
    }
    n->modified_index = x->modified;
    n->created_index = x->created;
}

static struct kv_event *m_event(enum kv_action a, uint64_t index)
{
    struct kv_event *ev = k_xcalloc(1, sizeof(*ev));
    ev->action = a;
    ev->index = index;
    ev->refs = 1;
    ev->has_node = true;
    kv_arena_init(&ev->arena);
    return ev;
}

static int m_err(struct manswer *a, enum kv_ecode code, uint64_t index, const char *cause)
{
    a->is_err = true;
    int rc = kv_error_set_path(&a->err, code, index, cause, strlen(cause));
    ck_assert_int_eq(rc, K_EV2);
    return -1;
}

static size_t depth_of(const char *p)
{
    size_t d = 0;
    for (const char *c = p; *c; c++)
        d += *c == '/';
    return strcmp(p, "/") == 0 ? 0 : d;
}

static void prefix_of(const char *p, size_t comps, char *out)
{
    size_t seen = 0;
    size_t i = 1;
    for (; p[i]; i++) {
        if (p[i] == '/' && ++seen == comps) break;
    }
    memcpy(out, p, i);
    out[i] = '\0';
}

/* Lookup with etcd's walk errors. */
static struct mnode *m_lookup(struct model *m, const char *p, struct manswer *a)
{
    struct mnode *x = m_find(m, p);
    if (x != NULL) return x;
    size_t d = depth_of(p);
    for (size_t i = 1; i <= d; i++) {
        char pre[PATH_MAX_BYTES];
        prefix_of(p, i, pre);
        struct mnode *y = m_find(m, pre);
        if (y == NULL) {
            m_err(a, KV_ECODE_KEY_NOT_FOUND, m->index, pre);
            return NULL;
        }
        if (!y->dir && i < d) {
            m_err(a, KV_ECODE_NOT_DIR, m->index, pre);
            return NULL;
        }
    }
    ck_abort_msg("unreachable");
    return NULL;
}

static struct mnode *m_add(struct model *m)
{
    ck_assert_uint_lt(m->n, MODEL_NODES_MAX);
    struct mnode *x = &m->nodes[m->n++];
    memset(x, 0, sizeof(*x));
    return x;
}

static void m_remove_at(struct model *m, const char *p)
{
    char victim[PATH_MAX_BYTES];
    snprintf(victim, sizeof(victim), "%s", p);
    size_t j = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->nodes[i].path, victim) == 0 || is_below(victim, m->nodes[i].path)) continue;
        m->nodes[j++] = m->nodes[i];
    }
    m->n = j;
}

static void m_set_exp(struct mnode *x, const Kvpb__KvRequest *r)
{
    x->has_exp = r->has_ttl;
    x->exp = r->has_ttl ? r->time_ns + (int64_t)r->ttl_s * 1000000000 : 0;
}

static int m_create(struct model *m, const Kvpb__KvRequest *r, const char *p, enum kv_action act,
                    const char *value, struct manswer *a)
{
    if (strcmp(p, "/") == 0) return m_err(a, KV_ECODE_ROOT_RONLY, m->index, "/");
    size_t d = depth_of(p);
    for (size_t i = 1; i < d; i++) { /* files first: no dir is created before a 104 */
        char pre[PATH_MAX_BYTES];
        prefix_of(p, i, pre);
        struct mnode *y = m_find(m, pre);
        if (y == NULL) break;
        if (!y->dir) return m_err(a, KV_ECODE_NOT_DIR, m->index, pre);
    }
    struct mnode *old = m_find(m, p);
    if (old != NULL && act != KV_ACTION_SET) return m_err(a, KV_ECODE_NODE_EXIST, m->index, p);
    if (old != NULL && old->dir) return m_err(a, KV_ECODE_NOT_FILE, m->index, p);
    uint64_t next = m->index + 1;
    for (size_t i = 1; i < d; i++) {
        char pre[PATH_MAX_BYTES];
        prefix_of(p, i, pre);
        if (m_find(m, pre) == NULL) {
            struct mnode *y = m_add(m);
            snprintf(y->path, sizeof(y->path), "%s", pre);
            y->dir = true;
            y->created = y->modified = next;
        }
    }
    a->ev = m_event(act, next);
    if (old != NULL) {
        a->ev->has_prev_node = true;
        m_fill(a->ev, &a->ev->prev_node, old, r->time_ns, true);
        m_remove_at(m, p);
    }
    struct mnode *x = m_add(m);
    snprintf(x->path, sizeof(x->path), "%s", p);
    x->dir = r->dir;
    if (!r->dir) snprintf(x->value, sizeof(x->value), "%s", value);
    x->created = x->modified = next;
    m_set_exp(x, r);
    m_fill(a->ev, &a->ev->node, x, r->time_ns, true);
    m->index = next;
    return 0;
}

static bool m_compare(struct model *m, const struct mnode *x, const Kvpb__KvRequest *r,
                      struct manswer *a)
{
    char pv[32];
    snprintf(pv, sizeof(pv), "%.*s", (int)r->prev_value.len, (const char *)r->prev_value.data);
    bool vok = r->prev_value.len == 0 || strcmp(pv, x->value) == 0;
    bool iok = r->prev_index == 0 || r->prev_index == x->modified;
    if (vok && iok) return true;
    char cause[128];
    if (!vok && !iok) {
        snprintf(cause, sizeof(cause), "[%s != %s] [%llu != %llu]", pv, x->value,
                 (unsigned long long)r->prev_index, (unsigned long long)x->modified);
    } else if (!vok) {
        snprintf(cause, sizeof(cause), "[%s != %s]", pv, x->value);
    } else {
        snprintf(cause, sizeof(cause), "[%llu != %llu]", (unsigned long long)r->prev_index,
                 (unsigned long long)x->modified);
    }
    m_err(a, KV_ECODE_TEST_FAILED, m->index, cause);
    return false;
}

static int m_write_existing(struct model *m, const Kvpb__KvRequest *r, const char *p, bool cas,
                            struct manswer *a)
{
    if (strcmp(p, "/") == 0) return m_err(a, KV_ECODE_ROOT_RONLY, m->index, "/");
    struct mnode *x = m_lookup(m, p, a);
    if (x == NULL) return -1;
    char value[16];
    snprintf(value, sizeof(value), "%.*s", (int)r->value.len, (const char *)r->value.data);
    if (cas && x->dir) return m_err(a, KV_ECODE_NOT_FILE, m->index, p);
    if (!cas && x->dir && value[0] != '\0') return m_err(a, KV_ECODE_NOT_FILE, m->index, p);
    if (cas && !m_compare(m, x, r, a)) return -1;
    uint64_t next = m->index + 1;
    a->ev = m_event(cas ? KV_ACTION_COMPARE_AND_SWAP : KV_ACTION_UPDATE, next);
    a->ev->refresh = r->refresh;
    a->ev->has_prev_node = true;
    m_fill(a->ev, &a->ev->prev_node, x, r->time_ns, true);
    if (!x->dir) {
        if (!r->refresh) snprintf(x->value, sizeof(x->value), "%s", value);
        x->modified = next;
    }
    m_set_exp(x, r);
    m_fill(a->ev, &a->ev->node, x, r->time_ns, true);
    a->ev->node.modified_index = next;
    m->index = next;
    return 0;
}

static void m_removal(struct model *m, struct manswer *a, enum kv_action act, struct mnode *x,
                      int64_t now)
{
    uint64_t next = m->index + 1;
    a->ev = m_event(act, next);
    a->ev->has_prev_node = true;
    m_fill(a->ev, &a->ev->prev_node, x, now, true);
    a->ev->node.key = a->ev->prev_node.key;
    a->ev->node.key_len = a->ev->prev_node.key_len;
    a->ev->node.dir = x->dir;
    a->ev->node.modified_index = next;
    a->ev->node.created_index = x->created;
    m_remove_at(m, x->path);
    m->index = next;
}

static int m_delete(struct model *m, const Kvpb__KvRequest *r, const char *p, struct manswer *a)
{
    if (strcmp(p, "/") == 0) return m_err(a, KV_ECODE_ROOT_RONLY, m->index, "/");
    struct mnode *x = m_lookup(m, p, a);
    if (x == NULL) return -1;
    if (r->prev_value.len > 0 || r->prev_index > 0) {
        if (x->dir) return m_err(a, KV_ECODE_NOT_FILE, m->index, p);
        if (!m_compare(m, x, r, a)) return -1;
        m_removal(m, a, KV_ACTION_COMPARE_AND_DELETE, x, r->time_ns);
        return 0;
    }
    if (x->dir) {
        if (!r->dir && !r->recursive) return m_err(a, KV_ECODE_NOT_FILE, m->index, p);
        bool has = false;
        for (size_t i = 0; i < m->n; i++)
            has = has || is_child(p, m->nodes[i].path);
        if (has && !r->recursive) return m_err(a, KV_ECODE_DIR_NOT_EMPTY, m->index, p);
    }
    m_removal(m, a, KV_ACTION_DELETE, x, r->time_ns);
    return 0;
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(((const struct kv_node *)a)->key, ((const struct kv_node *)b)->key);
}

static void m_list(struct model *m, struct kv_event *ev, struct kv_node *n, const char *p,
                   bool recursive, int64_t now)
{
    size_t count = 0;
    for (size_t i = 0; i < m->n; i++) {
        const char *c = m->nodes[i].path;
        if (is_child(p, c) && c[strlen(c) - strlen(strrchr(c, '/')) + 1] != '_') count++;
    }
    if (count == 0) return;
    n->nodes = kv_arena_alloc(&ev->arena, count * sizeof(*n->nodes));
    n->node_count = 0;
    for (size_t i = 0; i < m->n; i++) {
        const char *c = m->nodes[i].path;
        if (is_child(p, c) && strrchr(c, '/')[1] != '_') {
            m_fill(ev, &n->nodes[n->node_count++], &m->nodes[i], now, true);
        }
    }
    qsort(n->nodes, n->node_count, sizeof(*n->nodes), cmp_path);
    for (size_t i = 0; recursive && i < n->node_count; i++) {
        if (n->nodes[i].dir) m_list(m, ev, &n->nodes[i], n->nodes[i].key, true, now);
    }
}

static int m_get(struct model *m, const char *p, bool recursive, int64_t now, struct manswer *a)
{
    struct mnode root = { .dir = true };
    struct mnode *x = strcmp(p, "/") == 0 ? &root : m_lookup(m, p, a);
    if (x == NULL) return -1;
    a->ev = m_event(KV_ACTION_GET, m->index);
    m_fill(a->ev, &a->ev->node, x, now, true);
    if (x == &root) {
        a->ev->node.key = NULL;
        a->ev->node.key_len = 0;
    }
    if (x->dir) m_list(m, a->ev, &a->ev->node, p, recursive, now);
    return 0;
}

/* Expiry: earliest (expiration, createdIndex, depth) first, one event each. */
static void m_sync(struct model *m, int64_t now, struct k_buf *out)
{
    for (;;) {
        struct mnode *best = NULL;
        for (size_t i = 0; i < m->n; i++) {
            struct mnode *x = &m->nodes[i];
            if (!x->has_exp || x->exp > now) continue;
            if (best == NULL || x->exp < best->exp ||
                (x->exp == best->exp &&
                 (x->created < best->created ||
                  (x->created == best->created && depth_of(x->path) < depth_of(best->path))))) {
                best = x;
            }
        }
        if (best == NULL) return;
        struct manswer a = { 0 };
        m_removal(m, &a, KV_ACTION_EXPIRE, best, now);
        kv_json_event(a.ev, false, out);
        kv_event_unref(a.ev);
    }
}

/* Renders a's answer; an error's cause is released. */
static void m_render(struct manswer *a, struct k_buf *out)
{
    char head[16];
    if (a->is_err) {
        snprintf(head, sizeof(head), "%d ", kv_ecode_http_status(a->err.ecode));
        k_buf_append(out, head, strlen(head));
        kv_json_error(&a->err, out);
        kv_error_release(&a->err);
    } else {
        snprintf(head, sizeof(head), "%d ", kv_event_http_status(a->ev));
        k_buf_append(out, head, strlen(head));
        kv_json_event(a->ev, false, out);
    }
}

/* Applies r to the model; renders its answer (or, for SYNC, its expire events) into out. */
static void m_apply(struct model *m, const Kvpb__KvRequest *r, struct k_buf *out)
{
    k_buf_append(out, "", 0);
    if (r->method == KVPB__KV_METHOD__KV_METHOD_SYNC) {
        m_sync(m, r->time_ns, out);
        return;
    }
    struct manswer a = { 0 };
    char p[PATH_MAX_BYTES];
    snprintf(p, sizeof(p), "%.*s", (int)r->path.len, (const char *)r->path.data);
    char value[16];
    snprintf(value, sizeof(value), "%.*s", (int)r->value.len, (const char *)r->value.data);
    bool cond = r->prev_value.len > 0 || r->prev_index > 0;
    switch (r->method) {
    case KVPB__KV_METHOD__KV_METHOD_GET:
        m_get(m, p, r->recursive, r->time_ns, &a);
        break;
    case KVPB__KV_METHOD__KV_METHOD_POST: {
        char child[PATH_MAX_BYTES + 32];
        snprintf(child, sizeof(child), "%s/%020llu", strcmp(p, "/") == 0 ? "" : p,
                 (unsigned long long)(m->index + 1));
        m_create(m, r, child, KV_ACTION_CREATE, value, &a);
        break;
    }
    case KVPB__KV_METHOD__KV_METHOD_DELETE:
        m_delete(m, r, p, &a);
        break;
    default:
        if (r->prev_exist == KVPB__KV_PREV_EXIST__KV_PREV_EXIST_FALSE) {
            m_create(m, r, p, KV_ACTION_CREATE, value, &a);
        } else if (cond) {
            m_write_existing(m, r, p, true, &a);
        } else if (r->prev_exist == KVPB__KV_PREV_EXIST__KV_PREV_EXIST_TRUE) {
            m_write_existing(m, r, p, false, &a);
        } else {
            struct mnode *cur = strcmp(p, "/") == 0 ? NULL : m_find(m, p);
            char kept[16];
            snprintf(kept, sizeof(kept), "%s", value);
            if (cur == NULL && strcmp(p, "/") != 0) {
                struct manswer probe = { 0 };
                m_lookup(m, p, &probe);
                if (probe.err.ecode == KV_ECODE_NOT_DIR || r->refresh) {
                    a = probe;
                    break;
                }
                if (probe.is_err) kv_error_release(&probe.err);
            }
            if (cur != NULL && r->refresh) snprintf(kept, sizeof(kept), "%s", cur->value);
            m_create(m, r, p, KV_ACTION_SET, kept, &a);
            if (a.ev != NULL) a.ev->refresh = r->refresh;
        }
        break;
    }
    m_render(&a, out);
    kv_event_unref(a.ev);
}

/* Random requests over a small key space so operations collide often. */
static const char *const SHORT_COMPONENTS[] = { "a", "b", "_h", "c" };
static const char *const VALUES[] = { "", "x", "y", "zz" };

/* Names around the store's key forms (kv/kv_int.h): paths of 476 bytes (the long form's
 * prefix), plain paths up to 500 bytes and long ones beyond, sharing their first 476 bytes
 * with each other, prefixes of each other, and dirs whose own paths are long. Filled by
 * long_components_init: P is 474 'p's. */
static char long_names[5][520];
static const char *const LONG_COMPONENTS[] = { "a",           "_h",          long_names[0],
                                               long_names[1], long_names[2], long_names[3],
                                               long_names[4] };

/* out = 474 'p's, then mid (may be empty), then n times c. */
static void long_name(char *out, const char *mid, char c, size_t n)
{
    memset(out, 'p', 474);
    size_t len = 474 + strlen(mid);
    memcpy(out + 474, mid, strlen(mid));
    memset(out + len, c, n);
    out[len + n] = '\0';
}

static void long_components_init(void)
{
    long_name(long_names[0], "a", 'c', 0);  /* "/" + it: 476 bytes */
    long_name(long_names[1], "a", 'c', 20); /* plain, 496 */
    long_name(long_names[2], "a", 'c', 30); /* long; the one above is its prefix */
    long_name(long_names[3], "a", 'd', 40); /* long, same first 476 bytes */
    long_name(long_names[4], "", 'b', 30);  /* long, other first 476 bytes */
}

static const char *const *components = SHORT_COMPONENTS;
static size_t component_count = K_ARRAY_LEN(SHORT_COMPONENTS);

static void random_path(struct k_prng *g, char *out, size_t cap)
{
    size_t depth = k_prng_chance(g, 50000) ? 0 : 1 + k_prng_below(g, 3); /* 0 = the root */
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < depth; i++) {
        len += (size_t)snprintf(out + len, cap - len, "/%s",
                                components[k_prng_below(g, component_count)]);
    }
    if (depth == 0) snprintf(out, cap, "/");
}

static void random_request(struct k_prng *g, Kvpb__KvRequest *r, char *path, uint64_t index,
                           int64_t now)
{
    kvpb__kv_request__init(r);
    random_path(g, path, PATH_MAX_BYTES);
    r->path.data = (uint8_t *)path;
    r->path.len = strlen(path);
    r->time_ns = now;
    const char *v = VALUES[k_prng_below(g, K_ARRAY_LEN(VALUES))];
    uint64_t kind = k_prng_below(g, 100);
    if (kind < 8) {
        r->method = KVPB__KV_METHOD__KV_METHOD_SYNC;
        return;
    }
    if (kind < 18) {
        r->method = KVPB__KV_METHOD__KV_METHOD_GET;
        r->recursive = k_prng_chance(g, 500000);
        return;
    }
    if (kind < 33) {
        r->method = KVPB__KV_METHOD__KV_METHOD_DELETE;
        r->dir = k_prng_chance(g, 400000);
        r->recursive = k_prng_chance(g, 300000);
    } else if (kind < 40) {
        r->method = KVPB__KV_METHOD__KV_METHOD_POST;
    } else {
        r->method = KVPB__KV_METHOD__KV_METHOD_PUT;
        uint64_t pe = k_prng_below(g, 4);
        r->prev_exist = pe == 1   ? KVPB__KV_PREV_EXIST__KV_PREV_EXIST_TRUE
                        : pe == 2 ? KVPB__KV_PREV_EXIST__KV_PREV_EXIST_FALSE
                                  : KVPB__KV_PREV_EXIST__KV_PREV_EXIST_UNSET;
        r->refresh = k_prng_chance(g, 100000);
    }
    r->value.data = (uint8_t *)v;
    r->value.len = strlen(v);
    r->dir = r->dir || k_prng_chance(g, 150000);
    if (k_prng_chance(g, 200000)) {
        const char *pv = VALUES[1 + k_prng_below(g, K_ARRAY_LEN(VALUES) - 1)];
        r->prev_value.data = (uint8_t *)pv;
        r->prev_value.len = strlen(pv);
    }
    if (k_prng_chance(g, 200000)) r->prev_index = k_prng_below(g, index + 2);
    if (k_prng_chance(g, 350000)) {
        r->has_ttl = true;
        r->ttl_s = k_prng_below(g, 4);
    }
    if (r->refresh) {
        /* The server answers 211/212 before proposing: only well-formed refreshes reach kv. */
        r->value.len = 0;
        r->has_ttl = true;
        r->ttl_s = 1 + k_prng_below(g, 3);
    }
}

static void run_seed(uint64_t seed, int steps)
{
    printf("kv_model: seed %llu, %d steps (replay: KETCH_SEED=%llu)\n", (unsigned long long)seed,
           steps, (unsigned long long)seed);
    struct k_prng g;
    k_prng_init(&g, seed);
    struct kvt t;
    kvt_open(&t);
    struct model *m = k_xcalloc(1, sizeof(*m));
    enum { BATCH_MAX = 16 };
    Kvpb__KvRequest reqs[BATCH_MAX];
    const Kvpb__KvRequest *ptrs[BATCH_MAX];
    char paths[BATCH_MAX][PATH_MAX_BYTES];
    uint64_t idx[BATCH_MAX];
    int step = 0;
    while (step < steps) {
        size_t n = 1 + k_prng_below(&g, BATCH_MAX);
        for (size_t i = 0; i < n; i++) {
            t.now_ns += (int64_t)k_prng_below(&g, 700000000);
            random_request(&g, &reqs[i], paths[i], m->index, t.now_ns);
            ptrs[i] = &reqs[i];
            idx[i] = ++t.raft_index;
        }
        struct kv_batch b;
        ck_assert_int_eq(kv_apply_requests(t.s, ptrs, idx, n, &b), 0);
        ck_assert_uint_eq(b.result_count, n);
        size_t ev_at = 0;
        for (size_t i = 0; i < n; i++, step++) {
            struct k_buf want = { 0 };
            m_apply(m, &reqs[i], &want);
            struct k_buf got = { 0 };
            k_buf_append(&got, "", 0);
            if (reqs[i].method == KVPB__KV_METHOD__KV_METHOD_SYNC) {
                /* A sync's events are the batch events between the previous result's. */
                while (ev_at < b.event_count && b.events[ev_at]->action == KV_ACTION_EXPIRE &&
                       b.events[ev_at]->index <= b.results[i].etcd_index) {
                    kv_json_event(b.events[ev_at++], false, &got);
                }
            } else {
                /* The dispatched operation is reported, and is what a success did. */
                ck_assert_int_eq(b.results[i].action, kv_request_action(&reqs[i]));
                if (b.results[i].event != NULL)
                    ck_assert_int_eq(b.results[i].event->action, b.results[i].action);
                char *r = kvt_render(&b.results[i]);
                k_buf_append(&got, r, strlen(r));
                free(r);
                if (b.results[i].event != NULL && b.results[i].event->action != KV_ACTION_GET)
                    ev_at++;
            }
            if (strcmp(want.data, got.data) != 0) {
                /* Check's messages are bounded: long keys are printed here. */
                fprintf(stderr, "seed %llu step %d: %s\nmodel: %s\nstore: %s\n",
                        (unsigned long long)seed, step, paths[i], want.data, got.data);
                ck_abort_msg("seed %llu step %d: model and store differ (printed above)",
                             (unsigned long long)seed, step);
            }
            if (getenv("KV_MODEL_DEBUG")) fprintf(stderr, "%s", got.data);
            k_buf_free(&want);
            k_buf_free(&got);
        }
        ck_assert_uint_eq(ev_at, b.event_count);
        ck_assert_uint_eq(b.etcd_index, m->index);
        kv_batch_free(&b);
    }
    /* Every node, hidden ones too, reads the same from both. */
    for (size_t i = 0; i < m->n; i++) {
        struct manswer a = { 0 };
        ck_assert_int_eq(m_get(m, m->nodes[i].path, true, t.now_ns, &a), 0);
        struct k_buf want = { 0 };
        m_render(&a, &want);
        kv_event_unref(a.ev);
        ck_assert_str_eq(kvt_req(&t, "GET", m->nodes[i].path, "recursive=true"), want.data);
        k_buf_free(&want);
    }
    free(m);
    kvt_close(&t);
}

START_TEST(test_random_operations_match_the_reference_model)
{
    const char *env = getenv("KETCH_SEED");
    if (env != NULL) {
        run_seed(strtoull(env, NULL, 10), 20000);
        return;
    }
    static const uint64_t seeds[] = { 1, 2, 3, 42, 1234, 99991 };
    for (size_t i = 0; i < K_ARRAY_LEN(seeds); i++)
        run_seed(seeds[i], 10000);
}
END_TEST

START_TEST(test_random_operations_on_long_keys_match_the_reference_model)
{
    long_components_init();
    components = LONG_COMPONENTS;
    component_count = K_ARRAY_LEN(LONG_COMPONENTS);
    const char *env = getenv("KETCH_SEED");
    if (env != NULL) {
        run_seed(strtoull(env, NULL, 10), 20000);
    } else {
        static const uint64_t seeds[] = { 7, 8, 77, 4242 };
        for (size_t i = 0; i < K_ARRAY_LEN(seeds); i++)
            run_seed(seeds[i], 10000);
    }
    components = SHORT_COMPONENTS;
    component_count = K_ARRAY_LEN(SHORT_COMPONENTS);
}
END_TEST

Suite *test_kv_model_suite(void)
{
    Suite *s = suite_create("kv_model");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_random_operations_match_the_reference_model);
    tcase_add_test(tc, test_random_operations_on_long_keys_match_the_reference_model);
    suite_add_tcase(s, tc);
    return s;
}
