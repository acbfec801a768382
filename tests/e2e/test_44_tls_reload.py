"""TLS and reload: certificates, keys and OCSP responses are read again on
SIGHUP; new handshakes get the new ones while open connections go on; a bad
certificate or key fails the reload with the file named, and the old ones
keep serving. Also: the access log of an mTLS listener names the client."""
import json
import os
import signal
import subprocess
import time

import pytest

from lib.certs import Pki
from lib.origin import echo
from lib.portico import SLOW, Conn, free_port, req, wait_port

pytestmark = pytest.mark.skipif(subprocess.run(["which", "openssl"], capture_output=True).returncode,
                                reason="openssl not installed")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca = Pki(tmp_path_factory.mktemp("tlsreload"))
    ca.leaf("one", ["one.example.test", "reload.example.test"])
    ca.leaf("two", ["two.example.test", "reload.example.test"])
    cca = Pki(tmp_path_factory.mktemp("tlsreload-clients"), prefix="cca", cn="Client CA")
    cca.leaf("client", [], subject="/O=Portico Tests/CN=log client", client=True)
    ca.cca = cca
    return ca


def config(port, leaf, errlog, extra_tls="", extra=""):
    return ("workers: 1\nshutdown_grace: 2s\nlog: {error: %s%s}\n"
            "listeners:\n  - {listen: \"127.0.0.1:%d\", tls: {certificates: [{cert: %s, key: %s}]%s}}\n"
            "routes:\n  - {respond: {body: \"hi\\n\"}}\n" % (errlog, extra, port, leaf.cert, leaf.key, extra_tls))


def served_cn(port):
    out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                          "-servername", "reload.example.test"],
                         input=b"", capture_output=True, timeout=10).stdout.decode("latin-1")
    for line in out.splitlines():
        if line.startswith("subject="):
            return line.split("CN", 1)[1].strip(" =")
    raise AssertionError(out)


def outcomes(errlog):
    with open(errlog) as f:
        t = f.read()
    return t, t.count("reloaded") + t.count("reload failed")


def hup_and_wait(p, errlog):
    _, n = outcomes(errlog)
    os.kill(p.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5 * SLOW
    while time.monotonic() < deadline:
        t, m = outcomes(errlog)
        if m > n:
            return t
        time.sleep(0.02)
    raise AssertionError("no reload outcome")


def start(portico, path, port):
    p = portico(None, args=["-c", path], wait=False)
    p.port = port
    assert wait_port(port, 10.0 * SLOW, p.proc), p.stderr()
    return p


def test_certificate_replaced_by_reload(portico, pki, tmp_path):
    port = free_port()
    path, errlog = str(tmp_path / "p.yaml"), str(tmp_path / "err.log")
    one, two = pki.leaves["one"], pki.leaves["two"]
    with open(path, "w") as f:
        f.write(config(port, one, errlog))
    p = start(portico, path, port)
    assert served_cn(port) == "one.example.test"
    # A connection opened before the reload keeps working after it.
    import ssl
    ctx = ssl.create_default_context(cafile=pki.cert)
    s = ctx.wrap_socket(__import__("socket").create_connection(("127.0.0.1", port)),
                        server_hostname="reload.example.test")
    s.sendall(req("GET", "/a"))
    assert b"hi" in s.recv(4096)
    with open(path, "w") as f:
        f.write(config(port, two, errlog))
    assert "reloaded" in hup_and_wait(p, errlog)
    assert served_cn(port) == "two.example.test"
    s.sendall(req("GET", "/b"))
    assert b"200 OK" in s.recv(4096)
    s.close()


def test_bad_key_fails_reload_and_old_certificate_serves(portico, pki, tmp_path):
    port = free_port()
    path, errlog = str(tmp_path / "p.yaml"), str(tmp_path / "err.log")
    one, two = pki.leaves["one"], pki.leaves["two"]
    with open(path, "w") as f:
        f.write(config(port, one, errlog))
    p = start(portico, path, port)
    # two's certificate with one's key: does not match
    bad = config(port, one, errlog).replace(one.cert, two.cert)
    with open(path, "w") as f:
        f.write(bad)
    text = hup_and_wait(p, errlog)
    assert "reload failed" in text
    assert "does not match certificate" in text and two.cert in text
    assert served_cn(port) == "one.example.test"
    # a certificate file that is gone: named too, and still the old one serves
    missing = str(tmp_path / "nope.pem")
    with open(path, "w") as f:
        f.write(config(port, one, errlog).replace(one.cert, missing))
    text = hup_and_wait(p, errlog)
    assert missing in text.split("reload failed")[-2]
    assert served_cn(port) == "one.example.test"


def test_access_log_names_the_client_certificate(portico, pki, tmp_path):
    port = free_port()
    access = str(tmp_path / "access.log")
    errlog = str(tmp_path / "err.log")
    path = str(tmp_path / "p.yaml")
    with open(path, "w") as f:
        f.write(config(port, pki.leaves["one"], errlog, extra_tls=", client_ca: %s" % pki.cca.cert)
                .replace("log: {error: %s}" % errlog, "log: {error: %s, access: %s}" % (errlog, access)))
    p = start(portico, path, port)
    c = pki.cca.leaves["client"]
    r = subprocess.run(["curl", "-s", "--cacert", pki.cert, "--cert", c.cert, "--key", c.key,
                        "--resolve", "reload.example.test:%d:127.0.0.1" % port,
                        "https://reload.example.test:%d/x" % port], capture_output=True, timeout=10)
    assert r.stdout == b"hi\n", r
    p.kill(signal.SIGTERM)
    p.wait(10 * SLOW)
    with open(access) as f:
        lines = [json.loads(l) for l in f if l.strip()]
    assert lines and lines[-1]["tls_client_subject"] == "CN=log client,O=Portico Tests", lines[-1]
