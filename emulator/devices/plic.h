/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The platform-level interrupt controller, register-compatible with the
 * "sifive,plic-1.0.0" / "riscv,plic0" node of QEMU's "virt" board:
 *
 *   0x000000 + 4*s            priority of source s (1..PLIC_NUM_SOURCES-1), 3 bits, WARL
 *   0x001000 + 4*w            pending bits of sources 32w..32w+31 (read-only)
 *   0x002000 + 0x80*c + 4*w   enable bits of context c
 *   0x200000 + 0x1000*c       priority threshold of context c, 3 bits, WARL
 *   0x200004 + 0x1000*c       claim (read) / complete (write) of context c
 *
 * Registers are 32 bits wide and decoded only for naturally aligned 4-byte
 * accesses; anything else reads 0 and is ignored. Source 0 does not exist
 * (its priority, pending and enable bits read 0).
 *
 * Contexts: two per hart, context 2h is hart h in M-mode, 2h+1 is hart h in
 * S-mode (the order QEMU's "virt" device tree lists them in).
 *
 * Sources are level-triggered. While a source is not claimed its pending bit
 * follows the level of its wire; a claim clears the pending bit and marks
 * the source in service; a completion ends the service and the pending bit
 * takes the wire's level again (a line still high re-pends at once).
 *
 * Threading: every entry point may be called from any thread. All state is
 * behind one mutex, the "PLIC lock". The set_external callback is invoked
 * with the PLIC lock held, exactly once per change of a context's output and
 * in the order of the changes; it must be non-blocking and must not call
 * back into the PLIC (typically: set or clear MIP.MEIP/SEIP atomically and
 * kick the hart).
 *
 * Lock order: a device lock (UART, RTC, ...) → PLIC lock → whatever
 * set_external takes (it should be a leaf). Devices may therefore call
 * irq_line_set() on a PLIC line while holding their own lock; the PLIC
 * never calls into a device.
 */

#include <stdbool.h>
#include <stdint.h>

#include "devices/device.h"
#include "machine/memmap.h"

/* 2 contexts per hart; 1024 contexts fill the 0x600000 window exactly. */
#define PLIC_MAX_HARTS 512U

#define PLIC_PRIORITY_MAX 7U

typedef struct Plic Plic;

/*
 * Called whenever "context (hart, machine_mode) has a pending, enabled source
 * whose priority exceeds its threshold" changes. See the threading note above.
 */
typedef void (*PlicSetExternal)(void *opaque, unsigned hart, bool machine_mode, bool level);

/* num_harts in 1..PLIC_MAX_HARTS; set_external may be NULL. Returns 0 or -EINVAL/-ENOMEM. */
int plic_new(unsigned num_harts, PlicSetExternal set_external, void *opaque, Plic **ret);
/* Only once no thread can call into the device any more. Returns NULL. */
Plic *plic_free(Plic *plic);
static inline void plic_freep(Plic **plic) {
        if (*plic)
                plic_free(*plic);
}

/*
 * Back to power-on state: priorities, enables and thresholds 0, nothing in
 * service. Wire levels are kept (they belong to the devices), so a line that
 * is still high is pending again. Outputs that change are reported.
 */
void plic_reset(Plic *plic);

/* Drive the wire of a source. Out-of-range sources (0, >= PLIC_NUM_SOURCES) are ignored. Any thread. */
void plic_set_irq(Plic *plic, unsigned source, bool level);

/* IrqLine-compatible setter: IrqLine { .set = plic_irq_line_set, .opaque = plic, .number = source }. */
void plic_irq_line_set(void *opaque, unsigned number, bool level);

static inline IrqLine plic_irq_line(Plic *plic, unsigned source) {
        return (IrqLine) { .set = plic_irq_line_set, .opaque = plic, .number = source };
}

/* The current output of a context, as last reported to set_external. False for a hart that does not exist. */
bool plic_get_external(Plic *plic, unsigned hart, bool machine_mode);

/* MMIO handlers (opaque is the Plic*), for the MEMMAP_PLIC_BASE window. */
uint64_t plic_mmio_read(void *opaque, uint64_t offset, unsigned size);
void plic_mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size);
extern const MmioOps plic_mmio_ops;

/* The device (create: one context pair per hart of the DeviceHost, outputs to its set_external). */
extern const DeviceDescriptor plic_device;
