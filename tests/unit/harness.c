/* SPDX-License-Identifier: MIT */

/*
 * The CPU tests' machine: RAM, one hart, a fake clock and parked trap
 * handlers. See harness.h for the layout.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static uint64_t fake_time(void *opaque) {
        TestHart *t = opaque;

        return t->now;
}

static void die(const char *what, uint64_t value) {
        fprintf(stderr, "harness: %s 0x%llx\n", what, (unsigned long long) value);
        abort();
}

TestHart *th_new(void) {
        TestHart *t;

        t = calloc(1, sizeof(*t));
        if (!t)
                die("out of memory", sizeof(*t));
        t->mem.ram = calloc(1, RAM_SIZE);
        if (!t->mem.ram)
                die("out of memory", RAM_SIZE);
        t->mem.ram_base = RAM_BASE;
        t->mem.ram_size = RAM_SIZE;

        hart_init(&t->hart, &t->mem, 0);
        t->hart.read_time = fake_time;
        t->hart.time_opaque = t;
        t->hart.pc = CODE_BASE;
        t->hart.mtvec = MTRAP_BASE;
        t->hart.stvec = STRAP_BASE;

        /* Handlers park the hart: wfi; j .-4 */
        th_org(t, MTRAP_BASE);
        th_emit(t, WFI());
        th_emit(t, JAL(0, -4));
        th_org(t, STRAP_BASE);
        th_emit(t, WFI());
        th_emit(t, JAL(0, -4));
        th_org(t, MVEC_BASE);
        for (unsigned i = 0; i < 32; i++)
                th_emit(t, JAL(0, 0));

        /* A recognisable pattern: byte i of DATA holds (i * 37 + 0x81) & 0xff. */
        for (unsigned i = 0; i < 0x10000; i++)
                t->mem.ram[DATA_BASE - RAM_BASE + i] = (uint8_t) (i * 37 + 0x81);

        th_org(t, CODE_BASE);
        th_clear_trap(t);
        return t;
}

void th_free(TestHart *t) {
        hart_destroy(&t->hart);
        free(t->mem.ram);
        free(t);
}

uint8_t *th_ptr(TestHart *t, uint64_t paddr, size_t len) {
        if (paddr < RAM_BASE || paddr - RAM_BASE > RAM_SIZE || len > RAM_SIZE - (paddr - RAM_BASE))
                die("access outside RAM at", paddr);
        return t->mem.ram + (paddr - RAM_BASE);
}

uint64_t th_load(TestHart *t, uint64_t paddr, unsigned size) {
        uint64_t v = 0;

        memcpy(&v, th_ptr(t, paddr, size), size);
        return v;
}

void th_store(TestHart *t, uint64_t paddr, unsigned size, uint64_t value) {
        memcpy(th_ptr(t, paddr, size), &value, size);
}

void th_org(TestHart *t, uint64_t paddr) {
        t->cursor = paddr;
}

uint64_t th_emit(TestHart *t, uint32_t insn) {
        uint64_t at = t->cursor;

        th_store(t, at, 4, insn);
        t->cursor += 4;
        return at;
}

uint64_t th_emit16(TestHart *t, uint16_t insn) {
        uint64_t at = t->cursor;

        th_store(t, at, 2, insn);
        t->cursor += 2;
        return at;
}

void th_set_priv(TestHart *t, unsigned priv) {
        t->hart.priv = priv;
        hart_update_regime(&t->hart);
}

uint64_t th_csr(TestHart *t, unsigned csr) {
        unsigned saved = t->hart.priv;
        uint64_t v;
        int r;

        t->hart.priv = RV_PRIV_M;
        r = csr_read(&t->hart, csr, &v);
        th_set_priv(t, saved);
        if (r < 0)
                die("cannot read CSR", csr);
        return v;
}

void th_csr_write(TestHart *t, unsigned csr, uint64_t value) {
        unsigned saved = t->hart.priv;
        int r;

        t->hart.priv = RV_PRIV_M;
        r = csr_write(&t->hart, csr, value);
        th_set_priv(t, saved);
        if (r < 0)
                die("cannot write CSR", csr);
}

HartExit th_run(TestHart *t, uint64_t n) {
        atomic_store(&t->hart.kick, false);
        return hart_run(&t->hart, n);
}

void th_clear_trap(TestHart *t) {
        t->hart.mcause = t->hart.mtval = NO_TRAP;
        t->hart.scause = t->hart.stval = NO_TRAP;
}

void th_jump(TestHart *t, uint64_t pc, unsigned priv) {
        t->hart.pc = pc;
        t->hart.in_wfi = false;
        th_set_priv(t, priv);
}

bool th_in_mtrap(TestHart *t) {
        return t->hart.pc >= MTRAP_BASE && t->hart.pc < MTRAP_BASE + 8;
}

bool th_in_strap(TestHart *t) {
        return t->hart.pc >= STRAP_BASE && t->hart.pc < STRAP_BASE + 8;
}

void th_pmp_allow_all(TestHart *t) {
        th_csr_write(t, CSR_PMPADDR0, (1ULL << 54) - 1);
        th_csr_write(t, CSR_PMPCFG0, PMPCFG_NAPOT | PMPCFG_R | PMPCFG_W | PMPCFG_X);
}
