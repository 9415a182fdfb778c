/* SPDX-License-Identifier: MIT */

/*
 * Compares a framebuffer dump (XRGB8888, on stdin) with the guest probe's
 * test pattern, computed with the very header the guest draws with.
 *
 *   fb-check WIDTH HEIGHT STRIDE SEED
 *
 * Exits 0 when every visible pixel matches, 1 otherwise (printing the first
 * mismatches), 2 on bad usage.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe/pattern.h"

int main(int argc, char *argv[]) {
        uint32_t width, height, stride, seed;
        size_t size, got = 0, mismatches = 0;
        uint8_t *fb;

        if (argc != 5) {
                fprintf(stderr, "usage: fb-check WIDTH HEIGHT STRIDE SEED < framebuffer\n");
                return 2;
        }
        width = (uint32_t) strtoul(argv[1], NULL, 10);
        height = (uint32_t) strtoul(argv[2], NULL, 10);
        stride = (uint32_t) strtoul(argv[3], NULL, 10);
        seed = (uint32_t) strtoul(argv[4], NULL, 10);
        if (width == 0 || height == 0 || stride < width * 4 || height > 16384) {
                fprintf(stderr, "fb-check: bad geometry\n");
                return 2;
        }

        size = (size_t) stride * height;
        fb = malloc(size);
        if (!fb)
                return 2;
        while (got < size) {
                size_t n = fread(fb + got, 1, size - got, stdin);
                if (n == 0)
                        break;
                got += n;
        }
        if (got < size) {
                fprintf(stderr, "fb-check: short framebuffer (%zu of %zu bytes)\n", got, size);
                return 1;
        }

        for (uint32_t y = 0; y < height; y++)
                for (uint32_t x = 0; x < width; x++) {
                        uint32_t have, want = orrery_pattern_pixel(x, y, width, height, seed);
                        memcpy(&have, fb + (size_t) y * stride + (size_t) x * 4, 4);
                        have &= 0x00ffffff;
                        if (have != (want & 0x00ffffff)) {
                                if (mismatches < 5)
                                        printf("pixel (%u,%u): have %06x, want %06x\n", x, y, have, want & 0xffffff);
                                mismatches++;
                        }
                }
        printf("%zu of %u pixels differ\n", mismatches, width * height);
        free(fb);
        return mismatches ? 1 : 0;
}
