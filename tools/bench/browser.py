#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Drives headless Chromium over the DevTools protocol (CDP), Python standard library only.

Used by integration-tests/test_65_browser_hints.py and tools/bench/push/run.py; it can be
imported from anywhere (`sys.path.insert(0, "<repo>/tools/bench")`).

Transport: `--remote-debugging-pipe`. Chromium reads commands from its fd 3 and writes
answers and events to its fd 4, each message one JSON object ended by a NUL byte. No
websocket, no port, nothing listening. The two pipe ends are put on fds 3 and 4 by a bash
`exec` in front of Chromium, so the PID we get is Chromium's own (bash, `ip netns exec` and
Debian's /usr/bin/chromium wrapper all exec).

Flags: every start has the flags below (headless, no sandbox, no GPU, no QUIC, and everything
that would make Chromium talk to hosts of its own: background networking, component
updates, sync, metrics, domain reliability, safe browsing...), a fresh `--user-data-dir`, a
HOME and XDG directories inside it, and a host-resolver rule that fails every name lookup
except the addresses the caller allows: the browser reaches the server under test and
nothing else.

    from browser import Chromium
    with Chromium(workdir, allow_hosts=["127.0.0.1"]) as br:   # ip netns exec NS with netns=NS
        page = br.new_page()            # a fresh browser context: own cache, own connections
        page.navigate("https://127.0.0.1:8443/", timeout=20)    # returns at the load event
        nav = page.navigation_timing()  # performance.getEntriesByType('navigation')[0]
        reqs = page.requests()          # Network.* events, one dict per request
        page.close()

Certificates: `ignore_cert_errors` (default on) passes --ignore-certificate-errors. That alone
is not enough to test Early Hints: Chromium keeps nothing served with a certificate error in
its HTTP cache, and early-hint preloads reach the page through that cache, so it preloads and
then fetches again. Pass the server certificate's SPKI hash in `trust_spki` (server_spki() reads
it from a running server, spki_sha256() from a DER certificate): Chromium then treats the
certificate as valid (--ignore-certificate-errors-spki-list).

Timestamps: CDP's Network timestamps are seconds of Chromium's monotonic clock, which on
Linux is CLOCK_MONOTONIC, the clock of Python's time.monotonic(): they compare directly.

Stopping: Browser.close, then SIGTERM and SIGKILL to Chromium's PID if it lingers, then any
process still left in the session Chromium leads (its zygote and renderers), each by PID.
"""

import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"

# Required on this machine: without the background-networking flags Chromium contacts external
# hosts, which is forbidden here.
REQUIRED_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
QUIET_FLAGS = [
    "--disable-extensions", "--disable-default-apps", "--no-default-browser-check", "--no-pings",
    "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--disable-breakpad",
    "--metrics-recording-only", "--disable-features=MediaRouter,OptimizationHints,Translate,"
    "CertificateTransparencyComponentUpdater,AutofillServerCommunication,InterestFeedContentSuggestions",
    "--safebrowsing-disable-auto-update", "--password-store=basic", "--use-mock-keychain", "--mute-audio",
    "--disable-dev-shm-usage", "--disable-renderer-backgrounding", "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows", "--window-size=1280,800",
]


class CdpError(Exception):
    pass


def available(binary=CHROMIUM):
    return os.path.exists(binary) and os.access(binary, os.X_OK)


class Chromium:
    """One headless Chromium process and its DevTools pipe."""

    def __init__(self, workdir, *, binary=CHROMIUM, netns=None, allow_hosts=("127.0.0.1",), ignore_cert_errors=True,
                 trust_spki=(), extra_flags=(), start_timeout=20.0, name="chromium"):
        self.workdir = Path(workdir)
        self.binary = binary
        self.netns = netns
        self.allow_hosts = list(allow_hosts)
        self.ignore_cert_errors = ignore_cert_errors
        self.trust_spki = list(trust_spki)
        self.extra_flags = list(extra_flags)
        self.start_timeout = start_timeout
        self.name = name
        self.proc = None
        self.log_path = self.workdir / f"{name}.log"
        self._next_id = 0
        self._cond = threading.Condition()
        self._answers = {}
        self._events = {}  # session id ("" = browser) -> [(recv monotonic, message)]
        self._eof = False
        self._wfd = self._rfd = None
        self._reader = None
        self._wlock = threading.Lock()
        self._tmpdir = None
        self._profile = None

    # ------------------------------------------------------------ process

    def flags(self, user_data_dir):
        rules = "MAP * ~NOTFOUND" + "".join(f", EXCLUDE {h}" for h in self.allow_hosts)
        f = REQUIRED_FLAGS + QUIET_FLAGS + [f"--user-data-dir={user_data_dir}", "--remote-debugging-pipe",
                                            f"--host-resolver-rules={rules}"]
        if self.ignore_cert_errors:
            f.append("--ignore-certificate-errors")
        if self.trust_spki:
            f.append("--ignore-certificate-errors-spki-list=" + ",".join(self.trust_spki))
        return f + self.extra_flags + ["about:blank"]

    def start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        profile = self._profile = Path(self._fresh_dir("profile"))
        # Chromium's singleton socket lives in TMPDIR, and a Unix socket path has ~107 bytes.
        self._tmpdir = tempfile.mkdtemp(prefix="lwcr-")
        os.chmod(self._tmpdir, 0o700)
        home = profile / "home"
        home.mkdir()
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
               "XDG_CACHE_HOME": str(home / ".cache"), "XDG_DATA_HOME": str(home / ".local/share"),
               "TMPDIR": self._tmpdir, "LANG": "C.UTF-8"}
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        # Above fd 4, so the redirections 3<&A 4>&B cannot clobber each other.
        a = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD_CLOEXEC, 5)
        b = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD_CLOEXEC, 5)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        cmd = ["/bin/bash", "-c", f'exec "$@" 3<&{a} 4>&{b} {a}<&- {b}>&-', "bash", self.binary,
               *self.flags(profile / "data")]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=env, pass_fds=(a, b), start_new_session=True)
        finally:
            log.close()
            os.close(a)
            os.close(b)
        self.pid = self.proc.pid
        self._wfd, self._rfd = to_chrome_w, from_chrome_r
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        try:
            self.version = self.call("Browser.getVersion", timeout=self.start_timeout)
        except Exception:
            self.close()
            raise
        return self

    def _fresh_dir(self, stem):
        for i in range(1000):
            p = self.workdir / f"{self.name}-{stem}-{i}"
            try:
                p.mkdir()
                return p
            except FileExistsError:
                continue
        raise RuntimeError("no fresh directory")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def log_text(self, tail=4000):
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def close(self, timeout=8.0):
        """Browser.close, then by PID: SIGTERM, SIGKILL; then the rest of its session."""
        if self.proc is None:
            return None
        if self.proc.poll() is None and not self._eof:
            try:
                self._send({"id": self._new_id(), "method": "Browser.close"})
            except OSError:
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._kill_session_leftovers()
        for fd in (self._wfd,):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._wfd = None
        if self._reader is not None:
            self._reader.join(5)
        rc = self.proc.returncode
        self.proc = None
        for d in (self._tmpdir, self._profile):
            if d:
                shutil.rmtree(d, ignore_errors=True)
        self._tmpdir = self._profile = None
        return rc

    def _kill_session_leftovers(self):
        """Chromium's helpers (zygote, renderers, utilities) share the session it leads (we
        started it with setsid); any still alive once it is gone are ours: kill each by PID."""
        sid = self.pid
        deadline = time.monotonic() + 5
        while True:
            left = []
            for d in os.listdir("/proc"):
                if not d.isdigit():
                    continue
                try:
                    fields = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[3]) == sid:  # fields after the name: state ppid pgrp session ...
                    left.append(int(d))
            if not left or time.monotonic() > deadline:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)

    # ------------------------------------------------------------ protocol

    def _new_id(self):
        with self._cond:
            self._next_id += 1
            return self._next_id

    def _send(self, msg):
        data = json.dumps(msg).encode() + b"\0"
        with self._wlock:
            if self._wfd is None:
                raise OSError("DevTools pipe closed")
            view = memoryview(data)
            while view:
                n = os.write(self._wfd, view)
                view = view[n:]

    def _read_loop(self):
        buf = b""
        try:
            while True:
                chunk = os.read(self._rfd, 1 << 20)
                if not chunk:
                    break
                t = time.monotonic()
                buf += chunk
                while True:
                    i = buf.find(b"\0")
                    if i < 0:
                        break
                    raw, buf = buf[:i], buf[i + 1:]
                    try:
                        msg = json.loads(raw)
                    except ValueError:
                        continue
                    with self._cond:
                        if "id" in msg:
                            self._answers[msg["id"]] = msg
                        else:
                            self._events.setdefault(msg.get("sessionId", ""), []).append((t, msg))
                        self._cond.notify_all()
        finally:
            os.close(self._rfd)
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def call(self, method, params=None, session=None, timeout=10.0):
        """Send a command and wait (bounded) for its answer; returns its result."""
        mid = self._new_id()
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._send(msg)
        deadline = time.monotonic() + timeout
        with self._cond:
            while mid not in self._answers:
                left = deadline - time.monotonic()
                if self._eof:
                    raise CdpError(f"{method}: Chromium closed the pipe; log:\n{self.log_text()}")
                if left <= 0:
                    raise CdpError(f"{method}: no answer in {timeout} s")
                self._cond.wait(min(left, 0.5))
            ans = self._answers.pop(mid)
        if "error" in ans:
            raise CdpError(f"{method}: {ans['error']}")
        return ans.get("result", {})

    def events(self, session=""):
        with self._cond:
            return list(self._events.get(session, []))

    def wait_event(self, method, session="", since=0, timeout=10.0, pred=None):
        """The first event `method` of `session` at index >= since (matching pred); waits,
        bounded. Returns (index, recv_time, message)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                evs = self._events.get(session, [])
                for i in range(since, len(evs)):
                    t, m = evs[i]
                    if m.get("method") == method and (pred is None or pred(m.get("params", {}))):
                        return i, t, m
                since = max(since, len(evs))
                left = deadline - time.monotonic()
                if self._eof:
                    raise CdpError(f"waiting for {method}: Chromium closed the pipe; log:\n{self.log_text()}")
                if left <= 0:
                    raise CdpError(f"no {method} within {timeout} s")
                self._cond.wait(min(left, 0.5))

    # ------------------------------------------------------------ pages

    def new_page(self, fresh_context=True, cache=True):
        """A tab, in a fresh browser context by default: its own cache, cookies and socket
        pools, so its first request opens a new TCP + TLS connection."""
        ctx = None
        if fresh_context:
            ctx = self.call("Target.createBrowserContext", {"disposeOnDetach": True})["browserContextId"]
        params = {"url": "about:blank"}
        if ctx:
            params["browserContextId"] = ctx
        target = self.call("Target.createTarget", params)["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, target, session, ctx)
        self.call("Network.enable", session=session)
        self.call("Page.enable", session=session)
        if not cache:
            self.call("Network.setCacheDisabled", {"cacheDisabled": True}, session=session)
        return page


class Page:
    def __init__(self, browser, target, session, context):
        self.browser, self.target, self.session, self.context = browser, target, session, context
        self.nav_started = None
        self.loaded = None

    def call(self, method, params=None, timeout=10.0):
        return self.browser.call(method, params, session=self.session, timeout=timeout)

    def navigate(self, url, timeout=20.0):
        """Navigate and wait (bounded) for the load event; returns seconds from the command
        to the load event as Chromium's own clock saw it."""
        since = len(self.browser.events(self.session))
        self.nav_started = time.monotonic()
        res = self.call("Page.navigate", {"url": url}, timeout=timeout)
        if res.get("errorText"):
            raise CdpError(f"navigation to {url} failed: {res['errorText']}")
        left = max(0.1, timeout - (time.monotonic() - self.nav_started))
        _, t, m = self.browser.wait_event("Page.loadEventFired", self.session, since, left)
        self.loaded = m["params"]["timestamp"]
        return t - self.nav_started

    def evaluate(self, expression, timeout=10.0):
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                        timeout=timeout)
        if "exceptionDetails" in res:
            raise CdpError(f"evaluate: {res['exceptionDetails']}")
        return res["result"].get("value")

    def navigation_timing(self):
        return self.evaluate("JSON.parse(JSON.stringify(performance.getEntriesByType('navigation')[0]))")

    def resource_timing(self):
        return self.evaluate("JSON.parse(JSON.stringify(performance.getEntriesByType('resource')))")

    def requests(self):
        """The Network.* events of this page, one dict per request id, in order of first
        sight: url, method, t_sent (requestWillBeSent), t_response (responseReceived),
        t_finished (loadingFinished), status, protocol, connection_id, connection_reused,
        initiator (type), early_hints (links of a Network.responseReceivedEarlyHints) and
        t_early_hints (when that event reached us), from_early_hints (served from an early-hint
        preload), failed (errorText). Times: seconds, CLOCK_MONOTONIC."""
        out = {}
        for t_recv, m in self.browser.events(self.session):
            method, p = m.get("method", ""), m.get("params", {})
            rid = p.get("requestId")
            if not method.startswith("Network.") or rid is None:
                continue
            r = out.setdefault(rid, {"id": rid})
            if method == "Network.requestWillBeSent":
                req = p.get("request", {})
                r.setdefault("url", req.get("url"))
                r.setdefault("method", req.get("method"))
                r.setdefault("t_sent", p.get("timestamp"))
                r.setdefault("initiator", p.get("initiator", {}).get("type"))
                r.setdefault("type", p.get("type"))
                if p.get("redirectResponse"):
                    r["redirected"] = True
            elif method == "Network.responseReceived":
                resp = p.get("response", {})
                r["url"] = r.get("url") or resp.get("url")
                r["t_response"] = p.get("timestamp")
                r["status"] = resp.get("status")
                r["protocol"] = resp.get("protocol")
                r["connection_id"] = resp.get("connectionId")
                r["connection_reused"] = resp.get("connectionReused")
                r["from_early_hints"] = resp.get("fromEarlyHints", False)
                r["from_cache"] = resp.get("fromDiskCache", False) or resp.get("fromPrefetchCache", False)
                r["timing"] = resp.get("timing")
            elif method == "Network.responseReceivedEarlyHints":
                links = [v for k, v in p.get("headers", {}).items() if k.lower() == "link"]
                r["early_hints"] = [x.strip() for v in links for x in v.split("\n") if x.strip()]
                r["t_early_hints"] = t_recv  # the event carries no timestamp: when it reached us
            elif method == "Network.loadingFinished":
                r["t_finished"] = p.get("timestamp")
            elif method == "Network.loadingFailed":
                r["failed"] = p.get("errorText")
        return list(out.values())

    def close(self):
        try:
            if self.context:
                self.browser.call("Target.disposeBrowserContext", {"browserContextId": self.context})
            else:
                self.browser.call("Target.closeTarget", {"targetId": self.target})
        except CdpError:
            pass


def cleanup_dirs(workdir, name="chromium"):
    """Remove the profiles a Chromium of this name left in workdir (close() removes its own;
    this is for one that was killed)."""
    for p in Path(workdir).glob(f"{name}-profile-*"):
        shutil.rmtree(p, ignore_errors=True)


# ------------------------------------------------------------ certificates


def _der_item(data, pos):
    """(tag, start of content, end of content) of the DER item at pos."""
    tag = data[pos]
    n = data[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(data[pos:pos + k], "big")
        pos += k
    return tag, pos, pos + n


def spki_sha256(cert_der):
    """base64(SHA-256(SubjectPublicKeyInfo)) of a DER certificate: what Chromium's
    --ignore-certificate-errors-spki-list takes."""
    import base64
    import hashlib
    _, c, _ = _der_item(cert_der, 0)          # Certificate
    _, t, _ = _der_item(cert_der, c)          # tbsCertificate
    pos = t
    tag, s, e = _der_item(cert_der, pos)
    if tag == 0xA0:                           # [0] version
        pos = e
    for _ in range(5):                        # serial, signature, issuer, validity, subject
        _, s, e = _der_item(cert_der, pos)
        pos = e
    _, s, e = _der_item(cert_der, pos)        # subjectPublicKeyInfo
    return base64.b64encode(hashlib.sha256(cert_der[pos:e]).digest()).decode()


def server_spki(host, port, netns=None, timeout=10.0):
    """The SPKI hash of the certificate a TLS server presents (in namespace netns: through a
    python3 run there). Chromium accepts a certificate whose SPKI is listed in
    --ignore-certificate-errors-spki-list as valid, so it caches its responses (it does not
    cache anything served with a certificate error, and early-hint preloads go through the
    HTTP cache)."""
    code = ("import ssl,socket,sys;c=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT);c.check_hostname=False;"
            "c.verify_mode=ssl.CERT_NONE;s=c.wrap_socket(socket.create_connection((sys.argv[1],int(sys.argv[2])),"
            f"timeout={timeout}));sys.stdout.write(s.getpeercert(True).hex());s.close()")
    cmd = ["/usr/bin/python3", "-c", code, host, str(port)]
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout + 5)
    if r.returncode != 0:
        raise RuntimeError(f"could not read the certificate of {host}:{port}: {r.stderr.strip()}")
    return spki_sha256(bytes.fromhex(r.stdout.strip()))
