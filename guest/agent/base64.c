/* SPDX-License-Identifier: MIT */
/*
 * Base64 as QGA's guest-file-read/-write carry it (RFC 4648, standard
 * alphabet). Decoding is strict about the alphabet and about padding
 * (only at the end, completing a group of four), and like QGA accepts
 * input whose padding is left out.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

/* Each byte's 6-bit value, or 0x80 for a byte outside the alphabet. */
static uint8_t decode_table[256];

static void decode_table_init(void) {
        if (decode_table[0] == 0x80)
                return;
        memset(decode_table, 0x80, sizeof(decode_table));
        for (size_t i = 0; i < 64; i++)
                decode_table[(uint8_t) alphabet[i]] = (uint8_t) i;
}

/* Four characters at a time: the emulated guest CPU decodes megabytes per guest-file-write. */
int base64_decode(const char *text, size_t len, uint8_t **ret_data, size_t *ret_size) {
        const uint8_t *in = (const uint8_t *) text;
        _cleanup_free_ uint8_t *out = NULL;
        size_t n = len, o = 0, i = 0;
        uint32_t v;

        decode_table_init();

        /* At most two '=' and only at the very end, completing a group of four. */
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
        for (; i + 4 <= n; i += 4) {
                uint32_t a = decode_table[in[i]], b = decode_table[in[i + 1]];
                uint32_t c = decode_table[in[i + 2]], d = decode_table[in[i + 3]];

                if ((a | b | c | d) & 0x80)
                        return -EINVAL;
                v = a << 18 | b << 12 | c << 6 | d;
                out[o++] = (uint8_t) (v >> 16);
                out[o++] = (uint8_t) (v >> 8);
                out[o++] = (uint8_t) v;
        }
        if (n - i >= 2) {
                uint32_t a = decode_table[in[i]], b = decode_table[in[i + 1]];
                uint32_t c = n - i == 3 ? decode_table[in[i + 2]] : 0;

                if ((a | b | c) & 0x80)
                        return -EINVAL;
                v = a << 18 | b << 12 | c << 6;
                out[o++] = (uint8_t) (v >> 16);
                if (n - i == 3)
                        out[o++] = (uint8_t) (v >> 8);
        }

        *ret_data = TAKE_PTR(out);
        *ret_size = o;
        return 0;
}
