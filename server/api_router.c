/* Sends each client request to its handler, after what Go's ServeMux does first: a path
 * that is not clean is redirected (spec §1.5), OPTIONS is answered with the CORS headers
 * alone (§1.2), and an unknown route gets the plain 404 (§1.4). */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "server/redirect.h"

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

static bool equals(const char *s, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(s, want, len) == 0;
}

static void count_request(struct srv_api *api, const char *method)
{
    if (!api->metrics) return;
    enum srv_http_method m = SRV_METHOD_OTHER;
    if (strcmp(method, "GET") == 0) m = SRV_METHOD_GET;
    if (strcmp(method, "HEAD") == 0) m = SRV_METHOD_HEAD;
    if (strcmp(method, "PUT") == 0) m = SRV_METHOD_PUT;
    if (strcmp(method, "POST") == 0) m = SRV_METHOD_POST;
    if (strcmp(method, "DELETE") == 0) m = SRV_METHOD_DELETE;
    api->metrics->http_received[m]++;
}

void srv_api_handle(struct srv_request *req, void *data)
{
    struct srv_api *api = data;
    if (!api->node) {
        /* Stopping: the member is gone; the listeners close once earlier answers left. */
        srv_request_close_after(req);
        srv_respond(req, 503, NULL, 0, "ketchd is stopping\n", 19);
        return;
    }
    const struct srv_http_request *m = srv_request_msg(req);
    const char *path = m->path.ptr;
    size_t len = m->path.len;
    const char *location;
    int moved = srv_redirect_location(req, &location);
    if (moved != 0) {
        if (moved < 0) {
            srv_api_reply_not_found(req);
            return;
        }
        struct srv_api_headers hs;
        srv_api_headers_init(&hs);
        srv_respond_moved(req, location, hs.h, hs.n);
        return;
    }
    if (strcmp(m->method, "OPTIONS") == 0) {
        struct srv_api_headers hs;
        srv_api_headers_init(&hs);
        srv_respond(req, 200, hs.h, hs.n, NULL, 0);
        return;
    }
    if (equals(path, len, "/v2/keys") || has_prefix(path, len, "/v2/keys/")) {
        count_request(api, m->method);
        srv_api_keys(api, req, path + 8, len - 8);
    } else if (equals(path, len, "/v2/members") || has_prefix(path, len, "/v2/members/")) {
        srv_api_members(api, req, path + 11);
    } else if (equals(path, len, "/v2/machines")) {
        srv_api_machines(api, req);
    } else if (has_prefix(path, len, "/v2/stats/")) {
        srv_api_stats(api, req, path + 10);
    } else if (equals(path, len, "/version")) {
        srv_api_version(api, req);
    } else if (equals(path, len, "/health")) {
        srv_api_health(api, req);
    } else if (equals(path, len, "/metrics")) {
        srv_api_metrics(api, req);
    } else {
        srv_api_reply_not_found(req);
    }
}
