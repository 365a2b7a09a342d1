/* A member's link to the rest of its cluster: it owns the peer transport (server/peers.h),
 * keeps it dialing the members the registry names (server/members.h; the initial cluster
 * until the registry has been written), carries raft's messages and snapshots between the
 * transport and the node (the node's struct srv_node_transport), answers joining members,
 * and notices when this member has been removed.
 * Threading: the loop thread only. */
#ifndef KETCH_SERVER_CLUSTER_H
#define KETCH_SERVER_CLUSTER_H

#include <stdint.h>
#include <uv.h>

#include "base/assert.h"
#include "server/config.h"
#include "server/node.h"
#include "server/peers.h"

struct srv_cluster_config {
    uint64_t self_id;
    uint64_t cluster_id;
    const struct srv_config *config; /* listen-peer-urls, initial cluster, token; borrowed */
    const uint64_t *initial_ids;     /* ids of config->initial_members */
    size_t initial_n;
    /* Peer TLS (borrowed; outlive the cluster), NULL without: tls_server for an https://
     * first --listen-peer-urls, tls_client to dial members whose peer URL is https://. */
    struct srv_tls_ctx *tls_server;
    struct srv_tls_ctx *tls_client;
    /* This member was removed (or refused as removed): why, for the log; the caller stops. */
    void (*removed_cb)(void *data, const char *why);
    void *data;
};

struct srv_cluster;

/* Creates the transport and listens on the first --listen-peer-urls. Returns 0 and *out, or
 * an error with one line in err. */
K_MUST_USE int srv_cluster_start(uv_loop_t *loop, const struct srv_cluster_config *cfg,
                                 struct srv_cluster **out, char *err, size_t err_len);

/* What the node is given as its transport (valid for the cluster's life). */
const struct srv_node_transport *srv_cluster_transport(struct srv_cluster *c);

/* Connects the node once it started: messages are delivered to it from now on, and the
 * transport dials the members its store names. */
void srv_cluster_attach(struct srv_cluster *c, struct srv_node *node);

/* The transport's counters for peer id (false if unknown). */
bool srv_cluster_peer_stats(const struct srv_cluster *c, uint64_t id, struct srv_peer_stats *out);

/* Closes the transport; cb (may be NULL) runs once its handles closed. */
void srv_cluster_close(struct srv_cluster *c, void (*cb)(void *data), void *data);

/* For a member started with --initial-cluster-state existing: asks the other members of
 * --initial-cluster (through their peer ports) for the cluster, and finds this member in it
 * by its --initial-advertise-peer-urls. tls: the peer client context, used for https:// peer
 * URLs (NULL when there are none). Blocking; before the loop runs. Returns 0 with the ids,
 * or an error with one line in err (no member answered; this member was not added first). */
K_MUST_USE int srv_cluster_join_lookup(const struct srv_config *config, struct srv_tls_ctx *tls,
                                       uint64_t *self_id, uint64_t *cluster_id, char *err,
                                       size_t err_len);

/* Replaces ids[i] of each --initial-cluster member with the id the running cluster gave it
 * (found by peer URL; 0 when it is not a member), as etcd assigns ids to a joining member's
 * view. Blocking, like srv_cluster_join_lookup. */
void srv_cluster_join_ids(const struct srv_config *config, struct srv_tls_ctx *tls, uint64_t *ids);

/* Resolves host to a numeric IP string (IPv4 preferred, as etcd's "localhost" is). */
K_MUST_USE int srv_resolve_host(const char *host, char *out, size_t out_len);

#endif
