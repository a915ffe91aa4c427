/* SPDX-License-Identifier: MIT */
/* Growable byte buffers with a read cursor. */
#include "common/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

void lw_buf_dispose(struct lw_buf *b)
{
    free(b->data);
    lw_buf_init(b);
}

void lw_buf_reserve_cached(struct lw_buf *b, struct lw_mem_cache *c)
{
    if (b->data == NULL) {
        b->data = lw_mem_cache_get(c);
        b->cap = c->size;
        b->off = b->len = 0;
    }
}

void lw_buf_dispose_cached(struct lw_buf *b, struct lw_mem_cache *c)
{
    if (b->data != NULL && b->cap == c->size) {
        lw_mem_cache_put(c, b->data);
        lw_buf_init(b);
        return;
    }
    lw_buf_dispose(b);
}

char *lw_buf_reserve(struct lw_buf *b, size_t n)
{
    if (b->off == b->len) {
        b->off = b->len = 0;
    }
    if (b->cap - b->len >= n) {
        return b->data + b->len;
    }
    size_t used = b->len - b->off;
    if (b->off > 0 && b->cap - used >= n && b->off >= used) {
        /* Slide the unread bytes down instead of growing: cheap when little is unread. */
        memmove(b->data, b->data + b->off, used);
        b->off = 0;
        b->len = used;
        return b->data + b->len;
    }
    size_t want = used + n;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < want) {
        cap *= 2;
    }
    if (b->off > 0) {
        char *d = lw_malloc(cap);
        memcpy(d, b->data + b->off, used);
        free(b->data);
        b->data = d;
        b->off = 0;
        b->len = used;
    } else {
        b->data = lw_realloc(b->data, cap);
    }
    b->cap = cap;
    return b->data + b->len;
}

char *lw_buf_reserve_headroom(struct lw_buf *b, size_t n, size_t headroom)
{
    size_t used = b->len - b->off;
    if (used == 0) {
        b->off = b->len = 0;
    }
    if (b->cap - b->len >= n && (used > 0 || b->cap - headroom >= n)) {
        if (used == 0) {
            b->off = b->len = headroom;
        }
        return b->data + b->len;
    }
    if (b->off >= headroom + used && b->cap - headroom - used >= n) {
        /* Slide the unread bytes down instead of growing: cheap when little is unread. */
        memmove(b->data + headroom, b->data + b->off, used);
        b->off = headroom;
        b->len = headroom + used;
        return b->data + b->len;
    }
    size_t want = headroom + used + n;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < want) {
        cap *= 2;
    }
    char *d = lw_malloc(cap);
    if (used > 0) {
        memcpy(d + headroom, b->data + b->off, used);
    }
    free(b->data);
    b->data = d;
    b->cap = cap;
    b->off = headroom;
    b->len = headroom + used;
    return b->data + b->len;
}

bool lw_buf_prepend(struct lw_buf *b, const void *p, size_t n)
{
    if (b->off < n) {
        return false;
    }
    b->off -= n;
    memcpy(b->data + b->off, p, n);
    return true;
}

void lw_buf_append_slow(struct lw_buf *b, const void *p, size_t n)
{
    if (n == 0) {
        return;
    }
    memcpy(lw_buf_reserve(b, n), p, n);
    b->len += n;
}

size_t lw_buf_format_u64(char *dst, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[sizeof(tmp) - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    memcpy(dst, tmp + sizeof(tmp) - n, n);
    return n;
}

void lw_buf_append_u64(struct lw_buf *b, uint64_t v)
{
    char tmp[20];
    lw_buf_append(b, tmp, lw_buf_format_u64(tmp, v));
}

void lw_buf_appendf(struct lw_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n < sizeof(tmp)) {
        lw_buf_append(b, tmp, (size_t)n);
        return;
    }
    char *dst = lw_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(dst, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void lw_buf_consume(struct lw_buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len) {
        b->off = b->len = 0;
    }
}

void lw_buf_release(struct lw_buf *b)
{
    if (b->off == b->len) {
        lw_buf_dispose(b);
    }
}
