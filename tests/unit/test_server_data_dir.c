/* The data directory: identity kept across restarts, one process per directory, and
 * refusal of directories that are not this member's (issue 6: "a data dir of another
 * cluster or member stops start-up with one line saying what to fix"). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fsutil.h"
#include "server/data_dir.h"

Suite *test_server_data_dir_suite(void);

static char dir[256];
static char err[1024];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ketch-datadir-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    ck_assert_int_eq(k_remove_tree(dir), 0);
}

static void touch_wal_segment(const struct srv_data_dir *d)
{
    ck_assert_int_eq(k_mkdir_p(d->wal_dir, 0700), 0);
    char path[4300];
    snprintf(path, sizeof(path), "%s/0000000000000001-0000000000000001.wal", d->wal_dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
}

START_TEST(test_identity_survives_a_restart)
{
    struct srv_data_dir d;
    ck_assert_int_eq(srv_data_dir_open(&d, dir, NULL, "n1", err, sizeof(err)), 0);
    ck_assert(!d.has_identity);
    struct srv_identity id = { .member_id = 0x2e1259d415f2a040ull, .cluster_id = 0x1234 };
    snprintf(id.name, sizeof(id.name), "n1");
    ck_assert_int_eq(srv_data_dir_save_identity(&d, &id), 0);
    touch_wal_segment(&d);
    srv_data_dir_close(&d);

    ck_assert_int_eq(srv_data_dir_open(&d, dir, NULL, "n1", err, sizeof(err)), 0);
    ck_assert(d.has_identity);
    ck_assert_str_eq(d.identity.name, "n1");
    ck_assert_uint_eq(d.identity.member_id, 0x2e1259d415f2a040ull);
    ck_assert_uint_eq(d.identity.cluster_id, 0x1234);
    srv_data_dir_close(&d);
}
END_TEST

START_TEST(test_second_process_on_same_dir_is_refused)
{
    struct srv_data_dir a;
    struct srv_data_dir b;
    ck_assert_int_eq(srv_data_dir_open(&a, dir, NULL, "n1", err, sizeof(err)), 0);
    ck_assert_int_eq(srv_data_dir_open(&b, dir, NULL, "n1", err, sizeof(err)), K_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "in use by another ketchd"));
    srv_data_dir_close(&a);
    ck_assert_int_eq(srv_data_dir_open(&b, dir, NULL, "n1", err, sizeof(err)), 0);
    srv_data_dir_close(&b);
}
END_TEST

START_TEST(test_dir_of_another_member_is_refused)
{
    struct srv_data_dir d;
    ck_assert_int_eq(srv_data_dir_open(&d, dir, NULL, "n1", err, sizeof(err)), 0);
    struct srv_identity id = { .member_id = 1, .cluster_id = 2 };
    snprintf(id.name, sizeof(id.name), "n1");
    ck_assert_int_eq(srv_data_dir_save_identity(&d, &id), 0);
    touch_wal_segment(&d);
    srv_data_dir_close(&d);
    ck_assert_int_eq(srv_data_dir_open(&d, dir, NULL, "n2", err, sizeof(err)), K_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "belongs to member \"n1\", not \"n2\""));
    ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

START_TEST(test_etcd_data_dir_is_refused)
{
    char member[300];
    snprintf(member, sizeof(member), "%s/member/wal", dir);
    ck_assert_int_eq(k_mkdir_p(member, 0700), 0);
    struct srv_data_dir d;
    ck_assert_int_eq(srv_data_dir_open(&d, dir, NULL, "n1", err, sizeof(err)), K_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "holds etcd's data"));
}
END_TEST

START_TEST(test_identity_without_wal_is_refused)
{
    struct srv_data_dir d;
    ck_assert_int_eq(srv_data_dir_open(&d, dir, NULL, "n1", err, sizeof(err)), 0);
    struct srv_identity id = { .member_id = 1, .cluster_id = 2 };
    snprintf(id.name, sizeof(id.name), "n1");
    ck_assert_int_eq(srv_data_dir_save_identity(&d, &id), 0);
    srv_data_dir_close(&d);
    ck_assert_int_eq(srv_data_dir_open(&d, dir, NULL, "n1", err, sizeof(err)), K_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(err, "no WAL"));
}
END_TEST

START_TEST(test_damaged_identity_is_refused)
{
    struct srv_data_dir d;
    ck_assert_int_eq(srv_data_dir_open(&d, dir, NULL, "n1", err, sizeof(err)), 0);
    srv_data_dir_close(&d);
    char path[300];
    snprintf(path, sizeof(path), "%s/ketch/identity", dir);
    FILE *f = fopen(path, "w");
    fputs("ketch-identity 1\nname=n1\nmember_id=zz\ncluster_id=1\n", f);
    fclose(f);
    ck_assert_int_eq(srv_data_dir_open(&d, dir, NULL, "n1", err, sizeof(err)), K_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(err, "damaged"));
}
END_TEST

Suite *test_server_data_dir_suite(void)
{
    Suite *s = suite_create("server_data_dir");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_identity_survives_a_restart);
    tcase_add_test(tc, test_second_process_on_same_dir_is_refused);
    tcase_add_test(tc, test_dir_of_another_member_is_refused);
    tcase_add_test(tc, test_etcd_data_dir_is_refused);
    tcase_add_test(tc, test_identity_without_wal_is_refused);
    tcase_add_test(tc, test_damaged_identity_is_refused);
    suite_add_tcase(s, tc);
    return s;
}
