/* Formatting of response heads the way Go's net/http writes them for etcd: the status line,
 * the handler's headers, then Date, Content-Length or Transfer-Encoding, then Connection;
 * and the plain-text answers of the HTTP layer itself (400/413/414/417/431/501/503/505).
 * Pure: the caller passes the time. Not here: queueing and writing (conn.c, respond.c). */
#ifndef KETCH_SERVER_RESPONSE_H
#define KETCH_SERVER_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "server/http.h"

/* "Date: Sun, 22 Nov 2026 20:20:26 GMT\r\n" is 37 bytes. */
enum { SRV_DATE_LINE_BYTES = 40 };

/* Headers per response beyond the ones the server adds; more are dropped. */
enum { SRV_RESPONSE_HEADERS_MAX = 64 };

/* One response header, both strings NUL-terminated and borrowed for the call. Names are
 * written in Go's canonical form ("X-Etcd-Cluster-ID" goes out as "X-Etcd-Cluster-Id", as
 * etcd's does) and sorted by it, as Go's Header.Write does; a name with a space, ':' or
 * CR/LF, or a value with CR or LF, is dropped. */
struct srv_header {
    const char *name;
    const char *value;
};

/* Returns the reason phrase Go uses for status ("OK", "Not Found"), "" if unknown. */
const char *srv_status_reason(int status);

/* True for statuses that never carry a body or Content-Length: 1xx, 204, 304. */
bool srv_status_has_no_body(int status);

/* Writes the "Date: ...\r\n" line for time t into out (SRV_DATE_LINE_BYTES). */
void srv_date_line(time_t t, char *out);

enum srv_framing {
    SRV_FRAMING_LENGTH,  /* Content-Length: body_len (left out for 1xx/204/304) */
    SRV_FRAMING_CHUNKED, /* Transfer-Encoding: chunked */
    SRV_FRAMING_NONE, /* neither header: a HEAD of nothing, or an HTTP/1.0 stream ended by close */
};

enum srv_connection_header {
    SRV_CONNECTION_NONE,
    SRV_CONNECTION_CLOSE,      /* "Connection: close" */
    SRV_CONNECTION_KEEP_ALIVE, /* "Connection: keep-alive" (an HTTP/1.0 client asked) */
};

struct srv_head_spec {
    unsigned version_minor; /* 0 or 1: the status line echoes the request's version */
    int status;
    const struct srv_header *headers;
    size_t header_count;
    const char *date_line; /* from srv_date_line */
    enum srv_framing framing;
    uint64_t body_len; /* for SRV_FRAMING_LENGTH */
    enum srv_connection_header connection;
};

/* Returns the number of bytes srv_head_format writes (excluding nothing: no NUL). */
size_t srv_head_bytes(const struct srv_head_spec *h);

/* Writes the head into out, which has srv_head_bytes(h) bytes; returns that count. */
size_t srv_head_format(const struct srv_head_spec *h, char *out);

/* Formats the head into out[0..cap) if it fits; returns its length either way (over cap:
 * format it with srv_head_bytes and srv_head_format instead). */
size_t srv_head_format_into(const struct srv_head_spec *h, char *out, size_t cap);

/* Writes Go's answer to a request it could not parse into out (at least 512 bytes) and
 * returns its length: "HTTP/1.1 <code> <reason>\r\nContent-Type: text/plain;
 * charset=utf-8\r\nConnection: close\r\n\r\n<body>", or for 417 Go's
 * "Connection: close", Date and "Content-Length: 0". */
size_t srv_error_format(const struct srv_http_error *e, const char *date_line, char *out);

#endif
