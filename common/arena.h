/* SPDX-License-Identifier: MIT */
/*
 * A bump allocator for per-exchange strings: many small allocations, one free. Blocks never
 * move, so pointers into an arena stay valid until lw_arena_dispose. The first block is
 * embedded in the arena so short exchanges allocate nothing more.
 */
#ifndef LW_COMMON_ARENA_H
#define LW_COMMON_ARENA_H

#include <stddef.h>
#include <stdint.h>

struct lw_arena_block;

struct lw_arena {
    struct lw_arena_block *_blocks; /* heap blocks, newest first */
    char *_cur;
    size_t _left;
    char _first[1024];
};

void lw_arena_init(struct lw_arena *a);
void lw_arena_dispose(struct lw_arena *a);
/* n bytes aligned for any type, valid until dispose. */
void *lw_arena_alloc(struct lw_arena *a, size_t n);
/* A NUL-terminated copy of s[0..n). */
char *lw_arena_strndup(struct lw_arena *a, const char *s, size_t n);

#endif
