/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * org.orrery.Block1 on /org/orrery/VM/<name>/Block/<id> for every disk, and
 * org.orrery.Network1 on /org/orrery/VM/<name>/Net/<id> for every NIC (see
 * dbus/org.orrery.Block1.xml and org.orrery.Network1.xml). The objects live
 * as long as the bus connection.
 */

#include "bus/bus.h"

extern const sd_bus_vtable block1_vtable[];
extern const sd_bus_vtable network1_vtable[];

int block1_publish(VmBus *b);
int network1_publish(VmBus *b);
