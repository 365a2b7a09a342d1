/* xoshiro256** by Blackman and Vigna (prng.di.unimi.it), seeded with splitmix64. */
#include "prng.h"

#include "assert.h"

uint64_t k_prng_mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void k_prng_init(struct k_prng *p, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        x = k_prng_mix(x);
        p->s[i] = x;
    }
    if ((p->s[0] | p->s[1] | p->s[2] | p->s[3]) == 0) p->s[0] = 1;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t k_prng_next(struct k_prng *p)
{
    uint64_t *s = p->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t k_prng_below(struct k_prng *p, uint64_t bound)
{
    k_assert(bound > 0);
    /* Reject the top partial range so every value is equally likely. */
    uint64_t limit = UINT64_MAX - (UINT64_MAX % bound);
    for (;;) {
        uint64_t v = k_prng_next(p);
        if (v < limit) return v % bound;
    }
}

bool k_prng_chance(struct k_prng *p, uint32_t per_million)
{
    return k_prng_below(p, 1000000) < per_million;
}
