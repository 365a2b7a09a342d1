/* One client connection: reads into a bounded input buffer, parses requests while fewer than
 * pipeline_depth are at the handler, hands each to the handler, writes answers strictly in
 * request order, and enforces the timeouts and bounds of http_server.h. All transitions go
 * through srv__conn_pump, which is not re-entered: a handler answering from inside the
 * handler call only asks for another round. With TLS (config.tls) the same machine runs on
 * plaintext: ciphertext read is fed to the connection's engine and decrypted into the input
 * buffer as room allows, and every write is encrypted just before it is handed to libuv. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/log.h"
#include "server/server_int.h"

struct conn_write {
    uv_write_t req;
    struct srv_conn *conn;
    struct srv__out *list;
    size_t bytes;
    size_t nbufs;
    uv_buf_t bufs[];
};

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

static const struct srv_http_config *conn_config(const struct srv_conn *c)
{
    return &c->server->config;
}

static uint64_t conn_now(const struct srv_conn *c)
{
    return uv_now(c->server->loop);
}

void srv__conn_unref(struct srv_conn *c)
{
    k_assert(c->refs > 0);
    if (--c->refs > 0) return;
    k_assert(c->closing);
    k_assert(c->q_first == NULL);
    free(c);
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct srv_conn *c = h->data;
    k_assert(c->handles_open > 0);
    if (--c->handles_open > 0) return;
    struct srv_http_server *s = c->server;
    c->server = NULL;
    srv_tls_free(c->tls); /* nothing reads or writes any more */
    c->tls = NULL;
    srv__server_conn_closed(s);
    srv__conn_unref(c);
}

/* Marks every queued request gone (running gone callbacks) and frees the finished ones. */
static void conn_drop_queue(struct srv_conn *c)
{
    while (c->q_first != NULL) {
        struct srv_request *req = c->q_first;
        c->q_first = req->next;
        c->q_len--;
        req->next = NULL;
        req->queued = false;
        if (req->state == SRV__REQ_FINISHED) {
            srv__request_free(req);
        } else {
            srv__request_mark_gone(req);
        }
    }
    c->q_last = NULL;
    k_assert(c->q_len == 0);
}

void srv__conn_abort(struct srv_conn *c)
{
    if (c->closing) return;
    c->closing = true;
    srv__server_conn_detach(c->server, c);
    uv_timer_stop(&c->timer);
    if (c->reading) uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    free(c->input);
    c->input = NULL;
    c->input_len = 0;
    /* Handles close first, so a gone callback that answers cannot reach a live socket. */
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    conn_drop_queue(c);
    srv_http_parser_deinit(&c->parser);
}

static void conn_write_done(uv_write_t *w, int status)
{
    struct conn_write *cw = w->data;
    struct srv_conn *c = cw->conn;
    struct srv__out *o = cw->list;
    while (o != NULL) {
        struct srv__out *next = o->next;
        srv__out_free(o);
        o = next;
    }
    k_assert(c->write_bytes >= cw->bytes);
    c->write_bytes -= cw->bytes;
    free(cw);
    if (c->closing) return;
    if (status < 0) {
        k_log_debug("http", "write failed: %s", uv_strerror(status));
        srv__conn_abort(c);
        return;
    }
    c->last_progress_ms = conn_now(c);
    srv__conn_pump(c);
}

/* Hands a list of chunks of wire bytes to libuv, which owns them until conn_write_done. */
static void conn_write_wire(struct srv_conn *c, struct srv__out *list)
{
    size_t n = 0;
    size_t bytes = 0;
    for (struct srv__out *o = list; o != NULL; o = o->next) {
        n++;
        bytes += o->len;
    }
    struct conn_write *cw = k_xmalloc(sizeof(*cw) + n * sizeof(uv_buf_t));
    cw->req.data = cw;
    cw->conn = c;
    cw->list = list;
    cw->bytes = bytes;
    cw->nbufs = n;
    size_t i = 0;
    for (struct srv__out *o = list; o != NULL; o = o->next) {
        k_assert(o->len <= UINT32_MAX); /* one uv_buf_t each */
        cw->bufs[i++] = uv_buf_init(o->ext != NULL ? o->ext : o->data, (unsigned)o->len);
    }
    if (c->write_bytes == 0) c->last_progress_ms = conn_now(c);
    c->write_bytes += bytes;
    if (c->server->config.bytes_out) *c->server->config.bytes_out += bytes;
    int rc = uv_write(&cw->req, (uv_stream_t *)&c->tcp, cw->bufs, (unsigned)n, conn_write_done);
    if (rc < 0) {
        /* The callback will not run: undo and drop the connection. */
        c->write_bytes -= bytes;
        cw->list = NULL;
        for (struct srv__out *o = list; o != NULL;) {
            struct srv__out *next = o->next;
            srv__out_free(o);
            o = next;
        }
        free(cw);
        srv__conn_abort(c);
    }
}

/* The engine's waiting ciphertext as one output chunk, or NULL when there is none. */
static struct srv__out *conn_tls_output(struct srv_conn *c)
{
    size_t len;
    char *bytes = srv_tls_take_output(c->tls, &len);
    if (bytes == NULL) return NULL;
    struct srv__out *o = k_xmalloc(sizeof(*o));
    o->next = NULL;
    o->len = len;
    o->ext = bytes;
    return o;
}

/* Writes what the engine has to say by itself: handshake records, alerts. */
static void conn_tls_send_output(struct srv_conn *c)
{
    struct srv__out *o = conn_tls_output(c);
    if (o != NULL) conn_write_wire(c, o);
}

/* Encrypts a list of plaintext chunks (freed here) into one chunk of ciphertext. */
static struct srv__out *conn_tls_seal(struct srv_conn *c, struct srv__out *list)
{
    int rc = 0;
    while (list != NULL) {
        struct srv__out *next = list->next;
        if (rc == 0)
            rc = srv_tls_write(c->tls, list->ext != NULL ? list->ext : list->data, list->len);
        srv__out_free(list);
        list = next;
    }
    if (rc < 0) {
        k_log_debug("http", "TLS write failed: %s", srv_tls_error(c->tls));
        srv__conn_abort(c);
        return NULL;
    }
    return conn_tls_output(c);
}

/* Hands a list of output chunks (plaintext) to libuv; with TLS, encrypted first. */
static void conn_write_list(struct srv_conn *c, struct srv__out *list)
{
    if (c->tls != NULL) list = conn_tls_seal(c, list);
    if (list != NULL) conn_write_wire(c, list);
}

static void conn_write_raw(struct srv_conn *c, const char *data, size_t len)
{
    struct srv__out *o = k_xmalloc(sizeof(*o) + len); /* small, fixed answers only */
    o->next = NULL;
    o->ext = NULL;
    o->len = len;
    memcpy(o->data, data, len);
    conn_write_list(c, o);
}

static void conn_update_timer(struct srv_conn *c);

/* Every answer has left and our FIN with it: wait (linger) for the client's FIN. */
static void conn_shutdown_done(uv_shutdown_t *sh, int status)
{
    struct srv_conn *c = sh->data;
    free(sh);
    if (c->closing) return;
    c->shutdown_done = true;
    if (status < 0 || c->read_eof) {
        srv__conn_abort(c);
        return;
    }
    c->last_progress_ms = conn_now(c);
    conn_update_timer(c);
}

/* Our FIN after the last answer; the client's FIN (or the linger timeout) then closes. */
static void conn_begin_shutdown(struct srv_conn *c)
{
    if (c->shutting_down || c->closing) return;
    c->shutting_down = true;
    c->parse_dead = true;
    conn_drop_queue(c); /* later pipelined requests will never be answered */
    c->input_len = 0;
    c->last_progress_ms = conn_now(c);
    if (c->tls != NULL) {
        srv_tls_close_notify(c->tls); /* nothing if the handshake failed or never ended */
        conn_tls_send_output(c);
        if (c->closing) return;
    }
    uv_shutdown_t *sh = k_xmalloc(sizeof(*sh));
    sh->data = c;
    if (uv_shutdown(sh, (uv_stream_t *)&c->tcp, conn_shutdown_done) < 0) {
        free(sh);
        srv__conn_abort(c);
    }
}

/* Hands the head request's bytes to libuv and pops requests that are finished. */
static void conn_flush(struct srv_conn *c)
{
    while (c->q_first != NULL && !c->closing) {
        struct srv_request *req = c->q_first;
        if (req->out_first != NULL) {
            struct srv__out *list = req->out_first;
            req->out_first = req->out_last = NULL;
            req->out_bytes = 0;
            conn_write_list(c, list);
            if (c->closing) return;
        }
        if (req->state != SRV__REQ_FINISHED) return;
        c->q_first = req->next;
        if (c->q_first == NULL) c->q_last = NULL;
        c->q_len--;
        req->queued = false;
        bool close = req->close_after;
        srv__request_free(req);
        if (close) {
            conn_begin_shutdown(c);
            return;
        }
    }
}

static void conn_enqueue(struct srv_conn *c, struct srv_request *req)
{
    c->pump_again = true; /* it may already have bytes to write (the server's own answers) */
    req->queued = true;
    if (c->q_last == NULL) {
        c->q_first = req;
    } else {
        c->q_last->next = req;
    }
    c->q_last = req;
    c->q_len++;
}

/* Queues the server's own answer to an unparsable request; the connection then closes. */
static void conn_enqueue_error(struct srv_conn *c, const struct srv_http_error *e)
{
    char buf[512];
    size_t n = srv_error_format(e, srv__server_date_line(c->server), buf);
    struct srv_request *req = srv__request_new(c, NULL);
    req->close_after = true;
    req->state = SRV__REQ_FINISHED;
    if (srv__out_append(req, buf, n, NULL, 0, NULL, 0) < 0) {
        srv__request_free(req);
        srv__conn_abort(c);
        return;
    }
    conn_enqueue(c, req);
}

static void conn_dispatch(struct srv_conn *c, struct srv_http_request *m)
{
    struct srv_request *req = srv__request_new(c, m);
    c->requests_seen++;
    if (!m->keep_alive) {
        req->close_after = true;
        c->parse_dead = true; /* nothing after a closing request is read (Go) */
    }
    conn_enqueue(c, req);
    const struct srv_http_config *cfg = conn_config(c);
    cfg->handler(req, cfg->data); /* may finish (and free) req before it returns */
}

/* Parses buffered input while the handler may take more requests. */
static void conn_parse(struct srv_conn *c)
{
    size_t off = 0;
    size_t depth = conn_config(c)->pipeline_depth;
    while (!c->parse_dead && !c->closing && c->q_len < depth && off < c->input_len) {
        size_t used = 0;
        int rc = srv_http_parser_feed(&c->parser, c->input + off, c->input_len - off, &used);
        off += used;
        if (rc == SRV_HTTP_READY) {
            struct srv_http_request *m = srv_http_parser_take(&c->parser);
            if ((m->body_too_large && !m->keep_alive) || m->upgrade) c->parse_dead = true;
            conn_dispatch(c, m);
        } else if (rc == K_EPROTO) {
            c->parse_dead = true;
            conn_enqueue_error(c, srv_http_parser_error(&c->parser));
        } else if (rc < 0) {
            c->parse_dead = true;
        } else {
            k_assert(off == c->input_len);
        }
    }
    if (c->closing) return;
    if (c->parse_dead) off = c->input_len; /* unread bodies and bytes after a close */
    k_assert(off <= c->input_len);
    if (off > 0 && off < c->input_len) memmove(c->input, c->input + off, c->input_len - off);
    c->input_len -= off;
    if (c->input_len == 0) {
        free(c->input); /* idle connections hold no buffer */
        c->input = NULL;
    }
}

/* "Expect: 100-continue": Go sends it when the handler reads the body; our handler gets the
 * body with the request, so it goes when the request's turn comes and its body is awaited. */
static void conn_maybe_continue(struct srv_conn *c)
{
    const struct srv_http_request *p = srv_http_parser_pending_head(&c->parser);
    if (p == NULL || !p->expect_continue || p->version_minor < 1) return;
    if (c->q_len > 0 || c->continue_sent) return;
    c->continue_sent = true;
    conn_write_raw(c, continue_line, sizeof(continue_line) - 1);
}

/* After the client's FIN every unfinished request is gone, as Go's CloseNotify reports it
 * (a watcher is freed at once). Requests pipelined before the FIN are still parsed and
 * dispatched in turn, and then are gone too; answers given anyway are still written. */
static void conn_handle_eof(struct srv_conn *c)
{
    struct srv_request *req = c->q_first;
    while (req != NULL && !c->closing) {
        struct srv_request *next = req->next;
        if (req->state != SRV__REQ_FINISHED && !req->gone) {
            srv__request_mark_gone(req); /* may answer; req stays queued until flushed */
            c->pump_again = true;
        }
        req = next;
    }
}

/* Logs why the TLS connection failed and ends its input: the alert goes out, then the
 * connection closes as after a FIN (requests at the handler are gone). */
static void conn_tls_failed(struct srv_conn *c)
{
    char addr[INET6_ADDRSTRLEN + 8] = "?";
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        char ip[INET6_ADDRSTRLEN] = "";
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof(ip));
            snprintf(addr, sizeof(addr), "%s:%u", ip, ntohs(a->sin_port));
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof(ip));
            snprintf(addr, sizeof(addr), "[%s]:%u", ip, ntohs(a->sin6_port));
        }
    }
    /* etcd logs these at info level too ("rejected connection from ..."). */
    k_log_info("http", "rejected TLS connection from %s: %s", addr, srv_tls_error(c->tls));
    conn_tls_send_output(c);
    if (c->closing) return;
    c->read_eof = true;
    c->parse_dead = true;
    c->input_len = 0;
}

/* Decrypts what the engine holds into the input buffer while there is room (allocating the
 * buffer only when there is something to decrypt) and writes what the engine answers. */
static void conn_tls_pull(struct srv_conn *c)
{
    while (!c->closing && !c->read_eof && !c->parse_dead && !c->shutting_down) {
        if (srv_tls_fed_bytes(c->tls) == 0) break;
        if (c->input_len == SRV_CONN_INPUT_BYTES) break;
        if (c->input == NULL) {
            c->input = k_xmalloc(SRV_CONN_INPUT_BYTES); /* bounded */
            c->input_len = 0;
        }
        size_t n = 0;
        size_t fed = srv_tls_fed_bytes(c->tls);
        int rc = srv_tls_read(c->tls, c->input + c->input_len, SRV_CONN_INPUT_BYTES - c->input_len,
                              &n);
        c->input_len += n;
        if (rc == K_EPROTO) {
            conn_tls_failed(c);
            return;
        }
        conn_tls_send_output(c);
        if (c->closing) return;
        if (rc == SRV_TLS_CLOSED) {
            c->read_eof = true; /* close_notify: the client will send nothing more */
            return;
        }
        if (n == 0 && srv_tls_fed_bytes(c->tls) == fed) break; /* a partial record */
    }
}

static void conn_update_reading(struct srv_conn *c);

void srv__conn_pump(struct srv_conn *c)
{
    if (c->closing) return;
    if (c->pumping) {
        c->pump_again = true;
        return;
    }
    c->pumping = true;
    do {
        c->pump_again = false;
        conn_flush(c);
        if (c->closing) break;
        if (c->tls != NULL) conn_tls_pull(c);
        if (c->closing) break;
        bool was_in_message = srv_http_parser_in_message(&c->parser);
        conn_parse(c);
        if (c->closing) break;
        if (srv_http_parser_in_message(&c->parser) && !was_in_message)
            c->head_start_ms = conn_now(c);
        if (!srv_http_parser_in_message(&c->parser)) c->continue_sent = false;
        conn_maybe_continue(c);
        if (c->closing) break;
        if (c->read_eof) conn_handle_eof(c);
        if (c->closing) break;
        if (c->q_first == NULL && !c->shutting_down &&
            (c->read_eof || (c->parse_dead && c->input_len == 0))) {
            if (c->read_eof && c->write_bytes == 0) {
                srv__conn_abort(c);
            } else {
                conn_begin_shutdown(c);
            }
        }
    } while (c->pump_again && !c->closing);
    c->pumping = false;
    if (c->closing) return;
    conn_update_reading(c);
    conn_update_timer(c);
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct srv_conn *c = h->data;
    if (c->tls != NULL) {
        *buf = uv_buf_init(c->server->tls_read_buf, SRV_CONN_INPUT_BYTES);
        return;
    }
    if (c->input == NULL) {
        c->input = k_xmalloc(SRV_CONN_INPUT_BYTES); /* bounded */
        c->input_len = 0;
    }
    *buf = uv_buf_init(c->input + c->input_len, (unsigned)(SRV_CONN_INPUT_BYTES - c->input_len));
}

/* Ciphertext arrived (in the server's shared buffer): the engine takes a copy. */
static void conn_tls_read(struct srv_conn *c, const char *bytes, size_t len)
{
    if (c->server->config.bytes_in) *c->server->config.bytes_in += len;
    if (c->shutting_down || c->parse_dead) {
        if (!c->shutting_down) srv__conn_pump(c); /* draining, as for plain HTTP */
        return;
    }
    srv_tls_feed(c->tls, bytes, len);
    c->last_progress_ms = conn_now(c);
    srv__conn_pump(c);
}

static void conn_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct srv_conn *c = stream->data;
    if (c->closing) return;
    if (nread == 0) return;
    if (nread == UV_EOF) {
        c->read_eof = true;
        if (c->shutdown_done) {
            srv__conn_abort(c); /* both sides are done */
            return;
        }
        if (c->shutting_down) return; /* conn_shutdown_done closes once our bytes are out */
        srv__conn_pump(c);
        return;
    }
    if (nread < 0) {
        k_log_debug("http", "read failed: %s", uv_strerror((int)nread));
        srv__conn_abort(c);
        return;
    }
    if (c->tls != NULL) {
        conn_tls_read(c, buf->base, (size_t)nread);
        return;
    }
    k_assert((size_t)nread <= SRV_CONN_INPUT_BYTES - c->input_len);
    if (c->shutting_down || c->parse_dead) {
        /* Draining: what comes after our last answer is read and dropped. */
        if (c->input_len == 0) {
            free(c->input);
            c->input = NULL;
        }
        if (!c->shutting_down) srv__conn_pump(c);
        return;
    }
    c->input_len += (size_t)nread;
    if (c->server->config.bytes_in) *c->server->config.bytes_in += (uint64_t)nread;
    c->last_progress_ms = conn_now(c);
    srv__conn_pump(c);
}

static void conn_update_reading(struct srv_conn *c)
{
    const struct srv_http_config *cfg = conn_config(c);
    bool want = !c->read_eof && c->input_len < SRV_CONN_INPUT_BYTES &&
                (c->shutting_down || c->write_bytes <= cfg->write_queue_bytes_max);
    if (c->tls != NULL && srv_tls_fed_bytes(c->tls) >= SRV_TLS_FED_BYTES_MAX) want = false;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read) < 0) {
            srv__conn_abort(c);
            return;
        }
        c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* True if the client's next bytes already wait in the kernel. libuv runs due timers before
 * it polls, so an idle deadline can fire in the same loop turn as a new request arrives. */
static bool conn_has_unread_bytes(struct srv_conn *c)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) < 0) return false;
    char byte;
    return recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

static void conn_timeout(uv_timer_t *t)
{
    struct srv_conn *c = t->data;
    bool idle = !c->shutting_down && c->write_bytes == 0 && c->q_first == NULL &&
                !srv_http_parser_in_message(&c->parser);
    if (idle && c->reading && conn_has_unread_bytes(c)) {
        /* A request raced the idle deadline: read it instead of dropping it. The read
         * moves last_progress_ms, so this cannot repeat without new bytes. */
        uv_timer_start(&c->timer, conn_timeout, 1, 0);
        return;
    }
    k_log_debug("http", "connection timed out (%s)",
                c->shutting_down                         ? "linger"
                : c->write_bytes > 0                     ? "write"
                : srv_http_parser_in_body(&c->parser)    ? "body"
                : srv_http_parser_in_message(&c->parser) ? "head"
                                                         : "idle");
    srv__conn_abort(c);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static void conn_update_timer(struct srv_conn *c)
{
    const struct srv_http_config *cfg = conn_config(c);
    uint64_t deadline = UINT64_MAX;
    if (c->shutdown_done) {
        deadline = c->last_progress_ms + cfg->linger_ms;
    } else if (c->shutting_down) {
        deadline = c->last_progress_ms + cfg->write_timeout_ms; /* last answers still leaving */
    } else {
        if (c->write_bytes > 0)
            deadline = min_u64(deadline, c->last_progress_ms + cfg->write_timeout_ms);
        if (srv_http_parser_in_body(&c->parser)) {
            deadline = min_u64(deadline, c->last_progress_ms + cfg->body_timeout_ms);
        } else if (srv_http_parser_in_message(&c->parser)) {
            deadline = min_u64(deadline, c->head_start_ms + cfg->head_timeout_ms);
        } else if (c->q_first == NULL && c->write_bytes == 0) {
            /* A connection that has not sent a request yet gets the head timeout, so
             * connect-and-wait clients cannot hold a slot for the long keep-alive time. */
            uint64_t idle = c->requests_seen > 0 ? cfg->idle_timeout_ms : cfg->head_timeout_ms;
            deadline = min_u64(deadline, c->last_progress_ms + idle);
        }
    }
    if (c->tls != NULL && !srv_tls_handshake_done(c->tls) && !c->shutting_down) {
        deadline = min_u64(deadline, c->start_ms + cfg->head_timeout_ms); /* slow handshakes */
    }
    if (deadline == UINT64_MAX) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = conn_now(c);
    uv_timer_start(&c->timer, conn_timeout, deadline > now ? deadline - now : 0, 0);
}

void srv__conn_start(struct srv_http_server *s, struct srv_conn *c)
{
    c->server = s;
    c->refs = 1; /* the handles; dropped when both have closed */
    c->handles_open = 2;
    c->tcp.data = c;
    c->timer.data = c;
    srv_http_parser_init(&c->parser, &s->config.limits);
    uv_timer_init(s->loop, &c->timer);
    c->last_progress_ms = uv_now(s->loop);
    c->start_ms = c->last_progress_ms;
    int rc = uv_tcp_nodelay(&c->tcp, 1);
    if (rc < 0) k_log_debug("http", "cannot set TCP_NODELAY: %s", uv_strerror(rc));
    if (s->config.tls != NULL) {
        rc = srv_tls_new(s->config.tls, NULL, &c->tls);
        if (rc < 0) {
            k_log_warn("http", "cannot start TLS on a connection: %s", k_strerror(rc));
            srv__conn_abort(c);
            return;
        }
    }
    srv__conn_pump(c);
}
