/* SPDX-License-Identifier: MIT */

/*
 * org.orrery.Console1 (dbus/org.orrery.Console1.xml): the framebuffer as a
 * sealed memfd, and Update signals built from its dirty bitmap.
 *
 * Damage is collected by a 60 Hz timer that runs only while someone
 * watches (a watcher that leaves the bus is dropped with its BusPeer, and
 * the timer stops at its next tick): an unwatched VM spends nothing on
 * display work. Update goes to the watchers only, addressed to each: it
 * is of no use to anyone else, and not everyone on the bus need see where
 * the screen changes.
 */

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "bus/bus.h"
#include "macro.h"

#define FRAME_USEC (1000000ULL / 60)
#define MAX_RECTS 64

static int method_get_framebuffer(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        uint32_t w, h, stride;
        int r, fd;

        r = bus_check_caller(b, m, NULL, error);
        if (r < 0)
                return r;
        fd = machine_framebuffer_fd(b->machine);
        if (fd < 0 || !machine_framebuffer(b->machine, &w, &h, &stride))
                return sd_bus_error_setf(error, ORRERY_ERROR_UNAVAILABLE, "VM '%s' has no framebuffer (--display none)", b->name);
        return sd_bus_reply_method_return(m, "htuuuu", fd, (uint64_t) 0, w, h, stride, ORRERY_FORMAT_XRGB8888);
}

typedef struct Rect {
        uint32_t x, y, width, height;
} Rect;

/*
 * Turns dirty pages into full-width rectangles of whole lines, merging
 * neighbours; more than MAX_RECTS become one that covers them all.
 */
static size_t collect_damage(VmBus *b, Rect rects[static MAX_RECTS]) {
        uint32_t w, h, stride;
        uint32_t rect_y0 = 0, rect_y1 = 0; /* current run, [y0, y1) */
        size_t n = 0;
        bool open = false;

        if (!machine_framebuffer(b->machine, &w, &h, &stride) || stride == 0)
                return 0;

        size_t words = machine_framebuffer_dirty_words(b->machine);
        for (size_t word = 0; word < words; word++) {
                uint64_t bits = machine_framebuffer_take_dirty(b->machine, word);
                while (bits) {
                        unsigned bit = (unsigned) __builtin_ctzll(bits);
                        bits &= bits - 1;
                        uint64_t page = word * 64 + bit;
                        uint64_t first = page * 4096, last = first + 4095;
                        uint32_t y0 = (uint32_t) (first / stride), y1 = (uint32_t) (last / stride) + 1;
                        if (y0 >= h)
                                continue;
                        if (y1 > h)
                                y1 = h;
                        if (open && y0 <= rect_y1) {
                                if (y1 > rect_y1)
                                        rect_y1 = y1;
                                continue;
                        }
                        if (open) {
                                if (n == MAX_RECTS) {
                                        /* Too many: one from the first to this run's end. */
                                        rects[0].height = rect_y1 - rects[0].y;
                                        n = 1;
                                }
                                rects[n++] = (Rect) { 0, rect_y0, w, rect_y1 - rect_y0 };
                        }
                        rect_y0 = y0;
                        rect_y1 = y1;
                        open = true;
                }
        }
        if (open) {
                if (n == MAX_RECTS) {
                        rects[0].height = rect_y1 - rects[0].y;
                        return 1;
                }
                rects[n++] = (Rect) { 0, rect_y0, w, rect_y1 - rect_y0 };
        }
        return n;
}

static int send_update(VmBus *b, const char *destination, const Rect *rects, size_t n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        int r;

        r = sd_bus_message_new_signal(b->bus, &msg, b->console_path, "org.orrery.Console1", "Update");
        if (r < 0)
                return r;
        r = sd_bus_message_set_destination(msg, destination);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(msg, 'a', "(uuuu)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = sd_bus_message_append(msg, "(uuuu)", rects[i].x, rects[i].y, rects[i].width, rects[i].height);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(msg);
        if (r < 0)
                return r;
        return sd_bus_send(b->bus, msg, NULL);
}

static void emit_update(VmBus *b) {
        Rect rects[MAX_RECTS];
        size_t n = collect_damage(b, rects);

        if (n == 0)
                return;
        for (BusPeer *p = b->oldest; p; p = p->next)
                if (p->watching)
                        (void) send_update(b, p->name, rects, n);
}

static int on_frame(sd_event_source *s, uint64_t usec, void *userdata) {
        VmBus *b = userdata;

        /* Watchers that leave the bus are forgotten; the timer stops with the last one. */
        if (b->n_watchers == 0)
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        (void) emit_update(b);
        return sd_event_source_set_time(s, usec + FRAME_USEC);
}

static void update_timer(VmBus *b) {
        bool watched = b->n_watchers > 0;
        uint64_t now;

        if (!b->console_timer)
                return;
        if (watched) {
                if (sd_event_now(b->event, CLOCK_MONOTONIC, &now) >= 0)
                        (void) sd_event_source_set_time(b->console_timer, now + FRAME_USEC);
                (void) sd_event_source_set_enabled(b->console_timer, SD_EVENT_ON);
        } else
                (void) sd_event_source_set_enabled(b->console_timer, SD_EVENT_OFF);
}

static int method_watch(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        BusPeer *peer;
        int r;

        r = bus_check_caller(b, m, &peer, error);
        if (r < 0)
                return r;
        if (!peer->watching) {
                peer->watching = true;
                b->n_watchers++;
        }
        update_timer(b);
        return sd_bus_reply_method_return(m, NULL);
}

static void unwatch(VmBus *b, BusPeer *peer) {
        if (!peer->watching)
                return;
        peer->watching = false;
        b->n_watchers--;
        update_timer(b);
}

static int method_unwatch(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        BusPeer *peer;
        int r;

        r = bus_check_caller(b, m, &peer, error);
        if (r < 0)
                return r;
        unwatch(b, peer);
        return sd_bus_reply_method_return(m, NULL);
}

void console1_peer_gone(VmBus *b, BusPeer *peer) {
        unwatch(b, peer);
}

const sd_bus_vtable console1_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Label", "s", NULL, offsetof(VmBus, console_label), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Width", "u", NULL, offsetof(VmBus, fb_width), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Height", "u", NULL, offsetof(VmBus, fb_height), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Stride", "u", NULL, offsetof(VmBus, fb_stride), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Format", "u", NULL, offsetof(VmBus, fb_format), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Watchers", "u", NULL, offsetof(VmBus, n_watchers), 0),
        SD_BUS_METHOD_WITH_ARGS("GetFramebuffer", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("h", fd, "t", offset, "u", width, "u", height, "u", stride, "u", format),
                                method_get_framebuffer, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Watch", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_watch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Unwatch", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_unwatch,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("Update", SD_BUS_ARGS("a(uuuu)", rects), 0),
        SD_BUS_VTABLE_END
};

int console1_setup(VmBus *b) {
        uint32_t w, h, stride;
        int r;

        if (!machine_framebuffer(b->machine, &w, &h, &stride))
                return 0; /* --display none: no console object */
        b->console_label = "Framebuffer 0";
        b->fb_width = w;
        b->fb_height = h;
        b->fb_stride = stride;
        b->fb_format = ORRERY_FORMAT_XRGB8888;

        r = sd_event_add_time(b->event, &b->console_timer, CLOCK_MONOTONIC, 0, 1000, on_frame, b);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(b->console_timer, SD_EVENT_OFF);
        return 0;
}

int console1_publish(VmBus *b) {
        if (!b->console_timer)
                return 0; /* no console */
        return sd_bus_add_object_vtable(b->bus, NULL, b->console_path, "org.orrery.Console1", console1_vtable, b);
}

void console1_teardown(VmBus *b) {
        b->console_timer = sd_event_source_disable_unref(b->console_timer);
}
