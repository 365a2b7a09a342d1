/* Leader election and term rules: Raft §5.1, §5.2, §5.4.1, PreVote (thesis §9.6) and
 * CheckQuorum (thesis §6.2). */
#include "raft_test_util.h"

Suite *test_raft_election_suite(void);

/* Reference: §5.2 "If a follower receives no communication over a period of time called the
 * election timeout, then it ... begins an election"; the timeout is randomized in [et, 2et). */
START_TEST(test_follower_campaigns_after_randomized_election_timeout)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    uint64_t term = raft_term(t.nodes[1].r);
    int ticks = 0;
    while (raft_state(t.nodes[1].r) == RAFT_STATE_FOLLOWER && ticks < 100) {
        tnet_tick(&t, 1, 1);
        ticks++;
    }
    ck_assert_int_ge(ticks, 10);
    ck_assert_int_lt(ticks, 20);
    ck_assert_int_eq(raft_state(t.nodes[1].r), RAFT_STATE_CANDIDATE);
    ck_assert_uint_eq(raft_term(t.nodes[1].r), term + 1);
    ck_assert_uint_eq(tnet_count(&t, RAFT_MSG_VOTE, 1, 2), 1);
    ck_assert_uint_eq(tnet_count(&t, RAFT_MSG_VOTE, 1, 3), 1);
    tnet_free(&t);
}
END_TEST

/* Reference: §5.2 a candidate with votes from a majority becomes leader; §8 it then
 * appends an empty entry of its term, and commits it once a majority holds it. */
START_TEST(test_candidate_with_majority_becomes_leader_and_commits_an_empty_entry)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    uint64_t term = tnet_elect(&t, 1);
    ck_assert_uint_eq(raft_leader(t.nodes[2].r), 1);
    ck_assert_uint_eq(raft_leader(t.nodes[3].r), 1);
    ck_assert_uint_eq(raft_last_index(t.nodes[1].r), 2);
    ck_assert_uint_eq(raft_commit_index(t.nodes[1].r), 2);
    ck_assert_uint_eq(raft_term(t.nodes[2].r), term);
    tnet_free(&t);
}
END_TEST

/* Reference: §5.4.1 "the voter denies its vote if its own log is more up-to-date than that
 * of the candidate". */
START_TEST(test_follower_rejects_vote_for_candidate_with_stale_log)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    tnet_elect(&t, 1);
    t.cut[1][3] = true;
    ck_assert_int_eq(tnet_propose(&t, 1, 42), 0);
    tnet_deliver_all(&t);
    ck_assert_uint_eq(raft_last_index(t.nodes[2].r), 3);
    ck_assert_uint_eq(raft_last_index(t.nodes[3].r), 2);
    t.cut[1][3] = false;
    tnet_isolate(&t, 1, true);
    raft_campaign(t.nodes[3].r);
    tnet_deliver_all(&t);
    ck_assert_int_ne(raft_state(t.nodes[3].r), RAFT_STATE_LEADER);
    /* Node 2, with the longer log, can win. */
    raft_campaign(t.nodes[2].r);
    tnet_deliver_all(&t);
    ck_assert_int_eq(raft_state(t.nodes[2].r), RAFT_STATE_LEADER);
    tnet_free(&t);
}
END_TEST

/* Reference: §5.2 "each server will vote for at most one candidate in a given term". */
START_TEST(test_member_votes_at_most_once_per_term)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    struct raft_message v = {
        .type = RAFT_MSG_VOTE, .to = 1, .from = 2, .term = 5, .index = 1, .log_term = 1
    };
    ck_assert_int_eq(raft_step(t.nodes[1].r, &v), 0);
    v.from = 3;
    ck_assert_int_eq(raft_step(t.nodes[1].r, &v), 0);
    tnet_ready(&t, 1);
    ck_assert_uint_eq(t.queue_n, 2);
    struct raft_message a;
    struct raft_message b;
    tnet_decode(&t, 0, &a);
    tnet_decode(&t, 1, &b);
    ck_assert_uint_eq(a.to, 2);
    ck_assert(!a.reject);
    ck_assert_uint_eq(b.to, 3);
    ck_assert(b.reject);
    /* The vote is durable before the answer leaves (the Ready carried it). */
    struct raft_hard_state hs;
    raft_storage_mem_hard_state(t.nodes[1].disk, &hs);
    ck_assert_uint_eq(hs.term, 5);
    ck_assert_uint_eq(hs.vote, 2);
    tnet_free(&t);
}
END_TEST

/* Reference: §5.1 "If a candidate or leader discovers that its term is out of date, it
 * immediately reverts to follower state." */
START_TEST(test_leader_steps_down_on_message_with_higher_term)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    uint64_t term = tnet_elect(&t, 1);
    struct raft_message hb = { .type = RAFT_MSG_HEARTBEAT, .to = 1, .from = 2, .term = term + 3 };
    ck_assert_int_eq(raft_step(t.nodes[1].r, &hb), 0);
    ck_assert_int_eq(raft_state(t.nodes[1].r), RAFT_STATE_FOLLOWER);
    ck_assert_uint_eq(raft_term(t.nodes[1].r), term + 3);
    ck_assert_uint_eq(raft_leader(t.nodes[1].r), 2);
    tnet_free(&t);
}
END_TEST

/* Reference: §5.1 "If a server receives a request with a stale term number, it rejects the
 * request"; with CheckQuorum the answer carries our term so the stale leader steps down. */
START_TEST(test_follower_ignores_append_from_stale_term)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, true);
    uint64_t term = tnet_elect(&t, 1);
    uint64_t last = raft_last_index(t.nodes[2].r);
    struct raft_entry e = { .term = term - 1, .index = last + 1, .type = RAFT_ENTRY_NORMAL };
    struct raft_message app = {
        .type = RAFT_MSG_APP,
        .to = 2,
        .from = 3,
        .term = term - 1,
        .index = last,
        .log_term = term,
        .entries = &e,
        .entries_n = 1,
    };
    ck_assert_int_eq(raft_step(t.nodes[2].r, &app), 0);
    ck_assert_uint_eq(raft_last_index(t.nodes[2].r), last);
    ck_assert_uint_eq(raft_leader(t.nodes[2].r), 1);
    tnet_ready(&t, 2);
    ck_assert_uint_eq(t.queue_n, 1);
    struct raft_message resp;
    tnet_decode(&t, 0, &resp);
    ck_assert_int_eq(resp.type, RAFT_MSG_APP_RESP);
    ck_assert_uint_eq(resp.term, term);
    tnet_free(&t);
}
END_TEST

/* Reference: thesis §9.6: a member that cannot win does not raise its term, so rejoining it
 * does not depose the leader. */
START_TEST(test_prevote_keeps_an_isolated_member_from_raising_its_term)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, true, false);
    uint64_t term = tnet_elect(&t, 1);
    tnet_isolate(&t, 3, true);
    for (int i = 0; i < 100; i++) {
        tnet_tick(&t, 3, 1);
        tnet_drop_queue(&t);
    }
    ck_assert_uint_eq(raft_term(t.nodes[3].r), term);
    ck_assert_int_eq(raft_state(t.nodes[3].r), RAFT_STATE_PRE_CANDIDATE);
    tnet_isolate(&t, 3, false);
    tnet_tick(&t, 1, 1); /* a heartbeat brings 3 back */
    tnet_deliver_all(&t);
    ck_assert_int_eq(raft_state(t.nodes[1].r), RAFT_STATE_LEADER);
    ck_assert_uint_eq(raft_term(t.nodes[1].r), term);
    ck_assert_int_eq(raft_state(t.nodes[3].r), RAFT_STATE_FOLLOWER);
    tnet_free(&t);
}
END_TEST

/* Reference: thesis §6.2 (and §4.2.3): a member that heard from a leader within the
 * election timeout ignores vote requests, so a disruptive member cannot depose it. */
START_TEST(test_follower_in_lease_ignores_vote_request)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, true);
    uint64_t term = tnet_elect(&t, 1);
    struct raft_message v = {
        .type = RAFT_MSG_VOTE, .to = 2, .from = 3, .term = term + 1, .index = 100, .log_term = term
    };
    ck_assert_int_eq(raft_step(t.nodes[2].r, &v), 0);
    ck_assert_uint_eq(raft_term(t.nodes[2].r), term);
    tnet_ready(&t, 2);
    ck_assert_uint_eq(t.queue_n, 0);
    tnet_free(&t);
}
END_TEST

/* Reference: thesis §6.2 "a leader steps down if an election timeout elapses without a
 * successful round of heartbeats to a majority of its cluster". */
START_TEST(test_leader_that_cannot_hear_a_quorum_steps_down)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, true);
    tnet_elect(&t, 1);
    for (int i = 0; i < 15; i++) {
        tnet_tick(&t, 1, 1);
        tnet_deliver_all(&t);
    }
    ck_assert_int_eq(raft_state(t.nodes[1].r), RAFT_STATE_LEADER);
    tnet_isolate(&t, 1, true);
    for (int i = 0; i < 25; i++) {
        tnet_tick(&t, 1, 1);
        tnet_deliver_all(&t);
    }
    ck_assert_int_eq(raft_state(t.nodes[1].r), RAFT_STATE_FOLLOWER);
    ck_assert_uint_eq(raft_leader(t.nodes[1].r), 0);
    tnet_free(&t);
}
END_TEST

/* A single voter elects itself at once (its own vote is a majority). */
START_TEST(test_single_voter_elects_itself_and_commits_alone)
{
    struct tnet t;
    tnet_init(&t, 1, 0, 0, true, true);
    tnet_tick(&t, 1, 20);
    ck_assert_int_eq(raft_state(t.nodes[1].r), RAFT_STATE_LEADER);
    ck_assert_int_eq(tnet_propose(&t, 1, 7), 0);
    tnet_ready(&t, 1);
    ck_assert_uint_eq(raft_commit_index(t.nodes[1].r), 3);
    ck_assert_uint_eq(t.nodes[1].applied_n, 1);
    ck_assert_uint_eq(t.nodes[1].applied_values[0], 7);
    tnet_free(&t);
}
END_TEST

/* A lone leader's write is committed in the Ready that hands it to storage (the driver
 * persists before it applies, raft.h), so a write costs one Ready, not two. With a learner
 * beside it the leader counts its copy only once durable: the learner could apply an entry
 * the leader then loses. */
static bool ready_writes_and_commits(struct tnode *n, uint64_t index)
{
    struct raft_ready rd;
    ck_assert(raft_ready(n->r, &rd));
    bool written = rd.entries_n > 0 && rd.entries[rd.entries_n - 1].index == index;
    bool committed = rd.committed_n > 0 && rd.committed[rd.committed_n - 1].index == index;
    ck_assert(written);
    ck_assert_int_eq(raft_storage_mem_append(n->disk, rd.entries, rd.entries_n), 0);
    if (rd.hard_state_changed) raft_storage_mem_set_hard_state(n->disk, &rd.hard_state);
    raft_advance(n->r, &rd);
    return committed;
}

START_TEST(test_lone_leader_commits_a_write_in_the_ready_that_persists_it)
{
    struct tnet t;
    tnet_init(&t, 1, 0, 0, true, true);
    tnet_tick(&t, 1, 20);
    ck_assert_int_eq(raft_state(t.nodes[1].r), RAFT_STATE_LEADER);
    uint64_t last = raft_commit_index(t.nodes[1].r);
    ck_assert_int_eq(tnet_propose(&t, 1, 7), 0);
    ck_assert(ready_writes_and_commits(&t.nodes[1], last + 1));
    tnet_free(&t);

    tnet_init(&t, 1, 1, 0, true, true); /* the voter and a learner */
    tnet_tick(&t, 1, 20);
    tnet_deliver_all(&t);
    ck_assert_int_eq(raft_state(t.nodes[1].r), RAFT_STATE_LEADER);
    last = raft_last_index(t.nodes[1].r);
    ck_assert_int_eq(tnet_propose(&t, 1, 8), 0);
    ck_assert(!ready_writes_and_commits(&t.nodes[1], last + 1));
    tnet_free(&t);
}
END_TEST

/* Restart: term, vote and commit come back from storage; a restarted member does not vote
 * twice in a term. */
START_TEST(test_restarted_member_remembers_its_vote)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    struct raft_message v = {
        .type = RAFT_MSG_VOTE, .to = 1, .from = 2, .term = 5, .index = 1, .log_term = 1
    };
    ck_assert_int_eq(raft_step(t.nodes[1].r, &v), 0);
    tnet_ready(&t, 1);
    tnet_drop_queue(&t);
    raft_free(t.nodes[1].r);
    t.nodes[1].r = NULL;
    tnet_start(&t, 1);
    ck_assert_uint_eq(raft_term(t.nodes[1].r), 5);
    v.from = 3;
    ck_assert_int_eq(raft_step(t.nodes[1].r, &v), 0);
    tnet_ready(&t, 1);
    struct raft_message resp;
    tnet_decode(&t, 0, &resp);
    ck_assert(resp.reject);
    tnet_free(&t);
}
END_TEST

Suite *test_raft_election_suite(void)
{
    Suite *s = suite_create("raft_election");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_follower_campaigns_after_randomized_election_timeout);
    tcase_add_test(tc, test_candidate_with_majority_becomes_leader_and_commits_an_empty_entry);
    tcase_add_test(tc, test_follower_rejects_vote_for_candidate_with_stale_log);
    tcase_add_test(tc, test_member_votes_at_most_once_per_term);
    tcase_add_test(tc, test_leader_steps_down_on_message_with_higher_term);
    tcase_add_test(tc, test_follower_ignores_append_from_stale_term);
    tcase_add_test(tc, test_prevote_keeps_an_isolated_member_from_raising_its_term);
    tcase_add_test(tc, test_follower_in_lease_ignores_vote_request);
    tcase_add_test(tc, test_leader_that_cannot_hear_a_quorum_steps_down);
    tcase_add_test(tc, test_single_voter_elects_itself_and_commits_alone);
    tcase_add_test(tc, test_lone_leader_commits_a_write_in_the_ready_that_persists_it);
    tcase_add_test(tc, test_restarted_member_remembers_its_vote);
    suite_add_tcase(s, tc);
    return s;
}
