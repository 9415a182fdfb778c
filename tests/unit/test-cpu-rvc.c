/* SPDX-License-Identifier: MIT */
/*
 * The C extension: rvc_expand() against the expansions the ISA manual
 * gives, over the whole range of every immediate and register field; then
 * each compressed instruction executed next to its 32-bit equivalent on two
 * identical machines (same registers, same memory), which must end in the
 * same state; then reserved encodings (illegal instruction, mtval = the
 * 16-bit instruction) and HINTs (no trap).
 */

#include <string.h>

#include "harness.h"
#include "macro.h"
#include "tap.h"

/* ---- rvc_expand() over whole immediate ranges ---- */

typedef struct ExpandTally {
        unsigned total, bad;
        uint16_t first_c;
        uint32_t first_got, first_want;
} ExpandTally;

static void expect_expand(ExpandTally *e, uint16_t c, uint32_t want) {
        uint32_t got = rvc_expand(c);

        e->total++;
        if (got == want)
                return;
        if (e->bad++ == 0) {
                e->first_c = c;
                e->first_got = got;
                e->first_want = want;
        }
}

static void report(ExpandTally *e, const char *name) {
        CHECK(e->bad == 0 && e->total > 0, "rvc_expand %s: %u encodings", name, e->total);
        if (e->bad)
                printf("#   %u wrong; first: %04x expanded to %08x, want %08x\n", e->bad, e->first_c, e->first_got,
                       e->first_want);
        memset(e, 0, sizeof(*e));
}

static void test_expand_q0(void) {
        ExpandTally e = {};

        for (unsigned rd = 8; rd < 16; rd++)
                for (int imm = 4; imm < 1024; imm += 4)
                        expect_expand(&e, C_ADDI4SPN(rd, imm), ADDI(rd, 2, imm));
        report(&e, "C.ADDI4SPN");

        for (unsigned rd = 8; rd < 16; rd++)
                for (unsigned rs1 = 8; rs1 < 16; rs1++)
                        for (int imm = 0; imm < 256; imm += 8)
                                expect_expand(&e, C_FLD(rd, rs1, imm), FLD(rd, rs1, imm));
        report(&e, "C.FLD");

        for (unsigned rd = 8; rd < 16; rd++)
                for (unsigned rs1 = 8; rs1 < 16; rs1++)
                        for (int imm = 0; imm < 128; imm += 4)
                                expect_expand(&e, C_LW(rd, rs1, imm), LW(rd, rs1, imm));
        report(&e, "C.LW");

        for (unsigned rd = 8; rd < 16; rd++)
                for (unsigned rs1 = 8; rs1 < 16; rs1++)
                        for (int imm = 0; imm < 256; imm += 8)
                                expect_expand(&e, C_LD(rd, rs1, imm), LD(rd, rs1, imm));
        report(&e, "C.LD");

        for (unsigned rs2 = 8; rs2 < 16; rs2++)
                for (unsigned rs1 = 8; rs1 < 16; rs1++)
                        for (int imm = 0; imm < 256; imm += 8)
                                expect_expand(&e, C_FSD(rs2, rs1, imm), FSD(rs2, rs1, imm));
        report(&e, "C.FSD");

        for (unsigned rs2 = 8; rs2 < 16; rs2++)
                for (unsigned rs1 = 8; rs1 < 16; rs1++)
                        for (int imm = 0; imm < 128; imm += 4)
                                expect_expand(&e, C_SW(rs2, rs1, imm), SW(rs2, rs1, imm));
        report(&e, "C.SW");

        for (unsigned rs2 = 8; rs2 < 16; rs2++)
                for (unsigned rs1 = 8; rs1 < 16; rs1++)
                        for (int imm = 0; imm < 256; imm += 8)
                                expect_expand(&e, C_SD(rs2, rs1, imm), SD(rs2, rs1, imm));
        report(&e, "C.SD");
}

static void test_expand_q1(void) {
        ExpandTally e = {};

        expect_expand(&e, C_NOP(), ADDI(0, 0, 0));
        report(&e, "C.NOP");

        for (unsigned rd = 1; rd < 32; rd++)
                for (int imm = -32; imm < 32; imm++)
                        if (imm != 0)
                                expect_expand(&e, C_ADDI(rd, imm), ADDI(rd, rd, imm));
        report(&e, "C.ADDI");

        for (unsigned rd = 1; rd < 32; rd++)
                for (int imm = -32; imm < 32; imm++)
                        expect_expand(&e, C_ADDIW(rd, imm), ADDIW(rd, rd, imm));
        report(&e, "C.ADDIW (RV64: replaces C.JAL)");

        for (unsigned rd = 1; rd < 32; rd++)
                for (int imm = -32; imm < 32; imm++)
                        expect_expand(&e, C_LI(rd, imm), ADDI(rd, 0, imm));
        report(&e, "C.LI");

        for (int imm = -512; imm < 512; imm += 16)
                if (imm != 0)
                        expect_expand(&e, C_ADDI16SP(imm), ADDI(2, 2, imm));
        report(&e, "C.ADDI16SP");

        for (unsigned rd = 1; rd < 32; rd++)
                for (int imm = -32; imm < 32; imm++)
                        if (rd != 2 && imm != 0)
                                expect_expand(&e, C_LUI(rd, imm * 4096), LUI(rd, (uint32_t) imm & 0xfffff));
        report(&e, "C.LUI");

        for (unsigned rd = 8; rd < 16; rd++)
                for (unsigned sh = 1; sh < 64; sh++)
                        expect_expand(&e, C_SRLI(rd, sh), SRLI(rd, rd, sh));
        report(&e, "C.SRLI");

        for (unsigned rd = 8; rd < 16; rd++)
                for (unsigned sh = 1; sh < 64; sh++)
                        expect_expand(&e, C_SRAI(rd, sh), SRAI(rd, rd, sh));
        report(&e, "C.SRAI");

        for (unsigned rd = 8; rd < 16; rd++)
                for (int imm = -32; imm < 32; imm++)
                        expect_expand(&e, C_ANDI(rd, imm), ANDI(rd, rd, imm));
        report(&e, "C.ANDI");

        for (unsigned rd = 8; rd < 16; rd++)
                for (unsigned rs2 = 8; rs2 < 16; rs2++) {
                        expect_expand(&e, C_SUB(rd, rs2), SUB(rd, rd, rs2));
                        expect_expand(&e, C_XOR(rd, rs2), XOR(rd, rd, rs2));
                        expect_expand(&e, C_OR(rd, rs2), OR(rd, rd, rs2));
                        expect_expand(&e, C_AND(rd, rs2), AND(rd, rd, rs2));
                        expect_expand(&e, C_SUBW(rd, rs2), SUBW(rd, rd, rs2));
                        expect_expand(&e, C_ADDW(rd, rs2), ADDW(rd, rd, rs2));
                }
        report(&e, "C.SUB/XOR/OR/AND/SUBW/ADDW");

        for (int off = -2048; off < 2048; off += 2)
                expect_expand(&e, C_J(off), JAL(0, off));
        report(&e, "C.J");

        for (unsigned rs1 = 8; rs1 < 16; rs1++)
                for (int off = -256; off < 256; off += 2) {
                        expect_expand(&e, C_BEQZ(rs1, off), BEQ(rs1, 0, off));
                        expect_expand(&e, C_BNEZ(rs1, off), BNE(rs1, 0, off));
                }
        report(&e, "C.BEQZ/C.BNEZ");
}

static void test_expand_q2(void) {
        ExpandTally e = {};

        for (unsigned rd = 1; rd < 32; rd++)
                for (unsigned sh = 1; sh < 64; sh++)
                        expect_expand(&e, C_SLLI(rd, sh), SLLI(rd, rd, sh));
        report(&e, "C.SLLI");

        for (unsigned rd = 0; rd < 32; rd++)
                for (int imm = 0; imm < 512; imm += 8)
                        expect_expand(&e, C_FLDSP(rd, imm), FLD(rd, 2, imm));
        report(&e, "C.FLDSP");

        for (unsigned rd = 1; rd < 32; rd++)
                for (int imm = 0; imm < 256; imm += 4)
                        expect_expand(&e, C_LWSP(rd, imm), LW(rd, 2, imm));
        report(&e, "C.LWSP");

        for (unsigned rd = 1; rd < 32; rd++)
                for (int imm = 0; imm < 512; imm += 8)
                        expect_expand(&e, C_LDSP(rd, imm), LD(rd, 2, imm));
        report(&e, "C.LDSP");

        for (unsigned r = 1; r < 32; r++) {
                expect_expand(&e, C_JR(r), JALR(0, r, 0));
                expect_expand(&e, C_JALR(r), JALR(1, r, 0));
        }
        report(&e, "C.JR/C.JALR");

        for (unsigned rd = 1; rd < 32; rd++)
                for (unsigned rs2 = 1; rs2 < 32; rs2++) {
                        expect_expand(&e, C_MV(rd, rs2), ADD(rd, 0, rs2));
                        expect_expand(&e, C_ADD(rd, rs2), ADD(rd, rd, rs2));
                }
        report(&e, "C.MV/C.ADD");

        expect_expand(&e, C_EBREAK(), EBREAK());
        report(&e, "C.EBREAK");

        for (unsigned rs2 = 0; rs2 < 32; rs2++)
                for (int imm = 0; imm < 512; imm += 8)
                        expect_expand(&e, C_FSDSP(rs2, imm), FSD(rs2, 2, imm));
        report(&e, "C.FSDSP");

        for (unsigned rs2 = 0; rs2 < 32; rs2++)
                for (int imm = 0; imm < 256; imm += 4)
                        expect_expand(&e, C_SWSP(rs2, imm), SW(rs2, 2, imm));
        report(&e, "C.SWSP");

        for (unsigned rs2 = 0; rs2 < 32; rs2++)
                for (int imm = 0; imm < 512; imm += 8)
                        expect_expand(&e, C_SDSP(rs2, imm), SD(rs2, 2, imm));
        report(&e, "C.SDSP");
}

/* Known encodings from the GNU assembler, to anchor the encoders themselves. */
static void test_encoders(void) {
        CHECK_EQ_U64(C_ADDI4SPN(8, 16), 0x0800, "encoder: c.addi4spn s0,sp,16 = 0x0800");
        CHECK_EQ_U64(C_LDSP(1, 8), 0x60a2, "encoder: c.ldsp ra,8(sp) = 0x60a2");
        CHECK_EQ_U64(C_SDSP(1, 8), 0xe406, "encoder: c.sdsp ra,8(sp) = 0xe406");
        CHECK_EQ_U64(C_ADDI16SP(-64), 0x7139, "encoder: c.addi16sp sp,-64 = 0x7139");
        CHECK_EQ_U64(C_JR(1), 0x8082, "encoder: c.jr ra = 0x8082");
        CHECK_EQ_U64(C_MV(10, 8), 0x8522, "encoder: c.mv a0,s0 = 0x8522");
        CHECK_EQ_U64(C_LI(10, 0), 0x4501, "encoder: c.li a0,0 = 0x4501");
        CHECK_EQ_U64(C_ADDI(2, -16), 0x1141, "encoder: c.addi sp,-16 = 0x1141");
        CHECK_EQ_U64(C_EBREAK(), 0x9002, "encoder: c.ebreak = 0x9002");
        CHECK_EQ_U64(ADDI(2, 2, -16), 0xff010113, "encoder: addi sp,sp,-16 = 0xff010113");
        CHECK_EQ_U64(SD(1, 2, 8), 0x00113423, "encoder: sd ra,8(sp) = 0x00113423");
        CHECK_EQ_U64(JAL(1, 0), 0x000000ef, "encoder: jal ra,. = 0x000000ef");
}

static void test_expand_all(void) {
        unsigned bad = 0, legal = 0;

        /* Every expansion is 0 (illegal) or a 32-bit encoding. */
        for (uint32_t c = 0; c < 0x10000; c++) {
                uint32_t x;
                if ((c & 3) == 3)
                        continue;
                x = rvc_expand((uint16_t) c);
                if (x == 0)
                        continue;
                legal++;
                if ((x & 3) != 3)
                        bad++;
        }
        CHECK(bad == 0 && legal > 40000, "every 16-bit expansion is 0 or a 32-bit instruction (%u legal)", legal);
}

/* ---- executing the 16-bit form next to the 32-bit form ---- */

#define SP_VALUE (DATA_BASE + 0x800)
#define FS_INITIAL (1ULL << RV_MSTATUS_FS_SHIFT)

typedef struct Pair {
        const char *name;
        uint16_t c;
        uint32_t i;
        unsigned reg[2];        /* registers to set (0: none) */
        uint64_t val[2];
        bool link;              /* C.JALR: ra differs by the instruction length */
} Pair;

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static void setup(TestHart *t, const uint64_t x[32], const uint64_t f[32], const Pair *p) {
        Hart *h = &t->hart;

        memcpy(h->x, x, sizeof(h->x));
        memcpy(h->fpu.f, f, sizeof(h->fpu.f));
        for (unsigned k = 0; k < 2; k++)
                if (p->reg[k])
                        h->x[p->reg[k]] = p->val[k];
        h->mstatus |= FS_INITIAL;
}

static void run_pair(const Pair *p) {
        _cleanup_th_ TestHart *tc = th_new(), *ti = th_new();
        Hart *hc = &tc->hart, *hi = &ti->hart;
        uint64_t x[32], f[32];
        unsigned diffs = 0;

        x[0] = 0;
        for (unsigned r = 1; r < 32; r++)
                x[r] = rng();
        x[2] = SP_VALUE;
        for (unsigned r = 0; r < 32; r++)
                f[r] = rng();

        setup(tc, x, f, p);
        setup(ti, x, f, p);
        th_emit16(tc, p->c);
        th_emit(ti, p->i);
        th_run(tc, 1);
        th_run(ti, 1);

        if (p->link) {
                if (hc->x[1] + 2 != hi->x[1]) {
                        printf("#   link: 0x%llx vs 0x%llx\n", (unsigned long long) hc->x[1],
                               (unsigned long long) hi->x[1]);
                        diffs++;
                }
                hc->x[1] = hi->x[1];
        }
        for (unsigned r = 0; r < 32; r++)
                if (hc->x[r] != hi->x[r]) {
                        printf("#   x%u: 0x%llx vs 0x%llx\n", r, (unsigned long long) hc->x[r],
                               (unsigned long long) hi->x[r]);
                        diffs++;
                }
        if (memcmp(hc->fpu.f, hi->fpu.f, sizeof(hc->fpu.f)) != 0) {
                printf("#   FP registers differ\n");
                diffs++;
        }
        if (memcmp(th_ptr(tc, DATA_BASE, 0x1000), th_ptr(ti, DATA_BASE, 0x1000), 0x1000) != 0) {
                printf("#   memory differs\n");
                diffs++;
        }
        if (hc->mstatus != hi->mstatus || hc->mcause != hi->mcause || hc->mepc != hi->mepc) {
                printf("#   trap state differs: mcause 0x%llx vs 0x%llx\n", (unsigned long long) hc->mcause,
                       (unsigned long long) hi->mcause);
                diffs++;
        }
        if (hi->pc == CODE_BASE + 4 ? hc->pc != CODE_BASE + 2 : hc->pc != hi->pc) {
                printf("#   pc: 0x%llx vs 0x%llx\n", (unsigned long long) hc->pc, (unsigned long long) hi->pc);
                diffs++;
        }
        CHECK(diffs == 0, "%s (%04x) executes like %08x", p->name, p->c, p->i);
}

#define PAIR(n, cc, ii, ...) { .name = (n), .c = (cc), .i = (ii), __VA_ARGS__ }
#define R1(r, v) .reg = { r, 0 }, .val = { v, 0 }
#define R2(r, v, s, w) .reg = { r, s }, .val = { v, w }

static void test_execute(void) {
        const uint64_t base = DATA_BASE + 0x100;
        const Pair pairs[] = {
                PAIR("C.ADDI4SPN min", C_ADDI4SPN(8, 4), ADDI(8, 2, 4)),
                PAIR("C.ADDI4SPN max", C_ADDI4SPN(15, 1020), ADDI(15, 2, 1020)),
                PAIR("C.LW max offset", C_LW(9, 10, 124), LW(9, 10, 124), R1(10, base)),
                PAIR("C.LW rd == rs1", C_LW(8, 8, 4), LW(8, 8, 4), R1(8, base)),
                PAIR("C.LD max offset", C_LD(11, 12, 248), LD(11, 12, 248), R1(12, base)),
                PAIR("C.FLD", C_FLD(13, 14, 248), FLD(13, 14, 248), R1(14, base)),
                PAIR("C.SW", C_SW(15, 9, 124), SW(15, 9, 124), R1(9, base)),
                PAIR("C.SD", C_SD(8, 9, 248), SD(8, 9, 248), R1(9, base)),
                PAIR("C.FSD", C_FSD(10, 11, 8), FSD(10, 11, 8), R1(11, base)),
                PAIR("C.NOP", C_NOP(), ADDI(0, 0, 0)),
                PAIR("C.ADDI -32", C_ADDI(5, -32), ADDI(5, 5, -32)),
                PAIR("C.ADDI 31", C_ADDI(31, 31), ADDI(31, 31, 31)),
                PAIR("C.ADDIW overflow", C_ADDIW(6, 1), ADDIW(6, 6, 1), R1(6, 0x7fffffff)),
                PAIR("C.ADDIW 0 (sext.w)", C_ADDIW(7, 0), ADDIW(7, 7, 0), R1(7, 0x12345678fedcba98ULL)),
                PAIR("C.ADDIW -32", C_ADDIW(8, -32), ADDIW(8, 8, -32), R1(8, 0x100000010ULL)),
                PAIR("C.LI -32", C_LI(10, -32), ADDI(10, 0, -32)),
                PAIR("C.LI 31", C_LI(11, 31), ADDI(11, 0, 31)),
                PAIR("C.ADDI16SP -512", C_ADDI16SP(-512), ADDI(2, 2, -512)),
                PAIR("C.ADDI16SP 496", C_ADDI16SP(496), ADDI(2, 2, 496)),
                PAIR("C.ADDI16SP -16", C_ADDI16SP(-16), ADDI(2, 2, -16)),
                PAIR("C.LUI negative (-1 << 12)", C_LUI(5, -4096), LUI(5, 0xfffff)),
                PAIR("C.LUI max positive", C_LUI(6, 0x1f000), LUI(6, 0x1f)),
                PAIR("C.LUI most negative", C_LUI(7, -0x20000), LUI(7, 0xfffe0)),
                PAIR("C.SRLI 63", C_SRLI(8, 63), SRLI(8, 8, 63), R1(8, 1ULL << 63)),
                PAIR("C.SRLI 1", C_SRLI(9, 1), SRLI(9, 9, 1), R1(9, UINT64_MAX)),
                PAIR("C.SRAI 63", C_SRAI(10, 63), SRAI(10, 10, 63), R1(10, 1ULL << 63)),
                PAIR("C.SRAI 32", C_SRAI(11, 32), SRAI(11, 11, 32), R1(11, 0x8000000000000000ULL)),
                PAIR("C.ANDI -32", C_ANDI(12, -32), ANDI(12, 12, -32)),
                PAIR("C.ANDI 31", C_ANDI(13, 31), ANDI(13, 13, 31)),
                PAIR("C.ANDI -1", C_ANDI(14, -1), ANDI(14, 14, -1)),
                PAIR("C.SUB", C_SUB(8, 9), SUB(8, 8, 9)),
                PAIR("C.XOR", C_XOR(10, 11), XOR(10, 10, 11)),
                PAIR("C.OR", C_OR(12, 13), OR(12, 12, 13)),
                PAIR("C.AND", C_AND(14, 15), AND(14, 14, 15)),
                PAIR("C.SUBW", C_SUBW(8, 9), SUBW(8, 8, 9)),
                PAIR("C.SUBW to negative", C_SUBW(8, 9), SUBW(8, 8, 9), R2(8, 0, 9, 1)),
                PAIR("C.ADDW", C_ADDW(10, 11), ADDW(10, 10, 11)),
                PAIR("C.ADDW overflow", C_ADDW(10, 11), ADDW(10, 10, 11), R2(10, 0x7fffffff, 11, 1)),
                PAIR("C.J max", C_J(2046), JAL(0, 2046)),
                PAIR("C.J min", C_J(-2048), JAL(0, -2048)),
                PAIR("C.J small", C_J(0x2a), JAL(0, 0x2a)),
                PAIR("C.BEQZ taken max", C_BEQZ(8, 254), BEQ(8, 0, 254), R1(8, 0)),
                PAIR("C.BEQZ taken min", C_BEQZ(8, -256), BEQ(8, 0, -256), R1(8, 0)),
                PAIR("C.BEQZ not taken", C_BEQZ(9, 16), BEQ(9, 0, 16), R1(9, 1)),
                PAIR("C.BNEZ taken", C_BNEZ(10, -2), BNE(10, 0, -2), R1(10, 1ULL << 63)),
                PAIR("C.BNEZ not taken", C_BNEZ(11, 100), BNE(11, 0, 100), R1(11, 0)),
                PAIR("C.SLLI 63", C_SLLI(5, 63), SLLI(5, 5, 63)),
                PAIR("C.SLLI 1", C_SLLI(31, 1), SLLI(31, 31, 1)),
                PAIR("C.LWSP max", C_LWSP(5, 252), LW(5, 2, 252)),
                PAIR("C.LDSP max", C_LDSP(6, 504), LD(6, 2, 504)),
                PAIR("C.FLDSP max", C_FLDSP(7, 504), FLD(7, 2, 504)),
                PAIR("C.SWSP max", C_SWSP(7, 252), SW(7, 2, 252)),
                PAIR("C.SDSP max", C_SDSP(8, 504), SD(8, 2, 504)),
                PAIR("C.FSDSP max", C_FSDSP(9, 504), FSD(9, 2, 504)),
                PAIR("C.MV", C_MV(5, 6), ADD(5, 0, 6)),
                PAIR("C.ADD", C_ADD(7, 8), ADD(7, 7, 8)),
                PAIR("C.JR", C_JR(9), JALR(0, 9, 0), R1(9, CODE_BASE + 0x400)),
                PAIR("C.JR clears bit 0", C_JR(9), JALR(0, 9, 0), R1(9, CODE_BASE + 0x401)),
                PAIR("C.JALR", C_JALR(10), JALR(1, 10, 0), R1(10, CODE_BASE + 0x600), .link = true),
                PAIR("C.JALR ra (rs1 == rd)", C_JALR(1), JALR(1, 1, 0), R1(1, CODE_BASE + 0x800), .link = true),
                PAIR("C.EBREAK", C_EBREAK(), EBREAK()),
        };

        for (size_t k = 0; k < ELEMENTSOF(pairs); k++)
                run_pair(&pairs[k]);
}

/* ---- reserved encodings and HINTs ---- */

static void test_reserved(void) {
        static const struct {
                const char *name;
                uint16_t c;
        } cases[] = {
                { "all-zero instruction", 0x0000 },
                { "C.ADDI4SPN with imm 0", 0x0004 | (7 << 2) },
                { "Q0 funct3 100 (reserved)", 0x8000 },
                { "C.ADDIW rd=0", 0x2001 | (5 << 2) },
                { "C.ADDI16SP imm 0", 0x6101 },
                { "C.LUI imm 0 (rd=x1)", 0x6081 },
                { "C.LUI imm 0 (rd=x0)", 0x6001 },
                { "C.SUBW-space funct2 10", 0x9c41 },
                { "C.SUBW-space funct2 11", 0x9c61 },
                { "C.LWSP rd=0", 0x4002 | (1 << 4) },
                { "C.LDSP rd=0", 0x6002 | (1 << 5) },
                { "C.JR rs1=0", 0x8002 },
        };

        for (size_t k = 0; k < ELEMENTSOF(cases); k++) {
                _cleanup_th_ TestHart *t = th_new();
                Hart *h = &t->hart;

                th_emit16(t, cases[k].c);
                CHECK_EQ_U64(rvc_expand(cases[k].c), 0, "rvc_expand(%s) = 0", cases[k].name);
                th_run(t, 1);
                CHECK(h->pc == MTRAP_BASE && h->mcause == RV_CAUSE_ILLEGAL_INSTRUCTION && h->mepc == CODE_BASE &&
                      h->mtval == cases[k].c,
                      "%s (%04x): illegal instruction, mtval = 16-bit instruction (mcause 0x%llx, mtval 0x%llx)",
                      cases[k].name, cases[k].c, (unsigned long long) h->mcause, (unsigned long long) h->mtval);
        }
}

static void test_fp_needs_fs(void) {
        _cleanup_th_ TestHart *t = th_new();
        Hart *h = &t->hart;
        uint16_t c = C_FLDSP(3, 8);

        h->x[2] = SP_VALUE;
        h->mstatus &= ~RV_MSTATUS_FS;
        th_emit16(t, c);
        th_run(t, 1);
        CHECK(h->mcause == RV_CAUSE_ILLEGAL_INSTRUCTION && h->mtval == c,
              "C.FLDSP with mstatus.FS = Off is illegal, mtval = 16-bit instruction");
}

static void test_hints(void) {
        static const struct {
                const char *name;
                uint16_t c;
        } cases[] = {
                { "C.NOP with imm != 0", C_ADDI(0, 5) },
                { "C.ADDI with imm 0", C_ADDI(5, 0) },
                { "C.LI rd=0", C_LI(0, 7) },
                { "C.LUI rd=0", C_LUI(0, 0x3000) },
                { "C.SLLI rd=0", C_SLLI(0, 3) },
                { "C.SLLI shamt 0", C_SLLI(5, 0) },
                { "C.SRLI shamt 0", C_SRLI(8, 0) },
                { "C.SRAI shamt 0", C_SRAI(9, 0) },
                { "C.MV rd=0", C_MV(0, 5) },
                { "C.ADD rd=0", C_ADD(0, 5) },
        };

        for (size_t k = 0; k < ELEMENTSOF(cases); k++) {
                _cleanup_th_ TestHart *t = th_new();
                Hart *h = &t->hart;

                for (unsigned r = 1; r < 32; r++)
                        h->x[r] = r * 0x0101010101010101ULL;
                th_emit16(t, cases[k].c);
                th_run(t, 1);
                bool same = true;
                for (unsigned r = 1; r < 32; r++)
                        same = same && h->x[r] == r * 0x0101010101010101ULL;
                CHECK(h->pc == CODE_BASE + 2 && h->x[0] == 0 && same, "HINT %s (%04x) executes as a no-op",
                      cases[k].name, cases[k].c);
        }
}

/* 16- and 32-bit instructions mixed, incl. a 32-bit one at pc % 4 == 2 and one across a page boundary. */
static void test_mixed_stream(void) {
        _cleanup_th_ TestHart *t = th_new();
        Hart *h = &t->hart;
        const uint64_t page = CODE_BASE + 0x3000;

        th_org(t, page - 8);
        th_emit16(t, C_LI(10, 1));                    /* page - 8 */
        th_emit(t, ADDI(10, 10, 100));                  /* page - 6: at pc % 4 == 2 */
        th_emit(t, ADDI(11, 10, 5));                    /* page - 2: straddles the boundary */
        th_emit16(t, C_ADDI(11, 1));                    /* page + 2 */
        th_emit(t, WFI());
        h->pc = page - 8;
        HartExit e = th_run(t, 100);
        CHECK(e == HART_EXIT_WFI && h->x[10] == 101 && h->x[11] == 107 && h->pc == page + 8,
              "mixed 16/32-bit stream with a 32-bit instruction across a page boundary (x10 %llu, x11 %llu)",
              (unsigned long long) h->x[10], (unsigned long long) h->x[11]);
}

int main(void) {
        test_encoders();
        test_expand_q0();
        test_expand_q1();
        test_expand_q2();
        test_expand_all();
        test_execute();
        test_reserved();
        test_fp_needs_fs();
        test_hints();
        test_mixed_stream();
        return tap_finish();
}
