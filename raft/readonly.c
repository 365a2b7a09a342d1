/* The leader's ReadIndex queue (thesis §6.4, etcd read_only.go with ReadOnlySafe): a read
 * records the commit index, the leader confirms it still leads by a heartbeat round that
 * carries the read's context, and once a majority answers, that read and every older one
 * are released (a later round proves leadership at a later time). */
#include <string.h>

#include "base/assert.h"
#include "raft/raft_int.h"

void raft__add_read_state(struct raft *r, uint64_t index, const uint8_t *ctx, size_t ctx_len)
{
    k_assert(ctx_len <= RAFT_CONTEXT_BYTES_MAX);
    r->reads = raft__grow(r->reads, &r->reads_cap, r->reads_n + 1, sizeof(*r->reads),
                          &r->stats.allocations);
    struct raft_read_state *rs = &r->reads[r->reads_n++];
    rs->index = index;
    rs->context_len = ctx_len;
    if (ctx_len) memcpy(rs->context, ctx, ctx_len);
}

void raft__readonly_add(struct raft *r, uint64_t index, uint64_t from, const uint8_t *ctx,
                        size_t ctx_len)
{
    k_assert(r->readonly.n < RAFT_READS_PENDING_LIMIT);
    k_assert(ctx_len <= RAFT_CONTEXT_BYTES_MAX);
    /* A context already waiting gets no second entry: its answer will cover both. */
    for (size_t i = 0; i < r->readonly.n; i++) {
        const struct raft__read_req *q = &r->readonly.reqs[i];
        if (q->context_len == ctx_len && memcmp(q->context, ctx, ctx_len) == 0) return;
    }
    struct raft__read_req *q = &r->readonly.reqs[r->readonly.n++];
    q->index = index;
    q->from = from;
    q->acked[0] = r->id;
    q->acked_n = 1;
    q->context_len = ctx_len;
    if (ctx_len) memcpy(q->context, ctx, ctx_len);
}

static void release(struct raft *r, const struct raft__read_req *q)
{
    if (q->from == r->id) {
        raft__add_read_state(r, q->index, q->context, q->context_len);
        return;
    }
    struct raft_message resp = { .type = RAFT_MSG_READ_INDEX_RESP,
                                 .to = q->from,
                                 .index = q->index };
    memcpy(resp.context, q->context, q->context_len);
    resp.context_len = q->context_len;
    raft__send(r, &resp);
}

void raft__readonly_ack(struct raft *r, uint64_t from, const uint8_t *ctx, size_t ctx_len)
{
    if (!raft_conf_is_voter(&r->conf, from)) return;
    size_t found = r->readonly.n;
    for (size_t i = 0; i < r->readonly.n; i++) {
        const struct raft__read_req *q = &r->readonly.reqs[i];
        if (q->context_len == ctx_len && memcmp(q->context, ctx, ctx_len) == 0) {
            found = i;
            break;
        }
    }
    if (found == r->readonly.n) return;
    struct raft__read_req *q = &r->readonly.reqs[found];
    size_t voters = 0;
    bool seen = false;
    for (size_t i = 0; i < q->acked_n; i++) {
        if (q->acked[i] == from) seen = true;
    }
    if (!seen) {
        k_assert(q->acked_n < RAFT_NODES_MAX);
        q->acked[q->acked_n++] = from;
    }
    for (size_t i = 0; i < q->acked_n; i++) {
        if (raft_conf_is_voter(&r->conf, q->acked[i])) voters++;
    }
    if (voters < raft__quorum(r->conf.voters_n)) return;
    for (size_t i = 0; i <= found; i++)
        release(r, &r->readonly.reqs[i]);
    size_t rest = r->readonly.n - (found + 1);
    memmove(&r->readonly.reqs[0], &r->readonly.reqs[found + 1], rest * sizeof(r->readonly.reqs[0]));
    r->readonly.n = rest;
}
