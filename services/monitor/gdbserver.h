/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-bus.h>

/*
 * "gdbserver [ADDR]": starts orrery-gdbstub for the VM in the background
 * (its own session, so it outlives the monitor), listening on ADDR
 * (default 127.0.0.1:1234; unix:PATH too), and waits until it listens or
 * says why it cannot (the VM runs without --debug, the port is taken).
 * Returns 0 or 1, messages on stdout/stderr.
 */
int monitor_gdbserver_run(sd_bus *bus, const char *vm, const char *listen);
