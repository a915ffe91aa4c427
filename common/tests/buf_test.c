/* SPDX-License-Identifier: MIT */
/* Unit tests for common/buf. */
#include "common/buf.h"

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
    lw_buf_append_u64(&b, 0);
    lw_buf_append(&b, " ", 1);
    lw_buf_append_u64(&b, 100);
    lw_buf_append(&b, " ", 1);
    lw_buf_append_u64(&b, UINT64_MAX);
    TAP_EQ_MEM(lw_buf_head(&b), lw_buf_size(&b), "0 100 18446744073709551615", "append_u64 writes decimal");
    lw_buf_dispose(&b);
    return tap_done();
}
