"""A TLS origin for the upstream-TLS tests: lib.origin.Origin (threads, HTTP/1.1
keep-alive, handlers) with every accepted connection wrapped by Python's ssl
module before the HTTP layer sees it.

    o = TlsOrigin(cert, key, handler=echo(), client_ca=None, max_version=None).start()
    o.address                 127.0.0.1:PORT
    o.n_connections           accepted TCP connections (as Origin)
    o.n_requests              HTTP requests parsed (only after a good handshake)
    o.handshakes              one record per connection, in accept order:
                              {"ok", "error", "sni", "sni_seen", "reused",
                               "version", "peer_subject"}
    o.n_handshakes_ok, o.n_handshakes_failed

`sni` is the server name the client sent (None when it sent none; the
callback runs for every ClientHello, `sni_seen` says it ran). `reused` is
SSLSocket.session_reused. `peer_subject` is the client certificate's subject
as a dict {"CN": ..., "O": ...} (None without one).

    ip_leaf(pki, name, dns=[...], ips=[...])   a leaf of a lib.certs.Pki CA
                                               with DNS and IP SANs
"""
import os
import ssl

from .certs import Leaf, genkey, openssl
from .origin import Origin, echo
from .portico import SLOW


def ip_leaf(pki, name, dns=(), ips=(), subject=None, client=False, days=30):
    """Like Pki.leaf, but the subjectAltName may carry IP addresses too."""
    pki.serial += 1
    serial = "%X" % pki.serial
    key = genkey(os.path.join(pki.dir, name + ".key"))
    cert = os.path.join(pki.dir, name + ".pem")
    csr = os.path.join(pki.dir, name + ".csr")
    ext = os.path.join(pki.dir, name + ".ext")
    subject = subject or "/CN=" + (list(dns) + list(ips) + [name])[0]
    sans = ["DNS:" + d for d in dns] + ["IP:" + i for i in ips]
    lines = ["[v3_leaf]", "basicConstraints = critical, CA:FALSE",
             "authorityKeyIdentifier = keyid", "subjectKeyIdentifier = hash",
             "keyUsage = critical, digitalSignature, keyEncipherment",
             "extendedKeyUsage = " + ("clientAuth" if client else "serverAuth")]
    if sans:
        lines.append("subjectAltName = " + ", ".join(sans))
    with open(ext, "w") as f:
        f.write("\n".join(lines) + "\n")
    openssl("req", "-new", "-key", key, "-subj", subject, "-out", csr)
    openssl("x509", "-req", "-in", csr, "-CA", pki.cert, "-CAkey", pki.key, "-days", str(days),
            "-sha256", "-set_serial", "0x" + serial, "-extfile", ext, "-extensions", "v3_leaf",
            "-out", cert)
    lf = Leaf(name, cert, key, serial, subject, "rsa")
    pki.leaves[name] = lf
    return lf


class TlsOrigin(Origin):
    def __init__(self, cert, key, handler=None, name=None, client_ca=None, max_version=None,
                 handshake_timeout=10.0, **kw):
        super().__init__(handler or echo(), name=name, **kw)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if max_version is not None:
            ctx.maximum_version = max_version
        if client_ca:
            ctx.load_verify_locations(cafile=client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.sni_callback = self._sni
        self.ctx = ctx
        self.handshake_timeout = handshake_timeout
        self.handshakes = []
        self._pending_sni = {}

    def _sni(self, sslsock, server_name, ctx):
        with self.lock:
            self._pending_sni[id(sslsock)] = server_name
        return None

    @property
    def n_handshakes_ok(self):
        with self.lock:
            return sum(1 for h in self.handshakes if h["ok"])

    @property
    def n_handshakes_failed(self):
        with self.lock:
            return sum(1 for h in self.handshakes if not h["ok"])

    def reused(self):
        """session_reused of every completed handshake, in order."""
        with self.lock:
            return [h["reused"] for h in self.handshakes if h["ok"]]

    def _serve(self, s, cid):
        rec = {"ok": False, "error": None, "sni": None, "sni_seen": False, "reused": None,
               "version": None, "peer_subject": None, "conn_id": cid}
        with self.lock:
            self.handshakes.append(rec)
        ss = None
        try:
            s.settimeout(self.handshake_timeout * SLOW)
            ss = self.ctx.wrap_socket(s, server_side=True, do_handshake_on_connect=False)
            with self.lock:
                # wrap_socket takes over the descriptor: stop() must shut down the new object.
                self._conns.discard(s)
                self._conns.add(ss)
            ss.do_handshake()
        except (ssl.SSLError, OSError) as e:
            with self.lock:
                self._take_sni(ss, rec)
                rec["error"] = repr(e)
                self._conns.discard(s)
                self._conns.discard(ss)
            for x in (ss, s):
                try:
                    if x is not None:
                        x.close()
                except OSError:
                    pass
            return
        peer = ss.getpeercert()
        with self.lock:
            self._take_sni(ss, rec)
            rec["ok"] = True
            rec["reused"] = ss.session_reused
            rec["version"] = ss.version()
            if peer:
                rec["peer_subject"] = {k: v for rdn in peer.get("subject", ()) for k, v in rdn}
        ss.settimeout(30 * SLOW)
        super()._serve(ss, cid)

    def _take_sni(self, ss, rec):
        if ss is not None and id(ss) in self._pending_sni:
            rec["sni_seen"] = True
            rec["sni"] = self._pending_sni.pop(id(ss))
