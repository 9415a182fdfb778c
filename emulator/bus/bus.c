/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-id128.h>
#include <unistd.h>

#include "bus/block1.h"
#include "bus/bus.h"
#include "bus-util.h"
#include "macro.h"

int bus_check_caller(sd_bus_message *m, sd_bus_error *error) {
        return bus_check_same_user(m, "the VM's owner", error);
}

int vm_bus_new(sd_event *event, const VmBusConfig *config, VmBus **ret, char *error, size_t error_size) {
        VmBus *b;
        sd_id128_t id;
        char service[128];
        int r;

        b = calloc(1, sizeof(*b));
        if (!b) {
                snprintf(error, error_size, "out of memory");
                return -ENOMEM;
        }
        b->event = sd_event_ref(event);
        b->machine = config->machine;
        b->last_state = machine_get_state(config->machine);
        b->name = strdup(config->name);
        if (!b->name || asprintf(&b->path, "/org/orrery/VM/%s", config->name) < 0 ||
            asprintf(&b->console_path, "/org/orrery/VM/%s/Console/0", config->name) < 0) {
                r = -ENOMEM;
                snprintf(error, error_size, "out of memory");
                goto fail;
        }
        if (sd_id128_randomize(&id) >= 0)
                sd_id128_to_uuid_string(id, b->uuid);

        r = bus_open(config->address, "orrery-vm", &b->bus);
        if (r < 0) {
                snprintf(error, error_size,
                         "cannot connect to %s: %s (use --bus ADDRESS for another bus, or --no-bus)",
                         config->address ? config->address : "the session bus", strerror(-r));
                goto fail;
        }

        /*
         * An ObjectManager lists the objects below its path, so the one on
         * /org/orrery/VM gives the machine object and its children in one
         * GetManagedObjects. (sd-bus stops at a nested manager, so there is
         * no second one on the VM's own path.)
         */
        r = sd_bus_add_object_manager(b->bus, NULL, "/org/orrery/VM");
        if (r >= 0)
                r = sd_bus_add_object_vtable(b->bus, NULL, b->path, "org.orrery.Machine1", machine1_vtable, b);
        if (r >= 0)
                r = sd_bus_add_object_vtable(b->bus, NULL, b->path, "org.orrery.Keyboard1", keyboard1_vtable, b);
        if (r >= 0)
                r = sd_bus_add_object_vtable(b->bus, NULL, b->path, "org.orrery.Mouse1", mouse1_vtable, b);
        if (r < 0) {
                snprintf(error, error_size, "cannot publish %s: %s", b->path, strerror(-r));
                goto fail;
        }
        r = console1_setup(b);
        if (r < 0) {
                snprintf(error, error_size, "cannot publish the console: %s", strerror(-r));
                goto fail;
        }
        for (unsigned i = 0; i < config->n_chardevs && i < BUS_MAX_CHARDEVS; i++) {
                b->chardevs[i].bus = b;
                b->chardevs[i].chardev = config->chardevs[i];
                b->n_chardevs++;
        }
        r = chardev1_setup(b);
        if (r < 0) {
                snprintf(error, error_size, "cannot publish the character devices: %s", strerror(-r));
                goto fail;
        }
        r = block1_setup(b);
        if (r >= 0)
                r = network1_setup(b);
        if (r < 0) {
                snprintf(error, error_size, "cannot publish the disks and NICs: %s", strerror(-r));
                goto fail;
        }

        r = sd_bus_attach_event(b->bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0) {
                snprintf(error, error_size, "cannot attach the bus to the event loop: %s", strerror(-r));
                goto fail;
        }

        /* Without queueing: a second VM of the same name fails instead of waiting. */
        snprintf(service, sizeof(service), "org.orrery.VM.%s", config->name);
        r = sd_bus_request_name(b->bus, service, 0);
        if (r == -EEXIST || r == -EALREADY) {
                snprintf(error, error_size, "the bus name %s is already owned: another VM named '%s' is running",
                         service, config->name);
                goto fail;
        }
        if (r < 0) {
                snprintf(error, error_size, "cannot own the bus name %s: %s", service, strerror(-r));
                goto fail;
        }

        *ret = b;
        return 0;

fail:
        vm_bus_free(b);
        return r < 0 ? r : -EIO;
}

VmBus *vm_bus_free(VmBus *b) {
        if (!b)
                return NULL;
        chardev1_teardown(b);
        console1_teardown(b);
        input1_teardown(b);
        if (b->bus) {
                sd_bus_flush(b->bus);
                sd_bus_detach_event(b->bus);
                sd_bus_flush_close_unref(b->bus);
        }
        sd_event_unref(b->event);
        free(b->name);
        free(b->path);
        free(b->console_path);
        free(b);
        return NULL;
}

void vm_bus_machine_changed(VmBus *b) {
        MachineState s = machine_get_state(b->machine);
        uint32_t leds = machine_keyboard_leds(b->machine);
        bool absolute = machine_pointer_is_absolute(b->machine);

        if (leds != b->last_leds) {
                b->last_leds = leds;
                (void) sd_bus_emit_properties_changed(b->bus, b->path, "org.orrery.Keyboard1", "Leds", NULL);
        }
        if (absolute != b->last_absolute) {
                b->last_absolute = absolute;
                (void) sd_bus_emit_properties_changed(b->bus, b->path, "org.orrery.Mouse1", "IsAbsolute", NULL);
        }
        if (s == b->last_state)
                return;
        b->last_state = s;
        (void) sd_bus_emit_properties_changed(b->bus, b->path, "org.orrery.Machine1", "State", NULL);
        /* Make sure a final "shutdown" leaves before the process exits. */
        if (s == MACHINE_SHUTDOWN)
                (void) sd_bus_flush(b->bus);
}
