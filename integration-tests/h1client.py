# SPDX-License-Identifier: MIT
"""A raw HTTP/1.1 client: send exactly the bytes a test wants (smuggling attempts, bare LF,
obs-fold), read responses strictly, and tell whether the server closed the connection.
All reads are bounded by a timeout.
"""

import hashlib
import socket
import ssl
import time

from h2client import client_tls_context


class Response:
    def __init__(self):
        self.status = None
        self.reason = ""
        self.version = ""
        self.headers = []  # (name, value), names as sent
        self.interim = []  # (status, headers) of 1xx responses
        self.body = bytearray()
        self.body_len = 0
        self.sha = hashlib.sha256()
        self.chunked = False
        self.complete = False  # the body was framed and arrived completely
        self.raw_head = b""

    def header(self, name):
        vals = self.header_all(name)
        return vals[0] if vals else None

    def header_all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    @property
    def sha256(self):
        return self.sha.hexdigest()

    def __repr__(self):
        return f"<response {self.status} {self.reason!r} body_len={self.body_len} complete={self.complete}>"


class IncompleteResponse(AssertionError):
    pass


class H1Conn:
    def __init__(self, port, *, tls=False, host="127.0.0.1", timeout=10.0, alpn=("http/1.1",),
                 server_hostname="localhost", keep_body=True, sock=None):
        """Connect to host:port (TLS with the given ALPN offer if tls), or use sock as it is."""
        self.timeout = timeout
        self.keep_body = keep_body
        if sock is None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect((host, port))
            if tls:
                sock = client_tls_context(alpn=alpn).wrap_socket(sock, server_hostname=server_hostname)
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("read deadline passed")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 18)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            data = b""
        if not data:
            self.eof = True
        self.buf += data
        return bool(data)

    def _read_until(self, delim, deadline):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[:i + len(delim)])
                del self.buf[:i + len(delim)]
                return out
            if self.eof or not self._fill(deadline):
                raise IncompleteResponse(f"connection closed before {delim!r}; have {bytes(self.buf[:200])!r}")

    def _take_body(self, resp, n, deadline):
        while n > 0:
            if not self.buf and (self.eof or not self._fill(deadline)):
                raise IncompleteResponse("closed in the body")
            chunk = bytes(self.buf[:n])
            del self.buf[:len(chunk)]
            n -= len(chunk)
            resp.body_len += len(chunk)
            resp.sha.update(chunk)
            if self.keep_body:
                resp.body += chunk

    def read_response(self, method="GET", timeout=None):
        """Read one final response (1xx are collected in .interim). A body cut short by the server
        closing leaves complete=False instead of raising; a missing head raises."""
        deadline = time.monotonic() + (timeout or self.timeout)
        resp = Response()
        while True:
            head = self._read_until(b"\r\n\r\n", deadline)
            lines = head[:-4].decode("latin-1").split("\r\n")
            version, status, *reason = lines[0].split(" ", 2)
            headers = []
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers.append((name, value.strip(" \t")))
            if 100 <= int(status) < 200 and int(status) != 101:
                resp.interim.append((int(status), headers))
                continue
            break
        resp.version, resp.status, resp.reason = version, int(status), (reason[0] if reason else "")
        resp.headers, resp.raw_head = headers, head
        te = ",".join(resp.header_all("transfer-encoding")).lower()
        cl = resp.header("content-length")
        try:
            if method == "HEAD" or resp.status in (204, 304) or resp.status == 101:
                resp.complete = True
            elif "chunked" in te:
                resp.chunked = True
                while True:
                    size = int(self._read_until(b"\r\n", deadline).split(b";")[0].strip(), 16)
                    if size == 0:
                        while self._read_until(b"\r\n", deadline) != b"\r\n":
                            pass
                        break
                    self._take_body(resp, size, deadline)
                    if self._read_until(b"\r\n", deadline) != b"\r\n":
                        raise AssertionError("chunk not followed by CRLF")
                resp.complete = True
            elif cl is not None:
                self._take_body(resp, int(cl), deadline)
                resp.complete = True
            else:
                while not self.eof:
                    if not self._fill(deadline):
                        break
                    chunk = bytes(self.buf)
                    self.buf.clear()
                    resp.body_len += len(chunk)
                    resp.sha.update(chunk)
                    if self.keep_body:
                        resp.body += chunk
                resp.complete = True
        except IncompleteResponse:
            resp.complete = False
        return resp

    def wait_closed(self, timeout=3.0):
        """True if the server closes the connection within timeout (bytes arriving meanwhile are
        kept in self.buf), False if it is still open."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                self._fill(deadline)
            except (socket.timeout, ssl.SSLWantReadError):
                return False
            except OSError:
                return True
        return True


def raw_exchange(port, data, *, source=None, timeout=5.0):
    """Send data on a fresh connection (from source address, if given) and return all the
    server sends until it closes (or resets, or timeout passes)."""
    s = socket.socket()
    s.settimeout(timeout)
    if source is not None:
        s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    s.sendall(data)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return out


def request_bytes(method, path, host, headers=(), body=None):
    lines = [f"{method} {path} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{n}: {v}" for n, v in headers]
    if body is not None and not any(n.lower() in ("content-length", "transfer-encoding") for n, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")

