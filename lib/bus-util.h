/* SPDX-License-Identifier: MIT */
#pragma once

/* Small sd-bus helpers shared by the emulator and the services. */

#include <stdbool.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

/*
 * Refuses a method call from another user than ours: a VM or a bridge on a
 * session bus serves its own user only. One blocking query of the bus per
 * call: orrery-vm caches the verdict per client instead (emulator/bus). 'whom' names what is being called
 * in the error ("the VM's owner", "the bridge's user").
 */
static inline int bus_check_same_user(sd_bus_message *m, const char *whom, sd_bus_error *error) {
        sd_bus_creds *creds = NULL;
        uid_t uid;
        int r;

        /*
         * Only what the bus daemon vouches for (the uid it took from the
         * socket): no SD_BUS_CREDS_AUGMENT, which would fill gaps from
         * /proc/<pid>, racy for a decision.
         */
        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_UID, &creds);
        if (r >= 0) {
                r = sd_bus_creds_get_euid(creds, &uid);
                if (r < 0)
                        r = sd_bus_creds_get_uid(creds, &uid);
                sd_bus_creds_unref(creds);
        }
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Cannot determine the caller's user: %s",
                                         strerror(-r));
        if (uid != geteuid())
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "Only %s (uid %u) may call it; the caller is uid %u", whom,
                                         (unsigned) geteuid(), (unsigned) uid);
        return 0;
}

/*
 * Connects to the user's session bus (address NULL) or to the bus at
 * address (tests and --bus use private dbus-daemons), as a bus client that
 * checks its callers' credentials rather than trusting them.
 */
static inline int bus_open(const char *address, const char *description, sd_bus **ret) {
        sd_bus *bus = NULL;
        int r;

        if (!address)
                return sd_bus_open_user_with_description(ret, description);

        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        r = sd_bus_set_address(bus, address);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, true);
        if (r >= 0)
                r = sd_bus_set_trusted(bus, false);
        if (r >= 0)
                r = sd_bus_negotiate_fds(bus, true);
        if (r >= 0)
                r = sd_bus_set_description(bus, description);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                sd_bus_unref(bus);
                return r;
        }
        *ret = bus;
        return 0;
}
