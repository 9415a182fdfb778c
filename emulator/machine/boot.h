/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct BootBlob {
        uint8_t *data;
        size_t size;
} BootBlob;

typedef struct BootLayout {
        uint64_t bios_addr;
        uint64_t kernel_addr;
        uint64_t initrd_addr, initrd_end;       /* both 0 without initrd */
        uint64_t fdt_addr;
        uint64_t dyninfo_addr;
} BootLayout;

/* Reads a whole regular file of at most max_size bytes. Errors are written to 'error'. */
int boot_read_file(const char *path, uint64_t max_size, BootBlob *ret, char *error, size_t error_size);
void boot_blob_clear(BootBlob *b);

/* Checks the RISC-V Image header; returns the size the kernel occupies in memory. */
int boot_check_kernel(const BootBlob *kernel, const char *path, uint64_t *ret_image_size, char *error, size_t error_size);

/* Decides where everything goes in RAM, or explains why it does not fit. */
int boot_plan(BootLayout *l, uint64_t ram_size, uint64_t bios_size, uint64_t kernel_image_size, uint64_t initrd_size,
              uint64_t fdt_size, char *error, size_t error_size);

/* Writes OpenSBI's fw_dynamic_info (48 bytes) telling it to enter next_addr in S-mode. */
void boot_write_dyninfo(uint8_t *dst, uint64_t next_addr);
