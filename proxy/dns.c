/* SPDX-License-Identifier: MIT */
/*
 * Asynchronous lookups on a worker's event_base. c-ares owns the DNS protocol, retries,
 * resolv.conf and /etc/hosts; this file tells libevent which of c-ares's sockets to watch (as
 * c-ares's socket-state callback reports them), keeps one timer on c-ares's next deadline, and
 * turns answers into de-duplicated address lists with the caller's port. Literal addresses are
 * parsed here and never reach c-ares. Every answer is queued and handed to its caller from a
 * zero-delay timer, never from inside c-ares: c-ares answers hosts-file names and early errors
 * before ares_getaddrinfo returns, and a caller's callback that frees the resolver must not run
 * on c-ares's stack.
 */
#include "proxy/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

/* An answer over TCP can carry thousands of records and a proxy dials the first few; the cap
 * bounds the copy and the quadratic de-duplication below. */
#define LW_DNS_MAX_ADDRS 64

struct lw_dns_link {
    struct lw_dns_link *prev, *next;
};

enum lw_dns_state {
    LW_DNS_IN_ARES,   /* c-ares holds it and will call on_addrinfo exactly once */
    LW_DNS_ABANDONED, /* cancelled while c-ares holds it: freed when on_addrinfo arrives */
    LW_DNS_READY,     /* answered, queued for on_deliver */
};

struct lw_dns_query {
    struct lw_dns_link link; /* on dns->in_ares while IN_ARES or ABANDONED, else on a delivery list */
    struct lw_dns *dns;
    lw_dns_cb cb;
    void *arg;
    enum lw_dns_state state;
    uint16_t port;
    int status;
    struct lw_dns_addr *addrs;
    size_t num_addrs;
    uint32_t ttl_s;
    char host[]; /* kept for the debug log line */
};

/* One c-ares socket. Reading and writing are separate events so that c-ares turning write
 * interest on and off (TCP only) costs one EPOLL_CTL_MOD, and repeated identical reports cost
 * nothing. */
struct lw_dns_sock {
    int fd;
    struct event *rd;
    struct event *wr; /* created the first time c-ares wants to write */
    bool rd_on, wr_on;
};

struct lw_dns {
    struct event_base *base;
    ares_channel channel;
    struct event *timer;   /* c-ares's next retry or timeout */
    struct event *deliver; /* zero-delay timer that runs callers' callbacks */
    struct lw_dns_sock *socks;
    size_t num_socks, cap_socks;
    struct lw_dns_link in_ares;    /* queries c-ares still holds */
    struct lw_dns_link ready;      /* answers waiting for on_deliver */
    struct lw_dns_link delivering; /* the batch on_deliver is working through */
    bool destroying;               /* inside ares_destroy: answers are dropped */
    bool in_deliver;               /* on_deliver is on the stack */
    bool closing;                  /* lw_dns_free ran inside on_deliver, which frees the rest */
};

/* ares_library_init is process-wide and not thread-safe, while resolvers are created by each
 * worker thread; the once-guard is the only state shared between them. */
static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static int library_status;

static void init_library(void)
{
    library_status = ares_library_init(ARES_LIB_INIT_ALL);
}

static void link_init(struct lw_dns_link *head)
{
    head->prev = head->next = head;
}

static bool link_is_empty(const struct lw_dns_link *head)
{
    return head->next == head;
}

static void link_append(struct lw_dns_link *head, struct lw_dns_link *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

static void link_remove(struct lw_dns_link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}

/* Move every entry of from to the end of to. */
static void link_splice(struct lw_dns_link *to, struct lw_dns_link *from)
{
    if (link_is_empty(from)) {
        return;
    }
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    link_init(from);
}

static struct lw_dns_query *query_of(struct lw_dns_link *l)
{
    return LW_CONTAINER_OF(l, struct lw_dns_query, link);
}

static void free_query(struct lw_dns_query *q)
{
    free(q->addrs);
    free(q);
}

static void free_all(struct lw_dns_link *head)
{
    while (!link_is_empty(head)) {
        struct lw_dns_query *q = query_of(head->next);
        link_remove(&q->link);
        free_query(q);
    }
}

static void arm_timer(struct lw_dns *dns)
{
    struct timeval tv;
    if (ares_timeout(dns->channel, NULL, &tv) == NULL) {
        evtimer_del(dns->timer);
        return;
    }
    if (evtimer_add(dns->timer, &tv) != 0) {
        lw_log_error("dns: cannot arm the resolver timer; lookups may never finish");
    }
}

static void on_sock(evutil_socket_t fd, short what, void *arg)
{
    struct lw_dns *dns = arg;
    /* May close this very socket, whose events on_sock_state then frees: touch only dns after. */
    ares_process_fd(dns->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD, (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    arm_timer(dns);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct lw_dns *dns = arg;
    (void)fd;
    (void)what;
    ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    arm_timer(dns);
}

static struct lw_dns_sock *find_sock(struct lw_dns *dns, int fd)
{
    for (size_t i = 0; i < dns->num_socks; i++) {
        if (dns->socks[i].fd == fd) {
            return &dns->socks[i];
        }
    }
    return NULL;
}

/* Bring one direction's event in line with what c-ares asked for, touching epoll only on a
 * change. */
static void watch(struct lw_dns *dns, int fd, short what, struct event **ev, bool *on, bool want)
{
    if (*on == want) {
        return;
    }
    if (!want) {
        event_del(*ev);
        *on = false;
        return;
    }
    if (*ev == NULL) {
        *ev = event_new(dns->base, fd, what | EV_PERSIST, on_sock, dns);
    }
    if (*ev == NULL || event_add(*ev, NULL) != 0) {
        /* c-ares cannot be told; its timer still ends the lookup with a timeout. */
        lw_log_error("dns: cannot watch resolver socket %d", fd);
        return;
    }
    *on = true;
}

static void unwatch_sock(struct lw_dns *dns, struct lw_dns_sock *s)
{
    if (s->rd != NULL) {
        event_free(s->rd);
    }
    if (s->wr != NULL) {
        event_free(s->wr);
    }
    *s = dns->socks[--dns->num_socks];
}

/* c-ares reports (0, 0) just before it closes a socket, so the events go while the fd is still
 * open and a later socket that reuses the number starts afresh. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct lw_dns *dns = data;
    struct lw_dns_sock *s = find_sock(dns, fd);
    if (!readable && !writable) {
        if (s != NULL) {
            unwatch_sock(dns, s);
        }
        return;
    }
    if (s == NULL) {
        if (dns->num_socks == dns->cap_socks) {
            dns->cap_socks = dns->cap_socks ? dns->cap_socks * 2 : 4;
            dns->socks = lw_realloc(dns->socks, dns->cap_socks * sizeof(*dns->socks));
        }
        s = &dns->socks[dns->num_socks++];
        memset(s, 0, sizeof(*s));
        s->fd = fd;
    }
    watch(dns, fd, EV_READ, &s->rd, &s->rd_on, readable);
    watch(dns, fd, EV_WRITE, &s->wr, &s->wr_on, writable);
}

static int map_status(int ares_status)
{
    switch (ares_status) {
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
        return LW_ENOTFOUND;
    case ARES_ETIMEOUT:
        return LW_ETIMEDOUT;
    default:
        return LW_EIO;
    }
}

static bool is_duplicate(const struct lw_dns_addr *addrs, size_t n, const struct lw_dns_addr *a)
{
    for (size_t i = 0; i < n; i++) {
        if (addrs[i].addr_len == a->addr_len && memcmp(&addrs[i].addr, &a->addr, a->addr_len) == 0) {
            return true;
        }
    }
    return false;
}

/* Fill one address from a node, with the caller's port; false for a family we do not dial. */
static bool copy_addr(struct lw_dns_addr *out, const struct ares_addrinfo_node *node, uint16_t port)
{
    /* Zeroed first so that padding compares equal in is_duplicate. */
    memset(out, 0, sizeof(*out));
    if (node->ai_family == AF_INET && node->ai_addrlen >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&out->addr;
        const struct sockaddr_in *src = (const struct sockaddr_in *)node->ai_addr;
        sin->sin_family = AF_INET;
        sin->sin_addr = src->sin_addr;
        sin->sin_port = htons(port);
        out->addr_len = sizeof(*sin);
        return true;
    }
    if (node->ai_family == AF_INET6 && node->ai_addrlen >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->addr;
        const struct sockaddr_in6 *src = (const struct sockaddr_in6 *)node->ai_addr;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = src->sin6_addr;
        sin6->sin6_scope_id = src->sin6_scope_id;
        sin6->sin6_port = htons(port);
        out->addr_len = sizeof(*sin6);
        return true;
    }
    return false;
}

/* Turn c-ares's answer into q's status, addresses and TTL. The order c-ares sorted them in
 * (RFC 6724: reachable families first) is kept. */
static void take_answer(struct lw_dns_query *q, int ares_status, const struct ares_addrinfo *res)
{
    if (ares_status != ARES_SUCCESS) {
        q->status = map_status(ares_status);
        lw_log_debug("dns: %s: %s", q->host, ares_strerror(ares_status));
        return;
    }
    size_t num_nodes = 0;
    for (const struct ares_addrinfo_node *node = res ? res->nodes : NULL; node != NULL; node = node->ai_next) {
        num_nodes++;
    }
    q->addrs = lw_malloc(LW_MIN(num_nodes, (size_t)LW_DNS_MAX_ADDRS) * sizeof(*q->addrs));
    bool have_ttl = false;
    for (const struct ares_addrinfo_node *node = res ? res->nodes : NULL; node != NULL; node = node->ai_next) {
        struct lw_dns_addr *a = &q->addrs[q->num_addrs];
        if (q->num_addrs == LW_DNS_MAX_ADDRS || !copy_addr(a, node, q->port)) {
            continue;
        }
        uint32_t ttl_s = node->ai_ttl > 0 ? (uint32_t)node->ai_ttl : 0;
        q->ttl_s = have_ttl ? LW_MIN(q->ttl_s, ttl_s) : ttl_s;
        have_ttl = true;
        if (!is_duplicate(q->addrs, q->num_addrs, a)) {
            q->num_addrs++;
        }
    }
    if (q->num_addrs == 0) {
        /* A CNAME chain that ends nowhere, or only families we do not dial. */
        q->status = LW_ENOTFOUND;
        q->ttl_s = 0;
        lw_log_debug("dns: %s: no address", q->host);
        return;
    }
    q->status = 0;
    lw_log_debug("dns: %s: %zu address(es), ttl %u s", q->host, q->num_addrs, (unsigned)q->ttl_s);
}

static void schedule_delivery(struct lw_dns *dns)
{
    static const struct timeval zero = {0, 0};
    if (evtimer_pending(dns->deliver, NULL)) {
        return;
    }
    if (evtimer_add(dns->deliver, &zero) != 0) {
        lw_log_error("dns: cannot schedule lookup callbacks");
    }
}

/* c-ares's callback, exactly once per ares_getaddrinfo: from inside that call (hosts file, early
 * errors), from ares_process_fd, or from ares_destroy. */
static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct lw_dns_query *q = arg;
    struct lw_dns *dns = q->dns;
    (void)timeouts;
    link_remove(&q->link);
    if (q->state == LW_DNS_ABANDONED || dns->destroying) {
        free_query(q);
        goto Exit;
    }
    take_answer(q, status, res);
    q->state = LW_DNS_READY;
    link_append(&dns->ready, &q->link);
    schedule_delivery(dns);
Exit:
    if (res != NULL) {
        ares_freeaddrinfo(res);
    }
}

/* Frees what lw_dns_free leaves when it runs inside on_deliver. */
static void free_shell(struct lw_dns *dns)
{
    if (dns->deliver != NULL) {
        event_free(dns->deliver);
    }
    free(dns->socks);
    free(dns);
}

static void on_deliver(evutil_socket_t fd, short what, void *arg)
{
    struct lw_dns *dns = arg;
    (void)fd;
    (void)what;
    /* Only the answers queued so far: one queued by a callback (a literal resolved again) waits
     * for the next loop iteration, so callbacks that resolve again cannot starve the loop. */
    link_splice(&dns->delivering, &dns->ready);
    dns->in_deliver = true;
    while (!dns->closing && !link_is_empty(&dns->delivering)) {
        struct lw_dns_query *q = query_of(dns->delivering.next);
        /* Unlinked before the call: the callback may cancel other queries or free dns. */
        link_remove(&q->link);
        q->cb(q->arg, q->status, q->addrs, q->num_addrs, q->ttl_s);
        free_query(q);
    }
    dns->in_deliver = false;
    if (dns->closing) {
        free_shell(dns);
    }
}

/*
 * c-ares 1.18's ares_getaddrinfo looks a literal up in /etc/hosts and then sends A and AAAA
 * queries for it, parsing it only once DNS has failed (strace shows the queries for
 * "127.0.0.5"): a literal would cost a DNS round trip, or the whole timeout where DNS does not
 * answer. Literals are therefore parsed here. Only the strict forms: dotted-quad IPv4 and IPv6
 * with an optional "%zone" (interface name or index).
 */
static bool parse_literal(const char *host, uint16_t port, struct lw_dns_addr *out)
{
    memset(out, 0, sizeof(*out));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &sin.sin_addr) == 1) {
        memcpy(&out->addr, &sin, sizeof(sin));
        out->addr_len = sizeof(sin);
        return true;
    }
    char text[INET6_ADDRSTRLEN];
    const char *zone = strchr(host, '%');
    size_t len = zone != NULL ? (size_t)(zone - host) : strlen(host);
    if (len >= sizeof(text)) {
        return false;
    }
    memcpy(text, host, len);
    text[len] = '\0';
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    if (inet_pton(AF_INET6, text, &sin6.sin6_addr) != 1) {
        return false;
    }
    if (zone != NULL) {
        char *end;
        unsigned long index = strtoul(zone + 1, &end, 10);
        bool numeric = zone[1] >= '0' && zone[1] <= '9' && *end == '\0' && index <= UINT32_MAX;
        sin6.sin6_scope_id = numeric ? (uint32_t)index : if_nametoindex(zone + 1);
        if (sin6.sin6_scope_id == 0) {
            return false;
        }
    }
    memcpy(&out->addr, &sin6, sizeof(sin6));
    out->addr_len = sizeof(sin6);
    return true;
}

struct lw_dns *lw_dns_new(struct event_base *base)
{
    struct lw_dns *ret = NULL;
    pthread_once(&library_once, init_library);
    if (library_status != ARES_SUCCESS) {
        lw_log_error("dns: c-ares initialisation failed: %s", ares_strerror(library_status));
        return NULL;
    }
    struct lw_dns *dns = lw_calloc(1, sizeof(*dns));
    dns->base = base;
    link_init(&dns->in_ares);
    link_init(&dns->ready);
    link_init(&dns->delivering);
    dns->timer = evtimer_new(base, on_timer, dns);
    dns->deliver = evtimer_new(base, on_deliver, dns);
    if (dns->timer == NULL || dns->deliver == NULL) {
        lw_log_error("dns: cannot create resolver events");
        goto Exit;
    }
    struct ares_options opts;
    memset(&opts, 0, sizeof(opts));
    opts.sock_state_cb = on_sock_state;
    opts.sock_state_cb_data = dns;
    /* c-ares 1.18 ignores resolv.conf's timeout/attempts and would take ~75 s to give up on
     * a silent server; a backend name that cannot be resolved should be reported sooner. */
    opts.timeout = 2000;
    opts.tries = 2;
    int rc = ares_init_options(&dns->channel, &opts, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS) {
        lw_log_error("dns: cannot create a c-ares channel: %s", ares_strerror(rc));
        goto Exit;
    }
    ret = dns;
    dns = NULL;
Exit:
    if (dns != NULL) {
        if (dns->timer != NULL) {
            event_free(dns->timer);
        }
        free_shell(dns);
    }
    return ret;
}

void lw_dns_free(struct lw_dns *dns)
{
    if (dns == NULL) {
        return;
    }
    free_all(&dns->ready);
    free_all(&dns->delivering);
    /* ares_destroy answers every query it holds with ARES_EDESTRUCTION (on_addrinfo frees them)
     * and reports each socket closed (on_sock_state frees its events). */
    dns->destroying = true;
    ares_destroy(dns->channel);
    if (!link_is_empty(&dns->in_ares)) {
        lw_log_debug("dns: c-ares left queries unanswered at destruction");
        free_all(&dns->in_ares);
    }
    while (dns->num_socks > 0) {
        unwatch_sock(dns, &dns->socks[0]);
    }
    event_free(dns->timer);
    if (dns->in_deliver) {
        dns->closing = true;
        return;
    }
    free_shell(dns);
}

struct lw_dns_query *lw_dns_resolve(struct lw_dns *dns, const char *host, uint16_t port, lw_dns_cb cb, void *arg)
{
    LW_BUG_ON(host == NULL || cb == NULL);
    size_t len = strlen(host);
    struct lw_dns_query *q = lw_calloc(1, sizeof(*q) + len + 1);
    memcpy(q->host, host, len + 1);
    q->dns = dns;
    q->cb = cb;
    q->arg = arg;
    q->port = port;

    struct lw_dns_addr literal;
    if (parse_literal(host, port, &literal)) {
        q->addrs = lw_malloc(sizeof(*q->addrs));
        q->addrs[0] = literal;
        q->num_addrs = 1;
        q->state = LW_DNS_READY;
        link_append(&dns->ready, &q->link);
        schedule_delivery(dns);
        return q;
    }

    q->state = LW_DNS_IN_ARES;
    link_append(&dns->in_ares, &q->link);

    /* No service: c-ares 1.18 would resolve it through /etc/services; take_answer writes the
     * port itself. */
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    ares_getaddrinfo(dns->channel, host, NULL, &hints, on_addrinfo, q);
    arm_timer(dns);
    return q;
}

void lw_dns_cancel(struct lw_dns_query *q)
{
    if (q == NULL) {
        return;
    }
    switch (q->state) {
    case LW_DNS_IN_ARES:
        /* c-ares 1.18 cannot cancel one query and still holds q as its callback argument. */
        q->state = LW_DNS_ABANDONED;
        break;
    case LW_DNS_READY:
        link_remove(&q->link);
        free_query(q);
        break;
    case LW_DNS_ABANDONED:
        /* The handle was already given up: a second cancel is a caller's use after free. */
        lw_bug(__FILE__, __LINE__, "lw_dns_cancel called twice");
    }
}
