/* Response heads of response.h, in the order Go's net/http emits them for etcd (observed on
 * etcd 3.4.23: handler headers sorted by the handler, then Date, then Content-Length or
 * Transfer-Encoding, then Connection). */
#include "response.h"

#include <inttypes.h>
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

/* Writes the head into out when out is not NULL; returns its length either way. */
static size_t head_emit(const struct srv_head_spec *h, char *out)
{
    char line[128];
    size_t n = 0;
#define EMIT(s, len)                                                                               \
    do {                                                                                           \
        if (out != NULL) memcpy(out + n, (s), (len));                                              \
        n += (len);                                                                                \
    } while (0)
#define EMIT_STR(s) EMIT((s), strlen(s))
    int l = snprintf(line, sizeof(line), "HTTP/1.%u %d %s\r\n", h->version_minor == 0 ? 0 : 1,
                     h->status, srv_status_reason(h->status));
    EMIT(line, (size_t)l);
    for (size_t i = 0; i < h->header_count; i++) {
        const struct srv_header *x = &h->headers[i];
        if (!header_is_safe(x)) continue;
        EMIT_STR(x->name);
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
    return head_emit(h, NULL);
}

size_t srv_head_format(const struct srv_head_spec *h, char *out)
{
    return head_emit(h, out);
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
