/* SPDX-License-Identifier: MIT */
/*
 * virtio-input: the configuration space Linux's virtio_input driver reads,
 * keyboard events in order into eventq buffers, the tablet's clamping and
 * wheel, validation of host events, the bounded ring (whole packets or
 * nothing), LEDs through statusq, hostile eventq buffers, and a two-thread
 * run (event-loop thread sending, guest consuming) for the locking.
 */

#include <endian.h>
#include <linux/input-event-codes.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "macro.h"
#include "tap.h"
#include "devices/virtio_input.h"
#include "guest.h"

#define VERSION_1 (1ULL << VIRTIO_F_VERSION_1)

#define CFG_ID_NAME    0x01
#define CFG_ID_SERIAL  0x02
#define CFG_ID_DEVIDS  0x03
#define CFG_PROP_BITS  0x10
#define CFG_EV_BITS    0x11
#define CFG_ABS_INFO   0x12

#define N_BUFS 64U

typedef struct Rig {
        Guest g;
        VirtioInput *dev;
        GuestQueue evq, stq;
        uint64_t evbufs;                /* N_BUFS event buffers, 8 bytes each, buffer i for descriptor i */
        uint64_t stbufs;                /* N_BUFS status buffers */
        uint32_t leds_seen;
        unsigned leds_calls;
} Rig;

static void rig_leds(void *opaque, uint32_t leds) {
        Rig *r = opaque;

        r->leds_seen = leds;
        r->leds_calls++;
        /* Callbacks run without the device lock: calling back in must not deadlock. */
        (void) virtio_input_leds(r->dev);
}

static int rig_create(Rig *r, VirtioInputKind kind) {
        VirtioInputConfig c = {
                .kind = kind,
                .abs_max_x = 1023,
                .abs_max_y = 767,
                .leds = rig_leds,
                .opaque = r,
        };
        IrqLine irq;
        int k;

        *r = (Rig) {};
        guest_init(&r->g);
        irq = guest_irq(&r->g);
        k = virtio_input_new(&r->g.mem, &irq, &c, &r->dev);
        if (k < 0)
                return k;
        guest_attach(&r->g, virtio_input_transport(r->dev));
        return 0;
}

static void post_event_bufs(Rig *r, unsigned n) {
        for (unsigned i = 0; i < n; i++) {
                uint16_t slot = r->evq.next_desc;

                guest_add_buf(&r->g, &r->evq, r->evbufs + 8ULL * slot, 8, true);
        }
        guest_kick(&r->g, &r->evq);
}

/* Brings the device up as Linux does: features, both queues, DRIVER_OK, then eventq buffers. */
static void rig_start(Rig *r, VirtioInputKind kind, unsigned n_bufs) {
        if (rig_create(r, kind) < 0)
                abort();
        guest_negotiate(&r->g, VERSION_1);
        if (!guest_queue_setup(&r->g, &r->evq, 0, N_BUFS) || !guest_queue_setup(&r->g, &r->stq, 1, N_BUFS))
                abort();
        r->evbufs = guest_alloc(&r->g, 8 * N_BUFS, 8);
        r->stbufs = guest_alloc(&r->g, 8 * N_BUFS, 8);
        guest_driver_ok(&r->g);
        post_event_bufs(r, n_bufs);
}

static void rig_stop(Rig *r) {
        virtio_input_free(r->dev);
        guest_done(&r->g);
}

typedef struct Ev {
        uint16_t type, code;
        int32_t value;
} Ev;

static bool next_event(Rig *r, Ev *ret) {
        uint32_t id, len;
        uint8_t *p;
        uint16_t t, c;
        uint32_t v;

        if (!guest_get_used(&r->g, &r->evq, &id, &len) || len != 8 || id >= N_BUFS)
                return false;
        p = guest_ptr(&r->g, r->evbufs + 8ULL * id);
        memcpy(&t, p, 2);
        memcpy(&c, p + 2, 2);
        memcpy(&v, p + 4, 4);
        *ret = (Ev) { le16toh(t), le16toh(c), (int32_t) le32toh(v) };
        return true;
}

static bool expect(Rig *r, uint16_t type, uint16_t code, int32_t value) {
        Ev e;

        return next_event(r, &e) && e.type == type && e.code == code && e.value == value;
}

static uint8_t cfg_select(Rig *r, uint8_t select, uint8_t subsel) {
        guest_cfg_wr(&r->g, 0, select, 1);
        guest_cfg_wr(&r->g, 1, subsel, 1);
        return (uint8_t) guest_cfg_rd(&r->g, 2, 1);
}

static void cfg_bytes(Rig *r, unsigned offset, uint8_t *buf, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                buf[i] = (uint8_t) guest_cfg_rd(&r->g, 8 + offset + i, 1);
}

static bool cfg_bit(Rig *r, unsigned bit) {
        return (guest_cfg_rd(&r->g, 8 + bit / 8, 1) >> (bit % 8)) & 1;
}

static void send_status(Rig *r, uint16_t type, uint16_t code, uint32_t value) {
        uint16_t slot = r->stq.next_desc;
        uint8_t *p = guest_ptr(&r->g, r->stbufs + 8ULL * slot);
        uint16_t t = htole16(type), c = htole16(code);
        uint32_t v = htole32(value);

        memcpy(p, &t, 2);
        memcpy(p + 2, &c, 2);
        memcpy(p + 4, &v, 4);
        guest_add_buf(&r->g, &r->stq, r->stbufs + 8ULL * slot, 8, false);
        guest_kick(&r->g, &r->stq);
}

static void test_keyboard_config(void) {
        Rig r;
        uint8_t buf[128];
        uint8_t size;

        if (rig_create(&r, VIRTIO_INPUT_KEYBOARD) < 0)
                abort();

        CHECK_EQ_U64(guest_rd(&r.g, VIRTIO_MMIO_DEVICE_ID), 18, "keyboard: DeviceID 18");
        CHECK_EQ_U64(guest_device_features(&r.g), VERSION_1, "keyboard: features = VERSION_1");

        size = cfg_select(&r, CFG_ID_NAME, 0);
        cfg_bytes(&r, 0, buf, size);
        CHECK(size == 15 && memcmp(buf, "Orrery Keyboard", 15) == 0, "keyboard: ID_NAME");
        size = cfg_select(&r, CFG_ID_SERIAL, 0);
        cfg_bytes(&r, 0, buf, size);
        CHECK(size == 15 && memcmp(buf, "orrery-keyboard", 15) == 0, "keyboard: ID_SERIAL default");
        CHECK_EQ_U64(cfg_select(&r, CFG_ID_NAME, 1), 0, "ID_NAME with subsel 1: size 0");

        CHECK_EQ_U64(cfg_select(&r, CFG_ID_DEVIDS, 0), 8, "ID_DEVIDS size");
        CHECK_EQ_U64(guest_cfg_rd(&r.g, 8, 2), 0x06, "ID_DEVIDS bustype BUS_VIRTUAL");
        CHECK_EQ_U64(guest_cfg_rd(&r.g, 12, 2), 1, "ID_DEVIDS product 1");

        CHECK_EQ_U64(cfg_select(&r, CFG_PROP_BITS, 0), 0, "PROP_BITS empty");

        size = cfg_select(&r, CFG_EV_BITS, EV_KEY);
        CHECK(size >= 32 && size <= 128, "EV_BITS EV_KEY size %u", size);
        CHECK(cfg_bit(&r, KEY_ESC) && cfg_bit(&r, KEY_A) && cfg_bit(&r, KEY_POWER) && cfg_bit(&r, 255),
              "EV_KEY: ESC, A, POWER, 255");
        CHECK(!cfg_bit(&r, KEY_RESERVED) && !cfg_bit(&r, BTN_LEFT) && !cfg_bit(&r, BTN_DPAD_UP),
              "EV_KEY: no KEY_RESERVED, no buttons");
        CHECK(cfg_bit(&r, KEY_OK), "EV_KEY: KEY_OK");

        CHECK_EQ_U64(cfg_select(&r, CFG_EV_BITS, EV_LED), 1, "EV_BITS EV_LED size 1");
        CHECK_EQ_U64(guest_cfg_rd(&r.g, 8, 1), 0x07, "EV_LED: NUML, CAPSL, SCROLLL");
        CHECK(cfg_select(&r, CFG_EV_BITS, EV_REP) > 0, "EV_BITS EV_REP present");
        CHECK_EQ_U64(cfg_select(&r, CFG_EV_BITS, EV_ABS), 0, "keyboard: no EV_ABS");
        CHECK_EQ_U64(cfg_select(&r, CFG_EV_BITS, EV_REL), 0, "keyboard: no EV_REL");
        CHECK_EQ_U64(cfg_select(&r, CFG_EV_BITS, EV_MSC), 0, "keyboard: no EV_MSC");
        CHECK_EQ_U64(cfg_select(&r, CFG_ABS_INFO, ABS_X), 0, "keyboard: no ABS_INFO");
        CHECK_EQ_U64(cfg_select(&r, 0x7f, 0), 0, "unknown select: size 0");

        /* Only select and subsel are writable. */
        cfg_select(&r, CFG_ID_DEVIDS, 0);
        guest_cfg_wr(&r.g, 2, 0xff, 1);
        guest_cfg_wr(&r.g, 8, 0xffffffff, 4);
        CHECK(guest_cfg_rd(&r.g, 2, 1) == 8 && guest_cfg_rd(&r.g, 8, 2) == 6, "size and union read-only");
        guest_cfg_wr(&r.g, 0, CFG_ID_NAME | (0 << 8), 2);
        CHECK_EQ_U64(guest_cfg_rd(&r.g, 2, 1), 15, "16-bit write of select+subsel");
        CHECK_EQ_U64(guest_cfg_rd(&r.g, 136, 1), 0, "read past the config: 0");
        CHECK_EQ_U64(guest_rd(&r.g, VIRTIO_MMIO_CONFIG_GENERATION), 0, "ConfigGeneration stays 0");

        rig_stop(&r);
}

static void test_tablet_config(void) {
        Rig r;
        uint8_t buf[128];
        uint8_t size;

        if (rig_create(&r, VIRTIO_INPUT_TABLET) < 0)
                abort();

        size = cfg_select(&r, CFG_ID_NAME, 0);
        cfg_bytes(&r, 0, buf, size);
        CHECK(size == 13 && memcmp(buf, "Orrery Tablet", 13) == 0, "tablet: ID_NAME");
        CHECK_EQ_U64(cfg_select(&r, CFG_EV_BITS, EV_KEY), BTN_EXTRA / 8 + 1, "tablet: EV_KEY size");
        CHECK(cfg_bit(&r, BTN_LEFT) && cfg_bit(&r, BTN_RIGHT) && cfg_bit(&r, BTN_MIDDLE) &&
              cfg_bit(&r, BTN_SIDE) && cfg_bit(&r, BTN_EXTRA), "tablet: five buttons");
        CHECK(!cfg_bit(&r, KEY_A) && !cfg_bit(&r, BTN_TOUCH), "tablet: no keys");
        CHECK_EQ_U64(cfg_select(&r, CFG_EV_BITS, EV_ABS), 1, "tablet: EV_ABS size");
        CHECK_EQ_U64(guest_cfg_rd(&r.g, 8, 1), 0x03, "tablet: ABS_X, ABS_Y");
        CHECK_EQ_U64(cfg_select(&r, CFG_EV_BITS, EV_REL), 2, "tablet: EV_REL size");
        CHECK(cfg_bit(&r, REL_WHEEL) && cfg_bit(&r, REL_HWHEEL) && !cfg_bit(&r, REL_X), "tablet: wheels only");
        CHECK_EQ_U64(cfg_select(&r, CFG_EV_BITS, EV_LED), 0, "tablet: no EV_LED");
        CHECK_EQ_U64(cfg_select(&r, CFG_EV_BITS, EV_REP), 0, "tablet: no EV_REP");

        CHECK_EQ_U64(cfg_select(&r, CFG_ABS_INFO, ABS_X), 20, "ABS_INFO X size");
        CHECK(guest_cfg_rd(&r.g, 8, 4) == 0 && guest_cfg_rd(&r.g, 12, 4) == 1023, "ABS_X 0..1023");
        CHECK_EQ_U64(cfg_select(&r, CFG_ABS_INFO, ABS_Y), 20, "ABS_INFO Y size");
        CHECK(guest_cfg_rd(&r.g, 8, 4) == 0 && guest_cfg_rd(&r.g, 12, 4) == 767, "ABS_Y 0..767");
        CHECK_EQ_U64(guest_cfg_rd(&r.g, 16, 4), 0, "fuzz 0");
        CHECK_EQ_U64(cfg_select(&r, CFG_ABS_INFO, ABS_Z), 0, "no ABS_Z");
        rig_stop(&r);
}

static void test_keyboard_events(void) {
        Rig r;

        if (rig_create(&r, VIRTIO_INPUT_KEYBOARD) < 0)
                abort();
        CHECK(!virtio_input_driver_ready(r.dev), "not ready before the driver");
        CHECK(virtio_input_key(r.dev, KEY_A, true) == 0, "key before the driver: accepted and discarded");
        rig_stop(&r);

        rig_start(&r, VIRTIO_INPUT_KEYBOARD, 8);
        CHECK(virtio_input_driver_ready(r.dev), "ready after DRIVER_OK");
        CHECK_EQ_U64(guest_used_idx(&r.g, &r.evq), 0, "nothing delivered from before the driver");

        CHECK(virtio_input_key(r.dev, KEY_A, true) == 0, "press A");
        CHECK(virtio_input_key(r.dev, KEY_A, false) == 0, "release A");
        CHECK(r.g.irq_level, "interrupt raised");
        CHECK(expect(&r, EV_KEY, KEY_A, 1), "event 1: EV_KEY A 1");
        CHECK(expect(&r, EV_SYN, SYN_REPORT, 0), "event 2: SYN_REPORT");
        CHECK(expect(&r, EV_KEY, KEY_A, 0), "event 3: EV_KEY A 0");
        CHECK(expect(&r, EV_SYN, SYN_REPORT, 0), "event 4: SYN_REPORT");
        CHECK(!next_event(&r, &(Ev) {}), "nothing more");
        guest_ack(&r.g);

        /* KEY_POWER (the ACPI-less power key) and autorepeat value 2 through the raw API. */
        CHECK(virtio_input_send(r.dev, EV_KEY, KEY_POWER, 1) == 0, "send POWER press");
        CHECK(virtio_input_send(r.dev, EV_KEY, KEY_POWER, 2) == 0, "send POWER repeat");
        CHECK(virtio_input_send(r.dev, EV_SYN, SYN_REPORT, 0) == 0, "send SYN_REPORT = sync");
        CHECK(expect(&r, EV_KEY, KEY_POWER, 1) && expect(&r, EV_KEY, KEY_POWER, 2) &&
              expect(&r, EV_SYN, SYN_REPORT, 0), "raw packet delivered");

        /* More events than buffers: the rest waits for the driver. 1 + 1 buffers left now. */
        post_event_bufs(&r, 1);
        for (unsigned i = 0; i < 4; i++)
                CHECK(virtio_input_key(r.dev, (uint16_t) (KEY_1 + i), i % 2 == 0) == 0, "queue key %u", i);
        CHECK(expect(&r, EV_KEY, KEY_1, 1) && expect(&r, EV_SYN, SYN_REPORT, 0),
              "first packet with the last 2 buffers");
        CHECK(!next_event(&r, &(Ev) {}), "waiting for buffers");
        post_event_bufs(&r, 4);
        CHECK(expect(&r, EV_KEY, KEY_2, 0) && expect(&r, EV_SYN, SYN_REPORT, 0) &&
              expect(&r, EV_KEY, KEY_3, 1) && expect(&r, EV_SYN, SYN_REPORT, 0), "next packets once buffers came");
        post_event_bufs(&r, 4);
        CHECK(expect(&r, EV_KEY, KEY_4, 0) && expect(&r, EV_SYN, SYN_REPORT, 0), "last packet");
        CHECK(!guest_needs_reset(&r.g), "no error");
        rig_stop(&r);
}

static void test_validation(void) {
        Rig r;

        rig_start(&r, VIRTIO_INPUT_KEYBOARD, 8);
        CHECK(virtio_input_key(r.dev, 0, true) == -EINVAL, "KEY_RESERVED refused");
        CHECK(virtio_input_key(r.dev, KEY_MAX + 1, true) == -EINVAL, "code > KEY_MAX refused");
        CHECK(virtio_input_key(r.dev, 0xffff, true) == -EINVAL, "code 0xffff refused");
        CHECK(virtio_input_key(r.dev, BTN_LEFT, true) == -EINVAL, "mouse button on the keyboard refused");
        CHECK(virtio_input_key(r.dev, BTN_TRIGGER_HAPPY, true) == -EINVAL, "joystick button refused");
        CHECK(virtio_input_has_key(r.dev, KEY_POWER) && !virtio_input_has_key(r.dev, KEY_MAX + 1), "has_key");
        CHECK(virtio_input_abs(r.dev, 1, 1) == -EINVAL, "abs on the keyboard refused");
        CHECK(virtio_input_wheel(r.dev, 1, 0) == -EINVAL, "wheel on the keyboard refused");
        CHECK(virtio_input_button(r.dev, BTN_LEFT, true) == -EINVAL, "button on the keyboard refused");
        CHECK(virtio_input_send(r.dev, EV_KEY, KEY_A, 3) == -EINVAL, "key value 3 refused");
        CHECK(virtio_input_send(r.dev, EV_KEY, KEY_A, -1) == -EINVAL, "key value -1 refused");
        CHECK(virtio_input_send(r.dev, EV_LED, LED_CAPSL, 1) == -EINVAL, "host EV_LED refused");
        CHECK(virtio_input_send(r.dev, EV_REL, REL_X, 1) == -EINVAL, "EV_REL on the keyboard refused");
        CHECK(virtio_input_send(r.dev, EV_MSC, MSC_SCAN, 1) == -EINVAL, "EV_MSC refused");
        CHECK(virtio_input_send(r.dev, EV_SYN, SYN_CONFIG, 0) == -EINVAL, "EV_SYN other than SYN_REPORT refused");
        CHECK(virtio_input_send(r.dev, 0xffff, 0, 0) == -EINVAL, "type 0xffff refused");
        CHECK(virtio_input_sync(r.dev) == 0, "sync with nothing open");
        CHECK(!next_event(&r, &(Ev) {}), "nothing delivered by refused calls");
        CHECK(virtio_input_send(NULL, EV_KEY, KEY_A, 1) == -EINVAL, "NULL device");
        rig_stop(&r);

        {
                VirtioInputConfig c = { .kind = VIRTIO_INPUT_TABLET, .abs_max_x = 0x80000000U };
                VirtioInput *d = NULL;
                Guest g;

                guest_init(&g);
                CHECK(virtio_input_new(&g.mem, NULL, &c, &d) == -EINVAL && !d, "abs max above INT32_MAX refused");
                c = (VirtioInputConfig) { .kind = 7 };
                CHECK(virtio_input_new(&g.mem, NULL, &c, &d) == -EINVAL, "unknown kind refused");
                guest_done(&g);
        }
}

static void test_ring_overflow(void) {
        Rig r;
        unsigned accepted = 0;
        int k = 0;
        bool in_order = true;

        rig_start(&r, VIRTIO_INPUT_KEYBOARD, 0);

        /* No eventq buffers: packets of 2 events pile up to the ring's 256. */
        for (unsigned i = 0; i < 1000; i++) {
                k = virtio_input_key(r.dev, KEY_A, i % 2 == 0);
                if (k < 0)
                        break;
                accepted++;
        }
        CHECK_EQ_U64(accepted, VIRTIO_INPUT_RING_SIZE / 2, "ring holds 128 packets");
        CHECK(k == -ENOBUFS, "the next packet is refused with -ENOBUFS");

        /* With the ring full, a packet is refused whole. */
        CHECK(virtio_input_send(r.dev, EV_KEY, KEY_B, 1) == 0, "open a packet");
        CHECK(virtio_input_sync(r.dev) == -ENOBUFS, "packet refused whole");

        /* Drain: every queued event arrives, in order, and only whole packets. */
        for (unsigned i = 0; i < accepted; i++) {
                if (i % 32 == 0)
                        post_event_bufs(&r, 64);
                if (!expect(&r, EV_KEY, KEY_A, i % 2 == 0) || !expect(&r, EV_SYN, SYN_REPORT, 0))
                        in_order = false;
        }
        CHECK(in_order, "all 256 events delivered in order");
        CHECK(!next_event(&r, &(Ev) {}), "the refused packet never appears");
        post_event_bufs(&r, 8);
        CHECK(virtio_input_key(r.dev, KEY_C, true) == 0 && expect(&r, EV_KEY, KEY_C, 1), "accepting again");

        /* An open packet is bounded too: the 17th event drops it. */
        for (unsigned i = 0; i < VIRTIO_INPUT_PACKET_MAX; i++)
                virtio_input_send(r.dev, EV_KEY, KEY_D, 1);
        CHECK(virtio_input_send(r.dev, EV_KEY, KEY_D, 0) == -ENOBUFS, "17th event in a packet: -ENOBUFS");
        CHECK(virtio_input_sync(r.dev) == 0, "sync after the drop");
        CHECK(expect(&r, EV_SYN, SYN_REPORT, 0), "the SYN of KEY_C's packet");
        CHECK(!next_event(&r, &(Ev) {}), "the dropped packet never appears");
        rig_stop(&r);
}

static void test_tablet_events(void) {
        Rig r;

        rig_start(&r, VIRTIO_INPUT_TABLET, 32);
        CHECK(virtio_input_abs(r.dev, 100, 200) == 0, "abs 100,200");
        CHECK(expect(&r, EV_ABS, ABS_X, 100) && expect(&r, EV_ABS, ABS_Y, 200) && expect(&r, EV_SYN, SYN_REPORT, 0),
              "ABS_X, ABS_Y, SYN");
        CHECK(virtio_input_abs(r.dev, -5, 99999) == 0, "abs -5,99999");
        CHECK(expect(&r, EV_ABS, ABS_X, 0) && expect(&r, EV_ABS, ABS_Y, 767) && expect(&r, EV_SYN, SYN_REPORT, 0),
              "clamped to 0,767");
        CHECK(virtio_input_abs(r.dev, INT64_MAX, INT64_MIN) == 0, "abs extremes");
        CHECK(expect(&r, EV_ABS, ABS_X, 1023) && expect(&r, EV_ABS, ABS_Y, 0) && expect(&r, EV_SYN, SYN_REPORT, 0),
              "clamped to 1023,0");
        CHECK(virtio_input_send(r.dev, EV_ABS, ABS_X, 5000) == 0 && virtio_input_sync(r.dev) == 0, "raw ABS_X 5000");
        CHECK(expect(&r, EV_ABS, ABS_X, 1023) && expect(&r, EV_SYN, SYN_REPORT, 0), "raw ABS clamped");
        CHECK(virtio_input_send(r.dev, EV_ABS, ABS_Z, 1) == -EINVAL, "ABS_Z refused");

        CHECK(virtio_input_button(r.dev, BTN_LEFT, true) == 0, "left press");
        CHECK(virtio_input_button(r.dev, BTN_LEFT, false) == 0, "left release");
        CHECK(expect(&r, EV_KEY, BTN_LEFT, 1) && expect(&r, EV_SYN, SYN_REPORT, 0) &&
              expect(&r, EV_KEY, BTN_LEFT, 0) && expect(&r, EV_SYN, SYN_REPORT, 0), "button press and release");
        CHECK(virtio_input_button(r.dev, BTN_EXTRA, true) == 0 && expect(&r, EV_KEY, BTN_EXTRA, 1) &&
              expect(&r, EV_SYN, SYN_REPORT, 0), "BTN_EXTRA");
        CHECK(virtio_input_button(r.dev, KEY_A, true) == -EINVAL, "a key on the tablet refused");
        CHECK(virtio_input_button(r.dev, BTN_TOUCH, true) == -EINVAL, "BTN_TOUCH refused");

        CHECK(virtio_input_wheel(r.dev, 1, 0) == 0, "wheel up");
        CHECK(expect(&r, EV_REL, REL_WHEEL, 1) && expect(&r, EV_SYN, SYN_REPORT, 0), "REL_WHEEL 1");
        CHECK(virtio_input_wheel(r.dev, -2, 3) == 0, "wheel both");
        CHECK(expect(&r, EV_REL, REL_WHEEL, -2) && expect(&r, EV_REL, REL_HWHEEL, 3) &&
              expect(&r, EV_SYN, SYN_REPORT, 0), "REL_WHEEL -2, REL_HWHEEL 3");
        CHECK(virtio_input_wheel(r.dev, 0, 0) == 0 && !next_event(&r, &(Ev) {}), "no wheel motion: nothing sent");
        CHECK_EQ_U64(virtio_input_leds(r.dev), 0, "tablet: no LEDs");
        rig_stop(&r);
}

static void test_leds(void) {
        Rig r;

        rig_start(&r, VIRTIO_INPUT_KEYBOARD, 8);
        send_status(&r, EV_LED, LED_CAPSL, 1);
        CHECK_EQ_U64(virtio_input_leds(r.dev), 1U << LED_CAPSL, "CapsLock on");
        CHECK(r.leds_calls == 1 && r.leds_seen == 1U << LED_CAPSL, "LED callback: CapsLock");
        CHECK(guest_get_used(&r.g, &r.stq, NULL, NULL), "status buffer returned");
        CHECK(r.g.irq_level, "interrupt for the status buffer");

        send_status(&r, EV_LED, LED_NUML, 1);
        CHECK_EQ_U64(virtio_input_leds(r.dev), (1U << LED_CAPSL) | (1U << LED_NUML), "NumLock on");
        send_status(&r, EV_LED, LED_CAPSL, 0);
        CHECK_EQ_U64(virtio_input_leds(r.dev), 1U << LED_NUML, "CapsLock off");
        CHECK(r.leds_calls == 3 && r.leds_seen == 1U << LED_NUML, "LED callback per change");

        send_status(&r, EV_LED, LED_NUML, 1);
        CHECK_EQ_U64(r.leds_calls, 3, "no callback without a change");
        send_status(&r, EV_LED, LED_KANA, 1);
        send_status(&r, EV_SND, SND_BELL, 1);
        send_status(&r, EV_REP, REP_DELAY, 250);
        CHECK_EQ_U64(virtio_input_leds(r.dev), 1U << LED_NUML, "other status events ignored");
        CHECK_EQ_U64(r.leds_calls, 3, "and no callback");

        /* A short status buffer is consumed and ignored. */
        guest_add_buf(&r.g, &r.stq, r.stbufs, 4, false);
        guest_kick(&r.g, &r.stq);
        CHECK(!guest_needs_reset(&r.g), "short status buffer: no error");
        while (guest_get_used(&r.g, &r.stq, NULL, NULL))
                ;
        CHECK_EQ_U64(r.stq.last_used, r.stq.avail_idx, "every status buffer returned");

        guest_wr(&r.g, VIRTIO_MMIO_STATUS, 0);
        CHECK(virtio_input_leds(r.dev) == 0 && r.leds_seen == 0 && r.leds_calls == 4, "reset: LEDs off, reported");
        rig_stop(&r);
}

static void test_hostile_eventq(void) {
        Rig r;
        uint64_t buf;

        /* A read-only buffer in eventq: the device must not write into it. */
        rig_start(&r, VIRTIO_INPUT_KEYBOARD, 0);
        buf = guest_alloc(&r.g, 8, 8);
        memset(guest_ptr(&r.g, buf), 0x33, 8);
        guest_add_buf(&r.g, &r.evq, buf, 8, false);
        guest_kick(&r.g, &r.evq);
        CHECK(virtio_input_key(r.dev, KEY_A, true) == 0, "key with a read-only eventq buffer");
        CHECK(guest_needs_reset(&r.g), "read-only eventq buffer: DEVICE_NEEDS_RESET");
        CHECK(((uint8_t *) guest_ptr(&r.g, buf))[0] == 0x33 && ((uint8_t *) guest_ptr(&r.g, buf))[7] == 0x33,
              "read-only buffer untouched");
        CHECK_EQ_U64(guest_used_idx(&r.g, &r.evq), 0, "nothing used");
        CHECK(!virtio_input_driver_ready(r.dev), "not ready once eventq is broken");
        CHECK(virtio_input_key(r.dev, KEY_A, false) == 0, "later keys are discarded");
        rig_stop(&r);

        /* A 4-byte writable buffer: too short for an event. */
        rig_start(&r, VIRTIO_INPUT_KEYBOARD, 0);
        buf = guest_alloc(&r.g, 8, 8);
        memset(guest_ptr(&r.g, buf), 0x33, 8);
        guest_add_buf(&r.g, &r.evq, buf, 4, true);
        guest_kick(&r.g, &r.evq);
        virtio_input_key(r.dev, KEY_A, true);
        CHECK(guest_needs_reset(&r.g), "short eventq buffer: DEVICE_NEEDS_RESET");
        CHECK(((uint8_t *) guest_ptr(&r.g, buf))[0] == 0x33, "short buffer untouched");
        rig_stop(&r);

        /* An eventq buffer in the framebuffer. */
        rig_start(&r, VIRTIO_INPUT_KEYBOARD, 0);
        guest_add_buf(&r.g, &r.evq, GUEST_FB_BASE, 8, true);
        guest_kick(&r.g, &r.evq);
        virtio_input_key(r.dev, KEY_A, true);
        CHECK(guest_needs_reset(&r.g) && guest_fb_intact(&r.g),
              "eventq buffer in the framebuffer: NEEDS_RESET, fb intact");
        rig_stop(&r);

        /* Reset in the middle: queued events are dropped, the driver comes back clean. */
        rig_start(&r, VIRTIO_INPUT_KEYBOARD, 0);
        virtio_input_key(r.dev, KEY_A, true);
        virtio_input_reset(r.dev);
        CHECK(!virtio_input_driver_ready(r.dev) && !r.g.irq_level, "machine reset");
        guest_negotiate(&r.g, VERSION_1);
        guest_queue_setup(&r.g, &r.evq, 0, N_BUFS);
        guest_queue_setup(&r.g, &r.stq, 1, N_BUFS);
        guest_driver_ok(&r.g);
        post_event_bufs(&r, 8);
        CHECK(!next_event(&r, &(Ev) {}), "events from before the reset are gone");
        CHECK(virtio_input_key(r.dev, KEY_B, true) == 0 && expect(&r, EV_KEY, KEY_B, 1), "works after reset");
        rig_stop(&r);
}

/* The event-loop thread sends while the guest (this thread) consumes and recycles buffers. */
#define STRESS_PACKETS 4000U

static void *stress_sender(void *arg) {
        Rig *r = arg;

        for (unsigned i = 0; i < STRESS_PACKETS; i++) {
                uint16_t code = (uint16_t) (KEY_1 + (i / 2) % 10);

                while (virtio_input_key(r->dev, code, i % 2 == 0) == -ENOBUFS)
                        sched_yield();
        }
        return NULL;
}

static void test_threads(void) {
        Rig r;
        pthread_t t;
        unsigned got = 0, bad = 0;

        rig_start(&r, VIRTIO_INPUT_KEYBOARD, 32);
        if (pthread_create(&t, NULL, stress_sender, &r) != 0)
                abort();

        while (got < 2 * STRESS_PACKETS) {
                Ev e;
                uint32_t id, len;

                if (!guest_get_used(&r.g, &r.evq, &id, &len)) {
                        sched_yield();
                        continue;
                }
                if (len != 8 || id >= N_BUFS) {
                        bad++;
                        break;
                }
                {
                        uint8_t *p = guest_ptr(&r.g, r.evbufs + 8ULL * id);
                        uint16_t ty, co;
                        uint32_t va;

                        memcpy(&ty, p, 2);
                        memcpy(&co, p + 2, 2);
                        memcpy(&va, p + 4, 4);
                        e = (Ev) { le16toh(ty), le16toh(co), (int32_t) le32toh(va) };
                }
                if (got % 2 == 0) {
                        unsigned i = got / 2;

                        if (e.type != EV_KEY || e.code != KEY_1 + (i / 2) % 10 || e.value != (i % 2 == 0))
                                bad++;
                } else if (e.type != EV_SYN)
                        bad++;
                got++;

                /* Linux re-queues the same buffer and kicks. */
                guest_desc(&r.g, &r.evq, (uint16_t) id, r.evbufs + 8ULL * id, 8, VIRTQ_DESC_F_WRITE, 0);
                guest_publish(&r.g, &r.evq, (uint16_t) id);
                guest_kick(&r.g, &r.evq);
                if (got % 64 == 0)
                        guest_ack(&r.g);
        }
        pthread_join(t, NULL);

        CHECK(got == 2 * STRESS_PACKETS && bad == 0, "two threads: %u events in order (%u bad)", got, bad);
        CHECK(!guest_needs_reset(&r.g), "two threads: no error");
        rig_stop(&r);
}

int main(void) {
        test_keyboard_config();
        test_tablet_config();
        test_keyboard_events();
        test_validation();
        test_ring_overflow();
        test_tablet_events();
        test_leds();
        test_hostile_eventq();
        test_threads();
        return tap_finish();
}
