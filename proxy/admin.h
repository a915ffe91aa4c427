/* SPDX-License-Identifier: MIT */
/*
 * The admin listener: plain HTTP/1.1 on a local address (off unless configured), serving
 * /metrics (Prometheus text: every worker's counters added up) and /healthz. It runs on the
 * first worker's loop; one request per connection.
 */
#ifndef LW_PROXY_ADMIN_H
#define LW_PROXY_ADMIN_H

#include <stddef.h>

struct lw_worker;
struct lw_metrics;
struct lw_admin;

/* Serve on the listening socket fd (taken over) from w's loop; workers' metrics are read
 * from metrics[0..n) (borrowed: they outlive the admin). */
struct lw_admin *lw_admin_new(struct lw_worker *w, int fd, const struct lw_metrics *const *metrics, size_t n);
void lw_admin_free(struct lw_admin *a);

#endif
