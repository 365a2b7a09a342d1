/* What one ketch-bench run does: the workload, where it sends it, for how long. Filled by
 * the command line (ketch_bench.c) and read by the workloads (workload.c, watch.c). */
#ifndef KETCH_BENCH_CONFIG_H
#define KETCH_BENCH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "keygen.h"

enum bench_workload {
    BENCH_WORKLOAD_PUT,   /* PUT value=<value_bytes> to keys of the key space */
    BENCH_WORKLOAD_GET,   /* GET keys of the (preloaded) key space, optionally quorum=true */
    BENCH_WORKLOAD_MIXED, /* GET with probability read_ratio, else PUT */
    BENCH_WORKLOAD_CAS,   /* GET then PUT ?prevIndex= on a few hot keys; 412 = contention */
    BENCH_WORKLOAD_WATCH, /* watchers on a key or subtree, then writes; delivery latency */
};

enum {
    BENCH_PREFIX_BYTES_MAX = 64,
    BENCH_CONNECTIONS_MAX = 10000,
    BENCH_VALUE_BYTES_MAX = 1 << 20,
};

struct bench_config {
    enum bench_workload workload;
    struct bench_endpoint endpoints[BENCH_ENDPOINTS_MAX];
    size_t endpoint_count; /* >= 1; connection i goes to endpoint i % count */
    bool target_leader;    /* endpoints were replaced by the leader's client URL */
    size_t connections;    /* load connections (watch: writer connections) */
    size_t pipeline;       /* requests in flight per connection, 1 = closed loop */
    uint64_t rate;         /* open loop: requests per second over all connections,
                              sent on schedule whatever the answers; 0 = closed loop */
    uint64_t warmup_ns;    /* load before measuring, excluded from every figure */
    uint64_t duration_ns;  /* measured time, when requests == 0 */
    uint64_t requests;     /* measured requests (count mode), 0 = duration mode */
    uint64_t timeout_ns;   /* a request unanswered this long fails the connection */
    size_t value_bytes;    /* PUT value size */
    uint64_t keys;         /* key space size */
    enum bench_key_dist key_dist;
    bool quorum;                         /* GETs with quorum=true */
    uint32_t read_per_million;           /* mixed: share of GETs */
    uint64_t cas_keys;                   /* cas: hot keys contended for */
    bool preload;                        /* get/mixed/cas: write every key once before warm-up */
    char prefix[BENCH_PREFIX_BYTES_MAX]; /* keys live under /v2/keys/<prefix>/ */
    uint64_t seed;
    size_t watchers;      /* watch: watcher connections */
    uint64_t writes;      /* watch: writes every watcher must see */
    bool watch_recursive; /* watch: on the subtree <prefix>/, writes to children */
    bool watch_stream;    /* watch: stream=true instead of long polls */
};

const char *bench_workload_name(enum bench_workload w);

#endif
