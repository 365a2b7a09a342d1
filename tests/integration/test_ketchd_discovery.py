"""Bootstrapping through etcd's discovery protocol (spec section 13).

The bootstrapped members are the candidate (KETCH_COMPAT_CANDIDATE: ketchd by default, or
real etcd to validate every expectation here); the discovery server is each of real etcd
and ketchd in turn. Checked: the registry a bootstrap leaves (keys = member ids in hex by
spec section 2's formula with the full discovery URL as the token, values name=peerURL),
the request sequence on the wire (through a recording proxy) against spec 13's table, the
cluster and member ids of the result, a restart ignoring the token, and the error cases:
size key missing, size key bad, cluster full under --discovery-fallback exit and under the
default fallback, duplicate id, an unreachable server (retried with backoff), SIGTERM while
waiting; and three members bootstrapping one working cluster that lists them all."""
import hashlib
import http.client
import http.server
import itertools
import os
import signal
import threading
import time
import urllib.parse

import pytest

import harness

KIND = harness.candidate_kind()
_tokens = itertools.count(1)


def member_id(peer_urls, token):
    """Spec 2: first 8 bytes (big-endian) of SHA-1(sorted peer URLs joined + token)."""
    return int.from_bytes(hashlib.sha1(("".join(sorted(peer_urls)) + token).encode())
                          .digest()[:8], "big")


def cluster_id(ids):
    b = b"".join(i.to_bytes(8, "big") for i in sorted(ids))
    return int.from_bytes(hashlib.sha1(b).digest()[:8], "big")


def test_formulas_reproduce_the_spec_examples():
    assert format(member_id(["http://127.0.0.1:23803"],
                            "http://127.0.0.1:23790/v2/keys/_etcd/registry/tok1"), "x") \
        == "45c3e41896673c46"
    assert format(cluster_id([0x185a7809e446a2ca, 0xd0687781355279a7, 0xde8ddafc330f64ee]),
                  "x") == "c7547941921519d6"


# ---------------------------------------------------------------------------------------
# Members started with --discovery instead of --initial-cluster


class DiscoveryMember(harness.Member):
    def __init__(self, kind, name, base_dir, discovery_url, extra_flags=(), ports=None):
        cport, pport = ports or harness.free_ports(2)
        super().__init__(kind, name, os.path.join(base_dir, f"{name}.data"), cport, pport,
                         extra_flags=extra_flags, log_dir=base_dir)
        self.discovery_url = discovery_url

    def argv(self):
        return [harness.binary_for(self.kind),
                f"--name={self.name}",
                f"--data-dir={self.data_dir}",
                f"--listen-client-urls={self.client_url}",
                f"--advertise-client-urls={self.client_url}",
                f"--listen-peer-urls={self.peer_url}",
                f"--initial-advertise-peer-urls={self.peer_url}",
                f"--discovery={self.discovery_url}",
                "--enable-v2=true"] + self.extra_flags

    def expected_id(self):
        return member_id([self.peer_url], self.discovery_url)

    def run_to_exit(self, timeout=30):
        """Starts the member and waits for it to exit by itself; returns the status."""
        self.spawn()
        status = self.wait_exit(timeout)
        assert status is not None, f"{self.name} still runs after {timeout}s:\n" \
                                   f"{self.log_tail()}"
        return status


# ---------------------------------------------------------------------------------------
# A recording proxy between the members and the discovery server


class RecordingProxy:
    """Forwards HTTP/1.1 (keep-alive, long polls) to the discovery server and records each
    request as it arrives, and its reply's status and X-Etcd-Index once answered."""

    def __init__(self, upstream_port, port=0, drop_first_put_reply=False):
        self.upstream_port = upstream_port
        self.drop_put = drop_first_put_reply  # forward the first PUT, then hang up
        self.records = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def forward(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                rec = {"method": self.command, "target": self.path, "body": body.decode(),
                       "content_type": self.headers.get("Content-Type"), "status": None,
                       "etcd_index": None}
                with proxy.lock:
                    proxy.records.append(rec)
                up = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=120)
                hdrs = {}
                if self.headers.get("Content-Type"):
                    hdrs["Content-Type"] = self.headers["Content-Type"]
                try:
                    up.request(self.command, self.path, body=body or None, headers=hdrs)
                    r = up.getresponse()
                    data = r.read()
                except OSError:
                    self.close_connection = True
                    return
                finally:
                    up.close()
                with proxy.lock:
                    rec["status"] = r.status
                    rec["etcd_index"] = r.getheader("X-Etcd-Index")
                    drop = proxy.drop_put and self.command == "PUT"
                    if drop:
                        proxy.drop_put = False
                if drop:  # the write happened; the client never hears of it
                    self.close_connection = True
                    return
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                         "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self):
        with self.lock:
            return [dict(r) for r in self.records]

    def wait_requests(self, n, timeout=20):
        return harness.wait_until(lambda: len(self.snapshot()) >= n and self.snapshot(),
                                  timeout, f"{n} requests through the recording proxy")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module", params=["etcd", "ketchd"])
def server(request):
    """A single-member discovery server of each kind."""
    tmp = harness.TempDir(f"ketch-discovery-server-{request.param}-")
    request.addfinalizer(tmp.remove)
    holder = {}
    request.addfinalizer(lambda: holder.get("m") and holder["m"].stop())
    holder["m"] = harness.new_member(request.param, tmp.path, name=f"disc{request.param}")
    return holder["m"]


@pytest.fixture
def workdir(request):
    tmp = harness.TempDir("ketch-discovery-")
    request.addfinalizer(tmp.remove)
    return tmp.path


@pytest.fixture
def members(request):
    """Members a test starts; all stopped at the end, even on failure."""
    started = []
    request.addfinalizer(lambda: harness.stop_all(started, timeout=5))
    return started


@pytest.fixture
def proxy(request, server):
    p = RecordingProxy(server.client_port)
    request.addfinalizer(p.close)
    return p


def new_token(server, size=None, port=None):
    """A fresh token path and its URL (through port, default the server's own); sets the
    size key when size is given."""
    path = f"/_etcd/registry/t{os.getpid()}x{next(_tokens)}"
    if size is not None:
        r = harness.http(server.client_port, "PUT", f"/v2/keys{path}/_config/size",
                         {"value": str(size)})
        assert r.status == 201, r
    return path, f"http://127.0.0.1:{port or server.client_port}/v2/keys{path}"


def registry(server, path):
    """{key's last segment: value} of the token dir, _config excluded, and the nodes."""
    r = harness.http(server.client_port, "GET", f"/v2/keys{path}")
    assert r.status == 200, r
    nodes = [n for n in r.json()["node"].get("nodes", []) if not n["key"].endswith("/_config")]
    return {n["key"].rsplit("/", 1)[1]: n["value"] for n in nodes}, nodes


def register_fake(server, path, name, port):
    """Registers a member that never starts, as a real one would register itself."""
    peer = f"http://127.0.0.1:{port}"
    mid = format(member_id([peer], "fake"), "x")
    r = harness.http(server.client_port, "PUT", f"/v2/keys{path}/{mid}?prevExist=false",
                     {"value": f"{name}={peer}"})
    assert r.status == 201, r
    return r.json()["node"]


def spawn(members, m):
    members.append(m)
    m.spawn()
    return m


# ---------------------------------------------------------------------------------------
# A size-1 bootstrap


def test_size_one_bootstrap_serves_and_leaves_the_spec_registry(server, workdir, members):
    path, url = new_token(server, size=1)
    m = spawn(members, DiscoveryMember(KIND, "d1", workdir, url))
    m.wait_ready(30)
    mid = m.expected_id()
    # The registry: one key, this member's id in hex, holding its --initial-cluster entry.
    reg, nodes = registry(server, path)
    assert reg == {format(mid, "x"): f"d1={m.peer_url}"}
    assert nodes[0]["createdIndex"] == nodes[0]["modifiedIndex"]
    # The member took that id, and the cluster id follows from it (spec 2).
    r = harness.http(m.client_port, "GET", "/v2/members")
    assert r.json() == {"members": [{"id": format(mid, "x"), "name": "d1",
                                     "peerURLs": [m.peer_url],
                                     "clientURLs": [m.client_url]}]}
    assert r.header("X-Etcd-Cluster-Id") == format(cluster_id([mid]), "x")
    assert m.identity_self() == format(mid, "x")
    # And it serves.
    r = harness.http(m.client_port, "PUT", "/v2/keys/after-discovery", {"value": "yes"})
    assert r.status == 201, r
    r = harness.http(m.client_port, "GET", "/v2/keys/after-discovery?quorum=true")
    assert r.status == 200 and r.json()["node"]["value"] == "yes"


def test_restart_with_data_ignores_the_token(server, workdir, members):
    path, url = new_token(server, size=1)
    m = spawn(members, DiscoveryMember(KIND, "d1", workdir, url))
    m.wait_ready(30)
    r = harness.http(m.client_port, "PUT", "/v2/keys/kept", {"value": "1"})
    assert r.status == 201
    assert m.stop() == (0 if KIND == "ketchd" else -signal.SIGTERM)
    # The discovery server is not asked again: a dead URL must not matter.
    dead = harness.free_ports(1)[0]
    m.discovery_url = f"http://127.0.0.1:{dead}/v2/keys/_etcd/registry/gone"
    m.start(30)
    assert m.identity_self() == format(member_id([m.peer_url], url), "x")
    assert harness.http(m.client_port, "GET", "/v2/keys/kept").json()["node"]["value"] == "1"
    assert len(registry(server, path)[0]) == 1


def test_trailing_slash_and_query_in_the_url_are_handled(server, workdir, members):
    path, url = new_token(server, size=1)
    given = url + "/?ignored=1"
    m = spawn(members, DiscoveryMember(KIND, "d1", workdir, given))
    m.wait_ready(30)
    # Requests go to the cleaned token path; the id is computed from the URL as given.
    reg, _ = registry(server, path)
    assert reg == {format(member_id([m.peer_url], given), "x"): f"d1={m.peer_url}"}
    assert m.identity_self() == format(member_id([m.peer_url], given), "x")


# ---------------------------------------------------------------------------------------
# The wire, step by step (spec 13's table)

GET_Q = "quorum=false&recursive=false&sorted=false"


def test_size_one_wire_sequence_is_spec_13s(server, proxy, workdir, members):
    path, url = new_token(server, size=1, port=proxy.port)
    m = spawn(members, DiscoveryMember(KIND, "d1", workdir, url))
    m.wait_ready(30)
    mid = format(m.expected_id(), "x")
    recs = proxy.snapshot()
    tok = f"/v2/keys{path}"
    created = int(registry(server, path)[1][0]["createdIndex"])
    want = [
        ("GET", f"{tok}/_config/size?{GET_Q}", ""),                                     # 1
        ("GET", f"{tok}?{GET_Q}", ""),                                                  # 2
        ("PUT", f"{tok}/{mid}?prevExist=false",
         "value=" + urllib.parse.quote(f"d1={m.peer_url}", safe="")),                   # 3
        ("GET", f"{tok}/{mid}?recursive=false&wait=true&waitIndex={created}", ""),      # 4
        ("GET", f"{tok}/_config/size?{GET_Q}", ""),                                     # 5
        ("GET", f"{tok}?{GET_Q}", ""),
    ]
    assert [(r["method"], r["target"], r["body"]) for r in recs] == want
    assert recs[2]["content_type"] == "application/x-www-form-urlencoded"
    assert [r["status"] for r in recs] == [200, 200, 201, 200, 200, 200]


def test_members_are_awaited_with_recursive_watches(server, proxy, workdir, members):
    """Size 3: the member registers, lists, then watches the token dir from the listing's
    X-Etcd-Index + 1, and again from each event's modifiedIndex + 1 (step 6)."""
    path, url = new_token(server, size=3, port=proxy.port)
    m = spawn(members, DiscoveryMember(KIND, "d1", workdir, url))
    tok = f"/v2/keys{path}"
    recs = proxy.wait_requests(7)  # steps 1-5 and the first watch
    listing_index = int(recs[5]["etcd_index"])
    assert (recs[6]["method"], recs[6]["target"]) == \
        ("GET", f"{tok}?recursive=true&wait=true&waitIndex={listing_index + 1}")
    fake_a = register_fake(server, path, "fa", 1)
    recs = proxy.wait_requests(8)
    assert recs[7]["target"] == \
        f"{tok}?recursive=true&wait=true&waitIndex={fake_a['modifiedIndex'] + 1}"
    register_fake(server, path, "fb", 2)
    # Three registered: the member now bootstraps with fa and fb, which never come; no more
    # discovery requests follow.
    harness.wait_until(lambda: proxy.snapshot()[7]["status"] == 200, 20,
                       "the second watch to return")
    assert len(proxy.snapshot()) == 8
    reg, _ = registry(server, path)
    assert reg[format(m.expected_id(), "x")] == f"d1={m.peer_url}"
    assert len(reg) == 3


@harness.ketchd_only_test  # etcd would take the event as a member (and fail)
def test_events_that_are_not_registrations_are_watched_past(server, proxy, workdir, members):
    path, url = new_token(server, size=2, port=proxy.port)
    m = spawn(members, DiscoveryMember(KIND, "d1", workdir, url))
    tok = f"/v2/keys{path}"
    proxy.wait_requests(7)
    # Not under _config: hidden keys never reach a watch of the dir (spec 5.4).
    r = harness.http(server.client_port, "PUT", f"/v2/keys{path}/notes/n1", {"value": "x"})
    assert r.status == 201
    recs = proxy.wait_requests(8)
    assert recs[7]["target"] == \
        f"{tok}?recursive=true&wait=true&waitIndex={r.json()['node']['modifiedIndex'] + 1}"
    register_fake(server, path, "fa", 1)
    harness.wait_until(lambda: "found all 2 members" in m.stderr_text(), 20,
                       "the member to find both")
    assert f"found all 2 members: d1={m.peer_url},fa=http://127.0.0.1:1" in m.stderr_text()


@harness.ketchd_only_test  # etcd gives up on a failed registration
def test_a_registration_lost_in_transit_is_retried_and_recognised(server, workdir, members,
                                                                  request):
    """The PUT reaches the server but its reply is lost: the retry gets 105, finds its own
    value under its key, and carries on (etcd would exit on the lost reply)."""
    p = RecordingProxy(server.client_port, drop_first_put_reply=True)
    request.addfinalizer(p.close)
    path, url = new_token(server, size=1, port=p.port)
    m = spawn(members, DiscoveryMember(KIND, "d1", workdir, url))
    m.wait_ready(30)
    err = m.stderr_text()
    assert "retrying in 2 s (retry 1)" in err, err
    assert "the registration sent before the failure went through" in err, err
    puts = [r for r in p.snapshot() if r["method"] == "PUT"]
    assert [r["status"] for r in puts] == [201, 412]
    assert registry(server, path)[0] == {format(m.expected_id(), "x"): f"d1={m.peer_url}"}


# ---------------------------------------------------------------------------------------
# Errors


def test_missing_size_key_names_the_missing_path(server, workdir, members):
    path, url = new_token(server)  # no size key, no token dir
    m = DiscoveryMember(KIND, "d1", workdir, url)
    members.append(m)
    assert m.run_to_exit() == 1
    err = m.stderr_text()
    assert "100: Key not found" in err and f"({path})" in err, err
    assert harness.http(server.client_port, "GET", f"/v2/keys{path}").status == 404


def test_bad_size_key_is_refused(server, workdir, members):
    path, url = new_token(server)
    r = harness.http(server.client_port, "PUT", f"/v2/keys{path}/_config/size",
                     {"value": "three"})
    assert r.status == 201
    m = DiscoveryMember(KIND, "d1", workdir, url)
    members.append(m)
    assert m.run_to_exit() == 1
    assert "discovery: size key is bad" in m.stderr_text()
    assert registry(server, path)[0] == {}


def test_full_cluster_with_fallback_exit_exits_without_registering(server, workdir, members):
    path, url = new_token(server, size=1)
    register_fake(server, path, "first", 1)
    m = DiscoveryMember(KIND, "d1", workdir, url, extra_flags=["--discovery-fallback=exit"])
    members.append(m)
    assert m.run_to_exit() == 1
    assert "discovery: cluster is full" in m.stderr_text()
    assert len(registry(server, path)[0]) == 1


@harness.ketchd_only_test  # real etcd starts a v2 proxy instead
def test_full_cluster_with_default_fallback_says_proxy_is_not_implemented(server, workdir,
                                                                          members):
    path, url = new_token(server, size=1)
    register_fake(server, path, "first", 1)
    m = DiscoveryMember(KIND, "d1", workdir, url)
    members.append(m)
    assert m.run_to_exit() == 1
    err = m.stderr_text()
    assert "discovery: cluster is full" in err, err
    assert "--discovery-fallback" in err and "proxy" in err and "not implement" in err, err
    assert len(registry(server, path)[0]) == 1


def test_registering_twice_is_a_duplicate_id(server, workdir, members):
    """A member that lost its data dir while waiting cannot register again (etcd's
    behaviour: the token is spent for this member)."""
    path, url = new_token(server, size=2)
    m = spawn(members, DiscoveryMember(KIND, "d1", workdir, url))
    mid = format(m.expected_id(), "x")
    harness.wait_until(lambda: mid in registry(server, path)[0], 20, "the registration")
    m.stop()
    again = DiscoveryMember(KIND, "d1", workdir + "/again", url,
                            ports=(m.client_port, m.peer_port))
    os.makedirs(workdir + "/again")
    members.append(again)
    assert again.run_to_exit() == 1
    # etcd explains its ErrDuplicateID in etcdmain's words.
    want = ("discovery: found duplicate id" if KIND == "ketchd" else
            'member "d1" has previously registered with discovery service token')
    assert want in again.stderr_text(), again.log_tail()


@harness.ketchd_only_test  # the log lines checked are ketchd's
def test_unreachable_server_is_retried_with_backoff_until_it_answers(server, workdir,
                                                                     members, request):
    path, _ = new_token(server, size=1)
    port = harness.free_ports(1)[0]
    url = f"http://127.0.0.1:{port}/v2/keys{path}"
    m = spawn(members, DiscoveryMember(KIND, "d1", workdir, url))
    harness.wait_until(lambda: "retrying in 2 s (retry 1)" in m.stderr_text(), 10,
                       "the first retry to be logged")
    assert "Couldn't connect to server" in m.stderr_text()
    # The server appears on that port (a proxy to the real one): the next retry finds it.
    late = RecordingProxy(server.client_port, port=port)
    request.addfinalizer(late.close)
    m.wait_ready(30)
    assert "retrying in 8 s" not in m.stderr_text()
    assert format(m.expected_id(), "x") in registry(server, path)[0]


@harness.ketchd_only_test  # etcd dies by the re-raised signal instead
def test_sigterm_while_waiting_stops_promptly_and_cleanly(server, workdir, members):
    path, url = new_token(server, size=2)
    m = spawn(members, DiscoveryMember(KIND, "d1", workdir, url))
    harness.wait_until(lambda: "waiting for more" in m.stderr_text(), 20,
                       "the member to wait for peers")
    t0 = time.monotonic()
    m.proc.send_signal(signal.SIGTERM)
    assert m.wait_exit(5) == 0
    assert time.monotonic() - t0 < 2.0
    assert "stopped by SIGTERM before the cluster formed" in m.stderr_text()
    # No identity was written: the next start runs discovery again (and is refused, as
    # the id is registered already).
    assert not os.path.exists(os.path.join(m.data_dir, "ketch", "identity"))


def test_discovery_srv_is_refused_clearly(workdir):
    m = DiscoveryMember(KIND, "d1", workdir, "http://127.0.0.1:1/v2/keys/x",
                        extra_flags=["--discovery-srv=example.com"])
    if KIND == "etcd":
        pytest.skip("etcd supports --discovery-srv (it fails on DNS instead)")
    assert m.run_to_exit() == 2
    assert "--discovery-srv is not supported by ketchd" in m.stderr_text()


# ---------------------------------------------------------------------------------------
# Three members


@pytest.fixture(scope="module")
def three(request, server):
    """Three candidate members bootstrapped through one size-3 token on server."""
    tmp = harness.TempDir("ketch-discovery-three-")
    request.addfinalizer(tmp.remove)
    started = []
    request.addfinalizer(lambda: harness.stop_all(started, timeout=5))
    path, url = new_token(server, size=3)
    ms = [spawn(started, DiscoveryMember(KIND, f"d{i}", tmp.path, url)) for i in range(3)]
    for m in ms:
        m.wait_ready(60)
    return path, ms


def test_three_members_bootstrap_one_working_cluster(server, three):
    path, ms = three
    ids = {m.name: m.expected_id() for m in ms}
    reg, nodes = registry(server, path)
    assert reg == {format(ids[m.name], "x"): f"{m.name}={m.peer_url}" for m in ms}
    assert len({n["createdIndex"] for n in nodes}) == 3
    cid = format(cluster_id(ids.values()), "x")
    for m in ms:
        assert m.identity_self() == format(ids[m.name], "x")
        r = harness.http(m.client_port, "GET", "/v2/keys/")
        assert r.header("X-Etcd-Cluster-Id") == cid
    r = harness.http(ms[0].client_port, "PUT", "/v2/keys/three", {"value": "3"})
    assert r.status == 201, r
    for m in ms:
        r = harness.http(m.client_port, "GET", "/v2/keys/three?quorum=true")
        assert r.status == 200 and r.json()["node"]["value"] == "3"
    leaders = {harness.http(m.client_port, "GET", "/v2/stats/self").json()["leaderInfo"]
               ["leader"] for m in ms}
    assert len(leaders) == 1 and leaders <= {format(i, "x") for i in ids.values()}


def test_three_members_list_each_other(server, three):
    _, ms = three
    want = sorted(({"id": format(m.expected_id(), "x"), "name": m.name,
                    "peerURLs": [m.peer_url], "clientURLs": [m.client_url]} for m in ms),
                  key=lambda x: int(x["id"], 16))
    for m in ms:
        r = harness.http(m.client_port, "GET", "/v2/members")
        assert r.json() == {"members": want}
