"""Config validation of the response filter keys with `portico -t -c FILE`:
routes[].cache, routes[].compress, and the top-level cache_size, cache_path,
cache_disk_size and tracing. Valid forms print "ok"; each bad value is
reported as FILE:LINE:COL: message at the offending key or value, exit 1.
"""
import pytest

from lib.portico import free_port, run_cli
from test_10_conf import error_lines, pos, write

VALID = """\
workers: 1
cache_size: 64m
cache_path: cache-dir
cache_disk_size: 2g
tracing: true
listeners:
  - listen: 127.0.0.1:%(port)d
upstreams:
  app:
    servers: [127.0.0.1:3000]
routes:
  - match: {path: /static/}
    upstream: app
    cache:
      valid: {200: 10m, "404": 1m, any: 5s}
      key: "{scheme}://{host}{uri}"
      max_object_size: 16m
      cookies: false
      lock_timeout: 2s
      stale_if_error: 1m
      stale_while_revalidate: 30s
    compress:
      algorithms: [zstd, br, gzip]
      min_length: 1k
      types: [text/html, "text/*", application/json]
      levels: {gzip: 6, br: 5, zstd: 10}
  - match: {path: /api/}
    upstream: app
    cache: {valid: {200: 10m, 404: 1m}}
    compress: [zstd, br, gzip]
  - match: {path: /plain/}
    upstream: app
    cache: true
    compress: true
  - match: {path: /off/}
    upstream: app
    cache: false
    compress: false
  - respond: {status: 200, body: "hello\\n"}
    compress: [gzip]
"""


def valid_text():
    return VALID % {"port": free_port()}


def at(text, needle):
    """(line, col) of the '@' in needle, or of needle's start without one."""
    off = max(needle.find("@"), 0)
    line, col = pos(text, needle.replace("@", "", 1))
    return line, col + off


def check_ok(tmp_path, text):
    r = run_cli(["-t", "-c", write(tmp_path, text)])
    assert r.returncode == 0, (text, r.stderr)
    assert "ok" in (r.stdout + r.stderr).decode().split(), (r.stdout, r.stderr)


def test_valid_filter_config_prints_ok(tmp_path):
    check_ok(tmp_path, valid_text())


@pytest.mark.parametrize("form", [
    "compress: [gzip]",
    "compress: {}",
    "compress: {levels: {br: 0}}",
    "cache: {}",
    "cache: {valid: {any: 0}}",
])
def test_more_valid_forms(tmp_path, form):
    text = valid_text().replace("    cache: true\n    compress: true\n", "    %s\n" % form)
    check_ok(tmp_path, text)


# (id, old text, new text, needle locating the error (at its '@' if it has one),
#  words the message must contain)
ERROR_CASES = [
    ("cache-wrong-type", "    cache: true\n", "    cache: yes\n", "yes", ["cache", "mapping"]),
    ("cache-on-respond", "  - respond: {status: 200, body: \"hello\\n\"}\n",
     "  - respond: {status: 200, body: \"hello\\n\"}\n    cache: true\n", "cache: true\n    compress: [gzip]",
     ["only for routes that proxy", "respond"]),
    ("cache-unknown-key", "      cookies: false\n", "      cookie: false\n", "cookie:", ["unknown key 'cookie'"]),
    ("cache-bad-status", "{200: 10m, 404: 1m}", "{200: 10m, 4xx: 1m}", "4xx", ["100..599", "any"]),
    ("cache-status-range", "{200: 10m, 404: 1m}", "{200: 10m, 600: 1m}", "600: 1m", ["600"]),
    ("cache-bad-ttl", "{200: 10m, 404: 1m}", "{200: 10m, 404: soon}", "soon", ["duration"]),
    ("cache-bad-key-template", "key: \"{scheme}://{host}{uri}\"", "key: \"{scheme}://{hots}\"",
     "\"{scheme}://{hots}\"", ["template", "offset 11"]),
    ("cache-object-too-big", "max_object_size: 16m", "max_object_size: 2g", "max_object_size: @2g", ["1g"]),
    ("cache-cookies-not-bool", "cookies: false", "cookies: no", "cookies: @no", ["true or false"]),
    ("cache-bad-lock-timeout", "lock_timeout: 2s", "lock_timeout: 2x", "2x", ["duration"]),
    ("compress-wrong-type", "    compress: true\n", "    compress: gzip\n", "compress: @gzip\n", ["compress"]),
    ("compress-empty", "    compress: [zstd, br, gzip]\n", "    compress: []\n", "[]", ["must not be empty"]),
    ("compress-unknown-alg", "    compress: [zstd, br, gzip]\n", "    compress: [zstd, lz4]\n", "lz4",
     ["lz4", "gzip, br, zstd"]),
    ("compress-duplicate-alg", "    compress: [zstd, br, gzip]\n", "    compress: [zstd, br, zstd]\n",
     "[zstd, br, @zstd]", ["duplicate", "zstd"]),
    ("compress-bad-type", "types: [text/html,", "types: [html,", "html,", ["media type 'html'"]),
    ("compress-bad-level", "levels: {gzip: 6,", "levels: {gzip: 10,", "{gzip: @10,", ["'gzip'", "1 and 9"]),
    ("compress-unknown-level", "levels: {gzip: 6,", "levels: {deflate: 6,", "deflate", ["unknown key 'deflate'"]),
    ("compress-bad-min-length", "min_length: 1k", "min_length: 1kb2", "1kb2", ["size"]),
    ("cache-size-too-small", "cache_size: 64m", "cache_size: 100k", "100k", ["1m", "64g"]),
    ("tracing-not-bool", "tracing: true", "tracing: yes", "tracing: @yes", ["true or false"]),
    ("disk-size-needs-path", "cache_path: cache-dir\n", "", "cache_disk_size", ["cache_disk_size needs cache_path"]),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_reported_with_position(tmp_path, case):
    name, old, new, needle, words = case
    base = valid_text()
    assert old in base, old
    text = base.replace(old, new, 1)
    path = write(tmp_path, text)
    r = run_cli(["-t", "-c", path])
    assert r.returncode == 1, (text, r.stdout, r.stderr)
    errs = error_lines(path, r.stderr)
    assert len(errs) == 1, r.stderr.decode()
    line, col = at(text, needle)
    assert (errs[0][0], errs[0][1]) == (line, col), (text, r.stderr.decode(), (line, col))
    for w in words:
        assert w in errs[0][2], errs[0][2]
    assert "ok" not in r.stdout.decode().split()


def test_every_filter_error_is_reported(tmp_path):
    text = valid_text()
    text = text.replace("tracing: true", "tracing: 1")
    text = text.replace("{200: 10m, 404: 1m}", "{200: 10m, 99: 1m}")
    text = text.replace("    compress: true\n", "    compress: [br, br]\n")
    text = text.replace("    cache: false\n", "    cache: {ttl: 5m}\n")
    path = write(tmp_path, text)
    r = run_cli(["-t", "-c", path])
    assert r.returncode == 1
    got = [(e[0], e[1]) for e in error_lines(path, r.stderr)]
    want = [at(text, "tracing: @1"), at(text, "99: 1m"), at(text, "{@ttl: 5m}"), at(text, "[br, @br]")]
    assert got == sorted(want), (r.stderr.decode(), want)
