/* SPDX-License-Identifier: MIT */
/*
 * virtio-console with multiport: the control handshake Linux performs
 * (DEVICE_READY → PORT_ADD → PORT_READY → PORT_NAME "org.qemu.guest_agent.0"
 * → PORT_OPEN both ways), data in both directions, backpressure with
 * on_room (re-entered from the callback), throttling of guest output,
 * close/reopen/reset, a console port, a driver without multiport, and
 * hostile control and data queues.
 */

#include <endian.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "macro.h"
#include "tap.h"
#include "devices/virtio_console.h"
#include "guest.h"

#define VERSION_1 (1ULL << VIRTIO_F_VERSION_1)
#define MULTIPORT (1ULL << 1)

#define DEVICE_READY 0
#define PORT_ADD     1
#define PORT_READY   3
#define CONSOLE_PORT 4
#define PORT_OPEN    6
#define PORT_NAME    7
#define BAD_ID       0xffffffffU

#define MAX_PORTS 3U
#define CTRL_BUF 256U
#define RX_BUF 1024U
#define TX_BUF 256U
#define AGENT "org.qemu.guest_agent.0"

typedef struct Host {
        VirtioConsole *dev;
        uint8_t data[MAX_PORTS][16384];
        size_t data_len[MAX_PORTS];
        unsigned data_calls;
        bool open[MAX_PORTS];
        unsigned open_calls;
        unsigned room_calls[MAX_PORTS];
        /* Host output still to be written to port 1 (from on_room, re-entering the device). */
        const uint8_t *out;
        size_t out_len, out_done;
} Host;

typedef struct Rig {
        Guest g;
        Host h;
        VirtioConsole *dev;
        unsigned n_ports;
        GuestQueue q[2 * (MAX_PORTS + 1)];
        uint64_t ctrl_in;               /* c_ivq buffers, CTRL_BUF each, buffer i for descriptor i */
        uint64_t ctrl_out;              /* c_ovq messages, 8 bytes each */
        uint64_t rx[MAX_PORTS];         /* receiveq buffers, RX_BUF each */
        uint64_t tx[MAX_PORTS];         /* transmitq buffers, TX_BUF each */
} Rig;

static void host_data(void *opaque, unsigned port, const uint8_t *buf, size_t len) {
        Host *h = opaque;

        h->data_calls++;
        if (port < MAX_PORTS && len <= sizeof(h->data[port]) - h->data_len[port]) {
                memcpy(h->data[port] + h->data_len[port], buf, len);
                h->data_len[port] += len;
        }
}

static void host_open(void *opaque, unsigned port, bool open) {
        Host *h = opaque;

        h->open_calls++;
        if (port < MAX_PORTS)
                h->open[port] = open;
}

static void host_room(void *opaque, unsigned port) {
        Host *h = opaque;

        if (port < MAX_PORTS)
                h->room_calls[port]++;
        /* Re-enter the device from the callback: it runs without the device lock. */
        if (port == 1 && h->out && h->out_done < h->out_len) {
                ssize_t n = virtio_console_write(h->dev, 1, h->out + h->out_done, h->out_len - h->out_done);

                if (n > 0)
                        h->out_done += (size_t) n;
        }
}

static unsigned rxq(unsigned port) {
        return port == 0 ? 0 : 2 * (port + 1);
}

static unsigned txq(unsigned port) {
        return rxq(port) + 1;
}

static int rig_create(Rig *r, unsigned n_ports, const VirtioConsolePortConfig *ports) {
        VirtioConsoleConfig c = {
                .n_ports = n_ports,
                .ports = ports,
                .callbacks = { .on_data = host_data, .on_open = host_open, .on_room = host_room },
        };
        IrqLine irq;
        int k;

        *r = (Rig) { .n_ports = n_ports };
        c.opaque = &r->h;
        guest_init(&r->g);
        irq = guest_irq(&r->g);
        k = virtio_console_new(&r->g.mem, &irq, &c, &r->dev);
        if (k < 0)
                return k;
        r->h.dev = r->dev;
        guest_attach(&r->g, virtio_console_transport(r->dev));
        return 0;
}

static void post_ctrl_bufs(Rig *r, unsigned n, uint32_t size) {
        GuestQueue *q = &r->q[2];

        for (unsigned i = 0; i < n; i++) {
                uint16_t slot = q->next_desc;

                guest_add_buf(&r->g, q, r->ctrl_in + (uint64_t) CTRL_BUF * slot, size, true);
        }
        guest_kick(&r->g, q);
}

static void post_rx_bufs(Rig *r, unsigned port, unsigned n, uint32_t size) {
        GuestQueue *q = &r->q[rxq(port)];

        for (unsigned i = 0; i < n; i++) {
                uint16_t slot = q->next_desc;

                guest_add_buf(&r->g, q, r->rx[port] + (uint64_t) RX_BUF * slot, size, true);
        }
        guest_kick(&r->g, q);
}

/* Brings the device up as Linux does, up to (not including) DEVICE_READY. */
static void rig_bringup(Rig *r, uint64_t features) {
        unsigned nq = 2 * (r->n_ports + 1);

        guest_negotiate(&r->g, VERSION_1 | features);
        for (unsigned i = 0; i < nq; i++) {
                uint16_t num;

                guest_wr(&r->g, VIRTIO_MMIO_QUEUE_SEL, i);
                num = (uint16_t) guest_rd(&r->g, VIRTIO_MMIO_QUEUE_NUM_MAX);
                if (!guest_queue_setup(&r->g, &r->q[i], i, num))
                        abort();
        }
        if (!r->ctrl_in) {
                r->ctrl_in = guest_alloc(&r->g, CTRL_BUF * 32ULL, 8);
                r->ctrl_out = guest_alloc(&r->g, 8 * 32ULL, 8);
                for (unsigned p = 0; p < r->n_ports; p++) {
                        r->rx[p] = guest_alloc(&r->g, RX_BUF * 64ULL, 8);
                        r->tx[p] = guest_alloc(&r->g, TX_BUF * 64ULL, 8);
                }
        }
        guest_driver_ok(&r->g);
}

static void rig_start(Rig *r, unsigned n_ports, const VirtioConsolePortConfig *ports) {
        if (rig_create(r, n_ports, ports) < 0)
                abort();
        rig_bringup(r, MULTIPORT);
        post_ctrl_bufs(r, 16, CTRL_BUF);
}

static void rig_stop(Rig *r) {
        virtio_console_free(r->dev);
        guest_done(&r->g);
}

/* Driver → device control message; true when the device returned it before the kick returned. */
static bool send_ctrl(Rig *r, uint32_t id, uint16_t event, uint16_t value) {
        GuestQueue *q = &r->q[3];
        uint16_t slot = q->next_desc;
        uint8_t *p = guest_ptr(&r->g, r->ctrl_out + 8ULL * slot);
        uint16_t before;

        id = htole32(id);
        event = htole16(event);
        value = htole16(value);
        memcpy(p, &id, 4);
        memcpy(p + 4, &event, 2);
        memcpy(p + 6, &value, 2);
        guest_add_buf(&r->g, q, r->ctrl_out + 8ULL * slot, 8, false);
        before = guest_used_idx(&r->g, q);
        guest_kick(&r->g, q);
        if (guest_used_idx(&r->g, q) != (uint16_t) (before + 1))
                return false;
        return guest_get_used(&r->g, q, NULL, NULL);
}

typedef struct Ctrl {
        uint32_t id;
        uint16_t event, value;
        char name[CTRL_BUF];
        size_t name_len;
} Ctrl;

/* Next device → driver control message (its buffer is not reposted). */
static bool recv_ctrl(Rig *r, Ctrl *ret) {
        GuestQueue *q = &r->q[2];
        uint32_t id, len;
        const uint8_t *p;

        if (!guest_get_used(&r->g, q, &id, &len) || len < 8 || len > CTRL_BUF || id >= 32)
                return false;
        p = guest_ptr(&r->g, r->ctrl_in + (uint64_t) CTRL_BUF * id);
        memcpy(&ret->id, p, 4);
        memcpy(&ret->event, p + 4, 2);
        memcpy(&ret->value, p + 6, 2);
        ret->id = le32toh(ret->id);
        ret->event = le16toh(ret->event);
        ret->value = le16toh(ret->value);
        ret->name_len = len - 8;
        memcpy(ret->name, p + 8, ret->name_len);
        ret->name[ret->name_len] = 0;
        return true;
}

static bool expect_ctrl(Rig *r, uint32_t id, uint16_t event, uint16_t value) {
        Ctrl c;

        return recv_ctrl(r, &c) && c.id == id && c.event == event && c.value == value;
}

/* Guest → host bytes on a port's transmitq. */
static void guest_tx(Rig *r, unsigned port, const char *s) {
        GuestQueue *q = &r->q[txq(port)];
        uint16_t slot = q->next_desc;
        uint64_t buf = r->tx[port] + (uint64_t) TX_BUF * slot;
        size_t len = strlen(s);

        memcpy(guest_ptr(&r->g, buf), s, len);
        guest_add_buf(&r->g, q, buf, (uint32_t) len, false);
        guest_kick(&r->g, q);
}

/* Everything the device put into a port's receiveq, appended to out. */
static size_t guest_rx(Rig *r, unsigned port, uint8_t *out, size_t max) {
        GuestQueue *q = &r->q[rxq(port)];
        uint32_t id, len;
        size_t n = 0;

        while (guest_get_used(&r->g, q, &id, &len)) {
                if (len > RX_BUF || n + len > max)
                        return n;
                memcpy(out + n, guest_ptr(&r->g, r->rx[port] + (uint64_t) RX_BUF * id), len);
                n += len;
        }
        return n;
}

static const VirtioConsolePortConfig agent_ports[] = {
        { .name = NULL },
        { .name = AGENT },
};

/* DEVICE_READY → PORT_ADD × n → PORT_READY × n → PORT_NAME for named ports. */
static bool handshake(Rig *r) {
        Ctrl c;

        if (!send_ctrl(r, BAD_ID, DEVICE_READY, 1))
                return false;
        for (unsigned p = 0; p < r->n_ports; p++)
                if (!expect_ctrl(r, p, PORT_ADD, 0))
                        return false;
        for (unsigned p = 0; p < r->n_ports; p++)
                if (!send_ctrl(r, p, PORT_READY, 1))
                        return false;
        if (r->n_ports > 1) {
                if (!recv_ctrl(r, &c) || c.id != 1 || c.event != PORT_NAME || strcmp(c.name, AGENT) != 0)
                        return false;
        }
        return true;
}

static void test_config(void) {
        Rig r;

        if (rig_create(&r, 2, agent_ports) < 0)
                abort();
        CHECK_EQ_U64(guest_rd(&r.g, VIRTIO_MMIO_DEVICE_ID), 3, "DeviceID 3");
        CHECK_EQ_U64(guest_device_features(&r.g), VERSION_1 | MULTIPORT, "features: MULTIPORT + VERSION_1");
        CHECK_EQ_U64(guest_cfg_rd(&r.g, 4, 4), 2, "max_nr_ports 2");
        CHECK_EQ_U64(guest_cfg_rd(&r.g, 0, 4), 0, "cols, rows 0");
        guest_cfg_wr(&r.g, 8, 'x', 4);
        guest_cfg_wr(&r.g, 4, 99, 4);
        CHECK_EQ_U64(guest_cfg_rd(&r.g, 4, 4), 2, "config read-only");
        CHECK_EQ_U64(guest_cfg_rd(&r.g, 12, 1), 0, "config is 12 bytes");

        static const uint16_t want[] = { 64, 64, 32, 32, 64, 64, 0 };
        for (unsigned i = 0; i < ELEMENTSOF(want); i++) {
                guest_wr(&r.g, VIRTIO_MMIO_QUEUE_SEL, i);
                CHECK_EQ_U64(guest_rd(&r.g, VIRTIO_MMIO_QUEUE_NUM_MAX), want[i], "queue %u QueueNumMax", i);
        }
        CHECK_EQ_U64(virtio_console_find_port(r.dev, AGENT), 1, "find_port: agent is port 1");
        CHECK(virtio_console_find_port(r.dev, "nope") == -ENOENT, "find_port: unknown name");
        rig_stop(&r);
}

static void test_handshake(void) {
        Rig r;
        Ctrl c;

        rig_start(&r, 2, agent_ports);
        CHECK(!recv_ctrl(&r, &c), "nothing before DEVICE_READY");
        CHECK(virtio_console_write(r.dev, 1, "early", 5) == 0, "host write before the guest opens: 0");

        CHECK(send_ctrl(&r, BAD_ID, DEVICE_READY, 1), "DEVICE_READY consumed during the kick");
        CHECK(expect_ctrl(&r, 0, PORT_ADD, 0), "PORT_ADD 0");
        CHECK(expect_ctrl(&r, 1, PORT_ADD, 0), "PORT_ADD 1");
        CHECK(!recv_ctrl(&r, &c), "nothing else yet");
        CHECK(r.g.irq_level, "interrupt for c_ivq");

        CHECK(send_ctrl(&r, 0, PORT_READY, 1), "PORT_READY 0");
        CHECK(!recv_ctrl(&r, &c), "unnamed, closed, non-console port 0: nothing to say");
        CHECK(send_ctrl(&r, 1, PORT_READY, 1), "PORT_READY 1");
        CHECK(recv_ctrl(&r, &c) && c.id == 1 && c.event == PORT_NAME, "PORT_NAME 1");
        CHECK(c.name_len == strlen(AGENT) && strcmp(c.name, AGENT) == 0, "name is \"%.64s\" without NUL", c.name);
        CHECK(!recv_ctrl(&r, &c), "no PORT_OPEN while the host is not connected");

        CHECK(virtio_console_set_host_connected(r.dev, 1, true) == 0, "host connects port 1");
        CHECK(expect_ctrl(&r, 1, PORT_OPEN, 1), "PORT_OPEN 1 → guest");
        CHECK(virtio_console_set_host_connected(r.dev, 1, true) == 0 && !recv_ctrl(&r, &c),
              "no repeat without a change");

        CHECK(!virtio_console_guest_open(r.dev, 1), "guest has not opened port 1");
        CHECK(send_ctrl(&r, 1, PORT_OPEN, 1), "guest opens port 1");
        CHECK(virtio_console_guest_open(r.dev, 1), "guest_open");
        CHECK(r.h.open_calls == 1 && r.h.open[1], "on_open(1, true)");
        CHECK(send_ctrl(&r, 1, PORT_OPEN, 1) && r.h.open_calls == 1, "repeated PORT_OPEN: no new callback");

        CHECK(virtio_console_set_host_connected(r.dev, 1, false) == 0, "host disconnects");
        CHECK(expect_ctrl(&r, 1, PORT_OPEN, 0), "PORT_OPEN 0 → guest");

        /* A second DEVICE_READY (hibernation restore) adds nothing new. */
        CHECK(send_ctrl(&r, BAD_ID, DEVICE_READY, 1) && !recv_ctrl(&r, &c), "DEVICE_READY again: ports already added");
        CHECK(!guest_needs_reset(&r.g), "no error");
        rig_stop(&r);

        /* A port connected from the start gets PORT_OPEN right after its name. */
        {
                static const VirtioConsolePortConfig ports[] = {
                        { .name = NULL },
                        { .name = AGENT, .host_connected = true },
                };

                rig_start(&r, 2, ports);
                send_ctrl(&r, BAD_ID, DEVICE_READY, 1);
                expect_ctrl(&r, 0, PORT_ADD, 0);
                expect_ctrl(&r, 1, PORT_ADD, 0);
                send_ctrl(&r, 1, PORT_READY, 1);
                CHECK(recv_ctrl(&r, &c) && c.event == PORT_NAME, "connected port: PORT_NAME first");
                CHECK(expect_ctrl(&r, 1, PORT_OPEN, 1), "connected port: then PORT_OPEN 1");
                rig_stop(&r);
        }
}

static void test_data(void) {
        Rig r;
        uint8_t in[256];
        size_t n;

        rig_start(&r, 2, agent_ports);
        CHECK(handshake(&r), "handshake");
        virtio_console_set_host_connected(r.dev, 1, true);
        expect_ctrl(&r, 1, PORT_OPEN, 1);
        send_ctrl(&r, 1, PORT_OPEN, 1);
        post_rx_bufs(&r, 1, 4, RX_BUF);

        guest_ack(&r.g);
        CHECK(virtio_console_write(r.dev, 1, "{\"execute\":\"guest-ping\"}\n", 25) == 25, "host writes a command");
        n = guest_rx(&r, 1, in, sizeof(in));
        CHECK(n == 25 && memcmp(in, "{\"execute\":\"guest-ping\"}\n", 25) == 0, "guest receives it on port 1");
        CHECK(r.g.irq_level, "interrupt for receiveq");

        guest_tx(&r, 1, "{\"return\": {}}\n");
        CHECK(r.h.data_len[1] == 15 && memcmp(r.h.data[1], "{\"return\": {}}\n", 15) == 0, "host gets the reply");
        CHECK(guest_get_used(&r.g, &r.q[txq(1)], NULL, NULL), "transmit buffer returned during the kick");

        /* A chain of two readable segments and one writable one. */
        {
                GuestQueue *q = &r.q[txq(1)];
                uint64_t b = r.tx[1] + TX_BUF * 40ULL;
                uint32_t len = 99;

                memcpy(guest_ptr(&r.g, b), "abcdXXXX", 8);
                guest_desc(&r.g, q, 40, b, 2, VIRTQ_DESC_F_NEXT, 41);
                guest_desc(&r.g, q, 41, b + 2, 2, VIRTQ_DESC_F_NEXT, 42);
                guest_desc(&r.g, q, 42, b + 4, 4, VIRTQ_DESC_F_WRITE, 0);
                guest_publish(&r.g, q, 40);
                r.h.data_len[1] = 0;
                guest_kick(&r.g, q);
                CHECK(r.h.data_len[1] == 4 && memcmp(r.h.data[1], "abcd", 4) == 0, "segments delivered in order");
                CHECK(guest_get_used(&r.g, q, NULL, &len) && len == 0, "used length 0 for transmit");
                CHECK(memcmp(guest_ptr(&r.g, b + 4), "XXXX", 4) == 0, "writable part of a transmit chain untouched");
        }

        /* Port 0 is independent. */
        CHECK(virtio_console_write(r.dev, 0, "x", 1) == 0, "port 0 closed: host write refused");
        send_ctrl(&r, 0, PORT_OPEN, 1);
        CHECK(r.h.open[0], "on_open(0, true)");
        post_rx_bufs(&r, 0, 1, RX_BUF);
        CHECK(virtio_console_write(r.dev, 0, "zero", 4) == 4, "port 0 write");
        n = guest_rx(&r, 0, in, sizeof(in));
        CHECK(n == 4 && memcmp(in, "zero", 4) == 0, "port 0 receives");
        guest_tx(&r, 0, "hi0");
        CHECK(r.h.data_len[0] == 3 && memcmp(r.h.data[0], "hi0", 3) == 0, "port 0 transmits");
        CHECK(virtio_console_write(r.dev, 2, "x", 1) == -EINVAL, "port 2 does not exist");
        CHECK(!guest_needs_reset(&r.g), "no error");
        rig_stop(&r);
}

static void test_backpressure(void) {
        static uint8_t big[10000], got[10000];
        Rig r;
        size_t n = 0;
        ssize_t k;
        unsigned rounds = 0;

        for (size_t i = 0; i < sizeof(big); i++)
                big[i] = (uint8_t) (i * 7 + i / 251);

        rig_start(&r, 2, agent_ports);
        handshake(&r);
        send_ctrl(&r, 1, PORT_OPEN, 1);

        /* No receive buffers: the device takes VIRTIO_CONSOLE_RX_BUFFER bytes and no more. */
        k = virtio_console_write(r.dev, 1, big, sizeof(big));
        CHECK_EQ_U64(k, VIRTIO_CONSOLE_RX_BUFFER, "first write: 4096 of 10000 bytes taken");
        CHECK_EQ_U64(virtio_console_write_room(r.dev, 1), 0, "no room left");
        CHECK_EQ_U64(virtio_console_write(r.dev, 1, big + k, sizeof(big) - (size_t) k), 0, "full: 0 taken");
        CHECK_EQ_U64(r.h.room_calls[1], 0, "no on_room yet");

        r.h.out = big;
        r.h.out_len = sizeof(big);
        r.h.out_done = (size_t) k;

        /* One 1 KiB buffer: 3 KiB still queued, below the threshold of free space. */
        post_rx_bufs(&r, 1, 1, RX_BUF);
        CHECK_EQ_U64(r.h.room_calls[1], 0, "1 KiB drained: no on_room (threshold 2 KiB)");
        post_rx_bufs(&r, 1, 1, RX_BUF);
        CHECK_EQ_U64(r.h.room_calls[1], 1, "2 KiB drained: on_room once");
        CHECK(r.h.out_done > (size_t) k, "on_room wrote more, re-entering the device");

        /* Keep feeding buffers, one at a time, until everything arrived (none is left over). */
        while (rounds++ < 100) {
                n += guest_rx(&r, 1, got + n, sizeof(got) - n);
                if (n >= sizeof(big))
                        break;
                post_rx_bufs(&r, 1, 1, RX_BUF);
        }
        CHECK(n == sizeof(big) && r.h.out_done == sizeof(big), "all 10000 bytes arrived (%zu)", n);
        CHECK(memcmp(big, got, sizeof(big)) == 0, "in order, nothing lost or repeated");
        CHECK(r.h.room_calls[1] >= 2, "on_room called %u times", r.h.room_calls[1]);

        /* Small receive buffers split the stream. */
        {
                GuestQueue *q = &r.q[rxq(1)];
                uint32_t len;

                while (guest_get_used(&r.g, q, NULL, NULL))
                        ;
                guest_add_buf(&r.g, q, r.rx[1], 3, true);
                guest_kick(&r.g, q);
                CHECK(virtio_console_write(r.dev, 1, "abcdef", 6) == 6, "6 bytes into a 3-byte buffer");
                CHECK(guest_get_used(&r.g, q, NULL, &len) && len == 3, "3 bytes used");
                CHECK(memcmp(guest_ptr(&r.g, r.rx[1]), "abc", 3) == 0, "first half");
                CHECK_EQ_U64(virtio_console_write_room(r.dev, 1), VIRTIO_CONSOLE_RX_BUFFER - 3,
                             "3 bytes still queued");
        }
        CHECK(!guest_needs_reset(&r.g), "no error");
        rig_stop(&r);
}

static void test_throttle(void) {
        Rig r;

        rig_start(&r, 2, agent_ports);
        handshake(&r);
        send_ctrl(&r, 1, PORT_OPEN, 1);

        CHECK(virtio_console_throttle(r.dev, 1, true) == 0, "throttle port 1");
        guest_tx(&r, 1, "held");
        CHECK_EQ_U64(r.h.data_len[1], 0, "throttled: nothing delivered");
        CHECK_EQ_U64(guest_used_idx(&r.g, &r.q[txq(1)]), 0, "throttled: buffer kept");
        guest_tx(&r, 1, "back");
        CHECK(virtio_console_throttle(r.dev, 1, false) == 0, "unthrottle");
        CHECK(r.h.data_len[1] == 8 && memcmp(r.h.data[1], "heldback", 8) == 0, "delivered in order after unthrottle");
        CHECK_EQ_U64(guest_used_idx(&r.g, &r.q[txq(1)]), 2, "both buffers returned");
        CHECK(virtio_console_throttle(r.dev, 5, true) == -EINVAL, "throttle: bad port");
        rig_stop(&r);
}

static void test_close_and_reset(void) {
        Rig r;
        Ctrl c;

        rig_start(&r, 2, agent_ports);
        handshake(&r);
        send_ctrl(&r, 1, PORT_OPEN, 1);
        CHECK(virtio_console_write(r.dev, 1, "queued", 6) == 6, "write while open, no buffers");

        send_ctrl(&r, 1, PORT_OPEN, 0);
        CHECK(r.h.open_calls == 2 && !r.h.open[1], "on_open(1, false)");
        CHECK_EQ_U64(virtio_console_write_room(r.dev, 1), 0, "closed: no room");
        CHECK(virtio_console_write(r.dev, 1, "lost", 4) == 0, "closed: write refused");

        send_ctrl(&r, 1, PORT_OPEN, 1);
        CHECK(r.h.open[1] && r.h.room_calls[1] == 1, "reopened: on_room for the refused write");
        CHECK_EQ_U64(virtio_console_write_room(r.dev, 1), VIRTIO_CONSOLE_RX_BUFFER, "closing emptied the queue");

        /* Reset by the driver reports the port closed and starts over. */
        guest_wr(&r.g, VIRTIO_MMIO_STATUS, 0);
        CHECK(r.h.open_calls == 4 && !r.h.open[1], "reset: on_open(1, false)");
        CHECK(!r.g.irq_level, "reset: interrupt low");
        rig_bringup(&r, MULTIPORT);
        post_ctrl_bufs(&r, 16, CTRL_BUF);
        CHECK(!recv_ctrl(&r, &c), "after reset: nothing before DEVICE_READY");
        CHECK(handshake(&r), "after reset: the handshake again");

        /* Machine reset from the host side. */
        send_ctrl(&r, 1, PORT_OPEN, 1);
        CHECK(r.h.open[1], "open again");
        virtio_console_reset(r.dev);
        CHECK(!r.h.open[1] && !virtio_console_guest_open(r.dev, 1), "virtio_console_reset: port closed");
        rig_stop(&r);
}

static void test_console_port(void) {
        static const VirtioConsolePortConfig ports[] = {
                { .name = "console0", .console = true },
        };
        Rig r;
        Ctrl c;

        rig_start(&r, 1, ports);
        CHECK(send_ctrl(&r, BAD_ID, DEVICE_READY, 1) && expect_ctrl(&r, 0, PORT_ADD, 0), "console: PORT_ADD 0");
        send_ctrl(&r, 0, PORT_READY, 1);
        CHECK(expect_ctrl(&r, 0, CONSOLE_PORT, 1), "CONSOLE_PORT 0 first");
        CHECK(recv_ctrl(&r, &c) && c.event == PORT_NAME && strcmp(c.name, "console0") == 0, "then its name");
        rig_stop(&r);
}

static void test_no_multiport(void) {
        Rig r;
        uint8_t in[16];

        if (rig_create(&r, 1, NULL) < 0)
                abort();
        rig_bringup(&r, 0);
        CHECK(r.h.open[0] && r.h.open_calls == 1, "no multiport: port 0 open at DRIVER_OK");
        post_rx_bufs(&r, 0, 1, RX_BUF);
        CHECK(virtio_console_write(r.dev, 0, "hvc", 3) == 3 && guest_rx(&r, 0, in, sizeof(in)) == 3 &&
              memcmp(in, "hvc", 3) == 0, "no multiport: host → guest");
        guest_tx(&r, 0, "out");
        CHECK(r.h.data_len[0] == 3 && memcmp(r.h.data[0], "out", 3) == 0, "no multiport: guest → host");
        rig_stop(&r);
}

static void test_hostile(void) {
        Rig r;
        Ctrl c;
        uint8_t *p;

        /* Control messages that must be ignored. */
        rig_start(&r, 2, agent_ports);
        CHECK(send_ctrl(&r, 1, PORT_OPEN, 1) && r.h.open_calls == 0, "PORT_OPEN for a port not added: ignored");
        CHECK(send_ctrl(&r, BAD_ID, DEVICE_READY, 0) && !recv_ctrl(&r, &c), "DEVICE_READY 0: nothing");
        handshake(&r);
        CHECK(send_ctrl(&r, 99, PORT_READY, 1) && send_ctrl(&r, 99, PORT_OPEN, 1), "messages for port 99 consumed");
        CHECK(send_ctrl(&r, 1, 0x1234, 1) && send_ctrl(&r, 1, PORT_NAME, 1) && send_ctrl(&r, 1, PORT_ADD, 1),
              "unknown and device-only events consumed");
        CHECK(r.h.open_calls == 0 && !recv_ctrl(&r, &c), "and ignored");
        {
                GuestQueue *q = &r.q[3];

                guest_add_buf(&r.g, q, r.ctrl_out, 4, false);
                guest_kick(&r.g, q);
                CHECK(guest_get_used(&r.g, q, NULL, NULL), "short control message consumed");
                guest_add_buf(&r.g, q, r.ctrl_out, 8, true);
                guest_kick(&r.g, q);
                CHECK(guest_get_used(&r.g, q, NULL, NULL), "writable-only control message consumed");
        }
        CHECK(!guest_needs_reset(&r.g), "no error from ignorable messages");
        rig_stop(&r);

        /* c_ivq buffer too small for the name: truncated, no error. */
        if (rig_create(&r, 2, agent_ports) < 0)
                abort();
        rig_bringup(&r, MULTIPORT);
        post_ctrl_bufs(&r, 3, 10);
        send_ctrl(&r, BAD_ID, DEVICE_READY, 1);
        send_ctrl(&r, 1, PORT_READY, 1);
        expect_ctrl(&r, 0, PORT_ADD, 0);
        expect_ctrl(&r, 1, PORT_ADD, 0);
        CHECK(recv_ctrl(&r, &c) && c.event == PORT_NAME && c.name_len == 2 && memcmp(c.name, "or", 2) == 0,
              "name truncated to the buffer");
        CHECK(!guest_needs_reset(&r.g), "no error for a short name buffer");
        rig_stop(&r);

        /* c_ivq buffer too small for a header. */
        if (rig_create(&r, 2, agent_ports) < 0)
                abort();
        rig_bringup(&r, MULTIPORT);
        post_ctrl_bufs(&r, 1, 4);
        send_ctrl(&r, BAD_ID, DEVICE_READY, 1);
        CHECK(guest_needs_reset(&r.g), "4-byte c_ivq buffer: DEVICE_NEEDS_RESET");
        rig_stop(&r);

        /* c_ivq buffer read-only. */
        if (rig_create(&r, 2, agent_ports) < 0)
                abort();
        rig_bringup(&r, MULTIPORT);
        p = guest_ptr(&r.g, r.ctrl_in);
        memset(p, 0x44, CTRL_BUF);
        guest_add_buf(&r.g, &r.q[2], r.ctrl_in, CTRL_BUF, false);
        guest_kick(&r.g, &r.q[2]);
        send_ctrl(&r, BAD_ID, DEVICE_READY, 1);
        CHECK(guest_needs_reset(&r.g), "read-only c_ivq buffer: DEVICE_NEEDS_RESET");
        CHECK(p[0] == 0x44 && p[CTRL_BUF - 1] == 0x44, "read-only c_ivq buffer untouched");
        rig_stop(&r);

        /* receiveq buffer read-only. */
        rig_start(&r, 2, agent_ports);
        handshake(&r);
        send_ctrl(&r, 1, PORT_OPEN, 1);
        p = guest_ptr(&r.g, r.rx[1]);
        memset(p, 0x55, 16);
        guest_add_buf(&r.g, &r.q[rxq(1)], r.rx[1], 16, false);
        guest_kick(&r.g, &r.q[rxq(1)]);
        CHECK(virtio_console_write(r.dev, 1, "data", 4) == 4, "write with a read-only receive buffer");
        CHECK(guest_needs_reset(&r.g), "read-only receiveq buffer: DEVICE_NEEDS_RESET");
        CHECK(p[0] == 0x55 && p[15] == 0x55, "read-only receive buffer untouched");
        CHECK(guest_fb_intact(&r.g), "framebuffer untouched");
        rig_stop(&r);

        /* Transmit buffer in the framebuffer: error, and the host never sees framebuffer bytes. */
        rig_start(&r, 2, agent_ports);
        handshake(&r);
        guest_add_buf(&r.g, &r.q[txq(1)], GUEST_FB_BASE, 16, false);
        guest_kick(&r.g, &r.q[txq(1)]);
        CHECK(guest_needs_reset(&r.g) && r.h.data_calls == 0,
              "transmit buffer in the framebuffer: NEEDS_RESET, no data");
        rig_stop(&r);
}

static void test_new_validation(void) {
        static char long_name[VIRTIO_CONSOLE_NAME_MAX + 2];
        VirtioConsoleConfig c = { .n_ports = 0 };
        VirtioConsolePortConfig bad[1] = {};
        VirtioConsole *d = NULL;
        Guest g;

        guest_init(&g);
        CHECK(virtio_console_new(&g.mem, NULL, &c, &d) == -EINVAL, "0 ports refused");
        c.n_ports = VIRTIO_CONSOLE_MAX_PORTS + 1;
        CHECK(virtio_console_new(&g.mem, NULL, &c, &d) == -EINVAL, "16 ports refused");
        c.n_ports = 1;
        c.ports = bad;
        bad[0].name = "bad/name";
        CHECK(virtio_console_new(&g.mem, NULL, &c, &d) == -EINVAL, "name with '/' refused");
        bad[0].name = "";
        CHECK(virtio_console_new(&g.mem, NULL, &c, &d) == -EINVAL, "empty name refused");
        memset(long_name, 'a', sizeof(long_name) - 1);
        bad[0].name = long_name;
        CHECK(virtio_console_new(&g.mem, NULL, &c, &d) == -EINVAL, "128-byte name refused");
        CHECK(d == NULL, "ret untouched");
        c.n_ports = VIRTIO_CONSOLE_MAX_PORTS;
        c.ports = NULL;
        CHECK(virtio_console_new(&g.mem, NULL, &c, &d) == 0, "15 ports");
        virtio_console_free(d);
        guest_done(&g);
}

/*
 * Two threads: the event-loop thread streams 256 KiB to port 1 with
 * backpressure while this thread, as the guest, drains receive buffers and
 * transmits. Callbacks may run on either thread but never at the same time.
 */
#define STREAM_BYTES (256U * 1024U)

typedef struct Threaded {
        VirtioConsole *dev;
        int in_callback;                /* callbacks running right now */
        int max_in_callback;
        int room;                       /* on_room seen, not yet consumed */
        uint8_t tx_seen[8192];
        size_t tx_seen_len;
} Threaded;

static uint8_t stream_byte(size_t i) {
        return (uint8_t) (i * 131 + (i >> 9));
}

static void th_enter(Threaded *t) {
        int n = __atomic_add_fetch(&t->in_callback, 1, __ATOMIC_SEQ_CST);

        if (n > __atomic_load_n(&t->max_in_callback, __ATOMIC_RELAXED))
                __atomic_store_n(&t->max_in_callback, n, __ATOMIC_RELAXED);
}

static void th_leave(Threaded *t) {
        __atomic_sub_fetch(&t->in_callback, 1, __ATOMIC_SEQ_CST);
}

static void th_data(void *opaque, unsigned port, const uint8_t *buf, size_t len) {
        Threaded *t = opaque;

        th_enter(t);
        if (len <= sizeof(t->tx_seen) - t->tx_seen_len) {
                memcpy(t->tx_seen + t->tx_seen_len, buf, len);
                t->tx_seen_len += len;
        }
        th_leave(t);
}

static void th_open(void *opaque, unsigned port, bool open) {
        th_enter(opaque);
        th_leave(opaque);
}

static void th_room(void *opaque, unsigned port) {
        Threaded *t = opaque;

        th_enter(t);
        __atomic_store_n(&t->room, 1, __ATOMIC_RELEASE);
        th_leave(t);
}

static void *th_host(void *arg) {
        Threaded *t = arg;
        static uint8_t chunk[3000];
        size_t sent = 0;

        while (sent < STREAM_BYTES) {
                size_t n = MIN(sizeof(chunk), STREAM_BYTES - sent);
                ssize_t k;

                for (size_t i = 0; i < n; i++)
                        chunk[i] = stream_byte(sent + i);
                k = virtio_console_write(t->dev, 1, chunk, n);
                if (k < 0)
                        break;
                sent += (size_t) k;
                if ((size_t) k < n)
                        /* Backpressure: wait for on_room (it always comes: the guest keeps draining). */
                        while (!__atomic_exchange_n(&t->room, 0, __ATOMIC_ACQUIRE))
                                sched_yield();
        }
        return NULL;
}

static void test_threads(void) {
        static uint8_t got[STREAM_BYTES];
        static Threaded t;
        Rig r;
        pthread_t thread;
        size_t n = 0;
        unsigned sent_tx = 0, spins = 0;
        bool order_ok = true;

        t = (Threaded) {};
        if (rig_create(&r, 2, agent_ports) < 0)
                abort();
        /* Swap in this test's callbacks: recreate with them. */
        virtio_console_free(r.dev);
        {
                VirtioConsoleConfig c = {
                        .n_ports = 2,
                        .ports = agent_ports,
                        .callbacks = { .on_data = th_data, .on_open = th_open, .on_room = th_room },
                        .opaque = &t,
                };
                IrqLine irq = guest_irq(&r.g);

                if (virtio_console_new(&r.g.mem, &irq, &c, &r.dev) < 0)
                        abort();
                guest_attach(&r.g, virtio_console_transport(r.dev));
        }
        t.dev = r.dev;
        rig_bringup(&r, MULTIPORT);
        post_ctrl_bufs(&r, 16, CTRL_BUF);
        CHECK(handshake(&r), "threads: handshake");
        send_ctrl(&r, 1, PORT_OPEN, 1);
        post_rx_bufs(&r, 1, 32, RX_BUF);

        if (pthread_create(&thread, NULL, th_host, &t) != 0)
                abort();

        while (n < STREAM_BYTES && spins < 50000000) {
                GuestQueue *q = &r.q[rxq(1)];
                uint32_t id, len;

                if (!guest_get_used(&r.g, q, &id, &len)) {
                        spins++;
                        sched_yield();
                        continue;
                }
                if (len > RX_BUF || n + len > STREAM_BYTES || id >= 64)
                        break;
                memcpy(got + n, guest_ptr(&r.g, r.rx[1] + (uint64_t) RX_BUF * id), len);
                n += len;

                /* Linux re-queues the buffer and kicks; and now and then writes something itself. */
                guest_desc(&r.g, q, (uint16_t) id, r.rx[1] + (uint64_t) RX_BUF * id, RX_BUF, VIRTQ_DESC_F_WRITE, 0);
                guest_publish(&r.g, q, (uint16_t) id);
                guest_kick(&r.g, q);
                while (guest_get_used(&r.g, &r.q[txq(1)], NULL, NULL))
                        ;
                /* Keep fewer transmit buffers in flight than the queue holds (the dispatcher may lag). */
                if (n % 7 == 0 && sent_tx < 500 &&
                    (uint16_t) (r.q[txq(1)].avail_idx - r.q[txq(1)].last_used) < 32) {
                        char msg[16];

                        snprintf(msg, sizeof(msg), "<%u>", sent_tx++);
                        guest_tx(&r, 1, msg);
                }
        }
        pthread_join(thread, NULL);

        for (size_t i = 0; i < n; i++)
                if (got[i] != stream_byte(i)) {
                        order_ok = false;
                        break;
                }
        CHECK(n == STREAM_BYTES && order_ok, "threads: %zu of %u bytes, in order", n, STREAM_BYTES);
        {
                char expect[8192];
                size_t e = 0;

                for (unsigned i = 0; i < sent_tx && e < sizeof(expect) - 16; i++)
                        e += (size_t) snprintf(expect + e, sizeof(expect) - e, "<%u>", i);
                CHECK(t.tx_seen_len == e && memcmp(t.tx_seen, expect, e) == 0,
                      "threads: %u guest writes delivered in order", sent_tx);
        }
        CHECK(t.max_in_callback == 1, "threads: callbacks never overlapped (max %d at once)", t.max_in_callback);
        CHECK(!guest_needs_reset(&r.g), "threads: no error");
        rig_stop(&r);
}

int main(void) {
        test_config();
        test_handshake();
        test_data();
        test_backpressure();
        test_throttle();
        test_close_and_reset();
        test_console_port();
        test_no_multiport();
        test_hostile();
        test_new_validation();
        test_threads();
        return tap_finish();
}
