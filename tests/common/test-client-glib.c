/* SPDX-License-Identifier: MIT */

/*
 * liborrery-client driven by a GLib main loop through the GSource adapter:
 * discovery, async attach, property changes, and a method call timeout
 * (which only fires if the source honours sd_bus_get_timeout()).
 */

#include <signal.h>
#include <string.h>

/* First: glib.h replaces macro.h's MIN/MAX instead of clashing. */
#include "orrery-client-internal.h"
#include "orrery-client-glib.h"
#include "tap.h"
#include "test-bus.h"

/* tap.h's CHECK formats its message before it evaluates the condition;
 * here conditions run the event loop, so evaluate first, then describe. */
#define CHECK_LATE(cond, ...)                           \
        do {                                            \
                bool _ok = (cond);                      \
                CHECK(_ok, __VA_ARGS__);                \
        } while (0)

static GMainContext *context;
static sd_bus *ctl;

static unsigned added, removed, appeared, vanished, n_state, n_replies;
static char state[64];
static int reply_r;
static uint64_t reply_usec;

static gboolean on_guard(gpointer userdata) {
        *(bool *) userdata = true;
        return G_SOURCE_REMOVE;
}

/* Iterates the context, blocking, until cond or ms pass. No periodic
 * wake-ups: the bus source must wake the loop by itself. */
#define RUN_UNTIL(cond, ms)                                                     \
        ({                                                                      \
                bool _timed_out = false, _run_ok;                               \
                GSource *_guard = g_timeout_source_new(ms);                     \
                g_source_set_callback(_guard, on_guard, &_timed_out, NULL);     \
                g_source_attach(_guard, context);                               \
                while (!(_run_ok = (cond)) && !_timed_out)                      \
                        g_main_context_iteration(context, TRUE);                \
                g_source_destroy(_guard);                                       \
                g_source_unref(_guard);                                         \
                _run_ok;                                                        \
        })

static void on_vm_added(OrreryVmWatch *w, const char *name, void *userdata) {
        if (streq(name, "glibvm"))
                added++;
}

static void on_vm_removed(OrreryVmWatch *w, const char *name, void *userdata) {
        if (streq(name, "glibvm"))
                removed++;
}

static void on_appeared(OrreryVm *vm, void *userdata) {
        appeared++;
}

static void on_vanished(OrreryVm *vm, void *userdata) {
        vanished++;
}

static void on_state(OrreryVm *vm, const char *s, void *userdata) {
        n_state++;
        snprintf(state, sizeof(state), "%s", s);
}

static void on_reply(OrreryVm *vm, int r, const sd_bus_error *error, void *userdata) {
        n_replies++;
        reply_r = r;
        reply_usec = test_now_usec();
}

int main(void) {
        static const OrreryVmWatchCallbacks wcb = { .vm_added = on_vm_added, .vm_removed = on_vm_removed };
        static const OrreryVmCallbacks cb = {
                .appeared = on_appeared,
                .vanished = on_vanished,
                .state_changed = on_state,
        };
        OrreryClient *client = NULL;
        OrreryVmWatch *w = NULL;
        OrreryVm *vm = NULL;
        OrreryFramebuffer fb;
        const char *address;
        uint64_t t0;
        guint source_id;
        pid_t pid;
        int r;

        test_watchdog(30);
        address = test_bus_start();
        if (!address) {
                printf("Bail out! cannot start a private dbus-daemon\n");
                return 1;
        }

        context = g_main_context_new();
        r = orrery_client_new(address, &client);
        if (r >= 0)
                r = sd_bus_new(&ctl);
        if (r >= 0)
                r = sd_bus_set_address(ctl, address);
        if (r >= 0)
                r = sd_bus_set_bus_client(ctl, true);
        if (r >= 0)
                r = sd_bus_start(ctl);
        if (r < 0) {
                printf("Bail out! cannot connect: %s\n", strerror(-r));
                return 1;
        }
        source_id = orrery_client_attach_glib(client, context);
        CHECK_LATE(source_id > 0, "bus source attached to a GMainContext");

        CHECK_LATE(orrery_vm_watch_new(client, &wcb, NULL, &w) == 0, "watch created");
        CHECK_LATE(RUN_UNTIL(orrery_vm_watch_is_ready(w), 2000), "initial list received from the GLib loop");
        CHECK_LATE(orrery_vm_attach(client, "glibvm", &cb, NULL, ORRERY_VM_ATTACH_ASYNC, &vm) == 0, "async attach");

        pid = test_fake_vm_start("glibvm", NULL);
        CHECK_LATE(pid > 0, "fake VM started");
        CHECK_LATE(RUN_UNTIL(added == 1, 2000), "vm_added");
        CHECK_LATE(RUN_UNTIL(appeared == 1, 2000), "appeared");
        CHECK_LATE(orrery_vm_get_framebuffer(vm, 0, &fb) == 0 && fb.width == 64, "framebuffer mapped");

        {
                /* Idle, the loop must sleep: a source that wakes its context in every prepare makes it spin. */
                bool timed_out = false;
                unsigned n = 0;
                GSource *guard = g_timeout_source_new(300);

                g_source_set_callback(guard, on_guard, &timed_out, NULL);
                g_source_attach(guard, context);
                while (!timed_out && n < 100000) {
                        g_main_context_iteration(context, TRUE);
                        n++;
                }
                g_source_destroy(guard);
                g_source_unref(guard);
                CHECK_LATE(n < 50, "an idle connection lets the loop sleep (%u iterations in 300 ms)", n);
        }

        r = sd_bus_call_method(ctl, "org.orrery.VM.glibvm", "/org/orrery/FakeVM", "org.orrery.FakeVM1", "SetState",
                               NULL, NULL, "s", "paused");
        CHECK_LATE(r >= 0 && RUN_UNTIL(n_state == 1, 2000) && streq(state, "paused"), "state_changed(paused)");

        /* Nothing but the sd-bus deadline can wake the loop here. */
        orrery_client_set_timeout(client, 300 * 1000);
        kill(pid, SIGSTOP);
        t0 = test_now_usec();
        CHECK_LATE(orrery_vm_action(vm, ORRERY_VM_ACTION_RESUME, on_reply, NULL) == 0, "call to a hung VM");
        CHECK_LATE(RUN_UNTIL(n_replies == 1, 3000) && reply_r == -ETIMEDOUT, "times out with -ETIMEDOUT (%d)", reply_r);
        CHECK_LATE(reply_usec - t0 < 1500 * 1000, "... on time: the source honours sd_bus_get_timeout (%" PRIu64 " ms)",
              (reply_usec - t0) / 1000);
        kill(pid, SIGCONT);

        test_fake_vm_kill(pid);
        CHECK_LATE(RUN_UNTIL(vanished == 1 && removed == 1, 2000), "vanished and vm_removed");

        vm = orrery_vm_detach(vm);
        w = orrery_vm_watch_free(w);
        {
                /* g_source_remove() only knows the default context. */
                GSource *source = g_main_context_find_source_by_id(context, source_id);

                CHECK_LATE(source, "source found in its context");
                if (source)
                        g_source_destroy(source);
        }
        client = orrery_client_unref(client);
        ctl = sd_bus_flush_close_unref(ctl);
        g_main_context_unref(context);
        test_bus_stop();
        return tap_finish();
}
