# SPDX-License-Identifier: MIT
"""Fetch a large path over TLS + h2, and once part of it has arrived, ask for more paths on the
same connection, as a browser does for what a page names. Reports what arrived and how the
large response kept flowing while the late ones were answered.

Usage: late_request.py HOST PORT LARGE_PATH AFTER_BYTES PATH [PATH...]

Prints JSON:
    streams      {path: {"status", "bytes", "done_ms"}}: done_ms from the late requests' send
    late_sent_ms when the late requests were sent, from the large request's
    max_gap_ms   the longest wait between two reads of the large response's body while a late
                 request was unanswered (its whole response not yet in)
"""

import json
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

DEADLINE_S = 30


def main():
    host, port, large, after = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    late = sys.argv[5:]
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    tls = ctx.wrap_socket(sock, server_hostname=host)
    assert tls.selected_alpn_protocol() == "h2", tls.selected_alpn_protocol()

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    # Large windows: flow control must not be what paces the large response.
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16 * 1024 * 1024})
    conn.increment_flow_control_window(64 * 1024 * 1024)

    def request(path):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "GET"), (":scheme", "https"), (":authority", host),
                                (":path", path)], end_stream=True)
        return sid

    paths = {request(large): large}
    tls.sendall(conn.data_to_send())
    t0 = time.monotonic()
    streams = {p: {"status": None, "bytes": 0, "done_ms": None} for p in [large] + late}
    late_sent = None
    open_late = set()
    last_large = None
    max_gap = 0.0
    ended = set()
    while len(ended) < len(paths) or late_sent is None:
        if time.monotonic() - t0 > DEADLINE_S:
            break
        data = tls.recv(65536)
        if not data:
            break
        now = time.monotonic()
        # As things stood before this read: a read that brings both the end of a late response
        # and large-response bytes that were held up for it still counts the gap.
        awaited = bool(open_late)
        for ev in conn.receive_data(data):
            path = paths.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived):
                streams[path]["status"] = dict(ev.headers).get(b":status", b"").decode()
            elif isinstance(ev, h2.events.DataReceived):
                streams[path]["bytes"] += len(ev.data)
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if path == large:
                    if awaited and last_large is not None:
                        max_gap = max(max_gap, now - last_large)
                    last_large = now
            elif isinstance(ev, h2.events.StreamEnded):
                ended.add(ev.stream_id)
                if path != large:
                    streams[path]["done_ms"] = round((now - late_sent) * 1000, 1)
                    open_late.discard(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                ended.add(ev.stream_id)
                open_late.discard(ev.stream_id)
        if late_sent is None and streams[large]["bytes"] >= after:
            for p in late:
                sid = request(p)
                paths[sid] = p
                open_late.add(sid)
            late_sent = time.monotonic()
            last_large = late_sent
        pending = conn.data_to_send()
        if pending:
            tls.sendall(pending)
    tls.close()
    print(json.dumps({"streams": streams, "late_sent_ms": round(((late_sent or t0) - t0) * 1000, 1),
                      "max_gap_ms": round(max_gap * 1000, 1)}))


if __name__ == "__main__":
    main()
