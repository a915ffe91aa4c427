/* SPDX-License-Identifier: MIT */
/*
 * Strict HTTP/1.1 head parser and chunked decoder (RFC 9112), the proxy's first line against
 * request smuggling. Heads are parsed line by line (memchr finds each LF, a 256-byte class
 * table checks every byte) into views of the caller's buffer, with no allocation and no
 * state kept between calls: a caller with a partial head calls again with more bytes, and
 * the head cap bounds the rework. Wherever the RFC lets a recipient choose between accepting
 * and rejecting something two implementations could frame differently, this file rejects it.
 */
#include "common/http1.h"

#include <string.h>

#include "common/err.h"

/* Empty lines skipped before a request line: RFC 9112 2.2 asks for at least one. */
#define LW_HTTP1_MAX_EMPTY_LINES 4

enum {
    LW_HTTP1_CT_TCHAR = 1 << 0,  /* token character (RFC 9110 5.6.2) */
    LW_HTTP1_CT_VALUE = 1 << 1,  /* field-value byte: HTAB, SP, VCHAR, obs-text (RFC 9110 5.5) */
    LW_HTTP1_CT_TARGET = 1 << 2, /* request-target byte: anything but SP and CTLs */
    LW_HTTP1_CT_HOST = 1 << 3,   /* Host byte: reg-name, IP-literal and port characters (RFC 3986) */
};

/* One lookup per byte instead of a chain of comparisons on the hottest loops. */
static const unsigned char char_class[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  2,  0,  0,  0,  0,  0,  0,  /* 0x00 */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
    2,  15, 6,  7,  15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15, 6,  /* 0x20 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 14, 6,  14, 6,  6,  /* 0x30 */
    6,  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 0x40 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 6,  14, 7,  15, /* 0x50 */
    7,  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 0x60 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 6,  7,  6,  15, 0,  /* 0x70 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0x80 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0x90 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xa0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xb0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xc0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xd0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xe0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xf0 */
};

/* What the header fields say about framing and the connection, gathered as they are parsed. */
struct head_fields {
    bool has_content_length;
    uint64_t content_length;
    bool has_transfer_encoding;
    unsigned codings;       /* transfer codings listed, over every Transfer-Encoding line */
    unsigned chunked_count; /* how many of those were chunked */
    bool conn_close;
    bool conn_keep_alive;
    bool conn_upgrade;
    bool has_upgrade;
    unsigned host_count;
    const char *host;
    size_t host_len;
    bool expect_continue;
};

static inline bool has_class(unsigned char c, unsigned cls)
{
    return (char_class[c] & cls) != 0;
}

static inline bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static inline unsigned char to_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

bool lw_http1_is_tchar(unsigned char c)
{
    return has_class(c, LW_HTTP1_CT_TCHAR);
}

bool lw_http1_next_element(const char **p, const char *end, const char **elem, size_t *elem_len)
{
    const char *s = *p;
    const char *comma;
    const char *e;

    if (s == NULL) {
        return false;
    }
    comma = memchr(s, ',', (size_t)(end - s));
    e = comma != NULL ? comma : end;
    while (s < e && is_ows(*s)) {
        s++;
    }
    while (e > s && is_ows(e[-1])) {
        e--;
    }
    *elem = s;
    *elem_len = (size_t)(e - s);
    *p = comma != NULL ? comma + 1 : NULL;
    return true;
}

bool lw_http1_has_token(const char *value, size_t len, const char *lower_token)
{
    const char *p = value;
    const char *elem;
    size_t elem_len;

    if (len == 0) {
        return false;
    }
    while (lw_http1_next_element(&p, value + len, &elem, &elem_len)) {
        if (lw_http1_name_eq(elem, elem_len, lower_token)) {
            return true;
        }
    }
    return false;
}

bool lw_http1_is_hop_by_hop(const char *name, size_t len)
{
    /* "Trailer" is end to end in RFC 9110, but trailers are decoded and dropped here, so a
     * forwarded Trailer header would announce fields that never come. "Trailers" is the
     * RFC 2616 spelling that some stacks still send. Sorted by length, so most names are
     * ruled out without looking at a byte. */
    switch (len) {
    case 2:
        return lw_http1_name_eq(name, len, "te");
    case 7:
        return lw_http1_name_eq(name, len, "upgrade") || lw_http1_name_eq(name, len, "trailer");
    case 8:
        return lw_http1_name_eq(name, len, "trailers");
    case 10:
        return lw_http1_name_eq(name, len, "connection") || lw_http1_name_eq(name, len, "keep-alive");
    case 14:
        return lw_http1_name_eq(name, len, "http2-settings");
    case 16:
        return lw_http1_name_eq(name, len, "proxy-connection");
    case 17:
        return lw_http1_name_eq(name, len, "transfer-encoding");
    default:
        return false;
    }
}

/*
 * Find the line starting at p: *eol is its CR. Only CRLF ends a line (RFC 9112 2.2 lets a
 * recipient accept a bare LF; a proxy that did would frame differently from a backend that
 * does not).
 */
static int find_line(const char *p, const char *end, const char **eol, const char **why)
{
    const char *lf;

    if (p == end) {
        return LW_EINCOMPLETE;
    }
    lf = memchr(p, '\n', (size_t)(end - p));
    if (lf == NULL) {
        return LW_EINCOMPLETE;
    }
    if (lf == p || lf[-1] != '\r') {
        *why = "bare LF line end";
        return LW_EPROTO;
    }
    *eol = lf - 1;
    return LW_OK;
}

/* "HTTP/1.0" or "HTTP/1.1", exactly: the minor version, or -1. */
static int parse_version(const char *s, size_t len)
{
    if (len != 8 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1')) {
        return -1;
    }
    return s[7] - '0';
}

/* 1*DIGIT, at most LW_HTTP1_MAX_CONTENT_LENGTH: no sign, no space, no hex, no overflow. */
static bool parse_length(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || v > LW_HTTP1_MAX_CONTENT_LENGTH / 10) {
            return false;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > LW_HTTP1_MAX_CONTENT_LENGTH) {
        return false;
    }
    *out = v;
    return true;
}

/*
 * RFC 9110 8.6: a list of identical values ("5, 5") or repeated identical lines may be read
 * as one value. Anything else is ambiguous, and ambiguity in framing is smuggling.
 */
static const char *apply_content_length(struct head_fields *f, const char *v, size_t len)
{
    const char *p = v;
    const char *elem;
    size_t elem_len;
    uint64_t n;

    while (lw_http1_next_element(&p, v + len, &elem, &elem_len)) {
        if (!parse_length(elem, elem_len, &n)) {
            return "invalid Content-Length";
        }
        if (f->has_content_length && n != f->content_length) {
            return "conflicting Content-Length";
        }
        f->has_content_length = true;
        f->content_length = n;
    }
    return NULL;
}

/* Record the codings in order over every Transfer-Encoding line; the caller judges them. */
static const char *apply_transfer_encoding(struct head_fields *f, const char *v, size_t len)
{
    const char *p = v;
    const char *elem;
    size_t elem_len;
    bool any = false;

    f->has_transfer_encoding = true;
    while (lw_http1_next_element(&p, v + len, &elem, &elem_len)) {
        size_t tok = 0;
        bool chunked;

        /* RFC 9110 5.6.1: empty list elements do not count. */
        if (elem_len == 0) {
            continue;
        }
        while (tok < elem_len && lw_http1_is_tchar((unsigned char)elem[tok])) {
            tok++;
        }
        if (tok == 0) {
            return "invalid Transfer-Encoding";
        }
        chunked = lw_http1_name_eq(elem, tok, "chunked");
        if (tok < elem_len) {
            size_t i = tok;
            while (i < elem_len && is_ows(elem[i])) {
                i++;
            }
            /* chunked takes no parameters; "chunked;x" is neither chunked nor another coding. */
            if (i == elem_len || elem[i] != ';' || chunked) {
                return "invalid Transfer-Encoding";
            }
        }
        f->codings++;
        f->chunked_count += chunked;
        any = true;
    }
    return any ? NULL : "empty Transfer-Encoding";
}

bool lw_http1_is_host(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!has_class((unsigned char)v[i], LW_HTTP1_CT_HOST)) {
            return false;
        }
    }
    return true;
}

/* Host routes the request, so it must read as a host[:port] to everyone (RFC 9110 7.2). */
static const char *apply_host(struct head_fields *f, const char *v, size_t len)
{
    if (!lw_http1_is_host(v, len)) {
        return "invalid Host";
    }
    if (f->host_count++ == 0) {
        f->host = v;
        f->host_len = len;
    }
    return NULL;
}

/* The Connection options that matter here, each list element looked at once. */
static void apply_connection(struct head_fields *f, const char *v, size_t len)
{
    const char *p = v;
    const char *elem;
    size_t elem_len;

    while (lw_http1_next_element(&p, v + len, &elem, &elem_len)) {
        f->conn_close |= lw_http1_name_eq(elem, elem_len, "close");
        f->conn_keep_alive |= lw_http1_name_eq(elem, elem_len, "keep-alive");
        f->conn_upgrade |= lw_http1_name_eq(elem, elem_len, "upgrade");
    }
}

/* Note what a field means for framing and the connection; most fields mean nothing here. */
static const char *apply_field(struct head_fields *f, const struct lw_http1_header *h, bool is_request)
{
    const char *n = h->name;
    const char *v = h->value;
    size_t len = h->value_len;

    switch (h->name_len) {
    case 4:
        if (is_request && lw_http1_name_eq(n, 4, "host")) {
            return apply_host(f, v, len);
        }
        break;
    case 6:
        if (is_request && lw_http1_name_eq(n, 6, "expect") && lw_http1_name_eq(v, len, "100-continue")) {
            f->expect_continue = true;
        }
        break;
    case 7:
        if (lw_http1_name_eq(n, 7, "upgrade")) {
            f->has_upgrade = true;
        }
        break;
    case 10:
        if (lw_http1_name_eq(n, 10, "connection")) {
            apply_connection(f, v, len);
        }
        break;
    case 14:
        if (lw_http1_name_eq(n, 14, "content-length")) {
            return apply_content_length(f, v, len);
        }
        break;
    case 17:
        if (lw_http1_name_eq(n, 17, "transfer-encoding")) {
            return apply_transfer_encoding(f, v, len);
        }
        break;
    default:
        break;
    }
    return NULL;
}

/* Reason for a byte that may not appear in a field line. */
static const char *bad_field_byte(unsigned char c)
{
    if (c == '\r') {
        return "bare CR in header";
    }
    if (c == '\0') {
        return "NUL in header";
    }
    return "invalid character in header value";
}

/*
 * Are the 8 bytes at p all field-value bytes other than HTAB, that is none below 0x20 and none
 * 0x7f? Eight at a time, as most of a head's bytes are values: the word tricks below are exact
 * for the whole word (which byte tripped them may be wrong, but the byte loop that follows a
 * false answer finds that out, and accepts a HTAB).
 */
static inline bool plain_value_bytes8(const char *p)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t w, del;

    memcpy(&w, p, sizeof(w));
    del = w ^ (ones * 0x7f);
    return (((w - ones * 0x20) & ~w) | ((del - ones) & ~del)) & highs ? false : true;
}

/* One field line [s, e): name ":" OWS value OWS (RFC 9112 5). */
static int parse_field_line(const char *s, const char *e, struct lw_http1_header *h, const char **why)
{
    const char *p = s;
    const char *v;

    while (p < e && has_class((unsigned char)*p, LW_HTTP1_CT_TCHAR)) {
        p++;
    }
    if (p == e) {
        *why = p == s ? "invalid header name" : "missing colon in header";
        return LW_EPROTO;
    }
    if (*p != ':') {
        /* RFC 9112 5.1: whitespace before the colon must be rejected, never stripped. */
        *why = is_ows(*p) ? "whitespace before colon" : *p == '\r' ? "bare CR in header" : "invalid header name";
        return LW_EPROTO;
    }
    if (p == s) {
        *why = "empty header name";
        return LW_EPROTO;
    }
    h->name = s;
    h->name_len = (size_t)(p - s);
    p++;
    while (p < e && is_ows(*p)) {
        p++;
    }
    v = p;
    while (e - p >= 8 && plain_value_bytes8(p)) {
        p += 8;
    }
    if (e - p < 8 && e - v >= 8 && plain_value_bytes8(e - 8)) {
        p = e; /* the last word overlaps the one before: no byte-by-byte tail */
    }
    for (; p < e; p++) {
        if (!has_class((unsigned char)*p, LW_HTTP1_CT_VALUE)) {
            *why = bad_field_byte((unsigned char)*p);
            return LW_EPROTO;
        }
    }
    while (p > v && is_ows(p[-1])) {
        p--;
    }
    h->value = v;
    h->value_len = (size_t)(p - v);
    return LW_OK;
}

/*
 * The field lines from p up to and including the empty line. Returns the bytes consumed,
 * LW_EINCOMPLETE, LW_ELIMIT (too many fields) or LW_EPROTO.
 */
static ssize_t parse_fields(const char *p, const char *end, struct lw_http1_header *headers, size_t max_headers,
                            size_t *num_headers, struct head_fields *f, bool is_request, const char **why)
{
    const char *start = p;
    const char *eol;
    size_t n = 0;
    int rc;

    for (;;) {
        rc = find_line(p, end, &eol, why);
        if (rc < 0) {
            return rc;
        }
        if (eol == p) {
            break;
        }
        if (is_ows(*p)) {
            /* RFC 9112 5.2: obs-fold is rejected, not unfolded; RFC 9112 2.2: so is a line
             * starting with whitespace right after the start line. */
            *why = n == 0 ? "whitespace before first header" : "obs-fold not allowed";
            return LW_EPROTO;
        }
        if (n == max_headers) {
            *why = "too many headers";
            return LW_ELIMIT;
        }
        rc = parse_field_line(p, eol, &headers[n], why);
        if (rc < 0) {
            return rc;
        }
        *why = apply_field(f, &headers[n], is_request);
        if (*why != NULL) {
            return LW_EPROTO;
        }
        n++;
        p = eol + 2;
    }
    *num_headers = n;
    return eol + 2 - start;
}

/* method SP request-target SP HTTP-version, single spaces only (RFC 9112 3). */
static int parse_request_line(const char *s, const char *e, struct lw_http1_request *req, const char **why)
{
    const char *p = s;
    const char *t;

    while (p < e && lw_http1_is_tchar((unsigned char)*p)) {
        p++;
    }
    if (p == s || p == e || *p != ' ') {
        *why = "invalid method";
        return LW_EPROTO;
    }
    req->method = s;
    req->method_len = (size_t)(p - s);
    t = ++p;
    while (p < e && has_class((unsigned char)*p, LW_HTTP1_CT_TARGET)) {
        p++;
    }
    if (p == t || (p < e && *p != ' ')) {
        *why = "invalid request-target";
        return LW_EPROTO;
    }
    req->target = t;
    req->target_len = (size_t)(p - t);
    req->minor_version = p == e ? -1 : parse_version(p + 1, (size_t)(e - p - 1));
    if (req->minor_version < 0) {
        *why = "invalid HTTP version";
        return LW_EPROTO;
    }
    return LW_OK;
}

/* Judge the request's framing as a whole once every field is known (RFC 9112 6). */
static int finish_request(struct lw_http1_request *req, const struct head_fields *f, const char **why)
{
    if (f->host_count > 1) {
        *why = "multiple Host headers";
        return LW_EPROTO;
    }
    if (f->host_count == 0 && req->minor_version == 1) {
        *why = "missing Host";
        return LW_EPROTO;
    }
    if (f->has_transfer_encoding) {
        /* RFC 9112 6.1 and 6.3: CL next to TE is how CL.TE and TE.CL smuggling starts;
         * HTTP/1.0 has no TE, so its framing there cannot be trusted; and a lone chunked is
         * the only coding every hop is sure to frame alike (others get 501 upstream). */
        const char *bad = NULL;
        if (f->has_content_length) {
            bad = "both Content-Length and Transfer-Encoding";
        } else if (req->minor_version == 0) {
            bad = "Transfer-Encoding in HTTP/1.0";
        } else if (f->chunked_count > 1) {
            bad = "chunked applied more than once";
        } else if (f->codings != 1 || f->chunked_count != 1) {
            bad = "unsupported Transfer-Encoding";
        }
        if (bad != NULL) {
            *why = bad;
            return LW_EPROTO;
        }
        req->body = LW_HTTP1_BODY_CHUNKED;
    } else if (f->has_content_length && f->content_length > 0) {
        req->body = LW_HTTP1_BODY_LENGTH;
        req->content_length = f->content_length;
    }
    req->host = f->host;
    req->host_len = f->host_len;
    req->keep_alive = !f->conn_close && (req->minor_version == 1 || f->conn_keep_alive);
    /* RFC 9110 10.1.1 and 7.8: an HTTP/1.0 client can neither wait for 100 Continue nor
     * switch protocols, so both are ignored there. */
    req->expect_continue = f->expect_continue && req->minor_version == 1;
    req->upgrade = f->conn_upgrade && f->has_upgrade && req->minor_version == 1;
    return LW_OK;
}

ssize_t lw_http1_parse_request(const char *buf, size_t len, struct lw_http1_request *req,
                               struct lw_http1_header *headers, size_t max_headers, size_t max_head_bytes,
                               const char **reason)
{
    struct head_fields f = {0};
    const char *why = NULL;
    const char *p = buf;
    const char *end;
    const char *eol;
    ssize_t ret;
    int lines = 0;

    memset(req, 0, sizeof(*req));
    req->headers = headers;
    if (len == 0) {
        ret = LW_EINCOMPLETE;
        goto Exit;
    }
    end = buf + (len < max_head_bytes ? len : max_head_bytes);
    while (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
        if (++lines > LW_HTTP1_MAX_EMPTY_LINES) {
            why = "too many empty lines before request";
            ret = LW_EPROTO;
            goto Exit;
        }
        p += 2;
    }
    ret = find_line(p, end, &eol, &why);
    if (ret < 0) {
        goto Exit;
    }
    ret = parse_request_line(p, eol, req, &why);
    if (ret < 0) {
        goto Exit;
    }
    p = eol + 2;
    ret = parse_fields(p, end, headers, max_headers, &req->num_headers, &f, true, &why);
    if (ret < 0) {
        goto Exit;
    }
    p += ret;
    ret = finish_request(req, &f, &why);
    if (ret < 0) {
        goto Exit;
    }
    ret = p - buf;

Exit:
    if (ret == LW_EINCOMPLETE && len >= max_head_bytes) {
        ret = LW_ELIMIT;
        why = "head too long";
    }
    if (ret < 0 && ret != LW_EINCOMPLETE && reason != NULL) {
        *reason = why;
    }
    return ret;
}

/* HTTP-version SP 3DIGIT SP [reason-phrase] (RFC 9112 4); "HTTP/1.1 200" without the second
 * SP is accepted too, as many servers send it. */
static int parse_status_line(const char *s, const char *e, struct lw_http1_response *res, const char **why)
{
    const char *p;

    res->minor_version = e - s < 8 ? -1 : parse_version(s, 8);
    if (res->minor_version < 0 || e - s < 9 || s[8] != ' ') {
        *why = "invalid HTTP version";
        return LW_EPROTO;
    }
    p = s + 9;
    if (e - p < 3 || p[0] < '1' || p[0] > '9' || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9' ||
        (e - p > 3 && p[3] != ' ')) {
        *why = "invalid status code";
        return LW_EPROTO;
    }
    res->status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    p += e - p > 3 ? 4 : 3;
    res->reason = p;
    res->reason_len = (size_t)(e - p);
    for (; p < e; p++) {
        if (!has_class((unsigned char)*p, LW_HTTP1_CT_VALUE)) {
            *why = *p == '\r' ? "bare CR in status line" : "invalid character in reason phrase";
            return LW_EPROTO;
        }
    }
    return LW_OK;
}

/* Framing of a response (RFC 9112 6.3), given what the request was. */
static int finish_response(struct lw_http1_response *res, const struct head_fields *f, bool request_is_head,
                           const char **why)
{
    if (f->has_transfer_encoding) {
        /* RFC 9112 6.1 lets TE override CL in a response; a strict client refuses instead,
         * since a backend sending both is broken or compromised. */
        const char *bad = NULL;
        if (f->has_content_length) {
            bad = "both Content-Length and Transfer-Encoding";
        } else if (res->minor_version == 0) {
            bad = "Transfer-Encoding in HTTP/1.0";
        } else if (f->chunked_count > 1) {
            bad = "chunked applied more than once";
        }
        if (bad != NULL) {
            *why = bad;
            return LW_EPROTO;
        }
    }
    res->has_content_length = f->has_content_length;
    res->content_length = f->content_length;
    if (request_is_head || res->status < 200 || res->status == 204 || res->status == 304) {
        res->body = LW_HTTP1_BODY_NONE;
    } else if (f->has_transfer_encoding) {
        /* Transfer codings are hop-by-hop, and chunked is the only one decoded here: a body
         * under gzip (close-delimited, or chunked on top) would go on still coded, with
         * nothing left to say so, and reach the client corrupted. */
        if (f->codings != 1 || f->chunked_count != 1) {
            *why = "unsupported Transfer-Encoding";
            return LW_EPROTO;
        }
        res->body = LW_HTTP1_BODY_CHUNKED;
    } else if (f->has_content_length) {
        res->body = f->content_length > 0 ? LW_HTTP1_BODY_LENGTH : LW_HTTP1_BODY_NONE;
    } else {
        res->body = LW_HTTP1_BODY_CLOSE;
    }
    res->keep_alive =
        !f->conn_close && (res->minor_version == 1 || f->conn_keep_alive) && res->body != LW_HTTP1_BODY_CLOSE;
    return LW_OK;
}

ssize_t lw_http1_parse_response(const char *buf, size_t len, bool request_is_head, struct lw_http1_response *res,
                                struct lw_http1_header *headers, size_t max_headers, size_t max_head_bytes,
                                const char **reason)
{
    struct head_fields f = {0};
    const char *why = NULL;
    const char *p = buf;
    const char *end;
    const char *eol;
    ssize_t ret;

    memset(res, 0, sizeof(*res));
    res->headers = headers;
    if (len == 0) {
        ret = LW_EINCOMPLETE;
        goto Exit;
    }
    end = buf + (len < max_head_bytes ? len : max_head_bytes);
    ret = find_line(p, end, &eol, &why);
    if (ret < 0) {
        goto Exit;
    }
    ret = parse_status_line(p, eol, res, &why);
    if (ret < 0) {
        goto Exit;
    }
    p = eol + 2;
    ret = parse_fields(p, end, headers, max_headers, &res->num_headers, &f, false, &why);
    if (ret < 0) {
        goto Exit;
    }
    p += ret;
    ret = finish_response(res, &f, request_is_head, &why);
    if (ret < 0) {
        goto Exit;
    }
    ret = p - buf;

Exit:
    if (ret == LW_EINCOMPLETE && len >= max_head_bytes) {
        ret = LW_ELIMIT;
        why = "head too long";
    }
    if (ret < 0 && ret != LW_EINCOMPLETE && reason != NULL) {
        *reason = why;
    }
    return ret;
}

enum lw_http1_chunked_state {
    LW_HTTP1_CH_SIZE_FIRST = 0, /* zero so that a zeroed decoder is a fresh one */
    LW_HTTP1_CH_SIZE,
    LW_HTTP1_CH_EXT,
    LW_HTTP1_CH_SIZE_LF,
    LW_HTTP1_CH_DATA,
    LW_HTTP1_CH_DATA_CR,
    LW_HTTP1_CH_DATA_LF,
    LW_HTTP1_CH_TRAILER_START,
    LW_HTTP1_CH_TRAILER_NAME,
    LW_HTTP1_CH_TRAILER_VALUE,
    LW_HTTP1_CH_TRAILER_LF,
    LW_HTTP1_CH_FINAL_LF,
    LW_HTTP1_CH_DONE,
};

void lw_http1_chunked_init(struct lw_http1_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->_state = LW_HTTP1_CH_SIZE_FIRST;
}

bool lw_http1_chunked_is_done(const struct lw_http1_chunked *c)
{
    return c->_state == LW_HTTP1_CH_DONE;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = to_lower(c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/*
 * chunk-size [chunk-ext] CRLF. No whitespace after the size: RFC 9112 only allows BWS
 * before ";", and parsers that disagree about "5 \r\n" have been used to smuggle requests.
 */
static int chunk_size_byte(struct lw_http1_chunked *c, unsigned char ch, const char **why)
{
    int v;

    if (++c->_line_bytes > LW_HTTP1_CHUNK_LINE_MAX) {
        *why = "chunk size line too long";
        return LW_ELIMIT;
    }
    switch (c->_state) {
    case LW_HTTP1_CH_SIZE_FIRST:
    case LW_HTTP1_CH_SIZE:
        v = hex_value(ch);
        if (v >= 0) {
            /* 16 digits fill a uint64_t: a 17th, even after leading zeros, is refused. */
            if (c->_digits == 16) {
                *why = "chunk size too large";
                return LW_EPROTO;
            }
            c->_remaining = c->_remaining << 4 | (uint64_t)v;
            c->_digits++;
            c->_state = LW_HTTP1_CH_SIZE;
        } else if (c->_state == LW_HTTP1_CH_SIZE && ch == ';') {
            c->_state = LW_HTTP1_CH_EXT;
        } else if (c->_state == LW_HTTP1_CH_SIZE && ch == '\r') {
            c->_state = LW_HTTP1_CH_SIZE_LF;
        } else {
            *why = "invalid chunk size";
            return LW_EPROTO;
        }
        return LW_OK;
    case LW_HTTP1_CH_EXT:
        if (ch == '\r') {
            c->_state = LW_HTTP1_CH_SIZE_LF;
        } else if (!has_class(ch, LW_HTTP1_CT_VALUE)) {
            *why = "invalid character in chunk extension";
            return LW_EPROTO;
        }
        return LW_OK;
    default: /* LW_HTTP1_CH_SIZE_LF */
        if (ch != '\n') {
            *why = "bare CR in chunk size line";
            return LW_EPROTO;
        }
        c->_state = c->_remaining == 0 ? LW_HTTP1_CH_TRAILER_START : LW_HTTP1_CH_DATA;
        c->_line_bytes = 0;
        c->_digits = 0;
        return LW_OK;
    }
}

/* The trailer section is checked like a head's fields and then dropped (RFC 9112 7.1.2). */
static int trailer_byte(struct lw_http1_chunked *c, unsigned char ch, const char **why)
{
    if (++c->_trailer_bytes > LW_HTTP1_TRAILER_MAX) {
        *why = "trailer section too long";
        return LW_ELIMIT;
    }
    switch (c->_state) {
    case LW_HTTP1_CH_TRAILER_START:
        if (ch == '\r') {
            c->_state = LW_HTTP1_CH_FINAL_LF;
        } else if (lw_http1_is_tchar(ch)) {
            c->_state = LW_HTTP1_CH_TRAILER_NAME;
        } else {
            *why = "invalid trailer field";
            return LW_EPROTO;
        }
        return LW_OK;
    case LW_HTTP1_CH_TRAILER_NAME:
        if (ch == ':') {
            c->_state = LW_HTTP1_CH_TRAILER_VALUE;
        } else if (!lw_http1_is_tchar(ch)) {
            *why = "invalid trailer field";
            return LW_EPROTO;
        }
        return LW_OK;
    case LW_HTTP1_CH_TRAILER_VALUE:
        if (ch == '\r') {
            c->_state = LW_HTTP1_CH_TRAILER_LF;
        } else if (!has_class(ch, LW_HTTP1_CT_VALUE)) {
            *why = "invalid character in trailer";
            return LW_EPROTO;
        }
        return LW_OK;
    case LW_HTTP1_CH_TRAILER_LF:
        if (ch != '\n') {
            *why = "bare CR in trailer";
            return LW_EPROTO;
        }
        c->_state = LW_HTTP1_CH_TRAILER_START;
        return LW_OK;
    default: /* LW_HTTP1_CH_FINAL_LF */
        if (ch != '\n') {
            *why = "bare CR in trailer";
            return LW_EPROTO;
        }
        c->_state = LW_HTTP1_CH_DONE;
        return LW_OK;
    }
}

ssize_t lw_http1_chunked_decode(struct lw_http1_chunked *c, const char *buf, size_t len, const char **data,
                                size_t *data_len, const char **reason)
{
    const char *why = NULL;
    size_t i = 0;
    ssize_t ret = 0;

    *data = NULL;
    *data_len = 0;
    while (i < len && c->_state != LW_HTTP1_CH_DONE) {
        unsigned char ch = (unsigned char)buf[i];

        switch (c->_state) {
        case LW_HTTP1_CH_DATA: {
            /* Stop after one run of data so the view ends where the consumed bytes end. */
            size_t n = c->_remaining < len - i ? (size_t)c->_remaining : len - i;
            *data = buf + i;
            *data_len = n;
            c->_remaining -= n;
            if (c->_remaining == 0) {
                c->_state = LW_HTTP1_CH_DATA_CR;
            }
            ret = (ssize_t)(i + n);
            goto Exit;
        }
        case LW_HTTP1_CH_DATA_CR:
        case LW_HTTP1_CH_DATA_LF:
            if (ch != (c->_state == LW_HTTP1_CH_DATA_CR ? '\r' : '\n')) {
                why = "missing CRLF after chunk data";
                ret = LW_EPROTO;
                goto Exit;
            }
            c->_state = c->_state == LW_HTTP1_CH_DATA_CR ? LW_HTTP1_CH_DATA_LF : LW_HTTP1_CH_SIZE_FIRST;
            break;
        case LW_HTTP1_CH_SIZE_FIRST:
        case LW_HTTP1_CH_SIZE:
        case LW_HTTP1_CH_EXT:
        case LW_HTTP1_CH_SIZE_LF:
            ret = chunk_size_byte(c, ch, &why);
            break;
        default:
            ret = trailer_byte(c, ch, &why);
            break;
        }
        if (ret < 0) {
            goto Exit;
        }
        i++;
    }
    ret = (ssize_t)i;

Exit:
    if (ret < 0 && reason != NULL) {
        *reason = why;
    }
    return ret;
}
