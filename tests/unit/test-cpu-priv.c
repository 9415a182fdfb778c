/* SPDX-License-Identifier: MIT */
/*
 * The privileged architecture without paging: CSR access rules and WARL
 * fields, the sstatus/sie/sip views, ECALL causes, trap entry and
 * delegation, MRET/SRET, WFI and its traps, interrupts (enables per mode,
 * delegation, priority, vectored mode, Sstc), counters, mstatus.FS, and
 * access faults on fetch/load/store outside memory.
 *
 * Every test builds a fresh machine whose PMP lets S and U reach memory.
 */

#include "harness.h"
#include "macro.h"
#include "tap.h"

#define INTERRUPT(code) (RV_CAUSE_INTERRUPT | (code))
#define MPP(p) ((uint64_t) (p) << RV_MSTATUS_MPP_SHIFT)
#define FS_INITIAL (1ULL << RV_MSTATUS_FS_SHIFT)
#define FS_DIRTY (3ULL << RV_MSTATUS_FS_SHIFT)
#define MENVCFG_STCE (1ULL << 63)

static TestHart *machine(void) {
        TestHart *t = th_new();

        th_pmp_allow_all(t);
        return t;
}

/* Places 'code' at CODE_BASE, switches to 'priv' and runs up to 'steps' instructions. */
static HartExit run_code(TestHart *t, unsigned priv, const uint32_t *code, size_t n, uint64_t steps) {
        th_org(t, CODE_BASE);
        for (size_t i = 0; i < n; i++)
                th_emit(t, code[i]);
        th_jump(t, CODE_BASE, priv);
        th_clear_trap(t);
        return th_run(t, steps);
}

#define RUN(t, priv, steps, ...)                                                        \
        run_code(t, priv, (const uint32_t[]) { __VA_ARGS__ },                         \
                 ELEMENTSOF(((const uint32_t[]) { __VA_ARGS__ })), steps)

static bool trapped_m(TestHart *t, uint64_t cause) {
        return th_in_mtrap(t) && t->hart.mcause == cause && t->hart.priv == RV_PRIV_M;
}

static bool illegal_at(TestHart *t, uint64_t pc, uint32_t insn) {
        return trapped_m(t, RV_CAUSE_ILLEGAL_INSTRUCTION) && t->hart.mepc == pc && t->hart.mtval == insn;
}

/* ---- CSR access ---- */

static void test_csr_access(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;
        uint32_t insn;

        insn = CSRRS(5, CSR_MSTATUS, 0);
        RUN(t, RV_PRIV_U, 1, insn);
        CHECK(illegal_at(t, CODE_BASE, insn) && (h->mstatus & RV_MSTATUS_MPP) == MPP(RV_PRIV_U),
              "U reading mstatus: illegal instruction, mtval = instruction, MPP = U");
        RUN(t, RV_PRIV_S, 1, insn);
        CHECK(illegal_at(t, CODE_BASE, insn) && (h->mstatus & RV_MSTATUS_MPP) == MPP(RV_PRIV_S),
              "S reading mstatus: illegal, MPP = S");
        h->x[5] = 0;
        RUN(t, RV_PRIV_S, 1, CSRRS(5, CSR_SSTATUS, 0));
        CHECK(h->pc == CODE_BASE + 4 && h->mcause == NO_TRAP && (h->x[5] & RV_MSTATUS_UXL) == 2ULL << 32,
              "S reading sstatus is legal");
        insn = CSRRS(5, CSR_SSTATUS, 0);
        RUN(t, RV_PRIV_U, 1, insn);
        CHECK(illegal_at(t, CODE_BASE, insn), "U reading sstatus: illegal");
        insn = CSRRS(5, CSR_SATP, 0);
        RUN(t, RV_PRIV_U, 1, insn);
        CHECK(illegal_at(t, CODE_BASE, insn), "U reading satp: illegal");

        insn = CSRRW(0, CSR_CYCLE, 5);
        RUN(t, RV_PRIV_M, 1, insn);
        CHECK(illegal_at(t, CODE_BASE, insn), "writing cycle (read-only) is illegal even in M");
        insn = CSRRWI(0, CSR_CYCLE, 0);
        RUN(t, RV_PRIV_M, 1, insn);
        CHECK(illegal_at(t, CODE_BASE, insn), "CSRRWI x0, cycle, 0 is illegal (CSRRW always writes)");
        h->x[6] = 0;
        insn = CSRRS(5, CSR_CYCLE, 6);
        RUN(t, RV_PRIV_M, 1, insn);
        CHECK(illegal_at(t, CODE_BASE, insn), "CSRRS cycle with rs1 != x0 is illegal even if rs1 holds 0");
        insn = CSRRW(5, CSR_MVENDORID, 6);
        RUN(t, RV_PRIV_M, 1, insn);
        CHECK(illegal_at(t, CODE_BASE, insn), "writing mvendorid (read-only) is illegal");
        RUN(t, RV_PRIV_M, 4, CSRRS(5, CSR_CYCLE, 0), CSRRC(6, CSR_INSTRET, 0), CSRRSI(7, CSR_CYCLE, 0),
            CSRRCI(8, CSR_MHARTID, 0));
        CHECK(h->pc == CODE_BASE + 16 && h->mcause == NO_TRAP,
              "CSRRS/CSRRC with rs1 = x0 and CSRRSI/CSRRCI with uimm 0 on read-only CSRs are legal");

        insn = CSRRS(5, 0x0ff, 0);
        RUN(t, RV_PRIV_M, 1, insn);
        CHECK(illegal_at(t, CODE_BASE, insn), "unknown CSR 0x0ff: illegal");
        insn = CSRRS(5, 0x200, 0);
        RUN(t, RV_PRIV_M, 1, insn);
        CHECK(illegal_at(t, CODE_BASE, insn), "vsstatus without the H extension: illegal");
        insn = CSRRW(0, 0x0ff, 5);
        RUN(t, RV_PRIV_M, 1, insn);
        CHECK(illegal_at(t, CODE_BASE, insn), "unknown CSR with CSRRW rd = x0: illegal");
        insn = CSRRS(5, CSR_PMPCFG0 + 1, 0);
        RUN(t, RV_PRIV_M, 1, insn);
        CHECK(illegal_at(t, CODE_BASE, insn), "pmpcfg1 does not exist on RV64: illegal");
}

static void test_csr_ops(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;

        h->x[6] = 0xf0f0;
        h->x[7] = 0x0ff0;
        h->mscratch = 0x1234;
        RUN(t, RV_PRIV_M, 1, CSRRW(0, CSR_MSCRATCH, 6));
        CHECK(h->mscratch == 0xf0f0 && h->x[0] == 0, "CSRRW rd = x0 writes the CSR");
        RUN(t, RV_PRIV_M, 1, CSRRW(5, CSR_MSCRATCH, 7));
        CHECK(h->x[5] == 0xf0f0 && h->mscratch == 0x0ff0, "CSRRW returns the old value and writes the new one");
        RUN(t, RV_PRIV_M, 1, CSRRS(5, CSR_MSCRATCH, 6));
        CHECK(h->x[5] == 0x0ff0 && h->mscratch == 0xfff0, "CSRRS sets bits");
        RUN(t, RV_PRIV_M, 1, CSRRC(5, CSR_MSCRATCH, 7));
        CHECK(h->x[5] == 0xfff0 && h->mscratch == 0xf000, "CSRRC clears bits");
        RUN(t, RV_PRIV_M, 1, CSRRWI(5, CSR_MSCRATCH, 31));
        CHECK(h->x[5] == 0xf000 && h->mscratch == 31, "CSRRWI writes the zero-extended uimm");
        RUN(t, RV_PRIV_M, 1, CSRRCI(5, CSR_MSCRATCH, 0x11));
        CHECK(h->x[5] == 31 && h->mscratch == 0x0e, "CSRRCI");
        RUN(t, RV_PRIV_M, 1, CSRRSI(5, CSR_MSCRATCH, 0x10));
        CHECK(h->x[5] == 0x0e && h->mscratch == 0x1e, "CSRRSI");
        h->x[6] = 0xabc;
        RUN(t, RV_PRIV_M, 1, CSRRW(6, CSR_MSCRATCH, 6));
        CHECK(h->x[6] == 0x1e && h->mscratch == 0xabc, "CSRRW rd == rs1 swaps");
}

static void test_mstatus_warl(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;
        uint64_t v, mpp;

        h->x[6] = MPP(2);
        RUN(t, RV_PRIV_M, 2, CSRRW(0, CSR_MSTATUS, 6), CSRRS(5, CSR_MSTATUS, 0));
        mpp = (h->x[5] & RV_MSTATUS_MPP) >> RV_MSTATUS_MPP_SHIFT;
        CHECK(mpp == 0 || mpp == 1 || mpp == 3, "mstatus.MPP = 2 (reserved) reads back a legal mode (%llu)",
              (unsigned long long) mpp);
        for (unsigned p = 0; p < 4; p++) {
                if (p == 2)
                        continue;
                th_csr_write(t, CSR_MSTATUS, MPP(p));
                CHECK_EQ_U64((th_csr(t, CSR_MSTATUS) & RV_MSTATUS_MPP) >> RV_MSTATUS_MPP_SHIFT, p, "mstatus.MPP = %u holds", p);
        }

        th_csr_write(t, CSR_MSTATUS, 0);
        v = th_csr(t, CSR_MSTATUS);
        CHECK(((v & RV_MSTATUS_UXL) >> 32) == 2 && ((v & RV_MSTATUS_SXL) >> 34) == 2,
              "mstatus.UXL and SXL read 2 (64-bit) after writing 0");
        th_csr_write(t, CSR_MSTATUS, FS_DIRTY);
        CHECK(th_csr(t, CSR_MSTATUS) & RV_MSTATUS_SD, "mstatus.SD is set when FS is Dirty");
        th_csr_write(t, CSR_MSTATUS, FS_INITIAL);
        CHECK(!(th_csr(t, CSR_MSTATUS) & RV_MSTATUS_SD), "mstatus.SD is clear when FS is Initial");
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_SD);
        CHECK(!(th_csr(t, CSR_MSTATUS) & RV_MSTATUS_SD), "mstatus.SD is read-only");

        /* sstatus is a view of mstatus. */
        const uint64_t s_bits = RV_MSTATUS_SIE | RV_MSTATUS_SPIE | RV_MSTATUS_SPP | RV_MSTATUS_FS | RV_MSTATUS_SUM | RV_MSTATUS_MXR;
        const uint64_t m_only = RV_MSTATUS_MIE | RV_MSTATUS_MPIE | RV_MSTATUS_MPP | RV_MSTATUS_MPRV | RV_MSTATUS_TVM |
                RV_MSTATUS_TW | RV_MSTATUS_TSR;
        th_csr_write(t, CSR_MSTATUS, 0);
        h->x[6] = s_bits | m_only;
        RUN(t, RV_PRIV_S, 2, CSRRW(0, CSR_SSTATUS, 6), CSRRS(5, CSR_SSTATUS, 0));
        v = th_csr(t, CSR_MSTATUS);
        CHECK((v & s_bits) == s_bits && !(v & m_only), "writing sstatus changes only the S fields of mstatus");
        CHECK((h->x[5] & (s_bits | RV_MSTATUS_SD)) == (s_bits | RV_MSTATUS_SD) && !(h->x[5] & m_only),
              "sstatus reads the S fields and SD, not the M fields");
        th_csr_write(t, CSR_MSTATUS, m_only & ~RV_MSTATUS_MPRV);
        CHECK_EQ_U64(th_csr(t, CSR_SSTATUS) & ~RV_MSTATUS_UXL, 0, "sstatus hides M-only fields");
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_SIE | RV_MSTATUS_SPP);
        CHECK_EQ_U64(th_csr(t, CSR_SSTATUS) & (RV_MSTATUS_SIE | RV_MSTATUS_SPP), RV_MSTATUS_SIE | RV_MSTATUS_SPP,
                     "mstatus.SIE/SPP show through sstatus");
}

static void test_sie_sip(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;

        th_csr_write(t, CSR_MIDELEG, RV_MIP_SSIP | RV_MIP_STIP);
        th_csr_write(t, CSR_MIE, RV_MIP_MTIP);
        h->x[6] = UINT64_MAX;
        RUN(t, RV_PRIV_S, 2, CSRRW(0, CSR_SIE, 6), CSRRS(5, CSR_SIE, 0));
        CHECK_EQ_U64(th_csr(t, CSR_MIE), RV_MIP_MTIP | RV_MIP_SSIP | RV_MIP_STIP,
                     "sie writes only delegated bits of mie (SEIE not delegated stays 0, MTIE kept)");
        CHECK_EQ_U64(h->x[5], RV_MIP_SSIP | RV_MIP_STIP, "sie reads mie & mideleg");
        RUN(t, RV_PRIV_S, 1, CSRRW(0, CSR_SIE, 0));
        CHECK_EQ_U64(th_csr(t, CSR_MIE), RV_MIP_MTIP, "clearing sie leaves M bits of mie alone");

        th_csr_write(t, CSR_MIP, RV_MIP_SSIP | RV_MIP_STIP | RV_MIP_SEIP);
        RUN(t, RV_PRIV_S, 2, CSRRS(5, CSR_SIP, 0), CSRRW(0, CSR_SIP, 0));
        CHECK_EQ_U64(h->x[5], RV_MIP_SSIP | RV_MIP_STIP, "sip reads only delegated pending bits");
        CHECK_EQ_U64(th_csr(t, CSR_MIP), RV_MIP_STIP | RV_MIP_SEIP, "writing sip clears SSIP only (STIP read-only in sip)");

        th_csr_write(t, CSR_MIDELEG, UINT64_MAX);
        CHECK_EQ_U64(th_csr(t, CSR_MIDELEG) & (RV_MIP_MSIP | RV_MIP_MTIP | RV_MIP_MEIP), 0,
                     "mideleg cannot delegate M-level interrupts");
        CHECK_EQ_U64(th_csr(t, CSR_MIDELEG) & (RV_MIP_SSIP | RV_MIP_STIP | RV_MIP_SEIP), RV_MIP_SSIP | RV_MIP_STIP | RV_MIP_SEIP,
                     "mideleg delegates the S-level interrupts");
        th_csr_write(t, CSR_MEDELEG, UINT64_MAX);
        CHECK(!(th_csr(t, CSR_MEDELEG) & (1ULL << RV_CAUSE_MACHINE_ECALL)) &&
              (th_csr(t, CSR_MEDELEG) & (1ULL << RV_CAUSE_USER_ECALL | 1ULL << RV_CAUSE_ILLEGAL_INSTRUCTION)),
              "medeleg[11] is read-only zero; other exceptions delegable");

        th_csr_write(t, CSR_MIP, 0);
        th_csr_write(t, CSR_MIP, RV_MIP_MSIP | RV_MIP_MTIP | RV_MIP_MEIP);
        CHECK_EQ_U64(th_csr(t, CSR_MIP), 0, "MSIP/MTIP/MEIP are read-only in mip");
        hart_set_external_irq(h, RV_MIP_MTIP, true);
        hart_set_external_irq(h, RV_MIP_MEIP, true);
        CHECK_EQ_U64(th_csr(t, CSR_MIP), RV_MIP_MTIP | RV_MIP_MEIP, "mip shows the device lines");
        hart_set_external_irq(h, RV_MIP_MEIP, false);
        CHECK_EQ_U64(th_csr(t, CSR_MIP), RV_MIP_MTIP, "a lowered line clears its mip bit");
        hart_set_external_irq(h, RV_MIP_MTIP, false);

        /* mip.SEIP reads as software bit | device line, but CSRRS/CSRRC modify only the software bit. */
        hart_set_external_irq(h, RV_MIP_SEIP, true);
        h->x[6] = RV_MIP_SSIP;
        RUN(t, RV_PRIV_M, 2, CSRRS(5, CSR_MIP, 6), CSRRC(0, CSR_MIP, 6));
        CHECK_EQ_U64(h->x[5], RV_MIP_SEIP, "mip.SEIP shows the device line");
        hart_set_external_irq(h, RV_MIP_SEIP, false);
        CHECK_EQ_U64(th_csr(t, CSR_MIP), 0, "CSRRS/CSRRC on mip do not latch the device's SEIP into the software bit");
        h->x[6] = RV_MIP_SEIP;
        RUN(t, RV_PRIV_M, 1, CSRRS(0, CSR_MIP, 6));
        hart_set_external_irq(h, RV_MIP_SEIP, true);
        hart_set_external_irq(h, RV_MIP_SEIP, false);
        CHECK_EQ_U64(th_csr(t, CSR_MIP), RV_MIP_SEIP, "software SEIP stays set after the line drops");
        RUN(t, RV_PRIV_M, 1, CSRRC(0, CSR_MIP, 6));
        CHECK_EQ_U64(th_csr(t, CSR_MIP), 0, "CSRRC clears software SEIP");
}

static void test_misc_csrs(void) {
        _cleanup_th_ TestHart *t = machine();
        uint64_t misa = th_csr(t, CSR_MISA);
        bool all = true;

        for (const char *e = "IMAFDCSU"; *e; e++)
                all = all && (misa >> (*e - 'A') & 1);
        CHECK(misa >> 62 == 2 && all, "misa: MXL = 64-bit, IMAFDCSU");
        CHECK_EQ_U64(th_csr(t, CSR_MHARTID), 0, "mhartid");
        th_csr_write(t, CSR_MEPC, CODE_BASE + 0x103);
        CHECK_EQ_U64(th_csr(t, CSR_MEPC), CODE_BASE + 0x102, "mepc[0] is zero (IALIGN = 16)");
        th_csr_write(t, CSR_SEPC, CODE_BASE + 0x105);
        CHECK_EQ_U64(th_csr(t, CSR_SEPC), CODE_BASE + 0x104, "sepc[0] is zero");
        th_csr_write(t, CSR_MTVEC, MVEC_BASE | 1);
        CHECK_EQ_U64(th_csr(t, CSR_MTVEC), MVEC_BASE | 1, "mtvec holds vectored mode");
        th_csr_write(t, CSR_MTVEC, MVEC_BASE | 2);
        CHECK((th_csr(t, CSR_MTVEC) & 3) <= 1, "mtvec mode 2 (reserved) reads back direct or vectored");
}

/* Sdtrig without triggers: tselect and tdata1-3 read 0 and ignore writes in M; they are M-only. */
static void test_triggers(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;

        h->x[5] = 0x5a;
        h->x[6] = 3;
        RUN(t, PRIV_M, 4, CSRRW(0, 0x7a0, 6), CSRRS(5, 0x7a0, 0), CSRRS(7, 0x7a1, 0), CSRRS(28, 0x7a2, 0));
        CHECK(!th_in_mtrap(t) && h->x[5] == 0, "tselect: a write is ignored, reads 0 (no triggers), no trap");
        CHECK(!th_in_mtrap(t) && h->x[7] == 0 && h->x[28] == 0, "tdata1 and tdata2 read 0");
        RUN(t, PRIV_M, 1, CSRRW(0, 0x7a3, 6));
        CHECK(!th_in_mtrap(t), "writing tdata3 is ignored, no trap");
        RUN(t, PRIV_S, 1, CSRRS(5, 0x7a0, 0));
        CHECK(illegal_at(t, CODE_BASE, CSRRS(5, 0x7a0, 0)), "tselect in S: illegal (an M-mode CSR)");
}

/* ---- traps ---- */

static void test_ecall(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;
        static const struct {
                unsigned priv;
                uint64_t cause;
        } cases[] = {
                { RV_PRIV_U, RV_CAUSE_USER_ECALL },
                { RV_PRIV_S, RV_CAUSE_SUPERVISOR_ECALL },
                { RV_PRIV_M, RV_CAUSE_MACHINE_ECALL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_MIE);
                RUN(t, cases[i].priv, 1, ECALL());
                CHECK(trapped_m(t, cases[i].cause) && h->mepc == CODE_BASE && h->mtval == 0 &&
                      (h->mstatus & RV_MSTATUS_MPP) == MPP(cases[i].priv) && (h->mstatus & RV_MSTATUS_MPIE) &&
                      !(h->mstatus & RV_MSTATUS_MIE),
                      "ECALL from priv %u: mcause %llu, mepc, MPP, MPIE = old MIE, MIE = 0", cases[i].priv,
                      (unsigned long long) cases[i].cause);
        }

        RUN(t, RV_PRIV_M, 1, EBREAK());
        CHECK(trapped_m(t, RV_CAUSE_BREAKPOINT) && h->mepc == CODE_BASE && (h->mtval == 0 || h->mtval == CODE_BASE),
              "EBREAK: breakpoint, mepc = pc, mtval = 0 or pc");
}

static void test_delegation(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;
        uint32_t bad = enc_i(0x03, 7, 5, 6, 0);

        th_csr_write(t, CSR_MEDELEG, 1ULL << RV_CAUSE_USER_ECALL | 1ULL << RV_CAUSE_ILLEGAL_INSTRUCTION |
                                             1ULL << RV_CAUSE_BREAKPOINT);
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_SIE | MPP(RV_PRIV_M));
        RUN(t, RV_PRIV_U, 1, ECALL());
        CHECK(th_in_strap(t) && h->priv == RV_PRIV_S && h->scause == RV_CAUSE_USER_ECALL && h->sepc == CODE_BASE &&
              h->stval == 0 && h->mcause == NO_TRAP,
              "delegated ECALL from U goes to S: scause, sepc, stval");
        CHECK((h->mstatus & (RV_MSTATUS_SPP | RV_MSTATUS_SPIE | RV_MSTATUS_SIE)) == RV_MSTATUS_SPIE &&
              (h->mstatus & RV_MSTATUS_MPP) == MPP(RV_PRIV_M),
              "S trap from U: SPP = U, SPIE = old SIE, SIE = 0, MPP untouched");

        th_csr_write(t, CSR_MSTATUS, 0);
        RUN(t, RV_PRIV_S, 1, bad);
        CHECK(th_in_strap(t) && h->scause == RV_CAUSE_ILLEGAL_INSTRUCTION && h->stval == bad &&
              (h->mstatus & (RV_MSTATUS_SPP | RV_MSTATUS_SPIE)) == RV_MSTATUS_SPP,
              "delegated illegal instruction from S: stval = instruction, SPP = S, SPIE = old SIE (0)");

        RUN(t, RV_PRIV_S, 1, ECALL());
        CHECK(trapped_m(t, RV_CAUSE_SUPERVISOR_ECALL) && h->scause == NO_TRAP && (h->mstatus & RV_MSTATUS_MPP) == MPP(RV_PRIV_S),
              "ECALL from S not delegated (medeleg[9] = 0) goes to M");

        RUN(t, RV_PRIV_M, 1, bad);
        CHECK(illegal_at(t, CODE_BASE, bad) && h->scause == NO_TRAP, "exceptions in M never go to S, even if delegated");
        RUN(t, RV_PRIV_M, 1, EBREAK());
        CHECK(trapped_m(t, RV_CAUSE_BREAKPOINT) && h->scause == NO_TRAP, "EBREAK in M with medeleg[3] set stays in M");

        th_csr_write(t, CSR_STVEC, MVEC_BASE | 1);
        RUN(t, RV_PRIV_U, 1, ECALL());
        CHECK(h->pc == MVEC_BASE && h->scause == RV_CAUSE_USER_ECALL,
              "vectored stvec: exceptions go to the base (pc 0x%llx)", (unsigned long long) h->pc);
}

static void test_mret_sret(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;
        const uint64_t target = CODE_BASE + 0x100;

        th_csr_write(t, CSR_MEPC, target);
        th_csr_write(t, CSR_MSTATUS, MPP(RV_PRIV_U) | RV_MSTATUS_MPIE);
        RUN(t, RV_PRIV_M, 1, MRET());
        CHECK(h->priv == RV_PRIV_U && h->pc == target, "MRET to U: priv and pc from MPP and mepc");
        CHECK((h->mstatus & (RV_MSTATUS_MIE | RV_MSTATUS_MPIE | RV_MSTATUS_MPP)) == (RV_MSTATUS_MIE | RV_MSTATUS_MPIE),
              "MRET: MIE = MPIE, MPIE = 1, MPP = U");

        th_csr_write(t, CSR_MSTATUS, MPP(RV_PRIV_S) | RV_MSTATUS_MIE);
        RUN(t, RV_PRIV_M, 1, MRET());
        CHECK(h->priv == RV_PRIV_S && (h->mstatus & (RV_MSTATUS_MIE | RV_MSTATUS_MPIE | RV_MSTATUS_MPP)) == RV_MSTATUS_MPIE,
              "MRET to S with MPIE = 0: MIE = 0, MPIE = 1, MPP = U");

        th_csr_write(t, CSR_MSTATUS, MPP(RV_PRIV_U) | RV_MSTATUS_MPRV);
        RUN(t, RV_PRIV_M, 1, MRET());
        CHECK(h->priv == RV_PRIV_U && !(h->mstatus & RV_MSTATUS_MPRV), "MRET to U clears MPRV");
        th_csr_write(t, CSR_MSTATUS, MPP(RV_PRIV_M) | RV_MSTATUS_MPRV);
        RUN(t, RV_PRIV_M, 1, MRET());
        CHECK(h->priv == RV_PRIV_M && (h->mstatus & RV_MSTATUS_MPRV), "MRET to M keeps MPRV");

        th_csr_write(t, CSR_SEPC, target);
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_SPIE);
        RUN(t, RV_PRIV_S, 1, SRET());
        CHECK(h->priv == RV_PRIV_U && h->pc == target &&
              (h->mstatus & (RV_MSTATUS_SIE | RV_MSTATUS_SPIE | RV_MSTATUS_SPP)) == (RV_MSTATUS_SIE | RV_MSTATUS_SPIE),
              "SRET to U: SIE = SPIE, SPIE = 1, SPP = U");
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_SPP | RV_MSTATUS_SIE);
        RUN(t, RV_PRIV_S, 1, SRET());
        CHECK(h->priv == RV_PRIV_S && (h->mstatus & (RV_MSTATUS_SIE | RV_MSTATUS_SPIE | RV_MSTATUS_SPP)) == RV_MSTATUS_SPIE,
              "SRET to S with SPIE = 0: SIE = 0, SPP = U");
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_SPP | RV_MSTATUS_MPRV | RV_MSTATUS_TSR);
        RUN(t, RV_PRIV_M, 1, SRET());
        CHECK(h->priv == RV_PRIV_S && h->pc == target && !(h->mstatus & RV_MSTATUS_MPRV),
              "SRET in M is legal (TSR only affects S) and clears MPRV");

        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_SPP);
        RUN(t, RV_PRIV_U, 1, SRET());
        CHECK(illegal_at(t, CODE_BASE, SRET()), "SRET in U: illegal");
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_SPP | RV_MSTATUS_TSR);
        RUN(t, RV_PRIV_S, 1, SRET());
        CHECK(illegal_at(t, CODE_BASE, SRET()), "SRET in S with TSR = 1: illegal");
        th_csr_write(t, CSR_MSTATUS, MPP(RV_PRIV_M));
        RUN(t, RV_PRIV_S, 1, MRET());
        CHECK(illegal_at(t, CODE_BASE, MRET()), "MRET in S: illegal");
        RUN(t, RV_PRIV_U, 1, MRET());
        CHECK(illegal_at(t, CODE_BASE, MRET()), "MRET in U: illegal");
}

static void test_wfi(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;
        HartExit e;

        RUN(t, RV_PRIV_U, 1, WFI());
        CHECK(illegal_at(t, CODE_BASE, WFI()), "WFI in U: illegal");
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_TW);
        RUN(t, RV_PRIV_S, 1, WFI());
        CHECK(illegal_at(t, CODE_BASE, WFI()), "WFI in S with TW = 1: illegal");
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_TW);
        e = RUN(t, RV_PRIV_M, 5, WFI());
        CHECK(e == HART_EXIT_WFI && h->pc == CODE_BASE + 4 && h->mcause == NO_TRAP, "WFI in M with TW = 1 waits");
        th_csr_write(t, CSR_MSTATUS, 0);
        e = RUN(t, RV_PRIV_S, 5, WFI());
        CHECK(e == HART_EXIT_WFI && h->pc == CODE_BASE + 4 && h->priv == RV_PRIV_S && h->mcause == NO_TRAP,
              "WFI in S with TW = 0 waits (hart_run returns HART_EXIT_WFI)");

        /* Wake-up by an interrupt: taken with mepc = the instruction after WFI. */
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_MIE);
        th_csr_write(t, CSR_MIE, RV_MIP_MTIP);
        e = RUN(t, RV_PRIV_M, 5, WFI(), NOP());
        CHECK(e == HART_EXIT_WFI, "WFI with nothing pending waits");
        hart_set_external_irq(h, RV_MIP_MTIP, true);
        th_run(t, 1);
        CHECK(trapped_m(t, INTERRUPT(7)) && h->mepc == CODE_BASE + 4,
              "an interrupt wakes WFI and is taken with mepc after the WFI");
        hart_set_external_irq(h, RV_MIP_MTIP, false);

        /* Pending and enabled in mie but masked by MIE: WFI completes, no trap. */
        th_csr_write(t, CSR_MSTATUS, 0);
        hart_set_external_irq(h, RV_MIP_MTIP, true);
        e = RUN(t, RV_PRIV_M, 3, WFI(), ADDI(5, 0, 1), JAL(0, 0));
        CHECK(e == HART_EXIT_BUDGET && h->x[5] == 1 && h->mcause == NO_TRAP,
              "WFI resumes on a pending interrupt masked by mstatus.MIE, without trapping");
}

/* ---- interrupts ---- */

static void set_pending(TestHart *t, uint64_t bit, bool level) {
        /* Device lines for M-level bits and SEIP; software bits through mip for SSIP/STIP. */
        if (bit & (RV_MIP_MSIP | RV_MIP_MTIP | RV_MIP_MEIP | RV_MIP_SEIP))
                hart_set_external_irq(&t->hart, bit, level);
        else
                th_csr_write(t, CSR_MIP, (t->hart.mip_sw & ~bit) | (level ? bit : 0));
}

static void test_m_interrupts(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;

        th_csr_write(t, CSR_MIE, RV_MIP_MTIP);
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_MIE);
        hart_set_external_irq(h, RV_MIP_MTIP, true);
        CHECK(hart_run(h, 10) == HART_EXIT_KICK, "raising an interrupt line kicks hart_run");
        RUN(t, RV_PRIV_M, 1, NOP(), NOP());
        CHECK(trapped_m(t, INTERRUPT(7)) && h->mcause == 0x8000000000000007ULL && h->mepc == CODE_BASE &&
              h->mtval == 0,
              "MTIP with mie.MTIE and MIE: mcause 0x8000000000000007, mepc = next instruction");
        CHECK((h->mstatus & (RV_MSTATUS_MIE | RV_MSTATUS_MPIE | RV_MSTATUS_MPP)) == (RV_MSTATUS_MPIE | MPP(RV_PRIV_M)),
              "interrupt entry: MPIE = 1, MIE = 0, MPP = M");

        th_csr_write(t, CSR_MSTATUS, 0);
        RUN(t, RV_PRIV_M, 2, NOP(), NOP());
        CHECK(h->pc == CODE_BASE + 8 && h->mcause == NO_TRAP, "not taken in M with MIE = 0");
        RUN(t, RV_PRIV_S, 2, NOP(), NOP());
        CHECK(trapped_m(t, INTERRUPT(7)) && (h->mstatus & RV_MSTATUS_MPP) == MPP(RV_PRIV_S),
              "taken in S regardless of MIE");
        th_csr_write(t, CSR_MSTATUS, 0);
        RUN(t, RV_PRIV_U, 2, NOP(), NOP());
        CHECK(trapped_m(t, INTERRUPT(7)) && (h->mstatus & RV_MSTATUS_MPP) == MPP(RV_PRIV_U),
              "taken in U regardless of MIE");
        th_csr_write(t, CSR_MIE, 0);
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_MIE);
        RUN(t, RV_PRIV_M, 2, NOP(), NOP());
        CHECK(h->pc == CODE_BASE + 8 && h->mcause == NO_TRAP, "not taken with mie.MTIE = 0");

        /* Enabling MIE with a CSR write takes the interrupt before the next instruction. */
        th_csr_write(t, CSR_MIE, RV_MIP_MTIP);
        th_csr_write(t, CSR_MSTATUS, 0);
        RUN(t, RV_PRIV_M, 3, CSRRSI(0, CSR_MSTATUS, RV_MSTATUS_MIE), NOP(), NOP());
        CHECK(trapped_m(t, INTERRUPT(7)) && h->mepc == CODE_BASE + 4,
              "setting mstatus.MIE takes the pending interrupt right after the CSR write");

        /* MRET to U with an M interrupt pending: taken at the first U instruction. */
        th_csr_write(t, CSR_MSTATUS, MPP(RV_PRIV_U));
        th_csr_write(t, CSR_MEPC, CODE_BASE + 0x100);
        RUN(t, RV_PRIV_M, 2, MRET());
        CHECK(trapped_m(t, INTERRUPT(7)) && h->mepc == CODE_BASE + 0x100 && (h->mstatus & RV_MSTATUS_MPP) == MPP(RV_PRIV_U),
              "MRET to U with an interrupt pending: taken at mepc");
        hart_set_external_irq(h, RV_MIP_MTIP, false);

        /* Vectored mtvec: interrupts go to base + 4 * cause, exceptions to base. */
        th_csr_write(t, CSR_MTVEC, MVEC_BASE | 1);
        th_csr_write(t, CSR_MIE, RV_MIP_MTIP | RV_MIP_MEIP);
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_MIE);
        hart_set_external_irq(h, RV_MIP_MTIP, true);
        RUN(t, RV_PRIV_M, 1, NOP());
        CHECK(h->pc == MVEC_BASE + 4 * 7 && h->mcause == INTERRUPT(7), "vectored mtvec: MTI at base + 28 (pc 0x%llx)",
              (unsigned long long) h->pc);
        hart_set_external_irq(h, RV_MIP_MTIP, false);
        hart_set_external_irq(h, RV_MIP_MEIP, true);
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_MIE);
        RUN(t, RV_PRIV_M, 1, NOP());
        CHECK(h->pc == MVEC_BASE + 4 * 11 && h->mcause == INTERRUPT(11), "vectored mtvec: MEI at base + 44");
        hart_set_external_irq(h, RV_MIP_MEIP, false);
        RUN(t, RV_PRIV_M, 1, ECALL());
        CHECK(h->pc == MVEC_BASE && h->mcause == RV_CAUSE_MACHINE_ECALL, "vectored mtvec: exceptions at base");
}

static void test_s_interrupts(void) {
        static const struct {
                uint64_t bit;
                unsigned code;
                const char *name;
        } irqs[] = {
                { RV_MIP_SSIP, 1, "SSI" },
                { RV_MIP_STIP, 5, "STI" },
                { RV_MIP_SEIP, 9, "SEI" },
        };

        for (size_t i = 0; i < ELEMENTSOF(irqs); i++) {
                _cleanup_th_ TestHart *t = machine();
                Hart *h = &t->hart;

                th_csr_write(t, CSR_MIDELEG, irqs[i].bit);
                th_csr_write(t, CSR_MIE, irqs[i].bit);
                set_pending(t, irqs[i].bit, true);

                th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_MIE | RV_MSTATUS_SIE);
                RUN(t, RV_PRIV_M, 2, NOP(), NOP());
                CHECK(h->pc == CODE_BASE + 8 && h->mcause == NO_TRAP && h->scause == NO_TRAP,
                      "delegated %s is never taken in M", irqs[i].name);

                th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_SIE);
                RUN(t, RV_PRIV_S, 1, NOP());
                CHECK(th_in_strap(t) && h->priv == RV_PRIV_S && h->scause == INTERRUPT(irqs[i].code) &&
                      h->sepc == CODE_BASE && h->mcause == NO_TRAP &&
                      (h->mstatus & (RV_MSTATUS_SIE | RV_MSTATUS_SPIE | RV_MSTATUS_SPP)) == (RV_MSTATUS_SPIE | RV_MSTATUS_SPP),
                      "delegated %s taken in S with SIE: scause, sepc, SPP = S, SPIE = 1, SIE = 0", irqs[i].name);

                th_csr_write(t, CSR_MSTATUS, 0);
                RUN(t, RV_PRIV_S, 2, NOP(), NOP());
                CHECK(h->pc == CODE_BASE + 8 && h->scause == NO_TRAP, "delegated %s not taken in S with SIE = 0",
                      irqs[i].name);

                RUN(t, RV_PRIV_U, 1, NOP());
                CHECK(th_in_strap(t) && h->scause == INTERRUPT(irqs[i].code) && !(h->mstatus & RV_MSTATUS_SPP),
                      "delegated %s taken in U regardless of SIE, SPP = U", irqs[i].name);

                th_csr_write(t, CSR_STVEC, MVEC_BASE | 1);
                th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_SIE);
                RUN(t, RV_PRIV_S, 1, NOP());
                CHECK_EQ_U64(h->pc, MVEC_BASE + 4 * irqs[i].code, "vectored stvec: %s at base + 4 * cause",
                             irqs[i].name);

                th_csr_write(t, CSR_MIDELEG, 0);
                th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_MIE | RV_MSTATUS_SIE);
                RUN(t, RV_PRIV_S, 1, NOP());
                CHECK(trapped_m(t, INTERRUPT(irqs[i].code)) && h->scause == NO_TRAP,
                      "%s not delegated goes to M", irqs[i].name);
        }
}

static void test_priority(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;
        static const struct {
                uint64_t bit;
                unsigned code;
        } order[] = {
                { RV_MIP_MEIP, 11 }, { RV_MIP_MSIP, 3 }, { RV_MIP_MTIP, 7 },
                { RV_MIP_SEIP, 9 }, { RV_MIP_SSIP, 1 }, { RV_MIP_STIP, 5 },
        };
        const uint64_t all = RV_MIP_MEIP | RV_MIP_MSIP | RV_MIP_MTIP | RV_MIP_SEIP | RV_MIP_SSIP | RV_MIP_STIP;

        th_csr_write(t, CSR_MIE, all);
        for (size_t i = 0; i < ELEMENTSOF(order); i++)
                set_pending(t, order[i].bit, true);
        for (size_t i = 0; i < ELEMENTSOF(order); i++) {
                th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_MIE);
                th_set_priv(t, RV_PRIV_M);
                CHECK_EQ_U64(hart_pending_interrupt(h), order[i].bit, "hart_pending_interrupt: step %zu", i);
                RUN(t, RV_PRIV_M, 1, NOP());
                CHECK(trapped_m(t, INTERRUPT(order[i].code)), "priority step %zu: cause %u taken (mcause 0x%llx)", i,
                      order[i].code, (unsigned long long) h->mcause);
                set_pending(t, order[i].bit, false);
        }

        /* An interrupt for M beats one for S, whatever their codes. */
        th_csr_write(t, CSR_MIDELEG, RV_MIP_SEIP);
        th_csr_write(t, CSR_MIE, RV_MIP_SEIP | RV_MIP_STIP);
        set_pending(t, RV_MIP_SEIP, true);
        set_pending(t, RV_MIP_STIP, true);
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_SIE);
        RUN(t, RV_PRIV_S, 1, NOP());
        CHECK(trapped_m(t, INTERRUPT(5)) && h->scause == NO_TRAP,
              "non-delegated STI (for M) is taken before delegated SEI (for S)");
}

static void test_sstc(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;

        th_csr_write(t, CSR_MENVCFG, MENVCFG_STCE);
        th_csr_write(t, CSR_MIDELEG, RV_MIP_STIP);
        th_csr_write(t, CSR_MIE, RV_MIP_STIP);
        t->now = 50;
        h->x[6] = 100;
        th_csr_write(t, CSR_MSTATUS, 0);
        RUN(t, RV_PRIV_S, 2, CSRRW(0, CSR_STIMECMP, 6), NOP());
        CHECK(h->pc == CODE_BASE + 8 && h->mcause == NO_TRAP && !(th_csr(t, CSR_MIP) & RV_MIP_STIP),
              "Sstc: S writes stimecmp; STIP clear while time < stimecmp");
        th_csr_write(t, CSR_MIP, RV_MIP_STIP);
        CHECK(!(th_csr(t, CSR_MIP) & RV_MIP_STIP), "Sstc: mip.STIP is not writable");
        t->now = 100;
        CHECK(th_csr(t, CSR_MIP) & RV_MIP_STIP, "Sstc: STIP set once time >= stimecmp");
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_SIE);
        RUN(t, RV_PRIV_S, 1, NOP());
        CHECK(th_in_strap(t) && h->scause == INTERRUPT(5), "Sstc: the timer interrupt is taken in S");

        /* A software STIP written before STCE was set must not raise an interrupt once STCE is on. */
        _cleanup_th_ TestHart *u = machine();
        Hart *hu = &u->hart;
        th_csr_write(u, CSR_MIP, RV_MIP_STIP);
        th_csr_write(u, CSR_MENVCFG, MENVCFG_STCE);
        th_csr_write(u, CSR_STIMECMP, UINT64_MAX);
        th_csr_write(u, CSR_MIDELEG, RV_MIP_STIP);
        th_csr_write(u, CSR_MIE, RV_MIP_STIP);
        th_csr_write(u, CSR_MSTATUS, RV_MSTATUS_SIE);
        CHECK(!(th_csr(u, CSR_MIP) & RV_MIP_STIP), "Sstc: a stale software STIP does not show in mip");
        RUN(u, RV_PRIV_S, 2, NOP(), NOP());
        CHECK(hu->pc == CODE_BASE + 8 && hu->scause == NO_TRAP && hart_pending_interrupt(hu) == 0,
              "Sstc: ... nor raise an interrupt (scause 0x%llx)", (unsigned long long) hu->scause);

        th_csr_write(t, CSR_MENVCFG, 0);
        RUN(t, RV_PRIV_S, 1, CSRRS(5, CSR_STIMECMP, 0));
        CHECK(illegal_at(t, CODE_BASE, CSRRS(5, CSR_STIMECMP, 0)), "stimecmp in S without menvcfg.STCE: illegal");
}

/* ---- counters ---- */

static void test_counters(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;

        t->now = 12345;
        RUN(t, RV_PRIV_M, 1, CSRRS(5, CSR_TIME, 0));
        CHECK_EQ_U64(h->x[5], 12345, "time reads the platform clock");

        RUN(t, RV_PRIV_M, 4, CSRRS(5, CSR_INSTRET, 0), NOP(), NOP(), CSRRS(6, CSR_INSTRET, 0));
        CHECK_EQ_U64(h->x[6] - h->x[5], 3, "instret counts retired instructions");
        h->x[7] = 1000;
        RUN(t, RV_PRIV_M, 4, NOP(), CSRRW(0, 0xb02, 7), CSRRS(5, CSR_INSTRET, 0), CSRRS(6, CSR_INSTRET, 0));
        CHECK(h->x[5] == 1000 && h->x[6] == 1001,
              "a minstret write replaces the writing instruction's own increment (read %llu, %llu)",
              (unsigned long long) h->x[5], (unsigned long long) h->x[6]);

        static const unsigned counters[] = { CSR_CYCLE, CSR_TIME, CSR_INSTRET };
        for (size_t i = 0; i < ELEMENTSOF(counters); i++) {
                uint32_t insn = CSRRS(5, counters[i], 0);

                th_csr_write(t, CSR_MCOUNTEREN, 0);
                th_csr_write(t, CSR_SCOUNTEREN, 0);
                RUN(t, RV_PRIV_S, 1, insn);
                CHECK(illegal_at(t, CODE_BASE, insn), "counter 0x%x in S with mcounteren = 0: illegal", counters[i]);
                th_csr_write(t, CSR_MCOUNTEREN, 1u << i);
                RUN(t, RV_PRIV_S, 1, insn);
                CHECK(h->pc == CODE_BASE + 4, "counter 0x%x in S with mcounteren bit: legal", counters[i]);
                RUN(t, RV_PRIV_U, 1, insn);
                CHECK(illegal_at(t, CODE_BASE, insn), "counter 0x%x in U with scounteren = 0: illegal", counters[i]);
                th_csr_write(t, CSR_SCOUNTEREN, 1u << i);
                RUN(t, RV_PRIV_U, 1, insn);
                CHECK(h->pc == CODE_BASE + 4, "counter 0x%x in U with both enables: legal", counters[i]);
                th_csr_write(t, CSR_MCOUNTEREN, 0);
                RUN(t, RV_PRIV_U, 1, insn);
                CHECK(illegal_at(t, CODE_BASE, insn), "counter 0x%x in U needs mcounteren too", counters[i]);
        }
}

/* ---- mstatus.FS ---- */

static void test_fs(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;
        uint32_t insn;

        h->x[6] = DATA_BASE;
        th_csr_write(t, CSR_MSTATUS, 0);
        insn = FLD(1, 6, 0);
        RUN(t, RV_PRIV_M, 1, insn);
        CHECK(illegal_at(t, CODE_BASE, insn), "FLD with FS = Off: illegal");
        insn = FMADD_D(4, 1, 2, 3);
        RUN(t, RV_PRIV_M, 1, insn);
        CHECK(illegal_at(t, CODE_BASE, insn), "FMADD.D with FS = Off: illegal, mtval = instruction");
        insn = CSRRS(5, CSR_FCSR, 0);
        RUN(t, RV_PRIV_M, 1, insn);
        CHECK(illegal_at(t, CODE_BASE, insn), "fcsr with FS = Off: illegal");

        th_csr_write(t, CSR_MSTATUS, FS_INITIAL);
        RUN(t, RV_PRIV_M, 1, FLD(1, 6, 0));
        CHECK(h->pc == CODE_BASE + 4 && h->fpu.f[1] == th_load(t, DATA_BASE, 8), "FLD with FS = Initial loads");
        CHECK((th_csr(t, CSR_MSTATUS) & (RV_MSTATUS_FS | RV_MSTATUS_SD)) == (FS_DIRTY | RV_MSTATUS_SD),
              "an FP register write makes FS Dirty and SD set");
        CHECK(th_csr(t, CSR_SSTATUS) & RV_MSTATUS_SD, "sstatus.SD mirrors it");

        th_csr_write(t, CSR_MSTATUS, FS_INITIAL);
        h->fpu.f[1] = 0x4000000000000000ULL; /* 2.0 */
        h->fpu.f[2] = 0x4008000000000000ULL; /* 3.0 */
        h->fpu.f[3] = 0x3ff0000000000000ULL; /* 1.0 */
        RUN(t, RV_PRIV_M, 1, FMADD_D(4, 1, 2, 3));
        CHECK(h->pc == CODE_BASE + 4 && h->fpu.f[4] == 0x401c000000000000ULL, "FMADD.D (R4 format) 2*3+1 = 7");
}

/* ---- access faults ---- */

static void test_access_faults(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;
        const uint64_t ram_end = RAM_BASE + RAM_SIZE;

        th_org(t, ram_end - 2);
        th_emit16(t, C_NOP());
        th_jump(t, ram_end - 2, RV_PRIV_M);
        th_clear_trap(t);
        th_run(t, 2);
        CHECK(trapped_m(t, RV_CAUSE_FETCH_ACCESS) && h->mepc == ram_end && h->mtval == ram_end,
              "a 16-bit instruction at the end of RAM runs; the next fetch is an access fault");

        th_org(t, ram_end - 2);
        th_emit16(t, 0x0013); /* low half of "addi x0, x0, 0" */
        th_jump(t, ram_end - 2, RV_PRIV_M);
        th_clear_trap(t);
        th_run(t, 1);
        CHECK(trapped_m(t, RV_CAUSE_FETCH_ACCESS) && h->mepc == ram_end - 2 && h->mtval == ram_end,
              "a 32-bit instruction straddling the end of RAM: mepc = its start, mtval = the faulting half");

        h->x[6] = 0x1000;
        RUN(t, RV_PRIV_M, 1, JALR(0, 6, 0));
        th_run(t, 1);
        CHECK(trapped_m(t, RV_CAUSE_FETCH_ACCESS) && h->mepc == 0x1000 && h->mtval == 0x1000,
              "jumping to unmapped memory: fetch access fault");

        RUN(t, RV_PRIV_M, 1, LD(5, 6, 8));
        CHECK(trapped_m(t, RV_CAUSE_LOAD_ACCESS) && h->mtval == 0x1008, "load from unmapped memory: cause 5, mtval");
        RUN(t, RV_PRIV_M, 1, SW(5, 6, 4));
        CHECK(trapped_m(t, RV_CAUSE_STORE_ACCESS) && h->mtval == 0x1004, "store to unmapped memory: cause 7, mtval");
        RUN(t, RV_PRIV_M, 1, AMO(AMO_ADD, 3, 5, 6, 5));
        CHECK(trapped_m(t, RV_CAUSE_STORE_ACCESS) && h->mtval == 0x1000, "AMO on unmapped memory: cause 7");
}

int main(void) {
        test_csr_access();
        test_csr_ops();
        test_mstatus_warl();
        test_sie_sip();
        test_misc_csrs();
        test_triggers();
        test_ecall();
        test_delegation();
        test_mret_sret();
        test_wfi();
        test_m_interrupts();
        test_s_interrupts();
        test_priority();
        test_sstc();
        test_counters();
        test_fs();
        test_access_faults();
        return tap_finish();
}
