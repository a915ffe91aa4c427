/* SPDX-License-Identifier: MIT */
/*
 * A worker's listening socket for one configured listener: SO_REUSEPORT sockets, one per
 * worker, all bound to the same port, so the kernel spreads new connections across
 * workers with no lock and no hand-off.
 */
#ifndef LW_PROXY_LISTENER_H
#define LW_PROXY_LISTENER_H

struct lw_worker;
struct lw_listen_spec;
struct lw_listener;

/* Listen for w on spec (fd: a socket already bound for it, or -1 to bind one). NULL on
 * failure (logged). */
struct lw_listener *lw_listener_new(struct lw_worker *w, const struct lw_listen_spec *spec, int fd);
/* Stop accepting and close the socket. */
void lw_listener_free(struct lw_listener *l);

#endif
