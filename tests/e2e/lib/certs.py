"""Test certificates made with the `openssl` command line into a directory.

    pki = Pki(dir)                       # a CA (RSA) for server certificates
    leaf = pki.leaf("a", ["a.example.test"])              # RSA leaf with those SANs
    leaf = pki.leaf("w", ["*.wild.example.test"], "ec")   # ECDSA (P-256) leaf
    leaf.cert, leaf.key                  # absolute paths to PEM files
    pki.ocsp_response(leaf)              # DER OCSP response ("good") signed by the CA
    cca = Pki(dir, "client-ca", "Portico Test Client CA")
    client = cca.leaf("client", [], subject="/C=DE/O=Portico Tests/CN=client one", client=True)

Every certificate is valid from now for 30 days. Nothing here touches
the network; every openssl run has a timeout.
"""
import os
import subprocess


class OpensslError(Exception):
    pass


def openssl(*args, cwd=None, timeout=60, input=None):
    r = subprocess.run(["openssl"] + [str(a) for a in args], capture_output=True, timeout=timeout,
                       cwd=cwd, input=input)
    if r.returncode != 0:
        raise OpensslError("openssl %s failed (%d):\n%s" % (" ".join(str(a) for a in args), r.returncode,
                                                           r.stderr.decode("utf-8", "replace")))
    return r.stdout


def genkey(path, kind="rsa"):
    """A private key in PEM: kind 'rsa' (2048 bits) or 'ec' (P-256)."""
    if kind == "rsa":
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path)
    elif kind == "ec":
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    else:
        raise ValueError(kind)
    return path


class Leaf:
    def __init__(self, name, cert, key, serial, subject, kind):
        self.name = name
        self.cert = cert
        self.key = key
        self.serial = serial          # hex string
        self.subject = subject        # as given to openssl ("/CN=...")
        self.kind = kind

    def __repr__(self):
        return "<Leaf %s %s %s>" % (self.name, self.kind, self.subject)


class Pki:
    """A CA in `directory`/`prefix`.* and the leaves it signs."""

    def __init__(self, directory, prefix="ca", cn="Portico Test CA"):
        self.dir = os.path.abspath(str(directory))
        os.makedirs(self.dir, exist_ok=True)
        self.prefix = prefix
        self.key = genkey(os.path.join(self.dir, prefix + ".key"))
        self.cert = os.path.join(self.dir, prefix + ".pem")
        ext = os.path.join(self.dir, prefix + ".ext")
        with open(ext, "w") as f:
            f.write("[v3_ca]\nbasicConstraints = critical, CA:TRUE\n"
                    "keyUsage = critical, keyCertSign, cRLSign\n"
                    "subjectKeyIdentifier = hash\n")
        csr = os.path.join(self.dir, prefix + ".csr")
        openssl("req", "-new", "-key", self.key, "-subj", "/O=Portico Tests/CN=" + cn, "-out", csr)
        openssl("x509", "-req", "-in", csr, "-signkey", self.key, "-days", "30", "-sha256",
                "-set_serial", "0x1000", "-extfile", ext, "-extensions", "v3_ca", "-out", self.cert)
        self.serial = 0x2000
        self.index = os.path.join(self.dir, prefix + "-index.txt")
        open(self.index, "w").close()
        with open(self.index + ".attr", "w") as f:
            f.write("unique_subject = no\n")  # an RSA and an ECDSA leaf may share a name
        self.leaves = {}

    def leaf(self, name, sans, kind="rsa", subject=None, client=False, days=30):
        """A leaf certificate `name`.pem / `name`.key. `sans` are DNS names
        (first one is also the CN unless `subject` is given)."""
        self.serial += 1
        serial = "%X" % self.serial
        key = genkey(os.path.join(self.dir, name + ".key"), kind)
        cert = os.path.join(self.dir, name + ".pem")
        csr = os.path.join(self.dir, name + ".csr")
        ext = os.path.join(self.dir, name + ".ext")
        subject = subject or "/CN=" + (sans[0] if sans else name)
        lines = ["[v3_leaf]", "basicConstraints = critical, CA:FALSE",
                 "authorityKeyIdentifier = keyid",
                 "subjectKeyIdentifier = hash"]
        if kind == "rsa":
            lines.append("keyUsage = critical, digitalSignature, keyEncipherment")
        else:
            lines.append("keyUsage = critical, digitalSignature")
        lines.append("extendedKeyUsage = " + ("clientAuth" if client else "serverAuth"))
        if sans:
            lines.append("subjectAltName = " + ", ".join("DNS:" + s for s in sans))
        with open(ext, "w") as f:
            f.write("\n".join(lines) + "\n")
        openssl("req", "-new", "-key", key, "-subj", subject, "-out", csr)
        openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key, "-days", str(days),
                "-sha256", "-set_serial", "0x" + serial, "-extfile", ext, "-extensions", "v3_leaf",
                "-out", cert)
        # The CA database `openssl ocsp -index` answers from:
        # status, expiry (YYMMDDHHMMSSZ), revocation date, serial, file, subject.
        enddate = openssl("x509", "-in", cert, "-noout", "-enddate").decode().strip()
        expiry = _asn1_time(enddate.split("=", 1)[1])
        dn = openssl("x509", "-in", cert, "-noout", "-subject", "-nameopt", "compat").decode().strip()
        dn = dn.split("=", 1)[1].strip() if dn.startswith("subject=") else dn
        with open(self.index, "a") as f:
            f.write("V\t%s\t\t%s\tunknown\t%s\n" % (expiry, serial, dn))
        lf = Leaf(name, cert, key, serial, subject, kind)
        self.leaves[name] = lf
        return lf

    def ocsp_response(self, leaf, out=None):
        """A DER OCSP response saying `leaf` is good, signed by the CA itself
        (an issuer-signed response needs no delegation). Returns its path."""
        out = out or os.path.join(self.dir, leaf.name + ".ocsp.der")
        req = os.path.join(self.dir, leaf.name + ".ocsp-req.der")
        openssl("ocsp", "-issuer", self.cert, "-cert", leaf.cert, "-no_nonce", "-reqout", req)
        openssl("ocsp", "-index", self.index, "-rsigner", self.cert, "-rkey", self.key, "-CA", self.cert,
                "-reqin", req, "-respout", out, "-ndays", "7")
        return out


_MONTHS = {m: i + 1 for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())}


def _asn1_time(s):
    """'Dec 26 15:51:00 2025 GMT' -> '251226155100Z'."""
    parts = s.split()
    mon, day, hms, year = parts[0], int(parts[1]), parts[2], int(parts[3])
    h, m, sec = hms.split(":")
    return "%02d%02d%02d%s%s%sZ" % (year % 100, _MONTHS[mon], day, h, m, sec)


def cert_text(pem_or_path):
    """`openssl x509 -text` of a PEM certificate (a path or the PEM itself)."""
    if isinstance(pem_or_path, (bytes, str)) and not str(pem_or_path).lstrip().startswith("-----BEGIN"):
        return openssl("x509", "-in", pem_or_path, "-noout", "-text").decode()
    data = pem_or_path.encode() if isinstance(pem_or_path, str) else pem_or_path
    return openssl("x509", "-noout", "-text", input=data).decode()
