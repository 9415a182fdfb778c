/* SPDX-License-Identifier: MIT */

/*
 * The interpreter: fetch through the TLB, decode, execute. Loads, stores and
 * fetches hit a direct-mapped TLB on the fast path (one compare, one
 * host access); everything else (misses, MMIO, misaligned and page-crossing
 * accesses, faults) goes through the slow paths below.
 *
 * Interrupts are checked at slice boundaries: hart_run() executes slices of
 * a few thousand instructions, and instructions that may unmask an
 * interrupt (CSR writes, xRET, WFI) end the current slice early.
 */

#include <string.h>
#include <sys/mman.h>

#include "hart-internal.h"
#include "decode.h"
#include "jit/jit.h"
#include "machine/physmem.h"
#include "macro.h"

#define SLICE_INSTRUCTIONS 4096

static inline int64_t sext32(uint64_t v) {
        return (int64_t) (int32_t) v;
}

/* hart_init() on memory known to be zero: pages of the TLB and decode cache stay untouched until used. */
static void hart_init_zeroed(Hart *h, PhysMem *mem, uint64_t hartid) {
        /* The TLB's empty state is not zero (an empty entry has an invalid tag): it is made empty explicitly. */
        hart_tlb_flush_all(h);
        h->mem = mem;
        h->mhartid = hartid;
        pthread_mutex_init(&h->wfi_lock, NULL);
        pthread_cond_init(&h->wfi_cond, NULL);
        hart_reset(h, 0);
}

void hart_init(Hart *h, PhysMem *mem, uint64_t hartid) {
        /* Every field starts at zero, whatever is added later; the decode cache's empty state is all zeroes. */
        memset(h, 0, sizeof(*h));
        hart_init_zeroed(h, mem, hartid);
}

Hart *hart_new(PhysMem *mem, uint64_t hartid, HartClock clock, void *clock_opaque) {
        /*
         * Fresh anonymous pages are zero and cost nothing until touched: most
         * of a Hart is its TLB contexts and decode cache, which a guest fills
         * only as far as it uses them (memset would make all of it resident).
         */
        Hart *h = mmap(NULL, sizeof(Hart), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        if (h == MAP_FAILED)
                return NULL;
        hart_init_zeroed(h, mem, hartid);
        h->read_time = clock;
        h->time_opaque = clock_opaque;
        return h;
}

Hart *hart_free(Hart *h) {
        if (!h)
                return NULL;
        hart_destroy(h);
        munmap(h, sizeof(Hart));
        return NULL;
}

void hart_destroy(Hart *h) {
        h->jit = jit_free(h->jit);
        pthread_mutex_destroy(&h->wfi_lock);
        pthread_cond_destroy(&h->wfi_cond);
}

void hart_reset(Hart *h, uint64_t pc) {
        memset(h->x, 0, sizeof(h->x));
        memset(&h->fpu, 0, sizeof(h->fpu));
        h->pc = pc;
        h->priv = PRIV_M;
        /* RV64 with I M A F D C S U; MXL=2 (64-bit). */
        h->misa = (2ULL << 62) | (1 << ('I' - 'A')) | (1 << ('M' - 'A')) | (1 << ('A' - 'A')) |
                (1 << ('F' - 'A')) | (1 << ('D' - 'A')) | (1 << ('C' - 'A')) | (1 << ('S' - 'A')) |
                (1 << ('U' - 'A'));
        h->mstatus = (2ULL << 32) | (2ULL << 34); /* UXL = SXL = 64-bit */
        h->medeleg = h->mideleg = 0;
        h->mie = h->mip_sw = 0;
        atomic_store(&h->mip_ext, 0);
        h->mtvec = h->stvec = 0;
        h->mscratch = h->sscratch = 0;
        h->mepc = h->sepc = h->mcause = h->scause = h->mtval = h->stval = 0;
        h->mcounteren = h->scounteren = h->mcountinhibit = 0;
        h->menvcfg = h->senvcfg = 0;
        h->satp = 0;
        h->stimecmp = UINT64_MAX;
        memset(&h->pmp, 0, sizeof(h->pmp));
        h->reservation = UINT64_MAX;
        h->instret = 0;
        h->in_wfi = false;
        hart_tlb_flush_all(h);
        hart_update_regime(h);
        jit_invalidate_all(h->jit);
}

int hart_set_engine(Hart *h, HartEngine engine) {
        int r;

        if (engine == HART_ENGINE_INTERP) {
                h->jit = jit_free(h->jit);
                return 0;
        }
        if (h->jit)
                return 0;
        r = jit_new(h, &h->jit);
        if (r < 0)
                return r;
        /* Pages that now get code must leave the store TLB: start from an empty one. */
        hart_tlb_flush_all(h);
        return 0;
}

void hart_kick(Hart *h) {
        atomic_store_explicit(&h->kick, true, memory_order_release);
        pthread_mutex_lock(&h->wfi_lock);
        pthread_cond_broadcast(&h->wfi_cond);
        pthread_mutex_unlock(&h->wfi_lock);
}

void hart_set_irq(Hart *h, uint64_t mip_bit, bool level) {
        uint64_t old;

        if (level)
                old = atomic_fetch_or(&h->mip_ext, mip_bit);
        else
                old = atomic_fetch_and(&h->mip_ext, ~mip_bit);

        if (level && !(old & mip_bit))
                hart_kick(h);
}

/* ---- traps ---- */

static void trap_enter(Hart *h, uint64_t cause, uint64_t tval) {
        bool interrupt = cause & CAUSE_INTERRUPT;
        uint64_t code = cause & ~CAUSE_INTERRUPT;
        uint64_t deleg = interrupt ? h->mideleg : h->medeleg;

        h->in_wfi = false;

        if (h->priv <= PRIV_S && code < 64 && ((deleg >> code) & 1)) {
                h->scause = cause;
                h->sepc = h->pc;
                h->stval = tval;
                h->mstatus = (h->mstatus & ~(MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_SIE)) |
                        ((h->mstatus & MSTATUS_SIE) ? MSTATUS_SPIE : 0) |
                        (h->priv == PRIV_S ? MSTATUS_SPP : 0);
                h->priv = PRIV_S;
                h->pc = (h->stvec & ~3ULL) + ((interrupt && (h->stvec & 1)) ? 4 * code : 0);
        } else {
                h->mcause = cause;
                h->mepc = h->pc;
                h->mtval = tval;
                h->mstatus = (h->mstatus & ~(MSTATUS_MPIE | MSTATUS_MPP | MSTATUS_MIE)) |
                        ((h->mstatus & MSTATUS_MIE) ? MSTATUS_MPIE : 0) |
                        ((uint64_t) h->priv << MSTATUS_MPP_SHIFT);
                h->priv = PRIV_M;
                h->pc = (h->mtvec & ~3ULL) + ((interrupt && (h->mtvec & 1)) ? 4 * code : 0);
        }
        hart_update_regime(h);
}

void hart_raise_exception(Hart *h, uint64_t cause, uint64_t tval) {
        trap_enter(h, cause, tval);
}

uint64_t hart_pending_interrupt(Hart *h) {
        uint64_t mip = h->mip_sw | atomic_load_explicit(&h->mip_ext, memory_order_acquire);
        uint64_t pending, m_pending, s_pending;
        static const uint64_t priority[] = { MIP_MEIP, MIP_MSIP, MIP_MTIP, MIP_SEIP, MIP_SSIP, MIP_STIP };

        if ((h->menvcfg & MENVCFG_STCE) && h->read_time(h->time_opaque) >= h->stimecmp)
                mip |= MIP_STIP;

        pending = mip & h->mie;
        if (!pending)
                return 0;

        m_pending = pending & ~h->mideleg;
        if (!(h->priv < PRIV_M || (h->mstatus & MSTATUS_MIE)))
                m_pending = 0;
        s_pending = pending & h->mideleg;
        if (!(h->priv < PRIV_S || (h->priv == PRIV_S && (h->mstatus & MSTATUS_SIE))))
                s_pending = 0;

        for (unsigned i = 0; i < ELEMENTSOF(priority); i++)
                if (m_pending & priority[i])
                        return priority[i];
        for (unsigned i = 0; i < ELEMENTSOF(priority); i++)
                if (s_pending & priority[i])
                        return priority[i];
        return 0;
}

static bool take_interrupt(Hart *h) {
        uint64_t irq = hart_pending_interrupt(h);

        if (!irq)
                return false;
        trap_enter(h, CAUSE_INTERRUPT | (uint64_t) __builtin_ctzll(irq), 0);
        return true;
}

/* ---- memory: slow paths ---- */

static unsigned data_priv(const Hart *h) {
        if (h->priv == PRIV_M && (h->mstatus & MSTATUS_MPRV))
                return (h->mstatus & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT;
        return h->priv;
}

static uint8_t *tlb_enter(Hart *h, uint64_t va, uint64_t pa, int type, unsigned priv);

/*
 * Translates and, when the whole page is plain memory with uniform PMP
 * permissions, enters it into the TLB. Returns the host pointer for the
 * access or NULL for MMIO (with *ret_paddr set); on a fault raises the
 * exception and returns NULL with *ret_fault set.
 */
static uint8_t *translate_access(Hart *h, uint64_t va, unsigned size, int type, uint64_t *ret_paddr,
                                 int64_t *ret_fb_page, bool *ret_fault) {
        unsigned priv = type == ACCESS_FETCH ? h->priv : data_priv(h);
        uint64_t pa;
        int cause;
        uint8_t *p;

        *ret_fault = false;
        cause = mmu_translate(h, va, type, &pa);
        if (cause) {
                trap_enter(h, (uint64_t) cause, va);
                *ret_fault = true;
                return NULL;
        }
        if (!pmp_allows(h, pa, size, type, priv)) {
                trap_enter(h, type == ACCESS_READ ? CAUSE_LOAD_ACCESS :
                                      type == ACCESS_WRITE ? CAUSE_STORE_ACCESS : CAUSE_FETCH_ACCESS, va);
                *ret_fault = true;
                return NULL;
        }

        *ret_paddr = pa;
        p = physmem_host_ptr(h->mem, pa, size, ret_fb_page);
        if (!p)
                return NULL;

        /* A store to translated code drops the page's translations (it was kept out of the store TLB). */
        if (type == ACCESS_WRITE && jit_page_has_code(h->jit, pa))
                jit_invalidate_page(h->jit, pa);
        /* Migration: the page is dirty before any write entry for it exists (hart_drop_write_tlb()). */
        if (type == ACCESS_WRITE)
                physmem_ram_mark_range(h->mem, pa, size);
        tlb_enter(h, va, pa, type, priv);
        return p;
}

/*
 * Enters the page of 'va' (at physical 'pa', just translated) into the TLB
 * for 'type' if it is all memory and PMP treats it uniformly; framebuffer
 * pages are never entered for stores (their slow path marks them dirty).
 * Returns the page's host address, or NULL if it was not entered.
 */
static uint8_t *tlb_enter(Hart *h, uint64_t va, uint64_t pa, int type, unsigned priv) {
        uint64_t page_pa = pa & PAGE_MASK;
        int64_t fb_page;
        uint8_t *page = physmem_host_ptr(h->mem, page_pa, PAGE_SIZE, &fb_page);

        if (!page || !pmp_allows(h, page_pa, PAGE_SIZE, type, priv) || (type != ACCESS_READ && fb_page >= 0))
                return NULL;
        TlbEntry *table = type == ACCESS_READ ? h->tlb_load : type == ACCESS_WRITE ? h->tlb_store : h->tlb_fetch;
        TlbEntry *e = &table[(va >> PAGE_SHIFT) & (TLB_SIZE - 1)];
        e->tag = va & PAGE_MASK;
        e->addend = (uintptr_t) page - (uintptr_t) (va & PAGE_MASK);
        *hart_tlb_global_flag(h, e) = h->translation_global;
        return page;
}

uint8_t *hart_tlb_refill(Hart *h, uint64_t va, unsigned size, int type) {
        unsigned priv = data_priv(h);
        uint64_t pa;
        uint8_t *page;

        /* Misaligned, a fault, PMP, MMIO, the framebuffer, code: the interpreter's business. */
        if (va & (size - 1))
                return NULL;
        if (mmu_translate(h, va, type, &pa) || !pmp_allows(h, pa, size, type, priv))
                return NULL;
        if (type == ACCESS_WRITE && jit_page_has_code(h->jit, pa))
                return NULL;
        page = tlb_enter(h, va, pa, type, priv);
        if (!page)
                return NULL;
        if (type == ACCESS_WRITE)
                physmem_ram_mark_range(h->mem, pa, size);
        return page + (va & (PAGE_SIZE - 1));
}

static bool load_slow(Hart *h, uint64_t va, unsigned size, uint64_t *ret) {
        uint64_t pa, v = 0;
        int64_t fb_page;
        bool fault;
        uint8_t *p;

        if ((va & (PAGE_SIZE - 1)) + size > PAGE_SIZE) {
                /* Misaligned across a page boundary: byte by byte (little-endian). */
                for (unsigned i = 0; i < size; i++) {
                        uint64_t b;
                        if (!load_slow(h, va + i, 1, &b))
                                return false;
                        v |= b << (8 * i);
                }
                *ret = v;
                return true;
        }

        p = translate_access(h, va, size, ACCESS_READ, &pa, &fb_page, &fault);
        if (fault)
                return false;
        if (p) {
                memcpy(&v, p, size);
        } else if (physmem_mmio_read(h->mem, pa, size, &v) < 0) {
                trap_enter(h, CAUSE_LOAD_ACCESS, va);
                return false;
        }
        *ret = v;
        return true;
}

static bool store_slow(Hart *h, uint64_t va, unsigned size, uint64_t v) {
        uint64_t pa;
        int64_t fb_page;
        bool fault;
        uint8_t *p;

        if ((va & (PAGE_SIZE - 1)) + size > PAGE_SIZE) {
                /* Check both pages before writing anything, so a fault leaves memory unchanged. */
                uint64_t second = (va | (PAGE_SIZE - 1)) + 1;
                int cause = mmu_translate(h, va, ACCESS_WRITE, &pa);
                if (cause) {
                        trap_enter(h, (uint64_t) cause, va);
                        return false;
                }
                cause = mmu_translate(h, second, ACCESS_WRITE, &pa);
                if (cause) {
                        trap_enter(h, (uint64_t) cause, second);
                        return false;
                }
                for (unsigned i = 0; i < size; i++)
                        if (!store_slow(h, va + i, 1, (v >> (8 * i)) & 0xff))
                                return false;
                return true;
        }

        p = translate_access(h, va, size, ACCESS_WRITE, &pa, &fb_page, &fault);
        if (fault)
                return false;
        if (p) {
                memcpy(p, &v, size);
                if (fb_page >= 0)
                        physmem_fb_mark_range(h->mem, pa - h->mem->fb_base, size);
        } else if (physmem_mmio_write(h->mem, pa, size, v) < 0) {
                trap_enter(h, CAUSE_STORE_ACCESS, va);
                return false;
        }
        return true;
}

/* ---- memory: fast paths ---- */

#define DEFINE_LOAD(name, type, size)                                                   \
        static inline bool name(Hart *h, uint64_t va, uint64_t *ret) {                  \
                TlbEntry *e = &h->tlb_load[(va >> PAGE_SHIFT) & (TLB_SIZE - 1)];        \
                if (_likely_(e->tag == (va & (PAGE_MASK | ((size) - 1))))) {            \
                        type v;                                                         \
                        memcpy(&v, (void *) (uintptr_t) (va + e->addend), size);        \
                        *ret = (uint64_t) v;                                            \
                        return true;                                                    \
                }                                                                       \
                uint64_t raw;                                                           \
                if (!load_slow(h, va, size, &raw))                                      \
                        return false;                                                   \
                *ret = (uint64_t) (type) raw;                                           \
                return true;                                                            \
        }

DEFINE_LOAD(load_i8, int8_t, 1)
DEFINE_LOAD(load_u8, uint8_t, 1)
DEFINE_LOAD(load_i16, int16_t, 2)
DEFINE_LOAD(load_u16, uint16_t, 2)
DEFINE_LOAD(load_i32, int32_t, 4)
DEFINE_LOAD(load_u32, uint32_t, 4)
DEFINE_LOAD(load_u64, uint64_t, 8)

static inline bool store(Hart *h, uint64_t va, unsigned size, uint64_t v) {
        TlbEntry *e = &h->tlb_store[(va >> PAGE_SHIFT) & (TLB_SIZE - 1)];

        if (_likely_(e->tag == (va & (PAGE_MASK | (size - 1))))) {
                void *p = (void *) (uintptr_t) (va + e->addend);
                switch (size) {
                case 1: { uint8_t b = v; memcpy(p, &b, 1); break; }
                case 2: { uint16_t w = v; memcpy(p, &w, 2); break; }
                case 4: { uint32_t w = v; memcpy(p, &w, 4); break; }
                default: memcpy(p, &v, 8);
                }
                return true;
        }
        return store_slow(h, va, size, v);
}

/*
 * AMOs and LR/SC need the address aligned and a host pointer with write
 * permission (a fault is reported as a store/AMO fault). MMIO is not
 * atomic-capable here: access fault.
 */
static void *amo_ptr(Hart *h, uint64_t va, unsigned size, bool is_lr, uint64_t *ret_pa) {
        uint64_t pa;
        int64_t fb_page;
        bool fault;
        uint8_t *p;

        if (va & (size - 1)) {
                trap_enter(h, is_lr ? CAUSE_MISALIGNED_LOAD : CAUSE_MISALIGNED_STORE, va);
                return NULL;
        }
        /* TLB hit on a RAM page (glibc's locks make LR/SC frequent): no page walk. */
        const TlbEntry *e = &(is_lr ? h->tlb_load : h->tlb_store)[(va >> PAGE_SHIFT) & (TLB_SIZE - 1)];
        if (e->tag == (va & PAGE_MASK)) {
                uint64_t off = (uint64_t) ((uintptr_t) (va + e->addend) - (uintptr_t) h->mem->ram);
                if (off < h->mem->ram_size) {
                        *ret_pa = h->mem->ram_base + off;
                        return h->mem->ram + off;
                }
        }
        p = translate_access(h, va, size, is_lr ? ACCESS_READ : ACCESS_WRITE, &pa, &fb_page, &fault);
        if (fault)
                return NULL;
        if (!p || fb_page >= 0) {
                trap_enter(h, is_lr ? CAUSE_LOAD_ACCESS : CAUSE_STORE_ACCESS, va);
                return NULL;
        }
        *ret_pa = pa;
        return p;
}

static bool fetch_slow(Hart *h, uint64_t pc, uint32_t *ret) {
        uint64_t pa;
        int64_t fb_page;
        bool fault;
        uint8_t *p;
        uint16_t lo, hi;

        p = translate_access(h, pc, 2, ACCESS_FETCH, &pa, &fb_page, &fault);
        if (fault)
                return false;
        if (!p || fb_page >= 0) {
                trap_enter(h, CAUSE_FETCH_ACCESS, pc);
                return false;
        }
        memcpy(&lo, p, 2);
        if ((lo & 3) != 3) {
                *ret = lo;
                return true;
        }
        /* A fault on the second half is reported with tval = pc + 2 and epc = pc. */
        p = translate_access(h, pc + 2, 2, ACCESS_FETCH, &pa, &fb_page, &fault);
        if (fault)
                return false;
        if (!p || fb_page >= 0) {
                trap_enter(h, CAUSE_FETCH_ACCESS, pc + 2);
                return false;
        }
        memcpy(&hi, p, 2);
        *ret = (uint32_t) hi << 16 | lo;
        return true;
}

static inline bool fetch(Hart *h, uint64_t pc, uint32_t *ret) {
        TlbEntry *e = &h->tlb_fetch[(pc >> PAGE_SHIFT) & (TLB_SIZE - 1)];

        if (_likely_(e->tag == (pc & PAGE_MASK) && (pc & (PAGE_SIZE - 1)) <= PAGE_SIZE - 4)) {
                memcpy(ret, (void *) (uintptr_t) (pc + e->addend), 4);
                return true;
        }
        return fetch_slow(h, pc, ret);
}

/* ---- execution ---- */

static inline uint64_t mulhu64(uint64_t a, uint64_t b) {
        return (uint64_t) (((unsigned __int128) a * b) >> 64);
}

static inline int64_t mulh64(int64_t a, int64_t b) {
        return (int64_t) (((__int128) a * b) >> 64);
}

static inline int64_t mulhsu64(int64_t a, uint64_t b) {
        return (int64_t) (((__int128) a * (unsigned __int128) b) >> 64);
}

static uint64_t amo_compute(uint32_t f5, uint64_t old, uint64_t src, bool word) {
        if (word) {
                old = (uint64_t) sext32(old);
                src = (uint64_t) sext32(src);
        }
        switch (f5) {
        case 0x01: return src;                                                  /* SWAP */
        case 0x00: return old + src;                                            /* ADD */
        case 0x04: return old ^ src;                                            /* XOR */
        case 0x0c: return old & src;                                            /* AND */
        case 0x08: return old | src;                                            /* OR */
        case 0x10: return (int64_t) old < (int64_t) src ? old : src;            /* MIN */
        case 0x14: return (int64_t) old > (int64_t) src ? old : src;            /* MAX */
        case 0x18: {                                                            /* MINU */
                uint64_t a = word ? (uint32_t) old : old, b = word ? (uint32_t) src : src;
                return a < b ? old : src;
        }
        default: {                                                              /* MAXU */
                uint64_t a = word ? (uint32_t) old : old, b = word ? (uint32_t) src : src;
                return a > b ? old : src;
        }
        }
}

static bool valid_amo(uint32_t f5) {
        switch (f5) {
        case 0x00: case 0x01: case 0x04: case 0x08: case 0x0c:
        case 0x10: case 0x14: case 0x18: case 0x1c:
                return true;
        default:
                return false;
        }
}

/* Executes an A-extension instruction; returns false if it trapped or is illegal. */
static bool exec_amo(Hart *h, uint32_t insn, unsigned rd, uint64_t a, uint64_t b, bool *ret_illegal) {
        uint32_t f3 = (insn >> 12) & 7, f5 = insn >> 27;
        unsigned size = f3 == 2 ? 4 : 8;
        uint64_t pa, old, result;
        void *p;

        if (f3 != 2 && f3 != 3) {
                *ret_illegal = true;
                return false;
        }

        if (f5 == 0x02) { /* LR */
                if (((insn >> 20) & 31) != 0) {
                        *ret_illegal = true;
                        return false;
                }
                p = amo_ptr(h, a, size, true, &pa);
                if (!p)
                        return false;
                if (size == 4) {
                        int32_t w;
                        memcpy(&w, p, 4);
                        old = (uint64_t) (int64_t) w;
                } else
                        memcpy(&old, p, 8);
                h->reservation = pa;
                h->x[rd] = old;
                return true;
        }
        if (f5 == 0x03) { /* SC */
                p = amo_ptr(h, a, size, false, &pa);
                if (!p)
                        return false;
                if (h->reservation == pa) {
                        memcpy(p, &b, size);
                        h->x[rd] = 0;
                } else
                        h->x[rd] = 1;
                h->reservation = UINT64_MAX;
                return true;
        }
        if (!valid_amo(f5)) {
                *ret_illegal = true;
                return false;
        }

        p = amo_ptr(h, a, size, false, &pa);
        if (!p)
                return false;
        if (size == 4) {
                uint32_t w;
                memcpy(&w, p, 4);
                old = w;
        } else
                memcpy(&old, p, 8);
        result = amo_compute(f5, old, b, size == 4);
        memcpy(p, &result, size);
        h->x[rd] = size == 4 ? (uint64_t) sext32(old) : old;
        return true;
}

static inline bool fp_enabled(const Hart *h) {
        return (h->mstatus & MSTATUS_FS) != 0;
}

static inline void fp_dirty(Hart *h) {
        h->mstatus |= MSTATUS_FS;
}

/* Ends the current slice so pending interrupts are looked at before the next instruction. */
static inline void end_slice(Hart *h) {
        h->slice_end = 0;
}

typedef enum SystemResult {
        SYSTEM_NEXT,            /* continue with the next instruction */
        SYSTEM_JUMPED,          /* pc was set (xRET) */
        SYSTEM_TRAPPED,         /* an exception was taken */
        SYSTEM_ILLEGAL,
} SystemResult;

static SystemResult exec_system(Hart *h, uint32_t insn, unsigned rd, unsigned rs1) {
        uint32_t f3 = (insn >> 12) & 7;
        unsigned csr = insn >> 20;

        if (f3 == 0) {
                uint32_t f7 = insn >> 25;
                if (rd != 0) {
                        return SYSTEM_ILLEGAL;
                }
                if (f7 == 0x09) { /* SFENCE.VMA */
                        if (h->priv == PRIV_U || (h->priv == PRIV_S && (h->mstatus & MSTATUS_TVM))) {
                                return SYSTEM_ILLEGAL;
                        }
                        unsigned rs2 = (insn >> 20) & 31;
                        hart_tlb_fence(h, rs1 != 0, h->x[rs1], rs2 != 0, h->x[rs2]);
                        return SYSTEM_NEXT;
                }
                if (rs1 != 0) {
                        return SYSTEM_ILLEGAL;
                }
                switch (csr) {
                case 0x000: /* ECALL */
                        trap_enter(h, h->priv == PRIV_U ? CAUSE_USER_ECALL :
                                      h->priv == PRIV_S ? CAUSE_SUPERVISOR_ECALL : CAUSE_MACHINE_ECALL, 0);
                        return SYSTEM_TRAPPED;
                case 0x001: /* EBREAK */
                        trap_enter(h, CAUSE_BREAKPOINT, h->pc);
                        return SYSTEM_TRAPPED;
                case 0x102: /* SRET */
                        if (h->priv == PRIV_U || (h->priv == PRIV_S && (h->mstatus & MSTATUS_TSR))) {
                                return SYSTEM_ILLEGAL;
                        }
                        h->priv = (h->mstatus & MSTATUS_SPP) ? PRIV_S : PRIV_U;
                        h->mstatus = (h->mstatus & ~(MSTATUS_SIE | MSTATUS_SPP)) |
                                ((h->mstatus & MSTATUS_SPIE) ? MSTATUS_SIE : 0) | MSTATUS_SPIE;
                        if (h->priv != PRIV_M)
                                h->mstatus &= ~MSTATUS_MPRV;
                        h->pc = h->sepc;
                        hart_update_regime(h);
                        end_slice(h);
                        return SYSTEM_JUMPED;
                case 0x302: { /* MRET */
                        if (h->priv != PRIV_M) {
                                return SYSTEM_ILLEGAL;
                        }
                        unsigned mpp = (h->mstatus & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT;
                        h->priv = mpp;
                        h->mstatus = (h->mstatus & ~(MSTATUS_MIE | MSTATUS_MPP)) |
                                ((h->mstatus & MSTATUS_MPIE) ? MSTATUS_MIE : 0) | MSTATUS_MPIE;
                        if (h->priv != PRIV_M)
                                h->mstatus &= ~MSTATUS_MPRV;
                        h->pc = h->mepc;
                        hart_update_regime(h);
                        end_slice(h);
                        return SYSTEM_JUMPED;
                }
                case 0x105: /* WFI */
                        if (h->priv == PRIV_U || (h->priv == PRIV_S && (h->mstatus & MSTATUS_TW))) {
                                return SYSTEM_ILLEGAL;
                        }
                        h->in_wfi = true;
                        end_slice(h);
                        return SYSTEM_NEXT;
                default:
                        return SYSTEM_ILLEGAL;
                }
        }

        if (f3 == 4) {
                return SYSTEM_ILLEGAL;
        }

        /* Zicsr */
        uint64_t src = (f3 & 4) ? rs1 : h->x[rs1];
        unsigned op = f3 & 3;
        bool do_read = !(op == 1 && rd == 0);   /* CSRRW with rd=x0 does not read */
        bool do_write = op == 1 || rs1 != 0;    /* CSRRS/C with rs1=x0 (or uimm 0) do not write */
        uint64_t old = 0;

        if (do_read || op != 1) {
                if (csr_read(h, csr, &old) < 0) {
                        return SYSTEM_ILLEGAL;
                }
        }
        if (do_write) {
                uint64_t base = old;
                /* CSRRS/CSRRC on mip modify the software SEIP bit, not its OR with the device line. */
                if (csr == 0x344 && op != 1)
                        base = (old & ~MIP_SEIP) | (h->mip_sw & MIP_SEIP);
                uint64_t v = op == 1 ? src : op == 2 ? (base | src) : (base & ~src);
                if (csr_write(h, csr, v) < 0) {
                        return SYSTEM_ILLEGAL;
                }
                end_slice(h);
        }
        h->x[rd] = old;
        return SYSTEM_NEXT;
}

/*
 * Executes one decoded instruction at h->pc. On a trap, h->pc already
 * points at the handler and nothing else has changed.
 */
static inline void execute(Hart *h, const DecodedInsn *d) {
        uint64_t *x = h->x;
        unsigned rd = d->rd;
        uint64_t a = x[d->rs1], b = x[d->rs2];
        int64_t imm = d->imm;
        uint64_t v;

        switch ((Op) d->op) {
        case OP_LUI: v = (uint64_t) imm; break;
        case OP_AUIPC: v = h->pc + (uint64_t) imm; break;
        case OP_JAL:
                x[rd] = h->pc + d->len;
                h->pc += (uint64_t) imm;
                x[0] = 0;
                return;
        case OP_JALR: {
                uint64_t target = (a + (uint64_t) imm) & ~1ULL;
                x[rd] = h->pc + d->len;
                h->pc = target;
                x[0] = 0;
                return;
        }
#define BRANCH(cond) h->pc += (cond) ? (uint64_t) imm : d->len; return
        case OP_BEQ: BRANCH(a == b);
        case OP_BNE: BRANCH(a != b);
        case OP_BLT: BRANCH((int64_t) a < (int64_t) b);
        case OP_BGE: BRANCH((int64_t) a >= (int64_t) b);
        case OP_BLTU: BRANCH(a < b);
        case OP_BGEU: BRANCH(a >= b);
#undef BRANCH
#define LOAD(fn) if (!fn(h, a + (uint64_t) imm, &v)) return; break
        case OP_LB: LOAD(load_i8);
        case OP_LH: LOAD(load_i16);
        case OP_LW: LOAD(load_i32);
        case OP_LD: LOAD(load_u64);
        case OP_LBU: LOAD(load_u8);
        case OP_LHU: LOAD(load_u16);
        case OP_LWU: LOAD(load_u32);
#undef LOAD
#define STORE(size) if (!store(h, a + (uint64_t) imm, size, b)) return; h->pc += d->len; return
        case OP_SB: STORE(1);
        case OP_SH: STORE(2);
        case OP_SW: STORE(4);
        case OP_SD: STORE(8);
#undef STORE
        case OP_ADDI: v = a + (uint64_t) imm; break;
        case OP_SLTI: v = (int64_t) a < imm; break;
        case OP_SLTIU: v = a < (uint64_t) imm; break;
        case OP_XORI: v = a ^ (uint64_t) imm; break;
        case OP_ORI: v = a | (uint64_t) imm; break;
        case OP_ANDI: v = a & (uint64_t) imm; break;
        case OP_SLLI: v = a << imm; break;
        case OP_SRLI: v = a >> imm; break;
        case OP_SRAI: v = (uint64_t) ((int64_t) a >> imm); break;
        case OP_ADDIW: v = (uint64_t) sext32(a + (uint64_t) imm); break;
        case OP_SLLIW: v = (uint64_t) sext32((uint32_t) a << imm); break;
        case OP_SRLIW: v = (uint64_t) sext32((uint32_t) a >> imm); break;
        case OP_SRAIW: v = (uint64_t) sext32((uint32_t) ((int32_t) a >> imm)); break;
        case OP_ADD: v = a + b; break;
        case OP_SUB: v = a - b; break;
        case OP_SLL: v = a << (b & 63); break;
        case OP_SLT: v = (int64_t) a < (int64_t) b; break;
        case OP_SLTU: v = a < b; break;
        case OP_XOR: v = a ^ b; break;
        case OP_SRL: v = a >> (b & 63); break;
        case OP_SRA: v = (uint64_t) ((int64_t) a >> (b & 63)); break;
        case OP_OR: v = a | b; break;
        case OP_AND: v = a & b; break;
        case OP_MUL: v = a * b; break;
        case OP_MULH: v = (uint64_t) mulh64((int64_t) a, (int64_t) b); break;
        case OP_MULHSU: v = (uint64_t) mulhsu64((int64_t) a, b); break;
        case OP_MULHU: v = mulhu64(a, b); break;
        case OP_DIV:
                if (b == 0)
                        v = UINT64_MAX;
                else if ((int64_t) a == INT64_MIN && (int64_t) b == -1)
                        v = a;
                else
                        v = (uint64_t) ((int64_t) a / (int64_t) b);
                break;
        case OP_DIVU: v = b == 0 ? UINT64_MAX : a / b; break;
        case OP_REM:
                if (b == 0)
                        v = a;
                else if ((int64_t) a == INT64_MIN && (int64_t) b == -1)
                        v = 0;
                else
                        v = (uint64_t) ((int64_t) a % (int64_t) b);
                break;
        case OP_REMU: v = b == 0 ? a : a % b; break;
        case OP_ADDW: v = (uint64_t) sext32(a + b); break;
        case OP_SUBW: v = (uint64_t) sext32(a - b); break;
        case OP_SLLW: v = (uint64_t) sext32((uint32_t) a << (b & 31)); break;
        case OP_SRLW: v = (uint64_t) sext32((uint32_t) a >> (b & 31)); break;
        case OP_SRAW: v = (uint64_t) sext32((uint32_t) ((int32_t) a >> (b & 31))); break;
        case OP_MULW: v = (uint64_t) sext32((uint32_t) a * (uint32_t) b); break;
        case OP_DIVW: {
                int32_t sa = (int32_t) a, sb = (int32_t) b;
                if (sb == 0)
                        v = UINT64_MAX;
                else if (sa == INT32_MIN && sb == -1)
                        v = (uint64_t) (int64_t) sa;
                else
                        v = (uint64_t) (int64_t) (sa / sb);
                break;
        }
        case OP_DIVUW:
                v = (uint32_t) b == 0 ? UINT64_MAX : (uint64_t) sext32((uint32_t) a / (uint32_t) b);
                break;
        case OP_REMW: {
                int32_t sa = (int32_t) a, sb = (int32_t) b;
                if (sb == 0)
                        v = (uint64_t) (int64_t) sa;
                else if (sa == INT32_MIN && sb == -1)
                        v = 0;
                else
                        v = (uint64_t) (int64_t) (sa % sb);
                break;
        }
        case OP_REMUW:
                v = (uint32_t) b == 0 ? (uint64_t) sext32(a) : (uint64_t) sext32((uint32_t) a % (uint32_t) b);
                break;
        case OP_FENCE:
                if (d->len == 4 && ((d->raw >> 12) & 7) == 1) /* FENCE.I */
                        jit_fence_i(h->jit);
                else if (fence_orders_store_load(d->raw))
                        __atomic_thread_fence(__ATOMIC_SEQ_CST);
                h->pc += d->len;
                return;
        case OP_AMO: {
                bool illegal = false;
                if (!exec_amo(h, (uint32_t) imm, rd, a, b, &illegal)) {
                        if (illegal)
                                goto illegal;
                        return;
                }
                x[0] = 0;
                h->pc += d->len;
                return;
        }
        case OP_SYSTEM:
                switch (exec_system(h, (uint32_t) imm, rd, d->rs1)) {
                case SYSTEM_NEXT:
                        x[0] = 0;
                        h->pc += d->len;
                        return;
                case SYSTEM_ILLEGAL:
                        goto illegal;
                default:
                        x[0] = 0;
                        return;
                }
        case OP_FLW:
                if (!fp_enabled(h))
                        goto illegal;
                if (!load_u32(h, a + (uint64_t) imm, &v))
                        return;
                h->fpu.f[rd] = v | 0xffffffff00000000ULL;
                fp_dirty(h);
                h->pc += d->len;
                return;
        case OP_FLD:
                if (!fp_enabled(h))
                        goto illegal;
                if (!load_u64(h, a + (uint64_t) imm, &v))
                        return;
                h->fpu.f[rd] = v;
                fp_dirty(h);
                h->pc += d->len;
                return;
        case OP_FSW:
        case OP_FSD:
                if (!fp_enabled(h))
                        goto illegal;
                if (!store(h, a + (uint64_t) imm, d->op == OP_FSW ? 4 : 8, h->fpu.f[d->rs2]))
                        return;
                h->pc += d->len;
                return;
        case OP_FP:
                if (!fp_enabled(h) || fpu_execute(&h->fpu, x, (uint32_t) imm) < 0)
                        goto illegal;
                fp_dirty(h);
                x[0] = 0;
                h->pc += d->len;
                return;
        default:
                goto illegal;
        }

        x[rd] = v;
        x[0] = 0;
        h->pc += d->len;
        return;

illegal:
        /* xtval gets the instruction bits as fetched (16 bits for a compressed one). */
        trap_enter(h, CAUSE_ILLEGAL_INSTRUCTION, d->raw);
}

static inline void step(Hart *h) {
        uint32_t fetched, key;
        DecodedInsn *d;

        if (!fetch(h, h->pc, &fetched))
                return;

        key = decode_key(fetched);
        /* The translator steps only what it leaves to the interpreter: a corner of the cache is enough. */
        d = &h->dcache[(h->pc >> 1) & ((h->jit ? DCACHE_SIZE_JIT : DCACHE_SIZE) - 1)];
        if (_unlikely_(d->raw != key || d->op == OP_ILLEGAL))
                decode_insn(key, d);
        execute(h, d);
}

void hart_step(Hart *h) {
        step(h);
}

HartExit hart_run(Hart *h, uint64_t max_instructions) {
        uint64_t left = max_instructions;

        while (left > 0) {
                uint64_t slice;

                if (atomic_exchange_explicit(&h->kick, false, memory_order_acquire))
                        return HART_EXIT_KICK;

                /* A single step holds interrupts off, so that it stays on the instruction stepped. */
                bool hold_irqs = _unlikely_(h->debug_active) && h->debug.step;
                if (!hold_irqs && take_interrupt(h))
                        h->in_wfi = false;

                if (h->in_wfi) {
                        uint64_t mip = h->mip_sw | atomic_load(&h->mip_ext);
                        if ((h->menvcfg & MENVCFG_STCE) && h->read_time(h->time_opaque) >= h->stimecmp)
                                mip |= MIP_STIP;
                        /* WFI resumes on any pending enabled-in-mie interrupt, even if globally masked. */
                        if (!(mip & h->mie))
                                return HART_EXIT_WFI;
                        h->in_wfi = false;
                }

                slice = MIN(left, SLICE_INSTRUCTIONS);
                /*
                 * instret counts every instruction as it retires (CSR reads of it
                 * are exact) and doubles as the slice counter; end_slice() stops
                 * the loop by zeroing slice_end.
                 */
                h->slice_end = h->instret + slice;
                uint64_t executed = 0;
                if (_unlikely_(h->debug_active)) {
                        /* Debugging always runs the interpreter: every engine stops at the same place. */
                        executed = hart_debug_run_slice(h);
                        if (h->debug.stop.reason != HART_STOP_NONE)
                                return HART_EXIT_DEBUG;
                } else if (h->jit)
                        executed = jit_run_slice(h, left);
                else
                        while (h->instret < h->slice_end) {
                                step(h);
                                h->instret++;
                                executed++;
                        }
                left -= MIN(executed, left);
        }
        return HART_EXIT_BUDGET;
}

