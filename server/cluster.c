/* The member's link to its cluster; see server/cluster.h. */
#include "cluster.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/log.h"
#include "server/member_id.h"
#include "server/members.h"

enum { JOIN_QUERY_TIMEOUT_MS = 3000 };

struct srv_cluster {
    uv_loop_t *loop;
    struct srv_cluster_config cfg;
    struct srv_peers *peers;
    struct srv_node *node; /* NULL until attached */
    struct srv_node_transport transport;
    uint64_t known[SRV_MEMBERS_MAX]; /* peers the transport dials now */
    size_t known_n;
    bool removed;
    struct {
        char host[SRV_URL_HOST_BYTES_MAX];
        char ip[64];
    } resolved[2 * SRV_MEMBERS_MAX];
    size_t resolved_n;
};

int srv_resolve_host(const char *host, char *out, size_t out_len)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, "0", &hints, &res) != 0 || !res) return K_ECONFIG;
    struct addrinfo *pick = res;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    }
    const void *addr = pick->ai_family == AF_INET
                               ? (const void *)&((struct sockaddr_in *)pick->ai_addr)->sin_addr
                               : (const void *)&((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr;
    bool ok = inet_ntop(pick->ai_family, addr, out, (socklen_t)out_len) != NULL;
    freeaddrinfo(res);
    return ok ? 0 : K_ECONFIG;
}

/* Peer host names resolved once: getaddrinfo blocks, and this runs on the loop. */
static int resolve_cached(struct srv_cluster *c, const char *host, char *out, size_t len)
{
    for (size_t i = 0; i < c->resolved_n; i++) {
        if (strcmp(c->resolved[i].host, host) == 0) {
            snprintf(out, len, "%s", c->resolved[i].ip);
            return 0;
        }
    }
    int rc = srv_resolve_host(host, out, len);
    if (rc == 0 && c->resolved_n < K_ARRAY_LEN(c->resolved)) {
        snprintf(c->resolved[c->resolved_n].host, sizeof(c->resolved[0].host), "%s", host);
        snprintf(c->resolved[c->resolved_n].ip, sizeof(c->resolved[0].ip), "%s", out);
        c->resolved_n++;
    }
    return rc;
}

static void removed(struct srv_cluster *c, const char *why)
{
    if (c->removed) return;
    c->removed = true;
    c->cfg.removed_cb(c->cfg.data, why);
}

/* Points the transport at peer id's first peer URL. */
static void dial_member(struct srv_cluster *c, uint64_t id, const struct srv_url_list *urls)
{
    if (id == 0 || id == c->cfg.self_id || urls->count == 0) return;
    char ip[64];
    const struct srv_url *u = &urls->urls[0];
    if (resolve_cached(c, u->host, ip, sizeof(ip)) < 0) {
        k_log_warn("cluster", "cannot resolve %s, the peer URL of %" PRIx64, u->text, id);
        return;
    }
    int rc = srv_peers_add(c->peers, id, ip, u->port);
    if (rc == 0) rc = srv_peers_set_tls_host(c->peers, id, u->tls ? u->host : NULL);
    if (rc < 0) k_log_warn("cluster", "cannot add peer %" PRIx64 ": %s", id, k_strerror(rc));
}

/* Makes the transport dial exactly the members the store names (or, before the registry is
 * written, the initial cluster), and notices this member's removal. */
static void sync_members(struct srv_cluster *c)
{
    struct srv_members m;
    if (!c->node || srv_members_load(srv_node_store(c->node), &m) < 0) return;
    if (srv_members_was_removed(&m, c->cfg.self_id)) {
        removed(c, "the member has been permanently removed from the cluster");
        return;
    }
    for (size_t i = 0; i < m.removed_count; i++)
        srv_peers_remove(c->peers, m.removed[i]);
    if (m.count == 0) return; /* not written yet: keep the initial cluster */
    /* A member the registry no longer names is not dialed; only the removed are refused. */
    for (size_t i = 0; i < c->known_n; i++) {
        if (!srv_members_find(&m, c->known[i]) && c->known[i] != c->cfg.self_id)
            srv_peers_forget(c->peers, c->known[i]);
    }
    c->known_n = 0;
    for (size_t i = 0; i < m.count; i++) {
        const struct srv_member *mem = &m.members[i];
        dial_member(c, mem->id, &mem->peer_urls);
        c->known[c->known_n++] = mem->id;
    }
}

/* ---- the node's transport ---- */

static int t_send(void *data, uint64_t to, const uint8_t *msg, size_t len)
{
    struct srv_cluster *c = data;
    return srv_peers_send(c->peers, to, msg, len);
}

static int t_send_snapshot(void *data, uint64_t to, const uint8_t *msg, size_t len,
                           const char *path)
{
    struct srv_cluster *c = data;
    return srv_peers_send_snapshot(c->peers, to, msg, len, path);
}

static void t_members_changed(void *data)
{
    sync_members(data);
}

/* ---- the transport's callbacks ---- */

static void on_recv(void *data, uint64_t from, const uint8_t *msg, size_t len)
{
    (void)from;
    struct srv_cluster *c = data;
    if (c->node) srv_node_receive(c->node, msg, len);
}

static void on_snapshot(void *data, uint64_t from, const uint8_t *msg, size_t len, const char *path)
{
    (void)from;
    struct srv_cluster *c = data;
    if (c->node) {
        srv_node_receive_snapshot(c->node, msg, len, path);
    } else {
        (void)unlink(path);
    }
}

static void on_snapshot_sent(void *data, uint64_t to, bool ok)
{
    struct srv_cluster *c = data;
    if (c->node) srv_node_snapshot_sent(c->node, to, ok);
}

static void on_rejected(void *data, uint64_t peer, enum srv_peer_reject reason, const char *text)
{
    (void)peer;
    struct srv_cluster *c = data;
    if (reason == SRV_PEER_REJECT_REMOVED) removed(c, text);
}

static void on_members(void *data, struct k_buf *out)
{
    struct srv_cluster *c = data;
    struct srv_members m;
    memset(&m, 0, sizeof(m));
    if (c->node && srv_members_load(srv_node_store(c->node), &m) < 0) m.count = 0;
    srv_members_json(&m, out);
}

int srv_cluster_start(uv_loop_t *loop, const struct srv_cluster_config *cfg,
                      struct srv_cluster **out, char *err, size_t err_len)
{
    const struct srv_config *conf = cfg->config;
    struct srv_cluster *c = k_xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->cfg = *cfg;
    c->transport = (struct srv_node_transport){ .data = c,
                                                .send = t_send,
                                                .send_snapshot = t_send_snapshot,
                                                .members_changed = t_members_changed };
    struct srv_peers_config pc = { .self_id = cfg->self_id,
                                   .cluster_id = cfg->cluster_id,
                                   .recv_cb = on_recv,
                                   .rejected_cb = on_rejected,
                                   .snapshot_cb = on_snapshot,
                                   .snapshot_sent_cb = on_snapshot_sent,
                                   .members_cb = on_members,
                                   .data = c,
                                   .tls_server = cfg->tls_server,
                                   .tls_client = cfg->tls_client };
    int rc = srv_peers_new(loop, &pc, &c->peers);
    if (rc < 0) {
        free(c);
        snprintf(err, err_len, "cannot start the peer transport: %s", k_strerror(rc));
        return rc;
    }
    *out = c;
    const struct srv_url_list *urls = &conf->listen_peer_urls;
    for (size_t i = 0; i < urls->count; i++) {
        const struct srv_url *u = &urls->urls[i];
        if (strcmp(u->scheme, "http") != 0 && strcmp(u->scheme, "https") != 0) {
            snprintf(err, err_len,
                     "--listen-peer-urls %s: only http:// and https:// are served by this build",
                     u->text);
            return K_ECONFIG;
        }
        if (i > 0) {
            k_log_warn("cluster", "serving peers on %s only; %s is ignored", urls->urls[0].text,
                       u->text);
            continue;
        }
        /* The caller makes the server context exactly when this URL is https://. */
        k_assert(u->tls == (cfg->tls_server != NULL));
        char ip[64];
        if (srv_resolve_host(u->host, ip, sizeof(ip)) < 0) {
            snprintf(err, err_len, "cannot resolve %s in --listen-peer-urls", u->host);
            return K_ECONFIG;
        }
        rc = srv_peers_listen(c->peers, ip, u->port);
        if (rc < 0) {
            snprintf(err, err_len, "cannot listen for peers on %s: %s", u->text,
                     rc < -10000 ? k_strerror(rc) : uv_strerror(rc));
            return rc;
        }
        k_log_info("cluster", "serving peers on %s", u->text);
    }
    return 0;
}

const struct srv_node_transport *srv_cluster_transport(struct srv_cluster *c)
{
    return &c->transport;
}

void srv_cluster_attach(struct srv_cluster *c, struct srv_node *node)
{
    c->node = node;
    /* The initial cluster first: the registry of a new cluster is written only once a
     * leader exists, which needs the peers. */
    const struct srv_config *conf = c->cfg.config;
    for (size_t i = 0; i < c->cfg.initial_n; i++) {
        if (c->cfg.initial_ids[i] == 0) continue; /* not in the cluster this member joins */
        dial_member(c, c->cfg.initial_ids[i], &conf->initial_members[i].peer_urls);
        if (c->known_n < SRV_MEMBERS_MAX) c->known[c->known_n++] = c->cfg.initial_ids[i];
    }
    srv_peers_set_incoming_dir(c->peers, srv_node_incoming_dir(node));
    sync_members(c);
}

bool srv_cluster_peer_stats(const struct srv_cluster *c, uint64_t id, struct srv_peer_stats *out)
{
    return srv_peers_stats(c->peers, id, out);
}

void srv_cluster_close(struct srv_cluster *c, void (*cb)(void *data), void *data)
{
    c->node = NULL;
    srv_peers_close(c->peers, cb, data);
    free(c);
}

/* Asks the members of --initial-cluster other than this one, in turn, for the member list. */
static int query_cluster(const struct srv_config *config, struct srv_tls_ctx *tls,
                         uint64_t *cluster_id, struct srv_members *m, const char **answered,
                         char *last, size_t last_len)
{
    for (size_t i = 0; i < config->initial_member_count; i++) {
        const struct srv_initial_member *im = &config->initial_members[i];
        if (strcmp(im->name, config->name) == 0 || im->peer_urls.count == 0) continue;
        const struct srv_url *u = &im->peer_urls.urls[0];
        char ip[64];
        if (srv_resolve_host(u->host, ip, sizeof(ip)) < 0) {
            snprintf(last, last_len, "cannot resolve %s", u->host);
            continue;
        }
        char *json = NULL;
        size_t len = 0;
        char qerr[256] = "";
        k_assert(!u->tls || tls != NULL); /* ketchd makes the context for https:// peers */
        int rc =
                srv_peers_query_members_tls(ip, u->port, JOIN_QUERY_TIMEOUT_MS, cluster_id, &json,
                                            &len, qerr, sizeof(qerr), u->tls ? tls : NULL, u->host);
        if (rc < 0) {
            snprintf(last, last_len, "%s: %s", u->text, qerr[0] ? qerr : k_strerror(rc));
            continue;
        }
        rc = srv_members_parse_json(json, len, m);
        free(json);
        if (rc < 0) {
            snprintf(last, last_len, "%s answered a member list that does not parse", u->text);
            continue;
        }
        *answered = u->text;
        return 0;
    }
    return K_EUNAVAILABLE;
}

void srv_cluster_join_ids(const struct srv_config *config, struct srv_tls_ctx *tls, uint64_t *ids)
{
    struct srv_members m;
    uint64_t cluster_id;
    const char *answered;
    char last[256];
    if (query_cluster(config, tls, &cluster_id, &m, &answered, last, sizeof(last)) < 0) return;
    for (size_t i = 0; i < config->initial_member_count; i++) {
        const struct srv_url_list *l = &config->initial_members[i].peer_urls;
        const struct srv_member *found =
                l->count ? srv_members_find_peer_url(&m, l->urls[0].text) : NULL;
        ids[i] = found ? found->id : 0;
    }
}

int srv_cluster_join_lookup(const struct srv_config *config, struct srv_tls_ctx *tls,
                            uint64_t *self_id, uint64_t *cluster_id, char *err, size_t err_len)
{
    const char *self_url = config->initial_advertise_peer_urls.urls[0].text;
    char last[256] = "no other member in --initial-cluster";
    struct srv_members m;
    const char *answered = NULL;
    if (query_cluster(config, tls, cluster_id, &m, &answered, last, sizeof(last)) == 0) {
        const struct srv_member *me = srv_members_find_peer_url(&m, self_url);
        if (!me) {
            snprintf(err, err_len,
                     "this member (%s) is not in the cluster that %s belongs to: add it first "
                     "(etcdctl member add %s %s)",
                     self_url, answered, config->name, self_url);
            return K_ECONFIG;
        }
        *self_id = me->id;
        return 0;
    }
    snprintf(err, err_len,
             "cannot reach the existing cluster through --initial-cluster (%s); with "
             "--initial-cluster-state existing, the other members must be running",
             last);
    return K_EUNAVAILABLE;
}
