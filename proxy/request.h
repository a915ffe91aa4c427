/* SPDX-License-Identifier: MIT */
/*
 * One proxied exchange: a frontend request (an h2 stream or an h1 message) and the HTTP/1.1
 * exchange on a backend connection that serves it. The frontend fills in the request and
 * feeds its body; the backend side feeds the response; each side is told about the other
 * through calls here, so neither knows the other's protocol.
 *
 * Lifetime: the request lives while either side holds it. The frontend lets go with
 * lw_request_front_done, the backend side when the exchange on its connection ends; the
 * last one frees it (and writes the access log line). Buffers in both directions are
 * bounded by limits.max_buffered_bytes: past it the producing side is paused.
 */
#ifndef LW_PROXY_REQUEST_H
#define LW_PROXY_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/list.h"
#include "config/config.h"
#include "proxy/worker.h"

struct lw_request;
struct lw_conn;
struct lw_worker;
struct lw_upstream;
struct lw_member;
struct lw_bconn;
struct lw_config_route;
struct lw_page;

struct lw_hdr {
    const char *name; /* lowercase */
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* How the backend side tells the frontend about the response. Called from the event loop,
 * never from inside a frontend call into this module. */
struct lw_request_front_ops {
    /* A 1xx the frontend should forward: 100 Continue, or 103 Early Hints (req->hints). */
    void (*on_interim)(struct lw_request *req, int status);
    /* status and response headers are ready. */
    void (*on_response_head)(struct lw_request *req);
    /* resp_body gained bytes, or resp_done became true, or resp_failed did with bytes still in
     * resp_body: those are written, then the response is aborted as by on_error(req, 0). */
    void (*on_response_body)(struct lw_request *req);
    /* The exchange failed: before the head, answer with status (502, 503, 504); after the
     * head, abort the response (RST_STREAM / close). */
    void (*on_error)(struct lw_request *req, int status);
    /* The backend took request body bytes: buffered bytes fell below the limit. */
    void (*on_request_body_drained)(struct lw_request *req);
};

struct lw_request {
    struct lw_worker *worker;
    struct lw_conn *conn; /* NULL once the frontend has let go */
    const struct lw_request_front_ops *ops;
    struct lw_list link; /* in the frontend's list of requests */
    int32_t stream_id;   /* h2 stream, 0 for h1 */
    void *front_state;   /* the frontend's per-request state, owned by the frontend */
    struct lw_arena arena;

    /* The request as the frontend received it (strings in the arena). */
    const char *method, *scheme, *authority, *path;
    size_t method_len, authority_len, path_len;
    struct lw_hdr *headers;
    size_t num_headers, cap_headers;
    int64_t content_length; /* -1: not given */
    bool has_body;          /* body bytes will follow the head */
    bool is_head;
    bool expect_continue;
    const char *proto; /* "h2", "http/1.1", "http/1.0" for the access log */
    char client[64];   /* "ip:port" of the client */
    const char *client_ip; /* the ip part, within client */
    size_t client_ip_len;
    bool tls;

    /* Toward the backend. */
    struct lw_buf bhead;  /* serialized request head, kept whole until the response head for retries */
    size_t bhead_sent;
    struct lw_buf bbody;  /* framed body bytes not yet written */
    uint64_t body_in;     /* raw body bytes received from the client */
    uint64_t body_out;    /* framed body bytes written to the backend */
    bool body_chunked;    /* framing toward the backend */
    bool body_end;        /* the client finished its body */
    bool body_end_queued; /* the framing end (last chunk) is in bbody */

    struct lw_upstream *upstream;
    struct lw_member *member;
    struct lw_bconn *bconn;
    struct lw_list wait_link; /* in the upstream's wait queue */
    int tries;
    uint64_t queued_us; /* when it started waiting for a backend connection */
    const char *fail_reason;
    char member_name[96]; /* the last member tried, for the access log */

    /* The response (strings in the arena). */
    int status;
    struct lw_hdr *rheaders;
    size_t num_rheaders;
    bool resp_has_length;
    uint64_t resp_length;
    bool resp_head_done;
    bool resp_done;
    bool resp_failed; /* the backend died mid-body: once resp_body is written, abort */
    struct lw_buf resp_body;
    uint64_t resp_sent; /* body bytes the frontend sent on */
    unsigned interim_103; /* Early Hints seen */
    struct lw_hdr *hints; /* Link values of the first 103 (strings in the arena) */
    size_t num_hints;
    bool hints_forwarded;
    bool hints_learned; /* the 103 came from learned hints, not from the backend */
    const struct lw_config_route *route;
    bool is_push;    /* a server push: the promised request lowat made itself */
    unsigned pushes; /* pushes this response started */
    enum lw_config_push_policy policy; /* the route's, or the client's experiment arm's */
    size_t slot;                       /* metrics slot: 0, or the experiment arm's */
    const char *arm_cookie;            /* "name=arm" to set, when the arm came from the hash */
    struct lw_page *page;              /* shared with its pushes, for the page-complete time */
    const char *experiment_name, *arm_name; /* for the access log; NULL outside experiments */
    uint64_t digest_keys[16];   /* cache-aware: keys of what this response pushed */
    unsigned num_digest_keys;

    uint64_t start_us, upstream_start_us, upstream_head_us;
    bool front_attached, back_attached;
    bool aborted;
    struct lw_reap reap;
};

/* A request for conn, attached to its frontend (front_attached). */
struct lw_request *lw_request_new(struct lw_conn *conn, const struct lw_request_front_ops *ops);

/* Set req->path (copied into the arena) from a request target's path and query, "/" put in
 * front when add_slash. A fragment ("#" to the end) is dropped: it is never part of a request. */
void lw_request_set_path(struct lw_request *req, const char *target, size_t len, bool add_slash);
/* Copy a header in (name lowercased). */
void lw_request_add_header(struct lw_request *req, const char *name, size_t name_len, const char *value,
                           size_t value_len);
/* First header with that lowercase name, or NULL. */
const struct lw_hdr *lw_request_find_header(const struct lw_request *req, const char *lower_name);

/* The head is complete: route it and send it to a backend. Failures found at once (no
 * route, queue full, connect refused everywhere) call ops->on_error before this returns. */
void lw_request_dispatch(struct lw_request *req);
/* Instead of dispatching: lowat answers the request itself with status (a method it does not
 * proxy, headers it refuses). Counted as a client request as a dispatched one is; calls
 * ops->on_error before this returns. reason: static, or NULL. */
void lw_request_refuse(struct lw_request *req, int status, const char *reason);
/* Raw body bytes from the client. */
void lw_request_body(struct lw_request *req, const char *data, size_t len);
/* The client's body is complete. */
void lw_request_body_end(struct lw_request *req);
/* Is the request body buffer over the limit (the frontend should stop reading)? */
bool lw_request_body_is_full(const struct lw_request *req);
/* The frontend took bytes from resp_body: maybe resume the backend read. */
void lw_request_resp_consumed(struct lw_request *req);
/* The frontend lets go (response sent, stream closed, or client gone: aborted). */
void lw_request_front_done(struct lw_request *req, bool aborted);

/* Backend side (backend.c and pool.c). */
/* A 1xx from the backend; headers: struct lw_http1_header[num_headers], borrowed. */
void lw_request_on_backend_interim(struct lw_request *req, int status, const void *headers, size_t num_headers);
/* The final head; headers: struct lw_http1_header[num_headers], borrowed. has_length and
 * length: its Content-Length as one number (lists of identical values already read as one),
 * which the frontend states in place of the field's own text. */
void lw_request_on_backend_head(struct lw_request *req, int status, const void *headers, size_t num_headers,
                                bool has_length, uint64_t length);
/* Framed body bytes were written to the backend (bbody shrank). */
void lw_request_on_body_written(struct lw_request *req);
/* Returns false when the frontend's buffer is full: stop reading until resumed. */
bool lw_request_on_backend_body(struct lw_request *req, const char *data, size_t len);
/* Bytes kept free in front of what lw_request_resp_reserve gives, so that a frontend can put
 * a frame header before body bytes in place (lw_buf_prepend) and hand both on in one piece. */
#define LW_REQUEST_RESP_HEADROOM 9
/* The payload of an HTTP/2 DATA frame that, with its header, fills one TLS record. Reads
 * straight into resp_body fill it up to a multiple of this, so that a backend faster than
 * its client leaves no short tail frame (a short record, a short write) behind each buffer. */
#define LW_REQUEST_RESP_UNIT (16384 - 9)

/* Where the backend may read body bytes straight into resp_body: at most want, and no more
 * than the buffer cap leaves (*room; 0 when the buffer is full: stop reading, as when
 * lw_request_on_backend_body returns false). NULL when the frontend is gone (its bytes go
 * nowhere: use lw_request_on_backend_body). The space is borrowed until the next call on req. */
char *lw_request_resp_reserve(struct lw_request *req, size_t want, size_t *room);
/* len bytes were read into the space lw_request_resp_reserve gave; the same contract as
 * lw_request_on_backend_body. */
bool lw_request_on_backend_body_read(struct lw_request *req, size_t len);
void lw_request_on_backend_done(struct lw_request *req);
/* The backend exchange failed. retryable: nothing of the request reached a backend that
 * could have acted on it. status: what to answer if no retry is possible (502 or 504). */
void lw_request_on_backend_error(struct lw_request *req, int status, const char *reason, bool retryable);

/* The response head is going out to the client now (metrics: time to first byte). */
void lw_request_note_response_head(struct lw_request *req);
/* The value of the client's cookie named name (a view into the request), or NULL. */
const char *lw_request_cookie(const struct lw_request *req, const char *name, size_t *len);
/* The metrics of req's experiment arm (slot 0 outside experiments). */
struct lw_arm_metrics *lw_request_arm_metrics(struct lw_request *req);
/* A push of parent's is starting: it shares the parent's page and arm. */
void lw_request_adopt_push(struct lw_request *parent, struct lw_request *push);

/* The standard reason phrase of status, or "" when there is none to give. */
const char *lw_request_status_text(int status);

#endif
