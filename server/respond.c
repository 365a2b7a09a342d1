/* The handler's side of http_server.h: request handles, full responses, chunked streams, gone
 * notification. Output for a request that is not yet at the head of its connection waits in
 * the request (out_first) and is written when its turn comes (conn.c, conn_flush). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/log.h"
#include "server/server_int.h"

struct srv_request *srv__request_new(struct srv_conn *c, struct srv_http_request *msg)
{
    struct srv_request *req = k_xcalloc(1, sizeof(*req));
    req->conn = c;
    req->msg = msg;
    req->state = SRV__REQ_HANDLER;
    c->refs++;
    return req;
}

void srv__request_free(struct srv_request *req)
{
    k_assert(!req->queued);
    struct srv__out *o = req->out_first;
    while (o != NULL) {
        struct srv__out *next = o->next;
        srv__out_free(o);
        o = next;
    }
    struct srv_conn *c = req->conn;
    srv_http_request_free(req->msg);
    free(req);
    srv__conn_unref(c);
}

void srv__request_mark_gone(struct srv_request *req)
{
    if (req->gone) return;
    req->gone = true;
    if (req->gone_cb != NULL) req->gone_cb(req, req->gone_data);
}

/* True if bytes for req can still reach the client. */
static bool request_writable(const struct srv_request *req)
{
    return req->queued && !req->conn->closing && !req->conn->shutting_down;
}

void srv__out_free(struct srv__out *o)
{
    free(o->ext);
    free(o);
}

static void out_link(struct srv_request *req, struct srv__out *o)
{
    if (req->out_last == NULL) {
        req->out_first = o;
    } else {
        req->out_last->next = o;
    }
    req->out_last = o;
    req->out_bytes += o->len;
}

int srv__out_append(struct srv_request *req, const char *a, size_t alen, const char *b, size_t blen,
                    const char *c, size_t clen)
{
    size_t len = alen + blen + clen;
    if (len < alen || len > SIZE_MAX - sizeof(struct srv__out)) return K_ELIMIT;
    struct srv__out *o = k_trymalloc(sizeof(*o) + len);
    if (o == NULL) return -ENOMEM;
    o->next = NULL;
    o->len = len;
    o->ext = NULL;
    if (alen > 0) memcpy(o->data, a, alen);
    if (blen > 0) memcpy(o->data + alen, b, blen);
    if (clen > 0) memcpy(o->data + alen + blen, c, clen);
    out_link(req, o);
    return 0;
}

/* Ends the handler's part: a queued request is popped (and freed) by the pump once its
 * bytes are handed to libuv; an unqueued one (its connection is gone) is freed now. */
static void request_finish(struct srv_request *req)
{
    req->state = SRV__REQ_FINISHED;
    if (!req->queued) {
        srv__request_free(req);
        return;
    }
    srv__conn_pump(req->conn);
}

static enum srv_connection_header request_connection_header(struct srv_request *req)
{
    const struct srv_http_request *m = req->msg;
    if (req->close_after || !m->keep_alive) {
        req->close_after = true;
        /* Go writes "Connection: close" for HTTP/1.1 and nothing for a plain 1.0 client. */
        return m->version_minor >= 1 ? SRV_CONNECTION_CLOSE : SRV_CONNECTION_NONE;
    }
    /* After the client's FIN we close once this is out, but, like Go (observed: etcd's 201
     * to a half-closed client has no Connection header), without saying so. */
    if (req->conn->read_eof) req->close_after = true;
    return m->version_minor == 0 ? SRV_CONNECTION_KEEP_ALIVE : SRV_CONNECTION_NONE;
}

static bool request_wants_body(const struct srv_request *req, int status)
{
    return req->msg->method_id != HTTP_HEAD && !srv_status_has_no_body(status);
}

/* Formats the head (and body) into one output chunk; drops the connection on failure. */
static void request_emit_head(struct srv_request *req, const struct srv_head_spec *spec,
                              const char *body, size_t body_len)
{
    char scratch[2048]; /* most heads fit: formatted once, copied once */
    size_t head_len = srv_head_format_into(spec, scratch, sizeof(scratch));
    char *head = scratch;
    if (head_len > sizeof(scratch)) {
        head = k_trymalloc(head_len);
        if (head != NULL) k_assert(srv_head_format(spec, head) == head_len);
    }
    int rc = head == NULL ? -ENOMEM : 0;
    if (rc == 0) rc = srv__out_append(req, head, head_len, body, body_len, NULL, 0);
    if (head != scratch) free(head);
    if (rc < 0) {
        k_log_warn("http", "dropping a connection: no memory for a %zu-byte response",
                   head_len + body_len);
        srv__conn_abort(req->conn);
    }
}

/* Queues the head of a full response and, if inline_body, its body. Returns true when the
 * body still has to follow (the caller appends it), false when there is nothing more to
 * send (gone, HEAD, bodiless status, or the connection was dropped). */
static bool respond_head(struct srv_request *req, int status, const struct srv_header *headers,
                         size_t header_count, const char *body, size_t body_len, bool inline_body)
{
    if (!request_writable(req)) return false;
    struct srv_head_spec spec = {
        .version_minor = req->msg->version_minor,
        .status = status,
        .headers = headers,
        .header_count = header_count,
        .date_line = srv__server_date_line(req->conn->server),
        .framing = SRV_FRAMING_LENGTH,
        .body_len = body_len,
        .connection = request_connection_header(req),
    };
    /* Go gives a HEAD the Content-Length of what the handler wrote, and none if it wrote
     * nothing (observed: etcd's HEAD of a key vs. its HEAD redirect). */
    if (req->msg->method_id == HTTP_HEAD && body_len == 0) spec.framing = SRV_FRAMING_NONE;
    bool with_body = request_wants_body(req, status) && body_len > 0;
    bool inline_now = with_body && inline_body;
    request_emit_head(req, &spec, inline_now ? body : NULL, inline_now ? body_len : 0);
    return with_body && !inline_body && !req->conn->closing;
}

void srv_respond(struct srv_request *req, int status, const struct srv_header *headers,
                 size_t header_count, const char *body, size_t body_len)
{
    if (K_NEVER(req->state != SRV__REQ_HANDLER)) {
        srv__conn_abort(req->conn);
        return;
    }
    (void)respond_head(req, status, headers, header_count, body, body_len, true);
    request_finish(req);
}

void srv_respond_take(struct srv_request *req, int status, const struct srv_header *headers,
                      size_t header_count, char *body, size_t body_len)
{
    if (K_NEVER(req->state != SRV__REQ_HANDLER)) {
        free(body);
        srv__conn_abort(req->conn);
        return;
    }
    if (respond_head(req, status, headers, header_count, body, body_len, false)) {
        k_assert(body_len <= UINT32_MAX); /* one uv_buf_t */
        struct srv__out *o = k_xmalloc(sizeof(*o));
        o->next = NULL;
        o->len = body_len;
        o->ext = body; /* freed after the write, or with the request */
        out_link(req, o);
    } else {
        free(body);
    }
    request_finish(req);
}

void srv_stream_begin(struct srv_request *req, int status, const struct srv_header *headers,
                      size_t header_count)
{
    if (K_NEVER(req->state != SRV__REQ_HANDLER)) {
        srv__conn_abort(req->conn);
        return;
    }
    req->state = SRV__REQ_STREAMING;
    if (!request_writable(req)) return;
    enum srv_connection_header conn_header = request_connection_header(req);
    req->raw_stream = req->msg->version_minor == 0;
    if (req->raw_stream) {
        /* HTTP/1.0 has no chunks: the body runs until we close (Go does the same). */
        req->close_after = true;
        conn_header = SRV_CONNECTION_NONE;
    }
    struct srv_head_spec spec = {
        .version_minor = req->msg->version_minor,
        .status = status,
        .headers = headers,
        .header_count = header_count,
        .date_line = srv__server_date_line(req->conn->server),
        .framing = req->raw_stream ? SRV_FRAMING_NONE : SRV_FRAMING_CHUNKED,
        .connection = conn_header,
    };
    request_emit_head(req, &spec, NULL, 0);
    srv__conn_pump(req->conn);
}

int srv_stream_chunk(struct srv_request *req, const char *data, size_t len)
{
    if (K_NEVER(req->state != SRV__REQ_STREAMING)) {
        srv__conn_abort(req->conn);
        return K_ESTOPPED;
    }
    if (req->gone || !request_writable(req)) return K_ESTOPPED;
    if (len == 0 || !request_wants_body(req, 200)) return 0;
    struct srv_conn *c = req->conn;
    size_t waiting = c->write_bytes + req->out_bytes;
    if (waiting > c->server->config.write_queue_bytes_max) {
        k_log_debug("http", "dropping a client that does not read (%zu bytes waiting)", waiting);
        srv__conn_abort(c);
        return K_ESTOPPED;
    }
    int rc;
    if (req->raw_stream) {
        rc = srv__out_append(req, data, len, NULL, 0, NULL, 0);
    } else {
        char size_line[24];
        int n = snprintf(size_line, sizeof(size_line), "%zx\r\n", len);
        rc = srv__out_append(req, size_line, (size_t)n, data, len, "\r\n", 2);
    }
    if (rc < 0) {
        srv__conn_abort(c);
        return K_ESTOPPED;
    }
    srv__conn_pump(c);
    return 0;
}

void srv_stream_end(struct srv_request *req)
{
    if (K_NEVER(req->state != SRV__REQ_STREAMING)) {
        srv__conn_abort(req->conn);
        return;
    }
    if (request_writable(req) && !req->raw_stream && request_wants_body(req, 200)) {
        static const char last_chunk[] = "0\r\n\r\n";
        if (srv__out_append(req, last_chunk, sizeof(last_chunk) - 1, NULL, 0, NULL, 0) < 0)
            srv__conn_abort(req->conn);
    }
    request_finish(req);
}

const struct srv_http_request *srv_request_msg(const struct srv_request *req)
{
    return req->msg;
}

struct srv_arena *srv_request_arena(struct srv_request *req)
{
    return &req->msg->arena;
}

void srv_request_on_gone(struct srv_request *req, srv_request_gone_cb cb, void *data)
{
    req->gone_cb = cb;
    req->gone_data = data;
}

bool srv_request_is_gone(const struct srv_request *req)
{
    return req->gone;
}

int srv_request_peer(const struct srv_request *req, struct sockaddr_storage *addr)
{
    if (req->conn->closing) return K_ESTOPPED;
    int len = sizeof(*addr);
    return uv_tcp_getpeername(&req->conn->tcp, (struct sockaddr *)addr, &len);
}

void srv_request_close_after(struct srv_request *req)
{
    req->close_after = true;
}
