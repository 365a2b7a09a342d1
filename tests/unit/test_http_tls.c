/* The HTTP server (server/http_server.h) serving HTTPS over real sockets on 127.0.0.1: the
 * test's client is the TLS engine (server/tls.h) on a non-blocking socket, driven in the same
 * thread as the server's loop. Requests, a 1 MiB answer and a chunked stream arrive intact;
 * the handshake must end within the head timeout even when bytes trickle in; a client without
 * an acceptable certificate, plain HTTP and garbage are closed without reaching the handler.
 * Certificates are made at run time (tls_test_util.h). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/err.h"
#include "server/http_server.h"
#include "server/tls.h"
#include "tls_test_util.h"

Suite *test_http_tls_suite(void);

enum { WAIT_MS = 5000, BIG_BYTES = 1 << 20 };

enum handler_mode { MODE_ECHO, MODE_BIG, MODE_STREAM };

static uv_loop_t loop;
static uv_timer_t tick;
static struct tls_test_pki pki;
static struct srv_tls_ctx *server_ctx;
static struct srv_http_server *server;
static uint16_t port;
static enum handler_mode mode;
static int handled;
static uint64_t bytes_in, bytes_out;
static struct srv_request *streaming;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void handler(struct srv_request *req, void *data)
{
    (void)data;
    handled++;
    const struct srv_http_request *m = srv_request_msg(req);
    if (mode == MODE_BIG) {
        char *body = malloc(BIG_BYTES);
        for (size_t i = 0; i < BIG_BYTES; i++)
            body[i] = (char)('a' + i % 26);
        srv_respond_take(req, 200, NULL, 0, body, BIG_BYTES);
        return;
    }
    if (mode == MODE_STREAM) {
        streaming = req;
        srv_stream_begin(req, 200, NULL, 0);
        return;
    }
    char body[256];
    int n = snprintf(body, sizeof(body), "%s %.*s", m->method, (int)m->target.len, m->target.ptr);
    srv_respond(req, 200, NULL, 0, body, (size_t)n);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void start_server(struct srv_tls_files files, uint64_t head_timeout_ms)
{
    char err[SRV_TLS_ERR_BYTES] = "";
    ck_assert_msg(srv_tls_ctx_new(&files, SRV_TLS_SERVER, "", &server_ctx, err, sizeof(err)) == 0,
                  "%s", err);
    struct srv_http_config c;
    srv_http_config_default(&c);
    c.handler = handler;
    c.tls = server_ctx;
    c.bytes_in = &bytes_in;
    c.bytes_out = &bytes_out;
    if (head_timeout_ms) c.head_timeout_ms = head_timeout_ms;
    ck_assert_int_eq(srv_http_server_new(&loop, &c, &server), 0);
    ck_assert_int_eq(srv_http_server_listen(server, "127.0.0.1", 0), 0);
    port = srv_http_server_port(server);
}

/* A TLS client on a non-blocking socket. */
struct client {
    int fd;
    struct srv_tls *tls; /* NULL: raw bytes */
    struct srv_tls_ctx *ctx;
    struct k_buf got; /* plaintext (or raw bytes) received */
    bool eof;         /* the server closed */
    int rc;           /* last non-zero srv_tls_read result */
};

static void client_open(struct client *c, bool tls, bool with_cert)
{
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(c->fd, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(c->fd, (struct sockaddr *)&a, sizeof(a));
    ck_assert(rc == 0 || errno == EINPROGRESS);
    if (!tls) return;
    struct srv_tls_files f = { .trusted_ca_file = pki.ca };
    if (with_cert) {
        f.cert_file = pki.client;
        f.key_file = pki.client_key;
    }
    char err[SRV_TLS_ERR_BYTES] = "";
    ck_assert_msg(srv_tls_ctx_new(&f, SRV_TLS_CLIENT, "", &c->ctx, err, sizeof(err)) == 0, "%s",
                  err);
    ck_assert_int_eq(srv_tls_new(c->ctx, "127.0.0.1", &c->tls), 0);
}

static void client_close(struct client *c)
{
    close(c->fd);
    srv_tls_free(c->tls);
    srv_tls_ctx_free(c->ctx);
    k_buf_free(&c->got);
}

static void send_raw(struct client *c, const void *data, size_t len)
{
    size_t done = 0;
    uint64_t end = now_ms() + WAIT_MS;
    while (done < len && now_ms() < end) {
        ssize_t n = send(c->fd, (const char *)data + done, len - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += (size_t)n;
        } else {
            uv_run(&loop, UV_RUN_NOWAIT);
        }
    }
    ck_assert_uint_eq(done, len);
}

/* One round: the server's loop, then whatever the client can send and read. */
static void client_step(struct client *c)
{
    uv_run(&loop, UV_RUN_NOWAIT);
    if (c->tls) {
        size_t len;
        char *out = srv_tls_take_output(c->tls, &len);
        if (out) send_raw(c, out, len);
        free(out);
    }
    char buf[65536];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            c->eof = true;
            break;
        }
        if (n < 0) break;
        if (!c->tls) {
            k_buf_append(&c->got, buf, (size_t)n);
            continue;
        }
        srv_tls_feed(c->tls, buf, (size_t)n);
    }
    while (c->tls && c->rc == 0) {
        size_t n = 0;
        int rc = srv_tls_read(c->tls, buf, sizeof(buf), &n);
        if (rc != 0) c->rc = rc;
        if (n == 0) break;
        k_buf_append(&c->got, buf, n);
    }
}

static bool client_until(struct client *c, bool (*cond)(struct client *), uint64_t ms)
{
    uint64_t end = now_ms() + ms;
    while (!cond(c) && now_ms() < end)
        client_step(c);
    return cond(c);
}

static bool is_closed(struct client *c)
{
    return c->eof;
}

static size_t want_bytes;
static bool got_enough(struct client *c)
{
    return c->got.len >= want_bytes || c->eof;
}

static bool handshake_done(struct client *c)
{
    return srv_tls_handshake_done(c->tls) || c->rc != 0 || c->eof;
}

static void send_plain(struct client *c, const char *s)
{
    ck_assert_int_eq(srv_tls_write(c->tls, s, strlen(s)), 0);
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5); /* uv_run(NOWAIT) keeps the clock moving */
    tls_test_pki_make(&pki);
    handled = 0;
    bytes_in = bytes_out = 0;
    streaming = NULL;
    mode = MODE_ECHO;
}

static void teardown(void)
{
    if (server) srv_http_server_close(server, NULL, NULL);
    server = NULL;
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    srv_tls_ctx_free(server_ctx);
    server_ctx = NULL;
    tls_test_pki_remove(&pki);
}

static struct srv_tls_files server_files(bool verify)
{
    struct srv_tls_files f = { .cert_file = pki.server,
                               .key_file = pki.server_key,
                               .trusted_ca_file = verify ? pki.ca : NULL,
                               .client_cert_auth = verify };
    return f;
}

START_TEST(test_https_answers_keep_alive_requests_in_order)
{
    start_server(server_files(false), 0);
    struct client c;
    client_open(&c, true, false);
    send_plain(&c, "GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n");
    want_bytes = 2;
    ck_assert(client_until(&c, handshake_done, WAIT_MS));
    const char *needle = "GET /two";
    for (uint64_t end = now_ms() + WAIT_MS; now_ms() < end && !c.eof; client_step(&c)) {
        k_buf_putc(&c.got, '\0');
        c.got.len--;
        if (c.got.data && strstr(c.got.data, needle)) break;
    }
    k_buf_putc(&c.got, '\0');
    ck_assert_ptr_nonnull(strstr(c.got.data, "HTTP/1.1 200 OK\r\n"));
    char *one = strstr(c.got.data, "GET /one");
    char *two = strstr(c.got.data, "GET /two");
    ck_assert_ptr_nonnull(one);
    ck_assert_ptr_nonnull(two);
    ck_assert(one < two);
    ck_assert_int_eq(handled, 2);
    ck_assert(!c.eof); /* keep-alive */
    ck_assert_uint_gt(bytes_in, 0);
    ck_assert_uint_gt(bytes_out, c.got.len); /* the wire carries more than the plaintext */
    client_close(&c);
}
END_TEST

START_TEST(test_https_sends_a_large_answer_intact)
{
    start_server(server_files(false), 0);
    mode = MODE_BIG;
    struct client c;
    client_open(&c, true, false);
    send_plain(&c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    want_bytes = BIG_BYTES + 100;
    (void)client_until(&c, got_enough, 20000);
    k_buf_putc(&c.got, '\0');
    char *body = strstr(c.got.data, "\r\n\r\n");
    ck_assert_ptr_nonnull(body);
    body += 4;
    ck_assert_uint_eq(c.got.len - 1 - (size_t)(body - c.got.data), BIG_BYTES);
    for (size_t i = 0; i < BIG_BYTES; i++) {
        if (body[i] != (char)('a' + i % 26)) ck_abort_msg("byte %zu differs", i);
    }
    client_close(&c);
}
END_TEST

START_TEST(test_https_streams_chunks_as_they_are_sent)
{
    start_server(server_files(false), 0);
    mode = MODE_STREAM;
    struct client c;
    client_open(&c, true, false);
    send_plain(&c, "GET /watch?stream=true HTTP/1.1\r\nHost: x\r\n\r\n");
    uint64_t end = now_ms() + WAIT_MS;
    while (streaming == NULL && now_ms() < end)
        client_step(&c);
    ck_assert_ptr_nonnull(streaming);
    static const char *events[] = { "{\"action\":\"set\"}\n", "{\"action\":\"delete\"}\n" };
    for (int i = 0; i < 2; i++) {
        size_t before = c.got.len;
        ck_assert_int_eq(srv_stream_chunk(streaming, events[i], strlen(events[i])), 0);
        want_bytes = before + strlen(events[i]) + 4; /* at least the chunk's framing */
        ck_assert(client_until(&c, got_enough, WAIT_MS));
        k_buf_putc(&c.got, '\0');
        c.got.len--;
        ck_assert_ptr_nonnull(strstr(c.got.data, events[i])); /* each arrives on its own */
    }
    srv_stream_end(streaming);
    streaming = NULL;
    want_bytes = c.got.len + 5;
    ck_assert(client_until(&c, got_enough, WAIT_MS));
    k_buf_putc(&c.got, '\0');
    ck_assert_ptr_nonnull(strstr(c.got.data, "Transfer-Encoding: chunked\r\n"));
    ck_assert_ptr_nonnull(strstr(c.got.data, "\r\n0\r\n\r\n"));
    client_close(&c);
}
END_TEST

START_TEST(test_https_handshake_must_end_within_the_head_timeout)
{
    start_server(server_files(false), 300);
    /* A client that connects and says nothing. */
    struct client silent;
    client_open(&silent, false, false);
    uint64_t start = now_ms();
    ck_assert(client_until(&silent, is_closed, WAIT_MS));
    ck_assert_uint_lt(now_ms() - start, 2000);
    client_close(&silent);
    /* A client whose ClientHello trickles in a byte every 50 ms: each byte is progress,
     * yet the handshake deadline holds. */
    struct client slow;
    client_open(&slow, true, false);
    size_t len;
    char *hello = srv_tls_take_output(slow.tls, &len);
    ck_assert_uint_gt(len, 40);
    start = now_ms();
    size_t sent = 0;
    while (!slow.eof && now_ms() - start < WAIT_MS) {
        if (sent < len && now_ms() - start >= sent * 50) {
            send_raw(&slow, hello + sent, 1);
            sent++;
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        char b[64];
        ssize_t n = recv(slow.fd, b, sizeof(b), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN)) slow.eof = true;
    }
    ck_assert(slow.eof);
    ck_assert_uint_lt(sent, len); /* closed before the hello was whole */
    ck_assert_uint_lt(now_ms() - start, 2000);
    free(hello);
    client_close(&slow);
    ck_assert_int_eq(handled, 0);
}
END_TEST

START_TEST(test_https_refuses_a_client_without_a_certificate_when_verifying)
{
    start_server(server_files(true), 0);
    struct client c;
    client_open(&c, true, false);
    send_plain(&c, "GET /secret HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert(client_until(&c, is_closed, WAIT_MS));
    ck_assert_int_eq(c.rc, K_EPROTO); /* the alert came before the close */
    ck_assert_msg(strstr(srv_tls_error(c.tls), "certificate required") != NULL, "%s",
                  srv_tls_error(c.tls));
    ck_assert_uint_eq(c.got.len, 0);
    ck_assert_int_eq(handled, 0);
    client_close(&c);
    /* With one, the same server answers. */
    client_open(&c, true, true);
    send_plain(&c, "GET /secret HTTP/1.1\r\nHost: x\r\n\r\n");
    want_bytes = 20;
    ck_assert(client_until(&c, got_enough, WAIT_MS));
    ck_assert_int_eq(handled, 1);
    ck_assert_mem_eq(c.got.data, "HTTP/1.1 200 OK\r\n", 17);
    client_close(&c);
}
END_TEST

START_TEST(test_https_closes_plain_http_and_garbage)
{
    start_server(server_files(false), 0);
    const char *inputs[] = { "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\x16\x03\x01\xff\xff" };
    for (size_t i = 0; i < 2; i++) {
        struct client c;
        client_open(&c, false, false);
        send_raw(&c, inputs[i], strlen(inputs[i]));
        if (i == 1) { /* a record claiming 64 KiB: the server needs the rest, then fails */
            static char zeros[70000];
            send_raw(&c, zeros, sizeof(zeros));
        }
        ck_assert(client_until(&c, is_closed, WAIT_MS));
        k_buf_putc(&c.got, '\0');
        ck_assert_ptr_null(strstr(c.got.data, "HTTP/"));
        client_close(&c);
    }
    ck_assert_int_eq(handled, 0);
    ck_assert_uint_eq(srv_http_server_connections(server), 0);
}
END_TEST

Suite *test_http_tls_suite(void)
{
    Suite *s = suite_create("http_tls");
    TCase *tc = tcase_create("https");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_https_answers_keep_alive_requests_in_order);
    tcase_add_test(tc, test_https_sends_a_large_answer_intact);
    tcase_add_test(tc, test_https_streams_chunks_as_they_are_sent);
    tcase_add_test(tc, test_https_handshake_must_end_within_the_head_timeout);
    tcase_add_test(tc, test_https_refuses_a_client_without_a_certificate_when_verifying);
    tcase_add_test(tc, test_https_closes_plain_http_and_garbage);
    suite_add_tcase(s, tc);
    return s;
}
