/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The hart's insides, for the code in emulator/cpu (the interpreter, CSRs,
 * MMU, FPU, and other engines such as a translator) and for the CPU unit
 * tests. Everyone else uses hart.h.
 *
 * Engines: hart_run() owns what every engine shares (interrupts, WFI,
 * slices) and hands each slice to the selected engine: the interpreter's
 * step loop, or the translator (jit/jit.h) when hart_set_engine() chose it.
 *
 * Threading: everything in Hart belongs to the CPU thread, except
 *   - 'mip_ext' (interrupt lines driven by devices) and 'kick', which other
 *     threads change only through hart_set_irq() and hart_kick(),
 *     both lock-free (atomics) and wake a hart sleeping in WFI.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cpu/hart.h"
#include "decode.h"
#include "fpu.h"

/* menvcfg.STCE: Sstc's stimecmp is enabled. */
#define MENVCFG_STCE (1ULL << 63)

/* Exception causes */
enum {
        CAUSE_MISALIGNED_FETCH = 0,
        CAUSE_FETCH_ACCESS = 1,
        CAUSE_ILLEGAL_INSTRUCTION = 2,
        CAUSE_BREAKPOINT = 3,
        CAUSE_MISALIGNED_LOAD = 4,
        CAUSE_LOAD_ACCESS = 5,
        CAUSE_MISALIGNED_STORE = 6,
        CAUSE_STORE_ACCESS = 7,
        CAUSE_USER_ECALL = 8,
        CAUSE_SUPERVISOR_ECALL = 9,
        CAUSE_MACHINE_ECALL = 11,
        CAUSE_FETCH_PAGE_FAULT = 12,
        CAUSE_LOAD_PAGE_FAULT = 13,
        CAUSE_STORE_PAGE_FAULT = 15,
};
#define CAUSE_INTERRUPT (1ULL << 63)

/* mstatus bits */
#define MSTATUS_SIE (1ULL << 1)
#define MSTATUS_MIE (1ULL << 3)
#define MSTATUS_SPIE (1ULL << 5)
#define MSTATUS_MPIE (1ULL << 7)
#define MSTATUS_SPP (1ULL << 8)
#define MSTATUS_MPP_SHIFT 11
#define MSTATUS_MPP (3ULL << 11)
#define MSTATUS_FS_SHIFT 13
#define MSTATUS_FS (3ULL << 13)
#define MSTATUS_MPRV (1ULL << 17)
#define MSTATUS_SUM (1ULL << 18)
#define MSTATUS_MXR (1ULL << 19)
#define MSTATUS_TVM (1ULL << 20)
#define MSTATUS_TW (1ULL << 21)
#define MSTATUS_TSR (1ULL << 22)
#define MSTATUS_UXL (3ULL << 32)
#define MSTATUS_SXL (3ULL << 34)
#define MSTATUS_SD (1ULL << 63)

enum {
        ACCESS_READ = 0,
        ACCESS_WRITE = 1,
        ACCESS_FETCH = 2,
};

/*
 * Software TLB: direct-mapped, one table per access type, and one set of
 * tables per translation regime (see TLB_REGIME_*) so that the frequent
 * privilege switches (every trap and return) and SUM toggles (every
 * copy_to/from_user) need no flush. An entry maps a virtual page to a host
 * address: host = vaddr + addend. Pages that are not plain RAM (MMIO) are
 * never entered, nor are framebuffer pages for writes, so that every store
 * to the framebuffer takes the slow path, which marks it dirty. Entries are
 * 16 bytes: eight contexts of twelve tables are most of a hart's memory.
 */
#define TLB_BITS 10
#define TLB_SIZE (1u << TLB_BITS)
#define PAGE_SHIFT 12
#define PAGE_SIZE (1ULL << PAGE_SHIFT)
#define PAGE_MASK (~(PAGE_SIZE - 1))

typedef struct TlbEntry {
        uint64_t tag;           /* virtual page address; TLB_INVALID if empty */
        uintptr_t addend;       /* host pointer = vaddr + addend */
} TlbEntry;

#define TLB_INVALID (~0ULL)

/*
 * ASIDs: the TLB keeps one set of tables per recently used address space
 * (a context, keyed by satp's MODE, ASID and root), so that switching
 * between processes that the guest gave ASIDs needs no flush, at no cost
 * on the hit path, which still compares only the virtual page. A context
 * also records which entries came from global (PTE.G) mappings, which
 * SFENCE.VMA with an ASID leaves alone. Contexts are reused least
 * recently selected first.
 */
#define TLB_CONTEXTS 8
#define SATP_ASID_SHIFT 44
#define SATP_ASID_BITS 16
#define SATP_ASID_MASK (((1ULL << SATP_ASID_BITS) - 1) << SATP_ASID_SHIFT)

enum {
        TLB_REGIME_U,           /* user */
        TLB_REGIME_S,           /* supervisor, SUM=0 */
        TLB_REGIME_S_SUM,       /* supervisor, SUM=1 */
        TLB_REGIME_M,           /* machine (physical, PMP) */
        _TLB_REGIME_MAX,
};

typedef struct TlbContext {
        uint64_t satp;                  /* the address space: satp's MODE, ASID and root */
        uint64_t last_used;             /* Hart.tlb_clock when last selected; 0: free */
        /*
         * Tables (bit regime * 3 + access) emptied but not yet written: one is
         * cleared when hart_update_regime() first selects it, so that tables an
         * address space never uses (M-mode's, a fetch with SUM) are never
         * touched. Everything else skips them.
         */
        uint16_t stale;
        TlbEntry entries[_TLB_REGIME_MAX][3][TLB_SIZE];
        bool global[_TLB_REGIME_MAX][3][TLB_SIZE];      /* the entry maps a global page */
} TlbContext;

#define DCACHE_SIZE 65536
/* What the JIT's fallback steps use of it (CSRs, system instructions, TLB-miss loads and stores). */
#define DCACHE_SIZE_JIT 4096

typedef struct Pmp {
        uint8_t cfg[16];
        uint64_t addr[16];
} Pmp;

struct Hart {
        /* --- hot: keep first --- */
        uint64_t x[32];
        uint64_t pc;
        unsigned priv;
        uint64_t slice_end;             /* the slice ends when instret reaches this; 0 ends it now */
        TlbEntry *tlb_load;             /* tables of the current data regime */
        TlbEntry *tlb_store;
        TlbEntry *tlb_fetch;            /* tables of the current fetch regime */
        PhysMem *mem;
        uint64_t instret;
        struct Jit *jit;                /* the translating engine, or NULL for the interpreter */
        bool debug_active;              /* debug points set or a step asked for: hart_debug_run_slice() runs */

        FpuState fpu;

        /* --- CSRs --- */
        uint64_t mhartid;
        uint64_t mstatus;
        uint64_t misa;
        uint64_t medeleg, mideleg;
        uint64_t mie;
        uint64_t mip_sw;                /* SSIP, STIP, SEIP as written by software */
        _Atomic uint64_t mip_ext;       /* MSIP, MTIP, MEIP, SEIP driven by devices */
        uint64_t mtvec, stvec;
        uint64_t mscratch, sscratch;
        uint64_t mepc, sepc;
        uint64_t mcause, scause;
        uint64_t mtval, stval;
        uint64_t mcounteren, scounteren;
        uint64_t mcountinhibit;
        uint64_t menvcfg, senvcfg;
        uint64_t satp;
        uint64_t stimecmp;              /* Sstc */
        Pmp pmp;

        /* LR/SC reservation: the reserved physical address, or ~0. */
        uint64_t reservation;

        /* Time: mtime in timebase ticks is read through this callback. */
        uint64_t (*read_time)(void *opaque);
        void *time_opaque;

        /* Set by other threads to make hart_run() return at the next slice boundary. */
        _Atomic bool kick;

        /* WFI sleep. */
        pthread_mutex_t wfi_lock;
        pthread_cond_t wfi_cond;
        bool in_wfi;
        uint64_t wfi_deadline;          /* mtime at which a timer fires, or ~0 */

        /* Debugger state (debug.c); changed only while the CPU thread is stopped. */
        struct {
                struct {
                        uint8_t kind;           /* HartDebugKind */
                        uint64_t addr, len;
                } points[HART_MAX_DEBUG_POINTS];
                unsigned n_points;
                bool step;                      /* stop after one instruction */
                bool skip_pc;                   /* resuming: do not stop at skip_addr before executing it */
                uint64_t skip_addr;
                HartDebugStop stop;
        } debug;

        /*
         * The TLB's contexts (one per recent address space) and which one is
         * current. hart_init() zeroes the whole Hart, then flushes the TLB.
         */
        unsigned tlb_current;
        uint64_t tlb_clock;
        bool translation_global;        /* mmu_translate()'s last result came from a global mapping */
        TlbContext tlb[TLB_CONTEXTS];

        /* Decoded instructions, direct-mapped by pc, tagged by their bits (see decode.h). */
        DecodedInsn dcache[DCACHE_SIZE];
};

/* In-place life cycle (hart_new/hart_free wrap these; the CPU tests embed a Hart). */
void hart_init(Hart *h, PhysMem *mem, uint64_t hartid);
void hart_destroy(Hart *h);


/* The name the CPU tests use for hart_set_irq(). */
static inline void hart_set_external_irq(Hart *h, uint64_t mip_bit, bool level) {
        hart_set_irq(h, mip_bit, level);
}

/* Ends the current slice after this instruction. CPU thread only (e.g. from an MMIO handler). */
static inline void hart_end_slice(Hart *h) {
        h->slice_end = 0;
}

/* One interpreter step (no instret count); the debug slice and the JIT's fallback use it. */
void hart_step(Hart *h);

/* Runs one slice with breakpoint, watchpoint and step checks; returns instructions executed. */
uint64_t hart_debug_run_slice(Hart *h);

/* Drops every cached translation (e.g. after guest RAM was rewritten on reset). */
void hart_tlb_flush_all(Hart *h);

/*
 * For translated code that missed the TLB on an aligned load (type
 * ACCESS_READ) or store (ACCESS_WRITE) of 'size' bytes at 'va': walks the
 * page tables and, if the access would simply succeed on plain memory,
 * enters the page and returns the host address. Otherwise (a fault, PMP,
 * MMIO, the framebuffer for a store, a page holding translated code,
 * misalignment) returns NULL and changes nothing the interpreter would not
 * redo: it then executes the access, trap included.
 */
uint8_t *hart_tlb_refill(Hart *h, uint64_t va, unsigned size, int type);

/*
 * SFENCE.VMA: drops the translations of the page of 'va' (all pages if
 * !has_va) in the address space 'asid', except global ones (every address
 * space, global ones included, if !has_asid).
 */
void hart_tlb_fence(Hart *h, bool has_va, uint64_t va, bool has_asid, uint64_t asid);

/* satp was written: makes the TLB context of its address space current. */
void hart_tlb_switch(Hart *h);

/* Whether table (regime r, access t) of context c holds entries (else it is stale: see TlbContext). */
static inline bool hart_tlb_table_live(const TlbContext *c, unsigned r, unsigned t) {
        return !(c->stale & (1u << (r * 3 + t)));
}

/* Where the current context records whether its entry 'e' maps a global page. */
static inline bool *hart_tlb_global_flag(Hart *h, const TlbEntry *e) {
        TlbContext *c = &h->tlb[h->tlb_current];
        return &(&c->global[0][0][0])[e - &c->entries[0][0][0]];
}

/* Pending and enabled interrupt that would be taken now, or 0 (for tests). */
uint64_t hart_pending_interrupt(Hart *h);

/* Raises a synchronous exception at the current pc (used by the interpreter and tests). */
void hart_raise_exception(Hart *h, uint64_t cause, uint64_t tval);

/* CSR access with the current privilege's rules. Return 0 or -1 (illegal). */
int csr_read(Hart *h, unsigned csr, uint64_t *ret_value);
int csr_write(Hart *h, unsigned csr, uint64_t value);

/*
 * Virtual memory: translates 'vaddr' for an access of 'type' under the
 * current privilege/mstatus. Returns 0 and the physical address, or the
 * exception cause to raise (page fault or access fault) as a positive value.
 */
int mmu_translate(Hart *h, uint64_t vaddr, int type, uint64_t *ret_paddr);

/* PMP check of [paddr, paddr+size) for 'type' at privilege 'priv'. */
bool pmp_allows(const Hart *h, uint64_t paddr, uint64_t size, int type, unsigned priv);

/* Recomputes which TLB regime loads/stores and fetches use (after priv/mstatus changes). */
void hart_update_regime(Hart *h);

/* Expands a 16-bit compressed instruction to its 32-bit equivalent; 0 = illegal. */
uint32_t rvc_expand(uint16_t insn);
