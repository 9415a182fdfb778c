/* SPDX-License-Identifier: MIT */

/* Live migration, the receiving side (incoming.h). */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "block/image.h"
#include "migration/incoming.h"
#include "migration/savevm-internal.h"
#include "migration/savevm.h"
#include "macro.h"

#define IN_BUFFER (256u * 1024u)
/* The source re-sends pages it saw dirtied; beyond this many times RAM the stream is not a migration. */
#define STREAM_BOUND_FACTOR 64u
#define GO_TIMEOUT_USEC (30ULL * 1000000ULL)

struct Incoming {
        sd_event *event;
        Machine *machine;
        IncomingDone done;
        void *userdata;

        int listen_fd;
        char *unix_path;                /* unlinked once a source connected */
        int fd;                         /* the connection */
        sd_event_source *listen_source;
        sd_event_source *fd_source;
        sd_event_source *thread_source;
        sd_event_source *go_timer;
        int thread_fd;                  /* eventfd: the reader thread finished */
        pthread_t thread;
        bool thread_started;
        bool finished;                  /* 'done' was called */

        /* Written by the reader thread, read after it finished. */
        int result;
        char error[512];
        uint8_t *buf;
        size_t buf_pos, buf_len;
        Crc32 crc;
        uint64_t total, bound;
        StateWriter state;              /* the devices' state as received */
        uint64_t ticks;
        bool running;
};

static void finish(Incoming *in, int r, const char *error) {
        if (in->finished)
                return;
        in->finished = true;
        in->go_timer = sd_event_source_disable_unref(in->go_timer);
        in->fd_source = sd_event_source_disable_unref(in->fd_source);
        in->done(in, r, error, in->userdata);
}

/* ---- the reader thread ---- */

/* The next at most n bytes of the stream, in the buffer (refilled when empty); counts them against the bound. */
static int in_next(Incoming *in, size_t n, const uint8_t **ret, size_t *ret_len) {
        while (in->buf_pos == in->buf_len) {
                ssize_t k = read(in->fd, in->buf, IN_BUFFER);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -ECONNRESET;
                in->buf_pos = 0;
                in->buf_len = (size_t) k;
        }
        *ret = in->buf + in->buf_pos;
        *ret_len = MIN(n, in->buf_len - in->buf_pos);
        in->buf_pos += *ret_len;
        return 0;
}

/*
 * Reads n bytes into 'out', or when it is NULL into guest RAM at
 * 'ram_offset' (through the RAM memfd), adding them to the checksum unless
 * 'trailer'.
 */
static int in_read_to(Incoming *in, uint8_t *out, uint64_t ram_offset, size_t n, bool trailer) {
        if (n > in->bound - in->total)
                return -EFBIG;
        in->total += n;
        while (n > 0) {
                const uint8_t *chunk = NULL;
                size_t k = 0;
                int r = in_next(in, n, &chunk, &k);

                if (r < 0)
                        return r;
                if (!trailer)
                        crc32_update(&in->crc, chunk, k);
                if (out) {
                        memcpy(out, chunk, k);
                        out += k;
                } else {
                        savevm_ram_write(in->machine, ram_offset, chunk, k);
                        ram_offset += k;
                }
                n -= k;
        }
        return 0;
}

static int in_read(Incoming *in, void *p, size_t n, bool trailer) {
        return in_read_to(in, p, 0, n, trailer);
}

static int in_le(Incoming *in, unsigned n, uint64_t *ret) {
        uint8_t b[8];
        uint64_t v = 0;
        int r;

        r = in_read(in, b, n, false);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < n; i++)
                v |= (uint64_t) b[i] << (8 * i);
        *ret = v;
        return 0;
}

#define MALFORMED(what) (savevm_fail(in->error, sizeof(in->error), "the migration stream is malformed (%s)", what), -EBADMSG)

static int read_header(Incoming *in) {
        uint8_t magic[SAVEVM_MAGIC_SIZE];
        uint64_t version, flags, n, ticks;
        _cleanup_free_ uint8_t *header = NULL;
        int r;

        r = in_read(in, magic, sizeof(magic), false);
        if (r < 0)
                return r;
        if (memcmp(magic, SAVEVM_MAGIC, SAVEVM_MAGIC_SIZE) != 0)
                return savevm_fail(in->error, sizeof(in->error), "not an Orrery migration stream (no magic)"), -EBADMSG;
        if ((r = in_le(in, 4, &version)) < 0 || (r = in_le(in, 4, &flags)) < 0)
                return r;
        if (version != SAVEVM_VERSION || flags != SAVEVM_FLAG_LIVE)
                return savevm_fail(in->error, sizeof(in->error),
                                   "migration stream version %llu flags %llu is not supported (this build reads %u, live)",
                                   (unsigned long long) version, (unsigned long long) flags, SAVEVM_VERSION), -EBADMSG;
        if ((r = in_le(in, 8, &n)) < 0)
                return r;
        if (n > SAVEVM_HEADER_MAX)
                return MALFORMED("header size");
        header = malloc(n ? n : 1);
        if (!header)
                return -ENOMEM;
        r = in_read(in, header, n, false);
        if (r < 0)
                return r;
        StateReader h = state_reader(header, n);
        /* The images are shared with the source, which wrote them until now: identity is path and size. */
        r = savevm_check_header(in->machine, &h, true, &ticks, in->error, sizeof(in->error));
        if (r == -EBADMSG)
                return MALFORMED("machine configuration");
        if (r < 0)
                return r;
        /* The source sends only pages that hold something: the boot images placed here must go. */
        savevm_ram_zero(in->machine, 0, machine_memory_bytes(in->machine));
        return 0;
}

static int read_ram(Incoming *in) {
        uint64_t pages = machine_memory_bytes(in->machine) / SAVEVM_PAGE_SIZE;
        int r;

        for (;;) {
                uint64_t kind, first, count;

                if ((r = in_le(in, 1, &kind)) < 0)
                        return r;
                if (kind == SAVEVM_LIVE_END)
                        return 0;
                if (kind != SAVEVM_LIVE_PAGES && kind != SAVEVM_LIVE_ZEROS)
                        return MALFORMED("RAM record");
                if ((r = in_le(in, 8, &first)) < 0 || (r = in_le(in, 8, &count)) < 0)
                        return r;
                if (count == 0 || first >= pages || count > pages - first)
                        return MALFORMED("RAM record outside RAM");
                if (kind == SAVEVM_LIVE_ZEROS)
                        savevm_ram_zero(in->machine, first * SAVEVM_PAGE_SIZE, count * SAVEVM_PAGE_SIZE);
                else if ((r = in_read_to(in, NULL, first * SAVEVM_PAGE_SIZE, count * SAVEVM_PAGE_SIZE, false)) < 0)
                        return r;
        }
}

/* The framebuffer, as the source's guest left it. */
static int read_framebuffer(Incoming *in) {
        uint32_t w, h, stride;
        const uint8_t *fb = machine_framebuffer(in->machine, &w, &h, &stride);
        uint64_t n, want = fb ? (uint64_t) stride * h : 0;
        int r;

        if ((r = in_le(in, 8, &n)) < 0)
                return r;
        if (n != want)
                return MALFORMED("framebuffer size");
        for (uint64_t done = 0; done < n;) {
                size_t k = (size_t) MIN(n - done, (uint64_t) IN_BUFFER);
                _cleanup_free_ uint8_t *chunk = malloc(k);

                if (!chunk)
                        return -ENOMEM;
                if ((r = in_read(in, chunk, k, false)) < 0)
                        return r;
                r = machine_framebuffer_write(in->machine, done, chunk, k);
                if (r < 0)
                        return r;
                done += k;
        }
        return 0;
}

static int read_tail(Incoming *in) {
        uint8_t trailer[SAVEVM_MAGIC_SIZE + 4];
        uint64_t running, n;
        uint32_t want, crc;
        int r;

        r = read_framebuffer(in);
        if (r < 0)
                return r;
        if ((r = in_le(in, 8, &in->ticks)) < 0 || (r = in_le(in, 1, &running)) < 0 || (r = in_le(in, 8, &n)) < 0)
                return r;
        if (in->ticks > UINT64_MAX / 100 || running > 1)
                return MALFORMED("guest time");
        if (n > SAVEVM_STATE_MAX)
                return MALFORMED("device state size");
        in->running = running;
        in->state.data = malloc(n ? n : 1);
        if (!in->state.data)
                return -ENOMEM;
        in->state.allocated = n ? n : 1;
        in->state.size = n;
        r = in_read(in, in->state.data, n, false);
        if (r < 0)
                return r;
        crc = crc32_final(&in->crc);
        r = in_read(in, trailer, sizeof(trailer), true);
        if (r < 0)
                return r;
        if (memcmp(trailer, SAVEVM_END_MAGIC, SAVEVM_MAGIC_SIZE) != 0)
                return MALFORMED("no end marker");
        want = (uint32_t) trailer[8] | (uint32_t) trailer[9] << 8 | (uint32_t) trailer[10] << 16 |
               (uint32_t) trailer[11] << 24;
        if (crc != want)
                return savevm_fail(in->error, sizeof(in->error),
                                   "the migration stream is corrupted (checksum %08x, expected %08x)", crc, want),
                       -EBADMSG;
        return 0;
}

static void *reader_thread(void *userdata) {
        Incoming *in = userdata;
        int r;

        crc32_init(&in->crc);
        r = read_header(in);
        if (r >= 0)
                r = read_ram(in);
        if (r >= 0)
                r = read_tail(in);
        if (r == -ECONNRESET && !in->error[0])
                savevm_fail(in->error, sizeof(in->error), "the source closed the stream before its end");
        if (r == -EFBIG && !in->error[0])
                savevm_fail(in->error, sizeof(in->error), "the migration stream is larger than this VM can need");
        if (r < 0 && !in->error[0])
                savevm_fail(in->error, sizeof(in->error), "cannot read the migration stream: %s", strerror(-r));
        in->result = r;
        uint64_t one = 1;
        (void) !write(in->thread_fd, &one, sizeof(one));
        return NULL;
}

/* ---- the event loop ---- */

static int on_go_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        finish(userdata, -ETIMEDOUT, "the source did not hand the VM over in time");
        return 0;
}

static int on_go(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Incoming *in = userdata;
        char c = 0;
        ssize_t k = read(fd, &c, 1);

        if (k < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (k == 1 && c == SAVEVM_ACK_GO) {
                /* The source let go of the images: they are ours before the guest runs here. */
                for (size_t i = 0; i < machine_n_disks(in->machine); i++) {
                        BlockImage *img = machine_disk_image(in->machine, i);
                        int r = block_image_lock(img);
                        if (r < 0) {
                                snprintf(in->error, sizeof(in->error), "cannot take the lock of disk image '%s': %s",
                                         block_image_path(img), strerror(-r));
                                for (size_t j = 0; j < i; j++)
                                        block_image_unlock(machine_disk_image(in->machine, j));
                                finish(in, r, in->error);
                                return 0;
                        }
                }
                finish(in, 0, NULL);
        } else
                finish(in, -ECONNRESET, "the source gave the migration up after the stream");
        return 0;
}

static int on_thread_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Incoming *in = userdata;
        char loaded = SAVEVM_ACK_LOADED;
        int r;

        in->thread_source = sd_event_source_disable_unref(in->thread_source);
        pthread_join(in->thread, NULL);
        in->thread_started = false;
        if (in->result < 0) {
                finish(in, in->result, in->error);
                return 0;
        }

        /* The CPU thread has not started: the state goes straight in. */
        StateReader state = state_reader(in->state.data, in->state.size);
        r = machine_load_state(in->machine, &state);
        if (r < 0) {
                snprintf(in->error, sizeof(in->error), "the migrated device state is refused: %s", strerror(-r));
                finish(in, r == -ENOMEM ? r : -EBADMSG, in->error);
                return 0;
        }
        (void) machine_set_guest_ticks(in->machine, in->ticks);
        machine_set_start_paused(in->machine, !in->running);

        if (write(in->fd, &loaded, 1) != 1) {
                finish(in, -errno, "the source went away after the stream");
                return 0;
        }
        r = sd_event_add_io(in->event, &in->fd_source, in->fd, EPOLLIN, on_go, in);
        if (r >= 0)
                r = sd_event_add_time_relative(in->event, &in->go_timer, CLOCK_MONOTONIC, GO_TIMEOUT_USEC, 0,
                                               on_go_timeout, in);
        if (r < 0)
                finish(in, r, "cannot wait for the source's hand-over");
        return 0;
}

static int start_reader(Incoming *in) {
        int r;

        in->buf = malloc(IN_BUFFER);
        if (!in->buf)
                return -ENOMEM;
        /* The reader blocks in read(); incoming_free() ends it with shutdown(). */
        if (fcntl(in->fd, F_SETFL, fcntl(in->fd, F_GETFL) & ~O_NONBLOCK) < 0)
                return -errno;
        in->thread_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (in->thread_fd < 0)
                return -errno;
        r = sd_event_add_io(in->event, &in->thread_source, in->thread_fd, EPOLLIN, on_thread_done, in);
        if (r < 0)
                return r;
        r = -pthread_create(&in->thread, NULL, reader_thread, in);
        if (r < 0)
                return r;
        in->thread_started = true;
        return 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Incoming *in = userdata;
        int c, r;

        c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
                return 0;       /* the peer left already: keep waiting */
        /* One stream per process: nobody else gets in. */
        in->listen_source = sd_event_source_disable_unref(in->listen_source);
        in->listen_fd = safe_close(in->listen_fd);
        if (in->unix_path)
                (void) unlink(in->unix_path);
        in->fd = c;
        r = start_reader(in);
        if (r < 0)
                finish(in, r, "cannot start reading the migration stream");
        return 0;
}

static int listen_on(Incoming *in, const char *uri, char *error, size_t error_size) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (strncmp(uri, "unix:", 5) == 0) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                const char *path = uri + 5;

                if (!*path || strlen(path) >= sizeof(sa.sun_path))
                        return savevm_fail(error, error_size, "invalid socket path in '%s'", uri), -EINVAL;
                memcpy(sa.sun_path, path, strlen(path));
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
                        r = -errno;
                        return savevm_fail(error, error_size, "cannot listen on %s: %s", uri, strerror(-r)), r;
                }
                in->unix_path = strdup(path);
                if (!in->unix_path)
                        return -ENOMEM;
        } else if (strncmp(uri, "tcp:", 4) == 0) {
                struct sockaddr_in sa = { .sin_family = AF_INET };
                char host[INET_ADDRSTRLEN];
                const char *colon = strrchr(uri + 4, ':');
                char *end;
                unsigned long port;
                int one = 1;

                if (!colon || (size_t) (colon - (uri + 4)) >= sizeof(host))
                        return savevm_fail(error, error_size, "invalid '%s': expected tcp:ADDRESS:PORT", uri), -EINVAL;
                memcpy(host, uri + 4, (size_t) (colon - (uri + 4)));
                host[colon - (uri + 4)] = 0;
                port = strtoul(colon + 1, &end, 10);
                if (!colon[1] || *end || port == 0 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
                        return savevm_fail(error, error_size, "invalid '%s': expected tcp:ADDRESS:PORT", uri), -EINVAL;
                sa.sin_port = htons((uint16_t) port);
                fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (fd >= 0)
                        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
                        r = -errno;
                        return savevm_fail(error, error_size, "cannot listen on %s: %s", uri, strerror(-r)), r;
                }
        } else if (strncmp(uri, "fd:", 3) == 0) {
                char *end;
                long v = strtol(uri + 3, &end, 10);

                if (!uri[3] || *end || v < 0 || v > INT32_MAX)
                        return savevm_fail(error, error_size, "invalid '%s': expected fd:N", uri), -EINVAL;
                in->fd = (int) v;
                r = start_reader(in);
                if (r < 0)
                        return savevm_fail(error, error_size, "cannot read %s: %s", uri, strerror(-r)), r;
                return 0;
        } else
                return savevm_fail(error, error_size,
                                   "invalid --incoming '%s': expected unix:PATH, tcp:ADDRESS:PORT or fd:N", uri), -EINVAL;

        r = sd_event_add_io(in->event, &in->listen_source, fd, EPOLLIN, on_accept, in);
        if (r < 0)
                return savevm_fail(error, error_size, "cannot wait on %s: %s", uri, strerror(-r)), r;
        in->listen_fd = TAKE_FD(fd);
        return 0;
}

int incoming_new(sd_event *event, Machine *m, const char *uri, IncomingDone done, void *userdata, Incoming **ret,
                 char *error, size_t error_size) {
        const char *drive;
        Incoming *in;
        uint64_t size;
        int r;

        drive = savevm_snapshot_drive(m);
        if (drive) {
                savevm_fail(error, error_size,
                            "drive '%s' is snapshot=on: its overlay stays with the source, so the VM cannot move here",
                            drive);
                return -EOPNOTSUPP;
        }
        in = calloc(1, sizeof(*in));
        if (!in)
                return -ENOMEM;
        *in = (Incoming) {
                .event = sd_event_ref(event),
                .machine = m,
                .done = done,
                .userdata = userdata,
                .listen_fd = -EBADF,
                .fd = -EBADF,
                .thread_fd = -EBADF,
        };
        (void) machine_ram(m, &size);
        in->bound = size * STREAM_BOUND_FACTOR + SAVEVM_HEADER_MAX + SAVEVM_STATE_MAX + 4096;
        r = listen_on(in, uri, error, error_size);
        if (r < 0) {
                incoming_free(in);
                return r;
        }
        *ret = in;
        return 0;
}

Incoming *incoming_free(Incoming *in) {
        if (!in)
                return NULL;
        if (in->thread_started) {
                /* Ends the reader's blocking read. */
                (void) shutdown(in->fd, SHUT_RDWR);
                pthread_join(in->thread, NULL);
        }
        sd_event_source_disable_unref(in->listen_source);
        sd_event_source_disable_unref(in->fd_source);
        sd_event_source_disable_unref(in->thread_source);
        sd_event_source_disable_unref(in->go_timer);
        if (in->listen_fd >= 0 && in->unix_path)
                (void) unlink(in->unix_path);
        safe_close(in->listen_fd);
        safe_close(in->fd);
        safe_close(in->thread_fd);
        sd_event_unref(in->event);
        state_writer_done(&in->state);
        free(in->unix_path);
        free(in->buf);
        free(in);
        return NULL;
}

bool incoming_guest_was_running(Incoming *in) {
        return in->running;
}

void incoming_running(Incoming *in) {
        char c = SAVEVM_ACK_RUNNING;

        if (in->fd >= 0)
                (void) !write(in->fd, &c, 1);
        in->fd_source = sd_event_source_disable_unref(in->fd_source);
        in->fd = safe_close(in->fd);
}
