"""Admin API: GET /status, draining a server under load with zero failed
requests, its idle pooled connections closed, JSON errors, bearer token."""
import os
import threading
import time

from lib.origin import echo
from lib.portico import SLOW, Conn, free_port, proxy_config, raw, req, request, run_cli, wait_for


def admin_cfg(port, token_file=None):
    s = "admin: {listen: 127.0.0.1:%d" % port
    if token_file:
        s += ", token_file: %s" % token_file
    return s + "}\n"


def states(port):
    doc = request(port, "GET", "/status").json()
    return {s["address"]: s for u in doc["upstreams"] for s in u["servers"]}


def test_status_document(portico, origin):
    a = origin(echo(), name="a")
    b = origin(echo(), name="b")
    admin = free_port()
    p = portico(proxy_config([a.address, {"address": b.address, "weight": 3, "backup": "true"}],
                             extra=admin_cfg(admin)))
    assert request(p.port, "GET", "/").status == 200
    r = request(admin, "GET", "/status")
    assert r.status == 200 and r.header("content-type") == "application/json"
    doc = r.json()
    assert doc["workers"] == 1 and doc["uptime_ms"] >= 0
    assert doc["listeners"] == [{"name": "web", "listen": "127.0.0.1:%d" % p.port, "tls": False}]
    (u,) = doc["upstreams"]
    assert u["name"] == "app" and u["balance"] == "round_robin" and u["health_checks"] is False
    sa, sb = u["servers"]
    assert sa["address"] == a.address and sa["state"] == "UP" and sa["health"] == "unchecked"
    assert sa["in_flight"] == 0 and sa["last_check"] is None and sa["last_error"] is None
    assert sb["weight"] == 3 and sb["backup"] is True
    # HEAD works, with no body
    h = request(admin, "HEAD", "/status")
    assert h.status == 200 and h.body == b""


def test_drain_under_load_no_failed_request(portico, origin):
    os_ = [origin(echo(delay=0.01), name=n) for n in "abc"]
    admin = free_port()
    p = portico(proxy_config([o.address for o in os_], workers=2, extra=admin_cfg(admin)))
    victim = os_[0]
    stop = threading.Event()
    results = []
    lock = threading.Lock()

    def loop(i):
        # keep-alive connections: pooled upstream connections exist
        n = 0
        while not stop.is_set() and n < 10000:
            try:
                with Conn(p.port, timeout=5) as c:
                    for k in range(20):
                        c.send(req("GET", "/d/%d/%d/%d" % (i, n, k)))
                        r = c.read_response()
                        with lock:
                            results.append(r.status)
            except Exception as e:  # noqa: BLE001
                with lock:
                    results.append(repr(e))
            n += 1

    ts = [threading.Thread(target=loop, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    try:
        time.sleep(0.5 * SLOW)
        assert victim.n_requests > 0
        r = request(admin, "POST", "/upstreams/app/servers/%s/drain" % victim.address)
        assert r.status == 200 and r.json()["draining"] is True, r
        time.sleep(0.1 * SLOW)  # requests already in flight finish
        seen = victim.n_requests
        time.sleep(0.8 * SLOW)
        assert victim.n_requests == seen, "a drained server got new requests"
        # its idle pooled connections were closed by the workers
        assert wait_for(lambda: len(victim._conns) == 0, 3), len(victim._conns)
        assert states(admin)[victim.address]["state"] == "DRAINING"
        assert states(admin)[victim.address]["in_flight"] == 0
    finally:
        stop.set()
        for t in ts:
            t.join(20)
    bad = [x for x in results if x != 200]
    assert len(results) > 100 and bad == [], (len(results), bad[:5])
    # and back
    r = request(admin, "POST", "/upstreams/app/servers/%s/undrain" % victim.address)
    assert r.status == 200 and r.json()["draining"] is False
    before = victim.n_requests
    # Each of the 2 workers runs its own smooth round-robin, whose state for
    # the victim is where the drain left it: it comes back within a few picks
    # per worker, not necessarily within the first handful overall.
    for i in range(30):
        assert request(p.port, "GET", "/again").status == 200
        if victim.n_requests > before:
            break
    assert victim.n_requests > before
    assert "is DRAINING (admin API)" in p.stderr()


def test_admin_errors(portico, origin):
    a = origin(echo())
    admin = free_port()
    portico(proxy_config([a.address], extra=admin_cfg(admin)))
    r = request(admin, "POST", "/upstreams/nope/servers/%s/drain" % a.address)
    assert r.status == 404 and r.json()["error"] == "no such upstream"
    r = request(admin, "POST", "/upstreams/app/servers/127.0.0.1:1/drain")
    assert r.status == 404 and "no such server" in r.json()["error"]
    r = request(admin, "GET", "/upstreams/app/servers/%s/drain" % a.address)
    assert r.status == 405 and r.header("allow") == "POST"
    r = request(admin, "POST", "/status")
    assert r.status == 405 and r.header("allow") == "GET, HEAD"
    assert request(admin, "GET", "/nothing").status == 404
    r = request(admin, "POST", "/status", body=b"x" * (70 * 1024))
    assert r.status == 413
    out = raw(admin, b"GET /status HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 "), out[:100]
    # percent-encoded address works
    r = request(admin, "POST", "/upstreams/app/servers/%s/drain" % a.address.replace(":", "%3A"))
    assert r.status == 200


def test_bearer_token(portico, origin, tmp_path):
    a = origin(echo())
    admin = free_port()
    tok = tmp_path / "admin.token"
    tok.write_text("s3cr3t-token-0123456789\n")
    portico(proxy_config([a.address], extra=admin_cfg(admin, tok)))
    assert request(admin, "GET", "/status").status == 401
    r = request(admin, "GET", "/status", headers=[("Authorization", "Bearer wrong-token-0123456789")])
    assert r.status == 401 and r.header("www-authenticate") == "Bearer"
    r = request(admin, "GET", "/status", headers=[("Authorization", "Bearer s3cr3t-token-0123456789")])
    assert r.status == 200


def test_non_loopback_admin_needs_token(tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("admin: {listen: \"0.0.0.0:9901\"}\nlisteners: [{listen: \"127.0.0.1:1\"}]\n")
    r = run_cli(["-t", "-c", str(cfg)])
    assert r.returncode == 1
    assert b"p.yaml:1:17: admin.listen '0.0.0.0:9901' is not a loopback address" in r.stderr, r.stderr


def test_missing_token_file_fails_start(tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("admin: {listen: \"127.0.0.1:%d\", token_file: %s}\n"
                   "listeners: [{listen: \"127.0.0.1:%d\"}]\n"
                   % (free_port(), os.path.join(str(tmp_path), "none"), free_port()))
    r = run_cli(["-c", str(cfg)], timeout=10)
    assert r.returncode == 1 and b"token_file" in r.stderr, r.stderr
