/* SPDX-License-Identifier: MIT */
/*
 * virtio-net: see virtio_net.h for the queues, back-pressure and threading.
 */

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "macro.h"
#include "devices/virtio_net.h"

#define RXQ 0U
#define TXQ 1U
#define NUM_BUFFERS_OFFSET 10U

typedef struct Frame {
        uint8_t *data;
        size_t len;
} Frame;

typedef struct FrameRing {
        Frame *f;
        unsigned cap, head, count;
} FrameRing;

/* 'transport' owns the device lock, which protects everything from 'link' on; mac and tx_fd are constant. */
struct VirtioNet {
        VirtioMmio *transport;
        uint8_t mac[6];
        int tx_fd;

        bool link;
        bool tx_stalled;                /* tx ring was full: guest buffers left in the ring */
        FrameRing tx;                   /* guest → host */
        FrameRing backlog;              /* host → guest, waiting for buffers */
        VirtioNetStats stats;

        VirtqChain chain;               /* scratch, lock held */
        VirtqChain rx[VIRTIO_NET_RX_CHAINS];
};

static int ring_init(FrameRing *r, unsigned cap) {
        r->f = calloc(cap, sizeof(Frame));
        r->cap = cap;
        return r->f ? 0 : -ENOMEM;
}

static void ring_clear(FrameRing *r) {
        while (r->count > 0) {
                free(r->f[r->head].data);
                r->head = (r->head + 1) % r->cap;
                r->count--;
        }
        r->head = 0;
}

static bool ring_push(FrameRing *r, uint8_t *data, size_t len) {
        if (r->count == r->cap)
                return false;
        r->f[(r->head + r->count) % r->cap] = (Frame) { data, len };
        r->count++;
        return true;
}

static Frame *ring_peek(FrameRing *r) {
        return r->count ? &r->f[r->head] : NULL;
}

static void ring_drop(FrameRing *r) {
        free(r->f[r->head].data);
        r->head = (r->head + 1) % r->cap;
        r->count--;
}

static uint16_t net_queue_num_max(_unused_ void *backend, _unused_ unsigned index) {
        return VIRTIO_NET_QUEUE_SIZE;
}

static void net_config_read(void *backend, uint32_t offset, uint8_t *buf, unsigned size) {
        VirtioNet *dev = backend;
        uint8_t cfg[VIRTIO_NET_CONFIG_SIZE] = {};
        uint16_t status = htole16(dev->link ? VIRTIO_NET_S_LINK_UP : 0);

        memcpy(cfg, dev->mac, 6);
        memcpy(cfg + 6, &status, 2);
        memcpy(buf, cfg + offset, size);
}

static void net_config_write(_unused_ void *backend, _unused_ uint32_t offset, _unused_ const uint8_t *buf,
                             _unused_ unsigned size) {
        /* The MAC is read-only (VIRTIO_NET_F_CTRL_MAC_ADDR is not offered). */
}

static void wake_host(VirtioNet *dev) {
        uint64_t one = 1;

        (void) !write(dev->tx_fd, &one, sizeof(one));
}

/* Moves guest frames into the tx ring while it has room. Lock held. */
static void tx_process_locked(VirtioNet *dev) {
        VirtQueue *vq = virtio_mmio_queue(dev->transport, TXQ);
        bool pushed = false, queued = false;

        if (!virtio_mmio_driver_ok_locked(dev->transport))
                return;

        dev->tx_stalled = false;
        for (;;) {
                uint8_t *data;
                size_t len;

                if (dev->tx.count == dev->tx.cap) {
                        dev->tx_stalled = true;
                        break;
                }
                if (virtqueue_pop(vq, &dev->chain) <= 0)
                        break;

                if (dev->chain.out_len <= VIRTIO_NET_HDR_SIZE ||
                    dev->chain.out_len - VIRTIO_NET_HDR_SIZE > VIRTIO_NET_FRAME_MAX) {
                        dev->stats.tx_dropped++;
                } else {
                        len = dev->chain.out_len - VIRTIO_NET_HDR_SIZE;
                        data = malloc(len);
                        if (!data)
                                dev->stats.tx_dropped++;
                        else {
                                virtqueue_chain_read(&dev->chain, VIRTIO_NET_HDR_SIZE, data, len);
                                ring_push(&dev->tx, data, len);
                                dev->stats.tx_packets++;
                                dev->stats.tx_bytes += len;
                                queued = true;
                        }
                }
                if (virtqueue_push(vq, &dev->chain, 0) == 0)
                        pushed = true;
        }
        if (pushed)
                virtio_mmio_notify_locked(dev->transport, vq);
        if (queued)
                wake_host(dev);
}

/* Writes bytes [off, off+len) of header||frame at offset 0 of the chain. */
static void write_span(const VirtqChain *c, const uint8_t *hdr, const uint8_t *frame, size_t off, size_t len) {
        size_t done = 0;

        if (off < VIRTIO_NET_HDR_SIZE) {
                size_t n = MIN(len, VIRTIO_NET_HDR_SIZE - off);

                virtqueue_chain_write(c, 0, hdr + off, n);
                done = n;
                off += n;
        }
        if (done < len)
                virtqueue_chain_write(c, done, frame + (off - VIRTIO_NET_HDR_SIZE), len - done);
}

/*
 * Copies one frame into rx buffers. Returns 0 (delivered), -EAGAIN (not
 * enough buffers yet: nothing consumed) or -EMSGSIZE (it can never fit:
 * nothing consumed). Lock held.
 */
static int rx_deliver_locked(VirtioNet *dev, const uint8_t *frame, size_t len) {
        VirtQueue *vq = virtio_mmio_queue(dev->transport, RXQ);
        bool mergeable = virtio_mmio_driver_features_locked(dev->transport) & (1ULL << VIRTIO_NET_F_MRG_RXBUF);
        uint8_t hdr[VIRTIO_NET_HDR_SIZE] = {};
        uint32_t lens[VIRTIO_NET_RX_CHAINS];
        size_t total = VIRTIO_NET_HDR_SIZE + len, off = 0;
        unsigned n = 0;
        uint16_t nb;

        if (!virtqueue_usable(vq))
                return -EAGAIN;

        while (off < total) {
                int r;

                if (n == VIRTIO_NET_RX_CHAINS || (n == 1 && !mergeable)) {
                        /* Buffers this small never take the frame: give them back untouched. */
                        virtqueue_unpop(vq, n);
                        return -EMSGSIZE;
                }
                r = virtqueue_pop(vq, &dev->rx[n]);
                if (r <= 0) {
                        /* Not popped: the chains popped so far go back to the ring, unused. */
                        virtqueue_unpop(vq, n);
                        return -EAGAIN;
                }
                lens[n] = (uint32_t) MIN((size_t) dev->rx[n].in_len, total - off);
                off += lens[n];
                n++;
        }

        nb = htole16((uint16_t) n);
        memcpy(hdr + NUM_BUFFERS_OFFSET, &nb, 2);
        off = 0;
        for (unsigned i = 0; i < n; i++) {
                write_span(&dev->rx[i], hdr, frame, off, lens[i]);
                off += lens[i];
                virtqueue_push(vq, &dev->rx[i], lens[i]);
        }
        virtio_mmio_notify_locked(dev->transport, vq);
        dev->stats.rx_packets++;
        dev->stats.rx_bytes += len;
        return 0;
}

static void rx_flush_locked(VirtioNet *dev) {
        Frame *f;

        while ((f = ring_peek(&dev->backlog))) {
                int r = rx_deliver_locked(dev, f->data, f->len);

                if (r == -EAGAIN)
                        break;
                if (r < 0)
                        dev->stats.rx_dropped++;
                ring_drop(&dev->backlog);
        }
}

static void net_queue_notify(void *backend, unsigned index) {
        VirtioNet *dev = backend;

        if (index == TXQ)
                tx_process_locked(dev);
        else
                rx_flush_locked(dev);
}

static void net_driver_ok(void *backend) {
        tx_process_locked(backend);
}

static void net_reset(void *backend) {
        VirtioNet *dev = backend;

        ring_clear(&dev->backlog);
        dev->tx_stalled = false;
}

int virtio_net_receive(VirtioNet *dev, const uint8_t *frame, size_t len) {
        int r;

        if (!dev || !frame || len == 0 || len > VIRTIO_NET_FRAME_MAX)
                return -EINVAL;

        virtio_mmio_lock(dev->transport);
        if (!dev->link || !virtio_mmio_driver_ok_locked(dev->transport)) {
                dev->stats.rx_dropped++;
                goto out;
        }
        rx_flush_locked(dev);
        r = dev->backlog.count ? -EAGAIN : rx_deliver_locked(dev, frame, len);
        if (r == -EAGAIN) {
                uint8_t *copy = malloc(len);

                if (!copy || !ring_push(&dev->backlog, copy, len)) {
                        free(copy);
                        dev->stats.rx_dropped++;
                } else
                        memcpy(copy, frame, len);
        } else if (r < 0)
                dev->stats.rx_dropped++;
out:
        virtio_mmio_unlock(dev->transport);
        return 0;
}

ssize_t virtio_net_tx_pop(VirtioNet *dev, uint8_t *buf, size_t size) {
        uint64_t v;
        Frame *f;
        ssize_t r = 0;

        virtio_mmio_lock(dev->transport);
        f = ring_peek(&dev->tx);
        if (f) {
                if (f->len > size) {
                        dev->stats.tx_dropped++;
                        r = -EMSGSIZE;
                } else {
                        memcpy(buf, f->data, f->len);
                        r = (ssize_t) f->len;
                }
                ring_drop(&dev->tx);
                if (dev->tx_stalled)
                        tx_process_locked(dev);
        } else
                (void) !read(dev->tx_fd, &v, sizeof(v));
        virtio_mmio_unlock(dev->transport);
        return r;
}

int virtio_net_tx_fd(VirtioNet *dev) {
        return dev->tx_fd;
}

void virtio_net_set_link(VirtioNet *dev, bool up) {
        virtio_mmio_lock(dev->transport);
        if (dev->link != up) {
                dev->link = up;
                virtio_mmio_config_changed_locked(dev->transport);
        }
        virtio_mmio_unlock(dev->transport);
}

bool virtio_net_link(VirtioNet *dev) {
        bool up;

        virtio_mmio_lock(dev->transport);
        up = dev->link;
        virtio_mmio_unlock(dev->transport);
        return up;
}

void virtio_net_mac(VirtioNet *dev, uint8_t ret[6]) {
        memcpy(ret, dev->mac, 6);
}

void virtio_net_stats(VirtioNet *dev, VirtioNetStats *ret) {
        virtio_mmio_lock(dev->transport);
        *ret = dev->stats;
        virtio_mmio_unlock(dev->transport);
}

VirtioMmio *virtio_net_transport(VirtioNet *dev) {
        return dev ? dev->transport : NULL;
}

void virtio_net_reset(VirtioNet *dev) {
        if (dev)
                virtio_mmio_reset(dev->transport);
}

int virtio_net_new(PhysMem *mem, const IrqLine *irq, const uint8_t mac[6], VirtioNet **ret) {
        _cleanup_(virtio_net_freep) VirtioNet *dev = NULL;
        VirtioDeviceOps ops = {
                .device_id = VIRTIO_ID_NET,
                .features = (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS) |
                            (1ULL << VIRTIO_NET_F_MRG_RXBUF),
                .num_queues = 2,
                .config_size = VIRTIO_NET_CONFIG_SIZE,
                .queue_num_max = net_queue_num_max,
                .config_read = net_config_read,
                .config_write = net_config_write,
                .queue_notify = net_queue_notify,
                .driver_ok = net_driver_ok,
                .reset = net_reset,
        };
        int r;

        if (!mem || !mac || !ret)
                return -EINVAL;

        dev = calloc(1, sizeof(VirtioNet));
        if (!dev)
                return -ENOMEM;
        dev->tx_fd = -EBADF;
        memcpy(dev->mac, mac, 6);
        dev->link = true;

        r = ring_init(&dev->tx, VIRTIO_NET_TX_QUEUE);
        if (r < 0)
                return r;
        r = ring_init(&dev->backlog, VIRTIO_NET_BACKLOG);
        if (r < 0)
                return r;
        dev->tx_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (dev->tx_fd < 0)
                return -errno;
        r = virtio_mmio_new(mem, irq, &ops, dev, &dev->transport);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(dev);
        return 0;
}

VirtioNet *virtio_net_free(VirtioNet *dev) {
        if (!dev)
                return NULL;
        virtio_mmio_free(dev->transport);
        if (dev->tx.f)
                ring_clear(&dev->tx);
        if (dev->backlog.f)
                ring_clear(&dev->backlog);
        free(dev->tx.f);
        free(dev->backlog.f);
        safe_close(dev->tx_fd);
        free(dev);
        return NULL;
}

static int net_type_create(const DeviceContext *ctx, void **ret, VirtioMmio **ret_transport) {
        const VirtioNetVariant *v = ctx->variant;
        VirtioNet *dev;
        int r;

        r = virtio_net_new(ctx->mem, &ctx->irq, v->mac, &dev);
        if (r < 0)
                return r;
        *ret = dev;
        *ret_transport = virtio_net_transport(dev);
        return 0;
}

static void net_type_free(void *backend) {
        virtio_net_free(backend);
}

void virtio_net_variant_init(VirtioNetVariant *v, const uint8_t mac[6]) {
        *v = (VirtioNetVariant) {
                .type = {
                        .name = "virtio-net",
                        .create = net_type_create,
                        .free = net_type_free,
                },
        };
        memcpy(v->mac, mac, 6);
}
