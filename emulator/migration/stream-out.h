/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The buffered, checksummed writer of a state stream: what a save
 * (savevm.c) and a live migration (migrate.c) both write through. The
 * first error sticks: later writes do nothing, so a writer checks it once
 * at the end. Used by one thread at a time.
 */

#include <stddef.h>
#include <stdint.h>

#include "migration/savevm-internal.h"

typedef struct StreamOut {
        int fd;                 /* may be non-blocking: a full socket is waited for */
        int cancel_fd;          /* readable: stop with -ECANCELED; -1 for none */
        int stall_msec;         /* a reader that takes nothing for this long is gone: -ETIMEDOUT */
        uint8_t *buf;
        size_t n;
        uint64_t total;         /* bytes written through it so far */
        Crc32 crc;              /* of every byte written through it */
        int error;              /* the first negative errno, or 0 */
} StreamOut;

/* Sets 'o' up for 'fd' (not taken); -ENOMEM. */
int stream_out_init(StreamOut *o, int fd, int cancel_fd, int stall_msec);
void stream_out_done(StreamOut *o);

void stream_out_bytes(StreamOut *o, const void *p, size_t n);
/* v as n little-endian bytes. */
void stream_out_le(StreamOut *o, uint64_t v, unsigned n);
/* Writes what is buffered; then a cancel is seen even if nothing failed. */
void stream_out_flush(StreamOut *o);

/*
 * Waits until fd is ready for 'events': 0, -ECANCELED once cancel_fd (if
 * not -1) is readable, -ETIMEDOUT after stall_msec.
 */
int stream_wait_fd(int fd, short events, int cancel_fd, int stall_msec);
