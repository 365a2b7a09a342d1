/* The node driver: raft on the loop, WAL + apply on the disk worker, snapshots on their
 * own worker; see server/node.h for the contract and the ordering rules. */
#include "node.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/endian.h"
#include "base/err.h"
#include "base/fsutil.h"
#include "base/log.h"
#include "base/prng.h"
#include "base/u64map.h"
#include "raft/codec.h"
#include "raft/snap.h"
#include "raft/storage_mem.h"
#include "raft/wal.h"
#include "server/worker.h"

enum wait_state {
    WAIT_QUEUED = 1,   /* a write not yet accepted by raft, or a read not yet asked */
    WAIT_PROPOSED = 2, /* a write raft took; found by id when its entry applies */
    WAIT_READING = 3,  /* a read whose ReadIndex round is under way (id = batch context) */
    WAIT_APPLYING = 4, /* a read whose index is known, waiting for apply to reach it */
};

struct wait_list {
    struct srv_wait *head;
    struct srv_wait *tail;
    size_t count;
};

/* One Ready in flight. Its WAL write runs on the disk worker and the apply of its committed
 * entries on the apply worker: in parallel when every committed entry is already in the WAL
 * (always so on the leader of several members), else the apply starts once the WAL write is
 * done, so the store never holds an entry the WAL has not made durable. A lone leader's
 * writes commit in the Ready that writes them (raft.c, sole_member_commit): there the disk
 * worker applies them itself right after the write, one hand-off between threads instead of
 * three. (A follower does not: its answer to the leader would wait for the apply.) The Ready
 * is advanced when both are done. Each job belongs to its worker from submit until its done
 * callback; the store is written by one thread at a time, as only one Ready is in flight. */
struct ready_flight {
    struct raft_ready rd;
    struct srv_node *node;
    struct srv_job wal_job;
    struct srv_job apply_job;
    unsigned pending;       /* jobs not yet done */
    bool apply_after_wal;   /* committed entries not yet durable here: apply after the write */
    bool apply_in_wal;      /* ... by the WAL job itself (a lone leader) */
    struct kv_entry *apply; /* committed entries as kv sees them */
    size_t apply_n;
    size_t apply_cap;
    int wal_rc;
    int kv_rc;
    uint64_t wal_ns;
    uint64_t wal_bytes; /* the WAL's byte counter after the write */
    struct kv_batch batch;
    uint8_t **owned; /* KvRequests made for conf change entries, freed with the flight */
    size_t owned_n;
    size_t owned_cap;
    bool members_changed;
    /* A snapshot from the leader to install first (rd.snapshot_present). */
    struct srv_job install_job;
    char install_from[4200]; /* the received file */
    char install_tmp[4300];  /* its store data, extracted */
    int install_rc;
    bool snap_mark;  /* the WAL job marks rd.snapshot before the entries */
    bool wal_has_hs; /* the WAL job writes wal_hs */
    struct raft_hard_state wal_hs;
};

/* A WAL-side task the snapshot needs (mark + release), run in order with Ready jobs. */
struct wal_task_job {
    struct srv_job job;
    struct srv_node *node;
    uint64_t index;
    uint64_t term;
    int rc;
};

struct snap_job {
    struct srv_job job;
    struct srv_node *node;
    char tmp_path[4200];
    char snap_dir[4096];
    struct raft_conf_state conf;
    uint64_t index; /* what the copy holds; set by the copy stage */
    uint64_t term;  /* of that index; looked up on the loop before the seal stage */
    int rc;
    char err[256];
};

/* A message that arrived while a Ready was in flight, stepped once it is advanced. */
struct inbox_msg {
    struct inbox_msg *next;
    size_t len;
    uint8_t bytes[];
};

/* The leader's view of one follower (/v2/stats/leader). */
struct follower_stats {
    uint64_t id;
    uint64_t heartbeat_sent_ns; /* 0 when no heartbeat awaits its answer */
    double current_ms;
    double sum_ms;
    double sum_sq_ms;
    double min_ms;
    double max_ms;
    uint64_t samples;
    uint64_t success;
    uint64_t fail;
};

enum { INBOX_BYTES_MAX = 64 << 20, REPORTS_MAX = 64 };

struct conf_at {
    uint64_t index;
    struct raft_conf_state conf;
};

struct srv_node {
    uv_loop_t *loop;
    struct srv_node_config cfg;
    struct k_prng prng;
    struct raft *raft;
    struct raft_storage_mem *log;
    struct raft_wal *wal;
    struct kv_store *kv;
    struct kv_watch_hub *hub;
    struct srv_worker disk;    /* WAL writes: the only thread that touches the WAL */
    struct srv_worker applier; /* kv applies (the disk worker's too, see ready_flight) */
    struct srv_worker snapper;
    uv_timer_t tick_timer;
    uv_timer_t sync_timer;
    uv_timer_t sweep_timer;
    uv_check_t check;
    struct ready_flight flight; /* the one Ready in flight */
    uint64_t durable_index;     /* last entry index the WAL has made durable */
    /* The newest hard state, and the last one handed to the WAL. One that moves only the commit
     * index waits for the next write (etcd's MustSync: a lost commit index is learned again),
     * so it never costs a round trip to the disk thread. */
    struct raft_hard_state hs_latest;
    struct raft_hard_state hs_sent;
    bool hs_unwritten;
    bool in_flight;
    bool stopping;
    bool broken; /* a WAL or kv write failed: sticky, the member must stop */
    unsigned pending_ticks;
    uint64_t next_id;
    uint64_t read_ctx_next;
    struct k_u64map proposed; /* request id -> srv_wait */
    struct wait_list queued_writes;
    struct wait_list queued_reads;
    struct wait_list reading;  /* waiting for a read state */
    struct wait_list applying; /* reads waiting for apply to reach read_index */
    uint64_t read_ctx_open;    /* context of the ReadIndex round under way, 0 if none */
    uint64_t read_round_ms;    /* loop time it started */
    bool sync_outstanding;
    uint64_t sync_id;
    uint64_t applied;
    uint64_t snapshot_index;
    bool snapshot_running;
    /* Loop-side phase of the snapshot in progress. Only this says where the snapshot is: the
     * job's own fields belong to the worker until its done callback runs. */
    enum { SNAP_IDLE, SNAP_COPYING, SNAP_COPIED, SNAP_SEALING, SNAP_MARKING } snap_phase;
    struct wal_task_job wal_task;
    struct snap_job snap;
    struct conf_at confs[8]; /* recent configurations by index, for snapshot metadata */
    size_t confs_n;
    struct wait_list queued_confs; /* conf changes not yet taken by raft */
    struct inbox_msg *inbox_head;  /* messages that arrived during a Ready */
    struct inbox_msg *inbox_tail;
    size_t inbox_bytes;
    struct raft_entry *decode_ents; /* scratch for decoding messages */
    size_t decode_cap;
    uint64_t unreachable[REPORTS_MAX]; /* to report to raft once no Ready is in flight */
    size_t unreachable_n;
    struct {
        uint64_t id;
        bool ok;
    } snap_reports[REPORTS_MAX];
    size_t snap_reports_n;
    /* A snapshot received and not yet stepped (one at a time; a newer one replaces it). */
    uint8_t *snap_in_msg;
    size_t snap_in_len;
    char *snap_in_path;
    char *installing_path; /* the received file the Ready in flight installs */
    char incoming_dir[4200];
    struct follower_stats followers[RAFT_NODES_MAX];
    size_t followers_n;
    uint64_t append_received;
    uint64_t append_sent;
    struct srv_internal_record *boot_records; /* owned copies, for bootstrap() */
    size_t boot_records_n;
    uint64_t leader;
    uint64_t leader_since_ms;
    int64_t leader_since_wall_ns;
    enum raft_state state;
    unsigned closing_handles;
};

/* ---- wait lists ---- */

static void list_push(struct wait_list *l, struct srv_wait *w)
{
    w->next = NULL;
    w->prev = l->tail;
    if (l->tail) {
        l->tail->next = w;
    } else {
        l->head = w;
    }
    l->tail = w;
    l->count++;
}

static void list_remove(struct wait_list *l, struct srv_wait *w)
{
    if (w->prev) {
        w->prev->next = w->next;
    } else {
        l->head = w->next;
    }
    if (w->next) {
        w->next->prev = w->prev;
    } else {
        l->tail = w->prev;
    }
    w->prev = w->next = NULL;
    k_assert(l->count > 0);
    l->count--;
}

static struct wait_list *list_of(struct srv_node *n, struct srv_wait *w)
{
    switch (w->state) {
    case WAIT_QUEUED:
        if (!w->proposal) return &n->queued_reads;
        return w->conf_change ? &n->queued_confs : &n->queued_writes;
    case WAIT_READING:
        return &n->reading;
    case WAIT_APPLYING:
        return &n->applying;
    default:
        return NULL;
    }
}

/* Takes w out of wherever it is; its cb will not be called by the node. */
static void wait_detach(struct srv_node *n, struct srv_wait *w)
{
    if (w->state == WAIT_PROPOSED) {
        k_assert(k_u64map_remove(&n->proposed, w->id) == w);
    } else {
        struct wait_list *l = list_of(n, w);
        if (l) list_remove(l, w);
    }
    free(w->proposal);
    w->proposal = NULL;
    w->state = 0;
}

static void wait_finish(struct srv_node *n, struct srv_wait *w, int rc, const struct kv_result *r)
{
    wait_detach(n, w);
    if (rc != 0 && n->cfg.metrics) {
        if (w->read_index || w->id >= (1ull << 63)) {
            n->cfg.metrics->read_indexes_failed++;
        } else {
            n->cfg.metrics->proposals_failed++;
        }
    }
    w->cb(w, rc, r);
}

static void fail_list(struct srv_node *n, struct wait_list *l, int rc)
{
    while (l->head)
        wait_finish(n, l->head, rc, NULL);
}

/* ---- conf history ---- */

static void conf_record(struct srv_node *n, uint64_t index, const struct raft_conf_state *cs)
{
    if (n->confs_n == K_ARRAY_LEN(n->confs)) {
        memmove(n->confs, n->confs + 1, sizeof(n->confs) - sizeof(n->confs[0]));
        n->confs_n--;
    }
    n->confs[n->confs_n].index = index;
    n->confs[n->confs_n].conf = *cs;
    n->confs_n++;
}

/* The configuration in force at index (the latest recorded at or before it). */
static const struct raft_conf_state *conf_at(const struct srv_node *n, uint64_t index)
{
    const struct raft_conf_state *best = &n->confs[0].conf;
    for (size_t i = 0; i < n->confs_n; i++) {
        if (n->confs[i].index <= index) best = &n->confs[i].conf;
    }
    return best;
}

/* ---- the disk worker's job ---- */

/* Apply worker (or the disk worker after its write): apply committed entries to the store in one
 * transaction. */
static void apply_run(struct srv_job *job)
{
    struct ready_flight *f =
            (struct ready_flight *)((char *)job - offsetof(struct ready_flight, apply_job));
    memset(&f->batch, 0, sizeof(f->batch));
    f->kv_rc = kv_apply_batch(f->node->kv, f->apply, f->apply_n, &f->batch);
}

/* Disk worker: make the Ready's entries and hard state durable. */
static void wal_run(struct srv_job *job)
{
    struct ready_flight *f =
            (struct ready_flight *)((char *)job - offsetof(struct ready_flight, wal_job));
    struct srv_node *n = f->node;
    uint64_t start = k_mono_ns();
    f->wal_rc = 0;
    if (f->snap_mark)
        f->wal_rc = raft_wal_mark_snapshot(n->wal, f->rd.snapshot.index, f->rd.snapshot.term);
    if (f->wal_rc == 0)
        f->wal_rc = raft_wal_write(n->wal, f->rd.entries, f->rd.entries_n,
                                   f->wal_has_hs ? &f->wal_hs : NULL);
    f->wal_ns = k_mono_ns() - start;
    struct raft_wal_stats ws;
    raft_wal_stats(n->wal, &ws); /* read here: the WAL is this thread's */
    f->wal_bytes = ws.bytes;
    if (f->apply_in_wal && f->wal_rc == 0) {
        start = k_mono_ns();
        apply_run(&f->apply_job);
        f->apply_job.run_ns = k_mono_ns() - start;
    }
}

static struct follower_stats *follower(struct srv_node *n, uint64_t id)
{
    for (size_t i = 0; i < n->followers_n; i++) {
        if (n->followers[i].id == id) return &n->followers[i];
    }
    if (n->followers_n == K_ARRAY_LEN(n->followers)) {
        /* Full: forget a member that is no longer in the configuration. */
        const struct raft_conf_state *cs = raft_conf(n->raft);
        size_t i = 0;
        while (i < n->followers_n && (raft_conf_is_voter(cs, n->followers[i].id) ||
                                      raft_conf_is_learner(cs, n->followers[i].id)))
            i++;
        if (i == n->followers_n) return NULL;
        n->followers[i] = n->followers[--n->followers_n];
    }
    struct follower_stats *fs = &n->followers[n->followers_n++];
    memset(fs, 0, sizeof(*fs));
    fs->id = id;
    return fs;
}

static void note_unreachable(struct srv_node *n, uint64_t id)
{
    for (size_t i = 0; i < n->unreachable_n; i++) {
        if (n->unreachable[i] == id) return;
    }
    if (n->unreachable_n < REPORTS_MAX) n->unreachable[n->unreachable_n++] = id;
}

static void note_snapshot_report(struct srv_node *n, uint64_t id, bool ok)
{
    if (n->snap_reports_n == REPORTS_MAX) return;
    n->snap_reports[n->snap_reports_n].id = id;
    n->snap_reports[n->snap_reports_n].ok = ok;
    n->snap_reports_n++;
}

static void send_snapshot(struct srv_node *n, const struct raft_message *m, const uint8_t *buf,
                          size_t len)
{
    char path[4300];
    snprintf(path, sizeof(path), "%s/%016" PRIx64 "-%016" PRIx64 ".snap", n->cfg.snap_dir,
             m->snapshot.term, m->snapshot.index);
    int rc = n->cfg.transport->send_snapshot(n->cfg.transport->data, m->to, buf, len, path);
    if (rc == K_EBUSY) return; /* one is under way to that peer; its outcome is reported */
    if (rc < 0) {
        k_log_debug("node", "cannot send snapshot %s to %" PRIx64 ": %s", path, m->to,
                    k_strerror(rc));
        note_snapshot_report(n, m->to, false);
    }
}

static void send_messages(struct srv_node *n, const struct raft_ready *rd)
{
    const struct srv_node_transport *t = n->cfg.transport;
    for (size_t i = 0; i < rd->messages_n; i++) {
        const struct raft_message *m = &rd->messages[i];
        if (!t) continue; /* a single member has nobody to send to */
        size_t len = raft_message_encoded_bytes(m);
        uint8_t stack[512];
        uint8_t *buf = len <= sizeof(stack) ? stack : k_xmalloc(len);
        size_t got;
        k_assert(raft_message_encode(m, buf, len, &got) == 0 && got == len);
        struct follower_stats *fs = NULL;
        if (m->type == RAFT_MSG_HEARTBEAT || m->type == RAFT_MSG_APP) fs = follower(n, m->to);
        if (m->type == RAFT_MSG_SNAP) {
            send_snapshot(n, m, buf, len);
        } else if (t->send(t->data, m->to, buf, len) < 0) {
            if (fs) fs->fail++;
            if (m->type == RAFT_MSG_APP) note_unreachable(n, m->to);
        } else {
            if (m->type == RAFT_MSG_APP) n->append_sent++;
            /* One heartbeat timed at a time; one whose answer was lost is given up after 1 s. */
            uint64_t now = k_mono_ns();
            if (fs && m->type == RAFT_MSG_HEARTBEAT &&
                (fs->heartbeat_sent_ns == 0 || now - fs->heartbeat_sent_ns > 1000000000ull))
                fs->heartbeat_sent_ns = now;
        }
        if (buf != stack) free(buf);
    }
}

static uint8_t *flight_own(struct ready_flight *f, size_t len)
{
    if (f->owned_n == f->owned_cap) {
        f->owned_cap = f->owned_cap ? 2 * f->owned_cap : 8;
        f->owned = k_xrealloc(f->owned, f->owned_cap * sizeof(*f->owned));
    }
    f->owned[f->owned_n] = k_xmalloc(len ? len : 1);
    return f->owned[f->owned_n++];
}

static void flight_free_owned(struct ready_flight *f)
{
    for (size_t i = 0; i < f->owned_n; i++)
        free(f->owned[i]);
    f->owned_n = 0;
}

/* Applies a committed conf change to raft (every time it is delivered: raft re-delivers the
 * log after the snapshot on a restart) and, for an entry the store has not applied, makes the
 * store writes etcd makes for it: the member's raftAttributes for an add or update; for a
 * removal, the member's records go and a removed_members record comes. A change raft refuses
 * becomes a request without writes, which answers its proposer with no event. */
static void conf_change_entry(struct srv_node *n, struct ready_flight *f,
                              const struct raft_entry *e, struct kv_entry *k)
{
    struct raft_conf_change cc;
    if (raft_conf_change_decode(e->data, e->data_len, &cc) < 0) {
        k_log_error("node", "conf change at index %" PRIu64 " does not decode; ignored", e->index);
        return;
    }
    struct raft_conf_state cs;
    bool ok = raft_apply_conf_change(n->raft, &cc, &cs) == 0;
    if (ok) conf_record(n, e->index, &cs);
    if (!k) return;
    f->members_changed = true;
    Kvpb__KvRequest req = KVPB__KV_REQUEST__INIT;
    Kvpb__KvRequest then = KVPB__KV_REQUEST__INIT;
    char path[96];
    char removed[96];
    req.id = cc.id;
    req.time_ns = 0;
    if (ok) {
        req.method = KVPB__KV_METHOD__KV_METHOD_INTERNAL;
        if (cc.type == RAFT_CONF_REMOVE_NODE) {
            char hex[17];
            snprintf(hex, sizeof(hex), "%" PRIx64, cc.node_id);
            snprintf(path, sizeof(path), "/0/members/%s", hex);
            snprintf(removed, sizeof(removed), "/0/removed_members/%s", hex);
            req.recursive = true;
            then.method = KVPB__KV_METHOD__KV_METHOD_INTERNAL;
            then.path.data = (uint8_t *)removed;
            then.path.len = strlen(removed);
            then.value.data = (uint8_t *)"removed";
            then.value.len = 7;
            req.then = &then;
        } else {
            snprintf(path, sizeof(path), "/0/members/%" PRIx64 "/raftAttributes", cc.node_id);
            req.value.data = (uint8_t *)cc.context;
            req.value.len = cc.context_len;
        }
        req.path.data = (uint8_t *)path;
        req.path.len = strlen(path);
    }
    size_t len = kvpb__kv_request__get_packed_size(&req);
    uint8_t *buf = flight_own(f, len);
    k_assert(kvpb__kv_request__pack(&req, buf) == len);
    k->data = buf;
    k->len = len;
}

static void answer_writes(struct srv_node *n, const struct kv_batch *b)
{
    for (size_t i = 0; i < b->result_count; i++) {
        const struct kv_result *r = &b->results[i];
        if (r->request_id == 0) continue;
        if (n->sync_outstanding && r->request_id == n->sync_id) {
            n->sync_outstanding = false;
            continue;
        }
        struct srv_wait *w = k_u64map_get(&n->proposed, r->request_id);
        if (w) wait_finish(n, w, 0, r);
    }
}

static void finish_reads(struct srv_node *n)
{
    struct srv_wait *w = n->applying.head;
    while (w) {
        struct srv_wait *next = w->next;
        if (w->read_index <= n->applied) wait_finish(n, w, 0, NULL);
        w = next;
    }
}

static void take_read_states(struct srv_node *n, const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->read_states_n; i++) {
        const struct raft_read_state *rs = &rd->read_states[i];
        if (rs->context_len != 16 || k_get_le64(rs->context) != n->cfg.id) continue;
        uint64_t ctx = k_get_le64(rs->context + 8);
        /* A round's answer holds for every read that arrived before the round began: those
         * of this round and of older rounds given up on (retry_reads), whose own answers
         * may be late or lost. Contexts grow with time. */
        struct srv_wait *w = n->reading.head;
        while (w) {
            struct srv_wait *next = w->next;
            if (w->first_ctx && w->first_ctx <= ctx) {
                list_remove(&n->reading, w);
                w->state = WAIT_APPLYING;
                w->read_index = rs->index;
                list_push(&n->applying, w);
            }
            w = next;
        }
        if (ctx == n->read_ctx_open) n->read_ctx_open = 0;
    }
    if (n->reading.count == 0) n->read_ctx_open = 0;
}

static void free_boot_records(struct srv_node *n)
{
    for (size_t i = 0; i < n->boot_records_n; i++) {
        free((char *)n->boot_records[i].path);
        free((char *)n->boot_records[i].value);
    }
    free(n->boot_records);
    n->boot_records = NULL;
    n->boot_records_n = 0;
}

/* A leader change loses the ReadIndex round under way (raft forgets pending reads): its reads
 * go back to the front of the queue for a round with the new leader. */
static void retry_reads(struct srv_node *n)
{
    while (n->reading.tail) {
        struct srv_wait *w = n->reading.tail;
        list_remove(&n->reading, w);
        w->state = WAIT_QUEUED;
        w->id = 0;
        w->next = n->queued_reads.head;
        w->prev = NULL;
        if (n->queued_reads.head) {
            n->queued_reads.head->prev = w;
        } else {
            n->queued_reads.tail = w;
        }
        n->queued_reads.head = w;
        n->queued_reads.count++;
    }
    n->read_ctx_open = 0;
}

static void track_soft_state(struct srv_node *n)
{
    uint64_t leader = raft_leader(n->raft);
    enum raft_state state = raft_state(n->raft);
    if (leader != n->leader) {
        retry_reads(n);
        if (leader != 0) {
            n->leader_since_ms = uv_now(n->loop);
            n->leader_since_wall_ns = k_wall_ns();
            if (n->cfg.metrics) n->cfg.metrics->leader_changes++;
            k_log_info("node", "leader is now %" PRIx64 " (term %" PRIu64 ")", leader,
                       raft_term(n->raft));
        } else {
            k_log_info("node", "no leader (term %" PRIu64 ")", raft_term(n->raft));
        }
        n->leader = leader;
    }
    if (state != n->state && state != RAFT_STATE_LEADER) n->sync_outstanding = false;
    n->state = state;
    if (n->cfg.metrics) {
        n->cfg.metrics->has_leader = leader != 0;
        n->cfg.metrics->is_leader = state == RAFT_STATE_LEADER;
    }
}

static void maybe_snapshot(struct srv_node *n);
static void process_ready(struct srv_node *n);

static void fail_broken(struct srv_node *n, const char *what, int rc)
{
    k_log_error("node", "%s failed: %s; this member stops taking writes and exits", what,
                k_strerror(rc));
    n->broken = true;
    /* A retried fsync can falsely succeed (STYLE.md §3): stop, and let the operator restart
     * the member, which recovers from what is durable. */
    fprintf(stderr, "ketchd: %s failed: %s\n", what, k_strerror(rc));
    _exit(1);
}

static void flight_finish(struct srv_node *n);
static void apply_done(struct srv_job *job);

/* Loop thread: the Ready's WAL write is durable. */
static void wal_done(struct srv_job *job)
{
    struct ready_flight *f =
            (struct ready_flight *)((char *)job - offsetof(struct ready_flight, wal_job));
    struct srv_node *n = f->node;
    struct raft_ready *rd = &f->rd;
    if (f->wal_rc < 0) fail_broken(n, "WAL write", f->wal_rc);
    if (n->cfg.metrics && rd->entries_n) {
        srv_histogram_observe(&n->cfg.metrics->wal_fsync, (double)f->wal_ns / 1e9);
        n->cfg.metrics->wal_write_bytes = f->wal_bytes;
    }
    if (raft_state(n->raft) != RAFT_STATE_LEADER) send_messages(n, rd);
    if (rd->entries_n > 0) {
        int rc = raft_storage_mem_append(n->log, rd->entries, rd->entries_n);
        k_assert(rc == 0);
        n->durable_index = rd->entries[rd->entries_n - 1].index;
    }
    if (rd->hard_state_changed) raft_storage_mem_set_hard_state(n->log, &rd->hard_state);
    if (f->apply_in_wal) { /* applied by the WAL job: answer now */
        f->apply_in_wal = false;
        f->apply_after_wal = false;
        apply_done(&f->apply_job);
    } else if (f->apply_after_wal) {
        f->apply_after_wal = false;
        srv_worker_submit(&n->applier, &f->apply_job);
    }
    k_assert(f->pending > 0);
    if (--f->pending == 0) flight_finish(n);
}

/* Loop thread: the committed entries are applied; answer their clients now. */
static void apply_done(struct srv_job *job)
{
    struct ready_flight *f =
            (struct ready_flight *)((char *)job - offsetof(struct ready_flight, apply_job));
    struct srv_node *n = f->node;
    if (f->kv_rc < 0) fail_broken(n, "store apply", f->kv_rc);
    struct srv_metrics *m = n->cfg.metrics;
    if (m) {
        /* The apply is one LMDB write transaction: its duration is both the backend commit
         * etcd reports and our apply latency. */
        srv_histogram_observe(&m->backend_commit, (double)job->run_ns / 1e9);
        srv_histogram_observe(&m->apply, (double)job->run_ns / 1e9);
    }
    const struct raft_ready *rd = &f->rd;
    if (f->batch.applied_index > n->applied) n->applied = f->batch.applied_index;
    if (rd->committed_n && rd->committed[rd->committed_n - 1].index > n->applied) {
        n->applied = rd->committed[rd->committed_n - 1].index;
    }
    kv_watch_hub_publish(n->hub, f->batch.events, f->batch.event_count);
    if (m) {
        for (size_t i = 0; i < f->batch.event_count; i++) {
            if (f->batch.events[i]->action == KV_ACTION_EXPIRE) m->store_expires++;
        }
    }
    answer_writes(n, &f->batch);
    kv_batch_free(&f->batch);
    if (m) m->proposals_applied = n->applied;
    finish_reads(n);
    k_assert(f->pending > 0);
    if (--f->pending == 0) flight_finish(n);
}

/* Loop thread: both halves are done; finish the Ready and look for the next. */
static void flight_finish(struct srv_node *n)
{
    struct ready_flight *f = &n->flight;
    struct raft_ready *rd = &f->rd;
    take_read_states(n, rd);
    finish_reads(n);
    raft_advance(n->raft, rd);
    n->in_flight = false;
    flight_free_owned(f);
    /* After the apply (or a snapshot install, whose Ready applies nothing): the registry in
     * the store is the new one. */
    if (f->members_changed && n->cfg.transport)
        n->cfg.transport->members_changed(n->cfg.transport->data);
    f->members_changed = false;
    f->snap_mark = false;
    if (n->installing_path) {
        free(n->installing_path);
        n->installing_path = NULL;
    }
    track_soft_state(n);
    struct srv_metrics *m = n->cfg.metrics;
    if (m) {
        m->proposals_committed = raft_commit_index(n->raft);
        m->proposals_pending = n->proposed.count;
    }
    maybe_snapshot(n);
    if (!n->stopping) process_ready(n);
}

/* ---- feeding the core ---- */

static void encode_proposal(Kvpb__KvRequest *req, struct srv_wait *w)
{
    w->proposal_len = kvpb__kv_request__get_packed_size(req);
    w->proposal = k_xmalloc(w->proposal_len);
    k_assert(kvpb__kv_request__pack(req, w->proposal) == w->proposal_len);
}

/* Hands queued writes to raft while it takes them. */
static void feed_writes(struct srv_node *n)
{
    /* A lone leader commits a few writes at once and applies them right after writing them
     * (one hand-off between threads: the latency at low load); a larger batch commits once
     * durable, so its apply overlaps the next batch's write (the throughput under load). */
    size_t queued = 0;
    for (struct srv_wait *w = n->queued_writes.head; w && queued <= SRV_NODE_LONE_COMMIT_MAX;
         w = w->next)
        queued++;
    raft_set_lone_commit(n->raft, queued <= SRV_NODE_LONE_COMMIT_MAX);
    while (n->queued_writes.head) {
        struct srv_wait *w = n->queued_writes.head;
        int rc = raft_propose(n->raft, w->proposal, w->proposal_len);
        if (rc == K_ENOLEADER || rc == K_EBUSY || rc == K_ELIMIT) return; /* retry later */
        list_remove(&n->queued_writes, w);
        free(w->proposal);
        w->proposal = NULL;
        if (rc < 0) {
            w->state = 0;
            if (n->cfg.metrics) n->cfg.metrics->proposals_failed++;
            w->cb(w, rc, NULL);
            continue;
        }
        w->state = WAIT_PROPOSED;
        k_u64map_put(&n->proposed, w->id, w);
    }
}

/* Starts one ReadIndex round for every read queued since the last one (reads batch as
 * etcd's linearizableReadLoop does). */
static void feed_reads(struct srv_node *n)
{
    if (!n->queued_reads.head || n->read_ctx_open) return;
    /* The leader merges requests with equal contexts: this member's id makes ours unique. */
    uint64_t ctx = ++n->read_ctx_next | (1ull << 63);
    uint8_t context[16];
    k_put_le64(context, n->cfg.id);
    k_put_le64(context + 8, ctx);
    int rc = raft_read_index(n->raft, context, sizeof(context));
    if (rc < 0) return; /* no leader yet, or its first commit is pending: retry */
    n->read_ctx_open = ctx;
    n->read_round_ms = uv_now(n->loop);
    while (n->queued_reads.head) {
        struct srv_wait *w = n->queued_reads.head;
        list_remove(&n->queued_reads, w);
        w->state = WAIT_READING;
        w->id = ctx;
        if (!w->first_ctx) w->first_ctx = ctx;
        list_push(&n->reading, w);
    }
}

/* Lists the committed entries the store has not applied yet, and decides whether their
 * apply may run beside the WAL write (all of them durable here already) or must follow it. */
static void fill_apply(struct srv_node *n, struct ready_flight *f)
{
    const struct raft_ready *rd = &f->rd;
    f->apply_n = 0;
    f->apply_after_wal = false;
    if (rd->committed_n > f->apply_cap) {
        f->apply_cap = rd->committed_n;
        f->apply = k_xrealloc(f->apply, f->apply_cap * sizeof(*f->apply));
    }
    /* Entries this Ready writes replace whatever the WAL held at their indexes. */
    uint64_t durable = n->durable_index;
    if (rd->entries_n > 0 && rd->entries[0].index <= durable) durable = rd->entries[0].index - 1;
    for (size_t i = 0; i < rd->committed_n; i++) {
        const struct raft_entry *e = &rd->committed[i];
        if (e->index <= n->applied) {
            if (e->type == RAFT_ENTRY_CONF_CHANGE) conf_change_entry(n, f, e, NULL);
            continue;
        }
        if (e->index > durable) f->apply_after_wal = true;
        struct kv_entry *k = &f->apply[f->apply_n++];
        k->raft_index = e->index;
        bool request = e->type == RAFT_ENTRY_NORMAL && e->data_len > 0;
        k->data = request ? e->data : NULL;
        k->len = request ? e->data_len : 0;
        if (e->type == RAFT_ENTRY_CONF_CHANGE) conf_change_entry(n, f, e, k);
    }
}

/* ---- messages from peers ---- */

/* What the leader learns of its followers from their answers (/v2/stats/leader). */
static void observe(struct srv_node *n, const struct raft_message *m)
{
    if (m->type == RAFT_MSG_APP) n->append_received++;
    if (raft_state(n->raft) != RAFT_STATE_LEADER) return;
    struct follower_stats *fs = NULL;
    if (m->type == RAFT_MSG_HEARTBEAT_RESP || m->type == RAFT_MSG_APP_RESP)
        fs = follower(n, m->from);
    if (!fs) return;
    if (m->type == RAFT_MSG_APP_RESP) {
        if (m->reject) {
            fs->fail++;
        } else {
            fs->success++;
        }
        return;
    }
    if (fs->heartbeat_sent_ns == 0) return;
    double ms = (double)(k_mono_ns() - fs->heartbeat_sent_ns) / 1e6;
    fs->heartbeat_sent_ns = 0;
    fs->current_ms = ms;
    fs->sum_ms += ms;
    fs->sum_sq_ms += ms * ms;
    if (fs->samples == 0 || ms < fs->min_ms) fs->min_ms = ms;
    if (ms > fs->max_ms) fs->max_ms = ms;
    fs->samples++;
}

static void step_bytes(struct srv_node *n, const uint8_t *b, size_t len, bool snapshot)
{
    struct raft_message m;
    int rc;
    for (;;) {
        rc = raft_message_decode(b, len, &m, n->decode_ents, n->decode_cap);
        if (rc != K_ELIMIT || n->decode_cap >= (1u << 16)) break;
        n->decode_cap = n->decode_cap ? 2 * n->decode_cap : 256;
        n->decode_ents = k_xrealloc(n->decode_ents, n->decode_cap * sizeof(*n->decode_ents));
    }
    if (rc < 0) {
        k_log_warn("node", "dropping a peer message that does not decode (%zu bytes)", len);
        return;
    }
    /* A snapshot's data comes beside its message; one without is refused. */
    if ((m.type == RAFT_MSG_SNAP) != snapshot) return;
    observe(n, &m);
    rc = raft_step(n->raft, &m);
    if (rc < 0) {
        k_log_debug("node", "%s from %" PRIx64 " not taken: %s", raft_msg_type_name(m.type), m.from,
                    k_strerror(rc));
    }
}

static void drain_inbox(struct srv_node *n)
{
    while (n->inbox_head) {
        struct inbox_msg *im = n->inbox_head;
        n->inbox_head = im->next;
        if (!n->inbox_head) n->inbox_tail = NULL;
        n->inbox_bytes -= im->len;
        step_bytes(n, im->bytes, im->len, false);
        free(im);
    }
}

static void free_inbox(struct srv_node *n)
{
    while (n->inbox_head) {
        struct inbox_msg *im = n->inbox_head;
        n->inbox_head = im->next;
        free(im);
    }
    n->inbox_tail = NULL;
    n->inbox_bytes = 0;
}

/* Tells raft what the transport reported while a Ready was in flight. */
static void report_to_raft(struct srv_node *n)
{
    for (size_t i = 0; i < n->unreachable_n; i++)
        raft_report_unreachable(n->raft, n->unreachable[i]);
    n->unreachable_n = 0;
    for (size_t i = 0; i < n->snap_reports_n; i++)
        raft_report_snapshot(n->raft, n->snap_reports[i].id, n->snap_reports[i].ok);
    n->snap_reports_n = 0;
}

static void drop_received_snapshot(struct srv_node *n)
{
    if (n->snap_in_path) {
        unlink(n->snap_in_path);
        free(n->snap_in_path);
    }
    free(n->snap_in_msg);
    n->snap_in_path = NULL;
    n->snap_in_msg = NULL;
}

/* Steps a received snapshot once no local snapshot is being taken (the install replaces the
 * store the snapshot worker would be reading). The Ready that follows installs it. */
static void step_received_snapshot(struct srv_node *n)
{
    if (!n->snap_in_msg || n->snap_phase != SNAP_IDLE || n->installing_path) return;
    n->installing_path = n->snap_in_path;
    n->snap_in_path = NULL;
    step_bytes(n, n->snap_in_msg, n->snap_in_len, true);
    free(n->snap_in_msg);
    n->snap_in_msg = NULL;
}

/* ---- installing a snapshot from the leader ---- */

static void flight_continue(struct srv_node *n, struct ready_flight *f);

/* Apply worker: put the received file among the snapshots, verify it whole, and extract its
 * store. The store itself is swapped on the loop, which reads it. */
static void install_run(struct srv_job *job)
{
    struct ready_flight *f =
            (struct ready_flight *)((char *)job - offsetof(struct ready_flight, install_job));
    struct srv_node *n = f->node;
    /* Verified under its final name inside the incoming directory first, so a bad file never
     * becomes this member's newest snapshot. */
    char name[64];
    snprintf(name, sizeof(name), "%016" PRIx64 "-%016" PRIx64 ".snap", f->rd.snapshot.term,
             f->rd.snapshot.index);
    char staged[4300];
    char final[4300];
    snprintf(staged, sizeof(staged), "%s/%s", n->incoming_dir, name);
    snprintf(final, sizeof(final), "%s/%s", n->cfg.snap_dir, name);
    int rc = rename(f->install_from, staged) < 0 ? -errno : 0;
    struct raft_snap_info info;
    char err[256];
    if (rc == 0) rc = raft_snap_load_newest(n->incoming_dir, &info, err, sizeof(err));
    if (rc == K_ECORRUPT) k_log_error("node", "received snapshot: %s", err);
    if (rc == 0 &&
        (info.meta.index != f->rd.snapshot.index || info.meta.term != f->rd.snapshot.term))
        rc = K_ECORRUPT;
    if (rc == 0) rc = rename(staged, final) < 0 ? -errno : 0;
    if (rc == 0) rc = k_fsync_dir(n->cfg.snap_dir);
    if (rc < 0) {
        unlink(staged); /* the leader sends it again after this member restarts */
        f->install_rc = rc;
        return;
    }
    size_t final_len = strlen(final); /* the extract reads the file where it now is */
    if (final_len >= sizeof(info.path)) rc = -ENAMETOOLONG;
    if (rc == 0) memcpy(info.path, final, final_len + 1);
    if (rc == 0) {
        unlink(f->install_tmp);
        rc = raft_snap_extract(&info, f->install_tmp);
    }
    if (rc == 0) {
        int purged = raft_snap_purge(n->cfg.snap_dir, n->cfg.max_snapshots);
        if (purged < 0) rc = purged;
    }
    f->install_rc = rc;
}

/* How this member opens its store: every open and restore must agree (the limits decide
 * what applies, and no_sync is made safe by the store's sync guard). */
static struct kv_store_config store_config(const struct srv_node *n)
{
    struct kv_store_config kc = { .dir = n->cfg.kv_dir,
                                  .map_bytes = n->cfg.store_bytes_max,
                                  .limits = { .value_bytes_max = n->cfg.value_bytes_max },
                                  .no_sync = true };
    return kc;
}

static void install_done(struct srv_job *job)
{
    struct ready_flight *f =
            (struct ready_flight *)((char *)job - offsetof(struct ready_flight, install_job));
    struct srv_node *n = f->node;
    const struct raft_snapshot_meta *meta = &f->rd.snapshot;
    if (f->install_rc < 0) fail_broken(n, "installing the leader's snapshot", f->install_rc);
    kv_store_close(n->kv);
    n->kv = NULL;
    struct kv_store_config kc = store_config(n);
    int rc = kv_store_restore(&kc, f->install_tmp, &n->kv);
    uint64_t applied = 0;
    uint64_t etcd_index = 0;
    if (rc == 0) rc = kv_store_indexes(n->kv, &applied, &etcd_index);
    if (rc < 0) fail_broken(n, "opening the store of the leader's snapshot", rc);
    kv_watch_hub_reset(n->hub, etcd_index);
    rc = raft_storage_mem_apply_snapshot(n->log, meta);
    k_assert(rc == 0);
    n->snapshot_index = meta->index;
    n->applied = applied > meta->index ? applied : meta->index;
    if (n->durable_index < meta->index) n->durable_index = meta->index;
    conf_record(n, meta->index, &meta->conf);
    f->snap_mark = true;
    f->members_changed = true;
    if (n->cfg.metrics) n->cfg.metrics->proposals_applied = n->applied;
    k_log_info("node",
               "installed the leader's snapshot at index %" PRIu64 " (term %" PRIu64
               ", store index %" PRIu64 ")",
               meta->index, meta->term, etcd_index);
    flight_continue(n, f);
}

static void install_start(struct srv_node *n, struct ready_flight *f)
{
    /* raft installs only a snapshot that was stepped with its data (step_received_snapshot). */
    k_assert(n->installing_path != NULL);
    snprintf(f->install_from, sizeof(f->install_from), "%s", n->installing_path);
    snprintf(f->install_tmp, sizeof(f->install_tmp), "%s.restore", n->cfg.kv_dir);
    f->install_job.run_cb = install_run;
    f->install_job.done_cb = install_done;
    srv_worker_submit(&n->applier, &f->install_job);
}

/* Hands queued conf changes to raft, one at a time (raft takes one while none is pending). */
static void feed_confs(struct srv_node *n)
{
    while (n->queued_confs.head) {
        struct srv_wait *w = n->queued_confs.head;
        struct raft_conf_change cc;
        int rc = raft_conf_change_decode(w->proposal, w->proposal_len, &cc);
        k_assert(rc == 0);
        rc = raft_propose_conf_change(n->raft, &cc);
        if (rc == K_ENOLEADER || rc == K_EBUSY || rc == K_ELIMIT) return; /* retry later */
        list_remove(&n->queued_confs, w);
        free(w->proposal);
        w->proposal = NULL;
        if (rc < 0) {
            w->state = 0;
            w->cb(w, rc, NULL);
            continue;
        }
        w->state = WAIT_PROPOSED;
        k_u64map_put(&n->proposed, w->id, w);
    }
}

static void process_ready(struct srv_node *n)
{
    if (n->in_flight || n->broken) return;
    for (; n->pending_ticks > 0; n->pending_ticks--)
        raft_tick(n->raft);
    drain_inbox(n);
    report_to_raft(n);
    step_received_snapshot(n);
    feed_confs(n);
    feed_writes(n);
    feed_reads(n);
    track_soft_state(n);
    struct ready_flight *f = &n->flight;
    if (!raft_ready(n->raft, &f->rd)) {
        if (n->installing_path) { /* a stale snapshot: raft did not take it */
            unlink(n->installing_path);
            free(n->installing_path);
            n->installing_path = NULL;
        }
        return;
    }
    n->in_flight = true;
    f->node = n;
    if (raft_state(n->raft) == RAFT_STATE_LEADER) send_messages(n, &f->rd);
    if (f->rd.snapshot_present) {
        install_start(n, f);
        return;
    }
    if (n->installing_path) {
        unlink(n->installing_path);
        free(n->installing_path);
        n->installing_path = NULL;
    }
    flight_continue(n, f);
}

/* The WAL write and the apply of a Ready (after its snapshot, if it had one). */
static void flight_continue(struct srv_node *n, struct ready_flight *f)
{
    fill_apply(n, f);
    if (f->rd.hard_state_changed) {
        n->hs_latest = f->rd.hard_state;
        n->hs_unwritten = true;
    }
    bool hs_sync = n->hs_unwritten &&
                   (n->hs_latest.term != n->hs_sent.term || n->hs_latest.vote != n->hs_sent.vote);
    bool write = f->rd.entries_n > 0 || hs_sync || f->snap_mark;
    f->wal_has_hs = write && n->hs_unwritten;
    if (f->wal_has_hs) {
        f->wal_hs = n->hs_latest;
        n->hs_sent = n->hs_latest;
        n->hs_unwritten = false;
    }
    if (!write && f->rd.hard_state_changed) /* what wal_done would record */
        raft_storage_mem_set_hard_state(n->log, &f->rd.hard_state);
    f->pending = (write ? 1u : 0u) + (f->apply_n > 0 ? 1u : 0u);
    if (!write) f->apply_after_wal = false;
    f->apply_in_wal = f->apply_after_wal && raft_state(n->raft) == RAFT_STATE_LEADER;
    /* Without a write there is nothing to wait for before a follower answers. */
    if (!write && raft_state(n->raft) != RAFT_STATE_LEADER) send_messages(n, &f->rd);
    f->wal_job.run_cb = wal_run;
    f->wal_job.done_cb = wal_done;
    f->apply_job.run_cb = apply_run;
    f->apply_job.done_cb = apply_done;
    if (write) srv_worker_submit(&n->disk, &f->wal_job);
    if (f->apply_n > 0 && !f->apply_after_wal) srv_worker_submit(&n->applier, &f->apply_job);
    if (f->pending == 0) flight_finish(n);
}

static void on_check(uv_check_t *h)
{
    process_ready(h->data);
}

static void on_tick(uv_timer_t *t)
{
    struct srv_node *n = t->data;
    if (n->in_flight) {
        n->pending_ticks++;
    } else {
        raft_tick(n->raft);
    }
}

static uint64_t new_request_id(struct srv_node *n)
{
    return ++n->next_id;
}

/* The leader proposes its clock so every member expires TTL keys at the same point of the
 * log (DESIGN.md, "Time"); one at a time so a slow commit does not pile them up. */
static void on_sync(uv_timer_t *t)
{
    struct srv_node *n = t->data;
    if (n->state != RAFT_STATE_LEADER || n->sync_outstanding || n->in_flight) return;
    Kvpb__KvRequest req = KVPB__KV_REQUEST__INIT;
    req.method = KVPB__KV_METHOD__KV_METHOD_SYNC;
    req.id = new_request_id(n);
    req.time_ns = k_wall_ns();
    size_t len = kvpb__kv_request__get_packed_size(&req);
    uint8_t buf[64];
    k_assert(len <= sizeof(buf));
    k_assert(kvpb__kv_request__pack(&req, buf) == len);
    if (raft_propose(n->raft, buf, len) == 0) {
        n->sync_outstanding = true;
        n->sync_id = req.id;
    }
}

static void sweep_list(struct srv_node *n, struct wait_list *l, uint64_t now)
{
    while (l->head && l->head->deadline_ms <= now)
        wait_finish(n, l->head, K_EUNAVAILABLE, NULL);
}

/* Fails requests past their deadline (etcd answers 300 "request timed out"). Lists are in
 * arrival order and share one timeout, so each sweep looks only at their heads; proposed
 * writes are checked through the map when its size says some may be old. */
static void on_sweep(uv_timer_t *t)
{
    struct srv_node *n = t->data;
    uint64_t now = uv_now(n->loop);
    sweep_list(n, &n->queued_writes, now);
    sweep_list(n, &n->queued_confs, now);
    sweep_list(n, &n->queued_reads, now);
    sweep_list(n, &n->reading, now);
    sweep_list(n, &n->applying, now);
    /* A round whose reads all failed is over, answered or not. One that takes too long was
     * most likely dropped (a leader drops ReadIndex requests until it has committed an entry
     * of its term, and a message can be lost): its reads go into a new round. */
    if (n->reading.count == 0) n->read_ctx_open = 0;
    if (n->read_ctx_open && now - n->read_round_ms >= SRV_NODE_READ_RETRY_MS) retry_reads(n);
    if (n->proposed.count == 0) return;
    for (size_t i = 0; i < n->proposed.cap; i++) {
        struct srv_wait *w = n->proposed.slots[i].value;
        if (n->proposed.slots[i].key && w->deadline_ms <= now) {
            wait_finish(n, w, K_EUNAVAILABLE, NULL);
            i--; /* backward shift may have moved another entry into slot i */
        }
    }
}

void srv_node_propose(struct srv_node *n, Kvpb__KvRequest *req, struct srv_wait *w)
{
    memset(&w->id, 0, sizeof(*w) - offsetof(struct srv_wait, id));
    if (n->stopping || n->broken) {
        w->cb(w, K_ESTOPPED, NULL);
        return;
    }
    if (n->queued_writes.count + n->proposed.count >= SRV_NODE_QUEUE_MAX) {
        w->cb(w, K_ELIMIT, NULL);
        return;
    }
    req->id = new_request_id(n);
    w->id = req->id;
    w->deadline_ms = uv_now(n->loop) + n->cfg.request_timeout_ms;
    encode_proposal(req, w);
    w->state = WAIT_QUEUED;
    list_push(&n->queued_writes, w);
    if (!n->in_flight) feed_writes(n);
}

void srv_node_propose_conf_change(struct srv_node *n, enum raft_conf_change_type type,
                                  uint64_t node_id, const char *context, struct srv_wait *w)
{
    memset(&w->id, 0, sizeof(*w) - offsetof(struct srv_wait, id));
    if (n->stopping || n->broken) {
        w->cb(w, K_ESTOPPED, NULL);
        return;
    }
    w->id = new_request_id(n);
    struct raft_conf_change cc = { .type = type,
                                   .node_id = node_id,
                                   .id = w->id,
                                   .context = (const uint8_t *)context,
                                   .context_len = context ? strlen(context) : 0 };
    uint8_t buf[RAFT_CONF_CHANGE_BYTES_MAX];
    size_t len;
    if (raft_conf_change_encode(&cc, buf, sizeof(buf), &len) < 0) {
        w->cb(w, K_ELIMIT, NULL);
        return;
    }
    w->proposal = k_xmalloc(len);
    memcpy(w->proposal, buf, len);
    w->proposal_len = len;
    w->conf_change = true;
    w->deadline_ms = uv_now(n->loop) + n->cfg.request_timeout_ms;
    w->state = WAIT_QUEUED;
    list_push(&n->queued_confs, w);
}

void srv_node_propose_internal(struct srv_node *n, const char *path, const char *value,
                               struct srv_wait *w)
{
    Kvpb__KvRequest req = KVPB__KV_REQUEST__INIT;
    req.method = KVPB__KV_METHOD__KV_METHOD_INTERNAL;
    req.path.data = (uint8_t *)path;
    req.path.len = strlen(path);
    req.value.data = (uint8_t *)value;
    req.value.len = strlen(value);
    req.time_ns = k_wall_ns();
    srv_node_propose(n, &req, w);
}

void srv_node_receive(struct srv_node *n, const uint8_t *msg, size_t len)
{
    if (n->stopping || n->broken) return;
    if (!n->in_flight && !n->inbox_head) {
        step_bytes(n, msg, len, false);
        return;
    }
    if (n->inbox_bytes + len > INBOX_BYTES_MAX) return; /* raft sends again */
    struct inbox_msg *im = k_xmalloc(sizeof(*im) + len);
    im->next = NULL;
    im->len = len;
    memcpy(im->bytes, msg, len);
    if (n->inbox_tail) {
        n->inbox_tail->next = im;
    } else {
        n->inbox_head = im;
    }
    n->inbox_tail = im;
    n->inbox_bytes += len;
}

void srv_node_receive_snapshot(struct srv_node *n, const uint8_t *msg, size_t len, const char *path)
{
    if (n->stopping || n->broken) {
        unlink(path);
        return;
    }
    drop_received_snapshot(n); /* an older one not yet stepped */
    n->snap_in_msg = k_xmalloc(len ? len : 1);
    memcpy(n->snap_in_msg, msg, len);
    n->snap_in_len = len;
    n->snap_in_path = k_xstrdup(path);
}

void srv_node_snapshot_sent(struct srv_node *n, uint64_t to, bool ok)
{
    if (n->stopping) return;
    note_snapshot_report(n, to, ok);
}

size_t srv_node_followers(const struct srv_node *n, struct srv_node_follower *out, size_t cap)
{
    if (raft_state(n->raft) != RAFT_STATE_LEADER) return 0;
    const struct raft_conf_state *cs = raft_conf(n->raft);
    size_t count = 0;
    for (size_t i = 0; i < cs->voters_n + cs->learners_n && count < cap; i++) {
        uint64_t id = i < cs->voters_n ? cs->voters[i] : cs->learners[i - cs->voters_n];
        if (id == n->cfg.id) continue;
        struct srv_node_follower *o = &out[count++];
        memset(o, 0, sizeof(*o));
        o->id = id;
        for (size_t j = 0; j < n->followers_n; j++) {
            const struct follower_stats *fs = &n->followers[j];
            if (fs->id != id) continue;
            o->success = fs->success;
            o->fail = fs->fail;
            if (fs->samples) {
                double avg = fs->sum_ms / (double)fs->samples;
                double var = fs->sum_sq_ms / (double)fs->samples - avg * avg;
                o->latency_current = fs->current_ms;
                o->latency_average = avg;
                o->latency_stddev = var > 0 ? sqrt(var) : 0;
                o->latency_min = fs->min_ms;
                o->latency_max = fs->max_ms;
            }
        }
    }
    return count;
}

const char *srv_node_incoming_dir(const struct srv_node *n)
{
    return n->incoming_dir;
}

void srv_node_read_within(struct srv_node *n, struct srv_wait *w, uint64_t timeout_ms)
{
    memset(&w->id, 0, sizeof(*w) - offsetof(struct srv_wait, id));
    if (n->stopping || n->broken) {
        w->cb(w, K_ESTOPPED, NULL);
        return;
    }
    if (n->queued_reads.count + n->reading.count + n->applying.count >= SRV_NODE_QUEUE_MAX) {
        w->cb(w, K_ELIMIT, NULL);
        return;
    }
    w->deadline_ms = uv_now(n->loop) + timeout_ms;
    w->state = WAIT_QUEUED;
    list_push(&n->queued_reads, w);
}

void srv_node_read(struct srv_node *n, struct srv_wait *w)
{
    srv_node_read_within(n, w, n->cfg.request_timeout_ms);
}

void srv_node_cancel(struct srv_node *n, struct srv_wait *w)
{
    if (w->state) wait_detach(n, w);
}

void srv_node_status(const struct srv_node *n, struct srv_node_status *out)
{
    out->id = n->cfg.id;
    out->cluster_id = n->cfg.cluster_id;
    out->leader = raft_leader(n->raft);
    out->term = raft_term(n->raft);
    out->commit_index = raft_commit_index(n->raft);
    out->applied_index = n->applied;
    out->etcd_index = kv_watch_hub_index(n->hub);
    out->state = raft_state(n->raft);
    out->append_received = n->append_received;
    out->append_sent = n->append_sent;
    out->leader_since_ms = n->leader_since_ms;
    out->leader_since_wall_ns = n->leader_since_wall_ns;
}

struct kv_store *srv_node_store(struct srv_node *n)
{
    return n->kv;
}

struct kv_watch_hub *srv_node_hub(struct srv_node *n)
{
    return n->hub;
}

/* ---- snapshots ----
 * Two stages on the snapshot worker, so the big copy never blocks the WAL:
 *  1. copy: sync the store (the WAL behind the snapshot may then go), copy it compacted into
 *     a temporary file; the copy holds whatever applied index A its read transaction saw;
 *  2. seal: once the loop has applied A too (so A's term and configuration are known here),
 *     write the copy into a snapshot file with raft's metadata.
 * Then the in-memory log is compacted and the WAL marks the snapshot and drops what it covers
 * (on the disk worker, in order with the Ready jobs). */

static int copy_file_into(struct raft_snap_writer *w, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -errno;
    uint8_t *buf = k_xmalloc(1 << 20);
    int rc = 0;
    size_t got;
    while (rc == 0 && (got = fread(buf, 1, 1 << 20, f)) > 0)
        rc = raft_snap_write(w, buf, got);
    if (rc == 0 && ferror(f)) rc = -EIO;
    free(buf);
    fclose(f);
    return rc;
}

static void snap_copy_run(struct srv_job *job)
{
    struct snap_job *s = (struct snap_job *)job;
    struct srv_node *n = s->node;
    s->rc = kv_store_sync(n->kv);
    if (s->rc < 0) return;
    unlink(s->tmp_path);
    uint64_t etcd_index;
    s->rc = kv_store_snapshot(n->kv, s->tmp_path, &s->index, &etcd_index);
}

static void snap_seal_run(struct srv_job *job)
{
    struct snap_job *s = (struct snap_job *)job;
    struct raft_snapshot_meta meta;
    memset(&meta, 0, sizeof(meta));
    meta.index = s->index;
    meta.term = s->term;
    meta.conf = s->conf;
    struct raft_snap_writer *w;
    s->rc = raft_snap_begin(s->snap_dir, &meta, &w);
    if (s->rc == 0) {
        s->rc = copy_file_into(w, s->tmp_path);
        if (s->rc == 0) {
            s->rc = raft_snap_finish(w, NULL, 0);
        } else {
            raft_snap_abort(w);
        }
    }
    if (s->rc == 0) {
        int purged = raft_snap_purge(s->snap_dir, s->node->cfg.max_snapshots);
        if (purged < 0) s->rc = purged;
    }
    unlink(s->tmp_path);
}

static void snap_seal_done(struct srv_job *job);

static void snap_failed(struct srv_node *n, struct snap_job *s, const char *stage)
{
    k_log_error("node", "snapshot %s failed: %s; will retry", stage, k_strerror(s->rc));
    unlink(s->tmp_path);
    n->snapshot_running = false;
    n->snap_phase = SNAP_IDLE;
}

/* Stage 2 may start once the loop has applied what the copy holds. */
static void maybe_seal(struct srv_node *n)
{
    struct snap_job *s = &n->snap;
    if (n->snap_phase != SNAP_COPIED) return;
    if (n->stopping) { /* the copy is dropped; the next start snapshots again */
        unlink(s->tmp_path);
        n->snapshot_running = false;
        n->snap_phase = SNAP_IDLE;
        return;
    }
    if (n->in_flight || n->applied < s->index) return;
    const struct raft_storage *st = raft_storage_mem_storage(n->log);
    if (st->term(st->data, s->index, &s->term) < 0) {
        s->rc = K_ECOMPACTED;
        snap_failed(n, s, "term lookup");
        return;
    }
    s->conf = *conf_at(n, s->index);
    s->job.run_cb = snap_seal_run;
    s->job.done_cb = snap_seal_done;
    n->snap_phase = SNAP_SEALING;
    srv_worker_submit(&n->snapper, &s->job);
}

static void snap_copy_done(struct srv_job *job)
{
    struct snap_job *s = (struct snap_job *)job;
    if (s->rc < 0) {
        snap_failed(s->node, s, "copy");
        return;
    }
    s->node->snap_phase = SNAP_COPIED;
    maybe_seal(s->node);
}

static void wal_task_run(struct srv_job *job)
{
    struct wal_task_job *t = (struct wal_task_job *)job;
    t->rc = raft_wal_mark_snapshot(t->node->wal, t->index, t->term);
    if (t->rc == 0) {
        int released = raft_wal_release(t->node->wal, t->index);
        if (released < 0) t->rc = released;
    }
}

static void wal_task_done(struct srv_job *job)
{
    struct wal_task_job *t = (struct wal_task_job *)job;
    if (t->rc < 0) fail_broken(t->node, "WAL snapshot marker", t->rc);
    t->node->snapshot_running = false;
    t->node->snap_phase = SNAP_IDLE;
}

static void snap_seal_done(struct srv_job *job)
{
    struct snap_job *s = (struct snap_job *)job;
    struct srv_node *n = s->node;
    if (s->rc < 0) {
        snap_failed(n, s, "write");
        return;
    }
    n->snapshot_index = s->index;
    if (n->cfg.metrics) n->cfg.metrics->snapshots_saved++;
    k_log_info("node", "saved snapshot at index %" PRIu64 " (term %" PRIu64 ")", s->index, s->term);
    int rc = raft_storage_mem_create_snapshot(n->log, s->index, &s->conf);
    if (rc == 0 && s->index > SRV_NODE_CATCHUP_ENTRIES) {
        uint64_t compact = s->index - SRV_NODE_CATCHUP_ENTRIES;
        if (compact >= raft_storage_mem_first_index(n->log)) {
            rc = raft_storage_mem_compact(n->log, compact);
            k_assert(rc == 0 || rc == K_ECOMPACTED);
        }
    }
    n->wal_task.job.run_cb = wal_task_run;
    n->wal_task.job.done_cb = wal_task_done;
    n->wal_task.node = n;
    n->wal_task.index = s->index;
    n->wal_task.term = s->term;
    n->snap_phase = SNAP_MARKING;
    srv_worker_submit(&n->disk, &n->wal_task.job);
}

static void maybe_snapshot(struct srv_node *n)
{
    if (n->snapshot_running) {
        maybe_seal(n);
        return;
    }
    if (n->stopping || n->applied < n->snapshot_index + n->cfg.snapshot_count) return;
    struct snap_job *s = &n->snap;
    memset(s, 0, sizeof(*s));
    s->node = n;
    snprintf(s->tmp_path, sizeof(s->tmp_path), "%s/kv-copy.tmp", n->cfg.snap_dir);
    snprintf(s->snap_dir, sizeof(s->snap_dir), "%s", n->cfg.snap_dir);
    s->job.run_cb = snap_copy_run;
    s->job.done_cb = snap_copy_done;
    n->snapshot_running = true;
    n->snap_phase = SNAP_COPYING;
    srv_worker_submit(&n->snapper, &s->job);
}

/* ---- start and stop ---- */

static int start_fail(char *err, size_t err_len, int rc, const char *what, const char *detail)
{
    snprintf(err, err_len, "%s: %s", what, detail);
    return rc;
}

/* "<what> <path>: <why>", for failures on a file or directory. */
static int start_fail_path(char *err, size_t err_len, int rc, const char *what, const char *path)
{
    snprintf(err, err_len, "%s %s: %s", what, path, k_strerror(rc));
    return rc;
}

/* A new cluster: the initial configuration is raft's snapshot at index 1. It is written as a
 * real snapshot file (with the empty store), then marked in the WAL, so a restart finds the
 * configuration exactly as a later snapshot would give it. */
static int record_cmp(const void *a, const void *b)
{
    const struct srv_internal_record *x = a;
    const struct srv_internal_record *y = b;
    bool xv = strcmp(x->path, "/0/version") == 0;
    bool yv = strcmp(y->path, "/0/version") == 0;
    if (xv != yv) return xv ? 1 : -1; /* the cluster version last, as etcd writes it */
    return strcmp(x->path, y->path);
}

/* etcd's internal records of a new cluster (member raftAttributes, the cluster version) go
 * into the log right after the initial snapshot, committed, as etcd's bootstrap puts its
 * member conf changes there: every member writes the same entries (sorted, with no request
 * id and no time), so they need no leader and are never proposed twice. */
static int bootstrap_records(struct srv_node *n, const struct raft_snapshot_meta *meta)
{
    if (n->boot_records_n == 0) return 0;
    qsort(n->boot_records, n->boot_records_n, sizeof(n->boot_records[0]), record_cmp);
    struct raft_entry *ents = k_xcalloc(n->boot_records_n, sizeof(*ents));
    for (size_t i = 0; i < n->boot_records_n; i++) {
        Kvpb__KvRequest req = KVPB__KV_REQUEST__INIT;
        req.method = KVPB__KV_METHOD__KV_METHOD_INTERNAL;
        req.path.data = (uint8_t *)n->boot_records[i].path;
        req.path.len = strlen(n->boot_records[i].path);
        req.value.data = (uint8_t *)n->boot_records[i].value;
        req.value.len = strlen(n->boot_records[i].value);
        size_t len = kvpb__kv_request__get_packed_size(&req);
        uint8_t *buf = k_xmalloc(len);
        k_assert(kvpb__kv_request__pack(&req, buf) == len);
        ents[i] = (struct raft_entry){ .term = meta->term,
                                       .index = meta->index + 1 + i,
                                       .type = RAFT_ENTRY_NORMAL,
                                       .data_len = len,
                                       .data = buf };
    }
    struct raft_hard_state hs;
    raft_storage_mem_hard_state(n->log, &hs);
    hs.commit = meta->index + n->boot_records_n;
    int rc = raft_wal_write(n->wal, ents, n->boot_records_n, &hs);
    if (rc == 0) {
        rc = raft_storage_mem_append(n->log, ents, n->boot_records_n);
        k_assert(rc == 0);
        raft_storage_mem_set_hard_state(n->log, &hs);
    }
    for (size_t i = 0; i < n->boot_records_n; i++)
        free((void *)ents[i].data);
    free(ents);
    free_boot_records(n);
    return rc;
}

static int bootstrap(struct srv_node *n, char *err, size_t err_len)
{
    struct raft_conf_state cs;
    memset(&cs, 0, sizeof(cs));
    for (size_t i = 0; i < n->cfg.voters_n && i < RAFT_NODES_MAX; i++) {
        cs.voters[cs.voters_n++] = n->cfg.voters[i];
    }
    int rc = raft_storage_mem_bootstrap(n->log, &cs);
    if (rc < 0) return start_fail(err, err_len, rc, "cannot bootstrap raft", k_strerror(rc));
    struct raft_snapshot_meta meta;
    raft_storage_mem_snapshot_meta(n->log, &meta);
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s/kv-copy.tmp", n->cfg.snap_dir);
    unlink(tmp);
    uint64_t applied;
    uint64_t etcd_index;
    rc = kv_store_snapshot(n->kv, tmp, &applied, &etcd_index);
    struct raft_snap_writer *w = NULL;
    if (rc == 0) rc = raft_snap_begin(n->cfg.snap_dir, &meta, &w);
    if (rc == 0) rc = copy_file_into(w, tmp);
    if (rc == 0) {
        rc = raft_snap_finish(w, NULL, 0);
    } else if (w) {
        raft_snap_abort(w);
    }
    unlink(tmp);
    if (rc < 0) {
        return start_fail(err, err_len, rc, "cannot write the initial snapshot", k_strerror(rc));
    }
    struct raft_hard_state hs;
    raft_storage_mem_hard_state(n->log, &hs);
    rc = raft_wal_write(n->wal, NULL, 0, &hs);
    if (rc == 0) rc = raft_wal_mark_snapshot(n->wal, meta.index, meta.term);
    if (rc < 0) return start_fail(err, err_len, rc, "cannot write the WAL", k_strerror(rc));
    n->snapshot_index = meta.index;
    conf_record(n, meta.index, &meta.conf);
    rc = bootstrap_records(n, &meta);
    if (rc < 0) return start_fail(err, err_len, rc, "cannot write the WAL", k_strerror(rc));
    return 0;
}

/* Brings the store up to (at least) the snapshot: a store behind it (new, or lost with a
 * disk) is replaced by the snapshot's copy. */
static int restore_store(struct srv_node *n, const struct raft_snap_info *snap, uint64_t *applied,
                         char *err, size_t err_len)
{
    char tmp[4300];
    snprintf(tmp, sizeof(tmp), "%s.restore", n->cfg.kv_dir);
    int rc = raft_snap_extract(snap, tmp);
    if (rc < 0) return start_fail_path(err, err_len, rc, "cannot extract snapshot", snap->path);
    kv_store_close(n->kv);
    n->kv = NULL;
    struct kv_store_config kc = store_config(n);
    rc = kv_store_restore(&kc, tmp, &n->kv);
    unlink(tmp);
    if (rc < 0)
        return start_fail_path(err, err_len, rc, "cannot restore the store from snapshot",
                               snap->path);
    uint64_t etcd_index;
    rc = kv_store_indexes(n->kv, applied, &etcd_index);
    if (rc < 0) return start_fail_path(err, err_len, rc, "cannot read the store", n->cfg.kv_dir);
    k_log_info("node", "restored the store from snapshot %s (index %" PRIu64 ")", snap->path,
               *applied);
    return 0;
}

/* ---- the store's sync guard ----
 * The store runs with MDB_NOSYNC: an apply costs no fsync, so a write pays only the WAL's.
 * That is safe against a crash of the process (the kernel keeps the pages and LMDB's own
 * write order keeps them consistent), but not against a power loss, after which LMDB may
 * hold a meta page whose pages never reached the disk. So a marker beside the store says
 * which boot of the machine last wrote to it and whether it was synced on a clean stop. A
 * store left dirty by an earlier boot is not trusted: it is rebuilt from the newest snapshot
 * and the WAL, which hold every entry after it (WAL segments are released only behind a
 * snapshot). */

static void boot_id(char out[64])
{
    snprintf(out, 64, "unknown");
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (!f) return;
    if (fgets(out, 64, f)) out[strcspn(out, "\n")] = '\0';
    fclose(f);
}

static void marker_path(const struct srv_node *n, char *out, size_t len)
{
    snprintf(out, len, "%s.state", n->cfg.kv_dir);
}

/* Returns true if the store may be used as it is. */
static bool store_trusted(const struct srv_node *n)
{
    char path[4200];
    marker_path(n, path, sizeof(path));
    FILE *f = fopen(path, "re");
    if (!f) return true; /* first start: nothing was written yet */
    char line[160] = "";
    bool ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    char id[64];
    boot_id(id);
    char want_dirty[160];
    snprintf(want_dirty, sizeof(want_dirty), "boot %s dirty\n", id);
    if (!ok || strncmp(line, "boot ", 5) != 0) return false;
    if (strstr(line, " clean\n")) return true;
    return strcmp(line, want_dirty) == 0; /* dirty, but written during this boot */
}

static int marker_write(const struct srv_node *n, bool clean)
{
    char path[4200];
    char tmp[4300];
    marker_path(n, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    char id[64];
    boot_id(id);
    FILE *f = fopen(tmp, "we");
    if (!f) return -errno;
    fprintf(f, "boot %s %s\n", id, clean ? "clean" : "dirty");
    int rc = fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -errno;
    fclose(f);
    if (rc == 0) rc = k_rename_durably(tmp, path);
    return rc;
}

/* Loads snapshot, store and WAL into the in-memory log. */
static int recover(struct srv_node *n, char *err, size_t err_len)
{
    struct raft_snap_info snap;
    int rc = raft_snap_load_newest(n->cfg.snap_dir, &snap, err, err_len);
    bool have_snap = rc == 0;
    if (rc < 0 && rc != K_ENOTFOUND) return rc;
    if (!store_trusted(n)) {
        k_log_warn("node",
                   "the store in %s was not synced before the machine restarted; "
                   "rebuilding it from the snapshot and the WAL",
                   n->cfg.kv_dir);
        rc = k_remove_tree(n->cfg.kv_dir);
        if (rc < 0) return start_fail_path(err, err_len, rc, "cannot remove", n->cfg.kv_dir);
    }
    struct kv_store_config kc = store_config(n);
    rc = kv_store_open(&kc, &n->kv);
    if (rc < 0) return start_fail_path(err, err_len, rc, "cannot open the store", n->cfg.kv_dir);
    rc = marker_write(n, false);
    if (rc < 0) return start_fail(err, err_len, rc, "cannot write the store marker", "");
    uint64_t applied;
    uint64_t etcd_index;
    rc = kv_store_indexes(n->kv, &applied, &etcd_index);
    if (rc < 0) return start_fail_path(err, err_len, rc, "cannot read the store", n->cfg.kv_dir);
    if (have_snap && applied < snap.meta.index) {
        rc = restore_store(n, &snap, &applied, err, err_len);
        if (rc < 0) return rc;
    }
    struct raft_wal_options wo = { 0 };
    struct raft_wal_recovery rec;
    rc = raft_wal_open(n->cfg.wal_dir, &wo, have_snap ? snap.meta.index : 0, &n->wal, &rec, err,
                       err_len);
    if (rc < 0) return rc;
    if (!have_snap) {
        bool no_entries = rec.entries_n == 0;
        struct raft_hard_state hs = rec.hard_state;
        bool empty = no_entries && hs.term == 0;
        raft_wal_recovery_free(&rec);
        if (n->cfg.voters_n == 0 && no_entries) {
            /* Joining a running cluster: nothing until the leader's snapshot arrives. */
            hs.commit = 0;
            if (hs.term > 0) raft_storage_mem_set_hard_state(n->log, &hs);
            n->applied = applied;
            n->durable_index = 0;
            k_log_info("node", "joining an existing cluster: waiting for its leader");
            return 0;
        }
        if (!empty) {
            return start_fail(err, err_len, K_ECORRUPT,
                              "the WAL has entries but there is no "
                              "snapshot file in",
                              n->cfg.snap_dir);
        }
        rc = bootstrap(n, err, err_len);
        n->applied = applied;
        n->durable_index = raft_storage_mem_last_index(n->log);
        return rc;
    }
    rc = raft_storage_mem_apply_snapshot(n->log, &snap.meta);
    k_assert(rc == 0);
    n->snapshot_index = snap.meta.index;
    conf_record(n, snap.meta.index, &snap.meta.conf);
    if (rec.entries_n > 0) rc = raft_storage_mem_append(n->log, rec.entries, rec.entries_n);
    /* The WAL's commit index may lag its snapshot: commit-only hard states are not synced on
     * their own (raft/wal.h). A snapshot only ever holds committed entries, so it is a floor. */
    if (rec.hard_state.commit < snap.meta.index) rec.hard_state.commit = snap.meta.index;
    if (rc == 0 && rec.hard_state.term > 0)
        raft_storage_mem_set_hard_state(n->log, &rec.hard_state);
    if (rec.torn_bytes) {
        k_log_warn("node", "cut a torn WAL tail of %" PRIu64 " bytes (a crash mid-write)",
                   rec.torn_bytes);
    }
    k_log_info("node", "recovered snapshot %" PRIu64 ", %zu WAL entries, store at %" PRIu64,
               snap.meta.index, rec.entries_n, applied);
    raft_wal_recovery_free(&rec);
    if (rc < 0) return start_fail(err, err_len, rc, "the WAL does not follow the snapshot", "");
    n->applied = applied;
    n->durable_index = raft_storage_mem_last_index(n->log); /* what the WAL gave back */
    return 0;
}

static int start_raft(struct srv_node *n, char *err, size_t err_len)
{
    struct raft_config rc_cfg;
    raft_config_default(&rc_cfg, n->cfg.id);
    rc_cfg.election_ticks = n->cfg.election_ms / n->cfg.heartbeat_ms;
    rc_cfg.heartbeat_ticks = 1;
    rc_cfg.prng = &n->prng;
    rc_cfg.storage = raft_storage_mem_storage(n->log);
    /* Re-deliver everything after the snapshot: kv skips what it already holds, and conf
     * changes must reach the core even when the store is ahead of them. */
    rc_cfg.applied = n->snapshot_index;
    int rc = raft_new(&rc_cfg, &n->raft);
    if (rc < 0) return start_fail(err, err_len, rc, "cannot start raft", k_strerror(rc));
    const struct raft_conf_state *cs = raft_conf(n->raft);
    if (cs->voters_n == 1 && cs->voters[0] == n->cfg.id) {
        raft_campaign(n->raft);
    } else if (raft_conf_is_voter(cs, n->cfg.id)) {
        /* etcd's --initial-election-tick-advance (default on): a starting member is one tick
         * from its election timeout, so a new cluster elects in about a heartbeat or two
         * instead of a whole timeout. PreVote keeps a restarted member from disrupting a
         * leader it has not heard yet. */
        for (uint32_t i = 1; i < rc_cfg.election_ticks; i++)
            raft_tick(n->raft);
    }
    return 0;
}

static int start_loop_side(struct srv_node *n)
{
    raft_storage_mem_hard_state(n->log, &n->hs_sent); /* what the WAL holds */
    n->hs_latest = n->hs_sent;
    int rc = srv_worker_start(&n->disk, n->loop, "ketch-wal");
    if (rc == 0) rc = srv_worker_start(&n->applier, n->loop, "ketch-apply");
    if (rc == 0) rc = srv_worker_start(&n->snapper, n->loop, "ketch-snap");
    if (rc < 0) return rc;
    uv_timer_init(n->loop, &n->tick_timer);
    uv_timer_init(n->loop, &n->sync_timer);
    uv_timer_init(n->loop, &n->sweep_timer);
    uv_check_init(n->loop, &n->check);
    n->tick_timer.data = n->sync_timer.data = n->sweep_timer.data = n->check.data = n;
    uv_timer_start(&n->tick_timer, on_tick, n->cfg.heartbeat_ms, n->cfg.heartbeat_ms);
    uv_timer_start(&n->sync_timer, on_sync, SRV_NODE_SYNC_INTERVAL_MS, SRV_NODE_SYNC_INTERVAL_MS);
    uv_timer_start(&n->sweep_timer, on_sweep, SRV_NODE_SWEEP_INTERVAL_MS,
                   SRV_NODE_SWEEP_INTERVAL_MS);
    uv_check_start(&n->check, on_check);
    n->closing_handles = 7; /* 4 timers and check, 3 worker async handles */
    return 0;
}

static void node_free(struct srv_node *n)
{
    raft_free(n->raft);
    raft_storage_mem_free(n->log);
    kv_watch_hub_free(n->hub);
    if (n->kv) kv_store_close(n->kv);
    k_u64map_deinit(&n->proposed);
    free_boot_records(n);
    free(n->flight.apply);
    flight_free_owned(&n->flight);
    free(n->flight.owned);
    free_inbox(n);
    free(n->decode_ents);
    drop_received_snapshot(n);
    free(n->installing_path);
    free(n);
}

int srv_node_start(uv_loop_t *loop, const struct srv_node_config *cfg, struct srv_node **out,
                   char *err, size_t err_len)
{
    k_assert(cfg->heartbeat_ms > 0 && cfg->election_ms >= cfg->heartbeat_ms);
    *out = NULL;
    err[0] = '\0';
    struct srv_node *n = k_xcalloc(1, sizeof(*n));
    n->loop = loop;
    n->cfg = *cfg;
    n->cfg.wal_dir = k_xstrdup(cfg->wal_dir);
    n->cfg.snap_dir = k_xstrdup(cfg->snap_dir);
    n->cfg.kv_dir = k_xstrdup(cfg->kv_dir);
    k_u64map_init(&n->proposed);
    if (cfg->bootstrap_records_n) {
        n->boot_records = k_xcalloc(cfg->bootstrap_records_n, sizeof(*n->boot_records));
        for (size_t i = 0; i < cfg->bootstrap_records_n; i++) {
            n->boot_records[i].path = k_xstrdup(cfg->bootstrap_records[i].path);
            n->boot_records[i].value = k_xstrdup(cfg->bootstrap_records[i].value);
        }
        n->boot_records_n = cfg->bootstrap_records_n;
    }
    /* Election jitter only needs to differ between members and runs. */
    k_prng_init(&n->prng, cfg->id ^ (uint64_t)k_wall_ns());
    /* Request ids as etcd's idutil makes them: member bits, start time, counter, so ids of
     * different members and runs do not meet. Bit 63 stays clear (read contexts use it). */
    n->next_id =
            ((cfg->id & 0x7fff) << 48) | (((uint64_t)k_wall_ns() / 1000000 & 0xffffffffff) << 8);
    n->log = raft_storage_mem_new();
    int rc = k_mkdir_p(n->cfg.snap_dir, 0700);
    if (rc < 0) {
        start_fail_path(err, err_len, rc, "cannot create", n->cfg.snap_dir);
        goto fail;
    }
    snprintf(n->incoming_dir, sizeof(n->incoming_dir), "%s/incoming", n->cfg.snap_dir);
    rc = k_remove_tree(n->incoming_dir); /* pieces of snapshots a crash interrupted */
    if (rc == 0 || rc == -ENOENT) rc = k_mkdir_p(n->incoming_dir, 0700);
    if (rc < 0) {
        start_fail_path(err, err_len, rc, "cannot create", n->incoming_dir);
        goto fail;
    }
    rc = recover(n, err, err_len);
    if (rc < 0) goto fail;
    uint64_t kv_applied;
    uint64_t etcd_index;
    rc = kv_store_indexes(n->kv, &kv_applied, &etcd_index);
    if (rc < 0) {
        start_fail_path(err, err_len, rc, "cannot read the store", n->cfg.kv_dir);
        goto fail;
    }
    n->hub = kv_watch_hub_new(etcd_index, 0, 0);
    rc = start_raft(n, err, err_len);
    if (rc < 0) goto fail;
    rc = start_loop_side(n);
    if (rc < 0) {
        start_fail(err, err_len, rc, "cannot start the worker threads", k_strerror(rc));
        goto fail;
    }
    track_soft_state(n);
    *out = n;
    return 0;
fail:
    if (n->wal) (void)raft_wal_close(n->wal);
    free((char *)n->cfg.wal_dir);
    free((char *)n->cfg.snap_dir);
    free((char *)n->cfg.kv_dir);
    node_free(n);
    return rc;
}

/* The node is freed when the last of its handles (timers, check, the workers' async
 * handles, all inside struct srv_node) has closed: libuv still walks closing handles after
 * each close callback, so none may be freed before all are closed. */
static void handle_closed(struct srv_node *n)
{
    k_assert(n->closing_handles > 0);
    if (--n->closing_handles > 0) return;
    free((char *)n->cfg.wal_dir);
    free((char *)n->cfg.snap_dir);
    free((char *)n->cfg.kv_dir);
    node_free(n);
}

static void on_handle_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

static void on_worker_closed(struct srv_worker *w, void *data)
{
    (void)w;
    handle_closed(data);
}

int srv_node_stop(struct srv_node *n)
{
    n->stopping = true;
    uv_timer_stop(&n->tick_timer);
    uv_timer_stop(&n->sync_timer);
    uv_timer_stop(&n->sweep_timer);
    uv_check_stop(&n->check);
    fail_list(n, &n->queued_writes, K_ESTOPPED);
    fail_list(n, &n->queued_confs, K_ESTOPPED);
    fail_list(n, &n->queued_reads, K_ESTOPPED);
    fail_list(n, &n->reading, K_ESTOPPED);
    fail_list(n, &n->applying, K_ESTOPPED);
    /* Let the Ready in flight and any snapshot finish: their writes may already be durable,
     * and the clients waiting on them are answered if they apply. */
    /* A done callback may hand work to another worker (the apply half of a Ready, the seal
     * of a snapshot, the WAL write after a snapshot install): drain all of them until none
     * has anything left, and only then stop them. */
    for (bool busy = true; busy;) {
        busy = n->disk.in_flight || n->applier.in_flight || n->snapper.in_flight;
        srv_worker_drain(&n->snapper);
        srv_worker_drain(&n->disk);
        srv_worker_drain(&n->applier);
    }
    srv_worker_stop(&n->snapper, on_worker_closed, n);
    srv_worker_stop(&n->disk, on_worker_closed, n);
    srv_worker_stop(&n->applier, on_worker_closed, n);
    k_assert(!n->in_flight);
    for (size_t i = 0; i < n->proposed.cap; i++) {
        if (n->proposed.slots[i].key) {
            wait_finish(n, n->proposed.slots[i].value, K_ESTOPPED, NULL);
            i--;
        }
    }
    /* A clean stop keeps the commit index (raft_wal_close writes what it holds back). */
    int rc = n->hs_unwritten ? raft_wal_write(n->wal, NULL, 0, &n->hs_latest) : 0;
    int rc_close = raft_wal_close(n->wal);
    if (rc == 0) rc = rc_close;
    n->wal = NULL;
    int rc2 = kv_store_sync(n->kv);
    if (rc2 == 0) rc2 = marker_write(n, true);
    if (rc == 0) rc = rc2;
    uv_close((uv_handle_t *)&n->tick_timer, on_handle_closed);
    uv_close((uv_handle_t *)&n->sync_timer, on_handle_closed);
    uv_close((uv_handle_t *)&n->sweep_timer, on_handle_closed);
    uv_close((uv_handle_t *)&n->check, on_handle_closed);
    return rc;
}
