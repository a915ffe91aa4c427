/* SPDX-License-Identifier: MIT */
/* Accepting connections on a worker's own SO_REUSEPORT socket. */
#include "proxy/listener.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "proxy/conn.h"
#include "proxy/sock.h"
#include "proxy/worker.h"

/* Accepts per readiness event: enough to drain a burst, few enough to stay fair. */
#define ACCEPT_BATCH 64

struct lw_listener {
    struct lw_worker *worker;
    const struct lw_listen_spec *spec;
    int fd;
    struct event *ev;
    struct event *resume; /* re-enables accepting after running out of descriptors */
};

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct lw_listener *l = arg;
    event_add(l->ev, NULL);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct lw_listener *l = arg;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) {
                return;
            }
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: pause accepting for a moment instead of spinning. */
                lw_log_error("accept: %s; pausing accepts for 100ms", strerror(errno));
                event_del(l->ev);
                struct timeval tv = {0, 100000};
                evtimer_add(l->resume, &tv);
                return;
            }
            lw_log_warn("accept: %s", strerror(errno));
            return;
        }
        lw_conn_new(l->worker, cfd, l->spec, (struct sockaddr *)&ss);
    }
}

struct lw_listener *lw_listener_new(struct lw_worker *w, const struct lw_listen_spec *spec, int fd)
{
    if (fd < 0) {
        struct sockaddr_storage ss;
        socklen_t len;
        if (!lw_sock_parse_literal(spec->cfg->host, spec->port, &ss, &len)) {
            lw_log_error("listener %s: not a literal address", spec->cfg->host);
            return NULL;
        }
        fd = lw_sock_listen((struct sockaddr *)&ss, len, 1024);
        if (fd < 0) {
            lw_log_error("worker %d: cannot listen on %s:%u: %s", w->id, spec->cfg->host, spec->port,
                         strerror(errno));
            return NULL;
        }
    }
    struct lw_listener *l = lw_calloc(1, sizeof(*l));
    l->worker = w;
    l->spec = spec;
    l->fd = fd;
    l->ev = event_new(w->base, fd, EV_READ | EV_PERSIST, on_accept, l);
    l->resume = evtimer_new(w->base, on_resume, l);
    event_add(l->ev, NULL);
    return l;
}

void lw_listener_free(struct lw_listener *l)
{
    event_free(l->ev);
    event_free(l->resume);
    close(l->fd);
    free(l);
}
