/* SPDX-License-Identifier: MIT */

/* liborrery-client without a bus: names, rectangle clipping, framebuffer validation. */

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>

#include "orrery-client-internal.h"
#include "tap.h"

static void test_names(void) {
        CHECK(streq_ptr(orrery_vm_name_from_bus_name("org.orrery.VM.demo"), "demo") &&
                      streq_ptr(orrery_vm_name_from_bus_name("org.orrery.VM.my-vm"), "my-vm"),
              "bus name -> VM name");
        CHECK(!orrery_vm_name_from_bus_name("org.orrery.VM.") && !orrery_vm_name_from_bus_name("org.orrery.VM.-ab") &&
                      !orrery_vm_name_from_bus_name("org.orrery.VM.a.b") &&
                      !orrery_vm_name_from_bus_name("org.orrery.VMdemo") && !orrery_vm_name_from_bus_name(":1.5") &&
                      !orrery_vm_name_from_bus_name(NULL),
              "non-VM and invalid bus names -> NULL");
        CHECK(orrery_chardev_id_is_valid("serial0") && orrery_chardev_id_is_valid("guest_agent") &&
                      orrery_chardev_id_is_valid("0"),
              "valid chardev ids");
        CHECK(!orrery_chardev_id_is_valid("") && !orrery_chardev_id_is_valid("a/b") &&
                      !orrery_chardev_id_is_valid("a.b") && !orrery_chardev_id_is_valid(NULL),
              "invalid chardev ids");
}

static void test_clip(void) {
        const OrreryRect in[] = {
                { 0, 0, 10, 10 },
                { 95, 45, 10, 10 },
                { 100, 0, 1, 1 },
                { 0, 50, 1, 1 },
                { UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX },
                { 1, 1, UINT32_MAX, UINT32_MAX },
                { 5, 5, 0, 1 },
                { 5, 5, 1, 0 },
        };
        OrreryRect out[ELEMENTSOF(in)];
        size_t n;

        n = orrery_rects_clip(in, ELEMENTSOF(in), 100, 50, out);
        CHECK(n == 3, "three of eight rectangles survive (%zu)", n);
        CHECK(out[0].x == 0 && out[0].width == 10 && out[0].height == 10, "inside: unchanged");
        CHECK(out[1].x == 95 && out[1].y == 45 && out[1].width == 5 && out[1].height == 5, "overhang: clipped");
        CHECK(out[2].x == 1 && out[2].y == 1 && out[2].width == 99 && out[2].height == 49, "overflowing size: clipped");
        CHECK(orrery_rects_clip(in, ELEMENTSOF(in), 0, 0, out) == 0, "nothing survives a 0x0 screen");
}

static int new_memfd(size_t size, unsigned seals) {
        int fd = memfd_create("test-fb", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t) size) < 0 || (seals && fcntl(fd, F_ADD_SEALS, seals) < 0)) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

static void test_mapping(void) {
        const unsigned seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE;
        OrreryMapping m = {};
        int fd, pfd[2], r;

        CHECK(orrery_format_bytes_per_pixel(ORRERY_FORMAT_XRGB8888) == 4 &&
                      orrery_format_bytes_per_pixel(ORRERY_FORMAT_RGB565) == 2 && orrery_format_bytes_per_pixel(0) == 0,
              "bytes per pixel");

        fd = new_memfd(64 * 48 * 4, seals);
        CHECK(fd >= 0, "sealed memfd");
        if (fd < 0)
                return;
        r = orrery_mapping_map(fd, 0, 64, 48, 256, ORRERY_FORMAT_XRGB8888, &m);
        CHECK(r == 0 && m.fb.data && m.fb.width == 64 && m.fb.bytes_per_pixel == 4, "exact fit maps (%d)", r);
        orrery_mapping_unmap(&m);
        CHECK(!m.base && !m.fb.data, "unmap clears");

        CHECK(orrery_mapping_map(fd, 0, 64, 49, 256, ORRERY_FORMAT_XRGB8888, &m) == -EBADMSG, "one line too many");
        CHECK(orrery_mapping_map(fd, 4, 64, 48, 256, ORRERY_FORMAT_XRGB8888, &m) == -EBADMSG, "offset past the end");
        CHECK(orrery_mapping_map(fd, UINT64_MAX - 8, 64, 48, 256, ORRERY_FORMAT_XRGB8888, &m) == -EBADMSG,
              "overflowing offset");
        CHECK(orrery_mapping_map(fd, 0, 64, 48, 255, ORRERY_FORMAT_XRGB8888, &m) == -EBADMSG, "stride < width * bpp");
        CHECK(orrery_mapping_map(fd, 0, 0, 48, 256, ORRERY_FORMAT_XRGB8888, &m) == -EBADMSG, "zero width");
        CHECK(orrery_mapping_map(fd, 0, 64, 48, 256, 0x12345678, &m) == -EPROTONOSUPPORT, "unknown format");
        CHECK(orrery_mapping_map(fd, 0, 32, 8, 256, ORRERY_FORMAT_RGB565, &m) == 0 && m.fb.bytes_per_pixel == 2,
              "a smaller RGB565 view fits");
        orrery_mapping_unmap(&m);
        /* Non-page-aligned offset: data points inside the mapping. */
        r = orrery_mapping_map(fd, 256 + 8, 32, 8, 256, ORRERY_FORMAT_XRGB8888, &m);
        CHECK(r == 0 && m.fb.data == (const uint8_t *) m.base + 264, "unaligned offset (%d)", r);
        orrery_mapping_unmap(&m);
        close(fd);

        fd = new_memfd(64 * 48 * 4, 0);
        CHECK(fd >= 0 && orrery_mapping_map(fd, 0, 64, 48, 256, ORRERY_FORMAT_XRGB8888, &m) == -EPERM,
              "unsealed memfd refused: it could shrink under us");
        if (fd >= 0)
                close(fd);

        CHECK(pipe2(pfd, O_CLOEXEC) == 0 && orrery_mapping_map(pfd[0], 0, 1, 1, 4, ORRERY_FORMAT_XRGB8888, &m) == -EBADMSG,
              "a pipe is not a framebuffer");
        close(pfd[0]);
        close(pfd[1]);
}

int main(void) {
        test_names();
        test_clip();
        test_mapping();
        return tap_finish();
}
