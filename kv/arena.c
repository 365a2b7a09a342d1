/* The arena of kv/arena.h: a list of blocks, doubling from 1 KiB up to 1 MiB; requests larger
 * than a quarter block get a block of their own so small ones do not waste its tail. */
#include "kv/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

struct kv_arena_block {
    struct kv_arena_block *next;
    max_align_t data[]; /* usable bytes follow */
};

static const size_t ARENA_BLOCK_BYTES_MIN = 1024;
static const size_t ARENA_BLOCK_BYTES_MAX = 1 << 20;

void kv_arena_init(struct kv_arena *a)
{
    a->head = NULL;
    a->used = 0;
    a->cap = 0;
    a->total_bytes = 0;
}

void kv_arena_deinit(struct kv_arena *a)
{
    struct kv_arena_block *b = a->head;
    while (b != NULL) {
        struct kv_arena_block *next = b->next;
        free(b);
        b = next;
    }
    kv_arena_init(a);
}

static struct kv_arena_block *arena_block_new(struct kv_arena *a, size_t bytes)
{
    struct kv_arena_block *b = k_xmalloc(sizeof(*b) + bytes);
    a->total_bytes += sizeof(*b) + bytes;
    b->next = NULL;
    return b;
}

void *kv_arena_alloc(struct kv_arena *a, size_t size)
{
    const size_t align = _Alignof(max_align_t);
    size_t need = (size + align - 1) & ~(align - 1);
    if (need == 0) need = align;
    if (a->head != NULL && a->cap - a->used >= need) {
        void *p = (char *)a->head->data + a->used;
        a->used += need;
        return p;
    }
    size_t next_cap = a->cap == 0 ? ARENA_BLOCK_BYTES_MIN : a->cap * 2;
    if (next_cap > ARENA_BLOCK_BYTES_MAX) next_cap = ARENA_BLOCK_BYTES_MAX;
    if (need > next_cap / 4) {
        /* A big request gets its own block, linked behind head so head keeps its free tail. */
        struct kv_arena_block *big = arena_block_new(a, need);
        if (a->head == NULL) {
            a->head = big;
            a->used = need;
            a->cap = need;
        } else {
            big->next = a->head->next;
            a->head->next = big;
        }
        return big->data;
    }
    struct kv_arena_block *b = arena_block_new(a, next_cap);
    b->next = a->head;
    a->head = b;
    a->cap = next_cap;
    a->used = need;
    k_assert(a->used <= a->cap);
    return b->data;
}

char *kv_arena_memdup(struct kv_arena *a, const void *src, size_t len)
{
    char *p = kv_arena_alloc(a, len + 1);
    if (len > 0) memcpy(p, src, len);
    p[len] = '\0';
    return p;
}
