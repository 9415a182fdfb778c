/* SPDX-License-Identifier: MIT */
/*
 * RV64I, M and A: every instruction class with the edge cases the
 * unprivileged ISA manual spells out (W-op sign extension, shift amount
 * masks, division by zero and overflow, LR/SC reservations, AMO widths),
 * plus misaligned accesses (performed by this implementation) and the
 * reserved encodings that must raise illegal-instruction.
 *
 * Each instruction runs alone at CODE_BASE in M-mode with x6 and x7 as
 * sources and x5 as destination.
 */

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "macro.h"
#include "tap.h"

#define RD 5
#define RS1 6
#define RS2 7

#define POISON 0xdeadbeefcafef00dULL

static TestHart *t;
static unsigned stray_traps;

static void run_one_at(uint64_t pc, uint32_t insn) {
        Hart *h = &t->hart;

        th_org(t, pc);
        th_emit(t, insn);
        h->pc = pc;
        th_clear_trap(t);
        th_run(t, 1);
}

/* Runs 'insn' with x6 = a, x7 = b; returns x5. Counts an unexpected trap. */
static uint64_t exec(uint32_t insn, uint64_t a, uint64_t b) {
        Hart *h = &t->hart;

        h->x[RD] = POISON;
        h->x[RS1] = a;
        h->x[RS2] = b;
        run_one_at(CODE_BASE, insn);
        if (h->pc != CODE_BASE + 4) {
                stray_traps++;
                printf("# insn %08x: pc 0x%llx, mcause 0x%llx\n", insn, (unsigned long long) h->pc,
                       (unsigned long long) h->mcause);
        }
        return h->x[RD];
}

/* Runs 'insn', expecting a trap to M; returns mcause (NO_TRAP if none). */
static uint64_t exec_trap(uint32_t insn, uint64_t a, uint64_t b) {
        Hart *h = &t->hart;

        h->x[RD] = POISON;
        h->x[RS1] = a;
        h->x[RS2] = b;
        run_one_at(CODE_BASE, insn);
        return h->pc == MTRAP_BASE ? h->mcause : NO_TRAP;
}

typedef struct AluCase {
        const char *name;
        uint32_t insn;
        uint64_t a, b, want;
} AluCase;

static void run_alu_cases(const AluCase *cases, size_t n) {
        for (size_t i = 0; i < n; i++)
                CHECK_EQ_U64(exec(cases[i].insn, cases[i].a, cases[i].b), cases[i].want, "%s", cases[i].name);
}

#define I64(v) ((uint64_t) (int64_t) (v))

static void test_rv64i_alu(void) {
        const AluCase cases[] = {
                { "ADD 1+2", ADD(RD, RS1, RS2), 1, 2, 3 },
                { "ADD wraps at 64 bits", ADD(RD, RS1, RS2), UINT64_MAX, 1, 0 },
                { "ADD INT64_MAX+1", ADD(RD, RS1, RS2), INT64_MAX, 1, 1ULL << 63 },
                { "SUB 0-1", SUB(RD, RS1, RS2), 0, 1, UINT64_MAX },
                { "SUB INT64_MIN-1", SUB(RD, RS1, RS2), 1ULL << 63, 1, INT64_MAX },
                { "SLL by 63", SLL(RD, RS1, RS2), 1, 63, 1ULL << 63 },
                { "SLL by 64 uses rs2[5:0] (0)", SLL(RD, RS1, RS2), 1, 64, 1 },
                { "SLL by 65 uses rs2[5:0] (1)", SLL(RD, RS1, RS2), 1, 65, 2 },
                { "SLL drops the top bit", SLL(RD, RS1, RS2), 0x8000000000000001ULL, 1, 2 },
                { "SLT -1 < 1", SLT(RD, RS1, RS2), I64(-1), 1, 1 },
                { "SLT 1 < -1 false", SLT(RD, RS1, RS2), 1, I64(-1), 0 },
                { "SLT INT64_MIN < INT64_MAX", SLT(RD, RS1, RS2), 1ULL << 63, INT64_MAX, 1 },
                { "SLT equal", SLT(RD, RS1, RS2), 5, 5, 0 },
                { "SLTU -1 < 1 false (unsigned)", SLTU(RD, RS1, RS2), I64(-1), 1, 0 },
                { "SLTU 1 < -1 (unsigned)", SLTU(RD, RS1, RS2), 1, I64(-1), 1 },
                { "SLTU equal", SLTU(RD, RS1, RS2), 7, 7, 0 },
                { "XOR", XOR(RD, RS1, RS2), 0xff00ff00ff00ff00ULL, 0x0ff00ff00ff00ff0ULL, 0xf0f0f0f0f0f0f0f0ULL },
                { "SRL by 63", SRL(RD, RS1, RS2), 1ULL << 63, 63, 1 },
                { "SRL by 64 uses rs2[5:0] (0)", SRL(RD, RS1, RS2), 1ULL << 63, 64, 1ULL << 63 },
                { "SRL is logical", SRL(RD, RS1, RS2), UINT64_MAX, 4, 0x0fffffffffffffffULL },
                { "SRA by 63 of negative", SRA(RD, RS1, RS2), 1ULL << 63, 63, UINT64_MAX },
                { "SRA by 64 uses rs2[5:0] (0)", SRA(RD, RS1, RS2), 1ULL << 63, 64, 1ULL << 63 },
                { "SRA -16 >> 2", SRA(RD, RS1, RS2), I64(-16), 2, I64(-4) },
                { "SRA of positive", SRA(RD, RS1, RS2), 0x4000000000000000ULL, 62, 1 },
                { "OR", OR(RD, RS1, RS2), 0xf0, 0x0f, 0xff },
                { "AND", AND(RD, RS1, RS2), 0xff00, 0x0ff0, 0x0f00 },

                { "ADDI -1", ADDI(RD, RS1, -1), 1, 0, 0 },
                { "ADDI max imm 2047", ADDI(RD, RS1, 2047), 0, 0, 2047 },
                { "ADDI min imm -2048 sign-extends", ADDI(RD, RS1, -2048), 0, 0, I64(-2048) },
                { "ADDI wraps", ADDI(RD, RS1, 1), UINT64_MAX, 0, 0 },
                { "SLTI -2 < -1", SLTI(RD, RS1, -1), I64(-2), 0, 1 },
                { "SLTI -1 < -1 false", SLTI(RD, RS1, -1), I64(-1), 0, 0 },
                { "SLTI INT64_MIN < 0", SLTI(RD, RS1, 0), 1ULL << 63, 0, 1 },
                { "SLTIU imm -1 compares with 2^64-1", SLTIU(RD, RS1, -1), 5, 0, 1 },
                { "SLTIU 0 < 1 (seqz)", SLTIU(RD, RS1, 1), 0, 0, 1 },
                { "SLTIU 1 < 1 false", SLTIU(RD, RS1, 1), 1, 0, 0 },
                { "SLTIU max < -1 false", SLTIU(RD, RS1, -1), UINT64_MAX, 0, 0 },
                { "XORI -1 (not)", XORI(RD, RS1, -1), 0x1234, 0, ~0x1234ULL },
                { "XORI", XORI(RD, RS1, 0x0f), 0xff, 0, 0xf0 },
                { "ORI sign-extends imm", ORI(RD, RS1, -2048), 0, 0, I64(-2048) },
                { "ANDI -16", ANDI(RD, RS1, -16), UINT64_MAX, 0, 0xfffffffffffffff0ULL },
                { "ANDI 0x7ff", ANDI(RD, RS1, 0x7ff), 0x12345678, 0, 0x678 },
                { "SLLI 63", SLLI(RD, RS1, 63), 1, 0, 1ULL << 63 },
                { "SLLI 62 of 3", SLLI(RD, RS1, 62), 3, 0, 0xc000000000000000ULL },
                { "SLLI 0", SLLI(RD, RS1, 0), 0x123456789abcdef0ULL, 0, 0x123456789abcdef0ULL },
                { "SRLI 63", SRLI(RD, RS1, 63), 1ULL << 63, 0, 1 },
                { "SRLI 1 logical", SRLI(RD, RS1, 1), UINT64_MAX, 0, INT64_MAX },
                { "SRAI 63 of negative", SRAI(RD, RS1, 63), 1ULL << 63, 0, UINT64_MAX },
                { "SRAI 1 of negative", SRAI(RD, RS1, 1), 1ULL << 63, 0, 0xc000000000000000ULL },
                { "SRAI 62 of positive", SRAI(RD, RS1, 62), INT64_MAX, 0, 1 },
        };

        run_alu_cases(cases, ELEMENTSOF(cases));
}

static void test_rv64i_word(void) {
        const AluCase cases[] = {
                { "ADDW overflow sign-extends", ADDW(RD, RS1, RS2), 0x7fffffff, 1, 0xffffffff80000000ULL },
                { "ADDW 0xffffffff+1 = 0", ADDW(RD, RS1, RS2), 0xffffffff, 1, 0 },
                { "ADDW ignores upper bits", ADDW(RD, RS1, RS2), 0x1234567800000005ULL, 0xabcdef0000000003ULL, 8 },
                { "ADDW 0x80000000+0x80000000", ADDW(RD, RS1, RS2), 0x80000000, 0x80000000, 0 },
                { "SUBW 0-1", SUBW(RD, RS1, RS2), 0, 1, UINT64_MAX },
                { "SUBW INT32_MIN-1 positive", SUBW(RD, RS1, RS2), 0x80000000, 1, 0x7fffffff },
                { "SUBW 0-INT32_MIN", SUBW(RD, RS1, RS2), 0, 0x80000000, 0xffffffff80000000ULL },
                { "SLLW by 31 sign-extends", SLLW(RD, RS1, RS2), 1, 31, 0xffffffff80000000ULL },
                { "SLLW by 32 uses rs2[4:0] (0)", SLLW(RD, RS1, RS2), 1, 32, 1 },
                { "SLLW by 33 uses rs2[4:0] (1)", SLLW(RD, RS1, RS2), 1, 33, 2 },
                { "SLLW ignores upper source bits", SLLW(RD, RS1, RS2), 0xffffffff00000001ULL, 4, 0x10 },
                { "SRLW by 0 sign-extends the 32-bit result", SRLW(RD, RS1, RS2), 0x80000000, 0, 0xffffffff80000000ULL },
                { "SRLW shifts in zeros at bit 31", SRLW(RD, RS1, RS2), 0xffffffff80000000ULL, 1, 0x40000000 },
                { "SRLW by 31", SRLW(RD, RS1, RS2), 0x80000000, 31, 1 },
                { "SRLW by 32 uses rs2[4:0] (0)", SRLW(RD, RS1, RS2), 0xffffffff, 32, UINT64_MAX },
                { "SRLW of upper-only value", SRLW(RD, RS1, RS2), 0x100000000ULL, 0, 0 },
                { "SRAW by 4", SRAW(RD, RS1, RS2), 0x80000000, 4, 0xfffffffff8000000ULL },
                { "SRAW positive by 31", SRAW(RD, RS1, RS2), 0x7fffffff, 31, 0 },
                { "SRAW negative by 31", SRAW(RD, RS1, RS2), 0x80000000, 31, UINT64_MAX },
                { "SRAW by 32 uses rs2[4:0] (0)", SRAW(RD, RS1, RS2), 0x80000000, 32, 0xffffffff80000000ULL },
                { "ADDIW 0 (sext.w)", ADDIW(RD, RS1, 0), 0xffffffff, 0, UINT64_MAX },
                { "ADDIW overflow", ADDIW(RD, RS1, 1), 0x7fffffff, 0, 0xffffffff80000000ULL },
                { "ADDIW ignores upper bits", ADDIW(RD, RS1, -1), 0x100000000ULL, 0, UINT64_MAX },
                { "ADDIW INT32_MIN-1", ADDIW(RD, RS1, -1), 0x80000000, 0, 0x7fffffff },
                { "SLLIW 31 sign-extends", SLLIW(RD, RS1, 31), 1, 0, 0xffffffff80000000ULL },
                { "SLLIW 31 of 3", SLLIW(RD, RS1, 31), 3, 0, 0xffffffff80000000ULL },
                { "SLLIW 0 sign-extends", SLLIW(RD, RS1, 0), 0x00000000fffffffeULL, 0, I64(-2) },
                { "SRLIW 31", SRLIW(RD, RS1, 31), 0x80000000, 0, 1 },
                { "SRLIW 0 sign-extends", SRLIW(RD, RS1, 0), 0x80000000, 0, 0xffffffff80000000ULL },
                { "SRLIW 4 ignores upper bits", SRLIW(RD, RS1, 4), 0xfffffffff0000000ULL, 0, 0x0f000000 },
                { "SRAIW 31", SRAIW(RD, RS1, 31), 0x80000000, 0, UINT64_MAX },
                { "SRAIW 30 of positive", SRAIW(RD, RS1, 30), 0x40000000, 0, 1 },
                { "SRAIW 1 ignores upper bits", SRAIW(RD, RS1, 1), 0x1234000080000000ULL, 0, 0xffffffffc0000000ULL },
        };

        run_alu_cases(cases, ELEMENTSOF(cases));
}

static void test_m(void) {
        const AluCase cases[] = {
                { "MUL 3*-2", MUL(RD, RS1, RS2), 3, I64(-2), I64(-6) },
                { "MUL keeps low 64 bits", MUL(RD, RS1, RS2), 1ULL << 32, 1ULL << 32, 0 },
                { "MUL INT64_MIN*-1", MUL(RD, RS1, RS2), 1ULL << 63, I64(-1), 1ULL << 63 },
                { "MULH -1*-1", MULH(RD, RS1, RS2), I64(-1), I64(-1), 0 },
                { "MULH INT64_MIN^2", MULH(RD, RS1, RS2), 1ULL << 63, 1ULL << 63, 0x4000000000000000ULL },
                { "MULH -2*3", MULH(RD, RS1, RS2), I64(-2), 3, UINT64_MAX },
                { "MULH INT64_MAX^2", MULH(RD, RS1, RS2), INT64_MAX, INT64_MAX, 0x3fffffffffffffffULL },
                { "MULH INT64_MIN*-1", MULH(RD, RS1, RS2), 1ULL << 63, I64(-1), 0 },
                { "MULHU max*max", MULHU(RD, RS1, RS2), UINT64_MAX, UINT64_MAX, 0xfffffffffffffffeULL },
                { "MULHU 2^63*2", MULHU(RD, RS1, RS2), 1ULL << 63, 2, 1 },
                { "MULHU (2^64-2)*3", MULHU(RD, RS1, RS2), I64(-2), 3, 2 },
                { "MULHSU -1*(2^64-1)", MULHSU(RD, RS1, RS2), I64(-1), UINT64_MAX, UINT64_MAX },
                { "MULHSU 2*(2^64-1)", MULHSU(RD, RS1, RS2), 2, UINT64_MAX, 1 },
                { "MULHSU 1*(2^64-1): rs2 unsigned", MULHSU(RD, RS1, RS2), 1, UINT64_MAX, 0 },
                { "MULHSU -2*3", MULHSU(RD, RS1, RS2), I64(-2), 3, UINT64_MAX },
                { "MULHSU INT64_MIN*(2^64-1)", MULHSU(RD, RS1, RS2), 1ULL << 63, UINT64_MAX, 1ULL << 63 },

                { "DIV by zero = -1", DIV(RD, RS1, RS2), 7, 0, UINT64_MAX },
                { "DIV negative by zero = -1", DIV(RD, RS1, RS2), I64(-7), 0, UINT64_MAX },
                { "DIV overflow INT64_MIN/-1", DIV(RD, RS1, RS2), 1ULL << 63, I64(-1), 1ULL << 63 },
                { "DIV truncates toward zero (-7/2)", DIV(RD, RS1, RS2), I64(-7), 2, I64(-3) },
                { "DIV 7/-2", DIV(RD, RS1, RS2), 7, I64(-2), I64(-3) },
                { "DIVU by zero = 2^64-1", DIVU(RD, RS1, RS2), 7, 0, UINT64_MAX },
                { "DIVU unsigned", DIVU(RD, RS1, RS2), I64(-7), 2, 0x7ffffffffffffffcULL },
                { "DIVU max/max", DIVU(RD, RS1, RS2), UINT64_MAX, UINT64_MAX, 1 },
                { "REM by zero = dividend", REM(RD, RS1, RS2), 7, 0, 7 },
                { "REM negative by zero = dividend", REM(RD, RS1, RS2), I64(-7), 0, I64(-7) },
                { "REM overflow INT64_MIN%-1 = 0", REM(RD, RS1, RS2), 1ULL << 63, I64(-1), 0 },
                { "REM sign follows dividend (-7%2)", REM(RD, RS1, RS2), I64(-7), 2, I64(-1) },
                { "REM 7%-2", REM(RD, RS1, RS2), 7, I64(-2), 1 },
                { "REMU by zero = dividend", REMU(RD, RS1, RS2), UINT64_MAX, 0, UINT64_MAX },
                { "REMU unsigned", REMU(RD, RS1, RS2), I64(-7), 2, 1 },

                { "MULW keeps low 32 bits", MULW(RD, RS1, RS2), 0x10000, 0x10000, 0 },
                { "MULW sign-extends", MULW(RD, RS1, RS2), 0x8000, 0x10000, 0xffffffff80000000ULL },
                { "MULW ignores upper bits", MULW(RD, RS1, RS2), 0xffffffff00000003ULL, 0x500000002ULL, 6 },
                { "MULW -1*-1", MULW(RD, RS1, RS2), UINT64_MAX, UINT64_MAX, 1 },
                { "DIVW by zero = -1", DIVW(RD, RS1, RS2), 7, 0, UINT64_MAX },
                { "DIVW overflow INT32_MIN/-1", DIVW(RD, RS1, RS2), 0x80000000, UINT64_MAX, 0xffffffff80000000ULL },
                { "DIVW -7/2", DIVW(RD, RS1, RS2), I64(-7), 2, I64(-3) },
                { "DIVW uses low 32 bits", DIVW(RD, RS1, RS2), 0x100000007ULL, 0x100000002ULL, 3 },
                { "DIVW 32-bit negative dividend", DIVW(RD, RS1, RS2), 0xfffffff9, 2, I64(-3) },
                { "DIVUW by zero = -1", DIVUW(RD, RS1, RS2), 7, 0, UINT64_MAX },
                { "DIVUW sign-extends its result", DIVUW(RD, RS1, RS2), 0x80000000, 1, 0xffffffff80000000ULL },
                { "DIVUW unsigned", DIVUW(RD, RS1, RS2), 0xfffffff9, 2, 0x7ffffffc },
                { "DIVUW uses low 32 bits", DIVUW(RD, RS1, RS2), 0xffffffff00000010ULL, 0xffffffff00000004ULL, 4 },
                { "REMW by zero = sext(dividend)", REMW(RD, RS1, RS2), 0x180000000ULL, 0, 0xffffffff80000000ULL },
                { "REMW by zero small", REMW(RD, RS1, RS2), 7, 0, 7 },
                { "REMW overflow = 0", REMW(RD, RS1, RS2), 0x80000000, UINT64_MAX, 0 },
                { "REMW -7%2", REMW(RD, RS1, RS2), 0xfffffff9, 2, I64(-1) },
                { "REMUW by zero = sext(dividend)", REMUW(RD, RS1, RS2), 0x180000000ULL, 0, 0xffffffff80000000ULL },
                { "REMUW", REMUW(RD, RS1, RS2), 0xfffffff5, 0x10, 5 },
                { "REMUW sign-extends its result", REMUW(RD, RS1, RS2), 0xfffffffe, 0xffffffff, I64(-2) },
                { "REMUW unsigned", REMUW(RD, RS1, RS2), 0x80000005, 0x80000000, 5 },
        };

        run_alu_cases(cases, ELEMENTSOF(cases));
}

static void test_lui_auipc(void) {
        CHECK_EQ_U64(exec(LUI(RD, 0x80000), 0, 0), 0xffffffff80000000ULL, "LUI sign-extends bit 31");
        CHECK_EQ_U64(exec(LUI(RD, 0x7ffff), 0, 0), 0x7ffff000, "LUI positive");
        CHECK_EQ_U64(exec(LUI(RD, 0xfffff), 0, 0), I64(-4096), "LUI -4096");
        CHECK_EQ_U64(exec(AUIPC(RD, 0), 0, 0), CODE_BASE, "AUIPC 0 = pc");
        CHECK_EQ_U64(exec(AUIPC(RD, 0x80000), 0, 0), CODE_BASE + 0xffffffff80000000ULL,
                     "AUIPC sign-extends the immediate");
        CHECK_EQ_U64(exec(AUIPC(RD, 0xfffff), 0, 0), CODE_BASE - 4096, "AUIPC -4096");
        CHECK_EQ_U64(exec(AUIPC(RD, 0x7ffff), 0, 0), CODE_BASE + 0x7ffff000, "AUIPC max positive");
}

#define LD_AT (DATA_BASE + 0x100)

static void test_loads(void) {
        th_store(t, LD_AT, 8, 0xf0e1d2c3b4a59687ULL);
        th_store(t, LD_AT + 8, 8, 0x0102030405060708ULL);

        CHECK_EQ_U64(exec(LB(RD, RS1, 0), LD_AT, 0), 0xffffffffffffff87ULL, "LB sign-extends");
        CHECK_EQ_U64(exec(LB(RD, RS1, 1), LD_AT, 0), 0xffffffffffffff96ULL, "LB offset 1");
        CHECK_EQ_U64(exec(LB(RD, RS1, 8), LD_AT, 0), 0x08, "LB positive");
        CHECK_EQ_U64(exec(LBU(RD, RS1, 0), LD_AT, 0), 0x87, "LBU zero-extends");
        CHECK_EQ_U64(exec(LH(RD, RS1, 0), LD_AT, 0), 0xffffffffffff9687ULL, "LH sign-extends");
        CHECK_EQ_U64(exec(LH(RD, RS1, 8), LD_AT, 0), 0x0708, "LH positive");
        CHECK_EQ_U64(exec(LHU(RD, RS1, 0), LD_AT, 0), 0x9687, "LHU zero-extends");
        CHECK_EQ_U64(exec(LW(RD, RS1, 0), LD_AT, 0), 0xffffffffb4a59687ULL, "LW sign-extends");
        CHECK_EQ_U64(exec(LW(RD, RS1, 4), LD_AT, 0), 0xfffffffff0e1d2c3ULL, "LW offset 4");
        CHECK_EQ_U64(exec(LW(RD, RS1, 8), LD_AT, 0), 0x05060708, "LW positive");
        CHECK_EQ_U64(exec(LWU(RD, RS1, 0), LD_AT, 0), 0xb4a59687, "LWU zero-extends");
        CHECK_EQ_U64(exec(LD(RD, RS1, 0), LD_AT, 0), 0xf0e1d2c3b4a59687ULL, "LD");
        CHECK_EQ_U64(exec(LD(RD, RS1, 8), LD_AT, 0), 0x0102030405060708ULL, "LD offset 8");
        CHECK_EQ_U64(exec(LD(RD, RS1, -2048), LD_AT + 2048, 0), 0xf0e1d2c3b4a59687ULL, "LD offset -2048");
        CHECK_EQ_U64(exec(LD(RD, RS1, 2047), LD_AT - 2047, 0), 0xf0e1d2c3b4a59687ULL, "LD offset 2047");
        CHECK_EQ_U64(exec(LBU(RD, RS1, -1), LD_AT + 1, 0), 0x87, "LBU offset -1");
}

#define ST_AT (DATA_BASE + 0x200)
#define FILL 0x1111111111111111ULL

static void store_case(uint32_t insn, uint64_t base, uint64_t value, uint64_t want, const char *name) {
        th_store(t, ST_AT - 8, 8, FILL);
        th_store(t, ST_AT, 8, FILL);
        th_store(t, ST_AT + 8, 8, FILL);
        exec(insn, base, value);
        CHECK(th_load(t, ST_AT, 8) == want && th_load(t, ST_AT - 8, 8) == FILL && th_load(t, ST_AT + 8, 8) == FILL,
              "%s (got 0x%llx)", name, (unsigned long long) th_load(t, ST_AT, 8));
}

static void test_stores(void) {
        store_case(SB(RS2, RS1, 1), ST_AT, 0xfedcba98765432abULL, 0x111111111111ab11ULL, "SB writes one byte");
        store_case(SH(RS2, RS1, 2), ST_AT, 0xfedcba987654abcdULL, 0x11111111abcd1111ULL, "SH writes two bytes");
        store_case(SW(RS2, RS1, 4), ST_AT, 0xfedcba9812345678ULL, 0x1234567811111111ULL, "SW writes four bytes");
        store_case(SD(RS2, RS1, 0), ST_AT, 0xfedcba9876543210ULL, 0xfedcba9876543210ULL, "SD writes eight bytes");
        store_case(SB(RS2, RS1, -8), ST_AT + 8, 0x22, 0x1111111111111122ULL, "SB offset -8");
        store_case(SD(RS2, RS1, -2048), ST_AT + 2048, 0x33, 0x33, "SD offset -2048");
        store_case(SW(RS2, RS1, 2047), ST_AT - 2047, 0x44, 0x1111111100000044ULL, "SW offset 2047");
}

static void test_branches(void) {
        static const struct {
                const char *name;
                unsigned f3;
                int64_t a, b;
                bool taken;
        } cases[] = {
                { "BEQ equal", 0, 5, 5, true },
                { "BEQ different", 0, 5, 6, false },
                { "BNE different", 1, 5, 6, true },
                { "BNE equal", 1, 5, 5, false },
                { "BLT -1 < 1", 4, -1, 1, true },
                { "BLT 1 < -1", 4, 1, -1, false },
                { "BLT equal", 4, 5, 5, false },
                { "BGE 1 >= -1", 5, 1, -1, true },
                { "BGE equal", 5, 5, 5, true },
                { "BGE -1 >= 1", 5, -1, 1, false },
                { "BLTU 1 < 2^64-1", 6, 1, -1, true },
                { "BLTU 2^64-1 < 1", 6, -1, 1, false },
                { "BLTU equal", 6, 5, 5, false },
                { "BGEU 2^64-1 >= 1", 7, -1, 1, true },
                { "BGEU equal", 7, 5, 5, true },
                { "BGEU 1 >= 2^64-1", 7, 1, -1, false },
        };
        static const int32_t offsets[] = { 0x40, -0x80, 4094, -4096 };
        const uint64_t at = CODE_BASE + 0x2000;
        Hart *h = &t->hart;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                for (size_t j = 0; j < ELEMENTSOF(offsets); j++) {
                        h->x[RS1] = (uint64_t) cases[i].a;
                        h->x[RS2] = (uint64_t) cases[i].b;
                        run_one_at(at, enc_b(cases[i].f3, RS1, RS2, offsets[j]));
                        CHECK_EQ_U64(h->pc, cases[i].taken ? at + (uint64_t) (int64_t) offsets[j] : at + 4,
                                     "%s, offset %d", cases[i].name, offsets[j]);
                }

        h->x[RS1] = 9;
        run_one_at(at, BEQ(RS1, RS1, -8));
        CHECK_EQ_U64(h->pc, at - 8, "BEQ rs1 == rs2 register is taken");
}

static void test_jumps(void) {
        const uint64_t at = CODE_BASE + 0x2000;
        Hart *h = &t->hart;

        h->x[RD] = POISON;
        run_one_at(at, JAL(RD, 0x40));
        CHECK(h->pc == at + 0x40 && h->x[RD] == at + 4, "JAL forward links pc+4");
        run_one_at(at, JAL(RD, -0x2000));
        CHECK(h->pc == CODE_BASE && h->x[RD] == at + 4, "JAL backward");
        run_one_at(at, JAL(RD, 0xffffe));
        CHECK_EQ_U64(h->pc, at + 0xffffe, "JAL max offset");
        run_one_at(at, JAL(RD, -0x100000));
        CHECK_EQ_U64(h->pc, at - 0x100000, "JAL min offset");
        run_one_at(at, JAL(0, 8));
        CHECK(h->pc == at + 8 && h->x[0] == 0, "JAL x0 (j) keeps x0 zero");

        h->x[RS1] = CODE_BASE + 0x301;
        run_one_at(at, JALR(RD, RS1, 0));
        CHECK(h->pc == CODE_BASE + 0x300 && h->x[RD] == at + 4, "JALR clears bit 0 of the target");
        h->x[RS1] = CODE_BASE + 0x300;
        run_one_at(at, JALR(RD, RS1, -1));
        CHECK_EQ_U64(h->pc, CODE_BASE + 0x2fe, "JALR negative offset, then bit 0 cleared");
        h->x[RS1] = CODE_BASE;
        run_one_at(at, JALR(RD, RS1, 2047));
        CHECK_EQ_U64(h->pc, CODE_BASE + 0x7fe, "JALR offset 2047");
        h->x[RS1] = CODE_BASE + 0x300;
        run_one_at(at, JALR(RS1, RS1, 8));
        CHECK(h->pc == CODE_BASE + 0x308 && h->x[RS1] == at + 4, "JALR rd == rs1 uses the old rs1");
        h->x[RS1] = CODE_BASE + 0x300;
        run_one_at(at, JALR(0, RS1, 4));
        CHECK(h->pc == CODE_BASE + 0x304 && h->x[0] == 0, "JALR x0 (jr)");
}

static void test_x0(void) {
        Hart *h = &t->hart;

        th_store(t, LD_AT, 8, 0xf0e1d2c3b4a59687ULL);
        h->x[RS1] = LD_AT;
        th_org(t, CODE_BASE);
        th_emit(t, ADDI(0, 0, 5));
        th_emit(t, ADD(8, 0, 0));
        th_emit(t, LUI(0, 0x12345));
        th_emit(t, OR(9, 0, 0));
        th_emit(t, LD(0, RS1, 0));
        th_emit(t, ADDI(10, 0, 0));
        th_emit(t, AMO(AMO_ADD, 3, 0, RS1, RS1));
        th_emit(t, ADDI(11, 0, 0));
        th_emit(t, CSRRS(0, CSR_MSCRATCH, 0));
        th_emit(t, SLTIU(12, 0, 1));
        h->pc = CODE_BASE;
        h->x[8] = h->x[9] = h->x[10] = h->x[11] = h->x[12] = POISON;
        th_clear_trap(t);
        th_run(t, 10);
        CHECK(h->pc == CODE_BASE + 40 && h->x[0] == 0, "x0 stays zero (pc 0x%llx)", (unsigned long long) h->pc);
        CHECK(h->x[8] == 0 && h->x[9] == 0 && h->x[10] == 0 && h->x[11] == 0 && h->x[12] == 1,
              "x0 reads as zero after ADDI, LUI, LD, AMO and CSR writes to it");
        CHECK_EQ_U64(th_load(t, LD_AT, 8), 0xf0e1d2c3b4a59687ULL + LD_AT, "AMOADD with rd=x0 still updates memory");
}

/* Runs 'insn' and checks that only the pc moved: every x and f register, fcsr, mstatus and all of RAM unchanged. */
static void check_noop(uint32_t insn, const char *name) {
        Hart *h = &t->hart;
        _cleanup_free_ uint8_t *ram = malloc(RAM_SIZE);
        uint64_t x[32], mstatus;
        FpuState fpu;

        assert(ram);
        for (unsigned i = 1; i < 32; i++)
                h->x[i] = 0x0123456789abcdefULL * i + i;
        th_org(t, CODE_BASE);
        th_emit(t, insn);
        h->pc = CODE_BASE;
        th_clear_trap(t);
        memcpy(x, h->x, sizeof(x));
        fpu = h->fpu;
        mstatus = th_csr(t, CSR_MSTATUS);
        memcpy(ram, th_ptr(t, RAM_BASE, RAM_SIZE), RAM_SIZE);

        th_run(t, 1);

        CHECK(h->pc == CODE_BASE + 4 && th_csr(t, CSR_MCAUSE) == NO_TRAP,
              "%s: pc advances by 4 without a trap (pc 0x%llx)", name, (unsigned long long) h->pc);
        CHECK(memcmp(x, h->x, sizeof(x)) == 0 && memcmp(&fpu, &h->fpu, sizeof(fpu)) == 0,
              "%s: x0-x31, f0-f31 and fcsr unchanged", name);
        CHECK(th_csr(t, CSR_MSTATUS) == mstatus, "%s: mstatus unchanged", name);
        CHECK(memcmp(ram, th_ptr(t, RAM_BASE, RAM_SIZE), RAM_SIZE) == 0, "%s: RAM unchanged", name);
}

static void test_fence(void) {
        check_noop(FENCE(), "FENCE");
        check_noop(FENCE_I(), "FENCE.I");
        check_noop(0x0100000f, "PAUSE"); /* FENCE w,0: a hint */
}

static void test_misaligned(void) {
        const uint64_t page_end = DATA_BASE + 0x2000; /* a page boundary inside RAM */
        const uint64_t at = DATA_BASE + 0x400;

        /* Loads: compare with what the bytes in RAM say (little-endian). */
        CHECK_EQ_U64(exec(LD(RD, RS1, 1), at, 0), th_load(t, at + 1, 8), "misaligned LD");
        CHECK_EQ_U64(exec(LW(RD, RS1, 3), at, 0), (uint64_t) (int64_t) (int32_t) th_load(t, at + 3, 4),
                     "misaligned LW sign-extends");
        CHECK_EQ_U64(exec(LWU(RD, RS1, 2), at, 0), th_load(t, at + 2, 4), "misaligned LWU");
        CHECK_EQ_U64(exec(LH(RD, RS1, 1), at, 0), (uint64_t) (int64_t) (int16_t) th_load(t, at + 1, 2),
                     "misaligned LH sign-extends");
        CHECK_EQ_U64(exec(LHU(RD, RS1, 1), at, 0), th_load(t, at + 1, 2), "misaligned LHU");

        /* Across a page boundary: bytes 11 22 33 44 | 55 66 77 88 around page_end. */
        th_store(t, page_end - 4, 8, 0x8877665544332211ULL);
        th_store(t, page_end + 4, 4, 0xeeddccbb);
        CHECK_EQ_U64(exec(LD(RD, RS1, -3), page_end, 0), 0xbb88776655443322ULL, "LD across a page boundary");
        CHECK_EQ_U64(exec(LW(RD, RS1, -2), page_end, 0), 0x66554433, "LW across a page boundary");
        CHECK_EQ_U64(exec(LW(RD, RS1, -1), page_end, 0), 0x77665544, "LW across a page boundary (3+1)");
        CHECK_EQ_U64(exec(LH(RD, RS1, -1), page_end, 0), 0x5544, "LH across a page boundary");
        CHECK_EQ_U64(exec(LWU(RD, RS1, -3), page_end, 0), 0x55443322, "LWU across a page boundary");
        th_store(t, page_end - 4, 8, 0x0080000000000000ULL); /* byte page_end+2 = 0x80 */
        CHECK_EQ_U64(exec(LW(RD, RS1, -1), page_end, 0), 0xffffffff80000000ULL,
                     "LW across a page boundary sign-extends");

        /* Stores. */
        th_store(t, at, 8, FILL);
        th_store(t, at + 8, 8, FILL);
        exec(SD(RS2, RS1, 5), at, 0xa1a2a3a4a5a6a7a8ULL);
        CHECK(th_load(t, at, 8) == 0xa6a7a81111111111ULL && th_load(t, at + 8, 8) == 0x111111a1a2a3a4a5ULL,
              "misaligned SD");
        exec(SH(RS2, RS1, 3), at, 0xbeef);
        CHECK_EQ_U64(th_load(t, at, 8), 0xa6a7a8beef111111ULL, "misaligned SH");
        th_store(t, page_end - 8, 8, FILL);
        th_store(t, page_end, 8, FILL);
        exec(SD(RS2, RS1, -3), page_end, 0x0102030405060708ULL);
        CHECK(th_load(t, page_end - 8, 8) == 0x0607081111111111ULL && th_load(t, page_end, 8) == 0x1111110102030405ULL,
              "SD across a page boundary");
        exec(SW(RS2, RS1, -1), page_end, 0xa1b2c3d4);
        CHECK(th_load(t, page_end - 8, 8) == 0xd407081111111111ULL && th_load(t, page_end, 8) == 0x1111110102a1b2c3ULL,
              "SW across a page boundary");
        exec(SH(RS2, RS1, -1), page_end, 0x5a6b);
        CHECK(th_load(t, page_end - 8, 8) == 0x6b07081111111111ULL && th_load(t, page_end, 8) == 0x1111110102a1b25aULL,
              "SH across a page boundary");
}

#define AMO_AT (DATA_BASE + 0x300)

/* Runs an AMO on AMO_AT (x6) with x7 = src; returns rd and the memory after. */
static uint64_t amo(uint32_t insn, uint64_t mem, uint64_t src, uint64_t *ret_mem) {
        uint64_t rd;

        th_store(t, AMO_AT, 8, mem);
        rd = exec(insn, AMO_AT, src);
        *ret_mem = th_load(t, AMO_AT, 8);
        return rd;
}

static void test_amo(void) {
        static const struct {
                const char *name;
                unsigned f5, width;
                uint64_t mem, src, want_rd, want_mem;
        } cases[] = {
                { "AMOSWAP.W", AMO_SWAP, 2, 0xaaaaaaaa80000000ULL, 0x1234567800000001ULL,
                  0xffffffff80000000ULL, 0xaaaaaaaa00000001ULL },
                { "AMOADD.W wraps in 32 bits", AMO_ADD, 2, 0xaaaaaaaa80000000ULL, 0x80000000,
                  0xffffffff80000000ULL, 0xaaaaaaaa00000000ULL },
                { "AMOADD.W", AMO_ADD, 2, 0xaaaaaaaa7fffffffULL, 1, 0x7fffffff, 0xaaaaaaaa80000000ULL },
                { "AMOXOR.W", AMO_XOR, 2, 0xaaaaaaaa0f0f0f0fULL, 0xffffffff, 0x0f0f0f0f, 0xaaaaaaaaf0f0f0f0ULL },
                { "AMOAND.W", AMO_AND, 2, 0xaaaaaaaaffff0000ULL, 0x0ff00ff0, 0xffffffffffff0000ULL,
                  0xaaaaaaaa0ff00000ULL },
                { "AMOOR.W", AMO_OR, 2, 0xaaaaaaaa00000001ULL, 0x80000000, 1, 0xaaaaaaaa80000001ULL },
                { "AMOMIN.W signed", AMO_MIN, 2, 0xaaaaaaaaffffffffULL, 1, UINT64_MAX, 0xaaaaaaaaffffffffULL },
                { "AMOMIN.W uses rs2[31:0] as signed", AMO_MIN, 2, 0xaaaaaaaa00000001ULL, 0xffffffff,
                  1, 0xaaaaaaaaffffffffULL },
                { "AMOMAX.W signed", AMO_MAX, 2, 0xaaaaaaaaffffffffULL, 1, UINT64_MAX, 0xaaaaaaaa00000001ULL },
                { "AMOMINU.W unsigned", AMO_MINU, 2, 0xaaaaaaaaffffffffULL, 1, UINT64_MAX, 0xaaaaaaaa00000001ULL },
                { "AMOMINU.W ignores rs2[63:32]", AMO_MINU, 2, 0xaaaaaaaa00000002ULL, 0x100000003ULL,
                  2, 0xaaaaaaaa00000002ULL },
                { "AMOMAXU.W unsigned", AMO_MAXU, 2, 0xaaaaaaaa00000001ULL, UINT64_MAX, 1, 0xaaaaaaaaffffffffULL },
                { "AMOMAXU.W keeps larger unsigned", AMO_MAXU, 2, 0xaaaaaaaa80000000ULL, 0x7fffffff,
                  0xffffffff80000000ULL, 0xaaaaaaaa80000000ULL },
                { "AMOSWAP.D", AMO_SWAP, 3, 0x0123456789abcdefULL, 0xfedcba9876543210ULL,
                  0x0123456789abcdefULL, 0xfedcba9876543210ULL },
                { "AMOADD.D", AMO_ADD, 3, UINT64_MAX, 2, UINT64_MAX, 1 },
                { "AMOXOR.D", AMO_XOR, 3, 0xff00ff00ff00ff00ULL, UINT64_MAX, 0xff00ff00ff00ff00ULL,
                  0x00ff00ff00ff00ffULL },
                { "AMOAND.D", AMO_AND, 3, 0xff00ff00ff00ff00ULL, 0x0ff00ff00ff00ff0ULL, 0xff00ff00ff00ff00ULL,
                  0x0f000f000f000f00ULL },
                { "AMOOR.D", AMO_OR, 3, 0x8000000000000000ULL, 1, 0x8000000000000000ULL, 0x8000000000000001ULL },
                { "AMOMIN.D signed", AMO_MIN, 3, UINT64_MAX, 1, UINT64_MAX, UINT64_MAX },
                { "AMOMAX.D signed", AMO_MAX, 3, 1ULL << 63, 0, 1ULL << 63, 0 },
                { "AMOMINU.D unsigned", AMO_MINU, 3, UINT64_MAX, 1, UINT64_MAX, 1 },
                { "AMOMAXU.D unsigned", AMO_MAXU, 3, 1ULL << 63, 0, 1ULL << 63, 1ULL << 63 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint64_t mem, rd;
                rd = amo(AMO(cases[i].f5, cases[i].width, RD, RS1, RS2), cases[i].mem, cases[i].src, &mem);
                CHECK(rd == cases[i].want_rd && mem == cases[i].want_mem, "%s (rd 0x%llx, memory 0x%llx)",
                      cases[i].name, (unsigned long long) rd, (unsigned long long) mem);
        }
}

static void test_lr_sc(void) {
        Hart *h = &t->hart;

        /* A fresh hart holds no reservation. */
        th_store(t, AMO_AT, 8, 0xaaaaaaaa80000001ULL);
        h->x[RS1] = AMO_AT;
        h->x[RS2] = 0x1234;
        th_org(t, CODE_BASE);
        th_emit(t, SC_W(8, RS1, RS2));
        th_emit(t, LR_W(RD, RS1));
        th_emit(t, SC_W(9, RS1, RS2));
        th_emit(t, SC_W(10, RS1, RS2));
        h->pc = CODE_BASE;
        h->x[8] = h->x[9] = h->x[10] = POISON;
        th_run(t, 4);
        CHECK_EQ_U64(h->x[8], 1, "SC.W without a reservation fails (rd = 1)");
        CHECK_EQ_U64(h->x[RD], 0xffffffff80000001ULL, "LR.W sign-extends");
        CHECK_EQ_U64(h->x[9], 0, "SC.W after LR.W succeeds (rd = 0)");
        CHECK_EQ_U64(th_load(t, AMO_AT, 8), 0xaaaaaaaa00001234ULL, "SC.W wrote only its word");
        CHECK_EQ_U64(h->x[10], 1, "a second SC.W fails: the first one used the reservation up");

        th_store(t, AMO_AT, 8, 0x1111111111111111ULL);
        th_store(t, AMO_AT + 8, 8, 0x2222222222222222ULL);
        h->x[11] = AMO_AT + 8;
        th_org(t, CODE_BASE);
        th_emit(t, LR_D(RD, RS1));
        th_emit(t, SC_D(8, 11, RS2));
        th_emit(t, SC_D(9, RS1, RS2));
        th_emit(t, LR_D(RD, RS1));
        th_emit(t, SC_D(10, RS1, RS2));
        h->pc = CODE_BASE;
        h->x[8] = h->x[9] = h->x[10] = POISON;
        h->x[RS2] = 0x0123456789abcdefULL;
        th_run(t, 5);
        CHECK_EQ_U64(h->x[8], 1, "SC.D to another address than LR.D's fails");
        CHECK_EQ_U64(th_load(t, AMO_AT + 8, 8), 0x2222222222222222ULL, "a failed SC.D does not write");
        CHECK_EQ_U64(h->x[9], 1, "SC.D fails after a failed SC (which invalidated the reservation)");
        CHECK(h->x[RD] == 0x1111111111111111ULL && h->x[10] == 0 && th_load(t, AMO_AT, 8) == 0x0123456789abcdefULL,
              "LR.D/SC.D pair succeeds");
        CHECK_EQ_U64(h->pc, CODE_BASE + 20, "LR/SC sequence ran without traps");
}

static void test_amo_misaligned(void) {
        Hart *h = &t->hart;
        uint64_t cause;

        th_store(t, AMO_AT, 8, 0x1111111111111111ULL);
        cause = exec_trap(AMO(AMO_ADD, 2, RD, RS1, RS2), AMO_AT + 2, 1);
        CHECK(cause == RV_CAUSE_MISALIGNED_STORE && h->mtval == AMO_AT + 2 && h->mepc == CODE_BASE &&
              h->x[RD] == POISON && th_load(t, AMO_AT, 8) == 0x1111111111111111ULL,
              "misaligned AMOADD.W: store/AMO address misaligned (cause 0x%llx)", (unsigned long long) cause);
        cause = exec_trap(AMO(AMO_SWAP, 3, RD, RS1, RS2), AMO_AT + 4, 1);
        CHECK(cause == RV_CAUSE_MISALIGNED_STORE && h->mtval == AMO_AT + 4,
              "misaligned AMOSWAP.D: cause 6 (cause 0x%llx)", (unsigned long long) cause);
        cause = exec_trap(LR_W(RD, RS1), AMO_AT + 2, 0);
        CHECK(cause == RV_CAUSE_MISALIGNED_LOAD && h->mtval == AMO_AT + 2 && h->x[RD] == POISON,
              "misaligned LR.W: load address misaligned (cause 0x%llx)", (unsigned long long) cause);
        cause = exec_trap(LR_D(RD, RS1), AMO_AT + 4, 0);
        CHECK(cause == RV_CAUSE_MISALIGNED_LOAD && h->mtval == AMO_AT + 4,
              "misaligned LR.D: cause 4 (cause 0x%llx)", (unsigned long long) cause);
        cause = exec_trap(SC_W(RD, RS1, RS2), AMO_AT + 1, 0);
        CHECK(cause == RV_CAUSE_MISALIGNED_STORE && h->mtval == AMO_AT + 1,
              "misaligned SC.W: cause 6 (cause 0x%llx)", (unsigned long long) cause);
}

static void test_reserved_encodings(void) {
        const struct {
                const char *name;
                uint32_t insn;
        } cases[] = {
                { "LOAD funct3 7", enc_i(0x03, 7, RD, RS1, 0) },
                { "STORE funct3 4", enc_s(0x23, 4, RS1, RS2, 0) },
                { "BRANCH funct3 2", enc_b(2, RS1, RS2, 8) },
                { "BRANCH funct3 3", enc_b(3, RS1, RS2, 8) },
                { "JALR funct3 1", enc_i(0x67, 1, RD, RS1, 0) },
                { "SLLI with imm[6] set", enc_i(0x13, 1, RD, RS1, 0x41) },
                { "SRLI with funct6 1", enc_i(0x13, 5, RD, RS1, 0x41) },
                { "SRAI with funct6 0x11", enc_i(0x13, 5, RD, RS1, 0x441) },
                { "SLLIW with shamt[5] set", enc_i(0x1b, 1, RD, RS1, 0x20) },
                { "SRLIW with shamt[5] set", enc_i(0x1b, 5, RD, RS1, 0x21) },
                { "SRAIW with shamt[5] set", enc_i(0x1b, 5, RD, RS1, 0x421) },
                { "OP-IMM-32 funct3 2", enc_i(0x1b, 2, RD, RS1, 0) },
                { "OP funct7 0x20 with SLL", enc_r(0x33, 1, 0x20, RD, RS1, RS2) },
                { "OP funct7 0x02", enc_r(0x33, 0, 0x02, RD, RS1, RS2) },
                { "OP-32 funct3 2", enc_r(0x3b, 2, 0x00, RD, RS1, RS2) },
                { "OP-32 MULHW (not in RV64)", enc_r(0x3b, 1, 0x01, RD, RS1, RS2) },
                { "AMO funct3 0", enc_r(0x2f, 0, 0, RD, RS1, RS2) },
                { "AMO funct5 0x05", AMO(0x05, 3, RD, RS1, RS2) },
                { "LR.W with rs2 != 0", AMO(AMO_LR, 2, RD, RS1, 1) },
                { "MISC-MEM funct3 2", enc_i(0x0f, 2, 0, 0, 0) },
                { "OP-V (V not implemented)", 0x00000057 },
                { "SYSTEM funct3 4", enc_i(0x73, 4, RD, RS1, 0) },
                { "ECALL with rd != 0", ECALL() | (1u << 7) },
        };
        Hart *h = &t->hart;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint64_t cause = exec_trap(cases[i].insn, DATA_BASE, DATA_BASE);
                CHECK(cause == RV_CAUSE_ILLEGAL_INSTRUCTION && h->mtval == cases[i].insn && h->mepc == CODE_BASE &&
                      h->x[RD] == POISON,
                      "%s is illegal, mtval = instruction (cause 0x%llx, mtval 0x%llx)", cases[i].name,
                      (unsigned long long) cause, (unsigned long long) h->mtval);
        }
}

/* ---- F/D loads and stores (the interpreter's part of F/D) ---- */

static void test_fp_memory(void) {
        Hart *h = &t->hart;

        th_csr_write(t, CSR_MSTATUS, 1ULL << RV_MSTATUS_FS_SHIFT);
        th_store(t, LD_AT, 8, 0x123456783f800000ULL);
        h->fpu.f[1] = 0;
        exec(FLW(1, RS1, 0), LD_AT, 0);
        CHECK_EQ_U64(h->fpu.f[1], 0xffffffff3f800000ULL, "FLW NaN-boxes the single (upper 32 bits all ones)");
        exec(FLD(2, RS1, 0), LD_AT, 0);
        CHECK_EQ_U64(h->fpu.f[2], 0x123456783f800000ULL, "FLD loads 64 bits");
        th_store(t, ST_AT, 8, FILL);
        h->fpu.f[3] = 0x0123456789abcdefULL;
        exec(FSW(3, RS1, 0), ST_AT, 0);
        CHECK_EQ_U64(th_load(t, ST_AT, 8), 0x1111111189abcdefULL, "FSW stores the low 32 bits only");
        exec(FSD(3, RS1, -8), ST_AT + 8, 0);
        CHECK_EQ_U64(th_load(t, ST_AT, 8), 0x0123456789abcdefULL, "FSD stores 64 bits (negative offset)");
        th_csr_write(t, CSR_MSTATUS, 0);
}

/* ---- MMIO through the interpreter ---- */

#define MMIO_BASE 0x10000000ULL
#define MMIO_SIZE 0x100

typedef struct FakeDevice {
        unsigned reads, writes;
        uint64_t offset, value;
        unsigned size;
} FakeDevice;

static uint64_t fake_read(void *opaque, uint64_t offset, unsigned size) {
        FakeDevice *d = opaque;

        d->reads++;
        d->offset = offset;
        d->size = size;
        return 0x8081828384858687ULL ^ offset;
}

static void fake_write(void *opaque, uint64_t offset, uint64_t value, unsigned size) {
        FakeDevice *d = opaque;

        d->writes++;
        d->offset = offset;
        d->value = value;
        d->size = size;
}

static const MmioOps fake_ops = {
        .read = fake_read,
        .write = fake_write,
};

static void test_mmio(void) {
        static FakeDevice dev;
        Hart *h = &t->hart;
        uint64_t cause;

        CHECK(physmem_add_mmio(&t->mem, MMIO_BASE, MMIO_SIZE, &fake_ops, &dev) == 0, "fake device registered");
        CHECK(exec(LW(RD, RS1, 4), MMIO_BASE, 0) == 0xffffffff84858683ULL && dev.offset == 4 && dev.size == 4,
              "LW from MMIO: 4-byte device read at the offset, sign-extended");
        CHECK(exec(LBU(RD, RS1, 1), MMIO_BASE, 0) == 0x86 && dev.offset == 1 && dev.size == 1,
              "LBU from MMIO: 1-byte read, zero-extended");
        CHECK(exec(LD(RD, RS1, 8), MMIO_BASE, 0) == 0x808182838485868fULL && dev.size == 8, "LD from MMIO");
        exec(SH(RS2, RS1, 6), MMIO_BASE, 0x12345678abcdULL);
        CHECK(dev.writes == 1 && dev.offset == 6 && dev.size == 2 && dev.value == 0xabcd,
              "SH to MMIO: 2-byte device write of the low half");
        unsigned reads = dev.reads;
        exec(LD(0, RS1, 0), MMIO_BASE, 0);
        CHECK(dev.reads == reads + 1 && h->x[0] == 0, "a load into x0 still reads the device");

        reads = dev.reads;
        cause = exec_trap(AMO(AMO_ADD, 2, RD, RS1, RS2), MMIO_BASE, 1);
        CHECK(cause == RV_CAUSE_STORE_ACCESS && h->mtval == MMIO_BASE && dev.reads == reads && dev.writes == 1,
              "AMO on MMIO (not atomic-capable): store/AMO access fault, device untouched");
        cause = exec_trap(LR_W(RD, RS1), MMIO_BASE, 0);
        CHECK(cause == RV_CAUSE_LOAD_ACCESS && dev.reads == reads, "LR on MMIO: load access fault");
        cause = exec_trap(LD(RD, RS1, MMIO_SIZE - 4), MMIO_BASE, 0);
        CHECK(cause == RV_CAUSE_LOAD_ACCESS && h->mtval == MMIO_BASE + MMIO_SIZE - 4,
              "a load running past the device window: load access fault");
        h->x[RS1] = MMIO_BASE;
        run_one_at(CODE_BASE, JALR(0, RS1, 0));
        th_run(t, 1);
        CHECK(h->mcause == RV_CAUSE_FETCH_ACCESS && h->mepc == MMIO_BASE && h->mtval == MMIO_BASE,
              "fetch from MMIO: instruction access fault");
}

int main(void) {
        t = th_new();

        test_rv64i_alu();
        test_rv64i_word();
        test_m();
        test_lui_auipc();
        test_loads();
        test_stores();
        test_branches();
        test_jumps();
        test_x0();
        test_fence();
        test_misaligned();
        test_amo();
        test_lr_sc();
        test_amo_misaligned();
        test_reserved_encodings();
        test_fp_memory();
        test_mmio();

        CHECK_EQ_U64(stray_traps, 0, "no unexpected traps");
        th_free(t);
        return tap_finish();
}
