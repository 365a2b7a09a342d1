"""The comparison itself masks only what spec section 19 allows: differences that matter
are reported, differences that legitimately vary are not. (Validating the suite with two
real etcds can only show that it does not report false differences; these cases show
that it does report real ones.) No member is started: recorders are fed responses."""
import pytest

import compat
import harness


class FakeMember:
    def __init__(self, cport, pport):
        self.client_port, self.peer_port, self.kind = cport, pport, "fake"


def recorder(base, cid="abc123", mid="def456", cport=1111, pport=2222):
    rec = object.__new__(compat.Recorder)
    rec.member = FakeMember(cport, pport)
    rec.role, rec.port, rec.entries, rec.base, rec.raft = "fake", cport, [], base, []
    rec.bg, rec.prefix, rec.cid, rec.mids = [], None, cid, [mid]
    return rec


def response(status_line, headers, body):
    r = harness.Response()
    r.status_line = status_line.encode()
    r.status = int(status_line.split()[1])
    r.headers = list(headers)
    r.body = body.encode() if isinstance(body, str) else body
    return r


def event(base, cid, value="v", raft=(5, 2), extra_headers=(), ttl=None, exp=None,
          date="Sun, 22 Nov 2026 20:00:00 GMT", key_order=None, body=None, path="/v2/keys/k"):
    node = f'"key":"/k","value":"{value}",'
    if exp is not None:
        node += f'"expiration":"{exp}",'
    if ttl is not None:
        node += f'"ttl":{ttl},'
    node += f'"modifiedIndex":{base + 1},"createdIndex":{base + 1}'
    b = body if body is not None else '{"action":"set","node":{' + node + '}}\n'
    hdrs = [("Content-Type", "application/json"), ("X-Etcd-Cluster-Id", cid),
            ("X-Etcd-Index", str(base + 1)), ("X-Raft-Index", str(raft[0])),
            ("X-Raft-Term", str(raft[1])), ("Date", date),
            ("Content-Length", str(len(b.encode())))] + list(extra_headers)
    return ("http", f"PUT {path}", response("HTTP/1.1 201 Created", hdrs, b),
            {"path": path, "watch": False})


def pair(ref_entry_args, cand_entry_args):
    ref = recorder(10, cid="aaa111", mid="bbb222", cport=1111, pport=2222)
    cand = recorder(40, cid="ccc333", mid="ddd444", cport=3333, pport=4444)
    ref.entries.append(event(10, "aaa111", **ref_entry_args))
    cand.entries.append(event(40, "ccc333", **cand_entry_args))
    return ref, cand


def test_indexes_ids_raft_headers_and_dates_that_vary_are_masked():
    ref, cand = pair({"raft": (5, 2), "date": "Sun, 22 Nov 2026 20:00:00 GMT"},
                     {"raft": (900, 7), "date": "Mon, 23 Nov 2026 01:02:03 GMT"})
    compat.assert_same(ref, cand)


@pytest.mark.parametrize("cand_args", [
    {"value": "other"},
    {"extra_headers": [("X-Extra", "1")]},
    {"body": '{"node":{"key":"/k","value":"v","modifiedIndex":41,"createdIndex":41},'
             '"action":"set"}\n'},  # JSON key order
    {"body": '{"action":"set","node":{"key":"/k","value":"v","modifiedIndex":42,'
             '"createdIndex":41}}\n'},  # a relative index off by one
    {"body": '{"action":"set","node":{"key":"/k","value":"v","modifiedIndex":41,'
             '"createdIndex":41}}'},  # no trailing newline
], ids=["value", "extra header", "key order", "relative index", "trailing newline"])
def test_real_differences_are_reported(cand_args):
    ref, cand = pair({}, cand_args)
    with pytest.raises(AssertionError, match="session differs"):
        compat.assert_same(ref, cand)


def test_go_json_escaping_differences_are_reported():
    ref, cand = pair({"value": "\\u003cb\\u003e"}, {"value": "<b>"})
    with pytest.raises(AssertionError, match="session differs"):
        compat.assert_same(ref, cand)


def test_a_missing_header_is_reported():
    ref, cand = pair({}, {})
    r = cand.entries[0][2]
    r.headers = [h for h in r.headers if h[0] != "X-Etcd-Cluster-Id"]
    with pytest.raises(AssertionError, match="session differs"):
        compat.assert_same(ref, cand)


def test_ttl_may_differ_by_two_seconds_but_not_more():
    exp = "2026-11-22T19:39:00.569731767Z"
    ref, cand = pair({"ttl": 100, "exp": exp}, {"ttl": 99, "exp": "2026-11-22T19:39:01Z"})
    compat.assert_same(ref, cand)
    ref, cand = pair({"ttl": 100, "exp": exp}, {"ttl": 98, "exp": exp})
    compat.assert_same(ref, cand)
    ref, cand = pair({"ttl": 100, "exp": exp}, {"ttl": 97, "exp": exp})
    with pytest.raises(AssertionError, match="differ by more than 2"):
        compat.assert_same(ref, cand)


@pytest.mark.parametrize("bad", ["2026-11-22T19:39:00.569731767+00:00",
                                 "2026-11-22T19:39:00.5000Z", "2026-11-22 19:39:00Z",
                                 "2026-11-22T19:39:00.0Z"])
def test_an_expiration_not_in_go_rfc3339nano_utc_is_reported(bad):
    ref, cand = pair({"ttl": 5, "exp": "2026-11-22T19:39:00.5Z"}, {"ttl": 5, "exp": bad})
    with pytest.raises(AssertionError, match="broke a format rule"):
        compat.assert_same(ref, cand)


def test_children_order_counts_only_when_sorted_was_asked_for():
    a = '{"action":"get","node":{"key":"/d","dir":true,"nodes":[{"key":"/d/a","value":"1",' \
        '"modifiedIndex":11,"createdIndex":11},{"key":"/d/b","value":"2","modifiedIndex":11,' \
        '"createdIndex":11}],"modifiedIndex":11,"createdIndex":11}}\n'
    b = '{"action":"get","node":{"key":"/d","dir":true,"nodes":[{"key":"/d/b","value":"2",' \
        '"modifiedIndex":41,"createdIndex":41},{"key":"/d/a","value":"1","modifiedIndex":41,' \
        '"createdIndex":41}],"modifiedIndex":41,"createdIndex":41}}\n'
    ref, cand = pair({"body": a, "path": "/v2/keys/d"}, {"body": b, "path": "/v2/keys/d"})
    compat.assert_same(ref, cand)
    ref, cand = pair({"body": a, "path": "/v2/keys/d?sorted=true"},
                     {"body": b, "path": "/v2/keys/d?sorted=true"})
    with pytest.raises(AssertionError, match="session differs"):
        compat.assert_same(ref, cand)


def test_a_content_length_that_does_not_match_the_body_is_reported():
    ref, cand = pair({}, {})
    r = cand.entries[0][2]
    r.headers = [(k, "999" if k == "Content-Length" else v) for k, v in r.headers]
    with pytest.raises(AssertionError, match="session differs"):
        compat.assert_same(ref, cand)


def test_a_raft_index_going_down_is_reported():
    ref, cand = pair({}, {})
    cand.entries.append(event(40, "ccc333", raft=(3, 2)))
    ref.entries.append(event(10, "aaa111", raft=(6, 2)))
    cand.entries[0] = event(40, "ccc333", raft=(9, 2))
    with pytest.raises(AssertionError, match="went down"):
        compat.assert_same(ref, cand)
