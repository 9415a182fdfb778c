/* SPDX-License-Identifier: MIT */
/*
 * The fake guest of the virtio tests: see guest.h.
 */

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "guest.h"

static void guest_irq_set(void *opaque, _unused_ unsigned number, bool level) {
        Guest *g = opaque;

        if (level == g->irq_level)
                g->irq_redundant++;
        else if (level)
                g->irq_raises++;
        g->irq_level = level;
}

int guest_init(Guest *g) {
        *g = (Guest) {};

        g->mem.ram = calloc(1, GUEST_RAM_SIZE);
        g->mem.fb = malloc(GUEST_FB_SIZE);
        if (!g->mem.ram || !g->mem.fb) {
                guest_done(g);
                return -ENOMEM;
        }
        g->mem.ram_base = GUEST_RAM_BASE;
        g->mem.ram_size = GUEST_RAM_SIZE;
        g->mem.fb_base = GUEST_FB_BASE;
        g->mem.fb_size = GUEST_FB_SIZE;
        memset(g->mem.fb, GUEST_FB_PATTERN, GUEST_FB_SIZE);

        /* Leave the first page unused, so that address 0 of a zeroed ring never looks valid by accident. */
        g->next_alloc = GUEST_RAM_BASE + 0x1000;
        return 0;
}

void guest_done(Guest *g) {
        free(g->mem.ram);
        free(g->mem.fb);
        g->mem.ram = g->mem.fb = NULL;
}

IrqLine guest_irq(Guest *g) {
        return (IrqLine) { .set = guest_irq_set, .opaque = g, .number = 1 };
}

void guest_attach(Guest *g, VirtioMmio *dev) {
        g->dev = dev;
}

uint32_t guest_rd(Guest *g, uint64_t offset) {
        return (uint32_t) virtio_mmio_ops.read(g->dev, offset, 4);
}

void guest_wr(Guest *g, uint64_t offset, uint32_t value) {
        virtio_mmio_ops.write(g->dev, offset, value, 4);
}

uint64_t guest_cfg_rd(Guest *g, uint64_t offset, unsigned size) {
        return virtio_mmio_ops.read(g->dev, VIRTIO_MMIO_CONFIG + offset, size);
}

void guest_cfg_wr(Guest *g, uint64_t offset, uint64_t value, unsigned size) {
        virtio_mmio_ops.write(g->dev, VIRTIO_MMIO_CONFIG + offset, value, size);
}

uint64_t guest_alloc(Guest *g, uint64_t size, uint64_t align) {
        uint64_t addr = (g->next_alloc + align - 1) & ~(align - 1);

        if (addr + size > GUEST_RAM_BASE + GUEST_RAM_SIZE)
                return 0;
        g->next_alloc = addr + size;
        memset(guest_ptr(g, addr), 0, size);
        return addr;
}

void *guest_ptr(Guest *g, uint64_t gpa) {
        return g->mem.ram + (gpa - GUEST_RAM_BASE);
}

bool guest_fb_intact(const Guest *g) {
        for (uint64_t i = 0; i < GUEST_FB_SIZE; i++)
                if (g->mem.fb[i] != GUEST_FB_PATTERN)
                        return false;
        return true;
}

uint64_t guest_device_features(Guest *g) {
        uint64_t f;

        guest_wr(g, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
        f = guest_rd(g, VIRTIO_MMIO_DEVICE_FEATURES);
        guest_wr(g, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
        f |= (uint64_t) guest_rd(g, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
        return f;
}

uint32_t guest_negotiate(Guest *g, uint64_t accept) {
        uint64_t f;

        guest_wr(g, VIRTIO_MMIO_STATUS, 0);
        guest_wr(g, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
        guest_wr(g, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);

        f = guest_device_features(g) & accept;
        guest_wr(g, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        guest_wr(g, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t) (f >> 32));
        guest_wr(g, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
        guest_wr(g, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t) f);

        guest_wr(g, VIRTIO_MMIO_STATUS,
                 VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
        return guest_rd(g, VIRTIO_MMIO_STATUS);
}

uint32_t guest_driver_ok(Guest *g) {
        guest_wr(g, VIRTIO_MMIO_STATUS, guest_rd(g, VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_DRIVER_OK);
        return guest_rd(g, VIRTIO_MMIO_STATUS);
}

uint32_t guest_ack(Guest *g) {
        uint32_t isr = guest_rd(g, VIRTIO_MMIO_INTERRUPT_STATUS);

        guest_wr(g, VIRTIO_MMIO_INTERRUPT_ACK, isr);
        return isr;
}

bool guest_queue_setup_at(Guest *g, GuestQueue *q, unsigned index, uint32_t num,
                          uint64_t desc, uint64_t avail, uint64_t used) {
        *q = (GuestQueue) {
                .index = index,
                .num = (uint16_t) num,
                .desc = desc,
                .avail = avail,
                .used = used,
        };

        guest_wr(g, VIRTIO_MMIO_QUEUE_SEL, index);
        guest_wr(g, VIRTIO_MMIO_QUEUE_NUM, num);
        guest_wr(g, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t) desc);
        guest_wr(g, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t) (desc >> 32));
        guest_wr(g, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t) avail);
        guest_wr(g, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t) (avail >> 32));
        guest_wr(g, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t) used);
        guest_wr(g, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t) (used >> 32));
        guest_wr(g, VIRTIO_MMIO_QUEUE_READY, 1);
        return guest_rd(g, VIRTIO_MMIO_QUEUE_READY) == 1;
}

bool guest_queue_setup(Guest *g, GuestQueue *q, unsigned index, uint16_t num) {
        uint64_t desc = guest_alloc(g, 16ULL * num, 16);
        uint64_t avail = guest_alloc(g, 6 + 2ULL * num, 2);
        uint64_t used = guest_alloc(g, 6 + 8ULL * num, 4);

        if (!desc || !avail || !used)
                return false;
        return guest_queue_setup_at(g, q, index, num, desc, avail, used);
}

void guest_desc(Guest *g, GuestQueue *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
        uint8_t *p = guest_ptr(g, q->desc + 16ULL * i);
        uint64_t a = htole64(addr);
        uint32_t l = htole32(len);
        uint16_t f = htole16(flags), n = htole16(next);

        memcpy(p, &a, 8);
        memcpy(p + 8, &l, 4);
        memcpy(p + 12, &f, 2);
        memcpy(p + 14, &n, 2);
}

void guest_set_avail_idx(Guest *g, GuestQueue *q, uint16_t idx) {
        __atomic_store_n((uint16_t *) guest_ptr(g, q->avail + 2), htole16(idx), __ATOMIC_RELEASE);
}

void guest_set_avail_flags(Guest *g, GuestQueue *q, uint16_t flags) {
        __atomic_store_n((uint16_t *) guest_ptr(g, q->avail), htole16(flags), __ATOMIC_RELAXED);
}

void guest_publish(Guest *g, GuestQueue *q, uint16_t head) {
        uint16_t *ring = guest_ptr(g, q->avail + 4);

        ring[q->avail_idx % q->num] = htole16(head);
        q->avail_idx++;
        guest_set_avail_idx(g, q, q->avail_idx);
}

void guest_kick(Guest *g, GuestQueue *q) {
        guest_wr(g, VIRTIO_MMIO_QUEUE_NOTIFY, q->index);
}

uint16_t guest_add_buf(Guest *g, GuestQueue *q, uint64_t addr, uint32_t len, bool writable) {
        uint16_t head = q->next_desc;

        q->next_desc = (uint16_t) ((q->next_desc + 1) % q->num);
        guest_desc(g, q, head, addr, len, writable ? VIRTQ_DESC_F_WRITE : 0, 0);
        guest_publish(g, q, head);
        return head;
}

uint16_t guest_used_idx(Guest *g, GuestQueue *q) {
        return le16toh(__atomic_load_n((uint16_t *) guest_ptr(g, q->used + 2), __ATOMIC_ACQUIRE));
}

bool guest_get_used(Guest *g, GuestQueue *q, uint32_t *ret_id, uint32_t *ret_len) {
        const uint8_t *elem;
        uint32_t id, len;

        if (guest_used_idx(g, q) == q->last_used)
                return false;

        elem = guest_ptr(g, q->used + 4 + 8ULL * (q->last_used % q->num));
        memcpy(&id, elem, 4);
        memcpy(&len, elem + 4, 4);
        q->last_used++;
        if (ret_id)
                *ret_id = le32toh(id);
        if (ret_len)
                *ret_len = le32toh(len);
        return true;
}
