/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The VM's screen in a GtkDrawingArea: a cairo image surface straight over
 * the read-only mapped framebuffer (no copy), redrawn only where the VM
 * reports damage, either scaled to fit the widget or at 1:1 device pixels
 * (HiDPI aware: 1:1 means one guest pixel per physical pixel).
 */

#include <gtk/gtk.h>
#include <stdbool.h>

#include "orrery-client.h"

typedef struct Display Display;

/* The display draws into area and lives as long as it (no separate free). */
Display *display_new(GtkWidget *area, const char *debug_name);

/* The framebuffer to show, or NULL for none. fb must stay mapped until
 * the next display_set_framebuffer() (the client library's rule). Returns
 * -EOPNOTSUPP for a pixel format the display cannot show. */
int display_set_framebuffer(Display *d, const OrreryFramebuffer *fb);
bool display_has_framebuffer(Display *d);
/* The framebuffer's size in its own pixels; false when there is none. */
bool display_get_size(Display *d, uint32_t *ret_width, uint32_t *ret_height);
void display_damage(Display *d, const OrreryRect *rects, size_t n_rects);

void display_set_fit(Display *d, bool fit);
bool display_get_fit(Display *d);

/* Widget coordinates -> framebuffer pixel, clamped to the screen. false when there is no framebuffer. */
bool display_to_framebuffer(Display *d, double x, double y, uint32_t *ret_x, uint32_t *ret_y);
