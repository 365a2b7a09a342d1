/* ketchd's client API (spec/etcd-v2-api.md): the router that sends each request to its
 * handler, and the handlers of /v2/keys (api_keys.c), of members, machines, stats, version,
 * health and metrics (api_info.c). Handlers run on the loop thread; they answer through
 * server/http_server.h and reach the member through server/node.h. The shared helpers
 * (headers every response carries, etcd's JSON error bodies) are in api_reply.c. */
#ifndef KETCH_SERVER_API_H
#define KETCH_SERVER_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/error.h"
#include "server/http_server.h"
#include "server/member_url.h"
#include "server/metrics.h"
#include "server/node.h"

struct srv_cluster;

struct srv_api {
    struct srv_node *node;
    struct srv_cluster *cluster; /* the peer transport's counters, for /metrics */
    struct srv_metrics *metrics;
    const char *name;                       /* --name */
    const struct srv_url_list *client_urls; /* --advertise-client-urls */
    const struct srv_url_list *peer_urls;   /* this member's peer URLs */
    bool strict_reconfig_check;             /* --strict-reconfig-check */
    char cluster_id_hex[17];
    char member_id_hex[17];
    int64_t start_time_ns;  /* process start, for /v2/stats/self */
    int64_t leader_seen_ns; /* when the current leader was first seen (wall clock) */
    uint64_t leader_seen_id;
};

/* The handler given to the HTTP server (data = struct srv_api). */
void srv_api_handle(struct srv_request *req, void *data);

/* Per-route handlers, called by the router after path cleaning and OPTIONS. */
void srv_api_keys(struct srv_api *api, struct srv_request *req, const char *key, size_t key_len);
void srv_api_version(struct srv_api *api, struct srv_request *req);
void srv_api_health(struct srv_api *api, struct srv_request *req);
void srv_api_machines(struct srv_api *api, struct srv_request *req);
void srv_api_members(struct srv_api *api, struct srv_request *req, const char *rest);
void srv_api_stats(struct srv_api *api, struct srv_request *req, const char *which);
void srv_api_metrics(struct srv_api *api, struct srv_request *req);

/* Whether req's method is m ("GET", ...). */
bool srv_api_method_is(struct srv_request *req, const char *m);

/* ---- replies (api_reply.c) ---- */

enum { SRV_API_HEADERS_MAX = 12 };

/* A header list under construction; values are copied into the list's own storage. */
struct srv_api_headers {
    struct srv_header h[SRV_API_HEADERS_MAX];
    size_t n;
    char values[SRV_API_HEADERS_MAX][24];
};

/* Starts a list with the CORS headers etcd sends on every response (spec §1.2). */
void srv_api_headers_init(struct srv_api_headers *hs);
void srv_api_headers_add(struct srv_api_headers *hs, const char *name, const char *value);
void srv_api_headers_add_u64(struct srv_api_headers *hs, const char *name, uint64_t value);

/* Answers an etcd v2 error: JSON body with trailing newline, the status of its code, and
 * X-Etcd-Cluster-Id and X-Etcd-Index = err->index (spec §4.4, §6). */
void srv_api_reply_v2_error(struct srv_api *api, struct srv_request *req,
                            const struct kv_error *err);

/* Answers a v2 error built from code, index and cause. */
void srv_api_reply_error(struct srv_api *api, struct srv_request *req, enum kv_ecode code,
                         uint64_t index, const char *cause);

/* Answers the raft internal error (300) for a node failure rc (timeout, stopped, limit). */
void srv_api_reply_node_error(struct srv_api *api, struct srv_request *req, int rc);

/* Go's plain-text 404 and 405 (spec §1.4); allow may be NULL (no Allow header). */
void srv_api_reply_not_found(struct srv_request *req);
void srv_api_reply_method_not_allowed(struct srv_request *req, const char *allow);
/* etcd's 405 for a request that passed a handler's own method check: no Allow header, but
 * X-Etcd-Cluster-Id (PUT or DELETE of /v2/members, spec §1.1). */
void srv_api_reply_method_not_allowed_cid(struct srv_api *api, struct srv_request *req);

/* `{"message":"<text>"}` without a newline (members and stats errors, spec §1.3). */
void srv_api_reply_message(struct srv_api *api, struct srv_request *req, int status,
                           const char *text, bool with_cluster_id);

/* Answers a JSON body (bytes borrowed for the call) with the CORS headers, plus
 * X-Etcd-Cluster-Id when with_cluster_id. */
void srv_api_reply_json(struct srv_api *api, struct srv_request *req, int status, const char *body,
                        size_t len, bool with_cluster_id);

#endif
