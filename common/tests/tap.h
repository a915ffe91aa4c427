/* SPDX-License-Identifier: MIT */
/* A minimal TAP producer for the unit tests: ok/not ok lines and a plan at the end. */
#ifndef LW_TESTS_TAP_H
#define LW_TESTS_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

#define TAP_OK(cond, ...)                                                                                              \
    do {                                                                                                               \
        int tap_ok_ = (cond) ? 1 : 0;                                                                                  \
        tap_n++;                                                                                                       \
        if (tap_ok_) {                                                                                                 \
            printf("ok %d - ", tap_n);                                                                                 \
        } else {                                                                                                       \
            tap_failed++;                                                                                              \
            printf("not ok %d - ", tap_n);                                                                             \
        }                                                                                                              \
        printf(__VA_ARGS__);                                                                                           \
        printf("\n");                                                                                                  \
        if (!tap_ok_) {                                                                                                \
            printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);                                           \
        }                                                                                                              \
    } while (0)

#define TAP_EQ_INT(a, b, ...)                                                                                          \
    do {                                                                                                               \
        long long tap_a_ = (long long)(a), tap_b_ = (long long)(b);                                                    \
        TAP_OK(tap_a_ == tap_b_, __VA_ARGS__);                                                                         \
        if (tap_a_ != tap_b_) {                                                                                        \
            printf("#   got %lld, want %lld\n", tap_a_, tap_b_);                                                       \
        }                                                                                                              \
    } while (0)

#define TAP_EQ_MEM(p, n, s, ...) TAP_OK((n) == strlen(s) && memcmp((p), (s), (n)) == 0, __VA_ARGS__)

static inline int tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif
