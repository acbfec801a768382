"""Lifecycle and CLI: graceful SIGTERM/SIGINT, SIGQUIT, access log, error log,
quick mode, -t, --version, --help."""
import json
import os
import re
import signal
import socket
import threading
import time

from lib.origin import by_path, echo, never_answer
from lib.portico import SLOW, Closed, Conn, free_port, proxy_config, req, request, run_cli, wait_for


def test_version():
    r = run_cli(["--version"])
    assert r.returncode == 0
    assert r.stdout.decode().splitlines()[0].startswith("portico ")


def test_help():
    r = run_cli(["--help"])
    assert r.returncode == 0
    out = (r.stdout + r.stderr).decode()
    assert "-c" in out and "--from" in out


def test_t_valid(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("listeners:\n  - {name: web, listen: 127.0.0.1:%d}\nroutes:\n  - respond: {status: 200}\n"
                    % free_port())
    r = run_cli(["-t", "-c", str(path)])
    assert r.returncode == 0 and "ok" in (r.stdout + r.stderr).decode().split()


def test_quick_mode_round_robin(portico, origin):
    a = origin(echo(), name="a")
    b = origin(echo(), name="b")
    port = free_port()
    p = portico(args=["--from", ":%d" % port, "--to", a.address, "--to", b.address])
    p.port = port
    from lib.portico import wait_port
    assert wait_port(port, 10 * SLOW, p.proc), p.stderr()
    seq = [request(port, "GET", "/q%d" % i).header("x-origin") for i in range(20)]
    # each worker (default: one per CPU) runs its own round robin
    assert a.n_requests + b.n_requests == 20
    assert a.n_requests > 0 and b.n_requests > 0, seq
    assert abs(seq.count("a") - seq.count("b")) <= max(2, os.cpu_count() or 1), seq


def test_quick_mode_host_form(portico, origin):
    a = origin(echo(), name="a")
    port = free_port()
    p = portico(args=["--from", "127.0.0.1:%d" % port, "--to", a.address])
    from lib.portico import wait_port
    assert wait_port(port, 10 * SLOW, p.proc), p.stderr()
    assert request(port, "GET", "/").header("x-origin") == "a"


def test_sigterm_graceful(portico, origin):
    delay = 3.0 * SLOW
    o = origin(by_path({"/slow": echo(delay=delay)}))
    p = portico(proxy_config([o.address], extra="shutdown_grace: 20s\n"))
    # an idle keep-alive connection
    idle = Conn(p.port)
    idle.send(req("GET", "/warm"))
    assert idle.read_response().status == 200
    # an in-flight slow request
    res = {}

    def slow():
        try:
            res["r"] = request(p.port, "GET", "/slow", timeout=30)
        except Exception as e:  # noqa
            res["e"] = e

    t = threading.Thread(target=slow)
    t.start()
    assert o.wait_requests(2)
    t_sig = time.monotonic()
    p.kill(signal.SIGTERM)
    try:
        # the idle keep-alive connection is closed promptly, while the slow request is still running
        assert idle.is_closed(2), "idle keep-alive connection not closed after SIGTERM"
        assert p.alive(), "exited before the in-flight request finished"
        # new connections are not served
        time.sleep(0.3)
        served = False
        try:
            c = Conn(p.port, timeout=1)
            try:
                c.send(req("GET", "/new"))
                served = c.read_response().status == 200
            except (Closed, OSError):
                pass
            finally:
                c.close()
        except OSError:
            pass
        assert not served, "a new connection was served after SIGTERM"
        t.join(30)
        assert "e" not in res, res
        assert res["r"].status == 200 and res["r"].json()["path"] == "/slow"
        rc = p.wait(20 * SLOW)
        assert rc == 0, rc
        assert time.monotonic() - t_sig < 20 + 2 * SLOW
        assert o.paths().count("/new") == 0
    finally:
        idle.close()
        t.join(5)


def test_sigterm_grace_expires(portico, origin):
    o = origin(never_answer())
    p = portico(proxy_config([o.address], extra="shutdown_grace: 1s\n"))
    c = Conn(p.port, timeout=15)
    try:
        c.send(req("GET", "/stuck"))
        assert o.wait_requests(1)
        t0 = time.monotonic()
        p.kill(signal.SIGTERM)
        rc = p.wait(10 * SLOW)
        dt = time.monotonic() - t0
        assert rc == 0, rc
        assert dt < 1 + 3 * SLOW, dt
        # the stuck client is not left hanging
        try:
            c.read_response()
        except (Closed, OSError):
            pass
        assert c.is_closed(2)
    finally:
        c.close()


def test_sigint_graceful(portico, origin):
    o = origin(echo())
    p = portico(proxy_config([o.address]))
    assert request(p.port, "GET", "/").status == 200
    p.kill(signal.SIGINT)
    rc = p.wait(5 * SLOW)
    assert rc == 0, rc


def test_sigquit_immediate(portico, origin):
    o = origin(never_answer())
    p = portico(proxy_config([o.address], extra="shutdown_grace: 30s\n"))
    p.check_exit_code = False  # an immediate stop; its status is not the point
    c = Conn(p.port, timeout=15)
    try:
        c.send(req("GET", "/stuck"))
        assert o.wait_requests(1)
        t0 = time.monotonic()
        p.kill(signal.SIGQUIT)
        rc = p.wait(5 * SLOW)
        assert rc is not None, "SIGQUIT did not stop portico"
        assert time.monotonic() - t0 < 2 * SLOW
        assert c.is_closed(2)
    finally:
        c.close()


def test_refused_after_exit(portico, origin):
    o = origin(echo())
    p = portico(proxy_config([o.address]))
    port = p.port
    assert p.stop() == 0
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        assert False, "still accepting after exit"
    except ConnectionRefusedError:
        pass
    finally:
        s.close()


ACCESS = """\
workers: 1
log:
  access: ${access}
listeners:
  - name: web
    listen: ${listen}
upstreams:
  app:
    servers:
      - {address: ${o}}
routes:
  - name: static
    match: {path: /static}
    respond: {status: 200, body: "static body"}
  - match: {path: /api/}
    upstream: app
  - name: named-proxy
    match: {path: /named/}
    upstream: app
"""

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")


def read_log(path, n, timeout=5.0):
    def lines():
        try:
            with open(path) as f:
                return [ln for ln in f.read().splitlines() if ln.strip()]
        except OSError:
            return []
    wait_for(lambda: len(lines()) >= n, timeout)
    return [json.loads(ln) for ln in lines()]


def test_access_log(portico, origin, tmp_path):
    o = origin(echo())
    access = str(tmp_path / "access.log")
    p = portico(ACCESS, access=access, o=o.address)
    r1 = request(p.port, "GET", "/api/items", [("User-Agent", "e2e-agent/1.0"), ("X-Request-Id", "rid-123")],
                 host="api.example.test")
    assert r1.status == 200
    r2 = request(p.port, "POST", "/named/x", [("User-Agent", "poster")], body=b"p" * 100)
    assert r2.status == 200
    r3 = request(p.port, "GET", "/static")
    assert r3.status == 200
    r4 = request(p.port, "GET", "/nowhere")
    assert r4.status == 404
    assert p.stop() == 0  # flushes
    entries = read_log(access, 4)
    assert len(entries) == 4, entries
    by_path_ = {e["path"]: e for e in entries}
    fields = ["time", "request_id", "client_ip", "method", "host", "path", "protocol", "status", "bytes_in",
              "bytes_out", "duration_ms", "upstream", "upstream_ms", "cache", "user_agent", "route"]
    for e in entries:
        for f in fields:
            assert f in e, (f, e)
        assert TIME_RE.match(e["time"]), e["time"]
        assert e["client_ip"] == "127.0.0.1"
        assert e["protocol"] == "HTTP/1.1"
        assert isinstance(e["status"], int)
        assert isinstance(e["bytes_in"], int) and isinstance(e["bytes_out"], int)
        assert isinstance(e["duration_ms"], (int, float)) and e["duration_ms"] >= 0
        assert e["cache"] is None
        assert isinstance(e["request_id"], str) and e["request_id"]

    e = by_path_["/api/items"]
    assert e["method"] == "GET" and e["status"] == 200
    assert e["host"] == "api.example.test"
    assert e["request_id"] == "rid-123"
    assert e["user_agent"] == "e2e-agent/1.0"
    assert e["upstream"] == o.address
    assert isinstance(e["upstream_ms"], (int, float)) and e["upstream_ms"] >= 0
    assert e["route"] == "route1"  # unnamed: route<index>
    assert e["bytes_out"] >= len(r1.body)

    e = by_path_["/named/x"]
    assert e["method"] == "POST" and e["route"] == "named-proxy" and e["user_agent"] == "poster"
    assert e["bytes_in"] >= 100
    assert e["request_id"] == r2.header("x-request-id")

    e = by_path_["/static"]
    assert e["route"] == "static" and e["upstream"] is None and e["status"] == 200
    assert e["bytes_out"] >= len(b"static body")

    e = by_path_["/nowhere"]
    assert e["status"] == 404 and e["upstream"] is None


def test_access_log_written_while_running(portico, origin, tmp_path):
    o = origin(echo())
    access = str(tmp_path / "access.log")
    p = portico(ACCESS, access=access, o=o.address)
    for i in range(3):
        assert request(p.port, "GET", "/api/%d" % i).status == 200
    entries = read_log(access, 3, timeout=5)
    assert [e["path"] for e in entries] == ["/api/0", "/api/1", "/api/2"]


def test_access_log_error_statuses(portico, origin, tmp_path):
    o = origin(echo())
    access = str(tmp_path / "access.log")
    p = portico(ACCESS, access=access, o=o.address)
    with Conn(p.port) as c:
        c.send(b"GET /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert c.read_response().status == 400
    assert p.stop() == 0
    entries = read_log(access, 1)
    assert [e["status"] for e in entries] == [400]


def _error_log_run(portico, tmp_path, level, dead_port):
    errlog = str(tmp_path / ("error-%s.log" % level))
    dead = dead_port().address
    cfg = ("workers: 1\nlog:\n  error: ${err}\n  level: %s\nlisteners:\n  - {name: web, listen: ${listen}}\n"
           "upstreams:\n  app:\n    servers:\n      - {address: ${dead}}\nroutes:\n  - upstream: app\n" % level)
    p = portico(cfg, err=errlog, dead=dead)
    assert request(p.port, "GET", "/").status == 502
    assert p.stop() == 0
    with open(errlog) as f:
        return f.read(), dead


def test_error_log_upstream_failure(portico, tmp_path, dead_port):
    """A refused upstream is worth a line (at info level or above), naming the server."""
    info, dead = _error_log_run(portico, tmp_path, "info", dead_port)
    assert dead in info, info


def test_error_log_file_and_levels(portico, tmp_path, dead_port):
    debug, dead = _error_log_run(portico, tmp_path, "debug", dead_port)
    info, dead_i = _error_log_run(portico, tmp_path, "info", dead_port)
    error, _ = _error_log_run(portico, tmp_path, "error", dead_port)
    assert info.strip(), "nothing in the error log file at level info"
    # levels filter: debug says at least as much as info, info as much as error, debug more than error
    nd, ni, ne = len(debug.splitlines()), len(info.splitlines()), len(error.splitlines())
    assert nd >= ni >= ne and nd > ne, (debug, info, error)
