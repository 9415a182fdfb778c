/* SPDX-License-Identifier: MIT */
/*
 * virtio-input keyboard and tablet: see virtio_input.h for what the guest
 * sees, the host API and the threading rules.
 */

#include <endian.h>
#include <errno.h>
#include <linux/input-event-codes.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "devices/virtio_input.h"

#define EVENTQ 0U
#define STATUSQ 1U
#define NUM_QUEUES 2U

#define EVENT_SIZE 8U

/* virtio_input_config.select */
#define CFG_UNSET      0x00
#define CFG_ID_NAME    0x01
#define CFG_ID_SERIAL  0x02
#define CFG_ID_DEVIDS  0x03
#define CFG_PROP_BITS  0x10
#define CFG_EV_BITS    0x11
#define CFG_ABS_INFO   0x12

#define CFG_SELECT  0U
#define CFG_SUBSEL  1U
#define CFG_SIZE    2U
#define CFG_UNION   8U
#define CFG_UNION_SIZE 128U

#define BITMAP_BYTES CFG_UNION_SIZE
#define BITMAP_BITS (BITMAP_BYTES * 8U)

#define INPUT_BUS_VIRTUAL 0x06U
#define ORRERY_INPUT_VENDOR 0x4f52U
#define ORRERY_INPUT_VERSION 1U

#define SERIAL_MAX 127U

#define LED_MASK ((1U << LED_NUML) | (1U << LED_CAPSL) | (1U << LED_SCROLLL))

typedef struct InputEvent {
        uint16_t type;
        uint16_t code;
        int32_t value;
} InputEvent;

/* The event types a device may report, and the index of their bitmap. */
enum {
        BITS_KEY,
        BITS_REL,
        BITS_ABS,
        BITS_LED,
        BITS_REP,
        _BITS_MAX,
};

/*
 * 'transport' owns the device lock. Fields above 'config' are constant
 * after virtio_input_new(); everything from 'config' on is protected by
 * the lock, except 'chain', which is scratch space used only with it held.
 */
struct VirtioInput {
        VirtioMmio *transport;

        VirtioInputKind kind;
        const char *name;
        char serial[SERIAL_MAX + 1];
        uint8_t bits[_BITS_MAX][BITMAP_BYTES];
        uint32_t abs_max[2];            /* ABS_X, ABS_Y */
        void (*leds_cb)(void *opaque, uint32_t leds);
        void (*ready_cb)(void *opaque, bool ready);
        void *opaque;

        uint8_t config[VIRTIO_INPUT_CONFIG_SIZE];

        InputEvent ring[VIRTIO_INPUT_RING_SIZE];
        unsigned ring_head;             /* oldest committed event */
        unsigned ring_count;

        InputEvent packet[VIRTIO_INPUT_PACKET_MAX];     /* open packet (send() without sync()) */
        unsigned n_packet;

        uint32_t leds;                  /* as the driver last set them */
        uint32_t leds_reported;         /* as last passed to leds_cb */
        bool ready;                     /* the driver set DRIVER_OK (and has not reset since) */
        bool ready_reported;            /* as last passed to ready_cb */
        bool dispatching;               /* a thread is running callbacks */

        VirtqChain chain;
};

static int bits_index(uint16_t type) {
        switch (type) {
        case EV_KEY:
                return BITS_KEY;
        case EV_REL:
                return BITS_REL;
        case EV_ABS:
                return BITS_ABS;
        case EV_LED:
                return BITS_LED;
        case EV_REP:
                return BITS_REP;
        default:
                return -1;
        }
}

static void set_bit(uint8_t *bitmap, unsigned bit) {
        bitmap[bit / 8] |= (uint8_t) (1U << (bit % 8));
}

static bool test_bit(const uint8_t *bitmap, unsigned bit) {
        return bit < BITMAP_BITS && (bitmap[bit / 8] & (1U << (bit % 8)));
}

static bool has_code(const VirtioInput *dev, uint16_t type, uint16_t code) {
        int i = bits_index(type);

        return i >= 0 && test_bit(dev->bits[i], code);
}

bool virtio_input_has_key(const VirtioInput *dev, uint16_t code) {
        return dev && has_code(dev, EV_KEY, code);
}

static void init_bits(VirtioInput *dev) {
        if (dev->kind == VIRTIO_INPUT_KEYBOARD) {
                for (unsigned k = 1; k <= 0xff; k++)
                        set_bit(dev->bits[BITS_KEY], k);
                /* KEY_OK .. the last key before BTN_DPAD_UP: no buttons. */
                for (unsigned k = KEY_OK; k < BTN_DPAD_UP; k++)
                        set_bit(dev->bits[BITS_KEY], k);
                set_bit(dev->bits[BITS_LED], LED_NUML);
                set_bit(dev->bits[BITS_LED], LED_CAPSL);
                set_bit(dev->bits[BITS_LED], LED_SCROLLL);
                set_bit(dev->bits[BITS_REP], REP_DELAY);
                set_bit(dev->bits[BITS_REP], REP_PERIOD);
        } else {
                for (unsigned k = BTN_LEFT; k <= BTN_EXTRA; k++)
                        set_bit(dev->bits[BITS_KEY], k);
                set_bit(dev->bits[BITS_ABS], ABS_X);
                set_bit(dev->bits[BITS_ABS], ABS_Y);
                set_bit(dev->bits[BITS_REL], REL_HWHEEL);
                set_bit(dev->bits[BITS_REL], REL_WHEEL);
        }
}

static void put_le16(uint8_t *p, uint16_t v) {
        v = htole16(v);
        memcpy(p, &v, sizeof(v));
}

static void put_le32(uint8_t *p, uint32_t v) {
        v = htole32(v);
        memcpy(p, &v, sizeof(v));
}

/* Recomputes size and the union from select/subsel. Lock held. */
static void config_update_locked(VirtioInput *dev) {
        uint8_t select = dev->config[CFG_SELECT], subsel = dev->config[CFG_SUBSEL];
        uint8_t *u = dev->config + CFG_UNION;
        size_t size = 0;
        int i;

        memset(dev->config + CFG_SIZE, 0, sizeof(dev->config) - CFG_SIZE);

        switch (select) {
        case CFG_ID_NAME:
        case CFG_ID_SERIAL: {
                const char *s = select == CFG_ID_NAME ? dev->name : dev->serial;

                if (subsel != 0)
                        break;
                size = MIN(strlen(s), (size_t) CFG_UNION_SIZE);
                memcpy(u, s, size);
                break;
        }

        case CFG_ID_DEVIDS:
                if (subsel != 0)
                        break;
                put_le16(u + 0, INPUT_BUS_VIRTUAL);
                put_le16(u + 2, ORRERY_INPUT_VENDOR);
                put_le16(u + 4, dev->kind == VIRTIO_INPUT_KEYBOARD ? 1 : 2);
                put_le16(u + 6, ORRERY_INPUT_VERSION);
                size = 8;
                break;

        case CFG_PROP_BITS:
                /* No INPUT_PROP_* (the tablet is a pointer, not a direct-input device). */
                break;

        case CFG_EV_BITS:
                i = bits_index(subsel);
                if (i < 0)
                        break;
                for (size_t b = 0; b < BITMAP_BYTES; b++)
                        if (dev->bits[i][b] != 0)
                                size = b + 1;
                memcpy(u, dev->bits[i], size);
                break;

        case CFG_ABS_INFO:
                if (!has_code(dev, EV_ABS, subsel) || subsel > ABS_Y)
                        break;
                put_le32(u + 0, 0);                     /* min */
                put_le32(u + 4, dev->abs_max[subsel]);  /* max */
                /* fuzz, flat, res: 0 */
                size = 20;
                break;

        case CFG_UNSET:
        default:
                break;
        }

        dev->config[CFG_SIZE] = (uint8_t) size;
}

static void input_config_read(void *backend, uint32_t offset, uint8_t *buf, unsigned size) {
        VirtioInput *dev = backend;

        memcpy(buf, dev->config + offset, size);
}

static void input_config_write(void *backend, uint32_t offset, const uint8_t *buf, unsigned size) {
        VirtioInput *dev = backend;
        bool changed = false;

        /* Only select and subsel are writable. */
        for (unsigned i = 0; i < size; i++)
                if (offset + i == CFG_SELECT || offset + i == CFG_SUBSEL) {
                        dev->config[offset + i] = buf[i];
                        changed = true;
                }

        if (changed)
                config_update_locked(dev);
}

static uint16_t input_queue_num_max(_unused_ void *backend, _unused_ unsigned index) {
        return VIRTIO_INPUT_QUEUE_SIZE;
}

/* DRIVER_OK and an eventq to put events in. Lock held. */
static bool driver_ready_locked(VirtioInput *dev) {
        return virtio_mmio_driver_ok_locked(dev->transport) &&
                virtqueue_usable(virtio_mmio_queue(dev->transport, EVENTQ));
}

/* Moves committed events into eventq buffers while both last. Lock held. */
static void flush_locked(VirtioInput *dev) {
        VirtQueue *vq = virtio_mmio_queue(dev->transport, EVENTQ);
        bool pushed = false;

        if (!virtio_mmio_driver_ok_locked(dev->transport))
                return;

        while (dev->ring_count > 0) {
                const InputEvent *e = &dev->ring[dev->ring_head];
                uint8_t buf[EVENT_SIZE];

                if (virtqueue_pop(vq, &dev->chain) <= 0)
                        break;
                if (dev->chain.in_len < EVENT_SIZE) {
                        /* A buffer the device cannot write an event into (read-only or short). */
                        (void) virtqueue_fail(vq, -EMSGSIZE);
                        break;
                }

                put_le16(buf + 0, e->type);
                put_le16(buf + 2, e->code);
                put_le32(buf + 4, (uint32_t) e->value);
                (void) virtqueue_chain_write(&dev->chain, 0, buf, sizeof(buf));
                if (virtqueue_push(vq, &dev->chain, EVENT_SIZE) < 0)
                        break;
                pushed = true;

                dev->ring_head = (dev->ring_head + 1) % VIRTIO_INPUT_RING_SIZE;
                dev->ring_count--;
        }

        if (pushed)
                virtio_mmio_notify_locked(dev->transport, vq);
}

/* Commits n events and a SYN_REPORT as one packet, or nothing. Lock held. */
static int commit_locked(VirtioInput *dev, const InputEvent *events, unsigned n) {
        if (!driver_ready_locked(dev))
                return 0;       /* nobody is reading: discard */
        if (n + 1 > VIRTIO_INPUT_RING_SIZE - dev->ring_count)
                return -ENOBUFS;

        for (unsigned i = 0; i <= n; i++) {
                unsigned slot = (dev->ring_head + dev->ring_count) % VIRTIO_INPUT_RING_SIZE;

                dev->ring[slot] = i < n ? events[i] : (InputEvent) { EV_SYN, SYN_REPORT, 0 };
                dev->ring_count++;
        }

        flush_locked(dev);
        return 0;
}

/* Consumes status buffers; EV_LED updates the LED state. Lock held. */
static void process_status_locked(VirtioInput *dev) {
        VirtQueue *vq = virtio_mmio_queue(dev->transport, STATUSQ);
        bool pushed = false;

        while (virtqueue_pop(vq, &dev->chain) > 0) {
                uint8_t buf[EVENT_SIZE];

                if (virtqueue_chain_read(&dev->chain, 0, buf, sizeof(buf)) == sizeof(buf) &&
                    dev->kind == VIRTIO_INPUT_KEYBOARD) {
                        uint16_t type, code;
                        uint32_t value;

                        memcpy(&type, buf, 2);
                        memcpy(&code, buf + 2, 2);
                        memcpy(&value, buf + 4, 4);
                        type = le16toh(type);
                        code = le16toh(code);
                        value = le32toh(value);

                        if (type == EV_LED && code <= LED_SCROLLL) {
                                if (value)
                                        dev->leds |= 1U << code;
                                else
                                        dev->leds &= ~(1U << code);
                        }
                }

                if (virtqueue_push(vq, &dev->chain, 0) < 0)
                        break;
                pushed = true;
        }

        if (pushed)
                virtio_mmio_notify_locked(dev->transport, vq);
}

static void input_queue_notify(void *backend, unsigned index) {
        VirtioInput *dev = backend;

        if (index == EVENTQ)
                flush_locked(dev);
        else if (index == STATUSQ)
                process_status_locked(dev);
}

static void input_driver_ok(void *backend) {
        VirtioInput *dev = backend;

        dev->ready = true;
        flush_locked(dev);
        process_status_locked(dev);
}

static void input_reset(void *backend) {
        VirtioInput *dev = backend;

        memset(dev->config, 0, sizeof(dev->config));
        dev->ring_head = dev->ring_count = 0;
        dev->n_packet = 0;
        dev->leds = 0;
        dev->ready = false;
}

/* Runs the host callbacks, serialised, without the lock. */
static void input_dispatch(void *backend) {
        VirtioInput *dev = backend;

        virtio_mmio_lock(dev->transport);
        if (dev->dispatching) {
                /* The running dispatcher re-checks the state after each callback. */
                virtio_mmio_unlock(dev->transport);
                return;
        }
        dev->dispatching = true;

        for (;;) {
                if (dev->leds != dev->leds_reported) {
                        uint32_t leds = dev->leds_reported = dev->leds;

                        virtio_mmio_unlock(dev->transport);
                        if (dev->leds_cb)
                                dev->leds_cb(dev->opaque, leds);
                        virtio_mmio_lock(dev->transport);
                } else if (dev->ready != dev->ready_reported) {
                        bool ready = dev->ready_reported = dev->ready;

                        virtio_mmio_unlock(dev->transport);
                        if (dev->ready_cb)
                                dev->ready_cb(dev->opaque, ready);
                        virtio_mmio_lock(dev->transport);
                } else
                        break;
        }

        dev->dispatching = false;
        virtio_mmio_unlock(dev->transport);
}

int virtio_input_new(PhysMem *mem, const IrqLine *irq, const VirtioInputConfig *config, VirtioInput **ret) {
        _cleanup_free_ VirtioInput *dev = NULL;
        VirtioDeviceOps ops = {
                .device_id = VIRTIO_ID_INPUT,
                .features = 0,
                .num_queues = NUM_QUEUES,
                .config_size = VIRTIO_INPUT_CONFIG_SIZE,
                .queue_num_max = input_queue_num_max,
                .config_read = input_config_read,
                .config_write = input_config_write,
                .queue_notify = input_queue_notify,
                .driver_ok = input_driver_ok,
                .reset = input_reset,
                .dispatch = input_dispatch,
        };
        const char *serial;
        int r;

        if (!mem || !config || !ret)
                return -EINVAL;
        if (config->kind != VIRTIO_INPUT_KEYBOARD && config->kind != VIRTIO_INPUT_TABLET)
                return -EINVAL;
        if (config->kind == VIRTIO_INPUT_TABLET &&
            (config->abs_max_x > INT32_MAX || config->abs_max_y > INT32_MAX))
                return -EINVAL;

        serial = config->serial ?: (config->kind == VIRTIO_INPUT_KEYBOARD ? "orrery-keyboard" : "orrery-tablet");
        if (strlen(serial) > SERIAL_MAX)
                return -EINVAL;

        dev = calloc(1, sizeof(VirtioInput));
        if (!dev)
                return -ENOMEM;

        dev->kind = config->kind;
        dev->name = dev->kind == VIRTIO_INPUT_KEYBOARD ? "Orrery Keyboard" : "Orrery Tablet";
        strcpy(dev->serial, serial);
        dev->abs_max[0] = config->abs_max_x;
        dev->abs_max[1] = config->abs_max_y;
        dev->leds_cb = config->leds;
        dev->ready_cb = config->ready;
        dev->opaque = config->opaque;
        init_bits(dev);

        r = virtio_mmio_new(mem, irq, &ops, dev, &dev->transport);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(dev);
        return 0;
}

VirtioInput *virtio_input_free(VirtioInput *dev) {
        if (!dev)
                return NULL;

        virtio_mmio_free(dev->transport);
        free(dev);
        return NULL;
}

VirtioMmio *virtio_input_transport(VirtioInput *dev) {
        return dev ? dev->transport : NULL;
}

void virtio_input_reset(VirtioInput *dev) {
        if (dev)
                virtio_mmio_reset(dev->transport);
}

/* Checks one event (clamping ABS values). Constant data only: no lock. */
static int validate(const VirtioInput *dev, InputEvent *e) {
        if (!has_code(dev, e->type, e->code))
                return -EINVAL;

        switch (e->type) {
        case EV_KEY:
                if (e->value < 0 || e->value > 2)
                        return -EINVAL;
                return 0;

        case EV_REL:
                return 0;

        case EV_ABS:
                e->value = (int32_t) MIN((uint32_t) MAX(e->value, 0), dev->abs_max[e->code]);
                return 0;

        default:
                /* LED and REP are reported by the device, not sent by the host. */
                return -EINVAL;
        }
}

/* Validates and commits n events (n <= VIRTIO_INPUT_PACKET_MAX) as one packet. */
static int send_packet(VirtioInput *dev, InputEvent *events, unsigned n) {
        int r;

        for (unsigned i = 0; i < n; i++) {
                r = validate(dev, &events[i]);
                if (r < 0)
                        return r;
        }

        virtio_mmio_lock(dev->transport);
        r = commit_locked(dev, events, n);
        virtio_mmio_unlock(dev->transport);

        return r;
}

int virtio_input_sync(VirtioInput *dev) {
        int r = 0;

        if (!dev)
                return -EINVAL;

        virtio_mmio_lock(dev->transport);
        if (dev->n_packet > 0)
                r = commit_locked(dev, dev->packet, dev->n_packet);
        dev->n_packet = 0;
        virtio_mmio_unlock(dev->transport);

        return r;
}

int virtio_input_send(VirtioInput *dev, uint16_t type, uint16_t code, int32_t value) {
        InputEvent e = { .type = type, .code = code, .value = value };
        int r;

        if (!dev)
                return -EINVAL;

        if (type == EV_SYN)
                return code == SYN_REPORT ? virtio_input_sync(dev) : -EINVAL;

        r = validate(dev, &e);
        if (r < 0)
                return r;

        virtio_mmio_lock(dev->transport);
        if (dev->n_packet >= VIRTIO_INPUT_PACKET_MAX) {
                dev->n_packet = 0;
                r = -ENOBUFS;
        } else
                dev->packet[dev->n_packet++] = e;
        virtio_mmio_unlock(dev->transport);

        return r;
}

int virtio_input_key(VirtioInput *dev, uint16_t code, bool pressed) {
        InputEvent e = { .type = EV_KEY, .code = code, .value = pressed };

        if (!dev)
                return -EINVAL;
        return send_packet(dev, &e, 1);
}

int virtio_input_button(VirtioInput *dev, uint16_t button, bool pressed) {
        if (!dev || dev->kind != VIRTIO_INPUT_TABLET)
                return -EINVAL;
        return virtio_input_key(dev, button, pressed);
}

int virtio_input_abs(VirtioInput *dev, int64_t x, int64_t y) {
        InputEvent e[2];

        if (!dev || dev->kind != VIRTIO_INPUT_TABLET)
                return -EINVAL;

        e[0] = (InputEvent) { EV_ABS, ABS_X, (int32_t) MIN((uint64_t) MAX(x, 0), dev->abs_max[0]) };
        e[1] = (InputEvent) { EV_ABS, ABS_Y, (int32_t) MIN((uint64_t) MAX(y, 0), dev->abs_max[1]) };
        return send_packet(dev, e, 2);
}

int virtio_input_wheel(VirtioInput *dev, int32_t vertical, int32_t horizontal) {
        InputEvent e[2];
        unsigned n = 0;

        if (!dev || dev->kind != VIRTIO_INPUT_TABLET)
                return -EINVAL;

        if (vertical != 0)
                e[n++] = (InputEvent) { EV_REL, REL_WHEEL, vertical };
        if (horizontal != 0)
                e[n++] = (InputEvent) { EV_REL, REL_HWHEEL, horizontal };
        if (n == 0)
                return 0;
        return send_packet(dev, e, n);
}

uint32_t virtio_input_leds(VirtioInput *dev) {
        uint32_t leds;

        if (!dev)
                return 0;

        virtio_mmio_lock(dev->transport);
        leds = dev->leds & LED_MASK;
        virtio_mmio_unlock(dev->transport);
        return leds;
}

bool virtio_input_driver_ready(VirtioInput *dev) {
        bool ready;

        if (!dev)
                return false;

        virtio_mmio_lock(dev->transport);
        ready = driver_ready_locked(dev);
        virtio_mmio_unlock(dev->transport);
        return ready;
}

/* ---- device types: the machine's keyboard and tablet ---- */

static void host_changed(void *opaque) {
        const DeviceHost *host = opaque;

        if (host->changed)
                host->changed(host->opaque);
}

static void keyboard_leds(void *opaque, _unused_ uint32_t leds) {
        host_changed(opaque);
}

static void tablet_ready(void *opaque, _unused_ bool ready) {
        host_changed(opaque);
}

static int input_create(const DeviceContext *ctx, const VirtioInputConfig *c, void **ret, VirtioMmio **ret_transport) {
        VirtioInput *dev;
        int r;

        r = virtio_input_new(ctx->mem, &ctx->irq, c, &dev);
        if (r < 0)
                return r;
        *ret = dev;
        *ret_transport = dev->transport;
        return 0;
}

static int keyboard_create(const DeviceContext *ctx, void **ret, VirtioMmio **ret_transport) {
        VirtioInputConfig c = {
                .kind = VIRTIO_INPUT_KEYBOARD,
                .leds = keyboard_leds,
                .opaque = (void *) ctx->host,   /* outlives its devices */
        };
        return input_create(ctx, &c, ret, ret_transport);
}

static int tablet_create(const DeviceContext *ctx, void **ret, VirtioMmio **ret_transport) {
        /* Without a framebuffer the tablet still exists, scaled to a nominal screen. */
        VirtioInputConfig c = {
                .kind = VIRTIO_INPUT_TABLET,
                .abs_max_x = (ctx->host->fb_width ? ctx->host->fb_width : VIRTIO_INPUT_NOMINAL_WIDTH) - 1,
                .abs_max_y = (ctx->host->fb_height ? ctx->host->fb_height : VIRTIO_INPUT_NOMINAL_HEIGHT) - 1,
                .ready = tablet_ready,
                .opaque = (void *) ctx->host,
        };
        return input_create(ctx, &c, ret, ret_transport);
}

static void type_free(void *backend) {
        virtio_input_free(backend);
}

static void put_events(StateWriter *w, const InputEvent *events, unsigned first, unsigned n, unsigned size) {
        state_put_u32(w, n);
        for (unsigned i = 0; i < n; i++) {
                const InputEvent *e = &events[(first + i) % size];
                state_put_u16(w, e->type);
                state_put_u16(w, e->code);
                state_put_u32(w, (uint32_t) e->value);
        }
}

static void get_events(StateReader *r, InputEvent *events, unsigned *ret_n, unsigned max) {
        uint32_t n = 0, value = 0;

        state_get_u32_max(r, max, &n);
        for (unsigned i = 0; i < n && state_reader_error(r) == 0; i++) {
                state_get_u16(r, &events[i].type);
                state_get_u16(r, &events[i].code);
                state_get_u32(r, &value);
                events[i].value = (int32_t) value;
        }
        *ret_n = n;
}

/* The driver's config selection, host events not yet delivered (committed and open), LEDs and readiness. */
static int type_save(void *backend, StateWriter *w) {
        VirtioInput *dev = backend;

        virtio_mmio_lock(dev->transport);
        state_put_bytes(w, dev->config, sizeof(dev->config));
        put_events(w, dev->ring, dev->ring_head, dev->ring_count, VIRTIO_INPUT_RING_SIZE);
        put_events(w, dev->packet, 0, dev->n_packet, VIRTIO_INPUT_PACKET_MAX);
        state_put_u32(w, dev->leds);
        state_put_bool(w, dev->ready);
        virtio_mmio_unlock(dev->transport);
        return state_writer_error(w);
}

static int type_load(void *backend, StateReader *r) {
        VirtioInput *dev = backend;
        _cleanup_free_ VirtioInput *n = calloc(1, sizeof(VirtioInput));

        if (!n)
                return -ENOMEM;
        state_get_bytes(r, n->config, sizeof(n->config));
        get_events(r, n->ring, &n->ring_count, VIRTIO_INPUT_RING_SIZE);
        get_events(r, n->packet, &n->n_packet, VIRTIO_INPUT_PACKET_MAX);
        state_get_u32(r, &n->leds);
        state_get_bool(r, &n->ready);
        if (state_reader_error(r) < 0)
                return state_reader_error(r);

        virtio_mmio_lock(dev->transport);
        memcpy(dev->config, n->config, sizeof(n->config));
        memcpy(dev->ring, n->ring, sizeof(n->ring));
        dev->ring_head = 0;
        dev->ring_count = n->ring_count;
        memcpy(dev->packet, n->packet, sizeof(n->packet));
        dev->n_packet = n->n_packet;
        dev->leds = n->leds;
        dev->ready = n->ready;
        virtio_mmio_unlock(dev->transport);
        return 0;
}

const VirtioDeviceType virtio_keyboard_type = {
        .name = "virtio-keyboard",
        .create = keyboard_create,
        .free = type_free,
        .save = type_save,
        .load = type_load,
};

const VirtioDeviceType virtio_tablet_type = {
        .name = "virtio-tablet",
        .create = tablet_create,
        .free = type_free,
        .save = type_save,
        .load = type_load,
};
