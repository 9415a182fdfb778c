/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A fake guest for the virtio unit tests: malloc'ed RAM at 0x80000000 and a
 * framebuffer at 0x40000000 in a PhysMem, a level-recording IrqLine, and
 * just enough of a virtio-mmio driver (register access, feature
 * negotiation, split-ring queues laid out in guest RAM) to play Linux's
 * part against a device — or to misbehave on purpose.
 *
 * The framebuffer is filled with GUEST_FB_PATTERN; guest_fb_intact() checks
 * that no device wrote into it. RAM is exactly GUEST_RAM_SIZE bytes of heap,
 * so under ASan any device access past its end is caught.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/virtio_mmio.h"
#include "machine/physmem.h"

#define GUEST_RAM_BASE   0x80000000ULL
#define GUEST_RAM_SIZE   (16ULL << 20)
#define GUEST_FB_BASE    0x40000000ULL
#define GUEST_FB_SIZE    0x10000ULL
#define GUEST_FB_PATTERN 0xa5
#define GUEST_MMIO_BASE  0x10001000ULL  /* where the slot would be mapped */

typedef struct Guest {
        PhysMem mem;
        VirtioMmio *dev;
        bool irq_level;
        unsigned irq_raises;            /* low → high transitions */
        unsigned irq_redundant;         /* set() calls that did not change the level */
        uint64_t next_alloc;            /* bump allocator, guest-physical */
} Guest;

typedef struct GuestQueue {
        unsigned index;
        uint16_t num;
        uint64_t desc, avail, used;     /* guest-physical */
        uint16_t avail_idx;             /* next avail->idx to publish */
        uint16_t last_used;             /* next used->ring entry to read */
        uint16_t next_desc;             /* round-robin descriptor slot for guest_add_buf */
} GuestQueue;

int guest_init(Guest *g);
void guest_done(Guest *g);
IrqLine guest_irq(Guest *g);
void guest_attach(Guest *g, VirtioMmio *dev);

uint32_t guest_rd(Guest *g, uint64_t offset);
void guest_wr(Guest *g, uint64_t offset, uint32_t value);
uint64_t guest_cfg_rd(Guest *g, uint64_t offset, unsigned size);
void guest_cfg_wr(Guest *g, uint64_t offset, uint64_t value, unsigned size);

/* Zeroed guest memory; returns its guest-physical address (0 when RAM is exhausted). */
uint64_t guest_alloc(Guest *g, uint64_t size, uint64_t align);
/* Host pointer for a guest-physical RAM address (the test's own view). */
void *guest_ptr(Guest *g, uint64_t gpa);
bool guest_fb_intact(const Guest *g);

/* Reset, ACKNOWLEDGE, DRIVER, accept 'accept' & offered features, FEATURES_OK. Returns Status read back. */
uint32_t guest_negotiate(Guest *g, uint64_t accept);
uint64_t guest_device_features(Guest *g);
/* Sets DRIVER_OK; returns Status read back. */
uint32_t guest_driver_ok(Guest *g);
/* Reads InterruptStatus, acknowledges it, returns it. */
uint32_t guest_ack(Guest *g);

/* Allocates rings in RAM and enables the queue; returns QueueReady read back. */
bool guest_queue_setup(Guest *g, GuestQueue *q, unsigned index, uint16_t num);
/* The same with the driver's choice of (possibly hostile) size and addresses. */
bool guest_queue_setup_at(Guest *g, GuestQueue *q, unsigned index, uint32_t num,
                          uint64_t desc, uint64_t avail, uint64_t used);

void guest_desc(Guest *g, GuestQueue *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next);
/* Puts head in the next avail slot and bumps avail->idx (release). */
void guest_publish(Guest *g, GuestQueue *q, uint16_t head);
/* Writes avail->idx directly (for hostile jumps). */
void guest_set_avail_idx(Guest *g, GuestQueue *q, uint16_t idx);
void guest_set_avail_flags(Guest *g, GuestQueue *q, uint16_t flags);
void guest_kick(Guest *g, GuestQueue *q);
/* One-descriptor chain in the next round-robin slot, published. Returns the head. */
uint16_t guest_add_buf(Guest *g, GuestQueue *q, uint64_t addr, uint32_t len, bool writable);

uint16_t guest_used_idx(Guest *g, GuestQueue *q);
/* Next used entry, if any. */
bool guest_get_used(Guest *g, GuestQueue *q, uint32_t *ret_id, uint32_t *ret_len);

static inline bool guest_needs_reset(Guest *g) {
        return guest_rd(g, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

/* A small deterministic PRNG (xorshift64*), for the fuzz loops. */
static inline uint64_t rng_next(uint64_t *state) {
        uint64_t x = *state;

        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        return x * 0x2545f4914f6cdd1dULL;
}
