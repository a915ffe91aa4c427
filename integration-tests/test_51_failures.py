# SPDX-License-Identifier: MIT
"""Origins that refuse, stall, die mid-response or drop idle keep-alive connections: the
client sees a clear status or a reset of that one stream, retries hide what can be hidden,
and the error log names the member."""

import hashlib
import json
import os
import re
import resource
import select
import socket
import threading
import time

import pytest

from backend import dead_port, pattern_bytes, pattern_sha256
from conftest import SLOW
from h1client import H1Conn, request_bytes
from h2client import INTERNAL_ERROR, H2Client
from runners import curl


def assert_logged(lw, addr, reason):
    """An error line names the member and says why (reason: a case-insensitive regex)."""
    line = lw.wait_log(r"(?i)" + re.escape(addr) + r".*(" + reason + ")")
    assert line, f"no error line names {addr} with a reason matching {reason!r}:\n{lw.stderr_text()}"


@pytest.fixture
def dead():
    socks = []

    def make():
        s, port = dead_port()
        socks.append(s)
        return f"127.0.0.1:{port}"
    yield make
    for s in socks:
        s.close()


def test_h2_h1_backend_unreachable_502(lowat, dead):
    addr = dead()
    lw = lowat([addr])
    c = H2Client(lw.tls_port)
    start = time.monotonic()
    st = c.get("/name")
    assert st.status == 502
    assert 0 < st.body_len < 1024, bytes(st.body)
    assert time.monotonic() - start < 5
    assert_logged(lw, addr, "refused|connect")
    assert c.get("/name").status == 502  # and the connection goes on


def test_h1_h1_backend_unreachable_502(lowat, dead):
    addr = dead()
    lw = lowat([addr])
    r = curl(lw.url("/name", tls=False), "--http1.1")
    assert r.status == 502 and 0 < len(r.body) < 1024, r


@pytest.mark.parametrize("front", ["h2", "h1"])
def test_backend_no_answer_504_after_response_timeout(lowat, backend, front):
    b = backend()
    lw = lowat(b, backend_opts={"response_timeout": "1s"})
    start = time.monotonic()
    if front == "h2":
        st = H2Client(lw.tls_port).get("/hang", timeout=10)
        status = st.status
    else:
        c = H1Conn(lw.clear_port)
        c.send(request_bytes("GET", "/hang", "localhost"))
        status = c.read_response(timeout=10).status
    elapsed = time.monotonic() - start
    assert status == 504
    assert 0.8 < elapsed < 3, f"504 after {elapsed:.2f}s with response_timeout 1s"
    assert_logged(lw, b.address, "time")
    # lowat gives up on the origin connection too
    assert b.wait_for(lambda: b.hang_released >= 1, 5), "lowat kept the timed-out origin connection open"


def test_h2_h1_backend_dies_mid_response_resets_only_that_stream(lowat, backend):
    b = backend()
    lw = lowat(b)
    n = 1_000_000
    c = H2Client(lw.tls_port, timeout=15)
    slow = c.request("GET", "/slow/500")
    dying = c.request("GET", f"/die-mid/{n}", keep_body=False)
    st_dying, st_slow = c.wait_streams([dying, slow])
    assert st_dying.reset_code == INTERNAL_ERROR, st_dying
    # What the backend sent before it died reaches the client before the reset.
    assert (st_dying.body_len, st_dying.sha256) == (n // 2, pattern_sha256(n // 2)), st_dying
    assert (st_slow.status, bytes(st_slow.body)) == (200, b"slow\n")
    st = c.get(f"/bytes/{n}", keep_body=False)  # the connection itself is healthy
    assert (st.status, st.body_len, st.sha256) == (200, n, pattern_sha256(n))
    assert_logged(lw, b.address, "clos|eof|reset|prematur|truncat|incomplete")


def test_h1_h1_backend_dies_mid_response_closes_connection(lowat, backend):
    b = backend()
    lw = lowat(b)
    n = 1_000_000
    c = H1Conn(lw.clear_port, keep_body=False)
    c.send(request_bytes("GET", f"/die-mid/{n}", "localhost"))
    r = c.read_response(timeout=10)
    assert not (r.status == 200 and r.complete), f"a truncated body was delivered as complete: {r}"
    assert (r.body_len, r.sha256) == (n // 2, pattern_sha256(n // 2)), f"not all the backend sent arrived: {r}"
    assert c.wait_closed(5), "lowat left the client connection open after a truncated response"


def test_h1tls_h1_backend_dies_mid_response_curl_sees_error(lowat, backend):
    lw = lowat(backend())
    n = 1_000_000
    r = curl(lw.url(f"/die-mid/{n}"), "-k", "--http1.1")
    assert r.rc != 0 and bytes(r.body) == pattern_bytes(n // 2), r


def test_retry_refused_member_then_skip_it(lowat, backend, dead):
    live = backend("live")
    dead_addr = dead()
    lw = lowat([dead_addr, live.address], workers=1,
               backend_opts={"max_fails": 3, "fail_backoff": "10s", "retries": 2})
    c = H2Client(lw.tls_port)
    for i in range(30):
        st = c.get(f"/name?i={i}")
        assert (st.status, bytes(st.body)) == (200, b"live"), i
    assert len(live.requests) == 30
    mentions = [line for line in lw.stderr_text().splitlines() if dead_addr in line]
    assert 1 <= len(mentions) <= 3 + 2, (
        f"the dead member was still tried after max_fails 3 ({len(mentions)} log lines):\n" + "\n".join(mentions))
    lines = lw.wait_access_lines(30)
    members = {line.split("member=")[1].split()[0] for line in lines if "member=" in line}
    assert members == {live.address}, members


@pytest.mark.parametrize("close_delay_ms", [0, 30], ids=["immediate", "after-30ms"])
def test_retry_when_origin_closed_keepalive_connection(lowat, backend, close_delay_ms):
    """The origin closes each connection after its response without saying so; the next request
    that lowat sends on it (or finds dead in the pool) still succeeds."""
    b = backend(close_after_response=True, close_delay_ms=close_delay_ms)
    lw = lowat(b, workers=1)
    c = H2Client(lw.tls_port)
    for i in range(10):
        st = c.get(f"/echo?i={i}")
        assert st.status == 200, (i, st, bytes(st.body))
    assert b.accepted >= 10
    h = H1Conn(lw.clear_port)
    for i in range(10):
        h.send(request_bytes("GET", f"/name?i={i}", "localhost"))
        r = h.read_response()
        assert (r.status, bytes(r.body)) == (200, b"app"), i


@pytest.mark.parametrize("idle,response", [("1s", "5s"), ("2s", "1s")])
def test_h2_h1_idle_backend_connection_closed_after_idle_timeout(lowat, backend, idle, response):
    """An idle keep-alive connection is closed idle_timeout after its last exchange, whether
    the response timeout before it was longer or shorter than that."""
    b = backend()
    lw = lowat(b, workers=1, backend_opts={"idle_timeout": idle, "response_timeout": response})
    c = H2Client(lw.tls_port)
    for _ in range(3):
        assert c.get("/name").status == 200
    idle_s = float(idle.rstrip("s"))
    done = time.monotonic()
    assert b.accepted == 1
    time.sleep(idle_s / 2)
    assert b.snapshot()["open"] == 1, "closed long before its idle timeout"
    assert b.wait_for(lambda: b.open == 0, timeout=idle_s + 3), "still open well past its idle timeout"
    elapsed = time.monotonic() - done
    assert idle_s * 0.8 < elapsed < idle_s + 2, f"closed {elapsed:.2f}s after the last exchange with idle {idle}"
    # A new request after that opens a new connection and works.
    assert c.get("/name").status == 200
    assert b.accepted == 2


def test_h1_h1_upload_slower_than_response_timeout_completes(lowat, backend):
    """response_timeout runs from the request being fully sent: an upload that keeps coming,
    slower in all than the timeout, is not cut off while the origin takes it."""
    b = backend()
    lw = lowat(b, backend_opts={"response_timeout": "1s"})
    body = bytes(range(256)) * 40  # 10,240 bytes
    c = H1Conn(lw.clear_port)
    c.send(request_bytes("POST", "/echo", "localhost", headers=[("Content-Length", str(len(body)))]))
    for i in range(0, len(body), 1024):
        time.sleep(0.25)
        c.send(body[i:i + 1024])
    r = c.read_response(timeout=10)
    assert r.status == 200, r
    assert json.loads(r.body)["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_h1_h1_origin_taking_none_of_an_upload_504_and_blamed(lowat):
    """An origin that accepts and never reads: once it has taken none of the body for
    response_timeout, the client gets a 504 and the member is counted as failing."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    held = []
    acceptor = threading.Thread(target=lambda: held.append(srv.accept()[0]), daemon=True)
    acceptor.start()
    try:
        addr = f"127.0.0.1:{srv.getsockname()[1]}"
        lw = lowat([addr], backend_opts={"response_timeout": "1s", "max_fails": 1})
        c = H1Conn(lw.clear_port, timeout=10)
        c.send(request_bytes("POST", "/up", "localhost", headers=[("Content-Length", "50000000")]))
        c.sock.setblocking(False)
        start = time.monotonic()
        while time.monotonic() - start < 8 and not select.select([c.sock], [], [], 0)[0]:
            try:
                c.sock.send(b"x" * 65536)
            except BlockingIOError:
                time.sleep(0.01)
        c.sock.setblocking(True)
        r = c.read_response(timeout=5)
        assert r.status == 504, r
        assert_logged(lw, addr, "took none of the request")
        assert lw.wait_log(r"marked down"), lw.stderr_text()
    finally:
        srv.close()
        for s in held:
            s.close()


def test_h1_h1_stalled_upload_408_without_blaming_the_member(lowat, backend):
    """A client that stops sending its body: after its idle timeout it gets a 408, and the
    origin, which took every byte it was given, is not counted as failing."""
    b = backend()
    lw = lowat(b, backend_opts={"response_timeout": "1s", "max_fails": 1}, limits={"client_idle_timeout": "2s"})
    c = H1Conn(lw.clear_port)
    start = time.monotonic()
    c.send(request_bytes("POST", "/echo", "localhost", headers=[("Content-Length", "10000")]) + b"x" * 1000)
    r = c.read_response(timeout=10)
    elapsed = time.monotonic() - start
    assert r.status == 408, r
    assert 1.8 < elapsed < 2 + 2 * SLOW, f"408 after {elapsed:.2f}s with client_idle_timeout 2s"
    assert "marked down" not in lw.stderr_text(), lw.stderr_text()
    c2 = H1Conn(lw.clear_port)
    c2.send(request_bytes("GET", "/name", "localhost"))
    assert c2.read_response(timeout=5).status == 200


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_h1_h1_out_of_descriptors_503_without_blaming_the_member(lowat, backend):
    """lowat at its own descriptor limit: a request that needs a new backend connection gets a
    503 and a log line that names lowat's limit, the member is not counted as failing, and
    once descriptors are free again requests go through."""
    b = backend()
    lw = lowat(b, workers=1, backend_opts={"max_fails": 1, "fail_backoff": "60s"},
               limits={"client_header_timeout": "60s", "client_idle_timeout": "60s"})
    base = open_fds(lw.pid)
    keep = H1Conn(lw.clear_port, timeout=10 * SLOW)  # accepted now, its request sent once descriptors are out
    deadline = time.monotonic() + 5 * SLOW
    while open_fds(lw.pid) <= base and time.monotonic() < deadline:
        time.sleep(0.01)
    assert open_fds(lw.pid) > base, "lowat did not accept the first connection"
    # Room for 16 more, whatever lowat (or the sanitizer's runtime) holds open already; the
    # soft limit only, so it can be put back before lowat stops.
    soft, hard = resource.prlimit(lw.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(lw.pid, resource.RLIMIT_NOFILE, (open_fds(lw.pid) + 16, hard))
    idle = []
    try:
        for _ in range(48):  # the ones lowat cannot take wait in its listen backlog
            idle.append(socket.create_connection(("127.0.0.1", lw.clear_port), timeout=5 * SLOW))
        assert lw.wait_log(r"accept: Too many open files", timeout=5 * SLOW), lw.stderr_text()
        keep.send(request_bytes("GET", "/name", "localhost"))
        r = keep.read_response(timeout=5 * SLOW)
        assert r.status == 503, r
        assert lw.wait_log(r"cannot connect to member " + re.escape(b.address) + r".*lowat's own limit"), \
            lw.stderr_text()
        for s in idle:
            s.close()
        idle = []
        status, deadline = None, time.monotonic() + 10 * SLOW
        while status != 200 and time.monotonic() < deadline:  # until lowat has closed what it accepted
            c = H1Conn(lw.clear_port, timeout=5 * SLOW)
            c.send(request_bytes("GET", "/name", "localhost"))
            status = c.read_response(timeout=5 * SLOW).status
            c.close()
            if status != 200:
                time.sleep(0.1)
        assert status == 200, lw.stderr_text()
        assert "marked down" not in lw.stderr_text(), lw.stderr_text()
    finally:
        for s in idle:
            s.close()
        keep.close()
        resource.prlimit(lw.pid, resource.RLIMIT_NOFILE, (soft, hard))
