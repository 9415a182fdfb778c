/* SPDX-License-Identifier: MIT */
/*
 * virtio-gpu through its slot, with the test playing Linux's virtio_gpu
 * driver: the display info, a resource created, backed by guest RAM in
 * pieces, shown, transferred and flushed puts the right pixels in the
 * framebuffer (every accepted format converted to x8r8g8b8) and marks
 * exactly the pages it wrote dirty; hostile requests (bad ids, rectangles
 * past the resource or wrapping around, backing outside RAM or
 * overlapping, huge sizes, unknown and truncated commands) get the spec's
 * error responses and leave the framebuffer alone; the cursor queue is
 * consumed; save/load keeps the resources and refuses a corrupt state.
 */

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio_gpu.h"
#include "guest.h"
#include "macro.h"
#include "tap.h"

#define W 64U
#define H 48U
#define STRIDE (W * 4U)
#define REQ_MAX 0x2000U

static DeviceHost host = { .fb_width = W, .fb_height = H };

typedef struct Gpu {
        Guest g;
        GuestQueue ctrl, cursor;
        uint64_t req, extra, resp; /* guest buffers for one request */
        uint64_t backing[2]; /* resource 1's backing: rows 0..23, then rows 24..47 elsewhere */
        uint8_t fb_before[GUEST_FB_SIZE];
} Gpu;

static void put32(uint8_t *p, uint32_t v) {
        v = htole32(v);
        memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v) {
        v = htole64(v);
        memcpy(p, &v, 8);
}

static uint32_t get32(const uint8_t *p) {
        uint32_t v;
        memcpy(&v, p, 4);
        return le32toh(v);
}

/*
 * Sends one controlq request: 'len' bytes of 'req' (and 'extra_len' bytes of
 * 'extra' in a second readable descriptor), a writable response of
 * resp_len bytes. Returns the response type (0 when nothing was written).
 */
static uint32_t send_split(Gpu *t, const uint8_t *req, uint32_t len, const uint8_t *extra, uint32_t extra_len,
                           uint32_t resp_len, uint32_t *ret_written) {
        Guest *g = &t->g;
        uint32_t id, written = 0;
        uint16_t resp_desc = extra_len ? 2 : 1;

        memcpy(guest_ptr(g, t->req), req, len);
        memset(guest_ptr(g, t->resp), 0, 512);
        guest_desc(g, &t->ctrl, 0, t->req, len, VIRTQ_DESC_F_NEXT, 1);
        if (extra_len) {
                memcpy(guest_ptr(g, t->extra), extra, extra_len);
                guest_desc(g, &t->ctrl, 1, t->extra, extra_len, VIRTQ_DESC_F_NEXT, 2);
        }
        guest_desc(g, &t->ctrl, resp_desc, t->resp, resp_len, VIRTQ_DESC_F_WRITE, 0);
        guest_publish(g, &t->ctrl, 0);
        guest_kick(g, &t->ctrl);
        if (!guest_get_used(g, &t->ctrl, &id, &written))
                return 0xdead;
        if (ret_written)
                *ret_written = written;
        return written >= 4 ? get32(guest_ptr(g, t->resp)) : 0;
}

static uint32_t send(Gpu *t, const uint8_t *req, uint32_t len) {
        return send_split(t, req, len, NULL, 0, 512, NULL);
}

static void hdr(uint8_t *req, uint32_t type) {
        memset(req, 0, 24);
        put32(req, type);
}

static uint32_t create_2d(Gpu *t, uint32_t id, uint32_t format, uint32_t width, uint32_t height) {
        uint8_t req[40];

        hdr(req, VIRTIO_GPU_CMD_RESOURCE_CREATE_2D);
        put32(req + 24, id);
        put32(req + 28, format);
        put32(req + 32, width);
        put32(req + 36, height);
        return send(t, req, sizeof(req));
}

static uint32_t simple(Gpu *t, uint32_t type, uint32_t id) {
        uint8_t req[32] = {};

        hdr(req, type);
        put32(req + 24, id);
        return send(t, req, sizeof(req));
}

/* SET_SCANOUT and RESOURCE_FLUSH share a layout: rect, then two words. */
static uint32_t rect_cmd(Gpu *t, uint32_t type, uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint32_t a,
                         uint32_t b) {
        uint8_t req[48];

        hdr(req, type);
        put32(req + 24, x);
        put32(req + 28, y);
        put32(req + 32, w);
        put32(req + 36, h);
        put32(req + 40, a);
        put32(req + 44, b);
        return send(t, req, sizeof(req));
}

static uint32_t set_scanout(Gpu *t, uint32_t scanout, uint32_t id, uint32_t x, uint32_t y, uint32_t w, uint32_t h) {
        return rect_cmd(t, VIRTIO_GPU_CMD_SET_SCANOUT, x, y, w, h, scanout, id);
}

static uint32_t flush(Gpu *t, uint32_t id, uint32_t x, uint32_t y, uint32_t w, uint32_t h) {
        return rect_cmd(t, VIRTIO_GPU_CMD_RESOURCE_FLUSH, x, y, w, h, id, 0);
}

static uint32_t transfer(Gpu *t, uint32_t id, uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint64_t offset) {
        uint8_t req[56] = {};

        hdr(req, VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D);
        put32(req + 24, x);
        put32(req + 28, y);
        put32(req + 32, w);
        put32(req + 36, h);
        put64(req + 40, offset);
        put32(req + 48, id);
        return send(t, req, sizeof(req));
}

/* ATTACH_BACKING with its entries in a second descriptor, as Linux sends it. */
static uint32_t attach(Gpu *t, uint32_t id, const uint64_t *addr, const uint32_t *len, uint32_t n) {
        uint8_t req[32] = {}, entries[16 * 8] = {};

        hdr(req, VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING);
        put32(req + 24, id);
        put32(req + 28, n);
        for (uint32_t i = 0; i < n && i < 8; i++) {
                put64(entries + 16 * i, addr[i]);
                put32(entries + 16 * i + 8, len[i]);
        }
        return send_split(t, req, sizeof(req), entries, 16 * MIN(n, 8U), 512, NULL);
}

/* The pixel the test's backing holds at (x, y), as B8G8R8X8 bytes. */
static void pattern(uint32_t x, uint32_t y, uint32_t salt, uint8_t ret[4]) {
        ret[0] = (uint8_t) (x * 3 + salt);
        ret[1] = (uint8_t) (y * 5 + salt);
        ret[2] = (uint8_t) (x ^ y ^ salt);
        ret[3] = 0x77;
}

static uint8_t *backing_pixel(Gpu *t, uint32_t x, uint32_t y) {
        uint64_t base = y < H / 2 ? t->backing[0] : t->backing[1];
        return (uint8_t *) guest_ptr(&t->g, base) + (y % (H / 2)) * STRIDE + x * 4;
}

static void fill_backing(Gpu *t, uint32_t salt) {
        for (uint32_t y = 0; y < H; y++)
                for (uint32_t x = 0; x < W; x++)
                        pattern(x, y, salt, backing_pixel(t, x, y));
}

/* Whether the framebuffer shows the pattern 'salt' (alpha/X byte 0) inside the rectangle. */
static bool fb_shows(Gpu *t, uint32_t salt, uint32_t x0, uint32_t y0, uint32_t w, uint32_t h) {
        for (uint32_t y = y0; y < y0 + h; y++)
                for (uint32_t x = x0; x < x0 + w; x++) {
                        uint8_t want[4];
                        pattern(x, y, salt, want);
                        want[3] = 0;
                        if (memcmp(t->g.mem.fb + y * STRIDE + x * 4, want, 4) != 0)
                                return false;
                }
        return true;
}

static uint64_t take_dirty(Gpu *t) {
        return physmem_fb_take_dirty(&t->g.mem, 0);
}

static void snapshot(Gpu *t) {
        memcpy(t->fb_before, t->g.mem.fb, GUEST_FB_SIZE);
}

static bool fb_unchanged(Gpu *t) {
        return memcmp(t->fb_before, t->g.mem.fb, GUEST_FB_SIZE) == 0;
}

static void test_display_info(Gpu *t) {
        uint8_t req[24];
        uint32_t written = 0;
        const uint8_t *resp = guest_ptr(&t->g, t->resp);

        hdr(req, VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
        put32(req + 4, VIRTIO_GPU_FLAG_FENCE);
        put64(req + 8, 0x1122334455667788ULL);
        CHECK_EQ_U64(send_split(t, req, sizeof(req), NULL, 0, 512, &written), VIRTIO_GPU_RESP_OK_DISPLAY_INFO,
                     "GET_DISPLAY_INFO answered");
        CHECK_EQ_U64(written, VIRTIO_GPU_DISPLAY_INFO_SIZE, "the whole display info written");
        CHECK(get32(resp + 4) == VIRTIO_GPU_FLAG_FENCE && get32(resp + 8) == 0x55667788 &&
                      get32(resp + 12) == 0x11223344,
              "the fence is echoed");
        CHECK(get32(resp + 24) == 0 && get32(resp + 28) == 0 && get32(resp + 32) == W && get32(resp + 36) == H &&
                      get32(resp + 40) == 1,
              "scanout 0: the framebuffer's %ux%u, enabled", W, H);
        CHECK_EQ_U64(get32(resp + 24 + 24 + 16), 0, "scanout 1 disabled");
        CHECK(guest_fb_intact(&t->g), "nothing drawn yet");
}

static void test_draw(Gpu *t) {
        uint64_t addr[2] = { t->backing[0], t->backing[1] };
        uint32_t len[2] = { STRIDE * H / 2, STRIDE * H / 2 };

        CHECK_EQ_U64(create_2d(t, 1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, W, H), VIRTIO_GPU_RESP_OK_NODATA,
                     "RESOURCE_CREATE_2D %ux%u B8G8R8X8", W, H);
        CHECK_EQ_U64(attach(t, 1, addr, len, 2), VIRTIO_GPU_RESP_OK_NODATA, "ATTACH_BACKING in two pieces");
        fill_backing(t, 1);
        CHECK(guest_fb_intact(&t->g), "nothing shown before SET_SCANOUT");
        CHECK_EQ_U64(set_scanout(t, 0, 1, 0, 0, W, H), VIRTIO_GPU_RESP_OK_NODATA, "SET_SCANOUT");
        CHECK(fb_shows(t, 0, 0, 0, 0, 0) && t->g.mem.fb[0] == 0 && t->g.mem.fb[STRIDE * H - 1] == 0,
              "the scanout shows the new (black) resource");
        take_dirty(t);

        CHECK_EQ_U64(transfer(t, 1, 0, 0, W, H, 0), VIRTIO_GPU_RESP_OK_NODATA, "TRANSFER_TO_HOST_2D, whole");
        CHECK_EQ_U64(take_dirty(t), 0, "a transfer alone draws nothing");
        CHECK_EQ_U64(flush(t, 1, 0, 0, W, H), VIRTIO_GPU_RESP_OK_NODATA, "RESOURCE_FLUSH, whole");
        CHECK(fb_shows(t, 1, 0, 0, W, H), "the framebuffer shows the guest's pixels, across both backing pieces");
        CHECK_EQ_U64(take_dirty(t), 0x7, "the three framebuffer pages are dirty");
        CHECK(t->g.mem.fb[STRIDE * H] == GUEST_FB_PATTERN, "nothing written past the display");

        /* A small damage rectangle, as fbcon sends for a few characters: rows 20..23 live in page 1. */
        fill_backing(t, 2);
        uint64_t offset = 20 * STRIDE + 10 * 4;
        CHECK_EQ_U64(transfer(t, 1, 10, 20, 8, 4, offset), VIRTIO_GPU_RESP_OK_NODATA, "transfer of 8x4 at 10,20");
        CHECK_EQ_U64(flush(t, 1, 10, 20, 8, 4), VIRTIO_GPU_RESP_OK_NODATA, "flush of 8x4 at 10,20");
        CHECK(fb_shows(t, 2, 10, 20, 8, 4), "the rectangle changed");
        CHECK(fb_shows(t, 1, 0, 0, W, 20) && fb_shows(t, 1, 0, 24, W, H - 24) && fb_shows(t, 1, 0, 20, 10, 4) &&
                      fb_shows(t, 1, 18, 20, W - 18, 4),
              "nothing around it did");
        CHECK_EQ_U64(take_dirty(t), 0x2, "only page 1 is dirty");

        /* A rectangle straddling the two backing pieces (rows 22..25). */
        CHECK_EQ_U64(transfer(t, 1, 0, 22, W, 4, 22 * STRIDE), VIRTIO_GPU_RESP_OK_NODATA, "transfer across pieces");
        CHECK_EQ_U64(flush(t, 1, 0, 22, W, 4), VIRTIO_GPU_RESP_OK_NODATA, "flush across pieces");
        CHECK(fb_shows(t, 2, 0, 22, W, 4), "rows from both pieces arrive");
        transfer(t, 1, 0, 0, W, H, 0);
        flush(t, 1, 0, 0, W, H);
}

static void test_formats(Gpu *t) {
        static const struct {
                uint32_t format;
                uint8_t b, g, r; /* where the test puts blue, green, red */
        } formats[] = {
                { VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM, 0, 1, 2 }, { VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 0, 1, 2 },
                { VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM, 3, 2, 1 }, { VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM, 3, 2, 1 },
                { VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM, 2, 1, 0 }, { VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM, 2, 1, 0 },
                { VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM, 1, 2, 3 }, { VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM, 1, 2, 3 },
        };
        uint64_t px = guest_alloc(&t->g, 4096, 4096);
        uint32_t len = 4;

        for (size_t i = 0; i < ELEMENTSOF(formats); i++) {
                uint32_t id = 100 + (uint32_t) i;
                uint8_t *p = guest_ptr(&t->g, px);

                memset(p, 0xee, 4);
                p[formats[i].b] = 0x11;
                p[formats[i].g] = 0x22;
                p[formats[i].r] = 0x33;
                CHECK_EQ_U64(create_2d(t, id, formats[i].format, 1, 1), VIRTIO_GPU_RESP_OK_NODATA, "format %u accepted",
                             formats[i].format);
                attach(t, id, &px, &len, 1);
                transfer(t, id, 0, 0, 1, 1, 0);
                set_scanout(t, 0, id, 0, 0, 1, 1);
                const uint8_t *fb = t->g.mem.fb;
                CHECK(fb[0] == 0x11 && fb[1] == 0x22 && fb[2] == 0x33 && fb[3] == 0,
                      "format %u converted to x8r8g8b8 (%02x %02x %02x %02x)", formats[i].format, fb[0], fb[1], fb[2],
                      fb[3]);
                CHECK_EQ_U64(simple(t, VIRTIO_GPU_CMD_RESOURCE_UNREF, id), VIRTIO_GPU_RESP_OK_NODATA, "unref");
        }
        CHECK_EQ_U64(create_2d(t, 99, 5, 4, 4), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "an unknown format refused");
        CHECK_EQ_U64(create_2d(t, 99, 0, 4, 4), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "format 0 refused");
        /* Back to resource 1 for the hostile part. */
        set_scanout(t, 0, 1, 0, 0, W, H);
}

#define REFUSED(call, want, ...)                                                                      \
        do {                                                                                          \
                snapshot(t);                                                                          \
                take_dirty(t);                                                                        \
                CHECK_EQ_U64((call), (want), __VA_ARGS__);                                            \
                CHECK(fb_unchanged(t) && take_dirty(t) == 0, "... and the framebuffer is untouched"); \
        } while (0)

static void test_hostile_resources(Gpu *t) {
        REFUSED(create_2d(t, 0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 4, 4), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID,
                "resource id 0 refused");
        REFUSED(create_2d(t, 1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 4, 4), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID,
                "an id in use refused");
        REFUSED(create_2d(t, 2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 0, 4), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
                "width 0 refused");
        REFUSED(create_2d(t, 2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 0xffffffff, 0xffffffff),
                VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "a 4Gx4G resource refused");
        REFUSED(create_2d(t, 2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 8192, 8192), VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY,
                "8192x8192 (256 MiB) is over the host memory cap");
        CHECK_EQ_U64(create_2d(t, 2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 4096, 4096), VIRTIO_GPU_RESP_OK_NODATA,
                     "a 64 MiB resource fits");
        REFUSED(create_2d(t, 3, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 4096, 4096), VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY,
                "a second one does not");
        CHECK_EQ_U64(simple(t, VIRTIO_GPU_CMD_RESOURCE_UNREF, 2), VIRTIO_GPU_RESP_OK_NODATA, "unref gives it back");
        CHECK_EQ_U64(create_2d(t, 3, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 4096, 4096), VIRTIO_GPU_RESP_OK_NODATA,
                     "... so it fits again");
        simple(t, VIRTIO_GPU_CMD_RESOURCE_UNREF, 3);
        REFUSED(simple(t, VIRTIO_GPU_CMD_RESOURCE_UNREF, 77), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID,
                "unref of an unknown id refused");

        uint8_t req[64] = {};
        uint32_t written = 1;
        hdr(req, 0x0999);
        REFUSED(send(t, req, 24), VIRTIO_GPU_RESP_ERR_UNSPEC, "an unknown command gets ERR_UNSPEC");
        hdr(req, VIRTIO_GPU_CMD_RESOURCE_CREATE_2D);
        put32(req + 24, 9);
        REFUSED(send(t, req, 30), VIRTIO_GPU_RESP_ERR_UNSPEC, "a truncated command gets ERR_UNSPEC");
        REFUSED(send(t, req, 10), VIRTIO_GPU_RESP_ERR_UNSPEC, "a request shorter than the header too");
        hdr(req, VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
        send_split(t, req, 24, NULL, 0, 16, &written);
        CHECK_EQ_U64(written, 0, "no room for a response header: returned with nothing written");
        REFUSED(send_split(t, req, 24, NULL, 0, 100, NULL), VIRTIO_GPU_RESP_ERR_UNSPEC,
                "no room for the display info: ERR_UNSPEC");
}

static void test_hostile_backing(Gpu *t) {
        uint64_t ram_end = GUEST_RAM_BASE + GUEST_RAM_SIZE, a = t->backing[0];
        uint64_t addr[2];
        uint32_t len[2];

        CHECK_EQ_U64(create_2d(t, 5, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 16, 16), VIRTIO_GPU_RESP_OK_NODATA,
                     "a resource to back");
        addr[0] = a;
        len[0] = 1024;
        REFUSED(attach(t, 6, addr, len, 1), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID, "backing for an unknown id");
        addr[0] = ram_end - 512;
        REFUSED(attach(t, 5, addr, len, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "an entry crossing RAM's end");
        addr[0] = GUEST_FB_BASE;
        REFUSED(attach(t, 5, addr, len, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "an entry in the framebuffer");
        addr[0] = UINT64_MAX - 100;
        REFUSED(attach(t, 5, addr, len, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "an entry wrapping around");
        addr[0] = a;
        len[0] = 0xffffffff;
        REFUSED(attach(t, 5, addr, len, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "a 4 GiB entry");
        len[0] = 0;
        REFUSED(attach(t, 5, addr, len, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "an empty entry");
        addr[0] = a;
        addr[1] = a + 512;
        len[0] = len[1] = 1024;
        REFUSED(attach(t, 5, addr, len, 2), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "overlapping entries");
        REFUSED(attach(t, 5, addr, len, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "no entries");

        uint8_t req[32] = {};
        hdr(req, VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING);
        put32(req + 24, 5);
        put32(req + 28, 0xffffffff);
        REFUSED(send(t, req, sizeof(req)), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "4G entries announced, none sent");

        /* Without backing, a transfer has nothing to read. */
        REFUSED(transfer(t, 5, 0, 0, 16, 16, 0), VIRTIO_GPU_RESP_ERR_UNSPEC, "transfer without backing");
        addr[0] = a;
        len[0] = 512; /* half of what 16x16 needs */
        CHECK_EQ_U64(attach(t, 5, addr, len, 1), VIRTIO_GPU_RESP_OK_NODATA, "a short backing is attached");
        REFUSED(attach(t, 5, addr, len, 1), VIRTIO_GPU_RESP_ERR_UNSPEC, "a second backing refused");
        CHECK_EQ_U64(transfer(t, 5, 0, 0, 16, 8, 0), VIRTIO_GPU_RESP_OK_NODATA, "the rows it has transfer");
        REFUSED(transfer(t, 5, 0, 0, 16, 9, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "a row past its end refused");
        REFUSED(transfer(t, 5, 0, 0, 1, 1, 512), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "an offset at its end");
        REFUSED(transfer(t, 5, 0, 0, 1, 1, UINT64_MAX - 2), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "a huge offset");
        CHECK_EQ_U64(simple(t, VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, 5), VIRTIO_GPU_RESP_OK_NODATA, "detach");
        REFUSED(simple(t, VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, 5), VIRTIO_GPU_RESP_ERR_UNSPEC, "detach twice");
        REFUSED(transfer(t, 5, 0, 0, 1, 1, 0), VIRTIO_GPU_RESP_ERR_UNSPEC, "transfer after detach");
        simple(t, VIRTIO_GPU_CMD_RESOURCE_UNREF, 5);
}

static void test_hostile_rects(Gpu *t) {
        REFUSED(transfer(t, 1, W - 4, 0, 8, 1, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "transfer past the right");
        REFUSED(transfer(t, 1, 0, H, 1, 1, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "transfer below the bottom");
        REFUSED(transfer(t, 1, 0xffffffff, 0, 2, 1, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
                "transfer with x + width wrapping");
        REFUSED(transfer(t, 1, 0, 1, 1, 0xffffffff, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
                "transfer with y + height wrapping");
        REFUSED(transfer(t, 42, 0, 0, 1, 1, 0), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID, "transfer to unknown id");
        REFUSED(flush(t, 1, 1, 1, 0xffffffff, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "flush with x wrapping");
        REFUSED(flush(t, 1, 0, 0, W, H + 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "flush past the bottom");
        REFUSED(flush(t, 42, 0, 0, 1, 1), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID, "flush of an unknown id");
        REFUSED(set_scanout(t, 1, 1, 0, 0, W, H), VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID, "scanout 1 refused");
        REFUSED(set_scanout(t, 0xffffffff, 1, 0, 0, W, H), VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID,
                "scanout 4G refused");
        REFUSED(set_scanout(t, 0, 42, 0, 0, W, H), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID, "scanout of unknown id");
        REFUSED(set_scanout(t, 0, 1, 1, 0, W, H), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
                "scanout rectangle past the resource");
        REFUSED(set_scanout(t, 0, 1, 0xfffffff0, 0, 0x20, 1), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
                "scanout rectangle wrapping");
        REFUSED(set_scanout(t, 0, 1, 0, 0, 0, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "an empty scanout");
        CHECK(fb_shows(t, 2, 0, 0, W, H) && !guest_needs_reset(&t->g), "the picture and the device survive");
}

static void test_cursor(Gpu *t) {
        uint8_t *p = guest_ptr(&t->g, t->req);
        uint32_t id, len = 99;

        snapshot(t);
        memset(p, 0xff, 56);
        put32(p, VIRTIO_GPU_CMD_UPDATE_CURSOR);
        guest_add_buf(&t->g, &t->cursor, t->req, 56, false);
        guest_kick(&t->g, &t->cursor);
        CHECK(guest_get_used(&t->g, &t->cursor, &id, &len) && len == 0, "the cursorq buffer comes back empty");
        CHECK(fb_unchanged(t), "no cursor drawn");
}

static int save(void *slot, StateWriter *w) {
        *w = (StateWriter){};
        return virtio_mmio_device.save(slot, w);
}

static void test_state(Gpu *t, void *slot, const DeviceContext *ctx) {
        const DeviceDescriptor *d = &virtio_mmio_device;
        StateWriter w1, w2, w3;
        void *b = NULL;

        CHECK_EQ_U64(save(slot, &w1), 0, "save with resource 1 shown");
        CHECK(w1.size > W * H * 4, "the state holds the resource's pixels (%zu bytes)", w1.size);
        CHECK_EQ_U64(d->create(ctx, &b), 0, "a second gpu");
        StateReader r = state_reader(w1.data, w1.size);
        CHECK_EQ_U64(d->load(b, &r), 0, "load into it");
        CHECK_EQ_U64(save(b, &w2), 0, "save it again");
        CHECK(w1.size == w2.size && memcmp(w1.data, w2.data, w1.size) == 0, "the same bytes");

        memset(t->g.mem.fb, 0, STRIDE * H);
        guest_attach(&t->g, virtio_mmio_slot_transport(b));
        CHECK_EQ_U64(flush(t, 1, 0, 0, W, H), VIRTIO_GPU_RESP_OK_NODATA, "the loaded gpu takes a flush");
        CHECK(fb_shows(t, 2, 0, 0, W, H), "... and repaints resource 1");
        state_writer_done(&w2);
        CHECK_EQ_U64(save(b, &w2), 0, "the state the refused loads below must leave alone");

        /* Corrupt states: short, and a backing entry moved out of RAM. */
        r = state_reader(w1.data, w1.size - 5);
        CHECK(d->load(b, &r) < 0, "a truncated state refused");
        uint64_t first = htole64(t->backing[0]), bad = htole64(0x1000);
        uint8_t *entry = memmem(w1.data, w1.size, &first, sizeof(first));
        CHECK(entry != NULL, "the state names the backing's first entry");
        if (entry)
                memcpy(entry, &bad, sizeof(bad));
        r = state_reader(w1.data, w1.size);
        CHECK_EQ_U64(d->load(b, &r), (uint64_t) -ERANGE, "a backing outside RAM refused");
        CHECK_EQ_U64(save(b, &w3), 0, "save after the refusals");
        CHECK(w3.size == w2.size && memcmp(w3.data, w2.data, w2.size) == 0, "refused loads changed nothing");

        guest_attach(&t->g, virtio_mmio_slot_transport(slot));
        d->free(b);
        state_writer_done(&w1);
        state_writer_done(&w2);
        state_writer_done(&w3);
}

static void test_off_and_reset(Gpu *t, void *slot) {
        CHECK_EQ_U64(set_scanout(t, 0, 0, 0, 0, 0, 0), VIRTIO_GPU_RESP_OK_NODATA, "SET_SCANOUT to resource 0");
        CHECK(t->g.mem.fb[0] == 0 && t->g.mem.fb[STRIDE * H - 1] == 0 && take_dirty(t) == 0x7, "the screen goes black");
        snapshot(t);
        CHECK_EQ_U64(flush(t, 1, 0, 0, W, H), VIRTIO_GPU_RESP_OK_NODATA, "a flush of a resource not shown");
        CHECK(fb_unchanged(t), "... draws nothing");
        CHECK_EQ_U64(simple(t, VIRTIO_GPU_CMD_RESOURCE_UNREF, 1), VIRTIO_GPU_RESP_OK_NODATA, "unref resource 1");
        virtio_mmio_reset(virtio_mmio_slot_transport(slot));
        CHECK_EQ_U64(guest_rd(&t->g, VIRTIO_MMIO_STATUS), 0, "reset");
}

int main(void) {
        const DeviceDescriptor *d = &virtio_mmio_device;
        static Gpu t;
        void *slot = NULL;

        if (guest_init(&t.g) < 0)
                return 1;
        t.g.mem.fb_dirty_words = 1;
        t.g.mem.fb_dirty = calloc(1, sizeof(uint64_t));
        DeviceContext ctx = {
                .host = &host,
                .mem = &t.g.mem,
                .base = GUEST_MMIO_BASE,
                .size = d->size,
                .irq_number = 1,
                .irq = guest_irq(&t.g),
                .variant = &virtio_gpu_type,
        };
        DeviceHost no_display = {};
        DeviceContext headless = ctx;
        headless.host = &no_display;
        CHECK_EQ_U64(d->create(&headless, &slot), (uint64_t) -EINVAL, "no virtio-gpu without a framebuffer");
        CHECK_EQ_U64(d->create(&ctx, &slot), 0, "create the gpu's slot");
        if (!slot || !virtio_mmio_slot_backend(slot, &virtio_gpu_type))
                return tap_finish();
        guest_attach(&t.g, virtio_mmio_slot_transport(slot));

        CHECK_EQ_U64(guest_rd(&t.g, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_GPU, "DeviceID 16");
        CHECK_EQ_U64(guest_device_features(&t.g), 1ULL << VIRTIO_F_VERSION_1, "no virgl, no EDID: only VERSION_1");
        CHECK_EQ_U64(guest_cfg_rd(&t.g, 8, 4), 1, "num_scanouts 1");
        CHECK_EQ_U64(guest_cfg_rd(&t.g, 12, 4), 0, "num_capsets 0");
        guest_negotiate(&t.g, 1ULL << VIRTIO_F_VERSION_1);
        CHECK(guest_queue_setup(&t.g, &t.ctrl, 0, 16), "controlq ready");
        CHECK(guest_queue_setup(&t.g, &t.cursor, 1, 16), "cursorq ready");
        CHECK(guest_driver_ok(&t.g) & VIRTIO_STATUS_DRIVER_OK, "DRIVER_OK");
        t.req = guest_alloc(&t.g, REQ_MAX, 16);
        t.extra = guest_alloc(&t.g, REQ_MAX, 16);
        t.resp = guest_alloc(&t.g, 512, 16);
        t.backing[1] = guest_alloc(&t.g, STRIDE * H / 2, 4096);
        guest_alloc(&t.g, 4096, 4096); /* a gap: the two pieces are not contiguous, and in reverse order */
        t.backing[0] = guest_alloc(&t.g, STRIDE * H / 2, 4096);

        test_display_info(&t);
        test_draw(&t);
        test_formats(&t);
        test_hostile_resources(&t);
        test_hostile_backing(&t);
        test_hostile_rects(&t);
        test_cursor(&t);
        test_state(&t, slot, &ctx);
        test_off_and_reset(&t, slot);

        d->free(slot);
        free((void *) t.g.mem.fb_dirty);
        guest_done(&t.g);
        return tap_finish();
}
