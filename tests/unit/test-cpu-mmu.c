/* SPDX-License-Identifier: MIT */
/*
 * Sv39 (and Sv48 when satp accepts it) and PMP: page tables built in RAM,
 * accesses made by real loads, stores and jumps in S- and U-mode, checked
 * against the privileged spec's walk: leaf sizes, superpage alignment,
 * V/R/W/X/U permissions with SUM and MXR, hardware A/D updates, canonical
 * addresses, SFENCE.VMA, satp WARL, ASIDs, and PMP matching/priority/locking.
 *
 * Traps are not delegated: every fault lands in the M handler (M-mode runs
 * untranslated), which is where mcause/mtval/mepc are checked.
 */

#include "harness.h"
#include "macro.h"
#include "tap.h"

#define RWX_AD (RV_PTE_V | RV_PTE_R | RV_PTE_W | RV_PTE_X | RV_PTE_A | RV_PTE_D)

#define PT_ROOT (RAM_BASE + 0x80000)
#define PT_L1 (RAM_BASE + 0x81000)
#define PT_L0 (RAM_BASE + 0x82000)
#define UCODE_PA (RAM_BASE + 0x3000)

/* Virtual addresses (root[1] -> L1 -> L0 for the 4 KiB pages). */
#define VA_PAGE(i) (0x40000000ULL + 0x1000ULL * (i))
#define VA_UCODE VA_PAGE(0)             /* U R X          -> UCODE_PA */
#define VA_SDATA VA_PAGE(1)             /* R W            -> DATA_BASE */
#define VA_UDATA VA_PAGE(2)             /* U R W          -> DATA_BASE + 0x1000 */
#define VA_XONLY VA_PAGE(3)             /* X              -> DATA_BASE + 0x2000 */
#define VA_INVALID VA_PAGE(4)           /* V = 0 */
#define VA_WONLY VA_PAGE(5)             /* W without R (reserved) */
#define VA_RONLY VA_PAGE(6)             /* R              -> DATA_BASE */
#define VA_NOAD VA_PAGE(7)              /* R W, A = D = 0 -> DATA_BASE + 0x3000 */
#define VA_UXONLY VA_PAGE(8)            /* U X            -> DATA_BASE + 0x4000 */
#define VA_SWAP VA_PAGE(9)              /* R W            -> DATA_BASE + 0x5000 (later 0x6000) */
#define VA_URONLY VA_PAGE(10)           /* U R            -> DATA_BASE + 0x1000 */
#define VA_PBMT VA_PAGE(11)             /* R W with reserved bit 61 set */
#define VA_MEGA 0x40200000ULL           /* 2 MiB leaf     -> RAM_BASE */
#define VA_MEGA_BAD 0x40400000ULL       /* 2 MiB leaf with a misaligned PPN */
#define VA_NONLEAF_A 0x40600000ULL      /* L1 pointer with A set (reserved) */
#define VA_GIGA 0xc0000000ULL           /* 1 GiB leaf     -> RAM_BASE (R W, no X) */
#define VA_GIGA_BAD 0x100000000ULL      /* 1 GiB leaf with a misaligned PPN */

static uint64_t pte(uint64_t pa, uint64_t flags) {
        return (pa >> 12) << 10 | flags;
}

static void set_pte(TestHart *t, uint64_t table, unsigned index, uint64_t value) {
        th_store(t, table + 8 * index, 8, value);
}

static void build_tables(TestHart *t) {
        for (unsigned i = 0; i < 3 * 512; i++)
                th_store(t, PT_ROOT + 8 * i, 8, 0);

        set_pte(t, PT_ROOT, 1, pte(PT_L1, RV_PTE_V));
        set_pte(t, PT_ROOT, 2, pte(RAM_BASE, RWX_AD));                          /* identity, S only */
        set_pte(t, PT_ROOT, 3, pte(RAM_BASE, RV_PTE_V | RV_PTE_R | RV_PTE_W | RV_PTE_A | RV_PTE_D));
        set_pte(t, PT_ROOT, 4, pte(RAM_BASE + 0x200000, RWX_AD));               /* not 1 GiB aligned */

        set_pte(t, PT_L1, 0, pte(PT_L0, RV_PTE_V));
        set_pte(t, PT_L1, 1, pte(RAM_BASE, RWX_AD));
        set_pte(t, PT_L1, 2, pte(RAM_BASE + 0x1000, RWX_AD));                   /* not 2 MiB aligned */
        set_pte(t, PT_L1, 3, pte(PT_L0, RV_PTE_V | RV_PTE_A));

        set_pte(t, PT_L0, 0, pte(UCODE_PA, RV_PTE_V | RV_PTE_R | RV_PTE_X | RV_PTE_U | RV_PTE_A));
        set_pte(t, PT_L0, 1, pte(DATA_BASE, RV_PTE_V | RV_PTE_R | RV_PTE_W | RV_PTE_A | RV_PTE_D));
        set_pte(t, PT_L0, 2, pte(DATA_BASE + 0x1000, RV_PTE_V | RV_PTE_R | RV_PTE_W | RV_PTE_U | RV_PTE_A | RV_PTE_D));
        set_pte(t, PT_L0, 3, pte(DATA_BASE + 0x2000, RV_PTE_V | RV_PTE_X | RV_PTE_A));
        set_pte(t, PT_L0, 4, pte(DATA_BASE, RV_PTE_R | RV_PTE_W | RV_PTE_A | RV_PTE_D));    /* V = 0 */
        set_pte(t, PT_L0, 5, pte(DATA_BASE, RV_PTE_V | RV_PTE_W | RV_PTE_A | RV_PTE_D));
        set_pte(t, PT_L0, 6, pte(DATA_BASE, RV_PTE_V | RV_PTE_R | RV_PTE_A));
        set_pte(t, PT_L0, 7, pte(DATA_BASE + 0x3000, RV_PTE_V | RV_PTE_R | RV_PTE_W));
        set_pte(t, PT_L0, 8, pte(DATA_BASE + 0x4000, RV_PTE_V | RV_PTE_X | RV_PTE_U | RV_PTE_A));
        set_pte(t, PT_L0, 9, pte(DATA_BASE + 0x5000, RV_PTE_V | RV_PTE_R | RV_PTE_W | RV_PTE_A | RV_PTE_D));
        set_pte(t, PT_L0, 10, pte(DATA_BASE + 0x1000, RV_PTE_V | RV_PTE_R | RV_PTE_U | RV_PTE_A));
        set_pte(t, PT_L0, 11, pte(DATA_BASE, RV_PTE_V | RV_PTE_R | RV_PTE_W | RV_PTE_A | RV_PTE_D) | 1ULL << 61);
}

static TestHart *machine(void) {
        TestHart *t = th_new();

        th_pmp_allow_all(t);
        build_tables(t);
        th_csr_write(t, CSR_SATP, RV_SATP_SV39 | PT_ROOT >> 12);
        return t;
}

enum {
        LOAD,
        STORE,
        FETCH,
        AMOADD,         /* amoadd.d x6, x7, (x5) */
        LRD,            /* lr.d x6, (x5) */
};

/*
 * Makes one access to 'va' from 'priv' (S runs at CODE_BASE, U at VA_UCODE, or
 * at UCODE_PA when satp is Bare):
 * LOAD is "ld x6, 0(x5)", STORE "sd x7, 0(x5)", FETCH "jalr x0, 0(x5)" onto
 * an ECALL placed at the target's physical address 'fetch_pa'. Returns 0 on
 * success (the loaded value in *ret_value), else mcause.
 */
static uint64_t access_pa(TestHart *t, unsigned priv, int type, uint64_t va, uint64_t fetch_pa, uint64_t store_value,
                          uint64_t *ret_value) {
        Hart *h = &t->hart;
        bool bare = th_csr(t, CSR_SATP) == 0;
        uint64_t code_va = priv == RV_PRIV_U ? (bare ? UCODE_PA : VA_UCODE) : CODE_BASE;
        uint64_t code_pa = priv == RV_PRIV_U ? UCODE_PA : CODE_BASE;
        uint32_t insn = type == LOAD ? LD(6, 5, 0) : type == STORE ? SD(7, 5, 0) : type == FETCH ? JALR(0, 5, 0) :
                type == AMOADD ? AMO(AMO_ADD, 3, 6, 5, 7) : LR_D(6, 5);

        th_org(t, code_pa);
        th_emit(t, insn);
        if (type == FETCH) {
                th_org(t, fetch_pa);
                th_emit(t, ECALL());
        }
        h->x[5] = va;
        h->x[6] = NO_TRAP;
        h->x[7] = store_value;
        th_jump(t, code_va, priv);
        th_clear_trap(t);
        th_run(t, type == FETCH ? 2 : 1);

        if (type == FETCH) {
                uint64_t ecall = priv == RV_PRIV_U ? RV_CAUSE_USER_ECALL : RV_CAUSE_SUPERVISOR_ECALL;
                return h->mcause == ecall && h->mepc == va ? 0 : h->mcause;
        }
        if (h->pc == code_va + 4) {
                if (ret_value)
                        *ret_value = h->x[6];
                return 0;
        }
        return h->mcause;
}

static uint64_t load(TestHart *t, unsigned priv, uint64_t va, uint64_t *ret_value) {
        return access_pa(t, priv, LOAD, va, 0, 0, ret_value);
}

static uint64_t store(TestHart *t, unsigned priv, uint64_t va, uint64_t value) {
        return access_pa(t, priv, STORE, va, 0, value, NULL);
}

static uint64_t fetch(TestHart *t, unsigned priv, uint64_t va, uint64_t pa) {
        return access_pa(t, priv, FETCH, va, pa, 0, NULL);
}

static void test_leaf_sizes(void) {
        _cleanup_th_ TestHart *t = machine();
        uint64_t v = 0, pa = 0;

        CHECK(load(t, RV_PRIV_S, VA_SDATA + 8, &v) == 0 && v == th_load(t, DATA_BASE + 8, 8), "4 KiB page: S load");
        th_set_priv(t, RV_PRIV_S);
        CHECK(mmu_translate(&t->hart, VA_SDATA + 0x123, ACCESS_READ, &pa) == 0 && pa == DATA_BASE + 0x123,
              "4 KiB page: mmu_translate keeps the page offset");
        CHECK(store(t, RV_PRIV_S, VA_SDATA + 16, 0x1122334455667788ULL) == 0 &&
              th_load(t, DATA_BASE + 16, 8) == 0x1122334455667788ULL, "4 KiB page: S store");

        CHECK(load(t, RV_PRIV_S, VA_MEGA + (DATA_BASE - RAM_BASE) + 0x18, &v) == 0 && v == th_load(t, DATA_BASE + 0x18, 8),
              "2 MiB megapage: S load");
        CHECK(fetch(t, RV_PRIV_S, VA_MEGA + 0x4000, RAM_BASE + 0x4000) == 0, "2 MiB megapage: S fetch");
        th_set_priv(t, RV_PRIV_S);
        CHECK(mmu_translate(&t->hart, VA_MEGA + 0xabcde, ACCESS_WRITE, &pa) == 0 && pa == RAM_BASE + 0xabcde,
              "2 MiB megapage: the low 21 bits come from the address");

        CHECK(load(t, RV_PRIV_S, VA_GIGA + (DATA_BASE - RAM_BASE) + 0x20, &v) == 0 && v == th_load(t, DATA_BASE + 0x20, 8),
              "1 GiB gigapage: S load");
        CHECK(store(t, RV_PRIV_S, VA_GIGA + (DATA_BASE - RAM_BASE) + 0x28, 42) == 0 && th_load(t, DATA_BASE + 0x28, 8) == 42,
              "1 GiB gigapage: S store");
        th_set_priv(t, RV_PRIV_S);
        CHECK(mmu_translate(&t->hart, VA_GIGA + 0xfedcb, ACCESS_READ, &pa) == 0 && pa == RAM_BASE + 0xfedcb,
              "1 GiB gigapage: the low 30 bits come from the address");
        CHECK_EQ_U64(fetch(t, RV_PRIV_S, VA_GIGA + 0x4000, RAM_BASE + 0x4000), RV_CAUSE_FETCH_PAGE_FAULT,
                     "gigapage without X: fetch page fault");

        CHECK_EQ_U64(load(t, RV_PRIV_S, VA_MEGA_BAD + 8, NULL), RV_CAUSE_LOAD_PAGE_FAULT, "misaligned megapage: page fault");
        CHECK_EQ_U64(t->hart.mtval, VA_MEGA_BAD + 8, "misaligned megapage: mtval = virtual address");
        CHECK_EQ_U64(load(t, RV_PRIV_S, VA_GIGA_BAD + 8, NULL), RV_CAUSE_LOAD_PAGE_FAULT, "misaligned gigapage: page fault");
        CHECK_EQ_U64(load(t, RV_PRIV_S, VA_NONLEAF_A, NULL), RV_CAUSE_LOAD_PAGE_FAULT,
                     "non-leaf PTE with A set (reserved): page fault");
        CHECK_EQ_U64(load(t, RV_PRIV_S, VA_PBMT, NULL), RV_CAUSE_LOAD_PAGE_FAULT,
                     "PTE with PBMT bits set (Svpbmt not implemented): page fault");
}

static void test_invalid(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;
        const uint64_t va = VA_INVALID + 0x10;

        CHECK(load(t, RV_PRIV_S, va, NULL) == RV_CAUSE_LOAD_PAGE_FAULT && h->mtval == va && h->mepc == CODE_BASE,
              "V = 0: load page fault (13), mtval = VA, mepc = the load");
        CHECK(store(t, RV_PRIV_S, va, 1) == RV_CAUSE_STORE_PAGE_FAULT && h->mtval == va,
              "V = 0: store page fault (15), mtval = VA");
        CHECK(fetch(t, RV_PRIV_S, va, DATA_BASE) == RV_CAUSE_FETCH_PAGE_FAULT && h->mtval == va && h->mepc == va,
              "V = 0: fetch page fault (12), mtval = mepc = VA");
        CHECK(load(t, RV_PRIV_U, va, NULL) == RV_CAUSE_LOAD_PAGE_FAULT && h->mtval == va && h->mepc == VA_UCODE,
              "V = 0 from U: load page fault, mepc = the U load");

        CHECK(load(t, RV_PRIV_S, VA_WONLY, NULL) == RV_CAUSE_LOAD_PAGE_FAULT && h->mtval == VA_WONLY,
              "W without R: load page fault");
        CHECK_EQ_U64(store(t, RV_PRIV_S, VA_WONLY, 1), RV_CAUSE_STORE_PAGE_FAULT, "W without R: store page fault");
        CHECK_EQ_U64(store(t, RV_PRIV_S, VA_RONLY, 1), RV_CAUSE_STORE_PAGE_FAULT, "read-only page: store page fault");
        CHECK_EQ_U64(load(t, RV_PRIV_S, VA_RONLY, NULL), 0, "read-only page: load");
        CHECK_EQ_U64(fetch(t, RV_PRIV_S, VA_RONLY, DATA_BASE), RV_CAUSE_FETCH_PAGE_FAULT, "page without X: fetch page fault");

        static const uint64_t noncanonical[] = { 0x0000004000000000ULL, 0x8000000000000000ULL, 0xffffff0000000000ULL };
        for (size_t i = 0; i < ELEMENTSOF(noncanonical); i++) {
                uint64_t a = noncanonical[i];
                CHECK(load(t, RV_PRIV_S, a, NULL) == RV_CAUSE_LOAD_PAGE_FAULT && h->mtval == a &&
                      store(t, RV_PRIV_S, a, 0) == RV_CAUSE_STORE_PAGE_FAULT &&
                      fetch(t, RV_PRIV_S, a, DATA_BASE) == RV_CAUSE_FETCH_PAGE_FAULT,
                      "non-canonical 0x%llx: page faults for load, store, fetch", (unsigned long long) a);
        }
        th_set_priv(t, RV_PRIV_S);
        CHECK(mmu_translate(h, 0x0000004000000000ULL, ACCESS_READ, &(uint64_t) { 0 }) == RV_CAUSE_LOAD_PAGE_FAULT,
              "mmu_translate reports the page fault cause");
}

static void test_amo(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;
        uint64_t v = 0;

        th_store(t, DATA_BASE + 0x40, 8, 100);
        CHECK(access_pa(t, RV_PRIV_S, AMOADD, VA_SDATA + 0x40, 0, 5, &v) == 0 && v == 100 &&
              th_load(t, DATA_BASE + 0x40, 8) == 105, "AMOADD.D through a 4 KiB mapping");
        CHECK(access_pa(t, RV_PRIV_S, AMOADD, VA_RONLY + 0x40, 0, 5, NULL) == RV_CAUSE_STORE_PAGE_FAULT &&
              h->mtval == VA_RONLY + 0x40 && th_load(t, DATA_BASE + 0x40, 8) == 105,
              "AMO on a read-only page: store/AMO page fault (15), memory unchanged");
        CHECK_EQ_U64(access_pa(t, RV_PRIV_S, AMOADD, VA_INVALID, 0, 5, NULL), RV_CAUSE_STORE_PAGE_FAULT,
                     "AMO on an invalid page: store/AMO page fault (15), not a load fault");
        CHECK(access_pa(t, RV_PRIV_S, LRD, VA_RONLY + 0x40, 0, 0, &v) == 0 && v == 105, "LR.D on a read-only page");
        CHECK_EQ_U64(access_pa(t, RV_PRIV_S, LRD, VA_INVALID, 0, 0, NULL), RV_CAUSE_LOAD_PAGE_FAULT,
                     "LR.D on an invalid page: load page fault (13)");
        CHECK_EQ_U64(access_pa(t, RV_PRIV_U, AMOADD, VA_URONLY, 0, 1, NULL), RV_CAUSE_STORE_PAGE_FAULT,
                     "U AMO on a U read-only page: store/AMO page fault");
        CHECK_EQ_U64(access_pa(t, RV_PRIV_U, AMOADD, VA_UDATA, 0, 1, NULL), 0, "U AMO on a U page");
}

static void test_user_supervisor(void) {
        _cleanup_th_ TestHart *t = machine();
        uint64_t v = 0;

        th_csr_write(t, CSR_MSTATUS, 0);
        CHECK_EQ_U64(load(t, RV_PRIV_S, VA_UDATA, NULL), RV_CAUSE_LOAD_PAGE_FAULT, "S load from a U page without SUM: fault");
        CHECK_EQ_U64(store(t, RV_PRIV_S, VA_UDATA, 1), RV_CAUSE_STORE_PAGE_FAULT, "S store to a U page without SUM: fault");
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_SUM);
        CHECK(load(t, RV_PRIV_S, VA_UDATA + 8, &v) == 0 && v == th_load(t, DATA_BASE + 0x1008, 8),
              "S load from a U page with SUM");
        CHECK(store(t, RV_PRIV_S, VA_UDATA, 7) == 0 && th_load(t, DATA_BASE + 0x1000, 8) == 7, "S store to a U page with SUM");
        CHECK_EQ_U64(fetch(t, RV_PRIV_S, VA_UCODE + 0x100, UCODE_PA + 0x100), RV_CAUSE_FETCH_PAGE_FAULT,
                     "S never executes a U page, even with SUM");
        th_csr_write(t, CSR_MSTATUS, 0);

        CHECK(load(t, RV_PRIV_U, VA_UDATA + 8, &v) == 0 && v == th_load(t, DATA_BASE + 0x1008, 8), "U load from a U page");
        CHECK(store(t, RV_PRIV_U, VA_UDATA, 9) == 0 && th_load(t, DATA_BASE + 0x1000, 8) == 9, "U store to a U page");
        CHECK_EQ_U64(fetch(t, RV_PRIV_U, VA_UCODE + 0x100, UCODE_PA + 0x100), 0, "U fetch from a U page");
        CHECK_EQ_U64(load(t, RV_PRIV_U, VA_SDATA, NULL), RV_CAUSE_LOAD_PAGE_FAULT, "U load from an S page: fault");
        CHECK_EQ_U64(store(t, RV_PRIV_U, VA_SDATA, 1), RV_CAUSE_STORE_PAGE_FAULT, "U store to an S page: fault");
        CHECK_EQ_U64(fetch(t, RV_PRIV_U, CODE_BASE + 0x100, CODE_BASE + 0x100), RV_CAUSE_FETCH_PAGE_FAULT,
                     "U fetch from an S page: fault");
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_SUM);
        CHECK_EQ_U64(load(t, RV_PRIV_U, VA_SDATA, NULL), RV_CAUSE_LOAD_PAGE_FAULT, "SUM does not open S pages to U");
        CHECK_EQ_U64(store(t, RV_PRIV_U, VA_URONLY, 1), RV_CAUSE_STORE_PAGE_FAULT, "U store to a U read-only page: fault");
}

static void test_mxr(void) {
        _cleanup_th_ TestHart *t = machine();
        uint64_t v = 0;

        th_csr_write(t, CSR_MSTATUS, 0);
        CHECK_EQ_U64(load(t, RV_PRIV_S, VA_XONLY, NULL), RV_CAUSE_LOAD_PAGE_FAULT, "execute-only page: S load faults without MXR");
        CHECK_EQ_U64(fetch(t, RV_PRIV_S, VA_XONLY + 0x40, DATA_BASE + 0x2040), 0, "execute-only page: S fetch");
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_MXR);
        CHECK(load(t, RV_PRIV_S, VA_XONLY + 8, &v) == 0 && v == th_load(t, DATA_BASE + 0x2008, 8),
              "MXR: S load from an execute-only page");
        CHECK_EQ_U64(store(t, RV_PRIV_S, VA_XONLY, 1), RV_CAUSE_STORE_PAGE_FAULT, "MXR does not allow stores");
        CHECK(load(t, RV_PRIV_U, VA_UXONLY + 8, &v) == 0 && v == th_load(t, DATA_BASE + 0x4008, 8),
              "MXR: U load from a U execute-only page");
        th_csr_write(t, CSR_MSTATUS, 0);
        CHECK_EQ_U64(load(t, RV_PRIV_U, VA_UXONLY, NULL), RV_CAUSE_LOAD_PAGE_FAULT, "without MXR: U load from execute-only faults");
}

static void test_accessed_dirty(void) {
        _cleanup_th_ TestHart *t = machine();
        const uint64_t pte_addr = PT_L0 + 8 * 7;

        CHECK_EQ_U64(th_load(t, pte_addr, 8) & (RV_PTE_A | RV_PTE_D), 0, "A/D: PTE starts with A = D = 0");
        CHECK_EQ_U64(load(t, RV_PRIV_S, VA_NOAD, NULL), 0, "A/D: load from a page with A = 0 succeeds");
        CHECK_EQ_U64(th_load(t, pte_addr, 8) & (RV_PTE_A | RV_PTE_D), RV_PTE_A, "A/D: a load sets A only");
        CHECK_EQ_U64(store(t, RV_PRIV_S, VA_NOAD, 5), 0, "A/D: store to a page with D = 0 succeeds");
        CHECK_EQ_U64(th_load(t, pte_addr, 8) & (RV_PTE_A | RV_PTE_D), RV_PTE_A | RV_PTE_D, "A/D: a store sets D");

        set_pte(t, PT_L0, 7, pte(DATA_BASE + 0x3000, RV_PTE_V | RV_PTE_R | RV_PTE_W));
        hart_tlb_flush_all(&t->hart); /* as SFENCE.VMA would */
        CHECK_EQ_U64(store(t, RV_PRIV_S, VA_NOAD, 6), 0, "A/D: store with A = D = 0");
        CHECK_EQ_U64(th_load(t, pte_addr, 8) & (RV_PTE_A | RV_PTE_D), RV_PTE_A | RV_PTE_D, "A/D: a store sets both A and D");
        CHECK_EQ_U64(th_load(t, pte_addr, 8) >> 10, (DATA_BASE + 0x3000) >> 12, "A/D: the update keeps the PPN");
}

static void test_sfence(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;
        uint32_t insn;

        th_store(t, DATA_BASE + 0x5000, 8, 0xaaaa);
        th_store(t, DATA_BASE + 0x6000, 8, 0xbbbb);
        h->x[5] = VA_SWAP;
        th_org(t, CODE_BASE);
        th_emit(t, LD(6, 5, 0));
        th_emit(t, SFENCE_VMA(0, 0));
        th_emit(t, LD(7, 5, 0));
        th_emit(t, WFI());
        th_jump(t, CODE_BASE, RV_PRIV_S);
        th_clear_trap(t);
        th_run(t, 1);
        set_pte(t, PT_L0, 9, pte(DATA_BASE + 0x6000, RV_PTE_V | RV_PTE_R | RV_PTE_W | RV_PTE_A | RV_PTE_D));
        th_run(t, 10);
        CHECK(h->x[6] == 0xaaaa && h->x[7] == 0xbbbb && h->mcause == NO_TRAP,
              "SFENCE.VMA makes a changed PTE visible (0x%llx, 0x%llx)", (unsigned long long) h->x[6],
              (unsigned long long) h->x[7]);

        h->x[5] = VA_SWAP;
        th_org(t, CODE_BASE);
        th_emit(t, SFENCE_VMA(5, 0));
        th_jump(t, CODE_BASE, RV_PRIV_S);
        th_run(t, 1);
        CHECK(h->pc == CODE_BASE + 4 && h->mcause == NO_TRAP, "SFENCE.VMA with an address operand in S");

        insn = SFENCE_VMA(0, 0);
        th_org(t, UCODE_PA);
        th_emit(t, insn);
        th_jump(t, VA_UCODE, RV_PRIV_U);
        th_run(t, 1);
        CHECK(th_in_mtrap(t) && h->mcause == RV_CAUSE_ILLEGAL_INSTRUCTION && h->mtval == insn, "SFENCE.VMA in U: illegal");

        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_TVM);
        th_org(t, CODE_BASE);
        th_emit(t, insn);
        th_jump(t, CODE_BASE, RV_PRIV_S);
        th_run(t, 1);
        CHECK(th_in_mtrap(t) && h->mcause == RV_CAUSE_ILLEGAL_INSTRUCTION, "SFENCE.VMA in S with TVM: illegal");
        insn = CSRRS(5, CSR_SATP, 0);
        th_org(t, CODE_BASE);
        th_emit(t, insn);
        th_jump(t, CODE_BASE, RV_PRIV_S);
        th_clear_trap(t);
        th_run(t, 1);
        CHECK(th_in_mtrap(t) && h->mcause == RV_CAUSE_ILLEGAL_INSTRUCTION && h->mtval == insn,
              "satp access in S with TVM: illegal");
        th_csr_write(t, CSR_MSTATUS, 0);
        th_jump(t, CODE_BASE, RV_PRIV_S);
        th_clear_trap(t);
        th_run(t, 1);
        CHECK(h->pc == CODE_BASE + 4 && h->x[5] == (RV_SATP_SV39 | PT_ROOT >> 12), "satp read in S without TVM");
}

/*
 * ASIDs: a second address space (root B) maps VA_SWAP elsewhere and shares
 * the global page VA_SDATA. Architecturally, each ASID sees its own mapping
 * across satp switches without a fence; the TLB's contents are looked at
 * directly to check what SFENCE.VMA with an ASID keeps (entries of other
 * ASIDs, global entries), which no program could tell from a refill.
 */
#define PT_ROOT_B (RAM_BASE + 0x83000)
#define PT_L1_B (RAM_BASE + 0x84000)
#define PT_L0_B (RAM_BASE + 0x85000)
#define ASID_A 1
#define ASID_B 0x8001

/* Whether the TLB holds an S-mode load translation of 'va' for 'asid' (and whether it is global). */
static bool tlb_holds(TestHart *t, uint64_t asid, uint64_t va, bool *ret_global) {
        const Hart *h = &t->hart;
        unsigned i = (va >> PAGE_SHIFT) & (TLB_SIZE - 1);

        for (unsigned c = 0; c < TLB_CONTEXTS; c++) {
                const TlbContext *x = &h->tlb[c];
                if (!x->last_used || (x->satp & SATP_ASID_MASK) >> SATP_ASID_SHIFT != asid)
                        continue;
                if (ret_global)
                        *ret_global = x->global[TLB_REGIME_S][ACCESS_READ][i];
                return x->entries[TLB_REGIME_S][ACCESS_READ][i].tag == (va & PAGE_MASK);
        }
        return false;
}

static void sfence(TestHart *t, unsigned rs1, uint64_t va, unsigned rs2, uint64_t asid) {
        Hart *h = &t->hart;

        th_org(t, CODE_BASE);
        th_emit(t, SFENCE_VMA(rs1, rs2));
        h->x[5] = va;
        h->x[6] = asid;
        th_jump(t, CODE_BASE, RV_PRIV_S);
        th_clear_trap(t);
        th_run(t, 1);
}

/*
 * The translating engine's jump cache maps virtual pcs to translated code:
 * an indirect jump to a remapped code page must reach the new code after
 * SFENCE.VMA of that page, and the same virtual address in two address
 * spaces (ASIDs, no fence between them) must run each one's own code.
 */
#define VA_JCODE VA_PAGE(12)
#define JCODE_PA_1 (DATA_BASE + 0x7000)
#define JCODE_PA_2 (DATA_BASE + 0x8000)

#define JFENCE (CODE_BASE + 0x100)

/*
 * The code stays unchanged between runs (a store to translated code would
 * empty the jump cache): CODE_BASE jumps to x5, JFENCE is "sfence.vma x5, x0".
 */
static void emit_jcode_callers(TestHart *t) {
        th_org(t, CODE_BASE);
        th_emit(t, JALR(0, 5, 0));
        th_org(t, JFENCE);
        th_emit(t, SFENCE_VMA(5, 0));
        th_emit(t, ECALL());
}

/* jalr to VA_JCODE, whose code sets x6 to its page's number; returns x6, or 0 without the ECALL it ends in. */
static uint64_t jump_to_jcode(TestHart *t) {
        Hart *h = &t->hart;

        h->x[5] = VA_JCODE;
        h->x[6] = 0;
        th_jump(t, CODE_BASE, RV_PRIV_S);
        th_clear_trap(t);
        th_run(t, 3);
        return h->mcause == RV_CAUSE_SUPERVISOR_ECALL && h->mepc == VA_JCODE + 4 ? h->x[6] : 0;
}

static void sfence_page(TestHart *t, uint64_t va) {
        t->hart.x[5] = va;
        th_jump(t, JFENCE, RV_PRIV_S);
        th_clear_trap(t);
        th_run(t, 2);
}

static void test_jump_cache_remap(void) {
        _cleanup_th_ TestHart *t = machine();
        const uint64_t satp_a = RV_SATP_SV39 | (uint64_t) ASID_A << 44 | PT_ROOT >> 12;
        const uint64_t satp_b = RV_SATP_SV39 | (uint64_t) ASID_B << 44 | PT_ROOT_B >> 12;
        const uint64_t rx = RV_PTE_V | RV_PTE_R | RV_PTE_X | RV_PTE_A;
        uint64_t x6[2];

        emit_jcode_callers(t);
        th_org(t, JCODE_PA_1);
        th_emit(t, ADDI(6, 0, 1));
        th_emit(t, ECALL());
        th_org(t, JCODE_PA_2);
        th_emit(t, ADDI(6, 0, 2));
        th_emit(t, ECALL());

        set_pte(t, PT_L0, 12, pte(JCODE_PA_1, rx));
        th_csr_write(t, CSR_SATP, satp_a);
        x6[0] = jump_to_jcode(t);
        x6[1] = jump_to_jcode(t);
        CHECK(x6[0] == 1 && x6[1] == 1, "an indirect jump runs the mapped code, twice (x6 = %llu, %llu)",
              (unsigned long long) x6[0], (unsigned long long) x6[1]);

        set_pte(t, PT_L0, 12, pte(JCODE_PA_2, rx));
        sfence_page(t, VA_RONLY);
        sfence_page(t, VA_JCODE);
        x6[0] = jump_to_jcode(t);
        CHECK_EQ_U64(x6[0], 2, "after remapping the code page and SFENCE.VMA of it, the new code runs");

        /* Root B: root A's tables with VA_JCODE on the first code page again. */
        for (unsigned i = 0; i < 512; i++) {
                th_store(t, PT_ROOT_B + 8 * i, 8, th_load(t, PT_ROOT + 8 * i, 8));
                th_store(t, PT_L1_B + 8 * i, 8, th_load(t, PT_L1 + 8 * i, 8));
                th_store(t, PT_L0_B + 8 * i, 8, th_load(t, PT_L0 + 8 * i, 8));
        }
        set_pte(t, PT_ROOT_B, 1, pte(PT_L1_B, RV_PTE_V));
        set_pte(t, PT_L1_B, 0, pte(PT_L0_B, RV_PTE_V));
        set_pte(t, PT_L0_B, 12, pte(JCODE_PA_1, rx));
        for (unsigned round = 0; round < 2; round++) {
                th_csr_write(t, CSR_SATP, satp_b);
                x6[0] = jump_to_jcode(t);
                th_csr_write(t, CSR_SATP, satp_a);
                x6[1] = jump_to_jcode(t);
                CHECK(x6[0] == 1 && x6[1] == 2,
                      "switching ASIDs without a fence, each runs its own code at the same address (round %u: %llu, %llu)",
                      round + 1, (unsigned long long) x6[0], (unsigned long long) x6[1]);
        }
}

static void test_asid(void) {
        _cleanup_th_ TestHart *t = machine();
        const uint64_t satp_a = RV_SATP_SV39 | (uint64_t) ASID_A << 44 | PT_ROOT >> 12;
        const uint64_t satp_b = RV_SATP_SV39 | (uint64_t) ASID_B << 44 | PT_ROOT_B >> 12;
        uint64_t v = 0;
        bool global = false;

        th_csr_write(t, CSR_SATP, RV_SATP_SV39 | 0xffffULL << 44 | PT_ROOT >> 12);
        CHECK_EQ_U64(th_csr(t, CSR_SATP) >> 44 & 0xffff, 0xffff, "satp.ASID keeps all 16 bits");

        /* Root B: root A's mappings, VA_SWAP moved to DATA_BASE + 0x6000, VA_SDATA global in both. */
        set_pte(t, PT_L0, 1, pte(DATA_BASE, RV_PTE_V | RV_PTE_R | RV_PTE_W | RV_PTE_A | RV_PTE_D | RV_PTE_G));
        for (unsigned i = 0; i < 512; i++) {
                th_store(t, PT_ROOT_B + 8 * i, 8, th_load(t, PT_ROOT + 8 * i, 8));
                th_store(t, PT_L1_B + 8 * i, 8, th_load(t, PT_L1 + 8 * i, 8));
                th_store(t, PT_L0_B + 8 * i, 8, th_load(t, PT_L0 + 8 * i, 8));
        }
        set_pte(t, PT_ROOT_B, 1, pte(PT_L1_B, RV_PTE_V));
        set_pte(t, PT_L1_B, 0, pte(PT_L0_B, RV_PTE_V));
        set_pte(t, PT_L0_B, 9, pte(DATA_BASE + 0x6000, RV_PTE_V | RV_PTE_R | RV_PTE_W | RV_PTE_A | RV_PTE_D));
        th_store(t, DATA_BASE + 0x5000, 8, 0xaaaa);
        th_store(t, DATA_BASE + 0x6000, 8, 0xbbbb);

        th_csr_write(t, CSR_SATP, satp_a);
        CHECK(load(t, RV_PRIV_S, VA_SWAP, &v) == 0 && v == 0xaaaa, "ASID %d sees its mapping", ASID_A);
        CHECK(load(t, RV_PRIV_S, VA_SDATA, NULL) == 0, "ASID %d loads from the global page", ASID_A);
        th_csr_write(t, CSR_SATP, satp_b);
        CHECK(load(t, RV_PRIV_S, VA_SWAP, &v) == 0 && v == 0xbbbb, "ASID 0x%x sees its own mapping, no fence", ASID_B);
        CHECK(load(t, RV_PRIV_S, VA_SDATA, NULL) == 0, "ASID 0x%x loads from the global page", ASID_B);
        th_csr_write(t, CSR_SATP, satp_a);
        CHECK(tlb_holds(t, ASID_A, VA_SWAP, &global) && !global, "switching ASIDs keeps the other ASID's entries");
        CHECK(load(t, RV_PRIV_S, VA_SWAP, &v) == 0 && v == 0xaaaa, "back in ASID %d: its mapping again", ASID_A);
        CHECK(tlb_holds(t, ASID_A, VA_SDATA, &global) && global, "an entry from a G leaf is tagged global");

        /* SFENCE.VMA x0, asid: that ASID's non-global entries only. */
        sfence(t, 0, 0, 6, ASID_B);
        CHECK(t->hart.pc == CODE_BASE + 4 && t->hart.mcause == NO_TRAP, "SFENCE.VMA x0, rs2 runs in S");
        CHECK(!tlb_holds(t, ASID_B, VA_SWAP, NULL), "SFENCE.VMA x0, rs2 drops that ASID's entries");
        CHECK(tlb_holds(t, ASID_B, VA_SDATA, NULL), "SFENCE.VMA x0, rs2 keeps that ASID's global entries");
        CHECK(tlb_holds(t, ASID_A, VA_SWAP, NULL), "SFENCE.VMA x0, rs2 keeps other ASIDs' entries");
        th_csr_write(t, CSR_SATP, satp_b);
        CHECK(load(t, RV_PRIV_S, VA_SWAP, &v) == 0 && v == 0xbbbb, "ASID 0x%x refills after the fence", ASID_B);
        /* The ASID operand is rs2's low 16 bits: higher bits are ignored. */
        th_csr_write(t, CSR_SATP, satp_a);
        sfence(t, 0, 0, 6, 0xabcd0000ULL | ASID_B);
        CHECK(!tlb_holds(t, ASID_B, VA_SWAP, NULL) && tlb_holds(t, ASID_A, VA_SWAP, NULL),
              "SFENCE.VMA uses rs2's ASID bits only");

        /* SFENCE.VMA va, asid: that page of that ASID, global entries kept. */
        load(t, RV_PRIV_S, VA_SWAP, NULL);
        load(t, RV_PRIV_S, VA_RONLY, NULL);
        sfence(t, 5, VA_SWAP, 6, ASID_A);
        CHECK(!tlb_holds(t, ASID_A, VA_SWAP, NULL) && tlb_holds(t, ASID_A, VA_RONLY, NULL),
              "SFENCE.VMA va, asid drops only that page");
        sfence(t, 5, VA_SDATA, 6, ASID_A);
        CHECK(tlb_holds(t, ASID_A, VA_SDATA, NULL), "SFENCE.VMA va, asid keeps a global page");

        /* SFENCE.VMA va, x0: that page in every address space, global or not. */
        sfence(t, 5, VA_SDATA, 0, 0);
        CHECK(!tlb_holds(t, ASID_A, VA_SDATA, NULL) && !tlb_holds(t, ASID_B, VA_SDATA, NULL),
              "SFENCE.VMA va, x0 drops a global page in every ASID");
        CHECK(tlb_holds(t, ASID_A, VA_RONLY, NULL), "SFENCE.VMA va, x0 keeps other pages");

        /* SFENCE.VMA x0, x0: everything. */
        sfence(t, 0, 0, 0, 0);
        CHECK(!tlb_holds(t, ASID_A, VA_RONLY, NULL) && !tlb_holds(t, ASID_B, VA_SDATA, NULL),
              "SFENCE.VMA x0, x0 drops every entry");

        /* A reused ASID with another root: the new root's mappings, even without a fence. */
        load(t, RV_PRIV_S, VA_SWAP, NULL);
        th_csr_write(t, CSR_SATP, RV_SATP_SV39 | (uint64_t) ASID_A << 44 | PT_ROOT_B >> 12);
        CHECK(load(t, RV_PRIV_S, VA_SWAP, &v) == 0 && v == 0xbbbb, "an ASID reused with another root sees the new root");

        /* More address spaces than the TLB keeps: each still sees its own mapping. */
        for (unsigned i = 0; i < 2 * TLB_CONTEXTS; i++) {
                uint64_t root = i % 2 ? PT_ROOT_B : PT_ROOT;
                th_csr_write(t, CSR_SATP, RV_SATP_SV39 | (uint64_t) (100 + i) << 44 | root >> 12);
                v = 0;
                load(t, RV_PRIV_S, VA_SWAP, &v);
                if (v != (i % 2 ? 0xbbbb : 0xaaaa))
                        break;
        }
        CHECK(v == 0xbbbb, "%u address spaces in turn each see their own mapping", 2 * TLB_CONTEXTS);
}

static void test_satp(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;
        const uint64_t sv39 = RV_SATP_SV39 | PT_ROOT >> 12;

        CHECK_EQ_U64(th_csr(t, CSR_SATP), sv39, "satp holds Sv39 mode and root PPN");
        th_csr_write(t, CSR_SATP, 10ULL << 60 | 0x1234);
        CHECK_EQ_U64(th_csr(t, CSR_SATP), sv39, "satp write with mode 10 (Sv57, unsupported) leaves satp unchanged");
        th_csr_write(t, CSR_SATP, 5ULL << 60 | 0x1234);
        CHECK_EQ_U64(th_csr(t, CSR_SATP), sv39, "satp write with reserved mode 5 leaves satp unchanged");
        th_csr_write(t, CSR_SATP, 0);
        CHECK_EQ_U64(th_csr(t, CSR_SATP), 0, "satp Bare");
        uint64_t v = 0;
        CHECK(load(t, RV_PRIV_S, DATA_BASE + 8, &v) == 0 && v == th_load(t, DATA_BASE + 8, 8),
              "Bare: S addresses are physical");

        /* A root table outside memory: the walk's access fault, for the original access type. */
        th_csr_write(t, CSR_SATP, RV_SATP_SV39 | 0x1000);
        CHECK(fetch(t, RV_PRIV_S, CODE_BASE + 0x100, CODE_BASE + 0x100) == RV_CAUSE_FETCH_ACCESS && h->mepc == CODE_BASE,
              "page table outside memory: fetch access fault");
        th_csr_write(t, CSR_SATP, 0);

        /* Sv48, if satp accepts mode 9: a four-level walk. */
        th_csr_write(t, CSR_SATP, 9ULL << 60 | (PT_ROOT + 0x3000) >> 12);
        if ((th_csr(t, CSR_SATP) >> 60) == 9) {
                const uint64_t root4 = PT_ROOT + 0x3000;
                for (unsigned i = 0; i < 512; i++)
                        th_store(t, root4 + 8 * i, 8, 0);
                /* root4[0] -> the Sv39 root, used as the second level: VA < 2^39 maps as before. */
                set_pte(t, root4, 0, pte(PT_ROOT, RV_PTE_V));
                CHECK(load(t, RV_PRIV_S, VA_SDATA + 8, &v) == 0 && v == th_load(t, DATA_BASE + 8, 8),
                      "Sv48: four-level walk to a 4 KiB page");
                CHECK_EQ_U64(load(t, RV_PRIV_S, 0x0000008000000000ULL, NULL), RV_CAUSE_LOAD_PAGE_FAULT,
                             "Sv48: VA bit 39 selects another (invalid) root entry");
                CHECK(load(t, RV_PRIV_S, 0x0000400000000000ULL, NULL) == RV_CAUSE_LOAD_PAGE_FAULT && h->mtval == 0x0000400000000000ULL,
                      "Sv48: non-canonical 48-bit address faults");
        } else {
                CHECK_EQ_U64(th_csr(t, CSR_SATP), 0, "satp write with mode 9 (Sv48, unsupported) leaves satp unchanged");
        }
}

static void test_page_crossing(void) {
        _cleanup_th_ TestHart *t = machine();
        Hart *h = &t->hart;

        /* A 32-bit instruction whose second half lies on an invalid page. */
        th_org(t, DATA_BASE + 0x2ffe);
        th_emit16(t, 0x0013);
        th_store(t, DATA_BASE + 0x2000, 4, NOP());
        h->x[5] = VA_XONLY + 0xffe;
        th_org(t, CODE_BASE);
        th_emit(t, JALR(0, 5, 0));
        th_jump(t, CODE_BASE, RV_PRIV_S);
        th_clear_trap(t);
        th_run(t, 2);
        CHECK(h->mcause == RV_CAUSE_FETCH_PAGE_FAULT && h->mepc == VA_XONLY + 0xffe && h->mtval == VA_INVALID,
              "fetch across into an invalid page: mepc = instruction, mtval = the faulting half (0x%llx)",
              (unsigned long long) h->mtval);

        /* A misaligned load/store whose second part lies on a U page (S without SUM). */
        const uint64_t va = VA_SDATA + 0xffc;
        CHECK(load(t, RV_PRIV_S, va, NULL) == RV_CAUSE_LOAD_PAGE_FAULT && h->mtval >= va && h->mtval < va + 8,
              "misaligned load across into a forbidden page: load page fault, mtval within the access");
        CHECK(store(t, RV_PRIV_S, va, 0) == RV_CAUSE_STORE_PAGE_FAULT && h->mtval >= va && h->mtval < va + 8,
              "misaligned store across into a forbidden page: store page fault");
        uint64_t v = 0;
        th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_SUM);
        CHECK(load(t, RV_PRIV_S, va, &v) == 0 &&
              v == (th_load(t, DATA_BASE + 0xffc, 4) | th_load(t, DATA_BASE + 0x1000, 4) << 32),
              "misaligned load across two pages mapped to different frames");
}

/* ---- PMP ---- */

static void pmp_set(TestHart *t, unsigned entry, uint64_t addr, uint8_t cfg) {
        uint64_t cfg0 = th_csr(t, CSR_PMPCFG0);

        th_csr_write(t, CSR_PMPADDR0 + entry, addr);
        cfg0 = (cfg0 & ~(0xffULL << (8 * entry))) | (uint64_t) cfg << (8 * entry);
        th_csr_write(t, CSR_PMPCFG0, cfg0);
}

static uint64_t napot(uint64_t base, uint64_t size) {
        return (base >> 2) | ((size >> 3) - 1);
}

static TestHart *bare_machine(void) {
        TestHart *t = th_new();

        th_csr_write(t, CSR_PMPCFG0, 0);
        return t;
}

static void test_pmp(void) {
        {
                _cleanup_th_ TestHart *t = bare_machine();
                Hart *h = &t->hart;

                CHECK_EQ_U64(fetch(t, RV_PRIV_S, CODE_BASE + 0x100, CODE_BASE + 0x100), RV_CAUSE_FETCH_ACCESS,
                             "no PMP entry matches: S fetch fails (access fault)");
                CHECK(h->mepc == CODE_BASE && h->mtval == CODE_BASE, "... at the first S instruction");
                CHECK_EQ_U64(load(t, RV_PRIV_M, DATA_BASE, NULL), 0, "no PMP entry matches: M accesses succeed");

                pmp_set(t, 0, napot(0, 1ULL << 56) | ((1ULL << 54) - 1), PMPCFG_NAPOT | PMPCFG_R | PMPCFG_W | PMPCFG_X);
                uint64_t v = 0;
                CHECK(load(t, RV_PRIV_S, DATA_BASE, &v) == 0 && v == th_load(t, DATA_BASE, 8) &&
                      store(t, RV_PRIV_U, DATA_BASE, 1) == 0,
                      "NAPOT entry with RWX over all memory: S and U work");
        }
        {
                _cleanup_th_ TestHart *t = bare_machine();
                Hart *h = &t->hart;

                /* [0, DATA_BASE) RWX; [DATA_BASE, DATA_BASE + 64 KiB) RW only; nothing above. */
                pmp_set(t, 0, DATA_BASE >> 2, PMPCFG_TOR | PMPCFG_R | PMPCFG_W | PMPCFG_X);
                pmp_set(t, 1, (DATA_BASE + 0x10000) >> 2, PMPCFG_TOR | PMPCFG_R | PMPCFG_W);
                CHECK(load(t, RV_PRIV_S, DATA_BASE, NULL) == 0 && store(t, RV_PRIV_S, DATA_BASE, 2) == 0,
                      "TOR entry RW: S load and store");
                CHECK(fetch(t, RV_PRIV_S, DATA_BASE + 0x40, DATA_BASE + 0x40) == RV_CAUSE_FETCH_ACCESS &&
                      h->mtval == DATA_BASE + 0x40,
                      "TOR entry without X: S fetch access fault (cause 1), mtval = address");
                CHECK_EQ_U64(fetch(t, RV_PRIV_M, DATA_BASE + 0x40, DATA_BASE + 0x40), RV_CAUSE_MACHINE_ECALL,
                             "unlocked entries do not apply to M");
                CHECK_EQ_U64(load(t, RV_PRIV_S, DATA_BASE + 0xfff8, NULL), 0, "TOR: the last doubleword below the top");
                CHECK(load(t, RV_PRIV_S, DATA_BASE + 0x10000, NULL) == RV_CAUSE_LOAD_ACCESS && h->mtval == DATA_BASE + 0x10000,
                      "TOR top is exclusive: above it no entry matches, S load access fault");
                CHECK_EQ_U64(load(t, RV_PRIV_S, DATA_BASE + 0xfffc, NULL), RV_CAUSE_LOAD_ACCESS,
                             "an access straddling the TOR top fails");
        }
        {
                _cleanup_th_ TestHart *t = bare_machine();
                Hart *h = &t->hart;

                /* Entry 0 takes priority over entry 1 where both match. */
                pmp_set(t, 0, napot(DATA_BASE, 0x1000), PMPCFG_NAPOT);
                pmp_set(t, 1, (1ULL << 54) - 1, PMPCFG_NAPOT | PMPCFG_R | PMPCFG_W | PMPCFG_X);
                CHECK(load(t, RV_PRIV_S, DATA_BASE + 0x10, NULL) == RV_CAUSE_LOAD_ACCESS && h->mtval == DATA_BASE + 0x10,
                      "lowest-numbered matching entry wins: load access fault (5)");
                CHECK_EQ_U64(store(t, RV_PRIV_S, DATA_BASE + 0xff8, 1), RV_CAUSE_STORE_ACCESS, "... store access fault (7)");
                CHECK_EQ_U64(load(t, RV_PRIV_S, DATA_BASE + 0x1000, NULL), 0, "... next page falls through to entry 1");
                CHECK_EQ_U64(load(t, RV_PRIV_S, DATA_BASE + 0xffc, NULL), RV_CAUSE_LOAD_ACCESS,
                             "an access straddling an entry's boundary fails");

                pmp_set(t, 0, (DATA_BASE + 0x20) >> 2, PMPCFG_NA4);
                CHECK(load(t, RV_PRIV_S, DATA_BASE + 0x24, NULL) == 0 &&
                      access_pa(t, RV_PRIV_S, LOAD, DATA_BASE + 0x20, 0, 0, NULL) == RV_CAUSE_LOAD_ACCESS,
                      "NA4 entry covers exactly four bytes");
        }
        {
                _cleanup_th_ TestHart *t = bare_machine();

                pmp_set(t, 0, napot(DATA_BASE, 0x1000), PMPCFG_NAPOT | PMPCFG_R);
                CHECK_EQ_U64(store(t, RV_PRIV_M, DATA_BASE + 8, 1), 0, "unlocked read-only entry: M store succeeds");
                pmp_set(t, 0, napot(DATA_BASE, 0x1000), PMPCFG_NAPOT | PMPCFG_R | PMPCFG_L);
                CHECK(store(t, RV_PRIV_M, DATA_BASE + 8, 1) == RV_CAUSE_STORE_ACCESS && t->hart.mtval == DATA_BASE + 8,
                      "locked read-only entry applies to M: store access fault");
                CHECK_EQ_U64(load(t, RV_PRIV_M, DATA_BASE + 8, NULL), 0, "locked read-only entry: M load succeeds");
                CHECK_EQ_U64(store(t, RV_PRIV_M, DATA_BASE + 0x1000, 1), 0, "outside the locked entry M stores");
                th_csr_write(t, CSR_PMPCFG0, 0);
                th_csr_write(t, CSR_PMPADDR0, 0);
                CHECK((th_csr(t, CSR_PMPCFG0) & 0xff) == (PMPCFG_NAPOT | PMPCFG_R | PMPCFG_L) &&
                      th_csr(t, CSR_PMPADDR0) == napot(DATA_BASE, 0x1000),
                      "a locked entry ignores writes to its pmpcfg and pmpaddr");
                th_csr_write(t, CSR_PMPADDR0 + 2, DATA_BASE >> 2);
                pmp_set(t, 3, (DATA_BASE + 0x2000) >> 2, PMPCFG_TOR | PMPCFG_L);
                th_csr_write(t, CSR_PMPADDR0 + 2, 0);
                CHECK_EQ_U64(th_csr(t, CSR_PMPADDR0 + 2), DATA_BASE >> 2,
                             "a locked TOR entry also locks the pmpaddr below it");
                CHECK_EQ_U64(load(t, RV_PRIV_M, DATA_BASE + 0x1000, NULL), RV_CAUSE_LOAD_ACCESS,
                             "locked TOR entry without R: M load access fault");
        }
        {
                _cleanup_th_ TestHart *t = bare_machine();
                Hart *h = &t->hart;

                /* MPRV: M loads and stores with MPP's privilege. */
                th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_MPRV | (uint64_t) RV_PRIV_U << RV_MSTATUS_MPP_SHIFT);
                CHECK(load(t, RV_PRIV_M, DATA_BASE, NULL) == RV_CAUSE_LOAD_ACCESS && h->priv == RV_PRIV_M,
                      "MPRV with MPP = U: M load checked as U by PMP (no entry: fault)");
                th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_MPRV | (uint64_t) RV_PRIV_M << RV_MSTATUS_MPP_SHIFT);
                CHECK_EQ_U64(load(t, RV_PRIV_M, DATA_BASE, NULL), 0, "MPRV with MPP = M: M load as usual");
        }
        {
                _cleanup_th_ TestHart *t = machine();
                Hart *h = &t->hart;
                uint64_t v = 0;

                /* MPRV with paging: M data accesses are translated with MPP = S, fetches are not. */
                th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_MPRV | (uint64_t) RV_PRIV_S << RV_MSTATUS_MPP_SHIFT);
                CHECK(load(t, RV_PRIV_M, VA_SDATA + 8, &v) == 0 && v == th_load(t, DATA_BASE + 8, 8),
                      "MPRV with MPP = S: M load goes through Sv39");
                CHECK(load(t, RV_PRIV_M, VA_UDATA, NULL) == RV_CAUSE_LOAD_PAGE_FAULT && h->mtval == VA_UDATA,
                      "MPRV with MPP = S: U page without SUM faults");
                th_csr_write(t, CSR_MSTATUS, 0);

                /* Page-table reads are checked by PMP (as S-mode accesses). */
                pmp_set(t, 0, napot(PT_ROOT, 0x4000), PMPCFG_NAPOT);
                pmp_set(t, 1, (1ULL << 54) - 1, PMPCFG_NAPOT | PMPCFG_R | PMPCFG_W | PMPCFG_X);
                CHECK(fetch(t, RV_PRIV_S, CODE_BASE + 0x100, CODE_BASE + 0x100) == RV_CAUSE_FETCH_ACCESS &&
                      h->mepc == CODE_BASE,
                      "PMP denies the page-table walk: S fetch access fault");
                th_csr_write(t, CSR_MSTATUS, RV_MSTATUS_MPRV | (uint64_t) RV_PRIV_S << RV_MSTATUS_MPP_SHIFT);
                CHECK_EQ_U64(load(t, RV_PRIV_M, VA_SDATA, NULL), RV_CAUSE_LOAD_ACCESS,
                             "PMP denies the page-table walk: load access fault");
                CHECK_EQ_U64(store(t, RV_PRIV_M, VA_SDATA, 0), RV_CAUSE_STORE_ACCESS,
                             "PMP denies the page-table walk: store access fault");
        }
}

int main(void) {
        test_leaf_sizes();
        test_invalid();
        test_amo();
        test_user_supervisor();
        test_mxr();
        test_accessed_dirty();
        test_sfence();
        test_satp();
        test_asid();
        test_jump_cache_remap();
        test_page_crossing();
        test_pmp();
        return tap_finish();
}
