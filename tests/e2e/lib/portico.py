"""Harness: start the real portico binary, talk to it with raw sockets and curl.

Everything here is bounded: every socket has a timeout, every loop a count.
Traffic goes to 127.0.0.1 only.
"""
import os
import signal
import socket
import string
import subprocess
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.environ.get("PORTICO_BIN") or os.path.join(REPO, "build", "portico")
ASAN = os.environ.get("PORTICO_ASAN") == "1"
# Multiplier for waits: sanitizer builds are several times slower.
SLOW = 4 if ASAN else 1



def bin_path():
    return BIN  # read at call time: conftest may point it at a private copy


SANITIZER_MARKERS = ("AddressSanitizer", "runtime error", "LeakSanitizer")


# ---------------------------------------------------------------- ports

def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class DeadPort:
    """A port on 127.0.0.1 that refuses connections and stays reserved: a
    socket bound to it that never listens (without SO_REUSEADDR, so nothing
    else on the host can take the port while the test runs)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port

    def release(self):
        """Free the port (e.g. to start an origin on it)."""
        self.sock.close()


def wait_port(port, timeout=10.0, proc=None, host="127.0.0.1"):
    """Wait until host:port accepts a TCP connection. Returns True/False."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            s = socket.create_connection((host, port), timeout=0.5)
            s.close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


# ---------------------------------------------------------------- process

class PorticoError(Exception):
    pass


class Portico:
    """One portico process.

    `config` is YAML text; `${name}` placeholders are substituted with
    string.Template: `${listen}` becomes 127.0.0.1:<free port> (self.port),
    any other name comes from `subst` (e.g. o1=origin.address). Write `$$`
    for a literal dollar (regex routes). If the text has no shutdown_grace,
    "shutdown_grace: 2s" is prepended so teardown stays quick.
    """

    def __init__(self, workdir, config=None, subst=None, args=None, env=None):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.proc = None
        self.port = None
        self.config_path = None
        self.rc = None
        self.stopped = False
        # Tests that stop the process in a way whose exit status is not the
        # point (SIGQUIT) set this to skip the exit-code check.
        self.check_exit_code = True
        self.stderr_path = os.path.join(self.workdir, "stderr.log")
        self.stdout_path = os.path.join(self.workdir, "stdout.log")
        subst = dict(subst or {})
        if config is not None:
            if "listen" not in subst:
                self.port = free_port()
                subst["listen"] = "127.0.0.1:%d" % self.port
            text = string.Template(config).substitute(subst)
            if "shutdown_grace" not in text:
                text = "shutdown_grace: 2s\n" + text
            self.config_text = text
            self.config_path = os.path.join(self.workdir, "portico.yaml")
            with open(self.config_path, "w") as f:
                f.write(text)
            self.args = ["-c", self.config_path] + list(args or [])
        else:
            self.config_text = None
            self.args = list(args or [])
        self.env = dict(os.environ)
        for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            self.env.pop(k, None)
        if env:
            self.env.update(env)

    @property
    def pid(self):
        return self.proc.pid

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def start(self, wait=True, timeout=None):
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen([bin_path()] + self.args, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err, env=self.env)
        if wait and self.port is not None:
            ok = wait_port(self.port, timeout or 10.0 * SLOW, self.proc)
            if not ok:
                rc = self.proc.poll()
                if rc is None:
                    self.proc.kill()
                    self.proc.wait(5)
                self.stopped = True
                self.rc = self.proc.returncode
                raise PorticoError("portico did not start listening on %d (rc=%s)\nconfig:\n%s\nstderr:\n%s"
                                   % (self.port, rc, self.config_text, self.stderr()))
        return self

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stdout(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Wait for exit; returns the return code or None on timeout."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Signal and wait. Returns the return code (kills on timeout and raises)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            rc = self.wait(timeout if timeout is not None else 15.0 * SLOW)
            if rc is None:
                self.proc.kill()
                self.proc.wait(10)
                self.rc = self.proc.returncode
                self.stopped = True
                self._close_files()
                raise PorticoError("portico did not exit within the timeout after signal %d" % sig)
        self.rc = self.proc.returncode
        self.stopped = True
        self._close_files()
        return self.rc

    def _close_files(self):
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f is not None and not f.closed:
                f.close()

    def finish(self):
        """Teardown: stop if running, return a list of problems found."""
        problems = []
        if self.proc is None:
            return problems
        try:
            rc = self.stop()
        except PorticoError as e:
            problems.append(str(e))
            rc = self.rc
        if self.check_exit_code and rc not in (0, -signal.SIGTERM):
            problems.append("portico exited with status %r" % rc)
        err = self.stderr()
        for m in SANITIZER_MARKERS:
            if m in err:
                problems.append("sanitizer report (%s) in portico stderr:\n%s" % (m, err[-6000:]))
                break
        return problems

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise PorticoError("no VmRSS")


def run_cli(args, timeout=20, cwd=None):
    """Run the binary to completion (for -t, --version, --help)."""
    env = dict(os.environ)
    r = subprocess.run([bin_path()] + list(args), capture_output=True, timeout=timeout * SLOW, cwd=cwd, env=env)
    err = r.stderr.decode("utf-8", "replace")
    for m in SANITIZER_MARKERS:
        assert m not in err, "sanitizer report (%s) from portico %s:\n%s" % (m, " ".join(args), err[-6000:])
    return r


# ---------------------------------------------------------------- HTTP client side

class Response:
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = None
        self.headers = []      # [(name, value)] in order, names as sent
        self.body = b""
        self.trailers = []
        self.raw = b""         # the whole message as received
        self.chunked = False
        self.complete = False  # body ended by its framing (not by EOF/timeout)

    def header(self, name, default=None):
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return default

    def headers_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def has(self, name):
        return self.header(name) is not None

    def conn_tokens(self):
        toks = []
        for v in self.headers_all("connection"):
            toks += [t.strip().lower() for t in v.split(",") if t.strip()]
        return toks

    def json(self):
        import json
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %s %r headers=%r body=%r>" % (self.status, self.reason, self.headers, self.body[:200])


class Closed(Exception):
    """The peer closed the connection before a full message arrived."""


class Conn:
    """A raw client connection with an input buffer."""

    def __init__(self, port, timeout=5.0, host="127.0.0.1", rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout * SLOW)
        self.sock.connect((host, port))
        self.buf = bytearray()
        self.eof = False

    def settimeout(self, t):
        self.sock.settimeout(t)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self):
        if self.eof:
            raise Closed("connection closed")
        try:
            d = self.sock.recv(262144)
        except ConnectionResetError:
            self.eof = True
            raise Closed("connection reset")
        if not d:
            self.eof = True
            raise Closed("connection closed")
        self.buf += d

    def read_until(self, delim, limit=1 << 22):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[:i + len(delim)])
                del self.buf[:i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise AssertionError("no %r within %d bytes" % (delim, limit))
            self._fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_some(self):
        """Whatever is buffered, or one recv; b'' at EOF."""
        if self.buf:
            out = bytes(self.buf)
            self.buf.clear()
            return out
        try:
            self._fill()
        except Closed:
            return b""
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_to_close(self, limit=1 << 26):
        """Read until EOF (raises socket.timeout if it does not come)."""
        while len(self.buf) <= limit:
            try:
                self._fill()
            except Closed:
                break
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_response(self, method="GET", skip_1xx=True):
        """Read one response. With skip_1xx, interim 1xx (not 101) responses are skipped."""
        while True:
            r = self._read_one(method)
            if skip_1xx and r.status is not None and 100 <= r.status < 200 and r.status != 101:
                continue
            return r

    def _read_one(self, method):
        r = Response()
        head = self.read_until(b"\r\n\r\n", limit=1 << 20)
        r.raw = head
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ", 2)
        r.version = parts[0]
        r.status = int(parts[1])
        r.reason = parts[2] if len(parts) > 2 else ""
        for ln in lines[1:]:
            k, _, v = ln.decode("latin-1").partition(":")
            r.headers.append((k, v.strip(" \t")))
        if r.status < 200 or r.status in (204, 304) or method.upper() == "HEAD":
            r.complete = True
            return r
        te = ",".join(r.headers_all("transfer-encoding")).lower()
        if "chunked" in te:
            r.chunked = True
            body = bytearray()
            raw = bytearray()
            try:
                while True:
                    line = self.read_until(b"\r\n")
                    raw += line
                    size = int(line.split(b";")[0].strip(), 16)
                    if size == 0:
                        while True:
                            tl = self.read_until(b"\r\n")
                            raw += tl
                            if tl == b"\r\n":
                                break
                            k, _, v = tl[:-2].decode("latin-1").partition(":")
                            r.trailers.append((k, v.strip()))
                        r.complete = True
                        break
                    data = self.read_exact(size + 2)
                    raw += data
                    body += data[:-2]
            except Closed:
                pass
            r.body = bytes(body)
            r.raw += bytes(raw)
            return r
        cl = r.header("content-length")
        if cl is not None:
            n = int(cl)
            got = bytearray()
            try:
                while len(got) < n:
                    if not self.buf:
                        self._fill()
                    take = min(n - len(got), len(self.buf))
                    got += self.buf[:take]
                    del self.buf[:take]
                r.complete = True
            except Closed:
                pass
            r.body = bytes(got)
            r.raw += r.body
            return r
        # close-delimited
        r.body = self.read_to_close()
        r.raw += r.body
        r.complete = True
        return r

    def is_closed(self, timeout=2.0):
        """True if the peer closes (EOF or reset) within timeout, with no data pending."""
        if self.eof:
            return True
        if self.buf:
            return False
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout * SLOW)
        try:
            d = self.sock.recv(65536)
            if not d:
                self.eof = True
                return True
            self.buf += d
            return False
        except ConnectionResetError:
            self.eof = True
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(old)

    def still_open(self, wait=0.3):
        """True if nothing (no EOF, no data) arrives within `wait` seconds."""
        if self.eof:
            return False
        old = self.sock.gettimeout()
        self.sock.settimeout(wait)
        try:
            d = self.sock.recv(65536)
            if not d:
                self.eof = True
                return False
            self.buf += d
            return True
        except ConnectionResetError:
            self.eof = True
            return False
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(old)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def req(method="GET", target="/", headers=None, body=None, host="example.test", version="HTTP/1.1"):
    """Serialise a request. headers: list of (name, value) or dict. Host first unless host=None.
    A Content-Length is added for a body unless a framing header is given."""
    if isinstance(headers, dict):
        headers = list(headers.items())
    headers = list(headers or [])
    names = {k.lower() for k, _ in headers}
    out = ["%s %s %s\r\n" % (method, target, version)]
    if host is not None and "host" not in names:
        out.append("Host: %s\r\n" % host)
    for k, v in headers:
        out.append("%s: %s\r\n" % (k, v))
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        out.append("Content-Length: %d\r\n" % len(body))
    out.append("\r\n")
    data = "".join(out).encode("latin-1")
    if body is not None:
        data += body if isinstance(body, bytes) else body.encode("latin-1")
    return data


def request(port, method="GET", target="/", headers=None, body=None, host="example.test",
            version="HTTP/1.1", timeout=5.0):
    """One request on a new connection; returns the Response."""
    with Conn(port, timeout=timeout) as c:
        c.send(req(method, target, headers, body, host, version))
        return c.read_response(method)


def raw(port, data, timeout=2.0):
    """Send raw bytes, read until the peer closes or timeout; return what was read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW)
    s.settimeout(timeout * SLOW)
    out = bytearray()
    try:
        if data:
            s.sendall(data)
        for _ in range(100000):
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not d:
                break
            out += d
    finally:
        s.close()
    return bytes(out)


def parse_responses(data, methods=None):
    """Parse every response in a byte string (e.g. the result of raw()).
    Returns a list of Response; the last may be incomplete."""
    methods = list(methods or [])

    class _Buf(Conn):
        def __init__(self, b):
            self.buf = bytearray(b)
            self.eof = True

        def _fill(self):
            raise Closed("end of data")

    c = _Buf(data)
    out = []
    i = 0
    while c.buf and i < 1000:
        m = methods[i] if i < len(methods) else "GET"
        try:
            out.append(c._read_one(m))
        except (Closed, ValueError, IndexError):
            break
        i += 1
    return out


def curl(*args, timeout=10):
    """Run curl; returns CompletedProcess (stdout/stderr bytes)."""
    env = dict(os.environ)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(k, None)
    cmd = ["curl", "-sS", "--noproxy", "*", "--max-time", str(timeout * SLOW)] + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, timeout=timeout * SLOW + 10, env=env)


def wait_for(pred, timeout=5.0, interval=0.02):
    """Poll pred() until it is truthy; returns its last value."""
    deadline = time.monotonic() + timeout * SLOW
    v = pred()
    while not v and time.monotonic() < deadline:
        time.sleep(interval)
        v = pred()
    return v


# ---------------------------------------------------------------- configs

def proxy_config(servers, balance="round_robin", extra="", upstream_extra="", route_extra="", workers=1):
    """A one-listener, one-upstream, one-route config. `servers` are addresses
    or (address, weight) / dicts rendered as YAML flow maps."""
    lines = []
    for s in servers:
        if isinstance(s, str):
            lines.append("      - {address: %s}" % s)
        elif isinstance(s, tuple):
            lines.append("      - {address: %s, weight: %d}" % s)
        else:
            lines.append("      - {" + ", ".join("%s: %s" % kv for kv in s.items()) + "}")
    return ("workers: %d\n%s\nlisteners:\n  - name: web\n    listen: ${listen}\n"
            "upstreams:\n  app:\n    balance: %s\n%s    servers:\n%s\n"
            "routes:\n  - upstream: app\n%s") % (
        workers, extra, balance, upstream_extra, "\n".join(lines), route_extra)
