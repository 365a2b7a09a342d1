/* Opening, syncing, snapshotting and restoring the LMDB environment of kv/store.h. */
#include "kv/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "kv/kv_int.h"

int kv__meta_get(const struct kv_store *s, MDB_txn *txn, const char *name, uint64_t *v)
{
    MDB_val k = { .mv_size = strlen(name), .mv_data = (void *)name };
    MDB_val d;
    int rc = mdb_get(txn, s->dbi_meta, &k, &d);
    if (rc == MDB_NOTFOUND) {
        *v = 0;
        return 0;
    }
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    if (d.mv_size != 8) return K_ECORRUPT;
    *v = kv__get_u64le(d.mv_data);
    return 0;
}

int kv__meta_put(const struct kv_store *s, MDB_txn *txn, const char *name, uint64_t v)
{
    uint8_t buf[8];
    kv__put_u64le(buf, v);
    MDB_val k = { .mv_size = strlen(name), .mv_data = (void *)name };
    MDB_val d = { .mv_size = 8, .mv_data = buf };
    int rc = mdb_put(txn, s->dbi_meta, &k, &d, 0);
    return rc == MDB_SUCCESS ? 0 : kv__mdb_err(rc);
}

static int limits_fill(const struct kv_limits *in, struct kv_limits *out)
{
    *out = *in;
    if (out->key_bytes_max == 0) out->key_bytes_max = KV_KEY_BYTES_MAX_DEFAULT;
    if (out->value_bytes_max == 0) out->value_bytes_max = KV_VALUE_BYTES_MAX_DEFAULT;
    if (out->depth_max == 0) out->depth_max = KV_DEPTH_MAX_DEFAULT;
    if (out->key_bytes_max > KV_KEY_BYTES_MAX_LIMIT) return K_ECONFIG;
    if (out->depth_max > out->key_bytes_max / 2) out->depth_max = out->key_bytes_max / 2;
    return 0;
}

/* Opens the named DBs and checks (or, for a new store, writes) the format version. */
static int store_init_dbs(struct kv_store *s)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    rc = mdb_dbi_open(txn, "nodes", MDB_CREATE, &s->dbi_nodes);
    if (rc == MDB_SUCCESS) rc = mdb_dbi_open(txn, "expiry", MDB_CREATE, &s->dbi_expiry);
    if (rc == MDB_SUCCESS) rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->dbi_meta);
    if (rc == MDB_SUCCESS) rc = mdb_dbi_open(txn, "internal", MDB_CREATE, &s->dbi_internal);
    if (rc != MDB_SUCCESS) {
        mdb_txn_abort(txn);
        return rc == MDB_INCOMPATIBLE ? K_ECORRUPT : kv__mdb_err(rc);
    }
    uint64_t format;
    int ret = kv__meta_get(s, txn, "format", &format);
    if (ret == 0 && format == 0) {
        uint64_t applied;
        ret = kv__meta_get(s, txn, "applied", &applied);
        if (ret == 0 && applied != 0) ret = K_ECORRUPT; /* data without a format: not ours */
        if (ret == 0) ret = kv__meta_put(s, txn, "format", KV__FORMAT_VERSION);
    } else if (ret == 0 && format == 1) {
        ret = kv__meta_put(s, txn, "format", KV__FORMAT_VERSION); /* format 2 only adds */
    } else if (ret == 0 && format != KV__FORMAT_VERSION) {
        ret = K_ECORRUPT;
    }
    if (ret < 0) {
        mdb_txn_abort(txn);
        return ret;
    }
    rc = mdb_txn_commit(txn);
    return rc == MDB_SUCCESS ? 0 : kv__mdb_err(rc);
}

static int env_open(const char *path, unsigned flags, uint64_t map_bytes, MDB_env **out)
{
    MDB_env *env;
    int rc = mdb_env_create(&env);
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    rc = mdb_env_set_maxdbs(env, 4);
    if (rc == MDB_SUCCESS) rc = mdb_env_set_mapsize(env, map_bytes);
    if (rc == MDB_SUCCESS) rc = mdb_env_set_maxreaders(env, 126);
    if (rc == MDB_SUCCESS) rc = mdb_env_open(env, path, flags, 0600);
    if (rc != MDB_SUCCESS) {
        mdb_env_close(env);
        return kv__mdb_err(rc);
    }
    *out = env;
    return 0;
}

int kv_store_open(const struct kv_store_config *config, struct kv_store **out)
{
    struct kv_store *s = k_xcalloc(1, sizeof(*s));
    int rc = limits_fill(&config->limits, &s->limits);
    if (rc < 0) goto out_free;
    if (mkdir(config->dir, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        goto out_free;
    }
    /* MDB_NOTLS: read transactions are not tied to a thread (kv_get may run on the loop
     * thread while a worker applies). MDB_NOMETASYNC: see the header. */
    unsigned flags = MDB_NOTLS | (config->no_sync ? MDB_NOSYNC : MDB_NOMETASYNC);
    uint64_t map_bytes = config->map_bytes ? config->map_bytes : KV_MAP_BYTES_DEFAULT;
    rc = env_open(config->dir, flags, map_bytes, &s->env);
    if (rc < 0) goto out_free;
    /* Node keys take up to KV__NODE_KEY_BYTES_MAX bytes (kv_int.h); a liblmdb built with a
     * smaller MDB_MAXKEYSIZE than Debian's 511 cannot hold them. */
    if ((size_t)mdb_env_get_maxkeysize(s->env) < KV__NODE_KEY_BYTES_MAX) {
        rc = K_ECONFIG;
        goto out_close;
    }
    rc = store_init_dbs(s);
    if (rc < 0) goto out_close;
    *out = s;
    return 0;
out_close:
    mdb_env_close(s->env);
out_free:
    free(s);
    return rc;
}

void kv_store_close(struct kv_store *s)
{
    if (s == NULL) return;
    mdb_env_close(s->env);
    free(s);
}

int kv_store_sync(struct kv_store *s)
{
    int rc = mdb_env_sync(s->env, 1);
    return rc == MDB_SUCCESS ? 0 : kv__mdb_err(rc);
}

const struct kv_limits *kv_store_limits(const struct kv_store *s)
{
    return &s->limits;
}

static int indexes_read(const struct kv_store *s, MDB_txn *txn, uint64_t *applied, uint64_t *etcd)
{
    int rc = kv__meta_get(s, txn, "applied", applied);
    if (rc == 0) rc = kv__meta_get(s, txn, "index", etcd);
    return rc;
}

int kv_store_next_expiration(struct kv_store *s, bool *has, int64_t *expiration_ns)
{
    *has = false;
    *expiration_ns = 0;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn, s->dbi_expiry, &cur);
    int ret = 0;
    if (rc == MDB_SUCCESS) {
        MDB_val k;
        MDB_val v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc == MDB_SUCCESS && k.mv_size == KV__EXPIRY_KEY_BYTES) {
            uint64_t be = 0;
            for (int i = 0; i < 8; i++)
                be = (be << 8) | ((const uint8_t *)k.mv_data)[i];
            *expiration_ns = (int64_t)(be ^ (1ull << 63));
            *has = true;
        } else if (rc == MDB_SUCCESS) {
            ret = K_ECORRUPT;
        } else if (rc != MDB_NOTFOUND) {
            ret = kv__mdb_err(rc);
        }
        mdb_cursor_close(cur);
    } else {
        ret = kv__mdb_err(rc);
    }
    mdb_txn_abort(txn);
    return ret;
}

int kv_store_indexes(struct kv_store *s, uint64_t *applied_index, uint64_t *etcd_index)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    int ret = indexes_read(s, txn, applied_index, etcd_index);
    mdb_txn_abort(txn);
    return ret;
}

int kv_store_node_count(struct kv_store *s, uint64_t *count)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    MDB_stat st;
    rc = mdb_stat(txn, s->dbi_nodes, &st);
    mdb_txn_abort(txn);
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    *count = st.ms_entries;
    return 0;
}

/* Opens a snapshot file read-only and reads its indexes: proves it is a ketch store. */
static int snapshot_read_indexes(const char *path, uint64_t *applied, uint64_t *etcd)
{
    MDB_env *env;
    int rc = env_open(path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS, 0, &env);
    if (rc < 0) return rc == -ENOENT ? rc : K_ECORRUPT;
    struct kv_store tmp = { .env = env };
    MDB_txn *txn;
    int ret = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (ret != MDB_SUCCESS) {
        ret = kv__mdb_err(ret);
    } else {
        int r1 = mdb_dbi_open(txn, "meta", 0, &tmp.dbi_meta);
        if (r1 != MDB_SUCCESS) {
            ret = K_ECORRUPT;
        } else {
            uint64_t format;
            ret = kv__meta_get(&tmp, txn, "format", &format);
            if (ret == 0 && format != KV__FORMAT_VERSION) ret = K_ECORRUPT;
            if (ret == 0) ret = indexes_read(&tmp, txn, applied, etcd);
        }
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return ret;
}

int kv_store_snapshot(struct kv_store *s, const char *path, uint64_t *applied_index,
                      uint64_t *etcd_index)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    int rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
    if (rc != MDB_SUCCESS) {
        rc = kv__mdb_err(rc);
        goto out_unlink;
    }
    if (fsync(fd) < 0) {
        rc = -errno;
        goto out_unlink;
    }
    if (close(fd) < 0) {
        fd = -1;
        rc = -errno;
        goto out_unlink;
    }
    fd = -1;
    rc = snapshot_read_indexes(path, applied_index, etcd_index);
    if (rc < 0) goto out_unlink;
    return 0;
out_unlink:
    if (fd >= 0) close(fd);
    unlink(path);
    return rc;
}

int kv_store_restore(const struct kv_store_config *config, const char *snapshot_path,
                     struct kv_store **out)
{
    uint64_t applied, etcd;
    int rc = snapshot_read_indexes(snapshot_path, &applied, &etcd);
    if (rc < 0) return rc;
    if (mkdir(config->dir, 0700) < 0 && errno != EEXIST) return -errno;
    char data_path[4096];
    char lock_path[4096];
    int n1 = snprintf(data_path, sizeof(data_path), "%s/data.mdb", config->dir);
    int n2 = snprintf(lock_path, sizeof(lock_path), "%s/lock.mdb", config->dir);
    if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof(data_path) || (size_t)n2 >= sizeof(lock_path))
        return -ENAMETOOLONG;
    /* The lock file describes readers of the old data file; a fresh one is made on open. */
    if (unlink(lock_path) < 0 && errno != ENOENT) return -errno;
    if (rename(snapshot_path, data_path) < 0) return -errno;
    int dfd = open(config->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        int sync_rc = fsync(dfd) < 0 ? -errno : 0;
        close(dfd);
        if (sync_rc < 0) return sync_rc;
    }
    return kv_store_open(config, out);
}

int kv_store_internal_scan(struct kv_store *s, const char *prefix, kv_internal_cb cb, void *data)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != MDB_SUCCESS) return kv__mdb_err(rc);
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn, s->dbi_internal, &cur);
    if (rc != MDB_SUCCESS) {
        mdb_txn_abort(txn);
        return kv__mdb_err(rc);
    }
    size_t plen = strlen(prefix);
    MDB_val k = { .mv_size = plen, .mv_data = (void *)prefix };
    MDB_val d;
    int ret = 0;
    rc = mdb_cursor_get(cur, &k, &d, plen ? MDB_SET_RANGE : MDB_FIRST);
    while (rc == MDB_SUCCESS && ret == 0) {
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0) break;
        ret = cb(data, k.mv_data, k.mv_size, d.mv_data, d.mv_size);
        rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
    }
    if (ret == 0 && rc != MDB_SUCCESS && rc != MDB_NOTFOUND) ret = kv__mdb_err(rc);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return ret;
}
