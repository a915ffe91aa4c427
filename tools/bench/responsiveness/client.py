#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The measuring client of the responsiveness benchmark (run by run.py inside the client
network namespace; it can also be run by hand against any TLS h2 server).

One sample is one fresh TCP + TLS (ALPN h2) connection: request /index.html; at the chosen
moment request /tiny.js on the same connection; read to the end of both. The moment is
  script  as soon as the bytes `<script src="/tiny.js">` of the HTML have arrived
  NNN     as soon as NNN bytes of the HTML's body have arrived (262144: the late request)

Timing rules, so that the figures show when bytes reached the client and nothing else:
  - Nagle is off; the socket is read in small reads (one TLS record at most per recv) and
    every read is handed on at once.
  - HTML body progress is counted by a frame parser of our own on the decrypted byte stream,
    so that a 16 KiB DATA frame spread over many TCP segments is seen byte by byte as it
    arrives, not when its last byte is in (h2 reports a DATA frame only once complete).
  - h2 (python3-h2) runs the protocol itself (SETTINGS, HPACK, ACKs, flow control) and tells
    when a stream has ended: the JS's last byte is the moment the frame carrying its
    END_STREAM flag is fully received.
  - Flow control never limits: SETTINGS_INITIAL_WINDOW_SIZE 2^24 and a connection window of
    2^30, sent with the preface before the first request. Push is disabled.

Figures of one sample (ms, from time.monotonic):
  html_ttfb   HTML request written -> the HTML's response HEADERS fully received
  html_first  HTML request written -> first byte of the HTML's body received
  html_total  HTML request written -> the HTML's END_STREAM received
  js_latency  JS request written   -> the JS's END_STREAM received
The same three ends taken at their arrival: the kernel's receive time of the segment that
completed the TLS record (SO_TIMESTAMPNS), against the clock read just before the request
was written. They leave out the time this client takes to be scheduled, read, decrypt and
parse (measured at 0.04-0.26 ms on the JS, up to 0.8 ms on TTFB):
  html_ttfb_rx, html_total_rx, js_arrival
  js_at       HTML bytes received when the JS request was written
  html_left   HTML bytes still to come at that moment
  connect, handshake: TCP connect and TLS handshake durations

Prints one JSON object per line: {"warmup": bool, ...figures...}, or {"error": "..."}.
"""

import argparse
import os
import sys
import time

import h2.events

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from h2sample import add_common_args, close, connect, h2_connection, now_ms, now_real_ns, run_samples  # noqa: E402

SCRIPT_TAG = b'<script src="/tiny.js">'
HTML_STREAM = 1
JS_STREAM = 3
FRAME_DATA = 0x0
FLAG_END_STREAM = 0x1
FLAG_PADDED = 0x8
RECV_SIZE = 16384  # at most one TLS record comes out of SSL_read anyway
RAW_RECV_SIZE = 2048  # socket reads: small, so each read's receive time is that of its own bytes


class DataProgress:
    """Follows the frames of the decrypted server byte stream and counts the body bytes of
    one stream's DATA frames as they arrive, partial frames included."""

    def __init__(self, stream_id, keep=4096):
        self.stream_id = stream_id
        self.keep = keep
        self.head = bytearray()  # the first `keep` body bytes
        self.body = 0
        self._hdr = bytearray()
        self._len = 0  # payload length of the current frame
        self._pos = 0  # payload bytes of it seen so far
        self._counting = False
        self._padded = False
        self._pad = 0

    def feed(self, data):
        i, n = 0, len(data)
        while i < n:
            if self._pos == self._len and len(self._hdr) < 9:
                take = min(9 - len(self._hdr), n - i)
                self._hdr += data[i:i + take]
                i += take
                if len(self._hdr) < 9:
                    return
                h = self._hdr
                self._len = (h[0] << 16) | (h[1] << 8) | h[2]
                sid = int.from_bytes(h[5:9], "big") & 0x7FFFFFFF
                self._counting = h[3] == FRAME_DATA and sid == self.stream_id
                self._padded = bool(h[4] & FLAG_PADDED)
                self._pad = 0
                self._pos = 0
                self._hdr = bytearray()
                continue
            take = min(self._len - self._pos, n - i)
            if self._counting:
                chunk = data[i:i + take]
                lo = self._pos  # payload offset of chunk[0]
                if self._padded and lo == 0:
                    self._pad = chunk[0]
                start = 1 if self._padded else 0
                stop = self._len - self._pad
                a, b = max(lo, start), min(lo + take, stop)
                if b > a:
                    body = chunk[a - lo:b - lo]
                    if len(self.head) < self.keep:
                        self.head += body[:self.keep - len(self.head)]
                    self.body += len(body)
            self._pos += take
            i += take


def one_sample(args, ctx):
    rec = {}
    sock, t0, t1, t2 = connect(args, ctx, RAW_RECV_SIZE)
    rec["t_connect"] = t0
    rec["connect"] = t1 - t0
    rec["handshake"] = t2 - t1
    rec["tls"] = sock.version()
    deadline = time.monotonic() + args.timeout
    conn = h2_connection(enable_push=False)
    authority = f"{args.sni}:{args.port}".encode()

    def request(sid, path, priority):
        headers = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", authority), (b":path", path),
                   (b"user-agent", b"lowat-bench-responsiveness"), (b"accept", b"*/*")]
        if priority:
            headers.append((b"priority", priority.encode()))
        conn.send_headers(sid, headers, end_stream=True)

    request(HTML_STREAM, args.html.encode(), args.html_priority)
    out = conn.data_to_send()
    t_html = now_ms()
    t_html_ns = now_real_ns()
    rec["t_html"] = t_html
    sock.sendall(out)

    progress = DataProgress(HTML_STREAM)
    t_js = None
    ended = {}
    ended_rx = {}
    ttfb_rx = None
    status = {}
    html_first = None
    ttfb = None
    max_recv = 0
    reads = 0
    while len(ended) < 2:
        if time.monotonic() > deadline:
            raise RuntimeError(f"timeout: html {progress.body} bytes, streams ended {sorted(ended)}")
        data, arrival_ns = sock.recv(RECV_SIZE)
        t = now_ms()
        if not data:
            raise RuntimeError(f"connection closed: html {progress.body} bytes, streams ended {sorted(ended)}")
        reads += 1
        max_recv = max(max_recv, len(data))
        progress.feed(data)
        if html_first is None and progress.body > 0:
            html_first = t
        send_js = False
        if t_js is None:
            if args.moment == "script":
                send_js = SCRIPT_TAG in progress.head
            else:
                send_js = progress.body >= int(args.moment)
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status[ev.stream_id] = dict(ev.headers).get(b":status", b"?").decode()
                if ev.stream_id == HTML_STREAM and ttfb is None:
                    ttfb = t
                    ttfb_rx = arrival_ns
            elif isinstance(ev, h2.events.StreamEnded):
                ended[ev.stream_id] = t
                ended_rx[ev.stream_id] = arrival_ns
            elif isinstance(ev, h2.events.StreamReset):
                raise RuntimeError(f"stream {ev.stream_id} reset, error {ev.error_code}")
            elif isinstance(ev, h2.events.ConnectionTerminated):
                raise RuntimeError(f"GOAWAY {ev.error_code}")
            elif isinstance(ev, h2.events.DataReceived):
                # Windows are far larger than the transfer: nothing to give back.
                pass
        if send_js:
            if HTML_STREAM in ended and args.moment == "script":
                raise RuntimeError("the HTML ended before the script tag was seen")
            request(JS_STREAM, args.js.encode(), args.js_priority)
            rec["js_at"] = progress.body
            t_js = now_ms()
            t_js_ns = now_real_ns()
            rec["t_js"] = t_js
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
        if t_js is None and HTML_STREAM in ended:
            raise RuntimeError(f"the HTML ended ({progress.body} bytes) before the moment {args.moment}")

    rec["status_html"] = status.get(HTML_STREAM)
    rec["status_js"] = status.get(JS_STREAM)
    rec["html_bytes"] = progress.body
    rec["html_ttfb"] = ttfb - t_html
    rec["html_first"] = html_first - t_html
    rec["html_total"] = ended[HTML_STREAM] - t_html
    rec["js_latency"] = ended[JS_STREAM] - t_js
    if None not in (ttfb_rx, ended_rx.get(HTML_STREAM), ended_rx.get(JS_STREAM)):
        rec["html_ttfb_rx"] = (ttfb_rx - t_html_ns) / 1e6
        rec["html_total_rx"] = (ended_rx[HTML_STREAM] - t_html_ns) / 1e6
        rec["js_arrival"] = (ended_rx[JS_STREAM] - t_js_ns) / 1e6
    rec["js_sent_after"] = t_js - t_html
    rec["html_left"] = None  # filled by the driver, which knows the size
    rec["js_before_html_end"] = ended[JS_STREAM] < ended[HTML_STREAM]
    rec["reads"] = reads
    rec["max_recv"] = max_recv
    close(conn, sock)
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, timeout_s=60.0)
    ap.add_argument("--html", default="/index.html")
    ap.add_argument("--js", default="/tiny.js")
    ap.add_argument("--html-priority", default="", help="RFC 9218 `priority` header of the HTML request (none)")
    ap.add_argument("--js-priority", default="", help="RFC 9218 `priority` header of the JS request (none)")
    ap.add_argument("--moment", default="script", help="`script` or a number of HTML body bytes")
    args = ap.parse_args()
    if args.moment != "script" and not args.moment.isdigit():
        ap.error("--moment: `script` or a number of bytes")
    return run_samples(args, one_sample)


if __name__ == "__main__":
    sys.exit(main())
