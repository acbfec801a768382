"""TLS termination: curl and openssl s_client against TLS listeners.

Protocol floor (no TLS 1.0/1.1, min_version tls1.3), forward-secret AEAD
suites only with server preference, SNI certificate selection (exact,
wildcard, default), RSA and ECDSA side by side, ALPN, resumption with
tickets and the session cache (and without), no 0-RTT, no renegotiation,
mTLS and {tls.client_subject}, OCSP stapling, config errors,
redirect_https, and hostile bytes on a TLS port.

Certificates are made once per session with the openssl CLI (lib/certs.py).
Traffic goes to 127.0.0.1 only; every client run has a timeout.
"""
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from lib.certs import Pki, cert_text
from lib.origin import MiB, by_path, count_body, echo, stream
from lib.portico import SLOW, Conn, curl, req, request, run_cli

# ---------------------------------------------------------------- certificates


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not found")
    d = tmp_path_factory.mktemp("tls")
    ca = Pki(d)
    ca.leaf("a", ["a.example.test", "www.a.example.test"])
    ca.leaf("b", ["b.example.test"])
    ca.leaf("wild", ["*.wild.example.test"], "ec")
    ca.leaf("exact", ["exact.wild.example.test"])
    ca.leaf("dual_rsa", ["dual.example.test"], "rsa")
    ca.leaf("dual_ec", ["dual.example.test"], "ec")
    ca.ocsp_response(ca.leaves["a"])
    ca.ocsp_response(ca.leaves["b"])
    cca = Pki(d, "client-ca", "Portico Test Client CA")
    cca.leaf("client", [], subject="/C=DE/O=Portico Tests/CN=client one", client=True)
    # A client certificate from a CA the listener does not trust.
    other = Pki(d, "other-ca", "Some Other CA")
    other.leaf("stranger", [], subject="/O=Elsewhere/CN=stranger", client=True)
    return {"dir": str(d), "ca": ca, "cca": cca, "other": other}


def cert_entry(leaf, ocsp=None):
    s = '{cert: "%s", key: "%s"' % (leaf.cert, leaf.key)
    if ocsp:
        s += ', ocsp: "%s"' % ocsp
    return s + "}"


def tls_config(entries, origin_address, tls_extra="", route_extra="", extra="", workers=1):
    """One TLS listener `${listen}` with the certificate `entries` (flow maps),
    one upstream, one route."""
    certs = "".join("        - %s\n" % e for e in entries)
    tls_lines = "".join("      %s\n" % ln for ln in tls_extra.splitlines() if ln.strip())
    return ("workers: %d\n%s"
            "listeners:\n"
            "  - name: websecure\n"
            "    listen: ${listen}\n"
            "    tls:\n"
            "      certificates:\n%s%s"
            "upstreams:\n"
            "  app:\n"
            "    servers:\n"
            "      - {address: %s}\n"
            "routes:\n"
            "  - upstream: app\n%s") % (workers, extra, certs, tls_lines, origin_address, route_extra)


@pytest.fixture
def std(pki, portico, origin):
    """The usual listener: a (default, with OCSP), b, *.wild, exact.wild."""
    ca = pki["ca"]
    lv = ca.leaves
    o = origin(echo())
    p = portico(tls_config([cert_entry(lv["a"], os.path.join(pki["dir"], "a.ocsp.der")),
                            cert_entry(lv["b"], os.path.join(pki["dir"], "b.ocsp.der")),
                            cert_entry(lv["wild"]), cert_entry(lv["exact"])],
                           o.address,
                           route_extra="    headers:\n      request:\n"
                                       "        set: {X-Scheme: \"{scheme}\", X-Subject: \"{tls.client_subject}\"}\n"))
    return p, o


# ---------------------------------------------------------------- clients

def s_client(port, *args, data=None, timeout=10):
    """Run `openssl s_client`. With `data`, send it and read until the server
    closes (-ign_eof); without, stdin is at EOF so the client leaves right
    after the handshake. Returns (returncode, stdout+stderr as text)."""
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + [str(a) for a in args]
    if data is not None:
        cmd.append("-ign_eof")
    try:
        r = subprocess.run(cmd, input=data if data is not None else b"", capture_output=True,
                           timeout=timeout * SLOW)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("openssl s_client %s did not finish within %ss: %r"
                             % (" ".join(cmd[2:]), timeout * SLOW, e.stdout))
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


def handshake_line(out):
    """'New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384' (or None)."""
    m = re.search(r"^(New|Reused), (\S+), Cipher is (\S+)$", out, re.M)
    return m


def negotiated(out):
    """(new_or_reused, protocol, cipher) of a completed handshake, or None."""
    m = handshake_line(out)
    if not m or m.group(3) == "(NONE)":
        return None
    return m.group(1), m.group(2), m.group(3)


def served_cert(out):
    """`openssl x509 -text` of the certificate the server sent."""
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out, re.S)
    assert m, "no server certificate in s_client output:\n" + out[-3000:]
    return cert_text(m.group(0))


def cert_summary(text):
    """(subject CN, [SAN DNS names], 'rsa'|'ec') from `x509 -text`."""
    cn = re.search(r"Subject:.*?CN\s*=\s*([^,\n]+)", text)
    sans = re.search(r"X509v3 Subject Alternative Name:.*?\n\s*(.*)\n", text)
    kind = "ec" if "id-ecPublicKey" in text else "rsa" if "rsaEncryption" in text else "?"
    names = [s.strip()[4:] for s in sans.group(1).split(",")] if sans else []
    return (cn.group(1).strip() if cn else None), names, kind


GET = b"GET /s HTTP/1.1\r\nHost: a.example.test\r\nConnection: close\r\n\r\n"


def https(p, path="/", name="a.example.test", *args):
    """curl --http1.1 to https://name:port/path, trusting the test CA."""
    return curl("--http1.1", "--resolve", "%s:%d:127.0.0.1" % (name, p.port),
                "https://%s:%d%s" % (name, p.port, path), *args)


def hdrs(doc, name):
    return [v for k, v in doc["headers"] if k.lower() == name.lower()]


class TlsConn(Conn):
    """lib.portico.Conn over TLS (Python's ssl module)."""

    def __init__(self, port, cafile, server_hostname="a.example.test", timeout=5.0, rcvbuf=None, **ctxkw):
        super().__init__(port, timeout=timeout, rcvbuf=rcvbuf)
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.set_alpn_protocols(["http/1.1"])
        for k, v in ctxkw.items():
            setattr(ctx, k, v)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)


def assert_serves(p, pki, path="/after"):
    """The proxy is alive and a normal HTTPS request works."""
    assert p.alive(), p.stderr()
    r = https(p, path, "a.example.test", "--cacert", pki["ca"].cert)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["path"] == path


# ---------------------------------------------------------------- curl

def test_curl_https_proxied(std, pki):
    p, o = std
    r = https(p, "/hello?x=1", "a.example.test", "--cacert", pki["ca"].cert, "-i")
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), r.stdout
    doc = json.loads(body)
    assert doc["path"] == "/hello" and doc["query"] == "x=1"
    assert hdrs(doc, "x-forwarded-proto") == ["https"]
    assert hdrs(doc, "x-scheme") == ["https"]
    # No client certificate on this listener: the placeholder is empty.
    assert all(v == "" for v in hdrs(doc, "x-subject")), doc["headers"]
    assert o.n_requests == 1


def test_curl_keepalive_over_tls(std, pki):
    p, o = std
    url = "https://a.example.test:%d" % p.port
    r = curl("--http1.1", "-v", "--cacert", pki["ca"].cert, "--resolve", "a.example.test:%d:127.0.0.1" % p.port,
             url + "/k1", url + "/k2", url + "/k3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(b'"path"') == 3
    err = r.stderr.decode("utf-8", "replace")
    assert err.count("Re-using existing connection") >= 2 or err.count("Reusing existing connection") >= 2, err
    assert o.n_requests == 3


def test_curl_tlsv13(std, pki):
    p, o = std
    r = https(p, "/v13", "a.example.test", "--cacert", pki["ca"].cert, "--tlsv1.3", "-v")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["path"] == "/v13"
    assert b"SSL connection using TLSv1.3" in r.stderr, r.stderr


def test_curl_tls12(std, pki):
    p, o = std
    r = https(p, "/v12", "a.example.test", "--cacert", pki["ca"].cert, "--tlsv1.2", "--tls-max", "1.2", "-v")
    assert r.returncode == 0, r.stderr
    assert b"SSL connection using TLSv1.2 / ECDHE-RSA-AES128-GCM-SHA256" in r.stderr, r.stderr


def test_curl_tls_max_11_refused(std, pki):
    p, o = std
    r = https(p, "/old", "a.example.test", "--cacert", pki["ca"].cert, "--tlsv1.0", "--tls-max", "1.1",
              "--ciphers", "DEFAULT@SECLEVEL=0")
    assert r.returncode != 0, r.stdout
    assert o.n_requests == 0
    assert_serves(p, pki)


@pytest.mark.parametrize("proto", ["-tls1", "-tls1_1"])
def test_old_protocols_refused_by_server(std, pki, proto):
    p, o = std
    rc, out = s_client(p.port, proto, "-cipher", "DEFAULT@SECLEVEL=0", "-servername", "a.example.test")
    if "no protocols available" in out or "unknown option" in out.lower():
        pytest.skip("this openssl cannot offer %s at all" % proto)
    assert negotiated(out) is None, out
    # The server answers the ClientHello with a protocol_version alert: it is
    # the server refusing, not the client.
    assert "alert protocol version" in out, out
    assert o.n_requests == 0


def test_sslv3_refused(std, pki):
    p, o = std
    rc, out = s_client(p.port, "-ssl3", "-cipher", "DEFAULT@SECLEVEL=0")
    if "unknown option" in out.lower() or "Option unknown" in out or "no protocols available" in out:
        pytest.skip("this openssl has no SSLv3")
    assert negotiated(out) is None, out


# ---------------------------------------------------------------- SNI

@pytest.mark.parametrize("servername,expect", [
    ("a.example.test", "a"),
    ("www.a.example.test", "a"),
    ("b.example.test", "b"),
    ("B.Example.TEST", "b"),                 # case-insensitive
    ("x.wild.example.test", "wild"),         # wildcard, one label
    ("exact.wild.example.test", "exact"),    # exact beats the earlier wildcard
    ("x.y.wild.example.test", "a"),          # wildcard covers one label only: default
    ("wild.example.test", "a"),              # nor the apex: default
    ("unknown.test", "a"),                   # no match: default (first)
    (None, "a"),                             # no SNI: default (first)
])
def test_sni_selection(std, pki, servername, expect):
    p, o = std
    args = ["-servername", servername] if servername else ["-noservername"]
    rc, out = s_client(p.port, *args, "-CAfile", pki["ca"].cert)
    assert negotiated(out), out
    want = pki["ca"].leaves[expect]
    cn, sans, kind = cert_summary(served_cert(out))
    assert cn == want.subject.split("CN=")[1], (servername, cn, sans)
    assert kind == want.kind


def test_sni_selection_then_request(std, pki):
    """The request on a b.example.test connection is proxied normally and the
    certificate verifies for that name (curl checks the name)."""
    p, o = std
    r = https(p, "/on-b", "b.example.test", "--cacert", pki["ca"].cert)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["path"] == "/on-b"
    assert hdrs(doc, "host") == ["b.example.test:%d" % p.port]
    r = https(p, "/on-w", "q.wild.example.test", "--cacert", pki["ca"].cert)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("order", ["rsa_first", "ec_first"])
def test_rsa_and_ecdsa_side_by_side(pki, portico, origin, order):
    lv = pki["ca"].leaves
    pair = [lv["dual_rsa"], lv["dual_ec"]]
    if order == "ec_first":
        pair.reverse()
    o = origin(echo())
    p = portico(tls_config([cert_entry(lv["a"])] + [cert_entry(x) for x in pair], o.address))
    cases = [
        (["-tls1_3", "-sigalgs", "ECDSA+SHA256"], "ec"),
        (["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"], "rsa"),
        (["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"], "ec"),
        (["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"], "rsa"),
    ]
    for args, kind in cases:
        rc, out = s_client(p.port, "-servername", "dual.example.test", "-CAfile", pki["ca"].cert, *args)
        assert negotiated(out), (args, out)
        cn, sans, got = cert_summary(served_cert(out))
        assert cn == "dual.example.test" and got == kind, (args, cn, got)
        assert "Verify return code: 0 (ok)" in out, out
    # A client that accepts both gets one of them, and the request works.
    for name in ("dual.example.test",):
        r = https(p, "/dual", name, "--cacert", pki["ca"].cert)
        assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- ALPN, versions, ciphers

def test_alpn(std, pki):
    p, o = std
    rc, out = s_client(p.port, "-servername", "a.example.test", "-alpn", "http/1.1", data=GET)
    assert "ALPN protocol: http/1.1" in out, out
    assert "HTTP/1.1 200" in out, out
    # A client offering both gets h2 once the HTTP/2 codec is built in (the
    # listener's default order is h2 first), http/1.1 before that.
    rc, out = s_client(p.port, "-servername", "a.example.test", "-alpn", "h2,http/1.1")
    assert re.search(r"^ALPN protocol: (h2|http/1\.1)$", out, re.M), out
    # A client offering only protocols the listener does not speak is refused
    # (RFC 7301 no_application_protocol).
    rc, out = s_client(p.port, "-servername", "a.example.test", "-alpn", "spdy/3,foo")
    assert negotiated(out) is None or "no application protocol" in out, out
    assert "ALPN protocol: spdy/3" not in out and "ALPN protocol: foo" not in out
    # No ALPN at all is fine too.
    rc, out = s_client(p.port, "-servername", "a.example.test", data=GET)
    assert "No ALPN negotiated" in out and "HTTP/1.1 200" in out, out


@pytest.mark.parametrize("alpn", ["[http/1.1]", "[http/1.1, h2]"])
def test_alpn_server_preference(pki, portico, origin, alpn):
    """`alpn` lists the listener's protocols in its order of preference: with
    http/1.1 first (or alone) a client offering h2 first still gets http/1.1."""
    o = origin(echo())
    p = portico(tls_config([cert_entry(pki["ca"].leaves["a"])], o.address, tls_extra="alpn: %s" % alpn))
    rc, out = s_client(p.port, "-servername", "a.example.test", "-alpn", "h2,http/1.1", data=GET)
    assert "ALPN protocol: http/1.1" in out and "HTTP/1.1 200" in out, out


def test_min_version_tls13(pki, portico, origin):
    o = origin(echo())
    p = portico(tls_config([cert_entry(pki["ca"].leaves["a"])], o.address, tls_extra="min_version: tls1.3"))
    rc, out = s_client(p.port, "-tls1_2", "-servername", "a.example.test")
    assert negotiated(out) is None, out
    assert "alert protocol version" in out, out
    rc, out = s_client(p.port, "-tls1_3", "-servername", "a.example.test", data=GET)
    assert negotiated(out)[1] == "TLSv1.3", out
    assert "HTTP/1.1 200" in out, out
    r = https(p, "/x", "a.example.test", "--cacert", pki["ca"].cert, "--tls-max", "1.2")
    assert r.returncode != 0
    assert o.n_requests == 1


@pytest.mark.parametrize("cipher", [
    "AES128-SHA",                     # no forward secrecy, CBC
    "AES256-SHA256",                  # no forward secrecy, CBC
    "AES128-GCM-SHA256",              # AEAD but no forward secrecy
    "ECDHE-RSA-AES128-SHA",           # forward secret but CBC
    "ECDHE-RSA-AES256-SHA384",        # forward secret but CBC
    "DHE-RSA-AES128-GCM-SHA256",      # finite-field DHE: not offered
    "DES-CBC3-SHA",
    "ECDHE-RSA-DES-CBC3-SHA",
])
def test_weak_tls12_ciphers_refused(std, pki, cipher):
    p, o = std
    rc, out = s_client(p.port, "-tls1_2", "-cipher", cipher + ":@SECLEVEL=0", "-servername", "a.example.test")
    if "no cipher match" in out:
        pytest.skip("this openssl does not have %s" % cipher)
    assert negotiated(out) is None, out
    assert "alert handshake failure" in out, out


@pytest.mark.parametrize("cipher", ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                                    "ECDHE-RSA-CHACHA20-POLY1305"])
def test_strong_tls12_ciphers_accepted(std, pki, cipher):
    p, o = std
    rc, out = s_client(p.port, "-tls1_2", "-cipher", cipher, "-servername", "a.example.test", data=GET)
    assert negotiated(out) == ("New", "TLSv1.2", cipher), out
    assert "HTTP/1.1 200" in out


def test_server_cipher_preference(std, pki):
    p, o = std
    rc, out = s_client(p.port, "-tls1_2", "-servername", "a.example.test", "-cipher",
                       "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256")
    assert negotiated(out) == ("New", "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"), out


def test_tls13_server_suite_preference(std, pki):
    """OpenSSL clients offer AES-256 first; the server's order (Mozilla's)
    picks AES-128."""
    p, o = std
    rc, out = s_client(p.port, "-tls1_3", "-servername", "a.example.test", "-ciphersuites",
                       "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256")
    assert negotiated(out) == ("New", "TLSv1.3", "TLS_AES_128_GCM_SHA256"), out


STRONG_TLS12 = {"ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305",
                "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"}


def sslscan(port, sni):
    if shutil.which("sslscan") is None:
        pytest.skip("sslscan not installed (Debian package sslscan)")
    r = subprocess.run(["sslscan", "--no-colour", "--no-heartbleed", "--sni-name=%s" % sni, "127.0.0.1:%d" % port],
                       capture_output=True, timeout=120 * SLOW)
    out = r.stdout.decode("utf-8", "replace")
    assert "Supported Server Cipher(s)" in out, out + r.stderr.decode("utf-8", "replace")
    protos = dict(re.findall(r"^(SSLv2|SSLv3|TLSv1\.[0-3])\s+(enabled|disabled)$", out, re.M))
    ciphers = re.findall(r"^(?:Preferred|Accepted)\s+(\S+)\s+\d+ bits\s+(\S+)", out, re.M)
    return out, protos, ciphers


@pytest.mark.parametrize("min_version", ["tls1.2", "tls1.3"])
def test_sslscan_protocols_and_ciphers(pki, portico, origin, min_version):
    """An independent scanner sees nothing below the floor, only forward-secret
    AEAD suites, and no renegotiation."""
    lv = pki["ca"].leaves
    o = origin(echo())
    p = portico(tls_config([cert_entry(lv["a"]), cert_entry(lv["dual_rsa"]), cert_entry(lv["dual_ec"])], o.address,
                           tls_extra="min_version: %s" % min_version))
    for sni in ("a.example.test", "dual.example.test"):
        out, protos, ciphers = sslscan(p.port, sni)
        for old in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"):
            assert protos.get(old) == "disabled", (old, out)
        assert protos.get("TLSv1.3") == "enabled", out
        assert protos.get("TLSv1.2") == ("enabled" if min_version == "tls1.2" else "disabled"), out
        assert ciphers, out
        for proto, suite in ciphers:
            assert proto in ("TLSv1.2", "TLSv1.3"), (proto, suite)
            if proto == "TLSv1.2":
                assert suite in STRONG_TLS12, (suite, out)
            else:
                assert suite.startswith("TLS_") and ("GCM" in suite or "CHACHA20" in suite), suite
        if min_version == "tls1.2":
            tls12 = {s for pr, s in ciphers if pr == "TLSv1.2"}
            if sni == "dual.example.test":
                assert any("ECDSA" in s for s in tls12) and any("-RSA-" in s for s in tls12), tls12
            # Server preference: AES128-GCM first for the RSA certificate.
            if sni == "a.example.test":
                assert re.search(r"^Preferred\s+TLSv1\.2\s+\d+ bits\s+ECDHE-RSA-AES128-GCM-SHA256", out, re.M), out
            assert "Insecure session renegotiation supported" not in out, out
            assert "Session renegotiation not supported" in out or "Secure session renegotiation" not in out, out
    assert p.alive()


def test_compression_off(std, pki):
    p, o = std
    for v in ("-tls1_2", "-tls1_3"):
        rc, out = s_client(p.port, v, "-servername", "a.example.test")
        assert negotiated(out), out
        assert "Compression: NONE" in out, out


def test_renegotiation_refused(std, pki):
    p, o = std
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % p.port, "-tls1_2", "-servername", "a.example.test"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # s_client renegotiates on a line "R"; then try a request on the same connection.
        time.sleep(0.5 * SLOW)
        proc.stdin.write(b"R\n")
        proc.stdin.flush()
        time.sleep(0.5 * SLOW)
        try:
            proc.stdin.write(b"GET /reneg HTTP/1.1\r\nHost: a.example.test\r\n\r\n")
            proc.stdin.flush()
        except BrokenPipeError:
            pass
        time.sleep(0.5 * SLOW)
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        out = proc.stdout.read().decode("utf-8", "replace") if proc.wait(10 * SLOW) is not None else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert negotiated(out), out
    assert "RENEGOTIATING" in out, out
    # The server declines (no_renegotiation alert): the client gives up, no
    # second handshake happens and the request never reaches the origin.
    assert "no renegotiation" in out, out
    assert o.n_requests == 0
    assert_serves(p, pki)


# ---------------------------------------------------------------- resumption

def resume_pair(p, tmp_path, *args, data=GET):
    sess = str(tmp_path / ("sess-%d" % time.monotonic_ns()))
    rc1, out1 = s_client(p.port, "-servername", "a.example.test", "-sess_out", sess, *args, data=data)
    assert negotiated(out1), out1
    assert os.path.exists(sess), out1
    rc2, out2 = s_client(p.port, "-servername", "a.example.test", "-sess_in", sess, *args, data=data)
    assert negotiated(out2), out2
    return out1, out2


@pytest.mark.parametrize("args", [["-tls1_2"], ["-tls1_3"], ["-tls1_2", "-no_ticket"]],
                         ids=["tls12-ticket", "tls13-ticket", "tls12-session-cache"])
def test_resumption(std, pki, tmp_path, args):
    p, o = std
    out1, out2 = resume_pair(p, tmp_path, *args)
    assert negotiated(out1)[0] == "New"
    assert negotiated(out2)[0] == "Reused", out2
    assert "HTTP/1.1 200" in out2, out2
    assert o.n_requests == 2


def test_resumption_across_workers(pki, portico, origin, tmp_path):
    """Ticket keys and the session cache are shared by the workers: with
    SO_REUSEPORT spreading connections over 4 workers, every resumption works."""
    o = origin(echo())
    p = portico(tls_config([cert_entry(pki["ca"].leaves["a"])], o.address, workers=4))
    for args in (["-tls1_3"], ["-tls1_2", "-no_ticket"]):
        sess = str(tmp_path / ("s%s" % "".join(args)))
        rc, out = s_client(p.port, "-servername", "a.example.test", "-sess_out", sess, *args, data=GET)
        assert negotiated(out)[0] == "New", out
        reused = 0
        for i in range(12):
            rc, out = s_client(p.port, "-servername", "a.example.test", "-sess_in", sess, *args)
            assert negotiated(out), out
            reused += negotiated(out)[0] == "Reused"
        assert reused == 12, (args, reused)


def test_resumption_across_names(std, pki, tmp_path):
    """A session made on the default certificate's name is resumable on
    another SNI name of the same listener (one session context)."""
    p, o = std
    sess = str(tmp_path / "sess-x")
    rc, out = s_client(p.port, "-servername", "b.example.test", "-tls1_2", "-sess_out", sess, data=GET)
    assert negotiated(out), out
    rc, out = s_client(p.port, "-servername", "b.example.test", "-tls1_2", "-sess_in", sess, data=GET)
    assert negotiated(out)[0] == "Reused", out


@pytest.mark.parametrize("args", [["-tls1_2"], ["-tls1_3"], ["-tls1_2", "-no_ticket"]],
                         ids=["tls12-ticket", "tls13-ticket", "tls12-session-cache"])
def test_resumption_off(pki, portico, origin, tmp_path, args):
    o = origin(echo())
    p = portico(tls_config([cert_entry(pki["ca"].leaves["a"])], o.address, tls_extra="resumption: false"))
    sess = str(tmp_path / "sess")
    rc, out1 = s_client(p.port, "-servername", "a.example.test", "-sess_out", sess, *args, data=GET)
    assert negotiated(out1)[0] == "New", out1
    assert "Post-Handshake New Session Ticket arrived" not in out1, out1
    assert "TLS session ticket:" not in out1, out1
    if os.path.exists(sess):
        rc, out2 = s_client(p.port, "-servername", "a.example.test", "-sess_in", sess, *args, data=GET)
        assert negotiated(out2)[0] == "New", out2
        assert "HTTP/1.1 200" in out2, out2


def test_no_early_data(std, pki, tmp_path):
    """0-RTT is off: tickets allow no early data, and a client that tries
    sends none (nothing replayable reaches the origin)."""
    p, o = std
    sess = str(tmp_path / "sess13")
    rc, out = s_client(p.port, "-tls1_3", "-servername", "a.example.test", "-sess_out", sess, data=GET)
    assert "Max Early Data: 0" in out, out
    early = tmp_path / "early.txt"
    early.write_bytes(b"GET /early HTTP/1.1\r\nHost: a.example.test\r\n\r\n")
    rc, out = s_client(p.port, "-tls1_3", "-servername", "a.example.test", "-sess_in", sess,
                       "-early_data", str(early))
    assert "Early data was accepted" not in out, out
    time.sleep(0.2)
    assert "/early" not in o.paths()


# ---------------------------------------------------------------- mTLS

@pytest.fixture
def mtls(pki, portico, origin):
    o = origin(echo())
    p = portico(tls_config([cert_entry(pki["ca"].leaves["a"])], o.address,
                           tls_extra='client_ca: "%s"' % pki["cca"].cert,
                           route_extra="    headers:\n      request:\n"
                                       "        set: {X-Client-Subject: \"{tls.client_subject}\"}\n"))
    return p, o


def test_mtls_without_client_cert_refused(mtls, pki):
    p, o = mtls
    r = https(p, "/nocert", "a.example.test", "--cacert", pki["ca"].cert)
    assert r.returncode != 0, r.stdout
    rc, out = s_client(p.port, "-tls1_2", "-servername", "a.example.test", data=GET)
    # TLS 1.2: the server answers the empty Certificate message with a fatal
    # alert instead of its Finished.
    assert "alert handshake failure" in out or "alert certificate required" in out, out
    assert "HTTP/1.1" not in out
    rc, out = s_client(p.port, "-tls1_3", "-servername", "a.example.test", data=GET)
    # TLS 1.3: the client finishes its side before the server checks; the
    # server then answers with an alert and closes, and no HTTP comes back.
    assert "HTTP/1.1" not in out, out
    assert o.n_requests == 0


def test_mtls_certificate_request_names_the_ca(mtls, pki):
    p, o = mtls
    rc, out = s_client(p.port, "-tls1_2", "-servername", "a.example.test")
    assert "Acceptable client certificate CA names" in out, out
    assert "Portico Test Client CA" in out, out


def test_mtls_untrusted_client_cert_refused(mtls, pki):
    p, o = mtls
    st = pki["other"].leaves["stranger"]
    r = https(p, "/stranger", "a.example.test", "--cacert", pki["ca"].cert, "--cert", st.cert, "--key", st.key)
    assert r.returncode != 0, r.stdout
    assert o.n_requests == 0


@pytest.mark.parametrize("ver", ["--tlsv1.2", "--tlsv1.3"])
def test_mtls_client_cert_and_subject(mtls, pki, ver):
    p, o = mtls
    cl = pki["cca"].leaves["client"]
    args = ["--cacert", pki["ca"].cert, "--cert", cl.cert, "--key", cl.key, ver]
    if ver == "--tlsv1.2":
        args += ["--tls-max", "1.2"]
    r = https(p, "/withcert", "a.example.test", *args)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["path"] == "/withcert"
    # RFC 2253: most specific first, comma-separated.
    assert hdrs(doc, "x-client-subject") == ["CN=client one,O=Portico Tests,C=DE"], doc["headers"]


def test_mtls_client_cannot_spoof_subject_header(mtls, pki):
    p, o = mtls
    cl = pki["cca"].leaves["client"]
    r = https(p, "/spoof", "a.example.test", "--cacert", pki["ca"].cert, "--cert", cl.cert, "--key", cl.key,
              "-H", "X-Client-Subject: CN=admin")
    assert r.returncode == 0, r.stderr
    assert hdrs(json.loads(r.stdout), "x-client-subject") == ["CN=client one,O=Portico Tests,C=DE"]


# ---------------------------------------------------------------- OCSP

def test_ocsp_stapling(std, pki):
    p, o = std
    ca = pki["ca"]
    for name, leaf in (("a.example.test", "a"), ("b.example.test", "b"), (None, "a")):
        args = ["-servername", name] if name else ["-noservername"]
        rc, out = s_client(p.port, "-status", *args)
        assert "OCSP Response Status: successful" in out, (name, out)
        assert "Cert Status: good" in out, out
        assert re.search(r"Serial Number: 0*%s\b" % ca.leaves[leaf].serial, out), (leaf, out)
    rc, out = s_client(p.port, "-status", "-servername", "x.wild.example.test")
    assert "OCSP response: no response sent" in out, out


def test_ocsp_verifies_against_ca(std, pki, tmp_path):
    p, o = std
    rc, out = s_client(p.port, "-status", "-servername", "a.example.test", "-CAfile", pki["ca"].cert)
    assert "OCSP Response Status: successful" in out, out
    assert "Response verify OK" in out or "Verify return code: 0 (ok)" in out, out


# ---------------------------------------------------------------- config errors

def write_conf(dirpath, text, name="portico.yaml"):
    path = os.path.join(str(dirpath), name)
    with open(path, "w") as f:
        f.write(text)
    return path


def conf_text(entries, tls_extra=""):
    return tls_config(entries, "127.0.0.1:1", tls_extra=tls_extra).replace("${listen}", "127.0.0.1:8443")


def line_col_of(text, needle, nth=0):
    idx = -1
    for _ in range(nth + 1):
        idx = text.index(needle, idx + 1)
    line = text.count("\n", 0, idx) + 1
    col = idx - (text.rfind("\n", 0, idx) + 1) + 1
    return line, col


def check_err(tmp_path, text):
    path = write_conf(tmp_path, text)
    r = run_cli(["-t", "-c", path])
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 1, (r.returncode, r.stdout, err)
    assert b"ok" not in r.stdout.split()
    return path, err


def test_valid_tls_config_ok(pki, tmp_path):
    lv = pki["ca"].leaves
    text = conf_text([cert_entry(lv["a"], os.path.join(pki["dir"], "a.ocsp.der")), cert_entry(lv["dual_rsa"]),
                      cert_entry(lv["dual_ec"])],
                     'min_version: tls1.3\nalpn: [h2, http/1.1]\nresumption: false\nclient_ca: "%s"' % pki["cca"].cert)
    r = run_cli(["-t", "-c", write_conf(tmp_path, text)])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == b"ok"


def test_key_not_matching_cert(pki, tmp_path):
    lv = pki["ca"].leaves
    text = conf_text([cert_entry(lv["a"]), '{cert: "%s", key: "%s"}' % (lv["b"].cert, lv["a"].key)])
    path, err = check_err(tmp_path, text)
    line, col = line_col_of(text, '{cert: "%s", key: "%s"}' % (lv["b"].cert, lv["a"].key))
    want = "%s:%d:%d: key '%s' does not match certificate '%s'" % (path, line, col, lv["a"].key, lv["b"].cert)
    assert want in err, err


def test_key_not_matching_cert_block_style(pki, tmp_path):
    lv = pki["ca"].leaves
    text = ("listeners:\n"
            "  - listen: 127.0.0.1:8443\n"
            "    tls:\n"
            "      certificates:\n"
            "        - cert: %s\n"
            "          key: %s\n"
            "routes:\n"
            "  - respond: {body: hi}\n") % (lv["wild"].cert, lv["exact"].key)
    path, err = check_err(tmp_path, text)
    want = "%s:5:11: key '%s' does not match certificate '%s'" % (path, lv["exact"].key, lv["wild"].cert)
    assert want in err, err


def test_missing_cert_file(pki, tmp_path):
    lv = pki["ca"].leaves
    missing = os.path.join(str(tmp_path), "nope.pem")
    text = conf_text([cert_entry(lv["a"]), '{cert: "%s", key: "%s"}' % (missing, lv["a"].key)])
    path, err = check_err(tmp_path, text)
    line, col = line_col_of(text, '{cert: "%s"' % missing)
    assert ("%s:%d:%d:" % (path, line, col)) in err, err
    assert missing in err, err


def test_missing_key_file(pki, tmp_path):
    lv = pki["ca"].leaves
    missing = os.path.join(str(tmp_path), "nope.key")
    text = conf_text(['{cert: "%s", key: "%s"}' % (lv["a"].cert, missing)])
    path, err = check_err(tmp_path, text)
    assert missing in err, err


def test_not_a_certificate(pki, tmp_path):
    junk = write_conf(tmp_path, "this is not a certificate\n", "junk.pem")
    text = conf_text(['{cert: "%s", key: "%s"}' % (junk, pki["ca"].leaves["a"].key)])
    path, err = check_err(tmp_path, text)
    assert junk in err, err


def test_not_a_certificate_after_a_missing_file(pki, tmp_path):
    """The reason given for a file that exists but is not PEM is about its
    content, not a left-over errno from an earlier missing file."""
    junk = write_conf(tmp_path, "this is not a certificate\n", "junk.pem")
    missing = os.path.join(str(tmp_path), "nope.key")
    a = pki["ca"].leaves["a"]
    text = conf_text(['{cert: "%s", key: "%s"}' % (a.cert, missing),
                      '{cert: "%s", key: "%s"}' % (junk, a.key)])
    path, err = check_err(tmp_path, text)
    assert missing in err, err
    junk_lines = [ln for ln in err.splitlines() if junk in ln]
    assert len(junk_lines) == 1, err
    assert "No such file or directory" not in junk_lines[0], junk_lines[0]


def test_missing_ocsp_and_client_ca_files(pki, tmp_path):
    lv = pki["ca"].leaves
    nocsp = os.path.join(str(tmp_path), "nope.der")
    nca = os.path.join(str(tmp_path), "nope-ca.pem")
    text = conf_text([cert_entry(lv["a"], nocsp)], 'client_ca: "%s"' % nca)
    path, err = check_err(tmp_path, text)
    assert nocsp in err, err
    assert nca in err, err


def test_every_bad_certificate_reported(pki, tmp_path):
    lv = pki["ca"].leaves
    m1 = os.path.join(str(tmp_path), "m1.pem")
    text = conf_text(['{cert: "%s", key: "%s"}' % (m1, lv["a"].key),
                      '{cert: "%s", key: "%s"}' % (lv["b"].cert, lv["a"].key)])
    path, err = check_err(tmp_path, text)
    assert m1 in err and "does not match certificate '%s'" % lv["b"].cert in err, err


@pytest.mark.parametrize("value", ["true", "yes-please", "[a, b]"])
def test_tls_not_a_mapping(tmp_path, value):
    text = ("listeners:\n  - listen: 127.0.0.1:8443\n    tls: %s\n"
            "routes:\n  - respond: {body: hi}\n") % value
    path, err = check_err(tmp_path, text)
    assert re.search(r"%s:3:10: .*'tls' must be a mapping" % re.escape(path), err), err


def test_unknown_key_in_tls(pki, tmp_path):
    text = conf_text([cert_entry(pki["ca"].leaves["a"])], "ciphers: HIGH")
    path, err = check_err(tmp_path, text)
    line, col = line_col_of(text, "ciphers:")
    assert "%s:%d:%d: unknown key 'ciphers' in tls" % (path, line, col) in err, err


def test_unknown_key_in_certificate(pki, tmp_path):
    lv = pki["ca"].leaves
    text = conf_text(['{cert: "%s", key: "%s", chain: x.pem}' % (lv["a"].cert, lv["a"].key)])
    path, err = check_err(tmp_path, text)
    assert "unknown key 'chain' in certificate" in err, err


@pytest.mark.parametrize("extra,msg", [
    ("min_version: tls1.1", "min_version"),
    ("min_version: tls1.0", "min_version"),
    ("alpn: [spdy/3]", "alpn"),
    ("alpn: []", "alpn"),
    ("resumption: maybe", ""),
])
def test_bad_tls_values(pki, tmp_path, extra, msg):
    text = conf_text([cert_entry(pki["ca"].leaves["a"])], extra)
    path, err = check_err(tmp_path, text)
    line, _ = line_col_of(text, extra.split(":")[0] + ":")
    assert re.search(r"%s:%d:\d+: " % (re.escape(path), line), err), err
    assert msg in err


def test_certificates_required_and_not_empty(tmp_path):
    text = "listeners:\n  - listen: 127.0.0.1:8443\n    tls: {min_version: tls1.2}\nroutes:\n  - respond: {}\n"
    path, err = check_err(tmp_path, text)
    assert "missing required key 'certificates' in tls" in err, err
    text = "listeners:\n  - listen: 127.0.0.1:8443\n    tls: {certificates: []}\nroutes:\n  - respond: {}\n"
    path, err = check_err(tmp_path, text)
    assert "'certificates' must not be empty" in err, err


def test_redirect_https_on_tls_listener_is_an_error(pki, tmp_path):
    lv = pki["ca"].leaves
    text = ("listeners:\n  - listen: 127.0.0.1:8443\n    redirect_https: true\n"
            "    tls: {certificates: [%s]}\nroutes:\n  - respond: {}\n") % cert_entry(lv["a"])
    path, err = check_err(tmp_path, text)
    assert "%s:3:21: redirect_https is for plain listeners" % path in err, err


def test_relative_paths_resolve_against_config_dir(pki, tmp_path):
    d = tmp_path / "conf" / "sub"
    (d / "certs").mkdir(parents=True)
    for name in ("a.pem", "a.key", "a.ocsp.der", "client-ca.pem"):
        shutil.copy(os.path.join(pki["dir"], name), str(d / "certs" / name))
    text = ("listeners:\n  - listen: 127.0.0.1:8443\n    tls:\n"
            "      certificates: [{cert: certs/a.pem, key: certs/a.key, ocsp: certs/a.ocsp.der}]\n"
            "      client_ca: certs/client-ca.pem\n"
            "routes:\n  - respond: {}\n")
    path = write_conf(d, text)
    r = run_cli(["-t", "-c", path], cwd="/")
    assert r.returncode == 0, r.stderr
    # Relative to the config file, not to the working directory.
    r = run_cli(["-t", "-c", os.path.relpath(path, str(tmp_path))], cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    os.remove(str(d / "certs" / "a.key"))
    r = run_cli(["-t", "-c", path], cwd="/")
    assert r.returncode == 1
    assert str(d / "certs" / "a.key") in r.stderr.decode(), r.stderr


def test_bad_certificate_refuses_to_start(pki, portico, tmp_path):
    lv = pki["ca"].leaves
    text = tls_config(['{cert: "%s", key: "%s"}' % (lv["a"].cert, lv["b"].key)], "127.0.0.1:1")
    p = portico(text, wait=False)
    p.check_exit_code = False  # exiting 1 is the point
    rc = p.wait(10 * SLOW)
    assert rc == 1, p.stderr()
    assert "'%s'" % lv["b"].key in p.stderr(), p.stderr()
    assert "portico.yaml:" in p.stderr()


# ---------------------------------------------------------------- redirect_https

def test_redirect_https(portico, origin):
    o = origin(echo())
    p = portico("listeners:\n  - listen: ${listen}\n    redirect_https: true\n"
                "upstreams:\n  app:\n    servers: [%s]\nroutes:\n  - upstream: app\n" % o.address)
    r = request(p.port, "GET", "/some/path?q=1&r=%C3%A9", host="www.example.test:%d" % p.port)
    assert r.status == 308, r
    assert r.header("location") == "https://www.example.test/some/path?q=1&r=%C3%A9"
    r = request(p.port, "POST", "/form", body=b"x=1", host="example.test")
    assert r.status == 308 and r.header("location") == "https://example.test/form"
    r = curl("-i", "-H", "Host: shop.example.test", "http://127.0.0.1:%d/c?x" % p.port)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"HTTP/1.1 308")
    assert b"\r\nLocation: https://shop.example.test/c?x\r\n" in r.stdout, r.stdout
    assert o.n_requests == 0


# ---------------------------------------------------------------- hostile bytes

def send_and_wait_close(port, data, wait=5.0):
    """Send raw bytes; return (bytes read, closed_by_peer) within `wait` seconds."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW)
    s.settimeout(wait * SLOW)
    out = bytearray()
    closed = False
    try:
        if data:
            s.sendall(data)
        deadline = time.monotonic() + wait * SLOW
        while time.monotonic() < deadline:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not d:
                closed = True
                break
            out += d
    finally:
        s.close()
    return bytes(out), closed


def test_plain_http_to_tls_port(std, pki):
    p, o = std
    out, closed = send_and_wait_close(p.port, req("GET", "/plain", host="a.example.test"))
    assert closed, "connection left open after plain HTTP on a TLS port: %r" % out
    assert b"HTTP/1.1 200" not in out
    assert o.n_requests == 0
    assert_serves(p, pki)


CLIENT_HELLO_GARBAGE = [
    b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",                        # ClientHello with a 1-byte body
    b"\x16\x03\x01\xff\xff" + os.urandom(0xffff),                       # oversized record (> 2^14)
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(509),   # random ClientHello body
    b"\x16\x03\x03\x00\x00" * 40,                                         # too many empty records
    b"\x80\x2e\x01\x03\x00\x00\x15\x00\x00\x00\x10" + os.urandom(37),    # SSLv2-style hello
    b"\x17\x03\x03\x00\x20" + os.urandom(32),                            # application data first
    b"\x15\x03\x03\x00\x02\x02\x28",                                     # a fatal alert first
    os.urandom(4096),
]


@pytest.mark.parametrize("data", CLIENT_HELLO_GARBAGE, ids=range(len(CLIENT_HELLO_GARBAGE)))
def test_garbage_client_hello(std, pki, data):
    p, o = std
    out, closed = send_and_wait_close(p.port, data)
    assert closed, "connection left open after a garbage ClientHello: %r" % out[:200]
    assert o.n_requests == 0
    assert_serves(p, pki)


def test_stalled_handshake_times_out(pki, portico, origin):
    """A client that sends half a ClientHello and stops is dropped after the
    client_header timeout, like a slowloris on plain HTTP."""
    o = origin(echo())
    p = portico(tls_config([cert_entry(pki["ca"].leaves["a"])], o.address,
                           extra="timeouts:\n  client_header: 1s\n"))
    t0 = time.monotonic()
    out, closed = send_and_wait_close(p.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", wait=6.0)
    assert closed, "half a ClientHello kept the connection open for %.1fs" % (time.monotonic() - t0)
    t0 = time.monotonic()
    out, closed = send_and_wait_close(p.port, b"", wait=6.0)
    assert closed, "a silent connection was kept open for %.1fs" % (time.monotonic() - t0)
    assert_serves(p, pki)


def test_handshake_then_silence_times_out(pki, portico, origin):
    o = origin(echo())
    p = portico(tls_config([cert_entry(pki["ca"].leaves["a"])], o.address,
                           extra="timeouts:\n  client_header: 1s\n"))
    with TlsConn(p.port, pki["ca"].cert) as c:
        t0 = time.monotonic()
        c.settimeout(6 * SLOW)
        try:
            d = c.sock.recv(100)
        except (ConnectionResetError, ssl.SSLError):
            d = b""
        except socket.timeout:
            pytest.fail("idle TLS connection not closed after %.1fs" % (time.monotonic() - t0))
        assert d == b"" or d.startswith(b"HTTP/1.1 408"), d


# ---------------------------------------------------------------- bodies and pipelining over TLS

@pytest.fixture
def bulk(pki, portico, origin):
    h = by_path({"/upload": count_body(), "/big": stream(16 * MiB)})
    h.streaming = True  # count_body reads the body itself; the others read none
    o = origin(h)
    p = portico(tls_config([cert_entry(pki["ca"].leaves["a"])], o.address,
                           extra="limits:\n  max_body_bytes: 0\n"))
    return p, o


def expected_stream_sha(size, chunk=MiB):
    block = bytes(range(256)) * (chunk // 256)
    h = hashlib.sha256()
    left = size
    while left:
        n = min(left, len(block))
        h.update(block[:n])
        left -= n
    return h.hexdigest()


def test_large_download_and_upload_over_tls(bulk, pki, tmp_path):
    p, o = bulk
    r = curl("--http1.1", "--cacert", pki["ca"].cert, "--resolve", "a.example.test:%d:127.0.0.1" % p.port,
             "https://a.example.test:%d/big" % p.port, timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == 16 * MiB
    assert hashlib.sha256(r.stdout).hexdigest() == expected_stream_sha(16 * MiB)
    up = tmp_path / "up.bin"
    blob = os.urandom(8 * MiB + 123)
    up.write_bytes(blob)
    r = curl("--http1.1", "--cacert", pki["ca"].cert, "--resolve", "a.example.test:%d:127.0.0.1" % p.port,
             "--data-binary", "@%s" % up, "https://a.example.test:%d/upload" % p.port, timeout=60)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["bytes"] == len(blob) and doc["sha256"] == hashlib.sha256(blob).hexdigest()


def test_slow_reader_gets_every_byte(bulk, pki):
    """Back-pressure over TLS: a client that reads slowly at first (small
    receive buffer) still gets the exact body."""
    p, o = bulk
    with TlsConn(p.port, pki["ca"].cert, rcvbuf=8192, timeout=30) as c:
        c.send(req("GET", "/big", host="a.example.test"))
        time.sleep(1.0)  # let the proxy hit a full socket (SSL_write wants to write)
        head = c.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        h = hashlib.sha256()
        got = 0
        for i in range(100000):
            if got >= 16 * MiB:
                break
            if i < 50:
                time.sleep(0.01)
            d = c.read_some()
            if not d:
                break
            h.update(d)
            got += len(d)
        assert got == 16 * MiB
        assert h.hexdigest() == expected_stream_sha(16 * MiB)


def test_pipelined_requests_in_one_tls_write(std, pki):
    """Many requests arrive in one TLS record: the ones OpenSSL holds
    decrypted (no new socket event) must still be answered."""
    p, o = std
    n = 40
    with TlsConn(p.port, pki["ca"].cert) as c:
        c.send(b"".join(req("GET", "/p%d" % i, host="a.example.test") for i in range(n)))
        paths = [c.read_response().json()["path"] for _ in range(n)]
    assert paths == ["/p%d" % i for i in range(n)]


def test_request_split_over_records(std, pki):
    p, o = std
    with TlsConn(p.port, pki["ca"].cert) as c:
        data = req("POST", "/split", body=b"0123456789" * 100, host="a.example.test")
        for i in range(0, len(data), 7):
            c.send(data[i:i + 7])
        r = c.read_response()
        assert r.status == 200 and r.json()["body"] == "0123456789" * 100


def test_concurrent_tls_clients(pki, portico, origin):
    """Many TLS keep-alive connections at once over 4 workers, a mix of TLS 1.2
    and 1.3, each with several requests: every answer is the right one."""
    import threading
    o = origin(echo())
    p = portico(tls_config([cert_entry(pki["ca"].leaves["a"]), cert_entry(pki["ca"].leaves["b"])], o.address,
                           workers=4))
    errors = []

    def client(i):
        try:
            kw = {"maximum_version": ssl.TLSVersion.TLSv1_2} if i % 2 else {}
            name = "a.example.test" if i % 3 else "b.example.test"
            with TlsConn(p.port, pki["ca"].cert, server_hostname=name, timeout=20, **kw) as c:
                for j in range(5):
                    c.send(req("GET", "/c%d/%d" % (i, j), host=name))
                    r = c.read_response()
                    if r.status != 200 or r.json()["path"] != "/c%d/%d" % (i, j):
                        errors.append((i, j, r.status))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60 * SLOW)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert o.n_requests == 200


def test_client_aborts_mid_download(bulk, pki):
    """A client that vanishes in the middle of a large TLS response does not
    hurt the proxy."""
    p, o = bulk
    for i in range(5):
        c = TlsConn(p.port, pki["ca"].cert, timeout=10)
        c.send(req("GET", "/big", host="a.example.test"))
        c.read_until(b"\r\n\r\n")
        c.read_exact(100000)
        if i % 2:
            import struct
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    assert_serves(p, pki, "/after-aborts")


def test_many_handshakes_and_aborts(std, pki):
    """Handshakes abandoned at every stage do not leak or wedge the proxy."""
    p, o = std
    for i in range(30):
        s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
        ctx = ssl.create_default_context(cafile=pki["ca"].cert)
        try:
            if i % 3 == 0:
                s.close()
                continue
            t = ctx.wrap_socket(s, server_hostname="a.example.test")
            if i % 3 == 1:
                t.sendall(b"GET /half HTTP/1.1\r\nHost: a")
            t.close()
        except (OSError, ssl.SSLError):
            s.close()
    assert_serves(p, pki)
