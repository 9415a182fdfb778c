/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The guest physical address space: RAM, the framebuffer and the MMIO
 * windows of the devices. The CPU asks it for host pointers (RAM and
 * framebuffer, cached in the hart's TLB) and routes everything else to a
 * device's MmioOps.
 *
 * Threading: the layout is fixed before the CPU thread starts. RAM belongs
 * to the guest (the CPU thread writes it; device models read virtqueues on
 * the CPU thread too). The framebuffer's dirty bitmap is shared with the
 * event-loop thread: the CPU thread sets bits with atomic OR, the reader
 * takes them with atomic exchange (physmem_fb_take_dirty).
 *
 * RAM has a dirty bitmap too, for live migration, kept only while
 * 'ram_dirty_on': every writer of RAM (the store path before it installs a
 * write TLB entry, the page walker's A/D updates, devices when they hand a
 * buffer back) sets the page's bit with atomic OR; the migration thread
 * takes words with atomic exchange. Off, it costs the slow paths one
 * relaxed load and the fast paths nothing.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/device.h"

#define PHYSMEM_MAX_REGIONS 32

typedef struct MmioRegion {
        uint64_t base;
        uint64_t size;
        unsigned access_sizes;          /* DEVICE_ACCESS_*: other sizes read 0, writes ignored */
        const MmioOps *ops;
        void *opaque;
} MmioRegion;

typedef struct PhysMem {
        uint8_t *ram;
        uint64_t ram_base;
        uint64_t ram_size;

        uint8_t *fb;                    /* NULL when there is no framebuffer */
        uint64_t fb_base;
        uint64_t fb_size;
        _Atomic uint64_t *fb_dirty;     /* one bit per framebuffer page */
        size_t fb_dirty_words;

        _Atomic uint64_t *ram_dirty;    /* one bit per RAM page; allocated by the first physmem_ram_dirty_start() */
        size_t ram_dirty_words;
        _Atomic bool ram_dirty_on;

        MmioRegion regions[PHYSMEM_MAX_REGIONS];
        unsigned n_regions;
} PhysMem;

/* Maps a device's window; accesses of any size reach it. */
int physmem_add_mmio(PhysMem *pm, uint64_t base, uint64_t size, const MmioOps *ops, void *opaque);
/* The same, for a device that takes only the 'access_sizes' (DEVICE_ACCESS_*). */
int physmem_add_mmio_sized(PhysMem *pm, uint64_t base, uint64_t size, unsigned access_sizes, const MmioOps *ops,
                           void *opaque);

/*
 * Host pointer for [paddr, paddr+len) when it lies wholly inside RAM or the
 * framebuffer, else NULL. For the framebuffer, *ret_fb_page is set to the
 * page index (else -1).
 */
static inline uint8_t *physmem_host_ptr(const PhysMem *pm, uint64_t paddr, uint64_t len, int64_t *ret_fb_page) {
        if (paddr - pm->ram_base < pm->ram_size && len <= pm->ram_size - (paddr - pm->ram_base)) {
                *ret_fb_page = -1;
                return pm->ram + (paddr - pm->ram_base);
        }
        if (pm->fb && paddr - pm->fb_base < pm->fb_size && len <= pm->fb_size - (paddr - pm->fb_base)) {
                *ret_fb_page = (int64_t) ((paddr - pm->fb_base) >> 12);
                return pm->fb + (paddr - pm->fb_base);
        }
        return NULL;
}

static inline void physmem_fb_mark_dirty(PhysMem *pm, uint64_t page) {
        atomic_fetch_or_explicit(&pm->fb_dirty[page / 64], 1ULL << (page % 64), memory_order_relaxed);
}

/* Marks framebuffer pages dirty for a store at fb offset [off, off+len). */
void physmem_fb_mark_range(PhysMem *pm, uint64_t offset, uint64_t len);

/* Atomically takes one word (64 pages) of the dirty bitmap. */
static inline uint64_t physmem_fb_take_dirty(PhysMem *pm, size_t word) {
        return atomic_exchange_explicit(&pm->fb_dirty[word], 0, memory_order_relaxed);
}

/*
 * RAM dirty tracking. start clears the bitmap and turns tracking on
 * (-ENOMEM); the caller then makes every hart drop its write TLB entries
 * so that no store skips the bitmap. stop turns it off; free releases it
 * (when no thread uses the PhysMem any more).
 */
int physmem_ram_dirty_start(PhysMem *pm);
void physmem_ram_dirty_stop(PhysMem *pm);
void physmem_ram_dirty_free(PhysMem *pm);

/* Marks the RAM pages of guest physical [paddr, paddr+len) dirty while tracking; anything else is ignored. */
static inline void physmem_ram_mark_range(const PhysMem *pm, uint64_t paddr, uint64_t len) {
        if (!atomic_load_explicit(&pm->ram_dirty_on, memory_order_acquire) || len == 0)
                return;
        uint64_t off = paddr - pm->ram_base;
        if (off >= pm->ram_size)
                return;
        uint64_t last = len - 1 < pm->ram_size - off ? off + len - 1 : pm->ram_size - 1;
        for (uint64_t page = off >> 12; page <= last >> 12; page++)
                atomic_fetch_or_explicit(&pm->ram_dirty[page / 64], 1ULL << (page % 64), memory_order_relaxed);
}

/* The same for a host pointer into RAM (devices hold those). */
static inline void physmem_ram_mark_host(const PhysMem *pm, const void *p, uint64_t len) {
        if (pm && pm->ram && (const uint8_t *) p >= pm->ram)
                physmem_ram_mark_range(pm, pm->ram_base + (uint64_t) ((const uint8_t *) p - pm->ram), len);
}

/* Atomically takes one word (64 pages) of the RAM dirty bitmap. */
static inline uint64_t physmem_ram_take_dirty(PhysMem *pm, size_t word) {
        return atomic_exchange_explicit(&pm->ram_dirty[word], 0, memory_order_relaxed);
}

/* MMIO. Return 0, or -EFAULT if no device claims the address. */
int physmem_mmio_read(PhysMem *pm, uint64_t paddr, unsigned size, uint64_t *ret_value);
int physmem_mmio_write(PhysMem *pm, uint64_t paddr, unsigned size, uint64_t value);

/* Whether any MMIO region overlaps the page containing paddr. */
bool physmem_page_has_mmio(const PhysMem *pm, uint64_t paddr);
