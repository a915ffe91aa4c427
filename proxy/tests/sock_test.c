/* SPDX-License-Identifier: MIT */
/* Unit tests for the write-budget arithmetic of proxy/sock, on recorded TCP_INFO values. */
#include "proxy/sock.h"

#include <stdint.h>

#include "common/tests/tap.h"

static const struct lw_sock_budget_cfg cubic_tls13 = {
    .enabled = true, .min_rtt_us = 20000, .max_cwnd = 0, .max_loop_share = 10, .pacing = false, .tls_overhead = 22};

int main(void)
{
    /* A fresh connection across a 100 ms link: initial window of 10 segments, 2 in flight. */
    struct lw_sock_tcp_state fresh = {.rtt_us = 100250, .cwnd = 10, .unacked = 2, .mss = 1448, .pacing_rate = 289600};
    struct lw_sock_budget b = lw_sock_budget_compute(&fresh, &cubic_tls13, 0);
    TAP_OK(b.active, "100 ms RTT: the optimization is on");
    TAP_EQ_INT(b.bytes, (10 - 2 + 1) * (1448 - 22), "budget is (cwnd - unacked + 1) segments of TLS payload");
    TAP_EQ_INT(b.record_size, 1448 - 22, "records fit one segment");

    /* The window is full: one segment, so the next write is ready when an ACK frees room. */
    struct lw_sock_tcp_state full = {.rtt_us = 100000, .cwnd = 40, .unacked = 40, .mss = 1448};
    b = lw_sock_budget_compute(&full, &cubic_tls13, 0);
    TAP_EQ_INT(b.bytes, 1 * (1448 - 22), "a full window leaves one segment of budget");
    full.unacked = 45; /* unacked can exceed cwnd right after a loss */
    b = lw_sock_budget_compute(&full, &cubic_tls13, 0);
    TAP_EQ_INT(b.bytes, 1 * (1448 - 22), "unacked above cwnd is no negative budget");

    /* Loopback: RTT far under min_rtt, so large writes. */
    struct lw_sock_tcp_state lo = {.rtt_us = 31, .cwnd = 10, .unacked = 0, .mss = 32768};
    b = lw_sock_budget_compute(&lo, &cubic_tls13, 0);
    TAP_OK(!b.active && b.bytes == SIZE_MAX, "short RTT: the optimization steps aside");

    /* A late request on a long transfer: cwnd has grown large. No cut-off by default... */
    struct lw_sock_tcp_state big = {.rtt_us = 250000, .cwnd = 400, .unacked = 380, .mss = 1448};
    b = lw_sock_budget_compute(&big, &cubic_tls13, 0);
    TAP_OK(b.active && b.bytes == 21 * (1448 - 22), "large cwnd: still only the free window (no max-cwnd cut-off)");
    /* ...but an operator can ask for one, as H2O has. */
    struct lw_sock_budget_cfg capped = cubic_tls13;
    capped.max_cwnd = 44;
    b = lw_sock_budget_compute(&big, &capped, 0);
    TAP_OK(!b.active, "max_cwnd set and exceeded: steps aside");

    /* BBR paces: 20 Mbit/s = 2.5 MB/s, so a 4 ms slice is 10000 bytes, less than the window. */
    struct lw_sock_budget_cfg bbr = cubic_tls13;
    bbr.pacing = true;
    struct lw_sock_tcp_state paced = {.rtt_us = 100000, .cwnd = 200, .unacked = 100, .mss = 1448, .pacing_rate = 2500000};
    b = lw_sock_budget_compute(&paced, &bbr, 0);
    TAP_EQ_INT(b.bytes, 2500000ull * LW_SOCK_PACING_SLICE_US / 1000000, "pacing: a slice of the pacing rate");
    paced.pacing_rate = 100000; /* a slow pacer: at least one segment */
    b = lw_sock_budget_compute(&paced, &bbr, 0);
    TAP_EQ_INT(b.bytes, 1448 - 22, "a slow pacer still gets a whole segment");
    paced.unacked = 0; /* after an idle spell: the pacer's first burst may be two segments */
    b = lw_sock_budget_compute(&paced, &bbr, 0);
    TAP_EQ_INT(b.bytes, 2 * (1448 - 22), "a slow pacer with nothing in flight: two segments");
    paced.unacked = 100;
    paced.pacing_rate = UINT64_MAX; /* unknown: the window alone */
    b = lw_sock_budget_compute(&paced, &bbr, 0);
    TAP_EQ_INT(b.bytes, 101 * (1448 - 22), "unknown pacing rate: the window decides");

    /* A slow loop: 15 ms per iteration on a 100 ms RTT is over the 10 % share. */
    b = lw_sock_budget_compute(&fresh, &cubic_tls13, 15000);
    TAP_OK(!b.active, "loop time above its share of the RTT: steps aside");
    b = lw_sock_budget_compute(&fresh, &cubic_tls13, 5000);
    TAP_OK(b.active, "loop time within its share: stays on");

    struct lw_sock_budget_cfg off = cubic_tls13;
    off.enabled = false;
    TAP_OK(!lw_sock_budget_compute(&fresh, &off, 0).active, "disabled in the config: never on");
    struct lw_sock_tcp_state nomss = fresh;
    nomss.mss = 0;
    TAP_OK(!lw_sock_budget_compute(&nomss, &cubic_tls13, 0).active, "no MSS yet: steps aside");

    /* Bytes still unsent in the kernel count against the budget. */
    struct lw_sock_tcp_state queued = fresh;
    queued.notsent_bytes = 3 * (1448 - 22);
    b = lw_sock_budget_compute(&queued, &cubic_tls13, 0);
    TAP_EQ_INT(b.bytes, 6 * (1448 - 22), "unsent bytes in the kernel come off the budget");
    queued.notsent_bytes = 40000;
    b = lw_sock_budget_compute(&queued, &cubic_tls13, 0);
    TAP_OK(b.active && b.bytes == 0, "more unsent than the window frees: write nothing, wait for writable");

    struct lw_sock_budget_cfg clear = cubic_tls13;
    clear.tls_overhead = 0;
    b = lw_sock_budget_compute(&fresh, &clear, 0);
    TAP_EQ_INT(b.bytes, 9 * 1448, "cleartext: whole segments");

    /* The path's rate from the ACKs: 100 ms RTT, so windows of at least 12.5 ms count. */
    struct lw_sock_path path = {0};
    struct lw_sock_tcp_state ss = {.rtt_us = 100300, .min_rtt_us = 100000, .cwnd = 40, .unacked = 30, .mss = 1448,
                                   .pace_tokens = UINT64_MAX};
    uint64_t t = 1000000;
    lw_sock_path_update(&path, &ss, t);
    ss.bytes_acked = 20000; /* 2 ms later: too short a window to measure */
    lw_sock_path_update(&path, &ss, t + 2000);
    TAP_EQ_INT(path.bw, 0, "no rate from a window shorter than an eighth of the RTT");
    ss.bytes_acked = 30160; /* 30,160 bytes in 12.5 ms: 2,412,800 B/s (19.3 Mbit/s of payload) */
    lw_sock_path_update(&path, &ss, t + 12500);
    TAP_EQ_INT(path.bw, 2412800, "the ACK rate over the window");
    ss.bytes_acked += 1448; /* then a quiet spell: a slow window does not lower the estimate */
    lw_sock_path_update(&path, &ss, t + 112500);
    TAP_EQ_INT(path.bw, 2412800, "only the fastest window counts");
    TAP_OK(!path.engaged && ss.bottleneck == 0, "no queue seen (RTT within 1/8 of the minimum): no limit");

    /* Slow start's last round: the RTT rises 1/8 above the minimum. */
    ss.rtt_us = 113000;
    ss.bytes_acked += 30000;
    lw_sock_path_update(&path, &ss, t + 125000);
    TAP_OK(path.engaged, "a queue seen: the limit engages");
    ss.rtt_us = 101000; /* and stays engaged when the queue has gone (that is its doing) */
    ss.bytes_acked += 30000;
    ss.bottleneck = 0;
    lw_sock_path_update(&path, &ss, t + 140000);
    TAP_EQ_INT(ss.bottleneck, 2412800, "the limit stays engaged");

    /* In flight is held to rate x min RTT + 1/16 + 2 segments: 241,280 + 15,080 + 2,896 bytes. */
    struct lw_sock_budget_cfg limited = cubic_tls13;
    limited.queue_limit = true;
    struct lw_sock_tcp_state q = {.rtt_us = 106000, .min_rtt_us = 100000, .cwnd = 240, .unacked = 170, .mss = 1448,
                                  .bottleneck = 2412800, .pace_tokens = UINT64_MAX};
    b = lw_sock_budget_compute(&q, &limited, 0);
    TAP_EQ_INT(b.bytes, 9 * (1448 - 22), "cwnd 240 with 170 in flight: 9 segments up to the limit, not 71");
    TAP_EQ_INT(b.wait_us, 0, "room left: the socket wakes the writer");
    q.unacked = 180;
    b = lw_sock_budget_compute(&q, &limited, 0);
    TAP_OK(b.active && b.bytes == 0, "at the limit: nothing");
    TAP_EQ_INT(b.wait_us, (180 * 1448 + 2 * 1448 - (241280 + 15080 + 2896)) * 1000000ull / 2412800,
               "and a timer for when two segments have drained");
    q.rtt_us = 103000; /* the queue has gone (within 1/32 of the minimum): a rate too low must not hold */
    TAP_EQ_INT(lw_sock_budget_compute(&q, &limited, 0).bytes, 61 * (1448 - 22), "no queue left: the window decides");
    q.rtt_us = 106000;
    limited.queue_limit = false;
    TAP_EQ_INT(lw_sock_budget_compute(&q, &limited, 0).bytes, 61 * (1448 - 22), "queue_limit off: the window decides");
    limited.queue_limit = true;

    /* Paced at 5/4 of the rate: whole segments of the allowance. */
    q.unacked = 150;
    q.pace_tokens = 5000;
    b = lw_sock_budget_compute(&q, &limited, 0);
    TAP_EQ_INT(b.bytes, 3 * (1448 - 22), "the pacer's allowance, in whole segments");
    q.pace_tokens = 0;
    b = lw_sock_budget_compute(&q, &limited, 0);
    TAP_OK(b.bytes == 0 && b.wait_us == 1000, "no allowance: wait (at least 1 ms) for two segments' worth");
    lw_sock_path_spent(&path, UINT64_MAX);
    TAP_EQ_INT(path.tokens, 0, "spending more than the allowance leaves none");
    return tap_done();
}
