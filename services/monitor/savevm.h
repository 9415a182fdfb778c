/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <systemd/sd-bus.h>

/*
 * savevm-file [--quit] FILE: the monitor opens FILE itself (the emulator
 * may not write where the user may) and hands the fd to Machine1.Save, or
 * SaveAndQuit with --quit. loadvm-file FILE: the monitor opens FILE and
 * hands the fd to Machine1.Load, which replaces the running VM's state.
 */
#define MONITOR_SAVEVM_USAGE "[--quit] FILE"

/*
 * Runs "savevm-file ARGS…" (argv[0] is the command) for the VM; returns 0
 * (saved), 1 (failed, said why) or 2 (bad usage, not printed).
 */
int monitor_savevm_run(sd_bus *bus, const char *vm, char **argv, size_t argc);

/* Runs "loadvm-file FILE" for the VM: 0 (loaded), 1 (failed or refused, said why) or 2 (bad usage). */
int monitor_loadvm_run(sd_bus *bus, const char *vm, char **argv, size_t argc);
