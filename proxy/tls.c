/* SPDX-License-Identifier: MIT */
/*
 * BoringSSL contexts for TLS listeners. A listener gets one SSL_CTX per configured
 * certificate (or one for a certificate generated at start-up); connections start on the
 * first and the SNI callback moves them to the certificate whose DNS names match. All of a
 * listener's SSL_CTXs share one ring of session-ticket keys, so a worker resumes any
 * session another worker issued. A struct lw_tls_ctx is reference-counted: its owner holds
 * one reference and every SSL made from it another (dropped by SSL_free through ex_data), so
 * a reload may free the old context while connections made from it are still handshaking.
 * Ciphertext never goes through SSL_set_fd: the BIO here reads from the socket and appends
 * to the connection's output buffer.
 */
#include "proxy/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

/* The newest key encrypts; the two before it only decrypt, each for two rotation periods. */
#define LW_TLS_TICKET_KEYS 3
#define LW_TLS_TICKET_NAME_LEN 16
#define LW_TLS_TICKET_AES_LEN 16
#define LW_TLS_TICKET_HMAC_LEN 32
/* RFC 8446 section 4.6.1: a NewSessionTicket's ticket_lifetime MUST NOT exceed 7 days, and
 * clients enforce it (Go's crypto/tls aborts the connection with illegal_parameter). */
#define LW_TLS_TICKET_LIFETIME_MAX_S (7 * 24 * 3600)

/*
 * TLS 1.2 suites: forward secrecy and AEAD only, which is also exactly what RFC 7540
 * section 9.2.2 asks of h2, so ALPN can pick h2 without looking at the cipher. AES-128-GCM
 * and ChaCha20 sit in equal-preference groups (a BoringSSL extension): with server
 * preference on, a client without AES hardware still gets the ChaCha20 it lists first.
 * TLS 1.3 suites are fixed by BoringSSL and all qualify.
 */
#define LW_TLS_CIPHERS                                                                                                 \
    "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]:"                                                   \
    "[ECDHE-RSA-AES128-GCM-SHA256|ECDHE-RSA-CHACHA20-POLY1305]:"                                                       \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
#define LW_TLS_CURVES "X25519:P-256:P-384"

#define LW_TLS_SELF_SIGNED_NAME "localhost"
#define LW_TLS_SELF_SIGNED_SAN "DNS:localhost,IP:127.0.0.1,IP:::1"

struct lw_tls_ticket_key {
    bool valid;
    uint8_t name[LW_TLS_TICKET_NAME_LEN];
    uint8_t aes_key[LW_TLS_TICKET_AES_LEN];
    uint8_t hmac_key[LW_TLS_TICKET_HMAC_LEN];
    uint64_t retired_ns; /* when it stopped encrypting (scheduled, not when noticed) */
};

/* A DNS name of one certificate: "example.com" or "*.example.com". */
struct lw_tls_name {
    char *name;
    size_t cert; /* index into ssl_ctxs */
};

struct lw_tls_ctx {
    atomic_int refs;
    SSL_CTX **ssl_ctxs; /* [0] is the default certificate */
    size_t num_ssl_ctxs;
    struct lw_tls_name *names;
    size_t num_names;

    /* Ticket keys: the one piece of mutable state, touched only during handshakes. */
    pthread_mutex_t ticket_lock;
    uint64_t rotation_ns;
    uint64_t rotated_ns; /* when keys[0] started encrypting */
    struct lw_tls_ticket_key keys[LW_TLS_TICKET_KEYS];
};

/* What the socket BIO needs; the fd and buffers are borrowed. */
struct lw_tls_bio {
    int fd;
    struct lw_buf *out;
    struct lw_buf *in;             /* read-ahead ciphertext, or NULL: recv per BIO_read */
    struct lw_mem_cache *in_cache; /* where in's block comes from and goes back to */
    bool drained;                  /* a recv came back short since the last lw_tls_bio_rearm */
};

/*
 * Process-wide, written once under pthread_once and only read afterwards: the BIO method
 * and the SSL ex_data slot that points an SSL back at its lw_tls_ctx (the ticket callback
 * gets no user argument).
 */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static BIO_METHOD *bio_method;
static int ssl_ctx_index = -1;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/*
 * Drain the error queue into buf as "error:...; error:...", or "" when it is empty (a peer
 * that hangs up mid-handshake leaves nothing, and the caller words that itself). When an
 * entry comes from the system library (a file that cannot be opened), its errno goes to
 * *sys_errno so the caller can report LW_EIO with strerror instead of BoringSSL's wording.
 */
static void drain_errors(char *buf, size_t len, int *sys_errno)
{
    size_t used = 0;
    uint32_t e;
    if (len > 0) {
        buf[0] = '\0';
    }
    while ((e = ERR_get_error()) != 0) {
        if (sys_errno != NULL && ERR_GET_LIB(e) == ERR_LIB_SYS && *sys_errno == 0) {
            *sys_errno = ERR_GET_REASON(e);
        }
        if (used + 1 >= len) {
            continue; /* keep draining so the next caller starts with an empty queue */
        }
        if (used > 0) {
            used += (size_t)snprintf(buf + used, len - used, "; ");
            if (used + 1 >= len) {
                continue;
            }
        }
        ERR_error_string_n(e, buf + used, len - used);
        used += strlen(buf + used);
    }
}

void lw_tls_errors(char *buf, size_t len)
{
    drain_errors(buf, len, NULL);
}

/* "path: cannot <what>: reason", LW_EIO when the file could not be read, else LW_EINVAL. */
static int fail_file(char *err, size_t errlen, const char *path, const char *what)
{
    char reason[512];
    int sys_errno = 0;
    drain_errors(reason, sizeof(reason), &sys_errno);
    if (sys_errno != 0) {
        set_err(err, errlen, "%s: cannot read %s: %s", path, what, strerror(sys_errno));
        return LW_EIO;
    }
    set_err(err, errlen, "%s: cannot load %s: %s", path, what, reason);
    return LW_EINVAL;
}

static void ctx_unref(struct lw_tls_ctx *ctx)
{
    if (ctx == NULL || atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    for (size_t i = 0; i < ctx->num_ssl_ctxs; i++) {
        SSL_CTX_free(ctx->ssl_ctxs[i]);
    }
    free(ctx->ssl_ctxs);
    for (size_t i = 0; i < ctx->num_names; i++) {
        free(ctx->names[i].name);
    }
    free(ctx->names);
    OPENSSL_cleanse(ctx->keys, sizeof(ctx->keys));
    pthread_mutex_destroy(&ctx->ticket_lock);
    free(ctx);
}

/* SSL_free runs this for the reference lw_tls_ctx_new_ssl took. */
static void on_ssl_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int index, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)index;
    (void)argl;
    (void)argp;
    ctx_unref(ptr);
}

static struct lw_tls_ctx *ctx_of(const SSL *ssl)
{
    return SSL_get_ex_data(ssl, ssl_ctx_index);
}

/* The socket BIO. */

static ssize_t recv_some(struct lw_tls_bio *b, char *dst, size_t len)
{
    ssize_t n;
    do {
        n = recv(b->fd, dst, len, 0);
    } while (n < 0 && errno == EINTR);
    /* Short: the socket held no more at that moment, and the loop reports it readable again
     * when it does (level-triggered). */
    b->drained = b->in != NULL && n > 0 && (size_t)n < len;
    return n;
}

/* Hand out read-ahead bytes; in is not empty. */
static int serve(struct lw_tls_bio *b, char *dst, int len)
{
    size_t n = LW_MIN((size_t)len, lw_buf_size(b->in));
    memcpy(dst, lw_buf_head(b->in), n);
    lw_buf_consume(b->in, n);
    if (lw_buf_size(b->in) == 0) {
        lw_buf_dispose_cached(b->in, b->in_cache);
    }
    return (int)n;
}

/*
 * BoringSSL reads a record in two BIO reads (its 5-byte header, then the rest) and asks again
 * until one fails: three recv calls for one record. With read-ahead, one recv fills `in` with
 * whatever the socket holds (up to a block) and the records are cut from there; after a
 * short recv the next read fails with EAGAIN without asking the kernel, until the connection
 * rearms the BIO at its next readable event.
 */
static int on_bio_read(BIO *bio, char *dst, int len)
{
    struct lw_tls_bio *b = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (len <= 0) {
        return 0;
    }
    ssize_t n;
    if (b->in == NULL) {
        n = recv_some(b, dst, (size_t)len);
    } else if (lw_buf_size(b->in) > 0) {
        return serve(b, dst, len);
    } else if (b->drained) {
        errno = EAGAIN;
        n = -1;
    } else if ((size_t)len >= b->in_cache->size) {
        n = recv_some(b, dst, (size_t)len); /* a whole large record: no copy */
    } else {
        size_t size = b->in_cache->size;
        lw_buf_reserve_cached(b->in, b->in_cache);
        n = recv_some(b, lw_buf_reserve(b->in, size), size);
        if (n > 0) {
            lw_buf_commit(b->in, (size_t)n);
            return serve(b, dst, len);
        }
        int e = errno;
        lw_buf_dispose_cached(b->in, b->in_cache);
        errno = e;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        BIO_set_retry_read(bio);
    }
    return n < 0 ? -1 : (int)n; /* errno is left as recv set it */
}

/* Never blocks: the connection decides when the queued ciphertext goes to the socket. */
static int on_bio_write(BIO *bio, const char *src, int len)
{
    struct lw_tls_bio *b = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (len <= 0) {
        return 0;
    }
    lw_buf_append(b->out, src, (size_t)len);
    return len;
}

static long on_bio_ctrl(BIO *bio, int cmd, long larg, void *parg)
{
    (void)bio;
    (void)larg;
    (void)parg;
    /* BoringSSL flushes after each flight; the bytes are already in the buffer. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int on_bio_destroy(BIO *bio)
{
    free(BIO_get_data(bio));
    BIO_set_data(bio, NULL);
    BIO_set_init(bio, 0);
    return 1;
}

static void init_globals(void)
{
    bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "lowat socket");
    if (bio_method == NULL || !BIO_meth_set_read(bio_method, on_bio_read) ||
        !BIO_meth_set_write(bio_method, on_bio_write) || !BIO_meth_set_ctrl(bio_method, on_bio_ctrl) ||
        !BIO_meth_set_destroy(bio_method, on_bio_destroy)) {
        lw_log_error("cannot create the TLS socket BIO method");
        abort();
    }
    ssl_ctx_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, on_ssl_free);
    if (ssl_ctx_index < 0) {
        lw_log_error("cannot allocate an SSL ex_data index");
        abort();
    }
}

BIO *lw_tls_bio_new(int fd, struct lw_buf *out)
{
    pthread_once(&init_once, init_globals);
    BIO *bio = BIO_new(bio_method);
    if (bio == NULL) {
        lw_log_error("out of memory creating a TLS BIO");
        abort();
    }
    struct lw_tls_bio *b = lw_calloc(1, sizeof(*b));
    b->fd = fd;
    b->out = out;
    BIO_set_data(bio, b);
    BIO_set_init(bio, 1);
    return bio;
}

void lw_tls_bio_read_ahead(BIO *bio, struct lw_buf *in, struct lw_mem_cache *cache)
{
    struct lw_tls_bio *b = BIO_get_data(bio);
    b->in = in;
    b->in_cache = cache;
    b->drained = false;
}

void lw_tls_bio_rearm(BIO *bio)
{
    struct lw_tls_bio *b = BIO_get_data(bio);
    b->drained = false;
}

/* SNI. */

/*
 * A wildcard stands for exactly one whole leftmost label (RFC 6125 section 6.4.3), so
 * "*.example.com" matches "a.example.com" but neither "example.com" nor "a.b.example.com".
 * DNS names compare without case.
 */
static bool name_matches(const char *pattern, const char *host, size_t host_len)
{
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = memchr(host, '.', host_len);
        if (dot == NULL || dot == host) {
            return false;
        }
        size_t rest = host_len - (size_t)(dot - host);
        return strlen(pattern + 1) == rest && strncasecmp(pattern + 1, dot, rest) == 0;
    }
    return strlen(pattern) == host_len && strncasecmp(pattern, host, host_len) == 0;
}

/* Exact names win over wildcards; among equals, the certificate configured first. */
static const struct lw_tls_name *find_name(const struct lw_tls_ctx *ctx, const char *host, size_t host_len)
{
    for (int wildcard = 0; wildcard < 2; wildcard++) {
        for (size_t i = 0; i < ctx->num_names; i++) {
            const char *n = ctx->names[i].name;
            if ((n[0] == '*') == (wildcard == 1) && name_matches(n, host, host_len)) {
                return &ctx->names[i];
            }
        }
    }
    return NULL;
}

/* An unknown or missing name keeps the default certificate: refusing would only trade a
 * certificate warning for a connection error. */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    (void)arg;
    const struct lw_tls_ctx *ctx = ctx_of(ssl);
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (ctx == NULL || host == NULL || ctx->num_ssl_ctxs < 2) {
        return SSL_TLSEXT_ERR_OK;
    }
    size_t len = strlen(host);
    if (len > 0 && host[len - 1] == '.') {
        len--; /* an absolute name is the same name */
    }
    const struct lw_tls_name *n = find_name(ctx, host, len);
    if (n != NULL && n->cert != 0) {
        SSL_set_SSL_CTX(ssl, ctx->ssl_ctxs[n->cert]);
    }
    return SSL_TLSEXT_ERR_OK;
}

static void add_name(struct lw_tls_ctx *ctx, const uint8_t *name, size_t len, size_t cert)
{
    if (len == 0 || memchr(name, '\0', len) != NULL) {
        return; /* an embedded NUL is an attack on C string handling, not a name */
    }
    ctx->names = lw_realloc(ctx->names, (ctx->num_names + 1) * sizeof(*ctx->names));
    ctx->names[ctx->num_names].name = lw_strndup((const char *)name, len);
    ctx->names[ctx->num_names].cert = cert;
    ctx->num_names++;
}

/* The DNS subjectAltNames; the subject CNs only when there are none (RFC 6125 section 6.4.4). */
static size_t add_cert_names(struct lw_tls_ctx *ctx, X509 *leaf, size_t cert)
{
    size_t before = ctx->num_names;
    GENERAL_NAMES *sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    for (size_t i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        if (gn->type == GEN_DNS) {
            add_name(ctx, ASN1_STRING_get0_data(gn->d.dNSName), (size_t)ASN1_STRING_length(gn->d.dNSName), cert);
        }
    }
    GENERAL_NAMES_free(sans);
    if (ctx->num_names > before) {
        return ctx->num_names - before;
    }
    X509_NAME *subject = X509_get_subject_name(leaf);
    for (int i = -1; (i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) >= 0;) {
        uint8_t *utf8 = NULL;
        int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i)));
        if (len > 0) {
            add_name(ctx, utf8, (size_t)len, cert);
        }
        OPENSSL_free(utf8);
    }
    ERR_clear_error(); /* a certificate without names is not a failure */
    return ctx->num_names - before;
}

/* ALPN. */

/*
 * Our preference, not the client's order: h2, then http/1.1, then http/1.0, which the
 * HTTP/1.x frontend serves too (curl --http1.0 offers it alone). A client that offers ALPN
 * but none of them gets no_application_protocol (RFC 7301 section 3.2); one that offers no
 * ALPN at all speaks HTTP/1.1 and this callback is not called.
 */
static int on_alpn_select(SSL *ssl, const uint8_t **out, uint8_t *out_len, const uint8_t *in, unsigned in_len,
                          void *arg)
{
    (void)ssl;
    (void)arg;
    static const char *const ours[] = {"h2", "http/1.1", "http/1.0"};
    size_t best = LW_ARRAY_LEN(ours);
    for (unsigned i = 0; i < in_len;) {
        unsigned len = in[i];
        const uint8_t *p = in + i + 1;
        if (len == 0 || i + 1 + len > in_len) {
            break; /* BoringSSL has already rejected malformed lists */
        }
        for (size_t k = 0; k < best; k++) {
            if (len == strlen(ours[k]) && memcmp(p, ours[k], len) == 0) {
                best = k;
                break;
            }
        }
        i += 1 + len;
    }
    if (best == LW_ARRAY_LEN(ours)) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = (const uint8_t *)ours[best];
    *out_len = (uint8_t)strlen(ours[best]);
    return SSL_TLSEXT_ERR_OK;
}

const char *lw_tls_alpn(const SSL *ssl)
{
    const uint8_t *p;
    unsigned len;
    SSL_get0_alpn_selected(ssl, &p, &len);
    if (len == 2 && memcmp(p, "h2", 2) == 0) {
        return "h2";
    }
    if (len == 8 && memcmp(p, "http/1.1", 8) == 0) {
        return "http/1.1";
    }
    if (len == 8 && memcmp(p, "http/1.0", 8) == 0) {
        return "http/1.0";
    }
    return "";
}

/* Session tickets. */

static void new_ticket_key(struct lw_tls_ticket_key *k)
{
    RAND_bytes(k->name, sizeof(k->name));
    RAND_bytes(k->aes_key, sizeof(k->aes_key));
    RAND_bytes(k->hmac_key, sizeof(k->hmac_key));
    k->valid = true;
    k->retired_ns = 0;
}

/*
 * Called with ticket_lock held. Keys retire on schedule even when no handshake noticed the
 * period end: a key encrypts for at most one period and decrypts for two more, so a ticket
 * never outlives three periods however idle the listener was. The rotation is lazy because
 * the only readers are handshakes, which take this lock anyway; a timer would need one more
 * thread or a worker's loop.
 */
static void rotate_ticket_keys(struct lw_tls_ctx *ctx, uint64_t now)
{
    if (now - ctx->rotated_ns >= ctx->rotation_ns) {
        memmove(&ctx->keys[1], &ctx->keys[0], (LW_TLS_TICKET_KEYS - 1) * sizeof(ctx->keys[0]));
        ctx->keys[1].retired_ns = ctx->rotated_ns + ctx->rotation_ns;
        new_ticket_key(&ctx->keys[0]);
        ctx->rotated_ns = now;
    }
    for (size_t i = 1; i < LW_TLS_TICKET_KEYS; i++) {
        if (ctx->keys[i].valid && now - ctx->keys[i].retired_ns >= 2 * ctx->rotation_ns) {
            OPENSSL_cleanse(&ctx->keys[i], sizeof(ctx->keys[i]));
        }
    }
}

/*
 * BoringSSL's ticket callback (the same one serves TLS 1.2 tickets and TLS 1.3 resumption
 * PSKs). Encrypting returns 1 or -1; decrypting returns 0 for an unknown or expired key (a
 * full handshake follows), 1 for the current key, 2 for an older one so the client gets a
 * ticket under the current key.
 */
static int on_ticket_key(SSL *ssl, uint8_t *key_name, uint8_t *iv, EVP_CIPHER_CTX *cipher, HMAC_CTX *hmac, int encrypt)
{
    struct lw_tls_ctx *ctx = ctx_of(ssl);
    if (ctx == NULL) {
        return encrypt ? -1 : 0;
    }
    struct lw_tls_ticket_key key;
    int slot = -1;
    pthread_mutex_lock(&ctx->ticket_lock);
    rotate_ticket_keys(ctx, now_ns());
    for (int i = 0; i < LW_TLS_TICKET_KEYS; i++) {
        if (ctx->keys[i].valid && (encrypt || memcmp(ctx->keys[i].name, key_name, LW_TLS_TICKET_NAME_LEN) == 0)) {
            key = ctx->keys[i];
            slot = i;
            break;
        }
    }
    pthread_mutex_unlock(&ctx->ticket_lock);
    if (slot < 0) {
        return encrypt ? -1 : 0;
    }

    int rc;
    if (encrypt) {
        memcpy(key_name, key.name, LW_TLS_TICKET_NAME_LEN);
        RAND_bytes(iv, (size_t)EVP_CIPHER_iv_length(EVP_aes_128_cbc()));
        bool ok = EVP_EncryptInit_ex(cipher, EVP_aes_128_cbc(), NULL, key.aes_key, iv) &&
                  HMAC_Init_ex(hmac, key.hmac_key, sizeof(key.hmac_key), EVP_sha256(), NULL);
        rc = ok ? 1 : -1;
    } else {
        bool ok = EVP_DecryptInit_ex(cipher, EVP_aes_128_cbc(), NULL, key.aes_key, iv) &&
                  HMAC_Init_ex(hmac, key.hmac_key, sizeof(key.hmac_key), EVP_sha256(), NULL);
        rc = !ok ? -1 : slot == 0 ? 1 : 2;
    }
    OPENSSL_cleanse(&key, sizeof(key));
    return rc;
}

/* Building contexts. */

static int configure_ssl_ctx(const struct lw_config_listener *l, SSL_CTX *sctx, char *err, size_t errlen)
{
    /* TLS 1.0 and 1.1 are deprecated (RFC 8996) and h2 requires 1.2 (RFC 7540 section 9.2). */
    if (!SSL_CTX_set_min_proto_version(sctx, TLS1_2_VERSION) || !SSL_CTX_set_max_proto_version(sctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_strict_cipher_list(sctx, LW_TLS_CIPHERS) || !SSL_CTX_set1_curves_list(sctx, LW_TLS_CURVES)) {
        char reason[512];
        lw_tls_errors(reason, sizeof(reason));
        set_err(err, errlen, "cannot configure TLS parameters: %s", reason);
        return LW_EIO;
    }
    /*
     * In BoringSSL the last three are 0: it never compresses, a server never renegotiates
     * and idle connections hold no record buffers. They stay to state the policy: an idle
     * connection costs next to nothing, and h2 forbids renegotiation (RFC 7540 section 9.2.1).
     */
    SSL_CTX_set_options(sctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(sctx, SSL_MODE_RELEASE_BUFFERS);
    /* Tickets do resumption: workers share nothing, so a server-side cache would only hit
     * when a client came back to the same worker. */
    SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_tlsext_servername_callback(sctx, on_servername);
    SSL_CTX_set_alpn_select_cb(sctx, on_alpn_select, NULL);
    /* Early data stays off (BoringSSL's default): 0-RTT requests can be replayed, and which
     * methods and routes tolerate that has not been decided. */
    if (l->session_tickets) {
        SSL_CTX_set_tlsext_ticket_key_cb(sctx, on_ticket_key);
        /*
         * A ticket decrypts for at least two periods, so that is the lifetime promised to
         * clients, rounded up plus one second because BoringSSL counts a session's age in
         * whole seconds; the key ring stays the real bound. BoringSSL advertises the session
         * timeout as the TLS 1.3 ticket_lifetime, so the timeouts themselves stop at 7 days
         * (rotations of 84 hours and more): such a session is refused after 7 days, when
         * RFC 8446 section 4.6.1 has clients drop it anyway.
         */
        uint64_t lifetime_s = ((uint64_t)l->ticket_rotation_ms * 2 + 999) / 1000 + 1;
        lifetime_s = LW_MIN(lifetime_s, LW_TLS_TICKET_LIFETIME_MAX_S);
        SSL_CTX_set_timeout(sctx, (uint32_t)lifetime_s);
        SSL_CTX_set_session_psk_dhe_timeout(sctx, (uint32_t)lifetime_s);
    } else {
        SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
    }
    return 0;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0; /* an encrypted key fails to load rather than prompting on a terminal */
}

static int load_cert(SSL_CTX *sctx, const struct lw_config_cert *c, char *err, size_t errlen)
{
    int rc = 0;
    EVP_PKEY *key = NULL;
    BIO *bio = NULL;
    if (!SSL_CTX_use_certificate_chain_file(sctx, c->cert_file)) {
        rc = fail_file(err, errlen, c->cert_file, "certificate chain");
        goto Exit;
    }
    /* Read the key ourselves so a key that belongs to another certificate gets its own
     * message instead of BoringSSL's KEY_VALUES_MISMATCH. */
    bio = BIO_new_file(c->key_file, "r");
    key = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    if (key == NULL) {
        rc = fail_file(err, errlen, c->key_file, "private key");
        goto Exit;
    }
    if (!X509_check_private_key(SSL_CTX_get0_certificate(sctx), key)) {
        ERR_clear_error();
        set_err(err, errlen, "%s: private key does not match the certificate in %s", c->key_file, c->cert_file);
        rc = LW_EINVAL;
        goto Exit;
    }
    if (!SSL_CTX_use_PrivateKey(sctx, key)) {
        rc = fail_file(err, errlen, c->key_file, "private key");
        goto Exit;
    }
Exit:
    EVP_PKEY_free(key);
    BIO_free(bio);
    return rc;
}

static bool add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
    bool ok = ext != NULL && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

static void log_fingerprint(X509 *x)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    char hex[3 * EVP_MAX_MD_SIZE + 1] = "";
    size_t used = 0;
    if (X509_digest(x, EVP_sha256(), md, &md_len)) {
        for (unsigned i = 0; i < md_len; i++) {
            used += (size_t)snprintf(hex + used, sizeof(hex) - used, "%s%02X", i ? ":" : "", md[i]);
        }
    }
    lw_log_info("generated a self-signed certificate for " LW_TLS_SELF_SIGNED_NAME " (sha256 fingerprint %s)", hex);
}

/*
 * A listener without certificates still speaks TLS (tests, first runs): a fresh P-256 key
 * and a self-signed leaf for localhost, valid from an hour ago (clock skew) for a year,
 * with a random 16-byte serial so browsers never see two different certificates with the
 * same issuer and serial across restarts.
 */
static int generate_self_signed(SSL_CTX *sctx, char *err, size_t errlen)
{
    int rc = 0;
    EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    EVP_PKEY *key = EVP_PKEY_new();
    X509 *x = X509_new();
    BIGNUM *serial = NULL;
    uint8_t rnd[16];
    RAND_bytes(rnd, sizeof(rnd));
    rnd[0] = (uint8_t)((rnd[0] & 0x7f) | 0x40); /* positive, non-zero, always 16 bytes of DER */

    bool ok = ec != NULL && key != NULL && x != NULL && EC_KEY_generate_key(ec) && EVP_PKEY_set1_EC_KEY(key, ec) &&
              X509_set_version(x, X509_VERSION_3) && (serial = BN_bin2bn(rnd, sizeof(rnd), NULL)) != NULL &&
              BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) != NULL &&
              X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL &&
              X509_gmtime_adj(X509_getm_notAfter(x), 365L * 24 * 3600 - 3600) != NULL &&
              X509_NAME_add_entry_by_NID(X509_get_subject_name(x), NID_commonName, MBSTRING_ASC,
                                         (const uint8_t *)LW_TLS_SELF_SIGNED_NAME, -1, -1, 0) &&
              X509_set_issuer_name(x, X509_get_subject_name(x)) && X509_set_pubkey(x, key) &&
              add_ext(x, NID_basic_constraints, "critical,CA:FALSE") &&
              add_ext(x, NID_key_usage, "critical,digitalSignature") && add_ext(x, NID_ext_key_usage, "serverAuth") &&
              add_ext(x, NID_subject_alt_name, LW_TLS_SELF_SIGNED_SAN) && X509_sign(x, key, EVP_sha256()) &&
              SSL_CTX_use_certificate(sctx, x) && SSL_CTX_use_PrivateKey(sctx, key);
    if (!ok) {
        char reason[512];
        lw_tls_errors(reason, sizeof(reason));
        set_err(err, errlen, "cannot generate a self-signed certificate: %s", reason);
        rc = LW_EIO;
        goto Exit;
    }
    log_fingerprint(x);
Exit:
    BN_free(serial);
    X509_free(x);
    EVP_PKEY_free(key);
    EC_KEY_free(ec);
    return rc;
}

/*
 * Sessions are bound to the certificate they were made under: a client must not resume,
 * under one name, a session authenticated with another name's certificate. The leaf's
 * SHA-256 is exactly SSL_MAX_SID_CTX_LENGTH bytes and the same in every worker.
 */
static int bind_sessions_to_cert(SSL_CTX *sctx, char *err, size_t errlen)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    if (!X509_digest(SSL_CTX_get0_certificate(sctx), EVP_sha256(), md, &md_len) ||
        !SSL_CTX_set_session_id_context(sctx, md, LW_MIN(md_len, SSL_MAX_SID_CTX_LENGTH))) {
        char reason[512];
        lw_tls_errors(reason, sizeof(reason));
        set_err(err, errlen, "cannot set the session context: %s", reason);
        return LW_EIO;
    }
    return 0;
}

static int add_ssl_ctx(struct lw_tls_ctx *ctx, const struct lw_config_listener *l, size_t i, char *err, size_t errlen)
{
    SSL_CTX *sctx = SSL_CTX_new(TLS_method());
    if (sctx == NULL) {
        char reason[512];
        lw_tls_errors(reason, sizeof(reason));
        set_err(err, errlen, "cannot create a TLS context: %s", reason);
        return LW_EIO;
    }
    ctx->ssl_ctxs[ctx->num_ssl_ctxs++] = sctx;
    int rc = configure_ssl_ctx(l, sctx, err, errlen);
    if (rc == 0) {
        rc = l->num_certs > 0 ? load_cert(sctx, &l->certs[i], err, errlen) : generate_self_signed(sctx, err, errlen);
    }
    if (rc == 0) {
        rc = bind_sessions_to_cert(sctx, err, errlen);
    }
    if (rc == 0 && add_cert_names(ctx, SSL_CTX_get0_certificate(sctx), i) == 0 && i > 0) {
        lw_log_warn("%s: the certificate has no DNS names, so SNI can never select it", l->certs[i].cert_file);
    }
    return rc;
}

int lw_tls_ctx_new(const struct lw_config_listener *l, struct lw_tls_ctx **out, char *err, size_t errlen)
{
    int rc = 0;
    *out = NULL;
    set_err(err, errlen, "%s", "");
    if (l->session_tickets && l->ticket_rotation_ms == 0) {
        set_err(err, errlen, "the ticket rotation period must be positive");
        return LW_EINVAL;
    }
    pthread_once(&init_once, init_globals);
    ERR_clear_error();

    struct lw_tls_ctx *ctx = lw_calloc(1, sizeof(*ctx));
    atomic_init(&ctx->refs, 1);
    pthread_mutex_init(&ctx->ticket_lock, NULL);
    ctx->rotation_ns = (uint64_t)l->ticket_rotation_ms * 1000000u;
    ctx->rotated_ns = now_ns();
    new_ticket_key(&ctx->keys[0]);
    size_t n = l->num_certs > 0 ? l->num_certs : 1;
    ctx->ssl_ctxs = lw_calloc(n, sizeof(*ctx->ssl_ctxs));
    for (size_t i = 0; i < n; i++) {
        rc = add_ssl_ctx(ctx, l, i, err, errlen);
        if (rc != 0) {
            goto Exit;
        }
    }
    for (size_t i = 0; i < ctx->num_names; i++) {
        lw_log_debug("TLS listener line %u: %s -> certificate %zu", l->line, ctx->names[i].name, ctx->names[i].cert);
    }
    *out = ctx;
Exit:
    if (rc != 0) {
        ctx_unref(ctx);
    }
    return rc;
}

void lw_tls_ctx_free(struct lw_tls_ctx *ctx)
{
    ctx_unref(ctx);
}

SSL *lw_tls_ctx_new_ssl(struct lw_tls_ctx *ctx)
{
    SSL *ssl = SSL_new(ctx->ssl_ctxs[0]);
    if (ssl == NULL) {
        lw_log_error("out of memory creating a TLS connection");
        abort();
    }
    atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
    if (!SSL_set_ex_data(ssl, ssl_ctx_index, ctx)) {
        lw_log_error("out of memory creating a TLS connection");
        abort();
    }
    SSL_set_accept_state(ssl);
    /* What the handshake needed of the configuration (certificate references, cipher and
     * curve lists, verification parameters, ALPN callback) is freed when it completes: an
     * established connection only queries handshake results, and h2 forbids renegotiation. */
    SSL_set_shed_handshake_config(ssl, 1);
    return ssl;
}
