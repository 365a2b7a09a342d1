/* A bump allocator for entry bytes that live until the next raft_advance(): the unstable
 * log's and forwarded proposals'. Reset keeps the newest block, so once it has grown to a
 * batch's size the steady state allocates nothing (STYLE.md §2, no per-entry allocation). */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "raft/raft_int.h"

enum { ARENA_BLOCK_BYTES = 64 * 1024 };

void raft__arena_init(struct raft__arena *a, uint64_t *allocations)
{
    a->head = NULL;
    a->allocations = allocations;
}

void raft__arena_deinit(struct raft__arena *a)
{
    struct raft__arena_block *b = a->head;
    while (b) {
        struct raft__arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

const uint8_t *raft__arena_copy(struct raft__arena *a, const void *p, size_t len)
{
    if (len == 0) return NULL;
    struct raft__arena_block *b = a->head;
    if (!b || b->size_bytes - b->used_bytes < len) {
        /* Grow geometrically so a reset keeps a block big enough for a whole batch. */
        size_t size = ARENA_BLOCK_BYTES;
        if (b && b->size_bytes * 2 > size) size = b->size_bytes * 2;
        if (len > size) size = len;
        struct raft__arena_block *nb = k_xmalloc(sizeof(*nb) + size);
        (*a->allocations)++;
        nb->next = b;
        nb->used_bytes = 0;
        nb->size_bytes = size;
        a->head = nb;
        b = nb;
    }
    uint8_t *dst = b->bytes + b->used_bytes;
    b->used_bytes += (len + 7) & ~(size_t)7;
    if (b->used_bytes > b->size_bytes) b->used_bytes = b->size_bytes;
    memcpy(dst, p, len);
    return dst;
}

void raft__arena_reset(struct raft__arena *a)
{
    struct raft__arena_block *b = a->head;
    if (!b) return;
    struct raft__arena_block *older = b->next;
    while (older) {
        struct raft__arena_block *next = older->next;
        free(older);
        older = next;
    }
    b->next = NULL;
    b->used_bytes = 0;
}
