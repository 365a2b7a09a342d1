/* Log replication and commit: Raft §5.3, §5.4.2 (Figure 8), fast backtracking (§5.3's
 * optimisation, etcd's conflict hint), flow control, batching, proposal errors. */
#include "raft_test_util.h"

Suite *test_raft_replication_suite(void);

/* Reference: §5.3 "A log entry is committed once the leader that created the entry has
 * replicated it on a majority of the servers." */
START_TEST(test_leader_commits_entry_once_a_majority_holds_it)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    tnet_elect(&t, 1);
    tnet_isolate(&t, 3, true);
    ck_assert_int_eq(tnet_propose(&t, 1, 11), 0);
    tnet_deliver_all(&t);
    ck_assert_uint_eq(raft_commit_index(t.nodes[1].r), 3);
    ck_assert_uint_eq(t.nodes[1].applied_n, 1);
    /* The follower learns the commit with the next append or heartbeat. */
    tnet_tick(&t, 1, 1);
    tnet_deliver_all(&t);
    ck_assert_uint_eq(t.nodes[2].applied_n, 1);
    ck_assert_uint_eq(t.nodes[2].applied_values[0], 11);
    ck_assert_uint_eq(t.nodes[3].applied_n, 0);
    tnet_isolate(&t, 2, true);
    ck_assert_int_eq(tnet_propose(&t, 1, 12), 0);
    tnet_deliver_all(&t);
    ck_assert_uint_eq(raft_commit_index(t.nodes[1].r), 3); /* alone: no majority */
    tnet_free(&t);
}
END_TEST

/* Reference: §5.4.2 "Raft never commits log entries from previous terms by counting
 * replicas" (Figure 8): an entry of an old term on a majority stays uncommitted until an
 * entry of the current term commits above it. */
START_TEST(test_leader_does_not_commit_previous_term_entry_by_counting_replicas)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    uint64_t term = tnet_elect(&t, 1);
    tnet_isolate(&t, 1, true);
    ck_assert_int_eq(tnet_propose(&t, 1, 99), 0); /* index 3, old term, only on 1 */
    tnet_ready(&t, 1);
    tnet_drop_queue(&t);
    tnet_isolate(&t, 1, false);
    struct raft_message hb = { .type = RAFT_MSG_HEARTBEAT, .to = 1, .from = 2, .term = term + 1 };
    ck_assert_int_eq(raft_step(t.nodes[1].r, &hb), 0);
    tnet_ready(&t, 1);
    tnet_drop_queue(&t);
    raft_campaign(t.nodes[1].r);
    tnet_deliver(&t, 2); /* votes out and back: 1 leads term + 2, its appends are queued */
    ck_assert_int_eq(raft_state(t.nodes[1].r), RAFT_STATE_LEADER);
    uint64_t new_term = raft_term(t.nodes[1].r);
    ck_assert_uint_eq(new_term, term + 2);
    tnet_drop_queue(&t);
    ck_assert_uint_eq(raft_last_index(t.nodes[1].r), 4); /* the empty entry of new_term */
    /* Both followers now report holding index 3 (of the old term). */
    for (uint64_t from = 2; from <= 3; from++) {
        struct raft_message ack = {
            .type = RAFT_MSG_APP_RESP, .to = 1, .from = from, .term = new_term, .index = 3
        };
        ck_assert_int_eq(raft_step(t.nodes[1].r, &ack), 0);
        tnet_ready(&t, 1);
    }
    ck_assert_uint_eq(raft_commit_index(t.nodes[1].r), 2);
    struct raft_message ack4 = {
        .type = RAFT_MSG_APP_RESP, .to = 1, .from = 2, .term = new_term, .index = 4
    };
    ck_assert_int_eq(raft_step(t.nodes[1].r, &ack4), 0);
    tnet_ready(&t, 1);
    ck_assert_uint_eq(raft_commit_index(t.nodes[1].r), 4);
    tnet_free(&t);
}
END_TEST

/* Reference: §5.3 "If an existing entry conflicts with a new one (same index but different
 * terms), delete the existing entry and all that follow it". */
START_TEST(test_follower_replaces_conflicting_entries_with_the_leaders)
{
    struct tnet t;
    tnet_init(&t, 5, 0, 0, false, false);
    tnet_elect(&t, 1);
    for (uint64_t to = 3; to <= 5; to++)
        t.cut[1][to] = true;
    ck_assert_int_eq(tnet_propose(&t, 1, 111), 0);
    tnet_deliver_all(&t);
    ck_assert_uint_eq(raft_last_index(t.nodes[2].r), 3);
    ck_assert_uint_eq(raft_commit_index(t.nodes[2].r), 2);
    memset(t.cut, 0, sizeof(t.cut));
    tnet_isolate(&t, 1, true);
    tnet_isolate(&t, 2, true);
    tnet_elect(&t, 3);
    ck_assert_int_eq(tnet_propose(&t, 3, 333), 0);
    tnet_deliver_all(&t);
    tnet_isolate(&t, 2, false);
    tnet_tick(&t, 3, 1);
    tnet_deliver_all(&t);
    tnet_tick(&t, 3, 1);
    tnet_deliver_all(&t);
    ck_assert_uint_eq(raft_last_index(t.nodes[2].r), raft_last_index(t.nodes[3].r));
    ck_assert_uint_eq(t.nodes[2].applied_n, 1);
    ck_assert_uint_eq(t.nodes[2].applied_values[0], 333);
    tnet_free(&t);
}
END_TEST

/* The rejection hint lets the leader skip a whole conflicting term per round trip instead
 * of one entry (etcd's findConflictByTerm). */
START_TEST(test_rejection_hint_skips_conflicting_term_in_one_round_trip)
{
    struct tnet t;
    tnet_init(&t, 5, 0, 0, false, false);
    t.nodes[1].cfg.append_entries_max = 8;
    tnet_elect(&t, 1);
    for (uint64_t to = 3; to <= 5; to++)
        t.cut[1][to] = true;
    for (uint64_t v = 0; v < 50; v++)
        ck_assert_int_eq(tnet_propose(&t, 1, v), 0);
    tnet_deliver_all(&t);
    ck_assert_uint_eq(raft_last_index(t.nodes[2].r), 52);
    memset(t.cut, 0, sizeof(t.cut));
    tnet_isolate(&t, 1, true);
    tnet_isolate(&t, 2, true);
    tnet_elect(&t, 3);
    for (uint64_t v = 0; v < 5; v++)
        ck_assert_int_eq(tnet_propose(&t, 3, 1000 + v), 0);
    tnet_deliver_all(&t);
    tnet_isolate(&t, 2, false);
    tnet_tick(&t, 3, 1);
    size_t rejects = 0;
    for (int round = 0; round < 50 && t.queue_n > 0; round++) {
        for (size_t i = 0; i < t.queue_n; i++) {
            if (t.queue[i].from == 2 && t.queue[i].type == RAFT_MSG_APP_RESP) {
                struct raft_message m;
                tnet_decode(&t, i, &m);
                rejects += m.reject;
            }
        }
        tnet_deliver(&t, 1);
    }
    ck_assert_uint_eq(raft_last_index(t.nodes[2].r), raft_last_index(t.nodes[3].r));
    ck_assert_uint_le(rejects, 2);
    tnet_free(&t);
}
END_TEST

/* Proposals made between two Readies travel in one MsgApp per follower. */
START_TEST(test_leader_batches_proposals_into_one_append)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    tnet_elect(&t, 1);
    for (uint64_t v = 0; v < 100; v++)
        ck_assert_int_eq(tnet_propose(&t, 1, v), 0);
    tnet_ready(&t, 1);
    ck_assert_uint_eq(tnet_count(&t, RAFT_MSG_APP, 1, 2), 1);
    ck_assert_uint_eq(tnet_count(&t, RAFT_MSG_APP, 1, 3), 1);
    struct raft_message m;
    tnet_decode(&t, 0, &m);
    ck_assert_uint_eq(m.entries_n, 100);
    tnet_deliver_all(&t);
    ck_assert_uint_eq(raft_commit_index(t.nodes[1].r), 102);
    tnet_free(&t);
}
END_TEST

/* Flow control (thesis §10.2.1): at most inflight_max appends are unacknowledged. */
START_TEST(test_replicating_follower_gets_at_most_the_inflight_window)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    t.nodes[1].cfg.inflight_max = 2;
    t.nodes[1].cfg.append_entries_max = 1;
    raft_free(t.nodes[1].r);
    t.nodes[1].r = NULL;
    tnet_start(&t, 1);
    tnet_elect(&t, 1);
    for (uint64_t v = 0; v < 10; v++) {
        ck_assert_int_eq(tnet_propose(&t, 1, v), 0);
        tnet_ready(&t, 1);
    }
    ck_assert_uint_eq(tnet_count(&t, RAFT_MSG_APP, 1, 2), 2);
    tnet_deliver_all(&t);
    ck_assert_uint_eq(raft_commit_index(t.nodes[1].r), 12);
    tnet_free(&t);
}
END_TEST

START_TEST(test_proposal_without_leader_fails_with_enoleader)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    ck_assert_int_eq(tnet_propose(&t, 1, 1), K_ENOLEADER);
    raft_campaign(t.nodes[1].r);
    ck_assert_int_eq(raft_state(t.nodes[1].r), RAFT_STATE_CANDIDATE);
    ck_assert_int_eq(tnet_propose(&t, 1, 1), K_ENOLEADER);
    tnet_free(&t);
}
END_TEST

START_TEST(test_proposals_past_the_uncommitted_bound_fail_with_elimit)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    t.nodes[1].cfg.uncommitted_max = 10;
    raft_free(t.nodes[1].r);
    t.nodes[1].r = NULL;
    tnet_start(&t, 1);
    tnet_elect(&t, 1);
    tnet_isolate(&t, 1, true);
    for (uint64_t v = 0; v < 10; v++)
        ck_assert_int_eq(tnet_propose(&t, 1, v), 0);
    ck_assert_int_eq(tnet_propose(&t, 1, 10), K_ELIMIT);
    tnet_ready(&t, 1);
    tnet_drop_queue(&t);
    tnet_isolate(&t, 1, false);
    tnet_tick(&t, 1, 1);
    tnet_deliver_all(&t);
    ck_assert_int_eq(tnet_propose(&t, 1, 10), 0);
    tnet_free(&t);
}
END_TEST

/* A follower forwards proposals to the leader (MsgProp), which appends them. */
START_TEST(test_follower_forwards_proposals_to_the_leader)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    tnet_elect(&t, 1);
    ck_assert_int_eq(tnet_propose(&t, 2, 21), 0);
    ck_assert_int_eq(tnet_propose(&t, 2, 22), 0);
    tnet_ready(&t, 2);
    ck_assert_uint_eq(tnet_count(&t, RAFT_MSG_PROP, 2, 1), 1); /* one message, two entries */
    tnet_deliver_all(&t);
    tnet_tick(&t, 1, 1);
    tnet_deliver_all(&t);
    for (uint64_t id = 1; id <= 3; id++) {
        ck_assert_uint_eq(t.nodes[id].applied_n, 2);
        ck_assert_uint_eq(t.nodes[id].applied_values[0], 21);
        ck_assert_uint_eq(t.nodes[id].applied_values[1], 22);
    }
    tnet_free(&t);
}
END_TEST

/* A restarted follower recovers its log from storage and catches up. */
START_TEST(test_restarted_follower_catches_up_from_its_storage)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    tnet_elect(&t, 1);
    for (uint64_t v = 0; v < 5; v++)
        ck_assert_int_eq(tnet_propose(&t, 1, v), 0);
    tnet_deliver_all(&t);
    raft_free(t.nodes[2].r);
    t.nodes[2].r = NULL;
    t.nodes[2].up = false;
    for (uint64_t v = 5; v < 10; v++)
        ck_assert_int_eq(tnet_propose(&t, 1, v), 0);
    tnet_deliver_all(&t);
    tnet_start(&t, 2);
    ck_assert_uint_eq(raft_last_index(t.nodes[2].r), 7);
    t.nodes[2].applied_n = 0;
    for (int i = 0; i < 3; i++) {
        tnet_tick(&t, 1, 1);
        tnet_deliver_all(&t);
    }
    ck_assert_uint_eq(raft_last_index(t.nodes[2].r), 12);
    ck_assert_uint_eq(t.nodes[2].applied_n, 10); /* replayed from index 2 on */
    tnet_free(&t);
}
END_TEST

/* Regression (sim seed 4): with a window of one, a lost MsgApp left the window full forever
 * and the leader sent only heartbeats. A heartbeat answer now frees a slot. */
START_TEST(test_heartbeat_answer_frees_a_window_full_of_lost_appends)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    t.nodes[1].cfg.inflight_max = 1;
    raft_free(t.nodes[1].r);
    t.nodes[1].r = NULL;
    tnet_start(&t, 1);
    tnet_elect(&t, 1);
    t.cut[1][2] = true;
    t.cut[1][3] = true;
    ck_assert_int_eq(tnet_propose(&t, 1, 1), 0);
    tnet_deliver_all(&t); /* both appends lost: the window is full */
    ck_assert_int_eq(tnet_propose(&t, 1, 2), 0);
    tnet_ready(&t, 1);
    ck_assert_uint_eq(tnet_count(&t, RAFT_MSG_APP, 1, 0), 0);
    tnet_drop_queue(&t);
    t.cut[1][2] = false;
    t.cut[1][3] = false;
    for (int i = 0; i < 6; i++) {
        tnet_tick(&t, 1, 1);
        tnet_deliver_all(&t);
    }
    ck_assert_uint_eq(raft_commit_index(t.nodes[1].r), 4);
    ck_assert_uint_eq(t.nodes[2].applied_n, 2);
    tnet_free(&t);
}
END_TEST

Suite *test_raft_replication_suite(void)
{
    Suite *s = suite_create("raft_replication");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_leader_commits_entry_once_a_majority_holds_it);
    tcase_add_test(tc, test_leader_does_not_commit_previous_term_entry_by_counting_replicas);
    tcase_add_test(tc, test_follower_replaces_conflicting_entries_with_the_leaders);
    tcase_add_test(tc, test_rejection_hint_skips_conflicting_term_in_one_round_trip);
    tcase_add_test(tc, test_leader_batches_proposals_into_one_append);
    tcase_add_test(tc, test_replicating_follower_gets_at_most_the_inflight_window);
    tcase_add_test(tc, test_proposal_without_leader_fails_with_enoleader);
    tcase_add_test(tc, test_proposals_past_the_uncommitted_bound_fail_with_elimit);
    tcase_add_test(tc, test_follower_forwards_proposals_to_the_leader);
    tcase_add_test(tc, test_restarted_follower_catches_up_from_its_storage);
    tcase_add_test(tc, test_heartbeat_answer_frees_a_window_full_of_lost_appends);
    suite_add_tcase(s, tc);
    return s;
}
