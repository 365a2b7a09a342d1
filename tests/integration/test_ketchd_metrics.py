"""/metrics reports what the member really did (issue 6): every metric ketchd exports moves
with real traffic, under etcd's names where etcd has the same meaning."""
import re

import pytest

import harness


@pytest.fixture
def member(tmp_path):
    m = harness.new_member("ketchd", str(tmp_path), name="metrics")
    yield m
    harness.stop_all([m])


def scrape(m):
    r = harness.http(m.client_port, "GET", "/metrics")
    assert r.status == 200
    assert r.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    values = {}
    for line in r.body.decode().splitlines():
        if line.startswith("#") or not line:
            continue
        name, value = line.rsplit(" ", 1)
        values[name] = float(value)
    return values


def test_metrics_follow_writes_reads_and_watches(member):
    before = scrape(member)
    for i in range(20):
        r = harness.http(member.client_port, "PUT", f"/v2/keys/m/k{i}", {"value": "x" * 100})
        assert r.status == 201
    for i in range(5):
        assert harness.http(member.client_port, "GET", f"/v2/keys/m/k{i}").status == 200
    assert harness.http(member.client_port, "GET", "/v2/keys/m/k0?quorum=true").status == 200
    # One open watch, counted while it waits.
    watch = harness.Connection(member.client_port)
    watch.send(harness.build_request("GET", "/v2/keys/m/w?wait=true"))
    harness.wait_until(lambda: scrape(member)["etcd_debugging_store_watchers"] == 1, 10,
                       "the watcher to be counted")
    after = scrape(member)
    watch.close()

    assert after["etcd_server_has_leader"] == 1
    assert after["etcd_server_is_leader"] == 1
    assert after['etcd_debugging_store_writes_total{action="set"}'] == 20
    assert after['etcd_http_received_total{method="PUT"}'] == 20
    assert after["etcd_server_proposals_committed_total"] >= 20
    assert after["etcd_server_proposals_applied_total"] >= 20
    assert after["etcd_server_proposals_pending"] == 0
    assert after["etcd_disk_wal_fsync_duration_seconds_count"] > before.get(
        "etcd_disk_wal_fsync_duration_seconds_count", 0)
    assert after["ketch_server_apply_duration_seconds_count"] > 0
    assert after["etcd_disk_wal_write_bytes_total"] > 20 * 100
    assert after["ketch_store_keys"] == 21  # /m and its 20 files
    assert after["ketch_http_received_bytes_total"] > before["ketch_http_received_bytes_total"]
    assert after["ketch_http_sent_bytes_total"] > before["ketch_http_sent_bytes_total"] + 20 * 100
    reads = after['etcd_debugging_store_reads_total{action="get"}']
    assert reads >= 6
    assert after["etcd_debugging_store_watch_requests_total"] == 1
    # Histogram buckets are cumulative and end with the count.
    fsync = [v for k, v in after.items() if k.startswith("etcd_disk_wal_fsync_duration_seconds_bucket")]
    assert fsync == sorted(fsync)
    assert fsync[-1] == after["etcd_disk_wal_fsync_duration_seconds_count"]
    assert any(re.match(r'etcd_server_id\{server_id="[0-9a-f]+"\}', k) for k in after)
