/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * virtio-console (DeviceID 3, virtio 1.2 section 5.3) with
 * VIRTIO_CONSOLE_F_MULTIPORT, on a virtio-mmio transport: a fixed set of
 * ports 0..n_ports-1, each optionally named (PORT_NAME, so the guest gets
 * /sys/class/virtio-ports/vportNpM/name and, through udev,
 * /dev/virtio-ports/<name>) and optionally a console (CONSOLE_PORT: the
 * guest makes it an hvc). The guest-agent channel is a named port
 * "org.qemu.guest_agent.0"; port 0 need not be a console.
 *
 * Config space (12 bytes, read-only): cols = rows = 0, max_nr_ports =
 * n_ports, emerg_wr (reads 0, writes ignored; EMERG_WRITE is not offered).
 *
 * Queues (all of them exist, as Linux sets up every queue at probe):
 *   0, 1                       port 0 receiveq (device → driver), transmitq
 *   2, 3                       control receiveq c_ivq (device → driver), c_ovq
 *   2(p+1), 2(p+1)+1, p >= 1   port p receiveq, transmitq
 * Port queues have 64 entries, control queues 32.
 *
 * Handshake (control messages {le32 id, le16 event, le16 value}):
 *   driver DEVICE_READY(1)     → device PORT_ADD(p) for every port
 *   driver PORT_READY(p, 1)    → device CONSOLE_PORT(p, 1) if a console,
 *                                PORT_NAME(p) + name bytes if named,
 *                                PORT_OPEN(p, 1) if the host side is connected
 *   driver PORT_OPEN(p, 0/1)   → on_open(p, open)   (guest opened/closed the port)
 *   host set_host_connected()  → device PORT_OPEN(p, 0/1) once the port is ready
 * c_ovq is processed synchronously in the QueueNotify write (Linux spins on
 * it). Control messages waiting for c_ivq buffers are kept as per-port
 * pending bits, so they are bounded and never lost; a PORT_OPEN always
 * carries the host's current state.
 *
 * Guest → host: transmitq buffers (device-readable parts; writable parts
 * are ignored) are handed to on_data() in order, without copying (the
 * pointer is into guest RAM and valid only during the call), then returned
 * to the driver. This happens during the QueueNotify write, so an hvc
 * console spinning on its buffer makes progress. virtio_console_throttle()
 * stops taking transmitq buffers for a port (the guest's writes then block,
 * as on a slow wire) until it is lifted.
 *
 * Host → guest: virtio_console_write() copies into a per-port ring of
 * VIRTIO_CONSOLE_RX_BUFFER bytes and returns how many bytes it took; they go
 * into receiveq buffers as the driver provides them. Nothing is accepted
 * while the guest has the port closed (Linux would discard it), and the ring
 * is emptied when the guest closes the port or resets the device. When a
 * write was turned away (short or 0), on_room() is called once the port is
 * open and at least VIRTIO_CONSOLE_RX_ROOM_THRESHOLD bytes are free; the
 * host then writes the rest (backpressure as in the UART: no host data is
 * dropped while the port stays open).
 *
 * Hostile guest: descriptor checks are virtqueue.c's; in addition a
 * receiveq or c_ivq buffer without writable bytes, or a c_ivq buffer
 * shorter than a control header, is a driver error (DEVICE_NEEDS_RESET);
 * unknown control events, bad port ids and short c_ovq buffers are
 * ignored. A PORT_NAME that does not fit the buffer is truncated.
 *
 * Threading: the MMIO handlers (through the transport) run on the CPU
 * thread; the host API on the event-loop thread (any thread is safe). All
 * state is behind the transport's device lock (virtio_mmio.h); lock order
 * device lock → PLIC lock.
 *
 * Callbacks run WITHOUT the device lock held (so they may call any
 * virtio_console_* function), serialised (never two at once for one
 * device), on whichever thread caused them: the CPU thread for guest
 * actions, the event-loop thread for host calls, the caller of
 * virtio_console_reset(). If one thread is already running callbacks,
 * another hands its work to it and returns. They should not block (on_data
 * runs while the guest waits in its QueueNotify write).
 *   on_data(opaque, port, buf, len)   bytes the guest wrote on 'port'
 *   on_open(opaque, port, open)       the guest opened/closed 'port' (coalesced:
 *                                     reports the state when it differs from
 *                                     the last report; a reset reports close)
 *   on_room(opaque, port)             'port' takes host data again
 * Any of them may be NULL.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "devices/device.h"
#include "devices/virtio_mmio.h"
#include "machine/physmem.h"

#define VIRTIO_ID_CONSOLE 3U

#define VIRTIO_CONSOLE_MAX_PORTS ((VIRTIO_MMIO_MAX_QUEUES / 2) - 1)     /* 15 */
#define VIRTIO_CONSOLE_NAME_MAX 127U
#define VIRTIO_CONSOLE_RX_BUFFER 4096U
#define VIRTIO_CONSOLE_RX_ROOM_THRESHOLD (VIRTIO_CONSOLE_RX_BUFFER / 2)
#define VIRTIO_CONSOLE_PORT_QUEUE_SIZE 64U
#define VIRTIO_CONSOLE_CONTROL_QUEUE_SIZE 32U

/* The guest-agent channel's well-known port name. */
#define VIRTIO_CONSOLE_AGENT_PORT_NAME "org.qemu.guest_agent.0"
/* Its port number on the machine's console (virtio_console_type); port 0 is unnamed. */
#define VIRTIO_CONSOLE_AGENT_PORT 1U

typedef struct VirtioConsolePortConfig {
        /* NULL: no PORT_NAME. Else 1..VIRTIO_CONSOLE_NAME_MAX bytes of [A-Za-z0-9._-]. */
        const char *name;
        bool console;                   /* announce with CONSOLE_PORT (guest hvc) */
        bool host_connected;            /* initial host side state (PORT_OPEN to the guest) */
} VirtioConsolePortConfig;

typedef struct VirtioConsoleCallbacks {
        void (*on_data)(void *opaque, unsigned port, const uint8_t *buf, size_t len);
        void (*on_open)(void *opaque, unsigned port, bool open);
        void (*on_room)(void *opaque, unsigned port);
} VirtioConsoleCallbacks;

typedef struct VirtioConsoleConfig {
        unsigned n_ports;               /* 1..VIRTIO_CONSOLE_MAX_PORTS, = max_nr_ports */
        const VirtioConsolePortConfig *ports;   /* n_ports entries; NULL: all unnamed, closed */
        VirtioConsoleCallbacks callbacks;
        void *opaque;
} VirtioConsoleConfig;

typedef struct VirtioConsole VirtioConsole;

/*
 * Creates the device and its transport. mem must outlive it; irq, config
 * and the port names are copied. Returns 0, -EINVAL or -ENOMEM. Map it with
 * physmem_add_mmio(..., &virtio_mmio_ops, virtio_console_transport(dev)).
 */
int virtio_console_new(PhysMem *mem, const IrqLine *irq, const VirtioConsoleConfig *config, VirtioConsole **ret);
/* Only once no thread can call into the device any more. Returns NULL. */
VirtioConsole *virtio_console_free(VirtioConsole *dev);
static inline void virtio_console_freep(VirtioConsole **dev) {
        if (*dev)
                virtio_console_free(*dev);
}

VirtioMmio *virtio_console_transport(VirtioConsole *dev);

/* Device reset (machine reset). Any thread. */
void virtio_console_reset(VirtioConsole *dev);

/* First port with that name, or -ENOENT. Any thread (constant data). */
int virtio_console_find_port(const VirtioConsole *dev, const char *name);

/*
 * Host → guest on 'port'. Returns the number of bytes taken (0..len; 0 while
 * the guest has the port closed), or -EINVAL for a bad port. When it takes
 * less than len, on_room() follows once there is room. Event-loop thread.
 */
ssize_t virtio_console_write(VirtioConsole *dev, unsigned port, const void *buf, size_t len);

/* Bytes virtio_console_write() would take now, or -EINVAL. Any thread. */
ssize_t virtio_console_write_room(VirtioConsole *dev, unsigned port);

/* The host side of 'port' connected or went away: tells the guest (PORT_OPEN). Returns 0 or -EINVAL. */
int virtio_console_set_host_connected(VirtioConsole *dev, unsigned port, bool connected);

/* Stop (true) or resume (false) taking the guest's output on 'port'. Returns 0 or -EINVAL. */
int virtio_console_throttle(VirtioConsole *dev, unsigned port, bool throttle);

/* Whether the guest has 'port' open (its last PORT_OPEN). Any thread. */
bool virtio_console_guest_open(VirtioConsole *dev, unsigned port);

/* The machine's console: ports go to the DeviceHost's port_* hooks, port VIRTIO_CONSOLE_AGENT_PORT the agent's. */
extern const VirtioDeviceType virtio_console_type;
