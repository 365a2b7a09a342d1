/* ketch-bench's HTTP client connection against a scripted server on 127.0.0.1: responses
 * are matched to requests in order (pipelining), chunked and Content-Length bodies are
 * reassembled however the bytes are cut, long-poll headers are reported before the body,
 * streamed bodies go to body_cb, and a server that closes or sends garbage is reported
 * once through failed_cb with the requests it dropped. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/err.h"
#include "bench/http_conn.h"

Suite *test_bench_http_conn_suite(void);

enum { PIECES_MAX = 64, OBS_MAX = 8 };

/* What the server sends once the first request arrives (or at once), piece by piece with
 * a pause between pieces so they tend to arrive in separate reads. */
struct script {
    const char *pieces[PIECES_MAX];
    bool close_after;             /* close the connection after the last piece */
    bool unsolicited;             /* send without waiting for a request */
    size_t requests;              /* requests the client sends once connected */
    size_t close_after_responses; /* client closes after this many responses (0: never) */
    bool stream;                  /* client uses body_cb */
};

struct harness {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_tcp_t server;
    uv_timer_t pace;
    uv_timer_t guard;
    bool server_open;
    bool sending;
    size_t next_piece;
    const struct script *sc;
    struct bench_conn conn;
    /* what the client saw */
    size_t responses;
    int status[OBS_MAX];
    uint64_t tags[OBS_MAX];
    uint64_t index[OBS_MAX];
    char body[OBS_MAX][512];
    size_t headers;
    bool headers_before_first_response;
    char streamed[512];
    int failed;
    int fail_err;
    size_t fail_inflight;
};

static struct harness *H;

static void close_server_side(void)
{
    if (H->server_open) {
        uv_close((uv_handle_t *)&H->server, NULL);
        H->server_open = false;
    }
    if (!uv_is_closing((uv_handle_t *)&H->listener)) uv_close((uv_handle_t *)&H->listener, NULL);
    if (!uv_is_closing((uv_handle_t *)&H->pace)) uv_close((uv_handle_t *)&H->pace, NULL);
    if (!uv_is_closing((uv_handle_t *)&H->guard)) uv_close((uv_handle_t *)&H->guard, NULL);
}

static void on_server_write(uv_write_t *req, int status)
{
    free(req);
}

static void send_next_piece(uv_timer_t *t)
{
    if (!H->server_open) return;
    const char *piece = H->sc->pieces[H->next_piece];
    if (!piece) {
        if (H->sc->close_after) {
            uv_close((uv_handle_t *)&H->server, NULL);
            H->server_open = false;
        }
        return;
    }
    H->next_piece++;
    uv_write_t *req = malloc(sizeof(*req));
    uv_buf_t b = uv_buf_init((char *)piece, (unsigned)strlen(piece));
    ck_assert_int_eq(uv_write(req, (uv_stream_t *)&H->server, &b, 1, on_server_write), 0);
    ck_assert_int_eq(uv_timer_start(&H->pace, send_next_piece, 3, 0), 0);
}

static void start_sending(void)
{
    if (H->sending) return;
    H->sending = true;
    send_next_piece(&H->pace);
}

static void server_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    static char rbuf[4096];
    *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void server_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n > 0) start_sending();
    if (n < 0 && H->server_open) {
        uv_close((uv_handle_t *)&H->server, NULL);
        H->server_open = false;
    }
}

static void on_accept(uv_stream_t *l, int status)
{
    ck_assert_int_eq(status, 0);
    ck_assert_int_eq(uv_tcp_init(&H->loop, &H->server), 0);
    ck_assert_int_eq(uv_accept(l, (uv_stream_t *)&H->server), 0);
    H->server_open = true;
    ck_assert_int_eq(uv_read_start((uv_stream_t *)&H->server, server_alloc, server_read), 0);
    if (H->sc->unsolicited) start_sending();
}

static void client_connected(struct bench_conn *c)
{
    static const char req[] = "GET /v2/keys/x HTTP/1.1\r\nHost: t\r\n\r\n";
    for (size_t i = 0; i < H->sc->requests; i++)
        ck_assert_int_eq(bench_conn_send(c, req, sizeof(req) - 1, 100 + i), 0);
}

static void client_headers(struct bench_conn *c, int status, uint64_t etcd_index)
{
    if (H->headers++ == 0) H->headers_before_first_response = H->responses == 0;
}

static void client_body(struct bench_conn *c, const char *data, size_t len)
{
    strncat(H->streamed, data,
            len < sizeof(H->streamed) - strlen(H->streamed) - 1
                    ? len
                    : sizeof(H->streamed) - strlen(H->streamed) - 1);
}

static void client_response(struct bench_conn *c, const struct bench_response *r)
{
    ck_assert_uint_lt(H->responses, OBS_MAX);
    size_t i = H->responses++;
    H->status[i] = r->status;
    H->tags[i] = r->tag;
    H->index[i] = r->etcd_index;
    ck_assert_uint_lt(r->body_len, sizeof(H->body[i]));
    memcpy(H->body[i], r->body, r->body_len);
    H->body[i][r->body_len] = '\0';
    ck_assert_uint_ge(uv_hrtime(), r->start_ns);
    if (H->sc->close_after_responses && H->responses == H->sc->close_after_responses) {
        bench_conn_close(c);
    }
}

static void client_failed(struct bench_conn *c, int err, size_t inflight)
{
    H->failed++;
    H->fail_err = err;
    H->fail_inflight = inflight;
    close_server_side();
}

static void on_guard(uv_timer_t *t)
{
    ck_abort_msg("scripted exchange did not finish in 5 s");
}

static const struct bench_conn_cbs poll_cbs = {
    .connect_cb = client_connected,
    .headers_cb = client_headers,
    .response_cb = client_response,
    .failed_cb = client_failed,
};

static const struct bench_conn_cbs stream_cbs = {
    .connect_cb = client_connected,
    .headers_cb = client_headers,
    .body_cb = client_body,
    .response_cb = client_response,
    .failed_cb = client_failed,
};

/* Runs one exchange to its end (the client connection failed or was closed). */
static struct harness *run(const struct script *sc)
{
    H = calloc(1, sizeof(*H));
    H->sc = sc;
    ck_assert_int_eq(uv_loop_init(&H->loop), 0);
    ck_assert_int_eq(uv_tcp_init(&H->loop, &H->listener), 0);
    struct sockaddr_in addr;
    ck_assert_int_eq(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
    ck_assert_int_eq(uv_tcp_bind(&H->listener, (const struct sockaddr *)&addr, 0), 0);
    ck_assert_int_eq(uv_listen((uv_stream_t *)&H->listener, 4, on_accept), 0);
    int len = sizeof(addr);
    ck_assert_int_eq(uv_tcp_getsockname(&H->listener, (struct sockaddr *)&addr, &len), 0);
    ck_assert_int_eq(uv_timer_init(&H->loop, &H->pace), 0);
    ck_assert_int_eq(uv_timer_init(&H->loop, &H->guard), 0);
    ck_assert_int_eq(uv_timer_start(&H->guard, on_guard, 5000, 0), 0);
    bench_conn_init(&H->conn, &H->loop, sc->stream ? &stream_cbs : &poll_cbs);
    bench_conn_open(&H->conn, &addr);
    uv_run(&H->loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(H->failed, 1);
    bench_conn_deinit(&H->conn);
    ck_assert_int_eq(uv_loop_close(&H->loop), 0);
    return H;
}

START_TEST(test_content_length_response_carries_status_body_index_and_tag)
{
    static const struct script sc = {
        .pieces = { "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                    "X-Etcd-Index: 42\r\nContent-Length: 5\r\n\r\nhello" },
        .requests = 1,
        .close_after_responses = 1,
    };
    struct harness *h = run(&sc);
    ck_assert_uint_eq(h->responses, 1);
    ck_assert_int_eq(h->status[0], 201);
    ck_assert_str_eq(h->body[0], "hello");
    ck_assert_uint_eq(h->index[0], 42);
    ck_assert_uint_eq(h->tags[0], 100);
    ck_assert_int_eq(h->fail_err, 0); /* our own close */
    free(h);
}
END_TEST

START_TEST(test_pipelined_responses_in_one_packet_match_requests_in_order)
{
    static const struct script sc = {
        .pieces = { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n0\r\n\r\n"
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\ntwo"
                    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nthree" },
        .requests = 3,
        .close_after_responses = 3,
    };
    struct harness *h = run(&sc);
    ck_assert_uint_eq(h->responses, 3);
    ck_assert_uint_eq(h->tags[0], 100);
    ck_assert_uint_eq(h->tags[1], 101);
    ck_assert_uint_eq(h->tags[2], 102);
    ck_assert_int_eq(h->status[1], 404);
    ck_assert_str_eq(h->body[0], "one");
    ck_assert_str_eq(h->body[1], "two");
    ck_assert_str_eq(h->body[2], "three");
    free(h);
}
END_TEST

START_TEST(test_chunked_body_cut_anywhere_is_reassembled)
{
    static const struct script sc = {
        .pieces = { "HTTP/1.1 200 OK\r\nX-Etcd-", "Index: 7\r\nTransfer-Enc",
                    "oding: chunked\r\n\r\n", "5", "\r\nab", "cde\r", "\n3\r\nfg", "h\r\n0\r",
                    "\n\r\n" },
        .requests = 1,
        .close_after_responses = 1,
    };
    struct harness *h = run(&sc);
    ck_assert_uint_eq(h->responses, 1);
    ck_assert_str_eq(h->body[0], "abcdefgh");
    free(h);
}
END_TEST

START_TEST(test_long_poll_headers_arrive_before_the_event)
{
    static const struct script sc = {
        .pieces = { "HTTP/1.1 200 OK\r\nX-Etcd-Index: 9\r\nTransfer-Encoding: chunked\r\n\r\n",
                    "7\r\n{\"a\":1}\r\n", "0\r\n\r\n" },
        .requests = 1,
        .close_after_responses = 1,
    };
    struct harness *h = run(&sc);
    ck_assert_uint_eq(h->headers, 1);
    ck_assert(h->headers_before_first_response);
    ck_assert_str_eq(h->body[0], "{\"a\":1}");
    free(h);
}
END_TEST

START_TEST(test_streamed_body_goes_to_body_cb_not_the_response)
{
    static const struct script sc = {
        .pieces = { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "2\r\nA\n\r\n",
                    "2\r\nB\n\r\n", "0\r\n\r\n" },
        .requests = 1,
        .close_after_responses = 1,
        .stream = true,
    };
    struct harness *h = run(&sc);
    ck_assert_str_eq(h->streamed, "A\nB\n");
    ck_assert_str_eq(h->body[0], "");
    free(h);
}
END_TEST

START_TEST(test_server_close_reports_eof_once_with_dropped_requests)
{
    static const struct script sc = {
        .pieces = { "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" },
        .close_after = true,
        .requests = 3,
    };
    struct harness *h = run(&sc);
    ck_assert_uint_eq(h->responses, 1);
    ck_assert_int_eq(h->fail_err, UV_EOF);
    ck_assert_uint_eq(h->fail_inflight, 2);
    free(h);
}
END_TEST

START_TEST(test_connection_close_header_ends_the_connection_after_the_response)
{
    static const struct script sc = {
        .pieces = { "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok" },
        .requests = 1,
    };
    struct harness *h = run(&sc);
    ck_assert_uint_eq(h->responses, 1);
    ck_assert_int_eq(h->fail_err, UV_EOF);
    ck_assert_uint_eq(h->fail_inflight, 0);
    free(h);
}
END_TEST

START_TEST(test_garbage_is_a_protocol_error)
{
    static const struct script sc = {
        .pieces = { "SMTP ready\r\n\r\n" },
        .requests = 2,
    };
    struct harness *h = run(&sc);
    ck_assert_uint_eq(h->responses, 0);
    ck_assert_int_eq(h->fail_err, K_EPROTO);
    ck_assert_uint_eq(h->fail_inflight, 2);
    free(h);
}
END_TEST

START_TEST(test_response_nobody_asked_for_is_a_protocol_error)
{
    static const struct script sc = {
        .pieces = { "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" },
        .unsolicited = true,
    };
    struct harness *h = run(&sc);
    ck_assert_uint_eq(h->responses, 0);
    ck_assert_int_eq(h->fail_err, K_EPROTO);
    free(h);
}
END_TEST

Suite *test_bench_http_conn_suite(void)
{
    Suite *s = suite_create("bench_http_conn");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_content_length_response_carries_status_body_index_and_tag);
    tcase_add_test(tc, test_pipelined_responses_in_one_packet_match_requests_in_order);
    tcase_add_test(tc, test_chunked_body_cut_anywhere_is_reassembled);
    tcase_add_test(tc, test_long_poll_headers_arrive_before_the_event);
    tcase_add_test(tc, test_streamed_body_goes_to_body_cb_not_the_response);
    tcase_add_test(tc, test_server_close_reports_eof_once_with_dropped_requests);
    tcase_add_test(tc, test_connection_close_header_ends_the_connection_after_the_response);
    tcase_add_test(tc, test_garbage_is_a_protocol_error);
    tcase_add_test(tc, test_response_nobody_asked_for_is_a_protocol_error);
    suite_add_tcase(s, tc);
    return s;
}
