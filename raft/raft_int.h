/* Internals of the Raft core shared between its files (raft__ names). Not for callers:
 * raft/raft.h is the whole public face. Layout follows etcd's raft package: log.c
 * (log_unstable + raftLog), progress.c (tracker), quorum.c, readonly.c, raft.c, ready.c. */
#ifndef KETCH_RAFT_RAFT_INT_H
#define KETCH_RAFT_RAFT_INT_H

#include "raft/raft.h"

/* ---- arena.c: bump allocator for entry bytes, reset as a whole ---- */

/* Bytes of entries the core holds until the next raft_advance() (unstable entries,
 * forwarded proposals). One block is kept across resets, so the steady state allocates
 * nothing. */
struct raft__arena_block {
    struct raft__arena_block *next;
    size_t used_bytes;
    size_t size_bytes;
    uint8_t bytes[];
};
struct raft__arena {
    struct raft__arena_block *head; /* current block; older ones follow */
    uint64_t *allocations;          /* counter to bump; borrowed */
};
void raft__arena_init(struct raft__arena *a, uint64_t *allocations);
void raft__arena_deinit(struct raft__arena *a);
/* Returns a copy of len bytes at p (NULL when len is 0), valid until the next reset. */
const uint8_t *raft__arena_copy(struct raft__arena *a, const void *p, size_t len);
void raft__arena_reset(struct raft__arena *a);

/* ---- log.c: the log as the core sees it: storage plus not-yet-persisted entries ---- */

struct raft__log {
    const struct raft_storage *storage;
    /* Unstable part: entries (and possibly a snapshot) not yet handed to the storage.
     * u_ents[i].index == u_offset + i. Entries at >= u_offset shadow the storage's. */
    struct raft_entry *u_ents;
    size_t u_n;
    size_t u_cap;
    uint64_t u_offset;
    bool u_snap_present;
    struct raft_snapshot_meta u_snap;
    struct raft__arena arena; /* bytes of u_ents */
    uint64_t committed;       /* highest index known committed */
    uint64_t applied;         /* highest index handed out to apply; <= committed */
    uint64_t *allocations;
};

int raft__log_init(struct raft__log *l, const struct raft_storage *s, uint64_t *allocations);
void raft__log_deinit(struct raft__log *l);
uint64_t raft__log_first_index(const struct raft__log *l);
uint64_t raft__log_last_index(const struct raft__log *l);
/* Stores the term of index i; 0 with rc 0 is never returned for i >= 1 within range.
 * Returns 0, K_ECOMPACTED, K_EUNAVAILABLE. */
K_MUST_USE int raft__log_term(const struct raft__log *l, uint64_t i, uint64_t *term);
/* Term of i, or 0 if i is out of range (for comparisons only). */
uint64_t raft__log_term_or_zero(const struct raft__log *l, uint64_t i);
uint64_t raft__log_last_term(const struct raft__log *l);
bool raft__log_match_term(const struct raft__log *l, uint64_t i, uint64_t term);
bool raft__log_is_up_to_date(const struct raft__log *l, uint64_t last_index, uint64_t term);
/* Points *out at a contiguous run starting at lo, at most hi - lo long (hi exclusive).
 * Returns 0, K_ECOMPACTED, K_EUNAVAILABLE. */
K_MUST_USE int raft__log_span(const struct raft__log *l, uint64_t lo, uint64_t hi,
                              const struct raft_entry **out, size_t *out_n);
/* Appends n entries (copying their bytes) after truncating anything at >= ents[0].index.
 * Returns true if existing entries were removed (messages pointing at them must go). */
bool raft__log_append(struct raft__log *l, const struct raft_entry *ents, size_t n);
/* Appends one new entry at last + 1 with term; returns its index. */
uint64_t raft__log_append_new(struct raft__log *l, uint64_t term, enum raft_entry_type type,
                              const void *data, size_t len);
/* Follower append (Raft §5.3): returns false if (index, log_term) does not match; else
 * appends what is new, sets *last_new and *truncated, and commits up to min(commit, last_new). */
bool raft__log_maybe_append(struct raft__log *l, uint64_t index, uint64_t log_term, uint64_t commit,
                            const struct raft_entry *ents, size_t n, uint64_t *last_new,
                            bool *truncated);
void raft__log_commit_to(struct raft__log *l, uint64_t commit);
/* Commits up to index if its term is term (Raft §5.4.2); returns whether commit moved. */
bool raft__log_maybe_commit(struct raft__log *l, uint64_t index, uint64_t term);
/* Largest i <= index whose term is <= term (the fast-backtracking search). */
uint64_t raft__log_find_conflict_by_term(const struct raft__log *l, uint64_t index, uint64_t term);
void raft__log_restore(struct raft__log *l, const struct raft_snapshot_meta *meta);
/* Marks the unstable part persisted (the driver appended it); frees its bytes. */
void raft__log_stable(struct raft__log *l);
/* Whether [lo, hi] (inclusive) holds a conf change entry; hi <= last. */
bool raft__log_has_conf_change(const struct raft__log *l, uint64_t lo, uint64_t hi);

/* ---- progress.c: the leader's view of each member (Raft §5.3, thesis §4.2.1) ---- */

enum raft__progress_state {
    RAFT__PROGRESS_PROBE = 0,     /* one append at a time until a match is found */
    RAFT__PROGRESS_REPLICATE = 1, /* stream appends, bounded by the in-flight window */
    RAFT__PROGRESS_SNAPSHOT = 2,  /* waiting for a snapshot to land */
};

/* Ring of the last index of each unacknowledged MsgApp. */
struct raft__inflights {
    uint32_t start;
    uint32_t count;
    uint32_t size; /* capacity in use, <= RAFT_INFLIGHT_LIMIT */
    uint64_t last_index[RAFT_INFLIGHT_LIMIT];
};

struct raft__progress {
    uint64_t id;
    bool is_learner;
    uint64_t match_index; /* highest index known replicated; < next_index */
    uint64_t next_index;  /* next index to send; >= 1 */
    enum raft__progress_state state;
    bool probe_sent;           /* probe: an append is out, wait for its answer */
    uint64_t pending_snapshot; /* snapshot: index sent */
    bool recent_active;        /* heard from it since the last CheckQuorum */
    int8_t vote;               /* in elections: 1 granted, -1 rejected, 0 unknown */
    struct raft__inflights inflights;
};

void raft__progress_reset(struct raft__progress *p, uint64_t next, uint32_t inflight_max);
void raft__progress_become_probe(struct raft__progress *p);
void raft__progress_become_replicate(struct raft__progress *p);
void raft__progress_become_snapshot(struct raft__progress *p, uint64_t snapshot_index);
/* Returns whether match moved (an answer that acknowledges n). */
bool raft__progress_maybe_update(struct raft__progress *p, uint64_t n);
/* Handles a rejection of the append at rejected; returns false if stale. */
bool raft__progress_maybe_decr_to(struct raft__progress *p, uint64_t rejected, uint64_t match_hint);
bool raft__progress_is_paused(const struct raft__progress *p);
void raft__inflights_add(struct raft__inflights *in, uint64_t last_index);
void raft__inflights_free_to(struct raft__inflights *in, uint64_t index);
bool raft__inflights_full(const struct raft__inflights *in);
void raft__inflights_free_first(struct raft__inflights *in);
const char *raft__progress_state_name(enum raft__progress_state s);

/* ---- quorum.c ---- */

/* Majority of n voters. */
size_t raft__quorum(size_t voters_n);
/* Highest index that a majority of voters has matched. */
uint64_t raft__quorum_commit_index(const struct raft__progress *prs, size_t n);
enum raft__vote_result { RAFT__VOTE_PENDING, RAFT__VOTE_WON, RAFT__VOTE_LOST };
enum raft__vote_result raft__quorum_vote_result(const struct raft__progress *prs, size_t n);

/* ---- readonly.c: the leader's queue of ReadIndex requests (thesis §6.4) ---- */

struct raft__read_req {
    uint64_t index;                 /* commit index when the request arrived */
    uint64_t from;                  /* who asked; the leader itself for local reads */
    uint64_t acked[RAFT_NODES_MAX]; /* voters that answered its heartbeat, the leader first */
    size_t acked_n;
    size_t context_len;
    uint8_t context[RAFT_CONTEXT_BYTES_MAX];
};
struct raft__readonly {
    struct raft__read_req reqs[RAFT_READS_PENDING_LIMIT]; /* oldest first */
    size_t n;
};

/* ---- raft.c: the state machine ---- */

/* An outgoing message. Entries are named by range and resolved to pointers at
 * raft_ready() time, because the unstable log may move in memory until then. */
enum raft__ents_source { RAFT__ENTS_NONE, RAFT__ENTS_LOG, RAFT__ENTS_PROPS };
struct raft__outmsg {
    struct raft_message m;
    enum raft__ents_source source;
    uint64_t ents_lo; /* LOG: first index; PROPS: first position in props */
};

struct raft {
    uint64_t id;
    struct raft_config cfg;
    uint64_t term;
    uint64_t vote;
    uint64_t lead;
    enum raft_state state;
    struct raft__log log;
    struct raft_conf_state conf;
    struct raft__progress *prs; /* conf members, voters first then learners; RAFT_NODES_MAX */
    size_t prs_n;
    uint32_t election_elapsed;
    uint32_t heartbeat_elapsed;
    uint32_t randomized_election_timeout;
    uint64_t lead_transferee;
    uint64_t pending_conf_index; /* a leader accepts a conf change only once applied >= it */
    bool bcast_pending;          /* proposals appended since the last broadcast */
    bool lone_commit_late;       /* raft_set_lone_commit(r, false) */
    struct raft__readonly readonly;
    /* Work for the next Ready. */
    struct raft__outmsg *out;
    size_t out_n;
    size_t out_cap;
    struct raft_entry *props;  /* forwarded proposals, bytes in props_arena */
    uint64_t props_last_bytes; /* entry bytes in the last forwarded MsgProp */
    size_t props_n;
    size_t props_cap;
    struct raft__arena props_arena;
    struct raft_read_state *reads;
    size_t reads_n;
    size_t reads_cap;
    struct raft_message *ready_msgs; /* resolved at raft_ready() */
    size_t ready_cap;
    struct raft_hard_state prev_hs;
    struct raft_soft_state prev_ss;
    bool in_ready;
    struct raft_stats stats;
};

struct raft__progress *raft__progress_get(struct raft *r, uint64_t id);
void raft__become_follower(struct raft *r, uint64_t term, uint64_t lead);
/* Queues a message (copied); returns it for filling in entries. */
struct raft__outmsg *raft__send(struct raft *r, const struct raft_message *m);
/* Drops queued messages carrying log entries (after the log changed under them). */
void raft__drop_log_messages(struct raft *r);
void raft__bcast_append(struct raft *r);
bool raft__maybe_commit(struct raft *r);
void raft__set_conf(struct raft *r, const struct raft_conf_state *cs);
void *raft__grow(void *p, size_t *cap, size_t need, size_t elem_bytes, uint64_t *allocations);
void raft__readonly_add(struct raft *r, uint64_t index, uint64_t from, const uint8_t *ctx,
                        size_t ctx_len);
void raft__readonly_ack(struct raft *r, uint64_t from, const uint8_t *ctx, size_t ctx_len);
void raft__add_read_state(struct raft *r, uint64_t index, const uint8_t *ctx, size_t ctx_len);

#endif
