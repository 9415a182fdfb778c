/* SPDX-License-Identifier: MIT */
/*
 * orrery-monitor's "agent" commands. Every call has a timeout; a copy, which
 * may take long, is bounded by inactivity instead: it fails when the bridge
 * reports no progress for COPY_STALL_USEC. Ctrl-C cancels a copy
 * (CancelCopies), and a monitor that dies mid-copy leaves the bus, which
 * cancels it too.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "macro.h"
#include "text.h"
#include "time-util.h"

#define EXIT_USAGE 2
#define AGENT_BUS_NAME "org.orrery.Agent"
#define AGENT_INTERFACE "org.orrery.Agent1"
/* Includes the time the bus needs to activate the bridge and the bridge's own guest timeout. */
#define CALL_TIMEOUT_USEC (30ULL * 1000000ULL)
#define COPY_STALL_USEC (60ULL * 1000000ULL)
#define COPY_CALL_TIMEOUT_USEC (24ULL * 3600ULL * 1000000ULL)
#define PROGRESS_INTERVAL_USEC (100ULL * 1000ULL)
/* The bus could not start the activatable service (ServiceNotFound, ExecFailed, ChildExited, …). */
#define DBUS_SPAWN_ERROR_PREFIX "org.freedesktop.DBus.Error.Spawn."

const char *const monitor_agent_subcommands[] = {
        "ping", "info", "osinfo", "hostname", "time", "shutdown", "fsfreeze", "fsthaw", "fsfreeze-status",
        "copy-in", "copy-out", NULL,
};

static char *agent_path(const char *vm) {
        char *p = NULL;

        if (sd_bus_path_encode("/org/orrery/Agent", vm, &p) < 0)
                return NULL;
        return p;
}

/* One line that says what went wrong and what to do about it. */
static void print_agent_error(const char *vm, const char *what, int r, const sd_bus_error *error) {
        const char *message = error && error->message ? printable(error->message) : strerror(r < 0 ? -r : r);

        if (!error || !sd_bus_error_is_set(error)) {
                if (r == -ETIMEDOUT)
                        log_error("agent %s: no answer from %s in time", what, AGENT_BUS_NAME);
                else
                        log_error("agent %s: %s", what, message);
        } else if (sd_bus_error_has_names(error, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER) ||
                   (error->name && strncmp(error->name, DBUS_SPAWN_ERROR_PREFIX, strlen(DBUS_SPAWN_ERROR_PREFIX)) == 0))
                log_error("agent %s: the guest-agent bridge %s is not available (is orrery-agent installed?): %s",
                          what, AGENT_BUS_NAME, message);
        else if (sd_bus_error_has_names(error, SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_UNKNOWN_INTERFACE))
                log_error("agent %s: VM '%s' has no guest agent (the VM is not on the bus, or has no guest_agent "
                          "chardev)", what, vm);
        else if (sd_bus_error_has_name(error, "org.orrery.Error.Timeout"))
                log_error("agent %s: the guest agent did not answer in time (is it running in the guest?): %s", what,
                          message);
        else if (sd_bus_error_has_name(error, "org.orrery.Error.Unavailable"))
                log_error("agent %s: the guest agent is unavailable: %s", what, message);
        else if (sd_bus_error_has_name(error, "org.orrery.Error.GuestError"))
                log_error("agent %s: the guest refused: %s", what, message);
        else if (sd_bus_error_has_name(error, "org.orrery.Error.Cancelled"))
                log_error("agent %s: cancelled", what);
        else if (sd_bus_error_has_name(error, SD_BUS_ERROR_NO_REPLY) || r == -ETIMEDOUT)
                log_error("agent %s: no answer from %s in time", what, AGENT_BUS_NAME);
        else
                log_error("agent %s: %s", what, message);
}

/* A call with no input arguments; the reply is left for the caller to read. */
static int agent_call(sd_bus *bus, const char *vm, const char *member, const char *what,
                      sd_bus_message **ret_reply) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        _cleanup_free_ char *path = agent_path(vm);
        int r;

        if (!path)
                return -ENOMEM;
        r = sd_bus_message_new_method_call(bus, &call, AGENT_BUS_NAME, path, AGENT_INTERFACE, member);
        if (r >= 0)
                r = sd_bus_call(bus, call, CALL_TIMEOUT_USEC, &error, ret_reply);
        if (r < 0)
                print_agent_error(vm, what, r, &error);
        return r;
}

static int parse_failed(const char *what, int r) {
        log_error_errno(r, "agent %s: unexpected reply from the bridge: %m", what);
        return EXIT_FAILURE;
}

static int agent_ping(sd_bus *bus, const char *vm) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint64_t start = now_usec(CLOCK_MONOTONIC);

        if (agent_call(bus, vm, "Ping", "ping", &reply) < 0)
                return EXIT_FAILURE;
        printf("guest agent of '%s' answered in %.1f ms\n", vm, (double) (now_usec(CLOCK_MONOTONIC) - start) / 1000.0);
        return EXIT_SUCCESS;
}

static int agent_info(sd_bus *bus, const char *vm) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *version, *command;
        size_t n = 0;
        int r;

        if (agent_call(bus, vm, "Info", "info", &reply) < 0)
                return EXIT_FAILURE;
        r = sd_bus_message_read(reply, "s", &version);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "s");
        if (r < 0)
                return parse_failed("info", r);
        printf("version: %s\ncommands:", printable(version));
        while ((r = sd_bus_message_read(reply, "s", &command)) > 0) {
                printf("%s%s", n % 4 == 0 ? "\n  " : " ", printable(command));
                n++;
        }
        printf("\n");
        return r < 0 ? parse_failed("info", r) : EXIT_SUCCESS;
}

static int agent_osinfo(sd_bus *bus, const char *vm) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *key, *value;
        int r;

        if (agent_call(bus, vm, "GetOSInfo", "osinfo", &reply) < 0)
                return EXIT_FAILURE;
        r = sd_bus_message_enter_container(reply, 'a', "{ss}");
        if (r < 0)
                return parse_failed("osinfo", r);
        while ((r = sd_bus_message_read(reply, "{ss}", &key, &value)) > 0)
                printf("%s: %s\n", printable(key), printable(value));
        return r < 0 ? parse_failed("osinfo", r) : EXIT_SUCCESS;
}

static int agent_hostname(sd_bus *bus, const char *vm) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *name;
        int r;

        if (agent_call(bus, vm, "GetHostName", "hostname", &reply) < 0)
                return EXIT_FAILURE;
        r = sd_bus_message_read(reply, "s", &name);
        if (r < 0)
                return parse_failed("hostname", r);
        printf("%s\n", printable(name));
        return EXIT_SUCCESS;
}

static int agent_time(sd_bus *bus, const char *vm) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        struct timespec host;
        int64_t nsec;
        time_t seconds;
        struct tm tm;
        char when[64];
        int r;

        if (agent_call(bus, vm, "GetTime", "time", &reply) < 0)
                return EXIT_FAILURE;
        r = sd_bus_message_read(reply, "x", &nsec);
        if (r < 0)
                return parse_failed("time", r);
        clock_gettime(CLOCK_REALTIME, &host);
        seconds = (time_t) (nsec / 1000000000LL);
        if (!gmtime_r(&seconds, &tm) || strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
                snprintf(when, sizeof(when), "%" PRId64 " ns", nsec);
        printf("guest time: %s (%+.3f s from the host)\n", when,
               (double) (nsec - ((int64_t) host.tv_sec * 1000000000LL + host.tv_nsec)) / 1e9);
        return EXIT_SUCCESS;
}

static int agent_count(sd_bus *bus, const char *vm, const char *member, const char *what, const char *verb) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int32_t count;
        int r;

        if (agent_call(bus, vm, member, what, &reply) < 0)
                return EXIT_FAILURE;
        r = sd_bus_message_read(reply, "i", &count);
        if (r < 0)
                return parse_failed(what, r);
        printf("%s %" PRId32 " filesystem%s\n", verb, count, count == 1 ? "" : "s");
        return EXIT_SUCCESS;
}

static int agent_fsfreeze_status(sd_bus *bus, const char *vm) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *status;
        int r;

        if (agent_call(bus, vm, "FsFreezeStatus", "fsfreeze-status", &reply) < 0)
                return EXIT_FAILURE;
        r = sd_bus_message_read(reply, "s", &status);
        if (r < 0)
                return parse_failed("fsfreeze-status", r);
        printf("%s\n", printable(status));
        return EXIT_SUCCESS;
}

static int agent_shutdown(sd_bus *bus, const char *vm, const char *mode) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *path = agent_path(vm);
        int r;

        if (!path)
                return EXIT_FAILURE;
        r = sd_bus_call_method(bus, AGENT_BUS_NAME, path, AGENT_INTERFACE, "Shutdown", &error, &reply, "s", mode);
        if (r < 0) {
                print_agent_error(vm, "shutdown", r, &error);
                return EXIT_FAILURE;
        }
        printf("guest agent accepted '%s'\n", mode);
        return EXIT_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Copies                                                                  */

typedef struct Copy {
        const char *path; /* the guest path, as the bridge reports it back */
        bool show_progress;
        bool done;
        int error;
        sd_bus_error bus_error;
        uint64_t bytes;
        uint64_t last_activity;
        uint64_t last_drawn;
        bool drawn;
} Copy;

static void draw_progress(Copy *c, uint64_t done, uint64_t total) {
        double mib = (double) done / (1024.0 * 1024.0);

        if (total > 0)
                fprintf(stderr, "\r%s: %.1f of %.1f MiB (%" PRIu64 "%%)   ", c->path, mib,
                        (double) total / (1024.0 * 1024.0), done * 100 / total);
        else
                fprintf(stderr, "\r%s: %.1f MiB   ", c->path, mib);
        c->drawn = true;
}

static int on_copy_progress(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Copy *c = userdata;
        const char *path;
        uint64_t done, total, now = now_usec(CLOCK_MONOTONIC);

        if (sd_bus_message_read(m, "stt", &path, &done, &total) < 0)
                return 0;
        c->last_activity = now;
        if (c->show_progress && now - c->last_drawn >= PROGRESS_INTERVAL_USEC) {
                c->last_drawn = now;
                draw_progress(c, done, total);
        }
        return 0;
}

static int on_copy_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Copy *c = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        int r;

        c->done = true;
        if (e) {
                c->error = -sd_bus_message_get_errno(m) ?: -EIO;
                (void) sd_bus_error_copy(&c->bus_error, e);
                return 0;
        }
        r = sd_bus_message_read(m, "t", &c->bytes);
        if (r < 0)
                c->error = r;
        return 0;
}

/* Ctrl-C while a copy runs: interactive mode blocks SIGINT (sd-event reads it), so look for it here. */
static bool interrupted(void) {
        static const struct timespec zero = {};
        sigset_t pending, mask;

        if (sigpending(&pending) < 0 || !sigismember(&pending, SIGINT))
                return false;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        return sigtimedwait(&mask, NULL, &zero) == SIGINT;
}

static void cancel_copies(sd_bus *bus, const char *path) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

        /* Best effort: the copy's own reply says how it ended. */
        (void) sd_bus_call_method(bus, AGENT_BUS_NAME, path, AGENT_INTERFACE, "CancelCopies", &error, NULL, "");
}

static int agent_copy(sd_bus *bus, const char *vm, bool to_guest, const char *guest_path, int fd, uint64_t total,
                      bool show_progress) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *progress_slot = NULL, *reply_slot = NULL;
        _cleanup_free_ char *path = agent_path(vm);
        const char *what = to_guest ? "copy-in" : "copy-out";
        Copy c = { .path = guest_path, .show_progress = show_progress, .bus_error = SD_BUS_ERROR_NULL };
        uint64_t start = now_usec(CLOCK_MONOTONIC);
        bool cancelled = false;
        int r;

        if (!path)
                return EXIT_FAILURE;

        r = sd_bus_match_signal(bus, &progress_slot, NULL, path, AGENT_INTERFACE, "CopyProgress", on_copy_progress,
                                &c);
        if (r >= 0)
                r = sd_bus_message_new_method_call(bus, &call, AGENT_BUS_NAME, path, AGENT_INTERFACE,
                                                   to_guest ? "CopyToGuest" : "CopyFromGuest");
        if (r >= 0)
                r = to_guest ? sd_bus_message_append(call, "hs", fd, guest_path)
                             : sd_bus_message_append(call, "sh", guest_path, fd);
        if (r >= 0)
                r = sd_bus_call_async(bus, &reply_slot, call, on_copy_reply, &c, COPY_CALL_TIMEOUT_USEC);
        if (r < 0) {
                print_agent_error(vm, what, r, NULL);
                return EXIT_FAILURE;
        }

        c.last_activity = now_usec(CLOCK_MONOTONIC);
        if (show_progress)
                draw_progress(&c, 0, total);
        while (!c.done) {
                r = sd_bus_process(bus, NULL);
                if (r < 0) {
                        c.error = r;
                        break;
                }
                if (r > 0)
                        continue;
                if (!cancelled && interrupted()) {
                        cancelled = true;
                        cancel_copies(bus, path);
                        continue;
                }
                if (now_usec(CLOCK_MONOTONIC) - c.last_activity > COPY_STALL_USEC) {
                        cancel_copies(bus, path);
                        c.error = -ETIMEDOUT;
                        break;
                }
                r = sd_bus_wait(bus, PROGRESS_INTERVAL_USEC);
                if (r < 0 && r != -EINTR) {
                        c.error = r;
                        break;
                }
        }
        if (c.drawn)
                fprintf(stderr, "\n");

        if (c.error < 0) {
                if (c.error == -ETIMEDOUT && !sd_bus_error_is_set(&c.bus_error))
                        log_error("agent %s: no progress for %llu s; cancelled", what,
                                COPY_STALL_USEC / 1000000ULL);
                else
                        print_agent_error(vm, what, c.error, &c.bus_error);
                sd_bus_error_free(&c.bus_error);
                return EXIT_FAILURE;
        }

        double seconds = (double) (now_usec(CLOCK_MONOTONIC) - start) / 1e6;
        printf("copied %" PRIu64 " bytes %s guest:%s in %.2f s (%.2f MiB/s)\n", c.bytes, to_guest ? "to" : "from",
               printable(guest_path), seconds, seconds > 0 ? (double) c.bytes / (1024.0 * 1024.0) / seconds : 0.0);
        return EXIT_SUCCESS;
}

static int agent_copy_in(sd_bus *bus, const char *vm, const char *host_file, const char *guest_path,
                         bool show_progress) {
        _cleanup_close_ int fd = -1;
        struct stat st;

        fd = open(host_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                log_error_errno(errno, "agent copy-in: cannot open '%s': %m", host_file);
                return EXIT_FAILURE;
        }
        if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
                log_error("agent copy-in: '%s' is not a file", host_file);
                return EXIT_FAILURE;
        }
        return agent_copy(bus, vm, true, guest_path, fd, S_ISREG(st.st_mode) ? (uint64_t) st.st_size : 0,
                          show_progress);
}

/* The host file appears only when the copy succeeded: written beside it under a temporary name first. */
static int agent_copy_out(sd_bus *bus, const char *vm, const char *guest_path, const char *host_file,
                          bool show_progress) {
        _cleanup_free_ char *temp = NULL;
        _cleanup_close_ int fd = -1;
        int ret;

        if (asprintf(&temp, "%s.orrery-XXXXXX", host_file) < 0)
                return EXIT_FAILURE;
        fd = mkostemp(temp, O_CLOEXEC);
        if (fd < 0) {
                log_error_errno(errno, "agent copy-out: cannot create '%s': %m", host_file);
                return EXIT_FAILURE;
        }
        /* mkostemp() makes it 0600; a copied-out file gets the usual mode. */
        mode_t mask = umask(0);
        umask(mask);
        (void) fchmod(fd, 0666 & ~mask);

        ret = agent_copy(bus, vm, false, guest_path, fd, 0, show_progress);
        if (ret == EXIT_SUCCESS && fsync(fd) < 0) {
                log_error_errno(errno, "agent copy-out: cannot write '%s': %m", host_file);
                ret = EXIT_FAILURE;
        }
        if (ret == EXIT_SUCCESS && rename(temp, host_file) < 0) {
                log_error_errno(errno, "agent copy-out: cannot create '%s': %m", host_file);
                ret = EXIT_FAILURE;
        }
        if (ret != EXIT_SUCCESS)
                (void) unlink(temp);
        return ret;
}

/* ---------------------------------------------------------------------- */

static int usage(const char *sub, const char *args) {
        fprintf(stderr, "Usage: agent %s%s%s\n", sub, args[0] ? " " : "", args);
        return EXIT_USAGE;
}

int monitor_agent_run(sd_bus *bus, const char *vm, char **argv, size_t argc, bool show_progress) {
        const char *sub = argc > 1 ? argv[1] : NULL;
        size_t n_args = argc > 2 ? argc - 2 : 0;

        if (!sub) {
                fprintf(stderr, "Usage: agent %s\n", MONITOR_AGENT_USAGE);
                return EXIT_USAGE;
        }

        if (strcmp(sub, "shutdown") == 0) {
                const char *mode = n_args > 0 ? argv[2] : "powerdown";

                if (n_args > 1 || (strcmp(mode, "powerdown") != 0 && strcmp(mode, "reboot") != 0 &&
                                   strcmp(mode, "halt") != 0))
                        return usage(sub, "[powerdown|reboot|halt]");
                return agent_shutdown(bus, vm, mode);
        }
        if (strcmp(sub, "copy-in") == 0) {
                if (n_args != 2)
                        return usage(sub, "HOSTFILE GUESTPATH");
                return agent_copy_in(bus, vm, argv[2], argv[3], show_progress);
        }
        if (strcmp(sub, "copy-out") == 0) {
                if (n_args != 2)
                        return usage(sub, "GUESTPATH HOSTFILE");
                return agent_copy_out(bus, vm, argv[2], argv[3], show_progress);
        }

        static const struct {
                const char *name;
                int (*run)(sd_bus *bus, const char *vm);
        } simple[] = {
                { "ping", agent_ping },
                { "info", agent_info },
                { "osinfo", agent_osinfo },
                { "hostname", agent_hostname },
                { "time", agent_time },
                { "fsfreeze-status", agent_fsfreeze_status },
        };
        for (size_t i = 0; i < ELEMENTSOF(simple); i++)
                if (strcmp(sub, simple[i].name) == 0)
                        return n_args > 0 ? usage(sub, "") : simple[i].run(bus, vm);
        if (strcmp(sub, "fsfreeze") == 0)
                return n_args > 0 ? usage(sub, "") : agent_count(bus, vm, "FsFreeze", sub, "froze");
        if (strcmp(sub, "fsthaw") == 0)
                return n_args > 0 ? usage(sub, "") : agent_count(bus, vm, "FsThaw", sub, "thawed");

        log_error("unknown agent command '%s'\nUsage: agent %s", sub, MONITOR_AGENT_USAGE);
        return EXIT_USAGE;
}

int monitor_agent_show_info(sd_bus *bus, const char *vm) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = agent_path(vm);
        int connected = 0, r;

        if (!path)
                return EXIT_FAILURE;
        r = sd_bus_get_property_trivial(bus, AGENT_BUS_NAME, path, AGENT_INTERFACE, "Connected", &error, 'b',
                                        &connected);
        if (r < 0) {
                print_agent_error(vm, "status", r, &error);
                return EXIT_FAILURE;
        }
        printf("guest agent: %s (bridge %s, object %s)\n", connected ? "connected" : "not connected", AGENT_BUS_NAME,
               path);
        return EXIT_SUCCESS;
}
