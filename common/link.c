/* SPDX-License-Identifier: MIT */
/*
 * Link header parser (RFC 8288) and reference resolution (RFC 3986 section 5) for the push
 * engine. Links come from our own backends, but a backend is an application and its headers
 * are whatever its framework emits, so the parser is tolerant where browsers are (unquoted
 * "type=text/css", trailing ';', empty list elements) and strict where a mistake would send a
 * push to the wrong place: the URI between the brackets holds no whitespace or control byte,
 * and resolution rejects anything a browser could read differently. Every scan is bounded by
 * len and each byte is looked at a bounded number of times over all calls, whatever the input.
 */
#include "common/link.h"

#include <string.h>

#include "common/err.h"

static inline bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static inline unsigned char to_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

static inline bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* tchar (RFC 9110 5.6.2). '*' is one, so "rel*" and "title*" read as ordinary names. */
static bool is_tchar(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/*
 * An unquoted parameter value: RFC 8288 asks for a token, but "type=text/css" and
 * "media=screen/x" are what frameworks send, and browsers take them. Everything visible but
 * the three bytes that delimit values stays in.
 */
static bool is_value_char(unsigned char c)
{
    return (c > 0x20 && c < 0x7f && c != '"' && c != ',' && c != ';') || c >= 0x80;
}

/* Inside "<...>": no whitespace or CTL (a URI has none), and no '<' or '"', which only turn
 * up there when a '>' went missing and the bracket is swallowing the next link. */
static bool is_uri_char(unsigned char c)
{
    return c > 0x20 && c != 0x7f && c != '<' && c != '"';
}

/* qdtext and quoted-pair bytes (RFC 9110 5.6.4): HTAB, SP, VCHAR, obs-text. */
static bool is_qd_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool name_eq(const char *s, size_t len, const char *lower)
{
    size_t i;
    for (i = 0; i < len; i++) {
        if (lower[i] == '\0' || to_lower((unsigned char)s[i]) != (unsigned char)lower[i]) {
            return false;
        }
    }
    return lower[i] == '\0';
}

static const char *skip_ows(const char *p, const char *end)
{
    while (p < end && is_ows((unsigned char)*p)) {
        p++;
    }
    return p;
}

/*
 * p is just after an opening quote: return the closing quote, or end if there is none.
 * *bad gets the first byte a quoted-string may not hold (NULL if none).
 */
static const char *scan_quoted(const char *p, const char *end, const char **bad)
{
    *bad = NULL;
    while (p < end && *p != '"') {
        if (*p == '\\') {
            p++;
            if (p == end) {
                break;
            }
        }
        if (*bad == NULL && !is_qd_char((unsigned char)*p)) {
            *bad = p;
        }
        p++;
    }
    return p;
}

/*
 * Where parsing resumes after a malformed link whose trouble starts at p: after the next
 * comma outside a quoted string, or at end. A quoted string that never closes holds the rest
 * of the value.
 */
static const char *resume_after(const char *p, const char *end)
{
    const char *bad;

    while (p < end) {
        if (*p == ',') {
            return p + 1;
        }
        if (*p == '"') {
            p = scan_quoted(p + 1, end, &bad);
            if (p == end) {
                return end;
            }
        }
        p++;
    }
    return end;
}

/*
 * The relation types of the first rel (RFC 8288 3.3: later ones are ignored), separated by
 * whitespace, compared as they are unescaped. "nopush" inside rel is how some generators
 * spell the nopush parameter; it is read as that, not as a relation type.
 */
static void apply_rel(struct lw_link *link, const char *v, size_t n)
{
    static const char preload[] = "preload";
    static const char nopush[] = "nopush";
    size_t i = 0;

    while (i < n) {
        size_t wlen = 0;
        bool is_preload = true;
        bool is_nopush = true;

        while (i < n) {
            unsigned char c = (unsigned char)v[i++];
            if (c == '\\' && i < n) {
                c = (unsigned char)v[i++];
            }
            if (is_ows(c)) {
                if (wlen > 0) {
                    break;
                }
                continue;
            }
            c = to_lower(c);
            is_preload = is_preload && wlen < sizeof(preload) - 1 && c == (unsigned char)preload[wlen];
            is_nopush = is_nopush && wlen < sizeof(nopush) - 1 && c == (unsigned char)nopush[wlen];
            wlen++;
        }
        if (wlen == 0) {
            break;
        }
        if (is_preload && wlen == sizeof(preload) - 1) {
            link->rel_preload = true;
        } else if (is_nopush && wlen == sizeof(nopush) - 1) {
            link->nopush = true;
        } else {
            link->rel_other = true;
        }
    }
}

/* One parameter, read: record what the push engine cares about, ignore the rest. */
static void apply_param(struct lw_link *link, bool *seen_rel, const char *name, size_t name_len, const char *v,
                        size_t v_len)
{
    if (name_eq(name, name_len, "rel")) {
        if (!*seen_rel) {
            *seen_rel = true;
            apply_rel(link, v, v_len);
        }
    } else if (name_eq(name, name_len, "as")) {
        if (link->as == NULL) {
            link->as = v;
            link->as_len = v_len;
        }
    } else if (name_eq(name, name_len, "type")) {
        if (link->type == NULL) {
            link->type = v;
            link->type_len = v_len;
        }
    } else if (name_eq(name, name_len, "nopush")) {
        link->nopush = true;
    } else if (name_eq(name, name_len, "crossorigin")) {
        link->crossorigin = true;
    } else if (name_eq(name, name_len, "anchor")) {
        link->has_anchor = true;
    } else if (name_eq(name, name_len, "loadpolicy")) {
        link->has_loadpolicy = true;
    }
}

/* Where a failed link leaves the parser: *resume is where the next call starts. */
struct link_fail {
    const char *resume;
    const char *why;
    int code;
};

static int fail(struct link_fail *f, int code, const char *why, const char *resume)
{
    f->code = code;
    f->why = why;
    f->resume = resume;
    return code;
}

/*
 * The parameters after '>', from *p up to and including the comma that ends the link (or
 * end). On success *p is where the next link starts and *last is the end of the link's text.
 */
static int parse_params(struct lw_link *link, const char **p, const char *end, const char **last, struct link_fail *f)
{
    const char *s = *p;
    bool seen_rel = false;

    for (;;) {
        const char *name;
        size_t name_len;
        const char *v;
        size_t v_len = 0;

        s = skip_ows(s, end);
        if (s == end || *s == ',') {
            *p = s == end ? end : s + 1;
            return 1;
        }
        if (*s != ';') {
            return fail(f, LW_EPROTO, "expected ';' or ',' after a link parameter", resume_after(s, end));
        }
        s = skip_ows(s + 1, end);
        if (s == end || *s == ';' || *s == ',') {
            continue; /* an empty parameter, as in a trailing "; " */
        }
        name = s;
        while (s < end && is_tchar((unsigned char)*s)) {
            s++;
        }
        name_len = (size_t)(s - name);
        if (name_len == 0) {
            return fail(f, LW_EPROTO, "invalid link parameter name", resume_after(s, end));
        }
        v = s; /* a parameter without a value: an empty view just after its name */
        s = skip_ows(s, end);
        if (s < end && *s == '=') {
            s = skip_ows(s + 1, end);
            if (s < end && *s == '"') {
                const char *bad;
                const char *close = scan_quoted(s + 1, end, &bad);
                if (close == end) {
                    return fail(f, LW_EPROTO, "unterminated quoted string in a link", end);
                }
                if (bad != NULL) {
                    return fail(f, LW_EPROTO, "invalid byte in a quoted link parameter", resume_after(close + 1, end));
                }
                v = s + 1;
                v_len = (size_t)(close - v);
                s = close + 1;
            } else {
                v = s;
                while (s < end && is_value_char((unsigned char)*s)) {
                    s++;
                }
                v_len = (size_t)(s - v);
                if (v_len == 0) {
                    return fail(f, LW_EPROTO, "missing link parameter value", resume_after(s, end));
                }
            }
        } else {
            s = v;
        }
        if (++link->num_params > LW_LINK_MAX_PARAMS) {
            return fail(f, LW_ELIMIT, "too many link parameters", resume_after(s, end));
        }
        apply_param(link, &seen_rel, name, name_len, v, v_len);
        *last = s;
    }
}

int lw_link_next(const char *value, size_t len, size_t *pos, struct lw_link *link, const char **reason)
{
    const char *end;
    const char *p;
    const char *q;
    const char *last;
    struct link_fail f = {NULL, NULL, 0};
    int rc;

    if (*pos >= len) {
        *pos = len;
        return 0;
    }
    /* RFC 9110 5.6.1: empty list elements are skipped, not errors. */
    end = value + len;
    p = value + *pos;
    while (p < end && (is_ows((unsigned char)*p) || *p == ',')) {
        p++;
    }
    if (p == end) {
        *pos = len;
        return 0;
    }
    memset(link, 0, sizeof(*link));
    link->text = p;
    if (*p != '<') {
        rc = fail(&f, LW_EPROTO, "link does not start with '<'", resume_after(p, end));
        goto Exit;
    }
    /* Commas inside the brackets belong to the URI. If the bracket never closes properly,
     * its commas were not the URI's after all: resume at the first one. */
    for (q = p + 1; q < end && *q != '>'; q++) {
        if (!is_uri_char((unsigned char)*q)) {
            break;
        }
    }
    if (q == end || *q != '>') {
        const char *comma = memchr(p + 1, ',', (size_t)(end - (p + 1)));
        rc = fail(&f, LW_EPROTO, q == end ? "unterminated '<' in a link" : "invalid byte in a link URI",
                  comma != NULL ? comma + 1 : end);
        goto Exit;
    }
    link->uri = p + 1;
    link->uri_len = (size_t)(q - link->uri);
    last = q + 1;
    p = q + 1;
    rc = parse_params(link, &p, end, &last, &f);
    if (rc == 1) {
        link->text_len = (size_t)(last - link->text);
        *pos = (size_t)(p - value);
        return 1;
    }

Exit:
    if (reason != NULL) {
        *reason = f.why;
    }
    *pos = (size_t)(f.resume - value);
    return rc;
}

ssize_t lw_link_unescape(const char *view, size_t len, char *out, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        if (view[i] == '\\' && i + 1 < len) {
            i++;
        }
        if (o == cap) {
            return LW_ELIMIT;
        }
        out[o++] = view[i];
    }
    return (ssize_t)o;
}

/* ---- Reference resolution (RFC 3986 section 5.2) ---- */

/* A reference split by RFC 3986 section 3 (appendix B's regular expression, in C). */
struct ref_parts {
    const char *scheme;
    size_t scheme_len;
    const char *authority; /* NULL: no "//" */
    size_t authority_len;
    const char *path;
    size_t path_len;
    const char *query; /* after '?', NULL if there is no '?' */
    size_t query_len;
};

/*
 * Bytes a reference may hold here: visible ASCII, minus the bytes no URI holds that matter:
 * '"', '<', '>' (quoting and bracket leftovers) and '\', which the URL standard reads as '/'
 * in http(s) URLs, so "/\evil.example/x" would be same-origin to us and cross-origin to a
 * browser.
 */
static bool is_ref_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '"' && c != '<' && c != '>' && c != '\\';
}

static bool is_scheme(const char *s, size_t n)
{
    if (n == 0 || !is_alpha((unsigned char)s[0])) {
        return false;
    }
    for (size_t i = 1; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') {
            return false;
        }
    }
    return true;
}

static int split_ref(const char *ref, size_t len, struct ref_parts *r)
{
    const char *p = ref;
    const char *end;
    const char *hash;
    size_t i;

    memset(r, 0, sizeof(*r));
    if (len == 0) {
        ref = ""; /* the empty reference may come as NULL */
        p = ref;
    }
    for (i = 0; i < len; i++) {
        if (!is_ref_char((unsigned char)ref[i])) {
            return LW_EPROTO;
        }
    }
    hash = memchr(ref, '#', len);
    end = hash != NULL ? hash : ref + len;
    i = 0;
    while (p + i < end && p[i] != ':' && p[i] != '/' && p[i] != '?') {
        i++;
    }
    if (p + i < end && p[i] == ':') {
        /* A ':' before any '/' or '?' ends a scheme; a relative path's first segment may not
         * hold one (RFC 3986 4.2), so a bad scheme is an error, not a path. */
        if (!is_scheme(p, i)) {
            return LW_EPROTO;
        }
        r->scheme = p;
        r->scheme_len = i;
        p += i + 1;
    }
    if (end - p >= 2 && p[0] == '/' && p[1] == '/') {
        p += 2;
        r->authority = p;
        while (p < end && *p != '/' && *p != '?') {
            p++;
        }
        r->authority_len = (size_t)(p - r->authority);
    }
    r->path = p;
    while (p < end && *p != '?') {
        p++;
    }
    r->path_len = (size_t)(p - r->path);
    if (p < end) {
        r->query = p + 1;
        r->query_len = (size_t)(end - r->query);
    }
    return LW_OK;
}

/* The output buffer; an overflow is remembered and reported once at the end. */
struct out {
    char *buf;
    size_t cap;
    size_t len;
    bool overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (n == 0) {
        return; /* s may be NULL then */
    }
    if (o->overflow || n > o->cap - o->len) {
        o->overflow = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

/* Remove the last segment and its preceding '/' (if any) from the output s[0..w). */
static size_t pop_segment(const char *s, size_t w)
{
    while (w > 0 && s[w - 1] != '/') {
        w--;
    }
    return w > 0 ? w - 1 : 0;
}

/*
 * RFC 3986 5.2.4, in place: the output s[0..w) never outgrows the input read so far
 * (w <= r), so the two share the buffer. Returns the new length.
 */
static size_t remove_dot_segments(char *s, size_t n)
{
    size_t r = 0;
    size_t w = 0;

    while (r < n) {
        const char *in = s + r;
        size_t left = n - r;

        if (left >= 3 && memcmp(in, "../", 3) == 0) {
            r += 3; /* A */
        } else if (left >= 2 && memcmp(in, "./", 2) == 0) {
            r += 2; /* A */
        } else if (left >= 3 && memcmp(in, "/./", 3) == 0) {
            r += 2; /* B: "/./" becomes "/" */
        } else if (left == 2 && memcmp(in, "/.", 2) == 0) {
            r += 1; /* B: a final "/." becomes "/" */
            s[r] = '/';
        } else if (left >= 4 && memcmp(in, "/../", 4) == 0) {
            r += 3; /* C */
            w = pop_segment(s, w);
        } else if (left == 3 && memcmp(in, "/..", 3) == 0) {
            r += 2; /* C: a final "/.." becomes "/" */
            s[r] = '/';
            w = pop_segment(s, w);
        } else if ((left == 1 && in[0] == '.') || (left == 2 && memcmp(in, "..", 2) == 0)) {
            r = n; /* D */
        } else {
            do { /* E: the first segment, with its leading '/' */
                s[w++] = s[r++];
            } while (r < n && s[r] != '/');
        }
    }
    return w;
}

/* Append path to o, then remove the dot segments of everything from start on. */
static void put_path(struct out *o, size_t start, const char *path, size_t len)
{
    put(o, path, len);
    if (!o->overflow) {
        o->len = start + remove_dot_segments(o->buf + start, o->len - start);
    }
}

/*
 * The target's path and query (RFC 3986 5.2.2), the path written at the end of o with its
 * dot segments removed, the query returned as a view (NULL: none).
 */
static void put_target_path(struct out *o, const struct lw_link_uri *base, const struct ref_parts *r,
                            bool has_authority, const char **query, size_t *query_len)
{
    size_t start = o->len;
    const char *base_query = base->path_len > 0 ? memchr(base->path, '?', base->path_len) : NULL;
    size_t base_path_len = base_query != NULL ? (size_t)(base_query - base->path) : base->path_len;

    *query = r->query;
    *query_len = r->query_len;
    if (r->scheme != NULL || r->authority != NULL || (r->path_len > 0 && r->path[0] == '/')) {
        put_path(o, start, r->path, r->path_len);
    } else if (r->path_len == 0) {
        /* "" or "?q": the base's own path, and its query unless the reference has one. */
        put(o, base->path, base_path_len);
        if (r->query == NULL && base_query != NULL) {
            *query = base_query + 1;
            *query_len = base->path_len - base_path_len - 1;
        }
    } else {
        /* 5.2.3 merge: the base path up to its last '/', then the reference. */
        const char *slash = base_path_len > 0 ? memrchr(base->path, '/', base_path_len) : NULL;
        if (has_authority && base_path_len == 0) {
            put(o, "/", 1);
        } else if (slash != NULL) {
            put(o, base->path, (size_t)(slash + 1 - base->path));
        }
        put_path(o, start, r->path, r->path_len);
    }
    /* An http(s) request needs a path: "https://h" means "https://h/" (RFC 3986 6.2.3). */
    if (has_authority && o->len == start) {
        put(o, "/", 1);
    }
}

ssize_t lw_link_resolve(const struct lw_link_uri *base, const char *ref, size_t ref_len, char *buf, size_t cap,
                        struct lw_link_uri *out)
{
    struct ref_parts r;
    struct out o = {buf, cap, 0, false};
    const char *scheme = base->scheme;
    size_t scheme_len = base->scheme_len;
    const char *authority = base->authority;
    size_t authority_len = base->authority_len;
    const char *query;
    size_t query_len;
    size_t path_start;
    int rc;

    if (base->scheme == NULL || base->scheme_len == 0 || (base->path_len > 0 && base->path[0] != '/')) {
        return LW_EINVAL;
    }
    rc = split_ref(ref, ref_len, &r);
    if (rc < 0) {
        return rc;
    }
    if (r.scheme != NULL) {
        scheme = r.scheme;
        scheme_len = r.scheme_len;
    }
    if (r.scheme != NULL || r.authority != NULL) {
        authority = r.authority;
        authority_len = r.authority_len;
    }

    for (size_t i = 0; i < scheme_len; i++) {
        char c = (char)to_lower((unsigned char)scheme[i]);
        put(&o, &c, 1);
    }
    put(&o, ":", 1);
    if (authority != NULL) {
        put(&o, "//", 2);
        put(&o, authority, authority_len);
    }
    path_start = o.len;
    put_target_path(&o, base, &r, authority != NULL, &query, &query_len);
    if (query != NULL) {
        put(&o, "?", 1);
        put(&o, query, query_len);
    }
    if (o.overflow) {
        return LW_ELIMIT;
    }
    /* "https:/..//evil/x" leaves the path "//evil/x" with no authority: written out, that
     * would read back as authority "evil" (RFC 3986 5.2.4 lets it through). */
    if (authority == NULL && o.len - path_start >= 2 && buf[path_start] == '/' && buf[path_start + 1] == '/') {
        return LW_EPROTO;
    }

    out->scheme = buf;
    out->scheme_len = scheme_len;
    out->authority = authority != NULL ? buf + scheme_len + 3 : NULL;
    out->authority_len = authority != NULL ? authority_len : 0;
    out->path = buf + path_start;
    out->path_len = o.len - path_start;
    return (ssize_t)o.len;
}

/* Host and port of an authority without userinfo; *port is -1 when absent or empty. */
static bool split_authority(const char *a, size_t n, const char **host, size_t *host_len, long *port)
{
    const char *end;
    const char *h_end;
    const char *p;

    if (a == NULL || n == 0 || memchr(a, '@', n) != NULL) {
        return false;
    }
    end = a + n;
    if (a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (close == NULL) {
            return false;
        }
        h_end = close + 1;
    } else {
        h_end = memchr(a, ':', n);
        if (h_end == NULL) {
            h_end = end;
        }
    }
    *host = a;
    *host_len = (size_t)(h_end - a);
    *port = -1;
    if (h_end == end) {
        return *host_len > 0;
    }
    if (*h_end != ':') {
        return false;
    }
    p = h_end + 1;
    if (p < end) {
        long v = 0;
        for (; p < end; p++) {
            if (!is_digit((unsigned char)*p) || v > 65535) {
                return false;
            }
            v = v * 10 + (*p - '0');
        }
        if (v > 65535) {
            return false;
        }
        *port = v;
    }
    return *host_len > 0;
}

static long default_port(const char *scheme, size_t len)
{
    if (name_eq(scheme, len, "https")) {
        return 443;
    }
    if (name_eq(scheme, len, "http")) {
        return 80;
    }
    return -1;
}

static bool case_eq(const char *a, size_t a_len, const char *b, size_t b_len)
{
    if (a_len != b_len) {
        return false;
    }
    for (size_t i = 0; i < a_len; i++) {
        if (to_lower((unsigned char)a[i]) != to_lower((unsigned char)b[i])) {
            return false;
        }
    }
    return true;
}

bool lw_link_is_same_origin(const struct lw_link_uri *a, const struct lw_link_uri *b)
{
    const char *ah;
    const char *bh;
    size_t ah_len;
    size_t bh_len;
    long ap;
    long bp;

    if (a->scheme == NULL || a->scheme_len == 0 || !case_eq(a->scheme, a->scheme_len, b->scheme, b->scheme_len)) {
        return false;
    }
    if (!split_authority(a->authority, a->authority_len, &ah, &ah_len, &ap) ||
        !split_authority(b->authority, b->authority_len, &bh, &bh_len, &bp)) {
        return false;
    }
    if (ap < 0) {
        ap = default_port(a->scheme, a->scheme_len);
    }
    if (bp < 0) {
        bp = default_port(b->scheme, b->scheme_len);
    }
    return ap == bp && case_eq(ah, ah_len, bh, bh_len);
}
