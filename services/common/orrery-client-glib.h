/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Runs an sd-bus connection (and so liborrery-client) from a GLib main
 * loop, for the GTK viewer: one GSource that polls the bus fd with the
 * events sd-bus asks for, wakes up at sd-bus's own deadline (method call
 * timeouts), and dispatches with sd_bus_process(). No second D-Bus stack.
 */

#include <glib.h>
#include <systemd/sd-bus.h>

#include "orrery-client.h"

/* A new source for bus (referenced until the source is finalized). Not attached yet. */
GSource *orrery_bus_source_new(sd_bus *bus);

/*
 * Attaches a source for the client's bus to context (NULL: the default
 * context); returns the source id, 0 on failure. Remove it with
 * g_source_remove(id) on the default context, otherwise with
 * g_source_destroy(g_main_context_find_source_by_id(context, id)).
 * The source removes itself when the connection fails or is closed.
 */
guint orrery_client_attach_glib(OrreryClient *c, GMainContext *context);
