# SPDX-License-Identifier: MIT
"""Fetch a large path over TLS 1.3 + h2, ask for more paths on the same connection while it
streams, and report, for each of those responses, how many bytes of other frames share the TLS
record that brings its last frame. A client decrypts a record only whole: bytes behind a
finished response in its record hold that response back until they have arrived too.

Usage: record_ends.py HOST PORT LARGE_PATH AFTER_BYTES PATH...

The PATHs are asked for together once AFTER_BYTES of the large body have arrived. The client
reads the raw stream, splits it into records itself and decrypts them one by one, and follows
the frames in what they hold (rawtls.py). Prints JSON:
    mss         the connection's segment size (TCP_INFO, snd_mss)
    large       body bytes of the large response received
    responses   one per PATH: {"path", "status", "body", "last_frame" ("HEADERS" or "DATA"),
                "trailing" (plaintext bytes after that frame in its record)}
"""

import json
import sys

import h2.config
import h2.connection
import h2.events
import h2.settings

from rawtls import RawTLS

FRAME_TYPES = {0: "DATA", 1: "HEADERS"}
END_STREAM = 0x1


def main():
    host, port, large_path, after = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    paths = sys.argv[5:]
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

    streams = {3 + 2 * i: {"path": p, "status": None, "body": 0, "last_frame": None, "trailing": None}
               for i, p in enumerate(paths)}
    asked = False
    large = 0
    ended = set()
    plain_all = b""
    pos = 0  # the next frame header in plain_all
    pending_end = {}  # stream -> plaintext offset where its END_STREAM frame ends
    record_ends = []  # plaintext offset at the end of each record that carried application data
    for _, plain in c.records():
        if not plain:
            continue
        plain_all += plain
        record_ends.append(len(plain_all))
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
                record_end = next(e for e in record_ends if e >= end)
                streams[stream]["trailing"] = record_end - end
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
    print(json.dumps({"mss": c.mss, "large": large, "responses": list(streams.values())}))


if __name__ == "__main__":
    main()
