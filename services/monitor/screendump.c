/* SPDX-License-Identifier: MIT */
/*
 * screendump: the read-only mapped framebuffer, converted here (the
 * emulator does no image work) to an 8-bit RGB PNG with libpng.
 */
#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "screendump.h"

static bool format_supported(uint32_t format) {
        return format == ORRERY_FORMAT_XRGB8888 || format == ORRERY_FORMAT_ARGB8888 ||
               format == ORRERY_FORMAT_XBGR8888 || format == ORRERY_FORMAT_ABGR8888 || format == ORRERY_FORMAT_RGB565;
}

static void convert_line(const OrreryFramebuffer *fb, const uint8_t *src, uint8_t *dst) {
        for (uint32_t x = 0; x < fb->width; x++, dst += 3) {
                switch (fb->format) {
                case ORRERY_FORMAT_XRGB8888:
                case ORRERY_FORMAT_ARGB8888: {
                        const uint8_t *p = src + (size_t) x * 4; /* little endian: B G R X */
                        dst[0] = p[2];
                        dst[1] = p[1];
                        dst[2] = p[0];
                        break;
                }
                case ORRERY_FORMAT_XBGR8888:
                case ORRERY_FORMAT_ABGR8888: {
                        const uint8_t *p = src + (size_t) x * 4; /* R G B X */
                        dst[0] = p[0];
                        dst[1] = p[1];
                        dst[2] = p[2];
                        break;
                }
                default: { /* RGB565 */
                        uint16_t v = (uint16_t) (src[(size_t) x * 2] | (src[(size_t) x * 2 + 1] << 8));
                        uint8_t r = (v >> 11) & 0x1f, g = (v >> 5) & 0x3f, b = v & 0x1f;
                        dst[0] = (uint8_t) ((r << 3) | (r >> 2));
                        dst[1] = (uint8_t) ((g << 2) | (g >> 4));
                        dst[2] = (uint8_t) ((b << 3) | (b >> 2));
                        break;
                }
                }
        }
}

/* libpng reports errors by longjmp: keep everything that must be freed outside the setjmp frame. */
static int write_png(FILE *f, const OrreryFramebuffer *fb, uint8_t *line) {
        png_structp png;
        png_infop info = NULL;

        png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
        if (!png)
                return -ENOMEM;
        info = png_create_info_struct(png);
        if (!info) {
                png_destroy_write_struct(&png, NULL);
                return -ENOMEM;
        }
        if (setjmp(png_jmpbuf(png))) {
                png_destroy_write_struct(&png, &info);
                return -EIO;
        }

        png_init_io(png, f);
        png_set_IHDR(png, info, fb->width, fb->height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_NONE);
        png_set_compression_level(png, 1);
        png_write_info(png, info);
        for (uint32_t y = 0; y < fb->height; y++) {
                convert_line(fb, fb->data + (size_t) y * fb->stride, line);
                png_write_row(png, line);
        }
        png_write_end(png, NULL);
        png_destroy_write_struct(&png, &info);
        return 0;
}

int monitor_write_png(const OrreryFramebuffer *fb, const char *path) {
        _cleanup_free_ uint8_t *line = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        int r;

        if (!format_supported(fb->format))
                return -EOPNOTSUPP;
        if (fb->width == 0 || fb->height == 0)
                return -EINVAL;

        line = malloc((size_t) fb->width * 3);
        if (!line)
                return -ENOMEM;

        f = fopen(path, "we");
        if (!f)
                return -errno;

        r = write_png(f, fb, line);
        if (r >= 0 && (fflush(f) != 0 || ferror(f)))
                r = -EIO;
        if (r < 0) {
                (void) unlink(path);
                return r;
        }
        return 0;
}
