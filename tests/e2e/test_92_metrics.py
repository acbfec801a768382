"""GET /metrics on the admin listener: the Prometheus text format (0.0.4)
checked by a strict parser below, exact request counts by route, method and
status class after a known set of requests on two workers, histogram
consistency (cumulative buckets, +Inf == _count, the right bucket for a slow
origin), bytes, connections by listener and protocol (HTTP/1.1 and h2c),
upstream server gauges and counters (requests, connect errors, retries,
draining, in flight), reloads by outcome, stable series across a reload,
TLS handshakes, the admin token and the per-worker totals."""
import math
import re
import signal
import threading
import time

import pytest

from lib.origin import by_path, echo, fixed
from lib.portico import SLOW, Conn, free_port, raw, req, request, wait_for

# ---------------------------------------------------------------- strict parser

NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class FormatError(AssertionError):
    pass


def _value(s, line):
    if s in ("+Inf", "-Inf", "NaN"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.match(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$", s):
        raise FormatError("bad value %r in %r" % (s, line))
    return float(s)


def _labels(s, i, line):
    """Parses '{a="b",...}' from s[i] == '{'; returns (dict, index after '}')."""
    labels = {}
    i += 1
    while True:
        if s[i] == "}":
            return labels, i + 1
        m = LABEL_RE.match(s, i)
        if not m:
            raise FormatError("bad label name in %r" % line)
        name = m.group(0)
        i = m.end()
        if s[i:i + 2] != '="':
            raise FormatError("expected =\" after %s in %r" % (name, line))
        i += 2
        val = []
        while True:
            c = s[i]
            if c == "\\":
                n = s[i + 1]
                if n not in '\\"n':
                    raise FormatError("bad escape \\%s in %r" % (n, line))
                val.append("\n" if n == "n" else n)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise FormatError("raw newline in label value")
            else:
                val.append(c)
                i += 1
        if name in labels:
            raise FormatError("label %s twice in %r" % (name, line))
        labels[name] = "".join(val)
        if s[i] == ",":
            i += 1
            if s[i] == "}":
                raise FormatError("trailing comma in %r" % line)
        elif s[i] != "}":
            raise FormatError("expected , or } in %r" % line)


def parse(text):
    """Parses an exposition strictly. Returns {family: {"type", "help", "samples":
    [(name, labels, value)]}}. Checks: names, escapes, HELP/TYPE at most once
    and before the family's samples, each family's samples contiguous, no
    duplicate series, histogram structure (cumulative buckets ending in +Inf
    equal to _count, _sum present), counters >= 0 and named *_total."""
    if not text.endswith("\n"):
        raise FormatError("the text must end with a line feed")
    fams = {}
    order = []
    seen_series = set()
    current = None
    closed = set()

    def family_of(name):
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and base in fams and fams[base]["type"] == "histogram":
                return base
        return name

    for line in text.split("\n")[:-1]:
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME_RE.match(name):
                    raise FormatError("bad metric name %r" % name)
                f = fams.setdefault(name, {"type": None, "help": None, "samples": []})
                if f["samples"]:
                    raise FormatError("%s for %s after its samples" % (parts[1], name))
                key = parts[1].lower()
                if f[key] is not None:
                    raise FormatError("second %s for %s" % (parts[1], name))
                if name not in order:
                    order.append(name)
                if parts[1] == "TYPE":
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise FormatError("bad TYPE line %r" % line)
                    f["type"] = parts[3]
                else:
                    f["help"] = parts[3] if len(parts) == 4 else ""
            continue
        m = re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*", line)
        if not m:
            raise FormatError("bad sample line %r" % line)
        name = m.group(0)
        i = m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = _labels(line + "\n", i, line)
        if i >= len(line) or line[i] != " ":
            raise FormatError("expected a space before the value in %r" % line)
        rest = line[i + 1:].split(" ")
        if len(rest) not in (1, 2):
            raise FormatError("bad value part in %r" % line)
        value = _value(rest[0], line)
        fam = family_of(name)
        if fam not in fams:
            raise FormatError("sample %s without TYPE" % name)
        if fam != current:
            if fam in closed:
                raise FormatError("samples of %s are not contiguous" % fam)
            if current is not None:
                closed.add(current)
            current = fam
        key = (name, tuple(sorted(labels.items())))
        if key in seen_series:
            raise FormatError("duplicate series %r" % (key,))
        seen_series.add(key)
        f = fams[fam]
        if f["type"] == "histogram" and name == fam:
            raise FormatError("histogram %s has a bare sample" % fam)
        if f["type"] == "counter":
            if not fam.endswith("_total"):
                raise FormatError("counter %s is not named *_total" % fam)
            if not value >= 0:
                raise FormatError("negative counter %r" % line)
        f["samples"].append((name, labels, value))

    for fam, f in fams.items():
        if f["type"] is None or f["help"] is None:
            raise FormatError("%s lacks TYPE or HELP" % fam)
        if f["type"] == "histogram":
            check_histogram(fam, f["samples"])
    return fams


def check_histogram(fam, samples):
    groups = {}
    for name, labels, value in samples:
        base = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(base, {"buckets": [], "sum": None, "count": None})
        if name == fam + "_bucket":
            if "le" not in labels:
                raise FormatError("%s bucket without le" % fam)
            g["buckets"].append((_value(labels["le"], labels["le"]), value))
        elif name == fam + "_sum":
            g["sum"] = value
        elif name == fam + "_count":
            g["count"] = value
    for base, g in groups.items():
        b = g["buckets"]
        if not b or g["sum"] is None or g["count"] is None:
            raise FormatError("%s%r incomplete" % (fam, base))
        les = [le for le, _ in b]
        if les != sorted(les) or len(set(les)) != len(les):
            raise FormatError("%s%r: le not increasing" % (fam, base))
        if les[-1] != math.inf:
            raise FormatError("%s%r: no +Inf bucket" % (fam, base))
        counts = [c for _, c in b]
        if counts != sorted(counts):
            raise FormatError("%s%r: buckets not cumulative" % (fam, base))
        if counts[-1] != g["count"]:
            raise FormatError("%s%r: +Inf %s != count %s" % (fam, base, counts[-1], g["count"]))
        if g["count"] and not g["sum"] > 0:
            raise FormatError("%s%r: zero sum" % (fam, base))


def value(fams, name, **labels):
    """The value of the series `name` with exactly these labels (None if absent)."""
    for fam in fams.values():
        for n, lab, v in fam["samples"]:
            if n == name and lab == labels:
                return v
    return None


def total(fams, name, **match):
    """Sum of the series `name` whose labels include `match`."""
    s = 0
    for fam in fams.values():
        for n, lab, v in fam["samples"]:
            if n == name and all(lab.get(k) == x for k, x in match.items()):
                s += v
    return s


def scrape(admin, headers=None):
    r = request(admin, "GET", "/metrics", headers=headers)
    assert r.status == 200, r
    assert r.header("content-type").startswith("text/plain; version=0.0.4"), r.header("content-type")
    return parse(r.body.decode("utf-8"))


def settled(admin, n, headers=None):
    """A scrape once n requests were counted: a request is counted right
    after its last byte left, so the client may be faster than the count."""
    box = []

    def ok():
        box[:] = [scrape(admin, headers)]
        return total(box[0], "portico_worker_requests_total") == n
    assert wait_for(ok), "requests counted: %s, want %d" % (total(box[0], "portico_worker_requests_total"), n)
    return box[0]


# ---------------------------------------------------------------- parser self-test

def test_parser_rejects_bad_text():
    good = ('# HELP x_total a\n# TYPE x_total counter\nx_total{a="q\\"\\\\\\n"} 1\n'
            '# HELP h b\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3\nh_count 2\n')
    fams = parse(good)
    assert value(fams, "x_total", a='q"\\\n') == 1
    bad = [
        good.replace("x_total{", "x_total{1a=\"\",", 1),              # bad label name
        good.replace('\\"', '\\t', 1),                                # bad escape
        good + 'x_total{a="z"} 1\n',                                  # not contiguous
        good.replace("h_count 2", "h_count 3"),                       # +Inf != count
        good.replace('h_bucket{le="1"} 1', 'h_bucket{le="1"} 5'),     # not cumulative
        good.replace('h_bucket{le="+Inf"} 2\n', ""),                  # no +Inf
        good.replace("# TYPE x_total counter\n", ""),                 # no TYPE
        good.replace("x_total{", "x_total{b=\"1\",b=\"2\",", 1),      # label twice
        good + "# TYPE x_total counter\n",                            # TYPE twice / late
        good[:-1],                                                    # no final LF
        good.replace("} 1\n", "} one\n", 1),                          # bad value
    ]
    for b in bad:
        with pytest.raises(FormatError):
            parse(b)


# ---------------------------------------------------------------- configs

def config(admin, origin_address, extra="", workers=2, listener_extra="", upstream_extra="", token=None):
    tok = ", token_file: %s" % token if token else ""
    return ("workers: %d\n%s"
            "admin: {listen: 127.0.0.1:%d%s}\n"
            "listeners:\n  - name: web\n    listen: ${listen}\n%s"
            "upstreams:\n  app:\n%s    servers:\n      - {address: %s}\n"
            "routes:\n"
            "  - name: static\n    match: {path: /static}\n    respond: {status: 200, body: \"static body\"}\n"
            "  - name: moved\n    match: {path: /old}\n    redirect: {to: \"https://example.test/new\", status: 301}\n"
            "  - name: api\n    match: {path: /api/}\n    upstream: app\n") % (
        workers, extra, admin, tok, listener_extra, upstream_extra, origin_address)


def test_request_counts_by_route_method_status(portico, origin):
    o = origin(by_path({"/api/fail": fixed(503, body=b"no"), "/api/slow": echo(delay=0.3)}, default=echo()))
    admin = free_port()
    p = portico(config(admin, o.address))
    plan = ([("GET", "/api/x", 200)] * 5 + [("POST", "/api/x", 200)] * 3 + [("PUT", "/api/x", 200)] * 2 +
            [("DELETE", "/api/x", 200)] + [("PATCH", "/api/x", 200)] * 2 + [("GET", "/api/fail", 503)] * 4 +
            [("HEAD", "/static", 200)] * 2 + [("GET", "/static", 200)] * 3 + [("GET", "/old/x", 301)] * 2 +
            [("GET", "/nowhere", 404)] * 3 + [("OPTIONS", "/nowhere", 404)])
    sent = 0
    for method, path, status in plan:
        body = b"x" * 10 if method in ("POST", "PUT", "PATCH") else None
        r = request(p.port, method, path, body=body)
        assert r.status == status, (method, path, r)
        sent += len(req(method, path, body=body))
    # one connection, a few requests (keep-alive): counted the same
    with Conn(p.port) as c:
        for _ in range(3):
            c.send(req("GET", "/static"))
            assert c.read_response().status == 200

    f = settled(admin, len(plan) + 3)
    want = {
        ("api", "GET", "2xx"): 5, ("api", "POST", "2xx"): 3, ("api", "PUT", "2xx"): 2,
        ("api", "DELETE", "2xx"): 1, ("api", "OTHER", "2xx"): 2, ("api", "GET", "5xx"): 4,
        ("static", "HEAD", "2xx"): 2, ("static", "GET", "2xx"): 6, ("moved", "GET", "3xx"): 2,
        ("", "GET", "4xx"): 3, ("", "OTHER", "4xx"): 1,
    }
    got = {(lab["route"], lab["method"], lab["status_class"]): v
           for n, lab, v in f["portico_requests_total"]["samples"]}
    assert got == want
    n = sum(want.values())
    # per worker totals add up, over two workers
    assert total(f, "portico_worker_requests_total") == n
    assert len(f["portico_worker_requests_total"]["samples"]) == 2
    # bytes: everything the client sent, at least the bodies it got
    assert total(f, "portico_bytes_received_total") == sent + 3 * len(req("GET", "/static"))
    assert value(f, "portico_bytes_sent_total", route="static") >= 6 * len(b"static body")
    # the server took every proxied request; no error, no retry
    sv = {"upstream": "app", "server": o.address}
    assert value(f, "portico_upstream_server_requests_total", **sv) == 17
    assert value(f, "portico_upstream_connect_errors_total", **sv) == 0
    assert value(f, "portico_upstream_retries_total", **sv) == 0
    assert value(f, "portico_upstream_server_up", **sv) == 1
    assert value(f, "portico_upstream_server_state", state="up", **sv) == 1
    assert value(f, "portico_upstream_server_state", state="draining", **sv) == 0
    (info,) = f["portico_build_info"]["samples"]
    assert info[1]["version"] and info[2] == 1


def test_histograms(portico, origin):
    o = origin(by_path({"/api/slow": echo(delay=0.3)}, default=echo()))
    admin = free_port()
    p = portico(config(admin, o.address, workers=1))
    for _ in range(4):
        assert request(p.port, "GET", "/api/fast").status == 200
    for _ in range(2):
        assert request(p.port, "GET", "/api/slow").status == 200
    for _ in range(3):
        assert request(p.port, "GET", "/static").status == 200
    f = settled(admin, 9)  # parse() checked cumulative buckets, +Inf == count, sums
    d = "portico_request_duration_seconds"
    assert value(f, d + "_count", route="api") == 6
    assert value(f, d + "_count", route="static") == 3
    # the slow ones: above 250 ms, at most 10 s; the fast ones well below
    assert value(f, d + "_bucket", route="api", le="0.25") == 4
    assert value(f, d + "_bucket", route="api", le="10") == 6
    assert 0.6 <= value(f, d + "_sum", route="api") < 0.6 + 4 * 0.25 + 1.0 * SLOW
    assert value(f, d + "_bucket", route="static", le="0.25") == 3
    u = "portico_upstream_response_seconds"
    assert value(f, u + "_count", upstream="app") == 6
    assert value(f, u + "_bucket", upstream="app", le="0.25") == 4
    assert value(f, u + "_sum", upstream="app") >= 0.6
    # every route's histogram has the same bucket bounds
    les = {}
    for n, lab, v in f[d]["samples"]:
        if n == d + "_bucket":
            les.setdefault(lab["route"], []).append(lab["le"])
    assert len(set(map(tuple, les.values()))) == 1 and les["api"][-1] == "+Inf"


def test_connections_gauge_http1_and_h2c(portico, origin):
    o = origin(echo())
    admin = free_port()
    p = portico(config(admin, o.address, listener_extra="    h2c: true\n"))

    def active(proto):
        return value(scrape(admin), "portico_connections_active", listener="web", protocol=proto)

    # (the harness connected once to see the port open)
    assert wait_for(lambda: active("http1") == 0 and active("h2") == 0)
    before = value(scrape(admin), "portico_connections_total", listener="web")
    conns = []
    for _ in range(3):
        c = Conn(p.port)
        c.send(req("GET", "/static"))
        assert c.read_response().status == 200
        conns.append(c)
    from lib.h2client import H2Client
    h = H2Client(p.port)
    st = h.get("/api/h2")
    assert st.status == 200
    h2b = H2Client(p.port)
    assert h2b.get("/static").status == 200
    f = settled(admin, 5)
    assert value(f, "portico_connections_active", listener="web", protocol="http1") == 3
    assert value(f, "portico_connections_active", listener="web", protocol="h2") == 2
    assert value(f, "portico_connections_total", listener="web") == before + 5
    assert total(f, "portico_worker_connections_active") == 5
    assert value(f, "portico_requests_total", route="api", method="GET", status_class="2xx") == 1
    for c in conns:
        c.close()
    h.close()
    assert wait_for(lambda: active("http1") == 0 and active("h2") == 1)
    h2b.close()
    assert wait_for(lambda: active("h2") == 0)
    f = scrape(admin)
    assert value(f, "portico_connections_total", listener="web") == before + 5


def test_server_errors_retries_drain_in_flight(portico, origin, dead_port):
    live = origin(by_path({"/api/slow": echo(delay=1.0)}, default=echo()), name="live")
    dead = dead_port()
    admin = free_port()
    cfg = ("workers: 1\nadmin: {listen: 127.0.0.1:%d}\n"
           "listeners:\n  - {name: web, listen: ${listen}}\n"
           "upstreams:\n  app:\n    retries: 1\n    retry_on: [connect]\n"
           "    servers:\n      - {address: %s}\n      - {address: %s}\n"
           "routes:\n  - {name: api, upstream: app}\n") % (admin, dead.address, live.address)
    p = portico(cfg)
    for _ in range(6):
        assert request(p.port, "GET", "/api/x").status == 200
    f = settled(admin, 6)
    d = {"upstream": "app", "server": dead.address}
    lv = {"upstream": "app", "server": live.address}
    errors = value(f, "portico_upstream_connect_errors_total", **d)
    assert errors >= 1
    # each connect error was followed by a retry on the live server
    assert value(f, "portico_upstream_retries_total", **d) == errors
    assert value(f, "portico_upstream_retries_total", **lv) == 0
    assert value(f, "portico_upstream_server_requests_total", **lv) == 6
    assert value(f, "portico_upstream_server_requests_total", **d) == 0
    # the refused server is skipped for fail_timeout: shown DOWN, health still up
    assert value(f, "portico_upstream_server_state", state="down", **d) == 1
    assert value(f, "portico_upstream_server_up", **d) == 1

    # in flight: a slow request holds the live server
    t = threading.Thread(target=lambda: request(p.port, "GET", "/api/slow", timeout=10))
    t.start()
    try:
        assert wait_for(lambda: value(scrape(admin), "portico_upstream_server_in_flight", **lv) == 1)
    finally:
        t.join(15)
    assert wait_for(lambda: value(scrape(admin), "portico_upstream_server_in_flight", **lv) == 0)

    # draining shows at once
    r = request(admin, "POST", "/upstreams/app/servers/%s/drain" % live.address)
    assert r.status == 200
    f = scrape(admin)
    assert value(f, "portico_upstream_server_state", state="draining", **lv) == 1
    assert value(f, "portico_upstream_server_state", state="up", **lv) == 0


def test_reloads_and_stable_series(portico, origin):
    o = origin(echo())
    admin = free_port()
    p = portico(config(admin, o.address, workers=1))
    for _ in range(3):
        assert request(p.port, "GET", "/api/x").status == 200
    assert request(p.port, "GET", "/static").status == 200
    f = settled(admin, 4)
    assert value(f, "portico_config_reloads_total", result="ok") == 0
    assert value(f, "portico_config_reloads_total", result="failed") == 0

    # a reload that renames "static" and reorders the routes
    text = open(p.config_path).read()
    new = text.replace("name: static", "name: static2")
    head, routes = new.split("routes:\n")
    blocks = ["  - " + b for b in routes.split("  - ")[1:]]
    with open(p.config_path, "w") as fh:
        fh.write(head + "routes:\n" + "".join(reversed(blocks)))
    p.kill(signal.SIGHUP)
    assert wait_for(lambda: value(scrape(admin), "portico_config_reloads_total", result="ok") == 1)
    for _ in range(2):
        assert request(p.port, "GET", "/api/x").status == 200
    assert request(p.port, "GET", "/static").status == 200
    f = settled(admin, 7)
    # api kept counting; the new name starts at its own series; the old name stays
    assert value(f, "portico_requests_total", route="api", method="GET", status_class="2xx") == 5
    assert value(f, "portico_requests_total", route="static2", method="GET", status_class="2xx") == 1
    assert value(f, "portico_requests_total", route="static", method="GET", status_class="2xx") == 1
    assert value(f, "portico_request_duration_seconds_count", route="static") == 1
    assert value(f, "portico_upstream_server_requests_total", upstream="app", server=o.address) == 5

    # a broken file: counted as failed, nothing else changes
    with open(p.config_path, "w") as fh:
        fh.write(new + "\nbogus_key: 1\n")
    p.kill(signal.SIGHUP)
    assert wait_for(lambda: value(scrape(admin), "portico_config_reloads_total", result="failed") == 1)
    f = scrape(admin)
    assert value(f, "portico_config_reloads_total", result="ok") == 1
    assert request(p.port, "GET", "/static").status == 200


def test_tls_handshakes(portico, origin, tmp_path):
    import shutil
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not found")
    from lib.certs import Pki
    from lib.portico import curl
    pki = Pki(tmp_path / "pki")
    leaf = pki.leaf("m", ["m.example.test"])
    o = origin(echo())
    admin = free_port()
    cfg = ("workers: 1\nadmin: {listen: 127.0.0.1:%d}\n"
           "listeners:\n  - name: secure\n    listen: ${listen}\n    tls:\n      certificates:\n"
           "        - {cert: \"%s\", key: \"%s\"}\n"
           "upstreams:\n  app:\n    servers: [{address: %s}]\nroutes:\n  - upstream: app\n") % (
        admin, leaf.cert, leaf.key, o.address)
    p = portico(cfg)
    for _ in range(2):
        r = curl("--cacert", pki.cert, "--resolve", "m.example.test:%d:127.0.0.1" % p.port,
                 "-o", "/dev/null", "-w", "%{http_code}", "https://m.example.test:%d/" % p.port)
        assert r.stdout == b"200", r
    raw(p.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=1.0)  # plain text to TLS: fails
    assert wait_for(lambda: value(scrape(admin), "portico_tls_handshake_failures_total") >= 1)
    f = scrape(admin)
    assert value(f, "portico_tls_handshakes_total") == 2
    # the harness' probe of the port, two curls, the plain-text one
    assert value(f, "portico_connections_total", listener="secure") == 4


def test_token_and_methods(portico, origin, tmp_path):
    o = origin(echo())
    admin = free_port()
    tok = tmp_path / "token"
    tok.write_text("s3cret-token-0123456789\n")
    p = portico(config(admin, o.address, workers=1, token=str(tok)))
    assert request(p.port, "GET", "/static").status == 200
    r = request(admin, "GET", "/metrics")
    assert r.status == 401 and r.header("www-authenticate") == "Bearer"
    r = request(admin, "GET", "/metrics", headers=[("Authorization", "Bearer wrong")])
    assert r.status == 401
    f = settled(admin, 1, headers=[("Authorization", "Bearer s3cret-token-0123456789")])
    assert value(f, "portico_requests_total", route="static", method="GET", status_class="2xx") == 1
    auth = [("Authorization", "Bearer s3cret-token-0123456789")]
    r = request(admin, "POST", "/metrics", headers=auth, body=b"")
    assert r.status == 405 and r.header("allow") == "GET, HEAD"
    r = request(admin, "HEAD", "/metrics", headers=auth)
    assert r.status == 200 and r.body == b""
    # the scrape itself is not a proxied request
    f = scrape(admin, headers=auth)
    assert total(f, "portico_requests_total") == 1
