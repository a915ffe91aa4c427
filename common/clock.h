/* SPDX-License-Identifier: MIT */
/* Monotonic and wall-clock time in the units the code speaks (ms, us). */
#ifndef LW_COMMON_CLOCK_H
#define LW_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t lw_time_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline uint64_t lw_time_mono_ms(void)
{
    return lw_time_mono_us() / 1000u;
}

#endif
