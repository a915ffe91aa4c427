/* SPDX-License-Identifier: MIT */
/* Socket options and address helpers shared by listeners, frontends and backends. */
#include "proxy/sock.h"

#include "common/err.h"
#include "common/mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <linux/tcp.h> /* glibc's struct tcp_info lacks pacing_rate and notsent_bytes */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void lw_sock_tune_frontend(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void lw_sock_tune_backend(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void lw_sock_format_ip(const struct sockaddr *sa, char *buf, size_t len)
{
    if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)len);
    } else if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)len);
    } else {
        snprintf(buf, len, "unix");
    }
}

void lw_sock_format(const struct sockaddr *sa, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    lw_sock_format_ip(sa, ip, sizeof(ip));
    if (sa->sa_family == AF_INET6) {
        snprintf(buf, len, "[%s]:%u", ip, ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
    } else if (sa->sa_family == AF_INET) {
        snprintf(buf, len, "%s:%u", ip, ntohs(((const struct sockaddr_in *)sa)->sin_port));
    } else {
        snprintf(buf, len, "%s", ip);
    }
}

bool lw_sock_parse_literal(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        *len = sizeof(*s4);
        return true;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        *len = sizeof(*s6);
        return true;
    }
    return false;
}

int lw_sock_listen(const struct sockaddr *sa, socklen_t len, int backlog)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Each worker binds its own socket to the same port; the kernel spreads connections. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (sa->sa_family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(fd, sa, len) != 0 || listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

uint16_t lw_sock_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        return 0;
    }
    if (ss.ss_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int lw_sock_connect(const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    lw_sock_tune_backend(fd);
    if (connect(fd, sa, len) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* The path limit (see struct lw_sock_path): what of bytes may go now, and when nothing may
 * and nothing unsent will wake the writer, how long until room frees. */
static size_t limit_to_path(const struct lw_sock_tcp_state *st, const struct lw_sock_budget_cfg *cfg, size_t payload,
                            size_t bytes, uint32_t *wait_us)
{
    uint64_t min_rtt = st->min_rtt_us;
    /* After a retransmission timeout TCP sends only as the peer acknowledges, and a peer that
     * has gone acknowledges nothing: held back with nothing unsent, the writer would wake on
     * its timer every few milliseconds until TCP gives up (minutes). TCP's window is what
     * holds the connection back then; the one segment the budget leaves unsent makes the
     * socket's writable event the wake-up. */
    if (st->in_loss) {
        return bytes;
    }
    if (st->path_rate == 0 || min_rtt < LW_MAX((uint64_t)cfg->min_rtt_us, (uint64_t)LW_SOCK_LIMIT_MIN_RTT_US) ||
        (st->rtt_us <= min_rtt + min_rtt / LW_SOCK_HOLD_SHARE && !st->path_known)) {
        return bytes;
    }
    /* A queue remains: bytes in flight beyond rate x minimum RTT only lengthen it. Allow a
     * sixteenth of the RTT of queue (and two segments) so the bottleneck never idles. Once a
     * period has been judged, at least LW_SOCK_QUEUE_MIN_SEGS (see there), as far as the
     * fastest window's rate allowed: the rate held to only ever lowers the cap. */
    uint64_t mss = st->mss;
    uint64_t bdp = st->path_rate * min_rtt / 1000000u;
    uint64_t queue = bdp / LW_SOCK_QUEUE_SHARE;
    if (st->path_window_rate != 0) {
        uint64_t window_bdp = st->path_window_rate * min_rtt / 1000000u;
        uint64_t window_cap = window_bdp + window_bdp / LW_SOCK_QUEUE_SHARE;
        uint64_t allowed = window_cap > bdp ? window_cap - bdp : 0;
        queue = LW_MAX(queue, LW_MIN((uint64_t)LW_SOCK_QUEUE_MIN_SEGS * mss, allowed));
    }
    /* And what the writer's late returns have needed (lw_sock_path_wait), up to a path's worth. */
    queue = LW_MAX(queue, LW_MIN(queue + st->path_slack, bdp));
    uint64_t cap = bdp + queue + 2 * mss;
    uint64_t held = (uint64_t)st->unacked * mss + st->notsent_bytes;
    uint64_t room = cap > held ? (cap - held) / mss * payload : 0;
    uint64_t wait = room == 0 ? (held + 2 * mss - cap) * 1000000u / st->path_rate : 0;
    /* And no faster than a little above the rate, or the bytes in flight bunch up. */
    uint64_t paced = st->pace_tokens / payload * payload;
    if (paced < room) {
        room = paced;
        uint64_t pace_rate = st->path_rate * LW_SOCK_PACING_GAIN_Q / 4;
        wait = LW_MAX(wait, (2 * payload - LW_MIN(st->pace_tokens, payload)) * 1000000u / pace_rate);
    }
    if (room == 0 && st->notsent_bytes == 0) {
        wait = LW_MIN(wait, min_rtt / 4);
        *wait_us = (uint32_t)LW_MAX(wait, (uint64_t)LW_SOCK_WAIT_MIN_US);
    }
    return (size_t)LW_MIN((uint64_t)bytes, room);
}

/* Largest TLS record payload (RFC 8446 section 5.1). */
#define RECORD_MAX 16384

/* Records of several segments once bytes flow. One record per segment costs a record's
 * overhead and a frame header per segment: 31 of 1,448 bytes with AES-GCM, 2.1 % more on the
 * wire than 16 KiB records (across a 100 ms, 20 Mbit/s link a 1 MB page took 1.9 % longer
 * with BBR). The budget counts whole segments of payload; the same segments carry more when
 * fewer records share them, so it becomes those segments' bytes less one overhead per record,
 * and records span up to cfg->record_segments segments, never more than a 16 KiB record
 * holds. A record is decrypted only whole, but its segments leave in one burst; and a
 * response's last DATA frame ends its record (h2_front), so the bytes that follow never hold
 * a finished response back. */
static void grow_records(struct lw_sock_budget *b, const struct lw_sock_budget_cfg *cfg, size_t mss)
{
    size_t overhead = cfg->tls_overhead;
    size_t per_record = (RECORD_MAX + overhead) / mss;
    size_t max_segs = LW_MIN((size_t)cfg->record_segments, per_record);
    size_t segs = (b->bytes + b->record_size / 2) / b->record_size;
    if (overhead == 0 || max_segs < 2 || segs < 2) {
        return;
    }
    size_t k = LW_MIN(max_segs, segs);
    size_t records = (segs + k - 1) / k;
    b->record_size = k * mss - overhead;
    b->bytes = segs * mss - records * overhead;
}

struct lw_sock_budget lw_sock_budget_compute(const struct lw_sock_tcp_state *st, const struct lw_sock_budget_cfg *cfg,
                                             uint64_t loop_us)
{
    struct lw_sock_budget b = {.active = false, .bytes = SIZE_MAX, .record_size = RECORD_MAX};
    if (!cfg->enabled || st->mss == 0 || st->rtt_us < cfg->min_rtt_us || st->mss <= cfg->tls_overhead + 64) {
        return b;
    }
    /* The loop's own latency adds to every response; past a share of the RTT, holding bytes
     * back costs more than it saves. */
    if (loop_us * 100 > (uint64_t)st->rtt_us * cfg->max_loop_share) {
        return b;
    }
    if (cfg->max_cwnd != 0 && st->cwnd > cfg->max_cwnd) {
        return b;
    }
    size_t payload = st->mss - cfg->tls_overhead;
    /* What TCP sends at once: the free part of the window, plus one segment that waits
     * unsent in the kernel, so an ACK puts it on the wire at once and wakes us
     * (TCP_NOTSENT_LOWAT) to decide what goes after it. Every unsent segment is one a newly
     * urgent response queues behind: across a 100 ms link with cubic, a script asked for
     * during slow start took 1.07 RTT with two such segments and 1.05 with one. */
    uint32_t free_segs = st->cwnd > st->unacked ? st->cwnd - st->unacked : 0;
    size_t bytes = ((size_t)free_segs + 1) * payload;
    bool paced = cfg->pacing && st->pacing_rate != 0 && st->pacing_rate != UINT64_MAX;
    if (paced) {
        /* A pacer releases the window over time: what it does not send now waits in the
         * kernel, unsent, in front of whatever is urgent next. */
        uint64_t slice = st->pacing_rate * LW_SOCK_PACING_SLICE_US / 1000000u;
        /* At least a segment; two when nothing is in flight (a response after an idle
         * spell): the pacer sends the first burst at once, two segments where it may
         * (min TSO burst), and a lone segment would leave the second a pacing gap behind. */
        size_t floor = (st->unacked == 0 ? 2 : 1) * payload;
        if (slice < floor) {
            slice = floor;
        }
        if (slice < bytes) {
            bytes = (size_t)slice;
        }
    }
    /* Bytes still unsent in the kernel are already in front of whatever comes next: this
     * write may only add what keeps the wire busy beyond them. A write is often asked for
     * between writable events (a backend chunk arrived), and without this each one would
     * queue another window's worth. */
    bytes = bytes > st->notsent_bytes ? bytes - st->notsent_bytes : 0;
    if (paced) {
        /* Whole segments: a slice seldom ends on one, and its part-segment tail would go out
         * alone, a small packet that takes a whole segment's place in the congestion window
         * (counted in packets) and a pacing gap of its own. */
        bytes = (bytes + payload / 2) / payload * payload;
    }
    if (cfg->queue_limit) {
        bytes = limit_to_path(st, cfg, payload, bytes, &b.wait_us);
    }
    b.active = true;
    b.bytes = bytes;
    b.record_size = payload;
    b.segment_size = st->mss;
    grow_records(&b, cfg, st->mss);
    return b;
}

/* The path's rate as the limit knows it: the fastest window's, or the kernel's fastest rate
 * sample once a period has been judged, if lower (see lw_sock_path_update). */
static uint64_t held_rate(const struct lw_sock_path *p)
{
    bool sampled = p->judged_once && p->sample_rate != 0 && p->sample_rate < p->rate;
    return sampled ? p->sample_rate : p->rate;
}

/* The rate the limit holds to: that, or the floor it engaged with if higher, or the first
 * flight's while it is known. */
static uint64_t limit_rate(const struct lw_sock_path *p)
{
    uint64_t rate = LW_MAX(held_rate(p), p->flight_rate);
    return p->known ? LW_MAX(rate, p->burst_rate) : rate;
}

/* The path's worth of bytes at that rate: rate x minimum RTT. */
static uint64_t path_bytes(const struct lw_sock_path *p, const struct lw_sock_tcp_state *st)
{
    return limit_rate(p) * st->min_rtt_us / 1000000u;
}

/* A new period for the limit to be judged over (see lw_sock_path_update). */
static void start_period(struct lw_sock_path *p, const struct lw_sock_tcp_state *st, uint64_t now_us)
{
    p->check_us = now_us;
    p->check_delivered = st->delivered;
    p->check_rate = held_rate(p);
    p->check_unheld = st->unacked == 0 || (uint64_t)st->cwnd * st->mss < path_bytes(p, st);
}

/* The path's rate from a window of deliveries that ends now, and whether the limit engages or
 * is judged (see lw_sock_path_update). */
static void measure(struct lw_sock_path *p, const struct lw_sock_tcp_state *st, uint64_t now_us)
{
    uint64_t min_rtt = st->min_rtt_us;
    if (p->win_us == 0 || st->delivered < p->win_delivered) {
        p->win_us = now_us;
        p->win_delivered = st->delivered;
        return;
    }
    uint64_t elapsed = now_us - p->win_us;
    if (elapsed < LW_SOCK_RATE_WINDOW_US || elapsed < min_rtt / 8 ||
        st->delivered - p->win_delivered < LW_SOCK_RATE_MIN_SEGS) {
        return;
    }
    /* A window that spans an idle gap measures less than the path: only the maximum counts. */
    uint64_t rate = (uint64_t)(st->delivered - p->win_delivered) * st->mss * 1000000u / elapsed;
    p->rate = LW_MAX(p->rate, rate);
    p->flight_rate = 0;
    p->win_us = now_us;
    p->win_delivered = st->delivered;
    if (min_rtt == 0 || p->rate == 0 || p->unsuited) {
        return;
    }
    bool queue = st->rtt_us > min_rtt + min_rtt / LW_SOCK_HOLD_SHARE;
    if (!p->engaged) {
        if (st->rtt_us > min_rtt + min_rtt / LW_SOCK_ENGAGE_SHARE) {
            if (p->known && (uint64_t)st->unacked * st->mss < path_bytes(p, st)) {
                /* A queue before the first flight's path was full: that rate was read high
                 * (ACKs that came bunched), or the queue is another flow's. */
                p->known = false;
            }
            uint64_t flight_rate = (uint64_t)st->unacked * st->mss * 1000000u / st->rtt_us;
            p->flight_rate = flight_rate - flight_rate / 8;
            p->engaged = true;
            p->engaged_us = now_us;
            start_period(p, st, now_us);
        }
        return;
    }
    if (!queue) {
        /* No queue, nothing held back: judge only periods the limit applies through. */
        start_period(p, st, now_us);
    } else if (now_us - p->check_us >= 2 * min_rtt) {
        /* Judged only where the limit can be what held the connection back (lw_sock_path_update). */
        bool held = p->check_us >= p->engaged_us + min_rtt && !p->check_unheld &&
                    (uint64_t)st->unacked * st->mss >= path_bytes(p, st);
        if (held) {
            uint64_t got = (uint64_t)(st->delivered - p->check_delivered) * st->mss * 1000000u / (now_us - p->check_us);
            uint64_t judged = LW_MIN(p->rate, p->check_rate);
            bool short_of_rate = got < judged - judged / 8;
            p->unsuited = short_of_rate && p->short_once;
            p->short_once = short_of_rate;
            if (short_of_rate) {
                p->rate = got; /* read high, perhaps: see lw_sock_path_update */
            }
            p->judged_once = true;
        }
        start_period(p, st, now_us);
    }
}

void lw_sock_path_update(struct lw_sock_path *p, struct lw_sock_tcp_state *st, uint64_t now_us)
{
    if (limit_rate(p) != 0 && now_us > p->tokens_us) {
        /* Top up the pacer: its rate over the time since, holding at most its depth (the
         * loop's timers wake a few milliseconds late), never less than LW_SOCK_PACER_MIN_SEGS
         * segments (see there; and a large segment on a slow path must fit). */
        uint64_t pace_rate = limit_rate(p) * LW_SOCK_PACING_GAIN_Q / 4;
        uint64_t floor = (uint64_t)LW_SOCK_PACER_MIN_SEGS * st->mss;
        uint64_t depth = LW_MAX(pace_rate * LW_SOCK_PACER_DEPTH_US / 1000000u, floor);
        uint64_t dt = LW_MIN(now_us - p->tokens_us, 1000000u); /* no overflow after a long idle */
        p->tokens = LW_MIN(p->tokens + pace_rate * dt / 1000000u, depth);
    }
    p->tokens_us = now_us;
    p->sample_rate = LW_MAX(p->sample_rate, st->delivery_rate);
    if (st->unacked == 0) {
        p->check_unheld = true; /* the writer idled: this period is not judged */
    }
    measure(p, st, now_us);
    if (p->known && !p->unsuited && st->min_rtt_us != 0) {
        /* The rate is the path's already (lw_sock_path_set_burst_rate): hold to it once what is
         * in flight passes the path, before the queue it would build shows in the RTT. */
        uint64_t path = path_bytes(p, st);
        uint64_t in_flight = (uint64_t)st->unacked * st->mss;
        if (!p->engaged && in_flight > path + path / LW_SOCK_QUEUE_SHARE) {
            p->engaged = true;
            p->engaged_us = now_us;
            start_period(p, st, now_us);
        } else if (p->engaged && now_us >= p->engaged_us + 2 * (uint64_t)st->min_rtt_us && in_flight >= path &&
                   st->rtt_us <= st->min_rtt_us + st->min_rtt_us / LW_SOCK_HOLD_SHARE) {
            /* A path's worth in flight and still no queue: the path takes more than the first
             * flight said (it shared the bottleneck with another flow's burst). From here the
             * limit applies only while the RTT shows a queue, and holds to the rates measured
             * since, as it does without a first flight's rate. */
            p->known = false;
        } else if (p->engaged && st->rtt_us > st->min_rtt_us + st->min_rtt_us / LW_SOCK_ENGAGE_SHARE) {
            /* More queue than the limit allows: the rate was read high, or the queue is another
             * flow's. The same. */
            p->known = false;
        }
    }
    p->shortfall = 0; /* each read's own: spent, or not, by the pass that follows it */
    if (p->engaged && !p->unsuited && st->min_rtt_us != 0) {
        /* An eighth off per minimum RTT since, however long the connection was quiet. */
        uint64_t rtts = (now_us - p->slack_us) / st->min_rtt_us;
        for (uint64_t i = 0; i < rtts && p->slack != 0; i++) {
            p->slack -= LW_MAX(p->slack / LW_SOCK_SLACK_DECAY, 1u);
        }
        p->slack_us += rtts * st->min_rtt_us;
        uint64_t path = path_bytes(p, st);
        uint64_t in_flight = (uint64_t)st->unacked * st->mss + st->notsent_bytes;
        /* Counted only where the path was full when the writer went to wait (not while slow
         * start's gaps, or the pacer, kept it below), and where the kernel's window had room
         * when it came back (a loss's cut of the window is TCP's doing). */
        if (p->waited && p->read_in_flight >= p->read_path && st->cwnd > st->unacked) {
            p->shortfall = in_flight < p->read_path ? p->read_path - in_flight : 0;
        }
        p->read_path = path;
        p->read_in_flight = in_flight;
    }
    p->waited = false;
    /* The budget of this same read sees a rate that this window just raised: on a slow link a
     * window takes tens of milliseconds, and a limit engaged on a rate measured low, held to it
     * until the next read, let the path idle. */
    if (p->engaged && !p->unsuited) {
        st->path_rate = limit_rate(p);
        st->pace_tokens = p->tokens;
        st->path_window_rate = p->judged_once ? p->rate : 0;
        st->path_slack = p->slack;
        st->path_known = p->known;
    }
}

void lw_sock_path_set_burst_rate(struct lw_sock_path *p, uint64_t rate)
{
    p->burst_rate = rate;
    p->known = rate != 0;
}

/* One ACK's timestamps come within microseconds of each other (one per send it covers); its time
 * is its first one's. The upper median: of two rates the higher, so one stretched gap (a
 * delayed ACK) never lowers the rate. */
uint64_t lw_sock_burst_rate(const uint32_t *key, const uint64_t *ack_ns, size_t n)
{
    uint64_t rates[LW_SOCK_BURST_MAX];
    uint64_t min_gap = UINT64_MAX, max_gap = 0;
    size_t k = 0;
    n = LW_MIN(n, (size_t)LW_SOCK_BURST_MAX);
    uint64_t ack_start = 0, prev_start = 0;
    uint32_t prev_key = 0;
    bool have_prev = false;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && (ack_ns[i] < ack_ns[i - 1] || key[i] <= key[i - 1])) {
            return 0; /* out of order: not one flight's ACKs */
        }
        if (i == 0 || ack_ns[i] - ack_ns[i - 1] >= LW_SOCK_BURST_SAME_ACK_NS) {
            ack_start = ack_ns[i];
        }
        if (i + 1 < n && ack_ns[i + 1] - ack_ns[i] < LW_SOCK_BURST_SAME_ACK_NS) {
            continue; /* the same ACK covers the next send too */
        }
        if (have_prev) {
            uint64_t gap = ack_start - prev_start;
            rates[k++] = (uint64_t)(key[i] - prev_key) * 1000000000u / gap;
            min_gap = LW_MIN(min_gap, gap);
            max_gap = LW_MAX(max_gap, gap);
        }
        prev_start = ack_start;
        prev_key = key[i];
        have_prev = true;
    }
    /* ACKs that come in aggregates (a link that batches them, as Wi-Fi does) are spaced by the
     * batching, not by the path: tens of microseconds within a batch, milliseconds between
     * (across a 20 ms path whose ACKs came every 8 ms the median read 900 Mbit/s). A path spaces
     * them evenly, within the one or two segments each covers. */
    if (k < 2 || max_gap > LW_SOCK_BURST_GAP_SPREAD * min_gap) {
        return 0;
    }
    for (size_t i = 1; i < k; i++) { /* insertion sort: a handful */
        uint64_t r = rates[i];
        size_t j = i;
        for (; j > 0 && rates[j - 1] > r; j--) {
            rates[j] = rates[j - 1];
        }
        rates[j] = r;
    }
    /* And two of the rates at least within an eighth of the median. */
    uint64_t median = rates[k / 2];
    size_t near = 0;
    for (size_t i = 0; i < k; i++) {
        near += rates[i] + median / LW_SOCK_BURST_AGREE >= median && rates[i] <= median + median / LW_SOCK_BURST_AGREE;
    }
    return near >= 2 ? median : 0;
}

int lw_sock_burst_mark(int fd, bool on)
{
    /* The report flags stay on after the marking ends: they are read when a timestamp is made
     * and when it is received, and without them the ACKs of sends already marked come without
     * their time or their byte count. */
    int flags = SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY;
    if (on) {
        flags |= SOF_TIMESTAMPING_TX_ACK;
    }
    return setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof(flags)) == 0 ? 0 : LW_EIO;
}

bool lw_sock_burst_is_over(const struct lw_sock_burst *b)
{
    return b->state == LW_SOCK_BURST_MEASURED && b->acked >= b->bytes;
}

void lw_sock_burst_stop(int fd)
{
    int off = 0;
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &off, sizeof(off));
}

bool lw_sock_burst_sent(struct lw_sock_burst *b, size_t len, uint64_t now_us)
{
    if (b->sent > 0 && now_us - b->last_send_us > LW_SOCK_BURST_SPAN_US) {
        b->from_key = b->bytes;
        b->sent = 0;
        b->n = 0;
    }
    b->bytes += (uint32_t)len;
    b->sent++;
    b->last_send_us = now_us;
    return b->sent < LW_SOCK_BURST_MAX;
}

void lw_sock_burst_collect(int fd, struct lw_sock_burst *b)
{
    while (!lw_sock_burst_is_over(b)) {
        char control[256];
        char byte;
        struct iovec iov = {&byte, 1};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
        if (recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
            return; /* EAGAIN: none left */
        }
        uint64_t ns = 0;
        bool ack = false;
        uint32_t key = 0;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm != NULL; cm = CMSG_NXTHDR(&m, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_TIMESTAMPING) {
                struct scm_timestamping ts;
                memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
                ns = (uint64_t)ts.ts[0].tv_sec * 1000000000u + (uint64_t)ts.ts[0].tv_nsec;
            } else if ((cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
                       (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR)) {
                struct sock_extended_err e;
                memcpy(&e, CMSG_DATA(cm), sizeof(e));
                ack = e.ee_origin == SO_EE_ORIGIN_TIMESTAMPING && e.ee_info == SCM_TSTAMP_ACK;
                key = e.ee_data;
            }
        }
        if (ack) {
            b->acked = LW_MAX(b->acked, key + 1);
        }
        if (ack && ns != 0 && key >= b->from_key && b->n < LW_SOCK_BURST_MAX) {
            b->key[b->n] = key;
            b->ack_ns[b->n] = ns;
            b->n++;
        }
    }
}

void lw_sock_path_spend(struct lw_sock_path *p, uint64_t bytes)
{
    p->tokens = p->tokens > bytes ? p->tokens - bytes : 0;
    if (bytes > 0 && p->shortfall > 0) {
        /* The writer had bytes for the path that ran dry: its returns starved it. */
        p->slack = LW_MIN(p->slack + p->shortfall, p->read_path);
        p->slack_us = p->tokens_us;
    }
    p->shortfall = 0;
}

void lw_sock_path_wait(struct lw_sock_path *p)
{
    p->waited = true;
}

int lw_sock_read_tcp_state(int fd, struct lw_sock_tcp_state *st)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) {
        return LW_EIO;
    }
    st->rtt_us = ti.tcpi_rtt;
    st->cwnd = ti.tcpi_snd_cwnd;
    st->unacked = ti.tcpi_unacked;
    st->mss = ti.tcpi_snd_mss;
    st->notsent_bytes = ti.tcpi_notsent_bytes;
    st->pacing_rate = ti.tcpi_pacing_rate;
    /* Linux reports ~0 before the first RTT sample. */
    st->min_rtt_us = ti.tcpi_min_rtt == UINT32_MAX ? 0 : ti.tcpi_min_rtt;
    st->delivered = ti.tcpi_delivered;
    st->delivery_rate = ti.tcpi_delivery_rate;
    st->in_loss = ti.tcpi_ca_state == TCP_CA_Loss;
    st->data_segs_out = ti.tcpi_data_segs_out;
    st->path_known = false;
    st->path_rate = 0;
    st->path_window_rate = 0;
    st->path_slack = 0;
    st->pace_tokens = UINT64_MAX;
    return 0;
}

void lw_sock_set_notsent_lowat(int fd, unsigned value)
{
    setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &value, sizeof(value));
}

int lw_sock_get_notsent_lowat(int fd)
{
    int v = -1;
    socklen_t len = sizeof(v);
    if (getsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, &len) != 0) {
        return -1;
    }
    return v;
}

bool lw_sock_cc_paces(int fd)
{
    char name[16] = {0};
    socklen_t len = sizeof(name) - 1;
    if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &len) != 0) {
        return false;
    }
    return strncmp(name, "bbr", 3) == 0;
}
