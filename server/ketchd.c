/* ketchd's entry point: etcd's flags (server/config.h), the data directory and identity
 * (server/data_dir.h), the member (server/node.h) and the client API listeners
 * (server/api.h), on one libuv loop. SIGTERM and SIGINT stop it cleanly: waiting requests are
 * answered, the WAL and store are synced, and it exits 0. Under systemd it sends READY=1 once
 * it serves. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/version.h"
#include "kv/json.h"
#include "server/api.h"
#include "server/cluster.h"
#include "server/config.h"
#include "server/data_dir.h"
#include "server/discovery.h"
#include "server/member_id.h"
#include "server/members.h"
#include "server/metrics.h"
#include "server/node.h"
#include "server/tls.h"

extern char **environ;

enum {
    DRAIN_MS = 200,
    REMOVED_EXIT_DELAY_MS = 1000, /* lets the removal's commit reach the others (etcd: 1 s) */
    PUBLISH_RETRY_MS = 500,
};

struct ketchd {
    uv_loop_t *loop;
    struct srv_config cfg;
    struct srv_data_dir dir;
    struct srv_metrics metrics;
    struct srv_node *node;
    struct srv_cluster *cluster;
    uint64_t self_id;
    struct srv_api api;
    struct srv_tls_ctx *client_tls;      /* for https:// client URLs; NULL without */
    struct srv_tls_ctx *peer_tls_server; /* for an https:// first --listen-peer-urls */
    struct srv_tls_ctx *peer_tls_client; /* to dial https:// peer URLs */
    struct srv_http_server *servers[SRV_URL_LIST_MAX];
    size_t servers_n;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_timer_t drain;
    uv_timer_t removed_timer;
    uv_timer_t publish_timer;
    struct srv_wait barrier; /* the start-up read that gates serving clients */
    struct srv_wait publish; /* this member's attributes, written at every start as etcd does */
    bool publishing;
    bool removed;
    int exit_status;
    bool stopping;
};

static void print_version(void)
{
    printf("ketchd Version: %s\n", KETCH_VERSION);
    printf("Git SHA: %s\n", KETCH_GIT_SHA);
    printf("etcd API Version: 2 (compatible with etcd %s)\n", KETCH_ETCD_COMPAT_VERSION);
}

/* The member's identity: read back on a restart, computed from the flags the first time
 * exactly as etcd computes it (spec §2). */
static int identity_for(struct ketchd *k, struct srv_identity *id, uint64_t *initial_ids,
                        size_t *voters_n, char *err, size_t err_len)
{
    const struct srv_config *c = &k->cfg;
    for (size_t i = 0; i < c->initial_member_count; i++) {
        initial_ids[i] =
                srv_member_id_compute(&c->initial_members[i].peer_urls, c->initial_cluster_token);
    }
    *voters_n = c->initial_member_count;
    if (k->dir.has_identity) {
        /* The configuration is in the data dir from now on (a member that joined and has not
         * yet received its first snapshot waits for the leader again). */
        *id = k->dir.identity;
        *voters_n = 0;
        return 0;
    }
    memset(id, 0, sizeof(*id));
    snprintf(id->name, sizeof(id->name), "%s", c->name);
    if (c->initial_cluster_state == SRV_CLUSTER_STATE_EXISTING) {
        *voters_n = 0;
        int rc = srv_cluster_join_lookup(c, k->peer_tls_client, &id->member_id, &id->cluster_id,
                                         err, err_len);
        if (rc == 0) srv_cluster_join_ids(c, k->peer_tls_client, initial_ids);
        return rc;
    }
    id->member_id =
            srv_member_id_compute(&c->initial_advertise_peer_urls, c->initial_cluster_token);
    id->cluster_id = srv_cluster_id_compute(initial_ids, c->initial_member_count);
    return 0;
}

static int listen_clients(struct ketchd *k, char *err, size_t err_len)
{
    const struct srv_url_list *urls = &k->cfg.listen_client_urls;
    for (size_t i = 0; i < urls->count; i++) {
        const struct srv_url *u = &urls->urls[i];
        if (strcmp(u->scheme, "http") != 0 && strcmp(u->scheme, "https") != 0) {
            snprintf(err, err_len,
                     "--listen-client-urls %s: only http:// and https:// are served by this "
                     "build (unix sockets are not)",
                     u->text);
            return K_ECONFIG;
        }
        char ip[64];
        if (srv_resolve_host(u->host, ip, sizeof(ip)) < 0) {
            snprintf(err, err_len, "cannot resolve %s in --listen-client-urls", u->host);
            return K_ECONFIG;
        }
        struct srv_http_config hc;
        srv_http_config_default(&hc);
        hc.handler = srv_api_handle;
        hc.data = &k->api;
        hc.bytes_in = &k->metrics.http_bytes_in;
        hc.bytes_out = &k->metrics.http_bytes_out;
        hc.tls = u->tls ? k->client_tls : NULL;
        k_assert(!u->tls || hc.tls != NULL); /* loaded by load_tls at start */
        int rc = srv_http_server_new(k->loop, &hc, &k->servers[k->servers_n]);
        if (rc < 0) {
            snprintf(err, err_len, "cannot create the client server: %s", k_strerror(rc));
            return rc;
        }
        k->servers_n++;
        rc = srv_http_server_listen(k->servers[k->servers_n - 1], ip, u->port);
        if (rc < 0) {
            snprintf(err, err_len, "cannot listen on %s: %s (is another etcd or ketchd running?)",
                     u->text, rc < -10000 ? k_strerror(rc) : uv_strerror(rc));
            return rc;
        }
        k_log_info("server", "serving client requests on %s", u->text);
    }
    return 0;
}

static void on_drained(uv_timer_t *t)
{
    struct ketchd *k = t->data;
    for (size_t i = 0; i < k->servers_n; i++)
        srv_http_server_close(k->servers[i], NULL, NULL);
    k->servers_n = 0;
    uv_close((uv_handle_t *)&k->drain, NULL);
    uv_close((uv_handle_t *)&k->removed_timer, NULL);
    uv_close((uv_handle_t *)&k->publish_timer, NULL);
    uv_close((uv_handle_t *)&k->sigterm, NULL);
    uv_close((uv_handle_t *)&k->sigint, NULL);
    /* Closing the handlers restores the default action: a second SIGTERM from an impatient
     * supervisor would then kill a member that already stopped cleanly. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
}

static void stop(struct ketchd *k, const char *why)
{
    if (k->stopping) return;
    k->stopping = true;
    if (why) k_log_info("server", "stopping (%s)", why);
    sd_notify(0, "STOPPING=1");
    if (k->node) {
        int rc = srv_node_stop(k->node);
        k->node = NULL;
        k->api.node = NULL; /* freed once its handles close: new requests get 503 */
        if (rc < 0) {
            fprintf(stderr, "ketchd: syncing the data dir on the way out failed: %s\n",
                    k_strerror(rc));
            k->exit_status = 1;
        }
    }
    if (k->cluster) {
        k->api.cluster = NULL;
        srv_cluster_close(k->cluster, NULL, NULL);
        k->cluster = NULL;
    }
    uv_timer_stop(&k->removed_timer);
    uv_timer_stop(&k->publish_timer);
    /* Give the answers just queued (waiting requests failed by the stop) a moment to leave
     * before the connections are closed. */
    uv_timer_init(k->loop, &k->drain);
    k->drain.data = k;
    uv_timer_start(&k->drain, on_drained, DRAIN_MS, 0);
}

static void on_signal(uv_signal_t *s, int signum)
{
    stop(s->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* etcd's records for a new cluster, as its bootstrap writes them under /0: each member's
 * raftAttributes and the cluster version. (Each member publishes its own attributes once it
 * serves: publish_attributes.) Strings are in out's buffers (freed with free_records). */
static size_t build_records(const struct ketchd *k, const uint64_t *ids, size_t ids_n,
                            struct srv_internal_record *out, size_t cap)
{
    const struct srv_config *c = &k->cfg;
    size_t n = 0;
    char path[128];
    for (size_t i = 0; i < ids_n && n + 1 < cap; i++) {
        struct k_buf v = { 0 };
        srv_member_raft_attributes_json(&c->initial_members[i].peer_urls, &v);
        srv_member_path(ids[i], "raftAttributes", path, sizeof(path));
        out[n].path = k_xstrdup(path);
        out[n].value = v.data;
        n++;
    }
    out[n].path = k_xstrdup("/0/version");
    out[n].value = k_xstrdup(KETCH_ETCD_CLUSTER_VERSION);
    n++;
    return n;
}

static void free_records(struct srv_internal_record *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)r[i].path);
        free((char *)r[i].value);
    }
}

static void on_barrier(struct srv_wait *w, int rc, const struct kv_result *res);
static void publish_attributes(struct ketchd *k);
static void serve(struct ketchd *k);

static void on_publish_retry(uv_timer_t *t)
{
    publish_attributes(t->data);
}

static void on_published(struct srv_wait *w, int rc, const struct kv_result *res)
{
    (void)res;
    struct ketchd *k = w->data;
    k->publishing = false;
    if (k->stopping) return;
    if (rc < 0) {
        k_log_warn("server", "publishing this member's name to the cluster failed (%s); again",
                   k_strerror(rc));
        uv_timer_start(&k->publish_timer, on_publish_retry, PUBLISH_RETRY_MS, 0);
        return;
    }
    k_log_info("server", "published name %s and client URLs to the cluster", k->cfg.name);
    serve(k);
}

/* Writes this member's name and client URLs through raft, as etcd does at every start. */
static void publish_attributes(struct ketchd *k)
{
    if (k->stopping || k->publishing) return;
    struct k_buf v = { 0 };
    srv_member_attributes_json(k->cfg.name, &k->cfg.advertise_client_urls, &v);
    char path[128];
    srv_member_path(k->self_id, "attributes", path, sizeof(path));
    k->publish.cb = on_published;
    k->publish.data = k;
    k->publishing = true;
    srv_node_propose_internal(k->node, path, v.data, &k->publish);
    k_buf_free(&v);
}

static void on_removed_timer(uv_timer_t *t)
{
    struct ketchd *k = t->data;
    stop(k, "removed from the cluster");
}

static void on_removed(void *data, const char *why)
{
    struct ketchd *k = data;
    if (k->removed || k->stopping) return;
    k->removed = true;
    k_log_error("server", "%s; stopping", why);
    fprintf(stderr, "ketchd: %s\n", why);
    uv_timer_start(&k->removed_timer, on_removed_timer, REMOVED_EXIT_DELAY_MS, 0);
}

/* Clients are served only once every entry committed before this start is applied and this
 * member's attributes are published, as etcd serves only after its own start-up write
 * applied: a linearizable read point (ReadIndex) proves the first, the publish write the
 * second (so the index a client first sees already counts it, as with etcd). Without the
 * barrier, a restarted member (whose WAL commit index may lag, see raft/wal.h) could answer
 * a read before re-applying writes it had acknowledged. */
static void start_barrier(struct ketchd *k)
{
    k->barrier.cb = on_barrier;
    k->barrier.data = k;
    srv_node_read(k->node, &k->barrier);
}

static void on_barrier(struct srv_wait *w, int rc, const struct kv_result *res)
{
    (void)res;
    struct ketchd *k = w->data;
    if (k->stopping) return;
    if (rc < 0) {
        k_log_warn("server", "waiting for the cluster to agree before serving clients (%s)",
                   k_strerror(rc));
        start_barrier(k);
        return;
    }
    publish_attributes(k);
}

static void serve(struct ketchd *k)
{
    char err[512];
    err[0] = '\0';
    if (listen_clients(k, err, sizeof(err)) < 0) {
        k->exit_status = 1;
        stop(k, NULL);
        fprintf(stderr, "ketchd: %s\n", err);
        return;
    }
    struct srv_node_status st;
    srv_node_status(k->node, &st);
    k_log_info("server", "member %s (%s) of cluster %s is ready (applied index %llu)",
               k->api.member_id_hex, k->cfg.name, k->api.cluster_id_hex,
               (unsigned long long)st.applied_index);
    sd_notify(0, "READY=1");
}

static int check_supported(const struct srv_config *c, char *err, size_t err_len)
{
    if (c->initial_member_count > SRV_MEMBERS_MAX) {
        snprintf(err, err_len, "--initial-cluster names %zu members; at most %d are supported",
                 c->initial_member_count, SRV_MEMBERS_MAX);
        return K_ECONFIG;
    }
    return 0;
}

static bool any_tls(const struct srv_url_list *urls)
{
    for (size_t i = 0; i < urls->count; i++) {
        if (urls->urls[i].tls) return true;
    }
    return false;
}

/* True if this member may have to dial a peer over TLS: a peer URL it knows of is https://,
 * or peer TLS files were given (members added later may be https://). */
static bool peer_dials_tls(const struct srv_config *c)
{
    const struct srv_tls_files *f = &c->peer_tls;
    if (f->cert_file || f->trusted_ca_file) return true;
    if (any_tls(&c->listen_peer_urls) || any_tls(&c->initial_advertise_peer_urls)) return true;
    for (size_t i = 0; i < c->initial_member_count; i++) {
        if (any_tls(&c->initial_members[i].peer_urls)) return true;
    }
    return false;
}

/* Reads the certificates and keys now, so a bad file stops the start with one line naming
 * its flag, before anything is written. As etcd does, the files serve only the ports whose
 * URLs are https:// (the peer port's first URL decides, as only it is served). */
static int load_tls(struct ketchd *k, char *err, size_t err_len)
{
    const struct srv_config *c = &k->cfg;
    if (any_tls(&c->listen_client_urls)) {
        int rc = srv_tls_ctx_new(&c->client_tls, SRV_TLS_SERVER, "", &k->client_tls, err, err_len);
        if (rc < 0) return rc;
    }
    if (c->listen_peer_urls.count > 0 && c->listen_peer_urls.urls[0].tls) {
        int rc = srv_tls_ctx_new(&c->peer_tls, SRV_TLS_SERVER, "peer-", &k->peer_tls_server, err,
                                 err_len);
        if (rc < 0) return rc;
    }
    if (peer_dials_tls(c)) {
        int rc = srv_tls_ctx_new(&c->peer_tls, SRV_TLS_CLIENT, "peer-", &k->peer_tls_client, err,
                                 err_len);
        if (rc < 0) return rc;
    }
    return 0;
}

static int run(struct ketchd *k, char *err, size_t err_len)
{
    int rc = check_supported(&k->cfg, err, err_len);
    if (rc < 0) return rc;
    rc = load_tls(k, err, err_len);
    if (rc < 0) return rc;
    rc = srv_data_dir_open(&k->dir, k->cfg.data_dir, k->cfg.wal_dir, k->cfg.name, err, err_len);
    if (rc < 0) return rc;
    /* A first start with --discovery learns --initial-cluster from the discovery server; a
     * restart has its identity and ignores the token, as etcd does (spec §13). */
    if (k->cfg.discovery && !k->dir.has_identity) {
        rc = srv_discovery_bootstrap(&k->cfg, err, err_len);
        if (rc == K_ESTOPPED) {
            k_log_info("server", "%s", err);
            stop(k, NULL);
            return 0;
        }
        if (rc == 0) rc = check_supported(&k->cfg, err, err_len);
        if (rc < 0) return rc;
    }
    struct srv_identity id;
    uint64_t initial_ids[SRV_CONFIG_MEMBERS_MAX];
    size_t voters_n;
    rc = identity_for(k, &id, initial_ids, &voters_n, err, err_len);
    if (rc < 0) return rc;
    k->self_id = id.member_id;
    srv_metrics_init(&k->metrics, id.member_id);
    struct srv_cluster_config cc = { .self_id = id.member_id,
                                     .cluster_id = id.cluster_id,
                                     .config = &k->cfg,
                                     .initial_ids = initial_ids,
                                     .initial_n = k->cfg.initial_member_count,
                                     .removed_cb = on_removed,
                                     .data = k,
                                     .tls_server = k->peer_tls_server,
                                     .tls_client = k->peer_tls_client };
    rc = srv_cluster_start(k->loop, &cc, &k->cluster, err, err_len);
    if (rc < 0) return rc;
    struct srv_internal_record records[SRV_CONFIG_MEMBERS_MAX + 1];
    size_t records_n = build_records(k, initial_ids, k->cfg.initial_member_count, records,
                                     K_ARRAY_LEN(records));
    struct srv_node_config nc = {
        .id = id.member_id,
        .cluster_id = id.cluster_id,
        .voters = initial_ids,
        .voters_n = voters_n,
        .transport = srv_cluster_transport(k->cluster),
        .heartbeat_ms = k->cfg.heartbeat_interval_ms,
        .election_ms = k->cfg.election_timeout_ms,
        .snapshot_count = k->cfg.snapshot_count,
        .max_snapshots = k->cfg.max_snapshots ? k->cfg.max_snapshots : 1,
        .store_bytes_max = k->cfg.quota_backend_bytes,
        /* etcd does not apply --max-request-bytes to v2 (spec §1.6); ketchd bounds values by
         * it, at etcd's default of 1.5 MiB (issue 5 asks for that limit). */
        .value_bytes_max = k->cfg.max_request_bytes,
        .request_timeout_ms = 5000 + 2ull * k->cfg.election_timeout_ms,
        .wal_dir = k->dir.wal_dir,
        .snap_dir = k->dir.snap_dir,
        .kv_dir = k->dir.kv_dir,
        .metrics = &k->metrics,
        .bootstrap_records = records,
        .bootstrap_records_n = records_n,
    };
    rc = srv_node_start(k->loop, &nc, &k->node, err, err_len);
    free_records(records, records_n);
    if (rc < 0) return rc;
    srv_cluster_attach(k->cluster, k->node);
    if (!k->dir.has_identity) {
        rc = srv_data_dir_save_identity(&k->dir, &id);
        if (rc < 0) {
            snprintf(err, err_len, "cannot write the member identity in %.512s: %s", k->dir.root,
                     k_strerror(rc));
            return rc;
        }
    }
    k->api.node = k->node;
    k->api.cluster = k->cluster;
    k->api.metrics = &k->metrics;
    k->api.name = k->cfg.name;
    k->api.client_urls = &k->cfg.advertise_client_urls;
    k->api.peer_urls = &k->cfg.initial_advertise_peer_urls;
    k->api.strict_reconfig_check = k->cfg.strict_reconfig_check;
    srv_id_format(id.cluster_id, k->api.cluster_id_hex);
    srv_id_format(id.member_id, k->api.member_id_hex);
    k->api.start_time_ns = k_wall_ns();
    start_barrier(k);
    return 0;
}

int main(int argc, char **argv)
{
    struct ketchd k;
    memset(&k, 0, sizeof(k));
    enum srv_config_action action;
    char err[1024];
    int rc = srv_config_parse(&k.cfg, argc, argv, environ, &action, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "ketchd: %s\n", err);
        srv_config_deinit(&k.cfg);
        return 2;
    }
    if (action == SRV_CONFIG_SHOW_VERSION) {
        print_version();
        srv_config_deinit(&k.cfg);
        return 0;
    }
    if (action == SRV_CONFIG_SHOW_HELP) {
        fputs(srv_config_usage(), stdout);
        srv_config_deinit(&k.cfg);
        return 0;
    }
    k_log_set_level(k.cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    k.loop = uv_default_loop();
    uv_signal_init(k.loop, &k.sigterm);
    uv_signal_init(k.loop, &k.sigint);
    k.sigterm.data = k.sigint.data = &k;
    uv_signal_start(&k.sigterm, on_signal, SIGTERM);
    uv_signal_start(&k.sigint, on_signal, SIGINT);
    uv_timer_init(k.loop, &k.removed_timer);
    uv_timer_init(k.loop, &k.publish_timer);
    k.removed_timer.data = k.publish_timer.data = &k;
    err[0] = '\0';
    rc = run(&k, err, sizeof(err));
    if (rc < 0) {
        k.exit_status = 1;
        stop(&k, NULL); /* quietly: the one line below says what to fix */
        fprintf(stderr, "ketchd: %s\n", err[0] ? err : k_strerror(rc));
    }
    uv_run(k.loop, UV_RUN_DEFAULT);
    uv_loop_close(k.loop);
    /* After every connection made with them is closed. */
    srv_tls_ctx_free(k.client_tls);
    srv_tls_ctx_free(k.peer_tls_server);
    srv_tls_ctx_free(k.peer_tls_client);
    srv_data_dir_close(&k.dir);
    srv_config_deinit(&k.cfg);
    if (k.exit_status == 0) k_log_info("server", "stopped cleanly");
    return k.exit_status;
}
