/* SPDX-License-Identifier: MIT */
/*
 * Per-worker counters and histograms, by experiment arm, and their Prometheus text. Each
 * worker writes only its own (no lock, no atomic read-modify-write: one writer per value);
 * the admin endpoint reads every worker's with relaxed atomic loads and adds them up, so a
 * scrape may be a few events behind but never torn.
 */
#ifndef LW_PROXY_METRICS_H
#define LW_PROXY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

struct lw_config;

/* Histogram bounds in microseconds: 5 ms .. 10 s, then +Inf. */
#define LW_METRICS_BUCKETS 12

struct lw_histogram {
    uint64_t buckets[LW_METRICS_BUCKETS]; /* non-cumulative counts; the last is +Inf */
    uint64_t sum_us;
    uint64_t count;
};

/* One experiment arm's figures (slot 0: requests outside any experiment). */
struct lw_arm_metrics {
    uint64_t requests;
    uint64_t pushes_promised;
    uint64_t pushes_cancelled;
    uint64_t pushed_bytes;
    uint64_t pushed_then_requested;
    uint64_t hints_forwarded;
    struct lw_histogram parent_ttfb;
    struct lw_histogram page_complete;
};

struct lw_metrics {
    struct lw_arm_metrics *arms;
    size_t num_arms;
    uint64_t connections_accepted;
    uint64_t connections_open;
};

void lw_metrics_init(struct lw_metrics *m, size_t num_slots);
void lw_metrics_dispose(struct lw_metrics *m);

/* Add n to a counter this thread owns. */
static inline void lw_metrics_add(uint64_t *counter, uint64_t n)
{
    __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

/* Record a duration in a histogram this thread owns. */
void lw_metrics_observe(struct lw_histogram *h, uint64_t us);

/* Record the process start time (Unix seconds); call once before workers start. */
void lw_metrics_set_start_time(uint64_t unix_s);

/* Append the Prometheus text of the sum of workers[0..n) to out. */
void lw_metrics_render(const struct lw_config *cfg, const struct lw_metrics *const *workers, size_t n,
                       struct lw_buf *out);

#endif
