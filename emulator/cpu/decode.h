/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Instruction decoding, done once per instruction word and cached: the
 * interpreter keeps a direct-mapped table of DecodedInsn indexed by pc and
 * tagged with the raw instruction bits, so a hit costs one compare and the
 * cache needs no invalidation (self-modifying code, DMA and FENCE.I simply
 * produce different bits, hence a miss). Decoding depends on the bits
 * alone, never on the pc, which is what makes the raw tag sufficient.
 */

#include <stdbool.h>
#include <stdint.h>

typedef enum Op {
        OP_ILLEGAL = 0,
        OP_LUI, OP_AUIPC, OP_JAL, OP_JALR,
        OP_BEQ, OP_BNE, OP_BLT, OP_BGE, OP_BLTU, OP_BGEU,
        OP_LB, OP_LH, OP_LW, OP_LD, OP_LBU, OP_LHU, OP_LWU,
        OP_SB, OP_SH, OP_SW, OP_SD,
        OP_ADDI, OP_SLTI, OP_SLTIU, OP_XORI, OP_ORI, OP_ANDI, OP_SLLI, OP_SRLI, OP_SRAI,
        OP_ADDIW, OP_SLLIW, OP_SRLIW, OP_SRAIW,
        OP_ADD, OP_SUB, OP_SLL, OP_SLT, OP_SLTU, OP_XOR, OP_SRL, OP_SRA, OP_OR, OP_AND,
        OP_MUL, OP_MULH, OP_MULHSU, OP_MULHU, OP_DIV, OP_DIVU, OP_REM, OP_REMU,
        OP_ADDW, OP_SUBW, OP_SLLW, OP_SRLW, OP_SRAW,
        OP_MULW, OP_DIVW, OP_DIVUW, OP_REMW, OP_REMUW,
        OP_FENCE,
        OP_AMO,         /* 'insn' holds the 32-bit instruction */
        OP_SYSTEM,      /* 'insn' holds the 32-bit instruction */
        OP_FLW, OP_FLD, OP_FSW, OP_FSD,
        OP_FP,          /* OP-FP and fused multiply-add: 'insn' for fpu_execute() */
        _OP_MAX,
} Op;

typedef struct DecodedInsn {
        uint32_t raw;           /* tag: the instruction bits (16-bit forms zero-extended) */
        uint8_t op;             /* Op */
        uint8_t rd, rs1, rs2;
        uint8_t len;            /* 2 or 4 */
        int64_t imm;            /* sign-extended immediate, or the 32-bit instruction for OP_AMO/SYSTEM/FP */
} DecodedInsn;

/* The cache key of a fetched 32-bit word: all of it, or the low half for a compressed instruction. */
static inline uint32_t decode_key(uint32_t fetched) {
        return (fetched & 3) == 3 ? fetched : (fetched & 0xffff);
}

/* Decodes 'key' (see decode_key) into *d. Illegal encodings give OP_ILLEGAL. */
void decode_insn(uint32_t key, DecodedInsn *d);

/*
 * Whether FENCE 'insn' (funct3 0) orders earlier stores (or device
 * outputs) before later loads (or inputs). The host keeps every other
 * order of one thread's accesses as the guest wrote them (x86 is TSO), but
 * a store may wait in its store buffer while a later load goes ahead; with
 * devices on other threads reading and writing guest RAM (virtqueues),
 * that reordering is visible, so such a FENCE becomes a host fence.
 * FENCE.TSO (fm 1000) orders everything except store to load.
 */
static inline bool fence_orders_store_load(uint32_t insn) {
        unsigned fm = insn >> 28, pred = (insn >> 24) & 15, succ = (insn >> 20) & 15;
        enum { FENCE_R = 2, FENCE_W = 1, FENCE_O = 4, FENCE_I = 8, FM_TSO = 8 };

        return fm != FM_TSO && (pred & (FENCE_W | FENCE_O)) && (succ & (FENCE_R | FENCE_I));
}
