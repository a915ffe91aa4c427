#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A download through the proxy under test while another flow shares the bottleneck.

lowat's path limit holds a connection's bytes in flight near the path's rate x minimum RTT
once the RTT shows a queue. Behind another flow's queue that holding back only costs the
connection its share of the link: the limit must notice and let go. This measures how much
the download loses, with the optimization on against off (and H2O, whose optimization does
not hold anything in flight back).

Layout (run.py's): linkem between a client and a server namespace; in the server namespace
nginx (the origin, :18080) and the proxy under test (:18443, TLS h2) in front of it. From the
client namespace:
  the download   curl --http2 through the proxy, a page of --bytes (12,000,000)
  the competitor curl straight from the origin, plain HTTP/1.1, a file it cannot finish,
                 started --offset-s seconds after the download (negative: before it) and
                 stopped when the download ends (or after --compete-s seconds)
Both senders are in the server namespace, so both use the congestion control set per
condition. Per condition (cc, offset, proxy): --runs downloads; medians of the download's
time and of its rate in each second, and of the competitor's.

Usage (as root):
  tools/bench/responsiveness/compete.py [--rtt 100] [--rate 20] [--queue 1000] [--cc cubic,bbr]
      [--offset-s 2,-2] [--proxies lowat-on,lowat-off,h2o-on] [--runs 3] [--bytes 12000000]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
import netlab  # noqa: E402
from netlab import ADDR_S, Linkem, cleanup_namespaces, find_linkem, install, log, med, stop  # noqa: E402
import run as resp  # noqa: E402  (run.py: the same origin, proxies and namespace set-up)

BULK_BYTES = 1_000_000_000  # the competitor's file: more than it can fetch in its time
DOWNLOAD_MAX_S = 120  # a download not done by then counts as failed


class Fetch(threading.Thread):
    """curl in the client namespace, its body read here: (seconds since t0, bytes so far)."""

    def __init__(self, ns, url, t0, max_s, http2):
        super().__init__(daemon=True)
        cmd = ["ip", "netns", "exec", ns, "curl", "-s", "-k", "--max-time", f"{max_s:g}", "-o", "-",
               "-w", "%{stderr}%{http_code}", url]
        cmd.insert(5, "--http2" if http2 else "--http1.1")
        self.cmd, self.t0 = cmd, t0
        self.trace, self.total, self.status = [], 0, None
        self.p = None
        self.started = threading.Event()

    def halt(self):
        """Stop the curl this started (by its PID; `ip netns exec` execs it)."""
        if self.started.wait(5) and self.p.poll() is None:
            self.p.terminate()

    def run(self):
        self.p = p = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      start_new_session=True)
        netlab.children.append(p)  # stopped with the rest if the run is interrupted
        self.started.set()
        try:
            while True:
                chunk = p.stdout.read1(1 << 16)
                if not chunk:
                    break
                self.total += len(chunk)
                self.trace.append((time.monotonic() - self.t0, self.total))
        finally:
            err = p.stderr.read().decode(errors="replace").split()
            p.wait()
            if p in netlab.children:
                netlab.children.remove(p)
        self.status = err[0] if err else None


def per_second(trace, start, end):
    """Mbit/s in each whole second from start to end (seconds on the trace's clock)."""
    i = 0
    while i < len(trace) and trace[i][0] <= start:
        i += 1
    out, last = [], trace[i - 1][1] if i else 0
    t = start + 1.0
    while t <= end + 1e-9:
        while i < len(trace) and trace[i][0] <= t:
            i += 1
        now = trace[i - 1][1] if i else 0
        out.append((now - last) * 8 / 1e6)
        last = now
        t += 1.0
    return out


def one_run(ns_c, bytes_, offset_s, compete_s):
    page = f"https://{ADDR_S}:{resp.PROXY_PORT}/index.html"
    bulk = f"http://{ADDR_S}:{resp.ORIGIN_PORT}/bulk.bin"
    t0 = time.monotonic() + max(0.0, -offset_s)  # the download's start
    comp = Fetch(ns_c, bulk, t0, compete_s, http2=False)
    down = Fetch(ns_c, page, t0, DOWNLOAD_MAX_S, http2=True)
    first, second = (comp, down) if offset_s < 0 else (down, comp)
    first.start()
    time.sleep(abs(offset_s))
    second.start()
    down.join(DOWNLOAD_MAX_S + 10)
    comp.halt()  # the download is over: what the competitor does after it is not measured
    comp.join(10)
    ok = down.total == bytes_ and down.status == "200"
    end = down.trace[-1][0] if down.trace else 0.0
    return {"ok": ok, "status": down.status, "bytes": down.total, "time_s": end,
            "down_mbit": per_second(down.trace, 0.0, end), "comp_mbit": per_second(comp.trace, 0.0, end),
            "comp_bytes": comp.total}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rtt", type=int, default=100)
    ap.add_argument("--rate", type=float, default=20.0, help="Mbit/s each way (20)")
    ap.add_argument("--queue", type=int, default=1000, help="drop-tail queue, packets (1000)")
    ap.add_argument("--cc", default="cubic,bbr")
    ap.add_argument("--offset-s", default="2,-2", help="the competitor starts this long after the download")
    ap.add_argument("--compete-s", type=float, default=90.0,
                    help="the competitor's longest run (90); it is stopped when the download ends")
    ap.add_argument("--proxies", default="lowat-on,lowat-off,h2o-on")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bytes", type=int, default=12_000_000, help="the download's size")
    ap.add_argument("--lowat", default=str(resp.REPO / "build" / "proxy" / "lowat"))
    ap.add_argument("--debug-log", action="store_true", help="lowat logs at level debug (its path limit's steps)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("compete.py: needs root (network namespaces)")
    proxies = args.proxies.split(",")
    for p in proxies:
        if p not in resp.ALL_PROXIES:
            ap.error(f"unknown proxy {p}")
    offsets = [float(x) for x in args.offset_s.split(",")]
    ccs = args.cc.split(",")
    want = ["nginx-light", "openssl", "iproute2", "curl"]
    want += ["h2o"] if any(p.startswith("h2o") for p in proxies) else []
    want += ["nghttp2-proxy"] if any(p.startswith("nghttpx") for p in proxies) else []
    install(want)

    work = Path(tempfile.mkdtemp(prefix="lowat-compete-"))
    work.chmod(0o755)
    log(f"work directory {work}")
    cert, key = resp.make_files(work, args.bytes)
    with open(work / "www" / "bulk.bin", "wb") as f:
        f.truncate(BULK_BYTES)  # sparse; nginx sends it with sendfile
    if args.debug_log:
        conf = work / "conf"
        shutil.copytree(resp.CONF, conf)
        text = (conf / "lowat.yaml").read_text()
        (conf / "lowat.yaml").write_text(text.replace("level: warn", "level: debug"))
        resp.CONF = conf
    tag = f"lwc{os.getpid()}"
    ns_c, ns_s = f"{tag}c", f"{tag}s"
    per_cond = args.runs * (min(args.compete_s, DOWNLOAD_MAX_S) + abs(max(offsets, key=abs)) + 15)
    budget = int(per_cond * len(ccs) * len(offsets) * len(proxies) + 120)
    log(f"at most {budget / 60:.0f} min")

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    results = []
    lk = Linkem(find_linkem(work), work, ns_c, ns_s, args.rtt, args.rate, args.queue, min(budget, 3600))
    try:
        resp.ns_setup(ns_c)
        resp.ns_setup(ns_s)
        origin = resp.start_origin(work, ns_s)
        for cc in ccs:
            resp.set_cc(ns_s, cc)
            for offset in offsets:
                for proxy in proxies:
                    p = resp.start_proxy(proxy, work, ns_s, cert, key, args.lowat)
                    try:
                        runs = []
                        for _ in range(args.runs):
                            for ns in (ns_c, ns_s):
                                netlab.run(["ip", "-n", ns, "tcp_metrics", "flush", "all"], check=False)
                            time.sleep(1.0)  # the last run's queue drains
                            runs.append(one_run(ns_c, args.bytes, offset, args.compete_s))
                    finally:
                        stop(p)
                    good = [r for r in runs if r["ok"]]
                    secs = max((len(r["down_mbit"]) for r in good), default=0)
                    row = {"cc": cc, "offset_s": offset, "proxy": proxy, "runs": runs,
                           "time_s": med([r["time_s"] for r in good]),
                           "times": [round(r["time_s"], 2) for r in good],
                           "down_mbit": [med([r["down_mbit"][i] for r in good if i < len(r["down_mbit"])])
                                         for i in range(secs)],
                           "comp_mbit": [med([r["comp_mbit"][i] for r in good if i < len(r["comp_mbit"])])
                                         for i in range(secs)],
                           "failed": len(runs) - len(good)}
                    results.append(row)
                    log(f"{cc:<5} competitor at {offset:+g} s  {proxy:<10} download {row['time_s'] or 0:.2f} s "
                        f"{row['times']}  failed {row['failed']}")
                    log("   download Mbit/s by second: " + " ".join(f"{v:.1f}" for v in row["down_mbit"]))
                    log("   competitor Mbit/s:         " + " ".join(f"{v:.1f}" for v in row["comp_mbit"]))
        stop(origin)
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        for p in list(netlab.children):
            if p is not lk.p:
                stop(p, 5)
        lk.close()
        netlab.stop_all()
        cleanup_namespaces()
    (work / "results.json").write_text(json.dumps(results, indent=1))
    lines = [f"Download of {args.bytes:,} bytes through the proxy, a competing plain-HTTP download from the "
             f"origin; {args.rtt} ms, {args.rate:g} Mbit/s, {args.queue}-packet drop-tail; "
             f"medians of {args.runs} runs.", "",
             "| cc | competitor starts | proxy | download s (runs) | download Mbit/s by second |",
             "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['cc']} | {r['offset_s']:+g} s | {r['proxy']} | {r['time_s'] or 0:.2f} "
                     f"({', '.join(f'{t:.2f}' for t in r['times'])}) | "
                     + " ".join(f"{v:.1f}" for v in r["down_mbit"]) + " |")
    print("\n".join(lines))
    log(f"results in {work}/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
