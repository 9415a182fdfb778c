/* SPDX-License-Identifier: MIT */

/*
 * orrery-viewer: a GTK viewer for Orrery VMs.
 *
 * A GtkApplication (org.orrery.Viewer, D-Bus activatable): one window per
 * VM, opened with `orrery-viewer NAME`, org.freedesktop.Application.Open
 * with the URI orrery:NAME (or a path whose last element is NAME), or from
 * the chooser that Activate opens. All windows share one connection to the
 * VMs' bus, driven from the GLib main loop by liborrery-client's GSource.
 */

#include <errno.h>
#include <stdlib.h>
#include <locale.h>
#include <string.h>

#include "macro.h" /* before gtk.h: glib redefines MIN/MAX the same way */
#include <gtk/gtk.h>

#include "chooser.h"
#include "debug.h"
#include "orrery-client-glib.h"
#include "viewer.h"
#include "vm-window.h"

#define APPLICATION_ID "org.orrery.Viewer"
/* No display to show windows on; RestartPreventExitStatus= of orrery-viewer.service (sysexits' EX_CONFIG). */
#define EXIT_NO_DISPLAY 78

void viewer_open_vm(Viewer *v, const char *name) {
        VmWindow *w = g_hash_table_lookup(v->windows, name);

        if (!w) {
                w = vm_window_new(v, name);
                g_hash_table_insert(v->windows, g_strdup(name), w);
        }
        vm_window_present(w);
}

void viewer_vm_window_closed(Viewer *v, const char *name) {
        g_hash_table_remove(v->windows, name);
}

void viewer_open_chooser(Viewer *v) {
        if (!v->chooser)
                v->chooser = chooser_new(v);
        chooser_present(v->chooser);
}

void viewer_chooser_closed(Viewer *v) {
        v->chooser = NULL;
}

/* orrery:NAME (orrery://NAME) names a VM; any other file its last path element (`orrery-viewer demo`). */
static char *name_from_file(GFile *file) {
        g_autofree char *uri = g_file_get_uri(file);

        if (uri && g_str_has_prefix(uri, "orrery:")) {
                const char *s = uri + strlen("orrery:");

                while (*s == '/')
                        s++;
                return g_uri_unescape_segment(s, s + strcspn(s, "/"), NULL) ?: g_strdup(s);
        }
        return g_file_get_basename(file) ?: g_strdup(uri ? uri : "");
}

static void on_open(GApplication *app, GFile **files, gint n_files, const gchar *hint, gpointer userdata) {
        Viewer *v = userdata;

        for (gint i = 0; i < n_files; i++) {
                g_autofree char *name = name_from_file(files[i]);
                viewer_open_vm(v, name);
        }
}

static void on_activate(GApplication *app, gpointer userdata) {
        viewer_open_chooser(userdata);
}

static gboolean on_bus_lost(gpointer userdata) {
        Viewer *v = userdata;
        g_autofree char *text = NULL;
        GHashTableIter i;
        gpointer w;

        text = g_strdup_printf("Lost the connection to %s", v->bus_address ? v->bus_address : "the session bus");
        log_error("%s", text);
        v->bus_lost = true;
        g_hash_table_iter_init(&i, v->windows);
        while (g_hash_table_iter_next(&i, NULL, &w))
                vm_window_set_error(w, text);
        if (v->chooser)
                chooser_set_error(v->chooser, text);
        return G_SOURCE_REMOVE;
}

/* A dispose function has no userdata; there is one viewer per process. */
static Viewer *the_viewer;

/* The bus source is going away: the connection failed (at exit the loop no longer runs to see the idle). */
static void on_bus_source_dispose(GSource *source) {
        if (the_viewer)
                g_idle_add(on_bus_lost, the_viewer);
}

/* app.quit (`gapplication action org.orrery.Viewer quit`): closes every window, which ends the viewer. */
static void on_quit(GSimpleAction *action, GVariant *parameter, gpointer userdata) {
        Viewer *v = userdata;
        GList *windows;

        while ((windows = gtk_application_get_windows(v->app)))
                gtk_widget_destroy(windows->data);
}

static void on_startup(GApplication *app, gpointer userdata) {
        Viewer *v = userdata;
        OrreryClient *client = NULL;
        g_autoptr(GSimpleAction) quit = g_simple_action_new("quit", NULL);
        GSource *source;
        int r;

        g_signal_connect(quit, "activate", G_CALLBACK(on_quit), v);
        g_action_map_add_action(G_ACTION_MAP(app), G_ACTION(quit));

        r = orrery_client_new(v->bus_address, &client);
        if (r < 0) {
                v->client_error = r;
                v->client_error_text = g_strdup_printf("Cannot connect to %s: %s",
                                                       v->bus_address ? v->bus_address : "the session bus",
                                                       g_strerror(-r));
                log_error("%s", v->client_error_text);
                return;
        }
        source = orrery_bus_source_new(orrery_client_get_bus(client));
        if (source) {
                /* The source goes away by itself when the connection fails: that is how we learn of it. */
                g_source_set_dispose_function(source, on_bus_source_dispose);
                v->bus_source = g_source_attach(source, NULL);
                g_source_unref(source);
        }
        if (v->bus_source == 0) {
                v->client_error = -EIO;
                v->client_error_text = g_strdup("Cannot run the bus connection from the main loop");
                log_error("%s", v->client_error_text);
                orrery_client_unref(client);
                return;
        }
        v->client = client;
}

/*
 * Without a display GTK would abort in startup and systemd would restart
 * the service until its start limit: say what is missing and exit with
 * EXIT_NO_DISPLAY, which orrery-viewer.service does not restart on.
 * Returns -1 (go on) or the exit status.
 */
static gint check_display(void) {
        const char *x11 = getenv("DISPLAY"), *wayland = getenv("WAYLAND_DISPLAY");

        if ((!x11 || !*x11) && (!wayland || !*wayland)) {
                log_error("No display: neither DISPLAY nor WAYLAND_DISPLAY is set. "
                          "Started by systemd? Pass the graphical session's to the user manager: "
                          "systemctl --user import-environment DISPLAY WAYLAND_DISPLAY");
                return EXIT_NO_DISPLAY;
        }
        if (!gtk_init_check(NULL, NULL)) {
                log_error("Cannot open the display (DISPLAY=%s, WAYLAND_DISPLAY=%s). "
                          "Started by systemd? The user manager may hold stale values; from the graphical "
                          "session: systemctl --user import-environment DISPLAY WAYLAND_DISPLAY",
                          x11 ?: "", wayland ?: "");
                return EXIT_NO_DISPLAY;
        }
        return -1;
}

static gint on_handle_local_options(GApplication *app, GVariantDict *options, gpointer userdata) {
        Viewer *v = userdata;
        const char *address = NULL;

        if (g_variant_dict_contains(options, "version")) {
                g_print("orrery-viewer %s\n", ORRERY_VERSION);
                return 0;
        }
        if (g_variant_dict_lookup(options, "bus", "&s", &address)) {
                if (!*address) {
                        log_error("--bus needs an address");
                        return 2;
                }
                v->bus_address = g_strdup(address);
                /* Another bus than the session's: this process must be the one that shows the windows. */
                g_application_set_flags(app, g_application_get_flags(app) | G_APPLICATION_NON_UNIQUE);
        }
        return check_display();
}

int main(int argc, char *argv[]) {
        static const GOptionEntry entries[] = {
                { "bus", 0, 0, G_OPTION_ARG_STRING, NULL, "Find the VMs on this D-Bus address, not the session bus",
                  "ADDRESS" },
                { "version", 0, 0, G_OPTION_ARG_NONE, NULL, "Show the version and exit", NULL },
                { NULL },
        };
        Viewer v = {};
        int status;

        setlocale(LC_ALL, "");
        viewer_log_setup();

        the_viewer = &v;
        v.windows = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        v.app = gtk_application_new(APPLICATION_ID, G_APPLICATION_HANDLES_OPEN);
        g_application_add_main_option_entries(G_APPLICATION(v.app), entries);
        g_application_set_option_context_parameter_string(G_APPLICATION(v.app), "[NAME…]");
        g_application_set_option_context_summary(G_APPLICATION(v.app),
                                                 "Shows Orrery VMs: one window per VM NAME, or a chooser of the VMs "
                                                 "on the bus.");
        g_signal_connect(v.app, "handle-local-options", G_CALLBACK(on_handle_local_options), &v);
        g_signal_connect(v.app, "startup", G_CALLBACK(on_startup), &v);
        g_signal_connect(v.app, "activate", G_CALLBACK(on_activate), &v);
        g_signal_connect(v.app, "open", G_CALLBACK(on_open), &v);

        status = g_application_run(G_APPLICATION(v.app), argc, argv);
        the_viewer = NULL; /* removing the bus source below is no lost connection */

        /* Windows are gone (the application ran until the last closed). */
        g_object_unref(v.app);
        if (v.bus_source) {
                /* Gone already if the connection failed. */
                GSource *source = g_main_context_find_source_by_id(NULL, v.bus_source);
                if (source)
                        g_source_destroy(source);
        }
        orrery_client_unref(v.client);
        g_hash_table_unref(v.windows);
        g_free(v.bus_address);
        g_free(v.client_error_text);
        return status;
}
