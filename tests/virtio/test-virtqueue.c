/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueue: good chains (directions, lengths, order), and every kind
 * of hostile ring the device must survive without touching memory outside
 * guest RAM: buffers outside RAM / in MMIO / in the framebuffer / across the
 * end of RAM / wrapping 2^64, loops, chains longer than the queue, bad head
 * and next indices, avail->idx jumps, INDIRECT, length overflow, writable
 * before readable. Each must set DEVICE_NEEDS_RESET, stop the queue, leave
 * the used ring and the buffers alone, and be cured by a reset.
 */

#include <string.h>

#include "macro.h"
#include "tap.h"
#include "echo.h"
#include "guest.h"

#define VERSION_1 (1ULL << VIRTIO_F_VERSION_1)
#define F_NEXT  VIRTQ_DESC_F_NEXT
#define F_WRITE VIRTQ_DESC_F_WRITE

typedef struct Rig {
        Guest g;
        Echo e;
        GuestQueue q;
} Rig;

static void rig_start(Rig *r, unsigned queue, uint16_t num) {
        IrqLine irq;

        guest_init(&r->g);
        irq = guest_irq(&r->g);
        if (echo_new(&r->e, &r->g.mem, &irq) < 0)
                abort();
        guest_attach(&r->g, r->e.transport);
        guest_negotiate(&r->g, VERSION_1);
        if (!guest_queue_setup(&r->g, &r->q, queue, num))
                abort();
        guest_driver_ok(&r->g);
}

static void rig_stop(Rig *r) {
        echo_free(&r->e);
        guest_done(&r->g);
}

static void test_good_chains(void) {
        Rig r;
        uint64_t a, b, c, d;
        uint32_t id, len;

        rig_start(&r, 0, 16);
        a = guest_alloc(&r.g, 16, 8);
        b = guest_alloc(&r.g, 16, 8);
        c = guest_alloc(&r.g, 32, 8);
        d = guest_alloc(&r.g, 32, 8);
        memcpy(guest_ptr(&r.g, a), "0123456789abcdef", 16);
        memcpy(guest_ptr(&r.g, b), "ghijklmnopqrstuv", 16);

        /* 2 readable + 2 writable descriptors, out of order in the table. */
        guest_desc(&r.g, &r.q, 5, a, 16, F_NEXT, 9);
        guest_desc(&r.g, &r.q, 9, b, 16, F_NEXT, 2);
        guest_desc(&r.g, &r.q, 2, c, 32, F_NEXT | F_WRITE, 15);
        guest_desc(&r.g, &r.q, 15, d, 32, F_WRITE, 0);
        guest_publish(&r.g, &r.q, 5);
        guest_kick(&r.g, &r.q);

        CHECK_EQ_U64(r.e.chains, 1, "one chain popped");
        CHECK_EQ_U64(r.e.last_n_out, 2, "2 readable segments");
        CHECK_EQ_U64(r.e.last_n_in, 2, "2 writable segments");
        CHECK_EQ_U64(r.e.last_out_len, 32, "32 readable bytes");
        CHECK_EQ_U64(r.e.last_in_len, 64, "64 writable bytes");
        CHECK(r.e.seen_len == 32 && memcmp(r.e.seen, "0123456789abcdefghijklmnopqrstuv", 32) == 0,
              "readable bytes read in chain order");
        CHECK(memcmp(guest_ptr(&r.g, a), "0123456789abcdef", 16) == 0 &&
              memcmp(guest_ptr(&r.g, b), "ghijklmnopqrstuv", 16) == 0, "readable buffers never written");
        CHECK(((uint8_t *) guest_ptr(&r.g, c))[0] == ECHO_FILL && ((uint8_t *) guest_ptr(&r.g, d))[31] == ECHO_FILL,
              "writable buffers written");
        CHECK(guest_get_used(&r.g, &r.q, &id, &len) && id == 5 && len == 64, "used: head 5, 64 bytes");
        CHECK(!guest_needs_reset(&r.g), "no NEEDS_RESET");

        /* A read-only chain: the device writes nothing into it. */
        memset(guest_ptr(&r.g, c), 0x11, 32);
        guest_desc(&r.g, &r.q, 0, c, 32, 0, 0);
        guest_publish(&r.g, &r.q, 0);
        guest_kick(&r.g, &r.q);
        CHECK(guest_get_used(&r.g, &r.q, &id, &len) && id == 0 && len == 0, "read-only chain: used with 0 bytes");
        CHECK(((uint8_t *) guest_ptr(&r.g, c))[0] == 0x11 && ((uint8_t *) guest_ptr(&r.g, c))[31] == 0x11,
              "read-only buffer never written");

        /* A chain of exactly num descriptors is legal. */
        for (uint16_t i = 0; i < 16; i++)
                guest_desc(&r.g, &r.q, i, d, 2, (i < 15 ? F_NEXT : 0) | F_WRITE, (uint16_t) (i + 1));
        guest_publish(&r.g, &r.q, 0);
        guest_kick(&r.g, &r.q);
        CHECK(guest_get_used(&r.g, &r.q, NULL, &len) && len == 32, "chain of 16 descriptors in a queue of 16");

        /* Zero-length descriptors inside RAM are accepted. */
        guest_desc(&r.g, &r.q, 3, a, 0, F_WRITE, 0);
        guest_publish(&r.g, &r.q, 3);
        guest_kick(&r.g, &r.q);
        CHECK(guest_get_used(&r.g, &r.q, NULL, &len) && len == 0, "zero-length buffer");

        /* A buffer ending exactly at the end of RAM. */
        guest_desc(&r.g, &r.q, 4, GUEST_RAM_BASE + GUEST_RAM_SIZE - 8, 8, F_WRITE, 0);
        guest_publish(&r.g, &r.q, 4);
        guest_kick(&r.g, &r.q);
        CHECK(guest_get_used(&r.g, &r.q, NULL, &len) && len == 8, "buffer at the very end of RAM");

        /* Many chains at once, the used ring wrapping several times. */
        for (unsigned round = 0; round < 5; round++) {
                for (uint16_t i = 0; i < 16; i++)
                        guest_add_buf(&r.g, &r.q, d, 4, true);
                guest_kick(&r.g, &r.q);
                for (uint16_t i = 0; i < 16; i++)
                        if (!guest_get_used(&r.g, &r.q, NULL, NULL))
                                break;
        }
        CHECK_EQ_U64(guest_used_idx(&r.g, &r.q), r.q.avail_idx, "all chains returned across ring wraps");
        CHECK(!guest_needs_reset(&r.g), "still healthy");
        CHECK(guest_fb_intact(&r.g), "framebuffer untouched");
        rig_stop(&r);
}

typedef void (*BadSetup)(Rig *r, uint64_t buf);

static void bad_outside_ram(Rig *r, uint64_t buf) {
        guest_desc(&r->g, &r->q, 0, 0x1000, 16, F_WRITE, 0);
        guest_publish(&r->g, &r->q, 0);
}

static void bad_in_mmio(Rig *r, uint64_t buf) {
        guest_desc(&r->g, &r->q, 0, GUEST_MMIO_BASE, 4, F_WRITE, 0);
        guest_publish(&r->g, &r->q, 0);
}

static void bad_in_fb(Rig *r, uint64_t buf) {
        guest_desc(&r->g, &r->q, 0, GUEST_FB_BASE + 0x100, 64, F_WRITE, 0);
        guest_publish(&r->g, &r->q, 0);
}

static void bad_fb_second(Rig *r, uint64_t buf) {
        guest_desc(&r->g, &r->q, 0, buf, 16, F_NEXT | F_WRITE, 1);
        guest_desc(&r->g, &r->q, 1, GUEST_FB_BASE, 16, F_WRITE, 0);
        guest_publish(&r->g, &r->q, 0);
}

static void bad_straddle_end(Rig *r, uint64_t buf) {
        guest_desc(&r->g, &r->q, 0, GUEST_RAM_BASE + GUEST_RAM_SIZE - 4, 8, F_WRITE, 0);
        guest_publish(&r->g, &r->q, 0);
}

static void bad_past_end(Rig *r, uint64_t buf) {
        guest_desc(&r->g, &r->q, 0, GUEST_RAM_BASE + GUEST_RAM_SIZE, 0, F_WRITE, 0);
        guest_publish(&r->g, &r->q, 0);
}

static void bad_wrap(Rig *r, uint64_t buf) {
        guest_desc(&r->g, &r->q, 0, 0xfffffffffffffff0ULL, 0x20, F_WRITE, 0);
        guest_publish(&r->g, &r->q, 0);
}

static void bad_huge_len(Rig *r, uint64_t buf) {
        guest_desc(&r->g, &r->q, 0, GUEST_RAM_BASE, 0xffffffff, F_WRITE, 0);
        guest_publish(&r->g, &r->q, 0);
}

static void bad_loop(Rig *r, uint64_t buf) {
        guest_desc(&r->g, &r->q, 0, buf, 4, F_NEXT | F_WRITE, 1);
        guest_desc(&r->g, &r->q, 1, buf, 4, F_NEXT | F_WRITE, 0);
        guest_publish(&r->g, &r->q, 0);
}

static void bad_self_loop(Rig *r, uint64_t buf) {
        guest_desc(&r->g, &r->q, 7, buf, 4, F_NEXT | F_WRITE, 7);
        guest_publish(&r->g, &r->q, 7);
}

static void bad_too_long(Rig *r, uint64_t buf) {
        /* 17 descriptors in a queue of 16: 0 → 1 → ... → 15 → 3 (revisits). */
        for (uint16_t i = 0; i < 16; i++)
                guest_desc(&r->g, &r->q, i, buf, 1, F_NEXT | F_WRITE, i < 15 ? (uint16_t) (i + 1) : 3);
        guest_publish(&r->g, &r->q, 0);
}

static void bad_next_range(Rig *r, uint64_t buf) {
        guest_desc(&r->g, &r->q, 0, buf, 4, F_NEXT | F_WRITE, 16);
        guest_publish(&r->g, &r->q, 0);
}

static void bad_head_range(Rig *r, uint64_t buf) {
        guest_desc(&r->g, &r->q, 0, buf, 4, F_WRITE, 0);
        guest_publish(&r->g, &r->q, 0xffff);
}

static void bad_avail_jump(Rig *r, uint64_t buf) {
        guest_desc(&r->g, &r->q, 0, buf, 4, F_WRITE, 0);
        guest_set_avail_idx(&r->g, &r->q, 17);
}

static void bad_avail_backwards(Rig *r, uint64_t buf) {
        guest_set_avail_idx(&r->g, &r->q, 0xffff);
}

static void bad_indirect(Rig *r, uint64_t buf) {
        guest_desc(&r->g, &r->q, 0, buf, 16, VIRTQ_DESC_F_INDIRECT, 0);
        guest_publish(&r->g, &r->q, 0);
}

static void bad_write_then_read(Rig *r, uint64_t buf) {
        guest_desc(&r->g, &r->q, 0, buf, 8, F_NEXT | F_WRITE, 1);
        guest_desc(&r->g, &r->q, 1, buf + 8, 8, 0, 0);
        guest_publish(&r->g, &r->q, 0);
}

static void run_bad(const char *what, BadSetup fn) {
        Rig r;
        uint64_t buf;
        uint16_t used_before;
        unsigned chains_before;

        rig_start(&r, 0, 16);
        buf = guest_alloc(&r.g, 64, 8);
        memset(guest_ptr(&r.g, buf), 0x5a, 64);

        r.g.irq_raises = 0;
        used_before = guest_used_idx(&r.g, &r.q);
        chains_before = r.e.chains;
        fn(&r, buf);
        guest_kick(&r.g, &r.q);

        CHECK(guest_needs_reset(&r.g), "%s: DEVICE_NEEDS_RESET", what);
        CHECK(r.e.pop_errors == 1 && r.e.chains == chains_before, "%s: pop failed, nothing processed", what);
        CHECK(guest_used_idx(&r.g, &r.q) == used_before, "%s: used ring untouched", what);
        CHECK(((uint8_t *) guest_ptr(&r.g, buf))[0] == 0x5a && ((uint8_t *) guest_ptr(&r.g, buf))[63] == 0x5a,
              "%s: buffers untouched", what);
        CHECK(guest_fb_intact(&r.g), "%s: framebuffer untouched", what);
        CHECK(r.g.irq_level && (guest_rd(&r.g, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG),
              "%s: configuration-change interrupt", what);

        /* The broken queue stays stopped, even if the driver fixes the ring. */
        guest_desc(&r.g, &r.q, 0, buf, 4, F_WRITE, 0);
        guest_set_avail_idx(&r.g, &r.q, 1);
        guest_kick(&r.g, &r.q);
        CHECK(r.e.notifies[0] == 1 && guest_used_idx(&r.g, &r.q) == used_before,
              "%s: broken queue ignores notifies", what);

        /* Reset and a fresh start cure it. */
        guest_negotiate(&r.g, VERSION_1);
        CHECK(!guest_needs_reset(&r.g), "%s: reset clears NEEDS_RESET", what);
        if (guest_queue_setup(&r.g, &r.q, 0, 16)) {
                guest_driver_ok(&r.g);
                guest_add_buf(&r.g, &r.q, buf, 4, true);
                guest_kick(&r.g, &r.q);
                CHECK(guest_get_used(&r.g, &r.q, NULL, NULL), "%s: works again after reset", what);
        } else
                CHECK(false, "%s: queue setup after reset", what);

        rig_stop(&r);
}

static void test_bad_chains(void) {
        run_bad("buffer below RAM", bad_outside_ram);
        run_bad("buffer in MMIO", bad_in_mmio);
        run_bad("buffer in the framebuffer", bad_in_fb);
        run_bad("second buffer in the framebuffer", bad_fb_second);
        run_bad("buffer across the end of RAM", bad_straddle_end);
        run_bad("empty buffer just past RAM", bad_past_end);
        run_bad("buffer wrapping 2^64", bad_wrap);
        run_bad("4 GiB buffer", bad_huge_len);
        run_bad("descriptor loop", bad_loop);
        run_bad("descriptor pointing to itself", bad_self_loop);
        run_bad("chain longer than the queue", bad_too_long);
        run_bad("next index out of range", bad_next_range);
        run_bad("head index out of range", bad_head_range);
        run_bad("avail idx jumps by 17 in a queue of 16", bad_avail_jump);
        run_bad("avail idx goes backwards", bad_avail_backwards);
        run_bad("INDIRECT descriptor (not negotiated)", bad_indirect);
        run_bad("readable after writable", bad_write_then_read);
}

/* 256 overlapping descriptors of 16 MiB each: the total overflows 32 bits, in either direction. */
static void test_length_overflow(void) {
        for (unsigned dir = 0; dir < 2; dir++) {
                const char *what = dir ? "writable" : "readable";
                Rig r;

                rig_start(&r, 1, 256);
                for (unsigned i = 0; i < 256; i++)
                        guest_desc(&r.g, &r.q, (uint16_t) i, GUEST_RAM_BASE, (uint32_t) GUEST_RAM_SIZE,
                                   (i < 255 ? F_NEXT : 0) | (dir ? F_WRITE : 0), (uint16_t) (i + 1));
                guest_publish(&r.g, &r.q, 0);
                guest_kick(&r.g, &r.q);
                CHECK(guest_needs_reset(&r.g), "%s chain of 4 GiB: DEVICE_NEEDS_RESET", what);
                CHECK_EQ_U64(r.e.last_error, -E2BIG, "%s chain of 4 GiB: -E2BIG", what);
                CHECK_EQ_U64(r.e.chains, 0, "%s chain of 4 GiB: not processed", what);
                rig_stop(&r);
        }
}

/* An avail idx exactly num ahead is legal: the whole ring published at once. */
static void test_full_ring(void) {
        Rig r;
        uint64_t buf;

        rig_start(&r, 0, 16);
        buf = guest_alloc(&r.g, 16, 8);
        for (uint16_t i = 0; i < 16; i++)
                guest_add_buf(&r.g, &r.q, buf, 16, true);
        guest_kick(&r.g, &r.q);
        CHECK_EQ_U64(r.e.chains, 16, "full ring: 16 chains");
        CHECK(!guest_needs_reset(&r.g), "full ring: no error");
        rig_stop(&r);
}

/* The virtqueue API without a transport: stale pushes, chain copy helpers. */
static void test_api(void) {
        Guest g;
        VirtQueue vq;
        VirtqChain *chain;
        GuestQueue q;
        uint64_t a, b;
        uint8_t out[8];

        guest_init(&g);
        chain = calloc(1, sizeof(VirtqChain));

        CHECK(virtqueue_init(&vq, &g.mem, 0, 12, NULL, NULL) == -EINVAL, "init: max not a power of 2 refused");
        CHECK(virtqueue_init(&vq, &g.mem, 0, 512, NULL, NULL) == -EINVAL, "init: max above VIRTQ_MAX_SIZE refused");
        CHECK(virtqueue_init(&vq, &g.mem, 0, 8, NULL, NULL) == 0, "init");

        q = (GuestQueue) { .num = 8 };
        q.desc = guest_alloc(&g, 128, 16);
        q.avail = guest_alloc(&g, 22, 2);
        q.used = guest_alloc(&g, 70, 4);
        vq.num = 8;
        vq.desc_addr = q.desc;
        vq.avail_addr = q.avail;
        vq.used_addr = q.used;
        CHECK(virtqueue_enable(&vq) == 0, "enable");
        CHECK(virtqueue_pop(&vq, chain) == 0, "pop on an empty ring: 0");

        a = guest_alloc(&g, 3, 1);
        b = guest_alloc(&g, 5, 1);
        memcpy(guest_ptr(&g, a), "abc", 3);
        memcpy(guest_ptr(&g, b), "defgh", 5);
        guest_desc(&g, &q, 0, a, 3, F_NEXT, 1);
        guest_desc(&g, &q, 1, b, 5, F_NEXT, 2);
        guest_desc(&g, &q, 2, a, 3, F_NEXT | F_WRITE, 3);
        guest_desc(&g, &q, 3, b, 5, F_WRITE, 0);
        guest_publish(&g, &q, 0);
        CHECK(virtqueue_pop(&vq, chain) == 1, "pop a 4-descriptor chain");
        CHECK(virtqueue_chain_read(chain, 2, out, 8) == 6 && memcmp(out, "cdefgh", 6) == 0,
              "chain_read from an offset across segments, clamped");
        CHECK(virtqueue_chain_read(chain, 8, out, 8) == 0, "chain_read past the end: 0");
        CHECK(virtqueue_chain_write(chain, 1, "XYZW", 4) == 4, "chain_write across segments");
        CHECK(memcmp(guest_ptr(&g, a), "aXY", 3) == 0 && memcmp(guest_ptr(&g, b), "ZWfgh", 5) == 0,
              "chain_write lands in the writable segments at the offset");
        CHECK(virtqueue_chain_write(chain, 7, "1234", 4) == 1, "chain_write clamped to in_len");

        /* Reset between pop and push: the push is refused. */
        virtqueue_reset(&vq);
        CHECK(virtqueue_push(&vq, chain, 8) == -ESTALE, "push after reset: -ESTALE");
        CHECK_EQ_U64(guest_used_idx(&g, &q), 0, "used ring untouched by the stale push");

        vq.num = 8;
        vq.desc_addr = q.desc;
        vq.avail_addr = q.avail;
        vq.used_addr = q.used;
        CHECK(virtqueue_enable(&vq) == 0, "re-enable");
        q.avail_idx = 0;
        guest_set_avail_idx(&g, &q, 0);
        guest_publish(&g, &q, 0);
        CHECK(virtqueue_pop(&vq, chain) == 1, "pop again");
        virtqueue_disable(&vq);
        CHECK(virtqueue_push(&vq, chain, 8) == -ESTALE, "push after disable: -ESTALE");

        CHECK(virtqueue_enable(&vq) == 0, "enable again");
        q.avail_idx = 0;
        guest_set_avail_idx(&g, &q, 0);
        guest_publish(&g, &q, 0);
        CHECK(virtqueue_pop(&vq, chain) == 1, "pop once more");
        CHECK(virtqueue_push(&vq, chain, 100) == 0, "push");
        q.last_used = 0;
        {
                uint32_t len = 0;

                CHECK(guest_get_used(&g, &q, NULL, &len) && len == 8, "used length clamped to in_len");
        }

        /* Unpop: the chains given back come out of the next pops again, in order. */
        q.avail_idx = 1;
        guest_set_avail_idx(&g, &q, 1);
        guest_publish(&g, &q, 2);
        guest_publish(&g, &q, 3);
        CHECK(virtqueue_pop(&vq, chain) == 1 && chain->head == 2, "pop head 2");
        CHECK(virtqueue_pop(&vq, chain) == 1 && chain->head == 3, "pop head 3");
        CHECK(virtqueue_pop(&vq, chain) == 0, "then the ring is empty");
        virtqueue_unpop(&vq, 2);
        CHECK(virtqueue_pop(&vq, chain) == 1 && chain->head == 2, "after unpop of 2: head 2 again");
        virtqueue_unpop(&vq, 1);
        CHECK(virtqueue_pop(&vq, chain) == 1 && chain->head == 2, "after unpop of 1: head 2 again");
        CHECK(virtqueue_pop(&vq, chain) == 1 && chain->head == 3, "then head 3");
        CHECK(virtqueue_pop(&vq, chain) == 0, "and nothing more");

        /* Errors are reported once. */
        vq.on_error = NULL;
        CHECK(virtqueue_fail(&vq, -EIO) == -EIO, "fail returns the error");
        CHECK(!virtqueue_usable(&vq), "failed queue not usable");
        CHECK(virtqueue_pop(&vq, chain) == 0, "pop on a broken queue: 0");
        virtqueue_unpop(&vq, 1);
        CHECK(virtqueue_pop(&vq, chain) == 0, "unpop on a broken queue does nothing");

        free(chain);
        guest_done(&g);
}

int main(void) {
        test_good_chains();
        test_bad_chains();
        test_length_overflow();
        test_full_ring();
        test_api();
        return tap_finish();
}
