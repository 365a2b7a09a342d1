"""Process-level harness shared by the compatibility and robustness suites.

It starts store members of either kind -- real etcd ("etcd") or ours ("ketchd") -- with
the same etcd-style flags, talks raw HTTP/1.1 to them so that status lines, header names
and values, body bytes and chunk framing can be checked exactly, and records scripted
sessions so the same session can be compared between the reference (always real etcd)
and the candidate (KETCH_COMPAT_CANDIDATE, default ketchd).

Rules kept here (STYLE.md section 9): nothing sleeps blindly -- every wait polls a
condition with a deadline; every process is started by this module, remembered by PID,
and stopped by the fixture that started it, even when a test fails.
"""
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

ETCD_BIN = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL_BIN = shutil.which("etcdctl") or "/usr/bin/etcdctl"


def candidate_kind():
    """Which implementation plays the candidate: 'ketchd' (default) or 'etcd'."""
    kind = os.environ.get("KETCH_COMPAT_CANDIDATE", "ketchd").strip() or "ketchd"
    if kind not in ("ketchd", "etcd"):
        raise ValueError(f"KETCH_COMPAT_CANDIDATE must be 'ketchd' or 'etcd', not {kind!r}")
    return kind


KETCHD_ONLY_REASON = ("ketchd-only case: KETCH_COMPAT_CANDIDATE=etcd, and real etcd has "
                      "neither ketchd's <data-dir>/ketch/ files nor its refusal messages")


def ketchd_only():
    """Skips the calling test unless the candidate is ketchd (etcd cannot run it)."""
    if candidate_kind() != "ketchd":
        pytest.skip(KETCHD_ONLY_REASON)


# What ketchd cannot do yet, named so the skip or expected failure says which issue fixes it.
# Each marker applies only when the candidate is ketchd: against etcd the test still runs.
def known_gap(reason):
    """A ketchd difference from etcd that is known and will be fixed: strict, so the test
    turns red (XPASS) the day it is fixed and the marker must go."""
    return pytest.mark.xfail(candidate_kind() == "ketchd", reason=reason, strict=True)


# Decorator form: skips before any fixture starts a member.
ketchd_only_test = pytest.mark.skipif(candidate_kind() != "ketchd", reason=KETCHD_ONLY_REASON)


def bin_dir():
    d = os.environ.get("KETCH_BIN_DIR")
    if not d:
        d = str(pathlib.Path(__file__).resolve().parents[2] / "build" / "asan" / "bin")
    return pathlib.Path(d)


def binary_for(kind):
    if kind == "etcd":
        return ETCD_BIN
    if kind == "ketchd":
        return str(bin_dir() / "ketchd")
    raise ValueError(kind)


# ---------------------------------------------------------------------------------------
# Waiting without blind sleeps


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        return max(0.0, self.end - time.monotonic())

    def passed(self):
        return time.monotonic() >= self.end


def wait_until(cond, timeout, what, interval=0.02):
    """Polls cond() until it returns a truthy value (returned) or timeout seconds pass
    (AssertionError naming what was awaited)."""
    deadline = Deadline(timeout)
    last_exc = None
    while True:
        try:
            v = cond()
            if v:
                return v
        except (OSError, ValueError) as e:  # not ready yet: connection refused, bad reply
            last_exc = e
        if deadline.passed():
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(min(interval, deadline.left()))


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (bound to port 0 together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------------------------------------
# Raw HTTP/1.1


class Response:
    """One HTTP response as seen on the wire."""

    def __init__(self):
        self.status_line = b""
        self.status = 0
        self.reason = ""
        self.headers = []  # [(name as sent, value)], in wire order
        self.body = b""
        self.chunks = None  # [bytes] per chunk when chunked (terminating chunk excluded)
        self.chunk_sizes_raw = None  # the size lines as sent, e.g. [b"57"]
        self.complete = True  # False when the connection ended before the body did
        self.interim = []  # 1xx responses before this one (status lines)

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_names(self):
        return [k for k, _ in self.headers]

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def text(self):
        return self.body.decode("utf-8", "surrogateescape")

    def __repr__(self):
        return f"<Response {self.status} {self.headers} {self.body[:300]!r}>"


class Connection:
    """A client socket with a read buffer; parses responses one at a time, so it serves
    keep-alive, pipelining and streaming watches alike."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.port = port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def settimeout(self, t):
        self.sock.settimeout(t)

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        if self.eof:
            return False
        try:
            d = self.sock.recv(65536)
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def read_line(self):
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise EOFError(f"connection closed before a full line; have {self.buf[:200]!r}")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"connection closed after {len(self.buf)} of {n} bytes")
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def read_all(self):
        while self._fill():
            pass
        d, self.buf = self.buf, b""
        return d

    def read_head(self, resp=None):
        """Reads a status line and headers (skipping 1xx interim responses)."""
        resp = resp or Response()
        while True:
            line = self.read_line()
            resp.status_line = line
            parts = line.decode("latin-1").split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise ValueError(f"bad status line {line!r}")
            resp.status = int(parts[1])
            resp.reason = parts[2] if len(parts) > 2 else ""
            resp.headers = []
            while True:
                h = self.read_line()
                if h == b"":
                    break
                name, _, value = h.decode("latin-1").partition(":")
                resp.headers.append((name, value.strip()))
            if 100 <= resp.status < 200:
                resp.interim.append(line)
                continue
            return resp

    def read_chunk(self, resp):
        """Reads one chunk; returns its data, or None at the terminating chunk."""
        size_line = self.read_line()
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            while self.read_line() != b"":  # trailers
                pass
            return None
        data = self.read_exact(size)
        if self.read_exact(2) != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
        resp.chunks.append(data)
        resp.chunk_sizes_raw.append(size_line)
        return data

    def read_body(self, resp, method):
        if method == "HEAD" or resp.status in (204, 304):
            return resp
        te = (resp.header("Transfer-Encoding") or "").lower()
        if te == "chunked":
            resp.chunks, resp.chunk_sizes_raw = [], []
            while True:
                try:
                    d = self.read_chunk(resp)
                except EOFError:
                    resp.complete = False
                    break
                if d is None:
                    break
            resp.body = b"".join(resp.chunks)
        elif resp.header("Content-Length") is not None:
            resp.body = self.read_exact(int(resp.header("Content-Length")))
        else:
            resp.body = self.read_all()
        return resp

    def read_response(self, method="GET"):
        resp = self.read_head()
        return self.read_body(resp, method)

    def request(self, method, path, body=None, headers=None, read=True):
        self.send(build_request(method, path, body, headers))
        if read:
            return self.read_response(method)
        return None


def build_request(method, path, body=None, headers=None, host="127.0.0.1"):
    """Bytes of an HTTP/1.1 request. A dict or list body is form-encoded (the caller's
    Content-Type wins if given); str/bytes bodies are sent as they are."""
    hdrs = [("Host", host)]
    extra = list((headers or {}).items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in extra}
    if isinstance(body, (dict, list)):
        from urllib.parse import urlencode
        body = urlencode(body)
        if "content-type" not in names:
            hdrs.append(("Content-Type", "application/x-www-form-urlencoded"))
    if isinstance(body, str):
        body = body.encode("utf-8")
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        hdrs.append(("Content-Length", str(len(body))))
    hdrs += extra
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs) + "\r\n"
    return head.encode("utf-8") + (body or b"")


def http(port, method, path, body=None, headers=None, timeout=10.0, host="127.0.0.1"):
    """One request on a fresh connection; returns the whole Response."""
    with Connection(port, host=host, timeout=timeout) as c:
        return c.request(method, path, body, headers)


# ---------------------------------------------------------------------------------------
# Members


def die_with_parent():
    """Runs in the child before exec: SIGKILL it when the thread that started it dies, so
    a test process killed from outside (a CI timeout) leaves no member behind. Members are
    therefore started from the main thread (fixtures), never from helper threads."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Member:
    """One store member process (etcd or ketchd) with etcd's flags.

    The same flags are given to both kinds; etcd additionally gets --enable-v2=true, which
    ketchd accepts and ignores (it always serves v2), so it is passed to both.

    host and peer_host are the addresses of the client and peer URLs (127.0.0.1 unless
    the member runs in a network namespace of its own, netns: then argv starts with
    `ip netns exec <netns>`, which execs the member, so the PID is still the member's)."""

    def __init__(self, kind, name, data_dir, client_port, peer_port, initial_cluster=None,
                 initial_cluster_state="new", token="etcd-cluster", extra_flags=(),
                 log_dir=None, host="127.0.0.1", peer_host=None, netns=None):
        self.kind = kind
        self.name = name
        self.host = host
        self.peer_host = peer_host or host
        self.netns = netns
        self.data_dir = str(data_dir)
        self.client_port = client_port
        self.peer_port = peer_port
        self.initial_cluster = initial_cluster or f"{name}=http://{self.peer_host}:{peer_port}"
        self.initial_cluster_state = initial_cluster_state
        self.token = token
        self.extra_flags = list(extra_flags)
        self.log_dir = str(log_dir or pathlib.Path(self.data_dir).parent)
        self.extra_env = {}  # added to the process environment (LD_PRELOAD shims in tests)
        self.proc = None
        self.starts = 0
        self.last_stdout = self.last_stderr = None

    @property
    def client_url(self):
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self):
        return f"http://{self.peer_host}:{self.peer_port}"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def http(self, method, path, body=None, headers=None, timeout=10.0):
        """One request to this member's client URL."""
        return http(self.client_port, method, path, body, headers, timeout, host=self.host)

    def argv(self):
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        return prefix + [binary_for(self.kind),
                f"--name={self.name}",
                f"--data-dir={self.data_dir}",
                f"--listen-client-urls={self.client_url}",
                f"--advertise-client-urls={self.client_url}",
                f"--listen-peer-urls={self.peer_url}",
                f"--initial-advertise-peer-urls={self.peer_url}",
                f"--initial-cluster={self.initial_cluster}",
                f"--initial-cluster-state={self.initial_cluster_state}",
                f"--initial-cluster-token={self.token}",
                "--enable-v2=true"] + self.extra_flags

    def spawn(self):
        """Starts the process without waiting for readiness."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        base = os.path.join(self.log_dir, f"{self.name}.{self.kind}.{self.starts}")
        self.last_stdout, self.last_stderr = base + ".out", base + ".err"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
        env.update(self.extra_env)
        with open(self.last_stdout, "wb") as out, open(self.last_stderr, "wb") as err:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, env=env, cwd=self.log_dir,
                                         preexec_fn=die_with_parent)
        return self.proc

    def start(self, timeout=30.0):
        self.spawn()
        self.wait_ready(timeout)
        return self

    def is_ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.kind} {self.name} exited with {self.proc.returncode} "
                                 f"during start:\n{self.log_tail()}")
        v = self.http("GET", "/version", timeout=2)
        if v.status != 200:
            return False
        h = self.http("GET", "/health", timeout=2)
        return h.status == 200 and b'"true"' in h.body

    def wait_ready(self, timeout=30.0):
        wait_until(self.is_ready, timeout, f"{self.kind} member {self.name} on "
                   f"{self.client_url} to answer /version and a healthy /health")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=10.0):
        """SIGTERM, a bounded wait, then SIGKILL. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)  # a paused process cannot exit
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait_exit(timeout) is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def kill9(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=10)

    def thread_states(self):
        states = []
        for t in pathlib.Path(f"/proc/{self.pid}/task").iterdir():
            try:
                stat = (t / "stat").read_text()
            except OSError:
                continue  # the thread ended
            states.append(stat.rsplit(")", 1)[1].split()[0])
        return states

    def pause(self):
        """SIGSTOP, then waits until every thread of the process is stopped (the signal
        is delivered asynchronously; a request could still be served meanwhile)."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        wait_until(lambda: all(s in ("T", "t") for s in self.thread_states()), 10,
                   f"{self.kind} {self.name} to be stopped")

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self, timeout=30.0):
        """Stops (if running) and starts again on the same data dir and ports."""
        self.stop()
        return self.start(timeout)

    def stderr_text(self):
        try:
            return pathlib.Path(self.last_stderr).read_text(errors="replace")
        except (OSError, TypeError):
            return ""

    def log_tail(self, lines=30):
        return "\n".join(self.stderr_text().splitlines()[-lines:])

    def identity_self(self):
        """This member's own id, from /v2/stats/self."""
        return self.http("GET", "/v2/stats/self").json()["id"]

    # Identity as the member reports it (used to mask ids in comparisons).
    def identity(self):
        r = self.http("GET", "/v2/members")
        cid = r.header("X-Etcd-Cluster-Id")
        mids = [m["id"] for m in r.json()["members"]]
        return cid, mids


def new_member(kind, base_dir, name="compat", extra_flags=()):
    """A single-member cluster of the given kind in base_dir/<name>.<kind>, on free ports
    (retried when a port was taken between choosing and binding)."""
    last = None
    for attempt in range(3):
        cport, pport = free_ports(2)
        data = os.path.join(base_dir, f"{name}.{kind}.data")
        shutil.rmtree(data, ignore_errors=True)
        m = Member(kind, name, data, cport, pport, extra_flags=extra_flags, log_dir=base_dir)
        try:
            return m.start()
        except AssertionError as e:
            last = e
            m.stop()
            if "address already in use" not in m.stderr_text():
                raise
    raise last


def stop_all(members, timeout=10.0):
    """SIGTERM to every running member at once, then the bounded stop of each (members
    of a cluster stopped one by one can wait on each other)."""
    for m in members:
        if m.alive():
            try:
                os.kill(m.pid, signal.SIGCONT)
                m.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    for m in members:
        m.stop(timeout)


def new_cluster(kind, base_dir, n=3, token="etcd-cluster", extra_flags=(), timeout=60.0):
    """A static cluster of n members of one kind; waits until each is ready."""
    ports = free_ports(2 * n)
    names = [f"m{i}" for i in range(n)]
    ic = ",".join(f"{nm}=http://127.0.0.1:{ports[2 * i + 1]}" for i, nm in enumerate(names))
    members = [Member(kind, nm, os.path.join(base_dir, f"{nm}.data"), ports[2 * i],
                      ports[2 * i + 1], initial_cluster=ic, token=token,
                      extra_flags=extra_flags, log_dir=base_dir)
               for i, nm in enumerate(names)]
    try:
        for m in members:
            m.spawn()
        for m in members:
            m.wait_ready(timeout)
    except BaseException:
        for m in members:
            m.stop()
        raise
    return members


class TempDir:
    def __init__(self, prefix):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# etcdctl


def etcdctl_argv(port, *args, endpoints=None):
    """(argv, env) of Debian's etcdctl in v2 mode against one endpoint."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "2"
    argv = [ETCDCTL_BIN, "--endpoints", endpoints or f"http://127.0.0.1:{port}"] + list(args)
    return argv, env


def etcdctl(port, *args, stdin=None, timeout=20.0, endpoints=None):
    argv, env = etcdctl_argv(port, *args, endpoints=endpoints)
    return subprocess.run(argv, input=stdin if stdin is not None else b"",
                          capture_output=True, timeout=timeout, env=env)
