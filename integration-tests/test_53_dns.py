# SPDX-License-Identifier: MIT
"""Backend names resolved over DNS: lowat follows a name that moves, on the answer's TTL. Each
test runs lowat, a DNS server and two origins in namespaces of their own (dns_ns.py), where
/etc/resolv.conf points at that server."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SANITIZER_MARKERS, SLOW

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                reason="needs root and unshare(1) for its own mount and network namespaces")


def run_ns(lowat_bin, tmp_path, ttl_s, seconds):
    p = subprocess.run(["unshare", "--mount", "--net", "--", sys.executable, str(HERE / "dns_ns.py"),
                        str(lowat_bin), str(tmp_path), str(ttl_s), str(seconds)],
                       capture_output=True, text=True, timeout=seconds + 60)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["rc"] == 0 and not any(m in r["stderr"] for m in SANITIZER_MARKERS), r["stderr"]
    assert r["first"] == "two", r
    return r


def test_dns_name_moved_is_followed_after_its_ttl(lowat_bin, tmp_path):
    r = run_ns(lowat_bin, tmp_path, ttl_s=2, seconds=4 * SLOW)
    assert r["moved_at"] is not None, f"still on the old address {4 * SLOW} s after a 2 s TTL: {r}"
    assert r["moved_at"] < 3 * SLOW, r
    assert set(r["seen"]) <= {"two", "three"}, f"a request failed while the name moved: {r['seen']}"
    assert "(127.0.0.3:8080) added (ttl 2s)" in r["stderr"], r["stderr"]
    assert "(127.0.0.2:8080) left DNS; retiring it" in r["stderr"], r["stderr"]


def test_dns_ttl_of_weeks_does_not_become_a_lookup_a_second(lowat_bin, tmp_path):
    """A TTL of 4,294,968 s (about 50 days) once overflowed into a re-resolution every second."""
    r = run_ns(lowat_bin, tmp_path, ttl_s=4294968, seconds=3)
    assert len(r["queries"]) == 1, f"A queries at {r['queries']} s with a TTL of 50 days"
    assert r["moved_at"] is None, r
