/* SPDX-License-Identifier: MIT */
/*
 * virtio-rng through its slot in the device table: DeviceID 4, one queue,
 * writable buffers filled with random bytes (capped per buffer), read-only
 * buffers returned empty, a hostile driver's bad chain breaking only the
 * queue, and a reset bringing it back.
 */

#include <string.h>

#include "devices/virtio_rng.h"
#include "guest.h"
#include "macro.h"
#include "tap.h"

static DeviceHost host;

static bool all_zero(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        return false;
        return true;
}

int main(void) {
        const DeviceDescriptor *d = &virtio_mmio_device;
        Guest g;
        GuestQueue q;
        void *slot = NULL;
        uint32_t id, len;

        if (guest_init(&g) < 0)
                return 1;
        DeviceContext ctx = {
                .host = &host,
                .mem = &g.mem,
                .base = GUEST_MMIO_BASE,
                .size = d->size,
                .irq_number = 1,
                .irq = guest_irq(&g),
                .variant = &virtio_rng_type,
        };
        CHECK_EQ_U64(d->create(&ctx, &slot), 0, "create the rng's slot");
        void *rng = virtio_mmio_slot_backend(slot, &virtio_rng_type);
        CHECK(rng != NULL, "the slot holds an rng");
        if (!rng)
                return tap_finish();
        guest_attach(&g, virtio_mmio_slot_transport(slot));

        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_RNG, "DeviceID 4 (entropy source)");
        CHECK_EQ_U64(guest_device_features(&g), 1ULL << VIRTIO_F_VERSION_1, "only VERSION_1 offered");
        guest_negotiate(&g, 1ULL << VIRTIO_F_VERSION_1);
        guest_wr(&g, VIRTIO_MMIO_QUEUE_SEL, 1);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_QUEUE_NUM_MAX), 0, "no second queue");
        CHECK(guest_queue_setup(&g, &q, 0, 8), "requestq ready");
        CHECK(guest_driver_ok(&g) & VIRTIO_STATUS_DRIVER_OK, "DRIVER_OK");

        uint64_t a = guest_alloc(&g, 16, 8), b = guest_alloc(&g, 16, 8), big = guest_alloc(&g, 3 * VIRTIO_RNG_CHUNK, 8);
        uint64_t ro = guest_alloc(&g, 16, 8);
        guest_add_buf(&g, &q, a, 16, true);
        guest_add_buf(&g, &q, b, 16, true);
        guest_add_buf(&g, &q, big, 3 * VIRTIO_RNG_CHUNK, true);
        guest_add_buf(&g, &q, ro, 16, false);
        guest_kick(&g, &q);

        unsigned got = 0;
        uint32_t lens[4] = {};
        while (got < 4 && guest_get_used(&g, &q, &id, &len))
                lens[got++] = len;
        CHECK_EQ_U64(got, 4, "all four buffers returned");
        CHECK(lens[0] == 16 && lens[1] == 16, "16-byte buffers filled whole (%u, %u)", lens[0], lens[1]);
        CHECK_EQ_U64(lens[2], VIRTIO_RNG_CHUNK, "a large buffer gets one chunk");
        CHECK_EQ_U64(lens[3], 0, "a read-only buffer comes back empty");
        CHECK(!all_zero(guest_ptr(&g, a), 16) && !all_zero(guest_ptr(&g, big), VIRTIO_RNG_CHUNK),
              "the bytes are not zero");
        CHECK(memcmp(guest_ptr(&g, a), guest_ptr(&g, b), 16) != 0, "two requests get different bytes");
        CHECK(all_zero((uint8_t *) guest_ptr(&g, big) + VIRTIO_RNG_CHUNK, 2 * VIRTIO_RNG_CHUNK),
              "nothing written past what was reported");
        CHECK(all_zero(guest_ptr(&g, ro), 16), "the read-only buffer is untouched");
        CHECK(g.irq_raises > 0, "the driver was interrupted");

        /* Hostile: a buffer outside RAM breaks the queue, nothing else. */
        guest_add_buf(&g, &q, 0x1000, 64, true);
        guest_kick(&g, &q);
        CHECK(guest_needs_reset(&g), "a buffer outside RAM: DEVICE_NEEDS_RESET");
        CHECK(guest_fb_intact(&g), "the framebuffer is untouched");

        /* A machine reset brings the device back to its power-on state. */
        d->reset(slot);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_STATUS), 0, "reset: Status 0");
        guest_negotiate(&g, 1ULL << VIRTIO_F_VERSION_1);
        CHECK(guest_queue_setup(&g, &q, 0, 8), "requestq ready again");
        guest_driver_ok(&g);
        guest_add_buf(&g, &q, a, 16, true);
        guest_kick(&g, &q);
        CHECK(guest_get_used(&g, &q, &id, &len) && len == 16, "serving again after the reset");

        d->free(slot);
        guest_done(&g);
        return tap_finish();
}
