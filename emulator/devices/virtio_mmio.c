/* SPDX-License-Identifier: MIT */
/*
 * virtio-mmio transport, version 2: see virtio_mmio.h for the register
 * file, the status state machine and the threading rules.
 */

#include <errno.h>
#include <pthread.h>
#include <libfdt.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "devices/virtio_mmio.h"
#include "machine/fdt.h"
#include "machine/memmap.h"

#define STATUS_DRIVER_BITS (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK | \
                            VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_FAILED)

/*
 * Everything below 'lock' is protected by it (the "device lock", shared
 * with the backend); mem, irq, ops, backend and empty are constant after
 * virtio_mmio_new().
 */
struct VirtioMmio {
        pthread_mutex_t lock;

        PhysMem *mem;
        IrqLine irq;
        VirtioDeviceOps ops;
        void *backend;
        bool empty;                     /* no backend: DeviceID 0 */

        uint32_t status;
        uint32_t isr;                   /* InterruptStatus */
        bool irq_level;                 /* level last driven on 'irq' */
        bool config_irq_deferred;       /* NEEDS_RESET before DRIVER_OK: interrupt when it is set */
        uint32_t device_features_sel;
        uint32_t driver_features_sel;
        uint64_t driver_features;
        uint32_t queue_sel;
        uint32_t config_generation;

        VirtQueue queues[VIRTIO_MMIO_MAX_QUEUES];
};

static uint64_t device_features(const VirtioMmio *t) {
        return (t->ops.features & VIRTIO_DEVICE_FEATURES_MASK) | (1ULL << VIRTIO_F_VERSION_1);
}

/*
 * Drive the interrupt line at the level ISR asks for: if it changed, or
 * 'always' (after a load). Lock held (device → PLIC order).
 */
static void drive_irq_locked(VirtioMmio *t, bool always) {
        bool level = t->isr != 0;

        if (level == t->irq_level && !always)
                return;

        t->irq_level = level;
        irq_line_set(&t->irq, level);
}

static void update_irq_locked(VirtioMmio *t) {
        drive_irq_locked(t, false);
}

static void raise_locked(VirtioMmio *t, uint32_t bits) {
        t->isr |= bits;
        update_irq_locked(t);
}

void virtio_mmio_set_needs_reset_locked(VirtioMmio *t) {
        if (t->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
                return;

        t->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
        if (t->status & VIRTIO_STATUS_DRIVER_OK)
                raise_locked(t, VIRTIO_MMIO_INT_CONFIG);
        else
                t->config_irq_deferred = true;
}

static void queue_error(void *opaque, _unused_ VirtQueue *vq, _unused_ int error) {
        virtio_mmio_set_needs_reset_locked(opaque);
}

void virtio_mmio_config_changed_locked(VirtioMmio *t) {
        t->config_generation++;
        if (t->status & VIRTIO_STATUS_DRIVER_OK)
                raise_locked(t, VIRTIO_MMIO_INT_CONFIG);
}

void virtio_mmio_notify_locked(VirtioMmio *t, VirtQueue *vq) {
        if (virtqueue_should_notify(vq))
                raise_locked(t, VIRTIO_MMIO_INT_VRING);
}

bool virtio_mmio_driver_ok_locked(const VirtioMmio *t) {
        return t->status & VIRTIO_STATUS_DRIVER_OK;
}

uint64_t virtio_mmio_driver_features_locked(const VirtioMmio *t) {
        return t->driver_features;
}

VirtQueue *virtio_mmio_queue(VirtioMmio *t, unsigned index) {
        if (!t || index >= t->ops.num_queues)
                return NULL;
        return &t->queues[index];
}

void virtio_mmio_lock(VirtioMmio *t) {
        pthread_mutex_lock(&t->lock);
}

void virtio_mmio_unlock(VirtioMmio *t) {
        pthread_mutex_unlock(&t->lock);
}

uint32_t virtio_mmio_status(VirtioMmio *t) {
        uint32_t status;

        pthread_mutex_lock(&t->lock);
        status = t->status;
        pthread_mutex_unlock(&t->lock);
        return status;
}

static void reset_locked(VirtioMmio *t) {
        t->status = 0;
        t->isr = 0;
        t->config_irq_deferred = false;
        t->device_features_sel = 0;
        t->driver_features_sel = 0;
        t->driver_features = 0;
        t->queue_sel = 0;
        for (unsigned i = 0; i < t->ops.num_queues; i++)
                virtqueue_reset(&t->queues[i]);
        if (t->ops.reset)
                t->ops.reset(t->backend);
        update_irq_locked(t);
}

static void dispatch(VirtioMmio *t) {
        if (!t->empty && t->ops.dispatch)
                t->ops.dispatch(t->backend);
}

static bool valid_ops(const VirtioDeviceOps *ops) {
        if (ops->device_id == 0 || ops->num_queues > VIRTIO_MMIO_MAX_QUEUES ||
            ops->config_size > VIRTIO_MMIO_CONFIG_MAX)
                return false;
        if (ops->config_size > 0 && (!ops->config_read || !ops->config_write))
                return false;
        if (ops->num_queues > 0 && (!ops->queue_num_max || !ops->queue_notify))
                return false;
        return true;
}

int virtio_mmio_new(PhysMem *mem, const IrqLine *irq, const VirtioDeviceOps *ops, void *backend, VirtioMmio **ret) {
        _cleanup_free_ VirtioMmio *t = NULL;
        int r;

        if (!ret || (ops && (!mem || !valid_ops(ops))))
                return -EINVAL;

        t = calloc(1, sizeof(VirtioMmio));
        if (!t)
                return -ENOMEM;

        t->mem = mem;
        if (irq)
                t->irq = *irq;
        t->empty = !ops;
        if (ops)
                t->ops = *ops;
        t->backend = backend;

        for (unsigned i = 0; i < t->ops.num_queues; i++) {
                r = virtqueue_init(&t->queues[i], mem, i, t->ops.queue_num_max(backend, i), queue_error, t);
                if (r < 0)
                        return r;
        }

        r = pthread_mutex_init(&t->lock, NULL);
        if (r != 0)
                return -r;

        *ret = TAKE_PTR(t);
        return 0;
}

VirtioMmio *virtio_mmio_free(VirtioMmio *t) {
        if (!t)
                return NULL;

        pthread_mutex_destroy(&t->lock);
        free(t);
        return NULL;
}

void virtio_mmio_reset(VirtioMmio *t) {
        if (!t || t->empty)
                return;

        pthread_mutex_lock(&t->lock);
        reset_locked(t);
        pthread_mutex_unlock(&t->lock);

        dispatch(t);
}

/* The selected queue, or NULL when QueueSel names none. Lock held. */
static VirtQueue *selected_queue_locked(VirtioMmio *t) {
        if (t->queue_sel >= t->ops.num_queues)
                return NULL;
        return &t->queues[t->queue_sel];
}

static uint64_t config_read_locked(VirtioMmio *t, uint64_t offset, unsigned size) {
        uint8_t buf[8] = {};
        uint64_t value = 0;

        if ((size != 1 && size != 2 && size != 4 && size != 8) ||
            offset >= t->ops.config_size || size > t->ops.config_size - offset)
                return 0;

        t->ops.config_read(t->backend, (uint32_t) offset, buf, size);
        for (unsigned i = 0; i < size; i++)
                value |= (uint64_t) buf[i] << (8 * i);
        return value;
}

static void config_write_locked(VirtioMmio *t, uint64_t offset, uint64_t value, unsigned size) {
        uint8_t buf[8];

        if ((size != 1 && size != 2 && size != 4 && size != 8) ||
            offset >= t->ops.config_size || size > t->ops.config_size - offset)
                return;

        for (unsigned i = 0; i < size; i++)
                buf[i] = (uint8_t) (value >> (8 * i));
        t->ops.config_write(t->backend, (uint32_t) offset, buf, size);
}

static uint32_t register_read_locked(VirtioMmio *t, uint64_t offset) {
        VirtQueue *vq;

        switch (offset) {
        case VIRTIO_MMIO_DEVICE_FEATURES:
                if (t->device_features_sel > 1)
                        return 0;
                return (uint32_t) (device_features(t) >> (32 * t->device_features_sel));

        case VIRTIO_MMIO_QUEUE_NUM_MAX:
                vq = selected_queue_locked(t);
                return vq ? vq->num_max : 0;

        case VIRTIO_MMIO_QUEUE_READY:
                vq = selected_queue_locked(t);
                return vq && vq->ready;

        case VIRTIO_MMIO_INTERRUPT_STATUS:
                return t->isr;

        case VIRTIO_MMIO_STATUS:
                return t->status;

        case VIRTIO_MMIO_SHM_LEN_LOW:
        case VIRTIO_MMIO_SHM_LEN_HIGH:
        case VIRTIO_MMIO_SHM_BASE_LOW:
        case VIRTIO_MMIO_SHM_BASE_HIGH:
                /* No shared memory regions: every SHMSel reads as absent. */
                return UINT32_MAX;

        case VIRTIO_MMIO_CONFIG_GENERATION:
                return t->config_generation;

        default:
                return 0;
        }
}

uint64_t virtio_mmio_read(void *opaque, uint64_t offset, unsigned size) {
        VirtioMmio *t = opaque;
        uint64_t value;

        if (!t)
                return 0;

        if (offset < VIRTIO_MMIO_CONFIG) {
                if (size != 4 || offset % 4 != 0)
                        return 0;
                switch (offset) {
                case VIRTIO_MMIO_MAGIC_VALUE:
                        return VIRTIO_MMIO_MAGIC;
                case VIRTIO_MMIO_VERSION_REG:
                        return VIRTIO_MMIO_VERSION;
                case VIRTIO_MMIO_DEVICE_ID:
                        return t->empty ? 0 : t->ops.device_id;
                case VIRTIO_MMIO_VENDOR_ID:
                        return VIRTIO_MMIO_VENDOR;
                }
        }

        if (t->empty)
                return 0;

        pthread_mutex_lock(&t->lock);
        if (offset < VIRTIO_MMIO_CONFIG)
                value = register_read_locked(t, offset);
        else
                value = config_read_locked(t, offset - VIRTIO_MMIO_CONFIG, size);
        pthread_mutex_unlock(&t->lock);

        return value;
}

static void write_status_locked(VirtioMmio *t, uint32_t value) {
        uint32_t old = t->status, add;

        if (value == 0) {
                reset_locked(t);
                return;
        }

        /* Bits only accumulate until reset; NEEDS_RESET and unknown bits belong to the device. */
        add = value & STATUS_DRIVER_BITS & ~old;

        if (add & VIRTIO_STATUS_FEATURES_OK) {
                uint64_t f = t->driver_features;

                if ((f & ~device_features(t)) != 0 || !(f & (1ULL << VIRTIO_F_VERSION_1)))
                        add &= ~VIRTIO_STATUS_FEATURES_OK;
        }

        if ((add & VIRTIO_STATUS_DRIVER_OK) && !((old | add) & VIRTIO_STATUS_FEATURES_OK))
                add &= ~VIRTIO_STATUS_DRIVER_OK;

        t->status = old | add;

        if (add & VIRTIO_STATUS_DRIVER_OK) {
                if (t->config_irq_deferred) {
                        t->config_irq_deferred = false;
                        raise_locked(t, VIRTIO_MMIO_INT_CONFIG);
                }
                if (t->ops.driver_ok)
                        t->ops.driver_ok(t->backend);
        }
}

static void write_queue_ready_locked(VirtioMmio *t, uint32_t value) {
        VirtQueue *vq = selected_queue_locked(t);

        if (!vq || vq->num_max == 0)
                return;

        if (value == 0) {
                virtqueue_disable(vq);
                return;
        }
        if (vq->ready)
                return;

        if (virtqueue_enable(vq) < 0)
                virtio_mmio_set_needs_reset_locked(t);
}

/* Sets the low or high half of a 64-bit queue address. */
static void set_half(uint64_t *addr, bool high, uint32_t value) {
        if (high)
                *addr = (*addr & 0xffffffffULL) | ((uint64_t) value << 32);
        else
                *addr = (*addr & ~0xffffffffULL) | value;
}

static void register_write_locked(VirtioMmio *t, uint64_t offset, uint32_t value) {
        VirtQueue *vq;

        switch (offset) {
        case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
                t->device_features_sel = value;
                break;

        case VIRTIO_MMIO_DRIVER_FEATURES:
                if (t->status & VIRTIO_STATUS_FEATURES_OK)
                        break;  /* frozen */
                if (t->driver_features_sel == 0)
                        t->driver_features = (t->driver_features & ~0xffffffffULL) | value;
                else if (t->driver_features_sel == 1)
                        t->driver_features = (t->driver_features & 0xffffffffULL) | ((uint64_t) value << 32);
                break;

        case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
                t->driver_features_sel = value;
                break;

        case VIRTIO_MMIO_QUEUE_SEL:
                t->queue_sel = value;
                break;

        case VIRTIO_MMIO_QUEUE_NUM:
                vq = selected_queue_locked(t);
                if (vq && !vq->ready)
                        vq->num = value;
                break;

        case VIRTIO_MMIO_QUEUE_READY:
                write_queue_ready_locked(t, value);
                break;

        case VIRTIO_MMIO_QUEUE_NOTIFY:
                /* Without VIRTIO_F_NOTIFICATION_DATA the value is just the queue index. */
                if (!(t->status & VIRTIO_STATUS_DRIVER_OK) || value >= t->ops.num_queues)
                        break;
                vq = &t->queues[value];
                if (virtqueue_usable(vq))
                        t->ops.queue_notify(t->backend, value);
                break;

        case VIRTIO_MMIO_INTERRUPT_ACK:
                t->isr &= ~value;
                update_irq_locked(t);
                break;

        case VIRTIO_MMIO_STATUS:
                write_status_locked(t, value);
                break;

        case VIRTIO_MMIO_QUEUE_DESC_LOW:
        case VIRTIO_MMIO_QUEUE_DESC_HIGH:
        case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
        case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
        case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
        case VIRTIO_MMIO_QUEUE_DEVICE_HIGH: {
                bool high = offset & 4;
                uint64_t *addr;

                vq = selected_queue_locked(t);
                if (!vq || vq->ready)
                        break;
                if (offset < VIRTIO_MMIO_QUEUE_DRIVER_LOW)
                        addr = &vq->desc_addr;
                else if (offset < VIRTIO_MMIO_QUEUE_DEVICE_LOW)
                        addr = &vq->avail_addr;
                else
                        addr = &vq->used_addr;
                set_half(addr, high, value);
                break;
        }

        default:
                /* Read-only registers, SHMSel (no regions) and holes. */
                break;
        }
}

void virtio_mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size) {
        VirtioMmio *t = opaque;

        if (!t || t->empty)
                return;
        if (offset < VIRTIO_MMIO_CONFIG && (size != 4 || offset % 4 != 0))
                return;

        pthread_mutex_lock(&t->lock);
        if (offset < VIRTIO_MMIO_CONFIG)
                register_write_locked(t, offset, (uint32_t) value);
        else
                config_write_locked(t, offset - VIRTIO_MMIO_CONFIG, value, size);
        pthread_mutex_unlock(&t->lock);

        dispatch(t);
}

const MmioOps virtio_mmio_ops = {
        .read = virtio_mmio_read,
        .write = virtio_mmio_write,
};

uint32_t virtio_mmio_device_id(const VirtioMmio *t) {
        return t->empty ? 0 : t->ops.device_id;
}

/* ---- state ---- */

int virtio_mmio_save(VirtioMmio *t, StateWriter *w) {
        pthread_mutex_lock(&t->lock);
        state_put_u32(w, t->ops.num_queues);
        state_put_u32(w, t->status);
        state_put_u32(w, t->isr);
        state_put_bool(w, t->config_irq_deferred);
        state_put_u32(w, t->device_features_sel);
        state_put_u32(w, t->driver_features_sel);
        state_put_u64(w, t->driver_features);
        state_put_u32(w, t->queue_sel);
        state_put_u32(w, t->config_generation);
        for (unsigned i = 0; i < t->ops.num_queues; i++) {
                const VirtQueue *vq = &t->queues[i];
                state_put_u32(w, vq->num);
                state_put_u64(w, vq->desc_addr);
                state_put_u64(w, vq->avail_addr);
                state_put_u64(w, vq->used_addr);
                state_put_bool(w, vq->ready);
                state_put_bool(w, vq->broken);
                state_put_u16(w, vq->last_avail);
                state_put_u16(w, vq->used_idx);
        }
        pthread_mutex_unlock(&t->lock);
        return state_writer_error(w);
}

static int load_queue(VirtQueue *vq, StateReader *r) {
        bool ready, broken;
        uint16_t last_avail, used_idx;

        state_get_u32_max(r, vq->num_max, &vq->num);
        state_get_u64(r, &vq->desc_addr);
        state_get_u64(r, &vq->avail_addr);
        state_get_u64(r, &vq->used_addr);
        state_get_bool(r, &ready);
        state_get_bool(r, &broken);
        state_get_u16(r, &last_avail);
        state_get_u16(r, &used_idx);
        if (state_reader_error(r) < 0)
                return state_reader_error(r);
        if (ready) {
                /* The same checks as the driver's QueueReady write: the rings lie in RAM. */
                int e = virtqueue_enable(vq);
                if (e < 0)
                        return -ERANGE;
                vq->last_avail = last_avail;
                vq->used_idx = used_idx;
                vq->broken = broken;
        }
        return 0;
}

int virtio_mmio_load(VirtioMmio *t, StateReader *r) {
        _cleanup_free_ VirtQueue *queues = NULL;
        uint32_t n, status, isr, dsel, fsel, qsel, gen;
        uint64_t features;
        bool deferred;
        int e;

        state_get_u32(r, &n);
        state_get_u32_max(r, 0xff, &status);
        state_get_u32_max(r, VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG, &isr);
        state_get_bool(r, &deferred);
        state_get_u32(r, &dsel);
        state_get_u32(r, &fsel);
        state_get_u64(r, &features);
        state_get_u32(r, &qsel);
        state_get_u32(r, &gen);
        if (state_reader_error(r) < 0)
                return state_reader_error(r);
        if (n != t->ops.num_queues || (features & ~(device_features(t))) != 0)
                return -ERANGE;

        queues = calloc(VIRTIO_MMIO_MAX_QUEUES, sizeof(VirtQueue));
        if (!queues)
                return -ENOMEM;
        pthread_mutex_lock(&t->lock);
        memcpy(queues, t->queues, sizeof(t->queues));
        pthread_mutex_unlock(&t->lock);
        for (unsigned i = 0; i < n; i++) {
                virtqueue_reset(&queues[i]);
                e = load_queue(&queues[i], r);
                if (e < 0)
                        return e;
        }

        pthread_mutex_lock(&t->lock);
        for (unsigned i = 0; i < n; i++) {
                uint32_t generation = t->queues[i].generation;
                t->queues[i] = queues[i];
                /* Chains popped before the load are stale. */
                t->queues[i].generation = generation + 1;
        }
        t->status = status;
        t->isr = isr;
        t->config_irq_deferred = deferred;
        t->device_features_sel = dsel;
        t->driver_features_sel = fsel;
        t->driver_features = features;
        t->queue_sel = qsel;
        t->config_generation = gen;
        /*
         * Drive the line even at the level it had: the PLIC's state was just
         * loaded too, and its pending bit for this source must follow the
         * loaded level, not the one driven before the load.
         */
        drive_irq_locked(t, true);
        pthread_mutex_unlock(&t->lock);
        return 0;
}

/* ---- slots in the machine's device table ---- */

typedef struct VirtioSlot {
        const VirtioDeviceType *type;   /* NULL: empty slot */
        void *backend;
        VirtioMmio *transport;          /* the backend's, or an empty transport */
} VirtioSlot;

static int slot_create(const DeviceContext *ctx, void **ret) {
        _cleanup_free_ VirtioSlot *slot = calloc(1, sizeof(VirtioSlot));
        int r;

        if (!slot)
                return -ENOMEM;
        slot->type = ctx->variant;
        if (slot->type) {
                r = slot->type->create(ctx, &slot->backend, &slot->transport);
                if (r < 0)
                        return r;
        } else {
                r = virtio_mmio_new(ctx->mem, &ctx->irq, NULL, NULL, &slot->transport);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(slot);
        return 0;
}

static void slot_free(void *dev) {
        VirtioSlot *slot = dev;

        if (slot->type)
                slot->type->free(slot->backend);
        else
                virtio_mmio_free(slot->transport);
        free(slot);
}

static void slot_reset(void *dev) {
        VirtioSlot *slot = dev;

        virtio_mmio_reset(slot->transport);     /* the backend's reset op follows */
}

static int slot_fdt_node(void *dev, const DeviceContext *ctx, void *fdt) {
        static const char compat[] = "virtio,mmio";

        DT_TRY(dt_begin_device(fdt, "virtio_mmio", ctx, compat, sizeof(compat)));
        return dt_err(fdt_end_node(fdt));
}

static int slot_save(void *dev, StateWriter *w) {
        VirtioSlot *slot = dev;
        int r;

        state_put_u32(w, slot->type ? virtio_mmio_device_id(slot->transport) : 0);
        if (!slot->type)
                return state_writer_error(w);
        r = virtio_mmio_save(slot->transport, w);
        if (r < 0)
                return r;
        return slot->type->save ? slot->type->save(slot->backend, w) : 0;
}

static int slot_load_parts(VirtioSlot *slot, StateReader *r) {
        uint32_t id;
        int e;

        e = state_get_u32(r, &id);
        if (e < 0)
                return e;
        if (id != (slot->type ? virtio_mmio_device_id(slot->transport) : 0))
                return -ERANGE;
        if (!slot->type)
                return 0;
        e = virtio_mmio_load(slot->transport, r);
        if (e < 0)
                return e;
        return slot->type->load ? slot->type->load(slot->backend, r) : 0;
}

/*
 * The transport and the backend each check before they change anything;
 * when the backend refuses after the transport took its part, the slot
 * goes back to the state it had.
 */
static int slot_load(void *dev, StateReader *r) {
        VirtioSlot *slot = dev;
        StateWriter before = {};
        int e;

        e = slot_save(slot, &before);
        if (e >= 0)
                e = slot_load_parts(slot, r);
        if (e < 0 && before.size > 0) {
                StateReader back = state_reader(before.data, before.size);
                (void) slot_load_parts(slot, &back);
        }
        state_writer_done(&before);
        return e;
}

static uint64_t slot_read(void *opaque, uint64_t offset, unsigned size) {
        VirtioSlot *slot = opaque;
        return virtio_mmio_read(slot->transport, offset, size);
}

static void slot_write(void *opaque, uint64_t offset, uint64_t value, unsigned size) {
        VirtioSlot *slot = opaque;
        virtio_mmio_write(slot->transport, offset, value, size);
}

static const MmioOps slot_mmio_ops = {
        .read = slot_read,
        .write = slot_write,
};

void *virtio_mmio_slot_backend(void *dev, const VirtioDeviceType *type) {
        VirtioSlot *slot = dev;
        return slot && slot->type == type ? slot->backend : NULL;
}

VirtioMmio *virtio_mmio_slot_transport(void *dev) {
        VirtioSlot *slot = dev;
        return slot->transport;
}

const DeviceDescriptor virtio_mmio_device = {
        .name = "virtio-mmio",
        .size = MEMMAP_VIRTIO_SIZE,
        .access_sizes = DEVICE_ACCESS_ANY,
        .mmio = &slot_mmio_ops,
        .create = slot_create,
        .free = slot_free,
        .reset = slot_reset,
        .fdt_node = slot_fdt_node,
        .save = slot_save,
        .load = slot_load,
};
