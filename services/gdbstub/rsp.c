/* SPDX-License-Identifier: MIT */

#include <errno.h>

#include "rsp.h"

void rsp_parser_init(RspParser *p) {
        p->state = RSP_IDLE;
        p->len = 0;
        p->sum = 0;
        p->oversized = false;
}

static void put(RspParser *p, char c) {
        if (p->len < RSP_MAX_PAYLOAD)
                p->payload[p->len++] = c;
        else
                p->oversized = true;
}

static int hex_digit(uint8_t c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

RspEvent rsp_parser_feed(RspParser *p, const uint8_t *data, size_t size, size_t *ret_used) {
        size_t i = 0;

        while (i < size) {
                uint8_t c = data[i++];
                int d;

                switch (p->state) {
                case RSP_IDLE:
                        if (c == '$') {
                                p->state = RSP_DATA;
                                p->len = 0;
                                p->sum = 0;
                                p->oversized = false;
                        } else if (c == 0x03) {
                                *ret_used = i;
                                return RSP_EVENT_INTERRUPT;
                        } else if (c == '+') {
                                *ret_used = i;
                                return RSP_EVENT_ACK;
                        } else if (c == '-') {
                                *ret_used = i;
                                return RSP_EVENT_NAK;
                        }
                        /* Anything else between packets is noise: skipped. */
                        break;
                case RSP_DATA:
                        if (c == '#') {
                                p->state = RSP_CHECKSUM1;
                                break;
                        }
                        p->sum += c;
                        if (c == '}')
                                p->state = RSP_ESCAPE;
                        else if (c == '$') {
                                /* A new packet starts inside this one: the peer gave up on the first. */
                                p->len = 0;
                                p->sum = 0;
                                p->oversized = false;
                        } else
                                put(p, (char) c);
                        break;
                case RSP_ESCAPE:
                        p->sum += c;
                        put(p, (char) (c ^ 0x20));
                        p->state = RSP_DATA;
                        break;
                case RSP_CHECKSUM1:
                        d = hex_digit(c);
                        p->given = (uint8_t) ((d < 0 ? 0 : d) << 4);
                        p->state = d < 0 ? RSP_IDLE : RSP_CHECKSUM2;
                        if (d < 0) {
                                *ret_used = i;
                                return RSP_EVENT_BAD_CHECKSUM;
                        }
                        break;
                case RSP_CHECKSUM2:
                        d = hex_digit(c);
                        p->state = RSP_IDLE;
                        *ret_used = i;
                        if (d < 0 || (uint8_t) (p->given | d) != p->sum)
                                return RSP_EVENT_BAD_CHECKSUM;
                        if (p->oversized)
                                return RSP_EVENT_OVERSIZED;
                        p->payload[p->len] = 0;
                        return RSP_EVENT_PACKET;
                }
        }
        *ret_used = i;
        return RSP_EVENT_NONE;
}

size_t rsp_frame(const void *payload, size_t len, char *out, size_t out_size) {
        static const char hex[] = "0123456789abcdef";
        const uint8_t *in = payload;
        uint8_t sum = 0;
        size_t n = 0;

        if (out_size < 2 * len + 4)
                return 0;
        out[n++] = '$';
        for (size_t i = 0; i < len; i++) {
                uint8_t c = in[i];
                if (c == '$' || c == '#' || c == '}' || c == '*') {
                        out[n++] = '}';
                        sum += '}';
                        c ^= 0x20;
                }
                out[n++] = (char) c;
                sum += c;
        }
        out[n++] = '#';
        out[n++] = hex[sum >> 4];
        out[n++] = hex[sum & 15];
        return n;
}

int rsp_hex_to_u64(const char *s, size_t len, uint64_t *ret) {
        uint64_t v = 0;

        if (len == 0 || len > 16)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                int d = hex_digit((uint8_t) s[i]);
                if (d < 0)
                        return -EINVAL;
                v = v << 4 | (uint64_t) d;
        }
        *ret = v;
        return 0;
}

int rsp_hex_to_bytes(const char *s, size_t len, uint8_t *out, size_t out_size, size_t *ret_n) {
        if (len % 2 || len / 2 > out_size)
                return -EINVAL;
        for (size_t i = 0; i < len / 2; i++) {
                int hi = hex_digit((uint8_t) s[2 * i]), lo = hex_digit((uint8_t) s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                out[i] = (uint8_t) (hi << 4 | lo);
        }
        *ret_n = len / 2;
        return 0;
}

void rsp_bytes_to_hex(const void *data, size_t n, char *out) {
        static const char hex[] = "0123456789abcdef";
        const uint8_t *in = data;

        for (size_t i = 0; i < n; i++) {
                out[2 * i] = hex[in[i] >> 4];
                out[2 * i + 1] = hex[in[i] & 15];
        }
        out[2 * n] = 0;
}
