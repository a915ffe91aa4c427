# SPDX-License-Identifier: MIT
"""Fetch one path over TLS 1.3 + h2 and report how the server cut its first bytes into TLS
records, as seen on the wire (the record headers are in the clear).

Usage: first_flight.py HOST PORT PATH [MAX_RECORDS]

The client finishes the handshake and sends its preface, SETTINGS and a GET in one write, as a
browser does. It then reads the raw stream, splits it into records itself and decrypts them one
by one, and follows the frames in what they hold, so it knows which record brought the first
bytes of the response body (a browser's HTTP/2 layer uses a DATA frame's bytes as they come,
before the frame is whole). Prints JSON:
    mss               the connection's segment size (TCP_INFO, snd_mss)
    records           wire lengths of the server's records after its handshake flight
                      (at most MAX_RECORDS, default 40: the client stops reading there)
    first_body_end    wire offset at the end of the record that brought the first body bytes
    body              response body bytes received
    sha256            hex digest of the body received
"""

import hashlib
import json
import sys

import h2.config
import h2.connection
import h2.events

from rawtls import RawTLS


def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    max_records = int(sys.argv[4]) if len(sys.argv) > 4 else 40
    c = RawTLS(host, port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":scheme", "https"), (":authority", host), (":path", path)],
                      end_stream=True)
    c.send(conn.data_to_send())  # the client's Finished and the request together

    offset = 0
    records = []
    first_body_end = None
    plain_all = b""
    pos = 0  # the next frame header in plain_all
    body = 0
    digest = hashlib.sha256()
    done = False
    for length, plain in c.records():
        offset += length
        records.append(length)
        if plain:
            plain_all += plain
            while first_body_end is None and len(plain_all) >= pos + 9:
                frame_len = int.from_bytes(plain_all[pos:pos + 3], "big")
                kind, stream = plain_all[pos + 3], int.from_bytes(plain_all[pos + 5:pos + 9], "big") & 0x7FFFFFFF
                if kind == 0 and stream == 1 and frame_len > 0:
                    if len(plain_all) > pos + 9:
                        first_body_end = offset
                    break
                if len(plain_all) < pos + 9 + frame_len:
                    break
                pos += 9 + frame_len
            for ev in conn.receive_data(plain):
                if isinstance(ev, h2.events.DataReceived) and ev.stream_id == 1:
                    body += len(ev.data)
                    digest.update(ev.data)
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == 1:
                    done = True
            pending = conn.data_to_send()
            if pending:
                c.send(pending)
        if done or len(records) >= max_records:
            break
    c.close()
    print(json.dumps({"mss": c.mss, "records": records, "first_body_end": first_body_end, "body": body,
                      "sha256": digest.hexdigest()}))


if __name__ == "__main__":
    main()
