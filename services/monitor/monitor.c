/* SPDX-License-Identifier: MIT */
/*
 * orrery-monitor: a human monitor for one VM, built only on the bus API
 * (liborrery-client). Commands carry QEMU's HMP names. It keeps no state
 * that the VM cannot give back: everything shown is read from the VM.
 *
 * Interactive mode runs readline's callback interface from an sd-event loop,
 * so the VM's state changes, disappearance and return are shown as they
 * happen. With -c it runs commands and exits 0 (all ok), 1 (a command
 * failed) or 2 (usage).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "agent.h"
#include "devices.h"
#include "keys.h"
#include "log.h"
#include "io-util.h"
#include "macro.h"
#include "orrery-client.h"
#include "savevm.h"
#include "migrate.h"
#include "gdbserver.h"
#include "screendump.h"
#include "text.h"

#define EXIT_USAGE 2
#define MAX_ARGS 64
#define MAX_LINE 4096
#define MAX_KEYS 16
#define DEFAULT_HOLD_MS 100
#define MAX_HOLD_MS 10000
#define HISTORY_MAX 1000
#define CONSOLE_ESCAPE 0x1d /* Ctrl-] */
#define CONSOLE_PENDING_MAX (64 * 1024)

typedef struct Monitor {
        OrreryClient *client;
        sd_event *event;
        OrreryVm *vm;
        char *name;

        bool interactive;     /* readline on a terminal, messages as things happen */
        bool readline_active; /* the callback handler is installed */
        bool in_command;      /* a line is being run: print plainly */
        char *prompt;
        char *history_path;
        char *shown_state; /* the last state announced, so only changes are */
        sd_event_source *stdin_source;

        /* An async input call failed (sendkey): its errno and message. */
        int input_error;
        char *input_error_message;

        /* console: attached to a chardev */
        int console_fd;
        char *console_id;
        sd_event_source *console_source;
        uint8_t *console_pending; /* typed, not yet taken by the socket */
        size_t console_n_pending;
        bool console_raw;
        struct termios saved_termios;
} Monitor;

static Monitor *the_monitor; /* readline's callbacks take no userdata */

static inline char *mfree_str(char *p) {
        free(p);
        return NULL;
}

static inline uint8_t *mfree_u8(uint8_t *p) {
        free(p);
        return NULL;
}

/* ---------------------------------------------------------------------- */
/* Output                                                                  */

/* A line shown between prompts: readline's line is put aside and redrawn. */
_printf_(2, 3) static void notice(Monitor *m, const char *fmt, ...) {
        _cleanup_free_ char *text = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&text, fmt, ap);
        va_end(ap);
        if (r < 0)
                return;

        if (m->console_fd >= 0) {
                printf("\r\n[orrery-monitor] %s\r\n", text);
                fflush(stdout);
                return;
        }

        if (m->readline_active && !m->in_command) {
                int saved_point = rl_point;
                _cleanup_free_ char *saved_line = rl_copy_text(0, rl_end);

                rl_save_prompt();
                rl_replace_line("", 0);
                rl_redisplay();
                printf("%s\n", text);
                rl_restore_prompt();
                rl_replace_line(saved_line ?: "", 0);
                rl_point = saved_point;
                rl_redisplay();
        } else
                printf("%s\n", text);
        fflush(stdout);
}

static void print_bus_error(const char *what, int r, const sd_bus_error *error) {
        if (error && sd_bus_error_is_set(error))
                log_error("%s: %s", what, printable(error->message ?: error->name));
        else
                log_error_errno(r, "%s: %m", what);
}

/* ---------------------------------------------------------------------- */
/* The VM                                                                  */

static void announce_state(Monitor *m, const char *state) {
        if (!state || (m->shown_state && strcmp(m->shown_state, state) == 0))
                return;

        free(m->shown_state);
        m->shown_state = strdup(state);
        if (!m->interactive)
                return;

        if (strcmp(state, "paused") == 0)
                notice(m, "VM '%s' paused", m->name);
        else if (strcmp(state, "running") == 0)
                notice(m, "VM '%s' running", m->name);
        else if (strcmp(state, "shutdown") == 0)
                notice(m, "VM '%s' shut down", m->name);
        else
                notice(m, "VM '%s' is now %s", m->name, printable(state));
}

static void console_leave(Monitor *m, const char *why);

static void on_vm_state_changed(OrreryVm *vm, const char *state, void *userdata) {
        announce_state(userdata, state);
}

static void on_vm_vanished(OrreryVm *vm, void *userdata) {
        Monitor *m = userdata;

        if (m->console_fd >= 0)
                console_leave(m, "the VM went away");
        m->shown_state = mfree_str(m->shown_state);
        /* A move is told once, when the new process answers. */
        if (m->interactive && !orrery_vm_is_moving(vm))
                notice(m, "VM '%s' is gone from the bus; waiting for it to come back (Ctrl-D leaves)", m->name);
}

static void on_vm_appeared(OrreryVm *vm, void *userdata) {
        Monitor *m = userdata;
        const char *state = orrery_vm_get_state(vm);

        m->shown_state = mfree_str(m->shown_state);
        if (state)
                m->shown_state = strdup(state);
        if (m->interactive && orrery_vm_is_moving(vm))
                notice(m, "VM '%s' moved to a new process (%s, %s)", m->name, orrery_vm_get_owner(vm) ?: "?",
                       state ? printable(state) : "state unknown");
        else if (m->interactive)
                notice(m, "VM '%s' is on the bus (%s)", m->name, state ? printable(state) : "state unknown");
}

static void on_vm_error(OrreryVm *vm, const char *method, const sd_bus_error *error, void *userdata) {
        Monitor *m = userdata;

        if (!m->input_error) {
                m->input_error = sd_bus_error_get_errno(error) ?: EIO;
                free(m->input_error_message);
                m->input_error_message = strdup(error && error->message ? error->message : method);
        }
}

static const OrreryVmCallbacks vm_callbacks = {
        .appeared = on_vm_appeared,
        .vanished = on_vm_vanished,
        .state_changed = on_vm_state_changed,
        .error = on_vm_error,
};

static void update_prompt(Monitor *m) {
        char *p = NULL;

        if (asprintf(&p, "(orrery%s%s) ", m->name ? " " : "", m->name ?: "") < 0)
                return;
        free(m->prompt);
        m->prompt = p;
        if (m->readline_active)
                rl_set_prompt(m->prompt);
}

/* Interactive: a VM that is not there yet is waited for. -c: it must be there. */
static int monitor_attach(Monitor *m, const char *name, bool wait) {
        OrreryVm *vm = NULL;
        int r;

        if (!orrery_vm_name_is_valid(name)) {
                log_error("'%s' is not a valid VM name ([A-Za-z_][A-Za-z0-9_]{0,63})", name);
                return -EINVAL;
        }

        r = orrery_vm_attach(m->client, name, &vm_callbacks, m, ORRERY_VM_ATTACH_NO_CONSOLES, &vm);
        if (r == -ENXIO && wait) {
                r = orrery_vm_attach(m->client, name, &vm_callbacks, m,
                                     ORRERY_VM_ATTACH_NO_CONSOLES | ORRERY_VM_ATTACH_ASYNC, &vm);
                if (r >= 0)
                        printf("VM '%s' is not on the bus; waiting for it (Ctrl-D leaves)\n", name);
        }
        if (r == -ENXIO) {
                log_error("no VM named '%s' on the bus (see orrery-monitor --list)", name);
                return r;
        }
        if (r == -EPERM)
                return log_error_errno(r, "refusing VM '%s': org.orrery.VM.%s is owned by a process of another user "
                                       "(who may have taken the name first), not by uid %u",
                                       name, name, (unsigned) geteuid());
        if (r < 0)
                return log_error_errno(r, "cannot attach to VM '%s': %m", name);

        if (m->console_fd >= 0)
                console_leave(m, "switching VMs");
        orrery_vm_detach(m->vm);
        m->vm = vm;
        free(m->name);
        m->name = strdup(name);
        m->shown_state = mfree_str(m->shown_state);
        if (orrery_vm_is_ready(vm) && orrery_vm_get_state(vm))
                m->shown_state = strdup(orrery_vm_get_state(vm));
        update_prompt(m);
        return 0;
}

static bool need_vm(Monitor *m) {
        if (!m->vm) {
                log_error("no VM attached (attach NAME; list shows the VMs)");
                return false;
        }
        if (!orrery_vm_is_ready(m->vm)) {
                log_error("VM '%s' is not on the bus", m->name);
                return false;
        }
        return true;
}

/* ---------------------------------------------------------------------- */
/* Commands                                                                */

typedef struct Command Command;
struct Command {
        const char *name;
        const char *args;
        const char *help;
        int (*run)(Monitor *m, const Command *cmd, char **argv, size_t argc);
        size_t min_args, max_args; /* not counting the command */
};

static const Command *command_find(const char *name);
static int cmd_migrate(Monitor *m, const Command *cmd, char **argv, size_t argc);
static int usage_of(const Command *cmd);

static const char *const info_topics[] = { "status", "vm", "consoles", "chardevs", "agent", "version", "block",
                                            "network", "migrate", NULL };

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/*
 * Waits until the VM has answered everything sent before and dispatches what
 * arrived meanwhile: failed input is reported now, and properties (State)
 * changed by a call are current when the next command reads them.
 */
static int vm_sync(Monitor *m) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = orrery_client_get_bus(m->client);
        const char *owner = orrery_vm_get_owner(m->vm);
        int r;

        if (!owner)
                return -ENXIO;

        /* The library has no round trip of its own: Peer.Ping to the same owner
         * is answered after every message sent before it, within the client's timeout. */
        r = sd_bus_message_new_method_call(bus, &call, owner, "/", "org.freedesktop.DBus.Peer", "Ping");
        if (r < 0)
                return r;
        r = sd_bus_call(bus, call, orrery_client_get_timeout(m->client), &error, &reply);
        if (r < 0)
                return r;

        /* Dispatch the replies queued meanwhile (the input errors). */
        while ((r = sd_bus_process(bus, NULL)) > 0)
                ;
        return 0;
}

/*
 * Our own VM object is attached without consoles (the VM does no display work
 * for a monitor); a second one maps them for one command and is detached after.
 */
static int attach_display(Monitor *m, OrreryVm **ret) {
        return orrery_vm_attach(m->client, m->name, NULL, NULL, 0, ret);
}

static int cmd_action(Monitor *m, const Command *cmd, char **argv, size_t argc) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        OrreryVmAction action;
        int r;

        if (strcmp(cmd->name, "stop") == 0)
                action = ORRERY_VM_ACTION_PAUSE;
        else if (strcmp(cmd->name, "cont") == 0)
                action = ORRERY_VM_ACTION_RESUME;
        else if (strcmp(cmd->name, "system_reset") == 0)
                action = ORRERY_VM_ACTION_RESET;
        else if (strcmp(cmd->name, "system_powerdown") == 0)
                action = ORRERY_VM_ACTION_POWER_DOWN;
        else
                action = ORRERY_VM_ACTION_QUIT;

        if (!need_vm(m))
                return EXIT_FAILURE;

        r = orrery_vm_action_sync(m->vm, action, &error);
        if (r < 0) {
                print_bus_error(cmd->name, r, &error);
                return EXIT_FAILURE;
        }
        if (action != ORRERY_VM_ACTION_QUIT)
                (void) vm_sync(m);
        return EXIT_SUCCESS;
}

static int cmd_info(Monitor *m, const Command *cmd, char **argv, size_t argc) {
        const char *topic = argv[1];

        if (strcmp(topic, "version") == 0) {
                printf("orrery-monitor %s\n", ORRERY_VERSION);
                if (m->vm && orrery_vm_is_ready(m->vm))
                        printf("orrery-vm %s\n", printable(orrery_vm_get_version(m->vm)));
                return EXIT_SUCCESS;
        }

        if (strcmp(topic, "block") == 0 || strcmp(topic, "network") == 0) {
                MonitorVmRef ref;

                if (!need_vm(m))
                        return EXIT_FAILURE;
                ref = (MonitorVmRef) { orrery_client_get_bus(m->client), orrery_vm_get_owner(m->vm),
                                       orrery_vm_get_path(m->vm), orrery_client_get_timeout(m->client) };
                return strcmp(topic, "block") == 0 ? monitor_info_block(&ref) : monitor_info_network(&ref);
        }

        if (strcmp(topic, "migrate") == 0)
                return cmd_migrate(m, cmd, argv, argc);

        if (strcmp(topic, "status") != 0 && strcmp(topic, "vm") != 0 && strcmp(topic, "consoles") != 0 &&
            strcmp(topic, "chardevs") != 0 && strcmp(topic, "agent") != 0) {
                log_error("unknown info topic '%s' (status, vm, consoles, chardevs, agent, version, block, network, migrate)",
                        topic);
                return usage_of(cmd);
        }

        if (strcmp(topic, "agent") == 0) {
                /* The bridge is a service of its own: asked even when the VM is gone, so its answer says why. */
                if (!m->name) {
                        log_error("no VM attached (attach NAME; list shows the VMs)");
                        return EXIT_FAILURE;
                }
                return monitor_agent_show_info(orrery_client_get_bus(m->client), m->name);
        }

        if (!need_vm(m))
                return EXIT_FAILURE;
        (void) vm_sync(m);
        if (!need_vm(m)) /* it may have gone meanwhile */
                return EXIT_FAILURE;

        if (strcmp(topic, "status") == 0)
                printf("VM status: %s\n", orrery_vm_get_state(m->vm) ? printable(orrery_vm_get_state(m->vm)) : "unknown");
        else if (strcmp(topic, "vm") == 0) {
                printf("name: %s\n", m->name);
                printf("uuid: %s\n", printable(orrery_vm_get_uuid(m->vm)));
                printf("state: %s\n", printable(orrery_vm_get_state(m->vm)));
                printf("memory: %" PRIu64 " MiB\n", orrery_vm_get_memory_bytes(m->vm) >> 20);
                printf("vcpus: %" PRIu32 "\n", orrery_vm_get_vcpus(m->vm));
                printf("version: %s\n", printable(orrery_vm_get_version(m->vm)));
                printf("bus name: %s (%s)\n", orrery_vm_get_bus_name(m->vm), printable(orrery_vm_get_owner(m->vm)));
        } else if (strcmp(topic, "consoles") == 0) {
                _cleanup_(orrery_vm_detachp) OrreryVm *display = NULL;
                size_t n;
                int r;

                r = attach_display(m, &display);
                if (r < 0) {
                        log_error_errno(r, "cannot read the VM's consoles: %m");
                        return EXIT_FAILURE;
                }
                n = orrery_vm_get_n_consoles(display);
                for (size_t i = 0; i < n; i++) {
                        OrreryFramebuffer fb;
                        uint32_t id;

                        if (orrery_vm_get_console_id(display, i, &id) < 0)
                                continue;
                        printf("Console/%" PRIu32 ": %s", id, printable(orrery_vm_get_console_label(display, id)));
                        if (orrery_vm_get_framebuffer(display, id, &fb) >= 0) {
                                char fourcc[5] = { (char) (fb.format & 0xff), (char) ((fb.format >> 8) & 0xff),
                                                   (char) ((fb.format >> 16) & 0xff), (char) (fb.format >> 24), 0 };

                                printf(" %" PRIu32 "x%" PRIu32 " stride %" PRIu32 " format %s", fb.width, fb.height,
                                       fb.stride, printable(fourcc));
                        }
                        printf("\n");
                }
                if (n == 0)
                        printf("no consoles\n");
        } else {
                size_t n = orrery_vm_get_n_chardevs(m->vm);

                for (size_t i = 0; i < n; i++) {
                        const char *id = orrery_vm_get_chardev_id(m->vm, i);
                        OrreryChardevInfo info;

                        if (!id || orrery_vm_get_chardev(m->vm, id, &info) < 0)
                                continue;
                        printf("%s: name=%s guest_open=%s owner=%s\n", id, info.name[0] ? printable(info.name) : "-",
                               info.guest_open ? "yes" : "no", info.owner[0] ? printable(info.owner) : "-");
                }
                if (n == 0)
                        printf("no chardevs\n");
        }
        return EXIT_SUCCESS;
}

static int cmd_sendkey(Monitor *m, const Command *cmd, char **argv, size_t argc) {
        uint32_t codes[MAX_KEYS];
        size_t n = 0;
        unsigned hold = DEFAULT_HOLD_MS;
        _cleanup_free_ char *keys = strdup(argv[1]);
        char *saveptr = NULL;
        int r = 0;

        if (!keys)
                return EXIT_FAILURE;

        if (argc > 2) {
                char *end;
                unsigned long v;

                errno = 0;
                v = strtoul(argv[2], &end, 10);
                if (errno != 0 || end == argv[2] || *end != '\0' || v > MAX_HOLD_MS || argv[2][0] == '-') {
                        log_error("hold time '%s' must be 0 to %u ms", argv[2], MAX_HOLD_MS);
                        return usage_of(cmd);
                }
                hold = (unsigned) v;
        }

        for (char *k = strtok_r(keys, "-", &saveptr); k; k = strtok_r(NULL, "-", &saveptr)) {
                if (n >= MAX_KEYS) {
                        log_error("at most %d keys at once", MAX_KEYS);
                        return usage_of(cmd);
                }
                if (monitor_key_from_name(k, &codes[n]) < 0) {
                        log_error("unknown key '%s' (Tab completes key names)", k);
                        return usage_of(cmd);
                }
                n++;
        }
        if (n == 0)
                return usage_of(cmd);

        if (!need_vm(m))
                return EXIT_FAILURE;

        m->input_error = 0;
        for (size_t i = 0; i < n && r >= 0; i++)
                r = orrery_vm_key_press(m->vm, codes[i]);
        (void) sd_bus_flush(orrery_client_get_bus(m->client));
        sleep_ms(hold);
        /* Release everything, even after a failed press: no key stays down. */
        for (size_t i = n; i > 0; i--) {
                int q = orrery_vm_key_release(m->vm, codes[i - 1]);
                if (r >= 0 && q < 0)
                        r = q;
        }
        if (r < 0) {
                log_error_errno(r, "sendkey: %m");
                return EXIT_FAILURE;
        }

        r = vm_sync(m);
        if (r < 0 && !m->input_error) {
                log_error_errno(r, "sendkey: %m");
                return EXIT_FAILURE;
        }
        if (m->input_error) {
                log_error("sendkey: %s",
                        m->input_error_message ? printable(m->input_error_message) : strerror(m->input_error));
                m->input_error = 0;
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}

static int cmd_screendump(Monitor *m, const Command *cmd, char **argv, size_t argc) {
        _cleanup_(orrery_vm_detachp) OrreryVm *display = NULL;
        OrreryFramebuffer fb;
        uint32_t id;
        int r;

        if (!need_vm(m))
                return EXIT_FAILURE;

        r = attach_display(m, &display);
        if (r < 0) {
                log_error_errno(r, "screendump: cannot read the VM's consoles: %m");
                return EXIT_FAILURE;
        }
        if (orrery_vm_get_console_id(display, 0, &id) < 0) {
                log_error("screendump: the VM has no display");
                return EXIT_FAILURE;
        }
        r = orrery_vm_get_framebuffer(display, id, &fb);
        if (r < 0) {
                log_error_errno(r, "screendump: the framebuffer cannot be mapped: %m");
                return EXIT_FAILURE;
        }

        r = monitor_write_png(&fb, argv[1]);
        if (r < 0) {
                log_error_errno(r, "screendump: cannot write '%s': %m", argv[1]);
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}

static int cmd_list(Monitor *m, const Command *cmd, char **argv, size_t argc) {
        _cleanup_(orrery_strv_freep) char **names = NULL;
        int r;

        r = orrery_client_list_vms(m->client, &names);
        if (r < 0) {
                log_error_errno(r, "cannot list the VMs: %m");
                return EXIT_FAILURE;
        }
        for (char **n = names; *n; n++)
                printf("%s\n", *n);
        return EXIT_SUCCESS;
}

static int cmd_attach(Monitor *m, const Command *cmd, char **argv, size_t argc) {
        return monitor_attach(m, argv[1], false) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

static int cmd_agent(Monitor *m, const Command *cmd, char **argv, size_t argc) {
        if (!m->name) {
                log_error("no VM attached (attach NAME; list shows the VMs)");
                return EXIT_FAILURE;
        }
        return monitor_agent_run(orrery_client_get_bus(m->client), m->name, argv, argc,
                                 m->interactive && isatty(STDERR_FILENO));
}

/* Disk and network commands (devices.c). */
static int cmd_devices(Monitor *m, const Command *cmd, char **argv, size_t argc) {
        MonitorVmRef ref;
        int r;

        if (!need_vm(m))
                return EXIT_FAILURE;
        ref = (MonitorVmRef) { orrery_client_get_bus(m->client), orrery_vm_get_owner(m->vm), orrery_vm_get_path(m->vm),
                               orrery_client_get_timeout(m->client) };
        r = monitor_devices_run(&ref, argv, argc);
        return r == EXIT_USAGE ? usage_of(cmd) : r;
}

static int cmd_savevm_file(Monitor *m, const Command *cmd, char **argv, size_t argc) {
        if (!need_vm(m))
                return EXIT_FAILURE;
        int r = monitor_savevm_run(orrery_client_get_bus(m->client), m->name, argv, argc);
        return r == 2 ? usage_of(cmd) : r;
}

static int cmd_loadvm_file(Monitor *m, const Command *cmd, char **argv, size_t argc) {
        if (!need_vm(m))
                return EXIT_FAILURE;
        int r = monitor_loadvm_run(orrery_client_get_bus(m->client), m->name, argv, argc);
        return r == 2 ? usage_of(cmd) : r;
}

static int cmd_migrate(Monitor *m, const Command *cmd, char **argv, size_t argc) {
        if (!need_vm(m))
                return EXIT_FAILURE;
        int r = monitor_migrate_run(orrery_client_get_bus(m->client), m->name, argv, argc);
        return r == 2 ? usage_of(cmd) : r;
}

static int cmd_gdbserver(Monitor *m, const Command *cmd, char **argv, size_t argc) {
        if (!m->name) {
                log_error("no VM attached (attach NAME; list shows the VMs)");
                return EXIT_FAILURE;
        }
        return monitor_gdbserver_run(orrery_client_get_bus(m->client), m->name, argc > 1 ? argv[1] : NULL);
}

static int cmd_console(Monitor *m, const Command *cmd, char **argv, size_t argc);
static int cmd_help(Monitor *m, const Command *cmd, char **argv, size_t argc);

static int cmd_exit(Monitor *m, const Command *cmd, char **argv, size_t argc) {
        if (m->readline_active) {
                rl_callback_handler_remove();
                m->readline_active = false;
        }
        (void) sd_event_exit(m->event, EXIT_SUCCESS);
        return EXIT_SUCCESS;
}

static const Command commands[] = {
        { "help", "[COMMAND]", "show the commands, or one command's usage", cmd_help, 0, 1 },
        { "info", "status|vm|consoles|chardevs|agent|version|block|network|migrate",
          "show the VM's state, properties, consoles, chardevs, guest agent, versions, disks, NICs, migration",
          cmd_info, 1, 1 },
        { "stop", "", "pause the VM", cmd_action, 0, 0 },
        { "cont", "", "resume the VM", cmd_action, 0, 0 },
        { "system_reset", "", "reset the machine", cmd_action, 0, 0 },
        { "system_powerdown", "", "press the power button: the guest shuts down cleanly", cmd_action, 0, 0 },
        { "quit", "", "stop the VM at once (the emulator exits)", cmd_action, 0, 0 },
        { "sendkey", "KEYS [HOLD_MS]", "press keys together, e.g. ctrl-alt-delete (QEMU key names), hold 100 ms",
          cmd_sendkey, 1, 2 },
        { "screendump", "FILE", "write the screen to FILE as PNG", cmd_screendump, 1, 1 },
        { "savevm-file", MONITOR_SAVEVM_USAGE,
          "save the whole VM to FILE (orrery-vm --restore FILE starts from it); --quit: then stop the emulator",
          cmd_savevm_file, 1, 2 },
        { "loadvm-file", "FILE", "load a state savevm-file wrote into the running VM (same configuration)",
          cmd_loadvm_file, 1, 1 },
        { "migrate", MONITOR_MIGRATE_USAGE, "move the VM live to orrery-vm --incoming URI, showing progress",
          cmd_migrate, 1, 1 },
        { "migrate_cancel", "", "stop the running migration (the VM runs on here)", cmd_migrate, 0, 0 },
        { "migrate_set_parameter", MONITOR_MIGRATE_SET_USAGE, "the pause a migration aims at (default 300 ms)",
          cmd_migrate, 2, 2 },
        { "console", "[--dump] [CHARDEV]",
          "talk to a character device (serial0 by default); Ctrl-] leaves. --dump: print its scrollback as text",
          cmd_console, 0, 2 },
        { "list", "", "list the VMs on the bus", cmd_list, 0, 0 },
        { "attach", "NAME", "switch to another VM", cmd_attach, 1, 1 },
        { "agent", MONITOR_AGENT_USAGE, "talk to the guest agent (through orrery-agent)", cmd_agent, 1, 3 },
        { "block_resize", "DISK SIZE", "grow a disk image to SIZE bytes (or k, M, G, T)", cmd_devices, 2, 2 },
        { "hostfwd_add", MONITOR_HOSTFWD_ADD_USAGE, "forward a host port to the guest", cmd_devices, 1, 2 },
        { "hostfwd_remove", MONITOR_HOSTFWD_REMOVE_USAGE, "remove a host forward", cmd_devices, 1, 2 },
        { "set_link", "NIC on|off", "take a NIC's link up or down (the guest sees its carrier)", cmd_devices, 2, 2 },
        { "gdbserver", "[ADDR]", "start orrery-gdbstub for the VM on ADDR (127.0.0.1:1234, or unix:PATH)",
          cmd_gdbserver, 0, 1 },
        { "exit", "", "leave the monitor (the VM keeps running; so does Ctrl-D)", cmd_exit, 0, 0 },
};

static const Command *command_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        return NULL;
}

static int usage_of(const Command *cmd) {
        fprintf(stderr, "Usage: %s%s%s\n", cmd->name, cmd->args[0] ? " " : "", cmd->args);
        return EXIT_USAGE;
}

static int cmd_help(Monitor *m, const Command *cmd, char **argv, size_t argc) {
        if (argc > 1) {
                const Command *c = command_find(argv[1]);

                if (!c) {
                        log_error("unknown command '%s'", argv[1]);
                        return EXIT_FAILURE;
                }
                printf("%s%s%s -- %s\n", c->name, c->args[0] ? " " : "", c->args, c->help);
                return EXIT_SUCCESS;
        }

        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                _cleanup_free_ char *synopsis = NULL;

                if (asprintf(&synopsis, "%s%s%s", commands[i].name, commands[i].args[0] ? " " : "",
                             commands[i].args) < 0)
                        return EXIT_FAILURE;
                printf("%-44s %s\n", synopsis, commands[i].help);
        }
        return EXIT_SUCCESS;
}

static size_t edit_distance(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        size_t row[64];

        if (la >= ELEMENTSOF(row) || lb >= ELEMENTSOF(row))
                return SIZE_MAX;

        for (size_t j = 0; j <= lb; j++)
                row[j] = j;
        for (size_t i = 1; i <= la; i++) {
                size_t diag = row[0];

                row[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t up = row[j];
                        size_t best = MIN(row[j] + 1, row[j - 1] + 1);

                        row[j] = MIN(best, diag + (a[i - 1] == b[j - 1] ? 0 : 1));
                        diag = up;
                }
        }
        return row[lb];
}

static const Command *command_closest(const char *name) {
        const Command *best = NULL;
        size_t best_d = SIZE_MAX;

        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                size_t d = edit_distance(name, commands[i].name);

                /* A prefix ("sys" → "system_reset") counts as close. */
                if (strncmp(commands[i].name, name, strlen(name)) == 0)
                        d = MIN(d, (size_t) 1);
                if (d < best_d) {
                        best_d = d;
                        best = &commands[i];
                }
        }
        return best_d <= MAX((size_t) 2, strlen(name) / 3) ? best : NULL;
}

/* Splits at blanks; no quoting. Returns the number of words, -E2BIG if too many. */
static int split_words(char *line, char **argv, size_t max) {
        size_t n = 0;
        char *saveptr = NULL;

        for (char *w = strtok_r(line, " \t\r\n", &saveptr); w; w = strtok_r(NULL, " \t\r\n", &saveptr)) {
                if (n >= max)
                        return -E2BIG;
                argv[n++] = w;
        }
        return (int) n;
}

/* Runs one line; 0 ok, 1 failed, 2 usage. */
static int monitor_run_line(Monitor *m, const char *text) {
        _cleanup_free_ char *line = NULL;
        char *argv[MAX_ARGS + 2];
        const Command *cmd;
        int n;

        if (strlen(text) > MAX_LINE) {
                log_error("line too long (at most %d characters)", MAX_LINE);
                return EXIT_USAGE;
        }
        line = strdup(text);
        if (!line)
                return EXIT_FAILURE;

        n = split_words(line, argv, MAX_ARGS + 1);
        if (n < 0) {
                log_error("too many words");
                return EXIT_USAGE;
        }
        if (n == 0 || argv[0][0] == '#')
                return EXIT_SUCCESS;
        argv[n] = NULL;

        cmd = command_find(argv[0]);
        if (!cmd) {
                const Command *close = command_closest(argv[0]);

                if (close)
                        log_error("unknown command '%s'; did you mean '%s'?", argv[0], close->name);
                else
                        log_error("unknown command '%s' (help lists the commands)", argv[0]);
                return EXIT_FAILURE;
        }

        if ((size_t) n - 1 < cmd->min_args || (size_t) n - 1 > cmd->max_args)
                return usage_of(cmd);

        return cmd->run(m, cmd, argv, (size_t) n);
}

/* ---------------------------------------------------------------------- */
/* console                                                                 */

static void console_update_events(Monitor *m) {
        if (m->console_source)
                (void) sd_event_source_set_io_events(m->console_source,
                                                     EPOLLIN | (m->console_n_pending > 0 ? EPOLLOUT : 0));
        /* stdin stays readable so Ctrl-] always works; what the guest does not
         * take is kept up to CONSOLE_PENDING_MAX, then dropped. */
}

static void readline_install(Monitor *m);

static void console_leave(Monitor *m, const char *why) {
        if (m->console_fd < 0)
                return;

        m->console_source = sd_event_source_disable_unref(m->console_source);
        m->console_fd = safe_close(m->console_fd); /* closing frees the device */
        m->console_pending = mfree_u8(m->console_pending);
        m->console_n_pending = 0;
        if (m->console_raw) {
                (void) tcsetattr(STDIN_FILENO, TCSADRAIN, &m->saved_termios);
                m->console_raw = false;
        }
        printf("\n[orrery-monitor] left %s: %s\n", m->console_id ?: "the console", why);
        fflush(stdout);
        m->console_id = mfree_str(m->console_id);

        if (m->stdin_source)
                (void) sd_event_source_set_enabled(m->stdin_source, SD_EVENT_ON);
        if (m->interactive)
                readline_install(m);
        else
                m->stdin_source = sd_event_source_disable_unref(m->stdin_source);
}

static int console_flush_pending(Monitor *m) {
        while (m->console_n_pending > 0) {
                ssize_t k = send(m->console_fd, m->console_pending, m->console_n_pending, MSG_NOSIGNAL);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return -errno;
                }
                memmove(m->console_pending, m->console_pending + k, m->console_n_pending - (size_t) k);
                m->console_n_pending -= (size_t) k;
        }
        console_update_events(m);
        return 0;
}

static int on_console_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Monitor *m = userdata;
        uint8_t buf[4096];

        if (revents & EPOLLOUT) {
                if (console_flush_pending(m) < 0) {
                        console_leave(m, "the device closed");
                        return 0;
                }
        }
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t k = read(fd, buf, sizeof(buf));

                if (k < 0 && (errno == EAGAIN || errno == EINTR))
                        return 0;
                if (k <= 0) {
                        console_leave(m, "the device closed");
                        return 0;
                }
                if (loop_write(STDOUT_FILENO, buf, (size_t) k) < 0) {
                        console_leave(m, "cannot write to the terminal");
                        return 0;
                }
        }
        return 0;
}

/* Typed bytes: up to Ctrl-] go to the device. */
static void console_on_stdin(Monitor *m) {
        uint8_t buf[4096];
        ssize_t k;
        size_t n;
        bool leave = false;

        k = read(STDIN_FILENO, buf, sizeof(buf));
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (k <= 0) {
                console_leave(m, "end of input");
                return;
        }

        n = (size_t) k;
        for (size_t i = 0; i < n; i++)
                if (buf[i] == CONSOLE_ESCAPE) {
                        n = i;
                        leave = true;
                        break;
                }

        if (n > 0) {
                if (m->console_n_pending + n > CONSOLE_PENDING_MAX)
                        n = CONSOLE_PENDING_MAX - m->console_n_pending; /* the guest does not read: drop */
                memcpy(m->console_pending + m->console_n_pending, buf, n);
                m->console_n_pending += n;
                if (console_flush_pending(m) < 0) {
                        console_leave(m, "the device closed");
                        return;
                }
        }
        if (leave)
                console_leave(m, "Ctrl-]");
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Monitor *m = userdata;

        if (m->console_fd >= 0)
                console_on_stdin(m);
        else if (m->readline_active)
                rl_callback_read_char();
        else
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        return 0;
}

static int ensure_stdin_source(Monitor *m) {
        int r;

        if (m->stdin_source)
                return sd_event_source_set_enabled(m->stdin_source, SD_EVENT_ON);
        r = sd_event_add_io(m->event, &m->stdin_source, STDIN_FILENO, EPOLLIN, on_stdin, m);
        if (r < 0)
                return r;
        return 0;
}

/* console --dump: the scrollback as text, without taking the chardev (another client may have it). */
static int console_dump(Monitor *m, const char *id) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ void *scrollback = NULL;
        size_t size = 0;
        int r;

        r = orrery_vm_chardev_get_scrollback_sync(m->vm, id, &scrollback, &size, &error);
        if (r < 0) {
                print_bus_error("console --dump", r, &error);
                return EXIT_FAILURE;
        }
        size = text_strip_terminal(scrollback, size);
        if (size > 0) {
                r = loop_write(STDOUT_FILENO, scrollback, size);
                if (r >= 0 && ((const char *) scrollback)[size - 1] != '\n')
                        r = loop_write(STDOUT_FILENO, "\n", 1);
                if (r < 0) {
                        log_error_errno(r, "console --dump: cannot write: %m");
                        return EXIT_FAILURE;
                }
        }
        return EXIT_SUCCESS;
}

static int cmd_console(Monitor *m, const Command *cmd, char **argv, size_t argc) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ void *scrollback = NULL;
        _cleanup_close_ int fd = -1;
        bool dump = argc > 1 && streq(argv[1], "--dump");
        size_t first = dump ? 2 : 1;
        const char *id = argc > first ? argv[first] : "serial0";
        OrreryChardevInfo info;
        size_t size = 0;
        int r;

        if (argc > first + 1 || (argc > first && argv[first][0] == '-'))
                return usage_of(cmd);
        if (!need_vm(m))
                return EXIT_FAILURE;
        if (!orrery_chardev_id_is_valid(id) || orrery_vm_get_chardev(m->vm, id, &info) < 0) {
                log_error("VM '%s' has no chardev '%s' (info chardevs lists them)", m->name, id);
                return EXIT_FAILURE;
        }
        if (dump)
                return console_dump(m, id);

        r = orrery_vm_chardev_register_sync(m->vm, id, &fd, &error);
        if (r < 0) {
                print_bus_error(r == -EBUSY ? "console (another client has it)" : "console", r, &error);
                return EXIT_FAILURE;
        }
        /* After Register, so nothing falls between the scrollback and the live output. */
        r = orrery_vm_chardev_get_scrollback_sync(m->vm, id, &scrollback, &size, &error);
        if (r >= 0 && size > 0)
                (void) loop_write(STDOUT_FILENO, scrollback, size);

        m->console_pending = malloc(CONSOLE_PENDING_MAX);
        if (!m->console_pending)
                return EXIT_FAILURE;
        r = sd_event_add_io(m->event, &m->console_source, fd, EPOLLIN, on_console_io, m);
        if (r < 0) {
                m->console_pending = mfree_u8(m->console_pending);
                log_error_errno(r, "console: %m");
                return EXIT_FAILURE;
        }
        r = ensure_stdin_source(m);
        if (r < 0) {
                m->console_source = sd_event_source_disable_unref(m->console_source);
                m->console_pending = mfree_u8(m->console_pending);
                log_error_errno(r, "console: %m");
                return EXIT_FAILURE;
        }

        if (m->readline_active) {
                rl_callback_handler_remove();
                m->readline_active = false;
        }
        m->console_fd = TAKE_FD(fd);
        m->console_id = strdup(id);

        printf("\n[orrery-monitor] connected to %s; Ctrl-] leaves\n", id);
        fflush(stdout);
        if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &m->saved_termios) >= 0) {
                struct termios raw = m->saved_termios;

                cfmakeraw(&raw);
                if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) >= 0)
                        m->console_raw = true;
        }

        /* -c: stay in the console until it is left. */
        if (!m->interactive)
                while (m->console_fd >= 0) {
                        r = sd_event_run(m->event, UINT64_MAX);
                        if (r < 0) {
                                console_leave(m, "event loop failed");
                                return EXIT_FAILURE;
                        }
                }
        return EXIT_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* readline: line editing, history, completion                             */

static char **completion_candidates;
static size_t completion_index;

static void completion_reset(void) {
        completion_candidates = orrery_strv_free(completion_candidates);
        completion_index = 0;
}

static void completion_add(const char *s) {
        size_t n = 0;
        char **l;

        if (completion_candidates)
                while (completion_candidates[n])
                        n++;
        l = realloc(completion_candidates, (n + 2) * sizeof(char *));
        if (!l)
                return;
        completion_candidates = l;
        l[n] = strdup(s);
        l[n + 1] = NULL;
        if (!l[n])
                l[n] = NULL;
}

static char *completion_generator(const char *text, int state) {
        size_t len = strlen(text);

        if (!completion_candidates)
                return NULL;
        for (; completion_candidates[completion_index]; completion_index++) {
                const char *c = completion_candidates[completion_index];

                if (strncmp(c, text, len) == 0) {
                        completion_index++;
                        return strdup(c);
                }
        }
        return NULL;
}

static char *completion_word_break_hook(void) {
        /* Key names in "ctrl-alt-delete" complete one by one. */
        if (strncmp(rl_line_buffer, "sendkey", 7) == 0)
                return (char *) " \t\n-";
        return (char *) " \t\n";
}

static char **complete(const char *text, int start, int end) {
        Monitor *m = the_monitor;
        _cleanup_free_ char *head = NULL;
        char *argv[8];
        int n;

        rl_attempted_completion_over = 1; /* no file names, except where asked below */
        completion_reset();

        head = strndup(rl_line_buffer, (size_t) start);
        if (!head)
                return NULL;
        n = split_words(head, argv, ELEMENTSOF(argv));
        if (n < 0)
                return NULL;
        /* "sendkey ctrl-al": the word being completed is "al", still the first argument. */
        if (n == 2 && start > 0 && rl_line_buffer[start - 1] == '-' && strcmp(argv[0], "sendkey") == 0)
                n = 1;

        if (n == 0 || (n == 1 && strcmp(argv[0], "help") == 0))
                for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                        completion_add(commands[i].name);
        else if (n == 1 && strcmp(argv[0], "info") == 0)
                for (size_t i = 0; info_topics[i]; i++)
                        completion_add(info_topics[i]);
        else if (n == 1 && strcmp(argv[0], "console") == 0 && m->vm)
                for (size_t i = 0; i < orrery_vm_get_n_chardevs(m->vm); i++)
                        completion_add(orrery_vm_get_chardev_id(m->vm, i));
        else if (n == 1 && strcmp(argv[0], "attach") == 0) {
                _cleanup_(orrery_strv_freep) char **names = NULL;

                if (orrery_client_list_vms(m->client, &names) >= 0)
                        for (char **v = names; *v; v++)
                                completion_add(*v);
        } else if (n == 1 && strcmp(argv[0], "sendkey") == 0)
                for (size_t i = 0; i < monitor_n_keys; i++)
                        completion_add(monitor_keys[i].name);
        else if (n == 1 && strcmp(argv[0], "agent") == 0)
                for (size_t i = 0; monitor_agent_subcommands[i]; i++)
                        completion_add(monitor_agent_subcommands[i]);
        else if (n == 2 && strcmp(argv[0], "agent") == 0 && strcmp(argv[1], "shutdown") == 0) {
                completion_add("powerdown");
                completion_add("reboot");
                completion_add("halt");
        } else if ((n == 1 && strcmp(argv[0], "screendump") == 0) ||
                   (n == 2 && strcmp(argv[0], "agent") == 0 && strcmp(argv[1], "copy-in") == 0) ||
                   (n == 3 && strcmp(argv[0], "agent") == 0 && strcmp(argv[1], "copy-out") == 0)) {
                rl_attempted_completion_over = 0;
                return NULL;
        }

        return rl_completion_matches(text, completion_generator);
}

static void on_line(char *line) {
        Monitor *m = the_monitor;

        if (!line) {
                /* Ctrl-D */
                printf("\n");
                rl_callback_handler_remove();
                m->readline_active = false;
                (void) sd_event_exit(m->event, EXIT_SUCCESS);
                return;
        }

        if (line[strspn(line, " \t")] != '\0') {
                add_history(line);
                if (m->history_path)
                        (void) append_history(1, m->history_path);
        }
        m->in_command = true;
        (void) monitor_run_line(m, line);
        m->in_command = false;
        fflush(stdout);
        free(line);
}

static void readline_install(Monitor *m) {
        if (m->readline_active)
                return;
        rl_callback_handler_install(m->prompt, on_line);
        m->readline_active = true;
}

static int mkdir_parents(const char *path) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
                *s = '\0';
                if (mkdir(p, 0700) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        return 0;
}

static void history_setup(Monitor *m) {
        const char *state = getenv("XDG_STATE_HOME");
        const char *home = getenv("HOME");
        char *path = NULL;
        int r;

        if (state && state[0] == '/')
                r = asprintf(&path, "%s/orrery/monitor_history", state);
        else if (home && home[0] == '/')
                r = asprintf(&path, "%s/.local/state/orrery/monitor_history", home);
        else
                return;
        if (r < 0)
                return;

        m->history_path = path;
        stifle_history(HISTORY_MAX);
        if (mkdir_parents(path) < 0 || read_history(path) != 0) {
                /* append_history() wants the file to exist. */
                _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
                if (fd < 0)
                        m->history_path = mfree_str(m->history_path);
        }
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Monitor *m = userdata;

        if (si->ssi_signo == SIGINT && m->readline_active) {
                /* Ctrl-C at the prompt drops the line, as in a shell. */
                rl_free_line_state();
                rl_callback_sigcleanup();
                rl_replace_line("", 0);
                printf("^C\n");
                rl_on_new_line();
                rl_redisplay();
                return 0;
        }
        if (m->console_fd >= 0)
                console_leave(m, "signal");
        if (m->readline_active) {
                rl_callback_handler_remove();
                m->readline_active = false;
        }
        return sd_event_exit(m->event, 128 + (int) si->ssi_signo);
}

static int run_interactive(Monitor *m) {
        int r;

        rl_readline_name = "orrery-monitor";
        rl_catch_signals = 0;
        rl_attempted_completion_function = complete;
        rl_completion_word_break_hook = completion_word_break_hook;
        rl_initialize();
        rl_variable_bind("enable-bracketed-paste", "off");
        history_setup(m);

        r = sd_event_add_signal(m->event, NULL, SIGINT | SD_EVENT_SIGNAL_PROCMASK, on_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, on_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGHUP | SD_EVENT_SIGNAL_PROCMASK, on_signal, m);
        if (r < 0) {
                log_error_errno(r, "cannot set up signals: %m");
                return EXIT_FAILURE;
        }

        r = ensure_stdin_source(m);
        if (r < 0) {
                log_error_errno(r, "cannot watch the terminal: %m");
                return EXIT_FAILURE;
        }
        if (m->name && m->vm && orrery_vm_is_ready(m->vm))
                printf("orrery-monitor: VM '%s' (%s); help lists the commands, Ctrl-D leaves\n", m->name,
                       orrery_vm_get_state(m->vm) ?: "?");
        fflush(stdout);
        readline_install(m);

        /* Without the bus there is nothing left to monitor: leave the loop. */
        (void) sd_bus_set_exit_on_disconnect(orrery_client_get_bus(m->client), true);

        r = sd_event_loop(m->event);

        if (m->console_fd >= 0)
                console_leave(m, "exiting");
        if (!sd_bus_is_open(orrery_client_get_bus(m->client))) {
                fputc('\n', stderr);
                log_error("The connection to the bus was lost");
        }
        if (m->readline_active) {
                rl_callback_handler_remove();
                m->readline_active = false;
        }
        if (m->history_path)
                (void) history_truncate_file(m->history_path, HISTORY_MAX);
        return r < 0 ? EXIT_FAILURE : r;
}

/* Lines from a pipe or file: like -c, one command a line. */
static int run_script(Monitor *m, FILE *f) {
        _cleanup_free_ char *line = NULL;
        size_t size = 0;

        while (getline(&line, &size, f) >= 0) {
                int r = monitor_run_line(m, line);

                fflush(stdout);
                if (r != EXIT_SUCCESS)
                        return r;
        }
        return EXIT_SUCCESS;
}

/* ---------------------------------------------------------------------- */

static void help(void) {
        printf("orrery-monitor [OPTIONS] [NAME]\n"
               "orrery-monitor [OPTIONS] NAME -c COMMAND [-c COMMAND...]\n"
               "orrery-monitor [OPTIONS] --list\n\n"
               "A monitor for the Orrery VM NAME (QEMU HMP command names; 'help' lists them).\n\n"
               "  -c, --command=CMD   run CMD and exit (repeatable): 0 ok, 1 a command failed, 2 usage\n"
               "  -l, --list          list the VMs on the bus\n"
               "      --bus=ADDRESS   use this D-Bus bus instead of the session bus\n"
               "  -h, --help          show this help\n"
               "      --version       show the version\n");
}

static void monitor_free(Monitor *m) {
        if (m->console_fd >= 0)
                console_leave(m, "exiting");
        m->stdin_source = sd_event_source_disable_unref(m->stdin_source);
        orrery_vm_detach(m->vm);
        if (m->client) {
                (void) orrery_client_detach_event(m->client);
                (void) sd_bus_flush(orrery_client_get_bus(m->client));
                orrery_client_unref(m->client);
        }
        sd_event_unref(m->event);
        free(m->name);
        free(m->prompt);
        free(m->history_path);
        free(m->shown_state);
        free(m->input_error_message);
        completion_reset();
}

typedef struct Args {
        char **cmds; /* -c, in order */
        size_t n_cmds;
        const char *bus_address;
        const char *name; /* NULL: none given */
        bool list;
} Args;

/* Returns 1 to go on, 0 to exit successfully (--help), or -EINVAL (usage, said). */
static int parse_argv(int argc, char *argv[], Args *args) {
        enum { ARG_BUS = 0x100, ARG_VERSION };
        static const struct option options[] = {
                { "command", required_argument, NULL, 'c' },
                { "list", no_argument, NULL, 'l' },
                { "bus", required_argument, NULL, ARG_BUS },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "c:lh", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        args->cmds[args->n_cmds++] = optarg;
                        break;
                case 'l':
                        args->list = true;
                        break;
                case ARG_BUS:
                        args->bus_address = optarg;
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("orrery-monitor %s\n", ORRERY_VERSION);
                        return 0;
                default:
                        fprintf(stderr, "Try 'orrery-monitor --help'.\n");
                        return -EINVAL;
                }

        if (argc - optind > 1)
                return log_error_errno(EINVAL, "one VM name at most (got '%s' after '%s')", argv[optind + 1],
                                       argv[optind]);
        if (optind < argc && !orrery_vm_name_is_valid(argv[optind]))
                return log_error_errno(EINVAL, "'%s' is not a valid VM name ([A-Za-z_][A-Za-z0-9_]{0,63})",
                                       argv[optind]);
        args->name = optind < argc ? argv[optind] : NULL;
        if (args->list && (args->n_cmds > 0 || args->name))
                return log_error_errno(EINVAL, "--list takes neither a VM name nor -c");
        if (args->n_cmds > 0 && !args->name)
                return log_error_errno(EINVAL, "-c needs a VM name: orrery-monitor NAME -c COMMAND");
        return 1;
}

/* Connects and attaches: to the VM named, else to the only one on the bus. Returns an exit status. */
static int monitor_setup(Monitor *m, const Args *args) {
        int r;

        m->interactive = !args->list && args->n_cmds == 0 && isatty(STDIN_FILENO);

        r = sd_event_default(&m->event);
        if (r >= 0)
                r = orrery_client_new(args->bus_address, &m->client);
        if (r >= 0)
                r = orrery_client_attach_event(m->client, m->event, 0);
        if (r < 0) {
                log_error_errno(r, "cannot connect to the %s: %m", args->bus_address ? "bus" : "session bus (try --bus)");
                return EXIT_FAILURE;
        }
        if (args->list)
                return EXIT_SUCCESS;

        if (args->name)
                return monitor_attach(m, args->name, m->interactive) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        _cleanup_(orrery_strv_freep) char **names = NULL;

        /* No name: the only VM on the bus, if there is exactly one. */
        r = orrery_client_list_vms(m->client, &names);
        if (r >= 0 && names[0] && !names[1]) {
                if (monitor_attach(m, names[0], false) < 0)
                        return EXIT_FAILURE;
        } else if (r >= 0 && m->interactive)
                printf("%s; attach NAME picks one (list shows them)\n",
                       names[0] ? "Several VMs are on the bus" : "No VM is on the bus");
        update_prompt(m);
        return EXIT_SUCCESS;
}

/* --list, the -c commands (stopping at the first failure), the terminal or a script on stdin. */
static int monitor_run(Monitor *m, const Args *args) {
        int ret = EXIT_SUCCESS;

        if (args->list)
                return cmd_list(m, NULL, NULL, 0);
        if (args->n_cmds == 0)
                return m->interactive ? run_interactive(m) : run_script(m, stdin);
        for (size_t i = 0; i < args->n_cmds; i++) {
                ret = monitor_run_line(m, args->cmds[i]);
                fflush(stdout);
                if (ret != EXIT_SUCCESS)
                        break;
        }
        return ret;
}

int main(int argc, char *argv[]) {
        _cleanup_free_ char **cmds = NULL;
        Monitor m = { .console_fd = -1 };
        Args args = {};
        int r, ret;

        log_setup("orrery-monitor");

        cmds = calloc((size_t) argc + 1, sizeof(char *));
        if (!cmds)
                return log_oom(), EXIT_FAILURE;
        args.cmds = cmds;

        r = parse_argv(argc, argv, &args);
        if (r <= 0)
                return r < 0 ? EXIT_USAGE : EXIT_SUCCESS;

        the_monitor = &m;
        ret = monitor_setup(&m, &args);
        if (ret == EXIT_SUCCESS)
                ret = monitor_run(&m, &args);
        monitor_free(&m);
        return ret;
}
