"""HTTP/1.1 proxying: keep-alive, pipelining, chunked both ways, trailers,
100-continue, HEAD/204/304, HTTP/1.0, Connection: close, streaming with
bounded memory, WebSocket tunnels, upstream keep-alive pool."""
import hashlib
import socket
import threading
import time

import pytest

from lib.origin import (MiB, by_path, chunked_response, close_delimited, count_body, echo, fixed,
                        raw_response, stream, websocket_echo)
from lib.portico import ASAN, SLOW, Conn, curl, proxy_config, req, request


@pytest.fixture
def echo_proxy(portico, origin):
    o = origin(echo())
    p = portico(proxy_config([o.address], extra="limits:\n  max_body_bytes: 0\n"))
    return p, o


def test_simple_get(echo_proxy):
    p, o = echo_proxy
    r = request(p.port, "GET", "/hello/world?x=1&y=2")
    assert r.status == 200
    doc = r.json()
    assert doc["method"] == "GET" and doc["path"] == "/hello/world" and doc["query"] == "x=1&y=2"
    assert r.header("x-origin") == o.name


def test_curl_get_and_post(echo_proxy):
    p, o = echo_proxy
    r = curl("-i", "http://127.0.0.1:%d/c?q=1" % p.port)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"HTTP/1.1 200")
    r = curl("--data-binary", "payload-123", "http://127.0.0.1:%d/post" % p.port)
    assert r.returncode == 0, r.stderr
    import json
    doc = json.loads(r.stdout)
    assert doc["method"] == "POST" and doc["body"] == "payload-123"


def test_pipelined_requests_answered_in_order(echo_proxy):
    p, o = echo_proxy
    with Conn(p.port) as c:
        c.send(req("GET", "/1") + req("POST", "/2", body=b"two") + req("GET", "/3"))
        rs = [c.read_response() for _ in range(3)]
        assert [r.status for r in rs] == [200, 200, 200]
        assert [r.json()["path"] for r in rs] == ["/1", "/2", "/3"]
        assert rs[1].json()["body"] == "two"
        assert c.still_open(0.2)


def test_pipelined_many_in_one_write(echo_proxy):
    p, o = echo_proxy
    n = 50
    with Conn(p.port) as c:
        c.send(b"".join(req("GET", "/p%d" % i) for i in range(n)))
        paths = [c.read_response().json()["path"] for _ in range(n)]
    assert paths == ["/p%d" % i for i in range(n)]


def test_chunked_request_body_reaches_origin(echo_proxy):
    p, o = echo_proxy
    chunks = [b"hello ", b"chunked ", b"x" * 5000, b"world"]
    data = req("POST", "/up", [("Transfer-Encoding", "chunked")])
    for ch in chunks:
        data += b"%x\r\n%s\r\n" % (len(ch), ch)
    data += b"0\r\n\r\n"
    with Conn(p.port) as c:
        c.send(data)
        r = c.read_response()
        assert r.status == 200
        assert r.json()["body"].encode() == b"".join(chunks)
        # connection still usable after a chunked body
        c.send(req("GET", "/after"))
        assert c.read_response().json()["path"] == "/after"


def test_chunked_request_body_sent_slowly(echo_proxy):
    p, o = echo_proxy
    with Conn(p.port) as c:
        c.send(req("POST", "/slowup", [("Transfer-Encoding", "chunked")]))
        for i in range(5):
            time.sleep(0.05)
            c.send(b"3\r\nab%d\r\n" % i)
        c.send(b"0\r\n\r\n")
        r = c.read_response()
    assert r.json()["body"] == "ab0ab1ab2ab3ab4"


def test_chunked_response_with_trailers(portico, origin):
    o = origin(chunked_response(["first-", "second-", "x" * 3000], trailers=[("X-Checksum", "abc123")]))
    p = portico(proxy_config([o.address]))
    with Conn(p.port) as c:
        c.send(req("GET", "/chunked"))
        r = c.read_response()
        assert r.status == 200 and r.chunked and r.complete
        assert r.body == b"first-second-" + b"x" * 3000
        assert ("X-Checksum", "abc123") in [(k, v) for k, v in r.trailers], r.raw[-200:]
        c.send(req("GET", "/again"))
        r2 = c.read_response()
        assert r2.status == 200 and r2.body.startswith(b"first-")


def test_chunked_response_curl_raw(portico, origin):
    o = origin(chunked_response(["abc", "defg"], trailers=[("X-Trail", "yes")]))
    p = portico(proxy_config([o.address]))
    r = curl("--raw", "http://127.0.0.1:%d/" % p.port)
    assert r.returncode == 0, r.stderr
    assert b"abc" in r.stdout and b"defg" in r.stdout
    assert b"X-Trail: yes" in r.stdout, r.stdout
    r = curl("http://127.0.0.1:%d/" % p.port)
    assert r.stdout == b"abcdefg"


def test_expect_100_continue(echo_proxy):
    p, o = echo_proxy
    with Conn(p.port) as c:
        c.send(req("POST", "/cont", [("Content-Length", "11"), ("Expect", "100-continue")]))
        c.settimeout(5 * SLOW)
        interim = c._read_one("POST")
        assert interim.status == 100, interim
        assert interim.version == "HTTP/1.1"
        c.send(b"hello world")
        r = c.read_response("POST")
        assert r.status == 200
        assert r.json()["body"] == "hello world"


def test_expect_100_continue_curl(echo_proxy, tmp_path):
    p, o = echo_proxy
    f = tmp_path / "body"
    f.write_bytes(b"y" * 2000000)  # curl sends Expect: 100-continue for large bodies
    r = curl("-v", "--expect100-timeout", "30", "-H", "Expect: 100-continue", "--data-binary", "@%s" % f,
             "http://127.0.0.1:%d/big" % p.port, timeout=30)
    assert r.returncode == 0, r.stderr[-2000:]
    assert b"100 Continue" in r.stderr
    import json
    assert json.loads(r.stdout)["body_len"] == 2000000


def test_head_has_no_body(echo_proxy):
    p, o = echo_proxy
    with Conn(p.port) as c:
        c.send(req("HEAD", "/h") + req("GET", "/g"))
        r1 = c.read_response("HEAD")
        assert r1.status == 200
        assert r1.header("content-length") is not None  # origin sent one
        r2 = c.read_response("GET")
        assert r2.status == 200 and r2.json()["path"] == "/g"


@pytest.mark.parametrize("status", [204, 304])
def test_204_304_have_no_body(portico, origin, status):
    line = {204: b"HTTP/1.1 204 No Content\r\n", 304: b"HTTP/1.1 304 Not Modified\r\n"}[status]
    o = origin(by_path({"/nobody": raw_response(line + b"Content-Length: 5\r\nETag: \"x\"\r\n\r\n")}))
    p = portico(proxy_config([o.address]))
    with Conn(p.port) as c:
        c.send(req("GET", "/nobody") + req("GET", "/next"))
        r1 = c.read_response()
        assert r1.status == status
        # the next bytes on the wire must be the next response
        assert bytes(c.buf[:5]) in (b"", b"HTTP/"), bytes(c.buf[:50])
        r2 = c.read_response()
        assert r2.status == 200 and r2.json()["path"] == "/next"


def test_http10_client_close_delimited(portico, origin):
    o = origin(chunked_response(["part1-", "part2"]))
    p = portico(proxy_config([o.address]))
    with Conn(p.port) as c:
        c.send(b"GET /ten HTTP/1.0\r\nHost: example.test\r\n\r\n")
        data = c.read_to_close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"200", head
    assert b"chunked" not in head.lower(), head  # an HTTP/1.0 client cannot read chunked
    assert body == b"part1-part2"


def test_http10_client_connection_closes(echo_proxy):
    p, o = echo_proxy
    with Conn(p.port) as c:
        c.send(b"GET /ten HTTP/1.0\r\nHost: example.test\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.json()["path"] == "/ten"
        assert c.is_closed(3)


def test_http10_client_without_host(echo_proxy):
    p, o = echo_proxy
    with Conn(p.port) as c:
        c.send(b"GET /nohost HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.json()["path"] == "/nohost"


def test_http10_keep_alive(echo_proxy):
    p, o = echo_proxy
    with Conn(p.port) as c:
        c.send(b"GET /a HTTP/1.0\r\nHost: example.test\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.header("content-length") is not None
        assert c.still_open(0.3)
        c.send(b"GET /b HTTP/1.0\r\nHost: example.test\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert r.json()["path"] == "/b"


def test_client_connection_close(echo_proxy):
    p, o = echo_proxy
    with Conn(p.port) as c:
        c.send(req("GET", "/bye", [("Connection", "close")]))
        r = c.read_response()
        assert r.status == 200
        assert "close" in r.conn_tokens()
        assert c.is_closed(3)


def test_origin_connection_close(portico, origin):
    o = origin(fixed(200, [("Connection", "close")], b"bye", keep=False))
    p = portico(proxy_config([o.address]))
    c = Conn(p.port)
    try:
        for i in range(3):
            c.send(req("GET", "/oc%d" % i))
            r = c.read_response()
            assert r.status == 200 and r.body == b"bye"
            if "close" in r.conn_tokens():
                assert c.is_closed(3)
                c.close()
                c = Conn(p.port)
    finally:
        c.close()
    assert o.n_requests == 3
    assert o.n_connections == 3  # never reused


def test_origin_close_delimited_response(portico, origin):
    o = origin(close_delimited(b"no length here " * 100))
    p = portico(proxy_config([o.address]))
    with Conn(p.port) as c:
        c.send(req("GET", "/cd"))
        r = c.read_response()
        assert r.status == 200
        assert r.body == b"no length here " * 100
    r = curl("http://127.0.0.1:%d/cd" % p.port)
    assert r.returncode == 0 and r.stdout == b"no length here " * 100


def test_keepalive_idle_timeout(portico, origin):
    o = origin(echo())
    p = portico(proxy_config([o.address], extra="timeouts:\n  keepalive: 1s\n"))
    with Conn(p.port) as c:
        c.send(req("GET", "/ka"))
        assert c.read_response().status == 200
        assert c.still_open(0.3)
        t0 = time.monotonic()
        assert c.is_closed(5), "idle keep-alive connection not closed"
        assert time.monotonic() - t0 < 5 * SLOW


def test_keepalive_connection_reused(echo_proxy):
    p, o = echo_proxy
    with Conn(p.port) as c:
        for i in range(5):
            time.sleep(0.05)
            c.send(req("GET", "/k%d" % i))
            assert c.read_response().json()["path"] == "/k%d" % i


def test_upstream_pool_one_client_connection(echo_proxy):
    p, o = echo_proxy
    with Conn(p.port) as c:
        for i in range(20):
            c.send(req("GET", "/pool%d" % i))
            assert c.read_response().status == 200
    assert o.n_requests == 20
    assert o.n_connections <= 2, "origin saw %d connections for 20 requests" % o.n_connections


def test_upstream_pool_across_client_connections(echo_proxy):
    p, o = echo_proxy
    for i in range(10):
        r = request(p.port, "GET", "/x%d" % i)
        assert r.status == 200
    assert o.n_connections <= 2, "origin saw %d connections for 10 sequential requests" % o.n_connections


def test_large_body_integrity(portico, origin):
    o = origin(count_body())
    p = portico(proxy_config([o.address], extra="limits:\n  max_body_bytes: 0\n"))
    data = hashlib.sha256(b"seed").digest() * (8 * MiB // 32)
    with Conn(p.port, timeout=30) as c:
        c.send(req("POST", "/big", body=data))
        r = c.read_response()
    doc = r.json()
    assert doc["bytes"] == len(data) and doc["sha256"] == hashlib.sha256(data).hexdigest()


def test_large_download_integrity(portico, origin):
    size = 20 * MiB + 123
    o = origin(stream(size))
    p = portico(proxy_config([o.address]))
    with Conn(p.port, timeout=30) as c:
        c.send(req("GET", "/dl"))
        r = c.read_response()
    assert r.status == 200 and len(r.body) == size
    block = bytes(range(256)) * (MiB // 256)
    assert r.body[:MiB] == block and r.body[-123:] == block[:123]


# ---- streaming with bounded memory

STREAM_SIZE = (256 if ASAN else 1024) * MiB
WARM_SIZE = 64 * MiB


class RssSampler:
    def __init__(self, p):
        self.p = p
        self.max = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        for _ in range(100000):
            if self.stop.is_set():
                break
            try:
                self.max = max(self.max, self.p.rss_kb())
            except Exception:
                break
            time.sleep(0.01)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        self.t.join(5)


def upload(port, size):
    block = b"u" * MiB
    with Conn(port, timeout=60) as c:
        c.send(req("POST", "/upload", [("Content-Length", str(size))]))
        mv = memoryview(block)
        left = size
        while left > 0:
            n = min(left, len(block))
            c.sock.sendall(mv[:n])
            left -= n
        r = c.read_response("POST")
    assert r.status == 200, r
    assert r.json()["bytes"] == size


def download(port, size):
    with Conn(port, timeout=60) as c:
        c.send(req("GET", "/download/%d" % size))
        head = c.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        got = len(c.buf)
        c.buf.clear()
        scratch = bytearray(MiB)
        while got < size:
            n = c.sock.recv_into(scratch)
            assert n > 0, "download cut at %d" % got
            got += n
        assert got == size


def stream_origin():
    return by_path({"/upload": count_body(),
                    "/download/%d" % WARM_SIZE: stream(WARM_SIZE),
                    "/download/%d" % STREAM_SIZE: stream(STREAM_SIZE)})


@pytest.mark.parametrize("direction", ["upload", "download"])
def test_streaming_bounded_memory(portico, origin, direction):
    h = stream_origin()
    h.streaming = True  # count_body streams; the stream handlers read no body anyway
    o = origin(h)
    p = portico(proxy_config([o.address], extra="limits:\n  max_body_bytes: 0\n"))
    fn = upload if direction == "upload" else download
    # warm-up in both directions, then the baseline
    upload(p.port, WARM_SIZE)
    download(p.port, WARM_SIZE)
    fn(p.port, WARM_SIZE)
    time.sleep(0.2)
    baseline = p.rss_kb()
    with RssSampler(p) as s:
        fn(p.port, STREAM_SIZE)
    growth = s.max - baseline
    print("RSS %s: baseline %d KiB, max %d KiB, growth %d KiB" % (direction, baseline, s.max, growth))
    if ASAN:
        return  # transfer done; RSS is meaningless under ASan
    assert growth < 2048, "RSS grew by %d KiB during a %d MiB %s (baseline %d KiB)" % (
        growth, STREAM_SIZE // MiB, direction, baseline)


# ---- WebSocket

def test_websocket_tunnel(portico, origin):
    o = origin(by_path({"/ws": websocket_echo()}))
    p = portico(proxy_config([o.address]))
    with Conn(p.port) as c:
        c.send(req("GET", "/ws", [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                  ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                  ("Sec-WebSocket-Version", "13")]))
        r = c.read_response()
        assert r.status == 101, r
        assert r.header("upgrade", "").lower() == "websocket"
        assert "upgrade" in r.conn_tokens()
        assert r.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        # the origin got the upgrade headers
        rec = o.last()
        assert rec.header("upgrade", "").lower() == "websocket"
        assert "upgrade" in rec.header("connection", "").lower()
        assert rec.header("sec-websocket-key") == "dGhlIHNhbXBsZSBub25jZQ=="
        # now a raw two-way tunnel: arbitrary bytes, including things that look like HTTP
        for msg in (b"\x81\x05hello", b"GET / HTTP/1.1\r\n\r\n", bytes(range(256)) * 40):
            c.send(msg)
            got = c.read_exact(len(msg))
            assert got == msg
        assert c.still_open(0.2)


def test_websocket_tunnel_close_propagates(portico, origin):
    o = origin(by_path({"/ws": websocket_echo()}))
    p = portico(proxy_config([o.address]))
    c = Conn(p.port)
    c.send(req("GET", "/ws", [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                              ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]))
    assert c.read_response().status == 101
    c.send(b"ping")
    assert c.read_exact(4) == b"ping"
    c.sock.shutdown(socket.SHUT_WR)  # client side done: the origin sees EOF, closes, we see EOF
    assert c.is_closed(5)
    c.close()
    # the proxy is still fine
    assert request(p.port, "GET", "/after").status == 200


def test_websocket_real_client_and_server(portico):
    """python3-websockets on both ends: frames, masking and the closing handshake through portico."""
    websockets = pytest.importorskip("websockets")
    import asyncio

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state = {}

    async def handler(ws, path=None):
        async for msg in ws:
            await ws.send(msg)

    async def serve():
        server = await websockets.serve(handler, "127.0.0.1", 0)
        state["port"] = server.sockets[0].getsockname()[1]
        state["server"] = server
        ready.set()

    t = threading.Thread(target=lambda: (loop.run_until_complete(serve()), loop.run_forever()), daemon=True)
    t.start()
    assert ready.wait(10)
    try:
        p = portico(proxy_config(["127.0.0.1:%d" % state["port"]]))

        async def client():
            async with websockets.connect("ws://127.0.0.1:%d/chat" % p.port, open_timeout=10 * SLOW,
                                          close_timeout=5 * SLOW) as ws:
                out = []
                for m in ["hello", b"\x00\x01binary\xff", "x" * 100000]:
                    await ws.send(m)
                    out.append(await asyncio.wait_for(ws.recv(), 10 * SLOW))
                return out

        got = asyncio.run(client())
        assert got == ["hello", b"\x00\x01binary\xff", "x" * 100000]
    finally:
        async def shutdown():
            state["server"].close()
            await asyncio.wait_for(state["server"].wait_closed(), 5)
        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            t.join(5)


def test_upstream_keepalive_zero_disables_pool(portico, origin):
    o = origin(echo())
    p = portico(proxy_config([o.address], upstream_extra="    keepalive: 0\n"))
    with Conn(p.port) as c:
        for i in range(5):
            c.send(req("GET", "/nk%d" % i))
            assert c.read_response().status == 200
    assert o.n_connections == 5


def test_upstream_pool_keeps_a_burst_then_trims_to_keepalive(portico, origin):
    """keepalive: 2 idle connections per server; a burst may leave up to
    twice as many idle for the next burst, and the surplus is closed once it
    has been idle a while (about 2 s)."""
    from lib.portico import wait_for
    o = origin(echo(delay=0.3))
    p = portico(proxy_config([o.address], upstream_extra="    keepalive: 2\n"))

    def burst(n):
        errs = []

        def one(i):
            try:
                assert request(p.port, "GET", "/b%d" % i).status == 200
            except Exception as e:  # noqa: BLE001 - reported below
                errs.append(e)
        ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
        assert not errs, errs

    burst(6)
    assert o.n_connections == 6
    wait_for(lambda: len(o._conns) == 4, timeout=3)  # 2 over the burst cap closed at once
    burst(4)
    assert o.n_connections == 6, "the second burst reused the kept connections"
    assert wait_for(lambda: len(o._conns) == 2, timeout=6) is not False
    assert len(o._conns) == 2
