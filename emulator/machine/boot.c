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
#include <unistd.h>

#include "machine/boot.h"
#include "machine/memmap.h"
#include "macro.h"

#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((uint64_t) (a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((uint64_t) (a) - 1))
#define SZ_2M (2ULL << 20)

/* Opens a boot image and checks it is a regular, non-empty file of at most max_size bytes. */
static int open_image(const char *path, uint64_t max_size, int *ret_fd, uint64_t *ret_size) {
        _cleanup_close_ int fd = -1;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if (st.st_size == 0)
                return -ENODATA;
        if ((uint64_t) st.st_size > max_size)
                return -EFBIG;
        *ret_size = (uint64_t) st.st_size;
        if (ret_fd)
                *ret_fd = TAKE_FD(fd);
        return 0;
}

int boot_check_file(const char *path, uint64_t max_size, uint64_t *ret_size) {
        return open_image(path, max_size, NULL, ret_size);
}

/* FNV-1a over 64-bit words (and the tail bytes): to tell whether a file still holds what was read. */
static uint64_t hash_bytes(const uint8_t *p, size_t n) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        size_t i = 0;

        for (; i + 8 <= n; i += 8) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                h = (h ^ w) * UINT64_C(0x100000001b3);
        }
        for (; i < n; i++)
                h = (h ^ p[i]) * UINT64_C(0x100000001b3);
        return h;
}

int boot_read_file(const char *path, uint64_t max_size, BootBlob *ret) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ uint8_t *data = NULL;
        uint64_t size;
        size_t done = 0;
        int r;

        r = open_image(path, max_size, &fd, &size);
        if (r < 0)
                return r;
        data = malloc(size);
        if (!data)
                return -ENOMEM;
        while (done < size) {
                ssize_t n = read(fd, data + done, size - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EIO;    /* the file shrank under us */
                done += n;
        }

        ret->hash = hash_bytes(data, done);
        ret->data = TAKE_PTR(data);
        ret->size = done;
        ret->fd = TAKE_FD(fd);
        return 0;
}

void boot_blob_clear(BootBlob *b) {
        free(b->data);
        if (b->size > 0)
                safe_close(b->fd);
        *b = (BootBlob) {};
}

void boot_blob_release(BootBlob *b) {
        b->data = mfree(b->data);
}

int boot_blob_copy(const BootBlob *b, uint8_t *dst) {
        size_t done = 0;

        if (b->data) {
                memcpy(dst, b->data, b->size);
                return 0;
        }
        while (done < b->size) {
                ssize_t n = pread(b->fd, dst + done, b->size - done, (off_t) done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ESTALE;    /* the file shrank */
                done += n;
        }
        return hash_bytes(dst, b->size) == b->hash ? 0 : -ESTALE;
}

static uint64_t le64(const uint8_t *p) {
        uint64_t v;
        memcpy(&v, p, 8);
        return v;
}

int boot_check_kernel(const BootBlob *kernel, uint64_t *ret_image_size) {
        /* The RISC-V Linux Image header (Documentation/riscv/boot-image-header.rst). */
        if (kernel->size < BOOT_IMAGE_HEADER_SIZE || memcmp(kernel->data + 56, "RSC\x05", 4) != 0)
                return -ENOEXEC;
        uint64_t image_size = le64(kernel->data + 16);
        *ret_image_size = image_size > kernel->size ? image_size : kernel->size;
        return 0;
}

int boot_check_kernel_file(const char *path, uint64_t max_size, uint64_t *ret_image_size) {
        _cleanup_close_ int fd = -1;
        uint8_t header[BOOT_IMAGE_HEADER_SIZE];
        uint64_t size, image_size;
        ssize_t n;
        int r;

        r = open_image(path, max_size, &fd, &size);
        if (r < 0)
                return r;
        n = pread(fd, header, sizeof(header), 0);
        if (n < 0)
                return -errno;
        BootBlob b = { .data = header, .size = (size_t) n };
        r = boot_check_kernel(&b, &image_size);
        if (r < 0)
                return r;
        *ret_image_size = MAX(image_size, size);
        return 0;
}

int boot_plan(BootLayout *l, uint64_t ram_size, uint64_t bios_size, uint64_t kernel_image_size, uint64_t initrd_size,
              uint64_t fdt_size) {
        uint64_t ram_end = MEMMAP_RAM_BASE + ram_size;

        memset(l, 0, sizeof(*l));
        l->bios_addr = MEMMAP_RAM_BASE;
        l->kernel_addr = ALIGN_UP(MEMMAP_RAM_BASE + bios_size, SZ_2M);
        if (l->kernel_addr < MEMMAP_RAM_BASE + SZ_2M)
                l->kernel_addr = MEMMAP_RAM_BASE + SZ_2M;

        /* Device tree and fw_dynamic_info at the top of RAM (2 MiB aligned, as "virt" does). */
        if (fdt_size + 64 > SZ_2M)
                return -E2BIG;
        l->fdt_addr = ALIGN_DOWN(ram_end - fdt_size - 64, SZ_2M);
        l->dyninfo_addr = ALIGN_UP(l->fdt_addr + fdt_size, 8);

        /* The image size comes from the kernel's header: compared without a sum that could wrap. */
        if (l->kernel_addr > l->fdt_addr || kernel_image_size > l->fdt_addr - l->kernel_addr)
                return -EFBIG;
        uint64_t kernel_end = l->kernel_addr + kernel_image_size;

        if (initrd_size > 0) {
                if (initrd_size > l->fdt_addr - kernel_end)
                        return -ENOSPC;
                l->initrd_addr = ALIGN_DOWN(l->fdt_addr - initrd_size, 4096);
                if (l->initrd_addr < kernel_end)
                        return -ENOSPC;
                l->initrd_end = l->initrd_addr + initrd_size;
        }
        return 0;
}

void boot_write_dyninfo(uint8_t *dst, uint64_t next_addr) {
        /* OpenSBI's struct fw_dynamic_info, version 2: magic, version, next_addr, next_mode, options, boot_hart. */
        const uint64_t info[6] = { 0x4942534f, 2, next_addr, 1 /* S-mode */, 0, 0 };
        memcpy(dst, info, sizeof(info));
}
