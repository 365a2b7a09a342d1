"""The candidate answers raw HTTP exactly as real etcd 3.4 does (spec etcd-v2-api.md):
every /v2/keys operation and error code, validation order, headers, status lines, path
cleaning, parameter sources, hidden and in-order keys, TTLs, watches, members, machines,
stats, /version, /health and /metrics.

Each test runs one scripted session against the reference etcd and the candidate and
compares the normalised transcripts (compat.py says what is masked); some also assert
the spec's statements directly, so a difference between the spec and etcd shows up."""
import re


import compat
import harness

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def keys(path):
    return "/v2/keys" + path


# ---------------------------------------------------------------------------------------
# Files: set, get, update, create, delete


def test_set_get_update_create_and_delete_of_a_file_match_etcd(compare):
    def s(c):
        c.probe("/f")
        r = c.http("PUT", keys("/f/a"), {"value": "bar"})
        assert r.status == 201 and r.json()["action"] == "set"
        r = c.http("PUT", keys("/f/a"), {"value": "baz"})
        assert r.status == 200 and r.json()["prevNode"]["value"] == "bar"
        assert r.header("X-Raft-Index") and r.header("X-Raft-Term")
        c.http("GET", keys("/f/a"))
        c.http("HEAD", keys("/f/a"))
        c.http("GET", keys("/f/a?recursive=true"))
        c.http("PUT", keys("/f/a?prevExist=true"), {"value": "upd"})
        c.http("PUT", keys("/f/a?prevExist=true"))  # update without value: ""
        c.http("PUT", keys("/f/missing"), {"value": "x", "prevExist": "true"})
        r = c.http("PUT", keys("/f/a"), {"value": "new", "prevExist": "false"})
        assert r.status == 412 and r.json()["errorCode"] == 105
        assert r.header("X-Raft-Index") is None and r.header("X-Raft-Term") is None
        c.http("PUT", keys("/f/b"), {"value": "new", "prevExist": "false"})
        c.http("PUT", keys("/f/empty"), {"value": ""})
        c.http("PUT", keys("/f/novalue"))
        c.http("PUT", keys("/f/json"), '{"value":"ignored"}', {"Content-Type": "application/json"})
        c.http("GET", keys("/f/json"))
        c.http("DELETE", keys("/f/a"))
        c.http("DELETE", keys("/f/a"))
        r = c.http("GET", keys("/f/nothere/deeper"))
        assert r.status == 404 and r.json()["cause"] == "/f/nothere"
        c.http("HEAD", keys("/f/nothere"))
        c.http("PUT", keys("/f/b/child"), {"value": "x"})
        c.http("GET", keys("/f/b/child"))
        c.http("GET", keys("/f?sorted=true"))
        c.http("GET", keys("/f"))  # unsorted: compared after sorting children
    compare(s)


def test_compare_and_swap_and_compare_and_delete_match_etcd(compare):
    def s(c):
        c.probe("/cas")
        c.http("PUT", keys("/cas/k"), {"value": "one"})
        c.http("PUT", keys("/cas/k"), {"value": "two", "prevValue": "one"})
        r = c.http("PUT", keys("/cas/k"), {"value": "x", "prevValue": "wrong"})
        assert r.json()["cause"] == "[wrong != two]"
        c.http("PUT", keys("/cas/k"), {"value": "x", "prevIndex": str(c.index(99))})
        c.http("PUT", keys("/cas/k"), {"value": "x", "prevIndex": "1", "prevValue": "wrong"})
        c.http("PUT", keys("/cas/k"), {"value": "three", "prevIndex": str(c.index(2))})
        c.http("PUT", keys("/cas/k"), {"value": "four", "prevIndex": str(c.index(3)),
                                       "prevValue": "three", "prevExist": "true"})
        c.http("PUT", keys("/cas/k"), {"value": "five", "prevIndex": "0"})  # = set
        c.http("PUT", keys("/cas/k"), {"value": "six", "prevValue": "zz", "prevExist": "false"})
        c.http("PUT", keys("/cas/none"), {"value": "x", "prevValue": "a"})
        c.http("PUT", keys("/cas/d"), {"dir": "true"})
        c.http("PUT", keys("/cas/d"), {"value": "x", "prevValue": "a"})
        c.http("PUT", keys("/cas/d"), {"value": "x", "prevIndex": str(c.index(6))})
        c.http("PUT", keys("/cas/k"), {"value": "ttl", "prevValue": "five", "ttl": "100"})
        c.http("DELETE", keys("/cas/k?prevValue=nope"))
        c.http("DELETE", keys("/cas/k?prevIndex=1"))
        c.http("DELETE", keys("/cas/k?prevIndex=1&prevValue=nope"))
        c.http("DELETE", keys("/cas/k?prevValue=ttl"))
        c.http("PUT", keys("/cas/k2"), {"value": "v"})
        c.http("DELETE", keys(f"/cas/k2?prevIndex={c.index(9)}"))
        c.http("DELETE", keys("/cas/d?prevValue=x"))
        c.http("DELETE", keys("/cas/none?prevValue=x"))
        c.http("PUT", keys("/cas/k3"), {"value": "v"})
        # DELETE reads the query string only: a body condition is ignored (quirk 7)
        c.http("DELETE", keys("/cas/k3"), {"prevValue": "nope"})
    compare(s)


def test_directory_operations_match_etcd(compare):
    def s(c):
        c.probe("/d")
        r = c.http("PUT", keys("/d/dir1"), {"dir": "true"})
        assert r.status == 201 and r.json()["node"].get("dir") is True
        c.http("PUT", keys("/d/dir1"), {"dir": "true"})
        c.http("PUT", keys("/d/dir1"), {"value": "x"})
        c.http("PUT", keys("/d/dir1"), {"value": "x", "prevExist": "true"})
        c.http("PUT", keys("/d/dir1"), {"dir": "true", "prevExist": "false"})
        c.http("PUT", keys("/d/dir1/sub/b"), {"value": "b"})
        c.http("PUT", keys("/d/dir1/a"), {"value": "a"})
        c.http("PUT", keys("/d/dir1/_h"), {"value": "hidden"})
        c.http("GET", keys("/d/dir1?sorted=true"))
        c.http("GET", keys("/d/dir1?recursive=true&sorted=true"))
        c.http("GET", keys("/d?recursive=true&sorted=true"))
        c.http("PUT", keys("/d/file"), {"value": "f"})
        c.http("PUT", keys("/d/file"), {"dir": "true"})  # replaces the file by a dir
        c.http("PUT", keys("/d/file2"), {"value": "f"})
        c.http("PUT", keys("/d/file2?dir=true&prevExist=true"))  # file stays a file, ""
        c.http("PUT", keys("/d/ud"), {"dir": "true"})
        c.http("PUT", keys("/d/ud"), {"dir": "true", "ttl": "100", "prevExist": "true"})
        c.http("GET", keys("/d/ud"))  # quirk 4: modifiedIndex not the update's
        c.http("PUT", keys("/d/ud"), {"dir": "true", "ttl": "", "prevExist": "true"})
        c.http("PUT", keys("/d/file2/child"), {"value": "x"})
        c.http("GET", keys("/d/file2/child"))
        c.http("POST", keys("/d/file2"), {"value": "x"})
        c.http("DELETE", keys("/d/dir1"))
        c.http("DELETE", keys("/d/dir1?dir=true"))
        c.http("DELETE", keys("/d/dir1?dir=false&recursive=false"))
        c.http("DELETE", keys("/d/ud?dir=true"))
        c.http("DELETE", keys("/d/dir1?recursive=true"))
        c.http("GET", keys("/d/dir1"))
        c.http("PUT", keys("/"), {"value": "x"})
        c.http("PUT", keys(""), {"dir": "true"})
        c.http("DELETE", keys("/?recursive=true"))
        c.http("DELETE", keys(""))
        c.http("PUT", keys("/d/a%2Fb"), {"value": "slash"})
        c.http("GET", keys("/d/a?sorted=true"))
        c.http("DELETE", keys("/d?recursive=true"))
        c.http("GET", keys("/d"))
    compare(s)


def test_root_listing_hides_hidden_keys_and_has_no_key_or_indexes(compare):
    def s(c):
        c.probe("/_root")  # hidden: never shows in the root listing
        c.http("PUT", keys("/_top"), {"value": "hidden"})
        c.http("PUT", keys("/hid/_secret"), {"value": "s"})
        c.http("PUT", keys("/hid/visible"), {"value": "v"})
        c.http("PUT", keys("/hid/_hdir/x"), {"value": "x"})
        r = c.http("GET", keys("/hid?recursive=true&sorted=true"))
        assert "_secret" not in r.text() and "_hdir" not in r.text()
        c.http("GET", keys("/hid/_secret"))
        c.http("GET", keys("/hid/_hdir/x"))
        c.http("GET", keys("/_top"))
        c.http("GET", keys("/hid/_hdir?recursive=true"))
        r = c.http("GET", keys("/?sorted=true"))
        node = r.json()["node"]
        assert "key" not in node and "modifiedIndex" not in node and node["dir"] is True
        c.http("GET", keys(""))
        c.http("GET", keys("/?recursive=true&sorted=true"))
        c.http("DELETE", keys("/hid/_secret"))
        c.http("DELETE", keys("/hid?recursive=true"))
        c.http("DELETE", keys("/_top"))
    compare(s)


def test_in_order_post_names_keys_by_the_global_index(compare):
    def s(c):
        c.probe("/q")
        r = c.http("POST", keys("/q/jobs"), {"value": "Job1"})
        assert r.status == 201
        assert re.fullmatch(r"/q/jobs/\d{20}", r.json()["node"]["key"])
        c.http("POST", keys("/q/jobs"), {"value": "Job2", "ttl": "100"})
        c.http("POST", keys("/q/jobs"), {"dir": "true"})
        c.http("POST", keys("/q/jobs"), {"value": "quiet", "noValueOnSuccess": "true"})
        c.http("POST", keys("/q/jobs"), {"value": "c", "prevExist": "true", "prevValue": "zz"})
        c.http("GET", keys("/q/jobs?sorted=true"))
        c.http("GET", keys("/q/jobs?recursive=true&sorted=true"))
        c.http("POST", keys("/q/jobs/x/y"), {"value": "deep"})
        r = c.http("POST", keys("/"), {"value": "rootchild"})
        c.http("DELETE", keys(r.json()["node"]["key"]))
        c.http("DELETE", keys("/q?recursive=true"))
    compare(s)


def test_no_value_on_success_answers_only_the_action(compare):
    def s(c):
        c.probe("/nv")
        r = c.http("PUT", keys("/nv/a"), {"value": "1", "noValueOnSuccess": "true"})
        assert r.body == b'{"action":"set"}\n'
        c.http("PUT", keys("/nv/a?noValueOnSuccess=true"), {"value": "2"})
        c.http("PUT", keys("/nv/b"), {"value": "1", "prevExist": "false", "noValueOnSuccess": "t"})
        c.http("PUT", keys("/nv/b"), {"value": "2", "prevExist": "true", "noValueOnSuccess": "1"})
        c.http("PUT", keys("/nv/b"), {"value": "3", "prevValue": "2", "noValueOnSuccess": "True"})
        c.http("PUT", keys("/nv/b"), {"value": "3", "prevValue": "no", "noValueOnSuccess": "true"})
        c.http("GET", keys("/nv/b?noValueOnSuccess=true"))
        c.http("DELETE", keys("/nv/b?noValueOnSuccess=true"))
        c.http("PUT", keys("/nv/c"), {"value": "1", "noValueOnSuccess": "false"})
        c.http("DELETE", keys("/nv?recursive=true"))
    compare(s)


# ---------------------------------------------------------------------------------------
# Every error code and the validation order


ERROR_REQUESTS = [
    # (method, path, form body) -> the code the spec says etcd produces
    ("GET", "/err/missing", None),                                    # 100
    ("PUT", "/err/file", {"value": "x", "prevValue": "wrong"}),      # 101
    ("PUT", "/err/dir", {"value": "x"}),                              # 102
    ("PUT", "/err/file/child", {"value": "x"}),                       # 104
    ("PUT", "/err/file", {"value": "x", "prevExist": "false"}),      # 105
    ("PUT", "/", {"value": "x"}),                                     # 107
    ("DELETE", "/err/dir?dir=true", None),                            # 108
    ("PUT", "/err/file", {"value": "x", "prevValue": ""}),           # 201
    ("PUT", "/err/file", {"value": "x", "ttl": "abc"}),              # 202
    ("PUT", "/err/file", {"value": "x", "prevIndex": "abc"}),        # 203
    ("GET", "/err/file?waitIndex=abc&wait=true", None),               # 203
    ("GET", "/err/file?recursive=maybe", None),                       # 209
    ("PUT", "/err/file?wait=true", {"value": "x"}),                   # 209
    ("GET", "/err/file?a=%zz", None),                                 # 210
    ("PUT", "/err/file", {"refresh": "true", "ttl": "5", "value": "v"}),  # 211
    ("PUT", "/err/file", {"refresh": "true"}),                        # 212
]
EXPECTED_CODES = [100, 101, 102, 104, 105, 107, 108, 201, 202, 203, 203, 209, 209, 210,
                  211, 212]


def test_every_error_code_etcd_produces_has_its_message_status_and_headers(compare):
    statuses = {100: 404, 101: 412, 102: 403, 104: 400, 105: 412, 107: 400, 108: 403}

    def s(c):
        c.probe("/err")
        c.http("PUT", keys("/err/file"), {"value": "v"})
        c.http("PUT", keys("/err/dir/child"), {"value": "v"})
        for (method, path, body), code in zip(ERROR_REQUESTS, EXPECTED_CODES):
            r = c.http(method, keys(path), body)
            j = r.json()
            assert j["errorCode"] == code, (path, j)
            assert r.status == statuses.get(code, 400), (path, r.status)
            assert list(j)[:2] == ["errorCode", "message"] and list(j)[-1] == "index"
            assert r.header("X-Etcd-Index") == str(j["index"])
            assert r.header("X-Etcd-Cluster-Id")
            assert r.header("X-Raft-Index") is None
            assert r.body.endswith(b"}\n")
            if code >= 200:
                assert j["index"] == 0
        c.http("DELETE", keys("/err?recursive=true"))
    compare(s)


VALIDATION_ORDER = [
    # two or more bad parameters: the first failing check of spec 4.2 wins
    ("GET", "?prevIndex=x&waitIndex=y&recursive=z", None),
    ("GET", "?waitIndex=y&recursive=z", None),
    ("GET", "?recursive=z&sorted=y&wait=x", None),
    ("GET", "?sorted=y&wait=x&dir=w&quorum=v&stream=u", None),
    ("GET", "?wait=x&dir=w", None),
    ("GET", "?dir=w&quorum=v", None),
    ("GET", "?quorum=v&stream=u", None),
    ("GET", "?stream=u&prevValue=", None),
    ("PUT", "?wait=true&prevValue=", {"value": "x"}),
    ("DELETE", "?wait=true", None),
    ("HEAD", "?wait=true", None),
    ("PUT", "", {"prevValue": "", "noValueOnSuccess": "x"}),
    ("PUT", "", {"noValueOnSuccess": "x", "ttl": "x"}),
    ("PUT", "", {"ttl": "x", "prevExist": "x"}),
    ("PUT", "", {"prevExist": "x", "refresh": "x"}),
    ("PUT", "", {"refresh": "x", "value": "v"}),
    ("PUT", "", {"refresh": "true", "value": "v"}),
    ("PUT", "", {"refresh": "true", "ttl": ""}),
    ("PUT", "?a=%zz&prevIndex=x", None),
    ("POST", "", {"prevIndex": "-1"}),
    ("GET", "?prevIndex=1.5", None),  # a malformed prevIndex on GET is still 203
    ("PUT", "", {"dir": "", "value": "x"}),  # empty bool is an error
    ("GET", "?recursive=", None),
    ("DELETE", "?sorted=nope", None),
]


def test_validation_runs_in_etcds_order_and_reports_the_first_failure(compare):
    def s(c):
        c.probe("/vo")
        c.http("PUT", keys("/vo/k"), {"value": "v"})
        for method, q, body in VALIDATION_ORDER:
            r = c.http(method, keys("/vo/k") + q, body)
            assert r.status == 400, (method, q, r)
            if method != "HEAD":
                assert r.json()["index"] == 0 and r.header("X-Etcd-Index") == "0"
        c.http("GET", keys("/vo/k"))  # nothing was changed
    compare(s)


BOOLS_OK = ["1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"]
BOOLS_BAD = ["tRue", "yes", "on", "", "2", "truee", " true"]
UINTS = ["007", "+5", "-1", "1.5", "x", "18446744073709551616", "99999999999999999999999"]


def test_boolean_and_integer_syntax_matches_etcd(compare):
    def s(c):
        c.probe("/syn")
        c.http("PUT", keys("/syn/k"), {"value": "v"})
        for b in BOOLS_OK + BOOLS_BAD:
            c.http("GET", keys("/syn/k?sorted=") + b.replace(" ", "%20"))
        c.http("GET", keys("/syn/k?recursive=t&recursive=banana"))  # first value counts
        c.http("GET", keys("/syn/k?recursive=banana&recursive=t"))
        for u in UINTS:
            c.http("GET", keys("/syn/k?prevIndex=") + u.replace("+", "%2B"))
            c.http("PUT", keys("/syn/t"), {"value": "v", "ttl": u})
        c.http("PUT", keys("/syn/t"), {"value": "v", "ttl": "007"})
        c.http("PUT", keys("/syn/t"), {"value": "v", "ttl": ""})  # empty ttl = no TTL
        c.http("GET", keys("/syn/k?foo=bar&unknown"))  # unknown names are ignored
        c.http("DELETE", keys("/syn?recursive=true"))
    compare(s)


# ---------------------------------------------------------------------------------------
# Parameter sources, + handling, escaping


def test_form_body_wins_over_query_and_other_bodies_are_ignored(compare):
    def s(c):
        c.probe("/src")
        c.http("PUT", keys("/src/a?value=query"), {"value": "body"})
        c.http("PUT", keys("/src/b?value=query"))
        c.http("PUT", keys("/src/c?value=query"), "value=body",
               {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        c.http("PUT", keys("/src/d?value=query"), "value=body", {"Content-Type": "text/plain"})
        c.http("PUT", keys("/src/e"), "--b\r\nContent-Disposition: form-data; name=\"value\"\r\n"
               "\r\nmp\r\n--b--\r\n", {"Content-Type": "multipart/form-data; boundary=b"})
        c.http("PUT", keys("/src/f"), "value=a+b%2Bc", FORM)
        c.http("PUT", keys("/src/g?value=q+1%2B2"))
        c.http("PUT", keys("/src/p+lus"), {"value": "plus in path"})
        c.http("GET", keys("/src/p+lus"))
        c.http("GET", keys("/src/p%20lus"))
        c.http("PUT", keys("/src/h"), "value=first&value=second", FORM)
        c.http("GET", keys("/src/a"), "recursive=banana", FORM)  # body on GET ignored
        c.http("POST", keys("/src/q?value=query"), {"value": "body"})
        c.http("GET", keys("/src?recursive=true&sorted=true"))
        c.http("DELETE", keys("/src?recursive=true"))
    compare(s)


def test_keys_and_values_are_escaped_like_go_json(compare):
    values = ["<b>&amp;</b>", "quote\" back\\slash", "nl\ncr\rtab\t", "ctl\x01\x1f",
              "uni\u00e9\u2028\u2029", "emoji\U0001F600"]

    def s(c):
        c.probe("/esc")
        for i, v in enumerate(values):
            c.http("PUT", keys(f"/esc/v{i}"), {"value": v})
        c.http("PUT", keys("/esc/bad"), b"value=%ff%fe", FORM)  # invalid UTF-8
        c.http("GET", keys("/esc/bad"))
        c.http("PUT", keys("/esc/uni%C3%A9"), {"value": "key"})
        c.http("PUT", keys("/esc/Case"), {"value": "upper"})
        c.http("PUT", keys("/esc/case"), {"value": "lower"})
        c.http("PUT", keys("/esc/sp%20ace"), {"value": "space"})
        c.http("PUT", keys("/esc/lt%3Cgt%3E"), {"value": "x"})
        c.http("GET", keys("/esc?sorted=true"))
        c.http("DELETE", keys("/esc?recursive=true"))
    compare(s)


def test_long_and_deep_keys_match_etcd(compare):
    """etcd takes any key its request line can carry and any depth (spec 1.6, 12). Names
    here straddle the lengths where ketchd's store changes key form (500 bytes, and the
    476-byte prefix a long key is filed under), so sorted listings must still be in byte
    order, and a long dir's listing must not pick up a sibling sharing that prefix."""
    p = "n" * 480

    def s(c):
        c.probe("/long")
        names = [p + "b", p + "a", p + "a" * 30, p, "z", "m" * 470, "m" * 470 + "x" * 25,
                 "m" * 470 + "x" * 40, "m" * 470 + "w" * 40]
        for i, n in enumerate(names):
            c.http("PUT", keys(f"/long/{n}"), {"value": f"v{i}"})
        c.http("GET", keys("/long?sorted=true"))
        c.http("GET", keys(f"/long/{p}a"))
        r = c.http("GET", keys(f"/long/{p}c"))
        assert r.status == 404 and r.json()["cause"] == f"/long/{p}c"
        # Two long dirs sharing their first 476 bytes, each with its own children.
        for d in (p + "dir1", p + "dir2"):
            c.http("PUT", keys(f"/long/{d}/k"), {"value": d[-4:]})
            c.http("POST", keys(f"/long/{d}"), {"value": "in-order"})
        c.http("GET", keys(f"/long/{p}dir1?sorted=true"))
        c.http("GET", keys("/long?recursive=true&sorted=true"))
        # A failed compare names the whole long value.
        c.http("PUT", keys(f"/long/{p}b"), {"value": "w" * 600})
        r = c.http("PUT", keys(f"/long/{p}b"), {"value": "x", "prevValue": "q" * 700})
        assert r.status == 412 and len(r.json()["cause"]) > 1300
        w = c.watch(keys(f"/long/{p}b?wait=true"))
        c.http("PUT", keys(f"/long/{p}b"), {"value": "seen"})
        c.watch_event(w)
        c.http("PUT", keys(f"/long/{p}ttl"), {"value": "t", "ttl": "100"})
        c.http("DELETE", keys(f"/long/{p}dir2?recursive=true"))
        c.http("GET", keys("/long?recursive=true&sorted=true"))
        # 1,500 components; listed recursively at 100 (the transcript's Python recursion).
        c.http("PUT", keys("/long/deep" + "/d" * 1500), {"value": "bottom"})
        c.http("GET", keys("/long/deep" + "/d" * 1500))
        c.http("GET", keys("/long/deep" + "/d" * 1400 + "?recursive=true"))
        c.http("DELETE", keys("/long/deep/d?recursive=true"))
        c.http("DELETE", keys("/long?recursive=true"))
    compare(s)


def test_large_values_round_trip_and_bodies_are_framed_correctly(compare):
    def s(c):
        c.probe("/big")
        c.http("PUT", keys("/big/a"), {"value": "x" * 1900})
        c.http("PUT", keys("/big/b"), {"value": "y" * 5000})
        r = c.http("GET", keys("/big/b"))
        assert r.json()["node"]["value"] == "y" * 5000
        c.http("PUT", keys("/big/c"), {"value": "z" * 300000},
               {"Content-Type": "application/x-www-form-urlencoded",
                "Expect": "100-continue"})
        c.http("HEAD", keys("/big/b"))
        c.http("DELETE", keys("/big?recursive=true"))
    compare(s)


def test_keep_alive_connection_serves_many_requests_in_order(reference, candidate):
    for m in (reference, candidate):
        with harness.Connection(m.client_port) as conn:
            for i in range(200):
                r = conn.request("PUT", keys(f"/ka/k{i % 5}"), {"value": str(i)})
                assert r.status in (200, 201)
                assert r.json()["node"]["value"] == str(i)
            r = conn.request("GET", keys("/ka/k4"))
            assert r.json()["node"]["value"] == "199"
            conn.request("DELETE", keys("/ka?recursive=true"))


# ---------------------------------------------------------------------------------------
# Routes: 404, 405, OPTIONS, HEAD, 301


def test_unknown_routes_and_methods_get_plain_text_404_and_405(compare):
    paths_404 = ["/", "/v2", "/v2/", "/v2/leader", "/v2/stats", "/v2/stats/", "/v2/machines/",
                 "/v2/keysx", "/nonexistent", "/v2/auth"]
    methods_405 = [("PATCH", "/v2/keys/r"), ("PROPFIND", "/v2/keys/"), ("POST", "/version"),
                   ("PUT", "/health"), ("DELETE", "/v2/machines"), ("PUT", "/v2/stats/self"),
                   ("POST", "/v2/stats/store"), ("DELETE", "/v2/stats/leader"),
                   ("PUT", "/v2/members"), ("DELETE", "/v2/members"),
                   ("PATCH", "/v2/members")]

    def s(c):
        c.probe("/route")
        for p in paths_404:
            r = c.http("GET", p)
            assert r.status == 404 and r.body == b"404 page not found\n"
            assert r.header("X-Etcd-Cluster-Id") is None
        for m, p in methods_405:
            r = c.http(m, p)
            assert r.status == 405 and r.body == b"Method Not Allowed\n"
            if (m, p) in (("PUT", "/v2/members"), ("DELETE", "/v2/members")):
                # these passed the members method check (spec 1.1, 1.2): no Allow, a CID
                assert r.header("Allow") is None and r.header("X-Etcd-Cluster-Id")
            else:
                assert r.header("Allow") and r.header("X-Etcd-Cluster-Id") is None
        c.http("GET", "/v2/members/abc")
    compare(s)


def test_options_answers_200_with_only_cors_headers(compare):
    def s(c):
        c.probe("/opt")
        for p in ["/v2/keys/opt/k", "/v2/keys/", "/v2/members", "/version", "/health",
                  "/v2/stats/self", "/v2/machines"]:
            r = c.http("OPTIONS", p)
            if p.startswith("/v2/keys"):
                assert r.status == 200 and r.body == b""
                assert sorted(k.lower() for k in r.header_names()) == [
                    "access-control-allow-headers", "access-control-allow-methods",
                    "access-control-allow-origin", "content-length", "date"]
    compare(s)


def test_head_gets_the_get_status_and_headers_without_a_body(compare):
    def s(c):
        c.probe("/head")
        c.http("PUT", keys("/head/k"), {"value": "v"})
        for p in [keys("/head/k"), keys("/head/none"), keys("/head?recursive=true"),
                  "/v2/machines", keys("/head/k?recursive=bad")]:
            g = c.http("GET", p)
            h = c.http("HEAD", p)
            assert h.status == g.status and h.body == b""
            assert h.header("Content-Length") == g.header("Content-Length")
        c.http("DELETE", keys("/head?recursive=true"))
    compare(s)


def test_unclean_paths_are_redirected_with_301(compare):
    def s(c):
        c.probe("/hid2")
        c.http("PUT", keys("/hid2/visible"), {"value": "v"})
        r = c.http("GET", "/v2/keys//hid2//visible")
        assert r.status == 301 and r.header("Location") == "/v2/keys/hid2/visible"
        c.http("GET", "/v2/keys/hid2/./visible")
        c.http("GET", "/v2/keys/hid2/x/../visible")
        c.http("GET", "/v2/keys/hid2/.")
        c.http("GET", "/v2/keys/hid2/..")
        c.http("HEAD", "/v2/keys//hid2")
        c.http("PUT", "/v2/keys//hid2//other", {"value": "x"})
        c.http("DELETE", "/v2/keys//hid2/visible")
        c.http("GET", "/v2/keys//hid2?recursive=true&sorted=true")
        c.http("GET", "/v2/keys/a%2F%2Fb")
        c.http("GET", "//version")
        r = c.http("GET", "/v2/keys/hid2/visible/")  # one trailing slash is clean
        assert r.status == 200
        c.http("GET", "/v2/keys/hid2/other")  # the PUT above was not applied
        c.http("DELETE", keys("/hid2?recursive=true"))
    compare(s)


# ---------------------------------------------------------------------------------------
# TTL and refresh


def test_ttl_appears_in_responses_and_update_without_ttl_removes_it(compare):
    def s(c):
        c.probe("/ttl")
        r = c.http("PUT", keys("/ttl/a"), {"value": "v", "ttl": "100"})
        node = r.json()["node"]
        assert node["ttl"] == 100 and list(node) == ["key", "value", "expiration", "ttl",
                                                    "modifiedIndex", "createdIndex"]
        c.http("GET", keys("/ttl/a"))
        c.http("PUT", keys("/ttl/a"), {"value": "x", "ttl": "", "prevExist": "true"})
        c.http("PUT", keys("/ttl/a"), {"value": "y", "ttl": "50", "prevExist": "true"})
        c.http("PUT", keys("/ttl/a"), {"value": "z", "prevValue": "y"})  # CAS drops ttl
        c.http("PUT", keys("/ttl/a"), {"value": "z", "ttl": "60"})
        c.http("PUT", keys("/ttl/a"), {"value": "w"})  # set drops ttl
        c.http("PUT", keys("/ttl/d"), {"dir": "true", "ttl": "100"})
        c.http("PUT", keys("/ttl/d/child"), {"value": "c"})
        c.http("GET", keys("/ttl/d?recursive=true"))
        c.http("GET", keys("/ttl?sorted=true"))
        c.http("DELETE", keys("/ttl?recursive=true"))
    compare(s)


def test_refresh_changes_only_the_ttl_and_does_not_wake_watchers(compare):
    def s(c):
        c.probe("/rf")
        c.http("PUT", keys("/rf/k"), {"value": "keep", "ttl": "200"})
        w = c.watch(keys("/rf/k?wait=true"))
        c.wait_watchers(1)
        c.http("PUT", keys("/rf/k"), {"refresh": "true", "ttl": "300", "prevExist": "true"})
        c.http("PUT", keys("/rf/k"), {"refresh": "true", "ttl": "300",
                                      "prevValue": "keep"})
        c.http("PUT", keys("/rf/k"), {"refresh": "true", "ttl": "300"})
        c.http("PUT", keys("/rf/k"), {"value": "changed", "prevExist": "true"})
        c.watch_event(w)  # the update, not any refresh
        c.watch_end(w)
        c.http("PUT", keys("/rf/none"), {"refresh": "true", "ttl": "5"})
        c.http("PUT", keys("/rf/none"), {"refresh": "true", "ttl": "5", "prevExist": "true"})
        c.http("PUT", keys("/rf/d"), {"dir": "true"})
        c.http("PUT", keys("/rf/d"), {"refresh": "true", "ttl": "5"})
        c.http("PUT", keys("/rf/d"), {"refresh": "true", "ttl": "50", "prevExist": "true"})
        # a history scan skips refresh events: waitIndex at the first refresh finds the update
        c.http("GET", keys(f"/rf/k?wait=true&waitIndex={c.index(2)}"))
        c.http("DELETE", keys("/rf?recursive=true"))
    compare(s)


def test_expiring_keys_send_expire_events_within_a_bounded_wait(compare):
    def s(c):
        c.probe("/exp")
        c.http("PUT", keys("/exp/k"), {"value": "bye", "ttl": "1"})
        c.http("PUT", keys("/exp/d"), {"dir": "true", "ttl": "2"})  # a later sweep than k
        c.http("PUT", keys("/exp/d/child"), {"value": "c"})
        c.http("PUT", keys("/exp/z"), {"value": "zero", "ttl": "0"})
        wk = c.watch(keys(f"/exp/k?wait=true&waitIndex={c.index(5)}"))
        wc = c.watch(keys(f"/exp/d/child?wait=true&waitIndex={c.index(5)}"))
        wz = c.watch(keys(f"/exp/z?wait=true&waitIndex={c.index(5)}"))
        # ttl=0 is swept by the next expiry round (<= ~0.5 s), ttl=1 within ~1.5 s, ttl=2
        # within ~2.5 s: three different sweeps, so the expire indexes are deterministic
        ez = c.watch_event(wz, timeout=5)
        ek = c.watch_event(wk, timeout=5)
        ec = c.watch_event(wc, timeout=5)
        assert ek and ek["action"] == "expire" and "value" not in ek["node"]
        assert ec and ec["node"]["key"] == "/exp/d" and ec["node"]["dir"] is True
        assert ez and ez["action"] == "expire"
        for w in (wk, wc, wz):
            c.watch_end(w)
        c.http("GET", keys("/exp/k"))
        c.http("GET", keys("/exp/d/child"))
        c.http("GET", keys("/exp?recursive=true&sorted=true"))
    compare(s)


# ---------------------------------------------------------------------------------------
# Watches


def test_long_poll_watch_flushes_headers_first_then_sends_one_event_chunk(compare):
    def s(c):
        c.probe("/w")
        w = c.watch(keys("/w/k?wait=true"))  # the head must arrive with no event yet
        assert w.resp.header("Transfer-Encoding") == "chunked"
        assert w.resp.header("Content-Length") is None
        c.wait_watchers(1)
        c.http("PUT", keys("/w/k"), {"value": "1"})
        ev = c.watch_event(w)
        assert ev["action"] == "set"
        assert w.resp.chunks[-1].endswith(b"}\n")
        assert w.resp.chunk_sizes_raw[-1] == b"%x" % len(w.resp.chunks[-1])
        c.watch_end(w)
        # recursive watch on a dir, non-recursive dir watch not woken by a child
        wr = c.watch(keys("/w?wait=true&recursive=true"))
        wd = c.watch(keys("/w/sub?wait=true"))
        c.wait_watchers(2)
        c.http("PUT", keys("/w/sub/x"), {"value": "2"})
        c.watch_event(wr)
        c.watch_end(wr)
        c.http("DELETE", keys("/w/sub?recursive=true"))
        c.watch_event(wd)
        c.watch_end(wd)
        # a watcher of a child is woken by the delete of its ancestor
        c.http("PUT", keys("/w/a/b/c"), {"value": "3"})
        wa = c.watch(keys("/w/a/b/c?wait=true"))
        c.wait_watchers(1)
        c.http("DELETE", keys("/w/a?recursive=true"))
        c.watch_event(wa)
        c.watch_end(wa)
        # a recursive watcher of an ancestor ignores hidden descendants
        wh = c.watch(keys("/w?wait=true&recursive=true"))
        c.wait_watchers(1)
        c.http("PUT", keys("/w/_sec"), {"value": "hidden"})
        c.http("PUT", keys("/w/seen"), {"value": "seen"})
        c.watch_event(wh)
        c.watch_end(wh)
        c.http("DELETE", keys("/w?recursive=true"))
    compare(s)


def test_wait_index_answers_from_history_or_waits_for_the_future(compare):
    def s(c):
        c.probe("/wi")
        c.http("PUT", keys("/wi/k"), {"value": "1"})
        c.http("PUT", keys("/wi/k"), {"value": "2"})
        c.http("PUT", keys("/wi/other"), {"value": "o"})
        c.http("GET", keys(f"/wi/k?wait=true&waitIndex={c.index(1)}"))
        c.http("GET", keys(f"/wi/k?wait=true&waitIndex={c.index(2)}"))
        c.http("GET", keys(f"/wi?wait=true&recursive=true&waitIndex={c.index(3)}"))
        c.http("GET", keys(f"/wi/k?wait=true&waitIndex={c.index(1)}&stream=false"))
        w = c.watch(keys(f"/wi/k?wait=true&waitIndex={c.index(3)}"))  # nothing yet: waits
        c.wait_watchers(1)
        c.http("PUT", keys("/wi/k"), {"value": "3"})
        c.watch_event(w)
        c.watch_end(w)
        w = c.watch(keys(f"/wi/k?wait=true&waitIndex={c.index(7)}"))  # future index
        c.wait_watchers(1)
        for i in range(4, 8):
            c.http("PUT", keys("/wi/k"), {"value": str(i)})
        c.watch_event(w)
        c.watch_end(w)
        # a history scan matches an ancestor's delete even for a key that never existed
        r = c.http("DELETE", keys("/wi?recursive=true"))
        gone = r.json()["node"]["modifiedIndex"]
        r = c.http("GET", keys(f"/wi/never/existed?wait=true&waitIndex={gone}"))
        assert r.json()["action"] == "delete" and r.json()["node"]["key"] == "/wi"
    compare(s)


def test_stream_watch_sends_every_event_as_its_own_chunk(compare):
    def s(c):
        c.probe("/s")
        w = c.watch(keys("/s?wait=true&stream=true&recursive=true"))
        c.wait_watchers(1)
        c.http("PUT", keys("/s/a"), {"value": "1"})
        c.watch_event(w)
        c.http("PUT", keys("/s/b"), {"value": "2"})
        c.watch_event(w)
        c.http("PUT", keys("/s/b"), {"value": "3"})
        c.watch_event(w)
        c.http("DELETE", keys("/s/a"))
        c.watch_event(w)
        assert len(w.resp.chunks) == 4
        w.conn.close()
        # the server notices the closed stream and drops the watcher
        harness.wait_until(lambda: compat.watchers(c.port) == 0, 10, "watcher removal")
        c.http("GET", keys("/s?stream=true"))  # stream without wait is ignored
        c.http("DELETE", keys("/s?recursive=true"))
    compare(s)


def test_wait_index_older_than_the_history_gets_error_401(compare):
    def s(c):
        c.probe("/hist")
        first = c.base
        with harness.Connection(c.port) as conn:
            for i in range(1005):
                r = conn.request("PUT", keys(f"/hist/k{i % 3}"), {"value": str(i)})
                assert r.status in (200, 201)
        r = c.http("GET", keys(f"/hist/k0?wait=true&waitIndex={first}"))
        j = r.json()
        assert r.status == 400 and j["errorCode"] == 401
        cur = j["index"]
        assert j["cause"] == f"the requested history has been cleared [{cur - 999}/{first}]"
        assert r.header("X-Etcd-Index") == str(cur)
        c.http("GET", keys(f"/hist/k0?wait=true&waitIndex={c.index(7)}"))
        c.http("DELETE", keys("/hist?recursive=true"))
    compare(s)


# ---------------------------------------------------------------------------------------
# Members, machines, stats, version, health, metrics


def test_members_and_machines_match_etcd(compare):
    def s(c):
        c.probe("/mem")
        r = c.http("GET", "/v2/members")
        m = r.json()["members"][0]
        assert list(m) == ["id", "name", "peerURLs", "clientURLs"]
        assert r.body.endswith(b"}\n")
        c.http("GET", "/v2/members/")
        c.http("GET", "/v2/members/leader")
        r = c.http("GET", "/v2/machines")
        assert r.body == f"http://127.0.0.1:{c.port}".encode()
        c.http("HEAD", "/v2/machines")
        c.http("GET", f"/v2/members/{m['id']}")
        c.http("DELETE", "/v2/members/deadbeef")
        c.http("DELETE", "/v2/members/zzz")
        c.http("PUT", "/v2/members/deadbeef", '{"peerURLs":["http://127.0.0.1:1"]}',
               {"Content-Type": "application/json"})
        c.http("POST", "/v2/members", "peerURLs=x", FORM)
        c.http("POST", "/v2/members", "{bad", {"Content-Type": "application/json"})
        c.http("POST", "/v2/members", "{}", {"Content-Type": "application/json"})
        c.http("POST", "/v2/members", '{"peerURLs":[]}', {"Content-Type": "application/json"})
        c.http("POST", "/v2/members", '{"peerURLs":["notaurl"]}',
               {"Content-Type": "application/json"})
        c.http("POST", "/v2/members", '{"peerURLs":["http://127.0.0.1"]}',
               {"Content-Type": "application/json"})
        c.http("POST", "/v2/members", '{"peerURLs":["http://127.0.0.1:1/p"]}',
               {"Content-Type": "application/json"})
        c.http("POST", "/v2/members", f'{{"peerURLs":["{c.member.peer_url}"]}}',
               {"Content-Type": "application/json; charset=utf-8"})
    compare(s)


def shape(v):
    """Key order and JSON types of a document, without its values."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}, list(v)
    return type(v).__name__


def test_stats_have_etcds_keys_order_and_types(reference, candidate):
    out = {}
    for role, m in (("reference", reference), ("candidate", candidate)):
        res = {}
        for p in ["/v2/stats/self", "/v2/stats/store", "/v2/stats/leader"]:
            r = harness.http(m.client_port, "GET", p)
            assert r.status == 200, (role, p, r)
            assert r.header("Content-Type") == "application/json"
            assert r.header("X-Etcd-Cluster-Id") is None
            assert not r.body.endswith(b"\n")
            res[p] = r.json()
        st = res["/v2/stats/self"]
        assert list(st)[:6] == ["name", "id", "state", "startTime", "leaderInfo",
                                "recvAppendRequestCnt"]
        assert st["state"] == "StateLeader" and st["name"] == "compat"
        assert list(st["leaderInfo"]) == ["leader", "uptime", "startTime"]
        assert st["leaderInfo"]["leader"] == st["id"]
        assert re.fullmatch(r"[0-9a-f]{1,16}", st["id"])
        for t in (st["startTime"], st["leaderInfo"]["startTime"]):
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", t), t
        assert re.fullmatch(r"([0-9.]+(h|m|s|ms|µs|ns))+", st["leaderInfo"]["uptime"])
        store = res["/v2/stats/store"]
        assert list(store) == [
            "getsSuccess", "getsFail", "setsSuccess", "setsFail", "deleteSuccess",
            "deleteFail", "updateSuccess", "updateFail", "createSuccess", "createFail",
            "compareAndSwapSuccess", "compareAndSwapFail", "compareAndDeleteSuccess",
            "compareAndDeleteFail", "expireCount", "watchers"]
        assert all(type(v) is int for v in store.values())
        assert res["/v2/stats/leader"] == {"leader": st["id"], "followers": {}}
        out[role] = {p: shape(v) for p, v in res.items()}
    assert out["reference"] == out["candidate"]


def test_version_health_and_metrics_match_etcd(reference, candidate):
    seen = {}
    for role, m in (("reference", reference), ("candidate", candidate)):
        r = harness.http(m.client_port, "GET", "/version")
        assert r.status == 200 and r.header("Content-Type") == "application/json"
        assert r.header("X-Etcd-Cluster-Id") is None and not r.body.endswith(b"\n")
        v = r.json()
        assert list(v) == ["etcdserver", "etcdcluster"]
        assert re.fullmatch(r"\d+\.\d+\.\d+", v["etcdserver"])  # ketchd reports its own
        assert v["etcdcluster"].startswith("3.4")
        r = harness.http(m.client_port, "GET", "/health")
        assert (r.status, r.body) == (200, b'{"health":"true"}')
        assert r.header("Content-Type") == "text/plain; charset=utf-8"
        harness.http(m.client_port, "PUT", "/v2/keys/metrics/k", {"value": "v"})
        harness.http(m.client_port, "GET", "/v2/keys/metrics/k")
        harness.http(m.client_port, "GET", "/v2/keys/metrics?recursive=true")
        harness.http(m.client_port, "DELETE", "/v2/keys/metrics?recursive=true")
        r = harness.http(m.client_port, "GET", "/metrics")
        assert r.status == 200
        assert r.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
        names = set(re.findall(r"^([a-z_:]+)(?:\{|\s)", r.text(), re.M))
        seen[role] = names
        for name in ["etcd_server_has_leader", "etcd_server_is_leader",
                     "etcd_server_leader_changes_seen_total",
                     "etcd_server_proposals_committed_total",
                     "etcd_server_proposals_applied_total", "etcd_server_proposals_pending",
                     "etcd_server_proposals_failed_total", "etcd_server_id",
                     "etcd_server_health_success", "etcd_server_health_failures",
                     "etcd_disk_wal_fsync_duration_seconds_bucket",
                     "etcd_disk_wal_fsync_duration_seconds_sum",
                     "etcd_disk_wal_fsync_duration_seconds_count",
                     "etcd_debugging_store_reads_total", "etcd_debugging_store_writes_total",
                     "etcd_debugging_store_watchers", "etcd_debugging_store_expires_total",
                     "etcd_debugging_store_watch_requests_total"]:
            assert name in names, (role, name)
        assert re.search(r"^etcd_server_has_leader 1$", r.text(), re.M), role
        assert re.search(r"^etcd_server_is_leader 1$", r.text(), re.M), role
        own_id = harness.http(m.client_port, "GET", "/v2/stats/self").json()["id"]
        assert re.search(rf'^etcd_server_id{{server_id="{own_id}"}} 1$', r.text(), re.M)
        assert re.search(r'^etcd_server_version\{server_version="\d+\.\d+\.\d+"\} 1$',
                         r.text(), re.M), role
        assert re.search(r'^etcd_cluster_version\{cluster_version="3\.4"\} 1$', r.text(), re.M)
        for label in ['reads_total{action="get"}', 'reads_total{action="getRecursive"}',
                      'writes_total{action="set"}', 'writes_total{action="delete"}']:
            assert re.search(rf"^etcd_debugging_store_{re.escape(label)} \d+$", r.text(),
                             re.M), (role, label)
        assert re.search(r'^etcd_http_received_total\{method="PUT"\} \d+$', r.text(), re.M)
        les = re.findall(r'^etcd_disk_wal_fsync_duration_seconds_bucket\{le="([^"]+)"\}',
                         r.text(), re.M)
        assert les == ["0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064",
                       "0.128", "0.256", "0.512", "1.024", "2.048", "4.096", "8.192",
                       "+Inf"], (role, les)
        for line in r.text().splitlines():
            assert line.startswith("#") or re.fullmatch(
                r"[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? \S+", line), (role, line)


def test_http_1_0_and_connection_close_are_answered_like_etcd(compare):
    def s(c):
        c.probe("/h10")
        c.http("PUT", keys("/h10/k"), {"value": "v"})
        c.raw(b"GET /v2/keys/h10/k HTTP/1.0\r\n\r\n", "HTTP/1.0 without Host")
        c.raw(b"GET /v2/keys/h10/k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
              b"GET /v2/keys/h10/none HTTP/1.0\r\n\r\n", "HTTP/1.0 keep-alive", count=2)
        c.raw(b"GET /v2/keys/h10/k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
              b"GET /v2/keys/h10/none HTTP/1.1\r\nHost: x\r\n\r\n", "Connection: close",
              count=2)  # the second request is never answered
        c.raw(b"GET /v2/keys/h10/%00 HTTP/1.1\r\nHost: x\r\n\r\n", "NUL in the key")
        c.http("DELETE", keys("/h10?recursive=true"))
    compare(s)
