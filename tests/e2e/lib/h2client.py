"""HTTP/2 clients for the end-to-end tests (python3-h2 from Debian).

    c = H2Client(port, tls=False)              # h2c prior knowledge, or TLS with ALPN h2
    sid = c.request("GET", "/x")               # returns the stream id
    st = c.response(sid)                       # waits for END_STREAM / RST_STREAM / close
    st.status, st.headers, st.body, st.end_on_headers, st.reset

H2Client drives the python3-h2 state machine (a correct client: flow control,
HPACK, SETTINGS). With auto_ack=False the test credits received DATA itself
(c.ack(sid, n)), which is how slow and stalled readers are made.

RawH2 writes frames by hand (what a correct client would refuse to send:
floods, too many streams, CONTINUATION chains) and reads whatever comes back,
decoding header blocks with hpack; it answers SETTINGS and PING only when asked.

Every socket has a timeout, every loop a deadline. 127.0.0.1 only.
"""
import hashlib
import socket
import ssl
import struct
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack

from .portico import SLOW

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
# flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
# settings
S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_MAX_CONCURRENT_STREAMS, S_INITIAL_WINDOW_SIZE, \
    S_MAX_FRAME_SIZE, S_MAX_HEADER_LIST_SIZE = range(1, 7)
# error codes
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, ENHANCE_YOUR_CALM = range(12)

MAX_WINDOW = (1 << 31) - 1


def open_socket(port, tls=False, timeout=5.0, rcvbuf=None, server_name="h2.example.test", alpn=("h2",)):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout * SLOW)
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(list(alpn))
        s = ctx.wrap_socket(s, server_hostname=server_name)
        got = s.selected_alpn_protocol()
        if "h2" in alpn and got != "h2":
            s.close()
            raise AssertionError("ALPN selected %r, not h2" % got)
    return s


# ---------------------------------------------------------------- frames

def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags, sid & 0x7FFFFFFF) + payload


def settings(pairs=(), ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def ping(data=b"\0" * 8, ack=False):
    return frame(PING, ACK if ack else 0, 0, data)


def window_update(sid, inc):
    return frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", inc))


def rst_stream(sid, code=CANCEL):
    return frame(RST_STREAM, 0, sid, struct.pack(">I", code))


def request_fields(method="GET", path="/", authority="h2.example.test", scheme="http", extra=()):
    return [(":method", method), (":scheme", scheme), (":authority", authority), (":path", path)] + list(extra)


class Stream:
    def __init__(self, sid):
        self.id = sid
        self.status = None
        self.headers = []            # [(name, value)] as received (str, latin-1)
        self.informational = []
        self.trailers = []
        self.body = bytearray()
        self.data_frames = 0
        self.ended = False           # END_STREAM received
        self.end_on_headers = False  # END_STREAM was on the HEADERS frame
        self.reset = None            # RST_STREAM error code
        self.sha = hashlib.sha256()
        self.received = 0            # DATA bytes (kept or not)

    @property
    def done(self):
        return self.ended or self.reset is not None

    def header(self, name, default=None):
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return default

    def __repr__(self):
        return "<Stream %d status=%s ended=%s reset=%s body=%d headers=%r>" % (
            self.id, self.status, self.ended, self.reset, self.received, self.headers)


def _s(b):
    return b.decode("latin-1") if isinstance(b, (bytes, bytearray)) else b


# ---------------------------------------------------------------- python3-h2 client

class H2Client:
    """A well-behaved client on python3-h2.

    settings: initial local SETTINGS values {h2.settings.SettingCodes.X: v}.
    conn_window: extra bytes added to the connection receive window at start.
    keep_body: keep DATA in st.body (else only counted and hashed)."""

    def __init__(self, port, tls=False, timeout=10.0, settings=None, auto_ack=True, rcvbuf=None,
                 conn_window=0, keep_body=True, authority="h2.example.test"):
        self.sock = open_socket(port, tls, timeout, rcvbuf)
        self.tls = tls
        self.authority = authority
        self.timeout = timeout * SLOW
        self.auto_ack = auto_ack
        self.keep_body = keep_body
        cfg = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                        validate_inbound_headers=False, normalize_inbound_headers=False)
        self.conn = h2.connection.H2Connection(cfg)
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.conn.initiate_connection()
        if conn_window:
            self.conn.increment_flow_control_window(conn_window)
        self.streams = {}
        self.goaway = None           # (error_code, last_stream_id) of the last GOAWAY
        self.goaways = []
        self.closed = False          # EOF / reset / protocol error
        self.error = None
        self.send_error = None
        self.remote_settings = {}
        self.flush()

    # -- output
    def flush(self):
        data = self.conn.data_to_send()
        if data and not self.closed and not self.send_error:
            try:
                self.sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError) as e:
                # What the peer sent before closing is still readable.
                self.send_error = repr(e)

    def send_raw(self, data):
        self.sock.sendall(data)

    def request(self, method="GET", path="/", headers=(), body=None, end_stream=True, authority=None):
        sid = self.conn.get_next_available_stream_id()
        self.streams[sid] = Stream(sid)
        fields = request_fields(method, path, authority or self.authority,
                                "https" if self.tls else "http", headers)
        self.conn.send_headers(sid, fields, end_stream=(body is None and end_stream))
        self.flush()
        if body is not None:
            self.send_body(sid, body, end_stream)
        return sid

    def send_body(self, sid, body, end_stream=True, deadline=None):
        """Sends body (bytes, or an iterable of bytes) respecting flow control."""
        deadline = deadline or time.monotonic() + 60 * SLOW
        pieces = [body] if isinstance(body, (bytes, bytearray, memoryview)) else body
        for piece in pieces:
            mv = memoryview(piece)
            while len(mv):
                if self.closed or self.send_error or self.streams[sid].done:
                    return False
                win = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
                if win <= 0:
                    if time.monotonic() > deadline:
                        raise AssertionError("send window of stream %d stayed shut" % sid)
                    self.pump(0.2)
                    continue
                n = min(win, len(mv))
                self.conn.send_data(sid, mv[:n].tobytes())
                mv = mv[n:]
                self.flush()
        if end_stream:
            self.conn.end_stream(sid)
            self.flush()
        return True

    def reset_stream(self, sid, code=CANCEL):
        self.conn.reset_stream(sid, code)
        self.flush()

    def ping(self):
        self.conn.ping(b"e2e-ping")
        self.flush()

    def ack(self, sid, n):
        """Credits n received bytes (WINDOW_UPDATE for stream and connection)."""
        try:
            self.conn.acknowledge_received_data(n, sid)
        except (h2.exceptions.StreamClosedError, KeyError):
            # The stream is gone: still give the connection window back.
            self.conn.increment_flow_control_window(n)
        self.flush()

    # -- input
    def pump(self, wait=0.2, nbytes=65536):
        """One recv (up to `wait` seconds) and its events. False when closed."""
        if self.closed:
            return False
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(nbytes)
        except (socket.timeout, ssl.SSLWantReadError):
            return True
        except (ConnectionResetError, ssl.SSLError, OSError) as e:
            self.closed = True
            self.error = repr(e)
            return False
        finally:
            try:
                self.sock.settimeout(self.timeout)
            except OSError:
                pass
        if not data:
            self.closed = True
            return False
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            self.closed = True
            self.error = repr(e)
            return False
        for ev in events:
            self._event(ev)
        self.flush()
        return True

    def _st(self, sid):
        if sid not in self.streams:
            self.streams[sid] = Stream(sid)
        return self.streams[sid]

    def _event(self, ev):
        E = h2.events
        if isinstance(ev, E.ResponseReceived):
            st = self._st(ev.stream_id)
            st.headers = [(_s(k), _s(v)) for k, v in ev.headers]
            for k, v in st.headers:
                if k == ":status":
                    st.status = int(v)
            if ev.stream_ended is not None:
                st.end_on_headers = True
        elif isinstance(ev, E.InformationalResponseReceived):
            self._st(ev.stream_id).informational.append([(_s(k), _s(v)) for k, v in ev.headers])
        elif isinstance(ev, E.TrailersReceived):
            self._st(ev.stream_id).trailers = [(_s(k), _s(v)) for k, v in ev.headers]
        elif isinstance(ev, E.DataReceived):
            st = self._st(ev.stream_id)
            st.data_frames += 1
            st.received += len(ev.data)
            st.sha.update(ev.data)
            if self.keep_body:
                st.body += ev.data
            if self.auto_ack and ev.flow_controlled_length:
                self.ack(ev.stream_id, ev.flow_controlled_length)
        elif isinstance(ev, E.StreamEnded):
            self._st(ev.stream_id).ended = True
        elif isinstance(ev, E.StreamReset):
            self._st(ev.stream_id).reset = int(ev.error_code)
        elif isinstance(ev, E.ConnectionTerminated):
            self.goaway = (int(ev.error_code), ev.last_stream_id)
            self.goaways.append(self.goaway)
        elif isinstance(ev, E.RemoteSettingsChanged):
            for k, v in ev.changed_settings.items():
                self.remote_settings[int(k)] = v.new_value

    def wait(self, pred, timeout=None):
        """Pumps until pred() is true, the connection closes, or timeout. Returns pred()."""
        deadline = time.monotonic() + (timeout * SLOW if timeout is not None else self.timeout)
        while not pred() and not self.closed and time.monotonic() < deadline:
            self.pump(min(0.2, max(0.01, deadline - time.monotonic())))
        return pred()

    def response(self, sid, timeout=None):
        st = self.streams[sid]
        self.wait(lambda: st.done, timeout)
        return st

    def wait_closed(self, timeout=None):
        """Reads (crediting per auto_ack) until the peer closes. True if it did."""
        self.wait(lambda: False, timeout)
        return self.closed

    def get(self, path="/", timeout=None, **kw):
        return self.response(self.request("GET", path, **kw), timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# ---------------------------------------------------------------- raw frames

class RawH2:
    """Hand-written frames in, parsed frames out.

    preface: send the client preface and an (empty or given) SETTINGS frame.
    auto: answer SETTINGS with ACK and PING with PING ACK while reading."""

    def __init__(self, port, tls=False, timeout=5.0, preface=True, local_settings=(), rcvbuf=None, auto=True,
                 sndbuf=None):
        self.sock = open_socket(port, tls, timeout, rcvbuf)
        if sndbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self.timeout = timeout * SLOW
        self.auto = auto
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_header_list_size = 1 << 20
        self.inbuf = bytearray()
        self.streams = {}
        self.frames = []             # (type, flags, sid, length) of every frame received
        self.goaways = []            # (last_stream_id, error_code, debug)
        self.settings_acks = 0
        self.ping_acks = 0
        self.remote_settings = {}
        self.closed = False
        self.error = None
        self.send_error = None
        self._hblock = None          # (sid, flags, bytes) while CONTINUATION is expected
        if preface:
            self.send(PREFACE + settings(local_settings))

    @property
    def goaway(self):
        return self.goaways[-1] if self.goaways else None

    def send(self, data):
        self.sock.sendall(data)

    def try_send(self, data, wait=2.0):
        """Sends what the peer accepts within `wait` seconds; returns bytes sent
        (stops early when the connection is closed)."""
        self.sock.settimeout(wait)
        sent = 0
        mv = memoryview(data)
        try:
            while sent < len(data):
                n = self.sock.send(mv[sent:sent + 65536])
                if n <= 0:
                    break
                sent += n
        except (socket.timeout, BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError) as e:
            # The peer may have closed its side: what it sent before is
            # still readable, so this does not mark the connection closed.
            if not isinstance(e, socket.timeout):
                self.send_error = repr(e)
        finally:
            try:
                self.sock.settimeout(self.timeout)
            except OSError:
                pass
        return sent

    def header_block(self, fields):
        return self.enc.encode(fields)

    def headers(self, sid, fields, end_stream=True, max_frame=16384):
        """HEADERS (+ CONTINUATION when the block is larger than max_frame) bytes."""
        block = self.header_block(fields)
        parts = [block[i:i + max_frame] for i in range(0, len(block), max_frame)] or [b""]
        out = []
        for i, p in enumerate(parts):
            last = i == len(parts) - 1
            if i == 0:
                fl = (END_STREAM if end_stream else 0) | (END_HEADERS if last else 0)
                out.append(frame(HEADERS, fl, sid, p))
            else:
                out.append(frame(CONTINUATION, END_HEADERS if last else 0, sid, p))
        return b"".join(out)

    def _st(self, sid):
        if sid not in self.streams:
            self.streams[sid] = Stream(sid)
        return self.streams[sid]

    def _frames(self):
        while len(self.inbuf) >= 9:
            ln = int.from_bytes(self.inbuf[:3], "big")
            if len(self.inbuf) < 9 + ln:
                return
            ftype, flags = self.inbuf[3], self.inbuf[4]
            sid = int.from_bytes(self.inbuf[5:9], "big") & 0x7FFFFFFF
            payload = bytes(self.inbuf[9:9 + ln])
            del self.inbuf[:9 + ln]
            self.frames.append((ftype, flags, sid, ln))
            self._frame(ftype, flags, sid, payload)

    def _frame(self, ftype, flags, sid, payload):
        if ftype == SETTINGS:
            if flags & ACK:
                self.settings_acks += 1
            else:
                for i in range(0, len(payload) - 5, 6):
                    k, v = struct.unpack(">HI", payload[i:i + 6])
                    self.remote_settings[k] = v
                if self.auto:
                    self.try_send(settings(ack=True))
        elif ftype == PING:
            if flags & ACK:
                self.ping_acks += 1
            elif self.auto:
                self.try_send(ping(payload, ack=True))
        elif ftype == GOAWAY:
            last, code = struct.unpack(">II", payload[:8])
            self.goaways.append((last & 0x7FFFFFFF, code, payload[8:]))
        elif ftype == RST_STREAM:
            self._st(sid).reset = struct.unpack(">I", payload[:4])[0]
        elif ftype == DATA:
            st = self._st(sid)
            data = payload
            if flags & 0x8:  # PADDED
                pad = data[0]
                data = data[1:len(data) - pad]
            st.data_frames += 1
            st.received += len(data)
            st.sha.update(data)
            st.body += data
            if flags & END_STREAM:
                st.ended = True
            if self.auto and len(payload):
                self.try_send(window_update(0, len(payload)) +
                              (window_update(sid, len(payload)) if not flags & END_STREAM else b""))
        elif ftype in (HEADERS, CONTINUATION):
            if ftype == HEADERS:
                block = payload
                if flags & 0x8:
                    pad = block[0]
                    block = block[1:len(block) - pad]
                if flags & 0x20:
                    block = block[5:]
                self._hblock = (sid, flags, bytearray(block))
            elif self._hblock is not None:
                self._hblock[2].extend(payload)
            if flags & END_HEADERS and self._hblock is not None:
                hsid, hflags, block = self._hblock
                self._hblock = None
                fields = [(_s(k), _s(v)) for k, v in self.dec.decode(bytes(block), raw=True)]
                st = self._st(hsid)
                status = [v for k, v in fields if k == ":status"]
                if status and int(status[0]) < 200:
                    st.informational.append(fields)
                elif st.status is None and status:
                    st.headers = fields
                    st.status = int(status[0])
                    if hflags & END_STREAM:
                        st.end_on_headers = True
                else:
                    st.trailers = fields
                if hflags & END_STREAM:
                    st.ended = True

    def pump(self, wait=0.2):
        if self.closed:
            return False
        self.sock.settimeout(wait)
        try:
            d = self.sock.recv(262144)
        except (socket.timeout, ssl.SSLWantReadError):
            return True
        except (ConnectionResetError, ssl.SSLError, OSError) as e:
            self.closed = True
            self.error = repr(e)
            return False
        finally:
            try:
                self.sock.settimeout(self.timeout)
            except OSError:
                pass
        if not d:
            self.closed = True
            return False
        self.inbuf += d
        self._frames()
        return True

    def wait(self, pred, timeout=None):
        deadline = time.monotonic() + (timeout * SLOW if timeout is not None else self.timeout)
        while not pred() and not self.closed and time.monotonic() < deadline:
            self.pump(min(0.2, max(0.01, deadline - time.monotonic())))
        return pred()

    def wait_closed(self, timeout=None):
        self.wait(lambda: False, timeout)
        return self.closed

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
