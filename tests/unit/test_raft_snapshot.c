/* Log compaction and snapshot install (Raft §7): the leader sends a snapshot to a follower
 * that needs compacted entries, the follower installs it through a Ready, stale snapshots are
 * ignored, and a failed transfer returns the follower to probing. */
#include "raft_test_util.h"

Suite *test_raft_snapshot_suite(void);

static void compact_leader(struct tnet *t, uint64_t id)
{
    struct tnode *n = &t->nodes[id];
    uint64_t applied = raft_applied_index(n->r);
    ck_assert_int_eq(raft_storage_mem_create_snapshot(n->disk, applied, raft_conf(n->r)), 0);
    ck_assert_int_eq(raft_storage_mem_compact(n->disk, applied), 0);
}

/* Reference: §7 "the leader must occasionally send snapshots to followers that lag behind"
 * (InstallSnapshot); the follower discards its log and takes the snapshot's state. */
START_TEST(test_leader_sends_snapshot_to_follower_behind_compaction)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    tnet_elect(&t, 1);
    tnet_isolate(&t, 3, true);
    for (uint64_t v = 0; v < 20; v++)
        ck_assert_int_eq(tnet_propose(&t, 1, v), 0);
    tnet_deliver_all(&t);
    ck_assert_uint_eq(raft_applied_index(t.nodes[1].r), 22);
    compact_leader(&t, 1);
    tnet_isolate(&t, 3, false);
    for (int i = 0; i < 5; i++) {
        tnet_tick(&t, 1, 1);
        tnet_deliver_all(&t);
    }
    ck_assert_uint_eq(t.delivered[RAFT_MSG_SNAP], 1);
    ck_assert(t.nodes[3].snapshot_installed);
    ck_assert_uint_eq(raft_storage_mem_first_index(t.nodes[3].disk), 23);
    ck_assert_uint_eq(raft_last_index(t.nodes[3].r), 22);
    ck_assert_uint_eq(raft_applied_index(t.nodes[3].r), 22);
    ck_assert_int_eq(tnet_propose(&t, 1, 100), 0);
    tnet_deliver_all(&t);
    tnet_tick(&t, 1, 1);
    tnet_deliver_all(&t);
    ck_assert_uint_eq(raft_commit_index(t.nodes[3].r), 23);
    ck_assert_uint_eq(t.nodes[3].applied_n, 1);
    ck_assert_uint_eq(t.nodes[3].applied_values[0], 100);
    uint64_t match = 0;
    uint64_t next = 0;
    ck_assert(raft_progress(t.nodes[1].r, 3, &match, &next));
    ck_assert_uint_eq(match, 23);
    tnet_free(&t);
}
END_TEST

/* A snapshot that is not ahead of the follower's commit changes nothing. */
START_TEST(test_follower_ignores_snapshot_not_past_its_commit)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    uint64_t term = tnet_elect(&t, 1);
    ck_assert_int_eq(tnet_propose(&t, 1, 5), 0);
    tnet_deliver_all(&t);
    tnet_tick(&t, 1, 1);
    tnet_deliver_all(&t);
    ck_assert_uint_eq(raft_commit_index(t.nodes[2].r), 3);
    struct raft_message m = {
        .type = RAFT_MSG_SNAP,
        .to = 2,
        .from = 1,
        .term = term,
        .snapshot = { .index = 2, .term = term, .conf = *raft_conf(t.nodes[1].r) },
    };
    ck_assert_int_eq(raft_step(t.nodes[2].r, &m), 0);
    struct raft_ready rd;
    ck_assert(raft_ready(t.nodes[2].r, &rd));
    ck_assert(!rd.snapshot_present);
    ck_assert_uint_eq(rd.messages_n, 1);
    ck_assert_int_eq(rd.messages[0].type, RAFT_MSG_APP_RESP);
    ck_assert_uint_eq(rd.messages[0].index, 3);
    raft_advance(t.nodes[2].r, &rd);
    tnet_free(&t);
}
END_TEST

/* Reference: etcd ReportSnapshot: a failed snapshot returns the follower to probe, so the
 * leader tries again (it will need another snapshot). */
START_TEST(test_failed_snapshot_report_returns_follower_to_probe)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    tnet_elect(&t, 1);
    tnet_isolate(&t, 3, true);
    for (uint64_t v = 0; v < 5; v++)
        ck_assert_int_eq(tnet_propose(&t, 1, v), 0);
    tnet_deliver_all(&t);
    compact_leader(&t, 1);
    /* 3 hears again but its answers cannot get back: the leader probes, finds the gap
     * and sends a snapshot, which is then lost. */
    tnet_isolate(&t, 3, false);
    tnet_tick(&t, 1, 1);
    tnet_deliver(&t, 2); /* heartbeat out and back */
    t.cut[1][3] = true;
    tnet_deliver_all(&t); /* the empty append is lost */
    t.cut[1][3] = false;
    struct raft_message rej = {
        .type = RAFT_MSG_APP_RESP,
        .to = 1,
        .from = 3,
        .term = raft_term(t.nodes[1].r),
        .index = raft_last_index(t.nodes[1].r),
        .reject = true,
        .reject_hint = 2,
        .log_term = raft_term(t.nodes[1].r),
    };
    ck_assert_int_eq(raft_step(t.nodes[1].r, &rej), 0);
    tnet_ready_all(&t);
    ck_assert_uint_eq(tnet_count(&t, RAFT_MSG_SNAP, 1, 3), 1);
    tnet_drop_queue(&t);
    tnet_isolate(&t, 3, true);
    /* While the snapshot is out, nothing more is sent to 3. */
    tnet_tick(&t, 1, 1);
    tnet_ready_all(&t);
    ck_assert_uint_eq(tnet_count(&t, RAFT_MSG_SNAP, 1, 3), 0);
    ck_assert_uint_eq(tnet_count(&t, RAFT_MSG_APP, 1, 3), 0);
    tnet_drop_queue(&t);
    raft_report_snapshot(t.nodes[1].r, 3, false);
    uint64_t match = 0;
    uint64_t next = 0;
    ck_assert(raft_progress(t.nodes[1].r, 3, &match, &next));
    ck_assert_uint_eq(next, match + 1);
    tnet_isolate(&t, 3, false);
    for (int i = 0; i < 4; i++) {
        tnet_tick(&t, 1, 1);
        tnet_deliver_all(&t);
    }
    ck_assert(t.nodes[3].snapshot_installed);
    ck_assert_uint_eq(raft_last_index(t.nodes[3].r), raft_last_index(t.nodes[1].r));
    tnet_free(&t);
}
END_TEST

/* A restarted member resumes from its snapshot: committed and applied start there. */
START_TEST(test_restart_after_snapshot_starts_at_the_snapshot)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    tnet_elect(&t, 1);
    for (uint64_t v = 0; v < 10; v++)
        ck_assert_int_eq(tnet_propose(&t, 1, v), 0);
    tnet_deliver_all(&t);
    compact_leader(&t, 1);
    raft_free(t.nodes[1].r);
    t.nodes[1].r = NULL;
    t.nodes[1].cfg.applied = 12;
    tnet_start(&t, 1);
    ck_assert_uint_eq(raft_commit_index(t.nodes[1].r), 12);
    ck_assert_uint_eq(raft_applied_index(t.nodes[1].r), 12);
    ck_assert_uint_eq(raft_last_index(t.nodes[1].r), 12);
    tnet_free(&t);
}
END_TEST

Suite *test_raft_snapshot_suite(void)
{
    Suite *s = suite_create("raft_snapshot");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_leader_sends_snapshot_to_follower_behind_compaction);
    tcase_add_test(tc, test_follower_ignores_snapshot_not_past_its_commit);
    tcase_add_test(tc, test_failed_snapshot_report_returns_follower_to_probe);
    tcase_add_test(tc, test_restart_after_snapshot_starts_at_the_snapshot);
    suite_add_tcase(s, tc);
    return s;
}
