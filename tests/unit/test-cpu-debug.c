/* SPDX-License-Identifier: MIT */
/*
 * The debugger's hooks in the hart (cpu/debug.c): breakpoints stop before
 * the instruction and let it run on resume, a step executes exactly one
 * instruction, watchpoints stop before the access of their kind only, and
 * memory reads through the page tables leave accessed bits alone and never
 * reach a device. Run on every engine: with a point set, each stops at the
 * same place.
 */

#include <errno.h>
#include <string.h>

#include "harness.h"
#include "macro.h"
#include "tap.h"

#define PT_ROOT (RAM_BASE + 0x80000)
#define PT_L1 (RAM_BASE + 0x81000)
#define PT_L0 (RAM_BASE + 0x82000)
#define VA_DATA 0x40000000ULL

/* x5++, x6++, sd x5 -> 0(x10), ld x7 <- 8(x10), loop. */
static uint64_t emit_loop(TestHart *t) {
        th_org(t, CODE_BASE);
        uint64_t start = th_emit(t, ADDI(5, 5, 1));
        th_emit(t, ADDI(6, 6, 1));
        th_emit(t, SD(5, 10, 0));
        th_emit(t, LD(7, 10, 8));
        th_emit(t, JAL(0, -16));
        return start;
}

static void restart(TestHart *t) {
        th_jump(t, CODE_BASE, PRIV_M);
        t->hart.x[5] = t->hart.x[6] = t->hart.x[7] = 0;
        t->hart.x[10] = DATA_BASE;
        th_store(t, DATA_BASE, 8, 0);
        th_store(t, DATA_BASE + 8, 8, 42);
}

static void test_breakpoint(TestHart *t) {
        Hart *h = &t->hart;
        HartDebugStop s;

        restart(t);
        CHECK(hart_debug_add(h, HART_DEBUG_EXEC, CODE_BASE + 4, 0) == 0, "a breakpoint is set");
        CHECK(hart_debug_add(h, HART_DEBUG_EXEC, CODE_BASE + 4, 0) == -EEXIST, "the same breakpoint twice is refused");
        CHECK(th_run(t, 1000) == HART_EXIT_DEBUG, "hart_run stops at the breakpoint");
        s = hart_debug_take_stop(h);
        CHECK(s.reason == HART_STOP_BREAKPOINT && h->pc == CODE_BASE + 4 && h->x[5] == 1 && h->x[6] == 0,
              "before the instruction at the breakpoint (pc %#llx, x5 %llu, x6 %llu)", (unsigned long long) h->pc,
              (unsigned long long) h->x[5], (unsigned long long) h->x[6]);
        CHECK(hart_debug_take_stop(h).reason == HART_STOP_NONE, "the stop reason is taken once");

        CHECK(th_run(t, 1000) == HART_EXIT_DEBUG && h->pc == CODE_BASE + 4 && h->x[6] == 0,
              "without resume it stays at the breakpoint");
        hart_debug_resume(h);
        CHECK(th_run(t, 1000) == HART_EXIT_DEBUG && h->pc == CODE_BASE + 4 && h->x[5] == 2 && h->x[6] == 1,
              "resumed, it runs the loop once and stops there again");

        CHECK(hart_debug_remove(h, HART_DEBUG_EXEC, CODE_BASE + 4, 0) == 0, "the breakpoint is removed");
        CHECK(hart_debug_remove(h, HART_DEBUG_EXEC, CODE_BASE + 4, 0) == -ENOENT, "removing it again fails");
        CHECK(th_run(t, 1000) == HART_EXIT_BUDGET && h->x[5] > 100, "without breakpoints the hart runs on");
}

static void test_step(TestHart *t) {
        Hart *h = &t->hart;

        restart(t);
        for (unsigned i = 0; i < 5; i++) {
                hart_debug_resume(h);
                hart_debug_step(h, true);
                uint64_t pc = h->pc, instret = h->instret;
                HartExit e = th_run(t, 1000);
                HartDebugStop s = hart_debug_take_stop(h);
                CHECK(e == HART_EXIT_DEBUG && s.reason == HART_STOP_STEP && h->instret == instret + 1 &&
                              h->pc == (i == 4 ? CODE_BASE : pc + 4),
                      "step %u executes one instruction (pc %#llx -> %#llx)", i, (unsigned long long) pc,
                      (unsigned long long) h->pc);
        }
        CHECK(h->x[5] == 1 && h->x[6] == 1 && h->x[7] == 42, "the steps did what the instructions do");

        /* A step holds interrupts off: it stays on the next instruction. */
        th_csr_write(t, CSR_MIE, MIP_MSIP);
        th_csr_write(t, CSR_MSTATUS, th_csr(t, CSR_MSTATUS) | MSTATUS_MIE);
        hart_set_irq(h, MIP_MSIP, true);
        hart_debug_step(h, true);
        CHECK(th_run(t, 1000) == HART_EXIT_DEBUG && h->pc == CODE_BASE + 4, "a pending interrupt does not divert a step");
        hart_set_irq(h, MIP_MSIP, false);
        th_csr_write(t, CSR_MSTATUS, th_csr(t, CSR_MSTATUS) & ~MSTATUS_MIE);
        hart_debug_take_stop(h);
}

static void test_watchpoints(TestHart *t) {
        Hart *h = &t->hart;
        HartDebugStop s;

        restart(t);
        CHECK(hart_debug_add(h, HART_DEBUG_WRITE, DATA_BASE + 4, 2) == 0, "a write watchpoint on 2 bytes is set");
        CHECK(hart_debug_add(h, HART_DEBUG_WRITE, DATA_BASE, 0) == -EINVAL &&
                      hart_debug_add(h, HART_DEBUG_WRITE, DATA_BASE, HART_MAX_WATCH_LEN + 1) == -EINVAL,
              "watchpoints of 0 or too many bytes are refused");
        CHECK(th_run(t, 1000) == HART_EXIT_DEBUG, "the store overlapping it stops the hart");
        s = hart_debug_take_stop(h);
        CHECK(s.reason == HART_STOP_WATCHPOINT && s.kind == HART_DEBUG_WRITE && s.addr == DATA_BASE + 4 &&
                      h->pc == CODE_BASE + 8 && th_load(t, DATA_BASE, 8) == 0,
              "before the store, with the watched address (pc %#llx, addr %#llx)", (unsigned long long) h->pc,
              (unsigned long long) s.addr);
        hart_debug_clear(h);

        restart(t);
        CHECK(hart_debug_add(h, HART_DEBUG_READ, DATA_BASE, 8) == 0, "a read watchpoint on the stored word");
        CHECK(hart_debug_add(h, HART_DEBUG_READ, DATA_BASE + 8, 8) == 0, "a read watchpoint on the loaded word");
        CHECK(th_run(t, 1000) == HART_EXIT_DEBUG, "a read watchpoint stops the hart");
        s = hart_debug_take_stop(h);
        CHECK(s.reason == HART_STOP_WATCHPOINT && s.kind == HART_DEBUG_READ && s.addr == DATA_BASE + 8 &&
                      h->pc == CODE_BASE + 12 && th_load(t, DATA_BASE, 8) == 1,
              "at the load, not at the store (pc %#llx)", (unsigned long long) h->pc);
        hart_debug_clear(h);

        restart(t);
        CHECK(hart_debug_add(h, HART_DEBUG_ACCESS, DATA_BASE, 1) == 0, "an access watchpoint");
        CHECK(th_run(t, 1000) == HART_EXIT_DEBUG && hart_debug_take_stop(h).kind == HART_DEBUG_ACCESS &&
                      h->pc == CODE_BASE + 8,
              "an access watchpoint fires on the store");
        hart_debug_clear(h);
        CHECK(!h->debug_active && th_run(t, 1000) == HART_EXIT_BUDGET, "cleared, the hart runs without checks");
}

static void test_memory(TestHart *t) {
        Hart *h = &t->hart;
        uint8_t buf[16];
        uint64_t v;

        /* root[1] -> L1[0] -> L0[0]: VA_DATA -> DATA_BASE, R W, A and D clear. */
        for (unsigned i = 0; i < 3 * 512; i++)
                th_store(t, PT_ROOT + 8 * i, 8, 0);
        th_store(t, PT_ROOT + 8, 8, (PT_L1 >> 12) << 10 | RV_PTE_V);
        th_store(t, PT_L1, 8, (PT_L0 >> 12) << 10 | RV_PTE_V);
        uint64_t leaf = (DATA_BASE >> 12) << 10 | RV_PTE_V | RV_PTE_R | RV_PTE_W;
        th_store(t, PT_L0, 8, leaf);
        th_store(t, DATA_BASE, 8, 0x1122334455667788ULL);
        th_csr_write(t, CSR_SATP, RV_SATP_SV39 | (PT_ROOT >> 12));
        th_set_priv(t, PRIV_S);

        CHECK(hart_debug_read_memory(h, VA_DATA, &v, 8, true) == 0 && v == 0x1122334455667788ULL,
              "a virtual read goes through satp");
        CHECK(th_load(t, PT_L0, 8) == leaf, "and sets no accessed bit in the PTE");
        CHECK(hart_debug_read_memory(h, VA_DATA + 0x1000, buf, 8, true) == -EFAULT, "an unmapped page is refused");
        CHECK(hart_debug_read_memory(h, VA_DATA + 0xff8, buf, 16, true) == -EFAULT,
              "a read running into an unmapped page is refused");
        uint64_t before = th_load(t, DATA_BASE + 0xff8, 8);
        v = 0xabcdef;
        CHECK(hart_debug_write_memory(h, VA_DATA + 0xffc, &v, 8, true) == -EFAULT &&
                      th_load(t, DATA_BASE + 0xff8, 8) == before,
              "a write running into an unmapped page is refused and changes nothing");
        CHECK(hart_debug_write_memory(h, VA_DATA + 8, &v, 8, true) == 0 && th_load(t, DATA_BASE + 8, 8) == 0xabcdef &&
                      th_load(t, PT_L0, 8) == leaf,
              "a virtual write lands in RAM, setting no dirty bit");
        CHECK(hart_debug_read_memory(h, DATA_BASE, &v, 8, false) == 0 && v == 0x1122334455667788ULL,
              "a physical read takes the address as it is");
        CHECK(hart_debug_read_memory(h, 0x10000000ULL, buf, 4, false) == -EFAULT,
              "a device's address (not RAM) is refused");
        CHECK(hart_debug_read_memory(h, RAM_BASE + RAM_SIZE - 4, buf, 8, false) == -EFAULT,
              "a read past the end of RAM is refused");
        th_set_priv(t, PRIV_M);
        th_csr_write(t, CSR_SATP, 0);
}

/* A debugger patching code that has run (a JIT has translated it): the next run executes the patch. */
static void test_patch_code(TestHart *t) {
        Hart *h = &t->hart;
        uint32_t add2 = ADDI(5, 5, 2), add1 = ADDI(5, 5, 1);

        restart(t);
        CHECK(th_run(t, 1000) == HART_EXIT_BUDGET && h->x[5] > 100, "the loop runs (and is translated by a JIT)");
        CHECK(hart_debug_write_memory(h, CODE_BASE, &add2, 4, false) == 0, "its first instruction is patched");
        restart(t);
        HartExit e = th_run(t, 1000);
        CHECK(e == HART_EXIT_BUDGET && h->x[6] > 100 && (h->x[5] == 2 * h->x[6] || h->x[5] == 2 * h->x[6] + 2),
              "the loop runs the patched instruction (x5 %llu, x6 %llu)", (unsigned long long) h->x[5],
              (unsigned long long) h->x[6]);
        CHECK(hart_debug_write_memory(h, CODE_BASE, &add1, 4, false) == 0, "the patch is undone");
}

int main(void) {
        _cleanup_th_ TestHart *t = th_new();

        th_pmp_allow_all(t);
        emit_loop(t);
        test_breakpoint(t);
        test_step(t);
        test_watchpoints(t);
        test_memory(t);
        test_patch_code(t);
        return tap_finish();
}
