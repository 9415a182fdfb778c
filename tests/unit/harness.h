/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A tiny machine for the CPU unit tests: 1 MiB of RAM at 0x80000000, one
 * hart, a fake clock, trap handlers that park the hart, and encoders for
 * every instruction format (32-bit and compressed), written from the ISA
 * manual's tables rather than from the emulator's decoder, so that the tests
 * do not depend on an assembler and do not share the code they check.
 *
 * Layout of RAM:
 *   CODE_BASE    code under test
 *   MTRAP_BASE   M-mode handler (mtvec): wfi; j .-4
 *   STRAP_BASE   S-mode handler (stvec): wfi; j .-4
 *   MVEC_BASE    a vectored mtvec table: 32 x "j ." (each entry loops on itself)
 *   DATA_BASE    data (filled with a byte pattern by th_new())
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu/hart-internal.h"
#include "machine/physmem.h"
#include "riscv-spec.h"

#define RAM_BASE 0x80000000ULL
#define RAM_SIZE (1ULL << 20)
#define CODE_BASE RAM_BASE
#define MTRAP_BASE (RAM_BASE + 0x1000)
#define STRAP_BASE (RAM_BASE + 0x1100)
#define MVEC_BASE (RAM_BASE + 0x2000)
#define DATA_BASE (RAM_BASE + 0x10000)

/* Written to the trap CSRs by th_clear_trap(): no trap has happened since. */
#define NO_TRAP 0x5a5a5a5a5a5a5a5aULL

/* ---- the machine ---- */

typedef struct TestHart {
        PhysMem mem;
        Hart hart;
        uint64_t now;           /* what the fake clock returns */
        uint64_t cursor;        /* where th_emit() puts the next instruction */

        /*
         * Lockstep: an interpreter twin run side by side with the JIT and
         * compared at every block boundary. Devices see only the hart under
         * test: the values its MMIO reads return are recorded and replayed
         * to the twin, whose MMIO writes go nowhere.
         */
        Hart *shadow;
        PhysMem shadow_mem;
        uint64_t lockstep_blocks;
        struct MmioTap {
                struct TestHart *t;
                const MmioOps *ops;
                void *opaque;
        } taps[PHYSMEM_MAX_REGIONS];
        uint64_t mmio_values[1024];
        unsigned mmio_head, mmio_tail;
} TestHart;

/*
 * A new machine. Its engine comes from $ORRERY_CPU_ENGINE: "interp"
 * (default), "jit", or "lockstep" (the JIT, with an interpreter twin that
 * th_run() compares against after every block; a difference aborts).
 */
TestHart *th_new(void);

/* Switches the engine as $ORRERY_CPU_ENGINE would; aborts if unavailable. */
void th_use_engine(TestHart *t, const char *engine);
void th_free(TestHart *t);
static inline void th_freep(TestHart **t) {
        if (*t)
                th_free(*t);
}
#define _cleanup_th_ __attribute__((cleanup(th_freep)))

/* Host pointer for guest physical [paddr, paddr+len) in RAM; aborts outside it. */
uint8_t *th_ptr(TestHart *t, uint64_t paddr, size_t len);
uint64_t th_load(TestHart *t, uint64_t paddr, unsigned size);
void th_store(TestHart *t, uint64_t paddr, unsigned size, uint64_t value);

/* Places instructions at the cursor and returns the address of the one placed. */
void th_org(TestHart *t, uint64_t paddr);
uint64_t th_emit(TestHart *t, uint32_t insn);
uint64_t th_emit16(TestHart *t, uint16_t insn);

/* Switches privilege directly (as if by an xRET), keeping the TLB regime right. */
void th_set_priv(TestHart *t, unsigned priv);

/* CSR access as M-mode (for setting up and inspecting); abort if illegal. */
uint64_t th_csr(TestHart *t, unsigned csr);
void th_csr_write(TestHart *t, unsigned csr, uint64_t value);

/* Runs up to n instructions (a pending kick from an interrupt line is dropped first). */
HartExit th_run(TestHart *t, uint64_t n);

/* Resets mcause, mtval, scause and stval to NO_TRAP (xepc are left for xRET tests to set). */
void th_clear_trap(TestHart *t);

/* Redirects the hart to 'pc' at privilege 'priv', out of any WFI sleep. */
void th_jump(TestHart *t, uint64_t pc, unsigned priv);

/* Whether the hart is parked in the M (or S) handler. */
bool th_in_mtrap(TestHart *t);
bool th_in_strap(TestHart *t);

/* PMP entry 0: NAPOT over the whole address space, RWX (so S/U can access memory). */
void th_pmp_allow_all(TestHart *t);

/* ---- 32-bit encoders (RISC-V unprivileged ISA, chapter "RV32I", base formats) ---- */

#define IMM(v, hi, lo) ((((uint32_t) (v)) >> (lo)) & ((1u << ((hi) - (lo) + 1)) - 1))

static inline uint32_t enc_r(unsigned op, unsigned f3, unsigned f7, unsigned rd, unsigned rs1, unsigned rs2) {
        return (uint32_t) f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}

static inline uint32_t enc_r4(unsigned op, unsigned f3, unsigned fmt, unsigned rd, unsigned rs1, unsigned rs2,
                              unsigned rs3) {
        return (uint32_t) rs3 << 27 | fmt << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}

static inline uint32_t enc_i(unsigned op, unsigned f3, unsigned rd, unsigned rs1, int32_t imm) {
        return IMM(imm, 11, 0) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}

static inline uint32_t enc_s(unsigned op, unsigned f3, unsigned rs1, unsigned rs2, int32_t imm) {
        return IMM(imm, 11, 5) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | IMM(imm, 4, 0) << 7 | op;
}

static inline uint32_t enc_b(unsigned f3, unsigned rs1, unsigned rs2, int32_t imm) {
        return IMM(imm, 12, 12) << 31 | IMM(imm, 10, 5) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 |
                IMM(imm, 4, 1) << 8 | IMM(imm, 11, 11) << 7 | 0x63;
}

/* 'imm20' is the 20-bit value that lands in bits 31:12. */
static inline uint32_t enc_u(unsigned op, unsigned rd, uint32_t imm20) {
        return (imm20 & 0xfffff) << 12 | rd << 7 | op;
}

static inline uint32_t enc_j(unsigned rd, int32_t imm) {
        return IMM(imm, 20, 20) << 31 | IMM(imm, 10, 1) << 21 | IMM(imm, 11, 11) << 20 | IMM(imm, 19, 12) << 12 |
                rd << 7 | 0x6f;
}

/* RV64I */
#define LUI(rd, imm20) enc_u(0x37, rd, imm20)
#define AUIPC(rd, imm20) enc_u(0x17, rd, imm20)
#define JAL(rd, off) enc_j(rd, off)
#define JALR(rd, rs1, imm) enc_i(0x67, 0, rd, rs1, imm)
#define BEQ(rs1, rs2, off) enc_b(0, rs1, rs2, off)
#define BNE(rs1, rs2, off) enc_b(1, rs1, rs2, off)
#define BLT(rs1, rs2, off) enc_b(4, rs1, rs2, off)
#define BGE(rs1, rs2, off) enc_b(5, rs1, rs2, off)
#define BLTU(rs1, rs2, off) enc_b(6, rs1, rs2, off)
#define BGEU(rs1, rs2, off) enc_b(7, rs1, rs2, off)
#define LB(rd, rs1, imm) enc_i(0x03, 0, rd, rs1, imm)
#define LH(rd, rs1, imm) enc_i(0x03, 1, rd, rs1, imm)
#define LW(rd, rs1, imm) enc_i(0x03, 2, rd, rs1, imm)
#define LD(rd, rs1, imm) enc_i(0x03, 3, rd, rs1, imm)
#define LBU(rd, rs1, imm) enc_i(0x03, 4, rd, rs1, imm)
#define LHU(rd, rs1, imm) enc_i(0x03, 5, rd, rs1, imm)
#define LWU(rd, rs1, imm) enc_i(0x03, 6, rd, rs1, imm)
#define SB(rs2, rs1, imm) enc_s(0x23, 0, rs1, rs2, imm)
#define SH(rs2, rs1, imm) enc_s(0x23, 1, rs1, rs2, imm)
#define SW(rs2, rs1, imm) enc_s(0x23, 2, rs1, rs2, imm)
#define SD(rs2, rs1, imm) enc_s(0x23, 3, rs1, rs2, imm)
#define ADDI(rd, rs1, imm) enc_i(0x13, 0, rd, rs1, imm)
#define SLTI(rd, rs1, imm) enc_i(0x13, 2, rd, rs1, imm)
#define SLTIU(rd, rs1, imm) enc_i(0x13, 3, rd, rs1, imm)
#define XORI(rd, rs1, imm) enc_i(0x13, 4, rd, rs1, imm)
#define ORI(rd, rs1, imm) enc_i(0x13, 6, rd, rs1, imm)
#define ANDI(rd, rs1, imm) enc_i(0x13, 7, rd, rs1, imm)
#define SLLI(rd, rs1, sh) enc_i(0x13, 1, rd, rs1, (sh) & 63)
#define SRLI(rd, rs1, sh) enc_i(0x13, 5, rd, rs1, (sh) & 63)
#define SRAI(rd, rs1, sh) enc_i(0x13, 5, rd, rs1, 0x400 | ((sh) & 63))
#define ADD(rd, rs1, rs2) enc_r(0x33, 0, 0x00, rd, rs1, rs2)
#define SUB(rd, rs1, rs2) enc_r(0x33, 0, 0x20, rd, rs1, rs2)
#define SLL(rd, rs1, rs2) enc_r(0x33, 1, 0x00, rd, rs1, rs2)
#define SLT(rd, rs1, rs2) enc_r(0x33, 2, 0x00, rd, rs1, rs2)
#define SLTU(rd, rs1, rs2) enc_r(0x33, 3, 0x00, rd, rs1, rs2)
#define XOR(rd, rs1, rs2) enc_r(0x33, 4, 0x00, rd, rs1, rs2)
#define SRL(rd, rs1, rs2) enc_r(0x33, 5, 0x00, rd, rs1, rs2)
#define SRA(rd, rs1, rs2) enc_r(0x33, 5, 0x20, rd, rs1, rs2)
#define OR(rd, rs1, rs2) enc_r(0x33, 6, 0x00, rd, rs1, rs2)
#define AND(rd, rs1, rs2) enc_r(0x33, 7, 0x00, rd, rs1, rs2)
#define ADDIW(rd, rs1, imm) enc_i(0x1b, 0, rd, rs1, imm)
#define SLLIW(rd, rs1, sh) enc_i(0x1b, 1, rd, rs1, (sh) & 31)
#define SRLIW(rd, rs1, sh) enc_i(0x1b, 5, rd, rs1, (sh) & 31)
#define SRAIW(rd, rs1, sh) enc_i(0x1b, 5, rd, rs1, 0x400 | ((sh) & 31))
#define ADDW(rd, rs1, rs2) enc_r(0x3b, 0, 0x00, rd, rs1, rs2)
#define SUBW(rd, rs1, rs2) enc_r(0x3b, 0, 0x20, rd, rs1, rs2)
#define SLLW(rd, rs1, rs2) enc_r(0x3b, 1, 0x00, rd, rs1, rs2)
#define SRLW(rd, rs1, rs2) enc_r(0x3b, 5, 0x00, rd, rs1, rs2)
#define SRAW(rd, rs1, rs2) enc_r(0x3b, 5, 0x20, rd, rs1, rs2)
#define FENCE() 0x0ff0000fu
#define FENCE_I() 0x0000100fu
#define ECALL() 0x00000073u
#define EBREAK() 0x00100073u
#define NOP() ADDI(0, 0, 0)

/* M */
#define MUL(rd, rs1, rs2) enc_r(0x33, 0, 0x01, rd, rs1, rs2)
#define MULH(rd, rs1, rs2) enc_r(0x33, 1, 0x01, rd, rs1, rs2)
#define MULHSU(rd, rs1, rs2) enc_r(0x33, 2, 0x01, rd, rs1, rs2)
#define MULHU(rd, rs1, rs2) enc_r(0x33, 3, 0x01, rd, rs1, rs2)
#define DIV(rd, rs1, rs2) enc_r(0x33, 4, 0x01, rd, rs1, rs2)
#define DIVU(rd, rs1, rs2) enc_r(0x33, 5, 0x01, rd, rs1, rs2)
#define REM(rd, rs1, rs2) enc_r(0x33, 6, 0x01, rd, rs1, rs2)
#define REMU(rd, rs1, rs2) enc_r(0x33, 7, 0x01, rd, rs1, rs2)
#define MULW(rd, rs1, rs2) enc_r(0x3b, 0, 0x01, rd, rs1, rs2)
#define DIVW(rd, rs1, rs2) enc_r(0x3b, 4, 0x01, rd, rs1, rs2)
#define DIVUW(rd, rs1, rs2) enc_r(0x3b, 5, 0x01, rd, rs1, rs2)
#define REMW(rd, rs1, rs2) enc_r(0x3b, 6, 0x01, rd, rs1, rs2)
#define REMUW(rd, rs1, rs2) enc_r(0x3b, 7, 0x01, rd, rs1, rs2)

/* A: funct5 values; width 2 = .W, 3 = .D; aq/rl left clear. */
enum {
        AMO_ADD = 0x00,
        AMO_SWAP = 0x01,
        AMO_LR = 0x02,
        AMO_SC = 0x03,
        AMO_XOR = 0x04,
        AMO_OR = 0x08,
        AMO_AND = 0x0c,
        AMO_MIN = 0x10,
        AMO_MAX = 0x14,
        AMO_MINU = 0x18,
        AMO_MAXU = 0x1c,
};
#define AMO(f5, width, rd, rs1, rs2) enc_r(0x2f, width, (f5) << 2, rd, rs1, rs2)
#define LR_W(rd, rs1) AMO(AMO_LR, 2, rd, rs1, 0)
#define LR_D(rd, rs1) AMO(AMO_LR, 3, rd, rs1, 0)
#define SC_W(rd, rs1, rs2) AMO(AMO_SC, 2, rd, rs1, rs2)
#define SC_D(rd, rs1, rs2) AMO(AMO_SC, 3, rd, rs1, rs2)

/* Zicsr and privileged */
#define CSRRW(rd, csr, rs1) enc_i(0x73, 1, rd, rs1, (int32_t) (csr))
#define CSRRS(rd, csr, rs1) enc_i(0x73, 2, rd, rs1, (int32_t) (csr))
#define CSRRC(rd, csr, rs1) enc_i(0x73, 3, rd, rs1, (int32_t) (csr))
#define CSRRWI(rd, csr, uimm) enc_i(0x73, 5, rd, uimm, (int32_t) (csr))
#define CSRRSI(rd, csr, uimm) enc_i(0x73, 6, rd, uimm, (int32_t) (csr))
#define CSRRCI(rd, csr, uimm) enc_i(0x73, 7, rd, uimm, (int32_t) (csr))
#define SRET() 0x10200073u
#define MRET() 0x30200073u
#define WFI() 0x10500073u
#define SFENCE_VMA(rs1, rs2) enc_r(0x73, 0, 0x09, 0, rs1, rs2)

/* F/D loads, stores and one fused multiply-add (fmt 1 = D, rm 7 = dynamic) */
#define FLW(rd, rs1, imm) enc_i(0x07, 2, rd, rs1, imm)
#define FLD(rd, rs1, imm) enc_i(0x07, 3, rd, rs1, imm)
#define FSW(rs2, rs1, imm) enc_s(0x27, 2, rs1, rs2, imm)
#define FSD(rs2, rs1, imm) enc_s(0x27, 3, rs1, rs2, imm)
#define FMADD_D(rd, rs1, rs2, rs3) enc_r4(0x43, 7, 1, rd, rs1, rs2, rs3)

/* ---- compressed encoders (RISC-V unprivileged ISA, "C" extension tables) ---- */

/* x8..x15 as a 3-bit register field. */
#define CREG(r) ((uint32_t) ((r) - 8) & 7)

/* Quadrant 0 */
#define C_ADDI4SPN(rdp, imm) ((uint16_t) (0u << 13 | IMM(imm, 5, 4) << 11 | IMM(imm, 9, 6) << 7 | IMM(imm, 2, 2) << 6 | \
                                          IMM(imm, 3, 3) << 5 | CREG(rdp) << 2 | 0))
#define C_CL_D(f3, rdp, rs1p, imm) ((uint16_t) ((f3) << 13 | IMM(imm, 5, 3) << 10 | CREG(rs1p) << 7 | \
                                                IMM(imm, 7, 6) << 5 | CREG(rdp) << 2 | 0))
#define C_CL_W(f3, rdp, rs1p, imm) ((uint16_t) ((f3) << 13 | IMM(imm, 5, 3) << 10 | CREG(rs1p) << 7 | \
                                                IMM(imm, 2, 2) << 6 | IMM(imm, 6, 6) << 5 | CREG(rdp) << 2 | 0))
#define C_FLD(rdp, rs1p, imm) C_CL_D(1u, rdp, rs1p, imm)
#define C_LW(rdp, rs1p, imm) C_CL_W(2u, rdp, rs1p, imm)
#define C_LD(rdp, rs1p, imm) C_CL_D(3u, rdp, rs1p, imm)
#define C_FSD(rs2p, rs1p, imm) C_CL_D(5u, rs2p, rs1p, imm)
#define C_SW(rs2p, rs1p, imm) C_CL_W(6u, rs2p, rs1p, imm)
#define C_SD(rs2p, rs1p, imm) C_CL_D(7u, rs2p, rs1p, imm)

/* Quadrant 1 */
#define C_CI(f3, rd, imm) ((uint16_t) ((f3) << 13 | IMM(imm, 5, 5) << 12 | (uint32_t) (rd) << 7 | IMM(imm, 4, 0) << 2 | 1))
#define C_NOP() C_CI(0u, 0, 0)
#define C_ADDI(rd, imm) C_CI(0u, rd, imm)
#define C_ADDIW(rd, imm) C_CI(1u, rd, imm)
#define C_LI(rd, imm) C_CI(2u, rd, imm)
#define C_ADDI16SP(imm) ((uint16_t) (3u << 13 | IMM(imm, 9, 9) << 12 | 2u << 7 | IMM(imm, 4, 4) << 6 | IMM(imm, 6, 6) << 5 | \
                                     IMM(imm, 8, 7) << 3 | IMM(imm, 5, 5) << 2 | 1))
/* 'imm' is the full value (bits 17:12 are encoded), as added to the register by LUI. */
#define C_LUI(rd, imm) ((uint16_t) (3u << 13 | IMM(imm, 17, 17) << 12 | (uint32_t) (rd) << 7 | IMM(imm, 16, 12) << 2 | 1))
#define C_CB_ALU(f2, rdp, imm) ((uint16_t) (4u << 13 | IMM(imm, 5, 5) << 12 | (uint32_t) (f2) << 10 | CREG(rdp) << 7 | \
                                            IMM(imm, 4, 0) << 2 | 1))
#define C_SRLI(rdp, sh) C_CB_ALU(0u, rdp, sh)
#define C_SRAI(rdp, sh) C_CB_ALU(1u, rdp, sh)
#define C_ANDI(rdp, imm) C_CB_ALU(2u, rdp, imm)
#define C_CA(b12, f2, rdp, rs2p) ((uint16_t) (4u << 13 | (uint32_t) (b12) << 12 | 3u << 10 | CREG(rdp) << 7 | \
                                              (uint32_t) (f2) << 5 | CREG(rs2p) << 2 | 1))
#define C_SUB(rdp, rs2p) C_CA(0, 0, rdp, rs2p)
#define C_XOR(rdp, rs2p) C_CA(0, 1, rdp, rs2p)
#define C_OR(rdp, rs2p) C_CA(0, 2, rdp, rs2p)
#define C_AND(rdp, rs2p) C_CA(0, 3, rdp, rs2p)
#define C_SUBW(rdp, rs2p) C_CA(1, 0, rdp, rs2p)
#define C_ADDW(rdp, rs2p) C_CA(1, 1, rdp, rs2p)
#define C_J(off) ((uint16_t) (5u << 13 | IMM(off, 11, 11) << 12 | IMM(off, 4, 4) << 11 | IMM(off, 9, 8) << 9 | \
                              IMM(off, 10, 10) << 8 | IMM(off, 6, 6) << 7 | IMM(off, 7, 7) << 6 | IMM(off, 3, 1) << 3 | \
                              IMM(off, 5, 5) << 2 | 1))
#define C_CB_BRANCH(f3, rs1p, off) ((uint16_t) ((f3) << 13 | IMM(off, 8, 8) << 12 | IMM(off, 4, 3) << 10 | CREG(rs1p) << 7 | \
                                                IMM(off, 7, 6) << 5 | IMM(off, 2, 1) << 3 | IMM(off, 5, 5) << 2 | 1))
#define C_BEQZ(rs1p, off) C_CB_BRANCH(6u, rs1p, off)
#define C_BNEZ(rs1p, off) C_CB_BRANCH(7u, rs1p, off)

/* Quadrant 2 */
#define C_SLLI(rd, sh) ((uint16_t) (0u << 13 | IMM(sh, 5, 5) << 12 | (uint32_t) (rd) << 7 | IMM(sh, 4, 0) << 2 | 2))
#define C_CI_SP_D(f3, rd, imm) ((uint16_t) ((f3) << 13 | IMM(imm, 5, 5) << 12 | (uint32_t) (rd) << 7 | IMM(imm, 4, 3) << 5 | \
                                            IMM(imm, 8, 6) << 2 | 2))
#define C_FLDSP(rd, imm) C_CI_SP_D(1u, rd, imm)
#define C_LDSP(rd, imm) C_CI_SP_D(3u, rd, imm)
#define C_LWSP(rd, imm) ((uint16_t) (2u << 13 | IMM(imm, 5, 5) << 12 | (uint32_t) (rd) << 7 | IMM(imm, 4, 2) << 4 | \
                                     IMM(imm, 7, 6) << 2 | 2))
#define C_CR(b12, rd, rs2) ((uint16_t) (4u << 13 | (uint32_t) (b12) << 12 | (uint32_t) (rd) << 7 | (uint32_t) (rs2) << 2 | 2))
#define C_JR(rs1) C_CR(0, rs1, 0)
#define C_MV(rd, rs2) C_CR(0, rd, rs2)
#define C_EBREAK() C_CR(1, 0, 0)
#define C_JALR(rs1) C_CR(1, rs1, 0)
#define C_ADD(rd, rs2) C_CR(1, rd, rs2)
#define C_CSS_D(f3, rs2, imm) ((uint16_t) ((f3) << 13 | IMM(imm, 5, 3) << 10 | IMM(imm, 8, 6) << 7 | (uint32_t) (rs2) << 2 | 2))
#define C_FSDSP(rs2, imm) C_CSS_D(5u, rs2, imm)
#define C_SDSP(rs2, imm) C_CSS_D(7u, rs2, imm)
#define C_SWSP(rs2, imm) ((uint16_t) (6u << 13 | IMM(imm, 5, 2) << 9 | IMM(imm, 7, 6) << 7 | (uint32_t) (rs2) << 2 | 2))
