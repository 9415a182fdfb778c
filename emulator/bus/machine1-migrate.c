/* SPDX-License-Identifier: MIT */

/*
 * org.orrery.Machine1's live migration members (dbus/org.orrery.Machine1.xml):
 * Migrate, MigrateFd, MigrateCancel, SetMigrationDowntimeLimit and the
 * Migration* properties. The sending runs on the migration's own thread
 * (migration/migrate.h); this file starts it, follows it through its
 * notify fd (PropertiesChanged on every change) and, once the destination
 * runs the guest, ends this process with exit status 0.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "migration/migrate.h"
#include "migration/savevm.h"
#include "net/user.h"
#include "log.h"
#include "macro.h"

typedef struct BusMigration {
        Migration *migration;           /* while one runs */
        sd_event_source *source;
        MigrationStatus status;         /* of the last one: stays after it ended */
        MigrationProgress progress;
        char *error;
        char *uri;                      /* for the log */
        uint64_t downtime_limit_msec;
        bool forwards_closed;           /* the host forwards' ports were let go for the destination */
} BusMigration;

static BusMigration *get(VmBus *b) {
        if (!b->migration) {
                b->migration = calloc(1, sizeof(BusMigration));
                if (b->migration)
                        b->migration->downtime_limit_msec = MIGRATION_DOWNTIME_DEFAULT_MSEC;
        }
        return b->migration;
}

static void emit(VmBus *b, bool state) {
        if (!b->bus)
                return;
        if (state)
                (void) sd_bus_emit_properties_changed(b->bus, b->path, "org.orrery.Machine1", "MigrationState",
                                                      "MigrationProgress", "MigrationError", NULL);
        else
                (void) sd_bus_emit_properties_changed(b->bus, b->path, "org.orrery.Machine1", "MigrationProgress",
                                                      NULL);
}

static void ended(VmBus *b, BusMigration *bm) {
        bm->status = migration_status(bm->migration);
        bm->progress = migration_progress(bm->migration);
        if (bm->status == MIGRATION_FAILED) {
                free(bm->error);
                bm->error = strdup(migration_error(bm->migration));
        }
        bm->source = sd_event_source_disable_unref(bm->source);
        bm->migration = migration_free(bm->migration);
        emit(b, true);
        if (bm->status == MIGRATION_COMPLETED) {
                log_info("VM '%s' moved to %s (%llu MiB sent); exiting", b->name, bm->uri,
                         (unsigned long long) (bm->progress.bytes_sent >> 20));
                if (b->bus)
                        (void) sd_bus_flush(b->bus);
                machine_request(b->machine, MACHINE_REQUEST_QUIT);
        } else {
                log_error("Migration of VM '%s' to %s failed: %s; the VM runs on here", b->name, bm->uri,
                          bm->error ? bm->error : "unknown error");
                if (bm->forwards_closed)
                        for (size_t i = 0; i < b->n_nets; i++) {
                                size_t failed = net_user_reopen_forwards(b->nets[i]);
                                if (failed > 0)
                                        log_error("VM '%s': %zu host forward(s) of NIC %zu could not listen again",
                                                  b->name, failed, i);
                        }
                bm->forwards_closed = false;
        }
}

/*
 * The final state is about to be taken: the destination takes over the host
 * forwards' ports, and the keys and buttons clients hold are released in
 * the guest (the destination knows nothing of who holds what, so they
 * would stay down there forever).
 */
static void before_final(void *userdata) {
        VmBus *b = userdata;

        for (size_t i = 0; i < b->n_nets; i++)
                net_user_close_forwards(b->nets[i]);
        b->migration->forwards_closed = b->n_nets > 0;
        input1_release_all(b);
}

static int on_migration_notify(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        VmBus *b = userdata;
        BusMigration *bm = b->migration;

        migration_notify_drain(bm->migration);
        if (migration_status(bm->migration) != MIGRATION_ACTIVE) {
                ended(b, bm);
                return 0;
        }
        bm->progress = migration_progress(bm->migration);
        emit(b, false);
        return 0;
}

/* Starts a migration on the connected 'fd' (taken). */
static int start(sd_bus_message *m, VmBus *b, int fd, const char *uri, sd_bus_error *error) {
        BusMigration *bm = get(b);
        int r;

        if (!bm) {
                safe_close(fd);
                return -ENOMEM;
        }
        free(bm->uri);
        bm->uri = strdup(uri);
        r = migration_start(b->machine, fd, bm->downtime_limit_msec, before_final, b, &bm->migration);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot start migrating VM '%s': %m", b->name);
        r = sd_event_add_io(b->event, &bm->source, migration_notify_fd(bm->migration), EPOLLIN, on_migration_notify, b);
        if (r < 0) {
                bm->migration = migration_free(bm->migration);
                return sd_bus_error_set_errnof(error, r, "Cannot follow the migration of VM '%s': %m", b->name);
        }
        bm->status = MIGRATION_ACTIVE;
        bm->progress = (MigrationProgress) {};
        bm->error = mfree(bm->error);
        emit(b, true);
        log_info("Migrating VM '%s' to %s (downtime limit %llu ms)", b->name, uri,
                 (unsigned long long) bm->downtime_limit_msec);
        return sd_bus_reply_method_return(m, NULL);
}

/* What refuses a migration before it starts; 0 if none. */
static int check(sd_bus_message *m, VmBus *b, const char *what, sd_bus_error *error) {
        const char *drive;
        int r;

        r = bus_check_request(b, m, what, NULL, error);
        if (r < 0)
                return r;
        if (b->migration && b->migration->migration)
                return sd_bus_error_setf(error, ORRERY_ERROR_BUSY, "VM '%s' is being migrated already", b->name);
        if (machine_get_state(b->machine) == MACHINE_SHUTDOWN)
                return sd_bus_error_setf(error, ORRERY_ERROR_UNAVAILABLE, "VM '%s' is shutting down", b->name);
        drive = savevm_snapshot_drive(b->machine);
        if (drive)
                return sd_bus_error_setf(error, ORRERY_ERROR_NOT_SUPPORTED,
                                         "VM '%s' cannot migrate: drive '%s' is snapshot=on, and its overlay of the "
                                         "guest's writes exists only in this process", b->name, drive);
        return 0;
}

int machine1_method_migrate(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        char message[512] = "";
        const char *uri;
        int fd, r;

        r = sd_bus_message_read(m, "s", &uri);
        if (r < 0)
                return r;
        r = check(m, b, "Migrate", error);
        if (r < 0)
                return r;
        fd = migration_connect(uri, message, sizeof(message));
        if (fd == -EINVAL)
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT, "%s", message);
        if (fd < 0)
                return sd_bus_error_setf(error, ORRERY_ERROR_UNAVAILABLE, "%s", message);
        return start(m, b, fd, uri, error);
}

int machine1_method_migrate_fd(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        int fd, r;

        r = sd_bus_message_read(m, "h", &fd);
        if (r < 0)
                return r;
        r = check(m, b, "MigrateFd", error);
        if (r < 0)
                return r;
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return sd_bus_error_set_errnof(error, errno, "Cannot take the migration's fd: %m");
        return start(m, b, fd, "a passed fd", error);
}

int machine1_method_migrate_cancel(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        int r;

        r = bus_check_request(b, m, "MigrateCancel", NULL, error);
        if (r < 0)
                return r;
        if (!b->migration || !b->migration->migration)
                return sd_bus_error_setf(error, ORRERY_ERROR_UNAVAILABLE, "VM '%s' is not being migrated", b->name);
        /* The thread ends soon, resuming the guest if it paused it; on_migration_notify() reports it. */
        migration_cancel(b->migration->migration);
        return sd_bus_reply_method_return(m, NULL);
}

int machine1_method_set_migration_downtime_limit(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        BusMigration *bm;
        BusPeer *peer;
        uint64_t msec;
        int r;

        r = sd_bus_message_read(m, "t", &msec);
        if (r < 0)
                return r;
        r = bus_check_caller(b, m, &peer, error);
        if (r < 0)
                return r;
        if (msec == 0 || msec > MIGRATION_DOWNTIME_MAX_MSEC)
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT,
                                         "downtime limit %llu ms is out of range (1 to %u ms)",
                                         (unsigned long long) msec, MIGRATION_DOWNTIME_MAX_MSEC);
        bm = get(b);
        if (!bm)
                return -ENOMEM;
        /* For the next migration: a running one keeps the budget it started with. */
        bm->downtime_limit_msec = msec;
        if (b->bus)
                (void) sd_bus_emit_properties_changed(b->bus, b->path, "org.orrery.Machine1",
                                                      "MigrationDowntimeLimit", NULL);
        return sd_bus_reply_method_return(m, NULL);
}

int machine1_property_migration(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        BusMigration *bm = b->migration;
        MigrationProgress p = {};

        if (bm && bm->migration)
                p = migration_progress(bm->migration);
        else if (bm)
                p = bm->progress;
        if (streq(property, "MigrationState"))
                return sd_bus_message_append(reply, "s",
                                             migration_status_to_string(bm ? bm->status : MIGRATION_NONE));
        if (streq(property, "MigrationProgress"))
                return sd_bus_message_append(reply, "(ttt)", p.bytes_sent, p.dirty_pages, p.expected_downtime_msec);
        if (streq(property, "MigrationError"))
                return sd_bus_message_append(reply, "s", bm && bm->error ? bm->error : "");
        return sd_bus_message_append(reply, "t", bm ? bm->downtime_limit_msec : MIGRATION_DOWNTIME_DEFAULT_MSEC);
}

bool machine1_migration_active(VmBus *b) {
        return b->migration && b->migration->migration;
}

void machine1_migrate_teardown(VmBus *b) {
        BusMigration *bm = b->migration;

        if (!bm)
                return;
        bm->source = sd_event_source_disable_unref(bm->source);
        /* Cancels and joins: the guest is resumed if the migration had paused it. */
        bm->migration = migration_free(bm->migration);
        free(bm->error);
        free(bm->uri);
        free(bm);
        b->migration = NULL;
}
