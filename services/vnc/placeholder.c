/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "macro.h"
#include "placeholder.h"

/* 5x7 glyphs of the few letters the messages use; bit 4 is the leftmost column. */
typedef struct Glyph {
        char c;
        uint8_t rows[7];
} Glyph;

static const Glyph glyphs[] = {
        { 'A', { 0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11 } },
        { 'D', { 0x1e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1e } },
        { 'G', { 0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f } },
        { 'I', { 0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e } },
        { 'L', { 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f } },
        { 'M', { 0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11 } },
        { 'N', { 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x11 } },
        { 'O', { 0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e } },
        { 'P', { 0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10 } },
        { 'R', { 0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11 } },
        { 'S', { 0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e } },
        { 'T', { 0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04 } },
        { 'U', { 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e } },
        { 'V', { 0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04 } },
        { 'Y', { 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04 } },
};

static const Glyph *glyph_find(char c) {
        for (size_t i = 0; i < ELEMENTSOF(glyphs); i++)
                if (glyphs[i].c == c)
                        return &glyphs[i];
        return NULL; /* a space, or a letter we lack: blank */
}

void placeholder_draw(uint32_t *pixels, uint32_t width, uint32_t height, const char *message) {
        size_t len = strlen(message), n = (size_t) width * height;
        uint32_t cell = 6, scale, text_w, x0, y0;

        for (size_t i = 0; i < n; i++)
                pixels[i] = PLACEHOLDER_BACKGROUND;
        if (len == 0)
                return;

        /* As large as fits in half the width, at most 4x. */
        scale = (uint32_t) MIN((size_t) 4, width / 2 / (len * cell));
        if (scale == 0 || height < 7 * scale)
                return;
        text_w = (uint32_t) len * cell * scale;
        x0 = (width - text_w) / 2;
        y0 = (height - 7 * scale) / 2;

        for (size_t k = 0; k < len; k++) {
                const Glyph *g = glyph_find(message[k]);

                if (!g)
                        continue;
                for (uint32_t row = 0; row < 7 * scale; row++)
                        for (uint32_t col = 0; col < 5 * scale; col++)
                                if (g->rows[row / scale] & (0x10 >> (col / scale)))
                                        pixels[(size_t) (y0 + row) * width + x0 + (uint32_t) k * cell * scale + col] =
                                                PLACEHOLDER_FOREGROUND;
        }
}
