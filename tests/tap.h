/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A minimal TAP producer for the C unit tests (meson runs them with
 * protocol: 'tap'). Each check prints "ok N - what" or "not ok N - what"
 * with the values that disagreed, so a failure names itself.
 */

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static unsigned tap_count, tap_failed;

static inline bool tap_check(bool ok, const char *file, int line, const char *what) {
        tap_count++;
        if (!ok)
                tap_failed++;
        printf("%sok %u - %s", ok ? "" : "not ", tap_count, what);
        if (!ok)
                printf(" (%s:%d)", file, line);
        printf("\n");
        return ok;
}

#define CHECK(cond, ...)                                                        \
        do {                                                                    \
                char _what[256];                                                \
                snprintf(_what, sizeof(_what), __VA_ARGS__);                    \
                tap_check(!!(cond), __FILE__, __LINE__, _what);                 \
        } while (0)

#define CHECK_EQ_U64(got, want, ...)                                            \
        do {                                                                    \
                uint64_t _g = (uint64_t) (got), _w = (uint64_t) (want);         \
                char _what[256];                                                \
                snprintf(_what, sizeof(_what), __VA_ARGS__);                    \
                if (!tap_check(_g == _w, __FILE__, __LINE__, _what))            \
                        printf("#   got 0x%" PRIx64 ", want 0x%" PRIx64 "\n", _g, _w); \
        } while (0)

/* Call last from main(): prints the plan and returns the exit status. */
static inline int tap_finish(void) {
        printf("1..%u\n", tap_count);
        return tap_failed ? 1 : 0;
}
