/* SPDX-License-Identifier: MIT */
/*
 * Host-side checks of pattern.h: it compiles on its own, stays in range,
 * and has the properties the framebuffer tests rely on (a white border,
 * every region distinct, a one-pixel or one-row shift and a new seed
 * each change almost every pixel). Also pins a few values, so that a change
 * of the formula is a deliberate one (update guest/README.md with it).
 */

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "pattern.h"

static unsigned n_checks, n_failed;

static void check(bool ok, const char *what) {
        n_checks++;
        if (!ok)
                n_failed++;
        printf("%sok %u - %s\n", ok ? "" : "not ", n_checks, what);
}

/* Fraction (in per mille) of interior pixels where f(x, y) != g(x, y). */
static unsigned differing_permille(uint32_t w, uint32_t h, uint32_t seed_a, uint32_t seed_b, uint32_t dx, uint32_t dy) {
        uint64_t total = 0, differ = 0;

        for (uint32_t y = ORRERY_PATTERN_BORDER; y + dy < h - ORRERY_PATTERN_BORDER; y++)
                for (uint32_t x = ORRERY_PATTERN_BORDER; x + dx < w - ORRERY_PATTERN_BORDER; x++) {
                        total++;
                        if (orrery_pattern_pixel(x, y, w, h, seed_a) !=
                            orrery_pattern_pixel(x + dx, y + dy, w, h, seed_b))
                                differ++;
                }

        return total > 0 ? (unsigned) (differ * 1000 / total) : 0;
}

int main(void) {
        static const uint32_t sizes[][2] = { { 9, 9 }, { 16, 12 }, { 640, 480 }, { 800, 600 }, { 1024, 768 }, { 1920, 1080 } };
        bool ok;

        printf("TAP version 13\n");

        /* Range and border, for several sizes. */
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
                uint32_t w = sizes[s][0], h = sizes[s][1];
                bool in_range = true, border = true;
                char what[128];

                for (uint32_t y = 0; y < h; y++)
                        for (uint32_t x = 0; x < w; x++) {
                                uint32_t p = orrery_pattern_pixel(x, y, w, h, 3);
                                bool on_border = x < 4 || y < 4 || x >= w - 4 || y >= h - 4;

                                if (p > 0xffffffu)
                                        in_range = false;
                                if (on_border && (p & 0xfcfcfcu) != 0xfcfcfcu)
                                        border = false;
                        }

                snprintf(what, sizeof(what), "%" PRIu32 "x%" PRIu32 ": pixels are 0x00RRGGBB", w, h);
                check(in_range, what);
                snprintf(what, sizeof(what), "%" PRIu32 "x%" PRIu32 ": 4-pixel white border", w, h);
                check(border, what);
        }

        check(orrery_pattern_pixel(640, 0, 640, 480, 0) == 0 && orrery_pattern_pixel(0, 480, 640, 480, 0) == 0,
              "outside the screen is 0");

        /* Shifts and seeds change almost every pixel. */
        check(differing_permille(640, 480, 0, 0, 1, 0) > 950, "a one-pixel shift changes >95% of the pixels");
        check(differing_permille(640, 480, 0, 0, 0, 1) > 950, "a one-row shift changes >95% of the pixels");
        check(differing_permille(640, 480, 0, 1, 0, 0) > 950, "another seed changes >95% of the pixels");

        /* The regions look as documented (noise masked off). */
        check((orrery_pattern_pixel(10, 10, 640, 480, 0) & 0xfcfcfcu) == 0xfcfcfcu, "top-left bar is white");
        check((orrery_pattern_pixel(630, 10, 640, 480, 0) & 0xfcfcfcu) == 0, "top-right bar is black");
        check((orrery_pattern_pixel(10, 10, 640, 480, 1) & 0xfcfcfcu) == 0xfcfc00u, "seed 1: top-left bar is yellow");
        check((orrery_pattern_pixel(5, 300, 640, 480, 0) & 0xfc0000u) == 0 &&
              (orrery_pattern_pixel(634, 300, 640, 480, 0) & 0xfc0000u) == 0xfc0000u, "gradient: red rises left to right");

        /* Pinned values: a change here changes what every host test expects. */
        ok = orrery_pattern_pixel(0, 0, 640, 480, 0) == UINT32_C(0xffffff) &&
             orrery_pattern_pixel(100, 100, 640, 480, 0) == UINT32_C(0xe5e603) &&
             orrery_pattern_pixel(320, 300, 640, 480, 7) == UINT32_C(0x7f9f82) &&
             orrery_pattern_pixel(500, 450, 1024, 768, 1) == UINT32_C(0x7c9680);
        check(ok, "pinned values");
        if (!ok)
                printf("# got %06" PRIx32 " %06" PRIx32 " %06" PRIx32 " %06" PRIx32 "\n",
                       orrery_pattern_pixel(0, 0, 640, 480, 0),
                       orrery_pattern_pixel(100, 100, 640, 480, 0),
                       orrery_pattern_pixel(320, 300, 640, 480, 7),
                       orrery_pattern_pixel(500, 450, 1024, 768, 1));

        printf("1..%u\n", n_checks);
        return n_failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
