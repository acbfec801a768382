"""Upstream TLS: portico as a TLS client of its upstreams (`upstreams.X.tls`).

Verification against a CA file, the system store (`tls: true`) or not at
all (`verify: false`); SNI (`sni`, the server's host name, none for an IP
literal, where the certificate's IP SAN is checked); failures treated like a
refused connection (warn line "upstream ADDR: tls: ...", 502 or a retry on
another server); client certificates (mTLS to the upstream); session
resumption across connections and the keep-alive pool; pooling; large
bodies both ways; config errors from `portico -t`.

The origins are Python ssl servers (lib/tls_origin.py) that record, per
connection, the SNI they saw, whether the session was resumed and the
client certificate's subject. Certificates are made once per session with
the openssl CLI. Traffic goes to 127.0.0.1 only.
"""
import hashlib
import os
import shutil
import ssl
import threading

import pytest

from lib import portico as P
from lib.certs import Pki
from lib.origin import MiB, by_path, count_body, echo, fixed, stream
from lib.portico import Conn, req, request, run_cli, wait_for
from lib.tls_origin import TlsOrigin, ip_leaf

# ---------------------------------------------------------------- certificates


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not found")
    d = tmp_path_factory.mktemp("uptls")
    ca = Pki(d, "ca", "Portico Upstream Test CA")
    ip_leaf(ca, "origin", dns=["localhost"], ips=["127.0.0.1"])
    ip_leaf(ca, "dns_only", dns=["localhost"])           # no IP SAN
    other = Pki(d, "other-ca", "Some Other CA")
    ip_leaf(other, "stranger", dns=["localhost"], ips=["127.0.0.1"])
    cca = Pki(d, "client-ca", "Portico Upstream Client CA")
    cca.leaf("client", [], subject="/C=DE/O=Portico Tests/CN=portico upstream client", client=True)
    # A client certificate the origin does not trust.
    other.leaf("bad_client", [], subject="/O=Elsewhere/CN=intruder", client=True)
    return {"dir": str(d), "ca": ca, "other": other, "cca": cca}


@pytest.fixture
def tls_origin():
    made = []

    def make(leaf, handler=None, **kw):
        o = TlsOrigin(leaf.cert, leaf.key, handler=handler, **kw)
        made.append(o)
        return o.start()

    yield make
    for o in made:
        o.stop()


def flow(d):
    """A dict as a YAML flow mapping (strings quoted, booleans bare)."""
    parts = []
    for k, v in d.items():
        if isinstance(v, bool):
            parts.append("%s: %s" % (k, "true" if v else "false"))
        else:
            parts.append('%s: "%s"' % (k, v))
    return "{" + ", ".join(parts) + "}"


def up_config(addresses, tls, upstream_extra="", extra="", workers=1):
    """One listener, upstream `app` with `tls` (a dict or a scalar) and
    `addresses`, one route; the error log goes to ${err}."""
    if isinstance(addresses, str):
        addresses = [addresses]
    tls_text = flow(tls) if isinstance(tls, dict) else tls
    servers = "".join("      - {address: %s}\n" % a for a in addresses)
    ue = "".join("    %s\n" % ln for ln in upstream_extra.splitlines() if ln.strip())
    return ("workers: %d\n%slog:\n  error: ${err}\n  level: info\n"
            "listeners:\n  - {name: web, listen: ${listen}}\n"
            "upstreams:\n  app:\n    tls: %s\n%s    servers:\n%s"
            "routes:\n  - upstream: app\n") % (workers, extra, tls_text, ue, servers)


def start(portico, tmp_path, addresses, tls, **kw):
    errlog = str(tmp_path / ("error-%d.log" % len(os.listdir(str(tmp_path)))))
    p = portico(up_config(addresses, tls, **kw), err=errlog)
    p.errlog = errlog
    return p


def errlog(p):
    try:
        with open(p.errlog, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def wait_log(p, *needles, timeout=5.0):
    """The error log once it holds every needle (or whatever it holds at the timeout)."""
    wait_for(lambda: all(n in errlog(p) for n in needles), timeout)
    return errlog(p)


def get(p, path="/", **kw):
    return request(p.port, "GET", path, **kw)


def doc(r):
    import json
    return json.loads(r.body)


# ---------------------------------------------------------------- verification, SNI

def test_ca_and_sni(pki, portico, tls_origin, tmp_path):
    o = tls_origin(pki["ca"].leaves["origin"])
    p = start(portico, tmp_path, o.address, {"ca": pki["ca"].cert, "sni": "localhost"})
    r = get(p, "/hello?x=1")
    assert r.status == 200, (r, errlog(p))
    d = doc(r)
    assert d["path"] == "/hello" and d["query"] == "x=1"
    assert o.n_requests == 1
    hs = o.handshakes[0]
    assert hs["ok"], hs
    assert hs["sni"] == "localhost", hs
    assert hs["version"] in ("TLSv1.2", "TLSv1.3"), hs
    # The request's Host goes through unchanged (the SNI is not the Host).
    assert [v for k, v in d["headers"] if k.lower() == "host"] == ["example.test"]
    assert "tls:" not in errlog(p)


def test_ip_literal_no_sni_ip_san(pki, portico, tls_origin, tmp_path):
    """Address 127.0.0.1:PORT, no `sni`: no SNI is sent and the certificate's
    IP SAN 127.0.0.1 is what verifies."""
    o = tls_origin(pki["ca"].leaves["origin"])
    p = start(portico, tmp_path, o.address, {"ca": pki["ca"].cert})
    for i in range(3):
        r = get(p, "/ip%d" % i)
        assert r.status == 200, (r, errlog(p))
    hs = o.handshakes[0]
    assert hs["ok"] and hs["sni_seen"], hs
    assert hs["sni"] is None, hs
    assert o.n_requests == 3


def test_ip_literal_without_ip_san_fails(pki, portico, tls_origin, tmp_path):
    """A certificate naming only `localhost` does not verify for 127.0.0.1."""
    o = tls_origin(pki["ca"].leaves["dns_only"])
    p = start(portico, tmp_path, o.address, {"ca": pki["ca"].cert})
    r = get(p, "/x")
    assert r.status == 502, r
    assert o.n_requests == 0
    log = wait_log(p, "certificate verify failed")
    assert "upstream %s: tls:" % o.address in log and "certificate verify failed" in log, log
    # The same certificate verifies when the name to check is `localhost`.
    p2 = start(portico, tmp_path, o.address, {"ca": pki["ca"].cert, "sni": "localhost"})
    assert get(p2, "/y").status == 200, errlog(p2)
    assert o.n_requests == 1


def test_hostname_address_sends_sni(pki, portico, tls_origin, tmp_path):
    """Address localhost:PORT: SNI and verification name are `localhost`."""
    o = tls_origin(pki["ca"].leaves["dns_only"])
    p = start(portico, tmp_path, "localhost:%d" % o.port, {"ca": pki["ca"].cert})
    r = get(p, "/named")
    assert r.status == 200, (r, errlog(p))
    assert o.handshakes[0]["sni"] == "localhost", o.handshakes


@pytest.mark.parametrize("case", ["other_ca", "wrong_name"])
def test_verification_failure_then_verify_false(pki, portico, tls_origin, tmp_path, case):
    if case == "other_ca":
        o = tls_origin(pki["other"].leaves["stranger"])
        tls = {"ca": pki["ca"].cert, "sni": "localhost"}
    else:
        o = tls_origin(pki["ca"].leaves["origin"])
        tls = {"ca": pki["ca"].cert, "sni": "wrong.example"}
    p = start(portico, tmp_path, o.address, tls, upstream_extra="retries: 0")
    r = get(p, "/v")
    assert r.status == 502, r
    assert o.n_requests == 0, o.requests
    assert o.n_connections >= 1
    log = wait_log(p, "certificate verify failed")
    assert "upstream %s: tls:" % o.address in log, log
    assert "certificate verify failed" in log, log
    # Same origin, verification off: works (and the SNI is still sent).
    tls["verify"] = False
    p2 = start(portico, tmp_path, o.address, tls)
    r = get(p2, "/nv")
    assert r.status == 200, (r, errlog(p2))
    assert doc(r)["path"] == "/nv"
    assert o.n_requests == 1
    assert o.handshakes[-1]["ok"] and o.handshakes[-1]["sni"] == tls["sni"], o.handshakes
    assert "tls:" not in errlog(p2)


def test_verify_false_without_ca(pki, portico, tls_origin, tmp_path):
    o = tls_origin(pki["other"].leaves["stranger"])
    p = start(portico, tmp_path, o.address, {"verify": False})
    assert get(p, "/a").status == 200, errlog(p)
    assert o.n_requests == 1 and o.handshakes[0]["sni"] is None


def test_tls_true_uses_system_store(pki, portico, tls_origin, tmp_path):
    """`tls: true` verifies against the system trust store: a private CA fails."""
    o = tls_origin(pki["ca"].leaves["origin"])
    p = start(portico, tmp_path, o.address, "true", upstream_extra="retries: 0")
    r = get(p, "/sys")
    assert r.status == 502, r
    assert o.n_requests == 0
    log = wait_log(p, "certificate verify failed")
    assert "upstream %s: tls: certificate verify failed" % o.address in log, log
    # The origin did see a TLS client (the handshake reached it and failed).
    assert wait_for(lambda: o.n_handshakes_failed >= 1, 3), o.handshakes


def test_tls_false_is_plain(pki, portico, origin, tmp_path):
    o = origin(echo())
    p = start(portico, tmp_path, o.address, "false")
    assert get(p, "/plain").status == 200
    assert o.n_requests == 1


class RawServer:
    """Accepts connections on 127.0.0.1; for each, `action(sock)` in a thread."""

    def __init__(self, action):
        import socket
        self.action = action
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.n_connections = 0
        self.received = bytearray()
        self.stopping = threading.Event()
        self.conns = []
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self):
        import socket
        while not self.stopping.is_set():
            try:
                s, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            self.n_connections += 1
            self.conns.append(s)
            s.settimeout(10)
            threading.Thread(target=self.action, args=(self, s), daemon=True).start()

    def stop(self):
        self.stopping.set()
        self.sock.close()
        for s in self.conns:
            try:
                s.close()
            except OSError:
                pass
        self.t.join(2)


@pytest.fixture
def raw_server():
    made = []

    def make(action):
        s = RawServer(action)
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


def answer_plain_http(srv, s):
    try:
        srv.received += s.recv(65536)
        s.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    except OSError:
        pass
    s.close()


def say_nothing(srv, s):
    try:
        srv.received += s.recv(65536)
    except OSError:
        pass
    srv.stopping.wait(15)


def test_plain_origin_with_tls_on(pki, portico, raw_server, tmp_path):
    """A server that does not speak TLS (answers the ClientHello with a plain
    HTTP 400): the handshake fails, 502, and what it got was a ClientHello."""
    srv = raw_server(answer_plain_http)
    p = start(portico, tmp_path, srv.address, {"ca": pki["ca"].cert}, upstream_extra="retries: 0")
    r = get(p, "/nottls")
    assert r.status == 502, r
    assert srv.n_connections == 1
    assert srv.received[:1] == b"\x16", bytes(srv.received[:16])  # a TLS handshake record
    assert b"/nottls" not in srv.received
    log = wait_log(p, "tls:")
    assert "upstream %s: tls:" % srv.address in log, log


def test_handshake_timeout(pki, portico, raw_server, tmp_path):
    """A server that accepts and never answers the ClientHello: the handshake
    is bounded by the connect timeout (504, like a connect that never completes)."""
    srv = raw_server(say_nothing)
    p = start(portico, tmp_path, srv.address, {"ca": pki["ca"].cert},
              upstream_extra="retries: 0\ntimeouts: {upstream_connect: 500ms}")
    import time
    t0 = time.monotonic()
    r = get(p, "/silent", timeout=10)
    took = time.monotonic() - t0
    assert r.status == 504, r
    assert 0.4 < took < 5 * P.SLOW, took
    log = wait_log(p, "tls handshake")
    assert "upstream %s: connect timeout (tls handshake)" % srv.address in log, log
    assert b"/silent" not in srv.received


def test_tls_failure_retries_on_another_server(pki, portico, tls_origin, tmp_path):
    """A server whose certificate does not verify is like a refused one: the
    request goes to the next server, the bad one is skipped for fail_timeout."""
    bad = tls_origin(pki["other"].leaves["stranger"], name="bad")
    good = tls_origin(pki["ca"].leaves["origin"], name="good")
    p = start(portico, tmp_path, [bad.address, good.address], {"ca": pki["ca"].cert},
              upstream_extra="retries: 1\nfail_timeout: 30s")
    for i in range(6):
        r = get(p, "/r%d" % i)
        assert r.status == 200, (i, r, errlog(p))
        assert r.header("x-origin") == "good"
    assert good.n_requests == 6 and bad.n_requests == 0
    # Marked failed after the first attempt: not tried again within fail_timeout.
    assert bad.n_connections == 1, bad.handshakes
    log = wait_log(p, "upstream %s: tls:" % bad.address)
    assert log.count("upstream %s: tls:" % bad.address) == 1, log
    assert "upstream %s: tls:" % good.address not in log


@pytest.mark.parametrize("kind", ["tcp", "http"])
def test_health_checks_on_tls_upstream(pki, portico, tls_origin, tmp_path, kind):
    """Active checks of a TLS upstream: a healthy TLS server stays UP. A tcp
    check is a connect; an http check must speak TLS to it (a plain-HTTP
    check of a TLS port can only fail and would take every server DOWN)."""
    import time
    o = tls_origin(pki["ca"].leaves["origin"])
    health = "health: {type: tcp, interval: 100ms, timeout: 1s, fall: 2, rise: 1}" if kind == "tcp" else \
        "health: {type: http, uri: /hc, interval: 100ms, timeout: 1s, fall: 2, rise: 1}"
    p = start(portico, tmp_path, o.address, {"ca": pki["ca"].cert}, upstream_extra=health)
    time.sleep(1.0 * P.SLOW)  # ~10 check rounds: far beyond fall
    for i in range(3):
        r = get(p, "/h%d" % i)
        assert r.status == 200, (kind, r, errlog(p), o.handshakes[-3:])
    if kind == "http":
        checks = [r for r in o.requests if r.path == "/hc"]
        assert checks, ("no check reached the origin over TLS", o.handshakes[-3:])
        assert checks[0].header("user-agent") == "portico-health-check"


# ---------------------------------------------------------------- client certificates

@pytest.mark.parametrize("max_version", [None, ssl.TLSVersion.TLSv1_2], ids=["tls13", "tls12"])
def test_client_certificate(pki, portico, tls_origin, tmp_path, max_version):
    cca = pki["cca"]
    o = tls_origin(pki["ca"].leaves["origin"], client_ca=cca.cert, max_version=max_version)
    # Without a client certificate: refused by the origin, 502, no request read.
    p = start(portico, tmp_path, o.address, {"ca": pki["ca"].cert}, upstream_extra="retries: 0")
    r = get(p, "/nocert")
    assert r.status == 502, r
    assert o.n_requests == 0
    assert wait_for(lambda: o.n_handshakes_failed >= 1, 3), o.handshakes
    if max_version == ssl.TLSVersion.TLSv1_2:
        # With TLS 1.2 the client sees the alert during its handshake.
        log = wait_log(p, "tls:")
        assert "upstream %s: tls:" % o.address in log, log
    # A client certificate the origin does not trust: refused as well.
    bad = pki["other"].leaves["bad_client"]
    p2 = start(portico, tmp_path, o.address, {"ca": pki["ca"].cert, "cert": bad.cert, "key": bad.key},
               upstream_extra="retries: 0")
    assert get(p2, "/badcert").status == 502
    assert o.n_requests == 0
    # With the right one: works, and the origin saw its subject.
    cl = cca.leaves["client"]
    p3 = start(portico, tmp_path, o.address, {"ca": pki["ca"].cert, "cert": cl.cert, "key": cl.key})
    for i in range(2):
        r = get(p3, "/withcert%d" % i)
        assert r.status == 200, (r, errlog(p3))
    assert o.n_requests == 2
    good = [h for h in o.handshakes if h["ok"]]
    assert good, o.handshakes
    for h in good:
        assert h["peer_subject"] == {"countryName": "DE", "organizationName": "Portico Tests",
                                     "commonName": "portico upstream client"}, h


def test_client_certificate_relative_paths(pki, portico, tls_origin, tmp_path):
    """ca, cert and key relative to the config file's directory, whatever the cwd."""
    cca = pki["cca"]
    o = tls_origin(pki["ca"].leaves["origin"], client_ca=cca.cert)
    d = tmp_path / "conf"
    (d / "certs").mkdir(parents=True)
    cl = cca.leaves["client"]
    shutil.copy(cl.cert, str(d / "certs" / "client.pem"))
    shutil.copy(cl.key, str(d / "certs" / "client.key"))
    shutil.copy(pki["ca"].cert, str(d / "certs" / "ca.pem"))
    port = P.free_port()
    text = ("shutdown_grace: 2s\nworkers: 1\nlisteners:\n  - {name: web, listen: 127.0.0.1:%d}\n"
            "upstreams:\n  app:\n    tls: {ca: certs/ca.pem, cert: certs/client.pem, key: certs/client.key}\n"
            "    servers:\n      - {address: %s}\nroutes:\n  - upstream: app\n") % (port, o.address)
    path = d / "portico.yaml"
    path.write_text(text)
    r = run_cli(["-t", "-c", str(path)], cwd="/")
    assert r.returncode == 0, r.stderr
    p = portico(None, args=["-c", str(path)])
    p.port = port
    assert P.wait_port(port, 10 * P.SLOW, p.proc), p.stderr()
    r = get(p, "/rel")
    assert r.status == 200, (r, p.stderr())
    assert o.handshakes[-1]["peer_subject"]["commonName"] == "portico upstream client"


# ---------------------------------------------------------------- sessions and pooling

@pytest.mark.parametrize("max_version", [None, ssl.TLSVersion.TLSv1_2], ids=["tls13", "tls12"])
def test_session_resumption_new_connections(pki, portico, tls_origin, tmp_path, max_version):
    """keepalive: 0 makes every request a new connection; after the first,
    each offers the latest session and the origin resumes it."""
    o = tls_origin(pki["ca"].leaves["origin"], max_version=max_version)
    p = start(portico, tmp_path, o.address, {"ca": pki["ca"].cert}, upstream_extra="keepalive: 0")
    n = 6
    for i in range(n):
        r = get(p, "/s%d" % i)
        assert r.status == 200, (r, errlog(p))
    assert o.n_connections == n, o.handshakes
    reused = o.reused()
    assert len(reused) == n, o.handshakes
    want = "TLSv1.2" if max_version else "TLSv1.3"
    assert all(h["version"] == want for h in o.handshakes), o.handshakes
    assert reused[0] is False, reused
    assert all(reused[1:]), reused


def test_session_shared_across_pool(pki, portico, tls_origin, tmp_path):
    """The session a pooled connection got is offered by the next new
    connection to the same server while the first is still pooled or busy."""
    o = tls_origin(pki["ca"].leaves["origin"], handler=echo(delay=0.6, slow_paths=["/slow"]))
    p = start(portico, tmp_path, o.address, {"ca": pki["ca"].cert})
    assert get(p, "/first").status == 200
    assert o.n_connections == 1
    # Two at once: one takes the pooled connection, the other opens a new one.
    results = []

    def one(i):
        results.append(get(p, "/slow%d" % i, timeout=10).status)
    ts = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert results == [200, 200], results
    assert o.n_connections == 2, o.handshakes
    assert o.reused() == [False, True], o.handshakes


def test_pooling_over_tls(pki, portico, tls_origin, tmp_path):
    o = tls_origin(pki["ca"].leaves["origin"])
    p = start(portico, tmp_path, o.address, {"ca": pki["ca"].cert})
    # 20 sequential requests on one client connection, then 20 on fresh client connections.
    with Conn(p.port) as c:
        for i in range(20):
            c.send(req("GET", "/k%d" % i))
            r = c.read_response()
            assert r.status == 200, r
            assert doc(r)["path"] == "/k%d" % i
    for i in range(20):
        assert get(p, "/n%d" % i).status == 200
    assert o.n_requests == 40
    assert o.n_connections <= 2, o.handshakes
    assert len(o.handshakes) == o.n_connections
    # Several requests ran on one upstream connection.
    assert max(r.seq_on_conn for r in o.requests) >= 20


@pytest.mark.parametrize("pause", [0.2, 0.0], ids=["idle", "back_to_back"])
def test_origin_closes_pooled_tls_connection(pki, portico, tls_origin, tmp_path, pause):
    """The origin closes each connection after its response (without saying
    Connection: close): the pooled TLS connection is dead, and the next
    request must still work (a new connection, resumed)."""
    import time
    o = tls_origin(pki["ca"].leaves["origin"], handler=fixed(200, body=b"once", keep=False))
    p = start(portico, tmp_path, o.address, {"ca": pki["ca"].cert})
    for i in range(8):
        r = get(p, "/c%d" % i)
        assert r.status == 200 and r.body == b"once", (i, r, errlog(p))
        if pause:
            time.sleep(pause)
    assert o.n_requests == 8
    reused = o.reused()
    assert reused[0] is False and all(reused[1:]), o.handshakes


def expected_stream_sha(size, chunk=MiB):
    block = bytes(range(256)) * (chunk // 256)
    h = hashlib.sha256()
    left = size
    while left:
        n = min(left, len(block))
        h.update(block[:n])
        left -= n
    return h.hexdigest()


def test_large_bodies_both_ways(pki, portico, tls_origin, tmp_path):
    import json
    h = by_path({"/upload": count_body(), "/big": stream(8 * MiB)})
    h.streaming = True
    o = tls_origin(pki["ca"].leaves["origin"], handler=h)
    p = start(portico, tmp_path, o.address, {"ca": pki["ca"].cert},
              extra="limits:\n  max_body_bytes: 0\n")
    blob = os.urandom(8 * MiB + 321)
    with Conn(p.port, timeout=60) as c:
        c.send(req("GET", "/big"))
        r = c.read_response()
        assert r.status == 200 and r.complete, (r.status, len(r.body))
        assert len(r.body) == 8 * MiB
        assert hashlib.sha256(r.body).hexdigest() == expected_stream_sha(8 * MiB)
        c.send(req("POST", "/upload", body=blob))
        r = c.read_response("POST")
        assert r.status == 200, r
        d = json.loads(r.body)
        assert d["bytes"] == len(blob) and d["sha256"] == hashlib.sha256(blob).hexdigest(), d
        # And once more down on the same client connection (a pooled TLS connection).
        c.send(req("GET", "/big"))
        r = c.read_response()
        assert r.status == 200 and len(r.body) == 8 * MiB
        assert hashlib.sha256(r.body).hexdigest() == expected_stream_sha(8 * MiB)
    assert o.n_requests == 3


# ---------------------------------------------------------------- config errors

def check(tmp_path, tls, name="t.yaml"):
    text = ("listeners:\n  - {name: web, listen: 127.0.0.1:1}\n"
            "upstreams:\n  app:\n    tls: %s\n    servers:\n      - {address: 127.0.0.1:2}\n"
            "routes:\n  - upstream: app\n") % (flow(tls) if isinstance(tls, dict) else tls)
    path = tmp_path / name
    path.write_text(text)
    r = run_cli(["-t", "-c", str(path)])
    return r, r.stderr.decode("utf-8", "replace"), str(path)


def test_config_valid(pki, tmp_path):
    cl = pki["cca"].leaves["client"]
    for tls in ("true", "false", {"ca": pki["ca"].cert}, {"verify": False},
                {"ca": pki["ca"].cert, "sni": "localhost", "cert": cl.cert, "key": cl.key}):
        r, err, _ = check(tmp_path, tls)
        assert r.returncode == 0, (tls, err)
        assert r.stdout.strip() == b"ok", (tls, r.stdout)


@pytest.mark.parametrize("which", ["cert", "key"])
def test_config_cert_and_key_go_together(pki, tmp_path, which):
    cl = pki["cca"].leaves["client"]
    r, err, path = check(tmp_path, {"ca": pki["ca"].cert, which: getattr(cl, which)})
    assert r.returncode == 1, err
    assert "'cert' and 'key' go together" in err, err
    assert path in err


def test_config_unknown_key(pki, tmp_path):
    r, err, path = check(tmp_path, {"ca": pki["ca"].cert, "ciphers": "ALL"})
    assert r.returncode == 1, err
    assert "unknown key 'ciphers' in upstream tls" in err, err
    assert "%s:5:" % path in err, err


def test_config_bad_values(pki, tmp_path):
    for tls, what in (("maybe", "maybe"), ({"verify": "sometimes"}, "sometimes"), ('{sni: ""}', "sni")):
        r, err, _ = check(tmp_path, tls)
        assert r.returncode == 1, (tls, err)
        assert err.strip(), tls


def test_config_missing_ca_file(pki, tmp_path):
    missing = str(tmp_path / "nope" / "ca.pem")
    r, err, path = check(tmp_path, {"ca": missing})
    assert r.returncode == 1, err
    assert missing in err, err
    assert path in err, err


def test_config_missing_ca_relative_named_resolved(pki, tmp_path):
    r, err, path = check(tmp_path, {"ca": "certs/none.pem"})
    assert r.returncode == 1, err
    assert str(tmp_path / "certs" / "none.pem") in err, err


def test_config_bad_client_cert_or_key(pki, tmp_path):
    cl = pki["cca"].leaves["client"]
    other = pki["other"].leaves["bad_client"]
    missing = str(tmp_path / "missing.pem")
    r, err, _ = check(tmp_path, {"cert": missing, "key": cl.key})
    assert r.returncode == 1 and missing in err, err
    # A key that is not the certificate's.
    r, err, _ = check(tmp_path, {"cert": cl.cert, "key": other.key})
    assert r.returncode == 1, err
    assert other.key in err, err


def test_config_error_refuses_to_start(pki, portico, tmp_path):
    missing = str(tmp_path / "nope.pem")
    p = portico(up_config("127.0.0.1:2", {"ca": missing}), wait=False, err=str(tmp_path / "e.log"))
    p.check_exit_code = False  # exiting 1 is the point
    rc = p.wait(10 * P.SLOW)
    assert rc == 1, (rc, p.stderr())
    assert missing in p.stderr(), p.stderr()
