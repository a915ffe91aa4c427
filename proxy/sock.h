/* SPDX-License-Identifier: MIT */
/*
 * Socket tuning and helpers. Only this module touches socket options such as TCP_NODELAY
 * (and the write-budget options of the responsiveness work).
 */
#ifndef LW_PROXY_SOCK_H
#define LW_PROXY_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * Writing for responsiveness. Bytes handed to the kernel can no longer be reprioritized, so
 * on a connection with a real RTT lowat keeps the kernel's unsent queue near empty
 * (TCP_NOTSENT_LOWAT = 1: the socket reports writable only once what it holds has gone
 * out) and writes, per writable event, only what TCP puts on the wire at once: the free
 * part of the congestion window, and under a pacing congestion control (BBR) no more than
 * the pacing rate sends in a short slice. Unsent bytes then wait in the HTTP/2 stream queues,
 * where a new, more urgent response still overtakes them. On a short RTT, or when the
 * worker's own loop is slow relative to the RTT, the optimization steps aside.
 */

/* The TCP_INFO fields the budget needs (a copy, so the arithmetic is testable on records). */
struct lw_sock_tcp_state {
    uint32_t rtt_us;
    uint32_t cwnd;    /* segments */
    uint32_t unacked; /* segments in flight */
    uint32_t mss;     /* bytes */
    uint32_t notsent_bytes;
    uint64_t pacing_rate; /* bytes per second; 0 or ~0 when unknown */
    uint32_t min_rtt_us;  /* the kernel's windowed minimum RTT; 0 when unknown */
    uint32_t delivered;   /* segments the peer has received (acknowledged or SACKed) so far */
    uint64_t delivery_rate; /* bytes per second: the kernel's latest delivery rate sample; 0: none */
    bool in_loss;           /* recovering from a retransmission timeout (TCP_CA_Loss) */
    uint32_t data_segs_out; /* segments with data sent so far, retransmissions included */
    /* Not from TCP_INFO: lw_sock_path_update fills these while the path limit is engaged. */
    uint64_t path_rate;   /* bytes per second the path delivers; 0: no limit */
    uint64_t pace_tokens; /* bytes the pacer allows now */
    uint64_t path_window_rate; /* the fastest window's, once a period has been judged; 0 before */
    uint64_t path_slack;  /* bytes added to the queue allowed (lw_sock_path_wait) */
    bool path_known;      /* the rate came from a burst: the limit applies before a queue shows */
};

/*
 * The path's bottleneck rate, for keeping the queue a connection builds in it short. Slow
 * start doubles what is in flight every round trip and overshoots the path by up to as much
 * again; the excess waits in the bottleneck's buffer, and a response that becomes urgent then
 * waits behind it however small the writes are (across a 100 ms, 20 Mbit/s link: 25-45 ms
 * of queue, cwnd 250 segments for a path of 167). Packets that queue back to back at the
 * bottleneck leave it, and are acknowledged, at its rate, so the fastest delivery rate over an
 * eighth of the RTT tells the rate before the window reaches it (on that link from the fourth
 * round trip). Once the RTT shows a queue, the write budget keeps the bytes in flight near
 * rate x minimum RTT and paces them (lw_sock_budget_compute).
 */
struct lw_sock_path {
    uint64_t rate;          /* bytes per second: the fastest delivery rate seen; 0 until measured */
    uint64_t sample_rate;   /* bytes per second: the fastest of the kernel's delivery rate samples */
    bool judged_once;       /* a period has been judged since the limit engaged (lw_sock_path_update) */
    uint64_t win_us;        /* start of the current measuring window; 0 before the first */
    uint32_t win_delivered; /* segments delivered at its start */
    uint32_t check_delivered;
    uint64_t engaged_us;    /* when the limit engaged */
    uint64_t check_us;      /* start of the current period judged while engaged */
    uint64_t check_rate;    /* the rate when it began */
    bool check_unheld;      /* not judged: TCP's window or an idle writer held it back */
    uint64_t flight_rate;   /* from engaging until the next window: a floor under rate (lw_sock_path_update) */
    uint64_t tokens;        /* pacer: bytes that may be written now */
    uint64_t tokens_us;     /* when they were last topped up */
    bool engaged;           /* a queue has been seen: limit and pace while one remains */
    bool unsuited;          /* the limit held the connection below its rate: off for good */
    bool short_once;        /* the last period judged delivered under the rate (see lw_sock_path_update) */
    /* What the writer's late returns need queued (see lw_sock_path_wait). */
    bool waited;            /* the writer last waited for room on a timer (lw_sock_path_wait) */
    uint64_t read_path;     /* at the last read: rate x minimum RTT, in bytes */
    uint64_t read_in_flight; /* and the bytes in flight and unsent */
    uint64_t shortfall;     /* bytes in flight fell short of the path's on the read after that wait */
    uint64_t slack;         /* bytes added to the queue allowed for such returns */
    uint64_t slack_us;      /* when it last grew, or the start of its current minimum RTT of shrinking */
    /* The rate measured from the first flight's ACKs (lw_sock_path_set_burst_rate). While it is
     * `known`, the limit holds to it (or to a faster rate measured since), engages once what is
     * in flight passes the path, before the RTT shows a queue, and applies without one. It is
     * forgotten when the RTT shows a queue before that much is in flight (read high, or another
     * flow's queue), or none with that much held in flight (read low). */
    uint64_t burst_rate;
    bool known;
};
/* Writes are paced at this multiple (in quarters) of the measured rate: the ACK-clocked
 * rounds of slow start send at twice the rate the ACKs return, in bursts that queue at the
 * bottleneck even with few bytes in flight; a little above the rate still lets a rate
 * measured too low grow. */
#define LW_SOCK_PACING_GAIN_Q 5
/* The queue the limit lets a connection keep in the path: 1/16 of the minimum RTT. */
#define LW_SOCK_QUEUE_SHARE 16
/* It engages once the smoothed RTT has been 1/8 above the minimum (slow start's own bursts
 * raise it by a few percent while the rate is still measured low)... */
#define LW_SOCK_ENGAGE_SHARE 8
/* ...and applies while it stays 1/32 above (below, the queue has gone: if the rate was
 * measured too low, TCP's window decides again and its bursts show the faster one). */
#define LW_SOCK_HOLD_SHARE 32
/* The least queue the limit allows once a period has been judged, in segments, as far as
 * the fastest window's rate x minimum RTT and a sixteenth allowed: the rate held to is then
 * the kernel's samples' or what a period delivered, exact, and the window's few percent over
 * it had been the headroom a slow path needs. Across a 4 Mbit/s, 100 ms link, with a
 * sixteenth of the RTT (two segments) on the exact rate, the client's delayed ACKs and the
 * loop's late timers idled the path, and a 1 MB page took 1.7-2.6 % longer with cubic
 * (0.7-1.9 % with BBR) than without the optimization; with this, 0.7-1.2 %, as on the window's
 * rate. Each segment is 2.9 ms of queue there (with four at once, not as far as the window
 * allowed, a script asked for after 256 KiB took 1.13-1.15 RTT against 1.10). On a 20 Mbit/s
 * link a sixteenth of 100 ms is 11 segments. */
#define LW_SOCK_QUEUE_MIN_SEGS 4
/* Shortest window a delivery rate is measured over: several ACKs even on a slow link. */
#define LW_SOCK_RATE_WINDOW_US 4000
/* Fewest segments a window must see delivered. On a slow link an eighth of the RTT holds only
 * a few, counted in the steps of whole ACKs, and the fastest such window reads high: across
 * a 4 Mbit/s, 100 ms link (3.86 Mbit/s of payload) it read 4.4-4.9 Mbit/s, and the limit then
 * took its own delivery for another flow's queue. On faster links an eighth of the RTT holds
 * more than this already (21 segments at 20 Mbit/s). */
#define LW_SOCK_RATE_MIN_SEGS 16
/* The limit's pacer holds at most this much of its rate, and at least LW_SOCK_PACER_MIN_SEGS
 * segments: the loop's timers wake a few milliseconds late, and a shallower bucket would lose
 * what they owe. (With at most two segments, a 4 Mbit/s, 100 ms link was held at 25 segments
 * in flight for a path of 34; with four, at the path.) */
#define LW_SOCK_PACER_DEPTH_US 4000
#define LW_SOCK_PACER_MIN_SEGS 4
/* Paths shorter than this have no queue worth limiting (loopback reports a few us). */
#define LW_SOCK_LIMIT_MIN_RTT_US 1000
/* The shortest wait for room (the loop's timers have millisecond steps). */
#define LW_SOCK_WAIT_MIN_US 1000
/* The slack for late returns shrinks by 1/this each minimum RTT without a shortfall. */
#define LW_SOCK_SLACK_DECAY 8
/* Update the path from a TCP_INFO read taken at now_us (monotonic): the rate, the pacer and
 * whether the limit is engaged. While it is, sets st->path_rate, st->path_window_rate,
 * st->path_slack and st->pace_tokens for lw_sock_budget_compute. Every two minimum RTTs
 * while a queue remains, the limit is judged: if the path delivered under 7/8 of its rate, the queue is not this connection's
 * (another flow's, or a minimum RTT gone stale after a route change) and holding back only costs
 * it throughput, so the limit turns off for the connection; or the rate was read high. A window of
 * an eighth of the RTT reads high when ACKs come bunched (across a 100 ms, 20 Mbit/s link whose
 * ACKs came up to 2 ms late, windows read 21.8-27.8 Mbit/s), and the rate keeps the fastest. So
 * the first period that falls short sets the rate to what it delivered, measured over two RTTs;
 * the limit turns off only if the next period judged falls short of that too (behind another
 * flow's queue, what the limit holds in flight delivers less each period). Not judged: a period
 * that began within an RTT of engaging (what it delivers was sent before the limit held anything
 * back); one during which a read found nothing in flight, or that began with TCP's window under
 * the rate held to x minimum RTT (the writer idled, or TCP's window and not the limit held the
 * connection back: a response after an idle spell starts from an empty path, and after a long one
 * from a window restarted small, while the smoothed RTT still shows the last response's queue;
 * two such periods in a row, each read as short, turned the limit off for good); and one that
 * ends with less than the rate held to x minimum RTT in flight (then the limit is not what holds
 * the connection back: slow start's own bursts can engage it with the path half full, and the
 * path delivers under the rate until the window has grown). The rate judged against is the one
 * held to when the period began, if lower: on a slow link the first flight alone can
 * engage the limit while slow start has yet to fill the path, and the rate measured on the way up
 * is not one the period could have delivered. The rate can also be measured low when the limit
 * engages (on a slow link a window takes tens of milliseconds, and those of slow start span its
 * idle gaps), and held to it the path idles: until the next window, the limit uses at least 7/8 of
 * what is in flight per smoothed RTT (with a queue, the path delivers that; the RTT lags the
 * queue's growth, hence the eighth off). Only until then: kept as the rate, a floor read high in
 * BBR's startup would loosen the limit for good, and the judge would take its own queue for
 * another flow's. The fastest window reads high by a few percent even without bunched ACKs, and
 * more the longer a transfer lasts (the maximum of more windows): across a 100 ms, 20 Mbit/s link
 * a 12 MB download kept 14 ms of queue in the path, and a script asked for after 4 MiB took 1.12
 * RTT. The kernel's own delivery rate samples (TCP_INFO) each span at least the minimum RTT, so
 * bunched ACKs count for little in them, but they lag a round trip in slow start, when the
 * window's rate is needed to engage in time. So once a period has been judged (two RTTs and more
 * with a queue throughout: the bottleneck was busy, and the samples saw its rate), the limit holds
 * to the fastest sample if it is lower than the fastest window. The fastest sample only grows, and
 * the periods are judged against the rate held to: against the fastest window, a period held to
 * the lower samples' rate behind another flow's queue falls short of an eighth sooner, and the
 * rate then becomes what it delivered (a fluid model of the judge, RTT 1.18-1.20 x the minimum:
 * 80-82 % of the path, against 93-95 % with the window's rate alone). */
void lw_sock_path_update(struct lw_sock_path *p, struct lw_sock_tcp_state *st, uint64_t now_us);
/* Take bytes written from the pacer's allowance; bytes written after a wait that starved the
 * path grow the slack (lw_sock_path_wait). */
void lw_sock_path_spend(struct lw_sock_path *p, uint64_t bytes);
/*
 * The writer, held back by the limit with nothing unsent, waits on a timer for room (the
 * budget's wait_us). It comes back late: the loop's clock (libevent reads
 * CLOCK_MONOTONIC_COARSE, whose steps are the kernel's tick: 4 ms at HZ=250) wakes it up to a
 * step after the time asked, and a client whose ACKs come in aggregates (Wi-Fi) acknowledges
 * nothing for several milliseconds, then much at once. Meanwhile the path drains the queue the
 * limit allowed, and on a short path a sixteenth of the RTT is less than a step: across 20 ms
 * at 10 Mbit/s the link idled, and a 3 MB page took 14-26 % longer than with the optimization
 * off (28-39 % with 8 ms aggregates). So when the path was full (rate x minimum RTT in flight)
 * as the writer went to wait, the read after the wait tells how far what is in flight fell
 * short of it (below it, the bottleneck has run dry), and if the writer then had bytes to send
 * (lw_sock_path_spend), the queue allowed grows by that much, up to a path's worth: it grows
 * only where the writer's returns actually starved the path, not where they merely could (a
 * measure of ACK aggregation alone, as BBR keeps, made a script on an unbatched 100 ms path
 * wait behind 12-25 ms more queue). It shrinks by an eighth each minimum RTT without such a
 * shortfall, so one late wake-up of the loop costs only briefly.
 */
void lw_sock_path_wait(struct lw_sock_path *p);

/*
 * The path's rate from its first flight. BBR's startup overshoots the path: it paces at 2.89
 * times the rate it has measured, which in slow start lags the path by a round trip, so by the
 * time the ACKs show the path full, a round trip's worth of excess waits in the bottleneck. Across
 * a 100 ms, 20 Mbit/s link a script asked for after 256 KiB of a page met 14-15 ms of it (1.15
 * RTT), and no rule driven by the RTT or by later delivery rates can see it coming: both lag the
 * queue they would prevent by the same round trip. The one flight sent faster than the path is
 * the first: Linux does not pace a connection's first ten segments, so they reach the bottleneck
 * back to back and leave it, and are acknowledged, spaced by its rate. The kernel's timestamps of
 * those ACKs (SO_TIMESTAMPING, SCM_TSTAMP_ACK, one per send) give that spacing to within a few
 * percent: across that link 19.3-19.6 Mbit/s against 19.3 of TCP payload. The rate is the median
 * of the rates between successive ACKs (the bytes an ACK newly covers over the time since the one
 * before; timestamps within LW_SOCK_BURST_SAME_ACK_NS of each other are one ACK's), so a last
 * segment acknowledged alone moves one of them, not the median. Where the gaps are uneven (ACKs
 * that come in batches, a delayed ACK) there is no rate, and the limit works as without one.
 * Known before the path fills, it lets the limit hold BBR's startup to the path (see struct
 * lw_sock_path's `known`).
 */
#define LW_SOCK_BURST_MAX 16
#define LW_SOCK_BURST_SAME_ACK_NS 50000
/* Rates between ACKs agree when within 1/this of the median, and their gaps when the longest
 * is at most this many times the shortest (see lw_sock_burst_rate). */
#define LW_SOCK_BURST_AGREE 8
#define LW_SOCK_BURST_GAP_SPREAD 4
/* Linux paces a connection only after its first ten data segments (tcp_update_skb_after_send). */
#define LW_SOCK_BURST_UNPACED_SEGS 10
/* A send this long after the one before starts the burst again: a pause (the SETTINGS frame
 * written before a response that took the backend a while) is not the path's spacing. */
#define LW_SOCK_BURST_SPAN_US 1000
struct lw_sock_burst {
    uint8_t state;     /* LW_SOCK_BURST_* */
    uint8_t sent;      /* sends of the burst marked so far, at most LW_SOCK_BURST_MAX */
    uint8_t n;         /* their ACK timestamps collected so far */
    uint32_t bytes;    /* bytes of every send marked (the ACKs' byte counts start from the first) */
    uint32_t acked;    /* of those, acknowledged with a timestamp collected */
    uint32_t from_key; /* the burst's first byte: timestamps of sends before it are not counted */
    uint64_t last_send_us;
    uint64_t end_us;                 /* when the marking ended */
    uint32_t key[LW_SOCK_BURST_MAX]; /* the byte count of each acknowledged send's last byte */
    uint64_t ack_ns[LW_SOCK_BURST_MAX];
};
enum { LW_SOCK_BURST_MARKING = 1, LW_SOCK_BURST_WAITING, LW_SOCK_BURST_MEASURED };
/* Pure: the rate in bytes per second from n ACK timestamps in the order they came (key: bytes
 * acknowledged, ack_ns: when); 0 when they do not tell it (fewer than three ACKs, uneven gaps,
 * rates that do not agree). */
uint64_t lw_sock_burst_rate(const uint32_t *key, const uint64_t *ack_ns, size_t n);
/* Ask the kernel to timestamp the ACK of each send from now on (on), or no longer (off; those
 * asked for still come, and must be collected: see lw_sock_burst_collect). Byte counts start at
 * the first unacknowledged byte: turn it on only with nothing in flight or unsent. 0 or
 * LW_EIO. */
int lw_sock_burst_mark(int fd, bool on);
/* A send of len bytes went out while marking (now_us: monotonic). Returns false when the
 * marking must end now (LW_SOCK_BURST_MAX sends in this burst). */
bool lw_sock_burst_sent(struct lw_sock_burst *b, size_t len, uint64_t now_us);
/* Whether the rate has been measured and the last timestamp asked for collected (every ACK
 * covers all the bytes before it, so the last marked byte's comes last): then none can follow. */
bool lw_sock_burst_is_over(const struct lw_sock_burst *b);
/* No more timestamps (once lw_sock_burst_is_over). */
void lw_sock_burst_stop(int fd);
/* Take the ACK timestamps waiting on fd's error queue into b. A socket reports an error while
 * any waits there, so from the first marked send until lw_sock_burst_is_over every wake-up
 * must take them. */
void lw_sock_burst_collect(int fd, struct lw_sock_burst *b);
/* The first flight's rate is known (bytes per second; 0: it could not be measured). */
void lw_sock_path_set_burst_rate(struct lw_sock_path *p, uint64_t rate);

struct lw_sock_budget_cfg {
    bool enabled;
    bool queue_limit;        /* keep bytes in flight near the path's rate x minimum RTT */
    uint32_t min_rtt_us;
    uint32_t max_cwnd;       /* 0: no cut-off */
    uint32_t max_loop_share; /* percent of the RTT */
    bool pacing;             /* the congestion control paces (BBR) */
    uint32_t tls_overhead;   /* bytes a TLS record adds (header, tag, type); 0 on cleartext */
    /* Segments one TLS record may span: 1 while a connection is new or fresh from idle, so
     * its first bytes are decrypted as each segment arrives; more once bytes flow (see
     * lw_sock_budget_compute), never more than a 16 KiB record holds. */
    uint32_t record_segments;
};

/* How long a slice of pacing-rate bytes one wake-up writes under a pacing congestion
 * control: short enough that the unsent bytes queued in front of an urgent response stay a
 * small fraction of an internet RTT, long enough to keep the pacer fed. Slices are cut to
 * whole segments (lw_sock_budget_compute). Across a 100 ms, 20 Mbit/s link with BBR, a 1 MB
 * page is then 1.4-1.9 % slower than plain writes with 1, 2, 4 or 6 ms slices alike; a script
 * asked for after 256 KiB arrives in 1.18, 1.19, 1.22 and 1.24 RTT. (Before the cut to whole
 * segments, 2 ms slices cost 2-3 % of the page: a small packet per slice.) */
#define LW_SOCK_PACING_SLICE_US 2000

struct lw_sock_budget {
    bool active;         /* the optimization is on: LOWAT 1, write at most `bytes` */
    size_t bytes;        /* payload bytes to produce now; 0: wait (for writable, or wait_us) */
    size_t record_size;  /* TLS record payload size: whole segments, one or more */
    size_t segment_size; /* bytes of one segment (MSS), which records start and end on */
    uint32_t wait_us;    /* bytes is 0 with nothing unsent, so no ACK wakes the writer: retry after */
};

/* Pure: the write budget for one writable event given the socket's state and the worker's
 * loop time (us per iteration, 0 if unknown). */
struct lw_sock_budget lw_sock_budget_compute(const struct lw_sock_tcp_state *st, const struct lw_sock_budget_cfg *cfg,
                                             uint64_t loop_us);

/* Read TCP_INFO into st. 0, or LW_EIO. */
int lw_sock_read_tcp_state(int fd, struct lw_sock_tcp_state *st);
/* Set TCP_NOTSENT_LOWAT (0 restores the system default). */
void lw_sock_set_notsent_lowat(int fd, unsigned value);
/* Read TCP_NOTSENT_LOWAT back (for the debug log and tests); -1 on error. */
int lw_sock_get_notsent_lowat(int fd);
/* Does the socket's congestion control pace its sends itself (BBR)? */
bool lw_sock_cc_paces(int fd);

/* Tune an accepted frontend socket: TCP_NODELAY. */
void lw_sock_tune_frontend(int fd);
/* Tune a backend socket: TCP_NODELAY. */
void lw_sock_tune_backend(int fd);

/* "1.2.3.4:80" or "[::1]:80" into buf. */
void lw_sock_format(const struct sockaddr *sa, char *buf, size_t len);
/* Only the address part, no port. */
void lw_sock_format_ip(const struct sockaddr *sa, char *buf, size_t len);

/* Parse a literal IPv4/IPv6 host and a port into ss. false if host is not a literal. */
bool lw_sock_parse_literal(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len);

/* Open a listening socket (SO_REUSEADDR, SO_REUSEPORT, non-blocking). Returns fd or -1 (errno). */
int lw_sock_listen(const struct sockaddr *sa, socklen_t len, int backlog);
/* The port a socket is bound to. */
uint16_t lw_sock_local_port(int fd);

/* Start a non-blocking connect. Returns fd (connect in progress or done) or -1 (errno). */
int lw_sock_connect(const struct sockaddr *sa, socklen_t len);

#endif
