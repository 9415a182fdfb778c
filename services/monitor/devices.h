/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The monitor's disk and network commands, with QEMU's HMP names: "info
 * block", "info network", block_resize, hostfwd_add, hostfwd_remove and
 * set_link. They are calls to the VM's org.orrery.Block1 and
 * org.orrery.Network1 objects (dbus/), found through its ObjectManager;
 * nothing is kept between commands.
 */

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

/* Where the VM is: its owner's unique name and its object path; every call within 'timeout' usec. */
typedef struct MonitorVmRef {
        sd_bus *bus;
        const char *owner;
        const char *path;
        uint64_t timeout;
} MonitorVmRef;

#define MONITOR_HOSTFWD_ADD_USAGE "[NIC] [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT"
#define MONITOR_HOSTFWD_REMOVE_USAGE "[NIC] [tcp|udp]:[HOSTADDR]:HOSTPORT"

/* "info block" and "info network". Return 0 (ok) or 1 (failed), errors on stderr. */
int monitor_info_block(const MonitorVmRef *vm);
int monitor_info_network(const MonitorVmRef *vm);

/*
 * block_resize, hostfwd_add, hostfwd_remove, set_link: argv[0] is the
 * command. Return 0 (ok), 1 (failed) or 2 (usage).
 */
int monitor_devices_run(const MonitorVmRef *vm, char **argv, size_t argc);
