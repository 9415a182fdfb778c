/* SPDX-License-Identifier: MIT */

/*
 * CopyToGuest / CopyFromGuest: files move in chunks through
 * guest-file-open / -write / -read / -close with base64, one guest call at
 * a time in the VM's queue (so Ping and friends interleave with a copy).
 * The caller's fd is never allowed to block the loop: regular files are
 * read and written directly, pipes and sockets are made non-blocking (a
 * pipe is reopened through /proc so the caller's own end keeps its flags)
 * and waited for with sd-event.
 *
 * Copies from the guest are bounded, since the guest decides how much
 * comes: at most max_bytes land in the caller's file (the bridge's
 * --copy-max-bytes, or CopyFromGuestEx's MaxBytes), never below the free-
 * space reserve of the destination's file system (--copy-reserve), and
 * never after the caller left the bus or its TimeoutUSec passed. The size
 * the guest announces (guest-file-seek to the end, where it can) goes into
 * CopyProgress and the messages; the limits never rely on it.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "base64.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"

#define COPY_CHUNK (48u * 1024u) /* 64 KiB of base64 per guest-file-write */
/* The agent port is flow-controlled (Chardev1.xml): an answer of any size arrives whole. */
#define COPY_READ_CHUNK COPY_CHUNK
#define COPY_PATH_MAX 4096u
#define COPIES_MAX 64u /* per VM: each holds a chunk buffer and a file descriptor */
#define PROGRESS_INTERVAL_USEC (100ULL * 1000ULL) /* at most ten signals a second */
#define SIZE_UNKNOWN UINT64_MAX

typedef enum CopyStep {
        STEP_OPEN,
        STEP_SEEK_END, /* from the guest: how large the guest says the file is */
        STEP_SEEK_SET, /* and back to its start */
        STEP_LOCAL, /* reading the source (to guest) or writing the sink (from guest) */
        STEP_GUEST, /* a guest-file-write or guest-file-read in flight */
        STEP_CLOSE,
} CopyStep;

struct Copy {
        Agent *agent;
        Copy *next;
        sd_bus_message *call;
        char *sender;
        char *path;
        sd_bus_track *track;
        bool to_guest;
        int fd;
        bool pollable; /* fd is non-blocking and waited for with io */
        sd_event_source *io;
        QgaRequest *request;
        CopyStep step;
        int64_t handle; /* the guest's file handle, -1 while none is open */
        uint64_t done, total;
        uint64_t last_progress;
        uint8_t *buf;
        size_t buf_size, buf_off;
        bool eof;

        /* From the guest only. */
        bool regular;        /* fd is a regular file: the free-space reserve applies */
        uint64_t max_bytes;  /* at most this much is written to fd */
        uint64_t announced;  /* the size the guest announced, or SIZE_UNKNOWN */
        sd_event_source *deadline;
};

static void copy_progress(Copy *c, bool force) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *s = NULL;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        sd_bus *bus = c->agent->manager->bus;

        if (!force && now - c->last_progress < PROGRESS_INTERVAL_USEC)
                return;
        c->last_progress = now;
        /* Unicast: only the caller hears about its copy. */
        if (sd_bus_message_new_signal(bus, &s, c->agent->path, AGENT_INTERFACE, "CopyProgress") < 0 ||
            sd_bus_message_set_destination(s, c->sender) < 0 ||
            sd_bus_message_append(s, "stt", c->path, c->done, c->total) < 0)
                return;
        (void) sd_bus_send(bus, s, NULL);
}

static void copy_free(Copy *c) {
        Agent *a = c->agent;

        for (Copy **p = &a->copies; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        qga_request_cancel(c->request);
        c->io = sd_event_source_disable_unref(c->io);
        c->deadline = sd_event_source_disable_unref(c->deadline);
        c->track = sd_bus_track_unref(c->track);
        safe_close(c->fd);
        sd_bus_message_unref(c->call);
        free(c->sender);
        free(c->path);
        free(c->buf);
        free(c);
}

/* Leaves no handle behind in the guest: fire and forget, the answer does not matter. */
static void copy_close_handle(Copy *c) {
        json_object *args;

        if (c->handle < 0 || !qga_channel_is_attached(c->agent->channel))
                return;
        args = json_object_new_object();
        if (args && json_object_object_add(args, "handle", json_object_new_int64(c->handle)) >= 0)
                (void) qga_channel_call(c->agent->channel, "guest-file-close", args, 0, NULL, NULL, NULL);
        else
                json_object_put(args);
        c->handle = -1;
}

static void copy_fail(Copy *c, const sd_bus_error *error) {
        copy_close_handle(c);
        (void) sd_bus_reply_method_error(c->call, error);
        copy_free(c);
}

static void copy_failf(Copy *c, const char *name, const char *fmt, ...) _printf_(3, 4);
static void copy_failf(Copy *c, const char *name, const char *fmt, ...) {
        _cleanup_free_ char *text = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&text, fmt, ap) < 0)
                text = NULL;
        va_end(ap);
        error.name = name;
        error.message = text ?: "Copy failed";
        copy_fail(c, &error);
}

static void copy_guest_failed(Copy *c, const char *what, int r) {
        if (r == -ENOTCONN)
                copy_failf(c, ORRERY_ERROR_UNAVAILABLE, "The guest agent port of %s closed during the copy",
                           c->agent->label);
        else
                copy_failf(c, ORRERY_ERROR_UNAVAILABLE, "Cannot send %s to %s: %s", what, c->agent->label,
                           strerror(-r));
}

static void copy_step(Copy *c);
static void copy_send_seek(Copy *c, CopyStep step);

static void on_guest_reply(QgaChannel *ch, json_object *ret, const sd_bus_error *error, void *userdata);

static int copy_call(Copy *c, const char *command, json_object *args) {
        int r;

        r = qga_channel_call(c->agent->channel, command, args, 0, on_guest_reply, c, &c->request);
        if (r < 0) {
                c->request = NULL;
                copy_guest_failed(c, command, r);
        }
        return r;
}

static json_object *args_handle(Copy *c) {
        json_object *args = json_object_new_object();

        if (args && json_object_object_add(args, "handle", json_object_new_int64(c->handle)) >= 0)
                return args;
        json_object_put(args);
        return NULL;
}

static void copy_send_seek(Copy *c, CopyStep step) {
        json_object *args = args_handle(c);

        if (!args || json_object_object_add(args, "offset", json_object_new_int64(0)) < 0 ||
            json_object_object_add(args, "whence", json_object_new_string(step == STEP_SEEK_END ? "end" : "set")) < 0) {
                json_object_put(args);
                return copy_failf(c, ORRERY_ERROR_UNAVAILABLE, "Out of memory");
        }
        c->step = step;
        (void) copy_call(c, "guest-file-seek", args);
}

static void copy_protocol_error(Copy *c, const char *what) {
        copy_failf(c, ORRERY_ERROR_GUEST, "ProtocolError: the guest agent of %s answered %s during the copy of %s",
                   c->agent->label, what, c->path);
}

static void copy_finish(Copy *c) {
        copy_progress(c, true);
        (void) sd_bus_reply_method_return(c->call, "t", c->done);
        copy_free(c);
}

static void on_guest_reply(QgaChannel *ch, json_object *ret, const sd_bus_error *error, void *userdata) {
        Copy *c = userdata;
        json_object *v;
        int64_t n;

        c->request = NULL;
        if (error && c->step == STEP_SEEK_END && sd_bus_error_has_name(error, ORRERY_ERROR_GUEST)) {
                /* The guest cannot tell the size (a pipe, an old agent): copy without knowing it. */
                c->step = STEP_LOCAL;
                copy_step(c);
                return;
        }
        if (error) {
                if (c->step == STEP_OPEN || c->step == STEP_CLOSE)
                        c->handle = -1;
                copy_fail(c, error);
                return;
        }

        switch (c->step) {
        case STEP_OPEN:
                if (!json_object_is_type(ret, json_type_int) || json_object_get_int64(ret) < 0 ||
                    json_object_get_int64(ret) == INT64_MAX)
                        return copy_protocol_error(c, "guest-file-open with something that is not a handle");
                c->handle = json_object_get_int64(ret);
                if (!c->to_guest)
                        return copy_send_seek(c, STEP_SEEK_END);
                c->step = STEP_LOCAL;
                break;

        case STEP_SEEK_END:
        case STEP_SEEK_SET:
                /* {"position": n, "eof": b} */
                if (!json_object_object_get_ex(ret, "position", &v) || !json_object_is_type(v, json_type_int) ||
                    json_object_get_int64(v) < 0)
                        return copy_protocol_error(c, "guest-file-seek without a position");
                n = json_object_get_int64(v);
                if (c->step == STEP_SEEK_SET) {
                        if (n != 0)
                                return copy_protocol_error(c, "guest-file-seek to the start with another position");
                        c->step = STEP_LOCAL;
                        break;
                }
                c->announced = (uint64_t) n;
                c->total = c->announced;
                if (c->announced > c->max_bytes)
                        return copy_failf(c, ORRERY_ERROR_LIMIT_EXCEEDED,
                                          "The guest says %s is %" PRIu64 " bytes, more than the copy's limit of %" PRIu64
                                          " bytes (MaxBytes)", c->path, c->announced, c->max_bytes);
                return copy_send_seek(c, STEP_SEEK_SET);

        case STEP_GUEST:
                if (c->to_guest) {
                        /* {"count": n, "eof": b}: n bytes of what we sent were written. */
                        if (!json_object_object_get_ex(ret, "count", &v) || !json_object_is_type(v, json_type_int))
                                return copy_protocol_error(c, "guest-file-write without a count");
                        n = json_object_get_int64(v);
                        if (n < 0 || (uint64_t) n > c->buf_size - c->buf_off)
                                return copy_protocol_error(c, "guest-file-write with a count out of range");
                        if (n == 0)
                                return copy_failf(c, ORRERY_ERROR_GUEST, "The guest agent of %s wrote nothing to %s",
                                                  c->agent->label, c->path);
                        c->buf_off += (size_t) n;
                        c->done += (uint64_t) n;
                        c->step = STEP_LOCAL;
                } else {
                        /* {"count": n, "buf-b64": s, "eof": b} */
                        json_object *b64, *eof;
                        long k;

                        if (!json_object_object_get_ex(ret, "count", &v) || !json_object_is_type(v, json_type_int) ||
                            !json_object_object_get_ex(ret, "buf-b64", &b64) ||
                            !json_object_is_type(b64, json_type_string))
                                return copy_protocol_error(c, "guest-file-read without count and buf-b64");
                        n = json_object_get_int64(v);
                        if (n < 0 || n > (int64_t) COPY_READ_CHUNK)
                                return copy_protocol_error(c, "guest-file-read with a count out of range");
                        k = base64_decode(json_object_get_string(b64), (size_t) json_object_get_string_len(b64),
                                          c->buf, COPY_CHUNK, 0);
                        if (k < 0 || k != n)
                                return copy_protocol_error(c, "guest-file-read with data that does not match its count");
                        c->buf_size = (size_t) k;
                        c->buf_off = 0;
                        c->eof = k == 0 || (json_object_object_get_ex(ret, "eof", &eof) &&
                                            json_object_is_type(eof, json_type_boolean) &&
                                            json_object_get_boolean(eof));
                        c->step = STEP_LOCAL;
                }
                copy_progress(c, false);
                break;

        case STEP_CLOSE:
                c->handle = -1;
                return copy_finish(c);

        case STEP_LOCAL:
                return;
        }
        copy_step(c);
}

static int on_local_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Copy *c = userdata;

        (void) sd_event_source_set_enabled(c->io, SD_EVENT_OFF);
        copy_step(c);
        return 0;
}

static void copy_wait_local(Copy *c) {
        (void) sd_event_source_set_enabled(c->io, SD_EVENT_ONESHOT);
}

static void copy_send_close(Copy *c) {
        json_object *args = args_handle(c);

        if (!args)
                return copy_failf(c, ORRERY_ERROR_UNAVAILABLE, "Out of memory");
        c->step = STEP_CLOSE;
        (void) copy_call(c, "guest-file-close", args);
}

/* To the guest: the chunk in buf is sent; read the next one from the source. */
static void copy_to_guest_local(Copy *c) {
        json_object *args;
        char *b64;
        ssize_t n;

        if (c->buf_off < c->buf_size)
                goto send; /* the guest wrote part of the chunk: send the rest */

        n = read(c->fd, c->buf, COPY_CHUNK);
        if (n < 0) {
                if (errno == EINTR || (errno == EAGAIN && c->pollable))
                        return copy_wait_local(c);
                return copy_failf(c, ORRERY_ERROR_INVALID_ARGUMENT, "Cannot read the file to copy to %s: %s",
                                  c->path, strerror(errno));
        }
        if (n == 0)
                return copy_send_close(c);
        c->buf_size = (size_t) n;
        c->buf_off = 0;

send:
        b64 = malloc(base64_encoded_size(c->buf_size - c->buf_off) + 1);
        if (!b64)
                return copy_failf(c, ORRERY_ERROR_UNAVAILABLE, "Out of memory");
        base64_encode(c->buf + c->buf_off, c->buf_size - c->buf_off, b64);
        args = args_handle(c);
        if (!args || json_object_object_add(args, "buf-b64", json_object_new_string(b64)) < 0) {
                free(b64);
                json_object_put(args);
                return copy_failf(c, ORRERY_ERROR_UNAVAILABLE, "Out of memory");
        }
        free(b64);
        c->step = STEP_GUEST;
        (void) copy_call(c, "guest-file-write", args);
}

static void copy_fail_limit(Copy *c) {
        _cleanup_free_ char *announced = NULL;

        if (c->announced != SIZE_UNKNOWN &&
            asprintf(&announced, " (the guest announced %" PRIu64 " bytes)", c->announced) < 0)
                announced = NULL;
        copy_failf(c, ORRERY_ERROR_LIMIT_EXCEEDED, "The copy of %s stopped at its limit of %" PRIu64 " bytes (MaxBytes)%s",
                   c->path, c->max_bytes, announced ?: "");
}

/* Whether the destination's file system keeps its reserve after n more bytes (-errno if it cannot tell). */
static int copy_space_left(Copy *c, size_t n) {
        struct statvfs st;
        uint64_t avail, size, reserve;

        if (!c->regular)
                return 1;
        if (fstatvfs(c->fd, &st) < 0)
                return -errno;
        avail = (uint64_t) st.f_bavail * st.f_frsize;
        size = (uint64_t) st.f_blocks * st.f_frsize;
        reserve = size / 100 * c->agent->manager->copy_reserve_percent;
        return avail >= reserve && avail - reserve >= n;
}

/* From the guest: write what the last read brought, then ask for more. */
static void copy_from_guest_local(Copy *c) {
        json_object *args;
        bool over = false;
        int r;

        if (c->buf_off < c->buf_size) {
                /* Never more than max_bytes in the caller's file, never into the file system's reserve. */
                if (c->done + (c->buf_size - c->buf_off) > c->max_bytes) {
                        c->buf_size = c->buf_off + (size_t) (c->max_bytes - c->done);
                        over = true;
                }
                r = copy_space_left(c, c->buf_size - c->buf_off);
                if (r == 0)
                        return copy_failf(c, ORRERY_ERROR_LIMIT_EXCEEDED,
                                          "The copy of %s stopped after %" PRIu64 " bytes: the host file system would "
                                          "go below its %u%% free-space reserve", c->path, c->done,
                                          c->agent->manager->copy_reserve_percent);
                if (r < 0)
                        return copy_failf(c, ORRERY_ERROR_INVALID_ARGUMENT,
                                          "Cannot tell the free space for what is copied from %s: %s", c->path,
                                          strerror(-r));
        }

        while (c->buf_off < c->buf_size) {
                ssize_t n = write(c->fd, c->buf + c->buf_off, c->buf_size - c->buf_off);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN && c->pollable)
                                return copy_wait_local(c);
                        return copy_failf(c, ORRERY_ERROR_INVALID_ARGUMENT, "Cannot write what was copied from %s: %s",
                                          c->path, strerror(errno));
                }
                c->buf_off += (size_t) n;
                c->done += (uint64_t) n;
        }
        if (over)
                return copy_fail_limit(c);
        if (c->eof)
                return copy_send_close(c);
        args = args_handle(c);
        if (!args || json_object_object_add(args, "count", json_object_new_int64(COPY_READ_CHUNK)) < 0) {
                json_object_put(args);
                return copy_failf(c, ORRERY_ERROR_UNAVAILABLE, "Out of memory");
        }
        c->step = STEP_GUEST;
        (void) copy_call(c, "guest-file-read", args);
}

static void copy_step(Copy *c) {
        if (c->step != STEP_LOCAL)
                return;
        if (c->to_guest)
                copy_to_guest_local(c);
        else
                copy_from_guest_local(c);
}

/* The answer to the guest-file-open of a copy cancelled meanwhile: close what it opened. */
static void on_orphan_open(QgaChannel *ch, json_object *ret, const sd_bus_error *error, void *userdata) {
        json_object *args;

        if (error || !json_object_is_type(ret, json_type_int) || json_object_get_int64(ret) < 0)
                return;
        args = json_object_new_object();
        if (args && json_object_object_add(args, "handle", json_object_new_int64(json_object_get_int64(ret))) >= 0)
                (void) qga_channel_call(ch, "guest-file-close", args, 0, NULL, NULL, NULL);
        else
                json_object_put(args);
}

static void copy_abort(Copy *c, const char *name, const char *why) {
        /* A request on the wire stays there (the channel consumes its answer); the handle is closed behind it. */
        if (c->request && c->step == STEP_OPEN)
                qga_request_set_callback(c->request, on_orphan_open, NULL);
        else
                qga_request_cancel(c->request);
        c->request = NULL;
        if (c->step == STEP_OPEN || c->step == STEP_CLOSE)
                c->handle = -1;
        if (streq(name, ORRERY_ERROR_CANCELLED))
                copy_failf(c, name, "The copy of %s was cancelled (%s)", c->path, why);
        else
                copy_failf(c, name, "The copy of %s stopped: %s", c->path, why);
}

static void copy_cancel(Copy *c, const char *why) {
        copy_abort(c, ORRERY_ERROR_CANCELLED, why);
}

static int on_copy_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        Copy *c = userdata;

        log_info("%s: the copy of %s ran out of its caller's time (TimeoutUSec) after %" PRIu64 " bytes",
                 c->agent->label, c->path, c->done);
        copy_abort(c, ORRERY_ERROR_TIMEOUT, "its caller's TimeoutUSec passed");
        return 0;
}

static int on_caller_gone(sd_bus_track *t, void *userdata) {
        Copy *c = userdata;

        log_info("%s: the caller of the copy of %s left the bus; stopping it after %" PRIu64 " bytes",
                 c->agent->label, c->path, c->done);
        copy_cancel(c, "the caller left the bus");
        return 0;
}

/* Our own description of the caller's file, non-blocking if it could block. */
static int copy_take_fd(Copy *c, int fd, bool for_writing, sd_bus_error *error) {
        struct stat st;
        int flags, accmode, r;

        if (fstat(fd, &st) < 0)
                return sd_bus_error_set_errnof(error, errno, "Cannot stat the file descriptor: %m");
        if (S_ISDIR(st.st_mode))
                return sd_bus_error_set(error, ORRERY_ERROR_INVALID_ARGUMENT, "The file descriptor is a directory");
        flags = fcntl(fd, F_GETFL);
        if (flags < 0)
                return sd_bus_error_set_errnof(error, errno, "Cannot inspect the file descriptor: %m");
        accmode = flags & O_ACCMODE;
        if (for_writing ? accmode == O_RDONLY : accmode == O_WRONLY)
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT, "The file descriptor is not open for %s",
                                         for_writing ? "writing" : "reading");
        c->regular = S_ISREG(st.st_mode);
        if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
                c->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                if (c->fd < 0)
                        return -errno;
                if (c->to_guest && S_ISREG(st.st_mode)) {
                        off_t pos = lseek(c->fd, 0, SEEK_CUR);

                        c->total = pos >= 0 && st.st_size > pos ? (uint64_t) (st.st_size - pos) : 0;
                }
                return 0;
        }

        if (S_ISFIFO(st.st_mode)) {
                char p[64];

                snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
                c->fd = open(p, (for_writing ? O_WRONLY : O_RDONLY) | O_NONBLOCK | O_CLOEXEC);
        }
        if (c->fd < 0) {
                /* A socket (or a FIFO without a reader yet): the caller's description becomes non-blocking. */
                c->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                if (c->fd < 0)
                        return -errno;
                if (fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) < 0)
                        return -errno;
        }
        r = sd_event_add_io(c->agent->manager->event, &c->io, c->fd, for_writing ? EPOLLOUT : EPOLLIN, on_local_io, c);
        if (r == -EPERM) {
                /* Not pollable (e.g. /dev/zero): never blocks for long; use it directly. */
                (void) fcntl(c->fd, F_SETFL, flags);
                return 0;
        }
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(c->io, SD_EVENT_OFF);
        c->pollable = true;
        return 0;
}

typedef struct CopyOptions {
        uint64_t max_bytes;    /* 0: the bridge's --copy-max-bytes */
        uint64_t timeout_usec; /* 0: none */
} CopyOptions;

/* CopyFromGuestEx's a{sv}: MaxBytes (t), TimeoutUSec (t). */
static int read_copy_options(sd_bus_message *m, CopyOptions *ret, sd_bus_error *error) {
        CopyOptions o = {};
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key;
                uint64_t *field;

                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                if (streq(key, "MaxBytes"))
                        field = &o.max_bytes;
                else if (streq(key, "TimeoutUSec"))
                        field = &o.timeout_usec;
                else
                        return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT,
                                                 "Unknown copy option '%s' (MaxBytes, TimeoutUSec)", key);
                r = sd_bus_message_enter_container(m, 'v', "t");
                if (r < 0)
                        return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT,
                                                 "The copy option '%s' must be a 't' (uint64)", key);
                r = sd_bus_message_read(m, "t", field);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = o;
        return 0;
}

static int method_copy(sd_bus_message *m, Agent *a, bool to_guest, bool ex, sd_bus_error *error) {
        CopyOptions options = {};
        const char *path;
        json_object *args;
        unsigned n;
        Copy *c;
        int fd, r;

        r = manager_check_caller(m, error);
        if (r < 0)
                return r;
        if (to_guest)
                r = sd_bus_message_read(m, "hs", &fd, &path);
        else
                r = sd_bus_message_read(m, "sh", &path, &fd);
        if (r < 0)
                return r;
        if (ex) {
                r = read_copy_options(m, &options, error);
                if (r < 0 || sd_bus_error_is_set(error))
                        return r;
        }
        if (path[0] == '\0' || strlen(path) > COPY_PATH_MAX)
                return sd_bus_error_set(error, ORRERY_ERROR_INVALID_ARGUMENT,
                                        "The guest path must be non-empty and at most 4096 bytes");
        if (!qga_channel_is_attached(a->channel))
                return agent_reply_not_available(a, m, -ENOTCONN, error);
        r = agent_refuse_while_migrating(a, error);
        if (r < 0)
                return r;
        n = 0;
        for (Copy *o = a->copies; o; o = o->next)
                n++;
        if (n >= COPIES_MAX)
                return sd_bus_error_setf(error, ORRERY_ERROR_BUSY, "%u copies are already running on %s",
                                         COPIES_MAX, a->label);

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->agent = a;
        c->fd = -1;
        c->handle = -1;
        c->to_guest = to_guest;
        c->max_bytes = options.max_bytes ?: a->manager->copy_max_bytes;
        c->announced = SIZE_UNKNOWN;
        c->call = sd_bus_message_ref(m);
        c->sender = strdup(sd_bus_message_get_sender(m) ?: "");
        c->path = strdup(path);
        c->buf = malloc(COPY_CHUNK);
        c->next = a->copies;
        a->copies = c;
        if (!c->sender || !c->path || !c->buf) {
                copy_free(c);
                return -ENOMEM;
        }
        r = copy_take_fd(c, fd, !to_guest, error);
        if (r >= 0 && c->sender[0]) {
                r = sd_bus_track_new(a->manager->bus, &c->track, on_caller_gone, c);
                if (r >= 0)
                        r = sd_bus_track_add_sender(c->track, m);
        }
        if (r >= 0 && options.timeout_usec > 0)
                r = sd_event_add_time_relative(a->manager->event, &c->deadline, CLOCK_MONOTONIC, options.timeout_usec, 0,
                                               on_copy_deadline, c);
        if (r < 0 || sd_bus_error_is_set(error)) {
                copy_free(c);
                return r < 0 ? r : -EINVAL;
        }

        args = json_object_new_object();
        if (!args || json_object_object_add(args, "path", json_object_new_string(path)) < 0 ||
            json_object_object_add(args, "mode", json_object_new_string(to_guest ? "w" : "r")) < 0) {
                json_object_put(args);
                copy_free(c);
                return -ENOMEM;
        }
        c->step = STEP_OPEN;
        c->last_progress = now_usec(CLOCK_MONOTONIC);
        (void) copy_call(c, "guest-file-open", args);
        return 1;
}

int method_copy_to_guest(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return method_copy(m, userdata, true, false, error);
}

int method_copy_from_guest(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return method_copy(m, userdata, false, false, error);
}

int method_copy_from_guest_ex(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return method_copy(m, userdata, false, true, error);
}

int method_cancel_copies(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Agent *a = userdata;
        const char *sender = sd_bus_message_get_sender(m) ?: "";
        uint32_t n = 0;
        int r;

        r = manager_check_caller(m, error);
        if (r < 0)
                return r;
        for (Copy *c = a->copies, *next; c; c = next) {
                next = c->next;
                if (strcmp(c->sender, sender) == 0) {
                        copy_cancel(c, "CancelCopies");
                        n++;
                }
        }
        return sd_bus_reply_method_return(m, "u", n);
}

void copies_abort_all(Agent *a, const sd_bus_error *error) {
        while (a->copies) {
                Copy *c = a->copies;

                qga_request_cancel(c->request);
                c->request = NULL;
                c->handle = -1; /* the channel is going: no close can be sent */
                copy_fail(c, error);
        }
}
