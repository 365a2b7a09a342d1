/* raft/codec.c against protobuf-c's code generated from proto/raft.proto: our bytes equal
 * protobuf-c's for the same values and each side decodes the other's, so the hand-written
 * codec and the schema cannot drift apart. Also: truncated and random input is refused,
 * never trusted. */
#include "proto/raft.pb-c.h"
#include "raft_test_util.h"

Suite *test_raft_codec_suite(void);

static const uint8_t payload_a[] = "set /foo bar";
static const uint8_t payload_b[] = { 0, 1, 2, 3, 255 };

static void sample_message(struct raft_message *m, struct raft_entry *ents)
{
    memset(m, 0, sizeof(*m));
    ents[0] = (struct raft_entry){ .term = 7,
                                   .index = 300,
                                   .type = RAFT_ENTRY_NORMAL,
                                   .data = payload_a,
                                   .data_len = sizeof(payload_a) - 1 };
    ents[1] = (struct raft_entry){ .term = 7,
                                   .index = 301,
                                   .type = RAFT_ENTRY_CONF_CHANGE,
                                   .data = payload_b,
                                   .data_len = sizeof(payload_b) };
    ents[2] = (struct raft_entry){ .term = 8, .index = 302 }; /* empty: a leader's no-op */
    m->type = RAFT_MSG_APP;
    m->to = 2;
    m->from = 1;
    m->term = 8;
    m->log_term = 7;
    m->index = 299;
    m->commit = 298;
    m->entries = ents;
    m->entries_n = 3;
    m->reject = true;
    m->reject_hint = 1ull << 40;
    memcpy(m->context, "ctx!", 4);
    m->context_len = 4;
}

START_TEST(test_message_bytes_equal_protobuf_c_and_decode_both_ways)
{
    struct raft_entry ents[3];
    struct raft_message m;
    sample_message(&m, ents);
    uint8_t ours[512];
    size_t len = 0;
    ck_assert_int_eq(raft_message_encode(&m, ours, sizeof(ours), &len), 0);
    ck_assert_uint_eq(len, raft_message_encoded_bytes(&m));

    Raftpb__Entry pe[3];
    Raftpb__Entry *pep[3];
    for (int i = 0; i < 3; i++) {
        raftpb__entry__init(&pe[i]);
        pe[i].term = ents[i].term;
        pe[i].index = ents[i].index;
        pe[i].type = (Raftpb__EntryType)ents[i].type;
        pe[i].data.len = ents[i].data_len;
        pe[i].data.data = (uint8_t *)ents[i].data;
        pep[i] = &pe[i];
    }
    Raftpb__Message pm = RAFTPB__MESSAGE__INIT;
    pm.type = RAFTPB__MESSAGE_TYPE__MSG_APP;
    pm.to = 2;
    pm.from = 1;
    pm.term = 8;
    pm.log_term = 7;
    pm.index = 299;
    pm.commit = 298;
    pm.n_entries = 3;
    pm.entries = pep;
    pm.reject = 1;
    pm.reject_hint = 1ull << 40;
    pm.context.len = 4;
    pm.context.data = (uint8_t *)"ctx!";
    uint8_t theirs[512];
    size_t tlen = raftpb__message__pack(&pm, theirs);
    ck_assert_uint_eq(tlen, len);
    ck_assert_int_eq(memcmp(ours, theirs, len), 0);

    Raftpb__Message *u = raftpb__message__unpack(NULL, len, ours);
    ck_assert_ptr_nonnull(u);
    ck_assert_uint_eq(u->n_entries, 3);
    ck_assert_uint_eq(u->entries[1]->index, 301);
    ck_assert_int_eq(u->entries[1]->type, RAFTPB__ENTRY_TYPE__ENTRY_CONF_CHANGE);
    ck_assert_uint_eq(u->reject_hint, 1ull << 40);
    raftpb__message__free_unpacked(u, NULL);

    struct raft_message d;
    struct raft_entry dents[4];
    ck_assert_int_eq(raft_message_decode(theirs, tlen, &d, dents, 4), 0);
    ck_assert_int_eq(d.type, RAFT_MSG_APP);
    ck_assert_uint_eq(d.term, 8);
    ck_assert_uint_eq(d.entries_n, 3);
    ck_assert_uint_eq(d.entries[0].data_len, sizeof(payload_a) - 1);
    ck_assert_int_eq(memcmp(d.entries[0].data, payload_a, d.entries[0].data_len), 0);
    ck_assert(d.entries[0].data >= theirs && d.entries[0].data < theirs + tlen); /* no copy */
    ck_assert_int_eq(d.entries[1].type, RAFT_ENTRY_CONF_CHANGE);
    ck_assert_ptr_null(d.entries[2].data);
    ck_assert(d.reject);
    ck_assert_uint_eq(d.context_len, 4);
    ck_assert_int_eq(raft_message_decode(theirs, tlen, &d, dents, 2), K_ELIMIT);
}
END_TEST

START_TEST(test_snapshot_message_carries_metadata_like_protobuf_c)
{
    struct raft_message m = { .type = RAFT_MSG_SNAP, .to = 3, .from = 1, .term = 4 };
    m.snapshot.index = 1000;
    m.snapshot.term = 3;
    m.snapshot.conf.voters_n = 3;
    m.snapshot.conf.voters[0] = 1;
    m.snapshot.conf.voters[1] = 2;
    m.snapshot.conf.voters[2] = 300;
    m.snapshot.conf.learners_n = 1;
    m.snapshot.conf.learners[0] = 4;
    uint8_t ours[256];
    size_t len = 0;
    ck_assert_int_eq(raft_message_encode(&m, ours, sizeof(ours), &len), 0);

    uint64_t voters[3] = { 1, 2, 300 };
    uint64_t learners[1] = { 4 };
    Raftpb__ConfState cs = RAFTPB__CONF_STATE__INIT;
    cs.n_voters = 3;
    cs.voters = voters;
    cs.n_learners = 1;
    cs.learners = learners;
    Raftpb__SnapshotMetadata md = RAFTPB__SNAPSHOT_METADATA__INIT;
    md.conf_state = &cs;
    md.index = 1000;
    md.term = 3;
    Raftpb__Snapshot sn = RAFTPB__SNAPSHOT__INIT;
    sn.metadata = &md;
    Raftpb__Message pm = RAFTPB__MESSAGE__INIT;
    pm.type = RAFTPB__MESSAGE_TYPE__MSG_SNAP;
    pm.to = 3;
    pm.from = 1;
    pm.term = 4;
    pm.snapshot = &sn;
    uint8_t theirs[256];
    size_t tlen = raftpb__message__pack(&pm, theirs);
    ck_assert_uint_eq(tlen, len);
    ck_assert_int_eq(memcmp(ours, theirs, len), 0);

    struct raft_message d;
    ck_assert_int_eq(raft_message_decode(ours, len, &d, NULL, 0), 0);
    ck_assert_uint_eq(d.snapshot.index, 1000);
    ck_assert_uint_eq(d.snapshot.conf.voters_n, 3);
    ck_assert_uint_eq(d.snapshot.conf.voters[2], 300);
    ck_assert_uint_eq(d.snapshot.conf.learners[0], 4);

    uint8_t mbuf[128];
    size_t mlen = 0;
    ck_assert_int_eq(raft_snapshot_meta_encode(&m.snapshot, mbuf, sizeof(mbuf), &mlen), 0);
    ck_assert_uint_eq(mlen, raftpb__snapshot_metadata__get_packed_size(&md));
    struct raft_snapshot_meta back;
    ck_assert_int_eq(raft_snapshot_meta_decode(mbuf, mlen, &back), 0);
    ck_assert_uint_eq(back.term, 3);
    ck_assert_uint_eq(back.conf.learners_n, 1);
}
END_TEST

START_TEST(test_entry_hard_state_and_conf_change_match_protobuf_c)
{
    struct raft_hard_state hs = { .term = 5, .vote = 2, .commit = 123456789 };
    uint8_t buf[64];
    size_t len = 0;
    ck_assert_int_eq(raft_hard_state_encode(&hs, buf, sizeof(buf), &len), 0);
    Raftpb__HardState *phs = raftpb__hard_state__unpack(NULL, len, buf);
    ck_assert_ptr_nonnull(phs);
    ck_assert_uint_eq(phs->commit, 123456789);
    ck_assert_uint_eq(phs->vote, 2);
    raftpb__hard_state__free_unpacked(phs, NULL);
    struct raft_hard_state back;
    ck_assert_int_eq(raft_hard_state_decode(buf, len, &back), 0);
    ck_assert_uint_eq(back.term, 5);

    struct raft_entry e = { .term = 3,
                            .index = 1ull << 33,
                            .type = RAFT_ENTRY_CONF_CHANGE,
                            .data = payload_a,
                            .data_len = sizeof(payload_a) - 1 };
    uint8_t ebuf[64];
    ck_assert_int_eq(raft_entry_encode(&e, ebuf, sizeof(ebuf), &len), 0);
    ck_assert_uint_eq(len, raft_entry_encoded_bytes(&e));
    Raftpb__Entry *pe = raftpb__entry__unpack(NULL, len, ebuf);
    ck_assert_ptr_nonnull(pe);
    ck_assert_uint_eq(pe->index, 1ull << 33);
    ck_assert_int_eq(pe->type, RAFTPB__ENTRY_TYPE__ENTRY_CONF_CHANGE);
    ck_assert_uint_eq(pe->data.len, sizeof(payload_a) - 1);
    uint8_t etheirs[64];
    ck_assert_uint_eq(raftpb__entry__pack(pe, etheirs), len);
    ck_assert_int_eq(memcmp(ebuf, etheirs, len), 0);
    raftpb__entry__free_unpacked(pe, NULL);
    struct raft_entry eback;
    ck_assert_int_eq(raft_entry_decode(etheirs, len, &eback), 0);
    ck_assert_uint_eq(eback.term, 3);
    ck_assert_int_eq(memcmp(eback.data, payload_a, eback.data_len), 0);

    static const char ctx[] = "{\"name\":\"n4\",\"peerURLs\":[\"http://10.0.0.4:2380\"]}";
    struct raft_conf_change cc = { .type = RAFT_CONF_ADD_LEARNER_NODE,
                                   .node_id = 4,
                                   .id = 77,
                                   .context = (const uint8_t *)ctx,
                                   .context_len = sizeof(ctx) - 1 };
    uint8_t cbuf[RAFT_CONF_CHANGE_BYTES_MAX];
    ck_assert_int_eq(raft_conf_change_encode(&cc, cbuf, sizeof(cbuf), &len), 0);
    Raftpb__ConfChange pcc = RAFTPB__CONF_CHANGE__INIT;
    pcc.type = RAFTPB__CONF_CHANGE_TYPE__CONF_CHANGE_ADD_LEARNER_NODE;
    pcc.node_id = 4;
    pcc.id = 77;
    pcc.context.len = sizeof(ctx) - 1;
    pcc.context.data = (uint8_t *)ctx;
    uint8_t theirs[RAFT_CONF_CHANGE_BYTES_MAX];
    size_t tlen = raftpb__conf_change__pack(&pcc, theirs);
    ck_assert_uint_eq(tlen, len);
    ck_assert_int_eq(memcmp(cbuf, theirs, len), 0);
    struct raft_conf_change d;
    ck_assert_int_eq(raft_conf_change_decode(theirs, tlen, &d), 0);
    ck_assert_int_eq(d.type, RAFT_CONF_ADD_LEARNER_NODE);
    ck_assert_uint_eq(d.context_len, sizeof(ctx) - 1);
    ck_assert_int_eq(memcmp(d.context, ctx, d.context_len), 0);
    uint8_t small[8];
    ck_assert_int_eq(raft_conf_change_encode(&cc, small, sizeof(small), &len), K_ELIMIT);
}
END_TEST

/* Untrusted input: every truncation of a valid message either decodes or is K_ECORRUPT
 * (never read past the end: ASan watches), and random bytes never crash the decoder. */
START_TEST(test_truncated_and_random_input_is_refused_not_trusted)
{
    struct raft_entry ents[3];
    struct raft_message m;
    sample_message(&m, ents);
    uint8_t buf[512];
    size_t len = 0;
    ck_assert_int_eq(raft_message_encode(&m, buf, sizeof(buf), &len), 0);
    struct raft_message d;
    struct raft_entry dents[8];
    size_t corrupt = 0;
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = k_xmalloc(cut ? cut : 1);
        memcpy(copy, buf, cut);
        int rc = raft_message_decode(copy, cut, &d, dents, 8);
        ck_assert(rc == 0 || rc == K_ECORRUPT);
        corrupt += rc == K_ECORRUPT;
        free(copy);
    }
    ck_assert_uint_gt(corrupt, len / 2);
    struct k_prng p;
    k_prng_init(&p, 4);
    for (int i = 0; i < 20000; i++) {
        size_t n = (size_t)k_prng_below(&p, 64);
        uint8_t *r = k_xmalloc(n ? n : 1);
        for (size_t j = 0; j < n; j++)
            r[j] = (uint8_t)k_prng_next(&p);
        int rc = raft_message_decode(r, n, &d, dents, 8);
        ck_assert(rc == 0 || rc == K_ECORRUPT || rc == K_ELIMIT);
        free(r);
    }
    ck_assert_int_eq(raft_message_encode(&m, buf, len - 1, &len), K_ELIMIT);
}
END_TEST

Suite *test_raft_codec_suite(void)
{
    Suite *s = suite_create("raft_codec");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_message_bytes_equal_protobuf_c_and_decode_both_ways);
    tcase_add_test(tc, test_snapshot_message_carries_metadata_like_protobuf_c);
    tcase_add_test(tc, test_entry_hard_state_and_conf_change_match_protobuf_c);
    tcase_add_test(tc, test_truncated_and_random_input_is_refused_not_trusted);
    suite_add_tcase(s, tc);
    return s;
}
