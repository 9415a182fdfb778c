/* SPDX-License-Identifier: MIT */
/*
 * virtio-rng: see virtio_rng.h. The only guest-controlled input is the
 * request queue, which the virtqueue layer bounds-checks; a buffer without
 * a writable part is returned with 0 bytes.
 */

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "devices/virtio_rng.h"
#include "macro.h"

typedef struct VirtioRng {
        VirtioMmio *transport;
        VirtqChain chain;               /* scratch for the request being served; under the transport's lock */
} VirtioRng;

static uint16_t rng_queue_num_max(_unused_ void *backend, _unused_ unsigned index) {
        return VIRTIO_RNG_QUEUE_SIZE;
}

/* Fills the chain's writable part, up to VIRTIO_RNG_CHUNK bytes; returns the count. */
static uint32_t fill(const VirtqChain *chain) {
        uint8_t buf[VIRTIO_RNG_CHUNK];
        size_t want = MIN((size_t) chain->in_len, sizeof(buf));
        ssize_t n;

        if (want == 0)
                return 0;
        /* The urandom pool: never blocks once the host is booted; a short read is returned short. */
        n = getrandom(buf, want, GRND_NONBLOCK);
        if (n <= 0)
                return 0;
        return (uint32_t) virtqueue_chain_write(chain, 0, buf, (size_t) n);
}

static void rng_queue_notify(void *backend, unsigned index) {
        VirtioRng *rng = backend;
        VirtQueue *vq = virtio_mmio_queue(rng->transport, index);
        bool pushed = false;

        if (!vq)
                return;
        /* At most one round of the ring per notification: a driver cannot keep the CPU thread here. */
        for (unsigned i = 0; i < VIRTIO_RNG_QUEUE_SIZE; i++) {
                if (virtqueue_pop(vq, &rng->chain) <= 0)
                        break;
                if (virtqueue_push(vq, &rng->chain, fill(&rng->chain)) < 0)
                        break;
                pushed = true;
        }
        if (pushed)
                virtio_mmio_notify_locked(rng->transport, vq);
}

/* Requests made available before DRIVER_OK are served now. */
static void rng_driver_ok(void *backend) {
        rng_queue_notify(backend, 0);
}

static void rng_reset_backend(_unused_ void *backend) {
}

static int rng_create(const DeviceContext *ctx, void **ret, VirtioMmio **ret_transport) {
        static const VirtioDeviceOps ops = {
                .device_id = VIRTIO_ID_RNG,
                .num_queues = 1,
                .queue_num_max = rng_queue_num_max,
                .queue_notify = rng_queue_notify,
                .driver_ok = rng_driver_ok,
                .reset = rng_reset_backend,
        };
        _cleanup_free_ VirtioRng *rng = calloc(1, sizeof(VirtioRng));
        int r;

        if (!rng)
                return -ENOMEM;
        r = virtio_mmio_new(ctx->mem, &ctx->irq, &ops, rng, &rng->transport);
        if (r < 0)
                return r;
        *ret_transport = rng->transport;
        *ret = TAKE_PTR(rng);
        return 0;
}

static void rng_free(void *backend) {
        VirtioRng *rng = backend;

        virtio_mmio_free(rng->transport);
        free(rng);
}

/* No state beyond the transport's: save/load are the transport's alone. */
const VirtioDeviceType virtio_rng_type = {
        .name = "virtio-rng",
        .create = rng_create,
        .free = rng_free,
};
