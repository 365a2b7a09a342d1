/* ketchd's counters and their Prometheus text rendering for /metrics (spec §10.3), under
 * etcd's metric names wherever the meaning is the same, so existing dashboards and alerts
 * keep working; ketch_* names only where etcd has no equivalent. All fields are updated on
 * the loop thread only (durations measured on worker threads come back with their
 * completions), so nothing here needs atomics. */
#ifndef KETCH_SERVER_METRICS_H
#define KETCH_SERVER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

enum { SRV_HIST_BOUNDS_MAX = 16, SRV_HTTP_FAILED_SLOTS = 32 };

/* A cumulative-bucket histogram as Prometheus renders it. */
struct srv_histogram {
    const double *bounds; /* upper bounds in seconds, ascending, bounds_n of them */
    size_t bounds_n;
    uint64_t counts[SRV_HIST_BOUNDS_MAX + 1]; /* per bucket, last = above every bound */
    double sum;
    uint64_t count;
};

/* Labels etcd uses for v2 store and HTTP metrics. */
enum srv_store_read { SRV_STORE_READ_GET, SRV_STORE_READ_GET_RECURSIVE, SRV_STORE_READ_COUNT };
enum srv_store_write {
    SRV_STORE_WRITE_SET,
    SRV_STORE_WRITE_CREATE,
    SRV_STORE_WRITE_UPDATE,
    SRV_STORE_WRITE_CAS,
    SRV_STORE_WRITE_DELETE,
    SRV_STORE_WRITE_CAD,
    SRV_STORE_WRITE_COUNT,
};
enum srv_http_method {
    SRV_METHOD_GET,
    SRV_METHOD_QGET, /* etcd's label for a quorum GET */
    SRV_METHOD_HEAD,
    SRV_METHOD_PUT,
    SRV_METHOD_POST,
    SRV_METHOD_DELETE,
    SRV_METHOD_OTHER,
    SRV_METHOD_COUNT,
};

struct srv_metrics {
    uint64_t server_id;
    bool has_leader;
    bool is_leader;
    uint64_t leader_changes;
    uint64_t proposals_committed;
    uint64_t proposals_applied;
    uint64_t proposals_pending;
    uint64_t proposals_failed;
    uint64_t read_indexes_failed;
    uint64_t health_success;
    uint64_t health_failures;
    uint64_t snapshots_saved;
    uint64_t wal_write_bytes;
    struct srv_histogram wal_fsync;      /* etcd_disk_wal_fsync_duration_seconds */
    struct srv_histogram backend_commit; /* etcd_disk_backend_commit_duration_seconds */
    struct srv_histogram apply;          /* ketch_server_apply_duration_seconds */
    uint64_t store_reads[SRV_STORE_READ_COUNT];
    uint64_t store_writes[SRV_STORE_WRITE_COUNT];
    uint64_t store_watchers;
    uint64_t store_expires;
    uint64_t store_watch_requests;
    uint64_t store_keys;
    uint64_t http_received[SRV_METHOD_COUNT];
    struct srv_histogram http_success[SRV_METHOD_COUNT];
    struct {
        uint16_t code;
        uint8_t method;
        uint64_t count;
    } http_failed[SRV_HTTP_FAILED_SLOTS]; /* distinct (code, method) pairs seen */
    size_t http_failed_n;
    uint64_t http_bytes_in;
    uint64_t http_bytes_out;
};

/* Zeroes m and sets the bucket bounds etcd uses for each histogram. */
void srv_metrics_init(struct srv_metrics *m, uint64_t server_id);

void srv_histogram_observe(struct srv_histogram *h, double seconds);

/* Counts a failed HTTP request; pairs beyond SRV_HTTP_FAILED_SLOTS go to code 0. */
void srv_metrics_http_failed(struct srv_metrics *m, uint16_t code, enum srv_http_method method);

/* Appends the Prometheus text exposition (version 0.0.4) of m to out. */
void srv_metrics_render(const struct srv_metrics *m, const char *server_version,
                        const char *cluster_version, struct k_buf *out);

#endif
