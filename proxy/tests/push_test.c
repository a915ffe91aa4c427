/* SPDX-License-Identifier: MIT */
/* Unit tests for the push engine's choice of pushes from preload links. */
#include "proxy/push.h"

#include <string.h>

#include "common/mem.h"
#include "common/tests/tap.h"
#include "proxy/request.h"

static struct lw_hdr link(const char *v)
{
    struct lw_hdr h = {"link", 4, v, strlen(v)};
    return h;
}

static const struct lw_link_uri base = {"https", 5, "example.com", 11, "/shop/index.html", 16};

int main(void)
{
    struct lw_push_memo memo;
    struct lw_push_candidate c[8];
    lw_push_memo_init(&memo);

    struct lw_hdr l1[] = {link("</a.css>; rel=preload; as=style, <b.js>; rel=preload; as=script"),
                          link("</img/c.png>; rel=preload; as=image")};
    size_t n = lw_push_select(&memo, &base, l1, 2, NULL, c, 8);
    TAP_EQ_INT(n, 3, "three preload links, three pushes");
    TAP_OK(n >= 2 && strcmp(c[0].path, "/a.css") == 0 && strcmp(c[1].path, "/shop/b.js") == 0,
           "absolute and relative paths resolve against the request URL");
    TAP_OK(n >= 3 && c[0].urgency == 1 && c[1].urgency == 1 && c[2].urgency == 5, "CSS and JS ahead of images");
    TAP_OK(n >= 1 && strcmp(c[0].as, "style") == 0, "as= is kept");

    n = lw_push_select(&memo, &base, l1, 2, NULL, c, 8);
    TAP_EQ_INT(n, 0, "nothing is pushed twice on a connection (103 then final response)");

    lw_push_memo_init(&memo);
    struct lw_hdr l2[] = {
        link("</x.css>; rel=preload; nopush"),
        link("<https://cdn.example.net/y.js>; rel=preload; as=script"),
        link("<http://example.com/z.js>; rel=preload"),
        link("</s.css>; rel=stylesheet"),
        link("</p.css>; rel=\"preload stylesheet\"; as=style"),
        link("</q.js>; rel=preload; anchor=\"/other\""),
        link("<//example.com/r.js>; rel=preload"),
        link("<https://EXAMPLE.com:443/t.js>; rel=preload"),
        link("<junk; rel=preload, </ok.js>; rel=preload"),
    };
    n = lw_push_select(&memo, &base, l2, LW_ARRAY_LEN(l2), NULL, c, 8);
    TAP_EQ_INT(n, 4, "only same-origin preload links without nopush or anchor");
    TAP_OK(n == 4 && strcmp(c[0].path, "/p.css") == 0, "rel with several types that include preload counts");
    TAP_OK(n == 4 && strcmp(c[1].path, "/r.js") == 0, "scheme-relative same-origin link counts");
    TAP_OK(n == 4 && strcmp(c[2].path, "/t.js") == 0, "host case and the default port do not matter");
    TAP_OK(n == 4 && strcmp(c[3].path, "/ok.js") == 0, "a malformed link does not stop the next one");

    lw_push_memo_init(&memo);
    struct lw_hdr self[] = {link("<>; rel=preload, <#top>; rel=preload, </shop/index.html>; rel=preload"),
                            link("<?page=2>; rel=preload, <index.html>; rel=preload")};
    n = lw_push_select(&memo, &base, self, LW_ARRAY_LEN(self), NULL, c, 8);
    TAP_OK(n == 1 && strcmp(c[0].path, "/shop/index.html?page=2") == 0,
           "a link to the page itself is not pushed; the same path with another query is (%zu)", n);

    lw_push_memo_init(&memo);
    struct lw_hdr many[] = {link("</1>; rel=preload, </2>; rel=preload, </3>; rel=preload, </4>; rel=preload")};
    n = lw_push_select(&memo, &base, many, 1, NULL, c, 2);
    TAP_EQ_INT(n, 2, "the cap bounds the pushes of one call");
    n = lw_push_select(&memo, &base, many, 1, NULL, c, 8);
    TAP_EQ_INT(n, 2, "what the cap left out can go later, what was pushed is not repeated");
    TAP_EQ_INT(memo.total, 4, "the memo counts the connection's pushes");

    /* Cache-aware: the digest cookie round-trips and filters. */
    char cookie[1024];
    uint64_t keys[2] = {lw_push_digest_key("/a.css", 6, NULL, 0), lw_push_digest_key("/shop/b.js", 10, NULL, 0)};
    ssize_t clen = lw_push_digest_add(NULL, 0, keys, 2, 7, cookie, sizeof(cookie));
    TAP_OK(clen > 0, "a digest of two keys encodes (%zd chars)", clen);
    uint8_t digest[LW_PUSH_DIGEST_MAX];
    ssize_t dlen = lw_push_digest_decode(cookie, (size_t)clen, digest, sizeof(digest));
    TAP_OK(dlen > 0, "and decodes");
    struct lw_push_filter filter = {.digest = digest, .digest_len = (size_t)dlen};
    lw_push_memo_init(&memo);
    n = lw_push_select(&memo, &base, l1, 2, &filter, c, 8);
    TAP_OK(n == 1 && strcmp(c[0].path, "/img/c.png") == 0, "what the digest holds is not pushed");
    TAP_EQ_INT(lw_push_digest_decode("@@@", 3, digest, sizeof(digest)), -1, "a malformed cookie is no digest");

    struct lw_etag_map *etags = lw_etag_map_new();
    lw_etag_map_put(etags, "/a.css", 6, "\"v2\"", 4);
    size_t elen = 0;
    const char *etag = lw_etag_map_get(etags, "/a.css", 6, &elen);
    TAP_OK(etag != NULL && elen == 4 && memcmp(etag, "\"v2\"", 4) == 0, "the ETag map remembers");
    filter.etags = etags;
    lw_push_memo_init(&memo);
    n = lw_push_select(&memo, &base, l1, 2, &filter, c, 8);
    TAP_EQ_INT(n, 1, "a path pushed before its ETag was known still counts as held");
    uint64_t vkey = lw_push_digest_key("/a.css", 6, "\"v3\"", 4);
    clen = lw_push_digest_add(NULL, 0, &vkey, 1, 7, cookie, sizeof(cookie));
    dlen = lw_push_digest_decode(cookie, (size_t)clen, digest, sizeof(digest));
    filter.digest = digest;
    filter.digest_len = (size_t)dlen;
    lw_push_memo_init(&memo);
    n = lw_push_select(&memo, &base, l1, 2, &filter, c, 8);
    TAP_OK(n == 3 && strcmp(c[0].path, "/a.css") == 0, "a changed ETag pushes the resource again");
    TAP_OK(n >= 1 && c[0].digest_key == lw_push_digest_key("/a.css", 6, "\"v2\"", 4), "keyed by path and ETag");
    lw_etag_map_free(etags);

    TAP_EQ_INT(lw_push_urgency("font", 4), 2, "fonts after CSS/JS");
    TAP_EQ_INT(lw_push_urgency("fetch", 5), 3, "anything else: default urgency");
    TAP_EQ_INT(lw_push_urgency("", 0), 3, "no as=: default urgency");
    TAP_EQ_INT(lw_push_urgency_of_type("text/css", 8), 1, "unsignalled CSS: urgency 1");
    TAP_EQ_INT(lw_push_urgency_of_type("Application/JavaScript; charset=utf-8", 37), 1, "JS, any case, parameters");
    TAP_EQ_INT(lw_push_urgency_of_type("text/html; charset=utf-8", 24), 3, "HTML: default urgency");
    TAP_EQ_INT(lw_push_urgency_of_type("text/cssx", 9), 3, "only whole type names");
    TAP_EQ_INT(lw_push_urgency_of_type("text/css\t;q", 11), 1, "a type ended by HTAB");
    TAP_EQ_INT(lw_push_urgency_of_type("text/cs", 7), 3, "a type cut short");
    TAP_EQ_INT(lw_push_urgency_of_type("text/css", 7), 3, "only the bytes given");
    TAP_EQ_INT(lw_push_urgency_of_type("", 0), 3, "no type: default urgency");
    return tap_done();
}
