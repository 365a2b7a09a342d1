/* The in-memory log: append with truncation, stable entry addresses (the Ready contract),
 * snapshots and compaction bounds. */
#include "raft_test_util.h"

Suite *test_raft_storage_mem_suite(void);

static void append_range(struct raft_storage_mem *s, uint64_t lo, uint64_t hi, uint64_t term)
{
    for (uint64_t i = lo; i <= hi; i++) {
        uint64_t v = i * 1000 + term;
        struct raft_entry e = {
            .term = term, .index = i, .data = (const uint8_t *)&v, .data_len = 8
        };
        ck_assert_int_eq(raft_storage_mem_append(s, &e, 1), 0);
    }
}

START_TEST(test_append_overwrites_conflicting_suffix)
{
    struct raft_storage_mem *s = raft_storage_mem_new();
    const struct raft_storage *st = raft_storage_mem_storage(s);
    append_range(s, 1, 10, 1);
    ck_assert_uint_eq(st->first_index(st->data), 1);
    ck_assert_uint_eq(st->last_index(st->data), 10);
    append_range(s, 6, 7, 2);
    ck_assert_uint_eq(st->last_index(st->data), 7);
    uint64_t term = 0;
    ck_assert_int_eq(st->term(st->data, 6, &term), 0);
    ck_assert_uint_eq(term, 2);
    ck_assert_int_eq(st->term(st->data, 8, &term), K_EUNAVAILABLE);
    struct raft_entry gap = { .term = 2, .index = 9 };
    ck_assert_int_eq(raft_storage_mem_append(s, &gap, 1), K_EUNAVAILABLE);
    raft_storage_mem_free(s);
}
END_TEST

/* Entries handed out keep their address while later entries are appended. */
START_TEST(test_entries_keep_their_address_across_appends)
{
    struct raft_storage_mem *s = raft_storage_mem_new();
    const struct raft_storage *st = raft_storage_mem_storage(s);
    append_range(s, 1, 100, 1);
    const struct raft_entry *e = NULL;
    size_t n = 0;
    ck_assert_int_eq(st->entries(st->data, 50, 101, &e, &n), 0);
    ck_assert_uint_eq(n, 51);
    const uint8_t *data = e[0].data;
    append_range(s, 101, 20000, 1);
    ck_assert_uint_eq(e[0].index, 50);
    uint64_t v;
    memcpy(&v, data, 8);
    ck_assert_uint_eq(v, 50 * 1000 + 1);
    /* Runs stop at chunk edges; callers loop. */
    ck_assert_int_eq(st->entries(st->data, 1000, 3000, &e, &n), 0);
    ck_assert_uint_ge(n, 1);
    ck_assert_uint_le(n, 2000);
    ck_assert_uint_eq(e[n - 1].index, 1000 + n - 1);
    raft_storage_mem_free(s);
}
END_TEST

START_TEST(test_compaction_needs_a_snapshot_covering_it)
{
    struct raft_storage_mem *s = raft_storage_mem_new();
    const struct raft_storage *st = raft_storage_mem_storage(s);
    append_range(s, 1, 5000, 3);
    struct raft_conf_state cs = { .voters = { 1 }, .voters_n = 1 };
    ck_assert_int_eq(raft_storage_mem_compact(s, 10), K_EUNAVAILABLE);
    ck_assert_int_eq(raft_storage_mem_create_snapshot(s, 4000, &cs), 0);
    ck_assert_int_eq(raft_storage_mem_create_snapshot(s, 3000, &cs), K_ECOMPACTED);
    ck_assert_int_eq(raft_storage_mem_create_snapshot(s, 6000, &cs), K_EUNAVAILABLE);
    ck_assert_int_eq(raft_storage_mem_compact(s, 3500), 0);
    ck_assert_int_eq(raft_storage_mem_compact(s, 3000), K_ECOMPACTED);
    ck_assert_uint_eq(st->first_index(st->data), 3501);
    uint64_t term = 0;
    ck_assert_int_eq(st->term(st->data, 3500, &term), 0); /* the compaction point */
    ck_assert_int_eq(st->term(st->data, 3499, &term), K_ECOMPACTED);
    const struct raft_entry *e = NULL;
    size_t n = 0;
    ck_assert_int_eq(st->entries(st->data, 3500, 3600, &e, &n), K_ECOMPACTED);
    ck_assert_int_eq(st->entries(st->data, 3501, 3502, &e, &n), 0);
    uint64_t v;
    memcpy(&v, e[0].data, 8);
    ck_assert_uint_eq(v, 3501 * 1000 + 3);
    struct raft_snapshot_meta meta;
    ck_assert_int_eq(st->snapshot(st->data, &meta), 0);
    ck_assert_uint_eq(meta.index, 4000);
    ck_assert_uint_eq(meta.term, 3);
    raft_storage_mem_free(s);
}
END_TEST

START_TEST(test_applied_snapshot_replaces_the_log)
{
    struct raft_storage_mem *s = raft_storage_mem_new();
    const struct raft_storage *st = raft_storage_mem_storage(s);
    append_range(s, 1, 10, 1);
    struct raft_snapshot_meta meta = { .index = 50,
                                       .term = 4,
                                       .conf = { .voters = { 1, 2 }, .voters_n = 2 } };
    ck_assert_int_eq(raft_storage_mem_apply_snapshot(s, &meta), 0);
    ck_assert_uint_eq(st->first_index(st->data), 51);
    ck_assert_uint_eq(st->last_index(st->data), 50);
    struct raft_hard_state hs;
    struct raft_conf_state cs;
    ck_assert_int_eq(st->initial_state(st->data, &hs, &cs), 0);
    ck_assert_uint_eq(cs.voters_n, 2);
    ck_assert_int_eq(raft_storage_mem_apply_snapshot(s, &meta), K_ECOMPACTED);
    append_range(s, 51, 52, 4);
    ck_assert_uint_eq(st->last_index(st->data), 52);
    raft_storage_mem_free(s);
}
END_TEST

Suite *test_raft_storage_mem_suite(void)
{
    Suite *s = suite_create("raft_storage_mem");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_append_overwrites_conflicting_suffix);
    tcase_add_test(tc, test_entries_keep_their_address_across_appends);
    tcase_add_test(tc, test_compaction_needs_a_snapshot_covering_it);
    tcase_add_test(tc, test_applied_snapshot_replaces_the_log);
    suite_add_tcase(s, tc);
    return s;
}
