/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What the windows share: the application, its one bus connection to the
 * VMs (through liborrery-client, driven from the GLib main loop), and
 * the open windows by VM name (one window per VM).
 */

#include <gtk/gtk.h>
#include <stdbool.h>

#include "orrery-client.h"

typedef struct VmWindow VmWindow;
typedef struct Chooser Chooser;

typedef struct Viewer {
        GtkApplication *app;
        char *bus_address;   /* --bus, NULL: the session bus */
        OrreryClient *client; /* NULL when the bus could not be reached */
        int client_error;     /* then: why (negative errno) */
        char *client_error_text;
        guint bus_source;
        bool bus_lost;       /* the connection failed after it was made */
        GHashTable *windows; /* VM name -> VmWindow */
        Chooser *chooser;
} Viewer;

/* Opens (or presents) the window of the VM called name. */
void viewer_open_vm(Viewer *v, const char *name);
/* Opens (or presents) the chooser that lists the VMs on the bus. */
void viewer_open_chooser(Viewer *v);
/* The chooser's window was closed. */
void viewer_chooser_closed(Viewer *v);
/* A VM's window was closed. */
void viewer_vm_window_closed(Viewer *v, const char *name);
