# SPDX-License-Identifier: MIT
"""HTTP/1.1 frontend (TLS with ALPN http/1.1, and cleartext) in front of HTTP/1.1 origins."""

import hashlib
import json
import os
import socket
import ssl
import struct
import threading
import time

import pytest

from backend import pattern_bytes, pattern_sha256
from conftest import SLOW
from h1client import H1Conn, request_bytes
from rawtls import RawTLS
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


class TLSOverMemory:
    """A socket-like view of a RawTLS connection, for H1Conn: unlike an ssl.SSLSocket, whose
    shutdown() drops TLS, its TCP side can be half-closed, and close_notify sent on its own."""

    def __init__(self, port):
        self.raw = RawTLS("127.0.0.1", port, alpn="http/1.1")

    def settimeout(self, t):
        self.raw.sock.settimeout(t)

    def sendall(self, data):
        self.raw.send(data)

    def recv(self, n):
        while True:
            try:
                return self.raw.tls.read(n)
            except ssl.SSLWantReadError:
                data = self.raw.sock.recv(65536)
                if not data:
                    return b""
                self.raw.inc.write(data)
            except ssl.SSLZeroReturnError:
                return b""

    def send_close_notify(self):
        try:
            self.raw.tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        self.raw.sock.sendall(self.raw.out.read())

    def shutdown(self, how):
        self.raw.sock.shutdown(how)

    def setsockopt(self, *args):
        self.raw.sock.setsockopt(*args)

    def close(self):
        self.raw.sock.close()


def leave(c, how):
    """Close a client connection the way a departing client does."""
    if how == "rst":
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif how == "close_notify":
        c.sock.send_close_notify()
    c.close()


@pytest.mark.parametrize("tls,how", [(False, "fin"), (False, "rst"), (True, "fin"), (True, "close_notify")],
                         ids=["cleartext-fin", "cleartext-rst", "tls-fin", "tls-close_notify"])
def test_h1_h1_client_gone_releases_the_backend_exchange(lowat, backend, tls, how):
    """A client that leaves while its response is awaited frees the backend exchange at once, as
    on h2, instead of holding a backend connection until the response timeout (30 s here)."""
    b = backend()
    lw = lowat(b, workers=1, backend_opts={"response_timeout": "30s"})
    c = H1Conn(0, sock=TLSOverMemory(lw.tls_port)) if tls else H1Conn(lw.clear_port)
    c.send(request_bytes("GET", "/hang", "localhost"))
    assert b.wait_requests(1, 5), "the request did not reach the backend"
    leave(c, how)
    assert b.wait_for(lambda: b.hang_released >= 1, 3 * SLOW), "the backend exchange outlived its client"


@pytest.mark.parametrize("tls", [False, True], ids=["cleartext", "tls"])
def test_h1_h1_half_closed_client_still_gets_its_responses(lowat, backend, tls):
    """A client may close its sending side after its requests and still read the answers."""
    lw = lowat(backend())
    c = H1Conn(0, sock=TLSOverMemory(lw.tls_port)) if tls else H1Conn(lw.clear_port)
    c.send(request_bytes("GET", "/slow/500", "localhost") + request_bytes("GET", "/bytes/300000", "localhost"))
    c.sock.shutdown(socket.SHUT_WR)
    r1, r2 = c.read_response(), c.read_response()
    assert (r1.status, bytes(r1.body)) == (200, b"slow\n")
    assert (r2.status, r2.complete, r2.body_len, r2.sha256) == (200, True, 300000, pattern_sha256(300000))
    assert c.wait_closed(3), "lowat kept a half-closed connection open after its last response"


def abandon(b, lw, n, reaching):
    """n clients each ask for /hang and leave once `reaching` requests have reached b."""
    gone = [H1Conn(lw.clear_port) for _ in range(n)]
    for i, c in enumerate(gone):
        c.send(request_bytes("GET", f"/hang?i={i}", "localhost"))
    assert b.wait_requests(reaching, 5)
    for c in gone:
        c.close()


def test_h1_h1_abandoned_requests_leave_room_for_others(lowat, backend):
    """Clients that send a request and leave do not fill the backend's connections and queue."""
    b = backend()
    lw = lowat(b, workers=1, backend_opts={"max_connections": 2, "queue": 2, "response_timeout": "30s"})
    abandon(b, lw, 4, reaching=2)
    assert b.wait_for(lambda: b.hang_released >= 2, 3 * SLOW), "the abandoned exchanges still hold the backend"
    c = H1Conn(lw.clear_port)
    c.send(request_bytes("GET", "/name", "localhost"))
    r = c.read_response()
    assert (r.status, bytes(r.body)) == (200, b"app")


def test_h1_h1_abandoned_requests_do_not_mark_the_member_down(lowat, backend):
    """Exchanges whose clients left are not the member's failures: it is not marked down."""
    b = backend()
    lw = lowat(b, workers=1, backend_opts={"response_timeout": "1s", "max_fails": 3})
    abandon(b, lw, 3, reaching=3)
    time.sleep(1.5 * SLOW)  # past the response timeout: each exchange left would have failed by now
    marked = lw.wait_log(r"marked down", 0.1)
    assert marked is None, marked
    c = H1Conn(lw.clear_port)
    c.send(request_bytes("GET", "/name", "localhost"))
    r = c.read_response()
    assert (r.status, bytes(r.body)) == (200, b"app")


@pytest.mark.parametrize("target", [b'http://a<b>"c{|}\xff/echo', b"http://user@evil.test@localhost/echo",
                                    b"http://user@localhost/echo", b"http:///echo", b"http://localhost:80\\@x/echo"],
                         ids=["host-bytes", "userinfo-twice", "userinfo", "empty", "backslash"])
def test_h1_absolute_form_authority_checked_like_host(lowat, backend, target):
    """The authority of an absolute-form target routes the request as Host does, so what a Host
    header may not carry is refused there too, userinfo included, and an empty one is no cue to
    fall back on the Host header."""
    b = backend()
    lw = lowat(b)
    c = H1Conn(lw.clear_port)
    c.send(b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
    r = c.read_response()
    assert r.status == 400, (r, bytes(r.body))
    assert c.wait_closed(3)
    assert not b.requests, b.requests[0]["raw_head"]


@pytest.mark.parametrize("target,path,host", [
    (b"http://localhost?x=1", "/?x=1", "localhost"),
    (b"http://localhost", "/", "localhost"),
    (b"http://localhost:8080/echo?a=b/c", "/echo?a=b/c", "localhost:8080"),
    (b"HTTP://other.test?q/r", "/?q/r", "other.test"),
    (b"http://localhost/echo?a=b#frag", "/echo?a=b", "localhost"),
    (b"http://localhost#frag", "/", "localhost"),
], ids=["query", "bare", "port-path-query", "query-with-slash", "query-fragment", "bare-fragment"])
def test_h1_h1_absolute_form_path_and_query_kept(lowat, backend, target, path, host):
    """The authority ends at "/", "?" or "#": an empty path becomes "/", the query stays in it and
    the fragment goes."""
    b = backend()
    lw = lowat(b)
    c = H1Conn(lw.clear_port)
    c.send(b"GET " + target + b" HTTP/1.1\r\nHost: ignored.test\r\n\r\n")
    assert c.read_response().status == 200
    seen = b.requests[-1]
    assert (seen["path"], [v for n, v in seen["headers"] if n.lower() == "host"]) == (path, [host])


def test_h1_h1_absolute_form_fragment_does_not_fool_a_wildcard_route(lowat, backend):
    """"evil.test#.example.com" ends with ".example.com", but its host is evil.test."""
    alpha, beta = backend("alpha"), backend("beta")
    lw = lowat(backends=[{"name": x.name, "members": [x.address]} for x in (alpha, beta)],
               routes=[{"host": "*.example.com", "backend": "beta"}, {"path": "/", "backend": "alpha"}])
    c = H1Conn(lw.clear_port)
    c.send(b"GET http://evil.test#.example.com/name HTTP/1.1\r\nHost: localhost\r\n\r\n")
    r = c.read_response()
    assert bytes(r.body) != b"beta" and not beta.requests, beta.requests[0]["raw_head"]
    c = H1Conn(lw.clear_port)
    c.send(b"GET http://x.example.com/name HTTP/1.1\r\nHost: localhost\r\n\r\n")
    r = c.read_response()
    assert (r.status, bytes(r.body)) == (200, b"beta")


@pytest.mark.parametrize("target,extra", [
    ("http://localhost/", ""),
    ("localhost:443", ""),
    ("localhost:443", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"),
], ids=["absolute-form", "authority-form", "h2c-upgrade"])
def test_h1_connect_501_says_the_connection_closes(lowat, backend, target, extra):
    """CONNECT is not proxied, whatever the form of its target and whatever Upgrade it asks
    for: the 501 carries "Connection: close", since lowat closes after it and a request
    pipelined behind goes unanswered, and nothing reaches the backend."""
    b = backend()
    lw = lowat(b)
    c = H1Conn(lw.clear_port)
    c.send(f"CONNECT {target} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n".encode()
           + request_bytes("GET", "/name", "localhost"))
    r = c.read_response()
    assert (r.status, r.complete, r.header("connection")) == (501, True, "close"), r.headers
    assert c.wait_closed(3), "lowat kept the connection open after the 501"
    assert not b.requests


def test_h1_h1_half_closed_client_pipelined_chunked_upload_is_read_whole(lowat, backend):
    """A client that half-closes with a chunked POST pipelined behind a GET, its body larger
    than what lowat buffers per exchange: the rest of the body, already read from the socket,
    still goes to the backend as the backend takes it, and the POST is answered."""
    lw = lowat(backend(), limits={"max_buffered_bytes": "4k"}, backend_opts={"response_timeout": "5s"})
    chunk = b"x" * 1000
    body = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(20)) + b"0\r\n\r\n"
    post = b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    c = H1Conn(lw.clear_port, timeout=20)
    c.send(request_bytes("GET", "/slow/300", "localhost") + post)
    c.sock.shutdown(socket.SHUT_WR)
    assert c.read_response().status == 200
    r = c.read_response()
    assert r.status == 200 and json.loads(bytes(r.body))["body_len"] == 20_000, r


@pytest.mark.parametrize("tls", [False, True], ids=["cleartext", "tls"])
def test_h1_h1_client_reset_after_the_head_releases_the_backend(lowat, tls):
    """The response's head is out and its body stalls at the origin when the client resets the
    connection: the backend exchange ends at once, over TLS as over cleartext."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    released = threading.Event()

    def origin():
        try:
            c, _ = srv.accept()
            c.settimeout(30)
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += c.recv(4096)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
            if not c.recv(1):
                released.set()
        except OSError:
            released.set()

    t = threading.Thread(target=origin, daemon=True)
    t.start()
    try:
        lw = lowat([f"127.0.0.1:{srv.getsockname()[1]}"], workers=1, backend_opts={"response_timeout": "30s"})
        c = H1Conn(0, sock=TLSOverMemory(lw.tls_port)) if tls else H1Conn(lw.clear_port)
        c.send(request_bytes("GET", "/x", "localhost"))
        got = b""
        while b"abc" not in got:
            got += c.sock.recv(4096)
        leave(c, "rst")
        assert released.wait(3 * SLOW), "the backend exchange outlived the client's reset"
    finally:
        srv.close()
        t.join(5)
