/* Printing a ketch-bench result: a table for people, and JSON for scripts (bench/compare
 * reads it). Latencies are printed in milliseconds. The JSON layout is documented in
 * bench/README.md; fields are only ever added. */
#ifndef KETCH_BENCH_REPORT_H
#define KETCH_BENCH_REPORT_H

#include <stdio.h>

#include "base/buf.h"
#include "config.h"
#include "result.h"

/* Writes the human table to out. */
void bench_report_table(FILE *out, const struct bench_config *cfg, const struct bench_result *res);

/* Appends the JSON object (one line, then '\n') to b. */
void bench_report_json(struct k_buf *b, const struct bench_config *cfg,
                       const struct bench_result *res);

#endif
