/* SPDX-License-Identifier: MIT */

/*
 * Randomized cross-checks of emulator/cpu/fpu.c against the host FPU.
 *
 * This file includes fpu.c itself so it can reach the exact software
 * arithmetic that implements RMM and check it in the four rounding modes
 * the host also has (results and flags must agree bit for bit). RMM is
 * checked against a reference built from host results in the other modes
 * plus an exact tie test done in __float128. Then fpu_execute() as a whole
 * is run against the host reference with random accrued flags and random
 * stale host flags, which exercises the flag bookkeeping.
 *
 * ORRERY_FPU_ITERATIONS=<n> in the environment raises the iteration count.
 */

#include <stdlib.h>

#include "cpu/fpu.c"
#include "tap.h"

static unsigned iterations = 20000;

/* The host rounding mode as SSE sees it (glibc's fegetround() reads the x87 control word). */
static bool host_round_is_nearest(void) {
#if defined(__x86_64__) && defined(__SSE2__)
        return (__builtin_ia32_stmxcsr() & 0x6000) == 0 && fegetround() == FE_TONEAREST;
#else
        return fegetround() == FE_TONEAREST;
#endif
}

/* ---------------------------------------------------------------------- */
/* Random operands biased towards the interesting places */

static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);

static uint64_t rnd(void) {
        /* xorshift64* */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * UINT64_C(0x2545f4914f6cdd1d);
}

static uint64_t rnd_below(uint64_t n) {
        return rnd() % n;
}

static uint64_t gen_mant(const FloatFormat *ff) {
        uint64_t mask = ff_frac_mask(ff);
        uint64_t m = rnd() & mask;

        switch (rnd_below(6)) {
        case 0: /* few significant bits: exact results and ties */
                return m & ~(mask >> rnd_below(ff->prec));
        case 1: /* trailing ones */
                return (m | (mask >> rnd_below(ff->prec))) & mask;
        case 2: /* almost all ones or zeros */
                return (rnd_below(2) ? mask : 0) ^ (UINT64_C(1) << rnd_below(ff->prec - 1));
        default:
                return m;
        }
}

/* 'ref' is a biased exponent to stay near, or -1. */
static uint64_t gen(const FloatFormat *ff, int ref) {
        uint64_t emax = ff_exp_max(ff);
        uint64_t sign = rnd_below(2) << ff_sign_shift(ff);
        int64_t e;

        switch (rnd_below(16)) {
        case 0: {
                static const unsigned pick_max = 9;

                switch (rnd_below(pick_max)) {
                case 0:
                        return sign; /* zero */
                case 1:
                        return sign | (emax << (ff->prec - 1)); /* inf */
                case 2: /* qNaN with random payload */
                        return sign | (emax << (ff->prec - 1)) | (UINT64_C(1) << (ff->prec - 2)) |
                               (rnd() & ff_frac_mask(ff));
                case 3: /* sNaN */
                        return sign | (emax << (ff->prec - 1)) | ((rnd() & (ff_frac_mask(ff) >> 1)) | 1);
                case 4:
                        return sign | 1; /* smallest subnormal */
                case 5:
                        return sign | ff_frac_mask(ff); /* largest subnormal */
                case 6:
                        return sign | ((emax - 1) << (ff->prec - 1)) | ff_frac_mask(ff); /* max */
                case 7:
                        return sign | ((uint64_t) (emax >> 1) << (ff->prec - 1)); /* 1.0 */
                default:
                        return sign | (UINT64_C(1) << (ff->prec - 1)); /* min normal */
                }
        }
        case 1:
        case 2:
        case 3:
                e = (int64_t) rnd_below(ff->prec + 3); /* subnormal and just above */
                break;
        case 4:
        case 5:
                e = (int64_t) emax - 1 - (int64_t) rnd_below(ff->prec + 3);
                break;
        case 6:
        case 7:
        case 8:
        case 9:
        case 10:
                if (ref >= 0) {
                        e = ref + (int64_t) rnd_below(2 * ff->prec + 7) - ff->prec - 3;
                        break;
                }
                /* fall through */
        default:
                e = 1 + (int64_t) rnd_below(emax - 1);
                break;
        }
        if (e < 0)
                e = 0;
        if (e > (int64_t) emax - 1)
                e = (int64_t) emax - 1;
        return sign | ((uint64_t) e << (ff->prec - 1)) | gen_mant(ff);
}

static int biased_exp(const FloatFormat *ff, uint64_t v) {
        return (int) ((v >> (ff->prec - 1)) & ff_exp_max(ff));
}

/* ---------------------------------------------------------------------- */
/* Host reference */

static const int host_mode[4] = { FE_TONEAREST, FE_TOWARDZERO, FE_DOWNWARD, FE_UPWARD };

static uint32_t ref_flags(void) {
        int e = fetestexcept(FE_ALL_EXCEPT);

        return ((e & FE_INVALID) ? FFLAG_NV : 0) | ((e & FE_DIVBYZERO) ? FFLAG_DZ : 0) |
               ((e & FE_OVERFLOW) ? FFLAG_OF : 0) | ((e & FE_UNDERFLOW) ? FFLAG_UF : 0) |
               ((e & FE_INEXACT) ? FFLAG_NX : 0);
}

static uint64_t ref_arith(const FloatFormat *ff, unsigned op, uint64_t a, uint64_t b, uint64_t c, unsigned rm,
                          uint32_t *flags) {
        uint64_t r;

        fesetround(host_mode[rm]);
        feclearexcept(FE_ALL_EXCEPT);
        if (ff == &format_s) {
                volatile float x = f32_from_bits((uint32_t) a), y = f32_from_bits((uint32_t) b),
                               z = f32_from_bits((uint32_t) c);
                volatile float res;

                switch (op) {
                case OP_ADD: res = x + y; break;
                case OP_SUB: res = x - y; break;
                case OP_MUL: res = x * y; break;
                case OP_DIV: res = x / y; break;
                case OP_SQRT: res = sqrtf(x); break;
                case OP_FMADD: res = fmaf(x, y, z); break;
                case OP_FMSUB: res = fmaf(x, y, -z); break;
                case OP_FNMSUB: res = fmaf(-x, y, z); break;
                default: res = fmaf(-x, y, -z); break;
                }
                r = f32_to_bits(res);
                if (is_nan_s((uint32_t) r))
                        r = CANONICAL_NAN_S;
        } else {
                volatile double x = f64_from_bits(a), y = f64_from_bits(b), z = f64_from_bits(c);
                volatile double res;

                switch (op) {
                case OP_ADD: res = x + y; break;
                case OP_SUB: res = x - y; break;
                case OP_MUL: res = x * y; break;
                case OP_DIV: res = x / y; break;
                case OP_SQRT: res = sqrt(x); break;
                case OP_FMADD: res = fma(x, y, z); break;
                case OP_FMSUB: res = fma(x, y, -z); break;
                case OP_FNMSUB: res = fma(-x, y, z); break;
                default: res = fma(-x, y, -z); break;
                }
                r = f64_to_bits(res);
                if (is_nan_d(r))
                        r = CANONICAL_NAN_D;
        }
        *flags = ref_flags();
        fesetround(FE_TONEAREST);

        if (op >= OP_FMADD) {
                Unpacked x = unpack(ff, a), y = unpack(ff, b);

                if ((x.cls == FC_INF && y.cls == FC_ZERO) || (x.cls == FC_ZERO && y.cls == FC_INF))
                        *flags |= FFLAG_NV;
        }
        return r;
}

static __float128 to_q(const FloatFormat *ff, uint64_t v) {
        if (ff == &format_s)
                return f32_from_bits((uint32_t) v);
        return f64_from_bits(v);
}

/* Is the exact result of the operation equal to m? (finite operands) */
static bool exact_equals(const FloatFormat *ff, unsigned op, uint64_t a, uint64_t b, uint64_t c, __float128 m) {
        volatile __float128 x = to_q(ff, a), y = to_q(ff, b), z = to_q(ff, c);
        volatile __float128 t;
        bool ok;

        feclearexcept(FE_ALL_EXCEPT);
        switch (op) {
        case OP_ADD:
                t = x + y;
                ok = t == m;
                break;
        case OP_SUB:
                t = x - y;
                ok = t == m;
                break;
        case OP_MUL:
                t = x * y;
                ok = t == m;
                break;
        case OP_DIV:
                t = m * y;
                ok = t == x;
                break;
        case OP_SQRT:
                t = m * m;
                ok = t == x;
                break;
        default: {
                /* [-](x*y) [+-] z == m  <=>  x*y == +-(m -+ z) */
                bool neg_p = op == OP_FNMSUB || op == OP_FNMADD;
                bool neg_z = op == OP_FMSUB || op == OP_FNMADD;
                volatile __float128 p = x * y;

                t = neg_z ? m + z : m - z;
                if (neg_p)
                        t = -t;
                ok = t == p;
                break;
        }
        }
        /* Only an exact computation can prove equality. */
        return ok && !fetestexcept(FE_INEXACT);
}

/* The RMM result from host results in other modes plus an exact tie test. */
static uint64_t ref_arith_rmm(const FloatFormat *ff, unsigned op, uint64_t a, uint64_t b, uint64_t c,
                              uint32_t *flags) {
        uint32_t f;
        uint64_t n = ref_arith(ff, op, a, b, c, RM_RNE, flags);
        uint64_t t = ref_arith(ff, op, a, b, c, RM_RTZ, &f);
        bool neg = (n >> ff_sign_shift(ff)) & 1;
        uint64_t u = ref_arith(ff, op, a, b, c, neg ? RM_RDN : RM_RUP, &f);
        __float128 m;

        if (n == ff->canonical_nan || t == u || n == u)
                return n;
        /* n == t: RMM differs only if the exact result is halfway. */
        if ((u & ~(UINT64_C(1) << ff_sign_shift(ff))) == (ff_exp_max(ff) << (ff->prec - 1)))
                return n; /* u infinite: no tie below overflow can round to t */
        m = (to_q(ff, t) + to_q(ff, u)) / 2;
        if (exact_equals(ff, op, a, b, c, m))
                return u;
        return n;
}

static const char *const op_name[] = {
        [OP_ADD] = "add", [OP_SUB] = "sub", [OP_MUL] = "mul", [OP_DIV] = "div", [OP_SQRT] = "sqrt",
        [OP_FMADD] = "fmadd", [OP_FMSUB] = "fmsub", [OP_FNMSUB] = "fnmsub", [OP_FNMADD] = "fnmadd",
};

static const char *const rm_name[] = { "rne", "rtz", "rdn", "rup", "rmm" };

static void gen_operands(const FloatFormat *ff, unsigned op, uint64_t *a, uint64_t *b, uint64_t *c) {
        *a = gen(ff, -1);
        *b = gen(ff, biased_exp(ff, *a));
        if (op >= OP_FMADD) {
                int pe = biased_exp(ff, *a) + biased_exp(ff, *b) - (int) (ff_exp_max(ff) >> 1);

                *c = gen(ff, pe < 0 ? 0 : pe);
        } else
                *c = 0;
}

/* The software arithmetic against the host, every op, format and mode. */
static void check_soft_arith(void) {
        for (unsigned fmt = 0; fmt < 2; fmt++) {
                const FloatFormat *ff = fmt ? &format_d : &format_s;

                for (unsigned op = OP_ADD; op <= OP_FNMADD; op++)
                        for (unsigned rm = 0; rm <= RM_RMM; rm++) {
                                unsigned bad = 0;

                                for (unsigned i = 0; i < iterations; i++) {
                                        uint64_t a, b, c, want, got;
                                        uint32_t want_flags, got_flags = 0;

                                        gen_operands(ff, op, &a, &b, &c);
                                        if (rm == RM_RMM)
                                                want = ref_arith_rmm(ff, op, a, b, c, &want_flags);
                                        else
                                                want = ref_arith(ff, op, a, b, c, rm, &want_flags);
                                        got = soft_arith(ff, op, a, b, c, rm, &got_flags);
                                        if (got != want || got_flags != want_flags) {
                                                if (bad++ < 5)
                                                        printf("# soft %s.%c %s a=%#" PRIx64 " b=%#" PRIx64
                                                               " c=%#" PRIx64 ": got %#" PRIx64 "/%#x want %#"
                                                               PRIx64 "/%#x\n",
                                                               op_name[op], fmt ? 'd' : 's', rm_name[rm], a, b,
                                                               c, got, got_flags, want, want_flags);
                                        }
                                }
                                CHECK(bad == 0, "soft %s.%c %s matches host (%u mismatches)", op_name[op],
                                      fmt ? 'd' : 's', rm_name[rm], bad);
                        }
        }
}

/* ---------------------------------------------------------------------- */
/* Whole instructions through fpu_execute() */

static uint32_t enc_r(uint32_t funct7, unsigned rs2, unsigned rs1, unsigned funct3, unsigned rd) {
        return funct7 << 25 | rs2 << 20 | rs1 << 15 | funct3 << 12 | rd << 7 | 0x53;
}

static uint32_t enc_r4(uint32_t opcode, unsigned fmt, unsigned rs3, unsigned rs2, unsigned rs1, unsigned rm,
                       unsigned rd) {
        return rs3 << 27 | fmt << 25 | rs2 << 20 | rs1 << 15 | rm << 12 | rd << 7 | opcode;
}

static uint32_t encode_arith(unsigned op, unsigned fmt, unsigned rm) {
        static const uint32_t funct5[] = {
                [OP_ADD] = 0x00, [OP_SUB] = 0x01, [OP_MUL] = 0x02, [OP_DIV] = 0x03, [OP_SQRT] = 0x0b,
        };
        static const uint32_t fused[] = {
                [OP_FMADD - OP_FMADD] = 0x43, [OP_FMSUB - OP_FMADD] = 0x47,
                [OP_FNMSUB - OP_FMADD] = 0x4b, [OP_FNMADD - OP_FMADD] = 0x4f,
        };

        if (op >= OP_FMADD)
                return enc_r4(fused[op - OP_FMADD], fmt, 3, 2, 1, rm, 4);
        return enc_r(funct5[op] << 2 | fmt, op == OP_SQRT ? 0 : 2, 1, rm, 4);
}

/*
 * Leaves random stale exception flags in the host FPU, raised by real
 * arithmetic (glibc's feraiseexcept() sets some of them in the x87 status
 * word only, which SSE code never reads).
 */
static void pollute_host_flags(void) {
        volatile double zero = 0.0, one = 1.0, three = 3.0, big = 0x1p1023, tiny = 0x1p-1022;
        volatile double r;
        unsigned pick = (unsigned) rnd_below(32);

        feclearexcept(FE_ALL_EXCEPT);
        if (pick & 1)
                r = zero / zero;
        if (pick & 2)
                r = one / zero;
        if (pick & 4)
                r = big * big;
        if (pick & 8)
                r = tiny * tiny;
        if (pick & 16)
                r = one / three;
        (void) r;
}

static void check_execute_arith(void) {
        for (unsigned fmt = 0; fmt < 2; fmt++) {
                const FloatFormat *ff = fmt ? &format_d : &format_s;

                for (unsigned op = OP_ADD; op <= OP_FNMADD; op++)
                        for (unsigned rm = 0; rm <= RM_RMM; rm++) {
                                unsigned bad = 0;

                                for (unsigned i = 0; i < iterations / 4; i++) {
                                        FpuState fpu = {};
                                        uint64_t x[32] = {};
                                        uint64_t a, b, c, want, got;
                                        uint32_t want_flags, start = (uint32_t) rnd_below(32);
                                        bool dyn = rnd_below(2);
                                        int ret;

                                        gen_operands(ff, op, &a, &b, &c);
                                        if (rm == RM_RMM)
                                                want = ref_arith_rmm(ff, op, a, b, c, &want_flags);
                                        else
                                                want = ref_arith(ff, op, a, b, c, rm, &want_flags);
                                        if (fmt == 0) {
                                                fpu.f[1] = box_s((uint32_t) a);
                                                fpu.f[2] = box_s((uint32_t) b);
                                                fpu.f[3] = box_s((uint32_t) c);
                                                want = box_s((uint32_t) want);
                                        } else {
                                                fpu.f[1] = a;
                                                fpu.f[2] = b;
                                                fpu.f[3] = c;
                                        }
                                        fpu.fflags = start;
                                        fpu.frm = rm;
                                        pollute_host_flags();
                                        ret = fpu_execute(&fpu, x, encode_arith(op, fmt, dyn ? RM_DYN : rm));
                                        got = fpu.f[4];
                                        if (ret != 0 || got != want || fpu.fflags != (start | want_flags) ||
                                            !host_round_is_nearest()) {
                                                if (bad++ < 5)
                                                        printf("# exec %s.%c %s a=%#" PRIx64 " b=%#" PRIx64
                                                               " c=%#" PRIx64 " start=%#x: got %#" PRIx64
                                                               "/%#x want %#" PRIx64 "/%#x\n",
                                                               op_name[op], fmt ? 'd' : 's', rm_name[rm], a, b,
                                                               c, start, got, fpu.fflags, want,
                                                               start | want_flags);
                                        }
                                }
                                CHECK(bad == 0, "fpu_execute %s.%c %s matches host (%u mismatches)",
                                      op_name[op], fmt ? 'd' : 's', rm_name[rm], bad);
                        }
        }
}

/* ---------------------------------------------------------------------- */
/* Conversions */

/* Float to integer: reference from rint()/round() on the host. */
static uint64_t ref_to_int(const FloatFormat *ff, uint64_t v, unsigned kind, unsigned rm, uint32_t *flags) {
        static const long double lo[4] = { -2147483648.0L, 0, -9223372036854775808.0L, 0 };
        static const long double hi[4] = { 2147483647.0L, 4294967295.0L, 9223372036854775807.0L,
                                           18446744073709551615.0L };
        static const uint64_t max_val[4] = { 0x7fffffff, UINT64_C(0xffffffffffffffff), INT64_MAX, UINT64_MAX };
        static const uint64_t min_val[4] = { UINT64_C(0xffffffff80000000), 0, UINT64_C(0x8000000000000000), 0 };
        double d = ff == &format_s ? (double) f32_from_bits((uint32_t) v) : f64_from_bits(v);
        long double r;
        uint64_t res;

        *flags = 0;
        if (isnan(d)) {
                *flags = FFLAG_NV;
                return max_val[kind];
        }
        if (rm == RM_RMM)
                r = roundl(d);
        else {
                /* Called through a volatile pointer: GCC would hoist rintl() above fesetround(). */
                long double (*volatile rint_fn)(long double) = rintl;

                fesetround(host_mode[rm]);
                r = rint_fn(d);
                fesetround(FE_TONEAREST);
        }
        if (r < lo[kind]) {
                *flags = FFLAG_NV;
                return min_val[kind];
        }
        if (r > hi[kind]) {
                *flags = FFLAG_NV;
                return max_val[kind];
        }
        if (r != d)
                *flags = FFLAG_NX;
        if (kind == 0 || kind == 2)
                res = (uint64_t) (int64_t) r;
        else
                res = (uint64_t) r;
        if (kind < 2)
                res = (uint64_t) (int64_t) (int32_t) res;
        return res;
}

static void check_to_int(void) {
        static const char *const kind_name[] = { "w", "wu", "l", "lu" };

        for (unsigned fmt = 0; fmt < 2; fmt++) {
                const FloatFormat *ff = fmt ? &format_d : &format_s;

                for (unsigned kind = 0; kind < 4; kind++)
                        for (unsigned rm = 0; rm <= RM_RMM; rm++) {
                                unsigned bad = 0;

                                for (unsigned i = 0; i < iterations; i++) {
                                        /* Exponents around the integer range. */
                                        int ref = (int) (ff_exp_max(ff) >> 1) + (int) rnd_below(70) - 4;
                                        uint64_t v = gen(ff, ref), want, got;
                                        uint32_t want_flags, got_flags = 0;

                                        want = ref_to_int(ff, v, kind, rm, &want_flags);
                                        got = cvt_to_int(ff, v, kind, rm, &got_flags);
                                        if (got != want || got_flags != want_flags) {
                                                if (bad++ < 5)
                                                        printf("# fcvt.%s.%c %s v=%#" PRIx64 ": got %#" PRIx64
                                                               "/%#x want %#" PRIx64 "/%#x\n",
                                                               kind_name[kind], fmt ? 'd' : 's', rm_name[rm], v,
                                                               got, got_flags, want, want_flags);
                                        }
                                }
                                CHECK(bad == 0, "fcvt.%s.%c %s matches reference (%u mismatches)", kind_name[kind],
                                      fmt ? 'd' : 's', rm_name[rm], bad);
                        }
        }
}

static uint64_t gen_int(void) {
        uint64_t v = rnd();

        switch (rnd_below(4)) {
        case 0:
                return v >> rnd_below(64);
        case 1:
                return -(v >> rnd_below(64));
        case 2: /* few significant bits: ties */
                return (v >> rnd_below(64)) & ~(UINT64_MAX >> rnd_below(64));
        default:
                return v;
        }
}

static uint64_t ref_from_int_host(const FloatFormat *ff, uint64_t v, unsigned kind, unsigned rm, uint32_t *flags) {
        uint64_t r;

        fesetround(host_mode[rm]);
        feclearexcept(FE_ALL_EXCEPT);
        if (ff == &format_s) {
                volatile float f;

                switch (kind) {
                case 0: f = (float) (int32_t) v; break;
                case 1: f = (float) (uint32_t) v; break;
                case 2: f = (float) (int64_t) v; break;
                default: f = (float) v; break;
                }
                r = f32_to_bits(f);
        } else {
                volatile double d;

                switch (kind) {
                case 0: d = (double) (int32_t) v; break;
                case 1: d = (double) (uint32_t) v; break;
                case 2: d = (double) (int64_t) v; break;
                default: d = (double) v; break;
                }
                r = f64_to_bits(d);
        }
        *flags = ref_flags();
        fesetround(FE_TONEAREST);
        return r;
}

static uint64_t ref_from_int(const FloatFormat *ff, uint64_t v, unsigned kind, unsigned rm, uint32_t *flags) {
        uint64_t n, t, u;
        uint32_t f;
        __float128 exact, m;
        volatile __float128 sum;

        if (rm != RM_RMM)
                return ref_from_int_host(ff, v, kind, rm, flags);

        n = ref_from_int_host(ff, v, kind, RM_RNE, flags);
        t = ref_from_int_host(ff, v, kind, RM_RTZ, &f);
        u = ref_from_int_host(ff, v, kind, (n >> ff_sign_shift(ff)) ? RM_RDN : RM_RUP, &f);
        if (t == u || n == u)
                return n;
        switch (kind) {
        case 0: exact = (int32_t) v; break;
        case 1: exact = (uint32_t) v; break;
        case 2: exact = (int64_t) v; break;
        default: exact = v; break;
        }
        sum = to_q(ff, t) + to_q(ff, u);
        m = sum / 2;
        return exact == m ? u : n;
}

static uint64_t ref_cvt_s_d(uint64_t v, unsigned rm, uint32_t *flags) {
        volatile double d = f64_from_bits(v);
        volatile float f;
        uint64_t r;

        fesetround(host_mode[rm]);
        feclearexcept(FE_ALL_EXCEPT);
        f = (float) d;
        *flags = ref_flags();
        fesetround(FE_TONEAREST);
        r = f32_to_bits(f);
        return is_nan_s((uint32_t) r) ? CANONICAL_NAN_S : r;
}

static uint64_t ref_cvt_s_d_rmm(uint64_t v, uint32_t *flags) {
        uint32_t f;
        uint64_t n = ref_cvt_s_d(v, RM_RNE, flags);
        uint64_t t = ref_cvt_s_d(v, RM_RTZ, &f);
        uint64_t u = ref_cvt_s_d(v, (n >> 31) ? RM_RDN : RM_RUP, &f);
        __float128 m;

        if (n == CANONICAL_NAN_S || t == u || n == u || is_inf_s((uint32_t) u))
                return n;
        m = (to_q(&format_s, t) + to_q(&format_s, u)) / 2;
        return to_q(&format_d, v) == m ? u : n;
}

static void check_from_int_and_s_d(void) {
        for (unsigned fmt = 0; fmt < 2; fmt++) {
                const FloatFormat *ff = fmt ? &format_d : &format_s;

                for (unsigned kind = 0; kind < 4; kind++)
                        for (unsigned rm = 0; rm <= RM_RMM; rm++) {
                                unsigned bad = 0;

                                for (unsigned i = 0; i < iterations / 4; i++) {
                                        FpuState fpu = { .frm = rm };
                                        uint64_t x[32] = {};
                                        uint64_t v = gen_int(), want, got, soft;
                                        uint32_t want_flags, soft_flags = 0, start = (uint32_t) rnd_below(32);
                                        int ret;

                                        want = ref_from_int(ff, v, kind, rm, &want_flags);
                                        soft = soft_cvt_from_int(ff, v, kind, rm, &soft_flags);
                                        x[5] = v;
                                        fpu.fflags = start;
                                        pollute_host_flags();
                                        ret = fpu_execute(&fpu, x, enc_r(0x68 | fmt, kind, 5, RM_DYN, 6));
                                        got = fmt ? fpu.f[6] : unbox_s(fpu.f[6]);
                                        if (ret != 0 || got != want || soft != want || soft_flags != want_flags ||
                                            fpu.fflags != (start | want_flags)) {
                                                if (bad++ < 5)
                                                        printf("# fcvt.%c.%u %s v=%#" PRIx64 ": got %#" PRIx64
                                                               "/%#x soft %#" PRIx64 "/%#x want %#" PRIx64
                                                               "/%#x\n", fmt ? 'd' : 's', kind, rm_name[rm], v,
                                                               got, fpu.fflags, soft, soft_flags, want,
                                                               start | want_flags);
                                        }
                                }
                                CHECK(bad == 0, "fcvt.%c from int kind %u %s matches host (%u mismatches)",
                                      fmt ? 'd' : 's', kind, rm_name[rm], bad);
                        }
        }

        for (unsigned rm = 0; rm <= RM_RMM; rm++) {
                unsigned bad = 0;

                for (unsigned i = 0; i < iterations; i++) {
                        FpuState fpu = { .frm = rm };
                        uint64_t x[32] = {};
                        /* Doubles around the single-precision range. */
                        int ref = 1023 + (int) rnd_below(320) - 170;
                        uint64_t v = gen(&format_d, ref), want, got, soft;
                        uint32_t want_flags, soft_flags = 0, start = (uint32_t) rnd_below(32);
                        int ret;

                        if (rm == RM_RMM)
                                want = ref_cvt_s_d_rmm(v, &want_flags);
                        else
                                want = ref_cvt_s_d(v, rm, &want_flags);
                        soft = soft_cvt_s_d(v, rm, &soft_flags);
                        fpu.f[1] = v;
                        fpu.fflags = start;
                        pollute_host_flags();
                        ret = fpu_execute(&fpu, x, enc_r(0x20, 1, 1, RM_DYN, 2));
                        got = fpu.f[2];
                        if (ret != 0 || got != box_s((uint32_t) want) || soft != want || soft_flags != want_flags ||
                            fpu.fflags != (start | want_flags)) {
                                if (bad++ < 5)
                                        printf("# fcvt.s.d %s v=%#" PRIx64 ": got %#" PRIx64 "/%#x soft %#" PRIx64
                                               "/%#x want %#" PRIx64 "/%#x\n", rm_name[rm], v, got, fpu.fflags,
                                               soft, soft_flags, want, start | want_flags);
                        }
                }
                CHECK(bad == 0, "fcvt.s.d %s matches host (%u mismatches)", rm_name[rm], bad);
        }
}

int main(void) {
        const char *e = getenv("ORRERY_FPU_ITERATIONS");

        if (e)
                iterations = (unsigned) strtoul(e, NULL, 0);

        check_soft_arith();
        check_execute_arith();
        check_to_int();
        check_from_int_and_s_d();
        return tap_finish();
}
