#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The measuring HTTP/2 client of the push benchmark, part (a) (run by run.py inside the
client network namespace; it can also be run by hand against any TLS h2 server that serves
the demo app's page).

One sample is one fresh TCP + TLS (ALPN h2) connection that loads the page the way a client
of the chosen kind would, and times how long after the page request the page's HTML, CSS
and JS have all arrived, however they came:

  pushed     SETTINGS_ENABLE_PUSH=1: whatever the server promises is accepted and read.
  hinted     with --act-on-hints: the moment a 103 arrives, every same-origin
             `rel=preload` link in it that was not promised already is requested (what a
             browser does with Early Hints; the logo is preloaded too, as a browser would).
  requested  when the HTML has arrived, it is parsed for its stylesheet and script URLs,
             and those neither promised nor requested yet are requested then (the no-push
             baseline, and the fallback of every other kind).

Push is enabled in every case (--no-push turns it off); flow control never limits
(SETTINGS_INITIAL_WINDOW_SIZE 2^24, connection window 2^30); Nagle is off; every read is
handed to h2 at once.

Figures of one sample (ms, time.monotonic, from the moment the page request was written):
  all        HTML, CSS and JS all complete (END_STREAM received) -- the figure of the report
  html       the HTML complete;   ttfb: its final HEADERS;   hint: first 103 (if any)
  css, js    each asset complete; css_how, js_how: pushed / hinted / requested
  pushes     promised paths;      handshake: TCP + TLS set-up time (not in `all`)
  body_bytes response body bytes received on the connection by then

Prints one JSON object per line: {"warmup": bool, ...}, or {"error": "..."}.
"""

import argparse
import os
import re
import sys
import time
import urllib.parse

import h2.events

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from h2sample import add_common_args, close, connect, h2_connection, now_ms, run_samples  # noqa: E402

RECV_SIZE = 65536
CSS_RE = re.compile(rb'<link[^>]*rel="stylesheet"[^>]*href="([^"]+)"')
JS_RE = re.compile(rb'<script[^>]*src="([^"]+)"')


def preload_paths(values, base_authority):
    """Same-origin paths of rel=preload links (without nopush filtering: a browser preloads
    nopush links too) from Link header values."""
    out = []
    for value in values:
        for part in re.split(r",(?=\s*<)", value):
            m = re.match(r"\s*<([^>]*)>(.*)", part)
            if not m:
                continue
            params = m.group(2).lower()
            if not re.search(r";\s*rel\s*=\s*\"?[^;]*\bpreload\b", params):
                continue
            u = urllib.parse.urlsplit(m.group(1))
            if u.scheme and u.scheme != "https":
                continue
            if u.netloc and u.netloc != base_authority:
                continue
            path = u.path or "/"
            if u.query:
                path += "?" + u.query
            out.append(path if path.startswith("/") else "/" + path)
    return out


def one_sample(args, ctx):
    rec = {}
    sock, t0, _, t2 = connect(args, ctx)
    rec["handshake"] = t2 - t0
    deadline = time.monotonic() + args.timeout
    conn = h2_connection(enable_push=not args.no_push)
    authority = f"{args.sni}:{args.port}"

    streams = {}  # stream id -> {"path", "how", "end", "status", "body"}

    def request(path, how):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", authority.encode()),
                                (b":path", path.encode()), (b"user-agent", b"lowat-bench-push"),
                                (b"accept", b"*/*")], end_stream=True)
        streams[sid] = {"path": path, "how": how, "end": None, "status": None, "body": bytearray(),
                        "sent": now_ms() - t_page}
        return sid

    def known(path):
        return any(s["path"] == path for s in streams.values())

    t_page = now_ms()
    page_sid = request(args.path, "page")
    sock.sendall(conn.data_to_send())
    rec["hint"] = rec["ttfb"] = None
    pushes = []
    want = None  # the CSS and JS paths, once the HTML is parsed
    body_bytes = 0  # response body bytes of every stream

    def done():
        if want is None:
            return False
        return all(any(s["path"] == p and s["end"] is not None for s in streams.values()) for p in want)

    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timeout: {[(s['path'], s['end']) for s in streams.values()]}")
        data = sock.recv(RECV_SIZE)
        t = now_ms() - t_page
        if not data:
            raise RuntimeError("connection closed")
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.PushedStreamReceived):
                hdrs = dict(ev.headers)
                path = hdrs.get(b":path", b"?").decode()
                pushes.append(path)
                streams[ev.pushed_stream_id] = {"path": path, "how": "pushed", "end": None, "status": None,
                                                "body": bytearray(), "sent": t}
            elif isinstance(ev, h2.events.InformationalResponseReceived):
                hdrs = ev.headers
                if ev.stream_id == page_sid and dict(hdrs).get(b":status") == b"103":
                    if rec["hint"] is None:
                        rec["hint"] = t
                        if args.act_on_hints:
                            links = [v.decode("latin-1") for n, v in hdrs if n == b"link"]
                            for path in preload_paths(links, authority):
                                if not known(path):
                                    request(path, "hinted")
            elif isinstance(ev, h2.events.ResponseReceived):
                s = streams.get(ev.stream_id)
                if s is not None:
                    s["status"] = dict(ev.headers).get(b":status", b"?").decode()
                    if ev.stream_id == page_sid:
                        rec["ttfb"] = t
            elif isinstance(ev, h2.events.DataReceived):
                body_bytes += len(ev.data)
                s = streams.get(ev.stream_id)
                if s is not None and ev.stream_id == page_sid:
                    s["body"] += ev.data
            elif isinstance(ev, h2.events.StreamEnded):
                s = streams.get(ev.stream_id)
                if s is not None:
                    s["end"] = t
                if ev.stream_id == page_sid:
                    html = bytes(streams[page_sid]["body"])
                    want = [m.decode() for m in CSS_RE.findall(html)[:1] + JS_RE.findall(html)[:1]]
                    if len(want) != 2:
                        raise RuntimeError(f"could not find the stylesheet and script in the HTML: {html[:300]!r}")
                    for path in want:
                        if not known(path):
                            request(path, "requested")
            elif isinstance(ev, h2.events.StreamReset):
                s = streams.get(ev.stream_id)
                if s is not None and s["how"] == "pushed":
                    streams.pop(ev.stream_id)  # a cancelled push: the fallback requests it
                    if want is not None:
                        for path in want:
                            if not known(path):
                                request(path, "requested")
                else:
                    raise RuntimeError(f"stream {ev.stream_id} reset, error {ev.error_code}")
            elif isinstance(ev, h2.events.ConnectionTerminated):
                raise RuntimeError(f"GOAWAY {ev.error_code}")
        out = conn.data_to_send()
        if out:
            sock.sendall(out)

    page = streams[page_sid]
    rec["status"] = page["status"]
    rec["html"] = page["end"]
    rec["html_bytes"] = len(page["body"])
    ends = [page["end"]]
    for key, path in zip(("css", "js"), want):
        s = [x for x in streams.values() if x["path"] == path and x["end"] is not None][0]
        rec[key] = s["end"]
        rec[key + "_how"] = s["how"]
        rec[key + "_status"] = s["status"]
        rec[key + "_sent"] = s["sent"]
        ends.append(s["end"])
    rec["all"] = max(ends)
    rec["pushes"] = pushes
    rec["body_bytes"] = body_bytes
    rec["requests"] = [(s["path"], s["how"]) for sid, s in sorted(streams.items()) if sid % 2 == 1]
    close(conn, sock)
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, timeout_s=20.0)
    ap.add_argument("--path", default="/")
    ap.add_argument("--act-on-hints", action="store_true", help="request a 103's preload links at once")
    ap.add_argument("--no-push", action="store_true", help="SETTINGS_ENABLE_PUSH=0")
    return run_samples(ap.parse_args(), one_sample)


if __name__ == "__main__":
    sys.exit(main())
