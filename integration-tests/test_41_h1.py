# SPDX-License-Identifier: MIT
"""HTTP/1.1 frontend (TLS with ALPN http/1.1, and cleartext) in front of HTTP/1.1 origins."""

import hashlib
import json
import os
import socket
import time

import pytest

from backend import pattern_bytes, pattern_sha256
from h1client import H1Conn, request_bytes
from runners import curl


def port_of(lw, tls):
    return lw.tls_port if tls else lw.clear_port


def test_h1_h1_get_curl_cleartext(lowat, backend):
    lw = lowat(backend())
    r = curl(lw.url("/name", tls=False), "--http1.1")
    assert (r.rc, r.status, r.http_version, r.body) == (0, 200, "1.1", b"app"), r.stderr


@pytest.mark.parametrize("tls", [False, True], ids=["cleartext", "tls"])
def test_h1_h1_keepalive_sequential(lowat, backend, tls):
    b = backend()
    lw = lowat(b)
    c = H1Conn(port_of(lw, tls), tls=tls)
    for i in range(5):
        c.send(request_bytes("GET", f"/echo?i={i}", "localhost"))
        r = c.read_response()
        assert r.status == 200 and r.complete
        assert json.loads(r.body)["path"] == f"/echo?i={i}"
    assert not c.wait_closed(0.2), "lowat closed a keep-alive connection"
    assert len(b.requests) == 5


def test_h1_h1_pipelined_requests_answered_in_order(lowat, backend):
    lw = lowat(backend())
    c = H1Conn(lw.clear_port)
    c.send(request_bytes("GET", "/slow/200", "localhost") + request_bytes("GET", "/name", "localhost")
           + request_bytes("GET", "/status/404", "localhost"))
    r1, r2, r3 = c.read_response(), c.read_response(), c.read_response()
    assert (r1.status, bytes(r1.body)) == (200, b"slow\n")
    assert (r2.status, bytes(r2.body)) == (200, b"app")
    assert r3.status == 404


@pytest.mark.parametrize("tls", [False, True], ids=["cleartext", "tls"])
def test_h1_h1_post_content_length(lowat, backend, tls):
    lw = lowat(backend())
    body = os.urandom(200_000)
    c = H1Conn(port_of(lw, tls), tls=tls)
    c.send(request_bytes("POST", "/echo", "localhost", body=body))
    r = c.read_response()
    echo = json.loads(r.body)
    assert (r.status, echo["body_len"], echo["body_sha256"]) == (200, len(body), hashlib.sha256(body).hexdigest())
    assert echo["method"] == "POST"


def test_h1_h1_post_chunked(lowat, backend):
    lw = lowat(backend())
    parts = [b"hello ", os.urandom(70000), b"", b"world"]
    raw = request_bytes("POST", "/echo", "localhost", headers=[("Transfer-Encoding", "chunked")])
    for p in parts:
        if p:
            raw += b"%x;ext=1\r\n" % len(p) + p + b"\r\n"
    raw += b"0\r\nX-Trailer: t\r\n\r\n"
    c = H1Conn(lw.clear_port)
    c.send(raw)
    r = c.read_response()
    whole = b"".join(parts)
    echo = json.loads(r.body)
    assert (r.status, echo["body_len"], echo["body_sha256"]) == (200, len(whole), hashlib.sha256(whole).hexdigest())
    # the connection is still good for the next request
    c.send(request_bytes("GET", "/name", "localhost"))
    assert bytes(c.read_response().body) == b"app"


def test_h1_h1_post_chunked_curl(lowat, backend):
    lw = lowat(backend())
    body = pattern_bytes(3_000_000)
    r = curl(lw.url("/echo", tls=False), "--http1.1", "-H", "Transfer-Encoding: chunked", "--data-binary", "@-",
             input_bytes=body)
    echo = json.loads(r.body)
    assert (r.status, echo["body_len"], echo["body_sha256"]) == (200, len(body), pattern_sha256(len(body)))


def test_h1_h1_response_content_length_kept(lowat, backend):
    lw = lowat(backend())
    c = H1Conn(lw.clear_port)
    c.send(request_bytes("GET", "/bytes/5000", "localhost"))
    r = c.read_response()
    assert (r.status, r.header("content-length"), r.chunked) == (200, "5000", False)
    assert (r.body_len, r.sha256) == (5000, pattern_sha256(5000))


@pytest.mark.parametrize("mode", ["chunked", "close-delimited"])
def test_h1_h1_response_reframed_chunked(lowat, backend, mode):
    """Bodies without a length reach an h1 client chunked, complete, on a connection that stays open."""
    lw = lowat(backend())
    n = 300_000
    c = H1Conn(lw.clear_port)
    c.send(request_bytes("GET", f"/{mode}/{n}", "localhost"))
    r = c.read_response()
    assert r.status == 200 and r.complete
    assert (r.body_len, r.sha256) == (n, pattern_sha256(n))
    assert r.chunked, r.headers
    c.send(request_bytes("GET", "/name", "localhost"))
    assert bytes(c.read_response().body) == b"app"


def test_h1_h1_head_and_204_leave_connection_usable(lowat, backend):
    lw = lowat(backend())
    c = H1Conn(lw.clear_port)
    c.send(request_bytes("HEAD", "/bytes/1000", "localhost"))
    r = c.read_response(method="HEAD")
    assert (r.status, r.header("content-length"), r.body_len) == (200, "1000", 0)
    c.send(request_bytes("GET", "/status/204", "localhost"))
    assert c.read_response().status == 204
    c.send(request_bytes("GET", "/name", "localhost"))
    r = c.read_response()
    assert (r.status, bytes(r.body)) == (200, b"app")


def test_h1_h1_connection_close_honoured(lowat, backend):
    lw = lowat(backend())
    c = H1Conn(lw.clear_port)
    c.send(request_bytes("GET", "/name", "localhost", headers=[("Connection", "close")]))
    r = c.read_response()
    assert (r.status, bytes(r.body)) == (200, b"app")
    assert c.wait_closed(3), "lowat kept the connection open after Connection: close"


def test_h1_h1_expect_100_continue_curl(lowat, backend, tmp_path):
    lw = lowat(backend())
    body = pattern_bytes(2 << 20)
    f = tmp_path / "upload"
    f.write_bytes(body)
    r = curl(lw.url("/echo", tls=False), "--http1.1", "-v", "-H", "Expect: 100-continue",
             "--data-binary", f"@{f}")
    echo = json.loads(r.body)
    assert (r.status, echo["body_len"], echo["body_sha256"]) == (200, len(body), pattern_sha256(len(body)))
    assert "HTTP/1.1 100 Continue" in r.stderr


def test_h1_h1_expect_100_continue_interim_before_body(lowat, backend):
    """The client holds the body until it sees 100 Continue (which must come within 3 s)."""
    lw = lowat(backend())
    body = os.urandom(100_000)
    c = H1Conn(lw.clear_port)
    c.send(request_bytes("POST", "/echo", "localhost", headers=[("Content-Length", str(len(body))),
                                                                  ("Expect", "100-continue")]))
    deadline = time.monotonic() + 3
    try:
        while b"\r\n\r\n" not in c.buf and not c.eof:
            c._fill(deadline)
    except socket.timeout:
        pass
    assert c.buf.startswith(b"HTTP/1.1 100"), f"no 100 Continue within 3 s: {bytes(c.buf)!r}"
    c.send(body)
    r = c.read_response()
    echo = json.loads(r.body)
    assert (r.status, echo["body_len"]) == (200, len(body))


def test_h1_h1_headers_too_large_431(lowat, backend):
    b = backend()
    lw = lowat(b, limits={"max_header_bytes": "8k"})
    c = H1Conn(lw.clear_port)
    c.send(request_bytes("GET", "/name", "localhost", headers=[("X-Big", "x" * 10000)]))
    r = c.read_response()
    assert r.status == 431
    assert not b.requests
    # a request under the limit still passes
    c2 = H1Conn(lw.clear_port)
    c2.send(request_bytes("GET", "/name", "localhost", headers=[("X-Big", "x" * 4000)]))
    assert c2.read_response().status == 200


def test_h1_h1_too_many_headers_rejected(lowat, backend):
    b = backend()
    lw = lowat(b, limits={"max_headers": 20})
    c = H1Conn(lw.clear_port)
    c.send(request_bytes("GET", "/name", "localhost", headers=[(f"X-H{i}", "v") for i in range(50)]))
    r = c.read_response()
    assert r.status in (400, 431)
    assert not b.requests
