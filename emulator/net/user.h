/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * User-mode networking for one virtio-net NIC through libslirp, entirely on
 * the event-loop thread: slirp's sockets and timers are sd-event sources,
 * guest frames arrive through the NIC's tx eventfd (virtio_net_tx_pop())
 * and slirp's frames go to virtio_net_receive(), which never blocks. The
 * CPU thread never calls into slirp.
 *
 * The network: 10.0.2.0/24, gateway and host 10.0.2.2 (the host's
 * 127.0.0.1 as seen from the guest), DNS 10.0.2.3, DHCP from 10.0.2.15;
 * IPv4 only. restrict=on: the guest reaches nothing outside (slirp's
 * 'restricted' mode); host forwards still pass.
 */

#include <systemd/sd-event.h>

#include "devices/virtio_net.h"
#include "net/netspec.h"

typedef struct NetUser NetUser;

/*
 * Starts slirp and the spec's host forwards. A forward that cannot listen
 * (port in use) fails the whole call: -EADDRINUSE with a message in 'error'.
 */
int net_user_new(sd_event *event, const NetSpec *spec, VirtioNet *nic, NetUser **ret, char *error, size_t error_size);
NetUser *net_user_free(NetUser *nu);
static inline void net_user_freep(NetUser **nu) {
        if (*nu)
                net_user_free(*nu);
}

/* Host forwards of one NIC, --net's and the bus's together: a bound on what clients may add. */
#define NET_USER_MAX_FORWARDS 64

/*
 * Runtime forwards (the bus), event-loop thread only. Add: -EINVAL (port
 * 0), -EADDRINUSE (the same proto, address and port is forwarded already,
 * or slirp cannot listen there), -ENOSPC (NET_USER_MAX_FORWARDS). Remove:
 * -ENOENT when no such forward exists.
 */
int net_user_add_forward(NetUser *nu, const NetForward *f);
int net_user_remove_forward(NetUser *nu, bool udp, struct in_addr host_addr, uint16_t host_port);
/*
 * A VM migrating away stops listening on its host forwards (the ports go to
 * the destination) and listens again if the migration fails. The list is
 * kept. Reopen returns how many forwards could not listen again.
 */
void net_user_close_forwards(NetUser *nu);
size_t net_user_reopen_forwards(NetUser *nu);
/* The forwards in place, in the order they were added; NULL past the end. */
size_t net_user_n_forwards(const NetUser *nu);
const NetForward *net_user_forward(const NetUser *nu, size_t i);
