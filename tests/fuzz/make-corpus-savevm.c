/* SPDX-License-Identifier: MIT */

/*
 * Writes the seed corpus of fuzz-savevm.c: real saves of a described
 * 16 MiB machine (the fuzz target's configuration), one fresh and one with
 * RAM written here and there, host input queued and guest time set.
 *   make-corpus-savevm DIR
 */

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "migration/savevm.h"

static int save(Machine *m, const char *dir, const char *name) {
        char path[4096], error[512];
        int fd, r;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -1;
        r = savevm_write(m, fd, NULL, error, sizeof(error));
        close(fd);
        if (r < 0)
                fprintf(stderr, "%s: %s\n", path, error);
        return r;
}

int main(int argc, char *argv[]) {
        MachineConfig c = { .name = "fuzz", .memory = 16ULL << 20 };
        Machine *m = NULL;
        uint64_t size;
        uint8_t *ram;

        if (argc != 2 || machine_new(&c, NULL, &m) < 0)
                return 1;
        if (save(m, argv[1], "fresh.save") < 0)
                return 1;
        ram = machine_ram(m, &size);
        memset(ram + 4096, 0x13, 4096);
        memcpy(ram + 3 * 4096 + 100, "a page with a little data", 25);
        ram[size - 1] = 0xff;
        (void) machine_pointer_abs(m, 300, 200);
        (void) machine_key(m, 30, true);
        (void) machine_set_guest_ticks(m, 123456789);
        if (save(m, argv[1], "touched.save") < 0)
                return 1;
        machine_free(m);
        return 0;
}
