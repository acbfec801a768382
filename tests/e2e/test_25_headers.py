"""Forwarding headers, hop-by-hop hygiene, header rules, respond/redirect
routes and the router."""
import pytest

from lib.origin import echo, fixed, raw_response
from lib.portico import Conn, curl, proxy_config, req, request


def hdrs(doc, name):
    return [v for k, v in doc["headers"] if k.lower() == name.lower()]


def one(doc, name):
    v = hdrs(doc, name)
    assert len(v) == 1, (name, doc["headers"])
    return v[0]


@pytest.fixture
def untrusted(portico, origin):
    o = origin(echo())
    p = portico(proxy_config([o.address], extra="trusted_proxies: [10.9.8.0/24]\n"))
    return p, o


@pytest.fixture
def trusted(portico, origin):
    o = origin(echo())
    p = portico(proxy_config([o.address], extra="trusted_proxies: [127.0.0.1/32]\n"))
    return p, o


def test_host_passed_unchanged(untrusted):
    p, o = untrusted
    r = request(p.port, "GET", "/", host="Api.Example.TEST:1234")
    assert one(r.json(), "host") == "Api.Example.TEST:1234"


def test_forwarded_headers_untrusted_peer(untrusted):
    p, o = untrusted
    r = request(p.port, "GET", "/f", [("X-Forwarded-For", "1.2.3.4"), ("X-Real-IP", "6.6.6.6"),
                                      ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.test")],
                host="site.test")
    doc = r.json()
    assert one(doc, "x-forwarded-for") == "127.0.0.1"
    assert one(doc, "x-forwarded-proto") == "http"
    assert one(doc, "x-forwarded-host") == "site.test"
    assert one(doc, "x-real-ip") == "127.0.0.1"


def test_forwarded_for_set_without_client_value(untrusted):
    p, o = untrusted
    doc = request(p.port, "GET", "/").json()
    assert one(doc, "x-forwarded-for") == "127.0.0.1"


def test_forwarded_for_appended_for_trusted_peer(trusted):
    p, o = trusted
    doc = request(p.port, "GET", "/", [("X-Forwarded-For", "1.2.3.4")]).json()
    assert one(doc, "x-forwarded-for") == "1.2.3.4, 127.0.0.1"
    doc = request(p.port, "GET", "/").json()
    assert one(doc, "x-forwarded-for") == "127.0.0.1"


def test_request_id_generated(untrusted):
    p, o = untrusted
    r1 = request(p.port, "GET", "/id")
    r2 = request(p.port, "GET", "/id")
    id1 = r1.header("x-request-id")
    assert id1, r1
    assert one(r1.json(), "x-request-id") == id1
    assert r2.header("x-request-id") and r2.header("x-request-id") != id1


def test_request_id_passed_through(untrusted):
    p, o = untrusted
    r = request(p.port, "GET", "/id", [("X-Request-Id", "client-chosen-42")])
    assert r.header("x-request-id") == "client-chosen-42"
    assert one(r.json(), "x-request-id") == "client-chosen-42"


REQ_HOP = [("Connection", "X-Foo, keep-alive"), ("X-Foo", "1"), ("Keep-Alive", "timeout=5"),
           ("Proxy-Connection", "keep-alive"), ("TE", "trailers"), ("Trailer", "X-T"), ("Upgrade", "h2c"),
           ("X-Kept", "yes")]


def assert_no_hop(headers, named=("x-foo",)):
    names = [k.lower() for k, _ in headers]
    for h in ("keep-alive", "proxy-connection", "te", "trailer", "upgrade", "transfer-encoding") + tuple(named):
        assert h not in names, (h, headers)
    for k, v in headers:
        if k.lower() == "connection":
            toks = {t.strip().lower() for t in v.split(",")}
            assert toks <= {"keep-alive", "close"}, headers


def test_hop_by_hop_request_headers_removed(untrusted):
    p, o = untrusted
    doc = request(p.port, "GET", "/hop", REQ_HOP).json()
    assert_no_hop(doc["headers"])
    assert one(doc, "x-kept") == "yes"


def test_connection_named_fields_removed_several(untrusted):
    p, o = untrusted
    doc = request(p.port, "GET", "/hop", [("Connection", "X-A"), ("Connection", "X-B"), ("X-A", "1"), ("X-B", "2"),
                                          ("X-C", "3")]).json()
    assert_no_hop(doc["headers"], named=("x-a", "x-b"))
    assert one(doc, "x-c") == "3"


def test_hop_by_hop_response_headers_removed(portico, origin):
    o = origin(fixed(200, [("Connection", "X-Bar"), ("X-Bar", "1"), ("Keep-Alive", "timeout=5"),
                           ("Proxy-Connection", "keep-alive"), ("Upgrade", "foo"), ("X-Kept", "yes")], b"ok"))
    p = portico(proxy_config([o.address]))
    with Conn(p.port) as c:
        c.send(req("GET", "/"))
        r = c.read_response()
        assert r.body == b"ok"
        assert_no_hop(r.headers, named=("x-bar",))
        assert r.header("x-kept") == "yes"
        # still keep-alive with the client
        c.send(req("GET", "/"))
        assert c.read_response().body == b"ok"


def test_te_response_header_removed(portico, origin):
    o = origin(raw_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTE: x\r\nX-Kept: 1\r\n\r\nok"))
    p = portico(proxy_config([o.address]))
    r = request(p.port, "GET", "/")
    assert r.body == b"ok" and r.header("x-kept") == "1"
    assert r.header("te") is None


RULES = """\
workers: 1
listeners:
  - name: web
    listen: ${listen}
upstreams:
  app:
    servers:
      - {address: ${o}}
routes:
  - name: rules
    match: {path: /r/}
    upstream: app
    headers:
      request:
        set:
          X-Client: "{client_ip}"
          X-Host: "{host}"
          X-Path: "{path}"
          X-Query: "{query}"
          X-Scheme: "{scheme}"
          X-Rid: "{request_id}"
          X-Method: "{method}"
          X-UA: "ua={header.User-Agent}"
          X-Combo: "{method} {scheme}://{host}{path}?{query}"
          X-Replace: new
        add:
          X-Multi: added
        remove: [X-Debug, X-Also-Gone]
      response:
        set:
          Server: portico-test
          X-Resp-Path: "{path}"
        add:
          X-Added: second
        remove: [X-Powered-By]
"""


@pytest.fixture
def rules(portico, origin):
    o = origin(echo(headers=[("Server", "origin/1"), ("X-Powered-By", "php"), ("X-Added", "first")]))
    p = portico(RULES, o=o.address)
    return p, o


def test_request_header_rules(rules):
    p, o = rules
    r = request(p.port, "GET", "/r/a/b?x=1&y=2", [("User-Agent", "e2e/1"), ("X-Replace", "old"),
                                                  ("X-Multi", "orig"), ("X-Debug", "1"), ("X-Also-Gone", "2"),
                                                  ("X-Request-Id", "rid-7")], host="h.example.test")
    assert r.status == 200
    doc = r.json()
    assert one(doc, "x-client") == "127.0.0.1"
    assert one(doc, "x-host") == "h.example.test"
    assert one(doc, "x-path") == "/r/a/b"
    assert one(doc, "x-query") == "x=1&y=2"
    assert one(doc, "x-scheme") == "http"
    assert one(doc, "x-rid") == "rid-7"
    assert one(doc, "x-method") == "GET"
    assert one(doc, "x-ua") == "ua=e2e/1"
    assert one(doc, "x-combo") == "GET http://h.example.test/r/a/b?x=1&y=2"
    assert one(doc, "x-replace") == "new"
    assert sorted(hdrs(doc, "x-multi")) == ["added", "orig"]
    assert hdrs(doc, "x-debug") == [] and hdrs(doc, "x-also-gone") == []


def test_request_id_placeholder_generated(rules):
    p, o = rules
    r = request(p.port, "GET", "/r/")
    rid = r.header("x-request-id")
    assert rid and one(r.json(), "x-rid") == rid


def test_header_placeholder_missing_header_is_empty(rules):
    p, o = rules
    with Conn(p.port) as c:
        c.send(b"GET /r/ HTTP/1.1\r\nHost: example.test\r\n\r\n")
        doc = c.read_response().json()
    assert one(doc, "x-ua") == "ua="


def test_response_header_rules(rules):
    p, o = rules
    r = request(p.port, "GET", "/r/resp?q=1")
    assert r.status == 200
    assert r.headers_all("server") == ["portico-test"]
    assert r.header("x-powered-by") is None
    assert sorted(r.headers_all("x-added")) == ["first", "second"]
    assert r.header("x-resp-path") == "/r/resp"


def test_header_rules_only_on_their_route(portico, origin):
    o = origin(echo(headers=[("X-Powered-By", "php")]))
    cfg = RULES + "  - match: {path: /}\n    upstream: app\n"
    p = portico(cfg, o=o.address)
    r = request(p.port, "GET", "/other", [("X-Debug", "1")])
    assert r.header("x-powered-by") == "php"
    assert one(r.json(), "x-debug") == "1"
    assert hdrs(r.json(), "x-client") == []


ACTIONS = """\
workers: 1
listeners:
  - name: web
    listen: ${listen}
routes:
  - match: {path: /tea}
    respond: {status: 418, body: "I am a teapot\\n", content_type: text/x-tea}
  - match: {path: /plain}
    respond: {status: 200, body: "plain body"}
  - match: {path: /empty}
    respond: {status: 204}
  - match: {path: /old/}
    redirect: {to: "https://{host}/new{path}?{query}", status: 301}
  - match: {path: /go}
    redirect: {to: "http://elsewhere.test/landing"}
  - match: {path: /withrules}
    respond: {status: 200, body: "r"}
    headers:
      response: {set: {X-Rule: "{method}"}}
"""


@pytest.fixture
def actions(portico):
    return portico(ACTIONS)


def test_respond_route(actions):
    r = request(actions.port, "GET", "/tea")
    assert r.status == 418
    assert r.body == b"I am a teapot\n"
    assert r.header("content-type") == "text/x-tea"
    assert r.header("content-length") == str(len(b"I am a teapot\n"))


def test_respond_default_content_type(actions):
    r = request(actions.port, "GET", "/plain")
    assert r.status == 200 and r.body == b"plain body"
    assert r.header("content-type", "").startswith("text/plain")


def test_respond_keeps_connection(actions):
    with Conn(actions.port) as c:
        c.send(req("GET", "/tea") + req("GET", "/plain") + req("HEAD", "/plain"))
        assert c.read_response().status == 418
        assert c.read_response().body == b"plain body"
        r = c.read_response("HEAD")
        assert r.status == 200 and r.body == b""
        assert c.still_open(0.2)


def test_respond_204(actions):
    with Conn(actions.port) as c:
        c.send(req("GET", "/empty") + req("GET", "/plain"))
        assert c.read_response().status == 204
        assert c.read_response().body == b"plain body"


def test_respond_response_header_rules(actions):
    r = request(actions.port, "GET", "/withrules")
    assert r.header("x-rule") == "GET"


def test_redirect_route(actions):
    r = request(actions.port, "GET", "/old/page?a=1", host="site.test")
    assert r.status == 301
    assert r.header("location") == "https://site.test/new/old/page?a=1"


def test_redirect_default_302(actions):
    r = request(actions.port, "GET", "/go")
    assert r.status == 302
    assert r.header("location") == "http://elsewhere.test/landing"
    rc = curl("-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "http://127.0.0.1:%d/go" % actions.port)
    assert rc.stdout == b"302 http://elsewhere.test/landing"


ROUTER = """\
workers: 1
listeners:
  - name: web
    listen: ${listen}
routes:
  - match: {host: exact.example.test, path: /h/}
    respond: {status: 200, body: exact}
  - match: {host: "*.wild.test", path: /h/}
    respond: {status: 200, body: wild}
  - match: {path: "=/exact"}
    respond: {status: 200, body: eq}
  - match: {path: "~^/re/[0-9]+$$"}
    respond: {status: 200, body: re}
  - match: {path: /api/, methods: [POST, PUT]}
    respond: {status: 200, body: api-write}
  - match: {path: /api/}
    respond: {status: 200, body: api-any}
  - match: {path: /first/}
    respond: {status: 200, body: first}
  - match: {path: /first/}
    respond: {status: 200, body: second}
  - match: {path: /first/deeper/}
    respond: {status: 200, body: deeper}
"""


@pytest.fixture
def router(portico):
    return portico(ROUTER)


@pytest.mark.parametrize("method,path,host,expect", [
    ("GET", "/h/x", "exact.example.test", "exact"),
    ("GET", "/h/x", "EXACT.Example.Test", "exact"),
    ("GET", "/h/x", "exact.example.test:8080", "exact"),
    ("GET", "/h/x", "other.example.test", None),
    ("GET", "/h/x", "a.wild.test", "wild"),
    ("GET", "/h/x", "deep.a.wild.test", "wild"),
    ("GET", "/h/x", "wild.test", None),
    ("GET", "/h/x", "awild.test", None),
    ("GET", "/exact", "x.test", "eq"),
    ("GET", "/exact?q=1", "x.test", "eq"),
    ("GET", "/exact/", "x.test", None),
    ("GET", "/exactly", "x.test", None),
    ("GET", "/re/123", "x.test", "re"),
    ("GET", "/re/12a", "x.test", None),
    ("GET", "/re/", "x.test", None),
    ("POST", "/api/v1", "x.test", "api-write"),
    ("PUT", "/api/v1", "x.test", "api-write"),
    ("GET", "/api/v1", "x.test", "api-any"),
    ("DELETE", "/api/v1", "x.test", "api-any"),
    ("GET", "/api", "x.test", None),
    ("GET", "/first/x", "x.test", "first"),
    ("GET", "/first/deeper/x", "x.test", "first"),
    ("GET", "/nothing", "x.test", None),
    ("GET", "/", "x.test", None),
])
def test_router(router, method, path, host, expect):
    r = request(router.port, method, path, host=host, body=b"" if method in ("POST", "PUT") else None)
    if expect is None:
        assert r.status == 404, r
    else:
        assert r.status == 200 and r.body == expect.encode(), r
