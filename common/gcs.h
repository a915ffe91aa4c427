/* SPDX-License-Identifier: MIT */
/*
 * Golomb-coded sets: the cache digest behind the cache-aware push policy (the idea of H2O's
 * CASPer and of the "Cache Digests for HTTP/2" draft). A digest is a compact, probabilistic
 * set of 64-bit key hashes: a member is always found, a non-member is found with probability
 * about 1/2^k. The proxy keeps the digest of what it pushed in a cookie (base64url), and skips
 * a push the digest already holds. Pure: bytes in, bytes out.
 *
 * Digest format (all bit fields MSB first, bits numbered from the first byte's top bit):
 *   5 bits  log2n: the capacity N = 2^log2n (0..31)
 *   5 bits  k: the false-positive exponent, P = 1/2^k (1..31)
 *   codes   one per distinct value, ascending. The values are hash mod (N * 2^k), i.e. the
 *           low log2n + k bits of each hash. Each value v is coded as its delta
 *           d = v - prev - 1 (prev = -1 before the first value), Golomb-Rice with parameter
 *           2^k: q = d >> k in unary as q one bits then a zero bit, then the k low bits of d.
 *   padding one bits up to the next byte boundary (0 to 7 of them).
 * At most N values. Padding with ones means a decoder can never mistake it for a value (a
 * value needs a zero bit and k more bits), and anything else at the end is a truncation.
 * The encoding of a set is unique: decoding and re-encoding gives the same bytes.
 */
#ifndef LW_COMMON_GCS_H
#define LW_COMMON_GCS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LW_GCS_K_DEFAULT 7 /* P = 1/128 */
#define LW_GCS_K_MAX 31
#define LW_GCS_LOG2N_MAX 31
#define LW_GCS_HEADER_BITS 10

/*
 * The 64-bit hash of a key that digests hold: FNV-1a 64 over the bytes, then MurmurHash3's
 * fmix64 finalizer so that the low bits, which the digest keeps, depend on every byte.
 * Digests outlive processes in cookies: changing this function invalidates every digest.
 */
uint64_t lw_gcs_hash(const void *key, size_t len);

/* Smallest log2n whose capacity 2^log2n holds n values (0 for n <= 1). */
unsigned lw_gcs_log2n(size_t n);

/*
 * The low level, exposed for tests: code values[0..n) (strictly ascending, each already
 * reduced) with parameter k (1..LW_GCS_K_MAX) into out[0..cap), with no header, and pad with
 * one bits to a byte. Returns the bytes written, LW_EINVAL if values are not strictly
 * ascending or k is out of range, LW_ELIMIT if out is too small.
 */
ssize_t lw_gcs_encode_values(const uint64_t *values, size_t n, unsigned k, uint8_t *out, size_t cap);

/*
 * Build the digest of hashes[0..n) (from lw_gcs_hash; duplicates allowed, in any order) with
 * capacity 2^log2n and P = 1/2^k. The digest takes about n * (k + 1) + 2^log2n bits (the
 * unary quotients add up to the capacity), so log2n should stay near lw_gcs_log2n(n), which
 * gives the smallest digest. A fixed log2n lets a digest grow by decoding it, adding hashes
 * and encoding again, because a decoded value reduces to itself under the same log2n and k.
 * *digest is moved to the caller (lw_malloc'd, release with free()), *digest_len its length.
 * Returns 0, LW_EINVAL if log2n or k is out of range, LW_ELIMIT if n > 2^log2n.
 */
int lw_gcs_encode(const uint64_t *hashes, size_t n, unsigned log2n, unsigned k, uint8_t **digest, size_t *digest_len);

/*
 * A decoder over a borrowed digest: init reads the header, next yields the values in
 * ascending order. Both return LW_EPROTO for a malformed digest: shorter than the header,
 * k = 0, a truncated code, eight or more bits of padding, a value out of range or more than
 * 2^log2n values. Reads never go past len, and the walk is bounded by len too. The header
 * is the sender's word: before adding to a client's digest and encoding it again (which
 * costs 2^log2n bits once hashes spread over the range), check that its log2n and k are
 * the ones configured, and start a new digest otherwise.
 */
struct lw_gcs_reader {
    unsigned log2n;
    unsigned k;
    uint64_t count; /* values yielded so far */
    const uint8_t *_p;
    size_t _bits;  /* len * 8 */
    size_t _bit;   /* next bit to read */
    uint64_t _min; /* the smallest value the next code can give: previous value + 1 */
    int _state;    /* 0 reading, 1 ended, or the error */
};

int lw_gcs_reader_init(struct lw_gcs_reader *r, const uint8_t *digest, size_t len);

/* 1 with *value set, 0 at the end, or LW_EPROTO (again on every later call). */
int lw_gcs_reader_next(struct lw_gcs_reader *r, uint64_t *value);

/* Decode the whole digest: 0 and its number of values (count may be NULL), or LW_EPROTO. */
int lw_gcs_validate(const uint8_t *digest, size_t len, size_t *count);

/*
 * Does the digest hold hash (from lw_gcs_hash)? Walks the codes up to the hash's value, so a
 * malformed part after it goes unnoticed: validate a digest once when it arrives. A digest
 * found malformed on the way holds nothing (false).
 */
bool lw_gcs_contains(const uint8_t *digest, size_t len, uint64_t hash);

/* base64url (RFC 4648 section 5) without padding, for carrying a digest in a cookie. */

/* Length of the encoding of n bytes. */
size_t lw_gcs_base64url_len(size_t n);

/* Encode in[0..n) into out[0..cap) (no NUL added). Returns the length, or LW_ELIMIT. */
ssize_t lw_gcs_base64url_encode(const uint8_t *in, size_t n, char *out, size_t cap);

/*
 * Decode in[0..n) into out[0..cap). Strict, so that only one text decodes to given bytes:
 * LW_EPROTO for a byte outside the alphabet (padding '=' included), a length of 4m + 1, or
 * nonzero unused bits in the last character. Returns the length, or LW_EPROTO, or LW_ELIMIT.
 */
ssize_t lw_gcs_base64url_decode(const char *in, size_t n, uint8_t *out, size_t cap);

#endif
