#!/usr/bin/python3
"""A tiny demo origin for trying portico: answers every request with a short
text page naming itself, the path and the forwarding headers it received.
Usage: demo_origin.py PORT [NAME]"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "demo-origin"

    def do_GET(self):
        name = self.server.name
        if self.path.startswith("/cached/"):
            # cacheable for 30 s and big enough to be worth compressing
            self.server.hits += 1
            body = ("%s, response #%d for %s\n" % (name, self.server.hits, self.path)
                    + "lorem ipsum dolor sit amet " * 80 + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "max-age=30")
            self.send_header("ETag", '"%s-%d"' % (name, self.server.hits))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        lines = ["hello from %s" % name, "path: %s" % self.path]
        for h in ("Host", "X-Forwarded-For", "X-Real-IP", "X-Request-Id"):
            lines.append("%s: %s" % (h, self.headers.get(h, "-")))
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Origin", name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        data = self.rfile.read(n)
        body = ("%s received %d bytes\n" % (self.server.name, len(data))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1])
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.name = sys.argv[2] if len(sys.argv) > 2 else "origin-%d" % port
    srv.hits = 0
    srv.serve_forever()
