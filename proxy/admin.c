/* SPDX-License-Identifier: MIT */
/* The admin endpoint: /metrics and /healthz over plain HTTP/1.1, one request per connection. */
#include "proxy/admin.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/http1.h"
#include "common/list.h"
#include "common/log.h"
#include "common/mem.h"
#include "proxy/metrics.h"
#include "proxy/request.h"
#include "proxy/worker.h"

#define ADMIN_MAX_HEAD 8192
#define ADMIN_TIMEOUT_S 10

struct lw_admin {
    struct lw_worker *worker;
    int fd;
    struct event *ev;
    const struct lw_metrics *const *metrics;
    size_t num_metrics;
    struct lw_list conns;
};

struct admin_conn {
    struct lw_admin *admin;
    struct lw_list link;
    int fd;
    struct event *rev, *wev, *timer;
    struct lw_buf in, out;
    bool head_only; /* the request was HEAD: the response goes without its body */
};

static void conn_close(struct admin_conn *c)
{
    event_free(c->rev);
    event_free(c->wev);
    event_free(c->timer);
    close(c->fd);
    lw_buf_dispose(&c->in);
    lw_buf_dispose(&c->out);
    lw_list_remove(&c->link);
    free(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct admin_conn *c = arg;
    while (lw_buf_size(&c->out) > 0) {
        ssize_t w = send(fd, lw_buf_head(&c->out), lw_buf_size(&c->out), MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            event_add(c->wev, NULL);
            return;
        }
        if (w <= 0) {
            break;
        }
        lw_buf_consume(&c->out, (size_t)w);
    }
    conn_close(c);
}

/* The head always says how long the body is; a HEAD request gets the head alone (RFC 9110
 * section 9.3.2: the Content-Length a GET would carry, and no body). */
static void respond(struct admin_conn *c, int status, const char *extra, const char *ctype, const char *body,
                    size_t len)
{
    lw_buf_appendf(&c->out, "HTTP/1.1 %d %s\r\n%sContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                   status, lw_request_status_text(status), extra, ctype, len);
    if (!c->head_only) {
        lw_buf_append(&c->out, body, len);
    }
    event_del(c->rev);
    on_write(c->fd, EV_WRITE, c);
}

static bool method_is(const struct lw_http1_request *req, const char *m)
{
    size_t n = strlen(m);
    return req->method_len == n && memcmp(req->method, m, n) == 0;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct admin_conn *c = arg;
    char *dst = lw_buf_reserve(&c->in, 4096);
    ssize_t r = recv(fd, dst, 4096, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (r <= 0) {
        conn_close(c);
        return;
    }
    lw_buf_commit(&c->in, (size_t)r);
    struct lw_http1_header hdrs[32];
    struct lw_http1_request req;
    const char *reason = NULL;
    ssize_t n = lw_http1_parse_request(lw_buf_head(&c->in), lw_buf_size(&c->in), &req, hdrs, 32, ADMIN_MAX_HEAD,
                                       &reason);
    if (n == LW_EINCOMPLETE) {
        return;
    }
    if (n == LW_ELIMIT) {
        /* The parser tells only that the head outgrew ADMIN_MAX_HEAD or had too many fields,
         * not whether the request line was at fault (414): 431 as the proxy's own fronts say. */
        static const char big[] = "request head too large\n";
        respond(c, 431, "", "text/plain", big, sizeof(big) - 1);
        return;
    }
    if (n < 0) {
        static const char bad[] = "bad request\n";
        respond(c, 400, "", "text/plain", bad, sizeof(bad) - 1);
        return;
    }
    c->head_only = method_is(&req, "HEAD");
    const char *path = req.target;
    size_t plen = req.target_len;
    const char *q = memchr(path, '?', plen);
    if (q != NULL) {
        plen = (size_t)(q - path);
    }
    bool metrics = plen == 8 && memcmp(path, "/metrics", 8) == 0;
    bool healthz = plen == 8 && memcmp(path, "/healthz", 8) == 0;
    if (!metrics && !healthz) {
        static const char nf[] = "not found: try /metrics or /healthz\n";
        respond(c, 404, "", "text/plain", nf, sizeof(nf) - 1);
        return;
    }
    /* Both resources are read-only: a scraper's or a probe's typo must not look like success. */
    if (!c->head_only && !method_is(&req, "GET")) {
        static const char na[] = "method not allowed: GET or HEAD\n";
        respond(c, 405, "Allow: GET, HEAD\r\n", "text/plain", na, sizeof(na) - 1);
        return;
    }
    if (healthz && c->admin->worker->draining) {
        /* The listeners are closed: a load balancer that probes here must stop sending
         * clients now, not when the drain ends and this port closes too. */
        respond(c, 503, "", "text/plain", "draining\n", 9);
        return;
    }
    if (healthz) {
        respond(c, 200, "", "text/plain", "ok\n", 3);
        return;
    }
    struct lw_buf body;
    lw_buf_init(&body);
    lw_metrics_render(c->admin->worker->config, c->admin->metrics, c->admin->num_metrics, &body);
    respond(c, 200, "", "text/plain; version=0.0.4; charset=utf-8", lw_buf_head(&body), lw_buf_size(&body));
    lw_buf_dispose(&body);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    conn_close(arg);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct lw_admin *a = arg;
    for (int i = 0; i < 16; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            return;
        }
        struct admin_conn *c = lw_calloc(1, sizeof(*c));
        c->admin = a;
        c->fd = cfd;
        lw_buf_init(&c->in);
        lw_buf_init(&c->out);
        c->rev = event_new(a->worker->base, cfd, EV_READ | EV_PERSIST, on_read, c);
        c->wev = event_new(a->worker->base, cfd, EV_WRITE, on_write, c);
        c->timer = evtimer_new(a->worker->base, on_timeout, c);
        lw_list_push_back(&a->conns, &c->link);
        struct timeval tv = {ADMIN_TIMEOUT_S, 0};
        event_add(c->timer, &tv);
        event_add(c->rev, NULL);
    }
}

struct lw_admin *lw_admin_new(struct lw_worker *w, int fd, const struct lw_metrics *const *metrics, size_t n)
{
    struct lw_admin *a = lw_calloc(1, sizeof(*a));
    a->worker = w;
    a->fd = fd;
    a->metrics = metrics;
    a->num_metrics = n;
    lw_list_init(&a->conns);
    a->ev = event_new(w->base, fd, EV_READ | EV_PERSIST, on_accept, a);
    event_add(a->ev, NULL);
    return a;
}

void lw_admin_free(struct lw_admin *a)
{
    if (a == NULL) {
        return;
    }
    while (!lw_list_is_empty(&a->conns)) {
        conn_close(LW_LIST_ENTRY(a->conns.next, struct admin_conn, link));
    }
    event_free(a->ev);
    close(a->fd);
    free(a);
}
