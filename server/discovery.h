/* Bootstrapping through etcd's discovery protocol (spec §13): a new member registers itself
 * under a token in any etcd v2 keys API (real etcd or ketchd), waits until the cluster size
 * stored there is reached, and learns the initial cluster from the first registrations. It
 * runs once, blocking, at start-up before the member starts (etcd runs it before raft too).
 * The requests are those of spec §13's table, in its order; the meaning of each reply is in
 * server/discovery_reply.h, the transport in server/discovery_http.h. */
#ifndef KETCH_SERVER_DISCOVERY_H
#define KETCH_SERVER_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "server/config.h"

enum {
    /* etcd's backoff while the discovery server is unreachable: 2 s, 4 s, ... doubling to
     * 2^8 s, then 256 s each time (discovery.go, maxExpoentialRetries = 8). */
    SRV_DISCOVERY_BACKOFF_EXP_MAX = 8,
};

struct srv_discovery_config {
    const char *url;        /* --discovery, as given: the token URL (borrowed) */
    const char *proxy;      /* --discovery-proxy, or NULL (borrowed) */
    const char *self_value; /* what this member registers: its --initial-cluster entry */
    uint64_t member_id;     /* this member's id: its key in the registry */
    bool fallback_exit;     /* --discovery-fallback exit (else proxy, which ketchd lacks) */
};

/* Runs discovery: reads the size, registers (unless the cluster is full), waits for the
 * others, and returns the initial cluster ("name=URL,...", the values of the first size
 * registrations in createdIndex order) in *initial_cluster (caller frees). While the
 * discovery server cannot be reached (or answers 5xx) it retries after etcd's backoff,
 * logging each retry and its reason. SIGTERM and SIGINT end it at once (the handlers that
 * were installed are restored before it returns).
 *
 * Returns 0; K_ESTOPPED when a signal ended it; K_ECONFIG / K_EPROTO / K_ELIMIT with one
 * line in err in etcd's words otherwise: "discovery: size key not found: ..." (naming etcd's
 * 100 error and the missing path), "discovery: size key is bad", "discovery: cluster is
 * full", "discovery: found duplicate id", "discovery: found duplicate name", a bad URL or a
 * server that is not an etcd keys endpoint. */
K_MUST_USE int srv_discovery_join(const struct srv_discovery_config *dc, char **initial_cluster,
                                  char *err, size_t err_len);

/* ketchd's use of it: runs srv_discovery_join for cfg's --discovery with this member's
 * name and --initial-advertise-peer-urls, its id computed with the discovery URL as the
 * token (spec §2), then fills cfg as a static bootstrap with the discovered cluster would
 * be: initial_cluster and initial_members (checked like --initial-cluster), and
 * initial_cluster_token = the discovery URL. Same returns as srv_discovery_join; on
 * failure cfg's initial cluster is unchanged. */
K_MUST_USE int srv_discovery_bootstrap(struct srv_config *cfg, char *err, size_t err_len);

#endif
