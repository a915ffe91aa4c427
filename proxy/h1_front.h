/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.1 frontend: strict request parsing (common/http1), one exchange at a time per
 * connection (pipelined requests wait their turn in the input buffer), request bodies with
 * backpressure, and responses re-framed for the client (Content-Length kept, otherwise
 * chunked for 1.1 clients and close-delimited for 1.0 clients). On a cleartext listener it
 * also performs the RFC 7540 section 3.2 upgrade to h2c.
 */
#ifndef LW_PROXY_H1_FRONT_H
#define LW_PROXY_H1_FRONT_H

#include <stdbool.h>
#include <stddef.h>

struct lw_conn;
struct lw_h1_front;

struct lw_h1_front *lw_h1_front_new(struct lw_conn *c);
/* Parse and act on c->rbuf. Returns 0, or LW_ECLOSED when the connection is closing or has
 * switched to HTTP/2 (the caller must re-check c->proto). */
int lw_h1_front_process(struct lw_h1_front *h);
/* Produce response bytes into the connection, up to about budget. Returns bytes produced. */
size_t lw_h1_front_produce(struct lw_h1_front *h, size_t budget);
/* The client closed its sending side (FIN, close_notify). With a whole request pending, its
 * response is still produced until the client is seen to be gone (see h1_front.c). */
void lw_h1_front_on_eof(struct lw_h1_front *h);
/* Graceful stop: close after the exchange in flight, or once what is queued is written if none. */
void lw_h1_front_shutdown(struct lw_h1_front *h);
/* The connection timer fired (header, idle, a look for the RST of a client gone). */
void lw_h1_front_on_timeout(struct lw_h1_front *h);
/* Abort any exchange and free. */
void lw_h1_front_free(struct lw_h1_front *h);

#endif
