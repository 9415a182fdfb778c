/* SPDX-License-Identifier: MIT */
#pragma once

/* Reading a clock as one number, as sd-event and sd-bus count time. */

#include <stdint.h>
#include <time.h>

#define NSEC_PER_SEC 1000000000ULL
#define NSEC_PER_USEC 1000ULL
#define USEC_PER_SEC 1000000ULL
#define USEC_PER_MSEC 1000ULL

/* The clock in nanoseconds (0 for a clock the kernel does not have, which never happens for these). */
static inline uint64_t now_nsec(clockid_t clock) {
        struct timespec ts;

        if (clock_gettime(clock, &ts) < 0)
                return 0;
        return (uint64_t) ts.tv_sec * NSEC_PER_SEC + (uint64_t) ts.tv_nsec;
}

/* The clock in microseconds: sd_event_now()'s unit. */
static inline uint64_t now_usec(clockid_t clock) {
        return now_nsec(clock) / NSEC_PER_USEC;
}
