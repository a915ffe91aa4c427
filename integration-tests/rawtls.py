# SPDX-License-Identifier: MIT
"""A TLS 1.3 client connection (ALPN h2 unless told otherwise) that sees the server's records as
they are on the wire, for scripts that check how lowat cuts its output into TLS records.

The handshake runs over memory BIOs on a plain socket; afterwards `records()` reads the raw
stream, splits it into records itself (their headers are in the clear) and decrypts them one
by one, so a caller knows which record brought which plaintext bytes, and where in the
server's byte stream each record ends (`wire_end`).
"""

import socket
import ssl
import struct


class RawTLS:
    def __init__(self, host, port, alpn="h2"):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.set_alpn_protocols([alpn])
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.wire_end = 0  # bytes of the server's stream up to the end of the last record read
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname=host)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if self.out.pending:
                    self.sock.sendall(self.out.read())
                data = self.sock.recv(65536)
                if not data:
                    raise SystemExit("connection closed during the handshake")
                self.wire_end += len(data)
                self.inc.write(data)
        assert self.tls.selected_alpn_protocol() == alpn, self.tls.selected_alpn_protocol()
        assert self.inc.pending == 0, "the server sent records along with its handshake"
        info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        self.mss = struct.unpack_from("I", info, 16)[0]  # tcpi_snd_mss, after 8 bytes of flags, rto, ato
        self.raw = b""

    def send(self, plain):
        """Encrypt and send (with the client's Finished, the first time)."""
        self.tls.write(plain)
        self.sock.sendall(self.out.read())

    def records(self):
        """Yield (wire length, plaintext) for each record the server sends, until it closes.
        Records that carry no application data (session tickets) yield b"" as plaintext.
        While a record is yielded, wire_end is where it ends in the server's stream."""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            self.raw += data
            while len(self.raw) >= 5:
                length = struct.unpack_from(">H", self.raw, 3)[0]
                if len(self.raw) < 5 + length:
                    break
                record, self.raw = self.raw[:5 + length], self.raw[5 + length:]
                self.wire_end += len(record)
                self.inc.write(record)
                plain = b""
                while True:
                    try:
                        chunk = self.tls.read(65536)
                    except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                        break
                    if not chunk:
                        break
                    plain += chunk
                yield len(record), plain

    def close(self):
        self.sock.close()
