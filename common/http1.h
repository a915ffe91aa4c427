/* SPDX-License-Identifier: MIT */
/*
 * Strict HTTP/1.1 message parser (RFC 9112), sans-I/O: it takes bytes and returns how many
 * it consumed, LW_EINCOMPLETE, or an error with a static reason string. Every string it
 * hands out is a view into the caller's buffer (no copies), valid as long as those bytes.
 *
 * Strict means a proxy's strict: what two parsers could read two ways is rejected, because
 * that gap is where request smuggling lives. Rejected: bare CR, bare LF as a line end,
 * obs-fold, whitespace before the colon, CTL bytes (other than HTAB) in values, NUL
 * anywhere, Content-Length together with Transfer-Encoding, differing or malformed
 * Content-Length values, a Transfer-Encoding other than chunked alone on a request or on
 * a response with a body, HTTP/1.1 requests without exactly one Host.
 */
#ifndef LW_COMMON_HTTP1_H
#define LW_COMMON_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

/* Largest Content-Length accepted (2^62): room for arithmetic on it without overflow. */
#define LW_HTTP1_MAX_CONTENT_LENGTH ((uint64_t)1 << 62)
/* Longest chunk size line, extensions included, and longest trailer section (LW_ELIMIT). */
#define LW_HTTP1_CHUNK_LINE_MAX 4096
#define LW_HTTP1_TRAILER_MAX 16384

struct lw_http1_header {
    const char *name;
    size_t name_len;
    const char *value; /* optional whitespace around the value already trimmed */
    size_t value_len;
};

enum lw_http1_body {
    LW_HTTP1_BODY_NONE = 0, /* no body follows the head */
    LW_HTTP1_BODY_LENGTH,   /* content_length bytes follow */
    LW_HTTP1_BODY_CHUNKED,  /* chunked transfer coding: use lw_http1_chunked_decode */
    LW_HTTP1_BODY_CLOSE,    /* responses only: the body runs until the connection closes */
};

struct lw_http1_request {
    const char *method;
    size_t method_len;
    const char *target; /* request-target as sent: origin-form, absolute-form, authority-form or "*" */
    size_t target_len;
    int minor_version; /* 0 or 1 */
    struct lw_http1_header *headers;
    size_t num_headers;
    const char *host; /* value of the Host header, NULL if absent */
    size_t host_len;
    enum lw_http1_body body;
    uint64_t content_length; /* when body == LW_HTTP1_BODY_LENGTH ("Content-Length: 0" gives NONE) */
    bool keep_alive;         /* 1.1 without "Connection: close", or 1.0 with "Connection: keep-alive" */
    bool expect_continue;    /* "Expect: 100-continue" */
    bool upgrade;            /* an Upgrade header listed in Connection */
};

struct lw_http1_response {
    int minor_version;
    int status; /* 100..999 */
    const char *reason;
    size_t reason_len;
    struct lw_http1_header *headers;
    size_t num_headers;
    enum lw_http1_body body;
    /* The Content-Length field as one number (a list of identical values, "5, 5", is read as
     * 5), whatever the body: a HEAD or 304 response's describes the resource. The body's
     * length when body == LW_HTTP1_BODY_LENGTH ("Content-Length: 0" gives NONE). */
    bool has_content_length;
    uint64_t content_length;
    bool keep_alive; /* the server lets us reuse the connection after this response */
};

/*
 * Parse one request head from buf[0..len).
 * headers/max_headers: caller-provided storage for the header views.
 * max_head_bytes: the head (request line + headers + final CRLF) may not be longer.
 * Returns the length of the head (the body starts at buf + return value), LW_EINCOMPLETE if
 * the head is not complete yet (and len < max_head_bytes), LW_ELIMIT if the head is longer
 * than max_head_bytes or has more than max_headers headers, LW_EPROTO for a malformed or
 * ambiguous request. On LW_ELIMIT and LW_EPROTO, *reason is set to a static string.
 */
ssize_t lw_http1_parse_request(const char *buf, size_t len, struct lw_http1_request *req,
                               struct lw_http1_header *headers, size_t max_headers, size_t max_head_bytes,
                               const char **reason);

/*
 * Parse one response head from buf[0..len); same conventions as lw_http1_parse_request.
 * request_is_head: the request was HEAD, so the response has no body whatever it says.
 * 1xx, 204 and 304 responses have no body. Transfer-Encoding: chunked gives CHUNKED,
 * Content-Length gives LENGTH, neither gives CLOSE. Content-Length together with
 * Transfer-Encoding is LW_EPROTO, and so is any other transfer coding on a response with a
 * body ("gzip", "gzip, chunked"): its bytes could only be passed on still coded.
 */
ssize_t lw_http1_parse_response(const char *buf, size_t len, bool request_is_head, struct lw_http1_response *res,
                                struct lw_http1_header *headers, size_t max_headers, size_t max_head_bytes,
                                const char **reason);

/* Incremental decoder of the chunked transfer coding (RFC 9112 section 7.1). */
struct lw_http1_chunked {
    int _state;
    uint64_t _remaining;   /* data bytes left in the current chunk */
    size_t _line_bytes;    /* bytes seen on the current size or trailer line */
    size_t _trailer_bytes; /* bytes of trailer section seen */
    unsigned _digits;
};

void lw_http1_chunked_init(struct lw_http1_chunked *c);

/*
 * Decode from buf[0..len). Consumes framing bytes and at most one run of data bytes, and
 * returns how many bytes it consumed (possibly 0 when it needs more input). When data bytes
 * were consumed, *data and *data_len give them (a view into buf ending at buf + return
 * value); otherwise *data_len is 0. Call again with the rest until it consumes nothing or
 * lw_http1_chunked_is_done. Chunk extensions are skipped and trailers are discarded, both
 * bounded (LW_ELIMIT). Malformed framing is LW_EPROTO. Both set *reason.
 */
ssize_t lw_http1_chunked_decode(struct lw_http1_chunked *c, const char *buf, size_t len, const char **data,
                                size_t *data_len, const char **reason);

/* The last chunk and the trailer section have been consumed. */
bool lw_http1_chunked_is_done(const struct lw_http1_chunked *c);

/* Case-insensitive comparison of a header name (or any token) with a lowercase literal.
 * Inline, so that the literal's length is known at compile time and compared first. */
static inline bool lw_http1_name_eq(const char *name, size_t len, const char *lower);

/* Eight bytes (a word loaded with memcpy) lowercased at once: 0x20 added to each byte in
 * 'A'..'Z' and to no other. No carry crosses a byte, as each sum stays below 0x100. */
static inline uint64_t lw_http1_lower8(uint64_t w);

/*
 * Step over one element of a comma-separated list (RFC 9110 5.6.1): *p starts at the value,
 * end is its end. Returns false when no element is left; otherwise [*elem, +*elem_len) is the
 * element with OWS trimmed, possibly empty, and *p moves past it (NULL after the last one).
 */
bool lw_http1_next_element(const char **p, const char *end, const char **elem, size_t *elem_len);

/* Does a comma-separated header value (e.g. Connection) contain token, case-insensitively? */
bool lw_http1_has_token(const char *value, size_t len, const char *lower_token);

/*
 * Hop-by-hop headers that a proxy never forwards: Connection, Keep-Alive, Proxy-Connection,
 * TE, Transfer-Encoding, Upgrade, HTTP2-Settings, Trailer(s)... (RFC 9110 section 7.6.1).
 */
bool lw_http1_is_hop_by_hop(const char *name, size_t len);

/* May v[0..len) stand as a Host value (RFC 9110 section 7.2)? Only reg-name, IP-literal and
 * port characters (RFC 3986 section 3.2.2): no userinfo, path, query or fragment delimiter,
 * so that every reader ends the host where we do. The request parser checks Host with it. */
bool lw_http1_is_host(const char *v, size_t len);

/* Is c a tchar (RFC 9110 section 5.6.2)? */
bool lw_http1_is_tchar(unsigned char c);

static inline uint64_t lw_http1_lower8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t low7 = w & ~highs;
    uint64_t ge_a = low7 + ones * (0x80 - 'A'); /* high bit set where low7 >= 'A' */
    uint64_t gt_z = low7 + ones * (0x7f - 'Z'); /* high bit set where low7 > 'Z' */
    return w | ((ge_a & ~gt_z & ~w & highs) >> 2);
}

static inline bool lw_http1_name_eq(const char *name, size_t len, const char *lower)
{
    if (strlen(lower) != len) {
        return false;
    }
    if (len >= 8) {
        /* Eight bytes a step, the last step overlapping the one before: most names compared
         * are long (Content-Length, Connection), and they are compared per response. */
        uint64_t a, b;
        for (size_t i = 0; i + 8 < len; i += 8) {
            memcpy(&a, name + i, 8);
            memcpy(&b, lower + i, 8);
            if (lw_http1_lower8(a) != b) {
                return false;
            }
        }
        memcpy(&a, name + len - 8, 8);
        memcpy(&b, lower + len - 8, 8);
        return lw_http1_lower8(a) == b;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c >= 'A' && c <= 'Z') {
            c = (unsigned char)(c + ('a' - 'A'));
        }
        if (c != (unsigned char)lower[i]) {
            return false;
        }
    }
    return true;
}

#endif
