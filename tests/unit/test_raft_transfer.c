/* Leadership transfer (thesis §3.10): the leader brings the transferee up to date, sends
 * MsgTimeoutNow, and refuses proposals meanwhile; a transfer that does not finish within an
 * election timeout is abandoned. */
#include "raft_test_util.h"

Suite *test_raft_transfer_suite(void);

START_TEST(test_transfer_to_up_to_date_follower_makes_it_leader)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, true, true);
    uint64_t term = tnet_elect(&t, 1);
    ck_assert_int_eq(raft_transfer_leader(t.nodes[1].r, 2), 0);
    tnet_ready(&t, 1);
    ck_assert_uint_eq(tnet_count(&t, RAFT_MSG_TIMEOUT_NOW, 1, 2), 1);
    tnet_deliver_all(&t);
    ck_assert_int_eq(raft_state(t.nodes[2].r), RAFT_STATE_LEADER);
    ck_assert_uint_eq(raft_term(t.nodes[2].r), term + 1);
    ck_assert_int_eq(raft_state(t.nodes[1].r), RAFT_STATE_FOLLOWER);
    ck_assert_uint_eq(raft_leader(t.nodes[1].r), 2);
    tnet_free(&t);
}
END_TEST

START_TEST(test_transfer_to_lagging_follower_waits_until_it_catches_up)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, true, true);
    tnet_elect(&t, 1);
    tnet_isolate(&t, 3, true);
    for (uint64_t v = 0; v < 10; v++)
        ck_assert_int_eq(tnet_propose(&t, 1, v), 0);
    tnet_deliver_all(&t);
    tnet_isolate(&t, 3, false);
    ck_assert_int_eq(raft_transfer_leader(t.nodes[1].r, 3), 0);
    tnet_ready(&t, 1);
    ck_assert_uint_eq(tnet_count(&t, RAFT_MSG_TIMEOUT_NOW, 1, 3), 0);
    for (int i = 0; i < 5 && raft_state(t.nodes[3].r) != RAFT_STATE_LEADER; i++) {
        tnet_tick(&t, 1, 1);
        tnet_deliver_all(&t);
    }
    ck_assert_int_eq(raft_state(t.nodes[3].r), RAFT_STATE_LEADER);
    ck_assert_uint_eq(raft_last_index(t.nodes[3].r), 13); /* 12 + its empty entry */
    tnet_free(&t);
}
END_TEST

START_TEST(test_proposals_during_transfer_fail_with_ebusy_until_it_is_abandoned)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, true, true);
    tnet_elect(&t, 1);
    tnet_isolate(&t, 2, true);
    ck_assert_int_eq(raft_transfer_leader(t.nodes[1].r, 2), 0);
    ck_assert_int_eq(tnet_propose(&t, 1, 1), K_EBUSY);
    for (int i = 0; i < 12; i++) {
        tnet_tick(&t, 1, 1);
        tnet_deliver_all(&t);
    }
    ck_assert_int_eq(raft_state(t.nodes[1].r), RAFT_STATE_LEADER);
    ck_assert_int_eq(tnet_propose(&t, 1, 1), 0);
    tnet_free(&t);
}
END_TEST

/* A follower asks the leader to hand leadership to itself. */
START_TEST(test_follower_request_for_leadership_is_forwarded)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, true, true);
    tnet_elect(&t, 1);
    ck_assert_int_eq(raft_transfer_leader(t.nodes[3].r, 3), 0);
    tnet_deliver_all(&t);
    ck_assert_int_eq(raft_state(t.nodes[3].r), RAFT_STATE_LEADER);
    ck_assert_int_eq(raft_transfer_leader(t.nodes[1].r, 9), K_ECONFIG);
    tnet_free(&t);
}
END_TEST

Suite *test_raft_transfer_suite(void)
{
    Suite *s = suite_create("raft_transfer");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_transfer_to_up_to_date_follower_makes_it_leader);
    tcase_add_test(tc, test_transfer_to_lagging_follower_waits_until_it_catches_up);
    tcase_add_test(tc, test_proposals_during_transfer_fail_with_ebusy_until_it_is_abandoned);
    tcase_add_test(tc, test_follower_request_for_leadership_is_forwarded);
    suite_add_tcase(s, tc);
    return s;
}
