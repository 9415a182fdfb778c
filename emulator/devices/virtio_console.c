/* SPDX-License-Identifier: MIT */
/*
 * virtio-console with multiport: see virtio_console.h for the handshake,
 * the data paths and the threading rules.
 */

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "devices/virtio_console.h"

#define VIRTIO_CONSOLE_F_MULTIPORT 1

/* Control events. */
#define CTRL_DEVICE_READY  0
#define CTRL_PORT_ADD      1
#define CTRL_PORT_REMOVE   2
#define CTRL_PORT_READY    3
#define CTRL_CONSOLE_PORT  4
#define CTRL_RESIZE        5
#define CTRL_PORT_OPEN     6
#define CTRL_PORT_NAME     7

#define CTRL_HEADER_SIZE 8U     /* le32 id, le16 event, le16 value */

#define CONFIG_SIZE 12U         /* le16 cols, le16 rows, le32 max_nr_ports, le32 emerg_wr */

#define C_IVQ 2U
#define C_OVQ 3U

/* Control messages a port still owes the driver, sent in this (bit) order. */
#define PENDING_ADD     0x1U
#define PENDING_CONSOLE 0x2U
#define PENDING_NAME    0x4U
#define PENDING_OPEN    0x8U

/* name, name_len and console are constant; the rest is under the device lock. */
typedef struct ConsolePort {
        char *name;                     /* NULL: unnamed */
        size_t name_len;
        bool console;

        bool host_connected;
        bool added;                     /* PORT_ADD delivered */
        bool ready;                     /* the driver answered PORT_READY(1) */
        bool guest_open;                /* the driver's last PORT_OPEN */
        bool open_reported;             /* last state passed to on_open */
        unsigned pending;               /* PENDING_* */

        uint8_t rx[VIRTIO_CONSOLE_RX_BUFFER];   /* host → guest bytes not yet in receiveq buffers */
        unsigned rx_head;
        unsigned rx_count;
        bool rx_blocked;                /* a write was turned away: on_room when there is room */
        bool room_pending;              /* on_room to be called */

        bool tx_kick;                   /* transmitq may hold buffers */
        bool throttled;                 /* the host does not take output now */
} ConsolePort;

/*
 * 'transport' owns the device lock. transport, n_ports, ports (the array),
 * callbacks and opaque are constant after virtio_console_new(); the ports'
 * state and the fields below are protected by the lock. 'chain' is scratch
 * space used with the lock held; 'tx_chain' belongs to the thread that has
 * 'dispatching' set, which uses it with the lock released.
 */
struct VirtioConsole {
        VirtioMmio *transport;
        unsigned n_ports;
        ConsolePort *ports;
        VirtioConsoleCallbacks callbacks;
        void *opaque;

        bool device_ready;              /* DEVICE_READY(1) received */
        bool dispatching;               /* a thread is running callbacks */
        bool dispatch_again;            /* another thread left work for it */

        VirtqChain chain;
        VirtqChain tx_chain;
};

static unsigned rx_queue(unsigned port) {
        return port == 0 ? 0 : 2 * (port + 1);
}

static unsigned tx_queue(unsigned port) {
        return rx_queue(port) + 1;
}

static VirtQueue *queue(VirtioConsole *dev, unsigned index) {
        return virtio_mmio_queue(dev->transport, index);
}

static bool multiport_locked(VirtioConsole *dev) {
        return virtio_mmio_driver_features_locked(dev->transport) & (1ULL << VIRTIO_CONSOLE_F_MULTIPORT);
}

static bool driver_ok_locked(VirtioConsole *dev) {
        return virtio_mmio_driver_ok_locked(dev->transport);
}

/* Whether host data for the port can go anywhere: the guest has it open. */
static bool port_accepts_locked(VirtioConsole *dev, const ConsolePort *port) {
        return driver_ok_locked(dev) && port->guest_open;
}

static void check_room_locked(VirtioConsole *dev, ConsolePort *port) {
        if (port->rx_blocked && port_accepts_locked(dev, port) &&
            VIRTIO_CONSOLE_RX_BUFFER - port->rx_count >= VIRTIO_CONSOLE_RX_ROOM_THRESHOLD) {
                port->rx_blocked = false;
                port->room_pending = true;
        }
}

static void rx_clear_locked(ConsolePort *port) {
        port->rx_head = 0;
        port->rx_count = 0;
}

/* Host bytes → receiveq buffers, while both last. Lock held. */
static void flush_rx_locked(VirtioConsole *dev, unsigned p) {
        ConsolePort *port = &dev->ports[p];
        VirtQueue *vq = queue(dev, rx_queue(p));
        bool pushed = false;

        if (!port_accepts_locked(dev, port))
                return;

        while (port->rx_count > 0) {
                size_t first, n;

                if (virtqueue_pop(vq, &dev->chain) <= 0)
                        break;
                if (dev->chain.in_len == 0) {
                        /* A receive buffer the device may not write into. */
                        (void) virtqueue_fail(vq, -EMSGSIZE);
                        break;
                }

                /* The ring holds at most two pieces: up to its end, then from its start. */
                first = MIN((size_t) port->rx_count, (size_t) (VIRTIO_CONSOLE_RX_BUFFER - port->rx_head));
                n = virtqueue_chain_write(&dev->chain, 0, port->rx + port->rx_head, first);
                if (n == first && port->rx_count > first)
                        n += virtqueue_chain_write(&dev->chain, n, port->rx, port->rx_count - first);

                port->rx_head = (unsigned) ((port->rx_head + n) % VIRTIO_CONSOLE_RX_BUFFER);
                port->rx_count -= (unsigned) n;

                if (virtqueue_push(vq, &dev->chain, (uint32_t) n) < 0)
                        break;
                pushed = true;
        }

        if (pushed)
                virtio_mmio_notify_locked(dev->transport, vq);
        check_room_locked(dev, port);
}

static void put_header(uint8_t *buf, uint32_t id, uint16_t event, uint16_t value) {
        id = htole32(id);
        event = htole16(event);
        value = htole16(value);
        memcpy(buf, &id, 4);
        memcpy(buf + 4, &event, 2);
        memcpy(buf + 6, &value, 2);
}

/* Pending control messages → c_ivq buffers, while both last. Lock held. */
static void flush_control_locked(VirtioConsole *dev) {
        VirtQueue *vq = queue(dev, C_IVQ);
        bool pushed = false;

        if (!driver_ok_locked(dev) || !multiport_locked(dev))
                return;

        for (unsigned p = 0; p < dev->n_ports; p++) {
                ConsolePort *port = &dev->ports[p];

                while (port->pending != 0) {
                        unsigned bit = port->pending & -port->pending;  /* lowest: the protocol's order */
                        uint8_t header[CTRL_HEADER_SIZE];
                        size_t n;

                        if (virtqueue_pop(vq, &dev->chain) <= 0)
                                goto done;
                        if (dev->chain.in_len < CTRL_HEADER_SIZE) {
                                (void) virtqueue_fail(vq, -EMSGSIZE);
                                goto done;
                        }

                        switch (bit) {
                        case PENDING_ADD:
                                put_header(header, p, CTRL_PORT_ADD, 0);
                                break;
                        case PENDING_CONSOLE:
                                put_header(header, p, CTRL_CONSOLE_PORT, 1);
                                break;
                        case PENDING_NAME:
                                put_header(header, p, CTRL_PORT_NAME, 1);
                                break;
                        default:
                                put_header(header, p, CTRL_PORT_OPEN, port->host_connected);
                                break;
                        }

                        n = virtqueue_chain_write(&dev->chain, 0, header, sizeof(header));
                        if (bit == PENDING_NAME)
                                /* The name follows the header, without a NUL; truncated to the buffer. */
                                n += virtqueue_chain_write(&dev->chain, n, port->name, port->name_len);

                        if (virtqueue_push(vq, &dev->chain, (uint32_t) n) < 0)
                                goto done;
                        pushed = true;

                        port->pending &= ~bit;
                        if (bit == PENDING_ADD)
                                port->added = true;
                }
        }

done:
        if (pushed)
                virtio_mmio_notify_locked(dev->transport, vq);
}

static void guest_open_locked(VirtioConsole *dev, unsigned p, bool open) {
        ConsolePort *port = &dev->ports[p];

        if (open == port->guest_open)
                return;

        port->guest_open = open;
        if (open)
                flush_rx_locked(dev, p);
        else
                /* Linux throws away what a closed port receives; so do we, and ask again on reopen. */
                rx_clear_locked(port);
        check_room_locked(dev, port);
}

static void handle_control_locked(VirtioConsole *dev, uint32_t id, uint16_t event, uint16_t value) {
        ConsolePort *port;

        if (event == CTRL_DEVICE_READY) {
                if (value != 1)
                        return;         /* the driver failed to set up */
                dev->device_ready = true;
                for (unsigned p = 0; p < dev->n_ports; p++)
                        if (!dev->ports[p].added)
                                dev->ports[p].pending |= PENDING_ADD;
                return;
        }

        if (id >= dev->n_ports)
                return;
        port = &dev->ports[id];
        if (!port->added)
                return;

        switch (event) {
        case CTRL_PORT_READY:
                if (value != 1) {
                        port->ready = false;
                        break;
                }
                if (port->ready)
                        break;
                port->ready = true;
                if (port->console)
                        port->pending |= PENDING_CONSOLE;
                if (port->name)
                        port->pending |= PENDING_NAME;
                if (port->host_connected)
                        port->pending |= PENDING_OPEN;
                break;

        case CTRL_PORT_OPEN:
                guest_open_locked(dev, id, value != 0);
                break;

        default:
                /* Device-to-driver events, or unknown: ignored. */
                break;
        }
}

/* c_ovq: the driver's control messages, handled at once. Lock held. */
static void process_control_locked(VirtioConsole *dev) {
        VirtQueue *vq = queue(dev, C_OVQ);
        bool pushed = false;

        while (virtqueue_pop(vq, &dev->chain) > 0) {
                uint8_t header[CTRL_HEADER_SIZE];

                if (virtqueue_chain_read(&dev->chain, 0, header, sizeof(header)) == sizeof(header)) {
                        uint32_t id;
                        uint16_t event, value;

                        memcpy(&id, header, 4);
                        memcpy(&event, header + 4, 2);
                        memcpy(&value, header + 6, 2);
                        handle_control_locked(dev, le32toh(id), le16toh(event), le16toh(value));
                }

                if (virtqueue_push(vq, &dev->chain, 0) < 0)
                        break;
                pushed = true;
        }

        if (pushed)
                virtio_mmio_notify_locked(dev->transport, vq);
        flush_control_locked(dev);
}

static void console_queue_notify(void *backend, unsigned index) {
        VirtioConsole *dev = backend;
        unsigned p;

        if (index == C_IVQ) {
                flush_control_locked(dev);
                return;
        }
        if (index == C_OVQ) {
                process_control_locked(dev);
                return;
        }

        p = index < 2 ? 0 : index / 2 - 1;
        if (p >= dev->n_ports)
                return;
        if (index % 2 == 0)
                flush_rx_locked(dev, p);
        else
                dev->ports[p].tx_kick = true;   /* dispatch() hands it to on_data */
}

static void console_driver_ok(void *backend) {
        VirtioConsole *dev = backend;

        if (!multiport_locked(dev)) {
                /* A driver without multiport: port 0 is a console, open from the start. */
                dev->ports[0].added = dev->ports[0].ready = true;
                guest_open_locked(dev, 0, true);
        }

        flush_control_locked(dev);
        for (unsigned p = 0; p < dev->n_ports; p++) {
                flush_rx_locked(dev, p);
                dev->ports[p].tx_kick = true;
        }
}

static void console_reset(void *backend) {
        VirtioConsole *dev = backend;

        dev->device_ready = false;
        for (unsigned p = 0; p < dev->n_ports; p++) {
                ConsolePort *port = &dev->ports[p];

                port->added = false;
                port->ready = false;
                port->guest_open = false;
                port->pending = 0;
                port->tx_kick = false;
                rx_clear_locked(port);
                /* host_connected, throttled and rx_blocked are the host's and survive. */
        }
}

static uint16_t console_queue_num_max(_unused_ void *backend, unsigned index) {
        if (index == C_IVQ || index == C_OVQ)
                return VIRTIO_CONSOLE_CONTROL_QUEUE_SIZE;
        return VIRTIO_CONSOLE_PORT_QUEUE_SIZE;
}

static void console_config_read(void *backend, uint32_t offset, uint8_t *buf, unsigned size) {
        VirtioConsole *dev = backend;
        uint8_t config[CONFIG_SIZE] = {};
        uint32_t max_nr_ports = htole32(dev->n_ports);

        memcpy(config + 4, &max_nr_ports, 4);
        memcpy(buf, config + offset, size);
}

static void console_config_write(_unused_ void *backend, _unused_ uint32_t offset,
                                 _unused_ const uint8_t *buf, _unused_ unsigned size) {
        /* emerg_wr without VIRTIO_CONSOLE_F_EMERG_WRITE; cols/rows are read-only. */
}

/* Guest output of one port → on_data, one chain at a time, lock released around the callback. */
static void dispatch_tx_locked(VirtioConsole *dev, unsigned p) {
        ConsolePort *port = &dev->ports[p];
        VirtQueue *vq = queue(dev, tx_queue(p));

        while (port->tx_kick && !port->throttled) {
                if (!driver_ok_locked(dev) || virtqueue_pop(vq, &dev->tx_chain) <= 0) {
                        port->tx_kick = false;
                        break;
                }

                virtio_mmio_unlock(dev->transport);
                for (unsigned s = 0; s < dev->tx_chain.n_out; s++)
                        if (dev->tx_chain.seg[s].len > 0 && dev->callbacks.on_data)
                                dev->callbacks.on_data(dev->opaque, p, dev->tx_chain.seg[s].ptr,
                                                       dev->tx_chain.seg[s].len);
                virtio_mmio_lock(dev->transport);

                /* Refused (-ESTALE) if the driver reset or re-enabled the queue meanwhile. */
                if (virtqueue_push(vq, &dev->tx_chain, 0) == 0)
                        virtio_mmio_notify_locked(dev->transport, vq);
        }
}

/* Runs the host callbacks, serialised, without the lock. */
static void console_dispatch(void *backend) {
        VirtioConsole *dev = backend;

        virtio_mmio_lock(dev->transport);
        if (dev->dispatching) {
                dev->dispatch_again = true;
                virtio_mmio_unlock(dev->transport);
                return;
        }
        dev->dispatching = true;

        do {
                dev->dispatch_again = false;

                for (unsigned p = 0; p < dev->n_ports; p++) {
                        ConsolePort *port = &dev->ports[p];

                        if (port->guest_open != port->open_reported) {
                                bool open = port->open_reported = port->guest_open;

                                virtio_mmio_unlock(dev->transport);
                                if (dev->callbacks.on_open)
                                        dev->callbacks.on_open(dev->opaque, p, open);
                                virtio_mmio_lock(dev->transport);
                        }

                        dispatch_tx_locked(dev, p);

                        if (port->room_pending) {
                                port->room_pending = false;

                                virtio_mmio_unlock(dev->transport);
                                if (dev->callbacks.on_room)
                                        dev->callbacks.on_room(dev->opaque, p);
                                virtio_mmio_lock(dev->transport);
                        }
                }
        } while (dev->dispatch_again);

        dev->dispatching = false;
        virtio_mmio_unlock(dev->transport);
}

static bool valid_port_name(const char *name) {
        size_t n = strlen(name);

        if (n == 0 || n > VIRTIO_CONSOLE_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-'))
                        return false;
        }
        return true;
}

static void free_ports(VirtioConsole *dev) {
        if (!dev->ports)
                return;
        for (unsigned p = 0; p < dev->n_ports; p++)
                free(dev->ports[p].name);
        free(dev->ports);
        dev->ports = NULL;
}

static void console_freep(VirtioConsole **dev) {
        if (!*dev)
                return;
        free_ports(*dev);
        free(*dev);
}

int virtio_console_new(PhysMem *mem, const IrqLine *irq, const VirtioConsoleConfig *config, VirtioConsole **ret) {
        _cleanup_(console_freep) VirtioConsole *dev = NULL;
        VirtioDeviceOps ops = {
                .device_id = VIRTIO_ID_CONSOLE,
                .features = 1ULL << VIRTIO_CONSOLE_F_MULTIPORT,
                .config_size = CONFIG_SIZE,
                .queue_num_max = console_queue_num_max,
                .config_read = console_config_read,
                .config_write = console_config_write,
                .queue_notify = console_queue_notify,
                .driver_ok = console_driver_ok,
                .reset = console_reset,
                .dispatch = console_dispatch,
        };
        int r;

        if (!mem || !config || !ret || config->n_ports == 0 || config->n_ports > VIRTIO_CONSOLE_MAX_PORTS)
                return -EINVAL;

        dev = calloc(1, sizeof(VirtioConsole));
        if (!dev)
                return -ENOMEM;

        dev->n_ports = config->n_ports;
        dev->callbacks = config->callbacks;
        dev->opaque = config->opaque;

        dev->ports = calloc(dev->n_ports, sizeof(ConsolePort));
        if (!dev->ports)
                return -ENOMEM;

        for (unsigned p = 0; config->ports && p < dev->n_ports; p++) {
                const VirtioConsolePortConfig *pc = &config->ports[p];
                ConsolePort *port = &dev->ports[p];

                if (pc->name) {
                        if (!valid_port_name(pc->name))
                                return -EINVAL;
                        port->name = strdup(pc->name);
                        if (!port->name)
                                return -ENOMEM;
                        port->name_len = strlen(port->name);
                }
                port->console = pc->console;
                port->host_connected = pc->host_connected;
        }

        ops.num_queues = 2 * (dev->n_ports + 1);
        r = virtio_mmio_new(mem, irq, &ops, dev, &dev->transport);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(dev);
        return 0;
}

VirtioConsole *virtio_console_free(VirtioConsole *dev) {
        if (!dev)
                return NULL;

        virtio_mmio_free(dev->transport);
        free_ports(dev);
        free(dev);
        return NULL;
}

VirtioMmio *virtio_console_transport(VirtioConsole *dev) {
        return dev ? dev->transport : NULL;
}

void virtio_console_reset(VirtioConsole *dev) {
        if (dev)
                virtio_mmio_reset(dev->transport);
}

int virtio_console_find_port(const VirtioConsole *dev, const char *name) {
        if (!dev || !name)
                return -EINVAL;

        for (unsigned p = 0; p < dev->n_ports; p++)
                if (dev->ports[p].name && strcmp(dev->ports[p].name, name) == 0)
                        return (int) p;
        return -ENOENT;
}

ssize_t virtio_console_write(VirtioConsole *dev, unsigned p, const void *buf, size_t len) {
        const uint8_t *in = buf;
        ConsolePort *port;
        size_t taken = 0;

        if (!dev || p >= dev->n_ports || (!buf && len > 0))
                return -EINVAL;
        port = &dev->ports[p];

        virtio_mmio_lock(dev->transport);

        if (port_accepts_locked(dev, port))
                taken = MIN(len, (size_t) (VIRTIO_CONSOLE_RX_BUFFER - port->rx_count));
        for (size_t i = 0; i < taken; i++) {
                port->rx[(port->rx_head + port->rx_count) % VIRTIO_CONSOLE_RX_BUFFER] = in[i];
                port->rx_count++;
        }
        if (taken < len)
                port->rx_blocked = true;

        flush_rx_locked(dev, p);

        virtio_mmio_unlock(dev->transport);

        console_dispatch(dev);
        return (ssize_t) taken;
}

ssize_t virtio_console_write_room(VirtioConsole *dev, unsigned p) {
        ssize_t room = 0;

        if (!dev || p >= dev->n_ports)
                return -EINVAL;

        virtio_mmio_lock(dev->transport);
        if (port_accepts_locked(dev, &dev->ports[p]))
                room = VIRTIO_CONSOLE_RX_BUFFER - dev->ports[p].rx_count;
        virtio_mmio_unlock(dev->transport);

        return room;
}

int virtio_console_set_host_connected(VirtioConsole *dev, unsigned p, bool connected) {
        ConsolePort *port;

        if (!dev || p >= dev->n_ports)
                return -EINVAL;
        port = &dev->ports[p];

        virtio_mmio_lock(dev->transport);
        if (port->host_connected != connected) {
                port->host_connected = connected;
                if (port->ready) {
                        port->pending |= PENDING_OPEN;
                        flush_control_locked(dev);
                }
        }
        virtio_mmio_unlock(dev->transport);

        return 0;
}

int virtio_console_throttle(VirtioConsole *dev, unsigned p, bool throttle) {
        if (!dev || p >= dev->n_ports)
                return -EINVAL;

        virtio_mmio_lock(dev->transport);
        dev->ports[p].throttled = throttle;
        if (!throttle)
                dev->ports[p].tx_kick = true;
        virtio_mmio_unlock(dev->transport);

        if (!throttle)
                console_dispatch(dev);
        return 0;
}

bool virtio_console_guest_open(VirtioConsole *dev, unsigned p) {
        bool open;

        if (!dev || p >= dev->n_ports)
                return false;

        virtio_mmio_lock(dev->transport);
        open = dev->ports[p].guest_open;
        virtio_mmio_unlock(dev->transport);

        return open;
}

/* ---- device type: the machine's console, port 1 the guest agent's ---- */

static int console_create(const DeviceContext *ctx, void **ret, VirtioMmio **ret_transport) {
        VirtioConsolePortConfig ports[VIRTIO_CONSOLE_AGENT_PORT + 1] = {
                [VIRTIO_CONSOLE_AGENT_PORT] = { .name = VIRTIO_CONSOLE_AGENT_PORT_NAME, .host_connected = true },
        };
        VirtioConsoleConfig c = {
                .n_ports = ELEMENTSOF(ports),
                .ports = ports,
                .callbacks = {
                        .on_data = ctx->host->port_data,
                        .on_open = ctx->host->port_open,
                        .on_room = ctx->host->port_room,
                },
                .opaque = ctx->host->opaque,
        };
        VirtioConsole *dev;
        int r;

        r = virtio_console_new(ctx->mem, &ctx->irq, &c, &dev);
        if (r < 0)
                return r;
        *ret = dev;
        *ret_transport = dev->transport;
        return 0;
}

static void type_free(void *backend) {
        virtio_console_free(backend);
}

#define PENDING_ALL (PENDING_ADD | PENDING_CONSOLE | PENDING_NAME | PENDING_OPEN)

/* Per port: the control protocol's progress, open states, host bytes not yet delivered, flow control. */
static int type_save(void *backend, StateWriter *w) {
        VirtioConsole *dev = backend;
        uint8_t rx[VIRTIO_CONSOLE_RX_BUFFER];

        virtio_mmio_lock(dev->transport);
        state_put_u32(w, dev->n_ports);
        state_put_bool(w, dev->device_ready);
        for (unsigned p = 0; p < dev->n_ports; p++) {
                const ConsolePort *port = &dev->ports[p];

                state_put_bool(w, port->host_connected);
                state_put_bool(w, port->added);
                state_put_bool(w, port->ready);
                state_put_bool(w, port->guest_open);
                state_put_u32(w, port->pending);
                for (unsigned i = 0; i < port->rx_count; i++)
                        rx[i] = port->rx[(port->rx_head + i) % VIRTIO_CONSOLE_RX_BUFFER];
                state_put_u32(w, port->rx_count);
                state_put_bytes(w, rx, port->rx_count);
                state_put_bool(w, port->rx_blocked);
                state_put_bool(w, port->throttled);
        }
        virtio_mmio_unlock(dev->transport);
        return state_writer_error(w);
}

static int type_load(void *backend, StateReader *r) {
        VirtioConsole *dev = backend;
        _cleanup_free_ ConsolePort *ports = NULL;
        uint32_t n = 0;
        bool device_ready = false;

        state_get_u32(r, &n);
        state_get_bool(r, &device_ready);
        if (state_reader_error(r) < 0)
                return state_reader_error(r);
        if (n != dev->n_ports)
                return -ERANGE;
        ports = calloc(n, sizeof(ConsolePort));
        if (!ports)
                return -ENOMEM;
        for (unsigned p = 0; p < n && state_reader_error(r) == 0; p++) {
                ConsolePort *port = &ports[p];

                state_get_bool(r, &port->host_connected);
                state_get_bool(r, &port->added);
                state_get_bool(r, &port->ready);
                state_get_bool(r, &port->guest_open);
                state_get_u32_max(r, PENDING_ALL, &port->pending);
                state_get_u32_max(r, VIRTIO_CONSOLE_RX_BUFFER, &port->rx_count);
                state_get_bytes(r, port->rx, state_reader_error(r) < 0 ? 0 : port->rx_count);
                state_get_bool(r, &port->rx_blocked);
                state_get_bool(r, &port->throttled);
        }
        if (state_reader_error(r) < 0)
                return state_reader_error(r);

        virtio_mmio_lock(dev->transport);
        dev->device_ready = device_ready;
        for (unsigned p = 0; p < n; p++) {
                ConsolePort *port = &dev->ports[p], *loaded = &ports[p];

                port->host_connected = loaded->host_connected;
                port->added = loaded->added;
                port->ready = loaded->ready;
                port->guest_open = loaded->guest_open;
                port->pending = loaded->pending;
                memcpy(port->rx, loaded->rx, sizeof(port->rx));
                port->rx_head = 0;
                port->rx_count = loaded->rx_count;
                port->rx_blocked = loaded->rx_blocked;
                port->throttled = loaded->throttled;
                port->tx_kick = true;   /* look at the transmit queue again */
        }
        virtio_mmio_unlock(dev->transport);
        return 0;
}

const VirtioDeviceType virtio_console_type = {
        .name = "virtio-console",
        .create = console_create,
        .free = type_free,
        .save = type_save,
        .load = type_load,
};
