# SPDX-License-Identifier: MIT
"""Writing for responsiveness on real sockets: TCP_NOTSENT_LOWAT goes to 1 while the
optimization is on and back to the system default when it steps aside (read back with
getsockopt by lowat and logged at debug level), and responses stay whole either way."""

import re

from h2client import H2Client


def listener_with(responsiveness):
    return [{"address": "127.0.0.1:0", "tls": True, "responsiveness": responsiveness}]


def test_h2_h1_lowat_set_when_rtt_above_min_rtt(lowat, backend):
    # Loopback's RTT (tens of us) is far under any real min_rtt, and the worker's own callbacks
    # take a good share of it: min_rtt 0 and the whole RTT as loop share make it act here.
    # Under a sanitizer on a loaded machine a loop can take longer than loopback's RTT, and the
    # optimization rightly steps aside for that pass: a few downloads give it its chances.
    lw = lowat(backend(), listeners=listener_with({"min_rtt": "0ms", "max_loop_share": 100}), log_level="debug")
    c = H2Client(lw.tls_port)
    pattern = r"responsiveness on \(rtt [0-9.]+ms cwnd \d+ unacked \d+ mss \d+\): TCP_NOTSENT_LOWAT=1"
    line = None
    for _ in range(5):
        st = c.wait_stream(c.request("GET", "/bytes/2000000"))
        assert st.status == 200 and st.body_len == 2000000
        line = lw.wait_log(pattern, timeout=1)
        if line:
            break
    assert line, lw.stderr_text()[-2000:]


def test_h2_h1_lowat_untouched_on_a_short_rtt(lowat, backend):
    lw = lowat(backend(), listeners=listener_with({"min_rtt": "20ms"}), log_level="debug")
    c = H2Client(lw.tls_port)
    st = c.wait_stream(c.request("GET", "/bytes/2000000"))
    assert st.status == 200 and st.body_len == 2000000
    assert not re.search(r"responsiveness on", lw.stderr_text())


def test_h2_h1_responsiveness_off_by_config(lowat, backend):
    lw = lowat(backend(), listeners=listener_with(False), log_level="debug")
    c = H2Client(lw.tls_port)
    st = c.wait_stream(c.request("GET", "/bytes/300000"))
    assert st.status == 200 and st.body_len == 300000
    assert "responsiveness on" not in lw.stderr_text()
