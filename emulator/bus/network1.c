/* SPDX-License-Identifier: MIT */
/*
 * org.orrery.Network1: one object per NIC. LinkUp is the only writable
 * property (same-user rule as every setter and method); the counters are
 * read at the time of the call and emit no signal.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "macro.h"
#include "bus/block1.h"
#include "devices/virtio_net.h"

typedef struct BusNic {
        VmBus *bus;
        VirtioNet *nic;
} BusNic;

static int property_mac(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusNic *d = userdata;
        uint8_t m[6];
        char s[18];

        virtio_net_mac(d->nic, m);
        snprintf(s, sizeof(s), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
        return sd_bus_message_append(reply, "s", s);
}

static int property_link(sd_bus *bus, const char *path, const char *interface, const char *property,
                         sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusNic *d = userdata;
        return sd_bus_message_append(reply, "b", (int) virtio_net_link(d->nic));
}

static int set_link(sd_bus *bus, const char *path, const char *interface, const char *property,
                    sd_bus_message *value, void *userdata, sd_bus_error *error) {
        BusNic *d = userdata;
        int up, r;

        r = bus_check_caller(d->bus, value, NULL, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(value, "b", &up);
        if (r < 0)
                return r;
        if (virtio_net_link(d->nic) == !!up)
                return 0;
        virtio_net_set_link(d->nic, up);
        return sd_bus_emit_properties_changed(bus, path, interface, "LinkUp", NULL);
}

static int property_u64(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusNic *d = userdata;
        VirtioNetStats st;
        uint64_t v;

        virtio_net_stats(d->nic, &st);
        if (streq(property, "RxPackets"))
                v = st.rx_packets;
        else if (streq(property, "RxBytes"))
                v = st.rx_bytes;
        else if (streq(property, "RxDropped"))
                v = st.rx_dropped;
        else if (streq(property, "TxPackets"))
                v = st.tx_packets;
        else if (streq(property, "TxBytes"))
                v = st.tx_bytes;
        else
                v = st.tx_dropped;
        return sd_bus_message_append(reply, "t", v);
}

const sd_bus_vtable network1_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("MAC", "s", property_mac, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_WRITABLE_PROPERTY("LinkUp", "b", property_link, set_link, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("RxPackets", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("RxBytes", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("RxDropped", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("TxPackets", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("TxBytes", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("TxDropped", "t", property_u64, 0, 0),
        SD_BUS_VTABLE_END,
};

int network1_publish(VmBus *b) {
        for (size_t i = 0; i < machine_n_nics(b->machine); i++) {
                BusNic *d = calloc(1, sizeof(BusNic));
                int r;

                if (d) {
                        d->bus = b;
                        d->nic = machine_nic(b->machine, i);
                }
                r = bus_publish_owned(b, "Net", machine_nic_id(b->machine, i), "org.orrery.Network1", network1_vtable,
                                      d);
                if (r < 0)
                        return r;
        }
        return 0;
}
