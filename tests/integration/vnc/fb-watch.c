/* SPDX-License-Identifier: MIT */
/*
 * fb-watch: timestamps a guest framebuffer pixel as the host sees it change,
 * for bench/vnc_bench.py's latency (guest store -> VNC client).
 *
 *   fb-watch FILE OFFSET SECONDS
 *
 * Maps FILE (the VM's framebuffer memfd, /proc/PID/fd/N) read-only, reads
 * the 32-bit pixel at OFFSET every 100 us and prints "pixel T VALUE" (T in
 * ns, CLOCK_MONOTONIC; VALUE 0xRRGGBB) on every change, then "done".
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

int main(int argc, char *argv[]) {
        const struct timespec tick = { .tv_nsec = 100000 };
        volatile const uint32_t *pixel;
        uint64_t deadline;
        struct stat st;
        unsigned long offset;
        uint32_t last;
        void *map;
        int fd;

        if (argc != 4) {
                fprintf(stderr, "usage: fb-watch FILE OFFSET SECONDS\n");
                return 2;
        }
        fd = open(argv[1], O_RDONLY | O_CLOEXEC);
        offset = strtoul(argv[2], NULL, 10);
        if (fd < 0 || fstat(fd, &st) < 0 || offset % 4 || offset + 4 > (unsigned long) st.st_size) {
                fprintf(stderr, "fb-watch: cannot use %s at %lu\n", argv[1], offset);
                return 1;
        }
        map = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) {
                perror("fb-watch: mmap");
                return 1;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        pixel = (volatile const uint32_t *) ((const uint8_t *) map + offset);
        last = *pixel & 0xffffff;
        deadline = now_ns() + strtoull(argv[3], NULL, 10) * 1000000000ULL;
        while (now_ns() < deadline) {
                uint32_t v = *pixel & 0xffffff;

                if (v != last) {
                        last = v;
                        printf("pixel %" PRIu64 " %06x\n", now_ns(), v);
                }
                nanosleep(&tick, NULL);
        }
        printf("done\n");
        return 0;
}
