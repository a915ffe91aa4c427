/* SPDX-License-Identifier: MIT */
/*
 * Backend groups at run time, per worker: members (literal addresses at once, names through
 * c-ares, re-resolved on their TTL or the configured interval), keep-alive connections per
 * member, connection caps with a bounded FIFO of waiting requests, and passive health.
 */
#include "proxy/pool.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/clock.h"
#include "config/config.h"
#include "proxy/backend.h"
#include "proxy/balancer.h"
#include "proxy/dns.h"
#include "proxy/request.h"
#include "proxy/sock.h"
#include "proxy/worker.h"

/* Resolution state of one configured member that names a host. */
struct lw_resolve {
    struct lw_upstream *up;
    size_t index;
    struct lw_dns_query *query;
    struct event *timer;
    bool answered;
};

static void serve_waiters(struct lw_upstream *up);
static void on_queue_timer(evutil_socket_t fd, short what, void *arg);

static struct lw_member *member_add(struct lw_upstream *up, size_t index, const struct sockaddr_storage *ss,
                                    socklen_t len)
{
    const struct lw_config_member *cm = &up->cfg->members[index];
    struct lw_member *m = lw_calloc(1, sizeof(*m));
    m->upstream = up;
    memcpy(&m->addr, ss, len);
    m->addr_len = len;
    m->cfg_index = index;
    m->weight = cm->weight ? cm->weight : 1;
    lw_list_init(&m->idle);
    lw_list_init(&m->busy);
    char addr[80];
    lw_sock_format((const struct sockaddr *)ss, addr, sizeof(addr));
    struct sockaddr_storage lit;
    socklen_t litlen;
    if (lw_sock_parse_literal(cm->host, cm->port, &lit, &litlen)) {
        snprintf(m->name, sizeof(m->name), "%s", addr);
    } else {
        snprintf(m->name, sizeof(m->name), "%s:%u(%s)", cm->host, cm->port, addr);
    }
    lw_list_push_back(&up->members, &m->link);
    up->num_members++;
    return m;
}

static void member_free(struct lw_member *m)
{
    lw_list_remove(&m->link);
    free(m);
}

static void close_list(struct lw_list *l)
{
    while (!lw_list_is_empty(l)) {
        lw_bconn_close(LW_LIST_ENTRY(l->next, struct lw_bconn, link));
    }
}

/* Retire a member that DNS no longer lists: no new exchanges, freed once unused. */
static void member_retire(struct lw_upstream *up, struct lw_member *m)
{
    lw_list_remove(&m->link);
    up->num_members--;
    close_list(&m->idle); /* before marking it retired, so closing cannot free it under us */
    m->retired = true;
    lw_list_push_back(&up->retired, &m->link);
    if (m->num_conns == 0) {
        member_free(m);
    }
}

static bool same_addr(const struct sockaddr_storage *a, socklen_t alen, const struct sockaddr_storage *b,
                      socklen_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

#define RESOLVE_MAX_TTL_S 86400u

static void schedule_resolve(struct lw_resolve *r, uint32_t ms)
{
    if (ms < 1000) {
        ms = 1000;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(r->timer, &tv);
}

static void on_resolved(void *arg, int status, const struct lw_dns_addr *addrs, size_t num, uint32_t ttl_s)
{
    struct lw_resolve *r = arg;
    struct lw_upstream *up = r->up;
    const struct lw_config_member *cm = &up->cfg->members[r->index];
    r->query = NULL;
    bool first = !r->answered;
    r->answered = true;
    if (first) {
        up->unresolved--;
    }
    if (status != 0 || num == 0) {
        lw_log_warn("backend %s: cannot resolve %s: %s; keeping %zu member(s), retrying in %us", up->cfg->name,
                    cm->host, lw_strerror(status ? status : LW_ENOTFOUND), up->num_members,
                    up->cfg->resolve_interval_ms / 1000);
        schedule_resolve(r, up->cfg->resolve_interval_ms);
        serve_waiters(up);
        return;
    }
    /* Retire members of this name that the answer no longer has; add the new addresses. */
    struct lw_list *it, *tmp;
    LW_LIST_FOREACH_SAFE(it, tmp, &up->members)
    {
        struct lw_member *m = LW_LIST_ENTRY(it, struct lw_member, link);
        if (m->cfg_index != r->index) {
            continue;
        }
        bool keep = false;
        for (size_t i = 0; i < num && !keep; i++) {
            keep = same_addr(&m->addr, m->addr_len, &addrs[i].addr, addrs[i].addr_len);
        }
        if (!keep) {
            lw_log_info("backend %s: member %s left DNS; retiring it", up->cfg->name, m->name);
            member_retire(up, m);
        }
    }
    for (size_t i = 0; i < num; i++) {
        bool have = false;
        for (it = up->members.next; it != &up->members && !have; it = it->next) {
            struct lw_member *m = LW_LIST_ENTRY(it, struct lw_member, link);
            have = m->cfg_index == r->index && same_addr(&m->addr, m->addr_len, &addrs[i].addr, addrs[i].addr_len);
        }
        if (!have) {
            struct lw_member *m = member_add(up, r->index, &addrs[i].addr, addrs[i].addr_len);
            lw_log_info("backend %s: member %s added (ttl %us)", up->cfg->name, m->name, ttl_s);
        }
    }
    /* A TTL counts for a day at most, as resolvers' caches count one (unbound's cache-max-ttl):
     * a name moved after weeks is still followed, and the milliseconds cannot wrap around. */
    schedule_resolve(r, ttl_s > 0 ? LW_MIN(ttl_s, RESOLVE_MAX_TTL_S) * 1000u : up->cfg->resolve_interval_ms);
    serve_waiters(up);
}

static void on_resolve_timer(evutil_socket_t fd, short what, void *arg)
{
    struct lw_resolve *r = arg;
    const struct lw_config_member *cm = &r->up->cfg->members[r->index];
    if (r->query == NULL) {
        r->query = lw_dns_resolve(r->up->worker->dns, cm->host, cm->port, on_resolved, r);
    }
}

struct lw_upstream *lw_upstream_new(struct lw_worker *w, const struct lw_config_backend *cfg)
{
    struct lw_upstream *up = lw_calloc(1, sizeof(*up));
    up->worker = w;
    up->cfg = cfg;
    lw_list_init(&up->members);
    lw_list_init(&up->retired);
    lw_list_init(&up->waiters);
    up->queue_timer = evtimer_new(w->base, on_queue_timer, up);
    up->resolves = lw_calloc(cfg->num_members, sizeof(*up->resolves));
    for (size_t i = 0; i < cfg->num_members; i++) {
        struct lw_resolve *r = &up->resolves[i];
        const struct lw_config_member *cm = &cfg->members[i];
        r->up = up;
        r->index = i;
        struct sockaddr_storage ss;
        socklen_t len;
        if (lw_sock_parse_literal(cm->host, cm->port, &ss, &len)) {
            member_add(up, i, &ss, len);
            r->answered = true;
            continue;
        }
        r->timer = evtimer_new(w->base, on_resolve_timer, r);
        up->unresolved++;
        r->query = lw_dns_resolve(w->dns, cm->host, cm->port, on_resolved, r);
    }
    return up;
}

void lw_upstream_free(struct lw_upstream *up)
{
    up->freeing = true;
    for (size_t i = 0; i < up->cfg->num_members; i++) {
        struct lw_resolve *r = &up->resolves[i];
        if (r->query != NULL) {
            lw_dns_cancel(r->query);
        }
        if (r->timer != NULL) {
            event_free(r->timer);
        }
    }
    free(up->resolves);
    event_free(up->queue_timer);
    struct lw_list *lists[2] = {&up->members, &up->retired};
    for (int l = 0; l < 2; l++) {
        while (!lw_list_is_empty(lists[l])) {
            struct lw_member *m = LW_LIST_ENTRY(lists[l]->next, struct lw_member, link);
            m->retired = false; /* freed here, not by lw_upstream_conn_gone */
            close_list(&m->idle);
            close_list(&m->busy);
            member_free(m);
        }
    }
    free(up);
}

static void fail_request(struct lw_request *req, int status, const char *reason)
{
    lw_request_on_backend_error(req, status, reason, false);
}

/* A connect that failed on lowat's side of the network: out of descriptors (its own or the
 * system's), socket buffers or memory, or of local ports towards the member (EADDRNOTAVAIL
 * from connect). None says anything about the member's health. */
static bool is_local_limit(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM || err == EADDRNOTAVAIL;
}

/* Give req a connection on m: an idle one (most recently used: warm) or a new one. */
static void start_on(struct lw_member *m, struct lw_request *req)
{
    if (!lw_list_is_empty(&m->idle)) {
        struct lw_bconn *bc = LW_LIST_ENTRY(m->idle.prev, struct lw_bconn, link);
        lw_bconn_attach(bc, req);
        return;
    }
    if (lw_bconn_connect(m, req) != NULL) {
        return;
    }
    int err = errno;
    if (is_local_limit(err)) {
        /* Counted against the member, this marked a healthy backend down for lowat's own
         * shortage. No retry: nothing frees a descriptor before it, and another member would
         * meet the same shortage. 503, as when no connection is free in time. */
        lw_log_warn("backend %s: cannot connect to member %s: %s: lowat's own limit, not the member's failure; "
                    "answering 503",
                    m->upstream->cfg->name, m->name, strerror(err));
        fail_request(req, 503, "connect failed: lowat's own limit");
        return;
    }
    char why[128];
    snprintf(why, sizeof(why), "connect failed: %s", strerror(err));
    lw_log_warn("backend %s: %s", m->name, why);
    lw_upstream_report(m, false, why);
    req->member = m;
    lw_request_on_backend_error(req, 502, "connect failed", true);
}

/* A request does not wait for a connection longer than it would wait for a response. */
static void on_queue_timer(evutil_socket_t fd, short what, void *arg)
{
    struct lw_upstream *up = arg;
    uint64_t limit_us = (uint64_t)up->cfg->response_timeout_ms * 1000u, now = lw_time_mono_us();
    while (up->num_waiters > 0) {
        struct lw_request *req = LW_LIST_FIRST(&up->waiters, struct lw_request, wait_link);
        if (now - req->queued_us < limit_us) {
            break;
        }
        lw_upstream_cancel_wait(req);
        lw_log_warn("backend %s: a request waited %ums for a connection; answering 503", up->cfg->name,
                    up->cfg->response_timeout_ms);
        fail_request(req, 503, "no backend connection free in time");
    }
    if (up->num_waiters > 0) {
        struct timeval tv = {1, 0};
        event_add(up->queue_timer, &tv);
    }
}

static void enqueue(struct lw_upstream *up, struct lw_request *req)
{
    if (up->num_waiters >= up->cfg->queue) {
        lw_log_warn("backend %s: %zu requests already waiting for a connection; refusing one", up->cfg->name,
                    up->num_waiters);
        fail_request(req, 503, "backend queue full");
        return;
    }
    lw_list_push_back(&up->waiters, &req->wait_link);
    up->num_waiters++;
    req->queued_us = lw_time_mono_us();
    if (!event_pending(up->queue_timer, EV_TIMEOUT, NULL)) {
        struct timeval tv = {1, 0};
        event_add(up->queue_timer, &tv);
    }
}

/* The balancer needs the time only to tell whether a member's back-off has ended: with none
 * backing off, 0 gives the same answer without reading the clock for every request. */
static uint64_t pick_time_ms(const struct lw_upstream *up)
{
    const struct lw_list *it;
    for (it = up->members.next; it != &up->members; it = it->next) {
        if (LW_LIST_ENTRY(it, struct lw_member, link)->down_until_ms != 0) {
            return lw_time_mono_ms();
        }
    }
    return 0;
}

void lw_upstream_acquire(struct lw_upstream *up, struct lw_request *req)
{
    if (up->num_members == 0) {
        if (up->unresolved > 0) {
            enqueue(up, req); /* the first DNS answer will serve it */
            return;
        }
        lw_log_warn("backend %s: no member address to send a request to", up->cfg->name);
        fail_request(req, 502, "no backend address");
        return;
    }
    /* Waiters go first: a new request does not overtake the queue. */
    if (up->num_waiters > 0) {
        enqueue(up, req);
        return;
    }
    struct lw_member *m = lw_balancer_pick(up, req->member, pick_time_ms(up));
    if (m == NULL) {
        enqueue(up, req);
        return;
    }
    start_on(m, req);
}

void lw_upstream_cancel_wait(struct lw_request *req)
{
    if (lw_list_is_linked(&req->wait_link)) {
        lw_list_remove(&req->wait_link);
        req->upstream->num_waiters--;
    }
}

static void serve_waiters(struct lw_upstream *up)
{
    if (up->freeing) {
        return;
    }
    while (up->num_waiters > 0) {
        struct lw_request *req = LW_LIST_FIRST(&up->waiters, struct lw_request, wait_link);
        if (up->num_members == 0) {
            if (up->unresolved > 0) {
                return;
            }
            lw_upstream_cancel_wait(req);
            fail_request(req, 502, "no backend address");
            continue;
        }
        struct lw_member *m = lw_balancer_pick(up, req->member, pick_time_ms(up));
        if (m == NULL) {
            return;
        }
        lw_upstream_cancel_wait(req);
        start_on(m, req);
    }
}

void lw_upstream_release(struct lw_bconn *bc, bool reusable)
{
    struct lw_member *m = bc->member;
    if (!reusable || m->retired) {
        lw_bconn_close(bc);
        return;
    }
    lw_list_push_back(&m->idle, &bc->link);
    serve_waiters(m->upstream);
}

void lw_upstream_conn_gone(struct lw_bconn *bc)
{
    struct lw_member *m = bc->member;
    struct lw_upstream *up = m->upstream;
    m->num_conns--;
    if (m->retired && m->num_conns == 0) {
        member_free(m);
    }
    serve_waiters(up);
}

void lw_upstream_report(struct lw_member *m, bool ok, const char *why)
{
    if (ok) {
        if (m->fails >= m->upstream->cfg->max_fails && m->upstream->cfg->max_fails > 0) {
            lw_log_info("backend %s: member %s is answering again", m->upstream->cfg->name, m->name);
        }
        m->fails = 0;
        m->down_until_ms = 0;
        return;
    }
    m->fails++;
    const struct lw_config_backend *cfg = m->upstream->cfg;
    if (cfg->max_fails > 0 && m->fails >= cfg->max_fails) {
        m->down_until_ms = lw_time_mono_ms() + cfg->fail_backoff_ms;
        if (m->fails == cfg->max_fails) {
            lw_log_warn("backend %s: member %s marked down for %ums after %u consecutive failures (last: %s)",
                        cfg->name, m->name, cfg->fail_backoff_ms, m->fails, why ? why : "error");
        }
    }
}

void lw_upstream_close_idle(struct lw_upstream *up)
{
    struct lw_list *it;
    for (it = up->members.next; it != &up->members; it = it->next) {
        close_list(&LW_LIST_ENTRY(it, struct lw_member, link)->idle);
    }
}
