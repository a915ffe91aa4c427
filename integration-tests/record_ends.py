# SPDX-License-Identifier: MIT
"""Fetch a large path over TLS 1.3 + h2, ask for more paths on the same connection while it
streams, and report, for each of those responses, how many bytes of other frames share the TLS
record that brings its last frame. A client decrypts a record only whole: bytes behind a
finished response in its record hold that response back until they have arrived too.

Usage: record_ends.py HOST PORT LARGE_PATH AFTER_BYTES PATH...

The PATHs are asked for together once AFTER_BYTES of the large body have arrived. The client
reads the raw stream, splits it into records itself and decrypts them one by one, and follows
the frames in what they hold (rawtls.py). It also watches the server's TCP segments as they
arrive (a packet socket in its network namespace: run as root), to tell where in the stream
each segment ends. Prints JSON:
    mss         the connection's segment size (TCP_INFO, snd_mss)
    large       body bytes of the large response received
    responses   one per PATH: {"path", "status", "body", "last_frame" ("HEADERS" or "DATA"),
                "trailing" (plaintext bytes after that frame in its record),
                "wire_end" (where that record ends in the server's stream),
                "segment_end" (where the TCP segment that brought that end ends; null if
                none was seen)}
"""

import json
import socket
import struct
import sys
import threading

import h2.config
import h2.connection
import h2.events
import h2.settings

from rawtls import RawTLS

FRAME_TYPES = {0: "DATA", 1: "HEADERS"}
END_STREAM = 0x1


class Segments:
    """The payload-carrying TCP segments from host:port, as (stream offset, length), the
    stream offset counted from the first byte after the SYN."""

    ETH_P_IP = 0x0800

    def __init__(self, host, port):
        self.src, self.port = socket.inet_aton(host), port
        self.isn = None
        self.seen = []
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(self.ETH_P_IP))
        self.sock.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE: miss no segment
        self.sock.settimeout(0.2)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                pkt = self.sock.recv(65536)
            except socket.timeout:
                if self.done.is_set():
                    return  # stopped, and all that came is read
                continue
            if len(pkt) < 20 or pkt[0] >> 4 != 4 or pkt[9] != socket.IPPROTO_TCP or pkt[12:16] != self.src:
                continue
            ihl = (pkt[0] & 0xF) * 4
            total = struct.unpack_from(">H", pkt, 2)[0]
            sport, _, seq = struct.unpack_from(">HHI", pkt, ihl)
            if sport != self.port:
                continue
            thl = (pkt[ihl + 12] >> 4) * 4
            flags = pkt[ihl + 13]
            if flags & 0x02:  # SYN
                self.isn = seq
                continue
            length = total - ihl - thl
            if length > 0 and self.isn is not None:
                self.seen.append(((seq - self.isn - 1) % (1 << 32), length))

    def stop(self):
        self.done.set()
        self.thread.join()
        self.sock.close()

    def end_of(self, offset):
        """Where the segment that carried the byte before stream offset `offset` ends."""
        for start, length in self.seen:
            if start < offset <= start + length:
                return start + length
        return None


def main():
    host, port, large_path, after = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    paths = sys.argv[5:]
    segments = Segments(host, port)
    c = RawTLS(host, port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16 << 20})
    conn.increment_flow_control_window(64 << 20)

    def get(stream, path):
        conn.send_headers(stream, [(":method", "GET"), (":scheme", "https"), (":authority", host),
                                   (":path", path)], end_stream=True)

    get(1, large_path)
    c.send(conn.data_to_send())

    streams = {3 + 2 * i: {"path": p, "status": None, "body": 0, "last_frame": None, "trailing": None,
                           "wire_end": None, "segment_end": None}
               for i, p in enumerate(paths)}
    asked = False
    large = 0
    ended = set()
    plain_all = b""
    pos = 0  # the next frame header in plain_all
    pending_end = {}  # stream -> plaintext offset where its END_STREAM frame ends
    record_ends = []  # (plaintext offset, stream offset) at the end of each record with application data
    for _, plain in c.records():
        if not plain:
            continue
        plain_all += plain
        record_ends.append((len(plain_all), c.wire_end))
        while len(plain_all) >= pos + 9:
            frame_len = int.from_bytes(plain_all[pos:pos + 3], "big")
            kind, flags = plain_all[pos + 3], plain_all[pos + 4]
            stream = int.from_bytes(plain_all[pos + 5:pos + 9], "big") & 0x7FFFFFFF
            end = pos + 9 + frame_len
            if stream in streams and kind in FRAME_TYPES and flags & END_STREAM:
                streams[stream]["last_frame"] = FRAME_TYPES[kind]
                pending_end[stream] = end
            pos = end
        for stream, end in list(pending_end.items()):
            if end <= len(plain_all):
                # The record that brought the frame's last byte.
                record_end, wire_end = next(e for e in record_ends if e[0] >= end)
                streams[stream]["trailing"] = record_end - end
                streams[stream]["wire_end"] = wire_end
                del pending_end[stream]
        for ev in conn.receive_data(plain):
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id in streams:
                streams[ev.stream_id]["status"] = int(dict(ev.headers)[b":status"])
            elif isinstance(ev, h2.events.DataReceived):
                if ev.stream_id == 1:
                    large += len(ev.data)
                elif ev.stream_id in streams:
                    streams[ev.stream_id]["body"] += len(ev.data)
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                ended.add(ev.stream_id)
        if not asked and large >= after:
            for stream, s in streams.items():
                get(stream, s["path"])
            asked = True
        pending = conn.data_to_send()
        if pending:
            c.send(pending)
        if len(ended) == len(streams) + 1:
            break
    c.close()
    segments.stop()
    for s in streams.values():
        if s["wire_end"] is not None:
            s["segment_end"] = segments.end_of(s["wire_end"])
    print(json.dumps({"mss": c.mss, "large": large, "responses": list(streams.values())}))


if __name__ == "__main__":
    main()
