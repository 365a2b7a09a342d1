/* /v2/keys: parameters read and checked in etcd's order (spec §4.2), then a local read, a
 * quorum read through ReadIndex, a watch, or a write proposed through raft and answered from
 * its own apply result. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "kv/get.h"
#include "kv/json.h"
#include "kv/params.h"
#include "kv/watch.h"
#include "server/form.h"

static const char KEYS_ALLOW[] = "HEAD,GET,PUT,POST,DELETE";

/* State of a request that outlives the handler call (a write, a quorum read, a watch).
 * Lives in the request's arena: freed with the request, after it is finished. */
struct keys_call {
    struct srv_wait wait; /* first: the node's callbacks get &wait */
    struct srv_api *api;
    struct srv_request *req;
    const char *key;
    size_t key_len;
    struct kv_parsed p; /* parameters, checked by kv_params_parse */
    struct kv_watcher *watcher;
    bool streaming; /* the watch response head was sent */
    bool finished;
};

static void add_index_headers(struct srv_api *api, struct srv_api_headers *hs, uint64_t etcd_index)
{
    struct srv_node_status st;
    srv_node_status(api->node, &st);
    srv_api_headers_add(hs, "Content-Type", "application/json");
    srv_api_headers_add(hs, "X-Etcd-Cluster-Id", api->cluster_id_hex);
    srv_api_headers_add_u64(hs, "X-Etcd-Index", etcd_index);
    srv_api_headers_add_u64(hs, "X-Raft-Index", st.commit_index);
    srv_api_headers_add_u64(hs, "X-Raft-Term", st.term);
}

static void reply_event(struct srv_api *api, struct srv_request *req, const struct kv_event *ev,
                        bool no_value_on_success, uint64_t etcd_index)
{
    struct k_buf body = { 0 };
    kv_json_event(ev, no_value_on_success, &body);
    struct srv_api_headers hs;
    srv_api_headers_init(&hs);
    add_index_headers(api, &hs, etcd_index);
    srv_respond(req, kv_event_http_status(ev), hs.h, hs.n, body.data, body.len);
    k_buf_free(&body);
}

/* ---- reads ---- */

static void serve_get(struct srv_api *api, struct srv_request *req, const char *key, size_t key_len,
                      const struct kv_parsed *p)
{
    struct kv_event *ev = NULL;
    struct kv_error err;
    int rc = kv_get(srv_node_store(api->node), key, key_len, p->recursive, p->sorted, k_wall_ns(),
                    &ev, &err);
    if (api->metrics) {
        api->metrics
                ->store_reads[p->recursive ? SRV_STORE_READ_GET_RECURSIVE : SRV_STORE_READ_GET]++;
    }
    if (rc == K_EV2) {
        srv_api_reply_v2_error(api, req, &err);
        kv_error_release(&err);
        return;
    }
    if (rc < 0) {
        k_log_error("api", "read of the store failed: %s", k_strerror(rc));
        srv_api_reply_error(api, req, KV_ECODE_RAFT_INTERNAL, 0, k_strerror(rc));
        return;
    }
    reply_event(api, req, ev, false, ev->index);
    kv_event_unref(ev);
}

/* The client is gone (or half-closed: its FIN counts, as Go's CloseNotify). A watch ends at
 * once and frees its watcher. A write or quorum read is not withdrawn: a write may commit
 * anyway, and a half-closed client still reads its answer, as etcd gives it; the answer to a
 * client that really left is dropped by the HTTP layer. */
static void on_request_gone(struct srv_request *req, void *data)
{
    struct keys_call *c = data;
    if (!c->watcher && !c->streaming) return;
    if (c->watcher) {
        kv_watcher_free(c->watcher);
        c->watcher = NULL;
        if (c->api->metrics && c->api->metrics->store_watchers) c->api->metrics->store_watchers--;
    }
    if (c->finished) return;
    c->finished = true;
    srv_stream_end(req);
}

static void on_quorum_read(struct srv_wait *w, int rc, const struct kv_result *res)
{
    (void)res;
    struct keys_call *c = (struct keys_call *)w;
    c->finished = true;
    if (rc < 0) {
        srv_api_reply_node_error(c->api, c->req, rc);
        return;
    }
    serve_get(c->api, c->req, c->key, c->key_len, &c->p);
}

/* ---- writes ---- */

static void on_write_applied(struct srv_wait *w, int rc, const struct kv_result *res)
{
    struct keys_call *c = (struct keys_call *)w;
    c->finished = true;
    if (rc < 0) {
        srv_api_reply_node_error(c->api, c->req, rc);
        return;
    }
    if (res->rc == K_EV2) {
        srv_api_reply_v2_error(c->api, c->req, &res->err);
        return;
    }
    if (res->rc < 0 || !res->event) {
        srv_api_reply_error(c->api, c->req, KV_ECODE_RAFT_INTERNAL, 0, k_strerror(res->rc));
        return;
    }
    if (c->api->metrics) {
        static const enum srv_store_write by_action[] = {
            [KV_ACTION_SET] = SRV_STORE_WRITE_SET,
            [KV_ACTION_CREATE] = SRV_STORE_WRITE_CREATE,
            [KV_ACTION_UPDATE] = SRV_STORE_WRITE_UPDATE,
            [KV_ACTION_COMPARE_AND_SWAP] = SRV_STORE_WRITE_CAS,
            [KV_ACTION_DELETE] = SRV_STORE_WRITE_DELETE,
            [KV_ACTION_COMPARE_AND_DELETE] = SRV_STORE_WRITE_CAD,
        };
        enum kv_action a = res->event->action;
        if (a >= KV_ACTION_SET && a <= KV_ACTION_COMPARE_AND_DELETE) {
            c->api->metrics->store_writes[by_action[a]]++;
        }
    }
    reply_event(c->api, c->req, res->event, c->p.no_value_on_success, res->etcd_index);
}

static void propose_write(struct keys_call *c, Kvpb__KvRequest *kr)
{
    struct kv_error err;
    if (kv_request_check(kv_store_limits(srv_node_store(c->api->node)), kr, &err) == K_EV2) {
        c->finished = true;
        srv_api_reply_v2_error(c->api, c->req, &err);
        kv_error_release(&err);
        return;
    }
    c->wait.cb = on_write_applied;
    c->wait.data = c;
    srv_request_on_gone(c->req, on_request_gone, c);
    srv_node_propose(c->api->node, kr, &c->wait);
}

/* ---- watches ---- */

static void watch_deliver(struct keys_call *c)
{
    struct kv_event *ev;
    while (!c->finished && (ev = kv_watcher_take(c->watcher)) != NULL) {
        struct k_buf body = { 0 };
        kv_json_event(ev, false, &body);
        kv_event_unref(ev);
        int rc = srv_stream_chunk(c->req, body.data, body.len);
        k_buf_free(&body);
        if (rc < 0 || !c->p.stream) {
            c->finished = true;
            kv_watcher_free(c->watcher);
            c->watcher = NULL;
            if (c->api->metrics && c->api->metrics->store_watchers) {
                c->api->metrics->store_watchers--;
            }
            srv_stream_end(c->req);
            return;
        }
    }
    enum kv_watcher_state st = c->watcher ? kv_watcher_state(c->watcher) : KV_WATCHER_DONE;
    if (!c->finished && st == KV_WATCHER_CLOSED) {
        /* The store was replaced by a snapshot: end the watch; clients re-watch (spec §5.7). */
        c->finished = true;
        kv_watcher_free(c->watcher);
        c->watcher = NULL;
        srv_stream_end(c->req);
    }
    /* KV_WATCHER_CUT_OFF and a DONE stream stay open and silent, as etcd's do (spec §5.5). */
}

static void on_watch_event(struct kv_watcher *w, void *data)
{
    (void)w;
    watch_deliver(data);
}

static void start_watch(struct keys_call *c)
{
    struct kv_watch_opts o = {
        .key = c->key,
        .key_len = c->key_len,
        .recursive = c->p.recursive,
        .stream = c->p.stream,
        .wait_index = c->p.wait_index,
    };
    uint64_t etcd_index = 0;
    struct kv_error err;
    if (c->api->metrics) c->api->metrics->store_watch_requests++;
    int rc = kv_watch_add(srv_node_hub(c->api->node), &o, on_watch_event, c, &c->watcher,
                          &etcd_index, &err);
    if (rc == K_EV2) {
        srv_api_reply_v2_error(c->api, c->req, &err);
        kv_error_release(&err);
        return;
    }
    k_assert(rc == 0);
    if (c->api->metrics) c->api->metrics->store_watchers++;
    struct srv_api_headers hs;
    srv_api_headers_init(&hs);
    add_index_headers(c->api, &hs, etcd_index);
    /* Headers go out at once, before any event (python3-etcd depends on it, spec §5.1). */
    srv_stream_begin(c->req, 200, hs.h, hs.n);
    c->streaming = true;
    srv_request_on_gone(c->req, on_request_gone, c);
    watch_deliver(c); /* an event from history may be queued already */
}

/* ---- entry point ---- */

void srv_api_keys(struct srv_api *api, struct srv_request *req, const char *key, size_t key_len)
{
    const struct srv_http_request *m = srv_request_msg(req);
    const char *method = m->method;
    bool is_get = strcmp(method, "GET") == 0;
    bool is_head = strcmp(method, "HEAD") == 0;
    bool is_write = strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0 ||
                    strcmp(method, "DELETE") == 0;
    if (!is_get && !is_head && !is_write) {
        srv_api_reply_method_not_allowed(req, KEYS_ALLOW);
        return;
    }
    struct srv_arena *arena = srv_request_arena(req);
    struct srv_form form = { 0 };
    struct srv_form_source src = {
        .method = method,
        .query = m->query,
        .content_type = m->content_type,
        .body = { m->body, m->body_len },
        .body_too_large = m->body_too_large,
    };
    char form_err[SRV_FORM_ERROR_BYTES];
    int rc = srv_form_parse_request(arena, &src, &form, form_err);
    if (rc < 0) {
        srv_api_reply_error(api, req, KV_ECODE_INVALID_FORM, 0, form_err);
        return;
    }
    struct keys_call *c = srv_arena_alloc(arena, sizeof(*c));
    struct kv_param *params =
            srv_arena_alloc(arena, (form.count ? form.count : 1) * sizeof(*params));
    if (!c || !params) {
        srv_api_reply_error(api, req, KV_ECODE_INVALID_FORM, 0, "request too large");
        return;
    }
    memset(c, 0, sizeof(*c));
    c->api = api;
    c->req = req;
    c->key = key;
    c->key_len = key_len;
    /* Go's ParseForm already put the body's fields before the query's. */
    for (size_t i = 0; i < form.count; i++) {
        params[i].name = form.fields[i].name.ptr;
        params[i].name_len = form.fields[i].name.len;
        params[i].value = form.fields[i].value.ptr;
        params[i].value_len = form.fields[i].value.len;
    }
    enum kv_http_method km = is_get                        ? KV_HTTP_GET
                             : is_head                     ? KV_HTTP_HEAD
                             : strcmp(method, "PUT") == 0  ? KV_HTTP_PUT
                             : strcmp(method, "POST") == 0 ? KV_HTTP_POST
                                                           : KV_HTTP_DELETE;
    struct kv_error err;
    if (kv_params_parse(km, key, key_len, params, form.count, k_wall_ns(), &c->p, &err) == K_EV2) {
        srv_api_reply_v2_error(api, req, &err);
        kv_error_release(&err);
        return;
    }
    if (is_get && c->p.wait) {
        start_watch(c);
    } else if (is_get && c->p.quorum) {
        c->wait.cb = on_quorum_read;
        c->wait.data = c;
        srv_request_on_gone(req, on_request_gone, c);
        srv_node_read(api->node, &c->wait);
    } else if (is_get || is_head) {
        serve_get(api, req, key, key_len, &c->p);
    } else {
        propose_write(c, &c->p.req);
    }
}
