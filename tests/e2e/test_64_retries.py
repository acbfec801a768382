"""Retries (retry_on, idempotency, body replay, retry budget) and circuit
breaking (max_connections with max_pending), asserted on client results and
origin hit counts."""
import threading
import time

from lib.origin import by_path, count_body, echo, fixed, never_answer
from lib.portico import SLOW, proxy_config, request


def test_refused_request_moves_to_another_server(portico, origin, dead_port):
    dead = dead_port().address
    a = origin(echo(), name="a")
    b = origin(echo(), name="b")
    # fail_timeout 0: the refusing server stays in rotation, every third
    # request hits it first and must be moved.
    p = portico(proxy_config([dead, a.address, b.address],
                             upstream_extra="    fail_timeout: 0s\n"))
    res = [request(p.port, "GET", "/r%d" % i) for i in range(30)]
    assert [r.status for r in res] == [200] * 30
    assert a.n_requests + b.n_requests == 30
    for i in range(4):
        r = request(p.port, "POST", "/p", body=b"payload-%d" % i)
        assert r.status == 200 and r.json()["body"] == "payload-%d" % i


def test_retry_on_503_goes_to_another_server(portico, origin):
    a = origin(fixed(503, body=b"busy"), name="a")
    b = origin(echo(), name="b")
    p = portico(proxy_config([a.address, b.address],
                             upstream_extra="    retry_on: [connect, 503]\n"))
    res = [request(p.port, "GET", "/g%d" % i) for i in range(10)]
    assert all(r.status == 200 and r.header("x-origin") == "b" for r in res), res
    assert a.n_requests == 5 and b.n_requests == 10
    # the discarded 503 head never reached the client; the connection to a
    # was closed, not pooled
    assert a.n_connections == 5


def test_retry_on_status_not_for_post_by_default(portico, origin):
    a = origin(fixed(503, body=b"busy"), name="a")
    b = origin(echo(), name="b")
    p = portico(proxy_config([a.address, b.address],
                             upstream_extra="    retry_on: [503]\n"))
    statuses = sorted(request(p.port, "POST", "/p", body=b"x").status for _ in range(4))
    assert statuses == [200, 200, 503, 503]


def test_post_body_replayed_when_allowed(portico, origin):
    a = origin(fixed(503), name="a")
    b = origin(count_body(), name="b")
    p = portico(proxy_config([a.address, b.address],
                             upstream_extra="    retry_on: [503]\n    retry_non_idempotent: true\n"))
    body = bytes(range(256)) * 40  # 10 KiB
    for i in range(4):
        r = request(p.port, "POST", "/up", body=body)
        assert r.status == 200, r
        assert r.json()["bytes"] == len(body)
    # chunked request bodies are replayed byte for byte too
    r = request(p.port, "POST", "/up", headers=[("Transfer-Encoding", "chunked")],
                body=b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert r.status == 200 and r.json()["bytes"] == 11, r
    assert a.n_requests >= 2


def test_body_over_retry_body_max_is_not_retried(portico, origin):
    a = origin(fixed(503), name="a")
    b = origin(count_body(), name="b")
    p = portico(proxy_config([a.address, b.address],
                             upstream_extra="    retry_on: [503]\n    retry_non_idempotent: true\n"
                                            "    retry_body_max: 1k\n"))
    small = [request(p.port, "PUT", "/s", body=b"s" * 500).status for _ in range(4)]
    big = sorted(request(p.port, "PUT", "/b", body=b"b" * 4000).status for _ in range(4))
    assert small == [200] * 4
    assert big == [200, 200, 503, 503]


def test_retry_on_timeout(portico, origin):
    a = origin(never_answer(), name="a")
    b = origin(echo(), name="b")
    p = portico(proxy_config([a.address, b.address],
                             upstream_extra="    retry_on: [timeout]\n"
                                            "    timeouts: {upstream_read: 300ms}\n"))
    for i in range(2):
        r = request(p.port, "GET", "/t%d" % i, timeout=10)
        assert r.status == 200 and r.header("x-origin") == "b", r
    assert a.n_requests == 1


def storm(port, n, path="/s"):
    out = [None] * n
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait(5)
        try:
            out[i] = request(port, "GET", "%s%d" % (path, i), timeout=20).status
        except Exception as e:  # noqa: BLE001
            out[i] = repr(e)
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    return out


def test_retry_budget_stops_a_retry_storm(portico, origin):
    """Every server answers 503 slowly. 30 concurrent requests with retries: 2
    would make 90 origin hits; a 20% budget (at least 3 retries in flight)
    keeps it near 30 + 2 x 6."""
    os_ = [origin(fixed(503, delay=0.3 * SLOW), name=n) for n in "abc"]
    p = portico(proxy_config([o.address for o in os_],
                             upstream_extra="    retries: 2\n    retry_on: [503]\n"
                                            "    retry_budget: 20%\n"))
    res = storm(p.port, 30)
    assert res == [503] * 30, res
    hits = sum(o.n_requests for o in os_)
    assert 30 <= hits <= 50, hits


def test_without_budget_the_storm_triples(portico, origin):
    """The control for the test above: budget 100% lets every request retry."""
    os_ = [origin(fixed(503, delay=0.2 * SLOW), name=n) for n in "abc"]
    p = portico(proxy_config([o.address for o in os_],
                             upstream_extra="    retries: 2\n    retry_on: [503]\n"
                                            "    retry_budget: 100%\n"))
    res = storm(p.port, 12)
    assert res == [503] * 12, res
    assert sum(o.n_requests for o in os_) == 36


def test_circuit_breaker_503_with_retry_after(portico, origin):
    o = origin(by_path({"/slow": echo(delay=1.0 * SLOW)}))
    p = portico(proxy_config([o.address], upstream_extra="    max_connections: 1\n"))
    res = {}
    t = threading.Thread(target=lambda: res.setdefault("slow", request(p.port, "GET", "/slow", timeout=15)))
    t.start()
    assert o.wait_requests(1)
    t0 = time.monotonic()
    r = request(p.port, "GET", "/fast")
    assert time.monotonic() - t0 < 0.5 * SLOW
    t.join(20)
    assert res["slow"].status == 200
    assert r.status == 503 and r.header("retry-after") == "1", r


def test_max_pending_waits_for_a_slot(portico, origin):
    """max_connections 1, max_pending 1: the second request waits for the
    slot and succeeds; a third, beyond max_pending, gets 503 at once."""
    o = origin(by_path({"/slow": echo(delay=0.6 * SLOW)}))
    p = portico(proxy_config([o.address], upstream_extra="    max_connections: 1\n"
                                                         "    max_pending: 1\n"
                                                         "    pending_timeout: 5s\n"))
    res = {}

    def go(name, path):
        res[name] = request(p.port, "GET", path, timeout=15)
    t1 = threading.Thread(target=go, args=("slow", "/slow"))
    t1.start()
    assert o.wait_requests(1)
    t2 = threading.Thread(target=go, args=("queued", "/queued"))
    t2.start()
    time.sleep(0.15 * SLOW)
    t0 = time.monotonic()
    r3 = request(p.port, "GET", "/third")
    assert time.monotonic() - t0 < 0.4 * SLOW
    t1.join(20)
    t2.join(20)
    assert res["slow"].status == 200
    assert res["queued"].status == 200, res["queued"]
    assert r3.status == 503 and r3.header("retry-after") == "1", r3
    assert o.max_active == 1


def test_max_pending_times_out(portico, origin):
    o = origin(by_path({"/slow": echo(delay=1.5 * SLOW)}))
    p = portico(proxy_config([o.address], upstream_extra="    max_connections: 1\n"
                                                         "    max_pending: 4\n"
                                                         "    pending_timeout: 300ms\n"))
    res = {}
    t1 = threading.Thread(target=lambda: res.setdefault("slow", request(p.port, "GET", "/slow", timeout=15)))
    t1.start()
    assert o.wait_requests(1)
    t0 = time.monotonic()
    r = request(p.port, "GET", "/waits")
    waited = time.monotonic() - t0
    t1.join(20)
    assert r.status == 503 and r.header("retry-after") == "1", r
    assert waited >= 0.25
    assert res["slow"].status == 200
