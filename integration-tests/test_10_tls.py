# SPDX-License-Identifier: MIT
"""TLS on the frontend: versions, ALPN, certificates chosen by SNI, session tickets."""

import signal
import socket
import ssl
import subprocess
import threading

import pytest

from backend import pattern_bytes
from h1client import H1Conn, request_bytes
from h2client import H2Client, client_tls_context
from runners import curl


def tls_connect(port, *, server_hostname="localhost", ctx=None, session=None, alpn=("http/1.1",),
                min_version=None, max_version=None):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    ctx = ctx or client_tls_context(alpn=alpn, min_version=min_version, max_version=max_version)
    try:
        return ctx.wrap_socket(sock, server_hostname=server_hostname, session=session)
    except BaseException:
        sock.close()
        raise


def verifying_context(certs, alpn=("http/1.1",), check_hostname=True):
    ctx = ssl.create_default_context(cafile=str(certs["ca"]))
    ctx.check_hostname = check_hostname
    ctx.set_alpn_protocols(list(alpn))
    return ctx


def get_over(ssock, path="/name", host="localhost"):
    c = H1Conn(0, sock=ssock)
    c.send(request_bytes("GET", path, host))
    return c.read_response()


def leaf_cn(ssock):
    return dict(x[0] for x in ssock.getpeercert()["subject"])["commonName"]


@pytest.mark.parametrize("version,tlsver", [("1.2", ssl.TLSVersion.TLSv1_2), ("1.3", ssl.TLSVersion.TLSv1_3)])
def test_tls_version_h2_h1_get(lowat, backend, version, tlsver):
    lw = lowat(backend())
    r = curl(lw.url("/name"), "-k", "--http2", f"--tlsv{version}", "--tls-max", version)
    assert (r.rc, r.status, r.http_version, r.body) == (0, 200, "2", b"app"), r.stderr
    s = tls_connect(lw.tls_port, alpn=("h2", "http/1.1"), min_version=tlsver, max_version=tlsver)
    try:
        assert s.version() == f"TLSv{version}"
        assert s.selected_alpn_protocol() == "h2"
    finally:
        s.close()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls11_refused(lowat, backend, certs):
    lw = lowat(backend())
    old = client_tls_context(alpn=("http/1.1",))
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    old.minimum_version = ssl.TLSVersion.TLSv1_1
    old.maximum_version = ssl.TLSVersion.TLSv1_1

    # Control: this client really can complete a TLS 1.1 handshake (with a server that allows it),
    # so a failure against lowat means lowat refused, not that the client could not try.
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1_1
    server_ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    server_ctx.load_cert_chain(certs["lh_cert"], certs["lh_key"])
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(10)

    def serve():
        try:
            c, _ = ls.accept()
            c.settimeout(10)
            with server_ctx.wrap_socket(c, server_side=True) as sc:
                sc.recv(1)
        except (OSError, ssl.SSLError):
            pass
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        s = tls_connect(ls.getsockname()[1], ctx=old)
        assert s.version() == "TLSv1.1"
        s.close()
    except (ssl.SSLError, OSError) as e:
        pytest.skip(f"this OpenSSL cannot complete a TLS 1.1 handshake at all: {e}")
    finally:
        t.join(10)
        ls.close()

    with pytest.raises((ssl.SSLError, ConnectionResetError, ConnectionAbortedError)):
        s = tls_connect(lw.tls_port, ctx=old)
        s.close()
    # and lowat still serves modern clients
    s = tls_connect(lw.tls_port)
    try:
        assert get_over(s).status == 200
    finally:
        s.close()


@pytest.mark.parametrize("offer,chosen", [(("h2", "http/1.1"), "h2"), (("http/1.1", "h2"), "h2"),
                                          (("http/1.1",), "http/1.1"), (None, None),
                                          (("http/1.0", "h2"), "h2"), (("http/1.0", "http/1.1"), "http/1.1")])
def test_tls_alpn_selection(lowat, backend, offer, chosen):
    lw = lowat(backend())
    s = tls_connect(lw.tls_port, alpn=offer)
    try:
        assert s.selected_alpn_protocol() == chosen
        if chosen == "h2":
            c = H2Client(lw.tls_port, sock=s)
            st = c.get("/name")
            assert (st.status, bytes(st.body)) == (200, b"app")
        else:
            r = get_over(s)
            assert (r.status, bytes(r.body)) == (200, b"app")
    finally:
        s.close()


def test_tls_h1_curl_alpn_http11(lowat, backend):
    lw = lowat(backend())
    r = curl(lw.url("/name"), "-k", "--http1.1")
    assert (r.rc, r.status, r.http_version, r.body) == (0, 200, "1.1", b"app"), r.stderr


def test_tls_alpn_http10_h1_get(lowat, backend):
    """A client that announces HTTP/1.0 by ALPN alone (as curl --http1.0 does) is served by the
    HTTP/1.x frontend, not refused with no_application_protocol."""
    lw = lowat(backend())
    s = tls_connect(lw.tls_port, alpn=("http/1.0",))
    try:
        assert s.selected_alpn_protocol() == "http/1.0"
        c = H1Conn(0, sock=s)
        c.send(b"GET /name HTTP/1.0\r\nHost: localhost\r\n\r\n")
        r = c.read_response()
        assert (r.version, r.status, bytes(r.body)) == ("HTTP/1.0", 200, b"app")
    finally:
        s.close()
    r = curl(lw.url("/name"), "-k", "--http1.0")
    assert (r.rc, r.status, r.http_version, r.body) == (0, 200, "1", b"app"), r.stderr  # curl writes 1.0 as "1"


def test_tls_sni_selects_certificate(lowat, backend, certs):
    tls = {"certificates": [{"cert": str(certs["a_cert"]), "key": str(certs["a_key"])},
                            {"cert": str(certs["b_cert"]), "key": str(certs["b_key"])}]}
    lw = lowat(backend(), listeners=[{"address": "127.0.0.1:0", "tls": tls}])
    for name, cn in (("a.test", "a.test"), ("www.a.test", "a.test"), ("b.test", "b.test")):
        s = tls_connect(lw.tls_port, server_hostname=name, ctx=verifying_context(certs))
        try:
            assert leaf_cn(s) == cn, name
            assert get_over(s, host=name).status == 200
        finally:
            s.close()
    # An unknown name and no SNI at all get the first (default) certificate.
    for name in ("c.test", None):
        s = tls_connect(lw.tls_port, server_hostname=name, ctx=verifying_context(certs, check_hostname=False))
        try:
            assert leaf_cn(s) == "a.test", name
        finally:
            s.close()


def test_tls_relative_cert_paths_resolve_against_config_dir(lowat, backend, certs, copy_certs, tmp_path):
    conf_dir = copy_certs(tmp_path / "conf")
    cfg = {"workers": 1, "log": {"level": "info", "access": "off"},
           "listeners": [{"address": "127.0.0.1:0", "tls": {"certificates": [{"cert": "lh.pem", "key": "lh.key"}]}}],
           "backends": [{"name": "app", "members": [backend().address]}]}
    # Start from another working directory: the paths must be taken relative to the file.
    lw = lowat(config=cfg, config_dir=conf_dir, cwd="/")
    s = tls_connect(lw.tls_port, server_hostname="localhost", ctx=verifying_context(certs))
    try:
        assert leaf_cn(s) == "localhost"
        assert get_over(s).status == 200
    finally:
        s.close()


@pytest.mark.parametrize("tlsver", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_session_resumption_with_ticket(lowat, backend, tlsver):
    lw = lowat(backend())
    ctx = client_tls_context(alpn=("http/1.1",), min_version=tlsver, max_version=tlsver)
    s = tls_connect(lw.tls_port, ctx=ctx)
    try:
        assert not s.session_reused
        assert get_over(s).status == 200  # TLS 1.3 tickets arrive after the handshake
        session = s.session
    finally:
        s.close()
    assert session is not None and session.has_ticket, "lowat issued no session ticket"
    for _ in range(3):  # with 2 workers, the next connections may land on either
        s = tls_connect(lw.tls_port, ctx=ctx, session=session)
        try:
            assert s.session_reused, f"session not resumed ({s.version()})"
            assert get_over(s).status == 200
        finally:
            s.close()


@pytest.mark.parametrize("rotation,lifetime_s", [("1h", 2 * 3600 + 1), ("84h", 604800), ("168h", 604800)])
def test_tls13_ticket_lifetime_at_most_7_days(lowat, backend, rotation, lifetime_s):
    """The ticket lifetime is two rotations (plus a second) but never past the 604800 s that
    RFC 8446 section 4.6.1 allows: Go's crypto/tls drops the connection on a longer one."""
    lw = lowat(backend(), listeners=[{"address": "127.0.0.1:0", "tls": {"ticket_rotation": rotation}}])
    ctx = client_tls_context(alpn=("http/1.1",), min_version=ssl.TLSVersion.TLSv1_3)
    s = tls_connect(lw.tls_port, ctx=ctx)
    try:
        assert get_over(s).status == 200  # TLS 1.3 tickets arrive after the handshake
        session = s.session
    finally:
        s.close()
    assert session.has_ticket and session.ticket_lifetime_hint == lifetime_s
    s = tls_connect(lw.tls_port, ctx=ctx, session=session)
    try:
        assert s.session_reused
    finally:
        s.close()


def test_tls_generated_certificate_names_localhost(lowat, backend):
    lw = lowat(backend())
    s = tls_connect(lw.tls_port)
    try:
        der = s.getpeercert(binary_form=True)
    finally:
        s.close()
    text = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-text"], input=der,
                          stdout=subprocess.PIPE, check=True, timeout=10).stdout.decode()
    assert "localhost" in text


# ---------------------------------------------------------------- how a connection ends

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def strict_connect(port, alpn=("http/1.1",), tlsver=None):
    """A TLS connection whose reads tell close_notify (a clean end: recv gives b"") from a bare
    FIN (an ssl.SSLError, OpenSSL 3's UNEXPECTED_EOF_WHILE_READING). Debian's Python sets
    OP_IGNORE_UNEXPECTED_EOF by default, which makes the two look alike: cleared here."""
    ctx = client_tls_context(alpn=alpn, min_version=tlsver, max_version=tlsver)
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        return ctx.wrap_socket(sock, server_hostname="localhost", suppress_ragged_eofs=False)
    except BaseException:
        sock.close()
        raise


def read_to_end(s, data=b""):
    """Read until the connection ends: (everything read, None after close_notify or the
    ssl.SSLError that ended it)."""
    s.settimeout(10)
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return data, None
            data += d
    except ssl.SSLError as e:
        return data, e
    finally:
        s.close()


@pytest.mark.parametrize("tlsver", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_h1_h1_close_delimited_http10_ends_with_close_notify(lowat, backend, tlsver):
    """An HTTP/1.0 client's close-delimited body ends only with the connection: without
    close_notify (RFC 8446 section 6.1) a whole body looks exactly like a truncated one, which
    a client should treat as possibly incomplete (RFC 9112 section 9.8)."""
    lw = lowat(backend(), workers=1)
    s = strict_connect(lw.tls_port, tlsver=tlsver)
    s.sendall(b"GET /close-delimited/100000 HTTP/1.0\r\nHost: localhost\r\n\r\n")
    data, err = read_to_end(s)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") and b"content-length" not in head.lower(), head
    assert body == pattern_bytes(100000)
    assert err is None, f"whole body received, then {err!r} instead of close_notify"


def test_tls_h1_h1_connection_close_ends_with_close_notify(lowat, backend):
    lw = lowat(backend(), workers=1)
    s = strict_connect(lw.tls_port)
    s.sendall(request_bytes("GET", "/name", "localhost", headers=[("Connection", "close")]))
    data, err = read_to_end(s)
    assert data.startswith(b"HTTP/1.1 200") and b"connection: close" in data.lower() and data.endswith(b"app"), data
    assert err is None, f"response received, then {err!r} instead of close_notify"
    r = curl(lw.url("/name"), "-k", "--http1.1", "-H", "Connection: close")
    assert (r.rc, r.status, r.body) == (0, 200, b"app"), r.stderr


@pytest.mark.parametrize("front", ["h1", "h2"])
@pytest.mark.parametrize("how", ["idle-timeout", "sigterm"])
def test_tls_idle_connection_closed_by_lowat_ends_with_close_notify(lowat, backend, front, how):
    """An idle connection lowat ends (its idle timeout; a graceful stop, with GOAWAY on h2)
    ends with close_notify: a client reading then learns the connection was closed on
    purpose, not cut."""
    lw = lowat(backend(), workers=1, drain_timeout="10s",
               limits={"client_idle_timeout": "1s" if how == "idle-timeout" else "60s"})
    s = strict_connect(lw.tls_port, alpn=("h2",) if front == "h2" else ("http/1.1",))
    first = b""
    if front == "h1":
        s.sendall(request_bytes("GET", "/name", "localhost"))
        c = H1Conn(0, sock=s)
        assert c.read_response().status == 200
        first = bytes(c.buf)  # read past the response, if anything was
    else:
        assert s.selected_alpn_protocol() == "h2"
        s.sendall(H2_PREFACE)
        first = s.recv(65536)  # lowat's SETTINGS: the session has started
    if how == "sigterm":
        lw.send_signal(signal.SIGTERM)
    data, err = read_to_end(s, first)
    if front == "h2":
        assert b"\x07\x00\x00\x00\x00\x00" in data, f"no GOAWAY: {data!r}"  # type GOAWAY, no flags, stream 0
    assert err is None, f"{how}: the connection ended with {err!r} instead of close_notify"
    if how == "sigterm":
        assert lw.wait_exit(10) == 0, lw.stderr_text()


def test_tls_h1_h1_backend_dies_mid_response_ends_without_close_notify(lowat, backend):
    """A response cut short ends with a bare FIN: the missing close_notify (and the short body)
    is what tells the client it is incomplete."""
    lw = lowat(backend(), workers=1)
    n = 1_000_000
    s = strict_connect(lw.tls_port)
    s.sendall(request_bytes("GET", f"/die-mid/{n}", "localhost"))
    data, err = read_to_end(s)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and f"content-length: {n}".encode() in head.lower(), head
    assert body == pattern_bytes(n // 2), f"{len(body)} body bytes, not the {n // 2} the backend sent"
    assert isinstance(err, ssl.SSLError) and "UNEXPECTED_EOF" in str(err), \
        f"a cut response ended with {err!r}, not an unexpected EOF"
