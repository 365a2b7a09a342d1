/* Per-request arena: one allocator for everything a request needs (copied head, decoded path,
 * form fields, response scratch), freed in one call once the response is written, as h2o's
 * request pool does (include/h2o/memory.h). The byte budget makes it the request's memory
 * bound too: running out is a clean error (NULL) the caller answers with a 4xx, never a crash.
 * Not thread-safe; lives on the loop thread with its request. */
#ifndef KETCH_SERVER_ARENA_H
#define KETCH_SERVER_ARENA_H

#include <stddef.h>

#include "base/assert.h"

/* Default size of a chunk; larger allocations get a chunk of their own. */
enum { SRV_ARENA_CHUNK_BYTES = 4096 };

struct srv_arena_chunk;

/* Embeddable; fields are private to arena.c. */
struct srv_arena {
    struct srv_arena_chunk *chunks; /* newest first; the first one is being carved */
    size_t used_bytes;              /* bytes taken from malloc, chunk headers included */
    size_t budget_bytes;            /* used_bytes never exceeds this */
};

/* Sets up an empty arena that may take at most budget_bytes from malloc in total. Allocates
 * nothing until the first srv_arena_alloc. */
void srv_arena_init(struct srv_arena *a, size_t budget_bytes);

/* Frees every chunk; every pointer the arena handed out becomes invalid. The arena may be
 * reused after srv_arena_init. Safe on an initialised, never-used arena. */
void srv_arena_deinit(struct srv_arena *a);

/* Raises the budget by extra_bytes (e.g. once a request body of known size has arrived and
 * must be decoded). Saturates instead of overflowing. */
void srv_arena_budget_add(struct srv_arena *a, size_t extra_bytes);

/* Returns size bytes aligned for any type, owned by the arena until srv_arena_deinit, or NULL
 * when the budget would be exceeded or malloc fails. size 0 returns a valid unique pointer. */
K_MUST_USE void *srv_arena_alloc(struct srv_arena *a, size_t size);

/* Returns a NUL-terminated copy of the len bytes at s (which may hold NULs), or NULL as
 * srv_arena_alloc does. */
K_MUST_USE char *srv_arena_strndup(struct srv_arena *a, const char *s, size_t len);

/* Bytes still available under the budget. */
size_t srv_arena_remaining(const struct srv_arena *a);

#endif
