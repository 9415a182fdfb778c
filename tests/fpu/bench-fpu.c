/* SPDX-License-Identifier: MIT */

/*
 * Cost of fpu_execute() per instruction for a few common cases (run with
 * `meson test --benchmark fpu`). The RMM lines show the software path.
 */

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cpu/fpu.h"

static double now(void) {
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double) t.tv_sec + (double) t.tv_nsec * 1e-9;
}

static uint32_t enc_r(unsigned funct5, unsigned fmt, unsigned rs2, unsigned rs1, unsigned funct3, unsigned rd) {
        return (uint32_t) funct5 << 27 | fmt << 25 | rs2 << 20 | rs1 << 15 | funct3 << 12 | rd << 7 | 0x53;
}

int main(void) {
        /* f1 = 1.0000001, f2 = 3.0, x2 = 123456789; results to f3/x5. */
        const struct {
                const char *name;
                uint32_t insn;
        } cases[] = {
                { "fsgnj.d (no FP work)", enc_r(0x04, 1, 2, 1, 0, 3) },
                { "fadd.d rne", enc_r(0x00, 1, 2, 1, 0, 3) },
                { "fmul.d rne", enc_r(0x02, 1, 2, 1, 0, 3) },
                { "fdiv.d rne", enc_r(0x03, 1, 2, 1, 0, 3) },
                { "fmadd.d rne", 2u << 27 | 1u << 25 | 2u << 20 | 1u << 15 | 0u << 12 | 3u << 7 | 0x43 },
                { "fadd.d rtz", enc_r(0x00, 1, 2, 1, 1, 3) },
                { "fadd.s rne", enc_r(0x00, 0, 2, 1, 0, 3) },
                { "fcvt.w.d rtz", enc_r(0x18, 1, 0, 1, 1, 5) },
                { "fcvt.d.l rne", enc_r(0x1a, 1, 2, 2, 0, 3) },
                { "feq.d", enc_r(0x14, 1, 2, 1, 2, 5) },
                { "fadd.d rmm", enc_r(0x00, 1, 2, 1, 4, 3) },
                { "fdiv.d rmm", enc_r(0x03, 1, 2, 1, 4, 3) },
        };
        const unsigned n = 5000000;
        FpuState fpu = {};
        uint64_t x[32] = {};
        double a = 1.0000001, b = 3.0;

        memcpy(&fpu.f[1], &a, sizeof(a));
        memcpy(&fpu.f[2], &b, sizeof(b));
        x[2] = 123456789;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                double t0, t1;

                fpu.fflags = 0;
                t0 = now();
                for (unsigned k = 0; k < n; k++) {
                        fpu.f[1] ^= k & 1;
                        if (fpu_execute(&fpu, x, cases[i].insn) < 0) {
                                fprintf(stderr, "%s: illegal?\n", cases[i].name);
                                return 1;
                        }
                }
                t1 = now();
                printf("%-22s %6.2f ns\n", cases[i].name, (t1 - t0) / n * 1e9);
        }
        return 0;
}
