/* Go's cleanPath redirect (net/http/server.go ServeMux.Handler, http.Redirect, htmlEscape,
 * hexEscapeNonASCII), written fresh. */
#include "redirect.h"

#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "server/path.h"
#include "server/url.h"

enum { REDIRECT_HEADERS_MAX = 16 };

int srv_redirect_location(struct srv_request *req, const char **location)
{
    const struct srv_http_request *m = srv_request_msg(req);
    struct srv_arena *a = srv_request_arena(req);
    if (m->path.len == 1 && m->path.ptr[0] == '*') return 0; /* "OPTIONS *" */
    char *clean;
    size_t clean_len;
    int rc = srv_path_clean(a, m->path.ptr, m->path.len, &clean, &clean_len);
    if (rc < 0) return rc;
    if (clean_len == m->path.len && memcmp(clean, m->path.ptr, clean_len) == 0) return 0;
    char *esc = srv_url_escape_path(a, clean, clean_len);
    if (esc == NULL) return K_ELIMIT;
    size_t esc_len = strlen(esc);
    size_t q = m->query.len > 0 ? 1 + m->query.len : 0;
    char *loc = srv_arena_alloc(a, esc_len + q + 1);
    if (loc == NULL) return K_ELIMIT;
    memcpy(loc, esc, esc_len);
    if (q > 0) {
        loc[esc_len] = '?';
        memcpy(loc + esc_len + 1, m->query.ptr, m->query.len);
    }
    loc[esc_len + q] = '\0';
    *location = loc;
    return 1;
}

/* Go's hexEscapeNonASCII (lower-case hex: strconv.AppendInt base 16; observed on etcd);
 * returns NULL when the arena budget is spent. */
static char *hex_escape_non_ascii(struct srv_arena *a, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (const char *p = s; *p != '\0'; p++)
        n += (unsigned char)*p >= 0x80 ? 3 : 1;
    char *out = srv_arena_alloc(a, n + 1);
    if (out == NULL) return NULL;
    size_t o = 0;
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x80) {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return out;
}

/* The GET body: <a href="...">Moved Permanently</a>.\n\n with Go's htmlEscape. */
static char *moved_body(struct srv_arena *a, const char *location, size_t *len)
{
    static const char head[] = "<a href=\"";
    static const char tail[] = "\">Moved Permanently</a>.\n\n";
    size_t n = sizeof(head) - 1 + sizeof(tail) - 1;
    for (const char *p = location; *p != '\0'; p++)
        n += strchr("&'<>\"", *p) != NULL ? 5 : 1;
    char *out = srv_arena_alloc(a, n + 1);
    if (out == NULL) return NULL;
    size_t o = 0;
    memcpy(out, head, sizeof(head) - 1);
    o += sizeof(head) - 1;
    for (const char *p = location; *p != '\0'; p++) {
        const char *rep = NULL;
        switch (*p) {
        case '&':
            rep = "&amp;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&#34;";
            break;
        default:
            break;
        }
        if (rep != NULL) {
            size_t rl = strlen(rep);
            memcpy(out + o, rep, rl);
            o += rl;
        } else {
            out[o++] = *p;
        }
    }
    memcpy(out + o, tail, sizeof(tail) - 1);
    o += sizeof(tail) - 1;
    out[o] = '\0';
    *len = o;
    return out;
}

void srv_respond_moved(struct srv_request *req, const char *location,
                       const struct srv_header *extra, size_t extra_count)
{
    const struct srv_http_request *m = srv_request_msg(req);
    struct srv_arena *a = srv_request_arena(req);
    bool get_or_head = m->method_id == HTTP_GET || m->method_id == HTTP_HEAD;
    struct srv_header headers[REDIRECT_HEADERS_MAX];
    size_t n = 0;
    for (size_t i = 0; i < extra_count && n < REDIRECT_HEADERS_MAX - 2; i++)
        headers[n++] = extra[i];
    if (get_or_head)
        headers[n++] = (struct srv_header){ "Content-Type", "text/html; charset=utf-8" };
    const char *loc = hex_escape_non_ascii(a, location);
    size_t body_len = 0;
    /* Go writes the body for GET only; a HEAD then has no Content-Length (observed). */
    const char *body = m->method_id == HTTP_GET ? moved_body(a, location, &body_len) : "";
    if (loc == NULL || body == NULL) {
        srv_respond(req, 500, extra, extra_count, NULL, 0); /* arena spent: unlikely */
        return;
    }
    headers[n++] = (struct srv_header){ "Location", loc };
    srv_respond(req, 301, headers, n, body, body_len);
}
