/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk on real image files: features and configuration, reads and
 * writes that reach the file, FLUSH, GET_ID, readonly, snapshot (the file
 * never changes), discard and write-zeroes (holes), out-of-order completion
 * of many requests, the image checks and OFD locks, and a hostile driver:
 * out-of-range and wrapping sectors, huge and odd lengths, a header in a
 * write-only descriptor, no status byte, unknown types. Resize: the file
 * grows, the capacity follows with a configuration-change interrupt, and
 * what cannot grow is refused.
 */

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "tap.h"
#include "block/image.h"
#include "devices/virtio_blk.h"
#include "guest.h"

#define VERSION_1 (1ULL << VIRTIO_F_VERSION_1)
#define QSIZE 256U
#define IMAGE_SIZE (1ULL << 20)
#define SLOTS 64U
#define SLOT_DATA 8192U

typedef struct Rig {
        Guest g;
        char path[64];
        BlockImage *img;
        VirtioBlk *dev;
        GuestQueue q;
        uint64_t hdr, status, data;     /* SLOTS headers, status bytes and data areas */
        uint64_t big;                   /* 4 MiB */
} Rig;

static uint8_t pattern(uint64_t off) {
        return (uint8_t) (off * 7 + (off >> 9) * 13 + 1);
}

/* A fresh image file of 'size' bytes filled with pattern(); returns the fd (kept for checks). */
static int make_image(char *path, size_t path_size, uint64_t size) {
        uint8_t buf[4096];
        int fd;

        snprintf(path, path_size, "/var/tmp/test-virtio-blk-XXXXXX");
        fd = mkstemp(path);
        if (fd < 0)
                abort();
        for (uint64_t off = 0; off < size; off += sizeof(buf)) {
                size_t n = (size_t) MIN((uint64_t) sizeof(buf), size - off);

                for (size_t i = 0; i < n; i++)
                        buf[i] = pattern(off + i);
                if (pwrite(fd, buf, n, (off_t) off) != (ssize_t) n)
                        abort();
        }
        return fd;
}

static int rig_start(Rig *r, const BlockOptions *extra, uint64_t accept) {
        BlockOptions o = extra ? *extra : (BlockOptions) {};
        IrqLine irq;
        int k;

        guest_init(&r->g);
        o.path = r->path;
        k = block_image_open(&o, &r->img);
        if (k < 0)
                return k;
        irq = guest_irq(&r->g);
        k = virtio_blk_new(&r->g.mem, &irq, r->img, "disk-serial-1", &r->dev);
        if (k < 0)
                return k;
        guest_attach(&r->g, virtio_blk_transport(r->dev));
        guest_negotiate(&r->g, accept | VERSION_1);
        if (!guest_queue_setup(&r->g, &r->q, 0, QSIZE))
                return -EIO;
        guest_driver_ok(&r->g);
        r->hdr = guest_alloc(&r->g, 16 * SLOTS, 16);
        r->status = guest_alloc(&r->g, SLOTS, 1);
        r->data = guest_alloc(&r->g, (uint64_t) SLOT_DATA * SLOTS, 4096);
        r->big = guest_alloc(&r->g, 4 << 20, 4096);
        return r->big ? 0 : -ENOMEM;
}

static void rig_stop(Rig *r) {
        virtio_blk_free(r->dev);
        block_image_close(r->img);
        guest_done(&r->g);
        r->dev = NULL;
        r->img = NULL;
}

static void put_header(Rig *r, unsigned slot, uint32_t type, uint64_t sector) {
        uint8_t *h = guest_ptr(&r->g, r->hdr + 16ULL * slot);
        uint32_t t = htole32(type), z = 0;
        uint64_t s = htole64(sector);

        memcpy(h, &t, 4);
        memcpy(h + 4, &z, 4);
        memcpy(h + 8, &s, 8);
}

/*
 * Queues header / data / status for 'slot' in descriptors 3*slot.. (data
 * device-writable for reads), publishes and kicks. len 0: no data descriptor.
 */
static void submit(Rig *r, unsigned slot, uint32_t type, uint64_t sector, uint64_t data, uint32_t len) {
        uint16_t d = (uint16_t) (3 * slot);
        bool in = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;

        put_header(r, slot, type, sector);
        *(uint8_t *) guest_ptr(&r->g, r->status + slot) = 0xee;
        if (len > 0) {
                guest_desc(&r->g, &r->q, d, r->hdr + 16ULL * slot, 16, VIRTQ_DESC_F_NEXT, d + 1);
                guest_desc(&r->g, &r->q, d + 1, data, len, VIRTQ_DESC_F_NEXT | (in ? VIRTQ_DESC_F_WRITE : 0), d + 2);
        } else
                guest_desc(&r->g, &r->q, d, r->hdr + 16ULL * slot, 16, VIRTQ_DESC_F_NEXT, d + 2);
        guest_desc(&r->g, &r->q, d + 2, r->status + slot, 1, VIRTQ_DESC_F_WRITE, 0);
        guest_publish(&r->g, &r->q, d);
}

/* Waits for the workers, returns the status byte of the one completion expected (0xff if none). */
static uint8_t finish(Rig *r, unsigned slot, uint32_t *ret_len) {
        uint32_t id, len;

        virtio_blk_drain(r->dev);
        if (!guest_get_used(&r->g, &r->q, &id, &len) || id != 3 * slot)
                return 0xff;
        if (ret_len)
                *ret_len = len;
        return *(uint8_t *) guest_ptr(&r->g, r->status + slot);
}

static uint8_t request(Rig *r, uint32_t type, uint64_t sector, uint64_t data, uint32_t len, uint32_t *ret_len) {
        submit(r, 0, type, sector, data, len);
        guest_kick(&r->g, &r->q);
        return finish(r, 0, ret_len);
}

static bool file_matches_pattern(const char *path, uint64_t off, uint64_t len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        uint8_t b;

        for (uint64_t i = 0; i < len; i++)
                if (pread(fd, &b, 1, (off_t) (off + i)) != 1 || b != pattern(off + i))
                        return false;
        return true;
}

static void test_basics(void) {
        Rig r = {};
        uint8_t *p;
        uint32_t len;
        VirtioBlkStats st;
        _cleanup_close_ int fd = make_image(r.path, sizeof(r.path), IMAGE_SIZE);

        CHECK(rig_start(&r, NULL, ~0ULL & 0xffffff) == 0, "device up");
        uint64_t f = guest_device_features(&r.g);
        CHECK((f & (1ULL << VIRTIO_BLK_F_SEG_MAX)) && (f & (1ULL << VIRTIO_BLK_F_BLK_SIZE)) &&
              (f & (1ULL << VIRTIO_BLK_F_FLUSH)), "SEG_MAX, BLK_SIZE, FLUSH offered");
        CHECK(!(f & (1ULL << VIRTIO_BLK_F_RO)) && !(f & (1ULL << VIRTIO_BLK_F_DISCARD)), "no RO, no DISCARD by default");
        CHECK_EQ_U64(guest_cfg_rd(&r.g, 0, 8), IMAGE_SIZE / 512, "capacity in sectors");
        CHECK_EQ_U64(guest_cfg_rd(&r.g, 20, 4), 512, "blk_size");

        /* Read sectors 3..10 */
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_IN, 3, r.data, 4096, &len), VIRTIO_BLK_S_OK, "read OK");
        CHECK_EQ_U64(len, 4097, "used length: data + status");
        p = guest_ptr(&r.g, r.data);
        bool same = true;
        for (unsigned i = 0; i < 4096; i++)
                same &= p[i] == pattern(3 * 512 + i);
        CHECK(same, "read data is the file's");

        /* Write the last sector, check the file. */
        memset(p, 0x5a, 512);
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_OUT, IMAGE_SIZE / 512 - 1, r.data, 512, &len), VIRTIO_BLK_S_OK, "write last sector OK");
        CHECK_EQ_U64(len, 1, "used length of a write: the status");
        uint8_t b[512];
        CHECK(pread(fd, b, 512, IMAGE_SIZE - 512) == 512 && b[0] == 0x5a && b[511] == 0x5a, "write reached the file");

        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_OK, "flush OK");

        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_GET_ID, 0, r.data, 20, &len), VIRTIO_BLK_S_OK, "GET_ID OK");
        CHECK(memcmp(guest_ptr(&r.g, r.data), "disk-serial-1\0\0\0\0\0\0", 20) == 0 && len == 21, "GET_ID: serial, NUL-padded");

        virtio_blk_stats(r.dev, &st);
        CHECK(st.read_ops == 1 && st.read_bytes == 4096 && st.write_ops == 1 && st.write_bytes == 512 &&
              st.flush_ops == 1 && st.errors == 0, "statistics");
        CHECK(r.g.irq_level, "interrupt raised");
        CHECK(guest_fb_intact(&r.g), "framebuffer untouched");
        rig_stop(&r);
        unlink(r.path);
}

static void test_hostile(void) {
        Rig r = {};
        uint32_t len;
        VirtioBlkStats st;
        _cleanup_close_ int fd = make_image(r.path, sizeof(r.path), IMAGE_SIZE);
        const uint64_t cap = IMAGE_SIZE / 512;

        CHECK(rig_start(&r, NULL, ~0ULL & 0xffffff) == 0, "device up");

        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_IN, cap, r.data, 512, NULL), VIRTIO_BLK_S_IOERR, "read at capacity: IOERR");
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_IN, cap - 1, r.data, 1024, NULL), VIRTIO_BLK_S_IOERR, "read across the end: IOERR");
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_OUT, UINT64_MAX, r.data, 512, NULL), VIRTIO_BLK_S_IOERR, "sector 2^64-1: IOERR");
        /* sector * 512 wraps to a small offset. */
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_OUT, (1ULL << 55) + 1, r.data, 512, NULL), VIRTIO_BLK_S_IOERR,
                     "sector*512 wrapping to 512: IOERR");
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_IN, 0, r.big, 4 << 20, NULL), VIRTIO_BLK_S_IOERR, "4 MiB read of a 1 MiB disk: IOERR");
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_IN, 0, r.data, 100, NULL), VIRTIO_BLK_S_IOERR, "length not a multiple of 512: IOERR");
        CHECK_EQ_U64(request(&r, 0x7777, 0, r.data, 512, NULL), VIRTIO_BLK_S_UNSUPP, "unknown type: UNSUPP");
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_DISCARD, 0, r.data, 16, NULL), VIRTIO_BLK_S_UNSUPP, "discard without discard=on: UNSUPP");

        /* Header in a device-writable descriptor. */
        guest_desc(&r.g, &r.q, 0, r.hdr, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
        guest_desc(&r.g, &r.q, 1, r.status, 1, VIRTQ_DESC_F_WRITE, 0);
        *(uint8_t *) guest_ptr(&r.g, r.status) = 0xee;
        guest_publish(&r.g, &r.q, 0);
        guest_kick(&r.g, &r.q);
        uint32_t id;
        virtio_blk_drain(r.dev);
        CHECK(guest_get_used(&r.g, &r.q, &id, &len) && id == 0 && len == 1, "writable header: returned, one byte (the status) written");
        CHECK_EQ_U64(*(uint8_t *) guest_ptr(&r.g, r.status), VIRTIO_BLK_S_IOERR, "writable header: IOERR");

        /* No writable byte at all: nowhere to put a status. */
        put_header(&r, 0, VIRTIO_BLK_T_IN, 0);
        guest_desc(&r.g, &r.q, 0, r.hdr, 16, 0, 0);
        guest_publish(&r.g, &r.q, 0);
        guest_kick(&r.g, &r.q);
        virtio_blk_drain(r.dev);
        CHECK(guest_get_used(&r.g, &r.q, &id, &len) && id == 0 && len == 0, "no status byte: returned with length 0");

        /* A short header (8 bytes). */
        put_header(&r, 0, VIRTIO_BLK_T_IN, 0);
        guest_desc(&r.g, &r.q, 0, r.hdr, 8, VIRTQ_DESC_F_NEXT, 1);
        guest_desc(&r.g, &r.q, 1, r.status, 1, VIRTQ_DESC_F_WRITE, 0);
        guest_publish(&r.g, &r.q, 0);
        guest_kick(&r.g, &r.q);
        virtio_blk_drain(r.dev);
        CHECK(guest_get_used(&r.g, &r.q, &id, &len) && *(uint8_t *) guest_ptr(&r.g, r.status) == VIRTIO_BLK_S_IOERR,
              "8-byte header: IOERR");

        CHECK(!guest_needs_reset(&r.g), "none of it broke the device");
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_IN, 0, r.data, 512, NULL), VIRTIO_BLK_S_OK, "still serving");
        virtio_blk_stats(r.dev, &st);
        CHECK_EQ_U64(st.errors, 11, "errors counted");
        CHECK(file_matches_pattern(r.path, 0, IMAGE_SIZE), "the file is untouched");
        CHECK(guest_fb_intact(&r.g), "framebuffer untouched");
        rig_stop(&r);
        unlink(r.path);
}

static void test_many_in_flight(void) {
        Rig r = {};
        bool all = true, seen[SLOTS] = {};
        _cleanup_close_ int fd = make_image(r.path, sizeof(r.path), IMAGE_SIZE);

        CHECK(rig_start(&r, NULL, 0) == 0, "device up");
        for (unsigned s = 0; s < SLOTS; s++) {
                uint8_t *p = guest_ptr(&r.g, r.data + (uint64_t) SLOT_DATA * s);

                if (s % 2) {
                        memset(p, (int) s, SLOT_DATA);
                        submit(&r, s, VIRTIO_BLK_T_OUT, (uint64_t) s * 16, r.data + (uint64_t) SLOT_DATA * s, SLOT_DATA);
                } else
                        submit(&r, s, VIRTIO_BLK_T_IN, (uint64_t) s * 16, r.data + (uint64_t) SLOT_DATA * s, SLOT_DATA);
        }
        guest_kick(&r.g, &r.q);
        virtio_blk_drain(r.dev);

        uint32_t id, len;
        unsigned n = 0;
        while (guest_get_used(&r.g, &r.q, &id, &len)) {
                unsigned s = id / 3;

                n++;
                if (id % 3 || s >= SLOTS || seen[s] || *(uint8_t *) guest_ptr(&r.g, r.status + s) != VIRTIO_BLK_S_OK) {
                        all = false;
                        continue;
                }
                seen[s] = true;
        }
        CHECK(n == SLOTS && all, "%u requests in flight, each completed once, OK", SLOTS);

        bool data_ok = true;
        for (unsigned s = 0; s < SLOTS; s++) {
                uint8_t buf[SLOT_DATA];
                const uint8_t *p = guest_ptr(&r.g, r.data + (uint64_t) SLOT_DATA * s);

                if (pread(fd, buf, SLOT_DATA, (off_t) s * 16 * 512) != SLOT_DATA)
                        data_ok = false;
                for (unsigned i = 0; i < SLOT_DATA; i++)
                        if (buf[i] != (s % 2 ? (uint8_t) s : pattern((uint64_t) s * 16 * 512 + i)) || (!(s % 2) && p[i] != buf[i]))
                                data_ok = false;
        }
        CHECK(data_ok, "writes in the file, reads from it");
        rig_stop(&r);
        unlink(r.path);
}

static void test_readonly(void) {
        Rig r = {};
        BlockOptions o = { .readonly = true };
        _cleanup_close_ int fd = make_image(r.path, sizeof(r.path), IMAGE_SIZE);

        CHECK(rig_start(&r, &o, 1ULL << VIRTIO_BLK_F_RO) == 0, "readonly device up");
        CHECK(guest_device_features(&r.g) & (1ULL << VIRTIO_BLK_F_RO), "RO offered");
        memset(guest_ptr(&r.g, r.data), 0, 512);
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_OUT, 0, r.data, 512, NULL), VIRTIO_BLK_S_IOERR, "write: IOERR");
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_IN, 0, r.data, 512, NULL), VIRTIO_BLK_S_OK, "read: OK");
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_OK, "flush: OK");
        CHECK(file_matches_pattern(r.path, 0, 4096), "file unchanged");

        BlockImage *other = NULL;
        BlockOptions o2 = { .path = r.path, .readonly = true };
        CHECK(block_image_open(&o2, &other) == 0, "a second reader is allowed");
        block_image_close(other);
        o2.readonly = false;
        CHECK(block_image_open(&o2, &other) == -EBUSY, "a writer is refused while a reader holds it");
        rig_stop(&r);
        unlink(r.path);
}

static void test_snapshot(void) {
        Rig r = {};
        BlockOptions o = { .snapshot = true, .discard = true };
        uint8_t *p;
        _cleanup_close_ int fd = make_image(r.path, sizeof(r.path), IMAGE_SIZE);

        CHECK(rig_start(&r, &o, ~0ULL & 0xffffff) == 0, "snapshot device up");
        CHECK(!(guest_device_features(&r.g) & (1ULL << VIRTIO_BLK_F_RO)), "snapshot is writable for the guest");
        p = guest_ptr(&r.g, r.data);
        memset(p, 0xc3, 512);
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_OUT, 9, r.data, 512, NULL), VIRTIO_BLK_S_OK, "write one sector in a cluster");
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_IN, 8, r.data, 4096, NULL), VIRTIO_BLK_S_OK, "read the cluster");
        bool ok = true;
        for (unsigned i = 0; i < 4096; i++)
                ok &= p[i] == (i >= 512 && i < 1024 ? 0xc3 : pattern(8 * 512 + i));
        CHECK(ok, "the guest sees its write, and the cluster's other sectors from the image");

        /* Write zeroes in the overlay. */
        uint8_t *seg = guest_ptr(&r.g, r.data + 4096);
        uint64_t s = htole64(100);
        uint32_t c = htole32(4), fl = 0;
        memcpy(seg, &s, 8);
        memcpy(seg + 8, &c, 4);
        memcpy(seg + 12, &fl, 4);
        submit(&r, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, r.data + 4096, 16);
        /* Make the data descriptor readable (submit marks only IN/GET_ID writable). */
        guest_kick(&r.g, &r.q);
        CHECK_EQ_U64(finish(&r, 0, NULL), VIRTIO_BLK_S_OK, "write zeroes in a snapshot");
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_IN, 100, r.data, 2048, NULL), VIRTIO_BLK_S_OK, "read them");
        ok = true;
        for (unsigned i = 0; i < 2048; i++)
                ok &= p[i] == 0;
        CHECK(ok, "zeroes read back");
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_OK, "flush");
        rig_stop(&r);
        CHECK(file_matches_pattern(r.path, 0, IMAGE_SIZE), "the image file never changed");
        unlink(r.path);
}

static void test_discard(void) {
        Rig r = {};
        BlockOptions o = { .discard = true };
        struct stat before, after;
        _cleanup_close_ int fd = make_image(r.path, sizeof(r.path), IMAGE_SIZE);

        CHECK(rig_start(&r, &o, ~0ULL & 0xffffff) == 0, "discard device up");
        uint64_t f = guest_device_features(&r.g);
        CHECK((f & (1ULL << VIRTIO_BLK_F_DISCARD)) && (f & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES)), "DISCARD, WRITE_ZEROES offered");
        CHECK(guest_cfg_rd(&r.g, 40, 4) == 1 && guest_cfg_rd(&r.g, 36, 4) > 0, "max_discard_seg 1, max_discard_sectors set");

        fstat(fd, &before);
        uint8_t *seg = guest_ptr(&r.g, r.data);
        uint64_t s = htole64(256);
        uint32_t c = htole32(512), fl = 0;
        memcpy(seg, &s, 8);
        memcpy(seg + 8, &c, 4);
        memcpy(seg + 12, &fl, 4);
        submit(&r, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, r.data, 16);
        guest_kick(&r.g, &r.q);
        CHECK_EQ_U64(finish(&r, 0, NULL), VIRTIO_BLK_S_OK, "write zeroes (256 KiB)");
        fstat(fd, &after);
        CHECK(after.st_blocks < before.st_blocks, "a hole was punched (%lld -> %lld blocks)",
              (long long) before.st_blocks, (long long) after.st_blocks);
        CHECK(after.st_size == (off_t) IMAGE_SIZE, "size kept");
        uint8_t b[512];
        CHECK(pread(fd, b, 512, 256 * 512) == 512 && b[0] == 0 && b[511] == 0, "zeroes in the file");

        s = htole64(0);
        memcpy(seg, &s, 8);
        submit(&r, 0, VIRTIO_BLK_T_DISCARD, 0, r.data, 16);
        guest_kick(&r.g, &r.q);
        CHECK_EQ_U64(finish(&r, 0, NULL), VIRTIO_BLK_S_OK, "discard");

        fl = htole32(1);
        memcpy(seg + 12, &fl, 4);
        submit(&r, 0, VIRTIO_BLK_T_DISCARD, 0, r.data, 16);
        guest_kick(&r.g, &r.q);
        CHECK_EQ_U64(finish(&r, 0, NULL), VIRTIO_BLK_S_UNSUPP, "discard with unmap flag: UNSUPP");

        fl = 0;
        memcpy(seg + 12, &fl, 4);
        s = htole64(IMAGE_SIZE / 512 - 1);
        c = htole32(2);
        memcpy(seg, &s, 8);
        memcpy(seg + 8, &c, 4);
        submit(&r, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, r.data, 16);
        guest_kick(&r.g, &r.q);
        CHECK_EQ_U64(finish(&r, 0, NULL), VIRTIO_BLK_S_IOERR, "write zeroes past the end: IOERR");

        submit(&r, 0, VIRTIO_BLK_T_DISCARD, 0, r.data, 12);
        guest_kick(&r.g, &r.q);
        CHECK_EQ_U64(finish(&r, 0, NULL), VIRTIO_BLK_S_IOERR, "truncated segment: IOERR");
        rig_stop(&r);
        unlink(r.path);
}

static void test_cache_none(void) {
        Rig r = {};
        BlockOptions o = { .cache = BLOCK_CACHE_NONE };
        _cleanup_close_ int fd = make_image(r.path, sizeof(r.path), IMAGE_SIZE);

        int k = rig_start(&r, &o, 0);
        CHECK(k == 0, "cache=none device up (O_DIRECT %s)", r.img && block_image_direct(r.img) ? "on" : "refused");
        uint8_t *p = guest_ptr(&r.g, r.data);
        memset(p, 0x3c, 1024);
        /* An unaligned guest buffer goes through the bounce buffer. */
        memmove(p + 1, p, 1024);
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_OUT, 2, r.data + 1, 1024, NULL), VIRTIO_BLK_S_OK, "unaligned write");
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_IN, 0, r.data + 3, 4096, NULL), VIRTIO_BLK_S_OK, "unaligned read");
        bool ok = true;
        for (unsigned i = 0; i < 4096; i++)
                ok &= p[3 + i] == (i >= 1024 && i < 2048 ? 0x3c : pattern(i));
        CHECK(ok, "data round trip");
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_OK, "flush");
        rig_stop(&r);
        unlink(r.path);
}

static void test_open_checks(void) {
        char path[64];
        BlockImage *a = NULL, *b = NULL;
        BlockOptions o = { .path = path };
        int fd;

        fd = make_image(path, sizeof(path), 4096);
        CHECK(block_image_open(&o, &a) == 0, "open");
        CHECK(block_image_open(&o, &b) == -EBUSY, "a second writer: -EBUSY");
        o.snapshot = true;
        CHECK(block_image_open(&o, &b) == -EBUSY, "a snapshot reader of a written image: -EBUSY");
        o.snapshot = false;
        a = block_image_close(a);
        CHECK(block_image_open(&o, &a) == 0, "the lock went with the first");
        a = block_image_close(a);

        CHECK(ftruncate(fd, 1000) == 0 && block_image_open(&o, &a) == -ERANGE, "size not a multiple of 512: -ERANGE");
        CHECK(ftruncate(fd, 0) == 0 && block_image_open(&o, &a) == -ENODATA, "empty: -ENODATA");
        close(fd);
        unlink(path);
        CHECK(block_image_open(&o, &a) == -ENOENT, "missing: -ENOENT");
        o.path = "/var/tmp";
        CHECK(block_image_open(&o, &a) == -EISDIR, "a directory: -EISDIR");
        o.path = "/dev/null";
        CHECK(block_image_open(&o, &a) == -EINVAL, "a character device: -EINVAL");
}

static void test_resize(void) {
        Rig r = {};
        struct stat st;
        uint32_t generation;
        _cleanup_close_ int fd = make_image(r.path, sizeof(r.path), IMAGE_SIZE);

        CHECK(rig_start(&r, NULL, ~0ULL & 0xffffff) == 0, "device up");
        generation = guest_rd(&r.g, VIRTIO_MMIO_CONFIG_GENERATION);
        guest_wr(&r.g, VIRTIO_MMIO_INTERRUPT_ACK, guest_rd(&r.g, VIRTIO_MMIO_INTERRUPT_STATUS));
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_IN, IMAGE_SIZE / 512, r.data, 512, NULL), VIRTIO_BLK_S_IOERR,
                     "a read past the end before the resize: IOERR");
        guest_wr(&r.g, VIRTIO_MMIO_INTERRUPT_ACK, guest_rd(&r.g, VIRTIO_MMIO_INTERRUPT_STATUS));

        CHECK(virtio_blk_resize(r.dev, IMAGE_SIZE / 2) == -ERANGE, "shrinking: -ERANGE");
        CHECK(virtio_blk_resize(r.dev, 2 * IMAGE_SIZE + 1) == -EINVAL, "a size not a multiple of 512: -EINVAL");
        CHECK(virtio_blk_resize(r.dev, UINT64_MAX - 511) == -EFBIG, "a size beyond off_t: -EFBIG");
        CHECK(!(guest_rd(&r.g, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG), "no interrupt for a refused resize");
        CHECK(virtio_blk_resize(r.dev, 2 * IMAGE_SIZE) == 0, "growing to twice the size");
        CHECK(fstat(fd, &st) == 0 && (uint64_t) st.st_size == 2 * IMAGE_SIZE, "the file grew");
        CHECK(st.st_blocks * 512 < (blkcnt_t) (2 * IMAGE_SIZE), "the new tail is a hole");
        CHECK_EQ_U64(block_image_size(r.img), 2 * IMAGE_SIZE, "the image's size follows");
        CHECK_EQ_U64(guest_cfg_rd(&r.g, 0, 8), 2 * IMAGE_SIZE / 512, "capacity in the configuration space follows");
        CHECK(guest_rd(&r.g, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG, "configuration-change interrupt");
        CHECK(guest_rd(&r.g, VIRTIO_MMIO_CONFIG_GENERATION) != generation, "ConfigGeneration changed");
        guest_wr(&r.g, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);

        memset(guest_ptr(&r.g, r.data), 0x77, 512);
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_OUT, 2 * IMAGE_SIZE / 512 - 1, r.data, 512, NULL), VIRTIO_BLK_S_OK,
                     "a write to the new last sector: OK");
        CHECK_EQ_U64(request(&r, VIRTIO_BLK_T_IN, IMAGE_SIZE / 512, r.data, 512, NULL), VIRTIO_BLK_S_OK,
                     "a read of the new tail: OK");
        CHECK(((uint8_t *) guest_ptr(&r.g, r.data))[0] == 0, "the new tail reads as zeros");
        CHECK(file_matches_pattern(r.path, IMAGE_SIZE - 4096, 4096), "the old data is kept");

        guest_wr(&r.g, VIRTIO_MMIO_INTERRUPT_ACK, guest_rd(&r.g, VIRTIO_MMIO_INTERRUPT_STATUS));
        CHECK(virtio_blk_resize(r.dev, 2 * IMAGE_SIZE) == 0, "the same size again: a no-op");
        CHECK(!(guest_rd(&r.g, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG), "and no interrupt");
        rig_stop(&r);
        unlink(r.path);

        /* readonly and snapshot images never grow. */
        BlockOptions o = { .readonly = true };
        _cleanup_close_ int fd2 = make_image(r.path, sizeof(r.path), IMAGE_SIZE);
        CHECK(rig_start(&r, &o, 1ULL << VIRTIO_BLK_F_RO) == 0, "readonly device up");
        CHECK(virtio_blk_resize(r.dev, 2 * IMAGE_SIZE) == -EROFS, "readonly: -EROFS");
        rig_stop(&r);
        o = (BlockOptions) { .snapshot = true };
        CHECK(rig_start(&r, &o, ~0ULL & 0xffffff) == 0, "snapshot device up");
        CHECK(virtio_blk_resize(r.dev, 2 * IMAGE_SIZE) == -EOPNOTSUPP, "snapshot: -EOPNOTSUPP");
        CHECK_EQ_U64(guest_cfg_rd(&r.g, 0, 8), IMAGE_SIZE / 512, "the capacity is unchanged");
        rig_stop(&r);
        CHECK(fstat(fd2, &st) == 0 && (uint64_t) st.st_size == IMAGE_SIZE, "the file is unchanged");
        unlink(r.path);
}

int main(void) {
        test_basics();
        test_hostile();
        test_many_in_flight();
        test_readonly();
        test_snapshot();
        test_discard();
        test_cache_none();
        test_open_checks();
        test_resize();
        return tap_finish();
}
