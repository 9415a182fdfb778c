/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueue, device side: see virtqueue.h for the checks and the
 * memory-ordering rules.
 */

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "macro.h"
#include "devices/virtqueue.h"

#define DESC_SIZE 16U

/* Offsets inside the avail and used areas. */
#define AVAIL_FLAGS 0U
#define AVAIL_IDX   2U
#define AVAIL_RING  4U
#define USED_FLAGS  0U
#define USED_IDX    2U
#define USED_RING   4U
#define USED_ELEM   8U

/* Host pointer for [addr, addr+len) when it lies wholly inside guest RAM, else NULL. */
static uint8_t *ram_range(const PhysMem *mem, uint64_t addr, uint64_t len) {
        uint64_t off;

        if (!mem || !mem->ram || addr < mem->ram_base)
                return NULL;
        off = addr - mem->ram_base;
        if (off >= mem->ram_size || len > mem->ram_size - off)
                return NULL;
        return mem->ram + off;
}

static bool is_power_of_2(uint64_t v) {
        return v != 0 && (v & (v - 1)) == 0;
}

int virtqueue_init(VirtQueue *vq, const PhysMem *mem, unsigned index, uint16_t num_max,
                   VirtQueueErrorFn on_error, void *opaque) {
        if (!vq || (num_max != 0 && (!is_power_of_2(num_max) || num_max > VIRTQ_MAX_SIZE)))
                return -EINVAL;

        *vq = (VirtQueue) {
                .mem = mem,
                .index = index,
                .num_max = num_max,
                .on_error = on_error,
                .opaque = opaque,
        };
        return 0;
}

void virtqueue_reset(VirtQueue *vq) {
        vq->num = 0;
        vq->desc_addr = 0;
        vq->avail_addr = 0;
        vq->used_addr = 0;
        vq->ready = false;
        vq->broken = false;
        vq->desc = vq->avail = vq->used = NULL;
        vq->last_avail = 0;
        vq->used_idx = 0;
        vq->generation++;
}

int virtqueue_enable(VirtQueue *vq) {
        uint8_t *desc, *avail, *used;
        uint64_t num = vq->num;

        if (num == 0 || num > vq->num_max || !is_power_of_2(num))
                return -EINVAL;
        if (vq->desc_addr % VIRTQ_DESC_ALIGN != 0 ||
            vq->avail_addr % VIRTQ_AVAIL_ALIGN != 0 ||
            vq->used_addr % VIRTQ_USED_ALIGN != 0)
                return -EINVAL;

        desc = ram_range(vq->mem, vq->desc_addr, DESC_SIZE * num);
        avail = ram_range(vq->mem, vq->avail_addr, AVAIL_RING + 2 * num + 2);
        used = ram_range(vq->mem, vq->used_addr, USED_RING + USED_ELEM * num + 2);
        if (!desc || !avail || !used)
                return -EFAULT;

        vq->desc = desc;
        vq->avail = avail;
        vq->used = used;
        vq->last_avail = 0;
        vq->used_idx = 0;
        vq->broken = false;
        vq->ready = true;
        vq->generation++;
        return 0;
}

void virtqueue_disable(VirtQueue *vq) {
        vq->ready = false;
        vq->desc = vq->avail = vq->used = NULL;
        vq->generation++;
}

int virtqueue_fail(VirtQueue *vq, int error) {
        if (!vq->broken) {
                vq->broken = true;
                if (vq->on_error)
                        vq->on_error(vq->opaque, vq, error);
        }
        return error;
}

/* The driver's ring fields are naturally aligned (checked by virtqueue_enable). */
static uint16_t load_le16(const uint8_t *p, int order) {
        return le16toh(__atomic_load_n((const uint16_t *) (const void *) p, order));
}

static void store_le16(uint8_t *p, uint16_t v, int order) {
        __atomic_store_n((uint16_t *) (void *) p, htole16(v), order);
}

static void store_le32(uint8_t *p, uint32_t v) {
        __atomic_store_n((uint32_t *) (void *) p, htole32(v), __ATOMIC_RELAXED);
}

typedef struct Desc {
        uint64_t addr;
        uint32_t len;
        uint16_t flags;
        uint16_t next;
} Desc;

/* Copies descriptor i (< num) out of guest memory exactly once. */
static Desc read_desc(const VirtQueue *vq, uint16_t i) {
        const uint8_t *p = vq->desc + (size_t) i * DESC_SIZE;
        uint64_t addr;
        uint32_t len;
        uint16_t flags, next;

        memcpy(&addr, p, sizeof(addr));
        memcpy(&len, p + 8, sizeof(len));
        memcpy(&flags, p + 12, sizeof(flags));
        memcpy(&next, p + 14, sizeof(next));

        return (Desc) {
                .addr = le64toh(addr),
                .len = le32toh(len),
                .flags = le16toh(flags),
                .next = le16toh(next),
        };
}

int virtqueue_pop(VirtQueue *vq, VirtqChain *ret) {
        uint16_t avail_idx, pending, head, i;
        uint32_t num = vq->num;
        unsigned count = 0;

        if (!virtqueue_usable(vq))
                return 0;

        /* Acquire: the ring entry and descriptors below are read after the index that published them. */
        avail_idx = load_le16(vq->avail + AVAIL_IDX, __ATOMIC_ACQUIRE);
        pending = (uint16_t) (avail_idx - vq->last_avail);
        if (pending == 0)
                return 0;
        if (pending > num)
                return virtqueue_fail(vq, -EPROTO);

        head = load_le16(vq->avail + AVAIL_RING + 2 * (vq->last_avail % num), __ATOMIC_RELAXED);
        if (head >= num)
                return virtqueue_fail(vq, -ERANGE);

        ret->head = head;
        ret->generation = vq->generation;
        ret->n_out = ret->n_in = 0;
        ret->out_len = ret->in_len = 0;

        for (i = head;; ) {
                Desc d;
                uint8_t *p;

                /* More descriptors than the table holds: a loop or an overlong chain. */
                if (count >= num)
                        return virtqueue_fail(vq, -ELOOP);
                count++;

                d = read_desc(vq, i);
                if (d.flags & VIRTQ_DESC_F_INDIRECT)
                        return virtqueue_fail(vq, -EOPNOTSUPP);

                p = ram_range(vq->mem, d.addr, d.len);
                if (!p)
                        return virtqueue_fail(vq, -EFAULT);

                if (d.flags & VIRTQ_DESC_F_WRITE) {
                        if (__builtin_add_overflow(ret->in_len, d.len, &ret->in_len))
                                return virtqueue_fail(vq, -E2BIG);
                        ret->seg[ret->n_out + ret->n_in++] = (VirtqSeg) { .ptr = p, .len = d.len };
                } else {
                        /* Device-readable descriptors come first. */
                        if (ret->n_in > 0)
                                return virtqueue_fail(vq, -EPROTO);
                        if (__builtin_add_overflow(ret->out_len, d.len, &ret->out_len))
                                return virtqueue_fail(vq, -E2BIG);
                        ret->seg[ret->n_out++] = (VirtqSeg) { .ptr = p, .len = d.len };
                }

                if (!(d.flags & VIRTQ_DESC_F_NEXT))
                        break;
                if (d.next >= num)
                        return virtqueue_fail(vq, -ERANGE);
                i = d.next;
        }

        vq->last_avail++;
        return 1;
}

void virtqueue_unpop(VirtQueue *vq, unsigned n) {
        if (virtqueue_usable(vq))
                vq->last_avail -= (uint16_t) n;
}

size_t virtqueue_chain_read(const VirtqChain *chain, size_t offset, void *buf, size_t len) {
        uint8_t *out = buf;
        size_t done = 0;

        for (unsigned s = 0; s < chain->n_out && done < len; s++) {
                const VirtqSeg *seg = &chain->seg[s];
                size_t n;

                if (offset >= seg->len) {
                        offset -= seg->len;
                        continue;
                }
                n = MIN((size_t) seg->len - offset, len - done);
                memcpy(out + done, seg->ptr + offset, n);
                done += n;
                offset = 0;
        }
        return done;
}

size_t virtqueue_chain_write(const VirtqChain *chain, size_t offset, const void *buf, size_t len) {
        const uint8_t *in = buf;
        size_t done = 0;

        for (unsigned s = chain->n_out; s < chain->n_out + chain->n_in && done < len; s++) {
                const VirtqSeg *seg = &chain->seg[s];
                size_t n;

                if (offset >= seg->len) {
                        offset -= seg->len;
                        continue;
                }
                n = MIN((size_t) seg->len - offset, len - done);
                memcpy(seg->ptr + offset, in + done, n);
                done += n;
                offset = 0;
        }
        return done;
}

int virtqueue_push(VirtQueue *vq, const VirtqChain *chain, uint32_t written) {
        uint8_t *elem;

        if (chain->generation != vq->generation)
                return -ESTALE;
        if (!virtqueue_usable(vq))
                return -EIO;

        elem = vq->used + USED_RING + (size_t) (vq->used_idx % vq->num) * USED_ELEM;
        store_le32(elem, chain->head);
        store_le32(elem + 4, MIN(written, chain->in_len));

        vq->used_idx++;
        /* Release: the element and the buffer contents are visible before the index. */
        store_le16(vq->used + USED_IDX, vq->used_idx, __ATOMIC_RELEASE);
        /*
         * Migration: everything a device wrote for this chain went into its
         * writable buffers before the push, so marking them (and the used
         * ring) here covers device writes from any thread.
         */
        for (unsigned s = chain->n_out; s < chain->n_out + chain->n_in; s++)
                physmem_ram_mark_host(vq->mem, chain->seg[s].ptr, chain->seg[s].len);
        physmem_ram_mark_host(vq->mem, elem, USED_ELEM);
        physmem_ram_mark_host(vq->mem, vq->used + USED_IDX, 2);
        return 0;
}

bool virtqueue_should_notify(VirtQueue *vq) {
        if (!virtqueue_usable(vq))
                return false;

        /* Order the used->idx store before reading the driver's suppression flag. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        return !(load_le16(vq->avail + AVAIL_FLAGS, __ATOMIC_RELAXED) & VIRTQ_AVAIL_F_NO_INTERRUPT);
}
