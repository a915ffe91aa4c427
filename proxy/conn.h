/* SPDX-License-Identifier: MIT */
/*
 * A frontend connection: reads bytes (through BoringSSL on a TLS listener), hands plaintext
 * to the HTTP/2 or HTTP/1.1 frontend, and writes what they produce. Writing is pulled, not
 * pushed: when the socket can take bytes, the connection asks the protocol for at most a
 * budget's worth, so unsent bytes wait in stream queues where priorities still apply, not
 * in the kernel.
 */
#ifndef LW_PROXY_CONN_H
#define LW_PROXY_CONN_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "common/buf.h"
#include "common/list.h"
#include "proxy/sock.h"
#include "proxy/worker.h"

struct event;
struct lw_h2_front;
struct lw_h1_front;

enum lw_conn_proto {
    LW_CONN_PROTO_NONE, /* TLS handshake or cleartext sniffing still under way */
    LW_CONN_PROTO_H1,
    LW_CONN_PROTO_H2,
};

/* Response ends in wbuf whose segments end with them (see lw_conn_end_record). */
#define LW_CONN_SEG_ENDS 8

struct lw_conn {
    struct lw_worker *worker;
    struct lw_list link; /* in worker->conns */
    int fd;
    const struct lw_listen_spec *listen;
    bool tls;
    char peer_str[64];
    struct event *rev, *wev, *timer, *flush_ev;
    SSL *ssl;
    bool handshake_done;
    struct lw_buf wbuf; /* bytes for the socket (ciphertext on TLS) */
    struct lw_buf pbuf; /* plaintext staged into the next TLS record */
    struct lw_buf rbuf; /* plaintext received and not yet consumed (h1, sniffing) */
    struct lw_buf cbuf; /* TLS: ciphertext read ahead of BoringSSL (see lw_tls_bio_read_ahead) */
    enum lw_conn_proto proto;
    struct lw_h2_front *h2;
    struct lw_h1_front *h1;
    bool read_paused;  /* the frontend asked for no more input for now */
    bool closing;      /* close once wbuf is written */
    bool cut;          /* the output ends short (lw_conn_cut_after_flush): no close_notify */
    bool tls_shut;     /* SSL_shutdown was called: nothing more goes into TLS records */
    bool closed;
    bool in_recv;      /* inside the protocol's input processing: flushes are deferred */
    bool io_failed;    /* TLS failed while a protocol was producing: close at the next flush */
    bool lingering;    /* our side is shut down; input is read and dropped until EOF or timeout */
    bool sealed_any;   /* a record has been sealed (the first one carries the session tickets) */
    bool flush_soon;   /* flush_ev is armed for the next loop iteration */
    /* Writing for responsiveness (see proxy/sock.h). */
    struct lw_sock_budget_cfg budget_cfg;
    struct lw_sock_path path;
    bool lowat_set;          /* TCP_NOTSENT_LOWAT is 1 */
    /* The first flight's ACK timestamps (see struct lw_sock_burst), from the first marked send
     * until the last has been collected. */
    struct lw_sock_burst *burst;
    bool burst_tried;
    uint32_t rtt_us;         /* from the last TCP_INFO read */
    uint32_t skip_tcp_info;  /* flushes left before TCP_INFO is read again on a short RTT */
    size_t record_size;      /* TLS record payload size for the next records */
    size_t segment_size;     /* while LOWAT is set: the MSS, which records start and end on */
    /* Where responses ended in wbuf (bytes from its head, ascending): a segment ends at each. */
    size_t seg_ends[LW_CONN_SEG_ENDS];
    uint8_t nseg_ends;
    uint64_t bytes_since_idle;
    uint64_t last_write_us;
    uint64_t hold_start_us; /* when the first flight began to wait for its first DATA */
    uint8_t hold_phase;     /* the enum lw_h2_flight that hold_start_us was set for; 0: none yet */
    struct lw_reap reap;
};

/* Take an accepted socket. */
void lw_conn_new(struct lw_worker *w, int fd, const struct lw_listen_spec *listen, const struct sockaddr *peer);

/* Queue plaintext for the peer (copied). Only from a protocol's produce step or a
 * response-head callback; lw_conn_flush sends it. */
void lw_conn_send(struct lw_conn *c, const void *data, size_t len);
/* While writing for responsiveness: what is staged so far ends its TLS record, so a response
 * that just ended is decrypted without waiting for the bytes that follow it. */
void lw_conn_end_record(struct lw_conn *c);
/* Ask for a write pass soon: in the next loop iteration, after the input that is ready by
 * then (coalesced: one pass however many asks). */
void lw_conn_want_flush(struct lw_conn *c);
/* Close now; pending output is dropped and no close_notify is sent. The object is freed at a
 * safe point. */
void lw_conn_close(struct lw_conn *c);
/* Close once everything queued has been written. On TLS the last record is a close_notify
 * (RFC 8446 section 6.1), which tells the client that what it received is all there was. */
void lw_conn_close_after_flush(struct lw_conn *c);
/* The same for output that ends short of what it promised (a response cut mid-body): the
 * connection ends without close_notify, so a client cannot take the bytes for a whole
 * response. Sticks: a later lw_conn_close_after_flush does not make the close graceful. */
void lw_conn_cut_after_flush(struct lw_conn *c);
/* Stop and restart reading (backpressure from a full request-body buffer). Resuming also
 * processes input already buffered (a pipelined request). */
void lw_conn_pause_read(struct lw_conn *c);
void lw_conn_resume_read(struct lw_conn *c);
/* Whether the peer reset the connection (a RST came; read or not). Takes the socket's pending
 * error: only for a connection about to be closed when it says true. */
bool lw_conn_is_reset(struct lw_conn *c);
/* (Re)arm the connection's timer; 0 disarms. */
void lw_conn_set_timeout(struct lw_conn *c, uint32_t ms);
/* Graceful stop: GOAWAY on h2, close after the current exchange on h1, close if idle. */
void lw_conn_shutdown(struct lw_conn *c);
/* Switch a cleartext HTTP/1.1 connection to HTTP/2 (h2c upgrade); h2 is already made. */
void lw_conn_switch_to_h2(struct lw_conn *c, struct lw_h2_front *h2);

#endif
