/* SPDX-License-Identifier: MIT */
/*
 * lowat's configuration: a YAML file (libyaml) turned into an immutable, validated,
 * reference-counted snapshot. The loader collects every problem as "file:line:col: message"
 * before failing, so an operator fixes a file in one pass. With no file, the embedded
 * default (config/default.yaml, compiled in) is used.
 *
 * Durations are written "250ms", "10s", "5m", "1h" (a bare integer is seconds); sizes
 * "512", "64k", "1m" (bytes, KiB, MiB). See config/examples/ for annotated files.
 */
#ifndef LW_CONFIG_CONFIG_H
#define LW_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"

struct lw_config_cert {
    char *cert_file; /* PEM chain, leaf first */
    char *key_file;  /* PEM private key */
};

/* Writing for responsiveness (TCP_NOTSENT_LOWAT + TCP_INFO-sized writes): see proxy/sock.h. */
struct lw_config_responsiveness {
    bool enabled;            /* default true */
    uint32_t min_rtt_ms;     /* below this RTT the optimization steps aside (throughput first); default 20ms */
    uint32_t max_cwnd;       /* step aside when cwnd exceeds this many segments; 0 (default): never */
    uint32_t max_loop_share; /* percent: step aside when the worker's loop time exceeds this share of the RTT; default 10 */
    bool queue_limit;        /* keep bytes in flight near the path's rate x minimum RTT; default true */
};

struct lw_config_listener {
    char *host;    /* literal address to bind: "127.0.0.1", "::1", "0.0.0.0", "::" */
    uint16_t port; /* 0: any free port (tests) */
    bool tls;      /* false: cleartext HTTP/1.1, h2c prior knowledge and Upgrade: h2c */
    struct lw_config_cert *certs; /* first is the default; others are chosen by SNI */
    size_t num_certs;             /* 0 with tls: a self-signed certificate is generated at start */
    bool session_tickets;         /* default true */
    uint32_t ticket_rotation_ms;  /* default 1h: a new encryption key this often, the old ones decrypt for 2 periods */
    struct lw_config_responsiveness responsiveness;
    uint32_t line;                /* where it was declared, for messages */
};

struct lw_config_member {
    char *host;    /* literal address or a name resolved with c-ares */
    uint16_t port;
    uint32_t weight; /* default 1 */
};

struct lw_config_backend {
    char *name;
    struct lw_config_member *members;
    size_t num_members;
    uint32_t max_connections;     /* per member per worker; default 128 */
    uint32_t queue;               /* requests waiting for a connection, per backend per worker; default 1024 */
    uint32_t connect_timeout_ms;  /* default 3s */
    /* Request fully sent -> response head, between body reads, and between writes of a request body; default 60s. */
    uint32_t response_timeout_ms;
    uint32_t idle_timeout_ms;     /* idle keep-alive connection is closed after; default 30s */
    uint32_t resolve_interval_ms; /* re-resolve names whose answer has no TTL (e.g. /etc/hosts); default 30s */
    uint32_t max_fails;           /* consecutive failures that mark a member down; default 3 */
    uint32_t fail_backoff_ms;     /* how long a down member is skipped; default 10s */
    uint32_t retries;             /* tries on another member for requests that never reached one; default 2 */
};

/* What the push engine does with a backend's preload links (Link: rel=preload on its 103
 * interim responses and final responses). */
enum lw_config_push_policy {
    LW_CONFIG_PUSH_NONE = 0,   /* nothing: 103s are not forwarded, nothing is pushed */
    LW_CONFIG_PUSH_HINTS,      /* forward the first 103 of a response (browsers act on the first only) */
    LW_CONFIG_PUSH_PUSH,       /* turn preload links into HTTP/2 server pushes */
    LW_CONFIG_PUSH_PUSH_HINTS, /* both */
    LW_CONFIG_PUSH_LEARNED_HINTS, /* hints, and a 103 from remembered preload links the moment a
                                   * navigation arrives, before the backend answers */
    LW_CONFIG_PUSH_CACHE_AWARE,   /* push, skipping what the client's digest cookie says it has */
};

/* Hints are forwarded under these policies. */
static inline bool lw_config_push_hints(enum lw_config_push_policy p)
{
    return p == LW_CONFIG_PUSH_HINTS || p == LW_CONFIG_PUSH_PUSH_HINTS || p == LW_CONFIG_PUSH_LEARNED_HINTS;
}

struct lw_config_push {
    enum lw_config_push_policy policy; /* default hints */
    bool h1_hints;                     /* forward 103s to HTTP/1.1 clients too; default false */
    uint32_t max_per_request;          /* pushes one response may start; default 16 */
    uint32_t max_per_connection;       /* pushes one connection may carry; default 100 */
};

/* An experiment splits clients into weighted, sticky arms, each with its own push policy. A
 * client keeps its arm through a cookie; without one its arm is a hash of its address with
 * the seed, so every lowat of a fleet assigns alike. */
struct lw_config_arm {
    char *name; /* a token, unique within the experiment */
    uint32_t weight;
    enum lw_config_push_policy policy;
};

struct lw_config_experiment {
    char *name;   /* a token, unique */
    uint64_t seed;
    char *cookie; /* the cookie that holds the arm: "lw_exp_" + name */
    struct lw_config_arm *arms;
    size_t num_arms;
    uint32_t total_weight; /* the arms' weights summed: 1 to UINT32_MAX, the loader refuses more */
    size_t first_slot;     /* metric slot of the first arm; slot 0 is "no experiment" */
};

struct lw_config_route {
    char *host;        /* NULL: any host; "example.com" exact; "*.example.com" any subdomain */
    char *path_prefix; /* default "/" */
    struct lw_config_backend *backend; /* borrowed from lw_config.backends */
    struct lw_config_push push;
    const struct lw_config_experiment *experiment; /* NULL, or its arms' policies replace push.policy */
};

struct lw_config_limits {
    uint32_t max_header_bytes;       /* request head (h1) / decoded header list (h2); default 64k */
    uint32_t max_headers;            /* header fields per message; default 100 */
    uint32_t max_concurrent_streams; /* h2 SETTINGS_MAX_CONCURRENT_STREAMS; default 100 */
    uint32_t client_idle_timeout_ms; /* a client connection with no exchange in flight; default 60s */
    uint32_t client_header_timeout_ms; /* h1: first byte -> complete request head (slowloris); default 10s */
    uint32_t max_buffered_bytes;     /* body bytes buffered per exchange and direction before backpressure; default 64k */
};

struct lw_config {
    int _refs;     /* atomically counted: see lw_config_ref/unref */
    char *source;  /* the file name, or "<default>" */
    uint32_t workers; /* 0: one per CPU */
    enum lw_log_level log_level; /* default info */
    char *error_log;  /* NULL: stderr */
    char *access_log; /* NULL: stdout; "off": none */
    uint32_t drain_timeout_ms; /* graceful stop: how long in-flight exchanges may finish; default 10s */
    struct lw_config_limits limits;
    struct lw_config_listener *listeners;
    size_t num_listeners;
    struct lw_config_backend *backends;
    size_t num_backends;
    struct lw_config_route *routes; /* in file order; first match wins */
    size_t num_routes;
    struct lw_config_experiment *experiments;
    size_t num_experiments;
    size_t num_metric_slots; /* 1 + the arms of every experiment */
    char *admin_host;        /* NULL: no admin listener (the default) */
    uint16_t admin_port;
};

/* Error messages collected by a load, each "file:line:col: message". */
struct lw_config_errors {
    char **msgs;
    size_t count;
};

void lw_config_errors_dispose(struct lw_config_errors *errs);

/*
 * Load and validate a YAML file. On success returns 0 and *out holds a snapshot with one
 * reference. On failure returns LW_EINVAL (or LW_EIO if the file cannot be read, with a
 * message saying why) and errs holds every message; *out is NULL.
 * errs is overwritten at the start (dispose it after every load) and may be NULL. Relative
 * certificate and key paths are resolved against the file's directory.
 */
int lw_config_load_file(const char *path, struct lw_config **out, struct lw_config_errors *errs);

/* The same from a string; name is used in messages (e.g. "<default>"). */
int lw_config_load_string(const char *text, size_t len, const char *name, struct lw_config **out,
                          struct lw_config_errors *errs);

/* The embedded default configuration text (config/default.yaml). */
const char *lw_config_default_text(void);

/* Take and drop references; the last unref frees the snapshot. Thread-safe. */
struct lw_config *lw_config_ref(struct lw_config *c);
void lw_config_unref(struct lw_config *c);

/* Find the route for host (without port) and path; NULL if none matches. */
const struct lw_config_route *lw_config_route_match(const struct lw_config *c, const char *host, size_t host_len,
                                                    const char *path, size_t path_len);

#endif
