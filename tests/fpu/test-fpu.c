/* SPDX-License-Identifier: MIT */

/*
 * Unit tests for fpu_execute(): every F/D instruction through its encoding,
 * and the edge cases the spec pins down (rounding modes including RMM ties,
 * flags, NaN canonicalization and boxing, min/max and compares with signed
 * zeros and NaNs, conversion saturation, classification, fused sign
 * variants, illegal encodings).
 */

#include <fenv.h>
#include <math.h>

#include "cpu/fpu.h"
#include "tap.h"

enum { RNE = 0, RTZ = 1, RDN = 2, RUP = 3, RMM = 4, DYN = 7 };
enum { FMT_S = 0, FMT_D = 1 };
enum { K_W = 0, K_WU = 1, K_L = 2, K_LU = 3 };

enum {
        F5_ADD = 0x00,
        F5_SUB = 0x01,
        F5_MUL = 0x02,
        F5_DIV = 0x03,
        F5_SGNJ = 0x04,
        F5_MINMAX = 0x05,
        F5_CVT_FF = 0x08,
        F5_SQRT = 0x0b,
        F5_CMP = 0x14,
        F5_CVT_IF = 0x18, /* float to int */
        F5_CVT_FI = 0x1a, /* int to float */
        F5_MVXF = 0x1c,   /* FMV.X.W/D, FCLASS */
        F5_MVFX = 0x1e,   /* FMV.W/D.X */
};

enum { OPC_FMADD = 0x43, OPC_FMSUB = 0x47, OPC_FNMSUB = 0x4b, OPC_FNMADD = 0x4f };

#define NX FFLAG_NX
#define UF FFLAG_UF
#define OF FFLAG_OF
#define DZ FFLAG_DZ
#define NV FFLAG_NV

#define CNAN_S UINT32_C(0x7fc00000)
#define CNAN_D UINT64_C(0x7ff8000000000000)
#define SNAN_S UINT32_C(0x7f800001)
#define SNAN_D UINT64_C(0x7ff0000000000001)
#define QNAN_S_PAYLOAD UINT32_C(0xffc12345)
#define QNAN_D_PAYLOAD UINT64_C(0xfff8000000012345)
#define INF_S UINT32_C(0x7f800000)
#define INF_D UINT64_C(0x7ff0000000000000)
#define NINF_S UINT32_C(0xff800000)
#define NINF_D UINT64_C(0xfff0000000000000)
#define MAX_S UINT32_C(0x7f7fffff)
#define MAX_D UINT64_C(0x7fefffffffffffff)
#define MINSUB_S UINT32_C(0x00000001)
#define MINSUB_D UINT64_C(0x0000000000000001)
#define MINNORM_S UINT32_C(0x00800000)
#define MINNORM_D UINT64_C(0x0010000000000000)
#define NZERO_S UINT32_C(0x80000000)
#define NZERO_D UINT64_C(0x8000000000000000)
#define BOX UINT64_C(0xffffffff00000000)

static FpuState fpu;
static uint64_t xr[32];
static unsigned unexpected_illegal;

/* The host rounding mode as SSE sees it (glibc's fegetround() reads the x87 control word). */
static bool host_round_is_nearest(void) {
#if defined(__x86_64__) && defined(__SSE2__)
        return (__builtin_ia32_stmxcsr() & 0x6000) == 0 && fegetround() == FE_TONEAREST;
#else
        return fegetround() == FE_TONEAREST;
#endif
}

static uint32_t fs(float f) {
        uint32_t v;

        memcpy(&v, &f, sizeof(v));
        return v;
}

static uint64_t fd(double d) {
        uint64_t v;

        memcpy(&v, &d, sizeof(v));
        return v;
}

static uint32_t enc_r(unsigned funct5, unsigned fmt, unsigned rs2, unsigned rs1, unsigned funct3, unsigned rd) {
        return (uint32_t) funct5 << 27 | fmt << 25 | rs2 << 20 | rs1 << 15 | funct3 << 12 | rd << 7 | 0x53;
}

static uint32_t enc_r4(unsigned opcode, unsigned fmt, unsigned rs3, unsigned rs2, unsigned rs1, unsigned rm,
                       unsigned rd) {
        return (uint32_t) rs3 << 27 | fmt << 25 | rs2 << 20 | rs1 << 15 | rm << 12 | rd << 7 | opcode;
}

static void exec(uint32_t insn) {
        int r = fpu_execute(&fpu, xr, insn);

        if (r != 0) {
                unexpected_illegal++;
                printf("# unexpected -1 for insn %#x\n", insn);
        }
}

/* Two-source arithmetic in S: f1 = a, f2 = b (boxed), result in f3 (checked boxed). */
static uint32_t s2(unsigned funct5, unsigned rm, uint32_t a, uint32_t b) {
        fpu.f[1] = BOX | a;
        fpu.f[2] = BOX | b;
        fpu.f[3] = 0;
        fpu.fflags = 0;
        exec(enc_r(funct5, FMT_S, funct5 == F5_SQRT ? 0 : 2, 1, rm, 3));
        if ((fpu.f[3] & BOX) != BOX)
                return 0xdeadbeef; /* not boxed */
        return (uint32_t) fpu.f[3];
}

static uint64_t d2(unsigned funct5, unsigned rm, uint64_t a, uint64_t b) {
        fpu.f[1] = a;
        fpu.f[2] = b;
        fpu.f[3] = 0;
        fpu.fflags = 0;
        exec(enc_r(funct5, FMT_D, funct5 == F5_SQRT ? 0 : 2, 1, rm, 3));
        return fpu.f[3];
}

static uint32_t s3(unsigned opcode, unsigned rm, uint32_t a, uint32_t b, uint32_t c) {
        fpu.f[1] = BOX | a;
        fpu.f[2] = BOX | b;
        fpu.f[3] = BOX | c;
        fpu.f[4] = 0;
        fpu.fflags = 0;
        exec(enc_r4(opcode, FMT_S, 3, 2, 1, rm, 4));
        if ((fpu.f[4] & BOX) != BOX)
                return 0xdeadbeef;
        return (uint32_t) fpu.f[4];
}

static uint64_t d3(unsigned opcode, unsigned rm, uint64_t a, uint64_t b, uint64_t c) {
        fpu.f[1] = a;
        fpu.f[2] = b;
        fpu.f[3] = c;
        fpu.f[4] = 0;
        fpu.fflags = 0;
        exec(enc_r4(opcode, FMT_D, 3, 2, 1, rm, 4));
        return fpu.f[4];
}

/* Float (raw f-register value) to integer: result in x[5]. */
static uint64_t to_int(unsigned fmt, unsigned kind, unsigned rm, uint64_t freg) {
        fpu.f[1] = freg;
        fpu.fflags = 0;
        xr[5] = UINT64_C(0x5555555555555555);
        exec(enc_r(F5_CVT_IF, fmt, kind, 1, rm, 5));
        return xr[5];
}

/* Integer to float: raw f-register result. */
static uint64_t from_int(unsigned fmt, unsigned kind, unsigned rm, uint64_t v) {
        xr[6] = v;
        fpu.f[7] = 0;
        fpu.fflags = 0;
        exec(enc_r(F5_CVT_FI, fmt, kind, 6, rm, 7));
        return fpu.f[7];
}

static void expect(uint64_t got, uint32_t got_flags, uint64_t want, uint32_t want_flags, const char *what) {
        CHECK_EQ_U64(got, want, "%s", what);
        CHECK_EQ_U64(got_flags, want_flags, "%s: flags", what);
}

/* 'got' comes from one of the helpers above; the flags it left are in fpu.fflags. */
static void expect_op(uint64_t got, uint64_t want, uint32_t want_flags, const char *what) {
        expect(got, fpu.fflags, want, want_flags, what);
}

/* ---------------------------------------------------------------------- */

static void test_basic_arith(void) {

        expect_op(s2(F5_ADD, RNE, fs(1.5f), fs(2.25f)), fs(3.75f), 0, "fadd.s 1.5+2.25");
        expect_op(s2(F5_SUB, RNE, fs(1.5f), fs(2.25f)), fs(-0.75f), 0, "fsub.s 1.5-2.25");
        expect_op(s2(F5_MUL, RNE, fs(1.5f), fs(-2.0f)), fs(-3.0f), 0, "fmul.s 1.5*-2");
        expect_op(s2(F5_DIV, RNE, fs(1.0f), fs(4.0f)), fs(0.25f), 0, "fdiv.s 1/4");
        expect_op(s2(F5_DIV, RNE, fs(1.0f), fs(3.0f)), 0x3eaaaaab, NX, "fdiv.s 1/3 inexact");
        expect_op(s2(F5_SQRT, RNE, fs(2.25f), 0), fs(1.5f), 0, "fsqrt.s 2.25");
        expect_op(s2(F5_SQRT, RNE, fs(2.0f), 0), 0x3fb504f3, NX, "fsqrt.s 2");

        expect_op(d2(F5_ADD, RNE, fd(1.5), fd(2.25)), fd(3.75), 0, "fadd.d 1.5+2.25");
        expect_op(d2(F5_SUB, RNE, fd(1.5), fd(2.25)), fd(-0.75), 0, "fsub.d 1.5-2.25");
        expect_op(d2(F5_MUL, RNE, fd(1.5), fd(-2.0)), fd(-3.0), 0, "fmul.d 1.5*-2");
        expect_op(d2(F5_DIV, RNE, fd(1.0), fd(4.0)), fd(0.25), 0, "fdiv.d 1/4");
        expect_op(d2(F5_DIV, RNE, fd(1.0), fd(3.0)), UINT64_C(0x3fd5555555555555), NX, "fdiv.d 1/3");
        expect_op(d2(F5_SQRT, RNE, fd(2.25), 0), fd(1.5), 0, "fsqrt.d 2.25");
        expect_op(d2(F5_SQRT, RNE, fd(2.0), 0), UINT64_C(0x3ff6a09e667f3bcd), NX, "fsqrt.d 2");
        expect_op(d2(F5_ADD, RNE, fd(0.1), fd(0.2)), UINT64_C(0x3fd3333333333334), NX, "fadd.d 0.1+0.2");

        /* x - x is +0 except in RDN. */
        expect_op(d2(F5_SUB, RNE, fd(5.0), fd(5.0)), 0, 0, "fsub.d 5-5 rne = +0");
        expect_op(d2(F5_SUB, RDN, fd(5.0), fd(5.0)), NZERO_D, 0, "fsub.d 5-5 rdn = -0");
        expect_op(s2(F5_ADD, RDN, fs(-5.0f), fs(5.0f)), NZERO_S, 0, "fadd.s -5+5 rdn = -0");
        expect_op(s2(F5_ADD, RNE, NZERO_S, NZERO_S), NZERO_S, 0, "fadd.s -0+-0 = -0");
}

static void test_rounding_modes(void) {
        static const char *const name[] = { "rne", "rtz", "rdn", "rup", "rmm" };
        /* 1 + 0.75 ulp, -(1 + 0.75 ulp); 1 + 0.5 ulp (tie, even below), (1+ulp) + 0.5 ulp (tie, even above). */
        static const uint32_t s_pos[5] = { 0x3f800001, 0x3f800000, 0x3f800000, 0x3f800001, 0x3f800001 };
        static const uint32_t s_neg[5] = { 0xbf800001, 0xbf800000, 0xbf800001, 0xbf800000, 0xbf800001 };
        static const uint32_t s_tie[5] = { 0x3f800000, 0x3f800000, 0x3f800000, 0x3f800001, 0x3f800001 };
        static const uint32_t s_ntie[5] = { 0xbf800000, 0xbf800000, 0xbf800001, 0xbf800000, 0xbf800001 };
        static const uint32_t s_tie_odd[5] = { 0x3f800002, 0x3f800001, 0x3f800001, 0x3f800002, 0x3f800002 };
        static const uint64_t d_tie[5] = {
                UINT64_C(0x3ff0000000000000), UINT64_C(0x3ff0000000000000), UINT64_C(0x3ff0000000000000),
                UINT64_C(0x3ff0000000000001), UINT64_C(0x3ff0000000000001),
        };
        static const uint64_t d_ntie[5] = {
                UINT64_C(0xbff0000000000000), UINT64_C(0xbff0000000000000), UINT64_C(0xbff0000000000001),
                UINT64_C(0xbff0000000000000), UINT64_C(0xbff0000000000001),
        };
        char what[128];

        for (unsigned rm = 0; rm < 5; rm++) {
                snprintf(what, sizeof(what), "fadd.s 1+0.75ulp %s", name[rm]);
                expect_op(s2(F5_ADD, rm, fs(1.0f), 0x33c00000), s_pos[rm], NX, what);
                snprintf(what, sizeof(what), "fadd.s -1-0.75ulp %s", name[rm]);
                expect_op(s2(F5_ADD, rm, fs(-1.0f), 0xb3c00000), s_neg[rm], NX, what);
                snprintf(what, sizeof(what), "fadd.s 1+0.5ulp tie %s", name[rm]);
                expect_op(s2(F5_ADD, rm, fs(1.0f), 0x33800000), s_tie[rm], NX, what);
                snprintf(what, sizeof(what), "fsub.s -1-0.5ulp tie %s", name[rm]);
                expect_op(s2(F5_SUB, rm, fs(-1.0f), 0x33800000), s_ntie[rm], NX, what);
                snprintf(what, sizeof(what), "fadd.s (1+ulp)+0.5ulp tie %s", name[rm]);
                expect_op(s2(F5_ADD, rm, 0x3f800001, 0x33800000), s_tie_odd[rm], NX, what);
                snprintf(what, sizeof(what), "fadd.d 1+2^-53 tie %s", name[rm]);
                expect_op(d2(F5_ADD, rm, fd(1.0), fd(0x1p-53)), d_tie[rm], NX, what);
                snprintf(what, sizeof(what), "fadd.d -1-2^-53 tie %s", name[rm]);
                expect_op(d2(F5_ADD, rm, fd(-1.0), fd(-0x1p-53)), d_ntie[rm], NX, what);
        }

        /* RMM ties in the other operations. */
        /* (1+2^-12)^2 = 1 + 2^-11 + 2^-24: a tie in S. */
        expect_op(s2(F5_MUL, RMM, 0x3f800800, 0x3f800800), 0x3f801001, NX, "fmul.s tie rmm");
        expect_op(s2(F5_MUL, RNE, 0x3f800800, 0x3f800800), 0x3f801000, NX, "fmul.s tie rne");
        /* (1+2^-26)(1+2^-27) = 1 + 2^-26 + 2^-27 + 2^-53: a tie in D. */
        expect_op(d2(F5_MUL, RMM, fd(1.0 + 0x1p-26), fd(1.0 + 0x1p-27)),
               fd(1.0 + 0x1p-26 + 0x1p-27 + 0x1p-52), NX, "fmul.d tie rmm");
        expect_op(d2(F5_MUL, RNE, fd(1.0 + 0x1p-26), fd(1.0 + 0x1p-27)), fd(1.0 + 0x1p-26 + 0x1p-27), NX,
               "fmul.d tie rne");
        /* minsub / 2 is a tie between 0 and minsub. */
        expect_op(s2(F5_DIV, RMM, MINSUB_S, fs(2.0f)), MINSUB_S, UF | NX, "fdiv.s minsub/2 rmm");
        expect_op(s2(F5_DIV, RNE, MINSUB_S, fs(2.0f)), 0, UF | NX, "fdiv.s minsub/2 rne");
        expect_op(d2(F5_DIV, RMM, MINSUB_D | (UINT64_C(1) << 63), fd(2.0)), MINSUB_D | (UINT64_C(1) << 63),
               UF | NX, "fdiv.d -minsub/2 rmm");
        expect_op(d2(F5_MUL, RMM, UINT64_C(3), fd(0.5)), UINT64_C(2), UF | NX, "fmul.d 3minsub*0.5 rmm");
        expect_op(d2(F5_MUL, RNE, UINT64_C(3), fd(0.5)), UINT64_C(2), UF | NX, "fmul.d 3minsub*0.5 rne");
        expect_op(d2(F5_MUL, RMM, UINT64_C(5), fd(0.5)), UINT64_C(3), UF | NX, "fmul.d 5minsub*0.5 rmm");
        expect_op(d2(F5_MUL, RNE, UINT64_C(5), fd(0.5)), UINT64_C(2), UF | NX, "fmul.d 5minsub*0.5 rne");
        expect_op(s2(F5_SQRT, RMM, fs(2.0f), 0), 0x3fb504f3, NX, "fsqrt.s 2 rmm");
        expect_op(d2(F5_SQRT, RMM, fd(2.0), 0), UINT64_C(0x3ff6a09e667f3bcd), NX, "fsqrt.d 2 rmm");
        expect_op(d2(F5_SQRT, RTZ, fd(2.0), 0), UINT64_C(0x3ff6a09e667f3bcc), NX, "fsqrt.d 2 rtz");
        expect_op(d2(F5_DIV, RMM, fd(1.0), fd(3.0)), UINT64_C(0x3fd5555555555555), NX, "fdiv.d 1/3 rmm");
        expect_op(d2(F5_DIV, RUP, fd(1.0), fd(3.0)), UINT64_C(0x3fd5555555555556), NX, "fdiv.d 1/3 rup");
        expect_op(s2(F5_DIV, RMM, fs(2.0f), fs(3.0f)), 0x3f2aaaab, NX, "fdiv.s 2/3 rmm");
        expect_op(s2(F5_DIV, RDN, fs(2.0f), fs(3.0f)), 0x3f2aaaaa, NX, "fdiv.s 2/3 rdn");

        /* DYN takes frm; frm 5..7 makes it illegal (tested with the illegal encodings). */
        fpu.frm = RTZ;
        expect_op(s2(F5_ADD, DYN, fs(1.0f), 0x33c00000), 0x3f800000, NX, "fadd.s dyn frm=rtz");
        fpu.frm = RMM;
        expect_op(d2(F5_ADD, DYN, fd(1.0), fd(0x1p-53)), d_tie[RMM], NX, "fadd.d dyn frm=rmm tie");
        fpu.frm = RUP;
        expect_op(d2(F5_DIV, DYN, fd(1.0), fd(3.0)), UINT64_C(0x3fd5555555555556), NX, "fdiv.d dyn frm=rup");
        fpu.frm = RNE;

        CHECK(host_round_is_nearest(), "host rounding mode is back to nearest");
}

static void test_special_values(void) {

        expect_op(s2(F5_DIV, RNE, fs(1.0f), 0), INF_S, DZ, "fdiv.s 1/0 = inf, DZ");
        expect_op(s2(F5_DIV, RNE, fs(-1.0f), 0), NINF_S, DZ, "fdiv.s -1/0 = -inf, DZ");
        expect_op(s2(F5_DIV, RNE, fs(1.0f), NZERO_S), NINF_S, DZ, "fdiv.s 1/-0 = -inf, DZ");
        expect_op(d2(F5_DIV, RNE, fd(1.0), 0), INF_D, DZ, "fdiv.d 1/0 = inf, DZ");
        expect_op(d2(F5_DIV, RMM, fd(-3.0), 0), NINF_D, DZ, "fdiv.d -3/0 rmm = -inf, DZ");
        expect_op(s2(F5_DIV, RNE, 0, 0), CNAN_S, NV, "fdiv.s 0/0 = NaN, NV");
        expect_op(d2(F5_DIV, RNE, 0, 0), CNAN_D, NV, "fdiv.d 0/0 = NaN, NV");
        expect_op(d2(F5_DIV, RMM, INF_D, NINF_D), CNAN_D, NV, "fdiv.d inf/-inf rmm = NaN, NV");
        expect_op(d2(F5_DIV, RNE, INF_D, 0), INF_D, 0, "fdiv.d inf/0 = inf, no DZ");
        expect_op(s2(F5_DIV, RNE, fs(1.0f), NINF_S), NZERO_S, 0, "fdiv.s 1/-inf = -0");
        expect_op(s2(F5_SUB, RNE, INF_S, INF_S), CNAN_S, NV, "fsub.s inf-inf = NaN, NV");
        expect_op(d2(F5_ADD, RNE, INF_D, NINF_D), CNAN_D, NV, "fadd.d inf+-inf = NaN, NV");
        expect_op(d2(F5_ADD, RNE, INF_D, INF_D), INF_D, 0, "fadd.d inf+inf = inf");
        expect_op(s2(F5_MUL, RNE, INF_S, 0), CNAN_S, NV, "fmul.s inf*0 = NaN, NV");
        expect_op(d2(F5_MUL, RMM, NZERO_D, NINF_D), CNAN_D, NV, "fmul.d -0*-inf rmm = NaN, NV");
        expect_op(s2(F5_SQRT, RNE, fs(-1.0f), 0), CNAN_S, NV, "fsqrt.s -1 = NaN, NV");
        expect_op(d2(F5_SQRT, RNE, fd(-1.0), 0), CNAN_D, NV, "fsqrt.d -1 = NaN, NV");
        expect_op(d2(F5_SQRT, RMM, fd(-1.0), 0), CNAN_D, NV, "fsqrt.d -1 rmm = NaN, NV");
        expect_op(s2(F5_SQRT, RNE, NZERO_S, 0), NZERO_S, 0, "fsqrt.s -0 = -0");
        expect_op(d2(F5_SQRT, RNE, NZERO_D, 0), NZERO_D, 0, "fsqrt.d -0 = -0");
        expect_op(d2(F5_SQRT, RNE, INF_D, 0), INF_D, 0, "fsqrt.d inf = inf");
        expect_op(d2(F5_SQRT, RNE, NINF_D, 0), CNAN_D, NV, "fsqrt.d -inf = NaN, NV");
        expect_op(d2(F5_SQRT, RNE, MINSUB_D, 0), fd(0x1p-537), 0, "fsqrt.d minsub exact");

        /* NaN results are canonical; sNaN operands raise NV, quiet ones do not. */
        expect_op(s2(F5_ADD, RNE, QNAN_S_PAYLOAD, fs(1.0f)), CNAN_S, 0, "fadd.s qNaN payload -> canonical");
        expect_op(s2(F5_MUL, RNE, fs(1.0f), SNAN_S), CNAN_S, NV, "fmul.s sNaN -> canonical, NV");
        expect_op(s2(F5_SQRT, RNE, SNAN_S, 0), CNAN_S, NV, "fsqrt.s sNaN -> NV");
        expect_op(s2(F5_SQRT, RNE, QNAN_S_PAYLOAD, 0), CNAN_S, 0, "fsqrt.s qNaN");
        expect_op(d2(F5_ADD, RNE, QNAN_D_PAYLOAD, fd(1.0)), CNAN_D, 0, "fadd.d qNaN payload -> canonical");
        expect_op(d2(F5_DIV, RNE, SNAN_D, QNAN_D_PAYLOAD), CNAN_D, NV, "fdiv.d sNaN/qNaN -> NV");
        expect_op(d2(F5_SUB, RMM, QNAN_D_PAYLOAD, SNAN_D), CNAN_D, NV, "fsub.d rmm qNaN-sNaN -> NV");
        expect_op(d2(F5_SQRT, RNE, QNAN_D_PAYLOAD | (UINT64_C(1) << 63), 0), CNAN_D, 0,
               "fsqrt.d -qNaN -> canonical");
}

static void test_overflow_underflow(void) {

        expect_op(s2(F5_MUL, RNE, MAX_S, fs(2.0f)), INF_S, OF | NX, "fmul.s max*2 rne = inf");
        expect_op(s2(F5_MUL, RTZ, MAX_S, fs(2.0f)), MAX_S, OF | NX, "fmul.s max*2 rtz = max");
        expect_op(s2(F5_MUL, RDN, MAX_S, fs(2.0f)), MAX_S, OF | NX, "fmul.s max*2 rdn = max");
        expect_op(s2(F5_MUL, RUP, MAX_S, fs(2.0f)), INF_S, OF | NX, "fmul.s max*2 rup = inf");
        expect_op(s2(F5_MUL, RMM, MAX_S, fs(2.0f)), INF_S, OF | NX, "fmul.s max*2 rmm = inf");
        expect_op(s2(F5_MUL, RDN, MAX_S, fs(-2.0f)), NINF_S, OF | NX, "fmul.s max*-2 rdn = -inf");
        expect_op(s2(F5_MUL, RUP, MAX_S, fs(-2.0f)), MAX_S | NZERO_S, OF | NX, "fmul.s max*-2 rup = -max");
        expect_op(d2(F5_ADD, RNE, MAX_D, MAX_D), INF_D, OF | NX, "fadd.d max+max = inf");
        expect_op(d2(F5_ADD, RTZ, MAX_D, MAX_D), MAX_D, OF | NX, "fadd.d max+max rtz = max");
        expect_op(d2(F5_ADD, RMM, MAX_D | NZERO_D, MAX_D | NZERO_D), NINF_D, OF | NX,
               "fadd.d -max-max rmm = -inf");
        expect_op(d2(F5_DIV, RNE, MAX_D, fd(0.5)), INF_D, OF | NX, "fdiv.d max/0.5 = inf");
        /* max + half an ulp: ties away in RMM (overflow), ties to even (also up) in RNE. */
        expect_op(d2(F5_ADD, RNE, MAX_D, fd(0x1p970)), INF_D, OF | NX, "fadd.d max+ulp/2 rne");
        expect_op(d2(F5_ADD, RMM, MAX_D, fd(0x1p970)), INF_D, OF | NX, "fadd.d max+ulp/2 rmm");
        expect_op(d2(F5_ADD, RNE, MAX_D, fd(0x1p969)), MAX_D, NX, "fadd.d max+ulp/4 rne");
        expect_op(d2(F5_ADD, RMM, MAX_D, fd(0x1p969)), MAX_D, NX, "fadd.d max+ulp/4 rmm");

        /* Subnormals are neither flushed nor treated as zero. */
        expect_op(s2(F5_ADD, RNE, MINSUB_S, MINSUB_S), 2, 0, "fadd.s minsub+minsub exact");
        expect_op(s2(F5_MUL, RNE, MINSUB_S, fs(0x1p100f)), fs(0x1p-49f), 0, "fmul.s minsub*2^100");
        expect_op(d2(F5_MUL, RNE, MINSUB_D, fd(0x1p1000)), fd(0x1p-74), 0, "fmul.d minsub*2^1000");
        expect_op(d2(F5_MUL, RNE, MINNORM_D, fd(0.5)), UINT64_C(0x0008000000000000), 0,
               "fmul.d minnorm*0.5 exact subnormal, no UF");
        expect_op(s2(F5_SUB, RNE, 0x00800001, MINNORM_S), MINSUB_S, 0, "fsub.s subnormal difference exact");
        expect_op(s2(F5_MUL, RNE, MINSUB_S, fs(0.5f)), 0, UF | NX, "fmul.s minsub*0.5 rne = 0, UF");
        expect_op(s2(F5_MUL, RUP, MINSUB_S, fs(0.5f)), MINSUB_S, UF | NX, "fmul.s minsub*0.5 rup = minsub");
        expect_op(d2(F5_MUL, RNE, MINSUB_D, fd(0.75)), MINSUB_D, UF | NX, "fmul.d minsub*0.75 rne");
        expect_op(d2(F5_MUL, RDN, MINSUB_D, fd(-0.25)), MINSUB_D | NZERO_D, UF | NX,
               "fmul.d minsub*-0.25 rdn = -minsub");
        expect_op(d2(F5_DIV, RNE, fd(1.0), fd(0x1p1023)), fd(0x1p-1023), 0, "fdiv.d 1/2^1023 exact subnormal");

        /*
         * Tininess after rounding: (1+2^-52) * (2^-1022 - 2^-1074) is
         * 2^-1022 * (1 - 2^-104), which rounds to 2^-1022 with unbounded
         * exponent, so it is not tiny: NX without UF in RNE. In RTZ it
         * rounds to the largest subnormal and is tiny.
         */
        expect_op(d2(F5_MUL, RNE, UINT64_C(0x3ff0000000000001), UINT64_C(0x000fffffffffffff)), MINNORM_D, NX,
               "fmul.d just below 2^-1022 rne: not tiny after rounding");
        expect_op(d2(F5_MUL, RMM, UINT64_C(0x3ff0000000000001), UINT64_C(0x000fffffffffffff)), MINNORM_D, NX,
               "fmul.d just below 2^-1022 rmm: not tiny after rounding");
        expect_op(d2(F5_MUL, RTZ, UINT64_C(0x3ff0000000000001), UINT64_C(0x000fffffffffffff)),
               UINT64_C(0x000fffffffffffff), UF | NX, "fmul.d just below 2^-1022 rtz: tiny");
        expect_op(s2(F5_MUL, RNE, 0x3f800001, 0x007fffff), MINNORM_S, NX,
               "fmul.s just below 2^-126 rne: not tiny after rounding");
        expect_op(s2(F5_MUL, RUP, 0x3f800001, 0x007fffff), MINNORM_S, NX,
               "fmul.s just below 2^-126 rup: not tiny after rounding");
        expect_op(s2(F5_MUL, RDN, 0x3f800001, 0x007fffff), 0x007fffff, UF | NX,
               "fmul.s just below 2^-126 rdn: tiny");
        /* (1 - 2^-24) * 2^-126 is exact at 24 bits below 2^-126: tiny, and inexact as a subnormal. */
        expect_op(s2(F5_MUL, RNE, 0x3f7fffff, MINNORM_S), MINNORM_S, UF | NX,
               "fmul.s (1-2^-24)*2^-126 rne: tiny, rounds up to minnorm");
}

static void test_nan_boxing_and_sign_injection(void) {

        /* An unboxed S operand reads as the canonical NaN. */
        fpu.f[1] = UINT64_C(0x000000003f800000);
        fpu.f[2] = BOX | fs(1.0f);
        fpu.fflags = 0;
        exec(enc_r(F5_ADD, FMT_S, 2, 1, RNE, 3));
        expect(fpu.f[3], fpu.fflags, BOX | CNAN_S, 0, "fadd.s with unboxed operand = canonical NaN");

        fpu.f[1] = UINT64_C(0xfffffffe3f800000);
        exec(enc_r(F5_MUL, FMT_S, 2, 1, RNE, 3));
        expect(fpu.f[3], fpu.fflags, BOX | CNAN_S, 0, "fmul.s with almost-boxed operand = canonical NaN");

        /* FSGNJ.S on an unboxed input uses the canonical NaN. */
        fpu.f[1] = UINT64_C(0x00000000bf800000);
        fpu.f[2] = BOX | fs(-1.0f);
        exec(enc_r(F5_SGNJ, FMT_S, 2, 1, 0, 3));
        CHECK_EQ_U64(fpu.f[3], BOX | 0xffc00000, "fsgnj.s unboxed rs1 -> -canonical NaN");
        fpu.f[1] = BOX | fs(2.0f);
        fpu.f[2] = UINT64_C(0x00000000bf800000);
        exec(enc_r(F5_SGNJ, FMT_S, 2, 1, 0, 3));
        CHECK_EQ_U64(fpu.f[3], BOX | fs(2.0f), "fsgnj.s unboxed rs2 has sign +");

        /* FSGNJ family. */
        fpu.f[1] = BOX | fs(3.0f);
        fpu.f[2] = BOX | fs(-1.0f);
        exec(enc_r(F5_SGNJ, FMT_S, 2, 1, 0, 3));
        CHECK_EQ_U64(fpu.f[3], BOX | fs(-3.0f), "fsgnj.s 3,-1");
        exec(enc_r(F5_SGNJ, FMT_S, 2, 1, 1, 3));
        CHECK_EQ_U64(fpu.f[3], BOX | fs(3.0f), "fsgnjn.s 3,-1");
        exec(enc_r(F5_SGNJ, FMT_S, 2, 1, 2, 3));
        CHECK_EQ_U64(fpu.f[3], BOX | fs(-3.0f), "fsgnjx.s 3,-1");
        fpu.f[1] = BOX | fs(-3.0f);
        exec(enc_r(F5_SGNJ, FMT_S, 2, 1, 2, 3));
        CHECK_EQ_U64(fpu.f[3], BOX | fs(3.0f), "fsgnjx.s -3,-1");
        fpu.f[1] = BOX | SNAN_S;
        fpu.fflags = 0;
        exec(enc_r(F5_SGNJ, FMT_S, 2, 1, 1, 3));
        expect(fpu.f[3], fpu.fflags, BOX | SNAN_S, 0, "fsgnjn.s keeps sNaN payload, no flags");

        fpu.f[1] = fd(3.0);
        fpu.f[2] = fd(-1.0);
        exec(enc_r(F5_SGNJ, FMT_D, 2, 1, 0, 3));
        CHECK_EQ_U64(fpu.f[3], fd(-3.0), "fsgnj.d 3,-1");
        exec(enc_r(F5_SGNJ, FMT_D, 2, 1, 1, 3));
        CHECK_EQ_U64(fpu.f[3], fd(3.0), "fsgnjn.d 3,-1");
        exec(enc_r(F5_SGNJ, FMT_D, 2, 2, 2, 3));
        CHECK_EQ_U64(fpu.f[3], fd(1.0), "fsgnjx.d -1,-1 (fabs)");
        fpu.f[1] = QNAN_D_PAYLOAD;
        exec(enc_r(F5_SGNJ, FMT_D, 2, 1, 0, 3));
        CHECK_EQ_U64(fpu.f[3], QNAN_D_PAYLOAD, "fsgnj.d keeps NaN payload");
}

static void test_moves(void) {
        /* FMV.X.W sign-extends and ignores boxing; FMV.W.X boxes. */
        fpu.f[1] = UINT64_C(0x1234567880000001);
        exec(enc_r(F5_MVXF, FMT_S, 0, 1, 0, 5));
        CHECK_EQ_U64(xr[5], UINT64_C(0xffffffff80000001), "fmv.x.w sign-extends, ignores boxing");
        fpu.f[1] = BOX | 0x7fffffff;
        exec(enc_r(F5_MVXF, FMT_S, 0, 1, 0, 5));
        CHECK_EQ_U64(xr[5], 0x7fffffff, "fmv.x.w positive");
        xr[6] = UINT64_C(0x123456783f800000);
        exec(enc_r(F5_MVFX, FMT_S, 0, 6, 0, 7));
        CHECK_EQ_U64(fpu.f[7], BOX | fs(1.0f), "fmv.w.x boxes the low 32 bits");
        fpu.f[1] = QNAN_D_PAYLOAD;
        exec(enc_r(F5_MVXF, FMT_D, 0, 1, 0, 5));
        CHECK_EQ_U64(xr[5], QNAN_D_PAYLOAD, "fmv.x.d raw bits");
        xr[6] = SNAN_D;
        fpu.fflags = 0;
        exec(enc_r(F5_MVFX, FMT_D, 0, 6, 0, 7));
        expect(fpu.f[7], fpu.fflags, SNAN_D, 0, "fmv.d.x raw bits, no flags");
}

static void test_convert_between_formats(void) {
        /* FCVT.D.S and FCVT.S.D. */
        fpu.f[1] = BOX | fs(0.1f);
        fpu.fflags = 0;
        exec(enc_r(F5_CVT_FF, FMT_D, 0, 1, RNE, 3));
        expect(fpu.f[3], fpu.fflags, fd((double) 0.1f), 0, "fcvt.d.s 0.1f exact");
        fpu.f[1] = BOX | MINSUB_S;
        exec(enc_r(F5_CVT_FF, FMT_D, 0, 1, RNE, 3));
        expect(fpu.f[3], fpu.fflags, fd(0x1p-149), 0, "fcvt.d.s subnormal exact");
        fpu.f[1] = BOX | SNAN_S;
        exec(enc_r(F5_CVT_FF, FMT_D, 0, 1, RNE, 3));
        expect(fpu.f[3], fpu.fflags, CNAN_D, NV, "fcvt.d.s sNaN -> canonical, NV");
        fpu.f[1] = BOX | QNAN_S_PAYLOAD;
        fpu.fflags = 0;
        exec(enc_r(F5_CVT_FF, FMT_D, 0, 1, RNE, 3));
        expect(fpu.f[3], fpu.fflags, CNAN_D, 0, "fcvt.d.s qNaN -> canonical");
        fpu.f[1] = fs(1.0f); /* unboxed */
        exec(enc_r(F5_CVT_FF, FMT_D, 0, 1, RNE, 3));
        expect(fpu.f[3], fpu.fflags, CNAN_D, 0, "fcvt.d.s unboxed -> canonical NaN");
        fpu.f[1] = BOX | NINF_S;
        exec(enc_r(F5_CVT_FF, FMT_D, 0, 1, RNE, 3));
        expect(fpu.f[3], fpu.fflags, NINF_D, 0, "fcvt.d.s -inf");

        static const struct {
                uint64_t d;
                unsigned rm;
                uint32_t want, flags;
                const char *what;
        } sd[] = {
                { UINT64_C(0x3fb999999999999a), RNE, 0x3dcccccd, NX, "fcvt.s.d 0.1 rne" },
                { UINT64_C(0x3fb999999999999a), RTZ, 0x3dcccccc, NX, "fcvt.s.d 0.1 rtz" },
                { UINT64_C(0x3ff0000010000000), RNE, 0x3f800000, NX, "fcvt.s.d 1+2^-24 rne (tie)" },
                { UINT64_C(0x3ff0000010000000), RMM, 0x3f800001, NX, "fcvt.s.d 1+2^-24 rmm (tie)" },
                { UINT64_C(0xbff0000010000000), RMM, 0xbf800001, NX, "fcvt.s.d -1-2^-24 rmm (tie)" },
                { UINT64_C(0x3ff0000008000000), RMM, 0x3f800000, NX, "fcvt.s.d 1+2^-25 rmm" },
                { UINT64_C(0x3ff8000000000000), RMM, 0x3fc00000, 0, "fcvt.s.d 1.5 rmm exact" },
                { UINT64_C(0x7e37e43c8800759c), RNE, INF_S, OF | NX, "fcvt.s.d 1e300 rne" },
                { UINT64_C(0x7e37e43c8800759c), RTZ, MAX_S, OF | NX, "fcvt.s.d 1e300 rtz" },
                { UINT64_C(0xfe37e43c8800759c), RMM, NINF_S, OF | NX, "fcvt.s.d -1e300 rmm" },
                { UINT64_C(0x3810000000000000), RNE, MINNORM_S, 0, "fcvt.s.d 2^-126 exact" },
                { UINT64_C(0x36a0000000000000), RNE, MINSUB_S, 0, "fcvt.s.d 2^-149 exact subnormal" },
                { UINT64_C(0x3690000000000000), RNE, 0, UF | NX, "fcvt.s.d 2^-150 rne tie to 0" },
                { UINT64_C(0x3690000000000000), RMM, MINSUB_S, UF | NX, "fcvt.s.d 2^-150 rmm tie away" },
                { UINT64_C(0x380fffffffe00000), RNE, MINNORM_S, NX, "fcvt.s.d 2^-126(1-2^-32) not tiny" },
                { UINT64_C(0x380fffffffe00000), RTZ, 0x007fffff, UF | NX, "fcvt.s.d 2^-126(1-2^-32) rtz tiny" },
                { UINT64_C(0x0000000000000001), RNE, 0, UF | NX, "fcvt.s.d double minsub" },
                { UINT64_C(0x0000000000000001), RUP, MINSUB_S, UF | NX, "fcvt.s.d double minsub rup" },
                { QNAN_D_PAYLOAD, RNE, CNAN_S, 0, "fcvt.s.d qNaN -> canonical" },
                { SNAN_D, RNE, CNAN_S, NV, "fcvt.s.d sNaN -> canonical, NV" },
                { SNAN_D, RMM, CNAN_S, NV, "fcvt.s.d sNaN rmm -> canonical, NV" },
                { NINF_D, RNE, NINF_S, 0, "fcvt.s.d -inf" },
                { NZERO_D, RMM, NZERO_S, 0, "fcvt.s.d -0 rmm" },
        };
        for (size_t i = 0; i < sizeof(sd) / sizeof(sd[0]); i++) {
                fpu.f[1] = sd[i].d;
                fpu.fflags = 0;
                exec(enc_r(F5_CVT_FF, FMT_S, 1, 1, sd[i].rm, 3));
                expect(fpu.f[3], fpu.fflags, BOX | sd[i].want, sd[i].flags, sd[i].what);
        }
}

static void test_min_max(void) {

        expect_op(s2(F5_MINMAX, 0, fs(1.0f), fs(2.0f)), fs(1.0f), 0, "fmin.s 1,2");
        expect_op(s2(F5_MINMAX, 1, fs(1.0f), fs(2.0f)), fs(2.0f), 0, "fmax.s 1,2");
        expect_op(s2(F5_MINMAX, 0, fs(-1.0f), fs(-2.0f)), fs(-2.0f), 0, "fmin.s -1,-2");
        expect_op(s2(F5_MINMAX, 0, 0, NZERO_S), NZERO_S, 0, "fmin.s +0,-0 = -0");
        expect_op(s2(F5_MINMAX, 0, NZERO_S, 0), NZERO_S, 0, "fmin.s -0,+0 = -0");
        expect_op(s2(F5_MINMAX, 1, 0, NZERO_S), 0, 0, "fmax.s +0,-0 = +0");
        expect_op(s2(F5_MINMAX, 1, NZERO_S, 0), 0, 0, "fmax.s -0,+0 = +0");
        expect_op(s2(F5_MINMAX, 0, QNAN_S_PAYLOAD, fs(3.0f)), fs(3.0f), 0, "fmin.s qNaN,3 = 3");
        expect_op(s2(F5_MINMAX, 1, fs(3.0f), QNAN_S_PAYLOAD), fs(3.0f), 0, "fmax.s 3,qNaN = 3");
        expect_op(s2(F5_MINMAX, 0, SNAN_S, fs(3.0f)), fs(3.0f), NV, "fmin.s sNaN,3 = 3, NV");
        expect_op(s2(F5_MINMAX, 1, QNAN_S_PAYLOAD, QNAN_S_PAYLOAD), CNAN_S, 0, "fmax.s qNaN,qNaN = canonical");
        expect_op(s2(F5_MINMAX, 0, SNAN_S, QNAN_S_PAYLOAD), CNAN_S, NV, "fmin.s sNaN,qNaN = canonical, NV");
        expect_op(s2(F5_MINMAX, 0, NINF_S, fs(-1e30f)), NINF_S, 0, "fmin.s -inf");
        expect_op(s2(F5_MINMAX, 1, INF_S, MAX_S), INF_S, 0, "fmax.s inf");

        expect_op(d2(F5_MINMAX, 0, fd(1.0), fd(2.0)), fd(1.0), 0, "fmin.d 1,2");
        expect_op(d2(F5_MINMAX, 1, fd(-1.0), fd(-2.0)), fd(-1.0), 0, "fmax.d -1,-2");
        expect_op(d2(F5_MINMAX, 0, 0, NZERO_D), NZERO_D, 0, "fmin.d +0,-0 = -0");
        expect_op(d2(F5_MINMAX, 1, NZERO_D, 0), 0, 0, "fmax.d -0,+0 = +0");
        expect_op(d2(F5_MINMAX, 1, fd(-5.0), QNAN_D_PAYLOAD), fd(-5.0), 0, "fmax.d -5,qNaN = -5");
        expect_op(d2(F5_MINMAX, 1, SNAN_D, fd(-5.0)), fd(-5.0), NV, "fmax.d sNaN,-5 = -5, NV");
        expect_op(d2(F5_MINMAX, 0, QNAN_D_PAYLOAD, SNAN_D), CNAN_D, NV, "fmin.d qNaN,sNaN = canonical, NV");
        expect_op(d2(F5_MINMAX, 0, MINSUB_D, MINSUB_D | NZERO_D), MINSUB_D | NZERO_D, 0,
               "fmin.d minsub,-minsub");

        /* Unboxed operand is a (quiet) NaN: the other one wins. */
        fpu.f[1] = fs(1.0f);
        fpu.f[2] = BOX | fs(7.0f);
        fpu.fflags = 0;
        exec(enc_r(F5_MINMAX, FMT_S, 2, 1, 0, 3));
        expect(fpu.f[3], fpu.fflags, BOX | fs(7.0f), 0, "fmin.s unboxed,7 = 7");
}

static uint64_t cmp(unsigned fmt, unsigned funct3, uint64_t a, uint64_t b) {
        fpu.f[1] = fmt == FMT_S ? BOX | a : a;
        fpu.f[2] = fmt == FMT_S ? BOX | b : b;
        fpu.fflags = 0;
        xr[5] = 0x55;
        exec(enc_r(F5_CMP, fmt, 2, 1, funct3, 5));
        return xr[5];
}

static void test_compare(void) {
        enum { LE = 0, LT = 1, EQ = 2 };

        expect_op(cmp(FMT_S, EQ, fs(1.0f), fs(1.0f)), 1, 0, "feq.s 1,1");
        expect_op(cmp(FMT_S, EQ, fs(1.0f), fs(2.0f)), 0, 0, "feq.s 1,2");
        expect_op(cmp(FMT_S, EQ, 0, NZERO_S), 1, 0, "feq.s +0,-0");
        expect_op(cmp(FMT_S, LT, NZERO_S, 0), 0, 0, "flt.s -0,+0");
        expect_op(cmp(FMT_S, LE, 0, NZERO_S), 1, 0, "fle.s +0,-0");
        expect_op(cmp(FMT_S, LT, fs(-2.0f), fs(-1.0f)), 1, 0, "flt.s -2,-1");
        expect_op(cmp(FMT_S, LT, fs(-1.0f), fs(-2.0f)), 0, 0, "flt.s -1,-2");
        expect_op(cmp(FMT_S, LE, fs(-1.0f), fs(-1.0f)), 1, 0, "fle.s -1,-1");
        expect_op(cmp(FMT_S, LT, NINF_S, fs(-1e38f)), 1, 0, "flt.s -inf,-1e38");
        expect_op(cmp(FMT_S, EQ, QNAN_S_PAYLOAD, QNAN_S_PAYLOAD), 0, 0, "feq.s qNaN: 0, no NV");
        expect_op(cmp(FMT_S, EQ, SNAN_S, fs(1.0f)), 0, NV, "feq.s sNaN: NV");
        expect_op(cmp(FMT_S, LT, QNAN_S_PAYLOAD, fs(1.0f)), 0, NV, "flt.s qNaN: NV");
        expect_op(cmp(FMT_S, LE, fs(1.0f), QNAN_S_PAYLOAD), 0, NV, "fle.s qNaN: NV");

        expect_op(cmp(FMT_D, EQ, fd(1.0), fd(1.0)), 1, 0, "feq.d 1,1");
        expect_op(cmp(FMT_D, EQ, NZERO_D, 0), 1, 0, "feq.d -0,+0");
        expect_op(cmp(FMT_D, LT, fd(1.0), fd(2.0)), 1, 0, "flt.d 1,2");
        expect_op(cmp(FMT_D, LT, fd(2.0), fd(2.0)), 0, 0, "flt.d 2,2");
        expect_op(cmp(FMT_D, LE, fd(2.0), fd(2.0)), 1, 0, "fle.d 2,2");
        expect_op(cmp(FMT_D, LE, fd(3.0), fd(2.0)), 0, 0, "fle.d 3,2");
        expect_op(cmp(FMT_D, LT, fd(-3.0), fd(2.0)), 1, 0, "flt.d -3,2");
        expect_op(cmp(FMT_D, LT, MINSUB_D | NZERO_D, 0), 1, 0, "flt.d -minsub,+0");
        expect_op(cmp(FMT_D, EQ, QNAN_D_PAYLOAD, fd(1.0)), 0, 0, "feq.d qNaN: no NV");
        expect_op(cmp(FMT_D, EQ, fd(1.0), SNAN_D), 0, NV, "feq.d sNaN: NV");
        expect_op(cmp(FMT_D, LE, QNAN_D_PAYLOAD, QNAN_D_PAYLOAD), 0, NV, "fle.d qNaN: NV");
        expect_op(cmp(FMT_D, LT, fd(1.0), SNAN_D), 0, NV, "flt.d sNaN: NV");

        /* An unboxed S operand compares as a quiet NaN. */
        fpu.f[1] = fs(1.0f);
        fpu.f[2] = fs(1.0f);
        fpu.fflags = 0;
        exec(enc_r(F5_CMP, FMT_S, 2, 1, EQ, 5));
        expect(xr[5], fpu.fflags, 0, 0, "feq.s unboxed operands: 0");
}

static void test_classify(void) {
        static const struct {
                uint64_t s, d;
                unsigned bit;
                const char *what;
        } c[] = {
                { NINF_S, NINF_D, 0, "-inf" },
                { 0xbf800000, UINT64_C(0xbff0000000000000), 1, "-normal" },
                { 0x807fffff, UINT64_C(0x800fffffffffffff), 2, "-subnormal" },
                { NZERO_S, NZERO_D, 3, "-0" },
                { 0, 0, 4, "+0" },
                { MINSUB_S, MINSUB_D, 5, "+subnormal" },
                { MAX_S, MAX_D, 6, "+normal" },
                { INF_S, INF_D, 7, "+inf" },
                { SNAN_S, SNAN_D, 8, "sNaN" },
                { CNAN_S, CNAN_D, 9, "qNaN" },
                { 0xffffffff, UINT64_C(0xffffffffffffffff), 9, "negative qNaN" },
                { 0xff800001, UINT64_C(0xfff0000000000001), 8, "negative sNaN" },
        };

        for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
                fpu.f[1] = BOX | c[i].s;
                exec(enc_r(F5_MVXF, FMT_S, 0, 1, 1, 5));
                CHECK_EQ_U64(xr[5], UINT64_C(1) << c[i].bit, "fclass.s %s", c[i].what);
                fpu.f[1] = c[i].d;
                exec(enc_r(F5_MVXF, FMT_D, 0, 1, 1, 5));
                CHECK_EQ_U64(xr[5], UINT64_C(1) << c[i].bit, "fclass.d %s", c[i].what);
        }
        fpu.f[1] = fs(1.0f);
        exec(enc_r(F5_MVXF, FMT_S, 0, 1, 1, 5));
        CHECK_EQ_U64(xr[5], 1u << 9, "fclass.s unboxed = qNaN");
}

static void test_to_int(void) {
        static const char *const kname[] = { "w", "wu", "l", "lu" };
        static const struct {
                double v;
                unsigned kind, rm;
                uint64_t want;
                uint32_t flags;
        } c[] = {
                { 2.5, K_W, RNE, 2, NX },
                { 3.5, K_W, RNE, 4, NX },
                { -2.5, K_W, RNE, (uint64_t) -2, NX },
                { 2.5, K_W, RMM, 3, NX },
                { -2.5, K_W, RMM, (uint64_t) -3, NX },
                { 2.4, K_W, RMM, 2, NX },
                { -0.5, K_W, RMM, (uint64_t) -1, NX },
                { 2.7, K_W, RTZ, 2, NX },
                { -2.7, K_W, RTZ, (uint64_t) -2, NX },
                { -2.1, K_W, RDN, (uint64_t) -3, NX },
                { 2.1, K_W, RDN, 2, NX },
                { 2.1, K_W, RUP, 3, NX },
                { -2.9, K_W, RUP, (uint64_t) -2, NX },
                { -7.0, K_W, RNE, (uint64_t) -7, 0 },
                { -0.0, K_W, RNE, 0, 0 },
                { 0x1p-1074, K_W, RUP, 1, NX },
                { -0x1p-1074, K_W, RDN, (uint64_t) -1, NX },
                { 2147483647.0, K_W, RNE, 0x7fffffff, 0 },
                { 2147483647.5, K_W, RTZ, 0x7fffffff, NX },
                { 2147483647.5, K_W, RNE, 0x7fffffff, NV },
                { 2147483648.0, K_W, RTZ, 0x7fffffff, NV },
                { -2147483648.0, K_W, RNE, UINT64_C(0xffffffff80000000), 0 },
                { -2147483648.4, K_W, RNE, UINT64_C(0xffffffff80000000), NX },
                { -2147483648.6, K_W, RNE, UINT64_C(0xffffffff80000000), NV },
                { -2147483648.6, K_W, RTZ, UINT64_C(0xffffffff80000000), NX },
                { 3e9, K_W, RNE, 0x7fffffff, NV },
                { -3e9, K_W, RNE, UINT64_C(0xffffffff80000000), NV },
                { INFINITY, K_W, RNE, 0x7fffffff, NV },
                { -INFINITY, K_W, RNE, UINT64_C(0xffffffff80000000), NV },
                { NAN, K_W, RNE, 0x7fffffff, NV },

                { 3e9, K_WU, RNE, UINT64_C(0xffffffffb2d05e00), 0 },     /* sign-extended */
                { 4294967295.0, K_WU, RNE, UINT64_C(0xffffffffffffffff), 0 },
                { 4294967295.5, K_WU, RNE, UINT64_C(0xffffffffffffffff), NV },
                { 5e9, K_WU, RNE, UINT64_C(0xffffffffffffffff), NV },
                { 1.5, K_WU, RNE, 2, NX },
                { -0.3, K_WU, RTZ, 0, NX },                             /* rounds to 0: not invalid */
                { -0.3, K_WU, RNE, 0, NX },
                { -0.5, K_WU, RNE, 0, NX },
                { -0.5, K_WU, RMM, 0, NV },
                { -0.3, K_WU, RDN, 0, NV },
                { -0.9, K_WU, RUP, 0, NX },
                { -1.0, K_WU, RTZ, 0, NV },
                { -INFINITY, K_WU, RNE, 0, NV },
                { INFINITY, K_WU, RNE, UINT64_C(0xffffffffffffffff), NV },
                { NAN, K_WU, RNE, UINT64_C(0xffffffffffffffff), NV },
                { -0.0, K_WU, RNE, 0, 0 },

                { 0x1p62, K_L, RNE, UINT64_C(0x4000000000000000), 0 },
                { 0x1p63, K_L, RNE, UINT64_C(0x7fffffffffffffff), NV },
                { -0x1p63, K_L, RNE, UINT64_C(0x8000000000000000), 0 },
                { -0x1p64, K_L, RNE, UINT64_C(0x8000000000000000), NV },
                { 1e300, K_L, RNE, UINT64_C(0x7fffffffffffffff), NV },
                { -2.5, K_L, RMM, (uint64_t) -3, NX },
                { 123456789012.75, K_L, RNE, 123456789013, NX },
                { NAN, K_L, RNE, UINT64_C(0x7fffffffffffffff), NV },
                { -INFINITY, K_L, RTZ, UINT64_C(0x8000000000000000), NV },

                { 0x1p63, K_LU, RNE, UINT64_C(0x8000000000000000), 0 },
                { 18446744073709549568.0, K_LU, RNE, UINT64_C(0xfffffffffffff800), 0 },
                { 0x1p64, K_LU, RNE, UINT64_C(0xffffffffffffffff), NV },
                { -1.0, K_LU, RNE, 0, NV },
                { -0.3, K_LU, RTZ, 0, NX },
                { 2.5, K_LU, RMM, 3, NX },
                { NAN, K_LU, RNE, UINT64_C(0xffffffffffffffff), NV },
                { INFINITY, K_LU, RNE, UINT64_C(0xffffffffffffffff), NV },
                { -INFINITY, K_LU, RNE, 0, NV },
        };
        char what[128];

        for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
                static const char *const rname[] = { "rne", "rtz", "rdn", "rup", "rmm" };

                snprintf(what, sizeof(what), "fcvt.%s.d %.17g %s", kname[c[i].kind], c[i].v, rname[c[i].rm]);
                expect_op(to_int(FMT_D, c[i].kind, c[i].rm, fd(c[i].v)), c[i].want, c[i].flags, what);
                /* The same in S when the value is exactly a float. */
                if ((double) (float) c[i].v == c[i].v || isnan(c[i].v)) {
                        snprintf(what, sizeof(what), "fcvt.%s.s %.9g %s", kname[c[i].kind], c[i].v,
                                 rname[c[i].rm]);
                        expect_op(to_int(FMT_S, c[i].kind, c[i].rm, BOX | fs((float) c[i].v)), c[i].want,
                               c[i].flags, what);
                }
        }

        expect_op(to_int(FMT_S, K_W, RNE, BOX | SNAN_S), 0x7fffffff, NV, "fcvt.w.s sNaN");
        expect_op(to_int(FMT_S, K_W, RNE, BOX | 0xffc00000), 0x7fffffff, NV, "fcvt.w.s -qNaN = max");
        expect_op(to_int(FMT_S, K_L, RNE, fs(-5.0f)), UINT64_C(0x7fffffffffffffff), NV,
               "fcvt.l.s unboxed = NaN = max");
        fpu.frm = RMM;
        expect_op(to_int(FMT_D, K_W, DYN, fd(-2.5)), (uint64_t) -3, NX, "fcvt.w.d dyn frm=rmm -2.5");
        fpu.frm = RNE;
}

static void test_from_int(void) {

        expect_op(from_int(FMT_S, K_W, RNE, (uint64_t) -7), BOX | fs(-7.0f), 0, "fcvt.s.w -7");
        expect_op(from_int(FMT_S, K_W, RNE, UINT64_C(0x1234567800000005)), BOX | fs(5.0f), 0,
               "fcvt.s.w uses low 32 bits");
        expect_op(from_int(FMT_S, K_W, RNE, 16777217), BOX | fs(16777216.0f), NX, "fcvt.s.w 2^24+1 rne");
        expect_op(from_int(FMT_S, K_W, RMM, 16777217), BOX | fs(16777218.0f), NX, "fcvt.s.w 2^24+1 rmm");
        expect_op(from_int(FMT_S, K_W, RUP, 16777217), BOX | fs(16777218.0f), NX, "fcvt.s.w 2^24+1 rup");
        expect_op(from_int(FMT_S, K_W, RMM, (uint64_t) -16777217), BOX | fs(-16777218.0f), NX,
               "fcvt.s.w -(2^24+1) rmm");
        expect_op(from_int(FMT_S, K_W, RDN, (uint64_t) -16777217), BOX | fs(-16777218.0f), NX,
               "fcvt.s.w -(2^24+1) rdn");
        expect_op(from_int(FMT_S, K_W, RTZ, (uint64_t) -16777217), BOX | fs(-16777216.0f), NX,
               "fcvt.s.w -(2^24+1) rtz");
        expect_op(from_int(FMT_S, K_W, RNE, UINT64_C(0x80000000)), BOX | fs(-2147483648.0f), 0,
               "fcvt.s.w int_min");
        expect_op(from_int(FMT_S, K_WU, RNE, UINT64_C(0xffffffff)), BOX | fs(4294967296.0f), NX,
               "fcvt.s.wu 0xffffffff");
        expect_op(from_int(FMT_S, K_WU, RTZ, UINT64_C(0xffffffffffffffff)), BOX | 0x4f7fffff, NX,
               "fcvt.s.wu 0xffffffff rtz (upper bits ignored)");
        expect_op(from_int(FMT_S, K_L, RNE, (uint64_t) -1), BOX | fs(-1.0f), 0, "fcvt.s.l -1");
        expect_op(from_int(FMT_S, K_L, RMM, UINT64_C(0x7fffffffffffffff)), BOX | fs(0x1p63f), NX,
               "fcvt.s.l int64_max rmm");
        expect_op(from_int(FMT_S, K_LU, RNE, UINT64_C(0xffffffffffffffff)), BOX | fs(0x1p64f), NX,
               "fcvt.s.lu uint64_max");
        expect_op(from_int(FMT_S, K_LU, RTZ, UINT64_C(0xffffffffffffffff)), BOX | 0x5f7fffff, NX,
               "fcvt.s.lu uint64_max rtz");
        expect_op(from_int(FMT_S, K_LU, RNE, 0), BOX | 0, 0, "fcvt.s.lu 0 = +0");

        expect_op(from_int(FMT_D, K_W, RNE, UINT64_C(0xffffffff80000000)), fd(-2147483648.0), 0,
               "fcvt.d.w int_min");
        expect_op(from_int(FMT_D, K_W, RMM, UINT64_C(0xabcdef00ffffffff)), fd(-1.0), 0,
               "fcvt.d.w low 32 bits");
        expect_op(from_int(FMT_D, K_WU, RNE, UINT64_C(0xffffffffffffffff)), fd(4294967295.0), 0,
               "fcvt.d.wu 0xffffffff");
        expect_op(from_int(FMT_D, K_L, RNE, (UINT64_C(1) << 53) + 1), fd(0x1p53), NX, "fcvt.d.l 2^53+1 rne");
        expect_op(from_int(FMT_D, K_L, RMM, (UINT64_C(1) << 53) + 1), fd(0x1p53 + 2), NX,
               "fcvt.d.l 2^53+1 rmm");
        expect_op(from_int(FMT_D, K_L, RUP, (UINT64_C(1) << 53) + 1), fd(0x1p53 + 2), NX,
               "fcvt.d.l 2^53+1 rup");
        expect_op(from_int(FMT_D, K_L, RMM, (uint64_t) -((INT64_C(1) << 53) + 3)), fd(-0x1p53 - 4), NX,
               "fcvt.d.l -(2^53+3) rmm");
        expect_op(from_int(FMT_D, K_L, RNE, (uint64_t) -((INT64_C(1) << 53) + 3)), fd(-0x1p53 - 4), NX,
               "fcvt.d.l -(2^53+3) rne");
        expect_op(from_int(FMT_D, K_L, RNE, UINT64_C(0x8000000000000000)), fd(-0x1p63), 0,
               "fcvt.d.l int64_min");
        expect_op(from_int(FMT_D, K_LU, RNE, UINT64_C(0xffffffffffffffff)), fd(0x1p64), NX,
               "fcvt.d.lu uint64_max");
        expect_op(from_int(FMT_D, K_LU, RDN, UINT64_C(0xffffffffffffffff)), UINT64_C(0x43efffffffffffff), NX,
               "fcvt.d.lu uint64_max rdn");
        expect_op(from_int(FMT_D, K_LU, RMM, UINT64_C(0x8000000000000400)), UINT64_C(0x43e0000000000001), NX,
               "fcvt.d.lu 2^63+2^10 rmm (tie)");
        expect_op(from_int(FMT_D, K_LU, RNE, UINT64_C(0x8000000000000400)), UINT64_C(0x43e0000000000000), NX,
               "fcvt.d.lu 2^63+2^10 rne (tie)");
}

static void test_fused(void) {

        expect_op(s3(OPC_FMADD, RNE, fs(2.0f), fs(3.0f), fs(1.0f)), fs(7.0f), 0, "fmadd.s 2*3+1");
        expect_op(s3(OPC_FMSUB, RNE, fs(2.0f), fs(3.0f), fs(1.0f)), fs(5.0f), 0, "fmsub.s 2*3-1");
        expect_op(s3(OPC_FNMSUB, RNE, fs(2.0f), fs(3.0f), fs(1.0f)), fs(-5.0f), 0, "fnmsub.s -(2*3)+1");
        expect_op(s3(OPC_FNMADD, RNE, fs(2.0f), fs(3.0f), fs(1.0f)), fs(-7.0f), 0, "fnmadd.s -(2*3)-1");
        expect_op(d3(OPC_FMADD, RNE, fd(2.0), fd(3.0), fd(1.0)), fd(7.0), 0, "fmadd.d 2*3+1");
        expect_op(d3(OPC_FMSUB, RNE, fd(2.0), fd(3.0), fd(1.0)), fd(5.0), 0, "fmsub.d 2*3-1");
        expect_op(d3(OPC_FNMSUB, RNE, fd(2.0), fd(3.0), fd(1.0)), fd(-5.0), 0, "fnmsub.d -(2*3)+1");
        expect_op(d3(OPC_FNMADD, RNE, fd(2.0), fd(3.0), fd(1.0)), fd(-7.0), 0, "fnmadd.d -(2*3)-1");

        /* Fused: one rounding. (1+2^-12)^2 - (1+2^-11) = 2^-24 exactly. */
        expect_op(s3(OPC_FMSUB, RNE, 0x3f800800, 0x3f800800, 0x3f801000), fs(0x1p-24f), 0,
               "fmsub.s residual is exact (fused)");
        expect_op(d3(OPC_FMSUB, RNE, fd(1.0 + 0x1p-30), fd(1.0 + 0x1p-30), fd(1.0 + 0x1p-29)), fd(0x1p-60), 0,
               "fmsub.d residual is exact (fused)");
        expect_op(d3(OPC_FMSUB, RMM, fd(1.0 + 0x1p-30), fd(1.0 + 0x1p-30), fd(1.0 + 0x1p-29)), fd(0x1p-60), 0,
               "fmsub.d rmm residual is exact (fused)");
        /* 1*1 + 2^-24 in S is a tie. */
        expect_op(s3(OPC_FMADD, RNE, fs(1.0f), fs(1.0f), fs(0x1p-24f)), fs(1.0f), NX, "fmadd.s tie rne");
        expect_op(s3(OPC_FMADD, RMM, fs(1.0f), fs(1.0f), fs(0x1p-24f)), 0x3f800001, NX, "fmadd.s tie rmm");
        expect_op(s3(OPC_FNMADD, RMM, fs(1.0f), fs(1.0f), fs(0x1p-24f)), 0xbf800001, NX, "fnmadd.s tie rmm");
        expect_op(d3(OPC_FMADD, RMM, fd(1.0 + 0x1p-52), fd(1.0 + 0x1p-52), fd(-0x1p-51)), fd(1.0), NX,
               "fmadd.d (1+u)^2-2u rmm");
        expect_op(d3(OPC_FNMSUB, RUP, fd(0x1p-1000), fd(0x1p-100), fd(1.0)), fd(1.0), NX,
               "fnmsub.d 1 - tiny rup = 1");
        expect_op(d3(OPC_FNMSUB, RDN, fd(0x1p-1000), fd(0x1p-100), fd(1.0)), UINT64_C(0x3fefffffffffffff), NX,
               "fnmsub.d 1 - tiny rdn");

        /* inf * 0 + qNaN must raise NV. */
        expect_op(s3(OPC_FMADD, RNE, INF_S, 0, QNAN_S_PAYLOAD), CNAN_S, NV, "fmadd.s inf*0+qNaN NV");
        expect_op(d3(OPC_FMADD, RNE, 0, NINF_D, CNAN_D), CNAN_D, NV, "fmadd.d 0*-inf+qNaN NV");
        expect_op(d3(OPC_FNMADD, RMM, INF_D, 0, CNAN_D), CNAN_D, NV, "fnmadd.d rmm inf*0+qNaN NV");
        expect_op(d3(OPC_FMADD, RNE, fd(1.0), QNAN_D_PAYLOAD, fd(1.0)), CNAN_D, 0, "fmadd.d qNaN");
        expect_op(d3(OPC_FMADD, RNE, fd(1.0), fd(1.0), SNAN_D), CNAN_D, NV, "fmadd.d sNaN addend NV");
        expect_op(d3(OPC_FMSUB, RNE, INF_D, fd(1.0), INF_D), CNAN_D, NV, "fmsub.d inf-inf NV");
        expect_op(d3(OPC_FNMSUB, RNE, INF_D, fd(1.0), INF_D), CNAN_D, NV, "fnmsub.d -(inf*1)+inf NV");
        expect_op(d3(OPC_FNMADD, RNE, INF_D, fd(1.0), INF_D), NINF_D, 0, "fnmadd.d -(inf*1)-inf = -inf");
        expect_op(s3(OPC_FNMSUB, RMM, INF_S, fs(1.0f), NINF_S), NINF_S, 0, "fnmsub.s rmm -(inf*1)+-inf");

        /* Signs of exact zeros. */
        expect_op(d3(OPC_FMADD, RNE, fd(1.0), 0, NZERO_D), 0, 0, "fmadd.d 1*0 + -0 = +0");
        expect_op(d3(OPC_FMADD, RDN, fd(1.0), 0, NZERO_D), NZERO_D, 0, "fmadd.d 1*0 + -0 rdn = -0");
        expect_op(d3(OPC_FNMADD, RNE, fd(1.0), 0, 0), NZERO_D, 0, "fnmadd.d -(1*0) - 0 = -0");
        expect_op(d3(OPC_FNMSUB, RNE, fd(1.0), 0, 0), 0, 0, "fnmsub.d -(1*0) + 0 = +0");
        expect_op(s3(OPC_FMSUB, RNE, fs(1.0f), 0, 0), 0, 0, "fmsub.s 1*0 - 0 = +0");
        expect_op(s3(OPC_FMSUB, RDN, fs(1.0f), 0, 0), NZERO_S, 0, "fmsub.s 1*0 - 0 rdn = -0");
        expect_op(s3(OPC_FNMADD, RDN, fs(1.0f), 0, NZERO_S), NZERO_S, 0, "fnmadd.s -(1*0) - -0 rdn = -0");
        expect_op(d3(OPC_FMADD, RNE, fd(2.0), fd(3.0), fd(-6.0)), 0, 0, "fmadd.d 2*3-6 = +0");
        expect_op(d3(OPC_FMADD, RDN, fd(2.0), fd(3.0), fd(-6.0)), NZERO_D, 0, "fmadd.d 2*3-6 rdn = -0");
        expect_op(d3(OPC_FMADD, RMM, fd(2.0), fd(3.0), fd(-6.0)), 0, 0, "fmadd.d 2*3-6 rmm = +0");

        /* Overflow and underflow through the fused path. */
        expect_op(d3(OPC_FMADD, RNE, MAX_D, fd(2.0), NINF_D), NINF_D, 0, "fmadd.d max*2 + -inf = -inf");
        expect_op(d3(OPC_FMADD, RNE, MAX_D, fd(2.0), MAX_D | NZERO_D), MAX_D, 0,
               "fmadd.d max*2 - max = max, no overflow (fused)");
        expect_op(d3(OPC_FMADD, RMM, MAX_D, fd(2.0), MAX_D | NZERO_D), MAX_D, 0,
               "fmadd.d rmm max*2 - max = max (fused)");
        expect_op(d3(OPC_FMADD, RNE, MAX_D, fd(2.0), fd(-1.0)), INF_D, OF | NX, "fmadd.d max*2 - 1 overflows");
        expect_op(s3(OPC_FMADD, RNE, MINNORM_S, fs(0.5f), MINSUB_S), 0x00400001, 0,
               "fmadd.s subnormal exact");
        expect_op(s3(OPC_FMADD, RMM, MINSUB_S, fs(0.5f), 0), MINSUB_S, UF | NX, "fmadd.s minsub*0.5 rmm");
}

/* Leaves every exception flag raised in the host FPU, by real arithmetic. */
static void raise_host_flags(void) {
        volatile double zero = 0.0, one = 1.0, big = 0x1p1023, tiny = 0x1p-1022;
        volatile double r;

        r = zero / zero;
        r = one / zero;
        r = big * big;
        r = tiny * tiny;
        (void) r;
}

static void test_flags_accrue(void) {

        /* Flags are never cleared by an instruction. */
        fpu.f[1] = fd(1.0);
        fpu.f[2] = fd(3.0);
        fpu.fflags = DZ;
        exec(enc_r(F5_DIV, FMT_D, 2, 1, RNE, 3));
        CHECK_EQ_U64(fpu.fflags, DZ | NX, "fflags accrue: DZ kept, NX added");
        fpu.f[2] = fd(4.0);
        fpu.fflags = NV | OF;
        exec(enc_r(F5_DIV, FMT_D, 2, 1, RNE, 3));
        CHECK_EQ_U64(fpu.fflags, NV | OF, "fflags accrue: exact op keeps NV|OF");

        /* Inexact op, then the guest clears fflags: an exact op must not bring NX back. */
        d2(F5_DIV, RNE, fd(1.0), fd(3.0));
        CHECK_EQ_U64(fpu.fflags, NX, "1/3 raises NX");
        d2(F5_ADD, RNE, fd(1.0), fd(3.0));
        CHECK_EQ_U64(fpu.fflags, 0, "exact add after clearing fflags: no stale NX");
        s2(F5_MUL, RTZ, fs(3.0f), fs(3.0f));
        CHECK_EQ_U64(fpu.fflags, 0, "exact mul rtz after clearing fflags: no stale NX");

        /* Host flags raised by unrelated host code are not charged to the guest. */
        raise_host_flags();
        d2(F5_MUL, RNE, fd(1.5), fd(2.0));
        CHECK_EQ_U64(fpu.fflags, 0, "exact mul with polluted host flags: no flags");
        raise_host_flags();
        from_int(FMT_D, K_L, RNE, (UINT64_C(1) << 60) + 1);
        CHECK_EQ_U64(fpu.fflags, NX, "fcvt.d.l inexact with polluted host flags: NX");
        raise_host_flags();
        from_int(FMT_D, K_L, RUP, (UINT64_C(1) << 60));
        CHECK_EQ_U64(fpu.fflags, 0, "fcvt.d.l exact with polluted host flags: no flags");
}

/* Every illegal encoding returns -1 and changes nothing. */
static void check_illegal(uint32_t insn, uint32_t frm, const char *what) {
        FpuState before;
        uint64_t xbefore[32];
        int r;

        for (unsigned i = 0; i < 32; i++) {
                fpu.f[i] = UINT64_C(0x0123456789abcdef) * (i + 1);
                xr[i] = UINT64_C(0xfedcba9876543210) ^ i;
        }
        fpu.f[1] = BOX | SNAN_S;
        fpu.f[2] = SNAN_D;
        fpu.fflags = 0;
        fpu.frm = frm;
        before = fpu;
        memcpy(xbefore, xr, sizeof(xbefore));
        r = fpu_execute(&fpu, xr, insn);
        CHECK(r == -1 && memcmp(&before, &fpu, sizeof(fpu)) == 0 && memcmp(xbefore, xr, sizeof(xr)) == 0,
              "illegal: %s", what);
        fpu.frm = RNE;
}

static void test_illegal(void) {
        check_illegal(enc_r(F5_ADD, 2, 2, 1, RNE, 3), 0, "fadd.h (fmt 2)");
        check_illegal(enc_r(F5_ADD, 3, 2, 1, RNE, 3), 0, "fadd.q (fmt 3)");
        check_illegal(enc_r(F5_MUL, FMT_S, 2, 1, 5, 3), 0, "fmul.s rm=5");
        check_illegal(enc_r(F5_MUL, FMT_D, 2, 1, 6, 3), 0, "fmul.d rm=6");
        check_illegal(enc_r(F5_ADD, FMT_S, 2, 1, DYN, 3), 5, "fadd.s dyn, frm=5");
        check_illegal(enc_r(F5_SUB, FMT_D, 2, 1, DYN, 3), 6, "fsub.d dyn, frm=6");
        check_illegal(enc_r(F5_DIV, FMT_D, 2, 1, DYN, 3), 7, "fdiv.d dyn, frm=7");
        check_illegal(enc_r4(OPC_FMADD, FMT_D, 3, 2, 1, 5, 4), 0, "fmadd.d rm=5");
        check_illegal(enc_r4(OPC_FNMADD, FMT_S, 3, 2, 1, DYN, 4), 7, "fnmadd.s dyn frm=7");
        check_illegal(enc_r4(OPC_FMSUB, 2, 3, 2, 1, RNE, 4), 0, "fmsub.h (fmt 2)");
        check_illegal(enc_r4(OPC_FNMSUB, 3, 3, 2, 1, RNE, 4), 0, "fnmsub.q (fmt 3)");
        check_illegal(enc_r(F5_SQRT, FMT_S, 1, 1, RNE, 3), 0, "fsqrt.s rs2=1");
        check_illegal(enc_r(F5_SQRT, FMT_D, 0, 1, 5, 3), 0, "fsqrt.d rm=5");
        check_illegal(enc_r(F5_SGNJ, FMT_S, 2, 1, 3, 3), 0, "fsgnj funct3=3");
        check_illegal(enc_r(F5_MINMAX, FMT_D, 2, 1, 2, 3), 0, "fmin/fmax funct3=2");
        check_illegal(enc_r(F5_CMP, FMT_D, 2, 1, 3, 5), 0, "fcmp funct3=3");
        check_illegal(enc_r(F5_CVT_FF, FMT_S, 0, 1, RNE, 3), 0, "fcvt.s.s");
        check_illegal(enc_r(F5_CVT_FF, FMT_D, 1, 1, RNE, 3), 0, "fcvt.d.d");
        check_illegal(enc_r(F5_CVT_FF, FMT_S, 2, 1, RNE, 3), 0, "fcvt.s.h");
        check_illegal(enc_r(F5_CVT_FF, FMT_D, 0, 1, 5, 3), 0, "fcvt.d.s rm=5");
        check_illegal(enc_r(F5_CVT_FF, FMT_S, 1, 1, DYN, 3), 5, "fcvt.s.d dyn frm=5");
        check_illegal(enc_r(F5_CVT_IF, FMT_D, 4, 1, RTZ, 5), 0, "fcvt.?.d rs2=4");
        check_illegal(enc_r(F5_CVT_IF, FMT_S, 0, 1, 6, 5), 0, "fcvt.w.s rm=6");
        check_illegal(enc_r(F5_CVT_FI, FMT_D, 0, 6, 5, 3), 0, "fcvt.d.w rm=5 (exact, still illegal)");
        check_illegal(enc_r(F5_CVT_FI, FMT_S, 5, 6, RNE, 3), 0, "fcvt.s.? rs2=5");
        check_illegal(enc_r(F5_MVXF, FMT_S, 0, 1, 2, 5), 0, "fmv.x.w funct3=2");
        check_illegal(enc_r(F5_MVXF, FMT_D, 1, 1, 1, 5), 0, "fclass.d rs2=1");
        check_illegal(enc_r(F5_MVXF, FMT_D, 1, 1, 0, 5), 0, "fmv.x.d rs2=1");
        check_illegal(enc_r(F5_MVFX, FMT_S, 0, 6, 1, 3), 0, "fmv.w.x funct3=1");
        check_illegal(enc_r(F5_MVFX, FMT_D, 3, 6, 0, 3), 0, "fmv.d.x rs2=3");
        check_illegal(enc_r(0x06, FMT_S, 2, 1, RNE, 3), 0, "funct5 0x06");
        check_illegal(enc_r(0x1f, FMT_D, 2, 1, RNE, 3), 0, "funct5 0x1f");
        check_illegal(enc_r(F5_MVXF, 2, 0, 1, 0, 5), 0, "fmv.x.h");
        check_illegal((enc_r(F5_ADD, FMT_S, 2, 1, RNE, 3) & ~0x7fu) | 0x33, 0, "integer OP opcode");
        check_illegal(0, 0, "all zeros");
}

static void test_x0_destination(void) {
        /* Writes to x0 are allowed; the caller restores zero. */
        fpu.f[1] = fd(1.0);
        fpu.f[2] = fd(1.0);
        CHECK(fpu_execute(&fpu, xr, enc_r(F5_CMP, FMT_D, 2, 1, 2, 0)) == 0, "feq.d to x0 is legal");
}

int main(void) {
        test_basic_arith();
        test_rounding_modes();
        test_special_values();
        test_overflow_underflow();
        test_nan_boxing_and_sign_injection();
        test_moves();
        test_convert_between_formats();
        test_min_max();
        test_compare();
        test_classify();
        test_to_int();
        test_from_int();
        test_fused();
        test_flags_accrue();
        test_illegal();
        test_x0_destination();
        CHECK(unexpected_illegal == 0, "no legal instruction was rejected (%u were)", unexpected_illegal);
        CHECK(host_round_is_nearest(), "host rounding mode left at nearest");
        return tap_finish();
}
