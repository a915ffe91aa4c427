# SPDX-License-Identifier: MIT
"""Large transfers stream through with bounded memory, and a peer that stops reading (or an
origin that stops reading) makes lowat push back instead of buffering.

LOWAT_BIG_BYTES sets the size of the big transfers (default 1 GiB). The data is one random
1 MiB block repeated, so neither side builds it in memory; the client checks its sha256."""

import hashlib
import json
import os
import select
import socket
import subprocess
import threading
import time

import h2.settings
import pytest

from backend import BLOCK, pattern_sha256
from conftest import BIG_BYTES, RSS_LIMIT_KB, SLOW, RssSampler
from h1client import H1Conn, request_bytes
from h2client import H2Client

STALL_BYTES = 256 << 20  # what the origin would like to send to a client that does not read


STALL_S = 10 * SLOW  # a big transfer that makes no progress this long has stalled


def transfer_timeout(n):
    return 60 + n / (20 << 20) * SLOW  # at least 20 MB/s


def rss_msg(rss):
    return f"lowat's RSS grew by {rss.growth_kb // 1024} MiB (from {rss.baseline // 1024} MiB)"


def warm_up(lw):
    c = H2Client(lw.tls_port)
    assert c.get(f"/bytes/{4 << 20}", keep_body=False).status == 200
    c.close()


def kill(p):
    if p.poll() is None:
        p.kill()
    p.wait(10)


@pytest.mark.parametrize("front", ["h2", "h1tls"])
def test_download_big_bounded_memory(lowat, backend, front):
    """h2 (and h1 over TLS) client, h1 origin: LOWAT_BIG_BYTES down, intact, in bounded memory."""
    lw = lowat(backend(), workers=1)
    warm_up(lw)
    n = BIG_BYTES
    cmd = ["curl", "-sS", "-k", "--http2" if front == "h2" else "--http1.1",
           "--max-time", str(int(transfer_timeout(n))), "-o", "-", lw.url(f"/bytes/{n}")]
    sha = hashlib.sha256()
    got = 0
    stalled = False
    with RssSampler(lw) as rss:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            fd = p.stdout.fileno()
            while True:
                ready, _, _ = select.select([fd], [], [], STALL_S)
                if not ready:
                    stalled = True
                    break
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                sha.update(chunk)
                got += len(chunk)
        finally:
            kill(p)
    assert not stalled, f"the download stalled after {got} of {n} bytes"
    assert p.returncode == 0, p.stderr.read().decode(errors="replace")
    assert got == n
    assert sha.hexdigest() == pattern_sha256(n)
    assert rss.growth_kb < RSS_LIMIT_KB, rss_msg(rss)


def test_h2_h1_upload_big_bounded_memory(lowat, backend):
    lw = lowat(backend(), workers=1)
    warm_up(lw)
    n = BIG_BYTES
    cmd = ["curl", "-sS", "-k", "--http2", "--max-time", str(int(transfer_timeout(n))), "-T", "-",
           lw.url("/echo")]
    errors = []
    fed = [0]
    with RssSampler(lw) as rss:
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def feed():
            try:
                view = memoryview(BLOCK)
                while fed[0] < n:
                    take = min(n - fed[0], len(BLOCK))
                    p.stdin.write(view[:take])
                    fed[0] += take
            except (BrokenPipeError, OSError) as e:
                errors.append(repr(e))
            finally:
                try:
                    p.stdin.close()
                except OSError:
                    pass
        t = threading.Thread(target=feed, daemon=True)
        t.start()
        last, since = -1, time.monotonic()
        try:
            while p.poll() is None:  # watch progress: curl's stdin is fed as fast as lowat takes it
                try:
                    p.wait(0.5)
                except subprocess.TimeoutExpired:
                    pass
                if fed[0] != last:
                    last, since = fed[0], time.monotonic()
                elif time.monotonic() - since > STALL_S:
                    break
        finally:
            stalled = p.poll() is None
            kill(p)
            t.join(30)
        out = p.stdout.read()
    assert not stalled, f"the upload stalled after {fed[0]} of {n} bytes"
    assert p.returncode == 0 and not errors, (errors, p.stderr.read().decode(errors="replace"))
    echo = json.loads(out)
    assert (echo["method"], echo["body_len"], echo["body_sha256"]) == ("PUT", n, pattern_sha256(n))
    assert rss.growth_kb < RSS_LIMIT_KB, rss_msg(rss)


def wait_plateau(sample, pump, quiet=1.5, limit=15.0, cap=None):
    """Call pump() until sample() has not changed for `quiet` seconds (or passes cap);
    returns (value, plateaued)."""
    deadline = time.monotonic() + limit * SLOW
    last, since = sample(), time.monotonic()
    while time.monotonic() < deadline:
        pump()
        v = sample()
        if v != last:
            last, since = v, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return v, True
        if cap is not None and v > cap:
            return v, False
    return last, False


def test_h2_h1_stalled_client_window_bounds_buffering(lowat, backend):
    """The client reads the socket but never reopens its h2 windows: the origin must be paused."""
    b = backend()
    lw = lowat(b, workers=1)
    warm_up(lw)
    with RssSampler(lw) as rss:
        c = H2Client(lw.tls_port, auto_ack=False, timeout=20,
                     settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16384})
        sid = c.request("GET", f"/bytes/{STALL_BYTES}", keep_body=False)
        c.wait_for(lambda: c.streams[sid].status is not None, what="response head")
        sent, plateau = wait_plateau(lambda: b.sent_bytes, lambda: c.pump(0.1), cap=64 << 20)
        st = c.streams[sid]
    assert st.status == 200
    assert st.body_len <= 65535, "lowat sent more than the client's windows allowed"
    assert plateau and sent < (64 << 20), f"origin kept sending ({sent >> 20} MiB) to a client with closed windows"
    assert rss.growth_kb < RSS_LIMIT_KB, rss_msg(rss)
    # Reopen the windows: the body resumes where it stopped, in order.
    c.conn.acknowledge_received_data(st.body_len, sid)
    c.conn.increment_flow_control_window(16 << 20)
    c.conn.increment_flow_control_window(16 << 20, stream_id=sid)
    c.auto_ack = True
    c.flush()
    c.wait_for(lambda: st.body_len >= (8 << 20) or st.done, timeout=STALL_S,
               what="8 MiB more after reopening the window")
    assert st.sha256 == pattern_sha256(st.body_len), "the resumed body is not the origin's"
    c.reset(sid)
    assert c.get("/name").status == 200


def test_h1_h1_client_not_reading_bounds_buffering(lowat, backend):
    """An h1 client stops reading its socket: lowat stops reading the origin."""
    b = backend()
    lw = lowat(b, workers=1)
    warm_up(lw)
    with RssSampler(lw) as rss:
        c = H1Conn(lw.clear_port)
        c.send(request_bytes("GET", f"/bytes/{STALL_BYTES}", "localhost"))
        sent, plateau = wait_plateau(lambda: b.sent_bytes, lambda: time.sleep(0.1), cap=96 << 20)
    c.close()
    assert plateau and sent < (96 << 20), f"origin kept sending ({sent >> 20} MiB) to a client that reads nothing"
    assert rss.growth_kb < RSS_LIMIT_KB, rss_msg(rss)


def test_h2_h1_origin_not_reading_upload_bounds_buffering(lowat, backend):
    """The origin never reads the request body: lowat stops opening the client's window."""
    b = backend()
    lw = lowat(b, workers=1)
    warm_up(lw)
    c = H2Client(lw.tls_port, timeout=5)
    sid = c.request("POST", "/stall", end_stream=False)
    b.wait_requests(1)
    chunk = BLOCK[:16384]
    pushed = 0
    cap = 128 << 20
    with RssSampler(lw) as rss:
        deadline = time.monotonic() + 20 * SLOW
        closed_since = None
        while time.monotonic() < deadline and pushed < cap:
            window = min(c.conn.local_flow_control_window(sid), len(chunk))
            if window > 0:
                try:
                    c.send_raw_data(sid, chunk[:window])
                except socket.timeout:
                    break  # lowat stopped reading the socket: bounded too
                pushed += window
                closed_since = None
                continue
            closed_since = closed_since or time.monotonic()
            if time.monotonic() - closed_since > 1.5:
                break
            c.pump(0.1)
        assert not c.streams[sid].done, c.streams[sid]
    assert pushed < (64 << 20), f"lowat kept accepting upload data ({pushed >> 20} MiB) for an origin that reads none"
    assert rss.growth_kb < RSS_LIMIT_KB, rss_msg(rss)
