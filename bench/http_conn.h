/* One keep-alive HTTP/1.1 client connection on libuv, for ketch-bench: sends requests the
 * caller formats, parses responses with http-parser (Content-Length and chunked bodies,
 * long-poll and streaming watches), and keeps a FIFO of requests in flight so responses
 * are matched to requests in order (pipelining). Not a general HTTP client: no redirects,
 * no TLS, no 100-continue, responses to HEAD are not supported.
 *
 * Lifecycle: bench_conn_init() once, then bench_conn_open() / bench_conn_send() / ...;
 * a connection that fails or is closed reports through failed_cb once its handle is
 * closed, after which bench_conn_open() may be called again (reconnect). */
#ifndef KETCH_BENCH_HTTP_CONN_H
#define KETCH_BENCH_HTTP_CONN_H

#include <http_parser.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/assert.h"
#include "base/buf.h"

struct bench_conn;

enum {
    BENCH_CONN_INFLIGHT_MAX = 64,        /* requests in flight per connection (pipeline) */
    BENCH_CONN_READ_BYTES = 16384,       /* read buffer, embedded in the connection */
    BENCH_CONN_BODY_BYTES_MAX = 1 << 20, /* body bytes kept per response; more are counted */
};

/* One parsed response, borrowed: valid only during response_cb. */
struct bench_response {
    int status;          /* HTTP status, e.g. 201 */
    const char *body;    /* NUL-terminated; empty when body_cb consumed the body */
    size_t body_len;     /* bytes in body (at most BENCH_CONN_BODY_BYTES_MAX) */
    uint64_t etcd_index; /* X-Etcd-Index header, 0 when absent */
    uint64_t tag;        /* the tag given to bench_conn_send() for this request */
    uint64_t start_ns;   /* uv_hrtime() when the request was sent */
};

/* The connection is established; requests may be sent. (A failed connect goes to failed_cb.) */
typedef void (*bench_conn_connect_cb)(struct bench_conn *c);
/* The status line and headers of the oldest request's response have arrived (a long-poll
 * watch sends them when the watch is registered). Optional. */
typedef void (*bench_conn_headers_cb)(struct bench_conn *c, int status, uint64_t etcd_index);
/* A piece of the decoded body (chunk framing removed). Optional: when set, bodies are
 * passed here as they arrive and not accumulated for response_cb. */
typedef void (*bench_conn_body_cb)(struct bench_conn *c, const char *data, size_t len);
typedef void (*bench_conn_response_cb)(struct bench_conn *c, const struct bench_response *r);
/* The connection is gone or could not be made (err < 0: a libuv error such as
 * UV_ECONNREFUSED, UV_EOF when the server closed it, K_EPROTO for a malformed or unexpected
 * response; 0 after bench_conn_close()). inflight requests were dropped unanswered. The
 * handle is closed: bench_conn_open() may be called from inside this callback. */
typedef void (*bench_conn_failed_cb)(struct bench_conn *c, int err, size_t inflight);

struct bench_conn_cbs {
    bench_conn_connect_cb connect_cb;
    bench_conn_headers_cb headers_cb; /* may be NULL */
    bench_conn_body_cb body_cb;       /* may be NULL */
    bench_conn_response_cb response_cb;
    bench_conn_failed_cb failed_cb;
};

enum bench_conn_state {
    BENCH_CONN_IDLE, /* never opened, or closed and reported */
    BENCH_CONN_CONNECTING,
    BENCH_CONN_OPEN,
    BENCH_CONN_CLOSING, /* handle closing; failed_cb comes next */
};

struct bench_conn_inflight {
    uint64_t tag;
    uint64_t start_ns;
};

/* Embeddable; callers read the public counters and set data, the rest is private. */
struct bench_conn {
    void *data;          /* caller's context */
    uint64_t bytes_sent; /* request bytes written, over all reconnects */
    uint64_t bytes_recv; /* response bytes read, over all reconnects */
    enum bench_conn_state state;
    /* private */
    uv_loop_t *loop;
    const struct bench_conn_cbs *cbs;
    struct sockaddr_in addr;
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    bool writing;             /* write_req and wbuf_flight are in use */
    struct k_buf wbuf_flight; /* bytes handed to uv_write, owned by libuv until write_cb */
    struct k_buf wbuf_next;   /* bytes queued behind them */
    http_parser parser;
    http_parser_settings settings;
    struct bench_conn_inflight inflight[BENCH_CONN_INFLIGHT_MAX]; /* ring, oldest at head */
    size_t inflight_head;
    size_t inflight_count;
    struct k_buf body;    /* the current response's body (when no body_cb) */
    uint64_t etcd_index;  /* of the current response */
    bool header_is_index; /* the header field being parsed is X-Etcd-Index */
    int close_err;        /* reported to failed_cb */
    char rbuf[BENCH_CONN_READ_BYTES];
};

/* Prepares c (no I/O yet). cbs is borrowed and must outlive c. */
void bench_conn_init(struct bench_conn *c, uv_loop_t *loop, const struct bench_conn_cbs *cbs);

/* Releases the buffers; c must be IDLE (never opened, or failed_cb has run). */
void bench_conn_deinit(struct bench_conn *c);

/* Starts connecting to addr (copied); connect_cb or failed_cb follows. c must be IDLE. */
void bench_conn_open(struct bench_conn *c, const struct sockaddr_in *addr);

/* Queues one complete request (bytes copied) and remembers tag for its response. c must be
 * OPEN with fewer than BENCH_CONN_INFLIGHT_MAX requests in flight. Returns 0, or a negative
 * libuv error after which the connection fails (failed_cb follows). */
K_MUST_USE int bench_conn_send(struct bench_conn *c, const char *bytes, size_t len, uint64_t tag);

/* The same, with the request's start time given (an open-loop generator passes the time the
 * request was due, so its latency includes the time it waited for a free connection). */
K_MUST_USE int bench_conn_send_at(struct bench_conn *c, const char *bytes, size_t len, uint64_t tag,
                                  uint64_t start_ns);

/* Closes the connection; failed_cb(c, 0, inflight) follows. No-op unless CONNECTING/OPEN. */
void bench_conn_close(struct bench_conn *c);

/* Requests in flight, and the send time of the oldest (0 if none), for timeouts. */
size_t bench_conn_inflight(const struct bench_conn *c);
uint64_t bench_conn_oldest_start_ns(const struct bench_conn *c);

#endif
