"""Response cache (RFC 9111, shared cache) end to end: what is stored and
what is not, freshness (max-age, s-maxage, Expires/Date, `valid`), TTL
expiry, Vary variants, revalidation with If-None-Match (origin 304),
conditional requests answered from the cache, stale-while-revalidate,
stale-if-error, collapsing of concurrent misses, Range from a cached entry,
purge through the admin API, the disk tier across a restart and a reload,
max_object_size, bodies streamed while stored, HTTP/2 and the access log's
`cache` field.

Every origin counts its requests (lib/origin.py): a hit is proven by the
origin not seeing the request, not only by the Cache-Status header.
Lifetimes are whole seconds, so a test that needs a response to be fresh
right after storing it uses max-age >= 2 (an age of 1 can appear when a
second boundary passes), and a test that needs it stale sleeps past it.
"""
import hashlib
import json
import os
import shutil
import signal
import threading
import time
from email.utils import formatdate

import pytest

from lib.certs import Pki
from lib.h2client import H2Client
from lib.origin import by_path, scripted, text_body
from lib.portico import SLOW, Conn, free_port, req, request, wait_for

HOST = "example.test"


def config(origin_address, cache="true", top="", listener="", route="", workers=1):
    """One listener, one upstream, one route with `cache: <cache>`."""
    return ("workers: %d\n%s"
            "listeners:\n  - name: web\n    listen: ${listen}\n%s"
            "upstreams:\n  app:\n    servers:\n      - {address: %s}\n"
            "routes:\n  - upstream: app\n    cache: %s\n%s") % (
        workers, top, listener, origin_address, cache, route)


def get(p, path="/", headers=None, method="GET", host=HOST, body=None):
    return request(p.port, method, path, headers, body=body, host=host)


def cstatus(r):
    return (r.header("cache-status") or "").lower()


def is_hit(r):
    """Cache-Status names portico and says hit."""
    v = cstatus(r)
    return v.startswith("portico") and "hit" in [t.strip() for t in v.split(";")]


def stored(r):
    v = cstatus(r)
    return v.startswith("portico") and "stored" in [t.strip() for t in v.split(";")]


def cc_origin(origin, cc, body=b"cached body", extra=(), **kw):
    """Origin answering 200 with Cache-Control `cc` (None: no Cache-Control)."""
    hdrs = [("Content-Type", "text/plain")] + ([("Cache-Control", cc)] if cc else []) + list(extra)
    return origin(scripted(headers=hdrs, body=body, **kw))


def numbered(r):
    """A body naming the origin request that produced it."""
    return ("response %d" % r.index).encode()


# ---------------------------------------------------------------- store / hit


def test_hit_after_miss(portico, origin):
    o = cc_origin(origin, "max-age=60", body=text_body(5000))
    p = portico(config(o.address))
    r1 = get(p, "/a")
    assert r1.status == 200 and r1.body == text_body(5000)
    assert cstatus(r1).startswith("portico"), r1.headers
    assert "fwd=miss" in cstatus(r1) and stored(r1), r1.header("cache-status")
    r2 = get(p, "/a")
    assert r2.status == 200 and r2.body == text_body(5000)
    assert is_hit(r2), r2.header("cache-status")
    age = r2.header("age")
    assert age is not None and age.isdigit() and int(age) <= 2, r2.headers
    assert r2.header("content-type") == "text/plain"
    assert o.n_requests == 1, o.paths()
    # another path is another key
    r3 = get(p, "/b")
    assert r3.status == 200 and not is_hit(r3) and o.n_requests == 2


def test_hit_on_keepalive_connection_and_head(portico, origin):
    body = text_body(20000)
    o = cc_origin(origin, "max-age=60", body=body)
    p = portico(config(o.address))
    with Conn(p.port) as c:
        c.send(req("GET", "/k", host=HOST))
        r1 = c.read_response()
        c.send(req("GET", "/k", host=HOST) + req("HEAD", "/k", host=HOST) + req("GET", "/k", host=HOST))
        r2 = c.read_response()
        r3 = c.read_response("HEAD")
        r4 = c.read_response()
    assert r1.body == body and r2.body == body and r4.body == body
    assert is_hit(r2) and is_hit(r4)
    assert r3.status == 200 and r3.body == b"" and is_hit(r3), r3
    assert r3.header("content-length") == str(len(body)), r3.headers
    assert o.n_requests == 1


def test_pipelined_hits_and_misses_in_order(portico, origin):
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60")],
                        body=lambda r: ("%s #%d " % (r.path, r.index)).encode() + text_body(3000)))
    p = portico(config(o.address))
    paths = ["/p1", "/p1", "/p2", "/p1", "/p2", "/p3", "/p3"]
    with Conn(p.port) as c:
        c.send(b"".join(req("GET", path, host=HOST) for path in paths))
        rs = [c.read_response() for _ in paths]
        assert c.still_open(0.2)
    assert [r.status for r in rs] == [200] * len(paths)
    assert [r.body.split(b" ")[0].decode() for r in rs] == paths
    first = {}
    for path, r in zip(paths, rs):
        first.setdefault(path, r.body)
        assert r.body == first[path]
    assert o.n_requests == 3


def test_hit_for_http10_client(portico, origin):
    body = text_body(8000)
    o = cc_origin(origin, "max-age=60", body=body)
    p = portico(config(o.address))
    get(p, "/ten")
    with Conn(p.port) as c:
        c.send(b"GET /ten HTTP/1.0\r\nHost: example.test\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == body and is_hit(r), r
        assert r.version == "HTTP/1.1" and r.header("content-length") == str(len(body))
        assert c.is_closed(3)
    with Conn(p.port) as c:
        c.send(b"GET /ten HTTP/1.0\r\nHost: example.test\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert r.body == body and is_hit(r)
        c.send(b"GET /ten HTTP/1.0\r\nHost: example.test\r\n\r\n")
        assert c.read_response().body == body
    assert o.n_requests == 1


NOT_STORED = {
    "no-store": ("no-store, max-age=60", []),
    "private": ("private, max-age=60", []),
    "set-cookie": ("max-age=60", [("Set-Cookie", "session=abc; Path=/")]),
    "no-freshness": (None, []),
    "vary-star": ("max-age=60", [("Vary", "*")]),
}


@pytest.mark.parametrize("case", sorted(NOT_STORED))
def test_not_stored(portico, origin, case):
    cc, extra = NOT_STORED[case]
    o = origin(scripted(headers=[("Content-Type", "text/plain")] + ([("Cache-Control", cc)] if cc else []) + extra,
                        body=numbered))
    p = portico(config(o.address))
    bodies = []
    for _ in range(3):
        r = get(p, "/ns")
        assert r.status == 200
        assert not is_hit(r) and not stored(r), (case, r.header("cache-status"))
        bodies.append(r.body)
    assert bodies == [b"response 1", b"response 2", b"response 3"]
    assert o.n_requests == 3


def test_set_cookie_stored_with_cookies_true(portico, origin):
    o = cc_origin(origin, "max-age=60", extra=[("Set-Cookie", "s=1")])
    p = portico(config(o.address, cache="{cookies: true}"))
    r1 = get(p, "/c")
    r2 = get(p, "/c")
    assert stored(r1) and is_hit(r2), (r1.headers, r2.headers)
    assert o.n_requests == 1


@pytest.mark.parametrize("cc,expect_stored", [("max-age=60", False), ("public, max-age=60", True),
                                              ("s-maxage=60", True)])
def test_authorization(portico, origin, cc, expect_stored):
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", cc)], body=numbered))
    p = portico(config(o.address))
    auth = [("Authorization", "Basic dXNlcjpwYXNz")]
    r1 = get(p, "/auth", auth)
    r2 = get(p, "/auth", auth)
    assert r1.body == b"response 1"
    if expect_stored:
        assert is_hit(r2) and r2.body == b"response 1" and o.n_requests == 1
    else:
        assert not is_hit(r2) and r2.body == b"response 2" and o.n_requests == 2
        # nor is the answer to an authorized request given to anyone else
        r3 = get(p, "/auth")
        assert not is_hit(r3) and r3.body == b"response 3"


def test_post_not_cached_and_invalidates(portico, origin):
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60")], body=numbered))
    p = portico(config(o.address))
    r1 = get(p, "/u", method="POST", body=b"x")
    r2 = get(p, "/u", method="POST", body=b"x")
    assert (r1.body, r2.body) == (b"response 1", b"response 2")
    assert not is_hit(r2) and not stored(r1)
    # a GET is stored ...
    assert get(p, "/u").body == b"response 3"
    assert is_hit(get(p, "/u")) and o.n_requests == 3
    # ... and a POST to the same URI invalidates it (RFC 9111 4.4)
    assert get(p, "/u", method="POST", body=b"y").body == b"response 4"
    r = get(p, "/u")
    assert not is_hit(r) and r.body == b"response 5", r.headers
    assert o.n_requests == 5


def test_no_cache_revalidates_every_time(portico, origin):
    body = text_body(3000)
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "no-cache, max-age=60")],
                        body=body, etag='"nc1"'))
    p = portico(config(o.address))
    for i in range(3):
        r = get(p, "/nc")
        assert r.status == 200 and r.body == body, r
    assert o.n_requests == 3
    # stored: requests after the first are conditional and get a 304 from the origin
    assert o.requests[1].header("if-none-match") == '"nc1"', o.requests[1].headers
    assert [q.answered for q in o.requests] == [200, 304, 304]


def test_request_no_store_bypasses(portico, origin):
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60")], body=numbered))
    p = portico(config(o.address))
    r = get(p, "/rns", [("Cache-Control", "no-store")])
    assert r.body == b"response 1" and not stored(r)
    # nothing of it was stored (RFC 9111 5.2.1.5)
    r = get(p, "/rns")
    assert r.body == b"response 2" and not is_hit(r)
    assert is_hit(get(p, "/rns"))
    assert o.n_requests == 2


@pytest.mark.parametrize("how", ["length", "chunked"])
def test_cut_response_not_stored(portico, origin, how):
    """An origin that dies in the middle of a body: the truncated object must
    not be served later as if it were whole."""
    body = text_body(100000, seed=13)

    def h(c, r):
        if r.index == 1:
            if how == "length":
                c.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=60\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(body) + body[:50000])
            else:
                c.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=60\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % 50000 + body[:50000] + b"\r\n")
            time.sleep(0.1)
            return False
        return scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60")], body=body)(c, r)
    o = origin(h)
    p = portico(config(o.address))
    r1 = get(p, "/cut")
    assert not (r1.complete and r1.body == body)
    time.sleep(0.2)
    r2 = get(p, "/cut")
    assert r2.status == 200 and r2.complete and r2.body == body, (r2.headers, len(r2.body))
    assert not is_hit(r2)
    assert o.n_requests == 2
    r3 = get(p, "/cut")
    assert is_hit(r3) and r3.body == body


# ---------------------------------------------------------------- freshness


def test_valid_gives_ttls(portico, origin):
    o = origin(by_path({
        "/ok": scripted(headers=[("Content-Type", "text/plain")], body=numbered),
        "/missing": scripted(status=404, headers=[("Content-Type", "text/plain")], body=numbered),
        "/forbidden": scripted(status=403, headers=[("Content-Type", "text/plain")], body=numbered),
    }))
    p = portico(config(o.address, cache="{valid: {200: 10m, 404: 2s}}"))
    a1, a2 = get(p, "/ok"), get(p, "/ok")
    assert a1.status == a2.status == 200 and a2.body == a1.body and is_hit(a2)
    m1, m2 = get(p, "/missing"), get(p, "/missing")
    assert m1.status == m2.status == 404 and m2.body == m1.body and is_hit(m2), m2.headers
    f1, f2 = get(p, "/forbidden"), get(p, "/forbidden")
    assert f1.status == f2.status == 403 and f2.body != f1.body and not is_hit(f2)
    assert o.paths() == ["/ok", "/missing", "/forbidden", "/forbidden"]
    time.sleep(3.1)
    # the 404's own TTL ran out; the 200's did not
    m3 = get(p, "/missing")
    assert m3.status == 404 and not is_hit(m3) and m3.body != m1.body
    a3 = get(p, "/ok")
    assert is_hit(a3) and a3.body == a1.body
    assert o.paths() == ["/ok", "/missing", "/forbidden", "/forbidden", "/missing"]


@pytest.mark.parametrize("valid", ["{any: 10m}", "{403: 10m}"])
def test_valid_any_or_listed_status(portico, origin, valid):
    """`valid` names the statuses to store (like proxy_cache_valid): a 403
    without freshness information is stored when `any` or 403 is listed."""
    o = origin(by_path({
        "/forbidden": scripted(status=403, headers=[("Content-Type", "text/plain")], body=numbered),
        "/gone": scripted(status=410, headers=[("Content-Type", "text/plain")], body=numbered),
    }))
    p = portico(config(o.address, cache="{valid: %s}" % valid))
    r1 = get(p, "/forbidden")
    r2 = get(p, "/forbidden")
    assert r1.status == r2.status == 403 and stored(r1) and is_hit(r2), (r1.headers, r2.headers)
    assert r2.body == b"response 1"
    g1, g2 = get(p, "/gone"), get(p, "/gone")
    assert g1.status == g2.status == 410
    # a status `valid` does not name is not stored
    assert is_hit(g2) == (valid == "{any: 10m}"), g2.headers
    assert o.n_requests == (2 if valid == "{any: 10m}" else 3)


def test_valid_does_not_override_origin(portico, origin):
    o = origin(by_path({
        "/nostore": scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "no-store")], body=numbered),
        "/short": scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=1")], body=numbered),
    }))
    p = portico(config(o.address, cache="{valid: {any: 10m, 200: 10m}}"))
    # `valid` is for responses without freshness information: no-store and
    # an explicit max-age are the origin's word
    get(p, "/nostore")
    assert not is_hit(get(p, "/nostore"))
    get(p, "/short")
    time.sleep(2.1)
    assert not is_hit(get(p, "/short"))
    assert o.paths() == ["/nostore", "/nostore", "/short", "/short"]


def test_ttl_expiry(portico, origin):
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=2")], body=numbered))
    p = portico(config(o.address))
    assert get(p, "/t").body == b"response 1"
    r = get(p, "/t")
    assert is_hit(r) and r.body == b"response 1"
    time.sleep(3.1)
    r = get(p, "/t")
    assert not is_hit(r) and r.body == b"response 2", r.headers
    assert o.n_requests == 2
    r = get(p, "/t")
    assert is_hit(r) and r.body == b"response 2"


def _http_date(t):
    return formatdate(t, usegmt=True)


def test_expires_and_date(portico, origin):
    now = time.time()
    o = origin(by_path({
        # Expires a minute after Date: fresh
        "/future": scripted(headers=lambda r: [("Content-Type", "text/plain"), ("Date", _http_date(time.time())),
                                               ("Expires", _http_date(time.time() + 60))], body=numbered),
        # Expires == Date: stale at once
        "/past": scripted(headers=lambda r: [("Content-Type", "text/plain"), ("Date", _http_date(time.time())),
                                             ("Expires", _http_date(time.time()))], body=numbered),
        # Date an hour ago, Expires two minutes after it: its age (an hour) is past its lifetime
        "/old": scripted(headers=[("Content-Type", "text/plain"), ("Date", _http_date(now - 3600)),
                                  ("Expires", _http_date(now - 3600 + 120))], body=numbered),
        # max-age wins over an Expires in the past
        "/maxage": scripted(headers=lambda r: [("Content-Type", "text/plain"), ("Date", _http_date(time.time())),
                                               ("Expires", _http_date(time.time() - 100)),
                                               ("Cache-Control", "max-age=60")], body=numbered),
        # an invalid Expires means already expired (RFC 9111 5.3)
        "/invalid": scripted(headers=[("Content-Type", "text/plain"), ("Expires", "0")], body=numbered),
    }))
    p = portico(config(o.address))
    for path, hit in [("/future", True), ("/past", False), ("/old", False), ("/maxage", True), ("/invalid", False)]:
        r1 = get(p, path)
        r2 = get(p, path)
        assert r1.status == r2.status == 200
        assert is_hit(r2) == hit, (path, r2.headers)
        assert (r2.body == r1.body) == hit, (path, r1.body, r2.body)
    assert o.paths() == ["/future", "/past", "/past", "/old", "/old", "/maxage", "/invalid", "/invalid"]


def test_age_from_origin_counts(portico, origin):
    """An Age from upstream is part of the current age: max-age=100 with Age: 99
    is fresh for at most a second or two more."""
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=100"), ("Age", "97")],
                        body=numbered))
    p = portico(config(o.address))
    get(p, "/age")
    r = get(p, "/age")
    assert is_hit(r) and int(r.header("age")) >= 97, r.headers
    time.sleep(4.1)
    r = get(p, "/age")
    assert not is_hit(r) and r.body == b"response 2"


@pytest.mark.parametrize("cc,hit", [("max-age=0, s-maxage=60", True), ("max-age=60, s-maxage=0", False)])
def test_s_maxage_over_max_age(portico, origin, cc, hit):
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", cc)], body=numbered))
    p = portico(config(o.address))
    get(p, "/s")
    r = get(p, "/s")
    assert is_hit(r) == hit, r.headers
    assert o.n_requests == (1 if hit else 2)


# ---------------------------------------------------------------- Vary


def test_vary_variants(portico, origin):
    def body(r):
        return ("lang=%s #%d" % (r.header("accept-language", "none"), r.index)).encode()
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60"),
                                 ("Vary", "Accept-Language")], body=body))
    p = portico(config(o.address))
    en = [("Accept-Language", "en")]
    fr = [("Accept-Language", "fr")]
    r = get(p, "/v", en)
    assert r.body == b"lang=en #1" and not is_hit(r)
    r = get(p, "/v", fr)
    assert r.body == b"lang=fr #2" and not is_hit(r)
    for _ in range(2):
        r = get(p, "/v", en)
        assert r.body == b"lang=en #1" and is_hit(r), r
        r = get(p, "/v", fr)
        assert r.body == b"lang=fr #2" and is_hit(r), r
    assert o.n_requests == 2
    # a request without the field is a third variant
    r = get(p, "/v")
    assert r.body == b"lang=none #3"
    assert get(p, "/v").body == b"lang=none #3"
    assert o.n_requests == 3


# ---------------------------------------------------------------- revalidation


def test_revalidation_with_304(portico, origin):
    body = text_body(50000)

    def cc(r):
        # the first answer goes stale at once; the 304 makes it fresh for a minute
        return [("Content-Type", "text/plain"), ("Cache-Control", "max-age=1" if r.index == 1 else "max-age=60")]
    o = origin(scripted(headers=cc, body=body, etag='"v1"'))
    p = portico(config(o.address))
    r1 = get(p, "/r")
    assert r1.status == 200 and r1.body == body and stored(r1)
    time.sleep(2.1)
    r2 = get(p, "/r")
    assert o.n_requests == 2
    sent = o.requests[1]
    assert sent.header("if-none-match") == '"v1"', sent.headers
    assert sent.answered == 304 and sent.body_sent == 0
    assert r2.status == 200 and r2.body == body, r2
    assert r2.header("etag") == '"v1"'
    v = cstatus(r2)
    assert "hit" in [t.strip() for t in v.split(";")] and "fwd-status=304" in v, r2.header("cache-status")
    # freshened by the 304's Cache-Control: a plain hit now
    r3 = get(p, "/r")
    assert is_hit(r3) and r3.body == body and o.n_requests == 2


def test_revalidation_with_new_content(portico, origin):
    """The origin answers a revalidation with a full 200 (the ETag changed):
    the new body is served and stored."""
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=1")],
                        body=numbered, etag=lambda r: '"e%d"' % r.index))
    p = portico(config(o.address))
    assert get(p, "/n").body == b"response 1"
    time.sleep(2.1)
    r = get(p, "/n")
    assert o.requests[1].header("if-none-match") == '"e1"'
    assert r.status == 200 and r.body == b"response 2" and r.header("etag") == '"e2"'


def test_client_conditional_answered_from_cache(portico, origin):
    body = text_body(4000)
    lm = _http_date(time.time() - 3600)
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60"),
                                 ("Last-Modified", lm)], body=body, etag='"abc"'))
    p = portico(config(o.address))
    assert get(p, "/cond").body == body
    with Conn(p.port) as c:
        c.send(req("GET", "/cond", [("If-None-Match", '"abc"')], host=HOST))
        r = c.read_response()
        assert r.status == 304 and r.body == b"", r
        assert r.header("etag") == '"abc"'
        # the connection goes on: nothing after the 304 head
        c.send(req("GET", "/cond", [("If-None-Match", '"other", "abc"')], host=HOST))
        assert c.read_response().status == 304
        c.send(req("GET", "/cond", [("If-None-Match", '"other"')], host=HOST))
        r = c.read_response()
        assert r.status == 200 and r.body == body and is_hit(r)
        c.send(req("GET", "/cond", [("If-Modified-Since", _http_date(time.time()))], host=HOST))
        assert c.read_response().status == 304
    assert o.n_requests == 1


# ---------------------------------------------------------------- stale


def test_stale_while_revalidate(portico, origin):
    def hdrs(r):
        cc = "max-age=1, stale-while-revalidate=30" if r.index == 1 else "max-age=60"
        return [("Content-Type", "text/plain"), ("Cache-Control", cc)]
    # the refresh is slow: a client that waited for it would notice
    o = origin(scripted(headers=hdrs, body=numbered, delay=lambda r: 0 if r.index == 1 else 1.0))
    p = portico(config(o.address))
    assert get(p, "/swr").body == b"response 1"
    time.sleep(2.1)
    t0 = time.monotonic()
    r = get(p, "/swr")
    elapsed = time.monotonic() - t0
    assert r.status == 200 and r.body == b"response 1", r
    assert "fwd=stale" in cstatus(r), r.header("cache-status")
    assert elapsed < 0.6 * SLOW, "stale answer waited %.2fs for the refresh" % elapsed
    # exactly one background request, even with more requests meanwhile
    assert get(p, "/swr").body == b"response 1"
    assert wait_for(lambda: o.n_requests >= 2, 3)
    assert wait_for(lambda: len(o.requests) >= 2 and getattr(o.requests[1], "body_sent", None) is not None, 3)
    time.sleep(0.3)
    assert o.n_requests == 2
    r = get(p, "/swr")
    assert r.body == b"response 2" and is_hit(r), r
    assert o.n_requests == 2


def test_stale_if_error_on_500(portico, origin):
    def st(r):
        return 200 if r.index == 1 else 500
    o = origin(scripted(status=st, headers=[("Content-Type", "text/plain"),
                                            ("Cache-Control", "max-age=1, stale-if-error=60")], body=numbered))
    p = portico(config(o.address))
    assert get(p, "/sie").body == b"response 1"
    time.sleep(2.1)
    r = get(p, "/sie")
    assert o.n_requests == 2
    assert r.status == 200 and r.body == b"response 1", r


@pytest.mark.parametrize("where", ["origin", "config"])
def test_stale_if_error_origin_down(portico, origin, where):
    cc = "max-age=1, stale-if-error=60" if where == "origin" else "max-age=1"
    cache = "true" if where == "origin" else "{stale_if_error: 60s}"
    body = text_body(10000)
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", cc)], body=body))
    p = portico(config(o.address, cache=cache))
    assert get(p, "/down").body == body
    o.stop()
    time.sleep(2.1)
    r = get(p, "/down")
    assert r.status == 200 and r.body == body, r


def test_no_stale_without_stale_if_error(portico, origin):
    def st(r):
        return 200 if r.index == 1 else 500
    o = origin(scripted(status=st, headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=1")],
                        body=numbered))
    p = portico(config(o.address))
    get(p, "/x")
    time.sleep(2.1)
    r = get(p, "/x")
    assert r.status == 500 and r.body == b"response 2"


# ---------------------------------------------------------------- collapsing


def test_collapse_50_concurrent_misses(portico, origin):
    body = text_body(64 * 1024)
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60")], body=body,
                        delay=0.5))
    p = portico(config(o.address, workers=2))
    n = 50
    barrier = threading.Barrier(n)
    results = [None] * n

    def client(i):
        try:
            with Conn(p.port, timeout=15) as c:
                barrier.wait(10)
                c.send(req("GET", "/collapse", host=HOST))
                r = c.read_response()
                results[i] = (r.status, hashlib.sha256(r.body).hexdigest(), r.complete)
        except Exception as e:  # reported below
            results[i] = repr(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    want = (200, hashlib.sha256(body).hexdigest(), True)
    bad = [r for r in results if r != want]
    assert not bad, bad[:5]
    assert o.n_requests == 1, o.n_requests


def test_collapsed_waiters_of_an_uncacheable_response(portico, origin):
    """Concurrent misses wait for the first fill; when the answer turns out
    not storable, every waiter still gets its own correct answer."""
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "private")], body=numbered,
                        delay=0.3))
    p = portico(config(o.address, workers=2))
    n = 8
    barrier = threading.Barrier(n)
    results = [None] * n

    def client(i):
        try:
            with Conn(p.port, timeout=20) as c:
                barrier.wait(10)
                c.send(req("GET", "/private", host=HOST))
                r = c.read_response()
                results[i] = (r.status, r.body)
        except Exception as e:
            results[i] = repr(e)

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - t0
    assert all(isinstance(r, tuple) and r[0] == 200 for r in results), results
    # each got a private answer of its own (nothing shared between clients)
    assert sorted(r[1] for r in results) == sorted(b"response %d" % i for i in range(1, n + 1)), results
    assert o.n_requests == n
    # Once the first answer shows the response is not storable there is no
    # fill left to wait for: the waiters go to the origin together (about two
    # origin delays), not one after the other (n delays, up to lock_timeout).
    assert elapsed < 1.5 * SLOW, "%d waiters took %.2fs: they were sent to the origin one at a time" % (n, elapsed)


# ---------------------------------------------------------------- Range


def test_range_from_cached_entry(portico, origin):
    body = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(102400))
    o = origin(scripted(headers=[("Content-Type", "application/octet-stream"), ("Cache-Control", "max-age=60")],
                        body=body))
    p = portico(config(o.address))
    assert get(p, "/range").body == body
    with Conn(p.port) as c:
        c.send(req("GET", "/range", [("Range", "bytes=10-19")], host=HOST))
        r = c.read_response()
        assert r.status == 206, r
        assert r.header("content-range") == "bytes 10-19/102400"
        assert r.body == body[10:20] and r.header("content-length") == "10"
        c.send(req("GET", "/range", [("Range", "bytes=-5")], host=HOST))
        r = c.read_response()
        assert r.status == 206 and r.body == body[-5:]
        assert r.header("content-range") == "bytes 102395-102399/102400"
        c.send(req("GET", "/range", [("Range", "bytes=102000-")], host=HOST))
        r = c.read_response()
        assert r.status == 206 and r.body == body[102000:]
        c.send(req("GET", "/range", [("Range", "bytes=200000-")], host=HOST))
        r = c.read_response()
        assert r.status == 416, r
        assert r.header("content-range") == "bytes */102400"
        # the connection is still in step after the 416
        c.send(req("GET", "/range", host=HOST))
        r = c.read_response()
        assert r.status == 200 and r.body == body
    assert o.n_requests == 1


def test_range_on_a_miss(portico, origin):
    """A Range request that misses: the client gets its range (or the whole
    200, which HTTP allows) and the full object is stored."""
    body = text_body(60000, seed=14)
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60"),
                                 ("Accept-Ranges", "bytes")], body=body))
    p = portico(config(o.address))
    r = get(p, "/rm", [("Range", "bytes=100-199")])
    if r.status == 206:
        assert r.body == body[100:200] and r.header("content-range") == "bytes 100-199/60000", r.headers
    else:
        assert r.status == 200 and r.body == body, r
    r = get(p, "/rm")
    assert is_hit(r) and r.body == body
    r = get(p, "/rm", [("Range", "bytes=59990-")])
    assert r.status == 206 and r.body == body[59990:]
    assert o.n_requests == 1


# ---------------------------------------------------------------- purge


def purge(admin, doc):
    r = request(admin, "POST", "/cache/purge", [("Content-Type", "application/json")], body=json.dumps(doc))
    assert r.status == 200, r
    return r.json()


def test_purge_exact_prefix_all(portico, origin):
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60")], body=numbered))
    admin = free_port()
    p = portico(config(o.address, top="admin: {listen: 127.0.0.1:%d}\n" % admin))
    paths = ["/a?x=1", "/a?x=2", "/b"]
    for path in paths:
        get(p, path)
    assert all(is_hit(get(p, path)) for path in paths)
    assert o.n_requests == 3
    # exact key: scheme://host (no port) path ? query
    assert purge(admin, {"key": "http://example.test/a?x=1"}) == {"purged": 1}
    assert not is_hit(get(p, "/a?x=1")) and o.n_requests == 4
    assert is_hit(get(p, "/a?x=2")) and is_hit(get(p, "/b"))
    # an exact key that matches nothing
    assert purge(admin, {"key": "http://example.test/a"}) == {"purged": 0}
    assert is_hit(get(p, "/a?x=2"))
    # prefix
    assert purge(admin, {"prefix": "http://example.test/a"}) == {"purged": 2}
    assert not is_hit(get(p, "/a?x=1")) and not is_hit(get(p, "/a?x=2"))
    assert is_hit(get(p, "/b"))
    assert o.n_requests == 6
    # everything
    assert purge(admin, {}) == {"purged": 3}
    for path in paths:
        assert not is_hit(get(p, path))
    assert o.n_requests == 9


def test_purge_key_has_host_without_port(portico, origin):
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60")], body=numbered))
    admin = free_port()
    p = portico(config(o.address, top="admin: {listen: 127.0.0.1:%d}\n" % admin))
    host = "Example.Test:%d" % p.port
    get(p, "/h", host=host)
    assert is_hit(get(p, "/h", host=host))
    assert purge(admin, {"key": "http://example.test/h"}) == {"purged": 1}
    assert not is_hit(get(p, "/h", host=host))
    assert o.n_requests == 2


def test_purge_bad_requests(portico, origin):
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60")], body=numbered))
    admin = free_port()
    p = portico(config(o.address, top="admin: {listen: 127.0.0.1:%d}\n" % admin))
    get(p, "/keep")
    for body in [b"not json", b'{"key": 5}', b"[1,2]"]:
        r = request(admin, "POST", "/cache/purge", [("Content-Type", "application/json")], body=body)
        assert r.status == 400, (body, r)
    assert is_hit(get(p, "/keep")), "a rejected purge removed something"


def test_custom_key_template(portico, origin):
    """key: "{path}" - the host and query are not part of the key."""
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60")], body=numbered))
    admin = free_port()
    p = portico(config(o.address, cache='{key: "{path}"}', top="admin: {listen: 127.0.0.1:%d}\n" % admin))
    assert get(p, "/k?a=1", host="one.test").body == b"response 1"
    r = get(p, "/k?b=2", host="two.test")
    assert is_hit(r) and r.body == b"response 1"
    assert purge(admin, {"key": "/k"}) == {"purged": 1}
    assert get(p, "/k").body == b"response 2"


# ---------------------------------------------------------------- disk tier


def disk_config(o, cache_dir, errlog=None):
    top = "cache_path: %s\ncache_disk_size: 64m\n" % cache_dir
    if errlog:
        top += "log:\n  error: %s\n" % errlog
    return config(o.address, top=top)


def test_disk_tier_survives_restart(portico, origin, tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    body = text_body(300000)
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=600"),
                                 ("X-Stored", "yes")], body=body, etag='"disk"'))
    p1 = portico(disk_config(o, cache_dir))
    assert get(p1, "/disk").body == body
    assert get(p1, "/small").status == 200
    assert is_hit(get(p1, "/disk"))
    assert p1.stop() == 0
    assert o.n_requests == 2
    p2 = portico(disk_config(o, cache_dir))
    r = get(p2, "/disk")
    assert r.status == 200 and is_hit(r), r.headers
    assert r.body == body and r.header("x-stored") == "yes" and r.header("etag") == '"disk"'
    assert is_hit(get(p2, "/small"))
    # a conditional request is answered from the disk entry too
    r = get(p2, "/disk", [("If-None-Match", '"disk"')])
    assert r.status == 304
    assert o.n_requests == 2


def test_disk_tier_vary_and_purge_across_restart(portico, origin, tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()

    def body(r):
        return ("lang=%s #%d " % (r.header("accept-language", "-"), r.index)).encode() + text_body(20000)
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=600"),
                                 ("Vary", "Accept-Language")], body=body))
    admin = free_port()
    cfg = config(o.address, top="cache_path: %s\nadmin: {listen: 127.0.0.1:%d}\n" % (cache_dir, admin))
    p1 = portico(cfg)
    en, fr = [("Accept-Language", "en")], [("Accept-Language", "fr")]
    assert get(p1, "/v", en).body.startswith(b"lang=en #1 ")
    assert get(p1, "/v", fr).body.startswith(b"lang=fr #2 ")
    assert get(p1, "/gone").status == 200
    purged = purge(admin, {"key": "http://example.test/gone"})["purged"]
    assert p1.stop() == 0
    p2 = portico(cfg)
    r = get(p2, "/v", fr)
    assert is_hit(r) and r.body.startswith(b"lang=fr #2 "), r.headers
    r = get(p2, "/v", en)
    assert is_hit(r) and r.body.startswith(b"lang=en #1 "), r.headers
    assert o.n_requests == 3
    # a purged entry does not come back from the disk
    r = get(p2, "/gone")
    assert not is_hit(r) and o.n_requests == 4, r.headers
    # one object purged, whichever tiers held it
    assert purged == 1, purged


def test_purge_of_a_varied_key(portico, origin):
    def body(r):
        return ("lang=%s #%d" % (r.header("accept-language", "-"), r.index)).encode()
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=600"),
                                 ("Vary", "Accept-Language")], body=body))
    admin = free_port()
    p = portico(config(o.address, top="admin: {listen: 127.0.0.1:%d}\n" % admin))
    en, fr = [("Accept-Language", "en")], [("Accept-Language", "fr")]
    get(p, "/pv", en)
    get(p, "/pv", fr)
    assert is_hit(get(p, "/pv", en)) and is_hit(get(p, "/pv", fr))
    assert purge(admin, {"key": "http://example.test/pv"})["purged"] >= 1
    assert get(p, "/pv", fr).body == b"lang=fr #3"
    assert get(p, "/pv", en).body == b"lang=en #4"
    assert o.n_requests == 4


def _reload(p, errlog, before):
    os.kill(p.pid, signal.SIGHUP)

    def done():
        with open(errlog) as f:
            t = f.read()
        return t.count("reloaded") + t.count("reload failed") > before
    assert wait_for(done, 5), "no reload outcome logged"
    with open(errlog) as f:
        assert "reload failed" not in f.read()


def test_disk_tier_survives_reload(portico, origin, tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    errlog = str(tmp_path / "error.log")
    body = text_body(100000, seed=3)
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=600")], body=body))
    p = portico(disk_config(o, cache_dir, errlog))
    assert get(p, "/reload").body == body
    _reload(p, errlog, 0)
    r = get(p, "/reload")
    assert is_hit(r) and r.body == body
    _reload(p, errlog, 1)
    r = get(p, "/reload")
    assert is_hit(r) and r.body == body
    assert o.n_requests == 1


def test_memory_cache_survives_reload(portico, origin, tmp_path):
    errlog = str(tmp_path / "error.log")
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=600")], body=numbered))
    p = portico(config(o.address, top="log:\n  error: %s\n" % errlog))
    get(p, "/m")
    _reload(p, errlog, 0)
    r = get(p, "/m")
    assert is_hit(r) and r.body == b"response 1"


# ---------------------------------------------------------------- sizes and streaming


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_over_max_object_size_passes_uncached(portico, origin, framing):
    body = text_body(200000, seed=5)
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60")], body=body,
                        framing=framing))
    p = portico(config(o.address, cache="{max_object_size: 64k}"))
    for _ in range(3):
        r = get(p, "/big")
        assert r.status == 200 and r.complete and r.body == body
        assert not is_hit(r)
    assert o.n_requests == 3
    # a small object on the same route is stored
    o2 = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60")],
                         body=b"small", framing=framing))
    p2 = portico(config(o2.address, cache="{max_object_size: 64k}"))
    get(p2, "/small")
    assert is_hit(get(p2, "/small")) and o2.n_requests == 1


def test_large_body_streams_while_stored(portico, origin):
    size = 5 * 1024 * 1024
    body = hashlib.sha256(b"seed").digest() * (size // 32)
    want = hashlib.sha256(body).hexdigest()
    # the origin stops for 1.5 s after 1 MiB: the client must have bytes before that
    o = origin(scripted(headers=[("Content-Type", "application/octet-stream"), ("Cache-Control", "max-age=60")],
                        body=body, pause_after=1024 * 1024, pause=1.5))
    p = portico(config(o.address, cache="{max_object_size: 16m}"))
    late = []

    def latecomer():
        # arrives while the fill is paused half way: waits for it, no second origin request
        r = request(p.port, "GET", "/five", host=HOST, timeout=20)
        late.append((r.status, hashlib.sha256(r.body).hexdigest()))
    t = threading.Thread(target=latecomer)
    with Conn(p.port, timeout=20) as c:
        t0 = time.monotonic()
        c.send(req("GET", "/five", host=HOST))
        head = c.read_until(b"\r\n\r\n")
        assert b" 200 " in head.split(b"\r\n")[0], head
        assert b"content-length: %d\r\n" % size in head.lower(), head
        sha = hashlib.sha256()
        got, first = 0, None
        while got < size:
            piece = c.read_some()
            assert piece, "closed after %d bytes" % got
            piece = piece[:size - got]
            sha.update(piece)
            got += len(piece)
            if first is None and got >= 512 * 1024:
                first = time.monotonic() - t0
                t.start()
        total = time.monotonic() - t0
    t.join(20)
    assert late == [(200, want)], late
    assert sha.hexdigest() == want
    assert total >= 1.4, "the origin's pause did not happen (%.2fs)" % total
    assert first < 1.2 * SLOW, "first 512 KiB took %.2fs: the body was held back while stored" % first
    r = request(p.port, "GET", "/five", host=HOST, timeout=20)
    assert r.status == 200 and hashlib.sha256(r.body).hexdigest() == want
    assert is_hit(r), r.headers
    assert o.n_requests == 1


def test_large_body_intact_and_hit(portico, origin):
    size = 5 * 1024 * 1024
    body = text_body(size, seed=9)
    want = hashlib.sha256(body).hexdigest()
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60")], body=body))
    p = portico(config(o.address, cache="{max_object_size: 16m}"))
    r1 = request(p.port, "GET", "/five", host=HOST, timeout=20)
    assert r1.status == 200 and hashlib.sha256(r1.body).hexdigest() == want and stored(r1)
    r2 = request(p.port, "GET", "/five", host=HOST, timeout=20)
    assert r2.status == 200 and is_hit(r2) and hashlib.sha256(r2.body).hexdigest() == want
    assert r2.header("content-length") == str(size)
    assert o.n_requests == 1


# ---------------------------------------------------------------- HTTP/2


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not found")
    ca = Pki(tmp_path_factory.mktemp("cachetls"))
    ca.leaf("h2", ["h2.example.test"])
    return ca


def h2_listener(mode, pki):
    if mode == "h2c":
        return "    h2c: true\n"
    leaf = pki.leaves["h2"]
    return ('    tls:\n      certificates:\n        - {cert: "%s", key: "%s"}\n'
            '      alpn: [h2, http/1.1]\n') % (leaf.cert, leaf.key)


@pytest.mark.parametrize("mode", ["h2c", "tls"])
def test_h2_miss_then_hit(portico, origin, pki, mode):
    body = text_body(70000, seed=11)
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60")], body=body,
                        etag='"h2"'))
    p = portico(config(o.address, listener=h2_listener(mode, pki)))
    tls = mode == "tls"
    with H2Client(p.port, tls=tls) as c:
        s1 = c.get("/h2")
        assert s1.status == 200 and bytes(s1.body) == body, s1
        assert "fwd=miss" in s1.header("cache-status", "") and "stored" in s1.header("cache-status", "")
        s2 = c.get("/h2")
        assert s2.status == 200 and bytes(s2.body) == body
        assert "hit" in s2.header("cache-status", ""), s2.headers
        assert s2.header("age") is not None
        assert s2.header("content-length") == str(len(body))
        # no connection-specific fields on a cached head
        assert not [k for k, _ in s2.headers if k in ("connection", "keep-alive", "transfer-encoding")]
        s3 = c.get("/h2", headers=[("if-none-match", '"h2"')])
        assert s3.status == 304 and bytes(s3.body) == b"" and s3.ended, s3
        s4 = c.get("/h2", headers=[("range", "bytes=100-199")])
        assert s4.status == 206 and bytes(s4.body) == body[100:200], s4
        # several hits in flight on one connection
        sids = [c.request("GET", "/h2") for _ in range(10)]
        for sid in sids:
            st = c.response(sid)
            assert st.status == 200 and bytes(st.body) == body
    assert o.n_requests == 1
    # the same entry serves HTTP/1.1 (the key has no port and no protocol)
    if not tls:
        r = get(p, "/h2", host="h2.example.test")
        assert is_hit(r) and r.body == body
        assert o.n_requests == 1


def test_h2_and_h1_collapse(portico, origin):
    body = text_body(30000, seed=12)
    o = origin(scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60")], body=body,
                        delay=0.5))
    p = portico(config(o.address, listener="    h2c: true\n"))
    results = []

    def h1():
        r = get(p, "/both", host="h2.example.test")
        results.append((r.status, r.body == body))

    t = threading.Thread(target=h1)
    with H2Client(p.port) as c:
        sids = [c.request("GET", "/both") for _ in range(5)]
        t.start()
        for sid in sids:
            st = c.response(sid)
            results.append((st.status, bytes(st.body) == body))
    t.join(10)
    assert results == [(200, True)] * 6
    assert o.n_requests == 1


# ---------------------------------------------------------------- access log


def test_access_log_cache_field(portico, origin, tmp_path):
    access = str(tmp_path / "access.log")
    o = origin(by_path({
        "/c": scripted(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=60")], body=numbered),
        "/swr": scripted(headers=[("Content-Type", "text/plain"),
                                  ("Cache-Control", "max-age=1, stale-while-revalidate=30")], body=numbered),
    }))
    top = "log:\n  access: %s\n" % access
    cfg = ("workers: 1\n%slisteners:\n  - name: web\n    listen: ${listen}\n"
           "upstreams:\n  app:\n    servers:\n      - {address: %s}\n"
           "routes:\n  - name: plain\n    match: {path: /plain}\n    upstream: app\n"
           "  - name: cached\n    upstream: app\n    cache: true\n") % (top, o.address)
    p = portico(cfg)
    get(p, "/c")
    get(p, "/c")
    get(p, "/c", method="POST", body=b"z")
    get(p, "/plain")
    get(p, "/swr")
    time.sleep(2.1)
    r = get(p, "/swr")
    assert "fwd=stale" in cstatus(r)
    assert wait_for(lambda: o.n_requests >= 5, 3)
    time.sleep(0.3)
    assert p.stop() == 0
    with open(access) as f:
        entries = [json.loads(ln) for ln in f.read().splitlines() if ln.strip()]
    got = [(e["method"], e["path"], e["cache"]) for e in entries]
    assert got[:5] == [("GET", "/c", "MISS"), ("GET", "/c", "HIT"), ("POST", "/c", "BYPASS"),
                       ("GET", "/plain", None), ("GET", "/swr", "MISS")], got
    # the stale answer (the background refresh may be logged too, in either order)
    assert ("GET", "/swr", "STALE") in got[5:], got
