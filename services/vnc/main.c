/* SPDX-License-Identifier: MIT */
/*
 * orrery-vnc: a VNC server (libvncserver) for console 0 of one Orrery VM,
 * built only on the bus API (liborrery-client). It keeps no state the VM
 * cannot give back: killed, the VM loses a watcher; restarted, it serves
 * again. A VM that goes away is waited for, and clients meanwhile see a
 * "VM NOT RUNNING" screen.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "keymap.h"
#include "listen.h"
#include "log.h"
#include "macro.h"
#include "orrery-client.h"
#include "password.h"
#include "server.h"

#define EXIT_USAGE 2
#define DEFAULT_LISTEN "127.0.0.1:5900"
#define DEFAULT_LAYOUT "us"

static void help(void) {
        printf("orrery-vnc --vm NAME [OPTIONS]\n\n"
               "Serves the display of the Orrery VM NAME over VNC (and WebSocket for noVNC).\n\n"
               "  --vm NAME             the VM (org.orrery.VM.NAME on the bus)\n"
               "  --listen HOST:PORT    where VNC clients connect (default " DEFAULT_LISTEN "; [::1]:5900 for IPv6,\n"
               "                        :5900 for every address; port 0 picks a free one)\n"
               "  --websocket PORT      also accept WebSocket (noVNC) connections on HOST:PORT\n"
               "  --password-file FILE  line 1: the password; line 2 (optional): a view-only password.\n"
               "                        The file must not be readable by group or others.\n"
               "                        Default: $CREDENTIALS_DIRECTORY/" PASSWORD_CREDENTIAL " if it exists\n"
               "  --insecure            allow a non-loopback address without a password\n"
               "  --view-only           clients may look, not type or point\n"
               "  --keymap LAYOUT       XKB layout that turns VNC keysyms into keys (default " DEFAULT_LAYOUT
               "; e.g. de, fr(azerty))\n"
               "  --bus ADDRESS         use this D-Bus bus instead of the session bus\n"
               "  --debug               debug messages on stderr (also ORRERY_DEBUG=1)\n"
               "  -h, --help            show this help\n"
               "      --version         show the version\n");
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Server **server = userdata;

        /* Now, while the bus is still attached: sd-bus flushes what is queued
         * (the clients' key releases) and closes when the loop exits. */
        if (*server)
                server_disconnect_all(*server);
        return sd_event_exit(sd_event_source_get_event(s), EXIT_SUCCESS);
}

/* "fr(azerty)" -> layout "fr", variant "azerty". */
static int split_layout(const char *s, char **ret_layout, char **ret_variant) {
        const char *open = strchr(s, '(');
        char *layout, *variant = NULL;

        if (!open) {
                layout = strdup(s);
                if (!layout)
                        return -ENOMEM;
        } else {
                size_t n = strlen(open);

                if (n < 3 || open[n - 1] != ')' || open == s)
                        return -EINVAL;
                layout = strndup(s, (size_t) (open - s));
                variant = strndup(open + 1, n - 2);
                if (!layout || !variant) {
                        free(layout);
                        free(variant);
                        return -ENOMEM;
                }
        }
        for (const char *p = s; *p; p++)
                if (!(*p >= 'a' && *p <= 'z') && !(*p >= '0' && *p <= '9') && !strchr("_-()", *p)) {
                        free(layout);
                        free(variant);
                        return -EINVAL;
                }
        *ret_layout = layout;
        *ret_variant = variant;
        return 0;
}

static const char *password_error(int r) {
        switch (r) {
        case -EPERM:
                return "group or others may read or write it; chmod 600 it";
        case -EUCLEAN:
                return "not a regular file owned by you (or root)";
        case -EBADMSG:
                return "no password on its first line, or longer than 4096 bytes";
        default:
                return strerror(-r);
        }
}

int main(int argc, char *argv[]) {
        enum {
                ARG_VM = 0x100,
                ARG_LISTEN,
                ARG_WEBSOCKET,
                ARG_PASSWORD_FILE,
                ARG_INSECURE,
                ARG_VIEW_ONLY,
                ARG_KEYMAP,
                ARG_BUS,
                ARG_DEBUG,
                ARG_VERSION,
        };
        static const struct option options[] = {
                { "vm", required_argument, NULL, ARG_VM },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "websocket", required_argument, NULL, ARG_WEBSOCKET },
                { "password-file", required_argument, NULL, ARG_PASSWORD_FILE },
                { "insecure", no_argument, NULL, ARG_INSECURE },
                { "view-only", no_argument, NULL, ARG_VIEW_ONLY },
                { "keymap", required_argument, NULL, ARG_KEYMAP },
                { "bus", required_argument, NULL, ARG_BUS },
                { "debug", no_argument, NULL, ARG_DEBUG },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        _cleanup_(orrery_client_unrefp) OrreryClient *client = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(keymap_freep) Keymap *keymap = NULL;
        _cleanup_(server_freep) Server *server = NULL;
        _cleanup_free_ char *layout = NULL, *variant = NULL;
        _cleanup_(listen_spec_done) ListenSpec listen_spec = {};
        Passwords passwords = {};
        const char *vm_name = NULL, *listen_str = DEFAULT_LISTEN, *password_file = NULL, *bus_address = NULL,
                   *keymap_str = DEFAULT_LAYOUT, *debug_env = getenv("ORRERY_DEBUG");
        bool insecure = false, view_only = false, have_password, loopback;
        long websocket_port = -1;
        int fds[LISTEN_MAX_SOCKETS], ws_fds[LISTEN_MAX_SOCKETS];
        size_t n_fds = 0, n_ws_fds = 0;
        uint16_t port, ws_port = 0;
        int c, r, ret = EXIT_FAILURE;

        log_set_debug(debug_env && debug_env[0] && strcmp(debug_env, "0") != 0);

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_VM:
                        vm_name = optarg;
                        break;
                case ARG_LISTEN:
                        listen_str = optarg;
                        break;
                case ARG_WEBSOCKET: {
                        char *end;

                        errno = 0;
                        websocket_port = strtol(optarg, &end, 10);
                        if (errno != 0 || end == optarg || *end || websocket_port < 0 || websocket_port > 65535) {
                                fprintf(stderr, "orrery-vnc: invalid --websocket port '%s' (0-65535)\n", optarg);
                                return EXIT_USAGE;
                        }
                        break;
                }
                case ARG_PASSWORD_FILE:
                        password_file = optarg;
                        break;
                case ARG_INSECURE:
                        insecure = true;
                        break;
                case ARG_VIEW_ONLY:
                        view_only = true;
                        break;
                case ARG_KEYMAP:
                        keymap_str = optarg;
                        break;
                case ARG_BUS:
                        bus_address = optarg;
                        break;
                case ARG_DEBUG:
                        log_set_debug(true);
                        break;
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case ARG_VERSION:
                        printf("orrery-vnc %s\n", ORRERY_VERSION);
                        return EXIT_SUCCESS;
                default:
                        fprintf(stderr, "Try 'orrery-vnc --help'.\n");
                        return EXIT_USAGE;
                }

        if (optind < argc) {
                fprintf(stderr, "orrery-vnc: unexpected argument '%s' (the VM is given with --vm NAME)\n", argv[optind]);
                return EXIT_USAGE;
        }
        if (!vm_name) {
                fprintf(stderr, "orrery-vnc: --vm NAME is required (orrery-monitor --list shows the VMs)\n");
                return EXIT_USAGE;
        }
        if (!orrery_vm_name_is_valid(vm_name)) {
                fprintf(stderr, "orrery-vnc: '%s' is not a valid VM name ([A-Za-z_][A-Za-z0-9_]{0,63})\n", vm_name);
                return EXIT_USAGE;
        }
        if (listen_spec_parse(listen_str, &listen_spec) < 0) {
                fprintf(stderr, "orrery-vnc: invalid --listen '%s' (HOST:PORT, [IPV6]:PORT or :PORT)\n", listen_str);
                return EXIT_USAGE;
        }
        r = split_layout(keymap_str, &layout, &variant);
        if (r < 0) {
                fprintf(stderr, "orrery-vnc: invalid --keymap '%s' (an XKB layout such as us, de or fr(azerty))\n", keymap_str);
                return EXIT_USAGE;
        }

        /* The password: never on the command line. */
        if (!password_file)
                password_file = passwords_credential_path();
        if (password_file) {
                r = passwords_read(password_file, &passwords);
                if (r < 0) {
                        fprintf(stderr, "orrery-vnc: refusing the password file %s: %s\n", password_file, password_error(r));
                        return EXIT_USAGE;
                }
                for (size_t i = 0; i < 2; i++)
                        if (passwords.list[i] && strlen(passwords.list[i]) > PASSWORD_SIGNIFICANT)
                                log_info("note: VNC authentication uses only the first %d characters of a password",
                                         PASSWORD_SIGNIFICANT);
        }
        have_password = passwords.list[0] != NULL;

        r = keymap_new(layout, variant, &keymap);
        if (r < 0) {
                fprintf(stderr, "orrery-vnc: cannot build a keymap for the XKB layout '%s': %s\n", keymap_str,
                        r == -ENOENT ? "unknown layout (see /usr/share/X11/xkb/symbols/)" : strerror(-r));
                ret = EXIT_USAGE;
                goto finish;
        }
        log_debug("keymap '%s': %zu keysyms", keymap_str, keymap_size(keymap));

        r = listen_open(listen_spec.host, listen_spec.port, !have_password && !insecure, fds, &n_fds, &loopback, &port);
        if (r == -EPERM) {
                fprintf(stderr,
                        "orrery-vnc: refusing to listen on %s without a password: it is not a loopback address "
                        "(give --password-file, the " PASSWORD_CREDENTIAL " credential, or --insecure)\n",
                        listen_str);
                ret = EXIT_USAGE;
                goto finish;
        }
        if (r < 0) {
                fprintf(stderr, "orrery-vnc: cannot listen on %s: %s\n", listen_str,
                        r == -EADDRNOTAVAIL ? "no such local address" : strerror(-r));
                goto finish;
        }
        if (websocket_port >= 0) {
                r = listen_open(listen_spec.host, (uint16_t) websocket_port, !have_password && !insecure, ws_fds,
                                &n_ws_fds, &loopback, &ws_port);
                if (r < 0) {
                        fprintf(stderr, "orrery-vnc: cannot listen for WebSocket connections on port %ld: %s\n",
                                websocket_port, strerror(-r));
                        goto finish;
                }
        }
        if (!have_password && !loopback)
                log_info("WARNING: serving VM '%s' on a non-loopback address without a password (--insecure)", vm_name);

        r = sd_event_default(&event);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, on_signal, &server);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT | SD_EVENT_SIGNAL_PROCMASK, on_signal, &server);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGHUP | SD_EVENT_SIGNAL_PROCMASK, on_signal, &server);
        if (r < 0) {
                fprintf(stderr, "orrery-vnc: cannot set up the event loop: %s\n", strerror(-r));
                goto finish;
        }

        r = orrery_client_new(bus_address, &client);
        if (r >= 0)
                r = orrery_client_attach_event(client, event, 0);
        if (r < 0) {
                fprintf(stderr, "orrery-vnc: cannot connect to the %s: %s\n", bus_address ? "bus" : "session bus (try --bus)",
                        strerror(-r));
                goto finish;
        }
        /* Without the bus there is no VM to serve: exit (systemd restarts us). */
        (void) sd_bus_set_exit_on_disconnect(orrery_client_get_bus(client), true);

        r = server_new(event, client, &(ServerConfig) { .vm_name = vm_name, .keymap = keymap,
                                                         .passwords = have_password ? &passwords : NULL,
                                                         .view_only = view_only },
                       &server);
        if (r < 0) {
                fprintf(stderr, "orrery-vnc: cannot set up the VNC server for VM '%s': %s\n", vm_name, strerror(-r));
                goto finish;
        }
        for (size_t i = 0; i < n_fds; i++) {
                log_info("listening on %s (VNC%s)", listen_describe(fds[i]), have_password ? ", password" : "");
                r = server_add_listener(server, fds[i]);
                if (r < 0)
                        goto fail_listen;
                fds[i] = -1;
        }
        for (size_t i = 0; i < n_ws_fds; i++) {
                log_info("listening on %s (WebSocket%s)", listen_describe(ws_fds[i]), have_password ? ", password" : "");
                r = server_add_listener(server, ws_fds[i]);
                if (r < 0)
                        goto fail_listen;
                ws_fds[i] = -1;
        }

        (void) sd_notifyf(false, "READY=1\nSTATUS=Serving VM '%s' on port %u", vm_name, port);
        /* Exits 0 on a signal, EXIT_FAILURE when the bus goes away (exit_on_disconnect). */
        r = sd_event_loop(event);
        (void) sd_notify(false, "STOPPING=1");
        ret = r < 0 ? EXIT_FAILURE : r;
        if (ret != EXIT_SUCCESS)
                log_error("the connection to the bus was lost");
        goto finish;

fail_listen:
        fprintf(stderr, "orrery-vnc: cannot watch a listening socket: %s\n", strerror(-r));
finish:
        for (size_t i = 0; i < n_fds; i++)
                safe_close(fds[i]);
        for (size_t i = 0; i < n_ws_fds; i++)
                safe_close(ws_fds[i]);
        server = server_free(server);
        passwords_done(&passwords);
        return ret;
}
