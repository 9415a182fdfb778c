/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The device tree the firmware and kernel boot with. fdt.c writes the
 * machine's own nodes (memory, cpus, chosen, framebuffer, power); every
 * device writes its node inside /soc itself (DeviceDescriptor.fdt_node),
 * with the helpers below, called through 'soc_nodes'.
 */

#include <stddef.h>
#include <stdint.h>

#include "devices/device.h"

enum {
        DT_PHANDLE_CPU_INTC_BASE = 1,   /* one per hart: 1 .. num_harts */
        DT_PHANDLE_PLIC = 100,
        DT_PHANDLE_TEST = 101,
};

typedef struct FdtConfig {
        unsigned num_harts;
        const char *isa;                /* riscv,isa string */
        const char *isa_base;           /* riscv,isa-base, e.g. "rv64i" */
        const char *const *isa_extensions;      /* riscv,isa-extensions, NULL-terminated */
        const char *mmu_type;           /* e.g. "riscv,sv48" */
        uint64_t ram_base, ram_size;
        const char *bootargs;           /* may be NULL */
        uint64_t initrd_start, initrd_end;      /* both 0: no initrd */
        uint64_t fb_size;               /* 0: no framebuffer */
        uint32_t fb_width, fb_height, fb_stride;
        /* Writes the devices' nodes inside /soc. */
        int (*soc_nodes)(void *userdata, void *fdt);
        void *userdata;
} FdtConfig;

/* Builds the flattened device tree; *ret_fdt is malloc'ed. Returns 0 or negative errno. */
int fdt_build(const FdtConfig *c, void **ret_fdt, size_t *ret_size);

/* ---- for devices' fdt_node() ---- */

/* libfdt's negative FDT_ERR_* folded into -ENOSPC (tree full: retried larger) or -EINVAL. */
int dt_err(int r);

#define DT_TRY(expr)                                    \
        do {                                            \
                int _r = dt_err(expr);                  \
                if (_r < 0)                             \
                        return _r;                      \
        } while (0)

int dt_begin_node_at(void *fdt, const char *name, uint64_t addr);
int dt_prop_reg(void *fdt, uint64_t base, uint64_t size);
/* 'list' holds NUL-separated strings; 'len' includes the final NUL (sizeof a string literal). */
int dt_prop_compatible(void *fdt, const char *list, size_t len);

/* interrupts-extended: two interrupt lines (e.g. 3 and 7: M software and timer) of every hart's controller. */
int dt_prop_hart_interrupts(void *fdt, unsigned num_harts, uint32_t first, uint32_t second);

/*
 * Opens "name@base" with compatible, reg (the context's window) and, when
 * the device has a PLIC source, interrupt-parent and interrupts. The caller
 * adds its own properties and closes the node (fdt_end_node).
 */
int dt_begin_device(void *fdt, const char *name, const DeviceContext *ctx, const char *compat, size_t compat_len);
