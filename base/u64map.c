/* Open addressing with backward-shift deletion; see base/u64map.h. */
#include "u64map.h"

#include <stdbool.h>
#include <stdlib.h>

#include "alloc.h"
#include "assert.h"
#include "prng.h"

void k_u64map_init(struct k_u64map *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
}

void k_u64map_deinit(struct k_u64map *m)
{
    free(m->slots);
    k_u64map_init(m);
}

static size_t home(const struct k_u64map *m, uint64_t key)
{
    return (size_t)k_prng_mix(key) & (m->cap - 1);
}

static void grow(struct k_u64map *m)
{
    struct k_u64map_slot *old = m->slots;
    size_t old_cap = m->cap;
    m->cap = old_cap ? 2 * old_cap : 16;
    m->slots = k_xcalloc(m->cap, sizeof(*m->slots));
    m->count = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key) k_u64map_put(m, old[i].key, old[i].value);
    }
    free(old);
}

void k_u64map_put(struct k_u64map *m, uint64_t key, void *value)
{
    k_assert(key != 0);
    if ((m->count + 1) * 4 > m->cap * 3) grow(m); /* load factor <= 3/4 */
    for (size_t i = home(m, key);; i = (i + 1) & (m->cap - 1)) {
        if (m->slots[i].key == key) {
            m->slots[i].value = value;
            return;
        }
        if (m->slots[i].key == 0) {
            m->slots[i].key = key;
            m->slots[i].value = value;
            m->count++;
            return;
        }
    }
}

void *k_u64map_get(const struct k_u64map *m, uint64_t key)
{
    if (m->cap == 0 || key == 0) return NULL;
    for (size_t i = home(m, key);; i = (i + 1) & (m->cap - 1)) {
        if (m->slots[i].key == key) return m->slots[i].value;
        if (m->slots[i].key == 0) return NULL;
    }
}

void *k_u64map_remove(struct k_u64map *m, uint64_t key)
{
    if (m->cap == 0 || key == 0) return NULL;
    size_t mask = m->cap - 1;
    size_t i = home(m, key);
    while (m->slots[i].key != key) {
        if (m->slots[i].key == 0) return NULL;
        i = (i + 1) & mask;
    }
    void *value = m->slots[i].value;
    /* Shift later members of the probe run back so no lookup hits a false hole. */
    for (size_t j = (i + 1) & mask; m->slots[j].key != 0; j = (j + 1) & mask) {
        size_t h = home(m, m->slots[j].key);
        /* j's entry may move to i if its home is not cyclically in (i, j]. */
        bool stays = (i <= j) ? (i < h && h <= j) : (i < h || h <= j);
        if (!stays) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = 0;
    m->slots[i].value = NULL;
    m->count--;
    return value;
}
