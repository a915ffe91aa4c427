# SPDX-License-Identifier: MIT
"""Load smoke tests with h2load: every request answered, none failed, lowat still healthy."""

from h2client import H2Client
from runners import h2load


def check(res, n):
    assert res.rc == 0, res.out
    assert (res.succeeded, res.failed, res.errored) == (n, 0, 0), res.out
    assert res.s2xx == n, res.out


def test_h2load_tls_h2_h1(lowat, backend):
    b = backend()
    lw = lowat(b)
    n = 20000
    res = h2load(lw.url("/name"), "-c", "50", "-m", "10", "-n", str(n), timeout=180)
    check(res, n)
    assert f"{n} succeeded, 0 failed" in res.out
    assert len(b.requests) == n
    assert H2Client(lw.tls_port).get("/name").status == 200


def test_h2load_h2c_prior_knowledge_h1(lowat, backend):
    lw = lowat(backend())
    n = 5000
    check(h2load(lw.url("/name", tls=False), "-c", "20", "-m", "10", "-n", str(n)), n)


def test_h2load_h1_keepalive(lowat, backend):
    b = backend()
    lw = lowat(b)
    n = 5000
    check(h2load(lw.url("/name", tls=False), "--h1", "-c", "20", "-n", str(n)), n)
    assert b.accepted <= 2 * 128  # at most max_connections per worker


def test_h2load_tls_h2_large_bodies(lowat, backend):
    lw = lowat(backend())
    n = 400
    res = h2load(lw.url(f"/bytes/{256 * 1024}"), "-c", "8", "-m", "4", "-n", str(n))
    check(res, n)
