/* SPDX-License-Identifier: MIT */
/*
 * Base64 as QGA's guest-file-read/-write carry it (RFC 4648, standard
 * alphabet). Decoding is strict about the alphabet and about padding
 * (only at the end, completing a group of four), and like QGA accepts
 * input whose padding is left out.
 */

#include <errno.h>
#include <stdlib.h>

#include "agent.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const uint8_t *data, size_t size, size_t *ret_len) {
        size_t len = (size + 2) / 3 * 4;
        char *out = malloc(len + 1), *o = out;
        size_t i = 0;

        if (!out)
                return NULL;
        for (; i + 3 <= size; i += 3) {
                uint32_t v = (uint32_t) data[i] << 16 | (uint32_t) data[i + 1] << 8 | data[i + 2];

                *o++ = alphabet[v >> 18];
                *o++ = alphabet[(v >> 12) & 63];
                *o++ = alphabet[(v >> 6) & 63];
                *o++ = alphabet[v & 63];
        }
        if (i < size) {
                uint32_t v = (uint32_t) data[i] << 16 | (i + 1 < size ? (uint32_t) data[i + 1] << 8 : 0);

                *o++ = alphabet[v >> 18];
                *o++ = alphabet[(v >> 12) & 63];
                *o++ = i + 1 < size ? alphabet[(v >> 6) & 63] : '=';
                *o++ = '=';
        }
        *o = 0;
        *ret_len = len;
        return out;
}

static int digit(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

int base64_decode(const char *text, size_t len, uint8_t **ret_data, size_t *ret_size) {
        _cleanup_free_ uint8_t *out = NULL;
        size_t n = len, o = 0;
        uint32_t acc = 0;
        unsigned bits = 0;

        /* At most two '=' and only at the very end. */
        while (n > 0 && len - n < 2 && text[n - 1] == '=')
                n--;
        if ((len - n) > 0 && (len % 4) != 0)
                return -EINVAL;

        /* One character alone cannot carry a byte. */
        if (n % 4 == 1)
                return -EINVAL;

        out = malloc(n / 4 * 3 + 3);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                int d = digit(text[i]);

                if (d < 0)
                        return -EINVAL;
                acc = acc << 6 | (uint32_t) d;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[o++] = (uint8_t) (acc >> bits);
                }
        }

        *ret_data = TAKE_PTR(out);
        *ret_size = o;
        return 0;
}
