/* SPDX-License-Identifier: MIT */

/*
 * The C extension: each 16-bit instruction is expanded to the 32-bit
 * instruction it stands for, so the interpreter has one implementation of
 * every operation. Reserved and illegal encodings expand to 0.
 */

#include "hart-internal.h"

#define BITS(x, hi, lo) (((x) >> (lo)) & ((1u << ((hi) - (lo) + 1)) - 1))
#define BIT(x, n) (((x) >> (n)) & 1u)

enum {
        MAJOR_LOAD = 0x03,
        MAJOR_LOAD_FP = 0x07,
        MAJOR_IMM = 0x13,
        MAJOR_IMM_32 = 0x1b,
        MAJOR_STORE = 0x23,
        MAJOR_STORE_FP = 0x27,
        MAJOR_OP = 0x33,
        MAJOR_LUI = 0x37,
        MAJOR_OP_32 = 0x3b,
        MAJOR_BRANCH = 0x63,
        MAJOR_JALR = 0x67,
        MAJOR_JAL = 0x6f,
        MAJOR_SYSTEM = 0x73,
};

static uint32_t enc_i(unsigned op, unsigned f3, unsigned rd, unsigned rs1, int32_t imm) {
        return ((uint32_t) imm & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}

static uint32_t enc_s(unsigned op, unsigned f3, unsigned rs1, unsigned rs2, int32_t imm) {
        uint32_t u = (uint32_t) imm;
        return BITS(u, 11, 5) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | BITS(u, 4, 0) << 7 | op;
}

static uint32_t enc_r(unsigned op, unsigned f3, unsigned f7, unsigned rd, unsigned rs1, unsigned rs2) {
        return f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}

static uint32_t enc_b(unsigned f3, unsigned rs1, unsigned rs2, int32_t imm) {
        uint32_t u = (uint32_t) imm;
        return BIT(u, 12) << 31 | BITS(u, 10, 5) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 |
                BITS(u, 4, 1) << 8 | BIT(u, 11) << 7 | MAJOR_BRANCH;
}

static uint32_t enc_j(unsigned rd, int32_t imm) {
        uint32_t u = (uint32_t) imm;
        return BIT(u, 20) << 31 | BITS(u, 10, 1) << 21 | BIT(u, 11) << 20 | BITS(u, 19, 12) << 12 | rd << 7 | MAJOR_JAL;
}

static int32_t sext(uint32_t value, unsigned bits) {
        return (int32_t) (value << (32 - bits)) >> (32 - bits);
}

static uint32_t expand_q0(uint16_t c) {
        unsigned rd = BITS(c, 4, 2) + 8, rs1 = BITS(c, 9, 7) + 8;
        uint32_t uimm_w = BITS(c, 12, 10) << 3 | BIT(c, 6) << 2 | BIT(c, 5) << 6;
        uint32_t uimm_d = BITS(c, 12, 10) << 3 | BITS(c, 6, 5) << 6;

        switch (BITS(c, 15, 13)) {
        case 0: { /* C.ADDI4SPN */
                uint32_t imm = BITS(c, 12, 11) << 4 | BITS(c, 10, 7) << 6 | BIT(c, 6) << 2 | BIT(c, 5) << 3;
                if (imm == 0)
                        return 0;
                return enc_i(MAJOR_IMM, 0, rd, 2, (int32_t) imm);
        }
        case 1: /* C.FLD */
                return enc_i(MAJOR_LOAD_FP, 3, rd, rs1, (int32_t) uimm_d);
        case 2: /* C.LW */
                return enc_i(MAJOR_LOAD, 2, rd, rs1, (int32_t) uimm_w);
        case 3: /* C.LD */
                return enc_i(MAJOR_LOAD, 3, rd, rs1, (int32_t) uimm_d);
        case 5: /* C.FSD */
                return enc_s(MAJOR_STORE_FP, 3, rs1, rd, (int32_t) uimm_d);
        case 6: /* C.SW */
                return enc_s(MAJOR_STORE, 2, rs1, rd, (int32_t) uimm_w);
        case 7: /* C.SD */
                return enc_s(MAJOR_STORE, 3, rs1, rd, (int32_t) uimm_d);
        default:
                return 0;
        }
}

static uint32_t expand_q1(uint16_t c) {
        unsigned rd = BITS(c, 11, 7);
        int32_t imm6 = sext(BIT(c, 12) << 5 | BITS(c, 6, 2), 6);
        unsigned rdp = BITS(c, 9, 7) + 8, rs2p = BITS(c, 4, 2) + 8;

        switch (BITS(c, 15, 13)) {
        case 0: /* C.ADDI, C.NOP */
                return enc_i(MAJOR_IMM, 0, rd, rd, imm6);
        case 1: /* C.ADDIW */
                if (rd == 0)
                        return 0;
                return enc_i(MAJOR_IMM_32, 0, rd, rd, imm6);
        case 2: /* C.LI */
                return enc_i(MAJOR_IMM, 0, rd, 0, imm6);
        case 3:
                if (rd == 2) { /* C.ADDI16SP */
                        uint32_t u = BIT(c, 12) << 9 | BIT(c, 6) << 4 | BIT(c, 5) << 6 | BITS(c, 4, 3) << 7 | BIT(c, 2) << 5;
                        if (u == 0)
                                return 0;
                        return enc_i(MAJOR_IMM, 0, 2, 2, sext(u, 10));
                } else { /* C.LUI */
                        int32_t imm = sext(BIT(c, 12) << 17 | BITS(c, 6, 2) << 12, 18);
                        if (imm == 0)
                                return 0;
                        return ((uint32_t) imm & 0xfffff000u) | rd << 7 | MAJOR_LUI;
                }
        case 4:
                switch (BITS(c, 11, 10)) {
                case 0: /* C.SRLI */
                        return enc_i(MAJOR_IMM, 5, rdp, rdp, (int32_t) (BIT(c, 12) << 5 | BITS(c, 6, 2)));
                case 1: /* C.SRAI */
                        return enc_i(MAJOR_IMM, 5, rdp, rdp, (int32_t) (0x400 | BIT(c, 12) << 5 | BITS(c, 6, 2)));
                case 2: /* C.ANDI */
                        return enc_i(MAJOR_IMM, 7, rdp, rdp, imm6);
                default:
                        if (!BIT(c, 12)) {
                                static const uint8_t f3[4] = { 0, 4, 6, 7 }; /* SUB XOR OR AND */
                                unsigned op = BITS(c, 6, 5);
                                return enc_r(MAJOR_OP, f3[op], op == 0 ? 0x20 : 0, rdp, rdp, rs2p);
                        }
                        switch (BITS(c, 6, 5)) {
                        case 0: /* C.SUBW */
                                return enc_r(MAJOR_OP_32, 0, 0x20, rdp, rdp, rs2p);
                        case 1: /* C.ADDW */
                                return enc_r(MAJOR_OP_32, 0, 0, rdp, rdp, rs2p);
                        default:
                                return 0;
                        }
                }
        case 5: { /* C.J */
                uint32_t u = BIT(c, 12) << 11 | BIT(c, 11) << 4 | BITS(c, 10, 9) << 8 | BIT(c, 8) << 10 |
                        BIT(c, 7) << 6 | BIT(c, 6) << 7 | BITS(c, 5, 3) << 1 | BIT(c, 2) << 5;
                return enc_j(0, sext(u, 12));
        }
        default: { /* C.BEQZ, C.BNEZ */
                uint32_t u = BIT(c, 12) << 8 | BITS(c, 11, 10) << 3 | BITS(c, 6, 5) << 6 | BITS(c, 4, 3) << 1 | BIT(c, 2) << 5;
                return enc_b(BITS(c, 15, 13) == 6 ? 0 : 1, rdp, 0, sext(u, 9));
        }
        }
}

static uint32_t expand_q2(uint16_t c) {
        unsigned rd = BITS(c, 11, 7), rs2 = BITS(c, 6, 2);

        switch (BITS(c, 15, 13)) {
        case 0: /* C.SLLI */
                return enc_i(MAJOR_IMM, 1, rd, rd, (int32_t) (BIT(c, 12) << 5 | BITS(c, 6, 2)));
        case 1: /* C.FLDSP */
                return enc_i(MAJOR_LOAD_FP, 3, rd, 2, (int32_t) (BIT(c, 12) << 5 | BITS(c, 6, 5) << 3 | BITS(c, 4, 2) << 6));
        case 2: /* C.LWSP */
                if (rd == 0)
                        return 0;
                return enc_i(MAJOR_LOAD, 2, rd, 2, (int32_t) (BIT(c, 12) << 5 | BITS(c, 6, 4) << 2 | BITS(c, 3, 2) << 6));
        case 3: /* C.LDSP */
                if (rd == 0)
                        return 0;
                return enc_i(MAJOR_LOAD, 3, rd, 2, (int32_t) (BIT(c, 12) << 5 | BITS(c, 6, 5) << 3 | BITS(c, 4, 2) << 6));
        case 4:
                if (!BIT(c, 12)) {
                        if (rs2 == 0) { /* C.JR */
                                if (rd == 0)
                                        return 0;
                                return enc_i(MAJOR_JALR, 0, 0, rd, 0);
                        }
                        return enc_r(MAJOR_OP, 0, 0, rd, 0, rs2); /* C.MV */
                }
                if (rs2 == 0) {
                        if (rd == 0)
                                return 0x00100073; /* C.EBREAK */
                        return enc_i(MAJOR_JALR, 0, 1, rd, 0); /* C.JALR */
                }
                return enc_r(MAJOR_OP, 0, 0, rd, rd, rs2); /* C.ADD */
        case 5: /* C.FSDSP */
                return enc_s(MAJOR_STORE_FP, 3, 2, rs2, (int32_t) (BITS(c, 12, 10) << 3 | BITS(c, 9, 7) << 6));
        case 6: /* C.SWSP */
                return enc_s(MAJOR_STORE, 2, 2, rs2, (int32_t) (BITS(c, 12, 9) << 2 | BITS(c, 8, 7) << 6));
        default: /* C.SDSP */
                return enc_s(MAJOR_STORE, 3, 2, rs2, (int32_t) (BITS(c, 12, 10) << 3 | BITS(c, 9, 7) << 6));
        }
}

uint32_t rvc_expand(uint16_t insn) {
        switch (insn & 3) {
        case 0:
                return expand_q0(insn);
        case 1:
                return expand_q1(insn);
        case 2:
                return expand_q2(insn);
        default:
                return 0;
        }
}
