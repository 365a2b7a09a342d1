/* The TLS engine of tls.h: OpenSSL SSL objects between two memory BIOs. Contexts follow
 * etcd 3.4's pkg/transport choices (TLS 1.2 at least; a server with a CA file requires
 * client certificates). Errors are turned into one line of text, here and nowhere else. */
#include "server/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/err.h"

struct srv_tls_ctx {
    SSL_CTX *ssl; /* reference counted by OpenSSL: each SSL made from it holds one */
    enum srv_tls_side side;
    bool verify_peer;
};

struct srv_tls {
    SSL *ssl;
    BIO *in;           /* ciphertext fed, owned by ssl */
    BIO *out;          /* ciphertext produced, owned by ssl */
    struct k_buf held; /* plaintext written before the handshake finished */
    bool handshake_done;
    bool failed;
    bool peer_closed;
    bool notify_sent;
    char err[SRV_TLS_ERR_BYTES];
};

static const unsigned char session_id_context[] = "ketchd";

/* Appends " (OpenSSL: reason; reason)" for the queued errors to out, and clears the queue. */
static void openssl_reasons(char *out, size_t out_len)
{
    size_t n = strlen(out);
    unsigned long e;
    bool first = true;
    while ((e = ERR_get_error()) != 0) {
        if (n + 4 >= out_len) continue; /* drain the queue even when out is full */
        const char *reason = ERR_reason_error_string(e);
        char num[32];
        if (reason == NULL) {
            snprintf(num, sizeof(num), "error %lx", e);
            reason = num;
        }
        if (!first && strstr(out, reason) != NULL) continue; /* OpenSSL repeats itself */
        n += (size_t)snprintf(out + n, out_len - n, "%s%s", first ? " (OpenSSL: " : "; ", reason);
        first = false;
    }
    if (!first && n + 1 < out_len) snprintf(out + n, out_len - n, ")");
}

/* Fails naming flag and path when path cannot be opened for reading; OpenSSL's own errors
 * for a missing file are less clear than errno's. */
static int check_readable(const char *flag, const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return k_errf(err, err_len, K_ECONFIG, "%s %s: cannot read it: %s", flag, path,
                      strerror(errno));
    fclose(f);
    return 0;
}

/* Refuses encrypted keys without prompting on a terminal: etcd takes unencrypted keys. */
static int no_passphrase_cb(char *buf, int size, int rwflag, void *data)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)data;
    return -1;
}

static int load_key(SSL_CTX *ssl, const struct srv_tls_files *f, const char *prefix, char *err,
                    size_t err_len)
{
    char flag[64];
    snprintf(flag, sizeof(flag), "--%skey-file", prefix);
    int rc = check_readable(flag, f->key_file, err, err_len);
    if (rc < 0) return rc;
    BIO *bio = BIO_new_file(f->key_file, "r");
    if (bio == NULL) {
        k_errf(err, err_len, K_ECONFIG, "%s %s: cannot open it", flag, f->key_file);
        openssl_reasons(err, err_len);
        return K_ECONFIG;
    }
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase_cb, NULL);
    BIO_free(bio);
    if (key == NULL) {
        k_errf(err, err_len, K_ECONFIG,
               "%s %s: no unencrypted PEM private key in it (give the key of --%scert-file, "
               "without a passphrase)",
               flag, f->key_file, prefix);
        openssl_reasons(err, err_len);
        return K_ECONFIG;
    }
    int ok = SSL_CTX_use_PrivateKey(ssl, key);
    EVP_PKEY_free(key);
    if (ok != 1 || SSL_CTX_check_private_key(ssl) != 1) {
        k_errf(err, err_len, K_ECONFIG, "%s %s does not match --%scert-file %s", flag, f->key_file,
               prefix, f->cert_file);
        openssl_reasons(err, err_len);
        return K_ECONFIG;
    }
    return 0;
}

static int load_cert_and_key(SSL_CTX *ssl, const struct srv_tls_files *f, const char *prefix,
                             char *err, size_t err_len)
{
    char flag[64];
    snprintf(flag, sizeof(flag), "--%scert-file", prefix);
    int rc = check_readable(flag, f->cert_file, err, err_len);
    if (rc < 0) return rc;
    if (SSL_CTX_use_certificate_chain_file(ssl, f->cert_file) != 1) {
        k_errf(err, err_len, K_ECONFIG, "%s %s: no PEM certificate in it", flag, f->cert_file);
        openssl_reasons(err, err_len);
        return K_ECONFIG;
    }
    return load_key(ssl, f, prefix, err, err_len);
}

static int load_ca(SSL_CTX *ssl, enum srv_tls_side side, const struct srv_tls_files *f,
                   const char *prefix, char *err, size_t err_len)
{
    char flag[64];
    snprintf(flag, sizeof(flag), "--%strusted-ca-file", prefix);
    int rc = check_readable(flag, f->trusted_ca_file, err, err_len);
    if (rc < 0) return rc;
    if (SSL_CTX_load_verify_locations(ssl, f->trusted_ca_file, NULL) != 1) {
        k_errf(err, err_len, K_ECONFIG, "%s %s: no PEM CA certificate in it", flag,
               f->trusted_ca_file);
        openssl_reasons(err, err_len);
        return K_ECONFIG;
    }
    if (side == SRV_TLS_SERVER) {
        /* The CertificateRequest names the acceptable issuers, as Go's ClientCAs does. */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(f->trusted_ca_file);
        if (names == NULL) {
            k_errf(err, err_len, K_ECONFIG, "%s %s: cannot read the CA names", flag,
                   f->trusted_ca_file);
            openssl_reasons(err, err_len);
            return K_ECONFIG;
        }
        SSL_CTX_set_client_CA_list(ssl, names);
    }
    return 0;
}

/* ALPN: HTTP/1.1 is the only protocol served; a client offering only h2 gets no answer
 * (and then speaks HTTP/1.1 or gives up, its choice). */
static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *out_len,
                          const unsigned char *in, unsigned int in_len, void *data)
{
    (void)ssl;
    (void)data;
    static const unsigned char http11[] = "http/1.1";
    unsigned int i = 0;
    while (i < in_len) {
        unsigned int n = in[i];
        if (n == sizeof(http11) - 1 && i + 1 + n <= in_len && memcmp(in + i + 1, http11, n) == 0) {
            *out = in + i + 1;
            *out_len = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static int configure(struct srv_tls_ctx *c, const struct srv_tls_files *f, const char *prefix,
                     char *err, size_t err_len)
{
    SSL_CTX *ssl = c->ssl;
    /* etcd's pkg/transport sets MinVersion TLS 1.2 on both sides. */
    if (SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION) != 1) {
        k_errf(err, err_len, K_ECONFIG, "cannot set the lowest TLS version");
        openssl_reasons(err, err_len);
        return K_ECONFIG;
    }
    SSL_CTX_set_options(ssl, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* Idle connections give back their record buffers (up to 10000 client connections). */
    SSL_CTX_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(ssl, no_passphrase_cb);
    if (f->cert_file != NULL) {
        int rc = load_cert_and_key(ssl, f, prefix, err, err_len);
        if (rc < 0) return rc;
    }
    if (f->trusted_ca_file != NULL) {
        int rc = load_ca(ssl, c->side, f, prefix, err, err_len);
        if (rc < 0) return rc;
    } else if (c->side == SRV_TLS_CLIENT && SSL_CTX_set_default_verify_paths(ssl) != 1) {
        k_errf(err, err_len, K_ECONFIG,
               "cannot load the system's CA certificates (give --%strusted-ca-file)", prefix);
        openssl_reasons(err, err_len);
        return K_ECONFIG;
    }
    if (c->side == SRV_TLS_SERVER) {
        /* etcd 3.4: a CA file alone already means RequireAndVerifyClientCert. */
        c->verify_peer = f->trusted_ca_file != NULL || f->client_cert_auth;
        if (c->verify_peer) {
            SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        }
        SSL_CTX_set_session_id_context(ssl, session_id_context, sizeof(session_id_context) - 1);
        SSL_CTX_set_alpn_select_cb(ssl, alpn_select_cb, NULL);
    } else {
        c->verify_peer = true;
        SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    }
    return 0;
}

int srv_tls_ctx_new(const struct srv_tls_files *files, enum srv_tls_side side,
                    const char *flag_prefix, struct srv_tls_ctx **out, char *err, size_t err_len)
{
    *out = NULL;
    if (side == SRV_TLS_SERVER && (files->cert_file == NULL || files->key_file == NULL)) {
        return k_errf(err, err_len, K_ECONFIG,
                      "TLS on this port needs --%scert-file and --%skey-file", flag_prefix,
                      flag_prefix);
    }
    if ((files->cert_file == NULL) != (files->key_file == NULL)) {
        return k_errf(err, err_len, K_ECONFIG,
                      "--%scert-file and --%skey-file must be given together", flag_prefix,
                      flag_prefix);
    }
    ERR_clear_error();
    struct srv_tls_ctx *c = k_xcalloc(1, sizeof(*c));
    c->side = side;
    c->ssl = SSL_CTX_new(side == SRV_TLS_SERVER ? TLS_server_method() : TLS_client_method());
    if (c->ssl == NULL) {
        k_errf(err, err_len, K_ECONFIG, "cannot create a TLS context");
        openssl_reasons(err, err_len);
        free(c);
        return K_ECONFIG;
    }
    int rc = configure(c, files, flag_prefix, err, err_len);
    if (rc < 0) {
        srv_tls_ctx_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void srv_tls_ctx_free(struct srv_tls_ctx *ctx)
{
    if (ctx == NULL) return;
    SSL_CTX_free(ctx->ssl);
    free(ctx);
}

enum srv_tls_side srv_tls_ctx_side(const struct srv_tls_ctx *ctx)
{
    return ctx->side;
}

bool srv_tls_ctx_verifies_peer(const struct srv_tls_ctx *ctx)
{
    return ctx->verify_peer;
}

/* ---- connections ---- */

static bool host_is_ip(const char *host)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

/* The dialer checks the server's certificate names the address it dialed, as Go's
 * crypto/tls does with ServerName set from the URL's host. */
static int set_expected_host(SSL *ssl, const char *host)
{
    if (host_is_ip(host)) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        return X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1 ? 0 : K_ECONFIG;
    }
    if (SSL_set_tlsext_host_name(ssl, host) != 1) return K_ECONFIG; /* SNI */
    return SSL_set1_host(ssl, host) == 1 ? 0 : K_ECONFIG;
}

int srv_tls_new(struct srv_tls_ctx *ctx, const char *host, struct srv_tls **out)
{
    *out = NULL;
    k_assert(host == NULL || ctx->side == SRV_TLS_CLIENT);
    ERR_clear_error();
    struct srv_tls *t = k_xcalloc(1, sizeof(*t));
    k_buf_init(&t->held);
    t->ssl = SSL_new(ctx->ssl);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    /* Only allocation fails here; abort as k_xmalloc would (STYLE.md §2). */
    k_assert(t->ssl != NULL);
    k_assert(t->in != NULL);
    k_assert(t->out != NULL);
    SSL_set_bio(t->ssl, t->in, t->out); /* ssl owns both from here */
    if (ctx->side == SRV_TLS_SERVER) {
        SSL_set_accept_state(t->ssl);
        *out = t;
        return 0;
    }
    SSL_set_connect_state(t->ssl);
    if (host != NULL && set_expected_host(t->ssl, host) < 0) {
        srv_tls_free(t);
        ERR_clear_error();
        return K_ECONFIG;
    }
    /* The ClientHello goes out at once; the caller takes it with the output. */
    size_t n;
    int rc = srv_tls_read(t, NULL, 0, &n);
    if (rc < 0) {
        srv_tls_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void srv_tls_free(struct srv_tls *t)
{
    if (t == NULL) return;
    SSL_free(t->ssl); /* frees both BIOs */
    k_buf_free(&t->held);
    free(t);
}

void srv_tls_feed(struct srv_tls *t, const void *data, size_t len)
{
    k_assert(len <= INT32_MAX);
    if (len == 0 || t->failed) return;
    /* A memory BIO grows to take what it is given; only allocation can fail. */
    int n = BIO_write(t->in, data, (int)len);
    k_assert(n == (int)len);
}

size_t srv_tls_fed_bytes(const struct srv_tls *t)
{
    return BIO_ctrl_pending(t->in) + (size_t)SSL_pending(t->ssl);
}

/* Records why t failed; what as in "handshake failed". */
static int tls_fail(struct srv_tls *t, const char *what, int ssl_error)
{
    t->failed = true;
    snprintf(t->err, sizeof(t->err), "%s", what);
    long verify = SSL_get_verify_result(t->ssl);
    size_t n = strlen(t->err);
    if (ERR_peek_error() != 0) {
        openssl_reasons(t->err, sizeof(t->err));
    } else if (ssl_error == SSL_ERROR_SYSCALL) {
        snprintf(t->err + n, sizeof(t->err) - n, " (the other side ended the stream)");
    } else {
        snprintf(t->err + n, sizeof(t->err) - n, " (SSL error %d)", ssl_error);
    }
    n = strlen(t->err);
    if (verify != X509_V_OK && n + 1 < sizeof(t->err)) {
        snprintf(t->err + n, sizeof(t->err) - n, ": certificate: %s",
                 X509_verify_cert_error_string(verify));
    }
    return K_EPROTO;
}

static int write_now(struct srv_tls *t, const void *data, size_t len)
{
    ERR_clear_error();
    size_t done = 0;
    while (done < len) {
        size_t n = 0;
        int ok = SSL_write_ex(t->ssl, (const char *)data + done, len - done, &n);
        if (ok != 1) return tls_fail(t, "write failed", SSL_get_error(t->ssl, ok));
        done += n;
    }
    return 0;
}

static int handshake_step(struct srv_tls *t)
{
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->handshake_done = true;
        if (t->held.len == 0) return 0;
        int rc = write_now(t, t->held.data, t->held.len);
        k_buf_free(&t->held);
        k_buf_init(&t->held);
        return rc;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    return tls_fail(t, "handshake failed", e);
}

int srv_tls_read(struct srv_tls *t, void *buf, size_t cap, size_t *n)
{
    *n = 0;
    if (t->failed) return K_EPROTO;
    if (t->peer_closed) return SRV_TLS_CLOSED;
    ERR_clear_error();
    if (!t->handshake_done) {
        int rc = handshake_step(t);
        if (rc < 0) return rc;
        if (!t->handshake_done) return 0;
    }
    if (cap == 0) return 0;
    int ok = SSL_read_ex(t->ssl, buf, cap, n);
    if (ok == 1) return 0;
    *n = 0;
    int e = SSL_get_error(t->ssl, ok);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    if (e == SSL_ERROR_ZERO_RETURN) {
        t->peer_closed = true;
        return SRV_TLS_CLOSED;
    }
    return tls_fail(t, "reading a record failed", e);
}

int srv_tls_write(struct srv_tls *t, const void *data, size_t len)
{
    if (t->failed || t->notify_sent) return K_EPROTO;
    if (len == 0) return 0;
    if (!t->handshake_done) {
        k_buf_append(&t->held, data, len);
        return 0;
    }
    return write_now(t, data, len);
}

void srv_tls_close_notify(struct srv_tls *t)
{
    if (t->notify_sent || t->failed || !t->handshake_done) return;
    t->notify_sent = true;
    ERR_clear_error();
    /* 0: our close_notify is queued and the other side's has not come; that is all we
     * want, as the socket closes after it. */
    int r = SSL_shutdown(t->ssl);
    if (r < 0) ERR_clear_error();
}

size_t srv_tls_output_bytes(const struct srv_tls *t)
{
    return BIO_ctrl_pending(t->out);
}

char *srv_tls_take_output(struct srv_tls *t, size_t *len)
{
    size_t n = BIO_ctrl_pending(t->out);
    *len = 0;
    if (n == 0) return NULL;
    k_assert(n <= INT32_MAX);
    char *buf = k_xmalloc(n);
    int got = BIO_read(t->out, buf, (int)n);
    k_assert(got == (int)n);
    *len = n;
    return buf;
}

bool srv_tls_handshake_done(const struct srv_tls *t)
{
    return t->handshake_done;
}

bool srv_tls_failed(const struct srv_tls *t)
{
    return t->failed;
}

const char *srv_tls_error(const struct srv_tls *t)
{
    return t->err;
}
