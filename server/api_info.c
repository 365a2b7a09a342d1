/* The member-level endpoints: /version, /health, /v2/machines, /v2/members, /v2/stats/...,
 * /metrics, in etcd's formats (spec §7-§10). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/version.h"
#include "kv/json.h"
#include "kv/store.h"
#include "kv/watch.h"
#include "server/cluster.h"
#include "server/members.h"

/* Appends a string literal without its NUL (lengths by hand are how a NUL once slipped into
 * /v2/stats/self). */
#define APPEND_LIT(b, lit) k_buf_append((b), (lit), sizeof(lit) - 1)

void srv_api_version(struct srv_api *api, struct srv_request *req)
{
    if (!srv_api_method_is(req, "GET")) {
        srv_api_reply_method_not_allowed(req, "GET");
        return;
    }
    char body[128];
    int n = snprintf(body, sizeof(body), "{\"etcdserver\":\"%s\",\"etcdcluster\":\"%s\"}",
                     KETCH_VERSION, KETCH_ETCD_CLUSTER_VERSION);
    srv_api_reply_json(api, req, 200, body, (size_t)n, false);
}

static void health_answer(struct srv_api *api, struct srv_request *req, bool healthy)
{
    struct srv_api_headers hs;
    srv_api_headers_init(&hs);
    srv_api_headers_add(&hs, "Content-Type", "text/plain; charset=utf-8");
    if (healthy) {
        if (api->metrics) api->metrics->health_success++;
        static const char ok[] = "{\"health\":\"true\"}";
        srv_respond(req, 200, hs.h, hs.n, ok, sizeof(ok) - 1);
        return;
    }
    if (api->metrics) api->metrics->health_failures++;
    srv_api_headers_add(&hs, "X-Content-Type-Options", "nosniff");
    static const char bad[] = "{\"health\":\"false\"}\n";
    srv_respond(req, 503, hs.h, hs.n, bad, sizeof(bad) - 1);
}

/* A health check waiting for its quorum read; lives in the request's arena. */
struct health_call {
    struct srv_wait wait; /* first: the node's callback gets &wait */
    struct srv_api *api;
    struct srv_request *req;
};

static void on_health_read(struct srv_wait *w, int rc, const struct kv_result *res)
{
    (void)res;
    struct health_call *h = (struct health_call *)w;
    health_answer(h->api, h->req, rc == 0);
}

/* etcd's /health: a leader is known and a quorum read succeeds within 1 s (spec §10.2). */
void srv_api_health(struct srv_api *api, struct srv_request *req)
{
    if (!srv_api_method_is(req, "GET")) {
        srv_api_reply_method_not_allowed(req, "GET");
        return;
    }
    struct srv_node_status st;
    srv_node_status(api->node, &st);
    struct health_call *h = srv_arena_alloc(srv_request_arena(req), sizeof(*h));
    if (st.leader == 0 || !h) {
        health_answer(api, req, false);
        return;
    }
    memset(h, 0, sizeof(*h));
    h->api = api;
    h->req = req;
    h->wait.cb = on_health_read;
    h->wait.data = h;
    srv_node_read_within(api->node, &h->wait, 1000);
}

/* Go's time.Duration.String for durations of a second or more ("1m55.973079992s"), and for
 * shorter ones ("512.3ms", "42µs"). */
static void go_duration(struct k_buf *b, uint64_t ns)
{
    char out[64];
    if (ns < 1000000000ull) {
        const char *unit = "ns";
        uint64_t scale = 1;
        if (ns >= 1000000) {
            unit = "ms";
            scale = 1000000;
        } else if (ns >= 1000) {
            unit = "\xc2\xb5s";
            scale = 1000;
        }
        int n = snprintf(out, sizeof(out), "%" PRIu64, ns / scale);
        uint64_t frac = ns % scale;
        if (frac) {
            char f[16];
            int digits = scale == 1000000 ? 6 : 3;
            snprintf(f, sizeof(f), "%0*" PRIu64, digits, frac);
            for (int i = digits - 1; i >= 0 && f[i] == '0'; i--)
                f[i] = '\0';
            n += snprintf(out + n, sizeof(out) - (size_t)n, ".%s", f);
        }
        snprintf(out + n, sizeof(out) - (size_t)n, "%s", unit);
        k_buf_append(b, out, strlen(out));
        return;
    }
    uint64_t s = ns / 1000000000ull;
    uint64_t frac = ns % 1000000000ull;
    int n = 0;
    if (s >= 3600) n += snprintf(out + n, sizeof(out) - (size_t)n, "%" PRIu64 "h", s / 3600);
    if (s >= 60) n += snprintf(out + n, sizeof(out) - (size_t)n, "%" PRIu64 "m", s / 60 % 60);
    n += snprintf(out + n, sizeof(out) - (size_t)n, "%" PRIu64, s % 60);
    if (frac) {
        char f[16];
        snprintf(f, sizeof(f), "%09" PRIu64, frac);
        for (int i = 8; i >= 0 && f[i] == '0'; i--)
            f[i] = '\0';
        n += snprintf(out + n, sizeof(out) - (size_t)n, ".%s", f);
    }
    snprintf(out + n, sizeof(out) - (size_t)n, "s");
    k_buf_append(b, out, strlen(out));
}

static const char *state_name(enum raft_state s)
{
    switch (s) {
    case RAFT_STATE_LEADER:
        return "StateLeader";
    case RAFT_STATE_CANDIDATE:
        return "StateCandidate";
    case RAFT_STATE_PRE_CANDIDATE:
        return "StatePreCandidate";
    default:
        return "StateFollower";
    }
}

static void stats_self(struct srv_api *api, struct srv_request *req)
{
    struct srv_node_status st;
    srv_node_status(api->node, &st);
    int64_t now = k_wall_ns();
    struct k_buf b = { 0 };
    APPEND_LIT(&b, "{\"name\":");
    kv_json_string(&b, api->name, strlen(api->name));
    char text[160];
    int n = snprintf(text, sizeof(text), ",\"id\":\"%s\",\"state\":\"%s\",\"startTime\":\"",
                     api->member_id_hex, state_name(st.state));
    k_buf_append(&b, text, (size_t)n);
    kv_json_time(&b, api->start_time_ns);
    n = snprintf(text, sizeof(text), "\",\"leaderInfo\":{\"leader\":\"%" PRIx64 "\",\"uptime\":\"",
                 st.leader);
    k_buf_append(&b, text, (size_t)n);
    int64_t since = st.leader_since_wall_ns;
    go_duration(&b, st.leader && now > since ? (uint64_t)(now - since) : 0);
    APPEND_LIT(&b, "\",\"startTime\":\"");
    kv_json_time(&b, since);
    n = snprintf(text, sizeof(text),
                 "\"},\"recvAppendRequestCnt\":%" PRIu64 ",\"sendAppendRequestCnt\":%" PRIu64 "}",
                 st.append_received, st.append_sent);
    k_buf_append(&b, text, (size_t)n);
    srv_api_reply_json(api, req, 200, b.data, b.len, false);
    k_buf_free(&b);
}

static void stats_leader(struct srv_api *api, struct srv_request *req)
{
    struct srv_node_status st;
    srv_node_status(api->node, &st);
    if (st.state != RAFT_STATE_LEADER) {
        srv_api_reply_message(api, req, 403, "not current leader", false);
        return;
    }
    struct srv_node_follower fs[RAFT_NODES_MAX];
    size_t count = srv_node_followers(api->node, fs, K_ARRAY_LEN(fs));
    struct k_buf b = { 0 };
    char text[512];
    int n = snprintf(text, sizeof(text), "{\"leader\":\"%" PRIx64 "\",\"followers\":{", st.id);
    k_buf_append(&b, text, (size_t)n);
    for (size_t i = 0; i < count; i++) {
        n = snprintf(text, sizeof(text),
                     "%s\"%" PRIx64 "\":{\"latency\":{\"current\":%.6f,\"average\":%.6f,"
                     "\"standardDeviation\":%.6f,\"minimum\":%.6f,\"maximum\":%.6f},"
                     "\"counts\":{\"fail\":%" PRIu64 ",\"success\":%" PRIu64 "}}",
                     i ? "," : "", fs[i].id, fs[i].latency_current, fs[i].latency_average,
                     fs[i].latency_stddev, fs[i].latency_min, fs[i].latency_max, fs[i].fail,
                     fs[i].success);
        k_buf_append(&b, text, (size_t)n);
    }
    APPEND_LIT(&b, "}}");
    srv_api_reply_json(api, req, 200, b.data, b.len, false);
    k_buf_free(&b);
}

static void stats_store(struct srv_api *api, struct srv_request *req)
{
    const struct srv_metrics *m = api->metrics;
    size_t watchers = kv_watch_hub_watcher_count(srv_node_hub(api->node));
    uint64_t gets =
            m->store_reads[SRV_STORE_READ_GET] + m->store_reads[SRV_STORE_READ_GET_RECURSIVE];
    char body[640];
    int n = snprintf(body, sizeof(body),
                     "{\"getsSuccess\":%" PRIu64 ",\"getsFail\":0,\"setsSuccess\":%" PRIu64
                     ",\"setsFail\":0,\"deleteSuccess\":%" PRIu64
                     ",\"deleteFail\":0,\"updateSuccess\":%" PRIu64
                     ",\"updateFail\":0,\"createSuccess\":%" PRIu64 ",\"createFail\":0,"
                     "\"compareAndSwapSuccess\":%" PRIu64 ",\"compareAndSwapFail\":0,"
                     "\"compareAndDeleteSuccess\":%" PRIu64 ",\"compareAndDeleteFail\":0,"
                     "\"expireCount\":%" PRIu64 ",\"watchers\":%zu}",
                     gets, m->store_writes[SRV_STORE_WRITE_SET],
                     m->store_writes[SRV_STORE_WRITE_DELETE],
                     m->store_writes[SRV_STORE_WRITE_UPDATE],
                     m->store_writes[SRV_STORE_WRITE_CREATE], m->store_writes[SRV_STORE_WRITE_CAS],
                     m->store_writes[SRV_STORE_WRITE_CAD], m->store_expires, watchers);
    srv_api_reply_json(api, req, 200, body, (size_t)n, false);
}

void srv_api_stats(struct srv_api *api, struct srv_request *req, const char *which)
{
    if (strcmp(which, "self") != 0 && strcmp(which, "leader") != 0 && strcmp(which, "store") != 0) {
        srv_api_reply_not_found(req);
        return;
    }
    if (!srv_api_method_is(req, "GET")) {
        srv_api_reply_method_not_allowed(req, "GET");
        return;
    }
    if (strcmp(which, "self") == 0) {
        stats_self(api, req);
    } else if (strcmp(which, "leader") == 0) {
        stats_leader(api, req);
    } else {
        stats_store(api, req);
    }
}

/* etcd's per-peer counters, one sample per member of the registry other than this one. */
static void render_peers(struct srv_api *api, struct k_buf *b)
{
    struct srv_members m;
    if (!api->cluster || srv_members_load(srv_node_store(api->node), &m) < 0) return;
    static const struct {
        const char *name;
        const char *help;
        const char *label;
    } metrics[] = {
        { "etcd_network_peer_sent_bytes_total", "The total number of bytes sent to peers.", "To" },
        { "etcd_network_peer_received_bytes_total",
          "The total number of bytes received from peers.", "From" },
        { "etcd_network_peer_sent_failures_total", "The total number of send failures from peers.",
          "To" },
    };
    char line[256];
    for (size_t k = 0; k < K_ARRAY_LEN(metrics); k++) {
        snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s counter\n", metrics[k].name,
                 metrics[k].help, metrics[k].name);
        k_buf_puts(b, line);
        for (size_t i = 0; i < m.count; i++) {
            struct srv_peer_stats ps;
            if (!srv_cluster_peer_stats(api->cluster, m.members[i].id, &ps)) continue;
            uint64_t v = k == 0 ? ps.sent_bytes : k == 1 ? ps.received_bytes : ps.dropped_messages;
            snprintf(line, sizeof(line), "%s{%s=\"%" PRIx64 "\"} %" PRIu64 "\n", metrics[k].name,
                     metrics[k].label, m.members[i].id, v);
            k_buf_puts(b, line);
        }
    }
}

void srv_api_metrics(struct srv_api *api, struct srv_request *req)
{
    struct srv_node_status st;
    srv_node_status(api->node, &st);
    api->metrics->store_watchers = kv_watch_hub_watcher_count(srv_node_hub(api->node));
    uint64_t keys = 0;
    if (kv_store_node_count(srv_node_store(api->node), &keys) == 0) api->metrics->store_keys = keys;
    struct k_buf b;
    k_buf_init(&b);
    srv_metrics_render(api->metrics, KETCH_VERSION, "3.4", &b);
    render_peers(api, &b);
    struct srv_api_headers hs;
    srv_api_headers_init(&hs);
    srv_api_headers_add(&hs, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    srv_respond(req, 200, hs.h, hs.n, b.data, b.len);
    k_buf_free(&b);
}
