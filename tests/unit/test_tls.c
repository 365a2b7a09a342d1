/* The TLS engine (server/tls.h) with two engines talking through memory: handshakes, data
 * both ways byte for byte, etcd's client-certificate policy, the dialer's checks of the
 * server, clear load errors naming the flag, and garbage that fails the connection without
 * harm. Certificates are made at run time (tls_test_util.h). */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/prng.h"
#include "server/tls.h"
#include "tls_test_util.h"

Suite *test_tls_suite(void);

static struct tls_test_pki pki;

static void setup(void)
{
    tls_test_pki_make(&pki);
}

static void teardown(void)
{
    tls_test_pki_remove(&pki);
}

static struct srv_tls_files files(const char *cert, const char *key, const char *ca, bool auth)
{
    struct srv_tls_files f = {
        .cert_file = (char *)cert,
        .key_file = (char *)key,
        .trusted_ca_file = (char *)ca,
        .client_cert_auth = auth,
    };
    return f;
}

static struct srv_tls_ctx *ctx_ok(struct srv_tls_files f, enum srv_tls_side side)
{
    struct srv_tls_ctx *ctx = NULL;
    char err[SRV_TLS_ERR_BYTES] = "";
    int rc = srv_tls_ctx_new(&f, side, "", &ctx, err, sizeof(err));
    ck_assert_msg(rc == 0, "srv_tls_ctx_new: %s", err);
    ck_assert_ptr_nonnull(ctx);
    return ctx;
}

/* Expects srv_tls_ctx_new to fail with an error containing each of the needles. */
static void ctx_fails(struct srv_tls_files f, enum srv_tls_side side, const char *prefix,
                      const char *needle1, const char *needle2)
{
    struct srv_tls_ctx *ctx = NULL;
    char err[SRV_TLS_ERR_BYTES] = "";
    int rc = srv_tls_ctx_new(&f, side, prefix, &ctx, err, sizeof(err));
    ck_assert_int_eq(rc, K_ECONFIG);
    ck_assert_ptr_null(ctx);
    ck_assert_msg(strstr(err, needle1) != NULL, "'%s' not in: %s", needle1, err);
    ck_assert_msg(strstr(err, needle2) != NULL, "'%s' not in: %s", needle2, err);
    ck_assert_ptr_null(strchr(err, '\n')); /* one line */
}

/* One end of an in-memory connection and everything it has read. */
struct end {
    struct srv_tls *t;
    struct k_buf got;
    int rc; /* last non-zero srv_tls_read result, 0 if none */
};

static bool shuttle(struct end *from, struct end *to)
{
    size_t len;
    char *bytes = srv_tls_take_output(from->t, &len);
    if (bytes == NULL) return false;
    srv_tls_feed(to->t, bytes, len);
    free(bytes);
    return true;
}

static void drain(struct end *e, size_t cap)
{
    char buf[4096];
    ck_assert_uint_le(cap, sizeof(buf));
    for (int i = 0; i < 100000 && e->rc == 0; i++) {
        size_t n = 0;
        int rc = srv_tls_read(e->t, buf, cap, &n);
        if (rc != 0) {
            e->rc = rc;
            ck_assert_uint_eq(n, 0);
            return;
        }
        if (n == 0) return;
        k_buf_append(&e->got, buf, n);
    }
}

/* Moves bytes both ways until neither side has anything to say. */
static void pump_cap(struct end *a, struct end *b, size_t cap)
{
    for (int i = 0; i < 1000; i++) {
        drain(a, cap);
        drain(b, cap);
        bool moved = shuttle(a, b);
        moved = shuttle(b, a) || moved;
        if (!moved) {
            drain(a, cap);
            drain(b, cap);
            return;
        }
    }
    ck_abort_msg("the engines kept talking for 1000 rounds");
}

static void pump(struct end *a, struct end *b)
{
    pump_cap(a, b, 4096);
}

static void end_free(struct end *e)
{
    srv_tls_free(e->t);
    k_buf_free(&e->got);
}

static void connect_pair(struct srv_tls_ctx *client_ctx, struct srv_tls_ctx *server_ctx,
                         const char *host, struct end *c, struct end *s)
{
    memset(c, 0, sizeof(*c));
    memset(s, 0, sizeof(*s));
    ck_assert_int_eq(srv_tls_new(client_ctx, host, &c->t), 0);
    ck_assert_int_eq(srv_tls_new(server_ctx, NULL, &s->t), 0);
    pump(c, s);
}

START_TEST(test_tls_handshake_then_large_data_both_ways_arrives_unchanged)
{
    struct srv_tls_ctx *sctx =
            ctx_ok(files(pki.server, pki.server_key, NULL, false), SRV_TLS_SERVER);
    struct srv_tls_ctx *cctx = ctx_ok(files(NULL, NULL, pki.ca, false), SRV_TLS_CLIENT);
    ck_assert(!srv_tls_ctx_verifies_peer(sctx));
    struct end c, s;
    connect_pair(cctx, sctx, "127.0.0.1", &c, &s);
    ck_assert(srv_tls_handshake_done(c.t));
    ck_assert(srv_tls_handshake_done(s.t));
    ck_assert_int_eq(c.rc, 0);
    ck_assert_int_eq(s.rc, 0);

    enum { BYTES = 1 << 20 };
    uint8_t *up = malloc(BYTES), *down = malloc(BYTES);
    struct k_prng prng;
    k_prng_init(&prng, 7);
    for (size_t i = 0; i < BYTES; i++) {
        up[i] = (uint8_t)k_prng_next(&prng);
        down[i] = (uint8_t)k_prng_next(&prng);
    }
    /* In uneven pieces, so records do not line up with writes. */
    for (size_t off = 0, step = 1; off < BYTES; off += step, step = step * 3 % 40000 + 1) {
        size_t n = off + step > BYTES ? BYTES - off : step;
        ck_assert_int_eq(srv_tls_write(c.t, up + off, n), 0);
        ck_assert_int_eq(srv_tls_write(s.t, down + off, n), 0);
        if (off % 7 == 0) pump(&c, &s);
    }
    pump(&c, &s);
    ck_assert_uint_eq(s.got.len, BYTES);
    ck_assert_uint_eq(c.got.len, BYTES);
    ck_assert_mem_eq(s.got.data, up, BYTES);
    ck_assert_mem_eq(c.got.data, down, BYTES);
    ck_assert_uint_eq(srv_tls_fed_bytes(s.t), 0);
    ck_assert_str_eq(srv_tls_error(s.t), "");
    free(up);
    free(down);
    end_free(&c);
    end_free(&s);
    srv_tls_ctx_free(cctx);
    srv_tls_ctx_free(sctx);
}
END_TEST

START_TEST(test_tls_reads_into_a_one_byte_buffer_lose_nothing)
{
    struct srv_tls_ctx *sctx =
            ctx_ok(files(pki.server, pki.server_key, NULL, false), SRV_TLS_SERVER);
    struct srv_tls_ctx *cctx = ctx_ok(files(NULL, NULL, pki.ca, false), SRV_TLS_CLIENT);
    struct end c, s;
    connect_pair(cctx, sctx, "localhost", &c, &s);
    static const char msg[] = "GET /v2/keys/foo HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(srv_tls_write(c.t, msg, sizeof(msg) - 1), 0);
    pump_cap(&c, &s, 1);
    ck_assert_uint_eq(s.got.len, sizeof(msg) - 1);
    ck_assert_mem_eq(s.got.data, msg, sizeof(msg) - 1);
    end_free(&c);
    end_free(&s);
    srv_tls_ctx_free(cctx);
    srv_tls_ctx_free(sctx);
}
END_TEST

START_TEST(test_tls_client_writes_before_the_handshake_arrive_after_it)
{
    struct srv_tls_ctx *sctx =
            ctx_ok(files(pki.server, pki.server_key, NULL, false), SRV_TLS_SERVER);
    struct srv_tls_ctx *cctx = ctx_ok(files(NULL, NULL, pki.ca, false), SRV_TLS_CLIENT);
    struct end c = { 0 }, s = { 0 };
    ck_assert_int_eq(srv_tls_new(cctx, "127.0.0.1", &c.t), 0);
    ck_assert_uint_gt(srv_tls_output_bytes(c.t), 0); /* the ClientHello, at once */
    ck_assert_int_eq(srv_tls_write(c.t, "HELLO", 5), 0);
    ck_assert_int_eq(srv_tls_write(c.t, "FRAME", 5), 0);
    ck_assert(!srv_tls_handshake_done(c.t));
    ck_assert_int_eq(srv_tls_new(sctx, NULL, &s.t), 0);
    ck_assert_uint_eq(srv_tls_output_bytes(s.t), 0); /* a server waits for the client */
    pump(&c, &s);
    ck_assert_uint_eq(s.got.len, 10);
    ck_assert_mem_eq(s.got.data, "HELLOFRAME", 10);
    end_free(&c);
    end_free(&s);
    srv_tls_ctx_free(cctx);
    srv_tls_ctx_free(sctx);
}
END_TEST

START_TEST(test_tls_server_with_a_ca_refuses_a_client_without_certificate)
{
    /* etcd 3.4: --trusted-ca-file alone means RequireAndVerifyClientCert. */
    struct srv_tls_ctx *sctx =
            ctx_ok(files(pki.server, pki.server_key, pki.ca, false), SRV_TLS_SERVER);
    ck_assert(srv_tls_ctx_verifies_peer(sctx));
    struct srv_tls_ctx *cctx = ctx_ok(files(NULL, NULL, pki.ca, false), SRV_TLS_CLIENT);
    struct end c, s;
    connect_pair(cctx, sctx, "127.0.0.1", &c, &s);
    ck_assert_int_eq(s.rc, K_EPROTO);
    ck_assert(srv_tls_failed(s.t));
    ck_assert(!srv_tls_handshake_done(s.t));
    ck_assert_msg(strstr(srv_tls_error(s.t), "handshake failed") != NULL, "%s", srv_tls_error(s.t));
    ck_assert_msg(strstr(srv_tls_error(s.t), "certificate") != NULL, "%s", srv_tls_error(s.t));
    /* The alert reached the client, which fails too instead of waiting. */
    ck_assert_int_eq(c.rc, K_EPROTO);
    ck_assert_int_eq(srv_tls_write(s.t, "x", 1), K_EPROTO);
    end_free(&c);
    end_free(&s);
    srv_tls_ctx_free(cctx);
    srv_tls_ctx_free(sctx);
}
END_TEST

START_TEST(test_tls_server_refuses_a_client_certificate_of_another_ca)
{
    struct srv_tls_ctx *sctx =
            ctx_ok(files(pki.server, pki.server_key, pki.ca, true), SRV_TLS_SERVER);
    struct srv_tls_ctx *cctx =
            ctx_ok(files(pki.rogue, pki.rogue_key, pki.ca, false), SRV_TLS_CLIENT);
    struct end c, s;
    connect_pair(cctx, sctx, "127.0.0.1", &c, &s);
    ck_assert_int_eq(s.rc, K_EPROTO);
    ck_assert_msg(strstr(srv_tls_error(s.t), "unable to get local issuer certificate") != NULL,
                  "%s", srv_tls_error(s.t));
    ck_assert_int_eq(c.rc, K_EPROTO);
    end_free(&c);
    end_free(&s);
    srv_tls_ctx_free(cctx);
    srv_tls_ctx_free(sctx);
}
END_TEST

START_TEST(test_tls_server_accepts_a_client_certificate_of_its_ca)
{
    struct srv_tls_ctx *sctx =
            ctx_ok(files(pki.server, pki.server_key, pki.ca, true), SRV_TLS_SERVER);
    struct srv_tls_ctx *cctx =
            ctx_ok(files(pki.client, pki.client_key, pki.ca, false), SRV_TLS_CLIENT);
    struct end c, s;
    connect_pair(cctx, sctx, "127.0.0.1", &c, &s);
    ck_assert_int_eq(s.rc, 0);
    ck_assert_int_eq(c.rc, 0);
    ck_assert(srv_tls_handshake_done(s.t));
    ck_assert_int_eq(srv_tls_write(c.t, "ping", 4), 0);
    pump(&c, &s);
    ck_assert_uint_eq(s.got.len, 4);
    ck_assert_mem_eq(s.got.data, "ping", 4);
    end_free(&c);
    end_free(&s);
    srv_tls_ctx_free(cctx);
    srv_tls_ctx_free(sctx);
}
END_TEST

START_TEST(test_tls_client_refuses_a_server_of_an_unknown_ca)
{
    struct srv_tls_ctx *sctx =
            ctx_ok(files(pki.server, pki.server_key, NULL, false), SRV_TLS_SERVER);
    struct srv_tls_ctx *cctx = ctx_ok(files(NULL, NULL, pki.other_ca, false), SRV_TLS_CLIENT);
    struct end c, s;
    connect_pair(cctx, sctx, "127.0.0.1", &c, &s);
    ck_assert_int_eq(c.rc, K_EPROTO);
    ck_assert(!srv_tls_handshake_done(c.t));
    ck_assert_msg(strstr(srv_tls_error(c.t), "certificate verify failed") != NULL, "%s",
                  srv_tls_error(c.t));
    ck_assert_msg(strstr(srv_tls_error(c.t), "unable to get local issuer certificate") != NULL,
                  "%s", srv_tls_error(c.t));
    ck_assert_int_eq(s.rc, K_EPROTO); /* the client's alert */
    end_free(&c);
    end_free(&s);
    srv_tls_ctx_free(cctx);
    srv_tls_ctx_free(sctx);
}
END_TEST

/* The server certificate carries IP 127.0.0.1 and DNS localhost. */
static int dial_result(const char *host)
{
    struct srv_tls_ctx *sctx =
            ctx_ok(files(pki.server, pki.server_key, NULL, false), SRV_TLS_SERVER);
    struct srv_tls_ctx *cctx = ctx_ok(files(NULL, NULL, pki.ca, false), SRV_TLS_CLIENT);
    struct end c, s;
    connect_pair(cctx, sctx, host, &c, &s);
    int rc = c.rc;
    if (rc == 0) ck_assert(srv_tls_handshake_done(c.t));
    if (rc != 0) {
        ck_assert_msg(strstr(srv_tls_error(c.t), "mismatch") != NULL, "%s", srv_tls_error(c.t));
    }
    end_free(&c);
    end_free(&s);
    srv_tls_ctx_free(cctx);
    srv_tls_ctx_free(sctx);
    return rc;
}

START_TEST(test_tls_client_checks_the_dialed_address_is_in_the_certificate)
{
    ck_assert_int_eq(dial_result("127.0.0.1"), 0);
    ck_assert_int_eq(dial_result("localhost"), 0);
    ck_assert_int_eq(dial_result("127.0.0.2"), K_EPROTO);
    ck_assert_int_eq(dial_result("::1"), K_EPROTO);
    ck_assert_int_eq(dial_result("example.com"), K_EPROTO);
}
END_TEST

START_TEST(test_tls_close_notify_ends_the_other_sides_stream)
{
    struct srv_tls_ctx *sctx =
            ctx_ok(files(pki.server, pki.server_key, NULL, false), SRV_TLS_SERVER);
    struct srv_tls_ctx *cctx = ctx_ok(files(NULL, NULL, pki.ca, false), SRV_TLS_CLIENT);
    struct end c, s;
    connect_pair(cctx, sctx, "127.0.0.1", &c, &s);
    ck_assert_int_eq(srv_tls_write(s.t, "last words", 10), 0);
    srv_tls_close_notify(s.t);
    ck_assert_int_eq(srv_tls_write(s.t, "more", 4), K_EPROTO);
    pump(&c, &s);
    ck_assert_uint_eq(c.got.len, 10); /* what came before the alert is kept */
    ck_assert_mem_eq(c.got.data, "last words", 10);
    ck_assert_int_eq(c.rc, SRV_TLS_CLOSED);
    ck_assert(!srv_tls_failed(c.t));
    size_t n = 99;
    char b[8];
    ck_assert_int_eq(srv_tls_read(c.t, b, sizeof(b), &n), SRV_TLS_CLOSED);
    ck_assert_uint_eq(n, 0);
    end_free(&c);
    end_free(&s);
    srv_tls_ctx_free(cctx);
    srv_tls_ctx_free(sctx);
}
END_TEST

START_TEST(test_tls_plain_http_to_a_tls_server_fails_the_connection)
{
    struct srv_tls_ctx *sctx =
            ctx_ok(files(pki.server, pki.server_key, NULL, false), SRV_TLS_SERVER);
    struct srv_tls *t;
    ck_assert_int_eq(srv_tls_new(sctx, NULL, &t), 0);
    static const char req[] = "GET /v2/keys/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    srv_tls_feed(t, req, sizeof(req) - 1);
    ck_assert_uint_eq(srv_tls_fed_bytes(t), sizeof(req) - 1);
    char buf[64];
    size_t n = 1;
    ck_assert_int_eq(srv_tls_read(t, buf, sizeof(buf), &n), K_EPROTO);
    ck_assert_uint_eq(n, 0);
    ck_assert_msg(strstr(srv_tls_error(t), "handshake failed") != NULL, "%s", srv_tls_error(t));
    /* Feeding a dead connection more is harmless and stays failed. */
    srv_tls_feed(t, req, sizeof(req) - 1);
    ck_assert_int_eq(srv_tls_read(t, buf, sizeof(buf), &n), K_EPROTO);
    srv_tls_free(t);
    srv_tls_ctx_free(sctx);
}
END_TEST

START_TEST(test_tls_random_bytes_fail_the_handshake_without_harm)
{
    struct srv_tls_ctx *sctx =
            ctx_ok(files(pki.server, pki.server_key, pki.ca, true), SRV_TLS_SERVER);
    uint64_t seed = 20261122;
    const char *env = getenv("KETCH_SEED");
    if (env) seed = strtoull(env, NULL, 0);
    fprintf(stderr, "test_tls random garbage: seed %llu (KETCH_SEED replays)\n",
            (unsigned long long)seed);
    struct k_prng prng;
    k_prng_init(&prng, seed);
    int failed = 0;
    for (int round = 0; round < 300; round++) {
        struct srv_tls *t;
        ck_assert_int_eq(srv_tls_new(sctx, NULL, &t), 0);
        uint8_t junk[2048];
        size_t len = 1 + k_prng_below(&prng, sizeof(junk));
        for (size_t i = 0; i < len; i++)
            junk[i] = (uint8_t)k_prng_next(&prng);
        if (round % 3 == 0) junk[0] = 0x16; /* looks like a handshake record */
        if (round % 3 == 0 && len > 2) junk[1] = 0x03;
        srv_tls_feed(t, junk, len);
        char buf[256];
        size_t n;
        int rc = srv_tls_read(t, buf, sizeof(buf), &n);
        ck_assert(rc == 0 || rc == K_EPROTO);
        ck_assert_uint_eq(n, 0); /* never plaintext out of garbage */
        ck_assert(!srv_tls_handshake_done(t));
        failed += rc == K_EPROTO;
        size_t out_len;
        free(srv_tls_take_output(t, &out_len)); /* alerts, if any */
        srv_tls_free(t);
    }
    ck_assert_int_gt(failed, 250); /* a few may wait for the rest of a plausible record */
    srv_tls_ctx_free(sctx);
}
END_TEST

START_TEST(test_tls_load_errors_name_the_flag_and_the_cause)
{
    ctx_fails(files(pki.missing, pki.server_key, NULL, false), SRV_TLS_SERVER, "", "--cert-file ",
              "No such file or directory");
    ctx_fails(files(pki.server, pki.missing, NULL, false), SRV_TLS_SERVER, "peer-",
              "--peer-key-file ", "No such file or directory");
    ctx_fails(files(pki.server, pki.client_key, NULL, false), SRV_TLS_SERVER, "", "--key-file ",
              "does not match --cert-file");
    ctx_fails(files(pki.garbage, pki.server_key, NULL, false), SRV_TLS_SERVER, "", "--cert-file ",
              "no PEM certificate");
    ctx_fails(files(pki.server, pki.garbage, NULL, false), SRV_TLS_SERVER, "", "--key-file ",
              "no unencrypted PEM private key");
    ctx_fails(files(pki.server, pki.enc_key, NULL, false), SRV_TLS_SERVER, "", "--key-file ",
              "without a passphrase");
    ctx_fails(files(pki.server, pki.server_key, pki.missing, true), SRV_TLS_SERVER, "peer-",
              "--peer-trusted-ca-file ", "No such file or directory");
    ctx_fails(files(pki.server, pki.server_key, pki.garbage, true), SRV_TLS_SERVER, "",
              "--trusted-ca-file ", "no PEM CA certificate");
    ctx_fails(files(NULL, NULL, NULL, false), SRV_TLS_SERVER, "", "--cert-file", "--key-file");
    ctx_fails(files(pki.client, NULL, pki.ca, false), SRV_TLS_CLIENT, "peer-", "--peer-cert-file",
              "together");
    /* The path is named too. */
    ctx_fails(files(pki.missing, pki.server_key, NULL, false), SRV_TLS_SERVER, "", pki.missing,
              "cannot read it");
}
END_TEST

START_TEST(test_tls_a_client_without_a_ca_file_uses_the_system_store)
{
    struct srv_tls_ctx *cctx = ctx_ok(files(NULL, NULL, NULL, false), SRV_TLS_CLIENT);
    ck_assert_int_eq(srv_tls_ctx_side(cctx), SRV_TLS_CLIENT);
    struct srv_tls_ctx *sctx =
            ctx_ok(files(pki.server, pki.server_key, NULL, false), SRV_TLS_SERVER);
    struct end c, s;
    connect_pair(cctx, sctx, "127.0.0.1", &c, &s);
    ck_assert_int_eq(c.rc, K_EPROTO); /* our test CA is not in the system's store */
    end_free(&c);
    end_free(&s);
    srv_tls_ctx_free(cctx);
    srv_tls_ctx_free(sctx);
}
END_TEST

Suite *test_tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("engine");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_tls_handshake_then_large_data_both_ways_arrives_unchanged);
    tcase_add_test(tc, test_tls_reads_into_a_one_byte_buffer_lose_nothing);
    tcase_add_test(tc, test_tls_client_writes_before_the_handshake_arrive_after_it);
    tcase_add_test(tc, test_tls_server_with_a_ca_refuses_a_client_without_certificate);
    tcase_add_test(tc, test_tls_server_refuses_a_client_certificate_of_another_ca);
    tcase_add_test(tc, test_tls_server_accepts_a_client_certificate_of_its_ca);
    tcase_add_test(tc, test_tls_client_refuses_a_server_of_an_unknown_ca);
    tcase_add_test(tc, test_tls_client_checks_the_dialed_address_is_in_the_certificate);
    tcase_add_test(tc, test_tls_close_notify_ends_the_other_sides_stream);
    tcase_add_test(tc, test_tls_plain_http_to_a_tls_server_fails_the_connection);
    tcase_add_test(tc, test_tls_random_bytes_fail_the_handshake_without_harm);
    tcase_add_test(tc, test_tls_load_errors_name_the_flag_and_the_cause);
    tcase_add_test(tc, test_tls_a_client_without_a_ca_file_uses_the_system_store);
    suite_add_tcase(s, tc);
    return s;
}
