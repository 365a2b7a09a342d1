/* The peer transport on libuv; see server/peers.h for the protocol and its bounds. */
#include "peers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/crc32c.h"
#include "base/endian.h"
#include "base/err.h"
#include "base/log.h"
#include "base/prng.h"
#include "base/u64map.h"
#include "server/tls_sock.h"
#include "server/tls_stream.h"

enum frame_type {
    FRAME_HELLO = 1,
    FRAME_REJECT = 2,
    FRAME_MSG = 3,
    FRAME_SNAP_BEGIN = 4,
    FRAME_SNAP_DATA = 5,
    FRAME_SNAP_END = 6,
    FRAME_JOIN = 7,
    FRAME_MEMBERS = 8,
};
static const char JOIN_MAGIC[8] = { 'K', 'E', 'T', 'C', 'H', 'J', 'N', '1' };
enum { FRAME_HEAD_BYTES = 5, HELLO_BYTES = 32, WRITE_BATCH_MAX = 64, READ_CHUNK_BYTES = 64 << 10 };
static const char HELLO_MAGIC[8] = { 'K', 'E', 'T', 'C', 'H', 'P', 'R', '1' };

struct frame {
    struct frame *next;
    size_t len; /* head + payload */
    uint8_t bytes[];
};

struct peer;

/* One TCP connection: dialed to a peer (we write) or accepted from one (we read). */
struct conn {
    uv_tcp_t tcp;
    struct srv_peers *p;
    struct peer *peer; /* dialed: the peer it belongs to; NULL when accepted */
    uint64_t from;     /* accepted: the dialer, once its HELLO was checked; 0 before */
    uint8_t *in;       /* unparsed input */
    size_t in_len;
    size_t in_cap;
    bool closing;
    bool dialed;         /* ours (its peer may be dropped before it closes) */
    struct srv_tls *tls; /* https peer URLs: the connection's TLS state, else NULL */
    /* accepted: a snapshot being received (snap_fd >= 0) */
    int snap_fd;
    char *snap_path;
    uint64_t snap_expect;
    uint64_t snap_got;
    uint32_t snap_crc;
    uint8_t *snap_msg;
    size_t snap_msg_len;
    struct conn *prev; /* accepted connections, in the transport's list */
    struct conn *next;
};

struct peer {
    struct srv_peers *p;
    uint64_t id;
    struct sockaddr_storage addr;
    struct conn *conn; /* the dialed connection, NULL when none */
    bool connected;    /* conn finished its connect and sent HELLO */
    uv_connect_t connect_req;
    uv_timer_t retry;
    uint64_t backoff_ms;
    struct frame *head; /* waiting to be written */
    struct frame *tail;
    size_t queued_bytes;
    struct frame *writing[WRITE_BATCH_MAX]; /* in the uv_write in flight */
    size_t writing_n;
    uv_write_t write_req;
    bool removed;
    /* The retry timer and every connection dialed for this peer until its close callback:
     * libuv calls a closing connection's connect and write callbacks (with ECANCELED, which
     * read connect_req, write_req and writing[] here) only when it finishes the close, after
     * a timer closed at the same time. The peer is freed when the last of them has closed. */
    unsigned refs;
    char *tls_host; /* dial with TLS, checking the server's certificate names it; or NULL */
    /* a snapshot being sent (snap_fd >= 0) */
    int snap_fd;
    uint64_t snap_left;
    uint32_t snap_crc;
    bool snap_end_queued;
    struct srv_peer_stats stats;
};

struct srv_peers {
    uv_loop_t *loop;
    struct srv_peers_config cfg;
    uv_tcp_t listener;
    bool listening;
    uint16_t port;
    struct k_u64map peers;   /* id -> struct peer */
    struct k_u64map removed; /* ids refused from now on (value unused, non-NULL) */
    struct k_prng prng;      /* backoff jitter */
    struct conn *accepted;   /* accepted connections still open */
    size_t accepted_n;       /* how many */
    unsigned handles;        /* open handles; freed at 0 once closing */
    bool closing;
    void (*closed_cb)(void *data);
    void *closed_data;
    uint64_t snap_seq;  /* names of incoming snapshot files */
    char *tls_read_buf; /* with TLS: ciphertext lands here and is decrypted into conn->in */
};

static struct frame *frame_new(enum frame_type type, const void *payload, size_t len)
{
    struct frame *f = k_xmalloc(sizeof(*f) + FRAME_HEAD_BYTES + len);
    f->next = NULL;
    f->len = FRAME_HEAD_BYTES + len;
    k_put_le32(f->bytes, (uint32_t)(len + 1));
    f->bytes[4] = (uint8_t)type;
    if (len && payload) memcpy(f->bytes + FRAME_HEAD_BYTES, payload, len);
    return f;
}

/* ---- handles ---- */

static void maybe_free(struct srv_peers *p)
{
    if (!p->closing || p->handles > 0) return;
    k_u64map_deinit(&p->peers);
    k_u64map_deinit(&p->removed);
    free((char *)p->cfg.incoming_dir);
    free(p->tls_read_buf);
    void (*cb)(void *) = p->closed_cb;
    void *data = p->closed_data;
    free(p);
    if (cb) cb(data);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct srv_peers *p = h->data;
    k_assert(p->handles > 0);
    p->handles--;
    maybe_free(p);
}

/* Frees a frame list; returns how many MSG frames it held (dropped messages). */
static uint64_t frames_free(struct frame *f);

static void peer_unref(struct peer *pe)
{
    k_assert(pe->refs > 0);
    if (--pe->refs > 0) return;
    (void)frames_free(pe->head);
    free(pe->tls_host);
    free(pe);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = (struct conn *)h;
    struct srv_peers *p = c->p;
    if (c->prev) c->prev->next = c->next;
    if (c->next) c->next->prev = c->prev;
    if (p->accepted == c) p->accepted = c->next;
    if (!c->dialed) {
        k_assert(p->accepted_n > 0);
        p->accepted_n--;
    }
    if (c->peer) peer_unref(c->peer);
    free(c->in);
    srv_tls_free(c->tls);
    free(c);
    k_assert(p->handles > 0);
    p->handles--;
    maybe_free(p);
}

static uint64_t frames_free(struct frame *f)
{
    uint64_t msgs = 0;
    while (f) {
        struct frame *next = f->next;
        msgs += f->bytes[4] == FRAME_MSG;
        free(f);
        f = next;
    }
    return msgs;
}

static void schedule_dial(struct peer *pe);

/* Drops a snapshot being received on c (the sender will try again). */
static void snap_in_abort(struct conn *c)
{
    if (c->snap_fd < 0) return;
    close(c->snap_fd);
    c->snap_fd = -1;
    unlink(c->snap_path);
    free(c->snap_path);
    c->snap_path = NULL;
    free(c->snap_msg);
    c->snap_msg = NULL;
}

/* Ends a snapshot being sent to pe, telling the owner how it went. */
static void snap_out_end(struct peer *pe, bool ok)
{
    if (pe->snap_fd < 0) return;
    close(pe->snap_fd);
    pe->snap_fd = -1;
    pe->snap_end_queued = false;
    struct srv_peers *p = pe->p;
    if (p->cfg.snapshot_sent_cb && !p->closing) p->cfg.snapshot_sent_cb(p->cfg.data, pe->id, ok);
}

/* Closes c; for a dialed connection the peer forgets it, drops what was queued (raft sends
 * again) and dials again after a backoff. */
static void conn_close(struct conn *c)
{
    if (c->closing) return;
    c->closing = true;
    snap_in_abort(c);
    struct peer *pe = c->peer;
    if (pe && pe->conn == c) {
        snap_out_end(pe, false);
        pe->conn = NULL;
        pe->connected = false;
        pe->stats.connected = false;
        pe->stats.dropped_messages += frames_free(pe->head);
        pe->head = pe->tail = NULL;
        pe->queued_bytes = 0;
        if (!pe->removed && !c->p->closing) schedule_dial(pe);
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static struct conn *conn_new(struct srv_peers *p, struct peer *pe)
{
    struct conn *c = k_xcalloc(1, sizeof(*c));
    c->p = p;
    c->peer = pe;
    c->dialed = pe != NULL;
    if (pe) pe->refs++;
    c->snap_fd = -1;
    uv_tcp_init(p->loop, &c->tcp);
    c->tcp.data = c;
    p->handles++;
    uv_tcp_nodelay(&c->tcp, 1);
    /* A peer whose machine vanished leaves no FIN: keepalive finds out. */
    uv_tcp_keepalive(&c->tcp, 1, SRV_PEER_KEEPALIVE_S);
    return c;
}

/* ---- reading frames (both directions: MSG/HELLO on accepted, REJECT on dialed) ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = h->data;
    if (c->tls) { /* decrypted into c->in by on_read (tls_read) */
        *buf = uv_buf_init(c->p->tls_read_buf, READ_CHUNK_BYTES);
        return;
    }
    if (c->in_cap - c->in_len < READ_CHUNK_BYTES) {
        c->in_cap = c->in_len + READ_CHUNK_BYTES;
        c->in = k_xrealloc(c->in, c->in_cap);
    }
    buf->base = (char *)c->in + c->in_len;
    buf->len = c->in_cap - c->in_len;
}

static void reject(struct conn *c, enum srv_peer_reject reason, const char *text);
static void answer_and_close(struct conn *c, struct frame *f);

/* A member about to join asks who is in the cluster: answer and close. */
static bool answer_join(struct conn *c, const uint8_t *b, size_t len)
{
    struct srv_peers *p = c->p;
    if (len != sizeof(JOIN_MAGIC) || memcmp(b, JOIN_MAGIC, len) != 0 || !p->cfg.members_cb) {
        reject(c, SRV_PEER_REJECT_PROTOCOL, "cannot answer a JOIN here");
        return false;
    }
    struct k_buf out = { 0 };
    uint8_t id[8];
    k_put_le64(id, p->cfg.cluster_id);
    k_buf_append(&out, id, sizeof(id));
    p->cfg.members_cb(p->cfg.data, &out);
    answer_and_close(c, frame_new(FRAME_MEMBERS, out.data, out.len));
    k_buf_free(&out);
    return false;
}

/* Checks an accepted connection's HELLO; returns false if it was refused. */
static bool check_hello(struct conn *c, const uint8_t *b, size_t len)
{
    struct srv_peers *p = c->p;
    if (len != HELLO_BYTES || memcmp(b, HELLO_MAGIC, sizeof(HELLO_MAGIC)) != 0) {
        reject(c, SRV_PEER_REJECT_PROTOCOL, "expected a HELLO frame");
        return false;
    }
    uint64_t cluster = k_get_le64(b + 8);
    uint64_t from = k_get_le64(b + 16);
    uint64_t to = k_get_le64(b + 24);
    char text[160];
    if (cluster != p->cfg.cluster_id) {
        snprintf(text, sizeof(text), "member %llx is in cluster %llx, not %llx",
                 (unsigned long long)p->cfg.self_id, (unsigned long long)p->cfg.cluster_id,
                 (unsigned long long)cluster);
        reject(c, SRV_PEER_REJECT_CLUSTER, text);
        return false;
    }
    if (to != p->cfg.self_id) {
        snprintf(text, sizeof(text), "this is member %llx, not %llx",
                 (unsigned long long)p->cfg.self_id, (unsigned long long)to);
        reject(c, SRV_PEER_REJECT_TO, text);
        return false;
    }
    if (from == 0 || k_u64map_get(&p->removed, from)) {
        snprintf(text, sizeof(text), "member %llx was removed from the cluster",
                 (unsigned long long)from);
        reject(c, SRV_PEER_REJECT_REMOVED, text);
        return false;
    }
    c->from = from;
    return true;
}

static bool snap_in_fail(struct conn *c, const char *what, int err)
{
    k_log_warn("peers", "dropping a snapshot from %llx: %s%s%s", (unsigned long long)c->from, what,
               err ? ": " : "", err ? strerror(err) : "");
    conn_close(c);
    return false;
}

static bool snap_in_begin(struct conn *c, const uint8_t *b, size_t len)
{
    struct srv_peers *p = c->p;
    if (!p->cfg.snapshot_cb || !p->cfg.incoming_dir) return snap_in_fail(c, "not accepted here", 0);
    if (len < 8) return snap_in_fail(c, "short SNAP_BEGIN", 0);
    snap_in_abort(c);
    char path[4200];
    snprintf(path, sizeof(path), "%s/from-%llx-%llu.part", p->cfg.incoming_dir,
             (unsigned long long)c->from, (unsigned long long)++p->snap_seq);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return snap_in_fail(c, path, errno);
    c->snap_fd = fd;
    c->snap_path = k_xstrdup(path);
    c->snap_expect = k_get_le64(b);
    c->snap_got = 0;
    c->snap_crc = 0;
    c->snap_msg_len = len - 8;
    c->snap_msg = k_xmalloc(c->snap_msg_len ? c->snap_msg_len : 1);
    memcpy(c->snap_msg, b + 8, c->snap_msg_len);
    return true;
}

static bool snap_in_data(struct conn *c, const uint8_t *b, size_t len)
{
    if (c->snap_fd < 0) return snap_in_fail(c, "data without SNAP_BEGIN", 0);
    if (len > c->snap_expect - c->snap_got) return snap_in_fail(c, "more data than announced", 0);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(c->snap_fd, b + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return snap_in_fail(c, c->snap_path, errno);
        off += (size_t)w;
    }
    c->snap_crc = k_crc32c(c->snap_crc, b, len);
    c->snap_got += len;
    return true;
}

static bool snap_in_end(struct conn *c, const uint8_t *b, size_t len)
{
    if (c->snap_fd < 0 || len != 4) return snap_in_fail(c, "bad SNAP_END", 0);
    if (c->snap_got != c->snap_expect || k_get_le32(b) != c->snap_crc)
        return snap_in_fail(c, "length or checksum mismatch", 0);
    if (fsync(c->snap_fd) < 0) return snap_in_fail(c, c->snap_path, errno);
    close(c->snap_fd);
    c->snap_fd = -1;
    char *path = c->snap_path;
    uint8_t *msg = c->snap_msg;
    c->snap_path = NULL;
    c->snap_msg = NULL;
    k_log_info("peers", "received a snapshot of %llu bytes from %llx",
               (unsigned long long)c->snap_got, (unsigned long long)c->from);
    c->p->cfg.snapshot_cb(c->p->cfg.data, c->from, msg, c->snap_msg_len, path);
    free(path);
    free(msg);
    return true;
}

static bool snap_in_frame(struct conn *c, uint8_t type, const uint8_t *b, size_t len)
{
    struct peer *pe = k_u64map_get(&c->p->peers, c->from);
    if (pe) pe->stats.received_bytes += len;
    if (type == FRAME_SNAP_BEGIN) return snap_in_begin(c, b, len);
    if (type == FRAME_SNAP_DATA) return snap_in_data(c, b, len);
    return snap_in_end(c, b, len);
}

/* Handles one complete frame; returns false if the connection was closed. */
static bool handle_frame(struct conn *c, uint8_t type, const uint8_t *b, size_t len)
{
    struct srv_peers *p = c->p;
    if (c->peer) { /* our dialed connection: only a REJECT may come back */
        if (type == FRAME_REJECT && len >= 1 && p->cfg.rejected_cb) {
            char text[256];
            size_t n = len - 1 < sizeof(text) - 1 ? len - 1 : sizeof(text) - 1;
            memcpy(text, b + 1, n);
            text[n] = '\0';
            k_log_warn("peers", "peer %llx refused us: %s", (unsigned long long)c->peer->id, text);
            p->cfg.rejected_cb(p->cfg.data, c->peer->id, (enum srv_peer_reject)b[0], text);
        }
        conn_close(c);
        return false;
    }
    if (c->from == 0) {
        if (type == FRAME_HELLO) return check_hello(c, b, len);
        if (type == FRAME_JOIN) return answer_join(c, b, len);
        reject(c, SRV_PEER_REJECT_PROTOCOL, "expected a HELLO frame");
        return false;
    }
    if (k_u64map_get(&p->removed, c->from)) { /* removed after this connection was made */
        conn_close(c);
        return false;
    }
    if (type == FRAME_SNAP_BEGIN || type == FRAME_SNAP_DATA || type == FRAME_SNAP_END)
        return snap_in_frame(c, type, b, len);
    if (type != FRAME_MSG) {
        conn_close(c);
        return false;
    }
    struct peer *pe = k_u64map_get(&p->peers, c->from);
    if (pe) {
        pe->stats.received_messages++;
        pe->stats.received_bytes += len;
    }
    p->cfg.recv_cb(p->cfg.data, c->from, b, len);
    return true;
}

static void flush(struct peer *pe);

/* TLS hook of the read path: decrypts the ciphertext in buf into c->in; once a dialed
 * connection's handshake is done, what waited to be written goes. Returns false if c was
 * closed. */
static bool tls_read(struct conn *c, const uv_buf_t *buf, size_t nread)
{
    bool was_done = srv_tls_handshake_done(c->tls);
    ssize_t n = srv_tls_stream_decrypt(c->tls, (uv_stream_t *)&c->tcp, buf->base, nread, &c->in,
                                       &c->in_len, &c->in_cap, READ_CHUNK_BYTES);
    if (n < 0) {
        if (n == UV_EPROTO && c->peer) {
            k_log_info("peers", "TLS with peer %llx failed: %s", (unsigned long long)c->peer->id,
                       srv_tls_error(c->tls));
        } else if (n == UV_EPROTO) {
            k_log_info("peers", "TLS with a dialing peer failed: %s", srv_tls_error(c->tls));
        }
        conn_close(c);
        return false;
    }
    if (!was_done && srv_tls_handshake_done(c->tls) && c->peer) flush(c->peer);
    return !c->closing;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (c->tls) {
        if (!tls_read(c, buf, (size_t)nread)) return;
        nread = 0; /* already appended to c->in */
    }
    c->in_len += (size_t)nread;
    size_t off = 0;
    while (!c->closing && c->in_len - off >= FRAME_HEAD_BYTES) {
        uint32_t len = k_get_le32(c->in + off);
        if (len == 0 || len > c->p->cfg.frame_bytes_max) {
            k_log_warn("peers", "dropping a peer connection: frame of %u bytes", len);
            conn_close(c);
            return;
        }
        if (c->in_len - off < 4 + (size_t)len) break;
        uint8_t type = c->in[off + 4];
        const uint8_t *payload = c->in + off + FRAME_HEAD_BYTES;
        off += 4 + (size_t)len;
        if (!handle_frame(c, type, payload, len - 1)) return;
    }
    if (off > 0 && !c->closing) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

/* ---- writing (dialed connections) ---- */

static void snap_pump(struct peer *pe);

static void on_written(uv_write_t *req, int status)
{
    struct peer *pe = req->data;
    bool snap_done = false;
    for (size_t i = 0; i < pe->writing_n; i++) {
        snap_done |= pe->writing[i]->bytes[4] == FRAME_SNAP_END;
        free(pe->writing[i]);
    }
    pe->writing_n = 0;
    if (status < 0) {
        if (pe->conn) conn_close(pe->conn);
        return;
    }
    if (snap_done) snap_out_end(pe, true);
    snap_pump(pe);
    flush(pe);
}

static void flush(struct peer *pe)
{
    if (!pe->connected || pe->writing_n > 0 || !pe->head) return;
    if (pe->conn->tls && !srv_tls_handshake_done(pe->conn->tls)) return; /* tls_read calls */
    uv_buf_t bufs[WRITE_BATCH_MAX];
    while (pe->head && pe->writing_n < WRITE_BATCH_MAX) {
        struct frame *f = pe->head;
        pe->head = f->next;
        if (!pe->head) pe->tail = NULL;
        pe->queued_bytes -= f->len;
        bufs[pe->writing_n] = uv_buf_init((char *)f->bytes, (unsigned)f->len);
        pe->writing[pe->writing_n++] = f;
    }
    pe->write_req.data = pe;
    uv_stream_t *s = (uv_stream_t *)&pe->conn->tcp;
    int rc = pe->conn->tls ? srv_tls_stream_write(pe->conn->tls, s, &pe->write_req, bufs,
                                                  (unsigned)pe->writing_n, on_written)
                           : uv_write(&pe->write_req, s, bufs, (unsigned)pe->writing_n, on_written);
    if (rc < 0) {
        for (size_t i = 0; i < pe->writing_n; i++)
            free(pe->writing[i]);
        pe->writing_n = 0;
        conn_close(pe->conn);
    }
}

static void enqueue(struct peer *pe, struct frame *f, bool front)
{
    if (front) {
        f->next = pe->head;
        pe->head = f;
        if (!pe->tail) pe->tail = f;
    } else {
        f->next = NULL;
        if (pe->tail) {
            pe->tail->next = f;
        } else {
            pe->head = f;
        }
        pe->tail = f;
    }
    pe->queued_bytes += f->len;
}

/* Queues the next pieces of the snapshot being sent while the queue is short. */
static void snap_pump(struct peer *pe)
{
    while (pe->snap_fd >= 0 && !pe->snap_end_queued && pe->connected &&
           pe->queued_bytes < SRV_PEER_SNAP_QUEUE_LOW) {
        if (pe->snap_left == 0) {
            uint8_t crc[4];
            k_put_le32(crc, pe->snap_crc);
            enqueue(pe, frame_new(FRAME_SNAP_END, crc, sizeof(crc)), false);
            pe->snap_end_queued = true;
            break;
        }
        size_t want = pe->snap_left < SRV_PEER_SNAP_CHUNK_BYTES ? (size_t)pe->snap_left
                                                                : SRV_PEER_SNAP_CHUNK_BYTES;
        struct frame *f = frame_new(FRAME_SNAP_DATA, NULL, want);
        ssize_t got;
        do {
            got = read(pe->snap_fd, f->bytes + FRAME_HEAD_BYTES, want);
        } while (got < 0 && errno == EINTR);
        if (got <= 0) {
            k_log_warn("peers", "cannot read the snapshot for %llx: %s", (unsigned long long)pe->id,
                       got < 0 ? strerror(errno) : "file shorter than it was");
            free(f);
            snap_out_end(pe, false);
            if (pe->conn) conn_close(pe->conn); /* the receiver must not wait for the rest */
            return;
        }
        /* A short read leaves a shorter frame: fix its length. */
        f->len = FRAME_HEAD_BYTES + (size_t)got;
        k_put_le32(f->bytes, (uint32_t)got + 1);
        pe->snap_crc = k_crc32c(pe->snap_crc, f->bytes + FRAME_HEAD_BYTES, (size_t)got);
        pe->snap_left -= (uint64_t)got;
        pe->stats.sent_bytes += (uint64_t)got;
        enqueue(pe, f, false);
    }
}

/* ---- dialing ---- */

static void dial(struct peer *pe);

static void on_retry(uv_timer_t *t)
{
    dial(t->data);
}

static void schedule_dial(struct peer *pe)
{
    struct srv_peers *p = pe->p;
    uint64_t base = pe->backoff_ms ? pe->backoff_ms : p->cfg.backoff_min_ms;
    uint64_t jitter = k_prng_below(&p->prng, base / 2 + 1);
    uv_timer_start(&pe->retry, on_retry, base + jitter, 0);
    pe->backoff_ms = base * 2 > p->cfg.backoff_max_ms ? p->cfg.backoff_max_ms : base * 2;
}

/* TLS hook of both connection starts: the dialer's ClientHello goes out at once. Returns
 * false if c was closed. */
static bool tls_start(struct conn *c, struct srv_tls_ctx *ctx, const char *host)
{
    int rc = srv_tls_new(ctx, host, &c->tls);
    if (rc == 0) rc = srv_tls_stream_flush(c->tls, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        k_log_warn("peers", "cannot start TLS with %s: %s", host ? host : "a dialer",
                   rc < -10000 ? k_strerror(rc) : uv_strerror(rc));
        conn_close(c);
        return false;
    }
    return true;
}

static void on_connected(uv_connect_t *req, int status)
{
    struct peer *pe = req->data;
    struct conn *c = (struct conn *)req->handle->data;
    if (status < 0 || c->closing || pe->conn != c) {
        conn_close(c);
        return;
    }
    struct srv_peers *p = pe->p;
    uint8_t hello[HELLO_BYTES];
    memcpy(hello, HELLO_MAGIC, sizeof(HELLO_MAGIC));
    k_put_le64(hello + 8, p->cfg.cluster_id);
    k_put_le64(hello + 16, p->cfg.self_id);
    k_put_le64(hello + 24, pe->id);
    pe->connected = true;
    pe->stats.connected = true;
    pe->stats.connects++;
    pe->backoff_ms = 0;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read); /* for a REJECT or EOF */
    enqueue(pe, frame_new(FRAME_HELLO, hello, sizeof(hello)), true);
    if (pe->tls_host && !tls_start(c, p->cfg.tls_client, pe->tls_host)) return;
    flush(pe);
}

static void dial(struct peer *pe)
{
    struct srv_peers *p = pe->p;
    if (pe->conn || pe->removed || p->closing) return;
    struct conn *c = conn_new(p, pe);
    pe->conn = c;
    pe->connect_req.data = pe;
    int rc = uv_tcp_connect(&pe->connect_req, &c->tcp, (const struct sockaddr *)&pe->addr,
                            on_connected);
    if (rc < 0) conn_close(c);
}

/* ---- accepting ---- */

static void on_reject_written(uv_write_t *req, int status)
{
    (void)status;
    struct conn *c = req->data;
    free(req);
    conn_close(c);
}

static void reject(struct conn *c, enum srv_peer_reject reason, const char *text)
{
    size_t n = strlen(text);
    uint8_t payload[260];
    if (n > sizeof(payload) - 1) n = sizeof(payload) - 1;
    payload[0] = (uint8_t)reason;
    memcpy(payload + 1, text, n);
    k_log_warn("peers", "refusing a peer connection: %s", text);
    answer_and_close(c, frame_new(FRAME_REJECT, payload, n + 1));
}

/* Writes f (freed here) on an accepted connection, then closes it. */
static void answer_and_close(struct conn *c, struct frame *f)
{
    /* The frame lives in the write request's allocation: one free after the write. */
    uv_write_t *req = k_xmalloc(sizeof(*req) + f->len);
    memcpy((uint8_t *)(req + 1), f->bytes, f->len);
    uv_buf_t buf = uv_buf_init((char *)(req + 1), (unsigned)f->len);
    free(f);
    req->data = c;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_stream_t *s = (uv_stream_t *)&c->tcp;
    if ((c->tls ? srv_tls_stream_write(c->tls, s, req, &buf, 1, on_reject_written)
                : uv_write(req, s, &buf, 1, on_reject_written)) < 0) {
        free(req);
        conn_close(c);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct srv_peers *p = server->data;
    if (status < 0 || p->closing) return;
    struct conn *c = conn_new(p, NULL);
    c->next = p->accepted;
    if (p->accepted) p->accepted->prev = c;
    p->accepted = c;
    p->accepted_n++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    if (p->accepted_n > SRV_PEER_ACCEPTED_MAX) {
        /* Members dial once each; a flood of connections is not a member. */
        k_log_warn("peers", "refusing a peer connection: %zu open (the limit)", p->accepted_n - 1);
        conn_close(c);
        return;
    }
    if (p->cfg.tls_server && !tls_start(c, p->cfg.tls_server, NULL)) return;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- public ---- */

int srv_peers_new(uv_loop_t *loop, const struct srv_peers_config *cfg, struct srv_peers **out)
{
    k_assert(cfg->recv_cb != NULL && cfg->self_id != 0);
    struct srv_peers *p = k_xcalloc(1, sizeof(*p));
    p->loop = loop;
    p->cfg = *cfg;
    if (!p->cfg.queue_bytes_max) p->cfg.queue_bytes_max = SRV_PEER_QUEUE_BYTES_MAX;
    if (!p->cfg.frame_bytes_max) p->cfg.frame_bytes_max = SRV_PEER_FRAME_BYTES_MAX;
    if (!p->cfg.backoff_min_ms) p->cfg.backoff_min_ms = SRV_PEER_BACKOFF_MIN_MS;
    if (!p->cfg.backoff_max_ms) p->cfg.backoff_max_ms = SRV_PEER_BACKOFF_MAX_MS;
    p->cfg.incoming_dir = cfg->incoming_dir ? k_xstrdup(cfg->incoming_dir) : NULL;
    k_u64map_init(&p->peers);
    k_u64map_init(&p->removed);
    k_prng_init(&p->prng, cfg->self_id ^ k_mono_ns());
    if (cfg->tls_server || cfg->tls_client) p->tls_read_buf = k_xmalloc(READ_CHUNK_BYTES);
    *out = p;
    return 0;
}

int srv_peers_listen(struct srv_peers *p, const char *ip, uint16_t port)
{
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(ip, port, (struct sockaddr_in *)&addr);
    if (rc < 0) rc = uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&addr);
    if (rc < 0) return rc;
    uv_tcp_init(p->loop, &p->listener);
    p->listener.data = p;
    p->handles++;
    p->listening = true;
    rc = uv_tcp_bind(&p->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&p->listener, 128, on_connection);
    if (rc < 0) return rc;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&p->listener, (struct sockaddr *)&bound, &len);
    p->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    return 0;
}

uint16_t srv_peers_port(const struct srv_peers *p)
{
    return p->port;
}

int srv_peers_add(struct srv_peers *p, uint64_t id, const char *ip, uint16_t port)
{
    k_assert(id != 0 && id != p->cfg.self_id);
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof(addr));
    int rc = uv_ip4_addr(ip, port, (struct sockaddr_in *)&addr);
    if (rc < 0) rc = uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&addr);
    if (rc < 0) return rc;
    k_u64map_remove(&p->removed, id);
    struct peer *pe = k_u64map_get(&p->peers, id);
    if (pe) {
        if (memcmp(&pe->addr, &addr, sizeof(addr)) == 0) return 0;
        pe->addr = addr;
        if (pe->conn) conn_close(pe->conn); /* redial at the new address */
        return 0;
    }
    if (p->peers.count >= SRV_PEER_MAX) return K_ELIMIT;
    pe = k_xcalloc(1, sizeof(*pe));
    pe->p = p;
    pe->id = id;
    pe->addr = addr;
    pe->snap_fd = -1;
    pe->refs = 1; /* the timer */
    uv_timer_init(p->loop, &pe->retry);
    pe->retry.data = pe;
    p->handles++;
    k_u64map_put(&p->peers, id, pe);
    dial(pe);
    return 0;
}

int srv_peers_set_tls_host(struct srv_peers *p, uint64_t id, const char *host)
{
    struct peer *pe = k_u64map_get(&p->peers, id);
    if (!pe) return K_ENOTFOUND;
    if (host && !p->cfg.tls_client) return K_ECONFIG;
    bool same = host && pe->tls_host ? strcmp(host, pe->tls_host) == 0 : host == pe->tls_host;
    if (same) return 0;
    free(pe->tls_host);
    pe->tls_host = host ? k_xstrdup(host) : NULL;
    /* A dial still connecting picks the new way up in on_connected; a connection made the
     * old way is dropped and dialed again. */
    if (pe->conn && pe->connected) conn_close(pe->conn);
    return 0;
}

static void on_peer_timer_closed(uv_handle_t *h)
{
    struct peer *pe = h->data;
    struct srv_peers *p = pe->p;
    peer_unref(pe);
    k_assert(p->handles > 0);
    p->handles--;
    maybe_free(p);
}

/* Forgets pe: its connection closes (not to be dialed again) and its memory goes once that
 * and its timer have closed. */
static void peer_drop(struct peer *pe)
{
    pe->removed = true;
    if (pe->conn) conn_close(pe->conn);
    pe->stats.dropped_messages += frames_free(pe->head);
    pe->head = pe->tail = NULL;
    snap_out_end(pe, false);
    uv_close((uv_handle_t *)&pe->retry, on_peer_timer_closed);
}

void srv_peers_remove(struct srv_peers *p, uint64_t id)
{
    if (id == 0) return; /* names no member (and is no key for the map) */
    k_u64map_put(&p->removed, id, p);
    struct peer *pe = k_u64map_remove(&p->peers, id);
    if (pe) peer_drop(pe);
}

void srv_peers_forget(struct srv_peers *p, uint64_t id)
{
    struct peer *pe = id ? k_u64map_remove(&p->peers, id) : NULL;
    if (pe) peer_drop(pe);
}

int srv_peers_send(struct srv_peers *p, uint64_t to, const uint8_t *msg, size_t len)
{
    struct peer *pe = k_u64map_get(&p->peers, to);
    if (!pe) return K_ENOTFOUND;
    if (!pe->connected) {
        pe->stats.dropped_messages++;
        return K_EUNAVAILABLE;
    }
    if (pe->queued_bytes + FRAME_HEAD_BYTES + len > p->cfg.queue_bytes_max ||
        len + 1 > p->cfg.frame_bytes_max) {
        pe->stats.dropped_messages++;
        return K_ELIMIT;
    }
    enqueue(pe, frame_new(FRAME_MSG, msg, len), false);
    pe->stats.sent_messages++;
    pe->stats.sent_bytes += len;
    flush(pe);
    return 0;
}

int srv_peers_send_snapshot(struct srv_peers *p, uint64_t to, const uint8_t *msg, size_t len,
                            const char *path)
{
    struct peer *pe = k_u64map_get(&p->peers, to);
    if (!pe) return K_ENOTFOUND;
    if (!pe->connected) return K_EUNAVAILABLE;
    if (pe->snap_fd >= 0) return K_EBUSY;
    if (len + 9 > p->cfg.frame_bytes_max) return K_ELIMIT;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    off_t size = lseek(fd, 0, SEEK_END);
    if (size < 0 || lseek(fd, 0, SEEK_SET) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    uint8_t *begin = k_xmalloc(8 + len);
    k_put_le64(begin, (uint64_t)size);
    memcpy(begin + 8, msg, len);
    enqueue(pe, frame_new(FRAME_SNAP_BEGIN, begin, 8 + len), false);
    free(begin);
    pe->snap_fd = fd;
    pe->snap_left = (uint64_t)size;
    pe->snap_crc = 0;
    pe->snap_end_queued = false;
    pe->stats.sent_messages++;
    k_log_info("peers", "sending snapshot %s (%lld bytes) to %llx", path, (long long)size,
               (unsigned long long)to);
    snap_pump(pe);
    flush(pe);
    return 0;
}

void srv_peers_set_incoming_dir(struct srv_peers *p, const char *dir)
{
    free((char *)p->cfg.incoming_dir);
    p->cfg.incoming_dir = dir ? k_xstrdup(dir) : NULL;
}

bool srv_peers_stats(const struct srv_peers *p, uint64_t id, struct srv_peer_stats *out)
{
    const struct peer *pe = k_u64map_get(&p->peers, id);
    if (!pe) return false;
    *out = pe->stats;
    return true;
}

void srv_peers_close(struct srv_peers *p, void (*cb)(void *data), void *data)
{
    p->closing = true;
    p->closed_cb = cb;
    p->closed_data = data;
    for (size_t i = 0; i < p->peers.cap; i++) {
        if (p->peers.slots[i].key) peer_drop(p->peers.slots[i].value);
    }
    if (p->listening) uv_close((uv_handle_t *)&p->listener, on_handle_closed);
    p->listening = false;
    for (struct conn *c = p->accepted; c; c = c->next)
        conn_close(c);
    maybe_free(p);
}

/* ---- the joining member's question (blocking, before the loop runs) ---- */

static int read_full(int fd, uint8_t *buf, size_t len, uint64_t deadline_ns)
{
    size_t got = 0;
    while (got < len) {
        int rc = srv_sock_wait(fd, POLLIN, deadline_ns);
        if (rc < 0) return rc;
        ssize_t n = read(fd, buf + got, len - got);
        if (n == 0) return K_EPROTO;
        if (n < 0 && errno != EINTR && errno != EAGAIN) return -errno;
        if (n > 0) got += (size_t)n;
    }
    return 0;
}

/* TLS hooks of the join query: t is NULL for plain TCP. */
static int query_write(struct srv_tls *t, int fd, const struct frame *f, uint64_t deadline)
{
    if (t) return srv_tls_sock_write(t, fd, f->bytes, f->len, deadline);
    ssize_t w = write(fd, f->bytes, f->len); /* small: one write on a fresh socket */
    return w == (ssize_t)f->len ? 0 : (w < 0 ? -errno : K_EPROTO);
}

static int query_read(struct srv_tls *t, int fd, uint8_t *buf, size_t len, uint64_t deadline)
{
    return t ? srv_tls_sock_read_full(t, fd, buf, len, deadline)
             : read_full(fd, buf, len, deadline);
}

int srv_peers_query_members(const char *ip, uint16_t port, uint64_t timeout_ms,
                            uint64_t *cluster_id, char **json, size_t *json_len, char *err,
                            size_t err_len)
{
    return srv_peers_query_members_tls(ip, port, timeout_ms, cluster_id, json, json_len, err,
                                       err_len, NULL, NULL);
}

int srv_peers_query_members_tls(const char *ip, uint16_t port, uint64_t timeout_ms,
                                uint64_t *cluster_id, char **json, size_t *json_len, char *err,
                                size_t err_len, struct srv_tls_ctx *tls, const char *tls_host)
{
    *json = NULL;
    *json_len = 0;
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof(addr));
    int rc = uv_ip4_addr(ip, port, (struct sockaddr_in *)&addr);
    if (rc < 0) rc = uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&addr);
    if (rc < 0) {
        snprintf(err, err_len, "bad address %s", ip);
        return K_ECONFIG;
    }
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    uint64_t deadline = k_mono_ns() + timeout_ms * 1000000ull;
    socklen_t alen =
            addr.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    rc = connect(fd, (struct sockaddr *)&addr, alen) < 0 && errno != EINPROGRESS ? -errno : 0;
    if (rc == 0) rc = srv_sock_wait(fd, POLLOUT, deadline);
    if (rc == 0) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) soerr = errno;
        if (soerr) rc = -soerr;
    }
    struct srv_tls *t = NULL;
    if (rc == 0 && tls) rc = srv_tls_new(tls, tls_host, &t);
    if (rc == 0) {
        struct frame *f = frame_new(FRAME_JOIN, JOIN_MAGIC, sizeof(JOIN_MAGIC));
        rc = query_write(t, fd, f, deadline);
        free(f);
    }
    uint8_t head[FRAME_HEAD_BYTES];
    if (rc == 0) rc = query_read(t, fd, head, sizeof(head), deadline);
    uint32_t len = rc == 0 ? k_get_le32(head) : 0;
    if (rc == 0 && (len < 2 || len > SRV_PEER_FRAME_BYTES_MAX)) rc = K_EPROTO;
    uint8_t *body = NULL;
    if (rc == 0) {
        body = k_xmalloc(len - 1);
        rc = query_read(t, fd, body, len - 1, deadline);
    }
    close(fd);
    if (t && srv_tls_failed(t)) {
        snprintf(err, err_len, "TLS: %s", srv_tls_error(t));
        rc = K_ECONFIG; /* not "not a ketch peer port" */
    }
    srv_tls_free(t);
    if (rc == 0 && head[4] == FRAME_REJECT) {
        snprintf(err, err_len, "%.*s", (int)(len - 2), (const char *)body + 1);
        free(body);
        return K_EPROTO;
    }
    if (rc == 0 && (head[4] != FRAME_MEMBERS || len < 9)) rc = K_EPROTO;
    if (rc < 0) {
        free(body);
        if (rc == K_EPROTO) snprintf(err, err_len, "not a ketch peer port");
        return rc;
    }
    *cluster_id = k_get_le64(body);
    *json_len = len - 9;
    *json = k_xmalloc(*json_len + 1);
    memcpy(*json, body + 8, *json_len);
    (*json)[*json_len] = '\0';
    free(body);
    return 0;
}
