/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct FdtConfig {
        unsigned num_harts;
        const char *isa;                /* riscv,isa string */
        const char *mmu_type;           /* e.g. "riscv,sv39" */
        uint64_t ram_base, ram_size;
        const char *bootargs;           /* may be NULL */
        uint64_t initrd_start, initrd_end;      /* both 0: no initrd */
        uint64_t fb_size;               /* 0: no framebuffer */
        uint32_t fb_width, fb_height, fb_stride;
} FdtConfig;

/* Builds the flattened device tree; *ret_fdt is malloc'ed. Returns 0 or negative errno. */
int fdt_build(const FdtConfig *c, void **ret_fdt, size_t *ret_size);
