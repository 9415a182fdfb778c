/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The contract between the machine's physical address map and a device
 * model, in the spirit of kvmtool: each device claims an MMIO window and
 * answers reads and writes inside it.
 *
 * Threading: read/write callbacks run on the CPU thread. A device that is
 * also touched from the event-loop thread (host input, timers) protects its
 * state with its own lock; see the device's header for which.
 *
 * Offsets are relative to the start of the window; sizes are 1, 2, 4 or 8
 * and the access never crosses the end of the window (the machine checks).
 * Reads of registers that do not exist return 0, writes are ignored: the
 * guest is hostile, and a device never aborts on what it is told.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/state.h"

typedef struct Hart Hart;
typedef struct PhysMem PhysMem;

typedef struct MmioOps {
        uint64_t (*read)(void *opaque, uint64_t offset, unsigned size);
        void (*write)(void *opaque, uint64_t offset, uint64_t value, unsigned size);
} MmioOps;

/* One level-triggered interrupt wire, from a device to an interrupt controller. */
typedef struct IrqLine {
        void (*set)(void *opaque, unsigned number, bool level);
        void *opaque;
        unsigned number;
} IrqLine;

static inline void irq_line_set(const IrqLine *line, bool level) {
        if (line && line->set)
                line->set(line->opaque, line->number, level);
}

/*
 * What the machine offers its devices: clocks, the harts (by handle only),
 * and the host-facing hooks devices report to. A device uses the hooks it
 * needs and leaves the others alone; any hook may be NULL. 'opaque' is
 * passed to every hook.
 */
typedef struct DeviceHost {
        void *opaque;
        Hart *const *harts;
        unsigned num_harts;
        uint32_t fb_width, fb_height;   /* 0x0: no framebuffer */

        uint64_t (*mtime)(void *opaque);                /* timebase ticks */
        uint64_t (*realtime_ns)(void *opaque);          /* host wall clock; NULL: CLOCK_REALTIME */
        /* The PLIC's outputs: a hart's M- or S-mode external interrupt line. */
        void (*set_external)(void *opaque, unsigned hart, bool machine_mode, bool level);
        /* The guest asked to power off (action 0, code 0), to report failure (1, code) or to reboot (2). */
        void (*power)(void *opaque, unsigned action, int code);
        /* Serial console: output (must not block) and room for input again. */
        void (*serial_output)(void *opaque, const uint8_t *buf, size_t n);
        void (*serial_room)(void *opaque);
        /* Something the host side re-reads changed (keyboard LEDs, tablet readiness). */
        void (*changed)(void *opaque);
        /* Named console ports (virtio-console): guest output, open state, room for input. */
        void (*port_data)(void *opaque, unsigned port, const uint8_t *buf, size_t n);
        void (*port_open)(void *opaque, unsigned port, bool open);
        void (*port_room)(void *opaque, unsigned port);
} DeviceHost;

/* Where one instance of a device sits, handed to its create() and fdt_node(). */
typedef struct DeviceContext {
        const DeviceHost *host;
        PhysMem *mem;
        uint64_t base, size;            /* its MMIO window */
        unsigned irq_number;            /* its PLIC source, 0: none */
        IrqLine irq;                    /* its wire to the PLIC (inert when irq_number is 0) */
        const void *variant;            /* what the table line chose, e.g. a VirtioDeviceType; may be NULL */
} DeviceContext;

/* Access sizes a device's registers take; other sizes read 0 and ignore writes. */
#define DEVICE_ACCESS_1 (1u << 0)
#define DEVICE_ACCESS_2 (1u << 1)
#define DEVICE_ACCESS_4 (1u << 2)
#define DEVICE_ACCESS_8 (1u << 3)
#define DEVICE_ACCESS_ANY (DEVICE_ACCESS_1 | DEVICE_ACCESS_2 | DEVICE_ACCESS_4 | DEVICE_ACCESS_8)

static inline bool device_access_allowed(unsigned sizes, unsigned size) {
        return size <= 8 && (sizes & size) != 0 && (size & (size - 1)) == 0;
}

/*
 * A device model describes itself with one of these: the machine creates,
 * maps, resets, describes (device tree), saves, loads and frees every
 * device of its table through it, and knows nothing else about it.
 *
 * create() returns the instance, the 'opaque' of 'mmio' and of every other
 * callback. fdt_node() writes the device's node(s) inside /soc with the
 * helpers of machine/fdt.h. save() writes explicit fields (state.h); load()
 * reads them back, refuses anything out of range and leaves the device as
 * it was on error. Threading: create, free, fdt_node, save and load run
 * while the CPU thread is stopped; reset on the CPU thread.
 */
typedef struct DeviceDescriptor {
        const char *name;
        uint64_t base, size;            /* default MMIO window; a table line may move it */
        unsigned access_sizes;          /* DEVICE_ACCESS_* */
        unsigned irq;                   /* default PLIC source, 0: none */
        const MmioOps *mmio;

        int (*create)(const DeviceContext *ctx, void **ret);
        void (*free)(void *dev);
        void (*reset)(void *dev);
        int (*fdt_node)(void *dev, const DeviceContext *ctx, void *fdt);        /* may be NULL */
        int (*save)(void *dev, StateWriter *w);
        int (*load)(void *dev, StateReader *r);
} DeviceDescriptor;

/* One line of the machine's device table: a device, moved or specialised when base/irq/variant are set. */
typedef struct DeviceSlot {
        const DeviceDescriptor *desc;
        uint64_t base;                  /* 0: desc->base */
        unsigned irq;                   /* 0: desc->irq */
        const void *variant;
} DeviceSlot;
