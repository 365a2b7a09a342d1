/* Handing work to the driver: raft_ready() gathers what to persist, send and apply into one
 * batch and raft_advance() takes its acknowledgement (etcd rawnode.go). The batch points
 * into the core's and the storage's memory, which is why nothing may change the core in
 * between. */
#include <string.h>

#include "base/assert.h"
#include "raft/raft_int.h"

static bool hs_equal(const struct raft_hard_state *a, const struct raft_hard_state *b)
{
    return a->term == b->term && a->vote == b->vote && a->commit == b->commit;
}

static struct raft_hard_state hard_state(const struct raft *r)
{
    struct raft_hard_state hs = { .term = r->term, .vote = r->vote, .commit = r->log.committed };
    return hs;
}

/* Range of committed entries the application may apply next: [lo, hi). */
static bool committed_range(const struct raft *r, uint64_t *lo, uint64_t *hi)
{
    if (r->log.u_snap_present) return false; /* install the snapshot first */
    uint64_t first = raft__log_first_index(&r->log);
    uint64_t from = r->log.applied + 1;
    if (from < first) from = first;
    if (r->log.committed < from) return false;
    *lo = from;
    *hi = r->log.committed + 1;
    if (*hi - *lo > r->cfg.committed_max) *hi = *lo + r->cfg.committed_max;
    return true;
}

static void flush_broadcast(struct raft *r)
{
    if (r->state == RAFT_STATE_LEADER && r->bcast_pending) raft__bcast_append(r);
    r->bcast_pending = false;
}

bool raft_has_ready(const struct raft *r)
{
    k_assert(!r->in_ready);
    struct raft_hard_state hs = hard_state(r);
    uint64_t lo = 0;
    uint64_t hi = 0;
    return r->out_n > 0 || (r->bcast_pending && r->state == RAFT_STATE_LEADER) || r->log.u_n > 0 ||
           r->log.u_snap_present || r->reads_n > 0 || !hs_equal(&hs, &r->prev_hs) ||
           r->prev_ss.leader != r->lead || r->prev_ss.state != r->state ||
           committed_range(r, &lo, &hi);
}

static void resolve_messages(struct raft *r)
{
    r->ready_msgs = raft__grow(r->ready_msgs, &r->ready_cap, r->out_n, sizeof(*r->ready_msgs),
                               &r->stats.allocations);
    size_t w = 0;
    for (size_t i = 0; i < r->out_n; i++) {
        struct raft__outmsg *o = &r->out[i];
        struct raft_message *m = &r->ready_msgs[w];
        *m = o->m;
        if (o->source == RAFT__ENTS_LOG) {
            const struct raft_entry *e = NULL;
            size_t n = 0;
            int rc = raft__log_span(&r->log, o->ents_lo, o->ents_lo + o->m.entries_n, &e, &n);
            /* The range was readable when queued and the log has not changed since. */
            k_assert(rc == 0);
            k_assert(n == o->m.entries_n);
            m->entries = e;
        } else if (o->source == RAFT__ENTS_PROPS) {
            k_assert(o->ents_lo + o->m.entries_n <= r->props_n);
            m->entries = &r->props[o->ents_lo];
        } else {
            m->entries = NULL;
            m->entries_n = 0;
        }
        w++;
    }
}

bool raft_ready(struct raft *r, struct raft_ready *rd)
{
    k_assert(!r->in_ready);
    memset(rd, 0, sizeof(*rd));
    flush_broadcast(r);
    if (!raft_has_ready(r)) return false;
    struct raft_soft_state ss = { .leader = r->lead, .state = r->state };
    if (ss.leader != r->prev_ss.leader || ss.state != r->prev_ss.state) {
        rd->soft_state_changed = true;
        rd->soft_state = ss;
    }
    struct raft_hard_state hs = hard_state(r);
    if (!hs_equal(&hs, &r->prev_hs)) {
        rd->hard_state_changed = true;
        rd->hard_state = hs;
    }
    if (r->log.u_snap_present) {
        rd->snapshot_present = true;
        rd->snapshot = r->log.u_snap;
    }
    rd->entries = r->log.u_n ? r->log.u_ents : NULL;
    rd->entries_n = r->log.u_n;
    resolve_messages(r);
    rd->messages = r->out_n ? r->ready_msgs : NULL;
    rd->messages_n = r->out_n;
    uint64_t lo = 0;
    uint64_t hi = 0;
    if (committed_range(r, &lo, &hi)) {
        const struct raft_entry *e = NULL;
        size_t n = 0;
        int rc = raft__log_span(&r->log, lo, hi, &e, &n);
        k_assert(rc == 0);
        rd->committed = e;
        rd->committed_n = n;
    }
    rd->read_states = r->reads_n ? r->reads : NULL;
    rd->read_states_n = r->reads_n;
    r->in_ready = true;
    return true;
}

void raft_advance(struct raft *r, const struct raft_ready *rd)
{
    k_assert(r->in_ready);
    r->in_ready = false;
    if (rd->soft_state_changed) r->prev_ss = rd->soft_state;
    if (rd->hard_state_changed) r->prev_hs = rd->hard_state;
    if (rd->committed_n > 0) {
        uint64_t last_applied = rd->committed[rd->committed_n - 1].index;
        k_assert(last_applied <= r->log.committed);
        r->log.applied = last_applied;
    }
    raft__log_stable(&r->log);
    r->out_n = 0;
    r->props_n = 0;
    raft__arena_reset(&r->props_arena);
    r->reads_n = 0;
    if (r->state == RAFT_STATE_LEADER) {
        /* Our own copy is durable now; it counts toward commit (thesis §10.2.1). */
        struct raft__progress *self = raft__progress_get(r, r->id);
        if (self) {
            raft__progress_maybe_update(self, raft__log_last_index(&r->log));
            if (raft__maybe_commit(r)) r->bcast_pending = true;
        }
    }
}
