/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * virtio-rng (virtio entropy device, device ID 4): one request queue; every
 * buffer the driver makes available is filled with bytes from the host's
 * getrandom() and returned (at most VIRTIO_RNG_CHUNK bytes per buffer: the
 * driver asks again for more). No features, no configuration space.
 *
 * Threading: the transport's lock covers everything; requests are served
 * on the CPU thread when the driver notifies the queue.
 */

#include "devices/virtio_mmio.h"

#define VIRTIO_ID_RNG 4U
#define VIRTIO_RNG_QUEUE_SIZE 64U
#define VIRTIO_RNG_CHUNK 4096U

extern const VirtioDeviceType virtio_rng_type;
