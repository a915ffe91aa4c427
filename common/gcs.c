/* SPDX-License-Identifier: MIT */
/*
 * Golomb-coded sets for cache digests. A set of n hashes reduced to [0, N * 2^k) has gaps
 * that are close to geometric with mean 2^k, and Golomb-Rice coding with parameter 2^k is
 * near optimal for those: about k + 2 bits per member, against 1.44 * k for a Bloom filter
 * of the same false-positive rate, and no false negatives. The digest arrives from the client
 * in a cookie, so the reader treats it as hostile: every read is bounded by the length, every
 * value by the range its header announces, and the number of values by the capacity.
 * Membership walks the codes in order, which costs little at the sizes a cookie can carry
 * (a 4 KB cookie holds a 3 KB digest: some 2,800 values at k = 7).
 */
#include "common/gcs.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/mem.h"

enum {
    LW_GCS_READING = 0,
    LW_GCS_ENDED = 1,
};

uint64_t lw_gcs_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 offset basis and prime */

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    /* FNV-1a's last multiply leaves the low bits depending on few input bits of the last
     * bytes; fmix64 spreads every bit over the word. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

unsigned lw_gcs_log2n(size_t n)
{
    unsigned l = 0;
    while (l < 63 && ((uint64_t)1 << l) < n) {
        l++;
    }
    return l;
}

/* ---- Writing ---- */

struct bit_writer {
    uint8_t *p;
    size_t cap;
    size_t bit;
    bool overflow;
};

static void put_bit(struct bit_writer *w, unsigned b)
{
    size_t byte = w->bit >> 3;

    if (byte >= w->cap) {
        w->overflow = true;
        return;
    }
    if ((w->bit & 7) == 0) {
        w->p[byte] = 0;
    }
    if (b) {
        w->p[byte] |= (uint8_t)(0x80u >> (w->bit & 7));
    }
    w->bit++;
}

/* The low n bits of v, MSB first. */
static void put_bits(struct bit_writer *w, uint64_t v, unsigned n)
{
    while (n > 0 && !w->overflow) {
        n--;
        put_bit(w, (unsigned)(v >> n) & 1);
    }
}

static void put_codes(struct bit_writer *w, const uint64_t *values, size_t n, unsigned k)
{
    uint64_t min = 0;

    for (size_t i = 0; i < n && !w->overflow; i++) {
        uint64_t d = values[i] - min;
        /* q is bounded by the range for digests; for the low-level call it is bounded by
         * cap, since a full buffer stops the loop. */
        for (uint64_t q = d >> k; q > 0 && !w->overflow; q--) {
            put_bit(w, 1);
        }
        put_bit(w, 0);
        put_bits(w, d, k);
        min = values[i] + 1;
    }
}

static void pad(struct bit_writer *w)
{
    while ((w->bit & 7) != 0 && !w->overflow) {
        put_bit(w, 1);
    }
}

ssize_t lw_gcs_encode_values(const uint64_t *values, size_t n, unsigned k, uint8_t *out, size_t cap)
{
    struct bit_writer w = {out, cap, 0, false};

    if (k == 0 || k > LW_GCS_K_MAX) {
        return LW_EINVAL;
    }
    for (size_t i = 1; i < n; i++) {
        if (values[i] <= values[i - 1]) {
            return LW_EINVAL;
        }
    }
    put_codes(&w, values, n, k);
    pad(&w);
    return w.overflow ? LW_ELIMIT : (ssize_t)(w.bit >> 3);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int lw_gcs_encode(const uint64_t *hashes, size_t n, unsigned log2n, unsigned k, uint8_t **digest, size_t *digest_len)
{
    uint64_t mask;
    uint64_t *values;
    size_t m = 0;
    size_t bits = LW_GCS_HEADER_BITS;
    uint64_t min = 0;
    struct bit_writer w;

    if (k == 0 || k > LW_GCS_K_MAX || log2n > LW_GCS_LOG2N_MAX) {
        return LW_EINVAL;
    }
    if (n > ((size_t)1 << log2n)) {
        return LW_ELIMIT;
    }
    mask = ((uint64_t)1 << (log2n + k)) - 1;
    values = lw_malloc(n * sizeof(*values));
    for (size_t i = 0; i < n; i++) {
        values[i] = hashes[i] & mask;
    }
    qsort(values, n, sizeof(*values), cmp_u64);
    for (size_t i = 0; i < n; i++) {
        if (m == 0 || values[i] != values[m - 1]) {
            values[m++] = values[i];
        }
    }
    /* Size it exactly: the sum of the quotients is below 2^log2n, so this cannot overflow. */
    for (size_t i = 0; i < m; i++) {
        bits += (size_t)((values[i] - min) >> k) + 1 + k;
        min = values[i] + 1;
    }
    w.cap = (bits + 7) / 8;
    w.p = lw_malloc(w.cap);
    w.bit = 0;
    w.overflow = false;
    put_bits(&w, log2n, 5);
    put_bits(&w, k, 5);
    put_codes(&w, values, m, k);
    pad(&w);
    LW_BUG_ON(w.overflow || w.bit != w.cap * 8);
    free(values);
    *digest = w.p;
    *digest_len = w.cap;
    return LW_OK;
}

/* ---- Reading ---- */

/* The next n bits (n <= 57), MSB first, a byte at a time; the caller checked they exist. */
static uint64_t get_bits(struct lw_gcs_reader *r, unsigned n)
{
    uint64_t v = 0;

    while (n > 0) {
        unsigned off = (unsigned)(r->_bit & 7);
        unsigned take = 8 - off < n ? 8 - off : n;
        unsigned byte = r->_p[r->_bit >> 3];
        v = (v << take) | ((byte >> (8 - off - take)) & ((1u << take) - 1));
        r->_bit += take;
        n -= take;
    }
    return v;
}

/*
 * Count one bits up to the next zero, which is consumed too: a byte at a time, since
 * membership walks every code before the one it looks for. Stops early, with *q >= limit,
 * when the run is longer than any valid quotient. False if the bits run out first.
 */
static bool get_unary(struct lw_gcs_reader *r, uint64_t limit, uint64_t *q)
{
    *q = 0;
    while (r->_bit < r->_bits && *q < limit) {
        unsigned off = (unsigned)(r->_bit & 7);
        /* The unread bits of the byte on top; zeros shifted in below stop the count. */
        unsigned inv = (uint8_t) ~(r->_p[r->_bit >> 3] << off);
        unsigned ones = inv == 0 ? 8 : (unsigned)__builtin_clz(inv) - (8 * sizeof(unsigned) - 8);
        if (ones < 8 - off) {
            *q += ones;
            r->_bit += ones + 1;
            return true;
        }
        *q += 8 - off;
        r->_bit += 8 - off;
    }
    return *q >= limit;
}

static int reader_fail(struct lw_gcs_reader *r)
{
    r->_state = LW_EPROTO;
    return LW_EPROTO;
}

int lw_gcs_reader_init(struct lw_gcs_reader *r, const uint8_t *digest, size_t len)
{
    memset(r, 0, sizeof(*r));
    r->_p = digest;
    /* A digest of 2^61 bytes is not coming; the guard keeps len * 8 from wrapping. */
    if (len < 2 || len > SIZE_MAX / 8) {
        return reader_fail(r);
    }
    r->_bits = len * 8;
    r->log2n = (unsigned)get_bits(r, 5);
    r->k = (unsigned)get_bits(r, 5);
    if (r->k == 0) {
        return reader_fail(r);
    }
    return LW_OK;
}

/* The last bits, fewer than 8, are all ones: padding, the end. */
static bool at_padding(struct lw_gcs_reader *r)
{
    size_t left = r->_bits - r->_bit;

    if (left >= 8) {
        return false;
    }
    for (size_t i = r->_bit; i < r->_bits; i++) {
        if (((r->_p[i >> 3] >> (7 - (i & 7))) & 1) == 0) {
            return false;
        }
    }
    return true;
}

int lw_gcs_reader_next(struct lw_gcs_reader *r, uint64_t *value)
{
    uint64_t capacity = (uint64_t)1 << r->log2n;
    uint64_t range = (uint64_t)1 << (r->log2n + r->k);
    uint64_t q = 0;
    uint64_t rem = 0;
    uint64_t v;

    if (r->_state != LW_GCS_READING) {
        return r->_state == LW_GCS_ENDED ? 0 : r->_state;
    }
    if (at_padding(r)) {
        r->_state = LW_GCS_ENDED;
        return 0;
    }
    /* A value below the range has q < capacity: a longer run is malformed. */
    if (!get_unary(r, capacity, &q) || q >= capacity || r->_bits - r->_bit < r->k) {
        return reader_fail(r);
    }
    rem = get_bits(r, r->k);
    v = r->_min + ((q << r->k) | rem);
    if (v >= range || r->count >= capacity) {
        return reader_fail(r);
    }
    r->count++;
    r->_min = v + 1;
    *value = v;
    return 1;
}

int lw_gcs_validate(const uint8_t *digest, size_t len, size_t *count)
{
    struct lw_gcs_reader r;
    uint64_t v;
    int rc = lw_gcs_reader_init(&r, digest, len);

    while (rc == LW_OK && (rc = lw_gcs_reader_next(&r, &v)) == 1) {
        rc = LW_OK;
    }
    if (rc < 0) {
        return rc;
    }
    if (count != NULL) {
        *count = (size_t)r.count;
    }
    return LW_OK;
}

bool lw_gcs_contains(const uint8_t *digest, size_t len, uint64_t hash)
{
    struct lw_gcs_reader r;
    uint64_t target;
    uint64_t v;

    if (lw_gcs_reader_init(&r, digest, len) < 0) {
        return false;
    }
    target = hash & (((uint64_t)1 << (r.log2n + r.k)) - 1);
    while (lw_gcs_reader_next(&r, &v) == 1) {
        if (v >= target) {
            return v == target;
        }
    }
    return false;
}

/* ---- base64url ---- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t lw_gcs_base64url_len(size_t n)
{
    return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

ssize_t lw_gcs_base64url_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    size_t i = 0;

    if (lw_gcs_base64url_len(n) > cap) {
        return LW_ELIMIT;
    }
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    if (n - i == 1) {
        out[o++] = b64url[in[i] >> 2];
        out[o++] = b64url[(in[i] & 3) << 4];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
        out[o++] = b64url[v >> 10];
        out[o++] = b64url[(v >> 4) & 63];
        out[o++] = b64url[(v & 15) << 2];
    }
    return (ssize_t)o;
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}

ssize_t lw_gcs_base64url_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;

    if (n % 4 == 1) {
        return LW_EPROTO;
    }
    if (n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1) > cap) {
        return LW_ELIMIT;
    }
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value(in[i]);
        if (v < 0) {
            return LW_EPROTO;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* The 2 or 4 bits left over must be zero, or two texts would decode alike. */
    if (acc != 0) {
        return LW_EPROTO;
    }
    return (ssize_t)o;
}
