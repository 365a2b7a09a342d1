/* A hash map from nonzero uint64_t keys to pointers: open addressing with linear probing
 * and backward-shift deletion (no tombstones), so lookups stay short under churn. Used for
 * requests waiting on a raft commit and for peers by id. Not thread-safe. */
#ifndef KETCH_BASE_U64MAP_H
#define KETCH_BASE_U64MAP_H

#include <stddef.h>
#include <stdint.h>

struct k_u64map_slot {
    uint64_t key; /* 0 = empty */
    void *value;
};

struct k_u64map {
    struct k_u64map_slot *slots;
    size_t cap; /* power of two, or 0 before the first insert */
    size_t count;
};

void k_u64map_init(struct k_u64map *m);
void k_u64map_deinit(struct k_u64map *m); /* frees the table, not the values */

/* Inserts or replaces key (nonzero) -> value. */
void k_u64map_put(struct k_u64map *m, uint64_t key, void *value);

/* Returns the value for key, or NULL. */
void *k_u64map_get(const struct k_u64map *m, uint64_t key);

/* Removes key; returns its value, or NULL if absent. */
void *k_u64map_remove(struct k_u64map *m, uint64_t key);

#endif
