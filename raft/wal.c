/* Segment files of CRC32C-checked records, one fdatasync per batch, torn-tail repair and
 * corruption detection on open. The format and the recovery rules are in raft/wal.h. */
#include "wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/crc32c.h"
#include "base/endian.h"
#include "base/err.h"
#include "base/fsutil.h"
#include "proto/raft.pb-c.h"

static const char WAL_MAGIC[8] = { 'K', 'E', 'T', 'C', 'H', 'W', 'A', 'L' };
static const uint32_t WAL_VERSION = 1;
enum { WAL_SEGMENT_PAYLOAD_BYTES = 20, WAL_ZERO_CHUNK_BYTES = 1 << 20 };

struct wal_segment {
    uint64_t seq;         /* from the file name; consecutive across the directory */
    uint64_t first_index; /* index of its first entry (or the next index when it had none) */
};

struct raft_wal {
    char *dir;
    uint64_t segment_bytes;
    struct wal_segment *segments; /* in seq order; the last one is open for appends */
    size_t segments_n;
    size_t segments_cap;
    int fd;                            /* the last segment */
    uint64_t offset;                   /* where the next record goes in it */
    uint32_t batch;                    /* number of the last batch written to it */
    uint64_t last_index;               /* index of the last entry in the log, 0 if none */
    struct raft_hard_state hard_state; /* last written */
    struct raft_hard_state pending_hs; /* newer, differs only in commit; not yet written */
    bool has_pending_hs;
    uint64_t snapshot_index;
    uint64_t snapshot_term;
    int broken;   /* sticky error after a failed write or sync, 0 if healthy */
    uint8_t *buf; /* the batch being built; reused */
    size_t buf_len;
    size_t buf_cap;
    struct raft_wal_stats stats;
};

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* ---- building a batch ---- */

static uint8_t *buf_reserve(struct raft_wal *w, size_t n)
{
    if (w->buf_len + n > w->buf_cap) {
        size_t cap = w->buf_cap ? w->buf_cap : 64 * 1024;
        while (cap < w->buf_len + n)
            cap *= 2;
        w->buf = k_xrealloc(w->buf, cap);
        w->buf_cap = cap;
    }
    uint8_t *p = w->buf + w->buf_len;
    w->buf_len += n;
    return p;
}

/* Appends a record whose payload packs with pack() (size bytes) to the batch buffer. */
static void buf_record(struct raft_wal *w, enum raft_wal_record_type type, bool batch_start,
                       const ProtobufCMessage *msg, const void *raw, size_t size)
{
    k_assert(size <= RAFT_WAL_RECORD_BYTES_MAX);
    size_t total = RAFT_WAL_HEAD_BYTES + pad8(size);
    uint8_t *head = buf_reserve(w, total);
    memset(head, 0, total);
    k_put_le32(head + 4, (uint32_t)size);
    head[8] = (uint8_t)type;
    head[9] = batch_start ? RAFT_WAL_FLAG_BATCH_START : 0;
    k_put_le32(head + 12, w->batch + 1);
    uint8_t *payload = head + RAFT_WAL_HEAD_BYTES;
    if (msg) {
        size_t packed = protobuf_c_message_pack(msg, payload);
        k_assert(packed == size);
    } else if (size) {
        memcpy(payload, raw, size);
    }
    uint32_t crc = k_crc32c(0, head + 4, RAFT_WAL_HEAD_BYTES - 4);
    k_put_le32(head, k_crc32c(crc, payload, size));
}

static void buf_entry(struct raft_wal *w, const struct raft_entry *e, bool batch_start)
{
    Raftpb__Entry pe = RAFTPB__ENTRY__INIT;
    pe.term = e->term;
    pe.index = e->index;
    pe.type = (Raftpb__EntryType)e->type;
    pe.data.len = e->data_len;
    pe.data.data = (uint8_t *)e->data; /* read only: pack does not write through it */
    buf_record(w, RAFT_WAL_RECORD_ENTRY, batch_start, &pe.base, NULL,
               raftpb__entry__get_packed_size(&pe));
}

static void buf_hard_state(struct raft_wal *w, const struct raft_hard_state *hs, bool start)
{
    Raftpb__HardState ph = RAFTPB__HARD_STATE__INIT;
    ph.term = hs->term;
    ph.vote = hs->vote;
    ph.commit = hs->commit;
    buf_record(w, RAFT_WAL_RECORD_HARD_STATE, start, &ph.base, NULL,
               raftpb__hard_state__get_packed_size(&ph));
}

static void buf_snapshot(struct raft_wal *w, uint64_t index, uint64_t term, bool start)
{
    Raftpb__SnapshotMetadata pm = RAFTPB__SNAPSHOT_METADATA__INIT;
    pm.index = index;
    pm.term = term;
    buf_record(w, RAFT_WAL_RECORD_SNAPSHOT, start, &pm.base, NULL,
               raftpb__snapshot_metadata__get_packed_size(&pm));
}

static void buf_segment_header(struct raft_wal *w, uint64_t seq)
{
    uint8_t payload[WAL_SEGMENT_PAYLOAD_BYTES];
    memcpy(payload, WAL_MAGIC, sizeof(WAL_MAGIC));
    k_put_le32(payload + 8, WAL_VERSION);
    k_put_le64(payload + 12, seq);
    buf_record(w, RAFT_WAL_RECORD_SEGMENT, true, NULL, payload, sizeof(payload));
}

/* ---- files ---- */

static void segment_path(const struct raft_wal *w, const struct wal_segment *s, char *out,
                         size_t out_len)
{
    snprintf(out, out_len, "%s/%016" PRIx64 "-%016" PRIx64 ".wal", w->dir, s->seq, s->first_index);
}

static int write_all_at(int fd, const uint8_t *p, size_t n, uint64_t off)
{
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

/* Writes the batch buffer at the end of the open segment and fdatasyncs it. */
static int flush_batch(struct raft_wal *w)
{
    if (w->broken) return w->broken;
    int rc = write_all_at(w->fd, w->buf, w->buf_len, w->offset);
    if (rc == 0 && fdatasync(w->fd) < 0) rc = -errno;
    if (rc < 0) {
        w->broken = -EIO;
        return rc;
    }
    w->offset += w->buf_len;
    w->batch++;
    w->stats.batches++;
    w->stats.bytes += w->buf_len;
    w->buf_len = 0;
    return 0;
}

static void segments_push(struct raft_wal *w, uint64_t seq, uint64_t first_index)
{
    if (w->segments_n == w->segments_cap) {
        w->segments_cap = w->segments_cap ? 2 * w->segments_cap : 8;
        w->segments = k_xrealloc(w->segments, w->segments_cap * sizeof(*w->segments));
    }
    w->segments[w->segments_n].seq = seq;
    w->segments[w->segments_n].first_index = first_index;
    w->segments_n++;
}

/* Creates segment seq starting at first_index, preallocated, and makes it the open one with
 * its opening batch (header, hard state, snapshot marker) durable, and the directory too. */
static int segment_create(struct raft_wal *w, uint64_t seq, uint64_t first_index)
{
    struct wal_segment s = { .seq = seq, .first_index = first_index };
    char path[4096];
    segment_path(w, &s, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    /* Preallocating makes fdatasync skip the size update; a filesystem without fallocate
     * still works, just slower. Unwritten space reads as zeros either way. */
    int rc = posix_fallocate(fd, 0, (off_t)w->segment_bytes);
    if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
        close(fd);
        unlink(path);
        return -rc;
    }
    if (w->fd >= 0) close(w->fd);
    w->fd = fd;
    w->offset = 0;
    w->batch = 0;
    segments_push(w, seq, first_index);
    w->stats.segments++;
    k_assert(w->buf_len == 0);
    buf_segment_header(w, seq);
    buf_hard_state(w, &w->hard_state, false);
    buf_snapshot(w, w->snapshot_index, w->snapshot_term, false);
    rc = flush_batch(w);
    if (rc < 0) return rc;
    return k_fsync_dir(w->dir);
}

/* ---- reading ---- */

struct wal_record {
    uint32_t length;
    uint8_t type;
    uint8_t flags;
    uint32_t batch;
    const uint8_t *payload;
};

/* Returns true if a valid record starts at off in data[0..size). */
static bool record_at(const uint8_t *data, uint64_t size, uint64_t off, struct wal_record *r)
{
    if (size - off < RAFT_WAL_HEAD_BYTES) return false;
    const uint8_t *h = data + off;
    r->length = k_get_le32(h + 4);
    r->type = h[8];
    r->flags = h[9];
    r->batch = k_get_le32(h + 12);
    if (r->type < RAFT_WAL_RECORD_SEGMENT || r->type > RAFT_WAL_RECORD_SNAPSHOT) return false;
    if ((r->flags & ~RAFT_WAL_FLAG_BATCH_START) != 0 || h[10] != 0 || h[11] != 0) return false;
    if (r->batch == 0 || r->length > RAFT_WAL_RECORD_BYTES_MAX) return false;
    if (size - off - RAFT_WAL_HEAD_BYTES < pad8(r->length)) return false;
    r->payload = h + RAFT_WAL_HEAD_BYTES;
    uint32_t crc = k_crc32c(0, h + 4, RAFT_WAL_HEAD_BYTES - 4);
    return k_crc32c(crc, r->payload, r->length) == k_get_le32(h);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i]) return false;
    }
    return true;
}

/* After the scan stopped at off: is there a valid record before end (the last non-zero
 * byte) that proves the data at off had been synced? (See "Crash recovery" in wal.h.)
 * last_batch is the batch of the last valid record before off, 0 if none. */
static bool synced_data_follows(const uint8_t *data, uint64_t size, uint64_t off, uint64_t end,
                                uint32_t last_batch)
{
    for (uint64_t p = off + 8; p + RAFT_WAL_HEAD_BYTES <= end; p += 8) {
        struct wal_record r;
        if (!record_at(data, size, p, &r)) continue;
        if (r.batch > last_batch + 1) return true;
        if (r.batch == last_batch + 1 && (r.flags & RAFT_WAL_FLAG_BATCH_START)) return true;
    }
    return false;
}

/* Returns the offset just past the last non-zero byte at or after off. Segments are
 * preallocated with zeros, so this skips the unused space a block at a time. */
static uint64_t data_end(const uint8_t *data, uint64_t size, uint64_t off)
{
    static const uint8_t zero_block[4096];
    uint64_t end = size;
    while (end - off >= sizeof(zero_block) &&
           memcmp(data + end - sizeof(zero_block), zero_block, sizeof(zero_block)) == 0) {
        end -= sizeof(zero_block);
    }
    while (end > off && data[end - 1] == 0)
        end--;
    return end;
}

struct wal_reader {
    struct raft_wal *w;
    struct raft_wal_recovery *rec;
    size_t entries_cap;
    uint64_t floor_index; /* the caller's snapshot index: entries at or below are dropped */
    char *err;
    size_t err_len;
    const char *path;
};

static int corrupt(struct wal_reader *rd, uint64_t off, const char *what)
{
    snprintf(rd->err, rd->err_len, "WAL segment %s is corrupt at offset %" PRIu64 ": %s", rd->path,
             off, what);
    return K_ECORRUPT;
}

static void recovered_truncate(struct raft_wal_recovery *rec, uint64_t from_index)
{
    while (rec->entries_n > 0 && rec->entries[rec->entries_n - 1].index >= from_index) {
        rec->entries_n--;
        free((void *)rec->entries[rec->entries_n].data);
    }
}

static int read_entry(struct wal_reader *rd, const struct wal_record *r, uint64_t off)
{
    Raftpb__Entry *pe = raftpb__entry__unpack(NULL, r->length, r->payload);
    if (!pe) return corrupt(rd, off, "entry does not decode");
    struct raft_wal *w = rd->w;
    int rc = 0;
    if (pe->index == 0 || pe->term == 0) {
        rc = corrupt(rd, off, "entry with index or term 0");
    } else if (w->last_index != 0 && pe->index > w->last_index + 1) {
        rc = corrupt(rd, off, "entry index skips ahead");
    } else {
        struct raft_wal_recovery *rec = rd->rec;
        recovered_truncate(rec, pe->index);
        if (rec->entries_n > 0 && rec->entries[rec->entries_n - 1].term > pe->term) {
            rc = corrupt(rd, off, "entry term goes backwards");
        } else if (pe->index > rd->floor_index) {
            if (rec->entries_n == rd->entries_cap) {
                rd->entries_cap = rd->entries_cap ? 2 * rd->entries_cap : 1024;
                rec->entries = k_xrealloc(rec->entries, rd->entries_cap * sizeof(*rec->entries));
            }
            if (rec->entries_n == 0 && pe->index != rd->floor_index + 1) {
                rc = corrupt(rd, off, "entries after the snapshot are missing");
            } else {
                struct raft_entry *e = &rec->entries[rec->entries_n++];
                e->term = pe->term;
                e->index = pe->index;
                e->type = (enum raft_entry_type)pe->type;
                e->data_len = pe->data.len;
                uint8_t *copy = NULL;
                if (pe->data.len) {
                    copy = k_xmalloc(pe->data.len);
                    memcpy(copy, pe->data.data, pe->data.len);
                }
                e->data = copy;
            }
        }
        w->last_index = pe->index;
    }
    raftpb__entry__free_unpacked(pe, NULL);
    return rc;
}

static int read_record(struct wal_reader *rd, const struct wal_record *r, uint64_t off)
{
    struct raft_wal *w = rd->w;
    switch (r->type) {
    case RAFT_WAL_RECORD_SEGMENT:
        if (off != 0) return corrupt(rd, off, "segment header in the middle");
        return 0;
    case RAFT_WAL_RECORD_ENTRY:
        return read_entry(rd, r, off);
    case RAFT_WAL_RECORD_HARD_STATE: {
        Raftpb__HardState *ph = raftpb__hard_state__unpack(NULL, r->length, r->payload);
        if (!ph) return corrupt(rd, off, "hard state does not decode");
        if (ph->term < w->hard_state.term) {
            raftpb__hard_state__free_unpacked(ph, NULL);
            return corrupt(rd, off, "hard state term goes backwards");
        }
        w->hard_state.term = ph->term;
        w->hard_state.vote = ph->vote;
        w->hard_state.commit = ph->commit;
        raftpb__hard_state__free_unpacked(ph, NULL);
        return 0;
    }
    case RAFT_WAL_RECORD_SNAPSHOT: {
        Raftpb__SnapshotMetadata *pm =
                raftpb__snapshot_metadata__unpack(NULL, r->length, r->payload);
        if (!pm) return corrupt(rd, off, "snapshot marker does not decode");
        if (pm->index >= w->snapshot_index) {
            w->snapshot_index = pm->index;
            w->snapshot_term = pm->term;
        }
        /* A snapshot installed from the leader may lie ahead of the entries read so far: the
         * entries that follow continue from it. (A segment's opening marker, read before any
         * entry, may lie behind its first entry: that is no gap.) */
        if (w->last_index != 0 && pm->index > w->last_index) w->last_index = pm->index;
        raftpb__snapshot_metadata__free_unpacked(pm, NULL);
        return 0;
    }
    default:
        return corrupt(rd, off, "unknown record type");
    }
}

/* Zeroes [from, to) of the open segment and syncs it: a torn tail must not leave records
 * a later recovery could read past the new end. */
static int zero_range(int fd, uint64_t from, uint64_t to)
{
    static const uint8_t zeros[4096];
    for (uint64_t off = from; off < to;) {
        size_t n = (size_t)((to - off) < sizeof(zeros) ? (to - off) : sizeof(zeros));
        int rc = write_all_at(fd, zeros, n, off);
        if (rc < 0) return rc;
        off += n;
    }
    return fdatasync(fd) < 0 ? -errno : 0;
}

/* Reads one segment. For the last one (is_last), sets w->offset/batch for appending and
 * repairs a torn tail. *drop is set when the last segment holds no valid header at all
 * (its creation was torn): the caller deletes it. */
static int read_segment(struct wal_reader *rd, const char *path, bool is_last, bool *drop)
{
    struct raft_wal *w = rd->w;
    rd->path = path;
    *drop = false;
    int fd = open(path, is_last ? O_RDWR | O_CLOEXEC : O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(rd->err, rd->err_len, "cannot open WAL segment %s: %s", path, strerror(errno));
        return -errno;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    uint64_t size = (uint64_t)st.st_size;
    const uint8_t *data = NULL;
    if (size > 0) {
        data = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (data == MAP_FAILED) {
            int rc = -errno;
            close(fd);
            return rc;
        }
    }
    uint64_t off = 0;
    uint32_t last_batch = 0;
    int rc = 0;
    struct wal_record r;
    while (off < size && record_at(data, size, off, &r)) {
        if (off == 0 && r.type != RAFT_WAL_RECORD_SEGMENT) break;
        rc = read_record(rd, &r, off);
        if (rc < 0) goto out;
        last_batch = r.batch;
        off += RAFT_WAL_HEAD_BYTES + pad8(r.length);
    }
    bool clean_end = off >= size || (size - off >= RAFT_WAL_HEAD_BYTES &&
                                     all_zero(data + off, RAFT_WAL_HEAD_BYTES));
    uint64_t end = data_end(data, size, off);
    if (!is_last) {
        if (!clean_end || off == 0 || synced_data_follows(data, size, off, end, 0)) {
            rc = corrupt(rd, off, off == 0 ? "no segment header" : "record fails its checksum");
        }
        goto out;
    }
    if (synced_data_follows(data, size, off, end, last_batch)) {
        rc = corrupt(rd, off, "record fails its checksum and synced records follow it");
        goto out;
    }
    if (off == 0) {
        *drop = true; /* a segment whose creation was torn: nothing in it was acknowledged */
        goto out;
    }
    if (end > off) {
        rd->rec->torn_bytes = end - off;
        rc = zero_range(fd, off, end);
        if (rc < 0) goto out;
    }
    w->offset = off;
    w->batch = last_batch;
out:
    if (data) munmap((void *)data, size);
    if (rc == 0 && is_last && !*drop) {
        w->fd = fd;
    } else {
        close(fd);
    }
    return rc;
}

static int segment_name_parse(const char *name, struct wal_segment *s)
{
    unsigned long long seq;
    unsigned long long first;
    int consumed = 0;
    if (strlen(name) != 16 + 1 + 16 + 4) return -1;
    if (sscanf(name, "%16llx-%16llx.wal%n", &seq, &first, &consumed) != 2) return -1;
    if ((size_t)consumed != strlen(name)) return -1;
    s->seq = seq;
    s->first_index = first;
    return 0;
}

static int segment_cmp(const void *a, const void *b)
{
    const struct wal_segment *x = a;
    const struct wal_segment *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int list_segments(struct raft_wal *w, char *err, size_t err_len)
{
    DIR *d = opendir(w->dir);
    if (!d) {
        int rc = -errno;
        snprintf(err, err_len, "cannot read WAL directory %s: %s", w->dir, strerror(errno));
        return rc;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct wal_segment s;
        if (segment_name_parse(de->d_name, &s) == 0) segments_push(w, s.seq, s.first_index);
    }
    closedir(d);
    if (w->segments_n > 1) qsort(w->segments, w->segments_n, sizeof(*w->segments), segment_cmp);
    for (size_t i = 1; i < w->segments_n; i++) {
        if (w->segments[i].seq != w->segments[i - 1].seq + 1) {
            snprintf(err, err_len,
                     "WAL directory %s is missing segment %016" PRIx64 " (found %016" PRIx64
                     " after it)",
                     w->dir, w->segments[i - 1].seq + 1, w->segments[i].seq);
            return K_ECORRUPT;
        }
    }
    return 0;
}

static int read_all_segments(struct raft_wal *w, struct wal_reader *rd)
{
    for (size_t i = 0; i < w->segments_n; i++) {
        char path[4096];
        segment_path(w, &w->segments[i], path, sizeof(path));
        bool is_last = i + 1 == w->segments_n;
        bool drop = false;
        int rc = read_segment(rd, path, is_last, &drop);
        if (rc < 0) return rc;
        if (drop) {
            if (unlink(path) < 0) return -errno;
            w->segments_n--;
            rc = k_fsync_dir(w->dir);
            if (rc < 0) return rc;
        }
    }
    return 0;
}

int raft_wal_open(const char *dir, const struct raft_wal_options *opts, uint64_t snapshot_index,
                  struct raft_wal **out, struct raft_wal_recovery *rec, char *err, size_t err_len)
{
    memset(rec, 0, sizeof(*rec));
    *out = NULL;
    err[0] = '\0';
    int rc = k_mkdir_p(dir, 0700);
    if (rc < 0) {
        snprintf(err, err_len, "cannot create WAL directory %s: %s", dir, k_strerror(rc));
        return rc;
    }
    struct raft_wal *w = k_xcalloc(1, sizeof(*w));
    w->dir = k_xstrdup(dir);
    w->fd = -1;
    w->segment_bytes =
            opts && opts->segment_bytes ? opts->segment_bytes : RAFT_WAL_SEGMENT_BYTES_DEFAULT;
    rc = list_segments(w, err, err_len);
    if (rc < 0) goto fail;
    struct wal_reader rd = {
        .w = w, .rec = rec, .floor_index = snapshot_index, .err = err, .err_len = err_len
    };
    rc = read_all_segments(w, &rd);
    if (rc < 0) goto fail;
    if (w->snapshot_index > snapshot_index) {
        snprintf(err, err_len,
                 "WAL in %s needs a snapshot at index %" PRIu64 " but the newest snapshot file "
                 "is at %" PRIu64,
                 dir, w->snapshot_index, snapshot_index);
        rc = K_ECORRUPT;
        goto fail;
    }
    if (w->last_index < snapshot_index) w->last_index = snapshot_index;
    if (w->fd < 0) {
        /* A new WAL, or the last segment's creation was torn and it was removed. */
        uint64_t seq = w->segments_n ? w->segments[w->segments_n - 1].seq + 1 : 1;
        rc = segment_create(w, seq, w->last_index + 1);
        if (rc < 0) {
            snprintf(err, err_len, "cannot create a WAL segment in %s: %s", dir, k_strerror(rc));
            goto fail;
        }
    }
    rec->snapshot_index = w->snapshot_index;
    rec->snapshot_term = w->snapshot_term;
    rec->hard_state = w->hard_state;
    w->stats.segments = w->segments_n;
    w->stats.last_index = w->last_index;
    *out = w;
    return 0;
fail:
    raft_wal_recovery_free(rec);
    raft_wal_close(w);
    return rc;
}

void raft_wal_recovery_free(struct raft_wal_recovery *rec)
{
    recovered_truncate(rec, 0);
    free(rec->entries);
    memset(rec, 0, sizeof(*rec));
}

/* Starts a new segment when the batch would overflow the open one. */
static int maybe_roll(struct raft_wal *w, size_t batch_bytes, uint64_t next_index)
{
    if (w->offset + batch_bytes <= w->segment_bytes) return 0;
    if (w->offset <= 512) return 0; /* the segment holds only its opening batch */
    uint64_t seq = w->segments[w->segments_n - 1].seq + 1;
    return segment_create(w, seq, next_index);
}

/* An upper bound of the bytes a batch takes, to choose its segment before building it:
 * an Entry encodes in at most its data plus 4 tags and 4 varints of 10 bytes. */
static size_t batch_bytes_bound(const struct raft_entry *entries, size_t entries_n, bool hs)
{
    size_t bytes = hs ? RAFT_WAL_HEAD_BYTES + 40 : 0;
    for (size_t i = 0; i < entries_n; i++) {
        bytes += RAFT_WAL_HEAD_BYTES + pad8(entries[i].data_len + 48);
    }
    return bytes;
}

/* A hard state that differs from the last written one only in its commit index need not be
 * durable at once (etcd's MustSync): a commit index lost in a crash is learned again from
 * the leader, and applied entries were committed by a quorum whatever this file says. */
static bool only_commit_changed(const struct raft_wal *w, const struct raft_hard_state *hs)
{
    return hs->term == w->hard_state.term && hs->vote == w->hard_state.vote;
}

/* Writes and syncs one batch of entries and/or a hard state. */
static int write_batch(struct raft_wal *w, const struct raft_entry *entries, size_t entries_n,
                       const struct raft_hard_state *hs)
{
    k_assert(w->buf_len == 0);
    uint64_t next = entries_n ? entries[0].index : w->last_index + 1;
    int rc = maybe_roll(w, batch_bytes_bound(entries, entries_n, hs != NULL), next);
    if (rc < 0) {
        w->broken = -EIO;
        return rc;
    }
    for (size_t i = 0; i < entries_n; i++) {
        k_assert(entries[i].index >= 1 && entries[i].term >= 1);
        k_assert(i == 0 || entries[i].index == entries[i - 1].index + 1);
        buf_entry(w, &entries[i], i == 0);
    }
    if (hs) buf_hard_state(w, hs, entries_n == 0);
    rc = flush_batch(w);
    if (rc < 0) return rc;
    if (entries_n) w->last_index = entries[entries_n - 1].index;
    if (hs) w->hard_state = *hs;
    w->has_pending_hs = false;
    w->stats.last_index = w->last_index;
    return 0;
}

int raft_wal_write(struct raft_wal *w, const struct raft_entry *entries, size_t entries_n,
                   const struct raft_hard_state *hs)
{
    if (w->broken) return w->broken;
    if (entries_n == 0 && !hs) return 0;
    if (entries_n == 0 && only_commit_changed(w, hs)) {
        w->pending_hs = *hs;
        w->has_pending_hs = true;
        return 0;
    }
    if (!hs && w->has_pending_hs) hs = &w->pending_hs;
    return write_batch(w, entries, entries_n, hs);
}

int raft_wal_mark_snapshot(struct raft_wal *w, uint64_t index, uint64_t term)
{
    if (w->broken) return w->broken;
    k_assert(w->buf_len == 0);
    buf_snapshot(w, index, term, true);
    int rc = flush_batch(w);
    if (rc < 0) return rc;
    if (index > w->snapshot_index) {
        w->snapshot_index = index;
        w->snapshot_term = term;
    }
    return 0;
}

int raft_wal_release(struct raft_wal *w, uint64_t index)
{
    if (w->broken) return w->broken;
    size_t drop = 0;
    for (size_t i = 0; i + 1 < w->segments_n; i++) {
        if (w->segments[i + 1].first_index <= index + 1) drop = i + 1;
    }
    for (size_t i = 0; i < drop; i++) {
        char path[4096];
        segment_path(w, &w->segments[i], path, sizeof(path));
        if (unlink(path) < 0 && errno != ENOENT) return -errno;
    }
    if (drop == 0) return 0;
    memmove(w->segments, w->segments + drop, (w->segments_n - drop) * sizeof(*w->segments));
    w->segments_n -= drop;
    w->stats.segments = w->segments_n;
    int rc = k_fsync_dir(w->dir);
    return rc < 0 ? rc : (int)drop;
}

int raft_wal_close(struct raft_wal *w)
{
    if (!w) return 0;
    int rc = 0;
    if (w->has_pending_hs && !w->broken) {
        struct raft_hard_state hs = w->pending_hs; /* a clean stop keeps its commit index */
        rc = write_batch(w, NULL, 0, &hs);
    }
    if (w->fd >= 0) {
        if (!w->broken && fdatasync(w->fd) < 0) rc = -errno;
        close(w->fd);
    }
    free(w->segments);
    free(w->buf);
    free(w->dir);
    free(w);
    return rc;
}

void raft_wal_stats(const struct raft_wal *w, struct raft_wal_stats *out)
{
    *out = w->stats;
}
