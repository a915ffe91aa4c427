# SPDX-License-Identifier: MIT
"""HTTP/2 over cleartext: prior knowledge and the HTTP/1.1 Upgrade: h2c dance."""

import json

import pytest

from backend import pattern_sha256
from h1client import H1Conn, request_bytes
from h2client import H2Client
from runners import curl, nghttp


def test_h2c_h1_prior_knowledge_curl(lowat, backend):
    lw = lowat(backend())
    r = curl(lw.url("/echo", tls=False), "--http2-prior-knowledge")
    assert (r.rc, r.status, r.http_version) == (0, 200, "2"), r.stderr
    headers = {n.lower(): v for n, v in json.loads(r.body)["headers"]}
    assert headers["x-forwarded-proto"] == "http"


def test_h2c_h1_prior_knowledge_nghttp(lowat, backend):
    lw = lowat(backend())
    p = nghttp(lw.url("/name", tls=False))
    assert (p.returncode, p.stdout) == (0, b"app"), p.stderr


def test_h2c_h1_prior_knowledge_concurrent_streams(lowat, backend):
    lw = lowat(backend())
    c = H2Client(lw.clear_port, tls=False)
    n = 1 << 20
    sids = [c.request("GET", f"/bytes/{n}", keep_body=False) for _ in range(4)] + [c.request("GET", "/slow/200")]
    streams = c.wait_streams(sids, timeout=20)
    for st in streams[:4]:
        assert (st.status, st.body_len, st.sha256) == (200, n, pattern_sha256(n))
    assert (streams[4].status, bytes(streams[4].body)) == (200, b"slow\n")


def test_h2c_h1_upgrade_curl(lowat, backend):
    lw = lowat(backend())
    r = curl(lw.url("/name", tls=False), "--http2", "-v")
    assert "101 Switching Protocols" in r.stderr, r.stderr
    assert (r.rc, r.status, r.http_version, r.body) == (0, 200, "2", b"app"), r.stderr


def test_h2c_h1_upgrade_raw_then_more_streams(lowat, backend):
    """The upgraded request's answer arrives on stream 1; the connection then carries h2."""
    b = backend()
    lw = lowat(b)
    c = H2Client(lw.clear_port, tls=False, upgrade=True)
    c.upgrade("/echo?upgraded=1")
    st1 = c.wait_stream(1)
    assert st1.status == 200
    echo = json.loads(st1.body)
    assert echo["path"] == "/echo?upgraded=1"
    headers = {n.lower(): v for n, v in echo["headers"]}
    assert "upgrade" not in headers and "http2-settings" not in headers
    st3 = c.get("/name")
    assert (st3.id, st3.status, bytes(st3.body)) == (3, 200, b"app")


def test_h2c_upgrade_ignored_on_tls_listener(lowat, backend):
    """Upgrade: h2c over TLS must not switch protocols (RFC 9113 section 3.1); it is plain h1."""
    lw = lowat(backend())
    c = H1Conn(lw.tls_port, tls=True)
    c.send(request_bytes("GET", "/name", "localhost", headers=[("Connection", "Upgrade, HTTP2-Settings"),
                                                                ("Upgrade", "h2c"),
                                                                ("HTTP2-Settings", "AAMAAABkAAQAAP__")]))
    r = c.read_response()
    assert (r.status, bytes(r.body)) == (200, b"app")


@pytest.mark.parametrize("settings", [["AAMAAABkAAQAAP__", "AAMAAABkAAQAAP__"], ["AAIAAAAF"], ["AAT_____"], ["AAUAAAAA"]],
                         ids=["two-fields", "enable-push-5", "window-2^32-1", "max-frame-0"])
def test_h2c_upgrade_refused_for_bad_http2_settings_served_over_h1(lowat, backend, settings):
    """An upgrade whose HTTP2-Settings field comes twice (RFC 7540 section 3.2.1), or carries a
    value no SETTINGS frame may (ENABLE_PUSH 5, a window of 2^32-1, a frame size of 0), is not
    switched to HTTP/2: the request is answered over HTTP/1.1, and only once."""
    b = backend()
    lw = lowat(b)
    c = H1Conn(lw.clear_port)
    c.send(request_bytes("GET", "/name", "localhost",
                         headers=[("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c")]
                         + [("HTTP2-Settings", s) for s in settings]))
    r = c.read_response()
    assert (r.status, bytes(r.body)) == (200, b"app"), r
    assert len(b.requests) == 1
