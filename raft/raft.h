/* The Raft core: a pure, deterministic state machine in the style of etcd's raft library.
 * It does no I/O, reads no clock, starts no threads and keeps no global state; the caller
 * feeds it messages, ticks, proposals and reads, and takes back Ready batches of work.
 * Randomness (election jitter) comes only from the k_prng the caller passes in, so two
 * cores fed the same inputs produce the same outputs, byte for byte.
 * Not here: the wire encoding (raft/codec.h), WAL and snapshot files (raft/wal.h, snap.h),
 * the in-memory log (raft/storage_mem.h). Read the Raft paper and thesis (Ongaro 2014).
 *
 * Design choices, and why:
 * - The core works on its own plain structs and encodes to the proto/raft.proto wire format
 *   only at the edges (codec.c). Generated protobuf-c structs need one heap object per entry
 *   and per message; ours let the leader's steady-state path allocate nothing per entry
 *   beyond copying the entry's bytes into a reused arena (bench/raft_bench.c measures it).
 * - Entries reachable from a Ready (to persist, inside messages, committed) are never
 *   copied per message: they point into the core's unstable log or into the storage,
 *   borrowed until raft_advance(). For that the core accepts no input between raft_ready()
 *   and raft_advance(), and the storage promises that appends never move entries it
 *   already holds (struct raft_storage).
 * - Snapshot data is opaque and never passes through the core. The core deals in
 *   snapshot metadata; the driver streams the data out of band (see MsgSnap below).
 * - Membership changes one server at a time, applied by the application after commit
 *   (etcd's ConfChange v1 model). Safe under failures because a leader accepts a change only
 *   once every earlier one is applied, and a new leader first commits an entry of its own
 *   term (the fix to the single-server bug, Ongaro's raft-dev post of 2015).
 * - Small fixed bounds instead of allocation: at most RAFT_NODES_MAX members, read contexts
 *   of at most RAFT_CONTEXT_BYTES_MAX bytes carried inline, a bounded in-flight window. */
#ifndef KETCH_RAFT_RAFT_H
#define KETCH_RAFT_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "base/prng.h"

enum {
    RAFT_NODES_MAX = 16,           /* voters + learners in one configuration */
    RAFT_CONTEXT_BYTES_MAX = 64,   /* ReadIndex context, carried inline in messages */
    RAFT_INFLIGHT_LIMIT = 256,     /* upper bound for raft_config.inflight_max */
    RAFT_READS_PENDING_LIMIT = 64, /* ReadIndex requests a leader queues at once */
};

/* Entry types; numbers equal raftpb.EntryType. */
enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 0,      /* data is an application command, or empty (leader no-op) */
    RAFT_ENTRY_CONF_CHANGE = 1, /* data is an encoded ConfChange (raft_conf_change_encode) */
};

/* One log entry. Where a Ready or the storage hands one out, data is borrowed: see there. */
struct raft_entry {
    uint64_t term;             /* term of the leader that created it; >= 1 */
    uint64_t index;            /* position in the log; >= 1 */
    enum raft_entry_type type; /* normal or conf change */
    size_t data_len;           /* bytes at data; 0 for a no-op */
    const uint8_t *data;       /* borrowed; NULL when data_len is 0 */
};

/* What a member must have on disk before it answers anyone (Raft Figure 2). */
struct raft_hard_state {
    uint64_t term;   /* latest term seen */
    uint64_t vote;   /* member voted for in term, 0 for none */
    uint64_t commit; /* highest index known committed; may lag on disk, never leads */
};

/* A configuration. Ids are nonzero, unique across both lists, in the order they were
 * added (kept sorted ascending by the core). */
struct raft_conf_state {
    uint64_t voters[RAFT_NODES_MAX];
    size_t voters_n;
    uint64_t learners[RAFT_NODES_MAX];
    size_t learners_n;
};

/* Describes a snapshot: the state machine up to and including index, whose entry had term,
 * under configuration conf. The data itself is the application's (a file for ketchd). */
struct raft_snapshot_meta {
    uint64_t index; /* last index the snapshot covers; 0 for "no snapshot" */
    uint64_t term;  /* term of that entry */
    struct raft_conf_state conf;
};

/* Message types; numbers equal raftpb.MessageType. The local ones (HUP, BEAT, UNREACHABLE,
 * SNAP_STATUS, CHECK_QUORUM) never go on the wire; use the raft_* calls instead. */
enum raft_msg_type {
    RAFT_MSG_HUP = 0,
    RAFT_MSG_BEAT = 1,
    RAFT_MSG_PROP = 2,
    RAFT_MSG_APP = 3,
    RAFT_MSG_APP_RESP = 4,
    RAFT_MSG_VOTE = 5,
    RAFT_MSG_VOTE_RESP = 6,
    RAFT_MSG_SNAP = 7,
    RAFT_MSG_HEARTBEAT = 8,
    RAFT_MSG_HEARTBEAT_RESP = 9,
    RAFT_MSG_UNREACHABLE = 10,
    RAFT_MSG_SNAP_STATUS = 11,
    RAFT_MSG_CHECK_QUORUM = 12,
    RAFT_MSG_TRANSFER_LEADER = 13,
    RAFT_MSG_TIMEOUT_NOW = 14,
    RAFT_MSG_READ_INDEX = 15,
    RAFT_MSG_READ_INDEX_RESP = 16,
    RAFT_MSG_PRE_VOTE = 17,
    RAFT_MSG_PRE_VOTE_RESP = 18,
    RAFT_MSG_TYPE_COUNT = 19,
};

/* A message between members. Field meanings follow etcd's raftpb.Message.
 * MsgSnap: snapshot describes the snapshot the receiver must install; its data travels out
 * of band. The sending driver streams the data of its own snapshot at snapshot.index, then
 * reports the outcome with raft_report_snapshot(). The receiving driver first receives the
 * whole data, then calls raft_step() with the message; a Ready then says whether to install
 * it (raft_ready.snapshot_present), or it was stale and the data can be dropped. */
struct raft_message {
    enum raft_msg_type type;
    uint64_t to;
    uint64_t from;
    uint64_t term; /* sender's term; 0 only for local messages */
    uint64_t
            log_term; /* App: term of entry index; Vote: last log term; AppResp reject: hint term */
    uint64_t index;   /* App: index before entries; Vote: last index; AppResp: match or rejected */
    uint64_t commit;  /* sender's commit index (App, Heartbeat) */
    bool reject;
    uint64_t reject_hint;             /* AppResp reject: follower's hint index */
    const struct raft_entry *entries; /* borrowed: App and Prop only */
    size_t entries_n;
    struct raft_snapshot_meta snapshot;      /* Snap only */
    size_t context_len;                      /* bytes used in context */
    uint8_t context[RAFT_CONTEXT_BYTES_MAX]; /* ReadIndex context, or the transfer marker */
};

/* A ReadIndex answer: once the local state machine has applied index, reads made now
 * reflect every write committed before raft_read_index() was called. */
struct raft_read_state {
    uint64_t index;
    size_t context_len;
    uint8_t context[RAFT_CONTEXT_BYTES_MAX]; /* as passed to raft_read_index() */
};

enum raft_state {
    RAFT_STATE_FOLLOWER = 0,
    RAFT_STATE_CANDIDATE = 1,
    RAFT_STATE_LEADER = 2,
    RAFT_STATE_PRE_CANDIDATE = 3,
};

/* The log as persisted, read by the core. Implemented by raft/storage_mem.c; a disk-backed
 * driver keeps a raft_storage_mem in front of its WAL (as etcd keeps MemoryStorage).
 * Each call gets data as its first argument. Errors: K_ECOMPACTED (index below the first
 * available), K_EUNAVAILABLE (index above the last), anything else is fatal to the core.
 * Entries handed out stay valid, at the same address, until the storage is next compacted,
 * has a snapshot applied, or has those indexes overwritten; appends never move entries. */
struct raft_storage {
    void *data;
    /* Stores the hard state and the configuration as of the storage's snapshot. */
    int (*initial_state)(void *data, struct raft_hard_state *hs, struct raft_conf_state *cs);
    /* Points *out at a contiguous run of entries starting at lo, of at least 1 and at most
     * hi - lo entries (fewer where the storage's memory is not contiguous); lo < hi. */
    int (*entries)(void *data, uint64_t lo, uint64_t hi, const struct raft_entry **out,
                   size_t *out_n);
    /* Stores the term of entry index; valid for first_index - 1 (the snapshot) too. */
    int (*term)(void *data, uint64_t index, uint64_t *term);
    uint64_t (*first_index)(void *data); /* first available entry; snapshot index + 1 */
    uint64_t (*last_index)(void *data);  /* last entry, or the snapshot index if none */
    /* Stores the metadata of the newest snapshot a leader can send (K_EUNAVAILABLE: none). */
    int (*snapshot)(void *data, struct raft_snapshot_meta *meta);
};

struct raft_config {
    uint64_t id;                 /* this member; nonzero */
    uint32_t election_ticks;     /* base election timeout; jitter adds [0, election_ticks) */
    uint32_t heartbeat_ticks;    /* leader heartbeat period; < election_ticks */
    uint32_t inflight_max;       /* unacknowledged appends per follower; 1..RAFT_INFLIGHT_LIMIT */
    uint32_t append_entries_max; /* entries per MsgApp; >= 1 */
    uint64_t message_bytes_max;  /* entry bytes per MsgApp or forwarded MsgProp; one entry
                                  * always goes (etcd's MaxSizePerMsg) */
    uint32_t uncommitted_max;    /* leader refuses proposals past last - commit > this */
    uint32_t proposals_forward_max;     /* a follower forwards at most this many per Ready */
    uint32_t committed_max;             /* committed entries per Ready; >= 1 */
    bool pre_vote;                      /* thesis §9.6: ask before disrupting */
    bool check_quorum;                  /* thesis §6.2: a leader that hears no quorum steps down */
    uint64_t applied;                   /* index the application has applied (0: the snapshot's) */
    struct k_prng *prng;                /* borrowed for the core's life; the only randomness */
    const struct raft_storage *storage; /* borrowed for the core's life */
};

/* Fills c with defaults for id (10/1 ticks, window 256, 256 entries per append, ...),
 * leaving prng and storage NULL for the caller to set. */
void raft_config_default(struct raft_config *c, uint64_t id);

/* Member states the application may look at (not persisted). */
struct raft_soft_state {
    uint64_t leader; /* 0 when unknown */
    enum raft_state state;
};

/* One batch of work; see raft_ready(). Everything it points at is owned by the core or the
 * storage and stays valid until raft_advance(r, rd). Do, in this order:
 *  1. if snapshot_present, install the snapshot data you received for snapshot.index, then
 *     apply the metadata to the storage; 2. append entries to the storage and, if
 *     hard_state_changed, store hard_state; make both durable (one fsync). Write the
 *     entries before the hard state: a crash may keep any prefix of the batch, and a hard
 *     state whose commit points past the entries on disk makes raft_new() fail
 *     (the simulator crashes members at every such point);
 *  3. send messages (a leader's MsgApp may go before step 2, thesis §10.2.1: the leader
 *     counts its own copy only once raft_advance() says it is durable, unless it is the only
 *     member);
 *  4. apply committed entries in order (conf changes through raft_apply_conf_change()).
 *     They may include entries of this same Ready (a follower told of the commit along with
 *     the entries; a leader alone in its configuration): never apply before step 2;
 *  5. answer read_states once applied reaches their index; 6. raft_advance(r, rd). */
struct raft_ready {
    bool soft_state_changed;
    struct raft_soft_state soft_state;
    bool hard_state_changed;
    struct raft_hard_state hard_state;
    bool snapshot_present;
    struct raft_snapshot_meta snapshot; /* install before appending entries */
    const struct raft_entry *entries;   /* to append to stable storage, in order */
    size_t entries_n;
    const struct raft_message *messages; /* to send; may be dropped, duplicated, reordered */
    size_t messages_n;
    const struct raft_entry *committed; /* to apply, contiguous, after the last applied */
    size_t committed_n;
    const struct raft_read_state *read_states;
    size_t read_states_n;
};

/* Counters for tests and the benchmark; never reset. */
struct raft_stats {
    uint64_t allocations;      /* heap allocations the core made */
    uint64_t messages_dropped; /* outgoing messages dropped because the log changed under them */
};

struct raft;

/* Creates a core from c, reading the hard state and configuration from c->storage.
 * On success *out is owned by the caller and freed with raft_free().
 * Returns 0, K_ECONFIG (a field out of range, or storage state inconsistent), or a storage
 * error. */
K_MUST_USE int raft_new(const struct raft_config *c, struct raft **out);
void raft_free(struct raft *r); /* NULL is a no-op */

/* Advances the logical clock by one tick (elections, heartbeats, CheckQuorum). */
void raft_tick(struct raft *r);

/* Feeds a message from a peer (m is borrowed for the call; entries are copied).
 * Returns 0 (including when the message was stale and ignored), K_EPROTO for a local-only
 * type or a message not addressed to this member, and for a forwarded proposal the leader
 * cannot take: K_ELIMIT (too many uncommitted entries), K_EBUSY (transfer in progress),
 * K_ENOLEADER (this member is a candidate). The proposer is not told; it times out. */
K_MUST_USE int raft_step(struct raft *r, const struct raft_message *m);

/* Proposes one entry (data copied). A leader appends it; a follower forwards it.
 * Returns 0, K_ENOLEADER (no leader known, or this member is a candidate),
 * K_EBUSY (a leadership transfer is in progress), K_ELIMIT (too many uncommitted or
 * forwarded entries: retry once some commit). 0 is no promise the entry commits. */
K_MUST_USE int raft_propose(struct raft *r, const void *data, size_t data_len);

/* When a leader alone in its configuration (one voter, no learner) commits its proposals.
 * early (the default): at once, so a write is persisted and applied from one Ready (the
 * entries are durable before they are applied: raft_ready, step 4). Otherwise once
 * raft_advance() says they are durable, so the application can apply one Ready's entries
 * while it writes the next's. Both are safe; the driver may choose per batch. A leader with
 * any other member always waits for durability. */
void raft_set_lone_commit(struct raft *r, bool early);

/* A conf change, as in proto ConfChange. context is opaque to raft (ketchd stores the
 * member name and peer URLs); borrowed. */
enum raft_conf_change_type {
    RAFT_CONF_ADD_NODE = 0,         /* add a voter, or promote a learner */
    RAFT_CONF_REMOVE_NODE = 1,      /* remove a voter or learner */
    RAFT_CONF_UPDATE_NODE = 2,      /* changes only context; the configuration is unchanged */
    RAFT_CONF_ADD_LEARNER_NODE = 3, /* add a learner (a voter cannot be demoted) */
};
struct raft_conf_change {
    enum raft_conf_change_type type;
    uint64_t node_id;
    uint64_t id; /* the proposer's request id, opaque to raft */
    const uint8_t *context;
    size_t context_len;
};

/* Proposes a configuration change as a RAFT_ENTRY_CONF_CHANGE entry. Same errors as
 * raft_propose(), plus K_EBUSY on a leader while an earlier change is not yet applied or the
 * leader has not yet committed an entry of its term. A follower forwards it; the leader
 * then turns an untimely change into an empty entry, so watch for the commit. */
K_MUST_USE int raft_propose_conf_change(struct raft *r, const struct raft_conf_change *cc);

/* Applies a committed conf change to the core's configuration and stores the new
 * configuration in *out (may be NULL). Call it when applying the entry, in log order; it may
 * be called between raft_ready() and raft_advance().
 * Returns 0, or K_ECONFIG if the change is invalid here (the configuration is unchanged:
 * removing the last voter, demoting a voter, id 0); the application then treats the entry
 * as a no-op, as every member does. */
K_MUST_USE int raft_apply_conf_change(struct raft *r, const struct raft_conf_change *cc,
                                      struct raft_conf_state *out);

/* Asks for a linearizable read point (thesis §6.4). A Ready later carries a read state with
 * the same context. Returns 0, K_ENOLEADER, K_EBUSY (the leader has not yet committed an
 * entry in its term: retry shortly), K_ELIMIT (context too long, or too many pending).
 * 0 is no promise: a leader change loses pending reads, so the caller times out and
 * retries. */
K_MUST_USE int raft_read_index(struct raft *r, const void *context, size_t context_len);

/* Asks the leader to hand leadership to transferee (thesis §3.10). A follower forwards the
 * request. Returns 0, K_ENOLEADER, or K_ECONFIG (transferee is not a voter). */
K_MUST_USE int raft_transfer_leader(struct raft *r, uint64_t transferee);

/* Starts an election now (as if the election timeout fired); no-op for a non-voter. */
void raft_campaign(struct raft *r);

/* Tells a leader that its snapshot to id was delivered (ok) or failed. */
void raft_report_snapshot(struct raft *r, uint64_t id, bool ok);

/* Tells a leader that the last message to id was lost (the transport gave up). */
void raft_report_unreachable(struct raft *r, uint64_t id);

/* Returns whether raft_ready() would return true (cheap). */
bool raft_has_ready(const struct raft *r);

/* Takes the next batch of work into *rd (see struct raft_ready for what to do with it).
 * Returns false, leaving *rd zeroed, if there is nothing to do. After true, call
 * raft_advance(r, rd) before any other call that changes r (raft_tick, raft_step, raft_propose,
 * ...): the batch points into the core's memory. */
bool raft_ready(struct raft *r, struct raft_ready *rd);

/* Acknowledges rd: its state is durable, its messages sent, its committed entries applied. */
void raft_advance(struct raft *r, const struct raft_ready *rd);

/* Read-only views. */
uint64_t raft_id(const struct raft *r);
uint64_t raft_term(const struct raft *r);
uint64_t raft_leader(const struct raft *r);
enum raft_state raft_state(const struct raft *r);
uint64_t raft_commit_index(const struct raft *r);
uint64_t raft_applied_index(const struct raft *r);
uint64_t raft_last_index(const struct raft *r);
const struct raft_conf_state *raft_conf(const struct raft *r);
const struct raft_stats *raft_stats(const struct raft *r);

/* Fills *match and *next with the leader's view of id; returns false if r is not the leader
 * or id is not a member. For tests and /v2/stats/leader. */
bool raft_progress(const struct raft *r, uint64_t id, uint64_t *match, uint64_t *next);

/* Names, for logs and traces: "MsgApp", "leader", ... (static strings). */
const char *raft_msg_type_name(enum raft_msg_type t);
const char *raft_state_name(enum raft_state s);

/* Returns whether id is a voter (learner) in cs. */
bool raft_conf_is_voter(const struct raft_conf_state *cs, uint64_t id);
bool raft_conf_is_learner(const struct raft_conf_state *cs, uint64_t id);

#endif
