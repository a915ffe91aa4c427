/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 client connections to backend members. A connection writes one request (its
 * head kept whole in the request until the response head arrives, so a failed attempt can
 * be retried elsewhere), reads the response with the strict parser, and hands body bytes
 * to the request with backpressure: when the frontend's buffer is full, reading stops, and
 * TCP pushes back on the backend.
 */
#include "proxy/backend.h"

#include <errno.h>
#include <stdio.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/clock.h"
#include "config/config.h"
#include "proxy/pool.h"
#include "proxy/request.h"
#include "proxy/sock.h"
#include "proxy/worker.h"

#define READ_CHUNK LW_WORKER_READ_BUF
#define MAX_RESPONSE_HEADERS 128

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void process_input(struct lw_bconn *bc);

/* The frontend's buffer is full: stop reading until lw_bconn_resume_read. The read event
 * stays armed: the frontend usually drains the buffer in the same loop iteration, and
 * removing the event and adding it back would cost two epoll_ctl calls each time; on_read
 * removes it if the socket becomes readable while we are still paused. */
static void pause_read(struct lw_bconn *bc)
{
    bc->read_paused = true;
    bc->may_have_more = true;
    bc->paused_since_us = lw_time_mono_us();
}

static const struct lw_config_backend *cfg_of(const struct lw_bconn *bc)
{
    return bc->member->upstream->cfg;
}

/* The timeout of the connection's current state runs out ms from now. Moving it later only
 * records the new deadline: the timer, set for the earlier one, sets itself again for the
 * rest when it fires. Every read and every exchange moves it, and re-adding a libevent timer
 * each time cost more than the rest of the connection's event handling. */
static void arm_timer(struct lw_bconn *bc, uint32_t ms, uint64_t now_us)
{
    uint64_t deadline = now_us + (uint64_t)ms * 1000u;
    bc->deadline_us = deadline;
    if (bc->timer_fires_us != 0 && bc->timer_fires_us <= deadline) {
        return;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(bc->timer, &tv);
    bc->timer_fires_us = deadline;
}

static void stop_timer(struct lw_bconn *bc)
{
    event_del(bc->timer);
    bc->timer_fires_us = 0;
}

static struct lw_bconn *bconn_new(struct lw_member *m, int fd)
{
    struct lw_bconn *bc = lw_calloc(1, sizeof(*bc));
    bc->worker = m->upstream->worker;
    bc->member = m;
    bc->fd = fd;
    lw_list_init(&bc->link);
    lw_buf_init(&bc->rbuf);
    bc->rev = event_new(bc->worker->base, fd, EV_READ | EV_PERSIST, on_read, bc);
    bc->wev = event_new(bc->worker->base, fd, EV_WRITE, on_write, bc);
    bc->timer = evtimer_new(bc->worker->base, on_timer, bc);
    m->num_conns++;
    return bc;
}

static void bconn_free(struct lw_reap *r)
{
    struct lw_bconn *bc = LW_CONTAINER_OF(r, struct lw_bconn, reap);
    event_free(bc->rev);
    event_free(bc->wev);
    event_free(bc->timer);
    free(bc);
}

/* Bounded copy of a member's name into a request, for its access log line. */
static void copy_name(char *dst, size_t cap, const char *name)
{
    size_t n = strnlen(name, cap - 1);
    memcpy(dst, name, n);
    dst[n] = '\0';
}

static void start_exchange(struct lw_bconn *bc, struct lw_request *req)
{
    bc->req = req;
    req->bconn = bc;
    req->member = bc->member;
    copy_name(req->member_name, sizeof(req->member_name), bc->member->name);
    bc->head_done = false;
    bc->got_bytes = false;
    bc->may_have_more = false;
    bc->read_paused = false;
    bc->keep_alive = false;
    uint64_t now_us = lw_time_mono_us();
    req->upstream_start_us = now_us;
    bc->sent_us = now_us;
    bc->state = LW_BCONN_ACTIVE;
    if (!bc->reused) {
        event_add(bc->rev, NULL); /* a reused connection's has been pending since it went idle */
    }
    arm_timer(bc, cfg_of(bc)->response_timeout_ms, now_us);
    on_write(bc->fd, EV_WRITE, bc);
}

struct lw_bconn *lw_bconn_connect(struct lw_member *m, struct lw_request *req)
{
    int fd = lw_sock_connect((const struct sockaddr *)&m->addr, m->addr_len);
    if (fd < 0) {
        return NULL;
    }
    struct lw_bconn *bc = bconn_new(m, fd);
    bc->state = LW_BCONN_CONNECTING;
    lw_list_push_back(&m->busy, &bc->link);
    bc->req = req;
    req->bconn = bc;
    req->member = m;
    copy_name(req->member_name, sizeof(req->member_name), m->name);
    event_add(bc->wev, NULL);
    arm_timer(bc, cfg_of(bc)->connect_timeout_ms, lw_time_mono_us());
    return bc;
}

void lw_bconn_attach(struct lw_bconn *bc, struct lw_request *req)
{
    LW_BUG_ON(bc->state != LW_BCONN_IDLE);
    lw_list_remove(&bc->link);
    lw_list_push_back(&bc->member->busy, &bc->link);
    bc->reused = true;
    start_exchange(bc, req);
}

/* The exchange failed on this connection: tell the request, then close. */
static void fail(struct lw_bconn *bc, int status, const char *reason, bool retryable)
{
    struct lw_request *req = bc->req;
    lw_log_warn("backend %s: %s%s", bc->member->name, reason, req != NULL && retryable ? " (will retry)" : "");
    lw_bconn_close(bc);
    if (req != NULL) {
        lw_request_on_backend_error(req, status, reason, retryable);
    }
}

void lw_bconn_close(struct lw_bconn *bc)
{
    if (bc->state == LW_BCONN_CLOSED) {
        return;
    }
    bc->state = LW_BCONN_CLOSED;
    event_del(bc->rev);
    event_del(bc->wev);
    stop_timer(bc);
    close(bc->fd);
    bc->fd = -1;
    lw_buf_dispose_cached(&bc->rbuf, &bc->worker->read_bufs);
    lw_list_remove(&bc->link);
    if (bc->req != NULL) {
        bc->req->bconn = NULL;
        bc->req = NULL;
    }
    lw_upstream_conn_gone(bc);
    lw_worker_reap(bc->worker, &bc->reap, bconn_free);
}

void lw_bconn_abort(struct lw_bconn *bc)
{
    bc->req = NULL;
    lw_bconn_close(bc);
}

/* The whole request went out: head, body and the body's end. */
static bool request_sent(const struct lw_request *req)
{
    return req->body_end_queued && lw_buf_size(&req->bbody) == 0 && req->bhead_sent == lw_buf_size(&req->bhead);
}

/* Whether the backend sent nothing beyond the response just parsed: neither in rbuf nor still in
 * the socket. A read stops where its buffer ends, and a response can end exactly there, so bytes
 * no request asked for may wait unread: on a reused connection they would become the next
 * request's response (another client's). The socket is looked at only when the last read left
 * it possibly not empty (most responses end in a short read: no system call then). */
static bool nothing_beyond(struct lw_bconn *bc)
{
    if (lw_buf_size(&bc->rbuf) == 0) {
        if (!bc->may_have_more) {
            return true;
        }
        char extra;
        ssize_t r = recv(bc->fd, &extra, 1, MSG_PEEK | MSG_DONTWAIT);
        if (r <= 0) {
            return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK); /* else closed, or failed */
        }
    }
    lw_log_warn("backend %s: sent more than its response; not reusing the connection", bc->member->name);
    return false;
}

static void finish_exchange(struct lw_bconn *bc)
{
    struct lw_request *req = bc->req;
    /* Reusable only if the backend said so, the whole request went out, and it sent
     * nothing beyond the response (anything more would be a desynchronized stream). */
    bool reusable = bc->keep_alive && bc->body != LW_HTTP1_BODY_CLOSE && request_sent(req) && nothing_beyond(bc);
    bc->req = NULL;
    req->bconn = NULL;
    bc->exchanges++;
    lw_upstream_report(bc->member, true, NULL);
    lw_request_on_backend_done(req);
    event_del(bc->wev);
    if (!reusable) {
        lw_bconn_close(bc);
        return;
    }
    lw_buf_dispose_cached(&bc->rbuf, &bc->worker->read_bufs); /* empty: reusable says so */
    lw_list_remove(&bc->link);
    bc->state = LW_BCONN_IDLE;
    if (bc->read_paused) {
        bc->read_paused = false;
        event_add(bc->rev, NULL); /* notice the backend closing an idle connection */
    }
    arm_timer(bc, cfg_of(bc)->idle_timeout_ms, bc->read_cb_us); /* only reached from on_read */
    lw_upstream_release(bc, true);
}

static void on_connected(struct lw_bconn *bc)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(bc->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
    }
    if (err != 0) {
        char why[128];
        snprintf(why, sizeof(why), "connect failed: %s", strerror(err));
        lw_upstream_report(bc->member, false, why);
        fail(bc, 502, "connect failed", true);
        return;
    }
    struct lw_request *req = bc->req;
    start_exchange(bc, req);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct lw_bconn *bc = arg;
    if (bc->state == LW_BCONN_CONNECTING) {
        on_connected(bc);
        return;
    }
    struct lw_request *req = bc->req;
    if (req == NULL || bc->state != LW_BCONN_ACTIVE) {
        return;
    }
    for (;;) {
        struct iovec iov[2];
        int n = 0;
        size_t head_left = lw_buf_size(&req->bhead) - req->bhead_sent;
        if (head_left > 0) {
            iov[n].iov_base = lw_buf_head(&req->bhead) + req->bhead_sent;
            iov[n++].iov_len = head_left;
        }
        if (lw_buf_size(&req->bbody) > 0) {
            iov[n].iov_base = lw_buf_head(&req->bbody);
            iov[n++].iov_len = lw_buf_size(&req->bbody);
        }
        if (n == 0) {
            return;
        }
        /* A head alone (every request without a body) goes by send: writev's way through the
         * VFS layer (iovec import, file checks) costs more in the kernel for one buffer. */
        ssize_t w = n == 1 ? send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL) : writev(fd, iov, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                event_add(bc->wev, NULL);
                return;
            }
            int e = errno;
            /* Nothing of the response arrived: on a reused connection the backend most likely
             * closed it while idle, and the request can safely go elsewhere. */
            bool retryable = bc->reused && !bc->got_bytes && req->body_out == 0;
            char why[128];
            snprintf(why, sizeof(why), "write failed: %s", strerror(e));
            if (!retryable) {
                lw_upstream_report(bc->member, false, why);
            }
            fail(bc, 502, why, retryable);
            return;
        }
        if (w > 0 && (lw_buf_size(&req->bbody) > 0 || !req->body_end_queued)) {
            /* A request with a body: the backend taking it is progress (see request_timeout). */
            bc->sent_us = lw_time_mono_us();
            arm_timer(bc, cfg_of(bc)->response_timeout_ms, bc->sent_us);
        }
        size_t done = (size_t)w;
        size_t from_head = LW_MIN(done, head_left);
        req->bhead_sent += from_head;
        done -= from_head;
        if (done > 0) {
            lw_buf_consume(&req->bbody, done);
            req->body_out += done;
            lw_request_on_body_written(req);
            if (bc->req != req) {
                return; /* the frontend reacted by aborting */
            }
        }
    }
}

/* Both are called from inside frontend code (a produce step, a body callback): the work
 * runs from the loop, never under the caller, so a failure it meets cannot close the
 * frontend while the frontend is still on the stack. */
void lw_bconn_want_write(struct lw_bconn *bc)
{
    if (bc->state == LW_BCONN_ACTIVE) {
        event_active(bc->wev, EV_WRITE, 0);
    }
}

void lw_bconn_resume_read(struct lw_bconn *bc)
{
    if (!bc->read_paused || bc->state != LW_BCONN_ACTIVE) {
        return;
    }
    bc->read_paused = false;
    bc->paused_since_us = 0;
    event_add(bc->rev, NULL);
    event_active(bc->rev, EV_READ, 0); /* bytes may already wait in rbuf */
}

/* The response timeout ran out before the whole request went out. Bytes waiting to be taken:
 * the backend took none for that long, its failure. None waiting: the client's body is late, and
 * the client gets its idle timeout from its last bytes (408), with no blame on the member. */
static void request_timeout(struct lw_bconn *bc, uint64_t now)
{
    struct lw_request *req = bc->req;
    if (lw_buf_size(&req->bbody) > 0 || req->bhead_sent < lw_buf_size(&req->bhead)) {
        lw_upstream_report(bc->member, false, "request not taken in time");
        fail(bc, 504, "the backend took none of the request in time", false);
        return;
    }
    uint64_t idle_us = (uint64_t)bc->worker->config->limits.client_idle_timeout_ms * 1000u;
    uint64_t quiet_us = now - bc->sent_us;
    if (quiet_us >= idle_us) {
        fail(bc, 408, "request body not complete in time", false);
        return;
    }
    arm_timer(bc, (uint32_t)((idle_us - quiet_us + 999) / 1000u), now);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct lw_bconn *bc = arg;
    bc->timer_fires_us = 0;
    if (bc->state == LW_BCONN_CLOSED) {
        return;
    }
    uint64_t now_us = lw_time_mono_us();
    if (now_us < bc->deadline_us) {
        /* Set for an earlier deadline that has since moved: wait for the rest. */
        uint64_t left_us = bc->deadline_us - now_us;
        struct timeval tv = {(time_t)(left_us / 1000000u), (suseconds_t)(left_us % 1000000u)};
        event_add(bc->timer, &tv);
        bc->timer_fires_us = bc->deadline_us;
        return;
    }
    switch (bc->state) {
    case LW_BCONN_CLOSED:
        return;
    case LW_BCONN_IDLE:
        lw_log_debug("backend %s: idle keep-alive connection closed after timeout", bc->member->name);
        lw_bconn_close(bc);
        return;
    case LW_BCONN_CONNECTING:
        lw_upstream_report(bc->member, false, "connect timed out");
        fail(bc, 504, "connect timed out", true);
        return;
    case LW_BCONN_ACTIVE: {
        uint64_t now = lw_time_mono_us();
        if (bc->read_paused) {
            /* Waiting on the client, not on the backend: a client that takes nothing for its
             * idle timeout loses the exchange, so it cannot hold the connection forever. */
            uint32_t idle_ms = bc->worker->config->limits.client_idle_timeout_ms;
            if (bc->paused_since_us != 0 && now - bc->paused_since_us >= (uint64_t)idle_ms * 1000u) {
                fail(bc, 504, "client stopped reading the response", false);
                return;
            }
            arm_timer(bc, cfg_of(bc)->response_timeout_ms, now);
            return;
        }
        if (bc->req != NULL && !request_sent(bc->req)) {
            request_timeout(bc, now);
            return;
        }
        lw_upstream_report(bc->member, false, "response timed out");
        fail(bc, 504, bc->head_done ? "response body timed out" : "response timed out", false);
        return;
    }
    }
}

/* Consume what rbuf holds: the head (and any 1xx before it), then body bytes. */
static void process_input(struct lw_bconn *bc)
{
    while (bc->req != NULL && !bc->read_paused) {
        struct lw_request *req = bc->req;
        if (!bc->head_done) {
            struct lw_http1_header hdrs[MAX_RESPONSE_HEADERS];
            struct lw_http1_response res;
            const char *reason = NULL;
            ssize_t n = lw_http1_parse_response(lw_buf_head(&bc->rbuf), lw_buf_size(&bc->rbuf), req->is_head, &res,
                                                hdrs, MAX_RESPONSE_HEADERS,
                                                bc->worker->config->limits.max_header_bytes, &reason);
            if (n == LW_EINCOMPLETE) {
                return;
            }
            if (n < 0) {
                char why[160];
                snprintf(why, sizeof(why), "invalid response: %s", reason ? reason : lw_strerror((int)n));
                lw_upstream_report(bc->member, false, why);
                fail(bc, 502, why, false);
                return;
            }
            if (res.status < 200) {
                if (res.status == 101) {
                    fail(bc, 502, "unexpected 101 response", false);
                    return;
                }
                /* The header views point into rbuf: consume only after the call. */
                lw_request_on_backend_interim(req, res.status, hdrs, res.num_headers);
                if (bc->req != req) {
                    return;
                }
                lw_buf_consume(&bc->rbuf, (size_t)n);
                continue;
            }
            bc->head_done = true;
            bc->body = res.body;
            bc->remaining = res.content_length;
            bc->keep_alive = res.keep_alive;
            lw_http1_chunked_init(&bc->chunked);
            req->upstream_head_us = bc->read_cb_us;
            lw_request_on_backend_head(req, res.status, hdrs, res.num_headers, res.has_content_length,
                                       res.content_length);
            lw_buf_consume(&bc->rbuf, (size_t)n);
            if (bc->req != req) {
                return;
            }
            if (bc->body == LW_HTTP1_BODY_NONE) {
                finish_exchange(bc);
                return;
            }
            continue;
        }
        size_t avail = lw_buf_size(&bc->rbuf);
        if (avail == 0) {
            return;
        }
        const char *data = lw_buf_head(&bc->rbuf);
        bool more = true;
        switch (bc->body) {
        case LW_HTTP1_BODY_LENGTH: {
            size_t take = (size_t)LW_MIN((uint64_t)avail, bc->remaining);
            bc->remaining -= take;
            more = lw_request_on_backend_body(req, data, take);
            lw_buf_consume(&bc->rbuf, take);
            if (bc->req == req && bc->remaining == 0) {
                finish_exchange(bc);
                return;
            }
            break;
        }
        case LW_HTTP1_BODY_CHUNKED: {
            const char *chunk = NULL;
            size_t chunk_len = 0;
            const char *reason = NULL;
            ssize_t n = lw_http1_chunked_decode(&bc->chunked, data, avail, &chunk, &chunk_len, &reason);
            if (n < 0) {
                char why[160];
                snprintf(why, sizeof(why), "invalid chunked body: %s", reason ? reason : lw_strerror((int)n));
                fail(bc, 502, why, false);
                return;
            }
            if (chunk_len > 0) {
                more = lw_request_on_backend_body(req, chunk, chunk_len);
            }
            lw_buf_consume(&bc->rbuf, (size_t)n);
            if (bc->req == req && lw_http1_chunked_is_done(&bc->chunked)) {
                finish_exchange(bc);
                return;
            }
            if (n == 0) {
                return;
            }
            break;
        }
        case LW_HTTP1_BODY_CLOSE:
            more = lw_request_on_backend_body(req, data, avail);
            lw_buf_consume(&bc->rbuf, avail);
            break;
        case LW_HTTP1_BODY_NONE:
            return;
        }
        if (bc->req != req) {
            return;
        }
        if (!more) {
            pause_read(bc);
        }
    }
}

/* n body bytes were read straight into the request's response buffer. */
static void on_body_read(struct lw_bconn *bc, size_t n)
{
    struct lw_request *req = bc->req;
    if (bc->body == LW_HTTP1_BODY_LENGTH) {
        bc->remaining -= n;
    }
    bool more = lw_request_on_backend_body_read(req, n);
    if (bc->req != req) {
        return;
    }
    if (bc->body == LW_HTTP1_BODY_LENGTH && bc->remaining == 0) {
        finish_exchange(bc); /* a direct read stops at the body's end: see nothing_beyond */
        return;
    }
    if (!more) {
        pause_read(bc);
    }
}

/* Where the next read of a body with a known end (length, or the connection's close) can
 * go straight into the request's response buffer: one copy less than through rbuf, and reads
 * as large as that buffer has room for. NULL when the bytes must go through rbuf (a head, a
 * chunked body, bytes already waiting there, or a frontend that is gone). */
static char *direct_space(struct lw_bconn *bc, size_t *room)
{
    if (!bc->head_done || lw_buf_size(&bc->rbuf) > 0 ||
        (bc->body != LW_HTTP1_BODY_LENGTH && bc->body != LW_HTTP1_BODY_CLOSE)) {
        return NULL;
    }
    /* Never past the body's end: what follows it belongs to no one and must stay unread. */
    size_t want = bc->body == LW_HTTP1_BODY_LENGTH ? (size_t)LW_MIN(bc->remaining, (uint64_t)SIZE_MAX) : SIZE_MAX;
    return lw_request_resp_reserve(bc->req, want, room);
}

static void on_eof(struct lw_bconn *bc, int err)
{
    struct lw_request *req = bc->req;
    if (req == NULL) {
        lw_bconn_close(bc);
        return;
    }
    if (bc->head_done && bc->body == LW_HTTP1_BODY_CLOSE && err == 0) {
        finish_exchange(bc);
        return;
    }
    char why[160];
    if (!bc->got_bytes) {
        /* A reused connection the backend closed while we were sending: it never saw the
         * request (RFC 9112 section 9.3.1), so another attempt is safe when nothing of the
         * body has been consumed from the client buffer beyond recall. */
        bool retryable = bc->reused && req->body_out == 0;
        snprintf(why, sizeof(why), "connection %s before the response%s", err ? strerror(err) : "closed",
                 bc->reused ? " (reused connection)" : "");
        if (!retryable) {
            lw_upstream_report(bc->member, false, why);
        }
        fail(bc, 502, why, retryable);
        return;
    }
    snprintf(why, sizeof(why), "connection %s %s", err ? strerror(err) : "closed",
             bc->head_done ? "mid-response" : "in the response head");
    lw_upstream_report(bc->member, false, why);
    fail(bc, 502, why, false);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct lw_bconn *bc = arg;
    if (bc->state == LW_BCONN_IDLE) {
        char c;
        ssize_t r = recv(fd, &c, 1, MSG_PEEK);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            lw_log_debug("backend %s: closed an idle keep-alive connection", bc->member->name);
            lw_bconn_close(bc);
        } else if (r > 0) {
            lw_log_warn("backend %s: sent data on an idle connection; closing it", bc->member->name);
            lw_bconn_close(bc);
        }
        return;
    }
    if (bc->state != LW_BCONN_ACTIVE) {
        return;
    }
    if (bc->read_paused) {
        event_del(bc->rev); /* level-triggered: it would fire again at once (see pause_read) */
        return;
    }
    /* One clock read serves the callback: the timeouts it moves and the head's arrival. */
    bc->read_cb_us = lw_time_mono_us();
    if (lw_buf_size(&bc->rbuf) > 0) {
        process_input(bc); /* left over from before a pause */
        if (bc->state != LW_BCONN_ACTIVE || bc->read_paused) {
            return;
        }
    }
    /* Bounded: the head limit, or the frontend's buffer, stop us from reading without end. */
    for (int rounds = 0; rounds < 4 && bc->req != NULL && !bc->read_paused; rounds++) {
        size_t room = 0;
        char *direct = direct_space(bc, &room);
        if (direct != NULL && room == 0) {
            pause_read(bc);
            break;
        }
        if (direct == NULL) {
            lw_buf_reserve_cached(&bc->rbuf, &bc->worker->read_bufs);
        }
        size_t ask = direct != NULL ? room : READ_CHUNK;
        char *dst = direct != NULL ? direct : lw_buf_reserve(&bc->rbuf, READ_CHUNK);
        ssize_t r = recv(fd, dst, ask, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                break;
            }
            on_eof(bc, errno);
            return;
        }
        if (r == 0) {
            process_input(bc);
            if (bc->state != LW_BCONN_CLOSED) {
                on_eof(bc, 0);
            }
            return;
        }
        bc->got_bytes = true;
        bc->may_have_more = (size_t)r == ask;
        arm_timer(bc, cfg_of(bc)->response_timeout_ms, bc->read_cb_us);
        if (direct != NULL) {
            on_body_read(bc, (size_t)r);
        } else {
            lw_buf_commit(&bc->rbuf, (size_t)r);
            process_input(bc);
        }
        if (bc->state != LW_BCONN_ACTIVE) {
            return;
        }
        if ((size_t)r < ask) {
            break;
        }
    }
}
