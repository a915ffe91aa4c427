/* SPDX-License-Identifier: MIT */
/* Choosing server pushes from preload links: same origin, deduplicated, capped. */
#include "proxy/push.h"

#include <stdlib.h>
#include <string.h>

#include "common/gcs.h"
#include "common/list.h"
#include "common/mem.h"

#include "common/http1.h"
#include "proxy/request.h"

static uint64_t hash_path(const char *p, size_t len)
{
    /* FNV-1a: the memo only needs to tell a connection's few hundred paths apart. */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h | 1; /* 0 marks an empty slot */
}

void lw_push_memo_init(struct lw_push_memo *m)
{
    memset(m, 0, sizeof(*m));
}

bool lw_push_memo_has(const struct lw_push_memo *m, const char *path, size_t len)
{
    uint64_t h = hash_path(path, len);
    for (unsigned i = 0; i < LW_PUSH_MEMO_SIZE; i++) {
        if (m->hashes[i] == h) {
            return true;
        }
    }
    return false;
}

void lw_push_memo_add(struct lw_push_memo *m, const char *path, size_t len)
{
    m->hashes[m->next] = hash_path(path, len);
    m->next = (m->next + 1) % LW_PUSH_MEMO_SIZE;
    m->total++;
}

uint8_t lw_push_urgency(const char *as, size_t as_len)
{
    if (lw_http1_name_eq(as, as_len, "style") || lw_http1_name_eq(as, as_len, "script")) {
        return 1;
    }
    if (lw_http1_name_eq(as, as_len, "font")) {
        return 2;
    }
    if (lw_http1_name_eq(as, as_len, "image")) {
        return 5;
    }
    return 3; /* RFC 9218's default */
}

uint8_t lw_push_urgency_of_type(const char *type, size_t len)
{
    /* Lengths spelled out: this runs for every response, and strlen of each entry at run time
     * cost more than the comparisons (about 400 instructions for application/octet-stream).
     * Each entry is tried where it would end rather than after a scan for the end of the
     * media type, which cost as much again. */
    static const struct {
        const char *name;
        size_t len;
    } blocking[] = {
        {"text/css", sizeof("text/css") - 1},
        {"text/javascript", sizeof("text/javascript") - 1},
        {"application/javascript", sizeof("application/javascript") - 1},
        {"application/x-javascript", sizeof("application/x-javascript") - 1},
        {"application/ecmascript", sizeof("application/ecmascript") - 1},
        {"text/ecmascript", sizeof("text/ecmascript") - 1},
    };
    for (size_t i = 0; i < LW_ARRAY_LEN(blocking); i++) {
        size_t n = blocking[i].len;
        if (n <= len && (n == len || type[n] == ';' || type[n] == ' ' || type[n] == '\t') &&
            lw_http1_name_eq(type, n, blocking[i].name)) {
            return 1;
        }
    }
    return 3;
}

size_t lw_push_select(struct lw_push_memo *memo, const struct lw_link_uri *base, const struct lw_hdr *links,
                      size_t num_links, const struct lw_push_filter *filter, struct lw_push_candidate *out,
                      size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < num_links && n < cap; i++) {
        size_t pos = 0;
        struct lw_link link;
        int r;
        while (n < cap && (r = lw_link_next(links[i].value, links[i].value_len, &pos, &link, NULL)) != 0) {
            if (r < 0 || !link.rel_preload || link.nopush || link.has_anchor || link.has_loadpolicy) {
                continue;
            }
            char buf[LW_PUSH_MAX_PATH + 512];
            struct lw_link_uri target;
            if (lw_link_resolve(base, link.uri, link.uri_len, buf, sizeof(buf), &target) < 0 ||
                !lw_link_is_same_origin(base, &target) || target.path_len == 0 ||
                target.path_len >= LW_PUSH_MAX_PATH) {
                continue;
            }
            if (target.path_len == base->path_len && memcmp(target.path, base->path, base->path_len) == 0) {
                continue; /* the page itself (<>, <#top>): the client is fetching it already */
            }
            if (lw_push_memo_has(memo, target.path, target.path_len)) {
                continue;
            }
            uint64_t key = lw_push_digest_key(target.path, target.path_len, NULL, 0);
            if (filter != NULL) {
                size_t etag_len = 0;
                const char *etag =
                    filter->etags ? lw_etag_map_get(filter->etags, target.path, target.path_len, &etag_len) : NULL;
                uint64_t etag_key = etag ? lw_push_digest_key(target.path, target.path_len, etag, etag_len) : key;
                if (filter->digest != NULL && (lw_gcs_contains(filter->digest, filter->digest_len, etag_key) ||
                                               lw_gcs_contains(filter->digest, filter->digest_len, key))) {
                    continue; /* the client has it: the digest says so */
                }
                key = etag_key;
            }
            struct lw_push_candidate *c = &out[n++];
            c->digest_key = key;
            memcpy(c->path, target.path, target.path_len);
            c->path[target.path_len] = '\0';
            c->path_len = target.path_len;
            size_t as_len = link.as != NULL && link.as_len < sizeof(c->as) ? link.as_len : 0;
            if (as_len > 0) {
                memcpy(c->as, link.as, as_len);
            }
            c->as[as_len] = '\0';
            c->urgency = lw_push_urgency(c->as, as_len);
            lw_push_memo_add(memo, target.path, target.path_len);
        }
    }
    return n;
}

struct hints_entry {
    struct lw_list lru;      /* most recently used last */
    struct hints_entry *next_in_bucket;
    uint64_t hash;
    const void *route;
    char *path;
    size_t path_len;
    uint64_t learned_ms;
    size_t num_links;
    struct lw_hdr links[LW_HINTS_MAX_LINKS];
    char text[LW_HINTS_MAX_BYTES];
};

struct lw_hints_cache {
    struct hints_entry **buckets;
    size_t num_buckets, size, max_entries;
    uint32_t ttl_ms;
    struct lw_list lru;
};

static uint64_t entry_hash(const void *route, const char *path, size_t len)
{
    return hash_path(path, len) ^ ((uint64_t)(uintptr_t)route * 0x9e3779b97f4a7c15ull);
}

struct lw_hints_cache *lw_hints_cache_new(size_t max_entries, uint32_t ttl_ms)
{
    struct lw_hints_cache *c = lw_calloc(1, sizeof(*c));
    c->max_entries = max_entries ? max_entries : 1;
    c->num_buckets = 64;
    while (c->num_buckets < c->max_entries) {
        c->num_buckets *= 2;
    }
    c->buckets = lw_calloc(c->num_buckets, sizeof(*c->buckets));
    c->ttl_ms = ttl_ms;
    lw_list_init(&c->lru);
    return c;
}

static struct hints_entry **find_slot(struct lw_hints_cache *c, uint64_t h, const void *route, const char *path,
                                      size_t len)
{
    struct hints_entry **pp = &c->buckets[h & (c->num_buckets - 1)];
    while (*pp != NULL && !((*pp)->hash == h && (*pp)->route == route && (*pp)->path_len == len &&
                            memcmp((*pp)->path, path, len) == 0)) {
        pp = &(*pp)->next_in_bucket;
    }
    return pp;
}

static void remove_entry(struct lw_hints_cache *c, struct hints_entry *e)
{
    struct hints_entry **pp = find_slot(c, e->hash, e->route, e->path, e->path_len);
    *pp = e->next_in_bucket;
    lw_list_remove(&e->lru);
    free(e->path);
    free(e);
    c->size--;
}

void lw_hints_cache_free(struct lw_hints_cache *c)
{
    if (c == NULL) {
        return;
    }
    while (!lw_list_is_empty(&c->lru)) {
        remove_entry(c, LW_LIST_ENTRY(c->lru.next, struct hints_entry, lru));
    }
    free(c->buckets);
    free(c);
}

static bool has_preload(const struct lw_hdr *h)
{
    if (h->name_len != 4 || memcmp(h->name, "link", 4) != 0) {
        return false;
    }
    size_t pos = 0;
    struct lw_link link;
    int r;
    while ((r = lw_link_next(h->value, h->value_len, &pos, &link, NULL)) != 0) {
        if (r > 0 && link.rel_preload) {
            return true;
        }
    }
    return false;
}

void lw_hints_cache_learn(struct lw_hints_cache *c, const void *route, const char *path, size_t path_len,
                          const struct lw_hdr *links, size_t n, uint64_t now_ms)
{
    uint64_t h = entry_hash(route, path, path_len);
    struct hints_entry **pp = find_slot(c, h, route, path, path_len);
    struct hints_entry *e = *pp;
    size_t keep = 0, bytes = 0;
    for (size_t i = 0; i < n && keep < LW_HINTS_MAX_LINKS; i++) {
        if (bytes + links[i].value_len <= LW_HINTS_MAX_BYTES && has_preload(&links[i])) {
            keep++;
            bytes += links[i].value_len;
        }
    }
    if (keep == 0) {
        if (e != NULL) {
            remove_entry(c, e); /* the page no longer announces preloads: stop hinting them */
        }
        return;
    }
    if (e == NULL) {
        if (c->size >= c->max_entries) {
            remove_entry(c, LW_LIST_ENTRY(c->lru.next, struct hints_entry, lru));
            pp = find_slot(c, h, route, path, path_len);
        }
        e = lw_calloc(1, sizeof(*e));
        e->hash = h;
        e->route = route;
        e->path = lw_strndup(path, path_len);
        e->path_len = path_len;
        *pp = e;
        lw_list_push_back(&c->lru, &e->lru);
        c->size++;
    } else {
        lw_list_remove(&e->lru);
        lw_list_push_back(&c->lru, &e->lru);
    }
    e->learned_ms = now_ms;
    e->num_links = 0;
    size_t off = 0;
    for (size_t i = 0; i < n && e->num_links < keep; i++) {
        if (off + links[i].value_len <= LW_HINTS_MAX_BYTES && has_preload(&links[i])) {
            memcpy(e->text + off, links[i].value, links[i].value_len);
            struct lw_hdr *l = &e->links[e->num_links++];
            l->name = "link";
            l->name_len = 4;
            l->value = e->text + off;
            l->value_len = links[i].value_len;
            off += links[i].value_len;
        }
    }
}

size_t lw_hints_cache_lookup(struct lw_hints_cache *c, const void *route, const char *path, size_t path_len,
                             uint64_t now_ms, struct lw_hdr *out, size_t cap)
{
    struct hints_entry *e = *find_slot(c, entry_hash(route, path, path_len), route, path, path_len);
    if (e == NULL) {
        return 0;
    }
    if (now_ms - e->learned_ms > c->ttl_ms) {
        remove_entry(c, e);
        return 0;
    }
    lw_list_remove(&e->lru);
    lw_list_push_back(&c->lru, &e->lru);
    size_t n = LW_MIN(e->num_links, cap);
    memcpy(out, e->links, n * sizeof(*out));
    return n;
}


#define ETAG_SLOTS 1024
#define ETAG_MAX 96

struct etag_slot {
    uint64_t path_hash; /* 0: empty */
    uint8_t len;
    char etag[ETAG_MAX];
};

struct lw_etag_map {
    struct etag_slot slots[ETAG_SLOTS];
};

struct lw_etag_map *lw_etag_map_new(void)
{
    return lw_calloc(1, sizeof(struct lw_etag_map));
}

void lw_etag_map_free(struct lw_etag_map *m)
{
    free(m);
}

void lw_etag_map_put(struct lw_etag_map *m, const char *path, size_t len, const char *etag, size_t etag_len)
{
    if (etag_len == 0 || etag_len > ETAG_MAX) {
        return;
    }
    uint64_t h = hash_path(path, len);
    struct etag_slot *s = &m->slots[h % ETAG_SLOTS];
    s->path_hash = h;
    s->len = (uint8_t)etag_len;
    memcpy(s->etag, etag, etag_len);
}

const char *lw_etag_map_get(const struct lw_etag_map *m, const char *path, size_t len, size_t *etag_len)
{
    uint64_t h = hash_path(path, len);
    const struct etag_slot *s = &m->slots[h % ETAG_SLOTS];
    if (s->path_hash != h) {
        return NULL;
    }
    *etag_len = s->len;
    return s->etag;
}

uint64_t lw_push_digest_key(const char *path, size_t len, const char *etag, size_t etag_len)
{
    char buf[LW_PUSH_MAX_PATH + ETAG_MAX + 1];
    if (len > LW_PUSH_MAX_PATH || etag_len > ETAG_MAX) {
        return lw_gcs_hash(path, len);
    }
    memcpy(buf, path, len);
    size_t n = len;
    if (etag != NULL && etag_len > 0) {
        buf[n++] = ' ';
        memcpy(buf + n, etag, etag_len);
        n += etag_len;
    }
    return lw_gcs_hash(buf, n);
}

ssize_t lw_push_digest_decode(const char *b64, size_t len, uint8_t *out, size_t cap)
{
    ssize_t n = lw_gcs_base64url_decode(b64, len, out, cap);
    if (n <= 0 || lw_gcs_validate(out, (size_t)n, NULL) != 0) {
        return -1;
    }
    return n;
}

ssize_t lw_push_digest_add(const uint8_t *digest, size_t len, const uint64_t *keys, size_t n, unsigned k, char *out,
                           size_t cap)
{
    uint64_t all[1u << LW_PUSH_DIGEST_LOG2N];
    size_t count = 0;
    if (digest != NULL && len > 0) {
        struct lw_gcs_reader r;
        uint64_t v;
        int rc;
        /* A digest made with other parameters cannot be merged: start afresh. */
        if (lw_gcs_reader_init(&r, digest, len) == 0 && r.log2n == LW_PUSH_DIGEST_LOG2N && r.k == k) {
            while ((rc = lw_gcs_reader_next(&r, &v)) == 1 && count < LW_ARRAY_LEN(all)) {
                all[count++] = v; /* a decoded value reduces to itself under the same log2n and k */
            }
        }
    }
    for (size_t i = 0; i < n && count < LW_ARRAY_LEN(all); i++) {
        all[count++] = keys[i];
    }
    uint8_t *bytes = NULL;
    size_t blen = 0;
    if (lw_gcs_encode(all, count, LW_PUSH_DIGEST_LOG2N, k, &bytes, &blen) != 0) {
        return -1;
    }
    ssize_t r = lw_gcs_base64url_encode(bytes, blen, out, cap);
    free(bytes);
    return r < 0 ? -1 : r;
}
