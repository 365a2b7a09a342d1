/* The HTTP/1.1 server ketchd's client API (and later its other endpoints) stands on: a libuv
 * TCP listener whose connections are parsed into requests (http.h) and handed, in order, to
 * one handler callback. The handler answers at once or later (after a raft commit, or when a
 * watch fires), by one full response or a chunked stream. Responses leave each connection in
 * request order, whatever order handlers answer in (pipelining).
 *
 * Threading: everything here runs on the thread of the uv_loop_t given to
 * srv_http_server_new, and every function must be called from it. There are no locks.
 *
 * Lifecycle of a request (the handler's contract):
 *   1. the handler gets req; req and everything reachable from srv_request_msg(req) stay
 *      valid until the handler finishes it;
 *   2. the handler finishes it exactly once: srv_respond() or srv_respond_take(), or
 *      srv_stream_begin() then any srv_stream_chunk() then srv_stream_end(); after that call
 *      returns req is gone;
 *   3. if the client goes away first (its FIN, as Go's CloseNotify counts it; a read or write
 *      error; a timeout; a full write queue; server close), the gone callback set with
 *      srv_request_on_gone runs once, at once; req is still valid and still must be finished.
 *      After a FIN the answer is still written if the socket takes it (a client that
 *      half-closes after pipelining gets its answers); otherwise it is dropped.
 *
 * Sketch of a handler that answers after a raft commit and frees a watcher on hang-up:
 *
 *     static void on_request(struct srv_request *req, void *data) {
 *         const struct srv_http_request *m = srv_request_msg(req);
 *         const char *loc;
 *         if (srv_redirect_location(req, &loc) == 1) {
 *             srv_respond_moved(req, loc, cors, 3);
 *             return;
 *         }
 *         if (is_watch(m)) {
 *             struct watch *w = watch_add(data, req);       // keeps req
 *             srv_request_on_gone(req, on_watch_gone, w);   // frees w, then srv_stream_end(req)
 *             srv_stream_begin(req, 200, headers, n);        // headers flushed at once (§5.1)
 *             return;
 *         }
 *         propose(data, req);  // later, on the loop thread: srv_respond(req, 201, h, n, b, len)
 *     } */
#ifndef KETCH_SERVER_HTTP_SERVER_H
#define KETCH_SERVER_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/assert.h"
#include "server/http.h"
#include "server/response.h"
#include "server/tls.h"

struct srv_http_server;
struct srv_request;

/* Called once per request, in arrival order per connection; see the contract above. */
typedef void (*srv_http_handler_cb)(struct srv_request *req, void *data);

/* Called once when req's client is gone before req was finished. */
typedef void (*srv_request_gone_cb)(struct srv_request *req, void *data);

/* Called once srv_http_server_close has closed every socket and freed the server. */
typedef void (*srv_http_server_closed_cb)(void *data);

/* Defaults of struct srv_http_config. */
enum {
    SRV_CONNECTIONS_MAX = 10000,         /* more are accepted and closed at once */
    SRV_PIPELINE_DEPTH = 1,              /* requests per connection at the handler */
    SRV_WRITE_QUEUE_BYTES_MAX = 4 << 20, /* unwritten bytes before a stream drops a reader */
    SRV_IDLE_TIMEOUT_MS = 180000,        /* keep-alive connection with nothing to do */
    SRV_HEAD_TIMEOUT_MS = 30000,         /* first byte to end of head (slowloris); also
                                            the wait for a new connection's first byte */
    SRV_BODY_TIMEOUT_MS = 30000,         /* body bytes stop coming */
    SRV_WRITE_TIMEOUT_MS = 60000,        /* queued bytes stop leaving */
    SRV_LINGER_MS = 2000,                /* after our FIN, wait this long for the client's */
    SRV_CONN_INPUT_BYTES = 64 << 10,     /* unparsed bytes buffered per connection */
};

struct srv_http_config {
    srv_http_handler_cb handler; /* required */
    void *data;                  /* passed to handler */
    struct srv_http_limits limits;
    size_t connections_max;
    /* How many requests of one connection the handler may hold at once. 1 (the default)
     * serves them one after another as Go's net/http does, so a pipelined GET sees the
     * pipelined PUT before it; more lets handlers work in parallel (answers still go out in
     * order). */
    size_t pipeline_depth;
    size_t write_queue_bytes_max;
    uint64_t idle_timeout_ms;
    uint64_t head_timeout_ms;
    uint64_t body_timeout_ms;
    uint64_t write_timeout_ms;
    uint64_t linger_ms;
    /* Counters the server adds to (loop thread only), or NULL: bytes read from clients and
     * bytes handed to the socket for them (for /metrics); with TLS, the bytes on the wire. */
    uint64_t *bytes_in;
    uint64_t *bytes_out;
    /* NULL: plain HTTP. Else HTTPS with this server context (tls.h; borrowed, must outlive
     * the server): every connection starts with a handshake, which must finish within
     * head_timeout_ms; a failed one (a client without an acceptable certificate when the
     * context verifies clients, plain HTTP, garbage) is logged and the connection closed
     * after the TLS alert. */
    struct srv_tls_ctx *tls;
};

/* Fills c with the defaults above; the caller sets handler and data. */
void srv_http_config_default(struct srv_http_config *c);

/* Creates a server on loop (borrowed; must outlive the server). The config is copied.
 * Sets SIGPIPE to be ignored, process-wide: libuv writes with writev(), and a client that
 * hung up would otherwise kill the process. Returns 0 and *out, K_ECONFIG if the config is
 * unusable (no handler, zero limits, a TLS context not made for SRV_TLS_SERVER), or a
 * negated errno from signal(). */
K_MUST_USE int srv_http_server_new(uv_loop_t *loop, const struct srv_http_config *config,
                                   struct srv_http_server **out);

/* Binds and listens on ip ("127.0.0.1", "::1", "0.0.0.0") and port (0: the kernel picks;
 * see srv_http_server_port). Returns 0, or a negated errno / libuv code such as
 * UV_EADDRINUSE (k_strerror and uv_strerror both name it). May be called once. */
K_MUST_USE int srv_http_server_listen(struct srv_http_server *s, const char *ip, uint16_t port);

/* The bound port, 0 before a successful listen. */
uint16_t srv_http_server_port(const struct srv_http_server *s);

/* Open connections right now. */
size_t srv_http_server_connections(const struct srv_http_server *s);

/* Stops listening, drops every connection (unfinished requests get their gone callback),
 * and frees the server once all its handles are closed, then calls cb (may be NULL).
 * Requests still held by handlers stay valid until finished. s is invalid after the call. */
void srv_http_server_close(struct srv_http_server *s, srv_http_server_closed_cb cb, void *data);

/* The parsed request; valid as long as req. */
const struct srv_http_request *srv_request_msg(const struct srv_request *req);

/* The request's arena (budget: limits.arena_bytes + 2 x body): scratch for the handler,
 * freed with req. */
struct srv_arena *srv_request_arena(struct srv_request *req);

/* Sets the gone callback (replacing any earlier one). Not called if req is already gone:
 * check srv_request_is_gone. */
void srv_request_on_gone(struct srv_request *req, srv_request_gone_cb cb, void *data);

/* True once the client is gone; anything written for req is then discarded. */
bool srv_request_is_gone(const struct srv_request *req);

/* Copies the client's address into *addr (for logs). Returns 0, or K_ESTOPPED when the
 * client is gone, or a libuv error code. */
K_MUST_USE int srv_request_peer(const struct srv_request *req, struct sockaddr_storage *addr);

/* Asks that the connection be closed after this request's response. */
void srv_request_close_after(struct srv_request *req);

/* Finishes req with a complete response: status line, headers (borrowed for the call; sent
 * sorted and canonicalised as Go does, see struct srv_header; the server adds Date,
 * Content-Length and Connection as needed), and
 * body[0..body_len) (borrowed for the call; copied). A HEAD request gets the headers and the
 * Content-Length of the body (none if body_len is 0, as Go does) but no body; 1xx/204/304
 * get neither. req is gone on return.
 * Never fails from the handler's view: if the connection is gone or memory runs short, the
 * response is dropped along with the connection. */
void srv_respond(struct srv_request *req, int status, const struct srv_header *headers,
                 size_t header_count, const char *body, size_t body_len);

/* As srv_respond, but takes body (from malloc) instead of copying it: the server frees it
 * once written, or at once if it is not sent (gone client, HEAD, 204...). For large bodies
 * such as a serialized 10 MiB value. body may be NULL when body_len is 0. */
void srv_respond_take(struct srv_request *req, int status, const struct srv_header *headers,
                      size_t header_count, char *body, size_t body_len);

/* Starts a streamed response: the head goes out at once (after the responses before it),
 * with Transfer-Encoding: chunked for HTTP/1.1; for HTTP/1.0 the body is sent raw and the
 * connection closes at the end. Headers are borrowed for the call. */
void srv_stream_begin(struct srv_request *req, int status, const struct srv_header *headers,
                      size_t header_count);

/* Sends data[0..len) (borrowed; copied) as one chunk of a begun stream; len 0 sends nothing.
 * Returns 0, or K_ESTOPPED when the client is gone (the gone callback has run or is running)
 * or was just dropped because more than write_queue_bytes_max were waiting for it; the
 * handler should then end the stream. */
K_MUST_USE int srv_stream_chunk(struct srv_request *req, const char *data, size_t len);

/* Ends a begun stream (the terminating zero-length chunk) and finishes req. */
void srv_stream_end(struct srv_request *req);

#endif
