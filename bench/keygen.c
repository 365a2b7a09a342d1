/* Key distributions; see keygen.h. The zipf generator is the closed form of Gray, Sundaresan,
 * Englert, Baclawski, Weinberger, "Quickly generating billion-record synthetic databases"
 * (SIGMOD 1994), as YCSB uses it: one uniform draw per key, no table. */
#include "keygen.h"

#include <math.h>
#include <string.h>

#include "base/err.h"

int bench_key_dist_parse(const char *name, enum bench_key_dist *out)
{
    if (strcmp(name, "uniform") == 0)
        *out = BENCH_KEYS_UNIFORM;
    else if (strcmp(name, "sequential") == 0)
        *out = BENCH_KEYS_SEQUENTIAL;
    else if (strcmp(name, "zipf") == 0)
        *out = BENCH_KEYS_ZIPF;
    else
        return K_ECONFIG;
    return 0;
}

const char *bench_key_dist_name(enum bench_key_dist d)
{
    switch (d) {
    case BENCH_KEYS_UNIFORM:
        return "uniform";
    case BENCH_KEYS_SEQUENTIAL:
        return "sequential";
    case BENCH_KEYS_ZIPF:
        return "zipf";
    }
    return "?";
}

static double zeta(uint64_t n, double theta)
{
    double sum = 0;
    for (uint64_t i = 1; i <= n; i++)
        sum += 1.0 / pow((double)i, theta);
    return sum;
}

void bench_keygen_init(struct bench_keygen *g, enum bench_key_dist dist, uint64_t keys)
{
    k_assert(keys >= 1);
    memset(g, 0, sizeof(*g));
    g->dist = dist;
    g->keys = keys;
    if (dist != BENCH_KEYS_ZIPF) return;
    g->theta = 0.99;
    g->alpha = 1.0 / (1.0 - g->theta);
    g->zetan = zeta(keys, g->theta);
    double zeta2 = zeta(2, g->theta);
    g->eta = (1.0 - pow(2.0 / (double)keys, 1.0 - g->theta)) / (1.0 - zeta2 / g->zetan);
}

uint64_t bench_keygen_next(struct bench_keygen *g, struct k_prng *prng)
{
    switch (g->dist) {
    case BENCH_KEYS_UNIFORM:
        return k_prng_below(prng, g->keys);
    case BENCH_KEYS_SEQUENTIAL: {
        uint64_t k = g->next;
        g->next = (g->next + 1) % g->keys;
        return k;
    }
    case BENCH_KEYS_ZIPF: {
        double u = (double)(k_prng_next(prng) >> 11) / 9007199254740992.0; /* [0, 1) */
        double uz = u * g->zetan;
        if (uz < 1.0) return 0;
        if (uz < 1.0 + pow(0.5, g->theta)) return g->keys > 1 ? 1 : 0;
        uint64_t k = (uint64_t)((double)g->keys * pow(g->eta * u - g->eta + 1.0, g->alpha));
        return k < g->keys ? k : g->keys - 1;
    }
    }
    k_assert(!"known distribution");
    return 0;
}
