/* Names of workloads; see config.h. */
#include "config.h"

const char *bench_workload_name(enum bench_workload w)
{
    switch (w) {
    case BENCH_WORKLOAD_PUT:
        return "put";
    case BENCH_WORKLOAD_GET:
        return "get";
    case BENCH_WORKLOAD_MIXED:
        return "mixed";
    case BENCH_WORKLOAD_CAS:
        return "cas";
    case BENCH_WORKLOAD_WATCH:
        return "watch";
    }
    return "?";
}
