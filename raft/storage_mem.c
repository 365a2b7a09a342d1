/* The in-memory log (see storage_mem.h). Layout: chunks of CHUNK_ENTRIES entry slots; the
 * slot of index i is chunk (i - base) / CHUNK_ENTRIES. Each chunk keeps the bytes of its
 * entries in its own list of blocks, freed with the chunk when compaction passes it; bytes of
 * overwritten entries wait there until then. */
#include "raft/storage_mem.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"

enum { CHUNK_ENTRIES = 1024, BLOCK_BYTES = 64 * 1024, SPARE_CHUNKS_MAX = 16 };

struct block {
    struct block *next;
    size_t used_bytes;
    size_t size_bytes;
    uint8_t bytes[];
};

struct chunk {
    struct raft_entry ents[CHUNK_ENTRIES];
    struct block *blocks; /* in allocation order */
    struct block *cur;    /* being filled; those after it are empty */
};

struct raft_storage_mem {
    struct raft_storage view;
    struct raft_hard_state hs;
    struct raft_snapshot_meta snap; /* the application's newest snapshot */
    uint64_t dummy_index;           /* compaction point: entries start after it */
    uint64_t dummy_term;
    uint64_t last_index;
    struct chunk **chunks;
    size_t chunks_n;
    size_t chunks_cap;
    uint64_t base; /* index of chunks[0]->ents[0] */
    /* Compacted chunks kept for reuse, each with its byte blocks emptied, so a log that is
     * compacted regularly stops allocating. */
    struct chunk *spare[SPARE_CHUNKS_MAX];
    size_t spare_n;
    uint64_t allocations;
};

static void chunk_free(struct chunk *c)
{
    struct block *b = c->blocks;
    while (b) {
        struct block *next = b->next;
        free(b);
        b = next;
    }
    free(c);
}

static const uint8_t *chunk_copy(struct raft_storage_mem *s, struct chunk *c, const uint8_t *p,
                                 size_t len)
{
    if (len == 0) return NULL;
    struct block *b = c->cur;
    /* Blocks after cur are empty (a recycled chunk's): move on before allocating. */
    while (b && b->size_bytes - b->used_bytes < len && b->next)
        b = b->next;
    if (!b || b->size_bytes - b->used_bytes < len) {
        size_t size = len > BLOCK_BYTES ? len : BLOCK_BYTES;
        struct block *nb = k_xmalloc(sizeof(*nb) + size);
        s->allocations++;
        nb->next = NULL;
        nb->used_bytes = 0;
        nb->size_bytes = size;
        if (b) {
            b->next = nb;
        } else {
            c->blocks = nb;
        }
        b = nb;
    }
    c->cur = b;
    uint8_t *dst = b->bytes + b->used_bytes;
    memcpy(dst, p, len);
    b->used_bytes += len;
    return dst;
}

static struct raft_entry *slot(const struct raft_storage_mem *s, uint64_t i, struct chunk **c)
{
    uint64_t off = i - s->base;
    size_t ci = (size_t)(off / CHUNK_ENTRIES);
    k_assert(ci < s->chunks_n);
    if (c) *c = s->chunks[ci];
    return &s->chunks[ci]->ents[off % CHUNK_ENTRIES];
}

/* Frees c, or keeps it (bytes emptied) for the next chunk the log needs. */
static void chunk_retire(struct raft_storage_mem *s, struct chunk *c)
{
    if (s->spare_n == SPARE_CHUNKS_MAX) {
        chunk_free(c);
        return;
    }
    for (struct block *b = c->blocks; b; b = b->next)
        b->used_bytes = 0;
    c->cur = c->blocks;
    s->spare[s->spare_n++] = c;
}

static void free_chunks(struct raft_storage_mem *s)
{
    for (size_t i = 0; i < s->chunks_n; i++)
        chunk_retire(s, s->chunks[i]);
    s->chunks_n = 0;
}

/* ---- the raft_storage view ---- */

static int mem_initial_state(void *data, struct raft_hard_state *hs, struct raft_conf_state *cs)
{
    struct raft_storage_mem *s = data;
    *hs = s->hs;
    *cs = s->snap.conf;
    return 0;
}

static int mem_entries(void *data, uint64_t lo, uint64_t hi, const struct raft_entry **out,
                       size_t *out_n)
{
    struct raft_storage_mem *s = data;
    k_assert(lo < hi);
    if (lo <= s->dummy_index) return K_ECOMPACTED;
    if (hi > s->last_index + 1) return K_EUNAVAILABLE;
    uint64_t room = CHUNK_ENTRIES - (lo - s->base) % CHUNK_ENTRIES;
    *out = slot(s, lo, NULL);
    *out_n = (size_t)(hi - lo < room ? hi - lo : room);
    return 0;
}

static int mem_term(void *data, uint64_t index, uint64_t *term)
{
    struct raft_storage_mem *s = data;
    if (index < s->dummy_index) return K_ECOMPACTED;
    if (index > s->last_index) return K_EUNAVAILABLE;
    if (index == s->dummy_index) {
        *term = s->dummy_term;
        return 0;
    }
    *term = slot(s, index, NULL)->term;
    return 0;
}

static uint64_t mem_first_index(void *data)
{
    const struct raft_storage_mem *s = data;
    return s->dummy_index + 1;
}

static uint64_t mem_last_index(void *data)
{
    const struct raft_storage_mem *s = data;
    return s->last_index;
}

static int mem_snapshot(void *data, struct raft_snapshot_meta *meta)
{
    const struct raft_storage_mem *s = data;
    if (s->snap.index == 0) return K_EUNAVAILABLE;
    *meta = s->snap;
    return 0;
}

/* ---- driver calls ---- */

struct raft_storage_mem *raft_storage_mem_new(void)
{
    struct raft_storage_mem *s = k_xcalloc(1, sizeof(*s));
    s->allocations = 1;
    s->view.data = s;
    s->view.initial_state = mem_initial_state;
    s->view.entries = mem_entries;
    s->view.term = mem_term;
    s->view.first_index = mem_first_index;
    s->view.last_index = mem_last_index;
    s->view.snapshot = mem_snapshot;
    return s;
}

void raft_storage_mem_free(struct raft_storage_mem *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->chunks_n; i++)
        chunk_free(s->chunks[i]);
    for (size_t i = 0; i < s->spare_n; i++)
        chunk_free(s->spare[i]);
    free(s->chunks);
    free(s);
}

const struct raft_storage *raft_storage_mem_storage(struct raft_storage_mem *s)
{
    return &s->view;
}

int raft_storage_mem_bootstrap(struct raft_storage_mem *s, const struct raft_conf_state *cs)
{
    if (s->last_index != 0 || s->snap.index != 0 || s->hs.term != 0) return K_ECONFIG;
    s->snap.index = 1;
    s->snap.term = 1;
    s->snap.conf = *cs;
    s->dummy_index = 1;
    s->dummy_term = 1;
    s->last_index = 1;
    s->hs.term = 1;
    s->hs.vote = 0;
    s->hs.commit = 1;
    return 0;
}

void raft_storage_mem_set_hard_state(struct raft_storage_mem *s, const struct raft_hard_state *hs)
{
    s->hs = *hs;
}

void raft_storage_mem_hard_state(const struct raft_storage_mem *s, struct raft_hard_state *hs)
{
    *hs = s->hs;
}

static void ensure_chunk(struct raft_storage_mem *s, uint64_t index)
{
    if (s->chunks_n == 0) s->base = index;
    while (index >= s->base + (uint64_t)s->chunks_n * CHUNK_ENTRIES) {
        if (s->chunks_n == s->chunks_cap) {
            s->chunks_cap = s->chunks_cap ? s->chunks_cap * 2 : 8;
            s->chunks = k_xrealloc(s->chunks, s->chunks_cap * sizeof(*s->chunks));
            s->allocations++;
        }
        struct chunk *c;
        if (s->spare_n > 0) {
            c = s->spare[--s->spare_n];
        } else {
            c = k_xmalloc(sizeof(*c));
            s->allocations++;
            c->blocks = NULL;
            c->cur = NULL;
        }
        s->chunks[s->chunks_n++] = c;
    }
}

int raft_storage_mem_append(struct raft_storage_mem *s, const struct raft_entry *ents, size_t n)
{
    size_t skip = 0;
    while (skip < n && ents[skip].index <= s->dummy_index)
        skip++;
    if (skip == n) return 0;
    uint64_t first = ents[skip].index;
    if (first > s->last_index + 1) return K_EUNAVAILABLE;
    s->last_index = first - 1; /* truncate what follows */
    for (size_t i = skip; i < n; i++) {
        k_assert(ents[i].index == s->last_index + 1);
        ensure_chunk(s, ents[i].index);
        struct chunk *c = NULL;
        struct raft_entry *e = slot(s, ents[i].index, &c);
        *e = ents[i];
        e->data = chunk_copy(s, c, ents[i].data, ents[i].data_len);
        s->last_index++;
    }
    return 0;
}

int raft_storage_mem_apply_snapshot(struct raft_storage_mem *s,
                                    const struct raft_snapshot_meta *meta)
{
    if (meta->index <= s->snap.index) return K_ECOMPACTED;
    free_chunks(s);
    s->snap = *meta;
    s->dummy_index = meta->index;
    s->dummy_term = meta->term;
    s->last_index = meta->index;
    return 0;
}

int raft_storage_mem_create_snapshot(struct raft_storage_mem *s, uint64_t index,
                                     const struct raft_conf_state *cs)
{
    if (index <= s->snap.index) return K_ECOMPACTED;
    if (index > s->last_index) return K_EUNAVAILABLE;
    uint64_t term = 0;
    int rc = mem_term(s, index, &term);
    if (rc < 0) return rc;
    s->snap.index = index;
    s->snap.term = term;
    s->snap.conf = *cs;
    return 0;
}

int raft_storage_mem_compact(struct raft_storage_mem *s, uint64_t index)
{
    if (index <= s->dummy_index) return K_ECOMPACTED;
    if (index > s->snap.index || index > s->last_index) return K_EUNAVAILABLE;
    uint64_t term = 0;
    int rc = mem_term(s, index, &term);
    if (rc < 0) return rc;
    s->dummy_index = index;
    s->dummy_term = term;
    /* Free whole chunks that now hold only compacted slots. */
    size_t drop = 0;
    while (drop < s->chunks_n && s->base + (uint64_t)(drop + 1) * CHUNK_ENTRIES - 1 <= index)
        drop++;
    for (size_t i = 0; i < drop; i++)
        chunk_retire(s, s->chunks[i]);
    memmove(s->chunks, s->chunks + drop, (s->chunks_n - drop) * sizeof(*s->chunks));
    s->chunks_n -= drop;
    s->base += (uint64_t)drop * CHUNK_ENTRIES;
    return 0;
}

void raft_storage_mem_snapshot_meta(const struct raft_storage_mem *s,
                                    struct raft_snapshot_meta *meta)
{
    *meta = s->snap;
}

uint64_t raft_storage_mem_first_index(const struct raft_storage_mem *s)
{
    return s->dummy_index + 1;
}

uint64_t raft_storage_mem_last_index(const struct raft_storage_mem *s)
{
    return s->last_index;
}

uint64_t raft_storage_mem_allocations(const struct raft_storage_mem *s)
{
    return s->allocations;
}
