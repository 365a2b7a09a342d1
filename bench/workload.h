/* The request/response workloads of ketch-bench (put, get, mixed, cas): N connections,
 * each with at most `pipeline` requests in flight, issuing the next request as soon as a
 * response arrives (closed loop), for a fixed time or a fixed number of requests after a
 * warm-up. One libuv loop, no threads, no per-request allocation once buffers have grown.
 * The watch workload is watch.h. */
#ifndef KETCH_BENCH_WORKLOAD_H
#define KETCH_BENCH_WORKLOAD_H

#include <uv.h>

#include "base/assert.h"
#include "config.h"
#include "result.h"

/* Runs cfg's workload on loop (which must have nothing else to run) and fills *out
 * (initialised here). Progress and warnings go to stderr. Returns 0 when the run
 * completed (even with request errors, which are in *out), K_ECONFIG for a config the
 * workload cannot run. */
K_MUST_USE int bench_workload_run(uv_loop_t *loop, const struct bench_config *cfg,
                                  struct bench_result *out);

#endif
