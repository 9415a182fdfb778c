/* SPDX-License-Identifier: MIT */

/*
 * Boot images: reading the firmware, kernel and initrd, checking them, and
 * placing them in guest RAM the way QEMU's "virt" does for OpenSBI's
 * fw_dynamic firmware:
 *
 *   RAM_BASE             firmware (M-mode), entered with a0 = hartid,
 *                        a1 = device tree, a2 = struct fw_dynamic_info
 *   2 MiB aligned above  kernel Image (entered by the firmware in S-mode)
 *   top of RAM           initrd, then the device tree and fw_dynamic_info
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "machine/boot.h"
#include "machine/memmap.h"
#include "macro.h"

#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((uint64_t) (a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((uint64_t) (a) - 1))
#define SZ_2M (2ULL << 20)

int boot_read_file(const char *path, uint64_t max_size, BootBlob *ret, char *error, size_t error_size) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ uint8_t *data = NULL;
        struct stat st;
        size_t done = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                snprintf(error, error_size, "cannot open '%s': %s", path, strerror(errno));
                return -errno;
        }
        if (fstat(fd, &st) < 0) {
                snprintf(error, error_size, "cannot stat '%s': %s", path, strerror(errno));
                return -errno;
        }
        if (!S_ISREG(st.st_mode)) {
                snprintf(error, error_size, "'%s' is not a regular file", path);
                return -EINVAL;
        }
        if (st.st_size == 0) {
                snprintf(error, error_size, "'%s' is empty", path);
                return -EINVAL;
        }
        if ((uint64_t) st.st_size > max_size) {
                snprintf(error, error_size, "'%s' (%lld bytes) does not fit in guest RAM (%llu bytes); give more --memory",
                         path, (long long) st.st_size, (unsigned long long) max_size);
                return -EFBIG;
        }

        data = malloc(st.st_size);
        if (!data) {
                snprintf(error, error_size, "out of memory reading '%s'", path);
                return -ENOMEM;
        }
        while (done < (size_t) st.st_size) {
                ssize_t n = read(fd, data + done, st.st_size - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        snprintf(error, error_size, "cannot read '%s': %s", path, n < 0 ? strerror(errno) : "short read");
                        return n < 0 ? -errno : -EIO;
                }
                done += n;
        }

        ret->data = TAKE_PTR(data);
        ret->size = done;
        return 0;
}

void boot_blob_clear(BootBlob *b) {
        free(b->data);
        b->data = NULL;
        b->size = 0;
}

static uint64_t le64(const uint8_t *p) {
        uint64_t v;
        memcpy(&v, p, 8);
        return v;
}

int boot_check_kernel(const BootBlob *kernel, const char *path, uint64_t *ret_image_size, char *error, size_t error_size) {
        /* The RISC-V Linux Image header (Documentation/riscv/boot-image-header.rst). */
        if (kernel->size < 64 || memcmp(kernel->data + 56, "RSC\x05", 4) != 0) {
                snprintf(error, error_size, "'%s' is not a RISC-V Linux Image (no \"RSC\\x05\" magic at offset 56)", path);
                return -ENOEXEC;
        }
        uint64_t image_size = le64(kernel->data + 16);
        *ret_image_size = image_size > kernel->size ? image_size : kernel->size;
        return 0;
}

int boot_plan(BootLayout *l, uint64_t ram_size, uint64_t bios_size, uint64_t kernel_image_size, uint64_t initrd_size,
              uint64_t fdt_size, char *error, size_t error_size) {
        uint64_t ram_end = MEMMAP_RAM_BASE + ram_size;

        memset(l, 0, sizeof(*l));
        l->bios_addr = MEMMAP_RAM_BASE;
        l->kernel_addr = ALIGN_UP(MEMMAP_RAM_BASE + bios_size, SZ_2M);
        if (l->kernel_addr < MEMMAP_RAM_BASE + SZ_2M)
                l->kernel_addr = MEMMAP_RAM_BASE + SZ_2M;

        /* Device tree and fw_dynamic_info at the top of RAM (2 MiB aligned, as "virt" does). */
        if (fdt_size + 64 > SZ_2M) {
                snprintf(error, error_size, "device tree too large (%llu bytes)", (unsigned long long) fdt_size);
                return -E2BIG;
        }
        l->fdt_addr = ALIGN_DOWN(ram_end - fdt_size - 64, SZ_2M);
        l->dyninfo_addr = ALIGN_UP(l->fdt_addr + fdt_size, 8);

        uint64_t kernel_end = l->kernel_addr + kernel_image_size;
        if (kernel_end > l->fdt_addr) {
                snprintf(error, error_size, "the kernel (%llu bytes) does not fit in %llu MiB of RAM",
                         (unsigned long long) kernel_image_size, (unsigned long long) (ram_size >> 20));
                return -E2BIG;
        }

        if (initrd_size > 0) {
                if (initrd_size > l->fdt_addr - kernel_end) {
                        snprintf(error, error_size,
                                 "the initrd (%llu bytes) does not fit in RAM above the kernel (%llu bytes free); give more --memory",
                                 (unsigned long long) initrd_size, (unsigned long long) (l->fdt_addr - kernel_end));
                        return -E2BIG;
                }
                l->initrd_addr = ALIGN_DOWN(l->fdt_addr - initrd_size, 4096);
                if (l->initrd_addr < kernel_end) {
                        snprintf(error, error_size, "the initrd does not fit in RAM above the kernel; give more --memory");
                        return -E2BIG;
                }
                l->initrd_end = l->initrd_addr + initrd_size;
        }
        return 0;
}

void boot_write_dyninfo(uint8_t *dst, uint64_t next_addr) {
        /* OpenSBI's struct fw_dynamic_info, version 2: magic, version, next_addr, next_mode, options, boot_hart. */
        const uint64_t info[6] = { 0x4942534f, 2, next_addr, 1 /* S-mode */, 0, 0 };
        memcpy(dst, info, sizeof(info));
}
