# SPDX-License-Identifier: MIT
"""What the measuring HTTP/2 clients of the linkem benchmarks (push/client.py,
responsiveness/client.py) share: their common options, a fresh TCP + TLS (ALPN h2)
connection, an h2 connection whose flow control never limits, and the loop that takes
warm-up and measured samples and prints one JSON object per sample. Standard library and
python3-h2 only: the clients run inside a network namespace with Debian's /usr/bin/python3."""
import json
import socket
import ssl
import struct
import time

import h2.config
import h2.connection
import h2.settings

INITIAL_WINDOW = 1 << 24
CONNECTION_WINDOW = 1 << 30


def now_ms():
    return time.monotonic() * 1000.0


def add_common_args(ap, timeout_s):
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sni", default="localhost")
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--pause", type=float, default=0.2, help="seconds between samples")
    ap.add_argument("--timeout", type=float, default=timeout_s, help="per sample, seconds")


# Linux: SO_TIMESTAMPNS asks for each read's kernel receive time (SCM_TIMESTAMPNS, a struct
# timespec of CLOCK_REALTIME); on TCP it is the time the last segment read was received.
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS


def now_real_ns():
    return time.clock_gettime_ns(time.CLOCK_REALTIME)


class ArrivalTLS:
    """A TLS client over a TCP socket that also tells when the bytes it returns reached this
    host: TLS runs in memory (ssl.MemoryBIO), the socket is read with recvmsg and the kernel's
    receive timestamp. recv() returns (plaintext, arrival_ns); arrival_ns is CLOCK_REALTIME
    (compare with now_real_ns()) of the last segment of the read that completed the
    plaintext's record, so it is never earlier than the truth and excludes the time this
    process took to read and decrypt it."""

    def __init__(self, raw, ctx, server_hostname, recv_size):
        self.raw = raw
        self.recv_size = recv_size
        raw.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self._in, self._out, server_hostname=server_hostname)
        self.arrival_ns = None
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._send_pending()
                if not self._fill():
                    raise ConnectionError("closed during the TLS handshake")
        self._send_pending()

    def _send_pending(self):
        data = self._out.read()
        if data:
            self.raw.sendall(data)

    def _fill(self):
        data, anc, _, _ = self.raw.recvmsg(self.recv_size, socket.CMSG_SPACE(16))
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(value) >= 16:
                sec, nsec = struct.unpack_from("qq", value)
                self.arrival_ns = sec * 1_000_000_000 + nsec
        if not data:
            self._in.write_eof()
            return False
        self._in.write(data)
        return True

    def recv(self, size):
        while True:
            try:
                return self.obj.read(size), self.arrival_ns
            except ssl.SSLWantReadError:
                self._send_pending()
                if not self._fill():
                    return b"", self.arrival_ns
            except ssl.SSLZeroReturnError:
                return b"", self.arrival_ns

    def sendall(self, data):
        self.obj.write(data)
        self._send_pending()

    def version(self):
        return self.obj.version()

    def selected_alpn_protocol(self):
        return self.obj.selected_alpn_protocol()

    def close(self):
        self.raw.close()


def connect(args, ctx, arrival_recv_size=None):
    """A fresh TCP (Nagle off) + TLS connection that negotiated h2. Returns (socket, t0, t1,
    t2): monotonic ms before connect, after connect, after the handshake. With
    arrival_recv_size, the socket is an ArrivalTLS reading that many bytes at a time."""
    t0 = now_ms()
    raw = socket.create_connection((args.host, args.port), timeout=args.timeout)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t1 = now_ms()
    if arrival_recv_size:
        sock = ArrivalTLS(raw, ctx, args.sni, arrival_recv_size)
    else:
        sock = ctx.wrap_socket(raw, server_hostname=args.sni)
    t2 = now_ms()
    if sock.selected_alpn_protocol() != "h2":
        sock.close()
        raise RuntimeError(f"ALPN gave {sock.selected_alpn_protocol()!r}, not h2")
    return sock, t0, t1, t2


def h2_connection(enable_push):
    """A client H2Connection, preface and SETTINGS queued: stream windows of 2^24 and a
    connection window of 2^30, so flow control never limits a sample."""
    cfg = h2.config.H2Configuration(client_side=True, header_encoding=None, validate_inbound_headers=False)
    conn = h2.connection.H2Connection(config=cfg)
    conn.local_settings = h2.settings.Settings(client=True, initial_values={
        h2.settings.SettingCodes.ENABLE_PUSH: 1 if enable_push else 0,
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: INITIAL_WINDOW,
        h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
    })
    conn.initiate_connection()
    conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)
    return conn


def close(conn, sock):
    """GOAWAY, then close; a server that has gone already is no error."""
    try:
        conn.close_connection()
        sock.sendall(conn.data_to_send())
        sock.close()
    except OSError:
        pass


def run_samples(args, one_sample):
    """Warm-up then measured samples, one_sample(args, ssl_context) each; prints each
    record as a JSON line with "warmup" set, or {"error": ...}. Exit status: 1 after more
    than three failed samples, else 0."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    failures = 0
    for i in range(args.warmup + args.samples):
        try:
            rec = one_sample(args, ctx)
        except Exception as e:  # noqa: BLE001 - one failed sample is reported, not fatal
            rec = {"error": f"{type(e).__name__}: {e}"}
            failures += 1
        rec["warmup"] = i < args.warmup
        print(json.dumps(rec), flush=True)
        if failures > 3:
            return 1
        time.sleep(args.pause)
    return 0
