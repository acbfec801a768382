"""Binary upgrade (SIGUSR2, `portico --upgrade PID`): the running process
starts the binary found at its path anew, hands it its listening sockets
(proxy listeners and the admin API), and drains once the new process serves.
Under a steady bounded load no request fails; the new process (a new pid,
running the replaced binary file) serves afterwards and the old one is gone.
A new process that cannot start leaves the old one serving."""
import json
import os
import shutil
import signal
import threading
import time

from lib import portico as P
from lib.origin import echo
from lib.portico import SLOW, Closed, Conn, free_port, req, request, run_cli, wait_for

LOAD_THREADS = 4


def status(admin):
    r = request(admin, "GET", "/status", timeout=5)
    assert r.status == 200, r
    return r.json()


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] == "Z"  # a zombie has exited
    except OSError:
        return True


def own_binary(tmp_path, monkeypatch):
    """The binary at a path of this test's own, which the test may replace."""
    d = tmp_path / "bin"
    d.mkdir()
    path = str(d / "portico")
    shutil.copy2(P.bin_path(), path)
    monkeypatch.setattr(P, "BIN", path)
    return path


def replace_binary(path):
    """A new file at the same path (a new inode, as a package upgrade does)."""
    tmp = path + ".new"
    shutil.copy2(path, tmp)
    os.replace(tmp, path)
    return os.stat(path).st_ino


class Load:
    """Clients at a bounded rate (about 300 requests/s in all): keep-alive
    connections and one connection per request, half each.

    A failure is any request that does not get a complete 200 from an origin.
    The one case retried is the one HTTP allows a client to retry (RFC 9112
    section 9.3.1) and every client does: a GET on a reused keep-alive
    connection that the server closed without sending any byte of a response
    (the old process closes idle connections when it drains). A fresh
    connection that is refused or closed counts as a failure."""

    def __init__(self, port):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failures, self.done, self.retried = [], 0, 0
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(LOAD_THREADS)]

    def ok(self, r):
        with self.lock:
            self.done += 1
            if r.status != 200 or not r.complete or "origin" not in json.loads(r.body):
                self.failures.append((r.status, r.body[:80]))

    def fail(self, what):
        with self.lock:
            self.failures.append(what)

    def one_per_connection(self, n):
        try:
            self.ok(request(self.port, "GET", "/n/%d" % n, headers={"Connection": "close"}, timeout=10))
        except Exception as e:  # noqa: BLE001 - refused, reset or cut: a failure
            self.fail(repr(e))

    def keepalive(self, n):
        c = None
        try:
            c = Conn(self.port, timeout=10)
            for k in range(30):
                if self.stop.is_set():
                    return
                try:
                    c.send(req("GET", "/k/%d/%d" % (n, k)))
                    r = c.read_response()
                except (Closed, OSError):
                    if k == 0 or c.buf:
                        raise
                    with self.lock:
                        self.retried += 1
                    return  # closed while idle: the next round retries on a new connection
                self.ok(r)
                if "close" in r.conn_tokens():
                    return
                time.sleep(0.01)
        except Exception as e:  # noqa: BLE001
            self.fail(repr(e))
        finally:
            if c:
                c.close()

    def run(self, i):
        n = 0
        while not self.stop.is_set():
            if i % 2:
                self.one_per_connection(n)
                time.sleep(0.01)
            else:
                self.keepalive(n)
            n += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def config(admin, origins, grace="5s"):
    return ("workers: 2\nshutdown_grace: %s\n"
            "admin: {listen: \"127.0.0.1:%d\"}\n"
            "listeners: [{listen: \"${listen}\"}]\n"
            "upstreams: {app: {servers: [%s], keepalive: 8}}\n"
            "routes: [{upstream: app}]\n") % (grace, admin, ", ".join('"%s"' % o.address for o in origins))


def finish_new(pid):
    """Stops the new process (not a child of ours: the old one started it)."""
    if pid and not gone(pid):
        os.kill(pid, signal.SIGTERM)
        assert wait_for(lambda: gone(pid), timeout=15), "the new process did not stop"


def kill_leftovers(binary):
    """After a failed test: every process still running this test's own
    binary file (a new process never stopped), by pid."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            exe = os.readlink("/proc/%s/exe" % d)
        except OSError:
            continue
        if exe in (binary, binary + " (deleted)") and not gone(int(d)):
            try:
                os.kill(int(d), signal.SIGKILL)
            except OSError:
                pass


def test_upgrade_under_load(portico, origin, tmp_path, monkeypatch):
    binary = own_binary(tmp_path, monkeypatch)
    os_ = [origin(echo(delay=0.005), name=n) for n in "ab"]
    admin = free_port()
    p = portico(config(admin, os_))
    old = p.pid
    assert status(admin)["pid"] == old
    new = None
    try:
        with Load(p.port) as load:
            time.sleep(1.0 * SLOW)
            before = load.done
            assert before > 50, before
            ino = replace_binary(binary)
            r = run_cli(["--upgrade", str(old)])
            assert r.returncode == 0, r.stderr
            assert b"sent SIGUSR2 to %d" % old in r.stdout
            # the old process drains and exits cleanly once the new one serves
            assert p.wait(20 * SLOW) == 0, p.stderr()
            new = status(admin)["pid"]
            assert new != old and not gone(new)
            time.sleep(1.0 * SLOW)  # the new process carries the load alone
        print("load: %d requests, %d retried on a closed idle connection" % (load.done, load.retried))
        assert load.failures == [], (load.failures[:5], load.done, load.retried)
        assert load.done > before + 100, (before, load.done)
        # it runs the binary now at the path (the replaced file), not the old one
        assert os.readlink("/proc/%d/exe" % new) == binary
        assert os.stat("/proc/%d/exe" % new).st_ino == ino
        # it took the listening sockets over, serves, and the admin API is its own
        assert request(p.port, "GET", "/after").status == 200
        st = status(admin)
        assert st["pid"] == new and st["generation"] == 1
        log = p.stderr()
        assert "upgrade: started the new process (pid %d) with 3 listening sockets" % new in log, log
        assert "upgrade: took over the listening sockets of the previous process" in log
        assert "upgrade: the new process (pid %d) serves: this process stops accepting" % new in log
        assert gone(old)
        # and it can be upgraded again, by signal this time
        os.kill(new, signal.SIGUSR2)
        assert wait_for(lambda: status(admin)["pid"] not in (old, new), timeout=10)
        newer = status(admin)["pid"]
        assert wait_for(lambda: gone(new), timeout=15)
        assert request(p.port, "GET", "/again").status == 200
        new = newer
    finally:
        try:
            finish_new(new)
        finally:
            kill_leftovers(binary)


def test_failed_upgrade_keeps_the_old_process(portico, origin, tmp_path, monkeypatch):
    binary = own_binary(tmp_path, monkeypatch)
    o = origin(echo())
    admin = free_port()
    p = portico(config(admin, [o]))
    # the new process reads the file again: a broken file makes it exit
    with open(p.config_path, "a") as f:
        f.write("bogus: 1\n")
    with Load(p.port) as load:
        time.sleep(0.3 * SLOW)
        os.kill(p.pid, signal.SIGUSR2)
        assert wait_for(lambda: "upgrade failed" in p.stderr(), timeout=10), p.stderr()
        time.sleep(0.3 * SLOW)
    assert load.failures == [], load.failures[:5]
    log = p.stderr()
    assert "unknown key 'bogus'" in log
    assert "exited with status 1; this process keeps serving" in log, log
    assert p.alive() and status(admin)["pid"] == p.pid
    assert request(p.port, "GET", "/").status == 200
    # a second SIGUSR2 while nothing runs is a new attempt (and fails the same way)
    os.kill(p.pid, signal.SIGUSR2)
    assert wait_for(lambda: p.stderr().count("upgrade failed") == 2, timeout=10)
    assert p.alive()
    # a binary that is not there any more: the same, and the old one goes on
    os.unlink(binary)
    os.kill(p.pid, signal.SIGUSR2)
    assert wait_for(lambda: p.stderr().count("upgrade failed") == 3, timeout=10)
    assert "could not start %s; this process keeps serving" % binary in p.stderr(), p.stderr()
    assert request(p.port, "GET", "/").status == 200


def test_upgrade_cli_errors(tmp_path):
    r = run_cli(["--upgrade", "notapid"])
    assert r.returncode == 1 and b"is not a process id" in r.stderr
    r = run_cli(["--upgrade", "99999999999"])
    assert r.returncode == 1 and b"is not a process id" in r.stderr
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    r = run_cli(["--upgrade", str(dead)])
    assert r.returncode == 1 and b"No such process" in r.stderr
    r = run_cli(["--upgrade", "1", "-c", str(tmp_path / "x.yaml")])
    assert r.returncode == 1 and b"usage:" in r.stderr
