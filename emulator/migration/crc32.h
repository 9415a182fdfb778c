/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * CRC-32 (IEEE 802.3, reflected: zlib's and the saved-state stream's).
 * On x86-64 hosts with PCLMULQDQ, blocks of 64 bytes and more are folded
 * with carry-less multiplies, 16 bytes per instruction pair; everything
 * else, and every other host, goes through tables, eight bytes a step.
 * Both give the same checksum, so streams written on one load on the other.
 */

#include <stddef.h>
#include <stdint.h>

typedef struct Crc32 {
        uint32_t table[8][256];
        uint32_t value;
} Crc32;

void crc32_init(Crc32 *c);
void crc32_update(Crc32 *c, const uint8_t *p, size_t n);
uint32_t crc32_final(const Crc32 *c);

/* The tables alone, whatever the host (for tests and the tails). */
void crc32_update_tables(Crc32 *c, const uint8_t *p, size_t n);
