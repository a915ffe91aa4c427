# SPDX-License-Identifier: MIT
"""Experiments: clients split into weighted arms that stick (cookie, else a hash of the
address), each arm with its own push policy, and per-arm metrics on the admin listener's
/metrics in Prometheus text format."""

import re
import urllib.parse
import urllib.request

from conftest import make_config, parse_access_line
from h1client import raw_exchange
from h2client import H2Client

CSS = "</static/a.css>; rel=preload; as=style"


def exp_config(weights=(1, 1), seed=7):
    return {
        "experiments": [{"name": "ab", "seed": seed,
                         "arms": [{"name": "hints", "weight": weights[0], "policy": "hints"},
                                  {"name": "push", "weight": weights[1], "policy": "push"}]}],
        "routes": [{"path": "/", "backend": "app", "experiment": "ab"}],
        "admin": {"address": "127.0.0.1:0"},
    }


def start(lowat, backend, tmp_path, **kw):
    b = backend()
    cfg = make_config(tmp_path, b)  # the access log goes to tmp_path/access.log
    cfg.update(exp_config(**kw))
    return lowat(config=cfg), b


def admin_port(lw):
    line = lw.wait_log(r"admin listening on 127\.0\.0\.1:\d+")
    assert line, lw.stderr_text()
    return int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))


def get_from(ip, port, path="/name", cookie=None):
    """One HTTP/1.1 request from source address ip; returns (status line, headers dict)."""
    extra = f"Cookie: {cookie}\r\n" if cookie else ""
    req = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n"
    data = raw_exchange(port, req.encode(), source=ip)
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        n, _, v = line.partition(":")
        headers.setdefault(n.strip().lower(), []).append(v.strip())
    return head[0], headers


def arm_of(headers):
    for v in headers.get("set-cookie", []):
        m = re.match(r"lw_exp_ab=([\w.-]+);", v)
        if m:
            return m.group(1)
    return None


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


PROM_LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? '
                       r'(-?[0-9.e+]+|\+Inf|NaN)$')


def parse_prom(text):
    """Strict enough a Prometheus text parser: every line a comment or a valid sample."""
    samples = {}
    types = {}
    for i, line in enumerate(text.splitlines(), 1):
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if line.startswith("#") or not line:
            continue
        assert PROM_LINE.match(line), f"line {i} is not Prometheus text: {line!r}"
        key, _, value = line.rpartition(" ")
        samples[key] = float(value)
    return samples, types


def test_h1_h1_arms_split_by_weight_and_stick(lowat, backend, tmp_path):
    lw, _ = start(lowat, backend, tmp_path, weights=(1, 3))
    arms = {}
    for i in range(2, 242):  # 240 client addresses
        status, headers = get_from(f"127.0.0.{i}", lw.clear_port)
        assert status.startswith("HTTP/1.1 200"), status
        arms[i] = arm_of(headers)
    counts = {a: sum(1 for v in arms.values() if v == a) for a in ("hints", "push")}
    assert counts["hints"] + counts["push"] == 240, counts
    # Expected 60 / 180; binomial sd ~6.7, so +-4 sd.
    assert 33 <= counts["hints"] <= 87, counts
    # Sticky without the cookie: the same address lands in the same arm again.
    for i in (2, 50, 100, 200):
        _, headers = get_from(f"127.0.0.{i}", lw.clear_port)
        assert arm_of(headers) == arms[i]
    # With the cookie the client keeps its arm and is not told again.
    other = "push" if arms[2] == "hints" else "hints"
    _, headers = get_from("127.0.0.2", lw.clear_port, cookie=f"x=1; lw_exp_ab={other}")
    assert arm_of(headers) is None
    lines = [parse_access_line(x) for x in lw.wait_access_lines(245)]
    last = lines[-1]
    assert (last["experiment"], last["arm"]) == ("ab", other)
    # An unknown arm in the cookie is ignored: the hash decides and is told again.
    _, headers = get_from("127.0.0.2", lw.clear_port, cookie="lw_exp_ab=nonsense")
    assert arm_of(headers) == arms[2]


def test_h2_h1_arm_policy_applies_and_metrics_carry_arms(lowat, backend, tmp_path):
    lw, b = start(lowat, backend, tmp_path)
    port = admin_port(lw)
    before, types = parse_prom(scrape(port))
    assert types["lowat_requests_total"] == "counter"
    assert types["lowat_parent_ttfb_seconds"] == "histogram"
    path = "/hints/50?l=" + urllib.parse.quote(CSS)
    results = {}
    for arm in ("hints", "push"):
        c = H2Client(lw.tls_port)
        for _ in range(3):
            st = c.wait_stream(c.request("GET", path, headers=[("cookie", f"lw_exp_ab={arm}")]))
            assert st.status == 200
        results[arm] = c
    pushes = [e for e in results["push"].events if type(e).__name__ == "PushedStreamReceived"]
    assert len(pushes) == 1  # pushed once, then remembered on the connection
    assert not [e for e in results["hints"].events if type(e).__name__ == "PushedStreamReceived"]
    after, _ = parse_prom(scrape(port))

    def delta(metric, arm):
        key = f'{metric}{{experiment="ab",arm="{arm}"}}'
        return after.get(key, 0) - before.get(key, 0)

    assert delta("lowat_requests_total", "hints") == 3
    assert delta("lowat_requests_total", "push") == 3
    assert delta("lowat_pushes_promised_total", "push") == 1
    assert delta("lowat_pushes_promised_total", "hints") == 0
    assert delta("lowat_hints_forwarded_total", "hints") == 3
    assert delta("lowat_hints_forwarded_total", "push") == 0
    assert delta("lowat_pushed_bytes_total", "push") > 0
    assert delta("lowat_parent_ttfb_seconds_count", "hints") == 3
    assert delta("lowat_page_complete_seconds_count", "push") == 3
    # Histogram buckets are cumulative and end at the count.
    inf = f'lowat_parent_ttfb_seconds_bucket{{experiment="ab",arm="hints",le="+Inf"}}'
    cnt = f'lowat_parent_ttfb_seconds_count{{experiment="ab",arm="hints"}}'
    assert after[inf] == after[cnt]
    # The app thinks 50 ms: no time-to-first-byte lands in the 5 ms bucket.
    small = f'lowat_parent_ttfb_seconds_bucket{{experiment="ab",arm="hints",le="0.005"}}'
    assert after[small] - before.get(small, 0) == 0


def test_admin_listener_is_off_unless_configured(lowat, backend):
    lw = lowat(backend())
    assert "admin listening" not in lw.stderr_text()


def test_config_rejects_unknown_experiment_and_bad_arms(lowat_bin, tmp_path):
    import subprocess
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("listeners: [{address: 127.0.0.1:0}]\n"
                   "backends: [{name: app, members: [127.0.0.1:1]}]\n"
                   "experiments:\n"
                   "  - name: e\n"
                   "    arms: [{name: a, policy: push}, {name: a, policy: bogus}]\n"
                   "routes: [{path: /, backend: app, experiment: nope}]\n")
    r = subprocess.run([lowat_bin, "-t", "-c", str(cfg)], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert f"{cfg}:5:" in r.stderr and "duplicate arm name 'a'" in r.stderr
    assert "'policy' must be one of" in r.stderr
    assert f"{cfg}:6:" in r.stderr and "unknown experiment 'nope'" in r.stderr


def test_requests_total_counts_what_lowat_answers_itself(lowat, backend, tmp_path):
    """Every client request is counted, the ones lowat answers without a backend too (no route,
    a CONNECT over either protocol): the counter agrees with the
    time-to-first-byte histogram, which sees every response."""
    b = backend()
    cfg = make_config(tmp_path, b, routes=[{"path": "/name", "backend": "app"}])
    cfg["admin"] = {"address": "127.0.0.1:0"}
    lw = lowat(config=cfg)
    port = admin_port(lw)
    before, _ = parse_prom(scrape(port))
    statuses = []
    for target in ("/name", "/unrouted"):
        statuses.append(int(get_from("127.0.0.1", lw.clear_port, target)[0].split()[1]))
    data = raw_exchange(lw.clear_port, b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost\r\n\r\n")
    statuses.append(int(data.split(b" ", 2)[1]))
    c = H2Client(lw.tls_port)
    statuses.append(c.get("/name").status)
    statuses.append(c.get("/unrouted").status)
    sid = c.send_headers([(":method", "CONNECT"), (":authority", "localhost:443")], end_stream=True)
    statuses.append(c.wait_stream(sid).status)
    assert statuses == [200, 404, 501, 200, 404, 501]
    after, _ = parse_prom(scrape(port))

    def delta(metric):
        key = f'{metric}{{experiment="-",arm="-"}}'
        return after.get(key, 0) - before.get(key, 0)

    assert delta("lowat_parent_ttfb_seconds_count") == len(statuses)
    assert delta("lowat_requests_total") == len(statuses)
