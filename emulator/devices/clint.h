/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The core-local interruptor ("sifive,clint0" / "riscv,clint0" on QEMU's
 * "virt"): per-hart MSIP at 0x0 + 4*h, MTIMECMP at 0x4000 + 8*h, and MTIME
 * at 0xbff8, which reads the machine's time source (timebase ticks). MTIME
 * is read-only here: the machine's clock is the host's, paused with the VM.
 *
 * Threading: CPU thread only (MMIO handlers and clint_update_timers()); no
 * lock. It drives the harts' MSIP and MTIP through hart_set_irq().
 */

#include <stdint.h>

#include "cpu/hart.h"
#include "devices/device.h"

#define CLINT_MAX_HARTS 8

typedef struct Clint {
        Hart *const *harts;
        unsigned num_harts;
        uint64_t mtimecmp[CLINT_MAX_HARTS];
        uint32_t msip[CLINT_MAX_HARTS];
        uint64_t (*read_time)(void *opaque);
        void *time_opaque;
} Clint;

void clint_init(Clint *c, Hart *const *harts, unsigned num_harts, uint64_t (*read_time)(void *), void *time_opaque);
void clint_reset(Clint *c);

/* Raises or lowers each hart's MTIP for the current time. */
void clint_update_timers(Clint *c);

/* The earliest mtimecmp of any hart (UINT64_MAX if none is armed). */
uint64_t clint_next_deadline(const Clint *c);

extern const MmioOps clint_mmio_ops;

/* The device: the harts and mtime come from the DeviceHost. */
extern const DeviceDescriptor clint_device;
