/* Helpers shared by the kv unit suites: a store in a fresh temporary directory, requests
 * written like query strings ("value=bar&ttl=5&prevExist=true"), and answers rendered as
 * "<HTTP status> <etcd JSON body>" so expectations read like spec/etcd-v2-api.md. Everything
 * is static inline: each suite is its own executable. */
#ifndef KETCH_TESTS_KV_TEST_UTIL_H
#define KETCH_TESTS_KV_TEST_UTIL_H

#include <check.h>
#include <ftw.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/prng.h"
#include "kv/apply.h"
#include "kv/get.h"
#include "kv/json.h"
#include "kv/store.h"
#include "kv/watch.h"
#include "proto/kv.pb-c.h"

#define KVT_T0_NS (1800000000LL * 1000000000LL) /* 2027-01-15T08:00:00Z */

struct kvt {
    struct kv_store *s;
    struct kv_watch_hub *hub; /* fed with every batch when not NULL */
    char dir[64];
    uint64_t raft_index;
    int64_t now_ns;
    char *answers[4096]; /* strings handed out, freed by kvt_close */
    size_t answer_count;
};

static inline int kvt__rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void kvt_rm_rf(const char *dir)
{
    int rc = nftw(dir, kvt__rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    ck_assert_int_eq(rc, 0);
}

static inline void kvt_mkdtemp(char *out, size_t cap)
{
    snprintf(out, cap, "/tmp/ketch-kv-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(out));
}

/* Writes meta record name = v (8 bytes LE) into the LMDB environment in dir, creating the
 * environment and the table if needed, behind the store's back: for format and foreign-data
 * tests. No store may be open on dir. */
static inline void kvt_raw_meta_put(const char *dir, const char *name, uint64_t v)
{
    MDB_env *env;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 4), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "meta", MDB_CREATE, &dbi), 0);
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    MDB_val k = { strlen(name), (void *)name };
    MDB_val d = { sizeof(b), b };
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &d, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static inline void kvt_open_with(struct kvt *t, const struct kv_limits *limits)
{
    memset(t, 0, sizeof(*t));
    kvt_mkdtemp(t->dir, sizeof(t->dir));
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/db", t->dir);
    struct kv_store_config cfg = { .dir = sub, .map_bytes = 1ull << 30, .no_sync = true };
    if (limits != NULL) cfg.limits = *limits;
    int rc = kv_store_open(&cfg, &t->s);
    ck_assert_int_eq(rc, 0);
    t->now_ns = KVT_T0_NS;
    t->hub = kv_watch_hub_new(0, 0, 0);
}

static inline void kvt_open(struct kvt *t)
{
    kvt_open_with(t, NULL);
}

static inline void kvt_close(struct kvt *t)
{
    kv_watch_hub_free(t->hub);
    kv_store_close(t->s);
    kvt_rm_rf(t->dir);
    for (size_t i = 0; i < t->answer_count; i++)
        free(t->answers[i]);
}

static inline const char *kvt_keep(struct kvt *t, char *s)
{
    ck_assert_uint_lt(t->answer_count, K_ARRAY_LEN(t->answers));
    t->answers[t->answer_count++] = s;
    return s;
}

/* Parses "name=value&..." (no percent-decoding) into req; strings point into params. */
static inline void kvt_params(Kvpb__KvRequest *req, char *params)
{
    for (char *tok = strtok(params, "&"); tok != NULL; tok = strtok(NULL, "&")) {
        char *eq = strchr(tok, '=');
        ck_assert_ptr_nonnull(eq);
        *eq = '\0';
        const char *v = eq + 1;
        bool b = strcmp(v, "true") == 0;
        if (strcmp(tok, "value") == 0) {
            req->value.data = (uint8_t *)v;
            req->value.len = strlen(v);
        } else if (strcmp(tok, "prevValue") == 0) {
            req->prev_value.data = (uint8_t *)v;
            req->prev_value.len = strlen(v);
        } else if (strcmp(tok, "prevIndex") == 0) {
            req->prev_index = strtoull(v, NULL, 10);
        } else if (strcmp(tok, "ttl") == 0) {
            req->has_ttl = v[0] != '\0';
            req->ttl_s = strtoull(v, NULL, 10);
        } else if (strcmp(tok, "prevExist") == 0) {
            req->prev_exist = b ? KVPB__KV_PREV_EXIST__KV_PREV_EXIST_TRUE
                                : KVPB__KV_PREV_EXIST__KV_PREV_EXIST_FALSE;
        } else if (strcmp(tok, "dir") == 0) {
            req->dir = b;
        } else if (strcmp(tok, "recursive") == 0) {
            req->recursive = b;
        } else if (strcmp(tok, "sorted") == 0) {
            req->sorted = b;
        } else if (strcmp(tok, "refresh") == 0) {
            req->refresh = b;
        } else {
            ck_abort_msg("unknown test parameter %s", tok);
        }
    }
}

static inline Kvpb__KvMethod kvt_method(const char *m)
{
    if (strcmp(m, "PUT") == 0) return KVPB__KV_METHOD__KV_METHOD_PUT;
    if (strcmp(m, "POST") == 0) return KVPB__KV_METHOD__KV_METHOD_POST;
    if (strcmp(m, "INTERNAL") == 0) return KVPB__KV_METHOD__KV_METHOD_INTERNAL;
    if (strcmp(m, "DELETE") == 0) return KVPB__KV_METHOD__KV_METHOD_DELETE;
    if (strcmp(m, "QGET") == 0) return KVPB__KV_METHOD__KV_METHOD_GET;
    if (strcmp(m, "SYNC") == 0) return KVPB__KV_METHOD__KV_METHOD_SYNC;
    ck_abort_msg("unknown method %s", m);
    return KVPB__KV_METHOD__KV_METHOD_NONE;
}

/* Renders a result as "<status> <body>" (body with its trailing newline), "" for none. */
static inline char *kvt_render(const struct kv_result *r)
{
    struct k_buf b = { 0 };
    char head[16];
    if (r->rc == K_EV2) {
        snprintf(head, sizeof(head), "%d ", kv_ecode_http_status(r->err.ecode));
        k_buf_append(&b, head, strlen(head));
        kv_json_error(&r->err, &b);
        ck_assert_uint_eq(r->etcd_index, r->err.index);
    } else if (r->event != NULL) {
        snprintf(head, sizeof(head), "%d ", kv_event_http_status(r->event));
        k_buf_append(&b, head, strlen(head));
        kv_json_event(r->event, false, &b);
        ck_assert_uint_eq(r->etcd_index, r->event->index);
    } else {
        k_buf_append(&b, "", 0);
    }
    return b.data;
}

/* Builds and applies one request through the log at the next raft index; publishes its
 * events to t->hub; returns "<status> <body>". */
static inline const char *kvt_req(struct kvt *t, const char *method, const char *path,
                                  const char *params)
{
    if (strcmp(method, "GET") == 0) {
        struct kv_event *ev = NULL;
        struct kv_error err;
        char *pcopy = k_xstrdup(params);
        Kvpb__KvRequest q = KVPB__KV_REQUEST__INIT;
        kvt_params(&q, pcopy);
        int rc = kv_get(t->s, path, strlen(path), q.recursive, q.sorted, t->now_ns, &ev, &err);
        free(pcopy);
        struct kv_result r = { .rc = rc, .err = err, .event = ev };
        ck_assert(rc == 0 || rc == K_EV2);
        r.etcd_index = rc == 0 ? ev->index : err.index;
        char *out = kvt_render(&r);
        kv_event_unref(ev);
        if (rc == K_EV2) kv_error_release(&err);
        return kvt_keep(t, out);
    }
    Kvpb__KvRequest req = KVPB__KV_REQUEST__INIT;
    req.id = t->raft_index + 1;
    req.method = kvt_method(method);
    req.path.data = (uint8_t *)path;
    req.path.len = strlen(path);
    req.time_ns = t->now_ns;
    char *pcopy = k_xstrdup(params);
    kvt_params(&req, pcopy);
    /* Through the wire encoding, as raft would carry it. */
    size_t len = kvpb__kv_request__get_packed_size(&req);
    uint8_t *buf = k_xmalloc(len + 1);
    kvpb__kv_request__pack(&req, buf);
    free(pcopy);
    struct kv_entry e = { .raft_index = ++t->raft_index, .data = buf, .len = len };
    struct kv_batch b;
    int rc = kv_apply_batch(t->s, &e, 1, &b);
    ck_assert_int_eq(rc, 0);
    free(buf);
    ck_assert_uint_eq(b.result_count, 1);
    ck_assert_uint_eq(b.results[0].request_id, req.id);
    if (t->hub != NULL) kv_watch_hub_publish(t->hub, b.events, b.event_count);
    char *out = kvt_render(&b.results[0]);
    kv_batch_free(&b);
    return kvt_keep(t, out);
}

/* A SYNC (expiry sweep) at t->now_ns; returns the JSON of each expire event, one per line. */
static inline const char *kvt_sync(struct kvt *t)
{
    Kvpb__KvRequest req = KVPB__KV_REQUEST__INIT;
    req.method = KVPB__KV_METHOD__KV_METHOD_SYNC;
    req.time_ns = t->now_ns;
    const Kvpb__KvRequest *rp = &req;
    uint64_t idx = ++t->raft_index;
    struct kv_batch b;
    int rc = kv_apply_requests(t->s, &rp, &idx, 1, &b);
    ck_assert_int_eq(rc, 0);
    if (t->hub != NULL) kv_watch_hub_publish(t->hub, b.events, b.event_count);
    struct k_buf out = { 0 };
    k_buf_append(&out, "", 0);
    for (size_t i = 0; i < b.event_count; i++)
        kv_json_event(b.events[i], false, &out);
    kv_batch_free(&b);
    return kvt_keep(t, out.data);
}

/* A reproducible stream of writes over 8 dirs x 200 keys (sets with and without TTLs, deletes
 * of keys and whole dirs, POSTs, expiry sweeps), for snapshot and crash tests. */
struct kvt_workload {
    size_t n;
    Kvpb__KvRequest *reqs;
    char (*paths)[32];
    char (*values)[300];
};

static inline void kvt_workload_make(struct kvt_workload *w, size_t n, uint64_t seed)
{
    w->n = n;
    w->reqs = k_xcalloc(n, sizeof(*w->reqs));
    w->paths = k_xcalloc(n, sizeof(*w->paths));
    w->values = k_xcalloc(n, sizeof(*w->values));
    struct k_prng g;
    k_prng_init(&g, seed);
    int64_t now = KVT_T0_NS;
    for (size_t i = 0; i < n; i++) {
        Kvpb__KvRequest *r = &w->reqs[i];
        kvpb__kv_request__init(r);
        now += (int64_t)k_prng_below(&g, 300000000);
        r->time_ns = now;
        snprintf(w->paths[i], sizeof(w->paths[i]), "/d%llu/k%llu",
                 (unsigned long long)k_prng_below(&g, 8),
                 (unsigned long long)k_prng_below(&g, 200));
        r->path.data = (uint8_t *)w->paths[i];
        r->path.len = strlen(w->paths[i]);
        size_t vlen = (size_t)k_prng_below(&g, sizeof(w->values[i]));
        for (size_t j = 0; j < vlen; j++)
            w->values[i][j] = (char)('a' + k_prng_below(&g, 26));
        r->value.data = (uint8_t *)w->values[i];
        r->value.len = vlen;
        uint64_t kind = k_prng_below(&g, 10);
        if (kind < 6) {
            r->method = KVPB__KV_METHOD__KV_METHOD_PUT;
            r->has_ttl = k_prng_chance(&g, 300000);
            r->ttl_s = 1 + k_prng_below(&g, 5);
        } else if (kind < 8) {
            r->method = KVPB__KV_METHOD__KV_METHOD_DELETE;
            r->path.len = k_prng_chance(&g, 100000) ? 3 : r->path.len; /* a whole dir */
            r->recursive = true;
        } else if (kind < 9) {
            r->method = KVPB__KV_METHOD__KV_METHOD_POST;
        } else {
            r->method = KVPB__KV_METHOD__KV_METHOD_SYNC;
        }
    }
}

static inline void kvt_workload_free(struct kvt_workload *w)
{
    free(w->reqs);
    free(w->paths);
    free(w->values);
}

/* Applies entries [from, to) of w (raft index = position + 1) in batches: of size batch, or of
 * random sizes drawn from seed when batch is 0. Appends every answer to answers and every event
 * to events unless they are NULL. Returns 0 or the first kv_apply error. */
static inline int kvt_workload_apply_logged(struct kv_store *s, const struct kvt_workload *w,
                                            size_t from, size_t to, size_t batch, uint64_t seed,
                                            struct k_buf *answers, struct k_buf *events)
{
    struct k_prng g;
    k_prng_init(&g, seed);
    const Kvpb__KvRequest *ptrs[64];
    uint64_t idx[64];
    for (size_t done = from; done < to;) {
        size_t n = batch > 0 ? batch : 1 + (size_t)k_prng_below(&g, 64);
        if (n > to - done) n = to - done;
        for (size_t i = 0; i < n; i++) {
            ptrs[i] = &w->reqs[done + i];
            idx[i] = done + i + 1;
        }
        struct kv_batch b;
        int rc = kv_apply_requests(s, ptrs, idx, n, &b);
        if (rc < 0) return rc;
        for (size_t i = 0; answers != NULL && i < b.result_count; i++) {
            char *r = kvt_render(&b.results[i]);
            k_buf_append(answers, r, strlen(r));
            free(r);
        }
        for (size_t i = 0; events != NULL && i < b.event_count; i++)
            kv_json_event(b.events[i], false, events);
        kv_batch_free(&b);
        done += n;
    }
    return 0;
}

static inline int kvt_workload_apply(struct kv_store *s, const struct kvt_workload *w, size_t from,
                                     size_t to, size_t batch, uint64_t seed)
{
    return kvt_workload_apply_logged(s, w, from, to, batch, seed, NULL, NULL);
}

static inline int kvt__dump_cb(void *data, const void *bytes, size_t len)
{
    k_buf_append(data, bytes, len);
    return 0;
}

/* The canonical dump of s (caller frees with k_buf_free). */
static inline struct k_buf kvt_dump(struct kv_store *s)
{
    struct k_buf b = { 0 };
    k_buf_append(&b, "", 0);
    int rc = kv_store_dump(s, kvt__dump_cb, &b);
    ck_assert_int_eq(rc, 0);
    return b;
}

#endif
