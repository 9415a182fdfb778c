/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The translating engine: RV64 guest code to x86-64 host code, one
 * translation block (TB) at a time. Internal to emulator/cpu: the rest of
 * the machine selects it with hart_set_engine() and otherwise sees only the
 * hart API.
 *
 * What a block is: up to JIT_MAX_BLOCK_INSNS straight-line instructions
 * (RV64I, M, F/D, and C through the decoder's expansion) inside one 4 KiB
 * guest page, ended by a branch or jump, by the page's end, or at the
 * first instruction the translator leaves to the dispatcher and the
 * interpreter (xRET, ECALL, WFI, SFENCE.VMA, FENCE.I, satp, PMP and
 * counter writes). CSR accesses and atomics call the interpreter from
 * inside the block, which goes on unless the instruction trapped, jumped
 * or ended the slice. F/D loads and stores are translated; double add,
 * sub, mul, div and fmadd run on SSE/FMA when round-to-nearest, a
 * non-NaN result and no new flag make that exact; other F/D arithmetic
 * calls the FPU's own code (bit-exact by construction), and the
 * interpreter executes it again only when it must trap. Blocks are keyed by the guest
 * physical address of their first instruction, its virtual address (the
 * code embeds absolute pcs) and the privilege level.
 *
 * Guest registers live in the hart's register array, addressed off a host
 * base register; loads and stores look up the hart's software TLB inline
 * and leave the block on a miss, and the interpreter then executes that one
 * instruction (which fills the TLB, or does MMIO, or takes the trap with the
 * exact pc and tval). Translated code therefore never traps by itself.
 *
 * Invalidation: a page holding translated code is never entered into the
 * store TLB, so every store to it goes through the interpreter's slow path,
 * which calls jit_invalidate_page() first. Device DMA into code pages is
 * caught at the FENCE.I Linux issues before running freshly loaded code:
 * each code page keeps a hash of its bytes, and after a FENCE.I a page is
 * re-hashed when next entered and dropped if it changed. A reset drops the
 * whole cache, as does a full cache. Blocks are found through the TLB, so
 * they need no ASID of their own: SFENCE.VMA drops TLB entries and a satp
 * write switches to the TLB context of the new address space (ASID), so
 * lookups see the right mappings. The jump cache (virtual pc -> block) is
 * tagged with the TLB context, and emptied in O(1) when a context's
 * mappings may have changed (SFENCE.VMA of a page it has entries for, or
 * of everything; a context reused); blocks
 * chain directly only to targets in their own page, which stay valid
 * across remappings because the source block was itself found through the
 * current mapping.
 *
 * Interrupts: a chained block is entered only if all of it fits in the
 * current slice, so a guest spinning in a loop of chained blocks still
 * returns to hart_run() every slice, where interrupts and kicks are looked
 * at exactly as with the interpreter; the dispatcher lets the slice's last
 * block run past the slice, never past hart_run()'s budget.
 *
 * Threads: a Jit belongs to its hart (one per hart) and is read and
 * written only by the thread running that hart; another thread only posts
 * jit_request_flush(). Device threads (virtio-blk's workers, the network
 * thread) write guest RAM, never the engine's tables: a device's write to
 * a page holding code is found at the FENCE.I the guest must execute before
 * running it (the page's hash differs), as the exec-dma test checks.
 *
 * W^X: the code cache is one memfd mapped twice, read-write for the
 * translator and read-execute for running, so no mapping is ever writable
 * and executable and MemoryDenyWriteExecute=yes keeps working.
 */

#include <stdbool.h>
#include <stdint.h>

typedef struct Hart Hart;
typedef struct Jit Jit;

typedef struct JitStats {
        uint64_t retired;               /* instructions retired by jit_run_slice(), translated or not */
        uint64_t blocks_translated;
        uint64_t insns_translated;
        uint64_t block_runs;            /* entries from the dispatcher (chained entries are not counted) */
        uint64_t chains_patched;
        uint64_t interp_steps;          /* instructions left to the interpreter by the dispatcher */
        uint64_t inline_steps;          /* instructions translated code called the interpreter for (CSRs, atomics) */
        uint64_t tlb_refills;           /* inline TLB misses refilled without leaving the block */
        uint64_t tlb_exits;             /* inline TLB misses left to the interpreter (faults, MMIO, ...) */
        uint64_t jc_misses;             /* indirect or cross-page jumps the jump cache did not know */
        uint64_t chain_exits;           /* direct jumps not (yet) chained */
        uint64_t slice_exits;           /* chained blocks that did not fit in the slice */
        uint64_t diverted_exits;        /* inline interpreter calls that trapped, jumped or ended the slice */
        uint64_t fence_i;
        uint64_t cache_flushes;         /* whole-cache flushes: full, reset */
        uint64_t page_invalidations;
        uint64_t code_bytes;            /* bytes of host code in the cache now */
        uint64_t code_bytes_peak;
} JitStats;

#define JIT_MAX_BLOCK_INSNS 64

/* Whether this build has a translating engine for its host. */
bool jit_supported(void);

int jit_new(Hart *h, Jit **ret);
Jit *jit_free(Jit *j);

/*
 * Runs translated blocks (and the interpreter for what is not translated)
 * until h->instret reaches h->slice_end. The last block may end past the
 * slice, but never beyond 'max' instructions (the caller's budget).
 * Returns the number of instructions retired.
 */
uint64_t jit_run_slice(Hart *h, uint64_t max);

/* Drops every translation (reset, guest RAM rewritten). CPU thread. */
void jit_invalidate_all(Jit *j);

/*
 * Any thread: every translation is dropped before the hart next enters
 * translated code (at its next block boundary). For code rewritten from
 * outside the hart: a debugger's writes, a loaded state, and (with several
 * harts) another hart's request.
 */
void jit_request_flush(Jit *j);

/* FENCE.I: code pages whose bytes changed since translation (device DMA) are dropped when next entered. */
void jit_fence_i(Jit *j);

/* Called before a store to guest physical 'pa': drops the page's translations if it holds any. */
void jit_invalidate_page(Jit *j, uint64_t pa);

/* The hart's TLB was flushed (SFENCE.VMA, satp, PMP): virtual-address shortcuts are stale. */
void jit_tlb_flushed(Jit *j);

/* SFENCE.VMA of the page of 'va' (in one or all address spaces). */
void jit_tlb_page_flushed(Jit *j, uint64_t va);

/* The hart switched to TLB context (address space) 'context', whose mappings are unchanged since it was last left. */
void jit_tlb_context_selected(Jit *j, unsigned context);

/* Whether the page of 'pa' holds translated code (then it must stay out of the store TLB). */
bool jit_page_has_code(const Jit *j, uint64_t pa);

void jit_get_stats(const Jit *j, JitStats *ret);

/* Test builds: return from jit_run_slice() after each block (and the instruction it left to the interpreter). */
void jit_set_single_block(Jit *j, bool b);

/* The interpreter's single-instruction step (cpu.c), used for what the engine does not translate. */
void hart_step(Hart *h);
