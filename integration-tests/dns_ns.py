# SPDX-License-Identifier: MIT
"""Run lowat against a DNS server of our own, inside mount and network namespaces made for the
run (`unshare --mount --net`), so that /etc/resolv.conf can point at it and its port 53 is
nobody else's. Used by test_53_dns.py; prints one JSON object with what it saw.

    dns_ns.py LOWAT_BIN WORKDIR TTL_S SECONDS

The name app.test answers 127.0.0.2 with TTL_S. Two origins, on 127.0.0.2 and 127.0.0.3, answer
"two" and "three". After the first request through lowat the name moves to 127.0.0.3, and for
SECONDS a request goes through lowat every 100 ms. The report: the A queries' times, the time
the first "three" came back (or null), the statuses seen, lowat's exit code and stderr.
"""

import http.server
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request


def dns_server(state, queries, t0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 53))
    s.settimeout(0.2)
    while not state["stop"]:
        try:
            q, peer = s.recvfrom(512)
        except socket.timeout:
            continue
        tid = struct.unpack("!H", q[:2])[0]
        i = 12
        while q[i]:
            i += q[i] + 1
        qname = q[12:i + 1]
        qtype = struct.unpack("!H", q[i + 1:i + 3])[0]
        question = q[12:i + 5]
        known = qname == b"\x03app\x04test\x00"
        if qtype == 1 and known:
            queries.append(round(time.monotonic() - t0, 3))
            ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, state["ttl"], 4) + socket.inet_aton(state["addr"])
            hdr = struct.pack("!HHHHHH", tid, 0x8180, 1, 1, 0, 0)
        else:  # NODATA for AAAA, NXDOMAIN for names we do not know
            ans = b""
            hdr = struct.pack("!HHHHHH", tid, 0x8180 if known else 0x8183, 1, 0, 0, 0)
        s.sendto(hdr + question + ans, peer)
    s.close()


def origin(addr, name):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer((addr, 8080), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def main():
    lowat_bin, workdir, ttl, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    resolv = os.path.join(workdir, "resolv.conf")
    with open(resolv, "w") as f:
        f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:2\n")
    subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
    t0 = time.monotonic()
    state = {"ttl": ttl, "addr": "127.0.0.2", "stop": False}
    queries = []
    dns = threading.Thread(target=dns_server, args=(state, queries, t0), daemon=True)
    dns.start()
    origins = [origin("127.0.0.2", "two"), origin("127.0.0.3", "three")]
    conf = os.path.join(workdir, "lowat.yaml")
    with open(conf, "w") as f:
        f.write("workers: 1\nlog: {level: info, access: off}\n"
                "listeners:\n  - address: 127.0.0.1:8000\n"
                "backends:\n  - name: app\n    members: [app.test:8080]\n")
    err = open(os.path.join(workdir, "lowat.err"), "w+")
    lw = subprocess.Popen([lowat_bin, "-c", conf], stdout=subprocess.DEVNULL, stderr=err)
    seen, moved_at, first = [], None, None
    try:
        deadline = time.monotonic() + 10
        while first is None and time.monotonic() < deadline:
            try:
                first = urllib.request.urlopen("http://127.0.0.1:8000/", timeout=2).read().decode()
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        state["addr"] = "127.0.0.3"
        moved = time.monotonic()
        while time.monotonic() - moved < seconds:
            try:
                body = urllib.request.urlopen("http://127.0.0.1:8000/", timeout=2).read().decode()
            except urllib.error.HTTPError as e:
                body = str(e.code)
            except (OSError, urllib.error.URLError) as e:
                body = type(e).__name__
            seen.append(body)
            if body == "three" and moved_at is None:
                moved_at = round(time.monotonic() - moved, 3)
            time.sleep(0.1)
    finally:
        lw.terminate()
        try:
            rc = lw.wait(15)
        except subprocess.TimeoutExpired:
            lw.kill()
            rc = lw.wait()
        state["stop"] = True
        for o in origins:
            o.shutdown()
        dns.join(2)
    err.seek(0)
    print(json.dumps({"first": first, "moved_at": moved_at, "seen": sorted(set(seen)), "queries": queries,
                      "move_time": round(moved - t0, 3), "rc": rc, "stderr": err.read()[-4000:]}))


if __name__ == "__main__":
    main()
