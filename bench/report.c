/* Table and JSON output; see report.h. */
#include "report.h"

#include <inttypes.h>

#include "base/version.h"

static const struct {
    const char *name; /* JSON key */
    const char *head; /* table column */
    double q;
} QUANTILES[] = {
    { "p50", "p50", 0.50 },
    { "p90", "p90", 0.90 },
    { "p99", "p99", 0.99 },
    { "p999", "p99.9", 0.999 },
};

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static double rate(uint64_t n, double s)
{
    return s > 0 ? (double)n / s : 0.0;
}

static void table_row(FILE *out, const char *name, const struct bench_hist *h, double s)
{
    fprintf(out, "%-9s %10" PRIu64 " %11.1f", name, h->count, rate(h->count, s));
    for (size_t i = 0; i < K_ARRAY_LEN(QUANTILES); i++)
        fprintf(out, " %9.3f", ms(bench_hist_quantile(h, QUANTILES[i].q)));
    fprintf(out, " %9.3f\n", ms(h->max));
}

static void table_errors(FILE *out, const struct bench_errors *e)
{
    fprintf(out, "errors:   %" PRIu64, e->total);
    const char *sep = " (";
    for (int s = 0; s < BENCH_STATUS_MAX; s++) {
        if (!e->by_status[s]) continue;
        fprintf(out, "%sHTTP %d x%" PRIu64, sep, s, e->by_status[s]);
        sep = ", ";
    }
    for (size_t i = 0; i < e->transport_kinds; i++) {
        fprintf(out, "%s%s x%" PRIu64, sep, bench_transport_name(e->transport[i].code),
                e->transport[i].count);
        sep = ", ";
    }
    fprintf(out, "%s\n", sep[0] == ',' ? ")" : "");
}

static void table_config(FILE *out, const struct bench_config *cfg)
{
    fprintf(out, "ketch-bench %s: %zu connection%s", bench_workload_name(cfg->workload),
            cfg->connections, cfg->connections == 1 ? "" : "s");
    if (cfg->pipeline > 1) fprintf(out, " x pipeline %zu", cfg->pipeline);
    if (cfg->rate) fprintf(out, ", open loop at %" PRIu64 " req/s", cfg->rate);
    fprintf(out, " to %s%s", cfg->target_leader ? "the leader " : "", cfg->endpoints[0].url);
    if (cfg->endpoint_count > 1) fprintf(out, " (+%zu more)", cfg->endpoint_count - 1);
    fprintf(out, "\n");
    if (cfg->workload == BENCH_WORKLOAD_WATCH) {
        fprintf(out, "watchers %zu (%s%s), writes %" PRIu64 ", value %zu B\n", cfg->watchers,
                cfg->watch_stream ? "stream" : "long poll", cfg->watch_recursive ? ", subtree" : "",
                cfg->writes, cfg->value_bytes);
        return;
    }
    fprintf(out, "value %zu B, %" PRIu64 " keys %s", cfg->value_bytes, cfg->keys,
            bench_key_dist_name(cfg->key_dist));
    if (cfg->workload == BENCH_WORKLOAD_GET || cfg->workload == BENCH_WORKLOAD_MIXED) {
        fprintf(out, ", %s reads", cfg->quorum ? "quorum" : "default");
    }
    if (cfg->workload == BENCH_WORKLOAD_MIXED) {
        fprintf(out, ", %.1f%% reads", (double)cfg->read_per_million / 1e4);
    }
    if (cfg->workload == BENCH_WORKLOAD_CAS) fprintf(out, ", %" PRIu64 " hot keys", cfg->cas_keys);
    fprintf(out, "\n");
}

void bench_report_table(FILE *out, const struct bench_config *cfg, const struct bench_result *res)
{
    table_config(out, cfg);
    if (res->is_watch)
        fprintf(out, "measured %.2f s from the first write", res->measured_s);
    else
        fprintf(out, "measured %.2f s after %.2f s warm-up", res->measured_s,
                (double)cfg->warmup_ns / 1e9);
    fprintf(out, ": %" PRIu64 " requests, %.1f req/s", res->requests,
            rate(res->requests, res->measured_s));
    if (cfg->workload == BENCH_WORKLOAD_CAS) {
        fprintf(out, ", %" PRIu64 " swapped, %" PRIu64 " lost the race (412)", res->ok,
                res->contention);
    }
    fprintf(out, "\n\n%-9s %10s %11s", "latency", "count", "per s");
    for (size_t i = 0; i < K_ARRAY_LEN(QUANTILES); i++)
        fprintf(out, " %6s ms", QUANTILES[i].head);
    fprintf(out, " %6s ms\n", "max");
    table_row(out, "all ok", &res->latency, res->measured_s);
    for (int op = 0; op < BENCH_OP_COUNT; op++) {
        if (res->ops[op].count && res->ops[op].count != res->latency.count) {
            table_row(out, bench_op_name(op), &res->ops[op], res->measured_s);
        }
    }
    if (res->is_watch) table_row(out, "delivery", &res->watch.delivery, res->measured_s);
    fprintf(out, "\n");
    if (res->is_watch) {
        const struct bench_watch_result *w = &res->watch;
        fprintf(out,
                "watch:    %zu watchers registered in %.1f ms; %" PRIu64 " of %" PRIu64
                " events delivered; ",
                w->watchers, w->ready_ms, w->events_seen, w->events_expected);
        if (w->all_seen_ms >= 0)
            fprintf(out, "all seen %.1f ms after the first write\n", w->all_seen_ms);
        else
            fprintf(out, "NOT all seen before the deadline\n");
    }
    if (cfg->rate) {
        fprintf(out, "schedule: %" PRIu64 " requests were due but never sent (server behind)\n",
                res->rate_unsent);
    }
    table_errors(out, &res->errors);
    fprintf(out, "bytes:    sent %.2f MB, received %.2f MB (%.2f MB/s in)\n",
            (double)res->bytes_sent / 1e6, (double)res->bytes_recv / 1e6,
            rate(res->bytes_recv, res->measured_s) / 1e6);
}

static void json_hist(struct k_buf *b, const struct bench_hist *h)
{
    k_buf_printf(b, "{\"count\":%" PRIu64 ",\"min\":%.3f,\"mean\":%.3f", h->count,
                 h->count ? ms(h->min) : 0.0, bench_hist_mean(h) / 1e6);
    for (size_t i = 0; i < K_ARRAY_LEN(QUANTILES); i++)
        k_buf_printf(b, ",\"%s\":%.3f", QUANTILES[i].name,
                     ms(bench_hist_quantile(h, QUANTILES[i].q)));
    k_buf_printf(b, ",\"max\":%.3f}", ms(h->max));
}

/* Our URLs, names and status numbers never need escaping beyond quotes and backslashes. */
static void json_str(struct k_buf *b, const char *s)
{
    k_buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') k_buf_putc(b, '\\');
        if ((unsigned char)*s >= 0x20) k_buf_putc(b, *s);
    }
    k_buf_putc(b, '"');
}

static void json_config(struct k_buf *b, const struct bench_config *cfg)
{
    k_buf_puts(b, "\"config\":{\"endpoints\":[");
    for (size_t i = 0; i < cfg->endpoint_count; i++) {
        if (i) k_buf_putc(b, ',');
        json_str(b, cfg->endpoints[i].url);
    }
    k_buf_printf(b,
                 "],\"target\":\"%s\",\"connections\":%zu,\"pipeline\":%zu,\"warmup_s\":%.3f,"
                 "\"duration_s\":%.3f,\"requests\":%" PRIu64
                 ",\"timeout_s\":%.3f,\"value_bytes\":%zu,"
                 "\"keys\":%" PRIu64 ",\"key_dist\":\"%s\",\"quorum\":%s,\"read_ratio\":%.4f,"
                 "\"cas_keys\":%" PRIu64 ",\"rate\":%" PRIu64 ",\"prefix\":",
                 cfg->target_leader ? "leader" : "endpoints", cfg->connections, cfg->pipeline,
                 (double)cfg->warmup_ns / 1e9, (double)cfg->duration_ns / 1e9, cfg->requests,
                 (double)cfg->timeout_ns / 1e9, cfg->value_bytes, cfg->keys,
                 bench_key_dist_name(cfg->key_dist), cfg->quorum ? "true" : "false",
                 (double)cfg->read_per_million / 1e6, cfg->cas_keys, cfg->rate);
    json_str(b, cfg->prefix);
    k_buf_printf(b,
                 ",\"seed\":%" PRIu64 ",\"watchers\":%zu,\"writes\":%" PRIu64
                 ",\"watch_recursive\":%s,\"watch_stream\":%s}",
                 cfg->seed, cfg->watchers, cfg->writes, cfg->watch_recursive ? "true" : "false",
                 cfg->watch_stream ? "true" : "false");
}

static void json_errors(struct k_buf *b, const struct bench_errors *e)
{
    k_buf_printf(b, "\"errors\":%" PRIu64 ",\"errors_by_status\":{", e->total);
    const char *sep = "";
    for (int s = 0; s < BENCH_STATUS_MAX; s++) {
        if (!e->by_status[s]) continue;
        k_buf_printf(b, "%s\"%d\":%" PRIu64, sep, s, e->by_status[s]);
        sep = ",";
    }
    k_buf_puts(b, "},\"errors_by_transport\":{");
    sep = "";
    for (size_t i = 0; i < e->transport_kinds; i++) {
        k_buf_printf(b, "%s\"%s\":%" PRIu64, sep, bench_transport_name(e->transport[i].code),
                     e->transport[i].count);
        sep = ",";
    }
    k_buf_puts(b, "}");
}

void bench_report_json(struct k_buf *b, const struct bench_config *cfg,
                       const struct bench_result *res)
{
    k_buf_printf(b, "{\"tool\":\"ketch-bench\",\"version\":\"%s\",\"workload\":\"%s\",",
                 KETCH_VERSION, bench_workload_name(cfg->workload));
    json_config(b, cfg);
    k_buf_printf(b,
                 ",\"measured_s\":%.6f,\"requests\":%" PRIu64 ",\"ok\":%" PRIu64
                 ",\"contention\":%" PRIu64 ",\"throughput_rps\":%.2f,\"ok_rps\":%.2f,",
                 res->measured_s, res->requests, res->ok, res->contention,
                 rate(res->requests, res->measured_s), rate(res->ok, res->measured_s));
    json_errors(b, &res->errors);
    k_buf_puts(b, ",\"latency_ms\":");
    json_hist(b, &res->latency);
    k_buf_puts(b, ",\"ops\":{");
    const char *sep = "";
    for (int op = 0; op < BENCH_OP_COUNT; op++) {
        if (!res->ops[op].count) continue;
        k_buf_printf(b, "%s\"%s\":{\"ok_rps\":%.2f,\"latency_ms\":", sep, bench_op_name(op),
                     rate(res->ops[op].count, res->measured_s));
        json_hist(b, &res->ops[op]);
        k_buf_puts(b, "}");
        sep = ",";
    }
    k_buf_printf(b,
                 "},\"bytes_sent\":%" PRIu64 ",\"bytes_recv\":%" PRIu64
                 ",\"preload_failed\":%" PRIu64 ",\"rate_unsent\":%" PRIu64,
                 res->bytes_sent, res->bytes_recv, res->preload_failed, res->rate_unsent);
    if (res->is_watch) {
        const struct bench_watch_result *w = &res->watch;
        k_buf_printf(b,
                     ",\"watch\":{\"watchers\":%zu,\"writes\":%" PRIu64
                     ",\"events_expected\":%" PRIu64 ",\"events_seen\":%" PRIu64
                     ",\"ready_ms\":%.3f,\"all_seen_ms\":",
                     w->watchers, w->writes, w->events_expected, w->events_seen, w->ready_ms);
        if (w->all_seen_ms >= 0)
            k_buf_printf(b, "%.3f", w->all_seen_ms);
        else
            k_buf_puts(b, "null");
        k_buf_puts(b, ",\"delivery_ms\":");
        json_hist(b, &w->delivery);
        k_buf_puts(b, "}");
    }
    k_buf_puts(b, "}\n");
}
