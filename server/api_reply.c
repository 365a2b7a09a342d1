/* The response helpers every ketchd handler shares: etcd's headers, v2 error bodies, and
 * Go's plain-text 404/405; see server/api.h. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "base/err.h"
#include "kv/json.h"

void srv_api_headers_init(struct srv_api_headers *hs)
{
    hs->n = 0;
    srv_api_headers_add(hs, "Access-Control-Allow-Headers", "accept, content-type, authorization");
    srv_api_headers_add(hs, "Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE");
    srv_api_headers_add(hs, "Access-Control-Allow-Origin", "*");
}

void srv_api_headers_add(struct srv_api_headers *hs, const char *name, const char *value)
{
    k_assert(hs->n < SRV_API_HEADERS_MAX);
    hs->h[hs->n].name = name;
    hs->h[hs->n].value = value;
    hs->n++;
}

void srv_api_headers_add_u64(struct srv_api_headers *hs, const char *name, uint64_t value)
{
    k_assert(hs->n < SRV_API_HEADERS_MAX);
    snprintf(hs->values[hs->n], sizeof(hs->values[hs->n]), "%" PRIu64, value);
    srv_api_headers_add(hs, name, hs->values[hs->n]);
}

void srv_api_reply_v2_error(struct srv_api *api, struct srv_request *req,
                            const struct kv_error *err)
{
    struct k_buf body = { 0 };
    kv_json_error(err, &body);
    struct srv_api_headers hs;
    srv_api_headers_init(&hs);
    srv_api_headers_add(&hs, "Content-Type", "application/json");
    srv_api_headers_add(&hs, "X-Etcd-Cluster-Id", api->cluster_id_hex);
    srv_api_headers_add_u64(&hs, "X-Etcd-Index", err->index);
    int status = kv_ecode_http_status(err->ecode);
    if (api->metrics) {
        const struct srv_http_request *m = srv_request_msg(req);
        enum srv_http_method method = SRV_METHOD_OTHER;
        if (strcmp(m->method, "GET") == 0) method = SRV_METHOD_GET;
        if (strcmp(m->method, "PUT") == 0) method = SRV_METHOD_PUT;
        if (strcmp(m->method, "POST") == 0) method = SRV_METHOD_POST;
        if (strcmp(m->method, "DELETE") == 0) method = SRV_METHOD_DELETE;
        if (strcmp(m->method, "HEAD") == 0) method = SRV_METHOD_HEAD;
        srv_metrics_http_failed(api->metrics, (uint16_t)status, method);
    }
    srv_respond(req, status, hs.h, hs.n, body.data, body.len);
    k_buf_free(&body);
}

void srv_api_reply_error(struct srv_api *api, struct srv_request *req, enum kv_ecode code,
                         uint64_t index, const char *cause)
{
    struct kv_error err;
    int rc = kv_error_set(&err, code, index, "%s", cause);
    k_assert(rc == K_EV2);
    srv_api_reply_v2_error(api, req, &err);
}

void srv_api_reply_node_error(struct srv_api *api, struct srv_request *req, int rc)
{
    const char *cause = "etcdserver: request timed out";
    if (rc == K_ESTOPPED) cause = "etcdserver: server stopped";
    if (rc == K_ELIMIT) cause = "etcdserver: too many requests";
    srv_api_reply_error(api, req, KV_ECODE_RAFT_INTERNAL, 0, cause);
}

static void reply_text(struct srv_request *req, int status, const char *allow, const char *cid,
                       const char *body)
{
    struct srv_api_headers hs;
    srv_api_headers_init(&hs);
    if (allow) srv_api_headers_add(&hs, "Allow", allow);
    if (cid) srv_api_headers_add(&hs, "X-Etcd-Cluster-Id", cid);
    srv_api_headers_add(&hs, "Content-Type", "text/plain; charset=utf-8");
    srv_api_headers_add(&hs, "X-Content-Type-Options", "nosniff");
    srv_respond(req, status, hs.h, hs.n, body, strlen(body));
}

void srv_api_reply_not_found(struct srv_request *req)
{
    reply_text(req, 404, NULL, NULL, "404 page not found\n");
}

void srv_api_reply_method_not_allowed(struct srv_request *req, const char *allow)
{
    reply_text(req, 405, allow, NULL, "Method Not Allowed\n");
}

void srv_api_reply_method_not_allowed_cid(struct srv_api *api, struct srv_request *req)
{
    reply_text(req, 405, NULL, api->cluster_id_hex, "Method Not Allowed\n");
}

void srv_api_reply_json(struct srv_api *api, struct srv_request *req, int status, const char *body,
                        size_t len, bool with_cluster_id)
{
    struct srv_api_headers hs;
    srv_api_headers_init(&hs);
    srv_api_headers_add(&hs, "Content-Type", "application/json");
    if (with_cluster_id) srv_api_headers_add(&hs, "X-Etcd-Cluster-Id", api->cluster_id_hex);
    srv_respond(req, status, hs.h, hs.n, body, len);
}

void srv_api_reply_message(struct srv_api *api, struct srv_request *req, int status,
                           const char *text, bool with_cluster_id)
{
    struct k_buf body = { 0 };
    k_buf_append(&body, "{\"message\":", 11);
    kv_json_string(&body, text, strlen(text));
    k_buf_append(&body, "}", 1);
    srv_api_reply_json(api, req, status, body.data, body.len, with_cluster_id);
    k_buf_free(&body);
}

bool srv_api_method_is(struct srv_request *req, const char *m)
{
    return strcmp(srv_request_msg(req)->method, m) == 0;
}
