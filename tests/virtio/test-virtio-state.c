/* SPDX-License-Identifier: MIT */
/*
 * Save/load of a virtio-mmio slot (transport registers, queue addresses and
 * ring positions) through the device descriptor: a driver brings the
 * keyboard up, its slot is saved and loaded into a fresh slot, which must
 * save the same bytes and keep serving the driver's queue where the first
 * left off. A slot loaded with its own state drives its interrupt line
 * again at that level. Corrupt states are refused and change nothing.
 */

#include <errno.h>
#include <linux/input-event-codes.h>
#include <string.h>

#include "devices/virtio_console.h"
#include "devices/virtio_input.h"
#include "guest.h"
#include "macro.h"
#include "tap.h"

static DeviceHost host;

static DeviceContext slot_context(Guest *g, const VirtioDeviceType *type) {
        return (DeviceContext) {
                .host = &host,
                .mem = &g->mem,
                .base = GUEST_MMIO_BASE,
                .size = virtio_mmio_device.size,
                .irq_number = 1,
                .irq = guest_irq(g),
                .variant = type,
        };
}

static VirtioInput *keyboard(void *slot) {
        return virtio_mmio_slot_backend(slot, &virtio_keyboard_type);
}

static int save(void *slot, StateWriter *w) {
        *w = (StateWriter) {};
        return virtio_mmio_device.save(slot, w);
}

int main(void) {
        const DeviceDescriptor *d = &virtio_mmio_device;
        Guest g;
        GuestQueue q;
        void *a = NULL, *b = NULL, *empty = NULL;
        StateWriter w1, w2, w3;
        uint32_t id, len;

        if (guest_init(&g) < 0)
                return 1;
        DeviceContext ctx = slot_context(&g, &virtio_keyboard_type);
        CHECK_EQ_U64(d->create(&ctx, &a), 0, "create the keyboard's slot");
        CHECK_EQ_U64(d->create(&ctx, &b), 0, "create a second keyboard slot");
        CHECK(keyboard(a) && keyboard(b), "the slots hold keyboards");
        CHECK(virtio_mmio_slot_backend(a, &virtio_tablet_type) == NULL, "... and no tablet");

        guest_attach(&g, virtio_input_transport(keyboard(a)));
        guest_negotiate(&g, 1ULL << VIRTIO_F_VERSION_1);
        CHECK(guest_queue_setup(&g, &q, 0, 8), "eventq ready");
        guest_driver_ok(&g);
        uint64_t buf = guest_alloc(&g, 8 * 4, 8);
        for (unsigned i = 0; i < 4; i++)
                guest_add_buf(&g, &q, buf + 8 * i, 8, true);
        guest_kick(&g, &q);
        CHECK_EQ_U64(virtio_input_key(keyboard(a), KEY_A, true), 0, "a key press before the save");
        CHECK(guest_get_used(&g, &q, &id, &len), "the driver got it");

        CHECK_EQ_U64(save(a, &w1), 0, "save");
        StateReader r = state_reader(w1.data, w1.size);

        /*
         * The interrupt is up and unacknowledged. Loading the slot's own
         * state drives the line again at that level: the PLIC's pending bit
         * is loaded along with the devices and must follow the device.
         */
        CHECK(g.irq_level, "the event's interrupt is up");
        unsigned drives = g.irq_raises + g.irq_redundant;
        CHECK_EQ_U64(d->load(a, &r), 0, "load the slot's own state back into it");
        CHECK_EQ_U64(g.irq_raises + g.irq_redundant, drives + 1, "the load drove the line once more");
        CHECK(g.irq_level, "... at the loaded level");

        r = state_reader(w1.data, w1.size);
        CHECK_EQ_U64(d->load(b, &r), 0, "load into the second slot");
        CHECK_EQ_U64(state_reader_finish(&r), 0, "the whole state consumed");
        CHECK_EQ_U64(save(b, &w2), 0, "save the loaded slot");
        CHECK(w1.size == w2.size && memcmp(w1.data, w2.data, w1.size) == 0, "the same state back (%zu bytes)", w1.size);

        /* The loaded device goes on where the first stopped: its next event lands in the driver's next buffer. */
        guest_attach(&g, virtio_input_transport(keyboard(b)));
        CHECK_EQ_U64(virtio_mmio_status(virtio_input_transport(keyboard(b))) & VIRTIO_STATUS_DRIVER_OK,
                     VIRTIO_STATUS_DRIVER_OK, "DRIVER_OK after the load");
        CHECK_EQ_U64(virtio_input_key(keyboard(b), KEY_A, false), 0, "a key release after the load");
        CHECK(guest_get_used(&g, &q, &id, &len), "the driver gets it from the loaded device");

        /* The state the refused loads below must leave alone. */
        state_writer_done(&w2);
        CHECK_EQ_U64(save(b, &w2), 0, "save after the release");
        CHECK(w1.size != w2.size || memcmp(w1.data, w2.data, w1.size) != 0, "the release moved the rings");

        /* Corrupt: Status (after the DeviceID and the queue count) above 0xff. */
        StateWriter bad = {};
        state_put_bytes(&bad, w1.data, w1.size);
        bad.data[9] = 1;
        r = state_reader(bad.data, bad.size);
        CHECK_EQ_U64(d->load(b, &r), (uint64_t) -ERANGE, "Status out of range refused");
        /* Queue 0's rings outside RAM: desc address after count, id, 6 u32, bool, u64 and queue 0's num. */
        size_t desc_at = 4 + 4 + 4 + 4 + 1 + 4 + 4 + 8 + 4 + 4 + 4;
        memcpy(bad.data, w1.data, w1.size);
        bad.data[desc_at + 7] = 0x7f;
        r = state_reader(bad.data, bad.size);
        CHECK_EQ_U64(d->load(b, &r), (uint64_t) -ERANGE, "a ready queue outside RAM refused");
        r = state_reader(w1.data, w1.size / 2);
        CHECK(d->load(b, &r) < 0, "a short state refused");
        CHECK_EQ_U64(save(b, &w3), 0, "save after the refusals");
        CHECK(w3.size == w2.size && memcmp(w3.data, w2.data, w2.size) == 0, "refused loads changed nothing");

        /* An empty slot saves its DeviceID 0 and refuses a keyboard's state. */
        DeviceContext ectx = slot_context(&g, NULL);
        CHECK_EQ_U64(d->create(&ectx, &empty), 0, "create an empty slot");
        r = state_reader(w1.data, w1.size);
        CHECK_EQ_U64(d->load(empty, &r), (uint64_t) -ERANGE, "an empty slot refuses a keyboard's state");

        /* The console: its ports' state (here: the host throttled the agent's port) survives a save and load. */
        void *c1 = NULL, *c2 = NULL;
        StateWriter cw1 = {}, cw2 = {};
        DeviceContext cctx = slot_context(&g, &virtio_console_type);
        CHECK(d->create(&cctx, &c1) == 0 && d->create(&cctx, &c2) == 0, "create two console slots");
        VirtioConsole *con = virtio_mmio_slot_backend(c1, &virtio_console_type);
        CHECK_EQ_U64(save(c2, &cw2), 0, "console: save a fresh one");
        CHECK_EQ_U64(virtio_console_throttle(con, VIRTIO_CONSOLE_AGENT_PORT, true), 0, "throttle the agent's port");
        CHECK_EQ_U64(save(c1, &cw1), 0, "console: save");
        CHECK(cw1.size != cw2.size || memcmp(cw1.data, cw2.data, cw1.size) != 0, "console: the throttle is saved");
        state_writer_done(&cw2);
        r = state_reader(cw1.data, cw1.size);
        CHECK_EQ_U64(d->load(c2, &r), 0, "console: load");
        CHECK_EQ_U64(save(c2, &cw2), 0, "console: save the loaded one");
        CHECK(cw1.size == cw2.size && memcmp(cw1.data, cw2.data, cw1.size) == 0, "console: the same state back");
        d->free(c1);
        d->free(c2);
        state_writer_done(&cw1);
        state_writer_done(&cw2);

        d->free(empty);
        d->free(a);
        d->free(b);
        state_writer_done(&w1);
        state_writer_done(&w2);
        state_writer_done(&w3);
        state_writer_done(&bad);
        guest_done(&g);
        return tap_finish();
}
