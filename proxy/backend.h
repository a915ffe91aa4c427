/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.1 client side of an exchange: one connection to a backend member, which
 * writes a request's serialized head and framed body, parses the response with
 * common/http1, and feeds it to the request. A connection serves one exchange at a time and
 * goes back to its member's idle list when the exchange leaves it clean (keep-alive).
 */
#ifndef LW_PROXY_BACKEND_H
#define LW_PROXY_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/http1.h"
#include "common/list.h"
#include "proxy/worker.h"

struct event;
struct lw_member;
struct lw_request;
struct lw_worker;

enum lw_bconn_state {
    LW_BCONN_CONNECTING,
    LW_BCONN_ACTIVE,
    LW_BCONN_IDLE,
    LW_BCONN_CLOSED, /* waiting to be freed at a safe point */
};

struct lw_bconn {
    struct lw_worker *worker;
    struct lw_member *member;
    int fd;
    enum lw_bconn_state state;
    struct event *rev, *wev, *timer;
    uint64_t deadline_us;    /* when the current timeout runs out */
    uint64_t timer_fires_us; /* when the timer is set to fire; 0: not set */
    uint64_t read_cb_us;     /* the clock when the current read callback started */
    struct lw_list link; /* in the member's idle list, or its busy list */
    struct lw_request *req;
    struct lw_buf rbuf;
    bool reused;        /* has served an exchange before this one */
    bool read_paused;   /* the frontend's buffer is full */
    uint64_t paused_since_us;
    uint64_t sent_us; /* when the backend last took bytes of the request */
    bool head_done;
    bool got_bytes;     /* any response byte arrived in this exchange */
    bool may_have_more; /* the last read filled what it asked for, or a pause came since */
    enum lw_http1_body body;
    uint64_t remaining;
    struct lw_http1_chunked chunked;
    bool keep_alive;
    unsigned exchanges;
    struct lw_reap reap;
};

/* Start connecting to m for req. Returns NULL (errno set) if the connect failed at once. */
struct lw_bconn *lw_bconn_connect(struct lw_member *m, struct lw_request *req);
/* Put an idle connection to work for req. */
void lw_bconn_attach(struct lw_bconn *bc, struct lw_request *req);
/* The request has more body bytes to send. */
void lw_bconn_want_write(struct lw_bconn *bc);
/* The frontend made room: read the response again. */
void lw_bconn_resume_read(struct lw_bconn *bc);
/* The frontend gave up on the exchange: the connection cannot be reused; close it. */
void lw_bconn_abort(struct lw_bconn *bc);
/* Close a connection (idle, or at shutdown); freed at the next safe point. Idempotent. */
void lw_bconn_close(struct lw_bconn *bc);

#endif
