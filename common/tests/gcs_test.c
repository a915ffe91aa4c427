/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for common/gcs: the worked example of the product spec bit for bit, the header,
 * round trips of random sets (members always found, decoding and re-encoding gives the same
 * bytes), the measured false-positive rate, every malformed digest the reader promises to
 * reject, the hash pinned to fixed values (digests live in cookies across restarts), and
 * base64url.
 */
#include "common/gcs.h"

#include <stdio.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/mem.h"
#include "common/tests/tap.h"

/* A digest written as a string of '0'/'1' (spaces ignored), padded with ones to a byte. */
static size_t from_bits(const char *s, uint8_t *out, size_t cap)
{
    size_t bit = 0;

    memset(out, 0xff, cap);
    for (; *s != '\0'; s++) {
        if (*s == ' ') {
            continue;
        }
        if (*s == '0') {
            out[bit >> 3] &= (uint8_t) ~(0x80u >> (bit & 7));
        }
        bit++;
    }
    return (bit + 7) / 8;
}

static bool bytes_eq(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
    return a_len == b_len && memcmp(a, b, a_len) == 0;
}

static void test_worked_example(void)
{
    static const uint64_t values[] = {0x3d, 0x16b};
    static const uint8_t want[] = {0x1e, 0xc5, 0xbf};
    static const uint8_t want_digest[] = {0x0a, 0x07, 0xb1, 0x6f};
    uint8_t out[8];
    uint8_t bits[8];
    uint8_t *digest;
    size_t len;
    struct lw_gcs_reader r;
    uint64_t v = 0;
    ssize_t n;

    /* 0x3d: q = 0 -> "0", remainder 00111101; delta 0x16b - 0x3d - 1 = 0x12d: q = 1 -> "10",
     * remainder 00101101; then ones to the byte: 00011110 11000101 10111111. */
    n = lw_gcs_encode_values(values, 2, 8, out, sizeof(out));
    TAP_OK(n == 3 && bytes_eq(out, 3, want, 3), "worked example (k=8, 0x3d, 0x16b): 1e c5 bf");
    TAP_OK(bytes_eq(out, 3, bits, from_bits("0 00111101 10 00101101", bits, sizeof(bits))),
           "worked example: the bit string 0 00111101 10 00101101, then ones");
    TAP_EQ_INT(lw_gcs_encode_values(values, 2, 8, out, 2), LW_ELIMIT, "worked example: one byte short");
    TAP_EQ_INT(lw_gcs_encode_values(values, 2, 8, out, 3), 3, "worked example: exactly enough room");

    /* The same set as a digest: log2n = 1 (N = 2, range 2 * 256) and k = 8 in front. */
    TAP_EQ_INT(lw_gcs_encode(values, 2, 1, 8, &digest, &len), LW_OK, "worked example digest: encoded");
    TAP_OK(bytes_eq(digest, len, want_digest, sizeof(want_digest)), "worked example digest: 00001 01000 + codes");
    TAP_OK(lw_gcs_reader_init(&r, digest, len) == LW_OK && r.log2n == 1 && r.k == 8, "reader: header read back");
    TAP_OK(lw_gcs_reader_next(&r, &v) == 1 && v == 0x3d, "reader: first value");
    TAP_OK(lw_gcs_reader_next(&r, &v) == 1 && v == 0x16b, "reader: second value");
    TAP_EQ_INT(lw_gcs_reader_next(&r, &v), 0, "reader: then the end");
    TAP_EQ_INT(lw_gcs_reader_next(&r, &v), 0, "reader: the end again");
    TAP_OK(lw_gcs_contains(digest, len, 0x3d) && lw_gcs_contains(digest, len, 0x16b), "contains both values");
    TAP_OK(lw_gcs_contains(digest, len, 0xabcd000000000000ULL | 0x3d), "contains reduces the hash to 9 bits");
    TAP_OK(!lw_gcs_contains(digest, len, 0x3c) && !lw_gcs_contains(digest, len, 0x3e) &&
               !lw_gcs_contains(digest, len, 0x1ff) && !lw_gcs_contains(digest, len, 0),
           "neighbours are not members");
    free(digest);
}

static void test_encode_args(void)
{
    static const uint64_t unsorted[] = {5, 3};
    static const uint64_t dup[] = {3, 3};
    static const uint64_t dup_hashes[] = {9, 5, 5, 9, 5, 0x100 | 5};
    uint8_t out[16];
    uint8_t *digest = NULL;
    size_t len = 0;
    size_t count = 99;

    TAP_EQ_INT(lw_gcs_encode_values(unsorted, 2, 7, out, sizeof(out)), LW_EINVAL, "encode_values: unsorted");
    TAP_EQ_INT(lw_gcs_encode_values(dup, 2, 7, out, sizeof(out)), LW_EINVAL, "encode_values: duplicate");
    TAP_EQ_INT(lw_gcs_encode_values(dup, 1, 0, out, sizeof(out)), LW_EINVAL, "encode_values: k = 0");
    TAP_EQ_INT(lw_gcs_encode_values(dup, 1, LW_GCS_K_MAX + 1, out, sizeof(out)), LW_EINVAL, "encode_values: k too big");
    TAP_EQ_INT(lw_gcs_encode_values(NULL, 0, 7, out, sizeof(out)), 0, "encode_values: nothing");
    TAP_EQ_INT(lw_gcs_encode_values((const uint64_t[]){(uint64_t)1 << 40}, 1, 1, out, sizeof(out)), LW_ELIMIT,
               "encode_values: a huge quotient stops at the buffer's end");

    TAP_EQ_INT(lw_gcs_encode(dup_hashes, 6, 1, 7, &digest, &len), LW_ELIMIT, "encode: more hashes than capacity");
    TAP_EQ_INT(lw_gcs_encode(dup_hashes, 1, LW_GCS_LOG2N_MAX + 1, 7, &digest, &len), LW_EINVAL, "encode: log2n");
    TAP_EQ_INT(lw_gcs_encode(dup_hashes, 1, 3, 0, &digest, &len), LW_EINVAL, "encode: k = 0");
    TAP_OK(digest == NULL && len == 0, "encode: nothing returned on error");

    /* Duplicates before and after reduction (0x105 & 0x3ff == 5 at log2n 3, k 7) collapse. */
    TAP_EQ_INT(lw_gcs_encode(dup_hashes, 6, 3, 7, &digest, &len), LW_OK, "encode with duplicates");
    TAP_OK(lw_gcs_validate(digest, len, &count) == LW_OK && count == 3, "duplicates collapse (5, 9, 0x105)");
    free(digest);

    TAP_EQ_INT(lw_gcs_encode(NULL, 0, 0, LW_GCS_K_DEFAULT, &digest, &len), LW_OK, "empty set");
    TAP_OK(len == 2 && digest[0] == 0x01 && digest[1] == 0xff, "empty set: header 00000 00111, six ones");
    TAP_OK(lw_gcs_validate(digest, len, &count) == LW_OK && count == 0, "empty set: valid, no values");
    TAP_OK(!lw_gcs_contains(digest, len, 0) && !lw_gcs_contains(digest, len, 0x7f), "empty set: holds nothing");
    free(digest);

    TAP_OK(lw_gcs_log2n(0) == 0 && lw_gcs_log2n(1) == 0 && lw_gcs_log2n(2) == 1 && lw_gcs_log2n(3) == 2 &&
               lw_gcs_log2n(128) == 7 && lw_gcs_log2n(129) == 8 && lw_gcs_log2n(SIZE_MAX) == 63,
           "lw_gcs_log2n");
}

static uint64_t next_rand(uint64_t *s)
{
    /* splitmix64: a reproducible stream for the tests */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A random set: every member found, the values come back ascending and distinct, and
 * encoding them again gives the same bytes. */
static void round_trip(size_t n, unsigned log2n, unsigned k, uint64_t *seed)
{
    uint64_t *hashes = lw_malloc((n + 1) * sizeof(*hashes));
    uint64_t *values = lw_malloc((n + 1) * sizeof(*values));
    uint8_t *digest;
    uint8_t *again;
    size_t len;
    size_t again_len;
    size_t m = 0;
    size_t found = 0;
    struct lw_gcs_reader r;
    uint64_t v;
    bool ascending = true;
    int rc;

    for (size_t i = 0; i < n; i++) {
        hashes[i] = next_rand(seed);
    }
    rc = lw_gcs_encode(hashes, n, log2n, k, &digest, &len);
    for (size_t i = 0; i < n; i++) {
        found += lw_gcs_contains(digest, len, hashes[i]);
    }
    lw_gcs_reader_init(&r, digest, len);
    while (lw_gcs_reader_next(&r, &v) == 1) {
        ascending = ascending && (m == 0 || v > values[m - 1]) && m < n;
        if (m < n) {
            values[m++] = v;
        }
    }
    TAP_OK(rc == LW_OK && found == n && ascending && m > 0 && m <= n,
           "round trip n=%zu log2n=%u k=%u: %zu bytes, all members found, %zu distinct values", n, log2n, k, len, m);
    TAP_OK(lw_gcs_encode(values, m, log2n, k, &again, &again_len) == LW_OK && bytes_eq(digest, len, again, again_len),
           "round trip n=%zu k=%u: decoded values encode to the same bytes", n, k);
    free(again);
    free(digest);
    free(values);
    free(hashes);
}

static void test_round_trips(void)
{
    uint64_t seed = 42;

    round_trip(1, 0, 7, &seed);
    round_trip(10, lw_gcs_log2n(10), 7, &seed);
    round_trip(100, lw_gcs_log2n(100), 7, &seed);
    round_trip(1000, lw_gcs_log2n(1000), 7, &seed);
    round_trip(300, lw_gcs_log2n(300), 1, &seed);
    round_trip(300, lw_gcs_log2n(300), 12, &seed);
    round_trip(50, 12, 7, &seed); /* a fixed capacity far above the count */
    round_trip(64, 6, LW_GCS_K_MAX, &seed);
    round_trip(16, 10, LW_GCS_K_MAX, &seed);
}

/* Measured false positives, with keys as the push engine hashes them (URLs). */
static void test_false_positives(void)
{
    enum { MEMBERS = 128, PROBES = 100000 };
    uint64_t hashes[MEMBERS];
    uint8_t *digest;
    size_t len;
    char key[64];
    size_t fp = 0;
    size_t found = 0;

    for (int i = 0; i < MEMBERS; i++) {
        int n = snprintf(key, sizeof(key), "https://www.example/assets/%d.css", i);
        hashes[i] = lw_gcs_hash(key, (size_t)n);
    }
    lw_gcs_encode(hashes, MEMBERS, lw_gcs_log2n(MEMBERS), LW_GCS_K_DEFAULT, &digest, &len);
    for (int i = 0; i < MEMBERS; i++) {
        found += lw_gcs_contains(digest, len, hashes[i]);
    }
    for (int i = 0; i < PROBES; i++) {
        int n = snprintf(key, sizeof(key), "https://www.example/other/%d.js", i);
        fp += lw_gcs_contains(digest, len, lw_gcs_hash(key, (size_t)n));
    }
    printf("# %d members in %zu bytes (%.2f bits each); %zu false positives in %d probes (1/%.1f)\n", MEMBERS, len,
           len * 8.0 / MEMBERS, fp, PROBES, fp ? (double)PROBES / (double)fp : 0.0);
    TAP_EQ_INT(found, MEMBERS, "false positives: every member found");
    /* Expected 100000 * 128 / 16384 = 781 (slightly less after collisions); sigma is ~28. */
    TAP_OK(fp >= 650 && fp <= 920, "false positives: %zu of %d is within 1/128 +- 17%%", fp, PROBES);
    TAP_OK(len * 8 < MEMBERS * (LW_GCS_K_DEFAULT + 3), "size: under k + 3 bits per member");
    free(digest);
}

static void test_malformed(void)
{
    uint8_t d[64] = {0};
    size_t n;
    size_t count;
    struct lw_gcs_reader r;
    uint64_t v;
    uint8_t *digest;
    size_t len;
    uint64_t hashes[40];
    uint64_t seed = 7;
    bool never_invents = true;

    TAP_EQ_INT(lw_gcs_validate(d, 0, NULL), LW_EPROTO, "malformed: empty");
    TAP_EQ_INT(lw_gcs_validate((const uint8_t *)"\x01", 1, NULL), LW_EPROTO, "malformed: shorter than the header");
    n = from_bits("00011 00000", d, sizeof(d));
    TAP_EQ_INT(lw_gcs_validate(d, n, NULL), LW_EPROTO, "malformed: k = 0");
    TAP_OK(!lw_gcs_contains(d, n, 0), "malformed header: contains nothing");

    /* log2n 1, k 8, then 0x3d and the start of a second code cut short. */
    n = from_bits("00001 01000 0 00111101 10 001", d, sizeof(d));
    TAP_EQ_INT(lw_gcs_validate(d, n, NULL), LW_EPROTO, "malformed: truncated remainder");
    TAP_OK(lw_gcs_contains(d, n, 0x3d), "truncated: values before the cut are still read");
    n = from_bits("00001 01000 0 00111101 0 0000000 0000000", d, sizeof(d));
    TAP_EQ_INT(lw_gcs_validate(d, n, NULL), LW_EPROTO, "malformed: zero padding");
    n = from_bits("00001 01000 0 00111101 11111111 11111111", d, sizeof(d));
    TAP_EQ_INT(lw_gcs_validate(d, n, NULL), LW_EPROTO, "malformed: eight or more bits of padding");
    n = from_bits("00001 00110 0 000001", d, sizeof(d)); /* 17 bits, then 7 of padding */
    TAP_OK(n == 3 && lw_gcs_validate(d, n, &count) == LW_OK && count == 1, "seven bits of padding are fine");
    n = from_bits("00001 00110 0 000001 1111111 11111111", d, sizeof(d));
    TAP_EQ_INT(lw_gcs_validate(d, n, NULL), LW_EPROTO, "malformed: a whole byte of padding after seven bits");

    /* log2n 0 (capacity 1), k 7: two values is one too many. */
    n = from_bits("00000 00111 0 0000000 0 0000000", d, sizeof(d));
    TAP_EQ_INT(lw_gcs_validate(d, n, NULL), LW_EPROTO, "malformed: more values than capacity");
    /* log2n 0, k 1: range 2, and the code "10 1" gives 3. */
    n = from_bits("00000 00001 10 1", d, sizeof(d));
    TAP_EQ_INT(lw_gcs_validate(d, n, NULL), LW_EPROTO, "malformed: value beyond the range");
    n = from_bits("00000 00001 0 1 0 0", d, sizeof(d));
    TAP_EQ_INT(lw_gcs_validate(d, n, NULL), LW_EPROTO, "malformed: the second value beyond the range");

    /* A long run of ones: the quotient outgrows the capacity and the walk stops. */
    memset(d, 0xff, sizeof(d));
    d[0] = 0x09; /* log2n 1, k 7 (00001 00111...) */
    d[1] = 0xff;
    TAP_EQ_INT(lw_gcs_validate(d, sizeof(d), NULL), LW_EPROTO, "malformed: a run of ones");
    TAP_OK(lw_gcs_reader_init(&r, d, sizeof(d)) == LW_OK && lw_gcs_reader_next(&r, &v) == LW_EPROTO &&
               lw_gcs_reader_next(&r, &v) == LW_EPROTO,
           "reader: an error is sticky");

    /* Cutting a digest anywhere never invents a member: it fails, or yields a prefix. */
    for (size_t i = 0; i < LW_ARRAY_LEN(hashes); i++) {
        hashes[i] = next_rand(&seed);
    }
    lw_gcs_encode(hashes, LW_ARRAY_LEN(hashes), 6, 7, &digest, &len);
    for (size_t cut = 0; cut < len; cut++) {
        struct lw_gcs_reader whole;
        uint64_t w;
        int rc = lw_gcs_reader_init(&r, digest, cut);
        lw_gcs_reader_init(&whole, digest, len);
        while (rc == LW_OK && (rc = lw_gcs_reader_next(&r, &v)) == 1) {
            never_invents = never_invents && lw_gcs_reader_next(&whole, &w) == 1 && w == v;
            rc = LW_OK;
        }
    }
    TAP_OK(never_invents, "every truncation of a %zu-byte digest fails or yields a prefix of its values", len);
    free(digest);
}

static void test_hash(void)
{
    /* Pinned: a changed hash silently empties every digest in every cookie. */
    TAP_EQ_INT(lw_gcs_hash("", 0), 0xefd01f60ba992926ULL, "hash of \"\" is pinned");
    TAP_EQ_INT(lw_gcs_hash("/style.css", 10), 0xb9a6a07d1400823fULL, "hash of /style.css is pinned");
    TAP_OK(lw_gcs_hash("/a.css", 6) != lw_gcs_hash("/b.css", 6), "hash: one byte changes it");
}

static void test_base64url(void)
{
    static const struct {
        const char *raw;
        const char *enc;
    } vectors[] = {{"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
                   {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "-_8"}};
    static const char *rejected[] = {"Zg==", "Zm9v=", "Z", "Zm9vY", "Zh", "Zm9", "+w", "/w", "Zm 9v", "Zm9v\n"};
    char text[128];
    uint8_t bytes[96];
    uint8_t raw[96];
    uint64_t seed = 99;
    bool ok = true;

    for (size_t i = 0; i < LW_ARRAY_LEN(vectors); i++) {
        size_t raw_len = strlen(vectors[i].raw);
        ssize_t n = lw_gcs_base64url_encode((const uint8_t *)vectors[i].raw, raw_len, text, sizeof(text));
        ssize_t m = lw_gcs_base64url_decode(vectors[i].enc, strlen(vectors[i].enc), bytes, sizeof(bytes));
        TAP_OK(n >= 0 && (size_t)n == lw_gcs_base64url_len(raw_len) &&
                   bytes_eq((uint8_t *)text, (size_t)n, (const uint8_t *)vectors[i].enc, strlen(vectors[i].enc)) &&
                   m >= 0 && bytes_eq(bytes, (size_t)m, (const uint8_t *)vectors[i].raw, raw_len),
               "base64url \"%s\" <-> \"%s\"", vectors[i].raw[0] == '\xfb' ? "fb ff" : vectors[i].raw, vectors[i].enc);
    }
    for (size_t i = 0; i < LW_ARRAY_LEN(rejected); i++) {
        TAP_EQ_INT(lw_gcs_base64url_decode(rejected[i], strlen(rejected[i]), bytes, sizeof(bytes)), LW_EPROTO,
                   "base64url rejects \"%s\"", rejected[i][strlen(rejected[i]) - 1] == '\n' ? "Zm9v\\n" : rejected[i]);
    }
    TAP_EQ_INT(lw_gcs_base64url_encode((const uint8_t *)"foo", 3, text, 3), LW_ELIMIT, "base64url encode: no room");
    TAP_EQ_INT(lw_gcs_base64url_decode("Zm9vYg", 6, bytes, 3), LW_ELIMIT, "base64url decode: no room");
    TAP_EQ_INT(lw_gcs_base64url_decode("Zm9vYg", 6, bytes, 4), 4, "base64url decode: exactly enough room");

    for (size_t len = 0; len < sizeof(raw) && ok; len++) {
        ssize_t n;
        ssize_t m;
        for (size_t i = 0; i < len; i++) {
            raw[i] = (uint8_t)next_rand(&seed);
        }
        n = lw_gcs_base64url_encode(raw, len, text, sizeof(text));
        m = n < 0 ? -1 : lw_gcs_base64url_decode(text, (size_t)n, bytes, sizeof(bytes));
        ok = m >= 0 && bytes_eq(raw, len, bytes, (size_t)m);
    }
    TAP_OK(ok, "base64url: random round trips of 0 to 95 bytes");
}

int main(void)
{
    test_worked_example();
    test_encode_args();
    test_round_trips();
    test_false_positives();
    test_malformed();
    test_hash();
    test_base64url();
    return tap_done();
}
