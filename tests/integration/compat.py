"""Scripted sessions run against the reference (real etcd) and the candidate, recorded,
normalised and compared (spec etcd-v2-api.md section 19).

A session is a function taking a Recorder. It must begin with rec.probe(prefix), a write
of a hidden key whose modifiedIndex becomes the session's base index; every etcd index
after it is written relative to that base ("I+3"). The same session then runs on both
members, which have seen the same user operations (each test module starts its own pair),
so everything that is not masked below must be byte-identical.

What is masked, and why (each is listed in spec section 19):
  * Date header                 -- the clock.
  * Content-Length and Transfer-Encoding of non-watch responses -- etcd (Go) switches to
    chunked above 2 KiB, ketchd may always send a length (spec 1.3). The framing itself
    is still checked (a Content-Length must equal the body length). Watch responses keep
    Transfer-Encoding, which must be chunked on both.
  * X-Etcd-Cluster-Id value, member ids -- derived from URLs/ports (spec 2); the value is
    replaced by <CID>/<MID> but the header's presence is compared.
  * The members' own ports in URLs (and in python3-etcd's urllib3 error texts) -- each
    member listens on its own free ports.
  * X-Etcd-Index, createdIndex, modifiedIndex, error "index", 20-digit in-order key names,
    the indexes inside causes "[1 != 21]" and "[168/5]", etcdctl's Created-Index/
    Modified-Index/Index and "[N]", and waitIndex/prevIndex/--*-index values a session
    computed from them -- internal writes (membership, cluster version) shift the
    absolute counter (spec 3), so they are written relative to the probe index. Numbers
    below the base (0 of parameter errors, literal small indexes) stay as they are.
  * X-Raft-Index, X-Raft-Term -- raft internals: only "present and an integer" is compared;
    per member they must not decrease within a session (checked).
  * expiration -- the clock: it must match RFC 3339 with nanoseconds in UTC (spec 4.3),
    then it is replaced by <EXP>.
  * ttl (JSON "ttl", etcdctl "TTL:") -- the clock: compared within +-2 seconds (spec 19
    allows +-1 for rounding; one more second absorbs the two sessions running at
    different speeds on a loaded CI machine -- a key read 1.2 s after its write in one
    session and 0.1 s after in the other shows ttl 99 vs 100 plus rounding).
  * Order of children without sorted=true (and of etcdctl ls lines without --sort) --
    arbitrary in etcd (spec 4.5): sorted by key before comparing.
Nothing else is masked: error bodies, messages, causes, header sets, status lines, the
order of JSON keys and Go's JSON string escaping are compared exactly.
"""
import difflib
import json
import os
import re
import subprocess
import threading

import harness

EXPIRATION_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z$")
TTL_SLACK_S = 2
TRUE_WORDS = ("1", "t", "T", "TRUE", "true", "True")


class Watch:
    """An open long-poll or stream watch on a raw connection."""

    def __init__(self, conn, resp, label):
        self.conn, self.resp, self.label = conn, resp, label


class Recorder:
    def __init__(self, member, role):
        self.member = member
        self.role = role
        self.port = member.client_port
        self.entries = []  # (request text, response text before normalisation, kind, meta)
        self.base = None
        self.raft = []
        self.bg = []  # background processes and watch connections, closed by cleanup()
        self.prefix = None
        self.cid, self.mids = member.identity()

    def cleanup(self):
        for x in self.bg:
            if isinstance(x, subprocess.Popen):
                if x.poll() is None:
                    x.kill()
                    x.wait(timeout=10)
            else:
                x.close()
        self.bg = []
        if self.prefix:
            # whatever the session left (it may have failed halfway) must not leak into
            # the next session's listings; both members get this same unrecorded delete
            harness.http(self.port, "DELETE", f"/v2/keys{self.prefix}?recursive=true")

    # -- plumbing
    def _add(self, kind, request, response, **meta):
        self.entries.append((kind, request, response, meta))

    def probe(self, prefix):
        """Writes <prefix>/_probe (hidden, so it never shows up in listings) and takes its
        index as the session's base."""
        self.prefix = prefix
        r = harness.http(self.port, "PUT", f"/v2/keys{prefix}/_probe", {"value": "probe"})
        assert r.status in (200, 201), r
        self.base = r.json()["node"]["modifiedIndex"]
        return self.base

    def index(self, rel):
        """The absolute index for base+rel (for waitIndex/prevIndex in a session)."""
        return self.base + rel

    # -- HTTP
    def http(self, method, path, body=None, headers=None, note=""):
        r = harness.http(self.port, method, path, body, headers)
        self._record_response(method, path, body, headers, r, note)
        return r

    def _record_response(self, method, path, body, headers, r, note="", watch=False):
        req = f"{method} {path}"
        if body is not None:
            req += f" body={body!r}"
        if headers:
            req += f" headers={headers!r}"
        if note:
            req += f" ({note})"
        self._add("http", req, r, path=path, watch=watch)

    def raw(self, data, note, method="GET", count=1):
        """Sends raw request bytes, records up to count responses (or the close)."""
        with harness.Connection(self.port) as c:
            c.send(data)
            out = []
            for _ in range(count):
                try:
                    out.append(c.read_response(method))
                except (EOFError, ConnectionError, ValueError) as e:
                    out.append(f"connection ended: {type(e).__name__}")
                    break
        for r in out:
            if isinstance(r, str):
                self._add("note", f"raw {note}", r)
            else:
                self._add("http", f"raw {note}", r, path=data.split(b" ", 2)[1].decode(
                    "latin-1", "replace") if b" " in data else "", watch=False)
        return out

    def watch(self, path, note=""):
        """Opens a watch and records its head, which must arrive before any event."""
        conn = harness.Connection(self.port, timeout=5)
        self.bg.append(conn)
        conn.send(harness.build_request("GET", path))
        try:
            resp = conn.read_head()
        except socket_timeout():
            raise AssertionError(f"{self.role}: no status line and headers within 5 s for "
                                 f"watch {path}; they must be flushed before any event "
                                 f"(spec 5.1)") from None
        resp.chunks, resp.chunk_sizes_raw = [], []
        w = Watch(conn, resp, f"GET {path}" + (f" ({note})" if note else ""))
        self._add("watch-head", w.label, resp, path=path)
        return w

    def watch_event(self, w, timeout=10.0, required=True):
        """Reads the next chunk of a watch (bounded); records it with its framing. Fails
        the test when no event arrives in time, unless required is False."""
        w.conn.settimeout(timeout)
        try:
            d = w.conn.read_chunk(w.resp)
        except (socket_timeout(), EOFError) as e:
            self._add("note", f"{w.label} next chunk", f"no chunk: {type(e).__name__}")
            if required:
                raise AssertionError(f"{self.role}: no event on {w.label} within {timeout}s")
            return None
        if d is None:
            self._add("note", f"{w.label} next chunk", "terminating chunk")
            if required:
                raise AssertionError(f"{self.role}: watch {w.label} ended without an event")
            return None
        size = w.resp.chunk_sizes_raw[-1]
        ok = int(size, 16) == len(d)
        self._add("chunk", f"{w.label} next chunk", d, path=w.label, size_ok=ok)
        return json.loads(d)

    def watch_end(self, w, timeout=5.0):
        """Reads the terminating chunk of a long-poll watch and closes it."""
        w.conn.settimeout(timeout)
        try:
            d = w.conn.read_chunk(w.resp)
            self._add("note", f"{w.label} end", "terminating chunk" if d is None else "more data")
        except (socket_timeout(), EOFError) as e:
            self._add("note", f"{w.label} end", f"no terminating chunk: {type(e).__name__}")
        w.conn.close()

    def wait_watchers(self, n, timeout=10.0):
        """Waits until the member counts n open watchers (spec 9.3 'watchers'): the only
        non-sleeping way to know a client's watch is registered."""
        harness.wait_until(lambda: watchers(self.port) >= n, timeout,
                           f"{n} registered watchers on {self.role}")

    def note(self, label, value):
        self._add("note", label, value)

    # -- clients
    def etcdctl(self, *args, stdin=None, timeout=20.0):
        p = harness.etcdctl(self.port, *args, stdin=stdin, timeout=timeout)
        self._add("cli", "etcdctl " + " ".join(args), p)
        return p

    def etcdctl_bg(self, *args):
        """Starts etcdctl in the background (watch, exec-watch); its output is collected
        by reader threads so the caller can wait for a line to appear."""
        argv, env = harness.etcdctl_argv(self.port, *args)
        p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.bg.append(p)
        p.label = "etcdctl " + " ".join(args)
        p.out, p.err = bytearray(), bytearray()

        def pump(src, dst):
            for chunk in iter(lambda: src.read1(4096), b""):
                dst.extend(chunk)
        p.threads = [threading.Thread(target=pump, args=(p.stdout, p.out), daemon=True),
                     threading.Thread(target=pump, args=(p.stderr, p.err), daemon=True)]
        for t in p.threads:
            t.start()
        return p

    def wait_output(self, p, text, timeout=10.0):
        """Waits until a background etcdctl has printed text on stdout."""
        harness.wait_until(lambda: text.encode() in bytes(p.out) or p.poll() is not None,
                           timeout, f"{p.label} to print {text!r}")

    def etcdctl_finish(self, p, timeout=10.0, interrupt=False):
        """Collects a background etcdctl; with interrupt, sends SIGINT first (after the
        caller has seen what it waited for). Never leaves the process running."""
        if interrupt and p.poll() is None:
            p.send_signal(2)
        try:
            p.wait(timeout=timeout)
            killed = False
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
            killed = True
        for t in p.threads:
            t.join(timeout=5)
        if interrupt:
            # the server drops the watcher of the closed connection a little later; wait,
            # so that a following wait_watchers() cannot count this stale one
            harness.wait_until(lambda: watchers(self.port) == 0, 10,
                               f"{self.role} to drop the watcher of {p.label}")
        err = bytes(p.err) + (b"\n<killed: did not finish in time>" if killed else b"")
        self._add("cli", p.label, subprocess.CompletedProcess(p.args, p.returncode,
                                                              bytes(p.out), err))

    def py_outcome(self, label, outcome):
        """Records an outcome ("return", value) / ("raise", exc) produced elsewhere (a
        client call run in a thread)."""
        if outcome[0] == "raise":
            self._add("py", label, ("raise", type(outcome[1]).__name__, outcome[1]))
        else:
            self._add("py", label, outcome)

    def py(self, label, fn, timeout=20.0):
        """Runs fn(client) with a python3-etcd client (in a thread, bounded by timeout);
        records the result or the exception."""
        import etcd
        out = {}

        def run():
            try:
                client = etcd.Client(host="127.0.0.1", port=self.port, protocol="http")
                out["v"] = ("return", fn(client))
            except Exception as e:  # recorded, the comparison decides
                out["v"] = ("raise", type(e).__name__, e)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            raise AssertionError(f"{self.role}: python3-etcd call {label!r} did not return "
                                 f"within {timeout}s")
        self._add("py", label, out["v"])
        return out["v"][-1]


def socket_timeout():
    import socket
    return socket.timeout


def watchers(port):
    r = harness.http(port, "GET", "/v2/stats/store")
    return r.json()["watchers"]


# ---------------------------------------------------------------------------------------
# Normalisation


def go_json(v):
    """Serialises like Go's encoding/json (HTML-safe escaping), keeping key order of
    lists of pairs (from object_pairs_hook=list)."""
    if isinstance(v, list) and v and all(isinstance(p, tuple) for p in v):
        return "{" + ",".join(go_json(k) + ":" + go_json(x) for k, x in v) + "}"
    if isinstance(v, list):
        return "[" + ",".join(go_json(x) for x in v) + "]"
    if isinstance(v, str):
        out = ['"']
        for ch in v:
            o = ord(ch)
            if ch == '"':
                out.append('\\"')
            elif ch == "\\":
                out.append("\\\\")
            elif ch == "\n":
                out.append("\\n")
            elif ch == "\r":
                out.append("\\r")
            elif ch == "\t":
                out.append("\\t")
            elif o < 0x20 or ch in "<>&" or o in (0x2028, 0x2029):
                out.append("\\u%04x" % o)
            else:
                out.append(ch)
        out.append('"')
        return "".join(out)
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    return str(v)


def sort_nodes(v):
    """Sorts every "nodes" array by key (children order is arbitrary without sorted)."""
    if isinstance(v, list) and v and all(isinstance(p, tuple) for p in v):
        out = []
        for k, x in v:
            x = sort_nodes(x)
            if k == "nodes" and isinstance(x, list):
                x = sorted(x, key=lambda n: dict(n).get("key", ""))
            out.append((k, x))
        return out
    if isinstance(v, list):
        return [sort_nodes(x) for x in v]
    return v


def is_sorted_request(path):
    m = re.search(r"[?&]sorted=([^&]*)", path)
    return bool(m) and m.group(1) in TRUE_WORDS


class Normalizer:
    def __init__(self, rec):
        assert rec.base is not None, "a session must call rec.probe(prefix) first"
        self.rec = rec
        self.base = rec.base
        self.ttls = []
        self.problems = []
        m = rec.member
        self.subs = [(rec.cid, "<CID>")] + [(mid, "<MID>") for mid in rec.mids] + [
            (f"127.0.0.1:{m.client_port}", "127.0.0.1:<CPORT>"),
            (f"127.0.0.1:{m.peer_port}", "127.0.0.1:<PPORT>"),
            (f"port={m.client_port})", "port=<CPORT>)")]  # urllib3 errors

    def rel(self, n):
        n = int(n)
        if n < self.base or n > self.base + 10**7:
            return str(n)  # 0 (parameter errors), literal numbers written in requests
        d = n - self.base
        return "I%+d" % d if d else "I"

    def ids(self, s):
        for a, b in self.subs:
            if a:
                s = s.replace(a, b)
        return s

    def text(self, s):
        """Masks indexes, ids, ports, expirations and ttls inside free text/JSON."""
        s = self.ids(s)
        s = re.sub(r'"(modifiedIndex|createdIndex|index|etcd_index)":(\d+)',
                   lambda m: f'"{m.group(1)}":{self.rel(m.group(2))}', s)
        s = re.sub(r"(?<=/)(\d{20})\b", lambda m: f"<KEY {self.rel(m.group(1))}>", s)

        def exp(m):
            if not EXPIRATION_RE.match(m.group(2)):
                self.problems.append(f"bad expiration format {m.group(2)!r}")
                return m.group(0)
            return f'{m.group(1)}"<EXP>"'
        s = re.sub(r'("expiration":)"([^"]*)"', exp, s)

        def ttl(m):
            self.ttls.append(int(m.group(2)))
            return f"{m.group(1)}<TTL>"
        s = re.sub(r'("ttl":)(-?\d+)', ttl, s)
        s = re.sub(r"(^TTL: )(-?\d+)$", ttl, s, flags=re.M)
        s = re.sub(r"\[(\d+) != (\d+)\]",
                   lambda m: f"[{self.rel(m.group(1))} != {self.rel(m.group(2))}]", s)
        s = re.sub(r"\[(\d+)/(\d+)\]",
                   lambda m: f"[{self.rel(m.group(1))}/{self.rel(m.group(2))}]", s)
        s = re.sub(r"^(Created-Index|Modified-Index|Index): (\d+)$",
                   lambda m: f"{m.group(1)}: {self.rel(m.group(2))}", s, flags=re.M)
        s = re.sub(r"\) \[(\d+)\]$", lambda m: f") [{self.rel(m.group(1))}]", s, flags=re.M)
        return s

    def body(self, raw, path):
        s = raw.decode("utf-8", "surrogateescape")
        if '"nodes":' in s and not is_sorted_request(path):
            try:
                s = go_json(sort_nodes(json.loads(s, object_pairs_hook=list))) + (
                    "\n" if s.endswith("\n") else "")
            except ValueError:
                pass
        return self.text(s)

    def headers(self, r, watch):
        out = []
        for k, v in r.headers:
            lk = k.lower()
            if lk == "date":
                continue
            if lk in ("content-length", "transfer-encoding") and not watch:
                continue
            if lk == "x-etcd-cluster-id":
                v = self.ids(v)
            elif lk == "x-etcd-index":
                v = self.rel(v) if v.isdigit() else v
            elif lk in ("x-raft-index", "x-raft-term"):
                v = "<int>" if v.isdigit() else v
            else:
                v = self.ids(v)
            out.append(f"{k}: {v}")
        return sorted(out, key=str.lower)

    def check_raft(self, r):
        ri, rt = r.header("X-Raft-Index"), r.header("X-Raft-Term")
        if ri and ri.isdigit() and rt and rt.isdigit():
            cur = (int(rt), int(ri))
            if self.rec.raft and (cur[0] < self.rec.raft[-1][0] or cur[1] < self.rec.raft[-1][1]):
                self.problems.append(f"X-Raft-Term/X-Raft-Index went down: "
                                     f"{self.rec.raft[-1]} -> {cur}")
            self.rec.raft.append(cur)

    def response(self, r, path, watch=False):
        lines = [i.decode("latin-1") + " (interim)" for i in r.interim]
        lines += [r.status_line.decode("latin-1")]
        lines += ["  " + h for h in self.headers(r, watch)]
        cl = r.header("Content-Length")
        if cl is not None and r.body and int(cl) != len(r.body):
            lines.append(f"  FRAMING: Content-Length {cl} but body has {len(r.body)} bytes")
        if not r.complete:
            lines.append("  FRAMING: body cut off")
        self.check_raft(r)
        if r.body:
            lines.append("  body: " + self.body(r.body, path))
        return lines

    def py_value(self, v):
        import etcd
        if isinstance(v, etcd.EtcdResult):
            g = lambda name: getattr(v, name, None)  # noqa: E731 (not every call sets all)
            d = {"action": g("action"), "key": g("key"), "value": g("value"),
                 "dir": g("dir"), "ttl": g("ttl"), "expiration": g("expiration"),
                 "modifiedIndex": g("modifiedIndex"), "createdIndex": g("createdIndex"),
                 "newKey": g("newKey"), "etcd_index": g("etcd_index"),
                 "children": [c.key for c in v.leaves] if v.dir else None,
                 "prevNode": v._prev_node.key if g("_prev_node") else None}
            if d["children"] is not None:
                d["children"] = sorted(d["children"], key=lambda k: k or "")
            return self.text(json.dumps(d, separators=(",", ":"), sort_keys=True))
        if isinstance(v, (dict, list, str, int, float, bool)) or v is None:
            return self.text(json.dumps(v, separators=(",", ":"), sort_keys=True, default=str))
        return self.text(repr(v))

    def entry(self, e):
        kind, req, resp, meta = e
        req = re.sub(r"(waitIndex|prevIndex|-index)(=|': '| )(\d+)",
                      lambda m: m.group(1) + m.group(2) + self.rel(m.group(3)), req)
        lines = [">>> " + self.text(self.ids(req))]
        if kind == "http":
            lines += self.response(resp, meta.get("path", ""), meta.get("watch", False))
        elif kind == "watch-head":
            lines += self.response(resp, meta["path"], watch=True)
        elif kind == "chunk":
            if not meta["size_ok"]:
                lines.append("  FRAMING: chunk size line does not match its data")
            lines.append("  chunk: " + self.body(resp, meta["path"]))
        elif kind == "cli":
            lines.append(f"  exit: {resp.returncode}")
            out = resp.stdout.decode("utf-8", "replace")
            argv = req.split()
            if "ls" in argv and "--sort" not in argv and "-o" not in argv:
                # children order without --sort is arbitrary in etcd (spec 4.5)
                out = "".join(sorted(out.splitlines(keepends=True)))
            lines.append("  stdout: " + self.text(out).replace("\n", "\n          "))
            lines.append("  stderr: " + self.text(resp.stderr.decode("utf-8", "replace"))
                         .replace("\n", "\n          "))
        elif kind == "py":
            if resp[0] == "raise":
                e = resp[2]
                payload = getattr(e, "payload", None)
                lines.append(f"  raise {resp[1]}: {self.text(str(e))}")
                if payload is not None:
                    lines.append("  payload: " + self.py_value(payload))
            else:
                lines.append("  return " + self.py_value(resp[1]))
        else:
            lines.append("  " + self.text(resp if isinstance(resp, str) else json.dumps(
                resp, separators=(",", ":"), sort_keys=True, default=str)))
        return "\n".join(lines)


def transcript(rec):
    n = Normalizer(rec)
    texts = [n.entry(e) for e in rec.entries]
    return texts, n.ttls, n.problems


def compare(reference, candidate, session):
    """Runs session against both members and asserts the normalised transcripts are
    equal (ttls within +-2). Returns the two recorders."""
    ref = Recorder(reference, "reference")
    try:
        session(ref)
    finally:
        ref.cleanup()
    cand = Recorder(candidate, "candidate")
    try:
        session(cand)
    finally:
        cand.cleanup()
    assert_same(ref, cand, candidate.kind)
    return ref, cand


def assert_same(ref, cand, cand_kind="candidate"):
    """Normalises both recorders' transcripts and asserts they are equal (ttls +-2)."""
    rt, rttl, rprob = transcript(ref)
    ct, cttl, cprob = transcript(cand)
    dump = os.environ.get("KETCH_COMPAT_DUMP")
    if dump:  # a directory to write both transcripts to, for reading or debugging
        name = os.environ.get("PYTEST_CURRENT_TEST", "session").split(" ")[0]
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        os.makedirs(dump, exist_ok=True)
        for role, t in (("reference", rt), ("candidate", ct)):
            with open(os.path.join(dump, f"{name}.{role}.txt"), "w") as f:
                f.write("\n\n".join(t) + "\n")
    assert not rprob, f"reference (etcd) broke a format rule: {rprob}"
    assert not cprob, f"candidate ({cand_kind}) broke a format rule: {cprob}"
    if rt != ct:
        diff = "\n".join(difflib.unified_diff("\n".join(rt).splitlines(),
                                              "\n".join(ct).splitlines(),
                                              "reference etcd", f"candidate {cand_kind}",
                                              lineterm="", n=4))
        raise AssertionError(f"session differs:\n{diff}")
    assert len(rttl) == len(cttl)
    for a, b in zip(rttl, cttl):
        assert abs(a - b) <= TTL_SLACK_S, (
            f"ttl {a} (reference) vs {b} (candidate) differ by more than {TTL_SLACK_S}")
