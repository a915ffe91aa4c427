/* SPDX-License-Identifier: MIT */
/* Bump allocation for per-exchange data, freed all at once with the exchange. */
#include "common/arena.h"

#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

struct lw_arena_block {
    struct lw_arena_block *next;
    size_t size;
    char data[];
};

void lw_arena_init(struct lw_arena *a)
{
    a->_blocks = NULL;
    a->_cur = a->_first;
    a->_left = sizeof(a->_first);
}

void lw_arena_dispose(struct lw_arena *a)
{
    struct lw_arena_block *b = a->_blocks;
    while (b != NULL) {
        struct lw_arena_block *next = b->next;
        free(b);
        b = next;
    }
    lw_arena_init(a);
}

void *lw_arena_alloc(struct lw_arena *a, size_t n)
{
    size_t pad = (size_t)(-(uintptr_t)a->_cur) & 15u;
    if (n + pad > a->_left) {
        /* Large requests get a block of their own so the current block keeps its space. */
        size_t size = n + 16 > 4096 ? n + 16 : 4096;
        struct lw_arena_block *b = lw_malloc(sizeof(*b) + size);
        b->next = a->_blocks;
        b->size = size;
        a->_blocks = b;
        if (size > 4096) {
            return b->data;
        }
        a->_cur = b->data;
        a->_left = size;
        pad = 0;
    }
    void *p = a->_cur + pad;
    a->_cur += pad + n;
    a->_left -= pad + n;
    return p;
}

char *lw_arena_strndup(struct lw_arena *a, const char *s, size_t n)
{
    char *p = lw_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
