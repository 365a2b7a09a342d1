/* The peer transport: raft messages between members over long-lived TCP connections on the
 * peer port. Each member dials each peer once and only writes on that connection; it reads
 * what peers send on the connections it accepted. So between two members there are two
 * connections, one per direction, and a slow reader never blocks the other direction.
 *
 * Frames, little-endian: u32 length of what follows, u8 type, payload.
 *   HELLO  (dialer, first frame): "KETCHPR1", u64 cluster id, u64 from, u64 to
 *   REJECT (acceptor, then close): u8 reason, text
 *   MSG    an encoded raft message (raft/codec.h), opaque here
 *   SNAP_BEGIN  u64 bytes of snapshot data to follow, then the encoded MsgSnap
 *   SNAP_DATA   the next piece of the snapshot data (at most SRV_PEER_SNAP_CHUNK_BYTES)
 *   SNAP_END    u32 CRC32C of all the data; the receiver hands the snapshot over only if
 *               the length and the checksum match
 *   JOIN   (dialer, instead of HELLO): "KETCHJN1"; a member starting with
 *          --initial-cluster-state existing asks who is in the cluster
 *   MEMBERS (acceptor, then close): u64 cluster id, then the registry as /v2/members JSON
 * The acceptor checks the HELLO: another cluster's member, a message meant for another
 * member, or a member that was removed is refused with a REJECT saying why.
 *
 * Bounds: each peer's send queue holds at most queue_bytes_max; a message that does not fit,
 * or that is sent while the peer is unreachable, is dropped and reported (raft retries, so
 * nothing queues without bound). A frame longer than frame_bytes_max is a protocol error.
 * Reconnects back off exponentially, with jitter, between backoff_min_ms and backoff_max_ms.
 *
 * Snapshots stream from a file on the sending side into a file on the receiving side, a
 * chunk at a time, read only while the peer's queue is short, so neither side holds one whole
 * in memory. MSG frames keep flowing between the chunks on the same connection. One snapshot
 * per peer at a time.
 *
 * TLS (https:// peer URLs): the same frames inside TLS on both connections, through the
 * hooks of server/tls_stream.h; see tls_server and tls_client below.
 *
 * Threading: the loop thread only. Not here: what messages mean (server/node.c). */
#ifndef KETCH_SERVER_PEERS_H
#define KETCH_SERVER_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/assert.h"
#include "base/buf.h"
#include "server/tls.h"

enum {
    SRV_PEER_QUEUE_BYTES_MAX = 16 << 20,
    SRV_PEER_FRAME_BYTES_MAX = 64 << 20,
    SRV_PEER_BACKOFF_MIN_MS = 50,
    SRV_PEER_BACKOFF_MAX_MS = 2000,
    SRV_PEER_MAX = 64,
    SRV_PEER_ACCEPTED_MAX = 4 * SRV_PEER_MAX, /* open accepted connections; more are closed */
    SRV_PEER_KEEPALIVE_S = 30,                /* TCP keepalive probes after this idle time */
    SRV_PEER_SNAP_CHUNK_BYTES = 256 << 10,
    SRV_PEER_SNAP_QUEUE_LOW = 1 << 20, /* the next chunk is read once the queue is below */
};

enum srv_peer_reject {
    SRV_PEER_REJECT_CLUSTER = 1, /* the dialer belongs to another cluster */
    SRV_PEER_REJECT_TO = 2,      /* the dialer meant another member */
    SRV_PEER_REJECT_REMOVED = 3, /* the dialer was removed from the cluster */
    SRV_PEER_REJECT_PROTOCOL = 4,
};

/* A raft message arrived from member from; bytes borrowed for the call. */
typedef void (*srv_peers_recv_cb)(void *data, uint64_t from, const uint8_t *msg, size_t len);
/* A peer refused us (reason above); e.g. this member was removed. */
typedef void (*srv_peers_rejected_cb)(void *data, uint64_t peer, enum srv_peer_reject reason,
                                      const char *text);

/* A snapshot arrived from member from: msg is its encoded MsgSnap (borrowed for the call),
 * path a file holding the data, fsynced, whose length and checksum matched. The callee owns
 * the file from then on (rename or unlink it). */
typedef void (*srv_peers_snapshot_cb)(void *data, uint64_t from, const uint8_t *msg, size_t len,
                                      const char *path);
/* A snapshot given to srv_peers_send_snapshot went out whole (ok) or did not. */
typedef void (*srv_peers_snapshot_sent_cb)(void *data, uint64_t to, bool ok);

/* Writes the member list (server/members.h srv_members_json) for a joining member. */
typedef void (*srv_peers_members_cb)(void *data, struct k_buf *out);

struct srv_peers_config {
    uint64_t self_id;
    uint64_t cluster_id;
    size_t queue_bytes_max;  /* 0 = SRV_PEER_QUEUE_BYTES_MAX */
    size_t frame_bytes_max;  /* 0 = SRV_PEER_FRAME_BYTES_MAX */
    uint64_t backoff_min_ms; /* 0 = SRV_PEER_BACKOFF_MIN_MS */
    uint64_t backoff_max_ms; /* 0 = SRV_PEER_BACKOFF_MAX_MS */
    srv_peers_recv_cb recv_cb;
    srv_peers_rejected_cb rejected_cb;           /* may be NULL */
    srv_peers_snapshot_cb snapshot_cb;           /* NULL: snapshots are refused */
    srv_peers_snapshot_sent_cb snapshot_sent_cb; /* may be NULL */
    const char *incoming_dir;                    /* where arriving snapshots are written; copied */
    srv_peers_members_cb members_cb;             /* NULL: JOIN is refused */
    void *data;
    /* TLS (tls.h; borrowed, must outlive the transport). tls_server: accepted connections
     * start with a handshake (a context that verifies clients refuses a dialer without a
     * certificate of its CA). tls_client: used to dial the peers given a TLS host
     * (srv_peers_set_tls_host). A failed handshake closes the connection; the dialer backs
     * off and dials again. NULL: plain TCP. */
    struct srv_tls_ctx *tls_server;
    struct srv_tls_ctx *tls_client;
};

/* Per-peer counters for /v2/stats/leader and /metrics. */
struct srv_peer_stats {
    uint64_t sent_messages;
    uint64_t dropped_messages; /* queue full or peer unreachable */
    uint64_t sent_bytes;
    uint64_t received_messages;
    uint64_t received_bytes;
    uint64_t connects; /* successful dials */
    bool connected;
};

struct srv_peers;

/* Creates the transport on loop; the config is copied. Returns 0 and *out. */
K_MUST_USE int srv_peers_new(uv_loop_t *loop, const struct srv_peers_config *cfg,
                             struct srv_peers **out);

/* Listens for peers on ip:port (0: the kernel picks; srv_peers_port tells). */
K_MUST_USE int srv_peers_listen(struct srv_peers *p, const char *ip, uint16_t port);
uint16_t srv_peers_port(const struct srv_peers *p);

/* Adds (or updates the address of) peer id at ip:port and starts dialing it. */
K_MUST_USE int srv_peers_add(struct srv_peers *p, uint64_t id, const char *ip, uint16_t port);

/* Makes the transport dial peer id (added) with TLS from now on, checking that its
 * certificate names host (borrowed; copied): the host of its https:// peer URL, as etcd
 * checks it. NULL: plain TCP again. Redials if that changes. Returns 0, K_ENOTFOUND for an
 * unknown peer, or K_ECONFIG without a tls_client context. */
K_MUST_USE int srv_peers_set_tls_host(struct srv_peers *p, uint64_t id, const char *host);

/* Stops talking to id and refuses its connections from now on. Id 0 (no member; e.g. an
 * --initial-cluster entry a joining member did not find in the registry) is a no-op. */
void srv_peers_remove(struct srv_peers *p, uint64_t id);

/* Stops dialing id without refusing it (it is no longer named, but was not removed). */
void srv_peers_forget(struct srv_peers *p, uint64_t id);

/* Queues a copy of msg[0..len) for peer to. Returns 0; K_ENOTFOUND for an unknown peer;
 * K_EUNAVAILABLE when the peer is not connected; K_ELIMIT when its queue is full. The last
 * two drop the message (counted); raft sends again. */
K_MUST_USE int srv_peers_send(struct srv_peers *p, uint64_t to, const uint8_t *msg, size_t len);

/* Streams the file at path to peer to, after a SNAP_BEGIN carrying msg (copied); calls
 * snapshot_sent_cb when done. Returns 0; K_ENOTFOUND, K_EUNAVAILABLE (not connected), K_EBUSY
 * (a snapshot to that peer is under way), or a negative errno for the file; on an error
 * snapshot_sent_cb is not called. */
K_MUST_USE int srv_peers_send_snapshot(struct srv_peers *p, uint64_t to, const uint8_t *msg,
                                       size_t len, const char *path);

/* Asks the member listening on ip:port for the cluster id and its member list (JSON, malloc'd
 * into *json). Blocking, with a deadline: for start-up, before the loop runs. Returns 0, a
 * negative errno, K_EUNAVAILABLE (timed out), or K_EPROTO / K_ECONFIG with err set. */
K_MUST_USE int srv_peers_query_members(const char *ip, uint16_t port, uint64_t timeout_ms,
                                       uint64_t *cluster_id, char **json, size_t *json_len,
                                       char *err, size_t err_len);

/* As srv_peers_query_members, inside TLS when tls (a client context) is not NULL: the
 * member's certificate must name tls_host. A TLS failure is K_ECONFIG with err saying what
 * failed. */
K_MUST_USE int srv_peers_query_members_tls(const char *ip, uint16_t port, uint64_t timeout_ms,
                                           uint64_t *cluster_id, char **json, size_t *json_len,
                                           char *err, size_t err_len, struct srv_tls_ctx *tls,
                                           const char *tls_host);

/* Sets (or changes) where arriving snapshots are written; copied. */
void srv_peers_set_incoming_dir(struct srv_peers *p, const char *dir);

/* Fills *out for peer id; false if unknown. */
bool srv_peers_stats(const struct srv_peers *p, uint64_t id, struct srv_peer_stats *out);

/* Closes every connection and frees p once its handles are closed; then calls cb (may be
 * NULL). p is invalid after the call. */
void srv_peers_close(struct srv_peers *p, void (*cb)(void *data), void *data);

#endif
