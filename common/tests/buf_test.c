/* SPDX-License-Identifier: MIT */
/* Unit tests for common/buf. */
#include "common/buf.h"

#include <string.h>
#include "common/mem.h"

#include "common/tests/tap.h"

int main(void)
{
    struct lw_buf b;
    lw_buf_init(&b);
    TAP_EQ_INT(lw_buf_size(&b), 0, "a new buffer is empty");
    lw_buf_append(&b, "hello ", 6);
    lw_buf_appendf(&b, "%s %d", "world", 42);
    TAP_EQ_MEM(lw_buf_head(&b), lw_buf_size(&b), "hello world 42", "append and appendf concatenate");
    lw_buf_consume(&b, 6);
    TAP_EQ_MEM(lw_buf_head(&b), lw_buf_size(&b), "world 42", "consume drops from the head");
    for (int i = 0; i < 10000; i++) {
        lw_buf_append(&b, "x", 1);
    }
    TAP_EQ_INT(lw_buf_size(&b), 8 + 10000, "growth keeps every byte");
    TAP_OK(memcmp(lw_buf_head(&b), "world 42x", 9) == 0, "growth keeps the order");
    lw_buf_consume(&b, lw_buf_size(&b));
    lw_buf_release(&b);
    TAP_OK(b.data == NULL && b.cap == 0, "release of an empty buffer frees its memory");
    lw_buf_append(&b, "a", 1);
    lw_buf_release(&b);
    TAP_OK(b.data != NULL, "release keeps a buffer that still holds bytes");
    lw_buf_dispose(&b);

    /* Headroom: bytes reserved this way can take a prefix, in place. */
    char *dst = lw_buf_reserve_headroom(&b, 100, 9);
    memcpy(dst, "payload", 7);
    lw_buf_commit(&b, 7);
    TAP_OK(lw_buf_prepend(&b, "head:", 5), "prepend fits into the headroom of an empty buffer");
    TAP_EQ_MEM(lw_buf_head(&b), lw_buf_size(&b), "head:payload", "prepend puts the bytes in front");
    TAP_OK(!lw_buf_prepend(&b, "12345", 5), "prepend refuses what the headroom cannot hold");
    TAP_EQ_MEM(lw_buf_head(&b), lw_buf_size(&b), "head:payload", "a refused prepend changes nothing");
    lw_buf_consume(&b, 5);
    TAP_OK(lw_buf_prepend(&b, "H:", 2), "consumed bytes become headroom");
    TAP_EQ_MEM(lw_buf_head(&b), lw_buf_size(&b), "H:payload", "prepend into consumed space");
    lw_buf_consume(&b, lw_buf_size(&b));
    dst = lw_buf_reserve_headroom(&b, b.cap, 16);
    memset(dst, 'y', b.cap - 16);
    lw_buf_commit(&b, b.cap - 16);
    TAP_OK(lw_buf_size(&b) == b.cap - 16 && b.off == 16, "growth keeps the headroom");
    size_t big = lw_buf_size(&b);
    lw_buf_consume(&b, big - 3);
    dst = lw_buf_reserve_headroom(&b, 64, 16);
    TAP_OK(b.off == 16 && lw_buf_size(&b) == 3 && memcmp(lw_buf_head(&b), "yyy", 3) == 0,
           "sliding down keeps the headroom and the bytes");
    lw_buf_dispose(&b);
    lw_buf_append_u64(&b, 0);
    lw_buf_append(&b, " ", 1);
    lw_buf_append_u64(&b, 100);
    lw_buf_append(&b, " ", 1);
    lw_buf_append_u64(&b, UINT64_MAX);
    TAP_EQ_MEM(lw_buf_head(&b), lw_buf_size(&b), "0 100 18446744073709551615", "append_u64 writes decimal");
    lw_buf_dispose(&b);

    struct lw_mem_cache cache;
    lw_mem_cache_init(&cache, 64, 2);
    lw_buf_reserve_cached(&b, &cache);
    TAP_OK(b.data != NULL && b.cap == 64 && lw_buf_size(&b) == 0, "reserve_cached gives an empty buffer a block");
    char *block = b.data;
    lw_buf_append(&b, "abc", 3);
    lw_buf_reserve_cached(&b, &cache);
    TAP_EQ_MEM(lw_buf_head(&b), lw_buf_size(&b), "abc", "reserve_cached leaves a buffer with memory alone");
    lw_buf_dispose_cached(&b, &cache);
    TAP_OK(b.data == NULL && b.cap == 0, "dispose_cached empties the buffer");
    lw_buf_reserve_cached(&b, &cache);
    /* Sanitizer builds keep no blocks, so the same block comes back only in others. */
    TAP_OK(cache.max == 0 || b.data == block, "a block given back is taken again");
    for (int i = 0; i < 100; i++) {
        lw_buf_append(&b, "0123456789", 10);
    }
    TAP_EQ_INT(lw_buf_size(&b), 1000, "a cached block grows like any other");
    lw_buf_dispose_cached(&b, &cache);
    void *blocks[3] = {lw_mem_cache_get(&cache), lw_mem_cache_get(&cache), lw_mem_cache_get(&cache)};
    for (int i = 0; i < 3; i++) {
        lw_mem_cache_put(&cache, blocks[i]);
    }
    TAP_OK(cache._n <= 2, "the cache keeps at most max blocks");
    lw_mem_cache_dispose(&cache);
    TAP_OK(cache._n == 0 && cache._free == NULL, "dispose frees every kept block");
    return tap_done();
}
