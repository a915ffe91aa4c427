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
