/* SPDX-License-Identifier: MIT */
/*
 * Link header field parser (RFC 8288) and URI reference resolution (RFC 3986 section 5), for
 * the push engine: it finds the preload links of a response and resolves each one against the
 * request so the engine can check that it is same-origin. Sans-I/O and allocation-free: every
 * string handed out is a view into the caller's bytes (no copies), valid as long as they are.
 *
 * Tolerant where it costs nothing: a malformed link is skipped (the iterator reports it and
 * moves on to the next top-level comma), so one bad link never hides the good ones after it.
 * Details of what is accepted are in link.c; in short:
 *   link-value = "<" URI-Reference ">" *( OWS ";" OWS [ link-param ] )
 *   link-param = token BWS [ "=" BWS ( value / quoted-string ) ]
 * where value is read liberally (any visible byte but '"', ',' and ';', so the common
 * unquoted "type=text/css" passes), empty parameters (a trailing ";") are skipped, empty list
 * elements (", ,") are skipped, and ext-value parameters ("rel*=", "title*=") are ignored.
 */
#ifndef LW_COMMON_LINK_H
#define LW_COMMON_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Parameters read per link before it is given up as LW_ELIMIT: bounds the work per link. */
#define LW_LINK_MAX_PARAMS 32

/*
 * One link-value. Views are NULL (length 0) when absent. A view of a quoted-string value
 * covers the text between the quotes with its backslash escapes still in it; it contains a
 * backslash only then, and lw_link_unescape turns it into plain bytes.
 */
struct lw_link {
    const char *text; /* the whole link-value, from '<' to the end of its last parameter */
    size_t text_len;
    const char *uri; /* URI-Reference between '<' and '>', as written: resolve it with lw_link_resolve */
    size_t uri_len;
    const char *as; /* first "as" value; present without a value gives length 0 */
    size_t as_len;
    const char *type; /* first "type" value */
    size_t type_len;
    unsigned num_params;
    bool rel_preload;    /* the first "rel" lists "preload" (case-insensitive) */
    bool rel_other;      /* the first "rel" lists some other relation type */
    bool nopush;         /* a "nopush" parameter, or "nopush" listed in rel (not counted as rel_other) */
    bool crossorigin;    /* a "crossorigin" parameter, with or without a value */
    bool has_anchor;     /* an "anchor" parameter: the link is about another resource */
    bool has_loadpolicy; /* a "loadpolicy" parameter */
};

/*
 * Parse the next link of a Link field value[0..len), starting at *pos (0 for the first call).
 * Returns 1 with *link filled, 0 when no link is left, or, for a link that is malformed
 * (LW_EPROTO) or has more than LW_LINK_MAX_PARAMS parameters (LW_ELIMIT), that code with
 * *reason set to a static string (reason may be NULL). In every case *pos moves past what was
 * read: after an error the caller simply calls again, and parsing resumes after the next
 * comma outside a quoted string (after the first comma following '<' when the URI itself
 * was malformed). A quoted string that never closes runs to the end of the value, as RFC 9110
 * reads it, so the rest of the value is that one malformed link. Never reads past len;
 * work is linear in len over all calls.
 */
int lw_link_next(const char *value, size_t len, size_t *pos, struct lw_link *link, const char **reason);

/*
 * Copy a value view into out[0..cap) with quoted-pair escapes removed ("a\"b" gives a"b).
 * Returns the length written (never more than len), or LW_ELIMIT if out is too small.
 */
ssize_t lw_link_unescape(const char *view, size_t len, char *out, size_t cap);

/*
 * An absolute URI split in parts. authority is NULL when there is none ("mailto:x"); path
 * includes the query ("/a/b?q") and never the fragment.
 */
struct lw_link_uri {
    const char *scheme;
    size_t scheme_len;
    const char *authority;
    size_t authority_len;
    const char *path;
    size_t path_len;
};

/*
 * Resolve the reference ref[0..ref_len) (a lw_link uri) against base (RFC 3986 section 5.2,
 * strict: "https:x" is not read as relative), with dot segments removed and the fragment
 * dropped. base is borrowed: a scheme, an authority and a path (optionally with "?query")
 * that is empty or starts with '/', as taken from the request.
 * The result is written to buf[0..cap) as "scheme:" ["//" authority] path ["?" query], and
 * *out gets views of its parts into buf. The scheme is lowercased; the authority is copied
 * as written; a path under an authority always starts with '/' ("https://h" gives "/").
 * buf must not overlap ref or base.
 * Returns the length written, or
 *   LW_EPROTO: ref holds a byte outside visible ASCII (whitespace, CTLs, DEL, non-ASCII) or
 *     one of '"', '<', '>', '\' (browsers read '\' as '/', so the two would disagree on
 *     the origin); or has a malformed scheme; or resolves to a path starting "//" with no
 *     authority (written out, it would read back as one);
 *   LW_ELIMIT: the result, or the merged path before dot removal, does not fit in cap;
 *   LW_EINVAL: base lacks a scheme, or its path is neither empty nor starts with '/'.
 */
ssize_t lw_link_resolve(const struct lw_link_uri *base, const char *ref, size_t ref_len, char *buf, size_t cap,
                        struct lw_link_uri *out);

/*
 * Same origin (RFC 6454): schemes equal ignoring case, both have an authority without
 * userinfo, hosts equal ignoring case, ports equal once the scheme's default (80 for http,
 * 443 for https) fills an absent or empty one. Anything unparsable is not same-origin.
 */
bool lw_link_is_same_origin(const struct lw_link_uri *a, const struct lw_link_uri *b);

#endif
