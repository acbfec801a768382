"""W3C Trace Context: a valid traceparent passes through and its trace id is
logged; with `tracing: true` a trace is started when the request has none
(or an invalid one) and the new traceparent is sent upstream."""
import json
import re
import time

import pytest

from lib.origin import echo
from lib.portico import proxy_config, request

TP_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")
VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def hdrs(doc, name):
    return [v for k, v in doc["headers"] if k.lower() == name]


def log_entries(path, n, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(path) as f:
                lines = [ln for ln in f.read().splitlines() if ln.strip()]
            if len(lines) >= n:
                return [json.loads(ln) for ln in lines]
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("access log has fewer than %d lines" % n)


def start(portico, origin, tmp_path, tracing):
    o = origin(echo())
    log = str(tmp_path / "access.log")
    extra = "log: {access: %s}\n%s" % (log, "tracing: true\n" if tracing else "")
    p = portico(proxy_config([o.address], extra=extra))
    return p, o, log


def test_tracing_off_passes_a_valid_traceparent_and_logs_it(portico, origin, tmp_path):
    p, o, log = start(portico, origin, tmp_path, False)
    doc = request(p.port, "GET", "/a", [("traceparent", VALID)]).json()
    assert hdrs(doc, "traceparent") == [VALID]
    doc = request(p.port, "GET", "/b").json()
    assert hdrs(doc, "traceparent") == []
    p.stop()
    e = log_entries(log, 2)
    assert e[0]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert e[1]["trace_id"] is None


def test_tracing_off_leaves_an_invalid_traceparent_alone(portico, origin, tmp_path):
    p, o, log = start(portico, origin, tmp_path, False)
    bad = "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
    doc = request(p.port, "GET", "/a", [("traceparent", bad)]).json()
    assert hdrs(doc, "traceparent") == [bad]
    p.stop()
    assert log_entries(log, 1)[0]["trace_id"] is None


def test_tracing_on_starts_a_trace(portico, origin, tmp_path):
    p, o, log = start(portico, origin, tmp_path, True)
    ids = set()
    for i in range(3):
        doc = request(p.port, "GET", "/n%d" % i).json()
        tp = hdrs(doc, "traceparent")
        assert len(tp) == 1 and TP_RE.match(tp[0]), tp
        ids.add(TP_RE.match(tp[0]).group(1))
    assert len(ids) == 3  # a new trace per request
    p.stop()
    logged = {e["trace_id"] for e in log_entries(log, 3)}
    assert logged == ids


@pytest.mark.parametrize("bad", [
    "garbage",
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # uppercase
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # 00 has four fields
])
def test_tracing_on_replaces_an_invalid_traceparent(portico, origin, tmp_path, bad):
    p, o, log = start(portico, origin, tmp_path, True)
    doc = request(p.port, "GET", "/x", [("traceparent", bad)]).json()
    tp = hdrs(doc, "traceparent")
    assert len(tp) == 1 and TP_RE.match(tp[0]) and tp[0] != bad, tp
    p.stop()
    assert log_entries(log, 1)[0]["trace_id"] == TP_RE.match(tp[0]).group(1)


def test_tracing_on_keeps_a_valid_traceparent(portico, origin, tmp_path):
    p, o, log = start(portico, origin, tmp_path, True)
    future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more"
    doc = request(p.port, "GET", "/a", [("traceparent", VALID)]).json()
    assert hdrs(doc, "traceparent") == [VALID]
    doc = request(p.port, "GET", "/b", [("traceparent", future)]).json()
    assert hdrs(doc, "traceparent") == [future]  # later versions may add fields
    p.stop()
    e = log_entries(log, 2)
    assert [x["trace_id"] for x in e] == ["4bf92f3577b34da6a3ce929d0e0e4736"] * 2
