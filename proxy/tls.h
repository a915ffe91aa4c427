/* SPDX-License-Identifier: MIT */
/*
 * BoringSSL contexts for TLS listeners: certificates chosen by SNI, ALPN (h2, http/1.1,
 * http/1.0), TLS 1.2 minimum, session tickets with keys rotated on a timer, and a self-signed
 * certificate generated at start-up when a listener names none.
 *
 * A context is built once per listener per config snapshot in the main thread and then
 * shared read-only by every worker (SSL_CTX is thread-safe); the ticket keys are the one
 * piece of mutable state and sit behind a mutex taken only during handshakes.
 *
 * Connections never use SSL_set_fd: lw_tls_bio_new gives a BIO that reads ciphertext straight
 * from the socket and appends ciphertext to the connection's own output buffer, so the
 * connection decides when and how much to write.
 */
#ifndef LW_PROXY_TLS_H
#define LW_PROXY_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "config/config.h"

struct lw_tls_ctx;

/*
 * Build the context for a TLS listener. On failure returns LW_EINVAL or LW_EIO and writes a
 * one-line reason (naming the file and BoringSSL's error) into err.
 */
int lw_tls_ctx_new(const struct lw_config_listener *l, struct lw_tls_ctx **out, char *err, size_t errlen);
void lw_tls_ctx_free(struct lw_tls_ctx *ctx);

/* A new server-side SSL for one accepted connection; the caller owns it (SSL_free). */
SSL *lw_tls_ctx_new_ssl(struct lw_tls_ctx *ctx);

/*
 * A BIO for one connection: BIO_read calls recv(fd) (retry flags set on EAGAIN, 0 on EOF),
 * BIO_write appends to out (borrowed: it must outlive the BIO). Set it with
 * SSL_set_bio(ssl, bio, bio).
 */
BIO *lw_tls_bio_new(int fd, struct lw_buf *out);
/*
 * Make the BIO read ahead: one recv of up to cache->size bytes into in (borrowed, empty,
 * outliving the BIO), from which BoringSSL's reads are served; in's block comes from cache
 * and goes back to it whenever in is emptied. Once a recv comes back short, reads fail with
 * a retry (EAGAIN) without a system call until lw_tls_bio_rearm: for a caller that reads on
 * a level-triggered readable event and rearms at each.
 */
void lw_tls_bio_read_ahead(BIO *bio, struct lw_buf *in, struct lw_mem_cache *cache);
/* The socket may have new bytes (a readable event): the next read asks the kernel again. */
void lw_tls_bio_rearm(BIO *bio);

/* The ALPN protocol the handshake chose: "h2", "http/1.1", "http/1.0", or "" when none was
 * offered. Anything but "h2" is served by the HTTP/1.x frontend. */
const char *lw_tls_alpn(const SSL *ssl);

/* Drain BoringSSL's error queue into buf as one line (for a log message). */
void lw_tls_errors(char *buf, size_t len);

#endif
