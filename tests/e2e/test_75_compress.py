"""Response compression end to end: gzip, br and zstd negotiated from
Accept-Encoding, every encoded body decoded by the real command-line
decoders (`gzip -d`, `brotli -d`, `zstd -d`) and compared byte for byte with
what the origin sent; over HTTP/1.1 (raw sockets: the encoded bytes as they
came, de-chunked), HTTP/1.0 and HTTP/2 (python3-h2 and curl); bodies with
Content-Length, chunked and ended by close. Headers (Content-Encoding, no
Content-Length, Vary, weak ETags), q-values and server preference, the
skips (small, binary, already encoded, HEAD/204/206/304, no-transform),
min_length/types/levels, streaming, and compressed variants in the cache.
"""
import hashlib
import json
import shutil
import subprocess
import time

import pytest

from lib.h2client import H2Client
from lib.origin import scripted, text_body
from lib.portico import SLOW, Conn, curl, req, request

ALGS = ["gzip", "br", "zstd"]
DECODERS = {"gzip": ["gzip", "-d", "-c"], "br": ["brotli", "-d", "-c"], "zstd": ["zstd", "-d", "-c", "-q"]}

pytestmark = pytest.mark.skipif(any(shutil.which(d[0]) is None for d in DECODERS.values()),
                                reason="gzip, brotli and zstd command-line tools needed")


def decode(alg, data):
    r = subprocess.run(DECODERS[alg], input=bytes(data), capture_output=True, timeout=60)
    assert r.returncode == 0, "%s -d failed on %d bytes: %s" % (alg, len(data), r.stderr[-500:])
    return r.stdout


def config(origin_address, compress="[zstd, br, gzip]", route="", top="", workers=1):
    """One h2c listener (HTTP/1.1 works too), one upstream, one route."""
    return ("workers: %d\n%s"
            "listeners:\n  - name: web\n    listen: ${listen}\n    h2c: true\n"
            "upstreams:\n  app:\n    servers:\n      - {address: %s}\n"
            "routes:\n  - upstream: app\n    compress: %s\n%s") % (workers, top, origin_address, compress, route)


def json_body(size=1024):
    items = []
    i = 0
    while len(json.dumps(items)) < size:
        items.append({"id": i, "name": "item-%d" % i, "tags": ["a", "b", "c"], "ok": i % 3 == 0})
        i += 1
    return json.dumps(items).encode()


BODIES = {
    # kind: (content type, body, origin framing)
    "json1k": ("application/json", json_body(1024), "length"),
    "text3m": ("text/plain; charset=utf-8", text_body(3 * 1024 * 1024, seed=21), "length"),
    "chunked": ("text/html", text_body(400 * 1024, seed=22), "chunked"),
    "close": ("text/plain", text_body(300 * 1024, seed=23), "close"),
}


def body_origin(origin, kind, extra=(), **kw):
    ctype, body, framing = BODIES[kind]
    return origin(scripted(headers=[("Content-Type", ctype)] + list(extra), body=body, framing=framing, **kw))


def hvals(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def vary_tokens(headers):
    toks = []
    for v in hvals(headers, "vary"):
        toks += [t.strip().lower() for t in v.split(",") if t.strip()]
    return toks


def get(p, path="/", ae=None, headers=(), method="GET", version="HTTP/1.1"):
    hdrs = list(headers) + ([("Accept-Encoding", ae)] if ae is not None else [])
    return request(p.port, method, path, hdrs, version=version, timeout=20)


def h2_get(p, path="/", ae=None, headers=()):
    hdrs = list(headers) + ([("accept-encoding", ae)] if ae is not None else [])
    with H2Client(p.port, timeout=20, authority="example.test") as c:
        st = c.get(path, headers=hdrs, timeout=30)
        assert st.status is not None and st.ended, (st, c.error)
        return st


def assert_encoded(headers, alg):
    assert hvals(headers, "content-encoding") == [alg], headers
    assert not hvals(headers, "content-length"), headers
    assert "accept-encoding" in vary_tokens(headers), headers


def assert_identity(headers, body, want):
    assert not hvals(headers, "content-encoding"), headers
    assert bytes(body) == want


# ---------------------------------------------------------------- every algorithm, every framing


@pytest.mark.parametrize("kind", sorted(BODIES))
@pytest.mark.parametrize("alg", ALGS)
def test_h1_decodes_to_original(portico, origin, alg, kind):
    o = body_origin(origin, kind)
    p = portico(config(o.address))
    want = BODIES[kind][1]
    with Conn(p.port, timeout=20) as c:
        for _ in range(2):  # twice on one connection: framing ends where it should
            c.send(req("GET", "/%s" % kind, [("Accept-Encoding", alg)]))
            r = c.read_response()
            assert r.status == 200 and r.complete, r
            assert_encoded(r.headers, alg)
            assert r.chunked, r.headers  # HTTP/1.1 without a length: chunked
            assert len(r.body) < len(want), (len(r.body), len(want))
            assert decode(alg, r.body) == want
            if kind == "close":
                break  # the origin closed; portico may end the client's connection too
    assert o.n_requests in (1, 2)


def test_pipelined_encoded_responses(portico, origin):
    o = origin(scripted(headers=[("Content-Type", "text/plain")],
                        body=lambda r: text_body(30000, seed=int(r.path[1:])), framing="chunked"))
    p = portico(config(o.address))
    seq = [("/1", "gzip"), ("/2", "br"), ("/3", "identity"), ("/4", "zstd"), ("/5", "gzip")]
    with Conn(p.port, timeout=10) as c:
        c.send(b"".join(req("GET", path, [("Accept-Encoding", ae)]) for path, ae in seq))
        for path, ae in seq:
            r = c.read_response()
            want = text_body(30000, seed=int(path[1:]))
            if ae == "identity":
                assert_identity(r.headers, r.body, want)
            else:
                assert_encoded(r.headers, ae)
                assert decode(ae, r.body) == want, path


@pytest.mark.parametrize("kind", sorted(BODIES))
@pytest.mark.parametrize("alg", ALGS)
def test_h2_decodes_to_original(portico, origin, alg, kind):
    o = body_origin(origin, kind)
    p = portico(config(o.address))
    want = BODIES[kind][1]
    st = h2_get(p, "/%s" % kind, alg)
    assert st.status == 200
    assert_encoded(st.headers, alg)
    assert len(st.body) < len(want)
    assert decode(alg, st.body) == want


@pytest.mark.parametrize("alg", ALGS)
def test_curl_h2_and_h1_raw(portico, origin, alg):
    o = body_origin(origin, "chunked")
    p = portico(config(o.address))
    want = BODIES["chunked"][1]
    url = "http://127.0.0.1:%d/c" % p.port
    # no --compressed: curl hands over the bytes as they came
    r = curl("--http2-prior-knowledge", "-H", "Accept-Encoding: %s" % alg, "-D", "-", "-o", "-", url, timeout=20)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/2 200"), head
    assert b"\r\ncontent-encoding: %s" % alg.encode() in head.lower(), head
    assert decode(alg, body) == want
    r = curl("--raw", "--http1.1", "-H", "Accept-Encoding: %s" % alg, "-o", "-", url, timeout=20)
    assert r.returncode == 0, r.stderr
    # --raw keeps the chunk framing: undo it here
    raw, out = r.stdout, bytearray()
    while True:
        line, _, raw = raw.partition(b"\r\n")
        n = int(line.split(b";")[0], 16)
        if n == 0:
            break
        out += raw[:n]
        raw = raw[n + 2:]
    assert decode(alg, out) == want


@pytest.mark.parametrize("alg", ALGS)
def test_http10_client_gets_close_delimited(portico, origin, alg):
    o = body_origin(origin, "json1k")
    p = portico(config(o.address))
    with Conn(p.port, timeout=10) as c:
        c.send(b"GET /ten HTTP/1.0\r\nHost: example.test\r\nAccept-Encoding: %s\r\n\r\n" % alg.encode())
        data = c.read_to_close()
    head, _, body = data.partition(b"\r\n\r\n")
    low = head.lower()
    assert head.split(b" ")[1] == b"200", head
    assert b"chunked" not in low and b"content-length" not in low, head
    assert b"content-encoding: %s" % alg.encode() in low, head
    assert decode(alg, body) == BODIES["json1k"][1]


# ---------------------------------------------------------------- headers


def test_headers_of_an_encoded_response(portico, origin):
    body = text_body(20000)
    o = origin(scripted(headers=[("Content-Type", "text/css"), ("Vary", "Accept-Language"),
                                 ("Cache-Control", "max-age=5")], body=body, etag='"strong-1"'))
    p = portico(config(o.address))
    r = get(p, "/h", "gzip")
    assert r.status == 200
    assert_encoded(r.headers, "gzip")
    assert r.header("etag") == 'W/"strong-1"', r.headers
    assert set(vary_tokens(r.headers)) == {"accept-language", "accept-encoding"}, r.headers
    assert r.header("cache-control") == "max-age=5"
    assert decode("gzip", r.body) == body
    # the same resource uncompressed keeps its strong ETag and length, and says Vary too
    r = get(p, "/h", "identity")
    assert_identity(r.headers, r.body, body)
    assert r.header("etag") == '"strong-1"' and r.header("content-length") == str(len(body))
    assert "accept-encoding" in vary_tokens(r.headers), r.headers


def test_weak_etag_stays_weak(portico, origin):
    body = text_body(5000)
    o = origin(scripted(headers=[("Content-Type", "text/plain")], body=body, etag='W/"weak"'))
    p = portico(config(o.address))
    r = get(p, "/w", "br")
    assert_encoded(r.headers, "br")
    assert r.header("etag") == 'W/"weak"', r.headers
    assert decode("br", r.body) == body


def test_vary_not_duplicated(portico, origin):
    body = text_body(5000)
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Vary", "Accept-Encoding")], body=body))
    p = portico(config(o.address))
    for ae in ("zstd", None):
        r = get(p, "/v", ae)
        assert vary_tokens(r.headers).count("accept-encoding") == 1, r.headers


def test_vary_on_a_field_named_like_accept_encoding(portico, origin):
    """Vary is a list of field names: X-Accept-Encoding-Hint is not
    Accept-Encoding, so portico must still add it."""
    body = text_body(5000)
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Vary", "X-Accept-Encoding-Hint")], body=body))
    p = portico(config(o.address))
    for ae in ("gzip", None):
        r = get(p, "/v", ae)
        assert set(vary_tokens(r.headers)) == {"x-accept-encoding-hint", "accept-encoding"}, r.headers


# ---------------------------------------------------------------- negotiation

NEG = [
    ("gzip;q=0.5, br;q=1", "[zstd, br, gzip]", "br"),
    ("gzip, br", "[zstd, br, gzip]", "br"),
    ("gzip, br, zstd", "[zstd, br, gzip]", "zstd"),
    ("br, gzip", "[gzip, br]", "gzip"),
    ("gzip;q=0.5, br;q=0.5", "[zstd, br, gzip]", "br"),
    ("gzip ; q=0.8 , br ; q=0.9", "[zstd, br, gzip]", "br"),
    ("*", "[zstd, br, gzip]", "zstd"),
    ("zstd;q=0, *", "[zstd, br, gzip]", "br"),
    ("GZIP", "[zstd, br, gzip]", "gzip"),
    ("gzip;q=0, br", "[zstd, br, gzip]", "br"),
    ("*;q=0", "[zstd, br, gzip]", None),
    ("identity", "[zstd, br, gzip]", None),
    ("gzip;q=0", "[zstd, br, gzip]", None),
    ("deflate", "[zstd, br, gzip]", None),
    ("br, zstd", "[gzip]", None),
    ("", "[zstd, br, gzip]", None),
    (None, "[zstd, br, gzip]", None),
]


@pytest.mark.parametrize("ae,algs,want", NEG, ids=["%r-%s" % (a, b) for a, b, _ in NEG])
def test_negotiation(portico, origin, ae, algs, want):
    body = text_body(8000, seed=31)
    o = origin(scripted(headers=[("Content-Type", "text/plain")], body=body))
    p = portico(config(o.address, compress=algs))
    r = get(p, "/n", ae)
    assert r.status == 200
    if want is None:
        assert_identity(r.headers, r.body, body)
        assert r.header("content-length") == str(len(body))
    else:
        assert_encoded(r.headers, want)
        assert decode(want, r.body) == body
    # the same over HTTP/2
    st = h2_get(p, "/n", ae)
    if want is None:
        assert_identity(st.headers, st.body, body)
    else:
        assert_encoded(st.headers, want)
        assert decode(want, st.body) == body


def test_two_accept_encoding_fields(portico, origin):
    body = text_body(8000, seed=32)
    o = origin(scripted(headers=[("Content-Type", "text/plain")], body=body))
    p = portico(config(o.address, compress="[gzip, br]"))
    r = get(p, "/two", headers=[("Accept-Encoding", "zstd"), ("Accept-Encoding", "br")])
    assert_encoded(r.headers, "br")
    assert decode("br", r.body) == body


# ---------------------------------------------------------------- what is left alone


def test_small_body_untouched(portico, origin):
    o = origin(scripted(headers=[("Content-Type", "text/plain")], body=lambda r: text_body(int(r.path[1:]))))
    p = portico(config(o.address))
    for alg in ALGS:
        r = get(p, "/100", alg)
        assert_identity(r.headers, r.body, text_body(100))
        assert r.header("content-length") == "100"
        r = get(p, "/255", alg)
        assert_identity(r.headers, r.body, text_body(255))
        r = get(p, "/300", alg)
        assert_encoded(r.headers, alg)
        assert decode(alg, r.body) == text_body(300)


@pytest.mark.parametrize("ctype", ["image/png", "application/octet-stream", "image/jpeg", "video/mp4"])
def test_binary_types_untouched(portico, origin, ctype):
    body = bytes(range(256)) * 40
    o = origin(scripted(headers=[("Content-Type", ctype)], body=body))
    p = portico(config(o.address))
    r = get(p, "/bin", "gzip, br, zstd")
    assert_identity(r.headers, r.body, body)
    assert r.header("content-length") == str(len(body))
    st = h2_get(p, "/bin", "gzip, br, zstd")
    assert_identity(st.headers, st.body, body)


@pytest.mark.parametrize("ctype", ["text/css", "text/html; charset=utf-8", "application/javascript",
                                   "image/svg+xml", "application/xml", "application/wasm",
                                   "application/problem+json", "TEXT/PLAIN"])
def test_default_types_compressed(portico, origin, ctype):
    body = text_body(4000, seed=33)
    o = origin(scripted(headers=[("Content-Type", ctype)], body=body))
    p = portico(config(o.address))
    r = get(p, "/t", "gzip")
    assert_encoded(r.headers, "gzip")
    assert decode("gzip", r.body) == body


def test_already_encoded_untouched(portico, origin):
    plain = text_body(20000, seed=34)
    pre = subprocess.run(["gzip", "-c", "-9"], input=plain, capture_output=True, timeout=30).stdout
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Content-Encoding", "gzip")], body=pre))
    p = portico(config(o.address))
    for ae in ("br", "zstd, gzip", "gzip"):
        r = get(p, "/pre", ae)
        assert r.status == 200 and r.headers_all("content-encoding") == ["gzip"], r.headers
        assert r.body == pre and r.header("content-length") == str(len(pre))
    assert decode("gzip", r.body) == plain


def test_no_transform_untouched(portico, origin):
    body = text_body(20000, seed=35)
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "public, no-transform")],
                        body=body))
    p = portico(config(o.address))
    r = get(p, "/nt", "gzip")
    assert_identity(r.headers, r.body, body)
    assert r.header("content-length") == str(len(body))


def test_head_204_206_304(portico, origin):
    body = text_body(20000, seed=36)

    def status(r):
        return {"/204": 204, "/206": 206}.get(r.path, 200)

    def hdrs(r):
        h = [("Content-Type", "text/plain")]
        if r.path == "/206":
            h.append(("Content-Range", "bytes 0-9999/20000"))
        return h

    def bd(r):
        return body[:10000] if r.path == "/206" else body
    o = origin(scripted(status=status, headers=hdrs, body=bd, etag='"e"'))
    p = portico(config(o.address))
    with Conn(p.port, timeout=10) as c:
        c.send(req("HEAD", "/head", [("Accept-Encoding", "gzip")]))
        r = c.read_response("HEAD")
        assert r.status == 200 and r.body == b""
        # either the identity head (with the origin's length) or the gzip one (without a length)
        if r.has("content-encoding"):
            assert r.header("content-encoding") == "gzip" and not r.has("content-length"), r.headers
        else:
            assert r.header("content-length") == str(len(body)), r.headers
        c.send(req("GET", "/204", [("Accept-Encoding", "gzip")]))
        r = c.read_response()
        assert r.status == 204 and not r.has("content-encoding") and r.body == b"", r
        c.send(req("GET", "/206", [("Accept-Encoding", "gzip"), ("Range", "bytes=0-9999")]))
        r = c.read_response()
        assert r.status == 206 and not r.has("content-encoding") and r.body == body[:10000], r.headers
        c.send(req("GET", "/304", [("Accept-Encoding", "gzip"), ("If-None-Match", '"e"')]))
        r = c.read_response()
        assert r.status == 304 and not r.has("content-encoding") and r.body == b"", r
        # after all of these the connection is still in step
        c.send(req("GET", "/last", [("Accept-Encoding", "gzip")]))
        r = c.read_response()
        assert r.status == 200 and decode("gzip", r.body) == body
    # HEAD and 204 over HTTP/2 end on their HEADERS frame
    with H2Client(p.port) as c:
        st = c.response(c.request("HEAD", "/head", headers=[("accept-encoding", "gzip")]))
        assert st.status == 200 and st.end_on_headers and st.received == 0, st
        st = c.get("/204", headers=[("accept-encoding", "gzip")])
        assert st.status == 204 and st.end_on_headers, st


# ---------------------------------------------------------------- configuration


def test_min_length(portico, origin):
    o = origin(scripted(headers=[("Content-Type", "text/plain")], body=lambda r: text_body(int(r.path[1:]))))
    p = portico(config(o.address, compress="{algorithms: [gzip], min_length: 1000}"))
    r = get(p, "/999", "gzip")
    assert_identity(r.headers, r.body, text_body(999))
    r = get(p, "/1000", "gzip")
    assert_encoded(r.headers, "gzip")
    assert decode("gzip", r.body) == text_body(1000)


def test_min_length_zero_and_unknown_length(portico, origin):
    """min_length is judged on Content-Length; a chunked body of unknown length is compressed."""
    o = origin(scripted(headers=[("Content-Type", "text/plain")], body=b"tiny", framing="chunked"))
    p = portico(config(o.address, compress="{algorithms: [zstd]}"))
    r = get(p, "/tiny", "zstd")
    assert r.status == 200
    assert_encoded(r.headers, "zstd")
    assert decode("zstd", r.body) == b"tiny"


def test_types_allowlist(portico, origin):
    body = text_body(5000, seed=37)
    o = origin(scripted(headers=lambda r: [("Content-Type", {"/json": "application/json", "/text": "text/plain",
                                                             "/css": "text/css"}[r.path])], body=body))
    p = portico(config(o.address, compress="{algorithms: [br], types: [application/json, text/css]}"))
    r = get(p, "/json", "br")
    assert_encoded(r.headers, "br")
    assert decode("br", r.body) == body
    r = get(p, "/css", "br")
    assert_encoded(r.headers, "br")
    r = get(p, "/text", "br")
    assert_identity(r.headers, r.body, body)
    p2 = portico(config(o.address, compress="{algorithms: [br], types: [text/*]}"))
    assert get(p2, "/text", "br").header("content-encoding") == "br"
    assert get(p2, "/css", "br").header("content-encoding") == "br"
    assert not get(p2, "/json", "br").has("content-encoding")


def test_gzip_levels(portico, origin):
    """zlib writes the level class in the gzip header's XFL byte: 4 for the
    fastest level (1, the default), 2 for the best (9)."""
    body = text_body(200000, seed=38)
    o = origin(scripted(headers=[("Content-Type", "text/plain")], body=body))
    fast = portico(config(o.address, compress="[gzip]"))
    best = portico(config(o.address, compress="{algorithms: [gzip], levels: {gzip: 9}}"))
    rf = get(fast, "/l", "gzip")
    rb = get(best, "/l", "gzip")
    assert decode("gzip", rf.body) == body and decode("gzip", rb.body) == body
    assert rf.body[:2] == b"\x1f\x8b" and rb.body[:2] == b"\x1f\x8b"
    assert rf.body[8] == 4, rf.body[:10]
    assert rb.body[8] == 2, rb.body[:10]
    assert len(rb.body) < len(rf.body)


def test_br_and_zstd_levels_accepted(portico, origin):
    body = text_body(200000, seed=39)
    o = origin(scripted(headers=[("Content-Type", "text/plain")], body=body))
    lo = portico(config(o.address, compress="{algorithms: [br, zstd], levels: {br: 0, zstd: 1}}"))
    hi = portico(config(o.address, compress="{algorithms: [br, zstd], levels: {br: 11, zstd: 19}}"))
    for alg in ("br", "zstd"):
        a = get(lo, "/l", alg)
        b = get(hi, "/l", alg)
        assert decode(alg, a.body) == body and decode(alg, b.body) == body
        assert len(b.body) < len(a.body), (alg, len(a.body), len(b.body))


# ---------------------------------------------------------------- streaming


@pytest.mark.parametrize("alg", ALGS)
def test_encoded_body_streams(portico, origin, alg):
    """The origin sends half its body and stops for 1.5 s: the client has
    compressed bytes for the first half before the pause ends."""
    body = text_body(256 * 1024, seed=40)
    o = origin(scripted(headers=[("Content-Type", "text/plain")], body=body, framing="chunked", chunk=16384,
                        pause_after=128 * 1024, pause=1.5))
    p = portico(config(o.address))
    with Conn(p.port, timeout=10) as c:
        t0 = time.monotonic()
        c.send(req("GET", "/s", [("Accept-Encoding", alg)]))
        head = c.read_until(b"\r\n\r\n")
        assert b"chunked" in head.lower()
        line = c.read_until(b"\r\n")
        n = int(line.split(b";")[0], 16)
        first = time.monotonic() - t0
        assert n > 0
        data = c.read_exact(n + 2)[:-2]
        rest = bytearray(data)
        while True:
            line = c.read_until(b"\r\n")
            n = int(line.split(b";")[0], 16)
            if n == 0:
                c.read_until(b"\r\n")
                break
            rest += c.read_exact(n + 2)[:-2]
        total = time.monotonic() - t0
    assert total >= 1.4, total
    assert first < 1.0 * SLOW, "first encoded bytes after %.2fs: the encoder held them back" % first
    assert decode(alg, rest) == body


def test_large_body_bounded_memory(portico, origin):
    """64 MiB of text through gzip: decoded size and sha256 match, and portico's
    RSS does not grow with the body."""
    size = 64 * 1024 * 1024
    block = text_body(1024 * 1024, seed=41)
    want = hashlib.sha256(block * 64).hexdigest()

    def h(c, r):
        c.send("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(64):
            c.sock.sendall(block)
        return True
    o = origin(h)
    p = portico(config(o.address, compress="[gzip]"))
    rss0 = p.rss_kb()
    r = curl("-H", "Accept-Encoding: gzip", "-o", "-", "http://127.0.0.1:%d/big" % p.port, timeout=60)
    assert r.returncode == 0, r.stderr
    out = decode("gzip", r.stdout)
    assert len(out) == size and hashlib.sha256(out).hexdigest() == want
    assert p.rss_kb() - rss0 < 32 * 1024, (rss0, p.rss_kb())


# ---------------------------------------------------------------- with the cache


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_compressed_variants_cached(portico, origin, framing):
    body = text_body(50000, seed=42)
    o = origin(scripted(headers=[("Content-Type", "application/json"), ("Cache-Control", "max-age=60")], body=body,
                        framing=framing))
    p = portico(config(o.address, route="    cache: true\n"))
    seen = []
    for ae, alg in [("gzip", "gzip"), ("br", "br"), ("gzip", "gzip"), ("deflate, gzip", "gzip"),
                    (None, None), ("br;q=1, gzip;q=0.5", "br"), (None, None), ("zstd", "zstd"), ("zstd", "zstd")]:
        r = get(p, "/cz", ae)
        assert r.status == 200, r
        if alg is None:
            assert_identity(r.headers, r.body, body)
        else:
            assert r.header("content-encoding") == alg, (ae, r.headers)
            assert "accept-encoding" in vary_tokens(r.headers), r.headers
            assert decode(alg, r.body) == body, ae
        seen.append((ae, (r.header("cache-status") or "").lower()))
    # one origin request per distinct coding: gzip, br, identity, zstd
    assert o.n_requests == 4, (o.n_requests, seen)
    hits = ["hit" in cs.split("; ") for _, cs in seen]
    assert hits == [False, False, True, True, False, True, True, False, True], seen
    # a hit over HTTP/2 is the same stored variant
    st = h2_get(p, "/cz", "gzip")
    assert st.header("content-encoding") == "gzip" and "hit" in st.header("cache-status", "")
    assert decode("gzip", st.body) == body
    assert o.n_requests == 4


def test_cached_variant_of_two_accept_encoding_fields(portico, origin):
    """The variant is keyed by the coding chosen from all Accept-Encoding
    fields, as the encoder chooses it: a client whose first field alone
    would pick another coding never gets this variant."""
    body = text_body(30000, seed=44)
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60")], body=body))
    p = portico(config(o.address, compress="[gzip, br]", route="    cache: true\n"))
    two = [("Accept-Encoding", "zstd"), ("Accept-Encoding", "br")]
    r = get(p, "/tv", headers=two)
    assert_encoded(r.headers, "br")
    assert decode("br", r.body) == body
    r = get(p, "/tv", headers=two)  # a hit: the stored length is known
    assert r.header("content-encoding") == "br", r.headers
    assert "hit" in r.header("cache-status", "") and decode("br", r.body) == body
    r = get(p, "/tv", "zstd")  # no coding of the route: identity, its own variant
    assert_identity(r.headers, r.body, body)
    assert o.n_requests == 2


def test_cached_identity_then_compressed(portico, origin):
    """An entry stored for a client that takes no coding is not handed to one
    that asked for gzip as if it were, nor the other way round."""
    body = text_body(30000, seed=43)
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60")], body=body))
    p = portico(config(o.address, compress="[gzip]", route="    cache: true\n"))
    r = get(p, "/ic")
    assert_identity(r.headers, r.body, body)
    r = get(p, "/ic", "gzip")
    assert r.header("content-encoding") == "gzip" and decode("gzip", r.body) == body
    r = get(p, "/ic")
    assert_identity(r.headers, r.body, body)
    r = get(p, "/ic", "gzip")
    assert r.header("content-encoding") == "gzip" and decode("gzip", r.body) == body
    assert o.n_requests == 2


def test_compressed_variants_with_origin_vary(portico, origin):
    """Origin varies on Accept-Language, portico on the coding: variants by both."""
    def body(r):
        return text_body(10000, seed=44) + ("lang=%s" % r.header("accept-language", "-")).encode()
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60"),
                                 ("Vary", "Accept-Language")], body=body))
    p = portico(config(o.address, compress="[br, gzip]", route="    cache: true\n"))
    seq = [("en", "gzip"), ("fr", "gzip"), ("en", "br"), ("en", "gzip"), ("fr", "gzip"), ("en", "br")]
    for lang, alg in seq:
        r = get(p, "/vl", alg, headers=[("Accept-Language", lang)])
        assert r.header("content-encoding") == alg, r.headers
        assert decode(alg, r.body).endswith(("lang=%s" % lang).encode()), (lang, alg)
    assert o.n_requests == 3


def test_client_gone_mid_encoded_body(portico, origin):
    """A client that leaves in the middle of a compressed 3 MB body: portico
    goes on serving (and the sanitizer builds report nothing)."""
    o = body_origin(origin, "text3m")
    p = portico(config(o.address))
    for alg in ALGS:
        with Conn(p.port, timeout=10, rcvbuf=4096) as c:
            c.send(req("GET", "/gone", [("Accept-Encoding", alg)]))
            c.read_until(b"\r\n\r\n")
            c.read_some()
        with H2Client(p.port, authority="example.test") as h:
            sid = h.request("GET", "/gone", headers=[("accept-encoding", alg)])
            h.wait(lambda: h.streams[sid].received > 0, 5)
            h.reset_stream(sid)
    time.sleep(0.3)
    assert p.alive()
    r = get(p, "/after", "gzip")
    assert r.status == 200 and decode("gzip", r.body) == BODIES["text3m"][1]
