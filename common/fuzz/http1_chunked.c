/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for lw_http1_chunked_decode. The first input byte is a delimiter; the
 * rest is a chunked body. It is decoded three ways: in one buffer, in pieces that end after
 * each occurrence of the delimiter, and one byte at a time. A socket may split bytes
 * anywhere, so all three must yield the same data, stop at the same byte, and end in the
 * same state or with the same error.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum fuzz_split {
    FUZZ_SPLIT_NONE,
    FUZZ_SPLIT_DELIM,
    FUZZ_SPLIT_BYTES,
};

struct fuzz_result {
    ssize_t rc;         /* bytes consumed, or the error */
    const char *reason; /* on error */
    bool done;
    size_t out_len;
};

static void check(bool cond)
{
    if (!cond) {
        abort();
    }
}

/* Where the piece that starts at pos ends. */
static size_t piece_end(const char *in, size_t len, size_t pos, enum fuzz_split split, char delim)
{
    const char *d;

    switch (split) {
    case FUZZ_SPLIT_DELIM:
        d = memchr(in + pos, delim, len - pos);
        return d != NULL ? (size_t)(d - in) + 1 : len;
    case FUZZ_SPLIT_BYTES:
        return pos + 1;
    default:
        return len;
    }
}

/* Decode as a connection would: bytes the decoder left unconsumed wait for the next piece. */
static struct fuzz_result decode(const char *in, size_t len, enum fuzz_split split, char delim, char *out)
{
    struct fuzz_result r = {0};
    struct lw_http1_chunked c;
    size_t pos = 0;
    size_t avail = 0;

    lw_http1_chunked_init(&c);
    while (avail < len && !lw_http1_chunked_is_done(&c)) {
        avail = piece_end(in, len, avail, split, delim);
        while (pos < avail && !lw_http1_chunked_is_done(&c)) {
            const char *d = NULL;
            size_t dl = 0;
            ssize_t n = lw_http1_chunked_decode(&c, in + pos, avail - pos, &d, &dl, &r.reason);
            if (n < 0) {
                r.rc = n;
                return r;
            }
            check((size_t)n <= avail - pos);
            if (dl > 0) {
                check(d >= in + pos && d + dl == in + pos + n);
                memcpy(out + r.out_len, d, dl);
                r.out_len += dl;
            }
            if (n == 0) {
                break;
            }
            pos += (size_t)n;
        }
    }
    r.rc = (ssize_t)pos;
    r.done = lw_http1_chunked_is_done(&c);
    return r;
}

static void same(const struct fuzz_result *a, const char *out_a, const struct fuzz_result *b, const char *out_b)
{
    check(a->rc == b->rc && a->done == b->done && a->out_len == b->out_len);
    check(a->rc >= 0 || (a->reason != NULL && a->reason == b->reason));
    check(memcmp(out_a, out_b, a->out_len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in;
    char *out[3];
    struct fuzz_result r[3];
    char delim;

    if (size == 0) {
        return 0;
    }
    delim = (char)data[0];
    in = (const char *)data + 1;
    size--;
    for (int i = 0; i < 3; i++) {
        out[i] = malloc(size + 1);
        r[i] = decode(in, size, (enum fuzz_split)i, delim, out[i]);
    }
    check(r[0].rc < 0 || r[0].out_len <= (size_t)r[0].rc);
    same(&r[0], out[0], &r[1], out[1]);
    same(&r[0], out[0], &r[2], out[2]);
    for (int i = 0; i < 3; i++) {
        free(out[i]);
    }
    return 0;
}
