# SPDX-License-Identifier: MIT
"""HTTP/2 over TLS in front of HTTP/1.1 origins: real clients, concurrency, bodies both ways
with flow control."""

import hashlib
import json
import os
import socket
import ssl
import struct
import time

import h2.settings
import pytest

from backend import pattern_bytes, pattern_sha256
from conftest import parse_access_line
from h2client import H2Client, client_tls_context
from runners import curl, nghttp


def test_h2_h1_get_curl(lowat, backend):
    lw = lowat(backend())
    r = curl(lw.url("/echo/x?q=1"), "-k", "--http2")
    assert (r.rc, r.status, r.http_version) == (0, 200, "2"), r.stderr
    echo = json.loads(r.body)
    assert (echo["method"], echo["path"], echo["version"]) == ("GET", "/echo/x?q=1", "HTTP/1.1")


def test_h2_h1_get_nghttp(lowat, backend):
    lw = lowat(backend())
    p = nghttp(lw.url("/name"), "-v")
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out + p.stderr.decode(errors="replace")
    assert ":status: 200" in out
    p = nghttp(lw.url("/name"))
    assert (p.returncode, p.stdout) == (0, b"app"), p.stderr


def test_h2_h1_many_concurrent_streams(lowat, backend):
    """100 streams on one connection, each waiting 300 ms at the origin, finish together."""
    b = backend()
    lw = lowat(b, workers=1)
    c = H2Client(lw.tls_port)
    start = time.monotonic()
    sids = [c.request("GET", f"/slow/300?i={i}") for i in range(100)]
    streams = c.wait_streams(sids, timeout=20)
    elapsed = time.monotonic() - start
    assert [s.status for s in streams] == [200] * 100
    assert all(bytes(s.body) == b"slow\n" for s in streams)
    assert elapsed < 10, f"100 x 300 ms took {elapsed:.1f}s: streams were not concurrent"
    assert b.max_open > 1


class RecordBatchingSocket:
    """TLS over a plain socket that can hold its records back and send many in one write, so
    that the proxy finds them all in one read."""

    def __init__(self, port):
        self.raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = client_tls_context().wrap_bio(self.inc, self.out, server_hostname="localhost")
        self.held = False
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.raw.sendall(self.out.read())
                self.inc.write(self.raw.recv(65536))
        self.raw.sendall(self.out.read())

    def selected_alpn_protocol(self):
        return self.obj.selected_alpn_protocol()

    def settimeout(self, t):
        self.raw.settimeout(t)

    def sendall(self, data):
        self.obj.write(data)
        if not self.held:
            self.raw.sendall(self.out.read())

    def release(self):
        self.held = False
        self.raw.sendall(self.out.read())

    def recv(self, n):
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                data = self.raw.recv(65536)
                if not data:
                    return b""
                self.inc.write(data)

    def close(self):
        self.raw.close()


def test_h2_h1_many_records_in_one_read(lowat, backend):
    """Forty requests, each in its own TLS record, reach the proxy in one write: all are
    answered, also those left over when a read event stops early to let others run."""
    lw = lowat(backend(), workers=1)
    s = RecordBatchingSocket(lw.tls_port)
    c = H2Client(lw.tls_port, sock=s)
    c.wait_for(lambda: c.remote_settings_seen, what="the server's SETTINGS")
    s.held = True
    sids = [c.request("GET", f"/echo/r{i}") for i in range(40)]
    s.release()
    streams = c.wait_streams(sids, timeout=10)
    assert [st.status for st in streams] == [200] * 40
    assert [json.loads(bytes(st.body))["path"] for st in streams] == [f"/echo/r{i}" for i in range(40)]
    c.close()


def test_h2_advertises_max_concurrent_streams(lowat, backend):
    lw = lowat(backend(), limits={"max_concurrent_streams": 7})
    c = H2Client(lw.tls_port)
    c.wait_for(lambda: c.remote_settings_seen, what="server SETTINGS")
    assert c.conn.remote_settings.max_concurrent_streams == 7


def test_h2_h1_post_with_content_length(lowat, backend):
    b = backend()
    lw = lowat(b)
    body = os.urandom(300_000)
    c = H2Client(lw.tls_port)
    st = c.wait_stream(c.request("POST", "/echo", headers=[("content-length", str(len(body)))], body=body))
    assert st.status == 200
    echo = json.loads(st.body)
    assert echo["body_len"] == len(body)
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert echo["method"] == "POST"


@pytest.mark.parametrize("separate_end", [False, True], ids=["end_on_last_data", "end_on_empty_data"])
def test_h2_h1_post_without_content_length(lowat, backend, separate_end):
    """No content-length on h2: the origin must still get the whole body (chunked or counted),
    whether END_STREAM rides on the last DATA frame or on an empty one after it."""
    b = backend()
    lw = lowat(b)
    body = pattern_bytes(2_000_000)
    c = H2Client(lw.tls_port)
    st = c.wait_stream(c.request("POST", "/echo", body=body, separate_end=separate_end), timeout=10)
    assert st.status == 200
    echo = json.loads(st.body)
    assert (echo["body_len"], echo["body_sha256"]) == (len(body), pattern_sha256(len(body)))
    framing = {n.lower(): v for n, v in echo["headers"] if n.lower() in ("content-length", "transfer-encoding")}
    assert framing in ({"transfer-encoding": "chunked"}, {"content-length": str(len(body))}), framing


def test_h2_h1_upload_beyond_initial_window(lowat, backend):
    """8 MiB up with the default 64 KiB windows: lowat must keep sending WINDOW_UPDATE."""
    lw = lowat(backend())
    n = 8 << 20
    c = H2Client(lw.tls_port, timeout=30)
    sid = c.request("PUT", "/echo", headers=[("content-length", str(n))], body=pattern_bytes(n))
    st = c.wait_stream(sid)
    echo = json.loads(st.body)
    assert (st.status, echo["body_len"], echo["body_sha256"]) == (200, n, pattern_sha256(n))


def test_h2_h1_download_with_small_client_window(lowat, backend):
    """8 MiB down through a 16 KiB stream window that the client reopens as it reads."""
    lw = lowat(backend())
    n = 8 << 20
    c = H2Client(lw.tls_port, timeout=30, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16384})
    st = c.wait_stream(c.request("GET", f"/bytes/{n}", keep_body=False))
    assert (st.status, st.body_len, st.sha256) == (200, n, pattern_sha256(n))
    assert st.header("content-length") == str(n)


def test_h2_h1_parallel_downloads_interleave(lowat, backend):
    """Two 4 MiB responses on one connection both complete intact."""
    lw = lowat(backend())
    n = 4 << 20
    c = H2Client(lw.tls_port, timeout=30)
    sids = [c.request("GET", f"/bytes/{n}", keep_body=False), c.request("GET", f"/chunked/{n}", keep_body=False)]
    for st in c.wait_streams(sids):
        assert (st.status, st.body_len, st.sha256) == (200, n, pattern_sha256(n))


def test_h2_h1_head_has_no_body(lowat, backend):
    lw = lowat(backend())
    c = H2Client(lw.tls_port)
    st = c.wait_stream(c.request("HEAD", "/bytes/1000"))
    assert (st.status, st.body_len) == (200, 0)
    assert st.header("content-length") == "1000"


def test_h2_h1_status_codes_pass_through(lowat, backend):
    lw = lowat(backend())
    c = H2Client(lw.tls_port)
    sids = {code: c.request("GET", f"/status/{code}") for code in (201, 204, 404, 418, 500, 503)}
    c.wait_streams(sids.values())
    for code, sid in sids.items():
        st = c.streams[sid]
        assert st.status == code
        assert bytes(st.body) == (b"" if code == 204 else f"status {code}\n".encode())


def test_h2_h1_many_sequential_streams_one_connection(lowat, backend):
    """More streams over a connection's life than max_concurrent_streams allows at once."""
    lw = lowat(backend(), limits={"max_concurrent_streams": 10})
    c = H2Client(lw.tls_port)
    for batch in range(5):
        sids = [c.request("GET", "/name") for _ in range(10)]
        assert [s.status for s in c.wait_streams(sids)] == [200] * 10


def _send_priority_update(c, sid, value):
    """A raw RFC 9218 PRIORITY_UPDATE frame (type 0x10, on stream 0) for stream sid."""
    payload = struct.pack(">I", sid) + value.encode()
    c.sock.sendall(struct.pack(">I", len(payload))[1:] + bytes([0x10, 0]) + struct.pack(">I", 0) + payload)


def _script_behind_long_response(lw, b, js_headers=(), priority_update=None, early_update=None):
    """A 1 MB response fills the connection's flow-control window (the client gives none back),
    then a 1,000-byte script is asked for and, once the origin has sent all of it, the client
    opens the window by exactly 1,000 bytes. Returns (client, the script's stream, the long
    one's)."""
    c = H2Client(lw.tls_port, auto_ack=False, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24})
    big = c.request("GET", "/bytes/1000000")
    c.wait_for(lambda: c.streams[big].body_len == 65535, what="the connection window full of the long response")
    if early_update is not None:
        # RFC 9218 lets a client prioritize a stream before it opens it.
        _send_priority_update(c, c.conn.get_next_available_stream_id(), early_update)
    js = c.request("GET", "/bytes/1000?type=application/javascript", headers=js_headers)
    if priority_update is not None:
        _send_priority_update(c, js, priority_update)
    c.wait_for(lambda: c.streams[js].status is not None, what="the script's response headers")
    # The script's body must be with lowat before the window opens, or there is nothing to
    # prefer it by.
    assert b.wait_for(lambda: any(r["path"].startswith("/bytes/1000?") and r.get("responded") for r in b.requests)), \
        "the origin did not finish the script"
    c.conn.increment_flow_control_window(1000)
    c.flush()
    c.wait_for(lambda: c.streams[js].body_len + c.streams[big].body_len >= 65535 + 1000,
               what="the 1,000 bytes of window spent")
    c.pump(0.2)  # nothing more may come, but let it show if it does
    return c, c.streams[js], c.streams[big]


def test_h2_unsignalled_script_goes_ahead_of_a_long_response(lowat, backend):
    """Without a priority signal from the client, a script (or stylesheet) response takes
    precedence over the default-urgency streams it shares the connection with, and is sent whole."""
    b = backend()
    lw = lowat(b)
    c, js, big = _script_behind_long_response(lw, b)
    assert (js.body_len, js.ended, big.body_len) == (1000, True, 65535), (js, big)
    c.close()


@pytest.mark.parametrize("signal", [{"js_headers": [("priority", "u=6")]}, {"priority_update": "u=6"},
                                    {"early_update": "u=6"}],
                         ids=["header", "priority-update-after", "priority-update-before-headers"])
def test_h2_client_priority_signal_wins_over_the_content_type(lowat, backend, signal):
    """A client that says how urgent its request is gets what it said (RFC 9218): a script it
    marks u=6 waits behind the default-urgency long response, whether it says so in a priority
    header, in a PRIORITY_UPDATE frame after the request, or in one before its HEADERS."""
    b = backend()
    lw = lowat(b)
    c, js, big = _script_behind_long_response(lw, b, **signal)
    assert (js.body_len, js.ended, big.body_len) == (0, False, 65535 + 1000), (js, big)
    c.close()


def test_h2_cancelled_uploads_give_the_connection_window_back(lowat, backend):
    """Uploads that wait for a busy origin, each sending a stream window of body beyond what
    lowat buffers, then cancelled: the bytes lowat held back from the window must return to the
    connection's window with the stream. 300 of them send more than the 16 MiB it starts with,
    so with the bytes lost an upload on the same connection could never move again."""
    b = backend()
    lw = lowat(b, workers=1, limits={"max_buffered_bytes": "1k"},
               backend_opts={"max_connections": 1, "queue": 64})
    c = H2Client(lw.tls_port, timeout=10)
    hang = c.request("GET", "/hang")  # holds the one origin connection: the uploads queue
    assert b.wait_requests(1, 5)
    sent = 0
    for i in range(300):
        sid = c.send_headers(c.headers_for("POST", f"/echo?i={i}"), end_stream=False)
        n = min(c.conn.local_flow_control_window(sid), 65535)
        for k in range(0, n, c.conn.max_outbound_frame_size):
            c.conn.send_data(sid, b"z" * min(c.conn.max_outbound_frame_size, n - k))
        sent += n
        c.pump(0.001)
        c.reset(sid)
    assert sent > 16 << 20, f"the uploads sent only {sent} bytes: the connection's window closed"
    c.reset(hang)
    body = b"y" * 300_000
    st = c.wait_stream(c.request("POST", "/echo?fresh=1", body=body), timeout=10)
    assert st.status == 200 and json.loads(st.body)["body_sha256"] == hashlib.sha256(body).hexdigest(), st


@pytest.mark.parametrize("kind", ["no-route", "connect"])
def test_h2_answered_stream_is_ended_while_the_client_still_sends(lowat, backend, kind):
    """A complete response to a request whose client has not ended its side (answered by
    lowat itself here: a 404 for no route, a 501 for CONNECT): lowat ends the stream with
    RST_STREAM(NO_ERROR) after it, so the stream does not hold one of the client's concurrent
    streams (5 here) for good, nor keep the connection from ever counting as idle."""
    lw = lowat(backend(), limits={"max_concurrent_streams": 5},
               routes=[{"host": "localhost", "path": "/", "backend": "app"}])
    c = H2Client(lw.tls_port)
    if kind == "no-route":
        sids = [c.request("POST", "/echo", authority="no.route.test", end_stream=False) for _ in range(5)]
    else:
        sids = [c.send_headers([(":method", "CONNECT"), (":authority", "localhost:443")]) for _ in range(5)]
    c.wait_for(lambda: all(c.streams[s].reset_code is not None for s in sids), timeout=5,
               what="the streams' ends")
    status = 404 if kind == "no-route" else 501
    assert [(c.streams[s].status, c.streams[s].reset_code) for s in sids] == [(status, 0)] * 5
    assert c.get("/name", authority="localhost").status == 200  # a sixth stream


@pytest.mark.parametrize("how", ["reset", "close"])
def test_h2_response_cut_short_after_the_backend_finished_is_logged_aborted(lowat, backend, how):
    """The backend has sent the whole response, but the client (a 100-byte window it never
    opens) has taken only part of it when it resets the stream or closes: the access log says
    the exchange was aborted, not that it succeeded."""
    b = backend()
    lw = lowat(b)
    c = H2Client(lw.tls_port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 100}, auto_ack=False)
    sid = c.request("GET", "/bytes/5000")
    c.wait_for(lambda: c.streams[sid].body_len >= 100, timeout=5, what="the first 100 bytes")
    time.sleep(0.3)  # the backend's response is long complete (5000 bytes on loopback)
    if how == "reset":
        c.reset(sid)
    else:
        c.close()
    assert lw.wait_access_lines(1, timeout=5)
    lines = [parse_access_line(x) for x in lw.access_log_lines()]
    assert len(lines) == 1 and lines[0]["status"] == "200" and lines[0].get("aborted") == "1", lines
