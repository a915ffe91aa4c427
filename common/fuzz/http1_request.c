/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for lw_http1_parse_request. Beyond not crashing, every outcome must keep
 * the contract: a head length within the input whose views all lie inside the head, header
 * fields that hold no byte a smuggler could use, framing that is never both CL and TE, the
 * same answer from exactly the head's own bytes, or an error with a reason.
 */
#include <stdint.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small caps so that inputs of fuzzer size reach both limits. */
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

static void check_header(const char *buf, size_t head, const struct lw_http1_header *h)
{
    check(h->name_len > 0 && inside(buf, head, h->name, h->name_len) && inside(buf, head, h->value, h->value_len));
    for (size_t i = 0; i < h->name_len; i++) {
        check(lw_http1_is_tchar((unsigned char)h->name[i]));
    }
    for (size_t i = 0; i < h->value_len; i++) {
        unsigned char c = (unsigned char)h->value[i];
        check(c == '\t' || (c >= 0x20 && c != 0x7f));
    }
    if (h->value_len > 0) {
        check(h->value[0] != ' ' && h->value[0] != '\t');
        check(h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct lw_http1_header headers[FUZZ_MAX_HEADERS];
    struct lw_http1_request req;
    const char *reason = NULL;
    ssize_t rc = lw_http1_parse_request(buf, size, &req, headers, FUZZ_MAX_HEADERS, FUZZ_MAX_HEAD_BYTES, &reason);
    size_t head;
    size_t cl = 0;
    size_t te = 0;

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
    check(req.method_len > 0 && inside(buf, head, req.method, req.method_len));
    check(req.target_len > 0 && inside(buf, head, req.target, req.target_len));
    check(req.minor_version == 0 || req.minor_version == 1);
    check(req.num_headers <= FUZZ_MAX_HEADERS && req.headers == headers);
    check(req.minor_version == 0 || req.host != NULL);
    for (size_t i = 0; i < req.num_headers; i++) {
        check_header(buf, head, &headers[i]);
        cl += lw_http1_name_eq(headers[i].name, headers[i].name_len, "content-length");
        te += lw_http1_name_eq(headers[i].name, headers[i].name_len, "transfer-encoding");
    }
    check(cl == 0 || te == 0);
    check((req.body == LW_HTTP1_BODY_CHUNKED) == (te > 0));
    check(req.body != LW_HTTP1_BODY_CLOSE);
    check(req.body != LW_HTTP1_BODY_LENGTH || (req.content_length > 0 && cl > 0));

    /* The head alone must parse to the same length: the parser may not peek past it. */
    check(lw_http1_parse_request(buf, head, &req, headers, FUZZ_MAX_HEADERS, FUZZ_MAX_HEAD_BYTES, &reason) == rc);
    return 0;
}
