/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <stdbool.h>

#include "base64.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encoded_size(size_t n) {
        return (n + 2) / 3 * 4;
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
        if (n - i == 1) {
                uint32_t v = (uint32_t) in[i] << 16;

                *out++ = alphabet[v >> 18];
                *out++ = alphabet[v >> 12 & 63];
                *out++ = '=';
                *out++ = '=';
        } else if (n - i == 2) {
                uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8;

                *out++ = alphabet[v >> 18];
                *out++ = alphabet[v >> 12 & 63];
                *out++ = alphabet[v >> 6 & 63];
                *out++ = '=';
        }
        *out = '\0';
}

static int value_of(char c) {
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

long base64_decode(const char *in, size_t n, uint8_t *out, size_t out_size) {
        size_t o = 0;

        if (n % 4 != 0)
                return -EBADMSG;
        for (size_t i = 0; i < n; i += 4) {
                int a = value_of(in[i]), b = value_of(in[i + 1]), c, d;
                bool last = i + 4 == n;
                size_t k = 3;
                uint32_t v;

                c = in[i + 2] == '=' && last ? -2 : value_of(in[i + 2]);
                d = in[i + 3] == '=' && last ? -2 : value_of(in[i + 3]);
                if (a < 0 || b < 0 || c == -1 || d == -1 || (c == -2 && d != -2))
                        return -EBADMSG;
                if (c == -2)
                        k = 1;
                else if (d == -2)
                        k = 2;
                v = (uint32_t) a << 18 | (uint32_t) b << 12 | (uint32_t) (c < 0 ? 0 : c) << 6 | (uint32_t) (d < 0 ? 0 : d);
                /* Canonical only: the bits the padding drops must be zero. */
                if ((k == 1 && (v & 0xFFFF)) || (k == 2 && (v & 0xFF)))
                        return -EBADMSG;
                if (k > out_size - o)
                        return -ENOBUFS;
                out[o++] = (uint8_t) (v >> 16);
                if (k > 1)
                        out[o++] = (uint8_t) (v >> 8);
                if (k > 2)
                        out[o++] = (uint8_t) v;
        }
        return (long) o;
}
