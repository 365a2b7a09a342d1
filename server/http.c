/* Request parsing of http.h. http-parser hands us the head in pieces that point into the
 * caller's read buffer; they are appended to one scratch buffer (bounded by head_bytes_max)
 * and copied into the request's arena when the head is complete, so a read buffer can be
 * reused at once. The parser is paused after each message so pipelined requests come out
 * one at a time. */
#include "http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "base/err.h"

/* Head scratch kept between requests; a bigger one is freed after its request. */
enum { HEAD_SCRATCH_KEEP_BYTES = 4096 };

struct head_hdr {
    size_t name_off;
    size_t name_len;
    size_t value_off;
    size_t value_len;
};

struct srv_http_parser_head {
    char *buf; /* target, then each name and value, back to back */
    size_t len;
    size_t cap;
    struct head_hdr *hdrs; /* limits->headers_max entries */
    size_t nhdr;
    size_t url_len;
    bool in_value;    /* the last callback was a header value */
    bool in_trailers; /* headers are complete: these are chunked trailers, counted only */
    size_t trailer_bytes;
};

void srv_http_limits_default(struct srv_http_limits *l)
{
    l->url_bytes_max = SRV_HTTP_URL_BYTES_MAX;
    l->head_bytes_max = SRV_HTTP_HEAD_BYTES_MAX;
    l->headers_max = SRV_HTTP_HEADERS_MAX;
    l->body_bytes_max = SRV_HTTP_BODY_BYTES_MAX;
    l->arena_bytes = SRV_HTTP_ARENA_BYTES;
}

void srv_http_request_free(struct srv_http_request *r)
{
    if (r == NULL) return;
    srv_arena_deinit(&r->arena);
    free(r->body);
    free(r);
}

const char *srv_http_request_header(const struct srv_http_request *r, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < r->header_count; i++) {
        const struct srv_http_header *h = &r->headers[i];
        if (h->name.len == n && strncasecmp(h->name.ptr, name, n) == 0) return h->value.ptr;
    }
    return NULL;
}

static struct srv_http_parser *parser_of(http_parser *hp)
{
    return hp->data;
}

/* Records the error to answer and makes the callback fail, which halts http-parser. */
static int parser_fail(struct srv_http_parser *p, int status, const char *reason, const char *body)
{
    p->error = (struct srv_http_error){ status, reason, body };
    p->failed = true;
    return -1;
}

static int fail_bad_request(struct srv_http_parser *p)
{
    return parser_fail(p, 400, "Bad Request", "400 Bad Request");
}

static int fail_head_too_large(struct srv_http_parser *p)
{
    return parser_fail(p, 431, "Request Header Fields Too Large",
                       "431 Request Header Fields Too Large");
}

static int on_message_begin(http_parser *hp)
{
    struct srv_http_parser *p = parser_of(hp);
    k_assert(p->cur == NULL);
    k_assert(p->ready == NULL);
    struct srv_http_request *r = k_xcalloc(1, sizeof(*r));
    srv_arena_init(&r->arena, p->limits->arena_bytes);
    p->cur = r;
    p->body_cap = 0;
    p->discarding = false;
    if (p->head == NULL) {
        p->head = k_xcalloc(1, sizeof(*p->head));
        p->head->hdrs = k_xcalloc(p->limits->headers_max, sizeof(*p->head->hdrs));
    }
    struct srv_http_parser_head *h = p->head;
    h->len = 0;
    h->nhdr = 0;
    h->url_len = 0;
    h->in_value = false;
    h->in_trailers = false;
    h->trailer_bytes = 0;
    p->in_message = true;
    p->in_body = false;
    return 0;
}

/* Appends bytes of the head, keeping the whole head under head_bytes_max. */
static int head_append(struct srv_http_parser *p, const char *at, size_t len)
{
    struct srv_http_parser_head *h = p->head;
    if (len > p->limits->head_bytes_max - h->len) return fail_head_too_large(p);
    if (h->len + len > h->cap) {
        size_t cap = h->cap == 0 ? 1024 : h->cap;
        while (cap < h->len + len)
            cap *= 2;
        if (cap > p->limits->head_bytes_max) cap = p->limits->head_bytes_max;
        h->buf = k_xrealloc(h->buf, cap); /* bounded by head_bytes_max */
        h->cap = cap;
    }
    memcpy(h->buf + h->len, at, len);
    h->len += len;
    return 0;
}

static int on_url(http_parser *hp, const char *at, size_t len)
{
    struct srv_http_parser *p = parser_of(hp);
    struct srv_http_parser_head *h = p->head;
    k_assert(h->nhdr == 0);
    if (len > p->limits->url_bytes_max - h->url_len)
        return parser_fail(p, 414, "Request-URI Too Long", "414 Request-URI Too Long");
    h->url_len += len;
    return head_append(p, at, len);
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
    struct srv_http_parser *p = parser_of(hp);
    struct srv_http_parser_head *h = p->head;
    if (h->in_trailers) {
        /* Trailers of a chunked body: Go drops them for forms; count them, keep nothing. */
        h->trailer_bytes += len;
        return h->trailer_bytes > p->limits->head_bytes_max ? fail_head_too_large(p) : 0;
    }
    if (h->nhdr == 0 || h->in_value) {
        if (h->nhdr == p->limits->headers_max) return fail_head_too_large(p);
        h->hdrs[h->nhdr++] = (struct head_hdr){ .name_off = h->len };
        h->in_value = false;
    }
    struct head_hdr *cur = &h->hdrs[h->nhdr - 1];
    cur->name_len += len;
    return head_append(p, at, len);
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
    struct srv_http_parser *p = parser_of(hp);
    struct srv_http_parser_head *h = p->head;
    if (h->in_trailers) {
        h->trailer_bytes += len;
        return h->trailer_bytes > p->limits->head_bytes_max ? fail_head_too_large(p) : 0;
    }
    if (K_NEVER(h->nhdr == 0)) return fail_bad_request(p);
    struct head_hdr *cur = &h->hdrs[h->nhdr - 1];
    if (!h->in_value) {
        cur->value_off = h->len;
        cur->value_len = 0;
        h->in_value = true;
    }
    cur->value_len += len;
    return head_append(p, at, len);
}

/* Copies the head out of the scratch buffer into the request's arena. */
static int head_to_request(struct srv_http_parser *p, struct srv_http_request *r)
{
    struct srv_http_parser_head *h = p->head;
    /* The head's own copy (strings, decoded path, header array, NULs and alignment) is paid
     * on top of arena_bytes, which stays the handler's scratch. */
    srv_arena_budget_add(&r->arena, 3 * h->len + (h->nhdr + 1) * (sizeof(*r->headers) + 64));
    char *target = srv_arena_strndup(&r->arena, h->buf, h->url_len);
    r->headers = srv_arena_alloc(&r->arena, (h->nhdr ? h->nhdr : 1) * sizeof(*r->headers));
    if (target == NULL || r->headers == NULL) return K_ELIMIT;
    r->target = (struct srv_str){ target, h->url_len };
    for (size_t i = 0; i < h->nhdr; i++) {
        const struct head_hdr *s = &h->hdrs[i];
        const char *v = h->buf + s->value_off;
        size_t vlen = s->value_len;
        while (vlen > 0 && (v[0] == ' ' || v[0] == '\t')) {
            v++;
            vlen--;
        }
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        char *name = srv_arena_strndup(&r->arena, h->buf + s->name_off, s->name_len);
        char *value = srv_arena_strndup(&r->arena, v, vlen);
        if (name == NULL || value == NULL) return K_ELIMIT;
        r->headers[i] = (struct srv_http_header){ { name, s->name_len }, { value, vlen } };
    }
    r->header_count = h->nhdr;
    return 0;
}

/* RFC 7230 token characters, the only ones Go accepts in a header name. */
static bool header_name_is_token(const struct srv_str *name)
{
    if (name->len == 0) return false;
    for (size_t i = 0; i < name->len; i++) {
        unsigned char c = (unsigned char)name->ptr[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
        if (!ok) return false;
    }
    return true;
}

/* Go's checks on a parsed head (net/http readRequest and the server's Host rule). */
static int head_validate(struct srv_http_parser *p, struct srv_http_request *r)
{
    if (r->version_major != 1)
        return parser_fail(p, 505, "HTTP Version Not Supported", "505 HTTP Version Not Supported");
    struct srv_url_target t;
    if (srv_url_split_target(r->target.ptr, r->target.len, &t) < 0) return fail_bad_request(p);
    r->path_raw = t.path_raw;
    r->query = t.query;
    r->has_query = t.has_query;
    char *path;
    int rc = srv_url_unescape(&r->arena, t.path_raw.ptr, t.path_raw.len, SRV_UNESCAPE_PATH, &path,
                              &r->path.len, NULL);
    if (rc == K_ELIMIT) return fail_head_too_large(p);
    if (rc < 0) return fail_bad_request(p);
    r->path.ptr = path;
    size_t hosts = 0;
    for (size_t i = 0; i < r->header_count; i++) {
        const struct srv_http_header *hd = &r->headers[i];
        if (!header_name_is_token(&hd->name))
            return parser_fail(p, 400, "Bad Request: invalid header name",
                               "400 Bad Request: invalid header name");
        if (strcasecmp(hd->name.ptr, "host") == 0) {
            hosts++;
            if (r->host == NULL) r->host = hd->value.ptr;
        } else if (strcasecmp(hd->name.ptr, "content-type") == 0) {
            if (r->content_type == NULL) r->content_type = hd->value.ptr;
        } else if (strcasecmp(hd->name.ptr, "expect") == 0) {
            if (strcasecmp(hd->value.ptr, "100-continue") == 0) {
                r->expect_continue = true;
            } else if (hd->value.len > 0) {
                return parser_fail(p, 417, "Expectation Failed", "");
            }
        }
    }
    if (hosts > 1) return fail_bad_request(p);
    if (hosts == 0 && r->version_minor >= 1)
        return parser_fail(p, 400, "Bad Request: missing required Host header",
                           "400 Bad Request: missing required Host header");
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    struct srv_http_parser *p = parser_of(hp);
    struct srv_http_request *r = p->cur;
    if (head_to_request(p, r) < 0) return fail_head_too_large(p);
    if (p->method_other != NULL) {
        r->method = srv_arena_strndup(&r->arena, p->method_other, strlen(p->method_other));
        if (r->method == NULL) return fail_head_too_large(p);
        r->method_id = SRV_HTTP_METHOD_OTHER;
    } else {
        r->method = http_method_str((enum http_method)hp->method);
        r->method_id = (enum http_method)hp->method;
    }
    r->version_major = hp->http_major;
    r->version_minor = hp->http_minor;
    r->keep_alive = http_should_keep_alive(hp) != 0;
    r->chunked = (hp->flags & F_CHUNKED) != 0;
    r->has_content_length = (hp->flags & F_CONTENTLENGTH) != 0;
    r->content_length = r->has_content_length ? hp->content_length : 0;
    int rc = head_validate(p, r);
    if (rc < 0) return rc;
    p->head->in_trailers = true;
    p->in_body = true;
    if (hp->upgrade || hp->method == HTTP_CONNECT) {
        /* No protocol switch here: answer the request, then close (nothing after it parses). */
        r->upgrade = true;
        r->keep_alive = false;
        return 2;
    }
    if (r->has_content_length && r->content_length > p->limits->body_bytes_max) {
        r->body_too_large = true;
        /* Go's handler reads body_bytes_max + 1 bytes of it; a rest under the drain limit
         * is read and dropped and the connection goes on. */
        if (!r->expect_continue &&
            r->content_length - p->limits->body_bytes_max - 1 < SRV_HTTP_DRAIN_BYTES_MAX) {
            p->discarding = true;
            return 0;
        }
        r->keep_alive = false;
        return 2; /* deliver it now; the body is never read */
    }
    if (r->has_content_length && r->content_length > 0) {
        r->body = k_trymalloc(r->content_length);
        if (r->body == NULL)
            return parser_fail(p, 503, "Service Unavailable", "503 Service Unavailable");
        p->body_cap = r->content_length;
    }
    return 0;
}

/* A body too long even to drain: deliver the request now and read nothing after it. */
static int body_overflow(struct srv_http_parser *p, struct srv_http_request *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
    r->body_too_large = true;
    r->keep_alive = false;
    p->ready = r;
    p->cur = NULL;
    p->stopped = true;
    p->in_message = false;
    p->in_body = false;
    p->discarding = false;
    return -1;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
    struct srv_http_parser *p = parser_of(hp);
    struct srv_http_request *r = p->cur;
    if (p->discarding) {
        if (r->has_content_length) return 0; /* its length was checked up front */
        if (len <= p->discard_left) {
            p->discard_left -= len;
            return 0;
        }
        return body_overflow(p, r);
    }
    if (len > p->limits->body_bytes_max - r->body_len) {
        /* Only a chunked body can get here: a declared length was checked up front. Like
         * Go, read body_bytes_max + 1 bytes, then drop up to the drain limit more. */
        size_t over = len - (p->limits->body_bytes_max - r->body_len);
        free(r->body);
        r->body = NULL;
        r->body_len = 0;
        r->body_too_large = true;
        if (!r->expect_continue && over <= SRV_HTTP_DRAIN_BYTES_MAX + 1) {
            p->discarding = true;
            p->discard_left = SRV_HTTP_DRAIN_BYTES_MAX + 1 - over;
            return 0;
        }
        return body_overflow(p, r);
    }
    if (r->body_len + len > p->body_cap) {
        size_t cap = p->body_cap == 0 ? 4096 : p->body_cap;
        while (cap < r->body_len + len)
            cap *= 2;
        if (cap > p->limits->body_bytes_max) cap = p->limits->body_bytes_max;
        char *grown = k_trymalloc(cap);
        if (grown == NULL)
            return parser_fail(p, 503, "Service Unavailable", "503 Service Unavailable");
        if (r->body_len > 0) memcpy(grown, r->body, r->body_len);
        free(r->body);
        r->body = grown;
        p->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

static void method_reset(struct srv_http_parser *p)
{
    p->method_done = false;
    p->method_len = 0;
    free(p->method_other);
    p->method_other = NULL;
}

static int on_message_complete(http_parser *hp)
{
    struct srv_http_parser *p = parser_of(hp);
    struct srv_http_request *r = p->cur;
    k_assert(r != NULL);
    k_assert(!r->has_content_length || r->body_too_large || r->upgrade ||
             r->body_len == r->content_length);
    /* The form decoder may need up to the body's size again, plus its field array. */
    srv_arena_budget_add(&r->arena, 2 * r->body_len);
    if ((r->body_too_large && !r->keep_alive) || r->upgrade) p->stopped = true;
    p->discarding = false;
    p->ready = r;
    p->cur = NULL;
    p->in_message = false;
    p->in_body = false;
    method_reset(p);
    if (p->head->cap > HEAD_SCRATCH_KEEP_BYTES) {
        /* One big head must not pin its buffer for the connection's life. */
        free(p->head->buf);
        p->head->buf = NULL;
        p->head->cap = 0;
    }
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void srv_http_parser_init(struct srv_http_parser *p, const struct srv_http_limits *limits)
{
    memset(p, 0, sizeof(*p));
    http_parser_init(&p->hp, HTTP_REQUEST);
    p->hp.data = p;
    p->limits = limits;
}

void srv_http_parser_deinit(struct srv_http_parser *p)
{
    method_reset(p);
    srv_http_request_free(p->cur);
    srv_http_request_free(p->ready);
    p->cur = NULL;
    p->ready = NULL;
    if (p->head != NULL) {
        free(p->head->buf);
        free(p->head->hdrs);
        free(p->head);
        p->head = NULL;
    }
}

/* Maps http-parser's own errors to Go's answers. */
static void parser_error_from_errno(struct srv_http_parser *p, enum http_errno e)
{
    switch (e) {
    case HPE_HEADER_OVERFLOW:
        (void)fail_head_too_large(p);
        break;
    case HPE_INVALID_TRANSFER_ENCODING:
        (void)parser_fail(p, 501, "Not Implemented", "Unsupported transfer encoding");
        break;
    default:
        (void)fail_bad_request(p);
        break;
    }
}

static bool method_is_token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool method_is_known(const char *name)
{
    for (int m = 0;; m++) {
        const char *known = http_method_str((enum http_method)m);
        if (strcmp(known, "<unknown>") == 0) return false;
        if (strcmp(known, name) == 0) return true;
    }
}

static size_t parser_execute(struct srv_http_parser *p, const char *data, size_t len)
{
    return http_parser_execute(&p->hp, &parser_settings, data, len);
}

/* Collects the method token at the start of a request so that a method http-parser does not
 * know can be swapped for "GET" while it parses the line (the name is restored in the
 * request). Returns the bytes of data taken; 0 means http-parser stopped (check its errno). */
static size_t method_collect(struct srv_http_parser *p, const char *data, size_t len)
{
    size_t i = 0;
    if (p->method_len == 0) {
        /* CR/LF between pipelined requests: http-parser skips them itself. */
        while (i < len && (data[i] == '\r' || data[i] == '\n'))
            i++;
        if (i > 0) return parser_execute(p, data, i);
    }
    while (i < len && method_is_token_char((unsigned char)data[i]) &&
           p->method_len < SRV_HTTP_METHOD_BYTES_MAX)
        p->method_buf[p->method_len++] = data[i++];
    if (i == len) return i; /* the token may go on in the next read */
    p->method_done = true;
    p->method_buf[p->method_len] = '\0';
    if (data[i] == ' ' && p->method_len > 0 && !method_is_known(p->method_buf)) {
        p->method_other = k_xstrndup(p->method_buf, p->method_len);
        return parser_execute(p, "GET", 3) == 3 ? i : 0;
    }
    /* Known, or not a token: http-parser sees the bytes as sent (and may reject them). */
    return parser_execute(p, p->method_buf, p->method_len) == p->method_len ? i : 0;
}

int srv_http_parser_feed(struct srv_http_parser *p, const char *data, size_t len, size_t *consumed)
{
    *consumed = 0;
    k_assert(p->ready == NULL); /* the caller takes each request before feeding more */
    if (p->failed) return K_EPROTO;
    if (p->stopped) return K_ESTOPPED;
    if (len == 0) return SRV_HTTP_NEED_MORE;
    size_t n = 0;
    while (!p->method_done && n < len && HTTP_PARSER_ERRNO(&p->hp) == HPE_OK) {
        size_t took = method_collect(p, data + n, len - n);
        if (took == 0) break;
        n += took;
    }
    if (p->method_done && n < len && HTTP_PARSER_ERRNO(&p->hp) == HPE_OK)
        n += parser_execute(p, data + n, len - n);
    enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
    *consumed = n;
    if (e == HPE_PAUSED) {
        http_parser_pause(&p->hp, 0);
        k_assert(p->ready != NULL);
        return SRV_HTTP_READY;
    }
    if (p->ready != NULL && p->stopped) {
        *consumed = len; /* the rest belongs to a body nobody reads */
        return SRV_HTTP_READY;
    }
    if (p->failed) return K_EPROTO;
    if (e != HPE_OK) {
        parser_error_from_errno(p, e);
        return K_EPROTO;
    }
    if (p->ready != NULL) return SRV_HTTP_READY; /* upgrade / too large: complete at once */
    k_assert(n == len);
    return SRV_HTTP_NEED_MORE;
}

struct srv_http_request *srv_http_parser_take(struct srv_http_parser *p)
{
    struct srv_http_request *r = p->ready;
    p->ready = NULL;
    return r;
}

const struct srv_http_error *srv_http_parser_error(const struct srv_http_parser *p)
{
    return &p->error;
}

bool srv_http_parser_in_message(const struct srv_http_parser *p)
{
    return p->in_message;
}

bool srv_http_parser_in_body(const struct srv_http_parser *p)
{
    return p->in_body;
}

const struct srv_http_request *srv_http_parser_pending_head(const struct srv_http_parser *p)
{
    return p->in_body ? p->cur : NULL;
}
