/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "orrery-client.h"
#include "qga-channel.h"
#include "utf8.h"

#define QGA_READ_CHUNK 65536u
#define QGA_OUT_MAX (2u * 1024u * 1024u)
#define QGA_ERROR_TEXT_MAX 512u

struct QgaRequest {
        QgaChannel *channel;
        QgaRequest *next;
        char *command;
        char *text; /* the request as sent, with its trailing newline */
        size_t size;
        QgaCallFlags flags;
        int64_t confirm_id;
        QgaReplyFn fn;
        void *userdata;
};

struct QgaChannel {
        sd_event *event;
        char *label;
        uint64_t timeout_usec;
        QgaChannelCallbacks callbacks;
        void *userdata;

        int fd;
        sd_event_source *io;
        sd_event_source *timer;
        QgaFramer framer;

        bool synced;    /* the handshake completed and nothing suspicious happened since */
        bool syncing;   /* a guest-sync-delimited is outstanding (the timer runs for it) */
        bool connected; /* as last reported */

        QgaRequest *head, *tail; /* waiting */
        size_t n_queued;
        QgaRequest *inflight;    /* on the wire (the timer runs for it) */

        uint8_t *out;
        size_t out_size;
        uint8_t *in;
};

int64_t qga_random_id(void) {
        uint64_t v = 0;

        if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t) sizeof(v))
                v = (uint64_t) random() << 31 ^ (uint64_t) random();
        v &= (UINT64_C(1) << 53) - 1;
        return v ? (int64_t) v : 1;
}

static void channel_process(QgaChannel *c);

static void request_free(QgaRequest *r) {
        if (!r)
                return;
        free(r->command);
        free(r->text);
        free(r);
}

static void channel_set_connected(QgaChannel *c, bool connected) {
        if (c->connected == connected)
                return;
        c->connected = connected;
        log_debug("%s: guest agent %s", c->label, connected ? "connected" : "not connected");
        if (c->callbacks.connected_changed)
                c->callbacks.connected_changed(c, connected, c->userdata);
}

static void request_finish(QgaRequest *r, json_object *ret, const sd_bus_error *error) {
        QgaReplyFn fn = r->fn;
        void *userdata = r->userdata;
        QgaChannel *c = r->channel;

        request_free(r);
        if (fn)
                fn(c, ret, error, userdata);
}

static void fail_with(QgaRequest *r, const char *name, const char *fmt, ...) _printf_(3, 4);
static void fail_with(QgaRequest *r, const char *name, const char *fmt, ...) {
        _cleanup_free_ char *text = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&text, fmt, ap) < 0)
                text = NULL;
        va_end(ap);
        error.name = name;
        error.message = text ?: "out of memory";
        request_finish(r, NULL, &error);
}

static void timer_stop(QgaChannel *c) {
        if (c->timer)
                (void) sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void timer_start(QgaChannel *c) {
        int r;

        if (!c->timer) {
                r = sd_event_add_time_relative(c->event, &c->timer, CLOCK_MONOTONIC, c->timeout_usec, 0, on_timer, c);
                if (r < 0)
                        log_error_errno(r, "%s: cannot arm the guest-agent timeout: %m", c->label);
                return;
        }
        (void) sd_event_source_set_time_relative(c->timer, c->timeout_usec);
        (void) sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
}

static void channel_update_io(QgaChannel *c) {
        if (c->io)
                (void) sd_event_source_set_io_events(c->io, EPOLLIN | (c->out_size > 0 ? EPOLLOUT : 0));
}

/* Writes what it can; the rest waits for EPOLLOUT. -errno if the socket failed. */
static int channel_flush(QgaChannel *c) {
        while (c->out_size > 0) {
                ssize_t n = send(c->fd, c->out, c->out_size, MSG_DONTWAIT | MSG_NOSIGNAL);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return -errno;
                }
                memmove(c->out, c->out + n, c->out_size - (size_t) n);
                c->out_size -= (size_t) n;
        }
        channel_update_io(c);
        return 0;
}

static int channel_queue_bytes(QgaChannel *c, const void *data, size_t size) {
        uint8_t *t;

        if (size > QGA_OUT_MAX - c->out_size)
                return -ENOBUFS;
        t = realloc(c->out, c->out_size + size);
        if (!t)
                return -ENOMEM;
        memcpy(t + c->out_size, data, size);
        c->out = t;
        c->out_size += size;
        return 0;
}

static char *format_command(const char *command, json_object *arguments, size_t *ret_size) {
        json_object *o = json_object_new_object();
        const char *s;
        char *text = NULL;

        if (!o) {
                json_object_put(arguments);
                return NULL;
        }
        if (json_object_object_add(o, "execute", json_object_new_string(command)) < 0 ||
            (arguments && json_object_object_add(o, "arguments", arguments) < 0)) {
                json_object_put(o);
                return NULL;
        }
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (s && asprintf(&text, "%s\n", s) >= 0)
                *ret_size = strlen(text);
        else
                text = NULL;
        json_object_put(o);
        return text;
}

static char *format_sync(const char *command, int64_t id, size_t *ret_size) {
        json_object *args = json_object_new_object();

        if (!args || json_object_object_add(args, "id", json_object_new_int64(id)) < 0) {
                json_object_put(args);
                return NULL;
        }
        return format_command(command, args, ret_size);
}

static void channel_fail_queue(QgaChannel *c, const char *name, const char *message) {
        while (c->head) {
                QgaRequest *r = c->head;

                c->head = r->next;
                c->n_queued--;
                if (!c->head)
                        c->tail = NULL;
                fail_with(r, name, "%s", message);
        }
}

static void channel_close(QgaChannel *c, const sd_bus_error *error) {
        QgaRequest *r;
        _cleanup_free_ char *message = NULL;
        const char *name = error && error->name ? error->name : ORRERY_ERROR_UNAVAILABLE;

        if (asprintf(&message, "%s", error && error->message ? error->message : "The guest agent is not available") < 0)
                message = NULL;

        c->io = sd_event_source_disable_unref(c->io);
        c->fd = safe_close(c->fd);
        timer_stop(c);
        c->out_size = 0;
        c->synced = c->syncing = false;
        r = TAKE_PTR(c->inflight);
        if (r)
                fail_with(r, name, "%s", message ?: "The guest agent is not available");
        channel_fail_queue(c, name, message ?: "The guest agent is not available");
        channel_set_connected(c, false);
}

static void channel_broken(QgaChannel *c, const char *why) {
        _cleanup_free_ char *text = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;

        if (asprintf(&text, "The guest agent port of %s closed (%s)", c->label, why) < 0)
                text = NULL;
        error.name = ORRERY_ERROR_UNAVAILABLE;
        error.message = text ?: "The guest agent port closed";
        channel_close(c, &error);
        if (c->callbacks.closed)
                c->callbacks.closed(c, c->userdata);
}

static void channel_start_sync(QgaChannel *c) {
        _cleanup_free_ char *text = NULL;
        int64_t id = qga_random_id();
        size_t size = 0;
        int r;

        c->syncing = true;
        timer_start(c);
        /*
         * A guest that does not read leaves our last attempt in the buffer:
         * piling more on would only grow it. Its answer still counts, but
         * we can only recognise the id we are expecting, so keep that one.
         */
        if (c->out_size > 0)
                return;
        text = format_sync("guest-sync-delimited", id, &size);
        if (!text)
                return;
        qga_framer_expect_sync(&c->framer, id);
        if (channel_queue_bytes(c, "\xff", 1) < 0 || channel_queue_bytes(c, text, size) < 0)
                return;
        r = channel_flush(c);
        if (r < 0)
                channel_broken(c, strerror(-r));
}

static void channel_send(QgaChannel *c, QgaRequest *req) {
        int r;

        c->inflight = req;
        timer_start(c);
        r = channel_queue_bytes(c, req->text, req->size);
        if (r >= 0 && (req->flags & QGA_CALL_CONFIRM_WITH_SYNC)) {
                _cleanup_free_ char *sync = NULL;
                size_t size = 0;

                sync = format_sync("guest-sync", req->confirm_id, &size);
                r = sync ? channel_queue_bytes(c, sync, size) : -ENOMEM;
        }
        if (r < 0) {
                c->inflight = NULL;
                timer_stop(c);
                fail_with(req, ORRERY_ERROR_UNAVAILABLE, "Cannot send %s to %s: %s", req->command, c->label,
                          strerror(-r));
                return;
        }
        r = channel_flush(c);
        if (r < 0)
                channel_broken(c, strerror(-r));
}

static void channel_process(QgaChannel *c) {
        QgaRequest *req;

        if (c->fd < 0 || c->inflight || c->syncing)
                return;
        if (!c->synced) {
                channel_start_sync(c);
                return;
        }
        req = c->head;
        if (!req)
                return;
        c->head = req->next;
        c->n_queued--;
        if (!c->head)
                c->tail = NULL;
        req->next = NULL;
        channel_send(c, req);
}

static void channel_desync(QgaChannel *c) {
        c->synced = false;
        channel_set_connected(c, false);
}

static void guest_error(QgaRequest *req, const QgaChannel *c, const char *class, const char *desc) {
        char cls[QGA_ERROR_TEXT_MAX], dsc[QGA_ERROR_TEXT_MAX];

        utf8_truncate(cls, sizeof(cls), class ?: "GenericError");
        utf8_truncate(dsc, sizeof(dsc), desc ?: "(no description)");
        fail_with(req, ORRERY_ERROR_GUEST, "%s: %s", cls, dsc);
}

static void on_message(QgaChannel *c, json_object *o) {
        QgaRequest *req = c->inflight;
        const char *class = NULL, *desc = NULL;
        json_object *ret = NULL;
        int r;

        if (!req) {
                /* Nobody asked: a late answer to a request that timed out, or a confused guest. */
                log_debug("%s: a message nobody asked for (%.200s); resynchronising", c->label,
                          json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
                channel_desync(c);
                return;
        }
        c->inflight = NULL;
        timer_stop(c);

        r = qga_reply_split(o, &ret, &class, &desc);
        if (r == -EREMOTEIO) {
                if (req->flags & QGA_CALL_CONFIRM_WITH_SYNC)
                        channel_desync(c); /* the confirming sync's answer is still to come */
                guest_error(req, c, class, desc);
                return;
        }
        if (r < 0) {
                channel_desync(c);
                fail_with(req, ORRERY_ERROR_GUEST, "ProtocolError: the guest agent of %s answered %s with neither "
                          "\"return\" nor \"error\"", c->label, req->command);
                return;
        }
        if (req->flags & QGA_CALL_CONFIRM_WITH_SYNC) {
                if (!json_object_is_type(ret, json_type_int) || json_object_get_int64(ret) != req->confirm_id) {
                        channel_desync(c);
                        fail_with(req, ORRERY_ERROR_GUEST, "ProtocolError: the guest agent of %s answered %s, "
                                  "which has no answer on success", c->label, req->command);
                        return;
                }
                ret = NULL;
        } else if (!ret) {
                /* "return": null. qemu-ga answers {} when it has nothing to say; callers rely on a result. */
                fail_with(req, ORRERY_ERROR_GUEST, "ProtocolError: the guest agent of %s answered %s with a null "
                          "\"return\"", c->label, req->command);
                return;
        }
        request_finish(req, ret, NULL);
}

static void on_framer_event(QgaEvent event, json_object *detail, const char *reason, void *userdata) {
        QgaChannel *c = userdata;
        QgaRequest *req;

        switch (event) {
        case QGA_EVENT_SYNCED:
                if (!c->syncing)
                        break;
                c->syncing = false;
                c->synced = true;
                timer_stop(c);
                channel_set_connected(c, true);
                break;
        case QGA_EVENT_MESSAGE:
                on_message(c, detail);
                break;
        case QGA_EVENT_GARBAGE:
                channel_desync(c);
                req = TAKE_PTR(c->inflight);
                if (req) {
                        timer_stop(c);
                        fail_with(req, ORRERY_ERROR_GUEST, "ProtocolError: the guest agent of %s answered %s with %s",
                                  c->label, req->command, reason);
                } else
                        log_debug("%s: garbage from the guest agent (%s)", c->label, reason);
                break;
        }
        channel_process(c);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        QgaChannel *c = userdata;
        ssize_t n;

        if (revents & EPOLLOUT) {
                int r = channel_flush(c);

                if (r < 0) {
                        channel_broken(c, strerror(-r));
                        return 0;
                }
        }
        if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                return 0;

        /* One read per wakeup: a guest that floods us shares the loop fairly with every other VM. */
        n = recv(c->fd, c->in, QGA_READ_CHUNK, MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                channel_broken(c, strerror(errno));
                return 0;
        }
        if (n == 0) {
                channel_broken(c, "end of file");
                return 0;
        }
        qga_framer_feed(&c->framer, c->in, (size_t) n, on_framer_event, c);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        QgaChannel *c = userdata;
        QgaRequest *req = TAKE_PTR(c->inflight);
        uint64_t sec = c->timeout_usec / 1000000, msec = c->timeout_usec / 1000 % 1000;

        channel_desync(c);
        if (req) {
                /* What the guest has not read yet is dropped: the 0xFF that follows resets its parser. */
                c->out_size = 0;
                channel_update_io(c);
                fail_with(req, ORRERY_ERROR_TIMEOUT, "The guest agent of %s did not answer %s within %" PRIu64
                          ".%03" PRIu64 " s", c->label, req->command, sec, msec);
        } else if (c->syncing) {
                _cleanup_free_ char *text = NULL;

                c->syncing = false;
                if (asprintf(&text, "The guest agent of %s did not answer guest-sync-delimited within %" PRIu64
                             ".%03" PRIu64 " s", c->label, sec, msec) < 0)
                        text = NULL;
                channel_fail_queue(c, ORRERY_ERROR_TIMEOUT, text ?: "The guest agent did not answer");
        }
        channel_process(c);
        return 0;
}

int qga_channel_new(sd_event *event, const char *label, uint64_t timeout_usec, const QgaChannelCallbacks *callbacks,
                    void *userdata, QgaChannel **ret) {
        QgaChannel *c;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->fd = -1;
        c->event = sd_event_ref(event);
        c->timeout_usec = timeout_usec;
        if (callbacks)
                c->callbacks = *callbacks;
        c->userdata = userdata;
        c->label = strdup(label);
        c->in = malloc(QGA_READ_CHUNK);
        r = qga_framer_init(&c->framer);
        if (r < 0 || !c->label || !c->in) {
                qga_channel_free(c, NULL);
                return r < 0 ? r : -ENOMEM;
        }
        *ret = c;
        return 0;
}

QgaChannel *qga_channel_free(QgaChannel *c, const sd_bus_error *error) {
        if (!c)
                return NULL;
        c->callbacks = (QgaChannelCallbacks) {};
        channel_close(c, error);
        c->timer = sd_event_source_disable_unref(c->timer);
        qga_framer_done(&c->framer);
        sd_event_unref(c->event);
        free(c->out);
        free(c->in);
        free(c->label);
        free(c);
        return NULL;
}

int qga_channel_attach(QgaChannel *c, int fd) {
        int r;

        if (c->fd >= 0)
                return -EBUSY;
        r = sd_event_add_io(c->event, &c->io, fd, EPOLLIN, on_io, c);
        if (r < 0)
                return r;
        c->fd = fd;
        c->synced = c->syncing = false;
        c->out_size = 0;
        qga_framer_expect_sync(&c->framer, 0);
        channel_process(c);
        return 0;
}

void qga_channel_detach(QgaChannel *c, const sd_bus_error *error) {
        channel_close(c, error);
}

bool qga_channel_is_attached(QgaChannel *c) {
        return c->fd >= 0;
}

bool qga_channel_is_connected(QgaChannel *c) {
        return c->connected;
}

void qga_channel_kick(QgaChannel *c) {
        if (c->fd < 0 || c->synced || c->inflight)
                return;
        c->syncing = false;
        c->out_size = 0;
        channel_process(c);
}

int qga_channel_call(QgaChannel *c, const char *command, json_object *arguments, QgaCallFlags flags, QgaReplyFn fn,
                     void *userdata, QgaRequest **ret_request) {
        QgaRequest *r;

        if (c->fd < 0) {
                json_object_put(arguments);
                return -ENOTCONN;
        }
        if (c->n_queued >= QGA_QUEUE_MAX) {
                json_object_put(arguments);
                return -EBUSY;
        }
        r = calloc(1, sizeof(*r));
        if (!r) {
                json_object_put(arguments);
                return -ENOMEM;
        }
        r->channel = c;
        r->flags = flags;
        r->fn = fn;
        r->userdata = userdata;
        r->command = strdup(command);
        r->text = format_command(command, arguments, &r->size);
        if (!r->command || !r->text) {
                request_free(r);
                return -ENOMEM;
        }
        if (r->size > QGA_OUT_MAX / 2) {
                request_free(r);
                return -E2BIG;
        }
        if (flags & QGA_CALL_CONFIRM_WITH_SYNC)
                r->confirm_id = qga_random_id();
        if (c->tail)
                c->tail->next = r;
        else
                c->head = r;
        c->tail = r;
        c->n_queued++;
        if (ret_request)
                *ret_request = r;
        channel_process(c);
        return 0;
}

void qga_request_set_callback(QgaRequest *r, QgaReplyFn fn, void *userdata) {
        r->fn = fn;
        r->userdata = userdata;
}

void qga_request_cancel(QgaRequest *r) {
        QgaChannel *c;

        if (!r)
                return;
        c = r->channel;
        if (c->inflight == r) {
                /* Still on the wire: its answer must be consumed, but nobody hears of it. */
                r->fn = NULL;
                return;
        }
        for (QgaRequest **p = &c->head; *p; p = &(*p)->next)
                if (*p == r) {
                        *p = r->next;
                        c->n_queued--;
                        if (c->tail == r) {
                                c->tail = NULL;
                                for (QgaRequest *q = c->head; q; q = q->next)
                                        c->tail = q;
                        }
                        request_free(r);
                        return;
                }
}
