/* SPDX-License-Identifier: MIT */
/*
 * The access log: one line per exchange, key=value fields so that both people and scripts
 * read it, written with one write(2) so lines from several workers never interleave.
 */
#ifndef LW_PROXY_ACCESSLOG_H
#define LW_PROXY_ACCESSLOG_H

struct lw_request;

/* Write req's line to fd (no-op when fd < 0). */
void lw_accesslog_write(int fd, const struct lw_request *req);

#endif
