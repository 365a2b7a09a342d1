/* The simulator (see sim.h). One struct sim holds the world: nodes (core, durable disk,
 * volatile application), the network (messages encoded with raft/codec.h, so the codec runs
 * on every message), the fault schedule and the checker's global knowledge. Every random
 * choice comes from sim.prng or a node's own prng, both derived from the seed. */
#include "sim.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/prng.h"
#include "raft/codec.h"
#include "raft/raft_int.h"
#include "raft/storage_mem.h"

enum {
    NODES_MAX = 14, /* ids 1..NODES_MAX, never reused */
    VOTERS_MAX = 7,
    TRACE_LINES = 256,
    TRACE_LINE_BYTES = 200,
    DELIVERY_ROUNDS_MAX = 64, /* zero-delay ping-pong rounds per tick */
    SCRATCH_ENTRIES = 8192,
    ELECTION_TICKS = 10,
};

/* The application's state: a register plus a hash chain over everything applied, so two
 * states are equal iff they applied the same entries. Also the snapshot blob. */
struct app_state {
    uint64_t index;
    uint64_t hash;
    uint64_t reg;
};

struct node {
    uint64_t id;
    bool exists;
    bool up;
    bool retired; /* removed from the cluster and shut down for good */
    uint32_t incarnation;
    uint32_t slow_every; /* ticks only every slow_every-th tick; 1 = normal */
    struct raft *r;
    struct k_prng prng;
    struct raft_storage_mem *disk; /* durable: entries, hard state, snapshot meta */
    struct app_state snap_blob;    /* durable: the application snapshot at disk's snapshot */
    struct app_state app;          /* volatile */
    bool incoming_present;         /* snapshot data received out of band, awaiting install */
    struct app_state incoming;
    enum raft_state last_state;
    uint64_t last_term;
    uint64_t checked_commit; /* committed entries up to here were recorded or compared */
};

struct netmsg {
    uint64_t deliver_at;
    uint64_t order; /* random tie-break among messages due together */
    uint64_t from;
    uint64_t to;
    uint32_t from_incarnation;
    bool is_snap;
    struct app_state snap;
    size_t len;
    uint8_t *bytes;
};

struct applied_rec {
    bool set; /* applied somewhere: term, ehash and state_hash are known */
    uint64_t term;
    uint64_t ehash; /* hash of the entry (type and data) */
    uint64_t state_hash;
    bool committed; /* a member made a commit covering it durable */
    uint64_t c_term;
    uint64_t c_ehash;
};

struct term_entry {
    uint64_t index;
    uint64_t term;
    uint64_t ehash;
};

struct pending_read {
    uint64_t id;
    uint64_t node;
    uint64_t required; /* highest index known committed when the read was issued */
    uint64_t issued_at;
};

struct sim {
    struct sim_params p;
    struct sim_stats *st;
    struct k_prng prng;
    int mix;
    int n_initial;
    uint64_t now;
    bool healing; /* liveness phase: no new faults */
    /* Fault parameters derived from the seed. */
    uint32_t loss_ppm, dup_ppm, delay_max, partition_ppm, crash_ppm, churn_ppm, transfer_ppm;
    uint32_t write_ppm, read_ppm, snap_every, compact_keep;
    uint32_t torn_ppm; /* per Ready: crash midway through persisting it */
    bool pre_vote, check_quorum;
    uint32_t heartbeat_ticks, inflight_max, append_max;
    bool blocked[NODES_MAX + 1][NODES_MAX + 1];
    uint64_t partition_until;
    struct node nodes[NODES_MAX + 1];
    uint64_t next_id;
    struct netmsg *net;
    size_t net_n, net_cap;
    /* Checker state. */
    struct applied_rec *applied;
    size_t applied_cap;
    uint64_t max_applied;
    uint64_t max_committed;   /* highest index some member has durably marked committed */
    uint64_t *leader_of_term; /* index by term; 0 = none seen */
    size_t leader_of_term_cap;
    struct term_entry *seen; /* (index, term) -> entry hash, sorted by (index, term) */
    size_t seen_n, seen_cap;
    struct pending_read reads[256];
    size_t reads_n;
    uint64_t next_value, next_read;
    bool failed;
    struct raft_entry scratch[SCRATCH_ENTRIES];
};

/* ---- trace ---- */

static char trace_buf[TRACE_LINES][TRACE_LINE_BYTES];
static uint64_t trace_n;
static struct sim *current; /* for the SIGABRT handler only */

static void trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace(struct sim *s, const char *fmt, ...)
{
    char *line = trace_buf[trace_n % TRACE_LINES];
    int n = snprintf(line, TRACE_LINE_BYTES, "t=%llu ", (unsigned long long)s->now);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, TRACE_LINE_BYTES - (size_t)n, fmt, ap);
    va_end(ap);
    trace_n++;
    if (s->p.verbose) fprintf(s->p.out, "%s\n", line);
}

static void print_trace(FILE *f)
{
    uint64_t start = trace_n > TRACE_LINES ? trace_n - TRACE_LINES : 0;
    fprintf(f, "--- last %llu events ---\n", (unsigned long long)(trace_n - start));
    for (uint64_t i = start; i < trace_n; i++)
        fprintf(f, "  %s\n", trace_buf[i % TRACE_LINES]);
}

static void print_replay(FILE *f, const struct sim *s)
{
    fprintf(f, "replay: raft-sim --seed %llu --mix %s --nodes %d --steps %u\n",
            (unsigned long long)s->p.seed, sim_mix_name(s->mix), s->n_initial, s->p.steps);
}

static void on_abort(int sig)
{
    (void)sig;
    if (current) {
        fprintf(current->p.out, "sim: abort inside seed %llu\n",
                (unsigned long long)current->p.seed);
        print_trace(current->p.out);
        print_replay(current->p.out, current);
        fflush(current->p.out);
    }
    signal(SIGABRT, SIG_DFL);
    raise(SIGABRT);
}

static void fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct sim *s, const char *fmt, ...)
{
    if (s->failed) return;
    s->failed = true;
    fprintf(s->p.out, "sim: FAIL seed %llu mix %s at t=%llu: ", (unsigned long long)s->p.seed,
            sim_mix_name(s->mix), (unsigned long long)s->now);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(s->p.out, fmt, ap);
    va_end(ap);
    fprintf(s->p.out, "\n");
    print_trace(s->p.out);
    print_replay(s->p.out, s);
}

const char *sim_mix_name(int mix)
{
    static const char *const names[SIM_MIX_COUNT] = { "calm",  "lossy", "partition",
                                                      "crash", "churn", "all" };
    if (mix < 0 || mix >= SIM_MIX_COUNT) return "seed";
    return names[mix];
}

int sim_mix_parse(const char *name)
{
    if (strcmp(name, "seed") == 0) return SIM_MIX_FROM_SEED;
    for (int i = 0; i < SIM_MIX_COUNT; i++) {
        if (strcmp(name, sim_mix_name(i)) == 0) return i;
    }
    return -2;
}

/* ---- hashing ---- */

static uint64_t hash_bytes(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}

static uint64_t entry_hash(const struct raft_entry *e)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)e->type;
    return k_prng_mix(hash_bytes(h, e->data, e->data_len));
}

/* ---- checker ---- */

static struct applied_rec *applied_at(struct sim *s, uint64_t index)
{
    if (index >= s->applied_cap) {
        size_t cap = s->applied_cap ? s->applied_cap : 1024;
        while (cap <= index)
            cap *= 2;
        s->applied = k_xrealloc(s->applied, cap * sizeof(*s->applied));
        memset(s->applied + s->applied_cap, 0, (cap - s->applied_cap) * sizeof(*s->applied));
        s->applied_cap = cap;
    }
    return &s->applied[index];
}

/* Election Safety (Raft Figure 3): at most one leader per term. */
static void check_leader(struct sim *s, struct node *n)
{
    uint64_t term = raft_term(n->r);
    if (term >= s->leader_of_term_cap) {
        size_t cap = s->leader_of_term_cap ? s->leader_of_term_cap : 256;
        while (cap <= term)
            cap *= 2;
        s->leader_of_term = k_xrealloc(s->leader_of_term, cap * sizeof(uint64_t));
        memset(s->leader_of_term + s->leader_of_term_cap, 0,
               (cap - s->leader_of_term_cap) * sizeof(uint64_t));
        s->leader_of_term_cap = cap;
    }
    uint64_t prev = s->leader_of_term[term];
    if (prev != 0 && prev != n->id) {
        fail(s, "two leaders in term %llu: n%llu and n%llu", (unsigned long long)term,
             (unsigned long long)prev, (unsigned long long)n->id);
        return;
    }
    s->leader_of_term[term] = n->id;
    s->st->elections += prev == 0;
    /* Leader Completeness: the new leader holds every entry applied anywhere. */
    struct raft__log *log = &n->r->log;
    uint64_t first = raft__log_first_index(log);
    uint64_t last = raft__log_last_index(log);
    if (last < s->max_committed) {
        fail(s, "leader n%llu term %llu has last index %llu < committed %llu",
             (unsigned long long)n->id, (unsigned long long)term, (unsigned long long)last,
             (unsigned long long)s->max_committed);
        return;
    }
    for (uint64_t i = first; i <= s->max_committed; i++) {
        struct applied_rec *a = applied_at(s, i);
        if (!a->committed) continue;
        uint64_t t = raft__log_term_or_zero(log, i);
        if (t != a->c_term) {
            fail(s, "leader n%llu term %llu has term %llu at %llu, committed term %llu",
                 (unsigned long long)n->id, (unsigned long long)term, (unsigned long long)t,
                 (unsigned long long)i, (unsigned long long)a->c_term);
            return;
        }
    }
}

/* A committed entry is never lost or changed: every member that durably marks index i
 * committed holds the same entry there. */
static void record_commits(struct sim *s, struct node *n, uint64_t commit)
{
    struct raft__log *log = &n->r->log;
    uint64_t i = n->checked_commit + 1;
    uint64_t first = raft__log_first_index(log);
    if (i < first) i = first; /* compacted: checked before, or came in a checked snapshot */
    while (i <= commit && !s->failed) {
        const struct raft_entry *e = NULL;
        size_t cnt = 0;
        int rc = raft__log_span(log, i, commit + 1, &e, &cnt);
        if (rc != 0) {
            fail(s, "n%llu commits %llu but cannot read entry %llu: %s", (unsigned long long)n->id,
                 (unsigned long long)commit, (unsigned long long)i, k_strerror(rc));
            return;
        }
        for (size_t j = 0; j < cnt; j++) {
            struct applied_rec *a = applied_at(s, e[j].index);
            uint64_t eh = entry_hash(&e[j]);
            if (!a->committed) {
                a->committed = true;
                a->c_term = e[j].term;
                a->c_ehash = eh;
            } else if (a->c_term != e[j].term || a->c_ehash != eh) {
                fail(s, "n%llu commits a different entry at %llu (term %llu, committed term %llu)",
                     (unsigned long long)n->id, (unsigned long long)e[j].index,
                     (unsigned long long)e[j].term, (unsigned long long)a->c_term);
                return;
            }
        }
        i += cnt;
    }
    if (commit > n->checked_commit) n->checked_commit = commit;
    if (commit > s->max_committed) s->max_committed = commit;
}

/* Log Matching's base: one (index, term) names one entry, everywhere, forever. */
static void check_seen(struct sim *s, const struct raft_entry *e)
{
    uint64_t h = entry_hash(e);
    size_t lo = 0;
    size_t hi = s->seen_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const struct term_entry *m = &s->seen[mid];
        if (m->index < e->index || (m->index == e->index && m->term < e->term)) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < s->seen_n && s->seen[lo].index == e->index && s->seen[lo].term == e->term) {
        if (s->seen[lo].ehash != h) {
            fail(s, "two different entries at index %llu term %llu", (unsigned long long)e->index,
                 (unsigned long long)e->term);
        }
        return;
    }
    if (s->seen_n == s->seen_cap) {
        s->seen_cap = s->seen_cap ? s->seen_cap * 2 : 1024;
        s->seen = k_xrealloc(s->seen, s->seen_cap * sizeof(*s->seen));
    }
    memmove(&s->seen[lo + 1], &s->seen[lo], (s->seen_n - lo) * sizeof(*s->seen));
    s->seen[lo] = (struct term_entry){ .index = e->index, .term = e->term, .ehash = h };
    s->seen_n++;
}

/* ---- network ---- */

static void net_push(struct sim *s, const struct netmsg *m)
{
    if (s->net_n == s->net_cap) {
        s->net_cap = s->net_cap ? s->net_cap * 2 : 256;
        s->net = k_xrealloc(s->net, s->net_cap * sizeof(*s->net));
    }
    s->net[s->net_n++] = *m;
}

static void send_message(struct sim *s, struct node *from, const struct raft_message *m)
{
    s->st->messages++;
    size_t len = raft_message_encoded_bytes(m);
    struct netmsg nm = {
        .from = m->from,
        .to = m->to,
        .from_incarnation = from->incarnation,
        .len = len,
        .bytes = k_xmalloc(len ? len : 1),
    };
    size_t got = 0;
    int rc = raft_message_encode(m, nm.bytes, len, &got);
    k_assert(rc == 0 && got == len);
    if (m->type == RAFT_MSG_SNAP) {
        /* The data travels with the message (out of band of the core). */
        k_assert(from->snap_blob.index == m->snapshot.index);
        nm.is_snap = true;
        nm.snap = from->snap_blob;
    }
    int copies = 1;
    if (!s->healing && k_prng_chance(&s->prng, s->dup_ppm)) copies = 2;
    for (int c = 0; c < copies; c++) {
        uint32_t delay = s->delay_max ? (uint32_t)k_prng_below(&s->prng, s->delay_max + 1) : 0;
        nm.deliver_at = s->now + delay;
        nm.order = k_prng_next(&s->prng);
        if (c == 1) {
            uint8_t *copy = k_xmalloc(len ? len : 1);
            memcpy(copy, nm.bytes, len);
            nm.bytes = copy;
        }
        net_push(s, &nm);
    }
}

/* ---- nodes ---- */

static void node_config(struct sim *s, struct node *n, struct raft_config *c)
{
    raft_config_default(c, n->id);
    c->election_ticks = ELECTION_TICKS;
    c->heartbeat_ticks = s->heartbeat_ticks;
    c->inflight_max = s->inflight_max;
    c->append_entries_max = s->append_max;
    c->message_bytes_max = 40ull * s->append_max; /* trims some appends by bytes */
    c->uncommitted_max = 4096;
    c->proposals_forward_max = 1024;
    c->committed_max = 64;
    c->pre_vote = s->pre_vote;
    c->check_quorum = s->check_quorum;
    c->prng = &n->prng;
    c->storage = raft_storage_mem_storage(n->disk);
    c->applied = n->snap_blob.index;
}

static void node_start(struct sim *s, struct node *n)
{
    k_prng_init(&n->prng, k_prng_mix(s->p.seed ^ (n->id << 32) ^ n->incarnation));
    struct raft_config c;
    node_config(s, n, &c);
    n->app = n->snap_blob; /* the application restarts from its durable snapshot */
    n->incoming_present = false;
    int rc = raft_new(&c, &n->r);
    if (rc != 0) {
        fail(s, "raft_new n%llu: %s", (unsigned long long)n->id, k_strerror(rc));
        return;
    }
    n->up = true;
    n->checked_commit = raft_commit_index(n->r);
    n->last_state = RAFT_STATE_FOLLOWER;
    n->last_term = raft_term(n->r);
}

static void node_stop(struct sim *s, struct node *n)
{
    (void)s;
    raft_free(n->r);
    n->r = NULL;
    n->up = false;
    n->incarnation++;
}

static struct node *node_create(struct sim *s, const struct raft_conf_state *bootstrap)
{
    if (s->next_id > NODES_MAX) return NULL;
    struct node *n = &s->nodes[s->next_id];
    memset(n, 0, sizeof(*n));
    n->id = s->next_id++;
    n->exists = true;
    n->slow_every = 1;
    n->disk = raft_storage_mem_new();
    if (bootstrap) {
        int rc = raft_storage_mem_bootstrap(n->disk, bootstrap);
        k_assert(rc == 0);
        n->snap_blob.index = 1;
    }
    node_start(s, n);
    return n;
}

static void apply_entry(struct sim *s, struct node *n, const struct raft_entry *e)
{
    if (e->index != n->app.index + 1) {
        fail(s, "n%llu applies %llu after %llu", (unsigned long long)n->id,
             (unsigned long long)e->index, (unsigned long long)n->app.index);
        return;
    }
    uint64_t eh = entry_hash(e);
    n->app.index = e->index;
    n->app.hash = k_prng_mix(n->app.hash ^ eh ^ (e->term << 1));
    struct applied_rec *a = applied_at(s, e->index);
    if (!a->set) {
        a->set = true;
        a->term = e->term;
        a->ehash = eh;
        a->state_hash = n->app.hash;
    } else if (a->term != e->term || a->ehash != eh || a->state_hash != n->app.hash) {
        /* State Machine Safety: no two members apply different entries at one index. */
        fail(s, "n%llu applied a different entry at %llu (term %llu vs %llu)",
             (unsigned long long)n->id, (unsigned long long)e->index, (unsigned long long)e->term,
             (unsigned long long)a->term);
        return;
    }
    if (a->committed && (a->c_term != e->term || a->c_ehash != eh)) {
        fail(s, "n%llu applies at %llu an entry other than the committed one",
             (unsigned long long)n->id, (unsigned long long)e->index);
        return;
    }
    if (e->index > s->max_applied) s->max_applied = e->index;
    s->st->applied++;
    if (e->type == RAFT_ENTRY_CONF_CHANGE) {
        struct raft_conf_change cc;
        int rc = raft_conf_change_decode(e->data, e->data_len, &cc);
        if (rc != 0) {
            fail(s, "n%llu cannot decode conf change at %llu", (unsigned long long)n->id,
                 (unsigned long long)e->index);
            return;
        }
        struct raft_conf_state cs;
        rc = raft_apply_conf_change(n->r, &cc, &cs);
        trace(s, "n%llu applies conf change %d node %llu at %llu: %s (voters %zu learners %zu)",
              (unsigned long long)n->id, (int)cc.type, (unsigned long long)cc.node_id,
              (unsigned long long)e->index, rc == 0 ? "ok" : k_strerror(rc), cs.voters_n,
              cs.learners_n);
        if (rc == 0 && cc.type == RAFT_CONF_REMOVE_NODE && cc.node_id <= NODES_MAX) {
            /* Committed: the removed member shuts down, as ketchd does. */
            struct node *gone = &s->nodes[cc.node_id];
            if (gone->exists && !gone->retired && gone != n) {
                if (gone->up) node_stop(s, gone);
                gone->retired = true;
                trace(s, "n%llu retired", (unsigned long long)gone->id);
            }
            if (gone == n) n->retired = true; /* stopped after this Ready */
        }
    } else if (e->data_len >= 8) {
        uint64_t v;
        memcpy(&v, e->data, 8);
        n->app.reg = v;
        uint64_t proposer;
        memcpy(&proposer, e->data + 8, 8);
        if (proposer == n->id) s->st->writes_acked++;
    }
}

static void install_snapshot(struct sim *s, struct node *n, const struct raft_snapshot_meta *meta)
{
    if (!n->incoming_present || n->incoming.index != meta->index) {
        fail(s, "n%llu told to install snapshot %llu without its data", (unsigned long long)n->id,
             (unsigned long long)meta->index);
        return;
    }
    struct applied_rec *a = applied_at(s, meta->index);
    if (a->set && a->state_hash != n->incoming.hash) {
        fail(s, "snapshot at %llu differs from the applied state", (unsigned long long)meta->index);
        return;
    }
    if (meta->index < n->app.index) {
        fail(s, "n%llu installs snapshot %llu behind its applied %llu", (unsigned long long)n->id,
             (unsigned long long)meta->index, (unsigned long long)n->app.index);
        return;
    }
    int rc = raft_storage_mem_apply_snapshot(n->disk, meta);
    if (rc != 0) {
        fail(s, "n%llu apply snapshot: %s", (unsigned long long)n->id, k_strerror(rc));
        return;
    }
    n->snap_blob = n->incoming;
    n->app = n->incoming;
    n->incoming_present = false;
    s->st->snapshots_installed++;
    trace(s, "n%llu installs snapshot index %llu term %llu", (unsigned long long)n->id,
          (unsigned long long)meta->index, (unsigned long long)meta->term);
}

static void handle_read_state(struct sim *s, struct node *n, const struct raft_read_state *rs)
{
    if (rs->context_len != 8) return;
    uint64_t id;
    memcpy(&id, rs->context, 8);
    for (size_t i = 0; i < s->reads_n; i++) {
        struct pending_read *pr = &s->reads[i];
        if (pr->id != id || pr->node != n->id) continue;
        if (rs->index < pr->required) {
            fail(s, "read %llu on n%llu got index %llu but %llu was committed before it began",
                 (unsigned long long)id, (unsigned long long)n->id, (unsigned long long)rs->index,
                 (unsigned long long)pr->required);
        }
        s->st->reads_checked++;
        s->reads[i] = s->reads[--s->reads_n];
        return;
    }
}

static void maybe_snapshot(struct sim *s, struct node *n)
{
    struct raft_snapshot_meta meta;
    raft_storage_mem_snapshot_meta(n->disk, &meta);
    if (n->app.index < meta.index + s->snap_every) return;
    int rc = raft_storage_mem_create_snapshot(n->disk, n->app.index, raft_conf(n->r));
    if (rc != 0) return; /* applied past what is durable: wait */
    n->snap_blob = n->app;
    uint64_t keep = s->compact_keep;
    if (n->app.index > keep + 1) {
        uint64_t upto = n->app.index - keep;
        if (upto >= raft_storage_mem_first_index(n->disk)) {
            rc = raft_storage_mem_compact(n->disk, upto);
            k_assert(rc == 0);
        }
    }
}

/* A crash while the Ready is being written: the WAL keeps a prefix of the batch (snapshot,
 * then entries, then the hard state last), nothing was sent, nothing applied. */
static void torn_crash(struct sim *s, struct node *n, const struct raft_ready *rd)
{
    bool snap_done = false;
    if (rd->snapshot_present && k_prng_chance(&s->prng, 500000)) {
        install_snapshot(s, n, &rd->snapshot);
        snap_done = true;
    }
    size_t k = 0;
    if (!rd->snapshot_present || snap_done) k = (size_t)k_prng_below(&s->prng, rd->entries_n + 1);
    for (size_t i = 0; i < k; i++)
        check_seen(s, &rd->entries[i]);
    if (k > 0) {
        int rc = raft_storage_mem_append(n->disk, rd->entries, k);
        if (rc != 0) fail(s, "n%llu append: %s", (unsigned long long)n->id, k_strerror(rc));
    }
    bool hs = k == rd->entries_n && (!rd->snapshot_present || snap_done) &&
              rd->hard_state_changed && k_prng_chance(&s->prng, 500000);
    if (hs) {
        raft_storage_mem_set_hard_state(n->disk, &rd->hard_state);
        record_commits(s, n, rd->hard_state.commit);
    }
    trace(s, "n%llu crashes while persisting (%zu of %zu entries, snapshot %d, hard state %d)",
          (unsigned long long)n->id, k, rd->entries_n, snap_done, hs);
    node_stop(s, n);
    s->st->crashes++;
}

static void process_ready(struct sim *s, struct node *n)
{
    for (int round = 0; round < 1000 && n->up && !s->failed; round++) {
        struct raft_ready rd;
        if (!raft_ready(n->r, &rd)) return;
        if (!s->healing && (rd.entries_n > 0 || rd.snapshot_present || rd.hard_state_changed) &&
            k_prng_chance(&s->prng, s->torn_ppm)) {
            torn_crash(s, n, &rd);
            return;
        }
        if (rd.soft_state_changed) {
            trace(s, "n%llu is %s term %llu leader n%llu", (unsigned long long)n->id,
                  raft_state_name(rd.soft_state.state), (unsigned long long)raft_term(n->r),
                  (unsigned long long)rd.soft_state.leader);
            if (rd.soft_state.state == RAFT_STATE_LEADER) check_leader(s, n);
        }
        if (rd.snapshot_present) install_snapshot(s, n, &rd.snapshot);
        for (size_t i = 0; i < rd.entries_n; i++)
            check_seen(s, &rd.entries[i]);
        if (rd.entries_n > 0) {
            int rc = raft_storage_mem_append(n->disk, rd.entries, rd.entries_n);
            if (rc != 0) fail(s, "n%llu append: %s", (unsigned long long)n->id, k_strerror(rc));
        }
        if (rd.hard_state_changed) {
            struct raft_hard_state old;
            raft_storage_mem_hard_state(n->disk, &old);
            if (rd.hard_state.term < old.term || (rd.hard_state.term == old.term && old.vote != 0 &&
                                                  rd.hard_state.vote != old.vote)) {
                fail(s, "n%llu hard state goes back: term %llu vote %llu after %llu/%llu",
                     (unsigned long long)n->id, (unsigned long long)rd.hard_state.term,
                     (unsigned long long)rd.hard_state.vote, (unsigned long long)old.term,
                     (unsigned long long)old.vote);
            }
            raft_storage_mem_set_hard_state(n->disk, &rd.hard_state);
            record_commits(s, n, rd.hard_state.commit);
        }
        for (size_t i = 0; i < rd.messages_n; i++)
            send_message(s, n, &rd.messages[i]);
        for (size_t i = 0; i < rd.committed_n && !s->failed; i++)
            apply_entry(s, n, &rd.committed[i]);
        for (size_t i = 0; i < rd.read_states_n; i++)
            handle_read_state(s, n, &rd.read_states[i]);
        raft_advance(n->r, &rd);
        if (n->retired) {
            node_stop(s, n);
            trace(s, "n%llu retired", (unsigned long long)n->id);
            return;
        }
        maybe_snapshot(s, n);
    }
}

/* ---- delivery ---- */

static int cmp_due(const void *a, const void *b)
{
    const struct netmsg *x = a;
    const struct netmsg *y = b;
    if (x->deliver_at != y->deliver_at) return x->deliver_at < y->deliver_at ? -1 : 1;
    if (x->order != y->order) return x->order < y->order ? -1 : 1;
    return 0;
}

static void report_snapshot(struct sim *s, const struct netmsg *m, bool ok)
{
    struct node *from = &s->nodes[m->from];
    if (!from->up || from->incarnation != m->from_incarnation) return;
    raft_report_snapshot(from->r, m->to, ok);
    process_ready(s, from);
}

static void deliver(struct sim *s, struct netmsg *m)
{
    struct node *to = m->to <= NODES_MAX ? &s->nodes[m->to] : NULL;
    bool lost = !to || !to->exists || !to->up || s->blocked[m->from][m->to] ||
                (!s->healing && k_prng_chance(&s->prng, s->loss_ppm));
    struct raft_message msg;
    int rc = raft_message_decode(m->bytes, m->len, &msg, s->scratch, SCRATCH_ENTRIES);
    if (rc != 0) {
        fail(s, "cannot decode a message from n%llu: %s", (unsigned long long)m->from,
             k_strerror(rc));
        return;
    }
    if (lost) {
        if (m->is_snap) report_snapshot(s, m, false);
        return;
    }
    trace(s, "n%llu <- n%llu %s term %llu logterm %llu idx %llu n %zu commit %llu%s%s",
          (unsigned long long)m->to, (unsigned long long)m->from, raft_msg_type_name(msg.type),
          (unsigned long long)msg.term, (unsigned long long)msg.log_term,
          (unsigned long long)msg.index, msg.entries_n, (unsigned long long)msg.commit,
          msg.reject ? " reject" : "", msg.type == RAFT_MSG_SNAP ? " (snapshot)" : "");
    if (m->is_snap) {
        to->incoming_present = true;
        to->incoming = m->snap;
    }
    rc = raft_step(to->r, &msg);
    if (rc != 0 && rc != K_ELIMIT && rc != K_EBUSY && rc != K_ENOLEADER) {
        fail(s, "n%llu step %s: %s", (unsigned long long)to->id, raft_msg_type_name(msg.type),
             k_strerror(rc));
        return;
    }
    process_ready(s, to);
    if (m->is_snap) report_snapshot(s, m, true);
}

static void deliver_due(struct sim *s)
{
    for (int round = 0; round < DELIVERY_ROUNDS_MAX && !s->failed; round++) {
        /* Move the due messages out first: delivering sends more. */
        size_t due_n = 0;
        for (size_t i = 0; i < s->net_n; i++) {
            if (s->net[i].deliver_at <= s->now) due_n++;
        }
        if (due_n == 0) return;
        struct netmsg *due = k_xmalloc(due_n * sizeof(*due));
        size_t w = 0;
        size_t d = 0;
        for (size_t i = 0; i < s->net_n; i++) {
            if (s->net[i].deliver_at <= s->now) {
                due[d++] = s->net[i];
            } else {
                s->net[w++] = s->net[i];
            }
        }
        s->net_n = w;
        qsort(due, due_n, sizeof(*due), cmp_due);
        for (size_t i = 0; i < due_n; i++) {
            if (!s->failed) deliver(s, &due[i]);
            free(due[i].bytes);
        }
        free(due);
    }
    /* Whatever is still due after the bound waits for the next tick. */
}

/* ---- clients ---- */

static struct node *random_up_node(struct sim *s)
{
    uint64_t ids[NODES_MAX];
    size_t n = 0;
    for (uint64_t id = 1; id < s->next_id; id++) {
        if (s->nodes[id].up) ids[n++] = id;
    }
    if (n == 0) return NULL;
    return &s->nodes[ids[k_prng_below(&s->prng, n)]];
}

static struct node *leader(struct sim *s)
{
    struct node *best = NULL;
    for (uint64_t id = 1; id < s->next_id; id++) {
        struct node *n = &s->nodes[id];
        if (n->up && raft_state(n->r) == RAFT_STATE_LEADER) {
            if (!best || raft_term(n->r) > raft_term(best->r)) best = n;
        }
    }
    return best;
}

static int propose_value(struct sim *s, struct node *n)
{
    uint8_t data[16];
    uint64_t v = ++s->next_value;
    memcpy(data, &v, 8);
    memcpy(data + 8, &n->id, 8);
    /* ketchd picks a lone leader's commit point per batch: shake both, mixed. Drawn from the
     * value, not the PRNG, so every older seed (the regressions) replays as it did. */
    raft_set_lone_commit(n->r, ((v * 0x9E3779B97F4A7C15ull) >> 63) != 0);
    int rc = raft_propose(n->r, data, sizeof(data));
    trace(s, "client propose %llu at n%llu: %s", (unsigned long long)v, (unsigned long long)n->id,
          k_strerror(rc));
    return rc;
}

static void client_step(struct sim *s)
{
    /* A read whose answer was lost (leader change, crash) times out, as a client would. */
    for (size_t i = 0; i < s->reads_n;) {
        if (s->now - s->reads[i].issued_at > 20 * ELECTION_TICKS) {
            s->reads[i] = s->reads[--s->reads_n];
        } else {
            i++;
        }
    }
    if (k_prng_chance(&s->prng, s->write_ppm)) {
        struct node *n = random_up_node(s);
        if (n) {
            int rc = propose_value(s, n);
            if (rc == 0) process_ready(s, n);
        }
    }
    if (k_prng_chance(&s->prng, s->read_ppm) && s->reads_n < K_ARRAY_LEN(s->reads)) {
        struct node *n = random_up_node(s);
        if (n) {
            uint64_t id = ++s->next_read;
            int rc = raft_read_index(n->r, &id, sizeof(id));
            trace(s, "client read %llu at n%llu: %s", (unsigned long long)id,
                  (unsigned long long)n->id, k_strerror(rc));
            if (rc == 0) {
                s->reads[s->reads_n++] = (struct pending_read){
                    .id = id, .node = n->id, .required = s->max_committed, .issued_at = s->now
                };
                process_ready(s, n);
            }
        }
    }
}

/* ---- faults ---- */

static void heal_partition(struct sim *s)
{
    memset(s->blocked, 0, sizeof(s->blocked));
    s->partition_until = 0;
}

static void fault_partition(struct sim *s)
{
    heal_partition(s);
    bool asym = k_prng_chance(&s->prng, 300000);
    uint64_t side[NODES_MAX + 1];
    for (uint64_t id = 1; id <= NODES_MAX; id++)
        side[id] = k_prng_below(&s->prng, 2);
    /* Often cut the leader off with at most one follower: it keeps taking proposals that
     * the majority never sees, so logs diverge and must be truncated after the heal. */
    struct node *l = leader(s);
    if (l && k_prng_chance(&s->prng, 500000)) {
        uint64_t buddy =
                k_prng_chance(&s->prng, 500000) ? 1 + k_prng_below(&s->prng, NODES_MAX) : 0;
        for (uint64_t id = 1; id <= NODES_MAX; id++)
            side[id] = (id == l->id || id == buddy) ? 1 : 0;
    }
    for (uint64_t a = 1; a <= NODES_MAX; a++) {
        for (uint64_t b = 1; b <= NODES_MAX; b++) {
            if (a == b || side[a] == side[b]) continue;
            /* Asymmetric: only the 0 -> 1 direction is cut. */
            if (asym && side[a] != 0) continue;
            s->blocked[a][b] = true;
        }
    }
    s->partition_until = s->now + 5 + k_prng_below(&s->prng, 6 * ELECTION_TICKS);
    s->st->partitions++;
    trace(s, "partition (%s)", asym ? "asymmetric" : "symmetric");
}

static void fault_crash(struct sim *s)
{
    /* Half the time the leader: crashes right after it appended are what lose entries. */
    struct node *n = k_prng_chance(&s->prng, 500000) ? leader(s) : NULL;
    if (!n) n = random_up_node(s);
    if (!n) return;
    trace(s, "n%llu crashes", (unsigned long long)n->id);
    node_stop(s, n);
    s->st->crashes++;
}

static void fault_restart(struct sim *s)
{
    for (uint64_t id = 1; id < s->next_id; id++) {
        struct node *n = &s->nodes[id];
        if (n->exists && !n->up && !n->retired && k_prng_chance(&s->prng, 100000)) {
            node_start(s, n);
            trace(s, "n%llu restarts (term %llu commit %llu last %llu)", (unsigned long long)id,
                  (unsigned long long)raft_term(n->r), (unsigned long long)raft_commit_index(n->r),
                  (unsigned long long)raft_last_index(n->r));
            process_ready(s, n);
        }
    }
}

static void fault_churn(struct sim *s)
{
    struct node *l = leader(s);
    if (!l) return;
    const struct raft_conf_state *cs = raft_conf(l->r);
    struct raft_conf_change cc = { .id = s->now };
    uint64_t roll = k_prng_below(&s->prng, 4);
    if (roll == 0 && cs->learners_n > 0) {
        cc.type = RAFT_CONF_ADD_NODE; /* promote */
        cc.node_id = cs->learners[k_prng_below(&s->prng, cs->learners_n)];
    } else if (roll <= 1 && cs->voters_n < VOTERS_MAX && s->next_id <= NODES_MAX) {
        bool learner = k_prng_chance(&s->prng, 500000);
        struct node *n = node_create(s, NULL);
        if (!n) return;
        cc.type = learner ? RAFT_CONF_ADD_LEARNER_NODE : RAFT_CONF_ADD_NODE;
        cc.node_id = n->id;
    } else if (cs->voters_n > 3) {
        cc.type = RAFT_CONF_REMOVE_NODE;
        cc.node_id = cs->voters[k_prng_below(&s->prng, cs->voters_n)];
    } else {
        return;
    }
    static const char ctx[] = "name=sim peer=http://sim";
    cc.context = (const uint8_t *)ctx;
    cc.context_len = sizeof(ctx) - 1;
    int rc = raft_propose_conf_change(l->r, &cc);
    trace(s, "propose conf change %d node %llu at n%llu: %s", (int)cc.type,
          (unsigned long long)cc.node_id, (unsigned long long)l->id, k_strerror(rc));
    if (rc == 0) {
        s->st->conf_changes++;
        process_ready(s, l);
    }
}

static void fault_transfer(struct sim *s)
{
    struct node *l = leader(s);
    if (!l) return;
    const struct raft_conf_state *cs = raft_conf(l->r);
    uint64_t to = cs->voters[k_prng_below(&s->prng, cs->voters_n)];
    int rc = raft_transfer_leader(l->r, to);
    trace(s, "transfer leadership n%llu -> n%llu: %s", (unsigned long long)l->id,
          (unsigned long long)to, k_strerror(rc));
    s->st->transfers++;
    process_ready(s, l);
}

static void fault_step(struct sim *s)
{
    if (s->partition_until != 0 && s->now >= s->partition_until) {
        heal_partition(s);
        trace(s, "partition healed");
    }
    if (s->partition_until == 0 && k_prng_chance(&s->prng, s->partition_ppm)) fault_partition(s);
    if (k_prng_chance(&s->prng, s->crash_ppm)) fault_crash(s);
    if (s->crash_ppm) fault_restart(s);
    if (k_prng_chance(&s->prng, s->churn_ppm)) fault_churn(s);
    if (k_prng_chance(&s->prng, s->transfer_ppm)) fault_transfer(s);
}

/* ---- the run ---- */

static void tick_all(struct sim *s)
{
    for (uint64_t id = 1; id < s->next_id && !s->failed; id++) {
        struct node *n = &s->nodes[id];
        if (!n->up) continue;
        if (s->healing || n->slow_every <= 1 || s->now % n->slow_every == 0) raft_tick(n->r);
        process_ready(s, n);
    }
}

static void step(struct sim *s)
{
    s->now++;
    s->st->ticks++;
    if (!s->healing) fault_step(s);
    if (s->failed) return;
    client_step(s);
    tick_all(s);
    deliver_due(s);
}

static void derive(struct sim *s)
{
    struct k_prng *g = &s->prng;
    /* Drawn even when given, so --mix and --nodes replay the same run as the seed alone. */
    int mix = (int)k_prng_below(g, SIM_MIX_COUNT);
    s->mix = s->p.mix == SIM_MIX_FROM_SEED ? mix : s->p.mix;
    static const int sizes[3] = { 3, 5, 7 };
    int nodes = sizes[k_prng_below(g, 3)];
    s->n_initial = s->p.nodes ? s->p.nodes : nodes;
    s->pre_vote = k_prng_chance(g, 750000);
    s->check_quorum = k_prng_chance(g, 750000);
    s->heartbeat_ticks = 1 + (uint32_t)k_prng_below(g, 3);
    s->inflight_max = k_prng_chance(g, 500000) ? 1 + (uint32_t)k_prng_below(g, 8) : 256;
    s->append_max = k_prng_chance(g, 500000) ? 1 + (uint32_t)k_prng_below(g, 8) : 64;
    s->snap_every = 3 + (uint32_t)k_prng_below(g, 40);
    s->compact_keep = (uint32_t)k_prng_below(g, 6);
    s->write_ppm = 200000 + (uint32_t)k_prng_below(g, 600000);
    s->read_ppm = 50000 + (uint32_t)k_prng_below(g, 300000);
    s->delay_max = 1 + (uint32_t)k_prng_below(g, 2);
    bool lossy = s->mix == SIM_MIX_LOSSY || s->mix == SIM_MIX_ALL;
    bool parts = s->mix == SIM_MIX_PARTITION || s->mix == SIM_MIX_CHURN || s->mix == SIM_MIX_ALL;
    bool crash = s->mix == SIM_MIX_CRASH || s->mix == SIM_MIX_CHURN || s->mix == SIM_MIX_ALL;
    bool churn = s->mix == SIM_MIX_CHURN || s->mix == SIM_MIX_ALL;
    if (lossy) {
        s->loss_ppm = 20000 + (uint32_t)k_prng_below(g, 200000);
        s->dup_ppm = 10000 + (uint32_t)k_prng_below(g, 50000);
        s->delay_max = 2 + (uint32_t)k_prng_below(g, 2 * ELECTION_TICKS);
    }
    if (parts) {
        s->partition_ppm = 5000 + (uint32_t)k_prng_below(g, 30000);
        if (!lossy) s->loss_ppm = (uint32_t)k_prng_below(g, 20000);
    }
    if (crash) {
        s->crash_ppm = 2000 + (uint32_t)k_prng_below(g, 15000);
        s->torn_ppm = (uint32_t)k_prng_below(g, 3000);
    }
    if (churn) {
        s->churn_ppm = 10000 + (uint32_t)k_prng_below(g, 40000);
        s->transfer_ppm = 2000 + (uint32_t)k_prng_below(g, 10000);
    }
    if (s->mix == SIM_MIX_PARTITION) s->transfer_ppm = (uint32_t)k_prng_below(g, 5000);
}

static void print_params(struct sim *s)
{
    fprintf(s->p.out,
            "seed %llu mix %s nodes %d steps %u prevote %d checkquorum %d hb %u inflight %u "
            "append %u snap_every %u keep %u loss %u dup %u delay %u part %u crash %u churn %u "
            "transfer %u torn %u\n",
            (unsigned long long)s->p.seed, sim_mix_name(s->mix), s->n_initial, s->p.steps,
            s->pre_vote, s->check_quorum, s->heartbeat_ticks, s->inflight_max, s->append_max,
            s->snap_every, s->compact_keep, s->loss_ppm, s->dup_ppm, s->delay_max, s->partition_ppm,
            s->crash_ppm, s->churn_ppm, s->transfer_ppm, s->torn_ppm);
}

static void heal_all(struct sim *s)
{
    s->healing = true;
    heal_partition(s);
    s->delay_max = 1;
    for (uint64_t id = 1; id < s->next_id; id++) {
        struct node *n = &s->nodes[id];
        n->slow_every = 1;
        if (n->exists && !n->up && !n->retired) {
            node_start(s, n);
            process_ready(s, n);
        }
    }
    trace(s, "heal: all faults stop");
}

/* After a commit, every running member of the leader's configuration catches up (by
 * appends or a snapshot) and applies it within a bound that allows for its lag. */
static void converge(struct sim *s, struct node *l, uint64_t want)
{
    uint64_t lag = 0;
    for (uint64_t id = 1; id < s->next_id; id++) {
        struct node *n = &s->nodes[id];
        if (n->up && want > n->app.index && want - n->app.index > lag) lag = want - n->app.index;
    }
    const uint64_t bound = 10 * ELECTION_TICKS + 4 * lag;
    uint64_t start = s->now;
    for (;;) {
        struct node *behind = NULL;
        const struct raft_conf_state *cs = raft_conf(l->r);
        for (uint64_t id = 1; id < s->next_id && !behind; id++) {
            struct node *n = &s->nodes[id];
            bool member = raft_conf_is_voter(cs, id) || raft_conf_is_learner(cs, id);
            if (n->up && member && n->app.index < want) behind = n;
        }
        if (!behind || s->failed) return;
        if (s->now - start >= bound || !l->up || raft_state(l->r) != RAFT_STATE_LEADER) {
            if (l->up && raft_state(l->r) == RAFT_STATE_LEADER) {
                fail(s, "n%llu applied only %llu of %llu after %llu ticks",
                     (unsigned long long)behind->id, (unsigned long long)behind->app.index,
                     (unsigned long long)want, (unsigned long long)bound);
            }
            return; /* leadership moved on: the commit check already passed */
        }
        step(s);
    }
}

/* Liveness (after faults stop): a leader that has committed in its term within a bound, then
 * proposals through it commit within a bound. */
static void liveness(struct sim *s)
{
    heal_all(s);
    const uint64_t elect_bound = 30 * ELECTION_TICKS;
    uint64_t start = s->now;
    struct node *l = NULL;
    while (!s->failed && s->now - start < elect_bound) {
        step(s);
        l = leader(s);
        if (l && raft__log_term_or_zero(&l->r->log, raft_commit_index(l->r)) == raft_term(l->r))
            break;
        l = NULL;
    }
    if (s->failed) return;
    if (!l) {
        fail(s, "no leader with a commit in its term %llu ticks after healing",
             (unsigned long long)elect_bound);
        return;
    }
    /* Proposals made now must commit. A transfer in progress refuses them for up to an
     * election timeout, and a leader may still change once (transfer, removal), so retry
     * until a deadline; the commit bound allows for the backlog left by the faults
     * (with a window of 1 and 1-entry appends it drains one entry per round trip). */
    const uint64_t deadline = s->now + 30 * ELECTION_TICKS;
    while (!s->failed && s->now < deadline) {
        l = leader(s);
        uint64_t want = 0;
        int accepted = 0;
        for (int i = 0; l && i < 5; i++) {
            if (propose_value(s, l) == 0) {
                accepted++;
                want = raft_last_index(l->r);
            }
        }
        if (accepted == 0) {
            step(s);
            continue;
        }
        process_ready(s, l);
        uint64_t term = raft_term(l->r);
        uint64_t backlog = want - raft_commit_index(l->r);
        uint64_t commit_bound = 10 * ELECTION_TICKS + 4 * backlog;
        start = s->now;
        while (!s->failed && s->now - start < commit_bound && l->up &&
               raft_commit_index(l->r) < want && raft_term(l->r) == term)
            step(s);
        if (s->failed) return;
        if (l->up && raft_term(l->r) == term && raft_commit_index(l->r) >= want) {
            converge(s, l, want);
            return;
        }
        if (l->up && raft_term(l->r) == term && raft_state(l->r) == RAFT_STATE_LEADER) {
            fail(s, "leader n%llu did not commit %llu within %llu ticks (commit %llu)",
                 (unsigned long long)l->id, (unsigned long long)want,
                 (unsigned long long)commit_bound, (unsigned long long)raft_commit_index(l->r));
            return;
        }
        /* Leadership moved: try again with the new leader. */
    }
    if (!s->failed)
        fail(s, "proposals did not commit within %d ticks of a leader existing",
             30 * ELECTION_TICKS);
}

/* Committed prefixes agree across members (checked at the end: costs a walk of every log). */
static void check_logs(struct sim *s)
{
    for (uint64_t id = 1; id < s->next_id && !s->failed; id++) {
        struct node *n = &s->nodes[id];
        if (!n->up) continue;
        struct raft__log *log = &n->r->log;
        uint64_t first = raft__log_first_index(log);
        uint64_t commit = raft_commit_index(n->r);
        for (uint64_t i = first; i <= commit && i <= s->max_applied; i++) {
            struct applied_rec *a = applied_at(s, i);
            if (a->set && raft__log_term_or_zero(log, i) != a->term) {
                fail(s, "n%llu has term %llu at committed %llu, applied term %llu",
                     (unsigned long long)id, (unsigned long long)raft__log_term_or_zero(log, i),
                     (unsigned long long)i, (unsigned long long)a->term);
                return;
            }
        }
    }
}

bool sim_run(const struct sim_params *p, struct sim_stats *stats)
{
    struct sim *s = k_xcalloc(1, sizeof(*s));
    s->p = *p;
    s->st = stats;
    memset(stats, 0, sizeof(*stats));
    trace_n = 0;
    current = s;
    signal(SIGABRT, on_abort);
    k_prng_init(&s->prng, p->seed);
    derive(s);
    stats->mix = s->mix;
    stats->nodes = s->n_initial;
    if (p->verbose) print_params(s);
    s->next_id = 1;
    struct raft_conf_state cs = { .voters_n = (size_t)s->n_initial };
    for (int i = 0; i < s->n_initial; i++)
        cs.voters[i] = (uint64_t)i + 1;
    for (int i = 0; i < s->n_initial; i++)
        node_create(s, &cs);
    /* Slow members tick at a fraction of the rate (crash and all mixes). */
    if (s->mix == SIM_MIX_CRASH || s->mix == SIM_MIX_ALL) {
        for (int i = 1; i <= s->n_initial; i++) {
            if (k_prng_chance(&s->prng, 200000))
                s->nodes[i].slow_every = 2 + (uint32_t)k_prng_below(&s->prng, 4);
        }
    }
    while (!s->failed && s->now < p->steps)
        step(s);
    if (!s->failed) liveness(s);
    if (!s->failed) check_logs(s);
    bool ok = !s->failed;
    if (!ok && !p->verbose) print_params(s);
    for (uint64_t id = 1; id <= NODES_MAX; id++) {
        struct node *n = &s->nodes[id];
        if (n->up) raft_free(n->r);
        raft_storage_mem_free(n->disk);
    }
    for (size_t i = 0; i < s->net_n; i++)
        free(s->net[i].bytes);
    free(s->net);
    free(s->applied);
    free(s->leader_of_term);
    free(s->seen);
    signal(SIGABRT, SIG_DFL);
    current = NULL;
    free(s);
    return ok;
}
