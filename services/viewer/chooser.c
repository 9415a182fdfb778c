/* SPDX-License-Identifier: MIT */

/*
 * The chooser: the VMs on the bus, kept up to date by an OrreryVmWatch
 * (NameOwnerChanged), one row each; activating a row opens the VM's
 * window. Its title, "Orrery VMs (N)", says how many there are.
 */

#include "macro.h" /* before gtk.h: glib redefines MIN/MAX the same way */
#include <gtk/gtk.h>

#include "chooser.h"
#include "debug.h"

struct Chooser {
        Viewer *viewer;
        GtkWidget *window;
        GtkWidget *header;
        GtkWidget *list;
        GtkWidget *placeholder;
        OrreryVmWatch *watch;
        unsigned n_vms;
};

static void chooser_update(Chooser *c) {
        g_autofree char *title = NULL, *subtitle = NULL;

        if (!c->viewer->client || c->viewer->bus_lost) {
                title = g_strdup("Orrery VMs (error)");
                subtitle = g_strdup("the bus cannot be reached");
        } else {
                title = g_strdup_printf("Orrery VMs (%u)", c->n_vms);
                subtitle = c->n_vms == 1 ? g_strdup("1 VM running") : g_strdup_printf("%u VMs running", c->n_vms);
        }
        gtk_header_bar_set_title(GTK_HEADER_BAR(c->header), "Orrery VMs");
        gtk_header_bar_set_subtitle(GTK_HEADER_BAR(c->header), subtitle);
        /* After the header's: a header bar that is a window's titlebar hands its title to the window. */
        gtk_window_set_title(GTK_WINDOW(c->window), title);
}

static GtkWidget *find_row(Chooser *c, const char *name) {
        g_autoptr(GList) rows = gtk_container_get_children(GTK_CONTAINER(c->list));

        for (GList *l = rows; l; l = l->next)
                if (g_str_equal(g_object_get_data(l->data, "vm-name"), name))
                        return l->data;
        return NULL;
}

/* ORRERY_VIEWER_DEBUG: where a VM's row is, so tests can click it. */
static void on_row_allocated(GtkWidget *row, GdkRectangle *allocation, gpointer userdata) {
        Chooser *c = userdata;
        g_autofree char *place = NULL;
        int x = 0, y = 0;

        if (!viewer_debug_enabled)
                return;
        gtk_widget_translate_coordinates(row, c->window, 0, 0, &x, &y);
        place = g_strdup_printf("x=%d y=%d w=%d h=%d", x, y, allocation->width, allocation->height);
        if (g_strcmp0(place, g_object_get_data(G_OBJECT(row), "logged-place")) == 0)
                return;
        viewer_debug("chooser row %s %s", (const char *) g_object_get_data(G_OBJECT(row), "vm-name"), place);
        g_object_set_data_full(G_OBJECT(row), "logged-place", TAKE_PTR(place), g_free);
}

static void on_vm_added(OrreryVmWatch *watch, const char *name, void *userdata) {
        Chooser *c = userdata;
        GtkWidget *row, *label;

        if (!orrery_vm_name_is_valid(name) || find_row(c, name))
                return;
        label = gtk_label_new(name);
        gtk_label_set_xalign(GTK_LABEL(label), 0);
        gtk_widget_set_margin_start(label, 12);
        gtk_widget_set_margin_end(label, 12);
        gtk_widget_set_margin_top(label, 8);
        gtk_widget_set_margin_bottom(label, 8);
        row = gtk_list_box_row_new();
        gtk_container_add(GTK_CONTAINER(row), label);
        g_object_set_data_full(G_OBJECT(row), "vm-name", g_strdup(name), g_free);
        g_signal_connect(row, "size-allocate", G_CALLBACK(on_row_allocated), c);
        gtk_widget_show_all(row);
        gtk_container_add(GTK_CONTAINER(c->list), row);
        c->n_vms++;
        viewer_debug("chooser added %s", name);
        chooser_update(c);
}

static void on_vm_removed(OrreryVmWatch *watch, const char *name, void *userdata) {
        Chooser *c = userdata;
        GtkWidget *row = find_row(c, name);

        if (!row)
                return;
        gtk_widget_destroy(row);
        c->n_vms--;
        viewer_debug("chooser removed %s", name);
        chooser_update(c);
}

static const OrreryVmWatchCallbacks watch_callbacks = {
        .vm_added = on_vm_added,
        .vm_removed = on_vm_removed,
};

static int sort_rows(GtkListBoxRow *a, GtkListBoxRow *b, gpointer userdata) {
        return g_strcmp0(g_object_get_data(G_OBJECT(a), "vm-name"), g_object_get_data(G_OBJECT(b), "vm-name"));
}

static void on_row_activated(GtkListBox *list, GtkListBoxRow *row, gpointer userdata) {
        Chooser *c = userdata;

        viewer_debug("chooser opens %s", (const char *) g_object_get_data(G_OBJECT(row), "vm-name"));
        viewer_open_vm(c->viewer, g_object_get_data(G_OBJECT(row), "vm-name"));
}

static void on_destroy(GtkWidget *window, gpointer userdata) {
        Chooser *c = userdata;

        g_autoptr(GList) rows = gtk_container_get_children(GTK_CONTAINER(c->list));

        c->watch = orrery_vm_watch_free(c->watch);
        g_signal_handlers_disconnect_by_data(c->list, c);
        for (GList *l = rows; l; l = l->next)
                g_signal_handlers_disconnect_by_data(l->data, c);
        viewer_chooser_closed(c->viewer);
        g_free(c);
}

Chooser *chooser_new(Viewer *v) {
        Chooser *c = g_new0(Chooser, 1);
        GtkWidget *scrolled;
        int r;

        c->viewer = v;
        c->window = gtk_application_window_new(v->app);
        gtk_window_set_default_size(GTK_WINDOW(c->window), 360, 420);
        c->header = gtk_header_bar_new();
        gtk_header_bar_set_show_close_button(GTK_HEADER_BAR(c->header), TRUE);
        gtk_header_bar_set_has_subtitle(GTK_HEADER_BAR(c->header), TRUE);
        gtk_window_set_titlebar(GTK_WINDOW(c->window), c->header);

        c->list = gtk_list_box_new();
        gtk_list_box_set_sort_func(GTK_LIST_BOX(c->list), sort_rows, NULL, NULL);
        g_signal_connect(c->list, "row-activated", G_CALLBACK(on_row_activated), c);
        c->placeholder = gtk_label_new(NULL);
        gtk_label_set_line_wrap(GTK_LABEL(c->placeholder), TRUE);
        gtk_label_set_justify(GTK_LABEL(c->placeholder), GTK_JUSTIFY_CENTER);
        gtk_widget_set_margin_start(c->placeholder, 12);
        gtk_widget_set_margin_end(c->placeholder, 12);
        gtk_widget_show(c->placeholder);
        gtk_list_box_set_placeholder(GTK_LIST_BOX(c->list), c->placeholder);

        scrolled = gtk_scrolled_window_new(NULL, NULL);
        gtk_scrolled_window_set_policy(GTK_SCROLLED_WINDOW(scrolled), GTK_POLICY_NEVER, GTK_POLICY_AUTOMATIC);
        gtk_container_add(GTK_CONTAINER(scrolled), c->list);
        gtk_container_add(GTK_CONTAINER(c->window), scrolled);
        g_signal_connect(c->window, "destroy", G_CALLBACK(on_destroy), c);

        if (v->bus_lost) {
                gtk_label_set_text(GTK_LABEL(c->placeholder), "Lost the connection to the bus the VMs are on");
        } else if (!v->client) {
                g_autofree char *text = g_strdup_printf("Cannot reach the bus the VMs are on\n\n%s",
                                                        v->client_error_text);
                gtk_label_set_text(GTK_LABEL(c->placeholder), text);
        } else {
                gtk_label_set_text(GTK_LABEL(c->placeholder),
                                   "No VMs are running\n\nStart one with orrery-vm --name NAME; it shows up here.");
                r = orrery_vm_watch_new(v->client, &watch_callbacks, c, &c->watch);
                if (r < 0) {
                        g_autofree char *text = g_strdup_printf("Cannot follow the VMs on the bus: %s",
                                                                g_strerror(-r));
                        gtk_label_set_text(GTK_LABEL(c->placeholder), text);
                }
        }
        chooser_update(c);
        gtk_widget_show_all(c->window);
        return c;
}

void chooser_set_error(Chooser *c, const char *text) {
        g_autoptr(GList) rows = gtk_container_get_children(GTK_CONTAINER(c->list));

        c->watch = orrery_vm_watch_free(c->watch);
        for (GList *l = rows; l; l = l->next)
                gtk_widget_destroy(l->data);
        c->n_vms = 0;
        gtk_label_set_text(GTK_LABEL(c->placeholder), text);
        chooser_update(c);
}

void chooser_present(Chooser *c) {
        gtk_window_present(GTK_WINDOW(c->window));
}
