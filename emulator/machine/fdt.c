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

enum {
        PHANDLE_CPU_INTC_BASE = 1,      /* one per hart: 1 .. num_harts */
        PHANDLE_PLIC = 100,
        PHANDLE_TEST = 101,
};

/* libfdt's sequential-write calls return negative FDT_ERR_*; fold them into -EINVAL/-ENOSPC. */
static int fdt_err(int r) {
        if (r >= 0)
                return 0;
        return r == -FDT_ERR_NOSPACE ? -ENOSPC : -EINVAL;
}

#define TRY(expr)                               \
        do {                                    \
                int _r = fdt_err(expr);         \
                if (_r < 0)                     \
                        return _r;              \
        } while (0)

static int prop_reg(void *fdt, uint64_t base, uint64_t size) {
        fdt64_t cells[2] = { cpu_to_fdt64(base), cpu_to_fdt64(size) };
        return fdt_property(fdt, "reg", cells, sizeof(cells));
}

static int prop_compatible(void *fdt, const char *list, size_t len) {
        /* 'list' holds NUL-separated strings, 'len' includes the final NUL. */
        return fdt_property(fdt, "compatible", list, (int) len);
}

static int begin_node_at(void *fdt, const char *name, uint64_t addr) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%s@%llx", name, (unsigned long long) addr);
        return fdt_begin_node(fdt, buf);
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
                TRY(fdt_property_string(fdt, "mmu-type", c->mmu_type));
                TRY(fdt_property_u32(fdt, "phandle", PHANDLE_CPU_INTC_BASE + 200 + i));

                TRY(fdt_begin_node(fdt, "interrupt-controller"));
                TRY(fdt_property_u32(fdt, "#interrupt-cells", 1));
                TRY(fdt_property(fdt, "interrupt-controller", NULL, 0));
                TRY(fdt_property_string(fdt, "compatible", "riscv,cpu-intc"));
                TRY(fdt_property_u32(fdt, "phandle", PHANDLE_CPU_INTC_BASE + i));
                TRY(fdt_end_node(fdt));

                TRY(fdt_end_node(fdt));
        }
        return fdt_err(fdt_end_node(fdt));
}

static int add_clint_and_plic(void *fdt, const FdtConfig *c) {
        _cleanup_free_ fdt32_t *clint_irqs = calloc(c->num_harts * 4, sizeof(fdt32_t));
        _cleanup_free_ fdt32_t *plic_irqs = calloc(c->num_harts * 4, sizeof(fdt32_t));

        if (!clint_irqs || !plic_irqs)
                return -ENOMEM;

        for (unsigned i = 0; i < c->num_harts; i++) {
                uint32_t intc = PHANDLE_CPU_INTC_BASE + i;
                clint_irqs[4 * i + 0] = cpu_to_fdt32(intc);
                clint_irqs[4 * i + 1] = cpu_to_fdt32(3);   /* M-mode software */
                clint_irqs[4 * i + 2] = cpu_to_fdt32(intc);
                clint_irqs[4 * i + 3] = cpu_to_fdt32(7);   /* M-mode timer */
                plic_irqs[4 * i + 0] = cpu_to_fdt32(intc);
                plic_irqs[4 * i + 1] = cpu_to_fdt32(11);   /* M-mode external */
                plic_irqs[4 * i + 2] = cpu_to_fdt32(intc);
                plic_irqs[4 * i + 3] = cpu_to_fdt32(9);    /* S-mode external */
        }

        static const char clint_compat[] = "sifive,clint0\0riscv,clint0";
        TRY(begin_node_at(fdt, "clint", MEMMAP_CLINT_BASE));
        TRY(prop_compatible(fdt, clint_compat, sizeof(clint_compat)));
        TRY(prop_reg(fdt, MEMMAP_CLINT_BASE, MEMMAP_CLINT_SIZE));
        TRY(fdt_property(fdt, "interrupts-extended", clint_irqs, (int) (c->num_harts * 4 * sizeof(fdt32_t))));
        TRY(fdt_end_node(fdt));

        static const char plic_compat[] = "sifive,plic-1.0.0\0riscv,plic0";
        TRY(begin_node_at(fdt, "plic", MEMMAP_PLIC_BASE));
        TRY(prop_compatible(fdt, plic_compat, sizeof(plic_compat)));
        TRY(prop_reg(fdt, MEMMAP_PLIC_BASE, MEMMAP_PLIC_SIZE));
        TRY(fdt_property_u32(fdt, "#address-cells", 0));
        TRY(fdt_property_u32(fdt, "#interrupt-cells", 1));
        TRY(fdt_property(fdt, "interrupt-controller", NULL, 0));
        TRY(fdt_property(fdt, "interrupts-extended", plic_irqs, (int) (c->num_harts * 4 * sizeof(fdt32_t))));
        TRY(fdt_property_u32(fdt, "riscv,ndev", PLIC_NUM_SOURCES - 1));
        TRY(fdt_property_u32(fdt, "phandle", PHANDLE_PLIC));
        return fdt_err(fdt_end_node(fdt));
}

static int add_simple_device(void *fdt, const char *name, uint64_t base, uint64_t size, const char *compat,
                             size_t compat_len, int irq) {
        TRY(begin_node_at(fdt, name, base));
        TRY(prop_compatible(fdt, compat, compat_len));
        TRY(prop_reg(fdt, base, size));
        if (irq >= 0) {
                TRY(fdt_property_u32(fdt, "interrupt-parent", PHANDLE_PLIC));
                TRY(fdt_property_u32(fdt, "interrupts", (uint32_t) irq));
        }
        return 0;
}

static int add_soc(void *fdt, const FdtConfig *c) {
        TRY(fdt_begin_node(fdt, "soc"));
        TRY(fdt_property_u32(fdt, "#address-cells", 2));
        TRY(fdt_property_u32(fdt, "#size-cells", 2));
        TRY(fdt_property_string(fdt, "compatible", "simple-bus"));
        TRY(fdt_property(fdt, "ranges", NULL, 0));

        TRY(add_clint_and_plic(fdt, c));

        static const char uart_compat[] = "ns16550a";
        TRY(add_simple_device(fdt, "serial", MEMMAP_UART0_BASE, MEMMAP_UART0_SIZE, uart_compat,
                              sizeof(uart_compat), IRQ_UART0));
        TRY(fdt_property_u32(fdt, "clock-frequency", 3686400));
        TRY(fdt_end_node(fdt));

        static const char rtc_compat[] = "google,goldfish-rtc";
        TRY(add_simple_device(fdt, "rtc", MEMMAP_RTC_BASE, MEMMAP_RTC_SIZE, rtc_compat, sizeof(rtc_compat), IRQ_RTC));
        TRY(fdt_end_node(fdt));

        static const char test_compat[] = "sifive,test1\0sifive,test0\0syscon";
        TRY(add_simple_device(fdt, "test", MEMMAP_TEST_BASE, MEMMAP_TEST_SIZE, test_compat, sizeof(test_compat), -1));
        TRY(fdt_property_u32(fdt, "phandle", PHANDLE_TEST));
        TRY(fdt_end_node(fdt));

        /* Listed from the highest address down, as "virt" does: Linux probes them in reverse. */
        static const char virtio_compat[] = "virtio,mmio";
        for (int i = MEMMAP_VIRTIO_COUNT - 1; i >= 0; i--) {
                uint64_t base = MEMMAP_VIRTIO_BASE + (uint64_t) i * MEMMAP_VIRTIO_SIZE;
                TRY(add_simple_device(fdt, "virtio_mmio", base, MEMMAP_VIRTIO_SIZE, virtio_compat,
                                      sizeof(virtio_compat), IRQ_VIRTIO_FIRST + i));
                TRY(fdt_end_node(fdt));
        }

        if (c->fb_size > 0) {
                static const char fb_compat[] = "simple-framebuffer";
                TRY(add_simple_device(fdt, "framebuffer", MEMMAP_FB_BASE, c->fb_size, fb_compat, sizeof(fb_compat), -1));
                TRY(fdt_property_u32(fdt, "width", c->fb_width));
                TRY(fdt_property_u32(fdt, "height", c->fb_height));
                TRY(fdt_property_u32(fdt, "stride", c->fb_stride));
                TRY(fdt_property_string(fdt, "format", "x8r8g8b8"));
                TRY(fdt_end_node(fdt));
        }

        return fdt_err(fdt_end_node(fdt));
}

static int add_power(void *fdt) {
        TRY(fdt_begin_node(fdt, "poweroff"));
        TRY(fdt_property_string(fdt, "compatible", "syscon-poweroff"));
        TRY(fdt_property_u32(fdt, "regmap", PHANDLE_TEST));
        TRY(fdt_property_u32(fdt, "offset", 0));
        TRY(fdt_property_u32(fdt, "value", 0x5555));
        TRY(fdt_end_node(fdt));

        TRY(fdt_begin_node(fdt, "reboot"));
        TRY(fdt_property_string(fdt, "compatible", "syscon-reboot"));
        TRY(fdt_property_u32(fdt, "regmap", PHANDLE_TEST));
        TRY(fdt_property_u32(fdt, "offset", 0));
        TRY(fdt_property_u32(fdt, "value", 0x7777));
        return fdt_err(fdt_end_node(fdt));
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
        return fdt_err(fdt_end_node(fdt));
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

        TRY(begin_node_at(fdt, "memory", c->ram_base));
        TRY(fdt_property_string(fdt, "device_type", "memory"));
        TRY(prop_reg(fdt, c->ram_base, c->ram_size));
        TRY(fdt_end_node(fdt));

        TRY(add_cpus(fdt, c));
        TRY(add_soc(fdt, c));
        TRY(add_power(fdt));

        TRY(fdt_end_node(fdt));
        return fdt_err(fdt_finish(fdt));
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
