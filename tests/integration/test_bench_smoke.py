"""ketch-bench smoke run: every workload for about a second against one real member, asserting
only that requests succeed and that the JSON report is well formed (never a speed: benchmarks
are not tests, DESIGN.md).

The member is chosen by KETCH_BENCH_TARGET: "etcd" (Debian's etcd 3.4 with
--enable-v2=true) or "ketchd" (the default: KETCH_BIN_DIR/ketchd, given
exactly etcd's flags)."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from conftest import bin_dir

TARGET = os.environ.get("KETCH_BENCH_TARGET", "ketchd")
QUANTILES = ("count", "min", "mean", "p50", "p90", "p99", "p999", "max")


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def member_binary():
    if TARGET == "etcd":
        path = shutil.which("etcd") or "/usr/bin/etcd"
    elif TARGET == "ketchd":
        path = str(bin_dir() / "ketchd")
    else:
        raise AssertionError(f"KETCH_BENCH_TARGET must be etcd or ketchd, not {TARGET!r}")
    assert os.access(path, os.X_OK), f"{path} is not installed or built"
    return path


def put_ok(url):
    req = urllib.request.Request(url + "/v2/keys/_smoke/ready", data=b"value=1", method="PUT")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=1) as r:
            return 200 <= r.status < 300
    except (OSError, urllib.error.URLError):
        return False


@pytest.fixture(scope="module")
def member():
    """One member on free ports in a temp dir; yields its client URL."""
    client_port, peer_port = free_ports(2)
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    tmp = tempfile.mkdtemp(prefix="ketch-bench-smoke-")
    argv = [member_binary(), "--name", "s1", "--data-dir", os.path.join(tmp, "data"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"s1={peer}", "--initial-cluster-state", "new",
            "--enable-v2=true"]
    log = open(os.path.join(tmp, "member.log"), "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not put_ok(client):
            assert proc.poll() is None, f"{TARGET} exited: {open(log.name).read()[-2000:]}"
            assert time.monotonic() < deadline, f"{TARGET} did not accept a write in 30 s"
            time.sleep(0.05)
        yield client
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def bench(ketch_bin, member, tmp_path, *args):
    out = tmp_path / "report.json"
    argv = [ketch_bin("ketch-bench"), *args, "--endpoints", member, "--json", str(out)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{argv}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "latency" in r.stdout and "errors:" in r.stdout, r.stdout
    report = json.loads(out.read_text())
    check_report_shape(report)
    return report


def check_report_shape(rep):
    assert rep["tool"] == "ketch-bench"
    for key in ("measured_s", "throughput_rps", "ok_rps"):
        assert isinstance(rep[key], (int, float)) and rep[key] >= 0, key
    for key in ("requests", "ok", "contention", "errors", "bytes_sent", "bytes_recv"):
        assert isinstance(rep[key], int) and rep[key] >= 0, key
    assert rep["ok"] + rep["contention"] <= rep["requests"]
    assert isinstance(rep["errors_by_status"], dict)
    assert isinstance(rep["errors_by_transport"], dict)
    assert sum(rep["errors_by_status"].values()) + sum(rep["errors_by_transport"].values()) \
        == rep["errors"]
    lat = rep["latency_ms"]
    assert set(QUANTILES) <= set(lat)
    assert lat["count"] == 0 or lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] \
        <= lat["p999"] <= lat["max"]
    assert isinstance(rep["config"]["endpoints"], list)


@pytest.mark.parametrize("args", [
    ["put", "--connections", "4", "--pipeline", "2"],
    ["get", "--connections", "4", "--keys", "50"],
    ["get", "--connections", "2", "--keys", "50", "--quorum"],
    ["mixed", "--connections", "4", "--keys", "50", "--key-dist", "zipf"],
    # Bodies over 2048 bytes come chunked (spec §1.3): the parser must take both framings.
    ["get", "--connections", "2", "--keys", "20", "--value-size", "3000", "--prefix", "big"],
], ids=["put", "get", "get-quorum", "mixed", "get-chunked"])
def test_request_workload_succeeds_and_reports_json(ketch_bin, member, tmp_path, args):
    rep = bench(ketch_bin, member, tmp_path, *args, "--warmup", "200ms", "--duration", "1s")
    assert rep["workload"] == args[0]
    assert rep["ok"] > 0
    assert rep["errors"] == 0, rep["errors_by_status"]
    assert rep["measured_s"] > 0.5


def test_open_loop_never_sends_ahead_of_its_schedule(ketch_bin, member, tmp_path):
    rep = bench(ketch_bin, member, tmp_path, "put", "--rate", "200", "--connections", "4",
                "--warmup", "200ms", "--duration", "1s")
    assert rep["config"]["rate"] == 200
    assert rep["ok"] > 0
    assert rep["errors"] == 0, rep["errors_by_status"]
    # Nothing is sent before it is due: requests measured are at most those due since the
    # schedule began with the warm-up (a backlog from the warm-up may be sent in the window).
    assert rep["requests"] <= 200 * (0.2 + rep["measured_s"]) + 1
    assert rep["rate_unsent"] >= 0


def test_fixed_request_count_is_exact(ketch_bin, member, tmp_path):
    rep = bench(ketch_bin, member, tmp_path, "put", "--connections", "3", "--requests", "300",
                "--warmup", "0s", "--key-dist", "sequential")
    assert rep["requests"] == 300
    assert rep["ok"] == 300


def test_cas_counts_contention_apart_from_errors(ketch_bin, member, tmp_path):
    rep = bench(ketch_bin, member, tmp_path, "cas", "--connections", "4", "--cas-keys", "1",
                "--warmup", "200ms", "--duration", "1s")
    assert rep["ok"] > 0
    assert rep["errors"] == 0, rep["errors_by_status"]
    assert "412" not in rep["errors_by_status"]
    assert rep["ok"] + rep["contention"] == rep["requests"]


@pytest.mark.parametrize("mode", [[], ["--stream"], ["--recursive"]],
                         ids=["long-poll", "stream", "subtree"])
def test_watch_delivers_every_event_to_every_watcher(ketch_bin, member, tmp_path, mode):
    rep = bench(ketch_bin, member, tmp_path, "watch", "--watchers", "20", "--writes", "30",
                "--duration", "60s", *mode)
    w = rep["watch"]
    assert w["events_expected"] == 600
    assert w["events_seen"] == 600
    assert w["all_seen_ms"] is not None and w["all_seen_ms"] >= 0
    assert w["delivery_ms"]["count"] == 600
    assert rep["ok"] == 30


def test_unreachable_endpoint_counts_transport_errors(ketch_bin, tmp_path):
    (port,) = free_ports(1)
    out = tmp_path / "report.json"
    r = subprocess.run([ketch_bin("ketch-bench"), "put", "--endpoints",
                        f"http://127.0.0.1:{port}", "--connections", "2", "--warmup", "0s",
                        "--duration", "300ms", "--json", str(out), "--quiet"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    rep = json.loads(out.read_text())
    check_report_shape(rep)
    assert rep["ok"] == 0
    assert rep["errors_by_transport"].get("ECONNREFUSED", 0) > 0


def test_request_count_run_against_dead_endpoint_ends(ketch_bin, tmp_path):
    (port,) = free_ports(1)
    out = tmp_path / "report.json"
    r = subprocess.run([ketch_bin("ketch-bench"), "put", "--endpoints",
                        f"http://127.0.0.1:{port}", "--requests", "10", "--warmup", "0s",
                        "--timeout", "200ms", "--json", str(out), "--quiet"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "no answer" in r.stderr
    rep = json.loads(out.read_text())
    check_report_shape(rep)
    assert rep["ok"] == 0 and rep["errors"] > 0


def test_compare_runs_single_member_rows_and_writes_json(ketch_bin, tmp_path):
    """bench/compare end to end, as short as it goes: rows run, figures land in the JSON."""
    ketch_bin("ketch-bench")  # asserts it is built
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = tmp_path / "compare.json"
    env = dict(os.environ, KETCH_BIN_DIR=str(bin_dir()))
    r = subprocess.run(["/usr/bin/python3", os.path.join(root, "bench", "compare"), "--quick",
                        "--single", "--systems", TARGET, "--reps", "1", "--warmup", "0.1",
                        "--duration", "0.5", "--load-keys", "300", "--workdir",
                        str(tmp_path / "work"), "--json", str(out)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["error"] is None
    assert doc["cluster_size"] == 1
    rows = {(x["workload"], x["system"]): x for x in doc["results"]}
    for row in ("rss-idle", "put-256B-c1", "put-256B-c64", "get-c64", "load-300-keys",
                "startup"):
        assert (row, TARGET) in rows, sorted(rows)
    assert rows[("put-256B-c64", TARGET)]["figures"]["ok_rps"]["median"] > 0
    assert rows[("load-300-keys", TARGET)]["figures"]["rss_mb"]["median"] > 0
    assert "| put-256B-c64" in r.stdout
    assert list((tmp_path / "work").iterdir()) == []  # cluster dirs go after a good run


def test_bad_usage_exits_1_with_one_line(ketch_bin):
    r = subprocess.run([ketch_bin("ketch-bench"), "put", "--connections", "0"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert r.stderr.startswith("ketch-bench: bad value for --connections")
    assert r.stderr.count("\n") == 1
