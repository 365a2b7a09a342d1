/* tls.h's engine on a libuv stream; see tls_stream.h. Each write of ciphertext carries its
 * own request, which frees the bytes and then completes the caller's request. */
#include "server/tls_stream.h"

#include <stdlib.h>

#include "base/alloc.h"
#include "base/err.h"

struct tls_write {
    uv_write_t req;
    uv_write_t *user; /* the caller's request, completed after ours; NULL for our own output */
    uv_write_cb user_cb;
    char *bytes; /* ciphertext, owned */
};

static void tls_written(uv_write_t *req, int status)
{
    struct tls_write *w = req->data;
    free(w->bytes);
    uv_write_t *user = w->user;
    uv_write_cb cb = w->user_cb;
    free(w);
    if (cb != NULL) cb(user, status);
}

/* Writes the waiting output with our own request; completes user (if not NULL) after it. */
static int tls_send(struct srv_tls *t, uv_stream_t *stream, uv_write_t *user, uv_write_cb cb)
{
    size_t len;
    char *bytes = srv_tls_take_output(t, &len);
    if (bytes == NULL && user == NULL) return 0;
    k_assert(len <= UINT32_MAX);
    struct tls_write *w = k_xmalloc(sizeof(*w));
    w->req.data = w;
    w->user = user;
    w->user_cb = cb;
    w->bytes = bytes;
    /* With nothing to send (a zero-length write) libuv still completes the request, from the
     * loop, so the caller's callback never runs inside this call. */
    uv_buf_t buf = uv_buf_init(bytes != NULL ? bytes : (char *)"", (unsigned)len);
    int rc = uv_write(&w->req, stream, &buf, 1, tls_written);
    if (rc < 0) {
        free(bytes);
        free(w);
    }
    return rc;
}

int srv_tls_stream_flush(struct srv_tls *t, uv_stream_t *stream)
{
    return tls_send(t, stream, NULL, NULL);
}

ssize_t srv_tls_stream_decrypt(struct srv_tls *t, uv_stream_t *stream, const char *cipher,
                               size_t cipher_len, uint8_t **buf, size_t *buf_len, size_t *buf_cap,
                               size_t grow_bytes)
{
    k_assert(grow_bytes > 0);
    srv_tls_feed(t, cipher, cipher_len);
    size_t added = 0;
    int rc = 0;
    for (;;) {
        if (*buf_cap - *buf_len < grow_bytes / 2 + 1) {
            *buf_cap = *buf_len + grow_bytes;
            *buf = k_xrealloc(*buf, *buf_cap);
        }
        size_t n = 0;
        rc = srv_tls_read(t, *buf + *buf_len, *buf_cap - *buf_len, &n);
        *buf_len += n;
        added += n;
        if (rc != 0 || n == 0) break;
    }
    int wrc = srv_tls_stream_flush(t, stream); /* handshake records, alerts */
    if (rc == K_EPROTO) return UV_EPROTO;
    if (wrc < 0) return wrc;
    if (rc == SRV_TLS_CLOSED && added == 0) return UV_EOF;
    return (ssize_t)added;
}

int srv_tls_stream_write(struct srv_tls *t, uv_stream_t *stream, uv_write_t *req,
                         const uv_buf_t bufs[], unsigned nbufs, uv_write_cb cb)
{
    k_assert(srv_tls_handshake_done(t));
    for (unsigned i = 0; i < nbufs; i++) {
        if (srv_tls_write(t, bufs[i].base, bufs[i].len) < 0) return UV_EPROTO;
    }
    return tls_send(t, stream, req, cb);
}
