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
#include <stdint.h>

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
