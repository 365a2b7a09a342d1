/* Log-linear histogram; see histogram.h. The layout follows HdrHistogram's idea (Gil
 * Tene): values below 2^(SUB_BITS+1) get one bucket each; above that, each power of two
 * [2^k, 2^(k+1)) is cut into 2^SUB_BITS equal sub-buckets. */
#include "histogram.h"

#include <string.h>

#include "base/assert.h"

void bench_hist_init(struct bench_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

uint32_t bench_hist_bucket_of(uint64_t value)
{
    if (value < BENCH_HIST_LINEAR) return (uint32_t)value;
    uint32_t top = 63u - (uint32_t)__builtin_clzll(value);         /* >= SUB_BITS + 1 */
    uint32_t shift = top - BENCH_HIST_SUB_BITS;                    /* >= 1 */
    uint64_t sub = (value >> shift) - (1u << BENCH_HIST_SUB_BITS); /* [0, 64) */
    uint32_t b = BENCH_HIST_LINEAR + (shift - 1) * (1u << BENCH_HIST_SUB_BITS) + (uint32_t)sub;
    k_assert(b < BENCH_HIST_BUCKETS);
    return b;
}

uint64_t bench_hist_bucket_high(uint32_t bucket)
{
    k_assert(bucket < BENCH_HIST_BUCKETS);
    if (bucket < BENCH_HIST_LINEAR) return bucket;
    uint32_t rel = bucket - BENCH_HIST_LINEAR;
    uint32_t shift = rel / (1u << BENCH_HIST_SUB_BITS) + 1;
    uint64_t sub = rel % (1u << BENCH_HIST_SUB_BITS) + (1u << BENCH_HIST_SUB_BITS);
    /* The last bucket's upper bound is 2^64 - 1: compute it without overflowing. */
    return (sub << shift) + ((1ull << shift) - 1);
}

void bench_hist_record(struct bench_hist *h, uint64_t value)
{
    h->buckets[bench_hist_bucket_of(value)]++;
    h->count++;
    if (value < h->min) h->min = value;
    if (value > h->max) h->max = value;
    h->sum = (h->sum + value < h->sum) ? UINT64_MAX : h->sum + value;
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
    if (src->count == 0) return;
    for (uint32_t i = 0; i < BENCH_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    if (src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
    dst->sum = (dst->sum + src->sum < dst->sum) ? UINT64_MAX : dst->sum + src->sum;
}

uint64_t bench_hist_quantile(const struct bench_hist *h, double q)
{
    if (h->count == 0) return 0;
    k_assert(q >= 0.0 && q <= 1.0);
    if (q >= 1.0) return h->max;
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count) rank++; /* ceil */
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = bench_hist_bucket_high(i);
            if (v > h->max) v = h->max;
            if (v < h->min) v = h->min;
            return v;
        }
    }
    k_assert(!"bucket counts add up to count");
    return h->max;
}

double bench_hist_mean(const struct bench_hist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}
