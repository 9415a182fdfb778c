/* SPDX-License-Identifier: MIT */

/*
 * orrery-agent: the host side of the guest agent. For every VM on the bus
 * with a "guest_agent" chardev it registers on that port, speaks the QEMU
 * guest-agent protocol to the guest and serves org.orrery.Agent1 on
 * /org/orrery/Agent/<vm> under the name org.orrery.Agent (see
 * dbus/org.orrery.Agent1.xml and README.md in this directory).
 */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "bus-util.h"
#include "log.h"
#include "macro.h"

#define STARTUP_MAX_USEC (5ULL * 1000000ULL)
#define STARTUP_POLL_USEC (20ULL * 1000ULL)
#define TIMEOUT_DEFAULT_SEC 10.0
#define COPY_MAX_BYTES_DEFAULT (1ULL << 30)
#define COPY_RESERVE_DEFAULT 5

int manager_check_caller(sd_bus_message *m, sd_bus_error *error) {
        return bus_check_same_user(m, "the bridge's user", error);
}

static void manager_request_name(Manager *m) {
        int r;

        if (m->name_requested)
                return;
        m->name_requested = true;
        m->startup_timer = sd_event_source_disable_unref(m->startup_timer);
        /*
         * Only now: a call that activated us waits in the bus daemon until
         * we own the name, and by then the objects of the VMs that were
         * already running exist and their ports are registered.
         */
        r = sd_bus_request_name(m->bus, AGENT_BUS_NAME, 0);
        if (r < 0) {
                log_error_errno(r, "cannot own %s: %m (is another orrery-agent running?)", AGENT_BUS_NAME);
                (void) sd_event_exit(m->event, 3);
                return;
        }
        log_debug("owning %s", AGENT_BUS_NAME);
}

void manager_agent_settled(Manager *m) {
        if (m->name_requested || !m->watch || !orrery_vm_watch_is_ready(m->watch))
                return;
        for (Agent *a = m->agents; a; a = a->next)
                if (!a->settled)
                        return;
        manager_request_name(m);
}

/* The VM watch has no "ready" callback: look every 20 ms until settled, at most STARTUP_MAX_USEC. */
static int on_startup_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        uint64_t now = 0;

        if (m->name_requested)
                return 0;
        manager_agent_settled(m);
        if (m->name_requested)
                return 0;
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (now - m->startup_begin >= STARTUP_MAX_USEC) {
                log_info("VMs still settling after %llu s; taking the bus name anyway", STARTUP_MAX_USEC / 1000000ULL);
                manager_request_name(m);
                return 0;
        }
        (void) sd_event_source_set_time_relative(s, STARTUP_POLL_USEC);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static void on_vm_added(OrreryVmWatch *w, const char *name, void *userdata) {
        Manager *m = userdata;
        int r;

        if (agent_find(m, name))
                return; /* the test hook's VM, or already known */
        r = agent_new(m, name, NULL, NULL);
        if (r < 0)
                log_error_errno(r, "cannot follow VM '%s': %m", name);
        manager_agent_settled(m);
}

static void on_vm_removed(OrreryVmWatch *w, const char *name, void *userdata) {
        Manager *m = userdata;
        Agent *a = agent_find(m, name);

        if (a && !a->socket_path)
                agent_free(a);
        manager_agent_settled(m);
}

static const OrreryVmWatchCallbacks watch_callbacks = {
        .vm_added = on_vm_added,
        .vm_removed = on_vm_removed,
};

static void manager_free(Manager *m) {
        while (m->agents)
                agent_free(m->agents);
        m->watch = orrery_vm_watch_free(m->watch);
        m->startup_timer = sd_event_source_disable_unref(m->startup_timer);
        m->client = orrery_client_unref(m->client);
        m->bus = sd_bus_flush_close_unref(m->bus);
        m->event = sd_event_unref(m->event);
        for (size_t i = 0; i < m->n_tests; i++) {
                free(m->tests[i].vm);
                free(m->tests[i].socket);
        }
}

static void help(void) {
        printf("Usage: orrery-agent [OPTIONS]\n"
               "\n"
               "Serves org.orrery.Agent1 for every VM on the bus that has a guest agent port.\n"
               "\n"
               "  --bus ADDRESS          use this D-Bus bus instead of the session bus\n"
               "  --timeout SEC          how long a guest call may take (default %.0f)\n"
               "  --copy-max-bytes N     at most N bytes per CopyFromGuest (suffixes K, M, G; default 1G;\n"
               "                         CopyFromGuestEx's MaxBytes overrides it per call)\n"
               "  --copy-reserve PERCENT stop a copy from the guest before the destination's file system\n"
               "                         has less than PERCENT of its size free (default %d)\n"
               "  --test-socket VM=PATH  for tests: talk to the guest agent listening on the\n"
               "                         Unix socket PATH (e.g. qemu-ga -m unix-listen) as VM,\n"
               "                         instead of that VM's chardev (may be repeated)\n"
               "  -v, --verbose          debug messages on stderr (also ORRERY_DEBUG=1)\n"
               "  -h, --help             this text\n",
               TIMEOUT_DEFAULT_SEC, COPY_RESERVE_DEFAULT);
}

static int parse_args(Manager *m, int argc, char **argv, const char **ret_address) {
        static const struct option options[] = {
                { "bus", required_argument, NULL, 'b' },
                { "timeout", required_argument, NULL, 't' },
                { "copy-max-bytes", required_argument, NULL, 'm' },
                { "copy-reserve", required_argument, NULL, 'r' },
                { "test-socket", required_argument, NULL, 's' },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        double timeout = TIMEOUT_DEFAULT_SEC;
        int c;

        m->copy_max_bytes = COPY_MAX_BYTES_DEFAULT;
        m->copy_reserve_percent = COPY_RESERVE_DEFAULT;

        while ((c = getopt_long(argc, argv, "vh", options, NULL)) >= 0) {
                switch (c) {
                case 'b':
                        *ret_address = optarg;
                        break;
                case 't': {
                        char *end;

                        errno = 0;
                        timeout = strtod(optarg, &end);
                        if (errno || end == optarg || *end || !(timeout >= 0.1 && timeout <= 3600)) {
                                log_error("--timeout wants seconds between 0.1 and 3600, not '%s'", optarg);
                                return -EINVAL;
                        }
                        break;
                }
                case 'm': {
                        unsigned long long v;
                        char *end;
                        int shift = 0;

                        errno = 0;
                        v = strtoull(optarg, &end, 10);
                        if (*end == 'K' || *end == 'M' || *end == 'G')
                                shift = *end == 'K' ? 10 : *end == 'M' ? 20 : 30, end++;
                        if (errno || end == optarg || *end || optarg[0] == '-' || v == 0 || v > (UINT64_MAX >> shift)) {
                                log_error("--copy-max-bytes wants a positive number of bytes (K, M, G suffixes), not '%s'",
                                          optarg);
                                return -EINVAL;
                        }
                        m->copy_max_bytes = (uint64_t) v << shift;
                        break;
                }
                case 'r': {
                        unsigned long v;
                        char *end;

                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || end == optarg || *end || optarg[0] == '-' || v > 100) {
                                log_error("--copy-reserve wants a percentage between 0 and 100, not '%s'", optarg);
                                return -EINVAL;
                        }
                        m->copy_reserve_percent = (unsigned) v;
                        break;
                }
                case 's': {
                        const char *eq = strchr(optarg, '=');
                        _cleanup_free_ char *vm = eq ? strndup(optarg, (size_t) (eq - optarg)) : NULL;
                        TestSocket *t;

                        if (!vm || !orrery_vm_name_is_valid(vm) || !eq[1]) {
                                log_error("--test-socket wants VM=PATH with a valid VM name, not '%s'", optarg);
                                return -EINVAL;
                        }
                        if (m->n_tests >= ELEMENTSOF(m->tests)) {
                                log_error("at most %zu --test-socket options", ELEMENTSOF(m->tests));
                                return -EINVAL;
                        }
                        t = m->tests + m->n_tests++;
                        t->vm = TAKE_PTR(vm);
                        t->socket = strdup(eq + 1);
                        if (!t->socket)
                                return -ENOMEM;
                        break;
                }
                case 'v':
                        log_set_max_level(LOG_DEBUG);
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                log_error("unexpected argument '%s'", argv[optind]);
                return -EINVAL;
        }
        m->timeout_usec = (uint64_t) (timeout * 1e6);
        return 1;
}

int main(int argc, char **argv) {
        Manager m = {};
        const char *address = NULL;
        int r, ret = 1;

        log_setup("orrery-agent");
        r = parse_args(&m, argc, argv, &address);
        if (r <= 0) {
                manager_free(&m);
                return r < 0 ? 2 : 0;
        }
        (void) signal(SIGPIPE, SIG_IGN);

        r = sd_event_default(&m.event);
        if (r < 0)
                goto fail;
        r = sd_event_set_signal_exit(m.event, true);
        if (r < 0) /* older libsystemd: handle them ourselves */
                r = 0;
        (void) sd_event_add_signal(m.event, NULL, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, NULL, NULL);
        (void) sd_event_add_signal(m.event, NULL, SIGINT | SD_EVENT_SIGNAL_PROCMASK, NULL, NULL);

        r = bus_open(address, "orrery-agent", &m.bus);
        if (r < 0) {
                log_error_errno(r, "cannot connect to the %s: %m", address ? "bus given with --bus" : "session bus");
                manager_free(&m);
                return 2;
        }
        r = sd_bus_attach_event(m.bus, m.event, 0);
        if (r < 0)
                goto fail;
        (void) sd_bus_set_exit_on_disconnect(m.bus, true);
        r = sd_bus_add_object_manager(m.bus, NULL, AGENT_PATH_PREFIX);
        if (r < 0)
                goto fail;

        r = orrery_client_new_with_bus(m.bus, &m.client);
        if (r < 0)
                goto fail;
        r = orrery_client_attach_event(m.client, m.event, 0);
        if (r < 0 && r != -EBUSY)
                goto fail;

        for (size_t i = 0; i < m.n_tests; i++) {
                if (agent_find(&m, m.tests[i].vm))
                        continue;
                r = agent_new(&m, m.tests[i].vm, m.tests[i].socket, NULL);
                if (r < 0)
                        goto fail;
        }
        r = orrery_vm_watch_new(m.client, &watch_callbacks, &m, &m.watch);
        if (r < 0)
                goto fail;
        (void) sd_event_now(m.event, CLOCK_MONOTONIC, &m.startup_begin);
        r = sd_event_add_time_relative(m.event, &m.startup_timer, CLOCK_MONOTONIC, STARTUP_POLL_USEC, 0,
                                       on_startup_timer, &m);
        if (r < 0)
                goto fail;
        manager_agent_settled(&m);

        r = sd_event_loop(m.event);
        ret = r < 0 ? 1 : r;
        manager_free(&m);
        return ret;

fail:
        log_error_errno(r, "cannot start: %m");
        manager_free(&m);
        return 1;
}
