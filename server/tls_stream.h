/* The TLS engine (tls.h) on a libuv stream, for code that reads into its own growing buffer
 * and writes with uv_write: the peer transport. Three hooks: decrypt what a read brought,
 * encrypt what a write carries, and send what the engine says by itself (handshake records,
 * alerts). Ciphertext buffers are owned here and freed when libuv is done with them.
 * Threading: the stream's loop thread. Not here: the HTTP server, which encrypts its own
 * output lists (conn.c). */
#ifndef KETCH_SERVER_TLS_STREAM_H
#define KETCH_SERVER_TLS_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/assert.h"
#include "server/tls.h"

/* Writes the engine's waiting output on stream, if any. Returns 0 or a libuv error (the
 * caller closes the stream). */
K_MUST_USE int srv_tls_stream_flush(struct srv_tls *t, uv_stream_t *stream);

/* Feeds cipher[0..cipher_len) read from stream to t, decrypts all the plaintext there is and
 * appends it to *buf (from malloc; grown by k_xrealloc in steps of at least grow_bytes, with
 * *buf_len and *buf_cap kept up to date), then writes what the engine answers. Returns the
 * bytes appended (0 is normal during the handshake), UV_EOF after the other side's
 * close_notify, or UV_EPROTO when TLS failed (srv_tls_error(t) says why; the alert is on
 * its way) or a libuv error from the write. On a negative result the caller closes. */
K_MUST_USE ssize_t srv_tls_stream_decrypt(struct srv_tls *t, uv_stream_t *stream,
                                          const char *cipher, size_t cipher_len, uint8_t **buf,
                                          size_t *buf_len, size_t *buf_cap, size_t grow_bytes);

/* As uv_write(req, stream, bufs, nbufs, cb), but the bytes are encrypted by t first (they
 * are copied: bufs may be freed as soon as this returns, though uv_write callers usually
 * wait for cb). Only the handshake must have finished. cb gets req, whose data field is
 * kept; it runs once, from the loop, unless this returns an error. Returns 0, UV_EPROTO
 * when t cannot write, or uv_write's error. */
K_MUST_USE int srv_tls_stream_write(struct srv_tls *t, uv_stream_t *stream, uv_write_t *req,
                                    const uv_buf_t bufs[], unsigned nbufs, uv_write_cb cb);

#endif
