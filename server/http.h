/* HTTP/1.x request parsing on Debian's http-parser (callback API) into complete requests,
 * with every size bounded: request-target, head, header count, body. Bytes go in as they
 * arrive, split anywhere; several pipelined requests may come out of one read, one at a time,
 * in order. Pure: no sockets, no clock (conn.c drives it; the fuzzer and tests feed it).
 * Not here: query/form decoding (form.c), responses (response.c), connections (conn.c). */
#ifndef KETCH_SERVER_HTTP_H
#define KETCH_SERVER_HTTP_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "server/arena.h"
#include "server/url.h"

/* Defaults of struct srv_http_limits. */
enum {
    SRV_HTTP_URL_BYTES_MAX = 8192,      /* request-target; etcd takes 4096-byte lines */
    SRV_HTTP_HEAD_BYTES_MAX = 64 << 10, /* target + header names and values */
    SRV_HTTP_HEADERS_MAX = 100,         /* header lines per request */
    SRV_HTTP_ARENA_BYTES = 64 << 10,    /* request arena before the body is counted */
    SRV_HTTP_METHOD_BYTES_MAX = 24,     /* longest method token accepted */
};
/* Go's form limit (10 MiB): etcd's effective v2 request body limit (spec §1.6). */
#define SRV_HTTP_BODY_BYTES_MAX ((size_t)10 << 20)

/* method_id of a method http-parser does not know ("FOO", "get"): Go accepts any token as a
 * method and etcd answers 405, so we do too (the method token is swapped for a known one
 * while http-parser reads the line, and restored in the request). */
#define SRV_HTTP_METHOD_OTHER ((enum http_method)255)

struct srv_http_limits {
    size_t url_bytes_max;  /* longer request-target: 414 */
    size_t head_bytes_max; /* longer head (target, names, values, trailers): 431 */
    size_t headers_max;    /* more header lines: 431 */
    size_t body_bytes_max; /* longer body: the request is delivered with body_too_large */
    size_t arena_bytes;    /* each request's arena budget for the handler, on top of what
                              its own head needs and 2 x its body length */
};

/* Fills l with the defaults above. */
void srv_http_limits_default(struct srv_http_limits *l);

struct srv_http_header {
    struct srv_str name;  /* as sent (compare case-insensitively); NUL-terminated */
    struct srv_str value; /* leading/trailing blanks removed; NUL-terminated */
};

/* One parsed request. Everything but body lives in arena; body is its own allocation.
 * Owned by whoever took it from the parser; freed with srv_http_request_free. */
struct srv_http_request {
    struct srv_arena arena;          /* for the request's whole life; handlers may use it */
    const char *method;              /* e.g. "GET"; upper case as http-parser knows it */
    enum http_method method_id;      /* http-parser's number, or SRV_HTTP_METHOD_OTHER */
    unsigned version_major;          /* 1 */
    unsigned version_minor;          /* 0 or 1 */
    struct srv_str target;           /* raw request-target, NUL-terminated */
    struct srv_str path_raw;         /* path as sent (escaped), inside target */
    struct srv_str path;             /* percent-decoded path ('+' kept), NUL-terminated;
                                        may contain NUL bytes from %00 */
    struct srv_str query;            /* raw query after '?', inside target; may be empty */
    bool has_query;                  /* a '?' was present */
    struct srv_http_header *headers; /* in arrival order */
    size_t header_count;
    const char *host;         /* first Host value or NULL */
    const char *content_type; /* first Content-Type value or NULL */
    bool keep_alive;          /* HTTP/1.1 without "close", or 1.0 with "keep-alive" */
    bool expect_continue;     /* "Expect: 100-continue" */
    bool chunked;             /* body came with Transfer-Encoding: chunked */
    bool has_content_length;
    uint64_t content_length; /* as declared; meaningful if has_content_length */
    bool upgrade;            /* Upgrade/CONNECT: nothing after it is parsed */
    bool body_too_large;     /* body passed body_bytes_max: body is empty, the rest of
                                the body was not read, the connection must close */
    char *body;              /* NULL when body_len is 0 or body_too_large */
    size_t body_len;
};

/* Frees r, its arena and its body. NULL is a no-op. */
void srv_http_request_free(struct srv_http_request *r);

/* Returns the first value of the header named name (case-insensitive), or NULL. */
const char *srv_http_request_header(const struct srv_http_request *r, const char *name);

/* A protocol error: what to answer (Go's plain-text format) before closing. */
struct srv_http_error {
    int status;         /* 400, 413, 414, 417, 431, 501, 503, 505 */
    const char *reason; /* status line text after the code, e.g. "Bad Request" or
                           "Bad Request: missing required Host header"; static */
    const char *body;   /* static plain-text body */
};

struct srv_http_parser_head; /* private: the head being collected */

/* Embeddable; fields private to http.c. */
/* Go reads at most this much of a body its handler left unread, so the connection can carry
 * the next request; with more left it answers Connection: close (net/http's
 * maxPostHandlerReadBytes). */
enum { SRV_HTTP_DRAIN_BYTES_MAX = 256 << 10 };

struct srv_http_parser {
    http_parser hp;
    const struct srv_http_limits *limits; /* borrowed; outlives the parser */
    struct srv_http_request *cur;         /* being parsed, owned by the parser */
    struct srv_http_request *ready;       /* complete, waiting for srv_http_parser_take */
    struct srv_http_parser_head *head;    /* scratch for the head in progress */
    size_t body_cap;                      /* bytes allocated at cur->body */
    struct srv_http_error error;          /* set when feed failed */
    bool failed;                          /* an error was returned; no more input */
    bool stopped;                         /* too-large body or upgrade: no more input */
    bool discarding;                      /* reading a too-large body's rest to drop it */
    uint64_t discard_left;                /* chunked: bytes it may still drop */
    bool in_message;                      /* bytes of an unfinished request were seen */
    bool in_body;                         /* ... and its head is complete */
    bool method_done;                     /* the current request's method token was read */
    size_t method_len;                    /* bytes in method_buf */
    char method_buf[SRV_HTTP_METHOD_BYTES_MAX + 1]; /* method token while it arrives */
    char *method_other;                             /* an unknown method's name for cur, or NULL */
};

/* Sets up p for one connection's requests. Allocates nothing until bytes arrive. */
void srv_http_parser_init(struct srv_http_parser *p, const struct srv_http_limits *limits);

/* Frees every partial or untaken request. */
void srv_http_parser_deinit(struct srv_http_parser *p);

enum srv_http_feed_result {
    SRV_HTTP_NEED_MORE = 0, /* all bytes consumed; no complete request yet */
    SRV_HTTP_READY = 1,     /* a request is complete: take it, then feed the rest */
};

/* Parses data[0..len). *consumed is set to the bytes used, which is less than len only when
 * SRV_HTTP_READY stops after a request (the remaining bytes start the next one). Returns:
 * SRV_HTTP_NEED_MORE; SRV_HTTP_READY (call srv_http_parser_take before feeding again);
 * K_EPROTO for a bad request, with srv_http_parser_error() saying what to answer (nothing
 * after it can be parsed); K_ESTOPPED when the previous request ended the parse (body too
 * large, upgrade): the bytes are to be ignored. */
K_MUST_USE int srv_http_parser_feed(struct srv_http_parser *p, const char *data, size_t len,
                                    size_t *consumed);

/* Hands over the complete request (caller frees with srv_http_request_free), or NULL. */
struct srv_http_request *srv_http_parser_take(struct srv_http_parser *p);

/* The error of the last K_EPROTO. Borrowed from p. */
const struct srv_http_error *srv_http_parser_error(const struct srv_http_parser *p);

/* The request whose head is complete and whose body is still coming (to answer "Expect:
 * 100-continue"), or NULL. Borrowed from p. */
const struct srv_http_request *srv_http_parser_pending_head(const struct srv_http_parser *p);

/* True while a request has begun but is not complete (its head or body is still coming). */
bool srv_http_parser_in_message(const struct srv_http_parser *p);

/* True while the head of the current request is complete and its body is still coming. */
bool srv_http_parser_in_body(const struct srv_http_parser *p);

#endif
