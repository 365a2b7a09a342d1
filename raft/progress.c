/* The leader's per-member replication state (Raft §5.3; etcd tracker/progress.go): probe
 * until the follower's log matches, then replicate with at most inflight_max appends
 * outstanding, or wait for a snapshot. Not here: choosing what to send (raft.c). */
#include <string.h>

#include "base/assert.h"
#include "raft/raft_int.h"

void raft__progress_reset(struct raft__progress *p, uint64_t next, uint32_t inflight_max)
{
    k_assert(next >= 1);
    k_assert(inflight_max >= 1 && inflight_max <= RAFT_INFLIGHT_LIMIT);
    p->match_index = 0;
    p->next_index = next;
    p->state = RAFT__PROGRESS_PROBE;
    p->probe_sent = false;
    p->pending_snapshot = 0;
    p->recent_active = false;
    p->vote = 0;
    p->inflights.start = 0;
    p->inflights.count = 0;
    p->inflights.size = inflight_max;
}

static void reset_state(struct raft__progress *p, enum raft__progress_state s)
{
    p->probe_sent = false;
    p->pending_snapshot = 0;
    p->state = s;
    p->inflights.start = 0;
    p->inflights.count = 0;
}

void raft__progress_become_probe(struct raft__progress *p)
{
    /* Coming back from a snapshot, resume after what the snapshot covered. */
    if (p->state == RAFT__PROGRESS_SNAPSHOT) {
        uint64_t pending = p->pending_snapshot;
        reset_state(p, RAFT__PROGRESS_PROBE);
        p->next_index = (p->match_index + 1 > pending + 1) ? p->match_index + 1 : pending + 1;
    } else {
        reset_state(p, RAFT__PROGRESS_PROBE);
        p->next_index = p->match_index + 1;
    }
}

void raft__progress_become_replicate(struct raft__progress *p)
{
    reset_state(p, RAFT__PROGRESS_REPLICATE);
    p->next_index = p->match_index + 1;
}

void raft__progress_become_snapshot(struct raft__progress *p, uint64_t snapshot_index)
{
    reset_state(p, RAFT__PROGRESS_SNAPSHOT);
    p->pending_snapshot = snapshot_index;
}

bool raft__progress_maybe_update(struct raft__progress *p, uint64_t n)
{
    bool updated = false;
    if (p->match_index < n) {
        p->match_index = n;
        updated = true;
        p->probe_sent = false;
    }
    if (p->next_index < n + 1) p->next_index = n + 1;
    return updated;
}

bool raft__progress_maybe_decr_to(struct raft__progress *p, uint64_t rejected, uint64_t match_hint)
{
    if (p->state == RAFT__PROGRESS_REPLICATE) {
        /* A rejection of something already matched is a late duplicate. */
        if (rejected <= p->match_index) return false;
        p->next_index = p->match_index + 1;
        return true;
    }
    /* In probe only the answer to the latest probe counts. */
    if (p->next_index - 1 != rejected) return false;
    uint64_t next = rejected < match_hint + 1 ? rejected : match_hint + 1;
    if (next < p->match_index + 1) next = p->match_index + 1;
    if (next < 1) next = 1;
    p->next_index = next;
    p->probe_sent = false;
    return true;
}

bool raft__progress_is_paused(const struct raft__progress *p)
{
    switch (p->state) {
    case RAFT__PROGRESS_PROBE:
        return p->probe_sent;
    case RAFT__PROGRESS_REPLICATE:
        return raft__inflights_full(&p->inflights);
    case RAFT__PROGRESS_SNAPSHOT:
        return true;
    }
    return true;
}

void raft__inflights_add(struct raft__inflights *in, uint64_t last_index)
{
    k_assert(in->count < in->size);
    uint32_t pos = (in->start + in->count) % in->size;
    in->last_index[pos] = last_index;
    in->count++;
}

void raft__inflights_free_to(struct raft__inflights *in, uint64_t index)
{
    while (in->count > 0 && in->last_index[in->start] <= index) {
        in->start = (in->start + 1) % in->size;
        in->count--;
    }
    if (in->count == 0) in->start = 0;
}

void raft__inflights_free_first(struct raft__inflights *in)
{
    if (in->count == 0) return;
    in->start = (in->start + 1) % in->size;
    in->count--;
}

bool raft__inflights_full(const struct raft__inflights *in)
{
    return in->count == in->size;
}

const char *raft__progress_state_name(enum raft__progress_state s)
{
    switch (s) {
    case RAFT__PROGRESS_PROBE:
        return "probe";
    case RAFT__PROGRESS_REPLICATE:
        return "replicate";
    case RAFT__PROGRESS_SNAPSHOT:
        return "snapshot";
    }
    return "?";
}
