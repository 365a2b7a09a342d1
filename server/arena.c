/* The per-request arena of arena.h: a list of malloc'd chunks carved from the front, counted
 * against a byte budget that includes the chunk headers, so the budget bounds real memory. */
#include "arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

struct srv_arena_chunk {
    struct srv_arena_chunk *next;
    size_t size_bytes; /* usable bytes after the header */
    size_t used_bytes; /* carved so far; <= size_bytes */
    alignas(max_align_t) unsigned char data[];
};

static const size_t arena_align = alignof(max_align_t);

void srv_arena_init(struct srv_arena *a, size_t budget_bytes)
{
    a->chunks = NULL;
    a->used_bytes = 0;
    a->budget_bytes = budget_bytes;
}

void srv_arena_deinit(struct srv_arena *a)
{
    struct srv_arena_chunk *c = a->chunks;
    while (c != NULL) {
        struct srv_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->chunks = NULL;
    a->used_bytes = 0;
}

void srv_arena_budget_add(struct srv_arena *a, size_t extra_bytes)
{
    if (a->budget_bytes > SIZE_MAX - extra_bytes) {
        a->budget_bytes = SIZE_MAX;
    } else {
        a->budget_bytes += extra_bytes;
    }
}

size_t srv_arena_remaining(const struct srv_arena *a)
{
    k_assert(a->used_bytes <= a->budget_bytes);
    return a->budget_bytes - a->used_bytes;
}

static struct srv_arena_chunk *arena_chunk_new(struct srv_arena *a, size_t size_bytes)
{
    size_t total = sizeof(struct srv_arena_chunk) + size_bytes;
    if (total < size_bytes || total > srv_arena_remaining(a)) return NULL;
    struct srv_arena_chunk *c = k_trymalloc(total);
    if (c == NULL) return NULL;
    c->size_bytes = size_bytes;
    c->used_bytes = 0;
    a->used_bytes += total;
    return c;
}

void *srv_arena_alloc(struct srv_arena *a, size_t size)
{
    if (size > SIZE_MAX - arena_align) return NULL;
    size_t rounded = (size + arena_align - 1) & ~(arena_align - 1);
    if (rounded == 0) rounded = arena_align;
    struct srv_arena_chunk *c = a->chunks;
    if (c != NULL && c->size_bytes - c->used_bytes >= rounded) {
        void *p = c->data + c->used_bytes;
        c->used_bytes += rounded;
        return p;
    }
    if (rounded > SRV_ARENA_CHUNK_BYTES / 4) {
        /* Big: a chunk of its own, linked behind the current one so its free space stays. */
        struct srv_arena_chunk *big = arena_chunk_new(a, rounded);
        if (big == NULL) return NULL;
        big->used_bytes = rounded;
        if (c == NULL) {
            big->next = NULL;
            a->chunks = big;
        } else {
            big->next = c->next;
            c->next = big;
        }
        return big->data;
    }
    /* A full chunk, or what the budget still allows when that is less (a small budget must
     * not fail its first allocation just because a whole chunk does not fit). */
    size_t chunk = SRV_ARENA_CHUNK_BYTES;
    size_t room = srv_arena_remaining(a);
    if (room < sizeof(struct srv_arena_chunk) + chunk) {
        chunk = room > sizeof(struct srv_arena_chunk) ? room - sizeof(struct srv_arena_chunk) : 0;
        chunk &= ~(arena_align - 1);
        if (chunk < rounded) return NULL;
    }
    struct srv_arena_chunk *fresh = arena_chunk_new(a, chunk);
    if (fresh == NULL) return NULL;
    fresh->next = c;
    a->chunks = fresh;
    fresh->used_bytes = rounded;
    k_assert(fresh->used_bytes <= fresh->size_bytes);
    return fresh->data;
}

char *srv_arena_strndup(struct srv_arena *a, const char *s, size_t len)
{
    if (len == SIZE_MAX) return NULL;
    char *p = srv_arena_alloc(a, len + 1);
    if (p == NULL) return NULL;
    if (len > 0) memcpy(p, s, len);
    p[len] = '\0';
    return p;
}
