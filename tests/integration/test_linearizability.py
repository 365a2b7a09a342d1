"""Clients writing, compare-and-swapping, deleting and reading (?quorum=true) a few keys
on every member of a 3-member candidate cluster (KETCH_COMPAT_CANDIDATE, default ketchd;
validated against real etcd) while members crash, pause and get partitioned: the history
of every key must be linearizable (linearizability.py).

Only quorum reads are recorded: a default GET is served from the member's local store
(serializable, spec 4.5) and may lag. An operation without a definite answer (no answer
within the client timeout, a broken connection, a 5xx) is ambiguous: it may have taken
effect at any time after it was sent, or never. A connection refused is not: the request
never left. The run prints its seed; KETCH_SEED replays the same choices (the timing of
a real cluster does not replay)."""
import os
import random
import threading
import time

import cluster
import harness
from linearizability import Op, check_history

KEYS = ["/lin/a", "/lin/b", "/lin/c"]
CLIENTS = 5
CLIENT_TIMEOUT = 10.0  # etcd itself answers 500 "request timed out" after 7 s
PACE = (0.01, 0.05)  # seconds between a client's operations: ~40 ops/s per client


class Client(threading.Thread):
    def __init__(self, cid, members, seed, stop):
        super().__init__(daemon=True, name=f"client-{cid}")
        self.cid = cid
        self.members = members
        self.rng = random.Random(seed * 1000 + cid)
        self.stop_event = stop
        self.ops = []
        self.errors = []
        self.seq = 0
        self.seen = {}  # key -> last value this client saw there
        self.target = cid

    def choose(self):
        key = self.rng.choice(KEYS)
        x = self.rng.random()
        if x < 0.40:
            return key, "read", None, None
        if x < 0.45:
            return key, "delete", None, None
        self.seq += 1
        value = f"{self.cid}.{self.seq}"
        if x < 0.75 or self.seen.get(key) is None:
            return key, "write", value, None
        return key, "cas", value, self.seen[key]

    def outcome(self, kind, r):
        """(known, out) from a response; raises AssertionError on an answer the API does
        not give for these requests."""
        code = None
        if r.status >= 400 and r.body[:1] == b"{":
            code = r.json().get("errorCode")
        if r.status >= 500:
            return False, None
        if kind == "read":
            if r.status == 200:
                return True, r.json()["node"]["value"]
            if r.status == 404 and code == 100:
                return True, None
        elif kind == "write":
            if r.status in (200, 201):
                return True, True
        elif kind == "cas":
            if r.status == 200:
                return True, True
            if (r.status, code) in ((412, 101), (404, 100)):
                return True, False
        elif kind == "delete":
            if r.status == 200:
                return True, True
            if (r.status, code) == (404, 100):
                return True, False
        raise AssertionError(f"unexpected answer to {kind}: {r}")

    def run(self):
        try:
            self.loop()
        except BaseException as e:  # a bug here must fail the test, not end a thread
            self.errors.append(f"c{self.cid} crashed: {e!r}")
            raise

    def loop(self):
        while not self.stop_event.is_set():
            key, kind, value, prev = self.choose()
            m = self.members[self.target % len(self.members)]
            invoke = time.monotonic()
            try:
                conn = harness.Connection(m.client_port, host=m.host, timeout=CLIENT_TIMEOUT)
            except OSError:  # refused or unreachable: nothing was sent
                self.target += 1
                self.stop_event.wait(0.05)
                continue
            try:
                r = conn.request(*self.request_of(key, kind, value, prev))
            except (OSError, EOFError, ValueError) as e:
                r, err = None, e
            finally:
                conn.close()
            complete = time.monotonic()
            try:
                known, out = self.outcome(kind, r) if r is not None else (False, None)
            except AssertionError as e:
                self.errors.append(f"c{self.cid} {m.name} {key}: {e}")
                return
            note = m.name if known else \
                f"{m.name}: {r.status if r is not None else repr(err)}"
            self.ops.append(Op(key, kind, invoke, complete if known else None,
                               out=out, value=value, prev=prev, client=self.cid, note=note))
            if known:
                if kind == "read":
                    self.seen[key] = out
                elif kind in ("write", "cas") and out:
                    self.seen[key] = value
                elif kind == "delete":
                    self.seen[key] = None
            else:
                self.target += 1  # try another member next
            self.stop_event.wait(self.rng.uniform(*PACE))

    def request_of(self, key, kind, value, prev):
        path = "/v2/keys" + key
        if kind == "read":
            return "GET", path + "?quorum=true", None, None
        if kind == "delete":
            return "DELETE", path, None, None
        body = {"value": value}
        if kind == "cas":
            body["prevValue"] = prev
        return "PUT", path, body, None


def run_and_check(request, c, faults, seed):
    """Starts the clients, runs the fault schedule (in this thread: members are started
    from the thread that owns them), stops the clients, heals everything, adds a final
    quorum read of every key, and checks each key's history."""
    stop = threading.Event()
    request.addfinalizer(stop.set)
    clients = [Client(i, c.members, seed, stop) for i in range(CLIENTS)]
    for cl in clients:
        cl.start()
    t0 = time.monotonic()
    rng = random.Random(seed)
    try:
        for what, action, hold in faults:
            victim = action(rng)
            print(f"{time.monotonic() - t0:6.2f} s  {what} {victim.name if victim else ''}")
            stop.wait(hold)  # how long the fault lasts
    finally:
        stop.set()
        for cl in clients:
            cl.join(CLIENT_TIMEOUT + 5)
            assert not cl.is_alive(), f"{cl.name} did not stop"
    errors = [e for cl in clients for e in cl.errors]
    assert not errors, errors
    if c.net:
        c.heal()
    for m in c.members:
        if m.name in c.paused:
            c.resume(m)
        if not m.alive():
            c.restart(m)
    leader = c.leader(timeout=30)
    history = [op for cl in clients for op in cl.ops]
    for key in KEYS:
        # a timed-out read is ambiguous and proves nothing: ask until one is answered
        tries = []

        def final_read():
            invoke = time.monotonic()
            r = leader.http("GET", f"/v2/keys{key}?quorum=true", timeout=CLIENT_TIMEOUT)
            tries.append(r.status)
            if r.status >= 500:
                return None
            assert r.status in (200, 404), r
            out = r.json()["node"]["value"] if r.status == 200 else None
            return Op(key, "read", invoke, time.monotonic(), out=out, client="final")
        history.append(harness.wait_until(final_read, 30, f"a quorum read of {key} on the "
                                          f"leader {leader.name} after healing"))
        if len(tries) > 1:
            print(f"final read of {key} on {leader.name} answered after {tries}")
    kinds = {}
    for op in history:
        state = "?" if op.ambiguous else op.out is not False
        kinds[(op.kind, state)] = kinds.get((op.kind, state), 0) + 1
    print(f"seed {seed}: {len(history)} operations in {time.monotonic() - t0:.1f} s: "
          + ", ".join(f"{k}{'' if s is True else ' failed' if s is False else ' ambiguous'}"
                      f"={n}" for (k, s), n in sorted(kinds.items(), key=str)))
    # the run has to have exercised the cluster to prove anything
    assert kinds.get(("read", True), 0) >= 100, kinds
    assert kinds.get(("cas", True), 0) >= 10 and kinds.get(("cas", False), 0) >= 10, kinds
    t1 = time.monotonic()
    results = check_history(history, max_steps=3_000_000)
    print(f"checked in {time.monotonic() - t1:.2f} s: "
          + ", ".join(f"{k}: {r.steps} steps" for k, r in results.items()))
    bad = {k: r for k, r in results.items() if not r.ok}
    assert not bad, (f"seed {seed}: non-linearizable history on {sorted(bad)}\n"
                     + "\n\n".join(f"key {k}:\n{r.explain()}" for k, r in bad.items()))


def seed_of():
    seed = int(os.environ.get("KETCH_SEED", str(random.randrange(1, 1 << 30))))
    print(f"seed {seed} (replay the choices with KETCH_SEED={seed})")
    return seed


def test_histories_stay_linearizable_through_crashes_and_pauses(request):
    seed = seed_of()
    c = cluster.new_cluster(request, 3)
    state = {}

    def kill_leader(rng):
        state["dead"] = c.leader()
        c.kill9(state["dead"])
        return state["dead"]

    def restart_dead(rng):
        return c.restart(state.pop("dead"))

    def pause_leader(rng):
        state["paused"] = c.leader()
        c.pause(state["paused"])
        return state["paused"]

    def resume_paused(rng):
        m = state.pop("paused")
        c.resume(m)
        return m

    def kill_follower(rng):
        state["dead"] = rng.choice(c.followers(c.leader()))
        c.kill9(state["dead"])
        return state["dead"]

    faults = [("steady", lambda rng: None, 2.0),
              ("kill -9 leader", kill_leader, 3.0),
              ("restart", restart_dead, 2.0),
              ("SIGSTOP leader", pause_leader, 3.0),
              ("SIGCONT", resume_paused, 2.0),
              ("kill -9 follower", kill_follower, 3.0),
              ("restart", restart_dead, 2.0),
              ("SIGSTOP leader", pause_leader, 2.0),
              ("SIGCONT", resume_paused, 2.0)]
    run_and_check(request, c, faults, seed)


def test_histories_stay_linearizable_through_partitions(request):
    seed = seed_of()
    c = cluster.new_cluster(request, 3, netns=True)
    state = {}

    def isolate_leader(rng):
        m = state["isolated"] = c.leader()
        c.isolate(m)
        return m

    def isolate_follower(rng):
        m = state["isolated"] = rng.choice(c.followers(c.leader()))
        c.isolate(m)
        return m

    def heal(rng):
        c.heal()
        state.pop("isolated", None)
        return None

    def kill_majority_leader(rng):
        majority = [m for m in c.live() if m is not state.get("isolated")]
        state["dead"] = c.leader(among=majority)
        c.kill9(state["dead"])
        return state["dead"]

    def restart_dead(rng):
        return c.restart(state.pop("dead"))

    faults = [("steady", lambda rng: None, 2.0),
              ("isolate leader", isolate_leader, 4.0),
              ("heal", heal, 2.0),
              ("isolate follower", isolate_follower, 3.0),
              ("heal", heal, 2.0),
              ("isolate leader", isolate_leader, 3.0),
              ("kill -9 the new leader", kill_majority_leader, 2.0),  # no quorum for a while
              ("heal", heal, 2.0),
              ("restart", restart_dead, 2.0)]
    run_and_check(request, c, faults, seed)
