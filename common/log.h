/* SPDX-License-Identifier: MIT */
/*
 * Error log: one line per event, written with a single write(2) so lines from several
 * threads never interleave. The level and destination are set once at start-up, before
 * any worker thread runs, and only read afterwards.
 */
#ifndef LW_COMMON_LOG_H
#define LW_COMMON_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum lw_log_level {
    LW_LOG_ERROR = 0,
    LW_LOG_WARN = 1,
    LW_LOG_INFO = 2,
    LW_LOG_DEBUG = 3,
};

/* Set the threshold; messages above it are dropped. Call before starting threads. */
void lw_log_set_level(enum lw_log_level level);
enum lw_log_level lw_log_get_level(void);
/* Send the error log to fd (default 2). Call before starting threads. */
void lw_log_set_fd(int fd);
/* Parse "error", "warn", "info", "debug". Returns false on an unknown name. */
bool lw_log_parse_level(const char *name, enum lw_log_level *out);

static inline bool lw_log_enabled(enum lw_log_level level)
{
    return level <= lw_log_get_level();
}

/* Write "2026-11-22T16:36:47.123Z [level] message\n". */
void lw_log(enum lw_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lw_logv(enum lw_log_level level, const char *fmt, va_list ap);

/* Log at info whatever the threshold: start-up and shutdown facts ("listening on ...") that
 * operators and scripts wait for even when they asked for warnings only. */
void lw_log_always(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Write a preformatted line (a newline is added) to fd in one write(2). */
void lw_log_write_line(int fd, const char *line, int len);

#define lw_log_error(...) lw_log(LW_LOG_ERROR, __VA_ARGS__)
#define lw_log_warn(...) lw_log(LW_LOG_WARN, __VA_ARGS__)
#define lw_log_info(...) lw_log(LW_LOG_INFO, __VA_ARGS__)
#define lw_log_debug(...)                                                                                              \
    do {                                                                                                               \
        if (lw_log_enabled(LW_LOG_DEBUG)) {                                                                            \
            lw_log(LW_LOG_DEBUG, __VA_ARGS__);                                                                         \
        }                                                                                                              \
    } while (0)

#endif
