/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Live migration, the sending side: pre-copy of a running machine into a
 * connected stream (the live stream of savevm-internal.h) on a thread of
 * its own, so the event loop and the guest keep running.
 *
 * All of RAM goes first while the guest runs, with RAM dirty tracking on;
 * then the pages dirtied meanwhile, round after round, until what is left
 * would take no longer than the downtime limit at the throughput measured
 * so far (or MIGRATION_MAX_ROUNDS passed); then the machine is paused and
 * the rest of RAM, guest time and the hart's and devices' state follow.
 * After the destination's 'L' (loaded) the source answers 'G' and waits for
 * 'R' (the destination runs the guest): only then is the migration
 * completed, and the caller ends this process. Anything that goes wrong
 * before (an error, MigrationCancel, the destination gone) stops tracking
 * and resumes the guest if this side paused it: the VM runs on as if
 * nothing had happened.
 *
 * Threading: migration_start() and migration_free() on the event-loop
 * thread; the getters and migration_cancel() from any thread. The notify
 * fd turns readable whenever the status or the progress changed.
 */

#include <stdbool.h>
#include <stdint.h>

#include "machine/machine.h"

#define MIGRATION_DOWNTIME_DEFAULT_MSEC 300
#define MIGRATION_DOWNTIME_MAX_MSEC 60000
#define MIGRATION_MAX_ROUNDS 30

typedef enum MigrationStatus {
        MIGRATION_NONE,
        MIGRATION_ACTIVE,
        MIGRATION_COMPLETED,
        MIGRATION_FAILED,
} MigrationStatus;

typedef struct MigrationProgress {
        uint64_t bytes_sent;
        uint64_t dirty_pages;           /* left to send after the last round */
        uint64_t expected_downtime_msec;
        uint32_t rounds;
} MigrationProgress;

typedef struct Migration Migration;

/* "none", "active", "completed", "failed". */
const char *migration_status_to_string(MigrationStatus s);

/*
 * Connects to "unix:PATH" or "tcp:HOST:PORT" (an IPv4 address). Returns a
 * connected stream fd, or a negative errno with a line in 'error'.
 */
int migration_connect(const char *uri, char *error, size_t error_size);

/*
 * Starts sending on 'fd' (taken, also on failure). -ENOMEM, or pthread's
 * error. 'on_final' (may be NULL) runs on the event-loop thread, inside
 * migration_notify_drain(), with the guest paused, right before the final
 * state is taken: what the destination will need of the host (the host
 * forwards' ports) is let go there, before the destination can be told to
 * run the guest, and what only this process knows of the guest's input
 * (keys held through the bus) is released in the guest, so that the
 * releases travel with the state. Should the migration fail afterwards,
 * the guest runs on here with those keys released.
 */
int migration_start(Machine *m, int fd, uint64_t downtime_limit_msec, void (*on_final)(void *userdata),
                    void *userdata, Migration **ret);
Migration *migration_free(Migration *mg);

int migration_notify_fd(Migration *mg);
void migration_notify_drain(Migration *mg);

MigrationStatus migration_status(Migration *mg);
MigrationProgress migration_progress(Migration *mg);
/* Why it failed (one line), once migration_status() is MIGRATION_FAILED. */
const char *migration_error(Migration *mg);

/* Asks the migration to stop; it ends as MIGRATION_FAILED with the guest running. Any thread. */
void migration_cancel(Migration *mg);
