/* SPDX-License-Identifier: MIT */

#include "hart-internal.h"
#include "decode.h"

static int64_t imm_i(uint32_t insn) {
        return (int64_t) ((int32_t) insn >> 20);
}

static int64_t imm_s(uint32_t insn) {
        return (int64_t) ((int32_t) (insn & 0xfe000000u) >> 20) | (int64_t) ((insn >> 7) & 0x1f);
}

static int64_t imm_b(uint32_t insn) {
        return ((int64_t) (int32_t) (insn & 0x80000000u) >> 19) | (int64_t) ((insn << 4) & 0x800) |
                (int64_t) ((insn >> 20) & 0x7e0) | (int64_t) ((insn >> 7) & 0x1e);
}

static int64_t imm_j(uint32_t insn) {
        return ((int64_t) (int32_t) (insn & 0x80000000u) >> 11) | (int64_t) (insn & 0xff000) |
                (int64_t) ((insn >> 9) & 0x800) | (int64_t) ((insn >> 20) & 0x7fe);
}

static int64_t imm_u(uint32_t insn) {
        return (int64_t) (int32_t) (insn & 0xfffff000u);
}

static Op decode_op(uint32_t f3, uint32_t f7) {
        static const Op base[8] = { OP_ADD, OP_SLL, OP_SLT, OP_SLTU, OP_XOR, OP_SRL, OP_OR, OP_AND };
        static const Op mul[8] = { OP_MUL, OP_MULH, OP_MULHSU, OP_MULHU, OP_DIV, OP_DIVU, OP_REM, OP_REMU };

        if (f7 == 0x00)
                return base[f3];
        if (f7 == 0x01)
                return mul[f3];
        if (f7 == 0x20 && f3 == 0)
                return OP_SUB;
        if (f7 == 0x20 && f3 == 5)
                return OP_SRA;
        return OP_ILLEGAL;
}

static Op decode_op32(uint32_t f3, uint32_t f7) {
        if (f7 == 0x00) {
                switch (f3) {
                case 0: return OP_ADDW;
                case 1: return OP_SLLW;
                case 5: return OP_SRLW;
                default: return OP_ILLEGAL;
                }
        }
        if (f7 == 0x01) {
                switch (f3) {
                case 0: return OP_MULW;
                case 4: return OP_DIVW;
                case 5: return OP_DIVUW;
                case 6: return OP_REMW;
                case 7: return OP_REMUW;
                default: return OP_ILLEGAL;
                }
        }
        if (f7 == 0x20) {
                if (f3 == 0)
                        return OP_SUBW;
                if (f3 == 5)
                        return OP_SRAW;
        }
        return OP_ILLEGAL;
}

static Op decode_32(uint32_t insn, int64_t *imm) {
        uint32_t f3 = (insn >> 12) & 7, f7 = insn >> 25;

        switch (insn & 0x7f) {
        case 0x37:
                *imm = imm_u(insn);
                return OP_LUI;
        case 0x17:
                *imm = imm_u(insn);
                return OP_AUIPC;
        case 0x6f:
                *imm = imm_j(insn);
                return OP_JAL;
        case 0x67:
                *imm = imm_i(insn);
                return f3 == 0 ? OP_JALR : OP_ILLEGAL;
        case 0x63: {
                static const Op branch[8] = { OP_BEQ, OP_BNE, OP_ILLEGAL, OP_ILLEGAL, OP_BLT, OP_BGE, OP_BLTU, OP_BGEU };
                *imm = imm_b(insn);
                return branch[f3];
        }
        case 0x03: {
                static const Op load[8] = { OP_LB, OP_LH, OP_LW, OP_LD, OP_LBU, OP_LHU, OP_LWU, OP_ILLEGAL };
                *imm = imm_i(insn);
                return load[f3];
        }
        case 0x23: {
                static const Op store[8] = { OP_SB, OP_SH, OP_SW, OP_SD, OP_ILLEGAL, OP_ILLEGAL, OP_ILLEGAL, OP_ILLEGAL };
                *imm = imm_s(insn);
                return store[f3];
        }
        case 0x13:
                *imm = imm_i(insn);
                switch (f3) {
                case 0: return OP_ADDI;
                case 1:
                        *imm = (insn >> 20) & 63;
                        return (insn >> 26) == 0 ? OP_SLLI : OP_ILLEGAL;
                case 2: return OP_SLTI;
                case 3: return OP_SLTIU;
                case 4: return OP_XORI;
                case 5:
                        *imm = (insn >> 20) & 63;
                        if ((insn >> 26) == 0)
                                return OP_SRLI;
                        if ((insn >> 26) == 0x10)
                                return OP_SRAI;
                        return OP_ILLEGAL;
                case 6: return OP_ORI;
                default: return OP_ANDI;
                }
        case 0x1b:
                *imm = imm_i(insn);
                switch (f3) {
                case 0: return OP_ADDIW;
                case 1:
                        *imm = (insn >> 20) & 31;
                        return f7 == 0 ? OP_SLLIW : OP_ILLEGAL;
                case 5:
                        *imm = (insn >> 20) & 31;
                        if (f7 == 0)
                                return OP_SRLIW;
                        if (f7 == 0x20)
                                return OP_SRAIW;
                        return OP_ILLEGAL;
                default:
                        return OP_ILLEGAL;
                }
        case 0x33:
                return decode_op(f3, f7);
        case 0x3b:
                return decode_op32(f3, f7);
        case 0x0f:
                /* FENCE (and its PAUSE hint), FENCE.I: no effect on a single in-order hart with a tagged decode cache. */
                return f3 <= 1 ? OP_FENCE : OP_ILLEGAL;
        case 0x2f:
                *imm = insn;
                return OP_AMO;
        case 0x73:
                *imm = insn;
                return OP_SYSTEM;
        case 0x07:
                *imm = imm_i(insn);
                return f3 == 2 ? OP_FLW : f3 == 3 ? OP_FLD : OP_ILLEGAL;
        case 0x27:
                *imm = imm_s(insn);
                return f3 == 2 ? OP_FSW : f3 == 3 ? OP_FSD : OP_ILLEGAL;
        case 0x43: case 0x47: case 0x4b: case 0x4f: case 0x53:
                *imm = insn;
                return OP_FP;
        default:
                return OP_ILLEGAL;
        }
}

void decode_insn(uint32_t key, DecodedInsn *d) {
        uint32_t insn = key;
        int64_t imm = 0;

        d->raw = key;
        d->len = 4;
        if ((key & 3) != 3) {
                d->len = 2;
                insn = rvc_expand((uint16_t) key);
                if (insn == 0) {
                        d->op = OP_ILLEGAL;
                        d->rd = d->rs1 = d->rs2 = 0;
                        d->imm = 0;
                        return;
                }
        }
        d->op = (uint8_t) decode_32(insn, &imm);
        d->rd = (insn >> 7) & 31;
        d->rs1 = (insn >> 15) & 31;
        d->rs2 = (insn >> 20) & 31;
        d->imm = imm;
}
