/* SPDX-License-Identifier: MIT */

/* Live migration, the sending side (migrate.h). */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "block/image.h"
#include "migration/migrate.h"
#include "migration/savevm-internal.h"
#include "migration/savevm.h"
#include "migration/stream-out.h"
#include "macro.h"
#include "time-util.h"

/* A destination that takes nothing (or says nothing) for this long is gone. */
#define STALL_MSEC 30000
#define REQUEST_TIMEOUT_USEC (5ULL * 1000000ULL)
/* Pages per record: bounded so progress moves and cancel is seen often. */
#define RUN_MAX_PAGES 256u
#define PROGRESS_EVERY_BYTES (8ULL << 20)

struct Migration {
        Machine *machine;
        int fd;
        int notify_fd;                  /* eventfd: status or progress changed */
        int cancel_fd;                  /* eventfd: migration_cancel() */
        pthread_t thread;
        bool thread_started;
        uint64_t downtime_limit_msec;

        /* 'lock' guards what the getters read; the rest belongs to the thread. */
        pthread_mutex_t lock;
        MigrationStatus status;
        MigrationProgress progress;
        char error[512];

        StreamOut out;                  /* out.total: bytes sent */
        uint64_t reported;
        uint64_t *pending;              /* pages still to send, one bit each */
        size_t words;
        uint64_t pages;
        uint8_t *ram;
        bool paused_here;
        bool disks_released;            /* the destination may take the image locks */

        /*
         * The final snapshot, taken on the event-loop thread (guarded by
         * 'lock', with 'snapshot_cond'): the devices run there (network
         * frames, console input, disk completions all write guest RAM), so
         * only there are the last dirty pages, the devices' state and the
         * guest's time one consistent instant. What the devices do after it
         * no longer matters: this process either hands the guest over or,
         * on failure, resumes it from where it is.
         */
        pthread_cond_t snapshot_cond;
        bool snapshot_wanted;
        bool snapshot_done;
        int snapshot_error;
        StateWriter snapshot_state;
        uint64_t snapshot_ticks;
        uint8_t *snapshot_pages;        /* the pending pages' contents, in page order */
        uint8_t *snapshot_fb;
        uint64_t snapshot_fb_size;
        void (*on_final)(void *userdata);
        void *userdata;
};

const char *migration_status_to_string(MigrationStatus s) {
        switch (s) {
        case MIGRATION_ACTIVE:
                return "active";
        case MIGRATION_COMPLETED:
                return "completed";
        case MIGRATION_FAILED:
                return "failed";
        default:
                return "none";
        }
}

static void notify(Migration *mg) {
        uint64_t one = 1;
        (void) !write(mg->notify_fd, &one, sizeof(one));
}

_printf_(2, 3) static void set_error(Migration *mg, const char *format, ...) {
        va_list ap;

        pthread_mutex_lock(&mg->lock);
        if (!mg->error[0]) {
                va_start(ap, format);
                vsnprintf(mg->error, sizeof(mg->error), format, ap);
                va_end(ap);
        }
        pthread_mutex_unlock(&mg->lock);
}

static bool cancelled(Migration *mg) {
        struct pollfd p = { .fd = mg->cancel_fd, .events = POLLIN };
        return poll(&p, 1, 0) > 0;
}

static void report(Migration *mg, uint64_t dirty, uint64_t downtime_msec, bool round) {
        pthread_mutex_lock(&mg->lock);
        mg->progress.bytes_sent = mg->out.total;
        if (dirty != UINT64_MAX)
                mg->progress.dirty_pages = dirty;
        if (downtime_msec != UINT64_MAX)
                mg->progress.expected_downtime_msec = downtime_msec;
        if (round)
                mg->progress.rounds++;
        pthread_mutex_unlock(&mg->lock);
        mg->reported = mg->out.total;
        notify(mg);
}

/* ---- the stream ---- */

/* Reads the destination's one-byte answer. */
static int read_ack(Migration *mg, char want) {
        for (;;) {
                char c;
                ssize_t k = read(mg->fd, &c, 1);
                if (k == 1)
                        return c == want ? 0 : -EPROTO;
                if (k == 0)
                        return -ECONNRESET;
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return -errno;
                int r = stream_wait_fd(mg->fd, POLLIN, mg->cancel_fd, STALL_MSEC);
                if (r < 0)
                        return r;
        }
}

/* ---- RAM ---- */

static bool pending_test(const Migration *mg, uint64_t page) {
        return mg->pending[page / 64] >> (page % 64) & 1;
}

/* Round 0: every page that holds something (the destination's RAM starts as zeroes). */
static void pending_all_data(Migration *mg) {
        int fd = machine_ram_fd(mg->machine);
        uint64_t first, end;

        for (uint64_t p = 0; p < mg->pages; p = end) {
                savevm_ram_data_range(fd, p, mg->pages, &first, &end);
                for (p = first; p < end; p++)
                        if (!savevm_page_is_zero(mg->ram + p * SAVEVM_PAGE_SIZE))
                                mg->pending[p / 64] |= 1ULL << (p % 64);
        }
}

/* Adds what the guest and devices dirtied since the last take; returns how many pages are pending. */
static uint64_t pending_take_dirty(Migration *mg) {
        uint64_t count = 0;

        for (size_t w = 0; w < mg->words; w++) {
                mg->pending[w] |= machine_dirty_take(mg->machine, w);
                count += (uint64_t) __builtin_popcountll(mg->pending[w]);
        }
        return count;
}

/* Sends every pending page, as runs; clears them. */
static void send_pending(Migration *mg, const uint8_t *copy) {
        /* From RAM, or (copy) from the snapshot's pages, which hold the pending pages in page order. */
        for (uint64_t p = 0; p < mg->pages && !mg->out.error;) {
                if (!mg->pending[p / 64]) {
                        p = (p / 64 + 1) * 64;
                        continue;
                }
                if (!pending_test(mg, p)) {
                        p++;
                        continue;
                }
                uint64_t first = p;
                while (p < mg->pages && p - first < RUN_MAX_PAGES && pending_test(mg, p)) {
                        mg->pending[p / 64] &= ~(1ULL << (p % 64));
                        p++;
                }
                size_t bytes = (p - first) * SAVEVM_PAGE_SIZE;
                stream_out_le(&mg->out, SAVEVM_LIVE_PAGES, 1);
                stream_out_le(&mg->out, first, 8);
                stream_out_le(&mg->out, p - first, 8);
                if (copy) {
                        stream_out_bytes(&mg->out, copy, bytes);
                        copy += bytes;
                } else
                        stream_out_bytes(&mg->out, mg->ram + first * SAVEVM_PAGE_SIZE, bytes);
                if (mg->out.total - mg->reported >= PROGRESS_EVERY_BYTES)
                        report(mg, UINT64_MAX, UINT64_MAX, false);
        }
}

/* ---- the thread ---- */

/* Pre-copy while the guest runs; returns with the pages that are left pending. */
static int precopy(Migration *mg) {
        uint64_t rate, start, bytes;
        int r;

        r = machine_dirty_start(mg->machine, REQUEST_TIMEOUT_USEC);
        if (r < 0) {
                set_error(mg, "cannot start tracking dirty pages: %s", strerror(-r));
                return r;
        }
        start = now_usec(CLOCK_MONOTONIC);
        bytes = mg->out.total;
        pending_all_data(mg);
        send_pending(mg, NULL);
        stream_out_flush(&mg->out);
        rate = (mg->out.total - bytes) * 1000000 / MAX(now_usec(CLOCK_MONOTONIC) - start, (uint64_t) 1);

        for (unsigned round = 1;; round++) {
                if (mg->out.error)
                        return mg->out.error;
                uint64_t dirty = pending_take_dirty(mg);
                /* Stores through entries made before the take land before the pages are read. */
                r = machine_dirty_sync(mg->machine, REQUEST_TIMEOUT_USEC);
                if (r < 0) {
                        set_error(mg, "the CPU did not answer in time: %s", strerror(-r));
                        return r;
                }
                rate = MAX(rate, (uint64_t) 1 << 20);
                uint64_t downtime = dirty * SAVEVM_PAGE_SIZE * 1000 / rate;
                report(mg, dirty, downtime, true);
                if (downtime <= mg->downtime_limit_msec || round >= MIGRATION_MAX_ROUNDS)
                        return 0;
                start = now_usec(CLOCK_MONOTONIC);
                bytes = mg->out.total;
                send_pending(mg, NULL);
                stream_out_flush(&mg->out);
                rate = (mg->out.total - bytes) * 1000000 / MAX(now_usec(CLOCK_MONOTONIC) - start, (uint64_t) 1);
        }
}

/*
 * On the event-loop thread, asked for by wait_snapshot(): the pending pages
 * (copied), the framebuffer, the guest's time and the devices' state, all
 * as of this instant. The CPU is paused.
 */
static void take_snapshot(Migration *mg) {
        uint64_t count, fb_size;
        uint32_t fb_w, fb_h, stride;
        const uint8_t *fb;
        int r = 0;

        /* First: what it changes in the guest (keys released) belongs in the state taken below. */
        if (mg->on_final)
                mg->on_final(mg->userdata);
        machine_drain_io(mg->machine);
        /* The CPU is paused: nothing it stored is still on its way. */
        count = pending_take_dirty(mg);
        if (count > 0) {
                mg->snapshot_pages = malloc(count * SAVEVM_PAGE_SIZE);
                if (!mg->snapshot_pages)
                        r = -ENOMEM;
                uint8_t *out = mg->snapshot_pages;
                for (uint64_t p = 0; r >= 0 && p < mg->pages; p++)
                        if (pending_test(mg, p)) {
                                memcpy(out, mg->ram + p * SAVEVM_PAGE_SIZE, SAVEVM_PAGE_SIZE);
                                out += SAVEVM_PAGE_SIZE;
                        }
        }
        /* The screen as the guest left it: a console that does not redraw would stay black otherwise. */
        fb = machine_framebuffer(mg->machine, &fb_w, &fb_h, &stride);
        fb_size = fb ? (uint64_t) stride * fb_h : 0;
        if (r >= 0 && fb_size > 0) {
                mg->snapshot_fb = malloc(fb_size);
                if (mg->snapshot_fb) {
                        memcpy(mg->snapshot_fb, fb, fb_size);
                        mg->snapshot_fb_size = fb_size;
                } else
                        r = -ENOMEM;
        }
        mg->snapshot_ticks = machine_guest_ticks(mg->machine);
        if (r >= 0)
                r = machine_save_state(mg->machine, &mg->snapshot_state);
        mg->snapshot_error = r;
        mg->snapshot_done = true;
}

/* Asks the event loop for the final snapshot and waits for it, or for cancel. */
static int wait_snapshot(Migration *mg) {
        int r;

        pthread_mutex_lock(&mg->lock);
        mg->snapshot_wanted = true;
        pthread_mutex_unlock(&mg->lock);
        notify(mg);

        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + REQUEST_TIMEOUT_USEC;
        pthread_mutex_lock(&mg->lock);
        while (!mg->snapshot_done) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 20 * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000L;
                }
                (void) pthread_cond_timedwait(&mg->snapshot_cond, &mg->lock, &ts);
                if (mg->snapshot_done)
                        break;
                if (cancelled(mg) || now_usec(CLOCK_MONOTONIC) > deadline) {
                        /* The event loop must not take it after we gave up. */
                        mg->snapshot_wanted = false;
                        pthread_mutex_unlock(&mg->lock);
                        if (cancelled(mg))
                                return -ECANCELED;
                        set_error(mg, "the event loop did not answer in time");
                        return -ETIMEDOUT;
                }
        }
        r = mg->snapshot_error;
        pthread_mutex_unlock(&mg->lock);
        if (r < 0)
                set_error(mg, "cannot take the final state: %s", strerror(-r));
        return r;
}

/* The guest paused: the rest of RAM, time and state, then the trailer. */
static int stop_and_copy(Migration *mg) {
        bool running;
        int r;

        running = machine_get_state(mg->machine) == MACHINE_RUNNING;
        if (running) {
                r = machine_request_wait(mg->machine, MACHINE_REQUEST_PAUSE, REQUEST_TIMEOUT_USEC);
                if (r < 0 || machine_get_state(mg->machine) != MACHINE_PAUSED) {
                        set_error(mg, "the VM did not pause in time");
                        return r < 0 ? r : -ESHUTDOWN;
                }
                mg->paused_here = true;
        } else if (machine_get_state(mg->machine) != MACHINE_PAUSED) {
                set_error(mg, "the VM is shutting down");
                return -ESHUTDOWN;
        }
        r = wait_snapshot(mg);
        if (r < 0)
                return r;
        report(mg, 0, UINT64_MAX, false);
        send_pending(mg, mg->snapshot_pages);
        stream_out_le(&mg->out, SAVEVM_LIVE_END, 1);
        stream_out_le(&mg->out, mg->snapshot_fb_size, 8);
        if (mg->snapshot_fb_size > 0)
                stream_out_bytes(&mg->out, mg->snapshot_fb, mg->snapshot_fb_size);
        stream_out_le(&mg->out, mg->snapshot_ticks, 8);
        stream_out_le(&mg->out, running, 1);
        stream_out_le(&mg->out, mg->snapshot_state.size, 8);
        stream_out_bytes(&mg->out, mg->snapshot_state.data, mg->snapshot_state.size);
        uint32_t crc = crc32_final(&mg->out.crc);
        stream_out_bytes(&mg->out, SAVEVM_END_MAGIC, SAVEVM_MAGIC_SIZE);
        stream_out_le(&mg->out, crc, 4);
        stream_out_flush(&mg->out);
        report(mg, 0, UINT64_MAX, false);
        return mg->out.error;
}

static int run_migration(Migration *mg) {
        StateWriter header = {};
        uint64_t size;
        int r;

        mg->ram = machine_ram(mg->machine, &size);
        mg->pages = size / SAVEVM_PAGE_SIZE;
        mg->words = (size_t) ((mg->pages + 63) / 64);
        mg->pending = calloc(mg->words, sizeof(uint64_t));
        if (!mg->pending || stream_out_init(&mg->out, mg->fd, mg->cancel_fd, STALL_MSEC) < 0) {
                set_error(mg, "out of memory");
                return -ENOMEM;
        }
        r = savevm_describe(mg->machine, &header, mg->error, sizeof(mg->error));
        if (r < 0) {
                state_writer_done(&header);
                set_error(mg, "cannot describe the machine: %s", strerror(-r));
                return r;
        }
        stream_out_bytes(&mg->out, SAVEVM_MAGIC, SAVEVM_MAGIC_SIZE);
        stream_out_le(&mg->out, SAVEVM_VERSION, 4);
        stream_out_le(&mg->out, SAVEVM_FLAG_LIVE, 4);
        stream_out_le(&mg->out, header.size, 8);
        stream_out_bytes(&mg->out, header.data, header.size);
        state_writer_done(&header);

        r = precopy(mg);
        if (r >= 0)
                r = stop_and_copy(mg);
        if (r >= 0)
                r = read_ack(mg, SAVEVM_ACK_LOADED);
        if (r == -ECONNRESET || r == -EPROTO)
                set_error(mg, "the destination refused the stream (see its log)");
        if (r >= 0) {
                char go = SAVEVM_ACK_GO;

                /* The destination has it all: its disks are flushed, and their locks are for it to take. */
                for (size_t i = 0; i < machine_n_disks(mg->machine); i++) {
                        (void) block_image_flush(machine_disk_image(mg->machine, i));
                        block_image_unlock(machine_disk_image(mg->machine, i));
                }
                mg->disks_released = true;
                r = write(mg->fd, &go, 1) == 1 ? 0 : -errno;
        }
        if (r >= 0) {
                r = read_ack(mg, SAVEVM_ACK_RUNNING);
                if (r < 0)
                        set_error(mg, "the destination did not take the VM over: %s", strerror(-r));
        }
        return r;
}

static void *migration_thread(void *userdata) {
        Migration *mg = userdata;
        int r;

        r = run_migration(mg);
        machine_dirty_stop(mg->machine);
        if (r < 0) {
                if (r == -ECANCELED)
                        set_error(mg, "cancelled");
                set_error(mg, "%s", strerror(-r));
                (void) shutdown(mg->fd, SHUT_RDWR);
                bool relocked = true;
                for (size_t i = 0; mg->disks_released && i < machine_n_disks(mg->machine); i++)
                        if (block_image_lock(machine_disk_image(mg->machine, i)) < 0)
                                relocked = false;
                if (!relocked) {
                        /* Someone took an image meanwhile: running the guest here could corrupt it. */
                        pthread_mutex_lock(&mg->lock);
                        snprintf(mg->error, sizeof(mg->error),
                                 "the destination failed after taking a disk image; the VM stays paused here");
                        pthread_mutex_unlock(&mg->lock);
                } else if (mg->paused_here)
                        (void) machine_request_wait(mg->machine, MACHINE_REQUEST_RESUME, REQUEST_TIMEOUT_USEC);
        }
        pthread_mutex_lock(&mg->lock);
        mg->status = r < 0 ? MIGRATION_FAILED : MIGRATION_COMPLETED;
        mg->progress.bytes_sent = mg->out.total;
        pthread_mutex_unlock(&mg->lock);
        notify(mg);
        return NULL;
}

int migration_start(Machine *m, int fd, uint64_t downtime_limit_msec, void (*on_final)(void *userdata),
                    void *userdata, Migration **ret) {
        Migration *mg;
        int r;

        mg = calloc(1, sizeof(*mg));
        if (!mg) {
                safe_close(fd);
                return -ENOMEM;
        }
        mg->machine = m;
        mg->fd = fd;
        mg->downtime_limit_msec = downtime_limit_msec;
        mg->on_final = on_final;
        mg->userdata = userdata;
        mg->status = MIGRATION_ACTIVE;
        pthread_mutex_init(&mg->lock, NULL);
        pthread_cond_init(&mg->snapshot_cond, NULL);
        mg->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        mg->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (mg->notify_fd < 0 || mg->cancel_fd < 0 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
                r = -errno;
                migration_free(mg);
                return r;
        }
        r = -pthread_create(&mg->thread, NULL, migration_thread, mg);
        if (r < 0) {
                migration_free(mg);
                return r;
        }
        mg->thread_started = true;
        *ret = mg;
        return 0;
}

Migration *migration_free(Migration *mg) {
        if (!mg)
                return NULL;
        if (mg->thread_started) {
                migration_cancel(mg);
                pthread_join(mg->thread, NULL);
        }
        safe_close(mg->fd);
        safe_close(mg->notify_fd);
        safe_close(mg->cancel_fd);
        pthread_mutex_destroy(&mg->lock);
        pthread_cond_destroy(&mg->snapshot_cond);
        state_writer_done(&mg->snapshot_state);
        free(mg->snapshot_pages);
        free(mg->snapshot_fb);
        free(mg->pending);
        stream_out_done(&mg->out);
        free(mg);
        return NULL;
}

int migration_notify_fd(Migration *mg) {
        return mg->notify_fd;
}

void migration_notify_drain(Migration *mg) {
        uint64_t v;
        (void) !read(mg->notify_fd, &v, sizeof(v));

        pthread_mutex_lock(&mg->lock);
        if (mg->snapshot_wanted && !mg->snapshot_done) {
                take_snapshot(mg);
                pthread_cond_broadcast(&mg->snapshot_cond);
        }
        pthread_mutex_unlock(&mg->lock);
}

MigrationStatus migration_status(Migration *mg) {
        MigrationStatus s;

        pthread_mutex_lock(&mg->lock);
        s = mg->status;
        pthread_mutex_unlock(&mg->lock);
        return s;
}

MigrationProgress migration_progress(Migration *mg) {
        MigrationProgress p;

        pthread_mutex_lock(&mg->lock);
        p = mg->progress;
        pthread_mutex_unlock(&mg->lock);
        return p;
}

const char *migration_error(Migration *mg) {
        /* Written before the status turns FAILED, never after. */
        return mg->error;
}

void migration_cancel(Migration *mg) {
        uint64_t one = 1;
        (void) !write(mg->cancel_fd, &one, sizeof(one));
}

/* ---- connecting ---- */

int migration_connect(const char *uri, char *error, size_t error_size) {
        _cleanup_close_ int fd = -EBADF;

        if (strncmp(uri, "unix:", 5) == 0) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                const char *path = uri + 5;

                if (!*path || strlen(path) >= sizeof(sa.sun_path))
                        return savevm_fail(error, error_size, "invalid socket path in '%s'", uri), -EINVAL;
                memcpy(sa.sun_path, path, strlen(path));
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                        int r = -errno;
                        savevm_fail(error, error_size, "cannot connect to %s: %s", uri, strerror(-r));
                        return r;
                }
                return TAKE_FD(fd);
        }
        if (strncmp(uri, "tcp:", 4) == 0) {
                struct sockaddr_in sa = { .sin_family = AF_INET };
                char host[INET_ADDRSTRLEN];
                const char *colon = strrchr(uri + 4, ':');
                char *end;
                unsigned long port;

                if (!colon || (size_t) (colon - (uri + 4)) >= sizeof(host))
                        return savevm_fail(error, error_size, "invalid '%s': expected tcp:ADDRESS:PORT", uri), -EINVAL;
                memcpy(host, uri + 4, (size_t) (colon - (uri + 4)));
                host[colon - (uri + 4)] = 0;
                port = strtoul(colon + 1, &end, 10);
                if (!colon[1] || *end || port == 0 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
                        return savevm_fail(error, error_size, "invalid '%s': expected tcp:ADDRESS:PORT", uri), -EINVAL;
                sa.sin_port = htons((uint16_t) port);
                fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                        int r = -errno;
                        savevm_fail(error, error_size, "cannot connect to %s: %s", uri, strerror(-r));
                        return r;
                }
                return TAKE_FD(fd);
        }
        savevm_fail(error, error_size, "invalid migration address '%s': expected unix:PATH or tcp:ADDRESS:PORT", uri);
        return -EINVAL;
}
