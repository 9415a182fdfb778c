/* SPDX-License-Identifier: MIT */
/*
 * A bounded, deterministic fuzz loop (fixed seed) over every device model
 * behind the virtio-mmio transport: an empty slot, the echo backend, the
 * keyboard, the tablet, the console, a disk (virtio-blk on a small image
 * file, discard on, I/O on worker threads) and a NIC (virtio-net). Each round either hammers the
 * registers with random values, or brings the device partly up (random
 * features, queues at plausible or absurd addresses) and then mixes random
 * descriptor tables, avail rings, kicks, control messages, register writes,
 * resets and host API calls. Nothing is checked about the answers; what is
 * checked is that the host survives, the framebuffer is never written, and
 * (under ASan) no access leaves guest RAM.
 */

#include <endian.h>
#include <linux/input-event-codes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "tap.h"
#include "block/image.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_console.h"
#include "devices/virtio_net.h"
#include "devices/virtio_input.h"
#include "echo.h"
#include "guest.h"

#define SEED 0x6f72726572792121ULL     /* "orrery!!" */
#define ROUNDS 1000U
#define OPS 300U
#define MAX_Q 8U

typedef enum Kind {
        KIND_EMPTY,
        KIND_ECHO,
        KIND_KEYBOARD,
        KIND_TABLET,
        KIND_CONSOLE,
        KIND_BLK,
        KIND_NET,
        _KIND_MAX,
} Kind;

static const char *const kind_names[] = {
        [KIND_EMPTY] = "empty slot",
        [KIND_ECHO] = "echo",
        [KIND_KEYBOARD] = "keyboard",
        [KIND_TABLET] = "tablet",
        [KIND_CONSOLE] = "console",
        [KIND_BLK] = "virtio-blk",
        [KIND_NET] = "virtio-net",
};

typedef struct Fuzz {
        uint64_t rng;
        Guest g;
        Kind kind;
        VirtioMmio *empty;
        Echo echo;
        VirtioInput *input;
        VirtioConsole *console;
        BlockImage *image;
        VirtioBlk *blk;
        VirtioNet *net;
        GuestQueue q[MAX_Q];
        bool q_ready[MAX_Q];
        unsigned n_queues;
        uint64_t scratch;               /* a RAM area for buffers and control messages */
        uint64_t host_bytes;            /* on_data total, so the callback does something */
        unsigned host_calls;
} Fuzz;

static uint64_t rnd(Fuzz *f) {
        return rng_next(&f->rng);
}

static uint64_t below(Fuzz *f, uint64_t n) {
        return n ? rnd(f) % n : 0;
}

static void fz_data(void *opaque, unsigned port, const uint8_t *buf, size_t len) {
        Fuzz *f = opaque;

        f->host_calls++;
        for (size_t i = 0; i < len; i++)
                f->host_bytes += buf[i];
}

static void fz_open(void *opaque, unsigned port, bool open) {
        Fuzz *f = opaque;

        f->host_calls++;
}

static void fz_room(void *opaque, unsigned port) {
        Fuzz *f = opaque;

        f->host_calls++;
        (void) virtio_console_write(f->console, port, "r", 1);
}

static void fz_leds(void *opaque, uint32_t leds) {
        Fuzz *f = opaque;

        f->host_calls++;
}

/* An address a hostile driver might use. */
static uint64_t fuzz_addr(Fuzz *f) {
        switch (below(f, 10)) {
        case 0:
                return rnd(f);
        case 1:
                return GUEST_FB_BASE + below(f, GUEST_FB_SIZE + 64);
        case 2:
                return GUEST_MMIO_BASE + below(f, 0x8000);
        case 3:
                return GUEST_RAM_BASE + GUEST_RAM_SIZE - below(f, 64);
        case 4:
                return below(f, 0x100000);
        default:
                return GUEST_RAM_BASE + below(f, GUEST_RAM_SIZE);
        }
}

static uint32_t fuzz_len(Fuzz *f) {
        switch (below(f, 100)) {
        case 0:
                return (uint32_t) rnd(f);
        case 1:
                return (uint32_t) below(f, GUEST_RAM_SIZE + 1);
        case 2 ... 20:
                return (uint32_t) below(f, 0x10000);
        default:
                return (uint32_t) below(f, 256);
        }
}

static uint32_t fuzz_value(Fuzz *f) {
        static const uint32_t interesting[] = {
                0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 64, 128, 255, 256, 0x7fff, 0x8000, 0xffff,
                0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 0x80000000 + 0x1000, 0x40000000, 0x10001000,
        };

        if (below(f, 3) == 0)
                return (uint32_t) rnd(f);
        return interesting[below(f, ELEMENTSOF(interesting))];
}

static const uint64_t registers[] = {
        VIRTIO_MMIO_MAGIC_VALUE, VIRTIO_MMIO_VERSION_REG, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_VENDOR_ID,
        VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DRIVER_FEATURES,
        VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_QUEUE_NUM_MAX, VIRTIO_MMIO_QUEUE_NUM,
        VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_INTERRUPT_ACK,
        VIRTIO_MMIO_STATUS, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH, VIRTIO_MMIO_QUEUE_DRIVER_LOW,
        VIRTIO_MMIO_QUEUE_DRIVER_HIGH, VIRTIO_MMIO_QUEUE_DEVICE_LOW, VIRTIO_MMIO_QUEUE_DEVICE_HIGH,
        VIRTIO_MMIO_SHM_SEL, VIRTIO_MMIO_SHM_LEN_LOW, VIRTIO_MMIO_CONFIG_GENERATION,
        0x100, 0x101, 0x102, 0x104, 0x108, 0x10c, 0x180, 0x188, 0x1ff,
};

static void random_register_op(Fuzz *f) {
        static const unsigned sizes[] = { 4, 4, 4, 4, 1, 2, 8 };
        uint64_t offset;
        unsigned size = sizes[below(f, ELEMENTSOF(sizes))];

        if (below(f, 4) == 0)
                offset = below(f, 0x1000);
        else
                offset = registers[below(f, ELEMENTSOF(registers))];
        if (offset + size > 0x1000)
                offset = 0x1000 - size;

        if (below(f, 3) == 0)
                (void) virtio_mmio_ops.read(f->g.dev, offset, size);
        else
                virtio_mmio_ops.write(f->g.dev, offset, fuzz_value(f), size);
}

/* Writes into guest RAM only where the test's own view is valid. */
static bool in_ram(uint64_t addr, uint64_t len) {
        return addr >= GUEST_RAM_BASE && len <= GUEST_RAM_SIZE && addr - GUEST_RAM_BASE <= GUEST_RAM_SIZE - len;
}

static void bring_up(Fuzz *f) {
        uint64_t features = rnd(f);

        if (below(f, 4) != 0)
                features |= 1ULL << VIRTIO_F_VERSION_1;
        guest_negotiate(&f->g, features);

        for (unsigned i = 0; i < f->n_queues && i < MAX_Q; i++) {
                uint32_t num;

                guest_wr(&f->g, VIRTIO_MMIO_QUEUE_SEL, i);
                num = guest_rd(&f->g, VIRTIO_MMIO_QUEUE_NUM_MAX);
                if (below(f, 8) == 0)
                        num = fuzz_value(f);
                else if (num > 1 && below(f, 2) == 0)
                        num >>= below(f, 4);

                if (below(f, 6) == 0)
                        f->q_ready[i] = guest_queue_setup_at(&f->g, &f->q[i], i, num,
                                                             fuzz_addr(f), fuzz_addr(f), fuzz_addr(f));
                else if (num > 0 && num <= 0x8000)
                        f->q_ready[i] = guest_queue_setup(&f->g, &f->q[i], i, (uint16_t) num);
                else
                        f->q_ready[i] = false;

                /* The rings must be in RAM for the test to write them; the device agreed if it is ready. */
                if (f->q_ready[i] && (!in_ram(f->q[i].desc, 16ULL * f->q[i].num) ||
                                      !in_ram(f->q[i].avail, 6 + 2ULL * f->q[i].num)))
                        f->q_ready[i] = false;
        }

        if (below(f, 8) != 0)
                guest_wr(&f->g, VIRTIO_MMIO_STATUS, guest_rd(&f->g, VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_DRIVER_OK);
}

static void random_descriptor(Fuzz *f, GuestQueue *q, uint16_t i) {
        static const uint16_t flags[] = {
                0, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE,
                0, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_INDIRECT, 0xffff,
        };

        if (below(f, 10) == 0) {
                uint8_t *p = guest_ptr(&f->g, q->desc + 16ULL * i);

                for (unsigned b = 0; b < 16; b++)
                        p[b] = (uint8_t) rnd(f);
                return;
        }
        guest_desc(&f->g, q, i, below(f, 4) ? f->scratch + below(f, 0x10000) : fuzz_addr(f), fuzz_len(f),
                   flags[below(f, ELEMENTSOF(flags))], (uint16_t) below(f, q->num + 2));
}

static void random_queue_op(Fuzz *f) {
        unsigned i = (unsigned) below(f, f->n_queues);
        GuestQueue *q = &f->q[i];

        if (i >= MAX_Q || !f->q_ready[i] || q->num == 0)
                return;

        switch (below(f, 8)) {
        case 0:
        case 1:
                random_descriptor(f, q, (uint16_t) below(f, q->num));
                break;
        case 2: {
                /* A plausible chain of 1..4 descriptors, published. */
                uint16_t head = (uint16_t) below(f, q->num), n = (uint16_t) (1 + below(f, 4));

                for (uint16_t k = 0; k < n; k++) {
                        uint16_t d = (uint16_t) ((head + k) % q->num);
                        bool last = k + 1 == n;

                        guest_desc(&f->g, q, d, f->scratch + below(f, 0x10000), (uint32_t) below(f, 512),
                                   (last ? 0 : VIRTQ_DESC_F_NEXT) | (below(f, 2) ? VIRTQ_DESC_F_WRITE : 0),
                                   (uint16_t) ((d + 1) % q->num));
                }
                guest_publish(&f->g, q, head);
                break;
        }
        case 3:
                guest_publish(&f->g, q, (uint16_t) below(f, q->num + 2));
                break;
        case 4:
                if (below(f, 4) == 0)
                        guest_set_avail_idx(&f->g, q, (uint16_t) rnd(f));
                else {
                        q->avail_idx = (uint16_t) (q->avail_idx + below(f, q->num + 2));
                        guest_set_avail_idx(&f->g, q, q->avail_idx);
                }
                break;
        case 5:
                guest_set_avail_flags(&f->g, q, (uint16_t) below(f, 4));
                break;
        default:
                guest_kick(&f->g, q);
                break;
        }
}

/* A well-formed (mostly) console control message on c_ovq. */
static void console_control(Fuzz *f) {
        GuestQueue *q = &f->q[3];
        uint64_t msg = f->scratch + 0x20000 + 8 * below(f, 64);
        uint32_t id = below(f, 8) == 0 ? 0xffffffff : (uint32_t) below(f, 4);
        uint16_t event = (uint16_t) below(f, 9), value = (uint16_t) below(f, 3);
        uint8_t *p;

        if (!f->q_ready[3])
                return;
        p = guest_ptr(&f->g, msg);
        id = htole32(id);
        event = htole16(event);
        value = htole16(value);
        memcpy(p, &id, 4);
        memcpy(p + 4, &event, 2);
        memcpy(p + 6, &value, 2);
        guest_add_buf(&f->g, q, msg, below(f, 8) ? 8 : (uint32_t) below(f, 16), below(f, 10) == 0);
        guest_kick(&f->g, q);
}

static void host_op(Fuzz *f) {
        static const uint8_t blob[6000] = { [0 ... 5999] = 'z' };

        switch (f->kind) {
        case KIND_KEYBOARD:
        case KIND_TABLET:
                switch (below(f, 7)) {
                case 0:
                        (void) virtio_input_key(f->input, (uint16_t) below(f, 0x320), below(f, 2));
                        break;
                case 1:
                        (void) virtio_input_abs(f->input, (int64_t) rnd(f), (int64_t) rnd(f));
                        break;
                case 2:
                        (void) virtio_input_wheel(f->input, (int32_t) rnd(f), (int32_t) below(f, 3) - 1);
                        break;
                case 3:
                        (void) virtio_input_button(f->input, (uint16_t) (BTN_LEFT + below(f, 8)), below(f, 2));
                        break;
                case 4:
                        (void) virtio_input_send(f->input, (uint16_t) below(f, 0x20), (uint16_t) below(f, 0x320),
                                                 (int32_t) fuzz_value(f));
                        break;
                case 5:
                        (void) virtio_input_sync(f->input);
                        break;
                default:
                        (void) virtio_input_leds(f->input);
                        (void) virtio_input_driver_ready(f->input);
                        break;
                }
                break;

        case KIND_NET: {
                static uint8_t frame[VIRTIO_NET_FRAME_MAX + 1];

                switch (below(f, 4)) {
                case 0:
                case 1:
                        (void) virtio_net_receive(f->net, blob, (size_t) below(f, sizeof(blob)));
                        break;
                case 2:
                        (void) virtio_net_tx_pop(f->net, frame, (size_t) below(f, sizeof(frame)));
                        break;
                default:
                        virtio_net_set_link(f->net, below(f, 3) != 0);
                }
                break;
        }
        case KIND_BLK:
                if (below(f, 4) == 0)
                        virtio_blk_drain(f->blk);
                break;
        case KIND_CONSOLE: {
                unsigned port = (unsigned) below(f, 4);

                switch (below(f, 6)) {
                case 0:
                case 1:
                        (void) virtio_console_write(f->console, port, blob, (size_t) below(f, sizeof(blob)));
                        break;
                case 2:
                        (void) virtio_console_throttle(f->console, port, below(f, 3) == 0);
                        break;
                case 3:
                        (void) virtio_console_set_host_connected(f->console, port, below(f, 2));
                        break;
                case 4:
                        console_control(f);
                        break;
                default:
                        (void) virtio_console_write_room(f->console, port);
                        (void) virtio_console_guest_open(f->console, port);
                        break;
                }
                break;
        }

        default:
                break;
        }
}

static void create(Fuzz *f, Kind kind) {
        IrqLine irq;
        int r = 0;

        f->kind = kind;
        guest_init(&f->g);
        irq = guest_irq(&f->g);

        switch (kind) {
        case KIND_EMPTY:
                r = virtio_mmio_new(&f->g.mem, &irq, NULL, NULL, &f->empty);
                guest_attach(&f->g, f->empty);
                f->n_queues = 0;
                break;
        case KIND_ECHO:
                r = echo_new(&f->echo, &f->g.mem, &irq);
                guest_attach(&f->g, f->echo.transport);
                f->n_queues = 2;
                break;
        case KIND_KEYBOARD:
        case KIND_TABLET: {
                VirtioInputConfig c = {
                        .kind = kind == KIND_KEYBOARD ? VIRTIO_INPUT_KEYBOARD : VIRTIO_INPUT_TABLET,
                        .abs_max_x = 639,
                        .abs_max_y = 479,
                        .leds = fz_leds,
                        .opaque = f,
                };

                r = virtio_input_new(&f->g.mem, &irq, &c, &f->input);
                guest_attach(&f->g, virtio_input_transport(f->input));
                f->n_queues = 2;
                break;
        }
        case KIND_CONSOLE: {
                static const VirtioConsolePortConfig ports[] = {
                        { .name = NULL, .console = true },
                        { .name = VIRTIO_CONSOLE_AGENT_PORT_NAME, .host_connected = true },
                        { .name = "org.orrery.test" },
                };
                VirtioConsoleConfig c = {
                        .n_ports = 3,
                        .ports = ports,
                        .callbacks = { .on_data = fz_data, .on_open = fz_open, .on_room = fz_room },
                        .opaque = f,
                };

                r = virtio_console_new(&f->g.mem, &irq, &c, &f->console);
                guest_attach(&f->g, virtio_console_transport(f->console));
                f->n_queues = 8;
                break;
        }
        case KIND_BLK: {
                char path[] = "/var/tmp/test-virtio-fuzz-XXXXXX";
                int fd = mkstemp(path);
                BlockOptions o = { .path = path, .discard = true };

                if (fd < 0 || ftruncate(fd, 64 << 10) < 0)
                        abort();
                r = block_image_open(&o, &f->image);
                unlink(path);
                close(fd);
                if (r >= 0)
                        r = virtio_blk_new(&f->g.mem, &irq, f->image, "fuzz", &f->blk);
                if (r >= 0)
                        guest_attach(&f->g, virtio_blk_transport(f->blk));
                f->n_queues = 1;
                break;
        }
        case KIND_NET: {
                static const uint8_t mac[6] = { 0x52, 0x54, 0, 1, 2, 3 };

                r = virtio_net_new(&f->g.mem, &irq, mac, &f->net);
                if (r >= 0)
                        guest_attach(&f->g, virtio_net_transport(f->net));
                f->n_queues = 2;
                break;
        }
        default:
                abort();
        }
        if (r < 0)
                abort();
}

static void destroy(Fuzz *f) {
        f->empty = virtio_mmio_free(f->empty);
        if (f->kind == KIND_ECHO)
                echo_free(&f->echo);
        f->input = virtio_input_free(f->input);
        f->console = virtio_console_free(f->console);
        f->blk = virtio_blk_free(f->blk);
        f->image = block_image_close(f->image);
        f->net = virtio_net_free(f->net);
        guest_done(&f->g);
}

static void fuzz_kind(Kind kind) {
        static Fuzz f;
        bool fb_ok = true;

        f = (Fuzz) { .rng = SEED ^ ((uint64_t) kind << 32) };
        create(&f, kind);

        for (unsigned round = 0; round < ROUNDS; round++) {
                bool structured = below(&f, 4) != 0;

                /* Fresh guest memory view each round: the bump allocator restarts. */
                f.g.next_alloc = GUEST_RAM_BASE + 0x1000;
                f.scratch = guest_alloc(&f.g, 0x30000, 16);
                memset(f.q_ready, 0, sizeof(f.q_ready));

                if (structured)
                        bring_up(&f);

                for (unsigned op = 0; op < OPS; op++) {
                        unsigned what = (unsigned) below(&f, 100);

                        if (!structured || what < 15)
                                random_register_op(&f);
                        else if (what < 70)
                                random_queue_op(&f);
                        else if (what < 98)
                                host_op(&f);
                        else if (what < 99)
                                virtio_mmio_reset(f.g.dev);
                        else
                                bring_up(&f);
                }

                if (!guest_fb_intact(&f.g))
                        fb_ok = false;
        }

        CHECK(fb_ok, "fuzz %s: %u rounds of %u operations, framebuffer never written", kind_names[kind], ROUNDS, OPS);
        CHECK(true, "fuzz %s: survived (%u host callbacks)", kind_names[kind], f.host_calls);
        destroy(&f);
}

int main(void) {
        for (Kind k = 0; k < _KIND_MAX; k++)
                fuzz_kind(k);
        return tap_finish();
}
