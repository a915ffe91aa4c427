/* SPDX-License-Identifier: MIT */
/*
 * Allocation that never returns NULL: running out of memory aborts with a log line.
 * Memory is bounded by configured caps checked before any size that came from the network
 * is allocated, so an allocation failure here is a bug or a machine in trouble.
 */
#ifndef LW_COMMON_MEM_H
#define LW_COMMON_MEM_H

#include <stddef.h>

void *lw_malloc(size_t size);
void *lw_calloc(size_t n, size_t size);
void *lw_realloc(void *p, size_t size);
char *lw_strdup(const char *s);
char *lw_strndup(const char *s, size_t n);

/*
 * Blocks of one size kept for reuse by one thread. Memory that every exchange takes and gives
 * back (request objects, head and body buffers) comes from here instead of malloc, whose cost
 * for such blocks, past its own small per-thread caches, showed in profiles. At most max
 * blocks are kept; the rest go back to malloc. Builds with AddressSanitizer keep none, so
 * that a use after free is still caught.
 */
struct lw_mem_cache {
    size_t size; /* bytes per block */
    size_t max;
    size_t _n;
    void *_free; /* kept blocks, each holding the next one's address */
};

void lw_mem_cache_init(struct lw_mem_cache *c, size_t size, size_t max);
/* A block of c->size bytes, not zeroed; the caller owns it until lw_mem_cache_put. */
void *lw_mem_cache_get(struct lw_mem_cache *c);
/* A kept block of c->size bytes, not zeroed, or NULL when none is kept. */
void *lw_mem_cache_take(struct lw_mem_cache *c);
/* Give back a block from lw_mem_cache_get, or any malloc'd block of c->size bytes (moved). */
void lw_mem_cache_put(struct lw_mem_cache *c, void *p);
/* Free every kept block. */
void lw_mem_cache_dispose(struct lw_mem_cache *c);

#define LW_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define LW_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define LW_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LW_MAX(a, b) ((a) > (b) ? (a) : (b))

/* An invariant that must hold; a violation is a bug and aborts with file:line. */
#define LW_BUG_ON(cond)                                                                                                \
    do {                                                                                                               \
        if (cond) {                                                                                                    \
            lw_bug(__FILE__, __LINE__, #cond);                                                                         \
        }                                                                                                              \
    } while (0)

void lw_bug(const char *file, int line, const char *what) __attribute__((noreturn));

#endif
