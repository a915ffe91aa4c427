# SPDX-License-Identifier: MIT
"""What the measuring HTTP/2 clients of the linkem benchmarks (push/client.py,
responsiveness/client.py) share: their common options, a fresh TCP + TLS (ALPN h2)
connection, an h2 connection whose flow control never limits, and the loop that takes
warm-up and measured samples and prints one JSON object per sample. Standard library and
python3-h2 only: the clients run inside a network namespace with Debian's /usr/bin/python3."""
import json
import socket
import ssl
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


def connect(args, ctx):
    """A fresh TCP (Nagle off) + TLS connection that negotiated h2. Returns (socket, t0, t1,
    t2): monotonic ms before connect, after connect, after the handshake."""
    t0 = now_ms()
    raw = socket.create_connection((args.host, args.port), timeout=args.timeout)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t1 = now_ms()
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
