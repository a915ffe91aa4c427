# SPDX-License-Identifier: MIT
"""Smoke test of tools/linkem, the link emulator the responsiveness measurements run across.

linkem joins two network namespaces it creates through TUN devices with a 20 ms one-way delay.
The test checks that ping sees the round trip it was given, then runs lowat and the demo app
inside the server namespace and fetches /healthz from the client namespace with curl: the
answer must arrive, and no sooner than two round trips (TCP handshake, then the request).
It needs root and `ip netns`; without them it is skipped.

Environment:
    LOWAT_LINKEM    the emulator (default: <repo>/build/tools/lowat-linkem, or
                    <repo>/build/tools/linkem/lowat-linkem when only that one exists)
    LOWAT_DEMO_APP  the demo app (default: <repo>/build/tools/lowat-demo-app)
"""

import collections
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from backend import pattern_sha256
from conftest import LISTEN_RE, REPO, SANITIZER_MARKERS, SLOW, lowat_env, make_config, to_yaml

NS_A = f"lw90-{os.getpid()}-a"  # the client side
NS_B = f"lw90-{os.getpid()}-b"  # the server side
ADDR_A = "198.18.0.1"  # RFC 2544 benchmarking range: never routed anywhere real
ADDR_B = "198.18.0.2"
SUBNET = "198.18.0.0/30"
DEV = "tun0"  # the device lowat-linkem creates in each namespace
DELAY_MS = 20
RTT_S = 2 * DELAY_MS / 1000
# linkem stops by itself after this even if the test dies before stopping it, and deletes the
# namespaces it created.
LINKEM_DURATION_S = 60


def _default_linkem():
    if os.environ.get("LOWAT_LINKEM"):
        return Path(os.environ["LOWAT_LINKEM"]).resolve()
    for rel in ("build/tools/lowat-linkem", "build/tools/linkem/lowat-linkem"):
        if (REPO / rel).exists():
            return REPO / rel
    return REPO / "build/tools/lowat-linkem"


LINKEM_BIN = _default_linkem()
DEMO_APP_BIN = Path(os.environ.get("LOWAT_DEMO_APP", REPO / "build" / "tools" / "lowat-demo-app")).resolve()


def _why_not_runnable():
    """A reason to skip, or None."""
    if os.geteuid() != 0:
        return "needs root: linkem creates network namespaces and TUN devices"
    if shutil.which("ip") is None:
        return "needs iproute2's ip for network namespaces"
    try:
        p = subprocess.run(["ip", "netns", "list"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"`ip netns list` did not run: {e}"
    if p.returncode != 0:
        return f"`ip netns` unavailable: {p.stderr.decode(errors='replace').strip()}"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    for tool in ("ping", "curl"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


def _namespaces():
    p = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10)
    return {line.split()[0] for line in p.stdout.decode(errors="replace").splitlines() if line.strip()}


class Proc:
    """A process whose output lines (stdout and stderr merged) are collected by a thread, so a
    test can wait, bounded, for a line; stopped by pid with SIGTERM, then SIGKILL."""

    def __init__(self, argv, env=None):
        self.argv = [str(a) for a in argv]
        self.lines = []
        self.cond = threading.Condition()
        self.eof = False
        self.killed = False
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.decode("utf-8", errors="replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_line(self, pattern, timeout):
        """The first match of the regex in an output line, or None after timeout or exit."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    return None
                self.cond.wait(min(left, 0.5))

    def stop(self, timeout):
        """SIGTERM, wait up to timeout, SIGKILL if still there; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(10)
        return self.proc.returncode

    def text(self):
        with self.cond:
            return "\n".join(self.lines)


def _in_ns(ns, *argv):
    return ["ip", "netns", "exec", ns, *[str(a) for a in argv]]


def _ping_rtt_ms(ns, addr, count):
    p = subprocess.run(_in_ns(ns, "ping", "-n", "-c", count, "-i", "0.2", "-W", "2", addr),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
    out = p.stdout.decode(errors="replace")
    m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/", out)
    assert p.returncode == 0 and m, f"ping across linkem failed:\n{out}"
    return float(m.group(1)), float(m.group(2)), float(m.group(3))


def _stop_and_clean(procs, namespaces):
    """Stop the processes a test started (None for those it did not get to), then delete the
    namespaces linkem left behind: they are ours, their names carry our pid."""
    for proc in procs:
        if proc is not None:
            proc.stop(10 * SLOW)
    for ns in set(namespaces) & _namespaces():
        subprocess.run(["ip", "netns", "del", ns], timeout=10)


def _start_linkem(ns_a, ns_b, delay_ms, rate_mbit, *extra):
    linkem = Proc([LINKEM_BIN, "--ns-a", ns_a, "--ns-b", ns_b, "--addr-a", f"{ADDR_A}/30",
                   "--addr-b", f"{ADDR_B}/30", "--delay-ms", delay_ms, "--rate-mbit", rate_mbit,
                   "--duration-s", LINKEM_DURATION_S, "--create", *extra])
    assert linkem.wait_line(r"^linkem ready: ", 10), f"linkem did not get ready:\n{linkem.text()}"
    return linkem


def _serve_through_lowat(lowat_bin, tmp_path, ns_b, size, procs):
    """Serve `size` random bytes as /big.bin from an origin in ns_b, with lowat (debug log) in
    front of it in cleartext. Returns lowat's Proc and port; appends every process it starts to
    procs, for the caller to stop."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "big.bin").write_bytes(os.urandom(size))
    origin = Proc(_in_ns(ns_b, "/usr/bin/python3", "-u", "-m", "http.server", "--bind", ADDR_B, "--directory", www, 0))
    procs.append(origin)
    m = origin.wait_line(r"port (\d+)", 10 * SLOW)
    assert m, f"the origin did not start:\n{origin.text()}"
    lw, m = _start_lowat(lowat_bin, tmp_path, ns_b, f"{ADDR_B}:{m.group(1)}", log_level="debug")
    procs.append(lw)
    return lw, m.group(2)


def _download_through_lowat(lowat_bin, tmp_path, ns_a, ns_b, size, procs):
    """Download /big.bin of _serve_through_lowat with curl from ns_a. Returns lowat's Proc and
    the body's rate in Mbit/s (first byte to last)."""
    lw, port = _serve_through_lowat(lowat_bin, tmp_path, ns_b, size, procs)
    p = subprocess.run(_in_ns(ns_a, "curl", "-sS", "--max-time", "30", "-o", "/dev/null",
                              "-w", "%{http_code} %{size_download} %{time_starttransfer} %{time_total}",
                              f"http://{ADDR_B}:{port}/big.bin"),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=40)
    out = p.stdout.decode().split()
    assert p.returncode == 0 and out[:2] == ["200", str(size)], (p.stdout, p.stderr)
    return lw, size * 8 / 1e6 / max(float(out[3]) - float(out[2]), 1e-6)


def _set_cc(ns, cc):
    """The congestion control of the sockets in ns (the sysctl is not writable in a namespace)."""
    subprocess.run(["ip", "-n", ns, "route", "replace", SUBNET, "dev", DEV, "proto", "kernel", "scope", "link",
                    "src", ADDR_B, "congctl", cc], check=True, timeout=10)


def _start_test_backend(ns):
    """The suite's Python backend (backend.py) in ns on ADDR_B; returns (proc, port)."""
    serve = ("import sys, threading; sys.path.insert(0, sys.argv[1]); from backend import Backend; "
             "b = Backend(host=sys.argv[2]); print('port', b.port, flush=True); threading.Event().wait()")
    origin = Proc(_in_ns(ns, "/usr/bin/python3", "-u", "-c", serve, REPO / "integration-tests", ADDR_B))
    m = origin.wait_line(r"^port (\d+)", 10 * SLOW)
    if not m:
        origin.stop(10 * SLOW)
        pytest.fail(f"the origin did not start:\n{origin.text()}")
    return origin, m.group(1)


def _start_lowat(lowat_bin, tmp_path, ns, origin, **cfg_opts):
    """lowat in ns, one worker, in front of origin (host:port); returns (proc, listen match)."""
    tls = cfg_opts.pop("tls", False)
    listener = {"address": f"{ADDR_B}:0", "tls": True} if tls else {"address": f"{ADDR_B}:0"}
    cfg = make_config(tmp_path, origin, workers=1, listeners=[listener], **cfg_opts)
    (tmp_path / "lowat.yaml").write_text(to_yaml(cfg) + "\n")
    lw = Proc(_in_ns(ns, lowat_bin, "-c", tmp_path / "lowat.yaml"), env=lowat_env())
    m = lw.wait_line(LISTEN_RE.pattern, 10 * SLOW)
    assert m, f"lowat did not start in {ns}:\n{lw.text()}"
    return lw, m


_WHY_NOT = _why_not_runnable()
pytestmark = pytest.mark.skipif(_WHY_NOT is not None, reason=_WHY_NOT or "")


def test_linkem_rtt_and_h1_exchange(lowat_bin, tmp_path):
    for path, what in ((LINKEM_BIN, "linkem (ninja -C build, or set LOWAT_LINKEM)"),
                       (DEMO_APP_BIN, "the demo app (ninja -C build, or set LOWAT_DEMO_APP)")):
        if not path.exists():
            pytest.fail(f"{what} not found at {path}")
    assert not {NS_A, NS_B} & _namespaces(), f"namespaces {NS_A}/{NS_B} exist already"

    linkem = app = lw = None
    results = {}
    try:
        linkem = _start_linkem(NS_A, NS_B, DELAY_MS, 100)

        rtt_min, rtt_avg, rtt_max = _ping_rtt_ms(NS_A, ADDR_B, 3)
        assert abs(rtt_avg - 2 * DELAY_MS) <= 5, f"ping RTT {rtt_min}/{rtt_avg}/{rtt_max} ms, want {2 * DELAY_MS} +-5"

        app = Proc(_in_ns(NS_B, DEMO_APP_BIN, "--listen", f"{ADDR_B}:0", "--quiet"))
        m = app.wait_line(r"listening on [\d.]+:(\d+)", 10 * SLOW)
        assert m, f"the demo app did not start in {NS_B}:\n{app.text()}"
        app_port = int(m.group(1))

        lw, m = _start_lowat(lowat_bin, tmp_path, NS_B, f"{ADDR_B}:{app_port}")
        assert m.group(3) == "cleartext", m.group(0)
        port = int(m.group(2))

        p = subprocess.run(_in_ns(NS_A, "curl", "-sS", "--max-time", "10", "-o", "-",
                                  "-w", r"\n%{http_code} %{time_connect} %{time_total}",
                                  f"http://{ADDR_B}:{port}/healthz"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        out = p.stdout.decode(errors="replace")
        body, _, tail = out.rpartition("\n")
        assert p.returncode == 0, f"curl failed ({p.returncode}): {p.stderr.decode(errors='replace')}"
        status, t_connect, t_total = tail.split()
        assert (status, body) == ("200", "ok"), f"got {status} {body!r}"
        # A SYN/SYN-ACK round trip, then the request and its answer: two RTTs at least, as
        # linkem never delivers early. Far more would mean a retransmission or a stall.
        assert float(t_connect) >= RTT_S * 0.98, f"connect took {t_connect}s, under one RTT"
        assert float(t_total) >= 2 * RTT_S * 0.98, f"exchange took {t_total}s, under two RTTs"
        assert float(t_total) < 2 * RTT_S + 1.0 * SLOW, f"exchange took {t_total}s"
    finally:
        if lw is not None:
            results["lowat"] = lw.stop(15 * SLOW)
        if app is not None:
            results["app"] = app.stop(10 * SLOW)
        if linkem is not None:
            results["linkem"] = linkem.stop(10)
        leftover = {NS_A, NS_B} & _namespaces()
        for ns in leftover:  # only if linkem failed to: they are ours (the names carry our pid)
            subprocess.run(["ip", "netns", "del", ns], timeout=10)

    assert not leftover, f"linkem left namespaces behind: {leftover}\n{linkem.text()}"
    text = lw.text()
    for marker in SANITIZER_MARKERS:
        assert marker not in text, f"lowat's output contains {marker!r}:\n{text[-20000:]}"
    assert results["lowat"] == 0 and not lw.killed, f"lowat exited with {results['lowat']}:\n{text[-5000:]}"
    assert results["linkem"] == 0, f"linkem exited with {results['linkem']}:\n{linkem.text()}"
    stats = linkem.text()
    assert re.search(rf"linkem stats {NS_A} -> {NS_B}: delivered [1-9]", stats), stats
    assert re.search(rf"linkem stats {NS_B} -> {NS_A}: delivered [1-9]", stats), stats


def test_linkem_delivers_what_a_sends_in_batches():
    """--batch-ms-a releases what the A side sends only at multiples of its period, as Wi-Fi
    aggregation or a cellular scheduler bunch a client's ACKs: a ping's request waits up to a
    period for its batch (half of one on average), its reply comes back as sent."""
    ns_a, ns_b = f"lw95-{os.getpid()}-a", f"lw95-{os.getpid()}-b"
    assert not {ns_a, ns_b} & _namespaces(), f"namespaces {ns_a}/{ns_b} exist already"
    linkem = None
    try:
        linkem = _start_linkem(ns_a, ns_b, 5, 100, "--batch-ms-a", 10)
        assert "batches from" in linkem.text(), linkem.text()
        lo, avg, hi = _ping_rtt_ms(ns_a, ADDR_B, 12)
        # Up to 5 ms more for linkem's timers and the ping's own scheduling (in the benchmarks'
        # runs a hundred or so of ~90,000 packets left over 0.1 ms late, the worst 3.5-12 ms):
        # still short of the 30 ms of a request that waited two batches.
        assert lo >= 9.8 and hi <= 25, f"RTTs {lo}/{avg}/{hi} ms: want 10 ms plus 0-10 ms of batch"
        assert avg >= 12, f"RTTs {lo}/{avg}/{hi} ms: the requests did not wait for their batch"
    finally:
        _stop_and_clean((linkem,), (ns_a, ns_b))


def test_linkem_queue_limit_engages_at_the_link_rate(lowat_bin, tmp_path):
    """Across a 100 ms, 20 Mbit/s link, a 2 MB download through lowat overshoots the link in slow
    start; lowat sees the queue and holds what is in flight to the rate it measured, which must
    be near the link's: 20 Mbit/s of 1500-byte packets carry 19.31 Mbit/s of TCP payload."""
    ns_a, ns_b = f"lw91-{os.getpid()}-a", f"lw91-{os.getpid()}-b"
    assert not {ns_a, ns_b} & _namespaces(), f"namespaces {ns_a}/{ns_b} exist already"
    procs = []
    try:
        procs.append(_start_linkem(ns_a, ns_b, 50, 20))
        lw, _ = _download_through_lowat(lowat_bin, tmp_path, ns_a, ns_b, 2_000_000, procs)
        held = lw.wait_line(r"(?:queue in the path|the path is full at the first flight's rate) .*held near "
                            r"([\d.]+) Mbit/s", 5)
        assert held, f"the limit never engaged:\n{lw.text()[-5000:]}"
        # The fastest delivery rate over eighth-RTT windows: within 6 % of the link in most
        # runs, but a window that catches a burst of ACKs reads high (up to 1.44x, 2 runs in 45
        # over 1.2x). High only loosens the limit for that connection; low would cost
        # throughput, so the lower bound is the tight one.
        assert 0.95 * 19.31 <= float(held.group(1)) <= 1.5 * 19.31, held.group(0)
    finally:
        _stop_and_clean(procs[::-1], (ns_a, ns_b))


def test_linkem_bbr_first_flight_tells_the_path_rate(lowat_bin, tmp_path):
    """BBR's startup overshoots the path by a round trip of excess before its ACKs show the path
    full. Its first ten segments go out unpaced, back to back, and their ACKs come spaced by the
    link's rate: lowat reads that spacing from the kernel's ACK timestamps, and holds what is in
    flight to the path once it is full, before the RTT shows a queue. Across a 100 ms, 20 Mbit/s
    link (19.31 Mbit/s of TCP payload), a 2 MB download."""
    ns_a, ns_b = f"lw92-{os.getpid()}-a", f"lw92-{os.getpid()}-b"
    assert not {ns_a, ns_b} & _namespaces(), f"namespaces {ns_a}/{ns_b} exist already"
    procs = []
    try:
        procs.append(_start_linkem(ns_a, ns_b, 50, 20))
        _set_cc(ns_b, "bbr")
        lw, _ = _download_through_lowat(lowat_bin, tmp_path, ns_a, ns_b, 2_000_000, procs)
        burst = lw.wait_line(r"the first flight's (\d+) ACK timestamp\(s\) of (\d+) send\(s\): the path takes "
                             r"([\d.]+) Mbit/s", 5)
        assert burst, f"no rate from the first flight:\n{lw.text()[-5000:]}"
        # Measured 19.26-19.58: the median of the rates between ACKs.
        assert 0.95 * 19.31 <= float(burst.group(3)) <= 1.1 * 19.31, burst.group(0)
        held = lw.wait_line(r"the path is full at the first flight's rate \(rtt ([\d.]+)ms, min ([\d.]+)ms\)", 5)
        assert held, f"the limit did not engage on the first flight's rate:\n{lw.text()[-5000:]}"
        # Before the queue shows: the RTT-driven rule waits for an eighth of the minimum RTT.
        assert float(held.group(1)) < float(held.group(2)) * 1.06, held.group(0)
        assert "no longer held" not in lw.text(), lw.text()[-5000:]
    finally:
        _stop_and_clean(procs[::-1], (ns_a, ns_b))


def test_linkem_queue_limit_holds_through_a_long_download(lowat_bin, tmp_path):
    """The same link with cubic, and a 6 MB download that outlasts slow start. Slow start's own
    bursts engage the limit before the path is full, and while the window still grows the path
    delivers under the rate; the limit must not take that for another flow's queue and turn
    itself off, or cubic fills the link's queue for the rest of the transfer. Once it has held
    through a judged period, it holds to the kernel's delivery rate samples: the link's 19.31
    Mbit/s of payload, not the fastest eighth-RTT window (a few percent high, and every percent
    of it is a millisecond of queue that a late request waits behind)."""
    ns_a, ns_b = f"lw96-{os.getpid()}-a", f"lw96-{os.getpid()}-b"
    assert not {ns_a, ns_b} & _namespaces(), f"namespaces {ns_a}/{ns_b} exist already"
    procs = []
    try:
        procs.append(_start_linkem(ns_a, ns_b, 50, 20))
        # lowat's sockets are in ns_b: their congestion control is the route's.
        _set_cc(ns_b, "cubic")
        lw, _ = _download_through_lowat(lowat_bin, tmp_path, ns_a, ns_b, 6_000_000, procs)
        assert lw.wait_line(r"queue in the path", 5), f"the limit never engaged:\n{lw.text()[-5000:]}"
        assert "no longer held" not in lw.text(), lw.text()[-5000:]
        assert "first flight" not in lw.text(), "cubic does not pace: its first flight is not timed"
        held = lw.wait_line(r"held through a period, .*: in flight held near ([\d.]+) Mbit/s", 5)
        assert held, f"the limit never held through a period:\n{lw.text()[-5000:]}"
        # The samples read 19.31-19.36 on this link; the fastest window 19.79-20.56.
        assert 0.97 * 19.31 <= float(held.group(1)) <= 1.01 * 19.31, held.group(0)
    finally:
        _stop_and_clean(procs[::-1], (ns_a, ns_b))


_KEEPALIVE_CLIENT = """
import http.client, json, sys, time
host, port, path, n, pause = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
conn = http.client.HTTPConnection(host, port, timeout=20)
got = []
for i in range(n):
    if i:
        time.sleep(pause)
    conn.request("GET", path)
    r = conn.getresponse()
    got.append([r.status, len(r.read())])
print(json.dumps(got))
"""


@pytest.mark.parametrize("pause_s", [0.15, 0.6])
def test_linkem_queue_limit_survives_idle_spells(lowat_bin, tmp_path, pause_s):
    """Responses of 500 KB on one keep-alive connection across a 40 ms, 20 Mbit/s link, 150 ms
    or 600 ms apart: the first one's slow start engages the limit. Each later response starts
    from an empty path (after 600 ms, longer than TCP's retransmission timeout, with its window
    restarted at 10 segments), so its first round trips deliver under the rate without any
    queue but this connection's. Judged as short, two such periods in a row turned the limit
    off for good, and the connection filled the link's queue from then on."""
    ns_a, ns_b = f"lw98-{os.getpid()}-a", f"lw98-{os.getpid()}-b"
    assert not {ns_a, ns_b} & _namespaces(), f"namespaces {ns_a}/{ns_b} exist already"
    procs = []
    size, count = 500_000, 8
    try:
        procs.append(_start_linkem(ns_a, ns_b, DELAY_MS, 20))
        _set_cc(ns_b, "cubic")
        lw, port = _serve_through_lowat(lowat_bin, tmp_path, ns_b, size, procs)
        p = subprocess.run(_in_ns(ns_a, "/usr/bin/python3", "-c", _KEEPALIVE_CLIENT, ADDR_B, port, "/big.bin",
                                  count, pause_s),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert p.returncode == 0, p.stderr.decode(errors="replace")
        assert json.loads(p.stdout) == [[200, size]] * count
        assert lw.wait_line(r"queue in the path", 5), f"the limit never engaged:\n{lw.text()[-5000:]}"
        # Before periods that began with an empty path or a restarted window went unjudged, "no
        # longer held" came within the eight responses (with either pause).
        assert "no longer held" not in lw.text(), lw.text()[-5000:]
        assert len(re.findall(r": accepted", lw.text())) == 1, "the client's connection was not kept alive"
    finally:
        _stop_and_clean(procs[::-1], (ns_a, ns_b))


def _wakeups(pid):
    """Voluntary context switches of all of a process's threads: one per wait it ends."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        m = re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status.read_text(), re.M)
        total += int(m.group(1)) if m else 0
    return total


def test_linkem_queue_limit_sleeps_while_the_client_is_gone(lowat_bin, tmp_path):
    """A download across a 40 ms, 20 Mbit/s link with the limit engaged, then the client's side
    of the link goes down: nothing is acknowledged any more, TCP retransmits on its backed-off
    timer. Held back by the limit with nothing unsent, lowat's writer waits on a timer, and
    polled every few milliseconds until TCP gave up (about 15 minutes); with TCP in loss
    recovery the limit steps aside, the writer leaves one segment with TCP and sleeps until the
    socket says writable."""
    ns_a, ns_b = f"lw99-{os.getpid()}-a", f"lw99-{os.getpid()}-b"
    assert not {ns_a, ns_b} & _namespaces(), f"namespaces {ns_a}/{ns_b} exist already"
    procs = []
    curl = None
    try:
        procs.append(_start_linkem(ns_a, ns_b, DELAY_MS, 20))
        _set_cc(ns_b, "cubic")
        lw, port = _serve_through_lowat(lowat_bin, tmp_path, ns_b, 20_000_000, procs)
        curl = subprocess.Popen(_in_ns(ns_a, "curl", "-sS", "--max-time", "20", "-o", "/dev/null",
                                       f"http://{ADDR_B}:{port}/big.bin"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert lw.wait_line(r"queue in the path", 5), f"the limit never engaged:\n{lw.text()[-5000:]}"
        time.sleep(0.3)
        subprocess.run(["ip", "-n", ns_a, "link", "set", DEV, "down"], check=True, timeout=10)
        time.sleep(1.5)  # the first retransmission timeouts (200 ms, 400 ms, 800 ms)
        before = _wakeups(lw.proc.pid)
        time.sleep(2)
        woke = _wakeups(lw.proc.pid) - before
        # Polling on its timer (a quarter of the minimum RTT), it woke 486-643 times; now once.
        assert woke < 40, f"lowat woke {woke} times in 2 s with nothing acknowledged"
    finally:
        if curl is not None:
            curl.kill()
            curl.wait(10)
        _stop_and_clean(procs[::-1], (ns_a, ns_b))


def test_linkem_queue_limit_keeps_a_short_batched_path_busy(lowat_bin, tmp_path):
    """A 20 ms, 10 Mbit/s link whose client side sends only every 8 ms, as Wi-Fi aggregation
    bunches a client's ACKs: nothing is acknowledged for 8 ms, then 9.6 KB at once. Held back,
    lowat's writer waits on a timer and comes back after the path has drained the queue the
    limit allows (a sixteenth of 20 ms), and the link idles: a 3 MB page took 28-39 % longer
    than without the optimization. The limit must see the path run dry after such waits and
    allow more queue; lowat logs that slack at the first period it holds through."""
    ns_a, ns_b = f"lw97-{os.getpid()}-a", f"lw97-{os.getpid()}-b"
    assert not {ns_a, ns_b} & _namespaces(), f"namespaces {ns_a}/{ns_b} exist already"
    procs = []
    try:
        procs.append(_start_linkem(ns_a, ns_b, 10, 10, "--batch-ms-a", 8))
        _set_cc(ns_b, "cubic")
        lw, mbit = _download_through_lowat(lowat_bin, tmp_path, ns_a, ns_b, 3_000_000, procs)
        assert lw.wait_line(r"queue in the path", 5), f"the limit never engaged:\n{lw.text()[-5000:]}"
        # 10 Mbit/s of 1500-byte packets carry 9.65 Mbit/s of payload. The body came at 9.2-9.5;
        # before the limit allowed for the writer's late returns, at 6.6-7.0.
        assert mbit >= 0.9 * 9.65, f"the body came at {mbit:.2f} Mbit/s: the link idled"
        held = lw.wait_line(r"held through a period, .*; ([\d.]+) KB of slack for the writer's late returns", 5)
        assert held, f"the limit never held through a period:\n{lw.text()[-5000:]}"
        # Logged 5.6-10 KB: an aggregate is 9.6 KB, and a sixteenth of the path 1.5.
        assert float(held.group(1)) >= 3, held.group(0)
    finally:
        _stop_and_clean(procs[::-1], (ns_a, ns_b))


def test_linkem_first_flight_carries_the_first_body_bytes(lowat_bin, tmp_path):
    """Across a 40 ms link the write budget is active. The connection's first flight (session
    tickets, SETTINGS, its ACK, the response HEADERS) goes out with the first DATA instead of as
    small packets of its own, each of which would take a whole segment's place in the
    congestion window; and the records are cut so that the first body bytes can be decrypted
    from the first segment alone."""
    assert not {NS_A, NS_B} & _namespaces(), f"namespaces {NS_A}/{NS_B} exist already"
    linkem = app = lw = None
    try:
        linkem = _start_linkem(NS_A, NS_B, DELAY_MS, 100)
        app = Proc(_in_ns(NS_B, DEMO_APP_BIN, "--listen", f"{ADDR_B}:0", "--quiet"))
        m = app.wait_line(r"listening on [\d.]+:(\d+)", 10 * SLOW)
        assert m, f"the demo app did not start in {NS_B}:\n{app.text()}"
        lw, m = _start_lowat(lowat_bin, tmp_path, NS_B, f"{ADDR_B}:{m.group(1)}", tls=True)
        p = subprocess.run(_in_ns(NS_A, "/usr/bin/python3", REPO / "integration-tests" / "first_flight.py",
                                  ADDR_B, m.group(2), "/static/photo.svg"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        assert p.returncode == 0, p.stderr.decode(errors="replace")
        got = json.loads(p.stdout)
        assert got["body"] > 1000 and got["first_body_end"] is not None, got
        # Before: the tickets, the SETTINGS ACK and the HEADERS went out as records (and
        # packets) of their own, and the first body bytes ended 2,007 bytes in.
        assert got["first_body_end"] <= got["mss"], f"the first body bytes came {got['first_body_end']} bytes in: {got}"
    finally:
        _stop_and_clean((lw, app, linkem), (NS_A, NS_B))


def _records_across_link(lowat_bin, tmp_path, tag, script, path, size, *args):
    """Fetch path (size body bytes) with script (first_flight.py or h1_records.py) from ns_a,
    through lowat over TLS in ns_b, across a 40 ms, 20 Mbit/s link. Checks the body; returns
    (mss, wire lengths of the server's records)."""
    ns_a, ns_b = f"{tag}-{os.getpid()}-a", f"{tag}-{os.getpid()}-b"
    assert not {ns_a, ns_b} & _namespaces(), f"namespaces {ns_a}/{ns_b} exist already"
    linkem = origin = lw = None
    try:
        linkem = _start_linkem(ns_a, ns_b, DELAY_MS, 20)
        origin, port = _start_test_backend(ns_b)
        lw, m = _start_lowat(lowat_bin, tmp_path, ns_b, f"{ADDR_B}:{port}", tls=True)
        p = subprocess.run(_in_ns(ns_a, "/usr/bin/python3", REPO / "integration-tests" / script,
                                  ADDR_B, m.group(2), path, *args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert p.returncode == 0, p.stderr.decode(errors="replace")
        got = json.loads(p.stdout)
        assert (got["body"], got["sha256"]) == (size, pattern_sha256(size)), got
        return got["mss"], got["records"]
    finally:
        _stop_and_clean((lw, origin, linkem), (ns_a, ns_b))


def test_linkem_records_span_two_segments_once_bytes_flow(lowat_bin, tmp_path):
    """Across a 40 ms, 20 Mbit/s link the write budget is active. A connection's first 64 KiB go
    in records of one segment each, so that each segment can be decrypted as it arrives. After
    that a record may span two segments: one record's overhead (header, tag) and one DATA frame
    header per two segments instead of per segment. Records stay whole segments either way,
    and the body arrives intact."""
    size = 600_000
    mss, records = _records_across_link(lowat_bin, tmp_path, "lw93", "first_flight.py", f"/bytes/{size}", size, 5000)
    ends = list(itertools.accumulate(records))
    head = [n for n, end in zip(records, ends) if end <= 48 * 1024]
    tail = [n for n, end in zip(records, ends) if end - n >= 128 * 1024]
    print(f"mss {mss}: head {collections.Counter(head)}, tail {collections.Counter(tail)}")
    assert head and max(head) <= mss, f"a record of the first 48 KiB spans more than a segment: {head}"
    assert tail and max(tail) <= 2 * mss, f"a record past 128 KiB spans more than two segments: {tail}"
    pairs = sum(n for n in tail if n == 2 * mss)
    assert pairs >= sum(tail) / 2, f"past 128 KiB most bytes should come in two-segment records: {tail}"


def test_linkem_h1_chunked_records_stay_whole_segments(lowat_bin, tmp_path):
    """The same over HTTP/1.1: a chunked response across a 40 ms, 20 Mbit/s link, the write
    budget active. Each chunk's size line and CRLF count in the budget, so the records of a
    pass still fill whole segments: no record of a few bytes after each pass, which would go
    out as a small packet of its own or shift every record after it across a segment's
    boundary."""
    size = 600_000
    mss, records = _records_across_link(lowat_bin, tmp_path, "lw97", "h1_records.py", f"/chunked/{size}", size)
    ends = list(itertools.accumulate(records))
    middle = [n for n, end in zip(records, ends) if 16 * 1024 <= end <= ends[-1] - 16 * 1024]
    print(f"mss {mss}: {collections.Counter(middle)}")
    assert middle and max(middle) <= 2 * mss, f"a record spans more than two segments: {middle}"
    odd = [n for n in middle if n not in (mss, 2 * mss)]
    assert not odd, f"records that are not whole segments, in the middle of the body: {collections.Counter(odd)}"


def test_linkem_a_finished_response_ends_its_record(lowat_bin, tmp_path):
    """Across a 40 ms, 20 Mbit/s link the write budget is active, and once bytes flow a record
    may span two segments. Responses asked for while a large one streams must each end their
    TLS record with their last frame, whether that is a DATA frame or, for a 204 or a 304, the
    HEADERS frame itself: a client decrypts a record only whole, and the large response's bytes
    behind a finished response in its record would hold it back until they arrived too. The
    TCP segment that brings that record's end ends with it as well, or with another of the
    small responses that followed it at once: the large response's bytes filling it would
    delay its arrival by their time on the link."""
    ns_a, ns_b = f"lw94-{os.getpid()}-a", f"lw94-{os.getpid()}-b"
    assert not {ns_a, ns_b} & _namespaces(), f"namespaces {ns_a}/{ns_b} exist already"
    linkem = origin = lw = None
    size = 1_500_000
    paths = ["/status/204", "/status/304", "/bytes/1000?type=text/javascript", "/status/204", "/status/304"]
    try:
        linkem = _start_linkem(ns_a, ns_b, DELAY_MS, 20)
        origin, port = _start_test_backend(ns_b)
        lw, m = _start_lowat(lowat_bin, tmp_path, ns_b, f"{ADDR_B}:{port}", tls=True)
        p = subprocess.run(_in_ns(ns_a, "/usr/bin/python3", REPO / "integration-tests" / "record_ends.py",
                                  ADDR_B, m.group(2), f"/bytes/{size}", 200_000, *paths),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert p.returncode == 0, p.stderr.decode(errors="replace")
        got = json.loads(p.stdout)
        print(got)
        assert got["large"] == size, got
        want = [(204, 0, "HEADERS"), (304, 0, "HEADERS"), (200, 1000, "DATA"), (204, 0, "HEADERS"), (304, 0, "HEADERS")]
        assert [(r["status"], r["body"], r["last_frame"]) for r in got["responses"]] == want, got
        late = [r for r in got["responses"] if r["trailing"] != 0]
        assert not late, f"other bytes share the record of a finished response: {late}"
        ends = {r["wire_end"] for r in got["responses"]}
        late = [r for r in got["responses"] if r["segment_end"] not in ends]
        assert not late, f"the large response's bytes share the last segment of a finished one: {late}"
    finally:
        _stop_and_clean((lw, origin, linkem), (ns_a, ns_b))


def test_linkem_late_requests_while_a_large_response_streams(lowat_bin, tmp_path):
    """Across a 40 ms, 20 Mbit/s link the write budget is active and the window fills. Two more
    requests come on the connection while a 2 MB response streams: one the backend answers at
    once, one it answers after 400 ms. lowat keeps the connection's output back for a moment
    while a new response is about to start, so that the large response's bytes do not queue in
    front of it (what that gains is measured by tools/bench/responsiveness). Here: the moment
    must end on its own when the backend is slow. All three arrive whole, and the large one
    keeps flowing while the slow one is awaited."""
    ns_a, ns_b = f"lw92-{os.getpid()}-a", f"lw92-{os.getpid()}-b"
    assert not {ns_a, ns_b} & _namespaces(), f"namespaces {ns_a}/{ns_b} exist already"
    linkem = origin = lw = None
    try:
        linkem = _start_linkem(ns_a, ns_b, DELAY_MS, 20)
        origin, port = _start_test_backend(ns_b)
        lw, m = _start_lowat(lowat_bin, tmp_path, ns_b, f"{ADDR_B}:{port}", tls=True)
        p = subprocess.run(_in_ns(ns_a, "/usr/bin/python3", REPO / "integration-tests" / "late_request.py",
                                  ADDR_B, m.group(2), "/bytes/2000000", 256 * 1024, "/bytes/1024", "/slow/400"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert p.returncode == 0, p.stderr.decode(errors="replace")
        got = json.loads(p.stdout)
        streams = got["streams"]
        assert streams["/bytes/2000000"] == {"status": "200", "bytes": 2_000_000, "done_ms": None}, got
        assert (streams["/bytes/1024"]["status"], streams["/bytes/1024"]["bytes"]) == ("200", 1024), got
        assert streams["/slow/400"]["status"] == "200" and streams["/slow/400"]["bytes"] > 0, got
        # The slow answer takes 400 ms and a round trip; the large response must not wait for it.
        # Reads come every few milliseconds at 20 Mbit/s; a hold that did not end by itself would
        # show as a gap of about 400 ms.
        assert streams["/slow/400"]["done_ms"] >= 400, got
        assert got["max_gap_ms"] < 150 * SLOW, f"the large response stalled while a request was awaited: {got}"
    finally:
        _stop_and_clean((lw, origin, linkem), (ns_a, ns_b))
