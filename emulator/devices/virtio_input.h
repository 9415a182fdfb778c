/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * virtio-input (DeviceID 18, virtio 1.2 section 5.8) on a virtio-mmio
 * transport, in two flavours speaking Linux evdev codes
 * (linux/input-event-codes.h), as Keyboard1 and Mouse1 on the bus do:
 *
 *   keyboard  "Orrery Keyboard": EV_KEY for codes 1..255 and 0x160..0x21f
 *             (every key a keyboard has, KEY_POWER included; no BTN_*),
 *             EV_LED (NUML, CAPSL, SCROLLL), EV_REP (the guest repeats keys
 *             itself: the host sends press and release only).
 *   tablet    "Orrery Tablet": EV_KEY BTN_LEFT, RIGHT, MIDDLE, SIDE, EXTRA;
 *             EV_ABS ABS_X 0..max_x, ABS_Y 0..max_y (framebuffer pixels:
 *             max = width-1, height-1, fixed at creation); EV_REL REL_WHEEL
 *             and REL_HWHEEL.
 *
 * Configuration space (136 bytes): select, subsel, size, 5 reserved, then a
 * 128-byte union; select/subsel are the only writable bytes, and writing
 * either recomputes size and the union: ID_NAME, ID_SERIAL, ID_DEVIDS
 * (BUS_VIRTUAL, vendor 0x4f52, product 1 keyboard / 2 tablet, version 1),
 * PROP_BITS (empty), EV_BITS per event type (size 0 for types not
 * supported), ABS_INFO for ABS_X/ABS_Y. Anything else has size 0.
 *
 * Queues: 0 eventq (device → driver, one 8-byte virtio_input_event
 * {le16 type, le16 code, le32 value} per buffer), 1 statusq (driver →
 * device; EV_LED events update the LED state, everything else is consumed
 * and ignored). 64 entries each. An eventq buffer with fewer than 8
 * writable bytes is a driver error (DEVICE_NEEDS_RESET).
 *
 * Host events: virtio_input_send() adds events to an open packet (at most
 * VIRTIO_INPUT_PACKET_MAX); virtio_input_sync() closes it with SYN_REPORT
 * and commits it to a ring of VIRTIO_INPUT_RING_SIZE events, which is
 * copied into eventq buffers as the driver provides them (at once, and on
 * every eventq notify). Whole packets or nothing: when the ring has no room
 * for a packet, the NEW packet is refused whole (-ENOBUFS; queued events are
 * never dropped, so the guest never sees half a packet or a lost release
 * behind a later press). While the driver has not set DRIVER_OK, packets are
 * accepted and discarded (there is no reader; a keypress is not kept for a
 * driver that loads later). The convenience calls (key, button, abs, wheel)
 * build and commit one packet atomically and do not touch an open packet.
 *
 * Validation (-EINVAL, nothing queued): a type the device does not report,
 * a code not in its bitmap (> KEY_MAX, not a key of this device, ...), a key
 * value other than 0 (release), 1 (press) or 2 (autorepeat). ABS values are
 * clamped to 0..max; EV_SYN/SYN_REPORT through send() is a sync.
 *
 * Threading: the MMIO handlers (through the transport) run on the CPU
 * thread; the host API on the event-loop thread (any thread is safe). All
 * state is behind the transport's device lock (virtio_mmio.h); lock order
 * device lock → PLIC lock.
 *
 * Callbacks run WITHOUT the device lock held, so they may call back into
 * the device; they are serialised (never two at once for one device) and
 * run on whichever thread caused them (the CPU thread for a statusq write,
 * the caller of virtio_input_reset() for a reset):
 *   leds(opaque, leds)   the LED state changed: bit LED_NUML, LED_CAPSL,
 *                        LED_SCROLLL of 'leds' (1 << code). Reports the
 *                        state, coalesced: two quick changes may be seen as
 *                        one. A device reset turns all LEDs off.
 *   ready(opaque, ready) the driver set DRIVER_OK (true) or reset the device
 *                        (false): whether events reach the guest now.
 */

#include <stdbool.h>
#include <stdint.h>

#include "devices/device.h"
#include "devices/virtio_mmio.h"
#include "machine/physmem.h"

#define VIRTIO_ID_INPUT 18U

#define VIRTIO_INPUT_RING_SIZE   256U   /* host-side events waiting for eventq buffers */
#define VIRTIO_INPUT_PACKET_MAX  16U    /* events in one open packet, SYN_REPORT excluded */
#define VIRTIO_INPUT_QUEUE_SIZE  64U
#define VIRTIO_INPUT_CONFIG_SIZE 136U

/* The tablet's range without a framebuffer. */
#define VIRTIO_INPUT_NOMINAL_WIDTH  1024U
#define VIRTIO_INPUT_NOMINAL_HEIGHT 768U

typedef enum VirtioInputKind {
        VIRTIO_INPUT_KEYBOARD,
        VIRTIO_INPUT_TABLET,
} VirtioInputKind;

typedef struct VirtioInputConfig {
        VirtioInputKind kind;
        uint32_t abs_max_x;             /* tablet: framebuffer width - 1 */
        uint32_t abs_max_y;             /* tablet: framebuffer height - 1 */
        const char *serial;             /* ID_SERIAL, <= 127 bytes; NULL: a default */
        void (*leds)(void *opaque, uint32_t leds);
        void (*ready)(void *opaque, bool ready);
        void *opaque;
} VirtioInputConfig;

typedef struct VirtioInput VirtioInput;

/*
 * Creates the device and its transport. mem must outlive it; irq and config
 * are copied. Returns 0, -EINVAL or -ENOMEM. Map it with
 * physmem_add_mmio(..., &virtio_mmio_ops, virtio_input_transport(dev)).
 */
int virtio_input_new(PhysMem *mem, const IrqLine *irq, const VirtioInputConfig *config, VirtioInput **ret);
/* Only once no thread can call into the device any more. Returns NULL. */
VirtioInput *virtio_input_free(VirtioInput *dev);
static inline void virtio_input_freep(VirtioInput **dev) {
        if (*dev)
                virtio_input_free(*dev);
}

VirtioMmio *virtio_input_transport(VirtioInput *dev);

/* Device reset (machine reset). Any thread. */
void virtio_input_reset(VirtioInput *dev);

/*
 * Host input, event-loop thread. All return 0 (queued, or discarded while the
 * driver is not running), -EINVAL (see above) or -ENOBUFS (ring full; for
 * send(): the open packet is full and has been discarded).
 */
int virtio_input_send(VirtioInput *dev, uint16_t type, uint16_t code, int32_t value);
int virtio_input_sync(VirtioInput *dev);

/* One packet each: EV_KEY code, SYN. Keyboard keys and tablet buttons. */
int virtio_input_key(VirtioInput *dev, uint16_t code, bool pressed);
/* Tablet: EV_KEY button (BTN_LEFT...BTN_EXTRA), SYN. */
int virtio_input_button(VirtioInput *dev, uint16_t button, bool pressed);
/* Tablet: ABS_X, ABS_Y (each clamped to 0..max), SYN. */
int virtio_input_abs(VirtioInput *dev, int64_t x, int64_t y);
/* Tablet: REL_WHEEL (vertical, positive = away from the user), REL_HWHEEL; zero axes are left out. */
int virtio_input_wheel(VirtioInput *dev, int32_t vertical, int32_t horizontal);

/* LED state as 1 << LED_*; 0 until the driver writes any. Any thread. */
uint32_t virtio_input_leds(VirtioInput *dev);
/* Whether the guest's driver has the device running (DRIVER_OK, eventq ready). Any thread. */
bool virtio_input_driver_ready(VirtioInput *dev);
/* Whether code is a valid EV_KEY code for this device. Any thread (constant data). */
bool virtio_input_has_key(const VirtioInput *dev, uint16_t code);

/*
 * The machine's keyboard and tablet (the keyboard's LED changes and the
 * tablet's readiness go to the DeviceHost's 'changed' hook; the tablet
 * spans the host's framebuffer).
 */
extern const VirtioDeviceType virtio_keyboard_type;
extern const VirtioDeviceType virtio_tablet_type;
