/* The watch fan-out workload: `watchers` connections each watch one key (or a subtree:
 * <prefix>/watch, or <prefix>/watchdir with --recursive), by long poll re-armed with waitIndex =
 * last modifiedIndex + 1 (spec §5.3, the way etcdctl and python3-etcd watch) or by one stream=true
 * response (§5.5); once all are registered, `connections` writers make `writes` writes, closed
 * loop. Measures how long until every watcher has seen every write, and per event the time from
 * sending the write to a watcher receiving it. */
#ifndef KETCH_BENCH_WATCH_H
#define KETCH_BENCH_WATCH_H

#include <uv.h>

#include "base/assert.h"
#include "config.h"
#include "result.h"

/* Runs the watch workload on loop (which must have nothing else to run) and fills *out
 * (initialised here). cfg->duration_ns bounds the whole run. Returns 0 when the run
 * completed (check out->watch for whether every event arrived), K_ECONFIG for an unusable
 * config, or a negative error when the set-up write failed. */
K_MUST_USE int bench_watch_run(uv_loop_t *loop, const struct bench_config *cfg,
                               struct bench_result *out);

#endif
