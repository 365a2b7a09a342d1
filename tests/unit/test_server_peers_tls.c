/* The peer transport with TLS (https:// peer URLs) over real loopback sockets: messages arrive
 * whole and in order both ways through the handshake; an acceptor that verifies dialers
 * refuses one without a certificate of its CA; a dialer refuses a server whose certificate
 * does not name the peer's host; a dialer that is refused keeps retrying and gets through
 * once it has the right configuration. Certificates are made at run time. */
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/err.h"
#include "server/peers.h"
#include "server/tls.h"
#include "tls_test_util.h"

Suite *test_server_peers_tls_suite(void);

enum { MSGS = 2000, CLUSTER = 77 };

static uv_loop_t loop;
static struct tls_test_pki pki;

struct side {
    struct srv_peers *p;
    uint64_t id;
    uint64_t got;
    uint64_t bad;
    struct srv_tls_ctx *server;
    struct srv_tls_ctx *client;
};

static void on_recv(void *data, uint64_t from, const uint8_t *msg, size_t len)
{
    (void)from;
    struct side *s = data;
    uint64_t i = 0;
    if (len >= 8) memcpy(&i, msg, 8);
    bool ok = len == 8 + i % 500 && i == s->got;
    for (size_t k = 8; ok && k < len; k++)
        ok = msg[k] == (uint8_t)(i * 7);
    s->bad += !ok;
    s->got++;
}

static struct srv_tls_ctx *ctx(const char *cert, const char *key, const char *ca,
                               enum srv_tls_side side)
{
    struct srv_tls_files f = { .cert_file = (char *)cert,
                               .key_file = (char *)key,
                               .trusted_ca_file = (char *)ca,
                               .client_cert_auth = ca != NULL && side == SRV_TLS_SERVER };
    struct srv_tls_ctx *c = NULL;
    char err[SRV_TLS_ERR_BYTES] = "";
    ck_assert_msg(srv_tls_ctx_new(&f, side, "peer-", &c, err, sizeof(err)) == 0, "%s", err);
    return c;
}

/* A member whose acceptor verifies dialers and whose dialer presents client_cert. */
static void make(struct side *s, uint64_t id, const char *client_cert, const char *client_key)
{
    memset(s, 0, sizeof(*s));
    s->id = id;
    s->server = ctx(pki.server, pki.server_key, pki.ca, SRV_TLS_SERVER);
    s->client = ctx(client_cert, client_key, pki.ca, SRV_TLS_CLIENT);
    struct srv_peers_config c = {
        .self_id = id,
        .cluster_id = CLUSTER,
        .backoff_min_ms = 10,
        .backoff_max_ms = 50,
        .recv_cb = on_recv,
        .data = s,
        .tls_server = s->server,
        .tls_client = s->client,
    };
    ck_assert_int_eq(srv_peers_new(&loop, &c, &s->p), 0);
    ck_assert_int_eq(srv_peers_listen(s->p, "127.0.0.1", 0), 0);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until cond(arg) or about ms passed (bounded: no test can hang). */
static bool run_until(bool (*cond)(void *), void *arg, uint64_t ms)
{
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    bool ok = false;
    uint64_t start = uv_now(&loop);
    while (!(ok = cond(arg)) && uv_now(&loop) - start < ms)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return ok;
}

static uint64_t want;
static bool got_enough(void *arg)
{
    return ((struct side *)arg)->got >= want;
}

static int send_msg(struct side *from, uint64_t to, uint64_t i)
{
    uint8_t buf[8 + 500];
    memcpy(buf, &i, 8);
    memset(buf + 8, (uint8_t)(i * 7), i % 500);
    return srv_peers_send(from->p, to, buf, 8 + i % 500);
}

/* Sends MSGS messages a -> b, each once the transport takes it, until b got them all. */
static bool deliver(struct side *a, struct side *b, uint64_t ms)
{
    uint64_t start = uv_now(&loop);
    for (uint64_t i = b->got; i < MSGS && uv_now(&loop) - start < ms;) {
        if (send_msg(a, b->id, i) == 0) {
            i++;
            continue;
        }
        uv_run(&loop, UV_RUN_NOWAIT); /* not connected yet (or queue full) */
        want = b->got + 1;
        (void)run_until(got_enough, b, 5);
        if (b->got != i) i = b->got; /* raft would resend; so do we */
    }
    want = MSGS;
    return run_until(got_enough, b, ms);
}

static void closed(void *data)
{
    (*(int *)data)++;
}

/* Closes both transports at once (one left open would keep dialing the other, and the loop
 * would never run dry). */
static void close_pair(struct side *a, struct side *b)
{
    int done = 0;
    srv_peers_close(a->p, closed, &done);
    srv_peers_close(b->p, closed, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(done, 2);
    srv_tls_ctx_free(a->server);
    srv_tls_ctx_free(a->client);
    srv_tls_ctx_free(b->server);
    srv_tls_ctx_free(b->client);
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN); /* as ketchd does: a write to a refused peer fails with EPIPE */
    uv_loop_init(&loop);
    tls_test_pki_make(&pki);
}

static void teardown(void)
{
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    tls_test_pki_remove(&pki);
}

static void connect_pair(struct side *a, struct side *b, const char *host_a, const char *host_b)
{
    ck_assert_int_eq(srv_peers_add(a->p, b->id, "127.0.0.1", srv_peers_port(b->p)), 0);
    ck_assert_int_eq(srv_peers_set_tls_host(a->p, b->id, host_b), 0);
    ck_assert_int_eq(srv_peers_add(b->p, a->id, "127.0.0.1", srv_peers_port(a->p)), 0);
    ck_assert_int_eq(srv_peers_set_tls_host(b->p, a->id, host_a), 0);
}

START_TEST(test_peers_tls_deliver_every_message_in_order_both_ways)
{
    struct side a, b;
    make(&a, 1, pki.client, pki.client_key);
    make(&b, 2, pki.server, pki.server_key); /* a server certificate with clientAuth works */
    connect_pair(&a, &b, "127.0.0.1", "localhost");
    ck_assert(deliver(&a, &b, 10000));
    ck_assert(deliver(&b, &a, 10000));
    ck_assert_uint_eq(a.bad, 0);
    ck_assert_uint_eq(b.bad, 0);
    ck_assert_uint_eq(a.got, MSGS);
    ck_assert_uint_eq(b.got, MSGS);
    struct srv_peer_stats st;
    ck_assert(srv_peers_stats(a.p, 2, &st));
    ck_assert_uint_eq(st.connects, 1);
    close_pair(&a, &b);
}
END_TEST

START_TEST(test_peers_tls_acceptor_refuses_a_dialer_without_a_certificate_of_its_ca)
{
    struct side a, b;
    make(&a, 1, NULL, NULL);               /* presents no certificate */
    make(&b, 2, pki.rogue, pki.rogue_key); /* presents one of another CA */
    connect_pair(&a, &b, "127.0.0.1", "127.0.0.1");
    ck_assert(!deliver(&a, &b, 1500));
    ck_assert(!deliver(&b, &a, 1500));
    ck_assert_uint_eq(a.got, 0);
    ck_assert_uint_eq(b.got, 0);
    close_pair(&a, &b);
}
END_TEST

START_TEST(test_peers_tls_dialer_refuses_a_server_not_named_by_its_certificate)
{
    struct side a, b;
    make(&a, 1, pki.client, pki.client_key);
    make(&b, 2, pki.client, pki.client_key);
    connect_pair(&a, &b, "127.0.0.1", "example.com");
    ck_assert(!deliver(&a, &b, 1500)); /* a expects example.com; b is 127.0.0.1/localhost */
    ck_assert_uint_eq(b.got, 0);
    /* Pointed at the right name, the same transport gets through on its next dial. */
    ck_assert_int_eq(srv_peers_set_tls_host(a.p, 2, "127.0.0.1"), 0);
    ck_assert(deliver(&a, &b, 10000));
    ck_assert_uint_eq(b.bad, 0);
    close_pair(&a, &b);
}
END_TEST

START_TEST(test_peers_tls_host_needs_a_client_context_and_a_known_peer)
{
    struct side a;
    make(&a, 1, pki.client, pki.client_key);
    ck_assert_int_eq(srv_peers_set_tls_host(a.p, 9, "127.0.0.1"), K_ENOTFOUND);
    int done = 0;
    srv_peers_close(a.p, closed, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(done, 1);
    srv_tls_ctx_free(a.server);
    srv_tls_ctx_free(a.client);
    struct srv_peers *p;
    struct srv_peers_config c = { .self_id = 3, .cluster_id = CLUSTER, .recv_cb = on_recv };
    ck_assert_int_eq(srv_peers_new(&loop, &c, &p), 0);
    ck_assert_int_eq(srv_peers_add(p, 4, "127.0.0.1", 9), 0);
    ck_assert_int_eq(srv_peers_set_tls_host(p, 4, "127.0.0.1"), K_ECONFIG);
    done = 0;
    srv_peers_close(p, closed, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(done, 1);
}
END_TEST

Suite *test_server_peers_tls_suite(void)
{
    Suite *s = suite_create("server_peers_tls");
    TCase *tc = tcase_create("tls");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_peers_tls_deliver_every_message_in_order_both_ways);
    tcase_add_test(tc, test_peers_tls_acceptor_refuses_a_dialer_without_a_certificate_of_its_ca);
    tcase_add_test(tc, test_peers_tls_dialer_refuses_a_server_not_named_by_its_certificate);
    tcase_add_test(tc, test_peers_tls_host_needs_a_client_context_and_a_known_peer);
    suite_add_tcase(s, tc);
    return s;
}
