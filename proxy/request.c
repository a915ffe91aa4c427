/* SPDX-License-Identifier: MIT */
/*
 * The exchange between a frontend request and a backend HTTP/1.1 connection: routing,
 * rebuilding the request head for HTTP/1.1, framing the body, relaying the response, retries
 * of attempts that never reached a backend, and the bounded buffers in both directions.
 *
 * HTTP/1.1 framing is rebuilt from scratch, never copied: Content-Length and
 * Transfer-Encoding from the client are dropped and the proxy states the framing it will
 * actually send, which closes the h2->h1 and h1->h1 smuggling gaps.
 */
#include "proxy/request.h"

#include <stdlib.h>
#include <string.h>

#include "common/http1.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/clock.h"
#include "config/config.h"
#include "proxy/accesslog.h"
#include "proxy/backend.h"
#include "proxy/metrics.h"
#include "proxy/pool.h"
#include "proxy/push.h"
#include "proxy/worker.h"
#include "proxy/conn.h"

struct lw_request *lw_request_new(struct lw_conn *conn, const struct lw_request_front_ops *ops)
{
    struct lw_request *req = lw_mem_cache_get(&conn->worker->request_mem);
    /* Zero all but the arena, which lw_arena_init sets up: its inline first block is more
     * than half of the request and need not be zero. */
    size_t arena_at = offsetof(struct lw_request, arena), arena_end = arena_at + sizeof(req->arena);
    memset(req, 0, arena_at);
    memset((char *)req + arena_end, 0, sizeof(*req) - arena_end);
    req->worker = conn->worker;
    req->conn = conn;
    req->ops = ops;
    lw_list_init(&req->link);
    lw_list_init(&req->wait_link);
    lw_arena_init(&req->arena);
    lw_buf_init(&req->bhead);
    lw_buf_init(&req->bbody);
    lw_buf_init(&req->resp_body);
    req->content_length = -1;
    req->start_us = lw_time_mono_us();
    req->front_attached = true;
    req->tls = conn->tls;
    /* "1.2.3.4:5" or "[::1]:5": the ip part for X-Forwarded-For, found in the connection's
     * string with bounded searches: strrchr on the fresh copy took 2 % of the proxy's CPU
     * time in a profile of small requests. */
    const char *peer = conn->peer_str;
    size_t len = strnlen(peer, sizeof(req->client) - 1);
    const char *colon = memrchr(peer, ':', len);
    const char *bracket = memchr(peer, ']', len);
    memcpy(req->client, peer, len);
    req->client[len] = '\0';
    if (peer[0] == '[') {
        req->client_ip = req->client + 1;
        req->client_ip_len = bracket != NULL ? (size_t)(bracket - peer) - 1 : 0;
    } else {
        req->client_ip = req->client;
        req->client_ip_len = colon != NULL ? (size_t)(colon - peer) : len;
    }
    return req;
}

void lw_request_set_path(struct lw_request *req, const char *target, size_t len, bool add_slash)
{
    /* origin-form is absolute-path ["?" query] (RFC 9112 section 3.2.1); a fragment is the
     * client's own (RFC 9110 section 7.1) and clients strip it, but one that did not would have
     * it forwarded. Dropped here, where the path is set, so routes, pushes, the access log and
     * the backend all see the same path. The query may not hold "#" (RFC 3986 section 3.4). */
    const char *hash = memchr(target, '#', len);
    if (hash != NULL) {
        len = (size_t)(hash - target);
    }
    size_t lead = add_slash ? 1 : 0;
    char *path = lw_arena_alloc(&req->arena, lead + len + 1);
    if (add_slash) {
        path[0] = '/';
    }
    memcpy(path + lead, target, len);
    path[lead + len] = '\0';
    req->path = path;
    req->path_len = lead + len;
}

static void release_body(struct lw_request *req);

static void request_free(struct lw_reap *r)
{
    struct lw_request *req = LW_CONTAINER_OF(r, struct lw_request, reap);
    struct lw_worker *w = req->worker;
    lw_buf_dispose_cached(&req->bhead, &w->small_bufs);
    lw_buf_dispose(&req->bbody);
    lw_buf_dispose_cached(&req->resp_body, &w->small_bufs);
    lw_arena_dispose(&req->arena);
    lw_mem_cache_put(&w->request_mem, req);
}

static void maybe_free(struct lw_request *req)
{
    if (req->front_attached || req->back_attached || req->reap.free_fn != NULL) {
        return;
    }
    if (req->method != NULL) {
        lw_accesslog_write(req->worker->proxy->access_log_fd, req);
    }
    lw_worker_reap(req->worker, &req->reap, request_free);
}

static void lowercase_copy(char *dst, const char *src, size_t n)
{
    size_t i = 0;
    uint64_t w;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, src + i, 8);
        w = lw_http1_lower8(w);
        memcpy(dst + i, &w, 8);
    }
    if (i < n && n >= 8) {
        /* The tail as one word overlapping the last: lowercasing twice changes nothing. */
        memcpy(&w, src + n - 8, 8);
        w = lw_http1_lower8(w);
        memcpy(dst + n - 8, &w, 8);
        return;
    }
    for (; i < n; i++) {
        char c = src[i];
        dst[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
}

/* A header into the arena, name lowercased: one allocation holds both strings. */
static void copy_header(struct lw_arena *a, struct lw_hdr *h, const char *name, size_t name_len, const char *value,
                        size_t value_len)
{
    char *n = lw_arena_alloc(a, name_len + value_len + 2);
    lowercase_copy(n, name, name_len);
    n[name_len] = '\0';
    char *v = n + name_len + 1;
    memcpy(v, value, value_len);
    v[value_len] = '\0';
    h->name = n;
    h->name_len = name_len;
    h->value = v;
    h->value_len = value_len;
}

void lw_request_add_header(struct lw_request *req, const char *name, size_t name_len, const char *value,
                           size_t value_len)
{
    if (req->num_headers == req->cap_headers) {
        /* In the arena too: the old array is left behind, at most as large as the new one. */
        size_t cap = req->cap_headers ? req->cap_headers * 2 : 8;
        struct lw_hdr *a = lw_arena_alloc(&req->arena, cap * sizeof(*a));
        if (req->num_headers > 0) {
            memcpy(a, req->headers, req->num_headers * sizeof(*a));
        }
        req->headers = a;
        req->cap_headers = cap;
    }
    copy_header(&req->arena, &req->headers[req->num_headers++], name, name_len, value, value_len);
}

const struct lw_hdr *lw_request_find_header(const struct lw_request *req, const char *lower_name)
{
    size_t len = strlen(lower_name);
    for (size_t i = 0; i < req->num_headers; i++) {
        if (req->headers[i].name_len == len && memcmp(req->headers[i].name, lower_name, len) == 0) {
            return &req->headers[i];
        }
    }
    return NULL;
}

static bool name_is(const struct lw_hdr *h, const char *lower)
{
    size_t len = strlen(lower);
    return h->name_len == len && memcmp(h->name, lower, len) == 0;
}

/* The options of a message's Connection headers: the fields they name are hop-by-hop too
 * (RFC 9110 section 7.6.1). Gathered once per message, so that each field is compared with a
 * few tokens, length first, instead of every list being parsed again for every field. */
struct conn_option {
    const char *s;
    size_t len;
};

struct conn_options {
    size_t n, cap;
    struct conn_option *v;
    struct conn_option inline_v[8];
};

static void conn_options_init(struct conn_options *o)
{
    o->n = 0;
    o->cap = LW_ARRAY_LEN(o->inline_v);
    o->v = o->inline_v;
}

/* Add the elements of one Connection value (views into it: it must outlive o). Past the
 * inline room the list moves to the arena; its length is bounded by the header limits. */
static void conn_options_add(struct conn_options *o, struct lw_arena *a, const char *value, size_t len)
{
    const char *p = value;
    const char *elem;
    size_t elem_len;
    while (lw_http1_next_element(&p, value + len, &elem, &elem_len)) {
        if (elem_len == 0) {
            continue;
        }
        if (o->n == o->cap) {
            struct conn_option *v = lw_arena_alloc(a, 2 * o->cap * sizeof(*v));
            memcpy(v, o->v, o->n * sizeof(*v));
            o->v = v;
            o->cap *= 2;
        }
        o->v[o->n].s = elem;
        o->v[o->n++].len = elem_len;
    }
}

static bool same_ci(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x != y && ((x | 0x20) != (y | 0x20) || (unsigned char)((x | 0x20) - 'a') > 'z' - 'a')) {
            return false;
        }
    }
    return true;
}

static bool conn_options_list(const struct conn_options *o, const char *name, size_t len)
{
    for (size_t i = 0; i < o->n; i++) {
        if (o->v[i].len == len && same_ci(o->v[i].s, name, len)) {
            return true;
        }
    }
    return false;
}

static void append_joined(struct lw_buf *b, const struct lw_request *req, const char *name, const char *sep)
{
    bool first = true;
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct lw_hdr *h = &req->headers[i];
        if (name_is(h, name)) {
            if (!first) {
                lw_buf_append(b, sep, strlen(sep));
            }
            lw_buf_append(b, h->value, h->value_len);
            first = false;
        }
    }
}

static bool method_is(const struct lw_request *req, const char *m)
{
    size_t len = strlen(m);
    return req->method_len == len && memcmp(req->method, m, len) == 0;
}

/* What becomes of a client's header on its way to the backend. */
enum forward {
    FORWARD_COPY,   /* as is, unless the Connection header lists it */
    FORWARD_DROP,   /* hop-by-hop, or stated by the proxy itself */
    FORWARD_COOKIE, /* joined into one line */
    FORWARD_XFF,    /* X-Forwarded-For and Via: extended with this hop */
    FORWARD_VIA,
};

static enum forward forward_kind(const struct lw_hdr *h)
{
    const char *n = h->name; /* lowercase */
    switch (h->name_len) {
    case 3:
        return memcmp(n, "via", 3) == 0 ? FORWARD_VIA : FORWARD_COPY;
    case 4:
        return memcmp(n, "host", 4) == 0 ? FORWARD_DROP : FORWARD_COPY;
    case 6:
        if (memcmp(n, "cookie", 6) == 0) {
            return FORWARD_COOKIE;
        }
        return memcmp(n, "expect", 6) == 0 ? FORWARD_DROP : FORWARD_COPY;
    case 14:
        if (memcmp(n, "content-length", 14) == 0) {
            return FORWARD_DROP;
        }
        break;
    case 15:
        return memcmp(n, "x-forwarded-for", 15) == 0 ? FORWARD_XFF : FORWARD_COPY;
    case 17:
        if (memcmp(n, "x-forwarded-proto", 17) == 0) {
            return FORWARD_DROP;
        }
        break;
    default:
        break;
    }
    return n[0] == ':' || lw_http1_is_hop_by_hop(n, h->name_len) ? FORWARD_DROP : FORWARD_COPY;
}

/* The HTTP/1.1 request head for the backend. */
static void build_head(struct lw_request *req)
{
    struct lw_buf *b = &req->bhead;
    lw_buf_reserve_cached(b, &req->worker->small_bufs);
    lw_buf_append(b, req->method, req->method_len);
    lw_buf_append(b, " ", 1);
    lw_buf_append(b, req->path, req->path_len);
    lw_buf_append(b, " HTTP/1.1\r\nHost: ", 17);
    lw_buf_append(b, req->authority, req->authority_len);
    lw_buf_append(b, "\r\n", 2);
    bool cookie_done = false, has_xff = false, has_via = false;
    struct conn_options connection;
    conn_options_init(&connection);
    for (size_t i = 0; i < req->num_headers; i++) {
        if (name_is(&req->headers[i], "connection")) {
            conn_options_add(&connection, &req->arena, req->headers[i].value, req->headers[i].value_len);
        }
    }
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct lw_hdr *h = &req->headers[i];
        enum forward kind = forward_kind(h);
        has_xff |= kind == FORWARD_XFF;
        has_via |= kind == FORWARD_VIA;
        if (kind != FORWARD_COPY && kind != FORWARD_COOKIE) {
            continue;
        }
        if (conn_options_list(&connection, h->name, h->name_len)) {
            continue;
        }
        if (kind == FORWARD_COOKIE) {
            /* h2 splits cookies into fields; HTTP/1.1 wants one line (RFC 9113 8.2.3). */
            if (!cookie_done) {
                lw_buf_append(b, "cookie: ", 8);
                append_joined(b, req, "cookie", "; ");
                lw_buf_append(b, "\r\n", 2);
                cookie_done = true;
            }
            continue;
        }
        lw_buf_append(b, h->name, h->name_len);
        lw_buf_append(b, ": ", 2);
        lw_buf_append(b, h->value, h->value_len);
        lw_buf_append(b, "\r\n", 2);
    }
    lw_buf_append(b, "X-Forwarded-For: ", 17);
    if (has_xff) {
        append_joined(b, req, "x-forwarded-for", ", ");
        lw_buf_append(b, ", ", 2);
    }
    lw_buf_append(b, req->client_ip, req->client_ip_len);
    if (req->tls) {
        lw_buf_append(b, "\r\nX-Forwarded-Proto: https\r\nVia: ", 33);
    } else {
        lw_buf_append(b, "\r\nX-Forwarded-Proto: http\r\nVia: ", 32);
    }
    if (has_via) {
        append_joined(b, req, "via", ", ");
        lw_buf_append(b, ", ", 2);
    }
    /* The received-protocol of RFC 9110 section 7.6.3: "2", "1.1" or "1.0". */
    const char *version = strcmp(req->proto, "h2") == 0 ? "2" : req->proto + 5;
    lw_buf_append(b, version, strlen(version));
    lw_buf_append(b, " lowat\r\n", 8);
    if (req->expect_continue && req->has_body) {
        lw_buf_append(b, "Expect: 100-continue\r\n", 22);
    }
    if (req->has_body) {
        if (req->content_length >= 0) {
            lw_buf_append(b, "Content-Length: ", 16);
            lw_buf_append_u64(b, (uint64_t)req->content_length);
            lw_buf_append(b, "\r\n", 2);
        } else {
            lw_buf_append(b, "Transfer-Encoding: chunked\r\n", 28);
            req->body_chunked = true;
        }
    } else if (method_is(req, "POST") || method_is(req, "PUT") || method_is(req, "PATCH")) {
        lw_buf_append(b, "Content-Length: 0\r\n", 19);
    }
    lw_buf_append(b, "\r\n", 2);
    if (!req->has_body) {
        req->body_end = req->body_end_queued = true;
    }
}

/* A page: a response and its pushes, timed together until the last byte of all of them. */
struct lw_page {
    unsigned pending;
    bool aborted;
    uint64_t start_us;
    size_t slot;
};

struct lw_arm_metrics *lw_request_arm_metrics(struct lw_request *req)
{
    return &req->worker->metrics.arms[req->slot < req->worker->metrics.num_arms ? req->slot : 0];
}

const char *lw_request_cookie(const struct lw_request *req, const char *name, size_t *len)
{
    size_t name_len = strlen(name);
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct lw_hdr *h = &req->headers[i];
        if (!name_is(h, "cookie")) {
            continue;
        }
        /* cookie-string: name=value pairs separated by "; " (RFC 6265 section 4.2.1). */
        const char *p = h->value, *end = h->value + h->value_len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';')) {
                p++;
            }
            const char *pair_end = memchr(p, ';', (size_t)(end - p));
            if (pair_end == NULL) {
                pair_end = end;
            }
            if ((size_t)(pair_end - p) > name_len && memcmp(p, name, name_len) == 0 && p[name_len] == '=') {
                *len = (size_t)(pair_end - p) - name_len - 1;
                return p + name_len + 1;
            }
            p = pair_end;
        }
    }
    return NULL;
}

/* The arm named by the client's cookie for experiment e, or NULL. */
static const struct lw_config_arm *arm_from_cookie(const struct lw_request *req, const struct lw_config_experiment *e)
{
    size_t vlen;
    const char *v = lw_request_cookie(req, e->cookie, &vlen);
    for (size_t a = 0; v != NULL && a < e->num_arms; a++) {
        if (strlen(e->arms[a].name) == vlen && memcmp(e->arms[a].name, v, vlen) == 0) {
            return &e->arms[a];
        }
    }
    return NULL;
}

/* Sticky arms: the cookie when the client has one, else a hash of its address with the
 * experiment's seed (the same in every lowat of a fleet), then told to the client. */
static void assign_arm(struct lw_request *req, const struct lw_config_experiment *e)
{
    const struct lw_config_arm *arm = arm_from_cookie(req, e);
    if (arm == NULL && e->total_weight > 0) {
        uint64_t h = 1469598103934665603ull ^ e->seed;
        for (size_t i = 0; i < req->client_ip_len; i++) {
            h ^= (unsigned char)req->client_ip[i];
            h *= 1099511628211ull;
        }
        h ^= h >> 29; /* FNV's low bits mix poorly: fold the high ones in before the modulo */
        uint64_t pick = h % e->total_weight;
        for (size_t a = 0; a < e->num_arms && arm == NULL; a++) {
            if (pick < e->arms[a].weight) {
                arm = &e->arms[a];
            } else {
                pick -= e->arms[a].weight;
            }
        }
        if (arm != NULL) {
            size_t len = strlen(e->cookie) + strlen(arm->name) + 64;
            char *c = lw_arena_alloc(&req->arena, len);
            snprintf(c, len, "%s=%s; Path=/; Max-Age=2592000; SameSite=Lax%s", e->cookie, arm->name,
                     req->tls ? "; Secure" : "");
            req->arm_cookie = c;
        }
    }
    if (arm != NULL) {
        req->policy = arm->policy;
        req->slot = e->first_slot + (size_t)(arm - e->arms);
        req->experiment_name = e->name;
        req->arm_name = arm->name;
    }
}

void lw_request_note_response_head(struct lw_request *req)
{
    if (!req->is_push) {
        lw_metrics_observe(&lw_request_arm_metrics(req)->parent_ttfb, lw_time_mono_us() - req->start_us);
    }
}

void lw_request_adopt_push(struct lw_request *parent, struct lw_request *push)
{
    if (parent->page == NULL) {
        parent->page = lw_calloc(1, sizeof(*parent->page));
        parent->page->pending = 1;
        parent->page->start_us = parent->start_us;
        parent->page->slot = parent->slot;
    }
    parent->page->pending++;
    push->page = parent->page;
    push->slot = parent->slot;
    push->experiment_name = parent->experiment_name;
    push->arm_name = parent->arm_name;
    lw_metrics_add(&lw_request_arm_metrics(parent)->pushes_promised, 1);
}

/* A member of a page finished: the page is complete when the last one does. */
static void page_done(struct lw_request *req, bool aborted)
{
    struct lw_arm_metrics *m = lw_request_arm_metrics(req);
    if (req->is_push) {
        lw_metrics_add(&m->pushed_bytes, req->resp_sent);
    }
    struct lw_page *page = req->page;
    req->page = NULL;
    if (page == NULL) {
        if (!req->is_push && !aborted && req->method != NULL) {
            lw_metrics_observe(&m->page_complete, lw_time_mono_us() - req->start_us);
        }
        return;
    }
    if (aborted && !req->is_push) {
        page->aborted = true;
    }
    if (--page->pending == 0) {
        if (!page->aborted) {
            lw_metrics_observe(&req->worker->metrics.arms[page->slot].page_complete,
                               lw_time_mono_us() - page->start_us);
        }
        free(page);
    }
}

/* A top-level page load (Fetch metadata): what browsers act on 103s for. */
static bool is_navigation(const struct lw_request *req)
{
    const struct lw_hdr *mode = lw_request_find_header(req, "sec-fetch-mode");
    return method_is(req, "GET") && mode != NULL && mode->value_len == 8 && memcmp(mode->value, "navigate", 8) == 0;
}

/* A 103 from what the last responses for this page announced, before the backend answers. */
static void send_learned_hints(struct lw_request *req)
{
    struct lw_hdr found[LW_HINTS_MAX_LINKS];
    size_t n = lw_hints_cache_lookup(req->worker->hints, req->route, req->path, req->path_len,
                                     lw_time_mono_ms(), found, LW_HINTS_MAX_LINKS);
    if (n == 0) {
        return;
    }
    req->hints = lw_arena_alloc(&req->arena, n * sizeof(*req->hints));
    for (size_t i = 0; i < n; i++) {
        req->hints[i] = found[i];
        req->hints[i].value = lw_arena_strndup(&req->arena, found[i].value, found[i].value_len);
    }
    req->num_hints = n;
    req->interim_103 = 1; /* the backend's own 103, if any, is then not forwarded again */
    req->hints_learned = true;
    lw_log_debug("learned hints: 103 with %zu link(s) for %.*s", n, (int)req->path_len, req->path);
    req->ops->on_interim(req, 103);
}

/* Host without the port: "example.com:8443" -> "example.com", "[::1]:8443" -> "[::1]". */
static size_t host_len_of(const char *a, size_t len)
{
    if (len > 0 && a[0] == '[') {
        const char *end = memchr(a, ']', len);
        return end ? (size_t)(end - a) + 1 : len;
    }
    const char *colon = memchr(a, ':', len);
    return colon ? (size_t)(colon - a) : len;
}

/* Every client request is counted once, in the slot it ends up in: when dispatched to a
 * backend, or when lowat answers it itself. The histograms see every response, local ones
 * included, so a counter that missed those would not add up with them. */
static void count_request(struct lw_request *req)
{
    if (!req->is_push) {
        lw_metrics_add(&lw_request_arm_metrics(req)->requests, 1);
    }
}

void lw_request_refuse(struct lw_request *req, int status, const char *reason)
{
    req->status = status;
    req->fail_reason = reason;
    count_request(req);
    req->ops->on_error(req, status);
}

void lw_request_dispatch(struct lw_request *req)
{
    const struct lw_config *cfg = req->worker->config;
    size_t hlen = host_len_of(req->authority, req->authority_len);
    const struct lw_config_route *route =
        lw_config_route_match(cfg, req->authority, hlen, req->path, req->path_len);
    if (route == NULL) {
        lw_request_refuse(req, 404, "no route");
        return;
    }
    req->route = route;
    size_t index = (size_t)(route->backend - cfg->backends);
    req->upstream = req->worker->upstreams[index];
    req->policy = route->push.policy;
    if (!req->is_push && route->experiment != NULL) {
        assign_arm(req, route->experiment);
    }
    count_request(req);
    if (req->policy == LW_CONFIG_PUSH_LEARNED_HINTS && is_navigation(req)) {
        send_learned_hints(req);
    }
    build_head(req);
    req->back_attached = true;
    req->tries = 1;
    lw_upstream_acquire(req->upstream, req);
}

bool lw_request_body_is_full(const struct lw_request *req)
{
    return lw_buf_size(&req->bbody) >= req->worker->config->limits.max_buffered_bytes;
}

void lw_request_body(struct lw_request *req, const char *data, size_t len)
{
    req->body_in += len;
    if (!req->back_attached || req->resp_done) {
        return; /* nobody will read it: the exchange already ended */
    }
    if (req->body_chunked) {
        lw_buf_appendf(&req->bbody, "%zx\r\n", len);
        lw_buf_append(&req->bbody, data, len);
        lw_buf_append(&req->bbody, "\r\n", 2);
    } else {
        lw_buf_append(&req->bbody, data, len);
    }
    if (req->bconn != NULL) {
        lw_bconn_want_write(req->bconn);
    }
}

void lw_request_body_end(struct lw_request *req)
{
    req->body_end = true;
    if (req->body_end_queued) {
        return;
    }
    if (req->body_chunked) {
        lw_buf_append(&req->bbody, "0\r\n\r\n", 5);
    }
    req->body_end_queued = true;
    if (req->bconn != NULL) {
        lw_bconn_want_write(req->bconn);
    }
}

void lw_request_on_body_written(struct lw_request *req)
{
    if (req->conn != NULL && !lw_request_body_is_full(req)) {
        req->ops->on_request_body_drained(req);
    }
}

void lw_request_resp_consumed(struct lw_request *req)
{
    if (req->bconn != NULL && req->bconn->read_paused &&
        lw_buf_size(&req->resp_body) < req->worker->config->limits.max_buffered_bytes / 2) {
        lw_bconn_resume_read(req->bconn);
    }
}

void lw_request_front_done(struct lw_request *req, bool aborted)
{
    if (!req->front_attached) {
        return;
    }
    req->front_attached = false;
    req->conn = NULL;
    lw_list_remove(&req->link);
    page_done(req, aborted);
    /* Logged as the client's doing whether or not the backend was still at work: a response
     * the backend finished can still be cut short on its way out. A backend's failure is
     * logged as that instead. */
    req->aborted = req->aborted || (aborted && !req->resp_failed);
    if (aborted && req->back_attached) {
        lw_upstream_cancel_wait(req);
        if (req->bconn != NULL) {
            lw_bconn_abort(req->bconn);
        }
        req->back_attached = false;
    }
    maybe_free(req);
}

/* Keep the Link values of the first 103: what the frontend forwards and pushes from. */
static void record_hints(struct lw_request *req, const struct lw_http1_header *hs, size_t n)
{
    size_t links = 0;
    for (size_t i = 0; i < n; i++) {
        links += lw_http1_name_eq(hs[i].name, hs[i].name_len, "link");
    }
    if (links == 0) {
        return;
    }
    req->hints = lw_arena_alloc(&req->arena, links * sizeof(*req->hints));
    for (size_t i = 0; i < n; i++) {
        if (lw_http1_name_eq(hs[i].name, hs[i].name_len, "link")) {
            struct lw_hdr *h = &req->hints[req->num_hints++];
            h->name = "link";
            h->name_len = 4;
            h->value = lw_arena_strndup(&req->arena, hs[i].value, hs[i].value_len);
            h->value_len = hs[i].value_len;
        }
    }
}

void lw_request_on_backend_interim(struct lw_request *req, int status, const void *headers, size_t num_headers)
{
    if (req->conn == NULL || req->ops->on_interim == NULL) {
        return;
    }
    if (status == 103) {
        /* Browsers act on the first 103 of a response only; later ones are dropped. */
        if (req->interim_103++ > 0) {
            return;
        }
        record_hints(req, headers, num_headers);
        lw_log_debug("backend %s: 103 Early Hints with %zu link(s) for %.*s", req->member_name, req->num_hints,
                     (int)req->path_len, req->path);
        if (req->num_hints > 0) {
            req->ops->on_interim(req, status);
        }
        return;
    }
    if (status == 100) {
        req->ops->on_interim(req, status);
    }
}

void lw_request_on_backend_head(struct lw_request *req, int status, const void *headers, size_t num_headers,
                                bool has_length, uint64_t length)
{
    const struct lw_http1_header *hs = headers;
    req->status = status;
    /* The frontend states the length itself, as one number. A list of identical values
     * ("2, 2") is what RFC 9110 8.6 lets a recipient read as one, not what a sender may write
     * (1*DIGIT): HTTP/2 clients reset the stream on it. A HEAD or 304 response has no body and
     * its length describes the resource; a 204 may not state one (same section). */
    req->resp_has_length = has_length && status != 204;
    req->resp_length = length;
    /* + an arm cookie and a cache-digest cookie */
    req->rheaders = lw_arena_alloc(&req->arena, (num_headers + 2) * sizeof(*req->rheaders));
    req->num_rheaders = 0;
    struct conn_options connection;
    conn_options_init(&connection);
    for (size_t i = 0; i < num_headers; i++) {
        if (lw_http1_name_eq(hs[i].name, hs[i].name_len, "connection")) {
            conn_options_add(&connection, &req->arena, hs[i].value, hs[i].value_len);
        }
    }
    for (size_t i = 0; i < num_headers; i++) {
        const struct lw_http1_header *h = &hs[i];
        if (lw_http1_is_hop_by_hop(h->name, h->name_len) || lw_http1_name_eq(h->name, h->name_len, "content-length") ||
            conn_options_list(&connection, h->name, h->name_len)) {
            continue;
        }
        copy_header(&req->arena, &req->rheaders[req->num_rheaders++], h->name, h->name_len, h->value, h->value_len);
    }
    req->resp_head_done = true;
    if (req->is_push) {
        /* Cache-aware push keys resources by ETag: remember this one's. */
        for (size_t i = 0; i < req->num_rheaders; i++) {
            if (name_is(&req->rheaders[i], "etag")) {
                lw_etag_map_put(req->worker->etags, req->path, req->path_len, req->rheaders[i].value,
                                req->rheaders[i].value_len);
            }
        }
    }
    if (req->arm_cookie != NULL) {
        struct lw_hdr *o = &req->rheaders[req->num_rheaders++];
        o->name = "set-cookie";
        o->name_len = 10;
        o->value = req->arm_cookie;
        o->value_len = strlen(req->arm_cookie);
    }
    if (req->route != NULL && req->policy == LW_CONFIG_PUSH_LEARNED_HINTS && status == 200 &&
        is_navigation(req)) {
        lw_hints_cache_learn(req->worker->hints, req->route, req->path, req->path_len, req->rheaders,
                             req->num_rheaders, lw_time_mono_ms());
    }
    if (req->conn != NULL) {
        req->ops->on_response_head(req);
    }
}

bool lw_request_on_backend_body(struct lw_request *req, const char *data, size_t len)
{
    if (req->conn == NULL) {
        return true;
    }
    lw_buf_reserve_cached(&req->resp_body, &req->worker->small_bufs);
    lw_buf_append(&req->resp_body, data, len);
    req->ops->on_response_body(req);
    return lw_buf_size(&req->resp_body) < req->worker->config->limits.max_buffered_bytes;
}

char *lw_request_resp_reserve(struct lw_request *req, size_t want, size_t *room)
{
    struct lw_buf *b = &req->resp_body;
    if (req->conn == NULL) {
        return NULL;
    }
    size_t max = req->worker->config->limits.max_buffered_bytes;
    size_t used = lw_buf_size(b);
    size_t n = used < max ? LW_MIN(want, max - used) : 0;
    size_t whole = (used + n) / LW_REQUEST_RESP_UNIT * LW_REQUEST_RESP_UNIT;
    if (n == want) {
        /* All that is wanted fits: take it, tail and all. */
    } else if (whole > used) {
        n = whole - used;
    } else if (whole > 0) {
        n = 0; /* a whole unit waits already: what fits after it would be a short tail */
    }
    if (n > 0 && b->cap - b->len < n && used + LW_REQUEST_RESP_HEADROOM > b->off) {
        /* Making room would move more bytes than the read brings in: fill the tail only. */
        n = b->cap - b->len;
    }
    *room = n;
    if (n == 0) {
        return lw_buf_head(b);
    }
    return lw_buf_reserve_headroom(b, n, LW_REQUEST_RESP_HEADROOM);
}

bool lw_request_on_backend_body_read(struct lw_request *req, size_t len)
{
    lw_buf_commit(&req->resp_body, len);
    req->ops->on_response_body(req);
    return lw_buf_size(&req->resp_body) < req->worker->config->limits.max_buffered_bytes;
}

void lw_request_on_backend_done(struct lw_request *req)
{
    req->resp_done = true;
    req->back_attached = false;
    req->bconn = NULL;
    release_body(req); /* an early answer: the rest of the upload goes nowhere */
    if (req->conn != NULL) {
        req->ops->on_response_body(req);
    }
    maybe_free(req);
}

/* RFC 9110 section 9.2.2: a request that may have reached a backend is sent again only if
 * repeating it is harmless. */
static bool is_idempotent(const struct lw_request *req)
{
    return method_is(req, "GET") || method_is(req, "HEAD") || method_is(req, "OPTIONS") || method_is(req, "PUT") ||
           method_is(req, "DELETE") || method_is(req, "TRACE");
}

/* The backend side is done with the body: release what the frontend held back for it. */
static void release_body(struct lw_request *req)
{
    lw_buf_dispose(&req->bbody);
    if (!req->body_end && req->conn != NULL && req->ops->on_request_body_drained != NULL) {
        req->ops->on_request_body_drained(req);
    }
}

void lw_request_on_backend_error(struct lw_request *req, int status, const char *reason, bool retryable)
{
    req->bconn = NULL;
    req->fail_reason = reason;
    if (retryable && req->conn != NULL && !req->resp_head_done && req->body_out == 0 &&
        (req->bhead_sent == 0 || is_idempotent(req)) && req->tries <= (int)req->upstream->cfg->retries) {
        req->tries++;
        req->bhead_sent = 0;
        lw_upstream_acquire(req->upstream, req);
        return;
    }
    req->back_attached = false;
    release_body(req);
    if (req->conn != NULL) {
        if (!req->resp_head_done) {
            req->status = status;
            req->ops->on_error(req, status);
        } else {
            req->resp_failed = true;
            if (lw_buf_size(&req->resp_body) > 0) {
                /* What the backend sent before it failed goes out first: a download can resume
                 * from there. The frontend's writer cuts the response once it is written. */
                req->ops->on_response_body(req);
            } else {
                req->ops->on_error(req, 0);
            }
        }
    }
    maybe_free(req);
}

const char *lw_request_status_text(int status)
{
    static const struct {
        int status;
        const char *text;
    } texts[] = {
        {100, "Continue"}, {101, "Switching Protocols"}, {103, "Early Hints"}, {200, "OK"}, {201, "Created"},
        {202, "Accepted"}, {203, "Non-Authoritative Information"}, {204, "No Content"}, {205, "Reset Content"},
        {206, "Partial Content"}, {300, "Multiple Choices"}, {301, "Moved Permanently"}, {302, "Found"},
        {303, "See Other"}, {304, "Not Modified"}, {307, "Temporary Redirect"}, {308, "Permanent Redirect"},
        {400, "Bad Request"}, {401, "Unauthorized"}, {403, "Forbidden"}, {404, "Not Found"},
        {405, "Method Not Allowed"}, {406, "Not Acceptable"}, {408, "Request Timeout"}, {409, "Conflict"},
        {410, "Gone"}, {411, "Length Required"}, {412, "Precondition Failed"}, {413, "Content Too Large"},
        {414, "URI Too Long"}, {415, "Unsupported Media Type"}, {416, "Range Not Satisfiable"},
        {417, "Expectation Failed"}, {421, "Misdirected Request"}, {422, "Unprocessable Content"},
        {425, "Too Early"}, {426, "Upgrade Required"}, {428, "Precondition Required"}, {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"}, {500, "Internal Server Error"}, {501, "Not Implemented"},
        {502, "Bad Gateway"}, {503, "Service Unavailable"}, {504, "Gateway Timeout"},
        {505, "HTTP Version Not Supported"},
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        if (texts[i].status == status) {
            return texts[i].text;
        }
    }
    /* The reason phrase is optional (RFC 9112 section 4): none beats a wrong one. */
    return "";
}
