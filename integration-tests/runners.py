# SPDX-License-Identifier: MIT
"""Wrappers around the real clients (curl, nghttp, h2load): run with a hard time limit and
return what a user would see: status, protocol version, headers, body, verbose output."""

import os
import re
import subprocess
import tempfile

CURL = "curl"
NGHTTP = "nghttp"
H2LOAD = "h2load"


class CurlResult:
    def __init__(self, rc, status, http_version, headers, body, stderr):
        self.rc = rc
        self.status = status
        self.http_version = http_version  # "1.1" or "2"
        self.headers = headers  # final response's (name, value) list, names lower-cased
        self.body = body
        self.stderr = stderr  # with -v: the exchange as curl saw it

    def header(self, name):
        vals = [v for n, v in self.headers if n == name.lower()]
        return vals[0] if vals else None

    def header_all(self, name):
        return [v for n, v in self.headers if n == name.lower()]

    def __repr__(self):
        return f"<curl rc={self.rc} status={self.status} http={self.http_version} body={len(self.body)}B>"


def _parse_header_dump(text):
    """curl -D output holds every response (1xx, 101, final); keep the last block."""
    blocks = [b for b in re.split(r"\r?\n\r?\n", text) if b.strip()]
    if not blocks:
        return []
    headers = []
    for line in blocks[-1].splitlines()[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return headers


def curl(url, *args, timeout=30, stdin=None, input_bytes=None):
    """Run curl on url with extra args; never raises on HTTP or transport errors (see .rc)."""
    with tempfile.TemporaryDirectory(prefix="lowat-curl-") as d:
        body_path = os.path.join(d, "body")
        hdr_path = os.path.join(d, "headers")
        cmd = [CURL, "-sS", "--max-time", str(timeout), "-o", body_path, "-D", hdr_path,
               "-w", "%{http_code} %{http_version}", *args, url]
        p = subprocess.run(cmd, stdin=stdin, input=input_bytes, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout + 10)
        out = p.stdout.decode(errors="replace").split()
        status = int(out[0]) if out and out[0].isdigit() else 0
        version = out[1] if len(out) > 1 else ""
        body = open(body_path, "rb").read() if os.path.exists(body_path) else b""
        hdrs = _parse_header_dump(open(hdr_path, errors="replace").read()) if os.path.exists(hdr_path) else []
        return CurlResult(p.returncode, status, version, hdrs, body, p.stderr.decode(errors="replace"))


def nghttp(url, *args, timeout=30):
    """Run nghttp -v; returns (returncode, stdout text, bytes of the response body lines)."""
    p = subprocess.run([NGHTTP, "-t", str(timeout), *args, url], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout + 10)
    return p


class H2LoadResult:
    def __init__(self, p):
        self.rc = p.returncode
        self.out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                      r"(\d+) errored, (\d+) timeout", self.out)
        self.total, self.started, self.done, self.succeeded, self.failed, self.errored, self.timeout = (
            (int(x) for x in m.groups()) if m else (None,) * 7)
        m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", self.out)
        self.s2xx, self.s3xx, self.s4xx, self.s5xx = (int(x) for x in m.groups()) if m else (None,) * 4


def h2load(url, *args, timeout=120):
    p = subprocess.run([H2LOAD, *args, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return H2LoadResult(p)
