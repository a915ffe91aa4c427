/* SPDX-License-Identifier: MIT */
/*
 * Choosing a member of a backend group for a request. Smooth weighted round-robin (the
 * nginx scheme: even spacing, weights honoured over any window) over members that are up
 * and have room; when every member is down, the one whose back-off ends first is tried
 * rather than failing outright, so a recovered group serves again without waiting.
 */
#ifndef LW_PROXY_BALANCER_H
#define LW_PROXY_BALANCER_H

#include <stdint.h>

struct lw_upstream;
struct lw_member;

/* Pick a member for a new exchange. exclude: a member that just failed this request (may be
 * NULL). Members at max_connections with no idle connection are skipped. Returns NULL when
 * every member is full (the request should wait) or there is none. */
struct lw_member *lw_balancer_pick(struct lw_upstream *up, const struct lw_member *exclude, uint64_t now_ms);

#endif
