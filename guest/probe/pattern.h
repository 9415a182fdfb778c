/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The framebuffer test pattern of the Orrery guest, as one pure function.
 *
 * `orrery-guest-probe pattern [SEED]` writes orrery_pattern_pixel(x, y, W, H,
 * SEED) to every visible pixel (x, y) of /dev/fb0, W x H being the visible
 * resolution. Host-side tests include this header to compute the pixels they
 * expect to read back from the emulator's framebuffer, so it must stay free
 * of anything but <stdint.h>, and integer-only (no floating point, no
 * undefined behaviour: all arithmetic is on uint32_t).
 *
 * Pixels are XRGB8888: 0x00RRGGBB. The picture, inside a 4-pixel white
 * border:
 *
 *   top half          8 vertical colour bars: bar n (from the left) has
 *                     colour (n + SEED) % 8 of white, yellow, cyan, green,
 *                     magenta, red, blue, black; they fade from full to
 *                     3/4 intensity downwards;
 *   third quarter     a horizontal gradient: red rises and blue falls from
 *                     left to right, green rises from top to bottom;
 *   bottom quarter    a 16x16 checkerboard of a grey ramp and its inverse;
 *                     SEED's lowest bit swaps the squares.
 *
 * On top of that, the two lowest bits of each channel carry a hash of
 * (x, y, SEED). The eye does not see it, but it makes almost every pixel
 * differ from its neighbours, so a framebuffer read with a wrong stride,
 * offset or byte order does not match even in flat areas, and a redraw with
 * another SEED changes almost every pixel.
 */

#include <stdint.h>

#define ORRERY_PATTERN_BORDER 4u

static inline uint32_t orrery_pattern_hash(uint32_t x, uint32_t y, uint32_t seed) {
        uint32_t h;

        h = x * 0x9e3779b1u;
        h ^= y * 0x85ebca77u;
        h ^= seed * 0xc2b2ae3du;
        h ^= h >> 15;
        h *= 0x2c1b3c6du;
        h ^= h >> 12;
        h *= 0x297a2d39u;
        h ^= h >> 15;

        return h;
}

static inline uint32_t orrery_pattern_pixel(uint32_t x, uint32_t y, uint32_t width, uint32_t height, uint32_t seed) {
        const uint32_t b = ORRERY_PATTERN_BORDER;
        uint32_t red, green, blue, noise;

        if (x >= width || y >= height)
                return 0;

        if (x < b || y < b || x >= width - b || y >= height - b) {
                /* Border: white. */
                red = green = blue = 0xff;

        } else if (y < height / 2) {
                /* Colour bars, dimmed towards the bottom of the top half. */
                uint32_t bar = (x * 8u / width + seed) % 8u;
                uint32_t level = 0xff - (y * 0x40u) / (height / 2);

                green = bar < 4 ? level : 0;
                red = (bar & 2u) == 0 ? level : 0;
                blue = (bar & 1u) == 0 ? level : 0;

        } else if (y < height - height / 4) {
                /* Gradient. */
                red = (x * 0xffu) / (width - 1);
                green = (y * 0xffu) / (height - 1);
                blue = 0xff - red;

        } else {
                /* Checkerboard of a grey ramp and its inverse. */
                uint32_t grey = (x * 0xffu) / (width - 1);

                if (((x / 16u) ^ (y / 16u) ^ seed) & 1u)
                        grey = 0xff - grey;
                red = green = blue = grey;
        }

        noise = orrery_pattern_hash(x, y, seed);
        red ^= noise & 3u;
        green ^= (noise >> 2) & 3u;
        blue ^= (noise >> 4) & 3u;

        return (red & 0xffu) << 16 | (green & 0xffu) << 8 | (blue & 0xffu);
}
