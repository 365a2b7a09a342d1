"""Multi-member clusters of etcd or ketchd for the fault tests, on top of harness.Member.

A Cluster starts N members with a static --initial-cluster, finds the leader, kills
(-9), pauses (SIGSTOP), resumes and restarts members, adds members at run time (POST
/v2/members, then the new process with --initial-cluster-state existing) and removes them
(DELETE /v2/members/<id>), and stops every process it started, by PID, from a pytest
finalizer even when the test fails (new_cluster below).

Network faults. With netns=True every member runs in a network namespace of its own
(`ip netns exec`), with two interfaces:
  - "peer", a veth whose other end is a port of a bridge in a hub namespace: all raft
    traffic goes over it. A partition moves bridge ports to separate bridges, so packets
    between the sides are silently dropped (no RST, no ICMP): established connections
    stall and new ones fail, as on a real network split, for etcd's rafthttp streams and
    pipelines and for ketchd's one-way connections alike.
  - "client", a veth to a bridge in the test's own namespace that carries an address of
    the same subnet: the test reaches every member's client URL whatever the partition,
    so it can watch an isolated leader refuse writes and quorum reads.
Everything is named with a random run id and removed at the end (namespaces, then the
one bridge and veth ends in the test's namespace). Without CAP_NET_ADMIN (ip netns add
fails) new_cluster(netns=True) skips the test and says why; it never passes silently.
"""
import ipaddress
import json
import os
import random
import secrets
import subprocess
import threading
import time

import pytest

import harness

PEER_PORT_IN_NETNS = 2380
CLIENT_PORT_IN_NETNS = 2379
PEER_SUBNET = "172.30.0."  # exists only inside this run's member namespaces
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


class NetnsUnavailable(Exception):
    pass


def _ip(*args, check=True):
    r = subprocess.run(["ip"] + list(args), capture_output=True, timeout=20)
    if check and r.returncode != 0:
        raise NetnsUnavailable(f"`ip {' '.join(args)}` failed ({r.returncode}): "
                               f"{r.stderr.decode(errors='replace').strip()}")
    return r


def _pick_client_subnet():
    """A 10.a.b.0/24 that no address or route of this namespace touches."""
    used = _ip("-4", "-o", "addr").stdout.decode() + _ip("-4", "route").stdout.decode()
    nets = []
    for word in used.split():
        try:
            nets.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            pass
    rng = random.Random(secrets.randbits(32))
    for _ in range(200):
        cand = ipaddress.ip_network(f"10.{rng.randint(160, 250)}.{rng.randint(1, 254)}.0/24")
        if not any(cand.overlaps(n) for n in nets):
            return cand
    raise NetnsUnavailable("no free 10.x.y.0/24 subnet for the client bridge")


NETNS_RECORDS = "/run/ketch-test-netns"  # <run id> -> PID of the test that made it


def _sweep_abandoned():
    """Removes the namespaces and links of runs whose test process is gone (killed before
    its finalizer ran); a run records its PID when it starts."""
    try:
        rids = os.listdir(NETNS_RECORDS)
    except OSError:
        return
    for rid in rids:
        path = os.path.join(NETNS_RECORDS, rid)
        try:
            pid = int(open(path).read().strip() or "0")
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            continue
        prefix = f"kt{rid}"
        for line in _ip("-o", "link", "show", check=False).stdout.decode().splitlines():
            name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
            if name.startswith(prefix):
                _ip("link", "del", name, check=False)
        for line in _ip("netns", "list", check=False).stdout.decode().splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith(prefix):
                _ip("netns", "del", name, check=False)
        try:
            os.unlink(path)
        except OSError:
            pass


class Network:
    """The namespaces, veths and bridges of one cluster (see the module docstring)."""

    def __init__(self):
        self.rid = secrets.token_hex(3)
        self.record = None
        self.hub = f"kt{self.rid}hub"
        self.client_bridge = f"kt{self.rid}c"
        self.namespaces = []  # created, to delete
        self.bridge_made = False
        self.slots = {}  # slot -> namespace name
        self.groups = None  # current partition, for reports
        self.subnet = None

    def setup(self):
        try:
            _ip("netns", "add", self.hub)
        except NetnsUnavailable as e:
            raise NetnsUnavailable(f"network namespaces are not available here (needs root "
                                   f"or CAP_NET_ADMIN and CAP_SYS_ADMIN): {e}") from None
        self.namespaces.append(self.hub)
        _sweep_abandoned()
        os.makedirs(NETNS_RECORDS, exist_ok=True)
        self.record = os.path.join(NETNS_RECORDS, self.rid)
        with open(self.record, "w") as f:
            f.write(str(os.getpid()))
        _ip("-n", self.hub, "link", "set", "lo", "up")
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        self.subnet = _pick_client_subnet()
        _ip("link", "add", self.client_bridge, "type", "bridge")
        self.bridge_made = True
        gw = f"{self.subnet.network_address + 1}/{self.subnet.prefixlen}"
        _ip("addr", "add", gw, "dev", self.client_bridge)
        _ip("link", "set", self.client_bridge, "up")

    def add_slot(self, slot):
        """A member namespace; returns (namespace, client address, peer address)."""
        ns = f"kt{self.rid}m{slot}"
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        self.slots[slot] = ns
        _ip("-n", ns, "link", "set", "lo", "up")
        peer_ip = f"{PEER_SUBNET}{10 + slot}"
        client_ip = str(self.subnet.network_address + 10 + slot)
        # peer side: "peer" in the member namespace, hp<slot> on the hub's bridge
        _ip("-n", self.hub, "link", "add", f"hp{slot}", "type", "veth", "peer", "name", "peer",
            "netns", ns)
        _ip("-n", self.hub, "link", "set", f"hp{slot}", "master", "br0")
        _ip("-n", self.hub, "link", "set", f"hp{slot}", "up")
        _ip("-n", ns, "addr", "add", f"{peer_ip}/24", "dev", "peer")
        _ip("-n", ns, "link", "set", "peer", "up")
        # client side: "client" in the member namespace, kt<rid>c<slot> on our bridge
        host_end = f"kt{self.rid}c{slot}"
        _ip("link", "add", host_end, "type", "veth", "peer", "name", "client", "netns", ns)
        _ip("link", "set", host_end, "master", self.client_bridge)
        _ip("link", "set", host_end, "up")
        _ip("-n", ns, "addr", "add", f"{client_ip}/{self.subnet.prefixlen}", "dev", "client")
        _ip("-n", ns, "link", "set", "client", "up")
        return ns, client_ip, peer_ip

    def partition(self, groups):
        """Splits the peer network: slots of one group reach each other only. Slots in
        no group are cut off alone."""
        placed = {s for g in groups for s in g}
        groups = [list(g) for g in groups] + [[s] for s in self.slots if s not in placed]
        for gi, g in enumerate(groups):
            br = f"br{gi}"
            if gi > 0 and _ip("-n", self.hub, "link", "show", br, check=False).returncode:
                _ip("-n", self.hub, "link", "add", br, "type", "bridge")
                _ip("-n", self.hub, "link", "set", br, "up")
            for s in g:
                _ip("-n", self.hub, "link", "set", f"hp{s}", "master", br)
        self.groups = groups

    def heal(self):
        for s in self.slots:
            _ip("-n", self.hub, "link", "set", f"hp{s}", "master", "br0")
        self.groups = None

    def cleanup(self):
        errors = []
        # the veth ends here first: a namespace outlives `ip netns del` while the kernel
        # still holds references to it (closing sockets), and its veths with it
        for slot in list(self.slots):
            r = _ip("link", "del", f"kt{self.rid}c{slot}", check=False)
            if r.returncode and b"Cannot find device" not in r.stderr:
                errors.append(r.stderr.decode(errors="replace"))
        self.slots = {}
        for ns in reversed(self.namespaces):
            r = _ip("netns", "del", ns, check=False)
            if r.returncode:
                errors.append(r.stderr.decode(errors="replace"))
        self.namespaces = []
        if self.bridge_made:
            r = _ip("link", "del", self.client_bridge, check=False)
            if r.returncode:
                errors.append(r.stderr.decode(errors="replace"))
            self.bridge_made = False
        if errors:
            raise AssertionError(f"network cleanup failed: {errors}")
        if self.record:
            os.unlink(self.record)
            self.record = None


class Cluster:
    """Members of one kind; members[] are the current members (a removed member leaves
    it, every process ever started stays in started[] for the final stop)."""

    def __init__(self, kind, base_dir, token="tok-faults", extra_flags=(), netns=False):
        self.kind = kind
        self.base_dir = base_dir
        self.token = token
        self.extra_flags = list(extra_flags)
        self.net = Network() if netns else None
        self.members = []
        self.started = []
        self.ids = {}  # name -> member id (hex), once known
        self.next_slot = 0
        self.paused = set()

    # -- building members

    def _member(self, name, state):
        slot = self.next_slot
        self.next_slot += 1
        data = os.path.join(self.base_dir, f"{name}.data")
        if self.net:
            ns, cip, pip = self.net.add_slot(slot)
            m = harness.Member(self.kind, name, data, CLIENT_PORT_IN_NETNS, PEER_PORT_IN_NETNS,
                               initial_cluster_state=state, token=self.token,
                               extra_flags=self.extra_flags, log_dir=self.base_dir,
                               host=cip, peer_host=pip, netns=ns)
        else:
            cport, pport = harness.free_ports(2)
            m = harness.Member(self.kind, name, data, cport, pport,
                               initial_cluster_state=state, token=self.token,
                               extra_flags=self.extra_flags, log_dir=self.base_dir)
        m.slot = slot
        return m

    def start(self, n, timeout=60.0):
        if self.net:
            self.net.setup()
        ms = [self._member(f"m{i}", "new") for i in range(n)]
        ic = ",".join(f"{m.name}={m.peer_url}" for m in ms)
        for m in ms:
            m.initial_cluster = ic
        self.members = ms
        for m in ms:
            self.started.append(m)
            m.spawn()
        for m in ms:
            m.wait_ready(timeout)
        for m in ms:
            self.ids[m.name] = m.identity_self()
        return self

    def stop(self):
        """Stops every process started (by PID), prints their log tails (pytest shows them
        for a failed test), removes the network. A sanitizer report in any member's log
        (ASan, UBSan, LeakSanitizer: the ketchd under test is built with them) fails the
        test here even if everything else passed: it is printed whole."""
        reports = []
        try:
            harness.stop_all(self.started, timeout=3)
        finally:
            for m in self.started:
                for n in range(1, m.starts + 1):
                    path = os.path.join(m.log_dir, f"{m.name}.{m.kind}.{n}.err")
                    try:
                        text = open(path, errors="replace").read()
                    except OSError:
                        continue
                    at = min((text.find(mark) for mark in SANITIZER_MARKS if mark in text),
                             default=-1)
                    if at >= 0:
                        start = text.rfind("\n", 0, max(0, at - 2000)) + 1
                        reports.append(f"{m.name} (start {n}, {path}):\n{text[start:]}")
                print(f"--- {m.kind} {m.name} ({m.last_stderr}), last lines:\n{m.log_tail(15)}")
            if self.net:
                self.net.cleanup()
        assert not reports, "sanitizer reports:\n" + "\n\n".join(reports)

    # -- looking at members

    def member_by_id(self, mid):
        for m in self.members:
            if self.ids.get(m.name) == mid:
                return m
        return None

    def live(self):
        """Members running and not paused."""
        return [m for m in self.members if m.alive() and m.name not in self.paused]

    def stats_self(self, m, timeout=2.0):
        return m.http("GET", "/v2/stats/self", timeout=timeout).json()

    def leader(self, among=None, timeout=30.0):
        """Waits until the given members (default: all live ones) agree on a leader among
        them that reports itself leader; returns that Member."""
        among = among if among is not None else self.live()
        names = {m.name for m in among}

        seen = {}

        def agreed():
            seen.clear()
            for m in among:
                try:
                    st = self.stats_self(m)
                except (OSError, EOFError, ValueError) as e:
                    seen[m.name] = repr(e)
                    return None
                seen[m.name] = (st["state"], st["leaderInfo"]["leader"])
            lids = {lid for _, lid in seen.values()}
            if len(lids) != 1:
                return None
            lm = self.member_by_id(lids.pop())
            if lm is None or lm.name not in names or seen[lm.name][0] != "StateLeader":
                return None
            return lm
        try:
            return harness.wait_until(agreed, timeout,
                                      f"members {sorted(names)} to agree on a leader")
        except AssertionError as e:
            raise AssertionError(f"{e}; last seen (state, leader) by member: {seen}; ids: "
                                 f"{self.ids}") from None

    def followers(self, leader):
        return [m for m in self.members if m is not leader]

    def index(self, m, timeout=5.0):
        """The member's X-Etcd-Index (its store index), from a local GET of the root."""
        r = m.http("GET", "/v2/keys/", timeout=timeout)
        return int(r.header("X-Etcd-Index"))

    def wait_converged(self, members=None, timeout=60.0):
        """Waits until the members report one X-Etcd-Index twice in a row; returns it."""
        members = members if members is not None else self.live()
        last = [None]

        def same():
            idx = {self.index(m) for m in members}
            if len(idx) != 1:
                last[0] = None
                return None
            (i,) = idx
            if last[0] == i:
                return i
            last[0] = i
            return None
        return harness.wait_until(
            same, timeout, f"members {[m.name for m in members]} to report one X-Etcd-Index",
            interval=0.1)

    def tree(self, m, prefix, quorum=False, timeout=10.0):
        """{key: value} of every leaf under prefix as member m serves it."""
        q = "&quorum=true" if quorum else ""
        r = m.http("GET", f"/v2/keys{prefix}?recursive=true&sorted=true{q}", timeout=timeout)
        if r.status == 404:
            return {}
        assert r.status == 200, f"{m.name}: {r}"
        out = {}

        def walk(n):
            if n.get("dir"):
                for c in n.get("nodes", []):
                    walk(c)
            else:
                out[n["key"]] = n["value"]
        walk(r.json()["node"])
        return out

    # -- faults

    def kill9(self, m):
        m.kill9()
        self.paused.discard(m.name)

    def pause(self, m):
        m.pause()
        self.paused.add(m.name)

    def resume(self, m):
        m.resume()
        self.paused.discard(m.name)

    def restart(self, m, timeout=60.0):
        """Starts a stopped or killed member again on its data dir (stops it first if it
        runs)."""
        if m.alive():
            m.resume()
            m.stop()
        self.paused.discard(m.name)
        m.start(timeout)
        return m

    def partition(self, groups):
        """groups: lists of Members; members in no group are cut off alone."""
        assert self.net, "partitions need Cluster(netns=True)"
        self.net.partition([[m.slot for m in g] for g in groups])

    def isolate(self, m):
        self.partition([[m], [x for x in self.members if x is not m]])

    def heal(self):
        assert self.net
        self.net.heal()

    # -- membership

    def add_member(self, name, via=None, timeout=60.0):
        """POST /v2/members on a live member, then starts the new process with the
        current members plus itself and --initial-cluster-state existing."""
        via = via or self.leader()
        m = self.prepare_member(name)
        r = reconfigure(lambda: via.http("POST", "/v2/members",
                                         json.dumps({"peerURLs": [m.peer_url]}),
                                         {"Content-Type": "application/json"}, timeout=15))
        assert r.status == 201, f"member add via {via.name}: {r}"
        new_id = r.json()["id"]
        listed = via.http("GET", "/v2/members").json()["members"]
        parts = []
        for x in listed:
            nm = x["name"] or (name if x["id"] == new_id else None)
            assert nm, f"a member without a name that is not the new one: {x}"
            parts += [f"{nm}={u}" for u in x["peerURLs"]]
        self.launch_member(m, ",".join(parts), timeout)
        assert self.ids[name] == new_id, (self.ids[name], new_id)
        return m

    def prepare_member(self, name):
        """A member to be added (addresses chosen, not started, not yet in members)."""
        return self._member(name, "existing")

    def launch_member(self, m, initial_cluster, timeout=60.0):
        """Starts a prepared member, already added to the cluster, with initial_cluster."""
        m.initial_cluster = initial_cluster
        self.members.append(m)
        self.started.append(m)
        m.start(timeout)
        self.ids[m.name] = m.identity_self()
        return m

    def remove_member(self, m, via=None):
        """DELETE /v2/members/<id> through another live member; m leaves members[]."""
        via = via or next(x for x in self.live() if x is not m)
        r = reconfigure(lambda: via.http("DELETE", f"/v2/members/{self.ids[m.name]}",
                                         timeout=15))
        assert r.status == 204, f"member remove of {m.name} via {via.name}: {r}"
        self.members.remove(m)
        return r


def reconfigure(attempt, timeout=30.0):
    """Runs attempt() (a membership request) until its answer is not a bare 500. etcd's
    strict reconfiguration check refuses a change with a 500 while fewer members than
    a quorum have been connected for 5 s -- just after a start or a join (spec 7.2) --
    and a member that joined must be waited for the same way by any client."""
    last = []

    def done():
        r = attempt()
        last[:] = [r]
        return r if r.status != 500 else None
    try:
        return harness.wait_until(done, timeout, "a membership change to be accepted",
                                  interval=0.2)
    except AssertionError as e:
        raise AssertionError(f"{e}; last answer: {last}") from None


def new_cluster(request, n=3, kind=None, netns=False, **kw):
    """A started Cluster stopped by a finalizer of the requesting test. With netns=True
    and no namespaces available, skips the test with the reason."""
    tmp = harness.TempDir("ketch-cl-")
    request.addfinalizer(tmp.remove)
    c = Cluster(kind or harness.candidate_kind(), tmp.path, netns=netns, **kw)
    request.addfinalizer(c.stop)  # runs before tmp.remove
    try:
        c.start(n)
    except NetnsUnavailable as e:
        pytest.skip(f"partition tests need network namespaces: {e}")
    return c


def put(m, key, value, timeout=10.0, **params):
    """PUT /v2/keys<key>; returns the Response (raises OSError/EOFError/ValueError when no
    answer came)."""
    body = {"value": value}
    body.update(params)
    return m.http("PUT", f"/v2/keys{key}", body, timeout=timeout)


class Writers:
    """A steady write load: `threads` writers, writer t starting on targets()[t % n] and
    moving to the next target after a failure. Each PUT creates a new key
    <prefix>/w<t>-<i> with value "<t>-<i>"; a 2xx puts it in acked (key -> (value,
    monotonic time sent, time answered)); no answer, a 5xx or a broken connection puts it
    in ambiguous (it may or may not have been applied). Any other answer is an error the
    test reports.
    targets is a function, so membership tests can change the members written to."""

    def __init__(self, targets, prefix, threads=3, timeout=10.0, max_writes=200000):
        self.targets = targets
        self.prefix = prefix
        self.timeout = timeout
        self.max_writes = max_writes
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.acked = {}
        self.ambiguous = {}
        self.errors = []
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True,
                                         name=f"writer-{t}") for t in range(threads)]

    def _run(self, t):
        i = 0
        target = t
        conn = conn_member = None
        while not self.stop_event.is_set() and i < self.max_writes:
            members = self.targets()
            if not members:
                self.stop_event.wait(0.05)
                continue
            m = members[target % len(members)]
            key, val = f"{self.prefix}/w{t}-{i}", f"{t}-{i}"
            i += 1
            invoked = time.monotonic()
            try:
                if conn is None or conn_member is not m:
                    if conn is not None:
                        conn.close()
                    conn = None
                    conn = harness.Connection(m.client_port, host=m.host, timeout=self.timeout)
                    conn_member = m
                r = conn.request("PUT", f"/v2/keys{key}", {"value": val})
            except (OSError, EOFError, ValueError) as e:
                if conn is not None:
                    conn.close()
                conn = None
                with self.lock:
                    self.ambiguous[key] = (val, f"{m.name}: {e!r}")
                target += 1
                self.stop_event.wait(0.02)  # a refused connection fails at once: pace it
                continue
            now = time.monotonic()
            with self.lock:
                if r.status in (200, 201):
                    self.acked[key] = (val, invoked, now)
                elif r.status >= 500:
                    self.ambiguous[key] = (val, f"{m.name}: {r.status} {r.body[:120]!r}")
                else:
                    self.errors.append(f"{m.name} answered PUT {key}: {r}")
            if r.status >= 300:
                target += 1
                if r.header("Connection") == "close":
                    conn.close()
                    conn = None
        if conn is not None:
            conn.close()

    def start(self):
        for th in self.threads:
            th.start()
        return self

    def stop(self, timeout=30.0):
        self.stop_event.set()
        for th in self.threads:
            th.join(timeout)
            assert not th.is_alive(), f"{th.name} did not stop within {timeout}s"
        assert not self.errors, self.errors[:10]

    def count(self):
        with self.lock:
            return len(self.acked)

    def count_invoked_after(self, t):
        with self.lock:
            return sum(1 for _, inv, _ in self.acked.values() if inv > t)

    def wait_acked(self, n, timeout, what="acknowledged writes"):
        """Waits until at least n writes have been acknowledged in all."""
        return harness.wait_until(lambda: self.count() >= n, timeout, f"{n} {what}",
                                  interval=0.05)

    def check_member(self, cluster, m):
        """Every acknowledged write is on m with its value; every key m has under the
        prefix was written by us (acknowledged, or ambiguous)."""
        got = cluster.tree(m, self.prefix)
        missing = [k for k, (v, _, _) in self.acked.items() if got.get(k) != v]
        phantom = [k for k in got if k not in self.acked and
                   (k not in self.ambiguous or self.ambiguous[k][0] != got[k])]
        assert not missing, (f"{m.name} lost {len(missing)} of {len(self.acked)} "
                             f"acknowledged writes, e.g. "
                             f"{[(k, self.acked[k][0], got.get(k)) for k in missing[:5]]}")
        assert not phantom, f"{m.name} has writes nobody made: {phantom[:5]}"
        return got
