/* SPDX-License-Identifier: MIT */

/*
 * The device tree the firmware and kernel boot with, built at start-up with
 * libfdt. It describes exactly the devices the machine has, at the
 * addresses in memmap.h, in the shape of QEMU's "virt" board.
 */

#include <errno.h>
#include <libfdt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "machine/fdt.h"
#include "machine/memmap.h"
#include "macro.h"

#define FDT_INITIAL_SIZE (64 * 1024)

int dt_err(int r) {
        if (r >= 0)
                return 0;
        return r == -FDT_ERR_NOSPACE ? -ENOSPC : -EINVAL;
}

#define TRY DT_TRY

int dt_prop_reg(void *fdt, uint64_t base, uint64_t size) {
        fdt64_t cells[2] = { cpu_to_fdt64(base), cpu_to_fdt64(size) };
        return fdt_property(fdt, "reg", cells, sizeof(cells));
}

int dt_prop_compatible(void *fdt, const char *list, size_t len) {
        return fdt_property(fdt, "compatible", list, (int) len);
}

int dt_begin_node_at(void *fdt, const char *name, uint64_t addr) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%s@%llx", name, (unsigned long long) addr);
        return fdt_begin_node(fdt, buf);
}

int dt_begin_device(void *fdt, const char *name, const DeviceContext *ctx, const char *compat, size_t compat_len) {
        TRY(dt_begin_node_at(fdt, name, ctx->base));
        TRY(dt_prop_compatible(fdt, compat, compat_len));
        TRY(dt_prop_reg(fdt, ctx->base, ctx->size));
        if (ctx->irq_number > 0) {
                TRY(fdt_property_u32(fdt, "interrupt-parent", DT_PHANDLE_PLIC));
                TRY(fdt_property_u32(fdt, "interrupts", ctx->irq_number));
        }
        return 0;
}

int dt_prop_hart_interrupts(void *fdt, unsigned num_harts, uint32_t first, uint32_t second) {
        _cleanup_free_ fdt32_t *cells = calloc(num_harts * 4, sizeof(fdt32_t));

        if (!cells)
                return -ENOMEM;
        for (unsigned i = 0; i < num_harts; i++) {
                uint32_t intc = DT_PHANDLE_CPU_INTC_BASE + i;
                cells[4 * i + 0] = cpu_to_fdt32(intc);
                cells[4 * i + 1] = cpu_to_fdt32(first);
                cells[4 * i + 2] = cpu_to_fdt32(intc);
                cells[4 * i + 3] = cpu_to_fdt32(second);
        }
        return dt_err(fdt_property(fdt, "interrupts-extended", cells, (int) (num_harts * 4 * sizeof(fdt32_t))));
}

static int prop_string_list(void *fdt, const char *name, const char *const *list) {
        char buf[512];
        size_t len = 0;

        for (const char *const *p = list; *p; p++) {
                size_t n = strlen(*p) + 1;
                if (n > sizeof(buf) - len)
                        return -E2BIG;
                memcpy(buf + len, *p, n);
                len += n;
        }
        return fdt_property(fdt, name, buf, (int) len);
}

static int add_cpus(void *fdt, const FdtConfig *c) {
        TRY(fdt_begin_node(fdt, "cpus"));
        TRY(fdt_property_u32(fdt, "#address-cells", 1));
        TRY(fdt_property_u32(fdt, "#size-cells", 0));
        TRY(fdt_property_u32(fdt, "timebase-frequency", (uint32_t) TIMEBASE_FREQUENCY));

        for (unsigned i = 0; i < c->num_harts; i++) {
                char name[32];
                snprintf(name, sizeof(name), "cpu@%u", i);
                TRY(fdt_begin_node(fdt, name));
                TRY(fdt_property_string(fdt, "device_type", "cpu"));
                TRY(fdt_property_u32(fdt, "reg", i));
                TRY(fdt_property_string(fdt, "status", "okay"));
                TRY(fdt_property_string(fdt, "compatible", "riscv"));
                TRY(fdt_property_string(fdt, "riscv,isa", c->isa));
                if (c->isa_base)
                        TRY(fdt_property_string(fdt, "riscv,isa-base", c->isa_base));
                if (c->isa_extensions) {
                        int r = prop_string_list(fdt, "riscv,isa-extensions", c->isa_extensions);
                        if (r == -E2BIG)
                                return r;
                        TRY(r);
                }
                TRY(fdt_property_string(fdt, "mmu-type", c->mmu_type));
                TRY(fdt_property_u32(fdt, "phandle", DT_PHANDLE_CPU_INTC_BASE + 200 + i));

                TRY(fdt_begin_node(fdt, "interrupt-controller"));
                TRY(fdt_property_u32(fdt, "#interrupt-cells", 1));
                TRY(fdt_property(fdt, "interrupt-controller", NULL, 0));
                TRY(fdt_property_string(fdt, "compatible", "riscv,cpu-intc"));
                TRY(fdt_property_u32(fdt, "phandle", DT_PHANDLE_CPU_INTC_BASE + i));
                TRY(fdt_end_node(fdt));

                TRY(fdt_end_node(fdt));
        }
        return dt_err(fdt_end_node(fdt));
}

static int add_soc(void *fdt, const FdtConfig *c) {
        TRY(fdt_begin_node(fdt, "soc"));
        TRY(fdt_property_u32(fdt, "#address-cells", 2));
        TRY(fdt_property_u32(fdt, "#size-cells", 2));
        TRY(fdt_property_string(fdt, "compatible", "simple-bus"));
        TRY(fdt_property(fdt, "ranges", NULL, 0));

        if (c->soc_nodes) {
                int r = c->soc_nodes(c->userdata, fdt);
                if (r < 0)
                        return r;
        }

        if (c->fb_size > 0) {
                static const char fb_compat[] = "simple-framebuffer";
                TRY(dt_begin_node_at(fdt, "framebuffer", MEMMAP_FB_BASE));
                TRY(dt_prop_compatible(fdt, fb_compat, sizeof(fb_compat)));
                TRY(dt_prop_reg(fdt, MEMMAP_FB_BASE, c->fb_size));
                TRY(fdt_property_u32(fdt, "width", c->fb_width));
                TRY(fdt_property_u32(fdt, "height", c->fb_height));
                TRY(fdt_property_u32(fdt, "stride", c->fb_stride));
                TRY(fdt_property_string(fdt, "format", "x8r8g8b8"));
                TRY(fdt_end_node(fdt));
        }

        return dt_err(fdt_end_node(fdt));
}

static int add_power(void *fdt) {
        TRY(fdt_begin_node(fdt, "poweroff"));
        TRY(fdt_property_string(fdt, "compatible", "syscon-poweroff"));
        TRY(fdt_property_u32(fdt, "regmap", DT_PHANDLE_TEST));
        TRY(fdt_property_u32(fdt, "offset", 0));
        TRY(fdt_property_u32(fdt, "value", 0x5555));
        TRY(fdt_end_node(fdt));

        TRY(fdt_begin_node(fdt, "reboot"));
        TRY(fdt_property_string(fdt, "compatible", "syscon-reboot"));
        TRY(fdt_property_u32(fdt, "regmap", DT_PHANDLE_TEST));
        TRY(fdt_property_u32(fdt, "offset", 0));
        TRY(fdt_property_u32(fdt, "value", 0x7777));
        return dt_err(fdt_end_node(fdt));
}

static int add_chosen(void *fdt, const FdtConfig *c) {
        uint8_t seed[32];
        char stdout_path[64];

        TRY(fdt_begin_node(fdt, "chosen"));
        if (c->bootargs)
                TRY(fdt_property_string(fdt, "bootargs", c->bootargs));
        snprintf(stdout_path, sizeof(stdout_path), "/soc/serial@%llx", (unsigned long long) MEMMAP_UART0_BASE);
        TRY(fdt_property_string(fdt, "stdout-path", stdout_path));
        if (c->initrd_end > c->initrd_start) {
                TRY(fdt_property_u64(fdt, "linux,initrd-start", c->initrd_start));
                TRY(fdt_property_u64(fdt, "linux,initrd-end", c->initrd_end));
        }
        /* Seeds the guest's RNG so early boot does not wait for entropy. */
        if (getrandom(seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t) sizeof(seed))
                TRY(fdt_property(fdt, "rng-seed", seed, sizeof(seed)));
        return dt_err(fdt_end_node(fdt));
}

static int build(void *fdt, size_t size, const FdtConfig *c) {
        TRY(fdt_create(fdt, (int) size));
        TRY(fdt_finish_reservemap(fdt));
        TRY(fdt_begin_node(fdt, ""));
        TRY(fdt_property_u32(fdt, "#address-cells", 2));
        TRY(fdt_property_u32(fdt, "#size-cells", 2));
        TRY(fdt_property_string(fdt, "compatible", "riscv-virtio"));
        TRY(fdt_property_string(fdt, "model", "orrery,rv64"));

        TRY(add_chosen(fdt, c));

        TRY(dt_begin_node_at(fdt, "memory", c->ram_base));
        TRY(fdt_property_string(fdt, "device_type", "memory"));
        TRY(dt_prop_reg(fdt, c->ram_base, c->ram_size));
        TRY(fdt_end_node(fdt));

        TRY(add_cpus(fdt, c));
        TRY(add_soc(fdt, c));
        TRY(add_power(fdt));

        TRY(fdt_end_node(fdt));
        return dt_err(fdt_finish(fdt));
}

int fdt_build(const FdtConfig *c, void **ret_fdt, size_t *ret_size) {
        for (size_t size = FDT_INITIAL_SIZE; size <= 16 * FDT_INITIAL_SIZE; size *= 2) {
                _cleanup_free_ void *fdt = calloc(1, size);
                int r;

                if (!fdt)
                        return -ENOMEM;
                r = build(fdt, size, c);
                if (r == -ENOSPC)
                        continue;
                if (r < 0)
                        return r;
                *ret_size = fdt_totalsize(fdt);
                *ret_fdt = TAKE_PTR(fdt);
                return 0;
        }
        return -E2BIG;
}
