/* Keep-alive HTTP/1.1 client connection; see http_conn.h. Writes go out with uv_try_write
 * when the socket has room (the common case for small requests, and no copy), otherwise
 * through one uv_write at a time from a double buffer, so a connection never has more than
 * one write request and never allocates per request once its buffers have grown. */
#include "http_conn.h"

#include <string.h>
#include <strings.h>

#include "base/err.h"

static void conn_fail(struct bench_conn *c, int err);

static struct bench_conn *conn_of_parser(http_parser *p)
{
    return p->data;
}

static int on_message_begin(http_parser *p)
{
    struct bench_conn *c = conn_of_parser(p);
    k_buf_reset(&c->body);
    c->etcd_index = 0;
    c->header_is_index = false;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    /* A name split across two reads is rare enough to be treated as "not X-Etcd-Index". */
    static const char name[] = "X-Etcd-Index";
    struct bench_conn *c = conn_of_parser(p);
    c->header_is_index = len == sizeof(name) - 1 && strncasecmp(at, name, len) == 0;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct bench_conn *c = conn_of_parser(p);
    if (!c->header_is_index) return 0;
    for (size_t i = 0; i < len; i++) {
        if (at[i] >= '0' && at[i] <= '9')
            c->etcd_index = c->etcd_index * 10 + (uint64_t)(at[i] - '0');
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct bench_conn *c = conn_of_parser(p);
    if (c->inflight_count == 0) return -1; /* a response nobody asked for */
    if (c->cbs->headers_cb) c->cbs->headers_cb(c, (int)p->status_code, c->etcd_index);
    return c->state == BENCH_CONN_OPEN ? 0 : -1;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct bench_conn *c = conn_of_parser(p);
    if (c->cbs->body_cb) {
        c->cbs->body_cb(c, at, len);
        return c->state == BENCH_CONN_OPEN ? 0 : -1;
    }
    size_t room = BENCH_CONN_BODY_BYTES_MAX - c->body.len;
    k_buf_append(&c->body, at, len < room ? len : room);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct bench_conn *c = conn_of_parser(p);
    if (c->inflight_count == 0) return -1;
    struct bench_conn_inflight req = c->inflight[c->inflight_head];
    c->inflight_head = (c->inflight_head + 1) % BENCH_CONN_INFLIGHT_MAX;
    c->inflight_count--;
    struct bench_response r = {
        .status = (int)p->status_code,
        .body = c->body.data ? c->body.data : "",
        .body_len = c->body.len,
        .etcd_index = c->etcd_index,
        .tag = req.tag,
        .start_ns = req.start_ns,
    };
    bool keep_alive = http_should_keep_alive(p);
    c->cbs->response_cb(c, &r);
    if (c->state != BENCH_CONN_OPEN) return -1;
    if (!keep_alive) {
        conn_fail(c, UV_EOF);
        return -1;
    }
    return 0;
}

void bench_conn_init(struct bench_conn *c, uv_loop_t *loop, const struct bench_conn_cbs *cbs)
{
    k_assert(cbs->connect_cb && cbs->response_cb && cbs->failed_cb);
    memset(c, 0, sizeof(*c));
    c->loop = loop;
    c->cbs = cbs;
    c->state = BENCH_CONN_IDLE;
    k_buf_init(&c->wbuf_flight);
    k_buf_init(&c->wbuf_next);
    k_buf_init(&c->body);
    http_parser_settings_init(&c->settings);
    c->settings.on_message_begin = on_message_begin;
    c->settings.on_header_field = on_header_field;
    c->settings.on_header_value = on_header_value;
    c->settings.on_headers_complete = on_headers_complete;
    c->settings.on_body = on_body;
    c->settings.on_message_complete = on_message_complete;
}

void bench_conn_deinit(struct bench_conn *c)
{
    k_assert(c->state == BENCH_CONN_IDLE);
    k_buf_free(&c->wbuf_flight);
    k_buf_free(&c->wbuf_next);
    k_buf_free(&c->body);
}

static void on_close(uv_handle_t *h)
{
    struct bench_conn *c = h->data;
    k_assert(c->state == BENCH_CONN_CLOSING);
    k_assert(!c->writing); /* libuv runs write callbacks before the close callback */
    size_t dropped = c->inflight_count;
    c->inflight_count = 0;
    c->inflight_head = 0;
    k_buf_reset(&c->wbuf_flight);
    k_buf_reset(&c->wbuf_next);
    c->state = BENCH_CONN_IDLE;
    c->cbs->failed_cb(c, c->close_err, dropped);
}

static void conn_fail(struct bench_conn *c, int err)
{
    if (c->state != BENCH_CONN_OPEN && c->state != BENCH_CONN_CONNECTING) return;
    c->state = BENCH_CONN_CLOSING;
    c->close_err = err;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

void bench_conn_close(struct bench_conn *c)
{
    conn_fail(c, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct bench_conn *c = h->data;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct bench_conn *c = s->data;
    if (c->state != BENCH_CONN_OPEN) return;
    if (nread < 0) {
        conn_fail(c, (int)nread);
        return;
    }
    c->bytes_recv += (uint64_t)nread;
    size_t done = http_parser_execute(&c->parser, &c->settings, buf->base, (size_t)nread);
    if (c->state != BENCH_CONN_OPEN) return; /* a callback closed it */
    if (c->parser.http_errno != HPE_OK || done != (size_t)nread) conn_fail(c, K_EPROTO);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct bench_conn *c = req->data;
    if (c->state != BENCH_CONN_CONNECTING) return; /* closed meanwhile */
    if (status < 0) {
        conn_fail(c, status);
        return;
    }
    c->state = BENCH_CONN_OPEN;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        conn_fail(c, rc);
        return;
    }
    c->cbs->connect_cb(c);
}

void bench_conn_open(struct bench_conn *c, const struct sockaddr_in *addr)
{
    k_assert(c->state == BENCH_CONN_IDLE);
    c->addr = *addr;
    k_assert(uv_tcp_init(c->loop, &c->tcp) == 0); /* only fails for bad flags */
    c->tcp.data = c;
    c->connect_req.data = c;
    c->write_req.data = c;
    c->state = BENCH_CONN_CONNECTING;
    /* Small requests must leave at once, not wait for Nagle. */
    int rc = uv_tcp_nodelay(&c->tcp, 1);
    if (rc == 0)
        rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&c->addr,
                            on_connect);
    if (rc < 0) conn_fail(c, rc);
}

static void conn_flush(struct bench_conn *c);

static void on_write(uv_write_t *req, int status)
{
    struct bench_conn *c = req->data;
    k_assert(c->writing);
    c->writing = false;
    k_buf_reset(&c->wbuf_flight);
    if (c->state != BENCH_CONN_OPEN) return;
    if (status < 0) {
        conn_fail(c, status);
        return;
    }
    conn_flush(c);
}

static void conn_flush(struct bench_conn *c)
{
    if (c->writing || c->wbuf_next.len == 0) return;
    struct k_buf t = c->wbuf_flight;
    c->wbuf_flight = c->wbuf_next;
    c->wbuf_next = t;
    uv_buf_t b = uv_buf_init(c->wbuf_flight.data, (unsigned)c->wbuf_flight.len);
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        conn_fail(c, rc);
        return;
    }
    c->writing = true;
}

int bench_conn_send(struct bench_conn *c, const char *bytes, size_t len, uint64_t tag)
{
    return bench_conn_send_at(c, bytes, len, tag, uv_hrtime());
}

int bench_conn_send_at(struct bench_conn *c, const char *bytes, size_t len, uint64_t tag,
                       uint64_t start_ns)
{
    k_assert(c->state == BENCH_CONN_OPEN);
    k_assert(c->inflight_count < BENCH_CONN_INFLIGHT_MAX);
    size_t slot = (c->inflight_head + c->inflight_count) % BENCH_CONN_INFLIGHT_MAX;
    c->inflight[slot].tag = tag;
    c->inflight[slot].start_ns = start_ns;
    c->inflight_count++;
    c->bytes_sent += len;
    size_t sent = 0;
    if (!c->writing && c->wbuf_next.len == 0) {
        uv_buf_t b = uv_buf_init((char *)bytes, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n < 0 && n != UV_EAGAIN) {
            conn_fail(c, n);
            return n;
        }
        if (n > 0) sent = (size_t)n;
    }
    if (sent < len) k_buf_append(&c->wbuf_next, bytes + sent, len - sent);
    conn_flush(c);
    return c->state == BENCH_CONN_OPEN ? 0 : c->close_err;
}

size_t bench_conn_inflight(const struct bench_conn *c)
{
    return c->inflight_count;
}

uint64_t bench_conn_oldest_start_ns(const struct bench_conn *c)
{
    return c->inflight_count ? c->inflight[c->inflight_head].start_ns : 0;
}
