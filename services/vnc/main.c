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
/* parse_args(): the program is done (--help, --version). */
#define PARSE_DONE 1
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
               "  --handshake-timeout SEC  close clients that have not finished the handshake and\n"
               "                        authentication after SEC seconds (default 5)\n"
               "  --view-only           clients may look, not type or point\n"
               "  --keymap LAYOUT       XKB layout that turns VNC keysyms into keys (default " DEFAULT_LAYOUT
               "; e.g. de, fr(azerty))\n"
               "  --bus ADDRESS         use this D-Bus bus instead of the session bus\n"
               "  --log-level LEVEL     err, warning, notice, info or debug (also ORRERY_LOG_LEVEL)\n"
               "  --debug               debug messages on stderr (--log-level debug; also ORRERY_DEBUG=1)\n"
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
                return NULL;
        }
}

typedef struct Args {
        const char *vm_name;
        const char *listen_str;
        const char *password_file;
        const char *bus_address;
        const char *keymap_str;
        bool insecure;
        bool view_only;
        long websocket_port; /* -1: none */
        uint64_t handshake_timeout_usec;
} Args;

/* The pieces main() builds and frees. */
typedef struct Context {
        Args args;
        ListenSpec listen_spec;
        char *layout, *variant;
        Passwords passwords;
        bool have_password;
        Keymap *keymap;
        int fds[LISTEN_MAX_SOCKETS], ws_fds[LISTEN_MAX_SOCKETS];
        size_t n_fds, n_ws_fds;
        uint16_t port;
        sd_event *event;
        OrreryClient *client;
        Server *server;
} Context;

static void context_done(Context *c) {
        for (size_t i = 0; i < c->n_fds; i++)
                safe_close(c->fds[i]);
        for (size_t i = 0; i < c->n_ws_fds; i++)
                safe_close(c->ws_fds[i]);
        c->server = server_free(c->server);
        c->client = orrery_client_unref(c->client);
        c->event = sd_event_unref(c->event);
        c->keymap = keymap_free(c->keymap);
        passwords_done(&c->passwords);
        listen_spec_done(&c->listen_spec);
        c->layout = mfree(c->layout);
        c->variant = mfree(c->variant);
}

/* Returns 0 to go on, PARSE_DONE after --help/--version, -EINVAL for bad usage (logged). */
static int parse_args(int argc, char *argv[], Args *args) {
        enum {
                ARG_VM = 0x100,
                ARG_LISTEN,
                ARG_WEBSOCKET,
                ARG_PASSWORD_FILE,
                ARG_INSECURE,
                ARG_HANDSHAKE_TIMEOUT,
                ARG_VIEW_ONLY,
                ARG_KEYMAP,
                ARG_BUS,
                ARG_LOG_LEVEL,
                ARG_DEBUG,
                ARG_VERSION,
        };
        static const struct option options[] = {
                { "vm", required_argument, NULL, ARG_VM },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "websocket", required_argument, NULL, ARG_WEBSOCKET },
                { "password-file", required_argument, NULL, ARG_PASSWORD_FILE },
                { "insecure", no_argument, NULL, ARG_INSECURE },
                { "handshake-timeout", required_argument, NULL, ARG_HANDSHAKE_TIMEOUT },
                { "view-only", no_argument, NULL, ARG_VIEW_ONLY },
                { "keymap", required_argument, NULL, ARG_KEYMAP },
                { "bus", required_argument, NULL, ARG_BUS },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "debug", no_argument, NULL, ARG_DEBUG },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        int c;

        *args = (Args) {
                .listen_str = DEFAULT_LISTEN,
                .keymap_str = DEFAULT_LAYOUT,
                .websocket_port = -1,
                .handshake_timeout_usec = SERVER_HANDSHAKE_TIMEOUT_USEC,
        };

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_VM:
                        args->vm_name = optarg;
                        break;
                case ARG_LISTEN:
                        args->listen_str = optarg;
                        break;
                case ARG_WEBSOCKET: {
                        char *end;

                        errno = 0;
                        args->websocket_port = strtol(optarg, &end, 10);
                        if (errno != 0 || end == optarg || *end || args->websocket_port < 0 ||
                            args->websocket_port > 65535)
                                return log_error_errno(EINVAL, "invalid --websocket port '%s' (0-65535)", optarg);
                        break;
                }
                case ARG_PASSWORD_FILE:
                        args->password_file = optarg;
                        break;
                case ARG_INSECURE:
                        args->insecure = true;
                        break;
                case ARG_HANDSHAKE_TIMEOUT: {
                        char *end;
                        double sec;

                        errno = 0;
                        sec = strtod(optarg, &end);
                        if (errno != 0 || end == optarg || *end || !(sec >= 0.1 && sec <= 3600))
                                return log_error_errno(EINVAL, "invalid --handshake-timeout '%s' (0.1 to 3600 seconds)",
                                                       optarg);
                        args->handshake_timeout_usec = (uint64_t) (sec * 1e6);
                        break;
                }
                case ARG_VIEW_ONLY:
                        args->view_only = true;
                        break;
                case ARG_KEYMAP:
                        args->keymap_str = optarg;
                        break;
                case ARG_BUS:
                        args->bus_address = optarg;
                        break;
                case ARG_LOG_LEVEL:
                        if (log_set_max_level_from_string(optarg) < 0)
                                return log_error_errno(EINVAL, "invalid --log-level '%s' (err, warning, notice, info, debug)",
                                                       optarg);
                        break;
                case ARG_DEBUG:
                        log_set_max_level(LOG_DEBUG);
                        break;
                case 'h':
                        help();
                        return PARSE_DONE;
                case ARG_VERSION:
                        printf("orrery-vnc %s\n", ORRERY_VERSION);
                        return PARSE_DONE;
                default:
                        return log_error_errno(EINVAL, "see 'orrery-vnc --help' for the options");
                }

        if (optind < argc)
                return log_error_errno(EINVAL, "unexpected argument '%s' (the VM is given with --vm NAME)", argv[optind]);
        if (!args->vm_name)
                return log_error_errno(EINVAL, "--vm NAME is required (orrery-monitor --list shows the VMs)");
        if (!orrery_vm_name_is_valid(args->vm_name))
                return log_error_errno(EINVAL, "'%s' is not a valid VM name ([A-Za-z_][A-Za-z0-9_]{0,63})", args->vm_name);
        return 0;
}

/* The configuration: address, keymap, passwords. Every failure is a refused configuration (exit 2). */
static int setup_config(Context *c) {
        const Args *a = &c->args;
        const char *password_file = a->password_file;
        int r;

        if (listen_spec_parse(a->listen_str, &c->listen_spec) < 0)
                return log_error_errno(EINVAL, "invalid --listen '%s' (HOST:PORT, [IPV6]:PORT or :PORT)", a->listen_str);
        r = split_layout(a->keymap_str, &c->layout, &c->variant);
        if (r < 0)
                return log_error_errno(r, "invalid --keymap '%s' (an XKB layout such as us, de or fr(azerty))",
                                       a->keymap_str);

        /* The password: never on the command line. */
        if (!password_file)
                password_file = passwords_credential_path();
        if (password_file) {
                r = passwords_read(password_file, &c->passwords);
                if (r < 0)
                        return password_error(r) ? log_error_errno(r, "refusing the password file %s: %s", password_file,
                                                                   password_error(r))
                                                 : log_error_errno(r, "refusing the password file %s: %m", password_file);
                for (size_t i = 0; i < 2; i++)
                        if (c->passwords.list[i] && strlen(c->passwords.list[i]) > PASSWORD_SIGNIFICANT)
                                log_notice("note: VNC authentication uses only the first %d characters of a password",
                                           PASSWORD_SIGNIFICANT);
        }
        c->have_password = c->passwords.list[0] != NULL;

        r = keymap_new(c->layout, c->variant, &c->keymap);
        if (r == -ENOENT)
                return log_error_errno(r, "cannot build a keymap for the XKB layout '%s': unknown layout "
                                          "(see /usr/share/X11/xkb/symbols/)", a->keymap_str);
        if (r < 0)
                return log_error_errno(r, "cannot build a keymap for the XKB layout '%s': %m", a->keymap_str);
        log_debug("keymap '%s': %zu keysyms", a->keymap_str, keymap_size(c->keymap));
        return 0;
}

/* The listening sockets. -EPERM: a refused configuration (exit 2); other errors are runtime failures. */
static int setup_listen(Context *c) {
        const Args *a = &c->args;
        bool loopback;
        int r;

        r = listen_open(c->listen_spec.host, c->listen_spec.port, !c->have_password && !a->insecure, c->fds, &c->n_fds,
                        &loopback, &c->port);
        if (r == -EPERM)
                return log_error_errno(r, "refusing to listen on %s without a password: it is not a loopback address "
                                          "(give --password-file, the " PASSWORD_CREDENTIAL " credential, or --insecure)",
                                       a->listen_str);
        if (r == -EADDRNOTAVAIL)
                return log_error_errno(EADDRNOTAVAIL, "cannot listen on %s: no such local address", a->listen_str);
        if (r < 0)
                return log_error_errno(EIO, "cannot listen on %s: %s", a->listen_str, strerror(-r));
        if (a->websocket_port >= 0) {
                uint16_t ws_port;

                r = listen_open(c->listen_spec.host, (uint16_t) a->websocket_port, !c->have_password && !a->insecure,
                                c->ws_fds, &c->n_ws_fds, &loopback, &ws_port);
                if (r < 0)
                        return log_error_errno(EIO, "cannot listen for WebSocket connections on port %ld: %s",
                                               a->websocket_port, strerror(-r));
        }
        if (!c->have_password && !loopback)
                log_warning("WARNING: serving VM '%s' on a non-loopback address without a password (--insecure)",
                            a->vm_name);
        return 0;
}

static int setup_server(Context *c) {
        const Args *a = &c->args;
        int r;

        r = sd_event_default(&c->event);
        if (r >= 0)
                r = sd_event_add_signal(c->event, NULL, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, on_signal, &c->server);
        if (r >= 0)
                r = sd_event_add_signal(c->event, NULL, SIGINT | SD_EVENT_SIGNAL_PROCMASK, on_signal, &c->server);
        if (r >= 0)
                r = sd_event_add_signal(c->event, NULL, SIGHUP | SD_EVENT_SIGNAL_PROCMASK, on_signal, &c->server);
        if (r < 0)
                return log_error_errno(r, "cannot set up the event loop: %m");

        r = orrery_client_new(a->bus_address, &c->client);
        if (r >= 0)
                r = orrery_client_attach_event(c->client, c->event, 0);
        if (r < 0)
                return log_error_errno(r, "cannot connect to the %s: %m",
                                       a->bus_address ? "bus" : "session bus (try --bus)");
        /* Without the bus there is no VM to serve: exit (systemd restarts us). */
        (void) sd_bus_set_exit_on_disconnect(orrery_client_get_bus(c->client), true);

        r = server_new(c->event, c->client,
                       &(ServerConfig) { .vm_name = a->vm_name, .keymap = c->keymap,
                                         .passwords = c->have_password ? &c->passwords : NULL,
                                         .view_only = a->view_only,
                                         .handshake_timeout_usec = a->handshake_timeout_usec,
                                         .port = c->port },
                       &c->server);
        if (r < 0)
                return log_error_errno(r, "cannot set up the VNC server for VM '%s': %m", a->vm_name);

        for (size_t i = 0; i < c->n_fds; i++) {
                log_info("listening on %s (VNC%s)", listen_describe(c->fds[i]), c->have_password ? ", password" : "");
                r = server_add_listener(c->server, c->fds[i]);
                if (r < 0)
                        return log_error_errno(r, "cannot watch a listening socket: %m");
                c->fds[i] = -1;
        }
        for (size_t i = 0; i < c->n_ws_fds; i++) {
                log_info("listening on %s (WebSocket%s)", listen_describe(c->ws_fds[i]),
                         c->have_password ? ", password" : "");
                r = server_add_listener(c->server, c->ws_fds[i]);
                if (r < 0)
                        return log_error_errno(r, "cannot watch a listening socket: %m");
                c->ws_fds[i] = -1;
        }
        return 0;
}

/* Exits 0 on a signal, EXIT_FAILURE when the bus goes away (exit_on_disconnect). */
static int run(Context *c) {
        int r;

        /* STATUS= says whether the VM is served or waited for (the server keeps it current). */
        (void) sd_notify(false, "READY=1");
        r = sd_event_loop(c->event);
        (void) sd_notify(false, "STOPPING=1");
        if (r < 0)
                return log_error_errno(r, "the event loop failed: %m"), EXIT_FAILURE;
        if (r != EXIT_SUCCESS)
                log_error("the connection to the bus was lost");
        return r;
}

int main(int argc, char *argv[]) {
        _cleanup_(context_done) Context c = {};
        int r;

        log_setup("orrery-vnc");
        r = parse_args(argc, argv, &c.args);
        if (r == PARSE_DONE)
                return EXIT_SUCCESS;
        if (r < 0)
                return EXIT_USAGE;
        if (setup_config(&c) < 0)
                return EXIT_USAGE;
        r = setup_listen(&c);
        if (r < 0)
                return r == -EPERM ? EXIT_USAGE : EXIT_FAILURE;
        if (setup_server(&c) < 0)
                return EXIT_FAILURE;
        return run(&c);
}
