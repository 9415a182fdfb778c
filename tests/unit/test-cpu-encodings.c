/* SPDX-License-Identifier: MIT */
/*
 * The tests' instruction encoders (harness.h) against the GNU toolchain: for
 * every base format, every compressed form and branches and jumps with
 * non-zero offsets both ways, the encoder's word must equal what
 * riscv64-linux-gnu-as/ld/objdump made of the same instruction at build time
 * (encodings.list, gen-encodings.py). The encoders are what every other CPU
 * test builds its programs with, so this anchors them to an assembler nobody
 * here wrote.
 */

#include "harness.h"
#include "macro.h"
#include "tap.h"

#include "gnu-encodings.h"

typedef struct GnuEncoding {
        uint32_t encoder;       /* what the harness.h encoder produced */
        uint32_t gnu;           /* what the GNU toolchain produced */
        unsigned size;
        const char *text;
        unsigned line;
} GnuEncoding;

int main(void) {
        const GnuEncoding gnu_encodings[] = { GNU_ENCODINGS };
        unsigned compressed = 0;

        for (size_t i = 0; i < ELEMENTSOF(gnu_encodings); i++) {
                uint32_t enc = gnu_encodings[i].encoder, gnu = gnu_encodings[i].gnu;
                bool is16 = gnu_encodings[i].size == 2;

                compressed += is16;
                CHECK(enc == gnu && ((enc & 3) != 3) == is16,
                      "%s: encoder 0x%0*x, GNU as 0x%0*x (encodings.list:%u)", gnu_encodings[i].text, is16 ? 4 : 8, enc,
                      is16 ? 4 : 8, gnu, gnu_encodings[i].line);
        }
        CHECK(compressed >= 40 && ELEMENTSOF(gnu_encodings) - compressed >= 50,
              "%u compressed and %zu 32-bit encodings anchored", compressed, ELEMENTSOF(gnu_encodings) - compressed);
        return tap_finish();
}
