/* SPDX-License-Identifier: MIT */
/*
 * RAM dirty tracking for live migration, on whichever engine
 * $ORRERY_CPU_ENGINE selects: once tracking is on and the hart dropped its
 * write TLB entries, exactly the pages the guest writes (plain stores,
 * AMOs, a store that straddles two pages) are reported, including pages
 * whose write entry existed before the round began; pages only read are
 * not. A loop runs each store many times, so the translating engine runs
 * them from translated code, through its inline TLB lookup.
 */

#include "cpu/jit/jit.h"
#include "harness.h"
#include "macro.h"
#include "tap.h"

#define PAGE(i) (DATA_BASE + 0x1000ULL * (i))
#define PAGE_INDEX(pa) (((pa) - RAM_BASE) >> 12)
#define ITERATIONS 200

static TestHart *t;

/*
 * x10, x11: stored to (sd) each iteration; x12: loaded from; x13: AMO
 * target (amoadd.d, only when x14 is non-zero); x5: iterations. Ends
 * spinning on "j .".
 */
static void emit_program(void) {
        th_org(t, CODE_BASE);
        uint64_t loop = th_emit(t, SD(2, 10, 0));
        th_emit(t, SD(2, 11, 0));
        th_emit(t, LD(3, 12, 0));
        th_emit(t, BEQ(14, 0, 8));
        th_emit(t, AMO(AMO_ADD, 3, 4, 13, 2));
        th_emit(t, ADDI(5, 5, -1));
        uint64_t branch = th_emit(t, 0);
        th_store(t, branch, 4, BNE(5, 0, (int32_t) (loop - branch)));
        th_emit(t, JAL(0, 0));
}

static void run(uint64_t store_a, uint64_t store_b, uint64_t load, uint64_t amo) {
        Hart *h = &t->hart;

        h->x[2] = 0x1234;
        h->x[5] = ITERATIONS;
        h->x[10] = store_a;
        h->x[11] = store_b;
        h->x[12] = load;
        h->x[13] = amo;
        h->x[14] = amo != 0;
        th_jump(t, CODE_BASE, PRIV_M);
        th_clear_trap(t);
        th_run(t, ITERATIONS * 8 + 16);
}

/* Takes the bitmap and compares it with the expected pages (RAM page indices). */
static void check_dirty(const uint64_t *want, size_t n_want, const char *what) {
        bool expected[RAM_SIZE / 4096] = {};
        unsigned wrong = 0, missing = 0;

        for (size_t i = 0; i < n_want; i++)
                expected[want[i]] = true;
        for (size_t w = 0; w < t->mem.ram_dirty_words; w++) {
                uint64_t bits = physmem_ram_take_dirty(&t->mem, w);
                for (unsigned b = 0; b < 64; b++) {
                        size_t page = w * 64 + b;
                        bool dirty = bits >> b & 1;
                        if (page >= ELEMENTSOF(expected))
                                continue;
                        if (dirty && !expected[page])
                                wrong++;
                        if (!dirty && expected[page])
                                missing++;
                }
        }
        CHECK(wrong == 0 && missing == 0, "%s (%u unexpected, %u missing)", what, wrong, missing);
}

int main(void) {
        _cleanup_th_ TestHart *owned = th_new();

        t = owned;
        emit_program();

        /* Before tracking: write entries for pages 0 and 1 are installed. */
        run(PAGE(0), PAGE(1), PAGE(2), 0);
        CHECK_EQ_U64(t->hart.x[5], 0, "the loop ran to the end");

        CHECK(physmem_ram_dirty_start(&t->mem) == 0, "tracking starts");
        hart_drop_write_tlb(&t->hart);

        run(PAGE(0), PAGE(0) + 8, PAGE(2), 0);
        CHECK_EQ_U64(t->hart.x[5], 0, "round 1 ran to the end");
        check_dirty((const uint64_t[]) { PAGE_INDEX(PAGE(0)) }, 1,
                    "round 1: only the page stored to, whose write entry predates the round");
        if (t->hart.jit) {
                /* Translated code refills the entries dropped for the round without leaving the block. */
                JitStats st;
                jit_get_stats(t->hart.jit, &st);
                CHECK(st.tlb_refills > 0 && st.tlb_exits == 0,
                      "JIT: the TLB misses were refilled in translated code (%llu refills, %llu exits)",
                      (unsigned long long) st.tlb_refills, (unsigned long long) st.tlb_exits);
        }

        /* The next round: bitmap taken above, entries dropped again. */
        hart_drop_write_tlb(&t->hart);
        run(PAGE(1), PAGE(3), PAGE(0), 0);
        check_dirty((const uint64_t[]) { PAGE_INDEX(PAGE(1)), PAGE_INDEX(PAGE(3)) }, 2,
                    "round 2: the two pages stored to, not the one read");

        hart_drop_write_tlb(&t->hart);
        run(PAGE(5) - 4, PAGE(4), PAGE(4), PAGE(7));
        check_dirty((const uint64_t[]) { PAGE_INDEX(PAGE(4)), PAGE_INDEX(PAGE(5)), PAGE_INDEX(PAGE(7)) }, 3,
                    "round 3: a store across pages marks both, an AMO its page");

        hart_drop_write_tlb(&t->hart);
        run(PAGE(8), PAGE(8), PAGE(8), 0);
        run(PAGE(8), PAGE(8), PAGE(8), 0);
        check_dirty((const uint64_t[]) { PAGE_INDEX(PAGE(8)) }, 1, "a page stored to twice is reported once");

        physmem_ram_dirty_stop(&t->mem);
        hart_drop_write_tlb(&t->hart);
        run(PAGE(9), PAGE(10), PAGE(11), PAGE(12));
        check_dirty(NULL, 0, "nothing is marked with tracking off");

        physmem_ram_dirty_free(&t->mem);
        return tap_finish();
}
