/* /metrics text: etcd's names, cumulative histogram buckets, labels as Prometheus wants. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "server/metrics.h"

Suite *test_server_metrics_suite(void);

static struct srv_metrics m;
static struct k_buf out;

static void setup(void)
{
    srv_metrics_init(&m, 0x2e1259d415f2a040ull);
    k_buf_init(&out);
}

static void teardown(void)
{
    k_buf_free(&out);
}

static void assert_line(const char *line)
{
    char want[512];
    snprintf(want, sizeof(want), "\n%s\n", line);
    ck_assert_msg(strstr(out.data, want) != NULL, "missing line: %s", line);
}

START_TEST(test_metrics_use_etcd_names_and_values)
{
    m.has_leader = true;
    m.is_leader = true;
    m.leader_changes = 2;
    m.proposals_committed = 17;
    m.store_writes[SRV_STORE_WRITE_CAS] = 4;
    m.http_received[SRV_METHOD_PUT] = 9;
    srv_metrics_render(&m, "0.1.0", "3.4", &out);
    assert_line("etcd_server_has_leader 1");
    assert_line("etcd_server_is_leader 1");
    assert_line("etcd_server_leader_changes_seen_total 2");
    assert_line("etcd_server_proposals_committed_total 17");
    assert_line("etcd_server_id{server_id=\"2e1259d415f2a040\"} 1");
    assert_line("etcd_server_version{server_version=\"0.1.0\"} 1");
    assert_line("etcd_debugging_store_writes_total{action=\"compareAndSwap\"} 4");
    assert_line("etcd_http_received_total{method=\"PUT\"} 9");
    assert_line("# TYPE etcd_disk_wal_fsync_duration_seconds histogram");
    ck_assert(out.data[out.len - 1] == '\n');
}
END_TEST

START_TEST(test_histogram_buckets_are_cumulative_with_sum_and_count)
{
    srv_histogram_observe(&m.wal_fsync, 0.0005);
    srv_histogram_observe(&m.wal_fsync, 0.003);
    srv_histogram_observe(&m.wal_fsync, 0.003);
    srv_histogram_observe(&m.wal_fsync, 20.0);
    srv_metrics_render(&m, "0.1.0", "3.4", &out);
    assert_line("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 1");
    assert_line("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.002\"} 1");
    assert_line("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.004\"} 3");
    assert_line("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"8.192\"} 3");
    assert_line("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} 4");
    assert_line("etcd_disk_wal_fsync_duration_seconds_count 4");
    assert_line("etcd_disk_wal_fsync_duration_seconds_sum 20.0065");
}
END_TEST

START_TEST(test_http_histogram_and_failures_carry_labels)
{
    srv_histogram_observe(&m.http_success[SRV_METHOD_GET], 0.0007);
    srv_metrics_http_failed(&m, 404, SRV_METHOD_GET);
    srv_metrics_http_failed(&m, 404, SRV_METHOD_GET);
    srv_metrics_http_failed(&m, 412, SRV_METHOD_PUT);
    srv_metrics_render(&m, "0.1.0", "3.4", &out);
    assert_line("etcd_http_successful_duration_seconds_bucket{method=\"GET\",le=\"0.0005\"} 0");
    assert_line("etcd_http_successful_duration_seconds_bucket{method=\"GET\",le=\"0.001\"} 1");
    assert_line("etcd_http_successful_duration_seconds_count{method=\"GET\"} 1");
    assert_line("etcd_http_failed_total{code=\"404\",method=\"GET\"} 2");
    assert_line("etcd_http_failed_total{code=\"412\",method=\"PUT\"} 1");
    ck_assert_ptr_null(strstr(out.data, "method=\"POST\",le="));
}
END_TEST

Suite *test_server_metrics_suite(void)
{
    Suite *s = suite_create("server_metrics");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_metrics_use_etcd_names_and_values);
    tcase_add_test(tc, test_histogram_buckets_are_cumulative_with_sum_and_count);
    tcase_add_test(tc, test_http_histogram_and_failures_carry_labels);
    suite_add_tcase(s, tc);
    return s;
}
