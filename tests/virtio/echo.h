/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A test backend for the transport and virtqueue tests (DeviceID 42, not a
 * real virtio type): queue 0 (max 16) and queue 1 (max 256). On a notify it
 * pops every chain, copies the readable bytes into 'seen' (bounded), fills
 * every writable byte with ECHO_FILL and returns the chain with in_len.
 * Config space: 8 bytes of scratch the driver may read and write.
 */

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio_mmio.h"

#define ECHO_DEVICE_ID 42U
#define ECHO_FEATURES ((1ULL << 0) | (1ULL << 5))
#define ECHO_FILL 0xee
#define ECHO_SEEN_MAX 4096U
#define ECHO_FILL_MAX (1U << 20)

typedef struct Echo {
        VirtioMmio *transport;
        uint8_t config[8];
        unsigned notifies[2];
        unsigned chains;
        unsigned pop_errors;
        int last_error;
        unsigned resets, driver_oks, dispatches;
        uint32_t last_n_out, last_n_in, last_out_len, last_in_len;
        uint8_t seen[ECHO_SEEN_MAX];
        size_t seen_len;
        bool no_push;                   /* pop but keep the chains (for stale-push tests) */
        VirtqChain chain;
} Echo;

extern const VirtioDeviceOps echo_ops;

int echo_new(Echo *e, PhysMem *mem, const IrqLine *irq);
void echo_free(Echo *e);
