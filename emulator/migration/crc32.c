/* SPDX-License-Identifier: MIT */
/*
 * CRC-32 for the saved-state stream (crc32.h). A save or restore of a full
 * guest checksums every byte of RAM: table-driven, eight bytes a step, the
 * checksum was still a third of a restore's CPU time; folded with
 * PCLMULQDQ it runs at memory speed.
 */

#include <stdbool.h>
#include <string.h>

#include "crc32.h"

#define POLY_REFLECTED 0xEDB88320u

void crc32_init(Crc32 *c) {
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t v = i;
                for (unsigned k = 0; k < 8; k++)
                        v = (v >> 1) ^ (v & 1 ? POLY_REFLECTED : 0);
                c->table[0][i] = v;
        }
        /* table[k][i]: the contribution of byte i followed by k more bytes. */
        for (unsigned k = 1; k < 8; k++)
                for (uint32_t i = 0; i < 256; i++)
                        c->table[k][i] = (c->table[k - 1][i] >> 8) ^ c->table[0][c->table[k - 1][i] & 0xFF];
        c->value = 0xFFFFFFFFu;
}

static uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static uint32_t update_tables(const Crc32 *c, uint32_t v, const uint8_t *p, size_t n) {
        for (; n >= 8; p += 8, n -= 8) {
                uint32_t lo = v ^ le32(p), hi = le32(p + 4);

                v = c->table[7][lo & 0xFF] ^ c->table[6][(lo >> 8) & 0xFF] ^ c->table[5][(lo >> 16) & 0xFF] ^
                    c->table[4][lo >> 24] ^ c->table[3][hi & 0xFF] ^ c->table[2][(hi >> 8) & 0xFF] ^
                    c->table[1][(hi >> 16) & 0xFF] ^ c->table[0][hi >> 24];
        }
        for (; n > 0; p++, n--)
                v = c->table[0][(v ^ *p) & 0xFF] ^ (v >> 8);
        return v;
}

void crc32_update_tables(Crc32 *c, const uint8_t *p, size_t n) {
        c->value = update_tables(c, c->value, p, n);
}

#if defined(__x86_64__)
#include <immintrin.h>

/*
 * Folding (Gopal et al., "Fast CRC Computation for Generic Polynomials
 * Using PCLMULQDQ", Intel, 2009). The running CRC is XORed into the first
 * four bytes, after which the register is zero; a 128-bit chunk is then
 * moved forward over D bits of message by multiplying its halves with
 * x^(D+32) and x^(D-32) modulo the polynomial (reflected, hence the odd
 * looking constants below) and XORing it into the chunk D bits on. Four
 * chunks are folded over 512 bits at a time, then into one, whose 16 bytes
 * the tables finish (no Barrett reduction needed: they are a message like
 * any other, checksummed from a zero register).
 */
#define FOLD_512_LO 0x154442bd4ULL      /* x^(512+32) mod P, bit-reversed over 33 bits */
#define FOLD_512_HI 0x1c6e41596ULL      /* x^(512-32) mod P, bit-reversed over 33 bits */
#define FOLD_128_LO 0x1751997d0ULL      /* x^(128+32) mod P, bit-reversed over 33 bits */
#define FOLD_128_HI 0x0ccaa009eULL      /* x^(128-32) mod P, bit-reversed over 33 bits */

__attribute__((target("pclmul,sse2")))
static inline __m128i fold(__m128i x, __m128i k, __m128i next) {
        __m128i lo = _mm_clmulepi64_si128(x, k, 0x00), hi = _mm_clmulepi64_si128(x, k, 0x11);
        return _mm_xor_si128(_mm_xor_si128(lo, hi), next);
}

/* n >= 64. Returns the register after all of p except the last n % 16 bytes, which it leaves in *rest. */
__attribute__((target("pclmul,sse2")))
static uint32_t update_folded(const Crc32 *c, uint32_t v, const uint8_t *p, size_t n, size_t *rest) {
        const __m128i k512 = _mm_set_epi64x((long long) FOLD_512_HI, (long long) FOLD_512_LO);
        const __m128i k128 = _mm_set_epi64x((long long) FOLD_128_HI, (long long) FOLD_128_LO);
        __m128i x0 = _mm_loadu_si128((const __m128i *) (const void *) p);
        __m128i x1 = _mm_loadu_si128((const __m128i *) (const void *) (p + 16));
        __m128i x2 = _mm_loadu_si128((const __m128i *) (const void *) (p + 32));
        __m128i x3 = _mm_loadu_si128((const __m128i *) (const void *) (p + 48));
        uint8_t last[16];

        x0 = _mm_xor_si128(x0, _mm_cvtsi32_si128((int) v));
        p += 64;
        n -= 64;
        for (; n >= 64; p += 64, n -= 64) {
                x0 = fold(x0, k512, _mm_loadu_si128((const __m128i *) (const void *) p));
                x1 = fold(x1, k512, _mm_loadu_si128((const __m128i *) (const void *) (p + 16)));
                x2 = fold(x2, k512, _mm_loadu_si128((const __m128i *) (const void *) (p + 32)));
                x3 = fold(x3, k512, _mm_loadu_si128((const __m128i *) (const void *) (p + 48)));
        }
        x0 = fold(x0, k128, x1);
        x0 = fold(x0, k128, x2);
        x0 = fold(x0, k128, x3);
        for (; n >= 16; p += 16, n -= 16)
                x0 = fold(x0, k128, _mm_loadu_si128((const __m128i *) (const void *) p));
        *rest = n;
        _mm_storeu_si128((__m128i *) (void *) last, x0);
        return update_tables(c, 0, last, sizeof(last));
}

static bool have_pclmul(void) {
        return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse2");
}
#endif

void crc32_update(Crc32 *c, const uint8_t *p, size_t n) {
#if defined(__x86_64__)
        if (n >= 64 && have_pclmul()) {
                size_t rest;
                uint32_t v = update_folded(c, c->value, p, n, &rest);
                c->value = update_tables(c, v, p + n - rest, rest);
                return;
        }
#endif
        c->value = update_tables(c, c->value, p, n);
}

uint32_t crc32_final(const Crc32 *c) {
        return c->value ^ 0xFFFFFFFFu;
}
