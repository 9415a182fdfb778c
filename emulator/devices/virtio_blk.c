/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk on a raw image: see virtio_blk.h for the request checks and
 * the threading.
 */

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "block/workers.h"
#include "devices/virtio_blk.h"

#define HEADER_SIZE 16U
#define SEGMENT_SIZE 16U                /* discard / write-zeroes segment */
#define WRITE_ZEROES_FLAG_UNMAP 1U

/* Configuration space offsets (struct virtio_blk_config). */
#define CFG_CAPACITY               0
#define CFG_SEG_MAX                12
#define CFG_BLK_SIZE               20
#define CFG_MAX_DISCARD_SECTORS    36
#define CFG_MAX_DISCARD_SEG        40
#define CFG_DISCARD_ALIGNMENT      44
#define CFG_MAX_WRITE_ZEROES_SECTORS 48
#define CFG_MAX_WRITE_ZEROES_SEG   52
#define CFG_WRITE_ZEROES_MAY_UNMAP 56

#define MAX_DISCARD_SECTORS 0x400000U   /* 2 GiB per segment */

/*
 * 'transport' owns the device lock; image, workers and serial are constant
 * after virtio_blk_new(); stats are protected by the lock. 'capacity' only
 * grows (virtio_blk_resize(), under the lock) and is read atomically, since
 * the workers check discard ranges against it without the lock.
 */
struct VirtioBlk {
        VirtioMmio *transport;
        BlockImage *image;
        BlockWorkers *workers;
        char serial[VIRTIO_BLK_ID_BYTES + 1];  /* NUL-terminated; the guest gets the first 20 bytes */
        uint64_t capacity;              /* sectors */

        VirtioBlkStats stats;
};

typedef struct BlkReq {
        BlockJob job;
        VirtioBlk *dev;
        VirtQueue *vq;
        uint32_t type;
        uint64_t sector;
        VirtqChain chain;
} BlkReq;

static void put_le32(uint8_t *p, uint32_t v) {
        v = htole32(v);
        memcpy(p, &v, sizeof(v));
}

static void put_le64(uint8_t *p, uint64_t v) {
        v = htole64(v);
        memcpy(p, &v, sizeof(v));
}

static uint64_t capacity(const VirtioBlk *dev) {
        return __atomic_load_n(&dev->capacity, __ATOMIC_ACQUIRE);
}

static uint16_t blk_queue_num_max(_unused_ void *backend, _unused_ unsigned index) {
        return VIRTIO_BLK_QUEUE_SIZE;
}

static void blk_config_read(void *backend, uint32_t offset, uint8_t *buf, unsigned size) {
        VirtioBlk *dev = backend;
        uint8_t cfg[VIRTIO_BLK_CONFIG_SIZE] = {};

        put_le64(cfg + CFG_CAPACITY, capacity(dev));
        put_le32(cfg + CFG_SEG_MAX, VIRTIO_BLK_QUEUE_SIZE - 2);
        put_le32(cfg + CFG_BLK_SIZE, BLOCK_SECTOR_SIZE);
        if (block_image_discard_enabled(dev->image)) {
                put_le32(cfg + CFG_MAX_DISCARD_SECTORS, MAX_DISCARD_SECTORS);
                put_le32(cfg + CFG_MAX_DISCARD_SEG, 1);
                put_le32(cfg + CFG_DISCARD_ALIGNMENT, 4096 / BLOCK_SECTOR_SIZE);
                put_le32(cfg + CFG_MAX_WRITE_ZEROES_SECTORS, MAX_DISCARD_SECTORS);
                put_le32(cfg + CFG_MAX_WRITE_ZEROES_SEG, 1);
                cfg[CFG_WRITE_ZEROES_MAY_UNMAP] = 1;
        }
        memcpy(buf, cfg + offset, size);
}

static void blk_config_write(_unused_ void *backend, _unused_ uint32_t offset,
                             _unused_ const uint8_t *buf, _unused_ unsigned size) {
        /* Only 'writeback' is writable, and only with CONFIG_WCE, which is not offered. */
}

/* Status into the last writable byte, used entry, interrupt. Lock held. */
static void complete_locked(VirtioBlk *dev, BlkReq *req, uint8_t status, uint32_t data_written) {
        VirtQueue *vq = req->vq;
        uint32_t written = 0;

        if (req->chain.generation != vq->generation || !virtqueue_usable(vq))
                return;         /* reset since: the driver no longer owns this chain */

        if (req->chain.in_len > 0) {
                virtqueue_chain_write(&req->chain, req->chain.in_len - 1, &status, 1);
                written = data_written + 1;
        }
        if (status != VIRTIO_BLK_S_OK)
                dev->stats.errors++;
        if (virtqueue_push(vq, &req->chain, written) == 0)
                virtio_mmio_notify_locked(dev->transport, vq);
}

/* iovecs for [offset, offset+len) of the readable (out) or writable (in) part of the chain. */
static unsigned chain_iov(const VirtqChain *chain, bool in, uint64_t offset, uint64_t len, struct iovec *iov) {
        unsigned first = in ? chain->n_out : 0, end = in ? chain->n_out + chain->n_in : chain->n_out, n = 0;

        for (unsigned s = first; s < end && len > 0; s++) {
                const VirtqSeg *seg = &chain->seg[s];
                uint64_t k;

                if (offset >= seg->len) {
                        offset -= seg->len;
                        continue;
                }
                k = MIN((uint64_t) seg->len - offset, len);
                iov[n++] = (struct iovec) { .iov_base = seg->ptr + offset, .iov_len = (size_t) k };
                len -= k;
                offset = 0;
        }
        return n;
}

static int do_segments(VirtioBlk *dev, BlkReq *req) {
        uint32_t n = (req->chain.out_len - HEADER_SIZE) / SEGMENT_SIZE;

        for (uint32_t i = 0; i < n; i++) {
                uint8_t seg[SEGMENT_SIZE];
                uint64_t sector;
                uint32_t count, flags;
                int r;

                virtqueue_chain_read(&req->chain, HEADER_SIZE + (size_t) i * SEGMENT_SIZE, seg, sizeof(seg));
                memcpy(&sector, seg, 8);
                memcpy(&count, seg + 8, 4);
                memcpy(&flags, seg + 12, 4);
                sector = le64toh(sector);
                count = le32toh(count);
                flags = le32toh(flags);

                if (req->type == VIRTIO_BLK_T_DISCARD ? flags != 0 : (flags & ~WRITE_ZEROES_FLAG_UNMAP) != 0)
                        return -EOPNOTSUPP;
                if (sector > capacity(dev) || count > capacity(dev) - sector)
                        return -EINVAL;

                if (req->type == VIRTIO_BLK_T_DISCARD)
                        r = block_image_discard(dev->image, sector * BLOCK_SECTOR_SIZE,
                                                (uint64_t) count * BLOCK_SECTOR_SIZE);
                else
                        r = block_image_write_zeroes(dev->image, sector * BLOCK_SECTOR_SIZE,
                                                     (uint64_t) count * BLOCK_SECTOR_SIZE);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* On a worker thread: the I/O, then the completion under the device lock. */
static void blk_run(BlockJob *job) {
        BlkReq *req = (BlkReq *) job;
        VirtioBlk *dev = req->dev;
        struct iovec iov[VIRTQ_MAX_SIZE];
        uint64_t len = 0, offset = req->sector * BLOCK_SECTOR_SIZE;
        uint8_t status = VIRTIO_BLK_S_OK;
        unsigned n;
        int r = 0;

        switch (req->type) {
        case VIRTIO_BLK_T_IN:
                len = req->chain.in_len - 1;
                n = chain_iov(&req->chain, true, 0, len, iov);
                r = block_image_readv(dev->image, offset, iov, n);
                break;
        case VIRTIO_BLK_T_OUT:
                len = req->chain.out_len - HEADER_SIZE;
                n = chain_iov(&req->chain, false, HEADER_SIZE, len, iov);
                r = block_image_writev(dev->image, offset, iov, n);
                break;
        case VIRTIO_BLK_T_FLUSH:
                r = block_image_flush(dev->image);
                break;
        case VIRTIO_BLK_T_DISCARD:
        case VIRTIO_BLK_T_WRITE_ZEROES:
                r = do_segments(dev, req);
                break;
        }
        if (r == -EOPNOTSUPP)
                status = VIRTIO_BLK_S_UNSUPP;
        else if (r < 0)
                status = VIRTIO_BLK_S_IOERR;

        virtio_mmio_lock(dev->transport);
        if (status == VIRTIO_BLK_S_OK) {
                if (req->type == VIRTIO_BLK_T_IN) {
                        dev->stats.read_ops++;
                        dev->stats.read_bytes += len;
                } else if (req->type == VIRTIO_BLK_T_OUT) {
                        dev->stats.write_ops++;
                        dev->stats.write_bytes += len;
                } else if (req->type == VIRTIO_BLK_T_FLUSH)
                        dev->stats.flush_ops++;
        }
        complete_locked(dev, req, status, req->type == VIRTIO_BLK_T_IN && status == VIRTIO_BLK_S_OK ? (uint32_t) len : 0);
        virtio_mmio_unlock(dev->transport);

        free(req);
}

/* Whether [sector*512, sector*512 + len) lies in the disk, without overflow. */
static bool in_range(const VirtioBlk *dev, uint64_t sector, uint64_t len) {
        if (len % BLOCK_SECTOR_SIZE != 0 || sector > capacity(dev))
                return false;
        return len / BLOCK_SECTOR_SIZE <= capacity(dev) - sector;
}

/*
 * Checks a popped request. Returns 1 when it must go to a worker, or 0 with
 * *status and *data set when it is answered at once. Lock held.
 */
static int check_request(VirtioBlk *dev, BlkReq *req, uint8_t *status, uint32_t *data) {
        const VirtqChain *c = &req->chain;
        uint8_t hdr[HEADER_SIZE];
        uint32_t type;
        uint64_t sector;
        bool readonly = block_image_readonly(dev->image);

        *status = VIRTIO_BLK_S_IOERR;
        *data = 0;

        if (c->in_len == 0)
                return 0;               /* no room for a status */
        if (c->out_len < HEADER_SIZE)
                return 0;               /* no (readable) header */

        virtqueue_chain_read(c, 0, hdr, sizeof(hdr));
        memcpy(&type, hdr, 4);
        memcpy(&sector, hdr + 8, 8);
        req->type = type = le32toh(type);
        req->sector = sector = le64toh(sector);

        switch (type) {
        case VIRTIO_BLK_T_IN:
                return in_range(dev, sector, c->in_len - 1) ? 1 : 0;

        case VIRTIO_BLK_T_OUT:
                if (readonly)
                        return 0;
                return in_range(dev, sector, c->out_len - HEADER_SIZE) ? 1 : 0;

        case VIRTIO_BLK_T_FLUSH:
                return 1;

        case VIRTIO_BLK_T_GET_ID: {
                uint32_t n = MIN(c->in_len - 1, VIRTIO_BLK_ID_BYTES);

                virtqueue_chain_write(c, 0, dev->serial, n);
                *status = VIRTIO_BLK_S_OK;
                *data = n;
                return 0;
        }

        case VIRTIO_BLK_T_DISCARD:
        case VIRTIO_BLK_T_WRITE_ZEROES: {
                uint32_t payload = c->out_len - HEADER_SIZE;

                if (!block_image_discard_enabled(dev->image)) {
                        *status = VIRTIO_BLK_S_UNSUPP;
                        return 0;
                }
                if (readonly || payload == 0 || payload % SEGMENT_SIZE != 0 ||
                    payload / SEGMENT_SIZE > VIRTIO_BLK_MAX_DISCARD_SEG)
                        return 0;
                return 1;
        }

        default:
                *status = VIRTIO_BLK_S_UNSUPP;
                return 0;
        }
}

/* Pops every available request: answers the bad ones, hands the rest to the workers. Lock held. */
static void process_locked(VirtioBlk *dev) {
        VirtQueue *vq = virtio_mmio_queue(dev->transport, 0);

        if (!virtio_mmio_driver_ok_locked(dev->transport))
                return;

        for (;;) {
                BlkReq *req = malloc(sizeof(BlkReq));
                uint8_t status;
                uint32_t data;
                int r;

                if (!req) {
                        /* Out of memory: the requests stay in the ring; the next notify retries. */
                        return;
                }
                r = virtqueue_pop(vq, &req->chain);
                if (r <= 0) {
                        free(req);
                        return;
                }
                req->dev = dev;
                req->vq = vq;
                req->type = UINT32_MAX;
                req->sector = 0;

                if (check_request(dev, req, &status, &data) == 0) {
                        complete_locked(dev, req, status, data);
                        free(req);
                        continue;
                }
                req->job.run = blk_run;
                block_workers_submit(dev->workers, &req->job);
        }
}

static void blk_queue_notify(void *backend, _unused_ unsigned index) {
        process_locked(backend);
}

static void blk_driver_ok(void *backend) {
        process_locked(backend);
}

VirtioMmio *virtio_blk_transport(VirtioBlk *dev) {
        return dev ? dev->transport : NULL;
}

void virtio_blk_reset(VirtioBlk *dev) {
        if (dev)
                virtio_mmio_reset(dev->transport);
}

void virtio_blk_drain(VirtioBlk *dev) {
        if (dev)
                block_workers_drain(dev->workers);
}

const char *virtio_blk_serial(VirtioBlk *dev) {
        return dev->serial;
}

int virtio_blk_resize(VirtioBlk *dev, uint64_t size) {
        int r;

        r = block_image_resize(dev->image, size);
        if (r < 0)
                return r;
        virtio_mmio_lock(dev->transport);
        if (capacity(dev) != size / BLOCK_SECTOR_SIZE) {
                __atomic_store_n(&dev->capacity, size / BLOCK_SECTOR_SIZE, __ATOMIC_RELEASE);
                virtio_mmio_config_changed_locked(dev->transport);
        }
        virtio_mmio_unlock(dev->transport);
        return 0;
}

void virtio_blk_stats(VirtioBlk *dev, VirtioBlkStats *ret) {
        virtio_mmio_lock(dev->transport);
        *ret = dev->stats;
        virtio_mmio_unlock(dev->transport);
}

int virtio_blk_new(PhysMem *mem, const IrqLine *irq, BlockImage *image, const char *serial, VirtioBlk **ret) {
        _cleanup_(virtio_blk_freep) VirtioBlk *dev = NULL;
        VirtioDeviceOps ops;
        int r;

        if (!mem || !image || !ret)
                return -EINVAL;

        dev = calloc(1, sizeof(VirtioBlk));
        if (!dev)
                return -ENOMEM;
        dev->image = image;
        dev->capacity = block_image_size(image) / BLOCK_SECTOR_SIZE;
        strncpy(dev->serial, serial ? serial : "orrery", sizeof(dev->serial) - 1);

        ops = (VirtioDeviceOps) {
                .device_id = VIRTIO_ID_BLOCK,
                .features = (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_BLK_SIZE) |
                            (1ULL << VIRTIO_BLK_F_FLUSH),
                .num_queues = 1,
                .config_size = VIRTIO_BLK_CONFIG_SIZE,
                .queue_num_max = blk_queue_num_max,
                .config_read = blk_config_read,
                .config_write = blk_config_write,
                .queue_notify = blk_queue_notify,
                .driver_ok = blk_driver_ok,
        };
        if (block_image_readonly(image))
                ops.features |= 1ULL << VIRTIO_BLK_F_RO;
        if (block_image_discard_enabled(image))
                ops.features |= (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);

        r = virtio_mmio_new(mem, irq, &ops, dev, &dev->transport);
        if (r < 0)
                return r;
        r = block_workers_new(BLOCK_WORKERS_DEFAULT, &dev->workers);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(dev);
        return 0;
}

VirtioBlk *virtio_blk_free(VirtioBlk *dev) {
        if (!dev)
                return NULL;
        /* Runs the requests still queued (their completions need the transport), then joins. */
        block_workers_free(dev->workers);
        virtio_mmio_free(dev->transport);
        free(dev);
        return NULL;
}

static int blk_type_create(const DeviceContext *ctx, void **ret, VirtioMmio **ret_transport) {
        const VirtioBlkVariant *v = ctx->variant;
        VirtioBlk *dev;
        int r;

        r = virtio_blk_new(ctx->mem, &ctx->irq, v->image, v->serial, &dev);
        if (r < 0)
                return r;
        *ret = dev;
        *ret_transport = virtio_blk_transport(dev);
        return 0;
}

static void blk_type_free(void *backend) {
        virtio_blk_free(backend);
}

void virtio_blk_variant_init(VirtioBlkVariant *v, BlockImage *image, const char *serial) {
        *v = (VirtioBlkVariant) {
                .type = {
                        .name = "virtio-blk",
                        .create = blk_type_create,
                        .free = blk_type_free,
                },
                .image = image,
                .serial = serial,
        };
}
