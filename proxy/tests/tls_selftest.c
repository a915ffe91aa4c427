/* SPDX-License-Identifier: MIT */
/*
 * Self-test for proxy/tls: real handshakes between a server SSL from lw_tls_ctx_new_ssl on
 * the module's socket BIO and a BoringSSL client over a socketpair, checking ALPN, SNI
 * selection, the version and cipher floor, ticket resumption and key rotation, the
 * generated certificate and the load errors. The certificates come from data/ (see
 * data/make-certs.sh); the first argument overrides that directory. TAP_OK evaluates its
 * condition twice, so every call with an effect happens before it.
 */
#include "proxy/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/tests/tap.h"

static const char *data_dir = "proxy/tests/data";

/* What one client connection saw; sessions arrive through the new-session callback. */
struct seen {
    SSL_SESSION *session; /* the newest ticket the server issued (owned) */
    int new_sessions;
};

struct client_opts {
    const char *sni;
    const char *alpn; /* wire format, may be NULL */
    size_t alpn_len;
    uint16_t max_version; /* 0: TLS 1.3 */
    const char *ciphers;  /* TLS 1.2 suites; NULL: BoringSSL's defaults */
    SSL_SESSION *session; /* offered for resumption (borrowed) */
};

struct result {
    bool ok;
    const char *alpn;
    bool reused;
    int version;
    const char *cipher;
    X509 *peer;        /* the server's leaf (owned) */
    int client_reason; /* first BoringSSL reason on the client when it failed */
    int server_reason; /* the same for the server */
    bool data_ok;      /* application data went both ways */
    struct seen seen;
};

static void result_dispose(struct result *r)
{
    X509_free(r->peer);
    SSL_SESSION_free(r->seen.session);
    memset(r, 0, sizeof(*r));
}

static int on_client_new_session(SSL *ssl, SSL_SESSION *session)
{
    struct seen *s = SSL_get_app_data(ssl);
    SSL_SESSION_free(s->session);
    s->session = session;
    s->new_sessions++;
    return 1;
}

static SSL_CTX *client_ctx_new(void)
{
    SSL_CTX *c = SSL_CTX_new(TLS_method());
    SSL_CTX_set_min_proto_version(c, TLS1_VERSION);
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT);
    SSL_CTX_sess_set_new_cb(c, on_client_new_session);
    return c;
}

static bool flush(struct lw_buf *out, int fd)
{
    while (lw_buf_size(out) > 0) {
        ssize_t n = write(fd, lw_buf_head(out), lw_buf_size(out));
        if (n < 0) {
            return errno == EPIPE || errno == ECONNRESET; /* the peer gave up: not our failure */
        }
        lw_buf_consume(out, (size_t)n);
    }
    return true;
}

/* One step of a handshake or read: 1 done, 0 wants more, -1 failed (reason recorded). */
static int step(SSL *ssl, int r, int *reason)
{
    if (r == 1) {
        return 1;
    }
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return 0;
    }
    uint32_t packed = ERR_peek_error();
    *reason = packed ? ERR_GET_REASON(packed) : -1;
    ERR_clear_error();
    return -1;
}

/* Drive both ends until both finish, one fails for good, or nothing moves any more. */
static void handshake(SSL *client, SSL *server, struct lw_buf *out, int sfd, struct result *r)
{
    int c = 0, s = 0;
    for (int i = 0; i < 50 && !(c != 0 && s != 0) && c >= 0; i++) {
        if (c == 0) {
            c = step(client, SSL_do_handshake(client), &r->client_reason);
        }
        if (s == 0) {
            s = step(server, SSL_do_handshake(server), &r->server_reason);
        }
        flush(out, sfd);
    }
    r->ok = c == 1 && s == 1;
}

/* After the handshake: server -> client then client -> server; also delivers TLS 1.3 tickets. */
static bool exchange(SSL *client, SSL *server, struct lw_buf *out, int sfd)
{
    char buf[16];
    int n = -1, unused = 0;
    if (SSL_write(server, "ping", 4) != 4 || !flush(out, sfd)) {
        return false;
    }
    for (int i = 0; i < 10 && n <= 0; i++) {
        n = SSL_read(client, buf, sizeof(buf));
        if (n <= 0 && step(client, n, &unused) < 0) {
            return false;
        }
    }
    if (n != 4 || memcmp(buf, "ping", 4) != 0 || SSL_write(client, "pong", 4) != 4) {
        return false;
    }
    n = -1;
    for (int i = 0; i < 10 && n <= 0; i++) {
        n = SSL_read(server, buf, sizeof(buf));
        if (n <= 0 && step(server, n, &unused) < 0) {
            return false;
        }
        flush(out, sfd);
    }
    return n == 4 && memcmp(buf, "pong", 4) == 0;
}

static void connect_once(struct lw_tls_ctx *ctx, SSL_CTX *cctx, const struct client_opts *o, struct result *r)
{
    memset(r, 0, sizeof(*r));
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) {
        return;
    }
    struct lw_buf out;
    lw_buf_init(&out);
    SSL *server = lw_tls_ctx_new_ssl(ctx);
    BIO *bio = lw_tls_bio_new(sv[0], &out);
    SSL_set_bio(server, bio, bio);

    SSL *client = SSL_new(cctx);
    SSL_set_app_data(client, &r->seen);
    SSL_set_fd(client, sv[1]);
    SSL_set_connect_state(client);
    if (o->sni != NULL) {
        SSL_set_tlsext_host_name(client, o->sni);
    }
    if (o->alpn != NULL) {
        SSL_set_alpn_protos(client, (const uint8_t *)o->alpn, (unsigned)o->alpn_len);
    }
    SSL_set_max_proto_version(client, o->max_version ? o->max_version : TLS1_3_VERSION);
    if (o->ciphers != NULL) {
        SSL_set_strict_cipher_list(client, o->ciphers);
    }
    if (o->session != NULL) {
        SSL_set_session(client, o->session);
    }

    handshake(client, server, &out, sv[0], r);
    if (r->ok) {
        r->alpn = lw_tls_alpn(server);
        r->reused = SSL_session_reused(client) && SSL_session_reused(server);
        r->version = SSL_version(server);
        r->cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(server));
        r->peer = SSL_get_peer_certificate(client);
        r->data_ok = exchange(client, server, &out, sv[0]);
    }
    ERR_clear_error();
    SSL_free(client);
    SSL_free(server);
    lw_buf_dispose(&out);
    close(sv[0]);
    close(sv[1]);
}

/* Which certificate the client got, told by its subject CN (a wildcard would also match a name). */
static bool peer_is(const struct result *r, const char *cn)
{
    char buf[256];
    return r->peer != NULL &&
           X509_NAME_get_text_by_NID(X509_get_subject_name(r->peer), NID_commonName, buf, sizeof(buf)) > 0 &&
           strcmp(buf, cn) == 0;
}

/* data_dir/file, kept until the end of the test so config structs can point at it. */
static char *paths[16];
static size_t num_paths;

static char *path(const char *file)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s/%s", data_dir, file);
    for (size_t i = 0; i < num_paths; i++) {
        if (strcmp(paths[i], buf) == 0) {
            return paths[i];
        }
    }
    LW_BUG_ON(num_paths == LW_ARRAY_LEN(paths));
    return paths[num_paths++] = lw_strdup(buf);
}

static struct lw_config_listener listener(struct lw_config_cert *certs, size_t n, bool tickets, uint32_t rotation_ms)
{
    struct lw_config_listener l = {
        .host = "127.0.0.1",
        .tls = true,
        .certs = certs,
        .num_certs = n,
        .session_tickets = tickets,
        .ticket_rotation_ms = rotation_ms,
        .line = 1,
    };
    return l;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

#define ALPN(s) s, sizeof(s) - 1

static void test_alpn_and_sni(struct lw_tls_ctx *ctx, SSL_CTX *cctx)
{
    struct result r;
    connect_once(ctx, cctx, &(struct client_opts){.alpn = ALPN("\x08http/1.1\x02h2")}, &r);
    TAP_OK(r.ok && strcmp(r.alpn, "h2") == 0, "ALPN picks h2 even when the client lists http/1.1 first");
    TAP_OK(r.data_ok, "application data crosses the socket BIO both ways");
    TAP_OK(r.version == TLS1_3_VERSION, "TLS 1.3 is negotiated by default");
    TAP_OK(peer_is(&r, "default.test"), "no SNI gets the default certificate");
    result_dispose(&r);

    connect_once(ctx, cctx, &(struct client_opts){.alpn = ALPN("\x08http/1.1")}, &r);
    TAP_OK(r.ok && strcmp(r.alpn, "http/1.1") == 0, "ALPN picks http/1.1 when it is all the client offers");
    result_dispose(&r);

    connect_once(ctx, cctx, &(struct client_opts){0}, &r);
    TAP_OK(r.ok && strcmp(r.alpn, "") == 0, "no ALPN offered: the handshake succeeds with no protocol");
    result_dispose(&r);

    connect_once(ctx, cctx, &(struct client_opts){.alpn = ALPN("\x06spdy/3\x08http/1.0")}, &r);
    TAP_OK(r.ok && strcmp(r.alpn, "http/1.0") == 0, "ALPN picks http/1.0 when it is all we serve of the offer");
    result_dispose(&r);

    connect_once(ctx, cctx, &(struct client_opts){.alpn = ALPN("\x08http/1.0\x08http/1.1")}, &r);
    TAP_OK(r.ok && strcmp(r.alpn, "http/1.1") == 0, "ALPN prefers http/1.1 to http/1.0 whatever the client's order");
    result_dispose(&r);

    connect_once(ctx, cctx, &(struct client_opts){.alpn = ALPN("\x08http/1.0\x02h2")}, &r);
    TAP_OK(r.ok && strcmp(r.alpn, "h2") == 0, "ALPN prefers h2 to http/1.0");
    result_dispose(&r);

    connect_once(ctx, cctx, &(struct client_opts){.alpn = ALPN("\x06spdy/3\x08http/0.9")}, &r);
    TAP_OK(!r.ok && r.client_reason == SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL,
           "ALPN without h2, http/1.1 or http/1.0 fails with no_application_protocol");
    result_dispose(&r);

    static const struct {
        const char *sni, *want, *what;
    } cases[] = {
        {"default.test", "default.test", "SNI naming the default certificate selects it"},
        {"x.wild.test", "wild.test", "SNI matches a wildcard for one label"},
        {"X.Wild.Test.", "wild.test", "SNI matches without case and with a trailing dot"},
        {"wild.test", "wild.test", "SNI matches an exact name of a wildcard certificate"},
        {"a.b.wild.test", "default.test", "a wildcard does not match two labels: default certificate"},
        {"exact.wild.test", "exact.wild.test", "an exact name wins over a wildcard configured earlier"},
        {"CN-ONLY.test", "cn-only.test", "SNI matches the CN of a certificate without subjectAltName"},
        {"unknown.test", "default.test", "unknown SNI gets the default certificate, not an error"},
    };
    for (size_t i = 0; i < LW_ARRAY_LEN(cases); i++) {
        connect_once(ctx, cctx, &(struct client_opts){.sni = cases[i].sni, .alpn = ALPN("\x02h2")}, &r);
        TAP_OK(r.ok && peer_is(&r, cases[i].want) && strcmp(r.alpn, "h2") == 0, "%s (%s)", cases[i].what, cases[i].sni);
        result_dispose(&r);
    }
}

static void test_versions_and_ciphers(struct lw_tls_ctx *ctx, SSL_CTX *cctx)
{
    struct result r;
    connect_once(ctx, cctx, &(struct client_opts){.max_version = TLS1_1_VERSION}, &r);
    TAP_OK(!r.ok && r.server_reason == SSL_R_UNSUPPORTED_PROTOCOL, "a TLS 1.1 client is refused");
    result_dispose(&r);

    connect_once(ctx, cctx, &(struct client_opts){.max_version = TLS1_VERSION}, &r);
    TAP_OK(!r.ok, "a TLS 1.0 client is refused");
    result_dispose(&r);

    connect_once(ctx, cctx, &(struct client_opts){.max_version = TLS1_2_VERSION, .alpn = ALPN("\x02h2")}, &r);
    TAP_OK(r.ok && r.version == TLS1_2_VERSION && strcmp(r.cipher, "ECDHE-ECDSA-AES128-GCM-SHA256") == 0 &&
               strcmp(r.alpn, "h2") == 0,
           "TLS 1.2 with an ECDSA certificate: ECDHE-ECDSA AES-128-GCM and h2 (%s)", r.cipher ? r.cipher : "-");
    result_dispose(&r);

    connect_once(ctx, cctx, &(struct client_opts){.sni = "cn-only.test", .max_version = TLS1_2_VERSION}, &r);
    TAP_OK(r.ok && strncmp(r.cipher, "ECDHE-RSA-", 10) == 0, "TLS 1.2 with an RSA certificate: ECDHE-RSA (%s)",
           r.cipher ? r.cipher : "-");
    result_dispose(&r);

    connect_once(ctx, cctx,
                 &(struct client_opts){.sni = "x.wild.test",
                                       .max_version = TLS1_2_VERSION,
                                       .ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256"},
                 &r);
    TAP_OK(r.ok && strcmp(r.cipher, "ECDHE-ECDSA-CHACHA20-POLY1305") == 0,
           "a client preferring ChaCha20 gets it (equal-preference group)");
    result_dispose(&r);

    connect_once(ctx, cctx,
                 &(struct client_opts){
                     .sni = "cn-only.test", .max_version = TLS1_2_VERSION, .ciphers = "AES128-GCM-SHA256:AES256-SHA"},
                 &r);
    TAP_OK(!r.ok && r.server_reason == SSL_R_NO_SHARED_CIPHER, "TLS 1.2 without ECDHE is refused");
    result_dispose(&r);
}

static void test_resumption(struct lw_tls_ctx *ctx, struct lw_tls_ctx *other, SSL_CTX *cctx)
{
    static const uint16_t versions[] = {TLS1_3_VERSION, TLS1_2_VERSION};
    for (size_t v = 0; v < LW_ARRAY_LEN(versions); v++) {
        const char *name = versions[v] == TLS1_3_VERSION ? "TLS 1.3" : "TLS 1.2";
        struct result first, again;
        connect_once(ctx, cctx, &(struct client_opts){.max_version = versions[v]}, &first);
        TAP_OK(first.ok && first.seen.session != NULL && SSL_SESSION_has_ticket(first.seen.session),
               "%s: the server issues a ticket", name);
        connect_once(ctx, cctx, &(struct client_opts){.max_version = versions[v], .session = first.seen.session},
                     &again);
        TAP_OK(again.ok && again.reused && again.data_ok, "%s: the ticket resumes the session", name);
        result_dispose(&again);

        connect_once(other, cctx, &(struct client_opts){.max_version = versions[v], .session = first.seen.session},
                     &again);
        TAP_OK(again.ok && !again.reused, "%s: another context's key ring cannot open the ticket", name);
        result_dispose(&again);

        connect_once(
            ctx, cctx,
            &(struct client_opts){.sni = "x.wild.test", .max_version = versions[v], .session = first.seen.session},
            &again);
        TAP_OK(again.ok && !again.reused && peer_is(&again, "wild.test"),
               "%s: a session made under one certificate does not resume under another", name);
        result_dispose(&again);
        result_dispose(&first);
    }
}

/*
 * Rotation every 300ms: a ticket from the key now one period old still resumes and is
 * renewed under the new key; three periods on, the first key is gone but the renewed
 * ticket's key still decrypts. TLS 1.2 shows renewal (a 1.3 server sends tickets anyway).
 */
static void test_rotation(const struct lw_config_listener *base, SSL_CTX *cctx)
{
    struct lw_config_listener l = *base;
    l.ticket_rotation_ms = 300;
    struct lw_tls_ctx *ctx = NULL;
    char err[256];
    TAP_EQ_INT(lw_tls_ctx_new(&l, &ctx, err, sizeof(err)), 0, "a context with 300ms key rotation builds");
    if (ctx == NULL) {
        return;
    }
    struct client_opts o = {.max_version = TLS1_2_VERSION};
    struct result first, r, renewed;
    connect_once(ctx, cctx, &o, &first);
    o.session = first.seen.session;
    connect_once(ctx, cctx, &o, &r);
    TAP_OK(r.ok && r.reused && r.seen.new_sessions == 0, "rotation: the current key resumes without renewing");
    result_dispose(&r);

    sleep_ms(350);
    connect_once(ctx, cctx, &o, &renewed);
    TAP_OK(renewed.ok && renewed.reused && renewed.seen.new_sessions == 1,
           "rotation: a ticket under the previous key resumes and is renewed");

    sleep_ms(600);
    connect_once(ctx, cctx, &o, &r);
    TAP_OK(r.ok && !r.reused, "rotation: two periods after retiring, a key no longer decrypts");
    result_dispose(&r);
    o.session = renewed.seen.session;
    connect_once(ctx, cctx, &o, &r);
    TAP_OK(r.ok && r.reused, "rotation: the renewed ticket still resumes");
    result_dispose(&r);
    result_dispose(&renewed);
    result_dispose(&first);
    lw_tls_ctx_free(ctx);
}

static void test_no_tickets(const struct lw_config_listener *base, SSL_CTX *cctx)
{
    struct lw_config_listener l = *base;
    l.session_tickets = false;
    struct lw_tls_ctx *ctx = NULL;
    char err[256];
    TAP_EQ_INT(lw_tls_ctx_new(&l, &ctx, err, sizeof(err)), 0, "a context without tickets builds");
    if (ctx == NULL) {
        return;
    }
    for (int tls12 = 0; tls12 < 2; tls12++) {
        struct result first, again;
        struct client_opts o = {.max_version = tls12 ? TLS1_2_VERSION : TLS1_3_VERSION};
        connect_once(ctx, cctx, &o, &first);
        TAP_OK(first.ok && (first.seen.session == NULL || !SSL_SESSION_has_ticket(first.seen.session)),
               "tickets off, TLS 1.%d: no ticket is issued", tls12 ? 2 : 3);
        o.session = first.seen.session;
        connect_once(ctx, cctx, &o, &again);
        TAP_OK(again.ok && !again.reused, "tickets off, TLS 1.%d: nothing resumes", tls12 ? 2 : 3);
        result_dispose(&again);
        result_dispose(&first);
    }
    lw_tls_ctx_free(ctx);
}

static void test_self_signed(SSL_CTX *cctx)
{
    int pipefd[2];
    if (pipe(pipefd) != 0) {
        return;
    }
    fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    lw_log_set_fd(pipefd[1]);
    struct lw_config_listener l = listener(NULL, 0, true, 3600000);
    struct lw_tls_ctx *ctx = NULL;
    char err[256];
    int rc = lw_tls_ctx_new(&l, &ctx, err, sizeof(err));
    lw_log_set_fd(2);
    char logbuf[1024] = "";
    ssize_t n = read(pipefd[0], logbuf, sizeof(logbuf) - 1);
    logbuf[n > 0 ? n : 0] = '\0';
    close(pipefd[0]);
    close(pipefd[1]);
    TAP_OK(rc == 0 && ctx != NULL, "no certificates: a self-signed one is generated (%s)", err);
    if (ctx == NULL) {
        return;
    }

    struct result r;
    connect_once(ctx, cctx, &(struct client_opts){.sni = "localhost", .alpn = ALPN("\x02h2")}, &r);
    TAP_OK(r.ok && strcmp(r.alpn, "h2") == 0 && r.data_ok, "self-signed: the handshake completes with h2");
    X509 *x = r.peer;
    TAP_OK(x != NULL && X509_check_host(x, "localhost", 9, 0, NULL) == 1 && X509_check_ip_asc(x, "127.0.0.1", 0) == 1 &&
               X509_check_ip_asc(x, "::1", 0) == 1,
           "self-signed: names localhost, 127.0.0.1 and ::1");
    if (x != NULL) {
        EVP_PKEY *pub = X509_get_pubkey(x);
        TAP_OK(X509_get_version(x) == X509_VERSION_3 && EVP_PKEY_id(pub) == EVP_PKEY_EC && X509_verify(x, pub) == 1,
               "self-signed: X.509 v3, ECDSA key, signed by itself");
        EVP_PKEY_free(pub);
        TAP_OK(X509_check_ca(x) == 0 && (X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE) &&
                   (X509_get_extended_key_usage(x) & XKU_SSL_SERVER),
               "self-signed: CA:FALSE, digitalSignature, serverAuth");
        TAP_OK(X509_cmp_current_time(X509_get0_notBefore(x)) < 0 && X509_cmp_current_time(X509_get0_notAfter(x)) > 0,
               "self-signed: valid now");
        uint8_t md[32];
        unsigned md_len = 0;
        char hex[3 * 32 + 1] = "";
        X509_digest(x, EVP_sha256(), md, &md_len);
        size_t used = 0;
        for (unsigned i = 0; i < md_len; i++) {
            used += (size_t)snprintf(hex + used, sizeof(hex) - used, "%s%02X", i ? ":" : "", md[i]);
        }
        TAP_OK(strstr(logbuf, "[info] generated a self-signed certificate for localhost (sha256 fingerprint ") &&
                   strstr(logbuf, hex) != NULL,
               "self-signed: the info log line carries the certificate's SHA-256 fingerprint");
    }
    result_dispose(&r);
    lw_tls_ctx_free(ctx);
}

static void test_load_errors(void)
{
    /* File names are relative to the data directory unless absolute. */
    static const struct {
        const char *cert, *key;
        int want;
        const char *msg, *what;
    } cases[] = {
        {"/nonexistent/a.pem", "default.key", LW_EIO,
         "/nonexistent/a.pem: cannot read certificate chain: No such file or directory", "a missing certificate"},
        {"default.key", "default.key", LW_EINVAL,
         "default.key: cannot load certificate chain: error:", "a file without a certificate"},
        {"default.pem", "/nonexistent/a.key", LW_EIO,
         "/nonexistent/a.key: cannot read private key: No such file or directory", "a missing key"},
        {"default.pem", "default.pem", LW_EINVAL,
         "default.pem: cannot load private key: error:", "a file without a key"},
        {"default.pem", "wild.key", LW_EINVAL, "wild.key: private key does not match the certificate in",
         "a key of another certificate"},
    };
    for (size_t i = 0; i < LW_ARRAY_LEN(cases); i++) {
        char cert[512], key[512];
        snprintf(cert, sizeof(cert), "%s", cases[i].cert[0] == '/' ? cases[i].cert : path(cases[i].cert));
        snprintf(key, sizeof(key), "%s", cases[i].key[0] == '/' ? cases[i].key : path(cases[i].key));
        /* The failing certificate comes second, so the first one's context must be freed too. */
        struct lw_config_cert certs[2] = {{path("wild.pem"), path("wild.key")}, {cert, key}};
        struct lw_config_listener l = listener(certs, 2, true, 3600000);
        struct lw_tls_ctx *ctx = (struct lw_tls_ctx *)&l; /* must be reset to NULL */
        char err[512];
        int rc = lw_tls_ctx_new(&l, &ctx, err, sizeof(err));
        TAP_OK(rc == cases[i].want && ctx == NULL && strstr(err, cases[i].msg) != NULL && strchr(err, '\n') == NULL &&
                   ERR_peek_error() == 0,
               "%s fails with %s: %s", cases[i].what, lw_strerror(rc), err);
        if (rc == 0) {
            lw_tls_ctx_free(ctx);
        }
    }
    struct lw_config_listener l = listener(NULL, 0, true, 0);
    struct lw_tls_ctx *ctx = NULL;
    char err[256];
    int rc = lw_tls_ctx_new(&l, &ctx, err, sizeof(err));
    TAP_OK(rc == LW_EINVAL && ctx == NULL, "a zero ticket rotation period is refused: %s", err);
}

static void test_bio(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) {
        return;
    }
    struct lw_buf out;
    lw_buf_init(&out);
    BIO *bio = lw_tls_bio_new(sv[0], &out);
    int n = BIO_write(bio, "abc", 3);
    TAP_OK(n == 3 && lw_buf_size(&out) == 3 && memcmp(lw_buf_head(&out), "abc", 3) == 0,
           "BIO write appends to the output buffer and returns the length");
    n = BIO_flush(bio);
    TAP_EQ_INT(n, 1, "BIO flush succeeds");
    char buf[8];
    n = BIO_read(bio, buf, sizeof(buf));
    bool retry = BIO_should_retry(bio) && BIO_should_read(bio);
    TAP_OK(n == -1 && retry, "BIO read on an empty socket asks to retry the read");
    n = write(sv[1], "xyz", 3) == 3 ? BIO_read(bio, buf, sizeof(buf)) : -2;
    retry = BIO_should_retry(bio);
    TAP_OK(n == 3 && memcmp(buf, "xyz", 3) == 0 && !retry, "BIO read returns the socket's bytes");
    close(sv[1]);
    n = BIO_read(bio, buf, sizeof(buf));
    TAP_EQ_INT(n, 0, "BIO read returns 0 at EOF");
    BIO_free(bio);
    n = fcntl(sv[0], F_GETFD);
    TAP_OK(n != -1, "freeing the BIO leaves the fd open");
    close(sv[0]);
    lw_buf_dispose(&out);
}

struct stress {
    struct lw_tls_ctx *ctx;
    SSL_CTX *cctx;
    int resumed, failed;
};

static void *stress_thread(void *arg)
{
    struct stress *s = arg;
    SSL_SESSION *session = NULL;
    for (int i = 0; i < 30; i++) {
        struct result r;
        connect_once(s->ctx, s->cctx, &(struct client_opts){.max_version = TLS1_2_VERSION, .session = session}, &r);
        s->failed += !r.ok;
        s->resumed += r.reused;
        if (r.seen.session != NULL) {
            SSL_SESSION_free(session);
            session = r.seen.session;
            r.seen.session = NULL;
        }
        result_dispose(&r);
    }
    SSL_SESSION_free(session);
    return NULL;
}

/* Several threads handshake on one context while its keys rotate every few milliseconds. */
static void test_threads(const struct lw_config_listener *base, SSL_CTX *cctx)
{
    struct lw_config_listener l = *base;
    l.ticket_rotation_ms = 5;
    struct lw_tls_ctx *ctx = NULL;
    char err[256];
    if (lw_tls_ctx_new(&l, &ctx, err, sizeof(err)) != 0) {
        TAP_OK(false, "threads: context builds: %s", err);
        return;
    }
    struct stress s[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        s[i] = (struct stress){ctx, cctx, 0, 0};
        pthread_create(&t[i], NULL, stress_thread, &s[i]);
    }
    int failed = 0, resumed = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        failed += s[i].failed;
        resumed += s[i].resumed;
    }
    TAP_OK(failed == 0 && resumed > 0, "threads: 120 handshakes during fast rotation, none failed, %d resumed",
           resumed);
    lw_tls_ctx_free(ctx);
}

/* The owner frees the context before a connection made from it has done its handshake. */
static void test_free_while_in_use(const struct lw_config_listener *base, SSL_CTX *cctx)
{
    struct lw_tls_ctx *ctx = NULL;
    char err[256];
    if (lw_tls_ctx_new(base, &ctx, err, sizeof(err)) != 0) {
        TAP_OK(false, "free while in use: context builds: %s", err);
        return;
    }
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    struct lw_buf out;
    lw_buf_init(&out);
    SSL *server = lw_tls_ctx_new_ssl(ctx);
    BIO *bio = lw_tls_bio_new(sv[0], &out);
    SSL_set_bio(server, bio, bio);
    lw_tls_ctx_free(ctx);

    struct result r = {0};
    SSL *client = SSL_new(cctx);
    SSL_set_app_data(client, &r.seen);
    SSL_set_fd(client, sv[1]);
    SSL_set_connect_state(client);
    SSL_set_tlsext_host_name(client, "x.wild.test");
    handshake(client, server, &out, sv[0], &r);
    r.peer = r.ok ? SSL_get_peer_certificate(client) : NULL;
    r.data_ok = r.ok && exchange(client, server, &out, sv[0]);
    TAP_OK(r.data_ok && peer_is(&r, "wild.test") && r.seen.session != NULL,
           "a connection outlives lw_tls_ctx_free of its context (SNI and tickets still work)");
    X509_free(r.peer);
    SSL_free(client);
    SSL_free(server);
    SSL_SESSION_free(r.seen.session);
    lw_buf_dispose(&out);
    close(sv[0]);
    close(sv[1]);
}

static void test_bio_read_ahead(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) {
        return;
    }
    struct lw_buf out, in;
    struct lw_mem_cache cache;
    lw_buf_init(&out);
    lw_buf_init(&in);
    lw_mem_cache_init(&cache, 64, 2);
    BIO *bio = lw_tls_bio_new(sv[0], &out);
    lw_tls_bio_read_ahead(bio, &in, &cache);
    char buf[128];
    int n = write(sv[1], "headerbody", 10) == 10 ? BIO_read(bio, buf, 6) : -2;
    TAP_OK(n == 6 && memcmp(buf, "header", 6) == 0 && lw_buf_size(&in) == 4,
           "read-ahead: a short BIO read takes what the socket holds and returns what was asked");
    n = write(sv[1], "more", 4) == 4 ? BIO_read(bio, buf, sizeof(buf)) : -2;
    TAP_OK(n == 4 && memcmp(buf, "body", 4) == 0 && in.data == NULL,
           "read-ahead: the rest comes from the buffer, which gives its block back once empty");
    n = BIO_read(bio, buf, sizeof(buf));
    TAP_OK(n == -1 && BIO_should_retry(bio) && BIO_should_read(bio),
           "read-ahead: after a short recv, a read asks to retry without asking the socket");
    lw_tls_bio_rearm(bio);
    n = BIO_read(bio, buf, sizeof(buf));
    TAP_OK(n == 4 && memcmp(buf, "more", 4) == 0, "read-ahead: once rearmed, the socket's new bytes are read");
    char big[64 + 16];
    memset(big, 'x', sizeof(big));
    lw_tls_bio_rearm(bio);
    n = write(sv[1], big, sizeof(big)) == (ssize_t)sizeof(big) ? BIO_read(bio, buf, 64 + 16) : -2;
    TAP_OK(n == 64 + 16 && lw_buf_size(&in) == 0, "read-ahead: a read of a block or more goes straight to the caller");
    close(sv[1]);
    lw_tls_bio_rearm(bio);
    n = BIO_read(bio, buf, 8);
    TAP_EQ_INT(n, 0, "read-ahead: BIO read returns 0 at EOF");
    BIO_free(bio);
    close(sv[0]);
    lw_buf_dispose(&in);
    lw_buf_dispose(&out);
    lw_mem_cache_dispose(&cache);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        data_dir = argv[1];
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep TAP lines even if a sanitizer ends the process */
    lw_log_set_level(LW_LOG_WARN);
    SSL_CTX *cctx = client_ctx_new();
    struct lw_config_cert certs[] = {
        {path("default.pem"), path("default.key")},
        {path("wild.pem"), path("wild.key")},
        {path("cn.pem"), path("cn.key")},
        {path("exact.pem"), path("exact.key")},
    };
    struct lw_config_listener l = listener(certs, LW_ARRAY_LEN(certs), true, 3600000);
    struct lw_tls_ctx *ctx = NULL, *other = NULL;
    char err[512];
    int rc = lw_tls_ctx_new(&l, &ctx, err, sizeof(err));
    TAP_OK(rc == 0 && ctx != NULL, "a context with four certificates builds: %s", err);
    rc = lw_tls_ctx_new(&l, &other, err, sizeof(err));
    TAP_OK(rc == 0 && other != NULL, "a second context builds: %s", err);
    if (ctx == NULL || other == NULL) {
        lw_tls_ctx_free(ctx);
        lw_tls_ctx_free(other);
        SSL_CTX_free(cctx);
        return tap_done();
    }

    test_alpn_and_sni(ctx, cctx);
    test_versions_and_ciphers(ctx, cctx);
    test_resumption(ctx, other, cctx);
    test_rotation(&l, cctx);
    test_no_tickets(&l, cctx);
    lw_log_set_level(LW_LOG_INFO);
    test_self_signed(cctx);
    lw_log_set_level(LW_LOG_WARN);
    test_load_errors();
    test_bio();
    test_bio_read_ahead();
    test_threads(&l, cctx);
    test_free_while_in_use(&l, cctx);

    lw_tls_ctx_free(other);
    lw_tls_ctx_free(ctx);
    SSL_CTX_free(cctx);
    for (size_t i = 0; i < num_paths; i++) {
        free(paths[i]);
    }
    return tap_done();
}
