# SPDX-License-Identifier: MIT
"""Smoke test of the peer benchmark (tools/bench/peers/run.py): its --quick mode, lowat only,
runs end to end against the binary under test, in the network namespace it makes for the run,
and reports a request rate."""

import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import LOWAT_BIN, REPO, SLOW

RUN = REPO / "tools" / "bench" / "peers" / "run.py"
PYTHON = "/usr/bin/python3"  # Debian's, like the rest of the suite


def missing_tools():
    need = {"h2load": "nghttp2-client", "nginx": "nginx-light", "taskset": "util-linux", "openssl": "openssl"}
    return [f"{tool} ({pkg})" for tool, pkg in need.items() if not shutil.which(tool)]


def namespaces():
    p = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    return {line.split()[0] for line in p.stdout.splitlines() if line.strip()} if p.returncode == 0 else None


def current_cc():
    with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
        return f.read().strip()


def test_bench_peers_quick_lowat():
    missing = missing_tools()
    if missing:
        pytest.skip("the benchmark's tools are not installed: " + ", ".join(missing)
                    + "; tools/bench/deps.sh installs them")
    if (os.cpu_count() or 1) < 2:
        pytest.skip("the benchmark pins the proxy and the load to two different CPUs")
    # The run makes a network namespace of its own when it may; otherwise the machine's.
    before = namespaces() if os.geteuid() == 0 and shutil.which("ip") else None
    if before is not None:
        # Not the machine's default, so that only the namespace's routes can have set it.
        cc = "reno" if current_cc() != "reno" else "cubic"
        args = ["--cc", cc]
    else:
        cc, args = current_cc(), ["--cc", "system"]
    t0 = time.monotonic()
    p = subprocess.run([PYTHON, str(RUN), "--quick", "--only", "lowat", "--lowat-bin", str(LOWAT_BIN)] + args,
                       capture_output=True, text=True, timeout=120 * SLOW)
    elapsed = time.monotonic() - t0
    out = p.stdout + "\n" + p.stderr
    assert p.returncode == 0, out
    assert elapsed < 30 * SLOW, f"--quick took {elapsed:.1f} s\n{out}"
    rates = [float(v.replace(",", "")) for v in re.findall(r"^\| req/s \(higher is better\) \| ([\d,.]+) \|", p.stdout,
                                                            re.M)]
    assert rates, out
    assert all(r > 0 for r in rates), out
    assert "TLSv1.3/TLS_AES_128_GCM_SHA256/h2" in p.stderr, out
    # The congestion control the run's connections got, read back from a real socket.
    where = "network namespace" if before is not None else "the machine's default"
    assert re.search(rf"TCP congestion control: {cc} \(.*{where}", p.stderr), out
    if before is not None:
        assert namespaces() == before, f"the run's namespace was left behind\n{out}"
