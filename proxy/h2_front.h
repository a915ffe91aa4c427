/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/2 frontend: one nghttp2 server session per connection, driven sans-I/O
 * (mem_recv/mem_send), one lw_request per client stream. Request bodies use manual flow
 * control: a stream's window opens only as the backend takes its bytes, so a slow backend
 * slows the client's upload instead of filling memory. Response bodies are pulled from the
 * request's buffer as the connection's write budget allows.
 */
#ifndef LW_PROXY_H2_FRONT_H
#define LW_PROXY_H2_FRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lw_conn;
struct lw_h2_front;
struct lw_request;

/* A server session for c; queues the server's SETTINGS. */
struct lw_h2_front *lw_h2_front_new(struct lw_conn *c);
/* The same after an h2c Upgrade: stream 1 carries req (already half-closed by the client).
 * settings: the HTTP2-Settings header value (base64url). NULL if it is malformed. */
struct lw_h2_front *lw_h2_front_new_upgrade(struct lw_conn *c, const char *settings, size_t settings_len,
                                            struct lw_request *req);
/* Plaintext from the client. Returns 0, or LW_EPROTO when the connection must close (a
 * GOAWAY has been queued where the protocol calls for one). */
int lw_h2_front_recv(struct lw_h2_front *h, const char *data, size_t len);
/* Produce frames into the connection, up to about budget bytes. Returns bytes produced. */
size_t lw_h2_front_produce(struct lw_h2_front *h, size_t budget);
/* Neither side has anything more to say: the connection can close. */
bool lw_h2_front_is_done(const struct lw_h2_front *h);
/* Where the connection's first flight stands: what it writes before its first DATA frame or
 * interim response (a 103 is meant to leave while the backend still thinks) can wait to leave
 * with that DATA. */
enum lw_h2_flight {
    LW_H2_FLIGHT_FORMED,     /* DATA or an interim response has been produced: nothing to wait for */
    LW_H2_FLIGHT_NO_REQUEST, /* no request yet: the client's first is likely on its way */
    LW_H2_FLIGHT_NO_BODY,    /* a request is open, its response's body still to come */
};
enum lw_h2_flight lw_h2_front_first_flight(struct lw_h2_front *h);
/* Requests that came after the first flight wait for their responses to start (a head and the
 * first body bytes, or a head without body): since when (lw_time_mono_us; the clock starts
 * when the first of them comes while none waits), so that the connection can keep the other
 * streams' bytes from queueing in front of those responses. 0 when none waits, or when one of
 * them, or an interim response, has become ready and not gone out yet. */
uint64_t lw_h2_front_awaited_since(const struct lw_h2_front *h);
/* No stream is open. */
bool lw_h2_front_is_idle(const struct lw_h2_front *h);
/* Graceful stop: GOAWAY with the last stream processed; open streams finish. */
void lw_h2_front_shutdown(struct lw_h2_front *h);
/* Abort every request and free the session. */
void lw_h2_front_free(struct lw_h2_front *h);

#endif
