"""Debian's etcdctl (ETCDCTL_API=2) prints the same stdout and stderr and exits with the
same codes against the candidate as against real etcd (spec etcd-v2-api.md section 15),
for every key command, its output formats and its error cases."""
import harness


def modified_index(c, key):
    """The key's modifiedIndex, read outside the recorded session."""
    return harness.http(c.port, "GET", "/v2/keys" + key).json()["node"]["modifiedIndex"]


def test_set_get_and_mk_print_values_blocks_and_errors_like_etcd(compare):
    def s(c):
        c.probe("/ctl")
        c.etcdctl("set", "/ctl/a", "hello")
        c.etcdctl("-o", "extended", "set", "/ctl/b", "world")
        c.etcdctl("-o", "json", "set", "/ctl/c", "json")
        c.etcdctl("set", "noslash", "v")
        c.etcdctl("get", "noslash")
        c.etcdctl("rm", "noslash")
        c.etcdctl("get", "/ctl/a")
        c.etcdctl("-o", "extended", "get", "/ctl/a")
        c.etcdctl("-o", "json", "get", "/ctl/a")
        c.etcdctl("get", "--quorum", "/ctl/a")
        c.etcdctl("get", "/ctl/nokey")
        c.etcdctl("-o", "json", "get", "/ctl/nokey")
        c.etcdctl("get", "/ctl")
        c.etcdctl("get")
        c.etcdctl("-o", "extended", "set", "--ttl", "100", "/ctl/t", "ttlval")
        c.etcdctl("-o", "json", "set", "--ttl", "100", "/ctl/t", "ttlval2")
        c.etcdctl("set", "/ctl/stdin", stdin=b"from stdin\n")
        c.etcdctl("get", "/ctl/stdin")
        c.etcdctl("set", "/ctl/nostdin")
        c.etcdctl("set", "/ctl/dash", "-v")
        c.etcdctl("--", "set", "/ctl/dash2", "-v")
        c.etcdctl("mk", "/ctl/a", "again")
        c.etcdctl("mk", "/ctl/new", "v")
        c.etcdctl("-o", "extended", "mk", "--ttl", "100", "/ctl/newt", "v")
        c.etcdctl("mk", "--in-order", "/ctl/q", "job1")
        c.etcdctl("-o", "extended", "mk", "--in-order", "/ctl/q", "job2")
        c.etcdctl("mk", "/ctl/a/child", "x")
        c.etcdctl("set", "--swap-with-value", "wrong", "/ctl/a", "x")
        c.etcdctl("set", "--swap-with-value", "hello", "/ctl/a", "swapped")
        c.etcdctl("set", "--swap-with-index", "1", "/ctl/a", "x")
        c.etcdctl("set", "--swap-with-index", str(c.index(1) + 100), "--swap-with-value",
                  "nope", "/ctl/a", "x")
        c.etcdctl("set", "--swap-with-index", str(modified_index(c, "/ctl/a")), "/ctl/a",
                  "by-index")
        c.etcdctl("-o", "bogus", "get", "/ctl/a")
        c.etcdctl("nosuchcommand")
        c.etcdctl("ls", "--sort", "-p", "/ctl")
    compare(s)


def test_dir_commands_update_and_rm_print_like_etcd(compare):
    def s(c):
        c.probe("/cdir")
        c.etcdctl("mkdir", "/cdir/d")
        c.etcdctl("mkdir", "/cdir/d")
        c.etcdctl("-o", "extended", "mkdir", "/cdir/d2")
        c.etcdctl("-o", "json", "mkdir", "--ttl", "100", "/cdir/d3")
        c.etcdctl("setdir", "/cdir/sd")
        c.etcdctl("setdir", "/cdir/sd")
        c.etcdctl("-o", "extended", "setdir", "/cdir/sd2")
        c.etcdctl("updatedir", "--ttl", "100", "/cdir/d")
        c.etcdctl("-o", "extended", "updatedir", "--ttl", "200", "/cdir/d")
        c.etcdctl("updatedir", "--ttl", "100", "/cdir/missing")
        c.etcdctl("set", "/cdir/f", "file")
        c.etcdctl("update", "/cdir/f", "upd")
        c.etcdctl("-o", "extended", "update", "--ttl", "50", "/cdir/f", "upd2")
        c.etcdctl("-o", "json", "update", "/cdir/f", "upd3")
        c.etcdctl("update", "/cdir/missing", "x")
        c.etcdctl("update", "/cdir/d", "x")
        c.etcdctl("set", "/cdir/d", "x")
        c.etcdctl("set", "/cdir/d/in", "x")
        c.etcdctl("set", "/cdir/d/sub/deep", "y")
        c.etcdctl("ls", "/cdir/d")
        c.etcdctl("ls", "--recursive", "--sort", "/cdir")
        c.etcdctl("ls", "-r", "--sort", "-p", "/cdir")
        c.etcdctl("-o", "extended", "ls", "--sort", "/cdir")
        c.etcdctl("ls", "/cdir/f")
        c.etcdctl("ls", "/cdir/none")
        c.etcdctl("rm", "/cdir/f")
        c.etcdctl("rm", "/cdir/f")
        c.etcdctl("set", "/cdir/g", "gv")
        c.etcdctl("-o", "extended", "rm", "/cdir/g")
        c.etcdctl("set", "/cdir/h", "hv")
        c.etcdctl("rm", "--with-value", "wrong", "/cdir/h")
        c.etcdctl("rm", "--with-value", "hv", "/cdir/h")
        c.etcdctl("set", "/cdir/i", "iv")
        c.etcdctl("rm", "--with-index", "1", "/cdir/i")
        c.etcdctl("-o", "extended", "rm", "--with-index", str(modified_index(c, "/cdir/i")),
                  "/cdir/i")
        c.etcdctl("rm", "/cdir/d")
        c.etcdctl("rm", "--dir", "/cdir/d")
        c.etcdctl("rmdir", "/cdir/d")
        c.etcdctl("rmdir", "/cdir/d2")
        c.etcdctl("-o", "extended", "rm", "--dir", "/cdir/sd")
        c.etcdctl("rm", "-r", "/cdir/d")
        c.etcdctl("rmdir", "/cdir/none")
        c.etcdctl("rm")
        c.etcdctl("ls", "--sort", "/")
        c.etcdctl("rm", "--recursive", "/cdir")
    compare(s)


def test_watch_prints_the_next_event_and_watch_forever_keeps_going(compare):
    def s(c):
        c.probe("/cw")
        c.etcdctl("set", "/cw/a", "one")
        c.etcdctl("set", "/cw/a", "two")
        c.etcdctl("watch", "--after-index", str(c.index(0)), "/cw/a")  # from history
        c.etcdctl("-o", "extended", "watch", "--after-index", str(c.index(1)), "/cw/a")
        p = c.etcdctl_bg("watch", "/cw/a")
        c.wait_watchers(1)
        c.etcdctl("set", "/cw/a", "three")
        c.etcdctl_finish(p)
        p = c.etcdctl_bg("watch", "-r", "/cw")
        c.wait_watchers(1)
        c.etcdctl("mkdir", "/cw/ignored")  # watch ignores dir events and keeps waiting
        c.etcdctl("set", "/cw/wk", "four")
        c.etcdctl_finish(p)
        p = c.etcdctl_bg("-o", "json", "watch", "-f", "-r", "--after-index",
                         str(c.index(0)), "/cw")
        c.wait_output(p, '"value":"four"')
        c.etcdctl("rm", "/cw/a")
        c.wait_output(p, '"action":"delete"')
        c.etcdctl_finish(p, interrupt=True)
        p = c.etcdctl_bg("watch", "/cw/del")
        c.wait_watchers(1)
        c.etcdctl("set", "/cw/del", "x")
        c.etcdctl_finish(p)
        p = c.etcdctl_bg("watch", "/cw/del")
        c.wait_watchers(1)
        c.etcdctl("rm", "/cw/del")
        c.etcdctl_finish(p)
        c.etcdctl("watch")
        c.etcdctl("rm", "-r", "/cw")
    compare(s)


def test_exec_watch_runs_the_command_for_each_event(compare):
    cmd = 'echo "ran $ETCD_WATCH_ACTION $ETCD_WATCH_KEY $ETCD_WATCH_VALUE"'

    def s(c):
        c.probe("/cew")
        p = c.etcdctl_bg("exec-watch", "-r", "/cew", "--", "sh", "-c", cmd)
        c.wait_watchers(1)
        c.etcdctl("set", "/cew/a", "1")
        c.wait_output(p, "ran set /cew/a 1")
        c.wait_watchers(1)
        c.etcdctl("mkdir", "/cew/d")  # "Ignored dir" on stderr
        c.etcdctl("set", "/cew/b", "2")
        c.wait_output(p, "ran set /cew/b 2")
        c.etcdctl_finish(p, interrupt=True)
        p = c.etcdctl_bg("exec-watch", "echo", "changed", "/cew/x")  # last arg is the key
        c.wait_watchers(1)
        c.etcdctl("set", "/cew/x", "3")
        c.wait_output(p, "changed")
        c.etcdctl_finish(p, interrupt=True)
        c.etcdctl("exec-watch", "/cew/only")
        c.etcdctl("rm", "-r", "/cew")
    compare(s)


def test_watch_after_a_cleared_index_prints_error_401(compare):
    def s(c):
        c.probe("/c401")
        with harness.Connection(c.port) as conn:
            for i in range(1003):
                r = conn.request("PUT", f"/v2/keys/c401/k{i % 2}", {"value": str(i)})
                assert r.status in (200, 201)
        c.etcdctl("watch", "--after-index", str(c.index(0)), "/c401/k0")
        c.etcdctl("-o", "json", "watch", "--after-index", str(c.index(0)), "/c401/k0")
        c.etcdctl("rm", "-r", "/c401")
    compare(s)
