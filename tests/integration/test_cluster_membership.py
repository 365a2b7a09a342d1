"""Runtime membership of a candidate cluster (KETCH_COMPAT_CANDIDATE, default ketchd;
validated against real etcd): members added through POST /v2/members join with
--initial-cluster-state existing and catch up, members removed through DELETE
/v2/members/<id> -- the leader too -- leave and their processes exit on their own, and
Debian's etcdctl (ETCDCTL_API=2) drives the same through member add/remove/list and
cluster-health. A writer runs throughout; every acknowledged write must be on every
member that remains."""
import re
import threading

import cluster
import harness


def members_listed(m):
    r = m.http("GET", "/v2/members")
    assert r.status == 200, r
    return sorted((x["name"], x["id"]) for x in r.json()["members"])


def wait_members_listed(c, members, timeout=30):
    want = sorted((m.name, c.ids[m.name]) for m in members)
    seen = {}

    def listed():
        for m in members:
            seen[m.name] = members_listed(m)
        return all(v == want for v in seen.values())
    try:
        harness.wait_until(listed, timeout,
                           f"every member to list exactly {[m.name for m in members]}")
    except AssertionError as e:
        raise AssertionError(f"{e}; want {want}, last listed: {seen}; ids: {c.ids}") from None


def assert_exits_on_its_own(m, timeout=30):
    rc = m.wait_exit(timeout)
    assert rc is not None, f"{m.name} still runs {timeout}s after its removal"
    print(f"removed {m.name} exited with {rc}")


def test_grow_1_to_3_to_5_and_shrink_to_3_under_writes(request):
    c = cluster.new_cluster(request, 1)
    lock = threading.Lock()
    targets = list(c.members)

    def current():
        with lock:
            return list(targets)
    load = cluster.Writers(current, "/grow", threads=3).start()
    request.addfinalizer(lambda: load.stop_event.set())
    load.wait_acked(50, 30)
    for name in ("m1", "m2"):
        m = c.add_member(name)
        with lock:
            targets.append(m)
        load.wait_acked(load.count() + 50, 30, f"50 more writes after {name} joined")
    wait_members_listed(c, c.members)
    assert len(c.members) == 3
    for name in ("m3", "m4"):
        m = c.add_member(name)
        with lock:
            targets.append(m)
        load.wait_acked(load.count() + 50, 30, f"50 more writes after {name} joined")
    wait_members_listed(c, c.members)
    assert len(c.members) == 5
    for m in c.members:  # every member has caught up with what was written before it came
        harness.wait_until(lambda: "/grow/w0-0" in c.tree(m, "/grow"), 30,
                           f"{m.name} to have the first write")
    # shrink: the leader first, then a follower
    leader = c.leader()
    victims = [leader, next(m for m in c.followers(leader) if m.name != "m0")]
    for v in victims:
        with lock:
            targets.remove(v)
        c.remove_member(v)
        assert_exits_on_its_own(v)
        new = c.leader(among=c.members)
        assert new is not v
        load.wait_acked(load.count() + 50, 30, f"50 more writes after {v.name} left")
    load.stop()
    assert len(c.members) == 3
    wait_members_listed(c, c.members)
    c.wait_converged(c.members)
    trees = [load.check_member(c, m) for m in c.members]
    assert all(t == trees[0] for t in trees)
    print(f"{len(load.acked)} acknowledged writes, {len(load.ambiguous)} unanswered; "
          f"remaining {[m.name for m in c.members]}")


def test_removed_leader_exits_and_the_rest_elect_a_new_one(request):
    c = cluster.new_cluster(request, 3)
    r = cluster.put(c.members[0], "/rl/before", "1")
    assert r.status == 201, r
    leader = c.leader()
    lid = c.ids[leader.name]
    via = c.followers(leader)[0]
    c.remove_member(leader, via=via)
    assert_exits_on_its_own(leader)
    new = c.leader(among=c.members)
    assert c.ids[new.name] != lid
    for m in c.members:
        r = m.http("GET", "/v2/members/leader")
        assert r.status == 200 and r.json()["id"] == c.ids[new.name], r
    wait_members_listed(c, c.members)
    r = cluster.put(c.members[1], "/rl/after", "2")
    assert r.status == 201, r
    c.wait_converged(c.members)
    for m in c.members:
        assert c.tree(m, "/rl") == {"/rl/before": "1", "/rl/after": "2"}
    # a removed id stays removed (spec 7.3)
    r = via.http("DELETE", f"/v2/members/{lid}")
    assert (r.status, r.body) == (410, f'{{"message":"Member permanently removed: {lid}"}}'
                                  .encode()), r


def test_etcdctl_member_add_list_remove_and_cluster_health(request):
    c = cluster.new_cluster(request, 3)
    port = c.members[0].client_port
    endpoints = ",".join(m.client_url for m in c.members)

    def etcdctl(*args):
        r = harness.etcdctl(port, *args, endpoints=endpoints)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    rc, out, err = etcdctl("member", "list")
    assert rc == 0 and err == "", (rc, out, err)
    assert sorted(re.findall(r"name=(\w+)", out)) == ["m0", "m1", "m2"], out

    new = c.prepare_member("m3")
    # refused (strict reconfiguration check) until the members have been up for 5 s
    rc, out, err = harness.wait_until(
        lambda: (lambda r: r if r[0] == 0 or "has no leader" not in r[2] else None)(
            etcdctl("member", "add", "m3", new.peer_url)), 30, "etcdctl member add to work",
        interval=0.2)
    assert rc == 0, (rc, out, err)
    m = re.search(r"Added member named m3 with ID (\w+) to cluster", out)
    assert m, out
    new_id = m.group(1)
    env = dict(re.findall(r'^(ETCD_\w+)="(.*)"$', out, re.M))
    assert env["ETCD_NAME"] == "m3" and env["ETCD_INITIAL_CLUSTER_STATE"] == "existing", out
    want_ic = sorted([f"{x.name}={x.peer_url}" for x in c.members] + [f"m3={new.peer_url}"])
    assert sorted(env["ETCD_INITIAL_CLUSTER"].split(",")) == want_ic, out
    c.launch_member(new, env["ETCD_INITIAL_CLUSTER"])
    assert c.ids["m3"] == new_id

    def all_healthy():
        """cluster-health's lines when every current member is healthy (etcdctl prints
        them in member list order: by id), or None."""
        rc, out, err = etcdctl("cluster-health")
        want = [f"member {c.ids[x.name]} is healthy: got healthy result from {x.client_url}"
                for x in sorted(c.members, key=lambda x: int(c.ids[x.name], 16))]
        last[:] = [(rc, out, err)]
        return out if (rc, out) == (0, "\n".join(want + ["cluster is healthy"]) + "\n") \
            else None
    last = []
    try:
        harness.wait_until(all_healthy, 30, "etcdctl cluster-health to report 4 healthy "
                           "members", interval=0.2)
    except AssertionError as e:
        raise AssertionError(f"{e}; last: {last}") from None

    rc, out, err = etcdctl("member", "list")
    assert rc == 0 and sorted(re.findall(r"name=(\w+)", out)) == ["m0", "m1", "m2", "m3"]
    assert out.count("isLeader=true") == 1, out

    victim = c.members[1]
    rc, out, err = harness.wait_until(
        lambda: (lambda r: r if r[0] == 0 or "Internal Server Error" not in r[1] + r[2]
                 else None)(etcdctl("member", "remove", c.ids[victim.name])), 30,
        "etcdctl member remove to work", interval=0.2)
    assert (rc, out.strip()) == (0, f"Removed member {c.ids[victim.name]} from cluster"), \
        (rc, out, err)
    c.members.remove(victim)
    assert_exits_on_its_own(victim)
    wait_members_listed(c, c.members)
    c.leader(among=c.members)  # the victim may have led: member list asks the leader
    endpoints = ",".join(m.client_url for m in c.members)
    rc, out, err = etcdctl("member", "list")
    assert rc == 0 and sorted(re.findall(r"name=(\w+)", out)) == \
        sorted(m.name for m in c.members), (rc, out, err)
    harness.wait_until(all_healthy, 30, "etcdctl cluster-health to report the 3 remaining "
                       "members healthy", interval=0.2)
