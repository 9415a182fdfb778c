/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * virtio-blk (DeviceID 2, virtio 1.2 section 5.2) on a virtio-mmio
 * transport, backed by a raw image (block/image.h).
 *
 * Features offered: SEG_MAX (queue size - 2), BLK_SIZE (512), FLUSH, RO
 * when the image is readonly, DISCARD and WRITE_ZEROES when it was opened
 * with discard=on. One request queue of 256 entries.
 *
 * Requests (header: le32 type, le32 reserved, le64 sector; data; one
 * status byte in the last writable byte of the chain):
 *   IN, OUT         sector * 512 + length inside the image, the data length
 *                   a multiple of 512, or VIRTIO_BLK_S_IOERR (the wrap of
 *                   sector * 512 + length is checked). OUT on a readonly
 *                   image: IOERR.
 *   FLUSH           fdatasync() of the image, before the status is written.
 *   GET_ID          the serial (up to 20 bytes, NUL-padded).
 *   DISCARD,        one to 256 16-byte segments {le64 sector, le32 count,
 *   WRITE_ZEROES    le32 flags}, each in range; holes are punched. UNSUPP
 *                   when discard is off, or for flags the type does not
 *                   define.
 *   anything else   VIRTIO_BLK_S_UNSUPP.
 * A header shorter than 16 device-readable bytes (in a write-only
 * descriptor, say) is IOERR; a chain without a writable byte has no room
 * for a status and is returned with length 0.
 *
 * Threading: requests are popped on the thread that notified (the CPU
 * thread) under the device lock, checked there, and the I/O itself runs on
 * BLOCK_WORKERS_DEFAULT worker threads (block/workers.h), so requests
 * complete out of order and the CPU thread never waits on the image. A
 * worker writes the data into guest RAM without the lock, then takes the
 * device lock to write the status, push the used entry and raise the
 * interrupt. A completion for a chain popped before a device reset is
 * dropped (the driver has forgotten it).
 */

#include <stdint.h>

#include "block/image.h"
#include "devices/device.h"
#include "devices/virtio_mmio.h"
#include "machine/physmem.h"

#define VIRTIO_ID_BLOCK 2U

#define VIRTIO_BLK_F_SIZE_MAX     1
#define VIRTIO_BLK_F_SEG_MAX      2
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_BLK_SIZE     6
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_DISCARD      13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define VIRTIO_BLK_T_IN           0U
#define VIRTIO_BLK_T_OUT          1U
#define VIRTIO_BLK_T_FLUSH        4U
#define VIRTIO_BLK_T_GET_ID       8U
#define VIRTIO_BLK_T_DISCARD      11U
#define VIRTIO_BLK_T_WRITE_ZEROES 13U

#define VIRTIO_BLK_S_OK           0U
#define VIRTIO_BLK_S_IOERR        1U
#define VIRTIO_BLK_S_UNSUPP       2U

#define VIRTIO_BLK_ID_BYTES       20U
#define VIRTIO_BLK_QUEUE_SIZE     256U
#define VIRTIO_BLK_CONFIG_SIZE    60U
#define VIRTIO_BLK_MAX_DISCARD_SEG 256U

typedef struct VirtioBlk VirtioBlk;

typedef struct VirtioBlkStats {
        uint64_t read_ops, read_bytes;
        uint64_t write_ops, write_bytes;
        uint64_t flush_ops;
        uint64_t errors;                /* requests answered IOERR or UNSUPP */
} VirtioBlkStats;

/*
 * Creates the device, its transport and its worker threads. The image stays
 * the caller's and must outlive the device; serial may be NULL ("orrery").
 * Returns 0 or a negative errno.
 */
int virtio_blk_new(PhysMem *mem, const IrqLine *irq, BlockImage *image, const char *serial, VirtioBlk **ret);
/* Finishes the requests in flight, stops the workers. No other thread may call in. Returns NULL. */
VirtioBlk *virtio_blk_free(VirtioBlk *dev);
static inline void virtio_blk_freep(VirtioBlk **dev) {
        if (*dev)
                virtio_blk_free(*dev);
}

VirtioMmio *virtio_blk_transport(VirtioBlk *dev);
void virtio_blk_reset(VirtioBlk *dev);

/* Waits until no request is being carried out (tests). Not with the device lock held. */
void virtio_blk_drain(VirtioBlk *dev);

/*
 * Grows the image (block_image_resize(), same errors) and the capacity the
 * guest sees, and raises a configuration-change interrupt so that its
 * driver reads the new capacity. Any thread, not with the device lock held.
 */
int virtio_blk_resize(VirtioBlk *dev, uint64_t size);

/* Any thread. */
void virtio_blk_stats(VirtioBlk *dev, VirtioBlkStats *ret);
/* The serial (the drive's id), NUL-terminated. Constant. */
const char *virtio_blk_serial(VirtioBlk *dev);

/*
 * For the machine's device table: one per disk, as the slot's variant
 * (&v->type). The type's create() finds the image and serial through it.
 * The backend has no state of its own to save beyond the transport's
 * (requests in flight are not saved: save with the CPU stopped and the
 * disk idle).
 */
typedef struct VirtioBlkVariant {
        VirtioDeviceType type;          /* first: the slot's variant points here */
        BlockImage *image;
        const char *serial;
} VirtioBlkVariant;

void virtio_blk_variant_init(VirtioBlkVariant *v, BlockImage *image, const char *serial);
