/* SPDX-License-Identifier: MIT */
/*
 * A growable byte buffer with a read cursor: bytes are appended at the tail and consumed
 * from the head. Used for socket input, output queues and bodies in flight. An empty
 * buffer can give its memory back (lw_buf_release), which idle connections do.
 */
#ifndef LW_COMMON_BUF_H
#define LW_COMMON_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct lw_buf {
    char *data;
    size_t off; /* first unread byte */
    size_t len; /* end of the written bytes */
    size_t cap;
};

static inline void lw_buf_init(struct lw_buf *b)
{
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

/* Free the memory; the buffer is empty and usable again afterwards. */
void lw_buf_dispose(struct lw_buf *b);

struct lw_mem_cache;
/* An empty buffer without memory takes a block of the cache's size from it: appends that fit
 * the block then allocate nothing. Otherwise nothing happens. */
void lw_buf_reserve_cached(struct lw_buf *b, struct lw_mem_cache *c);
/* lw_buf_dispose that gives a block of the cache's size back to it (moved) instead of freeing. */
void lw_buf_dispose_cached(struct lw_buf *b, struct lw_mem_cache *c);

/* Bytes waiting to be read. */
static inline size_t lw_buf_size(const struct lw_buf *b)
{
    return b->len - b->off;
}

/* Borrow a view of the unread bytes, valid until the buffer next changes. */
static inline char *lw_buf_head(const struct lw_buf *b)
{
    return b->data + b->off;
}

/* Make room for at least n more bytes and return where to write them; the caller then
 * calls lw_buf_commit with how many it wrote. May move the unread bytes. */
char *lw_buf_reserve(struct lw_buf *b, size_t n);

static inline void lw_buf_commit(struct lw_buf *b, size_t n)
{
    b->len += n;
}

/* lw_buf_reserve for a buffer whose bytes may later get a short prefix (lw_buf_prepend):
 * when empty, or when its bytes must move, they start `headroom` bytes in. */
char *lw_buf_reserve_headroom(struct lw_buf *b, size_t n, size_t headroom);

/* Put n bytes in front of the head, into space already consumed, and return true; false
 * (the buffer unchanged) when fewer than n bytes lie before the head. */
bool lw_buf_prepend(struct lw_buf *b, const void *p, size_t n);

/* Copy n bytes in at the tail. Inline for when they fit: heads are built from many short
 * pieces. */
static inline void lw_buf_append(struct lw_buf *b, const void *p, size_t n);
/* lw_buf_append when the bytes may not fit. */
void lw_buf_append_slow(struct lw_buf *b, const void *p, size_t n);
/* Write v in decimal to dst, which has room for 20 bytes (no NUL); returns the length.
 * What request paths use instead of printf-style formatting, which costs far more. */
size_t lw_buf_format_u64(char *dst, uint64_t v);
/* Append v in decimal. */
void lw_buf_append_u64(struct lw_buf *b, uint64_t v);
/* printf-style append. */
void lw_buf_appendf(struct lw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Drop n bytes from the head (n <= lw_buf_size). */
void lw_buf_consume(struct lw_buf *b, size_t n);

/* Give the memory back if the buffer is empty (idle connections keep nothing). */
void lw_buf_release(struct lw_buf *b);

static inline void lw_buf_append(struct lw_buf *b, const void *p, size_t n)
{
    if (n != 0 && n <= b->cap - b->len) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return;
    }
    lw_buf_append_slow(b, p, n);
}

#endif
