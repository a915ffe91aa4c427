/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for common/gcs. The first byte picks what the rest is:
 *   0: a digest, as a client's cookie would carry it. The reader must yield ascending values
 *      within the announced range and capacity, every value must be contained, and a digest
 *      that validates must be exactly what the encoder makes of its values.
 *   1: a set to encode: the next byte gives k and log2n slack, then 8-byte hashes. Every
 *      hash must be found in the digest, which must validate and hold at most as many values.
 *   2: base64url text: if it decodes, encoding gives it back; and the bytes, encoded, decode
 *      to themselves.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/gcs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_VALUES 4096 /* hashes encoded, and values decoded and re-encoded */

static void check(bool cond)
{
    if (!cond) {
        abort();
    }
}

static void fuzz_digest(const uint8_t *d, size_t len)
{
    static uint64_t values[FUZZ_MAX_VALUES];
    struct lw_gcs_reader r;
    uint64_t v;
    size_t n = 0;
    bool all = true; /* every value fit in values[] */
    int rc;
    uint8_t *again;
    size_t again_len;

    if (lw_gcs_reader_init(&r, d, len) < 0) {
        check(len < 2 || ((d[0] & 0x07) == 0 && (d[1] & 0xc0) == 0)); /* k = 0 */
        check(lw_gcs_validate(d, len, NULL) == LW_EPROTO && !lw_gcs_contains(d, len, 0));
        return;
    }
    check(r.log2n <= LW_GCS_LOG2N_MAX && r.k >= 1 && r.k <= LW_GCS_K_MAX);
    while ((rc = lw_gcs_reader_next(&r, &v)) == 1) {
        check(v < ((uint64_t)1 << (r.log2n + r.k)) && r.count <= ((uint64_t)1 << r.log2n));
        check(n == 0 || v > values[n - 1]);
        if (n == FUZZ_MAX_VALUES) {
            all = false;
            continue;
        }
        /* The digest reads well up to v, so v is found (walks are quadratic: sample). */
        if (n < 256 || n % 64 == 0) {
            check(lw_gcs_contains(d, len, v));
        }
        values[n++] = v;
    }
    check(rc == 0 || rc == LW_EPROTO);
    check(lw_gcs_reader_next(&r, &v) == rc);
    check(lw_gcs_validate(d, len, NULL) == (rc == 0 ? LW_OK : LW_EPROTO));
    if (rc == 0 && all) {
        check(lw_gcs_encode(values, n, r.log2n, r.k, &again, &again_len) == LW_OK);
        check(again_len == len && memcmp(again, d, len) == 0);
        free(again);
    }
}

static void fuzz_set(const uint8_t *p, size_t len)
{
    static uint64_t hashes[FUZZ_MAX_VALUES];
    size_t n = 0;
    unsigned k;
    unsigned log2n;
    uint8_t *digest;
    size_t digest_len;
    size_t count;

    if (len < 1) {
        return;
    }
    k = (unsigned)(p[0] % LW_GCS_K_MAX) + 1;
    for (size_t i = 1; i + 8 <= len && n < FUZZ_MAX_VALUES; i += 8) {
        memcpy(&hashes[n++], p + i, 8);
    }
    log2n = lw_gcs_log2n(n) + (p[0] >> 5); /* up to 7 bits of slack */
    if (log2n > LW_GCS_LOG2N_MAX) {
        log2n = LW_GCS_LOG2N_MAX;
    }
    check(lw_gcs_encode(hashes, n, log2n, k, &digest, &digest_len) == LW_OK);
    check(lw_gcs_validate(digest, digest_len, &count) == LW_OK && count <= n);
    for (size_t i = 0; i < n; i++) {
        check(lw_gcs_contains(digest, digest_len, hashes[i]));
    }
    free(digest);
}

static void fuzz_base64url(const uint8_t *p, size_t len)
{
    char text[2048];
    uint8_t bytes[2048];
    ssize_t n = lw_gcs_base64url_decode((const char *)p, len, bytes, sizeof(bytes));
    ssize_t m;

    if (n >= 0) {
        m = lw_gcs_base64url_encode(bytes, (size_t)n, text, sizeof(text));
        check(m >= 0 && (size_t)m == len && memcmp(text, p, len) == 0);
    } else {
        check(n == LW_EPROTO || n == LW_ELIMIT);
    }
    if (len <= 1024) {
        m = lw_gcs_base64url_encode(p, len, text, sizeof(text));
        check(m >= 0 && (size_t)m == lw_gcs_base64url_len(len));
        n = lw_gcs_base64url_decode(text, (size_t)m, bytes, sizeof(bytes));
        check(n >= 0 && (size_t)n == len && memcmp(bytes, p, len) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    switch (data[0] % 3) {
    case 0:
        fuzz_digest(data + 1, size - 1);
        break;
    case 1:
        fuzz_set(data + 1, size - 1);
        break;
    default:
        fuzz_base64url(data + 1, size - 1);
        break;
    }
    return 0;
}
