"""Logs: SIGUSR1 reopens the access and error logs after a logrotate-style
rename, `log.access: stdout`, a failing destination (/dev/full: disk full)
does not stop request handling and is reported once in the error log, a
reopen that fails keeps the old file and says so, and a destination that
stops reading (a FIFO nobody drains) does not block the workers and loses
nothing once it reads again."""
import json
import os
import shutil
import signal
import stat
import time

from lib.origin import echo
from lib.portico import SLOW, Conn, req, request, wait_for


def cfg(access, error=None, dead=None):
    err = "  error: %s\n" % error if error else ""
    dead_route = ("  - name: dead\n    match: {path: /dead}\n    upstream: dead\n" if dead else "")
    dead_up = ("  dead:\n    servers:\n      - {address: %s}\n" % dead if dead else "")
    return ("workers: 2\nlog:\n  access: %s\n%s"
            "listeners:\n  - {name: web, listen: ${listen}}\n"
            "upstreams:\n  app:\n    servers:\n      - {address: ${o}}\n%s"
            "routes:\n%s  - {name: api, upstream: app}\n") % (access, err, dead_up, dead_route)


def lines(path):
    try:
        with open(path) as f:
            return [json.loads(ln) for ln in f.read().splitlines() if ln.strip()]
    except OSError:
        return []


def text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def burst(port, n, path="/x"):
    """n requests on one keep-alive connection; all must be 200."""
    with Conn(port) as c:
        for i in range(n):
            c.send(req("GET", "%s/%d" % (path, i)))
            r = c.read_response()
            assert r.status == 200, r


def test_sigusr1_reopens_both_logs(portico, origin, tmp_path, dead_port):
    o = origin(echo())
    access, error = str(tmp_path / "access.log"), str(tmp_path / "error.log")
    p = portico(cfg(access, error, dead=dead_port().address), o=o.address)
    burst(p.port, 2, "/before")
    assert wait_for(lambda: len(lines(access)) == 2)
    # logrotate: rename, then signal
    os.rename(access, access + ".1")
    os.rename(error, error + ".1")
    p.kill(signal.SIGUSR1)
    # both files come back as soon as the signal was handled
    assert wait_for(lambda: os.path.exists(access) and os.path.exists(error))
    assert "received SIGUSR1: reopening logs" in text(error + ".1")
    burst(p.port, 3, "/after")
    assert request(p.port, "GET", "/dead").status == 502  # an error-log line
    assert wait_for(lambda: len(lines(access)) == 4)
    assert sorted(e["path"] for e in lines(access)) == ["/after/0", "/after/1", "/after/2", "/dead"]
    assert [e["path"] for e in lines(access + ".1")] == ["/before/0", "/before/1"]
    assert wait_for(lambda: "connect failed" in text(error))
    assert "connect failed" not in text(error + ".1")


def test_access_log_to_stdout(portico, origin):
    o = origin(echo())
    p = portico(cfg("stdout"), o=o.address)
    burst(p.port, 5, "/out")
    assert request(p.port, "POST", "/posted", body=b"abc").status == 200

    def got():
        return [json.loads(ln) for ln in p.stdout().splitlines() if ln.startswith("{")]
    assert wait_for(lambda: len(got()) == 6)
    entries = got()
    # one connection, one worker: in order; the other may be on another worker
    assert [e["path"] for e in entries if e["path"].startswith("/out/")] == ["/out/%d" % i for i in range(5)]
    (post,) = [e for e in entries if e["path"] == "/posted"]
    assert post["method"] == "POST" and post["status"] == 200 and post["route"] == "api"
    assert p.stop() == 0
    assert len(got()) == 6  # nothing written twice at exit


def test_full_disk_reported_once_requests_go_on(portico, origin, tmp_path):
    if not os.path.exists("/dev/full"):
        import pytest
        pytest.skip("no /dev/full")
    o = origin(echo())
    error = str(tmp_path / "error.log")
    p = portico(cfg("/dev/full", error), o=o.address)
    # several batches, each flushed on its own (the workers' 200 ms tick)
    for _ in range(4):
        burst(p.port, 25)
        time.sleep(0.5)
    msg = "access log: cannot write to /dev/full: No space left on device"
    assert wait_for(lambda: msg in text(error))
    # a reopen (logrotate) of a still-full destination: no new report
    p.kill(signal.SIGUSR1)
    assert wait_for(lambda: "reopening logs" in text(error))
    for _ in range(3):
        burst(p.port, 25)
        time.sleep(0.5)
    assert request(p.port, "GET", "/last").status == 200
    assert p.stop() == 0
    assert text(error).count("access log: cannot write") == 1, text(error)
    assert "writing to /dev/full again" not in text(error)


def test_failed_reopen_keeps_the_old_file(portico, origin, tmp_path):
    o = origin(echo())
    d = tmp_path / "logs"
    d.mkdir()
    access = str(d / "access.log")
    error = str(tmp_path / "error.log")
    p = portico(cfg(access, error), o=o.address)
    burst(p.port, 2)
    assert wait_for(lambda: len(lines(access)) == 2)
    shutil.rmtree(str(d))  # the directory is gone: the reopen cannot create the file
    p.kill(signal.SIGUSR1)
    assert wait_for(lambda: "access log: cannot reopen %s" % access in text(error))
    burst(p.port, 3)  # requests go on (their lines go to the old, unlinked file)
    time.sleep(1.0 * SLOW)  # handed to the writer (200 ms tick) and written there
    d.mkdir()
    p.kill(signal.SIGUSR1)
    assert wait_for(lambda: os.path.exists(access))
    burst(p.port, 4, "/back")
    assert wait_for(lambda: len(lines(access)) == 4)
    assert [e["path"] for e in lines(access)] == ["/back/%d" % i for i in range(4)]
    assert text(error).count("cannot reopen") == 1


def test_stuck_destination_does_not_block_workers(portico, origin, tmp_path):
    o = origin(echo())
    fifo = str(tmp_path / "access.fifo")
    os.mkfifo(fifo)
    # A reader that reads nothing for now: portico's open does not block, its
    # writes block once the pipe (64 KiB) is full.
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        p = portico(cfg(fifo), o=o.address)
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)
        n = 0
        t0 = time.monotonic()
        for _ in range(6):
            burst(p.port, 400)  # about 130 KiB of lines per batch
            n += 400
            time.sleep(0.25)  # let the workers hand their buffers over
        elapsed = time.monotonic() - t0
        # the writer thread is stuck in write() by now; requests were not
        assert elapsed < 30 * SLOW
        assert request(p.port, "GET", "/still").status == 200
        n += 1
        # now read: every line arrives, in one piece each
        data = bytearray()
        deadline = time.monotonic() + 20 * SLOW
        while data.count(b"\n") < n and time.monotonic() < deadline:
            try:
                chunk = os.read(rfd, 1 << 20)
            except BlockingIOError:
                chunk = b""
            if chunk:
                data += chunk
            else:
                time.sleep(0.02)
        got = [json.loads(ln) for ln in data.decode().splitlines()]
        assert len(got) == n
        assert sum(1 for e in got if e["path"] == "/still") == 1
        assert p.stop() == 0
    finally:
        os.close(rfd)
