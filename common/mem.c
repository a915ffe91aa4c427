/* SPDX-License-Identifier: MIT */
/* Allocation wrappers that abort with a log line instead of returning NULL. */
#include "common/mem.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static void out_of_memory(size_t size)
{
    lw_log_error("out of memory allocating %zu bytes", size);
    abort();
}

void *lw_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        out_of_memory(size);
    }
    return p;
}

void *lw_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        out_of_memory(n * size);
    }
    return p;
}

void *lw_realloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (q == NULL) {
        out_of_memory(size);
    }
    return q;
}

char *lw_strndup(const char *s, size_t n)
{
    char *p = lw_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *lw_strdup(const char *s)
{
    return lw_strndup(s, strlen(s));
}

void lw_mem_cache_init(struct lw_mem_cache *c, size_t size, size_t max)
{
#if defined(__SANITIZE_ADDRESS__)
    max = 0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    max = 0;
#endif
#endif
    c->size = size < sizeof(void *) ? sizeof(void *) : size;
    c->max = max;
    c->_n = 0;
    c->_free = NULL;
}

void *lw_mem_cache_take(struct lw_mem_cache *c)
{
    void *p = c->_free;
    if (p != NULL) {
        memcpy(&c->_free, p, sizeof(void *));
        c->_n--;
    }
    return p;
}

void *lw_mem_cache_get(struct lw_mem_cache *c)
{
    void *p = lw_mem_cache_take(c);
    return p != NULL ? p : lw_malloc(c->size);
}

void lw_mem_cache_put(struct lw_mem_cache *c, void *p)
{
    if (c->_n >= c->max) {
        free(p);
        return;
    }
    memcpy(p, &c->_free, sizeof(void *));
    c->_free = p;
    c->_n++;
}

void lw_mem_cache_dispose(struct lw_mem_cache *c)
{
    while (c->_free != NULL) {
        void *p = c->_free;
        memcpy(&c->_free, p, sizeof(void *));
        free(p);
    }
    c->_n = 0;
}

void lw_bug(const char *file, int line, const char *what)
{
    lw_log_error("BUG at %s:%d: %s", file, line, what);
    abort();
}
