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
    TAP_EQ_INT(b.segment_size, 1448, "segments are the MSS");

    /* Once bytes flow, records span several segments: one overhead per record, not per
     * segment, and the budget is the same segments' bytes. */
    struct lw_sock_budget_cfg flowing = cubic_tls13;
    flowing.record_segments = UINT32_MAX;
    b = lw_sock_budget_compute(&fresh, &flowing, 0);
    TAP_EQ_INT(b.record_size, 9 * 1448 - 22, "flowing: one record over the budget's 9 segments");
    TAP_EQ_INT(b.bytes, 9 * 1448 - 22, "flowing: the budget is those 9 segments less one overhead");
    struct lw_sock_tcp_state wide = {.rtt_us = 100000, .cwnd = 60, .unacked = 39, .mss = 1448};
    b = lw_sock_budget_compute(&wide, &flowing, 0);
    TAP_EQ_INT(b.record_size, 11 * 1448 - 22, "flowing: at most the segments a 16 KiB record fills");
    TAP_OK(b.record_size <= 16384, "flowing: a record never exceeds 16 KiB of payload");
    TAP_EQ_INT(b.bytes, 22 * 1448 - 2 * 22, "flowing: 22 segments in two records");
    struct lw_sock_tcp_state one_unsent = fresh;
    one_unsent.notsent_bytes = 1448;
    b = lw_sock_budget_compute(&one_unsent, &flowing, 0);
    TAP_EQ_INT(b.bytes, 8 * 1448 - 22, "flowing: a whole unsent segment takes one segment off");
    struct lw_sock_budget_cfg two = cubic_tls13;
    two.record_segments = 2;
    b = lw_sock_budget_compute(&fresh, &two, 0);
    TAP_EQ_INT(b.record_size, 2 * 1448 - 22, "record_segments caps the span");
    TAP_EQ_INT(b.bytes, 9 * 1448 - 5 * 22, "9 segments in records of 2: five records");
    struct lw_sock_tcp_state window_full = {.rtt_us = 100000, .cwnd = 40, .unacked = 40, .mss = 1448};
    b = lw_sock_budget_compute(&window_full, &flowing, 0);
    TAP_EQ_INT(b.record_size, 1448 - 22, "flowing, a budget of one segment: one-segment records");
    struct lw_sock_budget_cfg clear_flowing = flowing;
    clear_flowing.tls_overhead = 0;
    b = lw_sock_budget_compute(&fresh, &clear_flowing, 0);
    TAP_EQ_INT(b.bytes, 9 * 1448, "cleartext: no records to grow");

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

    /* BBR paces. Rates are given per slice (LW_SOCK_PACING_SLICE_US) so that the slice's size
     * in bytes is known: here 10000 bytes, less than the window. */
    struct lw_sock_budget_cfg bbr = cubic_tls13;
    bbr.pacing = true;
    _Static_assert(1000000 % LW_SOCK_PACING_SLICE_US == 0, "rates per slice below need a whole divisor");
    const uint64_t per_slice = 1000000u / LW_SOCK_PACING_SLICE_US; /* rate = bytes x this */
    struct lw_sock_tcp_state paced = {.rtt_us = 100000, .cwnd = 200, .unacked = 100, .mss = 1448,
                                      .pacing_rate = 10000 * per_slice};
    b = lw_sock_budget_compute(&paced, &bbr, 0);
    TAP_EQ_INT(b.bytes, 7 * (1448 - 22), "pacing: a slice of the pacing rate (10000 bytes), in whole segments");
    paced.pacing_rate = 1650 * per_slice; /* one segment and a 224-byte tail */
    b = lw_sock_budget_compute(&paced, &bbr, 0);
    TAP_EQ_INT(b.bytes, 1448 - 22, "pacing: no part-segment tail to go out as a small packet");
    paced.pacing_rate = 10000 * per_slice;
    paced.notsent_bytes = 1448; /* one segment still unsent: 8552 bytes of the slice left */
    b = lw_sock_budget_compute(&paced, &bbr, 0);
    TAP_EQ_INT(b.bytes, 6 * (1448 - 22), "pacing: what the unsent bytes leave of the slice, to the nearest segment");
    paced.notsent_bytes = 0;
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

    /* The path's rate from deliveries: 100 ms RTT, so windows of at least 12.5 ms count. */
    struct lw_sock_path path = {0};
    struct lw_sock_tcp_state ss = {.rtt_us = 100300, .min_rtt_us = 100000, .cwnd = 40, .unacked = 30, .mss = 1448,
                                   .delivered = 100, .pace_tokens = UINT64_MAX};
    const uint64_t rate = 25ull * 1448 * 1000000 / 15000; /* 25 segments in 15 ms: 19.3 Mbit/s */
    uint64_t t = 1000000;
    lw_sock_path_update(&path, &ss, t);
    ss.delivered += 14; /* 2 ms later: too short a window to measure */
    lw_sock_path_update(&path, &ss, t + 2000);
    TAP_EQ_INT(path.rate, 0, "no rate from a window shorter than an eighth of the RTT");
    ss.delivered += 11;
    lw_sock_path_update(&path, &ss, t + 15000);
    TAP_EQ_INT(path.rate, rate, "the delivery rate over the window");
    ss.delivered += 1; /* then a quiet spell: a slow window does not lower the estimate */
    lw_sock_path_update(&path, &ss, t + 115000);
    TAP_EQ_INT(path.rate, rate, "only the fastest window counts");
    ss.delivered = 5; /* a counter that goes back (never seen; wrapped): a new window, no rate from it */
    lw_sock_path_update(&path, &ss, t + 130000);
    TAP_OK(path.rate == rate && path.win_delivered == 5, "a counter going back starts a new window");
    TAP_OK(!path.engaged && ss.path_rate == 0, "no queue seen (RTT within 1/8 of the minimum): no limit");

    /* Slow start's last round: the RTT rises 1/8 above the minimum. */
    ss.rtt_us = 113000;
    ss.delivered += 20;
    lw_sock_path_update(&path, &ss, t + 145000);
    TAP_OK(path.engaged && ss.path_rate == rate, "a queue seen: the limit engages, for this read's budget too");
    ss.rtt_us = 101000; /* and stays engaged when the queue has gone (that is its doing) */
    ss.delivered += 20;
    ss.path_rate = 0;
    lw_sock_path_update(&path, &ss, t + 160000);
    TAP_EQ_INT(ss.path_rate, rate, "the limit stays engaged");

    /* The pacer: 5/4 of the rate, topped up over time, holding at most its depth (4 ms). */
    const uint64_t pace_rate = rate * 5 / 4;
    lw_sock_path_spend(&path, UINT64_MAX);
    TAP_EQ_INT(path.tokens, 0, "spending more than the allowance leaves none");
    lw_sock_path_update(&path, &ss, t + 162000);
    TAP_EQ_INT(path.tokens, pace_rate * 2000 / 1000000, "2 ms of the pacing rate");
    lw_sock_path_update(&path, &ss, t + 162000 + 10000000000ull); /* hours idle: no overflow */
    TAP_EQ_INT(path.tokens, pace_rate * LW_SOCK_PACER_DEPTH_US / 1000000, "at most its depth after an idle spell");

    /* In flight is held to rate x min RTT + 1/16 + 2 segments. */
    struct lw_sock_budget_cfg limited = cubic_tls13;
    limited.queue_limit = true;
    const uint64_t bdp = rate * 100000 / 1000000, cap = bdp + bdp / 16 + 2 * 1448;
    struct lw_sock_tcp_state q = {.rtt_us = 106000, .min_rtt_us = 100000, .cwnd = 240, .unacked = 170, .mss = 1448,
                                  .path_rate = rate, .pace_tokens = UINT64_MAX};
    b = lw_sock_budget_compute(&q, &limited, 0);
    TAP_EQ_INT(b.bytes, (cap - 170 * 1448) / 1448 * (1448 - 22), "cwnd 240 with 170 in flight: 9 segments, not 71");
    TAP_EQ_INT(b.wait_us, 0, "room left: the socket wakes the writer");
    q.unacked = 180;
    b = lw_sock_budget_compute(&q, &limited, 0);
    TAP_OK(b.active && b.bytes == 0, "at the limit: nothing");
    TAP_EQ_INT(b.wait_us, (180 * 1448 + 2 * 1448 - cap) * 1000000 / rate, "and a timer for when two segments have drained");
    q.notsent_bytes = 1448;
    b = lw_sock_budget_compute(&q, &limited, 0);
    TAP_OK(b.bytes == 0 && b.wait_us == 0, "at the limit with bytes unsent: the socket wakes the writer, no timer");
    q.notsent_bytes = 0;
    q.in_loss = true; /* a retransmission timeout: the peer has stopped acknowledging */
    q.cwnd = 1;
    b = lw_sock_budget_compute(&q, &limited, 0);
    TAP_OK(b.bytes == 1448 - 22 && b.wait_us == 0,
           "in loss recovery: one segment left with TCP, the socket wakes the writer, no timer");
    q.in_loss = false;
    q.cwnd = 240;
    q.rtt_us = 103000; /* the queue has gone (within 1/32 of the minimum): a rate too low must not hold */
    TAP_EQ_INT(lw_sock_budget_compute(&q, &limited, 0).bytes, 61 * (1448 - 22), "no queue left: the window decides");
    q.rtt_us = 106000;
    limited.queue_limit = false;
    TAP_EQ_INT(lw_sock_budget_compute(&q, &limited, 0).bytes, 61 * (1448 - 22), "queue_limit off: the window decides");
    limited.queue_limit = true;
    limited.min_rtt_us = 0; /* as a test configures it on loopback, where the minimum RTT is a few us */
    struct lw_sock_tcp_state lo_q = {.rtt_us = 100, .min_rtt_us = 2, .cwnd = 10, .unacked = 10, .mss = 65483,
                                     .path_rate = 1000000, .pace_tokens = 0};
    b = lw_sock_budget_compute(&lo_q, &limited, 0);
    TAP_OK(b.bytes > 0 && b.wait_us == 0, "a path of a few us has no queue to limit");
    limited.min_rtt_us = 20000;

    /* Paced: whole segments of the allowance, and a wait when there is none. */
    q.unacked = 150;
    q.pace_tokens = 5000;
    b = lw_sock_budget_compute(&q, &limited, 0);
    TAP_EQ_INT(b.bytes, 3 * (1448 - 22), "the pacer's allowance, in whole segments");
    q.pace_tokens = 0;
    b = lw_sock_budget_compute(&q, &limited, 0);
    TAP_OK(b.bytes == 0 && b.wait_us >= LW_SOCK_WAIT_MIN_US && b.wait_us <= 100000 / 4,
           "no allowance: wait (at least 1 ms, at most a quarter RTT) for two segments' worth");

    /* Never stalled: whenever nothing may be written and nothing is unsent, a timer is set. */
    int stalls = 0, held = 0;
    for (uint32_t un = 0; un < 400; un += 7) {
        for (uint64_t tok = 0; tok < 20000; tok += 1777) {
            struct lw_sock_tcp_state v = q;
            v.unacked = un;
            v.pace_tokens = tok;
            b = lw_sock_budget_compute(&v, &limited, 0);
            held += b.bytes == 0;
            stalls += b.bytes == 0 && b.wait_us < LW_SOCK_WAIT_MIN_US;
        }
    }
    TAP_OK(held > 0, "the sweep reaches states where nothing may be written (%d)", held);
    TAP_EQ_INT(stalls, 0, "no state without bytes and without a timer");

    /* Jumbo frames on a slow path: a segment larger than a slice of the pacing rate still fits. */
    struct lw_sock_path jp = {.rate = 715000, .engaged = true, .tokens_us = t};
    struct lw_sock_tcp_state js = {.rtt_us = 60000, .min_rtt_us = 50000, .cwnd = 20, .unacked = 3, .mss = 8948,
                                   .delivered = 1000, .pace_tokens = UINT64_MAX};
    size_t written = 0;
    for (uint64_t dt = 1000; dt <= 100000 && written == 0; dt += 1000) {
        js.path_rate = 0;
        lw_sock_path_update(&jp, &js, t + dt);
        b = lw_sock_budget_compute(&js, &limited, 0);
        written = b.bytes;
    }
    TAP_OK(written >= 8948 - 22, "an 8948-byte MSS at 5.7 Mbit/s gets its segment within 100 ms");

    /* Judged while it holds: delivering well under the rate means the queue is not ours. */
    struct lw_sock_path up = {.rate = rate, .engaged = true, .win_us = t, .check_us = t, .check_rate = rate};
    /* (In flight at the limit's cap, 178 segments; it engaged long before.) */
    struct lw_sock_tcp_state us = {.rtt_us = 130000, .min_rtt_us = 100000, .cwnd = 200, .unacked = 178, .mss = 1448};
    for (int i = 1; i <= 16; i++) {
        us.delivered += 8; /* 8 segments per 12.5 ms: 7.4 Mbit/s against 19.3 */
        lw_sock_path_update(&up, &us, t + (uint64_t)i * 12500);
    }
    TAP_OK(!up.unsuited && up.short_once && up.rate == 8ull * 1448 * 1000000 / 12500,
           "under 7/8 of the rate for two RTTs with a queue: the rate may have been read high, it becomes what "
           "the period delivered");
    /* Behind another flow's queue, what the limit now holds in flight (70 segments, its cap at
     * that rate) delivers less again: 70 segments per 130 ms RTT, about 6 per 12.5 ms. */
    struct lw_sock_tcp_state us2 = us;
    us2.unacked = 70;
    for (int i = 17; i <= 34; i++) { /* windows of 16 segments now take three reads */
        us2.delivered += 6;
        lw_sock_path_update(&up, &us2, t + (uint64_t)i * 12500);
    }
    us2.path_rate = 0;
    lw_sock_path_update(&up, &us2, t + 35 * 12500);
    TAP_OK(up.unsuited && us2.path_rate == 0, "under 7/8 of that in the next period too: the limit turns off");
    /* A rate read high from bunched ACKs (24 Mbit/s on a 19.3 Mbit/s path): the path delivers
     * its own rate, short of 7/8 of the one read; once the rate is what it delivered, the
     * limit holds at it and stays. */
    struct lw_sock_path hi = {.rate = 3000000, .engaged = true, .win_us = t, .check_us = t, .check_rate = 3000000};
    struct lw_sock_tcp_state his = us;
    his.delivered = 0;
    his.unacked = 210; /* the cap at 3 MB/s */
    for (int i = 1; i <= 16; i++) {
        his.delivered += 20; /* the path: 20 segments per 12.5 ms, 2.32 MB/s */
        lw_sock_path_update(&hi, &his, t + (uint64_t)i * 12500);
    }
    TAP_OK(!hi.unsuited && hi.short_once && hi.rate == 20ull * 1448 * 1000000 / 12500,
           "a rate read high: the first short period brings it to what the path delivers");
    his.unacked = 172; /* the cap at 2.32 MB/s */
    for (int i = 17; i <= 32; i++) {
        his.delivered += 20;
        lw_sock_path_update(&hi, &his, t + (uint64_t)i * 12500);
    }
    TAP_OK(!hi.unsuited && !hi.short_once, "then the path delivers that rate: the limit stays");
    /* The same deliveries are no verdict with the path half full (slow start's bursts engaged
     * the limit early; the window is still growing)... */
    struct lw_sock_path half = {.rate = rate, .engaged = true, .win_us = t, .check_us = t, .check_rate = rate};
    struct lw_sock_tcp_state hs = us;
    hs.unacked = 85;
    hs.delivered = 0;
    for (int i = 1; i <= 21; i++) {
        hs.delivered += 8;
        lw_sock_path_update(&half, &hs, t + (uint64_t)i * 12500);
    }
    TAP_OK(!half.unsuited && half.check_us == t + 16 * 12500, "85 segments in flight on a path of 167: not judged");
    /* ...nor in the first RTT after engaging, whose deliveries were sent before it held anything. */
    struct lw_sock_path fresh_p = {.rate = rate, .engaged = true, .engaged_us = t, .win_us = t, .check_us = t,
                                   .check_rate = rate};
    struct lw_sock_tcp_state fs = us;
    fs.delivered = 0;
    for (int i = 1; i <= 21; i++) {
        fs.delivered += 8;
        lw_sock_path_update(&fresh_p, &fs, t + (uint64_t)i * 12500);
    }
    TAP_OK(!fresh_p.unsuited, "a period that began as the limit engaged: not judged");
    for (int i = 22; i <= 42; i++) {
        fs.delivered += 8;
        lw_sock_path_update(&fresh_p, &fs, t + (uint64_t)i * 12500);
    }
    TAP_OK(fresh_p.short_once && !fresh_p.unsuited, "the next one is");
    struct lw_sock_path ok = {.rate = rate, .engaged = true, .win_us = t, .check_us = t, .check_rate = rate};
    struct lw_sock_tcp_state os = us;
    os.delivered = 0;
    for (int i = 1; i <= 20; i++) {
        os.delivered += 20; /* 20 segments per 12.5 ms: the rate */
        lw_sock_path_update(&ok, &os, t + (uint64_t)i * 12500);
    }
    TAP_OK(!ok.unsuited, "delivering at the rate with a small queue: the limit stays");
    /* A response after an idle spell: the smoothed RTT still shows the last response's queue,
     * and the period begins with nothing in flight. Its first RTT delivers nothing, its second
     * the rate: half of it over the period, which is not a verdict on the queue. */
    struct lw_sock_path idle = {.rate = rate, .engaged = true, .win_us = t, .check_us = t - 300000,
                                .check_rate = rate, .short_once = true};
    struct lw_sock_tcp_state is = us;
    is.unacked = 0;
    is.delivered = 20; /* the last window before the idle spell closes at the first read */
    lw_sock_path_update(&idle, &is, t + 12500);
    TAP_OK(idle.check_unheld && idle.check_us == t + 12500, "a period that begins with the path empty...");
    is.unacked = 178;
    for (int i = 2; i <= 9; i++) {
        lw_sock_path_update(&idle, &is, t + (uint64_t)i * 12500); /* its first RTT: nothing delivered */
    }
    for (int i = 10; i <= 17; i++) {
        is.delivered += 20;
        lw_sock_path_update(&idle, &is, t + (uint64_t)i * 12500);
    }
    TAP_OK(!idle.unsuited && idle.rate == rate && idle.check_us == t + 17 * 12500 && !idle.check_unheld,
           "...is not judged, even after a short one: the limit stays, at its rate");
    /* After a longer spell TCP restarts its window small: slow start, not the limit, holds the
     * connection back while it grows. */
    struct lw_sock_path rs = {.rate = rate, .engaged = true, .win_us = t, .check_us = t - 300000,
                              .check_rate = rate, .short_once = true};
    struct lw_sock_tcp_state rss = us;
    rss.cwnd = 10;
    rss.unacked = 10;
    rss.delivered = 20;
    lw_sock_path_update(&rs, &rss, t + 12500);
    rss.cwnd = 200;
    rss.unacked = 178;
    for (int i = 2; i <= 17; i++) {
        rss.delivered += 8;
        lw_sock_path_update(&rs, &rss, t + (uint64_t)i * 12500);
    }
    TAP_OK(!rs.unsuited && rs.rate == rate, "a period that began with the window restarted small: not judged");

    /* A rate read 5 % high (2.44 MB/s on a path of 2.32 MB/s): not short of it by an eighth, so
     * no verdict. The kernel's rate samples say 2.32 MB/s; the limit holds to them once a period
     * has been judged, not before (in slow start they lag a round trip). */
    const uint64_t path_rate = 20ull * 1448 * 1000000 / 12500;
    struct lw_sock_path st5 = {.rate = 2440000, .engaged = true, .win_us = t, .check_us = t, .check_rate = 2440000};
    struct lw_sock_tcp_state s5 = us;
    s5.delivered = 0;
    s5.delivery_rate = path_rate;
    s5.unacked = 179; /* near the cap at 2.44 MB/s (181) */
    for (int i = 1; i <= 15; i++) {
        s5.delivered += 20;
        lw_sock_path_update(&st5, &s5, t + (uint64_t)i * 12500);
    }
    TAP_OK(s5.path_rate == 2440000 && s5.path_window_rate == 0, "before a period is judged: the fastest window's rate");
    s5.delivered += 20;
    lw_sock_path_update(&st5, &s5, t + 16 * 12500);
    TAP_OK(!st5.short_once && st5.judged_once && st5.rate == 2440000 && s5.path_rate == path_rate &&
               s5.path_window_rate == 2440000,
           "once one is: the kernel's fastest sample, lower");
    s5.delivery_rate = path_rate / 2; /* an app-limited sample */
    s5.unacked = 170;                 /* near the cap at 2.32 MB/s (172) */
    for (int i = 17; i <= 32; i++) {
        s5.delivered += 20;
        lw_sock_path_update(&st5, &s5, t + (uint64_t)i * 12500);
    }
    TAP_OK(!st5.short_once && s5.path_rate == path_rate, "a slower sample does not lower it");
    s5.delivery_rate = 2600000;
    s5.delivered += 20;
    lw_sock_path_update(&st5, &s5, t + 33 * 12500);
    TAP_OK(s5.path_rate == 2440000, "a sample faster than the fastest window: the window's rate");
    /* Periods are judged against the rate held to. Behind another flow's queue a period held to
     * the samples' 2.32 MB/s delivers 2.09 MB/s: short of 7/8 of the window's 2.44, not of 2.32. */
    struct lw_sock_path st6 = {
        .rate = 2440000, .engaged = true, .judged_once = true, .sample_rate = path_rate, .win_us = t};
    struct lw_sock_tcp_state s6 = us;
    s6.delivered = 0;
    s6.delivery_rate = path_rate;
    s6.unacked = 165; /* the samples' rate x min RTT is 160 segments, the window's 168 */
    s6.rtt_us = 101000; /* no queue for a moment: a new period begins */
    s6.delivered += 18;
    lw_sock_path_update(&st6, &s6, t + 12500);
    s6.rtt_us = 130000;
    for (int i = 2; i <= 17; i++) {
        s6.delivered += 18;
        lw_sock_path_update(&st6, &s6, t + (uint64_t)i * 12500);
    }
    TAP_OK(st6.check_us == t + 17 * 12500 && !st6.short_once && st6.rate == 2440000 && s6.path_rate == path_rate,
           "judged against the samples' rate held to: within 7/8 of it, no verdict");
    for (int i = 18; i <= 33; i++) {
        s6.delivered += 14; /* 1.62 MB/s */
        lw_sock_path_update(&st6, &s6, t + (uint64_t)i * 12500);
    }
    TAP_OK(st6.short_once && !st6.unsuited && st6.rate == 14ull * 1448 * 1000000 / 12500, "under 7/8 of it: short");
    for (int i = 34; i <= 49; i++) {
        s6.delivered += 12; /* 1.39 MB/s */
        lw_sock_path_update(&st6, &s6, t + (uint64_t)i * 12500);
    }
    TAP_OK(st6.unsuited, "and short again: the limit turns off, as on the window's rate");
    /* The queue the limit allows: a sixteenth of the RTT, and once a period has been judged at
     * least LW_SOCK_QUEUE_MIN_SEGS segments as far as the fastest window's rate allowed (a
     * 4 Mbit/s path: a sixteenth of 100 ms is two segments). */
    const uint64_t slow = 482500, slow_bdp = slow * 100000 / 1000000;
    struct lw_sock_tcp_state sq = {.rtt_us = 110000, .min_rtt_us = 100000, .cwnd = 80, .unacked = 34, .mss = 1448,
                                   .path_rate = slow, .pace_tokens = UINT64_MAX};
    b = lw_sock_budget_compute(&sq, &limited, 0);
    TAP_EQ_INT(b.bytes, (slow_bdp + slow_bdp / 16 + 2 * 1448 - 34 * 1448) / 1448 * (1448 - 22),
               "on the fastest window's rate: a sixteenth of the RTT and two segments");
    sq.path_window_rate = slow * 108 / 100; /* the window read 8 % high: it allowed 4.9 segments */
    b = lw_sock_budget_compute(&sq, &limited, 0);
    TAP_EQ_INT(b.bytes, (slow_bdp + (LW_SOCK_QUEUE_MIN_SEGS + 2) * 1448 - 34 * 1448) / 1448 * (1448 - 22),
               "once a period has been judged: at least LW_SOCK_QUEUE_MIN_SEGS segments and two");
    sq.path_window_rate = slow; /* the window read the rate: it allowed a sixteenth */
    b = lw_sock_budget_compute(&sq, &limited, 0);
    TAP_EQ_INT(b.bytes, (slow_bdp + slow_bdp / 16 + 2 * 1448 - 34 * 1448) / 1448 * (1448 - 22),
               "but no more than the fastest window's rate allowed");

    /* A slow link: 4 Mbit/s, 100 ms, an ACK every two segments (5.8 ms). An eighth of the RTT
     * holds about four segments; windows count only once they hold LW_SOCK_RATE_MIN_SEGS. */
    struct lw_sock_path sp = {0};
    struct lw_sock_tcp_state sl = {.rtt_us = 100500, .min_rtt_us = 100000, .cwnd = 40, .unacked = 30, .mss = 1448,
                                   .delivered = 10, .pace_tokens = UINT64_MAX};
    lw_sock_path_update(&sp, &sl, t);
    sl.delivered += 6; /* a burst of three ACKs in 12.5 ms: 5.6 Mbit/s if it counted */
    lw_sock_path_update(&sp, &sl, t + 12500);
    TAP_EQ_INT(sp.rate, 0, "a window of 6 segments on a slow link does not count");
    sl.delivered += 10; /* 16 segments in 48 ms */
    lw_sock_path_update(&sp, &sl, t + 48000);
    TAP_EQ_INT(sp.rate, 16ull * 1448 * 1000000 / 48000, "16 segments make a window: 3.86 Mbit/s");
    /* The first flight engages the limit while slow start has yet to fill the path; a faster
     * window then raises the rate while the period is judged. */
    sp.rate = 300000;
    sl.rtt_us = 115000;
    sl.delivered += 16; /* 16 segments in 52 ms: 3.56 Mbit/s */
    lw_sock_path_update(&sp, &sl, t + 100000);
    const uint64_t at_engage = 16ull * 1448 * 1000000 / 52000;
    TAP_OK(sp.engaged && sp.check_rate == at_engage, "engaged: the period is judged against the rate it had then");
    sp.rate = 600000; /* 4.8 Mbit/s from a window since */
    sp.engaged_us = t - 1000000; /* (as if it had engaged a while ago, so that this period is judged) */
    sl.unacked = 45;             /* in flight at the cap for 4.8 Mbit/s */
    sl.delivered += 60;          /* 60 segments in 200 ms: 3.48 Mbit/s, under 7/8 of 4.8, not of 3.56 */
    lw_sock_path_update(&sp, &sl, t + 300000);
    TAP_OK(!sp.unsuited, "a period that began lower is judged against its start: the limit stays");
    sl.unacked = 30;
    /* Its pacer keeps four segments of allowance, not two: 7.7 ms of a 6 Mbit/s pacer. */
    lw_sock_path_spend(&sp, UINT64_MAX);
    lw_sock_path_update(&sp, &sl, t + 320000);
    TAP_EQ_INT(sp.tokens, LW_SOCK_PACER_MIN_SEGS * 1448, "a slow pacer holds four segments");
    /* Engaged on a rate measured low (2 Mbit/s on that 4 Mbit/s link), the window that shows the
     * path's rate lifts the limit for the budget of the same read: a window takes some 50 ms
     * there, and holding to the old rate until the next read left the path idle. */
    struct lw_sock_path lp = {.rate = 251000, .engaged = true, .win_us = t, .win_delivered = 100, .tokens_us = t,
                              .check_us = t, .check_rate = 251000};
    struct lw_sock_tcp_state ls = {.rtt_us = 124000, .min_rtt_us = 100000, .cwnd = 61, .unacked = 24, .mss = 1448,
                                   .delivered = 119, .pace_tokens = UINT64_MAX};
    lw_sock_path_update(&lp, &ls, t + 57000); /* 19 segments in 57 ms: 3.86 Mbit/s */
    const uint64_t lifted = 19ull * 1448 * 1000000 / 57000;
    TAP_OK(lp.rate == lifted && ls.path_rate == lifted, "a faster window is the limit's rate at once");
    b = lw_sock_budget_compute(&ls, &limited, 0);
    TAP_OK(b.bytes > 0, "24 segments in flight on a path of 33: room to write (%zu)", b.bytes);
    /* The limit engages on a rate measured low (16 segments in 92 ms, 2 Mbit/s) with 41 segments
     * in flight over a smoothed RTT of 115.3 ms: until the next window it holds to 7/8 of that,
     * 3.6 Mbit/s, but judges against what it measured. */
    struct lw_sock_path ep = {.win_us = t, .win_delivered = 100};
    struct lw_sock_tcp_state es = {.rtt_us = 115300, .min_rtt_us = 100400, .cwnd = 42, .unacked = 41, .mss = 1448,
                                   .delivered = 116, .pace_tokens = UINT64_MAX};
    lw_sock_path_update(&ep, &es, t + 92000);
    const uint64_t low = 16ull * 1448 * 1000000 / 92000, flight = 41ull * 1448 * 1000000 / 115300;
    TAP_OK(ep.engaged && ep.rate == low && ep.check_rate == low, "engaged on the rate measured, and judged against it");
    TAP_EQ_INT(es.path_rate, flight - flight / 8, "held to 7/8 of what is in flight per smoothed RTT");
    es.delivered += 16; /* the next window: 16 segments in 57 ms, under that floor */
    es.path_rate = 0;
    lw_sock_path_update(&ep, &es, t + 149000);
    TAP_EQ_INT(es.path_rate, 16ull * 1448 * 1000000 / 57000, "from the next window on, the rate measured");

    /* A 20 ms, 10 Mbit/s path, held: rate x minimum RTT is 25,000 bytes. The writer goes to
     * wait for room on a timer with the path full (20 segments in flight) and comes back late,
     * with 12 segments in flight: 7,624 bytes short of the path. */
    struct lw_sock_path wp = {.rate = 1250000, .engaged = true, .win_us = t, .win_delivered = 500, .tokens_us = t,
                              .check_us = t, .check_rate = 1250000, .slack_us = t};
    struct lw_sock_tcp_state ws = {.rtt_us = 21000, .min_rtt_us = 20000, .cwnd = 40, .unacked = 12, .mss = 1448,
                                   .delivered = 500, .pace_tokens = UINT64_MAX};
    const uint64_t short_by = 25000 - 12 * 1448;
    uint64_t wt = t;
#define WAIT_AND_RETURN(full_segs, back_segs, written)                                                               \
    do {                                                                                                             \
        ws.unacked = (full_segs);                                                                                    \
        lw_sock_path_update(&wp, &ws, wt += 1000);                                                                   \
        lw_sock_path_wait(&wp);                                                                                      \
        ws.unacked = (back_segs);                                                                                    \
        lw_sock_path_update(&wp, &ws, wt += 3000);                                                                   \
        lw_sock_path_spend(&wp, (written));                                                                          \
    } while (0)
    ws.unacked = 20;
    lw_sock_path_update(&wp, &ws, wt += 1000);
    ws.unacked = 12;
    lw_sock_path_update(&wp, &ws, wt += 1000);
    lw_sock_path_spend(&wp, 1426);
    TAP_EQ_INT(wp.slack, 0, "full, then short without a wait for room: no slack");
    WAIT_AND_RETURN(20, 12, 0);
    TAP_EQ_INT(wp.slack, 0, "short after a wait, but nothing to write: the path was not starved");
    ws.unacked = 20;
    lw_sock_path_update(&wp, &ws, wt += 1000);
    lw_sock_path_wait(&wp);
    ws.unacked = 12;
    lw_sock_path_update(&wp, &ws, wt += 3000); /* short after a wait; the pass writes nothing, */
    ws.unacked = 20;
    lw_sock_path_update(&wp, &ws, wt += 1000); /* and a later pass, after no wait, does */
    lw_sock_path_spend(&wp, 1426);
    TAP_EQ_INT(wp.slack, 0, "a shortfall is the next pass's to spend, not a later one's");
    ws.cwnd = 12;
    WAIT_AND_RETURN(20, 12, 1426);
    TAP_EQ_INT(wp.slack, 0, "short after a wait, with the kernel's window full: TCP held it, not the limit");
    ws.cwnd = 40;
    WAIT_AND_RETURN(14, 12, 1426);
    TAP_EQ_INT(wp.slack, 0, "short after a wait that began short (the pacer's, or slow start's gaps): no slack");
    WAIT_AND_RETURN(20, 12, 1426);
    TAP_EQ_INT(wp.slack, short_by, "full, then short after a wait with bytes to write: the queue allowed grows by it");
    WAIT_AND_RETURN(20, 12, 1426);
    TAP_EQ_INT(ws.path_slack, short_by, "the next read's budget allows it");
    TAP_EQ_INT(wp.slack, 2 * short_by, "short again: it grows again");
    wt += 20000;
    WAIT_AND_RETURN(20, 18, 1426);
    TAP_EQ_INT(wp.slack, 2 * short_by - 2 * short_by / LW_SOCK_SLACK_DECAY,
               "a minimum RTT without a shortfall: it shrinks by an eighth");
    for (int i = 0; i < 10; i++) {
        WAIT_AND_RETURN(20, 0, 1426);
    }
    TAP_EQ_INT(wp.slack, 25000, "never more than a path's worth");
    ws.unacked = 18;
    lw_sock_path_update(&wp, &ws, wt += 40000);
    TAP_EQ_INT(wp.slack, 25000 - 3125 - (25000 - 3125) / 8, "two minimum RTTs later, two eighths off");
    lw_sock_path_update(&wp, &ws, wt += 10000000);
    TAP_EQ_INT(wp.slack, 0, "after a quiet spell, none");
#undef WAIT_AND_RETURN
    /* The budget: a sixteenth of the path and its slack, at most a path's worth of queue. */
    struct lw_sock_budget_cfg held_cfg = cubic_tls13;
    held_cfg.queue_limit = true;
    struct lw_sock_tcp_state hs2 = {.rtt_us = 21000, .min_rtt_us = 20000, .cwnd = 80, .unacked = 12, .mss = 1448,
                                    .path_rate = 1250000, .pace_tokens = UINT64_MAX, .path_slack = 5000};
    b = lw_sock_budget_compute(&hs2, &held_cfg, 0);
    TAP_EQ_INT(b.bytes, (25000 + 25000 / 16 + 5000 + 2 * 1448 - 12 * 1448) / 1448 * (1448 - 22),
               "slack adds to the queue allowed");
    hs2.path_slack = 100000;
    b = lw_sock_budget_compute(&hs2, &held_cfg, 0);
    TAP_EQ_INT(b.bytes, (25000 + 25000 + 2 * 1448 - 12 * 1448) / 1448 * (1448 - 22),
               "no more than a path's worth of queue");

    /* The first flight's ACK timestamps, recorded across a 100 ms, 20 Mbit/s link (19.31 Mbit/s
     * of TCP payload): seven sends of a segment each, acknowledged two at a time. */
    uint32_t keys[7];
    for (int i = 0; i < 7; i++) {
        keys[i] = 1447 + 1448 * (uint32_t)i;
    }
    uint64_t acks1[7] = {0, 1048000, 1064000, 2231000, 2243000, 3439000, 3451000};
    TAP_EQ_INT(lw_sock_burst_rate(keys, acks1, 7), 2896000000000u / 1183000,
               "the median of the rates between ACKs (the first one early: 22.1 Mbit/s)");
    uint64_t acks2[7] = {0, 16000, 1198000, 1212000, 2401000, 2415000, 3595000};
    TAP_EQ_INT(lw_sock_burst_rate(keys, acks2, 7), 2896000000000u / 1203000,
               "a lone last segment's ACK (half the rate) does not lower it");
    uint64_t delayed[7] = {0, 16000, 1198000, 1212000, 2401000, 2415000, 43595000};
    TAP_EQ_INT(lw_sock_burst_rate(keys, delayed, 7), 0, "a delayed ACK (40 ms) spreads the gaps: no rate");
    TAP_EQ_INT(lw_sock_burst_rate(keys, acks2, 6), 2896000000000u / 1198000,
               "two ACKs after the first: the higher of their rates");
    TAP_EQ_INT(lw_sock_burst_rate(keys, acks2, 4), 0, "one ACK after the first tells nothing");
    uint64_t one_ack[7] = {0, 12000, 24000, 36000, 48000, 60000, 72000};
    TAP_EQ_INT(lw_sock_burst_rate(keys, one_ack, 7), 0, "one ACK for the whole flight tells nothing");
    /* Recorded across a 20 ms, 10 Mbit/s path whose client side sends every 8 ms: ACKs of one
     * batch come tens of microseconds apart, and the median read 900 Mbit/s. */
    uint64_t batched[4] = {0, 8012000, 8090000, 8171000};
    TAP_EQ_INT(lw_sock_burst_rate(keys, batched, 4), 0, "rates that scatter (ACKs in batches): no rate");
    uint64_t backwards[7] = {0, 16000, 1198000, 1100000, 2401000, 2415000, 3595000};
    TAP_EQ_INT(lw_sock_burst_rate(keys, backwards, 7), 0, "out of order: no rate");

    /* Known from the first flight, the rate engages the limit once the path is full, while
     * the RTT shows no queue yet (BBR's startup, 0.6 s into a page across that link). */
    struct lw_sock_path kp = {0};
    lw_sock_path_set_burst_rate(&kp, 2413000);
    struct lw_sock_tcp_state ks = {.rtt_us = 101700,
                                   .min_rtt_us = 100200,
                                   .cwnd = 258,
                                   .unacked = 160,
                                   .mss = 1448,
                                   .pacing_rate = 5000000,
                                   .delivered = 1000,
                                   .pace_tokens = UINT64_MAX};
    uint64_t kt = 600000000;
    lw_sock_path_update(&kp, &ks, kt);
    TAP_OK(!kp.engaged, "known rate, less than the path in flight: not engaged");
    ks.unacked = 180; /* 241,781 bytes of path and a sixteenth: 179.2 segments */
    ks.delivered += 4;
    lw_sock_path_update(&kp, &ks, kt += 2000);
    TAP_OK(kp.engaged && ks.path_known && ks.path_rate == 2413000, "the path and a sixteenth in flight: engaged");
    struct lw_sock_budget_cfg known_cfg = cubic_tls13;
    known_cfg.queue_limit = true;
    known_cfg.pacing = true;
    TAP_EQ_INT(lw_sock_budget_compute(&ks, &known_cfg, 0).bytes, 0, "and it holds, though the RTT shows no queue");
    struct lw_sock_path unknown = {.rate = 2413000};
    struct lw_sock_tcp_state uks = ks;
    uks.path_known = false; /* as each TCP_INFO read leaves it */
    lw_sock_path_update(&unknown, &uks, kt);
    uks.delivered += 40;
    lw_sock_path_update(&unknown, &uks, kt + 13000); /* a window later: a rate measured, no queue */
    TAP_OK(unknown.rate != 0 && !unknown.engaged && !uks.path_known,
           "the same in flight with a rate measured from windows: waits for the queue");
    ks.rtt_us = 106000; /* the sixteenth of queue allowed */
    lw_sock_path_update(&kp, &ks, kt += 2 * 100200);
    TAP_OK(kp.known, "two RTTs later with the queue allowed in the RTT: still known");
    ks.rtt_us = 100900; /* under a thirty-second above the minimum */
    lw_sock_path_update(&kp, &ks, kt += 2000);
    TAP_OK(!kp.known && kp.engaged, "a path's worth in flight and no queue: the path takes more, the queue decides");
    TAP_OK(!ks.path_known, "and the budget is told");
    /* Read high: the RTT shows a queue with less than that path in flight. */
    struct lw_sock_path hp = {.rate = 1500000};
    lw_sock_path_set_burst_rate(&hp, 20000000);
    struct lw_sock_tcp_state rh = {.rtt_us = 26000,
                                   .min_rtt_us = 23100,
                                   .cwnd = 120,
                                   .unacked = 60,
                                   .mss = 1448,
                                   .pacing_rate = 3000000,
                                   .delivered = 500,
                                   .pace_tokens = UINT64_MAX};
    lw_sock_path_update(&hp, &rh, 1000000);
    rh.delivered += 40;
    lw_sock_path_update(&hp, &rh, 1000000 + 13000);
    TAP_OK(hp.engaged && !hp.known, "a queue before the first flight's path is full: engaged, the rate forgotten");
    TAP_OK(rh.path_rate != 0 && rh.path_rate < 20000000, "and holds to what it measures, not to that rate");
    /* Engaged early, then more queue than the limit allows: read high, or another flow's. */
    struct lw_sock_path xp = {0};
    lw_sock_path_set_burst_rate(&xp, 2413000);
    struct lw_sock_tcp_state xs = ks;
    xs.unacked = 180;
    xs.rtt_us = 101700;
    lw_sock_path_update(&xp, &xs, 700000000);
    TAP_OK(xp.engaged && xp.known, "engaged early");
    xs.rtt_us = 100200 + 100200 / 8 + 1000;
    lw_sock_path_update(&xp, &xs, 700002000);
    TAP_OK(xp.engaged && !xp.known, "an eighth of queue while held to it: forgotten");

    /* The queue's rule engages first (an eighth of queue) with the path full: forgotten too, in
     * the same update, so a rate still known after engaging means the early rule engaged. */
    struct lw_sock_path qp = {.rate = 1500000};
    lw_sock_path_set_burst_rate(&qp, 2413000);
    struct lw_sock_tcp_state qs = ks;
    qs.unacked = 170; /* the path, under its sixteenth */
    qs.rtt_us = 100200 + 100200 / 8 + 1000;
    qs.path_known = false;
    lw_sock_path_update(&qp, &qs, 800000000);
    qs.delivered += 16; /* a window under the first flight's rate, which the limit keeps */
    lw_sock_path_update(&qp, &qs, 800013000);
    TAP_OK(qp.engaged && !qp.known, "the queue's rule engaged: the first flight's rate forgotten");

    /* Marking: at most LW_SOCK_BURST_MAX sends a burst; a pause starts the burst again; over
     * once measured and the last marked byte's ACK is in. */
    struct lw_sock_burst mb = {.state = LW_SOCK_BURST_MARKING};
    TAP_OK(lw_sock_burst_sent(&mb, 1448, 1000), "a first send");
    lw_sock_burst_sent(&mb, 1448, 1100);
    lw_sock_burst_sent(&mb, 1448, 1100 + LW_SOCK_BURST_SPAN_US + 1);
    TAP_OK(mb.sent == 1 && mb.from_key == 2 * 1448 && mb.bytes == 3 * 1448, "a pause: the burst starts again");
    bool more = true;
    for (int i = 1; i < LW_SOCK_BURST_MAX && more; i++) {
        more = lw_sock_burst_sent(&mb, 1448, 3000 + (uint64_t)i);
    }
    TAP_OK(!more && mb.sent == LW_SOCK_BURST_MAX, "the marking ends at LW_SOCK_BURST_MAX sends");
    mb.state = LW_SOCK_BURST_WAITING;
    mb.acked = mb.bytes;
    TAP_OK(!lw_sock_burst_is_over(&mb), "all acknowledged but not measured yet: not over");
    mb.state = LW_SOCK_BURST_MEASURED;
    TAP_OK(lw_sock_burst_is_over(&mb), "measured, the last marked byte acknowledged: over");
    mb.acked -= 1;
    TAP_OK(!lw_sock_burst_is_over(&mb), "its last byte not yet: a timestamp may still come");
    struct lw_sock_path zero = {0};
    lw_sock_path_set_burst_rate(&zero, 0);
    TAP_OK(!zero.known && zero.rate == 0, "no rate from the burst: nothing known");
    return tap_done();
}
