"""Timeouts and limits: slowloris, max_connections, client_body, send and
upstream_connect timeouts."""
import socket
import threading
import time

import pytest

from lib.origin import MiB, echo, stream
from lib.portico import SLOW, Closed, Conn, proxy_config, req, request


def test_slowloris_does_not_delay_normal_requests(portico, origin):
    o = origin(echo())
    p = portico(proxy_config([o.address], workers=2, extra="timeouts:\n  client_header: 60s\n"))
    n = 1000
    socks = []
    stop = threading.Event()
    try:
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", p.port), timeout=5 * SLOW)
            s.setblocking(False)
            s.send(b"G")
            socks.append(s)
        trickle = b"ET /slow HTTP/1.1\r\nHost: example.test\r\nX-Slow: "

        def trickler():
            k = 0
            for _ in range(120):
                if stop.wait(1.0):
                    break
                ch = trickle[k:k + 1] if k < len(trickle) else b"a"
                k += 1
                for s in socks:
                    try:
                        s.send(ch)
                    except OSError:
                        pass

        t = threading.Thread(target=trickler, daemon=True)
        t.start()
        time.sleep(1.5)
        for i in range(5):
            t0 = time.monotonic()
            r = request(p.port, "GET", "/normal%d" % i, timeout=10)
            dt = time.monotonic() - t0
            assert r.status == 200
            assert dt < 2.0 * SLOW, "a normal request took %.2fs with %d slowloris connections" % (dt, n)
            time.sleep(0.3)
        assert o.n_requests == 5  # none of the slow heads was forwarded
    finally:
        stop.set()
        for s in socks:
            s.close()


def test_max_connections(portico, origin):
    o = origin(echo())
    p = portico(proxy_config([o.address], extra="limits:\n  max_connections: 5\n"))
    time.sleep(0.3)  # the start-up probe connection is gone
    conns = []
    try:
        for i in range(5):
            c = Conn(p.port)
            c.send(req("GET", "/c%d" % i))
            assert c.read_response().status == 200
            conns.append(c)
        # the 6th is closed or refused, not served
        served = False
        try:
            extra = Conn(p.port, timeout=1.5)
            try:
                extra.send(req("GET", "/extra"))
                r = extra.read_response()
                served = r.status == 200
            except (Closed, OSError):
                pass
            finally:
                extra.close()
        except OSError:
            pass
        assert not served, "a 6th concurrent connection was served with max_connections: 5"
        # the 5 are still fine
        for c in conns:
            c.send(req("GET", "/again"))
            assert c.read_response().status == 200
        # closing one makes room
        conns.pop().close()
        ok = False
        for _ in range(20):
            time.sleep(0.1 * SLOW)
            try:
                r = request(p.port, "GET", "/room", timeout=2)
                if r.status == 200:
                    ok = True
                    break
            except (Closed, OSError):
                pass
        assert ok, "no room after a connection closed"
    finally:
        for c in conns:
            c.close()


def test_client_body_timeout_408(portico, origin):
    o = origin(echo())
    p = portico(proxy_config([o.address], extra="timeouts:\n  client_body: 1s\n"))
    with Conn(p.port, timeout=10) as c:
        c.send(req("POST", "/b", [("Content-Length", "10")]) + b"abc")
        t0 = time.monotonic()
        r = c.read_response()
        dt = time.monotonic() - t0
        assert r.status == 408, r
        assert "close" in r.conn_tokens()
        assert c.is_closed(3)
    assert 0.8 <= dt < 8 * SLOW, dt
    assert o.n_complete == 0


def test_send_timeout_client_not_reading(portico, origin):
    size = 256 * MiB
    o = origin(stream(size))
    p = portico(proxy_config([o.address], extra="timeouts:\n  send: 1s\n"))
    c = Conn(p.port, timeout=10, rcvbuf=16384)
    try:
        c.send(req("GET", "/big"))
        time.sleep(4 * SLOW)  # never read: the proxy cannot send
        got = 0
        eof = False
        c.settimeout(10 * SLOW)
        scratch = bytearray(MiB)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30 * SLOW:
            try:
                n = c.sock.recv_into(scratch)
            except ConnectionResetError:
                eof = True
                break
            if n == 0:
                eof = True
                break
            got += n
        assert eof, "connection not closed"
        assert got < size, "the whole body arrived: no send timeout"
    finally:
        c.close()
    assert p.alive()


def _full_backlog_listener():
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    addr = ls.getsockname()
    fillers = []
    for _ in range(8):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(addr)
        except (BlockingIOError, OSError):
            pass
        fillers.append(s)
    time.sleep(0.2)
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.settimeout(0.7)
    hangs = False
    try:
        probe.connect(addr)
    except socket.timeout:
        hangs = True
    except OSError:
        pass
    finally:
        probe.close()
    return ls, fillers, addr, hangs


def test_upstream_connect_timeout(portico):
    ls, fillers, addr, hangs = _full_backlog_listener()
    try:
        if not hangs:
            pytest.skip("a connect to a full backlog does not hang on this host")
        p = portico(proxy_config(["127.0.0.1:%d" % addr[1]], extra="timeouts:\n  upstream_connect: 1s\n"))
        t0 = time.monotonic()
        r = request(p.port, "GET", "/", timeout=20)
        dt = time.monotonic() - t0
        assert r.status in (502, 504), r
        assert 0 < len(r.body) <= 512
        assert 0.8 <= dt < 8 * SLOW, dt
    finally:
        for s in fillers:
            s.close()
        ls.close()
