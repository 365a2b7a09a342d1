/* ReadIndex (thesis §6.4): a read point is the commit index once the leader has committed an
 * entry of its term and a heartbeat round has confirmed a majority still follows it. */
#include "raft_test_util.h"

Suite *test_raft_readindex_suite(void);

START_TEST(test_leader_answers_read_only_after_a_heartbeat_quorum)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, true, true);
    tnet_elect(&t, 1);
    tnet_isolate(&t, 1, true);
    uint64_t ctx1 = 1001;
    ck_assert_int_eq(raft_read_index(t.nodes[1].r, &ctx1, sizeof(ctx1)), 0);
    tnet_deliver_all(&t);
    ck_assert_uint_eq(t.nodes[1].reads_n, 0);
    tnet_isolate(&t, 1, false);
    uint64_t ctx2 = 1002;
    ck_assert_int_eq(raft_read_index(t.nodes[1].r, &ctx2, sizeof(ctx2)), 0);
    tnet_deliver_all(&t);
    /* The second round's acks confirm both reads, in order. */
    ck_assert_uint_eq(t.nodes[1].reads_n, 2);
    uint64_t got;
    memcpy(&got, t.nodes[1].reads[0].context, 8);
    ck_assert_uint_eq(got, ctx1);
    memcpy(&got, t.nodes[1].reads[1].context, 8);
    ck_assert_uint_eq(got, ctx2);
    ck_assert_uint_eq(t.nodes[1].reads[1].index, raft_commit_index(t.nodes[1].r));
    tnet_free(&t);
}
END_TEST

START_TEST(test_new_leader_refuses_reads_before_committing_in_its_term)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, false, false);
    raft_campaign(t.nodes[1].r);
    tnet_deliver(&t, 2);
    ck_assert_int_eq(raft_state(t.nodes[1].r), RAFT_STATE_LEADER);
    uint64_t ctx = 7;
    ck_assert_int_eq(raft_read_index(t.nodes[1].r, &ctx, sizeof(ctx)), K_EBUSY);
    tnet_deliver_all(&t);
    ck_assert_int_eq(raft_read_index(t.nodes[1].r, &ctx, sizeof(ctx)), 0);
    tnet_free(&t);
}
END_TEST

START_TEST(test_follower_read_is_forwarded_and_answered_with_the_leaders_commit)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, true, true);
    tnet_elect(&t, 1);
    ck_assert_int_eq(tnet_propose(&t, 1, 3), 0);
    tnet_deliver_all(&t);
    uint64_t ctx = 55;
    ck_assert_int_eq(raft_read_index(t.nodes[3].r, &ctx, sizeof(ctx)), 0);
    tnet_deliver_all(&t);
    ck_assert_uint_eq(t.nodes[3].reads_n, 1);
    ck_assert_uint_eq(t.nodes[3].reads[0].index, 3);
    ck_assert_uint_eq(t.nodes[3].reads[0].context_len, 8);
    tnet_free(&t);
}
END_TEST

START_TEST(test_read_without_leader_or_with_long_context_is_refused)
{
    struct tnet t;
    tnet_init(&t, 3, 0, 0, true, true);
    uint64_t ctx = 1;
    ck_assert_int_eq(raft_read_index(t.nodes[1].r, &ctx, sizeof(ctx)), K_ENOLEADER);
    uint8_t big[RAFT_CONTEXT_BYTES_MAX + 1] = { 0 };
    ck_assert_int_eq(raft_read_index(t.nodes[1].r, big, sizeof(big)), K_ELIMIT);
    tnet_free(&t);
}
END_TEST

START_TEST(test_single_voter_answers_reads_at_once)
{
    struct tnet t;
    tnet_init(&t, 1, 0, 0, true, true);
    tnet_tick(&t, 1, 25);
    ck_assert_int_eq(raft_state(t.nodes[1].r), RAFT_STATE_LEADER);
    uint64_t ctx = 9;
    ck_assert_int_eq(raft_read_index(t.nodes[1].r, &ctx, sizeof(ctx)), 0);
    tnet_ready(&t, 1);
    ck_assert_uint_eq(t.nodes[1].reads_n, 1);
    ck_assert_uint_eq(t.nodes[1].reads[0].index, 2);
    tnet_free(&t);
}
END_TEST

Suite *test_raft_readindex_suite(void)
{
    Suite *s = suite_create("raft_readindex");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_leader_answers_read_only_after_a_heartbeat_quorum);
    tcase_add_test(tc, test_new_leader_refuses_reads_before_committing_in_its_term);
    tcase_add_test(tc, test_follower_read_is_forwarded_and_answered_with_the_leaders_commit);
    tcase_add_test(tc, test_read_without_leader_or_with_long_context_is_refused);
    tcase_add_test(tc, test_single_voter_answers_reads_at_once);
    suite_add_tcase(s, tc);
    return s;
}
