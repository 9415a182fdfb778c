/* SPDX-License-Identifier: MIT */

/*
 * The VM's screen. The cairo surface is created over the client library's
 * read-only mapping of the framebuffer memfd, so drawing reads the guest's
 * pixels where they are: the only copies are the ones GTK makes of the
 * damaged region on its way to the window. cairo only ever reads a source
 * surface, which is what makes a PROT_READ mapping safe to wrap.
 */

#include <errno.h>
#include <math.h>

#include "macro.h" /* before gtk.h: glib redefines MIN/MAX the same way */
#include <gtk/gtk.h>

#include "debug.h"
#include "display.h"

struct Display {
        GtkWidget *area;
        char *debug_name;

        cairo_surface_t *surface; /* over the mapped framebuffer; NULL: nothing to show */
        uint32_t width, height;

        bool fit;      /* scale to fit the widget, else 1:1 physical pixels */
        double scale;  /* logical widget pixels per framebuffer pixel */
        double off_x;  /* where framebuffer pixel (0, 0) is in the widget */
        double off_y;
        double logged_x, logged_y, logged_scale; /* the layout last reported (debug) */
};

static void display_free(gpointer p) {
        Display *d = p;

        if (d->surface)
                cairo_surface_destroy(d->surface);
        g_free(d->debug_name);
        g_free(d);
}

/* Scale and offset for the current allocation; called before every use. */
static void display_layout(Display *d) {
        int w = gtk_widget_get_allocated_width(d->area);
        int h = gtk_widget_get_allocated_height(d->area);
        int sf = MAX(gtk_widget_get_scale_factor(d->area), 1);

        if (!d->surface || w <= 0 || h <= 0) {
                d->scale = 1.0;
                d->off_x = d->off_y = 0;
                return;
        }
        if (d->fit)
                d->scale = MIN((double) w / d->width, (double) h / d->height);
        else
                d->scale = 1.0 / sf;
        /* Centred, on a whole device pixel so that 1:1 stays exact. */
        d->off_x = MAX(floor((w - d->width * d->scale) / 2 * sf) / sf, 0.0);
        d->off_y = MAX(floor((h - d->height * d->scale) / 2 * sf) / sf, 0.0);
}

static void display_log_layout(Display *d) {
        GtkWidget *top = gtk_widget_get_toplevel(d->area);
        int x = 0, y = 0;

        if (!viewer_debug_enabled || !d->surface)
                return;
        if (d->off_x == d->logged_x && d->off_y == d->logged_y && d->scale == d->logged_scale)
                return;
        d->logged_x = d->off_x;
        d->logged_y = d->off_y;
        d->logged_scale = d->scale;
        /* Widgets sit on whole logical pixels; the picture on whole device pixels (x.5 at scale 2). */
        gtk_widget_translate_coordinates(d->area, top, 0, 0, &x, &y);
        viewer_debug("layout %s x=%g y=%g scale=%g size=%ux%u", d->debug_name, x + d->off_x, y + d->off_y, d->scale,
                     d->width, d->height);
}

static gboolean on_draw(GtkWidget *area, cairo_t *cr, gpointer userdata) {
        Display *d = userdata;
        int w = gtk_widget_get_allocated_width(area);
        int h = gtk_widget_get_allocated_height(area);
        double x1, y1, x2, y2;

        display_layout(d);

        cairo_set_source_rgb(cr, 0, 0, 0);
        if (!d->surface) {
                cairo_paint(cr);
                return TRUE;
        }

        /* The border around the picture, without painting under it. */
        cairo_set_fill_rule(cr, CAIRO_FILL_RULE_EVEN_ODD);
        cairo_rectangle(cr, 0, 0, w, h);
        cairo_rectangle(cr, d->off_x, d->off_y, d->width * d->scale, d->height * d->scale);
        cairo_fill(cr);

        cairo_save(cr);
        cairo_translate(cr, d->off_x, d->off_y);
        cairo_scale(cr, d->scale, d->scale);
        cairo_set_source_surface(cr, d->surface, 0, 0);
        /* 1:1 is a plain blit; scaled, smooth it (cairo filters only the clip). */
        cairo_pattern_set_filter(cairo_get_source(cr), d->fit ? CAIRO_FILTER_BILINEAR : CAIRO_FILTER_NEAREST);
        cairo_rectangle(cr, 0, 0, d->width, d->height);
        cairo_fill(cr);
        cairo_restore(cr);

        if (viewer_debug_enabled) {
                /* What was drawn this frame, in framebuffer pixels, and when. */
                cairo_clip_extents(cr, &x1, &y1, &x2, &y2);
                x1 = CLAMP(floor((x1 - d->off_x) / d->scale), 0.0, (double) d->width);
                y1 = CLAMP(floor((y1 - d->off_y) / d->scale), 0.0, (double) d->height);
                x2 = CLAMP(ceil((x2 - d->off_x) / d->scale), 0.0, (double) d->width);
                y2 = CLAMP(ceil((y2 - d->off_y) / d->scale), 0.0, (double) d->height);
                display_log_layout(d);
                viewer_debug("frame %s t=%" G_GINT64_FORMAT " x=%d y=%d w=%d h=%d", d->debug_name,
                             g_get_monotonic_time(), (int) x1, (int) y1, (int) (x2 - x1), (int) (y2 - y1));
        }
        return TRUE;
}

/* 1:1 needs the whole framebuffer's room (the scrolled window scrolls); fit needs none. */
static void display_update_size_request(Display *d) {
        int sf = MAX(gtk_widget_get_scale_factor(d->area), 1);

        if (d->surface && !d->fit)
                gtk_widget_set_size_request(d->area, (int) ((d->width + sf - 1) / sf),
                                            (int) ((d->height + sf - 1) / sf));
        else
                gtk_widget_set_size_request(d->area, -1, -1);
}

static void on_scale_factor_changed(GObject *area, GParamSpec *pspec, gpointer userdata) {
        Display *d = userdata;

        display_update_size_request(d);
        gtk_widget_queue_draw(d->area);
}

Display *display_new(GtkWidget *area, const char *debug_name) {
        Display *d = g_new0(Display, 1);

        d->area = area;
        d->debug_name = g_strdup(debug_name);
        d->fit = true;
        d->scale = 1.0;
        d->logged_scale = -1;
        g_object_set_data_full(G_OBJECT(area), "orrery-display", d, display_free);
        g_signal_connect(area, "draw", G_CALLBACK(on_draw), d);
        g_signal_connect(area, "notify::scale-factor", G_CALLBACK(on_scale_factor_changed), d);
        return d;
}

int display_set_framebuffer(Display *d, const OrreryFramebuffer *fb) {
        cairo_surface_t *s = NULL;
        cairo_format_t format;

        if (d->surface) {
                cairo_surface_destroy(d->surface);
                d->surface = NULL;
        }
        d->logged_scale = -1;

        if (fb) {
                switch (fb->format) {
                case ORRERY_FORMAT_XRGB8888:
                case ORRERY_FORMAT_ARGB8888: /* the guest's alpha means nothing on a screen */
                        format = CAIRO_FORMAT_RGB24;
                        break;
                case ORRERY_FORMAT_RGB565:
                        format = CAIRO_FORMAT_RGB16_565;
                        break;
                default:
                        fb = NULL;
                        break;
                }
                /* cairo's own limits; the client library already checked the mapping's. */
                if (fb && (fb->width > INT_MAX / 4 || fb->height > INT_MAX || fb->stride > INT_MAX ||
                           (int) fb->stride < cairo_format_stride_for_width(format, (int) fb->width) ||
                           fb->stride % 4 != 0))
                        fb = NULL;
                if (fb) {
                        /* cairo never writes to a source surface: the cast away from const is safe. */
                        s = cairo_image_surface_create_for_data((unsigned char *) fb->data, format, (int) fb->width,
                                                                (int) fb->height, (int) fb->stride);
                        if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
                                cairo_surface_destroy(s);
                                s = NULL;
                        }
                }
                if (!s) {
                        display_update_size_request(d);
                        gtk_widget_queue_draw(d->area);
                        return -EOPNOTSUPP;
                }
                d->surface = s;
                d->width = fb->width;
                d->height = fb->height;
        }

        display_update_size_request(d);
        gtk_widget_queue_draw(d->area);
        return 0;
}

bool display_has_framebuffer(Display *d) {
        return d->surface != NULL;
}

bool display_get_size(Display *d, uint32_t *ret_width, uint32_t *ret_height) {
        if (!d->surface)
                return false;
        *ret_width = d->width;
        *ret_height = d->height;
        return true;
}

void display_damage(Display *d, const OrreryRect *rects, size_t n_rects) {
        if (!d->surface)
                return;
        /* The guest wrote to the memory the surface wraps: tell cairo. */
        cairo_surface_mark_dirty(d->surface);
        display_layout(d);
        for (size_t i = 0; i < n_rects; i++) {
                /* One pixel more on each side: scaled pixels straddle and the filter reaches out. */
                double x1 = floor(d->off_x + rects[i].x * d->scale) - 1;
                double y1 = floor(d->off_y + rects[i].y * d->scale) - 1;
                double x2 = ceil(d->off_x + ((double) rects[i].x + rects[i].width) * d->scale) + 1;
                double y2 = ceil(d->off_y + ((double) rects[i].y + rects[i].height) * d->scale) + 1;

                gtk_widget_queue_draw_area(d->area, (int) x1, (int) y1, (int) (x2 - x1), (int) (y2 - y1));
        }
}

void display_set_fit(Display *d, bool fit) {
        if (d->fit == fit)
                return;
        d->fit = fit;
        display_update_size_request(d);
        gtk_widget_queue_draw(d->area);
}

bool display_get_fit(Display *d) {
        return d->fit;
}

bool display_to_framebuffer(Display *d, double x, double y, uint32_t *ret_x, uint32_t *ret_y) {
        double fx, fy;

        if (!d->surface)
                return false;
        display_layout(d);
        fx = floor((x - d->off_x) / d->scale);
        fy = floor((y - d->off_y) / d->scale);
        *ret_x = (uint32_t) CLAMP(fx, 0.0, (double) d->width - 1);
        *ret_y = (uint32_t) CLAMP(fy, 0.0, (double) d->height - 1);
        return true;
}
