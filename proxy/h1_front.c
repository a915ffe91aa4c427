/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 frontend. Requests are parsed strictly (ambiguous framing is a 400 and a close,
 * never a guess), one exchange is in flight at a time, and the response is re-framed for
 * the client rather than copied, so what the client sees is always self-consistent.
 */
#include "proxy/h1_front.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/http1.h"
#include "common/log.h"
#include "common/mem.h"
#include "config/config.h"
#include "proxy/accesslog.h"
#include "proxy/conn.h"
#include "proxy/h2_front.h"
#include "proxy/request.h"
#include "proxy/worker.h"

enum h1_state {
    H1_HEAD,      /* waiting for a request head */
    H1_BODY,      /* reading the request body */
    H1_RESPONSE,  /* request read; the response is under way */
};

/* After the client's FIN, the socket is looked at this many times for a RST, the first this
 * long after the probe (see watch_closed_input), each wait twice the one before: about 5 s in
 * all, past a lost probe's retransmission on any path worth serving. */
#define RESET_CHECKS 8
#define RESET_CHECK_FIRST_MS 20

struct lw_h1_front {
    struct lw_conn *conn;
    struct lw_request *req;
    enum h1_state state;
    enum lw_http1_body body;
    uint64_t body_left;
    struct lw_http1_chunked chunked;
    int minor;
    bool keep_alive;
    bool head_sent;
    bool resp_chunked;  /* chunked toward the client */
    bool resp_close;    /* close-delimited toward the client */
    bool body_read;     /* the whole request body has been read */
    bool shutdown;
    bool head_started; /* bytes of the next request head have arrived */
    bool probe_sent;   /* the client's FIN (or close_notify) came: this request's RST checks began */
    uint8_t reset_checks; /* looks for a RST left (see watch_closed_input) */
    uint32_t reset_check_ms;
};

static const struct lw_request_front_ops h1_ops;

struct lw_h1_front *lw_h1_front_new(struct lw_conn *c)
{
    struct lw_h1_front *h = lw_calloc(1, sizeof(*h));
    h->conn = c;
    h->state = H1_HEAD;
    return h;
}

/* Answer with a status lowat makes itself and close the connection. Returns the body's length. */
static int reply_and_close(struct lw_h1_front *h, int status, const char *why)
{
    char buf[256];
    const char *text = lw_request_status_text(status);
    int blen = snprintf(NULL, 0, "%d %s\n", status, text);
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
                     "Connection: close\r\n\r\n%d %s\n",
                     status, text, blen, status, text);
    lw_log_info("%s: HTTP/1.1 request refused with %d: %s", h->conn->peer_str, status, why);
    lw_conn_send(h->conn, buf, (size_t)n);
    lw_conn_close_after_flush(h->conn);
    return blen;
}

/* reply_and_close for a head refused before it became a request, which would have written its
 * own access-log line: this writes one with what is known (r: the parsed head, or NULL). */
static void refuse(struct lw_h1_front *h, int status, const char *why, const struct lw_http1_request *r)
{
    int blen = reply_and_close(h, status, why);
    const char *proto = r == NULL ? NULL : r->minor_version == 1 ? "http/1.1" : "http/1.0";
    lw_accesslog_write_refusal(h->conn->worker->proxy->access_log_fd, h->conn->peer_str, proto, r ? r->method : NULL,
                               r ? r->method_len : 0, r ? r->target : NULL, r ? r->target_len : 0, status,
                               (uint64_t)blen);
}

static void h1_on_interim(struct lw_request *req, int status)
{
    struct lw_h1_front *h = req->conn->h1;
    /* 1xx responses exist only from HTTP/1.1 on (RFC 9110 section 15.2). */
    if (h->minor < 1 || h->head_sent) {
        return;
    }
    if (status == 100 && req->expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        lw_conn_send(req->conn, cont, sizeof(cont) - 1);
        lw_conn_want_flush(req->conn);
        return;
    }
    const struct lw_config_push *push = &req->route->push;
    if (status == 103 && push->h1_hints && lw_config_push_hints(req->policy)) {
        struct lw_buf b;
        lw_buf_init(&b);
        lw_buf_append(&b, "HTTP/1.1 103 Early Hints\r\n", 26);
        for (size_t i = 0; i < req->num_hints; i++) {
            lw_buf_append(&b, "Link: ", 6);
            lw_buf_append(&b, req->hints[i].value, req->hints[i].value_len);
            lw_buf_append(&b, "\r\n", 2);
        }
        lw_buf_append(&b, "\r\n", 2);
        lw_conn_send(req->conn, lw_buf_head(&b), lw_buf_size(&b));
        lw_buf_dispose(&b);
        req->hints_forwarded = true;
        lw_metrics_add(&lw_request_arm_metrics(req)->hints_forwarded, 1);
        lw_conn_want_flush(req->conn);
    }
}

static void h1_on_response_head(struct lw_request *req)
{
    struct lw_h1_front *h = req->conn->h1;
    struct lw_buf head;
    lw_buf_init(&head);
    bool bodyless = req->is_head || req->status == 204 || req->status == 304;
    if (!bodyless && !req->resp_has_length) {
        if (h->minor >= 1) {
            h->resp_chunked = true;
        } else {
            h->resp_close = true;
        }
    }
    if (h->resp_close || h->shutdown || h->conn->worker->draining) {
        h->keep_alive = false;
    }
    /* Until the body is read, the connection cannot carry another request reliably. */
    if (!h->body_read && h->state == H1_BODY) {
        h->keep_alive = false;
    }
    const char *text = lw_request_status_text(req->status);
    lw_buf_append(&head, h->minor >= 1 ? "HTTP/1.1 " : "HTTP/1.0 ", 9);
    lw_buf_append_u64(&head, (uint64_t)req->status);
    lw_buf_append(&head, " ", 1);
    lw_buf_append(&head, text, strlen(text));
    lw_buf_append(&head, "\r\n", 2);
    /* Reason phrases are optional and informational (RFC 9112 section 4); ours are standard. */
    for (size_t i = 0; i < req->num_rheaders; i++) {
        const struct lw_hdr *hd = &req->rheaders[i];
        lw_buf_append(&head, hd->name, hd->name_len);
        lw_buf_append(&head, ": ", 2);
        lw_buf_append(&head, hd->value, hd->value_len);
        lw_buf_append(&head, "\r\n", 2);
    }
    if (req->resp_has_length) {
        lw_buf_append(&head, "Content-Length: ", 16);
        lw_buf_append_u64(&head, req->resp_length);
        lw_buf_append(&head, "\r\n", 2);
    } else if (h->resp_chunked) {
        lw_buf_append(&head, "Transfer-Encoding: chunked\r\n", 28);
    }
    if (!h->keep_alive) {
        lw_buf_append(&head, "Connection: close\r\n", 19);
    } else if (h->minor == 0) {
        lw_buf_append(&head, "Connection: keep-alive\r\n", 24);
    }
    lw_buf_append(&head, "\r\n", 2);
    lw_request_note_response_head(req);
    lw_conn_send(req->conn, lw_buf_head(&head), lw_buf_size(&head));
    lw_buf_dispose(&head);
    h->head_sent = true;
    lw_conn_want_flush(req->conn);
}

static void h1_on_response_body(struct lw_request *req)
{
    lw_conn_want_flush(req->conn);
}

/* Mid-response: a truncated body and a connection closed without close_notify are the only
 * honest signal. Closed from the loop, not here: our caller may still be inside this frontend. */
static void cut_response(struct lw_h1_front *h, struct lw_request *req)
{
    lw_request_front_done(req, true);
    h->req = NULL;
    h->keep_alive = false;
    lw_conn_cut_after_flush(h->conn);
}

static void h1_on_error(struct lw_request *req, int status)
{
    struct lw_h1_front *h = req->conn->h1;
    if (status == 0 || h->head_sent) {
        cut_response(h, req);
        return;
    }
    static const struct lw_hdr ctype = {"content-type", 12, "text/plain; charset=utf-8", 25};
    lw_buf_dispose(&req->resp_body);
    lw_buf_appendf(&req->resp_body, "%d %s\n", status, lw_request_status_text(status));
    req->status = status;
    req->rheaders = lw_arena_alloc(&req->arena, sizeof(*req->rheaders));
    req->rheaders[0] = ctype;
    req->num_rheaders = 1;
    req->resp_has_length = true;
    req->resp_length = lw_buf_size(&req->resp_body);
    req->resp_done = true;
    h1_on_response_head(req);
}

static void h1_on_request_body_drained(struct lw_request *req)
{
    /* Even after the client's FIN: the rest of a pipelined body may wait in rbuf, and the
     * socket's end is met again only once that is read (lw_h1_front_on_eof). */
    lw_conn_resume_read(req->conn);
}

static const struct lw_request_front_ops h1_ops = {
    .on_interim = h1_on_interim,
    .on_response_head = h1_on_response_head,
    .on_response_body = h1_on_response_body,
    .on_error = h1_on_error,
    .on_request_body_drained = h1_on_request_body_drained,
};

/* Switch to h2c (RFC 7540 section 3.2) if the request asks for it and may. */
static bool try_upgrade(struct lw_h1_front *h, struct lw_request *req, const struct lw_http1_request *r)
{
    if (h->conn->tls || !r->upgrade || r->body != LW_HTTP1_BODY_NONE) {
        return false;
    }
    const struct lw_hdr *up = lw_request_find_header(req, "upgrade");
    const struct lw_hdr *settings = NULL;
    for (size_t i = 0; i < req->num_headers; i++) {
        if (lw_http1_name_eq(req->headers[i].name, req->headers[i].name_len, "http2-settings")) {
            if (settings != NULL) {
                return false; /* exactly one, or no upgrade (RFC 7540 section 3.2.1) */
            }
            settings = &req->headers[i];
        }
    }
    const struct lw_hdr *conn_hdr = lw_request_find_header(req, "connection");
    if (up == NULL || settings == NULL || conn_hdr == NULL || !lw_http1_has_token(up->value, up->value_len, "h2c") ||
        !lw_http1_has_token(conn_hdr->value, conn_hdr->value_len, "http2-settings")) {
        return false;
    }
    struct lw_h2_front *h2 = lw_h2_front_new_upgrade(h->conn, settings->value, settings->value_len, req);
    if (h2 == NULL) {
        return false;
    }
    static const char resp[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    lw_conn_send(h->conn, resp, sizeof(resp) - 1);
    h->req = NULL;
    struct lw_conn *c = h->conn;
    c->h1 = NULL;
    free(h);
    lw_conn_switch_to_h2(c, h2);
    req->proto = "h2";
    lw_request_dispatch(req);
    return true;
}

/*
 * absolute-form (RFC 9112 section 3.2.2): the target's authority wins over Host. Narrows
 * [*target, +*target_len) to what follows the authority (path, query, and any fragment, which
 * lw_request_set_path drops), sets *authority, and *add_slash when the path is empty. Returns
 * false when the request was refused. The target is not NUL-terminated: search within its
 * length only.
 */
static bool split_absolute_form(struct lw_h1_front *h, const struct lw_http1_request *r, const char **target,
                                size_t *target_len, const char **authority, size_t *authority_len, bool *add_slash)
{
    const char *t = *target;
    const char *end = t + *target_len;
    const char *scheme_end = *target_len > 7 ? memmem(t, *target_len, "://", 3) : NULL;
    if (scheme_end == NULL) {
        if (*target_len == 1 && t[0] == '*') {
            refuse(h, 400, "asterisk-form is not proxied", r);
        } else {
            refuse(h, 400, "invalid request-target", r);
        }
        return false;
    }
    /* The authority ends where the path, the query or a fragment begins (RFC 3986 section
     * 3.2). It routes the request as Host would, so it meets Host's rules: else characters
     * Host refuses would reach the backend, and a route for "*.example.com" would match
     * "evil.test#.example.com". Userinfo is refused by name: a sender must not send it
     * (RFC 9110 section 4.2.4), and "user@evil.test@host" names a host only by guessing. */
    const char *auth = scheme_end + 3;
    const char *auth_end = auth;
    while (auth_end < end && *auth_end != '/' && *auth_end != '?' && *auth_end != '#') {
        auth_end++;
    }
    size_t len = (size_t)(auth_end - auth);
    if (memchr(auth, '@', len) != NULL) {
        refuse(h, 400, "userinfo in request-target", r);
        return false;
    }
    /* An empty one is invalid too (RFC 9110 section 4.2.1), not a cue to use Host. */
    if (len == 0 || !lw_http1_is_host(auth, len)) {
        refuse(h, 400, "invalid authority in request-target", r);
        return false;
    }
    *authority = auth;
    *authority_len = len;
    /* "http://h" asks for "/", and "http://h?q" for "/?q" (RFC 9112 section 3.2.1). */
    *target = auth_end;
    *target_len = (size_t)(end - auth_end);
    *add_slash = *target_len == 0 || auth_end[0] != '/';
    return true;
}

/* Make a request from a parsed head. Returns false when the request was refused. */
static bool start_request(struct lw_h1_front *h, const struct lw_http1_request *r)
{
    struct lw_conn *c = h->conn;
    const char *target = r->target;
    size_t target_len = r->target_len;
    const char *authority = r->host;
    size_t authority_len = r->host_len;
    bool add_slash = false;
    /* A CONNECT's target (authority-form, or any other) is only logged: it gets a 501. */
    bool connect = r->method_len == 7 && memcmp(r->method, "CONNECT", 7) == 0;
    if (!connect && target_len > 0 && target[0] != '/' &&
        !split_absolute_form(h, r, &target, &target_len, &authority, &authority_len, &add_slash)) {
        return false;
    }
    if (authority == NULL || authority_len == 0) {
        refuse(h, 400, "missing Host", r);
        return false;
    }
    struct lw_request *req = lw_request_new(c, &h1_ops);
    req->front_state = h;
    req->proto = r->minor_version == 1 ? "http/1.1" : "http/1.0";
    req->method = lw_arena_strndup(&req->arena, r->method, r->method_len);
    req->method_len = r->method_len;
    req->is_head = r->method_len == 4 && memcmp(r->method, "HEAD", 4) == 0;
    lw_request_set_path(req, target, target_len, add_slash);
    req->authority = lw_arena_strndup(&req->arena, authority, authority_len);
    req->authority_len = authority_len;
    req->scheme = c->tls ? "https" : "http";
    for (size_t i = 0; i < r->num_headers; i++) {
        const struct lw_http1_header *hd = &r->headers[i];
        if (lw_http1_name_eq(hd->name, hd->name_len, "host")) {
            continue;
        }
        lw_request_add_header(req, hd->name, hd->name_len, hd->value, hd->value_len);
    }
    req->has_body = r->body != LW_HTTP1_BODY_NONE;
    req->content_length = r->body == LW_HTTP1_BODY_LENGTH ? (int64_t)r->content_length : -1;
    req->expect_continue = r->expect_continue;
    h->req = req;
    h->minor = r->minor_version;
    h->keep_alive = r->keep_alive && !h->shutdown;
    h->head_sent = false;
    h->resp_chunked = h->resp_close = false;
    h->body = r->body;
    h->body_left = r->content_length;
    h->body_read = r->body == LW_HTTP1_BODY_NONE;
    lw_http1_chunked_init(&h->chunked);
    h->state = h->body_read ? H1_RESPONSE : H1_BODY;
    h->head_started = false;
    h->probe_sent = false;
    h->reset_checks = 0;
    lw_conn_set_timeout(c, 0);
    if (connect) {
        /* What follows a CONNECT was meant for a tunnel, not read as requests: the connection
         * ends after the 501, and the 501 says so (its head is written now, from keep_alive),
         * so a client with a request pipelined behind knows it was not answered. Before any
         * Upgrade: a CONNECT must not reach a backend by way of h2c either. */
        h->keep_alive = false;
        lw_request_refuse(req, 501, "CONNECT is not proxied");
        return true;
    }
    if (r->upgrade && try_upgrade(h, req, r)) {
        return false;
    }
    lw_request_dispatch(req);
    return true;
}

/* Move request body bytes from rbuf to the request. */
static void read_body(struct lw_h1_front *h)
{
    struct lw_conn *c = h->conn;
    struct lw_request *req = h->req;
    while (h->state == H1_BODY && lw_buf_size(&c->rbuf) > 0) {
        if (req != NULL && lw_request_body_is_full(req)) {
            /* Until the backend takes some: a client that leaves meanwhile is seen then, its
             * FIN being behind the body bytes that wait in the kernel. */
            lw_conn_pause_read(c);
            return;
        }
        const char *data = lw_buf_head(&c->rbuf);
        size_t avail = lw_buf_size(&c->rbuf);
        if (h->body == LW_HTTP1_BODY_LENGTH) {
            size_t take = (size_t)LW_MIN((uint64_t)avail, h->body_left);
            if (req != NULL) {
                lw_request_body(req, data, take);
            }
            lw_buf_consume(&c->rbuf, take);
            h->body_left -= take;
            if (h->body_left == 0) {
                h->body_read = true;
            }
        } else {
            const char *chunk = NULL;
            size_t chunk_len = 0;
            const char *reason = NULL;
            ssize_t n = lw_http1_chunked_decode(&h->chunked, data, avail, &chunk, &chunk_len, &reason);
            if (n < 0) {
                if (req != NULL) {
                    req->status = 400; /* what the client is answered, for the access log */
                    lw_request_front_done(req, true);
                    h->req = NULL;
                }
                reply_and_close(h, 400, reason ? reason : "invalid chunked body");
                return;
            }
            if (chunk_len > 0 && req != NULL) {
                lw_request_body(req, chunk, chunk_len);
            }
            lw_buf_consume(&c->rbuf, (size_t)n);
            if (lw_http1_chunked_is_done(&h->chunked)) {
                h->body_read = true;
            } else if (n == 0) {
                return;
            }
        }
        if (h->body_read) {
            h->state = H1_RESPONSE;
            if (req != NULL) {
                lw_request_body_end(req);
            }
        }
    }
}

int lw_h1_front_process(struct lw_h1_front *h)
{
    struct lw_conn *c = h->conn;
    const struct lw_config_limits *lim = &c->worker->config->limits;
    while (!c->closed && !c->closing && c->h1 == h) {
        if (h->state == H1_BODY) {
            read_body(h);
            if (h->state == H1_BODY || c->closing) {
                break;
            }
            continue;
        }
        if (h->state == H1_RESPONSE) {
            /* One exchange at a time: a pipelined request waits in rbuf until the response is
             * done. Reading goes on meanwhile, or a client that leaves (FIN, RST) would not be
             * seen, and its exchange would hold a backend connection until the response
             * timeout. Up to a request head's worth, though: past that the bytes wait in the
             * kernel, so a client cannot grow our buffer without end (and its FIN, behind them,
             * is seen when the exchange ends). */
            if (lw_buf_size(&c->rbuf) >= lim->max_header_bytes) {
                lw_conn_pause_read(c);
            }
            break;
        }
        if (lw_buf_size(&c->rbuf) == 0) {
            break;
        }
        struct lw_http1_header headers[128];
        struct lw_http1_request r;
        const char *reason = NULL;
        size_t max_headers = LW_MIN((size_t)lim->max_headers, LW_ARRAY_LEN(headers));
        ssize_t n = lw_http1_parse_request(lw_buf_head(&c->rbuf), lw_buf_size(&c->rbuf), &r, headers, max_headers,
                                           lim->max_header_bytes, &reason);
        if (n == LW_EINCOMPLETE) {
            if (!h->head_started) {
                /* The clock for a whole head starts at its first byte (slowloris). */
                h->head_started = true;
                lw_conn_set_timeout(c, lim->client_header_timeout_ms);
            }
            break;
        }
        if (n == LW_ELIMIT) {
            refuse(h, 431, reason ? reason : "request head too large", NULL);
            break;
        }
        if (n < 0) {
            bool te = reason != NULL && strstr(reason, "Transfer-Encoding") != NULL && strstr(reason, "unsupported");
            refuse(h, te ? 501 : 400, reason ? reason : "malformed request", NULL);
            break;
        }
        bool started = start_request(h, &r);
        if (c->h1 != h) {
            /* Upgraded to h2c: the head's bytes are consumed; the rest is h2. */
            lw_buf_consume(&c->rbuf, (size_t)n);
            return LW_ECLOSED;
        }
        lw_buf_consume(&c->rbuf, (size_t)n);
        if (!started) {
            break;
        }
    }
    if (!c->closed && c->h1 == h && h->state == H1_HEAD && lw_buf_size(&c->rbuf) == 0) {
        lw_buf_release(&c->rbuf);
    }
    return c->closed || c->closing || c->h1 != h ? LW_ECLOSED : 0;
}

/* The exchange is over on our side: next request, or close. */
static void finish_exchange(struct lw_h1_front *h)
{
    struct lw_request *req = h->req;
    h->req = NULL;
    lw_request_front_done(req, false);
    if (!h->keep_alive || !h->body_read) {
        lw_conn_close_after_flush(h->conn);
        return;
    }
    h->state = H1_HEAD;
    lw_conn_set_timeout(h->conn, h->conn->worker->config->limits.client_idle_timeout_ms);
    /* Read again: a pipelined request may wait in the buffer or in the kernel. */
    lw_conn_resume_read(h->conn);
}

size_t lw_h1_front_produce(struct lw_h1_front *h, size_t budget)
{
    struct lw_request *req = h->req;
    if (req == NULL || !h->head_sent) {
        return 0;
    }
    size_t total = 0;
    size_t avail = lw_buf_size(&req->resp_body);
    if (avail > 0) {
        size_t n = LW_MIN(avail, budget);
        if (h->resp_chunked) {
            char line[24];
            /* The chunk's size line and CRLF fit in the budget too: a write budget fills
             * whole segments, and a few bytes past it would go out in a record of their own. */
            size_t framing = (size_t)snprintf(line, sizeof(line), "%zx", budget) + 4;
            if (budget > framing) {
                n = LW_MIN(n, budget - framing);
            }
            int l = snprintf(line, sizeof(line), "%zx\r\n", n);
            lw_conn_send(h->conn, line, (size_t)l);
            total += (size_t)l + 2;
        }
        if (!req->is_head) {
            lw_conn_send(h->conn, lw_buf_head(&req->resp_body), n);
        }
        if (h->resp_chunked) {
            lw_conn_send(h->conn, "\r\n", 2);
        }
        lw_buf_consume(&req->resp_body, n);
        req->resp_sent += n;
        total += n;
        lw_request_resp_consumed(req);
        if (h->conn->closed || h->req != req) {
            return total;
        }
    }
    if (req->resp_failed && lw_buf_size(&req->resp_body) == 0) {
        cut_response(h, req);
    } else if (req->resp_done && lw_buf_size(&req->resp_body) == 0) {
        if (h->resp_chunked) {
            lw_conn_send(h->conn, "0\r\n\r\n", 5);
            total += 5;
        }
        if (h->resp_close) {
            h->keep_alive = false;
        }
        finish_exchange(h);
    }
    return total;
}

/*
 * The client sent FIN (or close_notify) after a whole request. Either it is gone (curl, a
 * browser's stop, a program that exits: by far the usual case) and its exchange should free
 * the backend connection now, as on h2, or it closed only its sending side (a TCP half-close:
 * `nc -N` and some scripts do it) and waits for the answer. Nothing on the wire tells them
 * apart until something is sent: a socket closed for good answers data with a RST. nginx
 * takes the FIN as the client leaving (unless proxy_ignore_client_abort), which breaks the
 * second kind; HAProxy serves the request (unless abortonclose), which keeps the first kind's
 * exchanges. Here both get what they want: an HTTP/1.1 client is sent an interim "100
 * Continue" at once, which it must accept before any response (RFC 9110 section 15.2), and
 * the socket is looked at for a RST a few times over the next seconds (no event would say:
 * after a FIN the socket stays readable, and a level-triggered read event would fire without
 * end). Once the response's head has gone, HTTP/1.1 has nothing left to probe with: its
 * body bytes are the probe as they are written, and a client gone while the body stalls is
 * seen only when more of it goes out, or at the response timeout. HTTP/1.0 has no interim
 * responses: its exchange is served as before, and ends when a write fails or times out.
 */
static void watch_closed_input(struct lw_h1_front *h)
{
    struct lw_conn *c = h->conn;
    lw_conn_pause_read(c);
    if (h->probe_sent) {
        return;
    }
    if (!h->head_sent) {
        if (h->minor < 1) {
            return;
        }
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        lw_conn_send(c, cont, sizeof(cont) - 1);
        lw_conn_want_flush(c);
    }
    h->probe_sent = true;
    h->reset_checks = RESET_CHECKS;
    h->reset_check_ms = RESET_CHECK_FIRST_MS;
    lw_conn_set_timeout(c, h->reset_check_ms);
}

void lw_h1_front_on_eof(struct lw_h1_front *h)
{
    if (h->req != NULL && h->state == H1_RESPONSE) {
        watch_closed_input(h);
        return;
    }
    if (h->req != NULL) {
        /* The body was cut short: the request cannot be served. */
        lw_request_front_done(h->req, true);
        h->req = NULL;
        lw_conn_close(h->conn);
        return;
    }
    /* Between exchanges: the last response may still be on its way to a client that only
     * half-closed (its last write met a full socket). */
    lw_conn_close_after_flush(h->conn);
}

void lw_h1_front_shutdown(struct lw_h1_front *h)
{
    h->shutdown = true;
    h->keep_alive = false;
    if (h->req == NULL) {
        /* Gracefully, like the end of an exchange: a response still being written finishes,
         * and on TLS the close_notify after it says nothing was cut. */
        lw_conn_close_after_flush(h->conn);
    }
}

void lw_h1_front_on_timeout(struct lw_h1_front *h)
{
    struct lw_conn *c = h->conn;
    if (h->req != NULL) {
        if (h->reset_checks == 0) {
            return;
        }
        if (lw_conn_is_reset(c)) {
            lw_log_debug("%s: client gone while its response was awaited", c->peer_str);
            lw_conn_close(c); /* frees h: its exchange ends as aborted */
            return;
        }
        if (--h->reset_checks > 0) {
            h->reset_check_ms *= 2;
            lw_conn_set_timeout(c, h->reset_check_ms);
        }
        return;
    }
    if (lw_buf_size(&c->rbuf) > 0) {
        refuse(h, 408, "request head not complete in time", NULL);
        return;
    }
    lw_log_debug("%s: closing idle HTTP/1.1 connection", c->peer_str);
    lw_conn_close_after_flush(c);
}

void lw_h1_front_free(struct lw_h1_front *h)
{
    if (h->req != NULL) {
        lw_request_front_done(h->req, true);
        h->req = NULL;
    }
    free(h);
}

