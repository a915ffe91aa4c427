/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for common/link: links as frameworks send them, every parameter the push engine
 * reads, malformed links next to good ones (a bad link must never hide the next one), the
 * bounds, and reference resolution through RFC 3986's own examples (section 5.4) plus the
 * origin checks built on it.
 */
#include "common/link.h"

#include <stdlib.h>

#include "common/err.h"
#include "common/mem.h"
#include "common/tests/tap.h"

#define MAX_LINKS 16

/* What iterating over a whole value gave: each call's code, and the links. */
struct parsed {
    int rc[MAX_LINKS * 2];
    const char *why[MAX_LINKS * 2];
    size_t calls;
    struct lw_link links[MAX_LINKS];
    size_t num_links;
};

static void parse_n(const char *value, size_t len, struct parsed *out)
{
    size_t pos = 0;
    size_t last_pos = 0;

    memset(out, 0, sizeof(*out));
    while (out->calls < LW_ARRAY_LEN(out->rc)) {
        struct lw_link link;
        const char *why = NULL;
        int rc = lw_link_next(value, len, &pos, &link, &why);
        out->rc[out->calls] = rc;
        out->why[out->calls] = why;
        out->calls++;
        if (rc == 0) {
            return;
        }
        if (pos <= last_pos || pos > len) {
            printf("# no progress: pos %zu after %zu\n", pos, last_pos);
            return;
        }
        last_pos = pos;
        if (rc == 1 && out->num_links < MAX_LINKS) {
            out->links[out->num_links++] = link;
        }
    }
}

static void parse(const char *value, struct parsed *out)
{
    parse_n(value, strlen(value), out);
}

static char code_char(int rc)
{
    switch (rc) {
    case 1:
        return 'L';
    case 0:
        return '.';
    case LW_EPROTO:
        return 'E';
    case LW_ELIMIT:
        return 'M';
    default:
        return '?';
    }
}

/* The codes of the calls, as a string: 'L' a link, 'E' LW_EPROTO, 'M' LW_ELIMIT, '.' the end. */
static const char *trace(const struct parsed *p)
{
    static char s[MAX_LINKS * 2 + 1];
    size_t i;
    for (i = 0; i < p->calls; i++) {
        s[i] = code_char(p->rc[i]);
    }
    s[i] = '\0';
    return s;
}

static void check_trace(const struct parsed *p, const char *want, const char *what)
{
    const char *got = trace(p);
    TAP_OK(strcmp(got, want) == 0, "%s: calls give %s", what, want);
    if (strcmp(got, want) != 0) {
        printf("#   got %s\n", got);
    }
}

static void test_single_and_multiple(void)
{
    struct parsed p;
    const struct lw_link *l;
    const char *v = "</style.css>; rel=preload; as=style";

    parse(v, &p);
    check_trace(&p, "L.", "single link");
    l = &p.links[0];
    TAP_EQ_MEM(l->uri, l->uri_len, "/style.css", "single link: uri inside the brackets");
    TAP_OK(l->rel_preload && !l->rel_other && !l->nopush && !l->crossorigin, "single link: rel=preload only");
    TAP_EQ_MEM(l->as, l->as_len, "style", "single link: as");
    TAP_OK(l->type == NULL && !l->has_anchor && !l->has_loadpolicy, "single link: absent parameters are NULL/false");
    TAP_EQ_MEM(l->text, l->text_len, v, "single link: text is the whole link-value");
    TAP_EQ_INT(l->num_params, 2, "single link: two parameters");

    v = "<https://cdn.example/a.css>; rel=preload; as=style, </b.js>; rel=\"preload nopush\"; as=script; crossorigin";
    parse(v, &p);
    check_trace(&p, "LL.", "two links");
    TAP_EQ_MEM(p.links[0].uri, p.links[0].uri_len, "https://cdn.example/a.css", "two links: first uri");
    TAP_EQ_MEM(p.links[0].text, p.links[0].text_len, "<https://cdn.example/a.css>; rel=preload; as=style",
               "two links: first text ends before the comma");
    l = &p.links[1];
    TAP_EQ_MEM(l->uri, l->uri_len, "/b.js", "two links: second uri");
    TAP_OK(l->rel_preload && l->nopush && !l->rel_other, "two links: \"preload nopush\" is preload + nopush");
    TAP_EQ_MEM(l->as, l->as_len, "script", "two links: second as");
    TAP_OK(l->crossorigin, "two links: valueless crossorigin");
    TAP_EQ_MEM(l->text, l->text_len, "</b.js>; rel=\"preload nopush\"; as=script; crossorigin",
               "two links: second text");

    parse("</a>; rel=preload; nopush, </b>; rel=preload; nopush=1; crossorigin=use-credentials", &p);
    check_trace(&p, "LL.", "nopush parameter");
    TAP_OK(p.links[0].nopush && p.links[1].nopush && p.links[1].crossorigin && !p.links[0].crossorigin,
           "nopush with and without a value, crossorigin with a value");
}

static void test_rel(void)
{
    struct parsed p;

    parse("</a>; rel=\"preload prefetch\", </b>; rel=stylesheet, </c>; title=x, </d>; rel=\"  preload\t\"", &p);
    check_trace(&p, "LLLL.", "rel variants");
    TAP_OK(p.links[0].rel_preload && p.links[0].rel_other, "quoted rel with two types: preload and other");
    TAP_OK(!p.links[1].rel_preload && p.links[1].rel_other, "rel=stylesheet is other only");
    TAP_OK(!p.links[2].rel_preload && !p.links[2].rel_other, "no rel: neither");
    TAP_OK(p.links[3].rel_preload && !p.links[3].rel_other, "whitespace around quoted rel types is skipped");

    parse("</a>; REL=PreLoad; AS=Style; NoPush; CrossOrigin; Anchor=\"#x\"; LOADPOLICY=next", &p);
    check_trace(&p, "L.", "case-insensitive names");
    TAP_OK(p.links[0].rel_preload && p.links[0].nopush && p.links[0].crossorigin && p.links[0].has_anchor &&
               p.links[0].has_loadpolicy,
           "parameter names and relation types ignore case");
    TAP_EQ_MEM(p.links[0].as, p.links[0].as_len, "Style", "values are given as written");

    parse("</a>; rel=stylesheet; rel=preload, </b>; rel*=UTF-8''preload; rel=next; title*=UTF-8'de'n%c3%a4chstes", &p);
    check_trace(&p, "LL.", "first rel wins, ext-values skipped");
    TAP_OK(!p.links[0].rel_preload && p.links[0].rel_other, "a second rel is ignored (RFC 8288 3.3)");
    TAP_OK(!p.links[1].rel_preload && p.links[1].rel_other, "rel*= is not rel");

    parse("</a>; rel=\"pre\\load\", </b>; rel=\"preloads preloa nopushy\", </c>; rel=\"preload\\ next\"", &p);
    check_trace(&p, "LLL.", "escaped rel");
    TAP_OK(p.links[0].rel_preload && !p.links[0].rel_other, "escapes inside rel are unescaped before comparing");
    TAP_OK(!p.links[1].rel_preload && !p.links[1].nopush && p.links[1].rel_other, "prefixes of preload are other");
    TAP_OK(p.links[2].rel_preload && p.links[2].rel_other, "an escaped space separates relation types");

    parse("</a>; rel; as; type", &p);
    check_trace(&p, "L.", "valueless rel/as/type");
    TAP_OK(!p.links[0].rel_preload && !p.links[0].rel_other && p.links[0].as != NULL && p.links[0].as_len == 0 &&
               p.links[0].type != NULL && p.links[0].type_len == 0,
           "present without value: empty views, no relation types");
}

static void test_values(void)
{
    struct parsed p;
    char buf[32];
    ssize_t n;

    parse("</a,b.css?x=1,2>; rel=preload; as=style, </c>; rel=preload", &p);
    check_trace(&p, "LL.", "commas inside the URI");
    TAP_EQ_MEM(p.links[0].uri, p.links[0].uri_len, "/a,b.css?x=1,2", "commas inside <> do not split");

    parse("</a>; title=\"one, two; three\"; rel=preload, </c>; rel=preload", &p);
    check_trace(&p, "LL.", "comma and ';' inside a quoted string");
    TAP_OK(p.links[0].rel_preload && p.links[0].num_params == 2, "the quoted title is one parameter");

    parse("</a>; title=\"say \\\"hi\\\", ok\"; rel=preload; as=\"st\\yle\"", &p);
    check_trace(&p, "L.", "escapes inside quoted strings");
    TAP_EQ_MEM(p.links[0].as, p.links[0].as_len, "st\\yle", "a quoted value's view keeps its escapes");
    n = lw_link_unescape(p.links[0].as, p.links[0].as_len, buf, sizeof(buf));
    TAP_OK(n == 5 && memcmp(buf, "style", 5) == 0, "lw_link_unescape removes them");
    TAP_EQ_INT(lw_link_unescape("a\\\"b", 4, buf, 2), LW_ELIMIT, "lw_link_unescape: too small a buffer");
    n = lw_link_unescape("a\\\"b", 4, buf, 3);
    TAP_OK(n == 3 && memcmp(buf, "a\"b", 3) == 0, "lw_link_unescape: exactly enough room");

    parse("</a> ;rel = preload ;\tas =\t\"style\" ; type=text/css ;", &p);
    check_trace(&p, "L.", "OWS and BWS everywhere, trailing ';'");
    TAP_OK(p.links[0].rel_preload, "BWS around '='");
    TAP_EQ_MEM(p.links[0].as, p.links[0].as_len, "style", "quoted as without the quotes");
    TAP_EQ_MEM(p.links[0].type, p.links[0].type_len, "text/css", "unquoted type with '/' is accepted");
    TAP_EQ_MEM(p.links[0].text, p.links[0].text_len, "</a> ;rel = preload ;\tas =\t\"style\" ; type=text/css",
               "text stops at the last parameter");

    parse("</a>; ; rel=preload;; as=font", &p);
    check_trace(&p, "L.", "empty parameters are skipped");
    TAP_EQ_INT(p.links[0].num_params, 2, "empty parameters are not counted");

    parse("", &p);
    check_trace(&p, ".", "empty value");
    {
        size_t pos = 0;
        struct lw_link l;
        TAP_OK(lw_link_next(NULL, 0, &pos, &l, NULL) == 0 && pos == 0, "a NULL empty value has no links");
    }
    parse(" , ,\t,", &p);
    check_trace(&p, ".", "only empty list elements");
    parse(", </a>,,</b> ,", &p);
    check_trace(&p, "LL.", "empty list elements around links");
    TAP_OK(p.links[0].uri_len == 2 && p.links[1].uri_len == 2, "links without parameters");
    parse("<>; rel=preload", &p);
    check_trace(&p, "L.", "empty URI");
    TAP_OK(p.links[0].uri_len == 0 && p.links[0].uri != NULL, "an empty URI gives an empty view");
}

static void test_malformed(void)
{
    struct parsed p;
    const char *v;
    char many[1024];
    size_t off = 0;

    parse("junk, </a>; rel=preload, <b c>; rel=preload, </d>; rel=preload; =x, </e>; rel=preload", &p);
    check_trace(&p, "ELEEL.", "malformed links among good ones");
    TAP_EQ_MEM(p.links[0].uri, p.links[0].uri_len, "/a", "the first good link survives");
    TAP_EQ_MEM(p.links[1].uri, p.links[1].uri_len, "/e", "the last good link survives");
    TAP_OK(p.why[0] != NULL && strcmp(p.why[0], "link does not start with '<'") == 0, "a reason is given");

    parse("</a; rel=preload, </b>; rel=preload", &p);
    check_trace(&p, "EL.", "a '>' missing: resume at the first comma after '<'");
    TAP_EQ_MEM(p.links[0].uri, p.links[0].uri_len, "/b", "the next link is found");

    parse("</a>; title=\"x, </b>; rel=preload", &p);
    check_trace(&p, "E.", "an unterminated quoted string holds the rest of the value");
    TAP_OK(strcmp(p.why[0], "unterminated quoted string in a link") == 0, "unterminated quote: reason");

    parse("</a>; as=; rel=preload, </b>; rel=preload", &p);
    check_trace(&p, "EL.", "'=' without a value");
    parse("</a> rel=preload, </b>; rel=preload", &p);
    check_trace(&p, "EL.", "a parameter without ';'");
    parse("</a>; title=\"x\x01y, z\"; rel=preload, </b>; rel=preload", &p);
    check_trace(&p, "EL.", "a CTL in a quoted string: resume after the string");
    parse("</a>; as=\"style\"x, </b>; rel=preload", &p);
    check_trace(&p, "EL.", "junk after a quoted string");
    parse("</a\x7f>; rel=preload, <\t/b>, </c\"d>, </e>", &p);
    check_trace(&p, "EEEL.", "DEL, HTAB and '\"' inside the brackets");
    parse("</a>; title=\"a\", junk \"with, comma\", </b>", &p);
    check_trace(&p, "LEL.", "recovery skips quoted strings in junk");

    /* Exactly LW_LINK_MAX_PARAMS parameters pass; one more is LW_ELIMIT and the next link is
     * still read. */
    off += (size_t)snprintf(many + off, sizeof(many) - off, "</a>");
    for (int i = 0; i < LW_LINK_MAX_PARAMS; i++) {
        off += (size_t)snprintf(many + off, sizeof(many) - off, "; p%d=1", i);
    }
    parse(many, &p);
    check_trace(&p, "L.", "LW_LINK_MAX_PARAMS parameters");
    off += (size_t)snprintf(many + off, sizeof(many) - off, "; rel=preload, </b>; rel=preload");
    parse(many, &p);
    check_trace(&p, "ML.", "one parameter too many");
    TAP_OK(p.links[0].uri_len == 2 && p.links[0].uri[1] == 'b', "the link after the capped one is read");

    /* len is the end, whatever the bytes after it. */
    v = "</a>; rel=preload, </b>; rel=preload";
    parse_n(v, 15, &p);
    check_trace(&p, "L.", "len cuts the value inside a parameter");
    TAP_EQ_MEM(p.links[0].text, p.links[0].text_len, "</a>; rel=prelo", "the view stops at len");
    TAP_OK(!p.links[0].rel_preload && p.links[0].rel_other, "\"prelo\" is another relation type");
    parse_n(v, 3, &p);
    check_trace(&p, "E.", "len cuts the value inside the brackets");
    parse_n("</a>; title=\"x\"", 14, &p);
    check_trace(&p, "E.", "len cuts the value inside a quoted string");
}

/* Random bytes, and random picks from the link alphabet: every call makes progress, and
 * every view lies inside the value. */
static void test_junk(void)
{
    static const char alphabet[] = "<>;,=\" \t\\abrelpoadnsh/*";
    char v[256];
    unsigned seed = 12345;
    bool ok = true;

    for (int round = 0; round < 20000 && ok; round++) {
        size_t len = (size_t)(rand_r(&seed) % sizeof(v));
        size_t pos = 0;
        size_t calls = 0;
        for (size_t i = 0; i < len; i++) {
            v[i] = round % 2 ? (char)rand_r(&seed) : alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
        }
        for (;;) {
            struct lw_link l;
            size_t before = pos;
            int rc = lw_link_next(v, len, &pos, &l, NULL);
            if (rc == 0) {
                break;
            }
            calls++;
            ok = ok && pos > before && pos <= len && calls <= len;
            if (rc == 1) {
                ok = ok && l.text >= v && l.text + l.text_len <= v + len && l.uri > l.text &&
                     l.uri + l.uri_len < l.text + l.text_len && (l.as == NULL || l.as + l.as_len <= v + len);
            }
            if (!ok) {
                break;
            }
        }
    }
    TAP_OK(ok, "20000 junk values: progress on every call, views inside the value");
}

static const struct lw_link_uri rfc_base = {"http", 4, "a", 1, "/b/c/d;p?q", 10};

/* RFC 3986 5.4.1 and 5.4.2, with fragments dropped and "//g" given its "/" path. */
static const struct {
    const char *ref;
    const char *want;
} rfc_examples[] = {
    {"g:h", "g:h"},
    {"g", "http://a/b/c/g"},
    {"./g", "http://a/b/c/g"},
    {"g/", "http://a/b/c/g/"},
    {"/g", "http://a/g"},
    {"//g", "http://g/"},
    {"?y", "http://a/b/c/d;p?y"},
    {"g?y", "http://a/b/c/g?y"},
    {"#s", "http://a/b/c/d;p?q"},
    {"g#s", "http://a/b/c/g"},
    {"g?y#s", "http://a/b/c/g?y"},
    {";x", "http://a/b/c/;x"},
    {"g;x", "http://a/b/c/g;x"},
    {"g;x?y#s", "http://a/b/c/g;x?y"},
    {"", "http://a/b/c/d;p?q"},
    {".", "http://a/b/c/"},
    {"./", "http://a/b/c/"},
    {"..", "http://a/b/"},
    {"../", "http://a/b/"},
    {"../g", "http://a/b/g"},
    {"../..", "http://a/"},
    {"../../", "http://a/"},
    {"../../g", "http://a/g"},
    {"../../../g", "http://a/g"},
    {"../../../../g", "http://a/g"},
    {"/./g", "http://a/g"},
    {"/../g", "http://a/g"},
    {"g.", "http://a/b/c/g."},
    {".g", "http://a/b/c/.g"},
    {"g..", "http://a/b/c/g.."},
    {"..g", "http://a/b/c/..g"},
    {"./../g", "http://a/b/g"},
    {"./g/.", "http://a/b/c/g/"},
    {"g/./h", "http://a/b/c/g/h"},
    {"g/../h", "http://a/b/c/h"},
    {"g;x=1/./y", "http://a/b/c/g;x=1/y"},
    {"g;x=1/../y", "http://a/b/c/y"},
    {"g?y/./x", "http://a/b/c/g?y/./x"},
    {"g?y/../x", "http://a/b/c/g?y/../x"},
    {"g#s/./x", "http://a/b/c/g"},
    {"g#s/../x", "http://a/b/c/g"},
    {"http:g", "http:g"},
};

static void test_resolve_rfc(void)
{
    char buf[256];
    struct lw_link_uri out;
    size_t bad = 0;

    for (size_t i = 0; i < LW_ARRAY_LEN(rfc_examples); i++) {
        const char *ref = rfc_examples[i].ref;
        ssize_t n = lw_link_resolve(&rfc_base, ref, strlen(ref), buf, sizeof(buf), &out);
        bool ok = n >= 0 && (size_t)n == strlen(rfc_examples[i].want) && memcmp(buf, rfc_examples[i].want, n) == 0;
        TAP_OK(ok, "RFC 3986 5.4: \"%s\" -> \"%s\"", ref, rfc_examples[i].want);
        if (!ok) {
            printf("#   got %zd \"%.*s\"\n", n, n > 0 ? (int)n : 0, buf);
        }
        /* The parts glue back into the whole. */
        if (n >= 0 &&
            (size_t)n != out.scheme_len + 1 + (out.authority != NULL ? out.authority_len + 2 : 0) + out.path_len) {
            bad++;
        }
    }
    TAP_EQ_INT(bad, 0, "RFC 3986 5.4: scheme, authority and path views cover the result");
}

static void check_resolve(const struct lw_link_uri *base, const char *ref, const char *scheme, const char *authority,
                          const char *path, const char *what)
{
    char buf[256];
    struct lw_link_uri out;
    ssize_t n = lw_link_resolve(base, ref, strlen(ref), buf, sizeof(buf), &out);
    bool ok = n > 0 && out.scheme_len == strlen(scheme) && memcmp(out.scheme, scheme, out.scheme_len) == 0 &&
              (authority == NULL ? out.authority == NULL
                                 : out.authority != NULL && out.authority_len == strlen(authority) &&
                                       memcmp(out.authority, authority, out.authority_len) == 0) &&
              out.path_len == strlen(path) && memcmp(out.path, path, out.path_len) == 0;
    TAP_OK(ok, "resolve %s: \"%s\"", what, ref);
    if (!ok) {
        printf("#   got %zd \"%.*s\"\n", n, n > 0 ? (int)n : 0, buf);
    }
}

static void test_resolve(void)
{
    static const struct lw_link_uri base = {"https", 5, "www.example", 11, "/shop/cart/view?id=7", 20};
    static const struct lw_link_uri root = {"https", 5, "www.example", 11, "", 0};
    static const char *rejected[] = {"/a b",  "/a\tb", "/a\x01", "/a\x7f", "/caf\xc3\xa9", "/\\evil.example/x",
                                     "/a\"b", "1a:b",  ":x",     "-x:y",   "/a<b"};
    char buf[64];
    struct lw_link_uri out;

    check_resolve(&base, "https://cdn.example/x.css", "https", "cdn.example", "/x.css", "absolute URI");
    check_resolve(&base, "HTTPS://WWW.example", "https", "WWW.example", "/", "scheme lowercased, empty path is /");
    check_resolve(&base, "//cdn.example/x?v=1#top", "https", "cdn.example", "/x?v=1", "scheme-relative");
    check_resolve(&base, "/static/app.js", "https", "www.example", "/static/app.js", "absolute path");
    check_resolve(&base, "item.css", "https", "www.example", "/shop/cart/item.css", "relative path");
    check_resolve(&base, "../x", "https", "www.example", "/shop/x", "../");
    check_resolve(&base, "./x", "https", "www.example", "/shop/cart/x", "./");
    check_resolve(&base, "../../../../x", "https", "www.example", "/x", ".. above the root");
    check_resolve(&base, "/a/b/../../../c/./d/.", "https", "www.example", "/c/d/", "dot segments in an absolute path");
    check_resolve(&base, "?q=2", "https", "www.example", "/shop/cart/view?q=2", "query only");
    check_resolve(&base, "", "https", "www.example", "/shop/cart/view?id=7", "empty reference");
    check_resolve(&base, "#frag", "https", "www.example", "/shop/cart/view?id=7", "fragment only");
    check_resolve(&root, "x.css", "https", "www.example", "/x.css", "relative to an empty base path");
    check_resolve(&root, "..", "https", "www.example", "/", "\"..\" on an empty base path");
    check_resolve(&base, "https:x", "https", NULL, "x", "scheme without authority stays strict");
    check_resolve(&base, "data:text/css,a", "data", NULL, "text/css,a", "another scheme");
    check_resolve(&base, "/..//x", "https", "www.example", "//x", "a path starting \"//\" under an authority");
    TAP_EQ_INT(lw_link_resolve(&base, "https:/..//evil.example/x", 25, buf, sizeof(buf), &out), LW_EPROTO,
               "resolve rejects a \"//\" path without authority (it would read back as one)");

    TAP_OK(lw_link_resolve(&root, NULL, 0, buf, sizeof(buf), &out) == 20 &&
               memcmp(buf, "https://www.example/", 20) == 0,
           "resolve: a NULL empty reference is the base");
    for (size_t i = 0; i < LW_ARRAY_LEN(rejected); i++) {
        TAP_EQ_INT(lw_link_resolve(&base, rejected[i], strlen(rejected[i]), buf, sizeof(buf), &out), LW_EPROTO,
                   "resolve rejects reference %zu", i);
    }
    TAP_EQ_INT(lw_link_resolve(&base, "/0123456789/0123456789/0123456789/0123456789/0123456789", 55, buf, 64, &out),
               LW_ELIMIT, "resolve: too long for the buffer");
    TAP_EQ_INT(lw_link_resolve(&base, "/x", 2, buf, 20, &out), LW_ELIMIT, "resolve: one byte short");
    TAP_EQ_INT(lw_link_resolve(&base, "/x", 2, buf, 21, &out), 21, "resolve: exactly enough room");
    {
        struct lw_link_uri bad = base;
        bad.path = "shop";
        bad.path_len = 4;
        TAP_EQ_INT(lw_link_resolve(&bad, "x", 1, buf, sizeof(buf), &out), LW_EINVAL, "resolve: base path without '/'");
        bad = base;
        bad.scheme = NULL;
        bad.scheme_len = 0;
        TAP_EQ_INT(lw_link_resolve(&bad, "x", 1, buf, sizeof(buf), &out), LW_EINVAL, "resolve: base without scheme");
    }
}

static bool same_origin(const char *sa, const char *aa, const char *sb, const char *ab)
{
    struct lw_link_uri a = {sa, strlen(sa), aa, aa != NULL ? strlen(aa) : 0, "/", 1};
    struct lw_link_uri b = {sb, strlen(sb), ab, ab != NULL ? strlen(ab) : 0, "/", 1};
    return lw_link_is_same_origin(&a, &b);
}

static void test_same_origin(void)
{
    static const struct lw_link_uri base = {"https", 5, "www.example", 11, "/index.html", 11};
    char buf[128];
    struct lw_link_uri out;

    TAP_OK(same_origin("https", "www.example", "HTTPS", "WWW.Example:443"), "same origin: case and default port");
    TAP_OK(same_origin("http", "a:", "http", "a:80"), "same origin: empty port is the default");
    TAP_OK(same_origin("https", "[::1]", "https", "[::1]:443"), "same origin: IPv6 literal");
    TAP_OK(!same_origin("https", "a", "http", "a"), "cross origin: scheme");
    TAP_OK(!same_origin("https", "a", "https", "a:8443"), "cross origin: port");
    TAP_OK(!same_origin("https", "a", "https", "b"), "cross origin: host");
    TAP_OK(!same_origin("https", "user@a", "https", "a"), "cross origin: userinfo");
    TAP_OK(!same_origin("https", NULL, "https", "a"), "cross origin: no authority");
    TAP_OK(!same_origin("https", "a:99999", "https", "a:99999"), "unparsable port");
    TAP_OK(!same_origin("https", "a:4x3", "https", "a:4x3"), "non-digit port");
    TAP_OK(!same_origin("https", "[::1", "https", "[::1"), "unclosed IPv6 literal");

    lw_link_resolve(&base, "/app.js", 7, buf, sizeof(buf), &out);
    TAP_OK(lw_link_is_same_origin(&base, &out), "a resolved absolute path is same-origin");
    lw_link_resolve(&base, "//evil.example/app.js", 21, buf, sizeof(buf), &out);
    TAP_OK(!lw_link_is_same_origin(&base, &out), "a scheme-relative link elsewhere is not");
    lw_link_resolve(&base, "https:app.js", 12, buf, sizeof(buf), &out);
    TAP_OK(!lw_link_is_same_origin(&base, &out), "\"https:app.js\" is not");
}

int main(void)
{
    test_single_and_multiple();
    test_rel();
    test_values();
    test_malformed();
    test_junk();
    test_resolve_rfc();
    test_resolve();
    test_same_origin();
    return tap_done();
}
