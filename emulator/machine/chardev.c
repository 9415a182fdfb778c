/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "machine/chardev.h"
#include "io-util.h"
#include "macro.h"

#define INPUT_CHUNK 256

/* A byte ring; 'size' is a power of two. */
typedef struct Ring {
        uint8_t *data;
        size_t size;
        size_t head;    /* total bytes ever written */
        size_t tail;    /* total bytes ever read */
} Ring;

struct Chardev {
        char *id, *name;
        sd_event *event;
        ChardevBackend backend;
        ChardevHooks hooks;

        /* Shared with the device's thread: 'lock' protects 'out' and 'scrollback'. */
        pthread_mutex_t lock;
        Ring out;               /* guest output not yet delivered */
        Ring scrollback;        /* the most recent guest output */
        size_t dropped;         /* guest output lost because 'out' was full */
        bool throttled;         /* the device was told to stop producing output */
        int wake_fd;            /* eventfd: output pending, room for input, guest open state */
        _Atomic bool guest_open;
        bool reported_open;     /* event-loop thread: the state last told to hooks */
        sd_event_source *wake_source;

        /* Event-loop thread only. */
        int stdio_in_fd, stdio_out_fd;
        sd_event_source *stdio_in_source;
        int file_fd;
        int client_fd;
        sd_event_source *client_source;
        bool client_blocked;    /* flow-controlled output waits for the socket to take more */

        uint8_t input[INPUT_CHUNK];     /* host input the guest has not taken yet */
        size_t input_len;
};

static size_t ring_used(const Ring *r) {
        return r->head - r->tail;
}

static void ring_put(Ring *r, const uint8_t *buf, size_t n, bool overwrite) {
        if (overwrite && n > r->size) {
                buf += n - r->size;
                n = r->size;
        }
        for (size_t i = 0; i < n; i++) {
                if (ring_used(r) == r->size) {
                        if (!overwrite)
                                return;
                        r->tail++;
                }
                r->data[r->head++ & (r->size - 1)] = buf[i];
        }
}

/* Copies up to n bytes from the ring without taking them. */
static size_t ring_peek(const Ring *r, uint8_t *buf, size_t n) {
        size_t got = 0;
        while (got < n && got < ring_used(r)) {
                buf[got] = r->data[(r->tail + got) & (r->size - 1)];
                got++;
        }
        return got;
}

static void ring_consume(Ring *r, size_t n) {
        r->tail += MIN(n, ring_used(r));
}

static bool flow_controlled(const Chardev *c) {
        return c->backend.throttle != NULL;
}

static void wake(Chardev *c) {
        uint64_t one = 1;
        (void) !write(c->wake_fd, &one, sizeof(one));
}

void chardev_guest_output(Chardev *c, const uint8_t *buf, size_t n) {
        bool was_empty, throttle = false;
        size_t room;

        pthread_mutex_lock(&c->lock);
        was_empty = ring_used(&c->out) == 0;
        room = c->out.size - ring_used(&c->out);
        if (n > room)
                c->dropped += n - room;
        ring_put(&c->out, buf, MIN(n, room), false);
        ring_put(&c->scrollback, buf, n, true);
        if (flow_controlled(c) && !c->throttled && ring_used(&c->out) > CHARDEV_THROTTLE_HIGH)
                throttle = c->throttled = true;
        pthread_mutex_unlock(&c->lock);

        if (throttle) {
                bool still;

                c->backend.throttle(c->backend.opaque, true);
                /*
                 * Between the decision and the call, the event loop may have
                 * drained the ring and lifted the throttle, its "go on"
                 * reaching the device before this "stop": the device would
                 * wait for a lift that never comes. Tell it what holds now.
                 * (Only this path throttles, one thread at a time: the
                 * device's dispatch.)
                 */
                pthread_mutex_lock(&c->lock);
                still = c->throttled;
                pthread_mutex_unlock(&c->lock);
                if (!still)
                        c->backend.throttle(c->backend.opaque, false);
        }

        /* One wakeup per burst, not per byte. */
        if (was_empty)
                wake(c);
}

void chardev_guest_room(Chardev *c) {
        wake(c);
}

void chardev_set_guest_open(Chardev *c, bool open) {
        atomic_store(&c->guest_open, open);
        wake(c);
}

bool chardev_guest_open(const Chardev *c) {
        return atomic_load(&c->guest_open);
}

/*
 * The client socket is read while the guest takes input, and watched for
 * room while flow-controlled output waits for it; the two are independent,
 * so a guest that stops reading never keeps its output from draining.
 */
static void update_client_events(Chardev *c) {
        uint32_t events = (c->input_len == 0 ? EPOLLIN : 0) | (c->client_blocked ? EPOLLOUT : 0);

        if (!c->client_source)
                return;
        if (events == 0) {
                sd_event_source_set_enabled(c->client_source, SD_EVENT_OFF);
                return;
        }
        sd_event_source_set_io_events(c->client_source, events);
        sd_event_source_set_enabled(c->client_source, SD_EVENT_ON);
}

static void set_sources_enabled(Chardev *c, bool enabled) {
        if (c->stdio_in_source)
                sd_event_source_set_enabled(c->stdio_in_source, enabled ? SD_EVENT_ON : SD_EVENT_OFF);
        update_client_events(c);
}

/* Offers held-back input to the guest; sources stay off until it is all taken. */
static void feed_guest(Chardev *c) {
        size_t n;

        if (c->input_len > 0 && c->backend.write_to_guest) {
                n = c->backend.write_to_guest(c->backend.opaque, c->input, c->input_len);
                if (n > c->input_len)
                        n = c->input_len;
                memmove(c->input, c->input + n, c->input_len - n);
                c->input_len -= n;
        }
        set_sources_enabled(c, c->input_len == 0);
}

static void client_lost(Chardev *c) {
        chardev_detach_client(c);
        if (c->hooks.client_gone)
                c->hooks.client_gone(c->hooks.client_gone_opaque, c);
}

static void deliver_output(Chardev *c) {
        uint8_t buf[4096];

        for (;;) {
                bool unthrottle = false, blocked = false;
                size_t n, taken;

                pthread_mutex_lock(&c->lock);
                n = ring_peek(&c->out, buf, sizeof(buf));
                pthread_mutex_unlock(&c->lock);
                if (n == 0)
                        break;

                taken = n;
                if (c->client_fd >= 0) {
                        ssize_t w = send(c->client_fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);

                        if (w < 0 && errno != EAGAIN && errno != EINTR) {
                                client_lost(c);
                                w = (ssize_t) n;
                        } else if (w < 0)
                                w = 0;
                        /* Flow-controlled output waits for the client; otherwise what it
                         * cannot take now is dropped (the scrollback keeps it). */
                        if (flow_controlled(c) && c->client_fd >= 0 && (size_t) w < n) {
                                taken = (size_t) w;
                                blocked = true;
                        }
                }
                if (c->stdio_out_fd >= 0)
                        /* The terminal waits rather than lose console output. */
                        (void) loop_write(c->stdio_out_fd, buf, taken);
                if (c->file_fd >= 0)
                        (void) loop_write(c->file_fd, buf, taken);

                pthread_mutex_lock(&c->lock);
                ring_consume(&c->out, taken);
                if (c->throttled && ring_used(&c->out) <= CHARDEV_THROTTLE_LOW)
                        unthrottle = true, c->throttled = false;
                pthread_mutex_unlock(&c->lock);
                if (unthrottle)
                        c->backend.throttle(c->backend.opaque, false);

                if (blocked != c->client_blocked) {
                        c->client_blocked = blocked;
                        update_client_events(c);
                }
                if (blocked)
                        break;
        }
}

void chardev_flush(Chardev *c) {
        deliver_output(c);
}

void chardev_assert_flow(Chardev *c) {
        bool throttled;

        if (!flow_controlled(c))
                return;
        pthread_mutex_lock(&c->lock);
        throttled = c->throttled;
        pthread_mutex_unlock(&c->lock);
        c->backend.throttle(c->backend.opaque, throttled);
}

static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Chardev *c = userdata;
        uint64_t v;

        (void) !read(fd, &v, sizeof(v));
        deliver_output(c);
        feed_guest(c);
        if (atomic_load(&c->guest_open) != c->reported_open) {
                c->reported_open = !c->reported_open;
                if (c->hooks.guest_open_changed)
                        c->hooks.guest_open_changed(c->hooks.client_gone_opaque, c);
        }
        return 0;
}

static void take_input(Chardev *c, const uint8_t *buf, size_t n) {
        memcpy(c->input + c->input_len, buf, n);
        c->input_len += n;
        feed_guest(c);
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Chardev *c = userdata;
        uint8_t buf[INPUT_CHUNK];
        ssize_t n;

        n = read(fd, buf, sizeof(buf) - c->input_len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0) {
                /* End of input: the VM keeps running, the terminal is just not read any more. */
                c->stdio_in_source = sd_event_source_disable_unref(c->stdio_in_source);
                return 0;
        }
        if (c->hooks.filter_stdin)
                n = (ssize_t) c->hooks.filter_stdin(c->hooks.opaque, buf, (size_t) n);
        if (n > 0)
                take_input(c, buf, (size_t) n);
        return 0;
}

static int on_client(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Chardev *c = userdata;
        uint8_t buf[INPUT_CHUNK];
        ssize_t n;

        if (revents & EPOLLOUT) {
                deliver_output(c);
                if (c->client_fd < 0 || !(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) || c->input_len > 0)
                        return 0;
        }

        n = recv(fd, buf, sizeof(buf) - c->input_len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0) {
                client_lost(c);
                return 0;
        }
        take_input(c, buf, (size_t) n);
        return 0;
}

static int ring_init(Ring *r, size_t size) {
        r->data = malloc(size);
        if (!r->data)
                return -ENOMEM;
        r->size = size;
        r->head = r->tail = 0;
        return 0;
}

int chardev_new(sd_event *event, const char *id, const char *name, const ChardevBackend *backend, Chardev **ret) {
        Chardev *c;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        pthread_mutex_init(&c->lock, NULL);
        c->wake_fd = c->stdio_in_fd = c->stdio_out_fd = c->file_fd = c->client_fd = -1;
        c->event = sd_event_ref(event);
        atomic_store(&c->guest_open, true);
        c->reported_open = true;
        c->backend = *backend;
        c->id = strdup(id);
        c->name = strdup(name);
        if (!c->id || !c->name) {
                r = -ENOMEM;
                goto fail;
        }
        r = ring_init(&c->out, CHARDEV_RING_SIZE);
        if (r < 0)
                goto fail;
        r = ring_init(&c->scrollback, CHARDEV_SCROLLBACK_SIZE);
        if (r < 0)
                goto fail;
        c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (c->wake_fd < 0) {
                r = -errno;
                goto fail;
        }
        r = sd_event_add_io(event, &c->wake_source, c->wake_fd, EPOLLIN, on_wake, c);
        if (r < 0)
                goto fail;
        *ret = c;
        return 0;

fail:
        chardev_free(c);
        return r;
}

Chardev *chardev_free(Chardev *c) {
        if (!c)
                return NULL;
        chardev_detach_client(c);
        sd_event_source_disable_unref(c->stdio_in_source);
        sd_event_source_disable_unref(c->wake_source);
        safe_close(c->wake_fd);
        safe_close(c->file_fd);
        sd_event_unref(c->event);
        free(c->out.data);
        free(c->scrollback.data);
        free(c->id);
        free(c->name);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return NULL;
}

ChardevHooks chardev_get_hooks(const Chardev *c) {
        return c->hooks;
}

const char *chardev_id(const Chardev *c) {
        return c->id;
}

const char *chardev_name(const Chardev *c) {
        return c->name;
}

void chardev_set_hooks(Chardev *c, const ChardevHooks *hooks) {
        c->hooks = *hooks;
}

int chardev_attach_stdio(Chardev *c, int in_fd, int out_fd) {
        int r;

        c->stdio_out_fd = out_fd;
        c->stdio_in_fd = in_fd;
        if (in_fd < 0)
                return 0;
        (void) fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
        r = sd_event_add_io(c->event, &c->stdio_in_source, in_fd, EPOLLIN, on_stdin, c);
        if (r == -EPERM) {
                /* A regular file (or a /dev/null replaced by one): nothing to read interactively. */
                c->stdio_in_source = NULL;
                return 0;
        }
        return r;
}

int chardev_attach_file(Chardev *c, int out_fd) {
        safe_close(c->file_fd);
        c->file_fd = out_fd;
        return 0;
}

int chardev_attach_client(Chardev *c, int fd) {
        int r;

        if (c->client_fd >= 0)
                return -EBUSY;
        r = sd_event_add_io(c->event, &c->client_source, fd, EPOLLIN, on_client, c);
        if (r < 0)
                return r;
        c->client_fd = fd;
        c->client_blocked = false;
        update_client_events(c);
        return 0;
}

void chardev_detach_client(Chardev *c) {
        c->client_source = sd_event_source_disable_unref(c->client_source);
        c->client_fd = safe_close(c->client_fd);
        /* Output that waited for this client is the scrollback's now: drain it, which lifts a throttle. */
        if (c->client_blocked) {
                c->client_blocked = false;
                if (c->wake_fd >= 0)
                        wake(c);
        }
}

bool chardev_has_client(const Chardev *c) {
        return c->client_fd >= 0;
}

int chardev_get_scrollback(Chardev *c, uint8_t **ret_data, size_t *ret_size) {
        uint8_t *data;
        size_t n;

        pthread_mutex_lock(&c->lock);
        n = ring_used(&c->scrollback);
        data = malloc(n ? n : 1);
        if (data) {
                for (size_t i = 0; i < n; i++)
                        data[i] = c->scrollback.data[(c->scrollback.tail + i) & (c->scrollback.size - 1)];
        }
        pthread_mutex_unlock(&c->lock);
        if (!data)
                return -ENOMEM;
        *ret_data = data;
        *ret_size = n;
        return 0;
}
