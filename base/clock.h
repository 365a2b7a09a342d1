/* The two clocks the I/O shell reads: wall time (TTL stamps, /v2/stats times) and a
 * monotonic clock (durations). raft/ and kv apply never call these (STYLE.md §5). */
#ifndef KETCH_BASE_CLOCK_H
#define KETCH_BASE_CLOCK_H

#include <stdint.h>

/* Unix time in nanoseconds (CLOCK_REALTIME). */
int64_t k_wall_ns(void);

/* Nanoseconds since an arbitrary start (CLOCK_MONOTONIC); for measuring durations. */
uint64_t k_mono_ns(void);

#endif
