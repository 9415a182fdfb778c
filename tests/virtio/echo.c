/* SPDX-License-Identifier: MIT */
/*
 * The echo test backend: see echo.h.
 */

#include <string.h>

#include "macro.h"
#include "echo.h"

static uint16_t echo_queue_num_max(_unused_ void *backend, unsigned index) {
        return index == 0 ? 16 : 256;
}

static void echo_config_read(void *backend, uint32_t offset, uint8_t *buf, unsigned size) {
        Echo *e = backend;

        memcpy(buf, e->config + offset, size);
}

static void echo_config_write(void *backend, uint32_t offset, const uint8_t *buf, unsigned size) {
        Echo *e = backend;

        memcpy(e->config + offset, buf, size);
}

static void echo_queue_notify(void *backend, unsigned index) {
        Echo *e = backend;
        VirtQueue *vq = virtio_mmio_queue(e->transport, index);
        bool pushed = false;
        int r;

        e->notifies[index]++;

        while ((r = virtqueue_pop(vq, &e->chain)) > 0) {
                size_t n, filled = 0;

                e->chains++;
                e->last_n_out = e->chain.n_out;
                e->last_n_in = e->chain.n_in;
                e->last_out_len = e->chain.out_len;
                e->last_in_len = e->chain.in_len;

                n = virtqueue_chain_read(&e->chain, 0, e->seen + e->seen_len, ECHO_SEEN_MAX - e->seen_len);
                e->seen_len += n;

                /* Fill the writable segments directly (at most ECHO_FILL_MAX bytes, to bound the fuzz loop). */
                for (unsigned s = e->chain.n_out; s < e->chain.n_out + e->chain.n_in && filled < ECHO_FILL_MAX; s++) {
                        size_t len = MIN((size_t) e->chain.seg[s].len, ECHO_FILL_MAX - filled);

                        memset(e->chain.seg[s].ptr, ECHO_FILL, len);
                        filled += len;
                }

                if (e->no_push)
                        continue;
                if (virtqueue_push(vq, &e->chain, e->chain.in_len) == 0)
                        pushed = true;
        }
        if (r < 0) {
                e->pop_errors++;
                e->last_error = r;
        }

        if (pushed)
                virtio_mmio_notify_locked(e->transport, vq);
}

static void echo_driver_ok(void *backend) {
        Echo *e = backend;

        e->driver_oks++;
}

static void echo_reset(void *backend) {
        Echo *e = backend;

        e->resets++;
}

static void echo_dispatch(void *backend) {
        Echo *e = backend;

        e->dispatches++;
}

const VirtioDeviceOps echo_ops = {
        .device_id = ECHO_DEVICE_ID,
        .features = ECHO_FEATURES,
        .num_queues = 2,
        .config_size = 8,
        .queue_num_max = echo_queue_num_max,
        .config_read = echo_config_read,
        .config_write = echo_config_write,
        .queue_notify = echo_queue_notify,
        .driver_ok = echo_driver_ok,
        .reset = echo_reset,
        .dispatch = echo_dispatch,
};

int echo_new(Echo *e, PhysMem *mem, const IrqLine *irq) {
        *e = (Echo) {};
        return virtio_mmio_new(mem, irq, &echo_ops, e, &e->transport);
}

void echo_free(Echo *e) {
        e->transport = virtio_mmio_free(e->transport);
}
