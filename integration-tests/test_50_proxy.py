# SPDX-License-Identifier: MIT
"""What the origin receives and what the client gets back: request line, Host, hop-by-hop
headers, X-Forwarded-*, Via, bodies in every framing, the keep-alive pool and its limits,
routes, names resolved with c-ares, balancing."""

import gzip
import hashlib
import json
import threading

import pytest

from backend import pattern_sha256
from conftest import parse_access_line
from h1client import H1Conn, request_bytes
from h2client import H2Client
from runners import curl

HOP_BY_HOP = ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade")


def echo_of(body):
    return json.loads(body)


def joined(echo, name):
    vals = [v for n, v in echo["headers"] if n.lower() == name]
    return ", ".join(vals) if vals else None


def count(echo, name):
    return sum(1 for n, _ in echo["headers"] if n.lower() == name)


def test_h2_h1_request_line_and_host_from_authority(lowat, backend):
    lw = lowat(backend())
    c = H2Client(lw.tls_port)
    st = c.get("/echo/a%20b?x=1&y=2", authority="example.test:8443")
    echo = echo_of(st.body)
    assert (echo["method"], echo["path"], echo["version"]) == ("GET", "/echo/a%20b?x=1&y=2", "HTTP/1.1")
    assert joined(echo, "host") == "example.test:8443"
    assert count(echo, "host") == 1


@pytest.mark.parametrize("front", ["h1", "h2"])
def test_fragment_dropped_from_request_target(lowat, backend, front):
    """A fragment is never part of a request (RFC 9110 section 7.1): the backend, the routes
    and the access log see the path and query without it, as nginx does."""
    b = backend()
    lw = lowat(b)
    sent = [("/echo?x=1#frag", "/echo?x=1"), ("/echo#", "/echo"), ("/echo#a?b=c", "/echo")]
    if front == "h1":
        c = H1Conn(lw.clear_port)
        for target, _ in sent:
            c.send(request_bytes("GET", target, "localhost"))
            assert c.read_response().status == 200
    else:
        c = H2Client(lw.tls_port)
        for target, _ in sent:
            assert c.get(target).status == 200
    lines = [b.requests[i]["raw_head"].split(b"\r\n", 1)[0] for i in range(len(sent))]
    assert lines == [f"GET {path} HTTP/1.1".encode() for _, path in sent]
    logged = [parse_access_line(x)["path"] for x in lw.wait_access_lines(len(sent))]
    assert logged == [path for _, path in sent]


def test_h2_h1_host_header_when_no_authority(lowat, backend):
    lw = lowat(backend())
    c = H2Client(lw.tls_port)
    sid = c.send_headers([(":method", "GET"), (":scheme", "https"), (":path", "/echo"), ("host", "hosty.test")],
                         end_stream=True)
    st = c.wait_stream(sid)
    assert st.status == 200
    echo = echo_of(st.body)
    assert joined(echo, "host") == "hosty.test"
    assert count(echo, "host") == 1


def test_h1_h1_host_passed_through(lowat, backend):
    lw = lowat(backend())
    c = H1Conn(lw.clear_port)
    c.send(request_bytes("GET", "/echo", "foo.test:99"))
    echo = echo_of(c.read_response().body)
    assert joined(echo, "host") == "foo.test:99" and count(echo, "host") == 1


def test_h1_h1_hop_by_hop_headers_removed(lowat, backend):
    lw = lowat(backend())
    c = H1Conn(lw.clear_port)
    c.send(request_bytes("GET", "/echo", "localhost", headers=[
        ("Connection", "keep-alive, X-Custom-Hop"), ("X-Custom-Hop", "secret"), ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"), ("Upgrade", "websocket"), ("X-Keep", "yes")]))
    r = c.read_response()
    assert r.status == 200
    echo = echo_of(r.body)
    names = {n.lower() for n, _ in echo["headers"]}
    assert "x-custom-hop" not in names
    assert "keep-alive" not in names and "proxy-connection" not in names and "upgrade" not in names
    assert "x-custom-hop" not in (joined(echo, "connection") or "").lower()
    assert joined(echo, "x-keep") == "yes"


def test_h2_h1_forwarded_headers(lowat, backend):
    lw = lowat(backend())
    c = H2Client(lw.tls_port)
    echo = echo_of(c.get("/echo").body)
    assert joined(echo, "x-forwarded-for") == "127.0.0.1"
    assert joined(echo, "x-forwarded-proto") == "https"
    assert joined(echo, "via") == "2 lowat"
    echo = echo_of(c.get("/echo", headers=[("x-forwarded-for", "203.0.113.7"), ("via", "1.1 fred")]).body)
    assert joined(echo, "x-forwarded-for") == "203.0.113.7, 127.0.0.1"
    assert joined(echo, "via") == "1.1 fred, 2 lowat"


@pytest.mark.parametrize("tls,proto", [(False, "http"), (True, "https")], ids=["cleartext", "tls"])
def test_h1_h1_forwarded_headers(lowat, backend, tls, proto):
    lw = lowat(backend())
    c = H1Conn(lw.tls_port if tls else lw.clear_port, tls=tls)
    c.send(request_bytes("GET", "/echo", "localhost"))
    echo = echo_of(c.read_response().body)
    assert joined(echo, "x-forwarded-for") == "127.0.0.1"
    assert joined(echo, "x-forwarded-proto") == proto
    assert joined(echo, "via") == "1.1 lowat"
    c.send(request_bytes("GET", "/echo", "localhost", headers=[("X-Forwarded-For", "198.51.100.1, 203.0.113.7"),
                                                              ("Via", "1.0 fred")]))
    echo = echo_of(c.read_response().body)
    assert joined(echo, "x-forwarded-for") == "198.51.100.1, 203.0.113.7, 127.0.0.1"
    assert joined(echo, "via") == "1.0 fred, 1.1 lowat"


def test_h2_h1_response_headers_pass_through_without_hop_by_hop(lowat, backend):
    lw = lowat(backend())
    c = H2Client(lw.tls_port)
    st = c.get("/resp-headers")  # python-h2 itself rejects connection-specific fields in a response
    assert (st.status, bytes(st.body)) == (200, b"hello")
    assert st.header("x-backend-custom") == "yes"
    assert st.header_all("set-cookie") == ["a=1", "b=2"]
    names = {n for n, _ in st.headers}
    assert not names & {"x-hop-resp", *HOP_BY_HOP}, names


def test_h1_h1_response_headers_pass_through_without_hop_by_hop(lowat, backend):
    lw = lowat(backend())
    c = H1Conn(lw.clear_port)
    c.send(request_bytes("GET", "/resp-headers", "localhost"))
    r = c.read_response()
    assert (r.status, bytes(r.body)) == (200, b"hello")
    assert r.header("x-backend-custom") == "yes"
    assert r.header_all("set-cookie") == ["a=1", "b=2"]
    names = {n.lower() for n, _ in r.headers}
    assert not names & {"x-hop-resp", "keep-alive", "proxy-connection", "upgrade"}, r.headers
    assert "x-hop-resp" not in ",".join(r.header_all("connection")).lower()


@pytest.mark.parametrize("mode", ["bytes", "chunked", "close-delimited"])
def test_h2_h1_response_body_framings(lowat, backend, mode):
    lw = lowat(backend())
    n = 1_000_003
    c = H2Client(lw.tls_port, timeout=20)
    st = c.get(f"/{mode}/{n}", keep_body=False)
    assert (st.status, st.body_len, st.sha256) == (200, n, pattern_sha256(n))
    st = c.get("/name")  # the connection is fine afterwards
    assert bytes(st.body) == b"app"


@pytest.mark.parametrize("buffered", ["1k", "20k", "100k"])
@pytest.mark.parametrize("mode", ["bytes", "close-delimited"])
def test_h2_h1_response_body_buffer_sizes(lowat, backend, mode, buffered):
    """Bodies read straight into the response buffer, which fills in whole DATA frames where it
    can: below one frame (1k), between one and two (20k), and above (100k), nothing stalls."""
    lw = lowat(backend(), limits={"max_buffered_bytes": buffered})
    c = H2Client(lw.tls_port, timeout=20)
    for n in (16384, 16385, 1_000_003):
        st = c.get(f"/{mode}/{n}", keep_body=False)
        assert (st.status, st.body_len, st.sha256) == (200, n, pattern_sha256(n)), (n, buffered)


@pytest.mark.parametrize("mode", ["bytes", "chunked", "close-delimited"])
def test_h1tls_h1_response_body_framings_curl(lowat, backend, mode):
    lw = lowat(backend())
    n = 1_000_003
    r = curl(lw.url(f"/{mode}/{n}"), "-k", "--http1.1")
    assert (r.rc, r.status, len(r.body)) == (0, 200, n), r.stderr
    assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(n)


def test_h1_h1_backend_connection_reused(lowat, backend):
    b = backend()
    lw = lowat(b, workers=1)
    for i in range(5):  # separate client connections, one after the other
        r = curl(lw.url(f"/echo?i={i}", tls=False), "--http1.1")
        assert r.status == 200
    assert b.accepted == 1, f"origin saw {b.accepted} connections for 5 sequential requests"
    assert {r["conn"] for r in b.requests} == {1}


def test_h2_h1_backend_connection_reused(lowat, backend):
    b = backend()
    lw = lowat(b, workers=1)
    c = H2Client(lw.tls_port)
    for _ in range(5):
        assert c.get("/name").status == 200
    assert b.accepted == 1


def test_h2_h1_max_connections_per_member(lowat, backend):
    b = backend()
    lw = lowat(b, workers=1, backend_opts={"max_connections": 1})
    c = H2Client(lw.tls_port, timeout=20)
    sids = [c.request("GET", f"/slow/300?i={i}") for i in range(5)]
    assert [s.status for s in c.wait_streams(sids)] == [200] * 5
    assert b.max_open == 1, f"origin saw {b.max_open} connections at once with max_connections: 1"


def test_h2_h1_queue_full_503(lowat, backend):
    """max_connections 1 and queue 2: one request in flight, two waiting, the rest get 503."""
    b = backend()
    lw = lowat(b, workers=1, backend_opts={"max_connections": 1, "queue": 2})
    c = H2Client(lw.tls_port, timeout=20)
    sids = [c.request("GET", f"/slow/600?i={i}") for i in range(6)]
    statuses = sorted(s.status for s in c.wait_streams(sids))
    assert statuses == [200, 200, 200, 503, 503, 503], statuses
    assert b.max_open == 1


def test_routes_select_backend_by_host_and_path(lowat, backend):
    alpha, beta, gamma = backend("alpha"), backend("beta"), backend("gamma")
    cfg_backends = [{"name": x.name, "members": [x.address]} for x in (alpha, beta, gamma)]
    routes = [{"host": "*.example.com", "path": "/api/", "backend": "beta"},
              {"host": "exact.test", "backend": "gamma"},
              {"path": "/", "backend": "alpha"}]
    lw = lowat(backends=cfg_backends, routes=routes)
    cases = [("x.example.com", "/api/name", "beta"),
             ("deep.x.example.com:8443", "/api/name", "beta"),
             ("x.example.com", "/name", "alpha"),
             ("x.example.com", "/apiname/name", "alpha"),
             ("example.com", "/api/name", "alpha"),
             ("other.test", "/api/name", "alpha"),
             ("exact.test", "/name", "gamma"),
             ("exact.test:443", "/api/name", "gamma"),
             ("sub.exact.test", "/name", "alpha")]
    c = H2Client(lw.tls_port)
    for host, path, want in cases:
        st = c.get(path, authority=host)
        assert (st.status, bytes(st.body).decode()) == (200, want), (host, path)
    h = H1Conn(lw.clear_port)
    for host, path, want in cases:
        h.send(request_bytes("GET", path, host))
        r = h.read_response()
        assert (r.status, bytes(r.body).decode()) == (200, want), (host, path)


def test_dns_member_localhost_resolved(lowat, backend):
    b = backend()
    lw = lowat([f"localhost:{b.port}"])
    r = curl(lw.url("/name"), "-k", "--http2")
    assert (r.status, r.body) == (200, b"app"), r.stderr
    r = curl(lw.url("/name", tls=False), "--http1.1")
    assert (r.status, r.body) == (200, b"app"), r.stderr


def test_balancing_weighted_members(lowat, backend):
    light, heavy = backend("light"), backend("heavy")
    lw = lowat([{"address": light.address, "weight": 1}, {"address": f"localhost:{heavy.port}", "weight": 2}],
               workers=1)
    c = H2Client(lw.tls_port)
    seen = {"light": 0, "heavy": 0}
    for _ in range(30):
        st = c.get("/name")
        assert st.status == 200
        seen[bytes(st.body).decode()] += 1
    assert seen["light"] > 0 and seen["heavy"] > seen["light"], seen


def test_h1_ipv6_listener_forwarded_for(lowat, backend):
    lw = lowat(backend(), listeners=[{"address": "[::1]:0"}])
    c = H1Conn(lw.ports("cleartext")[0], host="::1")
    c.send(request_bytes("GET", "/echo", "[::1]"))
    r = c.read_response()
    echo = echo_of(r.body)
    assert joined(echo, "x-forwarded-for") == "::1"


def test_h2_h1_concurrent_connections_from_threads(lowat, backend):
    """Ten client connections at once, each with a few requests, all answered correctly."""
    lw = lowat(backend())
    errors = []

    def client(i):
        try:
            c = H2Client(lw.tls_port)
            for j in range(5):
                st = c.get(f"/echo?c={i}&r={j}")
                assert echo_of(st.body)["path"] == f"/echo?c={i}&r={j}"
            c.close()
        except Exception as e:  # collected and reported below
            errors.append(repr(e))
    threads = [threading.Thread(target=client, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors


@pytest.fixture
def scripted_origin(raw_origin):
    """Factory: scripted_origin({path: bytes}, close=(paths)) starts an origin on 127.0.0.1 that
    answers a request for path with those bytes as they are, keeping the connection unless the
    path is in close; an unknown path gets "ok". Returns (address, connections accepted so far:
    a callable)."""
    def start(answers, close=()):
        def answer(c, idx, head):
            path = head.split(b" ")[1].decode()
            c.sendall(answers.get(path, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
            return path not in close
        return raw_origin(answer)
    return start


LENGTH_LISTS = {"/head": b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n",
                "/304": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7,7\r\nETag: \"x\"\r\n\r\n"}


def test_h2_h1_content_length_list_on_head_and_304_stated_once(lowat, scripted_origin):
    """A HEAD or 304 response's Content-Length, written as a list of identical values (which
    HTTP/1.1 lets a recipient read as one), reaches an HTTP/2 client as one number: the list
    is malformed in HTTP/2, and a client resets the stream on it."""
    addr, _ = scripted_origin(LENGTH_LISTS)
    lw = lowat(addr, workers=1)
    c = H2Client(lw.tls_port)
    head = c.wait_stream(c.request("HEAD", "/head"))
    assert (head.status, head.reset_code, head.ended) == (200, None, True)
    assert head.header_all("content-length") == ["2"]
    r304 = c.get("/304")
    assert (r304.status, r304.reset_code, r304.ended) == (304, None, True)
    assert r304.header_all("content-length") == ["7"] and r304.header("etag") == '"x"'
    assert bytes(c.get("/other").body) == b"ok"


def test_h1_h1_content_length_list_on_head_and_304_stated_once(lowat, scripted_origin):
    addr, _ = scripted_origin(LENGTH_LISTS)
    lw = lowat(addr, workers=1)
    c = H1Conn(lw.clear_port)
    c.send(request_bytes("HEAD", "/head", "x.test"))
    r = c.read_response("HEAD")
    assert r.status == 200 and r.header_all("content-length") == ["2"], r.raw_head
    c.send(request_bytes("GET", "/304", "x.test"))
    r = c.read_response()
    assert r.status == 304 and r.header_all("content-length") == ["7"], r.raw_head
    c.send(request_bytes("GET", "/other", "x.test"))
    assert bytes(c.read_response().body) == b"ok"


GZIPPED = gzip.compress(b"hello, world")
CODED = {"/gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n" + GZIPPED,
         "/gzip-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                          + b"%x\r\n" % len(GZIPPED) + GZIPPED + b"\r\n0\r\n\r\n"}


@pytest.mark.parametrize("path", sorted(CODED))
def test_h2_h1_transfer_coding_other_than_chunked_502(lowat, scripted_origin, path):
    """A body under a transfer coding lowat does not decode (gzip, close-delimited or chunked on
    top) must not reach the client as if it were the content: a 502 and a log line saying why,
    and the backend connection is not used again (the origin keeps it open, as it may for the
    chunked one, so only lowat's refusal to reuse it makes the second connection)."""
    addr, accepted = scripted_origin(CODED)
    lw = lowat(addr, workers=1)
    c = H2Client(lw.tls_port)
    st = c.get(path)
    assert st.status == 502 and GZIPPED not in bytes(st.body), (st, bytes(st.body))
    assert lw.wait_log(r"unsupported Transfer-Encoding"), lw.stderr_text()
    assert bytes(c.get("/other").body) == b"ok"
    assert accepted() == 2
