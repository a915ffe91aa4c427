# SPDX-License-Identifier: MIT
"""A small HTTP/2 client over python-h2 for tests that need what curl and nghttp will not do:
malformed requests, resets, closed flow-control windows, many streams under our control.

Outbound header validation is off so a test can send what a hostile client would. Every wait
is bounded by a timeout and raises AssertionError saying what was still missing.
"""

import hashlib
import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
REFUSED_STREAM = 0x7
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB


def client_tls_context(alpn=("h2",), min_version=None, max_version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def _survive_graceful_goaway(conn):
    """python-h2 treats any GOAWAY as the end of the connection and rejects the frames that
    follow, but after a graceful GOAWAY (RFC 9113 section 6.8) the server still finishes streams
    up to last_stream_id. Let this connection's state machine keep receiving (and sending
    anything but new streams) once closed."""
    sm = conn.state_machine
    table = dict(sm._transitions)
    for inp in h2.connection.ConnectionInputs:
        if inp not in (h2.connection.ConnectionInputs.SEND_HEADERS,):
            table.setdefault((h2.connection.ConnectionState.CLOSED, inp), (None, h2.connection.ConnectionState.CLOSED))
    sm._transitions = table


class Stream:
    def __init__(self, sid, keep_body=True):
        self.id = sid
        self.status = None
        self.headers = []  # final response headers, (name, value) str pairs
        self.informational = []  # header lists of 1xx responses
        self.trailers = []
        self.keep_body = keep_body
        self.body = bytearray()
        self.body_len = 0
        self.sha = hashlib.sha256()
        self.ended = False
        self.reset_code = None  # error code of a RST_STREAM from the server

    @property
    def done(self):
        return self.ended or self.reset_code is not None

    def header(self, name):
        vals = [v for n, v in self.headers if n == name]
        return vals[0] if vals else None

    def header_all(self, name):
        return [v for n, v in self.headers if n == name]

    @property
    def sha256(self):
        return self.sha.hexdigest()

    def __repr__(self):
        return (f"<stream {self.id} status={self.status} ended={self.ended} reset={self.reset_code} "
                f"body_len={self.body_len}>")


class H2Client:
    def __init__(self, port, *, tls=True, host="127.0.0.1", server_hostname="localhost", timeout=10.0,
                 settings=None, auto_ack=True, ssl_context=None, sock=None, upgrade=False, connect=True):
        self.timeout = timeout
        self.auto_ack = auto_ack
        self.streams = {}
        self.goaway = None  # the ConnectionTerminated event
        self.closed = False  # the server closed the TCP connection
        self.remote_settings_seen = False
        self.events = []
        self.port = port
        self.authority = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        self.scheme = "https" if tls else "http"
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                           validate_outbound_headers=False,
                                           normalize_outbound_headers=False,
                                           validate_inbound_headers=True)
        self.conn = h2.connection.H2Connection(config=config)
        _survive_graceful_goaway(self.conn)
        if sock is None:
            sock = socket.create_connection((host, port), timeout=timeout)
            # As curl and nghttp do: without it, Nagle and the peer's delayed ACK add 40 ms
            # to every flow-control round trip.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls:
                ctx = ssl_context or client_tls_context()
                sock = ctx.wrap_socket(sock, server_hostname=server_hostname)
                if sock.selected_alpn_protocol() != "h2":
                    raise AssertionError(f"ALPN chose {sock.selected_alpn_protocol()!r}, not h2")
        self.sock = sock
        self.sock.settimeout(timeout)
        if connect and not upgrade:
            self.conn.initiate_connection()
            if settings:
                self.conn.update_settings(settings)
            self.flush()

    # ---- h2c upgrade: the HTTP/1.1 request carrying HTTP2-Settings, then the 101 ----

    def upgrade(self, path="/echo", authority=None):
        """Do the Upgrade: h2c dance for a GET; the response arrives on stream 1."""
        settings = self.conn.initiate_upgrade_connection()
        req = (f"GET {path} HTTP/1.1\r\nHost: {authority or self.authority}\r\n"
               f"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
               f"HTTP2-Settings: {settings.decode()}\r\n\r\n").encode()
        self.sock.sendall(req)
        buf = b""
        deadline = time.monotonic() + self.timeout
        while b"\r\n\r\n" not in buf:
            if time.monotonic() > deadline:
                raise AssertionError(f"no 101 within {self.timeout}s: {buf!r}")
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError(f"closed before the 101: {buf!r}")
            buf += data
        head, _, rest = buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise AssertionError(f"expected 101 Switching Protocols, got {head!r}")
        self.streams[1] = Stream(1)
        self.flush()
        if rest:
            self._feed(rest)
        return head

    # ---- sending ----

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def headers_for(self, method, path, authority=None, scheme=None, extra=()):
        return [(":method", method), (":scheme", scheme or self.scheme),
                (":authority", authority or self.authority), (":path", path)] + list(extra)

    def send_headers(self, headers, end_stream=False, keep_body=True):
        sid = self.conn.get_next_available_stream_id()
        self.streams[sid] = Stream(sid, keep_body)
        self.conn.send_headers(sid, headers, end_stream=end_stream)
        self.flush()
        return sid

    def request(self, method, path, *, authority=None, headers=(), body=None, end_stream=None,
                keep_body=True, scheme=None, separate_end=False):
        """Send a request; body (bytes) is sent with flow control. Returns the stream id."""
        hdrs = self.headers_for(method, path, authority, scheme, headers)
        if end_stream is None:
            end_stream = True  # the request ends with its headers, or with its body when it has one
        sid = self.send_headers(hdrs, end_stream=end_stream and body is None, keep_body=keep_body)
        if body is not None:
            self.send_body(sid, body, end_stream=end_stream, separate_end=separate_end)
        return sid

    def send_body(self, sid, data, end_stream=True, timeout=None, separate_end=False):
        """Send data on sid, waiting for WINDOW_UPDATEs as needed (bounded by timeout).
        END_STREAM goes on the last DATA frame, or on an empty DATA frame of its own if
        separate_end (both are valid, and clients do both)."""
        view = memoryview(data)
        deadline = time.monotonic() + (timeout or self.timeout)
        while view:
            window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if window <= 0:
                if self.streams[sid].done:
                    raise AssertionError(f"stream {sid} ended while sending its body: {self.streams[sid]}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"flow-control window of stream {sid} stayed closed")
                self.pump(min(0.5, max(0.01, deadline - time.monotonic())))
                continue
            n = min(window, len(view))
            last = n == len(view) and end_stream and not separate_end
            self.conn.send_data(sid, bytes(view[:n]), end_stream=last)
            view = view[n:]
            self.flush()
            if last:
                return
        if end_stream:
            self.conn.end_stream(sid)
            self.flush()

    def send_raw_data(self, sid, data, end_stream=False):
        """DATA without waiting for window (small amounts only)."""
        self.conn.send_data(sid, data, end_stream=end_stream)
        self.flush()

    def reset(self, sid, code=CANCEL):
        self.conn.reset_stream(sid, error_code=code)
        self.flush()

    def ping(self):
        self.conn.ping(b"lowatpng")
        self.flush()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- receiving ----

    def pump(self, timeout):
        """Read once (waiting up to timeout) and process what arrived. Returns the events."""
        if self.closed:
            return []
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(1 << 20)
        except (socket.timeout, ssl.SSLWantReadError):
            return []
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            data = b""
        if not data:
            self.closed = True
            return []
        return self._feed(data)

    def _feed(self, data):
        events = self.conn.receive_data(data)
        for ev in events:
            self._handle(ev)
        self.events.extend(events)
        try:
            self.flush()
        except OSError:
            self.closed = True
        return events

    def _stream(self, sid):
        if sid not in self.streams:
            self.streams[sid] = Stream(sid)
        return self.streams[sid]

    def _handle(self, ev):
        if isinstance(ev, h2.events.ResponseReceived):
            st = self._stream(ev.stream_id)
            st.headers = list(ev.headers)
            st.status = int(dict(ev.headers)[":status"])
        elif isinstance(ev, h2.events.InformationalResponseReceived):
            self._stream(ev.stream_id).informational.append(list(ev.headers))
        elif isinstance(ev, h2.events.TrailersReceived):
            self._stream(ev.stream_id).trailers = list(ev.headers)
        elif isinstance(ev, h2.events.DataReceived):
            st = self._stream(ev.stream_id)
            st.body_len += len(ev.data)
            st.sha.update(ev.data)
            if st.keep_body:
                st.body += ev.data
            if self.auto_ack and ev.flow_controlled_length:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            self._stream(ev.stream_id).ended = True
        elif isinstance(ev, h2.events.StreamReset):
            if ev.remote_reset:
                self._stream(ev.stream_id).reset_code = int(ev.error_code)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = ev
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            self.remote_settings_seen = True

    def wait_for(self, predicate, timeout=None, what="condition"):
        deadline = time.monotonic() + (timeout or self.timeout)
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; streams: {list(self.streams.values())}, "
                                     f"goaway: {self.goaway}, closed: {self.closed}")
            if self.closed:
                if predicate():
                    break
                raise AssertionError(f"connection closed while waiting for {what}; streams: "
                                     f"{list(self.streams.values())}, goaway: {self.goaway}")
            self.pump(min(left, 0.5))
        return True

    def wait_streams(self, sids, timeout=None):
        sids = list(sids)
        self.wait_for(lambda: all(self._stream(s).done for s in sids), timeout, f"streams {sids}")
        return [self.streams[s] for s in sids]

    def wait_stream(self, sid, timeout=None):
        return self.wait_streams([sid], timeout)[0]

    def get(self, path, timeout=None, **kw):
        return self.wait_stream(self.request("GET", path, **kw), timeout)

    def wait_closed(self, timeout=None):
        """Wait until the server closes the TCP connection (GOAWAY alone is not enough)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"connection still open after {timeout or self.timeout}s")
            self.pump(min(left, 0.5))

