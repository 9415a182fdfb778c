/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Live migration, the receiving side (orrery-vm --incoming): waits on the
 * event loop for one connection on "unix:PATH" or "tcp:ADDRESS:PORT" (or
 * takes a connected "fd:N"), reads the live stream (savevm-internal.h) on
 * a thread straight into the machine's RAM, checking the configuration at
 * the header, every record against RAM's bounds, and the checksum at the
 * end; then, back on the event loop, loads the hart's and devices' state
 * and answers 'L'. After the source's 'G', 'done' is called with 0: the
 * caller takes the bus name and starts the guest, then incoming_running()
 * tells the source, which exits. On any error 'done' gets it with a line
 * for a person, and the guest never ran here. The machine must not be
 * started before 'done'.
 *
 * Event-loop thread only.
 */

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#include "machine/machine.h"

typedef struct Incoming Incoming;

typedef void (*IncomingDone)(Incoming *in, int r, const char *error, void *userdata);

int incoming_new(sd_event *event, Machine *m, const char *uri, IncomingDone done, void *userdata, Incoming **ret,
                 char *error, size_t error_size);
Incoming *incoming_free(Incoming *in);

/* Whether the source ran the guest when it paused it for the move (else the VM stays paused here). */
bool incoming_guest_was_running(Incoming *in);

/* The guest runs here: tells the source ('R') and closes the connection. */
void incoming_running(Incoming *in);
