/* SPDX-License-Identifier: MIT */
/*
 * HTTP/2 frontend on nghttp2. nghttp2 validates requests as RFC 9113 section 8 asks
 * (pseudo-headers, connection-specific fields, te other than "trailers", content-length
 * against DATA); we add what a proxy must (header list size and count limits, CONNECT
 * refused, authority required) and drive the session sans-I/O so the connection decides
 * when bytes are produced.
 */
#include "proxy/h2_front.h"

#include <malloc.h>
#include <nghttp2/nghttp2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/clock.h"
#include "common/mem.h"
#include "config/config.h"
#include "proxy/conn.h"
#include "proxy/push.h"
#include "common/gcs.h"
#include "proxy/request.h"
#include "proxy/worker.h"

/* The connection-level receive window: large, so that stream windows are what limits each
 * upload and one slow stream cannot stall the others. */
#define CONN_WINDOW (16 * 1024 * 1024)

struct lw_h2_front {
    struct lw_conn *conn;
    nghttp2_session *session;
    struct lw_list requests;
    size_t num_open;
    size_t pushes_open;
    bool goaway;
    struct lw_push_memo *memo; /* what this connection pushed; made at its first push (2 KiB that
                                * most connections, whose clients disable push, never need) */
    /* Peer-provoked errors (malformed frames and streams that nghttp2 or we reset): a token
     * bucket, since this nghttp2 has the rapid-reset limiter but not the later one against
     * provoked resets (MadeYouReset). */
    double glitch_tokens;
    uint64_t glitch_refill_us;
    size_t produce_left; /* what the connection's write budget still allows in this pass */
    size_t frame_max;    /* largest DATA frame, header included, in this pass */
    /* nghttp2's outbound frame buffer (see on_mem_malloc): page-aligned, so that its pages can
     * be given back while nothing is being sent. */
    void *framebuf;
    size_t framebuf_len;
    bool creating;             /* inside nghttp2_session_server_new */
    bool framebuf_dirty;       /* frames were written to it since its pages were last given back */
    uint8_t framebuf_releases; /* how often they were */
    size_t produced;     /* DATA frame bytes on_send_data_frame gave the connection in this pass */
    bool ends_response;  /* the frame nghttp2 is handing over ends a response (see on_frame_send) */
    bool flight_formed;  /* a DATA frame or an interim response has been produced on this connection */
    /* Requests that came after the first flight and wait for their response to start (see
     * lw_h2_front_awaited_since); when the first of the current ones came; whether one of them
     * (or an interim response) became ready since the last pass that produced anything. */
    uint32_t awaiting;
    uint64_t awaited_since_us;
    bool response_ready;
    /* Streams a PRIORITY_UPDATE named before they were opened (RFC 9218 allows it; nghttp2
     * keeps the priority), so that their requests count as signalled. */
    int32_t early_priority[4];
    uint8_t early_priority_next;
    /* The request whose header block is being decoded: a block's fields arrive together
     * (RFC 9113 section 4.3), so on_header needs no stream lookup per field. */
    int32_t hdr_stream_id;
    struct lw_request *hdr_req;
};

/* A client may provoke this many errors at once, and this many more per second. Browsers
 * provoke none; HAProxy's default cut-off is of the same order. */
#define GLITCH_BURST 200.0
#define GLITCH_PER_S 20.0

/* Tiny DATA frames cost more in headers and records than they gain: a pass stops
 * once less than this is left. */
#define PRODUCE_MIN 256
/* A DATA frame with its header is one whole TLS record (RFC 8446 section 5.1): frames and
 * records line up, so no record carries the tail of one frame and the head of the next. */
#define DATA_FRAME_MAX LW_REQUEST_RESP_UNIT

/* Per-stream front state lives in the request; these fields are h2's own. */
struct h2_stream_state {
    size_t unconsumed;   /* DATA bytes not yet given back as window */
    size_t header_bytes; /* decoded header list size so far */
    int reject_status;   /* answer with this instead of proxying (431, 400, 501) */
    bool deferred;       /* the data source waits for body bytes */
    bool has_priority;   /* the request carried an RFC 9218 priority header */
    bool response_submitted;
    bool awaited; /* counted in the front's awaiting: no head, or a head without body bytes yet */
};

static const struct lw_request_front_ops h2_ops;
static void glitch(struct lw_h2_front *h, const char *what);

static struct h2_stream_state *st(struct lw_request *req)
{
    return (struct h2_stream_state *)req->front_state;
}

/* Per-stream state lives in the request's arena, freed with it. */
static struct h2_stream_state *stream_state_new(struct lw_request *req)
{
    struct h2_stream_state *s = lw_arena_alloc(&req->arena, sizeof(*s));
    memset(s, 0, sizeof(*s));
    return s;
}

static struct lw_h2_front *front_of(struct lw_request *req)
{
    return req->conn->h2;
}

/* DATA payloads go out without nghttp2 copying them into its frame buffer (NO_COPY): the
 * payload is sent by on_send_data_frame straight from resp_body. */
static ssize_t on_send_data(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *source, void *user_data)
{
    struct lw_request *req = source->ptr;
    size_t avail = lw_buf_size(&req->resp_body);
    size_t n = LW_MIN(length, avail);
    if (n > 0) {
        *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    }
    if (n == avail) {
        if (req->resp_done) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        } else if (n == 0 && req->resp_failed) {
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* all it had is out: RST_STREAM(INTERNAL_ERROR) */
        } else if (n == 0) {
            st(req)->deferred = true;
            return NGHTTP2_ERR_DEFERRED;
        }
    }
    return (ssize_t)n;
}

/* A stream the client sent no priority signal for (no priority header, no PRIORITY_UPDATE
 * so far): a stylesheet or script response goes ahead of the default-urgency streams it
 * shares the connection with (as its push would), whole rather than in turns, since a
 * browser can use it only whole. A later PRIORITY_UPDATE from the client still wins. */
static void prioritize_by_type(struct lw_request *req, const struct lw_hdr *extra, size_t num_extra)
{
    if (req->is_push || st(req)->has_priority) {
        return;
    }
    for (size_t i = 0; i < num_extra; i++) {
        if (extra[i].name_len == 12 && memcmp(extra[i].name, "content-type", 12) == 0) {
            uint8_t u = lw_push_urgency_of_type(extra[i].value, extra[i].value_len);
            if (u != NGHTTP2_EXTPRI_DEFAULT_URGENCY) {
                nghttp2_extpri pri = {.urgency = u, .inc = 0};
                nghttp2_session_change_extpri_stream_priority(front_of(req)->session, req->stream_id, &pri, 0);
            }
            return;
        }
    }
}

/* A DATA frame on_send_data promised: its header, then length bytes of resp_body (we never
 * ask for padding). The header goes in front of the payload, in the space resp_body keeps
 * for it, so that frame and TLS record can be one: a DATA frame the size of a whole record is
 * sealed straight from resp_body, with no copy at all. */
static int on_send_data_frame(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd, size_t length,
                              nghttp2_data_source *source, void *user_data)
{
    struct lw_h2_front *h = user_data;
    struct lw_request *req = source->ptr;
    struct lw_buf *body = &req->resp_body;
    if (lw_buf_prepend(body, framehd, 9)) {
        lw_conn_send(h->conn, lw_buf_head(body), 9 + length);
        lw_buf_consume(body, 9 + length);
    } else {
        lw_conn_send(h->conn, framehd, 9);
        lw_conn_send(h->conn, lw_buf_head(body), length);
        lw_buf_consume(body, length);
    }
    req->resp_sent += length;
    lw_request_resp_consumed(req);
    h->produced += 9 + length;
    h->produce_left = h->produce_left > 9 + length ? h->produce_left - (9 + length) : 0;
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        /* A response that ended is usable whole: no bytes of the next in its record. */
        lw_conn_end_record(h->conn);
    }
    /* The budget is spent (see lw_h2_front_produce): nothing more in this pass. */
    return h->produce_left < PRODUCE_MIN ? NGHTTP2_ERR_PAUSE : 0;
}

/* The request no longer waits for its response to start (see lw_h2_front_awaited_since).
 * True if it did. */
static bool not_awaited(struct lw_h2_front *h, struct lw_request *req)
{
    if (req->front_state == NULL || !st(req)->awaited) {
        return false;
    }
    st(req)->awaited = false;
    h->awaiting--;
    return true;
}

/* The three digits of a status code (100..999: the backend parser and our own replies
 * guarantee the range), as :status carries them. */
static void status_digits(char out[3], int status)
{
    out[0] = (char)('0' + status / 100);
    out[1] = (char)('0' + status / 10 % 10);
    out[2] = (char)('0' + status % 10);
}

static void submit_response(struct lw_request *req, int status, const struct lw_hdr *extra, size_t num_extra,
                            bool has_length, uint64_t length)
{
    struct lw_h2_front *h = front_of(req);
    size_t n = 0;
    nghttp2_nv stack_nva[32];
    nghttp2_nv *nva = num_extra + 3 <= LW_ARRAY_LEN(stack_nva) ? stack_nva : lw_malloc((num_extra + 3) * sizeof(*nva));
    char status_str[3], len_str[20];
    status_digits(status_str, status);
    nva[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status_str, 7, 3, NGHTTP2_NV_FLAG_NONE};
    for (size_t i = 0; i < num_extra; i++) {
        nva[n++] = (nghttp2_nv){(uint8_t *)extra[i].name, (uint8_t *)extra[i].value, extra[i].name_len,
                                extra[i].value_len, NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
    }
    if (req->is_push) {
        /* As nghttpx marks them: operators and tests can tell pushed responses apart. */
        nva[n++] = (nghttp2_nv){(uint8_t *)"x-http2-push", (uint8_t *)"1", 12, 1, NGHTTP2_NV_FLAG_NONE};
    }
    if (has_length) {
        size_t l = lw_buf_format_u64(len_str, length);
        nva[n++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)len_str, 14, l, NGHTTP2_NV_FLAG_NONE};
    }
    bool no_body = req->is_head || status == 204 || status == 304 ||
                   (req->resp_done && lw_buf_size(&req->resp_body) == 0 && has_length && length == 0);
    nghttp2_data_provider prd = {.source.ptr = req, .read_callback = on_send_data};
    st(req)->response_submitted = true;
    /* Backends often write the head and the body apart: the hold lasts until the body's first
     * bytes are in too, or the head would go out with the other streams' bytes behind it and
     * the body would queue behind those. */
    bool body_ready = no_body || req->resp_done || lw_buf_size(&req->resp_body) > 0;
    if (body_ready && not_awaited(h, req)) {
        h->response_ready = true;
    }
    lw_request_note_response_head(req);
    int rv = nghttp2_submit_response(h->session, req->stream_id, nva, n, no_body ? NULL : &prd);
    if (rv != 0) {
        lw_log_debug("%s: stream %d: cannot submit response: %s", req->conn->peer_str, req->stream_id,
                     nghttp2_strerror(rv));
    } else {
        prioritize_by_type(req, extra, num_extra);
    }
    if (nva != stack_nva) {
        free(nva);
    }
    lw_conn_want_flush(req->conn);
}

static bool push_allowed(struct lw_h2_front *h, const struct lw_request *parent)
{
    enum lw_config_push_policy p = parent->policy;
    return (p == LW_CONFIG_PUSH_PUSH || p == LW_CONFIG_PUSH_PUSH_HINTS || p == LW_CONFIG_PUSH_CACHE_AWARE) &&
           !parent->is_push && !h->goaway &&
           nghttp2_session_get_remote_settings(h->session, NGHTTP2_SETTINGS_ENABLE_PUSH) != 0 &&
           ((parent->method_len == 3 && memcmp(parent->method, "GET", 3) == 0) || parent->is_head);
}

/* The parent's headers a promised request carries: what shapes the response the client
 * would have got had it asked itself (as nghttpx and H2O do). Same origin is guaranteed, so
 * cookies may go along. */
static bool copied_to_push(const struct lw_hdr *hd)
{
    static const char *const names[] = {"user-agent", "accept-encoding", "accept-language", "cookie",
                                        "cache-control"};
    for (size_t i = 0; i < LW_ARRAY_LEN(names); i++) {
        if (strlen(names[i]) == hd->name_len && memcmp(names[i], hd->name, hd->name_len) == 0) {
            return true;
        }
    }
    return false;
}

static void promise(struct lw_h2_front *h, struct lw_request *parent, const struct lw_push_candidate *cand)
{
    struct lw_request *req = lw_request_new(h->conn, &h2_ops);
    req->front_state = stream_state_new(req);
    req->proto = "h2";
    req->is_push = true;
    req->method = "GET";
    req->method_len = 3;
    req->scheme = parent->scheme;
    req->authority = lw_arena_strndup(&req->arena, parent->authority, parent->authority_len);
    req->authority_len = parent->authority_len;
    req->path = lw_arena_strndup(&req->arena, cand->path, cand->path_len);
    req->path_len = cand->path_len;
    for (size_t i = 0; i < parent->num_headers; i++) {
        if (copied_to_push(&parent->headers[i])) {
            lw_request_add_header(req, parent->headers[i].name, parent->headers[i].name_len,
                                  parent->headers[i].value, parent->headers[i].value_len);
        }
    }
    const char *scheme = req->scheme ? req->scheme : (h->conn->tls ? "https" : "http");
    nghttp2_nv *nva = lw_malloc((req->num_headers + 4) * sizeof(*nva));
    size_t n = 0;
    nva[n++] = (nghttp2_nv){(uint8_t *)":method", (uint8_t *)"GET", 7, 3, NGHTTP2_NV_FLAG_NONE};
    nva[n++] = (nghttp2_nv){(uint8_t *)":scheme", (uint8_t *)scheme, 7, strlen(scheme), NGHTTP2_NV_FLAG_NONE};
    nva[n++] = (nghttp2_nv){(uint8_t *)":authority", (uint8_t *)req->authority, 10, req->authority_len,
                            NGHTTP2_NV_FLAG_NONE};
    nva[n++] = (nghttp2_nv){(uint8_t *)":path", (uint8_t *)req->path, 5, req->path_len, NGHTTP2_NV_FLAG_NONE};
    for (size_t i = 0; i < req->num_headers; i++) {
        nva[n++] = (nghttp2_nv){(uint8_t *)req->headers[i].name, (uint8_t *)req->headers[i].value,
                                req->headers[i].name_len, req->headers[i].value_len, NGHTTP2_NV_FLAG_NONE};
    }
    int32_t id = nghttp2_submit_push_promise(h->session, NGHTTP2_FLAG_NONE, parent->stream_id, nva, n, req);
    free(nva);
    if (id < 0) {
        lw_log_debug("%s: push of %s refused: %s", h->conn->peer_str, cand->path, nghttp2_strerror(id));
        req->front_state = NULL;
        lw_request_front_done(req, true);
        return;
    }
    req->stream_id = id;
    lw_list_push_back(&h->requests, &req->link);
    h->num_open++;
    h->pushes_open++;
    parent->pushes++;
    lw_request_adopt_push(parent, req);
    /* CSS and JS ahead of images; only acts where the client speaks RFC 9218 priorities. */
    nghttp2_extpri pri = {.urgency = cand->urgency, .inc = 0};
    nghttp2_session_change_extpri_stream_priority(h->session, id, &pri, 1);
    lw_log_debug("%s: stream %d: pushing %s as stream %d (as=%s)", h->conn->peer_str, parent->stream_id, cand->path,
                 id, cand->as);
    lw_request_dispatch(req);
    if (req->front_attached && st(req)->reject_status == 0) {
        lw_request_body_end(req);
    }
}

/* Promise what the links of parent's response (its 103 or final headers) call for. */
static void push_links(struct lw_h2_front *h, struct lw_request *parent, const struct lw_hdr *links, size_t n)
{
    if (n == 0 || !push_allowed(h, parent)) {
        return;
    }
    const struct lw_config_push *cfg = &parent->route->push;
    size_t cap = cfg->max_per_request > parent->pushes ? cfg->max_per_request - parent->pushes : 0;
    if (h->memo == NULL) {
        h->memo = lw_malloc(sizeof(*h->memo));
        lw_push_memo_init(h->memo);
    }
    size_t conn_left = cfg->max_per_connection > h->memo->total ? cfg->max_per_connection - h->memo->total : 0;
    /* Pushed streams count against the client's concurrency limit like its own requests. */
    uint32_t peer_max = nghttp2_session_get_remote_settings(h->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    size_t streams_left = peer_max > h->pushes_open ? peer_max - h->pushes_open : 0;
    cap = LW_MIN(cap, LW_MIN(conn_left, streams_left));
    cap = LW_MIN(cap, (size_t)32);
    if (cap == 0) {
        return;
    }
    const char *scheme = parent->scheme ? parent->scheme : (h->conn->tls ? "https" : "http");
    struct lw_link_uri base = {scheme, strlen(scheme), parent->authority, parent->authority_len,
                               parent->path, parent->path_len};
    struct lw_push_filter filter = {.etags = h->conn->worker->etags};
    uint8_t digest[LW_PUSH_DIGEST_MAX];
    bool cache_aware = parent->policy == LW_CONFIG_PUSH_CACHE_AWARE;
    if (cache_aware) {
        size_t len;
        const char *cookie = lw_request_cookie(parent, LW_PUSH_DIGEST_COOKIE, &len);
        ssize_t dlen = cookie ? lw_push_digest_decode(cookie, len, digest, sizeof(digest)) : -1;
        if (dlen > 0) {
            filter.digest = digest;
            filter.digest_len = (size_t)dlen;
        }
    }
    struct lw_push_candidate *cands = lw_malloc(cap * sizeof(*cands));
    size_t k = lw_push_select(h->memo, &base, links, n, cache_aware ? &filter : NULL, cands, cap);
    for (size_t i = 0; i < k; i++) {
        promise(h, parent, &cands[i]);
        if (cache_aware && parent->num_digest_keys < LW_ARRAY_LEN(parent->digest_keys)) {
            parent->digest_keys[parent->num_digest_keys++] = cands[i].digest_key;
        }
    }
    free(cands);
}

/* Tell the client the digest of what it has now been pushed (cache-aware push). */
static void add_digest_cookie(struct lw_request *req)
{
    uint8_t digest[LW_PUSH_DIGEST_MAX];
    size_t len;
    const char *cookie = lw_request_cookie(req, LW_PUSH_DIGEST_COOKIE, &len);
    ssize_t dlen = cookie ? lw_push_digest_decode(cookie, len, digest, sizeof(digest)) : -1;
    char value[1024];
    ssize_t vlen = lw_push_digest_add(dlen > 0 ? digest : NULL, dlen > 0 ? (size_t)dlen : 0, req->digest_keys,
                                      req->num_digest_keys, LW_GCS_K_DEFAULT, value, sizeof(value));
    if (vlen < 0) {
        return;
    }
    size_t cap = (size_t)vlen + 96;
    char *c = lw_arena_alloc(&req->arena, cap);
    int n = snprintf(c, cap, "%s=%.*s; Path=/; Max-Age=2592000; SameSite=Lax%s", LW_PUSH_DIGEST_COOKIE, (int)vlen, value,
                     req->tls ? "; Secure" : "");
    struct lw_hdr *o = &req->rheaders[req->num_rheaders++];
    o->name = "set-cookie";
    o->name_len = 10;
    o->value = c;
    o->value_len = (size_t)n;
}

static void h2_on_response_head(struct lw_request *req)
{
    struct lw_h2_front *h = front_of(req);
    if (req->status >= 200 && req->status < 300) {
        /* Promises go out before the response that references them (RFC 9113 section 8.4). */
        size_t n = 0;
        for (size_t i = 0; i < req->num_rheaders; i++) {
            n += req->rheaders[i].name_len == 4 && memcmp(req->rheaders[i].name, "link", 4) == 0;
        }
        if (n > 0) {
            struct lw_hdr *links = lw_malloc(n * sizeof(*links));
            size_t k = 0;
            for (size_t i = 0; i < req->num_rheaders; i++) {
                if (req->rheaders[i].name_len == 4 && memcmp(req->rheaders[i].name, "link", 4) == 0) {
                    links[k++] = req->rheaders[i];
                }
            }
            push_links(h, req, links, k);
            free(links);
        }
    }
    if (req->num_digest_keys > 0) {
        add_digest_cookie(req);
    }
    submit_response(req, req->status, req->rheaders, req->num_rheaders, req->resp_has_length, req->resp_length);
}

static void h2_on_response_body(struct lw_request *req)
{
    if (st(req)->response_submitted && not_awaited(front_of(req), req)) {
        front_of(req)->response_ready = true;
    }
    if (st(req)->deferred) {
        st(req)->deferred = false;
        nghttp2_session_resume_data(front_of(req)->session, req->stream_id);
    }
    lw_conn_want_flush(req->conn);
}

/* A response lowat makes itself: a status and a short plain-text body. */
static void respond_error(struct lw_request *req, int status)
{
    static const struct lw_hdr ctype = {"content-type", 12, "text/plain; charset=utf-8", 25};
    lw_buf_dispose(&req->resp_body);
    lw_buf_appendf(&req->resp_body, "%d %s\n", status, lw_request_status_text(status));
    req->status = status;
    req->resp_done = true;
    submit_response(req, status, &ctype, 1, true, lw_buf_size(&req->resp_body));
}

static void h2_on_error(struct lw_request *req, int status)
{
    if (status == 0 || st(req)->response_submitted) {
        nghttp2_submit_rst_stream(front_of(req)->session, NGHTTP2_FLAG_NONE, req->stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
        lw_conn_want_flush(req->conn);
        return;
    }
    respond_error(req, status);
}

static void h2_on_interim(struct lw_request *req, int status)
{
    if (req->is_push) {
        /* Nobody waits on a promised stream: an interim response there tells the client
         * nothing, and clients reject it on a stream they have not seen a response on yet. */
        return;
    }
    const struct lw_hdr *extra = NULL;
    size_t num_extra = 0;
    /* An interim response, and what a 103 promises, leave at once: no body follows them soon
     * (see lw_h2_front_first_flight and lw_h2_front_awaited_since). */
    front_of(req)->flight_formed = true;
    front_of(req)->response_ready = true;
    if (status == 103) {
        enum lw_config_push_policy p = req->policy;
        if (st(req)->response_submitted) {
            return;
        }
        /* Promised now, while the app is still thinking: the idle connection carries the
         * page's CSS and JS during that time. */
        push_links(front_of(req), req, req->hints, req->num_hints);
        if (!lw_config_push_hints(p)) {
            return;
        }
        extra = req->hints;
        num_extra = req->num_hints;
        req->hints_forwarded = true;
        lw_metrics_add(&lw_request_arm_metrics(req)->hints_forwarded, 1);
    }
    nghttp2_nv *nva = lw_malloc((num_extra + 1) * sizeof(*nva));
    char s[3];
    status_digits(s, status);
    nva[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)s, 7, 3, NGHTTP2_NV_FLAG_NONE};
    for (size_t i = 0; i < num_extra; i++) {
        nva[i + 1] = (nghttp2_nv){(uint8_t *)extra[i].name, (uint8_t *)extra[i].value, extra[i].name_len,
                                  extra[i].value_len, NGHTTP2_NV_FLAG_NONE};
    }
    nghttp2_submit_headers(front_of(req)->session, NGHTTP2_FLAG_NONE, req->stream_id, NULL, nva, num_extra + 1, NULL);
    free(nva);
    lw_conn_want_flush(req->conn);
}

static void h2_on_request_body_drained(struct lw_request *req)
{
    struct h2_stream_state *s = st(req);
    if (s->unconsumed > 0) {
        nghttp2_session_consume(front_of(req)->session, req->stream_id, s->unconsumed);
        s->unconsumed = 0;
        lw_conn_want_flush(req->conn);
    }
}

static const struct lw_request_front_ops h2_ops = {
    .on_interim = h2_on_interim,
    .on_response_head = h2_on_response_head,
    .on_response_body = h2_on_response_body,
    .on_error = h2_on_error,
    .on_request_body_drained = h2_on_request_body_drained,
};

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct lw_h2_front *h = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    struct lw_request *req = lw_request_new(h->conn, &h2_ops);
    req->front_state = stream_state_new(req);
    req->stream_id = frame->hd.stream_id;
    req->proto = "h2";
    for (size_t i = 0; i < LW_ARRAY_LEN(h->early_priority); i++) {
        if (h->early_priority[i] == req->stream_id) {
            st(req)->has_priority = true;
            h->early_priority[i] = 0;
        }
    }
    lw_list_push_back(&h->requests, &req->link);
    h->num_open++;
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, req);
    h->hdr_stream_id = frame->hd.stream_id;
    h->hdr_req = req;
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
{
    struct lw_h2_front *h = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0; /* trailers are dropped: HTTP/1.1 chunked trailers are rarely wanted by apps */
    }
    struct lw_request *req = frame->hd.stream_id == h->hdr_stream_id
                                 ? h->hdr_req
                                 : nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (req == NULL) {
        return 0;
    }
    const struct lw_config_limits *lim = &h->conn->worker->config->limits;
    struct h2_stream_state *s = st(req);
    /* RFC 9113 section 6.5.2 counts 32 bytes of overhead per field. */
    s->header_bytes += namelen + valuelen + 32;
    if (s->header_bytes > lim->max_header_bytes || req->num_headers >= lim->max_headers) {
        s->reject_status = 431;
        return 0;
    }
    const char *n = (const char *)name, *v = (const char *)value;
    if (namelen > 0 && n[0] == ':') {
        if (namelen == 7 && memcmp(n, ":method", 7) == 0) {
            req->method = lw_arena_strndup(&req->arena, v, valuelen);
            req->method_len = valuelen;
            req->is_head = valuelen == 4 && memcmp(v, "HEAD", 4) == 0;
            if (valuelen == 7 && memcmp(v, "CONNECT", 7) == 0) {
                s->reject_status = 501;
            }
        } else if (namelen == 5 && memcmp(n, ":path", 5) == 0) {
            lw_request_set_path(req, v, valuelen, false);
        } else if (namelen == 10 && memcmp(n, ":authority", 10) == 0) {
            req->authority = lw_arena_strndup(&req->arena, v, valuelen);
            req->authority_len = valuelen;
        } else if (namelen == 7 && memcmp(n, ":scheme", 7) == 0) {
            req->scheme = lw_arena_strndup(&req->arena, v, valuelen);
        } else if (namelen == 9 && memcmp(n, ":protocol", 9) == 0) {
            s->reject_status = 501;
        }
        return 0;
    }
    if (namelen == 4 && memcmp(n, "host", 4) == 0 && req->authority == NULL) {
        req->authority = lw_arena_strndup(&req->arena, v, valuelen);
        req->authority_len = valuelen;
        return 0;
    }
    if (namelen == 4 && memcmp(n, "host", 4) == 0) {
        return 0; /* :authority wins (RFC 9113 section 8.3.1) */
    }
    if (namelen == 8 && memcmp(n, "priority", 8) == 0) {
        s->has_priority = true; /* nghttp2 reads it itself (RFC 9218) */
    }
    if (namelen == 14 && memcmp(n, "content-length", 14) == 0) {
        /* nghttp2 has checked it is a number and will check it against the DATA frames. */
        req->content_length = strtoll(lw_arena_strndup(&req->arena, v, valuelen), NULL, 10);
    }
    lw_request_add_header(req, n, namelen, v, valuelen);
    return 0;
}

static void start_request(struct lw_h2_front *h, struct lw_request *req, bool end_stream)
{
    struct h2_stream_state *s = st(req);
    if (!s->has_priority) {
        /* No signal: share the connection round-robin with the other unsignalled streams
         * (RFC 9218's default would send them one after another, so a small script asked for
         * during a large page would wait for all of it). A later PRIORITY_UPDATE still wins. */
        nghttp2_extpri pri = {.urgency = NGHTTP2_EXTPRI_DEFAULT_URGENCY, .inc = 1};
        nghttp2_session_change_extpri_stream_priority(h->session, req->stream_id, &pri, 0);
    }
    req->has_body = !end_stream;
    if (s->reject_status == 0 && (req->authority == NULL || req->authority_len == 0)) {
        s->reject_status = 400;
    }
    if (s->reject_status != 0) {
        lw_log_info("%s: stream %d: refused with %d", h->conn->peer_str, req->stream_id, s->reject_status);
        glitch(h, "refused request");
        req->body_end = true;
        lw_request_refuse(req, s->reject_status, "refused request");
        return;
    }
    bool pushed_before = h->memo != NULL && lw_push_memo_has(h->memo, req->path, req->path_len);
    if (h->flight_formed && h->conn->lowat_set) { /* only a write budget holds output */
        if (h->awaiting == 0) {
            h->awaited_since_us = lw_time_mono_us();
        }
        s->awaited = true;
        h->awaiting++;
    }
    lw_request_dispatch(req);
    if (pushed_before && req->front_attached) {
        /* The client asked for what was pushed to it: the push was wasted or came too late. */
        lw_metrics_add(&lw_request_arm_metrics(req)->pushed_then_requested, 1);
    }
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct lw_h2_front *h = user_data;
    if (frame->hd.type == NGHTTP2_PRIORITY_UPDATE) {
        /* nghttp2 has applied it (RFC 9218); the stream is now signalled, and our defaults
         * for unsignalled streams must leave it alone. */
        const nghttp2_ext_priority_update *pu = frame->ext.payload;
        struct lw_request *target = nghttp2_session_get_stream_user_data(session, pu->stream_id);
        if (target != NULL && target->front_state != NULL) {
            st(target)->has_priority = true;
        } else if (target == NULL) {
            h->early_priority[h->early_priority_next++ % LW_ARRAY_LEN(h->early_priority)] = pu->stream_id;
        }
        return 0;
    }
    struct lw_request *req = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (req == NULL) {
        return 0;
    }
    bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
            start_request(h, req, end_stream);
            if (end_stream && req->front_attached && st(req)->reject_status == 0) {
                lw_request_body_end(req);
            }
        } else if (end_stream) {
            lw_request_body_end(req); /* trailers end the body */
        }
        break;
    case NGHTTP2_DATA:
        if (end_stream) {
            lw_request_body_end(req);
        }
        break;
    default:
        break;
    }
    return 0;
}

static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data,
                              size_t len, void *user_data)
{
    struct lw_request *req = nghttp2_session_get_stream_user_data(session, stream_id);
    if (req == NULL || st(req)->reject_status != 0 || !req->back_attached) {
        /* Nobody will read these bytes: give the window straight back. */
        nghttp2_session_consume(session, stream_id, len);
        return 0;
    }
    lw_request_body(req, (const char *)data, len);
    if (lw_request_body_is_full(req)) {
        st(req)->unconsumed += len;
    } else {
        nghttp2_session_consume(session, stream_id, len);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data)
{
    struct lw_h2_front *h = user_data;
    struct lw_request *req = nghttp2_session_get_stream_user_data(session, stream_id);
    if (req == NULL) {
        return 0;
    }
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    if (stream_id == h->hdr_stream_id) {
        h->hdr_req = NULL;
    }
    h->num_open--;
    if (req->is_push) {
        h->pushes_open--;
        if (error_code != NGHTTP2_NO_ERROR) {
            lw_metrics_add(&lw_request_arm_metrics(req)->pushes_cancelled, 1);
            /* Typically CANCEL: the client had it cached. The backend fetch stops with it. */
            lw_log_debug("%s: push stream %d of %.*s cancelled by the client (%s)", h->conn->peer_str, stream_id,
                         (int)req->path_len, req->path, nghttp2_http2_strerror(error_code));
        }
    }
    bool complete = req->resp_done && lw_buf_size(&req->resp_body) == 0 && error_code == NGHTTP2_NO_ERROR;
    if (error_code == NGHTTP2_PROTOCOL_ERROR || error_code == NGHTTP2_FLOW_CONTROL_ERROR) {
        /* Whoever reset it, the peer provoked it: malformed headers, DATA past the window... */
        glitch(h, nghttp2_http2_strerror(error_code));
    }
    if (!complete && error_code != NGHTTP2_NO_ERROR) {
        lw_log_debug("%s: stream %d closed: %s", h->conn->peer_str, stream_id, nghttp2_http2_strerror(error_code));
    }
    not_awaited(h, req);
    if (st(req)->unconsumed > 0) {
        /* Body bytes held back from the window (the exchange's buffer was full): the stream's
         * window goes with it, but the connection's must get them back, or every upload
         * cancelled that way would shrink it for good, until no upload could move. */
        nghttp2_session_consume_connection(session, st(req)->unconsumed);
        st(req)->unconsumed = 0;
    }
    req->front_state = NULL;
    lw_request_front_done(req, !complete);
    if (h->num_open == 0) {
        if (h->goaway) {
            /* Draining and the last stream is done: finish the connection. */
            nghttp2_session_terminate_session(session, NGHTTP2_NO_ERROR);
        }
        lw_conn_set_timeout(h->conn, h->conn->worker->config->limits.client_idle_timeout_ms);
    }
    return 0;
}

/* Count one provoked error; past the budget, end the connection with ENHANCE_YOUR_CALM. */
static void glitch(struct lw_h2_front *h, const char *what)
{
    uint64_t now = lw_time_mono_us();
    h->glitch_tokens += (double)(now - h->glitch_refill_us) * GLITCH_PER_S / 1e6;
    if (h->glitch_tokens > GLITCH_BURST) {
        h->glitch_tokens = GLITCH_BURST;
    }
    h->glitch_refill_us = now;
    h->glitch_tokens -= 1.0;
    if (h->glitch_tokens < 0 && !h->goaway) {
        lw_log_warn("%s: too many protocol errors (last: %s): GOAWAY ENHANCE_YOUR_CALM", h->conn->peer_str, what);
        h->goaway = true;
        nghttp2_session_terminate_session(h->session, NGHTTP2_ENHANCE_YOUR_CALM);
        lw_conn_want_flush(h->conn);
    }
}

/* DATA frames no larger than the write budget left: nghttp2 would otherwise build 16 KiB
 * frames, and a frame produced is a frame sent, ahead of anything more urgent. While the
 * budget is in force, frames are also no larger than one TLS record (one segment): streams
 * served in turn (incremental) take turns frame by frame, so a response that became ready
 * since the last pass gets its turn within this pass instead of after a stream that
 * would otherwise fill the whole budget with one frame. */
static ssize_t on_read_length(nghttp2_session *session, uint8_t frame_type, int32_t stream_id,
                              int32_t session_window, int32_t stream_window, uint32_t max_frame, void *user_data)
{
    struct lw_h2_front *h = user_data;
    ssize_t n = LW_MIN(session_window, stream_window);
    n = LW_MIN(n, (ssize_t)max_frame);
    if (n > DATA_FRAME_MAX) {
        /* Unless the frame ends the body: one full frame then costs less than two. */
        struct lw_request *req = nghttp2_session_get_stream_user_data(session, stream_id);
        if (req == NULL || !req->resp_done || lw_buf_size(&req->resp_body) > (size_t)n) {
            n = DATA_FRAME_MAX;
        }
    }
    size_t room = LW_MIN(h->produce_left, h->frame_max);
    if ((size_t)n + 9 > room) {
        n = room > 9 ? (ssize_t)(room - 9) : 1;
    }
    return n > 0 ? n : 1;
}

static int on_invalid_frame(nghttp2_session *session, const nghttp2_frame *frame, int lib_error_code,
                            void *user_data)
{
    struct lw_h2_front *h = user_data;
    if (frame->hd.stream_id == 0) {
        /* Stream-level errors are counted once, when the stream closes with them. */
        glitch(h, nghttp2_strerror(lib_error_code));
    }
    lw_log_debug("%s: invalid frame type %u on stream %d: %s", h->conn->peer_str, frame->hd.type,
                 frame->hd.stream_id, nghttp2_strerror(lib_error_code));
    return 0;
}

static int on_error(nghttp2_session *session, int lib_error_code, const char *msg, size_t len, void *user_data)
{
    struct lw_h2_front *h = user_data;
    lw_log_debug("%s: h2: %.*s", h->conn->peer_str, (int)len, msg);
    return 0;
}

/*
 * nghttp2's memory, through nghttp2_mem, for what an idle connection keeps resident (RSS
 * counts the pages that were touched, not the bytes that were allocated):
 * - A session allocates a 16 KiB outbound frame buffer when it is made, and keeps it. An idle
 *   connection needs none of its contents (each frame is serialized afresh when it is sent),
 *   yet every page a frame was written to stays resident: one for a new connection's
 *   SETTINGS, all of them after a large DATA frame. So the buffer is page-aligned, and
 *   release_idle gives its pages back (MADV_DONTNEED: they read as zero and cost nothing until
 *   written again).
 * - calloc of a page or more (the stream map's table, 4 KiB, made with the session and only
 *   written when a stream opens) gets pages that are zero by MADV_DONTNEED instead of by
 *   memset, so they cost nothing until used.
 * Everything else goes to malloc unchanged.
 */
#define FRAMEBUF_MIN (16 * 1024)

static size_t page_size(void)
{
    /* Workers race to fill it in, all with the same value: atomic, so that is no data race. */
    static _Atomic size_t size;
    size_t v = atomic_load_explicit(&size, memory_order_relaxed);
    if (v == 0) {
        long p = sysconf(_SC_PAGESIZE);
        v = p > 0 ? (size_t)p : 4096;
        atomic_store_explicit(&size, v, memory_order_relaxed);
    }
    return v;
}

static void *page_aligned(size_t len)
{
    void *p = NULL;
    if (posix_memalign(&p, page_size(), len) != 0) {
        lw_log_error("out of memory (%zu bytes)", len);
        abort();
    }
    return p;
}

/* Give back the whole pages of [p, p + len); p is page-aligned. They read as zero afterwards. */
static size_t drop_pages(void *p, size_t len)
{
    size_t whole = len / page_size() * page_size();
    if (whole > 0 && madvise(p, whole, MADV_DONTNEED) != 0) {
        return 0;
    }
    return whole;
}

static __attribute__((noinline)) void *framebuf_new(struct lw_h2_front *h, size_t size)
{
    h->framebuf = page_aligned(size);
    h->framebuf_len = size;
    return h->framebuf;
}

/*
 * These run for every header field nghttp2 decodes and every frame it queues. Each stream
 * takes and gives back about five small blocks (the stream, its HEADERS and DATA items, the
 * copied header array), hundreds at a time when many streams end in one pass: past glibc's
 * per-thread caches (seven blocks a size) they went through its bins and their coalescing,
 * about 1,000 instructions per request. So blocks of up to 512 bytes are kept per worker, by
 * size class, with room for a busy moment. A NULL from malloc, realloc or calloc reaches
 * nghttp2 as before, which fails the call with NGHTTP2_ERR_NOMEM.
 */
static struct lw_mem_cache *small_class(struct lw_h2_front *h, size_t size)
{
    return &h->conn->worker->h2_mem[(size - 1) / LW_WORKER_H2_CLASS];
}

static void *on_mem_malloc(size_t size, void *user_data)
{
    struct lw_h2_front *h = user_data;
    /* The only allocation this large while the session is made is its frame buffer. */
    if (h->creating && size >= FRAMEBUF_MIN && h->framebuf == NULL) {
        return framebuf_new(h, size);
    }
    if (size == 0 || size > LW_WORKER_H2_CLASSES * LW_WORKER_H2_CLASS) {
        return malloc(size);
    }
    struct lw_mem_cache *mc = small_class(h, size);
    void *p = lw_mem_cache_take(mc);
    return p != NULL ? p : malloc(mc->size);
}

static __attribute__((noinline)) void *zeroed_pages(size_t len)
{
    char *p = page_aligned(len);
    size_t zeroed = drop_pages(p, len);
    memset(p + zeroed, 0, len - zeroed);
    return p;
}

static void *on_mem_calloc(size_t n, size_t size, void *user_data)
{
    (void)user_data;
    if (size == 0 || n > SIZE_MAX / size || n * size < page_size()) {
        return calloc(n, size);
    }
    return zeroed_pages(n * size);
}

static void *on_mem_realloc(void *ptr, size_t size, void *user_data)
{
    struct lw_h2_front *h = user_data;
    if (ptr == NULL) {
        return on_mem_malloc(size, user_data); /* nghttp2 makes its buffers this way */
    }
    if (ptr == h->framebuf) {
        h->framebuf = NULL;
    }
    return realloc(ptr, size);
}

/* Any block nghttp2 frees came from malloc, calloc or realloc: its usable size says which
 * class it can serve. */
static void on_mem_free(void *ptr, void *user_data)
{
    struct lw_h2_front *h = user_data;
    if (ptr == h->framebuf) {
        h->framebuf = NULL;
    }
    size_t usable = ptr != NULL ? malloc_usable_size(ptr) : 0;
    size_t cls = usable / LW_WORKER_H2_CLASS;
    if (cls == 0 || cls > LW_WORKER_H2_CLASSES) {
        free(ptr);
        return;
    }
    lw_mem_cache_put(small_class(h, cls * LW_WORKER_H2_CLASS), ptr);
}

/* nghttp2_session_mem_send reports a frame sent just before it hands over the frame's bytes:
 * lw_h2_front_produce ends the record after them. */
static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct lw_h2_front *h = user_data;
    /* A response that ends on HEADERS (a 204, a 304, trailers) is as usable whole as one that
     * ends on DATA (on_send_data_frame). */
    h->ends_response = frame->hd.type == NGHTTP2_HEADERS && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM);
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        nghttp2_session_get_stream_remote_close(session, frame->hd.stream_id) == 0) {
        /* The response is complete and the client has not ended its side (a refusal before
         * the body, an answer that needed no more of it): tell it to stop sending, without
         * error (RFC 9113 section 8.1). Or the stream stays open, a slot of the client's
         * concurrency and a reason for the connection never to count as idle or drained. */
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    }
    return 0;
}

static struct lw_h2_front *front_new(struct lw_conn *c)
{
    struct lw_h2_front *h = lw_calloc(1, sizeof(*h));
    h->conn = c;
    lw_list_init(&h->requests);
    h->glitch_tokens = GLITCH_BURST;
    h->glitch_refill_us = lw_time_mono_us();
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, on_invalid_frame);
    nghttp2_session_callbacks_set_error_callback2(cb, on_error);
    nghttp2_session_callbacks_set_data_source_read_length_callback(cb, on_read_length);
    nghttp2_session_callbacks_set_send_data_callback(cb, on_send_data_frame);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    /* Window updates follow what the backend has taken, not what we have received. */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    /* Clients reprioritize streams with PRIORITY_UPDATE frames (RFC 9218): nghttp2 applies
     * them only when asked to take them in. */
    nghttp2_option_set_builtin_recv_extension_type(opt, NGHTTP2_PRIORITY_UPDATE);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    nghttp2_mem mem = {.mem_user_data = h,
                       .malloc = on_mem_malloc,
                       .free = on_mem_free,
                       .calloc = on_mem_calloc,
                       .realloc = on_mem_realloc};
    h->creating = true;
    nghttp2_session_server_new3(&h->session, cb, h, opt, &mem);
    h->creating = false;
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    const struct lw_config_limits *lim = &c->worker->config->limits;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, lim->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 65535},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, lim->max_header_bytes},
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    nghttp2_submit_settings(h->session, NGHTTP2_FLAG_NONE, iv, LW_ARRAY_LEN(iv));
    nghttp2_session_set_local_window_size(h->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
    return h;
}

struct lw_h2_front *lw_h2_front_new(struct lw_conn *c)
{
    return front_new(c);
}

/* base64url (RFC 4648 section 5) without padding, as HTTP2-Settings carries. */
static ssize_t base64url_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = in[i];
        int v;
        if (ch >= 'A' && ch <= 'Z') {
            v = ch - 'A';
        } else if (ch >= 'a' && ch <= 'z') {
            v = ch - 'a' + 26;
        } else if (ch >= '0' && ch <= '9') {
            v = ch - '0' + 52;
        } else if (ch == '-' || ch == '+') {
            v = 62;
        } else if (ch == '_' || ch == '/') {
            v = 63;
        } else if (ch == '=') {
            break;
        } else {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap) {
                return -1;
            }
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return (ssize_t)o;
}

/* Whether the values of an HTTP2-Settings payload (6-byte entries) are ones the client could
 * send in a SETTINGS frame (RFC 9113 section 6.5.2): nghttp2 would refuse them only after the
 * 101, with a GOAWAY, while the request went on to the backend. Refused before it, the request
 * is served over HTTP/1.1 instead. */
static bool upgrade_settings_valid(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i + 6 <= len; i += 6) {
        uint16_t id = (uint16_t)(p[i] << 8 | p[i + 1]);
        uint32_t v = (uint32_t)p[i + 2] << 24 | (uint32_t)p[i + 3] << 16 | (uint32_t)p[i + 4] << 8 | p[i + 5];
        bool ok = (id != NGHTTP2_SETTINGS_ENABLE_PUSH || v <= 1) &&
                  (id != NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE || v <= (uint32_t)NGHTTP2_MAX_WINDOW_SIZE) &&
                  (id != NGHTTP2_SETTINGS_MAX_FRAME_SIZE || (v >= (1u << 14) && v <= (1u << 24) - 1));
        if (!ok) {
            return false;
        }
    }
    return true;
}

struct lw_h2_front *lw_h2_front_new_upgrade(struct lw_conn *c, const char *settings, size_t settings_len,
                                            struct lw_request *req)
{
    uint8_t payload[256];
    ssize_t n = base64url_decode(settings, settings_len, payload, sizeof(payload));
    if (n < 0 || n % 6 != 0 || !upgrade_settings_valid(payload, (size_t)n)) {
        return NULL;
    }
    struct lw_h2_front *h = front_new(c);
    req->front_state = stream_state_new(req);
    int rv = nghttp2_session_upgrade2(h->session, payload, (size_t)n, req->is_head, req);
    if (rv != 0) {
        lw_log_info("%s: h2c upgrade refused: %s", c->peer_str, nghttp2_strerror(rv));
        req->front_state = NULL;
        nghttp2_session_del(h->session);
        free(h);
        return NULL;
    }
    req->ops = &h2_ops;
    req->stream_id = 1;
    req->proto = "h2";
    lw_list_push_back(&h->requests, &req->link);
    h->num_open++;
    return h;
}

int lw_h2_front_recv(struct lw_h2_front *h, const char *data, size_t len)
{
    ssize_t rv = nghttp2_session_mem_recv(h->session, (const uint8_t *)data, len);
    if (rv < 0) {
        lw_log_info("%s: HTTP/2 connection error: %s", h->conn->peer_str, nghttp2_strerror((int)rv));
        if (rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
            /* The one fatal error the client can be told of: its output is not what is flooded
             * (NGHTTP2_ERR_FLOODED), nor is it a stranger to HTTP/2 (a bad preface). */
            nghttp2_session_terminate_session(h->session, NGHTTP2_ENHANCE_YOUR_CALM);
        }
        return LW_EPROTO;
    }
    return 0;
}

/* Nothing is left to send: a connection that has not had a stream yet (a browser's preconnect,
 * a client that opened it early) gives back the pages its SETTINGS exchange wrote to the frame
 * buffer. Our SETTINGS and the ACK of the client's usually go out in separate passes, hence a
 * few releases; a small cap keeps a client that sends only PINGs from costing a system call
 * each. None once streams come, so this costs no CPU per request. */
#define FRAMEBUF_RELEASES_MAX 4

static void release_idle(struct lw_h2_front *h)
{
    if (h->framebuf != NULL && h->framebuf_dirty && h->framebuf_releases < FRAMEBUF_RELEASES_MAX &&
        h->num_open == 0 && nghttp2_session_get_last_proc_stream_id(h->session) == 0) {
        drop_pages(h->framebuf, h->framebuf_len);
        h->framebuf_dirty = false;
        h->framebuf_releases++;
    }
}

size_t lw_h2_front_produce(struct lw_h2_front *h, size_t budget)
{
    size_t total = 0;
    /* While writing for responsiveness (LOWAT set), frames of one record; see on_read_length. */
    h->frame_max = h->conn->lowat_set ? LW_MAX(h->conn->record_size, (size_t)PRODUCE_MIN) : SIZE_MAX;
    while (total < budget && (budget - total >= PRODUCE_MIN || total == 0)) {
        h->produce_left = budget - total;
        h->produced = 0;
        const uint8_t *out;
        /* DATA frames go out from inside this call (on_send_data_frame), other frames as out. */
        ssize_t n = nghttp2_session_mem_send(h->session, &out);
        total += h->produced;
        if (h->produced > 0) {
            h->flight_formed = true;
        }
        if (n < 0) {
            lw_log_info("%s: HTTP/2 send error: %s", h->conn->peer_str, nghttp2_strerror((int)n));
            lw_conn_close(h->conn);
            return total;
        }
        if (n == 0 && h->produced == 0) {
            release_idle(h);
            break;
        }
        h->framebuf_dirty = true;
        if (n > 0) {
            lw_conn_send(h->conn, out, (size_t)n);
            total += (size_t)n;
            if (h->ends_response) {
                h->ends_response = false;
                lw_conn_end_record(h->conn);
            }
        }
        if (h->conn->closed) {
            return total;
        }
    }
    if (total > 0) {
        h->response_ready = false;
    }
    return total;
}

uint64_t lw_h2_front_awaited_since(const struct lw_h2_front *h)
{
    return h->awaiting > 0 && !h->response_ready ? h->awaited_since_us : 0;
}

bool lw_h2_front_is_done(const struct lw_h2_front *h)
{
    return !nghttp2_session_want_read(h->session) && !nghttp2_session_want_write(h->session);
}

enum lw_h2_flight lw_h2_front_first_flight(struct lw_h2_front *h)
{
    if (h->flight_formed) {
        return LW_H2_FLIGHT_FORMED;
    }
    if (h->num_open > 0) {
        return LW_H2_FLIGHT_NO_BODY;
    }
    /* A first response without a body (HEAD, 204, 304) closed its stream without DATA: what
     * follows is no longer the first flight. */
    return nghttp2_session_get_last_proc_stream_id(h->session) == 0 ? LW_H2_FLIGHT_NO_REQUEST : LW_H2_FLIGHT_FORMED;
}

bool lw_h2_front_is_idle(const struct lw_h2_front *h)
{
    return h->num_open == 0;
}

void lw_h2_front_shutdown(struct lw_h2_front *h)
{
    if (h->goaway) {
        return;
    }
    h->goaway = true;
    if (h->num_open == 0) {
        /* Nothing in flight: GOAWAY and stop reading, so the connection closes once it is out. */
        nghttp2_session_terminate_session(h->session, NGHTTP2_NO_ERROR);
        return;
    }
    /* Streams up to the last one processed finish; newer ones are refused by nghttp2. */
    nghttp2_submit_goaway(h->session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->session),
                          NGHTTP2_NO_ERROR, NULL, 0);
}

void lw_h2_front_free(struct lw_h2_front *h)
{
    while (!lw_list_is_empty(&h->requests)) {
        struct lw_request *req = LW_LIST_ENTRY(h->requests.next, struct lw_request, link);
        req->front_state = NULL;
        lw_request_front_done(req, true);
    }
    nghttp2_session_del(h->session);
    free(h->memo);
    free(h);
}
