/* SPDX-License-Identifier: MIT */
/* Access log lines: time, client, protocol, request, status, bytes, backend, durations. */
#include "proxy/accesslog.h"

#include <stdio.h>
#include <time.h>

#include "common/log.h"
#include "common/clock.h"
#include "config/config.h"
#include "proxy/pool.h"
#include "proxy/request.h"

/* Quote a value, escaping what would break the line apart or let a client forge fields. */
static int put_quoted(char *out, size_t cap, const char *s, size_t len)
{
    size_t o = 0;
    if (o < cap) {
        out[o++] = '"';
    }
    for (size_t i = 0; i < len && o + 6 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    if (o + 1 < cap) {
        out[o++] = '"';
    }
    out[o] = '\0';
    return (int)o;
}

void lw_accesslog_write(int fd, const struct lw_request *req)
{
    if (fd < 0) {
        return;
    }
    char line[3072];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    uint64_t now = lw_time_mono_us();
    double total_ms = (double)(now - req->start_us) / 1000.0;
    double up_ms = req->upstream_head_us && req->upstream_start_us
                       ? (double)(req->upstream_head_us - req->upstream_start_us) / 1000.0
                       : -1.0;
    char path[1200], auth[300];
    put_quoted(path, sizeof(path), req->path ? req->path : "", req->path ? req->path_len : 0);
    int alen = put_quoted(auth, sizeof(auth), req->authority ? req->authority : "", req->authority_len);
    /* Plain authority when it needs no quoting, which is nearly always. */
    const char *authority = auth;
    char plain[300];
    if (alen == (int)req->authority_len + 2) {
        snprintf(plain, sizeof(plain), "%.*s", (int)req->authority_len, req->authority ? req->authority : "");
        authority = req->authority_len ? plain : "-";
    }
    int n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ client=%s proto=%s method=%.*s authority=%s path=%s "
                     "status=%d bytes=%llu backend=%s member=%s upstream_ms=%.1f total_ms=%.1f experiment=%s arm=%s%s%s%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, req->client, req->proto ? req->proto : "-", (int)req->method_len,
                     req->method ? req->method : "-", authority, path, req->status,
                     (unsigned long long)req->resp_sent, req->upstream ? req->upstream->cfg->name : "-",
                     req->member_name[0] ? req->member_name : "-", up_ms, total_ms,
                     req->experiment_name ? req->experiment_name : "-", req->arm_name ? req->arm_name : "-",
                     req->aborted ? " aborted=1" : "", req->resp_failed ? " failed=1" : "",
                     req->is_push ? " push=1" : "");
    if (n < 0) {
        return;
    }
    if (n >= (int)sizeof(line)) {
        n = sizeof(line) - 1;
    }
    lw_log_write_line(fd, line, n);
}
