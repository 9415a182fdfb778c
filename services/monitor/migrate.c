/* SPDX-License-Identifier: MIT */
/*
 * migrate, migrate_cancel, migrate_set_parameter and info migrate (migrate.h).
 * "migrate" follows the source process by its unique name: once the move is
 * done that process exits and the VM's name belongs to the destination,
 * which has no migration of its own to report.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "migrate.h"

#define CALL_TIMEOUT_USEC (10ULL * 1000000ULL)
#define POLL_USEC (200ULL * 1000ULL)
/* A migration of a large, busy guest over a slow link can take this long. */
#define MIGRATE_TIMEOUT_SEC 3600

typedef struct Target {
        char *service;
        char *path;
} Target;

static void target_done(Target *t) {
        free(t->service);
        free(t->path);
}

static int target_init(Target *t, const char *vm) {
        *t = (Target) {};
        if (asprintf(&t->service, "org.orrery.VM.%s", vm) < 0)
                return -ENOMEM;
        return sd_bus_path_encode("/org/orrery/VM", vm, &t->path);
}

static int call(sd_bus *bus, const char *dest, const Target *t, const char *method, sd_bus_error *error,
                const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, dest, t->path, "org.orrery.Machine1", method);
        if (r < 0)
                return r;
        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                if (r < 0)
                        return r;
        }
        return sd_bus_call(bus, m, CALL_TIMEOUT_USEC, error, &reply);
}

typedef struct Status {
        char *state;
        char *error;
        uint64_t sent, dirty, downtime, limit;
} Status;

static void status_done(Status *s) {
        free(s->state);
        free(s->error);
}

static int get_status(sd_bus *bus, const char *dest, const Target *t, Status *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        *ret = (Status) {};
        r = sd_bus_get_property_string(bus, dest, t->path, "org.orrery.Machine1", "MigrationState", NULL, &ret->state);
        if (r >= 0)
                r = sd_bus_get_property_string(bus, dest, t->path, "org.orrery.Machine1", "MigrationError", NULL,
                                               &ret->error);
        if (r >= 0)
                r = sd_bus_get_property_trivial(bus, dest, t->path, "org.orrery.Machine1", "MigrationDowntimeLimit",
                                                NULL, 't', &ret->limit);
        if (r >= 0)
                r = sd_bus_get_property(bus, dest, t->path, "org.orrery.Machine1", "MigrationProgress", NULL, &reply,
                                        "(ttt)");
        if (r >= 0)
                r = sd_bus_message_read(reply, "(ttt)", &ret->sent, &ret->dirty, &ret->downtime);
        return r;
}

static int info(sd_bus *bus, const Target *t) {
        Status s;
        int r;

        r = get_status(bus, t->service, t, &s);
        if (r < 0) {
                status_done(&s);
                return log_error_errno(r, "info migrate: cannot ask the VM: %m"), 1;
        }
        printf("migration: %s\n", s.state);
        printf("sent: %" PRIu64 " MiB, dirty pages: %" PRIu64 ", expected downtime: %" PRIu64 " ms\n", s.sent >> 20,
               s.dirty, s.downtime);
        printf("downtime limit: %" PRIu64 " ms\n", s.limit);
        if (s.error && *s.error)
                printf("error: %s\n", s.error);
        status_done(&s);
        return 0;
}

static int owner_of(sd_bus *bus, const char *service, char **ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *unique;
        int r;

        r = sd_bus_get_name_creds(bus, service, SD_BUS_CREDS_UNIQUE_NAME, &creds);
        if (r < 0)
                return r;
        r = sd_bus_creds_get_unique_name(creds, &unique);
        if (r < 0)
                return r;
        *ret = strdup(unique);
        return *ret ? 0 : -ENOMEM;
}

/* Starts the migration and follows it on the source until it ends. */
static int migrate(sd_bus *bus, const Target *t, const char *uri) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *source = NULL;
        time_t deadline = time(NULL) + MIGRATE_TIMEOUT_SEC;
        uint64_t last_sent = UINT64_MAX;
        int r;

        r = owner_of(bus, t->service, &source);
        if (r < 0)
                return log_error_errno(r, "migrate: the VM is not on the bus: %m"), 1;
        r = call(bus, source, t, "Migrate", &error, "s", uri);
        if (r < 0) {
                log_error("migrate: %s", sd_bus_error_is_set(&error) ? error.message : strerror(-r));
                return 1;
        }
        while (time(NULL) < deadline) {
                Status s;

                r = get_status(bus, source, t, &s);
                if (r < 0) {
                        /* The source is gone: it exits only after the destination took the VM over. */
                        _cleanup_free_ char *now = NULL;
                        status_done(&s);
                        if (owner_of(bus, t->service, &now) >= 0 && !streq(now, source)) {
                                printf("migration completed: the VM runs in the destination now\n");
                                return 0;
                        }
                        log_error("migrate: the VM's process left without handing over");
                        return 1;
                }
                if (streq(s.state, "completed")) {
                        printf("migration completed: %" PRIu64 " MiB sent; the VM runs in the destination now\n",
                               s.sent >> 20);
                        status_done(&s);
                        return 0;
                }
                if (streq(s.state, "failed")) {
                        log_error("migrate: failed: %s; the VM runs on here", s.error);
                        status_done(&s);
                        return 1;
                }
                if (s.sent != last_sent) {
                        printf("migrate: %" PRIu64 " MiB sent, %" PRIu64 " dirty pages, expected downtime %" PRIu64
                               " ms\n", s.sent >> 20, s.dirty, s.downtime);
                        fflush(stdout);
                        last_sent = s.sent;
                }
                status_done(&s);
                usleep(POLL_USEC);
        }
        log_error("migrate: still running after %d s; follow it with info migrate", MIGRATE_TIMEOUT_SEC);
        return 1;
}

int monitor_migrate_run(sd_bus *bus, const char *vm, char **argv, size_t argc) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(target_done) Target t = {};
        int r;

        if (target_init(&t, vm) < 0)
                return log_oom(), 1;

        if (streq(argv[0], "info"))
                return info(bus, &t);
        if (streq(argv[0], "migrate")) {
                if (argc != 2)
                        return 2;
                return migrate(bus, &t, argv[1]);
        }
        if (streq(argv[0], "migrate_cancel")) {
                if (argc != 1)
                        return 2;
                r = call(bus, t.service, &t, "MigrateCancel", &error, NULL);
        } else {
                char *end;
                unsigned long long ms;

                if (argc != 3 || !streq(argv[1], "downtime-limit"))
                        return 2;
                errno = 0;
                ms = strtoull(argv[2], &end, 10);
                if (!argv[2][0] || *end || errno)
                        return 2;
                r = call(bus, t.service, &t, "SetMigrationDowntimeLimit", &error, "t", (uint64_t) ms);
        }
        if (r < 0) {
                log_error("%s: %s", argv[0], sd_bus_error_is_set(&error) ? error.message : strerror(-r));
                return 1;
        }
        return 0;
}
