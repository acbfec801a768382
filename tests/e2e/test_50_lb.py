"""Load balancing, asserted on what the origins saw: round_robin (smooth
weighted), least_conn, ip_hash, random, hash, backup servers, passive failure
and retries."""
import collections
import threading
import time

from lib.origin import Origin, by_path, echo
from lib.portico import SLOW, Conn, proxy_config, req, request


def names_over_one_conn(port, n, path="/", headers=None):
    out = []
    with Conn(port) as c:
        for i in range(n):
            c.send(req("GET", "%s?i=%d" % (path, i), headers))
            r = c.read_response()
            assert r.status == 200, r
            out.append(r.header("x-origin"))
    return out


def test_round_robin_smooth_weights(portico, origin):
    a = origin(echo(), name="a")
    b = origin(echo(), name="b")
    p = portico(proxy_config([(a.address, 3), (b.address, 1)], balance="round_robin"))
    seq = "".join(names_over_one_conn(p.port, 40))
    assert seq.count("a") == 30 and seq.count("b") == 10, seq
    assert a.n_requests == 30 and b.n_requests == 10
    # smooth weighted round robin is periodic (period = total weight 4) and
    # its period is a rotation of "aaba" (which rotation depends on tie-breaking)
    rotations = ["aaba", "abaa", "baaa", "aaab"]
    assert any(seq == r * 10 for r in rotations), seq
    assert "bb" not in seq


def test_round_robin_smooth_weights_5_1_1(portico, origin):
    """Smooth weighted round robin for 5:1:1 gives a a b a c a a (period 7),
    or a a c a b a a when ties go to the later server; the weight-1 servers
    are spread out, not bunched."""
    a = origin(echo(), name="a")
    b = origin(echo(), name="b")
    c = origin(echo(), name="c")
    p = portico(proxy_config([(a.address, 5), (b.address, 1), (c.address, 1)]))
    seq = "".join(names_over_one_conn(p.port, 70))
    assert (seq.count("a"), seq.count("b"), seq.count("c")) == (50, 10, 10), seq
    period = seq[:7]
    assert seq == period * 10, seq
    allowed = set()
    for base in ("aabacaa", "aacabaa"):
        allowed |= {base[i:] + base[:i] for i in range(7)}
    assert period in allowed, seq


def test_round_robin_equal_weights_across_connections(portico, origin):
    a = origin(echo(), name="a")
    b = origin(echo(), name="b")
    p = portico(proxy_config([a.address, b.address]))
    seq = [request(p.port, "GET", "/").header("x-origin") for _ in range(10)]
    assert seq.count("a") == 5 and seq.count("b") == 5
    assert all(seq[i] != seq[i + 1] for i in range(9)), seq


def test_least_conn_avoids_busy_server(portico, origin):
    delay = 2.0 * SLOW
    a = origin(by_path({"/slow": echo(delay=delay)}), name="a")
    b = origin(by_path({"/slow": echo(delay=delay)}), name="b")
    p = portico(proxy_config([a.address, b.address], balance="least_conn"))
    res = {}
    t = threading.Thread(target=lambda: res.setdefault("slow", request(p.port, "GET", "/slow", timeout=20)))
    t.start()
    try:
        deadline = time.monotonic() + 5 * SLOW
        while a.active + b.active == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        busy = a if a.active else b
        idle = b if busy is a else a
        assert busy.active == 1
        seq = [request(p.port, "GET", "/quick%d" % i).header("x-origin") for i in range(6)]
        assert busy.active == 1, "the slow request finished too early for the test to mean anything"
        assert seq == [idle.name] * 6, seq
    finally:
        t.join(30)
    assert res["slow"].status == 200


def test_least_conn_two_busy(portico, origin):
    """Two slow requests in flight on a 3-server pool go to different servers."""
    delay = 2.0 * SLOW
    os_ = [origin(by_path({"/slow": echo(delay=delay)}), name=n) for n in "abc"]
    p = portico(proxy_config([o.address for o in os_], balance="least_conn"))
    threads = [threading.Thread(target=request, args=(p.port, "GET", "/slow"), kwargs={"timeout": 20}) for _ in range(2)]
    try:
        for k, t in enumerate(threads):
            t.start()
            deadline = time.monotonic() + 5 * SLOW
            while sum(o.active for o in os_) < k + 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert sum(o.active for o in os_) == 2
        assert max(o.active for o in os_) == 1
        free = [o for o in os_ if o.active == 0][0]
        seq = [request(p.port, "GET", "/q").header("x-origin") for _ in range(4)]
        assert seq == [free.name] * 4, seq
    finally:
        for t in threads:
            t.join(30)


def test_ip_hash_same_client_same_server(portico, origin):
    os_ = [origin(echo(), name=n) for n in "abc"]
    p = portico(proxy_config([o.address for o in os_], balance="ip_hash"))
    seq = [request(p.port, "GET", "/").header("x-origin") for _ in range(20)]
    assert len(set(seq)) == 1, seq
    assert sorted(o.n_requests for o in os_) == [0, 0, 20]


def test_random_spreads(portico, origin):
    os_ = [origin(echo(), name=n) for n in "abc"]
    p = portico(proxy_config([o.address for o in os_], balance="random"))
    names_over_one_conn(p.port, 90)
    counts = [o.n_requests for o in os_]
    assert sum(counts) == 90
    assert min(counts) >= 5, counts


def test_hash_on_header(portico, origin):
    os_ = [origin(echo(), name=n) for n in "abc"]
    p = portico(proxy_config([o.address for o in os_], balance="hash",
                             upstream_extra='    hash_key: "{header.X-User}"\n'))
    where = collections.defaultdict(set)
    with Conn(p.port) as c:
        for rnd in range(3):
            for u in range(24):
                c.send(req("GET", "/", [("X-User", "user-%d" % u)]))
                r = c.read_response()
                assert r.status == 200
                where["user-%d" % u].add(r.header("x-origin"))
    assert all(len(s) == 1 for s in where.values()), dict(where)
    used = set().union(*where.values())
    assert len(used) >= 2, "24 users all hashed to %s" % used


def test_backup_idle_while_primaries_up(portico, origin):
    a = origin(echo(), name="a")
    b = origin(echo(), name="b")
    bk = origin(echo(), name="backup")
    p = portico(proxy_config([a.address, b.address, {"address": bk.address, "backup": "true"}]))
    names_over_one_conn(p.port, 20)
    assert bk.n_requests == 0
    assert a.n_requests == 10 and b.n_requests == 10


def test_backup_used_when_primaries_refuse(portico, origin, dead_port):
    d1 = dead_port().address
    d2 = dead_port().address
    bk = origin(echo(), name="backup")
    p = portico(proxy_config([d1, d2, {"address": bk.address, "backup": "true"}],
                             upstream_extra="    retries: 2\n    fail_timeout: 30s\n"))
    for i in range(6):
        r = request(p.port, "GET", "/b%d" % i)
        assert r.status == 200 and r.header("x-origin") == "backup", (i, r)
    assert bk.n_requests == 6


def test_refusing_server_requests_still_succeed(portico, origin, dead_port):
    dead = dead_port().address
    a = origin(echo(), name="a")
    p = portico(proxy_config([dead, a.address], upstream_extra="    fail_timeout: 30s\n"))
    for i in range(10):
        r = request(p.port, "GET", "/r%d" % i)
        assert r.status == 200 and r.header("x-origin") == "a", (i, r)
    assert a.n_requests == 10


def test_post_moves_to_another_server_when_refused(portico, origin, dead_port):
    dead = dead_port().address
    a = origin(echo(), name="a")
    p = portico(proxy_config([dead, a.address]))
    for i in range(4):
        r = request(p.port, "POST", "/p", body=b"body-%d" % i)
        assert r.status == 200 and r.json()["body"] == "body-%d" % i, r


def test_refusing_server_skipped_during_fail_timeout(portico, origin, dead_port):
    dp = dead_port()
    port, dead = dp.port, dp.address
    a = origin(echo(), name="a")
    p = portico(proxy_config([dead, a.address], upstream_extra="    fail_timeout: 30s\n"))
    for i in range(4):
        assert request(p.port, "GET", "/").status == 200
    # the server comes back, but it is still marked down
    dp.release()
    late = Origin(echo(), name="late", port=port).start()
    try:
        for i in range(10):
            assert request(p.port, "GET", "/").header("x-origin") == "a"
        assert late.n_requests == 0
    finally:
        late.stop()


def test_refusing_server_retried_after_fail_timeout(portico, origin, dead_port):
    dp = dead_port()
    port, dead = dp.port, dp.address
    a = origin(echo(), name="a")
    p = portico(proxy_config([dead, a.address], upstream_extra="    fail_timeout: 1s\n"))
    for i in range(4):
        assert request(p.port, "GET", "/").status == 200
    dp.release()
    late = Origin(echo(), name="late", port=port).start()
    try:
        time.sleep(1.6)
        seq = [request(p.port, "GET", "/").header("x-origin") for _ in range(10)]
        assert "late" in seq, seq
    finally:
        late.stop()


def test_retries_zero_gives_502(portico, origin, dead_port):
    dead = dead_port().address
    a = origin(echo(), name="a")
    p = portico(proxy_config([dead, a.address], upstream_extra="    retries: 0\n    fail_timeout: 30s\n"))
    first = [request(p.port, "GET", "/").status for _ in range(2)]
    assert 502 in first, first
    rest = [request(p.port, "GET", "/").status for _ in range(6)]
    assert rest == [200] * 6
