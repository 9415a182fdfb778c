/* SPDX-License-Identifier: MIT */

/*
 * RV64F/RV64D arithmetic (see fpu.h).
 *
 * Strategy:
 *
 *   - Moves, sign injection, min/max, compares, classification and
 *     float-to-integer conversions are done on the bit patterns with integer
 *     code; they never touch the host FPU, so they raise no host flags.
 *
 *   - Add/sub/mul/div/sqrt/fma, FCVT.S.D and the rounding int-to-float
 *     conversions run on the host FPU for the rounding modes the host has
 *     (RNE, RTZ, RDN, RUP). On x86-64 that is SSE, and the rounding mode
 *     and flags are read and written in MXCSR directly (the x87 unit is never
 *     used); elsewhere <fenv.h> is used. The host rounding mode is RNE
 *     whenever fpu_execute() is not running; the other three are set around
 *     the one operation and restored, so the common RNE case never touches
 *     the mode. Host NaN results are replaced by the canonical NaN. Both x86
 *     and RISC-V detect tininess after rounding and raise UF only for tiny
 *     *and* inexact results (the tests check this against the host). The
 *     host must not run with flush-to-zero or denormals-are-zero set.
 *
 *   - Host exception flags are not cleared before every operation (clearing
 *     is slow). After the operation we read the host's sticky flags: if they
 *     are all already set in fpu->fflags, OR-ing them in would change
 *     nothing, whether they are stale or not. Only when a flag shows up that
 *     the guest does not have yet do we clear the host flags and run the
 *     (pure) operation once more to learn exactly what it raised. So the
 *     steady state costs one flag read per instruction.
 *
 *   - RMM (round to nearest, ties to max magnitude) has no host equivalent.
 *     Those operations go through a small exact software implementation
 *     below (unpack to integer significand and exponent, compute exactly or
 *     with a sticky bit, round once). The same code handles all five modes;
 *     tests/fpu/test-fpu-random.c checks it against the host in the four
 *     modes the host has. It needs unsigned __int128 (64-bit hosts).
 *
 * Compiler discipline: GCC does not model the floating-point environment,
 * so every host operation's inputs and result pass through an empty asm
 * statement (FP_LAUNDER) with a memory clobber. That pins the operation
 * between the mode/flag accesses around it and stops the recomputation from
 * being merged with the first computation. No expression in this file
 * multiplies and adds in one go, so contraction into FMA cannot happen.
 */

#include <fenv.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fpu.h"

#if !defined(FLT_EVAL_METHOD) || (FLT_EVAL_METHOD != 0 && FLT_EVAL_METHOD != 16)
#  error "fpu.c needs float and double arithmetic evaluated in their own precision"
#endif

#ifdef __clang__
#  pragma STDC FENV_ACCESS ON
#endif

#if defined(__x86_64__) || defined(__i386__)
#  define FP_LAUNDER(v) __asm__ volatile("" : "+x"(v) : : "memory")
#elif defined(__aarch64__)
#  define FP_LAUNDER(v) __asm__ volatile("" : "+w"(v) : : "memory")
#else
#  define FP_LAUNDER(v) __asm__ volatile("" : "+m"(v) : : "memory")
#endif
#define INT_LAUNDER(v) __asm__ volatile("" : "+r"(v) : : "memory")

#if defined(__x86_64__) && defined(__SSE2__)
#  include <xmmintrin.h>
#  define HOST_MXCSR 1
#endif

typedef unsigned __int128 uint128_t;

enum {
        RM_RNE = 0,
        RM_RTZ = 1,
        RM_RDN = 2,
        RM_RUP = 3,
        RM_RMM = 4,
        RM_DYN = 7,
};

enum {
        OP_ADD,
        OP_SUB,
        OP_MUL,
        OP_DIV,
        OP_SQRT,
        OP_FMADD,
        OP_FMSUB,
        OP_FNMSUB,
        OP_FNMADD,
};

#define CANONICAL_NAN_S UINT32_C(0x7fc00000)
#define CANONICAL_NAN_D UINT64_C(0x7ff8000000000000)
#define BOX_S           UINT64_C(0xffffffff00000000)

/* ---------------------------------------------------------------------- */
/* Bit helpers */

static inline float f32_from_bits(uint32_t v) {
        float f;
        memcpy(&f, &v, sizeof(f));
        return f;
}

static inline uint32_t f32_to_bits(float f) {
        uint32_t v;
        memcpy(&v, &f, sizeof(v));
        return v;
}

static inline double f64_from_bits(uint64_t v) {
        double d;
        memcpy(&d, &v, sizeof(d));
        return d;
}

static inline uint64_t f64_to_bits(double d) {
        uint64_t v;
        memcpy(&v, &d, sizeof(v));
        return v;
}

static inline uint32_t unbox_s(uint64_t v) {
        if ((v & BOX_S) != BOX_S)
                return CANONICAL_NAN_S;
        return (uint32_t) v;
}

static inline uint64_t box_s(uint32_t v) {
        return BOX_S | v;
}

static inline bool is_nan_s(uint32_t v) {
        return (v & 0x7fffffffu) > 0x7f800000u;
}

static inline bool is_nan_d(uint64_t v) {
        return (v & UINT64_C(0x7fffffffffffffff)) > UINT64_C(0x7ff0000000000000);
}

static inline bool is_snan_s(uint32_t v) {
        return is_nan_s(v) && !(v & 0x00400000u);
}

static inline bool is_snan_d(uint64_t v) {
        return is_nan_d(v) && !(v & UINT64_C(0x0008000000000000));
}

static inline bool is_inf_s(uint32_t v) {
        return (v & 0x7fffffffu) == 0x7f800000u;
}

static inline bool is_inf_d(uint64_t v) {
        return (v & UINT64_C(0x7fffffffffffffff)) == UINT64_C(0x7ff0000000000000);
}

static inline bool is_zero_s(uint32_t v) {
        return (v & 0x7fffffffu) == 0;
}

static inline bool is_zero_d(uint64_t v) {
        return (v & UINT64_C(0x7fffffffffffffff)) == 0;
}

static inline unsigned bitlen64(uint64_t v) {
        return v ? 64 - (unsigned) __builtin_clzll(v) : 0;
}

static inline unsigned bitlen128(uint128_t v) {
        uint64_t hi = (uint64_t) (v >> 64);

        return hi ? 64 + bitlen64(hi) : bitlen64((uint64_t) v);
}

/* ---------------------------------------------------------------------- */
/* Host floating-point environment */

#ifdef HOST_MXCSR

/* MXCSR flag bits: IE 0, DE 1 (ignored), ZE 2, OE 3, UE 4, PE 5. */
static const uint8_t mxcsr_to_fflags[64] = {
#define M(i) (uint8_t) ((((i) & 0x01) ? FFLAG_NV : 0) | (((i) & 0x04) ? FFLAG_DZ : 0) | \
                        (((i) & 0x08) ? FFLAG_OF : 0) | (((i) & 0x10) ? FFLAG_UF : 0) | \
                        (((i) & 0x20) ? FFLAG_NX : 0))
#define M4(i) M(i), M(i + 1), M(i + 2), M(i + 3)
#define M16(i) M4(i), M4(i + 4), M4(i + 8), M4(i + 12)
        M16(0), M16(16), M16(32), M16(48),
#undef M16
#undef M4
#undef M
};

static inline uint32_t host_flags(void) {
        return mxcsr_to_fflags[_mm_getcsr() & 0x3f];
}

static inline void host_clear_flags(void) {
        _mm_setcsr(_mm_getcsr() & ~0x3fu);
}

static inline void host_set_round(unsigned rm) {
        /* RC field, bits 14:13: 0 nearest, 1 down, 2 up, 3 toward zero. */
        static const uint32_t rc[4] = {
                [RM_RNE] = 0x0000,
                [RM_RTZ] = 0x6000,
                [RM_RDN] = 0x2000,
                [RM_RUP] = 0x4000,
        };

        _mm_setcsr((_mm_getcsr() & ~0x6000u) | rc[rm]);
}

#else

static inline uint32_t host_flags(void) {
        int e = fetestexcept(FE_ALL_EXCEPT);

        return ((e & FE_INVALID) ? FFLAG_NV : 0) |
               ((e & FE_DIVBYZERO) ? FFLAG_DZ : 0) |
               ((e & FE_OVERFLOW) ? FFLAG_OF : 0) |
               ((e & FE_UNDERFLOW) ? FFLAG_UF : 0) |
               ((e & FE_INEXACT) ? FFLAG_NX : 0);
}

static inline void host_clear_flags(void) {
        feclearexcept(FE_ALL_EXCEPT);
}

static inline void host_set_round(unsigned rm) {
        static const int mode[4] = {
                [RM_RNE] = FE_TONEAREST,
                [RM_RTZ] = FE_TOWARDZERO,
                [RM_RDN] = FE_DOWNWARD,
                [RM_RUP] = FE_UPWARD,
        };

        fesetround(mode[rm]);
}

#endif

/*
 * Runs 'compute' (a statement assigning the result of a host operation
 * whose inputs and output are laundered) in host rounding mode 'rm' (not
 * RMM) and accrues exactly the flags it raised into fpu->fflags.
 */
#define HOST_RUN(fpu, rm, compute)                                              \
        do {                                                                    \
                if ((rm) != RM_RNE)                                             \
                        host_set_round(rm);                                     \
                compute;                                                        \
                if (host_flags() & ~(fpu)->fflags) {                            \
                        host_clear_flags();                                     \
                        compute;                                                \
                        (fpu)->fflags |= host_flags();                          \
                }                                                               \
                if ((rm) != RM_RNE)                                             \
                        host_set_round(RM_RNE);                                 \
        } while (0)

/*
 * One host operation in single or double precision: the same switch for
 * both formats, instantiated for each so every operation stays a single
 * host instruction or libm call.
 */
#define DEFINE_HOST_ARITH(name, T, sqrt_fn, fma_fn)                             \
        static inline T name(unsigned op, T a, T b, T c) {                      \
                T r;                                                            \
                                                                                \
                FP_LAUNDER(a);                                                  \
                FP_LAUNDER(b);                                                  \
                FP_LAUNDER(c);                                                  \
                switch (op) {                                                   \
                case OP_ADD:                                                    \
                        r = a + b;                                              \
                        break;                                                  \
                case OP_SUB:                                                    \
                        r = a - b;                                              \
                        break;                                                  \
                case OP_MUL:                                                    \
                        r = a * b;                                              \
                        break;                                                  \
                case OP_DIV:                                                    \
                        r = a / b;                                              \
                        break;                                                  \
                case OP_SQRT:                                                   \
                        r = sqrt_fn(a);                                         \
                        break;                                                  \
                case OP_FMADD:                                                  \
                        r = fma_fn(a, b, c);                                    \
                        break;                                                  \
                case OP_FMSUB:                                                  \
                        r = fma_fn(a, b, -c);                                   \
                        break;                                                  \
                case OP_FNMSUB:                                                 \
                        r = fma_fn(-a, b, c);                                   \
                        break;                                                  \
                default: /* OP_FNMADD */                                        \
                        r = fma_fn(-a, b, -c);                                  \
                        break;                                                  \
                }                                                               \
                FP_LAUNDER(r);                                                  \
                return r;                                                       \
        }

DEFINE_HOST_ARITH(host_arith_s, float, sqrtf, fmaf)
DEFINE_HOST_ARITH(host_arith_d, double, sqrt, fma)

static inline float host_cvt_s_d(double a) {
        float r;

        FP_LAUNDER(a);
        r = (float) a;
        FP_LAUNDER(r);
        return r;
}

/* Integer source 'v' of kind 0 W, 1 WU, 2 L, 3 LU. */
static inline float host_cvt_s_int(uint64_t v, unsigned kind) {
        float r;

        INT_LAUNDER(v);
        switch (kind) {
        case 0:
                r = (float) (int32_t) v;
                break;
        case 1:
                r = (float) (uint32_t) v;
                break;
        case 2:
                r = (float) (int64_t) v;
                break;
        default:
                r = (float) v;
                break;
        }
        FP_LAUNDER(r);
        return r;
}

static inline double host_cvt_d_int(uint64_t v, unsigned kind) {
        double r;

        INT_LAUNDER(v);
        if (kind == 2)
                r = (double) (int64_t) v;
        else
                r = (double) v;
        FP_LAUNDER(r);
        return r;
}

/* ---------------------------------------------------------------------- */
/* Exact software arithmetic (used for RMM; correct in every mode) */

typedef struct FloatFormat {
        unsigned prec;          /* significand bits including the hidden one */
        unsigned exp_bits;
        int emin_lsb;           /* exponent of the least significant bit of subnormals */
        uint64_t canonical_nan;
} FloatFormat;

static const FloatFormat format_s = {
        .prec = 24,
        .exp_bits = 8,
        .emin_lsb = -149,
        .canonical_nan = CANONICAL_NAN_S,
};

static const FloatFormat format_d = {
        .prec = 53,
        .exp_bits = 11,
        .emin_lsb = -1074,
        .canonical_nan = CANONICAL_NAN_D,
};

typedef enum FloatClass {
        FC_ZERO,
        FC_FINITE,
        FC_INF,
        FC_QNAN,
        FC_SNAN,
} FloatClass;

/* A finite nonzero value is (-1)^sign * mant * 2^exp. */
typedef struct Unpacked {
        FloatClass cls;
        bool sign;
        int exp;
        uint64_t mant;
} Unpacked;

static inline unsigned ff_sign_shift(const FloatFormat *ff) {
        return ff->prec - 1 + ff->exp_bits;
}

static inline uint64_t ff_exp_max(const FloatFormat *ff) {
        return (UINT64_C(1) << ff->exp_bits) - 1;
}

static inline uint64_t ff_frac_mask(const FloatFormat *ff) {
        return (UINT64_C(1) << (ff->prec - 1)) - 1;
}

static inline Unpacked unpack(const FloatFormat *ff, uint64_t v) {
        uint64_t biased = (v >> (ff->prec - 1)) & ff_exp_max(ff);
        uint64_t frac = v & ff_frac_mask(ff);
        Unpacked u = {
                .sign = (v >> ff_sign_shift(ff)) & 1,
        };

        if (biased == ff_exp_max(ff)) {
                if (frac == 0)
                        u.cls = FC_INF;
                else if (frac >> (ff->prec - 2))
                        u.cls = FC_QNAN;
                else
                        u.cls = FC_SNAN;
        } else if (biased == 0) {
                u.cls = frac == 0 ? FC_ZERO : FC_FINITE;
                u.mant = frac;
                u.exp = ff->emin_lsb;
        } else {
                u.cls = FC_FINITE;
                u.mant = frac | (UINT64_C(1) << (ff->prec - 1));
                u.exp = ff->emin_lsb + (int) biased - 1;
        }
        return u;
}

static inline uint64_t pack_zero(const FloatFormat *ff, bool sign) {
        return (uint64_t) sign << ff_sign_shift(ff);
}

static inline uint64_t pack_inf(const FloatFormat *ff, bool sign) {
        return pack_zero(ff, sign) | (ff_exp_max(ff) << (ff->prec - 1));
}

/* The result of an invalid operation; an sNaN operand has been noted. */
static inline uint64_t invalid(const FloatFormat *ff, uint32_t *flags) {
        *flags |= FFLAG_NV;
        return ff->canonical_nan;
}

/* A NaN operand was seen: canonical NaN, NV if any operand is signaling. */
static inline uint64_t propagate_nan(const FloatFormat *ff, bool any_snan, uint32_t *flags) {
        if (any_snan)
                *flags |= FFLAG_NV;
        return ff->canonical_nan;
}

/*
 * Shifts m right by 'shift' (>= 1) bits and rounds the quotient per rm;
 * *inexact tells whether any nonzero bits were dropped. The caller makes
 * sure the result fits in 64 bits.
 */
static uint64_t round_shift(uint128_t m, unsigned shift, bool sign, unsigned rm, bool *inexact) {
        uint64_t q;
        int cmp; /* dropped bits compared to one half */
        bool inc;

        if (shift >= 128) {
                q = 0;
                *inexact = m != 0;
                cmp = -1;
        } else {
                uint128_t rem = m & (((uint128_t) 1 << shift) - 1);
                uint128_t half = (uint128_t) 1 << (shift - 1);

                q = (uint64_t) (m >> shift);
                *inexact = rem != 0;
                cmp = rem < half ? -1 : rem > half;
        }

        switch (rm) {
        case RM_RNE:
                inc = cmp > 0 || (cmp == 0 && (q & 1));
                break;
        case RM_RMM:
                inc = cmp >= 0;
                break;
        case RM_RDN:
                inc = *inexact && sign;
                break;
        case RM_RUP:
                inc = *inexact && !sign;
                break;
        default: /* RM_RTZ */
                inc = false;
                break;
        }
        return q + inc;
}

/* round_shift() for a 64-bit m that is below 2^63 (the float-to-integer conversions). */
static inline uint64_t round_shift64(uint64_t m, unsigned shift, bool sign, unsigned rm, bool *inexact) {
        uint64_t q, rem, half;
        bool inc;

        if (shift >= 64) {
                q = 0;
                rem = m;
                half = UINT64_MAX; /* m < 2^63: always below one half */
        } else {
                q = m >> shift;
                rem = m & ((UINT64_C(1) << shift) - 1);
                half = UINT64_C(1) << (shift - 1);
        }
        *inexact = rem != 0;

        switch (rm) {
        case RM_RNE:
                inc = rem > half || (rem == half && (q & 1));
                break;
        case RM_RMM:
                inc = rem >= half;
                break;
        case RM_RDN:
                inc = *inexact && sign;
                break;
        case RM_RUP:
                inc = *inexact && !sign;
                break;
        default: /* RM_RTZ */
                inc = false;
                break;
        }
        return q + inc;
}

/*
 * Rounds (-1)^sign * m * 2^exp (m != 0, m < 2^127) to the format, with
 * gradual underflow, overflow to infinity or the largest finite number per
 * rm, and RISC-V/IEEE flags (tininess detected after rounding).
 */
static uint64_t round_pack(const FloatFormat *ff, bool sign, int exp, uint128_t m, unsigned rm,
                           uint32_t *flags) {
        unsigned n = bitlen128(m);
        int e_nat = exp + (int) n - (int) ff->prec;  /* lsb exponent at full precision */
        int e = e_nat < ff->emin_lsb ? ff->emin_lsb : e_nat;
        uint64_t q, biased;
        bool inexact = false;

        if (e <= exp)
                q = (uint64_t) (m << (exp - e));
        else
                q = round_shift(m, (unsigned) (e - exp), sign, rm, &inexact);

        if (q >> ff->prec) {
                /* Rounding carried out to 2^prec; drop the (zero) low bit. */
                q >>= 1;
                e++;
        }

        if (q >> (ff->prec - 1))
                biased = (uint64_t) (e - ff->emin_lsb) + 1;
        else
                biased = 0;

        if (biased >= ff_exp_max(ff)) {
                bool to_inf = rm == RM_RNE || rm == RM_RMM ||
                              (rm == RM_RDN && sign) || (rm == RM_RUP && !sign);

                *flags |= FFLAG_OF | FFLAG_NX;
                if (to_inf)
                        return pack_inf(ff, sign);
                return pack_zero(ff, sign) |
                       ((ff_exp_max(ff) - 1) << (ff->prec - 1)) | ff_frac_mask(ff);
        }

        if (inexact) {
                *flags |= FFLAG_NX;

                if (e_nat < ff->emin_lsb) {
                        /*
                         * Below the normal range before rounding. It is tiny
                         * unless rounding with unbounded exponent range
                         * carries up to exactly 2^emin.
                         */
                        bool tiny = true;

                        if (e_nat == ff->emin_lsb - 1 && e_nat > exp) {
                                bool dummy;
                                uint64_t q2 = round_shift(m, (unsigned) (e_nat - exp), sign, rm, &dummy);

                                tiny = !(q2 >> ff->prec);
                        }
                        if (tiny)
                                *flags |= FFLAG_UF;
                }
        }

        return pack_zero(ff, sign) | (biased << (ff->prec - 1)) | (q & ff_frac_mask(ff));
}

static inline uint128_t shift_right_jam(uint128_t m, unsigned d) {
        if (d >= 128)
                return m != 0;
        return (m >> d) | ((m & (((uint128_t) 1 << d) - 1)) != 0);
}

/*
 * Adds two finite nonzero values given as (-1)^s * m * 2^e with m < 2^110,
 * rounding once. When the exponents are far apart the smaller operand is
 * shifted right with a sticky bit; the larger then has 126 bits and the
 * final rounding drops far more than two bits, so the sticky bit cannot
 * change the rounding.
 */
static uint64_t add_finite(const FloatFormat *ff, bool s1, uint128_t m1, int e1, bool s2, uint128_t m2, int e2,
                           unsigned rm, uint32_t *flags) {
        unsigned d, l;
        uint128_t m;
        bool sign;

        if (e1 < e2) {
                bool ts = s1;
                uint128_t tm = m1;
                int te = e1;

                s1 = s2, m1 = m2, e1 = e2;
                s2 = ts, m2 = tm, e2 = te;
        }

        d = (unsigned) (e1 - e2);
        l = 126 - bitlen128(m1);
        if (l > d)
                l = d;
        m1 <<= l;
        e1 -= (int) l;
        d -= l;
        if (d > 0)
                m2 = shift_right_jam(m2, d);

        if (s1 == s2) {
                m = m1 + m2;
                sign = s1;
        } else if (m1 >= m2) {
                m = m1 - m2;
                sign = s1;
        } else {
                m = m2 - m1;
                sign = s2;
        }

        if (m == 0)
                return pack_zero(ff, rm == RM_RDN);
        return round_pack(ff, sign, e1, m, rm, flags);
}

static uint64_t soft_add(const FloatFormat *ff, uint64_t a, uint64_t b, unsigned rm, uint32_t *flags) {
        Unpacked x = unpack(ff, a), y = unpack(ff, b);

        if (x.cls >= FC_QNAN || y.cls >= FC_QNAN)
                return propagate_nan(ff, x.cls == FC_SNAN || y.cls == FC_SNAN, flags);
        if (x.cls == FC_INF) {
                if (y.cls == FC_INF && x.sign != y.sign)
                        return invalid(ff, flags);
                return a;
        }
        if (y.cls == FC_INF)
                return b;
        if (x.cls == FC_ZERO && y.cls == FC_ZERO)
                return pack_zero(ff, x.sign == y.sign ? x.sign : rm == RM_RDN);
        if (x.cls == FC_ZERO)
                return b;
        if (y.cls == FC_ZERO)
                return a;
        return add_finite(ff, x.sign, x.mant, x.exp, y.sign, y.mant, y.exp, rm, flags);
}

static uint64_t soft_mul(const FloatFormat *ff, uint64_t a, uint64_t b, unsigned rm, uint32_t *flags) {
        Unpacked x = unpack(ff, a), y = unpack(ff, b);
        bool sign = x.sign ^ y.sign;

        if (x.cls >= FC_QNAN || y.cls >= FC_QNAN)
                return propagate_nan(ff, x.cls == FC_SNAN || y.cls == FC_SNAN, flags);
        if (x.cls == FC_INF || y.cls == FC_INF) {
                if (x.cls == FC_ZERO || y.cls == FC_ZERO)
                        return invalid(ff, flags);
                return pack_inf(ff, sign);
        }
        if (x.cls == FC_ZERO || y.cls == FC_ZERO)
                return pack_zero(ff, sign);
        return round_pack(ff, sign, x.exp + y.exp, (uint128_t) x.mant * y.mant, rm, flags);
}

/* Shifts a finite significand up so that its top bit is bit prec-1. */
static inline void normalize(const FloatFormat *ff, Unpacked *u) {
        unsigned s = ff->prec - bitlen64(u->mant);

        u->mant <<= s;
        u->exp -= (int) s;
}

static uint64_t soft_div(const FloatFormat *ff, uint64_t a, uint64_t b, unsigned rm, uint32_t *flags) {
        Unpacked x = unpack(ff, a), y = unpack(ff, b);
        bool sign = x.sign ^ y.sign;
        uint128_t num, q;

        if (x.cls >= FC_QNAN || y.cls >= FC_QNAN)
                return propagate_nan(ff, x.cls == FC_SNAN || y.cls == FC_SNAN, flags);
        if (x.cls == FC_INF) {
                if (y.cls == FC_INF)
                        return invalid(ff, flags);
                return pack_inf(ff, sign);
        }
        if (y.cls == FC_INF)
                return pack_zero(ff, sign);
        if (y.cls == FC_ZERO) {
                if (x.cls == FC_ZERO)
                        return invalid(ff, flags);
                *flags |= FFLAG_DZ;
                return pack_inf(ff, sign);
        }
        if (x.cls == FC_ZERO)
                return pack_zero(ff, sign);

        /* Both significands in [2^(prec-1), 2^prec): the quotient has 64 or 65 bits. */
        normalize(ff, &x);
        normalize(ff, &y);
        num = (uint128_t) x.mant << 64;
        q = num / y.mant;
        q |= (num % y.mant) != 0;
        return round_pack(ff, sign, x.exp - y.exp - 64, q, rm, flags);
}

static uint64_t isqrt128(uint128_t m) {
        uint64_t r = 0;

        for (int i = 63; i >= 0; i--) {
                uint64_t t = r | (UINT64_C(1) << i);

                if ((uint128_t) t * t <= m)
                        r = t;
        }
        return r;
}

static uint64_t soft_sqrt(const FloatFormat *ff, uint64_t a, unsigned rm, uint32_t *flags) {
        Unpacked x = unpack(ff, a);
        uint128_t m;
        uint64_t r;
        unsigned s;

        if (x.cls >= FC_QNAN)
                return propagate_nan(ff, x.cls == FC_SNAN, flags);
        if (x.cls == FC_ZERO)
                return a;
        if (x.sign)
                return invalid(ff, flags);
        if (x.cls == FC_INF)
                return a;

        /* Significand to 63 or 64 bits with an even exponent, then root of m * 2^64. */
        s = 63 - bitlen64(x.mant);
        x.mant <<= s;
        x.exp -= (int) s;
        if (x.exp & 1) {
                x.mant <<= 1;
                x.exp--;
        }
        m = (uint128_t) x.mant << 64;
        r = isqrt128(m);
        return round_pack(ff, false, (x.exp - 64) / 2, (uint128_t) r | ((uint128_t) r * r != m), rm, flags);
}

/* a * b + c, rounded once; the caller has applied the instruction's negations. */
static uint64_t soft_fma(const FloatFormat *ff, uint64_t a, uint64_t b, uint64_t c, unsigned rm, uint32_t *flags) {
        Unpacked x = unpack(ff, a), y = unpack(ff, b), z = unpack(ff, c);
        bool psign = x.sign ^ y.sign;
        bool inf_times_zero = (x.cls == FC_INF && y.cls == FC_ZERO) || (x.cls == FC_ZERO && y.cls == FC_INF);

        if (x.cls >= FC_QNAN || y.cls >= FC_QNAN || z.cls >= FC_QNAN)
                return propagate_nan(ff, x.cls == FC_SNAN || y.cls == FC_SNAN || z.cls == FC_SNAN ||
                                     inf_times_zero, flags);
        if (inf_times_zero)
                return invalid(ff, flags);
        if (x.cls == FC_INF || y.cls == FC_INF) {
                if (z.cls == FC_INF && z.sign != psign)
                        return invalid(ff, flags);
                return pack_inf(ff, psign);
        }
        if (z.cls == FC_INF)
                return c;
        if (x.cls == FC_ZERO || y.cls == FC_ZERO) {
                if (z.cls == FC_ZERO)
                        return pack_zero(ff, psign == z.sign ? psign : rm == RM_RDN);
                return c;
        }
        if (z.cls == FC_ZERO)
                return round_pack(ff, psign, x.exp + y.exp, (uint128_t) x.mant * y.mant, rm, flags);
        return add_finite(ff, psign, (uint128_t) x.mant * y.mant, x.exp + y.exp, z.sign, z.mant, z.exp, rm,
                          flags);
}

static uint64_t soft_arith(const FloatFormat *ff, unsigned op, uint64_t a, uint64_t b, uint64_t c, unsigned rm,
                           uint32_t *flags) {
        uint64_t sign = UINT64_C(1) << ff_sign_shift(ff);

        switch (op) {
        case OP_ADD:
                return soft_add(ff, a, b, rm, flags);
        case OP_SUB:
                return soft_add(ff, a, b ^ sign, rm, flags);
        case OP_MUL:
                return soft_mul(ff, a, b, rm, flags);
        case OP_DIV:
                return soft_div(ff, a, b, rm, flags);
        case OP_SQRT:
                return soft_sqrt(ff, a, rm, flags);
        case OP_FMADD:
                return soft_fma(ff, a, b, c, rm, flags);
        case OP_FMSUB:
                return soft_fma(ff, a, b, c ^ sign, rm, flags);
        case OP_FNMSUB:
                return soft_fma(ff, a ^ sign, b, c, rm, flags);
        default: /* OP_FNMADD */
                return soft_fma(ff, a ^ sign, b, c ^ sign, rm, flags);
        }
}

/* FCVT.S.D in software. */
static uint32_t soft_cvt_s_d(uint64_t a, unsigned rm, uint32_t *flags) {
        Unpacked x = unpack(&format_d, a);

        switch (x.cls) {
        case FC_QNAN:
        case FC_SNAN:
                return (uint32_t) propagate_nan(&format_s, x.cls == FC_SNAN, flags);
        case FC_INF:
                return (uint32_t) pack_inf(&format_s, x.sign);
        case FC_ZERO:
                return (uint32_t) pack_zero(&format_s, x.sign);
        default:
                return (uint32_t) round_pack(&format_s, x.sign, x.exp, x.mant, rm, flags);
        }
}

/* Integer (kind 0 W, 1 WU, 2 L, 3 LU) to float in software. */
static uint64_t soft_cvt_from_int(const FloatFormat *ff, uint64_t v, unsigned kind, unsigned rm, uint32_t *flags) {
        bool sign = false;

        switch (kind) {
        case 0:
                v = (uint64_t) (int64_t) (int32_t) v;
                /* fall through */
        case 2:
                if ((int64_t) v < 0) {
                        sign = true;
                        v = -v;
                }
                break;
        case 1:
                v = (uint32_t) v;
                break;
        default:
                break;
        }

        if (v == 0)
                return 0;
        return round_pack(ff, sign, 0, v, rm, flags);
}

/*
 * Float to integer (kind 0 W, 1 WU, 2 L, 3 LU), all rounding modes, with
 * the spec's saturation: NaN and too large give the largest value, too
 * small the smallest; NV instead of NX when out of range. 32-bit results
 * come back sign-extended to 64 bits (also for WU).
 */
static inline uint64_t cvt_to_int(const FloatFormat *ff, uint64_t v, unsigned kind, unsigned rm, uint32_t *flags) {
        static const uint64_t max_val[4] = {
                UINT64_C(0x7fffffff), UINT64_C(0xffffffff), UINT64_C(0x7fffffffffffffff), UINT64_MAX,
        };
        static const uint64_t min_mag[4] = { /* magnitude of the most negative value */
                UINT64_C(0x80000000), 0, UINT64_C(0x8000000000000000), 0,
        };
        Unpacked x = unpack(ff, v);
        uint64_t q, r;
        bool inexact = false;

        switch (x.cls) {
        case FC_ZERO:
                return 0;
        case FC_QNAN:
        case FC_SNAN:
                *flags |= FFLAG_NV;
                r = max_val[kind];
                goto out;
        case FC_INF:
                goto overflow;
        default:
                break;
        }

        if (x.exp >= 0) {
                if (bitlen64(x.mant) + (unsigned) x.exp > 64)
                        goto overflow;
                q = x.mant << x.exp;
        } else
                q = round_shift64(x.mant, (unsigned) -x.exp, x.sign, rm, &inexact);

        if (x.sign) {
                if (q > min_mag[kind])
                        goto overflow;
                r = -q;
        } else {
                if (q > max_val[kind])
                        goto overflow;
                r = q;
        }
        if (inexact)
                *flags |= FFLAG_NX;
        goto out;

overflow:
        *flags |= FFLAG_NV;
        r = x.sign ? -min_mag[kind] : max_val[kind];
out:
        if (kind < 2)
                r = (uint64_t) (int64_t) (int32_t) r;
        return r;
}

/* ---------------------------------------------------------------------- */
/* Instructions */

/* Resolves the instruction's rm field; -1 if reserved. */
static inline int resolve_rm(const FpuState *fpu, uint32_t insn) {
        unsigned rm = (insn >> 12) & 7;

        if (rm == RM_DYN)
                rm = fpu->frm;
        if (rm > RM_RMM)
                return -1;
        return (int) rm;
}

/*
 * An arithmetic instruction in format _s or _d: RMM (which the host cannot
 * do) in software, everything else on the host with its flags, NaN results
 * made canonical.
 */
#define DEFINE_ARITH(fmt, T, U, bits, canonical_nan)                                                    \
        static U arith##fmt(FpuState *fpu, unsigned op, unsigned rm, U ua, U ub, U uc) {                \
                T r;                                                                                    \
                U v;                                                                                    \
                                                                                                        \
                /* inf * 0 is invalid even when the addend is a quiet NaN. */                           \
                if (op >= OP_FMADD && ((is_inf##fmt(ua) && is_zero##fmt(ub)) ||                         \
                                       (is_zero##fmt(ua) && is_inf##fmt(ub))))                          \
                        fpu->fflags |= FFLAG_NV;                                                        \
                                                                                                        \
                if (rm == RM_RMM) {                                                                     \
                        uint32_t flags = 0;                                                             \
                                                                                                        \
                        v = (U) soft_arith(&format##fmt, op, ua, ub, uc, rm, &flags);                   \
                        fpu->fflags |= flags;                                                           \
                        return v;                                                                       \
                }                                                                                       \
                                                                                                        \
                T a = bits##_from_bits(ua), b = bits##_from_bits(ub), c = bits##_from_bits(uc);         \
                HOST_RUN(fpu, rm, r = host_arith##fmt(op, a, b, c));                                    \
                v = bits##_to_bits(r);                                                                  \
                return is_nan##fmt(v) ? canonical_nan : v;                                              \
        }

DEFINE_ARITH(_s, float, uint32_t, f32, CANONICAL_NAN_S)
DEFINE_ARITH(_d, double, uint64_t, f64, CANONICAL_NAN_D)

/* Maps a value to an unsigned key whose order is the numeric order (-0 < +0). */
static inline uint64_t order_key(uint64_t v, unsigned sign_shift) {
        uint64_t sign = UINT64_C(1) << sign_shift;
        uint64_t mask = sign | (sign - 1);

        return (v & sign) ? (~v & mask) : (v | sign);
}

/* FMIN/FMAX (IEEE 754-2019 minimumNumber/maximumNumber). */
static uint64_t min_max(FpuState *fpu, const FloatFormat *ff, uint64_t a, uint64_t b, bool max) {
        bool an, bn, as, bs;
        uint64_t ka, kb;

        if (ff == &format_s) {
                an = is_nan_s((uint32_t) a), as = is_snan_s((uint32_t) a);
                bn = is_nan_s((uint32_t) b), bs = is_snan_s((uint32_t) b);
        } else {
                an = is_nan_d(a), as = is_snan_d(a);
                bn = is_nan_d(b), bs = is_snan_d(b);
        }
        if (as || bs)
                fpu->fflags |= FFLAG_NV;
        if (an && bn)
                return ff->canonical_nan;
        if (an)
                return b;
        if (bn)
                return a;

        ka = order_key(a, ff_sign_shift(ff));
        kb = order_key(b, ff_sign_shift(ff));
        if (max)
                return ka > kb ? a : b;
        return ka < kb ? a : b;
}

/* FEQ/FLE/FLT; funct3 2 eq, 1 lt, 0 le. */
static uint64_t compare(FpuState *fpu, const FloatFormat *ff, uint64_t a, uint64_t b, unsigned funct3) {
        bool an, bn, as, bs;
        uint64_t ka, kb, sign;

        if (ff == &format_s) {
                an = is_nan_s((uint32_t) a), as = is_snan_s((uint32_t) a);
                bn = is_nan_s((uint32_t) b), bs = is_snan_s((uint32_t) b);
        } else {
                an = is_nan_d(a), as = is_snan_d(a);
                bn = is_nan_d(b), bs = is_snan_d(b);
        }
        if (an || bn) {
                if (funct3 != 2 || as || bs)
                        fpu->fflags |= FFLAG_NV;
                return 0;
        }

        sign = UINT64_C(1) << ff_sign_shift(ff);
        if (((a | b) & (sign - 1)) == 0)
                return funct3 != 1; /* both zero: +0 == -0 */
        ka = order_key(a, ff_sign_shift(ff));
        kb = order_key(b, ff_sign_shift(ff));
        switch (funct3) {
        case 2:
                return ka == kb;
        case 1:
                return ka < kb;
        default:
                return ka <= kb;
        }
}

static uint64_t classify(const FloatFormat *ff, uint64_t v) {
        Unpacked u = unpack(ff, v);
        unsigned bit;

        switch (u.cls) {
        case FC_INF:
                bit = u.sign ? 0 : 7;
                break;
        case FC_ZERO:
                bit = u.sign ? 3 : 4;
                break;
        case FC_SNAN:
                bit = 8;
                break;
        case FC_QNAN:
                bit = 9;
                break;
        default:
                if (u.mant >> (ff->prec - 1))
                        bit = u.sign ? 1 : 6;
                else
                        bit = u.sign ? 2 : 5;
                break;
        }
        return UINT64_C(1) << bit;
}

static uint64_t sign_inject(uint64_t a, uint64_t b, unsigned sign_shift, unsigned funct3) {
        uint64_t sign = UINT64_C(1) << sign_shift;

        switch (funct3) {
        case 0: /* FSGNJ */
                return (a & ~sign) | (b & sign);
        case 1: /* FSGNJN */
                return (a & ~sign) | (~b & sign);
        default: /* FSGNJX */
                return a ^ (b & sign);
        }
}

/* FCVT.S.D */
static uint32_t cvt_s_d(FpuState *fpu, unsigned rm, uint64_t a) {
        float r;
        uint32_t v;

        if (rm == RM_RMM) {
                uint32_t flags = 0;

                v = soft_cvt_s_d(a, rm, &flags);
                fpu->fflags |= flags;
                return v;
        }

        HOST_RUN(fpu, rm, r = host_cvt_s_d(f64_from_bits(a)));
        v = f32_to_bits(r);
        return is_nan_s(v) ? CANONICAL_NAN_S : v;
}

/* FCVT.D.S: exact. */
static uint64_t cvt_d_s(FpuState *fpu, uint32_t a) {
        if (is_nan_s(a)) {
                if (is_snan_s(a))
                        fpu->fflags |= FFLAG_NV;
                return CANONICAL_NAN_D;
        }
        /* Exact; raises no IEEE flags on the host (only x86's denormal-operand flag). */
        return f64_to_bits((double) f32_from_bits(a));
}

/* Is integer 'v' of kind (0 W, 1 WU, 2 L, 3 LU) exactly representable with 'prec' bits? */
static inline bool int_fits(uint64_t v, unsigned kind, unsigned prec) {
        uint64_t lim = UINT64_C(1) << prec;

        switch (kind) {
        case 0:
                return (uint64_t) ((int64_t) (int32_t) v + (int64_t) lim) <= 2 * lim;
        case 1:
                return (uint32_t) v <= lim;
        case 2:
                return v + lim <= 2 * lim;
        default:
                return v <= lim;
        }
}

/* FCVT.S.{W,WU,L,LU} */
static uint32_t cvt_s_int(FpuState *fpu, unsigned rm, uint64_t v, unsigned kind) {
        float r;

        if (int_fits(v, kind, 24))
                return f32_to_bits(host_cvt_s_int(v, kind));

        if (rm == RM_RMM) {
                uint32_t flags = 0, bits;

                bits = (uint32_t) soft_cvt_from_int(&format_s, v, kind, rm, &flags);
                fpu->fflags |= flags;
                return bits;
        }

        HOST_RUN(fpu, rm, r = host_cvt_s_int(v, kind));
        return f32_to_bits(r);
}

/* FCVT.D.{W,WU,L,LU} */
static uint64_t cvt_d_int(FpuState *fpu, unsigned rm, uint64_t v, unsigned kind) {
        double r;

        switch (kind) {
        case 0:
                return f64_to_bits((double) (int32_t) v);
        case 1:
                return f64_to_bits((double) (uint32_t) v);
        default:
                break;
        }

        if (int_fits(v, kind, 53))
                return f64_to_bits(host_cvt_d_int(v, kind));

        if (rm == RM_RMM) {
                uint32_t flags = 0;
                uint64_t bits;

                bits = soft_cvt_from_int(&format_d, v, kind, rm, &flags);
                fpu->fflags |= flags;
                return bits;
        }

        HOST_RUN(fpu, rm, r = host_cvt_d_int(v, kind));
        return f64_to_bits(r);
}

/* Reads source register 'r' in format 'fmt' (0 S, 1 D). */
static inline uint64_t read_src(const FpuState *fpu, unsigned fmt, unsigned r) {
        return fmt ? fpu->f[r] : unbox_s(fpu->f[r]);
}

static inline void write_dst(FpuState *fpu, unsigned fmt, unsigned r, uint64_t v) {
        fpu->f[r] = fmt ? v : box_s((uint32_t) v);
}

static int exec_fused(FpuState *fpu, uint32_t insn) {
        unsigned rd = (insn >> 7) & 31, rs1 = (insn >> 15) & 31, rs2 = (insn >> 20) & 31;
        unsigned rs3 = insn >> 27, fmt = (insn >> 25) & 3;
        unsigned op = OP_FMADD + (((insn >> 2) & 0x1f) - 0x10);  /* 0x43 -> 0x10 ... 0x4f -> 0x13 */
        int rm;

        if (fmt > 1)
                return -1;
        rm = resolve_rm(fpu, insn);
        if (rm < 0)
                return -1;

        if (fmt == 0)
                write_dst(fpu, 0, rd, arith_s(fpu, op, (unsigned) rm, unbox_s(fpu->f[rs1]), unbox_s(fpu->f[rs2]),
                                              unbox_s(fpu->f[rs3])));
        else
                write_dst(fpu, 1, rd, arith_d(fpu, op, (unsigned) rm, fpu->f[rs1], fpu->f[rs2], fpu->f[rs3]));
        return 0;
}

static int exec_op_fp(FpuState *fpu, uint64_t x[32], uint32_t insn) {
        unsigned rd = (insn >> 7) & 31, funct3 = (insn >> 12) & 7, rs1 = (insn >> 15) & 31, rs2 = (insn >> 20) & 31;
        unsigned funct5 = insn >> 27, fmt = (insn >> 25) & 3;
        const FloatFormat *ff = fmt ? &format_d : &format_s;
        uint64_t a, b;
        int rm;

        if (fmt > 1)
                return -1;

        switch (funct5) {
        case 0x00: /* FADD */
        case 0x01: /* FSUB */
        case 0x02: /* FMUL */
        case 0x03: /* FDIV */
        case 0x0b: /* FSQRT */ {
                unsigned op = funct5 == 0x0b ? OP_SQRT : OP_ADD + funct5;

                if (op == OP_SQRT && rs2 != 0)
                        return -1;
                rm = resolve_rm(fpu, insn);
                if (rm < 0)
                        return -1;
                if (fmt == 0)
                        write_dst(fpu, 0, rd, arith_s(fpu, op, (unsigned) rm, unbox_s(fpu->f[rs1]),
                                                      unbox_s(fpu->f[rs2]), 0));
                else
                        write_dst(fpu, 1, rd, arith_d(fpu, op, (unsigned) rm, fpu->f[rs1], fpu->f[rs2], 0));
                return 0;
        }

        case 0x04: /* FSGNJ, FSGNJN, FSGNJX */
                if (funct3 > 2)
                        return -1;
                a = read_src(fpu, fmt, rs1);
                b = read_src(fpu, fmt, rs2);
                write_dst(fpu, fmt, rd, sign_inject(a, b, ff_sign_shift(ff), funct3));
                return 0;

        case 0x05: /* FMIN, FMAX */
                if (funct3 > 1)
                        return -1;
                a = read_src(fpu, fmt, rs1);
                b = read_src(fpu, fmt, rs2);
                write_dst(fpu, fmt, rd, min_max(fpu, ff, a, b, funct3 == 1));
                return 0;

        case 0x08: /* FCVT.S.D (fmt S, rs2 1), FCVT.D.S (fmt D, rs2 0) */
                if (rs2 != (fmt ? 0u : 1u))
                        return -1;
                rm = resolve_rm(fpu, insn);
                if (rm < 0)
                        return -1;
                if (fmt == 0)
                        write_dst(fpu, 0, rd, cvt_s_d(fpu, (unsigned) rm, fpu->f[rs1]));
                else
                        write_dst(fpu, 1, rd, cvt_d_s(fpu, unbox_s(fpu->f[rs1])));
                return 0;

        case 0x14: /* FLE, FLT, FEQ */
                if (funct3 > 2)
                        return -1;
                a = read_src(fpu, fmt, rs1);
                b = read_src(fpu, fmt, rs2);
                x[rd] = compare(fpu, ff, a, b, funct3);
                return 0;

        case 0x18: /* FCVT.{W,WU,L,LU}.fmt */ {
                uint32_t flags = 0;

                if (rs2 > 3)
                        return -1;
                rm = resolve_rm(fpu, insn);
                if (rm < 0)
                        return -1;
                /* Separate calls so that each is specialized for its format. */
                if (fmt == 0)
                        x[rd] = cvt_to_int(&format_s, unbox_s(fpu->f[rs1]), rs2, (unsigned) rm, &flags);
                else
                        x[rd] = cvt_to_int(&format_d, fpu->f[rs1], rs2, (unsigned) rm, &flags);
                fpu->fflags |= flags;
                return 0;
        }

        case 0x1a: /* FCVT.fmt.{W,WU,L,LU} */
                if (rs2 > 3)
                        return -1;
                rm = resolve_rm(fpu, insn);
                if (rm < 0)
                        return -1;
                if (fmt == 0)
                        write_dst(fpu, 0, rd, cvt_s_int(fpu, (unsigned) rm, x[rs1], rs2));
                else
                        write_dst(fpu, 1, rd, cvt_d_int(fpu, (unsigned) rm, x[rs1], rs2));
                return 0;

        case 0x1c: /* FMV.X.W/FMV.X.D (funct3 0), FCLASS (funct3 1) */
                if (rs2 != 0)
                        return -1;
                if (funct3 == 0) {
                        /* Raw bits, NaN-boxing ignored; FMV.X.W sign-extends. */
                        if (fmt == 0)
                                x[rd] = (uint64_t) (int64_t) (int32_t) (uint32_t) fpu->f[rs1];
                        else
                                x[rd] = fpu->f[rs1];
                        return 0;
                }
                if (funct3 == 1) {
                        x[rd] = classify(ff, read_src(fpu, fmt, rs1));
                        return 0;
                }
                return -1;

        case 0x1e: /* FMV.W.X, FMV.D.X */
                if (rs2 != 0 || funct3 != 0)
                        return -1;
                write_dst(fpu, fmt, rd, fmt ? x[rs1] : (uint32_t) x[rs1]);
                return 0;

        default:
                return -1;
        }
}

int fpu_execute(FpuState *fpu, uint64_t x[32], uint32_t insn) {
        switch (insn & 0x7f) {
        case 0x53:
                return exec_op_fp(fpu, x, insn);
        case 0x43: /* FMADD */
        case 0x47: /* FMSUB */
        case 0x4b: /* FNMSUB */
        case 0x4f: /* FNMADD */
                return exec_fused(fpu, insn);
        default:
                return -1;
        }
}
