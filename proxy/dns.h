/* SPDX-License-Identifier: MIT */
/*
 * Asynchronous name resolution with c-ares, driven by a worker's event_base: c-ares's
 * sockets are watched with libevent events and its timeouts with a timer, so a lookup
 * never blocks the worker's loop. One lw_dns per worker.
 */
#ifndef LW_PROXY_DNS_H
#define LW_PROXY_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct lw_dns;
struct lw_dns_query;

struct lw_dns_addr {
    struct sockaddr_storage addr; /* port already set */
    socklen_t addr_len;
};

/*
 * Result of a lookup. status: 0, LW_ENOTFOUND (no such name or no address), LW_ETIMEDOUT, or
 * LW_EIO. addrs: borrowed for the duration of the call. ttl_s: the smallest TTL of the answer,
 * 0 when the source has none (/etc/hosts, a literal address).
 */
typedef void (*lw_dns_cb)(void *arg, int status, const struct lw_dns_addr *addrs, size_t num_addrs, uint32_t ttl_s);

/* Create a resolver on base using the system's resolv.conf and /etc/hosts. Returns NULL and
 * logs why on failure. */
struct lw_dns *lw_dns_new(struct event_base *base);
/* Cancel every pending lookup (their callbacks are not called) and free the resolver. */
void lw_dns_free(struct lw_dns *dns);

/*
 * Resolve host (a name or a literal IPv4/IPv6 address) for port, both IPv4 and IPv6.
 * cb is always called later from the event loop, never from inside this call, unless the
 * query is cancelled first. Returns a handle valid until cb runs or lw_dns_cancel.
 */
struct lw_dns_query *lw_dns_resolve(struct lw_dns *dns, const char *host, uint16_t port, lw_dns_cb cb, void *arg);
/* The callback will not be called; the handle is freed. */
void lw_dns_cancel(struct lw_dns_query *q);

#endif
