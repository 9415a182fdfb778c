/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "base64.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Each character's 6-bit value plus one; 0 marks a character outside the alphabet. */
static const uint8_t value_plus_one[256] = {
        ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
        ['I'] = 9,  ['J'] = 10,  ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
        ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
        ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
        ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
        ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
        ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
        ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

size_t base64_encoded_size(size_t n) {
        return (n + 2) / 3 * 4;
}

size_t base64_decoded_max(size_t n) {
        return (n + 3) / 4 * 3;
}

void base64_encode(const uint8_t *in, size_t n, char *out) {
        size_t i = 0;

        for (; i + 3 <= n; i += 3) {
                uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];

                *out++ = alphabet[v >> 18];
                *out++ = alphabet[v >> 12 & 63];
                *out++ = alphabet[v >> 6 & 63];
                *out++ = alphabet[v & 63];
        }
        if (i < n) {
                bool two = n - i == 2;
                uint32_t v = (uint32_t) in[i] << 16 | (two ? (uint32_t) in[i + 1] << 8 : 0);

                *out++ = alphabet[v >> 18];
                *out++ = alphabet[v >> 12 & 63];
                *out++ = two ? alphabet[v >> 6 & 63] : '=';
                *out++ = '=';
        }
        *out = '\0';
}

/* A character's 6-bit value, or a value with bit 7 set for one outside the alphabet. */
static inline uint32_t value_of(uint8_t c) {
        return (uint32_t) value_plus_one[c] - 1;
}

/* Four characters at a time: the emulated guest CPU decodes megabytes per guest-file-write. */
long base64_decode(const char *text, size_t n, uint8_t *out, size_t out_size, Base64Flags flags) {
        const uint8_t *in = (const uint8_t *) text;
        size_t data = n, o = 0, i = 0;

        /* At most two '=', only at the very end, completing a group of four. */
        while (data > 0 && n - data < 2 && in[data - 1] == '=')
                data--;
        if (n - data > 0 && n % 4 != 0)
                return -EBADMSG;
        if (!(flags & BASE64_LENIENT) && n % 4 != 0)
                return -EBADMSG;
        /* One character alone cannot carry a byte. */
        if (data % 4 == 1)
                return -EBADMSG;

        for (; i + 4 <= data; i += 4) {
                uint32_t a = value_of(in[i]), b = value_of(in[i + 1]);
                uint32_t c = value_of(in[i + 2]), d = value_of(in[i + 3]);
                uint32_t v;

                if ((a | b | c | d) & 0x80)
                        return -EBADMSG;
                if (out_size - o < 3)
                        return -ENOBUFS;
                v = a << 18 | b << 12 | c << 6 | d;
                out[o++] = (uint8_t) (v >> 16);
                out[o++] = (uint8_t) (v >> 8);
                out[o++] = (uint8_t) v;
        }
        if (i < data) {
                bool three = data - i == 3;
                uint32_t a = value_of(in[i]), b = value_of(in[i + 1]);
                uint32_t c = three ? value_of(in[i + 2]) : 0;
                uint32_t v;

                if ((a | b | c) & 0x80)
                        return -EBADMSG;
                v = a << 18 | b << 12 | c << 6;
                /* Canonical only: the bits the short group drops must be zero. */
                if (!(flags & BASE64_LENIENT) && (v & (three ? 0xFF : 0xFFFF)))
                        return -EBADMSG;
                if (out_size - o < (three ? 2u : 1u))
                        return -ENOBUFS;
                out[o++] = (uint8_t) (v >> 16);
                if (three)
                        out[o++] = (uint8_t) (v >> 8);
        }
        return (long) o;
}

char *base64_encode_new(const uint8_t *in, size_t n, size_t *ret_len) {
        size_t len = base64_encoded_size(n);
        char *out = malloc(len + 1);

        if (!out)
                return NULL;
        base64_encode(in, n, out);
        *ret_len = len;
        return out;
}

long base64_decode_new(const char *in, size_t n, uint8_t **ret, Base64Flags flags) {
        size_t size = base64_decoded_max(n);
        uint8_t *out = malloc(size > 0 ? size : 1);
        long k;

        if (!out)
                return -ENOMEM;
        k = base64_decode(in, n, out, size, flags);
        if (k < 0) {
                free(out);
                return k;
        }
        *ret = out;
        return k;
}
