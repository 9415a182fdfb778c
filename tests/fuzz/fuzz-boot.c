/* SPDX-License-Identifier: MIT */

/*
 * Fuzz target for what orrery-vm makes of the files given as --bios,
 * --kernel and --initrd and of --append: the RISC-V Image header check
 * (from a blob and from a file), the RAM layout planned from the sizes, and
 * the device tree that carries the command line and the initrd's place.
 * libFuzzer entry point; fuzz-driver.c replays it without libFuzzer.
 *
 * Input: memory size (4 bytes, in 64 KiB units, folded into the sizes
 * --memory accepts), firmware size (4, bytes, folded into 1..memory),
 * initrd size (4, folded into 0..memory), kernel file size (4, folded into
 * 1..memory), command-line length (1), the command line, then the
 * kernel's first 64 bytes (zero-padded). The files' contents beyond the
 * header are never read by the parsers, so only their sizes are fuzzed.
 *
 * Checked, for every plan the loader accepts: the firmware, kernel (its
 * in-memory size from the header, and its file), initrd, device tree and
 * fw_dynamic_info each lie inside RAM and do not overlap; and the tree
 * built for that plan is valid and holds the command line and the initrd
 * addresses exactly. The header check gives the same answer from a file.
 */

#include <assert.h>
#include <libfdt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "machine/boot.h"
#include "machine/fdt.h"
#include "machine/machine.h"
#include "machine/memmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DYNINFO_SIZE 48

typedef struct Input {
        const uint8_t *p;
        size_t left;
} Input;

static uint64_t take(Input *in, unsigned n) {
        uint64_t v = 0;

        for (unsigned i = 0; i < n && in->left > 0; i++, in->p++, in->left--)
                v |= (uint64_t) *in->p << (8 * i);
        return v;
}

typedef struct Range {
        uint64_t start, size;
} Range;

static void assert_in_ram(Range r, uint64_t ram_end) {
        if (r.size == 0)
                return;         /* no initrd: its range is 0, 0 */
        assert(r.start >= MEMMAP_RAM_BASE);
        assert(r.start <= ram_end);
        assert(r.size <= ram_end - r.start);
}

static void assert_disjoint(Range a, Range b) {
        if (a.size == 0 || b.size == 0)
                return;
        assert(a.start + a.size <= b.start || b.start + b.size <= a.start);
}

/* The kernel file, for boot_check_kernel_file(): one memfd for every input. */
static const char *kernel_file(const uint8_t header[BOOT_IMAGE_HEADER_SIZE], uint64_t file_size) {
        static int fd = -1;
        static char path[64];

        if (fd < 0) {
                fd = memfd_create("fuzz-boot-kernel", MFD_CLOEXEC);
                if (fd < 0)
                        abort();
                snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        }
        /*
         * Sparse beyond the header: a size of gigabytes costs nothing. Only
         * the first 64 bytes are ever written, and they are rewritten below
         * up to the new size, so no truncation to 0 is needed first.
         */
        if (ftruncate(fd, (off_t) file_size) < 0)
                abort();
        if (pwrite(fd, header, file_size < BOOT_IMAGE_HEADER_SIZE ? file_size : BOOT_IMAGE_HEADER_SIZE, 0) < 0)
                abort();
        return path;
}

static void check_fdt(const void *fdt, size_t fdt_size, const char *bootargs, uint64_t initrd_start,
                      uint64_t initrd_end) {
        const void *prop;
        int chosen, len;

        assert(fdt_check_header(fdt) == 0);
        assert(fdt_totalsize(fdt) == fdt_size);
        chosen = fdt_path_offset(fdt, "/chosen");
        assert(chosen >= 0);
        prop = fdt_getprop(fdt, chosen, "bootargs", &len);
        assert(prop && (size_t) len == strlen(bootargs) + 1 && memcmp(prop, bootargs, (size_t) len) == 0);
        prop = fdt_getprop(fdt, chosen, "linux,initrd-start", &len);
        if (initrd_end > initrd_start) {
                fdt64_t v;

                assert(prop && len == 8);
                memcpy(&v, prop, 8);
                assert(fdt64_to_cpu(v) == initrd_start);
                prop = fdt_getprop(fdt, chosen, "linux,initrd-end", &len);
                assert(prop && len == 8);
                memcpy(&v, prop, 8);
                assert(fdt64_to_cpu(v) == initrd_end);
        } else
                assert(!prop);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Input in = { data, size };
        uint8_t header[BOOT_IMAGE_HEADER_SIZE] = {};
        char bootargs[256];
        uint64_t ram_size, bios_size, initrd_size, kernel_file_size, image_size, image_size_file, ram_end;
        size_t n, fdt_size;
        void *fdt = NULL;
        BootLayout l;
        int r, r_file;

        /* What --memory accepts: 16 MiB to 64 GiB. */
        ram_size = MACHINE_MEMORY_MIN + (take(&in, 4) << 16) % (MACHINE_MEMORY_MAX - MACHINE_MEMORY_MIN + 1);
        /* boot_read_file() takes files of 1 byte up to the memory size. */
        bios_size = 1 + take(&in, 4) % ram_size;
        initrd_size = take(&in, 4) % (ram_size + 1);
        kernel_file_size = 1 + take(&in, 4) % ram_size;
        n = (size_t) take(&in, 1);
        if (n > in.left)
                n = in.left;
        memcpy(bootargs, in.p, n);
        bootargs[n] = 0;        /* --append is a C string: it ends at the first NUL */
        in.p += n;
        in.left -= n;
        memcpy(header, in.p, in.left < sizeof(header) ? in.left : sizeof(header));

        /* The blob claims the file's size; boot_check_kernel() reads only its header. */
        r = boot_check_kernel(&(BootBlob) { .data = header, .size = kernel_file_size }, &image_size);
        r_file = boot_check_kernel_file(kernel_file(header, kernel_file_size), MACHINE_MEMORY_MAX, &image_size_file);
        assert(r == r_file);
        if (r < 0)
                return 0;
        assert(image_size == image_size_file);
        assert(image_size >= kernel_file_size);

        /* As load_images() does: size the tree, plan, then build it with the initrd's place. */
        FdtConfig c = {
                .num_harts = 1,
                .isa = "rv64imafdc",
                .isa_base = "rv64i",
                .mmu_type = "riscv,sv48",
                .ram_base = MEMMAP_RAM_BASE,
                .ram_size = ram_size,
                .bootargs = bootargs,
                .initrd_start = initrd_size ? 1 : 0,
                .initrd_end = initrd_size ? 2 : 0,
        };
        r = fdt_build(&c, &fdt, &fdt_size);
        assert(r == 0);
        free(fdt);
        fdt = NULL;

        r = boot_plan(&l, ram_size, bios_size, image_size, initrd_size, fdt_size);
        if (r < 0)
                return 0;

        ram_end = MEMMAP_RAM_BASE + ram_size;
        Range bios = { l.bios_addr, bios_size }, kernel_mem = { l.kernel_addr, image_size },
              initrd = { l.initrd_addr, initrd_size }, tree = { l.fdt_addr, fdt_size },
              dyninfo = { l.dyninfo_addr, DYNINFO_SIZE };
        const Range all[] = { bios, kernel_mem, initrd, tree, dyninfo };

        if (initrd_size)
                assert(l.initrd_end == l.initrd_addr + initrd_size);
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
                assert_in_ram(all[i], ram_end);
                for (size_t j = i + 1; j < sizeof(all) / sizeof(all[0]); j++)
                        assert_disjoint(all[i], all[j]);
        }

        c.initrd_start = l.initrd_addr;
        c.initrd_end = l.initrd_end;
        r = fdt_build(&c, &fdt, &n);
        assert(r == 0);
        /* The plan was made for this size: the second tree must be no larger. */
        assert(n == fdt_size);
        check_fdt(fdt, n, bootargs, l.initrd_addr, l.initrd_end);
        free(fdt);
        return 0;
}
