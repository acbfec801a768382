"""Origin servers for the end-to-end tests: threads + raw sockets, HTTP/1.1
keep-alive, behaviour scriptable per test through a handler.

A handler is called as handler(conn, req) once the request head (and, unless
the handler has `streaming = True`, the body) has been read. It writes the
response with conn.send()/conn.respond() and returns True to keep the
connection open for the next request, False to close it.

Every origin counts connections and requests (to test pooling and poisoning):
  n_connections  accepted TCP connections
  n_requests     request heads parsed
  n_complete     requests whose body was read completely
  requests       a record per request (method, target, path, query, headers, body ...)
  active         requests being handled right now (max_active: the peak)
"""
import base64
import hashlib
import json
import socket
import threading
import time

from .portico import SLOW

MiB = 1 << 20


class Request:
    def __init__(self):
        self.method = None
        self.target = None
        self.path = None
        self.query = None
        self.version = None
        self.headers = []
        self.body = b""
        self.body_len = 0
        self.trailers = []
        self.chunked = False
        self.conn_id = None
        self.seq_on_conn = 0
        self.complete = False

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

    def record(self):
        return {
            "method": self.method, "target": self.target, "path": self.path, "query": self.query,
            "version": self.version, "headers": list(self.headers), "body": self.body,
            "body_len": self.body_len, "trailers": list(self.trailers), "chunked": self.chunked,
            "conn_id": self.conn_id, "seq_on_conn": self.seq_on_conn,
        }


class BadRequest(Exception):
    pass


class OriginConn:
    """One accepted connection on the origin side."""

    def __init__(self, origin, sock, conn_id):
        self.origin = origin
        self.sock = sock
        self.conn_id = conn_id
        self.buf = bytearray()
        self.eof = False
        self.sent_100 = False

    # -- input
    def _fill(self, n=262144):
        d = self.sock.recv(n)
        if not d:
            self.eof = True
            raise EOFError
        self.buf += d

    def read_until(self, delim, limit=1 << 20):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[:i + len(delim)])
                del self.buf[:i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise BadRequest("line too long")
            self._fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_head(self):
        head = b""
        for _ in range(10):
            head = self.read_until(b"\r\n\r\n")
            head = head.lstrip(b"\r\n")
            if head:
                break
        if not head:
            raise BadRequest("empty head")
        lines = head.rstrip(b"\r\n").split(b"\r\n")
        r = Request()
        parts = lines[0].decode("latin-1").split(" ")
        if len(parts) != 3:
            raise BadRequest("bad request line %r" % lines[0])
        r.method, r.target, r.version = parts
        path, _, query = r.target.partition("?")
        r.path, r.query = path, query
        for ln in lines[1:]:
            k, sep, v = ln.decode("latin-1").partition(":")
            if not sep:
                raise BadRequest("bad header line %r" % ln)
            r.headers.append((k, v.strip(" \t")))
        return r

    def body_chunks(self, req, bufsize=MiB):
        """Yield the request body in pieces (decoding chunked), without keeping it."""
        if req.header("expect", "").lower() == "100-continue" and not self.sent_100 and self.origin.send_100:
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.sent_100 = True
        te = ",".join(req.headers_all("transfer-encoding")).lower()
        if "chunked" in te:
            req.chunked = True
            while True:
                line = self.read_until(b"\r\n")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        tl = self.read_until(b"\r\n")
                        if tl == b"\r\n":
                            break
                        k, _, v = tl[:-2].decode("latin-1").partition(":")
                        req.trailers.append((k, v.strip()))
                    break
                left = size
                while left > 0:
                    if not self.buf:
                        self._fill()
                    take = min(left, len(self.buf))
                    piece = bytes(self.buf[:take])
                    del self.buf[:take]
                    left -= take
                    yield piece
                if self.read_exact(2) != b"\r\n":
                    raise BadRequest("bad chunk end")
            return
        cl = req.header("content-length")
        n = int(cl) if cl is not None else 0
        if self.buf:
            take = min(n, len(self.buf))
            piece = bytes(self.buf[:take])
            del self.buf[:take]
            n -= take
            if piece:
                yield piece
        if n > 0:
            scratch = bytearray(bufsize)
            mv = memoryview(scratch)
            while n > 0:
                k = self.sock.recv_into(mv, min(n, bufsize))
                if k == 0:
                    self.eof = True
                    raise EOFError
                n -= k
                yield mv[:k]

    def read_body(self, req, keep_limit=64 * MiB):
        body = bytearray()
        total = 0
        for piece in self.body_chunks(req):
            total += len(piece)
            if len(body) < keep_limit:
                body += piece
        req.body = bytes(body)
        req.body_len = total
        req.complete = True
        with self.origin.lock:
            self.origin.n_complete += 1

    # -- output
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def respond(self, status=200, headers=None, body=b"", reason=None, head_only=False):
        if isinstance(body, str):
            body = body.encode()
        headers = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        names = {k.lower() for k, _ in headers}
        out = ["HTTP/1.1 %d %s\r\n" % (status, reason or REASONS.get(status, "Status"))]
        out.append("X-Origin: %s\r\n" % self.origin.name)
        for k, v in headers:
            out.append("%s: %s\r\n" % (k, v))
        if "content-length" not in names and "transfer-encoding" not in names and status not in (204, 304):
            out.append("Content-Length: %d\r\n" % len(body))
        out.append("\r\n")
        data = "".join(out).encode("latin-1")
        if not head_only:
            data += body
        self.sock.sendall(data)


REASONS = {100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created", 204: "No Content",
           301: "Moved Permanently", 302: "Found", 304: "Not Modified", 400: "Bad Request",
           404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


class Origin:
    def __init__(self, handler=None, name=None, port=0, backlog=128, send_100=True):
        self.handler = handler or echo()
        self.lock = threading.Lock()
        self.n_connections = 0
        self.n_requests = 0
        self.n_complete = 0
        self.requests = []
        self.active = 0
        self.max_active = 0
        self.send_100 = send_100
        self.errors = []
        self.stopping = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(backlog)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.name = name or self.address
        self._conns = set()
        self._threads = []
        self._accept_thread = None

    def start(self):
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept_thread.start()
        return self

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                s, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            s.settimeout(30 * SLOW)
            with self.lock:
                self.n_connections += 1
                cid = self.n_connections
                self._conns.add(s)
            t = threading.Thread(target=self._serve, args=(s, cid), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, s, cid):
        c = OriginConn(self, s, cid)
        seq = 0
        try:
            while not self.stopping.is_set():
                try:
                    r = c.read_head()
                except (EOFError, OSError):
                    break
                seq += 1
                r.conn_id = cid
                r.seq_on_conn = seq
                c.sent_100 = False
                with self.lock:
                    self.n_requests += 1
                    r.index = self.n_requests
                    self.requests.append(r)
                    self.active += 1
                    self.max_active = max(self.max_active, self.active)
                try:
                    if not getattr(self.handler, "streaming", False):
                        c.read_body(r)
                    keep = self.handler(c, r)
                finally:
                    with self.lock:
                        self.active -= 1
                if not keep:
                    break
                if r.version == "HTTP/1.0" and "keep-alive" not in r.header("connection", "").lower():
                    break
                if "close" in r.header("connection", "").lower():
                    break
        except (EOFError, OSError, BadRequest) as e:
            with self.lock:
                self.errors.append(repr(e))
        finally:
            with self.lock:
                self._conns.discard(s)
            try:
                s.close()
            except OSError:
                pass

    def stop(self):
        self.stopping.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self._conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._accept_thread:
            self._accept_thread.join(2)
        for t in self._threads:
            t.join(0.5)

    # helpers for tests
    def paths(self):
        with self.lock:
            return [r.path for r in self.requests]

    def last(self):
        with self.lock:
            return self.requests[-1] if self.requests else None

    def wait_requests(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            if self.n_requests >= n:
                return True
            time.sleep(0.01)
        return self.n_requests >= n


# ---------------------------------------------------------------- handlers

def _echo_doc(c, r):
    o = c.origin
    return {
        "origin": o.name, "method": r.method, "target": r.target, "path": r.path, "query": r.query,
        "version": r.version, "headers": r.headers, "body": r.body.decode("latin-1"), "body_len": r.body_len,
        "trailers": r.trailers, "chunked": r.chunked, "requests": o.n_requests,
        "connections": o.n_connections, "conn_id": r.conn_id, "seq_on_conn": r.seq_on_conn,
    }


def echo(delay=0.0, headers=None, slow_paths=None):
    """Answer with a JSON description of the request. `delay` seconds before
    answering (or only for paths starting with one of slow_paths)."""
    def h(c, r):
        if delay and (slow_paths is None or any(r.path.startswith(p) for p in slow_paths)):
            time.sleep(delay)
        body = json.dumps(_echo_doc(c, r)).encode()
        hdrs = [("Content-Type", "application/json")] + list(headers or [])
        c.respond(200, hdrs, body, head_only=(r.method == "HEAD"))
        return True
    return h


def fixed(status=200, headers=None, body=b"", delay=0.0, keep=True):
    def h(c, r):
        if delay:
            time.sleep(delay)
        c.respond(status, headers, body, head_only=(r.method == "HEAD"))
        return keep
    return h


def raw_response(data, keep=True, delay=0.0, after=None, after_delay=0.0):
    """Send exactly `data` (bytes, or a function (conn, req) -> bytes); then
    optionally `after` bytes after `after_delay` seconds."""
    def h(c, r):
        if delay:
            time.sleep(delay)
        d = data(c, r) if callable(data) else data
        c.send(d)
        if after is not None:
            time.sleep(after_delay)
            c.send(after)
        return keep
    return h


def first_then(first, then):
    """Use handler `first` for the origin's first request, `then` afterwards."""
    def h(c, r):
        return (first if r.index == 1 else then)(c, r)
    return h


def by_path(routes, default=None):
    """Dispatch on the longest matching path prefix."""
    default = default or echo()

    def h(c, r):
        best = None
        for p in routes:
            if r.path.startswith(p) and (best is None or len(p) > len(best)):
                best = p
        return (routes[best] if best is not None else default)(c, r)
    return h


def chunked_response(chunks, trailers=None, headers=None):
    def h(c, r):
        out = ["HTTP/1.1 200 OK\r\n", "X-Origin: %s\r\n" % c.origin.name, "Transfer-Encoding: chunked\r\n"]
        if trailers:
            out.append("Trailer: %s\r\n" % ", ".join(k for k, _ in trailers))
        for k, v in headers or []:
            out.append("%s: %s\r\n" % (k, v))
        out.append("\r\n")
        data = "".join(out).encode()
        for ch in chunks:
            if isinstance(ch, str):
                ch = ch.encode()
            data += b"%x\r\n%s\r\n" % (len(ch), ch)
        data += b"0\r\n"
        for k, v in trailers or []:
            data += ("%s: %s\r\n" % (k, v)).encode()
        data += b"\r\n"
        c.send(data)
        return True
    return h


def stream(size, chunk=MiB):
    """Content-Length `size` body generated on the fly (not held in memory)."""
    block = bytes(range(256)) * (chunk // 256)

    def h(c, r):
        c.send("HTTP/1.1 200 OK\r\nX-Origin: %s\r\nContent-Type: application/octet-stream\r\n"
               "Content-Length: %d\r\n\r\n" % (c.origin.name, size))
        left = size
        mv = memoryview(block)
        while left > 0:
            n = min(left, len(block))
            c.sock.sendall(mv[:n])
            left -= n
        return True
    return h


def count_body():
    """Streaming: read and discard the body, answer its length and sha256."""
    def h(c, r):
        total = 0
        sha = hashlib.sha256()
        for piece in c.body_chunks(r):
            total += len(piece)
            sha.update(piece)
        r.body_len = total
        r.complete = True
        with c.origin.lock:
            c.origin.n_complete += 1
        body = json.dumps({"bytes": total, "sha256": sha.hexdigest(), "chunked": r.chunked}).encode()
        c.respond(200, [("Content-Type", "application/json")], body)
        return True
    h.streaming = True
    return h


def close_delimited(body, version="HTTP/1.1"):
    """Response without Content-Length or chunked: the body ends at close."""
    def h(c, r):
        c.send(("%s 200 OK\r\nX-Origin: %s\r\nContent-Type: text/plain\r\n\r\n" % (version, c.origin.name)).encode()
               + body)
        return False
    return h


def cut(advertised=1000, sent=100):
    """Content-Length `advertised`, only `sent` bytes, then close."""
    def h(c, r):
        c.send(("HTTP/1.1 200 OK\r\nX-Origin: %s\r\nContent-Length: %d\r\n\r\n" % (c.origin.name, advertised)).encode()
               + b"x" * sent)
        time.sleep(0.05)
        return False
    return h


def cut_chunked():
    """A chunked response that stops after one chunk (no final 0-chunk), then close."""
    def h(c, r):
        c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"a\r\n0123456789\r\n")
        time.sleep(0.05)
        return False
    return h


def websocket_echo():
    """Answer an Upgrade: websocket with 101, then echo raw bytes until EOF."""
    def h(c, r):
        key = r.header("sec-websocket-key", "")
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        c.send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Accept: %s\r\n\r\n" % accept)
        if c.buf:
            c.send(bytes(c.buf))
            c.buf.clear()
        for _ in range(100000):
            try:
                d = c.sock.recv(65536)
            except OSError:
                break
            if not d:
                break
            c.send(d)
        return False
    h.streaming = True
    return h


def never_answer(max_wait=60.0):
    """Read the request, never answer (until the origin stops or max_wait)."""
    def h(c, r):
        c.origin.stopping.wait(max_wait)
        return False
    return h


def reset():
    """Reset the connection (RST) once the request is read."""
    import struct

    def h(c, r):
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False
    return h


def garbage(data=b"THIS IS NOT HTTP\r\n\r\n"):
    def h(c, r):
        c.send(data)
        time.sleep(0.05)
        return False
    return h


# ---------------------------------------------------------------- cache and compression helpers

def text_body(size, seed=1):
    """`size` bytes of deterministic, compressible text (words and numbers,
    not one repeated block, so every coder has real work to do)."""
    import random
    rnd = random.Random(seed)
    words = [b"portico", b"cache", b"origin", b"stream", b"gzip", b"brotli", b"zstd", b"header",
             b"request", b"response", b"vary", b"stale", b"fresh", b"proxy", b"worker", b"{\"k\":"]
    out = bytearray()
    while len(out) < size:
        out += words[rnd.randrange(len(words))]
        out += b" %d" % rnd.randrange(100000)
        out += b"\n" if rnd.randrange(12) == 0 else b" "
    return bytes(out[:size])


def _value(v, r):
    return v(r) if callable(v) else v


def scripted(status=200, headers=None, body=b"", delay=0.0, framing="length", etag=None, chunk=16384,
             pause_after=None, pause=0.0):
    """A configurable answer for the cache and compression tests.

    status, headers (list of (name, value)) and body may be values or
    functions of the Request (r.index is the origin's request count, so a
    body can name the request that produced it). framing: "length"
    (Content-Length), "chunked" (chunks of `chunk` bytes) or "close" (no
    length; the body ends when the origin closes). etag: sent as ETag; a
    request whose If-None-Match names it (or is "*") gets a 304 without a
    body. pause_after/pause: stop for `pause` seconds once `pause_after` body
    bytes are out (to see whether the proxy streams).

    Records on each request: r.answered (the status sent) and r.body_sent
    (body bytes sent), so a test can tell a 304 from a full answer."""
    def h(c, r):
        if delay:
            time.sleep(_value(delay, r))
        st = _value(status, r)
        hdrs = list(_value(headers, r) or [])
        b = _value(body, r)
        if isinstance(b, str):
            b = b.encode()
        tag = _value(etag, r)
        if tag is not None:
            hdrs.append(("ETag", tag))
            inm = r.header("if-none-match")
            if inm is not None and (inm.strip() == "*" or tag in [t.strip() for t in inm.split(",")]):
                st, b = 304, b""
        r.answered = st
        head_only = r.method == "HEAD" or st in (204, 304) or 100 <= st < 200
        names = {k.lower() for k, _ in hdrs}
        lines = ["HTTP/1.1 %d %s\r\n" % (st, REASONS.get(st, "Status")), "X-Origin: %s\r\n" % c.origin.name]
        lines += ["%s: %s\r\n" % kv for kv in hdrs]
        if st not in (204, 304) and not (100 <= st < 200):
            if framing == "chunked" and "transfer-encoding" not in names:
                lines.append("Transfer-Encoding: chunked\r\n")
            elif framing == "length" and "content-length" not in names:
                lines.append("Content-Length: %d\r\n" % len(b))
            elif framing == "close":
                lines.append("Connection: close\r\n")
        lines.append("\r\n")
        c.send("".join(lines).encode("latin-1"))
        sent = 0
        if not head_only and b:
            mv = memoryview(b)
            step = chunk if framing == "chunked" else 65536
            for i in range(0, len(b), step):
                piece = mv[i:i + step]
                if framing == "chunked":
                    c.sock.sendall(b"%x\r\n" % len(piece) + piece.tobytes() + b"\r\n")
                else:
                    c.sock.sendall(piece)
                before, sent = sent, sent + len(piece)
                if pause_after is not None and before < pause_after <= sent:
                    time.sleep(pause)
        if not head_only and framing == "chunked":
            c.send(b"0\r\n\r\n")
        r.body_sent = sent
        return framing != "close"
    return h
