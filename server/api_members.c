/* /v2/members and /v2/machines: the cluster's members as the store's registry holds them
 * (server/members.h), and runtime membership changes through raft (spec §7, §8). */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "server/go_json.h"
#include "server/media_type.h"
#include "server/member_id.h"
#include "server/members.h"

/* The registry; before the first leader wrote it (a member that just started), this member
 * alone, as its flags describe it. */
static void load_members(struct srv_api *api, struct srv_members *m)
{
    if (srv_members_load(srv_node_store(api->node), m) < 0) m->count = 0;
    if (m->count > 0) return;
    struct srv_member *self = &m->members[0];
    memset(self, 0, sizeof(*self));
    srv_id_parse(api->member_id_hex, &self->id);
    snprintf(self->name, sizeof(self->name), "%s", api->name);
    self->peer_urls = *api->peer_urls;
    self->client_urls = *api->client_urls;
    m->count = 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void srv_api_machines(struct srv_api *api, struct srv_request *req)
{
    if (!srv_api_method_is(req, "GET") && !srv_api_method_is(req, "HEAD")) {
        srv_api_reply_method_not_allowed(req, "GET,HEAD");
        return;
    }
    struct srv_members m;
    load_members(api, &m);
    /* etcd sorts the URLs as strings (observed), not by member. */
    const char *urls[SRV_MEMBERS_MAX * SRV_URL_LIST_MAX];
    size_t n = 0;
    for (size_t i = 0; i < m.count; i++) {
        const struct srv_url_list *l = &m.members[i].client_urls;
        for (size_t j = 0; j < l->count; j++)
            urls[n++] = l->urls[j].text;
    }
    qsort(urls, n, sizeof(urls[0]), cmp_str);
    struct k_buf b = { 0 };
    for (size_t i = 0; i < n; i++) {
        if (i) k_buf_puts(&b, ", ");
        k_buf_puts(&b, urls[i]);
    }
    struct srv_api_headers hs;
    srv_api_headers_init(&hs);
    srv_api_headers_add(&hs, "Content-Type", "text/plain; charset=utf-8");
    srv_respond(req, 200, hs.h, hs.n, b.data ? b.data : "", b.len);
    k_buf_free(&b);
}

/* ---- request bodies ---- */

/* Go's name for the JSON type of v, as its unmarshal errors say it. */
static const char *go_type(const cJSON *v)
{
    if (cJSON_IsString(v)) return "string";
    if (cJSON_IsNumber(v)) return "number";
    if (cJSON_IsBool(v)) return "bool";
    if (cJSON_IsArray(v)) return "array";
    if (cJSON_IsObject(v)) return "object";
    return "null";
}

/* Parses {"peerURLs":[...]} as etcd's membersHandler does; on failure answers and returns
 * false. */
static bool parse_peer_urls(struct srv_api *api, struct srv_request *req, struct srv_url_list *out)
{
    const struct srv_http_request *msg = srv_request_msg(req);
    const char *ct = msg->content_type ? msg->content_type : "";
    struct srv_str type;
    char err[256];
    if (srv_media_type_parse(ct, strlen(ct), &type, err) < 0 ||
        !srv_media_type_is(type, "application/json")) {
        snprintf(err, sizeof(err), "Bad Content-Type %s, accept application/json", ct);
        srv_api_reply_message(api, req, 415, err, true);
        return false;
    }
    const char *body = msg->body ? msg->body : "";
    if (srv_go_json_syntax_error(body, msg->body_len, err, sizeof(err))) {
        srv_api_reply_message(api, req, 400, err, true);
        return false;
    }
    /* Like Go's Decoder: the first value only, and keys matched without regard to case (the
     * last match wins). */
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, msg->body_len, &end, false);
    out->count = 0;
    bool ok = j != NULL;
    if (!ok) snprintf(err, sizeof(err), "unexpected EOF");
    const cJSON *arr = NULL;
    if (ok && !cJSON_IsObject(j)) {
        snprintf(err, sizeof(err),
                 "json: cannot unmarshal %s into Go value of type struct { "
                 "PeerURLs []string \"json:\\\"peerURLs\\\"\" }",
                 go_type(j));
        ok = false;
    }
    const cJSON *it;
    if (ok) {
        cJSON_ArrayForEach(it, j)
        {
            if (it->string && strcasecmp(it->string, "peerURLs") == 0) arr = it;
        }
    }
    if (ok && arr && !cJSON_IsArray(arr) && !cJSON_IsNull(arr)) {
        snprintf(err, sizeof(err),
                 "json: cannot unmarshal %s into Go struct field .peerURLs of type []string",
                 go_type(arr));
        ok = false;
    }
    if (ok && cJSON_IsArray(arr)) {
        cJSON_ArrayForEach(it, arr)
        {
            if (!cJSON_IsString(it)) {
                snprintf(err, sizeof(err),
                         "json: cannot unmarshal %s into Go struct field .peerURLs of type string",
                         go_type(it));
                ok = false;
                break;
            }
            if (out->count == SRV_URL_LIST_MAX) {
                snprintf(err, sizeof(err), "too many peer URLs");
                ok = false;
                break;
            }
            if (srv_url_parse(it->valuestring, &out->urls[out->count], err, sizeof(err)) < 0) {
                ok = false;
                break;
            }
            out->count++;
        }
    }
    if (ok && out->count == 0) {
        snprintf(err, sizeof(err), "no valid URLs given");
        ok = false;
    }
    cJSON_Delete(j);
    if (!ok) srv_api_reply_message(api, req, 400, err, true);
    return ok;
}

/* A peer URL of urls another member (not except) already has. */
static bool peer_url_taken(const struct srv_members *m, const struct srv_url_list *urls,
                           uint64_t except)
{
    for (size_t i = 0; i < urls->count; i++) {
        const struct srv_member *o = srv_members_find_peer_url(m, urls->urls[i].text);
        if (o && o->id != except) return true;
    }
    return false;
}

static size_t started(const struct srv_members *m, uint64_t except)
{
    size_t n = 0;
    for (size_t i = 0; i < m->count; i++)
        n += m->members[i].id != except && m->members[i].name[0] != '\0';
    return n;
}

/* etcd's --strict-reconfig-check: a change must leave a quorum of started members. */
static bool ready_to_add(const struct srv_members *m)
{
    size_t members = m->count + 1;
    size_t up = started(m, 0);
    if (up == 1 && members == 2) return true; /* etcd's special case: growing a single member */
    return up >= members / 2 + 1;
}

static bool ready_to_remove(const struct srv_members *m, uint64_t id)
{
    size_t members = m->count - (srv_members_find(m, id) ? 1 : 0);
    return started(m, id) >= members / 2 + 1;
}

/* ---- changes through raft ---- */

struct member_call {
    struct srv_wait wait; /* first: the node's callback gets &wait */
    struct srv_api *api;
    struct srv_request *req;
    int kind; /* 201 with the new member, or 204 */
    struct srv_member added;
};

static void on_change_applied(struct srv_wait *w, int rc, const struct kv_result *res)
{
    struct member_call *c = (struct member_call *)w;
    if (rc < 0 || !res || !res->event) {
        srv_api_reply_message(c->api, c->req, 500, "Internal Server Error", true);
        return;
    }
    if (c->kind == 201) {
        struct k_buf b = { 0 };
        srv_member_json(&c->added, &b);
        k_buf_puts(&b, "\n");
        srv_api_reply_json(c->api, c->req, 201, b.data, b.len, true);
        k_buf_free(&b);
        return;
    }
    struct srv_api_headers hs;
    srv_api_headers_init(&hs);
    srv_api_headers_add(&hs, "X-Etcd-Cluster-Id", c->api->cluster_id_hex);
    srv_respond(c->req, 204, hs.h, hs.n, NULL, 0);
}

static struct member_call *new_call(struct srv_api *api, struct srv_request *req, int kind)
{
    struct member_call *c = srv_arena_alloc(srv_request_arena(req), sizeof(*c));
    if (!c) return NULL;
    memset(c, 0, sizeof(*c));
    c->api = api;
    c->req = req;
    c->kind = kind;
    c->wait.cb = on_change_applied;
    c->wait.data = c;
    return c;
}

static void member_add(struct srv_api *api, struct srv_request *req)
{
    struct srv_url_list urls;
    if (!parse_peer_urls(api, req, &urls)) return;
    struct srv_members m;
    load_members(api, &m);
    if (peer_url_taken(&m, &urls, 0)) {
        srv_api_reply_message(api, req, 409, "membership: peerURL exists", true);
        return;
    }
    char salt[32];
    snprintf(salt, sizeof(salt), "%lld", (long long)(k_wall_ns() / 1000000000));
    uint64_t id = srv_member_id_compute(&urls, salt);
    if (srv_members_find(&m, id) || srv_members_was_removed(&m, id)) {
        srv_api_reply_message(api, req, 409, "membership: ID exists", true);
        return;
    }
    struct member_call *c = new_call(api, req, 201);
    if (!c || (api->strict_reconfig_check && !ready_to_add(&m)) || m.count >= SRV_MEMBERS_MAX) {
        srv_api_reply_message(api, req, 500, "Internal Server Error", true);
        return;
    }
    c->added.id = id;
    c->added.peer_urls = urls;
    struct k_buf ctx = { 0 };
    srv_member_raft_attributes_json(&urls, &ctx);
    srv_node_propose_conf_change(api->node, RAFT_CONF_ADD_NODE, id, ctx.data, &c->wait);
    k_buf_free(&ctx);
}

static void member_remove(struct srv_api *api, struct srv_request *req, uint64_t id,
                          const char *text)
{
    struct srv_members m;
    load_members(api, &m);
    char msg[128];
    if (srv_members_was_removed(&m, id)) {
        snprintf(msg, sizeof(msg), "Member permanently removed: %s", text);
        srv_api_reply_message(api, req, 410, msg, true);
        return;
    }
    if (!srv_members_find(&m, id)) {
        snprintf(msg, sizeof(msg), "No such member: %s", text);
        srv_api_reply_message(api, req, 404, msg, true);
        return;
    }
    struct member_call *c = new_call(api, req, 204);
    if (!c || (api->strict_reconfig_check && !ready_to_remove(&m, id))) {
        srv_api_reply_message(api, req, 500, "Internal Server Error", true);
        return;
    }
    srv_node_propose_conf_change(api->node, RAFT_CONF_REMOVE_NODE, id, NULL, &c->wait);
}

static void member_update(struct srv_api *api, struct srv_request *req, uint64_t id,
                          const char *text)
{
    struct srv_url_list urls;
    if (!parse_peer_urls(api, req, &urls)) return;
    struct srv_members m;
    load_members(api, &m);
    char msg[128];
    if (srv_members_was_removed(&m, id)) {
        srv_api_reply_message(api, req, 500, "Internal Server Error", true);
        return;
    }
    if (!srv_members_find(&m, id)) {
        snprintf(msg, sizeof(msg), "No such member: %s", text);
        srv_api_reply_message(api, req, 404, msg, true);
        return;
    }
    if (peer_url_taken(&m, &urls, id)) {
        srv_api_reply_message(api, req, 409, "membership: peerURL exists", true);
        return;
    }
    struct member_call *c = new_call(api, req, 204);
    if (!c) {
        srv_api_reply_message(api, req, 500, "Internal Server Error", true);
        return;
    }
    struct k_buf ctx = { 0 };
    srv_member_raft_attributes_json(&urls, &ctx);
    srv_node_propose_conf_change(api->node, RAFT_CONF_UPDATE_NODE, id, ctx.data, &c->wait);
    k_buf_free(&ctx);
}

void srv_api_members(struct srv_api *api, struct srv_request *req, const char *rest)
{
    bool is_get = srv_api_method_is(req, "GET");
    if (strcmp(rest, "") == 0 || strcmp(rest, "/") == 0) {
        if (is_get) {
            struct srv_members m;
            load_members(api, &m);
            struct k_buf b = { 0 };
            srv_members_json(&m, &b);
            k_buf_puts(&b, "\n");
            srv_api_reply_json(api, req, 200, b.data, b.len, true);
            k_buf_free(&b);
        } else if (srv_api_method_is(req, "POST")) {
            member_add(api, req);
        } else if (srv_api_method_is(req, "PUT") || srv_api_method_is(req, "DELETE")) {
            srv_api_reply_method_not_allowed_cid(api, req); /* passed the method check */
        } else {
            srv_api_reply_method_not_allowed(req, "GET,POST,DELETE,PUT");
        }
        return;
    }
    if (strcmp(rest, "/leader") == 0 && is_get) {
        struct srv_node_status st;
        srv_node_status(api->node, &st);
        struct srv_members m;
        load_members(api, &m);
        const struct srv_member *l = st.leader ? srv_members_find(&m, st.leader) : NULL;
        if (!l) {
            srv_api_reply_message(api, req, 503, "During election", true);
            return;
        }
        struct k_buf b = { 0 };
        srv_member_json(l, &b);
        k_buf_puts(&b, "\n");
        srv_api_reply_json(api, req, 200, b.data, b.len, true);
        k_buf_free(&b);
        return;
    }
    if (is_get) {
        srv_api_reply_message(api, req, 404, "Not found", true);
        return;
    }
    bool is_put = srv_api_method_is(req, "PUT");
    if (!is_put && !srv_api_method_is(req, "DELETE")) {
        srv_api_reply_method_not_allowed(req, "GET,POST,DELETE,PUT");
        return;
    }
    const char *text = rest + 1;
    uint64_t id = 0;
    if (strchr(text, '/') || srv_id_parse(text, &id) < 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "No such member: %.100s", text);
        srv_api_reply_message(api, req, 404, msg, true);
        return;
    }
    char hex[17];
    srv_id_format(id, hex);
    if (is_put) {
        member_update(api, req, id, hex);
    } else {
        member_remove(api, req, id, hex);
    }
}
