/* SPDX-License-Identifier: MIT */
/*
 * Per-worker runtime of a backend group: its members (configured addresses, and names
 * expanded by c-ares into one member per address, re-resolved when their TTL runs out),
 * each member's keep-alive connections, connection caps, and the bounded queue of requests
 * waiting for a connection. The balancer picks the member.
 */
#ifndef LW_PROXY_POOL_H
#define LW_PROXY_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/list.h"

struct lw_worker;
struct lw_request;
struct lw_bconn;
struct lw_dns_query;
struct lw_config_backend;
struct event;

struct lw_member {
    struct lw_upstream *upstream;
    struct lw_list link; /* in upstream->members or upstream->retired */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char name[96];       /* "host:port" as configured, with the address when resolved */
    size_t cfg_index;    /* which configured member it came from */
    uint32_t weight;
    int64_t current_weight; /* smooth weighted round-robin state */
    unsigned fails;         /* consecutive failures */
    uint64_t down_until_ms; /* passive health: skipped until then */
    unsigned num_conns;     /* connecting + busy + idle */
    struct lw_list idle;    /* idle keep-alive connections, most recent last */
    struct lw_list busy;    /* connections connecting or serving an exchange */
    bool retired;           /* no longer in DNS: serves no new request, freed when unused */
};

struct lw_resolve;

struct lw_upstream {
    struct lw_worker *worker;
    const struct lw_config_backend *cfg;
    struct lw_list members;
    size_t num_members;
    struct lw_list retired;
    struct lw_list waiters; /* requests waiting for a connection or a first DNS answer */
    size_t num_waiters;
    struct lw_resolve *resolves; /* one per configured member */
    unsigned unresolved;         /* configured names still without a first answer */
    bool freeing;
    struct event *queue_timer;   /* fails waiters that waited longer than response_timeout */
};

struct lw_upstream *lw_upstream_new(struct lw_worker *w, const struct lw_config_backend *cfg);
void lw_upstream_free(struct lw_upstream *up);

/* Find req a connection: an idle one, a new one, or a place in the wait queue. On failure
 * (queue full, no member) it reports through lw_request_on_backend_error. */
void lw_upstream_acquire(struct lw_upstream *up, struct lw_request *req);
/* Take req out of the wait queue (it was aborted). */
void lw_upstream_cancel_wait(struct lw_request *req);
/* An exchange ended on bc: keep it idle (reusable) or close it; waiters may proceed. */
void lw_upstream_release(struct lw_bconn *bc, bool reusable);
/* A connection is gone (closed by either side): account for it and wake a waiter. */
void lw_upstream_conn_gone(struct lw_bconn *bc);
/* Passive health: a member answered, or failed to. */
void lw_upstream_report(struct lw_member *m, bool ok, const char *why);
/* Close every idle connection (shutdown). */
void lw_upstream_close_idle(struct lw_upstream *up);

#endif
