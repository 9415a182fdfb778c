/* SPDX-License-Identifier: MIT */

/*
 * org.orrery.Console1 (dbus/org.orrery.Console1.xml): the framebuffer as a
 * sealed memfd, and Update signals built from its dirty bitmap.
 *
 * Damage is collected by a 60 Hz timer that runs only while someone
 * watches (sd_bus_track drops a watcher whose connection goes away, and
 * the timer stops at its next tick): an unwatched VM spends nothing on
 * display work.
 */

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "bus/bus.h"
#include "macro.h"

#define FRAME_USEC (1000000ULL / 60)
#define MAX_RECTS 64

static int property_label(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", "Framebuffer 0");
}

static int property_geometry(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        uint32_t w, h, stride;

        (void) machine_framebuffer(b->machine, &w, &h, &stride);
        switch (property[0]) {
        case 'W':
                return sd_bus_message_append(reply, "u", w);
        case 'H':
                return sd_bus_message_append(reply, "u", h);
        case 'S':
                return sd_bus_message_append(reply, "u", stride);
        default:
                return sd_bus_message_append(reply, "u", ORRERY_FORMAT_XRGB8888);
        }
}

static int property_watchers(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        return sd_bus_message_append(reply, "u", (uint32_t) sd_bus_track_count(b->console_watchers));
}

static int method_get_framebuffer(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        uint32_t w, h, stride;
        int r, fd;

        r = bus_check_caller(m, error);
        if (r < 0)
                return r;
        fd = machine_framebuffer_fd(b->machine);
        if (fd < 0 || !machine_framebuffer(b->machine, &w, &h, &stride))
                return sd_bus_error_setf(error, ORRERY_ERROR_UNAVAILABLE, "VM '%s' has no framebuffer (--display none)", b->name);
        return sd_bus_reply_method_return(m, "htuuuu", fd, (uint64_t) 0, w, h, stride, ORRERY_FORMAT_XRGB8888);
}

/* Turns dirty pages into full-width rectangles of whole lines, merging neighbours. */
static int emit_update(VmBus *b) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        uint32_t w, h, stride;
        uint32_t rect_y0 = 0, rect_y1 = 0; /* current run, [y0, y1) */
        unsigned n = 0;
        bool open = false;
        int r;

        if (!machine_framebuffer(b->machine, &w, &h, &stride) || stride == 0)
                return 0;

        r = sd_bus_message_new_signal(b->bus, &msg, b->console_path, "org.orrery.Console1", "Update");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(msg, 'a', "(uuuu)");
        if (r < 0)
                return r;

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
                                r = sd_bus_message_append(msg, "(uuuu)", 0u, rect_y0, w, rect_y1 - rect_y0);
                                if (r < 0)
                                        return r;
                                n++;
                        }
                        rect_y0 = y0;
                        rect_y1 = y1;
                        open = true;
                }
        }
        if (open) {
                r = sd_bus_message_append(msg, "(uuuu)", 0u, rect_y0, w, rect_y1 - rect_y0);
                if (r < 0)
                        return r;
                n++;
        }
        if (n == 0)
                return 0;
        r = sd_bus_message_close_container(msg);
        if (r < 0)
                return r;
        return sd_bus_send(b->bus, msg, NULL);
}

static int on_frame(sd_event_source *s, uint64_t usec, void *userdata) {
        VmBus *b = userdata;

        /* The track forgets watchers that leave the bus; the timer stops with the last one. */
        if (sd_bus_track_count(b->console_watchers) == 0)
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        (void) emit_update(b);
        return sd_event_source_set_time(s, usec + FRAME_USEC);
}

static void update_timer(VmBus *b) {
        bool watched = sd_bus_track_count(b->console_watchers) > 0;
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
        int r;

        r = bus_check_caller(m, error);
        if (r < 0)
                return r;
        /*
         * No handler on the track: an empty track with a handler stays queued
         * for dispatch and keeps the bus's event source firing. on_frame()
         * notices the last watcher leaving instead.
         */
        if (!b->console_watchers) {
                r = sd_bus_track_new(b->bus, &b->console_watchers, NULL, NULL);
                if (r < 0)
                        return r;
        }
        if (!sd_bus_track_contains(b->console_watchers, sd_bus_message_get_sender(m))) {
                r = sd_bus_track_add_sender(b->console_watchers, m);
                if (r < 0)
                        return r;
        }
        update_timer(b);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_unwatch(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        int r;

        r = bus_check_caller(m, error);
        if (r < 0)
                return r;
        (void) sd_bus_track_remove_sender(b->console_watchers, m);
        update_timer(b);
        return sd_bus_reply_method_return(m, NULL);
}

const sd_bus_vtable console1_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Label", "s", property_label, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Width", "u", property_geometry, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Height", "u", property_geometry, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Stride", "u", property_geometry, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Format", "u", property_geometry, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Watchers", "u", property_watchers, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("GetFramebuffer", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("h", fd, "t", offset, "u", width, "u", height, "u", stride, "u", format),
                                method_get_framebuffer, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Watch", NULL, NULL, method_watch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Unwatch", NULL, NULL, method_unwatch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("Update", SD_BUS_ARGS("a(uuuu)", rects), 0),
        SD_BUS_SIGNAL_WITH_ARGS("ModeChanged", SD_BUS_ARGS("u", width, "u", height, "u", stride, "u", format), 0),
        SD_BUS_VTABLE_END
};

int console1_setup(VmBus *b) {
        uint32_t w, h, stride;
        int r;

        if (!machine_framebuffer(b->machine, &w, &h, &stride))
                return 0; /* --display none: no console object */

        r = sd_event_add_time(b->event, &b->console_timer, CLOCK_MONOTONIC, 0, 1000, on_frame, b);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(b->console_timer, SD_EVENT_OFF);
        return sd_bus_add_object_vtable(b->bus, NULL, b->console_path, "org.orrery.Console1", console1_vtable, b);
}

void console1_teardown(VmBus *b) {
        b->console_timer = sd_event_source_disable_unref(b->console_timer);
        b->console_watchers = sd_bus_track_unref(b->console_watchers);
}
