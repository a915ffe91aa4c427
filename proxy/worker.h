/* SPDX-License-Identifier: MIT */
/*
 * A worker: one thread, one event_base, its own SO_REUSEPORT listening sockets, its own
 * backend pools, DNS channel and counters. Nothing on the request path is shared between
 * workers or locked. The only cross-thread hand-off is lw_worker_stop (from the main
 * thread), done by writing to an eventfd that the worker's loop watches.
 */
#ifndef LW_PROXY_WORKER_H
#define LW_PROXY_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/list.h"
#include "common/mem.h"
#include "config/config.h"
#include "proxy/metrics.h"

struct event_base;
struct event;
struct lw_tls_ctx;
struct lw_dns;
struct lw_upstream;
struct lw_hints_cache;
struct lw_admin;
struct lw_etag_map;

/* One configured listener as the process sees it: shared read-only by all workers. */
struct lw_listen_spec {
    const struct lw_config_listener *cfg;
    struct lw_tls_ctx *tls; /* NULL for cleartext */
    uint16_t port;          /* the bound port (differs from cfg->port when that was 0) */
    int first_fd;           /* the socket bound by the main thread; worker 0 uses it */
};

/* An object closed inside one of its own callbacks is freed later, at a safe point of the
 * loop: it embeds one of these and is handed to lw_worker_reap. */
struct lw_reap {
    struct lw_list link;
    void (*free_fn)(struct lw_reap *r);
};

/* Process-wide, read-only once workers run. */
struct lw_proxy {
    struct lw_config *config;
    struct lw_listen_spec *listens;
    size_t num_listens;
    int access_log_fd; /* -1: off */
    int admin_fd;      /* -1: no admin listener */
};

/* Size classes of the worker's cache of nghttp2 blocks: 64, 128, ... 512 bytes. */
#define LW_WORKER_H2_CLASS 64
#define LW_WORKER_H2_CLASSES 8

struct lw_worker {
    int id;
    pthread_t thread;
    struct event_base *base;
    const struct lw_proxy *proxy;
    struct lw_config *config; /* the snapshot new connections use */
    struct lw_dns *dns;
    struct lw_hints_cache *hints; /* learned preload links, for the learned-hints policy */
    struct lw_etag_map *etags;    /* ETags of pushed responses, for cache-aware push */
    uint64_t loop_us;             /* moving average of a connection callback's run time: the delay
                                   * the loop adds, which the write budget weighs against the RTT */
    struct lw_metrics metrics;    /* written by this thread only; read by the admin endpoint */
    struct lw_admin *admin;       /* worker 0 serves the admin listener, if configured */
    struct lw_upstream **upstreams; /* one per config backend, same order */
    size_t num_upstreams;
    struct lw_listener **listeners;
    size_t num_listeners;
    struct lw_list conns;   /* frontend connections */
    size_t num_conns;
    size_t conns_peak;      /* most connections open since the heap was last trimmed */
    struct event *trim_timer;
    struct lw_list reaped;  /* objects closed in a callback, freed at a safe point */
    /* Memory every exchange takes and gives back, kept for the next one. */
    struct lw_mem_cache request_mem; /* struct lw_request */
    struct lw_mem_cache small_bufs;  /* LW_WORKER_SMALL_BUF: request heads, small bodies */
    struct lw_mem_cache read_bufs;   /* LW_WORKER_READ_BUF: backend read buffers */
    /* nghttp2's small blocks (streams, queued frames, header arrays), by size class of
     * LW_WORKER_H2_CLASS bytes: see h2_front.c. */
    struct lw_mem_cache h2_mem[LW_WORKER_H2_CLASSES];
    struct event *reap_ev;
    struct event *stop_ev;  /* readable when the main thread asks for a stop */
    int stop_fd;            /* an eventfd: the one cross-thread hand-off */
    struct event *drain_timer;
    bool draining;
};

/* Create the worker's loop and everything it owns; 0 or LW_EIO (logged). */
#define LW_WORKER_SMALL_BUF 1024
#define LW_WORKER_READ_BUF 16384

int lw_worker_init(struct lw_worker *w, int id, const struct lw_proxy *proxy);
/* A connection has closed: once the open ones have fallen to half their peak, give the heap's
 * free memory back to the system a moment later. */
void lw_worker_conn_closed(struct lw_worker *w);
/* Start the thread running the loop until the worker has drained. */
int lw_worker_start(struct lw_worker *w);
/* From any thread: begin a graceful stop (stop accepting, GOAWAY, drain, exit the loop). */
void lw_worker_stop(struct lw_worker *w);
/* Join the thread and free everything. */
void lw_worker_join_and_dispose(struct lw_worker *w);

/* Free r with r->free_fn at the next safe point of the loop. */
void lw_worker_reap(struct lw_worker *w, struct lw_reap *r, void (*free_fn)(struct lw_reap *r));
/* Called when a connection goes away: a draining worker exits once none is left. */
void lw_worker_check_drained(struct lw_worker *w);

#endif
