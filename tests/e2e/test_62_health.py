"""Active health checks (upstreams.X.health), passive outlier ejection and
slow start, asserted on what clients and origins saw and on /status."""
import json
import threading
import time

from lib.origin import Origin, by_path, echo, fixed
from lib.portico import SLOW, Conn, free_port, proxy_config, req, request, wait_for

INTERVAL_MS = 200


def health(extra=""):
    return ("    health: {uri: /healthz, interval: %dms, timeout: 300ms, rise: 2, fall: 2%s}\n"
            % (INTERVAL_MS, extra))


def status(port):
    r = request(port, "GET", "/status")
    assert r.status == 200, r
    return r.json()


def server_states(port, upstream="app"):
    doc = status(port)
    for u in doc["upstreams"]:
        if u["name"] == upstream:
            return {s["address"]: s for s in u["servers"]}
    raise AssertionError("no upstream %s in %r" % (upstream, doc))


class Load:
    """Threads sending GETs (new connection each) until stopped; records
    (time, status or exception) per request."""

    def __init__(self, port, threads=4):
        self.port = port
        self.stop = threading.Event()
        self.results = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]

    def run(self, i):
        n = 0
        while not self.stop.is_set() and n < 100000:
            n += 1
            t = time.monotonic()
            try:
                r = request(self.port, "GET", "/load/%d/%d" % (i, n), timeout=5)
                res = r.status
            except Exception as e:  # noqa: BLE001 - any failure is a client error
                res = repr(e)
            with self.lock:
                self.results.append((t, res))
            time.sleep(0.005)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def errors_since(self, t0):
        with self.lock:
            return [(t, r) for t, r in self.results if t >= t0 and r != 200]

    def count_since(self, t0):
        with self.lock:
            return len([1 for t, _ in self.results if t >= t0])


def test_kill_one_of_three_under_load_then_rejoin(portico, origin):
    os_ = [origin(echo(), name=n) for n in "abc"]
    admin = free_port()
    p = portico(proxy_config([o.address for o in os_], upstream_extra=health(), workers=2,
                             extra="admin: {listen: 127.0.0.1:%d}\n" % admin))
    victim = os_[1]
    port = victim.port
    with Load(p.port) as load:
        time.sleep(0.5 * SLOW)
        victim.stop()
        t_kill = time.monotonic()
        # fall x interval, plus one interval of jitter and slack
        settle = (2 * INTERVAL_MS + 2 * INTERVAL_MS) / 1000.0 * SLOW
        assert wait_for(lambda: server_states(admin)[victim.address]["state"] == "DOWN", 5)
        time.sleep(max(0.0, t_kill + settle - time.monotonic()))
        t_counted = time.monotonic()
        time.sleep(1.0 * SLOW)
        errs = load.errors_since(t_counted)
        assert load.count_since(t_counted) > 20
        assert errs == [], errs[:5]
        # back on the same port: rejoins after rise x interval
        back = Origin(echo(), name="b2", port=port).start()
        try:
            assert wait_for(lambda: back.n_requests > 2, 5), "the server did not rejoin"
            assert server_states(admin)[victim.address]["state"] == "UP"
        finally:
            time.sleep(0.2)
            load.stop.set()
            for t in load.threads:
                t.join(10)
            back.stop()
    err = p.stderr()
    assert "server %s is DOWN (connect failed" % victim.address in err, err
    assert "server %s is UP" % victim.address in err, err
    st = server_states(admin)[victim.address]
    assert st["went_down"] == 1 and st["went_up"] == 1, st


def test_503_on_healthz_is_taken_out(portico, origin):
    sick = origin(by_path({"/healthz": fixed(503)}, default=echo()), name="sick")
    good = origin(echo(), name="good")
    admin = free_port()
    p = portico(proxy_config([sick.address, good.address], upstream_extra=health(),
                             extra="admin: {listen: 127.0.0.1:%d}\n" % admin))
    assert wait_for(lambda: server_states(admin)[sick.address]["state"] == "DOWN", 5)
    before = len([x for x in sick.paths() if x != "/healthz"])
    seq = [request(p.port, "GET", "/x%d" % i).header("x-origin") for i in range(10)]
    assert seq == ["good"] * 10, seq
    assert len([x for x in sick.paths() if x != "/healthz"]) == before
    st = server_states(admin)[sick.address]
    assert st["health"] == "down" and st["last_check"]["ok"] is False
    assert st["last_error"]["error"] == "status 503", st
    assert "is DOWN (status 503; 2 failed checks in a row)" in p.stderr()
    # what the checks look like
    chk = [r for r in good.requests if r.path == "/healthz"][0]
    assert chk.method == "GET" and chk.header("host") == good.address
    assert "close" in chk.header("connection", "").lower()


def test_all_down_answers_503_without_connecting(portico, origin):
    sick = origin(by_path({"/healthz": fixed(500)}, default=echo()), name="sick")
    admin = free_port()
    p = portico(proxy_config([sick.address], upstream_extra=health(),
                             extra="admin: {listen: 127.0.0.1:%d}\n" % admin))
    assert wait_for(lambda: server_states(admin)[sick.address]["state"] == "DOWN", 5)
    conns = sick.n_connections
    checks = len([x for x in sick.paths() if x == "/healthz"])
    for i in range(10):
        r = request(p.port, "GET", "/")
        assert r.status == 503, r
    # only health checks reached the origin meanwhile
    assert [x for x in sick.paths() if x != "/healthz"] == []
    assert sick.n_connections - conns <= len([x for x in sick.paths() if x == "/healthz"]) - checks


def test_backup_used_when_primaries_are_down(portico, origin):
    a = origin(by_path({"/healthz": fixed(503)}, default=echo()), name="a")
    bk = origin(echo(), name="backup")
    admin = free_port()
    p = portico(proxy_config([a.address, {"address": bk.address, "backup": "true"}],
                             upstream_extra=health(),
                             extra="admin: {listen: 127.0.0.1:%d}\n" % admin))
    assert wait_for(lambda: server_states(admin)[a.address]["state"] == "DOWN", 5)
    assert {request(p.port, "GET", "/").header("x-origin") for _ in range(5)} == {"backup"}


def test_tcp_check_and_expect_body(portico, origin, dead_port):
    dead = dead_port().address
    ok = origin(by_path({"/healthz": fixed(200, body=b"status: ready")}), name="ok")
    wrong = origin(by_path({"/healthz": fixed(200, body=b"status: starting")}), name="wrong")
    admin = free_port()
    cfg = ("workers: 1\nadmin: {listen: 127.0.0.1:%d}\nlisteners: [{listen: \"${listen}\"}]\n"
           "upstreams:\n"
           "  t: {servers: [%s, %s], health: {type: tcp, interval: 200ms, rise: 1, fall: 1}}\n"
           "  b: {servers: [%s, %s], health: {uri: /healthz, expect_body: ready, interval: 200ms,"
           " rise: 1, fall: 1}}\n"
           "routes: [{upstream: b}]\n") % (admin, dead, ok.address, ok.address, wrong.address)
    portico(cfg)
    assert wait_for(lambda: server_states(admin, "t")[dead]["state"] == "DOWN", 5)
    assert server_states(admin, "t")[ok.address]["state"] == "UP"
    assert wait_for(lambda: server_states(admin, "b")[wrong.address]["state"] == "DOWN", 5)
    st = server_states(admin, "b")
    assert st[ok.address]["state"] == "UP"
    assert st[wrong.address]["last_error"]["error"] == "expected body text not found"
    assert "connect failed" in server_states(admin, "t")[dead]["last_error"]["error"]


def test_passive_ejection(portico, origin):
    bad = origin(fixed(500), name="bad")
    good = [origin(echo(), name=n) for n in ("g1", "g2")]
    admin = free_port()
    p = portico(proxy_config([bad.address] + [g.address for g in good],
                             upstream_extra="    passive: {consecutive_failures: 3, eject: 5s}\n",
                             extra="admin: {listen: 127.0.0.1:%d}\n" % admin))
    statuses = [request(p.port, "GET", "/e%d" % i).status for i in range(30)]
    assert bad.n_requests == 3, bad.n_requests
    assert statuses.count(500) == 3
    st = server_states(admin)[bad.address]
    assert st["state"] == "EJECTED" and st["ejections"] == 1, st
    assert 0 < st["ejected_for_ms"] <= 5000
    assert "server %s EJECTED for 5000 ms (3 consecutive failures)" % bad.address in p.stderr()


def test_passive_never_ejects_past_max_percent(portico, origin):
    bad = [origin(fixed(502), name="b%d" % i) for i in range(2)]
    admin = free_port()
    p = portico(proxy_config([b.address for b in bad],
                             upstream_extra="    passive: {consecutive_failures: 1, eject: 5s,"
                                            " max_ejected_percent: 50}\n",
                             extra="admin: {listen: 127.0.0.1:%d}\n" % admin))
    for i in range(10):
        assert request(p.port, "GET", "/").status == 502
    states = sorted(s["state"] for s in server_states(admin).values())
    assert states == ["EJECTED", "UP"], states


def test_slow_start_ramps_share(portico, origin):
    """b comes UP with slow_start 2s: its share starts near 0 and reaches its
    full half within the ramp."""
    flag = {"sick": True}

    def hz(c, r):
        c.respond(503 if flag["sick"] else 200, body=b"")
        return True
    a = origin(echo(), name="a")
    b = origin(by_path({"/healthz": hz}, default=echo()), name="b")
    admin = free_port()
    p = portico(proxy_config([a.address, b.address],
                             upstream_extra=health() + "    slow_start: 2s\n",
                             extra="admin: {listen: 127.0.0.1:%d}\n" % admin))
    assert wait_for(lambda: server_states(admin)[b.address]["state"] == "DOWN", 5)
    flag["sick"] = False
    assert wait_for(lambda: server_states(admin)[b.address]["state"] == "UP", 5, interval=0.005)

    def share(seconds):
        names = []
        end = time.monotonic() + seconds
        with Conn(p.port) as c:
            while time.monotonic() < end and len(names) < 5000:
                c.send(req("GET", "/s"))
                names.append(c.read_response().header("x-origin"))
        return names.count("b") / max(1, len(names)), len(names)

    early, n1 = share(0.4)
    time.sleep(max(0.0, 2.2 - 0.4))
    late, n2 = share(0.5)
    assert n1 > 20 and n2 > 20
    assert early < 0.25, early
    assert 0.4 < late < 0.6, late
    ew = server_states(admin)[b.address]["effective_weight"]
    assert ew == 1.0, ew
