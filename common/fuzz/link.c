/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for lw_link_next and lw_link_resolve. The input is one Link field value.
 * Beyond not crashing, every call must move forward and stay within the value, every link's
 * views must lie inside its text and its URI hold no whitespace or control byte, and the
 * walk must end within one call per byte. Each URI is then resolved against a fixed base:
 * the result must be visible ASCII with its parts covering it, hold no dot segment, keep a
 * '/' path under an authority, and resolve to itself again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/link.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct lw_link_uri base = {"https", 5, "www.example", 11, "/a/b/c?q=1", 10};

static void check(bool cond)
{
    if (!cond) {
        abort();
    }
}

static bool inside(const char *start, size_t len, const char *p, size_t n)
{
    return p != NULL && p >= start && n <= len && (size_t)(p - start) <= len - n;
}

/* No "." or ".." segment left in the path part (before '?'). */
static bool has_dot_segment(const char *path, size_t len)
{
    const char *q = memchr(path, '?', len);
    const char *end = q != NULL ? q : path + len;
    const char *seg = path;

    while (seg <= end) {
        const char *slash = memchr(seg, '/', (size_t)(end - seg));
        const char *seg_end = slash != NULL ? slash : end;
        size_t n = (size_t)(seg_end - seg);
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.')) {
            return true;
        }
        if (slash == NULL) {
            break;
        }
        seg = slash + 1;
    }
    return false;
}

static void check_resolve(const struct lw_link *l)
{
    char buf[512];
    char again[512];
    struct lw_link_uri out;
    struct lw_link_uri out2;
    ssize_t n = lw_link_resolve(&base, l->uri, l->uri_len, buf, sizeof(buf), &out);
    ssize_t m;

    if (n < 0) {
        check(n == LW_EPROTO || n == LW_ELIMIT);
        return;
    }
    check((size_t)n <= sizeof(buf));
    for (ssize_t i = 0; i < n; i++) {
        check(buf[i] > 0x20 && buf[i] < 0x7f && buf[i] != '\\' && buf[i] != '#');
    }
    check(out.scheme == buf && out.scheme_len > 0 && buf[out.scheme_len] == ':');
    check(out.path + out.path_len == buf + n);
    if (out.authority != NULL) {
        check(out.authority == buf + out.scheme_len + 3 && out.authority + out.authority_len == out.path);
        check(out.path_len > 0 && out.path[0] == '/');
    } else {
        check(out.path == buf + out.scheme_len + 1);
        check(out.path_len < 2 || out.path[0] != '/' || out.path[1] != '/');
    }
    check(!has_dot_segment(out.path, out.path_len));
    check(lw_link_is_same_origin(&base, &out) == lw_link_is_same_origin(&out, &base));

    /* An absolute result is its own resolution. */
    m = lw_link_resolve(&base, buf, (size_t)n, again, sizeof(again), &out2);
    check(m == n && memcmp(buf, again, (size_t)n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *v = (const char *)data;
    size_t pos = 0;
    size_t calls = 0;

    for (;;) {
        struct lw_link l;
        const char *reason = NULL;
        size_t before = pos;
        char unescaped[256];
        int rc = lw_link_next(v, size, &pos, &l, &reason);

        check(pos <= size);
        if (rc == 0) {
            check(pos == size);
            break;
        }
        check(pos > before && ++calls <= size);
        if (rc < 0) {
            check((rc == LW_EPROTO || rc == LW_ELIMIT) && reason != NULL);
            continue;
        }
        check(rc == 1);
        check(inside(v, size, l.text, l.text_len) && l.text[0] == '<');
        check(inside(l.text, l.text_len, l.uri, l.uri_len) && l.uri[l.uri_len] == '>');
        for (size_t i = 0; i < l.uri_len; i++) {
            unsigned char c = (unsigned char)l.uri[i];
            check(c > 0x20 && c != 0x7f && c != '<' && c != '>' && c != '"');
        }
        check(l.as == NULL || inside(l.text, l.text_len, l.as, l.as_len));
        check(l.type == NULL || inside(l.text, l.text_len, l.type, l.type_len));
        check(l.num_params <= LW_LINK_MAX_PARAMS);
        if (l.as != NULL) {
            ssize_t n = lw_link_unescape(l.as, l.as_len, unescaped, sizeof(unescaped));
            check(n == LW_ELIMIT || (n >= 0 && (size_t)n <= l.as_len));
        }
        check_resolve(&l);
    }
    return 0;
}
