/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The device side of a split virtqueue (virtio 1.2, section 2.7), written
 * for a hostile driver: every address, index, length and flag the guest put
 * in its rings is checked before it is used, and every host pointer handed
 * out lies wholly inside guest RAM (never the framebuffer, never MMIO).
 *
 *   descriptor table  16 * num bytes, 16-byte aligned   (driver writes)
 *   driver area       6 + 2 * num bytes, 2-byte aligned (avail ring: flags, idx, ring[num], used_event)
 *   device area       6 + 8 * num bytes, 4-byte aligned (used ring: flags, idx, ring[num] of {id, len}, avail_event)
 *
 * What counts as a driver error (the queue is then "broken": on_error runs
 * once, the transport sets DEVICE_NEEDS_RESET, and the queue is not touched
 * again until it is reset or re-enabled):
 *   - a ring not wholly in RAM, misaligned, or num not a power of 2 in
 *     1..num_max (checked by virtqueue_enable(), which fails instead);
 *   - avail->idx more than num ahead of the last entry consumed;
 *   - a head or next index >= num;
 *   - a chain of more than num descriptors (this also catches loops);
 *   - an INDIRECT descriptor (VIRTIO_F_INDIRECT_DESC is never offered);
 *   - a buffer not wholly in RAM;
 *   - a device-readable descriptor after a device-writable one;
 *   - more than UINT32_MAX bytes in either direction of one chain;
 *   - a chain the device cannot use at all (the backend decides, e.g. an
 *     eventq buffer with no writable byte) via virtqueue_fail().
 * The device only ever writes into descriptors marked VIRTQ_DESC_F_WRITE
 * (virtqueue_chain_write() skips the others) and into the used ring.
 *
 * VIRTIO_F_EVENT_IDX is not offered: used_event/avail_event are ignored and
 * interrupts follow VIRTQ_AVAIL_F_NO_INTERRUPT only.
 *
 * Memory ordering: the driver runs on a guest hart while device code may run
 * on the event-loop thread. avail->idx is read with acquire semantics before
 * the ring entries and descriptors it publishes; used->idx is written with
 * release semantics after the used entries and the data written into the
 * buffers; a full fence separates the used->idx store from the read of
 * avail->flags. Descriptors are copied into locals once and only the copies
 * are checked and used, so a driver rewriting them concurrently cannot make
 * the device act on a value it did not check.
 *
 * Threading: a VirtQueue has no lock of its own. Every function here is
 * called with the owning device's lock held (see virtio_mmio.h). Host
 * pointers in a VirtqChain stay valid for the life of guest RAM, so a
 * backend may drop its lock while it reads a chain, as long as it pushes it
 * back only under the lock (virtqueue_push() refuses a chain popped before
 * the last reset/enable: see 'generation').
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "machine/physmem.h"

/* The largest QueueNumMax a device may offer; bounds the segments of a chain. */
#define VIRTQ_MAX_SIZE 256U

#define VIRTQ_DESC_F_NEXT       1U
#define VIRTQ_DESC_F_WRITE      2U
#define VIRTQ_DESC_F_INDIRECT   4U

#define VIRTQ_AVAIL_F_NO_INTERRUPT 1U

#define VIRTQ_DESC_ALIGN  16U
#define VIRTQ_AVAIL_ALIGN 2U
#define VIRTQ_USED_ALIGN  4U

typedef struct VirtQueue VirtQueue;

typedef void (*VirtQueueErrorFn)(void *opaque, VirtQueue *vq, int error);

struct VirtQueue {
        /* Constant after virtqueue_init(). */
        const PhysMem *mem;
        unsigned index;
        uint16_t num_max;               /* QueueNumMax; 0 = the queue does not exist */
        VirtQueueErrorFn on_error;
        void *opaque;

        /* Written by the transport from the driver's register writes while !ready. */
        uint32_t num;                   /* QueueNum as written (checked by virtqueue_enable) */
        uint64_t desc_addr;
        uint64_t avail_addr;
        uint64_t used_addr;

        bool ready;                     /* QueueReady as the driver reads it */
        bool broken;                    /* a driver error was found: hands off until reset */

        /* Valid while ready: host pointers into guest RAM and the device's indices. */
        uint8_t *desc;
        uint8_t *avail;
        uint8_t *used;
        uint16_t last_avail;            /* next avail->ring slot to consume */
        uint16_t used_idx;              /* the device's copy of used->idx */
        uint32_t generation;            /* bumped by reset and enable */
};

/* One guest buffer: a host pointer into RAM and its length. */
typedef struct VirtqSeg {
        uint8_t *ptr;
        uint32_t len;
} VirtqSeg;

/*
 * A popped descriptor chain. seg[0..n_out) are device-readable,
 * seg[n_out..n_out+n_in) device-writable (the spec's order, enforced).
 */
typedef struct VirtqChain {
        uint16_t head;
        uint32_t generation;
        unsigned n_out;
        unsigned n_in;
        uint32_t out_len;
        uint32_t in_len;
        VirtqSeg seg[VIRTQ_MAX_SIZE];
} VirtqChain;

/* num_max must be 0 or a power of 2 <= VIRTQ_MAX_SIZE. Returns 0 or -EINVAL. */
int virtqueue_init(VirtQueue *vq, const PhysMem *mem, unsigned index, uint16_t num_max,
                   VirtQueueErrorFn on_error, void *opaque);

/* Back to the power-on state: not ready, not broken, registers cleared. */
void virtqueue_reset(VirtQueue *vq);

/*
 * QueueReady = 1: checks num and the three areas and, if all is well, makes
 * the queue ready with fresh indices. Returns 0, or -EINVAL (num, alignment)
 * or -EFAULT (an area not wholly in RAM) and leaves the queue not ready.
 */
int virtqueue_enable(VirtQueue *vq);

/* QueueReady = 0. */
void virtqueue_disable(VirtQueue *vq);

/* Whether the queue can be used: ready and not broken. */
static inline bool virtqueue_usable(const VirtQueue *vq) {
        return vq->ready && !vq->broken;
}

/*
 * Marks the queue broken (once) and reports 'error' through on_error.
 * Returns 'error' (negative) so callers can "return virtqueue_fail(...)".
 */
int virtqueue_fail(VirtQueue *vq, int error);

/*
 * Takes the next available chain. Returns 1 and fills *ret, 0 when the
 * driver has published nothing new (or the queue is not usable), or a
 * negative errno after a driver error (the queue is then broken). *ret is
 * scratch space (a VirtqChain is 4 KiB, kept in the device, not copied):
 * its contents mean something only after a return of 1.
 */
int virtqueue_pop(VirtQueue *vq, VirtqChain *ret);

/*
 * Gives back the last 'n' chains popped, untouched: the next pops return
 * them again. Only for chains not pushed, with nothing popped since; a
 * no-op on a queue that is not usable (reset or broken since: the driver
 * starts over anyway).
 */
void virtqueue_unpop(VirtQueue *vq, unsigned n);

/* Copies up to len bytes from the readable part, from byte 'offset' on. Returns the count. */
size_t virtqueue_chain_read(const VirtqChain *chain, size_t offset, void *buf, size_t len);

/* Copies up to len bytes into the writable part, from byte 'offset' on. Returns the count. */
size_t virtqueue_chain_write(const VirtqChain *chain, size_t offset, const void *buf, size_t len);

/*
 * Returns a chain to the driver with 'written' bytes (clamped to in_len).
 * Returns 0, or -ESTALE when the queue was reset or re-enabled since the
 * chain was popped (nothing is written), or -EIO when it is not usable.
 */
int virtqueue_push(VirtQueue *vq, const VirtqChain *chain, uint32_t written);

/* After pushes: whether the driver wants a used-buffer notification. */
bool virtqueue_should_notify(VirtQueue *vq);
