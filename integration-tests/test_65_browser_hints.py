# SPDX-License-Identifier: MIT
"""A real browser acts on the 103 Early Hints lowat forwards.

The demo app answers its page with a 103 naming the stylesheet, script and logo, then thinks
for 1000 ms before the 200. lowat (policy `hints`, TLS, HTTP/2) forwards the 103; headless
Chromium loads the page. With `hints`, Chromium must fetch /static/style.css and
/static/app.js while the app is still thinking: lowat's access log shows both exchanges
complete at least 0.5 s before the page's, and the DevTools protocol shows Chromium received
the 103 with those links, fetched them as early-hint preloads, and used the preloaded
responses (Resource Timing initiatorType "early-hints", nothing fetched twice). The control,
policy `none`, forwards no 103: the assets are fetched only after the page arrived.

Two details of the set-up, both needed for a meaningful answer:
- Chromium does not cache responses served with a certificate error, and early-hint preloads
  are handed to the page through the HTTP cache; with only --ignore-certificate-errors it
  preloads and then fetches everything again. The test reads the SPKI of lowat's generated
  certificate and passes it in --ignore-certificate-errors-spki-list, which makes Chromium
  treat the certificate as valid.
- Chromium drops a 103 that arrives on an HTTP/2 stream before its own transaction has begun
  waiting for the response headers (its SpdyHttpStream stores the interim headers but has
  nobody to tell yet). On loopback, where lowat relays the app's 103 in a fraction of a
  millisecond, that happens about every other load; across any real network it does not. So
  the browser talks to lowat through a relay that delays each direction by 10 ms (a 20 ms
  round trip, a near client), run by this test on 127.0.0.1.

Skipped when /usr/bin/chromium (Debian package `chromium`) is not installed.

Environment:
    LOWAT_DEMO_APP  the demo app (default: <repo>/build/tools/lowat-demo-app)
    LOWAT_CHROMIUM  the browser (default: /usr/bin/chromium)
"""

import collections
import datetime
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, SLOW, parse_access_line

sys.path.insert(0, str(REPO / "tools" / "bench"))
import browser  # noqa: E402

DEMO_APP_BIN = Path(os.environ.get("LOWAT_DEMO_APP", REPO / "build" / "tools" / "lowat-demo-app")).resolve()
CHROMIUM = os.environ.get("LOWAT_CHROMIUM", browser.CHROMIUM)
THINK_MS = 1000
RELAY_DELAY_S = 0.010  # each direction
MARGIN_S = 0.5  # the preloads must be done this long before the page
ASSETS = ["/static/style.css", "/static/app.js"]

pytestmark = pytest.mark.skipif(not browser.available(CHROMIUM),
                                reason=f"needs {CHROMIUM}: install the Debian package chromium")


class DemoApp:
    """lowat-demo-app on 127.0.0.1:0; stopped by PID."""

    def __init__(self, *args):
        if not DEMO_APP_BIN.exists():
            pytest.fail(f"the demo app not found at {DEMO_APP_BIN} (ninja -C build, or set LOWAT_DEMO_APP)")
        self.lines = []
        self.proc = subprocess.Popen([str(DEMO_APP_BIN), "--listen", "127.0.0.1:0", *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.port = None
        ready = threading.Event()

        def read():
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                self.lines.append(line)
                m = re.search(r"listening on [\d.]+:(\d+)", line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()
        threading.Thread(target=read, daemon=True).start()
        ready.wait(10 * SLOW)
        if self.port is None:
            self.stop()
            pytest.fail("the demo app did not start:\n" + "\n".join(self.lines))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class DelayRelay:
    """A TCP relay on 127.0.0.1:0 to `target` that delivers every byte `delay` seconds after
    it was read, in both directions (order kept, half-closes passed on)."""

    def __init__(self, target, delay):
        self.target, self.delay = target, delay
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.socks = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.target, timeout=5)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.socks += [c, u]
            self._pipe(c, u)
            self._pipe(u, c)

    def _pipe(self, src, dst):
        q = collections.deque()
        cv = threading.Condition()

        def reader():
            while True:
                try:
                    d = src.recv(65536)
                except OSError:
                    d = b""
                with cv:
                    q.append((time.monotonic() + self.delay, d))
                    cv.notify()
                if not d:
                    return

        def writer():
            while True:
                with cv:
                    while not q:
                        cv.wait()
                    due, d = q.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    if not d:
                        dst.shutdown(socket.SHUT_WR)
                        return
                    dst.sendall(d)
                except OSError:
                    return
        threading.Thread(target=reader, daemon=True).start()
        threading.Thread(target=writer, daemon=True).start()

    def close(self):
        self.ls.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


def when(line):
    """(start, end) of an access-log exchange in seconds of wall time: the line is written
    when the exchange ends; total_ms is its duration."""
    end = datetime.datetime.strptime(line["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    return end - float(line["total_ms"]) / 1000.0, end


def load_page(lowat, tmp_path, policy):
    """Demo app + lowat (policy) + relay, one page load in a fresh Chromium. Returns the
    access-log lines (parsed), the DevTools requests, Resource Timing entries, and the
    navigation entry."""
    app = DemoApp("--think-ms", str(THINK_MS))
    relay = None
    try:
        lw = lowat(f"127.0.0.1:{app.port}", workers=1, clear=False,
                   routes=[{"path": "/", "backend": "app", "push": policy}])
        spki = browser.server_spki("127.0.0.1", lw.tls_port)
        relay = DelayRelay(("127.0.0.1", lw.tls_port), RELAY_DELAY_S)
        url = f"https://127.0.0.1:{relay.port}/"
        with browser.Chromium(tmp_path / "chromium", binary=CHROMIUM, allow_hosts=["127.0.0.1"],
                              trust_spki=[spki], start_timeout=20 * SLOW) as br:
            page = br.new_page()
            page.navigate(url, timeout=20 * SLOW)
            reqs = page.requests()
            resources = page.resource_timing()
            nav = page.navigation_timing()
            page.close()

        def have_all(lines):
            paths = [x.get("path") for x in lines]
            return "/" in paths and all(a in paths for a in ASSETS)
        deadline = time.monotonic() + 5 * SLOW
        lines = []
        while time.monotonic() < deadline:
            lines = [parse_access_line(x) for x in lw.access_log_lines()]
            if have_all(lines):
                break
            time.sleep(0.05)
        assert have_all(lines), f"access log lacks the page or its assets: {lines}"
        return lines, reqs, resources, nav
    finally:
        if relay is not None:
            relay.close()
        app.stop()
        browser.cleanup_dirs(tmp_path / "chromium")


def summary(lines):
    return "\n".join(f"  {x['ts']} {x.get('path')} status={x.get('status')} total_ms={x.get('total_ms')}"
                     for x in lines)


def test_h2_h1_chromium_preloads_from_forwarded_103(lowat, tmp_path):
    lines, reqs, resources, nav = load_page(lowat, tmp_path, "hints")
    page = [x for x in lines if x.get("path") == "/"]
    assert len(page) == 1 and page[0]["status"] == "200", summary(lines)
    page_start, page_end = when(page[0])
    assert page_end - page_start >= THINK_MS / 1000 * 0.95, summary(lines)

    # lowat's view: each preload was asked for and answered while the app was thinking.
    for asset in ASSETS:
        got = [x for x in lines if x.get("path") == asset]
        assert len(got) == 1, f"{asset} fetched {len(got)} times (want 1: the preload, then used):\n{summary(lines)}"
        assert got[0]["status"] == "200" and got[0].get("push") != "1", summary(lines)
        start, end = when(got[0])
        assert start >= page_start - 0.005, f"{asset} before the page was asked for?\n{summary(lines)}"
        assert end <= page_end - MARGIN_S, (f"{asset} completed {page_end - end:.3f} s before the page, want >= "
                                            f"{MARGIN_S}:\n{summary(lines)}")

    # Chromium's view: the 103 reached the navigation, and the assets came from its preloads.
    doc = [r for r in reqs if r.get("type") == "Document"]
    assert len(doc) == 1, reqs
    doc = doc[0]
    assert doc.get("status") == 200 and doc.get("protocol") == "h2", doc
    hinted = doc.get("early_hints") or []
    for asset in ASSETS:
        assert any(h.startswith(f"<{asset}>") and "rel=preload" in h for h in hinted), hinted
    # The 103 was seen (at least) the think time before the final response headers.
    assert doc["t_response"] - doc["t_early_hints"] >= MARGIN_S, doc
    for asset in ASSETS:
        entry = [e for e in resources if e["name"].endswith(asset)]
        assert len(entry) == 1 and entry[0]["initiatorType"] == "early-hints", resources
        net = [r for r in reqs if (r.get("url") or "").endswith(asset)]
        assert net and all(r.get("from_early_hints") for r in net), net
    assert nav["loadEventEnd"] > 0, nav


def test_h2_h1_chromium_without_hints_fetches_after_the_page(lowat, tmp_path):
    lines, reqs, resources, nav = load_page(lowat, tmp_path, "none")
    page = [x for x in lines if x.get("path") == "/"]
    assert len(page) == 1 and page[0]["status"] == "200", summary(lines)
    page_start, page_end = when(page[0])
    assert page_end - page_start >= THINK_MS / 1000 * 0.95, summary(lines)
    for asset in ASSETS:
        got = [x for x in lines if x.get("path") == asset]
        assert len(got) == 1, summary(lines)
        start, _ = when(got[0])
        # Asked for only once the page had been answered (the 1 ms is the log's resolution).
        assert start >= page_end - 0.001, f"{asset} asked for before the page was done:\n{summary(lines)}"
    doc = [r for r in reqs if r.get("type") == "Document"][0]
    assert not doc.get("early_hints"), doc
    for asset in ASSETS:
        entry = [e for e in resources if e["name"].endswith(asset)]
        assert len(entry) == 1 and entry[0]["initiatorType"] != "early-hints", resources
    assert nav["loadEventEnd"] > 0, nav
