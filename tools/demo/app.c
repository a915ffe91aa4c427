/* SPDX-License-Identifier: MIT */
/*
 * lowat-demo-app: the small HTTP/1.1 app server that tools/demo.sh and the integration tests
 * put behind lowat. Its page is slow on purpose: it first sends a 103 Early Hints naming the
 * page's stylesheet, script and logo, then "thinks" for --think-ms before the 200, which is
 * the idle time a proxy can fill by pushing or hinting those assets. It is written on
 * libevent core rather than evhttp because evhttp cannot send a 1xx response. Requests on a
 * connection are answered strictly in order (pipelining is tolerated, never reordered), and
 * request bodies are read and thrown away: Content-Length bodies are skipped, chunked bodies
 * are decoded so the connection stays in step with the client. Responses to a request that
 * had a body carry X-Request-Body-Bytes, so a test can check that a body arrived whole.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "common/err.h"
#include "common/http1.h"
#include "common/list.h"
#include "common/log.h"
#include "common/mem.h"

#ifndef LW_VERSION
#define LW_VERSION "dev"
#endif

#define LW_DEMO_MAX_HEAD_BYTES 16384
#define LW_DEMO_MAX_HEADERS 64
/* Pipelined requests wait while this much of our output is unsent: a client that sends
 * without reading cannot make us buffer without bound. */
#define LW_DEMO_MAX_UNSENT_BYTES (256 * 1024)
#define LW_DEMO_IDLE_TIMEOUT_S 60
/* After the last response, how long we keep reading and discarding what the client still
 * sends before closing: closing with unread input would make the kernel send a RST, which
 * can destroy the response before the client has read it. */
#define LW_DEMO_LINGER_MS 2000
/* On SIGTERM/SIGINT, how long in-flight exchanges may take before we exit anyway. */
#define LW_DEMO_DRAIN_MS 3000
#define LW_DEMO_MAX_THINK_MS 600000

enum lw_demo_kind {
    LW_DEMO_KIND_PAGE,
    LW_DEMO_KIND_ASSET,
    LW_DEMO_KIND_HEALTH,
    LW_DEMO_KIND_NOT_FOUND,
    LW_DEMO_KIND_NOT_ALLOWED,
    LW_DEMO_KIND_BAD_REQUEST,
    LW_DEMO_KIND_TOO_LARGE,
};

enum lw_demo_state {
    LW_DEMO_READ_HEAD,    /* waiting for the next request head */
    LW_DEMO_READ_BODY,    /* skipping a Content-Length body */
    LW_DEMO_READ_CHUNKED, /* decoding and discarding a chunked body */
    LW_DEMO_THINK,        /* the page's 200 waits for the think timer (after the 103, if any) */
    LW_DEMO_FLUSH,        /* last response queued; wait until it is written */
    LW_DEMO_LINGER,       /* write side shut; discarding input until EOF or the linger timer */
    LW_DEMO_DEAD,         /* closed; freed by the reaper */
};

struct lw_demo_asset {
    const char *path;
    const char *content_type;
    const char *body;
};

struct lw_demo_app {
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *sigterm_ev;
    struct event *sigint_ev;
    struct event *reap_ev;  /* frees closed connections outside their own callbacks */
    struct event *drain_ev; /* graceful stop deadline */
    struct lw_list live;    /* struct lw_demo_conn.link */
    struct lw_list dead;
    const char *listen;
    uint32_t think_ms;
    bool early_hints;
    bool quiet;
    bool stopping;
};

/* The request being answered on a connection. */
struct lw_demo_exchange {
    char line[320]; /* "GET /path HTTP/1.1" for the log line, truncated */
    enum lw_demo_kind kind;
    const struct lw_demo_asset *asset;
    const char *reason; /* why a request was rejected (static) */
    char etag[20];      /* of the asset: "\"0123456789abcdef\"" */
    bool is_head;
    bool keep_alive;
    bool http10;
    bool not_modified;
    bool has_body;
    bool hinted;         /* a 103 went out first */
    uint64_t body_left;  /* Content-Length bytes still to skip */
    uint64_t body_bytes; /* request body bytes received */
    struct lw_http1_chunked chunked;
};

struct lw_demo_conn {
    struct lw_demo_app *app;
    struct lw_list link; /* in app->live, then app->dead */
    struct bufferevent *bev;
    struct event *timer; /* think time, then linger */
    enum lw_demo_state state;
    bool read_eof;
    char peer[64];
    struct lw_demo_exchange ex;
};

static const char page_html[] =
    "<!doctype html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>lowat demo</title>\n"
    "<link rel=\"stylesheet\" href=\"/static/style.css\">\n"
    "<script src=\"/static/app.js\" defer></script>\n"
    "</head>\n"
    "<body>\n"
    "<header>\n"
    "<img src=\"/static/logo.svg\" alt=\"lowat logo\" width=\"72\" height=\"72\">\n"
    "<h1>lowat demo</h1>\n"
    "</header>\n"
    "<main>\n"
    "<p class=\"lead\">lowat is a TLS-terminating HTTP/2 reverse proxy that keeps the unsent part of each "
    "socket's send buffer tiny, so a response the browser asks for late still reaches it about one round trip "
    "later, and that can push or hint a page's assets while the application is still working on the page.</p>\n"
    "<p>This page came from <code>lowat-demo-app</code>, an HTTP/1.1 server behind lowat. It answered with a "
    "<code>103 Early Hints</code> naming its stylesheet, script and logo, then took a moment to &ldquo;think"
    "&rdquo; before sending this page. The table below shows when each resource arrived.</p>\n"
    "<figure>\n"
    "<img src=\"/static/photo.svg\" alt=\"A lake at dusk below two mountains\" width=\"640\" height=\"360\">\n"
    "<figcaption>A picture, so there is something else to fetch.</figcaption>\n"
    "</figure>\n"
    "<h2>How this page loaded</h2>\n"
    "<table id=\"timing\">\n"
    "<thead><tr><th>resource</th><th>protocol</th><th>start (ms)</th><th>end (ms)</th><th>bytes</th></tr></thead>\n"
    "<tbody></tbody>\n"
    "</table>\n"
    "<noscript><p>The timing table needs JavaScript.</p></noscript>\n"
    "</main>\n"
    "</body>\n"
    "</html>\n";

static const char style_css[] =
    ":root { --ink: #1d2a36; --water: #2f6f9f; --paper: #f7f9fb; }\n"
    "* { box-sizing: border-box; }\n"
    "body { margin: 0; font: 16px/1.5 system-ui, -apple-system, \"Segoe UI\", sans-serif; color: var(--ink);\n"
    "       background: var(--paper); }\n"
    "header { display: flex; align-items: center; gap: 1rem; padding: 1rem 2rem; background: #fff;\n"
    "         border-bottom: 3px solid var(--water); }\n"
    "h1 { margin: 0; font-size: 1.8rem; }\n"
    "main { max-width: 48rem; margin: 0 auto; padding: 1rem 2rem 3rem; }\n"
    ".lead { font-size: 1.15rem; }\n"
    "code { font-family: ui-monospace, Menlo, Consolas, monospace; background: #e8eef3; padding: 0 .25em;\n"
    "       border-radius: 3px; }\n"
    "figure { margin: 1.5rem 0; }\n"
    "figure img { width: 100%; height: auto; border-radius: 6px; }\n"
    "figcaption { font-size: .9rem; color: #5b6b78; }\n"
    "table { width: 100%; border-collapse: collapse; font-size: .9rem; }\n"
    "th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #d5dde4; }\n"
    "td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }\n";

static const char app_js[] =
    "// Fills the timing table from the Navigation and Resource Timing APIs once the page has loaded.\n"
    "'use strict';\n"
    "window.addEventListener('load', () => {\n"
    "  const body = document.querySelector('#timing tbody');\n"
    "  if (!body || !window.performance || !performance.getEntriesByType) {\n"
    "    return;\n"
    "  }\n"
    "  const entries = performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'));\n"
    "  for (const e of entries) {\n"
    "    const row = document.createElement('tr');\n"
    "    const cells = [new URL(e.name).pathname, e.nextHopProtocol || '?', e.startTime.toFixed(1),\n"
    "                   e.responseEnd.toFixed(1), e.transferSize === undefined ? '?' : String(e.transferSize)];\n"
    "    cells.forEach((text, i) => {\n"
    "      const cell = document.createElement('td');\n"
    "      cell.textContent = text;\n"
    "      if (i >= 2) {\n"
    "        cell.className = 'num';\n"
    "      }\n"
    "      row.appendChild(cell);\n"
    "    });\n"
    "    body.appendChild(row);\n"
    "  }\n"
    "});\n";

static const char logo_svg[] =
    "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 64 64\" width=\"64\" height=\"64\">\n"
    "<title>lowat</title>\n"
    "<circle cx=\"32\" cy=\"32\" r=\"30\" fill=\"#ffffff\" stroke=\"#2f6f9f\" stroke-width=\"4\"/>\n"
    "<path d=\"M6 40 q6.5 -6 13 0 t13 0 t13 0 t13 0 v12 a30 30 0 0 1 -52 0 z\" fill=\"#2f6f9f\"/>\n"
    "<text x=\"32\" y=\"32\" text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"18\" font-weight=\"bold\"\n"
    "      fill=\"#1d2a36\">lw</text>\n"
    "</svg>\n";

static const char photo_svg[] =
    "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 640 360\" width=\"640\" height=\"360\">\n"
    "<title>A lake at dusk below two mountains</title>\n"
    "<defs>\n"
    "<linearGradient id=\"sky\" x1=\"0\" y1=\"0\" x2=\"0\" y2=\"1\">\n"
    "<stop offset=\"0\" stop-color=\"#23395d\"/><stop offset=\".6\" stop-color=\"#c86b6b\"/>\n"
    "<stop offset=\"1\" stop-color=\"#f3b562\"/>\n"
    "</linearGradient>\n"
    "<linearGradient id=\"lake\" x1=\"0\" y1=\"0\" x2=\"0\" y2=\"1\">\n"
    "<stop offset=\"0\" stop-color=\"#e9a65a\"/><stop offset=\".3\" stop-color=\"#3d5a80\"/>\n"
    "<stop offset=\"1\" stop-color=\"#1b2a41\"/>\n"
    "</linearGradient>\n"
    "<radialGradient id=\"sun\"><stop offset=\"0\" stop-color=\"#fff4d6\"/>\n"
    "<stop offset=\"1\" stop-color=\"#f7c873\" stop-opacity=\"0\"/></radialGradient>\n"
    "</defs>\n"
    "<rect width=\"640\" height=\"240\" fill=\"url(#sky)\"/>\n"
    "<circle cx=\"420\" cy=\"205\" r=\"70\" fill=\"url(#sun)\"/>\n"
    "<circle cx=\"420\" cy=\"205\" r=\"26\" fill=\"#fff1c9\"/>\n"
    "<path d=\"M0 240 L120 120 L190 175 L300 70 L430 200 L500 150 L640 240 Z\" fill=\"#3b3355\"/>\n"
    "<path d=\"M300 70 L330 100 L315 98 L300 112 L285 97 L272 99 Z\" fill=\"#e8e4f0\"/>\n"
    "<path d=\"M120 120 L140 140 L128 139 L118 150 L108 138 L100 140 Z\" fill=\"#e8e4f0\"/>\n"
    "<path d=\"M0 240 L80 200 L160 230 L260 190 L380 235 L520 205 L640 240 Z\" fill=\"#2a2640\"/>\n"
    "<rect y=\"240\" width=\"640\" height=\"120\" fill=\"url(#lake)\"/>\n"
    "<g stroke=\"#fff1c9\" stroke-width=\"2\" stroke-linecap=\"round\" opacity=\".7\">\n"
    "<line x1=\"380\" y1=\"252\" x2=\"460\" y2=\"252\"/><line x1=\"395\" y1=\"264\" x2=\"445\" y2=\"264\"/>\n"
    "<line x1=\"405\" y1=\"276\" x2=\"435\" y2=\"276\"/><line x1=\"412\" y1=\"288\" x2=\"428\" y2=\"288\"/>\n"
    "</g>\n"
    "<g stroke=\"#8fb3d9\" stroke-width=\"1.5\" fill=\"none\" opacity=\".5\">\n"
    "<path d=\"M40 300 q20 -6 40 0 t40 0\"/><path d=\"M200 320 q20 -6 40 0 t40 0\"/>\n"
    "<path d=\"M480 330 q20 -6 40 0 t40 0\"/><path d=\"M90 345 q20 -6 40 0 t40 0\"/>\n"
    "</g>\n"
    "</svg>\n";

static const struct lw_demo_asset assets[] = {
    {"/static/style.css", "text/css; charset=utf-8", style_css},
    {"/static/app.js", "text/javascript; charset=utf-8", app_js},
    {"/static/logo.svg", "image/svg+xml", logo_svg},
    {"/static/photo.svg", "image/svg+xml", photo_svg},
};

/* The page's preload links, sent in the 103 and again in the 200 (RFC 8297 section 2: the
 * final response repeats what a client may act on, since a 103 carries no guarantee). */
static const char *const page_links[] = {
    "</static/style.css>; rel=preload; as=style",
    "</static/app.js>; rel=preload; as=script",
    "</static/logo.svg>; rel=preload; as=image",
    /* The page's large hero image: announced like the rest, as sites preload their LCP image. */
    "</static/photo.svg>; rel=preload; as=image",
};

static const char health_body[] = "ok";
static const char not_found_body[] = "not found\n";
static const char not_allowed_body[] = "method not allowed\n";

static void process(struct lw_demo_conn *c);
static void conn_close(struct lw_demo_conn *c);

static const char *status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 103:
        return "Early Hints";
    case 200:
        return "OK";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    default:
        return "Unknown";
    }
}

/* FNV-1a: enough to tell two versions of a built-in asset apart. */
static void make_etag(const char *body, char *out, size_t out_len)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (const unsigned char *p = (const unsigned char *)body; *p != '\0'; p++) {
        h = (h ^ *p) * 0x100000001b3u;
    }
    snprintf(out, out_len, "\"%016" PRIx64 "\"", h);
}

static const struct evbuffer *output_of(const struct lw_demo_conn *c)
{
    return bufferevent_get_output(c->bev);
}

static bool output_full(const struct lw_demo_conn *c)
{
    return evbuffer_get_length(output_of(c)) > LW_DEMO_MAX_UNSENT_BYTES;
}

/* Status line, Date and Server: the start of every response head. */
static void add_status(struct evbuffer *out, int status)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    /* The C locale (we never call setlocale) gives the English names RFC 9110 asks for. */
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: lowat-demo-app\r\n", status, status_reason(status),
                        date);
}

static void add_page_links(struct evbuffer *out)
{
    for (size_t i = 0; i < LW_ARRAY_LEN(page_links); i++) {
        evbuffer_add_printf(out, "Link: %s\r\n", page_links[i]);
    }
}

static void write_early_hints(struct lw_demo_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    /* No Date or Server here: a 103 only needs what the client may act on early. */
    evbuffer_add_printf(out, "HTTP/1.1 103 %s\r\n", status_reason(103));
    add_page_links(out);
    evbuffer_add(out, "\r\n", 2);
    c->ex.hinted = true;
}

/* Which status, headers and body a routed exchange gets. */
static int pick_response(const struct lw_demo_exchange *ex, const char **ctype, const char **body)
{
    *ctype = "text/plain; charset=utf-8";
    *body = NULL;
    switch (ex->kind) {
    case LW_DEMO_KIND_PAGE:
        *ctype = "text/html; charset=utf-8";
        *body = page_html;
        return 200;
    case LW_DEMO_KIND_ASSET:
        *ctype = ex->asset->content_type;
        *body = ex->not_modified ? NULL : ex->asset->body;
        return ex->not_modified ? 304 : 200;
    case LW_DEMO_KIND_HEALTH:
        *body = health_body;
        return 200;
    case LW_DEMO_KIND_NOT_FOUND:
        *body = not_found_body;
        return 404;
    case LW_DEMO_KIND_NOT_ALLOWED:
        *body = not_allowed_body;
        return 405;
    case LW_DEMO_KIND_BAD_REQUEST:
        return 400;
    case LW_DEMO_KIND_TOO_LARGE:
        return 431;
    }
    return 500;
}

/* Queue the final response; returns its status and sets *body_len to the body bytes sent. */
static int write_final(struct lw_demo_conn *c, size_t *body_len)
{
    struct lw_demo_exchange *ex = &c->ex;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    const char *ctype, *body;
    int status = pick_response(ex, &ctype, &body);
    char error_body[160];
    if (status == 400 || status == 431) {
        snprintf(error_body, sizeof(error_body), "%s: %s\n", status_reason(status),
                 ex->reason ? ex->reason : "malformed request");
        body = error_body;
        ex->keep_alive = false; /* after a bad head there is no telling where the next request starts */
    }
    if (c->app->stopping) {
        ex->keep_alive = false;
    }
    size_t len = body ? strlen(body) : 0;
    add_status(out, status);
    if (status != 304) {
        evbuffer_add_printf(out, "Content-Type: %s\r\nContent-Length: %zu\r\n", ctype, len);
    }
    if (ex->kind == LW_DEMO_KIND_PAGE) {
        add_page_links(out);
        evbuffer_add_printf(out, "Cache-Control: no-cache\r\n");
    } else if (ex->kind == LW_DEMO_KIND_ASSET) {
        evbuffer_add_printf(out, "Cache-Control: max-age=3600\r\nETag: %s\r\n", ex->etag);
    } else if (ex->kind == LW_DEMO_KIND_NOT_ALLOWED) {
        evbuffer_add_printf(out, "Allow: GET, HEAD\r\n");
    }
    if (ex->has_body) {
        evbuffer_add_printf(out, "X-Request-Body-Bytes: %" PRIu64 "\r\n", ex->body_bytes);
    }
    if (!ex->keep_alive) {
        evbuffer_add_printf(out, "Connection: close\r\n");
    } else if (ex->http10) {
        evbuffer_add_printf(out, "Connection: keep-alive\r\n");
    }
    evbuffer_add(out, "\r\n", 2);
    if (ex->is_head) {
        len = 0;
    }
    if (len > 0) {
        evbuffer_add(out, body, len);
    }
    *body_len = len;
    return status;
}

/* The socket's write side is done; read what the client still sends until it closes. */
static void begin_linger(struct lw_demo_conn *c)
{
    if (c->read_eof) {
        conn_close(c);
        return;
    }
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    c->state = LW_DEMO_LINGER;
    struct timeval tv = {LW_DEMO_LINGER_MS / 1000, (LW_DEMO_LINGER_MS % 1000) * 1000};
    evtimer_add(c->timer, &tv);
    evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
    bufferevent_enable(c->bev, EV_READ);
}

static void close_after_flush(struct lw_demo_conn *c)
{
    c->state = LW_DEMO_FLUSH;
    if (evbuffer_get_length(output_of(c)) == 0) {
        begin_linger(c);
    }
}

static void finish_exchange(struct lw_demo_conn *c)
{
    size_t body_len = 0;
    int status = write_final(c, &body_len);
    if (!c->app->quiet) {
        lw_log_info("%s \"%s\" %d %zu%s", c->peer, c->ex.line, status, body_len, c->ex.hinted ? " (after 103)" : "");
    }
    if (c->ex.keep_alive) {
        c->state = LW_DEMO_READ_HEAD;
    } else {
        close_after_flush(c);
    }
}

/* The request (head and body) is in: answer it now, or, for the page, after the think time.
 * The page takes think_ms with or without a 103, so runs with and without hints compare
 * the same app. */
static void respond(struct lw_demo_conn *c)
{
    if (c->ex.kind == LW_DEMO_KIND_PAGE) {
        if (c->app->early_hints) {
            write_early_hints(c);
        }
        c->state = LW_DEMO_THINK;
        struct timeval tv = {c->app->think_ms / 1000, (c->app->think_ms % 1000) * 1000};
        evtimer_add(c->timer, &tv);
        return;
    }
    finish_exchange(c);
}

/* The path of a request-target: origin-form as is, absolute-form without scheme and
 * authority, both without the query. */
static void target_path(const char *target, size_t len, const char **path, size_t *path_len)
{
    const char *p = target, *end = target + len;
    const char *scheme_end = memmem(target, len, "://", 3);
    if (len > 0 && target[0] != '/' && scheme_end != NULL) {
        p = memchr(scheme_end + 3, '/', (size_t)(end - (scheme_end + 3)));
        if (p == NULL) {
            *path = "/";
            *path_len = 1;
            return;
        }
    }
    const char *q = memchr(p, '?', (size_t)(end - p));
    *path = p;
    *path_len = (size_t)((q ? q : end) - p);
}

static bool path_is(const char *path, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(path, want, len) == 0;
}

/* Does an If-None-Match value name our ETag (weak comparison, RFC 9110 section 13.1.2)? */
static bool etag_matches(const char *value, size_t len, const char *etag)
{
    if (len == 1 && value[0] == '*') {
        return true;
    }
    return memmem(value, len, etag, strlen(etag)) != NULL;
}

static void route(struct lw_demo_exchange *ex, const struct lw_http1_request *req)
{
    const char *path;
    size_t path_len;
    target_path(req->target, req->target_len, &path, &path_len);
    /* Methods are case-sensitive (RFC 9110 section 9.1). */
    bool get = req->method_len == 3 && memcmp(req->method, "GET", 3) == 0;
    ex->is_head = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    if (path_is(path, path_len, "/") || path_is(path, path_len, "/index.html")) {
        ex->kind = LW_DEMO_KIND_PAGE;
    } else if (path_is(path, path_len, "/healthz")) {
        ex->kind = LW_DEMO_KIND_HEALTH;
    } else {
        ex->kind = LW_DEMO_KIND_NOT_FOUND;
        for (size_t i = 0; i < LW_ARRAY_LEN(assets); i++) {
            if (path_is(path, path_len, assets[i].path)) {
                ex->kind = LW_DEMO_KIND_ASSET;
                ex->asset = &assets[i];
            }
        }
    }
    if (ex->kind != LW_DEMO_KIND_NOT_FOUND && !get && !ex->is_head) {
        ex->kind = LW_DEMO_KIND_NOT_ALLOWED;
        return;
    }
    if (ex->kind != LW_DEMO_KIND_ASSET) {
        return;
    }
    make_etag(ex->asset->body, ex->etag, sizeof(ex->etag));
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct lw_http1_header *h = &req->headers[i];
        if (lw_http1_name_eq(h->name, h->name_len, "if-none-match") && etag_matches(h->value, h->value_len, ex->etag)) {
            ex->not_modified = true;
        }
    }
}

/* Start an exchange from a parsed head; the views in req die when the input is drained. */
static void begin_exchange(struct lw_demo_conn *c, const struct lw_http1_request *req)
{
    struct lw_demo_exchange *ex = &c->ex;
    memset(ex, 0, sizeof(*ex));
    int target_len = (int)LW_MIN(req->target_len, (size_t)200);
    snprintf(ex->line, sizeof(ex->line), "%.*s %.*s%s HTTP/1.%d", (int)LW_MIN(req->method_len, (size_t)32), req->method,
             target_len, req->target, target_len < (int)req->target_len ? "..." : "", req->minor_version);
    ex->keep_alive = req->keep_alive;
    ex->http10 = req->minor_version == 0;
    route(ex, req);
    if (req->body == LW_HTTP1_BODY_LENGTH) {
        ex->has_body = true;
        ex->body_left = req->content_length;
    } else if (req->body == LW_HTTP1_BODY_CHUNKED) {
        ex->has_body = true;
        lw_http1_chunked_init(&ex->chunked);
    }
}

static void reject(struct lw_demo_conn *c, enum lw_demo_kind kind, const char *reason)
{
    memset(&c->ex, 0, sizeof(c->ex));
    snprintf(c->ex.line, sizeof(c->ex.line), "-");
    c->ex.kind = kind;
    c->ex.reason = reason;
    finish_exchange(c);
}

/* Parse the next request head; returns true if the connection moved on. */
static bool read_head(struct lw_demo_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t avail = evbuffer_get_length(in);
    if (avail == 0 || output_full(c)) {
        return false;
    }
    size_t len = LW_MIN(avail, (size_t)LW_DEMO_MAX_HEAD_BYTES);
    const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
    struct lw_http1_request req;
    struct lw_http1_header headers[LW_DEMO_MAX_HEADERS];
    const char *reason = NULL;
    ssize_t n = lw_http1_parse_request(p, len, &req, headers, LW_ARRAY_LEN(headers), LW_DEMO_MAX_HEAD_BYTES, &reason);
    if (n == LW_EINCOMPLETE) {
        return false;
    }
    if (n < 0) {
        evbuffer_drain(in, avail);
        reject(c, n == LW_ELIMIT ? LW_DEMO_KIND_TOO_LARGE : LW_DEMO_KIND_BAD_REQUEST, reason);
        return true;
    }
    begin_exchange(c, &req);
    bool expect_continue = req.expect_continue && req.minor_version == 1;
    evbuffer_drain(in, (size_t)n);
    if (c->ex.body_left > 0) {
        c->state = LW_DEMO_READ_BODY;
    } else if (req.body == LW_HTTP1_BODY_CHUNKED) {
        c->state = LW_DEMO_READ_CHUNKED;
    } else {
        respond(c);
        return true;
    }
    if (expect_continue) {
        evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 %s\r\n\r\n", status_reason(100));
    }
    return true;
}

static bool read_body(struct lw_demo_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t n = (size_t)LW_MIN((uint64_t)evbuffer_get_length(in), c->ex.body_left);
    evbuffer_drain(in, n);
    c->ex.body_left -= n;
    c->ex.body_bytes += n;
    if (c->ex.body_left > 0) {
        return false;
    }
    respond(c);
    return true;
}

static bool read_chunked(struct lw_demo_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0) {
            return false;
        }
        const char *p = (const char *)evbuffer_pullup(in, -1);
        const char *data = NULL, *reason = NULL;
        size_t data_len = 0;
        ssize_t n = lw_http1_chunked_decode(&c->ex.chunked, p, avail, &data, &data_len, &reason);
        if (n < 0) {
            evbuffer_drain(in, avail);
            reject(c, n == LW_ELIMIT ? LW_DEMO_KIND_TOO_LARGE : LW_DEMO_KIND_BAD_REQUEST, reason);
            return true;
        }
        evbuffer_drain(in, (size_t)n);
        c->ex.body_bytes += data_len;
        if (lw_http1_chunked_is_done(&c->ex.chunked)) {
            respond(c);
            return true;
        }
        if (n == 0) {
            return false;
        }
    }
}

/* Read only when the next step needs input, so pipelined requests wait in the kernel while
 * we think or while our output is backed up. */
static void update_reading(struct lw_demo_conn *c)
{
    bool want = false;
    switch (c->state) {
    case LW_DEMO_READ_HEAD:
        want = !output_full(c);
        break;
    case LW_DEMO_READ_BODY:
    case LW_DEMO_READ_CHUNKED:
    case LW_DEMO_LINGER:
        want = true;
        break;
    default:
        break;
    }
    if (want && !c->read_eof) {
        bufferevent_enable(c->bev, EV_READ);
    } else {
        bufferevent_disable(c->bev, EV_READ);
    }
}

/* After the client closed its side: a partial request can never complete. */
static void handle_eof(struct lw_demo_conn *c)
{
    switch (c->state) {
    case LW_DEMO_READ_HEAD:
        if (!output_full(c)) {
            close_after_flush(c);
        }
        break;
    case LW_DEMO_READ_BODY:
    case LW_DEMO_READ_CHUNKED:
    case LW_DEMO_LINGER:
        conn_close(c);
        break;
    default:
        break; /* THINK and FLUSH finish first, then come back here */
    }
}

/* Between requests with nothing queued either way, or only lingering after the last one. */
static bool is_idle(struct lw_demo_conn *c)
{
    if (c->state == LW_DEMO_LINGER) {
        return true;
    }
    return c->state == LW_DEMO_READ_HEAD && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0 &&
           evbuffer_get_length(output_of(c)) == 0;
}

static void process(struct lw_demo_conn *c)
{
    bool moved = true;
    while (moved) {
        switch (c->state) {
        case LW_DEMO_READ_HEAD:
            moved = read_head(c);
            break;
        case LW_DEMO_READ_BODY:
            moved = read_body(c);
            break;
        case LW_DEMO_READ_CHUNKED:
            moved = read_chunked(c);
            break;
        case LW_DEMO_LINGER:
            evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
            moved = false;
            break;
        default:
            moved = false;
            break;
        }
    }
    if (c->read_eof) {
        handle_eof(c);
    }
    if (c->app->stopping && is_idle(c)) {
        conn_close(c); /* nothing left to answer */
    }
    if (c->state != LW_DEMO_DEAD) {
        update_reading(c);
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    process(arg);
}

/* Called when the output has drained (the low watermark is 0). */
static void on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct lw_demo_conn *c = arg;
    if (c->state == LW_DEMO_FLUSH) {
        begin_linger(c);
        return;
    }
    process(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct lw_demo_conn *c = arg;
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
        c->read_eof = true;
        process(c);
        return;
    }
    conn_close(c); /* a socket error, or idle past LW_DEMO_IDLE_TIMEOUT_S */
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lw_demo_conn *c = arg;
    if (c->state == LW_DEMO_THINK) {
        finish_exchange(c);
        process(c);
    } else if (c->state == LW_DEMO_LINGER) {
        conn_close(c);
    }
}

static void free_conn(struct lw_demo_conn *c)
{
    bufferevent_free(c->bev);
    event_free(c->timer);
    free(c);
}

/* Close now; the memory goes at the reaper's turn, never inside one of c's own callbacks. */
static void conn_close(struct lw_demo_conn *c)
{
    struct lw_demo_app *app = c->app;
    if (c->state == LW_DEMO_DEAD) {
        return;
    }
    c->state = LW_DEMO_DEAD;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    evtimer_del(c->timer);
    lw_list_remove(&c->link);
    lw_list_push_back(&app->dead, &c->link);
    event_active(app->reap_ev, EV_TIMEOUT, 0);
    if (app->stopping && lw_list_is_empty(&app->live)) {
        event_base_loopexit(app->base, NULL);
    }
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lw_demo_app *app = arg;
    struct lw_list *it, *tmp;
    LW_LIST_FOREACH_SAFE(it, tmp, &app->dead)
    {
        lw_list_remove(it);
        free_conn(LW_LIST_ENTRY(it, struct lw_demo_conn, link));
    }
}

static void format_addr(const struct sockaddr *sa, socklen_t len, char *out, size_t out_len)
{
    char host[NI_MAXHOST], port[NI_MAXSERV];
    if (getnameinfo(sa, len, host, sizeof(host), port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, out_len, "?");
        return;
    }
    snprintf(out, out_len, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)l;
    struct lw_demo_app *app = arg;
    struct lw_demo_conn *c = lw_calloc(1, sizeof(*c));
    c->app = app;
    format_addr(sa, (socklen_t)salen, c->peer, sizeof(c->peer));
    /* The 103 and small pipelined responses must not wait for an ACK (Nagle). */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->bev = bufferevent_socket_new(app->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        lw_log_error("cannot set up a connection from %s", c->peer);
        evutil_closesocket(fd);
        free(c);
        return;
    }
    c->timer = evtimer_new(app->base, on_timer, c);
    lw_list_push_back(&app->live, &c->link);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    struct timeval idle = {LW_DEMO_IDLE_TIMEOUT_S, 0};
    bufferevent_set_timeouts(c->bev, &idle, NULL);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    int e = EVUTIL_SOCKET_ERROR();
    lw_log_warn("accept: %s", evutil_socket_error_to_string(e));
}

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lw_demo_app *app = arg;
    lw_log_info("drain timeout: closing the remaining connections");
    event_base_loopexit(app->base, NULL);
}

/* First signal: stop accepting and let in-flight exchanges finish. Second: leave now. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct lw_demo_app *app = arg;
    if (app->stopping) {
        event_base_loopexit(app->base, NULL);
        return;
    }
    app->stopping = true;
    lw_log_info("%s: stopping", strsignal((int)sig));
    evconnlistener_disable(app->listener);
    if (lw_list_is_empty(&app->live)) {
        event_base_loopexit(app->base, NULL);
        return;
    }
    struct timeval tv = {LW_DEMO_DRAIN_MS / 1000, (LW_DEMO_DRAIN_MS % 1000) * 1000};
    evtimer_add(app->drain_ev, &tv);
    struct lw_list *it, *tmp;
    LW_LIST_FOREACH_SAFE(it, tmp, &app->live)
    {
        process(LW_LIST_ENTRY(it, struct lw_demo_conn, link)); /* closes the idle ones */
    }
}

/* "HOST:PORT" or "[V6]:PORT" into a socket address. */
static int parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || colon == spec || colon[1] == '\0') {
        return LW_EINVAL;
    }
    char host[256];
    size_t host_len = (size_t)(colon - spec);
    if (spec[0] == '[' && host_len >= 2 && spec[host_len - 1] == ']') {
        spec++;
        host_len -= 2;
    }
    if (host_len >= sizeof(host)) {
        return LW_EINVAL;
    }
    memcpy(host, spec, host_len);
    host[host_len] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL) {
        return LW_EINVAL;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* Returns a listening socket, or -1 with errno set. */
static int open_listener(const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, sa, len) < 0 || listen(fd, 511) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: lowat-demo-app [--listen HOST:PORT] [--think-ms N] [--no-early-hints] [--quiet]\n"
               "\n"
               "A small HTTP/1.1 app server to put behind lowat. GET / answers with a 103 Early Hints\n"
               "naming the page's assets, waits --think-ms, then sends the page; /static/* serves the\n"
               "assets, /healthz answers \"ok\", anything else is 404.\n"
               "\n"
               "  --listen HOST:PORT  address to listen on (default 127.0.0.1:8080; port 0 picks one)\n"
               "  --think-ms N        time between the 103 and the page, in ms (default 200)\n"
               "  --no-early-hints    no 103 first (the page still takes --think-ms)\n"
               "  --quiet             no log line per request (the \"listening on\" line still goes out)\n"
               "  --help, --version\n");
}

/* Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, struct lw_demo_app *app)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"think-ms", required_argument, NULL, 't'},
        {"no-early-hints", no_argument, NULL, 'n'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        unsigned long v;
        switch (opt) {
        case 'l':
            app->listen = optarg;
            break;
        case 't':
            errno = 0;
            v = strtoul(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-' || v > LW_DEMO_MAX_THINK_MS) {
                fprintf(stderr, "lowat-demo-app: --think-ms wants 0..%d, not '%s'\n", LW_DEMO_MAX_THINK_MS, optarg);
                return 2;
            }
            app->think_ms = (uint32_t)v;
            break;
        case 'n':
            app->early_hints = false;
            break;
        case 'q':
            app->quiet = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("lowat-demo-app %s\n", LW_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lowat-demo-app: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return -1;
}

/* Bind, and log the address actually bound (port 0 becomes a real port). */
static int start_listening(struct lw_demo_app *app)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    if (parse_listen(app->listen, &ss, &len) != 0) {
        lw_log_error("--listen wants HOST:PORT (or [V6ADDR]:PORT), not '%s'", app->listen);
        return LW_EINVAL;
    }
    int fd = open_listener((struct sockaddr *)&ss, len);
    if (fd < 0) {
        lw_log_error("cannot listen on %s: %s", app->listen, strerror(errno));
        return LW_EIO;
    }
    app->listener = evconnlistener_new(app->base, on_accept, app, LEV_OPT_CLOSE_ON_FREE, 0, fd);
    if (app->listener == NULL) {
        close(fd);
        lw_log_error("cannot listen on %s", app->listen);
        return LW_EIO;
    }
    evconnlistener_set_error_cb(app->listener, on_accept_error);
    len = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &len);
    char where[96];
    format_addr((struct sockaddr *)&ss, len, where, sizeof(where));
    lw_log_info("listening on %s (think %" PRIu32 " ms, early hints %s)", where, app->think_ms,
                app->early_hints ? "on" : "off");
    return 0;
}

static void dispose_app(struct lw_demo_app *app)
{
    struct lw_list *it, *tmp;
    LW_LIST_FOREACH_SAFE(it, tmp, &app->live)
    {
        lw_list_remove(it);
        free_conn(LW_LIST_ENTRY(it, struct lw_demo_conn, link));
    }
    on_reap(-1, 0, app);
    if (app->listener != NULL) {
        evconnlistener_free(app->listener);
    }
    event_free(app->sigterm_ev);
    event_free(app->sigint_ev);
    event_free(app->reap_ev);
    event_free(app->drain_ev);
    event_base_free(app->base);
    libevent_global_shutdown();
}

int main(int argc, char **argv)
{
    struct lw_demo_app app = {.listen = "127.0.0.1:8080", .think_ms = 200, .early_hints = true};
    int rc = parse_args(argc, argv, &app);
    if (rc >= 0) {
        return rc;
    }
    /* A client that goes away mid-write is an EPIPE to handle, not a signal that kills us. */
    signal(SIGPIPE, SIG_IGN);
    lw_list_init(&app.live);
    lw_list_init(&app.dead);
    /* The think time is the figure benchmarks compare against: a precise timer (timerfd)
     * instead of epoll's millisecond timeout, which rounds the wait up by up to 1 ms. */
    struct event_config *ecfg = event_config_new();
    if (ecfg != NULL) {
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER);
        app.base = event_base_new_with_config(ecfg);
        event_config_free(ecfg);
    }
    if (app.base == NULL) {
        lw_log_error("cannot create an event base");
        return 1;
    }
    app.sigterm_ev = evsignal_new(app.base, SIGTERM, on_signal, &app);
    app.sigint_ev = evsignal_new(app.base, SIGINT, on_signal, &app);
    app.reap_ev = event_new(app.base, -1, 0, on_reap, &app);
    app.drain_ev = evtimer_new(app.base, on_drain_deadline, &app);
    evsignal_add(app.sigterm_ev, NULL);
    evsignal_add(app.sigint_ev, NULL);
    rc = start_listening(&app) == 0 ? 0 : 1;
    if (rc == 0) {
        event_base_dispatch(app.base);
        lw_log_info("stopped");
    }
    dispose_app(&app);
    return rc;
}
