/* SPDX-License-Identifier: MIT */

/* A GSource that drives an sd-bus connection from a GLib main loop. */

#include <errno.h>
#include <string.h>

/* First: glib.h replaces macro.h's MIN/MAX (same meaning) instead of clashing. */
#include "orrery-client-internal.h"
#include "orrery-client-glib.h"

typedef struct BusSource {
        GSource source;
        sd_bus *bus;
        gpointer fd_tag;
        GIOCondition events; /* what fd_tag polls for now */
} BusSource;

/* Milliseconds until sd-bus wants to run again: -1 never, 0 now. */
static gint bus_timeout_ms(BusSource *s) {
        uint64_t until, now;

        if (sd_bus_get_timeout(s->bus, &until) < 0 || until == UINT64_MAX)
                return -1;
        now = (uint64_t) g_get_monotonic_time(); /* CLOCK_MONOTONIC, as sd-bus uses */
        if (until <= now)
                return 0;
        /* Round up, or we would wake just before the deadline and spin. */
        return (gint) MIN((until - now + 999) / 1000, (uint64_t) G_MAXINT);
}

static gboolean bus_source_prepare(GSource *source, gint *timeout) {
        BusSource *s = (BusSource *) source;
        int events;

        /* POLLOUT only while sd-bus has something queued. Only on a change:
         * g_source_modify_unix_fd() wakes the context up, and doing that in
         * every prepare makes the loop spin instead of sleeping. */
        events = sd_bus_get_events(s->bus);
        if (events >= 0 && (GIOCondition) events != s->events) {
                s->events = (GIOCondition) events;
                g_source_modify_unix_fd(source, s->fd_tag, s->events);
        }

        *timeout = bus_timeout_ms(s);
        return *timeout == 0;
}

static gboolean bus_source_check(GSource *source) {
        BusSource *s = (BusSource *) source;

        return g_source_query_unix_fd(source, s->fd_tag) != 0 || bus_timeout_ms(s) == 0;
}

static gboolean bus_source_dispatch(GSource *source, GSourceFunc callback, gpointer user_data) {
        BusSource *s = (BusSource *) source;
        int r;

        do
                r = sd_bus_process(s->bus, NULL);
        while (r > 0);

        if (r < 0) {
                log_debug("Processing the bus failed, detaching from the GLib loop: %s", strerror(-r));
                return G_SOURCE_REMOVE;
        }
        return G_SOURCE_CONTINUE;
}

static void bus_source_finalize(GSource *source) {
        BusSource *s = (BusSource *) source;

        s->bus = sd_bus_unref(s->bus);
}

static GSourceFuncs bus_source_funcs = {
        .prepare = bus_source_prepare,
        .check = bus_source_check,
        .dispatch = bus_source_dispatch,
        .finalize = bus_source_finalize,
};

GSource *orrery_bus_source_new(sd_bus *bus) {
        BusSource *s;
        int fd;

        if (!bus)
                return NULL;
        fd = sd_bus_get_fd(bus);
        if (fd < 0)
                return NULL;

        s = (BusSource *) g_source_new(&bus_source_funcs, sizeof(BusSource));
        s->bus = sd_bus_ref(bus);
        s->events = G_IO_IN;
        s->fd_tag = g_source_add_unix_fd(&s->source, fd, s->events);
        g_source_set_name(&s->source, "orrery-bus");
        return &s->source;
}

guint orrery_client_attach_glib(OrreryClient *c, GMainContext *context) {
        GSource *source;
        guint id;

        source = orrery_bus_source_new(orrery_client_get_bus(c));
        if (!source)
                return 0;
        id = g_source_attach(source, context);
        g_source_unref(source);
        return id;
}
