# SPDX-License-Identifier: MIT
"""tools/ab-report, the A/B report over lowat's per-arm /metrics: run as a user runs it (a
subprocess of /usr/bin/python3) on generated scrapes with known answers: counters subtract,
percentiles interpolate within buckets, intervals find a real difference and not an absent
one, a restart is detected, bad input exits 2 naming file:line, small arms say "n too small".
The statistical helpers are also checked in-process against published values. One live test
scrapes a running lowat with an experiment and an admin listener (skipped on a lowat without)."""

import http.server
import importlib.machinery
import importlib.util
import json
import math
import random
import re
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest

from conftest import REPO, SLOW, make_config, to_yaml

TOOL = REPO / "tools" / "ab-report" / "ab-report"
PYTHON = "/usr/bin/python3"  # Debian's, like the rest of the suite
BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
COUNTERS = ["requests", "pushes_promised", "pushes_cancelled", "pushed_bytes", "pushed_then_requested",
            "hints_forwarded"]


# ---------------------------------------------------------------- generated scrapes

def histogram_lines(name, exp, arm, xs):
    lab = f'experiment="{exp}",arm="{arm}"'
    out = []
    for b in BOUNDS + ["+Inf"]:
        n = sum(1 for x in xs if b == "+Inf" or x <= b)
        out.append(f'{name}_bucket{{{lab},le="{b}"}} {n}')
    out.append(f"{name}_sum{{{lab}}} {sum(xs)!r}")
    out.append(f"{name}_count{{{lab}}} {len(xs)}")
    return out


def scrape_text(arms):
    """/metrics text as lowat writes it. arms: {(experiment, arm): {counter: n, "ttfb": [s],
    "page": [s]}}; missing counters are 0."""
    lines = ["# HELP lowat_connections_open Open client connections.", "# TYPE lowat_connections_open gauge",
             "lowat_connections_open 3"]
    for key in COUNTERS:
        lines += [f"# HELP lowat_{key}_total A counter.", f"# TYPE lowat_{key}_total counter"]
        for (e, a), d in arms.items():
            lines.append(f'lowat_{key}_total{{experiment="{e}",arm="{a}"}} {d.get(key, 0)}')
    for name, key in (("lowat_parent_ttfb_seconds", "ttfb"), ("lowat_page_complete_seconds", "page")):
        lines.append(f"# TYPE {name} histogram")
        for (e, a), d in arms.items():
            lines += histogram_lines(name, e, a, d.get(key, []))
    return "\n".join(lines) + "\n"


def write(tmp_path, name, arms_or_text):
    p = tmp_path / name
    p.write_text(arms_or_text if isinstance(arms_or_text, str) else scrape_text(arms_or_text))
    return p


def run_tool(*args, timeout=30):
    return subprocess.run([PYTHON, str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=timeout)


def report(*args):
    p = run_tool(*args, "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def experiment(rep, name):
    return next(e for e in rep["experiments"] if e["name"] == name)


def arm(rep, exp, name):
    return next(a for a in experiment(rep, exp)["arms"] if a["name"] == name)


def diff(rep, exp, arm_name, metric):
    return next(d for d in experiment(rep, exp)["differences"] if d["arm"] == arm_name and d["metric"] == metric)


def normal(seed, mean, sd, n):
    r = random.Random(seed)
    return [max(0.0, r.gauss(mean, sd)) for _ in range(n)]


def load_module():
    loader = importlib.machinery.SourceFileLoader("ab_report", str(TOOL))
    spec = importlib.util.spec_from_loader("ab_report", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------- the report

def test_ab_report_counters_subtract(tmp_path):
    before = write(tmp_path, "before.txt", {
        ("pvh", "control"): {"requests": 500, "hints_forwarded": 10, "ttfb": [0.02] * 40},
        ("pvh", "push"): {"requests": 400, "pushes_promised": 1200, "pushes_cancelled": 100,
                          "pushed_bytes": 1_000_000, "pushed_then_requested": 7, "ttfb": [0.02] * 40},
        ("-", "-"): {"requests": 9}})
    after = write(tmp_path, "after.txt", {
        ("pvh", "control"): {"requests": 1500, "hints_forwarded": 10, "ttfb": [0.02] * 40 + [0.07] * 100},
        ("pvh", "push"): {"requests": 1400, "pushes_promised": 4200, "pushes_cancelled": 400,
                          "pushed_bytes": 5_000_000, "pushed_then_requested": 37,
                          "ttfb": [0.02] * 40 + [0.2] * 50 + [0.3] * 50},
        ("-", "-"): {"requests": 20}})
    rep = report(before, after)
    assert rep["restart"] is None
    assert rep["outside_experiments"] == {"requests": 11}
    assert experiment(rep, "pvh")["baseline"] == "control"
    c, p = arm(rep, "pvh", "control"), arm(rep, "pvh", "push")
    assert (c["requests"], c["hints_forwarded"], c["hints_per_request"]) == (1000, 0, 0.0)
    assert (p["requests"], p["pushes_promised"], p["pushes_cancelled"]) == (1000, 3000, 300)
    assert p["pushes_per_request"] == pytest.approx(3.0)
    assert p["cancel_rate"] == pytest.approx(0.1)
    assert p["pushed_bytes_per_request"] == pytest.approx(4000.0)
    assert p["pushed_then_requested_rate"] == pytest.approx(0.01)
    assert c["cancel_rate"] is None  # no pushes: no rate
    # Histograms subtract too: only the window's observations count.
    assert c["parent_ttfb"]["count"] == 100 and c["parent_ttfb"]["mean_s"] == pytest.approx(0.07)
    assert p["parent_ttfb"]["count"] == 100 and p["parent_ttfb"]["mean_s"] == pytest.approx(0.25)
    d = diff(rep, "pvh", "push", "parent_ttfb_mean_s")
    assert d["difference"] == pytest.approx(0.18)
    assert d["ci95"][0] > 0


def test_ab_report_percentiles_interpolate_within_buckets(tmp_path):
    empty = write(tmp_path, "before.txt", "")
    after = write(tmp_path, "after.txt", {
        # 50 in (0.01, 0.025], 50 in (0.05, 0.1]: p50 is the top of the first (rank 50 of 100),
        # p90 is 40/50 of the way through the second.
        ("e", "a"): {"requests": 100, "ttfb": [0.02] * 50 + [0.06] * 50,
                     # 100 in (0.1, 0.25], 100 in (0.25, 0.5]: p90 = 0.25 + 0.25 * 80/100.
                     "page": [0.2] * 100 + [0.3] * 100},
        # 80 % beyond the last finite bound: p90 is only known to be above 10 s.
        ("e", "b"): {"requests": 10, "ttfb": [0.001] * 2 + [30.0] * 8}})
    rep = report(empty, after)
    a, b = arm(rep, "e", "a"), arm(rep, "e", "b")
    assert a["parent_ttfb"]["p50_s"] == pytest.approx(0.025)
    assert a["parent_ttfb"]["p90_s"] == pytest.approx(0.09)
    assert a["parent_ttfb"]["mean_s"] == pytest.approx(0.04)  # exact, from _sum
    assert a["page_complete"]["p50_s"] == pytest.approx(0.25)
    assert a["page_complete"]["p90_s"] == pytest.approx(0.45)
    assert b["parent_ttfb"]["p90_s"] == pytest.approx(10.0) and b["parent_ttfb"]["p90_above_last_bucket"]
    text = run_tool(empty, after).stdout
    assert "> 10000 ms" in text, text


def test_ab_report_welch_interval_finds_a_known_difference(tmp_path):
    n = 2000
    before = write(tmp_path, "before.txt", "")
    after = write(tmp_path, "after.txt", {
        ("exp", "control"): {"requests": n, "ttfb": normal(1, 0.200, 0.05, n), "page": normal(2, 0.8, 0.2, n)},
        ("exp", "hints"): {"requests": n, "ttfb": normal(3, 0.250, 0.05, n), "page": normal(4, 0.8, 0.2, n)}})
    rep = report(before, after)
    ttfb = diff(rep, "exp", "hints", "parent_ttfb_mean_s")
    lo, hi = ttfb["ci95"]
    assert lo < 0.050 < hi, ttfb  # contains the true difference
    assert lo > 0, ttfb  # and excludes 0: the effect is large
    assert ttfb["method"].startswith("welch")
    page = diff(rep, "exp", "hints", "page_complete_mean_s")
    lo, hi = page["ci95"]
    assert lo < 0 < hi, page  # no effect: contains 0
    assert hi - lo < 0.05, page  # and is still a useful interval


def test_ab_report_bucketed_welch_interval_covers_at_95_percent():
    """With lowat's buckets, the midpoint variance errs on the wide side for a smooth
    distribution: in repeated experiments without an effect the interval covers 0 at least
    95 % of the time (97.5 % with this seed; 93 % leaves room for sampling noise). The tool's
    own functions, in-process, for speed."""
    mod = load_module()
    r = random.Random(7)

    def hist(xs):
        cum = [sum(1 for x in xs if x <= b) for b in BOUNDS] + [len(xs)]
        return mod.summarize_hist(mod.Hist(BOUNDS + [math.inf], cum, sum(xs)))
    covered, reps = 0, 200
    for _ in range(reps):
        a = hist([r.lognormvariate(math.log(0.3), 0.5) for _ in range(200)])
        b = hist([r.lognormvariate(math.log(0.3), 0.5) for _ in range(200)])
        _, (lo, hi), _ = mod.welch(a["mean_s"], a["var"], a["count"], b["mean_s"], b["var"], b["count"])
        covered += lo <= 0 <= hi
    assert covered >= 0.93 * reps, covered


def test_ab_report_rates_and_per_request_counts(tmp_path):
    empty = write(tmp_path, "before.txt", "")
    after = write(tmp_path, "after.txt", {
        ("e", "control"): {"requests": 1000, "pushes_promised": 2000, "pushes_cancelled": 400, "hints_forwarded": 0},
        ("e", "push"): {"requests": 1000, "pushes_promised": 3000, "pushes_cancelled": 900, "hints_forwarded": 0},
        ("e", "rare"): {"requests": 1000, "pushes_promised": 40, "pushes_cancelled": 2}})
    rep = report(empty, after)
    # Pushes per request, Poisson: 3 - 2 = 1, SE = sqrt(3000 + 2000) / 1000.
    d = diff(rep, "e", "push", "pushes_per_request")
    half = 1.959964 * math.sqrt(5000) / 1000
    assert d["method"] == "poisson"
    assert d["ci95"] == pytest.approx([1 - half, 1 + half], abs=1e-4)
    # Cancel rate, Wald: 0.3 - 0.2 with SE sqrt(.3*.7/3000 + .2*.8/2000).
    d = diff(rep, "e", "push", "cancel_rate")
    half = 1.959964 * math.sqrt(0.3 * 0.7 / 3000 + 0.2 * 0.8 / 2000)
    assert d["method"] == "wald"
    assert d["ci95"] == pytest.approx([0.1 - half, 0.1 + half], abs=1e-4)
    # Few events: Newcombe's interval, not Wald's.
    assert diff(rep, "e", "rare", "cancel_rate")["method"] == "newcombe"
    # Nothing in either arm: no interval of width zero.
    d = diff(rep, "e", "push", "hints_per_request")
    assert d["ci95"] is None and "no events" in d["note"]


def test_ab_report_interval_helpers_match_published_values():
    mod = load_module()
    # Student's t, 0.975 quantile (tables).
    for df, t in ((10, 2.228139), (29, 2.045230), (60, 2.000298), (1000, 1.962339)):
        assert mod.t_quantile(0.975, df) == pytest.approx(t, abs=2e-5)
    # Newcombe (1998), Statistics in Medicine 17:873, table II, method 10.
    _, ci, method = mod.proportion_diff(9, 10, 3, 10)
    assert method == "newcombe" and ci == pytest.approx([0.1705, 0.8090], abs=1e-4)
    _, ci, _ = mod.proportion_diff(5, 56, 0, 29)
    assert ci == pytest.approx([-0.0381, 0.1926], abs=1e-4)
    # Welch-Satterthwaite degrees of freedom for equal variances and sizes: 2n - 2.
    _, _, df = mod.welch(1.0, 4.0, 50, 0.0, 4.0, 50)
    assert df == pytest.approx(98)


def test_ab_report_restart_uses_the_second_scrape_alone(tmp_path):
    before = write(tmp_path, "before.txt", {("e", "control"): {"requests": 5000, "ttfb": [0.02] * 100},
                                            ("e", "b"): {"requests": 4000}})
    after = write(tmp_path, "after.txt", {("e", "control"): {"requests": 60, "ttfb": [0.02] * 60},
                                          ("e", "b"): {"requests": 70}})
    p = run_tool(before, after, "--json")
    assert p.returncode == 0, p.stderr
    assert "restarted" in p.stderr
    rep = json.loads(p.stdout)
    assert "went down" in rep["restart"]
    assert arm(rep, "e", "control")["requests"] == 60 and arm(rep, "e", "b")["requests"] == 70
    assert arm(rep, "e", "control")["parent_ttfb"]["count"] == 60
    text = run_tool(before, after).stdout
    assert "lowat restarted between the scrapes" in text
    # Counters already past their old values: only a start time can tell.
    started = "# TYPE lowat_start_time_seconds gauge\nlowat_start_time_seconds %d\n"
    before = write(tmp_path, "before2.txt", started % 1000 + scrape_text({("e", "control"): {"requests": 5}}))
    after = write(tmp_path, "after2.txt", started % 2000 + scrape_text({("e", "control"): {"requests": 50}}))
    rep = report(before, after)
    assert "lowat_start_time_seconds" in rep["restart"] and arm(rep, "e", "control")["requests"] == 50


def test_ab_report_histogram_count_racing_its_buckets_is_a_note(tmp_path):
    """lowat reads buckets, sum and count one after another while workers observe: a _count
    one ahead of the +Inf bucket is not malformed input."""
    text = scrape_text({("e", "control"): {"requests": 40, "ttfb": [0.01] * 40}})
    text = text.replace('lowat_parent_ttfb_seconds_count{experiment="e",arm="control"} 40',
                        'lowat_parent_ttfb_seconds_count{experiment="e",arm="control"} 41')
    after = write(tmp_path, "after.txt", text)
    p = run_tool(write(tmp_path, "before.txt", ""), after, "--json")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert arm(rep, "e", "control")["parent_ttfb"]["count"] == 40
    assert any(str(after) in n and "+Inf bucket holds 40" in n for n in rep["notes"]), rep["notes"]


@pytest.mark.parametrize("broken, line, what", [
    ('lowat_requests_total{experiment="e",arm="a"} twelve', 2, "not a number"),
    ('lowat_requests_total{experiment="e",arm="a" 12', 2, "label"),
    ('lowat_requests_total{experiment="e"} 12', 2, "without experiment and arm"),
    ('lowat_requests_total{experiment="e",arm="a"} 12\nlowat_requests_total{arm="a",experiment="e"} 13', 3,
     "twice"),
    ('lowat_parent_ttfb_seconds_bucket{experiment="e",arm="a",le="0.1"} 5\n'
     'lowat_parent_ttfb_seconds_sum{experiment="e",arm="a"} 0.3', 2, "+Inf"),
    ('lowat_parent_ttfb_seconds_bucket{experiment="e",arm="a",le="0.1"} 5\n'
     'lowat_parent_ttfb_seconds_bucket{experiment="e",arm="a",le="+Inf"} 3\n'
     'lowat_parent_ttfb_seconds_sum{experiment="e",arm="a"} 0.3', 3, "cumulative"),
    ("# TYPE lowat_requests_total", 2, "TYPE"),
])
def test_ab_report_malformed_input_exit_2_names_file_and_line(tmp_path, broken, line, what):
    before = write(tmp_path, "before.txt", "")
    after = write(tmp_path, "after.txt", "lowat_connections_open 1\n" + broken + "\n")
    p = run_tool(before, after)
    assert p.returncode == 2, p
    assert f"{after}:{line}:" in p.stderr and what in p.stderr, p.stderr
    assert p.stdout == ""


def test_ab_report_unreadable_or_foreign_input_exit_2(tmp_path):
    good = write(tmp_path, "good.txt", {("e", "a"): {"requests": 1}})
    p = run_tool(tmp_path / "missing.txt", good)
    assert p.returncode == 2 and f"{tmp_path / 'missing.txt'}: cannot read" in p.stderr, p.stderr
    html = write(tmp_path, "page.html", "<html><body>hello</body></html>\n")
    p = run_tool(good, html)
    assert p.returncode == 2 and f"{html}:1:" in p.stderr, p.stderr
    other = write(tmp_path, "other.txt", "# TYPE go_goroutines gauge\ngo_goroutines 12\n")
    p = run_tool(good, other)
    assert p.returncode == 2 and "no lowat_ metrics" in p.stderr, p.stderr
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"lowat_connections_open 1\n\xff\xfe\n")
    p = run_tool(good, binary)
    assert p.returncode == 2 and f"{binary}:2: not UTF-8" in p.stderr, p.stderr


def test_ab_report_small_arms_say_n_too_small(tmp_path):
    empty = write(tmp_path, "before.txt", "")
    after = write(tmp_path, "after.txt", {
        ("e", "control"): {"requests": 500, "pushes_promised": 500, "ttfb": normal(1, 0.1, 0.02, 500)},
        ("e", "tiny"): {"requests": 12, "pushes_promised": 20, "ttfb": normal(2, 0.1, 0.02, 12)}})
    rep = report(empty, after)
    for metric in ("pushes_per_request", "parent_ttfb_mean_s", "cancel_rate"):
        d = diff(rep, "e", "tiny", metric)
        assert d["ci95"] is None and d["note"] == "n too small", d
    assert diff(rep, "e", "tiny", "parent_ttfb_mean_s")["n"] == [12, 500]
    text = run_tool(empty, after).stdout
    assert "n too small" in text and "n = 12 vs 500 (need 30)" in text, text


def test_ab_report_baseline_choice_and_filters(tmp_path):
    empty = write(tmp_path, "before.txt", "")
    arms = {("one", "zeta"): {"requests": 100}, ("one", "control"): {"requests": 100},
            ("one", "alpha"): {"requests": 100},
            ("two", "push"): {"requests": 100}, ("two", "hints"): {"requests": 100}}
    after = write(tmp_path, "after.txt", arms)
    rep = report(empty, after)
    assert experiment(rep, "one")["baseline"] == "control"  # "control" wins when present
    assert experiment(rep, "two")["baseline"] == "hints"  # else the first by name
    assert [a["name"] for a in experiment(rep, "one")["arms"]] == ["control", "alpha", "zeta"]
    rep = report(empty, after, "--experiment", "two", "--baseline", "push", "--metric", "pushes_per_request")
    assert [e["name"] for e in rep["experiments"]] == ["two"]
    assert experiment(rep, "two")["baseline"] == "push"
    assert [(d["arm"], d["metric"]) for d in experiment(rep, "two")["differences"]] == [
        ("hints", "pushes_per_request")]
    p = run_tool(empty, after, "--experiment", "two", "--baseline", "nope")
    assert p.returncode == 2 and "nope" in p.stderr and "hints, push" in p.stderr, p.stderr
    p = run_tool(empty, after, "--experiment", "three")
    assert p.returncode == 2 and "one, two" in p.stderr, p.stderr
    p = run_tool(empty, after, "--metric", "latency")
    assert p.returncode == 2 and "unknown --metric" in p.stderr, p.stderr


def test_ab_report_text_table_is_aligned(tmp_path):
    empty = write(tmp_path, "before.txt", "")
    after = write(tmp_path, "after.txt", {
        ("pvh", "control"): {"requests": 400, "ttfb": normal(5, 0.1, 0.02, 400)},
        ("pvh", "push+hints"): {"requests": 400, "pushes_promised": 800, "ttfb": normal(6, 0.1, 0.02, 400)}})
    p = run_tool(empty, after)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    lines = p.stdout.splitlines()
    assert "experiment pvh: 2 arm(s), baseline control" in lines
    head = next(i for i, l in enumerate(lines) if l.lstrip().startswith("control (baseline)"))
    col_end = len(lines[head])  # the last column is right-aligned: every row ends where its title does
    for l in lines[head + 1:]:
        if not l:
            break
        assert len(l) == col_end, (l, lines[head])
    diff_head = next(l for l in lines if l.startswith("arm ") and "95 % CI" in l)
    row = next(l for l in lines if l.startswith("push+hints") and "parent TTFB mean" in l)
    assert row.index("[") == diff_head.index("95 % CI"), (row, diff_head)


def test_ab_report_url_mode_scrapes_twice(tmp_path):
    texts = [scrape_text({("e", "control"): {"requests": 10}, ("e", "b"): {"requests": 10}}),
             scrape_text({("e", "control"): {"requests": 110}, ("e", "b"): {"requests": 60}})]
    served = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = texts[min(len(served), 1)].encode()
            served.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/metrics"
        t0 = time.monotonic()
        rep = report("--url", url, "--interval", "0.3")
        assert time.monotonic() - t0 >= 0.3
        assert served == ["/metrics", "/metrics"]
        assert arm(rep, "e", "control")["requests"] == 100 and arm(rep, "e", "b")["requests"] == 50
    finally:
        srv.shutdown()
        srv.server_close()
    p = run_tool("--url", f"http://127.0.0.1:{closed_port()}/metrics", "--interval", "0.1")
    assert p.returncode == 2 and "cannot scrape" in p.stderr and "first scrape" in p.stderr, p.stderr
    p = run_tool("--url", "http://127.0.0.1:1/metrics", "--interval", "4000")
    assert p.returncode == 2 and "--interval" in p.stderr, p.stderr


def closed_port():
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def access_line(i, exp, arm_name, total_ms, status=200, push=False, upstream_ms=None):
    up = upstream_ms if upstream_ms is not None else max(0.0, total_ms - 1)
    return (f"2025-01-01T00:00:{i % 60:02d}.000Z client=127.0.0.1 proto=h2 method=GET authority=a.test "
            f'path="/p{i}" status={status} bytes=100 backend=app member=127.0.0.1:9000 '
            f"upstream_ms={up:.1f} total_ms={total_ms:.1f} experiment={exp} arm={arm_name}"
            + (" push=1" if push else ""))


def test_ab_report_access_log_mode(tmp_path):
    r = random.Random(11)
    lines = []
    for i in range(400):
        lines.append(access_line(i, "pvh", "control", r.gauss(120, 20), status=503 if i % 40 == 0 else 200))
        lines.append(access_line(i, "pvh", "push", r.gauss(100, 20)))
        lines.append(access_line(i, "pvh", "push", 5.0, push=True))
        lines.append(access_line(i, "pvh", "push", 6.0, push=True))
    lines.append("2025-01-01T00:00:00.000Z client=127.0.0.1 proto=h2 method=GET authority=a.test path=\"/x\" "
                 "status=502 bytes=0 backend=app member=- upstream_ms=-1.0 total_ms=3.0")  # outside
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")
    rep = report("--access-log", log)
    assert rep["mode"] == "access" and rep["outside_experiments"] == {"requests": 1}
    c, p = arm(rep, "pvh", "control"), arm(rep, "pvh", "push")
    assert (c["requests"], c["pushes"], c["errors"]) == (400, 0, 10)
    assert (p["requests"], p["pushes"], p["pushes_per_request"]) == (400, 800, 2.0)
    d = diff(rep, "pvh", "push", "total_mean_s")
    lo, hi = d["ci95"]
    assert lo < -0.020 < hi and hi < 0, d  # true difference -20 ms, clearly below 0
    assert diff(rep, "pvh", "push", "error_rate")["difference"] == pytest.approx(-0.025)
    text = run_tool("--access-log", log).stdout
    assert "total time mean" in text and "5xx rate" in text, text
    # A broken line names its place.
    log.write_text(lines[0] + "\n" + lines[1].replace("total_ms=", "total_ms=abc") + "\n")
    p = run_tool("--access-log", log)
    assert p.returncode == 2 and f"{log}:2: total_ms=" in p.stderr, p.stderr
    log.write_text("hello world\n")
    p = run_tool("--access-log", log)
    assert p.returncode == 2 and f"{log}:1: not a lowat access log line" in p.stderr, p.stderr


def test_ab_report_usage_errors_exit_2(tmp_path):
    for args in ((), (tmp_path / "only-one.txt",), ("a", "b", "--access-log", "c")):
        p = run_tool(*args)
        assert p.returncode == 2 and "usage" in p.stderr, (args, p.stderr)
    p = run_tool("--help")
    assert p.returncode == 0 and "--access-log" in p.stdout


# ---------------------------------------------------------------- live, against lowat

EXPERIMENT = {"name": "pvh", "seed": 1, "arms": [{"name": "control", "weight": 1, "policy": "none"},
                                                 {"name": "hints", "weight": 1, "policy": "hints"}]}
CSS = "</static/a.css>; rel=preload; as=style"


def get_raw(port, source, path):
    """One HTTP/1.1 request from a chosen loopback source address; the whole answer, 103s
    included (http.client would take a 103 for the response)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW, source_address=(source, 0)) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def test_ab_report_live_against_lowat(lowat_bin, lowat, backend, tmp_path):
    cfg = make_config(tmp_path, backend(), tls=False)
    cfg["admin"] = {"address": "127.0.0.1:0"}
    cfg["experiments"] = [EXPERIMENT]
    cfg["routes"] = [{"path": "/", "backend": "app", "experiment": "pvh", "push": {"h1_hints": True}}]
    check_path = tmp_path / "check.yaml"
    check_path.write_text(to_yaml(cfg) + "\n")
    chk = subprocess.run([str(lowat_bin), "-t", "-c", str(check_path)], capture_output=True, text=True, timeout=20)
    if chk.returncode != 0:
        pytest.skip("this lowat has no admin listener with experiments (lowat -t: "
                    + (chk.stderr.strip().splitlines() or ["?"])[0] + ")")
    lw = lowat(config=cfg)
    line = lw.wait_log(r"admin listening on 127\.0\.0\.1:\d+", timeout=5 * SLOW)
    assert line, "lowat accepted the admin block but logged no admin address:\n" + lw.stderr_text()
    metrics_url = "http://127.0.0.1:%s/metrics" % re.search(r"admin listening on 127\.0\.0\.1:(\d+)", line).group(1)

    def scrape(name):
        with urllib.request.urlopen(metrics_url, timeout=5 * SLOW) as r:
            path = tmp_path / name
            path.write_bytes(r.read())
            return path
    before = scrape("before.txt")
    n = 60
    path = "/hints/0?l=" + urllib.parse.quote(CSS)
    for k in range(n):  # 60 client addresses: without a cookie, the arm is a hash of the address
        answer = get_raw(lw.clear_port, f"127.0.0.{10 + k}", path)
        assert b"HTTP/1.1 200 " in answer, answer
    deadline = time.monotonic() + 5 * SLOW
    while True:  # a response is on the wire a moment before its exchange is counted
        rep = report(before, scrape("after.txt"), "--experiment", "pvh")
        arms = {a["name"]: a for a in experiment(rep, "pvh")["arms"]}
        if sum(a["requests"] for a in arms.values()) >= n or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert sum(a["requests"] for a in arms.values()) == n, rep
    assert set(arms) == {"control", "hints"}, rep  # 60 addresses over two equal arms: both get some
    assert arms["control"]["hints_forwarded"] == 0, rep
    assert arms["hints"]["hints_forwarded"] == arms["hints"]["requests"], rep
    for a in arms.values():
        assert a["parent_ttfb"]["count"] == a["requests"], rep
    assert experiment(rep, "pvh")["baseline"] == "control"
    p = run_tool(before, tmp_path / "after.txt")
    assert p.returncode == 0 and "experiment pvh: 2 arm(s), baseline control" in p.stdout, p
