/* Checksummed snapshot files, written atomically and streamed; format in raft/snap.h. */
#include "snap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/crc32c.h"
#include "base/endian.h"
#include "base/err.h"
#include "base/fsutil.h"
#include "proto/raft.pb-c.h"

static const char SNAP_MAGIC[8] = { 'K', 'E', 'T', 'C', 'H', 'S', 'N', 'P' };
static const char SNAP_END[8] = { 'K', 'S', 'N', 'P', 'E', 'N', 'D', '\0' };
static const uint32_t SNAP_VERSION = 1;
enum { SNAP_META_BYTES_MAX = 64 * 1024, SNAP_IO_CHUNK_BYTES = 1 << 20 };

struct raft_snap_writer {
    int fd;
    char tmp_path[4096 + 8];
    char final_path[4096];
    struct raft_snapshot_meta meta;
    uint8_t *meta_buf;
    size_t meta_len;
};

static int write_all_at(int fd, const void *buf, size_t n, uint64_t off)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t done = pwrite(fd, p, n, (off_t)off);
        if (done < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += done;
        n -= (size_t)done;
        off += (uint64_t)done;
    }
    return 0;
}

static int read_all_at(int fd, void *buf, size_t n, uint64_t off)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t done = pread(fd, p, n, (off_t)off);
        if (done < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (done == 0) return K_ECORRUPT; /* shorter than its header says */
        p += done;
        n -= (size_t)done;
        off += (uint64_t)done;
    }
    return 0;
}

/* Encodes meta as raftpb.SnapshotMetadata into a new buffer. */
static uint8_t *meta_encode(const struct raft_snapshot_meta *meta, size_t *len)
{
    Raftpb__ConfState cs = RAFTPB__CONF_STATE__INIT;
    cs.n_voters = meta->conf.voters_n;
    cs.voters = (uint64_t *)meta->conf.voters;
    cs.n_learners = meta->conf.learners_n;
    cs.learners = (uint64_t *)meta->conf.learners;
    Raftpb__SnapshotMetadata pm = RAFTPB__SNAPSHOT_METADATA__INIT;
    pm.conf_state = &cs;
    pm.index = meta->index;
    pm.term = meta->term;
    *len = raftpb__snapshot_metadata__get_packed_size(&pm);
    uint8_t *buf = k_xmalloc(*len);
    k_assert(raftpb__snapshot_metadata__pack(&pm, buf) == *len);
    return buf;
}

static int meta_decode(const uint8_t *buf, size_t len, struct raft_snapshot_meta *meta)
{
    Raftpb__SnapshotMetadata *pm = raftpb__snapshot_metadata__unpack(NULL, len, buf);
    if (!pm) return K_ECORRUPT;
    int rc = 0;
    memset(meta, 0, sizeof(*meta));
    meta->index = pm->index;
    meta->term = pm->term;
    if (pm->conf_state) {
        const Raftpb__ConfState *cs = pm->conf_state;
        if (cs->n_voters > RAFT_NODES_MAX || cs->n_learners > RAFT_NODES_MAX) {
            rc = K_ECORRUPT;
        } else {
            for (size_t i = 0; i < cs->n_voters; i++)
                meta->conf.voters[i] = cs->voters[i];
            meta->conf.voters_n = cs->n_voters;
            for (size_t i = 0; i < cs->n_learners; i++)
                meta->conf.learners[i] = cs->learners[i];
            meta->conf.learners_n = cs->n_learners;
        }
    }
    raftpb__snapshot_metadata__free_unpacked(pm, NULL);
    return rc;
}

int raft_snap_begin(const char *dir, const struct raft_snapshot_meta *meta,
                    struct raft_snap_writer **out)
{
    k_assert(meta->index > 0);
    int rc = k_mkdir_p(dir, 0700);
    if (rc < 0) return rc;
    struct raft_snap_writer *w = k_xcalloc(1, sizeof(*w));
    w->meta = *meta;
    snprintf(w->final_path, sizeof(w->final_path), "%s/%016" PRIx64 "-%016" PRIx64 ".snap", dir,
             meta->term, meta->index);
    snprintf(w->tmp_path, sizeof(w->tmp_path), "%s.tmp", w->final_path);
    w->fd = open(w->tmp_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        rc = -errno;
        free(w);
        return rc;
    }
    w->meta_buf = meta_encode(meta, &w->meta_len);
    uint8_t head[RAFT_SNAP_HEAD_BYTES] = { 0 }; /* sealed by raft_snap_finish */
    rc = write_all_at(w->fd, head, sizeof(head), 0);
    if (rc == 0) rc = write_all_at(w->fd, w->meta_buf, w->meta_len, sizeof(head));
    if (rc == 0 && lseek(w->fd, (off_t)(sizeof(head) + w->meta_len), SEEK_SET) < 0) rc = -errno;
    if (rc < 0) {
        raft_snap_abort(w);
        return rc;
    }
    *out = w;
    return 0;
}

int raft_snap_writer_fd(const struct raft_snap_writer *w)
{
    return w->fd;
}

int raft_snap_write(struct raft_snap_writer *w, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t done = write(w->fd, p, len);
        if (done < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += done;
        len -= (size_t)done;
    }
    return 0;
}

/* CRC32C of len bytes of fd from off, extending crc. */
static int crc_of_range(int fd, uint64_t off, uint64_t len, uint32_t *crc)
{
    uint8_t *buf = k_xmalloc(SNAP_IO_CHUNK_BYTES);
    int rc = 0;
    while (len > 0) {
        size_t n = len < SNAP_IO_CHUNK_BYTES ? (size_t)len : SNAP_IO_CHUNK_BYTES;
        rc = read_all_at(fd, buf, n, off);
        if (rc < 0) break;
        *crc = k_crc32c(*crc, buf, n);
        off += n;
        len -= n;
    }
    free(buf);
    return rc;
}

int raft_snap_finish(struct raft_snap_writer *w, char *path_out, size_t path_len)
{
    int rc = 0;
    off_t end = lseek(w->fd, 0, SEEK_END);
    if (end < 0) {
        rc = -errno;
        goto fail;
    }
    uint64_t data_off = RAFT_SNAP_HEAD_BYTES + w->meta_len;
    k_assert((uint64_t)end >= data_off);
    uint64_t data_len = (uint64_t)end - data_off;
    uint32_t crc = k_crc32c(0, w->meta_buf, w->meta_len);
    rc = crc_of_range(w->fd, data_off, data_len, &crc);
    if (rc < 0) goto fail;
    uint8_t tail[RAFT_SNAP_TAIL_BYTES];
    k_put_le32(tail, crc);
    memcpy(tail + 4, SNAP_END, sizeof(SNAP_END));
    rc = write_all_at(w->fd, tail, sizeof(tail), (uint64_t)end);
    if (rc < 0) goto fail;
    uint8_t head[RAFT_SNAP_HEAD_BYTES] = { 0 };
    memcpy(head, SNAP_MAGIC, sizeof(SNAP_MAGIC));
    k_put_le32(head + 8, SNAP_VERSION);
    k_put_le32(head + 12, (uint32_t)w->meta_len);
    k_put_le64(head + 16, data_len);
    k_put_le64(head + 24, w->meta.index);
    k_put_le64(head + 32, w->meta.term);
    k_put_le32(head + 40, k_crc32c(0, head, 40));
    rc = write_all_at(w->fd, head, sizeof(head), 0);
    if (rc == 0 && fsync(w->fd) < 0) rc = -errno;
    if (rc < 0) goto fail;
    close(w->fd);
    w->fd = -1;
    rc = k_rename_durably(w->tmp_path, w->final_path);
    if (rc < 0) goto fail;
    if (path_out) snprintf(path_out, path_len, "%s", w->final_path);
    free(w->meta_buf);
    free(w);
    return 0;
fail:
    raft_snap_abort(w);
    return rc;
}

void raft_snap_abort(struct raft_snap_writer *w)
{
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    unlink(w->tmp_path);
    free(w->meta_buf);
    free(w);
}

struct snap_name {
    uint64_t term;
    uint64_t index;
    char name[64];
};

static int snap_name_parse(const char *name, struct snap_name *out)
{
    unsigned long long term;
    unsigned long long index;
    int consumed = 0;
    if (strlen(name) != 16 + 1 + 16 + 5) return -1;
    if (sscanf(name, "%16llx-%16llx.snap%n", &term, &index, &consumed) != 2) return -1;
    if ((size_t)consumed != strlen(name)) return -1;
    out->term = term;
    out->index = index;
    memcpy(out->name, name, strlen(name) + 1); /* length checked above: 38 bytes */
    return 0;
}

static int snap_name_cmp(const void *a, const void *b)
{
    const struct snap_name *x = a;
    const struct snap_name *y = b;
    if (x->index != y->index) return x->index < y->index ? -1 : 1;
    return x->term < y->term ? -1 : x->term > y->term;
}

/* Lists the snapshot files of dir in ascending (index, term) order; removes *.snap.tmp. */
static int snap_list(const char *dir, struct snap_name **out, size_t *out_n)
{
    *out = NULL;
    *out_n = 0;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -errno;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 9 && strcmp(de->d_name + len - 9, ".snap.tmp") == 0) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            unlink(path); /* an interrupted snapshot: never renamed, so never used */
            continue;
        }
        struct snap_name s;
        if (snap_name_parse(de->d_name, &s) < 0) continue;
        if (*out_n == cap) {
            cap = cap ? 2 * cap : 8;
            *out = k_xrealloc(*out, cap * sizeof(**out));
        }
        (*out)[(*out_n)++] = s;
    }
    closedir(d);
    if (*out_n > 1) qsort(*out, *out_n, sizeof(**out), snap_name_cmp);
    return 0;
}

static int snap_verify(const char *path, const struct snap_name *name, struct raft_snap_info *out,
                       char *err, size_t err_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_len, "cannot open snapshot %s: %s", path, strerror(errno));
        return -errno;
    }
    const char *why = NULL;
    uint8_t *meta_buf = NULL;
    struct stat st;
    uint8_t head[RAFT_SNAP_HEAD_BYTES];
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    if (rc == 0 && (uint64_t)st.st_size < RAFT_SNAP_HEAD_BYTES + RAFT_SNAP_TAIL_BYTES) {
        why = "file is too short";
    }
    if (rc == 0 && !why) rc = read_all_at(fd, head, sizeof(head), 0);
    if (rc == 0 && !why) {
        uint32_t meta_len = k_get_le32(head + 12);
        uint64_t data_len = k_get_le64(head + 16);
        if (memcmp(head, SNAP_MAGIC, sizeof(SNAP_MAGIC)) != 0) {
            why = "not a ketch snapshot";
        } else if (k_get_le32(head + 40) != k_crc32c(0, head, 40) || k_get_le32(head + 44) != 0) {
            why = "header checksum mismatch";
        } else if (k_get_le32(head + 8) != SNAP_VERSION) {
            why = "unknown snapshot version";
        } else if (meta_len > SNAP_META_BYTES_MAX ||
                   (uint64_t)st.st_size !=
                           RAFT_SNAP_HEAD_BYTES + meta_len + data_len + RAFT_SNAP_TAIL_BYTES) {
            why = "size does not match its header";
        } else if (k_get_le64(head + 24) != name->index || k_get_le64(head + 32) != name->term) {
            why = "header does not match the file name";
        } else {
            meta_buf = k_xmalloc(meta_len ? meta_len : 1);
            uint8_t tail[RAFT_SNAP_TAIL_BYTES];
            uint64_t data_off = RAFT_SNAP_HEAD_BYTES + meta_len;
            rc = read_all_at(fd, meta_buf, meta_len, RAFT_SNAP_HEAD_BYTES);
            if (rc == 0) rc = read_all_at(fd, tail, sizeof(tail), data_off + data_len);
            uint32_t crc = k_crc32c(0, meta_buf, meta_len);
            if (rc == 0) rc = crc_of_range(fd, data_off, data_len, &crc);
            if (rc == 0 && (k_get_le32(tail) != crc || memcmp(tail + 4, SNAP_END, 8) != 0)) {
                why = "checksum mismatch";
            } else if (rc == 0 && meta_decode(meta_buf, meta_len, &out->meta) < 0) {
                why = "metadata does not decode";
            } else if (rc == 0 && out->meta.index != name->index) {
                why = "metadata does not match the file name";
            }
            out->data_offset = data_off;
            out->data_len = data_len;
        }
    }
    free(meta_buf);
    close(fd);
    if (rc == K_ECORRUPT) why = "file is shorter than its header says";
    if (why) {
        snprintf(err, err_len, "snapshot %s is corrupt: %s", path, why);
        return K_ECORRUPT;
    }
    if (rc < 0) {
        snprintf(err, err_len, "cannot read snapshot %s: %s", path, k_strerror(rc));
        return rc;
    }
    snprintf(out->path, sizeof(out->path), "%s", path);
    return 0;
}

int raft_snap_load_newest(const char *dir, struct raft_snap_info *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof(*out));
    err[0] = '\0';
    struct snap_name *names;
    size_t n;
    int rc = snap_list(dir, &names, &n);
    if (rc < 0) {
        snprintf(err, err_len, "cannot read snapshot directory %s: %s", dir, k_strerror(rc));
        return rc;
    }
    if (n == 0) {
        free(names);
        return K_ENOTFOUND;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, names[n - 1].name);
    rc = snap_verify(path, &names[n - 1], out, err, err_len);
    free(names);
    return rc;
}

int raft_snap_extract(const struct raft_snap_info *info, const char *dst)
{
    int in = open(info->path, O_RDONLY | O_CLOEXEC);
    if (in < 0) return -errno;
    int outfd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (outfd < 0) {
        int rc = -errno;
        close(in);
        return rc;
    }
    int rc = 0;
    loff_t in_off = (loff_t)info->data_offset;
    uint64_t left = info->data_len;
    while (left > 0 && rc == 0) {
        size_t want = left < (1u << 30) ? (size_t)left : (1u << 30);
        ssize_t done = copy_file_range(in, &in_off, outfd, NULL, want, 0);
        if (done < 0 && errno == EINTR) continue;
        if (done <= 0) {
            rc = done < 0 ? -errno : K_ECORRUPT;
            break;
        }
        left -= (uint64_t)done;
    }
    if (rc == 0 && fsync(outfd) < 0) rc = -errno;
    close(outfd);
    close(in);
    if (rc < 0) unlink(dst);
    return rc;
}

int raft_snap_purge(const char *dir, unsigned keep)
{
    k_assert(keep >= 1);
    struct snap_name *names;
    size_t n;
    int rc = snap_list(dir, &names, &n);
    if (rc < 0) return rc;
    int removed = 0;
    for (size_t i = 0; i + keep < n; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i].name);
        if (unlink(path) < 0 && errno != ENOENT) {
            rc = -errno;
            break;
        }
        removed++;
    }
    free(names);
    if (rc == 0 && removed > 0) rc = k_fsync_dir(dir);
    return rc < 0 ? rc : removed;
}
