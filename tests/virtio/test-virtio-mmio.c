/* SPDX-License-Identifier: MIT */
/*
 * virtio-mmio transport: identification, the empty slot, register access
 * widths, feature negotiation and the status state machine, queue setup
 * (and every way to get it wrong), notifications, interrupts, config space
 * and ConfigGeneration, reset.
 */

#include "macro.h"
#include "tap.h"
#include "echo.h"
#include "guest.h"

#define S_ACK VIRTIO_STATUS_ACKNOWLEDGE
#define S_DRV VIRTIO_STATUS_DRIVER
#define S_FOK VIRTIO_STATUS_FEATURES_OK
#define S_DOK VIRTIO_STATUS_DRIVER_OK
#define S_NR  VIRTIO_STATUS_DEVICE_NEEDS_RESET

#define VERSION_1 (1ULL << VIRTIO_F_VERSION_1)

static void test_empty_slot(void) {
        Guest g;
        VirtioMmio *t = NULL;
        IrqLine irq;

        guest_init(&g);
        irq = guest_irq(&g);
        CHECK(virtio_mmio_new(NULL, &irq, NULL, NULL, &t) == 0, "empty slot: created without memory or backend");
        guest_attach(&g, t);

        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976, "empty slot: MagicValue");
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_VERSION_REG), 2, "empty slot: Version 2");
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_DEVICE_ID), 0, "empty slot: DeviceID 0");
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_VENDOR_ID), VIRTIO_MMIO_VENDOR, "empty slot: VendorID");

        guest_wr(&g, VIRTIO_MMIO_STATUS, S_ACK);
        guest_wr(&g, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_STATUS), 0, "empty slot: Status ignores writes");
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_QUEUE_NUM_MAX), 0, "empty slot: no queues");
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_DEVICE_FEATURES), 0, "empty slot: no features");
        CHECK_EQ_U64(guest_cfg_rd(&g, 0, 4), 0, "empty slot: no config");
        CHECK(!g.irq_level && g.irq_raises == 0, "empty slot: never interrupts");
        virtio_mmio_reset(t);

        virtio_mmio_free(t);
        guest_done(&g);
}

static void test_bad_new(void) {
        Guest g;
        VirtioMmio *t = NULL;
        VirtioDeviceOps ops = echo_ops;
        Echo e = {};

        guest_init(&g);
        CHECK(virtio_mmio_new(&g.mem, NULL, &echo_ops, &e, NULL) == -EINVAL, "new: NULL ret refused");
        CHECK(virtio_mmio_new(NULL, NULL, &echo_ops, &e, &t) == -EINVAL, "new: backend without memory refused");
        ops.device_id = 0;
        CHECK(virtio_mmio_new(&g.mem, NULL, &ops, &e, &t) == -EINVAL, "new: DeviceID 0 with a backend refused");
        ops = echo_ops;
        ops.num_queues = VIRTIO_MMIO_MAX_QUEUES + 1;
        CHECK(virtio_mmio_new(&g.mem, NULL, &ops, &e, &t) == -EINVAL, "new: too many queues refused");
        ops = echo_ops;
        ops.config_size = VIRTIO_MMIO_CONFIG_MAX + 1;
        CHECK(virtio_mmio_new(&g.mem, NULL, &ops, &e, &t) == -EINVAL, "new: oversized config refused");
        CHECK(t == NULL, "new: ret untouched on failure");
        guest_done(&g);
}

static void setup(Guest *g, Echo *e) {
        IrqLine irq;

        guest_init(g);
        irq = guest_irq(g);
        if (echo_new(e, &g->mem, &irq) < 0)
                abort();
        guest_attach(g, e->transport);
}

static void teardown(Guest *g, Echo *e) {
        echo_free(e);
        guest_done(g);
}

static void test_identity_and_widths(void) {
        Guest g;
        Echo e;

        setup(&g, &e);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976, "MagicValue");
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_VERSION_REG), 2, "Version 2 (modern only)");
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_DEVICE_ID), ECHO_DEVICE_ID, "DeviceID from the backend");
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_VENDOR_ID), 0x5952524f, "VendorID \"ORRY\"");

        CHECK_EQ_U64(virtio_mmio_ops.read(e.transport, VIRTIO_MMIO_MAGIC_VALUE, 1), 0, "1-byte register read: 0");
        CHECK_EQ_U64(virtio_mmio_ops.read(e.transport, VIRTIO_MMIO_MAGIC_VALUE, 8), 0, "8-byte register read: 0");
        CHECK_EQ_U64(virtio_mmio_ops.read(e.transport, VIRTIO_MMIO_MAGIC_VALUE + 2, 4), 0,
                     "misaligned register read: 0");
        virtio_mmio_ops.write(e.transport, VIRTIO_MMIO_STATUS, S_ACK, 1);
        virtio_mmio_ops.write(e.transport, VIRTIO_MMIO_STATUS + 1, S_ACK, 4);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_STATUS), 0, "narrow or misaligned register writes ignored");
        CHECK_EQ_U64(guest_rd(&g, 0x0e0), 0, "hole reads 0");
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_SHM_LEN_LOW), 0xffffffff, "SHMLenLow: no region");
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_SHM_LEN_HIGH), 0xffffffff, "SHMLenHigh: no region");
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_QUEUE_NUM), 0, "write-only QueueNum reads 0");
        teardown(&g, &e);
}

static void test_features_and_status(void) {
        Guest g;
        Echo e;
        uint64_t f;

        setup(&g, &e);
        f = guest_device_features(&g);
        CHECK_EQ_U64(f, ECHO_FEATURES | VERSION_1, "DeviceFeatures: backend bits + VERSION_1");
        guest_wr(&g, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_DEVICE_FEATURES), 0, "DeviceFeaturesSel 2 reads 0");

        /* FEATURES_OK refused without VERSION_1. */
        CHECK_EQ_U64(guest_negotiate(&g, ECHO_FEATURES), S_ACK | S_DRV, "FEATURES_OK refused without VERSION_1");
        /* FEATURES_OK refused with a bit the device did not offer. */
        CHECK_EQ_U64(guest_negotiate(&g, ECHO_FEATURES | VERSION_1), S_ACK | S_DRV | S_FOK, "FEATURES_OK accepted");
        guest_wr(&g, VIRTIO_MMIO_STATUS, 0);
        guest_wr(&g, VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
        guest_wr(&g, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        guest_wr(&g, VIRTIO_MMIO_DRIVER_FEATURES, 1 | 2);       /* VERSION_1 + bit 33 (not offered) */
        guest_wr(&g, VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_STATUS), S_ACK | S_DRV, "FEATURES_OK refused for an unoffered bit");

        /* DRIVER_OK needs FEATURES_OK. */
        guest_wr(&g, VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_DOK);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_STATUS), S_ACK | S_DRV, "DRIVER_OK refused without FEATURES_OK");
        CHECK_EQ_U64(e.driver_oks, 0, "backend not told DRIVER_OK");

        /* A clean bring-up. */
        CHECK_EQ_U64(guest_negotiate(&g, VERSION_1 | 1), S_ACK | S_DRV | S_FOK, "negotiate VERSION_1 + bit 0");
        virtio_mmio_lock(e.transport);
        CHECK_EQ_U64(virtio_mmio_driver_features_locked(e.transport), VERSION_1 | 1, "driver features recorded");
        virtio_mmio_unlock(e.transport);

        /* Frozen after FEATURES_OK. */
        guest_wr(&g, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
        guest_wr(&g, VIRTIO_MMIO_DRIVER_FEATURES, 0x20);
        virtio_mmio_lock(e.transport);
        CHECK_EQ_U64(virtio_mmio_driver_features_locked(e.transport), VERSION_1 | 1,
                     "driver features frozen after FEATURES_OK");
        virtio_mmio_unlock(e.transport);

        CHECK_EQ_U64(guest_driver_ok(&g), S_ACK | S_DRV | S_FOK | S_DOK, "DRIVER_OK accepted");
        CHECK_EQ_U64(e.driver_oks, 1, "backend told DRIVER_OK once");
        CHECK_EQ_U64(virtio_mmio_status(e.transport), S_ACK | S_DRV | S_FOK | S_DOK, "virtio_mmio_status()");
        guest_wr(&g, VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK | S_DOK);
        CHECK_EQ_U64(e.driver_oks, 1, "rewriting DRIVER_OK does not repeat it");

        /* The driver cannot clear bits, nor set NEEDS_RESET or unknown bits. */
        guest_wr(&g, VIRTIO_MMIO_STATUS, S_ACK);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK | S_DOK, "status bits cannot be cleared");
        guest_wr(&g, VIRTIO_MMIO_STATUS, S_NR | 0x30 | S_ACK);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK | S_DOK,
                     "NEEDS_RESET and reserved bits not driver-settable");
        guest_wr(&g, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_FAILED);
        CHECK(guest_rd(&g, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FAILED, "FAILED is recorded");

        /* Reset. */
        e.resets = 0;
        guest_wr(&g, VIRTIO_MMIO_STATUS, 0);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_STATUS), 0, "Status 0 resets");
        CHECK_EQ_U64(e.resets, 1, "backend reset");
        virtio_mmio_lock(e.transport);
        CHECK_EQ_U64(virtio_mmio_driver_features_locked(e.transport), 0, "driver features cleared by reset");
        virtio_mmio_unlock(e.transport);
        CHECK(e.dispatches > 0, "dispatch runs after writes");
        teardown(&g, &e);
}

static void test_queue_setup(void) {
        Guest g;
        Echo e;
        GuestQueue q;
        uint64_t desc, avail, used;

        setup(&g, &e);
        guest_negotiate(&g, VERSION_1);

        guest_wr(&g, VIRTIO_MMIO_QUEUE_SEL, 0);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_QUEUE_NUM_MAX), 16, "queue 0 QueueNumMax");
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_QUEUE_READY), 0, "queue 0 not ready at first");
        guest_wr(&g, VIRTIO_MMIO_QUEUE_SEL, 1);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_QUEUE_NUM_MAX), 256, "queue 1 QueueNumMax");
        guest_wr(&g, VIRTIO_MMIO_QUEUE_SEL, 2);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_QUEUE_NUM_MAX), 0, "queue 2 does not exist");
        guest_wr(&g, VIRTIO_MMIO_QUEUE_READY, 1);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_QUEUE_READY), 0, "nonexistent queue never ready");
        guest_wr(&g, VIRTIO_MMIO_QUEUE_SEL, 0xffffffff);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_QUEUE_NUM_MAX), 0, "QueueSel 0xffffffff: no queue");
        CHECK(!guest_needs_reset(&g), "probing absent queues is no error");

        CHECK(guest_queue_setup(&g, &q, 0, 16), "queue 0 ready with 16 entries");
        CHECK(!guest_needs_reset(&g), "good queue: no NEEDS_RESET");

        /* While ready, the queue's registers are ignored. */
        guest_wr(&g, VIRTIO_MMIO_QUEUE_NUM, 3);
        guest_wr(&g, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
        virtio_mmio_lock(e.transport);
        CHECK_EQ_U64(virtio_mmio_queue(e.transport, 0)->num, 16, "QueueNum ignored while ready");
        CHECK_EQ_U64(virtio_mmio_queue(e.transport, 0)->desc_addr, q.desc, "QueueDescLow ignored while ready");
        virtio_mmio_unlock(e.transport);

        guest_wr(&g, VIRTIO_MMIO_QUEUE_READY, 0);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_QUEUE_READY), 0, "QueueReady 0 disables");
        CHECK(!guest_needs_reset(&g), "disabling is no error");

        /* The same rings again, at the smallest size. */
        desc = q.desc;
        avail = q.avail;
        used = q.used;
        CHECK(guest_queue_setup_at(&g, &q, 0, 1, desc, avail, used), "queue of 1 entry");
        guest_wr(&g, VIRTIO_MMIO_QUEUE_READY, 0);

        /* Rings exactly at the end of RAM are fine. */
        CHECK(guest_queue_setup_at(&g, &q, 0, 16,
                                   GUEST_RAM_BASE + GUEST_RAM_SIZE - 256,
                                   GUEST_RAM_BASE + GUEST_RAM_SIZE - 256 - 38,
                                   GUEST_RAM_BASE + GUEST_RAM_SIZE - 256 - 38 - 138), "rings ending at the end of RAM");
        CHECK(!guest_needs_reset(&g), "no NEEDS_RESET");
        teardown(&g, &e);
}

/* Each bad queue configuration: not ready, NEEDS_RESET; then reset clears it. */
static void test_bad_queues(void) {
        static const struct {
                const char *what;
                uint32_t num;
                uint64_t desc, avail, used;
        } bad[] = {
                { "size 0", 0, 0x80010000, 0x80011000, 0x80012000 },
                { "size not a power of 2", 3, 0x80010000, 0x80011000, 0x80012000 },
                { "size 12 (not a power of 2)", 12, 0x80010000, 0x80011000, 0x80012000 },
                { "size above QueueNumMax", 32, 0x80010000, 0x80011000, 0x80012000 },
                { "size 65536", 65536, 0x80010000, 0x80011000, 0x80012000 },
                { "descriptor table misaligned", 16, 0x80010008, 0x80011000, 0x80012000 },
                { "avail ring misaligned", 16, 0x80010000, 0x80011001, 0x80012000 },
                { "used ring misaligned", 16, 0x80010000, 0x80011000, 0x80012002 },
                { "descriptor table below RAM", 16, 0x1000, 0x80011000, 0x80012000 },
                { "descriptor table in MMIO", 16, GUEST_MMIO_BASE, 0x80011000, 0x80012000 },
                { "avail ring in the framebuffer", 16, 0x80010000, GUEST_FB_BASE, 0x80012000 },
                { "used ring in the framebuffer", 16, 0x80010000, 0x80011000, GUEST_FB_BASE + 0x100 },
                { "descriptor table straddles the end of RAM",
                  16, GUEST_RAM_BASE + GUEST_RAM_SIZE - 128, 0x80011000, 0x80012000 },
                { "used ring straddles the end of RAM",
                  16, 0x80010000, 0x80011000, GUEST_RAM_BASE + GUEST_RAM_SIZE - 132 },
                { "avail ring past the end of RAM", 16, 0x80010000, GUEST_RAM_BASE + GUEST_RAM_SIZE, 0x80012000 },
                { "address wraps around 2^64", 16, 0xfffffffffffffff0ULL, 0x80011000, 0x80012000 },
                { "high half set", 16, 0x100000000ULL | 0x80010000, 0x80011000, 0x80012000 },
        };
        Guest g;
        Echo e;
        GuestQueue q;

        setup(&g, &e);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                guest_negotiate(&g, VERSION_1);
                g.irq_raises = 0;
                CHECK(!guest_queue_setup_at(&g, &q, 0, bad[i].num, bad[i].desc, bad[i].avail, bad[i].used),
                      "bad queue (%s): not ready", bad[i].what);
                CHECK(guest_needs_reset(&g), "bad queue (%s): DEVICE_NEEDS_RESET", bad[i].what);
                CHECK(g.irq_raises == 0, "bad queue (%s): no interrupt before DRIVER_OK", bad[i].what);
                guest_driver_ok(&g);
                CHECK(g.irq_level && (guest_rd(&g, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG),
                      "bad queue (%s): config interrupt once DRIVER_OK", bad[i].what);
                guest_wr(&g, VIRTIO_MMIO_STATUS, 0);
                CHECK(!guest_needs_reset(&g) && !g.irq_level, "bad queue (%s): reset clears it", bad[i].what);
        }
        CHECK(guest_fb_intact(&g), "bad queues: framebuffer untouched");
        teardown(&g, &e);
}

static void test_notify_and_interrupts(void) {
        Guest g;
        Echo e;
        GuestQueue q;
        uint64_t buf;
        uint32_t id, len;

        setup(&g, &e);
        guest_negotiate(&g, VERSION_1);
        CHECK(guest_queue_setup(&g, &q, 0, 16), "queue 0 ready");
        buf = guest_alloc(&g, 64, 8);

        guest_add_buf(&g, &q, buf, 64, true);
        guest_kick(&g, &q);
        CHECK_EQ_U64(e.notifies[0], 0, "no notify before DRIVER_OK");
        CHECK_EQ_U64(guest_used_idx(&g, &q), 0, "nothing consumed before DRIVER_OK");

        guest_driver_ok(&g);
        guest_kick(&g, &q);
        CHECK_EQ_U64(e.notifies[0], 1, "notify after DRIVER_OK");
        CHECK(guest_get_used(&g, &q, &id, &len) && id == 0 && len == 64, "used: id 0, 64 bytes");
        CHECK_EQ_U64(((uint8_t *) guest_ptr(&g, buf))[63], ECHO_FILL, "buffer written");
        CHECK(g.irq_level, "interrupt line high");
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING, "InterruptStatus: used buffer");
        CHECK_EQ_U64(guest_ack(&g), VIRTIO_MMIO_INT_VRING, "ack");
        CHECK(!g.irq_level, "interrupt line low after ack");
        CHECK_EQ_U64(g.irq_redundant, 0, "line driven only on changes");

        guest_wr(&g, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
        guest_wr(&g, VIRTIO_MMIO_QUEUE_NOTIFY, 7);
        guest_wr(&g, VIRTIO_MMIO_QUEUE_NOTIFY, 0xffffffff);
        CHECK_EQ_U64(e.notifies[1], 0, "notify of a queue not ready: ignored");

        /* VIRTQ_AVAIL_F_NO_INTERRUPT suppresses the used-buffer interrupt. */
        guest_set_avail_flags(&g, &q, VIRTQ_AVAIL_F_NO_INTERRUPT);
        guest_add_buf(&g, &q, buf, 64, true);
        guest_kick(&g, &q);
        CHECK(guest_get_used(&g, &q, NULL, NULL), "used with NO_INTERRUPT");
        CHECK(!g.irq_level, "no interrupt with NO_INTERRUPT");
        guest_set_avail_flags(&g, &q, 0);

        /* Partial ACK leaves the other bit. */
        virtio_mmio_lock(e.transport);
        virtio_mmio_config_changed_locked(e.transport);
        virtio_mmio_unlock(e.transport);
        guest_add_buf(&g, &q, buf, 64, true);
        guest_kick(&g, &q);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG,
                     "both interrupt causes");
        guest_wr(&g, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
        CHECK(g.irq_level, "line stays high while a cause remains");
        guest_wr(&g, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
        CHECK(!g.irq_level, "line low when all causes acked");

        /* Machine reset lowers the line. */
        guest_add_buf(&g, &q, buf, 64, true);
        guest_kick(&g, &q);
        CHECK(g.irq_level, "raised again");
        virtio_mmio_reset(e.transport);
        CHECK(!g.irq_level && guest_rd(&g, VIRTIO_MMIO_STATUS) == 0, "virtio_mmio_reset: line low, status 0");
        guest_wr(&g, VIRTIO_MMIO_QUEUE_SEL, 0);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_QUEUE_READY), 0, "virtio_mmio_reset: queues not ready");
        teardown(&g, &e);
}

static void test_config(void) {
        Guest g;
        Echo e;

        setup(&g, &e);
        guest_cfg_wr(&g, 0, 0x0807060504030201ULL, 8);
        CHECK_EQ_U64(guest_cfg_rd(&g, 0, 8), 0x0807060504030201ULL, "config 8-byte round trip");
        CHECK_EQ_U64(guest_cfg_rd(&g, 0, 1), 0x01, "config byte 0");
        CHECK_EQ_U64(guest_cfg_rd(&g, 2, 2), 0x0403, "config 16-bit at 2");
        CHECK_EQ_U64(guest_cfg_rd(&g, 4, 4), 0x08070605, "config 32-bit at 4");
        CHECK_EQ_U64(guest_cfg_rd(&g, 5, 2), 0x0706, "unaligned config access allowed");
        CHECK_EQ_U64(guest_cfg_rd(&g, 6, 4), 0, "config read past the end: 0");
        CHECK_EQ_U64(guest_cfg_rd(&g, 8, 1), 0, "config read at the end: 0");
        CHECK_EQ_U64(guest_cfg_rd(&g, 0xeff, 1), 0, "config read at the window end: 0");
        CHECK_EQ_U64(guest_cfg_rd(&g, 0, 3), 0, "3-byte config read: 0");
        guest_cfg_wr(&g, 7, 0xffff, 2);
        CHECK_EQ_U64(e.config[7], 0x08, "config write past the end ignored");
        guest_cfg_wr(&g, 0x10, 0xff, 1);

        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_CONFIG_GENERATION), 0, "ConfigGeneration 0");
        virtio_mmio_lock(e.transport);
        virtio_mmio_config_changed_locked(e.transport);
        virtio_mmio_unlock(e.transport);
        CHECK_EQ_U64(guest_rd(&g, VIRTIO_MMIO_CONFIG_GENERATION), 1, "ConfigGeneration bumped");
        CHECK(!g.irq_level, "no config interrupt before DRIVER_OK");
        teardown(&g, &e);
}

int main(void) {
        test_empty_slot();
        test_bad_new();
        test_identity_and_widths();
        test_features_and_status();
        test_queue_setup();
        test_bad_queues();
        test_notify_and_interrupts();
        test_config();
        return tap_finish();
}
