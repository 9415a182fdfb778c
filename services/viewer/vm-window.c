/* SPDX-License-Identifier: MIT */

/*
 * One VM's window. Everything it shows is read from the VM (through
 * liborrery-client) and follows it: the buttons send Machine1 calls and
 * change only when the VM's State property says so, so a Pause made by
 * anyone else shows up the same way as one made here.
 *
 * The window title is "<name> — <status>", status being the VM's State
 * ("running", "paused", "shutdown"), "not running" or "error": scripts and
 * window lists can read it without looking at pixels.
 */

#include <errno.h>
#include <string.h>

#include "macro.h" /* before gtk.h: glib redefines MIN/MAX the same way */
#include <gtk/gtk.h>

#include "debug.h"
#include "display.h"
#include "vm-window.h"

#include "orrery-contract.h"

#define STATE_TEXT_MAX 32

enum {
        ACTION_PAUSE,
        ACTION_RESET,
        ACTION_POWER_DOWN,
        ACTION_CTRL_ALT_DEL,
        ACTION_POWER_KEY,
        ACTION_GRAB,
        ACTION_ONE_TO_ONE,
        _ACTION_MAX,
};

struct VmWindow {
        Viewer *viewer;
        char *name;

        GtkWidget *window;
        GtkWidget *header;
        GtkWidget *title;    /* the header's title and subtitle: its own labels, so the */
        GtkWidget *subtitle; /* window title ("<name> — <status>") can differ */
        GtkWidget *stack;
        GtkWidget *message;
        GtkWidget *area;
        GtkWidget *pause_button;
        Display *display;
        GSimpleAction *actions[_ACTION_MAX];

        OrreryVm *vm;
        char *error;        /* permanent: shown instead of the VM (bad name, no bus) */
        char *action_error; /* the last failed button, until the next state change */
        const char *action_what; /* the button last pressed, to name it if it fails */
        bool absent;        /* the VM was not on the bus when the window opened */
        bool ever_seen;     /* it has been on the bus since */
        bool console_valid;
        uint32_t console;
        bool sized; /* the window was fitted to the first framebuffer */
        bool format_unsupported;

        bool grabbed;
        uint8_t keys_down[KEY_CNT / 8];
        uint32_t buttons_down; /* bit n: BTN_LEFT + n */
        bool have_position;
        uint32_t last_x, last_y;
};

/* A string the VM sent, made safe to show: printable ASCII, bounded. */
static char *sanitize(const char *s) {
        size_t n = s ? MIN(strlen(s), (size_t) STATE_TEXT_MAX) : 0;
        char *c = g_strndup(s ? s : "", n);

        for (char *p = c; *p; p++)
                if ((unsigned char) *p < 0x20 || (unsigned char) *p > 0x7e)
                        *p = '?';
        return c;
}

static bool vm_ready(VmWindow *w) {
        return w->vm && orrery_vm_is_ready(w->vm);
}

/* ---------------------------------------------------------------------- */
/* What the window shows                                                   */

static void vm_window_update(VmWindow *w) {
        g_autofree char *state = NULL, *title = NULL, *subtitle = NULL, *message = NULL;
        bool ready = vm_ready(w), paused = false, alive = false;
        const char *status;

        if (ready) {
                state = sanitize(orrery_vm_get_state(w->vm));
                paused = g_strcmp0(state, "paused") == 0;
                alive = g_strcmp0(state, "shutdown") != 0;
        }

        if (w->error)
                status = "error";
        else if (!ready)
                status = "not running";
        else
                status = *state ? state : "unknown";

        if (w->error)
                message = g_strdup(w->error);
        else if (!ready && w->ever_seen)
                message = g_strdup("VM not running\n\nWaiting for it to come back…");
        else if (!ready && w->absent)
                message = g_strdup_printf("No VM named “%s” is running\n\nWaiting for it to start…", w->name);
        else if (!ready)
                message = g_strdup_printf("Connecting to “%s”…", w->name);
        else if (w->format_unsupported)
                message = g_strdup("The VM's display uses a pixel format this viewer cannot show");
        else if (!display_has_framebuffer(w->display))
                message = g_strdup("This VM has no display");

        gtk_label_set_text(GTK_LABEL(w->message), message ?: "");
        gtk_stack_set_visible_child_name(GTK_STACK(w->stack), message ? "message" : "display");

        title = g_strdup_printf("%s — %s", w->name, status);
        gtk_window_set_title(GTK_WINDOW(w->window), title);
        subtitle = g_strdup_printf("%s%s%s%s", status,
                                   w->grabbed ? " · keyboard grabbed (Ctrl+Alt+G releases)" : "",
                                   w->action_error ? " · " : "", w->action_error ?: "");
        gtk_label_set_text(GTK_LABEL(w->title), w->name);
        gtk_label_set_text(GTK_LABEL(w->subtitle), subtitle);

        /* The buttons follow the VM: only what it can do now is sensitive. */
        g_simple_action_set_enabled(w->actions[ACTION_PAUSE], ready && alive);
        g_simple_action_set_state(w->actions[ACTION_PAUSE], g_variant_new_boolean(paused));
        if (!g_str_equal(gtk_button_get_label(GTK_BUTTON(w->pause_button)), paused ? "Resume" : "Pause"))
                gtk_button_set_label(GTK_BUTTON(w->pause_button), paused ? "Resume" : "Pause");
        g_simple_action_set_enabled(w->actions[ACTION_RESET], ready && alive);
        g_simple_action_set_enabled(w->actions[ACTION_POWER_DOWN], ready && alive);
        g_simple_action_set_enabled(w->actions[ACTION_CTRL_ALT_DEL], ready && alive);
        g_simple_action_set_enabled(w->actions[ACTION_POWER_KEY], ready && alive);
        g_simple_action_set_enabled(w->actions[ACTION_GRAB], w->grabbed || (ready && !message));
        g_simple_action_set_enabled(w->actions[ACTION_ONE_TO_ONE], !w->error);
}

static void set_action_error(VmWindow *w, const char *what, int r, const sd_bus_error *error) {
        g_autofree char *text = NULL;

        text = g_strdup_printf("%s failed: %s", what, error && error->message ? error->message : g_strerror(-r));
        g_free(w->action_error);
        w->action_error = g_utf8_make_valid(text, -1);
        vm_window_update(w);
}

/* ---------------------------------------------------------------------- */
/* Keyboard and pointer                                                    */

static void key_send(VmWindow *w, uint32_t code, bool down) {
        bool is_down = w->keys_down[code / 8] & (1u << (code % 8));

        if (down && is_down)
                return; /* the host's autorepeat: the guest repeats keys itself */
        if (down)
                w->keys_down[code / 8] |= (uint8_t) (1u << (code % 8));
        else if (!is_down)
                return; /* never pressed here (e.g. pressed before the window had focus) */
        else
                w->keys_down[code / 8] &= (uint8_t) ~(1u << (code % 8));

        if (vm_ready(w))
                (void) (down ? orrery_vm_key_press(w->vm, code) : orrery_vm_key_release(w->vm, code));
}

/* Whatever is held is let go: focus lost, grab released, VM gone. */
static void release_all(VmWindow *w) {
        for (uint32_t code = 0; code < KEY_CNT; code++)
                if (w->keys_down[code / 8] & (1u << (code % 8)))
                        key_send(w, code, false);
        for (uint32_t n = 0; n < 32; n++)
                if (w->buttons_down & (1u << n)) {
                        if (vm_ready(w))
                                (void) orrery_vm_mouse_release(w->vm, BTN_LEFT + n);
                        w->buttons_down &= ~(1u << n);
                }
}

static void set_grab(VmWindow *w, bool grab) {
        GdkWindow *gdk_window = gtk_widget_get_window(w->window);
        GdkSeat *seat = gdk_display_get_default_seat(gtk_widget_get_display(w->window));

        if (grab && !w->grabbed && gdk_window && seat)
                w->grabbed = gdk_seat_grab(seat, gdk_window, GDK_SEAT_CAPABILITY_KEYBOARD, FALSE, NULL, NULL, NULL,
                                           NULL) == GDK_GRAB_SUCCESS;
        else if (!grab && w->grabbed) {
                if (seat)
                        gdk_seat_ungrab(seat);
                w->grabbed = false;
                release_all(w);
        }
        g_simple_action_set_state(w->actions[ACTION_GRAB], g_variant_new_boolean(w->grabbed));
        vm_window_update(w);
}

static gboolean on_key(GtkWidget *widget, GdkEventKey *event, gpointer userdata) {
        VmWindow *w = userdata;
        GdkModifierType mods = event->state & gtk_accelerator_get_default_mod_mask();
        bool down = event->type == GDK_KEY_PRESS;
        uint32_t code;

        /* Ctrl+Alt+G first: it must release a grab whatever happened to the VM. */
        if (down && (event->keyval == GDK_KEY_g || event->keyval == GDK_KEY_G) &&
            (mods & (GDK_CONTROL_MASK | GDK_MOD1_MASK)) == (GDK_CONTROL_MASK | GDK_MOD1_MASK)) {
                if (w->grabbed || (vm_ready(w) && display_has_framebuffer(w->display)))
                        set_grab(w, !w->grabbed);
                release_all(w); /* the guest saw Ctrl and Alt go down */
                return TRUE;
        }

        if (!vm_ready(w) || !display_has_framebuffer(w->display))
                return FALSE; /* let the window have it (menus, mnemonics) */

        /* X11 and Wayland with evdev: the hardware keycode is the evdev code + 8.
         * Layouts are the guest's business, so keyvals are not used. */
        if (event->hardware_keycode <= 8 || event->hardware_keycode - 8u >= KEY_CNT)
                return TRUE;
        code = event->hardware_keycode - 8u;
        key_send(w, code, down);
        return TRUE;
}

static gboolean on_focus_out(GtkWidget *widget, GdkEventFocus *event, gpointer userdata) {
        VmWindow *w = userdata;

        release_all(w);
        return FALSE;
}

static void pointer_move(VmWindow *w, double x, double y) {
        uint32_t fx, fy;

        if (!vm_ready(w) || !display_to_framebuffer(w->display, x, y, &fx, &fy))
                return;
        if (w->have_position && fx == w->last_x && fy == w->last_y)
                return;
        w->have_position = true;
        w->last_x = fx;
        w->last_y = fy;
        (void) orrery_vm_mouse_set_abs_position(w->vm, fx, fy);
}

static gboolean on_motion(GtkWidget *area, GdkEventMotion *event, gpointer userdata) {
        pointer_move(userdata, event->x, event->y);
        return TRUE;
}

static gboolean on_button(GtkWidget *area, GdkEventButton *event, gpointer userdata) {
        static const uint32_t buttons[] = { [1] = BTN_LEFT, [2] = BTN_MIDDLE, [3] = BTN_RIGHT,
                                            [8] = BTN_SIDE, [9] = BTN_EXTRA };
        VmWindow *w = userdata;
        uint32_t button, bit;

        if (event->type != GDK_BUTTON_PRESS && event->type != GDK_BUTTON_RELEASE)
                return TRUE; /* GTK's synthesized double and triple clicks: the guest counts itself */
        if (event->button >= ELEMENTSOF(buttons) || buttons[event->button] == 0 || !vm_ready(w))
                return TRUE;
        gtk_widget_grab_focus(area);
        button = buttons[event->button];
        bit = 1u << (button - BTN_LEFT);
        pointer_move(w, event->x, event->y);
        if (event->type == GDK_BUTTON_PRESS) {
                w->buttons_down |= bit;
                (void) orrery_vm_mouse_press(w->vm, button);
        } else if (w->buttons_down & bit) {
                w->buttons_down &= ~bit;
                (void) orrery_vm_mouse_release(w->vm, button);
        }
        return TRUE;
}

static gboolean on_scroll(GtkWidget *area, GdkEventScroll *event, gpointer userdata) {
        VmWindow *w = userdata;
        int32_t vertical = 0, horizontal = 0;

        if (!vm_ready(w))
                return TRUE;
        switch (event->direction) {
        case GDK_SCROLL_UP:
                vertical = 1;
                break;
        case GDK_SCROLL_DOWN:
                vertical = -1;
                break;
        case GDK_SCROLL_LEFT:
                horizontal = -1;
                break;
        case GDK_SCROLL_RIGHT:
                horizontal = 1;
                break;
        default:
                return TRUE;
        }
        pointer_move(w, event->x, event->y);
        (void) orrery_vm_mouse_wheel(w->vm, vertical, horizontal);
        return TRUE;
}

/* Make the window as big as the VM's screen at 1:1, within the monitor. */
static void fit_window(VmWindow *w) {
        GdkDisplay *display = gtk_widget_get_display(w->window);
        GdkWindow *gdk_window = gtk_widget_get_window(w->window);
        GdkMonitor *monitor = gdk_window ? gdk_display_get_monitor_at_window(display, gdk_window)
                                         : gdk_display_get_primary_monitor(display);
        int sf = MAX(gtk_widget_get_scale_factor(w->window), 1);
        int header_height = 0;
        GdkRectangle area = { 0, 0, 1920, 1080 };
        uint32_t width, height;

        if (!display_get_size(w->display, &width, &height))
                return;
        if (monitor)
                gdk_monitor_get_workarea(monitor, &area);
        /* The window's size includes its header bar (client-side decorations). */
        gtk_widget_get_preferred_height(w->header, NULL, &header_height);
        gtk_window_resize(GTK_WINDOW(w->window), MIN((int) (width / (uint32_t) sf), area.width),
                          MIN((int) (height / (uint32_t) sf) + header_height, area.height));
}

/* ---------------------------------------------------------------------- */
/* Actions                                                                 */

static void on_action_reply(OrreryVm *vm, int r, const sd_bus_error *error, void *userdata) {
        VmWindow *w = userdata;

        if (r < 0)
                set_action_error(w, w->action_what ?: "The VM", r, error);
}

static void run_vm_action(VmWindow *w, OrreryVmAction action, const char *what) {
        int r;

        if (!vm_ready(w))
                return;
        w->action_error = (g_free(w->action_error), NULL);
        w->action_what = what;
        r = orrery_vm_action(w->vm, action, on_action_reply, w);
        if (r < 0)
                set_action_error(w, what, r, NULL);
}

static void on_pause(GSimpleAction *action, GVariant *parameter, gpointer userdata) {
        VmWindow *w = userdata;

        g_autoptr(GVariant) state = g_action_get_state(G_ACTION(action));

        /* Ask; the state (and the button) change when the VM says so. */
        if (g_variant_get_boolean(state))
                run_vm_action(w, ORRERY_VM_ACTION_RESUME, "Resume");
        else
                run_vm_action(w, ORRERY_VM_ACTION_PAUSE, "Pause");
}

static void on_reset(GSimpleAction *action, GVariant *parameter, gpointer userdata) {
        run_vm_action(userdata, ORRERY_VM_ACTION_RESET, "Reset");
}

static void on_power_down(GSimpleAction *action, GVariant *parameter, gpointer userdata) {
        run_vm_action(userdata, ORRERY_VM_ACTION_POWER_DOWN, "Power down");
}

static void send_keys(VmWindow *w, const uint32_t *codes, size_t n) {
        if (!vm_ready(w))
                return;
        for (size_t i = 0; i < n; i++)
                (void) orrery_vm_key_press(w->vm, codes[i]);
        for (size_t i = n; i > 0; i--)
                (void) orrery_vm_key_release(w->vm, codes[i - 1]);
}

static void on_ctrl_alt_del(GSimpleAction *action, GVariant *parameter, gpointer userdata) {
        static const uint32_t codes[] = { KEY_LEFTCTRL, KEY_LEFTALT, KEY_DELETE };

        send_keys(userdata, codes, ELEMENTSOF(codes));
}

static void on_power_key(GSimpleAction *action, GVariant *parameter, gpointer userdata) {
        static const uint32_t codes[] = { KEY_POWER };

        send_keys(userdata, codes, ELEMENTSOF(codes));
}

static void on_grab_change(GSimpleAction *action, GVariant *value, gpointer userdata) {
        set_grab(userdata, g_variant_get_boolean(value));
}

static void on_one_to_one_change(GSimpleAction *action, GVariant *value, gpointer userdata) {
        VmWindow *w = userdata;

        display_set_fit(w->display, !g_variant_get_boolean(value));
        g_simple_action_set_state(action, value);
        if (g_variant_get_boolean(value))
                fit_window(w); /* 1:1 asks for the room to show it */
}

/* ---------------------------------------------------------------------- */
/* The VM's callbacks                                                      */

static void show_console(VmWindow *w) {
        OrreryFramebuffer fb;
        bool have;

        w->console_valid = orrery_vm_get_console_id(w->vm, 0, &w->console) >= 0;
        have = w->console_valid && orrery_vm_get_framebuffer(w->vm, w->console, &fb) >= 0;
        w->format_unsupported = display_set_framebuffer(w->display, have ? &fb : NULL) == -EOPNOTSUPP;
        if (!w->sized && display_has_framebuffer(w->display)) {
                w->sized = true; /* once: later, the size is the user's */
                fit_window(w);
        }
}

static void on_appeared(OrreryVm *vm, void *userdata) {
        VmWindow *w = userdata;

        w->ever_seen = true;
        w->have_position = false;
        w->action_error = (g_free(w->action_error), NULL);
        show_console(w);
        vm_window_update(w);
}

static void on_vanished(OrreryVm *vm, void *userdata) {
        VmWindow *w = userdata;

        /* Nothing to release on a VM that is gone: forget what was held. */
        memset(w->keys_down, 0, sizeof(w->keys_down));
        w->buttons_down = 0;
        w->console_valid = false;
        set_grab(w, false); /* a grab for a screen that is gone would only trap the user's keys */
        display_set_framebuffer(w->display, NULL);
        vm_window_update(w);
}

static void on_state_changed(OrreryVm *vm, const char *state, void *userdata) {
        VmWindow *w = userdata;

        w->action_error = (g_free(w->action_error), NULL);
        vm_window_update(w);
}

static void on_console_update(OrreryVm *vm, uint32_t console, const OrreryRect *rects, size_t n_rects,
                              void *userdata) {
        VmWindow *w = userdata;

        if (w->console_valid && console == w->console)
                display_damage(w->display, rects, n_rects);
}

static void on_console_mode_changed(OrreryVm *vm, uint32_t console, const OrreryFramebuffer *fb, void *userdata) {
        VmWindow *w = userdata;

        if (!w->console_valid || console != w->console)
                return;
        w->format_unsupported = display_set_framebuffer(w->display, fb) == -EOPNOTSUPP;
        vm_window_update(w);
}

static void on_error(OrreryVm *vm, const char *method, const sd_bus_error *error, void *userdata) {
        VmWindow *w = userdata;

        /* Input that the VM refused (a key its keyboard lacks, Busy) is not worth a word to the user. */
        viewer_debug("%s: %s failed: %s", w->name, method, error && error->message ? error->message : "?");
        if (g_str_equal(method, "GetManagedObjects") || g_str_equal(method, "GetAll") ||
            g_str_equal(method, "GetFramebuffer") || g_str_equal(method, "Watch"))
                set_action_error(w, "Reading the VM", -EIO, error);
}

static const OrreryVmCallbacks vm_callbacks = {
        .appeared = on_appeared,
        .vanished = on_vanished,
        .state_changed = on_state_changed,
        .console_update = on_console_update,
        .console_mode_changed = on_console_mode_changed,
        .error = on_error,
};

/* ---------------------------------------------------------------------- */
/* Building and tearing down                                               */

/* ORRERY_VIEWER_DEBUG: where a button is, so tests can click it as a person would. */
static void on_button_allocated(GtkWidget *button, GdkRectangle *allocation, gpointer userdata) {
        VmWindow *w = userdata;
        g_autofree char *place = NULL;
        int x = 0, y = 0;

        if (!viewer_debug_enabled)
                return;
        gtk_widget_translate_coordinates(button, w->window, 0, 0, &x, &y);
        place = g_strdup_printf("x=%d y=%d w=%d h=%d", x, y, allocation->width, allocation->height);
        if (g_strcmp0(place, g_object_get_data(G_OBJECT(button), "logged-place")) == 0)
                return;
        viewer_debug("widget %s %s %s", w->name, gtk_widget_get_name(button), place);
        g_object_set_data_full(G_OBJECT(button), "logged-place", TAKE_PTR(place), g_free);
}

static void find_close_button(GtkWidget *widget, gpointer userdata) {
        GtkWidget **ret = userdata;

        if (*ret)
                return;
        if (GTK_IS_BUTTON(widget) && gtk_style_context_has_class(gtk_widget_get_style_context(widget), "close"))
                *ret = widget;
        else if (GTK_IS_CONTAINER(widget))
                gtk_container_forall(GTK_CONTAINER(widget), find_close_button, ret);
}

/* The header bar makes its close button itself, when it is laid out: report it too. */
static void on_header_allocated(GtkWidget *header, GdkRectangle *allocation, gpointer userdata) {
        VmWindow *w = userdata;
        GtkWidget *close = NULL;
        GtkAllocation a;

        if (!viewer_debug_enabled)
                return;
        find_close_button(header, &close);
        if (!close || g_object_get_data(G_OBJECT(close), "orrery-hooked"))
                return;
        g_object_set_data(G_OBJECT(close), "orrery-hooked", GINT_TO_POINTER(1));
        gtk_widget_set_name(close, "close");
        g_signal_connect(close, "size-allocate", G_CALLBACK(on_button_allocated), w);
        gtk_widget_get_allocation(close, &a);
        on_button_allocated(close, &a, w);
}

static GtkWidget *header_button(VmWindow *w, GtkWidget *button, const char *name, const char *action,
                                const char *tooltip) {
        gtk_widget_set_name(button, name);
        gtk_actionable_set_action_name(GTK_ACTIONABLE(button), action);
        gtk_widget_set_tooltip_text(button, tooltip);
        gtk_widget_set_focus_on_click(button, FALSE); /* keys belong to the VM */
        g_signal_connect(button, "size-allocate", G_CALLBACK(on_button_allocated), w);
        return button;
}

static void disconnect_tree(GtkWidget *widget, gpointer userdata) {
        g_signal_handlers_disconnect_by_data(widget, userdata);
        if (GTK_IS_CONTAINER(widget))
                gtk_container_forall(GTK_CONTAINER(widget), disconnect_tree, userdata);
}

static void on_destroy(GtkWidget *window, gpointer userdata) {
        VmWindow *w = userdata;

        /* Detach only: closing a viewer never stops, pauses or quits the VM. */
        release_all(w);
        w->vm = orrery_vm_detach(w->vm);
        /* No handler may run on w once it is freed: the window's, the buttons', the area's. */
        disconnect_tree(window, w);
        disconnect_tree(w->header, w);
        for (size_t i = 0; i < _ACTION_MAX; i++)
                g_signal_handlers_disconnect_by_data(w->actions[i], w);
        viewer_vm_window_closed(w->viewer, w->name);
        g_free(w->error);
        g_free(w->action_error);
        g_free(w->name);
        g_free(w);
}

static GMenuModel *build_menu(void) {
        GMenu *menu = g_menu_new(), *keys = g_menu_new(), *view = g_menu_new();

        g_menu_append(keys, "Send Ctrl+Alt+Del", "win.send-ctrl-alt-del");
        g_menu_append(keys, "Send power key", "win.send-power-key");
        g_menu_append(view, "Pixels 1:1", "win.one-to-one");
        g_menu_append(view, "Grab keyboard (Ctrl+Alt+G)", "win.grab");
        g_menu_append_section(menu, NULL, G_MENU_MODEL(keys));
        g_menu_append_section(menu, NULL, G_MENU_MODEL(view));
        g_object_unref(keys);
        g_object_unref(view);
        return G_MENU_MODEL(menu);
}

static void add_actions(VmWindow *w) {
        static const struct {
                const char *name;
                void (*activate)(GSimpleAction *, GVariant *, gpointer);
                void (*change_state)(GSimpleAction *, GVariant *, gpointer);
                bool stateful;
        } table[_ACTION_MAX] = {
                [ACTION_PAUSE] = { "pause", on_pause, NULL, true },
                [ACTION_RESET] = { "reset", on_reset, NULL, false },
                [ACTION_POWER_DOWN] = { "power-down", on_power_down, NULL, false },
                [ACTION_CTRL_ALT_DEL] = { "send-ctrl-alt-del", on_ctrl_alt_del, NULL, false },
                [ACTION_POWER_KEY] = { "send-power-key", on_power_key, NULL, false },
                [ACTION_GRAB] = { "grab", NULL, on_grab_change, true },
                [ACTION_ONE_TO_ONE] = { "one-to-one", NULL, on_one_to_one_change, true },
        };

        for (size_t i = 0; i < _ACTION_MAX; i++) {
                GSimpleAction *a;

                if (table[i].stateful)
                        a = g_simple_action_new_stateful(table[i].name, NULL, g_variant_new_boolean(FALSE));
                else
                        a = g_simple_action_new(table[i].name, NULL);

                if (table[i].activate)
                        g_signal_connect(a, "activate", G_CALLBACK(table[i].activate), w);
                if (table[i].change_state)
                        g_signal_connect(a, "change-state", G_CALLBACK(table[i].change_state), w);
                g_action_map_add_action(G_ACTION_MAP(w->window), G_ACTION(a));
                w->actions[i] = a;
                g_object_unref(a); /* the window's action map holds it */
        }
}

static void build_window(VmWindow *w) {
        g_autoptr(GMenuModel) menu = build_menu();
        GtkWidget *box, *button, *scrolled, *title_box;

        w->window = gtk_application_window_new(w->viewer->app);
        gtk_window_set_default_size(GTK_WINDOW(w->window), 800, 600);
        add_actions(w);

        w->header = gtk_header_bar_new();
        gtk_header_bar_set_show_close_button(GTK_HEADER_BAR(w->header), TRUE);
        title_box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 0);
        gtk_widget_set_valign(title_box, GTK_ALIGN_CENTER);
        w->title = gtk_label_new(NULL);
        gtk_style_context_add_class(gtk_widget_get_style_context(w->title), "title");
        w->subtitle = gtk_label_new(NULL);
        gtk_label_set_ellipsize(GTK_LABEL(w->subtitle), PANGO_ELLIPSIZE_END);
        gtk_style_context_add_class(gtk_widget_get_style_context(w->subtitle), "subtitle");
        gtk_container_add(GTK_CONTAINER(title_box), w->title);
        gtk_container_add(GTK_CONTAINER(title_box), w->subtitle);
        gtk_header_bar_set_custom_title(GTK_HEADER_BAR(w->header), title_box);

        box = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 0);
        gtk_style_context_add_class(gtk_widget_get_style_context(box), "linked");
        w->pause_button = header_button(w, gtk_button_new_with_label("Pause"), "pause", "win.pause",
                                        "Pause or resume the VM");
        gtk_container_add(GTK_CONTAINER(box), w->pause_button);
        gtk_container_add(GTK_CONTAINER(box), header_button(w, gtk_button_new_with_label("Reset"), "reset",
                                                            "win.reset", "Reset the VM (like its reset button)"));
        gtk_header_bar_pack_start(GTK_HEADER_BAR(w->header), box);
        gtk_header_bar_pack_start(GTK_HEADER_BAR(w->header),
                                  header_button(w, gtk_button_new_with_label("Power down"), "power-down",
                                                "win.power-down", "Ask the guest to shut down cleanly"));

        button = gtk_menu_button_new();
        gtk_menu_button_set_menu_model(GTK_MENU_BUTTON(button), menu);
        gtk_widget_set_name(button, "menu");
        gtk_widget_set_focus_on_click(button, FALSE);
        gtk_header_bar_pack_end(GTK_HEADER_BAR(w->header), button);
        gtk_header_bar_pack_end(GTK_HEADER_BAR(w->header),
                                header_button(w, gtk_toggle_button_new_with_label("Grab"), "grab", "win.grab",
                                              "Grab the keyboard: every key goes to the VM (Ctrl+Alt+G releases)"));
        gtk_header_bar_pack_end(GTK_HEADER_BAR(w->header),
                                header_button(w, gtk_toggle_button_new_with_label("1:1"), "one-to-one",
                                              "win.one-to-one", "One VM pixel per screen pixel, or scale to fit"));
        gtk_window_set_titlebar(GTK_WINDOW(w->window), w->header);
        g_signal_connect_after(w->header, "size-allocate", G_CALLBACK(on_header_allocated), w);

        w->area = gtk_drawing_area_new();
        gtk_widget_set_can_focus(w->area, TRUE);
        gtk_widget_add_events(w->area, GDK_POINTER_MOTION_MASK | GDK_BUTTON_PRESS_MASK | GDK_BUTTON_RELEASE_MASK |
                                               GDK_SCROLL_MASK);
        w->display = display_new(w->area, w->name);
        g_signal_connect(w->area, "motion-notify-event", G_CALLBACK(on_motion), w);
        g_signal_connect(w->area, "button-press-event", G_CALLBACK(on_button), w);
        g_signal_connect(w->area, "button-release-event", G_CALLBACK(on_button), w);
        g_signal_connect(w->area, "scroll-event", G_CALLBACK(on_scroll), w);

        scrolled = gtk_scrolled_window_new(NULL, NULL);
        gtk_scrolled_window_set_overlay_scrolling(GTK_SCROLLED_WINDOW(scrolled), FALSE);
        gtk_container_add(GTK_CONTAINER(scrolled), w->area);

        w->message = gtk_label_new(NULL);
        gtk_label_set_justify(GTK_LABEL(w->message), GTK_JUSTIFY_CENTER);
        gtk_label_set_line_wrap(GTK_LABEL(w->message), TRUE);

        w->stack = gtk_stack_new();
        gtk_stack_add_named(GTK_STACK(w->stack), scrolled, "display");
        gtk_stack_add_named(GTK_STACK(w->stack), w->message, "message");
        gtk_container_add(GTK_CONTAINER(w->window), w->stack);

        /* Before the window's own handlers: keys go to the VM, not to GTK's mnemonics and focus chain. */
        g_signal_connect(w->window, "key-press-event", G_CALLBACK(on_key), w);
        g_signal_connect(w->window, "key-release-event", G_CALLBACK(on_key), w);
        g_signal_connect(w->window, "focus-out-event", G_CALLBACK(on_focus_out), w);
        g_signal_connect(w->window, "destroy", G_CALLBACK(on_destroy), w);
        gtk_widget_show_all(w->stack);
        gtk_widget_show_all(w->header);
        gtk_stack_set_visible_child_name(GTK_STACK(w->stack), "message");
}

static bool vm_on_bus(Viewer *v, const char *name) {
        _cleanup_(orrery_strv_freep) char **names = NULL;

        if (orrery_client_list_vms(v->client, &names) < 0)
                return true; /* cannot tell: say "connecting" rather than "absent" */
        for (char **n = names; *n; n++)
                if (g_str_equal(*n, name))
                        return true;
        return false;
}

VmWindow *vm_window_new(Viewer *v, const char *name) {
        VmWindow *w = g_new0(VmWindow, 1);
        int r;

        w->viewer = v;
        w->name = g_utf8_make_valid(name, -1);
        build_window(w);

        if (!orrery_vm_name_is_valid(name))
                w->error = g_strdup_printf("“%s” is not a VM name\n\nNames are letters, digits and _, at most 64, "
                                           "not starting with a digit.",
                                           w->name);
        else if (!v->client)
                w->error = g_strdup_printf("Cannot reach the bus the VMs are on\n\n%s", v->client_error_text);
        else if (v->bus_lost)
                w->error = g_strdup("Lost the connection to the bus the VMs are on");
        else {
                w->absent = !vm_on_bus(v, name);
                r = orrery_vm_attach(v->client, name, &vm_callbacks, w, ORRERY_VM_ATTACH_ASYNC, &w->vm);
                if (r < 0)
                        w->error = g_strdup_printf("Cannot follow VM “%s”: %s", w->name, g_strerror(-r));
        }
        vm_window_update(w);
        return w;
}

void vm_window_set_error(VmWindow *w, const char *text) {
        release_all(w);
        set_grab(w, false);
        w->vm = orrery_vm_detach(w->vm);
        w->console_valid = false;
        display_set_framebuffer(w->display, NULL);
        g_free(w->error);
        w->error = g_utf8_make_valid(text, -1);
        vm_window_update(w);
}

void vm_window_present(VmWindow *w) {
        gtk_window_present(GTK_WINDOW(w->window));
}
