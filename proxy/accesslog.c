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

/* One line's fields, from a request or from a refusal. */
struct entry {
    const char *client, *proto, *method, *authority, *path;
    size_t method_len, authority_len, path_len;
    int status;
    uint64_t bytes;
    const char *backend, *member, *experiment, *arm;
    double upstream_ms, total_ms;
    bool aborted, failed, push;
};

static void write_entry(int fd, const struct entry *e)
{
    char line[3072];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char path[1200], auth[300];
    put_quoted(path, sizeof(path), e->path ? e->path : "", e->path ? e->path_len : 0);
    int alen = put_quoted(auth, sizeof(auth), e->authority ? e->authority : "", e->authority_len);
    /* Plain authority when it needs no quoting, which is nearly always. */
    const char *authority = auth;
    char plain[300];
    if (alen == (int)e->authority_len + 2) {
        snprintf(plain, sizeof(plain), "%.*s", (int)e->authority_len, e->authority ? e->authority : "");
        authority = e->authority_len ? plain : "-";
    }
    int n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ client=%s proto=%s method=%.*s authority=%s path=%s "
                     "status=%d bytes=%llu backend=%s member=%s upstream_ms=%.1f total_ms=%.1f experiment=%s arm=%s%s%s%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, e->client, e->proto ? e->proto : "-", e->method ? (int)e->method_len : 1,
                     e->method ? e->method : "-", authority, path, e->status, (unsigned long long)e->bytes,
                     e->backend ? e->backend : "-", e->member ? e->member : "-", e->upstream_ms, e->total_ms,
                     e->experiment ? e->experiment : "-", e->arm ? e->arm : "-", e->aborted ? " aborted=1" : "",
                     e->failed ? " failed=1" : "", e->push ? " push=1" : "");
    if (n < 0) {
        return;
    }
    if (n >= (int)sizeof(line)) {
        n = sizeof(line) - 1;
    }
    lw_log_write_line(fd, line, n);
}

void lw_accesslog_write(int fd, const struct lw_request *req)
{
    if (fd < 0) {
        return;
    }
    uint64_t now = lw_time_mono_us();
    struct entry e = {
        .client = req->client,
        .proto = req->proto,
        .method = req->method,
        .method_len = req->method_len,
        .authority = req->authority,
        .authority_len = req->authority_len,
        .path = req->path,
        .path_len = req->path ? req->path_len : 0,
        .status = req->status,
        .bytes = req->resp_sent,
        .backend = req->upstream ? req->upstream->cfg->name : NULL,
        .member = req->member_name[0] ? req->member_name : NULL,
        .experiment = req->experiment_name,
        .arm = req->arm_name,
        .upstream_ms = req->upstream_head_us && req->upstream_start_us
                           ? (double)(req->upstream_head_us - req->upstream_start_us) / 1000.0
                           : -1.0,
        .total_ms = (double)(now - req->start_us) / 1000.0,
        .aborted = req->aborted,
        .failed = req->resp_failed,
        .push = req->is_push,
    };
    write_entry(fd, &e);
}

void lw_accesslog_write_refusal(int fd, const char *client, const char *proto, const char *method, size_t method_len,
                                const char *path, size_t path_len, int status, uint64_t bytes)
{
    if (fd < 0) {
        return;
    }
    struct entry e = {.client = client,
                      .proto = proto,
                      .method = method,
                      .method_len = method_len,
                      .path = path,
                      .path_len = path_len,
                      .status = status,
                      .bytes = bytes,
                      .upstream_ms = -1.0};
    write_entry(fd, &e);
}
