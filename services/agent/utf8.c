/* SPDX-License-Identifier: MIT */

#include <string.h>

#include "utf8.h"

void utf8_truncate(char *dst, size_t size, const char *src) {
        static const char ellipsis[] = "\xe2\x80\xa6";
        size_t n = strlen(src), keep;

        if (n < size) {
                memcpy(dst, src, n + 1);
                return;
        }
        if (size < sizeof(ellipsis)) {
                dst[0] = '\0';
                return;
        }
        keep = size - sizeof(ellipsis);
        /* Back off continuation bytes (10xxxxxx) so no character is split. */
        while (keep > 0 && ((unsigned char) src[keep] & 0xC0) == 0x80)
                keep--;
        memcpy(dst, src, keep);
        memcpy(dst + keep, ellipsis, sizeof(ellipsis));
}
