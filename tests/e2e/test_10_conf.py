"""Config loading and validation: `portico -t -c FILE` and `portico -c FILE`.

Errors are printed as FILE:LINE:COL: message (1-based line and column of the
offending key or value), every error found, exit status 1.
"""
import re

import pytest

from lib.portico import free_port, run_cli

VALID = """\
workers: 2
shutdown_grace: 5s
log:
  access: off
  error: stderr
  level: info
trusted_proxies: [127.0.0.1/32, 10.0.0.0/8]
timeouts:
  client_header: 10s
  client_body: 60s
  keepalive: 75s
  send: 60s
  upstream_connect: 500ms
  upstream_read: 2m
  upstream_write: 1h
limits:
  max_header_bytes: 16k
  max_request_line: 8k
  max_body_bytes: 10m
  max_connections: 1000
listeners:
  - name: web
    listen: 127.0.0.1:%(port)d
  - name: other
    listen: ":%(port2)d"
upstreams:
  api:
    balance: least_conn
    servers:
      - {address: 127.0.0.1:3000, weight: 1}
      - {address: 127.0.0.1:3001, weight: 2}
      - {address: 127.0.0.1:3002, backup: true}
    keepalive: 64
    retries: 2
    max_connections: 1000
    fail_timeout: 10s
  users:
    balance: hash
    hash_key: "{header.X-User}"
    servers:
      - address: 127.0.0.1:3003
      - address: 127.0.0.1:3004
  rr: {balance: round_robin, servers: [{address: 127.0.0.1:3005}]}
  ip: {balance: ip_hash, servers: [{address: 127.0.0.1:3006}]}
  rnd: {balance: random, servers: [{address: 127.0.0.1:3007}]}
routes:
  - name: api
    match:
      host: api.example.com
      path: /api/
      methods: [GET, POST]
    upstream: api
    headers:
      request:  {set: {X-Real-IP: "{client_ip}"}, add: {X-A: "{host}"}, remove: [X-Debug]}
      response: {add: {Strict-Transport-Security: "max-age=31536000"}, remove: [Server, X-Powered-By]}
  - match: {host: "*.example.com", path: "=/exact"}
    upstream: users
  - match: {path: "~^/re/[0-9]+$"}
    upstream: rr
  - match: {path: /old/}
    redirect: {to: "https://{host}/new/", status: 301}
  - match: {path: /moved/}
    redirect: {to: "https://{host}{path}"}
  - match: {path: /}
    respond: {status: 404, body: "not found\\n", content_type: text/plain}
"""


def write(tmp_path, text, name="portico.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def valid_text():
    return VALID % {"port": free_port(), "port2": free_port()}


def pos(text, needle, nth=0):
    """1-based (line, col) of the nth occurrence of needle in text."""
    idx = -1
    for _ in range(nth + 1):
        idx = text.index(needle, idx + 1)
    line = text.count("\n", 0, idx) + 1
    col = idx - (text.rfind("\n", 0, idx) + 1) + 1
    return line, col


def error_lines(path, stderr):
    pat = re.compile(r"^%s:(\d+):(\d+): (.+)$" % re.escape(path))
    out = []
    for ln in stderr.decode("utf-8", "replace").splitlines():
        m = pat.match(ln.strip())
        if m:
            out.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return out


def test_valid_config_prints_ok(tmp_path):
    path = write(tmp_path, valid_text())
    r = run_cli(["-t", "-c", path])
    assert r.returncode == 0, r.stderr
    assert "ok" in (r.stdout + r.stderr).decode().split(), (r.stdout, r.stderr)


@pytest.mark.parametrize("value", ["500ms", "5s", "2m", "1h"])
def test_durations_accepted(tmp_path, value):
    text = valid_text().replace("client_header: 10s", "client_header: %s" % value)
    r = run_cli(["-t", "-c", write(tmp_path, text)])
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("value", ["512", "16k", "10m", "1g", "0"])
def test_sizes_accepted(tmp_path, value):
    text = valid_text().replace("max_body_bytes: 10m", "max_body_bytes: %s" % value)
    r = run_cli(["-t", "-c", write(tmp_path, text)])
    assert r.returncode == 0, r.stderr


def _minimal(port=None):
    return ("workers: 1\n"
            "listeners:\n"
            "  - name: web\n"
            "    listen: 127.0.0.1:%s\n"
            "upstreams:\n"
            "  app:\n"
            "    servers:\n"
            "      - {address: 127.0.0.1:3000}\n"
            "routes:\n"
            "  - upstream: app\n" % (port if port is not None else "LPORT"))


# (id, transform of the minimal config, needle whose position is the error, words the message must contain)
ERROR_CASES = [
    ("unknown-top-key", lambda t: t.replace("workers: 1\n", "workers: 1\nbogus_key: 3\n"), "bogus_key", ["bogus_key"]),
    ("unknown-nested-key", lambda t: t.replace("workers: 1\n", "workers: 1\ntimeouts:\n  client_header: 5s\n  clinet_body: 5s\n"),
     "clinet_body", ["clinet_body"]),
    ("unknown-server-key", lambda t: t.replace("{address: 127.0.0.1:3000}", "{address: 127.0.0.1:3000, wieght: 2}"),
     "wieght", ["wieght"]),
    ("unknown-route-key", lambda t: t.replace("  - upstream: app\n", "  - upstream: app\n    matcher: {path: /}\n"),
     "matcher", ["matcher"]),
    ("wrong-type-workers", lambda t: t.replace("workers: 1", "workers: [1, 2]"), "[1, 2]", []),
    ("wrong-type-listeners", lambda t: t.replace("listeners:\n  - name: web\n    listen: 127.0.0.1:LPORT\n",
                                                   "listeners: 17\n"), "17", []),
    ("wrong-type-weight", lambda t: t.replace("{address: 127.0.0.1:3000}", "{address: 127.0.0.1:3000, weight: heavy}"),
     "heavy", []),
    ("bad-duration", lambda t: t.replace("workers: 1\n", "workers: 1\ntimeouts:\n  keepalive: 5x\n"), "5x", []),
    ("bad-duration-negative", lambda t: t.replace("workers: 1\n", "workers: 1\nshutdown_grace: -3s\n"), "-3s", []),
    ("bad-size", lambda t: t.replace("workers: 1\n", "workers: 1\nlimits:\n  max_body_bytes: 10q\n"), "10q", []),
    ("bad-address-port", lambda t: t.replace("listen: 127.0.0.1:LPORT", "listen: 127.0.0.1:99999"), "127.0.0.1:99999", []),
    ("bad-address-server", lambda t: t.replace("{address: 127.0.0.1:3000}", "{address: 127.0.0.1}"), "127.0.0.1}", []),
    ("bad-address-host", lambda t: t.replace("{address: 127.0.0.1:3000}", "{address: 300.1.2.3:80}"), "300.1.2.3:80", []),
    ("undefined-upstream", lambda t: t.replace("  - upstream: app\n", "  - upstream: app\n  - match: {path: /x/}\n    upstream: nope\n"),
     "nope", ["nope"]),
    ("bad-balance", lambda t: t.replace("    servers:\n", "    balance: fastest\n    servers:\n"), "fastest", []),
    ("bad-log-level", lambda t: t.replace("workers: 1\n", "workers: 1\nlog:\n  level: loud\n"), "loud", []),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_reported_with_position(tmp_path, case):
    name, transform, needle, words = case
    text = transform(_minimal()).replace("LPORT", str(free_port()))
    # sanity: the minimal config itself must be valid
    base = _minimal(free_port())
    rb = run_cli(["-t", "-c", write(tmp_path, base, "base.yaml")])
    assert rb.returncode == 0, rb.stderr
    path = write(tmp_path, text)
    r = run_cli(["-t", "-c", path])
    assert r.returncode == 1, (text, r.stdout, r.stderr)
    errs = error_lines(path, r.stderr)
    assert errs, "no FILE:LINE:COL: message line in stderr: %r" % r.stderr
    line, col = pos(text, needle)
    assert (line, col) in [(e[0], e[1]) for e in errs], (text, r.stderr.decode(), (line, col))
    msg = [e[2] for e in errs if (e[0], e[1]) == (line, col)][0]
    for w in words:
        assert w in msg, msg
    assert "ok" not in r.stdout.decode().split()


def test_every_error_is_reported(tmp_path):
    text = _minimal(free_port())
    text = text.replace("workers: 1\n", "workers: 1\nbogus_key: 1\ntimeouts:\n  keepalive: 7parsecs\n")
    text = text.replace("  - upstream: app\n", "  - upstream: missing_one\n")
    path = write(tmp_path, text)
    r = run_cli(["-t", "-c", path])
    assert r.returncode == 1
    got = {(e[0], e[1]) for e in error_lines(path, r.stderr)}
    for needle in ("bogus_key", "7parsecs", "missing_one"):
        assert pos(text, needle) in got, (needle, r.stderr.decode())


def test_run_with_bad_config_exits_1(tmp_path):
    port = free_port()
    text = _minimal(port).replace("workers: 1\n", "workers: 1\nbogus_key: 3\n")
    path = write(tmp_path, text)
    r = run_cli(["-c", path], timeout=10)
    assert r.returncode == 1
    errs = error_lines(path, r.stderr)
    assert pos(text, "bogus_key") in [(e[0], e[1]) for e in errs], r.stderr


def test_yaml_syntax_error_has_position(tmp_path):
    text = _minimal(free_port()) + "  - match: {path: /x\n    upstream: app\n"
    path = write(tmp_path, text)
    r = run_cli(["-t", "-c", path])
    assert r.returncode == 1
    assert error_lines(path, r.stderr), r.stderr


def test_missing_file(tmp_path):
    path = str(tmp_path / "does-not-exist.yaml")
    r = run_cli(["-t", "-c", path])
    assert r.returncode == 1
    assert path in r.stderr.decode(), r.stderr


def test_unknown_key_in_full_config(tmp_path):
    text = valid_text().replace("    keepalive: 64\n", "    keepalive: 64\n    keepalive_timeout: 5s\n")
    path = write(tmp_path, text)
    r = run_cli(["-t", "-c", path])
    assert r.returncode == 1
    assert pos(text, "keepalive_timeout") in [(e[0], e[1]) for e in error_lines(path, r.stderr)], r.stderr


def test_t_does_not_listen(tmp_path):
    """-t only validates: it exits at once and never binds the listener."""
    port = free_port()
    path = write(tmp_path, _minimal(port))
    r = run_cli(["-t", "-c", path], timeout=10)
    assert r.returncode == 0
    import socket
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))  # still free
    finally:
        s.close()
