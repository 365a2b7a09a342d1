/* The canonical dump of kv/store.h: the logical state as bytes that depend only on the
 * entries applied, never on LMDB's page layout. Used to compare members and stores. */
#include <stdlib.h>
#include <string.h>

#include "base/crc32c.h"
#include "base/err.h"
#include "kv/kv_int.h"
#include "kv/store.h"

static int dump_u32(kv_dump_cb cb, void *data, size_t v)
{
    uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
    return cb(data, b, sizeof(b));
}

static int dump_table(MDB_txn *txn, MDB_dbi dbi, kv_dump_cb cb, void *data)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    MDB_val k;
    MDB_val v;
    int ret = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS && ret == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        ret = dump_u32(cb, data, k.mv_size);
        if (ret == 0) ret = cb(data, k.mv_data, k.mv_size);
        if (ret == 0) ret = dump_u32(cb, data, v.mv_size);
        if (ret == 0) ret = cb(data, v.mv_data, v.mv_size);
    }
    if (ret == 0 && rc != MDB_NOTFOUND) ret = kv__mdb_err(rc);
    if (ret == 0) ret = dump_u32(cb, data, 0);
    mdb_cursor_close(cur);
    return ret;
}

int kv_store_dump(struct kv_store *s, kv_dump_cb cb, void *data)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    uint64_t applied;
    uint64_t etcd;
    int ret = kv__meta_get(s, txn, "applied", &applied);
    if (ret == 0) ret = kv__meta_get(s, txn, "index", &etcd);
    uint8_t head[24];
    memcpy(head, "KETCHKV1", 8);
    kv__put_u64le(head + 8, applied);
    kv__put_u64le(head + 16, etcd);
    if (ret == 0) ret = cb(data, head, sizeof(head));
    if (ret == 0) ret = dump_table(txn, s->dbi_nodes, cb, data);
    if (ret == 0) ret = dump_table(txn, s->dbi_expiry, cb, data);
    if (ret == 0) ret = dump_table(txn, s->dbi_internal, cb, data);
    mdb_txn_abort(txn);
    return ret;
}

static int digest_cb(void *data, const void *bytes, size_t len)
{
    uint32_t *crc = data;
    *crc = k_crc32c(*crc, bytes, len);
    return 0;
}

int kv_store_digest(struct kv_store *s, uint32_t *crc32c)
{
    *crc32c = 0;
    return kv_store_dump(s, digest_cb, crc32c);
}
