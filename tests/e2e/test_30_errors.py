"""Upstream errors: 502/503/504/408 with short bodies, responses cut by the
origin never presented as complete, and pool poisoning."""
import threading
import time

import pytest

from lib.origin import (by_path, cut, cut_chunked, echo, first_then, garbage, never_answer, raw_response,
                        reset)
from lib.portico import SLOW, Conn, curl, proxy_config, req, request


def assert_short_error(r, status):
    assert r.status == status, r
    assert 0 < len(r.body) <= 512, r


def test_502_connection_refused(portico, dead_port):
    dead = dead_port().address
    p = portico(proxy_config([dead]))
    r = request(p.port, "GET", "/")
    assert_short_error(r, 502)


def test_502_first_then_503_while_down(portico, dead_port):
    """The only server refuses: the first request fails with 502 (the attempt
    failed), then the server is marked down and requests get 503 (no server)."""
    dead = dead_port().address
    p = portico(proxy_config([dead], upstream_extra="    fail_timeout: 30s\n"))
    r1 = request(p.port, "GET", "/")
    assert_short_error(r1, 502)
    r2 = request(p.port, "GET", "/")
    assert_short_error(r2, 503)


def test_502_reset(portico, origin):
    o = origin(reset())
    p = portico(proxy_config([o.address]))
    r = request(p.port, "GET", "/")
    assert_short_error(r, 502)


@pytest.mark.parametrize("junk", [b"THIS IS NOT HTTP\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n", b"\x00\x01\x02\x03",
                                  b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
                                  b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n"],
                         ids=["text", "bad-status", "binary", "two-cl", "bad-header"])
def test_502_garbage(portico, origin, junk):
    o = origin(garbage(junk))
    p = portico(proxy_config([o.address]))
    r = request(p.port, "GET", "/")
    assert_short_error(r, 502)


def test_502_origin_closes_without_answer(portico, origin):
    o = origin(raw_response(b"", keep=False))
    p = portico(proxy_config([o.address], upstream_extra="    retries: 0\n"))
    r = request(p.port, "GET", "/")
    assert_short_error(r, 502)


def test_504_upstream_read_timeout(portico, origin):
    o = origin(never_answer())
    p = portico(proxy_config([o.address], extra="timeouts:\n  upstream_read: 1s\n"))
    t0 = time.monotonic()
    r = request(p.port, "GET", "/", timeout=15)
    dt = time.monotonic() - t0
    assert_short_error(r, 504)
    assert 0.8 <= dt < 10 * SLOW, dt


def test_408_client_header_timeout(portico, origin):
    o = origin(echo())
    p = portico(proxy_config([o.address], extra="timeouts:\n  client_header: 1s\n"))
    with Conn(p.port, timeout=10) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: example.test\r\n")
        t0 = time.monotonic()
        r = c.read_response()
        dt = time.monotonic() - t0
        assert_short_error(r, 408)
        assert "close" in r.conn_tokens()
        assert c.is_closed(3)
    assert 0.8 <= dt < 8 * SLOW, dt
    assert o.n_requests == 0


def test_cut_response_content_length(portico, origin):
    o = origin(cut(1000, 100))
    p = portico(proxy_config([o.address]))
    with Conn(p.port, timeout=10) as c:
        c.send(req("GET", "/cut"))
        r = c.read_response()
        if r.status == 200:
            # head went out before the cut: the body must end by a close, short
            assert r.header("content-length") == "1000"
            assert not r.complete and len(r.body) < 1000, r
            assert c.eof
        else:
            assert r.status == 502, r


def test_cut_response_curl_reports_error(portico, origin):
    o = origin(cut(100000, 1000))
    p = portico(proxy_config([o.address]))
    r = curl("-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:%d/" % p.port)
    # curl fails (18: partial file, 56: recv failure), or the proxy answered 502. Never a success.
    assert r.returncode != 0 or r.stdout == b"502", r


def test_cut_chunked_response(portico, origin):
    o = origin(cut_chunked())
    p = portico(proxy_config([o.address]))
    with Conn(p.port, timeout=10) as c:
        c.send(req("GET", "/cut"))
        r = c.read_response()
        if r.status == 200:
            assert not r.complete, r
            assert b"0\r\n\r\n" not in r.raw
            assert c.eof
        else:
            assert r.status == 502, r


def test_cut_response_then_next_request_works(portico, origin):
    o = origin(first_then(cut(1000, 100), echo()))
    p = portico(proxy_config([o.address]))
    with Conn(p.port, timeout=10) as c:
        c.send(req("GET", "/cut"))
        c.read_response()
    r = request(p.port, "GET", "/next")
    assert r.status == 200 and r.json()["path"] == "/next"


POISON = [
    ("extra-bytes", raw_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                                 b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned")),
    ("extra-bytes-late", raw_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                                      after=b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned", after_delay=0.2)),
    ("204-with-body", raw_response(b"HTTP/1.1 204 No Content\r\n\r\n"
                                   b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned")),
    ("cl-and-te", raw_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
                               b"2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned")),
    ("bad-chunk", raw_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               b"zz\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned")),
    ("chunk-overflow", raw_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    b"10000000000000002\r\nok\r\n0\r\n\r\n"
                                    b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned")),
]


@pytest.mark.parametrize("handler", [h for _, h in POISON], ids=[n for n, _ in POISON])
def test_pool_poisoning(portico, origin, handler):
    """The first response is followed by extra bytes or badly framed; the next
    request must get a fresh upstream connection and a clean answer."""
    o = origin(first_then(handler, echo()))
    p = portico(proxy_config([o.address]))
    with Conn(p.port, timeout=10) as c:
        c.send(req("GET", "/first"))
        try:
            c.read_response()
        except Exception:
            pass
    time.sleep(0.5)
    for i in range(3):
        r = request(p.port, "GET", "/next%d" % i)
        assert b"poisoned" not in r.raw, r
        assert r.status == 200 and r.json()["path"] == "/next%d" % i, r
    assert o.n_connections >= 2, "the poisoned upstream connection was reused"
    # requests on the origin: only /first on the first connection
    firsts = [rq for rq in o.requests if rq.conn_id == 1]
    assert [rq.path for rq in firsts] == ["/first"]


def test_pool_poisoning_same_client_connection(portico, origin):
    o = origin(first_then(POISON[0][1], echo()))
    p = portico(proxy_config([o.address]))
    with Conn(p.port, timeout=10) as c:
        c.send(req("GET", "/first"))
        r1 = c.read_response()
        assert r1.body == b"ok"
        c.send(req("GET", "/second"))
        r2 = c.read_response()
        assert b"poisoned" not in r2.raw
        assert r2.status == 200 and r2.json()["path"] == "/second"
    assert o.n_connections == 2


def test_503_server_full(portico, origin):
    """upstreams.max_connections: 1 per server; a second concurrent request
    finds no server with room."""
    o = origin(by_path({"/slow": echo(delay=1.5 * SLOW)}))
    p = portico(proxy_config([o.address], upstream_extra="    max_connections: 1\n"))
    results = {}

    def slow():
        results["slow"] = request(p.port, "GET", "/slow", timeout=15)

    t = threading.Thread(target=slow)
    t.start()
    assert o.wait_requests(1)
    r = request(p.port, "GET", "/fast")
    t.join(20)
    assert results["slow"].status == 200
    assert_short_error(r, 503)
