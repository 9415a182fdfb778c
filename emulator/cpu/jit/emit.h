/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A minimal x86-64 instruction emitter: only the forms the translator uses,
 * with registers rax..rdi (no REX.R/REX.B needed) and memory operands of
 * the form [base + disp32]. Bounds are checked by the caller before each
 * guest instruction (JIT_MAX_INSN_BYTES).
 */

#include <stdint.h>
#include <string.h>

enum {
        RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSP = 4, RBP = 5, RSI = 6, RDI = 7,
};

/* Condition codes (the low nibble of Jcc/SETcc). */
enum {
        CC_B = 0x2, CC_AE = 0x3, CC_E = 0x4, CC_NE = 0x5, CC_BE = 0x6, CC_A = 0x7,
        CC_L = 0xc, CC_GE = 0xd, CC_LE = 0xe, CC_G = 0xf,
};

/* Two-operand ALU opcodes "op r64, r/m64" and their /digit for the imm32 form. */
enum {
        ALU_ADD = 0, ALU_OR = 1, ALU_AND = 4, ALU_SUB = 5, ALU_XOR = 6, ALU_CMP = 7,
};

typedef struct Emit {
        uint8_t *p;
} Emit;

static inline void e8(Emit *e, uint8_t b) {
        *e->p++ = b;
}

static inline void e32(Emit *e, uint32_t v) {
        memcpy(e->p, &v, 4);
        e->p += 4;
}

static inline void e64(Emit *e, uint64_t v) {
        memcpy(e->p, &v, 8);
        e->p += 8;
}

/* ModRM for [base + disp32] (base must not be rsp/r12). */
static inline void modrm_disp32(Emit *e, unsigned reg, unsigned base, int32_t disp) {
        e8(e, (uint8_t) (0x80 | (reg << 3) | base));
        e32(e, (uint32_t) disp);
}

/* mov r64, [base + disp] */
static inline void emit_load64(Emit *e, unsigned r, unsigned base, int32_t disp) {
        e8(e, 0x48);
        e8(e, 0x8b);
        modrm_disp32(e, r, base, disp);
}

/* mov [base + disp], r64 */
static inline void emit_store64(Emit *e, unsigned base, int32_t disp, unsigned r) {
        e8(e, 0x48);
        e8(e, 0x89);
        modrm_disp32(e, r, base, disp);
}

/* op r, [base + disp]; 'w' selects 64-bit (REX.W) or 32-bit operation */
static inline void emit_alu_mem(Emit *e, unsigned alu, bool w, unsigned r, unsigned base, int32_t disp) {
        if (w)
                e8(e, 0x48);
        e8(e, (uint8_t) (alu * 8 + 3));
        modrm_disp32(e, r, base, disp);
}

/* op r, imm32 (sign-extended to 64 bits when w) */
static inline void emit_alu_imm(Emit *e, unsigned alu, bool w, unsigned r, int32_t imm) {
        if (w)
                e8(e, 0x48);
        e8(e, 0x81);
        e8(e, (uint8_t) (0xc0 | (alu << 3) | r));
        e32(e, (uint32_t) imm);
}

/* add qword [base + disp], imm32 */
static inline void emit_add_mem_imm(Emit *e, unsigned base, int32_t disp, int32_t imm) {
        e8(e, 0x48);
        e8(e, 0x81);
        modrm_disp32(e, 0, base, disp);
        e32(e, (uint32_t) imm);
}

/* mov dst, src (64-bit) */
static inline void emit_mov_rr(Emit *e, unsigned dst, unsigned src) {
        e8(e, 0x48);
        e8(e, 0x89);
        e8(e, (uint8_t) (0xc0 | (src << 3) | dst));
}

/* mov r64, imm64 (shortest form that gives the same 64-bit value) */
static inline void emit_mov_imm(Emit *e, unsigned r, uint64_t v) {
        if (v <= UINT32_MAX) {
                e8(e, (uint8_t) (0xb8 + r)); /* mov r32, imm32 zero-extends */
                e32(e, (uint32_t) v);
        } else if ((int64_t) v == (int32_t) v) {
                e8(e, 0x48);
                e8(e, 0xc7);
                e8(e, (uint8_t) (0xc0 | r));
                e32(e, (uint32_t) v);
        } else {
                e8(e, 0x48);
                e8(e, (uint8_t) (0xb8 + r));
                e64(e, v);
        }
}

/* shl/shr/sar r, imm8 (digit 4/5/7) */
static inline void emit_shift_imm(Emit *e, unsigned digit, bool w, unsigned r, uint8_t n) {
        if (w)
                e8(e, 0x48);
        e8(e, 0xc1);
        e8(e, (uint8_t) (0xc0 | (digit << 3) | r));
        e8(e, n);
}

/* shl/shr/sar r, cl */
static inline void emit_shift_cl(Emit *e, unsigned digit, bool w, unsigned r) {
        if (w)
                e8(e, 0x48);
        e8(e, 0xd3);
        e8(e, (uint8_t) (0xc0 | (digit << 3) | r));
}

enum { SHIFT_SHL = 4, SHIFT_SHR = 5, SHIFT_SAR = 7 };

/* movsxd r64, r32 (same register) */
static inline void emit_sext32(Emit *e, unsigned r) {
        e8(e, 0x48);
        e8(e, 0x63);
        e8(e, (uint8_t) (0xc0 | (r << 3) | r));
}

/* imul r, [base + disp] */
static inline void emit_imul_mem(Emit *e, bool w, unsigned r, unsigned base, int32_t disp) {
        if (w)
                e8(e, 0x48);
        e8(e, 0x0f);
        e8(e, 0xaf);
        modrm_disp32(e, r, base, disp);
}

/* setcc al; movzx eax, al */
static inline void emit_setcc_rax(Emit *e, unsigned cc) {
        e8(e, 0x0f);
        e8(e, (uint8_t) (0x90 | cc));
        e8(e, 0xc0);
        e8(e, 0x0f);
        e8(e, 0xb6);
        e8(e, 0xc0);
}

/* jcc rel32 with the displacement left to patch; returns the address of the rel32 */
static inline uint8_t *emit_jcc(Emit *e, unsigned cc) {
        e8(e, 0x0f);
        e8(e, (uint8_t) (0x80 | cc));
        uint8_t *rel = e->p;
        e32(e, 0);
        return rel;
}

static inline uint8_t *emit_jmp(Emit *e) {
        e8(e, 0xe9);
        uint8_t *rel = e->p;
        e32(e, 0);
        return rel;
}

/* Points a rel32 at 'target', both as addresses in the same mapping. */
static inline void patch_rel32(uint8_t *rel, const uint8_t *target) {
        int32_t d = (int32_t) (target - (rel + 4));
        memcpy(rel, &d, 4);
}

/* call rax */
static inline void emit_mfence(Emit *e) {
        e8(e, 0x0f);
        e8(e, 0xae);
        e8(e, 0xf0);
}

static inline void emit_call_rax(Emit *e) {
        e8(e, 0xff);
        e8(e, 0xd0);
}
