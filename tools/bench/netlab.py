# SPDX-License-Identifier: MIT
"""What the benchmarks that run across tools/linkem share: running commands, starting and
stopping the processes they own (by PID only), the emulated link between a client and a
server network namespace (198.18.0.0/30, RFC 2544's benchmarking range), and the host's
description for RESULTS.md. Python standard library only."""

import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from string import Template

REPO = Path(__file__).resolve().parent.parent.parent
ADDR_C = "198.18.0.1"  # the client namespace
ADDR_S = "198.18.0.2"  # the server namespace

children = []  # every Popen started through spawn(): stopped by PID on the way out
namespaces = []  # namespaces this run asked linkem to create (deleted if left behind)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, check=True, timeout=60, **kw):
    return subprocess.run([str(c) for c in cmd], check=check, timeout=timeout, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, **kw)


def is_installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return r.stdout.strip() == "install ok installed"


def install(packages):
    """Install what is missing through tools/deps.sh, which keeps Debian from starting the
    packages' services during the install (the benchmark runs its own instances)."""
    if any(not is_installed(p) for p in packages):
        subprocess.run([str(REPO / "tools" / "deps.sh"), *packages], check=True, timeout=1500)


def render(template_path, dest, **values):
    """Write template_path with $NAME placeholders filled in to dest."""
    dest.write_text(Template(Path(template_path).read_text()).substitute(**{k: str(v) for k, v in values.items()}))
    return dest


def spawn(cmd, logfile, ns=None, cpu=None):
    """Start cmd inside namespace ns and/or pinned to CPU cpu (`ip netns exec` and `taskset`
    exec, so the PID is the program's)."""
    full = (["ip", "netns", "exec", ns] if ns else []) + (["taskset", "-c", str(cpu)] if cpu is not None else [])
    full += [str(c) for c in cmd]
    out = open(logfile, "ab")
    p = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    out.close()
    children.append(p)
    return p


def stop(p, timeout_s=10.0):
    """SIGTERM, SIGKILL after timeout_s: only ever a PID this run started."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in children:
        children.remove(p)


def stop_all(timeout_s=5.0):
    """Stop every program spawn() started and that is still running."""
    for p in list(children):
        stop(p, timeout_s)


def listening(ns, port):
    r = run(["ip", "netns", "exec", ns, "ss", "-ltnH", f"( sport = :{port} )"], check=False)
    return r.returncode == 0 and r.stdout.strip() != ""


def wait_listening(ns, port, p, logfile, timeout_s=10.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if p.poll() is not None:
            raise RuntimeError(f"exited with {p.returncode} before listening; log {logfile}:\n"
                               + Path(logfile).read_text()[-2000:])
        if listening(ns, port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"not listening on :{port} after {timeout_s}s; log {logfile}")


def find_linkem(work):
    """The built link emulator, or one compiled into work when the tree is not built."""
    built = REPO / "build" / "tools" / "linkem" / "lowat-linkem"
    if built.exists():
        return built
    out = work / "lowat-linkem"
    log(f"{built} not built: compiling tools/linkem/linkem.c into {out}")
    run(["gcc", "-std=gnu11", "-O2", "-D_GNU_SOURCE", f"-I{REPO}", REPO / "tools/linkem/linkem.c", "-o", out, "-lm"],
        timeout=120)
    return out


class Linkem:
    """lowat-linkem between namespaces ns_c (ADDR_C) and ns_s (ADDR_S), created for this run."""

    def __init__(self, binary, work, ns_c, ns_s, rtt_ms, rate, queue, duration_s, batch_ms=0):
        self.ns_c, self.ns_s = ns_c, ns_s
        self.logfile = work / f"linkem-{rtt_ms:g}.log"
        cmd = [binary, "--ns-a", ns_c, "--ns-b", ns_s, "--addr-a", f"{ADDR_C}/30", "--addr-b", f"{ADDR_S}/30",
               "--delay-ms", rtt_ms / 2, "--rate-mbit", rate, "--queue-pkts", queue,
               "--duration-s", duration_s, "--create"]
        if batch_ms:
            cmd += ["--batch-ms-a", batch_ms]  # the client's packets (its ACKs) arrive in batches
        namespaces.extend([ns_c, ns_s])
        self.p = spawn(cmd, self.logfile)
        end = time.monotonic() + 15
        while time.monotonic() < end:
            if "linkem ready:" in self.logfile.read_text():
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("linkem did not get ready:\n" + self.logfile.read_text())

    def close(self):
        """Stop it (it deletes its namespaces) and return its log, statistics included."""
        stop(self.p, 15)
        return self.logfile.read_text()


def cleanup_namespaces():
    have = run(["ip", "netns", "list"], check=False).stdout
    names = {line.split()[0] for line in have.splitlines() if line.strip()}
    for ns in namespaces:
        if ns in names:
            log(f"deleting namespace {ns} left behind")
            run(["ip", "netns", "del", ns], check=False)


def measure_ping(ns_c):
    """(min, avg) RTT in ms of 5 pings from the client namespace to the server, or (None, None)."""
    r = run(["ip", "netns", "exec", ns_c, "ping", "-n", "-q", "-c", "5", "-i", "0.2", ADDR_S], check=False, timeout=30)
    m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)", r.stdout)
    return (float(m.group(1)), float(m.group(2))) if m else (None, None)


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def machine_name():
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    deb = Path("/etc/debian_version")
    dist = f"Debian {deb.read_text().strip()}" if deb.exists() else platform.platform()
    return f"{os.cpu_count()} CPUs ({model}), {dist}"
