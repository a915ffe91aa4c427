# SPDX-License-Identifier: MIT
"""Push engine: 103 Early Hints forwarded per policy, and preload links turned into HTTP/2
server pushes (from the 103 while the app thinks, or from the final response), with the
gates a browser relies on: no push when it disabled push, same origin only, no nopush,
nothing twice on a connection, caps, and a cancelled promise stops the backend fetch."""

import time
import urllib.parse

import h2.events
import h2.settings

from conftest import parse_access_line
from h1client import raw_exchange
from h2client import H2Client

CSS = "</static/a.css>; rel=preload; as=style"
JS = "</static/b.js>; rel=preload; as=script"


def hints_path(ms, links, early=1):
    q = "&".join("l=" + urllib.parse.quote(link) for link in links)
    return f"/hints/{ms}?{q}&early={early}"


def route(policy, **extra):
    return [{"path": "/", "backend": "app", "push": {"policy": policy, **extra}}]


def promises(client, parent=None):
    return [e for e in client.events if isinstance(e, h2.events.PushedStreamReceived)
            and (parent is None or e.parent_stream_id == parent)]


def promised_path(ev):
    return dict((n, v) for n, v in ev.headers)[":path"]


def index_of(client, cls, stream_id):
    for i, e in enumerate(client.events):
        if isinstance(e, cls) and getattr(e, "stream_id", None) == stream_id:
            return i
    return None


def test_h2_h1_hints_forward_the_first_103_only(lowat, backend):
    lw = lowat(backend())  # the default policy is hints
    c = H2Client(lw.tls_port)
    st = c.wait_stream(c.request("GET", hints_path(50, [CSS, JS], early=2)))
    assert st.status == 200
    assert len(st.informational) == 1, st.informational
    info = st.informational[0]
    assert dict(info)[":status"] == "103"
    assert [v for n, v in info if n == "link"] == [CSS, JS]
    assert promises(c) == []


def test_h2_h1_policy_none_forwards_no_hints(lowat, backend):
    lw = lowat(backend(), routes=route("none"))
    c = H2Client(lw.tls_port)
    st = c.wait_stream(c.request("GET", hints_path(20, [CSS])))
    assert st.status == 200 and st.informational == []


def raw_h1_response(port, path):
    req = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    return raw_exchange(port, req.encode()).decode("latin-1")


def test_h1_h1_hints_only_when_the_route_opts_in(lowat, backend):
    b = backend()
    lw = lowat(b, routes=route("hints"))
    plain = raw_h1_response(lw.clear_port, hints_path(20, [CSS]))
    assert plain.startswith("HTTP/1.1 200 OK\r\n"), plain[:200]
    lw.stop()
    lw = lowat(b, routes=route("hints", h1_hints=True))
    hinted = raw_h1_response(lw.clear_port, hints_path(20, [CSS]))
    assert hinted.startswith(f"HTTP/1.1 103 Early Hints\r\nLink: {CSS}\r\n\r\nHTTP/1.1 200 OK\r\n"), hinted[:300]


def test_h2_h1_push_from_103_arrives_during_think_time(lowat, backend):
    b = backend()
    lw = lowat(b, routes=route("push"))
    c = H2Client(lw.tls_port)
    t0 = time.monotonic()
    sid = c.request("GET", hints_path(1000, [CSS, JS]))
    c.wait_for(lambda: len(promises(c, sid)) == 2 and all(
        c.streams.get(p.pushed_stream_id) is not None and c.streams[p.pushed_stream_id].ended
        for p in promises(c, sid)), timeout=5, what="both pushes complete")
    pushed_at = time.monotonic() - t0
    st = c.wait_stream(sid)
    page_at = time.monotonic() - t0
    assert st.status == 200
    # The pushes rode the app's think time: complete long before the page.
    assert pushed_at < 0.6 and page_at >= 1.0, (pushed_at, page_at)
    assert sorted(promised_path(p) for p in promises(c, sid)) == ["/static/a.css", "/static/b.js"]
    for p in promises(c, sid):
        ps = c.streams[p.pushed_stream_id]
        assert ps.status == 200 and ps.header("x-http2-push") == "1"
        assert b'"path": "' + promised_path(p).encode() + b'"' in ps.body  # the backend echoed that path
    # The same links on the final response are not pushed again.
    assert len(promises(c)) == 2
    lines = [parse_access_line(x) for x in lw.wait_access_lines(3)]
    assert sorted(x["path"] for x in lines if x.get("push") == "1") == ["/static/a.css", "/static/b.js"]


def test_h2_h1_push_promise_precedes_the_final_response(lowat, backend):
    lw = lowat(backend(), routes=route("push"))
    c = H2Client(lw.tls_port)
    sid = c.request("GET", hints_path(0, [CSS], early=0))  # no 103: links only on the 200
    st = c.wait_stream(sid)
    assert st.status == 200
    ps = promises(c, sid)
    assert len(ps) == 1 and promised_path(ps[0]) == "/static/a.css"
    assert c.events.index(ps[0]) < index_of(c, h2.events.ResponseReceived, sid)
    c.wait_stream(ps[0].pushed_stream_id)


def test_h2_h1_push_and_hints_together(lowat, backend):
    lw = lowat(backend(), routes=route("push+hints"))
    c = H2Client(lw.tls_port)
    sid = c.request("GET", hints_path(50, [CSS]))
    st = c.wait_stream(sid)
    assert len(st.informational) == 1 and len(promises(c, sid)) == 1


def test_h2_h1_no_push_when_the_client_disabled_push(lowat, backend):
    b = backend()
    lw = lowat(b, routes=route("push"))
    c = H2Client(lw.tls_port, settings={h2.settings.SettingCodes.ENABLE_PUSH: 0})
    st = c.wait_stream(c.request("GET", hints_path(50, [CSS, JS])))
    assert st.status == 200 and promises(c) == []
    assert len(b.requests) == 1  # nothing fetched for pushes either


def test_h2_h1_push_same_origin_only_and_never_nopush(lowat, backend):
    lw = lowat(backend(), routes=route("push"))
    c = H2Client(lw.tls_port)
    links = ["<https://other.example/x.js>; rel=preload; as=script", "</n.js>; rel=preload; nopush",
             "</s.css>; rel=stylesheet", "</ok.js>; rel=preload; as=script"]
    sid = c.request("GET", hints_path(0, links, early=0))
    c.wait_stream(sid)
    assert [promised_path(p) for p in promises(c, sid)] == ["/ok.js"]


def test_h2_h1_push_not_repeated_on_a_connection(lowat, backend):
    lw = lowat(backend(), routes=route("push"))
    c = H2Client(lw.tls_port)
    first = c.request("GET", hints_path(0, [CSS], early=0))
    c.wait_stream(first)
    second = c.request("GET", hints_path(0, [CSS, JS], early=0))
    c.wait_stream(second)
    assert [promised_path(p) for p in promises(c, first)] == ["/static/a.css"]
    assert [promised_path(p) for p in promises(c, second)] == ["/static/b.js"]


def test_h2_h1_push_cap_per_request(lowat, backend):
    lw = lowat(backend(), routes=route("push", max_per_request=1))
    c = H2Client(lw.tls_port)
    sid = c.request("GET", hints_path(0, [CSS, JS], early=0))
    c.wait_stream(sid)
    assert len(promises(c, sid)) == 1


def test_h2_h1_push_of_a_push_never_happens(lowat, backend):
    """A pushed response that itself carries preload links pushes nothing more."""
    lw = lowat(backend(), routes=route("push"))
    c = H2Client(lw.tls_port)
    inner = urllib.parse.quote(hints_path(0, [JS], early=0))
    sid = c.request("GET", hints_path(0, [f"<{urllib.parse.unquote(inner)}>; rel=preload"], early=0))
    c.wait_stream(sid)
    ps = promises(c, sid)
    assert len(ps) == 1
    c.wait_stream(ps[0].pushed_stream_id)
    assert promises(c, ps[0].pushed_stream_id) == []


def test_h2_h1_pushed_response_carries_no_interim_response(lowat, backend):
    """A pushed resource whose origin answers with a 103 first: the promised stream gets only
    the final response (a client rejects an interim response on a stream it only reserved),
    and the page a link points back at is not pushed to itself."""
    lw = lowat(backend(), routes=route("push+hints"))
    c = H2Client(lw.tls_port)
    inner = hints_path(0, [JS], early=1)
    page = hints_path(0, [f"<{inner}>; rel=preload", "<>; rel=preload", "<#top>; rel=preload"], early=0)
    sid = c.request("GET", page)
    st = c.wait_stream(sid)
    assert st.status == 200
    ps = promises(c, sid)
    assert [promised_path(p) for p in ps] == [inner], [promised_path(p) for p in ps]
    pushed = c.wait_stream(ps[0].pushed_stream_id)
    assert pushed.status == 200, pushed
    assert [e for e in c.events if isinstance(e, h2.events.InformationalResponseReceived)
            and e.stream_id == ps[0].pushed_stream_id] == []


def test_h2_h1_cancelled_push_stops_the_backend_fetch(lowat, backend):
    b = backend()
    lw = lowat(b, routes=route("push"))
    c = H2Client(lw.tls_port)
    sid = c.request("GET", hints_path(200, ["</slow/5000>; rel=preload"]))
    c.wait_for(lambda: len(promises(c, sid)) == 1, timeout=5, what="the promise")
    pushed = promises(c, sid)[0].pushed_stream_id
    b.wait_requests(2)  # the backend has the pushed request
    c.reset(pushed)
    c.wait_stream(sid)
    t0 = time.monotonic()
    lines = []
    while time.monotonic() - t0 < 3:
        lines = [parse_access_line(x) for x in lw.access_log_lines()]
        if any(x.get("push") == "1" for x in lines):
            break
        time.sleep(0.05)
    pushed_lines = [x for x in lines if x.get("push") == "1"]
    # Logged as aborted well before the backend's 5 s answer: the fetch was dropped.
    assert len(pushed_lines) == 1 and pushed_lines[0].get("aborted") == "1", lines


def test_h2_h1_learned_hints_answer_a_navigation_before_the_backend(lowat, backend):
    b = backend()
    lw = lowat(b, routes=route("learned-hints"), workers=1)
    nav = [("sec-fetch-mode", "navigate")]
    c = H2Client(lw.tls_port)
    # The first visit teaches lowat the page's preload links (the app sends no 103).
    first = c.wait_stream(c.request("GET", hints_path(300, [CSS, JS], early=0), headers=nav))
    assert first.status == 200 and first.informational == []
    # The next navigation gets a 103 at once, long before the app's 300 ms think time ends.
    t0 = time.monotonic()
    sid = c.request("GET", hints_path(300, [CSS, JS], early=0), headers=nav)
    c.wait_for(lambda: sid in c.streams and c.streams[sid].informational, timeout=5, what="the 103")
    hinted_at = time.monotonic() - t0
    st = c.wait_stream(sid)
    page_at = time.monotonic() - t0
    assert hinted_at < 0.15 and page_at >= 0.3, (hinted_at, page_at)
    assert [v for n, v in st.informational[0] if n == "link"] == [CSS, JS]
    # Not for subresource requests: only navigations.
    sub = c.wait_stream(c.request("GET", hints_path(0, [CSS, JS], early=0), headers=[("sec-fetch-mode", "cors")]))
    assert sub.informational == []


def test_h2_h1_learned_hints_forget_a_page_that_stops_announcing(lowat, backend):
    lw = lowat(backend(), routes=route("learned-hints"), workers=1)
    nav = [("sec-fetch-mode", "navigate")]
    c = H2Client(lw.tls_port)
    page = "/hints/0?early=0"
    c.wait_stream(c.request("GET", page, headers=nav + [("x-links", CSS)]))
    second = c.wait_stream(c.request("GET", page, headers=nav))  # the page no longer announces it
    assert len(second.informational) == 1  # hinted from what lowat learned on the first visit
    third = c.wait_stream(c.request("GET", page, headers=nav))
    assert third.informational == []


def digest_cookie(stream):
    for v in stream.header_all("set-cookie"):
        if v.startswith("lw_digest="):
            return v.split(";", 1)[0]
    return None


def test_h2_h1_cache_aware_skips_what_the_digest_holds(lowat, backend):
    lw = lowat(backend(), routes=route("cache-aware"), workers=1)
    page = hints_path(0, [CSS, JS], early=0)
    first = H2Client(lw.tls_port)
    st = first.wait_stream(first.request("GET", page))
    assert sorted(promised_path(p) for p in promises(first)) == ["/static/a.css", "/static/b.js"]
    cookie = digest_cookie(st)
    assert cookie, st.headers
    # A new connection (the memo is per connection) with the cookie: nothing is pushed again.
    second = H2Client(lw.tls_port)
    st2 = second.wait_stream(second.request("GET", page, headers=[("cookie", cookie)]))
    assert st2.status == 200 and promises(second) == []
    # Without the cookie the same page is pushed again; a new link is pushed even with it.
    third = H2Client(lw.tls_port)
    third.wait_stream(third.request("GET", page))
    assert len(promises(third)) == 2
    fourth = H2Client(lw.tls_port)
    more = hints_path(0, [CSS, JS, "</static/c.js>; rel=preload; as=script"], early=0)
    st4 = fourth.wait_stream(fourth.request("GET", more, headers=[("cookie", cookie)]))
    assert [promised_path(p) for p in promises(fourth)] == ["/static/c.js"]
    # The digest grows: with the new cookie, nothing of the three is pushed.
    fifth = H2Client(lw.tls_port)
    fifth.wait_stream(fifth.request("GET", more, headers=[("cookie", digest_cookie(st4))]))
    assert promises(fifth) == []
    # A malformed digest is ignored, not trusted.
    sixth = H2Client(lw.tls_port)
    sixth.wait_stream(sixth.request("GET", page, headers=[("cookie", "lw_digest=!!notbase64")]))
    assert len(promises(sixth)) == 2


def test_h2_h1_nghttp_lists_the_pushes(lowat, backend):
    """What an operator would run: nghttp -ans shows the pushed assets (marked *)."""
    import subprocess
    lw = lowat(backend(), routes=route("push"))
    url = f"https://127.0.0.1:{lw.tls_port}" + hints_path(100, [CSS, JS])
    r = subprocess.run(["nghttp", "-ans", url], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    pushed = sorted(line.split()[-1] for line in r.stdout.splitlines() if " * " in line)
    assert pushed == ["/static/a.css", "/static/b.js"], r.stdout
