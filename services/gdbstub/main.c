/* SPDX-License-Identifier: MIT */
/*
 * orrery-gdbstub: a GDB remote-protocol server for one Orrery VM, built
 * only on the bus (org.orrery.Debug1). It runs beside the emulator: when
 * the stub or the debugger dies, the VM drops the debugger's breakpoints
 * and runs on. One debugger at a time; loopback or a unix socket only.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "../vnc/listen.h"
#include "bus-backend.h"
#include "log.h"
#include "macro.h"
#include "orrery-client.h"
#include "session.h"

#define EXIT_USAGE 2
#define DEFAULT_LISTEN "127.0.0.1:1234"
#define SEND_TIMEOUT_SEC 10

typedef struct Stub {
        const char *vm_name;
        const char *listen;
        const char *bus_address;
        char *unix_path;                /* unlinked at exit */
        sd_event *event;
        OrreryClient *client;
        BusBackend *backend;
        int listen_fds[LISTEN_MAX_SOCKETS];
        size_t n_listen;
        int conn;                       /* the debugger's connection, or -1 */
        sd_event_source *conn_source;
        Session session;
} Stub;

static void help(void) {
        printf("orrery-gdbstub --vm NAME [OPTIONS]\n\n"
               "Serves the Orrery VM NAME to a debugger over GDB's remote protocol, through the\n"
               "VM's org.orrery.Debug1 interface (the VM must run with --debug or debug = yes).\n\n"
               "  --vm NAME            the VM (org.orrery.VM.NAME on the bus)\n"
               "  --listen ADDR        127.0.0.1:PORT or [::1]:PORT (loopback only; port 0 picks one),\n"
               "                       or unix:PATH (default " DEFAULT_LISTEN ")\n"
               "  --bus ADDRESS        use this D-Bus bus instead of the session bus\n"
               "  --log-level LEVEL    err, warning, notice, info or debug (also ORRERY_LOG_LEVEL)\n"
               "  -h, --help           show this help\n"
               "      --version        show the version\n\n"
               "Then: gdb-multiarch vmlinux -ex 'target remote 127.0.0.1:1234'\n");
}

static void send_to_debugger(void *userdata, const char *data, size_t len) {
        Stub *s = userdata;

        while (len > 0 && s->conn >= 0) {
                ssize_t n = send(s->conn, data, len, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        log_warning("cannot write to the debugger: %s", n < 0 ? strerror(errno) : "closed");
                        return;
                }
                data += n;
                len -= (size_t) n;
        }
}

static void on_stopped(void *userdata, const char *reason, const char *watch_kind, uint64_t watch_addr) {
        Stub *s = userdata;

        if (s->conn >= 0)
                session_stopped(&s->session, reason, watch_kind, watch_addr);
}

static void close_connection(Stub *s, bool detach) {
        if (s->conn < 0)
                return;
        if (detach)
                (void) bus_session_backend.detach(s->backend);
        s->conn_source = sd_event_source_disable_unref(s->conn_source);
        close(s->conn);
        s->conn = -1;
        log_info("debugger disconnected; VM '%s' runs on without breakpoints", s->vm_name);
}

static int on_conn_input(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        Stub *s = userdata;
        uint8_t buf[65536];
        ssize_t n;

        n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return 0;
        if (n <= 0) {
                close_connection(s, true);
                return 0;
        }
        if (session_input(&s->session, buf, (size_t) n) == SESSION_CLOSE)
                close_connection(s, false);
        return 0;
}

/*
 * Tells a connecting debugger why it cannot debug, as the error reply to
 * its first packet (GDB prints it), then hangs up. Waits at most a few
 * seconds for that packet: this is the rare path.
 */
static void refuse(int fd, const char *why) {
        char payload[512], framed[2 * sizeof(payload) + 8], buf[4096];
        struct timeval tv = { .tv_sec = 2 };
        size_t n, got = 0;

        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        while (got < sizeof(buf) - 1) {
                ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
                if (r <= 0)
                        break;
                got += (size_t) r;
                buf[got] = 0;
                char *hash = strchr(buf, '#');
                if (hash && strlen(hash) >= 3)
                        break;
        }
        snprintf(payload, sizeof(payload), "E.%s", why);
        n = rsp_frame(payload, strlen(payload), framed, sizeof(framed));
        (void) send(fd, "+", 1, MSG_NOSIGNAL);
        (void) send(fd, framed, n, MSG_NOSIGNAL);
        shutdown(fd, SHUT_WR);
        /* Until the debugger closes (or a short while): closing with unread input would reset the connection. */
        while (recv(fd, buf, sizeof(buf), 0) > 0)
                ;
        close(fd);
}

static int on_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        Stub *s = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        struct timeval tv = { .tv_sec = SEND_TIMEOUT_SEC };
        int c, r;

        c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
                return 0;
        if (s->conn >= 0) {
                log_warning("refused a second debugger: one is attached to VM '%s' already", s->vm_name);
                refuse(c, "another debugger is attached to this VM already");
                return 0;
        }
        r = bus_backend_attach(s->backend, &error);
        if (r < 0) {
                log_error("cannot debug VM '%s': %s", s->vm_name, error.message ? error.message : strerror(-r));
                refuse(c, error.message ? error.message : strerror(-r));
                sd_bus_error_free(&error);
                return 0;
        }
        (void) setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        r = sd_event_add_io(s->event, &s->conn_source, c, EPOLLIN, on_conn_input, s);
        if (r < 0) {
                close(c);
                (void) bus_session_backend.detach(s->backend);
                return log_error_errno(r, "cannot watch the debugger's connection: %m"), 0;
        }
        s->conn = c;
        session_init(&s->session, &bus_session_backend, s->backend, send_to_debugger, s);
        log_info("debugger connected; VM '%s' stopped", s->vm_name);
        return 0;
}

static int open_unix(Stub *s, const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return log_error_errno(ENAMETOOLONG, "socket path too long: %s", path);
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(errno, "cannot create a socket: %m");
        (void) unlink(path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
                int e = errno;
                close(fd);
                return log_error_errno(e, "cannot listen on %s: %m", path);
        }
        s->unix_path = strdup(path);
        s->listen_fds[0] = fd;
        s->n_listen = 1;
        return 0;
}

static int open_listen(Stub *s) {
        ListenSpec spec = {};
        bool loopback;
        uint16_t port;
        int r;

        if (strncmp(s->listen, "unix:", 5) == 0 && s->listen[5])
                return open_unix(s, s->listen + 5);
        r = listen_spec_parse(s->listen, &spec);
        if (r < 0)
                return log_error_errno(r, "invalid --listen '%s': expected HOST:PORT or unix:PATH", s->listen);
        if (!spec.host) {
                listen_spec_done(&spec);
                return log_error_errno(EPERM, "--listen '%s' would accept debuggers from anywhere; "
                                       "give a loopback address (127.0.0.1:PORT)", s->listen);
        }
        r = listen_open(spec.host, spec.port, true, s->listen_fds, &s->n_listen, &loopback, &port);
        listen_spec_done(&spec);
        if (r == -EPERM)
                return log_error_errno(r, "--listen '%s' is not a loopback address: a debugger controls the whole "
                                       "guest", s->listen);
        if (r < 0)
                return log_error_errno(r, "cannot listen on %s: %m", s->listen);
        return 0;
}

/* Said once the VM is known to be debuggable: "listening" means a debugger can attach. */
static void log_listening(Stub *s) {
        if (s->unix_path) {
                log_info("listening on unix:%s for VM '%s'", s->unix_path, s->vm_name);
                return;
        }
        for (size_t i = 0; i < s->n_listen; i++)
                log_info("listening on %s for VM '%s'", listen_describe(s->listen_fds[i]), s->vm_name);
}

static int parse_args(Stub *s, int argc, char *argv[]) {
        enum { ARG_VM = 0x100, ARG_LISTEN, ARG_BUS, ARG_LOG_LEVEL, ARG_VERSION };
        static const struct option options[] = {
                { "vm", required_argument, NULL, ARG_VM },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "bus", required_argument, NULL, ARG_BUS },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        int c;

        s->listen = DEFAULT_LISTEN;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_VM:
                        s->vm_name = optarg;
                        break;
                case ARG_LISTEN:
                        s->listen = optarg;
                        break;
                case ARG_BUS:
                        s->bus_address = optarg;
                        break;
                case ARG_LOG_LEVEL:
                        if (log_set_max_level_from_string(optarg) < 0)
                                return log_error_errno(EINVAL, "invalid --log-level '%s'", optarg);
                        break;
                case 'h':
                        help();
                        return 1;
                case ARG_VERSION:
                        printf("orrery-gdbstub %s\n", ORRERY_VERSION);
                        return 1;
                default:
                        return -EINVAL;
                }
        if (optind < argc)
                return log_error_errno(EINVAL, "unexpected argument '%s'", argv[optind]);
        if (!s->vm_name)
                return log_error_errno(EINVAL, "--vm NAME is required (see --help)");
        if (!orrery_vm_name_is_valid(s->vm_name))
                return log_error_errno(EINVAL, "invalid VM name '%s'", s->vm_name);
        return 0;
}

static int setup(Stub *s) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_event_default(&s->event);
        if (r >= 0)
                r = sd_event_set_signal_exit(s->event, true);
        if (r < 0)
                return log_error_errno(r, "cannot set up the event loop: %m");
        r = orrery_client_new(s->bus_address, &s->client);
        if (r >= 0)
                r = orrery_client_attach_event(s->client, s->event, 0);
        if (r < 0)
                return log_error_errno(r, "cannot connect to the %s: %m", s->bus_address ? "bus" : "session bus");
        (void) sd_bus_set_exit_on_disconnect(orrery_client_get_bus(s->client), true);

        r = bus_backend_new(orrery_client_get_bus(s->client), s->vm_name, on_stopped, s, &s->backend);
        if (r < 0)
                return log_error_errno(r, "cannot watch VM '%s': %m", s->vm_name);
        r = bus_backend_check(s->backend, &error);
        if (r < 0) {
                log_error("cannot debug VM '%s': %s", s->vm_name, error.message ? error.message : strerror(-r));
                sd_bus_error_free(&error);
                return r;
        }
        for (size_t i = 0; i < s->n_listen; i++) {
                r = sd_event_add_io(s->event, NULL, s->listen_fds[i], EPOLLIN, on_accept, s);
                if (r < 0)
                        return log_error_errno(r, "cannot watch the listening socket: %m");
        }
        return 0;
}

int main(int argc, char *argv[]) {
        Stub s = { .conn = -1 };
        int r;

        log_setup("orrery-gdbstub");
        for (size_t i = 0; i < LISTEN_MAX_SOCKETS; i++)
                s.listen_fds[i] = -1;
        r = parse_args(&s, argc, argv);
        if (r != 0)
                return r > 0 ? EXIT_SUCCESS : EXIT_USAGE;
        if (open_listen(&s) < 0)
                return EXIT_USAGE;
        r = setup(&s);
        if (r >= 0) {
                log_listening(&s);
                (void) sd_notify(false, "READY=1");
                r = sd_event_loop(s.event);
        }
        /* A signal or a lost bus: let the guest run on without our breakpoints. */
        close_connection(&s, true);
        if (s.unix_path)
                (void) unlink(s.unix_path);
        free(s.unix_path);
        for (size_t i = 0; i < s.n_listen; i++)
                close(s.listen_fds[i]);
        bus_backend_free(s.backend);
        orrery_client_unref(s.client);
        sd_event_unref(s.event);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
