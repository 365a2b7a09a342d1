/* Membership changes, one member at a time (thesis §4.1, §4.2): add a voter, remove a voter,
 * add a learner, promote it; the single-server-change fix (a new leader commits an entry of
 * its term first); one change at a time; a removed leader steps down. */
#include "raft_test_util.h"

Suite *test_raft_membership_suite(void);

static int propose_cc(struct tnet *t, uint64_t at, enum raft_conf_change_type type, uint64_t id)
{
    static const char ctx[] = "name=n peer=http://127.0.0.1:2380";
    struct raft_conf_change cc = {
        .type = type, .node_id = id, .context = (const uint8_t *)ctx, .context_len = sizeof(ctx) - 1
    };
    return raft_propose_conf_change(t->nodes[at].r, &cc);
}

static void settle(struct tnet *t, uint64_t leader, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        tnet_tick(t, leader, 1);
        tnet_deliver_all(t);
    }
}

/* Reference: thesis §4.1; the new member catches up by snapshot (it starts empty) and then
 * counts toward the quorum: 2 of 4 no longer commit. */
START_TEST(test_added_voter_catches_up_and_counts_toward_quorum)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 1, false, false);
    tnet_elect(&t, 1);
    ck_assert_int_eq(propose_cc(&t, 1, RAFT_CONF_ADD_NODE, 4), 0);
    settle(&t, 1, 4);
    for (uint64_t id = 1; id <= 4; id++) {
        ck_assert_uint_eq(raft_conf(t.nodes[id].r)->voters_n, 4);
        ck_assert(raft_conf_is_voter(raft_conf(t.nodes[id].r), 4));
    }
    ck_assert(t.nodes[4].snapshot_installed);
    ck_assert_uint_eq(raft_last_index(t.nodes[4].r), raft_last_index(t.nodes[1].r));
    tnet_isolate(&t, 2, true);
    tnet_isolate(&t, 3, true);
    uint64_t commit = raft_commit_index(t.nodes[1].r);
    ck_assert_int_eq(tnet_propose(&t, 1, 1), 0);
    settle(&t, 1, 2);
    ck_assert_uint_eq(raft_commit_index(t.nodes[1].r), commit); /* 2 of 4 is no majority */
    tnet_isolate(&t, 2, false);
    settle(&t, 1, 2);
    ck_assert_uint_eq(raft_commit_index(t.nodes[1].r), commit + 1);
    tnet_free(&t);
}
END_TEST

START_TEST(test_removed_voter_no_longer_counts_toward_quorum)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    tnet_elect(&t, 1);
    ck_assert_int_eq(propose_cc(&t, 1, RAFT_CONF_REMOVE_NODE, 3), 0);
    settle(&t, 1, 2);
    ck_assert_uint_eq(raft_conf(t.nodes[1].r)->voters_n, 2);
    ck_assert(!raft_conf_is_voter(raft_conf(t.nodes[1].r), 3));
    tnet_isolate(&t, 3, true);
    uint64_t commit = raft_commit_index(t.nodes[1].r);
    ck_assert_int_eq(tnet_propose(&t, 1, 1), 0);
    settle(&t, 1, 2);
    ck_assert_uint_eq(raft_commit_index(t.nodes[1].r), commit + 1);
    tnet_free(&t);
}
END_TEST

/* Learners replicate but never vote or count (thesis §4.2.1). */
START_TEST(test_learner_replicates_but_never_votes_or_counts)
{
    struct tnet t;
    tnet_init(&t, 3, 1, 0, false, false);
    tnet_elect(&t, 1);
    ck_assert_int_eq(tnet_propose(&t, 1, 5), 0);
    settle(&t, 1, 2);
    ck_assert_uint_eq(t.nodes[4].applied_n, 1);
    raft_campaign(t.nodes[4].r); /* not promotable: nothing happens */
    ck_assert_int_eq(raft_state(t.nodes[4].r), RAFT_STATE_FOLLOWER);
    tnet_tick(&t, 4, 50);
    ck_assert_int_eq(raft_state(t.nodes[4].r), RAFT_STATE_FOLLOWER);
    tnet_drop_queue(&t);
    tnet_isolate(&t, 2, true);
    tnet_isolate(&t, 3, true);
    uint64_t commit = raft_commit_index(t.nodes[1].r);
    ck_assert_int_eq(tnet_propose(&t, 1, 6), 0);
    settle(&t, 1, 2);
    ck_assert_uint_eq(raft_commit_index(t.nodes[1].r), commit);
    tnet_free(&t);
}
END_TEST

START_TEST(test_promoted_learner_becomes_a_voter)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 1, false, false);
    tnet_elect(&t, 1);
    ck_assert_int_eq(propose_cc(&t, 1, RAFT_CONF_ADD_LEARNER_NODE, 4), 0);
    settle(&t, 1, 4);
    ck_assert(raft_conf_is_learner(raft_conf(t.nodes[1].r), 4));
    ck_assert_int_eq(propose_cc(&t, 1, RAFT_CONF_ADD_NODE, 4), 0);
    settle(&t, 1, 4);
    ck_assert(raft_conf_is_voter(raft_conf(t.nodes[1].r), 4));
    ck_assert(!raft_conf_is_learner(raft_conf(t.nodes[1].r), 4));
    ck_assert(raft_conf_is_voter(raft_conf(t.nodes[4].r), 4));
    tnet_isolate(&t, 1, true);
    tnet_isolate(&t, 2, true);
    raft_campaign(t.nodes[4].r);
    ck_assert_int_eq(raft_state(t.nodes[4].r), RAFT_STATE_CANDIDATE);
    tnet_free(&t);
}
END_TEST

/* One change at a time: a second change waits until the first is applied. */
START_TEST(test_leader_refuses_a_second_change_until_the_first_is_applied)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 2, false, false);
    tnet_elect(&t, 1);
    ck_assert_int_eq(propose_cc(&t, 1, RAFT_CONF_ADD_NODE, 4), 0);
    ck_assert_int_eq(propose_cc(&t, 1, RAFT_CONF_ADD_NODE, 5), K_EBUSY);
    settle(&t, 1, 3);
    ck_assert_int_eq(propose_cc(&t, 1, RAFT_CONF_ADD_NODE, 5), 0);
    tnet_free(&t);
}
END_TEST

/* The fix for the single-server change bug (Ongaro, raft-dev 2015): a new leader must commit
 * an entry of its own term before it accepts a configuration change. */
START_TEST(test_new_leader_refuses_change_before_committing_in_its_term)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 1, false, false);
    raft_campaign(t.nodes[1].r);
    tnet_deliver(&t, 2); /* elected; its empty entry not yet replicated */
    ck_assert_int_eq(raft_state(t.nodes[1].r), RAFT_STATE_LEADER);
    ck_assert_int_eq(propose_cc(&t, 1, RAFT_CONF_ADD_NODE, 4), K_EBUSY);
    tnet_deliver_all(&t);
    ck_assert_int_eq(propose_cc(&t, 1, RAFT_CONF_ADD_NODE, 4), 0);
    tnet_free(&t);
}
END_TEST

/* A forwarded change that comes at the wrong time keeps its slot as an empty entry. */
START_TEST(test_untimely_forwarded_change_becomes_an_empty_entry)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 2, false, false);
    tnet_elect(&t, 1);
    t.auto_apply_conf = false; /* the first change stays unapplied */
    ck_assert_int_eq(propose_cc(&t, 1, RAFT_CONF_ADD_NODE, 4), 0);
    ck_assert_int_eq(propose_cc(&t, 2, RAFT_CONF_ADD_NODE, 5), 0);
    settle(&t, 1, 3);
    ck_assert_uint_eq(raft_last_index(t.nodes[1].r), 4);
    const struct raft_entry *e = NULL;
    size_t n = 0;
    const struct raft_storage *st = raft_storage_mem_storage(t.nodes[1].disk);
    ck_assert_int_eq(st->entries(st->data, 4, 5, &e, &n), 0);
    ck_assert_int_eq(e[0].type, RAFT_ENTRY_NORMAL);
    ck_assert_uint_eq(e[0].data_len, 0);
    tnet_free(&t);
}
END_TEST

/* Reference: thesis §4.2.2: a leader removed from the configuration steps down once the
 * change is committed; the others elect a leader among themselves. */
START_TEST(test_removed_leader_steps_down_and_the_rest_elect_a_leader)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    tnet_elect(&t, 1);
    ck_assert_int_eq(propose_cc(&t, 1, RAFT_CONF_REMOVE_NODE, 1), 0);
    settle(&t, 1, 2);
    ck_assert_int_eq(raft_state(t.nodes[1].r), RAFT_STATE_FOLLOWER);
    ck_assert(!raft_conf_is_voter(raft_conf(t.nodes[1].r), 1));
    ck_assert(!raft_conf_is_voter(raft_conf(t.nodes[2].r), 1));
    tnet_isolate(&t, 1, true);
    tnet_elect(&t, 2);
    ck_assert_int_eq(tnet_propose(&t, 2, 9), 0);
    tnet_deliver_all(&t);
    ck_assert_uint_eq(raft_commit_index(t.nodes[2].r), raft_last_index(t.nodes[2].r));
    tnet_free(&t);
}
END_TEST

START_TEST(test_invalid_changes_are_refused_and_leave_the_configuration)
{
    struct tnet t;
    tnet_init(&t, 1, 0, 0, false, false);
    struct raft_conf_state cs;
    struct raft_conf_change rm = { .type = RAFT_CONF_REMOVE_NODE, .node_id = 1 };
    ck_assert_int_eq(raft_apply_conf_change(t.nodes[1].r, &rm, &cs), K_ECONFIG);
    ck_assert_uint_eq(cs.voters_n, 1);
    struct raft_conf_change zero = { .type = RAFT_CONF_ADD_NODE, .node_id = 0 };
    ck_assert_int_eq(raft_apply_conf_change(t.nodes[1].r, &zero, &cs), K_ECONFIG);
    struct raft_conf_change demote = { .type = RAFT_CONF_ADD_LEARNER_NODE, .node_id = 1 };
    ck_assert_int_eq(raft_apply_conf_change(t.nodes[1].r, &demote, &cs), K_ECONFIG);
    ck_assert(raft_conf_is_voter(raft_conf(t.nodes[1].r), 1));
    tnet_free(&t);
}
END_TEST

Suite *test_raft_membership_suite(void)
{
    Suite *s = suite_create("raft_membership");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_added_voter_catches_up_and_counts_toward_quorum);
    tcase_add_test(tc, test_removed_voter_no_longer_counts_toward_quorum);
    tcase_add_test(tc, test_learner_replicates_but_never_votes_or_counts);
    tcase_add_test(tc, test_promoted_learner_becomes_a_voter);
    tcase_add_test(tc, test_leader_refuses_a_second_change_until_the_first_is_applied);
    tcase_add_test(tc, test_new_leader_refuses_change_before_committing_in_its_term);
    tcase_add_test(tc, test_untimely_forwarded_change_becomes_an_empty_entry);
    tcase_add_test(tc, test_removed_leader_steps_down_and_the_rest_elect_a_leader);
    tcase_add_test(tc, test_invalid_changes_are_refused_and_leave_the_configuration);
    suite_add_tcase(s, tc);
    return s;
}
