/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <stdlib.h>

#include "machine/physmem.h"

int physmem_add_mmio(PhysMem *pm, uint64_t base, uint64_t size, const MmioOps *ops, void *opaque) {
        return physmem_add_mmio_sized(pm, base, size, DEVICE_ACCESS_ANY, ops, opaque);
}

int physmem_add_mmio_sized(PhysMem *pm, uint64_t base, uint64_t size, unsigned access_sizes, const MmioOps *ops,
                           void *opaque) {
        if (pm->n_regions >= PHYSMEM_MAX_REGIONS || size == 0 || base + size < base)
                return -ENOSPC;
        for (unsigned i = 0; i < pm->n_regions; i++) {
                const MmioRegion *r = &pm->regions[i];
                if (base < r->base + r->size && r->base < base + size)
                        return -EEXIST;
        }
        pm->regions[pm->n_regions++] = (MmioRegion) {
                .base = base,
                .size = size,
                .access_sizes = access_sizes,
                .ops = ops,
                .opaque = opaque,
        };
        return 0;
}

static const MmioRegion *find_region(const PhysMem *pm, uint64_t paddr, unsigned size) {
        for (unsigned i = 0; i < pm->n_regions; i++) {
                const MmioRegion *r = &pm->regions[i];
                if (paddr - r->base < r->size && size <= r->size - (paddr - r->base))
                        return r;
        }
        return NULL;
}

int physmem_mmio_read(PhysMem *pm, uint64_t paddr, unsigned size, uint64_t *ret_value) {
        const MmioRegion *r = find_region(pm, paddr, size);

        if (!r)
                return -EFAULT;
        if (!device_access_allowed(r->access_sizes, size)) {
                *ret_value = 0;
                return 0;
        }
        *ret_value = r->ops->read ? r->ops->read(r->opaque, paddr - r->base, size) : 0;
        if (size < 8)
                *ret_value &= (1ULL << (8 * size)) - 1;
        return 0;
}

int physmem_mmio_write(PhysMem *pm, uint64_t paddr, unsigned size, uint64_t value) {
        const MmioRegion *r = find_region(pm, paddr, size);

        if (!r)
                return -EFAULT;
        if (!device_access_allowed(r->access_sizes, size))
                return 0;
        if (size < 8)
                value &= (1ULL << (8 * size)) - 1;
        if (r->ops->write)
                r->ops->write(r->opaque, paddr - r->base, value, size);
        return 0;
}

bool physmem_page_has_mmio(const PhysMem *pm, uint64_t paddr) {
        uint64_t page = paddr & ~0xfffULL;

        for (unsigned i = 0; i < pm->n_regions; i++) {
                const MmioRegion *r = &pm->regions[i];
                if (page < r->base + r->size && r->base < page + 0x1000)
                        return true;
        }
        return false;
}

void physmem_fb_mark_range(PhysMem *pm, uint64_t offset, uint64_t len) {
        if (!pm->fb_dirty || len == 0 || offset >= pm->fb_size)
                return;
        uint64_t last = offset + len - 1 < pm->fb_size ? offset + len - 1 : pm->fb_size - 1;
        for (uint64_t page = offset >> 12; page <= last >> 12; page++)
                physmem_fb_mark_dirty(pm, page);
}

int physmem_ram_dirty_start(PhysMem *pm) {
        size_t words = (size_t) ((pm->ram_size / 4096 + 63) / 64);

        if (!pm->ram_dirty) {
                pm->ram_dirty = calloc(words ? words : 1, sizeof(uint64_t));
                if (!pm->ram_dirty)
                        return -ENOMEM;
                pm->ram_dirty_words = words;
        }
        for (size_t i = 0; i < pm->ram_dirty_words; i++)
                atomic_store_explicit(&pm->ram_dirty[i], 0, memory_order_relaxed);
        atomic_store_explicit(&pm->ram_dirty_on, true, memory_order_release);
        return 0;
}

void physmem_ram_dirty_stop(PhysMem *pm) {
        atomic_store_explicit(&pm->ram_dirty_on, false, memory_order_release);
}

void physmem_ram_dirty_free(PhysMem *pm) {
        physmem_ram_dirty_stop(pm);
        free((void *) pm->ram_dirty);
        pm->ram_dirty = NULL;
        pm->ram_dirty_words = 0;
}
