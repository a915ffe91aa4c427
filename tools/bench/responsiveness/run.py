#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Measures writing for responsiveness across an emulated link: how long a small JS asked
for behind a large HTML, on the same HTTP/2 connection, takes to arrive, with lowat's
optimization on and off and with H2O and nghttpx as references.

Layout (everything inside two network namespaces that lowat-linkem creates and deletes):

  client ns  198.18.0.1  client.py (python3-h2, TLS, ALPN h2)
     |   linkem: per direction RTT/2 of delay, RATE Mbit/s, drop-tail QUEUE packets
  server ns  198.18.0.2  proxy under test :18443 (TLS h2)  ->  nginx origin :18080 (HTTP/1.1)

The origin serves /index.html (1,000,000 bytes, `<script src="/tiny.js">` in its first bytes)
and /tiny.js (1,024 bytes). The server namespace's congestion control (the one that decides
what the proxy's socket sends) is set per condition with `ip route ... congctl`.

One sample: a fresh TCP + TLS connection; the HTML is requested; the JS is requested on the
same connection at the moment under test:
  script   as soon as the script tag has arrived (the JS "at once")
  256k     after 256 KiB of the HTML's body has arrived (the congestion window is large by then)
  128k, 512k  the same after 128 or 512 KiB (not in the targets; to see the phases of a transfer)
Per condition (RTT, congestion control, proxy, moment): 1 warm-up sample, then --conns
samples; medians. See client.py for what exactly is timed.

Proxies: lowat-on, lowat-off (responsiveness: false), h2o-on (its latency optimization,
default), h2o-off (http2-latency-optimization-min-rtt: 4294967295), nghttpx (default),
nghttpx-opt (--frontend-http2-optimize-write-buffer-size). Every one has one worker.

Usage (as root):
  tools/bench/responsiveness/run.py [--quick] [--conns 10] [--rtt 100,250] [--cc cubic,bbr]
      [--proxies lowat-on,lowat-off,h2o-on,h2o-off,nghttpx,nghttpx-opt] [--moments script,256k]
      [--results FILE] [--ss-trace lowat-on] [--rate 20] [--ack-batch-ms 0] [--html-bytes N]
  --quick: RTT 100, cubic, 3 samples, lowat-on and lowat-off, both moments.
  --ack-batch-ms B: the client's packets reach the server side only at multiples of B ms
      (lowat-linkem --batch-ms-a), as Wi-Fi aggregation bunches a client's ACKs.
  --html-bytes N: a longer (or shorter) page, e.g. 10000000 with --moments script,4m to see a
      transfer that outlasts slow start; the targets are judged as for the default page.
Prints a table per condition and writes results.json and report.md into its work directory
(and report.md to --results FILE when given). Missing Debian packages are installed.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
CONF = HERE / "conf"
sys.path.insert(0, str(HERE.parent))
import netlab  # noqa: E402
from netlab import (ADDR_S, Linkem, cleanup_namespaces, find_linkem, install, log,  # noqa: E402
                    machine_name, measure_ping, med, render, run, spawn, stop, wait_listening)
CLIENT = HERE / "client.py"
PYTHON = "/usr/bin/python3"

ALL_PROXIES = ["lowat-on", "lowat-off", "h2o-on", "h2o-off", "nghttpx", "nghttpx-opt"]
SUBNET = "198.18.0.0/30"
DEV = "tun0"  # the device lowat-linkem creates in each namespace
PROXY_PORT = 18443
ORIGIN_PORT = 18080
HTML_SIZE = 1_000_000
JS_SIZE = 1024
SCRIPT_TAG = '<script src="/tiny.js"></script>'
LOWAT_ON = "{enabled: true, min_rtt: 20ms, max_cwnd: 0}"

# Targets for lowat-on (multiples of the RTT) and how the report names them.
TARGET_JS_SCRIPT = {"cubic": 1.03, "bbr": 1.08}
TARGET_JS_LATE = 1.15
TARGET_TTFB = 1.10  # "1 RTT": within 10 % of one RTT
TARGET_TOTAL = 0.02  # lowat-on total within 2 % of lowat-off




# ------------------------------------------------------------------ setup



def moment_bytes(m):
    """A moment's --moment argument for client.py: 'script', or bytes of HTML body ("256k", "4m")."""
    if m == "script":
        return m
    hit = re.fullmatch(r"(\d+)([km])", m)
    if not hit:
        return None
    return str(int(hit.group(1)) * (1024 if hit.group(2) == "k" else 1024 * 1024))


def moment_label(m):
    """'256k' -> '256 KiB', '4m' -> '4 MiB' (a moment given as bytes of HTML body)."""
    return m[:-1] + (" KiB" if m.endswith("k") else " MiB")


def make_files(work, html_size):
    www = work / "www"
    www.mkdir()
    head = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">" + SCRIPT_TAG +
            "<title>responsiveness</title></head><body>\n")
    tail = "</body></html>\n"
    line = "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.</p>\n"
    fill = html_size - len(head) - len(tail)
    body = (line * (fill // len(line) + 1))[:fill]
    (www / "index.html").write_text(head + body + tail)
    js = "/* tiny */ window.tiny = 1;\n"
    (www / "tiny.js").write_text((js + " " * JS_SIZE)[:JS_SIZE - 1] + "\n")
    assert (www / "index.html").stat().st_size == html_size
    for d in ("nginx-body", "nginx-proxy", "nginx-fastcgi", "nginx-uwsgi", "nginx-scgi"):
        (work / d).mkdir()
    cert, key = work / "cert.pem", work / "key.pem"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:198.18.0.2"])
    return cert, key



# ------------------------------------------------------------------ processes



def ns_setup(ns):
    # Cached TCP metrics (ssthresh, RTT) of an earlier connection would shape the next one.
    r = run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.tcp_no_metrics_save=1"], check=False)
    if r.returncode != 0:
        log(f"{ns}: tcp_no_metrics_save not writable ({r.stderr.strip()}); flushing tcp_metrics per run")


def set_cc(ns, cc):
    run(["ip", "-n", ns, "route", "replace", SUBNET, "dev", DEV, "proto", "kernel", "scope", "link", "src",
         ADDR_S, "congctl", cc])
    r = run(["ip", "-n", ns, "route", "show", SUBNET])
    if f"congctl {cc}" not in r.stdout:
        raise RuntimeError(f"congctl {cc} not set: {r.stdout}")


def start_origin(work, ns_s):
    """The nginx origin in the server namespace, serving work/www; returns once it listens."""
    logfile = work / "origin.log"
    conf = render(CONF / "origin-nginx.conf", work / "origin-nginx.conf", DIR=work, ADDR=ADDR_S,
                  ORIGIN_PORT=ORIGIN_PORT)
    p = spawn(["nginx", "-c", conf, "-e", work / "origin-nginx-error.log"], logfile, ns_s)
    wait_listening(ns_s, ORIGIN_PORT, p, logfile)
    return p


def start_proxy(name, work, ns_s, cert, key, lowat):
    logfile = work / f"{name}.log"
    common = dict(DIR=work, ADDR=ADDR_S, PORT=PROXY_PORT, CERT=cert, KEY=key, ORIGIN_PORT=ORIGIN_PORT)
    if name.startswith("lowat"):
        conf = render(CONF / "lowat.yaml", work / f"{name}.yaml", RESPONSIVENESS=LOWAT_ON if name == "lowat-on" else "false",
                      **common)
        cmd = [lowat, "-c", conf]
    elif name.startswith("h2o"):
        opt = "" if name == "h2o-on" else "http2-latency-optimization-min-rtt: 4294967295"
        conf = render(CONF / "h2o.yaml", work / f"{name}.yaml", LATENCY_OPT=opt, **common)
        cmd = [shutil.which("h2o") or "/usr/sbin/h2o", "-c", conf]
    elif name.startswith("nghttpx"):
        cmd = [shutil.which("nghttpx") or "/usr/sbin/nghttpx", "--conf=/dev/null", "--workers=1",
               f"--frontend={ADDR_S},{PROXY_PORT}", f"--backend={ADDR_S},{ORIGIN_PORT};;proto=http/1.1",
               "--no-ocsp", f"--pid-file={work}/nghttpx.pid", key, cert]
        if name == "nghttpx-opt":
            cmd.insert(-2, "--frontend-http2-optimize-write-buffer-size")
    else:
        raise ValueError(name)
    p = spawn(cmd, logfile, ns_s)
    wait_listening(ns_s, PROXY_PORT, p, logfile)
    if name.startswith("lowat"):
        end = time.monotonic() + 5
        while "listening on" not in logfile.read_text() and time.monotonic() < end:
            time.sleep(0.05)
    return p


class SsWatch(threading.Thread):
    """Reads `ss -tin` of the proxy's client connections in the server namespace: once per
    run to check the congestion control in use, or continuously (every `period` s) into a
    trace file, each snapshot after a line `@ MONOTONIC_MS`."""

    def __init__(self, ns, trace=None, period=0.01):
        super().__init__(daemon=True)
        self.ns, self.trace, self.period = ns, trace, period
        self.stop_ev = threading.Event()
        self.cc_seen = set()

    def run(self):
        f = open(self.trace, "w") if self.trace else None
        while not self.stop_ev.is_set():
            t = time.monotonic() * 1000.0
            r = run(["ip", "netns", "exec", self.ns, "ss", "-tinH", "state", "established",
                     f"( sport = :{PROXY_PORT} )"], check=False)
            for m in re.finditer(r"\b(cubic|bbr|reno|bbr2|htcp|vegas)\b", r.stdout):
                self.cc_seen.add(m.group(1))
            if f:
                f.write(f"@ {t:.3f}\n{r.stdout}")
            elif self.cc_seen:
                break
            self.stop_ev.wait(self.period if f else 0.2)
        if f:
            f.close()

    def halt(self):
        self.stop_ev.set()
        self.join(5)


def run_client(ns_c, ns_s, moment, conns, work, tag, trace, priorities):
    watch = SsWatch(ns_s, trace=(work / f"ss-{tag}.txt") if trace else None)
    watch.start()
    cmd = ["ip", "netns", "exec", ns_c, PYTHON, CLIENT, "--host", ADDR_S, "--port", PROXY_PORT,
           "--moment", moment_bytes(moment), "--samples", conns, "--warmup", 1,
           "--html-priority", priorities[0], "--js-priority", priorities[1]]
    try:
        r = run(cmd, check=False, timeout=60 + 45 * (conns + 1))
    finally:
        watch.halt()
    recs = []
    for line in r.stdout.splitlines():
        try:
            recs.append(json.loads(line))
        except ValueError:
            log(f"client: {line}")
    if r.returncode != 0 or r.stderr.strip():
        log(f"client exit {r.returncode}: {r.stderr.strip()[-1500:]}")
    return recs, sorted(watch.cc_seen)


# ------------------------------------------------------------------ figures



def summarize(recs, rtt):
    good = [r for r in recs if not r.get("warmup") and "error" not in r]
    errors = [r["error"] for r in recs if "error" in r]
    s = {"n": len(good), "errors": errors}
    for k in ("js_latency", "html_ttfb", "html_total", "html_first", "js_sent_after", "handshake",
              "js_arrival", "html_ttfb_rx", "html_total_rx"):
        s[k] = med([r.get(k) for r in good])
    s["js_at"] = med([r.get("js_at") for r in good])
    for k in ("js_latency", "html_ttfb", "html_total", "js_arrival"):
        s[k + "_x"] = s[k] / rtt if s[k] is not None else None
    s["js_latency_min_x"] = min(r["js_latency"] for r in good) / rtt if good else None
    s["js_latency_max_x"] = max(r["js_latency"] for r in good) / rtt if good else None
    s["statuses"] = sorted({f"{r.get('status_html')}/{r.get('status_js')}" for r in good})
    s["tls"] = sorted({r.get("tls") for r in good})
    s["max_recv"] = med([r.get("max_recv") for r in good])
    return s


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def verdicts(results):
    """Targets for lowat-on, per condition: list of (condition, target, value, met). Judged
    as the client read the bytes, as the peers' reference figures were measured; the arrival
    figure is given beside."""
    out = []
    for key, s in results.items():
        rtt, cc, proxy, moment = key
        if proxy != "lowat-on" or s["n"] == 0 or moment not in ("script", "256k"):
            continue  # other moments show the phases of a transfer; the targets name these two
        cond = f"{rtt} ms {cc} {moment}"
        if moment == "script":
            lim = TARGET_JS_SCRIPT.get(cc, TARGET_JS_SCRIPT["bbr"])
        else:
            lim = TARGET_JS_LATE
        js, ttfb = s["js_latency_x"], s["html_ttfb_x"]
        out.append((cond, f"JS <= {lim:.2f} x RTT", f"{js:.3f} (arrival {fmt(s['js_arrival_x'], '.3f')})", js <= lim))
        out.append((cond, "TTFB 1 RTT (<= 1.10)", f"{ttfb:.2f}", ttfb <= TARGET_TTFB))
        off = results.get((rtt, cc, "lowat-off", moment))
        if off and off["n"]:
            ratio = s["html_total"] / off["html_total"]
            out.append((cond, "HTML total within 2 % of off", f"{ratio:.3f}", abs(ratio - 1) <= TARGET_TOTAL))
    return out


def batch_note(meta):
    ms = meta.get("ack_batch_ms", 0)
    return f", the client's packets delivered in batches every {ms:g} ms" if ms else ""


def report(results, meta):
    lines = [f"Run {meta['date']} on {meta['machine']}, kernel {meta['kernel']}.", "",
             f"Command: `{meta['command']}`", "",
             f"Link: linkem, {meta['rate']} Mbit/s each way, drop-tail {meta['queue']} packets, one-way delay "
             f"RTT/2{batch_note(meta)}; HTML {meta['html_bytes']:,} bytes, JS {JS_SIZE:,} bytes; {meta['conns']} samples per row after 1 "
             "warm-up, fresh TCP+TLS connection each; medians. `x` = multiple of the nominal RTT. "
             "TTFB: HTML request written -> its response HEADERS received. Total: HTML request -> its last "
             "byte. JS: JS request written -> its last byte, as the client read it (read) and at its "
             "arrival (the kernel's receive time of the segment that completed it, SO_TIMESTAMPNS: "
             "without the Python client's own delay in reading and decrypting). Targets are judged as read, "
             "the way the reference figures of the peers were measured.",
             "Priority signals: " + (", ".join(f"{w} `priority: {v}`" for w, v in zip(("HTML", "JS"), meta["priorities"]) if v)
                                     or "none (no `priority` header, no PRIORITY frames)") + ".", ""]
    for rtt, ping in meta["ping"].items():
        lines.append(f"- RTT {rtt} ms: ping min {fmt(ping, '.1f')} ms across the link; linkem, server -> client: "
                     + "; ".join(meta["linkem"].get(rtt, [])))
    lines.append("")
    conds = []
    for (rtt, cc, proxy, moment) in results:
        if (rtt, cc, moment) not in conds:
            conds.append((rtt, cc, moment))
    for rtt, cc, moment in conds:
        what = "JS requested as soon as the script tag arrived" if moment == "script" else \
            f"JS requested after {moment_label(moment)} of HTML"
        lines += [f"### RTT {rtt} ms, {cc}, {what}", "",
                  "| proxy | JS x RTT, read | (min-max x) | JS ms, read | JS x RTT, arrival | TTFB x RTT | "
                  "HTML total ms | total / lowat-off | n | cc seen |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        off = results.get((rtt, cc, "lowat-off", moment))
        for (r2, c2, proxy, m2), s in results.items():
            if (r2, c2, m2) != (rtt, cc, moment):
                continue
            ratio = s["html_total"] / off["html_total"] if off and off["html_total"] and s["html_total"] else None
            lines.append(f"| {proxy} | {fmt(s['js_latency_x'], '.3f')} | "
                         f"{fmt(s['js_latency_min_x'], '.2f')}-{fmt(s['js_latency_max_x'], '.2f')} | "
                         f"{fmt(s['js_latency'], '.1f')} | {fmt(s['js_arrival_x'], '.3f')} | "
                         f"{fmt(s['html_ttfb_x'], '.2f')} | {fmt(s['html_total'], '.0f')} | {fmt(ratio, '.3f')} | "
                         f"{s['n']}{' (' + str(len(s['errors'])) + ' failed)' if s['errors'] else ''} | "
                         f"{','.join(s.get('cc_seen', [])) or '?'} |")
        lines.append("")
    v = verdicts(results)
    if v:
        lines += ["### lowat-on against the targets", "", "| condition | target | value | |", "|---|---|---|---|"]
        for cond, target, value, met in v:
            lines.append(f"| {cond} | {target} | {value} | {'met' if met else 'NOT met'} |")
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------ main



def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="RTT 100, cubic, 3 samples, lowat-on/off, both moments")
    ap.add_argument("--conns", type=int, default=None, help="samples per condition after 1 warm-up (10)")
    ap.add_argument("--rtt", default=None, help="RTTs in ms (100,250)")
    ap.add_argument("--cc", default=None, help="server congestion controls (cubic,bbr)")
    ap.add_argument("--proxies", default=None, help=",".join(ALL_PROXIES))
    ap.add_argument("--moments", default="script,256k",
                    help="script,256k (also 128k, 512k, or any NNNk / NNNm of HTML body)")
    ap.add_argument("--html-bytes", type=int, default=HTML_SIZE,
                    help=f"size of /index.html ({HTML_SIZE:,}); the targets are for the default")
    ap.add_argument("--rate", type=float, default=20.0, help="Mbit/s each way (20)")
    ap.add_argument("--queue", type=int, default=1000, help="drop-tail queue, packets (1000)")
    ap.add_argument("--ack-batch-ms", type=float, default=0,
                    help="the client's packets (its ACKs) reach the server in batches, every this many ms, "
                         "as Wi-Fi aggregation or a cellular scheduler bunch them (0: none)")
    ap.add_argument("--lowat", default=str(REPO / "build" / "proxy" / "lowat"))
    ap.add_argument("--results", default=None, help="also write the markdown report here")
    ap.add_argument("--ss-trace", default="", help="proxies whose runs get a continuous `ss -tin` trace")
    ap.add_argument("--html-priority", default="", help="RFC 9218 `priority` header on the HTML request (none)")
    ap.add_argument("--js-priority", default="", help="RFC 9218 `priority` header on the JS request (none)")
    args = ap.parse_args()

    if args.quick:
        rtts, ccs, conns, proxies = [100], ["cubic"], 3, ["lowat-on", "lowat-off"]
    else:
        rtts, ccs, conns, proxies = [100, 250], ["cubic", "bbr"], 10, list(ALL_PROXIES)
    if args.rtt:
        rtts = [int(x) for x in args.rtt.split(",")]
    if args.cc:
        ccs = args.cc.split(",")
    if args.conns:
        conns = args.conns
    if args.proxies:
        proxies = args.proxies.split(",")
    moments = args.moments.split(",")
    for p in proxies:
        if p not in ALL_PROXIES:
            ap.error(f"unknown proxy {p}")
    for m in moments:
        at = moment_bytes(m)
        if at is None:
            ap.error(f"unknown moment {m}")
        elif at != "script" and int(at) >= args.html_bytes:
            ap.error(f"moment {m} is past the end of a {args.html_bytes:,}-byte HTML")
    if args.html_bytes < 4096:
        ap.error("--html-bytes: at least 4096")
    traced = set(filter(None, args.ss_trace.split(",")))
    if os.geteuid() != 0:
        sys.exit("run.py: needs root (network namespaces)")
    lowat = Path(args.lowat)
    if any(p.startswith("lowat") for p in proxies) and not lowat.exists():
        sys.exit(f"run.py: {lowat} missing: build it first (ninja -C build)")

    want = ["python3-h2", "nginx-light", "openssl", "iproute2", "iputils-ping"]
    if any(p.startswith("h2o") for p in proxies):
        want.append("h2o")
    if any(p.startswith("nghttpx") for p in proxies):
        want.append("nghttp2-proxy")
    install(want)
    work = Path(tempfile.mkdtemp(prefix="lowat-resp-"))
    work.chmod(0o755)
    log(f"work directory {work}")
    cert, key = make_files(work, args.html_bytes)
    linkem_bin = find_linkem(work)
    tag = f"lwr{os.getpid()}"
    ns_c, ns_s = f"{tag}c", f"{tag}s"

    per_run = {100: 1.5, 250: 3.0}
    estimate = sum((conns + 1) * per_run.get(r, r / 60) + 3 for r in rtts) * len(ccs) * len(proxies) * len(moments)
    log(f"about {estimate / 60:.0f} min of measurement")

    results = {}
    meta = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "kernel": platform.release(),
            "machine": machine_name(),
            "command": "tools/bench/responsiveness/run.py " + " ".join(sys.argv[1:]),
            "rate": args.rate, "queue": args.queue, "ack_batch_ms": args.ack_batch_ms, "html_bytes": args.html_bytes,
            "priorities": (args.html_priority, args.js_priority), "conns": conns, "ping": {}, "linkem": {}}
    interrupted = False

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    t_start = time.monotonic()
    try:
        for rtt in rtts:
            budget = int(sum((conns + 1) * per_run.get(rtt, rtt / 60) * 4 + 60 for _ in ccs for _ in proxies
                             for _ in moments)) + 120
            lk = Linkem(linkem_bin, work, ns_c, ns_s, rtt, args.rate, args.queue, min(budget, 3600),
                        args.ack_batch_ms)
            try:
                ns_setup(ns_c)
                ns_setup(ns_s)
                origin = start_origin(work, ns_s)
                meta["ping"][rtt] = measure_ping(ns_c)[0]
                for cc in ccs:
                    set_cc(ns_s, cc)
                    for proxy in proxies:
                        p = start_proxy(proxy, work, ns_s, cert, key, lowat)
                        try:
                            for moment in moments:
                                for ns in (ns_c, ns_s):
                                    run(["ip", "-n", ns, "tcp_metrics", "flush", "all"], check=False)
                                t0 = time.monotonic()
                                recs, cc_seen = run_client(ns_c, ns_s, moment, conns, work,
                                                           f"{rtt}-{cc}-{proxy}-{moment}", proxy in traced,
                                                           (args.html_priority, args.js_priority))
                                for r in recs:
                                    if "html_bytes" in r:
                                        r["html_left"] = args.html_bytes - r["js_at"]
                                s = summarize(recs, rtt)
                                s["cc_seen"] = cc_seen
                                s["samples"] = recs
                                results[(rtt, cc, proxy, moment)] = s
                                log(f"{rtt:>4} ms {cc:<5} {proxy:<12} {moment:<6} JS {fmt(s['js_latency'], '7.1f')} ms "
                                    f"= {fmt(s['js_latency_x'], '.3f')} RTT (arrival {fmt(s['js_arrival_x'], '.3f')})  "
                                    f"TTFB {fmt(s['html_ttfb_x'], '.2f')} RTT  "
                                    f"total {fmt(s['html_total'], '6.0f')} ms  n={s['n']}"
                                    f"{' errors ' + str(s['errors'][:2]) if s['errors'] else ''}  cc={cc_seen} "
                                    f"({time.monotonic() - t0:.0f} s)")
                        finally:
                            stop(p)
                stop(origin)
            finally:
                for p in list(netlab.children):
                    if p is not lk.p:
                        stop(p, 5)
                stats = lk.close()
                meta["linkem"][rtt] = [line.split(": ", 1)[1] for line in stats.splitlines()
                                       if line.startswith(f"linkem stats {ns_s} -> {ns_c}:")]
                drops = re.findall(r"queue-full (\d+)", stats)
                if any(int(d) for d in drops):
                    log(f"linkem dropped packets at RTT {rtt}: {drops}")
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted")
    finally:
        netlab.stop_all()
        cleanup_namespaces()
    meta["minutes"] = round((time.monotonic() - t_start) / 60, 1)

    dump = {"meta": meta, "results": [{"rtt": k[0], "cc": k[1], "proxy": k[2], "moment": k[3], **v}
                                      for k, v in results.items()]}
    (work / "results.json").write_text(json.dumps(dump, indent=1))
    text = report({k: v for k, v in results.items()}, meta)
    text += f"\nMeasured in {meta['minutes']} min.\n"
    (work / "report.md").write_text(text)
    if args.results:
        Path(args.results).write_text(text)
    print(text)
    log(f"results in {work}/results.json and report.md")
    return 1 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
