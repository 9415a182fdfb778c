/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct BootBlob {
        uint8_t *data;          /* the bytes, until boot_blob_release() */
        size_t size;            /* 0: no image (then nothing below is set) */
        int fd;                 /* the file they were read from, for later copies */
        uint64_t hash;          /* of the bytes, to check that the file still holds them */
} BootBlob;

typedef struct BootLayout {
        uint64_t bios_addr;
        uint64_t kernel_addr;
        uint64_t initrd_addr, initrd_end;       /* both 0 without initrd */
        uint64_t fdt_addr;
        uint64_t dyninfo_addr;
} BootLayout;

#define BOOT_IMAGE_HEADER_SIZE 64

/*
 * Boot images (firmware, kernel, initrd) are regular files of at most
 * max_size bytes. Errors: those of open()/fstat()/read(), -EISDIR (a
 * directory), -EBADFD (another kind of non-regular file), -ENODATA (an
 * empty file), -EFBIG (larger than max_size). The caller, who knows what
 * the file is for, tells the person.
 */
int boot_check_file(const char *path, uint64_t max_size, uint64_t *ret_size);
/* Reads a whole boot image. */
int boot_read_file(const char *path, uint64_t max_size, BootBlob *ret);
void boot_blob_clear(BootBlob *b);

/*
 * A reset puts the images back in guest RAM. Keeping their bytes costs as
 * much memory as the files (a distribution kernel and initrd: tens of
 * MiB), so after the first copy they are dropped and later copies read the
 * file again, checking that it still holds the same bytes.
 */
void boot_blob_release(BootBlob *b);
/* Copies the image to dst: -ESTALE if the file changed since it was read, or read()'s errors (dst is then undefined). */
int boot_blob_copy(const BootBlob *b, uint8_t *dst);

/* Checks the RISC-V Image header; the size the kernel occupies in memory, or -ENOEXEC (no Image magic). */
int boot_check_kernel(const BootBlob *kernel, uint64_t *ret_image_size);
/* The same from the file (its header only), with boot_check_file()'s errors. */
int boot_check_kernel_file(const char *path, uint64_t max_size, uint64_t *ret_image_size);

/*
 * Decides where everything goes in RAM: -E2BIG (the device tree is too
 * large), -EFBIG (the kernel does not fit), -ENOSPC (the initrd does not
 * fit above the kernel).
 */
int boot_plan(BootLayout *l, uint64_t ram_size, uint64_t bios_size, uint64_t kernel_image_size, uint64_t initrd_size,
              uint64_t fdt_size);

/* Writes OpenSBI's fw_dynamic_info (48 bytes) telling it to enter next_addr in S-mode. */
void boot_write_dyninfo(uint8_t *dst, uint64_t next_addr);
