/* The listening socket of http_server.h: configuration, accept with a connection bound,
 * the Date line cache, and closing everything down. Connections are conn.c's. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/log.h"
#include "server/server_int.h"

void srv_http_config_default(struct srv_http_config *c)
{
    memset(c, 0, sizeof(*c));
    srv_http_limits_default(&c->limits);
    c->connections_max = SRV_CONNECTIONS_MAX;
    c->pipeline_depth = SRV_PIPELINE_DEPTH;
    c->write_queue_bytes_max = SRV_WRITE_QUEUE_BYTES_MAX;
    c->idle_timeout_ms = SRV_IDLE_TIMEOUT_MS;
    c->head_timeout_ms = SRV_HEAD_TIMEOUT_MS;
    c->body_timeout_ms = SRV_BODY_TIMEOUT_MS;
    c->write_timeout_ms = SRV_WRITE_TIMEOUT_MS;
    c->linger_ms = SRV_LINGER_MS;
}

int srv_http_server_new(uv_loop_t *loop, const struct srv_http_config *config,
                        struct srv_http_server **out)
{
    const struct srv_http_limits *l = &config->limits;
    if (config->handler == NULL || config->connections_max == 0 || config->pipeline_depth == 0 ||
        l->url_bytes_max == 0 || l->head_bytes_max < l->url_bytes_max || l->headers_max == 0 ||
        l->arena_bytes == 0)
        return K_ECONFIG;
    if (config->tls != NULL && srv_tls_ctx_side(config->tls) != SRV_TLS_SERVER) return K_ECONFIG;
    /* libuv writes with writev(): a client that hung up would raise SIGPIPE and kill the
     * member. Process-wide and idempotent; the write then fails with EPIPE instead. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) return -errno;
    struct srv_http_server *s = k_xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->config = *config;
    /* One buffer for every TLS connection's ciphertext: libuv calls a stream's alloc and
     * read callbacks back to back, and the read callback feeds the bytes to the engine. */
    if (config->tls != NULL) s->tls_read_buf = k_xmalloc(SRV_CONN_INPUT_BYTES);
    *out = s;
    return 0;
}

const char *srv__server_date_line(struct srv_http_server *s)
{
    time_t now = time(NULL);
    if (now != s->date_time || s->date_line[0] == '\0') {
        srv_date_line(now, s->date_line);
        s->date_time = now;
    }
    return s->date_line;
}

void srv__server_conn_detach(struct srv_http_server *s, struct srv_conn *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        k_assert(s->conns == c);
        s->conns = c->next;
    }
    if (c->next != NULL) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    k_assert(s->conn_count > 0);
    s->conn_count--;
}

static void server_maybe_done(struct srv_http_server *s)
{
    if (!s->closing || s->handles_open > 0) return;
    srv_http_server_closed_cb cb = s->closed_cb;
    void *data = s->closed_data;
    free(s->tls_read_buf);
    free(s);
    if (cb != NULL) cb(data);
}

void srv__server_conn_closed(struct srv_http_server *s)
{
    k_assert(s->handles_open > 0);
    s->handles_open--;
    server_maybe_done(s);
}

static void server_refused_closed(uv_handle_t *h)
{
    struct srv_http_server *s = h->data;
    free(h);
    srv__server_conn_closed(s);
}

static void server_on_connection(uv_stream_t *listener, int status)
{
    struct srv_http_server *s = listener->data;
    if (status < 0) {
        k_log_warn("http", "accept failed: %s", uv_strerror(status));
        return;
    }
    struct srv_conn *c = k_xcalloc(1, sizeof(*c));
    uv_tcp_init(s->loop, &c->tcp);
    int rc = uv_accept(listener, (uv_stream_t *)&c->tcp);
    s->handles_open++;
    if (rc < 0 || s->conn_count >= s->config.connections_max || s->closing) {
        if (rc == 0) {
            k_log_warn("http", "refusing a connection: %zu open (the limit)", s->conn_count);
        }
        /* The handle is closed at once; its memory goes in the close callback. */
        c->tcp.data = s;
        uv_close((uv_handle_t *)&c->tcp, server_refused_closed);
        return;
    }
    /* Counted once above: a connection reports when both of its handles are closed. */
    c->next = s->conns;
    if (s->conns != NULL) s->conns->prev = c;
    s->conns = c;
    s->conn_count++;
    srv__conn_start(s, c);
}

int srv_http_server_listen(struct srv_http_server *s, const char *ip, uint16_t port)
{
    k_assert(!s->listening);
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(ip, port, (struct sockaddr_in *)&addr);
    if (rc < 0) rc = uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&addr);
    if (rc < 0) return rc;
    rc = uv_tcp_init(s->loop, &s->listener);
    if (rc < 0) return rc;
    s->listener.data = s;
    s->listening = true;
    s->handles_open++;
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, 511, server_on_connection);
    return rc;
}

uint16_t srv_http_server_port(const struct srv_http_server *s)
{
    if (!s->listening) return 0;
    struct sockaddr_storage addr;
    int len = sizeof(addr);
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&addr, &len) < 0) return 0;
    if (addr.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&addr)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
}

size_t srv_http_server_connections(const struct srv_http_server *s)
{
    return s->conn_count;
}

static void server_listener_closed(uv_handle_t *h)
{
    srv__server_conn_closed(h->data);
}

void srv_http_server_close(struct srv_http_server *s, srv_http_server_closed_cb cb, void *data)
{
    k_assert(!s->closing);
    s->closing = true;
    s->closed_cb = cb;
    s->closed_data = data;
    if (s->listening) uv_close((uv_handle_t *)&s->listener, server_listener_closed);
    while (s->conns != NULL)
        srv__conn_abort(s->conns); /* detaches it from the list */
    /* Keep the server until the close callbacks above have run, even with no handles. */
    s->handles_open++;
    srv__server_conn_closed(s);
}
