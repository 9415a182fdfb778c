/* SPDX-License-Identifier: MIT */

/*
 * Random instruction sequences run on the JIT in lockstep with the
 * interpreter (tests/unit/harness.c compares them after every block).
 * Fixed seeds, so a failure reproduces; ORRERY_JIT_SEEDS=N runs more (soak).
 *
 * A program: registers seeded with edge values, then a loop of random
 * integer instructions (ALU, M, compressed forms, loads and stores around
 * a data pointer, short forward branches, the odd CSR read), ending in
 * ECALL to the parked M-mode handler. Misaligned and wild accesses trap,
 * which the lockstep compares too.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "macro.h"
#include "tap.h"

#define PROGRAM_INSNS 400
#define DATA_REG 9              /* x9 points into DATA; never written by the program */
#define LOOP_REG 8              /* x8 counts the loop down */

static uint64_t rng_state;

static uint64_t rnd(void) {
        /* xorshift64* */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * 0x2545F4914F6CDD1DULL;
}

static unsigned rnd_reg(void) {
        static const unsigned regs[] = { 0, 1, 5, 6, 7, 10, 11, 12, 13, 14, 15 };
        return regs[rnd() % (sizeof(regs) / sizeof(regs[0]))];
}

static int32_t rnd_imm12(void) {
        static const int32_t edge[] = { 0, 1, -1, 2047, -2048, 31, 32, 63 };
        return rnd() % 4 == 0 ? edge[rnd() % 8] : (int32_t) (rnd() % 4096) - 2048;
}

static uint32_t rnd_alu(void) {
        unsigned rd = rnd_reg(), rs1 = rnd_reg(), rs2 = rnd_reg();

        switch (rnd() % 40) {
        case 0: return ADD(rd, rs1, rs2);
        case 1: return SUB(rd, rs1, rs2);
        case 2: return SLL(rd, rs1, rs2);
        case 3: return SLT(rd, rs1, rs2);
        case 4: return SLTU(rd, rs1, rs2);
        case 5: return XOR(rd, rs1, rs2);
        case 6: return SRL(rd, rs1, rs2);
        case 7: return SRA(rd, rs1, rs2);
        case 8: return OR(rd, rs1, rs2);
        case 9: return AND(rd, rs1, rs2);
        case 10: return ADDW(rd, rs1, rs2);
        case 11: return SUBW(rd, rs1, rs2);
        case 12: return SLLW(rd, rs1, rs2);
        case 13: return SRLW(rd, rs1, rs2);
        case 14: return SRAW(rd, rs1, rs2);
        case 15: return MUL(rd, rs1, rs2);
        case 16: return MULH(rd, rs1, rs2);
        case 17: return MULHSU(rd, rs1, rs2);
        case 18: return MULHU(rd, rs1, rs2);
        case 19: return DIV(rd, rs1, rs2);
        case 20: return DIVU(rd, rs1, rs2);
        case 21: return REM(rd, rs1, rs2);
        case 22: return REMU(rd, rs1, rs2);
        case 23: return MULW(rd, rs1, rs2);
        case 24: return DIVW(rd, rs1, rs2);
        case 25: return DIVUW(rd, rs1, rs2);
        case 26: return REMW(rd, rs1, rs2);
        case 27: return REMUW(rd, rs1, rs2);
        case 28: return ADDI(rd, rs1, rnd_imm12());
        case 29: return SLTI(rd, rs1, rnd_imm12());
        case 30: return SLTIU(rd, rs1, rnd_imm12());
        case 31: return XORI(rd, rs1, rnd_imm12());
        case 32: return ORI(rd, rs1, rnd_imm12());
        case 33: return ANDI(rd, rs1, rnd_imm12());
        case 34: return SLLI(rd, rs1, rnd() % 64);
        case 35: return SRAI(rd, rs1, rnd() % 64);
        case 36: return SRLIW(rd, rs1, rnd() % 32);
        case 37: return ADDIW(rd, rs1, rnd_imm12());
        case 38: return LUI(rd, (uint32_t) rnd());
        default: return AUIPC(rd, (uint32_t) rnd());
        }
}

static uint32_t rnd_mem(void) {
        /* Mostly aligned, sometimes misaligned (traps or crosses a word). */
        int32_t off = (int32_t) (rnd() % 256) * 8 - 1024 + (rnd() % 8 == 0 ? (int32_t) (rnd() % 8) : 0);
        unsigned r = rnd_reg();

        switch (rnd() % 11) {
        case 0: return LB(r, DATA_REG, off);
        case 1: return LH(r, DATA_REG, off);
        case 2: return LW(r, DATA_REG, off);
        case 3: return LD(r, DATA_REG, off);
        case 4: return LBU(r, DATA_REG, off);
        case 5: return LHU(r, DATA_REG, off);
        case 6: return LWU(r, DATA_REG, off);
        case 7: return SB(r, DATA_REG, off);
        case 8: return SH(r, DATA_REG, off);
        case 9: return SW(r, DATA_REG, off);
        default: return SD(r, DATA_REG, off);
        }
}

static void emit_program(TestHart *t) {
        static const uint64_t seeds[] = {
                0, 1, UINT64_MAX, 0x8000000000000000ULL, 0x7fffffffffffffffULL, 0xffffffff80000000ULL, 0x80000000ULL,
        };
        Hart *h = &t->hart;
        uint64_t loop;

        for (unsigned i = 1; i < 32; i++)
                h->x[i] = rnd() % 3 == 0 ? seeds[rnd() % 7] : rnd();
        h->x[DATA_REG] = DATA_BASE + 0x2000;
        h->x[LOOP_REG] = 3;

        th_org(t, CODE_BASE);
        loop = t->cursor;
        for (unsigned i = 0; i < PROGRAM_INSNS; i++) {
                unsigned kind = rnd() % 20;

                if (kind < 11)
                        th_emit(t, rnd_alu());
                else if (kind < 15)
                        th_emit(t, rnd_mem());
                else if (kind == 15) {
                        /* A short forward branch (over 1..4 instructions). */
                        int32_t skip = 4 * (int32_t) (1 + rnd() % 4);
                        uint32_t insn;
                        switch (rnd() % 6) {
                        case 0: insn = BEQ(rnd_reg(), rnd_reg(), skip); break;
                        case 1: insn = BNE(rnd_reg(), rnd_reg(), skip); break;
                        case 2: insn = BLT(rnd_reg(), rnd_reg(), skip); break;
                        case 3: insn = BGE(rnd_reg(), rnd_reg(), skip); break;
                        case 4: insn = BLTU(rnd_reg(), rnd_reg(), skip); break;
                        default: insn = BGEU(rnd_reg(), rnd_reg(), skip); break;
                        }
                        th_emit(t, insn);
                } else if (kind == 16) {
                        /* Compressed forms, padded to keep 4-byte alignment for the branches above. */
                        unsigned r = 10 + rnd() % 6;
                        th_emit16(t, rnd() % 2 ? C_ADDI(r, (int32_t) (rnd() % 64) - 32) : C_SLLI(r, 1 + rnd() % 63));
                        th_emit16(t, rnd() % 2 ? C_SUB(r, 8 + rnd() % 2) : C_LD(r, DATA_REG, (rnd() % 32) * 8));
                } else if (kind == 17)
                        th_emit(t, CSRRS(rnd_reg(), CSR_INSTRET, 0));
                else if (kind == 18)
                        th_emit(t, JAL(rnd() % 2 ? 1 : 0, 4));
                else
                        th_emit(t, FENCE());
        }
        /* Landing room for the last branches, so that none skips the loop counter's decrement. */
        for (unsigned i = 0; i < 4; i++)
                th_emit(t, NOP());
        th_emit(t, ADDI(LOOP_REG, LOOP_REG, -1));
        th_emit(t, BNE(LOOP_REG, 0, (int32_t) (loop - t->cursor)));
        th_emit(t, ECALL());
}

/* A store that rewrites an instruction of the running block's own page takes effect at once. */
static void test_self_modifying(void) {
        _cleanup_th_ TestHart *t = th_new();
        Hart *h = &t->hart;
        uint64_t target;

        th_use_engine(t, "lockstep");
        th_pmp_allow_all(t);
        th_emit(t, ADDI(10, 10, 1));
        target = th_emit(t, ADDI(5, 0, 1));
        th_emit(t, ADD(12, 12, 5));
        th_emit(t, SW(6, 7, 0));
        th_emit(t, BNE(10, 11, -16));
        th_emit(t, ECALL());
        h->x[6] = ADDI(5, 0, 2);
        h->x[7] = target;
        h->x[11] = 2;
        th_run(t, 100);
        CHECK(th_in_mtrap(t) && h->x[12] == 3,
              "a store over a translated instruction is seen on the next pass (x12 = %llu, want 1 + 2)",
              (unsigned long long) h->x[12]);
}

/* Code a device rewrote (DMA, behind the hart's back) is seen after FENCE.I. */
static void test_fence_i_after_dma(void) {
        _cleanup_th_ TestHart *t = th_new();
        Hart *h = &t->hart;
        uint32_t two = ADDI(5, 0, 2);

        th_use_engine(t, "lockstep");
        th_emit(t, FENCE_I());
        th_emit(t, ADDI(5, 0, 1));
        th_emit(t, ECALL());
        th_run(t, 3);
        CHECK(th_in_mtrap(t) && h->x[5] == 1, "the first version runs (x5 = %llu)", (unsigned long long) h->x[5]);

        memcpy(th_ptr(t, CODE_BASE + 4, 4), &two, 4);
        th_clear_trap(t);
        th_jump(t, CODE_BASE, PRIV_M);
        th_run(t, 3);
        CHECK(th_in_mtrap(t) && h->x[5] == 2, "after a DMA write and FENCE.I the new code runs (x5 = %llu)",
              (unsigned long long) h->x[5]);
}

/* A guest spinning in a chained loop runs exactly its budget and still takes its timer interrupt. */
static void test_spin_takes_interrupt(void) {
        _cleanup_th_ TestHart *t = th_new();
        Hart *h = &t->hart;
        uint64_t loop, before;

        th_use_engine(t, "jit");
        th_csr_write(t, CSR_MIE, MIP_MTIP);
        th_csr_write(t, CSR_MSTATUS, 1u << 3); /* MIE */
        th_emit(t, ADDI(5, 5, 1));
        loop = th_emit(t, ADDI(6, 6, 1));
        th_emit(t, JAL(0, -4));

        before = h->instret;
        th_run(t, 1000);
        th_run(t, 1001);
        CHECK(h->instret - before == 2001 && h->pc >= loop && h->pc < loop + 8 && h->x[6] == 1000,
              "a spinning loop of chained blocks retires exactly its budget (%llu instructions, x6 = %llu)",
              (unsigned long long) (h->instret - before), (unsigned long long) h->x[6]);

        hart_set_external_irq(h, MIP_MTIP, true);
        th_run(t, 1000);
        CHECK(h->mcause == (CAUSE_INTERRUPT | 7) && th_in_mtrap(t),
              "... and takes the timer interrupt raised meanwhile (mcause 0x%llx)", (unsigned long long) h->mcause);
}

/*
 * The dispatcher lets a slice's last block run past the slice (stepping
 * its tail instruction by instruction was slow), but hart_run() must still
 * retire exactly its budget: budgets here end inside a 51-instruction
 * loop body, across several 4096-instruction slices.
 */
static void test_long_block_budget(void) {
        static const uint64_t budgets[] = { 4096 + 25, 3 * 4096 - 1, 2 * 4096 + 50 };
        _cleanup_th_ TestHart *t = th_new();
        Hart *h = &t->hart;
        uint64_t executed = 0;

        th_use_engine(t, "jit");
        for (unsigned i = 0; i < 50; i++)
                th_emit(t, ADDI(5, 5, 1));
        th_emit(t, JAL(0, -50 * 4));

        for (size_t i = 0; i < ELEMENTSOF(budgets); i++) {
                uint64_t before = h->instret, rem;

                th_run(t, budgets[i]);
                executed += budgets[i];
                rem = executed % 51;
                CHECK(h->instret - before == budgets[i] && h->pc == CODE_BASE + 4 * rem &&
                      h->x[5] == executed / 51 * 50 + MIN(rem, 50),
                      "a budget of %llu ending inside a long block retires exactly that (%llu, pc +0x%llx, x5 = %llu)",
                      (unsigned long long) budgets[i], (unsigned long long) (h->instret - before),
                      (unsigned long long) (h->pc - CODE_BASE), (unsigned long long) h->x[5]);
        }
}

/*
 * A CSR write inside a block runs in place (no exit to the dispatcher);
 * one that unmasks a pending interrupt must still have it taken right
 * after it, not at the end of the block.
 */
static void test_csr_write_unmasks_interrupt(void) {
        _cleanup_th_ TestHart *t = th_new();
        Hart *h = &t->hart;
        uint64_t after;

        th_use_engine(t, "jit");
        th_csr_write(t, CSR_MIE, MIP_MTIP);
        hart_set_external_irq(h, MIP_MTIP, true);
        th_emit(t, ADDI(5, 5, 1));
        th_emit(t, CSRRSI(0, CSR_MSTATUS, 1u << 3)); /* MIE */
        after = th_emit(t, ADDI(6, 6, 1));
        th_emit(t, ADDI(6, 6, 1));
        th_emit(t, ECALL());

        th_run(t, 4);
        CHECK(h->mcause == (CAUSE_INTERRUPT | 7) && th_csr(t, CSR_MEPC) == after && h->x[5] == 1 && h->x[6] == 0,
              "an interrupt unmasked mid-block is taken right after the CSR write (mcause 0x%llx, mepc +0x%llx, x6 = %llu)",
              (unsigned long long) h->mcause, (unsigned long long) (th_csr(t, CSR_MEPC) - CODE_BASE),
              (unsigned long long) h->x[6]);
}

/*
 * F/D arithmetic runs on the host's SSE/FMA unit when it can (round to
 * nearest, a non-NaN result, no new exception flag) and in the FPU's own
 * code otherwise. In lockstep with the interpreter: every operation on
 * pairs of awkward values (NaNs, infinities, zeros, tiny and huge
 * numbers), in static and dynamic rounding modes, with the accrued flags
 * cleared now and then so that both paths are taken.
 */
static void test_fp_fast_path(void) {
        static const uint64_t values[] = {
                0x3ff0000000000000ULL,  /* 1.0 */
                0x3fb999999999999aULL,  /* 0.1 */
                0x7ff0000000000000ULL,  /* +inf */
                0x8000000000000000ULL,  /* -0.0 */
                0x7ff8000000000000ULL,  /* quiet NaN */
                0x7ff0000000000001ULL,  /* signalling NaN */
                0x0010000000000001ULL,  /* tiny (near the smallest normal) */
                0x7fefffffffffffffULL,  /* largest finite */
        };
        static const unsigned funct7[] = { 0x01, 0x05, 0x09, 0x0d }; /* FADD/FSUB/FMUL/FDIV.D */
        const unsigned n = ELEMENTSOF(values);
        const uint64_t base = RAM_BASE + 0x20000;
        _cleanup_th_ TestHart *t = th_new();
        Hart *h = &t->hart;
        unsigned count = 0, rd = 16;

        th_use_engine(t, "lockstep");
        th_pmp_allow_all(t);
        th_csr_write(t, CSR_MSTATUS, 3u << 13); /* FS = dirty */
        for (unsigned i = 0; i < n; i++)
                h->fpu.f[1 + i] = values[i];

        th_org(t, base);
        for (unsigned frm = 0; frm < 2; frm++) {
                th_emit(t, CSRRWI(0, CSR_FRM, frm));
                count++;
                for (unsigned op = 0; op < ELEMENTSOF(funct7) + 1; op++)
                        for (unsigned rm = 0; rm < 8; rm += 7)
                                for (unsigned a = 0; a < n; a++)
                                        for (unsigned b = 0; b < n; b++) {
                                                unsigned rs1 = 1 + a, rs2 = 1 + b, rs3 = 1 + (a + b) % n;
                                                uint32_t insn = op == ELEMENTSOF(funct7) ?
                                                        enc_r4(0x43, rm, 1, rd, rs1, rs2, rs3) :
                                                        enc_r(0x53, rm, funct7[op], rd, rs1, rs2);
                                                th_emit(t, insn);
                                                rd = rd == 31 ? 16 : rd + 1;
                                                count++;
                                                /* A block ends every 16 results (compared before they are overwritten). */
                                                if (rd == 16) {
                                                        th_emit(t, JAL(0, 4));
                                                        count++;
                                                }
                                                if ((a + b) % 5 == 0) {
                                                        th_emit(t, CSRRW(0, CSR_FFLAGS, 0));
                                                        count++;
                                                }
                                        }
        }
        th_emit(t, ECALL());
        count++;

        th_jump(t, base, PRIV_M);
        th_run(t, count);
        /* Reaching here means every block matched (a difference aborts). */
        CHECK(th_in_mtrap(t) && h->mepc == base + 4 * (count - 1),
              "F/D arithmetic on awkward values: host fast path and FPU agree in lockstep (%u instructions, %llu blocks)",
              count, (unsigned long long) t->lockstep_blocks);
}

int main(void) {
        const char *s = getenv("ORRERY_JIT_SEEDS");
        unsigned n_seeds = s ? (unsigned) atoi(s) : 40;

        test_self_modifying();
        test_fence_i_after_dma();
        test_spin_takes_interrupt();
        test_long_block_budget();
        test_csr_write_unmasks_interrupt();
        test_fp_fast_path();

        for (unsigned seed = 1; seed <= n_seeds; seed++) {
                _cleanup_th_ TestHart *t = th_new();

                th_use_engine(t, "lockstep");
                rng_state = seed * 0x9E3779B97F4A7C15ULL;
                emit_program(t);
                th_pmp_allow_all(t);
                th_run(t, 20 * PROGRAM_INSNS);
                /* Reaching here means every block matched (a difference aborts). */
                CHECK(th_in_mtrap(t) && t->hart.x[LOOP_REG] == 0, "seed %u: %llu blocks in lockstep, ends in the M handler after its loop (pc 0x%llx, mcause 0x%llx)",
                          seed, (unsigned long long) t->lockstep_blocks, (unsigned long long) t->hart.pc,
                          (unsigned long long) t->hart.mcause);
        }
        return tap_finish();
}

