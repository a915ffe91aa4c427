#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Benchmarks lowat side by side with nghttpx, H2O and HAProxy on one machine.

Each proxy runs with one worker thread pinned to CPU 0, terminates TLS 1.3 with ALPN h2 on
the same ECDSA P-256 certificate, and forwards to one common nginx HTTP/1.1 keep-alive origin
pinned to CPU 1, where the load generators (h2load and this script's own TLS clients) run
too. Rounds interleave the proxies so slow drifts of a shared machine spread over all of
them; each figure is the median over rounds, with lowat's ratio to every peer.

Figures, per proxy and round (the proxy is started fresh for each round):
  idle      RSS growth per idle TLS h2 connection (VmRSS before and after opening N)
  small     100 B responses, h2load -c 100 -m 10 and -c 10 -m 100: req/s and proxy CPU us
            per request, then latency p50/p99 from a second run with h2load --log-file
            (the log's cost on the load core would cap the first run's req/s)
  large     16 KiB (-c 10 -m 10) and 1 MiB (-c 4 -m 1): req/s, MB/s, proxy CPU us per MB
  tls       new TLS connections per second, full handshakes and resumed ones, and proxy
            CPU us per handshake (a small Python client: handshake, h2 preface and
            SETTINGS exchange, close, on 8 threads)
and once per proxy after the rounds:
  instr     instructions per request: `perf stat -e instructions` where the machine has
            the counter, else callgrind (two runs of different length, the difference
            divided by the difference in requests, so start-up and shutdown cancel out)

Proxy CPU time comes from /proc/PID/stat (utime + stime of every thread) sampled inside the
measured window; a proxy below 90 % of one core during a load run is reported as not
saturated, together with how busy CPU 1 (the load side) was.

The whole run happens in a network namespace made for it, whose loopback routes carry
`congctl cubic` (--cc): every TCP connection of the run (client, proxy and origin) uses cubic
whatever the machine's default is. With BBR every loopback sender paces with a timer, and the
origin's timers on the load core, not the proxies, then set the pace of large responses (see
README.md). --cc system runs in the machine's own namespace with its default.

Usage: tools/bench/peers/run.py [--rounds 3] [--duration 10] [--only lowat,h2o] [--quick] [--cc system]
Run tools/bench/deps.sh first (it installs the peers, h2load, nginx, valgrind).
"""

import argparse
import datetime
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from string import Template

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from netlab import spawn, stop, stop_all  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
CONF = HERE / "conf"
PROXIES = ["lowat", "nghttpx", "h2o", "haproxy"]
# Not in the default set, only when --only names it: lowat with writing for responsiveness
# turned off, to show that on loopback the optimization steps aside (lowat/lowat-off).
VARIANTS = ["lowat-off"]
LOWATS = ("lowat", "lowat-off")
PROXY_CPU = 0
LOAD_CPU = 1
DEFAULT_CC = "cubic"
NETNS_ENV = "LOWAT_PEERS_NETNS"  # set in the copy of this script that runs inside the namespace (--cc)
CLK_TCK = os.sysconf("SC_CLK_TCK")
FILES = {"100b": 100, "16k": 16 * 1024, "1m": 1024 * 1024}
TLS13_CIPHER = "TLS_AES_128_GCM_SHA256"  # offered alone by h2load, so every proxy uses it
SATURATED_PCT = 90.0
OTHER_CPU0_PCT = 10.0  # CPU 0 time beyond the proxy's and softirq: other processes

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
H2_SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ processes and /proc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_ticks(pid):
    """utime + stime of the whole process (all threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def cpu_jiffies(cpu):
    """(busy, total, softirq) jiffies of one CPU from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                total = sum(v[:8])
                return total - v[3] - v[4], total, v[6]
    return 0, 1, 0


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Sample:
    """A snapshot of the proxy's CPU time and both CPUs' busy time."""

    def __init__(self, pid):
        self.t = time.monotonic()
        self.proxy_ticks = proc_cpu_ticks(pid)
        self.cpu = [cpu_jiffies(PROXY_CPU), cpu_jiffies(LOAD_CPU)]


def window(a, b):
    """CPU figures between two samples: proxy CPU seconds, and busy % of the proxy (of one
    core), of CPU 0 and of CPU 1."""
    dt = b.t - a.t
    proxy_s = (b.proxy_ticks - a.proxy_ticks) / CLK_TCK
    pct = []
    for i in range(2):
        busy = b.cpu[i][0] - a.cpu[i][0]
        total = max(1, b.cpu[i][1] - a.cpu[i][1])
        pct.append(100.0 * busy / total)
    total0 = max(1, b.cpu[0][1] - a.cpu[0][1])
    # Softirq time (loopback TCP receive work the kernel does on CPU 0 on behalf of whoever
    # sends to the proxy's sockets) is not in the proxy's utime+stime: shown apart.
    return {"dt_s": dt, "proxy_cpu_s": proxy_s, "proxy_busy_pct": 100.0 * proxy_s / dt,
            "cpu0_pct": pct[0], "cpu1_pct": pct[1],
            "cpu0_softirq_pct": 100.0 * (b.cpu[0][2] - a.cpu[0][2]) / total0}


def wait_quiet(max_wait_s, busy_pct=15.0):
    """Waits (at most max_wait_s) until both CPUs were below busy_pct over half a second,
    so a run does not start while other work holds the machine. Returns (quiet, waited_s)."""
    t0 = time.monotonic()
    while True:
        a = [cpu_jiffies(PROXY_CPU), cpu_jiffies(LOAD_CPU)]
        time.sleep(0.5)
        b = [cpu_jiffies(PROXY_CPU), cpu_jiffies(LOAD_CPU)]
        pct = [100.0 * (b[i][0] - a[i][0]) / max(1, b[i][1] - a[i][1]) for i in range(2)]
        waited = time.monotonic() - t0
        if max(pct) < busy_pct:
            return True, waited
        if waited >= max_wait_s:
            return False, waited


def other_on_cpu0(r):
    """% of CPU 0 used by something else than the proxy and softirq during a measured window."""
    if "cpu0_pct" not in r:
        return 0.0
    return max(0.0, r["cpu0_pct"] - r["proxy_busy_pct"] - r.get("cpu0_softirq_pct", 0.0))


def sample_during(pid, start_s, end_s, out):
    """In a thread: samples at start_s and end_s seconds from now into out."""
    t0 = time.monotonic()

    def run():
        try:
            time.sleep(max(0.0, start_s - (time.monotonic() - t0)))
            out.append(Sample(pid))
            time.sleep(max(0.0, end_s - (time.monotonic() - t0)))
            out.append(Sample(pid))
        except (OSError, IndexError):
            pass

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


# ------------------------------------------------------------------ TLS clients


def client_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["h2"])
    return ctx


def h2_hello(s, deadline):
    """Sends the client preface and an empty SETTINGS, reads frames until the server's
    SETTINGS (acknowledged) and the ACK of ours have arrived. Returns True on success."""
    s.sendall(H2_PREFACE + H2_SETTINGS)
    buf = b""
    got_settings = got_ack = False
    while not (got_settings and got_ack):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        s.settimeout(left)
        chunk = s.recv(16384)
        if not chunk:
            return False
        buf += chunk
        while len(buf) >= 9:
            length = int.from_bytes(buf[0:3], "big")
            if len(buf) < 9 + length:
                break
            ftype, flags = buf[3], buf[4]
            buf = buf[9 + length:]
            if ftype == 4 and flags & 1:
                got_ack = True
            elif ftype == 4:
                got_settings = True
                s.sendall(H2_SETTINGS_ACK)
            elif ftype == 7:  # GOAWAY
                return False
    return True


def probe(port, timeout_s=1.0):
    """One TLS 1.3 + h2 connection: True when the proxy answers the SETTINGS exchange."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as raw:
            with client_ctx().wrap_socket(raw, server_hostname="localhost") as s:
                if s.selected_alpn_protocol() != "h2":
                    return False
                return h2_hello(s, time.monotonic() + timeout_s)
    except (OSError, ssl.SSLError):
        return False


def handshake_loop(pid, port, duration_s, resume, threads=8):
    """New TLS connections for duration_s on `threads` threads: handshake (resumed from the
    thread's latest session when resume), h2 preface + SETTINGS exchange, close."""
    ctx = client_ctx()
    counts = [0] * threads
    reused = [0] * threads
    errors = [0] * threads
    stop_at = time.monotonic() + duration_s

    def worker(i):
        session = None
        while time.monotonic() < stop_at:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as browsers do
                    with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
                        ok = h2_hello(s, time.monotonic() + 5)
                        if resume:
                            # TLS 1.3 tickets come after the handshake: read by h2_hello.
                            session = s.session
                        if ok:
                            counts[i] += 1
                            reused[i] += 1 if s.session_reused else 0
                        else:
                            errors[i] += 1
            except (OSError, ssl.SSLError):
                errors[i] += 1
                session = None

    ths = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for th in ths:
        th.start()
    # Sample inside the run, away from the ramp-up and the tail.
    margin = min(0.5, duration_s / 5)
    time.sleep(margin)
    a, n_a = Sample(pid), sum(counts)
    time.sleep(max(0.1, duration_s - 2 * margin))
    b, n_b = Sample(pid), sum(counts)
    for th in ths:
        th.join(30)
    w = window(a, b)
    n = max(1, n_b - n_a)
    total = max(1, sum(counts))
    return {"hs_per_s": (n_b - n_a) / w["dt_s"], "cpu_us_per_hs": w["proxy_cpu_s"] * 1e6 / n,
            "reused_pct": 100.0 * sum(reused) / total, "errors": sum(errors), **w}


def idle_connections(pid, port, n):
    """Opens n TLS h2 connections (SETTINGS exchanged), keeps them idle, and returns the
    proxy's RSS growth per connection."""
    ctx = client_ctx()
    time.sleep(0.2)
    before = rss_kb(pid)
    socks = []
    failed = 0
    try:
        for _ in range(n):
            try:
                raw = socket.create_connection(("127.0.0.1", port), timeout=5)
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s = ctx.wrap_socket(raw, server_hostname="localhost")
                socks.append(s)
                if not h2_hello(s, time.monotonic() + 5):
                    failed += 1
            except (OSError, ssl.SSLError):
                failed += 1
        time.sleep(0.5)
        after = rss_kb(pid)
    finally:
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
    time.sleep(0.5)
    opened = n - failed
    return {"kb_per_conn": (after - before) / max(1, opened), "rss_before_kb": before,
            "rss_after_kb": after, "conns": opened, "failed": failed}


# ------------------------------------------------------------------ h2load

H2LOAD_RE = {
    "rps": re.compile(r"finished in [\d.]+\w+, ([\d.]+) req/s"),
    "requests": re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                           r"(\d+) failed, (\d+) errored, (\d+) timeout"),
    "tls": re.compile(r"TLS Protocol: (\S+)"),
    "cipher": re.compile(r"Cipher: (\S+)"),
    "alpn": re.compile(r"Application protocol: (\S+)"),
    "status": re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx"),
}


def h2load_cmd(port, path, c, m, duration_s=None, warm_s=None, n=None, log_file=None):
    cmd = ["taskset", "-c", str(LOAD_CPU), "h2load", "-t", "1", "-c", str(c), "-m", str(m),
           f"--tls13-ciphers={TLS13_CIPHER}"]
    if duration_s is not None:
        cmd += ["-D", f"{int(duration_s * 1000)}ms", f"--warm-up-time={int(warm_s * 1000)}ms"]
    if n is not None:
        cmd += ["-n", str(n)]
    if log_file:
        cmd += [f"--log-file={log_file}"]
    return cmd + [f"https://127.0.0.1:{port}/{path}"]


def parse_h2load(out):
    r = {}
    m = H2LOAD_RE["rps"].search(out)
    r["rps"] = float(m.group(1)) if m else 0.0
    m = H2LOAD_RE["requests"].search(out)
    if m:
        total, _, done, ok, failed, errored, timeout = (int(x) for x in m.groups())
        r.update(requests=done, succeeded=ok, failed=failed + errored + timeout)
    else:
        r.update(requests=0, succeeded=0, failed=0)
    m = H2LOAD_RE["status"].search(out)
    r["ok_2xx"] = int(m.group(1)) if m else 0
    r["not_2xx"] = sum(int(x) for x in m.groups()[1:]) if m else 0
    for k in ("tls", "cipher", "alpn"):
        m = H2LOAD_RE[k].search(out)
        r[k] = m.group(1) if m else "?"
    return r


def percentiles(log_file):
    """p50 and p99 request latency in ms from an h2load --log-file (third column, us)."""
    d = []
    with open(log_file) as f:  # one row per request of the measured phase
        for line in f:
            parts = line.split("\t")
            if len(parts) >= 3:
                d.append(int(parts[2]))
    if not d:
        return None, None, 0
    d.sort()

    def rank(p):
        return d[min(len(d) - 1, max(0, int(round(p / 100.0 * len(d))) - 1))] / 1000.0

    return rank(50), rank(99), len(d)


def load_run(proxy, path, c, m, duration_s, warm_s, tmp, latency):
    """One timed h2load run against the proxy, with the proxy's CPU sampled inside the
    measured window. With latency, a second run of the same shape gives the p50/p99: h2load
    writing a line per request costs the load core 1-2 us per request, which caps the req/s
    of a proxy that has left the load core the bottleneck (measured: lowat 151k req/s at
    -c 100 -m 10 without the log, 128k with it; nghttpx 102k and 97k), so req/s and CPU per
    request come from the run without it."""
    cmd = h2load_cmd(proxy.port, path, c, m, duration_s, warm_s)
    samples = []
    # h2load's clock starts once connections are up: sample well inside [warm, warm+D].
    margin = min(0.3, duration_s / 8)
    sampler = sample_during(proxy.pid, warm_s + margin, warm_s + duration_s - margin, samples)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + warm_s + 60).stdout
    sampler.join(5)
    r = parse_h2load(out)
    if len(samples) == 2:
        r.update(window(samples[0], samples[1]))
    else:
        r.update(dt_s=0.0, proxy_cpu_s=0.0, proxy_busy_pct=0.0, cpu0_pct=0.0, cpu1_pct=0.0, cpu0_softirq_pct=0.0)
    # CPU per request: CPU seconds per second of the window over requests per second.
    cpu_per_s = r["proxy_cpu_s"] / r["dt_s"] if r["dt_s"] else 0.0
    r["cpu_us_per_req"] = cpu_per_s * 1e6 / r["rps"] if r["rps"] else 0.0
    size = FILES[path]
    r["mbps"] = r["rps"] * size / 1e6
    r["cpu_us_per_mb"] = cpu_per_s * 1e6 / r["mbps"] if r["mbps"] else 0.0
    if latency:
        log_file = tmp / "h2load-latency.tsv"
        if log_file.exists():
            log_file.unlink()
        lat = parse_h2load(subprocess.run(h2load_cmd(proxy.port, path, c, m, duration_s, warm_s, log_file=log_file),
                                          capture_output=True, text=True, timeout=duration_s + warm_s + 60).stdout)
        r["p50_ms"], r["p99_ms"], r["latency_rows"] = percentiles(log_file)
        r["rps_logged"] = lat["rps"]
        log_file.unlink()
        r["failed"] += lat["failed"]
        r["not_2xx"] += lat["not_2xx"]
    if r["failed"] or r["not_2xx"]:
        r["warning"] = f"{r['failed']} failed, {r['not_2xx']} non-2xx"
    return r


# ------------------------------------------------------------------ the servers


def render(template, dest, **values):
    text = Template((CONF / template).read_text()).substitute(**{k: str(v) for k, v in values.items()})
    dest.write_text(text)
    return dest


class Origin:
    def __init__(self, tmp):
        self.tmp = tmp
        self.port = free_port()
        www = tmp / "www"
        www.mkdir(exist_ok=True)
        for name, size in FILES.items():
            if name != "100b":
                (www / name).write_bytes(os.urandom(size))
        # /100b is served from nginx's memory (see the template), not from a file; letters and
        # digits so that the bytes sit in its config as they are.
        alphabet = string.ascii_letters + string.digits
        body100 = "".join(random.choice(alphabet) for _ in range(FILES["100b"]))
        self.conf = render("origin-nginx.conf", tmp / "origin-nginx.conf", DIR=tmp, PORT=self.port,
                           BODY100=body100)
        self.cmd = ["nginx", "-e", tmp / "origin-nginx-error.log", "-p", tmp, "-c", self.conf]
        self.p = None

    def start(self):
        self.p = spawn(self.cmd, self.tmp / "origin-nginx.out", cpu=LOAD_CPU)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError("nginx origin exited: " + (self.tmp / "origin-nginx.out").read_text()[-2000:])
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /100b HTTP/1.1\r\nHost: o\r\n\r\n")
                    if s.recv(100).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("nginx origin did not come up")

    def stop(self):
        if self.p:
            stop(self.p)


class Proxy:
    """One proxy under test: its configuration, command line, start, readiness, stop."""

    def __init__(self, name, tmp, cert, key, origin_port, lowat_bin):
        self.name, self.tmp = name, tmp
        self.port = free_port()
        self.p = None
        d = tmp / name
        d.mkdir(exist_ok=True)
        self.dir = d
        v = dict(DIR=d, PORT=self.port, CERT=cert, KEY=key, ORIGIN_PORT=origin_port)
        self.conf = None
        if name in LOWATS:
            # true is the default; false turns the write budget off for the listener.
            v["RESPONSIVENESS"] = "true" if name == "lowat" else "false"
            self.conf = render("lowat.yaml", d / "lowat.yaml", **v)
            self.cmd = [lowat_bin, "-c", self.conf]
        elif name == "nghttpx":
            empty = d / "nghttpx.conf"
            empty.write_text("# empty: every option is on the command line\n")
            # --single-process: no forked worker, so /proc/PID is the process doing the work.
            self.cmd = ["nghttpx", f"--conf={empty}", "--single-process", "--workers=1",
                        f"--frontend=127.0.0.1,{self.port}",
                        f"--backend=127.0.0.1,{origin_port};;proto=http/1.1",
                        f"--errorlog-file={d / 'error.log'}", "--frontend-http2-read-timeout=120s", "--no-ocsp",
                        key, cert]
        elif name == "h2o":
            self.conf = render("h2o.yaml", d / "h2o.yaml", **v)
            self.cmd = ["h2o", "-c", self.conf]
        elif name == "haproxy":
            pem = d / "haproxy.pem"
            pem.write_text(Path(cert).read_text() + Path(key).read_text())
            self.conf = render("haproxy.cfg", d / "haproxy.cfg", PORT=self.port, PEM=pem, ORIGIN_PORT=origin_port)
            self.cmd = ["haproxy", "-db", "-f", self.conf]
        else:
            raise ValueError(name)

    @property
    def pid(self):
        return self.p.pid

    def start(self, wrapper=(), ready_timeout_s=20.0):
        self.p = spawn(list(wrapper) + list(self.cmd), self.dir / "out.log", cpu=PROXY_CPU)
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n" + self.output()[-3000:])
            if probe(self.port):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"{self.name} not ready after {ready_timeout_s}s:\n" + self.output()[-3000:])
        # A real request through to the origin, which also opens backend connections.
        out = subprocess.run(h2load_cmd(self.port, "100b", 2, 10, n=200), capture_output=True, text=True,
                             timeout=ready_timeout_s + 60).stdout
        r = parse_h2load(out)
        if r["ok_2xx"] != 200:
            raise RuntimeError(f"{self.name}: readiness requests failed:\n{out}\n" + self.output()[-3000:])
        self.handshake = (r["tls"], r["cipher"], r["alpn"])

    def stop(self, timeout_s=15.0):
        if self.p:
            stop(self.p, timeout_s)
            self.p = None

    def output(self):
        try:
            return (self.dir / "out.log").read_text(errors="replace")
        except OSError:
            return ""


def make_cert(tmp):
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


# ------------------------------------------------------------------ instructions per request


def perf_has_instructions():
    try:
        out = subprocess.run(["perf", "stat", "-x,", "-e", "instructions", "true"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "<not supported>" not in out.stderr and "<not counted>" not in out.stderr


def instructions_perf(proxy, n):
    """perf stat -e instructions on the running proxy during a fixed run of n requests."""
    proxy.start()
    try:
        out_file = proxy.dir / "perf-stat.txt"
        perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "instructions", "-p", str(proxy.pid),
                                 "-o", str(out_file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        out = subprocess.run(h2load_cmd(proxy.port, "100b", 10, 10, n=n), capture_output=True, text=True,
                             timeout=600).stdout
        perf.send_signal(signal.SIGINT)
        perf.wait(30)
        r = parse_h2load(out)
        for line in out_file.read_text().splitlines():
            parts = line.split(",")
            if len(parts) > 2 and parts[2].startswith("instructions") and parts[0].isdigit():
                return {"instr_per_req": int(parts[0]) / max(1, r["succeeded"]), "method": "perf stat",
                        "requests": r["succeeded"]}
        return None
    finally:
        proxy.stop()


def perf_profile(proxy, duration_s, warm_s, tmp):
    """perf record (cpu-clock samples, user and kernel) of the proxy during one small-response
    run (h2load -c 100 -m 10); returns the top 10 symbols by share of samples."""
    data = proxy.dir / "perf.data"
    proxy.start()
    try:
        perf_cmd = ["perf", "record", "-q", "-e", "cpu-clock", "-F", "1999", "-p", str(proxy.pid), "-o", str(data),
                    "--", "sleep", f"{max(0.5, duration_s - 0.6):.2f}"]
        h2 = subprocess.Popen(h2load_cmd(proxy.port, "100b", 100, 10, duration_s, warm_s), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
        time.sleep(warm_s + 0.3)
        subprocess.run(perf_cmd, capture_output=True, timeout=duration_s + 60)
        h2.communicate(timeout=duration_s + 60)
    finally:
        proxy.stop()
    rep = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", "dso,symbol",
                          "--percent-limit", "0.5"], capture_output=True, text=True, timeout=300).stdout
    rows = []
    for line in rep.splitlines():
        m = re.match(r"^\s+([\d.]+)%\s+(\S+)\s+\[([.kgu])\]\s+(.*)$", line)
        if m:
            sym = re.sub(r"(\s+-)+$", "", m.group(4).strip())
            rows.append((float(m.group(1)), f"{sym} ({m.group(2)})"))
        if len(rows) == 10:
            break
    return rows


def callgrind_total(path):
    for line in Path(path).read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    return None


def instructions_callgrind(proxy, n_short, n_long):
    """Two callgrind runs, n_short and n_long requests: the difference in instructions over
    the difference in requests, so start-up, readiness and shutdown cancel out."""
    totals, files = {}, {}
    for n in (n_short, n_long):
        # %p: a forked helper (H2O forks some) must not overwrite the proxy's own file.
        pattern = proxy.dir / f"callgrind.{n}.%p.out"
        wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={pattern}"]
        proxy.start(wrapper=wrapper, ready_timeout_s=120.0)
        out_file = proxy.dir / f"callgrind.{n}.{proxy.pid}.out"
        files[n] = out_file
        try:
            out = subprocess.run(h2load_cmd(proxy.port, "100b", 10, 10, n=n), capture_output=True, text=True,
                                 timeout=900).stdout
            r = parse_h2load(out)
            if r["ok_2xx"] != n:
                raise RuntimeError(f"{proxy.name} under callgrind: {r['ok_2xx']} of {n} requests succeeded")
        finally:
            proxy.stop(timeout_s=60.0)
        totals[n] = callgrind_total(out_file)
        if totals[n] is None:
            raise RuntimeError(f"{proxy.name}: no totals in {out_file}")
    top = []
    try:
        ann = subprocess.run(["callgrind_annotate", str(files[n_long])],
                             capture_output=True, text=True, timeout=120).stdout
        top = top_functions(ann, 10)
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {"instr_per_req": (totals[n_long] - totals[n_short]) / (n_long - n_short), "method": "callgrind",
            "requests": n_long - n_short, "top": [(100.0 * c / totals[n_long], f) for c, f in top]}


def top_functions(annotate_out, k):
    """The first k function lines of callgrind_annotate (self cost, sorted)."""
    rows = []
    for line in annotate_out.splitlines():
        # "  55,522,200  file.c:function [object]", after the PROGRAM TOTALS line
        m = re.match(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(\S.*)$", line)
        if m and "PROGRAM TOTALS" not in line and ":" in m.group(2):
            name = re.sub(r"\[(?:\S*/)?([^/\]]+)\]$", r"[\1]", m.group(2).strip())  # object: base name
            rows.append((int(m.group(1).replace(",", "")), name))
            if len(rows) == k:
                break
    return rows


# ------------------------------------------------------------------ the report

# figure -> [(metric, label, higher_is_better)]
FIGURES = {
    "idle": ("Memory per idle TLS h2 connection", [("kb_per_conn", "KB per connection (RSS growth)", False)]),
    "rss": ("Memory of the proxy process (VmRSS)", [
        ("start_mb", "MB at start", False), ("after_mb", "MB after the round's runs, clients gone", False)]),
    "small_c100_m10": ("100 B responses, h2load -c 100 -m 10", [
        ("rps", "req/s", True), ("p50_ms", "latency p50 ms", False), ("p99_ms", "latency p99 ms", False),
        ("cpu_us_per_req", "proxy CPU us/req", False), ("proxy_busy_pct", "proxy busy % of a core", None),
        ("rps_logged", "req/s of the latency run (h2load logging each request)", True)]),
    "small_c10_m100": ("100 B responses, h2load -c 10 -m 100", [
        ("rps", "req/s", True), ("p50_ms", "latency p50 ms", False), ("p99_ms", "latency p99 ms", False),
        ("cpu_us_per_req", "proxy CPU us/req", False), ("proxy_busy_pct", "proxy busy % of a core", None),
        ("rps_logged", "req/s of the latency run (h2load logging each request)", True)]),
    "16k_c10_m10": ("16 KiB responses, h2load -c 10 -m 10", [
        ("rps", "req/s", True), ("mbps", "MB/s (bodies, 10^6 B)", True), ("cpu_us_per_mb", "proxy CPU us/MB", False),
        ("proxy_busy_pct", "proxy busy % of a core", None)]),
    "1m_c4_m1": ("1 MiB responses, h2load -c 4 -m 1", [
        ("rps", "req/s", True), ("mbps", "MB/s (bodies, 10^6 B)", True), ("cpu_us_per_mb", "proxy CPU us/MB", False),
        ("proxy_busy_pct", "proxy busy % of a core", None)]),
    "tls_full": ("New TLS 1.3 connections, full handshakes (8 client threads)", [
        ("hs_per_s", "connections/s", True), ("cpu_us_per_hs", "proxy CPU us/handshake", False),
        ("proxy_busy_pct", "proxy busy % of a core", None)]),
    "tls_resumed": ("New TLS 1.3 connections, resumed with a ticket (8 client threads)", [
        ("hs_per_s", "connections/s", True), ("cpu_us_per_hs", "proxy CPU us/handshake", False),
        ("reused_pct", "% resumed", None), ("proxy_busy_pct", "proxy busy % of a core", None)]),
    "instr": ("Instructions per request (100 B, -c 10 -m 10)", [("instr_per_req", "instructions/req", False)]),
}
LOAD_FIGURES = ("small_c100_m10", "small_c10_m100", "16k_c10_m10", "1m_c4_m1")


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v):
    if v is None:
        return "n/a"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def tables(results, names):
    """Markdown: one table per figure, medians over rounds and lowat's ratio to each peer."""
    peers = [n for n in names if n != "lowat"]
    lines = []
    for fig, (title, metrics) in FIGURES.items():
        if not any(results.get(n, {}).get(fig) for n in names):
            continue
        lines.append(f"### {title}\n")
        head = ["metric"] + names + [f"lowat/{p}" for p in peers if "lowat" in names]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for key, label, better in metrics:
            meds = {n: median([r.get(key) for r in results.get(n, {}).get(fig, [])]) for n in names}
            row = [label + ({True: " (higher is better)", False: " (lower is better)"}.get(better, ""))]
            row += [fmt(meds[n]) for n in names]
            if "lowat" in names:
                for p in peers:
                    a, b = meds["lowat"], meds[p]
                    row.append("" if better is None else f"{a / b:.2f}" if a is not None and b else "n/a")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


# On loopback the write budget steps aside: lowat's small-response req/s, responsiveness on (its
# default), at least this share of the same with it off.
STEP_ASIDE_MIN = 0.97


def step_aside(results, names):
    """Lines judging lowat against lowat-off on small responses, when both ran."""
    if "lowat" not in names or "lowat-off" not in names:
        return []
    out = []
    for fig in ("small_c100_m10", "small_c10_m100"):
        on = median([r.get("rps") for r in results.get("lowat", {}).get(fig, [])])
        off = median([r.get("rps") for r in results.get("lowat-off", {}).get(fig, [])])
        if on is None or not off:
            continue
        ratio = on / off
        verdict = "met" if ratio >= STEP_ASIDE_MIN else "NOT met"
        out.append(f"- {FIGURES[fig][0]}: lowat {fmt(on)} req/s, lowat-off {fmt(off)}: {ratio:.3f} "
                   f"(target >= {STEP_ASIDE_MIN}: {verdict})")
    return out


def notes(results, names):
    """One line per proxy and load figure whose proxy was below SATURATED_PCT of a core in
    some round, with the likely cause; and the runs with failed requests."""
    out = []
    for n in names:
        for fig in LOAD_FIGURES + ("tls_full", "tls_resumed"):
            rs = results.get(n, {}).get(fig, [])
            for i, r in enumerate(rs, 1):
                if r.get("warning"):
                    out.append(f"- {n} {fig} round {i}: {r['warning']}")
                if r.get("quiet") is False:
                    out.append(f"- {n} {fig} round {i}: started on a busy machine after waiting {r['waited_s']:.0f} s")
            if not rs or all(r.get("proxy_busy_pct", 0.0) >= SATURATED_PCT for r in rs):
                continue
            causes = {}  # cause -> rounds, in first-seen order
            for i, r in enumerate(rs, 1):
                if r.get("proxy_busy_pct", 0.0) >= SATURATED_PCT:
                    continue
                why = []
                if other_on_cpu0(r) > OTHER_CPU0_PCT:
                    why.append("other processes took CPU 0")
                if r.get("cpu1_pct", 0.0) >= SATURATED_PCT:
                    why.append("load side (CPU 1) saturated")
                causes.setdefault(" and ".join(why) or "neither CPU saturated", []).append(str(i))

            def series(key):
                return "/".join(f"{r.get(key, 0.0):.0f}" for r in rs)

            out.append(f"- {n} {fig}: proxy at {series('proxy_busy_pct')} % of a core (per round); CPU 0 busy "
                       f"{series('cpu0_pct')} % (softirq {series('cpu0_softirq_pct')} %), CPU 1 busy "
                       f"{series('cpu1_pct')} %; " + "; ".join(
                           f"round{'s' if len(rounds) > 1 else ''} {', '.join(rounds)}: {cause}"
                           for cause, rounds in causes.items()))
    return out


def raw_rounds(results, names):
    lines = []
    for fig, (title, metrics) in FIGURES.items():
        rows = []
        for n in names:
            for i, r in enumerate(results.get(n, {}).get(fig, []), 1):
                vals = [f"{label} {fmt(r.get(key))}" for key, label, _ in metrics]
                extra = []
                if "cpu1_pct" in r:
                    extra.append(f"CPU0 {r['cpu0_pct']:.0f} % (softirq {r.get('cpu0_softirq_pct', 0):.0f} %), "
                                 f"CPU1 {r['cpu1_pct']:.0f} %")
                if "requests" in r and fig in LOAD_FIGURES:
                    extra.append(f"{r['requests']} requests")
                if "errors" in r:
                    extra.append(f"{r['errors']} errors")
                if r.get("other_cpu0_pct", 0.0) > OTHER_CPU0_PCT:
                    extra.append(f"other processes {r['other_cpu0_pct']:.0f} % of CPU 0")
                if r.get("attempts", 1) > 1:
                    extra.append(f"measured {r['attempts']} times, least disturbed kept")
                if "method" in r:
                    extra.append(f"{r['method']} over {r['requests']} requests")
                rows.append(f"| {n} | {i} | " + "; ".join(vals + extra) + " |")
        if rows:
            lines += [f"**{title}**\n", "| proxy | round | figures |", "|---|---|---|"] + rows + [""]
    return "\n".join(lines)


def version(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return ((p.stdout or "") + (p.stderr or "")).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "?"


def tcp_congestion(port):
    """The congestion control a new loopback connection to port gets (what the run's sockets use)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).split(b"\0")[0].decode()
    except OSError as e:
        return f"? ({e})"


def cc_description(port):
    cc = tcp_congestion(port)
    ns = os.environ.get(NETNS_ENV)
    where = f"route `congctl` in the run's network namespace {ns}" if ns else "the machine's default"
    return f"{cc} ({where}; read back from a connection to the origin)"


def run_in_netns(cc):
    """Run this script again inside a new network namespace whose loopback routes carry
    `congctl cc`, and remove the namespace afterwards, with whatever the run left in it.
    Returns the exit status to leave with."""
    ns = f"lowat-peers-{os.getpid()}-{random.randrange(16**6):06x}"

    def ip(*a):
        r = subprocess.run(["ip", *a], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"`ip {' '.join(a)}` failed: {r.stderr.strip()}")

    child = None

    def forward(signum, frame):
        # The run stops the way it does on its own: the copy inside cleans up and exits.
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    try:
        ip("netns", "add", ns)
    except RuntimeError as e:
        log(f"run.py: {e}; --cc system runs without a namespace of its own")
        return 1
    try:
        ip("-n", ns, "link", "set", "lo", "up")
        for dst in ("127.0.0.0/8", "127.0.0.1"):
            ip("-n", ns, "route", "replace", "local", dst, "dev", "lo", "table", "local", "congctl", cc)
        log(f"run.py: running in network namespace {ns}, loopback congestion control {cc}")
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, forward)
        # Ctrl-C reaches the copy inside too (same process group): let it clean up first.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        child = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, str(Path(__file__).resolve())]
                                 + sys.argv[1:], env=dict(os.environ, **{NETNS_ENV: ns}))
        rc = child.wait()
        return 128 - rc if rc < 0 else rc
    except RuntimeError as e:
        log(f"run.py: {e}")
        return 1
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        # Everything in the namespace was started by this run; what its copy inside could not
        # stop (killed itself) would otherwise keep running, pinned, where no one sees it.
        r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ValueError, ProcessLookupError):
                pass
        subprocess.run(["ip", "netns", "del", ns], check=False)


def machine_info(lowat_bin):
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except OSError:
        commit = "?"
    try:
        st = os.stat(lowat_bin)
        with open(lowat_bin, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:12]
        built = datetime.datetime.fromtimestamp(st.st_mtime).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
        binary = f"built {built}, sha256 {digest}"
    except OSError:
        binary = "missing"
    return {
        "nproc": os.cpu_count(), "kernel": os.uname().release, "cpu": model,
        "lowat": f"{lowat_bin} ({binary}; HEAD at start {commit or '?'}), copied at start and run from the copy",
        "nghttpx": version(["nghttpx", "--version"]), "h2o": version(["h2o", "--version"]),
        "haproxy": version(["haproxy", "-v"]), "nginx (origin)": version(["nginx", "-v"]),
        "h2load": version(["h2load", "--version"]), "openssl": version(["openssl", "version"]),
        "valgrind": version(["valgrind", "--version"]), "python": sys.version.split()[0],
    }


def write_results(path, args, info, results, names, proxies, origin, cmds, instr_method, top, profile):
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    out = [f"# lowat and its peers: results\n",
           f"Measured {now} with `tools/bench/peers/run.py --rounds {args.rounds} --duration {args.duration:g}"
           + (f" --only {','.join(names)}" if args.only else "")
           + (f" --cc {args.cc}" if args.cc != DEFAULT_CC else "") + "`. Regenerate with the same command; "
           "see README.md beside this file for what each figure means.\n",
           "## Machine\n"]
    out += [f"- {k}: {v}" for k, v in info.items()]
    out += ["", "## Medians over rounds, and lowat's ratio to each peer\n",
            "Ratios are lowat / peer: above 1 is better for lowat where higher is better, below 1 where "
            "lower is better.\n", tables(results, names)]
    if sa := step_aside(results, names):
        out += ["## Writing for responsiveness steps aside on loopback\n"] + sa + [""]
    n = notes(results, names)
    out += ["## Notes on the runs\n"] + (n if n else ["- every proxy was saturated in every load run"]) + [""]
    if top:
        out += [f"## lowat: top 10 functions by instructions (callgrind, self cost, {top[0]} run)\n",
                "| % of instructions | function |", "|---|---|"]
        out += [f"| {c:.1f} | `{f}` |" for c, f in top[1]] + [""]
    if profile:
        out += ["## lowat: top 10 symbols by CPU time (perf record -e cpu-clock, user and kernel, "
                "one h2load -c 100 -m 10 run)\n", "| % of samples | symbol (object) |", "|---|---|"]
        out += [f"| {c:.1f} | `{f}` |" for c, f in profile] + [""]
    out += ["## Exact commands\n", "Proxies (pinned with `taskset -c 0`), origin and load (`taskset -c 1`):\n",
            "```"]
    out += [f"{p.name}: taskset -c {PROXY_CPU} " + " ".join(str(c) for c in p.cmd) for p in proxies]
    out += [f"origin: taskset -c {LOAD_CPU} " + " ".join(str(c) for c in origin.cmd)]
    out += cmds + ["```", "",
                   f"Instructions per request: {instr_method}.", ""]
    out += ["Configurations (templates in tools/bench/peers/conf/, temp paths shown as generated):\n"]
    for p in proxies:
        if p.conf:
            out += [f"<details><summary>{p.name}</summary>\n", "```", Path(p.conf).read_text().rstrip(), "```",
                    "</details>\n"]
    out += ["## Raw numbers per round\n", raw_rounds(results, names)]
    Path(path).write_text("\n".join(out) + "\n")


# ------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per load run (default 10)")
    ap.add_argument("--warm-up", type=float, default=1.0, help="h2load --warm-up-time, seconds (default 1)")
    ap.add_argument("--only", default="", help="comma-separated proxies (default: all four)")
    ap.add_argument("--quick", action="store_true",
                    help="1 round, 2 s runs, lowat only, no instruction count, no RESULTS.md: the smoke test")
    ap.add_argument("--figures", default="idle,small,large,tls,instr,profile",
                    help="subset of idle,small,large,tls,instr,profile (default: all)")
    ap.add_argument("--idle-conns", type=int, default=2000)
    ap.add_argument("--quiet-wait", type=float, default=10.0,
                    help="before each measurement, wait up to this many seconds for both CPUs to be idle "
                         "(other work on a shared machine); 0: do not wait (default 10)")
    ap.add_argument("--retries", type=int, default=1,
                    help="measure a run again, up to this many times, when other processes took more than "
                         f"{OTHER_CPU0_PCT:g} %% of CPU 0 during it (default 1)")
    ap.add_argument("--instr-requests", type=int, default=20000,
                    help="requests measured for instructions per request (default 20000)")
    ap.add_argument("--lowat-bin", default=str(REPO / "build" / "proxy" / "lowat"))
    ap.add_argument("--results", default=None,
                    help="markdown report to write (default: RESULTS.md beside this script; none with --quick)")
    ap.add_argument("--json", default=None, help="also write the raw numbers as JSON here")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (configs, logs)")
    ap.add_argument("--cc", default=DEFAULT_CC,
                    help="TCP congestion control of every connection of the run, set on the loopback routes of "
                         f"a network namespace made for the run (default {DEFAULT_CC}); "
                         "'system': the machine's own namespace and default")
    args = ap.parse_args()
    if args.cc != "system" and not os.environ.get(NETNS_ENV):
        if args.cc not in open("/proc/sys/net/ipv4/tcp_available_congestion_control").read().split():
            ap.error(f"--cc {args.cc}: not available here (see /proc/sys/net/ipv4/tcp_available_congestion_control)")
        if os.geteuid() != 0 or not shutil.which("ip"):
            ap.error(f"--cc {args.cc} makes a network namespace: it needs root and `ip` (iproute2); "
                     "--cc system runs with the machine's default instead")
        sys.exit(run_in_netns(args.cc))

    figures = set(args.figures.split(","))
    if args.quick:
        args.rounds = 1
        args.duration = min(args.duration, 2.0)
        args.warm_up = min(args.warm_up, 0.5)
        args.idle_conns = min(args.idle_conns, 300)
        args.quiet_wait = 0.0
        args.retries = 0
        figures.discard("instr")
        figures.discard("profile")
        if not args.only:
            args.only = "lowat"
    asked = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(PROXIES)
    for n in asked:
        if n not in PROXIES + VARIANTS:
            ap.error(f"unknown proxy {n!r}: choose from {', '.join(PROXIES + VARIANTS)}")
    names = [n for n in PROXIES + VARIANTS if n in asked]
    results_path = args.results or (None if args.quick else str(HERE / "RESULTS.md"))

    need = {"h2load": "nghttp2-client", "nginx": "nginx-light", "taskset": "util-linux", "openssl": "openssl"}
    need.update({"nghttpx": "nghttp2-proxy", "h2o": "h2o", "haproxy": "haproxy"})
    for tool, pkg in need.items():
        if tool in ("nghttpx", "h2o", "haproxy") and tool not in names:
            continue
        if not shutil.which(tool):
            sys.exit(f"run.py: {tool} is missing (Debian package {pkg}); run tools/bench/deps.sh")
    if any(n in LOWATS for n in names) and not os.access(args.lowat_bin, os.X_OK):
        sys.exit(f"run.py: {args.lowat_bin} is missing: build it with `ninja -C build`")
    if (os.cpu_count() or 1) < 2:
        sys.exit("run.py: needs two CPUs (proxy on 0, origin and load on 1)")

    # Load side: this script and everything it starts sit on CPU 1 unless taskset says else.
    os.sched_setaffinity(0, {LOAD_CPU})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.idle_conns + 200:
        args.idle_conns = max(100, hard - 200)
        log(f"run.py: fd limit {hard}: idle connections reduced to {args.idle_conns}")

    instr_method = "not measured"
    if "instr" in figures:
        if perf_has_instructions():
            instr_method = f"perf stat -e instructions -p PID during h2load -c 10 -m 10 -n {args.instr_requests}"
        elif shutil.which("valgrind"):
            instr_method = (f"callgrind: (Ir of a run of 2,000 + N requests - Ir of a run of 2,000) / N, "
                            f"N = {args.instr_requests:,}, h2load -c 10 -m 10 on /100b, each run a fresh proxy "
                            "under valgrind --tool=callgrind (user-space instructions only)")
        else:
            figures.discard("instr")
            log("run.py: neither perf instructions nor valgrind: no instruction count")

    tmp = Path(tempfile.mkdtemp(prefix="lowat-peers-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    results = {n: {} for n in names}
    top = None
    D, W = args.duration, args.warm_up

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        cert, key = make_cert(tmp)
        origin = Origin(tmp)
        origin.start()
        # One lowat for the whole run: a copy taken now, so a rebuild of build/ during a long
        # run (others work in the same tree) cannot mix two binaries in one table.
        info = machine_info(args.lowat_bin)
        info["TCP congestion control"] = cc_description(origin.port)
        log(f"run.py: TCP congestion control: {info['TCP congestion control']}")
        lowat_copy = tmp / "lowat.bin"
        if any(n in LOWATS for n in names):
            shutil.copy2(args.lowat_bin, lowat_copy)
        proxies = {n: Proxy(n, tmp, cert, key, origin.port, str(lowat_copy)) for n in names}
        log(f"run.py: origin nginx on 127.0.0.1:{origin.port} (CPU {LOAD_CPU}); "
            f"{args.rounds} round(s) of {', '.join(names)}; {D:g} s runs; temp dir {tmp}")
        per_round = figures & {"idle", "small", "large", "tls"}
        for rnd in range(1, args.rounds + 1 if per_round else 1):
            # Interleave: each round visits every proxy, the order rotated by one each round.
            order = names[(rnd - 1) % len(names):] + names[:(rnd - 1) % len(names)]
            for n in order:
                p = proxies[n]
                res = results[n]
                t0 = time.monotonic()
                p.start()

                def measured(fn, *a, **kw):
                    """fn's result, measured again (up to --retries times) when other processes
                    took CPU 0 during it; the least disturbed attempt is kept."""
                    best = None
                    for attempt in range(1, args.retries + 2):
                        quiet, waited = wait_quiet(args.quiet_wait) if args.quiet_wait > 0 else (None, 0.0)
                        r = fn(*a, **kw)
                        r.update(quiet=quiet, waited_s=waited, attempts=attempt, other_cpu0_pct=other_on_cpu0(r))
                        if best is None or r["other_cpu0_pct"] < best["other_cpu0_pct"]:
                            best = r
                        if r["other_cpu0_pct"] <= OTHER_CPU0_PCT:
                            break
                        log(f"run.py: {n}: {r['other_cpu0_pct']:.0f} % of CPU 0 went to other processes: measuring again")
                    best["attempts"] = attempt
                    return best

                rss_start_kb = rss_kb(p.pid)
                try:
                    if "idle" in figures:
                        res.setdefault("idle", []).append(measured(idle_connections, p.pid, p.port, args.idle_conns))
                    runs = []
                    if "small" in figures:
                        runs += [("small_c100_m10", "100b", 100, 10, True), ("small_c10_m100", "100b", 10, 100, True)]
                    if "large" in figures:
                        runs += [("16k_c10_m10", "16k", 10, 10, False), ("1m_c4_m1", "1m", 4, 1, False)]
                    for fig, path, c, m, lat in runs:
                        r = measured(load_run, p, path, c, m, D, W, tmp, lat)
                        res.setdefault(fig, []).append(r)
                        if p.p.poll() is not None:
                            raise RuntimeError(f"{n} died during {fig}:\n" + p.output()[-3000:])
                    if "tls" in figures:
                        res.setdefault("tls_full", []).append(measured(handshake_loop, p.pid, p.port, D, resume=False))
                        res.setdefault("tls_resumed", []).append(measured(handshake_loop, p.pid, p.port, D, resume=True))
                    if runs or "tls" in figures:
                        # What the proxy keeps once the load is gone (every client has closed).
                        time.sleep(0.5)
                        res.setdefault("rss", []).append({"start_mb": rss_start_kb / 1024,
                                                          "after_mb": rss_kb(p.pid) / 1024})
                finally:
                    p.stop()
                brief = []
                for fig, key in (("small_c100_m10", "rps"), ("small_c100_m10", "cpu_us_per_req"),
                                 ("1m_c4_m1", "mbps"), ("tls_full", "cpu_us_per_hs"), ("idle", "kb_per_conn")):
                    if res.get(fig):
                        brief.append(f"{fig} {key} {fmt(res[fig][-1].get(key))}")
                log(f"run.py: round {rnd} {n} ({time.monotonic() - t0:.0f} s, {'/'.join(p.handshake)}): "
                    + "; ".join(brief))
                if fig_warn := [r.get("warning") for f in LOAD_FIGURES for r in res.get(f, [])[-1:] if r.get("warning")]:
                    log(f"run.py: {n}: " + "; ".join(fig_warn))

        if "instr" in figures:
            for n in names:
                p = proxies[n]
                log(f"run.py: instructions per request for {n} ({instr_method.split(':')[0]})")
                if instr_method.startswith("perf"):
                    r = instructions_perf(p, args.instr_requests)
                else:
                    r = instructions_callgrind(p, 2000, 2000 + args.instr_requests)
                    if n == "lowat" and r.get("top"):
                        top = (f"{2000 + args.instr_requests:,}-request", r["top"])
                if r:
                    results[n]["instr"] = [r]

        profile = None
        if "profile" in figures and "lowat" in names and shutil.which("perf"):
            log("run.py: perf record of lowat during h2load -c 100 -m 10")
            try:
                profile = perf_profile(proxies["lowat"], D, W, tmp)
            except (subprocess.SubprocessError, OSError) as e:
                log(f"run.py: perf record failed: {e}")

        out = tables(results, names)
        print(out)
        for line in step_aside(results, names):
            print(line)
        for line in notes(results, names):
            print(line)
        if top:
            print("\nlowat, top 10 functions by instructions (callgrind, self cost, % of all):")
            for c, f in top[1]:
                print(f"  {c:5.1f} %  {f}")
        if profile:
            print("\nlowat, top 10 symbols by CPU time (perf record -e cpu-clock, user and kernel):")
            for c, f in profile:
                print(f"  {c:5.1f} %  {f}")
        cmds = [
            f"load:   taskset -c 1 h2load -t 1 -c C -m M -D {int(D * 1000)}ms --warm-up-time={int(W * 1000)}ms "
            f"--tls13-ciphers={TLS13_CIPHER} [--log-file=F] https://127.0.0.1:PORT/{{100b,16k,1m}}",
            "        (C,M) = (100,10) and (10,100) on /100b, (10,10) on /16k, (4,1) on /1m",
            "tls:    this script's client (Python ssl, TLS 1.3, ALPN h2, 8 threads, CPU 1): connect, handshake, "
            "client preface + SETTINGS, wait for the server's SETTINGS and ACK, close; resumed: session= the "
            "thread's latest ticket",
            f"idle:   {args.idle_conns} connections opened one after another the same way and kept open; "
            "VmRSS from /proc/PID/status before and 0.5 s after",
            "cpu:    utime+stime from /proc/PID/stat, sampled inside the measured window (past the warm-up)",
        ]
        if results_path:
            write_results(results_path, args, info, results, names,
                          list(proxies.values()), origin, cmds, instr_method, top, profile)
            log(f"run.py: wrote {results_path}")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1, default=str))
        origin.stop()
        return 0
    except KeyboardInterrupt:
        log("run.py: interrupted")
        return 130
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        log(f"run.py: {e}")
        return 1
    finally:
        stop_all()
        if args.keep_tmp:
            log(f"run.py: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
