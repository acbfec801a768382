"""Config reload (SIGHUP): the new snapshot takes effect, listeners present in
both configs keep their sockets, removed ones close, new ones open; a bad file
changes nothing; server state (drain) survives; no request fails while
reloading under a steady bounded load."""
import os
import signal
import socket
import threading
import time

from lib.origin import echo
from lib.portico import SLOW, free_port, request, wait_port


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def cfg(listen, body, extra_listener=None, upstream=None):
    lines = ["workers: 2", "shutdown_grace: 2s", "listeners:", "  - {listen: \"127.0.0.1:%d\"}" % listen]
    if extra_listener:
        lines.append("  - {listen: \"127.0.0.1:%d\"}" % extra_listener)
    if upstream:
        lines += ["upstreams:", "  app: {servers: [%s], keepalive: 8}" % ", ".join('"%s"' % a for a in upstream),
                  "routes:", "  - {match: {path: /app}, upstream: app}"]
    else:
        lines.append("routes:")
    lines.append("  - {respond: {body: \"%s\\n\"}}" % body)
    return "\n".join(lines) + "\n"


def reload_and_wait(p, errlog, n_before):
    os.kill(p.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5 * SLOW
    while time.monotonic() < deadline:
        with open(errlog) as f:
            text = f.read()
        if text.count("reloaded") + text.count("reload failed") > n_before:
            return text
        time.sleep(0.02)
    raise AssertionError("no reload outcome logged")


def count_outcomes(errlog):
    with open(errlog) as f:
        t = f.read()
    return t.count("reloaded") + t.count("reload failed")


def refused(port):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def run_file(portico, path, port):
    """Starts portico on a config file the test rewrites between reloads."""
    p = portico(None, args=["-c", path], wait=False)
    p.port = port
    assert wait_port(port, 10.0 * SLOW, p.proc), p.stderr()
    return p


def test_reload_changes_routes_and_listeners(portico, tmp_path):
    port, port2 = free_port(), free_port()
    path = str(tmp_path / "r.yaml")
    errlog = str(tmp_path / "err.log")
    head = "log: {error: %s}\n" % errlog
    write(path, head + cfg(port, "one"))
    p = run_file(portico, path, port)
    assert request(port, "GET", "/").body == b"one\n"
    assert refused(port2)

    write(path, head + cfg(port, "two", extra_listener=port2))
    reload_and_wait(p, errlog, count_outcomes(errlog))
    assert request(port, "GET", "/").body == b"two\n"
    assert request(port2, "GET", "/").body == b"two\n"

    write(path, head + cfg(port, "three"))
    reload_and_wait(p, errlog, count_outcomes(errlog))
    assert request(port, "GET", "/").body == b"three\n"
    assert refused(port2), "a listener removed by a reload must stop accepting"


def test_bad_reload_changes_nothing(portico, tmp_path):
    port = free_port()
    path = str(tmp_path / "r.yaml")
    errlog = str(tmp_path / "err.log")
    head = "log: {error: %s}\n" % errlog
    write(path, head + cfg(port, "good"))
    p = run_file(portico, path, port)
    write(path, head + cfg(port, "bad") + "bogus_key: 1\n")
    text = reload_and_wait(p, errlog, count_outcomes(errlog))
    assert "reload failed" in text
    assert "unknown key 'bogus_key'" in text
    assert request(port, "GET", "/").body == b"good\n"


def test_keepalive_connection_sees_new_routes(portico, tmp_path):
    """A connection opened before the reload serves its next request from the
    new snapshot (and keeps working)."""
    from lib.portico import Conn, req
    port = free_port()
    path = str(tmp_path / "r.yaml")
    errlog = str(tmp_path / "err.log")
    head = "log: {error: %s}\n" % errlog
    write(path, head + cfg(port, "before"))
    p = run_file(portico, path, port)
    with Conn(port) as c:
        c.send(req("GET", "/"))
        assert c.read_response().body == b"before\n"
        write(path, head + cfg(port, "after"))
        reload_and_wait(p, errlog, count_outcomes(errlog))
        c.send(req("GET", "/"))
        assert c.read_response().body == b"after\n"


def test_reload_under_load_loses_nothing(portico, origin, tmp_path):
    o1 = origin(echo(), name="o1")
    o2 = origin(echo(), name="o2")
    port = free_port()
    path = str(tmp_path / "r.yaml")
    errlog = str(tmp_path / "err.log")
    head = "log: {error: %s}\n" % errlog
    configs = [head + cfg(port, "a", upstream=[o1.address]),
               head + cfg(port, "b", upstream=[o2.address])]
    write(path, configs[0])
    p = run_file(portico, path, port)
    stop = threading.Event()
    failures, done = [], [0]
    lock = threading.Lock()

    def client(keepalive):
        from lib.portico import Conn, req
        while not stop.is_set():
            try:
                if keepalive:
                    with Conn(port, timeout=5) as c:
                        for _ in range(20):
                            c.send(req("GET", "/app"))
                            r = c.read_response()
                            with lock:
                                done[0] += 1
                                if r.status != 200:
                                    failures.append(r.status)
                else:
                    r = request(port, "GET", "/app", headers={"Connection": "close"}, timeout=5)
                    with lock:
                        done[0] += 1
                        if r.status != 200:
                            failures.append(r.status)
            except Exception as e:  # a dropped connection is a failure
                with lock:
                    failures.append(repr(e))

    threads = [threading.Thread(target=client, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(30):
            write(path, configs[(i + 1) % 2])
            reload_and_wait(p, errlog, count_outcomes(errlog))
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    assert done[0] > 100
    assert failures == [], failures[:5]
    assert o1.n_requests > 0 and o2.n_requests > 0


def test_drain_state_survives_reload(portico, origin, tmp_path):
    """Server state is carried over: a server drained through the admin API
    stays drained after a reload that still lists it."""
    import json
    import urllib.request
    o1 = origin(echo(), name="o1")
    o2 = origin(echo(), name="o2")
    port, admin = free_port(), free_port()
    path = str(tmp_path / "r.yaml")
    errlog = str(tmp_path / "err.log")
    head = "log: {error: %s}\nadmin: {listen: \"127.0.0.1:%d\"}\n" % (errlog, admin)
    write(path, head + cfg(port, "x", upstream=[o1.address, o2.address]))
    p = run_file(portico, path, port)
    url = "http://127.0.0.1:%d/upstreams/app/servers/%s/drain" % (admin, o1.address)
    r = urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5)
    assert r.status == 200
    write(path, head + cfg(port, "y", upstream=[o1.address, o2.address]))
    reload_and_wait(p, errlog, count_outcomes(errlog))
    before = o1.n_requests
    for _ in range(10):
        assert request(port, "GET", "/app").status == 200
    assert o1.n_requests == before, "a drained server got requests after the reload"
    doc = json.loads(urllib.request.urlopen("http://127.0.0.1:%d/status" % admin, timeout=5).read())
    assert "DRAINING" in json.dumps(doc)
