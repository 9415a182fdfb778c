/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Password guessing: per source address, a delay that grows with each
 * wrong password. After n failures (n >= 1) the next answer from the
 * server to that source waits until GUARD_BASE_USEC << (n - 1) (at most
 * GUARD_MAX_USEC) after the last failure. A right password forgets the
 * source; so does GUARD_FORGET_USEC without a failure.
 *
 * The table is bounded (GUARD_SOURCES): when it is full, the source whose
 * last failure is oldest is forgotten. Times are CLOCK_MONOTONIC usec,
 * passed in so that the logic is testable without waiting.
 */

#include <stddef.h>
#include <stdint.h>

#define GUARD_SOURCES 256
#define GUARD_SOURCE_MAX 64
#define GUARD_BASE_USEC (500ULL * 1000ULL)
#define GUARD_MAX_USEC (60ULL * 1000000ULL)
#define GUARD_FORGET_USEC (15ULL * 60ULL * 1000000ULL)

typedef struct GuardEntry {
        char source[GUARD_SOURCE_MAX];
        unsigned failures;
        uint64_t last_failure;
} GuardEntry;

typedef struct Guard {
        GuardEntry entries[GUARD_SOURCES];
} Guard;

/* The delay after n failures (0 for n == 0). */
uint64_t guard_delay_for(unsigned failures);
/* When the next answer to source may be given: 0 if at once. */
uint64_t guard_next_allowed(Guard *g, const char *source, uint64_t now);
/* Records a wrong password; returns the number of failures from source so far. */
unsigned guard_failure(Guard *g, const char *source, uint64_t now);
/* A right password: the source starts afresh. */
void guard_success(Guard *g, const char *source);
