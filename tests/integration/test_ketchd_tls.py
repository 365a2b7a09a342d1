"""TLS on ketchd's client and peer ports, with etcd's flags, against real clients.

Certificates are made at run time with the openssl CLI in a temporary directory (a CA, a
server certificate for 127.0.0.1/localhost, a client certificate, and a second CA with a
client certificate of its own); no key is ever committed. Where it is cheap, the same
session runs against real etcd started with the same flags, and status codes, bodies and
client outputs must be equal (indexes are taken relative to the session's first write).
"""
import http.client
import json
import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import time

import pytest

import harness

CURL = shutil.which("curl") or "/usr/bin/curl"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

pytestmark = harness.ketchd_only_test  # the ketchd side of every comparison is the point


# ---------------------------------------------------------------------------------------
# Certificates


class Pki:
    def __init__(self, d):
        self.dir = d
        p = lambda n: os.path.join(d, n)  # noqa: E731
        self.ca, self.ca_key = p("ca.pem"), p("ca-key.pem")
        self.server, self.server_key = p("server.pem"), p("server-key.pem")
        self.client, self.client_key = p("client.pem"), p("client-key.pem")
        self.other_ca, self.other_ca_key = p("other-ca.pem"), p("other-ca-key.pem")
        self.rogue, self.rogue_key = p("rogue.pem"), p("rogue-key.pem")


EXTENSIONS = """
[server]
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
[client]
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
"""


def _openssl(*args):
    r = subprocess.run([OPENSSL] + list(args), capture_output=True, timeout=60)
    assert r.returncode == 0, f"openssl {args}: {r.stderr.decode()}"


def _make_ca(cert, key, cn):
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={cn}")


def _make_leaf(pki, cert, key, cn, section, ca, ca_key):
    csr = cert + ".csr"
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", csr, "-subj", f"/CN={cn}")
    _openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
             "-out", cert, "-days", "2", "-extfile", os.path.join(pki.dir, "ext.cnf"),
             "-extensions", section)
    os.unlink(csr)


@pytest.fixture(scope="module")
def pki():
    tmp = harness.TempDir("ketch-tls-pki-")
    try:
        k = Pki(tmp.path)
        with open(os.path.join(k.dir, "ext.cnf"), "w") as f:
            f.write(EXTENSIONS)
        _make_ca(k.ca, k.ca_key, "ketch test CA")
        _make_leaf(k, k.server, k.server_key, "server", "server", k.ca, k.ca_key)
        _make_leaf(k, k.client, k.client_key, "client", "client", k.ca, k.ca_key)
        _make_ca(k.other_ca, k.other_ca_key, "other CA")
        _make_leaf(k, k.rogue, k.rogue_key, "rogue", "client", k.other_ca, k.other_ca_key)
        yield k
    finally:
        tmp.remove()


# ---------------------------------------------------------------------------------------
# Members with https:// URLs


class TlsMember(harness.Member):
    """A member whose client URL (and, with peer_tls, peer URL) is https://; flags is the
    TLS flags both kinds get. Readiness is checked over TLS."""

    def __init__(self, *a, pki=None, peer_tls=False, client_cert=False, **kw):
        self.pki = pki
        self.peer_tls = peer_tls
        self.client_cert = client_cert  # the member wants a client certificate
        super().__init__(*a, **kw)

    @property
    def client_url(self):
        return f"https://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self):
        return f"{'https' if self.peer_tls else 'http'}://127.0.0.1:{self.peer_port}"

    def is_ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.kind} {self.name} exited with {self.proc.returncode} "
                                 f"during start:\n{self.log_tail()}")
        status, _, body = https(self, "GET", "/health", timeout=2)
        return status == 200 and b'"true"' in body


def ssl_context(pki, cert=True):
    ctx = ssl.create_default_context(cafile=pki.ca)
    if cert:
        ctx.load_cert_chain(pki.client, pki.client_key)
    return ctx


def https(member, method, path, body=None, timeout=10, cert=None, headers=None):
    """One request over TLS (a client certificate when the member wants one, or as cert
    says); returns (status, headers, body)."""
    use_cert = member.client_cert if cert is None else cert
    conn = http.client.HTTPSConnection("127.0.0.1", member.client_port, timeout=timeout,
                                       context=ssl_context(member.pki, use_cert))
    try:
        if headers is None:
            headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def tls_flags(pki, client_auth=False, peer_tls=False):
    flags = [f"--cert-file={pki.server}", f"--key-file={pki.server_key}"]
    if client_auth:
        flags += ["--client-cert-auth", f"--trusted-ca-file={pki.ca}"]
    if peer_tls:
        flags += [f"--peer-cert-file={pki.server}", f"--peer-key-file={pki.server_key}",
                  f"--peer-trusted-ca-file={pki.ca}", "--peer-client-cert-auth"]
    return flags


def start_member(kind, pki, base, name="tls", client_auth=False):
    cport, pport = harness.free_ports(2)
    m = TlsMember(kind, name, os.path.join(base, f"{name}.{kind}.data"), cport, pport,
                  extra_flags=tls_flags(pki, client_auth), log_dir=base, pki=pki,
                  client_cert=client_auth)
    try:
        return m.start()
    except BaseException:
        m.stop()
        raise


@pytest.fixture
def tmpdir_tls():
    tmp = harness.TempDir("ketch-tls-")
    yield tmp.path
    tmp.remove()


@pytest.fixture
def pair(pki, tmpdir_tls):
    """Real etcd and ketchd, each one member with an https:// client URL."""
    members = []
    try:
        members.append(start_member("etcd", pki, tmpdir_tls))
        members.append(start_member("ketchd", pki, tmpdir_tls))
        yield members
    finally:
        harness.stop_all(members)


@pytest.fixture
def pair_auth(pki, tmpdir_tls):
    """As pair, with --client-cert-auth --trusted-ca-file."""
    members = []
    try:
        members.append(start_member("etcd", pki, tmpdir_tls, client_auth=True))
        members.append(start_member("ketchd", pki, tmpdir_tls, client_auth=True))
        yield members
    finally:
        harness.stop_all(members)


# ---------------------------------------------------------------------------------------
# Clients


def curl_argv(m, path, *extra, cacert=True, cert=None, method=None, data=None):
    argv = [CURL, "-sS", "--http1.1", "--max-time", "20"]
    if cacert:
        argv += ["--cacert", m.pki.ca]
    if cert:
        argv += ["--cert", cert[0], "--key", cert[1]]
    if method:
        argv += ["-X", method]
    if data is not None:
        argv += ["-d", data]
    return argv + list(extra) + [f"{m.client_url}{path}"]


def curl(m, path, **kw):
    """(exit status, HTTP status or None, body)."""
    argv = curl_argv(m, path, "-w", "\n%{http_code}", **kw)
    r = subprocess.run(argv, capture_output=True, timeout=30)
    out = r.stdout
    body, _, code = out.rpartition(b"\n")
    status = int(code) if code.strip().isdigit() and int(code) else None
    return r.returncode, status, body


class Normalizer:
    """Indexes relative to the session's first write, so two fresh members compare."""

    def __init__(self):
        self.base = None

    def __call__(self, body):
        try:
            doc = json.loads(body)
        except ValueError:
            return body
        return self.walk(doc)

    def walk(self, v):
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if k in ("createdIndex", "modifiedIndex", "index") and isinstance(x, int):
                    if self.base is None:
                        self.base = x
                    out[k] = x - self.base
                elif k == "expiration":
                    out[k] = "<time>"
                else:
                    out[k] = self.walk(x)
            return out
        if isinstance(v, list):
            return [self.walk(x) for x in v]
        return v


def store_watchers(m):
    status, _, body = https(m, "GET", "/v2/stats/store")
    assert status == 200
    return json.loads(body)["watchers"]


def read_lines(proc, n, timeout):
    """n lines from proc's stdout, within timeout seconds."""
    deadline = harness.Deadline(timeout)
    buf = b""
    fd = proc.stdout.fileno()
    while buf.count(b"\n") < n:
        left = deadline.left()
        assert left > 0, f"timed out reading {n} lines; got {buf!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
    return buf.split(b"\n")[:n]


# ---------------------------------------------------------------------------------------
# The client port


def keys_session(m):
    norm = Normalizer()
    out = []
    for method, path, data in [("PUT", "/v2/keys/tls/a", "value=1"),
                               ("GET", "/v2/keys/tls/a", None),
                               ("PUT", "/v2/keys/tls/a?prevExist=false", "value=2"),
                               ("GET", "/v2/keys/tls/missing", None),
                               ("POST", "/v2/keys/tls/queue", "value=q"),
                               ("GET", "/v2/keys/tls?recursive=true&sorted=true", None),
                               ("DELETE", "/v2/keys/tls/a", None)]:
        rc, status, body = curl(m, path, method=method, data=data)
        assert rc == 0, f"curl {method} {path} on {m.kind}: exit {rc}"
        out.append((method, path, status, norm(body)))
    return out


def test_curl_over_https_reads_and_writes_as_with_etcd(pair):
    etcd, ketchd = pair
    got = keys_session(ketchd)
    assert [s for _, _, s, _ in got] == [201, 200, 412, 404, 201, 200, 200]
    assert got == keys_session(etcd)


def watch_session(m):
    norm = Normalizer()
    out = []
    rc, status, body = curl(m, "/v2/keys/w/k", method="PUT", data="value=0")
    assert (rc, status) == (0, 201)
    out.append(norm(body))
    # A waiting watch answered by a later write.
    base = store_watchers(m)
    proc = subprocess.Popen(curl_argv(m, "/v2/keys/w/k?wait=true"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        harness.wait_until(lambda: store_watchers(m) > base, 10, f"the watch on {m.kind}")
        rc, status, _ = curl(m, "/v2/keys/w/k", method="PUT", data="value=1")
        assert (rc, status) == (0, 200)
        stdout, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0
        out.append(norm(stdout))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    # A streaming watch: chunked events over TLS, one per write.
    base = store_watchers(m)
    proc = subprocess.Popen(curl_argv(m, "/v2/keys/w?wait=true&recursive=true&stream=true", "-N"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        harness.wait_until(lambda: store_watchers(m) > base, 10, f"the stream on {m.kind}")
        for i in range(3):
            rc, status, _ = curl(m, f"/v2/keys/w/s{i}", method="PUT", data=f"value=v{i}")
            assert (rc, status) == (0, 201)
        for line in read_lines(proc, 3, 10):
            out.append(norm(line))
    finally:
        proc.kill()
        proc.wait(timeout=10)
    return out


def test_watches_wait_and_stream_over_https_as_with_etcd(pair):
    etcd, ketchd = pair
    got = watch_session(ketchd)
    assert [e["action"] for e in got] == ["set", "set", "set", "set", "set"]
    assert [e["node"]["value"] for e in got[2:]] == ["v0", "v1", "v2"]
    assert got == watch_session(etcd)


def test_curl_without_the_ca_fails_verification(pair):
    for m in pair:
        rc, status, _ = curl(m, "/version", cacert=False)
        assert (rc, status) == (60, None), m.kind  # curl: peer certificate cannot be verified


def test_client_cert_auth_refuses_clients_without_a_certificate_of_the_ca(pki, pair_auth):
    results = {}
    for m in pair_auth:
        no_cert = curl(m, "/v2/keys/")
        rogue = curl(m, "/v2/keys/", cert=(pki.rogue, pki.rogue_key))
        good = curl(m, "/v2/keys/", cert=(pki.client, pki.client_key))
        assert no_cert[0] != 0 and no_cert[1] is None, (m.kind, no_cert)
        assert rogue[0] != 0 and rogue[1] is None, (m.kind, rogue)
        assert good[:2] == (0, 200), (m.kind, good)
        # curl's exit status for a refusal (56 or 55) depends on when the alert overtakes
        # its request, so only "refused" is compared.
        results[m.kind] = (no_cert[1], rogue[1], Normalizer()(good[2]))
    assert results["ketchd"] == results["etcd"]


def test_python_etcd_over_https_with_a_client_certificate(pki, pair_auth):
    import etcd as python_etcd

    def session(m):
        c = python_etcd.Client(host="127.0.0.1", port=m.client_port, protocol="https",
                               ca_cert=pki.ca, cert=(pki.client, pki.client_key))
        norm = Normalizer()
        out = []
        r = c.write("/py/a", "1")
        out.append(norm(json.dumps({"modifiedIndex": r.modifiedIndex, "value": r.value})))
        first = r.modifiedIndex
        c.write("/py/a", "2")
        out.append(c.read("/py/a").value)
        w = c.watch("/py/a", index=first + 1, timeout=10)  # already happened: returns at once
        out.append((w.action, w.value))
        try:
            c.read("/py/missing")
            out.append("found")
        except python_etcd.EtcdKeyNotFound:
            out.append("EtcdKeyNotFound")
        c.delete("/py/a")
        out.append(sorted(ch.key for ch in c.read("/py", recursive=True).leaves))
        return out

    got = {m.kind: session(m) for m in pair_auth}
    assert got["ketchd"][1:4] == ["2", ("set", "2"), "EtcdKeyNotFound"]
    assert got["ketchd"] == got["etcd"]


def test_etcdctl_over_https_with_a_client_certificate(pki, pair_auth):
    def session(m):
        out = []
        # ls --sort: etcd lists a directory in Go map order otherwise.
        for args in (["set", "/ctl/a", "hello"], ["get", "/ctl/a"], ["mkdir", "/ctl/d"],
                     ["ls", "--sort", "--recursive", "/ctl"], ["get", "/ctl/missing"],
                     ["rm", "/ctl/a"]):
            argv, env = harness.etcdctl_argv(
                m.client_port, "--ca-file", pki.ca, "--cert-file", pki.client, "--key-file",
                pki.client_key, *args, endpoints=m.client_url)
            r = subprocess.run(argv, capture_output=True, timeout=30, env=env)
            err = re.sub(rb"\[\d+\]", b"[N]", r.stderr)  # the index in "Key not found"
            out.append((args[0], r.returncode, r.stdout, err))
        return out

    got = {m.kind: session(m) for m in pair_auth}
    assert got["ketchd"][0][1:3] == (0, b"hello\n")
    assert got["ketchd"][1][1:3] == (0, b"hello\n")
    assert got["ketchd"] == got["etcd"]


# ---------------------------------------------------------------------------------------
# Bad files and hostile input


def test_bad_tls_files_stop_ketchd_at_start_with_one_line(pki, tmpdir_tls):
    missing = os.path.join(pki.dir, "missing.pem")
    cases = [
        (["--cert-file", missing, "--key-file", pki.server_key], "--cert-file", "No such file"),
        (["--cert-file", pki.server, "--key-file", pki.client_key], "--key-file",
         "does not match --cert-file"),
        (["--cert-file", pki.server, "--key-file", pki.server_key, "--client-cert-auth",
          "--trusted-ca-file", pki.server_key], "--trusted-ca-file", "no PEM CA certificate"),
    ]
    for i, (flags, flag, why) in enumerate(cases):
        cport, pport = harness.free_ports(2)
        m = TlsMember("ketchd", f"bad{i}", os.path.join(tmpdir_tls, f"bad{i}"), cport, pport,
                      extra_flags=flags, log_dir=tmpdir_tls, pki=pki)
        m.spawn()
        assert m.wait_exit(30) == 1, m.log_tail()
        err = open(m.last_stderr, "rb").read().decode()
        lines = [ln for ln in err.splitlines() if ln.startswith("ketchd: ")]
        assert len(lines) == 1, err
        assert flag in lines[0] and why in lines[0], lines[0]
        assert not os.path.exists(os.path.join(tmpdir_tls, f"bad{i}", "member")), \
            "nothing is written before the files are checked"


def raw_exchange(port, data, timeout=10):
    """Sends data, reads until the server closes; returns what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if data:
            s.sendall(data)
        out = b""
        deadline = harness.Deadline(timeout)
        while not deadline.passed():
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            out += d
        else:
            raise AssertionError(f"the server kept the connection open past {timeout}s")
        return out


def test_plain_http_and_garbage_on_the_https_port_are_closed(pki, tmpdir_tls):
    m = start_member("ketchd", pki, tmpdir_tls)
    try:
        idle = socket.create_connection(("127.0.0.1", m.client_port), timeout=10)  # says nothing
        plain = raw_exchange(m.client_port, b"GET /v2/keys/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"HTTP/" not in plain  # no answer in clear text (etcd closes too)
        assert raw_exchange(m.client_port, bytes(range(256)) * 64)[:1] in (b"", b"\x15")
        hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"  # a ClientHello cut short
        with socket.create_connection(("127.0.0.1", m.client_port), timeout=10) as s:
            s.sendall(hello)
        huge = b"\x16\x03\x01\xff\xff" + b"\x00" * 70000  # a record longer than allowed
        assert raw_exchange(m.client_port, huge)[:1] in (b"", b"\x15")
        # The member still serves TLS clients, also while a silent connection is open.
        assert https(m, "PUT", "/v2/keys/after", body="value=ok")[0] == 201
        assert https(m, "GET", "/v2/keys/after")[0] == 200
        idle.close()
        assert m.alive()
        log = open(m.last_stdout, "rb").read() + open(m.last_stderr, "rb").read()
        assert b"rejected TLS connection" in log
    finally:
        m.stop()
    assert m.proc.returncode == 0


def test_a_tls_client_on_a_plain_port_fails_and_the_member_serves_on(pki, tmpdir_tls):
    m = harness.new_member("ketchd", tmpdir_tls, name="plain")
    try:
        ctx = ssl.create_default_context(cafile=pki.ca)
        with socket.create_connection(("127.0.0.1", m.client_port), timeout=10) as raw:
            with pytest.raises((ssl.SSLError, ConnectionResetError)):
                ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        rc = subprocess.run([CURL, "-sS", "--max-time", "10", "--cacert", pki.ca,
                             f"https://127.0.0.1:{m.client_port}/version"],
                            capture_output=True, timeout=30).returncode
        assert rc == 35  # curl: TLS connect error
        assert harness.http(m.client_port, "GET", "/version").status == 200
        assert m.alive()
    finally:
        m.stop()
    assert m.proc.returncode == 0


# ---------------------------------------------------------------------------------------
# The peer port


def test_three_members_over_https_peers_with_peer_client_cert_auth(pki, tmpdir_tls):
    ports = harness.free_ports(6)
    names = ["m0", "m1", "m2"]
    ic = ",".join(f"{n}=https://127.0.0.1:{ports[2 * i + 1]}" for i, n in enumerate(names))
    members = [TlsMember("ketchd", n, os.path.join(tmpdir_tls, f"{n}.data"), ports[2 * i],
                         ports[2 * i + 1], initial_cluster=ic,
                         extra_flags=tls_flags(pki, peer_tls=True), log_dir=tmpdir_tls,
                         pki=pki, peer_tls=True)
               for i, n in enumerate(names)]
    try:
        for m in members:
            m.spawn()
        for m in members:
            m.wait_ready(60)
        m0, m1, m2 = members
        status, _, body = https(m0, "GET", "/v2/members")
        assert status == 200
        peer_urls = sorted(u for mem in json.loads(body)["members"] for u in mem["peerURLs"])
        assert peer_urls == sorted(m.peer_url for m in members)
        assert all(u.startswith("https://") for u in peer_urls)
        assert https(m1, "PUT", "/v2/keys/over/tls", body="value=peers")[0] == 201
        status, _, body = https(m2, "GET", "/v2/keys/over/tls?quorum=true")
        assert status == 200 and json.loads(body)["node"]["value"] == "peers"

        # A dialer without a certificate of the peer CA is refused at the handshake.
        port = m0.peer_port
        for ctx_cert in (None, (pki.rogue, pki.rogue_key)):
            ctx = ssl.create_default_context(cafile=pki.ca)
            if ctx_cert:
                ctx.load_cert_chain(*ctx_cert)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
                    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                        s.sendall(b"\x21\x00\x00\x00\x01KETCHPR1")
                        s.recv(16)  # TLS 1.3: the refusal arrives after the handshake
        # Plain bytes on the peer port are closed too.
        assert raw_exchange(port, b"\x21\x00\x00\x00\x01KETCHPR1" + b"\x00" * 24)[:1] in \
            (b"", b"\x15")
        # The cluster still works after all that.
        assert https(m0, "PUT", "/v2/keys/over/tls", body="value=again")[0] == 200
        status, _, body = https(m1, "GET", "/v2/keys/over/tls?quorum=true")
        assert status == 200 and json.loads(body)["node"]["value"] == "again"

        # A fourth member joins over https: added through /v2/members, then started with
        # --initial-cluster-state existing, it asks a peer for the members inside TLS.
        cport, pport = harness.free_ports(2)
        url = f"https://127.0.0.1:{pport}"
        status, _, body = https(m0, "POST", "/v2/members",
                                body=json.dumps({"peerURLs": [url]}).encode(),
                                headers={"Content-Type": "application/json"})
        assert status == 201, body
        m3 = TlsMember("ketchd", "m3", os.path.join(tmpdir_tls, "m3.data"), cport, pport,
                       initial_cluster=f"{ic},m3={url}", initial_cluster_state="existing",
                       extra_flags=tls_flags(pki, peer_tls=True), log_dir=tmpdir_tls,
                       pki=pki, peer_tls=True)
        members.append(m3)
        m3.start(60)
        status, _, body = https(m3, "GET", "/v2/keys/over/tls?quorum=true")
        assert status == 200 and json.loads(body)["node"]["value"] == "again"
        assert https(m3, "PUT", "/v2/keys/over/joined", body="value=yes")[0] == 201
        status, _, body = https(m2, "GET", "/v2/keys/over/joined?quorum=true")
        assert status == 200 and json.loads(body)["node"]["value"] == "yes"
        assert all(m.alive() for m in members)
    finally:
        harness.stop_all(members)
