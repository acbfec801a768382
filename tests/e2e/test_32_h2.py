"""HTTP/2 for clients: curl, nghttp, h2load and python3-h2 against portico.

h2 over TLS (ALPN) and h2c (prior knowledge); what reaches the HTTP/1.1
origin (Host from :authority, X-Forwarded-Proto, X-Request-Id); response
heads (lowercase names, no connection-specific fields, HEAD/204/304 end on
HEADERS, chunked de-chunked); many streams on one connection; large bodies
both ways with sha256 integrity; flow control (small windows, slow readers,
bounded RSS, zero-window stall); uploads answered early; protection (rapid
reset, CONTINUATION flood, SETTINGS/PING floods, too many streams, header
blocks over limits.max_header_bytes), each leaving other clients served;
graceful stop with GOAWAY; the access log's protocol.

Raw frames and the python3-h2 client are in lib/h2client.py. Traffic goes to
127.0.0.1 only; every client run and loop is bounded.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from lib import h2client as H
from lib.certs import Pki
from lib.h2client import H2Client, RawH2, request_fields
from lib.origin import MiB, by_path, chunked_response, count_body, echo, fixed, raw_response, stream
from lib.portico import ASAN, SLOW, curl, request, wait_for

pytestmark = pytest.mark.skipif(shutil.which("nghttp") is None or shutil.which("h2load") is None,
                                reason="nghttp2-client (nghttp, h2load) not installed")

NAME = "h2.example.test"


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not found")
    ca = Pki(tmp_path_factory.mktemp("h2tls"))
    ca.leaf("h2", [NAME])
    return ca


def h2_config(origin_address, tls=None, extra="", route_extra="", upstream_extra="", workers=1):
    """One listener `${listen}`: h2c when tls is None, else TLS with ALPN h2
    first using the Pki leaf `tls`."""
    if tls is None:
        lst = "    h2c: true\n"
    else:
        leaf = tls.leaves["h2"]
        lst = ('    tls:\n      certificates:\n        - {cert: "%s", key: "%s"}\n'
               '      alpn: [h2, http/1.1]\n') % (leaf.cert, leaf.key)
    return ("workers: %d\n%s"
            "listeners:\n  - name: web\n    listen: ${listen}\n%s"
            "upstreams:\n  app:\n%s    servers:\n      - {address: %s}\n"
            "routes:\n  - upstream: app\n%s") % (workers, extra, lst, upstream_extra, origin_address, route_extra)


def url(p, tls, path="/", host="127.0.0.1"):
    return "%s://%s:%d%s" % ("https" if tls else "http", host, p.port, path)


def curl_h2(p, tls, pki, path="/", *args, timeout=20):
    """curl over h2 (ALPN on TLS, prior knowledge on h2c). Returns (CompletedProcess,
    http_version, [(name, value)] of the final response head, body)."""
    mode = ["--http2", "--cacert", pki.cert] if tls else ["--http2-prior-knowledge"]
    r = curl(*mode, "--resolve", "%s:%d:127.0.0.1" % (NAME, p.port), "-D", "-", "-w", "\n@@%{http_version}",
             *args, url(p, tls, path, NAME), timeout=timeout)
    out = r.stdout
    i = out.rfind(b"\n@@")
    version = out[i + 3:].decode() if i >= 0 else None
    out = out[:i] if i >= 0 else out
    head, _, body = out.partition(b"\r\n\r\n")
    headers = []
    for ln in head.decode("latin-1").split("\r\n")[1:]:
        k, _, v = ln.partition(":")
        headers.append((k, v.strip()))
    return r, version, headers, body


def hget(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def doc_headers(doc, name):
    return [v for k, v in doc["headers"] if k.lower() == name.lower()]


def expected_sha(size, chunk=MiB):
    block = bytes(range(256)) * (chunk // 256)
    h = hashlib.sha256()
    left = size
    while left > 0:
        n = min(left, len(block))
        h.update(block[:n])
        left -= n
    return h.hexdigest()


def assert_serves(p, tls=False, path="/after"):
    """portico is alive and a normal h2 request on a new connection works."""
    assert p.alive(), p.stderr()
    with H2Client(p.port, tls=tls) as c:
        st = c.get(path, timeout=10)
        assert st.status == 200 and st.ended, (st, c.error, c.goaway)


MODES = ["h2c", "tls"]


@pytest.fixture
def mk(pki, portico, origin):
    """mk(mode, handler, **h2_config kw) -> (portico, origin, tls)"""
    def make(mode, handler=None, **kw):
        o = origin(handler or echo())
        tls = pki if mode == "tls" else None
        p = portico(h2_config(o.address, tls, **kw))
        return p, o, mode == "tls"
    return make


# ---------------------------------------------------------------- curl


@pytest.mark.parametrize("mode", MODES)
def test_curl_proxied(mk, pki, mode):
    p, o, tls = mk(mode)
    r, ver, headers, body = curl_h2(p, tls, pki, "/hello?x=1", "-H", "X-Custom: yes")
    assert r.returncode == 0, r.stderr
    assert ver == "2", (ver, r.stdout[:300])
    assert headers and False not in [k == k.lower() for k, _ in headers], headers
    doc = json.loads(body)
    assert doc["version"] == "HTTP/1.1"
    assert doc["method"] == "GET" and doc["path"] == "/hello" and doc["query"] == "x=1"
    assert doc_headers(doc, "host") == ["%s:%d" % (NAME, p.port)]
    assert doc_headers(doc, "x-forwarded-proto") == ["https" if tls else "http"]
    assert doc_headers(doc, "x-custom") == ["yes"]
    rid = doc_headers(doc, "x-request-id")
    assert len(rid) == 1 and rid[0], doc["headers"]
    assert hget(headers, "x-request-id") == rid
    # no pseudo-header reaches the origin
    assert not [k for k, _ in doc["headers"] if k.startswith(":")], doc["headers"]


def test_curl_keepalive_one_connection(mk, pki):
    p, o, tls = mk("tls")
    u = url(p, True, "/k", NAME)
    r = curl("--http2", "--cacert", pki.cert, "--resolve", "%s:%d:127.0.0.1" % (NAME, p.port), "-v",
             u + "1", u + "2", u + "3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(b'"path"') == 3
    err = r.stderr.decode("utf-8", "replace")
    assert err.count("Re-using existing connection") >= 2 or err.count("Connected to") == 1, err


def test_request_id_from_client_kept(mk, pki):
    p, o, tls = mk("h2c")
    with H2Client(p.port) as c:
        st = c.get("/rid", headers=[("x-request-id", "client-rid-42")])
    assert st.status == 200
    doc = json.loads(st.body)
    assert doc_headers(doc, "x-request-id") == ["client-rid-42"]
    assert st.header("x-request-id") == "client-rid-42"


def test_post_small_body(mk, pki):
    p, o, tls = mk("h2c")
    r, ver, headers, body = curl_h2(p, False, pki, "/post", "--data-binary", "hello=world")
    assert r.returncode == 0 and ver == "2", r.stderr
    doc = json.loads(body)
    assert doc["method"] == "POST" and doc["body"] == "hello=world"
    assert doc_headers(doc, "content-length") == ["11"] and not doc["chunked"]


# ---------------------------------------------------------------- nghttp


def nghttp(*args, timeout=30):
    r = subprocess.run(["nghttp", "-v", "-t", str(timeout * SLOW)] + [str(a) for a in args],
                       capture_output=True, timeout=timeout * SLOW + 10)
    return r, r.stdout.decode("latin-1")


def nghttp_statuses(out):
    return re.findall(r"recv \(stream_id=(\d+)\) :status: (\d+)", out)


def nghttp_fields(out, sid=None):
    """[(name, value)] of every received header field (of one stream)."""
    pat = r"recv \(stream_id=(\d+)\) ([^:\s][^:]*|:[a-z]+): (.*)"
    return [(m.group(2), m.group(3)) for m in re.finditer(pat, out) if sid is None or int(m.group(1)) == sid]


@pytest.mark.parametrize("mode", MODES)
def test_nghttp_many_streams(mk, mode):
    p, o, tls = mk(mode, echo(delay=0.05))
    r, out = nghttp("-n", "-m", 50, "--no-dep", url(p, tls, "/many"))
    assert r.returncode == 0, out[-3000:] + r.stderr.decode()
    st = nghttp_statuses(out)
    assert len(st) == 50 and {s for _, s in st} == {"200"}, st
    assert len({sid for sid, _ in st}) == 50
    assert out.count("] Connected") == 1, out[:500]
    # they were in flight together on one connection: the origin saw them overlap
    assert o.n_requests == 50
    assert o.max_active > 1, o.max_active


def test_nghttp_lowercase_and_connection_headers_stripped(mk):
    resp = (b"HTTP/1.1 200 OK\r\n"
            b"Content-Type: text/plain\r\n"
            b"X-Mixed-Case: Value-Kept\r\n"
            b"Connection: keep-alive, X-Hop-Named\r\n"
            b"Keep-Alive: timeout=5\r\n"
            b"Upgrade: foo/1\r\n"
            b"Proxy-Connection: keep-alive\r\n"
            b"X-Hop-Named: secret\r\n"
            b"Transfer-Encoding: chunked\r\n"
            b"\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    p, o, tls = mk("h2c", raw_response(resp))
    r, out = nghttp(url(p, False, "/hop"))
    assert r.returncode == 0, out[-3000:]
    fields = nghttp_fields(out)
    names = [k for k, _ in fields]
    assert ("x-mixed-case", "Value-Kept") in fields, fields
    assert ("content-type", "text/plain") in fields
    assert all(n == n.lower() for n in names), names
    for bad in ("connection", "keep-alive", "upgrade", "proxy-connection", "transfer-encoding", "x-hop-named"):
        assert bad not in names, (bad, fields)
    assert "hello world" in out
    assert not re.search(r"recv (RST_STREAM|GOAWAY)", out), out[-2000:]


@pytest.mark.parametrize("mode", MODES)
def test_chunked_origin_dechunked(mk, mode):
    chunks = [b"a" * 1000, b"b" * 70000, b"c" * 5, b"d" * 300000]
    p, o, tls = mk(mode, chunked_response(chunks, headers=[("Content-Type", "application/octet-stream")]))
    with H2Client(p.port, tls=tls) as c:
        st = c.get("/chunked")
    assert st.status == 200 and st.ended, st
    assert bytes(st.body) == b"".join(chunks)
    assert st.header("transfer-encoding") is None
    r, out = nghttp(url(p, tls, "/chunked2"))
    assert r.returncode == 0
    assert re.search(r"recv DATA frame <[^>]*>\s*; END_STREAM", out), out[-2000:]


@pytest.mark.parametrize("case", ["head", "204", "304"])
def test_no_body_ends_on_headers(mk, case):
    handler = by_path({"/204": fixed(204, [("X-A", "1")]),
                       "/304": fixed(304, [("ETag", '"x"')]),
                       "/head": fixed(200, [("Content-Type", "text/plain")], b"body bytes")})
    p, o, tls = mk("h2c", handler)
    method, path = ("HEAD", "/head") if case == "head" else ("GET", "/" + case)
    with H2Client(p.port) as c:
        st = c.response(c.request(method, path))
        st2 = c.get("/head")  # the connection goes on
    assert st.status == (200 if case == "head" else int(case)), st
    assert st.end_on_headers, st
    assert st.data_frames == 0 and st.received == 0, st
    if case == "204":
        assert st.header("content-length") is None
    assert st2.status == 200 and bytes(st2.body) == b"body bytes"
    # nghttp sees END_STREAM on the HEADERS frame and no DATA frame
    args = ["-H", ":method: HEAD"] if case == "head" else []
    r, out = nghttp(*args, url(p, False, path))
    assert r.returncode == 0, out[-2000:]
    assert re.search(r"recv HEADERS frame <[^>]*flags=0x05[^>]*>", out), out[-2000:]
    assert "recv DATA frame" not in out, out[-2000:]


# ---------------------------------------------------------------- h2load


@pytest.mark.parametrize("mode", MODES)
def test_h2load(mk, mode):
    p, o, tls = mk(mode, fixed(200, [("Content-Type", "text/plain")], b"x" * 100))
    r = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "20", url(p, tls, "/load")],
                       capture_output=True, timeout=120 * SLOW)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                  out)
    assert m, out
    assert int(m.group(4)) == 2000 and int(m.group(5)) == 0 and int(m.group(6)) == 0, out
    m = re.search(r"status codes: (\d+) 2xx", out)
    assert m and int(m.group(1)) == 2000, out
    if tls:
        assert "Application protocol: h2" in out, out
    assert_serves(p, tls)


# ---------------------------------------------------------------- large bodies


def test_download_32m_integrity(mk, pki, tmp_path):
    size = 32 * MiB + 7
    p, o, tls = mk("tls", stream(size))
    dest = tmp_path / "dl.bin"
    r, ver, headers, _ = curl_h2(p, True, pki, "/dl", "-o", str(dest), timeout=60)
    assert r.returncode == 0, r.stderr
    assert ver == "2"
    assert os.path.getsize(dest) == size
    with open(dest, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == expected_sha(size)
    # and over h2c with python3-h2
    with H2Client(p.port, tls=True, keep_body=False) as c:
        st = c.response(c.request("GET", "/dl2"), timeout=60)
    assert st.status == 200 and st.ended and st.received == size
    assert st.sha.hexdigest() == expected_sha(size)


@pytest.mark.parametrize("mode", MODES)
def test_upload_16m_content_length(mk, pki, tmp_path, mode):
    size = 16 * MiB + 3
    data = os.urandom(size)
    src = tmp_path / "up.bin"
    src.write_bytes(data)
    p, o, tls = mk(mode, count_body(), extra="limits:\n  max_body_bytes: 0\n")
    r, ver, headers, body = curl_h2(p, tls, pki, "/up", "--data-binary", "@" + str(src),
                                    "-H", "Content-Type: application/octet-stream", timeout=60)
    assert r.returncode == 0, r.stderr
    assert ver == "2"
    doc = json.loads(body)
    assert doc == {"bytes": size, "sha256": hashlib.sha256(data).hexdigest(), "chunked": False}
    rq = o.last()
    assert rq.header("content-length") == str(size)


def test_upload_without_length_from_pipe(mk, pki):
    """curl -T - reads a pipe: no content-length on the h2 request; the
    origin gets the body chunked and complete."""
    size = 16 * MiB + 11
    data = os.urandom(size)
    p, o, tls = mk("tls", count_body(), extra="limits:\n  max_body_bytes: 0\n")
    cmd = ["curl", "-sS", "--noproxy", "*", "--max-time", str(60 * SLOW), "--http2", "--cacert", pki.cert,
           "--resolve", "%s:%d:127.0.0.1" % (NAME, p.port), "-T", "-", "-w", "\n@@%{http_version}",
           url(p, True, "/pipe", NAME)]
    r = subprocess.run(cmd, input=data, capture_output=True, timeout=90 * SLOW)
    assert r.returncode == 0, r.stderr
    body, _, ver = r.stdout.rpartition(b"\n@@")
    assert ver == b"2"
    doc = json.loads(body)
    assert doc == {"bytes": size, "sha256": hashlib.sha256(data).hexdigest(), "chunked": True}, doc
    rq = o.last()
    assert rq.method == "PUT" and rq.header("content-length") is None


def test_upload_without_length_python_h2(mk):
    size = 4 * MiB + 5
    data = os.urandom(size)
    p, o, tls = mk("h2c", count_body(), extra="limits:\n  max_body_bytes: 0\n")
    with H2Client(p.port, timeout=30) as c:
        sid = c.request("POST", "/nolen", body=[data[i:i + 100000] for i in range(0, size, 100000)])
        st = c.response(sid, timeout=60)
    assert st.status == 200, (st, c.error, c.goaway)
    doc = json.loads(st.body)
    assert doc == {"bytes": size, "sha256": hashlib.sha256(data).hexdigest(), "chunked": True}, doc


# ---------------------------------------------------------------- flow control


def test_small_window_slow_reader_gets_every_byte(mk):
    size = 3 * MiB + 1
    p, o, tls = mk("h2c", stream(size))
    win = 16384
    with H2Client(p.port, auto_ack=False, keep_body=False, timeout=30,
                  settings={H.S_INITIAL_WINDOW_SIZE: win}) as c:
        sid = c.request("GET", "/slow")
        st = c.streams[sid]
        acked = 0
        deadline = time.monotonic() + 120 * SLOW
        for i in range(100000):
            if st.done or c.closed or time.monotonic() > deadline:
                break
            c.pump(0.2)
            # never more in flight than the window we gave
            assert st.received - acked <= win, (st.received, acked)
            if st.received > acked:
                if i % 8 == 0:
                    time.sleep(0.01)  # a slow reader
                c.ack(sid, st.received - acked)
                acked = st.received
    assert st.status == 200 and st.ended, (st, c.error, c.goaway)
    assert st.received == size and st.sha.hexdigest() == expected_sha(size)
    assert_serves(p)


def test_slow_reader_bounded_rss(mk):
    """A client with a huge window that reads its socket slowly: portico must
    not buffer the origin's body (the origin can push GB/s)."""
    size = 128 * MiB
    p, o, tls = mk("h2c", by_path({"/big": stream(size), "/warm": stream(4 * MiB)}))
    with H2Client(p.port, keep_body=False, timeout=30, conn_window=H.MAX_WINDOW - 65535,
                  settings={H.S_INITIAL_WINDOW_SIZE: H.MAX_WINDOW}, rcvbuf=65536) as c:
        st = c.get("/warm", timeout=30)
        assert st.received == 4 * MiB
        time.sleep(0.2)
        baseline = p.rss_kb()
        peak = baseline
        sid = c.request("GET", "/big")
        st = c.streams[sid]
        deadline = time.monotonic() + 180 * SLOW
        while not st.done and not c.closed and time.monotonic() < deadline:
            target = st.received + 8 * MiB
            while st.received < target and not st.done and not c.closed and time.monotonic() < deadline:
                c.pump(0.2)
            time.sleep(0.25)  # stop reading: an unbounded proxy would fill up now
            peak = max(peak, p.rss_kb())
    assert st.status == 200 and st.ended, (st, c.error)
    assert st.received == size and st.sha.hexdigest() == expected_sha(size)
    growth = peak - baseline
    print("RSS slow h2 reader: baseline %d KiB, peak %d KiB, growth %d KiB" % (baseline, peak, growth))
    if not ASAN:
        assert growth < 32 * 1024, "RSS grew by %d KiB during a %d MiB download to a slow reader" % (
            growth, size // MiB)


@pytest.mark.parametrize("window", [0, 65535])
def test_zero_window_stall_closed_after_send_timeout(mk, window):
    """The client never sends WINDOW_UPDATE (window 0, or after the first
    64 KiB): the connection is closed after timeouts.send (1s)."""
    p, o, tls = mk("h2c", stream(16 * MiB), extra="timeouts:\n  send: 1s\n")
    with H2Client(p.port, auto_ack=False, keep_body=False, timeout=30,
                  settings={H.S_INITIAL_WINDOW_SIZE: window}) as c:
        sid = c.request("GET", "/stall")
        t0 = time.monotonic()
        assert c.wait(lambda: c.streams[sid].status is not None, 10), c.error
        closed = c.wait_closed(15)
        elapsed = time.monotonic() - t0
        st = c.streams[sid]
    assert closed, "connection still open %.1fs after a zero-window stall" % elapsed
    assert elapsed >= 0.8, "closed after %.2fs, before timeouts.send" % elapsed
    assert st.received <= 65535, st
    assert not st.ended
    assert_serves(p)


# ---------------------------------------------------------------- early response


def test_upload_answered_early(mk):
    """The origin answers without reading the upload: the client (which
    sends only what its window allows) still gets the response."""
    def early(c, r):
        c.respond(403, [("Content-Type", "text/plain"), ("Connection", "close")], b"no thanks")
        time.sleep(0.2)
        return False
    early.streaming = True
    h = by_path({"/early": early}, default=echo())
    h.streaming = True  # no body is read before the handler (GET /next has none)
    p, o, tls = mk("h2c", h)
    size = 8 * MiB
    with H2Client(p.port, timeout=20) as c:
        sid = c.request("POST", "/early", headers=[("content-length", str(size))], end_stream=False)
        # the first window's worth, then wait for the answer without sending more
        c.send_body(sid, b"e" * 65535, end_stream=False)
        st = c.response(sid, timeout=10)
        assert st.status == 403 and st.ended, (st, c.error, c.goaway)
        assert bytes(st.body) == b"no thanks"
        # the connection goes on
        st2 = c.get("/next")
        assert st2.status == 200, st2
    assert_serves(p)


def test_upload_answered_early_nghttp(mk, tmp_path):
    def early(c, r):
        c.respond(200, [("Content-Type", "text/plain")], b"early")
        time.sleep(0.3)
        return False
    early.streaming = True
    p, o, tls = mk("h2c", early)
    src = tmp_path / "up.bin"
    src.write_bytes(b"z" * (4 * MiB))
    r, out = nghttp("-d", str(src), url(p, False, "/early"), timeout=20)
    assert r.returncode == 0, out[-2000:] + r.stderr.decode()
    assert ":status: 200" in out and "early" in out


# ---------------------------------------------------------------- protection


def test_rapid_reset(mk):
    p, o, tls = mk("h2c", echo(delay=0.2))
    c = RawH2(p.port, timeout=10)
    out = []
    sid = 1
    for _ in range(5000):
        out.append(c.headers(sid, request_fields(path="/rr")) + H.rst_stream(sid, H.CANCEL))
        sid += 2
    sent = c.try_send(b"".join(out), wait=5)
    closed = c.wait_closed(10)
    c.close()
    assert closed or c.goaway, "connection survived %d rapid resets (sent %d bytes)" % (5000, sent)
    if c.goaway:
        # nghttp2 ends a rapid-reset session with INTERNAL_ERROR
        assert c.goaway[1] in (H.ENHANCE_YOUR_CALM, H.INTERNAL_ERROR, H.PROTOCOL_ERROR), c.goaway
    assert c.goaways, "closed without GOAWAY"
    # far fewer than 5000 requests reached the origin
    assert o.n_requests < 2000, o.n_requests
    assert_serves(p)


def test_rapid_reset_python_h2(mk):
    """The same with python3-h2 opening and resetting streams."""
    p, o, tls = mk("h2c")
    with H2Client(p.port, timeout=10) as c:
        n = 0
        for _ in range(5000):
            if c.closed or c.goaway:
                break
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, request_fields(path="/rr2"), end_stream=True)
            c.conn.reset_stream(sid, H.CANCEL)
            n += 1
            if n % 100 == 0:
                c.flush()
                c.pump(0.001)
        c.flush()
        c.wait(lambda: c.goaway is not None, 5)
        assert c.goaway is not None or c.closed, "no GOAWAY after %d rapid resets" % n
    assert_serves(p)


@pytest.mark.parametrize("empty", [False, True])
def test_continuation_flood(mk, empty):
    p, o, tls = mk("h2c")
    c = RawH2(p.port, timeout=10)
    import hpack
    first = hpack.Encoder().encode(request_fields(path="/cf"))
    frames = [H.frame(H.HEADERS, H.END_STREAM, 1, first)]
    # literal field, new name, not indexed: x-a<i>: 1
    for i in range(5000):
        if empty:
            frames.append(H.frame(H.CONTINUATION, 0, 1, b""))
        else:
            name = b"x-a%d" % i
            frames.append(H.frame(H.CONTINUATION, 0, 1, b"\x00" + bytes([len(name)]) + name + b"\x011"))
    c.try_send(b"".join(frames), wait=5)
    closed = c.wait_closed(10)
    c.close()
    assert closed, "connection open after a CONTINUATION flood"
    assert o.n_requests == 0
    assert_serves(p)


def test_settings_flood(mk):
    p, o, tls = mk("h2c")
    c = RawH2(p.port, timeout=10, rcvbuf=4096, auto=False)
    rss0 = p.rss_kb()
    # many SETTINGS frames whose ACKs the client never reads
    sent = c.try_send(H.settings([(H.S_ENABLE_PUSH, 0)]) * 100000, wait=5)
    time.sleep(0.5)
    rss1 = p.rss_kb()
    closed = c.wait_closed(10)
    c.close()
    bounded = rss1 - rss0 < 32 * 1024
    assert closed or bounded, (closed, rss0, rss1, sent)
    assert closed, "SETTINGS flood (%d bytes accepted) did not close the connection" % sent
    assert_serves(p)


def test_settings_too_many_entries(mk):
    p, o, tls = mk("h2c")
    c = RawH2(p.port, timeout=10)
    c.send(H.settings([(H.S_ENABLE_PUSH, 0)] * 100))
    assert c.wait_closed(10)
    c.close()
    assert c.goaways, "closed without GOAWAY"
    assert_serves(p)


def test_ping_flood(mk):
    p, o, tls = mk("h2c")
    c = RawH2(p.port, timeout=10, rcvbuf=4096, auto=False)
    rss0 = p.rss_kb()
    sent = c.try_send(H.ping(b"floodpin") * 200000, wait=5)
    time.sleep(0.5)
    rss1 = p.rss_kb()
    closed = c.wait_closed(10)
    c.close()
    bounded = rss1 - rss0 < 32 * 1024
    assert closed or bounded, (closed, rss0, rss1, sent)
    assert closed, "PING flood (%d bytes accepted) did not close the connection" % sent
    assert_serves(p)


def test_too_many_concurrent_streams_refused(mk):
    """200 streams at once, before the client acknowledged SETTINGS: 128 are
    served, the rest refused; the origin never sees more than 128 at a time."""
    p, o, tls = mk("h2c", echo(delay=1.0))
    c = RawH2(p.port, timeout=20)
    ids = list(range(1, 401, 2))
    c.send(b"".join(c.headers(sid, request_fields(path="/s%d" % sid)) for sid in ids))
    c.wait(lambda: all(c._st(s).done for s in ids) or c.goaway is not None, 30)
    served = [s for s in ids if c._st(s).status == 200 and c._st(s).ended]
    refused = [s for s in ids if c._st(s).reset is not None]
    other = [c._st(s) for s in ids if s not in served and s not in refused]
    c.close()
    assert len(served) <= 128, len(served)
    assert o.max_active <= 128, o.max_active
    assert len(served) + len(refused) + len(other) == 200
    if c.goaway is None:
        assert len(served) == 128, (len(served), len(refused), other[:3])
        assert all(c._st(s).reset == H.REFUSED_STREAM for s in refused), [c._st(s) for s in refused][:3]
        assert len(refused) == 72
    assert_serves(p)


def test_concurrent_streams_limit_advertised(mk):
    p, o, tls = mk("h2c")
    with H2Client(p.port) as c:
        c.wait(lambda: H.S_MAX_CONCURRENT_STREAMS in c.remote_settings, 5)
        assert c.remote_settings[H.S_MAX_CONCURRENT_STREAMS] == 128
        assert c.remote_settings.get(H.S_MAX_HEADER_LIST_SIZE) == 16384
        assert c.remote_settings.get(H.S_ENABLE_PUSH) == 0


@pytest.mark.parametrize("kind", ["one_big_field", "many_fields"])
def test_header_block_over_limit_resets_stream(mk, kind):
    p, o, tls = mk("h2c", extra="limits:\n  max_header_bytes: 4k\n")
    with H2Client(p.port, timeout=10) as c:
        if kind == "one_big_field":
            extra = [("x-big", "v" * 6000)]
        else:
            extra = [("x-f%d" % i, "v") for i in range(300)]
        sid = c.request("GET", "/big", headers=extra)
        st = c.response(sid, timeout=10)
        assert not c.closed and c.goaway is None, (c.error, c.goaway)
        assert st.reset is not None or (st.status is not None and st.status in (400, 431)), st
        assert o.n_requests == 0
        st2 = c.get("/small", timeout=10)
        assert st2.status == 200 and st2.ended, (st2, c.error, c.goaway)
    assert o.n_requests == 1
    assert_serves(p)


# ---------------------------------------------------------------- graceful stop


@pytest.mark.parametrize("mode", MODES)
def test_sigterm_goaway_inflight_completes(mk, mode):
    body = b"s" * 200000
    p, o, tls = mk(mode, by_path({"/slow": fixed(200, [("Content-Type", "text/plain")], body, delay=1.5)},
                                 default=echo()),
                   extra="shutdown_grace: 10s\n")
    c = RawH2(p.port, tls=tls, timeout=20)
    c.send(c.headers(1, request_fields(path="/slow", scheme="https" if tls else "http")))
    assert o.wait_requests(1, 5)
    p.kill(signal.SIGTERM)
    assert c.wait(lambda: c.goaway is not None, 5), "no GOAWAY after SIGTERM"
    # a new stream after GOAWAY is not served
    c.send(c.headers(3, request_fields(path="/late")))
    c.wait(lambda: c._st(1).done, 15)
    st = c._st(1)
    assert st.status == 200 and st.ended and bytes(st.body) == body, st
    assert c._st(3).status is None, c._st(3)
    assert c.goaways[-1][0] < 3, c.goaways
    assert o.n_requests == 1  # /late never reached the origin
    closed = c.wait_closed(10)
    c.close()
    assert closed
    assert p.wait(10 * SLOW) == 0


# ---------------------------------------------------------------- access log


def test_access_log_protocol(mk, pki, tmp_path):
    access = str(tmp_path / "access.log")
    p, o, tls = mk("tls", extra="log:\n  access: %s\n" % access)
    r, ver, headers, body = curl_h2(p, True, pki, "/logged")
    assert r.returncode == 0 and ver == "2"
    with H2Client(p.port, tls=True) as c:
        c.get("/logged2")
    assert p.stop() == 0

    def lines():
        try:
            with open(access) as f:
                return [json.loads(ln) for ln in f.read().splitlines() if ln.strip()]
        except OSError:
            return []
    entries = wait_for(lambda: len(lines()) >= 2 and lines(), 5)
    by = {e["path"]: e for e in entries}
    for path in ("/logged", "/logged2"):
        e = by[path]
        assert e["protocol"] == "HTTP/2.0", e
        assert e["status"] == 200 and e["method"] == "GET"
        assert e["host"] in (NAME, "%s:%d" % (NAME, p.port)), e  # :authority as sent
    assert by["/logged"]["request_id"] == hget(headers, "x-request-id")[0]


# ---------------------------------------------------------------- more of the exchange


def test_multiplexed_downloads_integrity(mk):
    """Several large bodies interleaved on one connection: each arrives whole
    and unmixed."""
    sizes = [3 * MiB + i * 4099 for i in range(8)]
    handler = by_path({"/d%d" % i: stream(n) for i, n in enumerate(sizes)})
    p, o, tls = mk("h2c", handler)
    with H2Client(p.port, keep_body=False, timeout=30) as c:
        sids = [c.request("GET", "/d%d" % i) for i in range(len(sizes))]
        c.wait(lambda: all(c.streams[s].done for s in sids), 60)
        for i, sid in enumerate(sids):
            st = c.streams[sid]
            assert st.status == 200 and st.ended, st
            assert st.received == sizes[i] and st.sha.hexdigest() == expected_sha(sizes[i]), (i, st.received)
    assert o.max_active > 1


def test_upstream_down_502(pki, portico, dead_port):
    d = dead_port()
    p = portico(h2_config(d.address, None))
    with H2Client(p.port) as c:
        st = c.get("/down", timeout=10)
        assert st.status == 502 and st.ended, st
        assert st.header("x-request-id")
        st2 = c.get("/down2", timeout=10)
        # passive failure may have marked the only server down: 503 then
        assert st2.status in (502, 503) and st2.ended and not c.closed, st2


def test_cut_response_resets_stream(mk):
    """A body cut short by the origin must not end with END_STREAM: the
    stream is reset; the connection and its other streams go on."""
    def cut_handler(c, r):
        c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        time.sleep(0.05)
        return False
    h = by_path({"/cut": cut_handler}, default=echo())
    p, o, tls = mk("h2c", h)
    with H2Client(p.port, timeout=10) as c:
        st = c.get("/cut", timeout=10)
        assert not st.ended, "a cut body ended cleanly: %r" % st
        assert st.reset is not None, st
        assert st.received < 100000
        st2 = c.get("/after-cut", timeout=10)
        assert st2.status == 200 and st2.ended, (st2, c.goaway)


def test_client_cancels_download(mk):
    """RST_STREAM from the client in the middle of a large download: the
    other stream on the connection and later requests are served."""
    p, o, tls = mk("h2c", by_path({"/big": stream(64 * MiB)}, default=echo()))
    with H2Client(p.port, keep_body=False, timeout=10) as c:
        sid = c.request("GET", "/big")
        assert c.wait(lambda: c.streams[sid].received >= MiB, 10)
        c.reset_stream(sid, H.CANCEL)
        st2 = c.get("/after-cancel", timeout=10)
        assert st2.status == 200 and st2.ended, (st2, c.goaway, c.error)
        assert c.goaway is None
    for i in range(3):
        assert_serves(p, path="/again%d" % i)


def test_h2c_listener_still_speaks_http11(mk):
    p, o, tls = mk("h2c")
    r = request(p.port, "GET", "/h1")
    assert r.status == 200 and r.version == "HTTP/1.1"
    assert r.json()["path"] == "/h1"


def test_idle_connection_closed_after_keepalive(mk):
    p, o, tls = mk("h2c", extra="timeouts:\n  keepalive: 1s\n")
    with H2Client(p.port, timeout=10) as c:
        st = c.get("/idle")
        assert st.status == 200
        t0 = time.monotonic()
        assert c.wait_closed(10), "idle h2 connection not closed"
        elapsed = time.monotonic() - t0
    assert 0.5 <= elapsed < 8 * SLOW, elapsed


def test_cookie_crumbs_joined(mk):
    """RFC 9113 8.2.3: cookie fields split by an h2 client are joined with
    "; " into one Cookie field before going to HTTP/1.1."""
    p, o, tls = mk("h2c")
    with H2Client(p.port) as c:
        st = c.get("/cookies", headers=[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")])
    assert st.status == 200
    doc = json.loads(st.body)
    assert doc_headers(doc, "cookie") == ["a=1; b=2; c=3"], doc["headers"]


def test_post_without_body_end_stream_on_headers(mk):
    p, o, tls = mk("h2c")
    with H2Client(p.port) as c:
        st = c.response(c.request("POST", "/empty"))
    assert st.status == 200
    doc = json.loads(st.body)
    assert doc["method"] == "POST" and doc["body_len"] == 0 and not doc["chunked"]
    assert doc_headers(doc, "transfer-encoding") == []


def test_host_header_and_authority(mk):
    """:authority wins over a host field (RFC 9113 8.3.1); without
    :authority the host field is the Host. The origin sees exactly one Host."""
    p, o, tls = mk("h2c")
    c = RawH2(p.port, timeout=10)
    c.send(c.headers(1, request_fields(path="/both", authority="a.test") + [("host", "a.test")]))
    c.send(c.headers(3, [(":method", "GET"), (":scheme", "http"), (":path", "/hostonly"), ("host", "h.test")]))
    c.wait(lambda: c._st(1).done and c._st(3).done, 10)
    c.close()
    for sid, host in ((1, "a.test"), (3, "h.test")):
        st = c._st(sid)
        assert st.status == 200, st
        doc = json.loads(bytes(st.body))
        assert doc_headers(doc, "host") == [host], doc["headers"]


@pytest.mark.parametrize("n", [12000, 20000])
def test_large_response_header(mk, n):
    """A response head the HTTP/1.1 path passes (a 12 or 20 KB field)
    passes over h2 too."""
    big = "v" * n
    p, o, tls = mk("h2c", fixed(200, [("X-Big", big), ("Content-Type", "text/plain")], b"ok"))
    r = request(p.port, "GET", "/h1big")
    assert r.status == 200 and r.header("x-big") == big  # the HTTP/1.1 path
    with H2Client(p.port) as c:
        st = c.get("/h2big", timeout=10)
    assert st.status == 200 and st.ended, st
    assert st.header("x-big") == big and bytes(st.body) == b"ok"


def test_client_aborts_upload_pool_not_poisoned(mk):
    """RST_STREAM in the middle of an upload with content-length: the half
    sent upstream request must not be reused; later requests arrive intact."""
    p, o, tls = mk("h2c", extra="limits:\n  max_body_bytes: 0\n")
    with H2Client(p.port, timeout=10) as c:
        sid = c.request("POST", "/abort", headers=[("content-length", "100000")], end_stream=False)
        c.send_body(sid, b"a" * 30000, end_stream=False)
        time.sleep(0.3)
        c.reset_stream(sid, H.CANCEL)
        for i in range(3):
            st = c.response(c.request("POST", "/next%d" % i, body=b"n" * 10), timeout=10)
            assert st.status == 200, (st, c.goaway)
            doc = json.loads(st.body)
            assert doc["path"] == "/next%d" % i and doc["body"] == "n" * 10, doc
    # the aborted upload's upstream connection was closed (the origin saw EOF
    # in its body), never reused: no garbage request reached the origin
    assert o.paths() == ["/abort", "/next0", "/next1", "/next2"], o.paths()
    assert not [e for e in o.errors if "BadRequest" in e], o.errors


def test_upload_to_slow_origin_bounded_rss(mk):
    """A fast h2 uploader and an origin that reads slowly: portico holds
    about a window per stream, not the body."""
    size = 96 * MiB

    def slow_sink(c, r):
        total = 0
        sha = hashlib.sha256()
        for piece in c.body_chunks(r, bufsize=256 * 1024):
            total += len(piece)
            sha.update(piece)
            time.sleep(0.002)
        c.respond(200, [("Content-Type", "application/json")],
                  json.dumps({"bytes": total, "sha256": sha.hexdigest()}).encode())
        return True
    slow_sink.streaming = True
    p, o, tls = mk("h2c", slow_sink, extra="limits:\n  max_body_bytes: 0\n")
    block = os.urandom(MiB)
    want = hashlib.sha256()
    for _ in range(size // MiB):
        want.update(block)
    with H2Client(p.port, timeout=60) as c:
        st = c.response(c.request("POST", "/warm", body=block), timeout=30)
        assert st.status == 200
        time.sleep(0.2)
        baseline = p.rss_kb()
        peak = [baseline]
        sid = c.request("POST", "/up", headers=[("content-length", str(size))], end_stream=False)

        def pieces():
            for i in range(size // MiB):
                peak[0] = max(peak[0], p.rss_kb())
                yield block
        assert c.send_body(sid, pieces(), end_stream=True, deadline=time.monotonic() + 180 * SLOW)
        st = c.response(sid, timeout=60)
    assert st.status == 200, (st, c.error)
    doc = json.loads(st.body)
    assert doc == {"bytes": size, "sha256": want.hexdigest()}
    growth = peak[0] - baseline
    print("RSS slow-origin h2 upload: baseline %d KiB, peak %d KiB" % (baseline, peak[0]))
    if not ASAN:
        assert growth < 32 * 1024, "RSS grew by %d KiB during a %d MiB upload" % (growth, size // MiB)


RELOAD = """\
workers: 1
shutdown_grace: 5s
listeners:
  - name: web
    listen: ${listen}
    h2c: true
upstreams:
  app:
    servers:
      - {address: ${o}}
routes:
  - match: {path: /r}
    respond: {status: 200, body: "%s"}
  - upstream: app
"""


def test_reload_keeps_h2_connection_working(portico, origin):
    """SIGHUP with an h2 connection open: the connection gets GOAWAY, its
    in-flight stream completes, and a new connection gets the new config.
    (Raw frames: python3-h2 treats any GOAWAY as the end of the connection.)"""
    o = origin(by_path({"/slow": fixed(200, [], b"slow-done", delay=1.0)}, default=echo()))
    p = portico(RELOAD % "one", o=o.address)
    with open(p.config_path) as f:
        text = f.read()
    with H2Client(p.port, timeout=10) as c0:
        assert bytes(c0.get("/r").body) == b"one"
    c = RawH2(p.port, timeout=20)
    c.send(c.headers(1, request_fields(path="/slow")))
    assert o.wait_requests(1, 5)
    with open(p.config_path, "w") as f:
        f.write(text.replace('body: "one"', 'body: "two"'))
    p.kill(signal.SIGHUP)
    assert c.wait(lambda: c.goaway is not None, 5), "no GOAWAY after a reload"
    c.wait(lambda: c._st(1).done, 15)
    st = c._st(1)
    assert st.status == 200 and st.ended and bytes(st.body) == b"slow-done", st
    assert c.wait_closed(10), "the connection should end after its last stream"
    c.close()
    with H2Client(p.port, timeout=10) as c2:
        assert bytes(c2.get("/r").body) == b"two"
    assert p.alive()


# ---------------------------------------------------------------- trailers


@pytest.mark.parametrize("mode", ["h2c", "tls"])
def test_response_trailers_become_h2_trailers(mk, mode):
    """Trailer fields of a chunked origin response reach the h2 client as a
    trailer HEADERS block that ends the stream (connection-specific fields
    dropped)."""
    p, o, tls = mk(mode, chunked_response([b"hello ", b"world"],
                                          trailers=[("X-Checksum", "abc123"), ("Connection", "x")]))
    with H2Client(p.port, tls=tls) as c:
        st = c.get("/t")
    assert st.status == 200 and st.ended and bytes(st.body) == b"hello world"
    assert ("x-checksum", "abc123") in st.trailers, st.trailers
    assert all(k != "connection" for k, _ in st.trailers)


def test_request_trailers_reach_origin(mk):
    """An h2 request body of unknown length goes upstream chunked, its
    trailer fields in the last chunk."""
    p, o, tls = mk("h2c")
    with H2Client(p.port) as c:
        sid = c.request("POST", "/up", body=b"payload", end_stream=False)
        c.conn.send_headers(sid, [("x-trailer", "t1")], end_stream=True)
        c.flush()
        st = c.response(sid, timeout=10)
    assert st.status == 200
    doc = json.loads(st.body)
    assert doc["chunked"] and doc["body_len"] == 7
    assert ["x-trailer", "t1"] in [list(t) for t in doc["trailers"]], doc["trailers"]
