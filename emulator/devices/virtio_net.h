/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * virtio-net (DeviceID 1, virtio 1.2 section 5.1) on a virtio-mmio
 * transport: one receive queue (0) and one transmit queue (1), 256 entries
 * each; features MAC, STATUS and MRG_RXBUF; no offloads (every frame is
 * complete, with its checksums). The header is the 12-byte virtio 1.x
 * virtio_net_hdr; the device writes only num_buffers in it.
 *
 * Transmit (guest → host): on a TX notify the CPU thread copies each frame
 * (after the header; at most VIRTIO_NET_FRAME_MAX bytes, else it is dropped
 * and counted) into a bounded queue, returns the buffer and makes tx_fd
 * readable; the event-loop thread takes frames with virtio_net_tx_pop().
 * When the queue is full the device leaves the guest's buffers in the ring
 * until the host has taken frames (back-pressure, nothing dropped).
 *
 * Receive (host → guest): virtio_net_receive() copies a frame into the
 * driver's buffers at once, several with MRG_RXBUF (at most
 * VIRTIO_NET_RX_CHAINS), or keeps it in a backlog of VIRTIO_NET_BACKLOG
 * frames delivered when the driver adds buffers; beyond that, or while the
 * link is down or the driver is not running, frames are dropped (as on a
 * wire: TCP retransmits).
 *
 * Link: STATUS reports LINK_UP; virtio_net_set_link() changes it and raises
 * a configuration-change interrupt.
 *
 * Threading: everything is behind the transport's device lock; tx_pop,
 * receive and set_link may be called from any thread. Lock order: device
 * lock → PLIC lock. The eventfd is written with the lock held (never blocks).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "devices/device.h"
#include "devices/virtio_mmio.h"
#include "machine/physmem.h"

#define VIRTIO_ID_NET 1U

#define VIRTIO_NET_F_MAC        5
#define VIRTIO_NET_F_MRG_RXBUF  15
#define VIRTIO_NET_F_STATUS     16

#define VIRTIO_NET_S_LINK_UP    1U

#define VIRTIO_NET_HDR_SIZE     12U
#define VIRTIO_NET_QUEUE_SIZE   256U
#define VIRTIO_NET_FRAME_MAX    65550U  /* a 64 KiB IP packet plus Ethernet and VLAN headers */
#define VIRTIO_NET_TX_QUEUE     256U    /* frames waiting for the host */
#define VIRTIO_NET_BACKLOG      256U    /* frames waiting for guest buffers */
#define VIRTIO_NET_RX_CHAINS    64U     /* buffers one received frame may span */
#define VIRTIO_NET_CONFIG_SIZE  8U

typedef struct VirtioNet VirtioNet;

typedef struct VirtioNetStats {
        uint64_t rx_packets, rx_bytes, rx_dropped;
        uint64_t tx_packets, tx_bytes, tx_dropped;
} VirtioNetStats;

int virtio_net_new(PhysMem *mem, const IrqLine *irq, const uint8_t mac[6], VirtioNet **ret);
VirtioNet *virtio_net_free(VirtioNet *dev);
static inline void virtio_net_freep(VirtioNet **dev) {
        if (*dev)
                virtio_net_free(*dev);
}

VirtioMmio *virtio_net_transport(VirtioNet *dev);
void virtio_net_reset(VirtioNet *dev);

/* Readable while frames from the guest wait; virtio_net_tx_pop() drains it. */
int virtio_net_tx_fd(VirtioNet *dev);
/* Copies the next guest frame into buf; returns its length, 0 when none, -EMSGSIZE (frame dropped) if size is too small. */
ssize_t virtio_net_tx_pop(VirtioNet *dev, uint8_t *buf, size_t size);

/* A frame for the guest. Returns 0 (delivered, queued or dropped: see above) or -EINVAL. */
int virtio_net_receive(VirtioNet *dev, const uint8_t *frame, size_t len);

void virtio_net_set_link(VirtioNet *dev, bool up);
bool virtio_net_link(VirtioNet *dev);
void virtio_net_mac(VirtioNet *dev, uint8_t ret[6]);
void virtio_net_stats(VirtioNet *dev, VirtioNetStats *ret);

/*
 * For the machine's device table: one per NIC, as the slot's variant
 * (&v->type). Nothing beyond the transport's state is saved (frames in
 * flight are lost, as on a wire).
 */
typedef struct VirtioNetVariant {
        VirtioDeviceType type;          /* first: the slot's variant points here */
        uint8_t mac[6];
} VirtioNetVariant;

void virtio_net_variant_init(VirtioNetVariant *v, const uint8_t mac[6]);
