/* SPDX-License-Identifier: MIT */
/* The error log: timestamped lines, one write(2) each, so threads never interleave. */
#include "common/log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum lw_log_level log_level = LW_LOG_INFO;
static int log_fd = 2;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void lw_log_set_level(enum lw_log_level level)
{
    log_level = level;
}

enum lw_log_level lw_log_get_level(void)
{
    return log_level;
}

void lw_log_set_fd(int fd)
{
    log_fd = fd;
}

bool lw_log_parse_level(const char *name, enum lw_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum lw_log_level)i;
            return true;
        }
    }
    return false;
}

void lw_log_write_line(int fd, const char *line, int len)
{
    char buf[4096];
    if (len > (int)sizeof(buf) - 1) {
        len = sizeof(buf) - 1;
    }
    memcpy(buf, line, (size_t)len);
    buf[len] = '\n';
    ssize_t r = write(fd, buf, (size_t)len + 1);
    (void)r;
}

static void write_log(enum lw_log_level level, const char *fmt, va_list ap);

void lw_logv(enum lw_log_level level, const char *fmt, va_list ap)
{
    if (level > log_level) {
        return;
    }
    write_log(level, fmt, ap);
}

void lw_log_always(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    write_log(LW_LOG_INFO, fmt, ap);
    va_end(ap);
}

static void write_log(enum lw_log_level level, const char *fmt, va_list ap)
{
    char line[4096];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ [%s] ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                     level_names[level]);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    if (m < 0) {
        m = 0;
    }
    n += m;
    if (n > (int)sizeof(line) - 2) {
        n = sizeof(line) - 2;
    }
    line[n++] = '\n';
    ssize_t r = write(log_fd, line, (size_t)n);
    (void)r;
}

void lw_log(enum lw_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lw_logv(level, fmt, ap);
    va_end(ap);
}
