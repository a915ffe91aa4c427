# SPDX-License-Identifier: MIT
"""A misbehaving-on-demand HTTP/1.1 origin for lowat's integration tests.

Raw sockets, one thread per connection, so a test can make it answer slowly, hang, die in the
middle of a body or close keep-alive connections without saying so. The mode is the first path
segment that names one (so "/api/echo" and "/echo" both echo):

    /echo               JSON: name, method, path, version, headers, body_len, body_sha256, conn
    /bytes/N?type=T     N bytes of the test pattern with Content-Length (Content-Type T, by
                        default application/octet-stream)
    /chunked/N          N bytes, Transfer-Encoding: chunked
    /close-delimited/N  N bytes, neither length nor chunked: the body ends when we close
    /slow/MS            wait MS milliseconds, then a short body
    /hang               read the request, never answer (until the peer or the test closes)
    /die-mid/N          Content-Length N, send N/2 bytes, close
    /status/N           status N with a short body (none for 1xx/204/304)
    /name               the backend's name
    /resp-headers       a chunked response carrying end-to-end and hop-by-hop headers
    /stall              read the request head only, never the body, never answer
    /bad-chunk/N        a chunked body: one chunk of N bytes, then malformed framing
    /drop               read the request (head and body), then close without answering
    /hints/MS?l=LINK&l=LINK&early=N
                        N (default 1) 103 Early Hints carrying the Link values (from the
                        query and from X-Links request headers), then MS milliseconds of
                        "think time", then a 200 carrying them too

The backend counts accepted connections, open connections and the most open at once, and
records every request head it parsed (in `requests`, before reading the body) so tests can
wait for "the backend has the request" without sleeping.
"""

import functools
import hashlib
import json
import random
import socket
import threading
import time

BLOCK_SIZE = 1 << 20
# The body pattern: one pseudo-random 1 MiB block repeated. Random so that a dropped or
# duplicated range changes the digest; repeated so that producing 1 GiB costs nothing.
BLOCK = random.Random(20261122).randbytes(BLOCK_SIZE)

MODES = {"echo", "bytes", "chunked", "close-delimited", "slow", "hang", "die-mid", "status", "name",
         "resp-headers", "stall", "hints", "bad-chunk", "drop"}

REASONS = {100: "Continue", 103: "Early Hints", 200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently",
           304: "Not Modified", 400: "Bad Request", 404: "Not Found", 418: "I'm a teapot",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def pattern_chunks(n, chunk=BLOCK_SIZE):
    """Yield the first n bytes of the pattern as memoryviews of at most chunk bytes."""
    view = memoryview(BLOCK)
    off = 0
    while n > 0:
        take = min(n, chunk, BLOCK_SIZE - off)
        yield view[off:off + take]
        n -= take
        off = (off + take) % BLOCK_SIZE


@functools.lru_cache(maxsize=64)
def pattern_sha256(n):
    """sha256 hex digest of the first n bytes of the pattern."""
    h = hashlib.sha256()
    for c in pattern_chunks(n):
        h.update(c)
    return h.hexdigest()


def pattern_bytes(n):
    return b"".join(bytes(c) for c in pattern_chunks(n))


class PeerClosed(Exception):
    pass


class Reader:
    """Buffered reads from a socket. Consumed bytes are dropped lazily (an offset, compacted
    now and then) so that parsing a 1 GiB chunked body does not memmove the buffer per chunk."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.pos = 0

    def _fill(self):
        if self.pos == len(self.buf):
            self.buf.clear()
            self.pos = 0
        elif self.pos > (1 << 20):
            del self.buf[:self.pos]
            self.pos = 0
        data = self.sock.recv(1 << 18)
        if not data:
            raise PeerClosed()
        self.buf += data

    def read_until(self, delim, limit=1 << 20):
        start = self.pos
        while True:
            i = self.buf.find(delim, start)
            if i >= 0:
                end = i + len(delim)
                out = bytes(self.buf[self.pos:end])
                self.pos = end
                return out
            if len(self.buf) - self.pos > limit:
                raise ValueError("head too long")
            start = max(self.pos, len(self.buf) - len(delim) + 1)
            before = self.pos
            self._fill()
            start -= before - self.pos  # _fill may have compacted the buffer

    def read_some(self, maxlen):
        if self.pos == len(self.buf):
            self._fill()
        out = bytes(self.buf[self.pos:self.pos + maxlen])
        self.pos += len(out)
        return out


class Backend:
    """One origin server on 127.0.0.1 (or host), port 0 unless given."""

    def __init__(self, name="backend", host="127.0.0.1", port=0, close_after_response=False,
                 close_delay_ms=0):
        self.name = name
        self.host = host
        self.close_after_response = close_after_response  # close after each response, silently
        self.close_delay_ms = close_delay_ms  # ... after this long, without reading anything more
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(1024)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.cond = threading.Condition()
        self.stopping = threading.Event()
        self.accepted = 0
        self.open = 0
        self.max_open = 0
        self.requests = []  # dicts, appended when the head is parsed
        self.responses = 0  # responses written completely
        self.sent_bytes = 0  # response body bytes handed to the kernel, all connections
        self.hang_released = 0  # /hang exchanges whose peer closed the connection
        self.send_errors = 0
        self.errors = []  # unexpected socket errors in connection threads
        self.parse_errors = []  # bytes from lowat this origin could not parse as HTTP/1.1
        self._conns = set()
        self._threads = []
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"backend-{name}", daemon=True)
        self._accept_thread.start()

    @property
    def address(self):
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    # ---- waiting helpers (bounded; the condition is notified on every change) ----

    def wait_for(self, predicate, timeout=10.0):
        """Wait until predicate() (called with the lock held) is true; return its last value."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    return value
                self.cond.wait(min(left, 0.5))

    def wait_requests(self, n, timeout=10.0):
        return self.wait_for(lambda: len(self.requests) >= n, timeout)

    def snapshot(self):
        with self.cond:
            return {"accepted": self.accepted, "open": self.open, "max_open": self.max_open,
                    "requests": len(self.requests), "responses": self.responses,
                    "sent_bytes": self.sent_bytes}

    def stop(self):
        self.stopping.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self.cond:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._accept_thread.join(5)
        for t in list(self._threads):
            t.join(5)

    # ---- serving ----

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.cond:
                self.accepted += 1
                cid = self.accepted
                self.open += 1
                self.max_open = max(self.max_open, self.open)
                self._conns.add(conn)
                self.cond.notify_all()
            t = threading.Thread(target=self._serve, args=(conn, peer, cid), daemon=True)
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
            t.start()

    def _serve(self, conn, peer, cid):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(60)
        reader = Reader(conn)
        try:
            while not self.stopping.is_set():
                keep = self._one_exchange(conn, reader, peer, cid)
                if not keep:
                    break
                if self.close_after_response:
                    if self.close_delay_ms:
                        self.stopping.wait(self.close_delay_ms / 1000)
                    break
        except (PeerClosed, ConnectionError, socket.timeout):
            pass
        except OSError as e:
            if not self.stopping.is_set():
                with self.cond:
                    self.errors.append(f"conn {cid}: {e!r}")
        except Exception as e:  # a parse error: lowat sent something we cannot read
            with self.cond:
                self.parse_errors.append(f"conn {cid}: {e!r}")
        finally:
            try:
                conn.close()
            except OSError:
                pass
            with self.cond:
                self.open -= 1
                self._conns.discard(conn)
                self.cond.notify_all()

    def _one_exchange(self, conn, reader, peer, cid):
        """Serve one request. Returns False when the connection must close."""
        head = reader.read_until(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        method, target, version = lines[0].decode("latin-1").split(" ")
        headers = []
        for line in lines[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name, value.strip(" \t")))
        lower = {}
        for n, v in headers:
            lower.setdefault(n.lower(), []).append(v)
        rec = {"conn": cid, "peer": peer[0], "method": method, "path": target, "version": version,
               "headers": headers, "raw_head": head, "body_len": None, "body_sha256": None,
               "body": None, "te": lower.get("transfer-encoding"), "cl": lower.get("content-length")}
        with self.cond:
            self.requests.append(rec)
            self.cond.notify_all()
        if self._mode(target)[0] == "stall":
            self.stopping.wait(300)  # until the test ends: the body stays in the socket buffers
            return False

        chunked = any("chunked" in v.lower() for v in lower.get("transfer-encoding", []))
        length = int(lower["content-length"][0]) if "content-length" in lower and not chunked else 0
        if (chunked or length) and any(v.lower() == "100-continue" for v in lower.get("expect", [])):
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        sha = hashlib.sha256()
        small = bytearray()
        total = 0

        def take(data):
            nonlocal total
            sha.update(data)
            total += len(data)
            if len(small) < 65536:
                small.extend(data[:65536 - len(small)])

        if chunked:
            while True:
                size_line = reader.read_until(b"\r\n", limit=4096)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while reader.read_until(b"\r\n", limit=65536) != b"\r\n":
                        pass  # trailers
                    break
                left = size
                while left:
                    data = reader.read_some(min(left, 1 << 18))
                    take(data)
                    left -= len(data)
                if reader.read_until(b"\r\n", limit=2) != b"\r\n":
                    raise ValueError("bad chunk end")
        else:
            left = length
            while left:
                data = reader.read_some(min(left, 1 << 18))
                take(data)
                left -= len(data)
        with self.cond:
            rec["body_len"] = total
            rec["body_sha256"] = sha.hexdigest()
            rec["body"] = bytes(small) if total <= 65536 else None
            self.cond.notify_all()

        client_close = any("close" in v.lower() for v in lower.get("connection", []))
        keep = self._respond(conn, reader, rec, method)
        with self.cond:
            rec["responded"] = True
            self.responses += 1
            self.cond.notify_all()
        return keep and not client_close

    def _mode(self, path):
        segs = path.split("?")[0].split("/")
        for i, s in enumerate(segs):
            if s in MODES:
                arg = segs[i + 1] if i + 1 < len(segs) else ""
                return s, arg
        return "echo", ""

    def _head(self, conn, status, headers):
        out = [f"HTTP/1.1 {status} {REASONS.get(status, 'Whatever')}"]
        out += [f"{n}: {v}" for n, v in headers]
        conn.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))

    def _send_body(self, conn, chunks):
        for c in chunks:
            conn.sendall(c)
            with self.cond:
                self.sent_bytes += len(c)

    def _respond(self, conn, reader, rec, method):
        mode, arg = self._mode(rec["path"])
        head_only = method == "HEAD"
        if mode == "bad-chunk":
            n = int(arg)
            self._head(conn, 200, [("Content-Type", "application/octet-stream"), ("Transfer-Encoding", "chunked")])
            conn.sendall(b"%x\r\n" % n + pattern_bytes(n) + b"\r\nZZZ\r\n")
            return False
        if mode == "drop":
            return False
        if mode == "echo":
            body = json.dumps({"name": self.name, "method": rec["method"], "path": rec["path"],
                               "version": rec["version"], "headers": rec["headers"],
                               "body_len": rec["body_len"], "body_sha256": rec["body_sha256"],
                               "body": rec["body"].decode("latin-1") if rec["body"] is not None else None,
                               "conn": rec["conn"], "peer": rec["peer"]}).encode()
            self._simple(conn, 200, body, "application/json", head_only)
        elif mode == "hints":
            import urllib.parse
            query = urllib.parse.parse_qs(rec["path"].partition("?")[2])
            links = [("Link", v) for v in query.get("l", [])]
            links += [("Link", v) for n, v in rec["headers"] if n.lower() == "x-links"]
            for _ in range(int(query.get("early", ["1"])[0])):
                self._head(conn, 103, links)
            time.sleep(int(arg or "0") / 1000.0)
            body = b"<html>page</html>"
            self._head(conn, 200, links + [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
            if not head_only:
                conn.sendall(body)
        elif mode == "name":
            self._simple(conn, 200, self.name.encode(), "text/plain", head_only)
        elif mode == "bytes":
            import urllib.parse
            n = int(arg)
            query = urllib.parse.parse_qs(rec["path"].partition("?")[2])
            ctype = query.get("type", ["application/octet-stream"])[0]
            self._head(conn, 200, [("Content-Type", ctype), ("Content-Length", str(n))])
            if not head_only:
                self._send_body(conn, pattern_chunks(n, 1 << 18))
        elif mode == "chunked":
            n = int(arg)
            self._head(conn, 200, [("Content-Type", "application/octet-stream"), ("Transfer-Encoding", "chunked")])
            if not head_only:
                for c in pattern_chunks(n, 16384):
                    conn.sendall(b"%x\r\n" % len(c))
                    self._send_body(conn, [c])
                    conn.sendall(b"\r\n")
                conn.sendall(b"0\r\n\r\n")
        elif mode == "close-delimited":
            n = int(arg)
            self._head(conn, 200, [("Content-Type", "application/octet-stream")])
            if not head_only:
                self._send_body(conn, pattern_chunks(n, 1 << 16))
            return False
        elif mode == "slow":
            self.stopping.wait(int(arg) / 1000)
            self._simple(conn, 200, b"slow\n", "text/plain", head_only)
        elif mode == "hang":
            conn.settimeout(0.25)
            deadline = time.monotonic() + 300
            while not self.stopping.is_set() and time.monotonic() < deadline:
                try:
                    if not conn.recv(65536):
                        with self.cond:
                            self.hang_released += 1
                            self.cond.notify_all()
                        break
                except socket.timeout:
                    continue
                except OSError:
                    with self.cond:
                        self.hang_released += 1
                        self.cond.notify_all()
                    break
            return False
        elif mode == "die-mid":
            n = int(arg)
            self._head(conn, 200, [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))])
            self._send_body(conn, pattern_chunks(n // 2, 1 << 16))
            return False
        elif mode == "status":
            status = int(arg)
            if status in (204, 304):
                self._head(conn, status, [])
            else:
                self._simple(conn, status, f"status {status}\n".encode(), "text/plain", head_only)
        elif mode == "resp-headers":
            self._head(conn, 200, [("Content-Type", "text/plain"), ("X-Backend-Custom", "yes"),
                                   ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                                   ("Connection", "keep-alive, X-Hop-Resp"), ("X-Hop-Resp", "secret"),
                                   ("Keep-Alive", "timeout=99"), ("Proxy-Connection", "keep-alive"),
                                   ("Upgrade", "h2c"), ("Transfer-Encoding", "chunked")])
            if not head_only:
                conn.sendall(b"5\r\nhello\r\n0\r\n\r\n")
        return True

    def _simple(self, conn, status, body, ctype, head_only):
        self._head(conn, status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        if not head_only:
            self._send_body(conn, [body])


def dead_port():
    """A port on 127.0.0.1 that refuses connections: bound (so nobody else takes it), not listening.

    Returns (socket, port); keep the socket open for as long as the port must stay dead.
    """
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]
