/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <systemd/sd-bus.h>

/*
 * Live migration from the monitor (Machine1.Migrate* on the VM):
 *   migrate URI                            start, follow the progress, say how it ended
 *   migrate_cancel                         stop the running migration (the VM runs on here)
 *   migrate_set_parameter downtime-limit MS
 *   info migrate                           state, progress, limit, last error
 */
#define MONITOR_MIGRATE_USAGE "unix:PATH|tcp:ADDRESS:PORT"
#define MONITOR_MIGRATE_SET_USAGE "downtime-limit MS"

/*
 * Runs the command in argv[0] ("migrate", "migrate_cancel",
 * "migrate_set_parameter", "info") for the VM; returns 0 (done), 1 (failed,
 * said why) or 2 (bad usage, not printed).
 */
int monitor_migrate_run(sd_bus *bus, const char *vm, char **argv, size_t argc);
