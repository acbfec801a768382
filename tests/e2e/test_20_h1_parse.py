"""HTTP/1.1 request parsing: smuggling vectors (400 + close, nothing reaches
the origin) and size limits (414, 431, 413)."""
import time

import pytest

from lib.origin import echo
from lib.portico import Conn, proxy_config, req

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: example.test\r\n\r\n"


@pytest.fixture
def setup(portico, origin):
    o = origin(echo())
    p = portico(proxy_config([o.address], extra="limits:\n  max_body_bytes: 1m\n"))
    return p, o


def assert_error(r, status):
    assert r.status == status, r
    assert "close" in r.conn_tokens(), r
    assert 0 < len(r.body) <= 512, r  # a short text body
    ct = r.header("content-type")
    assert ct is None or ct.startswith("text/"), r


def check_rejected(p, o, data, status=400, complete_only=False):
    before, before_complete = o.n_requests, o.n_complete
    with Conn(p.port) as c:
        c.send(data)
        r = c.read_response()
        assert_error(r, status)
        assert c.is_closed(3), "connection not closed after %d" % status
    time.sleep(0.1)
    assert "/smuggled" not in o.paths()
    assert o.n_complete == before_complete, "the origin received a complete request"
    if not complete_only:
        assert o.n_requests == before, "the origin received the request head"


H = b"POST / HTTP/1.1\r\nHost: example.test\r\n"

HEAD_VECTORS = [
    ("cl-te", H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te-cl", H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("cl-te-identity", H + b"Content-Length: 5\r\nTransfer-Encoding: identity\r\n\r\nhello" + SMUGGLED),
    ("two-cl-same", H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello" + SMUGGLED),
    ("two-cl-different", H + b"Content-Length: 5\r\nContent-Length: 0\r\n\r\nhello" + SMUGGLED),
    ("cl-list", H + b"Content-Length: 5, 5\r\n\r\nhello" + SMUGGLED),
    ("cl-list-nospace", H + b"Content-Length: 5,5\r\n\r\nhello" + SMUGGLED),
    ("cl-plus", H + b"Content-Length: +5\r\n\r\nhello" + SMUGGLED),
    ("cl-minus", H + b"Content-Length: -5\r\n\r\nhello" + SMUGGLED),
    ("cl-hex", H + b"Content-Length: 0x5\r\n\r\nhello" + SMUGGLED),
    ("cl-inner-space", H + b"Content-Length: 1 0\r\n\r\nhellohello" + SMUGGLED),
    ("cl-letters", H + b"Content-Length: 5a\r\n\r\nhello" + SMUGGLED),
    ("cl-overflow", H + b"Content-Length: 99999999999999999999999\r\n\r\nhello" + SMUGGLED),
    ("te-gzip-chunked", H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te-chunked-gzip", H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te-identity", H + b"Transfer-Encoding: identity\r\n\r\n" + SMUGGLED),
    ("te-chunked-twice", H + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te-two-headers", H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te-xchunked", H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: example.test\r\nX-Foo: a\r\n b\r\n\r\n" + SMUGGLED),
    ("obs-fold-te", H + b"X-Foo: a\r\n\tTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello" + SMUGGLED),
    ("bare-lf-all", b"GET / HTTP/1.1\nHost: example.test\n\n" + SMUGGLED),
    ("bare-lf-header", b"GET / HTTP/1.1\r\nHost: example.test\nX-Foo: a\r\n\r\n" + SMUGGLED),
    ("bare-lf-request-line", b"GET / HTTP/1.1\nHost: example.test\r\n\r\n" + SMUGGLED),
    ("nul-in-value", b"GET / HTTP/1.1\r\nHost: example.test\r\nX-Foo: a\x00b\r\n\r\n" + SMUGGLED),
    ("cr-in-value", b"GET / HTTP/1.1\r\nHost: example.test\r\nX-Foo: a\rb\r\n\r\n" + SMUGGLED),
    ("space-before-colon", b"GET / HTTP/1.1\r\nHost: example.test\r\nX-Foo : b\r\n\r\n" + SMUGGLED),
    ("space-before-colon-te", H + b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello" + SMUGGLED),
    ("tab-before-colon-cl", H + b"Content-Length\t: 5\r\n\r\nhello" + SMUGGLED),
    ("two-hosts", b"GET / HTTP/1.1\r\nHost: example.test\r\nHost: other.test\r\n\r\n" + SMUGGLED),
    ("two-hosts-same", b"GET / HTTP/1.1\r\nHost: example.test\r\nHost: example.test\r\n\r\n" + SMUGGLED),
    ("missing-host", b"GET / HTTP/1.1\r\nUser-Agent: e2e\r\n\r\n" + SMUGGLED),
    ("absolute-form-other-authority", b"GET http://other.test/ HTTP/1.1\r\nHost: example.test\r\n\r\n" + SMUGGLED),
]


@pytest.mark.parametrize("data", [v[1] for v in HEAD_VECTORS], ids=[v[0] for v in HEAD_VECTORS])
def test_smuggling_head_vector_rejected(setup, data):
    p, o = setup
    check_rejected(p, o, data)


CHUNK_SIZES = [b"10000000000000000000", b"fffffffffffffffff", b"-1", b"+1", b"0x10", b" 5", b"5 5", b"g"]


@pytest.mark.parametrize("size", CHUNK_SIZES, ids=[s.decode() for s in CHUNK_SIZES])
def test_invalid_chunk_size_rejected(setup, size):
    """The head is valid; the chunk size line is not. The proxy may already have
    started the upstream request, but the origin must never see a complete
    request nor the smuggled one, and the client gets 400 + close."""
    p, o = setup
    data = (H + b"Transfer-Encoding: chunked\r\n\r\n" + size + b"\r\n" + b"0123456789abcdef\r\n0\r\n\r\n" + SMUGGLED)
    check_rejected(p, o, data, complete_only=True)


# ---- positive controls: the strict parser still accepts what is valid

@pytest.mark.parametrize("data,body", [
    (H + b"Content-Length: 5\r\n\r\nhello", "hello"),
    (H + b"Content-Length:5\r\n\r\nhello", "hello"),
    (H + b"Content-Length:   5   \r\n\r\nhello", "hello"),
    (H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"),
    (H + b"Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n", "hello"),
    (H + b"Transfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
    (b"GET http://example.test/abs?q=1 HTTP/1.1\r\nHost: example.test\r\n\r\n", ""),
])
def test_valid_requests_accepted(setup, data, body):
    p, o = setup
    with Conn(p.port) as c:
        c.send(data)
        r = c.read_response()
        assert r.status == 200, r
        doc = r.json()
        assert doc["body"] == body
        # and the connection stays usable
        c.send(req("GET", "/next"))
        r2 = c.read_response()
        assert r2.status == 200 and r2.json()["path"] == "/next"


def test_absolute_form_uses_path(setup):
    p, o = setup
    with Conn(p.port) as c:
        c.send(b"GET http://example.test/abs?q=1 HTTP/1.1\r\nHost: example.test\r\n\r\n")
        r = c.read_response()
    assert r.status == 200
    doc = r.json()
    assert doc["path"] == "/abs" and doc["query"] == "q=1"


# ---- limits

LIMITS = """\
limits:
  max_request_line: 1k
  max_header_bytes: 4k
  max_body_bytes: 1k
"""


@pytest.fixture
def limited(portico, origin):
    o = origin(echo())
    p = portico(proxy_config([o.address], extra=LIMITS))
    return p, o


def test_request_line_too_long_414(limited):
    p, o = limited
    check_rejected(p, o, req("GET", "/" + "a" * 1500), status=414)


def test_request_line_under_limit_ok(limited):
    p, o = limited
    with Conn(p.port) as c:
        c.send(req("GET", "/" + "a" * 900))
        r = c.read_response()
    assert r.status == 200 and r.json()["path"] == "/" + "a" * 900


def test_default_max_request_line_8k(portico, origin):
    o = origin(echo())
    p = portico(proxy_config([o.address]))
    with Conn(p.port) as c:
        c.send(req("GET", "/" + "b" * 7000))
        assert c.read_response().status == 200
    check_rejected(p, o, req("GET", "/" + "b" * 9000), status=414)


def test_header_block_too_large_431(limited):
    p, o = limited
    check_rejected(p, o, req("GET", "/", [("X-Big", "x" * 5000)]), status=431)


def test_many_headers_too_large_431(limited):
    p, o = limited
    hdrs = [("X-H%d" % i, "v" * 90) for i in range(60)]  # ~6k in total, each line short
    check_rejected(p, o, req("GET", "/", hdrs), status=431)


def test_header_block_under_limit_ok(limited):
    p, o = limited
    with Conn(p.port) as c:
        c.send(req("GET", "/", [("X-Big", "x" * 3000)]))
        r = c.read_response()
    assert r.status == 200
    assert ["X-Big", "x" * 3000] in r.json()["headers"]


def test_body_too_large_content_length_413_before_body(limited):
    """Answered from the head alone: the body is never sent."""
    p, o = limited
    before = o.n_requests
    with Conn(p.port) as c:
        c.send(req("POST", "/", [("Content-Length", "5000")]))
        r = c.read_response()
        assert_error(r, 413)
        assert c.is_closed(3)
    time.sleep(0.1)
    assert o.n_requests == before


def test_body_too_large_with_expect_no_100(limited):
    """Expect: 100-continue with a Content-Length over the limit: 413 straight
    away, never an invitation to send the body."""
    p, o = limited
    with Conn(p.port) as c:
        c.send(req("POST", "/", [("Content-Length", "5000"), ("Expect", "100-continue")]))
        r = c.read_response(skip_1xx=False)
        assert_error(r, 413)
        assert c.is_closed(3)
    assert o.n_requests == 0


def test_body_under_limit_ok(limited):
    p, o = limited
    with Conn(p.port) as c:
        c.send(req("POST", "/", body=b"z" * 1000))
        r = c.read_response()
    assert r.status == 200 and r.json()["body_len"] == 1000


def test_body_too_large_chunked_413(limited):
    p, o = limited
    before_complete = o.n_complete
    with Conn(p.port) as c:
        c.send(req("POST", "/", [("Transfer-Encoding", "chunked")]))
        r = None
        for _ in range(8):  # 8 x 512 = 4k > 1k
            try:
                c.send(b"200\r\n" + b"q" * 512 + b"\r\n")
            except OSError:
                break
            time.sleep(0.02)
        r = c.read_response()
        assert_error(r, 413)
        assert c.is_closed(3)
    time.sleep(0.1)
    assert o.n_complete == before_complete


def test_body_unlimited_with_zero(portico, origin):
    o = origin(echo())
    p = portico(proxy_config([o.address], extra="limits:\n  max_body_bytes: 0\n"))
    with Conn(p.port) as c:
        c.send(req("POST", "/", body=b"u" * (12 << 20)))  # over the 10m default
        r = c.read_response()
    assert r.status == 200 and r.json()["body_len"] == 12 << 20


def test_default_max_body_10m(portico, origin):
    o = origin(echo())
    p = portico(proxy_config([o.address]))
    with Conn(p.port) as c:
        c.send(req("POST", "/", [("Content-Length", str(11 << 20))]))
        r = c.read_response()
        assert_error(r, 413)
