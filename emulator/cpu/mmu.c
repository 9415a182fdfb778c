/* SPDX-License-Identifier: MIT */

/*
 * Address translation (Sv39, Sv48), PMP, and the software TLB's regimes.
 * Called from the interpreter's slow paths only: the fast path is a TLB
 * tag compare in cpu.c.
 */

#include <string.h>

#include "hart-internal.h"
#include "jit/jit.h"
#include "macro.h"
#include "machine/physmem.h"

#define PTE_V (1ULL << 0)
#define PTE_R (1ULL << 1)
#define PTE_W (1ULL << 2)
#define PTE_X (1ULL << 3)
#define PTE_U (1ULL << 4)
#define PTE_G (1ULL << 5)
#define PTE_A (1ULL << 6)
#define PTE_D (1ULL << 7)
#define PTE_PPN_SHIFT 10
#define PTE_PPN_MASK ((1ULL << 44) - 1)
/* Bits 63..54: Svpbmt/Svnapot (not implemented) and reserved; must be zero. */
#define PTE_RESERVED_MASK (~((1ULL << 54) - 1))

#define SATP_MODE_SHIFT 60
#define SATP_MODE_BARE 0
#define SATP_MODE_SV39 8
#define SATP_MODE_SV48 9
#define SATP_PPN_MASK ((1ULL << 44) - 1)

#define PMP_R 0x01
#define PMP_W 0x02
#define PMP_X 0x04
#define PMP_A 0x18
#define PMP_A_OFF 0x00
#define PMP_A_TOR 0x08
#define PMP_A_NA4 0x10
#define PMP_A_NAPOT 0x18
#define PMP_L 0x80

static void pmp_range(const Pmp *pmp, unsigned i, uint64_t *ret_lo, uint64_t *ret_hi) {
        uint8_t a = pmp->cfg[i] & PMP_A;
        uint64_t addr = pmp->addr[i];

        switch (a) {
        case PMP_A_TOR:
                *ret_lo = i == 0 ? 0 : pmp->addr[i - 1] << 2;
                *ret_hi = addr << 2; /* exclusive */
                break;
        case PMP_A_NA4:
                *ret_lo = addr << 2;
                *ret_hi = (addr << 2) + 4;
                break;
        case PMP_A_NAPOT: {
                /* Trailing ones of pmpaddr give the size: 2^(t+3) bytes. */
                unsigned t = __builtin_ctzll(~addr);
                if (t >= 54) {
                        *ret_lo = 0;
                        *ret_hi = UINT64_MAX;
                } else {
                        uint64_t size = 1ULL << (t + 3);
                        *ret_lo = (addr << 2) & ~(size - 1);
                        *ret_hi = *ret_lo + size;
                }
                break;
        }
        default:
                *ret_lo = *ret_hi = 0;
        }
}

bool pmp_allows(const Hart *h, uint64_t paddr, uint64_t size, int type, unsigned priv) {
        uint64_t end = paddr + size; /* exclusive */

        for (unsigned i = 0; i < ELEMENTSOF(h->pmp.cfg); i++) {
                uint8_t cfg = h->pmp.cfg[i];
                uint64_t lo, hi;

                if ((cfg & PMP_A) == PMP_A_OFF)
                        continue;

                pmp_range(&h->pmp, i, &lo, &hi);
                if (hi <= lo)
                        continue;
                if (end <= lo || paddr >= hi)
                        continue; /* no byte matches */
                if (paddr < lo || end > hi)
                        return false; /* matches only partially: fails */

                if (priv == PRIV_M && !(cfg & PMP_L))
                        return true;

                switch (type) {
                case ACCESS_READ:
                        return cfg & PMP_R;
                case ACCESS_WRITE:
                        return cfg & PMP_W;
                default:
                        return cfg & PMP_X;
                }
        }

        return priv == PRIV_M;
}

static uint64_t access_fault(int type) {
        switch (type) {
        case ACCESS_READ:
                return CAUSE_LOAD_ACCESS;
        case ACCESS_WRITE:
                return CAUSE_STORE_ACCESS;
        default:
                return CAUSE_FETCH_ACCESS;
        }
}

static uint64_t page_fault(int type) {
        switch (type) {
        case ACCESS_READ:
                return CAUSE_LOAD_PAGE_FAULT;
        case ACCESS_WRITE:
                return CAUSE_STORE_PAGE_FAULT;
        default:
                return CAUSE_FETCH_PAGE_FAULT;
        }
}

static unsigned effective_priv(const Hart *h, int type) {
        if (type != ACCESS_FETCH && h->priv == PRIV_M && (h->mstatus & MSTATUS_MPRV))
                return (h->mstatus & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT;
        return h->priv;
}

int mmu_translate(Hart *h, uint64_t vaddr, int type, uint64_t *ret_paddr) {
        unsigned priv = effective_priv(h, type);
        unsigned mode = h->satp >> SATP_MODE_SHIFT;
        unsigned levels;

        h->translation_global = false;
        if (priv == PRIV_M || mode == SATP_MODE_BARE) {
                *ret_paddr = vaddr;
                return 0;
        }

        levels = mode == SATP_MODE_SV48 ? 4 : 3;

        /* The address must be sign-extended from its top virtual address bit. */
        unsigned va_bits = 12 + 9 * levels;
        int64_t sext = (int64_t) (vaddr << (64 - va_bits)) >> (64 - va_bits);
        if ((uint64_t) sext != vaddr)
                return page_fault(type);

        uint64_t table = (h->satp & SATP_PPN_MASK) << PAGE_SHIFT;
        uint64_t global = 0;
        for (int level = levels - 1; level >= 0; level--) {
                uint64_t vpn = (vaddr >> (PAGE_SHIFT + 9 * level)) & 0x1ff;
                uint64_t pte_addr = table + vpn * 8;
                int64_t fb_page;
                uint8_t *p;
                uint64_t pte;

                /* Implicit page-table accesses are S-mode accesses for PMP. */
                if (!pmp_allows(h, pte_addr, 8, ACCESS_READ, PRIV_S))
                        return access_fault(type);
                p = physmem_host_ptr(h->mem, pte_addr, 8, &fb_page);
                if (!p || fb_page >= 0)
                        return access_fault(type);
                memcpy(&pte, p, 8);

                if (!(pte & PTE_V) || (!(pte & PTE_R) && (pte & PTE_W)) || (pte & PTE_RESERVED_MASK))
                        return page_fault(type);

                uint64_t ppn = (pte >> PTE_PPN_SHIFT) & PTE_PPN_MASK;
                /* G in a pointer makes everything below it global. */
                global |= pte & PTE_G;
                if (!(pte & (PTE_R | PTE_X))) {
                        /* Pointer to the next level; A/D/U must be zero there. */
                        if (level == 0 || (pte & (PTE_A | PTE_D | PTE_U)))
                                return page_fault(type);
                        table = ppn << PAGE_SHIFT;
                        continue;
                }

                /* Leaf: permissions. */
                if (priv == PRIV_U) {
                        if (!(pte & PTE_U))
                                return page_fault(type);
                } else if (pte & PTE_U) {
                        /* S-mode never executes user pages; reads/writes them only with SUM. */
                        if (type == ACCESS_FETCH || !(h->mstatus & MSTATUS_SUM))
                                return page_fault(type);
                }
                switch (type) {
                case ACCESS_READ:
                        if (!(pte & PTE_R) && !((h->mstatus & MSTATUS_MXR) && (pte & PTE_X)))
                                return page_fault(type);
                        break;
                case ACCESS_WRITE:
                        if (!(pte & PTE_W))
                                return page_fault(type);
                        break;
                default:
                        if (!(pte & PTE_X))
                                return page_fault(type);
                }

                /* A superpage's low PPN bits must be zero. */
                uint64_t low_mask = (1ULL << (9 * level)) - 1;
                if (ppn & low_mask)
                        return page_fault(type);

                /* Hardware A/D update (as QEMU does), so Linux needs no extra faults. */
                uint64_t want = PTE_A | (type == ACCESS_WRITE ? PTE_D : 0);
                if ((pte & want) != want) {
                        if (!pmp_allows(h, pte_addr, 8, ACCESS_WRITE, PRIV_S))
                                return access_fault(type);
                        pte |= want;
                        memcpy(p, &pte, 8);
                        physmem_ram_mark_range(h->mem, pte_addr, 8);
                }

                uint64_t page_ppn = ppn | ((vaddr >> PAGE_SHIFT) & low_mask);
                *ret_paddr = (page_ppn << PAGE_SHIFT) | (vaddr & (PAGE_SIZE - 1));
                h->translation_global = global != 0;
                return 0;
        }

        return page_fault(type);
}

static void table_make_live(TlbContext *c, unsigned r, unsigned t) {
        if (hart_tlb_table_live(c, r, t))
                return;
        for (unsigned i = 0; i < TLB_SIZE; i++)
                c->entries[r][t][i].tag = TLB_INVALID;
        memset(c->global[r][t], 0, sizeof(c->global[r][t]));
        c->stale &= (uint16_t) ~(1u << (r * 3 + t));
}

void hart_update_regime(Hart *h) {
        unsigned data_priv = effective_priv(h, ACCESS_READ);
        unsigned data_regime, fetch_regime;

        switch (data_priv) {
        case PRIV_M:
                data_regime = TLB_REGIME_M;
                break;
        case PRIV_S:
                data_regime = (h->mstatus & MSTATUS_SUM) ? TLB_REGIME_S_SUM : TLB_REGIME_S;
                break;
        default:
                data_regime = TLB_REGIME_U;
        }
        switch (h->priv) {
        case PRIV_M:
                fetch_regime = TLB_REGIME_M;
                break;
        case PRIV_S:
                fetch_regime = TLB_REGIME_S;
                break;
        default:
                fetch_regime = TLB_REGIME_U;
        }

        TlbContext *c = &h->tlb[h->tlb_current];
        if (_unlikely_(c->stale)) {
                table_make_live(c, data_regime, ACCESS_READ);
                table_make_live(c, data_regime, ACCESS_WRITE);
                table_make_live(c, fetch_regime, ACCESS_FETCH);
        }
        h->tlb_load = c->entries[data_regime][ACCESS_READ];
        h->tlb_store = c->entries[data_regime][ACCESS_WRITE];
        h->tlb_fetch = c->entries[fetch_regime][ACCESS_FETCH];
}

/* Callers tell the JIT (jit_tlb_flushed): its jump cache holds virtual-address shortcuts. */
static void context_clear(TlbContext *c) {
        c->stale = (1u << (_TLB_REGIME_MAX * 3)) - 1;
}

/* The address space a context is keyed by: Bare ignores ASID and root, M-mode-only code never looks. */
static uint64_t address_space(uint64_t satp) {
        return (satp >> SATP_MODE_SHIFT) == SATP_MODE_BARE ? 0 : satp;
}

static void select_context(Hart *h, unsigned i) {
        h->tlb_current = i;
        h->tlb[i].last_used = ++h->tlb_clock;
        /* Virtual-address shortcuts (the JIT's jump cache) are kept per context. */
        jit_tlb_context_selected(h->jit, i);
        hart_update_regime(h);
}

/*
 * Only the context selected now is cleared: the others become free, and a
 * free context is cleared when it is next selected (hart_tlb_switch()), so
 * that contexts a guest never uses are never written (they are 300 KiB
 * each) and a flush costs one context, not all of them.
 */
void hart_tlb_flush_all(Hart *h) {
        for (unsigned i = 0; i < TLB_CONTEXTS; i++)
                h->tlb[i].last_used = 0;
        context_clear(&h->tlb[0]);
        h->tlb_clock = 0;
        h->tlb[0].satp = address_space(h->satp);
        jit_tlb_flushed(h->jit);
        select_context(h, 0);
}

void hart_drop_write_tlb(Hart *h) {
        for (unsigned c = 0; c < TLB_CONTEXTS; c++) {
                if (!h->tlb[c].last_used)
                        continue;       /* free: cleared before it is used again */
                for (unsigned r = 0; r < _TLB_REGIME_MAX; r++)
                        if (hart_tlb_table_live(&h->tlb[c], r, ACCESS_WRITE))
                                for (unsigned i = 0; i < TLB_SIZE; i++)
                                        h->tlb[c].entries[r][ACCESS_WRITE][i].tag = TLB_INVALID;
        }
}

void hart_tlb_switch(Hart *h) {
        uint64_t space = address_space(h->satp);
        uint64_t asid = space & SATP_ASID_MASK;
        unsigned victim = 0;

        for (unsigned i = 0; i < TLB_CONTEXTS; i++) {
                TlbContext *c = &h->tlb[i];

                if (c->last_used && (c->satp & SATP_ASID_MASK) == asid) {
                        /*
                         * The same ASID with another root or mode: the
                         * guest reused the ASID and must fence, but a
                         * guest that relies on the satp write itself (as
                         * without ASIDs) stays correct too.
                         */
                        if (c->satp != space) {
                                context_clear(c);
                                c->satp = space;
                                jit_tlb_flushed(h->jit);
                        }
                        select_context(h, i);
                        return;
                }
                if (c->last_used < h->tlb[victim].last_used)
                        victim = i;
        }
        context_clear(&h->tlb[victim]);
        h->tlb[victim].satp = space;
        jit_tlb_flushed(h->jit);
        select_context(h, victim);
}

static void context_fence(TlbContext *c, bool has_va, uint64_t va, bool keep_global) {
        unsigned first = has_va ? (va >> PAGE_SHIFT) & (TLB_SIZE - 1) : 0;
        unsigned last = has_va ? first : TLB_SIZE - 1;

        for (unsigned r = 0; r < _TLB_REGIME_MAX; r++)
                for (unsigned t = 0; t < 3; t++)
                        for (unsigned i = first; i <= last && hart_tlb_table_live(c, r, t); i++) {
                                TlbEntry *e = &c->entries[r][t][i];
                                if (keep_global && c->global[r][t][i])
                                        continue;
                                if (has_va && e->tag != (va & PAGE_MASK))
                                        continue;
                                e->tag = TLB_INVALID;
                                c->global[r][t][i] = false;
                        }
}

void hart_tlb_fence(Hart *h, bool has_va, uint64_t va, bool has_asid, uint64_t asid) {
        if (!has_va && !has_asid) {
                hart_tlb_flush_all(h);
                return;
        }
        asid = (asid << SATP_ASID_SHIFT) & SATP_ASID_MASK;
        for (unsigned i = 0; i < TLB_CONTEXTS; i++) {
                TlbContext *c = &h->tlb[i];
                if (!c->last_used || (has_asid && (c->satp & SATP_ASID_MASK) != asid))
                        continue;
                context_fence(c, has_va, va, has_asid);
        }
        if (has_va)
                jit_tlb_page_flushed(h->jit, va);
        else
                jit_tlb_flushed(h->jit);
}
