/* SPDX-License-Identifier: MIT */
/*
 * The access log: one line per exchange, key=value fields so that both people and scripts
 * read it, written with one write(2) so lines from several workers never interleave.
 */
#ifndef LW_PROXY_ACCESSLOG_H
#define LW_PROXY_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

struct lw_request;

/* Write req's line to fd (no-op when fd < 0). */
void lw_accesslog_write(int fd, const struct lw_request *req);
/* The line of a request refused before it became one (a head lowat could not accept): what is
 * known of it, NULL for the rest ("-"); no backend, no timings. */
void lw_accesslog_write_refusal(int fd, const char *client, const char *proto, const char *method, size_t method_len,
                                const char *path, size_t path_len, int status, uint64_t bytes);

#endif
