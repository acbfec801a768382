"""Admin API configuration calls: GET/PUT /config, POST /reload, server add and
remove, cache purge, with good and bad input (status codes, and that a refused
change changes nothing), the bearer token, and 100 reloads alternating two
configs (SIGHUP, POST /reload and PUT /config mixed) under a steady bounded
load with zero failed requests."""
import json
import os
import signal
import threading
import time

from lib.origin import echo
from lib.portico import SLOW, Conn, free_port, req, request, wait_for, wait_port

TOKEN = "s3cr3t-token-0123456789"


def api(port, method, path, body=None, token=None, headers=None):
    """One admin call. A dict or list body is sent as JSON."""
    hs = list(headers or [])
    if token:
        hs.append(("Authorization", "Bearer " + token))
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    return request(port, method, path, headers=hs, body=body, timeout=10)


def get_config(admin, token=None):
    r = api(admin, "GET", "/config", token=token)
    assert r.status == 200, r
    assert r.header("content-type") == "application/json"
    return r.json()


def body_of(port, path="/", host="example.test"):
    r = request(port, "GET", path, host=host)
    assert r.status in (200, 201), r  # the /r route answers 201
    return r.body


def base_yaml(admin, a, b, extra=""):
    return ("workers: 2\n"
            "admin: {listen: \"127.0.0.1:%d\"%s}\n"
            "listeners: [{name: web, listen: \"${listen}\"}]\n"
            "upstreams:\n"
            "  app: {servers: [{address: \"%s\", weight: 2}, \"%s\"], keepalive: 8}\n"
            "routes:\n"
            "  - {match: {path: /r}, respond: {status: 201, body: \"one\\n\"}}\n"
            "  - {upstream: app}\n") % (admin, extra, a, b)


def test_get_config_is_the_running_tree(portico, origin):
    a, b = origin(echo(), name="a"), origin(echo(), name="b")
    admin = free_port()
    p = portico(base_yaml(admin, a.address, b.address))
    r = api(admin, "GET", "/config")
    assert r.status == 200 and r.header("content-type") == "application/json"
    doc = r.json()
    # the file's tree, key order kept; numbers and booleans as JSON values
    assert list(doc) == ["shutdown_grace", "workers", "admin", "listeners", "upstreams", "routes"]
    assert doc == {
        "shutdown_grace": "2s", "workers": 2,
        "admin": {"listen": "127.0.0.1:%d" % admin},
        "listeners": [{"name": "web", "listen": "127.0.0.1:%d" % p.port}],
        "upstreams": {"app": {"servers": [{"address": a.address, "weight": 2}, b.address],
                              "keepalive": 8}},
        "routes": [{"match": {"path": "/r"}, "respond": {"status": 201, "body": "one\n"}},
                   {"upstream": "app"}],
    }
    h = api(admin, "HEAD", "/config")
    assert h.status == 200 and h.body == b"" and int(h.header("content-length")) == len(r.body)


def test_put_config_applies_atomically(portico, origin):
    a, b, c = origin(echo(), name="a"), origin(echo(), name="b"), origin(echo(), name="c")
    admin = free_port()
    p = portico(base_yaml(admin, a.address, b.address))
    assert body_of(p.port, "/r") == b"one\n"
    doc = get_config(admin)
    doc["routes"][0]["respond"]["body"] = "two\n"
    doc["routes"].insert(1, {"match": {"path": "/c/"}, "upstream": "other"})
    doc["upstreams"]["other"] = {"servers": [c.address]}
    r = api(admin, "PUT", "/config", doc)
    assert r.status == 200, r
    out = r.json()
    assert out["status"] == "applied" and out["generation"] == 2 and out["warnings"] == []
    assert body_of(p.port, "/r") == b"two\n"
    before = c.n_requests
    assert json.loads(body_of(p.port, "/c/x"))["origin"] == "c"
    assert c.n_requests == before + 1
    # GET /config tells what runs: exactly what was put
    assert get_config(admin) == doc
    # /status shows the new upstream too
    st = api(admin, "GET", "/status").json()
    assert [u["name"] for u in st["upstreams"]] == ["app", "other"]
    # and a second PUT moves the generation on
    doc["routes"][0]["respond"]["body"] = "three\n"
    assert api(admin, "PUT", "/config", doc).json()["generation"] == 3
    assert body_of(p.port, "/r") == b"three\n"
    assert "applied a config from the admin API" in p.stderr()


def test_bad_put_changes_nothing(portico, origin, tmp_path):
    a, b = origin(echo(), name="a"), origin(echo(), name="b")
    admin = free_port()
    p = portico(base_yaml(admin, a.address, b.address))
    good = get_config(admin)
    text = json.dumps(good)

    def unchanged():
        assert get_config(admin) == good
        assert body_of(p.port, "/r") == b"one\n"

    # malformed JSON: one error with its position
    for bad, where in [("{", "byte 1"), (text[:-1], "byte %d" % (len(text) - 1)),
                       (text + "x", "unexpected 'x' after the value"),
                       ('{"workers": 1, "workers": 2}', "duplicate key 'workers'"),
                       ('{"a": 01}', "leading zeros"), ('{"a": "\\ud800"}', "surrogate"),
                       ("[" * 100 + "]" * 100, "nesting deeper than 64 levels"),
                       ("", "end of input")]:
        r = api(admin, "PUT", "/config", bad)
        assert r.status == 400, (bad[:40], r)
        e = r.json()
        assert e["error"] == "invalid JSON" and e["status"] == 400
        assert len(e["errors"]) == 1 and where in e["errors"][0], (where, e)
        assert e["errors"][0].startswith("invalid JSON at line ")
        unchanged()
    # a body that is not UTF-8
    r = api(admin, "PUT", "/config", b'{"a": "\xff"}')
    assert r.status == 400 and "invalid UTF-8" in r.json()["errors"][0]

    # valid JSON, invalid config: every error, by JSON pointer
    bad = json.loads(text)
    bad["workers"] = "many"
    bad["upstreams"]["app"]["servers"][0]["weight"] = 0
    bad["upstreams"]["app"]["servers"].append({"address": "nowhere"})
    bad["routes"][1]["upstream"] = "missing"
    bad["bogus"] = True
    r = api(admin, "PUT", "/config", bad)
    assert r.status == 400, r
    e = r.json()
    assert e["error"] == "invalid config: nothing was changed"
    errs = e["errors"]
    assert len(errs) == 5, errs
    for ptr in ["/workers: ", "/upstreams/app/servers/0/weight: ", "/upstreams/app/servers/2/address: ",
                "/routes/1/upstream: ", "/bogus: unknown key 'bogus'"]:
        assert any(x.startswith(ptr) for x in errs), (ptr, errs)
    unchanged()
    r = api(admin, "PUT", "/config", "[1, 2]")
    assert r.status == 400 and r.json()["errors"] == [
        "/: the config must be a mapping of top-level keys, got a sequence"]
    unchanged()
    # a listener with a certificate file that does not exist: found before anything changes
    bad = json.loads(text)
    bad["listeners"].append({"listen": "127.0.0.1:%d" % free_port(),
                             "tls": {"certificates": [{"cert": str(tmp_path / "none.pem"),
                                                       "key": str(tmp_path / "none.key")}]}})
    r = api(admin, "PUT", "/config", bad)
    assert r.status == 400 and "none.pem" in json.dumps(r.json()["errors"]), r
    unchanged()
    # a new listener whose address is taken: refused by the main thread, nothing changed
    busy = free_port()
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", busy))
    s.listen(1)
    try:
        bad = json.loads(text)
        bad["listeners"].append({"listen": "127.0.0.1:%d" % busy})
        r = api(admin, "PUT", "/config", bad)
        assert r.status == 400, r
        assert r.json()["errors"][0].startswith("listen 127.0.0.1:%d: " % busy), r
        unchanged()
    finally:
        s.close()
    # the next good change is generation 2: the refused ones did not count
    assert api(admin, "PUT", "/config", text).json()["generation"] == 2


def test_put_config_body_limits(portico, origin):
    a, b = origin(echo(), name="a"), origin(echo(), name="b")
    admin = free_port()
    p = portico(base_yaml(admin, a.address, b.address))
    doc = get_config(admin)
    # up to 1 MiB is fine for PUT /config (other calls stop at 64 KiB)
    big = "x" * (600 * 1024)
    doc["routes"][0]["respond"]["body"] = big
    r = api(admin, "PUT", "/config", doc)
    assert r.status == 200, r
    assert body_of(p.port, "/r") == big.encode()
    # over 1 MiB: 413 from the head alone
    with Conn(admin) as c:
        c.send(req("PUT", "/config", headers=[("Content-Length", str(1024 * 1024 + 1))]))
        r = c.read_response()
    assert r.status == 413
    r = api(admin, "POST", "/upstreams/app/servers", b"{" + b" " * (65 * 1024) + b"}")
    assert r.status == 413
    r = api(admin, "POST", "/cache/purge", b" " * (65 * 1024))
    assert r.status == 413
    assert body_of(p.port, "/r") == big.encode()


def test_restart_only_settings_are_kept(portico, origin):
    a, b = origin(echo(), name="a"), origin(echo(), name="b")
    admin = free_port()
    portico(base_yaml(admin, a.address, b.address))
    doc = get_config(admin)
    doc["workers"] = 3
    doc["admin"]["listen"] = "127.0.0.1:%d" % free_port()
    doc["log"] = {"level": "debug", "access": "stdout"}
    r = api(admin, "PUT", "/config", doc)
    assert r.status == 200, r
    w = r.json()["warnings"]
    assert w == ["'workers' changes need a restart (keeping 2)",
                 "'admin' changes need a restart (keeping listen 127.0.0.1:%d)" % admin,
                 "'log.access' changes need a restart (keeping off)"], w
    # GET /config shows what runs, not what was asked for; log.level did apply
    now = get_config(admin)
    assert now["workers"] == 2
    assert now["admin"] == {"listen": "127.0.0.1:%d" % admin}
    assert now["log"] == {"level": "debug"}


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def file_cfg(port, admin, body, upstream, token_file=None):
    """A config as JSON text (YAML reads it as it is)."""
    adm = {"listen": "127.0.0.1:%d" % admin}
    if token_file:
        adm["token_file"] = token_file
    return {
        "workers": 2, "shutdown_grace": "2s", "admin": adm,
        "listeners": [{"listen": "127.0.0.1:%d" % port}],
        "upstreams": {"app": {"servers": [upstream], "keepalive": 8}},
        "routes": [{"match": {"path": "/which"}, "respond": {"body": body + "\n"}},
                   {"upstream": "app"}],
    }


def start_file(portico, path, port):
    p = portico(None, args=["-c", path], wait=False)
    p.port = port
    assert wait_port(port, 10.0 * SLOW, p.proc), p.stderr()
    return p


def test_reload_endpoint_and_file_wins(portico, origin, tmp_path):
    a, b = origin(echo(), name="a"), origin(echo(), name="b")
    port, admin = free_port(), free_port()
    path = str(tmp_path / "p.yaml")
    write(path, json.dumps(file_cfg(port, admin, "file-1", a.address)))
    p = start_file(portico, path, port)
    assert body_of(port, "/which") == b"file-1\n"
    # an API change lives until the file is read again
    doc = get_config(admin)
    doc["routes"][0]["respond"]["body"] = "api\n"
    assert api(admin, "PUT", "/config", doc).status == 200
    assert body_of(port, "/which") == b"api\n"
    r = api(admin, "POST", "/reload")
    assert r.status == 200 and r.json()["status"] == "reloaded" and r.json()["generation"] == 3, r
    assert body_of(port, "/which") == b"file-1\n"
    assert get_config(admin) == file_cfg(port, admin, "file-1", a.address)
    # the file changed: POST /reload picks it up
    write(path, json.dumps(file_cfg(port, admin, "file-2", b.address)))
    r = api(admin, "POST", "/reload", b"")
    assert r.status == 200
    assert body_of(port, "/which") == b"file-2\n"
    assert json.loads(body_of(port, "/x"))["origin"] == "b"
    # a bad file: 400 with its file:line:col errors; the old config keeps serving
    write(path, "listeners: [{listen: \"127.0.0.1:%d\"}]\nroutes: 3\nbogus: 1\n" % port)
    r = api(admin, "POST", "/reload")
    assert r.status == 400, r
    e = r.json()
    assert e["error"] == "not applied: the running config is unchanged"
    assert e["errors"] == ["%s:2:9: 'routes' must be a list, got '3'" % path,
                           "%s:3:1: unknown key 'bogus' in config (expected one of: " % path
                           + e["errors"][1].split("(expected one of: ")[1]], e
    assert body_of(port, "/which") == b"file-2\n"
    assert get_config(admin)["routes"][0]["respond"]["body"] == "file-2\n"
    os.unlink(path)
    r = api(admin, "POST", "/reload")
    assert r.status == 400 and "cannot open" in r.json()["errors"][0]
    assert body_of(port, "/which") == b"file-2\n"
    # SIGHUP re-reads the file too, and GET /config follows
    write(path, json.dumps(file_cfg(port, admin, "file-3", b.address)))
    os.kill(p.pid, signal.SIGHUP)
    assert wait_for(lambda: get_config(admin)["routes"][0]["respond"]["body"] == "file-3\n")
    assert body_of(port, "/which") == b"file-3\n"
    r = api(admin, "GET", "/reload")
    assert r.status == 405 and r.header("allow") == "POST"


def test_server_add(portico, origin):
    a, b, c = origin(echo(), name="a"), origin(echo(), name="b"), origin(echo(), name="c")
    admin = free_port()
    p = portico(base_yaml(admin, a.address, b.address))
    r = api(admin, "POST", "/upstreams/app/servers", {"address": c.address, "weight": 5})
    assert r.status == 201, r
    out = r.json()
    assert out["status"] == "applied" and out["generation"] == 2
    assert out["server"] == {"address": c.address, "weight": 5, "backup": False}
    for _ in range(40):
        body_of(p.port, "/x")
    assert c.n_requests >= 10, "the new server gets its share (weight 5 of 8)"
    servers = get_config(admin)["upstreams"]["app"]["servers"]
    assert servers[-1] == {"address": c.address, "weight": 5}
    st = api(admin, "GET", "/status").json()
    assert [s["address"] for s in st["upstreams"][0]["servers"]] == [a.address, b.address, c.address]
    # a backup server
    d = origin(echo(), name="d")
    r = api(admin, "POST", "/upstreams/app/servers", {"address": d.address, "backup": True})
    assert r.status == 201 and r.json()["server"]["backup"] is True
    for _ in range(10):
        body_of(p.port, "/x")
    assert d.n_requests == 0

    before = get_config(admin)
    cases = [
        ({"address": c.address}, 409, "already has server"),
        ({"address": "127.0.0.1:1", "weight": 0}, 400, "/upstreams/app/servers/4/weight: "),
        ({"address": "127.0.0.1:1", "color": "red"}, 400, "/upstreams/app/servers/4/color: unknown key"),
        ({"weight": 1}, 400, "missing required key 'address'"),
        ({"address": "not an address"}, 400, "invalid address"),
        ('{"address": "127.0.0.1:1"', 400, "invalid JSON at line 1"),
        ('"127.0.0.1:1"', 400, "must be a JSON object"),
        ("", 400, "end of input"),
    ]
    for body, status, msg in cases:
        r = api(admin, "POST", "/upstreams/app/servers", body)
        assert r.status == status, (body, r)
        assert msg in json.dumps(r.json()), (body, r.json())
    r = api(admin, "POST", "/upstreams/nope/servers", {"address": "127.0.0.1:1"})
    assert r.status == 404 and r.json()["error"] == "no such upstream"
    r = api(admin, "GET", "/upstreams/app/servers")
    assert r.status == 405 and r.header("allow") == "POST"
    assert get_config(admin) == before


def test_server_delete_under_load(portico, origin):
    os_ = [origin(echo(delay=0.01), name=n) for n in "abc"]
    admin = free_port()
    p = portico(("workers: 2\nadmin: {listen: \"127.0.0.1:%d\"}\n"
                 "listeners: [{listen: \"${listen}\"}]\n"
                 "upstreams: {app: {servers: [\"%s\", \"%s\", \"%s\"]}}\n"
                 "routes: [{upstream: app}]\n") % (admin, os_[0].address, os_[1].address,
                                                    os_[2].address))
    victim = os_[0]
    stop = threading.Event()
    results, lock = [], threading.Lock()

    def loop(i):
        n = 0
        while not stop.is_set() and n < 5000:
            try:
                if i % 2:
                    r = request(p.port, "GET", "/n/%d/%d" % (i, n), headers={"Connection": "close"})
                    with lock:
                        results.append(r.status)
                else:
                    with Conn(p.port, timeout=5) as c:
                        for k in range(20):
                            c.send(req("GET", "/k/%d/%d/%d" % (i, n, k)))
                            r = c.read_response()
                            with lock:
                                results.append(r.status)
            except Exception as e:  # noqa: BLE001 - a dropped request is a failure
                with lock:
                    results.append(repr(e))
            n += 1

    ts = [threading.Thread(target=loop, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    try:
        time.sleep(0.5 * SLOW)
        assert victim.n_requests > 0
        r = api(admin, "DELETE", "/upstreams/app/servers/%s" % victim.address)
        assert r.status == 200, r
        out = r.json()
        assert out["status"] == "applied" and out["server"] == victim.address
        assert out["in_flight"] >= 0
        time.sleep(0.2 * SLOW)  # requests in flight on the old snapshot finish
        seen = victim.n_requests
        time.sleep(0.8 * SLOW)
        assert victim.n_requests == seen, "a removed server got new requests"
    finally:
        stop.set()
        for t in ts:
            t.join(30)
    bad = [x for x in results if x != 200]
    assert len(results) > 100 and bad == [], bad[:5]
    assert [s for s in get_config(admin)["upstreams"]["app"]["servers"]] == [os_[1].address,
                                                                              os_[2].address]
    assert "server %s removed (admin API)" % victim.address in p.stderr()
    # errors
    r = api(admin, "DELETE", "/upstreams/app/servers/%s" % victim.address)
    assert r.status == 404 and r.json()["error"] == "no such server in this upstream"
    r = api(admin, "DELETE", "/upstreams/nope/servers/%s" % victim.address)
    assert r.status == 404 and r.json()["error"] == "no such upstream"
    r = api(admin, "GET", "/upstreams/app/servers/%s" % os_[1].address)
    assert r.status == 405 and r.header("allow") == "DELETE"
    # percent-encoded address
    r = api(admin, "DELETE", "/upstreams/app/servers/%s" % os_[1].address.replace(":", "%3A"))
    assert r.status == 200
    # the last server cannot go: the config would be invalid
    r = api(admin, "DELETE", "/upstreams/app/servers/%s" % os_[2].address)
    assert r.status == 400 and r.json()["errors"] == [
        "/upstreams/app/servers: 'servers' must not be empty"], r
    # ... and it is not left draining
    st = api(admin, "GET", "/status").json()["upstreams"][0]["servers"]
    assert [(s["address"], s["state"]) for s in st] == [(os_[2].address, "UP")]
    assert request(p.port, "GET", "/").status == 200


def test_cache_purge_errors_without_cache(portico, origin):
    a, b = origin(echo(), name="a"), origin(echo(), name="b")
    admin = free_port()
    portico(base_yaml(admin, a.address, b.address))
    for body in [None, "{}", {"all": True}, {"key": "k"}, {"prefix": "http://"}]:
        r = api(admin, "POST", "/cache/purge", body)
        assert r.status == 501 and r.json()["error"] == "no cache configured", (body, r)
    for body, msg in [("{", "invalid JSON"), ("[]", "must be a JSON object"),
                      ({"key": 1}, "must be strings"), ({"key": ""}, "must not be empty"),
                      ({"all": False}, "'all' must be true"), ({"what": 1}, "unknown key"),
                      ({"key": "a", "prefix": "b"}, "one of key, prefix or all")]:
        r = api(admin, "POST", "/cache/purge", body)
        assert r.status == 400 and msg in json.dumps(r.json()), (body, r)
    r = api(admin, "GET", "/cache/purge")
    assert r.status == 405 and r.header("allow") == "POST"


def test_cache_purge(portico, origin):
    o = origin(echo(headers=[("Cache-Control", "max-age=600")]))
    admin = free_port()
    p = portico("workers: 1\nadmin: {listen: \"127.0.0.1:%d\"}\n"
                "listeners: [{listen: \"${listen}\"}]\n"
                "upstreams: {app: {servers: [\"%s\"]}}\n"
                "routes: [{upstream: app, cache: true}]\n" % (admin, o.address))

    def fetch(path):
        r = request(p.port, "GET", path, host="h.test")
        assert r.status == 200, r
        return r

    for path in ["/a/1", "/a/2", "/b/1"]:
        fetch(path)
        fetch(path)
    assert o.n_requests == 3, "the second fetch of each is a hit"
    r = api(admin, "POST", "/cache/purge", {"key": "http://h.test/a/1"})
    assert r.status == 200 and r.json() == {"purged": 1}, r
    fetch("/a/1")
    fetch("/a/2")
    assert o.n_requests == 4
    r = api(admin, "POST", "/cache/purge", {"prefix": "http://h.test/a/"})
    assert r.json() == {"purged": 2}
    r = api(admin, "POST", "/cache/purge", {"key": "http://h.test/nothing"})
    assert r.json() == {"purged": 0}
    r = api(admin, "POST", "/cache/purge")
    assert r.json() == {"purged": 1}
    fetch("/b/1")
    assert o.n_requests == 5


def test_unknown_paths_and_methods(portico, origin):
    a, b = origin(echo(), name="a"), origin(echo(), name="b")
    admin = free_port()
    portico(base_yaml(admin, a.address, b.address))
    for path in ["/config/x", "/reload/now", "/upstreams/app", "/upstreams/app/servers/x/y/z/w",
                 "/cache", "/cache/purge/all", "/configs"]:
        assert api(admin, "GET", path).status == 404, path
    for method, path, allow in [("POST", "/config", "GET, HEAD, PUT"),
                                ("DELETE", "/config", "GET, HEAD, PUT"),
                                ("PUT", "/reload", "POST"),
                                ("PUT", "/upstreams/app/servers", "POST"),
                                ("POST", "/upstreams/app/servers/%s" % a.address, "DELETE"),
                                ("DELETE", "/cache/purge", "POST")]:
        r = api(admin, method, path, body="{}" if method in ("POST", "PUT") else None)
        assert r.status == 405 and r.header("allow") == allow, (method, path, r)


def test_bearer_token_on_every_call(portico, origin, tmp_path):
    a, b = origin(echo(), name="a"), origin(echo(), name="b")
    admin = free_port()
    tok = tmp_path / "admin.token"
    tok.write_text(TOKEN + "\n")
    p = portico(base_yaml(admin, a.address, b.address, extra=", token_file: %s" % tok))
    calls = [("GET", "/config", None), ("PUT", "/config", "{}"), ("POST", "/reload", None),
             ("POST", "/upstreams/app/servers", {"address": "127.0.0.1:1"}),
             ("DELETE", "/upstreams/app/servers/%s" % a.address, None),
             ("POST", "/cache/purge", {})]
    for method, path, body in calls:
        for token in [None, "wrong-token-0123456789", TOKEN[:-1], TOKEN + "x"]:
            r = api(admin, method, path, body, token=token)
            assert r.status == 401 and r.header("www-authenticate") == "Bearer", (method, path, r)
    assert get_config(admin, token=TOKEN)["upstreams"]["app"]["servers"][1] == b.address
    doc = get_config(admin, token=TOKEN)
    doc["routes"][0]["respond"]["body"] = "tok\n"
    assert api(admin, "PUT", "/config", doc, token=TOKEN).status == 200
    assert body_of(p.port, "/r") == b"tok\n"
    assert api(admin, "POST", "/cache/purge", {}, token=TOKEN).status == 501


def test_100_reloads_under_load(portico, origin, tmp_path):
    """100 config changes alternating two configs, a third each by SIGHUP,
    POST /reload and PUT /config, while clients keep a steady bounded load
    (keep-alive and new connections): no request fails, and each config
    takes effect when its change returns."""
    o1, o2 = origin(echo(), name="o1"), origin(echo(), name="o2")
    port, admin = free_port(), free_port()
    path = str(tmp_path / "p.yaml")
    errlog = str(tmp_path / "err.log")
    cfgs = []
    for body, up in (("A", o1.address), ("B", o2.address)):
        c = file_cfg(port, admin, body, up)
        c["log"] = {"error": errlog}
        cfgs.append(c)
    write(path, json.dumps(cfgs[0]))
    p = start_file(portico, path, port)
    expect = {"A": "o1", "B": "o2"}

    stop = threading.Event()
    lock = threading.Lock()
    failures, done = [], [0]

    def check(r, path_):
        ok = r.status == 200
        if ok and path_ == "/which":
            ok = r.body in (b"A\n", b"B\n")
        elif ok:
            ok = json.loads(r.body)["origin"] in ("o1", "o2")
        with lock:
            done[0] += 1
            if not ok:
                failures.append((r.status, r.body[:100]))

    def client(i):
        # a bounded rate: each client pauses between requests (about 400 req/s in all)
        n = 0
        while not stop.is_set():
            try:
                if i % 2 == 0:
                    with Conn(port, timeout=5) as c:
                        for k in range(25):
                            pth = "/which" if k % 3 == 0 else "/app/%d" % k
                            c.send(req("GET", pth))
                            check(c.read_response(), pth)
                            time.sleep(0.008)
                else:
                    pth = "/which" if n % 3 == 0 else "/app/%d" % n
                    check(request(port, "GET", pth, headers={"Connection": "close"}, timeout=5), pth)
                    time.sleep(0.008)
            except Exception as e:  # noqa: BLE001 - a dropped connection is a failure
                with lock:
                    failures.append(repr(e))
            n += 1

    def outcomes():
        with open(errlog) as f:
            t = f.read()
        return t.count("reloaded ") + t.count("reload failed")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    kinds = {"sighup": 0, "reload": 0, "put": 0}
    try:
        for i in range(100):
            cfg = cfgs[(i + 1) % 2]
            name = cfg["routes"][0]["respond"]["body"].strip()
            kind = ("sighup", "reload", "put")[i % 3]
            kinds[kind] += 1
            if kind == "put":
                r = api(admin, "PUT", "/config", cfg)
                assert r.status == 200, r
            else:
                write(path, json.dumps(cfg))
                if kind == "reload":
                    r = api(admin, "POST", "/reload")
                    assert r.status == 200, r
                else:
                    n0 = outcomes()
                    os.kill(p.pid, signal.SIGHUP)
                    assert wait_for(lambda: outcomes() > n0, timeout=5), "no reload outcome logged"
            # the change is in effect as soon as it returned
            assert body_of(port, "/which") == (name + "\n").encode(), (i, kind)
            assert json.loads(body_of(port, "/app/x"))["origin"] == expect[name], (i, kind)
            assert get_config(admin)["routes"][0]["respond"]["body"] == name + "\n"
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    elapsed = time.monotonic() - t0
    assert failures == [], failures[:5]
    assert done[0] > 1000, done[0]
    assert kinds == {"sighup": 34, "reload": 33, "put": 33}
    assert elapsed < 60 * SLOW, elapsed
    assert o1.n_requests > 100 and o2.n_requests > 100
    with open(errlog) as f:
        log = f.read()
    assert "reload failed" not in log
    assert log.count("reloaded %s" % path) == 67
    assert log.count("applied a config from the admin API") == 33
