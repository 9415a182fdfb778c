/* SPDX-License-Identifier: MIT */
/*
 * virtio-net: features and configuration, guest frames out through the tx
 * queue and the eventfd, host frames in (one buffer, mergeable buffers,
 * the backlog while the driver has no buffers), link down and up, and a
 * hostile driver: headers too short, frames too big, buffers too small or
 * not writable.
 */

#include <endian.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "tap.h"
#include "devices/virtio_net.h"
#include "guest.h"

#define VERSION_1 (1ULL << VIRTIO_F_VERSION_1)
#define MRG (1ULL << VIRTIO_NET_F_MRG_RXBUF)
#define ALL ((1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS) | MRG)
#define QSIZE 64U
#define BUF 2048U

static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

typedef struct Rig {
        Guest g;
        VirtioNet *dev;
        GuestQueue rxq, txq;
        uint64_t rxbufs, txbufs;
} Rig;

static void rig_start(Rig *r, uint64_t accept) {
        IrqLine irq;

        *r = (Rig) {};
        guest_init(&r->g);
        irq = guest_irq(&r->g);
        if (virtio_net_new(&r->g.mem, &irq, mac, &r->dev) < 0)
                abort();
        guest_attach(&r->g, virtio_net_transport(r->dev));
        guest_negotiate(&r->g, accept | VERSION_1);
        if (!guest_queue_setup(&r->g, &r->rxq, 0, QSIZE) || !guest_queue_setup(&r->g, &r->txq, 1, QSIZE))
                abort();
        r->rxbufs = guest_alloc(&r->g, (uint64_t) BUF * QSIZE, 16);
        r->txbufs = guest_alloc(&r->g, 131072, 16);
        guest_driver_ok(&r->g);
}

static void rig_stop(Rig *r) {
        virtio_net_free(r->dev);
        guest_done(&r->g);
}

static void post_rx(Rig *r, unsigned n, uint32_t len) {
        for (unsigned i = 0; i < n; i++) {
                uint16_t slot = r->rxq.next_desc;

                guest_add_buf(&r->g, &r->rxq, r->rxbufs + (uint64_t) BUF * slot, len, true);
        }
        guest_kick(&r->g, &r->rxq);
}

static bool tx_readable(Rig *r) {
        struct pollfd p = { .fd = virtio_net_tx_fd(r->dev), .events = POLLIN };

        return poll(&p, 1, 0) == 1;
}

static void test_config_and_tx(void) {
        Rig r;
        uint8_t frame[VIRTIO_NET_FRAME_MAX + 64];
        uint32_t id, len;

        rig_start(&r, ALL);
        CHECK((guest_device_features(&r.g) & ALL) == ALL, "MAC, STATUS, MRG_RXBUF offered");
        bool same = true;
        for (unsigned i = 0; i < 6; i++)
                same &= guest_cfg_rd(&r.g, i, 1) == mac[i];
        CHECK(same, "config: the MAC");
        CHECK_EQ_U64(guest_cfg_rd(&r.g, 6, 2), VIRTIO_NET_S_LINK_UP, "config: link up");

        /* A 60-byte frame after the 12-byte header. */
        uint8_t *p = guest_ptr(&r.g, r.txbufs);
        memset(p, 0, 12);
        for (unsigned i = 0; i < 60; i++)
                p[12 + i] = (uint8_t) i;
        CHECK(!tx_readable(&r), "tx fd quiet before");
        guest_add_buf(&r.g, &r.txq, r.txbufs, 72, false);
        guest_kick(&r.g, &r.txq);
        CHECK(guest_get_used(&r.g, &r.txq, &id, &len), "tx buffer returned");
        CHECK(tx_readable(&r), "tx fd readable");
        ssize_t n = virtio_net_tx_pop(r.dev, frame, sizeof(frame));
        CHECK(n == 60 && frame[0] == 0 && frame[59] == 59, "the host gets the frame without the header (%zd)", n);
        CHECK_EQ_U64(virtio_net_tx_pop(r.dev, frame, sizeof(frame)), 0, "then nothing");
        CHECK(!tx_readable(&r), "tx fd drained");

        /* Hostile: a header alone, a short header, a frame too big. */
        guest_add_buf(&r.g, &r.txq, r.txbufs, 12, false);
        guest_add_buf(&r.g, &r.txq, r.txbufs, 5, false);
        guest_add_buf(&r.g, &r.txq, r.txbufs, 12 + VIRTIO_NET_FRAME_MAX + 1, false);
        guest_kick(&r.g, &r.txq);
        unsigned returned = 0;
        while (guest_get_used(&r.g, &r.txq, &id, &len))
                returned++;
        VirtioNetStats st;
        virtio_net_stats(r.dev, &st);
        CHECK(returned == 3 && st.tx_dropped == 3 && virtio_net_tx_pop(r.dev, frame, sizeof(frame)) == 0,
              "bad tx buffers: returned, dropped, counted");
        CHECK(!guest_needs_reset(&r.g), "device not broken");
        rig_stop(&r);
}

static void test_rx(void) {
        Rig r;
        uint8_t frame[1514];
        uint32_t id, len;
        uint16_t nb;

        for (unsigned i = 0; i < sizeof(frame); i++)
                frame[i] = (uint8_t) (i * 3);

        rig_start(&r, ALL);
        post_rx(&r, 4, BUF);
        CHECK_EQ_U64(virtio_net_receive(r.dev, frame, sizeof(frame)), 0, "receive");
        CHECK(guest_get_used(&r.g, &r.rxq, &id, &len) && len == 12 + sizeof(frame), "one buffer, header + frame");
        uint8_t *p = guest_ptr(&r.g, r.rxbufs + (uint64_t) BUF * id);
        memcpy(&nb, p + 10, 2);
        CHECK(le16toh(nb) == 1 && memcmp(p + 12, frame, sizeof(frame)) == 0, "num_buffers 1, the frame intact");
        CHECK(r.g.irq_level, "interrupt");

        /* Mergeable: 600-byte buffers take 1526 bytes in three. */
        rig_stop(&r);
        rig_start(&r, ALL);
        post_rx(&r, 8, 600);
        virtio_net_receive(r.dev, frame, sizeof(frame));
        uint8_t got[2048];
        size_t off = 0;
        unsigned bufs = 0;
        while (guest_get_used(&r.g, &r.rxq, &id, &len)) {
                memcpy(got + off, guest_ptr(&r.g, r.rxbufs + (uint64_t) BUF * id), len);
                off += len;
                bufs++;
        }
        memcpy(&nb, got + 10, 2);
        CHECK(bufs == 3 && le16toh(nb) == 3 && off == 12 + sizeof(frame) && memcmp(got + 12, frame, sizeof(frame)) == 0,
              "mergeable: three buffers, num_buffers 3, the frame intact");

        /* No buffers: backlog, delivered once the driver adds some. */
        rig_stop(&r);
        rig_start(&r, ALL);
        virtio_net_receive(r.dev, frame, 100);
        virtio_net_receive(r.dev, frame + 1, 100);
        CHECK(!guest_get_used(&r.g, &r.rxq, &id, &len), "nothing delivered without buffers");
        post_rx(&r, 4, BUF);
        bool a = guest_get_used(&r.g, &r.rxq, &id, &len) && len == 112 &&
                 memcmp(guest_ptr(&r.g, r.rxbufs + (uint64_t) BUF * id) + 12, frame, 100) == 0;
        bool b = guest_get_used(&r.g, &r.rxq, &id, &len) && len == 112 &&
                 memcmp(guest_ptr(&r.g, r.rxbufs + (uint64_t) BUF * id) + 12, frame + 1, 100) == 0;
        CHECK(a && b, "the backlog is delivered in order on the rx kick");

        /* Link down: the guest is told, frames are dropped; up again. */
        guest_ack(&r.g);
        virtio_net_set_link(r.dev, false);
        CHECK(guest_cfg_rd(&r.g, 6, 2) == 0 && (guest_ack(&r.g) & VIRTIO_MMIO_INT_CONFIG), "link down: status 0, config interrupt");
        virtio_net_receive(r.dev, frame, 100);
        CHECK(!guest_get_used(&r.g, &r.rxq, &id, &len), "link down: nothing delivered");
        virtio_net_set_link(r.dev, true);
        CHECK(guest_cfg_rd(&r.g, 6, 2) == VIRTIO_NET_S_LINK_UP, "link up again");
        virtio_net_receive(r.dev, frame, 100);
        CHECK(guest_get_used(&r.g, &r.rxq, &id, &len), "link up: delivered");
        rig_stop(&r);
}

static void test_rx_hostile(void) {
        Rig r;
        uint8_t frame[1514] = { 1 };
        uint32_t id, len;
        VirtioNetStats st;

        /* Without MRG_RXBUF a frame must fit one buffer. */
        rig_start(&r, (1ULL << VIRTIO_NET_F_MAC));
        post_rx(&r, 4, 100);
        virtio_net_receive(r.dev, frame, sizeof(frame));
        virtio_net_stats(r.dev, &st);
        CHECK(!guest_get_used(&r.g, &r.rxq, &id, &len) && st.rx_dropped == 1, "too small without MRG_RXBUF: dropped");
        virtio_net_receive(r.dev, frame, 50);
        CHECK(guest_get_used(&r.g, &r.rxq, &id, &len) && len == 62, "the buffers were left for a frame that fits");
        rig_stop(&r);

        /* Mergeable, but 64 buffers of 8 bytes cannot take it. */
        rig_start(&r, ALL);
        post_rx(&r, QSIZE, 8);
        virtio_net_receive(r.dev, frame, sizeof(frame));
        virtio_net_stats(r.dev, &st);
        CHECK(!guest_get_used(&r.g, &r.rxq, &id, &len) && st.rx_dropped == 1, "too many tiny buffers: dropped, none used");
        rig_stop(&r);

        /* A buffer the device may not write. */
        rig_start(&r, ALL);
        guest_add_buf(&r.g, &r.rxq, r.rxbufs, BUF, false);
        guest_kick(&r.g, &r.rxq);
        virtio_net_receive(r.dev, frame, 100);
        CHECK(guest_fb_intact(&r.g), "read-only rx buffer: no crash, nothing written outside RAM");
        CHECK_EQ_U64(virtio_net_receive(r.dev, NULL, 10), -EINVAL, "NULL frame refused");
        CHECK_EQ_U64(virtio_net_receive(r.dev, frame, VIRTIO_NET_FRAME_MAX + 1), -EINVAL, "oversized frame refused");
        rig_stop(&r);
}

int main(void) {
        test_config_and_tx();
        test_rx();
        test_rx_hostile();
        return tap_finish();
}
