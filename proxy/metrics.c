/* SPDX-License-Identifier: MIT */
/* Counters and histograms per experiment arm, and the Prometheus text exposition. */
#include "proxy/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "config/config.h"

static const uint64_t bounds_us[LW_METRICS_BUCKETS - 1] = {5000,   10000,  25000,   50000,   100000,
                                                            250000, 500000, 1000000, 2500000, 5000000,
                                                            10000000};
static const char *const bounds_text[LW_METRICS_BUCKETS] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                                                           "0.5",   "1",    "2.5",   "5",    "10",  "+Inf"};

void lw_metrics_init(struct lw_metrics *m, size_t num_slots)
{
    memset(m, 0, sizeof(*m));
    m->num_arms = num_slots ? num_slots : 1;
    m->arms = lw_calloc(m->num_arms, sizeof(*m->arms));
}

void lw_metrics_dispose(struct lw_metrics *m)
{
    free(m->arms);
    m->arms = NULL;
}

void lw_metrics_observe(struct lw_histogram *h, uint64_t us)
{
    size_t i = 0;
    while (i < LW_METRICS_BUCKETS - 1 && us > bounds_us[i]) {
        i++;
    }
    lw_metrics_add(&h->buckets[i], 1);
    lw_metrics_add(&h->sum_us, us);
    lw_metrics_add(&h->count, 1);
}

static uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* The arm of slot as Prometheus labels. */
static void labels(const struct lw_config *cfg, size_t slot, char *buf, size_t len)
{
    for (size_t i = 0; i < cfg->num_experiments; i++) {
        const struct lw_config_experiment *e = &cfg->experiments[i];
        if (slot >= e->first_slot && slot < e->first_slot + e->num_arms) {
            snprintf(buf, len, "experiment=\"%s\",arm=\"%s\"", e->name, e->arms[slot - e->first_slot].name);
            return;
        }
    }
    snprintf(buf, len, "experiment=\"-\",arm=\"-\"");
}

/* The process start: written once by the main thread before the workers start, read only after. */
static uint64_t start_time;

void lw_metrics_set_start_time(uint64_t unix_s)
{
    start_time = unix_s;
}

struct counter {
    const char *name, *help;
    size_t offset;
};

static const struct counter counters[] = {
    {"lowat_requests_total", "Client requests (not pushes) by experiment arm, including those lowat answers itself.",
     offsetof(struct lw_arm_metrics, requests)},
    {"lowat_pushes_promised_total", "PUSH_PROMISEs sent.", offsetof(struct lw_arm_metrics, pushes_promised)},
    {"lowat_pushes_cancelled_total", "Promised streams the client reset (e.g. CANCEL: it had the resource).",
     offsetof(struct lw_arm_metrics, pushes_cancelled)},
    {"lowat_pushed_bytes_total", "Body bytes of pushed responses sent.", offsetof(struct lw_arm_metrics, pushed_bytes)},
    {"lowat_pushed_then_requested_total", "Client requests for a path already pushed on the connection.",
     offsetof(struct lw_arm_metrics, pushed_then_requested)},
    {"lowat_hints_forwarded_total", "103 Early Hints sent to clients (forwarded or learned).",
     offsetof(struct lw_arm_metrics, hints_forwarded)},
};

static void render_histogram(const struct lw_config *cfg, const struct lw_metrics *const *workers, size_t n,
                             struct lw_buf *out, const char *name, const char *help, size_t offset)
{
    lw_buf_appendf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t slot = 0; slot < cfg->num_metric_slots; slot++) {
        char lab[256];
        labels(cfg, slot, lab, sizeof(lab));
        struct lw_histogram sum;
        memset(&sum, 0, sizeof(sum));
        for (size_t w = 0; w < n; w++) {
            const struct lw_histogram *h = (const void *)((const char *)&workers[w]->arms[slot] + offset);
            for (size_t b = 0; b < LW_METRICS_BUCKETS; b++) {
                sum.buckets[b] += load(&h->buckets[b]);
            }
            sum.sum_us += load(&h->sum_us);
            sum.count += load(&h->count);
        }
        uint64_t cumulative = 0;
        for (size_t b = 0; b < LW_METRICS_BUCKETS; b++) {
            cumulative += sum.buckets[b];
            lw_buf_appendf(out, "%s_bucket{%s,le=\"%s\"} %llu\n", name, lab, bounds_text[b],
                           (unsigned long long)cumulative);
        }
        /* The count is the +Inf bucket, not the separately read counter: a scrape racing the
         * workers then still agrees with itself. */
        lw_buf_appendf(out, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, lab, (double)sum.sum_us / 1e6, name, lab,
                       (unsigned long long)cumulative);
    }
}

void lw_metrics_render(const struct lw_config *cfg, const struct lw_metrics *const *workers, size_t n,
                       struct lw_buf *out)
{
    for (size_t c = 0; c < LW_ARRAY_LEN(counters); c++) {
        lw_buf_appendf(out, "# HELP %s %s\n# TYPE %s counter\n", counters[c].name, counters[c].help, counters[c].name);
        for (size_t slot = 0; slot < cfg->num_metric_slots; slot++) {
            uint64_t total = 0;
            for (size_t w = 0; w < n; w++) {
                total += load((const uint64_t *)((const char *)&workers[w]->arms[slot] + counters[c].offset));
            }
            char lab[256];
            labels(cfg, slot, lab, sizeof(lab));
            lw_buf_appendf(out, "%s{%s} %llu\n", counters[c].name, lab, (unsigned long long)total);
        }
    }
    render_histogram(cfg, workers, n, out, "lowat_parent_ttfb_seconds",
                     "Client request received to response HEADERS sent, for non-push responses.",
                     offsetof(struct lw_arm_metrics, parent_ttfb));
    render_histogram(cfg, workers, n, out, "lowat_page_complete_seconds",
                     "Client request received to the last byte of its response and of all its pushes.",
                     offsetof(struct lw_arm_metrics, page_complete));
    uint64_t accepted = 0, open = 0;
    for (size_t w = 0; w < n; w++) {
        accepted += load(&workers[w]->connections_accepted);
        open += load(&workers[w]->connections_open);
    }
    lw_buf_appendf(out,
                   "# HELP lowat_start_time_seconds When this lowat started (Unix time): a change means a restart.\n"
                   "# TYPE lowat_start_time_seconds gauge\nlowat_start_time_seconds %llu\n",
                   (unsigned long long)start_time);
    lw_buf_appendf(out,
                   "# HELP lowat_connections_accepted_total Client connections accepted.\n"
                   "# TYPE lowat_connections_accepted_total counter\nlowat_connections_accepted_total %llu\n"
                   "# HELP lowat_connections_open Client connections open.\n"
                   "# TYPE lowat_connections_open gauge\nlowat_connections_open %llu\n",
                   (unsigned long long)accepted, (unsigned long long)open);
}
