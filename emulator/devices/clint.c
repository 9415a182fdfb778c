/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libfdt.h>

#include "devices/clint.h"
#include "machine/fdt.h"
#include "machine/memmap.h"

#define CLINT_MSIP 0x0000
#define CLINT_MTIMECMP 0x4000
#define CLINT_MTIME 0xbff8

void clint_init(Clint *c, Hart *const *harts, unsigned num_harts, uint64_t (*read_time)(void *), void *time_opaque) {
        memset(c, 0, sizeof(*c));
        c->harts = harts;
        c->num_harts = num_harts < CLINT_MAX_HARTS ? num_harts : CLINT_MAX_HARTS;
        c->read_time = read_time;
        c->time_opaque = time_opaque;
        clint_reset(c);
}

void clint_reset(Clint *c) {
        for (unsigned i = 0; i < c->num_harts; i++) {
                c->mtimecmp[i] = UINT64_MAX;
                c->msip[i] = 0;
                hart_set_irq(c->harts[i], MIP_MSIP | MIP_MTIP, false);
        }
}

void clint_update_timers(Clint *c) {
        uint64_t now = c->read_time(c->time_opaque);

        for (unsigned i = 0; i < c->num_harts; i++)
                hart_set_irq(c->harts[i], MIP_MTIP, now >= c->mtimecmp[i]);
}

uint64_t clint_next_deadline(const Clint *c) {
        uint64_t deadline = UINT64_MAX;

        for (unsigned i = 0; i < c->num_harts; i++)
                if (c->mtimecmp[i] < deadline)
                        deadline = c->mtimecmp[i];
        return deadline;
}

/* Accesses of 4 or 8 bytes; a 4-byte access reads or writes half of a 64-bit register. */
static uint64_t clint_read(void *opaque, uint64_t offset, unsigned size) {
        Clint *c = opaque;
        uint64_t reg, value;
        unsigned shift;

        if (size != 4 && size != 8)
                return 0;
        if (offset < CLINT_MSIP + 4 * c->num_harts)
                return size == 4 && !(offset & 3) ? c->msip[offset / 4] : 0;

        if (offset >= CLINT_MTIMECMP && offset < CLINT_MTIMECMP + 8 * c->num_harts) {
                reg = (offset - CLINT_MTIMECMP) / 8;
                value = c->mtimecmp[reg];
        } else if (offset >= CLINT_MTIME && offset < CLINT_MTIME + 8) {
                value = c->read_time(c->time_opaque);
        } else
                return 0;

        shift = (offset & 7) * 8;
        if (size == 8)
                return shift ? 0 : value;
        return (value >> shift) & 0xffffffff;
}

static void clint_write(void *opaque, uint64_t offset, uint64_t value, unsigned size) {
        Clint *c = opaque;

        if (size != 4 && size != 8)
                return;
        if (offset < CLINT_MSIP + 4 * c->num_harts) {
                if (size != 4 || (offset & 3))
                        return;
                unsigned h = offset / 4;
                c->msip[h] = value & 1;
                hart_set_irq(c->harts[h], MIP_MSIP, value & 1);
                return;
        }
        if (offset >= CLINT_MTIMECMP && offset < CLINT_MTIMECMP + 8 * c->num_harts) {
                unsigned h = (offset - CLINT_MTIMECMP) / 8, shift = (offset & 7) * 8;
                if (size == 8) {
                        if (shift)
                                return;
                        c->mtimecmp[h] = value;
                } else {
                        uint64_t mask = 0xffffffffULL << shift;
                        c->mtimecmp[h] = (c->mtimecmp[h] & ~mask) | ((value & 0xffffffff) << shift);
                }
                hart_set_irq(c->harts[h], MIP_MTIP, c->read_time(c->time_opaque) >= c->mtimecmp[h]);
        }
        /* mtime is read-only: writes are ignored. */
}

const MmioOps clint_mmio_ops = {
        .read = clint_read,
        .write = clint_write,
};

/* ---- device descriptor ---- */

static int clint_create(const DeviceContext *ctx, void **ret) {
        Clint *c;

        if (!ctx->host->mtime)
                return -EINVAL;
        c = malloc(sizeof(Clint));
        if (!c)
                return -ENOMEM;
        clint_init(c, ctx->host->harts, ctx->host->num_harts, ctx->host->mtime, ctx->host->opaque);
        *ret = c;
        return 0;
}

static void clint_free(void *dev) {
        free(dev);
}

static void clint_device_reset(void *dev) {
        clint_reset(dev);
}

static int clint_fdt_node(void *dev, const DeviceContext *ctx, void *fdt) {
        static const char compat[] = "sifive,clint0\0riscv,clint0";
        int r;

        DT_TRY(dt_begin_device(fdt, "clint", ctx, compat, sizeof(compat)));
        r = dt_prop_hart_interrupts(fdt, ctx->host->num_harts, 3, 7);  /* M-mode software, timer */
        if (r < 0)
                return r;
        return dt_err(fdt_end_node(fdt));
}

static int clint_save(void *dev, StateWriter *w) {
        Clint *c = dev;

        state_put_u32(w, c->num_harts);
        for (unsigned i = 0; i < c->num_harts; i++) {
                state_put_u64(w, c->mtimecmp[i]);
                state_put_u32(w, c->msip[i]);
        }
        return state_writer_error(w);
}

static int clint_load(void *dev, StateReader *r) {
        Clint *c = dev;
        uint64_t mtimecmp[CLINT_MAX_HARTS];
        uint32_t msip[CLINT_MAX_HARTS], n;

        state_get_u32_max(r, c->num_harts, &n);
        if (state_reader_error(r) == 0 && n != c->num_harts)
                return -ERANGE;
        for (unsigned i = 0; i < c->num_harts; i++) {
                state_get_u64(r, &mtimecmp[i]);
                state_get_u32_max(r, 1, &msip[i]);
        }
        if (state_reader_error(r) < 0)
                return state_reader_error(r);
        for (unsigned i = 0; i < c->num_harts; i++) {
                c->mtimecmp[i] = mtimecmp[i];
                c->msip[i] = msip[i];
                hart_set_irq(c->harts[i], MIP_MSIP, msip[i]);
        }
        clint_update_timers(c);
        return 0;
}

const DeviceDescriptor clint_device = {
        .name = "clint",
        .base = MEMMAP_CLINT_BASE,
        .size = MEMMAP_CLINT_SIZE,
        .access_sizes = DEVICE_ACCESS_4 | DEVICE_ACCESS_8,
        .mmio = &clint_mmio_ops,
        .create = clint_create,
        .free = clint_free,
        .reset = clint_device_reset,
        .fdt_node = clint_fdt_node,
        .save = clint_save,
        .load = clint_load,
};
