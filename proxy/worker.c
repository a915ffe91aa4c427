/* SPDX-License-Identifier: MIT */
/*
 * Worker threads: each runs its own event_base with its own listeners, backend pools and
 * resolver. The main thread talks to a worker only through lw_worker_stop, which writes to
 * an eventfd the worker's loop watches; libevent's own thread locking is never turned on.
 */
#include "proxy/worker.h"

#include <event2/event.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "proxy/admin.h"
#include "proxy/conn.h"
#include "proxy/dns.h"
#include "proxy/listener.h"
#include "proxy/pool.h"
#include "proxy/push.h"
#include "proxy/request.h"

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    struct lw_worker *w = arg;
    /* Objects freed here may reap others; loop until the list is empty. */
    while (!lw_list_is_empty(&w->reaped)) {
        struct lw_reap *r = LW_LIST_ENTRY(w->reaped.next, struct lw_reap, link);
        lw_list_remove(&r->link);
        r->free_fn(r);
    }
}

void lw_worker_reap(struct lw_worker *w, struct lw_reap *r, void (*free_fn)(struct lw_reap *r))
{
    r->free_fn = free_fn;
    lw_list_push_back(&w->reaped, &r->link);
    event_active(w->reap_ev, 0, 0);
}

/*
 * malloc keeps what closed connections freed: their blocks lie between live ones, so the top
 * of the heap rarely comes free and nothing goes back to the system. Measured: 2,000 idle TLS
 * connections, then closed, left the process at 38.8 MB, 16.6 MB after malloc_trim. The
 * trim walks the free chunks (a millisecond or so for tens of MB), so it runs once, a second
 * after a fall in connections, not on every close.
 */
#define TRIM_MIN_PEAK 16
#define TRIM_DELAY_MS 1000

static void on_trim_timer(evutil_socket_t fd, short what, void *arg)
{
    struct lw_worker *w = arg;
    malloc_trim(0);
    w->conns_peak = w->num_conns;
}

void lw_worker_conn_closed(struct lw_worker *w)
{
    if (w->conns_peak >= TRIM_MIN_PEAK && w->num_conns <= w->conns_peak / 2 && !evtimer_pending(w->trim_timer, NULL)) {
        struct timeval tv = {TRIM_DELAY_MS / 1000, (TRIM_DELAY_MS % 1000) * 1000};
        evtimer_add(w->trim_timer, &tv);
    }
}

static void exit_loop(struct lw_worker *w)
{
    for (size_t i = 0; i < w->num_upstreams; i++) {
        lw_upstream_close_idle(w->upstreams[i]);
    }
    event_base_loopexit(w->base, NULL);
}

void lw_worker_check_drained(struct lw_worker *w)
{
    if (w->draining && w->num_conns == 0) {
        exit_loop(w);
    }
}

/* The drain is over before its exchanges are: close them and leave. */
static void cut_drain(struct lw_worker *w, const char *why)
{
    lw_log_warn("worker %d: %s: closing %zu connection(s) with exchanges in flight", w->id, why, w->num_conns);
    while (!lw_list_is_empty(&w->conns)) {
        lw_conn_close(LW_LIST_ENTRY(w->conns.next, struct lw_conn, link));
    }
    exit_loop(w);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    cut_drain(arg, "drain timeout");
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct lw_worker *w = arg;
    uint64_t n;
    ssize_t r = read(fd, &n, sizeof(n));
    (void)r; /* only its readability counts: the read resets it for the next stop */
    if (w->draining) {
        cut_drain(w, "stop asked again");
        return;
    }
    w->draining = true;
    event_add(w->stop_ev, NULL); /* a second stop cuts the drain short */
    for (size_t i = 0; i < w->num_listeners; i++) {
        lw_listener_free(w->listeners[i]);
    }
    w->num_listeners = 0;
    struct lw_list *it, *tmp;
    LW_LIST_FOREACH_SAFE(it, tmp, &w->conns)
    {
        lw_conn_shutdown(LW_LIST_ENTRY(it, struct lw_conn, link));
    }
    uint32_t ms = w->config->drain_timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(w->drain_timer, &tv);
    lw_worker_check_drained(w);
}

int lw_worker_init(struct lw_worker *w, int id, const struct lw_proxy *proxy)
{
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->proxy = proxy;
    w->config = lw_config_ref(proxy->config);
    lw_list_init(&w->conns);
    lw_list_init(&w->reaped);
    /* Enough for the exchanges of a busy moment: with a thousand streams in flight, as many
     * end and begin between two waits of the loop as these hold (with 128 and 256, a third of
     * the takes fell through to malloc). About 2 MB at most stays kept. */
    lw_mem_cache_init(&w->request_mem, sizeof(struct lw_request), 512);
    lw_mem_cache_init(&w->small_bufs, LW_WORKER_SMALL_BUF, 1024);
    lw_mem_cache_init(&w->read_bufs, LW_WORKER_READ_BUF, 32);
    /* At most 1.2 MB kept; the four classes nghttp2 uses per stream hold 426 KB of it. */
    for (size_t i = 0; i < LW_WORKER_H2_CLASSES; i++) {
        lw_mem_cache_init(&w->h2_mem[i], (i + 1) * LW_WORKER_H2_CLASS, 512);
    }
    w->base = event_base_new();
    if (w->base == NULL) {
        lw_log_error("worker %d: cannot create an event loop", id);
        return LW_EIO;
    }
    w->reap_ev = event_new(w->base, -1, 0, on_reap, w);
    /* The one cross-thread hand-off: the main thread writes to this eventfd. libevent's own
     * thread locking stays off, so no event operation on the request path takes a mutex. */
    w->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->stop_fd < 0) {
        lw_log_error("worker %d: eventfd: %s", id, strerror(errno));
        return LW_EIO;
    }
    w->stop_ev = event_new(w->base, w->stop_fd, EV_READ, on_stop, w);
    event_add(w->stop_ev, NULL);
    w->drain_timer = evtimer_new(w->base, on_drain_timeout, w);
    w->trim_timer = evtimer_new(w->base, on_trim_timer, w);
    /* A few thousand pages' hints cost a few MB at most; five minutes keeps them current
     * with deploys without relearning on every visit. */
    w->hints = lw_hints_cache_new(2048, 5 * 60 * 1000);
    lw_metrics_init(&w->metrics, w->config->num_metric_slots);
    w->etags = lw_etag_map_new();
    w->dns = lw_dns_new(w->base);
    if (w->dns == NULL) {
        return LW_EIO;
    }
    const struct lw_config *cfg = w->config;
    w->num_upstreams = cfg->num_backends;
    w->upstreams = lw_calloc(cfg->num_backends, sizeof(*w->upstreams));
    for (size_t i = 0; i < cfg->num_backends; i++) {
        w->upstreams[i] = lw_upstream_new(w, &cfg->backends[i]);
    }
    w->listeners = lw_calloc(proxy->num_listens, sizeof(*w->listeners));
    for (size_t i = 0; i < proxy->num_listens; i++) {
        struct lw_listen_spec *spec = &proxy->listens[i];
        int fd = -1;
        if (id == 0) {
            fd = spec->first_fd;
            spec->first_fd = -1;
        }
        struct lw_listener *l = lw_listener_new(w, spec, fd);
        if (l == NULL) {
            return LW_EIO;
        }
        w->listeners[w->num_listeners++] = l;
    }
    return 0;
}

static void *run(void *arg)
{
    struct lw_worker *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

int lw_worker_start(struct lw_worker *w)
{
    if (pthread_create(&w->thread, NULL, run, w) != 0) {
        lw_log_error("worker %d: cannot start a thread", w->id);
        return LW_EIO;
    }
    return 0;
}

void lw_worker_stop(struct lw_worker *w)
{
    uint64_t one = 1;
    ssize_t r = write(w->stop_fd, &one, sizeof(one));
    (void)r; /* a full counter already says "stop" */
}

void lw_worker_join_and_dispose(struct lw_worker *w)
{
    if (w->thread) {
        pthread_join(w->thread, NULL);
    }
    /* Whatever is left (after a drain timeout, or a failed start) is closed now. */
    while (!lw_list_is_empty(&w->conns)) {
        lw_conn_close(LW_LIST_ENTRY(w->conns.next, struct lw_conn, link));
    }
    for (size_t i = 0; i < w->num_listeners; i++) {
        lw_listener_free(w->listeners[i]);
    }
    free(w->listeners);
    for (size_t i = 0; i < w->num_upstreams; i++) {
        if (w->upstreams[i] != NULL) {
            lw_upstream_free(w->upstreams[i]);
        }
    }
    free(w->upstreams);
    if (w->base != NULL) {
        on_reap(-1, 0, w);
    }
    if (w->dns != NULL) {
        lw_dns_free(w->dns);
    }
    lw_hints_cache_free(w->hints);
    lw_admin_free(w->admin);
    lw_etag_map_free(w->etags);
    lw_metrics_dispose(&w->metrics);
    if (w->base != NULL) {
        event_free(w->reap_ev);
        event_free(w->stop_ev);
        close(w->stop_fd);
        event_free(w->drain_timer);
        event_free(w->trim_timer);
        /* Run what the frees above queued (the resolver's own teardown) before the base goes. */
        event_base_loop(w->base, EVLOOP_NONBLOCK);
        event_base_free(w->base);
    }
    lw_mem_cache_dispose(&w->request_mem);
    lw_mem_cache_dispose(&w->small_bufs);
    lw_mem_cache_dispose(&w->read_bufs);
    for (size_t i = 0; i < LW_WORKER_H2_CLASSES; i++) {
        lw_mem_cache_dispose(&w->h2_mem[i]);
    }
    lw_config_unref(w->config);
}
