/* A small seeded PRNG (xoshiro256**, seeded through splitmix64): the only source of
 * randomness raft/ and the simulator may use, so one seed reproduces a whole run
 * (STYLE.md §5). Not for cryptography. The state lives in the caller's struct. */
#ifndef KETCH_BASE_PRNG_H
#define KETCH_BASE_PRNG_H

#include <stdbool.h>
#include <stdint.h>

struct k_prng {
    uint64_t s[4]; /* never all zero */
};

/* Seeds p from one 64-bit value; equal seeds give equal sequences on every machine. */
void k_prng_init(struct k_prng *p, uint64_t seed);

/* Returns the next 64 uniformly distributed bits. */
uint64_t k_prng_next(struct k_prng *p);

/* Returns a uniform value in [0, bound); bound must be > 0. Unbiased (rejection). */
uint64_t k_prng_below(struct k_prng *p, uint64_t bound);

/* Returns true with probability per_million / 1,000,000. */
bool k_prng_chance(struct k_prng *p, uint32_t per_million);

/* Returns splitmix64 of x: a quick way to derive independent seeds from one seed. */
uint64_t k_prng_mix(uint64_t x);

#endif
