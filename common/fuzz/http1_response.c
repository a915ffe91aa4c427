/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for lw_http1_parse_response. The first input byte says whether the
 * request was HEAD (its low bit); the rest is the response. Every outcome must keep the
 * contract: views inside the head, a status in 100..999, no body where the rules forbid one,
 * no reuse of a connection whose body runs to its close, or an error with a reason.
 */
#include <stdint.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_HEADERS 16
#define FUZZ_MAX_HEAD_BYTES 2048

static void check(bool cond)
{
    if (!cond) {
        abort();
    }
}

static bool inside(const char *base, size_t len, const char *p, size_t n)
{
    return n == 0 || (p >= base && n <= len && p - base <= (ptrdiff_t)(len - n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lw_http1_header headers[FUZZ_MAX_HEADERS];
    struct lw_http1_response res;
    const char *reason = NULL;
    const char *buf;
    bool is_head;
    ssize_t rc;
    size_t head;

    if (size == 0) {
        return 0;
    }
    is_head = (data[0] & 1) != 0;
    buf = (const char *)data + 1;
    size--;
    rc = lw_http1_parse_response(buf, size, is_head, &res, headers, FUZZ_MAX_HEADERS, FUZZ_MAX_HEAD_BYTES, &reason);
    if (rc == LW_EINCOMPLETE) {
        check(size < FUZZ_MAX_HEAD_BYTES);
        return 0;
    }
    if (rc < 0) {
        check((rc == LW_EPROTO || rc == LW_ELIMIT) && reason != NULL);
        return 0;
    }
    head = (size_t)rc;
    check(head <= size && head <= FUZZ_MAX_HEAD_BYTES && head >= 4);
    check(buf[head - 1] == '\n' && buf[head - 2] == '\r' && buf[head - 3] == '\n' && buf[head - 4] == '\r');
    check(res.status >= 100 && res.status <= 999);
    check(res.minor_version == 0 || res.minor_version == 1);
    check(inside(buf, head, res.reason, res.reason_len));
    check(res.num_headers <= FUZZ_MAX_HEADERS);
    for (size_t i = 0; i < res.num_headers; i++) {
        check(res.headers[i].name_len > 0 && inside(buf, head, res.headers[i].name, res.headers[i].name_len));
        check(inside(buf, head, res.headers[i].value, res.headers[i].value_len));
        for (size_t k = 0; k < res.headers[i].name_len; k++) {
            check(lw_http1_is_tchar((unsigned char)res.headers[i].name[k]));
        }
        /* Field-value bytes only (RFC 9110 5.5), wherever they fall in the value. */
        for (size_t k = 0; k < res.headers[i].value_len; k++) {
            unsigned char c = (unsigned char)res.headers[i].value[k];
            check(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
    }
    if (is_head || res.status < 200 || res.status == 204 || res.status == 304) {
        check(res.body == LW_HTTP1_BODY_NONE);
    }
    check(res.body != LW_HTTP1_BODY_CLOSE || !res.keep_alive);
    check(res.body != LW_HTTP1_BODY_LENGTH || res.content_length > 0);

    check(lw_http1_parse_response(buf, head, is_head, &res, headers, FUZZ_MAX_HEADERS, FUZZ_MAX_HEAD_BYTES, &reason) ==
          rc);
    return 0;
}
