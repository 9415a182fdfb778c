/* SPDX-License-Identifier: MIT */

/* org.orrery.Machine1 (dbus/org.orrery.Machine1.xml). */

#include <errno.h>
#include <string.h>

#include "bus/bus.h"
#include "config.h"
#include "macro.h"

static const char *state_to_string(MachineState s) {
        switch (s) {
        case MACHINE_RUNNING:
                return "running";
        case MACHINE_PAUSED:
                return "paused";
        default:
                return "shutdown";
        }
}

static int property_name(sd_bus *bus, const char *path, const char *interface, const char *property,
                         sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        return sd_bus_message_append(reply, "s", b->name);
}

static int property_uuid(sd_bus *bus, const char *path, const char *interface, const char *property,
                         sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        return sd_bus_message_append(reply, "s", b->uuid);
}

static int property_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        return sd_bus_message_append(reply, "s", state_to_string(machine_get_state(b->machine)));
}

static int property_memory(sd_bus *bus, const char *path, const char *interface, const char *property,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        return sd_bus_message_append(reply, "t", machine_memory_bytes(b->machine));
}

static int property_vcpus(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "u", (uint32_t) 1);
}

static int property_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", ORRERY_VERSION);
}

static int request(sd_bus_message *m, VmBus *b, MachineRequest req, sd_bus_error *error) {
        int r;

        r = bus_check_caller(m, error);
        if (r < 0)
                return r;
        if (machine_get_state(b->machine) == MACHINE_SHUTDOWN)
                return sd_bus_error_setf(error, ORRERY_ERROR_UNAVAILABLE, "VM '%s' is shutting down", b->name);

        r = machine_request_wait(b->machine, req, 2 * 1000 * 1000);
        if (r == -ETIMEDOUT)
                return sd_bus_error_setf(error, ORRERY_ERROR_TIMEOUT, "VM '%s' did not carry out the request in time", b->name);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Request to VM '%s' failed: %m", b->name);

        /* Announce the new state before replying, so the caller sees it as soon as the call returns. */
        vm_bus_machine_changed(b);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_pause(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return request(m, userdata, MACHINE_REQUEST_PAUSE, error);
}

static int method_resume(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return request(m, userdata, MACHINE_REQUEST_RESUME, error);
}

static int method_reset(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return request(m, userdata, MACHINE_REQUEST_RESET, error);
}

static int method_power_down(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        int r;

        r = bus_check_caller(m, error);
        if (r < 0)
                return r;
        r = machine_power_button(b->machine);
        if (r == -EOPNOTSUPP)
                return sd_bus_error_setf(error, ORRERY_ERROR_NOT_SUPPORTED,
                                         "VM '%s' has no keyboard driver running yet to press the power key on", b->name);
        if (r == -ENOBUFS)
                return sd_bus_error_setf(error, ORRERY_ERROR_BUSY,
                                         "VM '%s' is not reading its keyboard (paused, or input queue full); try again",
                                         b->name);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot press the power key of VM '%s': %m", b->name);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_quit(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        int r;

        r = bus_check_caller(m, error);
        if (r < 0)
                return r;
        r = sd_bus_reply_method_return(m, NULL);
        machine_request(b->machine, MACHINE_REQUEST_QUIT);
        return r;
}

const sd_bus_vtable machine1_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", property_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("UUID", "s", property_uuid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MemoryBytes", "t", property_memory, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("VCPUs", "u", property_vcpus, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Version", "s", property_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD("Pause", NULL, NULL, method_pause, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Resume", NULL, NULL, method_resume, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Reset", NULL, NULL, method_reset, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("PowerDown", NULL, NULL, method_power_down, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Quit", NULL, NULL, method_quit, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};
