/* An HDR-style log-linear latency histogram: exact below 128 ns, then 64 sub-buckets per
 * power of two (relative error under 1.6%), fixed size, no allocation after init, so a
 * recording costs a few instructions on the load generator's hot path. Not thread-safe:
 * ketch-bench is single-threaded; merge histograms to combine them. */
#ifndef KETCH_BENCH_HISTOGRAM_H
#define KETCH_BENCH_HISTOGRAM_H

#include <stdint.h>

enum {
    BENCH_HIST_SUB_BITS = 6,                           /* 64 sub-buckets per octave */
    BENCH_HIST_LINEAR = 2 << BENCH_HIST_SUB_BITS,      /* values below 128 are exact */
    BENCH_HIST_OCTAVES = 64 - BENCH_HIST_SUB_BITS - 1, /* octaves above the linear part */
    BENCH_HIST_BUCKETS = BENCH_HIST_LINEAR + BENCH_HIST_OCTAVES * (1 << BENCH_HIST_SUB_BITS),
};

/* Values are nanoseconds (any unit works; percentiles come back in the same unit). */
struct bench_hist {
    uint64_t count; /* values recorded */
    uint64_t min;   /* smallest value; UINT64_MAX while count == 0 */
    uint64_t max;   /* largest value; 0 while count == 0 */
    uint64_t sum;   /* for the mean only; saturates rather than wraps */
    uint64_t buckets[BENCH_HIST_BUCKETS];
};

void bench_hist_init(struct bench_hist *h);
void bench_hist_record(struct bench_hist *h, uint64_t value);

/* Adds every value of src to dst (src is unchanged). */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);

/* Returns the value at quantile q in [0, 1]: the upper bound of the bucket holding the
 * ceil(q * count)-th smallest value, clamped to [min, max]; q = 1 gives max exactly.
 * Returns 0 when the histogram is empty. */
uint64_t bench_hist_quantile(const struct bench_hist *h, double q);

/* Returns the mean, or 0 when empty. */
double bench_hist_mean(const struct bench_hist *h);

/* Bucket arithmetic, exposed for the unit test. */
uint32_t bench_hist_bucket_of(uint64_t value);
uint64_t bench_hist_bucket_high(uint32_t bucket); /* largest value that maps to bucket */

#endif
