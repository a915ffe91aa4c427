# SPDX-License-Identifier: MIT
"""Fetch one path over TLS 1.3 + HTTP/1.1 and report how the server cut the response into TLS
records, as seen on the wire (the record headers are in the clear).

Usage: h1_records.py HOST PORT PATH

The response must be chunked (the client reads until the last chunk). Prints JSON:
    mss       the connection's segment size (TCP_INFO, snd_mss)
    records   wire lengths of the server's records after its handshake flight, session
              tickets included
    plain     the plaintext each of those records held, in bytes
    body      response body bytes received (the chunks' data)
    sha256    hex digest of the body received
"""

import hashlib
import json
import sys

from rawtls import RawTLS


def dechunk(raw):
    """(body, complete) from a chunked body's bytes so far."""
    body, pos = bytearray(), 0
    while True:
        eol = raw.find(b"\r\n", pos)
        if eol < 0:
            return body, False
        size = int(raw[pos:eol].split(b";")[0], 16)
        if size == 0:
            return body, raw[eol:eol + 4] == b"\r\n\r\n"
        if len(raw) < eol + 2 + size + 2:
            return body, False
        body += raw[eol + 2:eol + 2 + size]
        pos = eol + 2 + size + 2


def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    c = RawTLS(host, port, alpn="http/1.1")
    c.send(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    records, plains = [], []
    plain_all = bytearray()
    for length, plain in c.records():
        records.append(length)
        plains.append(len(plain))
        plain_all += plain
        if plain_all.endswith(b"\r\n0\r\n\r\n"):
            break
    c.close()
    head_end = plain_all.find(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in plain_all[:head_end].lower(), plain_all[:head_end]
    body, done = dechunk(plain_all[head_end + 4:])
    assert done, "the last chunk did not arrive"
    print(json.dumps({"mss": c.mss, "records": records, "plain": plains, "body": len(body),
                      "sha256": hashlib.sha256(body).hexdigest()}))


if __name__ == "__main__":
    main()
