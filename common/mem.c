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

void lw_bug(const char *file, int line, const char *what)
{
    lw_log_error("BUG at %s:%d: %s", file, line, what);
    abort();
}
