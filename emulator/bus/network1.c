/* SPDX-License-Identifier: MIT */
/*
 * org.orrery.Network1: one object per NIC. LinkUp is the only writable
 * property; AddForward/RemoveForward change the host forwards at runtime
 * (same-user rule as every setter and method); the counters are read at the
 * time of the call and emit no signal.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "macro.h"
#include "bus/block1.h"
#include "devices/virtio_net.h"
#include "net/user.h"

typedef struct BusNic {
        VmBus *bus;
        VirtioNet *nic;
        NetUser *user;                  /* NULL when the NIC has no backend (tests) */
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

static int property_forwards(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusNic *d = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(sssqq)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < net_user_n_forwards(d->user); i++) {
                const NetForward *f = net_user_forward(d->user, i);
                char host[INET_ADDRSTRLEN], guest[INET_ADDRSTRLEN];

                inet_ntop(AF_INET, &f->host_addr, host, sizeof(host));
                inet_ntop(AF_INET, &f->guest_addr, guest, sizeof(guest));
                r = sd_bus_message_append(reply, "(sssqq)", f->udp ? "udp" : "tcp", host, guest, f->host_port,
                                          f->guest_port);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

/* proto and host address as a client wrote them: "tcp"/"udp", an IPv4 address or "" for 127.0.0.1. */
static int parse_endpoint(const char *proto, const char *host_addr, uint16_t host_port, NetForward *f,
                          sd_bus_error *error) {
        if (streq(proto, "tcp"))
                f->udp = false;
        else if (streq(proto, "udp"))
                f->udp = true;
        else
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT,
                                         "Unknown protocol '%.32s': use \"tcp\" or \"udp\"", proto);
        if (host_addr[0] == 0)
                f->host_addr.s_addr = htonl(INADDR_LOOPBACK);
        else if (inet_pton(AF_INET, host_addr, &f->host_addr) != 1)
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT,
                                         "Host address '%.64s' is not an IPv4 address", host_addr);
        if (host_port == 0)
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT, "Host port 0 is out of range 1-65535");
        f->host_port = host_port;
        return 0;
}

static int emit_forwards(sd_bus_message *m) {
        return sd_bus_emit_properties_changed(sd_bus_message_get_bus(m), sd_bus_message_get_path(m),
                                              "org.orrery.Network1", "Forwards", NULL);
}

static int method_add_forward(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusNic *d = userdata;
        const char *proto, *host_addr;
        uint16_t host_port, guest_port;
        NetForward f = {};
        BusPeer *peer = NULL;
        int r;

        r = bus_check_caller(d->bus, m, &peer, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "ssqq", &proto, &host_addr, &host_port, &guest_port);
        if (r < 0)
                return r;
        r = parse_endpoint(proto, host_addr, host_port, &f, error);
        if (r < 0)
                return r;
        if (guest_port == 0)
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT, "Guest port 0 is out of range 1-65535");
        f.guest_port = guest_port;
        f.guest_addr.s_addr = htonl(0x0a00020f);        /* 10.0.2.15, the address DHCP gives the guest */
        if (!d->user)
                return sd_bus_error_setf(error, ORRERY_ERROR_NOT_SUPPORTED, "This NIC has no user networking");

        r = net_user_add_forward(d->user, &f);
        if (r == -EADDRINUSE)
                return sd_bus_error_setf(error, ORRERY_ERROR_BUSY,
                                         "Cannot forward %s %s:%u: the port is in use (or the address is not the host's)",
                                         proto, host_addr[0] ? host_addr : "127.0.0.1", host_port);
        if (r == -ENOSPC)
                return sd_bus_error_setf(error, ORRERY_ERROR_BUSY, "This NIC has %u host forwards already",
                                         NET_USER_MAX_FORWARDS);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot add the forward: %m");
        bus_log_origin(peer, "a new host forward");
        r = emit_forwards(m);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static int method_remove_forward(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusNic *d = userdata;
        const char *proto, *host_addr;
        uint16_t host_port;
        NetForward f = {};
        BusPeer *peer = NULL;
        int r;

        r = bus_check_caller(d->bus, m, &peer, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "ssq", &proto, &host_addr, &host_port);
        if (r < 0)
                return r;
        r = parse_endpoint(proto, host_addr, host_port, &f, error);
        if (r < 0)
                return r;

        r = net_user_remove_forward(d->user, f.udp, f.host_addr, f.host_port);
        if (r == -ENOENT || r == -EINVAL)
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT, "No %s forward from %s:%u", proto,
                                         host_addr[0] ? host_addr : "127.0.0.1", host_port);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot remove the forward: %m");
        bus_log_origin(peer, "a host forward's removal");
        r = emit_forwards(m);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

const sd_bus_vtable network1_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("MAC", "s", property_mac, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_WRITABLE_PROPERTY("LinkUp", "b", property_link, set_link, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Forwards", "a(sssqq)", property_forwards, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("RxPackets", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("RxBytes", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("RxDropped", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("TxPackets", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("TxBytes", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("TxDropped", "t", property_u64, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("AddForward", SD_BUS_ARGS("s", proto, "s", host_addr, "q", host_port, "q", guest_port),
                                SD_BUS_NO_RESULT, method_add_forward, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemoveForward", SD_BUS_ARGS("s", proto, "s", host_addr, "q", host_port),
                                SD_BUS_NO_RESULT, method_remove_forward, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int network1_publish(VmBus *b) {
        for (size_t i = 0; i < machine_n_nics(b->machine); i++) {
                BusNic *d = calloc(1, sizeof(BusNic));
                int r;

                if (d) {
                        d->bus = b;
                        d->nic = machine_nic(b->machine, i);
                        d->user = i < b->n_nets ? b->nets[i] : NULL;
                }
                r = bus_publish_owned(b, "Net", machine_nic_id(b->machine, i), "org.orrery.Network1", network1_vtable,
                                      d);
                if (r < 0)
                        return r;
        }
        return 0;
}
