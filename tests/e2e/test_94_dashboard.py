"""The dashboard (GET /dashboard) in headless Chromium, driven over the
DevTools protocol (python3-websockets): the page loads from the binary, its
charts draw (points counted by the page and pixels read back from the
canvases), upstream servers show their state, a drain made through the admin
API appears on the open page without a reload, the history is there at load,
and with a bearer token the page asks for it and then draws. A screenshot is
written to the test's directory; with PORTICO_UPDATE_SCREENSHOT=1 the
traffic runs a minute longer and the picture replaces docs/dashboard.png. Skipped when chromium or python3-websockets is
missing (both come with `make deps`)."""
import asyncio
import base64
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from lib.origin import by_path, echo, fixed
from lib.portico import REPO, SLOW, free_port, request, wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

try:
    import websockets
except ImportError:  # pragma: no cover - depends on the host
    websockets = None

pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK) or websockets is None,
                                reason="chromium or python3-websockets not installed")


class Browser:
    """One headless Chromium with one page, spoken to over the DevTools
    protocol. Every wait is bounded."""

    def __init__(self, workdir, width=1400, height=1100):
        self.dir = str(workdir)
        profile = os.path.join(self.dir, "profile")
        self.err = open(os.path.join(self.dir, "chromium.log"), "wb")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
             "--user-data-dir=" + profile, "--no-first-run", "--no-default-browser-check",
             "--disable-background-networking", "--disable-extensions", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
             "--window-size=%d,%d" % (width, height), "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.err)
        self.loop = asyncio.new_event_loop()
        self.ws = None
        self.next_id = 0
        try:
            port_file = os.path.join(profile, "DevToolsActivePort")
            deadline = time.monotonic() + 30 * SLOW
            info = []
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with open(port_file) as f:
                        info = f.read().split()
                except OSError:
                    info = []
                if len(info) >= 2:
                    break
                time.sleep(0.05)
            assert len(info) >= 2, "chromium did not open its DevTools port"
            self.port = int(info[0])
            browser = self._run(self._connect("ws://127.0.0.1:%d%s" % (self.port, info[1])))
            self.ws = browser
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self._run(browser.close())
            self.ws = self._run(self._connect("ws://127.0.0.1:%d/devtools/page/%s" % (self.port, target)))
            self.call("Page.enable")
            self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                      deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()
            raise

    async def _connect(self, url):
        # Made inside the loop: websockets binds a connection to the running loop.
        return await websockets.connect(url, max_size=None, open_timeout=30 * SLOW)

    def _run(self, coro, timeout=60):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout * SLOW))

    async def _call(self, method, params):
        self.next_id += 1
        mid = self.next_id
        await self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise AssertionError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})

    def call(self, method, **params):
        return self._run(self._call(method, params))

    def navigate(self, url):
        self.call("Page.navigate", url=url)

    def js(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise AssertionError("javascript failed: %s" % r["exceptionDetails"])
        return r["result"].get("value")

    def wait_js(self, expr, timeout=15.0):
        """Polls expr until it is truthy; returns its last value."""
        deadline = time.monotonic() + timeout * SLOW
        v = None
        while time.monotonic() < deadline:
            try:
                v = self.js(expr)
            except AssertionError:
                v = None
            if v:
                return v
            time.sleep(0.1)
        return v

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            if self.ws is not None:
                self._run(self.ws.close(), timeout=5)
        except Exception:
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.loop.close()
        self.err.close()


@pytest.fixture
def browser(tmp_path):
    made = []

    def make(**kw):
        b = Browser(tmp_path, **kw)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def traffic(port, stop, paths, pause=0.01):
    """Requests in a loop until stop is set (errors are the point for some paths)."""
    i = 0
    while not stop.is_set() and i < 100000:
        try:
            request(port, "GET", paths[i % len(paths)], timeout=5)
        except Exception:
            pass
        i += 1
        time.sleep(pause)


def config(admin, servers, token=None):
    tok = ", token_file: %s" % token if token else ""
    return ("workers: 2\nadmin: {listen: 127.0.0.1:%d%s}\n"
            "listeners:\n  - name: web\n    listen: ${listen}\n"
            "upstreams:\n  app:\n    servers:\n%s"
            "routes:\n"
            "  - name: static\n    match: {path: /static}\n    respond: {status: 200, body: \"static\"}\n"
            "  - name: api\n    match: {path: /api/}\n    upstream: app\n") % (
        admin, tok, "".join("      - {address: %s}\n" % s for s in servers))


# Counts the canvas pixels in a series colour (not the grid, not the axis
# text): the chart really drew data.
INK = """(function () {
  var css = getComputedStyle(document.documentElement), cols = [];
  ['--c1', '--c2', '--c3', '--c4', '--c5'].forEach(function (v) {
    var h = css.getPropertyValue(v).trim();
    cols.push([parseInt(h.substr(1, 2), 16), parseInt(h.substr(3, 2), 16), parseInt(h.substr(5, 2), 16)]);
  });
  var out = {};
  ['c-rate', 'c-status', 'c-lat', 'c-bytes'].forEach(function (id) {
    var c = document.getElementById(id), g = c.getContext('2d');
    var d = g.getImageData(0, 0, c.width, c.height).data, n = 0;
    for (var i = 0; i < d.length; i += 4) {
      if (d[i + 3] < 20) continue;
      for (var k = 1; k < cols.length; k++) {
        var q = cols[k];
        if (Math.abs(d[i] - q[0]) + Math.abs(d[i + 1] - q[1]) + Math.abs(d[i + 2] - q[2]) < 30) { n++; break; }
      }
    }
    out[id] = {ink: n, points: Number(c.dataset.points)};
  });
  return out;
})()"""


def test_dashboard_draws_and_follows_a_drain(portico, origin, browser, tmp_path):
    a = origin(by_path({"/api/slow": echo(delay=0.05), "/api/fail": fixed(503)}, default=echo()), name="a")
    b = origin(by_path({"/api/slow": echo(delay=0.12), "/api/fail": fixed(503)}, default=echo()), name="b")
    admin = free_port()
    p = portico(config(admin, [a.address, b.address]))

    # the page is served from the binary, self-contained
    r = request(admin, "GET", "/dashboard")
    assert r.status == 200 and r.header("content-type").startswith("text/html")
    html = r.body.decode()
    assert "<canvas" in html and "http://" not in html and "https://" not in html
    assert "<script src" not in html and "<link" not in html

    stop = threading.Event()
    paths = ["/api/x"] * 6 + ["/api/slow", "/static", "/static", "/nowhere", "/api/fail"]
    workers = [threading.Thread(target=traffic, args=(p.port, stop, paths)) for _ in range(3)]
    for t in workers:
        t.start()
    try:
        # history exists before the page loads
        assert wait_for(lambda: sum(s["req"] for s in request(admin, "GET", "/dashboard/data").json()["samples"]) > 20,
                        timeout=10)
        br = browser()
        br.navigate("http://127.0.0.1:%d/dashboard" % admin)
        assert br.wait_js("Number(document.body.dataset.draws) >= 1"), br.js("document.body.outerHTML")
        assert br.js("Number(document.body.dataset.points)") >= 2  # drawn from history at the first poll
        assert br.wait_js("Number(document.body.dataset.draws) >= 3")  # and it keeps polling
        ink = br.js(INK)
        for cid, v in ink.items():
            assert v["points"] > 0 and v["ink"] > 50, (cid, v)
        assert br.js("document.getElementById('k-rps').textContent") not in ("-", "")
        assert "no data" not in br.js("document.getElementById('status').textContent")

        def states():
            return br.js("Array.from(document.querySelectorAll('#servers tr[data-server]'))"
                         ".map(function (t) { return [t.dataset.server, t.dataset.state, t.cells[2].textContent]; })")

        assert sorted(states()) == sorted([["app/" + a.address, "up", "up"], ["app/" + b.address, "up", "up"]])
        routes = br.js("Array.from(document.querySelectorAll('#routes tr')).map(function (t) { return t.cells[0].textContent; })")
        assert "api" in routes and "static" in routes and "(no route)" in routes
        assert br.js("document.querySelectorAll('#workers tr').length") == 2

        # a drain made elsewhere shows up on the open page
        assert request(admin, "POST", "/upstreams/app/servers/%s/drain" % a.address).status == 200
        assert br.wait_js("(function () { var t = document.querySelector('#servers tr[data-server=\"app/%s\"]');"
                          " return t && t.dataset.state === 'draining' && t.cells[2].textContent === 'draining'; })()"
                          % a.address, timeout=10), states()
        assert dict((s, st) for s, st, _ in states())["app/" + b.address] == "up"
        # one more poll: rates of the drained server settle. For the docs'
        # picture, a minute more of traffic so the charts have history.
        time.sleep(60 if os.environ.get("PORTICO_UPDATE_SCREENSHOT") == "1" else 1.5)
        shot = str(tmp_path / "dashboard.png")
        br.screenshot(shot)
    finally:
        stop.set()
        for t in workers:
            t.join(20)
    with open(shot, "rb") as f:
        png = f.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000
    if os.environ.get("PORTICO_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, os.path.join(REPO, "docs", "dashboard.png"))


def test_dashboard_asks_for_the_token(portico, origin, browser, tmp_path):
    o = origin(echo())
    admin = free_port()
    tok = tmp_path / "token"
    tok.write_text("dash-token-0123456789abcdef\n")
    p = portico(config(admin, [o.address], token=str(tok)))
    assert request(p.port, "GET", "/api/x").status == 200
    # the page holds no data: served without the token; its data is not
    assert request(admin, "GET", "/dashboard").status == 200
    assert request(admin, "GET", "/dashboard/data").status == 401
    br = browser()
    br.navigate("http://127.0.0.1:%d/dashboard" % admin)
    assert br.wait_js("getComputedStyle(document.getElementById('login')).display === 'flex'")
    assert "token" in br.js("document.getElementById('status').textContent")
    assert br.js("Number(document.body.dataset.draws)") == 0
    br.js("document.getElementById('token').value = 'dash-token-0123456789abcdef';"
          "document.getElementById('login').requestSubmit(); true")
    assert br.wait_js("Number(document.body.dataset.draws) >= 1")
    assert br.js("document.querySelectorAll('#servers tr[data-server]').length") == 1
