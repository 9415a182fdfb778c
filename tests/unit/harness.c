/* SPDX-License-Identifier: MIT */

/*
 * The CPU tests' machine: RAM, one hart, a fake clock and parked trap
 * handlers. See harness.h for the layout.
 */

#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/jit/jit.h"
#include "harness.h"

#define ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

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

        /*
         * A program's TestHart (megabytes, mostly TLB and decode cache) is
         * cleared by hart_init(): keep it in the heap, reused from one
         * program to the next, rather than in fresh pages faulted in anew
         * for each of hundreds of programs.
         */
        mallopt(M_MMAP_THRESHOLD, 64 << 20);
        mallopt(M_TRIM_THRESHOLD, 256 << 20);
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

        const char *engine = getenv("ORRERY_CPU_ENGINE");
        if (engine)
                th_use_engine(t, engine);
        return t;
}

void th_use_engine(TestHart *t, const char *engine) {
        bool lockstep = strcmp(engine, "lockstep") == 0;

        if (strcmp(engine, "interp") == 0) {
                hart_set_engine(&t->hart, HART_ENGINE_INTERP);
                return;
        }
        if (strcmp(engine, "jit") != 0 && !lockstep)
                die("unknown engine, length", strlen(engine));
        if (hart_set_engine(&t->hart, HART_ENGINE_JIT) < 0)
                die("no JIT on this host", 0);
        if (lockstep && !t->shadow) {
                t->shadow_mem = t->mem;
                t->shadow_mem.ram = calloc(1, RAM_SIZE);
                t->shadow = calloc(1, sizeof(Hart));
                if (!t->shadow_mem.ram || !t->shadow)
                        die("out of memory", RAM_SIZE);
                hart_init(t->shadow, &t->shadow_mem, 0);
        }
}

void th_free(TestHart *t) {
        if (t->shadow) {
                hart_destroy(t->shadow);
                free(t->shadow);
                free(t->shadow_mem.ram);
        }
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
        /* Written behind the hart's back, like DMA: translations of the page are stale. */
        jit_invalidate_page(t->hart.jit, paddr);
        jit_invalidate_page(t->hart.jit, paddr + size - 1);
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

/* Makes the shadow hart an exact copy of the hart under test, memory included. */
static void lockstep_sync(TestHart *t) {
        Hart *s = t->shadow;
        pthread_mutex_t lock = s->wfi_lock;
        pthread_cond_t cond = s->wfi_cond;

        memcpy(s, &t->hart, offsetof(Hart, tlb));
        s->wfi_lock = lock;
        s->wfi_cond = cond;
        s->jit = NULL;
        /* Same devices (MMIO regions added since), own RAM. */
        uint8_t *ram = t->shadow_mem.ram;
        t->shadow_mem = t->mem;
        t->shadow_mem.ram = ram;
        s->mem = &t->shadow_mem;
        hart_tlb_flush_all(s);
        hart_update_regime(s);
        memcpy(t->shadow_mem.ram, t->mem.ram, RAM_SIZE);
}

#define CHECK_FIELD(f)                                                                          \
        do {                                                                                    \
                if (a->f != b->f) {                                                             \
                        fprintf(stderr, "lockstep: %s differs after block %llu ending at pc 0x%llx: " \
                                "jit 0x%llx, interpreter 0x%llx\n", #f,                         \
                                (unsigned long long) t->lockstep_blocks, (unsigned long long) b->pc, \
                                (unsigned long long) a->f, (unsigned long long) b->f);          \
                        abort();                                                                \
                }                                                                               \
        } while (0)

static void lockstep_compare(TestHart *t) {
        const Hart *a = &t->hart, *b = t->shadow;

        for (unsigned i = 0; i < 32; i++)
                CHECK_FIELD(x[i]);
        for (unsigned i = 0; i < 32; i++)
                CHECK_FIELD(fpu.f[i]);
        CHECK_FIELD(fpu.fflags);
        CHECK_FIELD(fpu.frm);
        CHECK_FIELD(pc);
        CHECK_FIELD(priv);
        CHECK_FIELD(instret);
        CHECK_FIELD(mstatus);
        CHECK_FIELD(mepc);
        CHECK_FIELD(mcause);
        CHECK_FIELD(mtval);
        CHECK_FIELD(sepc);
        CHECK_FIELD(scause);
        CHECK_FIELD(stval);
        CHECK_FIELD(satp);
        CHECK_FIELD(mip_sw);
        CHECK_FIELD(reservation);
        CHECK_FIELD(in_wfi);
}

static uint64_t tap_read(void *opaque, uint64_t offset, unsigned size) {
        struct MmioTap *m = opaque;
        TestHart *t = m->t;
        uint64_t v = m->ops->read ? m->ops->read(m->opaque, offset, size) : 0;

        if (t->mmio_tail - t->mmio_head == ELEMENTS(t->mmio_values))
                die("lockstep: too many MMIO reads in one run:", ELEMENTS(t->mmio_values));
        t->mmio_values[t->mmio_tail++ % ELEMENTS(t->mmio_values)] = v;
        return v;
}

static void tap_write(void *opaque, uint64_t offset, uint64_t value, unsigned size) {
        struct MmioTap *m = opaque;

        if (m->ops->write)
                m->ops->write(m->opaque, offset, value, size);
}

static uint64_t replay_read(void *opaque, uint64_t offset, unsigned size) {
        TestHart *t = opaque;

        if (t->mmio_head == t->mmio_tail) {
                fprintf(stderr, "lockstep: the interpreter read MMIO (offset 0x%llx) the JIT did not\n",
                        (unsigned long long) offset);
                abort();
        }
        return t->mmio_values[t->mmio_head++ % ELEMENTS(t->mmio_values)];
}

static void replay_write(void *opaque, uint64_t offset, uint64_t value, unsigned size) {
}

static const MmioOps tap_ops = { .read = tap_read, .write = tap_write };
static const MmioOps replay_ops = { .read = replay_read, .write = replay_write };

/* Devices see the hart under test; the twin gets the values it read. */
static void lockstep_tap_devices(TestHart *t) {
        t->mmio_head = t->mmio_tail = 0;
        for (unsigned i = 0; i < t->mem.n_regions; i++) {
                MmioRegion *r = &t->mem.regions[i];
                t->taps[i] = (struct MmioTap) { .t = t, .ops = r->ops, .opaque = r->opaque };
                r->ops = &tap_ops;
                r->opaque = &t->taps[i];
                t->shadow_mem.regions[i].ops = &replay_ops;
                t->shadow_mem.regions[i].opaque = t;
        }
}

static void lockstep_untap_devices(TestHart *t) {
        for (unsigned i = 0; i < t->mem.n_regions; i++) {
                t->mem.regions[i].ops = t->taps[i].ops;
                t->mem.regions[i].opaque = t->taps[i].opaque;
        }
        if (t->mmio_head != t->mmio_tail) {
                fprintf(stderr, "lockstep: the JIT read MMIO the interpreter did not\n");
                abort();
        }
}

static HartExit lockstep_run(TestHart *t, uint64_t n) {
        uint64_t total = 0;
        HartExit r = HART_EXIT_BUDGET;

        lockstep_sync(t);
        lockstep_tap_devices(t);
        jit_set_single_block(t->hart.jit, true);
        while (total < n) {
                JitStats before, after;
                uint64_t k;

                jit_get_stats(t->hart.jit, &before);
                atomic_store(&t->hart.kick, false);
                r = hart_run(&t->hart, n - total);
                jit_get_stats(t->hart.jit, &after);
                k = after.retired - before.retired;
                if (k > 0) {
                        atomic_store(&t->shadow->kick, false);
                        hart_run(t->shadow, k);
                }
                t->lockstep_blocks++;
                lockstep_compare(t);
                total += k;
                if (r == HART_EXIT_WFI || k == 0)
                        break;
        }
        atomic_store(&t->hart.kick, false);
        lockstep_untap_devices(t);
        if (memcmp(t->mem.ram, t->shadow_mem.ram, RAM_SIZE) != 0) {
                fprintf(stderr, "lockstep: memory differs after %llu blocks\n", (unsigned long long) t->lockstep_blocks);
                abort();
        }
        return r == HART_EXIT_WFI ? HART_EXIT_WFI : HART_EXIT_BUDGET;
}

HartExit th_run(TestHart *t, uint64_t n) {
        if (t->shadow)
                return lockstep_run(t, n);
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
