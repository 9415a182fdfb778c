/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The VM on the bus: owns the sd-bus connection (event-loop thread only),
 * the well-known name org.orrery.VM.<name>, and the objects described by
 * the interface files in dbus/. The machine is driven only through its
 * thread-safe API.
 */

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "machine/chardev.h"
#include "machine/machine.h"

#include "orrery-contract.h"

#define BUS_MAX_CHARDEVS 4

/* At most this many keys and buttons are tracked for release when their client leaves the bus. */
#define BUS_MAX_HELD 64

typedef struct VmBus VmBus;

typedef struct VmBusConfig {
        const char *name;               /* VM name (validated) */
        const char *address;            /* bus address, or NULL for the user's session bus */
        Machine *machine;
        Chardev *chardevs[BUS_MAX_CHARDEVS];
        unsigned n_chardevs;
} VmBusConfig;

/* Connects, publishes the objects and takes the name. Errors are written to 'error' for a person. */
int vm_bus_new(sd_event *event, const VmBusConfig *config, VmBus **ret, char *error, size_t error_size);
VmBus *vm_bus_free(VmBus *b);

/* The machine's state may have changed: emit PropertiesChanged if so. */
void vm_bus_machine_changed(VmBus *b);


/* ---- internal, shared by the interface files ---- */

struct VmBus {
        sd_bus *bus;
        sd_event *event;
        Machine *machine;
        char *name;
        char *path;                     /* /org/orrery/VM/<name> */
        char *console_path;
        char uuid[37];
        MachineState last_state;
        uint32_t last_leds;
        bool last_absolute;

        /* Console1 */
        sd_bus_track *console_watchers;
        sd_event_source *console_timer;

        /* Chardev1 */
        struct BusChardev {
                VmBus *bus;
                Chardev *chardev;
                char *path;
                char *owner;            /* unique name of the registered client, or NULL */
                sd_bus_slot *owner_match;       /* NameOwnerChanged of the owner */
        } chardevs[BUS_MAX_CHARDEVS];
        unsigned n_chardevs;

        /* Keyboard1/Mouse1: keys and buttons held, by whom, so they are released if that client vanishes. */
        struct BusHeldInput {
                char *sender;           /* unique name of the client that pressed it */
                uint16_t code;
                bool button;
        } held[BUS_MAX_HELD];
        unsigned n_held;
        sd_bus_slot *held_match;        /* NameOwnerChanged, installed while anything is held */
};

/* Refuses callers that are not the emulator's own user. Returns 0 or a negative errno with 'error' set. */
int bus_check_caller(sd_bus_message *m, sd_bus_error *error);

extern const sd_bus_vtable machine1_vtable[];
extern const sd_bus_vtable console1_vtable[];
extern const sd_bus_vtable chardev1_vtable[];
extern const sd_bus_vtable keyboard1_vtable[];
extern const sd_bus_vtable mouse1_vtable[];

int console1_setup(VmBus *b);
void console1_teardown(VmBus *b);
void input1_teardown(VmBus *b);
int chardev1_setup(VmBus *b);
void chardev1_teardown(VmBus *b);
