/* SPDX-License-Identifier: MIT */

/*
 * Fuzz target for the virtio-mmio transport and the request parsing of every
 * device behind it (an empty slot, the echo test backend, keyboard, tablet,
 * console, block, network, entropy and gpu devices), driven the way a guest drives them: 32-bit MMIO register
 * accesses and the contents of a fake guest RAM (tests/virtio/guest.c: 16 MiB
 * of heap at 0x80000000, a framebuffer at 0x40000000 that no device may
 * write), except that guest RAM here is a static 128 KiB (reset per input)
 * instead of 16 MiB of heap, so that an input costs microseconds, not a 16 MiB
 * allocation. libFuzzer entry point; fuzz-driver.c replays it without libFuzzer.
 *
 * Input: byte 0 picks the device (0 empty, 1 echo, 2 keyboard, 3 tablet,
 * 4 console, 5 block, 6 network, 7 entropy, 8 gpu; built with -DFUZZ_DEVICE=N the
 * byte is ignored and N is used, for a campaign per device); then a program of operations, each an
 * opcode byte and its operands, read until the input runs out:
 *   0  MMIO write      register (1 byte: index into the register list, or
 *                      raw offset), size (1), value (4)
 *   1  MMIO read       register (1), size (1)
 *   2  RAM write       offset in a 64 KiB window (2), length (1), bytes
 *   3  queue setup     queue (1), size (2), desc/avail/used (2 each, offsets
 *                      in the window; 0xffff takes 8 raw address bytes), ready
 *   4  negotiate       features (8), then DRIVER_OK unless bit 7 of a byte
 *   5  notify          queue (1)
 *   6  host call       kind (1), argument (4)
 *   7  interrupt ack / reset
 * Checked: nothing crashes, ASan sees no access outside guest RAM, and the
 * framebuffer is never written -- except by the gpu, whose scanout is
 * GPU_WIDTH x GPU_HEIGHT of it: the gpu never writes past that.
 */

#include <assert.h>
#include <stdio.h>
#include <unistd.h>
#include <linux/input-event-codes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "block/image.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_console.h"
#include "devices/virtio_gpu.h"
#include "devices/virtio_input.h"
#include "devices/virtio_net.h"
#include "devices/virtio_rng.h"
#include "echo.h"
#include "guest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_RAM_SIZE 0x20000
#define WINDOW_BASE (GUEST_RAM_BASE + 0x10000)
#define WINDOW_SIZE 0x10000

static uint8_t fuzz_ram[FUZZ_RAM_SIZE] __attribute__((aligned(4096)));
static uint8_t fuzz_fb[GUEST_FB_SIZE];
static uint8_t fb_pattern[GUEST_FB_SIZE];
static _Atomic uint64_t fuzz_fb_dirty[1];

/* The gpu's display: a corner of the framebuffer, the rest of which it must leave alone. */
#define GPU_WIDTH 64U
#define GPU_HEIGHT 48U
#define GPU_FB_BYTES (GPU_WIDTH * GPU_HEIGHT * 4U)

typedef struct Input {
        const uint8_t *p;
        size_t left;
} Input;

static uint64_t take(Input *in, unsigned n) {
        uint64_t v = 0;

        for (unsigned i = 0; i < n && in->left > 0; i++, in->p++, in->left--)
                v |= (uint64_t) *in->p << (8 * i);
        return v;
}

static const uint64_t registers[] = {
        VIRTIO_MMIO_MAGIC_VALUE, VIRTIO_MMIO_VERSION_REG, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_VENDOR_ID,
        VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DRIVER_FEATURES,
        VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_QUEUE_NUM_MAX, VIRTIO_MMIO_QUEUE_NUM,
        VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_INTERRUPT_ACK,
        VIRTIO_MMIO_STATUS, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH, VIRTIO_MMIO_QUEUE_DRIVER_LOW,
        VIRTIO_MMIO_QUEUE_DRIVER_HIGH, VIRTIO_MMIO_QUEUE_DEVICE_LOW, VIRTIO_MMIO_QUEUE_DEVICE_HIGH,
        VIRTIO_MMIO_SHM_SEL, VIRTIO_MMIO_SHM_LEN_LOW, VIRTIO_MMIO_CONFIG_GENERATION,
        0x100, 0x101, 0x102, 0x104, 0x108, 0x10c, 0x180, 0x188,
};

static uint64_t reg_offset(uint8_t b) {
        if (b < sizeof(registers) / sizeof(registers[0]))
                return registers[b];
        return (uint64_t) b << 4 & 0xffc;
}

static unsigned access_size(uint8_t b) {
        static const unsigned sizes[] = { 4, 4, 4, 4, 1, 2, 8, 4 };

        return sizes[b & 7];
}

static uint64_t address(Input *in) {
        uint64_t off = take(in, 2);

        if (off == 0xffff)
                return take(in, 8);
        return WINDOW_BASE + off;
}

static void on_data(void *opaque, unsigned port, const uint8_t *buf, size_t len) {
        volatile uint8_t sink = 0;

        for (size_t i = 0; i < len; i++)
                sink ^= buf[i];
}

static void on_open(void *opaque, unsigned port, bool open) {
}

static void on_room(void *opaque, unsigned port) {
}

static void on_leds(void *opaque, uint32_t leds) {
}

typedef struct Devices {
        Guest g;
        VirtioMmio *empty;
        Echo echo;
        bool has_echo;
        VirtioInput *input;
        VirtioConsole *console;
        VirtioBlk *blk;
        VirtioNet *net;
        void *rng_slot;
        void *gpu_slot;
} Devices;

#define NUM_DEVICES 9

/*
 * One small image for every input: opening it once keeps an input cheap.
 * Writes from one input are seen by the next; that costs determinism in the
 * data read back, not in the parsing, which is what is fuzzed. discard=on so
 * that DISCARD and WRITE_ZEROES are parsed too.
 */
static BlockImage *fuzz_image(void) {
        static BlockImage *img;
        char path[] = "/tmp/fuzz-virtio-blk-XXXXXX";
        int fd;

        if (img)
                return img;
        fd = mkstemp(path);
        if (fd < 0 || ftruncate(fd, 64 * 1024) < 0)
                abort();
        if (block_image_open(&(BlockOptions) { .path = path, .discard = true }, &img) < 0)
                abort();
        (void) unlink(path);
        (void) close(fd);
        return img;
}

/*
 * The network device as virtio_net_new() leaves it: link up, transport
 * reset (which empties the backlog), and no frame from the last input
 * waiting for the host (tx frames are never empty, so 0 means none left).
 */
static void net_power_on(VirtioNet *net) {
        uint8_t byte;

        virtio_net_set_link(net, true);
        virtio_net_reset(net);
        while (virtio_net_tx_pop(net, &byte, sizeof(byte)) != 0)
                ;
}

/* A virtio device type in a machine slot (the transport created through the device table), attached to the guest. */
static int create_slot(Devices *d, DeviceHost *host, const void *variant, IrqLine irq, void **ret_slot) {
        DeviceContext ctx = {
                .host = host,
                .mem = &d->g.mem,
                .base = GUEST_MMIO_BASE,
                .size = virtio_mmio_device.size,
                .irq_number = 1,
                .irq = irq,
                .variant = variant,
        };
        int r = virtio_mmio_device.create(&ctx, ret_slot);

        if (r >= 0)
                guest_attach(&d->g, virtio_mmio_slot_transport(*ret_slot));
        return r;
}

/* d is the same static object for every input: the block device keeps a pointer to d->g.mem. */
static void create(Devices *d, unsigned kind) {
        IrqLine irq;
        int r = 0;

        static bool fb_filled;

        /* guest_init() with a small static RAM: the same PhysMem layout, exact bounds for ASan. */
        memset(fuzz_ram, 0, sizeof(fuzz_ram));
        /* The framebuffer is filled once: an input that writes it fails, so it never needs refilling. */
        if (!fb_filled) {
                memset(fuzz_fb, GUEST_FB_PATTERN, sizeof(fuzz_fb));
                memset(fb_pattern, GUEST_FB_PATTERN, sizeof(fb_pattern));
                fb_filled = true;
        }
        d->g = (Guest) {
                .mem = {
                        .ram = fuzz_ram,
                        .ram_base = GUEST_RAM_BASE,
                        .ram_size = FUZZ_RAM_SIZE,
                        .fb = fuzz_fb,
                        .fb_base = GUEST_FB_BASE,
                        .fb_size = GUEST_FB_SIZE,
                        .fb_dirty = fuzz_fb_dirty,
                        .fb_dirty_words = 1,
                },
                .next_alloc = GUEST_RAM_BASE + 0x1000,
        };
        irq = guest_irq(&d->g);
        switch (kind) {
        case 0:
                r = virtio_mmio_new(&d->g.mem, &irq, NULL, NULL, &d->empty);
                guest_attach(&d->g, d->empty);
                break;
        case 1:
                r = echo_new(&d->echo, &d->g.mem, &irq);
                d->has_echo = r >= 0;
                guest_attach(&d->g, d->echo.transport);
                break;
        case 2:
        case 3: {
                VirtioInputConfig c = {
                        .kind = kind == 2 ? VIRTIO_INPUT_KEYBOARD : VIRTIO_INPUT_TABLET,
                        .abs_max_x = 1023,
                        .abs_max_y = 767,
                        .leds = on_leds,
                };

                r = virtio_input_new(&d->g.mem, &irq, &c, &d->input);
                guest_attach(&d->g, virtio_input_transport(d->input));
                break;
        }
        case 5: {
                /*
                 * Created once and reset per input: its four worker threads
                 * cost milliseconds to start and join, a thousand times the
                 * input. Its PhysMem is the static Devices' guest, rebuilt in
                 * place above with the same layout.
                 */
                static VirtioBlk *blk;

                if (!blk)
                        r = virtio_blk_new(&d->g.mem, &irq, fuzz_image(), "fuzz", &blk);
                if (r >= 0) {
                        virtio_blk_reset(blk);
                        d->blk = blk;
                        guest_attach(&d->g, virtio_blk_transport(blk));
                }
                break;
        }
        case 6: {
                /*
                 * Created once and reset per input, like the block device:
                 * its receive chains make it a quarter-megabyte allocation,
                 * which ASan maps and unmaps each time (0.35 ms, ten times
                 * the rest of an input).
                 */
                static VirtioNet *net;

                if (!net)
                        r = virtio_net_new(&d->g.mem, &irq, (const uint8_t[6]) { 0x52, 0x54, 0, 0x12, 0x34, 0x56 },
                                           &net);
                if (r >= 0) {
                        net_power_on(net);
                        d->net = net;
                        guest_attach(&d->g, virtio_net_transport(net));
                }
                break;
        }
        case 7: {
                static DeviceHost host;
                r = create_slot(d, &host, &virtio_rng_type, irq, &d->rng_slot);
                break;
        }
        case 8: {
                static DeviceHost host = { .fb_width = GPU_WIDTH, .fb_height = GPU_HEIGHT };
                r = create_slot(d, &host, &virtio_gpu_type, irq, &d->gpu_slot);
                break;
        }
        default: {
                static const VirtioConsolePortConfig ports[] = {
                        { .name = NULL, .console = true },
                        { .name = VIRTIO_CONSOLE_AGENT_PORT_NAME, .host_connected = true },
                };
                VirtioConsoleConfig c = {
                        .n_ports = 2,
                        .ports = ports,
                        .callbacks = { .on_data = on_data, .on_open = on_open, .on_room = on_room },
                };

                r = virtio_console_new(&d->g.mem, &irq, &c, &d->console);
                guest_attach(&d->g, virtio_console_transport(d->console));
                break;
        }
        }
        if (r < 0)
                abort();
}

static void destroy(Devices *d) {
        d->empty = virtio_mmio_free(d->empty);
        if (d->has_echo)
                echo_free(&d->echo);
        d->input = virtio_input_free(d->input);
        d->console = virtio_console_free(d->console);
        d->blk = NULL;          /* kept for the next input, see create() */
        d->net = NULL;          /* kept for the next input, see create() */
        if (d->rng_slot)
                virtio_mmio_device.free(d->rng_slot);
        d->rng_slot = NULL;
        if (d->gpu_slot)
                virtio_mmio_device.free(d->gpu_slot);
        d->gpu_slot = NULL;
}

static void host_call(Devices *d, uint8_t kind, uint32_t arg) {
        static const uint8_t blob[512] = { [0 ... 511] = 'z' };

        if (d->input)
                switch (kind % 6) {
                case 0:
                        (void) virtio_input_key(d->input, (uint16_t) (arg % 0x300), arg >> 31);
                        break;
                case 1:
                        (void) virtio_input_abs(d->input, (int16_t) arg, (int16_t) (arg >> 16));
                        break;
                case 2:
                        (void) virtio_input_wheel(d->input, (int8_t) arg, (int8_t) (arg >> 8) % 2);
                        break;
                case 3:
                        (void) virtio_input_button(d->input, (uint16_t) (BTN_LEFT + arg % 8), arg >> 31);
                        break;
                case 4:
                        (void) virtio_input_send(d->input, (uint16_t) (arg & 0x1f), (uint16_t) (arg >> 5 & 0x3ff),
                                                 (int32_t) (arg >> 15));
                        break;
                default:
                        (void) virtio_input_sync(d->input);
                        (void) virtio_input_leds(d->input);
                        break;
                }
        else if (d->net)
                switch (kind % 4) {
                case 0: {
                        /* A frame for the guest: lengths around the header and the buffer sizes. */
                        static uint8_t frame[VIRTIO_NET_FRAME_MAX];

                        (void) virtio_net_receive(d->net, frame, arg % (sizeof(frame) + 1));
                        break;
                }
                case 1: {
                        uint8_t buf[2048];

                        (void) virtio_net_tx_pop(d->net, buf, arg % (sizeof(buf) + 1));
                        break;
                }
                case 2:
                        virtio_net_set_link(d->net, arg & 1);
                        break;
                default:
                        virtio_net_reset(d->net);
                        break;
                }
        else if (d->blk)
                virtio_blk_drain(d->blk);
        else if (d->console)
                switch (kind % 4) {
                case 0:
                        (void) virtio_console_write(d->console, arg & 1, blob, arg >> 1 & 0x1ff);
                        break;
                case 1:
                        (void) virtio_console_throttle(d->console, arg & 1, arg & 2);
                        break;
                case 2:
                        (void) virtio_console_set_host_connected(d->console, arg & 1, arg & 2);
                        break;
                default:
                        (void) virtio_console_write_room(d->console, arg & 1);
                        (void) virtio_console_guest_open(d->console, arg & 1);
                        break;
                }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static Devices d;
        Input in = { data, size };
        unsigned steps = 0;

        if (size < 1)
                return 0;
        d = (Devices) {};
#ifdef FUZZ_DEVICE
        (void) take(&in, 1);
        create(&d, FUZZ_DEVICE);
#else
        create(&d, (unsigned) take(&in, 1) % NUM_DEVICES);
#endif

        while (in.left > 0 && steps++ < 4096) {
                uint8_t op = (uint8_t) take(&in, 1);

                switch (op % 8) {
                case 0: {
                        uint64_t offset = reg_offset((uint8_t) take(&in, 1));
                        unsigned sz = access_size((uint8_t) take(&in, 1));

                        virtio_mmio_ops.write(d.g.dev, offset, take(&in, 4), sz);
                        break;
                }
                case 1: {
                        uint64_t offset = reg_offset((uint8_t) take(&in, 1));

                        (void) virtio_mmio_ops.read(d.g.dev, offset, access_size((uint8_t) take(&in, 1)));
                        break;
                }
                case 2: {
                        uint64_t off = take(&in, 2) % WINDOW_SIZE;
                        size_t len = (size_t) take(&in, 1);
                        uint8_t *p = guest_ptr(&d.g, WINDOW_BASE + off);

                        if (len > WINDOW_SIZE - off)
                                len = WINDOW_SIZE - off;
                        if (len > in.left)
                                len = in.left;
                        memcpy(p, in.p, len);
                        in.p += len;
                        in.left -= len;
                        break;
                }
                case 3: {
                        uint64_t desc, avail, used;

                        guest_wr(&d.g, VIRTIO_MMIO_QUEUE_SEL, (uint32_t) take(&in, 1) % 8);
                        guest_wr(&d.g, VIRTIO_MMIO_QUEUE_NUM, (uint32_t) take(&in, 2));
                        desc = address(&in);
                        avail = address(&in);
                        used = address(&in);
                        guest_wr(&d.g, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t) desc);
                        guest_wr(&d.g, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t) (desc >> 32));
                        guest_wr(&d.g, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t) avail);
                        guest_wr(&d.g, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t) (avail >> 32));
                        guest_wr(&d.g, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t) used);
                        guest_wr(&d.g, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t) (used >> 32));
                        guest_wr(&d.g, VIRTIO_MMIO_QUEUE_READY, 1);
                        break;
                }
                case 4: {
                        uint64_t features = take(&in, 8);

                        (void) guest_negotiate(&d.g, features);
                        if (!(take(&in, 1) & 0x80))
                                (void) guest_driver_ok(&d.g);
                        break;
                }
                case 5:
                        guest_wr(&d.g, VIRTIO_MMIO_QUEUE_NOTIFY, (uint32_t) take(&in, 1) % 9);
                        break;
                case 6: {
                        uint8_t kind = (uint8_t) take(&in, 1);

                        host_call(&d, kind, (uint32_t) take(&in, 4));
                        break;
                }
                default:
                        if (op & 0x80)
                                virtio_mmio_reset(d.g.dev);
                        else
                                (void) guest_ack(&d.g);
                        break;
                }
        }

        /* The block device's workers write guest RAM until they are done. */
        if (d.blk)
                virtio_blk_drain(d.blk);
        /* guest_fb_intact(), as one memcmp: a byte loop under coverage tracing would cost more than the input. */
        if (d.gpu_slot) {
                assert(memcmp(fuzz_fb + GPU_FB_BYTES, fb_pattern, sizeof(fuzz_fb) - GPU_FB_BYTES) == 0);
                memset(fuzz_fb, GUEST_FB_PATTERN, GPU_FB_BYTES);
        } else
                assert(memcmp(fuzz_fb, fb_pattern, sizeof(fuzz_fb)) == 0);
        destroy(&d);
        return 0;
}
