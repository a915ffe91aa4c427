/* SPDX-License-Identifier: MIT */
/*
 * Socket tuning and helpers. Only this module touches socket options such as TCP_NODELAY
 * (and the write-budget options of the responsiveness work).
 */
#ifndef LW_PROXY_SOCK_H
#define LW_PROXY_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Tune an accepted frontend socket: TCP_NODELAY. */
void lw_sock_tune_frontend(int fd);
/* Tune a backend socket: TCP_NODELAY. */
void lw_sock_tune_backend(int fd);

/* "1.2.3.4:80" or "[::1]:80" into buf. */
void lw_sock_format(const struct sockaddr *sa, char *buf, size_t len);
/* Only the address part, no port. */
void lw_sock_format_ip(const struct sockaddr *sa, char *buf, size_t len);

/* Parse a literal IPv4/IPv6 host and a port into ss. false if host is not a literal. */
bool lw_sock_parse_literal(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len);

/* Open a listening socket (SO_REUSEADDR, SO_REUSEPORT, non-blocking). Returns fd or -1 (errno). */
int lw_sock_listen(const struct sockaddr *sa, socklen_t len, int backlog);
/* The port a socket is bound to. */
uint16_t lw_sock_local_port(int fd);

/* Start a non-blocking connect. Returns fd (connect in progress or done) or -1 (errno). */
int lw_sock_connect(const struct sockaddr *sa, socklen_t len);

#endif
