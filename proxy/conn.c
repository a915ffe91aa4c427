/* SPDX-License-Identifier: MIT */
/*
 * Frontend connections: the TLS handshake and record layer (BoringSSL over a BIO that
 * reads the socket and writes into our own buffer), the choice of protocol (ALPN, or
 * sniffing the h2 preface on cleartext), and the write loop that pulls bytes from the
 * protocol only as the socket can take them.
 */
#include "proxy/conn.h"

#include <errno.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/clock.h"
#include "common/mem.h"
#include "config/config.h"
#include "proxy/h1_front.h"
#include "proxy/h2_front.h"
#include "proxy/sock.h"
#include "proxy/tls.h"

/* Stop producing when this much is waiting for the socket. */
#define WBUF_HIGH (64 * 1024)
/* Largest TLS record payload (RFC 8446 section 5.1). */
#define TLS_RECORD_MAX 16384
#define READ_CHUNK 16384
/* Records that fit one typical segment, so the first bytes of a response can be decrypted as
 * they arrive instead of after a whole 16 KiB record (dynamic record sizing). */
#define SMALL_RECORD 1300
/* Bytes sent in small records after a connection starts or wakes from idle. */
#define SMALL_RECORD_BYTES (64 * 1024)
#define IDLE_RESET_US 1000000
/* While writing for responsiveness, past SMALL_RECORD_BYTES: segments one TLS record spans.
 * Two, not a full 16 KiB record's eleven. Across a 100 ms, 20 Mbit/s link (BBR, 10-16
 * samples a cell, repeated) the script asked for after 256 KiB took 1.153-1.161 RTT with two,
 * 1.168-1.176 with three, four or eleven, and 1.160 with one; the 1 MB page took 870 ms with
 * two, 863-868 with eleven and 873-874 with one (cubic: 842, 839-840, 846). Two keeps most of
 * the saving on the wire and the best late script. */
#define FLOWING_RECORD_SEGMENTS 2
/* On a short-RTT connection TCP_INFO is read again only this often (in flushes): a
 * getsockopt per write would cost throughput where the optimization steps aside anyway. */
#define TCP_INFO_SKIP 64

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void on_flush_ev(evutil_socket_t fd, short what, void *arg);
static void flush(struct lw_conn *c);
static void read_and_process(struct lw_conn *c, evutil_socket_t fd);

void lw_conn_new(struct lw_worker *w, int fd, const struct lw_listen_spec *listen, const struct sockaddr *peer)
{
    struct lw_conn *c = lw_calloc(1, sizeof(*c));
    c->worker = w;
    c->fd = fd;
    c->listen = listen;
    c->tls = listen->tls != NULL;
    lw_sock_format(peer, c->peer_str, sizeof(c->peer_str));
    lw_buf_init(&c->wbuf);
    lw_buf_init(&c->pbuf);
    lw_buf_init(&c->rbuf);
    lw_buf_init(&c->cbuf);
    c->rev = event_new(w->base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(w->base, fd, EV_WRITE, on_write, c);
    c->timer = evtimer_new(w->base, on_timer, c);
    c->flush_ev = event_new(w->base, -1, 0, on_flush_ev, c);
    lw_list_push_back(&w->conns, &c->link);
    w->num_conns++;
    w->conns_peak = LW_MAX(w->conns_peak, w->num_conns);
    lw_metrics_add(&w->metrics.connections_accepted, 1);
    lw_metrics_add(&w->metrics.connections_open, 1);
    lw_sock_tune_frontend(fd);
    const struct lw_config_responsiveness *rc = &listen->cfg->responsiveness;
    c->budget_cfg.enabled = rc->enabled;
    c->budget_cfg.queue_limit = rc->queue_limit;
    c->budget_cfg.min_rtt_us = rc->min_rtt_ms * 1000u;
    c->budget_cfg.max_cwnd = rc->max_cwnd;
    c->budget_cfg.max_loop_share = rc->max_loop_share;
    c->budget_cfg.pacing = rc->enabled && lw_sock_cc_paces(fd);
    c->record_size = SMALL_RECORD;
    if (c->tls) {
        c->ssl = lw_tls_ctx_new_ssl(listen->tls);
        BIO *bio = lw_tls_bio_new(fd, &c->wbuf);
        lw_tls_bio_read_ahead(bio, &c->cbuf, &w->read_bufs);
        SSL_set_bio(c->ssl, bio, bio);
        SSL_set_accept_state(c->ssl);
    }
    event_add(c->rev, NULL);
    lw_conn_set_timeout(c, w->config->limits.client_header_timeout_ms);
    lw_log_debug("%s: accepted (%s)", c->peer_str, c->tls ? "tls" : "cleartext");
}

static void conn_free(struct lw_reap *r)
{
    struct lw_conn *c = LW_CONTAINER_OF(r, struct lw_conn, reap);
    event_free(c->rev);
    event_free(c->wev);
    event_free(c->timer);
    event_free(c->flush_ev);
    free(c->burst);
    free(c);
}

void lw_conn_close(struct lw_conn *c)
{
    if (c->closed) {
        return;
    }
    c->closed = true;
    event_del(c->rev);
    event_del(c->wev);
    event_del(c->timer);
    event_del(c->flush_ev);
    if (c->h2 != NULL) {
        lw_h2_front_free(c->h2);
        c->h2 = NULL;
    }
    if (c->h1 != NULL) {
        lw_h1_front_free(c->h1);
        c->h1 = NULL;
    }
    if (c->ssl != NULL) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    close(c->fd);
    lw_buf_dispose(&c->wbuf);
    lw_buf_dispose(&c->pbuf);
    lw_buf_dispose(&c->rbuf);
    lw_buf_dispose_cached(&c->cbuf, &c->worker->read_bufs);
    lw_list_remove(&c->link);
    c->worker->num_conns--;
    lw_worker_conn_closed(c->worker);
    lw_metrics_add(&c->worker->metrics.connections_open, (uint64_t)-1);
    lw_log_debug("%s: closed", c->peer_str);
    lw_worker_reap(c->worker, &c->reap, conn_free);
    lw_worker_check_drained(c->worker);
}

void lw_conn_close_after_flush(struct lw_conn *c)
{
    if (c->closed || c->lingering) {
        return; /* already past its last write: lingering goes on reading until the end */
    }
    c->closing = true;
    event_del(c->rev);
    /* A client that never reads would keep it open: the last bytes get this long. */
    lw_conn_set_timeout(c, c->worker->config->limits.client_idle_timeout_ms);
    lw_conn_want_flush(c);
}

void lw_conn_cut_after_flush(struct lw_conn *c)
{
    c->cut = true;
    lw_conn_close_after_flush(c);
}

void lw_conn_set_timeout(struct lw_conn *c, uint32_t ms)
{
    if (ms == 0) {
        event_del(c->timer);
        return;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(c->timer, &tv);
}

void lw_conn_pause_read(struct lw_conn *c)
{
    if (!c->read_paused) {
        c->read_paused = true;
        event_del(c->rev);
    }
}

bool lw_conn_is_reset(struct lw_conn *c)
{
    /* A RST sets the socket's error (EPIPE after the peer's FIN, ECONNRESET before it). */
    int err = 0;
    socklen_t len = sizeof(err);
    return getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0;
}

void lw_conn_resume_read(struct lw_conn *c)
{
    if (c->closed || c->closing) {
        return;
    }
    if (c->read_paused) {
        c->read_paused = false;
        event_add(c->rev, NULL);
    }
    /* Input may already wait in our buffer or inside BoringSSL: act on it now. */
    event_active(c->rev, EV_READ, 0);
}

/* A zero timer rather than event_active: the pass then runs after one more poll of the
 * sockets, and the responses that became ready meanwhile (other backends answering while
 * this iteration ran) leave in the same write. Under load that halves the writes, and the
 * client's reads and wake-ups with them; when nothing else is ready it costs one epoll_wait
 * that returns at once. */
void lw_conn_want_flush(struct lw_conn *c)
{
    if (!c->closed && !c->flush_soon) {
        static const struct timeval zero = {0, 0};
        c->flush_soon = true;
        event_add(c->flush_ev, &zero);
    }
}

/* The shortest record sealed to fill a segment's remainder (see seal). */
#define SEAL_FILL_MIN 64

/* While writing for responsiveness, records the size of a segment's payload are decrypted as
 * each segment arrives, as long as they start on a segment's boundary: how much of a record
 * may be sealed now so that it ends on one (n when it already does, or when the room left is
 * too small to be worth a record). BoringSSL sends the session tickets with the connection's
 * first record: that one is kept short, and the next fills the segment the tickets began. */
static size_t aligned_record(const struct lw_conn *c, size_t n)
{
    if (!c->lowat_set || c->segment_size == 0 || c->segment_size > TLS_RECORD_MAX) {
        return n; /* not writing for responsiveness, or a jumbo segment that holds several records */
    }
    if (!c->sealed_any) {
        return LW_MIN(n, (size_t)SEAL_FILL_MIN);
    }
    size_t overhead = c->budget_cfg.tls_overhead;
    size_t seg = c->segment_size;
    size_t base = c->nseg_ends > 0 ? c->seg_ends[c->nseg_ends - 1] : 0;
    size_t used = (lw_buf_size(&c->wbuf) - base) % seg;
    if (used != 0 && seg - used >= overhead + SEAL_FILL_MIN) {
        return LW_MIN(n, seg - used - overhead);
    }
    return n;
}

/* Seal staged plaintext into TLS records appended to wbuf (the BIO's sink). */
static int seal(struct lw_conn *c)
{
    while (lw_buf_size(&c->pbuf) > 0) {
        size_t n = aligned_record(c, LW_MIN(lw_buf_size(&c->pbuf), c->record_size));
        c->sealed_any = true;
        ERR_clear_error();
        int r = SSL_write(c->ssl, lw_buf_head(&c->pbuf), (int)n);
        if (r <= 0) {
            char err[256];
            lw_tls_errors(err, sizeof(err));
            lw_log_info("%s: TLS write failed: %s", c->peer_str, err);
            return LW_EIO;
        }
        lw_buf_consume(&c->pbuf, (size_t)r);
    }
    return 0;
}

/* Response ends closer than this share a segment (see lw_conn_end_record). */
#define SEG_END_MERGE 256

void lw_conn_end_record(struct lw_conn *c)
{
    if (c->closed || !c->tls || !c->lowat_set) {
        return;
    }
    if (lw_buf_size(&c->pbuf) > 0 && seal(c) != 0) {
        c->io_failed = true;
        lw_conn_want_flush(c);
        return;
    }
    /* The response's last segment ends with it too (see write_out), and the records that
     * follow align from there. Ends a few bytes apart (a 204 then a 304) share a segment:
     * the first waits only for the few bytes of the second, and a short packet less takes its
     * place in the congestion window (counted in packets). */
    size_t end = lw_buf_size(&c->wbuf);
    if (end == 0) {
        return;
    }
    if (c->nseg_ends > 0 && (end - c->seg_ends[c->nseg_ends - 1] < SEG_END_MERGE || c->nseg_ends == LW_CONN_SEG_ENDS)) {
        c->seg_ends[c->nseg_ends - 1] = end;
    } else {
        c->seg_ends[c->nseg_ends++] = end;
    }
}

void lw_conn_send(struct lw_conn *c, const void *data, size_t len)
{
    /* Nothing follows a close_notify: the connection has ended gracefully on our side. */
    if (c->closed || c->tls_shut) {
        return;
    }
    if (!c->tls) {
        lw_buf_append(&c->wbuf, data, len);
        return;
    }
    /* Whole records straight from the caller's bytes when nothing is staged: one copy less
     * on large bodies (the staging buffer only collects what does not fill a record). With
     * full-size records, what is staged (a HEADERS frame, a WINDOW_UPDATE) goes out as its
     * own short record first, so that a DATA frame the size of a record (see h2_front) stays
     * one record instead of being copied into the staging buffer, straddling two. */
    if (len >= c->record_size && c->record_size == TLS_RECORD_MAX && lw_buf_size(&c->pbuf) > 0 && seal(c) != 0) {
        c->io_failed = true;
        lw_conn_want_flush(c);
        return;
    }
    const char *p = data;
    while (lw_buf_size(&c->pbuf) == 0 && len >= c->record_size && aligned_record(c, c->record_size) == c->record_size) {
        c->sealed_any = true;
        ERR_clear_error();
        int r = SSL_write(c->ssl, p, (int)c->record_size);
        if (r <= 0) {
            c->io_failed = true;
            lw_conn_want_flush(c);
            return;
        }
        p += r;
        len -= (size_t)r;
    }
    if (len == 0) {
        return;
    }
    data = p;
    lw_buf_append(&c->pbuf, data, len);
    if (lw_buf_size(&c->pbuf) >= TLS_RECORD_MAX && seal(c) != 0) {
        /* The caller is a protocol still using its state: close at the next flush. */
        c->io_failed = true;
        lw_conn_want_flush(c);
    }
}

static size_t produce(struct lw_conn *c, size_t budget)
{
    switch (c->proto) {
    case LW_CONN_PROTO_H2:
        return lw_h2_front_produce(c->h2, budget);
    case LW_CONN_PROTO_H1:
        return lw_h1_front_produce(c->h1, budget);
    case LW_CONN_PROTO_NONE:
        break;
    }
    return 0;
}

/* The first flight under a pacing congestion control: its sends are marked while the kernel
 * does not pace them, and their ACKs' timestamps tell the path's rate (see struct
 * lw_sock_burst). */
static void burst_end_marking(struct lw_conn *c, uint64_t now)
{
    lw_sock_burst_mark(c->fd, false);
    c->burst->state = LW_SOCK_BURST_WAITING;
    c->burst->end_us = now;
}

/* Once the last timestamp asked for is in, nothing more can come: the socket is left alone. */
static void burst_finish_if_over(struct lw_conn *c)
{
    if (lw_sock_burst_is_over(c->burst)) {
        lw_sock_burst_stop(c->fd);
        free(c->burst);
        c->burst = NULL;
    }
}

/* On each TCP_INFO read of a connection the limit may hold. */
static void burst_step(struct lw_conn *c, const struct lw_sock_tcp_state *st, uint64_t now)
{
    struct lw_sock_burst *b = c->burst;
    if (b == NULL) {
        /* Begun with nothing in flight or unsent (the first pass after the handshake), where
         * the kernel's byte counts for the ACKs start at the first byte we send: the count
         * that tells when the last marked byte's ACK is in must match them, or the error queue
         * would be left with timestamps nobody takes. And with a few unpaced segments left to
         * send (two ACKs at least after the first), or not at all. */
        c->burst_tried = true;
        if (st->unacked == 0 && st->notsent_bytes == 0 && st->data_segs_out + 2 < LW_SOCK_BURST_UNPACED_SEGS &&
            lw_sock_burst_mark(c->fd, true) == 0) {
            c->burst = lw_calloc(1, sizeof(*c->burst));
            c->burst->state = LW_SOCK_BURST_MARKING;
        }
        return;
    }
    if (b->state == LW_SOCK_BURST_MARKING &&
        (st->data_segs_out >= LW_SOCK_BURST_UNPACED_SEGS || (b->sent > 0 && now - b->last_send_us > st->min_rtt_us))) {
        /* The unpaced segments are spent, or the flight was short and is over. */
        burst_end_marking(c, now);
    }
    if (b->state == LW_SOCK_BURST_WAITING && (b->n >= b->sent || now - b->end_us >= 2 * (uint64_t)st->min_rtt_us)) {
        uint64_t rate = lw_sock_burst_rate(b->key, b->ack_ns, b->n);
        lw_log_debug("%s: the first flight's %u ACK timestamp(s) of %u send(s): the path takes %.2f Mbit/s",
                     c->peer_str, b->n, b->sent, rate * 8 / 1e6);
        lw_sock_path_set_burst_rate(&c->path, rate);
        b->state = LW_SOCK_BURST_MEASURED;
    }
    burst_finish_if_over(c);
}

/* Take the ACK timestamps the socket reports (a socket with any waiting reports an error, and
 * its events would fire without end). */
static void burst_collect(struct lw_conn *c)
{
    if (c->burst != NULL) {
        lw_sock_burst_collect(c->fd, c->burst);
        burst_finish_if_over(c);
    }
}

/* Write wbuf to the socket. Returns 0, LW_EAGAIN when bytes remain, LW_EIO on error.
 * At most two full TLS records go to each send(): measured with 1 MiB responses over
 * loopback (BBR), the proxy's CPU per MB was 730 us handing the kernel 64 KiB per call, 660
 * with three records, 640 with one, 590 with two; the kernel's transmit path, not the number
 * of calls, is what costs. */
static int write_out(struct lw_conn *c)
{
    size_t chunk = 2 * (TLS_RECORD_MAX + c->budget_cfg.tls_overhead);
    while (lw_buf_size(&c->wbuf) > 0) {
        size_t n = LW_MIN(lw_buf_size(&c->wbuf), chunk);
        int flags = MSG_NOSIGNAL;
        if (c->nseg_ends > 0 && c->seg_ends[0] <= n) {
            /* A response ends here: MSG_EOR keeps TCP from filling its last segment with the
             * bytes that follow (across a 100 ms, 20 Mbit/s link a script asked for behind a
             * page arrived up to 0.2 ms sooner). */
            n = c->seg_ends[0];
            flags |= MSG_EOR;
        }
        ssize_t w = send(c->fd, lw_buf_head(&c->wbuf), n, flags);
        if (w > 0 && c->burst != NULL && c->burst->state == LW_SOCK_BURST_MARKING) {
            uint64_t now = lw_time_mono_us();
            if (!lw_sock_burst_sent(c->burst, (size_t)w, now)) {
                burst_end_marking(c, now);
            }
        }
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return LW_EAGAIN;
            }
            lw_log_debug("%s: write failed: %s", c->peer_str, strerror(errno));
            return LW_EIO;
        }
        lw_buf_consume(&c->wbuf, (size_t)w);
        uint8_t passed = 0;
        for (uint8_t i = 0; i < c->nseg_ends; i++) {
            c->seg_ends[i] = c->seg_ends[i] > (size_t)w ? c->seg_ends[i] - (size_t)w : 0;
            passed += c->seg_ends[i] == 0;
        }
        if (passed > 0) {
            c->nseg_ends -= passed;
            memmove(c->seg_ends, c->seg_ends + passed, c->nseg_ends * sizeof(c->seg_ends[0]));
        }
    }
    return 0;
}

/* The write budget for this pass (see proxy/sock.h), and the TLS record size to go with it. */
static struct lw_sock_budget write_budget(struct lw_conn *c)
{
    struct lw_sock_budget b = {.active = false, .bytes = SIZE_MAX, .record_size = TLS_RECORD_MAX};
    /* Small records while a connection is new or fresh from idle, then full ones. */
    uint64_t now = lw_time_mono_us();
    if (now - c->last_write_us > IDLE_RESET_US) {
        c->bytes_since_idle = 0;
    }
    bool small = c->bytes_since_idle < SMALL_RECORD_BYTES;
    /* Closing: what is left (a GOAWAY, the end of a response) goes at once. Held back, it
     * would not go at all: flush lingers once a pass produces nothing more. */
    if (c->budget_cfg.enabled && c->skip_tcp_info == 0 && !c->closing) {
        struct lw_sock_tcp_state st;
        if (lw_sock_read_tcp_state(c->fd, &st) == 0) {
            c->rtt_us = st.rtt_us;
            if (c->budget_cfg.queue_limit && st.min_rtt_us >= LW_SOCK_LIMIT_MIN_RTT_US) {
                if (c->budget_cfg.pacing && st.min_rtt_us >= c->budget_cfg.min_rtt_us &&
                    (c->burst != NULL || !c->burst_tried)) {
                    burst_step(c, &st, now);
                }
                bool was_engaged = c->path.engaged, was_unsuited = c->path.unsuited;
                uint64_t rate_before = c->path.rate;
                bool was_judged = c->path.judged_once, was_known = c->path.known;
                lw_sock_path_update(&c->path, &st, now);
                if (was_known && !c->path.known) {
                    lw_log_debug("%s: the first flight's rate of %.2f Mbit/s forgotten (rtt %.1fms, min %.1fms, %u "
                                 "segments in flight): the RTT decides again",
                                 c->peer_str, c->path.burst_rate * 8 / 1e6, st.rtt_us / 1000.0, st.min_rtt_us / 1000.0,
                                 st.unacked);
                }
                if (c->path.engaged && !was_engaged) {
                    /* Known still, the first flight's rate engaged it: the queue's rule engages
                     * only with an eighth of queue, which forgets that rate in the same update. */
                    lw_log_debug(
                        "%s: %s (rtt %.1fms, min %.1fms): in flight held near %.2f Mbit/s x min rtt", c->peer_str,
                        c->path.known ? "the path is full at the first flight's rate" : "queue in the path",
                        st.rtt_us / 1000.0, st.min_rtt_us / 1000.0,
                        (c->path.known ? c->path.burst_rate : c->path.rate) * 8 / 1e6);
                }
                if (c->path.unsuited && !was_unsuited) {
                    lw_log_debug("%s: the path delivered %.2f Mbit/s, under 7/8 of %.2f, while held: "
                                 "in flight no longer held",
                                 c->peer_str, c->path.rate * 8 / 1e6, rate_before * 8 / 1e6);
                } else if (c->path.short_once && c->path.rate < rate_before) {
                    lw_log_debug("%s: the path delivered %.2f Mbit/s, under 7/8 of %.2f, while held: the rate may have "
                                 "been read high, it is now what was delivered",
                                 c->peer_str, c->path.rate * 8 / 1e6, rate_before * 8 / 1e6);
                }
                if (!was_judged && c->path.judged_once && !c->path.unsuited) {
                    lw_log_debug("%s: held through a period, the kernel's rate samples reach %.2f Mbit/s (the "
                                 "fastest window %.2f): in flight held near %.2f Mbit/s x min rtt; %.1f KB of slack "
                                 "for the writer's late returns",
                                 c->peer_str, c->path.sample_rate * 8 / 1e6, c->path.rate * 8 / 1e6,
                                 st.path_rate * 8 / 1e6, c->path.slack / 1e3);
                }
            }
            struct lw_sock_budget_cfg cfg = c->budget_cfg;
            cfg.record_segments = small ? 1 : FLOWING_RECORD_SEGMENTS;
            b = lw_sock_budget_compute(&st, &cfg, c->worker->loop_us);
            if (!b.active && st.rtt_us < c->budget_cfg.min_rtt_us) {
                c->skip_tcp_info = TCP_INFO_SKIP;
            }
            if (b.active != c->lowat_set) {
                /* 1, not 0: 0 means "the system default", which is no limit at all. */
                lw_sock_set_notsent_lowat(c->fd, b.active ? 1 : 0);
                c->lowat_set = b.active;
                lw_log_debug("%s: responsiveness %s (rtt %.1fms cwnd %u unacked %u mss %u): TCP_NOTSENT_LOWAT=%d",
                             c->peer_str, b.active ? "on" : "off", st.rtt_us / 1000.0, st.cwnd, st.unacked, st.mss,
                             lw_sock_get_notsent_lowat(c->fd));
            }
        }
    } else if (c->skip_tcp_info > 0) {
        c->skip_tcp_info--;
    }
    if (b.active) {
        return b;
    }
    b.record_size = small ? SMALL_RECORD : TLS_RECORD_MAX;
    return b;
}

/* Close gracefully once everything is written: closing a socket that still has unread input
 * makes the kernel send RST, and a client that sees RST drops what it had not read yet,
 * the GOAWAY or the 400 that says why. So shut our side, drop what still comes for a moment,
 * then close (the "lingering close" of HTTP servers). */
#define LINGER_MS 2000

/*
 * A graceful end on TLS says so with close_notify (RFC 8446 section 6.1): without it a client
 * cannot tell a close-delimited body that ended from one cut short (RFC 9112 section 9.8), and
 * OpenSSL 3 reports an unexpected EOF. Not after a cut (lw_conn_cut_after_flush), where its
 * absence is the honest signal, nor before the handshake has finished or after BoringSSL sent
 * a fatal alert (SSL_shutdown then fails and the FIN goes alone). One way, as nginx and h2o
 * do: the client's close_notify is not waited for (lingering drops it with its other input).
 * Returns false while the alert waits for the socket, or when the connection was closed;
 * flush comes back here once the socket takes it.
 */
static bool send_close_notify(struct lw_conn *c)
{
    if (c->tls && c->handshake_done && !c->cut && !c->tls_shut) {
        c->tls_shut = true;
        ERR_clear_error();
        if (SSL_shutdown(c->ssl) < 0) {
            char err[256];
            lw_tls_errors(err, sizeof(err));
            lw_log_debug("%s: no close_notify: %s", c->peer_str, err[0] ? err : "error");
        }
    }
    int r = write_out(c);
    if (r == LW_EIO) {
        lw_conn_close(c);
        return false;
    }
    if (r == LW_EAGAIN) {
        event_add(c->wev, NULL);
        return false;
    }
    return true;
}

static void linger(struct lw_conn *c)
{
    if (c->lingering || !send_close_notify(c)) {
        return;
    }
    c->lingering = true;
    shutdown(c->fd, SHUT_WR);
    event_del(c->wev);
    c->read_paused = false;
    event_add(c->rev, NULL);
    lw_conn_set_timeout(c, LINGER_MS);
}

/* A connection's first flight: the session tickets, SETTINGS and its ACK, and the response
 * HEADERS are ready before the first body bytes (a backend often sends its head and body in
 * separate writes). Written as they come, each is a small packet, and TCP counts its window
 * in packets: across a 100 ms, 20 Mbit/s link the three came back acknowledged together and
 * released a burst of six segments, whose queue a script asked for at once then waited
 * behind (1.053 RTT; 1.036 with the hold). So while the budget is active, what comes before
 * the first DATA waits for it and leaves with it (only the flight's last segment may be
 * short: the budget does not count what was held), once while the first request is awaited
 * and once while its body is.
 *
 * The same for a request that comes after the first flight: until its response has started
 * (see lw_h2_front_awaited_since), nothing more goes into the socket (control frames wait
 * too). With the window full, what we write waits unsent in the kernel, and TCP keeps a write
 * larger than the free part of the window back whole until the next ACK (TSO deferral): bytes
 * written while the backend answers would leave in front of the new response. The clock
 * starts with the first request that comes while none waits, so one slow response does not
 * hold the connection again and again.
 *
 * Either hold is a timer of a thirty-second of the RTT, and at most this (the loop's timers
 * may fire a clock tick late). */
#define HOLD_MAX_US 2000

/* Whether a hold that began at start_us still runs (see HOLD_MAX_US); if so, the timer that
 * ends it is armed. */
static bool hold_from(struct lw_conn *c, uint64_t start_us)
{
    uint64_t until = start_us + LW_MIN((uint64_t)HOLD_MAX_US, (uint64_t)c->rtt_us / 32);
    uint64_t now = lw_time_mono_us();
    if (now >= until) {
        return false;
    }
    uint64_t wait = until - now;
    struct timeval tv = {(time_t)(wait / 1000000u), (suseconds_t)(wait % 1000000u)};
    event_add(c->flush_ev, &tv);
    c->flush_soon = false;
    return true;
}

/* Hold what flush() produced for the first flight (see HOLD_MAX_US): true when it waits, with a
 * timer set to flush again. */
static bool hold_first_flight(struct lw_conn *c)
{
    enum lw_h2_flight phase = lw_h2_front_first_flight(c->h2);
    if (phase == LW_H2_FLIGHT_FORMED) {
        return false;
    }
    if (phase == LW_H2_FLIGHT_NO_REQUEST && c->tls && SSL_version(c->ssl) != TLS1_3_VERSION) {
        /* Before TLS 1.3 a full handshake ends with our Finished, which the client waits
         * for before it sends a request. */
        return false;
    }
    if (c->hold_phase != (uint8_t)phase) {
        c->hold_phase = (uint8_t)phase;
        c->hold_start_us = lw_time_mono_us();
    }
    return hold_from(c, c->hold_start_us);
}

/* Whether to hold the connection's output for a response that is about to start (see
 * HOLD_MAX_US); if so, the timer that ends the hold is armed. */
static bool hold_for_response(struct lw_conn *c)
{
    if (c->proto != LW_CONN_PROTO_H2) {
        return false;
    }
    uint64_t since = lw_h2_front_awaited_since(c->h2);
    return since != 0 && hold_from(c, since);
}

static void flush(struct lw_conn *c)
{
    if (c->closed || c->in_recv) {
        return;
    }
    if (c->io_failed) {
        lw_conn_close(c);
        return;
    }
    /* Bounded: a connection cannot monopolize the loop. `more` stays true while the
     * protocol may still have bytes (it produced some, or was not asked because our buffer
     * was full); a pass cut short by the bound queues another behind the other events. */
    bool more = false;
    for (int round = 0; round < 16; round++) {
        more = false;
        struct lw_sock_budget budget = {.active = false};
        if (c->handshake_done) {
            size_t queued = lw_buf_size(&c->wbuf) + lw_buf_size(&c->pbuf);
            more = true;
            if (queued < WBUF_HIGH) {
                budget = write_budget(c);
                c->record_size = budget.record_size;
                c->segment_size = budget.segment_size;
                if (budget.active && budget.bytes == 0) {
                    if (budget.wait_us != 0) {
                        /* Held back with nothing unsent: no ACK wakes us, a timer does. */
                        struct timeval tv = {budget.wait_us / 1000000u, (suseconds_t)(budget.wait_us % 1000000u)};
                        event_add(c->flush_ev, &tv);
                        c->flush_soon = false;
                        lw_sock_path_wait(&c->path);
                    } else {
                        /* The kernel still holds unsent bytes: LOWAT wakes us when they have gone. */
                        event_add(c->wev, NULL);
                    }
                    if (queued == 0) {
                        return;
                    }
                    /* Otherwise what is already staged or sealed still goes out. */
                }
                size_t room = LW_MIN(WBUF_HIGH - queued, budget.bytes);
                if (budget.active && room > 0 && !c->closing && hold_for_response(c)) {
                    if (queued == 0) {
                        return;
                    }
                    room = 0; /* what is already staged or sealed still goes out */
                }
                size_t produced = room > 0 ? produce(c, room) : 0;
                if (c->closed) {
                    return;
                }
                more = produced > 0;
                c->bytes_since_idle += produced;
                if (budget.active) {
                    lw_sock_path_spend(&c->path, produced);
                }
                if (produced > 0) {
                    c->last_write_us = lw_time_mono_us();
                }
            }
        }
        if (budget.active && !c->closing && c->proto == LW_CONN_PROTO_H2 && hold_first_flight(c)) {
            return;
        }
        if (c->tls && seal(c) != 0) {
            lw_conn_close(c);
            return;
        }
        int r = write_out(c);
        if (r == LW_EIO) {
            lw_conn_close(c);
            return;
        }
        if (r == LW_EAGAIN) {
            event_add(c->wev, NULL);
            return;
        }
        if (!more) {
            break;
        }
        if (budget.active) {
            /* One budget per writable event: with TCP_NOTSENT_LOWAT at 1 the socket says
             * writable again once these bytes have left, and the next budget is decided
             * then, with whatever has become more urgent in the meantime. */
            event_add(c->wev, NULL);
            return;
        }
    }
    if (more) {
        lw_conn_want_flush(c);
        return;
    }
    if (c->proto != LW_CONN_PROTO_H2 || lw_h2_front_is_idle(c->h2)) {
        /* Idle connections keep no buffers. Busy ones keep theirs: a response waiting for
         * its backend empties them many times, and giving back and taking again 64 KiB or
         * more each time costs page faults and trims of the heap. */
        lw_buf_release(&c->wbuf);
        lw_buf_release(&c->pbuf);
    }
    if (c->closing || (c->proto == LW_CONN_PROTO_H2 && lw_h2_front_is_done(c->h2))) {
        linger(c);
    }
}

static void on_flush_ev(evutil_socket_t fd, short what, void *arg)
{
    struct lw_conn *c = arg;
    c->flush_soon = false;
    flush(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct lw_conn *c = arg;
    burst_collect(c);
    /* While writing for responsiveness a writable event is an ACK that opened the window, and
     * a client's requests ride on its ACKs: the packet that frees the window often brings a
     * request too, and libevent runs this callback before the read one. Across a 100 ms,
     * 20 Mbit/s link a script asked for at once then queued behind the two segments this write
     * put out a few microseconds before its request was read. So read first (one recv when
     * nothing came): the write that follows knows the response is awaited and holds the other
     * streams' bytes back for it (see hold_for_response). */
    if (c->lowat_set && c->proto == LW_CONN_PROTO_H2 && !c->read_paused && !c->lingering && !c->closing) {
        read_and_process(c, fd); /* it flushes when done */
        return;
    }
    flush(c);
}

static void start_h1(struct lw_conn *c)
{
    c->proto = LW_CONN_PROTO_H1;
    c->h1 = lw_h1_front_new(c);
}

static void start_h2(struct lw_conn *c)
{
    c->proto = LW_CONN_PROTO_H2;
    c->h2 = lw_h2_front_new(c);
    lw_conn_set_timeout(c, c->worker->config->limits.client_idle_timeout_ms);
}

void lw_conn_switch_to_h2(struct lw_conn *c, struct lw_h2_front *h2)
{
    c->proto = LW_CONN_PROTO_H2;
    c->h2 = h2;
}

/* Feed what waits in rbuf to a freshly started h2 session. */
static int feed_h2_from_rbuf(struct lw_conn *c)
{
    if (lw_buf_size(&c->rbuf) == 0) {
        return 0;
    }
    struct lw_buf pending = c->rbuf;
    lw_buf_init(&c->rbuf);
    int r = lw_h2_front_recv(c->h2, lw_buf_head(&pending), lw_buf_size(&pending));
    lw_buf_dispose(&pending);
    return r;
}

/* Deliver plaintext to the protocol. Returns false when reading should stop. */
static bool deliver(struct lw_conn *c, const char *data, size_t len)
{
    int r = 0;
    if (c->proto == LW_CONN_PROTO_NONE) {
        /* Cleartext: the h2 client preface means prior knowledge, anything else HTTP/1.1. */
        lw_buf_append(&c->rbuf, data, len);
        size_t have = lw_buf_size(&c->rbuf);
        size_t cmp = LW_MIN(have, sizeof(h2_preface) - 1);
        bool prefix = memcmp(lw_buf_head(&c->rbuf), h2_preface, cmp) == 0;
        if (prefix && have < sizeof(h2_preface) - 1) {
            return true;
        }
        if (prefix) {
            start_h2(c);
            r = feed_h2_from_rbuf(c);
        } else {
            start_h1(c);
            lw_h1_front_process(c->h1);
        }
    } else if (c->proto == LW_CONN_PROTO_H2) {
        r = lw_h2_front_recv(c->h2, data, len);
    } else {
        lw_buf_append(&c->rbuf, data, len);
        lw_h1_front_process(c->h1);
    }
    if (r == 0 && !c->closed && c->proto == LW_CONN_PROTO_H2) {
        /* After an h2c upgrade, what followed the request is the client's preface. */
        r = feed_h2_from_rbuf(c);
    }
    if (r != 0 && !c->closed) {
        lw_conn_close_after_flush(c);
    }
    return !c->closed && !c->closing;
}

static bool handshake(struct lw_conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->handshake_done = true;
        /* What a record adds on the wire for the negotiated cipher: header 5 + tag 16 + inner
         * type 1 on TLS 1.3; header 5 + explicit nonce 8 + tag 16 with TLS 1.2 AES-GCM, 8 less
         * with ChaCha20. Records are cut to fill segments exactly (aligned_record). */
        c->budget_cfg.tls_overhead = (uint32_t)SSL_max_seal_overhead(c->ssl);
        const char *alpn = lw_tls_alpn(c->ssl);
        lw_log_debug("%s: TLS %s, ALPN %s", c->peer_str, SSL_get_version(c->ssl), alpn[0] ? alpn : "(none)");
        if (strcmp(alpn, "h2") == 0) {
            start_h2(c);
        } else {
            start_h1(c);
        }
        return true;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return true; /* more bytes to come; our BIO queued any we must send */
    }
    char err[256];
    lw_tls_errors(err, sizeof(err));
    lw_log_info("%s: TLS handshake failed: %s", c->peer_str,
                err[0] ? err : (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL ? "connection closed" : "error"));
    /* Send the alert our BIO may hold, then close. */
    c->closing = true;
    return false;
}

static void on_eof(struct lw_conn *c)
{
    if (c->proto == LW_CONN_PROTO_H1) {
        lw_h1_front_on_eof(c->h1);
        return;
    }
    lw_conn_close(c);
}

/* The loop's own delay, as the write budget sees it: a moving average (1/8) of how long a
 * read callback runs. Two clock reads per callback. */
static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct lw_conn *c = arg;
    struct lw_worker *w = c->worker; /* c may be freed by the time we come back (reaped later) */
    uint64_t t0 = lw_time_mono_us();
    burst_collect(c);
    read_and_process(c, fd);
    uint64_t d = lw_time_mono_us() - t0;
    w->loop_us = w->loop_us - w->loop_us / 8 + d / 8;
}

static void read_and_process(struct lw_conn *c, evutil_socket_t fd)
{
    char buf[READ_CHUNK];
    if (c->lingering) {
        for (int i = 0; i < 16; i++) {
            ssize_t n = recv(fd, buf, sizeof(buf), 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                lw_conn_close(c);
                return;
            }
            if (n < 0) {
                return;
            }
        }
        return;
    }
    if (c->tls) {
        lw_tls_bio_rearm(SSL_get_rbio(c->ssl));
    }
    if (c->tls && !c->handshake_done) {
        if (!handshake(c) || !c->handshake_done) {
            flush(c);
            return;
        }
    }
    if (!c->tls) {
        c->handshake_done = true;
    }
    c->in_recv = true;
    if (c->proto == LW_CONN_PROTO_H1 && lw_buf_size(&c->rbuf) > 0 && !c->read_paused) {
        /* A pipelined request already buffered gets its turn before new bytes. */
        lw_h1_front_process(c->h1);
    }
    /* A few reads per event: fairness between connections of the worker. */
    for (int rounds = 0; rounds < 8 && !c->read_paused && !c->closed && !c->closing; rounds++) {
        ssize_t n;
        if (c->tls) {
            ERR_clear_error();
            int r = SSL_read(c->ssl, buf, sizeof(buf));
            if (r <= 0) {
                int sys_errno = errno;
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                    break;
                }
                if (e == SSL_ERROR_SYSCALL && r < 0 && (sys_errno == ECONNRESET || sys_errno == EPIPE)) {
                    /* A reset, not an end of input: nothing can reach the client any more, and
                     * the recv that saw it took the socket's error with it (lw_conn_is_reset). */
                    c->in_recv = false;
                    lw_conn_close(c);
                    return;
                }
                if (e != SSL_ERROR_ZERO_RETURN && e != SSL_ERROR_SYSCALL) {
                    char err[256];
                    lw_tls_errors(err, sizeof(err));
                    lw_log_info("%s: TLS read failed: %s", c->peer_str, err);
                }
                c->in_recv = false;
                on_eof(c);
                if (!c->closed) {
                    flush(c);
                }
                return;
            }
            n = r;
        } else {
            n = recv(fd, buf, sizeof(buf), 0);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    break;
                }
                c->in_recv = false;
                lw_conn_close(c);
                return;
            }
            if (n == 0) {
                c->in_recv = false;
                on_eof(c);
                if (!c->closed) {
                    flush(c);
                }
                return;
            }
        }
        if (!deliver(c, buf, (size_t)n)) {
            break;
        }
    }
    c->in_recv = false;
    if (lw_buf_size(&c->cbuf) > 0 && !c->read_paused && !c->closed && !c->closing) {
        /* Records read ahead and left for fairness: the socket may not say readable again. */
        event_active(c->rev, EV_READ, 0);
    }
    if (!c->closed) {
        flush(c);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct lw_conn *c = arg;
    if (c->lingering || c->closing) {
        lw_conn_close(c);
        return;
    }
    if (c->proto == LW_CONN_PROTO_H1) {
        lw_h1_front_on_timeout(c->h1);
        return;
    }
    if (c->proto == LW_CONN_PROTO_H2 && !lw_h2_front_is_idle(c->h2)) {
        lw_conn_set_timeout(c, c->worker->config->limits.client_idle_timeout_ms);
        return;
    }
    lw_log_debug("%s: closing idle connection", c->peer_str);
    if (c->proto == LW_CONN_PROTO_H2) {
        lw_h2_front_shutdown(c->h2);
        lw_conn_close_after_flush(c);
        return;
    }
    lw_conn_close(c);
}

void lw_conn_shutdown(struct lw_conn *c)
{
    switch (c->proto) {
    case LW_CONN_PROTO_H2:
        lw_h2_front_shutdown(c->h2);
        lw_conn_want_flush(c);
        break;
    case LW_CONN_PROTO_H1:
        lw_h1_front_shutdown(c->h1);
        break;
    case LW_CONN_PROTO_NONE:
        lw_conn_close(c);
        break;
    }
}
