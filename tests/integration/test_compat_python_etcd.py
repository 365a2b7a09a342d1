"""Debian's python3-etcd 0.4.5 gets the same results and raises the same exception
classes against the candidate as against real etcd (spec etcd-v2-api.md section 16)."""
import re
import threading

import etcd

import harness


def in_thread(fn, timeout=15.0):
    """Runs fn() in a thread; returns a function that joins it (bounded) and returns
    ("return", value) or ("raise", exception)."""
    out = {}

    def run():
        try:
            out["v"] = ("return", fn())
        except Exception as e:  # handed to the recorder
            out["v"] = ("raise", e)
    t = threading.Thread(target=run, daemon=True)
    t.start()

    def join():
        t.join(timeout)
        assert not t.is_alive(), "python3-etcd call did not return in time"
        return out["v"]
    return join


def test_read_write_and_delete_match_etcd(compare):
    def s(c):
        c.probe("/py")
        c.py("write", lambda e: e.write("/py/a", "one"))
        c.py("write again", lambda e: e.write("/py/a", "two"))
        c.py("read", lambda e: e.read("/py/a"))
        c.py("get", lambda e: e.get("/py/a"))
        c.py("set", lambda e: e.set("/py/b", "bee"))
        c.py("write ttl", lambda e: e.write("/py/t", "tv", ttl=100))
        c.py("read ttl", lambda e: e.read("/py/t"))
        c.py("read missing", lambda e: e.read("/py/missing"))
        c.py("get missing", lambda e: e.get("/py/missing/deeper"))
        c.py("create existing", lambda e: e.write("/py/a", "x", prevExist=False))
        c.py("create new", lambda e: e.write("/py/c", "x", prevExist=False))
        c.py("update missing", lambda e: e.write("/py/none", "x", prevExist=True))
        c.py("update", lambda e: e.write("/py/c", "y", prevExist=True))
        c.py("root", lambda e: e.write("/", "x"))
        c.py("child of file", lambda e: e.write("/py/a/child", "x"))
        c.py("read dir", lambda e: e.read("/py", recursive=True, sorted=True))
        c.py("read quorum", lambda e: e.read("/py/a", quorum=True))
        c.py("delete", lambda e: e.delete("/py/b"))
        c.py("delete missing", lambda e: e.delete("/py/b"))
        c.py("pop", lambda e: e.pop("/py/c"))
        c.py("bad ttl", lambda e: e.write("/py/x", "x", ttl="abc"))
        c.py("refresh without ttl", lambda e: e.write("/py/a", None, refresh=True))
        c.py("delete all", lambda e: e.delete("/py", recursive=True))
    compare(s)


def test_compare_and_swap_and_delete_match_etcd(compare):
    def s(c):
        c.probe("/pycas")
        c.py("write", lambda e: e.write("/pycas/k", "one"))
        c.py("test_and_set ok", lambda e: e.test_and_set("/pycas/k", "two", "one"))
        c.py("test_and_set fails", lambda e: e.test_and_set("/pycas/k", "x", "one"))
        c.py("prevValue ok", lambda e: e.write("/pycas/k", "three", prevValue="two"))
        c.py("prevIndex fails", lambda e: e.write("/pycas/k", "x", prevIndex=1))
        c.py("prevIndex ok", lambda e: e.write("/pycas/k", "four", prevIndex=c.index(3)))
        c.py("update(result)", lambda e: e.update(
            (lambda r: (setattr(r, "value", "five"), r)[1])(e.read("/pycas/k"))))
        c.py("update(result) stale", lambda e: e.update(
            (lambda r: (setattr(r, "value", "x"), setattr(r, "modifiedIndex", 1), r)[2])(
                e.read("/pycas/k"))))
        c.py("cad value fails", lambda e: e.delete("/pycas/k", prevValue="nope"))
        c.py("cad index fails", lambda e: e.delete("/pycas/k", prevIndex=1))
        c.py("cad ok", lambda e: e.delete("/pycas/k", prevValue="five"))
        c.py("empty prevValue", lambda e: e.write("/pycas/k", "x", prevValue=""))
        c.py("cas missing", lambda e: e.test_and_set("/pycas/none", "x", "y"))
    compare(s)


def test_in_order_append_ttl_and_refresh_match_etcd(compare):
    def s(c):
        c.probe("/pyq")
        c.py("append", lambda e: e.write("/pyq/jobs", "j1", append=True))
        c.py("append ttl", lambda e: e.write("/pyq/jobs", "j2", append=True, ttl=100))
        c.py("list", lambda e: e.read("/pyq/jobs", sorted=True))
        c.py("write ttl", lambda e: e.write("/pyq/t", "v", ttl=100))
        c.py("refresh", lambda e: e.refresh("/pyq/t", ttl=200))
        c.py("refresh missing", lambda e: e.refresh("/pyq/none", ttl=200))
        c.py("read", lambda e: e.read("/pyq/t"))
        c.py("ttl 0", lambda e: e.write("/pyq/gone", "v", ttl=0))
        join = in_thread(lambda: etcd.Client(port=c.port).watch(
            "/pyq/gone", index=c.index(6), timeout=5))
        c.py_outcome("expire seen by watch", join())
        c.py("read expired", lambda e: e.read("/pyq/gone"))
        c.py("delete", lambda e: e.delete("/pyq", recursive=True))
    compare(s)


def test_directories_match_etcd(compare):
    def s(c):
        c.probe("/pyd")
        c.py("mkdir", lambda e: e.write("/pyd/d", None, dir=True))
        c.py("mkdir again", lambda e: e.write("/pyd/d", None, dir=True, prevExist=False))
        c.py("value on dir", lambda e: e.write("/pyd/d", "x"))
        c.py("child", lambda e: e.write("/pyd/d/a", "1"))
        c.py("child2", lambda e: e.write("/pyd/d/sub/b", "2"))
        c.py("read dir", lambda e: e.read("/pyd/d", recursive=True, sorted=True))
        c.py("children", lambda e: sorted(ch.key for ch in e.read("/pyd/d").children))
        c.py("delete dir plain", lambda e: e.delete("/pyd/d"))
        c.py("delete dir not empty", lambda e: e.delete("/pyd/d", dir=True))
        c.py("delete recursive", lambda e: e.delete("/pyd/d", recursive=True))
        c.py("dir ttl", lambda e: e.write("/pyd/t", None, dir=True, ttl=100))
        c.py("dir ttl update", lambda e: e.write("/pyd/t", None, dir=True, ttl=200,
                                                 prevExist=True))
        c.py("delete empty dir", lambda e: e.delete("/pyd/t", dir=True))
        c.py("delete all", lambda e: e.delete("/pyd", recursive=True))
    compare(s)


def test_watch_with_index_and_live_watch_match_etcd(compare):
    def s(c):
        c.probe("/pyw")
        c.py("w1", lambda e: e.write("/pyw/k", "1"))
        c.py("w2", lambda e: e.write("/pyw/k", "2"))
        c.py("watch from history", lambda e: e.watch("/pyw/k", index=c.index(1)))
        c.py("read with wait index", lambda e: e.read("/pyw/k", wait=True,
                                                     waitIndex=c.index(2)))
        c.py("recursive from history", lambda e: e.watch("/pyw", index=c.index(1),
                                                         recursive=True))
        join = in_thread(lambda: etcd.Client(port=c.port).watch("/pyw/k", timeout=10))
        c.wait_watchers(1)
        c.py("w3", lambda e: e.write("/pyw/k", "3"))
        c.py_outcome("live watch", join())
        c.py("watch times out", lambda e: e.watch("/pyw/quiet", timeout=0.5))
        c.py("eternal_watch", lambda e: [
            (r.key, r.value) for _, r in zip(range(3), e.eternal_watch(
                "/pyw/k", index=c.index(1)))])
        with harness.Connection(c.port) as conn:
            for i in range(1002):
                assert conn.request("PUT", "/v2/keys/pyw/bulk", {"value": str(i)}).status \
                    in (200, 201)
        c.py("cleared index", lambda e: e.watch("/pyw/k", index=c.index(1)))
        c.py("delete", lambda e: e.delete("/pyw", recursive=True))
    compare(s)


def test_cluster_calls_see_the_same_shapes(compare):
    def s(c):
        c.probe("/pyc")
        c.py("machines", lambda e: e.machines)
        c.py("members", lambda e: [(m["name"], m["peerURLs"], m["clientURLs"])
                                   for m in e.members.values()])
        c.py("leader", lambda e: (e.leader["name"], e.leader["clientURLs"]))
        c.py("version format", lambda e: bool(re.fullmatch(r"\d+\.\d+\.\d+", e.version)))
        c.py("cluster version 3.4", lambda e: e.cluster_version.startswith("3.4"))
        c.py("stats keys", lambda e: sorted(e.stats))
        c.py("store stats keys", lambda e: list(e.store_stats))
        c.py("leader stats", lambda e: sorted(e.leader_stats))
    compare(s)


def test_lock_recipe_acquires_excludes_and_releases_like_on_etcd(compare):
    """etcd.Lock (spec 16): in-order keys under /_locks, a recursive GET, a watch with
    waitIndex and a DELETE -- the client's whole locking workflow."""
    def s(c):
        c.probe("/pylock")
        a = etcd.Lock(etcd.Client(port=c.port), "compat-lock")
        b = etcd.Lock(etcd.Client(port=c.port), "compat-lock")
        c.py_outcome("a acquires", ("return", a.acquire(blocking=True, lock_ttl=60)))
        c.py_outcome("a holds it", ("return", a.is_acquired))
        c.py_outcome("b cannot take it", ("return", b.acquire(blocking=False, lock_ttl=60)))
        join = in_thread(lambda: b.acquire(blocking=True, lock_ttl=60, timeout=10))
        c.wait_watchers(1)  # b waits on a's key
        c.py_outcome("a releases", ("return", a.release()))
        c.py_outcome("b got it after a released", join())
        c.py_outcome("b holds it", ("return", b.is_acquired))
        c.py_outcome("a no longer holds it", ("return", a.is_acquired))
        c.py_outcome("b releases", ("return", b.release()))
        c.py("lock keys left", lambda e: [n.key for n in e.read("/_locks/compat-lock").leaves])
        c.py("clean", lambda e: e.delete("/_locks/compat-lock", recursive=True, dir=True))
    compare(s)
