/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

/*
 * The monitor's guest-agent commands: calls to org.orrery.Agent1 on
 * org.orrery.Agent (dbus/org.orrery.Agent1.xml), which the bus activates
 * on the first call. The monitor keeps no agent state of its own.
 */

/* The subcommands, for help and completion; NULL-terminated. */
extern const char *const monitor_agent_subcommands[];

#define MONITOR_AGENT_USAGE                                                                                            \
        "ping|info|osinfo|hostname|time|shutdown [powerdown|reboot|halt]|fsfreeze|fsthaw|fsfreeze-status|"          \
        "copy-in HOSTFILE GUESTPATH|copy-out GUESTPATH HOSTFILE"

/*
 * Runs "agent SUBCOMMAND ARGS…" (argv[0] is "agent") for the VM; returns
 * 0 (ok), 1 (failed) or 2 (usage), printing results on stdout and errors
 * on stderr. show_progress: draw a progress line for copies on stderr.
 */
int monitor_agent_run(sd_bus *bus, const char *vm, char **argv, size_t argc, bool show_progress);

/* "info agent": whether the bridge answers for the VM and is connected to the guest. */
int monitor_agent_show_info(sd_bus *bus, const char *vm);
