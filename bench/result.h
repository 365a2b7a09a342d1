/* The figures of one ketch-bench run, filled by a workload and printed by report.c. Only
 * measured requests count: anything sent during preload or warm-up, or answered after the
 * measured window, is left out. Latency histograms hold successful requests only (and,
 * for cas, completed compare-and-swaps); failures are counted by cause instead. */
#ifndef KETCH_BENCH_RESULT_H
#define KETCH_BENCH_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "histogram.h"

enum bench_op {
    BENCH_OP_READ,  /* GET */
    BENCH_OP_WRITE, /* PUT */
    BENCH_OP_CAS,   /* GET + PUT prevIndex, successful */
    BENCH_OP_COUNT,
};

enum {
    BENCH_STATUS_MAX = 600,
    BENCH_TRANSPORT_KINDS_MAX = 16,
};

struct bench_transport_error {
    int code;       /* negative libuv error, UV_ETIMEDOUT for our timeouts, or K_EPROTO */
    uint64_t count; /* requests lost (or connects failed) this way */
};

struct bench_errors {
    uint64_t by_status[BENCH_STATUS_MAX]; /* failed responses by HTTP status */
    struct bench_transport_error transport[BENCH_TRANSPORT_KINDS_MAX];
    size_t transport_kinds;
    uint64_t total;
};

/* Watch fan-out figures (workload watch only). */
struct bench_watch_result {
    size_t watchers;
    uint64_t writes;            /* writes sent (the acknowledged ones are in ok) */
    uint64_t events_expected;   /* watchers * writes */
    uint64_t events_seen;       /* distinct (watcher, write) pairs delivered */
    double ready_ms;            /* from opening the watchers until all were registered */
    double all_seen_ms;         /* from the first write sent until every watcher saw every
                                   event; < 0 when that never happened */
    struct bench_hist delivery; /* write sent -> event received by one watcher, per event */
};

struct bench_result {
    double measured_s; /* length of the measured window */
    uint64_t requests; /* measured requests completed (ok + failed + contention) */
    uint64_t ok;
    uint64_t contention;       /* cas: 412 Compare failed */
    struct bench_hist latency; /* every successful measured request or op, ns */
    struct bench_hist ops[BENCH_OP_COUNT];
    struct bench_errors errors;
    uint64_t bytes_sent; /* during the measured window */
    uint64_t bytes_recv;
    uint64_t preload_failed; /* preload writes that did not succeed */
    uint64_t rate_unsent;    /* --rate: requests due in the window but never sent (the
                                server did not keep up with the schedule) */
    bool is_watch;
    struct bench_watch_result watch;
};

void bench_result_init(struct bench_result *r);

/* Counts one failed response with HTTP status (any status, clamped into the table). */
void bench_errors_add_status(struct bench_errors *e, int status);

/* Counts count requests lost to transport error code. */
void bench_errors_add_transport(struct bench_errors *e, int code, uint64_t count);

/* A name for a transport error code: libuv's ("ECONNREFUSED"), "timeout", "EPROTO". */
const char *bench_transport_name(int code);

const char *bench_op_name(enum bench_op op);

#endif
