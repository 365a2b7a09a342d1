/* Which key a request goes to: uniform, sequential, or zipf-ish (a few hot keys), over a
 * key space of `keys` keys numbered [0, keys). Deterministic for a given seed. */
#ifndef KETCH_BENCH_KEYGEN_H
#define KETCH_BENCH_KEYGEN_H

#include <stdint.h>

#include "base/assert.h"
#include "base/prng.h"

enum bench_key_dist {
    BENCH_KEYS_UNIFORM,
    BENCH_KEYS_SEQUENTIAL, /* 0, 1, 2, ... wrapping; shared by every connection */
    BENCH_KEYS_ZIPF,       /* Zipf with theta 0.99: key 0 hottest (Gray et al., SIGMOD 1994) */
};

struct bench_keygen {
    enum bench_key_dist dist;
    uint64_t keys; /* key space size, >= 1 */
    uint64_t next; /* sequential: next key */
    /* zipf constants */
    double theta;
    double alpha;
    double zetan;
    double eta;
};

/* Parses "uniform", "sequential" or "zipf"; returns 0 or K_ECONFIG. */
K_MUST_USE int bench_key_dist_parse(const char *name, enum bench_key_dist *out);
const char *bench_key_dist_name(enum bench_key_dist d);

/* Zipf set-up walks the key space once (O(keys)). */
void bench_keygen_init(struct bench_keygen *g, enum bench_key_dist dist, uint64_t keys);

/* Returns the next key number in [0, keys); prng is the caller's. */
uint64_t bench_keygen_next(struct bench_keygen *g, struct k_prng *prng);

#endif
