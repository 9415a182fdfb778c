/* SPDX-License-Identifier: MIT */

/* The state stream's writer (stream-out.h). */

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migration/stream-out.h"
#include "macro.h"

#define STREAM_OUT_BUFFER (256u * 1024u)

int stream_out_init(StreamOut *o, int fd, int cancel_fd, int stall_msec) {
        *o = (StreamOut) { .fd = fd, .cancel_fd = cancel_fd, .stall_msec = stall_msec };
        o->buf = malloc(STREAM_OUT_BUFFER);
        if (!o->buf)
                return -ENOMEM;
        crc32_init(&o->crc);
        return 0;
}

void stream_out_done(StreamOut *o) {
        o->buf = mfree(o->buf);
}

int stream_wait_fd(int fd, short events, int cancel_fd, int stall_msec) {
        struct pollfd p[2] = {
                { .fd = fd, .events = events },
                { .fd = cancel_fd, .events = POLLIN },
        };

        for (;;) {
                int n = poll(p, cancel_fd >= 0 ? 2 : 1, stall_msec);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ETIMEDOUT;
                if (cancel_fd >= 0 && p[1].revents)
                        return -ECANCELED;
                return 0;
        }
}

static bool cancelled(const StreamOut *o) {
        struct pollfd p = { .fd = o->cancel_fd, .events = POLLIN };
        return o->cancel_fd >= 0 && poll(&p, 1, 0) > 0;
}

void stream_out_flush(StreamOut *o) {
        size_t done = 0;

        while (!o->error && done < o->n) {
                ssize_t k = write(o->fd, o->buf + done, o->n - done);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && errno == EAGAIN) {
                        o->error = stream_wait_fd(o->fd, POLLOUT, o->cancel_fd, o->stall_msec);
                        continue;
                }
                if (k < 0)
                        o->error = -errno;
                else if (k == 0)
                        o->error = -EIO;
                else
                        done += (size_t) k;
        }
        o->n = 0;
        if (!o->error && cancelled(o))
                o->error = -ECANCELED;
}

void stream_out_bytes(StreamOut *o, const void *p, size_t n) {
        const uint8_t *b = p;

        if (o->error)
                return;
        o->total += n;
        while (n > 0 && !o->error) {
                size_t k = MIN(n, STREAM_OUT_BUFFER - o->n);
                memcpy(o->buf + o->n, b, k);
                /* Over the copy: a guest page may change meanwhile, and the reader checks what was sent. */
                crc32_update(&o->crc, o->buf + o->n, k);
                o->n += k;
                b += k;
                n -= k;
                if (o->n == STREAM_OUT_BUFFER)
                        stream_out_flush(o);
        }
}

void stream_out_le(StreamOut *o, uint64_t v, unsigned n) {
        uint8_t b[8];

        for (unsigned i = 0; i < n; i++)
                b[i] = (uint8_t) (v >> (8 * i));
        stream_out_bytes(o, b, n);
}
