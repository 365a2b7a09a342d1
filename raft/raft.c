/* The Raft state machine: terms, elections (with PreVote and CheckQuorum), replication,
 * commit, snapshots, leadership transfer and ReadIndex, in the structure of etcd's raft.go.
 * Rules cite the Raft paper (§) and Ongaro's thesis. Not here: the log (log.c), the
 * per-member progress (progress.c), handing work out (ready.c), membership (confchange.c). */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "raft/codec.h"
#include "raft/raft_int.h"

/* Marks votes caused by leadership transfer so voters ignore their leader lease. */
static const char transfer_marker[] = "transfer";

static void become_follower(struct raft *r, uint64_t term, uint64_t lead);
static void send_append(struct raft *r, struct raft__progress *pr, bool send_if_empty);
static int step_leader(struct raft *r, const struct raft_message *m);
static int step_candidate(struct raft *r, const struct raft_message *m);
static int step_follower(struct raft *r, const struct raft_message *m);

void raft_config_default(struct raft_config *c, uint64_t id)
{
    memset(c, 0, sizeof(*c));
    c->id = id;
    c->election_ticks = 10;
    c->heartbeat_ticks = 1;
    c->inflight_max = 256;
    c->append_entries_max = 256;
    c->message_bytes_max = 1 << 20;
    c->uncommitted_max = 65536;
    c->proposals_forward_max = 4096;
    c->committed_max = 4096;
    c->pre_vote = true;
    c->check_quorum = true;
}

void *raft__grow(void *p, size_t *cap, size_t need, size_t elem_bytes, uint64_t *allocations)
{
    if (need <= *cap) return p;
    size_t c = *cap ? *cap * 2 : 16;
    while (c < need)
        c *= 2;
    p = k_xrealloc(p, c * elem_bytes);
    (*allocations)++;
    *cap = c;
    return p;
}

struct raft__progress *raft__progress_get(struct raft *r, uint64_t id)
{
    for (size_t i = 0; i < r->prs_n; i++) {
        if (r->prs[i].id == id) return &r->prs[i];
    }
    return NULL;
}

static bool promotable(const struct raft *r)
{
    return raft_conf_is_voter(&r->conf, r->id);
}

static size_t voters_n(const struct raft *r)
{
    return r->conf.voters_n;
}

struct raft__outmsg *raft__send(struct raft *r, const struct raft_message *m)
{
    k_assert(m->to != 0 && m->to != r->id);
    r->out = raft__grow(r->out, &r->out_cap, r->out_n + 1, sizeof(*r->out), &r->stats.allocations);
    struct raft__outmsg *o = &r->out[r->out_n++];
    o->m = *m;
    o->m.from = r->id;
    /* Local messages carry no term; proposals are forwarded without one (etcd). */
    if (m->type != RAFT_MSG_PROP && m->type != RAFT_MSG_READ_INDEX && m->term == 0 &&
        m->type != RAFT_MSG_VOTE && m->type != RAFT_MSG_PRE_VOTE && m->type != RAFT_MSG_VOTE_RESP &&
        m->type != RAFT_MSG_PRE_VOTE_RESP) {
        o->m.term = r->term;
    }
    o->source = RAFT__ENTS_NONE;
    o->ents_lo = 0;
    return o;
}

void raft__drop_log_messages(struct raft *r)
{
    size_t w = 0;
    for (size_t i = 0; i < r->out_n; i++) {
        if (r->out[i].source == RAFT__ENTS_LOG) {
            r->stats.messages_dropped++;
            continue;
        }
        r->out[w++] = r->out[i];
    }
    r->out_n = w;
}

static void reset_randomized_timeout(struct raft *r)
{
    r->randomized_election_timeout =
            r->cfg.election_ticks + (uint32_t)k_prng_below(r->cfg.prng, r->cfg.election_ticks);
}

static void reset(struct raft *r, uint64_t term)
{
    if (r->term != term) {
        k_assert(term > r->term);
        r->term = term;
        r->vote = 0;
    }
    r->lead = 0;
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    reset_randomized_timeout(r);
    r->lead_transferee = 0;
    r->pending_conf_index = 0;
    r->bcast_pending = false;
    r->readonly.n = 0;
    uint64_t last = raft__log_last_index(&r->log);
    for (size_t i = 0; i < r->prs_n; i++) {
        raft__progress_reset(&r->prs[i], last + 1, r->cfg.inflight_max);
    }
}

static void become_follower(struct raft *r, uint64_t term, uint64_t lead)
{
    reset(r, term);
    r->lead = lead;
    r->state = RAFT_STATE_FOLLOWER;
}

void raft__become_follower(struct raft *r, uint64_t term, uint64_t lead)
{
    become_follower(r, term, lead);
}

static void become_candidate(struct raft *r)
{
    k_assert(r->state != RAFT_STATE_LEADER);
    reset(r, r->term + 1);
    r->vote = r->id;
    r->state = RAFT_STATE_CANDIDATE;
}

static void become_pre_candidate(struct raft *r)
{
    k_assert(r->state != RAFT_STATE_LEADER);
    /* PreVote changes neither term nor vote (thesis §9.6). */
    r->lead = 0;
    r->state = RAFT_STATE_PRE_CANDIDATE;
    for (size_t i = 0; i < r->prs_n; i++)
        r->prs[i].vote = 0;
}

/* A leader alone in its configuration (one voter, no learner) commits what it appends at
 * once. Its copy is not durable yet, but nothing can act on that commit before it is: the
 * driver makes a Ready's entries durable before it applies the Ready's committed entries
 * (raft.h, steps 2 and 4), and no other member hears of it. With any other member the leader
 * counts its own copy only once raft_advance() says it is durable (thesis §10.2.1), since a
 * follower could apply an entry the leader then loses. This spares a lone member one Ready
 * cycle per write: its entries are written and applied from the same Ready. */
static void sole_member_commit(struct raft *r)
{
    if (r->lone_commit_late) return;
    if (r->prs_n != 1 || r->prs[0].id != r->id || r->prs[0].is_learner) return;
    raft__progress_maybe_update(&r->prs[0], raft__log_last_index(&r->log));
    (void)raft__maybe_commit(r);
}

void raft_set_lone_commit(struct raft *r, bool early)
{
    r->lone_commit_late = !early;
}

static void become_leader(struct raft *r)
{
    k_assert(r->state == RAFT_STATE_CANDIDATE);
    reset(r, r->term);
    r->lead = r->id;
    r->state = RAFT_STATE_LEADER;
    struct raft__progress *self = raft__progress_get(r, r->id);
    k_assert(self != NULL);
    /* The leader counts only what it has persisted (advance moves this). */
    uint64_t durable = (r->log.u_n > 0 || r->log.u_snap_present) ? r->log.u_offset - 1
                                                                 : raft__log_last_index(&r->log);
    self->match_index = durable;
    raft__progress_become_replicate(self);
    self->next_index = raft__log_last_index(&r->log) + 1;
    self->recent_active = true;
    /* An empty entry of the new term: commits everything before it (§5.4.2), and no conf
     * change is accepted until it is applied (the single-server change fix). */
    uint64_t idx = raft__log_append_new(&r->log, r->term, RAFT_ENTRY_NORMAL, NULL, 0);
    r->pending_conf_index = idx;
    r->bcast_pending = true;
    sole_member_commit(r);
}

static void campaign(struct raft *r, bool pre, bool transfer)
{
    uint64_t term;
    enum raft_msg_type type;
    if (pre) {
        become_pre_candidate(r);
        term = r->term + 1;
        type = RAFT_MSG_PRE_VOTE;
    } else {
        become_candidate(r);
        term = r->term;
        type = RAFT_MSG_VOTE;
    }
    struct raft__progress *self = raft__progress_get(r, r->id);
    self->vote = 1;
    if (raft__quorum_vote_result(r->prs, voters_n(r)) == RAFT__VOTE_WON) {
        /* A single voter wins at once. */
        if (pre) {
            campaign(r, false, transfer);
        } else {
            become_leader(r);
        }
        return;
    }
    for (size_t i = 0; i < voters_n(r); i++) {
        if (r->prs[i].id == r->id) continue;
        struct raft_message m = {
            .type = type,
            .to = r->prs[i].id,
            .term = term,
            .index = raft__log_last_index(&r->log),
            .log_term = raft__log_last_term(&r->log),
        };
        if (transfer) {
            memcpy(m.context, transfer_marker, sizeof(transfer_marker) - 1);
            m.context_len = sizeof(transfer_marker) - 1;
        }
        raft__send(r, &m);
    }
}

static void hup(struct raft *r, bool transfer)
{
    if (r->state == RAFT_STATE_LEADER) return;
    if (!promotable(r)) return;
    /* A member that has yet to apply a committed conf change might campaign under a stale
     * configuration (etcd raft.go hup). */
    if (r->log.committed > r->log.applied &&
        raft__log_has_conf_change(&r->log, r->log.applied + 1, r->log.committed)) {
        return;
    }
    campaign(r, r->cfg.pre_vote && !transfer, transfer);
}

static bool is_transfer(const struct raft_message *m)
{
    return m->context_len == sizeof(transfer_marker) - 1 &&
           memcmp(m->context, transfer_marker, m->context_len) == 0;
}

static void send_heartbeat(struct raft *r, struct raft__progress *pr, const uint8_t *ctx,
                           size_t ctx_len)
{
    /* Never tell a follower to commit past what it is known to hold. */
    uint64_t commit = pr->match_index < r->log.committed ? pr->match_index : r->log.committed;
    struct raft_message m = { .type = RAFT_MSG_HEARTBEAT, .to = pr->id, .commit = commit };
    if (ctx_len) memcpy(m.context, ctx, ctx_len);
    m.context_len = ctx_len;
    raft__send(r, &m);
}

static void bcast_heartbeat(struct raft *r, const uint8_t *ctx, size_t ctx_len)
{
    for (size_t i = 0; i < r->prs_n; i++) {
        if (r->prs[i].id == r->id) continue;
        send_heartbeat(r, &r->prs[i], ctx, ctx_len);
    }
}

/* Sends a snapshot when pr needs entries that were compacted; returns false if none. */
static void send_snapshot(struct raft *r, struct raft__progress *pr)
{
    if (!pr->recent_active) return;
    struct raft_snapshot_meta meta;
    int rc = r->log.storage->snapshot(r->log.storage->data, &meta);
    if (rc == K_EUNAVAILABLE) return;
    k_assert(rc == 0);
    k_assert(meta.index != 0);
    struct raft_message m = { .type = RAFT_MSG_SNAP, .to = pr->id, .snapshot = meta };
    raft__send(r, &m);
    raft__progress_become_snapshot(pr, meta.index);
}

/* How many of ents[0..n) fit in bytes_max of entry data (at least one, so a big entry
 * still goes). */
static size_t within_bytes(const struct raft_entry *ents, size_t n, uint64_t bytes_max)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        bytes += ents[i].data_len;
        if (i > 0 && bytes > bytes_max) return i;
    }
    return n;
}

static void send_append(struct raft *r, struct raft__progress *pr, bool send_if_empty)
{
    if (raft__progress_is_paused(pr)) return;
    uint64_t prev = pr->next_index - 1;
    uint64_t prev_term = 0;
    uint64_t last = raft__log_last_index(&r->log);
    int rc = raft__log_term(&r->log, prev, &prev_term);
    const struct raft_entry *ents = NULL;
    size_t n = 0;
    if (rc == 0 && pr->next_index <= last) {
        uint64_t hi = pr->next_index + r->cfg.append_entries_max;
        if (hi > last + 1) hi = last + 1;
        rc = raft__log_span(&r->log, pr->next_index, hi, &ents, &n);
        n = within_bytes(ents, n, r->cfg.message_bytes_max);
    }
    if (rc == K_ECOMPACTED) {
        send_snapshot(r, pr);
        return;
    }
    k_assert(rc == 0);
    if (n == 0 && !send_if_empty) return;
    struct raft_message m = {
        .type = RAFT_MSG_APP,
        .to = pr->id,
        .index = prev,
        .log_term = prev_term,
        .commit = r->log.committed,
        .entries_n = n,
    };
    struct raft__outmsg *o = raft__send(r, &m);
    if (n > 0) {
        o->source = RAFT__ENTS_LOG;
        o->ents_lo = pr->next_index;
        uint64_t sent_last = pr->next_index + n - 1;
        if (pr->state == RAFT__PROGRESS_REPLICATE) {
            pr->next_index = sent_last + 1;
            raft__inflights_add(&pr->inflights, sent_last);
        } else {
            pr->probe_sent = true;
        }
    } else if (pr->state == RAFT__PROGRESS_PROBE) {
        pr->probe_sent = true;
    }
}

void raft__bcast_append(struct raft *r)
{
    r->bcast_pending = false;
    for (size_t i = 0; i < r->prs_n; i++) {
        if (r->prs[i].id == r->id) continue;
        send_append(r, &r->prs[i], true);
    }
}

bool raft__maybe_commit(struct raft *r)
{
    uint64_t ci = raft__quorum_commit_index(r->prs, voters_n(r));
    /* §5.4.2: only entries of the current term commit by counting replicas. */
    return raft__log_maybe_commit(&r->log, ci, r->term);
}

static void abort_transfer(struct raft *r)
{
    r->lead_transferee = 0;
}

static bool committed_entry_in_term(const struct raft *r)
{
    return raft__log_term_or_zero(&r->log, r->log.committed) == r->term;
}

/* ---- creation ---- */

void raft__set_conf(struct raft *r, const struct raft_conf_state *cs)
{
    k_assert(cs->voters_n + cs->learners_n <= RAFT_NODES_MAX);
    struct raft__progress old[RAFT_NODES_MAX];
    size_t old_n = r->prs_n;
    memcpy(old, r->prs, old_n * sizeof(old[0]));
    r->conf = *cs;
    uint64_t last = raft__log_last_index(&r->log);
    size_t n = 0;
    for (size_t pass = 0; pass < 2; pass++) {
        const uint64_t *ids = pass == 0 ? cs->voters : cs->learners;
        size_t ids_n = pass == 0 ? cs->voters_n : cs->learners_n;
        for (size_t i = 0; i < ids_n; i++) {
            struct raft__progress *p = &r->prs[n++];
            struct raft__progress *prev = NULL;
            for (size_t j = 0; j < old_n; j++) {
                if (old[j].id == ids[i]) prev = &old[j];
            }
            if (prev) {
                *p = *prev;
            } else {
                memset(p, 0, sizeof(*p));
                p->id = ids[i];
                raft__progress_reset(p, last + 1, r->cfg.inflight_max);
                /* A new member is presumed active, or its first snapshot would wait. */
                p->recent_active = true;
                if (p->id == r->id) p->match_index = last;
            }
            p->is_learner = pass == 1;
        }
    }
    r->prs_n = n;
}

int raft_new(const struct raft_config *c, struct raft **out)
{
    if (c->id == 0 || !c->prng || !c->storage) return K_ECONFIG;
    if (c->election_ticks < 2 || c->heartbeat_ticks == 0 ||
        c->heartbeat_ticks >= c->election_ticks) {
        return K_ECONFIG;
    }
    if (c->inflight_max == 0 || c->inflight_max > RAFT_INFLIGHT_LIMIT) return K_ECONFIG;
    if (c->append_entries_max == 0 || c->committed_max == 0 || c->message_bytes_max == 0)
        return K_ECONFIG;
    struct raft *r = k_xcalloc(1, sizeof(*r));
    r->stats.allocations++;
    r->id = c->id;
    r->cfg = *c;
    r->prs = k_xcalloc(RAFT_NODES_MAX, sizeof(*r->prs));
    r->stats.allocations++;
    raft__arena_init(&r->props_arena, &r->stats.allocations);
    int rc = raft__log_init(&r->log, c->storage, &r->stats.allocations);
    if (rc < 0) goto out_free;
    struct raft_hard_state hs;
    struct raft_conf_state cs;
    rc = c->storage->initial_state(c->storage->data, &hs, &cs);
    if (rc < 0) goto out_free;
    uint64_t last = raft__log_last_index(&r->log);
    if (hs.commit > last || hs.commit < r->log.committed) {
        /* A persisted commit past the log means the storage lost entries (etcd loadState). */
        if (hs.commit > last) {
            rc = K_ECONFIG;
            goto out_free;
        }
        hs.commit = r->log.committed;
    }
    r->log.committed = hs.commit;
    if (c->applied > 0) {
        if (c->applied > hs.commit || c->applied < r->log.applied) {
            rc = K_ECONFIG;
            goto out_free;
        }
        r->log.applied = c->applied;
    }
    r->term = hs.term;
    r->vote = hs.vote;
    raft__set_conf(r, &cs);
    r->prev_hs = hs;
    become_follower(r, r->term, 0);
    r->prev_ss.leader = 0;
    r->prev_ss.state = RAFT_STATE_FOLLOWER;
    *out = r;
    return 0;
out_free:
    raft_free(r);
    return rc;
}

void raft_free(struct raft *r)
{
    if (!r) return;
    raft__log_deinit(&r->log);
    raft__arena_deinit(&r->props_arena);
    free(r->prs);
    free(r->out);
    free(r->props);
    free(r->reads);
    free(r->ready_msgs);
    free(r);
}

/* ---- ticks ---- */

void raft_tick(struct raft *r)
{
    k_assert(!r->in_ready);
    r->election_elapsed++;
    if (r->state != RAFT_STATE_LEADER) {
        if (promotable(r) && r->election_elapsed >= r->randomized_election_timeout) {
            r->election_elapsed = 0;
            hup(r, false);
        }
        return;
    }
    r->heartbeat_elapsed++;
    if (r->election_elapsed >= r->cfg.election_ticks) {
        r->election_elapsed = 0;
        if (r->cfg.check_quorum) {
            struct raft_message m = { .type = RAFT_MSG_CHECK_QUORUM, .from = r->id };
            int rc = step_leader(r, &m);
            k_assert(rc == 0);
        }
        /* A transfer that has not finished within an election timeout is abandoned. */
        if (r->state == RAFT_STATE_LEADER && r->lead_transferee != 0) abort_transfer(r);
    }
    if (r->state != RAFT_STATE_LEADER) return;
    if (r->heartbeat_elapsed >= r->cfg.heartbeat_ticks) {
        r->heartbeat_elapsed = 0;
        /* Carry the newest pending read's context: if its own round was lost, this one
         * confirms it and every older read; otherwise a full queue could never drain. */
        const struct raft__read_req *q =
                r->readonly.n ? &r->readonly.reqs[r->readonly.n - 1] : NULL;
        bcast_heartbeat(r, q ? q->context : NULL, q ? q->context_len : 0);
    }
}

/* ---- step ---- */

static void send_vote_resp(struct raft *r, const struct raft_message *m, bool reject)
{
    enum raft_msg_type t = m->type == RAFT_MSG_VOTE ? RAFT_MSG_VOTE_RESP : RAFT_MSG_PRE_VOTE_RESP;
    /* A granted PreVote answers in the asked-for term (the candidate counts it there); a
     * rejection carries ours so a stale candidate learns it. */
    struct raft_message resp = {
        .type = t, .to = m->from, .term = reject ? r->term : m->term, .reject = reject
    };
    raft__send(r, &resp);
}

static void handle_vote(struct raft *r, const struct raft_message *m)
{
    bool can_vote = r->vote == m->from || (r->vote == 0 && r->lead == 0) ||
                    (m->type == RAFT_MSG_PRE_VOTE && m->term > r->term);
    if (can_vote && raft__log_is_up_to_date(&r->log, m->index, m->log_term)) {
        send_vote_resp(r, m, false);
        if (m->type == RAFT_MSG_VOTE) {
            r->election_elapsed = 0;
            r->vote = m->from;
        }
    } else {
        send_vote_resp(r, m, true);
    }
}

/* Term rules common to every state (Raft §5.1, thesis §9.6 and §6.2). Returns false if the
 * message is to be ignored. */
static bool check_term(struct raft *r, const struct raft_message *m)
{
    if (m->term == 0 || m->term == r->term) return true;
    if (m->term > r->term) {
        if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PRE_VOTE) {
            /* Leader lease: while we hear from a leader, ignore disruptive candidates. */
            bool in_lease = r->cfg.check_quorum && r->lead != 0 &&
                            r->election_elapsed < r->cfg.election_ticks;
            if (!is_transfer(m) && in_lease) return false;
        }
        if (m->type == RAFT_MSG_PRE_VOTE) return true; /* never changes our term */
        if (m->type == RAFT_MSG_PRE_VOTE_RESP && !m->reject) return true;
        if (m->type == RAFT_MSG_APP || m->type == RAFT_MSG_HEARTBEAT || m->type == RAFT_MSG_SNAP) {
            become_follower(r, m->term, m->from);
        } else {
            become_follower(r, m->term, 0);
        }
        return true;
    }
    /* m->term < r->term */
    if ((r->cfg.check_quorum || r->cfg.pre_vote) &&
        (m->type == RAFT_MSG_HEARTBEAT || m->type == RAFT_MSG_APP)) {
        /* A stale leader cut off by a partition learns the new term from this and steps
         * down; without it, with PreVote our own campaigns could never reach it. */
        struct raft_message resp = { .type = RAFT_MSG_APP_RESP, .to = m->from };
        raft__send(r, &resp);
    } else if (m->type == RAFT_MSG_PRE_VOTE) {
        struct raft_message resp = {
            .type = RAFT_MSG_PRE_VOTE_RESP, .to = m->from, .term = r->term, .reject = true
        };
        raft__send(r, &resp);
    }
    return false;
}

int raft_step(struct raft *r, const struct raft_message *m)
{
    k_assert(!r->in_ready);
    switch (m->type) {
    case RAFT_MSG_HUP:
    case RAFT_MSG_BEAT:
    case RAFT_MSG_UNREACHABLE:
    case RAFT_MSG_SNAP_STATUS:
    case RAFT_MSG_CHECK_QUORUM:
        return K_EPROTO;
    default:
        break;
    }
    if ((unsigned)m->type >= RAFT_MSG_TYPE_COUNT) return K_EPROTO;
    if (m->to != r->id || m->from == 0 || m->from == r->id) return K_EPROTO;
    if (m->context_len > RAFT_CONTEXT_BYTES_MAX) return K_EPROTO;
    uint64_t term_before = r->term;
    if (!check_term(r, m)) return 0;
    int rc = 0;
    switch (m->type) {
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PRE_VOTE:
        handle_vote(r, m);
        break;
    default:
        switch (r->state) {
        case RAFT_STATE_LEADER:
            rc = step_leader(r, m);
            break;
        case RAFT_STATE_CANDIDATE:
        case RAFT_STATE_PRE_CANDIDATE:
            rc = step_candidate(r, m);
            break;
        case RAFT_STATE_FOLLOWER:
            rc = step_follower(r, m);
            break;
        }
    }
    k_assert(r->term >= term_before); /* terms never go back */
    k_assert(r->log.committed <= raft__log_last_index(&r->log));
    k_assert(r->state != RAFT_STATE_LEADER || r->lead == r->id);
    return rc;
}

/* Appends proposed entries on the leader; bytes copied. */
static int leader_append(struct raft *r, const struct raft_entry *ents, size_t n, bool local)
{
    if (r->lead_transferee != 0) return K_EBUSY;
    if (!raft__progress_get(r, r->id)) return K_ENOLEADER; /* removed, stepping down */
    uint64_t uncommitted = raft__log_last_index(&r->log) - r->log.committed;
    if (uncommitted + n > r->cfg.uncommitted_max) return K_ELIMIT;
    for (size_t i = 0; i < n; i++) {
        enum raft_entry_type type = ents[i].type;
        const uint8_t *data = ents[i].data;
        size_t len = ents[i].data_len;
        if (type == RAFT_ENTRY_CONF_CHANGE) {
            if (r->pending_conf_index > r->log.applied) {
                if (local) return K_EBUSY;
                /* Forwarded and untimely: keep the slot, lose the change (etcd). */
                type = RAFT_ENTRY_NORMAL;
                data = NULL;
                len = 0;
            }
        }
        uint64_t idx = raft__log_append_new(&r->log, r->term, type, data, len);
        if (type == RAFT_ENTRY_CONF_CHANGE) r->pending_conf_index = idx;
    }
    r->bcast_pending = true;
    sole_member_commit(r);
    return 0;
}

static void handle_app_resp(struct raft *r, struct raft__progress *pr, const struct raft_message *m)
{
    pr->recent_active = true;
    if (m->reject) {
        uint64_t hint = m->reject_hint;
        if (m->log_term > 0) hint = raft__log_find_conflict_by_term(&r->log, hint, m->log_term);
        if (raft__progress_maybe_decr_to(pr, m->index, hint)) {
            if (pr->state == RAFT__PROGRESS_REPLICATE) raft__progress_become_probe(pr);
            send_append(r, pr, true);
        }
        return;
    }
    bool old_paused = raft__progress_is_paused(pr);
    if (!raft__progress_maybe_update(pr, m->index)) {
        return;
    }
    switch (pr->state) {
    case RAFT__PROGRESS_PROBE:
        raft__progress_become_replicate(pr);
        break;
    case RAFT__PROGRESS_SNAPSHOT:
        if (pr->match_index >= pr->pending_snapshot) raft__progress_become_probe(pr);
        break;
    case RAFT__PROGRESS_REPLICATE:
        raft__inflights_free_to(&pr->inflights, m->index);
        break;
    }
    if (raft__maybe_commit(r)) {
        raft__bcast_append(r);
    } else if (old_paused) {
        send_append(r, pr, false);
    }
    /* Keep streaming while there is more and room in the window. */
    while (pr->next_index <= raft__log_last_index(&r->log) && !raft__progress_is_paused(pr)) {
        uint64_t before = pr->next_index;
        send_append(r, pr, false);
        if (pr->next_index == before) break;
    }
    if (m->from == r->lead_transferee && pr->match_index == raft__log_last_index(&r->log)) {
        struct raft_message tn = { .type = RAFT_MSG_TIMEOUT_NOW, .to = m->from };
        raft__send(r, &tn);
    }
}

static void handle_transfer(struct raft *r, uint64_t transferee)
{
    struct raft__progress *pr = raft__progress_get(r, transferee);
    if (!pr || pr->is_learner) return;
    if (r->lead_transferee == transferee) return; /* already under way */
    abort_transfer(r);
    if (transferee == r->id) return;
    /* The transfer must finish within one election timeout (thesis §3.10). */
    r->election_elapsed = 0;
    r->lead_transferee = transferee;
    if (pr->match_index == raft__log_last_index(&r->log)) {
        struct raft_message tn = { .type = RAFT_MSG_TIMEOUT_NOW, .to = transferee };
        raft__send(r, &tn);
    } else {
        send_append(r, pr, true);
    }
}

static void leader_read_index(struct raft *r, uint64_t from, const uint8_t *ctx, size_t len)
{
    if (voters_n(r) == 1) {
        /* Alone, the leader is the quorum. */
        if (from == r->id) {
            raft__add_read_state(r, r->log.committed, ctx, len);
        } else {
            struct raft_message resp = { .type = RAFT_MSG_READ_INDEX_RESP,
                                         .to = from,
                                         .index = r->log.committed };
            memcpy(resp.context, ctx, len);
            resp.context_len = len;
            raft__send(r, &resp);
        }
        return;
    }
    raft__readonly_add(r, r->log.committed, from, ctx, len);
    bcast_heartbeat(r, ctx, len);
}

static int step_leader(struct raft *r, const struct raft_message *m)
{
    switch (m->type) {
    case RAFT_MSG_CHECK_QUORUM: {
        size_t active = 0;
        for (size_t i = 0; i < voters_n(r); i++) {
            if (r->prs[i].id == r->id || r->prs[i].recent_active) active++;
        }
        for (size_t i = 0; i < r->prs_n; i++) {
            if (r->prs[i].id != r->id) r->prs[i].recent_active = false;
        }
        if (active < raft__quorum(voters_n(r))) become_follower(r, r->term, 0);
        return 0;
    }
    case RAFT_MSG_PROP:
        if (m->entries_n == 0) return 0;
        return leader_append(r, m->entries, m->entries_n, false);
    case RAFT_MSG_READ_INDEX:
        if (!committed_entry_in_term(r)) return 0; /* the follower's caller retries */
        if (r->readonly.n >= RAFT_READS_PENDING_LIMIT) return 0;
        leader_read_index(r, m->from, m->context, m->context_len);
        return 0;
    case RAFT_MSG_TRANSFER_LEADER:
        handle_transfer(r, m->from);
        return 0;
    default:
        break;
    }
    struct raft__progress *pr = raft__progress_get(r, m->from);
    if (!pr) return 0;
    switch (m->type) {
    case RAFT_MSG_APP_RESP:
        handle_app_resp(r, pr, m);
        break;
    case RAFT_MSG_HEARTBEAT_RESP:
        pr->recent_active = true;
        pr->probe_sent = false;
        /* A full window may be full of lost appends: the follower is alive, so free a slot
         * and let the next append find out (etcd does the same). */
        if (pr->state == RAFT__PROGRESS_REPLICATE && raft__inflights_full(&pr->inflights)) {
            raft__inflights_free_first(&pr->inflights);
        }
        if (pr->match_index < raft__log_last_index(&r->log)) send_append(r, pr, true);
        if (m->context_len > 0) raft__readonly_ack(r, m->from, m->context, m->context_len);
        break;
    default:
        break; /* stale votes and the like */
    }
    return 0;
}

static int step_candidate(struct raft *r, const struct raft_message *m)
{
    enum raft_msg_type my_resp =
            r->state == RAFT_STATE_PRE_CANDIDATE ? RAFT_MSG_PRE_VOTE_RESP : RAFT_MSG_VOTE_RESP;
    switch (m->type) {
    case RAFT_MSG_PROP:
        return K_ENOLEADER;
    case RAFT_MSG_APP:
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_SNAP:
        /* A leader exists in our term (§5.2): step down and take what it sends. */
        become_follower(r, m->term, m->from);
        return step_follower(r, m);
    default:
        break;
    }
    if (m->type == my_resp) {
        struct raft__progress *pr = raft__progress_get(r, m->from);
        if (!pr || pr->is_learner) return 0;
        if (pr->vote == 0) pr->vote = m->reject ? -1 : 1;
        switch (raft__quorum_vote_result(r->prs, voters_n(r))) {
        case RAFT__VOTE_WON:
            if (r->state == RAFT_STATE_PRE_CANDIDATE) {
                campaign(r, false, false);
            } else {
                become_leader(r);
            }
            break;
        case RAFT__VOTE_LOST:
            become_follower(r, r->term, 0);
            break;
        case RAFT__VOTE_PENDING:
            break;
        }
    }
    return 0;
}

static void handle_append(struct raft *r, const struct raft_message *m)
{
    struct raft_message resp = { .type = RAFT_MSG_APP_RESP, .to = m->from };
    if (m->index < r->log.committed) {
        /* Everything up to our commit is settled: tell the leader where we are. */
        resp.index = r->log.committed;
        raft__send(r, &resp);
        return;
    }
    uint64_t last_new = 0;
    bool truncated = false;
    if (raft__log_maybe_append(&r->log, m->index, m->log_term, m->commit, m->entries, m->entries_n,
                               &last_new, &truncated)) {
        if (truncated) raft__drop_log_messages(r);
        resp.index = last_new;
        raft__send(r, &resp);
        return;
    }
    /* Rejected: hint the leader at the last index whose term is <= the leader's term at
     * m->index, so it can skip a whole term per round trip (thesis §5.3 optimisation). */
    uint64_t last = raft__log_last_index(&r->log);
    uint64_t hint_index = m->index < last ? m->index : last;
    hint_index = raft__log_find_conflict_by_term(&r->log, hint_index, m->log_term);
    resp.reject = true;
    resp.index = m->index;
    resp.reject_hint = hint_index;
    resp.log_term = raft__log_term_or_zero(&r->log, hint_index);
    raft__send(r, &resp);
}

static bool restore(struct raft *r, const struct raft_snapshot_meta *s)
{
    if (s->index <= r->log.committed) return false;
    /* A snapshot whose configuration lacks us is still taken: a member being added gets
     * the leader's latest snapshot, which may predate its AddNode; it learns its own
     * membership from the entries that follow, and until then it is not promotable. */
    if (raft__log_match_term(&r->log, s->index, s->term)) {
        /* We hold the entry already: just move commit. */
        raft__log_commit_to(&r->log, s->index);
        return false;
    }
    raft__log_restore(&r->log, s);
    raft__drop_log_messages(r);
    raft__set_conf(r, &s->conf);
    return true;
}

static void handle_snapshot(struct raft *r, const struct raft_message *m)
{
    struct raft_message resp = { .type = RAFT_MSG_APP_RESP, .to = m->from };
    if (restore(r, &m->snapshot)) {
        resp.index = raft__log_last_index(&r->log);
    } else {
        resp.index = r->log.committed;
    }
    raft__send(r, &resp);
}

static int step_follower(struct raft *r, const struct raft_message *m)
{
    switch (m->type) {
    case RAFT_MSG_PROP:
        /* Forwarding a forwarded proposal again could loop; the leader is authoritative. */
        return 0;
    case RAFT_MSG_APP:
        r->election_elapsed = 0;
        r->lead = m->from;
        handle_append(r, m);
        break;
    case RAFT_MSG_HEARTBEAT: {
        r->election_elapsed = 0;
        r->lead = m->from;
        raft__log_commit_to(&r->log, m->commit);
        struct raft_message resp = { .type = RAFT_MSG_HEARTBEAT_RESP, .to = m->from };
        memcpy(resp.context, m->context, m->context_len);
        resp.context_len = m->context_len;
        raft__send(r, &resp);
        break;
    }
    case RAFT_MSG_SNAP:
        r->election_elapsed = 0;
        r->lead = m->from;
        handle_snapshot(r, m);
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        if (promotable(r)) hup(r, true);
        break;
    case RAFT_MSG_READ_INDEX_RESP:
        raft__add_read_state(r, m->index, m->context, m->context_len);
        break;
    case RAFT_MSG_TRANSFER_LEADER:
    case RAFT_MSG_READ_INDEX:
        /* Meant for the leader; the sender's view is stale. */
        break;
    default:
        break;
    }
    return 0;
}

/* ---- requests from the local application ---- */

static int forward_props(struct raft *r, const struct raft_entry *e)
{
    if (r->props_n >= r->cfg.proposals_forward_max) return K_ELIMIT;
    r->props = raft__grow(r->props, &r->props_cap, r->props_n + 1, sizeof(*r->props),
                          &r->stats.allocations);
    struct raft_entry *d = &r->props[r->props_n];
    *d = *e;
    d->data = raft__arena_copy(&r->props_arena, e->data, e->data_len);
    /* Extend the last forwarded batch to the leader when there is one, so a burst of
     * proposals travels in one message. */
    if (r->out_n > 0) {
        struct raft__outmsg *last = &r->out[r->out_n - 1];
        if (last->source == RAFT__ENTS_PROPS && last->m.to == r->lead &&
            last->ents_lo + last->m.entries_n == r->props_n &&
            r->props_last_bytes + e->data_len <= r->cfg.message_bytes_max) {
            last->m.entries_n++;
            r->props_last_bytes += e->data_len;
            r->props_n++;
            return 0;
        }
    }
    struct raft_message m = { .type = RAFT_MSG_PROP, .to = r->lead, .entries_n = 1 };
    struct raft__outmsg *o = raft__send(r, &m);
    o->source = RAFT__ENTS_PROPS;
    o->ents_lo = r->props_n;
    r->props_last_bytes = e->data_len;
    r->props_n++;
    return 0;
}

static int propose_entry(struct raft *r, const struct raft_entry *e)
{
    k_assert(!r->in_ready);
    switch (r->state) {
    case RAFT_STATE_LEADER:
        return leader_append(r, e, 1, true);
    case RAFT_STATE_CANDIDATE:
    case RAFT_STATE_PRE_CANDIDATE:
        return K_ENOLEADER;
    case RAFT_STATE_FOLLOWER:
        if (r->lead == 0) return K_ENOLEADER;
        return forward_props(r, e);
    }
    return K_ENOLEADER;
}

int raft_propose(struct raft *r, const void *data, size_t data_len)
{
    struct raft_entry e = { .type = RAFT_ENTRY_NORMAL,
                            .data_len = data_len,
                            .data = data_len ? data : NULL };
    return propose_entry(r, &e);
}

int raft_propose_conf_change(struct raft *r, const struct raft_conf_change *cc)
{
    uint8_t buf[RAFT_CONF_CHANGE_BYTES_MAX];
    size_t len = 0;
    int rc = raft_conf_change_encode(cc, buf, sizeof(buf), &len);
    if (rc < 0) return rc;
    if (r->state == RAFT_STATE_LEADER && !committed_entry_in_term(r)) return K_EBUSY;
    struct raft_entry e = { .type = RAFT_ENTRY_CONF_CHANGE, .data_len = len, .data = buf };
    return propose_entry(r, &e);
}

int raft_read_index(struct raft *r, const void *context, size_t context_len)
{
    k_assert(!r->in_ready);
    if (context_len > RAFT_CONTEXT_BYTES_MAX) return K_ELIMIT;
    if (r->state == RAFT_STATE_LEADER) {
        /* Thesis §6.4 step 1: until an entry of this term commits, our commit index may be
         * behind the previous leader's. */
        if (!committed_entry_in_term(r)) return K_EBUSY;
        if (r->readonly.n >= RAFT_READS_PENDING_LIMIT) return K_ELIMIT;
        leader_read_index(r, r->id, context, context_len);
        return 0;
    }
    if (r->state != RAFT_STATE_FOLLOWER || r->lead == 0) return K_ENOLEADER;
    struct raft_message m = { .type = RAFT_MSG_READ_INDEX, .to = r->lead };
    memcpy(m.context, context, context_len);
    m.context_len = context_len;
    raft__send(r, &m);
    return 0;
}

int raft_transfer_leader(struct raft *r, uint64_t transferee)
{
    k_assert(!r->in_ready);
    if (!raft_conf_is_voter(&r->conf, transferee)) return K_ECONFIG;
    if (r->state == RAFT_STATE_LEADER) {
        handle_transfer(r, transferee);
        return 0;
    }
    if (r->lead == 0) return K_ENOLEADER;
    /* The leader learns the transferee from the sender, so only it may ask for itself. */
    if (transferee != r->id) return K_ECONFIG;
    struct raft_message m = { .type = RAFT_MSG_TRANSFER_LEADER, .to = r->lead };
    raft__send(r, &m);
    return 0;
}

void raft_campaign(struct raft *r)
{
    k_assert(!r->in_ready);
    hup(r, false);
}

void raft_report_snapshot(struct raft *r, uint64_t id, bool ok)
{
    k_assert(!r->in_ready);
    if (r->state != RAFT_STATE_LEADER) return;
    struct raft__progress *pr = raft__progress_get(r, id);
    if (!pr || pr->state != RAFT__PROGRESS_SNAPSHOT) return;
    /* Either way probe next: on success from the snapshot on, on failure from the match.
     * Wait for a heartbeat answer before sending (etcd). */
    if (!ok) pr->pending_snapshot = 0;
    raft__progress_become_probe(pr);
    pr->probe_sent = true;
}

void raft_report_unreachable(struct raft *r, uint64_t id)
{
    k_assert(!r->in_ready);
    if (r->state != RAFT_STATE_LEADER) return;
    struct raft__progress *pr = raft__progress_get(r, id);
    if (pr && pr->state == RAFT__PROGRESS_REPLICATE) raft__progress_become_probe(pr);
}

/* ---- views ---- */

uint64_t raft_id(const struct raft *r)
{
    return r->id;
}

uint64_t raft_term(const struct raft *r)
{
    return r->term;
}

uint64_t raft_leader(const struct raft *r)
{
    return r->lead;
}

enum raft_state raft_state(const struct raft *r)
{
    return r->state;
}

uint64_t raft_commit_index(const struct raft *r)
{
    return r->log.committed;
}

uint64_t raft_applied_index(const struct raft *r)
{
    return r->log.applied;
}

uint64_t raft_last_index(const struct raft *r)
{
    return raft__log_last_index(&r->log);
}

const struct raft_conf_state *raft_conf(const struct raft *r)
{
    return &r->conf;
}

const struct raft_stats *raft_stats(const struct raft *r)
{
    return &r->stats;
}

bool raft_progress(const struct raft *r, uint64_t id, uint64_t *match, uint64_t *next)
{
    if (r->state != RAFT_STATE_LEADER) return false;
    for (size_t i = 0; i < r->prs_n; i++) {
        if (r->prs[i].id == id) {
            *match = r->prs[i].match_index;
            *next = r->prs[i].next_index;
            return true;
        }
    }
    return false;
}

const char *raft_msg_type_name(enum raft_msg_type t)
{
    static const char *const names[RAFT_MSG_TYPE_COUNT] = {
        "MsgHup",           "MsgBeat",           "MsgProp",        "MsgApp",
        "MsgAppResp",       "MsgVote",           "MsgVoteResp",    "MsgSnap",
        "MsgHeartbeat",     "MsgHeartbeatResp",  "MsgUnreachable", "MsgSnapStatus",
        "MsgCheckQuorum",   "MsgTransferLeader", "MsgTimeoutNow",  "MsgReadIndex",
        "MsgReadIndexResp", "MsgPreVote",        "MsgPreVoteResp",
    };
    if ((unsigned)t >= RAFT_MSG_TYPE_COUNT) return "MsgUnknown";
    return names[t];
}

const char *raft_state_name(enum raft_state s)
{
    switch (s) {
    case RAFT_STATE_FOLLOWER:
        return "follower";
    case RAFT_STATE_CANDIDATE:
        return "candidate";
    case RAFT_STATE_LEADER:
        return "leader";
    case RAFT_STATE_PRE_CANDIDATE:
        return "pre-candidate";
    }
    return "?";
}
