/* A tiny deterministic cluster for raft unit tests: cores on in-memory storage joined by a
 * message queue the test controls (deliver all, drop links, inspect what was sent). Header
 * only, since every tests/unit/test_*.c is its own executable. Not the simulator: no random
 * faults here; each test arranges exactly the situation its rule needs. */
#ifndef KETCH_TESTS_UNIT_RAFT_TEST_UTIL_H
#define KETCH_TESTS_UNIT_RAFT_TEST_UTIL_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "raft/codec.h"
#include "raft/raft.h"
#include "raft/storage_mem.h"

enum { TNET_NODES_MAX = 8, TNET_QUEUE_MAX = 4096, TNET_APPLIED_MAX = 4096 };

struct tmsg {
    uint64_t from;
    uint64_t to;
    enum raft_msg_type type;
    size_t len;
    uint8_t *bytes; /* encoded with raft/codec.h */
};

struct tnode {
    uint64_t id;
    bool up;
    struct raft *r;
    struct raft_storage_mem *disk;
    struct k_prng prng;
    struct raft_config cfg;
    uint64_t applied_values[TNET_APPLIED_MAX]; /* first 8 bytes of each applied entry */
    size_t applied_n;
    struct raft_read_state reads[64];
    size_t reads_n;
    bool snapshot_installed;
};

struct tnet {
    struct tnode nodes[TNET_NODES_MAX + 1]; /* by id */
    struct tmsg queue[TNET_QUEUE_MAX];
    size_t queue_n;
    bool cut[TNET_NODES_MAX + 1][TNET_NODES_MAX + 1]; /* from, to */
    bool auto_apply_conf; /* apply conf change entries as they commit (default on) */
    size_t delivered[RAFT_MSG_TYPE_COUNT]; /* messages stepped, by type */
};

static struct raft_entry tnet_scratch[8192] __attribute__((unused));
/* Member id's PRNG is seeded with tnet_seed_base + id when it starts. */
static uint64_t tnet_seed_base __attribute__((unused)) = 1000;

__attribute__((unused)) static void tnet_start(struct tnet *t, uint64_t id)
{
    struct tnode *n = &t->nodes[id];
    k_prng_init(&n->prng, tnet_seed_base + id);
    n->cfg.prng = &n->prng;
    n->cfg.storage = raft_storage_mem_storage(n->disk);
    ck_assert_int_eq(raft_new(&n->cfg, &n->r), 0);
    n->up = true;
}

/* Creates members 1..voters (plus learners voters+1..voters+learners) of a fresh cluster;
 * with pre_vote and check_quorum as given. Members voters+learners+1..extra stay empty
 * (not bootstrapped) for tests that add them. */
__attribute__((unused)) static void tnet_init(struct tnet *t, size_t voters, size_t learners,
                                              size_t empty, bool pre_vote, bool check_quorum)
{
    memset(t, 0, sizeof(*t));
    t->auto_apply_conf = true;
    struct raft_conf_state cs = { 0 };
    for (size_t i = 0; i < voters; i++)
        cs.voters[cs.voters_n++] = i + 1;
    for (size_t i = 0; i < learners; i++)
        cs.learners[cs.learners_n++] = voters + i + 1;
    for (uint64_t id = 1; id <= voters + learners + empty; id++) {
        struct tnode *n = &t->nodes[id];
        n->id = id;
        n->disk = raft_storage_mem_new();
        if (id <= voters + learners) ck_assert_int_eq(raft_storage_mem_bootstrap(n->disk, &cs), 0);
        raft_config_default(&n->cfg, id);
        n->cfg.pre_vote = pre_vote;
        n->cfg.check_quorum = check_quorum;
        n->cfg.heartbeat_ticks = 1;
        n->cfg.election_ticks = 10;
        tnet_start(t, id);
    }
}

__attribute__((unused)) static void tnet_free(struct tnet *t)
{
    for (size_t i = 0; i <= TNET_NODES_MAX; i++) {
        raft_free(t->nodes[i].r);
        raft_storage_mem_free(t->nodes[i].disk);
    }
    for (size_t i = 0; i < t->queue_n; i++)
        free(t->queue[i].bytes);
}

/* Handles every Ready of id the way a driver must (raft.h): persist, send, apply, advance. */
__attribute__((unused)) static void tnet_ready(struct tnet *t, uint64_t id)
{
    struct tnode *n = &t->nodes[id];
    struct raft_ready rd;
    for (int round = 0; n->up && round < 100 && raft_ready(n->r, &rd); round++) {
        if (rd.snapshot_present) {
            ck_assert_int_eq(raft_storage_mem_apply_snapshot(n->disk, &rd.snapshot), 0);
            n->snapshot_installed = true;
        }
        if (rd.entries_n)
            ck_assert_int_eq(raft_storage_mem_append(n->disk, rd.entries, rd.entries_n), 0);
        if (rd.hard_state_changed) raft_storage_mem_set_hard_state(n->disk, &rd.hard_state);
        for (size_t i = 0; i < rd.messages_n; i++) {
            const struct raft_message *m = &rd.messages[i];
            ck_assert_uint_lt(t->queue_n, TNET_QUEUE_MAX);
            struct tmsg *q = &t->queue[t->queue_n++];
            q->from = m->from;
            q->to = m->to;
            q->type = m->type;
            q->len = raft_message_encoded_bytes(m);
            q->bytes = k_xmalloc(q->len + 1);
            size_t got = 0;
            ck_assert_int_eq(raft_message_encode(m, q->bytes, q->len, &got), 0);
        }
        for (size_t i = 0; i < rd.committed_n; i++) {
            const struct raft_entry *e = &rd.committed[i];
            if (e->type == RAFT_ENTRY_CONF_CHANGE && t->auto_apply_conf) {
                struct raft_conf_change cc;
                ck_assert_int_eq(raft_conf_change_decode(e->data, e->data_len, &cc), 0);
                int rc = raft_apply_conf_change(n->r, &cc, NULL);
                ck_assert(rc == 0 || rc == K_ECONFIG);
            } else if (e->data_len >= 8 && n->applied_n < TNET_APPLIED_MAX) {
                memcpy(&n->applied_values[n->applied_n++], e->data, 8);
            }
        }
        for (size_t i = 0; i < rd.read_states_n && n->reads_n < 64; i++)
            n->reads[n->reads_n++] = rd.read_states[i];
        raft_advance(n->r, &rd);
    }
}

__attribute__((unused)) static void tnet_ready_all(struct tnet *t)
{
    for (uint64_t id = 1; id <= TNET_NODES_MAX; id++) {
        if (t->nodes[id].up) tnet_ready(t, id);
    }
}

/* Decodes queued message i into *m (entries in tnet_scratch). */
__attribute__((unused)) static void tnet_decode(struct tnet *t, size_t i, struct raft_message *m)
{
    ck_assert_int_eq(raft_message_decode(t->queue[i].bytes, t->queue[i].len, m, tnet_scratch,
                                         K_ARRAY_LEN(tnet_scratch)),
                     0);
}

__attribute__((unused)) static void tnet_drop_queue(struct tnet *t)
{
    for (size_t i = 0; i < t->queue_n; i++)
        free(t->queue[i].bytes);
    t->queue_n = 0;
}

/* Delivers queued messages (and those they cause) until none are left or max rounds. */
__attribute__((unused)) static void tnet_deliver(struct tnet *t, int rounds)
{
    tnet_ready_all(t);
    for (int round = 0; round < rounds && t->queue_n > 0; round++) {
        size_t n = t->queue_n;
        struct tmsg *batch = k_xmalloc(n * sizeof(*batch));
        memcpy(batch, t->queue, n * sizeof(*batch));
        t->queue_n = 0;
        for (size_t i = 0; i < n; i++) {
            struct tmsg *q = &batch[i];
            struct tnode *to = q->to <= TNET_NODES_MAX ? &t->nodes[q->to] : NULL;
            if (to && to->up && !t->cut[q->from][q->to]) {
                struct raft_message m;
                ck_assert_int_eq(raft_message_decode(q->bytes, q->len, &m, tnet_scratch,
                                                     K_ARRAY_LEN(tnet_scratch)),
                                 0);
                t->delivered[m.type]++;
                int rc = raft_step(to->r, &m);
                ck_assert(rc == 0 || rc == K_ELIMIT || rc == K_EBUSY || rc == K_ENOLEADER);
                tnet_ready(t, q->to);
            }
            free(q->bytes);
        }
        free(batch);
    }
}

__attribute__((unused)) static void tnet_deliver_all(struct tnet *t)
{
    tnet_deliver(t, 1000);
}

/* Isolates id from everyone (both directions), or reconnects it. */
__attribute__((unused)) static void tnet_isolate(struct tnet *t, uint64_t id, bool cut)
{
    for (uint64_t o = 1; o <= TNET_NODES_MAX; o++) {
        t->cut[id][o] = cut;
        t->cut[o][id] = cut;
    }
}

__attribute__((unused)) static void tnet_tick(struct tnet *t, uint64_t id, int ticks)
{
    for (int i = 0; i < ticks; i++) {
        raft_tick(t->nodes[id].r);
        tnet_ready(t, id);
    }
}

/* Makes id the leader (campaign, deliver everything) and returns its term. */
__attribute__((unused)) static uint64_t tnet_elect(struct tnet *t, uint64_t id)
{
    raft_campaign(t->nodes[id].r);
    tnet_deliver_all(t);
    ck_assert_int_eq(raft_state(t->nodes[id].r), RAFT_STATE_LEADER);
    return raft_term(t->nodes[id].r);
}

/* Proposes an 8-byte value at id. */
__attribute__((unused)) static int tnet_propose(struct tnet *t, uint64_t id, uint64_t value)
{
    uint8_t data[8];
    memcpy(data, &value, 8);
    return raft_propose(t->nodes[id].r, data, sizeof(data));
}

/* Counts queued messages of type (from any to any, or from/to 0 for any). */
__attribute__((unused)) static size_t tnet_count(const struct tnet *t, enum raft_msg_type type,
                                                 uint64_t from, uint64_t to)
{
    size_t c = 0;
    for (size_t i = 0; i < t->queue_n; i++) {
        const struct tmsg *q = &t->queue[i];
        if (q->type == type && (!from || q->from == from) && (!to || q->to == to)) c++;
    }
    return c;
}

#endif
