/* A bump allocator whose memory is freed all at once: an event's nodes, keys and values share
 * one lifetime (STYLE.md §2, as h2o's request pool). Blocks come from k_xmalloc, so callers
 * bound the sizes they ask for (values and keys are checked against the store's limits). */
#ifndef KETCH_KV_ARENA_H
#define KETCH_KV_ARENA_H

#include <stddef.h>

struct kv_arena_block;

struct kv_arena {
    struct kv_arena_block *head; /* newest block first; NULL when nothing was allocated */
    size_t used;                 /* bytes used in head */
    size_t cap;                  /* usable bytes in head */
    size_t total_bytes;          /* bytes of every block: what the arena holds in memory */
};

/* An empty arena; allocates nothing until the first kv_arena_alloc. */
void kv_arena_init(struct kv_arena *a);

/* Frees every block; the arena is empty again afterwards. */
void kv_arena_deinit(struct kv_arena *a);

/* Returns size bytes aligned for any type, owned by the arena; never NULL (aborts when memory
 * cannot be had). size 0 returns a valid unique pointer. */
void *kv_arena_alloc(struct kv_arena *a, size_t size);

/* Copies len bytes of src into the arena and NUL-terminates the copy. */
char *kv_arena_memdup(struct kv_arena *a, const void *src, size_t len);

#endif
