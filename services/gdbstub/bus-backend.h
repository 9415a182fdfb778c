/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The session's backend on org.orrery.Debug1 of one VM: synchronous
 * calls (the debugger waits for each answer anyway), and the Stopped
 * signal handed to a callback.
 */

#include <systemd/sd-bus.h>

#include "session.h"

typedef struct BusBackend BusBackend;
typedef void (*BusBackendStopped)(void *userdata, const char *reason, const char *watch_kind, uint64_t watch_addr);

int bus_backend_new(sd_bus *bus, const char *vm_name, BusBackendStopped stopped, void *userdata, BusBackend **ret);
BusBackend *bus_backend_free(BusBackend *b);

extern const SessionBackend bus_session_backend;

/* Whether the VM serves Debug1 (--debug); the error says why not for a person. */
int bus_backend_check(BusBackend *b, sd_bus_error *error);
/* Stops the VM and takes the debugger's seat; the error names who holds it, if someone does. */
int bus_backend_attach(BusBackend *b, sd_bus_error *error);
