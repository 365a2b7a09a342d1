/* TLS for ketchd's sockets, on OpenSSL with memory BIOs: the engine never touches a socket,
 * so it plugs into libuv streams without blocking. The caller feeds it the ciphertext it
 * read (srv_tls_feed), pulls plaintext out (srv_tls_read), hands it plaintext to send
 * (srv_tls_write), and writes whatever ciphertext the engine has produced
 * (srv_tls_take_output) after every call, handshake records and alerts included.
 *
 * A context (struct srv_tls_ctx) is built once from etcd's TLS flags (server/config.h) and
 * shared by every connection of one port. Policy is etcd 3.4's: a server with a trusted CA
 * file requires and verifies the client's certificate (RequireAndVerifyClientCert), with or
 * without --client-cert-auth; a client (the peer dialer) verifies the server against the CA
 * file, or the system's store without one, including the address it dialed, and presents
 * its own certificate when it has one.
 *
 * Threading: a context may be shared by connections of one thread; a connection is used by
 * one thread at a time. Not here: sockets, framing, what the bytes mean. */
#ifndef KETCH_SERVER_TLS_H
#define KETCH_SERVER_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/assert.h"
#include "server/config.h"

enum srv_tls_side {
    SRV_TLS_SERVER = 0, /* accepts: needs a certificate and key */
    SRV_TLS_CLIENT = 1, /* dials: verifies the server; certificate optional */
};

enum {
    SRV_TLS_ERR_BYTES = 512, /* room for one error text */
    /* Ciphertext a connection may hold fed but not decrypted before its reader stops
     * feeding: a few full records (at most 16 KiB + 256 bytes each). */
    SRV_TLS_FED_BYTES_MAX = 64 << 10,
};

struct srv_tls_ctx;
struct srv_tls;

/* Builds a context for side from files (borrowed for the call; the files are read now).
 * flag_prefix is "" for the client port's flags or "peer-" for the peer port's, so errors
 * name the flag to fix. Loads the certificate chain and key (required for SRV_TLS_SERVER)
 * and checks that they match, and the CA file when given. Returns 0 and *out (free with
 * srv_tls_ctx_free), or K_ECONFIG with one line in err such as
 * `--key-file /etc/k/key.pem: cannot load the private key: No such file or directory` or
 * `--key-file /etc/k/key.pem does not match --cert-file /etc/k/cert.pem (OpenSSL: ...)`. */
K_MUST_USE int srv_tls_ctx_new(const struct srv_tls_files *files, enum srv_tls_side side,
                               const char *flag_prefix, struct srv_tls_ctx **out, char *err,
                               size_t err_len);

/* Releases the caller's reference; connections made from ctx keep it alive until they are
 * freed. NULL is a no-op. */
void srv_tls_ctx_free(struct srv_tls_ctx *ctx);

/* The side ctx was built for. */
enum srv_tls_side srv_tls_ctx_side(const struct srv_tls_ctx *ctx);

/* Whether a server context asks for and verifies client certificates. */
bool srv_tls_ctx_verifies_peer(const struct srv_tls_ctx *ctx);

/* Starts one connection on ctx (which it references). For a client context, host (borrowed
 * for the call) is the name or IP address dialed, which the server's certificate must carry
 * (in its subjectAltName; Go does the same); NULL skips that check. Servers pass NULL.
 * A client connection's first output (its ClientHello) is ready at once: take it and write
 * it. Returns 0 and *out (free with srv_tls_free), or K_ECONFIG when host is unusable. */
K_MUST_USE int srv_tls_new(struct srv_tls_ctx *ctx, const char *host, struct srv_tls **out);

/* Frees t without a close_notify (see srv_tls_close_notify). NULL is a no-op. */
void srv_tls_free(struct srv_tls *t);

/* Gives the engine data[0..len) (copied) read from the socket. The caller stops reading
 * while srv_tls_fed_bytes is above SRV_TLS_FED_BYTES_MAX, so this stays bounded. */
void srv_tls_feed(struct srv_tls *t, const void *data, size_t len);

/* Bytes fed and not yet read out: ciphertext not yet decrypted plus plaintext decrypted but
 * not yet taken by srv_tls_read (when its buffer was smaller than a record). Not 0 means a
 * read may have something to give without more feeding. */
size_t srv_tls_fed_bytes(const struct srv_tls *t);

/* Results of srv_tls_read besides 0: */
enum {
    SRV_TLS_CLOSED = 1, /* the other side sent close_notify: no more plaintext comes */
};

/* Moves up to cap bytes of plaintext into buf, advancing the handshake as needed (which may
 * produce output to take). *n is set to the bytes moved, 0 when the engine needs more
 * ciphertext. Returns 0; SRV_TLS_CLOSED with *n 0 after the other side's close_notify;
 * or K_EPROTO when the handshake or a record failed (srv_tls_error says why; an alert for
 * the other side may be waiting in the output). After K_EPROTO the connection is dead:
 * write its output and close the socket. */
K_MUST_USE int srv_tls_read(struct srv_tls *t, void *buf, size_t cap, size_t *n);

/* Encrypts data[0..len) (borrowed for the call) into the output. Before the handshake has
 * finished the plaintext is kept (copied) and encrypted once it does, so a dialer may queue
 * its first frames at once. Returns 0, or K_EPROTO on a dead connection. */
K_MUST_USE int srv_tls_write(struct srv_tls *t, const void *data, size_t len);

/* Queues a close_notify alert, if the handshake finished and nothing failed; later writes
 * are refused. Take the output afterwards. */
void srv_tls_close_notify(struct srv_tls *t);

/* Ciphertext waiting to be written. */
size_t srv_tls_output_bytes(const struct srv_tls *t);

/* Hands over all waiting ciphertext: a malloc'd buffer the caller frees, with its length in
 * *len; NULL (and *len 0) when there is none. */
char *srv_tls_take_output(struct srv_tls *t, size_t *len);

/* True once the handshake has finished (the other side's certificate, when required, was
 * verified). */
bool srv_tls_handshake_done(const struct srv_tls *t);

/* True after K_EPROTO: the connection cannot carry more data. */
bool srv_tls_failed(const struct srv_tls *t);

/* Why the connection failed: one line naming what OpenSSL said and, for a certificate, what
 * verification found (e.g. `handshake failed: certificate verify failed (unable to get
 * local issuer certificate)`); "" if nothing failed. Valid until t is freed. */
const char *srv_tls_error(const struct srv_tls *t);

#endif
