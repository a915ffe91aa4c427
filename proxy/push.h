/* SPDX-License-Identifier: MIT */
/*
 * The push engine's decisions, kept free of sockets so they can be tested alone: which of a
 * response's preload links (from its 103 or its final headers) become server pushes. A link
 * is a candidate when it is rel=preload without nopush (nor anchor= or loadpolicy=, which
 * make it about something else), resolves against the request URL to the same scheme and
 * authority, and was not pushed on this connection already (from the 103 or an earlier
 * response). Caps per request and per connection bound the work a response can cause.
 */
#ifndef LW_PROXY_PUSH_H
#define LW_PROXY_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/link.h"

struct lw_hdr;

/* How many pushed URLs a connection remembers to avoid pushing twice. */
#define LW_PUSH_MEMO_SIZE 256
/* Longest path a push is made for. */
#define LW_PUSH_MAX_PATH 1024

/* What a connection has pushed: a ring of hashes of the pushed paths. */
struct lw_push_memo {
    uint64_t hashes[LW_PUSH_MEMO_SIZE];
    unsigned next;  /* ring position */
    unsigned total; /* pushes on the connection */
};

struct lw_push_candidate {
    char path[LW_PUSH_MAX_PATH]; /* path and query, resolved */
    size_t path_len;
    uint64_t digest_key; /* its key in a cache digest (path, and ETag when known) */
    char as[16]; /* the link's as= (style, script, image, font...), "" if none */
    uint8_t urgency; /* RFC 9218 urgency for the pushed stream, 0 (highest) to 7 */
};

void lw_push_memo_init(struct lw_push_memo *m);
bool lw_push_memo_has(const struct lw_push_memo *m, const char *path, size_t len);
void lw_push_memo_add(struct lw_push_memo *m, const char *path, size_t len);

/*
 * Pick push candidates from Link values links[0..num_links) of a response to the request at
 * base. At most `cap` are written to out; each chosen one is added to memo. Returns the
 * number written. Malformed links are skipped (never stop the others).
 */
/*
 * Cache-aware push (the idea of H2O's CASPer): the client carries, in a cookie, a Golomb-coded
 * set of what was pushed to it; a push the set already holds is skipped. A resource's key is
 * its path plus its ETag when lowat has seen one for it (so a changed resource is pushed
 * again), else its path alone; a push is skipped when either key is in the set.
 */
#define LW_PUSH_DIGEST_COOKIE "lw_digest"
#define LW_PUSH_DIGEST_LOG2N 7 /* room for 128 resources at the chosen false-positive rate */
#define LW_PUSH_DIGEST_MAX 512 /* bytes of digest accepted from a client */

/* ETags of pushed responses, per worker: a bounded direct-mapped table. */
struct lw_etag_map;
struct lw_etag_map *lw_etag_map_new(void);
void lw_etag_map_free(struct lw_etag_map *m);
void lw_etag_map_put(struct lw_etag_map *m, const char *path, size_t len, const char *etag, size_t etag_len);
/* The ETag seen for path, or NULL (*etag_len set). Borrowed until the next put. */
const char *lw_etag_map_get(const struct lw_etag_map *m, const char *path, size_t len, size_t *etag_len);

uint64_t lw_push_digest_key(const char *path, size_t len, const char *etag, size_t etag_len);
/* The client's digest from the value of its lw_digest cookie: bytes into out, or -1 when
 * absent, malformed (base64url or GCS) or over the limit. */
ssize_t lw_push_digest_decode(const char *b64, size_t len, uint8_t *out, size_t cap);
/* The cookie value (base64url) of digest[0..len) (may be empty) plus keys[0..n), with
 * false-positive exponent k. Returns its length in out, or -1 (full, or out too small). */
ssize_t lw_push_digest_add(const uint8_t *digest, size_t len, const uint64_t *keys, size_t n, unsigned k, char *out,
                           size_t cap);

/* What lw_push_select consults for cache-aware push (all optional). */
struct lw_push_filter {
    const uint8_t *digest; /* the client's validated digest, or NULL */
    size_t digest_len;
    const struct lw_etag_map *etags;
};

size_t lw_push_select(struct lw_push_memo *memo, const struct lw_link_uri *base, const struct lw_hdr *links,
                      size_t num_links, const struct lw_push_filter *filter, struct lw_push_candidate *out,
                      size_t cap);

/* RFC 9218 urgency for a pushed resource by its as= value: render-blocking CSS and scripts
 * ahead of fonts, images and the rest. */
uint8_t lw_push_urgency(const char *as, size_t as_len);

/* The urgency a response earns by its media type when the client sent no priority signal:
 * stylesheets and scripts block rendering, so 1 (as their pushes get), anything else 3,
 * RFC 9218's default. `type` is a Content-Type value, parameters allowed. */
uint8_t lw_push_urgency_of_type(const char *type, size_t len);

/*
 * Learned hints: per worker, the preload links that recent final responses carried for a
 * route and path, so that a navigation to that path gets a 103 the moment it arrives, before
 * the backend has answered; apps that never send 103 still gain their think time. Bounded:
 * at most max_entries paths (least recently used go first), each forgotten after ttl_ms, each
 * holding at most LW_HINTS_MAX_LINKS Link values of at most LW_HINTS_MAX_BYTES in all.
 */
#define LW_HINTS_MAX_LINKS 8
#define LW_HINTS_MAX_BYTES 2048

struct lw_hints_cache;

struct lw_hints_cache *lw_hints_cache_new(size_t max_entries, uint32_t ttl_ms);
void lw_hints_cache_free(struct lw_hints_cache *c);
/* Remember the Link values among links[0..n) that hold a preload link, for (route, path);
 * a response with none makes the cache forget the path. */
void lw_hints_cache_learn(struct lw_hints_cache *c, const void *route, const char *path, size_t path_len,
                          const struct lw_hdr *links, size_t n, uint64_t now_ms);
/* The remembered Link values for (route, path): up to cap views into the cache, valid until
 * the next learn call. Returns how many (0 when unknown or expired). */
size_t lw_hints_cache_lookup(struct lw_hints_cache *c, const void *route, const char *path, size_t path_len,
                             uint64_t now_ms, struct lw_hdr *out, size_t cap);

#endif
