/* Result bookkeeping; see result.h. */
#include "result.h"

#include <string.h>
#include <uv.h>

#include "base/err.h"

void bench_result_init(struct bench_result *r)
{
    memset(r, 0, sizeof(*r));
    bench_hist_init(&r->latency);
    for (int i = 0; i < BENCH_OP_COUNT; i++)
        bench_hist_init(&r->ops[i]);
    bench_hist_init(&r->watch.delivery);
    r->watch.all_seen_ms = -1;
}

void bench_errors_add_status(struct bench_errors *e, int status)
{
    if (status < 0 || status >= BENCH_STATUS_MAX) status = 0;
    e->by_status[status]++;
    e->total++;
}

void bench_errors_add_transport(struct bench_errors *e, int code, uint64_t count)
{
    if (count == 0) return;
    e->total += count;
    for (size_t i = 0; i < e->transport_kinds; i++) {
        if (e->transport[i].code == code) {
            e->transport[i].count += count;
            return;
        }
    }
    /* The table is full only with more distinct errors than libuv is likely to produce:
     * fold the rest into the last slot rather than lose the count. */
    size_t i = e->transport_kinds < BENCH_TRANSPORT_KINDS_MAX ? e->transport_kinds++
                                                              : BENCH_TRANSPORT_KINDS_MAX - 1;
    e->transport[i].code = code;
    e->transport[i].count += count;
}

const char *bench_transport_name(int code)
{
    if (code == UV_ETIMEDOUT) return "timeout";
    if (code == UV_EOF) return "EOF";
    if (code == K_EPROTO) return "EPROTO";
    if (code == 0) return "closed";
    return uv_err_name(code);
}

const char *bench_op_name(enum bench_op op)
{
    switch (op) {
    case BENCH_OP_READ:
        return "read";
    case BENCH_OP_WRITE:
        return "write";
    case BENCH_OP_CAS:
        return "cas";
    case BENCH_OP_COUNT:
        break;
    }
    return "?";
}
