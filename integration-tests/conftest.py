# SPDX-License-Identifier: MIT
"""Fixtures for lowat's integration tests: start the real binary on a generated config with
port 0, wait for its "listening on" lines (never a sleep), start Python origins, generate
certificates with the openssl CLI, and on teardown stop lowat with SIGTERM and fail the test
if it did not exit 0 or a sanitizer spoke.

Environment:
    LOWAT_BIN          the binary (default: <repo>/build/proxy/lowat)
    LOWAT_BIG_BYTES    size of the large-transfer tests (default 1 GiB)
    LOWAT_SANITIZED=1  a sanitizer build: start-up and stop get more time
    LOWAT_RSS_LIMIT_MB RSS growth allowed during large transfers (default 64)
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))

from backend import Backend  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
LOWAT_BIN = Path(os.environ.get("LOWAT_BIN", REPO / "build" / "proxy" / "lowat")).resolve()
SANITIZED = os.environ.get("LOWAT_SANITIZED", "") not in ("", "0")
SLOW = 3.0 if SANITIZED else 1.0
# lowat built with AddressSanitizer, whichever way the suite was started: its allocator keeps
# freed memory in a quarantine of its own, so what the process gives back cannot be measured.
ASAN_BUILD = SANITIZED or (LOWAT_BIN.is_file() and b"__asan_init" in LOWAT_BIN.read_bytes())
BIG_BYTES = int(os.environ.get("LOWAT_BIG_BYTES", str(1 << 30)))
RSS_LIMIT_KB = int(os.environ.get("LOWAT_RSS_LIMIT_MB", "64")) * 1024
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer")
LISTEN_RE = re.compile(r"listening on (\S+?):(\d+) \((tls|cleartext)\)")


# ---------------------------------------------------------------- YAML writing

_PLAIN = re.compile(r"[A-Za-z0-9_./@-][A-Za-z0-9_./:@ -]*")
_RESERVED = {"true", "false", "null", "~"}  # libyaml types nothing: only these need quotes for a reader


def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, Path):
        v = str(v)
    if isinstance(v, Backend):
        v = v.address
    if _PLAIN.fullmatch(v) and not v.endswith((":", " ")) and v.lower() not in _RESERVED and ": " not in v:
        return v
    return json.dumps(v)


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts, lists and scalars (enough for lowat's config)."""
    sp = "  " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{sp}{k}:")
                lines.append(to_yaml(v, indent + 1))
            elif isinstance(v, (dict, list)):
                lines.append(f"{sp}{k}: {'{}' if isinstance(v, dict) else '[]'}")
            else:
                lines.append(f"{sp}{k}: {_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, (dict, list)) and item:
                sub = to_yaml(item, indent + 1).split("\n")
                lines.append(f"{sp}- {sub[0].lstrip()}")
                lines.extend(sub[1:])
            else:
                lines.append(f"{sp}- {_scalar(item)}")
    else:
        lines.append(sp + _scalar(obj))
    return "\n".join(lines)


def make_config(tmp, members=None, *, workers=2, tls=True, clear=True, backend_opts=None, limits=None,
                backends=None, routes=None, access=None, listeners=None, log_level="info", drain_timeout="5s"):
    """A config dict: one TLS and one cleartext listener on port 0 and one backend "app".
    drain_timeout is 5s (not the default 10s) so a test that leaves an exchange hanging
    still stops well within the 15 s that teardown allows."""
    cfg = {"workers": workers, "log": {"level": log_level, "access": access or str(Path(tmp) / "access.log")}}
    if drain_timeout is not None:
        cfg["drain_timeout"] = drain_timeout
    if limits:
        cfg["limits"] = dict(limits)
    if listeners is None:
        listeners = []
        if tls:
            listeners.append({"address": "127.0.0.1:0", "tls": True})
        if clear:
            listeners.append({"address": "127.0.0.1:0"})
    cfg["listeners"] = listeners
    if backends is None:
        if isinstance(members, (Backend, str, dict)):
            members = [members]
        backends = [{"name": "app", "members": [m.address if isinstance(m, Backend) else m for m in members],
                     **(backend_opts or {})}]
    cfg["backends"] = backends
    if routes:
        cfg["routes"] = routes
    return cfg


# ---------------------------------------------------------------- the lowat process

def parse_access_line(line):
    """'TS k=v k="quoted" ...' -> dict with 'ts' and every key."""
    ts, _, rest = line.partition(" ")
    out = {"ts": ts}
    for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', rest):
        v = m.group(2)
        if v.startswith('"'):
            v = json.loads(v) if v.endswith('"') else v
        out[m.group(1)] = v
    return out


def lowat_env():
    """lowat's environment: ours, with ASan's quarantine capped (unless set already). Its
    default 256 MiB of freed-but-held memory would swamp the RSS bounds of the large-transfer
    tests; 16 MiB still catches use-after-free of anything freed recently."""
    env = dict(os.environ)
    asan = env.get("ASAN_OPTIONS", "")
    if "quarantine_size" not in asan:
        env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=16"
    return env


class Lowat:
    def __init__(self, config_path, workdir, *, config=None, listeners=None, access_path=None, args=(),
                 cwd=None, env=None):
        self.config_path = Path(config_path)
        self.workdir = Path(workdir)
        self.config = config
        self.expect = listeners  # ["tls", "cleartext", ...]
        self.access_path = Path(access_path) if access_path else None
        self.args = list(args)
        self.cwd = cwd
        self.env = env
        self.lines = []
        self.cond = threading.Condition()
        self.eof = False
        self.proc = None
        self.returncode = None
        self.killed = False
        self.checked = False  # exit code and stderr looked at (once)
        self.listening = []  # (host, port, kind) in order of first appearance
        self.stdout_path = self.workdir / "lowat.stdout"

    # -- start / stop

    def start(self, timeout=10.0):
        self.stdout_f = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen([str(LOWAT_BIN), "-c", str(self.config_path), *self.args],
                                     stdout=self.stdout_f, stderr=subprocess.PIPE, cwd=self.cwd,
                                     env=self.env or lowat_env())
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        want = len(self.expect)
        ok = self.wait_stderr(lambda: len(self.listening) >= want or self.proc.poll() is not None,
                              timeout * SLOW)
        if len(self.listening) < want:
            rc = self.proc.poll()
            self.stop(check=False)
            raise AssertionError(f"lowat did not report {want} listeners within {timeout * SLOW}s "
                                 f"(exit {rc}, wait ok={bool(ok)}); stderr:\n{self.stderr_text()}")
        return self

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with self.cond:
                self.lines.append(line)
                m = LISTEN_RE.search(line)
                if m:
                    key = (m.group(1), int(m.group(2)), m.group(3))
                    if key not in self.listening:
                        self.listening.append(key)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_stderr(self, predicate, timeout=5.0):
        """Wait (bounded) until predicate() holds; predicate runs with the line lock held."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    return predicate()
                self.cond.wait(min(left, 0.5))
            return True

    def wait_log(self, pattern, timeout=5.0):
        """Wait until a stderr line matches the regex; returns the line or None."""
        rx = re.compile(pattern)
        found = []

        def pred():
            for line in self.lines:
                if rx.search(line):
                    found.append(line)
                    return True
            return False
        self.wait_stderr(pred, timeout)
        return found[0] if found else None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=15.0, check=True):
        """Signal lowat, wait (bounded) for it to exit, SIGKILL if it does not. Returns exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait(10)
        self.returncode = self.proc.returncode
        self._reader.join(10)
        self.stdout_f.close()
        if check:
            self.check_clean()
        return self.returncode

    def wait_exit(self, timeout):
        """Wait (bounded) for lowat to exit by itself; returns the exit code or None."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def check_clean(self):
        text = self.stderr_text()
        for marker in SANITIZER_MARKERS:
            assert marker not in text, f"lowat's stderr contains {marker!r}:\n{text[-20000:]}"
        assert not self.killed, f"lowat did not exit within {15 * SLOW}s of SIGTERM; stderr:\n{text[-5000:]}"
        assert self.returncode == 0, f"lowat exited with {self.returncode}; stderr:\n{text[-5000:]}"

    # -- what tests look at

    def ports(self, kind):
        return [p for _, p, k in self.listening if k == kind]

    @property
    def tls_port(self):
        return self.ports("tls")[0]

    @property
    def clear_port(self):
        return self.ports("cleartext")[0]

    def url(self, path="/", tls=True):
        return f"https://127.0.0.1:{self.tls_port}{path}" if tls else f"http://127.0.0.1:{self.clear_port}{path}"

    def stderr_text(self):
        with self.cond:
            return "\n".join(self.lines)

    def stdout_text(self):
        return self.stdout_path.read_text(errors="replace")

    def access_log_lines(self):
        if self.access_path is None or not self.access_path.exists():
            return []
        return [line for line in self.access_path.read_text(errors="replace").splitlines() if line.strip()]

    def wait_access_lines(self, n, timeout=2.0):
        """Poll the access log (it is written by lowat, we cannot be notified) up to timeout."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            lines = self.access_log_lines()
            if len(lines) >= n or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)

    def rss_kb(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


class RssSampler:
    """Samples a process's VmRSS every 50 ms in a thread while the with-block runs."""

    def __init__(self, lw):
        self.lw = lw
        self.baseline = lw.rss_kb()
        self.max = self.baseline
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.05):
            try:
                self.max = max(self.max, self.lw.rss_kb())
            except OSError:
                return

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(5)

    @property
    def growth_kb(self):
        return self.max - self.baseline


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def lowat_bin():
    if not LOWAT_BIN.exists():
        pytest.fail(f"lowat binary not found at {LOWAT_BIN} (build it: ninja -C build, or set LOWAT_BIN)")
    return LOWAT_BIN


@pytest.fixture
def backend(request):
    """Factory: backend(name="app", **kw) starts an origin on 127.0.0.1:0; all are stopped after."""
    started = []
    request.node._lw_backends = started

    def start(name="app", **kw):
        b = Backend(name=name, **kw)
        started.append(b)
        return b
    yield start
    for b in started:
        b.stop()


def _listener_kinds(cfg):
    kinds = []
    for listener in cfg.get("listeners", []):
        tls = listener.get("tls")
        kinds.append("tls" if tls else "cleartext")
    return kinds


@pytest.fixture
def raw_origin():
    """Factory: raw_origin(answer) starts an origin on 127.0.0.1 that reads request heads on
    each connection it accepts and calls answer(conn, index, head) for each (index counts the
    connections from 1; head is the bytes before the blank line, and a body is left unread);
    answer returns False to close the connection. Returns (address, a callable giving the
    connections accepted so far). All are stopped after the test."""
    stop = threading.Event()
    socks, threads = [], []

    def serve(c, idx, answer):
        c.settimeout(5)
        buf = b""
        try:
            while not stop.is_set():
                while b"\r\n\r\n" not in buf:
                    d = c.recv(4096)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                if answer(c, idx, head) is False:
                    return
        except OSError:
            pass
        finally:
            c.close()

    def start(answer):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        srv.settimeout(0.2)
        socks.append(srv)
        accepted = [0]

        def accept_loop():
            while not stop.is_set():
                try:
                    c, _ = srv.accept()
                except socket.timeout:
                    continue
                except OSError:
                    return
                accepted[0] += 1
                t = threading.Thread(target=serve, args=(c, accepted[0], answer), daemon=True)
                t.start()
                threads.append(t)
        t = threading.Thread(target=accept_loop, daemon=True)
        t.start()
        threads.append(t)
        return f"127.0.0.1:{srv.getsockname()[1]}", lambda: accepted[0]
    yield start
    stop.set()
    for s in socks:
        s.close()
    for t in threads:
        t.join(6)


@pytest.fixture
def lowat(lowat_bin, tmp_path, request):
    """Factory: lowat(members, **make_config kwargs) or lowat(config=dict) starts a ready lowat.

    When the test body returns, every instance gets SIGTERM (after the origins are stopped, so
    nothing holds the drain); the test fails if one does not exit 0 within 15 s or its stderr
    shows a sanitizer report (see pytest_runtest_call below).
    """
    started = []
    request.node._lw_instances = started
    counter = [0]

    def start(members=None, *, config=None, expect_listeners=None, start_timeout=10.0, cwd=None, config_dir=None,
              **kw):
        counter[0] += 1
        workdir = tmp_path / f"lowat{counter[0]}"
        workdir.mkdir()
        conf_dir = Path(config_dir) if config_dir else workdir
        if config is None:
            config = make_config(workdir, members, **kw)
        if isinstance(config, dict):
            text = to_yaml(config) + "\n"
            kinds = expect_listeners or _listener_kinds(config)
            access = config.get("log", {}).get("access")
        else:
            text = config
            kinds = expect_listeners or []
            access = None
        path = conf_dir / "lowat.yaml"
        path.write_text(text)
        lw = Lowat(path, workdir, config=config, listeners=kinds,
                   access_path=access if access not in (None, "stdout", "stderr", "off") else None, cwd=cwd)
        started.append(lw)
        try:
            return lw.start(start_timeout)
        except AssertionError:
            started.remove(lw)  # already stopped; the message carries its stderr
            raise

    yield start
    errors = _stop_all(request.node)  # normally done already, right after the test body
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


def _stop_all(item):
    """Stop the test's origins, then its lowats; return what went wrong (sanitizer reports,
    exit codes, bytes from lowat an origin could not parse)."""
    errors = []
    for b in getattr(item, "_lw_backends", []):
        b.stop()
        if b.parse_errors:
            errors.append(f"origin {b.name} could not parse what lowat sent: {b.parse_errors}")
            b.parse_errors = []
    for lw in getattr(item, "_lw_instances", []):
        if lw.checked:
            continue
        lw.checked = True
        try:
            lw.stop(check=False)
            lw.check_clean()
        except AssertionError as e:
            errors.append(str(e))
    return errors


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Shut lowat down as part of the test itself, so that a sanitizer report or a bad exit
    code fails the test (a fixture teardown could only mark it as an error)."""
    outcome = yield
    errors = _stop_all(item)
    if errors:
        if outcome.excinfo is None:
            pytest.fail("\n\n".join(errors), pytrace=False)
        sys.stderr.write("\n\n".join(errors) + "\n")  # shown with the test's own failure


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """A CA and ECDSA P-256 leaves signed by it: a (a.test, www.a.test), b (b.test), localhost.
    Returns a dict of paths: ca, a_cert, a_key, b_cert, b_key, lh_cert, lh_key, dir."""
    d = tmp_path_factory.mktemp("certs")

    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=30)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "3", "-subj", "/CN=lowat test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    out = {"dir": d, "ca": d / "ca.pem"}
    for tag, names in (("a", ["a.test", "www.a.test"]), ("b", ["b.test"]), ("lh", ["localhost"])):
        (d / f"{tag}.ext").write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
            "subjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\n")
        run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{tag}.key", "-out", f"{tag}.csr", "-subj", f"/CN={names[0]}")
        run("x509", "-req", "-in", f"{tag}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{tag}.pem", "-days", "3", "-extfile", f"{tag}.ext")
        out[f"{tag}_cert"] = d / f"{tag}.pem"
        out[f"{tag}_key"] = d / f"{tag}.key"
    return out


@pytest.fixture
def copy_certs(certs, tmp_path):
    """Copy the certificates into a directory of their own (for relative paths in a config)."""
    def copy(dest):
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("a.pem", "a.key", "b.pem", "b.key", "lh.pem", "lh.key", "ca.pem"):
            shutil.copy(certs["dir"] / name, dest / name)
        return dest
    return copy
