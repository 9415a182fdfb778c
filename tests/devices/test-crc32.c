/* SPDX-License-Identifier: MIT */
/*
 * The saved-state stream's CRC-32 (migration/crc32.h) against a bitwise
 * reference written from the definition (reflected polynomial
 * 0xEDB88320, register preset to all ones, result inverted): the check
 * value of "123456789", then random data of every length up to 1 KiB at
 * every alignment, fed whole and in random pieces, through crc32_update
 * (which folds with PCLMULQDQ where the host has it) and through the
 * tables alone; and 64 MiB at once, as a save of a full guest feeds it.
 */

#include <stdlib.h>
#include <string.h>

#include "migration/crc32.h"
#include "tap.h"

static uint32_t reference(const uint8_t *p, size_t n) {
        uint32_t v = 0xFFFFFFFFu;

        for (size_t i = 0; i < n; i++) {
                v ^= p[i];
                for (unsigned b = 0; b < 8; b++)
                        v = (v >> 1) ^ ((v & 1) ? 0xEDB88320u : 0);
        }
        return ~v;
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static uint64_t next(void) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
}

/* CRC of p[0..n) fed in random pieces, with or without the folded path. */
static uint32_t pieces(Crc32 *c, const uint8_t *p, size_t n, bool tables_only) {
        c->value = 0xFFFFFFFFu;
        while (n > 0) {
                size_t k = (next() % 4 == 0) ? 1 + next() % 16 : 1 + next() % (n < 600 ? n : 600);
                if (k > n)
                        k = n;
                if (tables_only)
                        crc32_update_tables(c, p, k);
                else
                        crc32_update(c, p, k);
                p += k;
                n -= k;
        }
        return crc32_final(c);
}

int main(void) {
        static Crc32 c;
        static uint8_t buf[1024 + 16];
        unsigned wrong_whole = 0, wrong_pieces = 0, wrong_tables = 0, cases = 0;

        crc32_init(&c);
        crc32_update(&c, (const uint8_t *) "123456789", 9);
        CHECK_EQ_U64(crc32_final(&c), 0xCBF43926u, "the check value of \"123456789\" is 0xCBF43926");

        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (uint8_t) next();
        for (size_t align = 0; align < 16; align++)
                for (size_t n = 0; n <= 1024; n++) {
                        const uint8_t *p = buf + align;
                        uint32_t want = reference(p, n);

                        cases++;
                        c.value = 0xFFFFFFFFu;
                        crc32_update(&c, p, n);
                        wrong_whole += crc32_final(&c) != want;
                        wrong_pieces += pieces(&c, p, n, false) != want;
                        wrong_tables += pieces(&c, p, n, true) != want;
                }
        CHECK(wrong_whole == 0, "crc32_update of 0-1024 bytes at 16 alignments equals the reference (%u of %u wrong)",
              wrong_whole, cases);
        CHECK(wrong_pieces == 0, "the same data fed in random pieces gives the same CRC (%u of %u wrong)",
              wrong_pieces, cases);
        CHECK(wrong_tables == 0, "the tables alone give the same CRC (%u of %u wrong)", wrong_tables, cases);

        size_t big = 64u << 20;
        uint8_t *data = malloc(big);
        if (!data)
                abort();
        for (size_t i = 0; i < big; i += 8) {
                uint64_t v = next();
                memcpy(data + i, &v, 8);
        }
        c.value = 0xFFFFFFFFu;
        crc32_update(&c, data, big);
        uint32_t folded = crc32_final(&c);
        c.value = 0xFFFFFFFFu;
        crc32_update_tables(&c, data, big);
        CHECK_EQ_U64(folded, crc32_final(&c), "64 MiB in one call: the same CRC folded as from the tables");
        CHECK_EQ_U64(folded, reference(data, big), "64 MiB in one call: the same CRC as the reference");
        free(data);
        return tap_finish();
}
