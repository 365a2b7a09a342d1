/* The node driver: runs one member's raft core on the libuv loop and connects it to the
 * disk and the store (DESIGN.md, "The write path"). It turns wall time into raft ticks,
 * collects every proposal of a loop turn into one Ready, hands the Ready's WAL write and
 * fdatasync plus the LMDB apply of committed entries to the disk worker thread, and when
 * that returns wakes the requests waiting on those entries, feeds the watch hub, and
 * advances raft. It also serves ReadIndex reads (quorum=true), proposes the leader's clock
 * for TTL expiry, and takes snapshots every snapshot_count applied entries.
 *
 * Ordering that keeps acknowledged writes safe:
 *  - committed entries are applied only after the WAL holding them is durable, in the same
 *    worker job, so kv never runs ahead of the WAL (kv/store.h "Durability");
 *  - a client is answered only from the apply result of its own entry;
 *  - WAL segments are released only behind a snapshot whose kv state was synced first.
 * A leader sends its messages before its own fsync (Raft thesis §10.2.1); a follower only
 * after.
 *
 * Threading: every function here is for the loop thread. The WAL and the kv store's write
 * side belong to the disk worker while a job runs; kv reads (kv_get) may run on the loop at
 * any time (LMDB readers do not block the writer). */
#ifndef KETCH_SERVER_NODE_H
#define KETCH_SERVER_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/assert.h"
#include "kv/apply.h"
#include "kv/store.h"
#include "kv/watch.h"
#include "proto/kv.pb-c.h"
#include "raft/raft.h"
#include "server/metrics.h"

enum {
    SRV_NODE_SYNC_INTERVAL_MS = 500, /* leader's clock proposals for TTL expiry (etcd: 500) */
    SRV_NODE_SWEEP_INTERVAL_MS = 100,
    SRV_NODE_READ_RETRY_MS = 300,    /* a ReadIndex round unanswered this long is asked again */
    SRV_NODE_QUEUE_MAX = 100000,     /* proposals and reads waiting at once; more get K_ELIMIT */
    SRV_NODE_CATCHUP_ENTRIES = 5000, /* entries kept in memory behind a snapshot (etcd's) */
    SRV_NODE_LONE_COMMIT_MAX = 1,    /* a lone leader's batches up to this commit at once */
};

/* How the node reaches its peers (server/cluster.c wires server/peers.c). All on the loop
 * thread. */
struct srv_node_transport {
    void *data;
    /* Queues an encoded raft message for member to. Returns 0, or a negative code when it was
     * dropped (raft sends again). */
    int (*send)(void *data, uint64_t to, const uint8_t *msg, size_t len);
    /* Streams the snapshot file at path to member to, announced by msg (its encoded MsgSnap);
     * the transport then calls srv_node_snapshot_sent. Returns 0 or a negative code. */
    int (*send_snapshot)(void *data, uint64_t to, const uint8_t *msg, size_t len, const char *path);
    /* The member registry in the store changed (a conf change or a snapshot applied). */
    void (*members_changed)(void *data);
};

/* One of etcd's internal /0 records (proto KV_METHOD_INTERNAL). */
struct srv_internal_record {
    const char *path;  /* "/0/members/<id>/raftAttributes", "/0/version", ... */
    const char *value; /* etcd's JSON or text for it */
};

struct srv_node_config {
    uint64_t id; /* this member */
    uint64_t cluster_id;
    const uint64_t *voters; /* the initial cluster, for a first start; none: this member
                             * joins a running cluster and waits for its leader */
    size_t voters_n;
    const struct srv_node_transport *transport; /* NULL for a member without peers */
    uint32_t heartbeat_ms;
    uint32_t election_ms;        /* >= 5 * heartbeat_ms */
    uint64_t snapshot_count;     /* applied entries between snapshots */
    uint32_t max_snapshots;      /* snapshot files kept */
    uint64_t store_bytes_max;    /* LMDB map size; 0 = kv's default */
    uint64_t value_bytes_max;    /* largest value a write may store; 0 = kv's default */
    uint64_t request_timeout_ms; /* a proposal or read not done by then fails (etcd: 5 s +
                                  * 2 election timeouts) */
    const char *wal_dir;         /* borrowed during srv_node_start only */
    const char *snap_dir;
    const char *kv_dir;
    struct srv_metrics *metrics; /* borrowed for the node's life */
    /* Written through raft by the first leader of a cluster this start created, in order:
     * etcd's member records and cluster version, so etcd indexes match etcd's (spec §3).
     * Copied during srv_node_start. */
    const struct srv_internal_record *bootstrap_records;
    size_t bootstrap_records_n;
};

/* A client request waiting on the node: embed it, set cb and data, and pass it to
 * srv_node_propose or srv_node_read. The node owns it from then until cb runs (exactly
 * once) or srv_node_cancel is called; after either, the caller may free it. */
struct srv_wait;
/* rc 0: done (for a write, *res is its entry's result, valid only during the call; for a
 * read, res is NULL and the store has applied everything the read must see). Otherwise
 * K_ETIMEDOUT-like failures: K_EUNAVAILABLE (timed out: no leader or no quorum),
 * K_ESTOPPED (the member is stopping), K_ELIMIT (too many waiting). */
typedef void (*srv_wait_cb)(struct srv_wait *w, int rc, const struct kv_result *res);
struct srv_wait {
    srv_wait_cb cb;
    void *data;
    /* Owned by the node while pending. */
    uint64_t id;          /* request id of a write; read batch context of a read */
    uint64_t first_ctx;   /* a read: the first ReadIndex round it joined (it arrived before) */
    uint64_t read_index;  /* a read: the index to apply before answering, 0 until known */
    uint64_t deadline_ms; /* loop time at which it fails */
    uint8_t *proposal;    /* a write not yet handed to raft: its encoded KvRequest, or
                           * ConfChange when conf_change */
    bool conf_change;
    size_t proposal_len;
    int state;
    struct srv_wait *prev; /* in the node's list of its state */
    struct srv_wait *next;
};

/* What /v2/stats/self, headers and metrics need. */
struct srv_node_status {
    uint64_t id;
    uint64_t cluster_id;
    uint64_t leader; /* 0 when unknown */
    uint64_t term;
    uint64_t commit_index; /* X-Raft-Index */
    uint64_t applied_index;
    uint64_t etcd_index; /* the store index the watch hub has seen */
    enum raft_state state;
    uint64_t append_received;     /* MsgApp received (recvAppendRequestCnt) */
    uint64_t append_sent;         /* MsgApp sent (sendAppendRequestCnt) */
    uint64_t leader_since_ms;     /* loop time the current leader was first seen */
    int64_t leader_since_wall_ns; /* the same, as Unix time (for /v2/stats/self) */
};

struct srv_node;

/* Opens the member's state (snapshot, WAL, kv store; bootstrapping a new cluster from
 * cfg->voters when the WAL is new), replays what the WAL holds, and starts ticking on loop.
 * Returns 0 and *out, or an error with one line in err (corrupt WAL or snapshot with file and
 * offset, unreadable store). */
K_MUST_USE int srv_node_start(uv_loop_t *loop, const struct srv_node_config *cfg,
                              struct srv_node **out, char *err, size_t err_len);

/* Proposes req (its id is assigned here) and calls w->cb when its entry is applied or it
 * fails. The request is encoded at once; req is borrowed for the call. */
void srv_node_propose(struct srv_node *n, Kvpb__KvRequest *req, struct srv_wait *w);

/* Proposes a membership change (its id is assigned here; context is etcd's raftAttributes
 * JSON for an add or update) and calls w->cb when its entry is applied: res->event is NULL
 * if the change was refused (it was invalid by the time it applied). */
void srv_node_propose_conf_change(struct srv_node *n, enum raft_conf_change_type type,
                                  uint64_t node_id, const char *context, struct srv_wait *w);

/* Proposes one of etcd's internal writes (a member publishing its attributes). */
void srv_node_propose_internal(struct srv_node *n, const char *path, const char *value,
                               struct srv_wait *w);

/* A raft message arrived from a peer (bytes borrowed for the call). */
void srv_node_receive(struct srv_node *n, const uint8_t *msg, size_t len);

/* A snapshot arrived: msg is its MsgSnap, path a file with its data (the node takes it). */
void srv_node_receive_snapshot(struct srv_node *n, const uint8_t *msg, size_t len,
                               const char *path);

/* The transport finished streaming a snapshot to member to. */
void srv_node_snapshot_sent(struct srv_node *n, uint64_t to, bool ok);

/* What the leader knows of a follower, for /v2/stats/leader. Latency is the round trip of
 * heartbeats, in milliseconds. */
struct srv_node_follower {
    uint64_t id;
    double latency_current;
    double latency_average;
    double latency_stddev;
    double latency_min;
    double latency_max;
    uint64_t success; /* appends acknowledged */
    uint64_t fail;    /* appends refused, or messages the transport dropped */
};
/* Fills out (at most cap) with the followers; returns how many. 0 when not the leader. */
size_t srv_node_followers(const struct srv_node *n, struct srv_node_follower *out, size_t cap);

/* Where a snapshot arriving from a peer is written before the node takes it. */
const char *srv_node_incoming_dir(const struct srv_node *n);

/* Waits until a linearizable read may be served from the local store (ReadIndex, then the
 * apply of everything up to it), then calls w->cb with rc 0. */
void srv_node_read(struct srv_node *n, struct srv_wait *w);

/* The same with its own deadline (e.g. /health's 1 s) instead of request_timeout_ms. */
void srv_node_read_within(struct srv_node *n, struct srv_wait *w, uint64_t timeout_ms);

/* Withdraws w (its client is gone); its cb will not run. A write already handed to raft
 * still commits and applies; only the answer is dropped. */
void srv_node_cancel(struct srv_node *n, struct srv_wait *w);

void srv_node_status(const struct srv_node *n, struct srv_node_status *out);

/* The store and the watch hub, for reads and watches on the loop thread. */
struct kv_store *srv_node_store(struct srv_node *n);
struct kv_watch_hub *srv_node_hub(struct srv_node *n);

/* Fails every waiting request with K_ESTOPPED, finishes the Ready in flight, syncs the
 * WAL and the store, and frees the node once its handles closed (run the loop until it
 * returns). Returns 0 or the first error met while syncing. n is invalid afterwards. */
int srv_node_stop(struct srv_node *n);

#endif
