/* Sends each client request to its handler, after what Go's ServeMux does first: a path
 * that is not clean is redirected (spec §1.5), OPTIONS is answered with the CORS headers
 * alone (§1.2), and an unknown route gets the plain 404 (§1.4). */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "base/buf.h"
#include "server/path.h"

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

static bool equals(const char *s, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(s, want, len) == 0;
}

/* Go's html.EscapeString: the five characters it replaces. */
static void html_escape(struct k_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            k_buf_puts(b, "&lt;");
            break;
        case '>':
            k_buf_puts(b, "&gt;");
            break;
        case '&':
            k_buf_puts(b, "&amp;");
            break;
        case '\'':
            k_buf_puts(b, "&#39;");
            break;
        case '"':
            k_buf_puts(b, "&#34;");
            break;
        default:
            k_buf_putc(b, *s);
        }
    }
}

static void redirect_clean(struct srv_request *req, const char *clean, size_t clean_len)
{
    const struct srv_http_request *m = srv_request_msg(req);
    struct srv_arena *arena = srv_request_arena(req);
    char *escaped = srv_url_escape_path(arena, clean, clean_len);
    if (!escaped) {
        srv_api_reply_not_found(req);
        return;
    }
    char *location = escaped;
    if (m->has_query) {
        size_t len = strlen(escaped) + 1 + m->query.len + 1;
        location = srv_arena_alloc(arena, len);
        if (!location) {
            srv_api_reply_not_found(req);
            return;
        }
        snprintf(location, len, "%s?%.*s", escaped, (int)m->query.len, m->query.ptr);
    }
    struct srv_api_headers hs;
    srv_api_headers_init(&hs);
    srv_api_headers_add(&hs, "Location", location);
    bool with_body = strcmp(m->method, "GET") == 0 || strcmp(m->method, "HEAD") == 0;
    if (!with_body) {
        srv_respond(req, 301, hs.h, hs.n, NULL, 0);
        return;
    }
    srv_api_headers_add(&hs, "Content-Type", "text/html; charset=utf-8");
    /* Go's http.Redirect: the body links the whole Location, HTML-escaped. */
    struct k_buf body;
    k_buf_init(&body);
    k_buf_puts(&body, "<a href=\"");
    html_escape(&body, location);
    k_buf_puts(&body, "\">Moved Permanently</a>.\n\n");
    srv_respond(req, 301, hs.h, hs.n, body.data, body.len);
    k_buf_free(&body);
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
    const struct srv_http_request *m = srv_request_msg(req);
    const char *path = m->path.ptr;
    size_t len = m->path.len;
    char *clean;
    size_t clean_len;
    if (srv_path_clean(srv_request_arena(req), path, len, &clean, &clean_len) < 0) {
        srv_api_reply_not_found(req);
        return;
    }
    if (clean_len != len || memcmp(clean, path, len) != 0) {
        redirect_clean(req, clean, clean_len);
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
