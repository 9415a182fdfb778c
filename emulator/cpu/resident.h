/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * How much of a table is resident: its pages the process has touched
 * (mincore). For the memory report ORRERY_JIT_STATS prints, which splits
 * the anonymous memory /proc/PID/smaps shows as one block into the
 * emulator's own tables.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

static inline size_t resident_bytes(const void *p, size_t len) {
        size_t page = (size_t) sysconf(_SC_PAGESIZE);
        uintptr_t start = (uintptr_t) p & ~(uintptr_t) (page - 1);
        uintptr_t end = ((uintptr_t) p + len + page - 1) & ~(uintptr_t) (page - 1);
        size_t n = 0;
        unsigned char vec[256];

        for (uintptr_t a = start; a < end; a += sizeof(vec) * page) {
                size_t chunk = (size_t) (end - a) < sizeof(vec) * page ? (size_t) (end - a) : sizeof(vec) * page;
                if (mincore((void *) a, chunk, vec) < 0)
                        return 0;
                for (size_t i = 0; i < (chunk + page - 1) / page; i++)
                        n += vec[i] & 1;
        }
        return n * page;
}
