/* Response heads of response.h, in the order Go's net/http emits them for etcd (observed on
 * etcd 3.4.23: handler headers sorted by canonical name, then Date, then Content-Length or
 * Transfer-Encoding, then Connection). */
#include "response.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

const char *srv_status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Request Entity Too Large";
    case 414:
        return "Request URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "";
    }
}

bool srv_status_has_no_body(int status)
{
    return (status >= 100 && status < 200) || status == 204 || status == 304;
}

void srv_date_line(time_t t, char *out)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, SRV_DATE_LINE_BYTES, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
}

static bool header_is_safe(const struct srv_header *h)
{
    return h->name != NULL && h->value != NULL && h->name[0] != '\0' &&
           strpbrk(h->name, "\r\n: ") == NULL && strpbrk(h->value, "\r\n") == NULL;
}

/* Go's textproto.CanonicalMIMEHeaderKey for byte c at position i of a token name. */
static char canonical_char(const char *name, size_t i)
{
    char c = name[i];
    bool upper = i == 0 || name[i - 1] == '-';
    if (upper && c >= 'a' && c <= 'z') return (char)(c - 'a' + 'A');
    if (!upper && c >= 'A' && c <= 'Z') return (char)(c - 'A' + 'a');
    return c;
}

/* RFC 7230 token bytes, looked up once per byte (every response's header names pass here). */
static bool token_byte(unsigned char c)
{
    static bool table[256];
    static bool built;
    if (!built) {
        for (int i = 0; i < 256; i++) {
            table[i] = (i >= 'a' && i <= 'z') || (i >= 'A' && i <= 'Z') || (i >= '0' && i <= '9') ||
                       (i != 0 && strchr("!#$%&'*+-.^_`|~", i) != NULL);
        }
        built = true; /* the loop thread only: no race */
    }
    return table[c];
}

/* Go leaves a name with bytes outside the token set as it is. */
static bool name_is_token(const char *name)
{
    for (const char *p = name; *p != '\0'; p++) {
        if (!token_byte((unsigned char)*p)) return false;
    }
    return true;
}

enum { CANON_NAME_BYTES = 64 };

struct canon_names;
static int canonical_cmp(const struct canon_names *c, size_t a, size_t b);

/* The safe headers' names in Go's canonical form (a name too long for the scratch keeps
 * pointing at the original, canonicalised when written), and their indexes sorted by that
 * name (stable, so repeated names keep their order), as Go's Header.Write sorts them.
 * Returns how many. */
struct canon_names {
    const char *name[SRV_RESPONSE_HEADERS_MAX];
    size_t len[SRV_RESPONSE_HEADERS_MAX];
    bool raw[SRV_RESPONSE_HEADERS_MAX]; /* name is the original, to canonicalise on output */
    char buf[SRV_RESPONSE_HEADERS_MAX][CANON_NAME_BYTES];
};

/* Compares headers a and b by canonical name. */
static int canonical_cmp(const struct canon_names *c, size_t a, size_t b)
{
    if (!c->raw[a] && !c->raw[b]) return strcmp(c->name[a], c->name[b]);
    for (size_t i = 0;; i++) {
        char ca = c->name[a][i] == '\0' ? '\0'
                  : c->raw[a]           ? canonical_char(c->name[a], i)
                                        : c->name[a][i];
        char cb = c->name[b][i] == '\0' ? '\0'
                  : c->raw[b]           ? canonical_char(c->name[b], i)
                                        : c->name[b][i];
        if (ca != cb) return (unsigned char)ca - (unsigned char)cb;
        if (ca == '\0') return 0;
    }
}

static size_t headers_sorted(const struct srv_head_spec *h, size_t *idx, struct canon_names *c)
{
    size_t n = 0;
    for (size_t i = 0; i < h->header_count && n < SRV_RESPONSE_HEADERS_MAX; i++) {
        const char *name = h->headers[i].name;
        if (!header_is_safe(&h->headers[i])) continue;
        size_t len = strlen(name);
        bool token = name_is_token(name);
        c->len[i] = len;
        c->raw[i] = false;
        if (!token) {
            c->name[i] = name;
        } else if (len < CANON_NAME_BYTES) {
            for (size_t j = 0; j < len; j++)
                c->buf[i][j] = canonical_char(name, j);
            c->buf[i][len] = '\0';
            c->name[i] = c->buf[i];
        } else {
            c->name[i] = name;
            c->raw[i] = true;
        }
        size_t k = n++;
        while (k > 0 && canonical_cmp(c, idx[k - 1], i) > 0) {
            idx[k] = idx[k - 1];
            k--;
        }
        idx[k] = i;
    }
    return n;
}

/* Writes the head into out[0..cap) when out is not NULL and it fits; returns its length
 * either way (a length over cap means nothing useful was written). */
static size_t head_emit(const struct srv_head_spec *h, char *out, size_t cap)
{
    char line[128];
    size_t n = 0;
#define EMIT(s, len)                                                                               \
    do {                                                                                           \
        if (out != NULL && n + (len) <= cap) memcpy(out + n, (s), (len));                          \
        n += (len);                                                                                \
    } while (0)
#define EMIT_STR(s) EMIT((s), strlen(s))
    int l = snprintf(line, sizeof(line), "HTTP/1.%d %d %s\r\n", h->version_minor == 0 ? 0 : 1,
                     h->status, srv_status_reason(h->status));
    EMIT(line, (size_t)l);
    size_t idx[SRV_RESPONSE_HEADERS_MAX];
    struct canon_names c;
    size_t count = headers_sorted(h, idx, &c);
    for (size_t k = 0; k < count; k++) {
        size_t i = idx[k];
        const struct srv_header *x = &h->headers[i];
        if (out != NULL && n + c.len[i] <= cap) {
            memcpy(out + n, c.name[i], c.len[i]);
            if (c.raw[i]) {
                for (size_t j = 0; j < c.len[i]; j++)
                    out[n + j] = canonical_char(x->name, j);
            }
        }
        n += c.len[i];
        EMIT(": ", 2);
        EMIT_STR(x->value);
        EMIT("\r\n", 2);
    }
    EMIT_STR(h->date_line);
    if (h->framing == SRV_FRAMING_LENGTH && !srv_status_has_no_body(h->status)) {
        l = snprintf(line, sizeof(line), "Content-Length: %" PRIu64 "\r\n", h->body_len);
        EMIT(line, (size_t)l);
    } else if (h->framing == SRV_FRAMING_CHUNKED) {
        EMIT_STR("Transfer-Encoding: chunked\r\n");
    }
    if (h->connection == SRV_CONNECTION_CLOSE) EMIT_STR("Connection: close\r\n");
    if (h->connection == SRV_CONNECTION_KEEP_ALIVE) EMIT_STR("Connection: keep-alive\r\n");
    EMIT("\r\n", 2);
#undef EMIT_STR
#undef EMIT
    return n;
}

size_t srv_head_bytes(const struct srv_head_spec *h)
{
    return head_emit(h, NULL, 0);
}

size_t srv_head_format(const struct srv_head_spec *h, char *out)
{
    return head_emit(h, out, SIZE_MAX);
}

size_t srv_head_format_into(const struct srv_head_spec *h, char *out, size_t cap)
{
    return head_emit(h, out, cap);
}

size_t srv_error_format(const struct srv_http_error *e, const char *date_line, char *out)
{
    int n;
    if (e->body[0] == '\0') {
        n = sprintf(out, "HTTP/1.1 %d %s\r\nConnection: close\r\n%sContent-Length: 0\r\n\r\n",
                    e->status, e->reason, date_line);
    } else {
        n = sprintf(out,
                    "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    "Connection: close\r\n\r\n%s",
                    e->status, e->reason, e->body);
    }
    return (size_t)n;
}
