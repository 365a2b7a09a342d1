/* The TLS engine (tls.h) on a plain non-blocking socket, blocking the caller with poll() up to
 * a deadline: for the one exchange ketchd makes before its loop runs (a joining member asking
 * a peer for the member list, server/peers.h). Not for the loop: that is tls_stream.h. */
#ifndef KETCH_SERVER_TLS_SOCK_H
#define KETCH_SERVER_TLS_SOCK_H

#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "server/tls.h"

/* Waits with poll() until fd is ready for events (POLLIN, POLLOUT) or deadline_ns (k_mono_ns
 * time) passes. Returns 0, K_EUNAVAILABLE when time is up, or a negative errno. Also for the
 * plain-TCP side of the same blocking exchanges. */
K_MUST_USE int srv_sock_wait(int fd, short events, uint64_t deadline_ns);

/* Encrypts data[0..len) (borrowed) and writes what the engine has ready on fd (connected,
 * O_NONBLOCK). Before the handshake has finished the data waits in the engine and goes out
 * from srv_tls_sock_read_full, which drives the handshake. deadline_ns is on k_mono_ns()'s
 * clock. Returns 0, K_EUNAVAILABLE past the deadline, K_EPROTO (srv_tls_error says why), or
 * a negative errno. */
K_MUST_USE int srv_tls_sock_write(struct srv_tls *t, int fd, const void *data, size_t len,
                                  uint64_t deadline_ns);

/* Reads exactly len bytes of plaintext into buf, finishing the handshake on the way and
 * writing whatever the engine has to send. Returns 0; K_EPROTO when TLS failed (see
 * srv_tls_error) or the stream ended first; K_EUNAVAILABLE past the deadline; or a negative
 * errno. */
K_MUST_USE int srv_tls_sock_read_full(struct srv_tls *t, int fd, void *buf, size_t len,
                                      uint64_t deadline_ns);

#endif
