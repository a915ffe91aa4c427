/* SPDX-License-Identifier: MIT */
/*
 * Self-test for proxy/dns on a real event_base: hosts-file names and literals answered
 * asynchronously with the port set, a name that cannot exist failing within a bound, and the
 * lifecycle edges (cancel before and after c-ares answered, cancel and free from inside a
 * callback, free with lookups pending). Meant to run under ASan/LSan, which catch the
 * use-after-free and leak halves of those edges.
 */
#include "proxy/dns.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>

#include "common/err.h"
#include "common/mem.h"
#include "common/tests/tap.h"

/* Not a resolvable name anywhere (RFC 6761); the machine may have no DNS server at all. */
#define NXNAME "no-such-host.lowat-selftest.invalid"

struct result {
    bool called;
    int status;
    struct lw_dns_addr addrs[16];
    size_t num_addrs;
    uint32_t ttl_s;
};

static void on_result(void *arg, int status, const struct lw_dns_addr *addrs, size_t num_addrs, uint32_t ttl_s)
{
    struct result *r = arg;
    r->called = true;
    r->status = status;
    r->num_addrs = LW_MIN(num_addrs, LW_ARRAY_LEN(r->addrs));
    if (r->num_addrs > 0) {
        memcpy(r->addrs, addrs, r->num_addrs * sizeof(*addrs));
    }
    r->ttl_s = ttl_s;
}

static void on_never(void *arg, int status, const struct lw_dns_addr *addrs, size_t num_addrs, uint32_t ttl_s)
{
    int *calls = arg;
    (void)status;
    (void)addrs;
    (void)num_addrs;
    (void)ttl_s;
    (*calls)++;
}

static void on_expire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* Run the loop until *done or ms pass; returns *done. */
static bool run_until(struct event_base *base, const bool *done, int ms)
{
    bool expired = false;
    struct event *guard = evtimer_new(base, on_expire, &expired);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(guard, &tv);
    while (!*done && !expired) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(guard);
    return *done;
}

static void run_for(struct event_base *base, int ms)
{
    static const bool never = false;
    run_until(base, &never, ms);
}

static uint16_t port_of(const struct lw_dns_addr *a)
{
    if (a->addr.ss_family == AF_INET) {
        return ntohs(((const struct sockaddr_in *)&a->addr)->sin_port);
    }
    return ntohs(((const struct sockaddr_in6 *)&a->addr)->sin6_port);
}

static bool all_ports(const struct result *r, uint16_t port)
{
    for (size_t i = 0; i < r->num_addrs; i++) {
        if (port_of(&r->addrs[i]) != port) {
            return false;
        }
    }
    return true;
}

static bool is_addr(const struct lw_dns_addr *a, const char *text)
{
    char buf[INET6_ADDRSTRLEN];
    const void *raw = a->addr.ss_family == AF_INET ? (const void *)&((const struct sockaddr_in *)&a->addr)->sin_addr
                                                   : (const void *)&((const struct sockaddr_in6 *)&a->addr)->sin6_addr;
    return inet_ntop(a->addr.ss_family, raw, buf, sizeof(buf)) != NULL && strcmp(buf, text) == 0;
}

static bool all_loopback(const struct result *r)
{
    for (size_t i = 0; i < r->num_addrs; i++) {
        if (!is_addr(&r->addrs[i], "127.0.0.1") && !is_addr(&r->addrs[i], "::1")) {
            return false;
        }
    }
    return r->num_addrs > 0;
}

static bool no_duplicates(const struct result *r)
{
    for (size_t i = 0; i < r->num_addrs; i++) {
        for (size_t j = i + 1; j < r->num_addrs; j++) {
            if (r->addrs[i].addr_len == r->addrs[j].addr_len &&
                memcmp(&r->addrs[i].addr, &r->addrs[j].addr, r->addrs[i].addr_len) == 0) {
                return false;
            }
        }
    }
    return true;
}

static void test_localhost(struct event_base *base, struct lw_dns *dns)
{
    struct result r = {0};
    lw_dns_resolve(dns, "localhost", 443, on_result, &r);
    TAP_OK(!r.called, "localhost: callback not run inside lw_dns_resolve");
    TAP_OK(run_until(base, &r.called, 2000), "localhost: callback runs from the loop");
    TAP_EQ_INT(r.status, 0, "localhost: resolved");
    TAP_OK(all_loopback(&r), "localhost: only 127.0.0.1 and/or ::1 (%zu address(es))", r.num_addrs);
    TAP_OK(all_ports(&r, 443), "localhost: port 443 in every address");
    TAP_EQ_INT(r.ttl_s, 0, "localhost: ttl 0 from /etc/hosts");
    TAP_OK(no_duplicates(&r), "localhost: no duplicate addresses");
}

static void test_literal(struct event_base *base, struct lw_dns *dns, const char *host, int family, uint16_t port)
{
    struct result r = {0};
    lw_dns_resolve(dns, host, port, on_result, &r);
    TAP_OK(!r.called, "%s: callback not run inside lw_dns_resolve", host);
    /* Parsed, not looked up: the zero-delay timer answers on the first loop iteration. */
    event_base_loop(base, EVLOOP_ONCE);
    TAP_OK(r.called, "%s: answered on the first loop iteration, without DNS", host);
    TAP_EQ_INT(r.status, 0, "%s: resolved", host);
    TAP_OK(r.num_addrs == 1 && r.addrs[0].addr.ss_family == family && is_addr(&r.addrs[0], host),
           "%s: exactly itself (%zu address(es))", host, r.num_addrs);
    TAP_OK(r.num_addrs == 1 && port_of(&r.addrs[0]) == port, "%s: port %u set", host, (unsigned)port);
    TAP_OK(r.addrs[0].addr_len == (family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)),
           "%s: addr_len matches the family", host);
    TAP_EQ_INT(r.ttl_s, 0, "%s: ttl 0 for a literal", host);
}

static void test_zone(struct event_base *base, struct lw_dns *dns)
{
    struct result r = {0};
    lw_dns_resolve(dns, "fe80::1%lo", 443, on_result, &r);
    run_until(base, &r.called, 2000);
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&r.addrs[0].addr;
    TAP_OK(r.called && r.status == 0 && r.num_addrs == 1 && is_addr(&r.addrs[0], "fe80::1") &&
               sin6->sin6_scope_id == if_nametoindex("lo") && port_of(&r.addrs[0]) == 443,
           "fe80::1%%lo: link-local literal with its interface as scope id");
}

/* A DNS server that drops queries makes c-ares retry for over a minute (c-ares 1.18 ignores
 * resolv.conf's timeout and attempts), so the wait is bounded here: an error, or no answer
 * within the bound, passes; only success fails. */
static void test_nxdomain(struct event_base *base, struct lw_dns *dns)
{
    struct result r = {0};
    struct lw_dns_query *q = lw_dns_resolve(dns, NXNAME, 80, on_result, &r);
    TAP_OK(!r.called, "nonexistent name: callback not run inside lw_dns_resolve");
    bool answered = run_until(base, &r.called, 4000);
    if (!answered) {
        printf("# no answer within 4 s: the DNS server is silent; lookup cancelled\n");
        lw_dns_cancel(q);
    }
    TAP_OK(!answered || r.status != 0, "nonexistent name: does not resolve (%s)",
           answered ? lw_strerror(r.status) : "no answer");
    TAP_OK(!answered || r.status == LW_ENOTFOUND || r.status == LW_ETIMEDOUT || r.status == LW_EIO,
           "nonexistent name: error from the documented set");
    TAP_OK(r.num_addrs == 0, "nonexistent name: no addresses");
}

static void test_cancel(struct event_base *base, struct lw_dns *dns)
{
    int calls = 0;
    /* A literal is answered inside ares_getaddrinfo, so this one sits in the delivery queue. */
    lw_dns_cancel(lw_dns_resolve(dns, "127.0.0.3", 80, on_never, &calls));
    /* A name that goes to the network is still held by c-ares, which calls back later. */
    lw_dns_cancel(lw_dns_resolve(dns, NXNAME, 80, on_never, &calls));
    struct result r = {0};
    lw_dns_resolve(dns, "127.0.0.4", 80, on_result, &r);
    run_until(base, &r.called, 2000);
    TAP_OK(r.called && r.status == 0, "cancel: other lookups still answered");
    /* Time for c-ares to answer the cancelled lookup where DNS answers; where it does not,
     * lw_dns_free reclaims it later. */
    run_for(base, 500);
    TAP_EQ_INT(calls, 0, "cancel: cancelled callbacks never run (queued and in flight)");
}

struct cancel_other {
    struct lw_dns_query *victim;
    bool called;
};

static void on_cancel_other(void *arg, int status, const struct lw_dns_addr *addrs, size_t num_addrs, uint32_t ttl_s)
{
    struct cancel_other *c = arg;
    (void)status;
    (void)addrs;
    (void)num_addrs;
    (void)ttl_s;
    c->called = true;
    lw_dns_cancel(c->victim);
}

static void test_cancel_from_callback(struct event_base *base, struct lw_dns *dns)
{
    int calls = 0;
    struct cancel_other c = {0};
    /* Both answered synchronously by c-ares, so both are delivered in the same batch. */
    lw_dns_resolve(dns, "127.0.0.5", 80, on_cancel_other, &c);
    c.victim = lw_dns_resolve(dns, "127.0.0.6", 80, on_never, &calls);
    run_until(base, &c.called, 2000);
    run_for(base, 50);
    TAP_OK(c.called && calls == 0, "a callback can cancel a lookup answered in the same batch");
}

struct nested {
    struct lw_dns *dns;
    struct result inner;
    bool inner_seen_inside;
    bool outer_done;
};

static void on_outer(void *arg, int status, const struct lw_dns_addr *addrs, size_t num_addrs, uint32_t ttl_s)
{
    struct nested *n = arg;
    (void)status;
    (void)addrs;
    (void)num_addrs;
    (void)ttl_s;
    lw_dns_resolve(n->dns, "127.0.0.7", 8080, on_result, &n->inner);
    n->inner_seen_inside = n->inner.called;
    n->outer_done = true;
}

static void test_resolve_from_callback(struct event_base *base, struct lw_dns *dns)
{
    struct nested n = {.dns = dns};
    lw_dns_resolve(dns, "127.0.0.8", 80, on_outer, &n);
    run_until(base, &n.outer_done, 2000);
    run_until(base, &n.inner.called, 2000);
    TAP_OK(n.outer_done && !n.inner_seen_inside && n.inner.called && n.inner.status == 0 && all_ports(&n.inner, 8080),
           "a callback can resolve again; that answer comes later, with its port");
}

struct free_inside {
    struct lw_dns *dns;
    bool called;
};

static void on_free_inside(void *arg, int status, const struct lw_dns_addr *addrs, size_t num_addrs, uint32_t ttl_s)
{
    struct free_inside *f = arg;
    (void)status;
    (void)addrs;
    (void)num_addrs;
    (void)ttl_s;
    f->called = true;
    lw_dns_free(f->dns);
}

static void test_free_from_callback(struct event_base *base)
{
    int calls = 0;
    struct free_inside f = {.dns = lw_dns_new(base)};
    lw_dns_resolve(f.dns, "127.0.0.9", 80, on_free_inside, &f);
    lw_dns_resolve(f.dns, "127.0.0.10", 80, on_never, &calls);
    lw_dns_resolve(f.dns, NXNAME, 80, on_never, &calls);
    run_until(base, &f.called, 2000);
    run_for(base, 200);
    TAP_OK(f.called && calls == 0, "a callback can free the resolver; queued and in-flight callbacks never run");
}

static void test_free_pending(struct event_base *base)
{
    int calls = 0;
    struct lw_dns *dns = lw_dns_new(base);
    lw_dns_resolve(dns, NXNAME, 80, on_never, &calls);
    lw_dns_resolve(dns, "localhost", 80, on_never, &calls);
    lw_dns_resolve(dns, "::1", 80, on_never, &calls);
    lw_dns_free(dns);
    run_for(base, 200);
    TAP_EQ_INT(calls, 0, "free with lookups pending: no callback runs");
    TAP_OK(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE) == 0,
           "free leaves no event on the base");
}

int main(void)
{
    struct event_base *base = event_base_new();
    struct lw_dns *dns = lw_dns_new(base);
    TAP_OK(dns != NULL, "lw_dns_new creates a resolver");
    if (dns == NULL) {
        return tap_done();
    }
    test_localhost(base, dns);
    test_literal(base, dns, "127.0.0.2", AF_INET, 80);
    test_literal(base, dns, "::1", AF_INET6, 8443);
    test_zone(base, dns);
    test_nxdomain(base, dns);
    test_cancel(base, dns);
    test_cancel_from_callback(base, dns);
    test_resolve_from_callback(base, dns);
    lw_dns_free(dns);
    test_free_from_callback(base);
    test_free_pending(base);
    event_base_free(base);
    return tap_done();
}
