/* SPDX-License-Identifier: MIT */
/*
 * The boot loader's placement of --bios, --kernel and --initrd in RAM, and
 * its check of the kernel's Image header: a usual layout, images that do
 * not fit, and a header whose image size would wrap the address sum (found
 * by fuzz-boot.c: the kernel was then copied past the end of RAM).
 */

#include <errno.h>
#include <string.h>

#include "tap.h"
#include "machine/boot.h"
#include "machine/memmap.h"

#define MiB (1ULL << 20)

static void image_header(uint8_t h[BOOT_IMAGE_HEADER_SIZE], uint64_t image_size) {
        memset(h, 0, BOOT_IMAGE_HEADER_SIZE);
        memcpy(h + 16, &image_size, 8);
        memcpy(h + 56, "RSC\x05", 4);
}

int main(void) {
        uint8_t h[BOOT_IMAGE_HEADER_SIZE];
        uint64_t image_size = 0;
        BootLayout l;

        image_header(h, 22 * MiB);
        CHECK_EQ_U64(boot_check_kernel(&(BootBlob) { .data = h, .size = 20 * MiB }, &image_size), 0, "an Image header is accepted");
        CHECK_EQ_U64(image_size, 22 * MiB, "its in-memory size comes from the header");
        image_header(h, 4096);
        CHECK_EQ_U64(boot_check_kernel(&(BootBlob) { .data = h, .size = 20 * MiB }, &image_size), 0, "a small header size");
        CHECK_EQ_U64(image_size, 20 * MiB, "is raised to the file's size");
        memset(h + 56, 0, 4);
        CHECK_EQ_U64(boot_check_kernel(&(BootBlob) { .data = h, .size = 20 * MiB }, &image_size), (uint64_t) -ENOEXEC,
                     "no RSC magic: not an Image");
        CHECK_EQ_U64(boot_check_kernel(&(BootBlob) { .data = h, .size = 63 }, &image_size), (uint64_t) -ENOEXEC,
                     "shorter than a header: not an Image");

        CHECK_EQ_U64(boot_plan(&l, 512 * MiB, 270000, 22 * MiB, 2 * MiB, 8192), 0, "a usual layout is planned");
        CHECK_EQ_U64(l.bios_addr, MEMMAP_RAM_BASE, "firmware at the start of RAM");
        CHECK_EQ_U64(l.kernel_addr, MEMMAP_RAM_BASE + 2 * MiB, "kernel at the next 2 MiB boundary");
        CHECK(l.initrd_addr >= l.kernel_addr + 22 * MiB && l.initrd_end == l.initrd_addr + 2 * MiB &&
                      l.initrd_end <= l.fdt_addr,
              "initrd between the kernel's image and the device tree");
        CHECK(l.dyninfo_addr >= l.fdt_addr + 8192 && l.dyninfo_addr + 48 <= MEMMAP_RAM_BASE + 512 * MiB,
              "fw_dynamic_info after the tree, inside RAM");

        CHECK_EQ_U64(boot_plan(&l, 16 * MiB, 4096, 15 * MiB, 0, 8192), (uint64_t) -EFBIG, "a kernel too large");
        CHECK_EQ_U64(boot_plan(&l, 16 * MiB, 4096, 4 * MiB, 12 * MiB, 8192), (uint64_t) -ENOSPC,
                     "an initrd that does not fit");
        CHECK_EQ_U64(boot_plan(&l, 16 * MiB, 15 * MiB, 1 * MiB, 0, 8192), (uint64_t) -EFBIG,
                     "firmware reaching past the device tree");

        /* image_size = 2^64 - 2 MiB: kernel_addr + image_size wraps to just below kernel_addr. */
        image_header(h, 0xffffffffffe00000ULL);
        CHECK_EQ_U64(boot_check_kernel(&(BootBlob) { .data = h, .size = 4096 }, &image_size), 0, "a header claiming 2^64 - 2 MiB");
        CHECK_EQ_U64(boot_plan(&l, 16 * MiB, 100, image_size, 100, 8192), (uint64_t) -EFBIG,
                     "is refused as too large, not wrapped into a plan");
        CHECK_EQ_U64(boot_plan(&l, 64ULL << 30, 100, UINT64_MAX, 0, 8192), (uint64_t) -EFBIG,
                     "UINT64_MAX as an image size is refused");
        return tap_finish();
}
