/* Membership, one member at a time (thesis §4.1), applied when the application applies the
 * committed entry (etcd's ConfChange v1 model). Leaders accept a new change only once the
 * previous one is applied and an entry of their own term has committed (raft.c), which keeps
 * any two consecutive configurations' majorities overlapping. */
#include <string.h>

#include "base/assert.h"
#include "base/err.h"
#include "raft/raft_int.h"

static bool contains(const uint64_t *ids, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == id) return true;
    }
    return false;
}

bool raft_conf_is_voter(const struct raft_conf_state *cs, uint64_t id)
{
    return contains(cs->voters, cs->voters_n, id);
}

bool raft_conf_is_learner(const struct raft_conf_state *cs, uint64_t id)
{
    return contains(cs->learners, cs->learners_n, id);
}

static void remove_id(uint64_t *ids, size_t *n, uint64_t id)
{
    size_t w = 0;
    for (size_t i = 0; i < *n; i++) {
        if (ids[i] != id) ids[w++] = ids[i];
    }
    *n = w;
}

static void insert_sorted(uint64_t *ids, size_t *n, uint64_t id)
{
    size_t i = *n;
    while (i > 0 && ids[i - 1] > id) {
        ids[i] = ids[i - 1];
        i--;
    }
    ids[i] = id;
    (*n)++;
}

/* Computes the configuration after cc; returns K_ECONFIG if cc cannot apply to cs. */
static int next_conf(const struct raft_conf_state *cs, const struct raft_conf_change *cc,
                     struct raft_conf_state *out)
{
    *out = *cs;
    if (cc->node_id == 0) return K_ECONFIG;
    bool voter = raft_conf_is_voter(cs, cc->node_id);
    bool learner = raft_conf_is_learner(cs, cc->node_id);
    switch (cc->type) {
    case RAFT_CONF_ADD_NODE:
        if (voter) return 0;
        if (cs->voters_n + cs->learners_n - (learner ? 1 : 0) >= RAFT_NODES_MAX) return K_ECONFIG;
        if (learner) remove_id(out->learners, &out->learners_n, cc->node_id);
        insert_sorted(out->voters, &out->voters_n, cc->node_id);
        return 0;
    case RAFT_CONF_ADD_LEARNER_NODE:
        if (learner) return 0;
        if (voter) return K_ECONFIG; /* demotion would need a joint change */
        if (cs->voters_n + cs->learners_n >= RAFT_NODES_MAX) return K_ECONFIG;
        insert_sorted(out->learners, &out->learners_n, cc->node_id);
        return 0;
    case RAFT_CONF_REMOVE_NODE:
        if (voter && cs->voters_n == 1) return K_ECONFIG; /* the last voter stays */
        remove_id(out->voters, &out->voters_n, cc->node_id);
        remove_id(out->learners, &out->learners_n, cc->node_id);
        return 0;
    case RAFT_CONF_UPDATE_NODE:
        return 0;
    }
    return K_ECONFIG;
}

int raft_apply_conf_change(struct raft *r, const struct raft_conf_change *cc,
                           struct raft_conf_state *out)
{
    /* Allowed between raft_ready() and raft_advance(): it touches neither the log nor the
     * queued messages that the batch points into. */
    struct raft_conf_state next;
    int rc = next_conf(&r->conf, cc, &next);
    if (out) *out = rc == 0 ? next : r->conf;
    if (rc < 0) return rc;
    raft__set_conf(r, &next);
    if (r->state != RAFT_STATE_LEADER) return 0;
    if (!raft_conf_is_voter(&r->conf, r->id)) {
        /* A leader that removed itself has handed the cluster over; step down so the
         * remaining members elect one of their own (thesis §4.2.2). */
        raft__become_follower(r, r->term, 0);
        return 0;
    }
    if (r->lead_transferee != 0 && !raft_conf_is_voter(&r->conf, r->lead_transferee)) {
        r->lead_transferee = 0;
    }
    /* A smaller majority may commit more; a new member needs its first append. */
    raft__maybe_commit(r);
    r->bcast_pending = true;
    return 0;
}
