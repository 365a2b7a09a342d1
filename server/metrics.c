/* Prometheus text rendering of struct srv_metrics; see server/metrics.h. */
#include "metrics.h"

#include <stdio.h>
#include <string.h>

#include "base/assert.h"

/* etcd's disk histograms: 1 ms doubling to 8.192 s. */
static const double DISK_BOUNDS[] = { 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064,
                                      0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192 };
/* etcd's HTTP histogram: 0.5 ms doubling to 2.048 s. */
static const double HTTP_BOUNDS[] = { 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032,
                                      0.064,  0.128, 0.256, 0.512, 1.024, 2.048 };

static const char *const METHOD_NAMES[SRV_METHOD_COUNT] = { "GET",  "QGET",   "HEAD", "PUT",
                                                            "POST", "DELETE", "OTHER" };
static const char *const READ_NAMES[SRV_STORE_READ_COUNT] = { "get", "getRecursive" };
static const char *const WRITE_NAMES[SRV_STORE_WRITE_COUNT] = { "set",    "create",
                                                                "update", "compareAndSwap",
                                                                "delete", "compareAndDelete" };

static void hist_init(struct srv_histogram *h, const double *bounds, size_t n)
{
    k_assert(n <= SRV_HIST_BOUNDS_MAX);
    memset(h, 0, sizeof(*h));
    h->bounds = bounds;
    h->bounds_n = n;
}

void srv_metrics_init(struct srv_metrics *m, uint64_t server_id)
{
    memset(m, 0, sizeof(*m));
    m->server_id = server_id;
    hist_init(&m->wal_fsync, DISK_BOUNDS, K_ARRAY_LEN(DISK_BOUNDS));
    hist_init(&m->backend_commit, DISK_BOUNDS, K_ARRAY_LEN(DISK_BOUNDS));
    hist_init(&m->apply, DISK_BOUNDS, K_ARRAY_LEN(DISK_BOUNDS));
    for (int i = 0; i < SRV_METHOD_COUNT; i++) {
        hist_init(&m->http_success[i], HTTP_BOUNDS, K_ARRAY_LEN(HTTP_BOUNDS));
    }
}

void srv_histogram_observe(struct srv_histogram *h, double seconds)
{
    size_t i = 0;
    while (i < h->bounds_n && seconds > h->bounds[i])
        i++;
    h->counts[i]++;
    h->sum += seconds;
    h->count++;
}

void srv_metrics_http_failed(struct srv_metrics *m, uint16_t code, enum srv_http_method method)
{
    for (size_t i = 0; i < m->http_failed_n; i++) {
        if (m->http_failed[i].code == code && m->http_failed[i].method == method) {
            m->http_failed[i].count++;
            return;
        }
    }
    if (m->http_failed_n == SRV_HTTP_FAILED_SLOTS) {
        srv_metrics_http_failed(m, 0, method); /* slot for everything else */
        return;
    }
    m->http_failed[m->http_failed_n].code = code;
    m->http_failed[m->http_failed_n].method = (uint8_t)method;
    m->http_failed[m->http_failed_n].count = 1;
    m->http_failed_n++;
}

static void head(struct k_buf *out, const char *name, const char *type, const char *help)
{
    k_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct k_buf *out, const char *name, uint64_t v)
{
    k_buf_printf(out, "%s %llu\n", name, (unsigned long long)v);
}

static void simple(struct k_buf *out, const char *name, const char *type, const char *help,
                   uint64_t v)
{
    head(out, name, type, help);
    sample(out, name, v);
}

/* Renders one histogram's samples; labels is "" or `method="PUT",`. */
static void hist_samples(struct k_buf *out, const char *name, const char *labels,
                         const struct srv_histogram *h)
{
    uint64_t cumulative = 0;
    for (size_t i = 0; i < h->bounds_n; i++) {
        cumulative += h->counts[i];
        k_buf_printf(out, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, h->bounds[i],
                     (unsigned long long)cumulative);
    }
    cumulative += h->counts[h->bounds_n];
    k_buf_printf(out, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels,
                 (unsigned long long)cumulative);
    size_t labels_len = strlen(labels);
    if (labels_len) {
        /* `method="PUT",` becomes {method="PUT"} on _sum and _count. */
        k_buf_printf(out, "%s_sum{%.*s} %.9g\n%s_count{%.*s} %llu\n", name, (int)labels_len - 1,
                     labels, h->sum, name, (int)labels_len - 1, labels,
                     (unsigned long long)h->count);
    } else {
        k_buf_printf(out, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name,
                     (unsigned long long)h->count);
    }
}

static void hist(struct k_buf *out, const char *name, const char *help,
                 const struct srv_histogram *h)
{
    head(out, name, "histogram", help);
    hist_samples(out, name, "", h);
}

static void render_server(const struct srv_metrics *m, const char *server_version,
                          const char *cluster_version, struct k_buf *out)
{
    head(out, "etcd_cluster_version", "gauge",
         "Which version is running. 1 for 'cluster_version' label with current cluster version");
    k_buf_printf(out, "etcd_cluster_version{cluster_version=\"%s\"} 1\n", cluster_version);
    simple(out, "etcd_server_has_leader", "gauge",
           "Whether or not a leader exists. 1 is existence, 0 is not.", m->has_leader);
    simple(out, "etcd_server_is_leader", "gauge",
           "Whether or not this member is a leader. 1 if is, 0 otherwise.", m->is_leader);
    simple(out, "etcd_server_leader_changes_seen_total", "counter",
           "The number of leader changes seen.", m->leader_changes);
    simple(out, "etcd_server_proposals_committed_total", "gauge",
           "The total number of consensus proposals committed.", m->proposals_committed);
    simple(out, "etcd_server_proposals_applied_total", "gauge",
           "The total number of consensus proposals applied.", m->proposals_applied);
    simple(out, "etcd_server_proposals_pending", "gauge",
           "The current number of pending proposals to commit.", m->proposals_pending);
    simple(out, "etcd_server_proposals_failed_total", "counter",
           "The total number of failed proposals seen.", m->proposals_failed);
    simple(out, "etcd_server_read_indexes_failed_total", "counter",
           "The total number of failed read indexes seen.", m->read_indexes_failed);
    simple(out, "etcd_server_health_success", "counter",
           "The total number of successful health checks", m->health_success);
    simple(out, "etcd_server_health_failures", "counter",
           "The total number of failed health checks", m->health_failures);
    head(out, "etcd_server_id", "gauge",
         "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.");
    k_buf_printf(out, "etcd_server_id{server_id=\"%llx\"} 1\n", (unsigned long long)m->server_id);
    head(out, "etcd_server_version", "gauge",
         "Which version is running. 1 for 'server_version' label with current version.");
    k_buf_printf(out, "etcd_server_version{server_version=\"%s\"} 1\n", server_version);
    simple(out, "ketch_server_snapshots_saved_total", "counter",
           "The number of snapshots this member saved.", m->snapshots_saved);
}

static void render_disk(const struct srv_metrics *m, struct k_buf *out)
{
    hist(out, "etcd_disk_wal_fsync_duration_seconds",
         "The latency distributions of fsync called by WAL.", &m->wal_fsync);
    simple(out, "etcd_disk_wal_write_bytes_total", "gauge", "Total number of bytes written in WAL.",
           m->wal_write_bytes);
    hist(out, "etcd_disk_backend_commit_duration_seconds",
         "The latency distributions of commit called by backend.", &m->backend_commit);
    hist(out, "ketch_server_apply_duration_seconds",
         "The latency distributions of applying a batch of committed entries to the store.",
         &m->apply);
}

static void render_store(const struct srv_metrics *m, struct k_buf *out)
{
    head(out, "etcd_debugging_store_reads_total", "counter",
         "Total number of reads action by (get/getRecursive), local to this member.");
    for (int i = 0; i < SRV_STORE_READ_COUNT; i++) {
        k_buf_printf(out, "etcd_debugging_store_reads_total{action=\"%s\"} %llu\n", READ_NAMES[i],
                     (unsigned long long)m->store_reads[i]);
    }
    head(out, "etcd_debugging_store_writes_total", "counter",
         "Total number of writes (e.g. set/compareAndDelete) seen by this member.");
    for (int i = 0; i < SRV_STORE_WRITE_COUNT; i++) {
        k_buf_printf(out, "etcd_debugging_store_writes_total{action=\"%s\"} %llu\n", WRITE_NAMES[i],
                     (unsigned long long)m->store_writes[i]);
    }
    simple(out, "etcd_debugging_store_watchers", "gauge", "Count of currently active watchers.",
           m->store_watchers);
    simple(out, "etcd_debugging_store_expires_total", "counter", "Total number of expired keys.",
           m->store_expires);
    simple(out, "etcd_debugging_store_watch_requests_total", "counter",
           "Total number of incoming watch requests (new or reestablished).",
           m->store_watch_requests);
    simple(out, "ketch_store_keys", "gauge", "Number of keys (files and dirs) in the store.",
           m->store_keys);
}

static void render_http(const struct srv_metrics *m, struct k_buf *out)
{
    head(out, "etcd_http_received_total", "counter",
         "Counter of requests received into the system (successfully parsed and authd).");
    for (int i = 0; i < SRV_METHOD_COUNT; i++) {
        if (m->http_received[i] == 0) continue;
        k_buf_printf(out, "etcd_http_received_total{method=\"%s\"} %llu\n", METHOD_NAMES[i],
                     (unsigned long long)m->http_received[i]);
    }
    head(out, "etcd_http_failed_total", "counter",
         "Counter of handle failures of requests (non-watches), by method (GET/PUT etc.), and "
         "code (400, 500 etc.).");
    for (size_t i = 0; i < m->http_failed_n; i++) {
        k_buf_printf(out, "etcd_http_failed_total{code=\"%u\",method=\"%s\"} %llu\n",
                     m->http_failed[i].code, METHOD_NAMES[m->http_failed[i].method],
                     (unsigned long long)m->http_failed[i].count);
    }
    head(out, "etcd_http_successful_duration_seconds", "histogram",
         "Bucketed histogram of processing time (s) of successfully handled requests (non-"
         "watches), by method (GET/PUT etc.).");
    for (int i = 0; i < SRV_METHOD_COUNT; i++) {
        if (m->http_success[i].count == 0) continue;
        char labels[32];
        snprintf(labels, sizeof(labels), "method=\"%s\",", METHOD_NAMES[i]);
        hist_samples(out, "etcd_http_successful_duration_seconds", labels, &m->http_success[i]);
    }
    simple(out, "ketch_http_received_bytes_total", "counter",
           "Bytes received from clients on the client port.", m->http_bytes_in);
    simple(out, "ketch_http_sent_bytes_total", "counter",
           "Bytes sent to clients on the client port.", m->http_bytes_out);
}

void srv_metrics_render(const struct srv_metrics *m, const char *server_version,
                        const char *cluster_version, struct k_buf *out)
{
    render_server(m, server_version, cluster_version, out);
    render_disk(m, out);
    render_store(m, out);
    render_http(m, out);
}
