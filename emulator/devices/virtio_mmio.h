/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The virtio-mmio transport, version 2 ("modern", virtio 1.2 section 4.2)
 * only, in one MEMMAP_VIRTIO_SIZE window per slot. A slot without a backend
 * (ops == NULL) answers MagicValue, Version 2, DeviceID 0 and VendorID, and
 * nothing else: Linux skips it.
 *
 *   0x000 R  MagicValue "virt"          0x050 W  QueueNotify
 *   0x004 R  Version (2)                0x060 R  InterruptStatus
 *   0x008 R  DeviceID                   0x064 W  InterruptACK
 *   0x00c R  VendorID ("ORRY")          0x070 RW Status
 *   0x010 R  DeviceFeatures             0x080 W  QueueDescLow    0x084 High
 *   0x014 W  DeviceFeaturesSel          0x090 W  QueueDriverLow  0x094 High
 *   0x020 W  DriverFeatures             0x0a0 W  QueueDeviceLow  0x0a4 High
 *   0x024 W  DriverFeaturesSel          0x0ac W  SHMSel
 *   0x030 W  QueueSel                   0x0b0 R  SHMLenLow/High, 0x0b8 SHMBaseLow/High: ~0 (no regions)
 *   0x034 R  QueueNumMax                0x0fc R  ConfigGeneration
 *   0x038 W  QueueNum                   0x100+   device configuration space
 *   0x044 RW QueueReady
 *
 * Registers below 0x100 are decoded only for naturally aligned 4-byte
 * accesses; the configuration space takes 1, 2, 4 and 8-byte accesses
 * (little-endian) inside the backend's config_size. Everything else reads 0
 * and ignores writes. Write-only registers read 0.
 *
 * Features: the backend's device-specific bits (0..23) plus
 * VIRTIO_F_VERSION_1, always. Nothing else (no INDIRECT_DESC, EVENT_IDX,
 * packed ring, RING_RESET). The driver's features are frozen once
 * FEATURES_OK is set; FEATURES_OK is refused (reads back clear) when the
 * driver accepted a bit not offered or did not accept VERSION_1.
 *
 * Status: writing 0 resets the device (queues, features, InterruptStatus,
 * backend state). Other writes can only add bits (the driver cannot clear
 * one except by reset); DRIVER_OK is refused without FEATURES_OK;
 * DEVICE_NEEDS_RESET (0x40) is owned by the device. Queues are processed
 * only once DRIVER_OK is set.
 *
 * Queues: QueueNum and the QueueDesc, QueueDriver and QueueDevice address
 * halves are latched while the selected queue is not ready and ignored
 * while it is. QueueReady = 1
 * checks them (virtqueue_enable); a bad queue (size not a power of 2 or
 * above QueueNumMax, misaligned, not wholly in RAM) stays not ready and the
 * device sets DEVICE_NEEDS_RESET.
 *
 * DEVICE_NEEDS_RESET: set on any driver error found in a queue; the broken
 * queue stops, and a configuration-change interrupt is raised (at once if
 * DRIVER_OK is set, else when the driver sets it).
 *
 * Interrupt: one level-triggered IrqLine, high while InterruptStatus != 0
 * (bit 0 used buffer, bit 1 configuration change); driven only when the
 * level changes.
 *
 * Threading: the MMIO handlers run on the CPU thread; a backend's host API
 * runs on the event-loop thread. Each transport has one mutex, the "device
 * lock", shared with its backend: it protects the registers, the queues,
 * InterruptStatus and all of the backend's state. Backends take it with
 * virtio_mmio_lock()/unlock(); every function named *_locked() requires it.
 *
 * Lock order: device lock → PLIC lock (irq_line_set() is called with the
 * device lock held). Nothing is called with the lock held that could take
 * it again: backends invoke their host callbacks only from ops->dispatch,
 * which the transport calls WITHOUT the lock after every MMIO write.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/device.h"
#include "devices/virtqueue.h"
#include "machine/physmem.h"

#define VIRTIO_MMIO_MAGIC       0x74726976U     /* "virt" */
#define VIRTIO_MMIO_VERSION     2U
#define VIRTIO_MMIO_VENDOR      0x5952524fU     /* "ORRY" */

#define VIRTIO_MMIO_MAX_QUEUES  32U
#define VIRTIO_MMIO_CONFIG      0x100U
#define VIRTIO_MMIO_CONFIG_MAX  0xf00U          /* up to the end of the 4 KiB window */

/* Register offsets. */
#define VIRTIO_MMIO_MAGIC_VALUE         0x000
#define VIRTIO_MMIO_VERSION_REG         0x004
#define VIRTIO_MMIO_DEVICE_ID           0x008
#define VIRTIO_MMIO_VENDOR_ID           0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES     0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES     0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL           0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX       0x034
#define VIRTIO_MMIO_QUEUE_NUM           0x038
#define VIRTIO_MMIO_QUEUE_READY         0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY        0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS    0x060
#define VIRTIO_MMIO_INTERRUPT_ACK       0x064
#define VIRTIO_MMIO_STATUS              0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW      0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH     0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW    0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH   0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW    0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH   0x0a4
#define VIRTIO_MMIO_SHM_SEL             0x0ac
#define VIRTIO_MMIO_SHM_LEN_LOW         0x0b0
#define VIRTIO_MMIO_SHM_LEN_HIGH        0x0b4
#define VIRTIO_MMIO_SHM_BASE_LOW        0x0b8
#define VIRTIO_MMIO_SHM_BASE_HIGH       0x0bc
#define VIRTIO_MMIO_CONFIG_GENERATION   0x0fc

/* Device status bits. */
#define VIRTIO_STATUS_ACKNOWLEDGE       0x01U
#define VIRTIO_STATUS_DRIVER            0x02U
#define VIRTIO_STATUS_DRIVER_OK         0x04U
#define VIRTIO_STATUS_FEATURES_OK       0x08U
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 0x40U
#define VIRTIO_STATUS_FAILED            0x80U

/* InterruptStatus bits. */
#define VIRTIO_MMIO_INT_VRING           0x01U
#define VIRTIO_MMIO_INT_CONFIG          0x02U

/* Feature bits. */
#define VIRTIO_F_VERSION_1              32
#define VIRTIO_DEVICE_FEATURES_MASK     0x00ffffffULL   /* bits a backend may offer */

typedef struct VirtioMmio VirtioMmio;

/*
 * What a device model tells the transport. Copied by virtio_mmio_new(), so a
 * backend may fill in per-instance values (features, queue count). All
 * callbacks get the backend pointer; all but dispatch run with the device
 * lock held, on the thread that made the MMIO access (or called
 * virtio_mmio_reset()), and must not take the lock or call host callbacks.
 */
typedef struct VirtioDeviceOps {
        uint32_t device_id;             /* non-zero */
        uint64_t features;              /* device-specific bits 0..23 */
        unsigned num_queues;            /* 0..VIRTIO_MMIO_MAX_QUEUES */
        uint32_t config_size;           /* bytes of config space, <= VIRTIO_MMIO_CONFIG_MAX */

        /* QueueNumMax of queue 'index' (< num_queues): 0 or a power of 2 <= VIRTQ_MAX_SIZE. */
        uint16_t (*queue_num_max)(void *backend, unsigned index);
        /* [offset, offset+size) lies inside config_size. */
        void (*config_read)(void *backend, uint32_t offset, uint8_t *buf, unsigned size);
        void (*config_write)(void *backend, uint32_t offset, const uint8_t *buf, unsigned size);
        /* The driver notified a ready, unbroken queue, with DRIVER_OK set. */
        void (*queue_notify)(void *backend, unsigned index);
        /* DRIVER_OK was just set: process whatever is pending. May be NULL. */
        void (*driver_ok)(void *backend);
        /* Device reset (Status = 0 or virtio_mmio_reset()); queues are already reset. */
        void (*reset)(void *backend);
        /* Called WITHOUT the lock after every MMIO write and reset: run host callbacks. May be NULL. */
        void (*dispatch)(void *backend);
} VirtioDeviceOps;

/*
 * ops == NULL makes an empty slot (DeviceID 0). mem, ops and backend must
 * outlive the transport; irq and ops are copied. Returns 0, -EINVAL (bad
 * ops) or -ENOMEM.
 */
int virtio_mmio_new(PhysMem *mem, const IrqLine *irq, const VirtioDeviceOps *ops, void *backend, VirtioMmio **ret);
/* Only once no thread can call into the device any more. Returns NULL. */
VirtioMmio *virtio_mmio_free(VirtioMmio *t);
static inline void virtio_mmio_freep(VirtioMmio **t) {
        if (*t)
                virtio_mmio_free(*t);
}

/*
 * The transport's own state (status, features, queue registers and ring
 * positions); the backend saves its own. Load checks the queues against
 * guest RAM as QueueReady would and changes nothing on error.
 */
int virtio_mmio_save(VirtioMmio *t, StateWriter *w);
int virtio_mmio_load(VirtioMmio *t, StateReader *r);

/* Power-on reset, as if the driver wrote Status = 0. Any thread, lock not held. */
void virtio_mmio_reset(VirtioMmio *t);

/* MMIO handlers (opaque is the VirtioMmio*), for one MEMMAP_VIRTIO_SIZE window. CPU thread. */
uint64_t virtio_mmio_read(void *opaque, uint64_t offset, unsigned size);
void virtio_mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size);
extern const MmioOps virtio_mmio_ops;

/* ---- for backends ---- */

void virtio_mmio_lock(VirtioMmio *t);
void virtio_mmio_unlock(VirtioMmio *t);

/* Queue 'index' (< ops.num_queues), else NULL. The pointer is constant; its contents need the lock. */
VirtQueue *virtio_mmio_queue(VirtioMmio *t, unsigned index);

/* Whether the driver has set DRIVER_OK (queues may be processed). */
bool virtio_mmio_driver_ok_locked(const VirtioMmio *t);

/* DeviceID (0 for an empty transport). Any thread (constant). */
uint32_t virtio_mmio_device_id(const VirtioMmio *t);

/* Current Status register (for tests and the bus layer). Takes the lock. */
uint32_t virtio_mmio_status(VirtioMmio *t);

/* Features the driver accepted (valid once FEATURES_OK is set). */
uint64_t virtio_mmio_driver_features_locked(const VirtioMmio *t);

/* After pushing used buffers on vq: raise the used-buffer interrupt unless the driver suppressed it. */
void virtio_mmio_notify_locked(VirtioMmio *t, VirtQueue *vq);

/* Enter DEVICE_NEEDS_RESET (and raise a configuration-change interrupt once DRIVER_OK). */
void virtio_mmio_set_needs_reset_locked(VirtioMmio *t);

/* The backend changed its configuration space: bump ConfigGeneration and interrupt. */
void virtio_mmio_config_changed_locked(VirtioMmio *t);

/* ---- device types behind the transport ---- */

/*
 * A virtio device model describes itself to the transport with one of
 * these; the machine's table names it in a slot line (VIRTIO_SLOT in
 * machine.c). create() builds the backend and its transport from the
 * slot's context (memory, interrupt wire, DeviceHost hooks); the slot maps,
 * resets (virtio_mmio_reset) and saves that transport, and frees the
 * backend with free(). save/load may be NULL: the backend has no state
 * beyond the transport's.
 */
typedef struct VirtioDeviceType {
        const char *name;
        int (*create)(const DeviceContext *ctx, void **ret_backend, VirtioMmio **ret_transport);
        void (*free)(void *backend);
        int (*save)(void *backend, StateWriter *w);
        int (*load)(void *backend, StateReader *r);
} VirtioDeviceType;

/*
 * One virtio-mmio slot: DeviceContext.variant is its VirtioDeviceType, or
 * NULL for an empty slot (DeviceID 0: the guest's driver leaves it alone).
 */
extern const DeviceDescriptor virtio_mmio_device;

/* The backend of a slot instance when it holds a device of 'type', else NULL. */
void *virtio_mmio_slot_backend(void *slot, const VirtioDeviceType *type);
/* The transport of a slot instance. */
VirtioMmio *virtio_mmio_slot_transport(void *slot);
