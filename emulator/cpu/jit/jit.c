/* SPDX-License-Identifier: MIT */

/*
 * The translating engine for x86-64 hosts: code cache, translator and
 * dispatcher. See jit.h for the design.
 *
 * Host register use inside translated code: rbx holds the Hart pointer
 * (callee-saved, so helpers keep it); rax, rcx, rdx, rsi and rdi are
 * scratch. Blocks are entered through a trampoline at the start of the
 * cache and leave through its epilogue with one of the EXIT_* values in rax,
 * or with the address of a direct-jump site the dispatcher may patch to
 * chain the block to its successor.
 */

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpu/hart-internal.h"
#include "cpu/decode.h"
#include "cpu/fpu.h"
#include "cpu/resident.h"
#include "emit.h"
#include "jit.h"
#include "log.h"
#include "machine/physmem.h"
#include "macro.h"

/*
 * Debian's boot to its login prompt used 61 MiB of host code between
 * flushes (bench/RESULTS-jit.md); with 32 MiB it flushed 64 times, with the
 * default guest 24 MiB are in use after boot. Pages of the cache (and of
 * the block table) become resident only as they are written.
 */
#define JIT_DEFAULT_CACHE_SIZE (64u << 20)
#define JIT_MIN_CACHE_SIZE (256u << 10)
/* Blocks average some 450 bytes of host code: the table never fills before the cache. */
#define JIT_CACHE_BYTES_PER_BLOCK 256
#define JIT_HASH_BITS 15
#define INTERP_PROFILE_SIZE 256
/* Host bytes one guest instruction may take, including its share of the exits (generous). */
#define JIT_MAX_INSN_BYTES 256
#define ALIGN_TO(n, a) (((n) + (a) - 1) & ~((size_t) (a) - 1))
#define JIT_MAX_BLOCK_BYTES (JIT_MAX_BLOCK_INSNS * JIT_MAX_INSN_BYTES + 256)

enum {
        EXIT_NEXT = 0,          /* h->pc is set: look up the next block */
        EXIT_STEP = 1,          /* h->pc is set: the interpreter executes this one instruction */
        EXIT_TLB = 2,           /* as EXIT_STEP, for a load/store that missed the inline TLB */
        EXIT_JC_MISS = 3,       /* as EXIT_NEXT, after a jump the jump cache did not know */
        EXIT_SLICE = 4,         /* as EXIT_NEXT: a chained block did not fit in the slice */
        EXIT_DIVERTED = 5,      /* as EXIT_NEXT: an instruction the interpreter ran inline trapped, jumped or ended the slice */
        _EXIT_MAX,              /* anything above is a direct-jump site to chain */
};

/*
 * 32 bytes: a boot translates some 60,000 blocks, so the table's resident
 * size follows the code cache's; the entry point is an offset into the
 * cache, and the body (past the slice check, for the dispatcher, which
 * checks itself) starts a fixed distance after it.
 */
typedef struct Block {
        uint64_t pc;            /* guest virtual address of the first instruction */
        uint64_t pa;            /* its guest physical address */
        uint32_t hash_next;     /* next block in the hash bucket (index into blocks, 0 = none) */
        uint32_t page_next;     /* next block of the same guest page */
        uint32_t code;          /* entry point: offset in the code cache */
        uint16_t ninsn;         /* 0: the first instruction is left to the interpreter */
        uint8_t priv;
} Block;

_Static_assert(sizeof(TlbEntry) == 16, "translated code scales the TLB index by 16");
_Static_assert(sizeof(Block) == 32, "the block table's size is part of the resident-memory budget");
_Static_assert(JIT_MAX_BLOCK_INSNS <= UINT16_MAX, "Block.ninsn");

/* Per guest RAM page: its blocks and, once it holds code, what FENCE.I re-verifies. */
typedef struct CodePage {
        uint32_t head;          /* first block of the page, 0 = no code */
        uint32_t fence;         /* fence_gen when the hash was last taken or checked */
        uint64_t hash;          /* hash of the page's bytes then */
} CodePage;

typedef uintptr_t (*EnterFn)(Hart *h, const uint8_t *code);

/*
 * The jump cache: guest virtual pc -> block entry, looked up inline by
 * indirect jumps and jumps out of the page, filled by the dispatcher. An
 * entry is valid while its tag (privilege | TLB context << 8 | generation
 * << 32) matches; the generation moves on every TLB flush (mappings may
 * have changed), FENCE.I and invalidation, which empties the cache in
 * O(1). The TLB context (address space) is part of the tag rather than a
 * reason to flush, so that switching between processes keeps each one's
 * entries.
 */
#define JC_BITS 12
#define JC_SIZE (1u << JC_BITS)
#define JC_CONTEXT_SHIFT 8

#define JC_HASH_MUL 0x9e3779b97f4a7c15ULL
#define JC_PAGE_BITS 12

/* The slot of a virtual page in the filter of pages that have jump cache entries. */
static inline unsigned jc_page_index(uint64_t pc) {
        return (unsigned) (((pc >> PAGE_SHIFT) * JC_HASH_MUL) >> (64 - JC_PAGE_BITS));
}

/* Multiplicative hashing: the pc's low bits alone made hot code a few pages apart collide. */
static inline unsigned jc_index(uint64_t pc) {
        return (unsigned) (((pc >> 1) * JC_HASH_MUL) >> (64 - JC_BITS));
}

typedef struct JcEntry {
        uint64_t pc;
        uint64_t tag;
        const uint8_t *code;
        uint64_t unused;
} JcEntry;

/* For the FP fast path: a slot for stmxcsr and the map from MXCSR's flag bits to fflags. */
typedef struct JitFp {
        uint32_t mxcsr;
        uint8_t mxcsr_to_fflags[64];
} JitFp;

struct Jit {
        Hart *hart;
        JitFp fp;
        bool host_fma;          /* the host has FMA3 (vfmadd231sd) */

        uint8_t *rw, *rx;       /* the two mappings of the code cache */
        size_t size;
        size_t used;
        const uint8_t *epilogue; /* in rx */
        EnterFn enter;
        size_t prologue_size;

        Block *blocks;
        uint32_t n_blocks;      /* index 0 is unused */
        uint32_t max_blocks;    /* the table's size, from the cache's */
        uint32_t hash[1u << JIT_HASH_BITS];
        /*
         * Per guest RAM page, allocated zero and written only for pages that
         * get code: a flush clears the pages its blocks name, not the table.
         */
        CodePage *pages;
        uint64_t ram_pages;
        size_t body_offset;     /* from a block's entry to its body (the same for every block) */
        uint32_t fence_gen;     /* bumped by FENCE.I: code pages are re-verified when next entered */

        unsigned max_insns;     /* block length limit ($ORRERY_JIT_MAX_INSNS, for bisecting) */
        bool no_chain;          /* $ORRERY_JIT_NO_CHAIN: never patch direct jumps */
        uint64_t gen;           /* bumped on every invalidation: pending chain patches are dropped */
        bool single_block;
        _Atomic bool flush_requested;   /* jit_request_flush(), from any thread */

        JitStats stats;
        /* $ORRERY_JIT_STATS: interpreter steps by instruction pattern, to choose what to translate next */
        struct {
                uint32_t pattern;
                uint64_t count;
        } *interp_profile;

        /*
         * A filter of the virtual pages the jump cache has entries for in this generation:
         * SFENCE.VMA of one page (Linux issues many, mostly for data) empties the cache only
         * if that page may be in it.
         */
        uint64_t jc_pages[(1u << JC_PAGE_BITS) / 64];
        uint64_t jc_tag;        /* generation << 32 | TLB context << 8; translated code reads it at jc[-1] */
        JcEntry jc[JC_SIZE];
};

_Static_assert(offsetof(Jit, jc) == offsetof(Jit, jc_tag) + 8, "translated code finds jc_tag just before jc");
_Static_assert(sizeof(JcEntry) == 32, "translated code scales the jump cache index by 32");

static void jc_invalidate(Jit *j) {
        memset(j->jc_pages, 0, sizeof(j->jc_pages));
        j->jc_tag += 1ULL << 32;
        if ((j->jc_tag >> 32) == 0)
                memset(j->jc, 0, sizeof(j->jc)); /* the generation wrapped: old tags could match again */
}

void jit_tlb_flushed(Jit *j) {
        if (j)
                jc_invalidate(j);
}

void jit_tlb_page_flushed(Jit *j, uint64_t va) {
        unsigned i;

        if (!j)
                return;
        i = jc_page_index(va);
        if (j->jc_pages[i / 64] & (1ULL << (i % 64)))
                jc_invalidate(j);
}

void jit_tlb_context_selected(Jit *j, unsigned context) {
        if (j)
                j->jc_tag = (j->jc_tag & ~0xffffffffULL) | (uint64_t) context << JC_CONTEXT_SHIFT;
}

bool jit_supported(void) {
        return true;
}

static inline uint8_t *rx_to_rw(const Jit *j, const uint8_t *p) {
        return j->rw + (p - j->rx);
}

static inline const uint8_t *rw_to_rx(const Jit *j, const uint8_t *p) {
        return j->rx + (p - j->rw);
}

/*
 * The virtual page is part of the hash: shared libraries sit at the same
 * physical pages in every process but (with ASLR) at a different address
 * in each, and hashing the physical address alone made long chains.
 */
static unsigned hash_block(uint64_t pa, uint64_t pc) {
        uint64_t k = (pa >> 1) ^ ((pc >> PAGE_SHIFT) * 0x9e3779b97f4a7c15ULL);

        return (unsigned) (k ^ (k >> 32) ^ (k >> (JIT_HASH_BITS + 1))) & ((1u << JIT_HASH_BITS) - 1);
}

/* ---- the cache ---- */

static void emit_trampoline(Jit *j) {
        Emit e = { .p = j->rw };

        /* enter(h = rdi, code = rsi): push rbx; mov rbx, rdi; jmp rsi */
        e8(&e, 0x53);
        emit_mov_rr(&e, RBX, RDI);
        e8(&e, 0xff);
        e8(&e, 0xe6);
        /* epilogue: pop rbx; ret */
        j->epilogue = rw_to_rx(j, e.p);
        e8(&e, 0x5b);
        e8(&e, 0xc3);

        j->enter = (EnterFn) (uintptr_t) j->rx;
        j->used = j->prologue_size = ALIGN_TO((size_t) (e.p - j->rw), 64);
}

static void flush_all(Jit *j) {
        memset(j->hash, 0, sizeof(j->hash));
        for (uint32_t bi = 1; bi < j->n_blocks; bi++)
                j->pages[(j->blocks[bi].pa - j->hart->mem->ram_base) >> PAGE_SHIFT].head = 0;
        j->n_blocks = 1;
        j->used = j->prologue_size;
        j->gen++;
        jc_invalidate(j);
        j->stats.cache_flushes++;
        j->stats.code_bytes = 0;
}

void jit_invalidate_all(Jit *j) {
        if (j)
                flush_all(j);
}

void jit_request_flush(Jit *j) {
        if (j)
                atomic_store_explicit(&j->flush_requested, true, memory_order_release);
}

static bool pa_to_page(const Jit *j, uint64_t pa, uint64_t *ret) {
        const PhysMem *mem = j->hart->mem;
        uint64_t off = pa - mem->ram_base;

        if (off >= mem->ram_size)
                return false;
        *ret = off >> PAGE_SHIFT;
        return true;
}

bool jit_page_has_code(const Jit *j, uint64_t pa) {
        uint64_t page;

        return j && pa_to_page(j, pa, &page) && j->pages[page].head != 0;
}

static void hash_remove(Jit *j, uint32_t bi) {
        uint32_t *p = &j->hash[hash_block(j->blocks[bi].pa, j->blocks[bi].pc)];

        while (*p) {
                if (*p == bi) {
                        *p = j->blocks[bi].hash_next;
                        return;
                }
                p = &j->blocks[*p].hash_next;
        }
}

void jit_invalidate_page(Jit *j, uint64_t pa) {
        uint64_t page;

        if (!j || !pa_to_page(j, pa, &page) || !j->pages[page].head)
                return;

        /* Blocks chain only within their page, so nothing outside it jumps into these. */
        for (uint32_t bi = j->pages[page].head; bi; bi = j->blocks[bi].page_next)
                hash_remove(j, bi);
        j->pages[page].head = 0;
        j->gen++;
        jc_invalidate(j);
        j->stats.page_invalidations++;
}

static uint64_t hash_page(const uint8_t *page) {
        uint64_t h = 0x243f6a8885a308d3ULL;

        for (size_t i = 0; i < PAGE_SIZE; i += 8) {
                uint64_t w;
                memcpy(&w, page + i, 8);
                h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
                h ^= h >> 29;
        }
        return h;
}

void jit_fence_i(Jit *j) {
        if (!j)
                return;
        j->fence_gen++;
        j->stats.fence_i++;
        jc_invalidate(j);
}

/*
 * After a FENCE.I, a code page's translations are kept only if its bytes
 * are unchanged: the hart's own stores invalidate at once, so this catches
 * what devices wrote (DMA) behind the hart's back.
 */
static void verify_page(Jit *j, uint64_t page_index, const uint8_t *page) {
        uint64_t h = hash_page(page);

        if (h != j->pages[page_index].hash) {
                jit_invalidate_page(j, j->hart->mem->ram_base + (page_index << PAGE_SHIFT));
                return;
        }
        j->pages[page_index].fence = j->fence_gen;
}

/* A page that gets code leaves the store TLB, so that stores to it reach jit_invalidate_page(). */
static void unmap_page_for_stores(Jit *j, uint64_t pa_page) {
        Hart *h = j->hart;
        uintptr_t host = (uintptr_t) (h->mem->ram + (pa_page - h->mem->ram_base));

        for (unsigned c = 0; c < TLB_CONTEXTS; c++) {
                if (!h->tlb[c].last_used)
                        continue;       /* free: cleared before it is used again */
                for (unsigned r = 0; r < _TLB_REGIME_MAX; r++)
                        for (unsigned i = 0; i < TLB_SIZE && hart_tlb_table_live(&h->tlb[c], r, ACCESS_WRITE); i++) {
                                TlbEntry *e = &h->tlb[c].entries[r][ACCESS_WRITE][i];
                                if (e->tag != TLB_INVALID && e->tag + e->addend == host)
                                        e->tag = TLB_INVALID;
                        }
        }
}

static void log_interp_profile(Jit *j);

/*
 * The engine's big tables come straight from mmap: fresh pages are zero and
 * cost nothing until touched, whatever malloc's heuristics (after a free,
 * calloc may take a big block from the heap and clear all of it).
 */
static void *table_alloc(size_t size) {
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        return p == MAP_FAILED ? NULL : p;
}

static void table_free(void *p, size_t size) {
        if (p)
                munmap(p, size);
}

int jit_new(Hart *h, Jit **ret) {
        _cleanup_close_ int fd = -EBADF;
        const char *s;
        Jit *j;
        size_t size = JIT_DEFAULT_CACHE_SIZE;

        s = getenv("ORRERY_JIT_CACHE_SIZE");
        if (s) {
                char *end;
                unsigned long long v = strtoull(s, &end, 0);
                if (*end == '\0' && v >= JIT_MIN_CACHE_SIZE && v <= (1ULL << 30))
                        size = ALIGN_TO((size_t) v, 4096);
        }

        j = table_alloc(sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->max_insns = JIT_MAX_BLOCK_INSNS;
        s = getenv("ORRERY_JIT_MAX_INSNS");
        if (s && atoi(s) >= 1 && atoi(s) <= JIT_MAX_BLOCK_INSNS)
                j->max_insns = (unsigned) atoi(s);
        j->no_chain = getenv("ORRERY_JIT_NO_CHAIN") != NULL;
        j->host_fma = __builtin_cpu_supports("fma");
        for (unsigned m = 0; m < ELEMENTSOF(j->fp.mxcsr_to_fflags); m++)
                /* MXCSR: IE DE ZE OE UE PE (bits 0..5); DE has no RISC-V flag. */
                j->fp.mxcsr_to_fflags[m] = (uint8_t) (((m & 0x01) ? FFLAG_NV : 0) | ((m & 0x04) ? FFLAG_DZ : 0) |
                                                      ((m & 0x08) ? FFLAG_OF : 0) | ((m & 0x10) ? FFLAG_UF : 0) |
                                                      ((m & 0x20) ? FFLAG_NX : 0));
        if (getenv("ORRERY_JIT_STATS")) {
                j->interp_profile = calloc(INTERP_PROFILE_SIZE, sizeof(*j->interp_profile));
                if (!j->interp_profile)
                        goto nomem;
        }
        j->hart = h;
        j->size = size;
        j->rw = j->rx = MAP_FAILED;
        j->ram_pages = h->mem->ram_size >> PAGE_SHIFT;
        j->pages = table_alloc((j->ram_pages ?: 1) * sizeof(CodePage));
        j->max_blocks = (uint32_t) (size / JIT_CACHE_BYTES_PER_BLOCK);
        j->blocks = table_alloc(j->max_blocks * sizeof(Block));
        if (!j->pages || !j->blocks)
                goto nomem;
        j->fence_gen = 1;

        fd = memfd_create("orrery-jit", MFD_CLOEXEC);
        if (fd < 0)
                goto fail;
        if (ftruncate(fd, (off_t) size) < 0)
                goto fail;
        /* Written through one mapping, executed through the other: never W and X at once. */
        j->rw = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (j->rw == MAP_FAILED)
                goto fail;
        j->rx = mmap(NULL, size, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
        if (j->rx == MAP_FAILED)
                goto fail;

        emit_trampoline(j);
        flush_all(j);
        jit_tlb_context_selected(j, h->tlb_current);
        j->stats.cache_flushes = 0;
        *ret = j;
        return 0;

nomem:
        errno = ENOMEM;
fail:;
        int r = -errno;
        jit_free(j);
        return r;
}

/* Resident KiB of the engine's tables and of the hart's that it changes the use of (bench/mem_breakdown.py prints these). */
static void log_memory(const Jit *j) {
        const Hart *h = j->hart;

        log_info("jit: resident: jump cache and block hash %zu KiB, block table %zu KiB, code page table %zu KiB, "
                 "TLB %zu KiB, decode cache %zu KiB, code cache %zu KiB",
                 resident_bytes(j, sizeof(*j)) / 1024,
                 resident_bytes(j->blocks, j->max_blocks * sizeof(Block)) / 1024,
                 resident_bytes(j->pages, (j->ram_pages ?: 1) * sizeof(CodePage)) / 1024,
                 resident_bytes(h->tlb, sizeof(h->tlb)) / 1024,
                 resident_bytes(h->dcache, sizeof(h->dcache)) / 1024,
                 resident_bytes(j->rw, j->size) / 1024);
}

Jit *jit_free(Jit *j) {
        if (!j)
                return NULL;
        if (getenv("ORRERY_JIT_STATS")) {
                JitStats s;
                jit_get_stats(j, &s);
                log_info("jit: %llu blocks translated (%llu instructions), %llu block entries, %llu chains, "
                         "%llu interpreter steps, %llu inline interpreter calls, %llu TLB refills, %llu TLB exits, "
                         "%llu jump cache misses, %llu unchained exits, %llu slice exits, %llu diverted exits, %llu FENCE.I, %llu cache flushes, %llu page invalidations, "
                         "code cache peak %llu KiB of %zu KiB",
                         (unsigned long long) s.blocks_translated, (unsigned long long) s.insns_translated,
                         (unsigned long long) s.block_runs, (unsigned long long) s.chains_patched,
                         (unsigned long long) s.interp_steps, (unsigned long long) s.inline_steps,
                         (unsigned long long) s.tlb_refills, (unsigned long long) s.tlb_exits,
                         (unsigned long long) s.jc_misses,
                         (unsigned long long) s.chain_exits, (unsigned long long) s.slice_exits,
                         (unsigned long long) s.diverted_exits,
                         (unsigned long long) s.fence_i, (unsigned long long) s.cache_flushes, (unsigned long long) s.page_invalidations,
                         (unsigned long long) s.code_bytes_peak / 1024, j->size / 1024);
                if (j->interp_profile)
                        log_interp_profile(j);
                log_memory(j);
        }
        if (j->rw != MAP_FAILED)
                munmap(j->rw, j->size);
        if (j->rx != MAP_FAILED)
                munmap(j->rx, j->size);
        table_free(j->pages, (j->ram_pages ?: 1) * sizeof(CodePage));
        table_free(j->blocks, j->max_blocks * sizeof(Block));
        free(j->interp_profile);
        table_free(j, sizeof(*j));
        return NULL;
}

void jit_get_stats(const Jit *j, JitStats *ret) {
        *ret = j->stats;
}

void jit_set_single_block(Jit *j, bool b) {
        j->single_block = b;
}

/* ---- helpers called from translated code ---- */

static uint64_t helper_mulhsu(uint64_t a, uint64_t b) {
        return (uint64_t) (((__int128) (int64_t) a * (unsigned __int128) b) >> 64);
}

static uint64_t helper_div(uint64_t a, uint64_t b) {
        if (b == 0)
                return UINT64_MAX;
        if ((int64_t) a == INT64_MIN && (int64_t) b == -1)
                return a;
        return (uint64_t) ((int64_t) a / (int64_t) b);
}

static uint64_t helper_rem(uint64_t a, uint64_t b) {
        if (b == 0)
                return a;
        if ((int64_t) a == INT64_MIN && (int64_t) b == -1)
                return 0;
        return (uint64_t) ((int64_t) a % (int64_t) b);
}

static uint64_t helper_divw(uint64_t a, uint64_t b) {
        int32_t sa = (int32_t) a, sb = (int32_t) b;

        if (sb == 0)
                return UINT64_MAX;
        if (sa == INT32_MIN && sb == -1)
                return (uint64_t) (int64_t) sa;
        return (uint64_t) (int64_t) (sa / sb);
}

static uint64_t helper_divuw(uint64_t a, uint64_t b) {
        if ((uint32_t) b == 0)
                return UINT64_MAX;
        return (uint64_t) (int64_t) (int32_t) ((uint32_t) a / (uint32_t) b);
}

static uint64_t helper_remw(uint64_t a, uint64_t b) {
        int32_t sa = (int32_t) a, sb = (int32_t) b;

        if (sb == 0)
                return (uint64_t) (int64_t) sa;
        if (sa == INT32_MIN && sb == -1)
                return 0;
        return (uint64_t) (int64_t) (sa % sb);
}

static uint64_t helper_remuw(uint64_t a, uint64_t b) {
        if ((uint32_t) b == 0)
                return (uint64_t) (int64_t) (int32_t) a;
        return (uint64_t) (int64_t) (int32_t) ((uint32_t) a % (uint32_t) b);
}

/* ---- the translator ---- */

#define XOFF(r) ((int32_t) (offsetof(Hart, x) + 8 * (r)))
#define OFF(field) ((int32_t) offsetof(Hart, field))

typedef struct Stub {
        uint8_t *rel[3];        /* jcc rel32s that lead here */
        uint64_t pc;
        unsigned done;          /* instructions retired before this one */
        unsigned code;          /* EXIT_STEP, EXIT_TLB or EXIT_DIVERTED */
        bool pc_set;            /* h->pc is already right (after an interpreter call) */
        /* A TLB miss: refill through hart_tlb_refill() and go on at 'join', else leave as above. */
        uint8_t *refill_rel;
        uint8_t *join;
        uint8_t refill_size;
        bool refill_store;
} Stub;

typedef struct Translation {
        Jit *j;
        Emit e;
        Stub stubs[JIT_MAX_BLOCK_INSNS + 1];
        unsigned n_stubs;
        uint64_t page;          /* virtual page of the block */
        unsigned committed;     /* instructions already added to instret inside the block (see emit_interp_step) */
        /*
         * The guest register whose value rax / rcx hold, or -1: guest registers are always
         * stored back at once, but reading the value just computed from the host register
         * saves the store-to-load round trip on dependency chains.
         */
        int rax_reg, rcx_reg;
} Translation;

/* Host register 'r' (rax, rcx or another scratch register) = x[g], from rax/rcx if they hold it. */
static void emit_get(Translation *t, unsigned r, unsigned g) {
        Emit *e = &t->e;

        if (g != 0 && t->rax_reg == (int) g) {
                if (r != RAX)
                        emit_mov_rr(e, r, RAX);
        } else if (g != 0 && t->rcx_reg == (int) g) {
                if (r != RCX)
                        emit_mov_rr(e, r, RCX);
        } else
                emit_load64(e, r, RBX, XOFF(g));
        if (r == RAX)
                t->rax_reg = (int) g;
        else if (r == RCX)
                t->rcx_reg = (int) g;
}

/* op rax, x[g] (w: 64-bit), from rcx if it holds x[g]. */
static void emit_alu_x(Translation *t, unsigned alu, bool w, unsigned g) {
        Emit *e = &t->e;

        if (g != 0 && t->rcx_reg == (int) g) {
                if (w)
                        e8(e, 0x48);
                e8(e, (uint8_t) (alu * 8 + 3));
                e8(e, (uint8_t) (0xc0 | (RAX << 3) | RCX));
        } else
                emit_alu_mem(e, alu, w, RAX, RBX, XOFF(g));
}

static void emit_jmp_epilogue(Translation *t) {
        patch_rel32(emit_jmp(&t->e), rx_to_rw(t->j, t->j->epilogue));
}

static void emit_set_pc(Translation *t, uint64_t pc) {
        emit_mov_imm(&t->e, RAX, pc);
        emit_store64(&t->e, RBX, OFF(pc), RAX);
}

/* Retires 'done' instructions and leaves with pc = 'pc' and 'code'. */
static void emit_exit(Translation *t, unsigned done, uint64_t pc, unsigned code) {
        if (done)
                emit_add_mem_imm(&t->e, RBX, OFF(instret), (int32_t) done);
        emit_set_pc(t, pc);
        emit_mov_imm(&t->e, RAX, code);
        emit_jmp_epilogue(t);
}

/*
 * Leaves for the pc in rcx (already stored in h->pc, instret counted):
 * straight into its block if the jump cache knows it, else through the
 * dispatcher.
 */
static void emit_jump_cache(Translation *t) {
        Emit *e = &t->e;
        uint8_t *miss[2];

        /* rax = jc_index(rcx) * 32 */
        emit_mov_rr(e, RAX, RCX);
        emit_shift_imm(e, SHIFT_SHR, true, RAX, 1);
        emit_mov_imm(e, RSI, JC_HASH_MUL);
        e8(e, 0x48); e8(e, 0x0f); e8(e, 0xaf); e8(e, 0xc6);             /* imul rax, rsi */
        emit_shift_imm(e, SHIFT_SHR, true, RAX, 64 - JC_BITS);
        emit_shift_imm(e, SHIFT_SHL, true, RAX, 5);
        emit_mov_imm(e, RDX, (uint64_t) (uintptr_t) t->j->jc);
        e8(e, 0x48); e8(e, 0x3b); e8(e, 0x0c); e8(e, 0x02);             /* cmp rcx, [rdx + rax] */
        miss[0] = emit_jcc(e, CC_NE);
        e8(e, 0x8b);                                                    /* mov esi, [rbx + priv] */
        modrm_disp32(e, RSI, RBX, OFF(priv));
        e8(e, 0x48); e8(e, 0x0b); e8(e, 0x72); e8(e, 0xf8);             /* or rsi, [rdx - 8] */
        e8(e, 0x48); e8(e, 0x3b); e8(e, 0x74); e8(e, 0x02); e8(e, 0x08); /* cmp rsi, [rdx + rax + 8] */
        miss[1] = emit_jcc(e, CC_NE);
        e8(e, 0xff); e8(e, 0x64); e8(e, 0x02); e8(e, 0x10);             /* jmp [rdx + rax + 16] */
        patch_rel32(miss[0], e->p);
        patch_rel32(miss[1], e->p);
        emit_mov_imm(e, RAX, EXIT_JC_MISS);
        emit_jmp_epilogue(t);
}

/* Leaves for 'target' (instret already counted); chainable when the target is in the block's page. */
static void emit_exit_to(Translation *t, uint64_t target) {
        bool chain = (target & PAGE_MASK) == t->page;
        uint8_t *site = t->e.p;

        if (chain)
                emit_jmp(&t->e); /* rel32 0: falls through until patched */
        emit_set_pc(t, target);
        if (chain) {
                /* lea rax, [rip + site - next] */
                e8(&t->e, 0x48);
                e8(&t->e, 0x8d);
                e8(&t->e, 0x05);
                e32(&t->e, (uint32_t) (int32_t) (site - (t->e.p + 4)));
                emit_jmp_epilogue(t);
        } else {
                emit_mov_imm(&t->e, RCX, target);
                emit_jump_cache(t);
        }
}

static Stub *new_stub(Translation *t, uint64_t pc, unsigned done, unsigned code) {
        Stub *s = &t->stubs[t->n_stubs++];

        *s = (Stub) { .pc = pc, .done = done - t->committed, .code = code };
        return s;
}

/*
 * Inline TLB lookup for an access of 'size' at [x[rs1] + imm]: on a hit,
 * rax holds the host address. A miss jumps out of line to refill the
 * entry (helper_tlb_refill) and comes back with rax set; what the refill
 * leaves to the interpreter (faults, MMIO, framebuffer stores, stores to
 * code, misaligned accesses) leaves the block through the same stub.
 */
static void emit_tlb_lookup(Translation *t, const DecodedInsn *d, unsigned size, bool store, Stub *s) {
        Emit *e = &t->e;

        emit_get(t, RAX, d->rs1);
        if (d->imm)
                emit_alu_imm(e, ALU_ADD, true, RAX, (int32_t) d->imm);
        emit_mov_rr(e, RCX, RAX);
        emit_shift_imm(e, SHIFT_SHR, true, RCX, PAGE_SHIFT);
        emit_alu_imm(e, ALU_AND, false, RCX, TLB_SIZE - 1);
        /* add rcx, rcx: TlbEntry is 2 words, addressed as [rdx + rcx*8] */
        e8(e, 0x48); e8(e, 0x01); e8(e, 0xc9);
        emit_load64(e, RDX, RBX, store ? OFF(tlb_store) : OFF(tlb_load));
        emit_mov_rr(e, RSI, RAX);
        emit_alu_imm(e, ALU_AND, true, RSI, (int32_t) (PAGE_MASK | (size - 1)));
        /* cmp rsi, [rdx + rcx*8] */
        e8(e, 0x48); e8(e, 0x3b); e8(e, 0x34); e8(e, 0xca);
        s->refill_rel = emit_jcc(e, CC_NE);
        s->refill_size = (uint8_t) size;
        s->refill_store = store;
        /* add rax, [rdx + rcx*8 + 8] */
        e8(e, 0x48); e8(e, 0x03); e8(e, 0x44); e8(e, 0xca); e8(e, offsetof(TlbEntry, addend));
        s->join = e->p;
}

static uint64_t helper_tlb_refill(Hart *h, uint64_t va, uint64_t size, uint64_t store) {
        h->jit->stats.tlb_refills++;
        return (uint64_t) (uintptr_t) hart_tlb_refill(h, va, (unsigned) size, store ? ACCESS_WRITE : ACCESS_READ);
}

/* The out-of-line half of a TLB lookup: rax (the address) refilled, back at the join if it worked. */
static void emit_refill(Translation *t, const Stub *s) {
        Emit *e = &t->e;

        patch_rel32(s->refill_rel, e->p);
        emit_mov_rr(e, RDI, RBX);
        emit_mov_rr(e, RSI, RAX);
        emit_mov_imm(e, RDX, s->refill_size);
        emit_mov_imm(e, RCX, s->refill_store);
        emit_mov_imm(e, RAX, (uint64_t) (uintptr_t) helper_tlb_refill);
        emit_call_rax(e);
        e8(e, 0x48); e8(e, 0x85); e8(e, 0xc0);          /* test rax, rax */
        patch_rel32(emit_jcc(e, CC_NE), s->join);
}

static void emit_load(Translation *t, const DecodedInsn *d, uint64_t pc, unsigned done) {
        static const uint8_t size[] = {
                [OP_LB] = 1, [OP_LH] = 2, [OP_LW] = 4, [OP_LD] = 8, [OP_LBU] = 1, [OP_LHU] = 2, [OP_LWU] = 4,
        };
        Emit *e = &t->e;
        Stub *s = new_stub(t, pc, done, EXIT_TLB);

        emit_tlb_lookup(t, d, size[d->op], false, s);
        switch (d->op) {
        case OP_LB:  e8(e, 0x48); e8(e, 0x0f); e8(e, 0xbe); e8(e, 0x08); break; /* movsx rcx, byte [rax] */
        case OP_LBU: e8(e, 0x0f); e8(e, 0xb6); e8(e, 0x08); break;              /* movzx ecx, byte [rax] */
        case OP_LH:  e8(e, 0x48); e8(e, 0x0f); e8(e, 0xbf); e8(e, 0x08); break; /* movsx rcx, word [rax] */
        case OP_LHU: e8(e, 0x0f); e8(e, 0xb7); e8(e, 0x08); break;              /* movzx ecx, word [rax] */
        case OP_LW:  e8(e, 0x48); e8(e, 0x63); e8(e, 0x08); break;              /* movsxd rcx, [rax] */
        case OP_LWU: e8(e, 0x8b); e8(e, 0x08); break;                           /* mov ecx, [rax] */
        default:     e8(e, 0x48); e8(e, 0x8b); e8(e, 0x08); break;              /* mov rcx, [rax] */
        }
        if (d->rd)
                emit_store64(e, RBX, XOFF(d->rd), RCX);
}

static void emit_store(Translation *t, const DecodedInsn *d, uint64_t pc, unsigned done) {
        Emit *e = &t->e;
        Stub *s = new_stub(t, pc, done, EXIT_TLB);
        unsigned size = 1u << (d->op - OP_SB);

        emit_tlb_lookup(t, d, size, true, s);
        emit_load64(e, RCX, RBX, XOFF(d->rs2));
        switch (size) {
        case 1: e8(e, 0x88); e8(e, 0x08); break;                /* mov [rax], cl */
        case 2: e8(e, 0x66); e8(e, 0x89); e8(e, 0x08); break;   /* mov [rax], cx */
        case 4: e8(e, 0x89); e8(e, 0x08); break;                /* mov [rax], ecx */
        default: e8(e, 0x48); e8(e, 0x89); e8(e, 0x08); break;  /* mov [rax], rcx */
        }
}

/* Leaves for the interpreter (which raises the illegal instruction) if mstatus.FS is off. */
static void emit_fs_check(Translation *t, Stub *s) {
        Emit *e = &t->e;

        /* test qword [rbx + mstatus], MSTATUS_FS */
        e8(e, 0x48);
        e8(e, 0xf7);
        modrm_disp32(e, 0, RBX, OFF(mstatus));
        e32(e, (uint32_t) MSTATUS_FS);
        s->rel[2] = emit_jcc(e, CC_E);
}

static void emit_fs_dirty(Translation *t) {
        Emit *e = &t->e;

        /* or qword [rbx + mstatus], MSTATUS_FS */
        e8(e, 0x48);
        e8(e, 0x81);
        modrm_disp32(e, 1, RBX, OFF(mstatus));
        e32(e, (uint32_t) MSTATUS_FS);
}

static void emit_fp_load(Translation *t, const DecodedInsn *d, uint64_t pc, unsigned done) {
        Emit *e = &t->e;
        Stub *s = new_stub(t, pc, done, EXIT_TLB);
        bool single = d->op == OP_FLW;

        emit_fs_check(t, s);
        emit_tlb_lookup(t, d, single ? 4 : 8, false, s);
        if (single) {
                e8(e, 0x8b); e8(e, 0x08);                       /* mov ecx, [rax] */
                emit_mov_imm(e, RDX, 0xffffffff00000000ULL);    /* NaN-boxing */
                e8(e, 0x48); e8(e, 0x09); e8(e, 0xd1);          /* or rcx, rdx */
        } else {
                e8(e, 0x48); e8(e, 0x8b); e8(e, 0x08);          /* mov rcx, [rax] */
        }
        emit_store64(e, RBX, (int32_t) (offsetof(Hart, fpu.f) + 8 * d->rd), RCX);
        emit_fs_dirty(t);
}

static void emit_fp_store(Translation *t, const DecodedInsn *d, uint64_t pc, unsigned done) {
        Emit *e = &t->e;
        Stub *s = new_stub(t, pc, done, EXIT_TLB);
        bool single = d->op == OP_FSW;

        emit_fs_check(t, s);
        emit_tlb_lookup(t, d, single ? 4 : 8, true, s);
        emit_load64(e, RCX, RBX, (int32_t) (offsetof(Hart, fpu.f) + 8 * d->rs2));
        if (single) {
                e8(e, 0x89); e8(e, 0x08);                       /* mov [rax], ecx */
        } else {
                e8(e, 0x48); e8(e, 0x89); e8(e, 0x08);          /* mov [rax], rcx */
        }
}

/*
 * OP-FP and fused multiply-add through the FPU's own code. Returns nonzero
 * (nothing changed) when the interpreter must execute the instruction: FS
 * off or an illegal encoding or rounding mode, which it turns into the trap.
 */
static uint64_t helper_fp(Hart *h, uint64_t insn) {
        if (!(h->mstatus & MSTATUS_FS) || fpu_execute(&h->fpu, h->x, (uint32_t) insn) < 0)
                return 1;
        h->mstatus |= MSTATUS_FS;
        h->x[0] = 0;
        return 0;
}

#define FOFF(r) ((int32_t) (offsetof(Hart, fpu.f) + 8 * (r)))
#define RM_DYN 7

/* [rbx + disp32] as the memory operand of an SSE instruction on xmm 'x' (prefix and opcode already out). */
static void emit_xmm_mem(Emit *e, unsigned x, int32_t disp) {
        modrm_disp32(e, x, RBX, disp);
}

/*
 * FADD/FSUB/FMUL/FDIV.D and FMADD.D on the host's SSE/FMA unit, in the
 * common case only: round to nearest even (the host's mode outside the
 * FPU), a result that is not a NaN (RISC-V wants the canonical NaN), and
 * no exception flag the guest has not accrued yet (the host flags are
 * sticky, as in the FPU's own host path). Anything else falls to
 * helper_fp(), which computes it again exactly.
 */
static bool emit_fp_fast(Translation *t, const DecodedInsn *d, Stub *s, uint8_t **ret_slow) {
        static const uint8_t sse_op[] = { [0x01] = 0x58, [0x05] = 0x5c, [0x09] = 0x59, [0x0d] = 0x5e };
        uint32_t insn = (uint32_t) d->imm;
        unsigned opcode = insn & 0x7f, rd = (insn >> 7) & 31, rm = (insn >> 12) & 7;
        unsigned rs1 = (insn >> 15) & 31, rs2 = (insn >> 20) & 31, rs3 = insn >> 27, f7 = insn >> 25;
        bool fma = opcode == 0x43 && ((insn >> 25) & 3) == 1;
        Emit *e = &t->e;
        uint8_t *slow[3];

        if (!fma && !(opcode == 0x53 && f7 < sizeof(sse_op) && sse_op[f7]))
                return false;
        if (fma && !t->j->host_fma)
                return false;
        if (rm != 0 && rm != RM_DYN)
                return false;

        emit_fs_check(t, s);
        if (rm == RM_DYN) {
                e8(e, 0x83); emit_xmm_mem(e, 7, OFF(fpu.frm)); e8(e, 0x00);     /* cmp dword [frm], 0 */
                slow[0] = emit_jcc(e, CC_NE);
        } else
                slow[0] = NULL;
        if (fma) {
                e8(e, 0xf2); e8(e, 0x0f); e8(e, 0x10); emit_xmm_mem(e, 0, FOFF(rs3));  /* movsd xmm0, f[rs3] */
                e8(e, 0xf2); e8(e, 0x0f); e8(e, 0x10); emit_xmm_mem(e, 1, FOFF(rs1));  /* movsd xmm1, f[rs1] */
                /* vfmadd231sd xmm0, xmm1, f[rs2]: xmm0 = xmm1 * f[rs2] + xmm0 */
                e8(e, 0xc4); e8(e, 0xe2); e8(e, 0xf1); e8(e, 0xb9); emit_xmm_mem(e, 0, FOFF(rs2));
        } else {
                e8(e, 0xf2); e8(e, 0x0f); e8(e, 0x10); emit_xmm_mem(e, 0, FOFF(rs1));  /* movsd xmm0, f[rs1] */
                e8(e, 0xf2); e8(e, 0x0f); e8(e, sse_op[f7]); emit_xmm_mem(e, 0, FOFF(rs2));
        }
        e8(e, 0x66); e8(e, 0x0f); e8(e, 0x2e); e8(e, 0xc0);                     /* ucomisd xmm0, xmm0 */
        slow[1] = emit_jcc(e, 0xa);                                             /* jp: NaN */
        emit_mov_imm(e, RDX, (uint64_t) (uintptr_t) &t->j->fp);
        e8(e, 0x0f); e8(e, 0xae); e8(e, 0x1a);                                  /* stmxcsr [rdx] */
        e8(e, 0x8b); e8(e, 0x02);                                               /* mov eax, [rdx] */
        emit_alu_imm(e, ALU_AND, false, RAX, 0x3f);
        e8(e, 0x0f); e8(e, 0xb6); e8(e, 0x44); e8(e, 0x02);                     /* movzx eax, byte [rdx + rax + to_fflags] */
        e8(e, (uint8_t) offsetof(JitFp, mxcsr_to_fflags));
        e8(e, 0x8b); emit_xmm_mem(e, RCX, OFF(fpu.fflags));                     /* mov ecx, [fflags] */
        e8(e, 0xf7); e8(e, 0xd1);                                               /* not ecx */
        e8(e, 0x85); e8(e, 0xc8);                                               /* test eax, ecx */
        slow[2] = emit_jcc(e, CC_NE);
        e8(e, 0xf2); e8(e, 0x0f); e8(e, 0x11); emit_xmm_mem(e, 0, FOFF(rd));   /* movsd f[rd], xmm0 */
        emit_fs_dirty(t);
        memcpy(ret_slow, slow, sizeof(slow));
        return true;
}

static void emit_fp_op(Translation *t, const DecodedInsn *d, uint64_t pc, unsigned done) {
        Emit *e = &t->e;
        Stub *s = new_stub(t, pc, done, EXIT_STEP);
        uint8_t *slow[3], *skip = NULL;

        if (emit_fp_fast(t, d, s, slow)) {
                skip = emit_jmp(e);
                for (unsigned i = 0; i < ELEMENTSOF(slow); i++)
                        if (slow[i])
                                patch_rel32(slow[i], e->p);
        }
        emit_mov_rr(e, RDI, RBX);
        emit_mov_imm(e, RSI, (uint32_t) d->imm);
        emit_mov_imm(e, RAX, (uint64_t) (uintptr_t) helper_fp);
        emit_call_rax(e);
        e8(e, 0x48); e8(e, 0x85); e8(e, 0xc0);                  /* test rax, rax */
        s->rel[0] = emit_jcc(e, CC_NE);
        if (skip)
                patch_rel32(skip, e->p);
}

/*
 * Instructions the interpreter executes from inside a block (a call, not
 * an exit to the dispatcher): atomics and CSR accesses, except satp and
 * PMP, whose writes change the fetch mappings or permissions the rest of
 * the block was translated under, and mcycle/minstret, whose writes move
 * instret under the block's own count. They may trap, jump or end the slice (a CSR write that unmasks
 * an interrupt); the block checks for that after the call and leaves.
 */
#define CSR_SATP 0x180
#define CSR_PMP_FIRST 0x3a0
#define CSR_PMP_LAST 0x3ef
#define CSR_MCOUNTERS_FIRST 0xb00
#define CSR_MCOUNTERS_LAST 0xbff

static void profile_step(Jit *j, Hart *h);

static bool steps_inline(const DecodedInsn *d) {
        uint32_t insn = (uint32_t) d->imm;

        if (d->op == OP_AMO)
                return true;
        if (d->op != OP_SYSTEM || ((insn >> 12) & 3) == 0)
                return false; /* not Zicsr: ECALL, EBREAK, xRET, WFI, SFENCE.VMA */
        unsigned csr = insn >> 20;
        return csr != CSR_SATP && !(csr >= CSR_PMP_FIRST && csr <= CSR_PMP_LAST) &&
                !(csr >= CSR_MCOUNTERS_FIRST && csr <= CSR_MCOUNTERS_LAST);
}

static void helper_interp_step(Hart *h) {
        Jit *j = h->jit;

        if (j->interp_profile)
                profile_step(j, h);
        hart_step(h);
        h->instret++;
        j->stats.inline_steps++;
}

/*
 * Calls the interpreter for the instruction at 'pc', the block's
 * instruction number 'n'. instret must be exact for it (it may read
 * instret or trap), so the block's count so far is added first.
 */
static void emit_interp_step(Translation *t, uint64_t pc, unsigned n, unsigned len) {
        Emit *e = &t->e;
        Stub *s;

        if (n > t->committed)
                emit_add_mem_imm(e, RBX, OFF(instret), (int32_t) (n - t->committed));
        t->committed = n + 1;
        emit_set_pc(t, pc);
        emit_mov_rr(e, RDI, RBX);
        emit_mov_imm(e, RAX, (uint64_t) (uintptr_t) helper_interp_step);
        emit_call_rax(e);
        /* Leave if it did not simply fall through to the next instruction, or ended the slice. */
        s = new_stub(t, 0, n + 1, EXIT_DIVERTED);
        s->pc_set = true;
        emit_mov_imm(e, RCX, pc + len);
        emit_alu_mem(e, ALU_CMP, true, RCX, RBX, OFF(pc));
        s->rel[0] = emit_jcc(e, CC_NE);
        /* cmp qword [rbx + slice_end], 0 */
        e8(e, 0x48); e8(e, 0x83); modrm_disp32(e, 7, RBX, OFF(slice_end)); e8(e, 0x00);
        s->rel[1] = emit_jcc(e, CC_E);
}

static void emit_helper2(Translation *t, const DecodedInsn *d, uint64_t (*fn)(uint64_t, uint64_t)) {
        Emit *e = &t->e;

        emit_load64(e, RDI, RBX, XOFF(d->rs1));
        emit_load64(e, RSI, RBX, XOFF(d->rs2));
        emit_mov_imm(e, RAX, (uint64_t) (uintptr_t) fn);
        emit_call_rax(e);
}

/* rax = the high 64 bits of rax * x[rs2], signed or unsigned (one-operand imul/mul). */
static void emit_mul_high(Emit *e, bool is_signed, unsigned rs2) {
        e8(e, 0x48);
        e8(e, 0xf7);
        modrm_disp32(e, is_signed ? 5 : 4, RBX, XOFF(rs2));
        emit_mov_rr(e, RAX, RDX);
}

/*
 * rax = rax / rcx or rax % rcx, unsigned; RISC-V's division by zero gives
 * all ones (quotient) or the dividend (remainder), where x86 would trap.
 * The signed forms, with their INT64_MIN / -1 case, stay in helpers.
 */
static void emit_divu(Emit *e, bool remainder) {
        uint8_t *zero, *done;

        e8(e, 0x48); e8(e, 0x85); e8(e, 0xc9);                  /* test rcx, rcx */
        zero = emit_jcc(e, CC_E);
        e8(e, 0x31); e8(e, 0xd2);                               /* xor edx, edx */
        e8(e, 0x48); e8(e, 0xf7); e8(e, 0xf1);                  /* div rcx */
        if (remainder)
                emit_mov_rr(e, RAX, RDX);
        done = emit_jmp(e);
        patch_rel32(zero, e->p);
        if (!remainder)
                emit_mov_imm(e, RAX, UINT64_MAX);
        patch_rel32(done, e->p);
}

/* Computes an ALU result into rax; false if 'd' is not an ALU instruction handled here. */
static bool emit_alu(Translation *t, const DecodedInsn *d, uint64_t pc) {
        Emit *e = &t->e;
        int32_t imm = (int32_t) d->imm;
        unsigned rs1 = d->rs1, rs2 = d->rs2;

#define LOAD_A() emit_get(t, RAX, rs1)
#define SHIFT_B() emit_get(t, RCX, rs2)
        switch ((Op) d->op) {
        case OP_LUI: emit_mov_imm(e, RAX, (uint64_t) d->imm); break;
        case OP_AUIPC: emit_mov_imm(e, RAX, pc + (uint64_t) d->imm); break;
        case OP_ADDI: LOAD_A(); if (imm) emit_alu_imm(e, ALU_ADD, true, RAX, imm); break;
        case OP_XORI: LOAD_A(); emit_alu_imm(e, ALU_XOR, true, RAX, imm); break;
        case OP_ORI: LOAD_A(); emit_alu_imm(e, ALU_OR, true, RAX, imm); break;
        case OP_ANDI: LOAD_A(); emit_alu_imm(e, ALU_AND, true, RAX, imm); break;
        case OP_SLTI: LOAD_A(); emit_alu_imm(e, ALU_CMP, true, RAX, imm); emit_setcc_rax(e, CC_L); break;
        case OP_SLTIU: LOAD_A(); emit_alu_imm(e, ALU_CMP, true, RAX, imm); emit_setcc_rax(e, CC_B); break;
        case OP_SLLI: LOAD_A(); emit_shift_imm(e, SHIFT_SHL, true, RAX, (uint8_t) imm); break;
        case OP_SRLI: LOAD_A(); emit_shift_imm(e, SHIFT_SHR, true, RAX, (uint8_t) imm); break;
        case OP_SRAI: LOAD_A(); emit_shift_imm(e, SHIFT_SAR, true, RAX, (uint8_t) imm); break;
        case OP_ADDIW: LOAD_A(); emit_alu_imm(e, ALU_ADD, false, RAX, imm); emit_sext32(e, RAX); break;
        case OP_SLLIW: LOAD_A(); emit_shift_imm(e, SHIFT_SHL, false, RAX, (uint8_t) imm); emit_sext32(e, RAX); break;
        case OP_SRLIW: LOAD_A(); emit_shift_imm(e, SHIFT_SHR, false, RAX, (uint8_t) imm); emit_sext32(e, RAX); break;
        case OP_SRAIW: LOAD_A(); emit_shift_imm(e, SHIFT_SAR, false, RAX, (uint8_t) imm); emit_sext32(e, RAX); break;
        case OP_ADD: LOAD_A(); emit_alu_x(t, ALU_ADD, true, rs2); break;
        case OP_SUB: LOAD_A(); emit_alu_x(t, ALU_SUB, true, rs2); break;
        case OP_XOR: LOAD_A(); emit_alu_x(t, ALU_XOR, true, rs2); break;
        case OP_OR: LOAD_A(); emit_alu_x(t, ALU_OR, true, rs2); break;
        case OP_AND: LOAD_A(); emit_alu_x(t, ALU_AND, true, rs2); break;
        case OP_SLT: LOAD_A(); emit_alu_x(t, ALU_CMP, true, rs2); emit_setcc_rax(e, CC_L); break;
        case OP_SLTU: LOAD_A(); emit_alu_x(t, ALU_CMP, true, rs2); emit_setcc_rax(e, CC_B); break;
        case OP_SLL: LOAD_A(); SHIFT_B(); emit_shift_cl(e, SHIFT_SHL, true, RAX); break;
        case OP_SRL: LOAD_A(); SHIFT_B(); emit_shift_cl(e, SHIFT_SHR, true, RAX); break;
        case OP_SRA: LOAD_A(); SHIFT_B(); emit_shift_cl(e, SHIFT_SAR, true, RAX); break;
        case OP_ADDW: LOAD_A(); emit_alu_x(t, ALU_ADD, false, rs2); emit_sext32(e, RAX); break;
        case OP_SUBW: LOAD_A(); emit_alu_x(t, ALU_SUB, false, rs2); emit_sext32(e, RAX); break;
        case OP_SLLW: LOAD_A(); SHIFT_B(); emit_shift_cl(e, SHIFT_SHL, false, RAX); emit_sext32(e, RAX); break;
        case OP_SRLW: LOAD_A(); SHIFT_B(); emit_shift_cl(e, SHIFT_SHR, false, RAX); emit_sext32(e, RAX); break;
        case OP_SRAW: LOAD_A(); SHIFT_B(); emit_shift_cl(e, SHIFT_SAR, false, RAX); emit_sext32(e, RAX); break;
        case OP_MUL: LOAD_A(); emit_imul_mem(e, true, RAX, RBX, XOFF(rs2)); break;
        case OP_MULW: LOAD_A(); emit_imul_mem(e, false, RAX, RBX, XOFF(rs2)); emit_sext32(e, RAX); break;
        case OP_MULH: LOAD_A(); emit_mul_high(e, true, rs2); break;
        case OP_MULHSU: emit_helper2(t, d, helper_mulhsu); break;
        case OP_MULHU: LOAD_A(); emit_mul_high(e, false, rs2); break;
        case OP_DIV: emit_helper2(t, d, helper_div); break;
        case OP_DIVU: LOAD_A(); SHIFT_B(); emit_divu(e, false); break;
        case OP_REM: emit_helper2(t, d, helper_rem); break;
        case OP_REMU: LOAD_A(); SHIFT_B(); emit_divu(e, true); break;
        case OP_DIVW: emit_helper2(t, d, helper_divw); break;
        case OP_DIVUW: emit_helper2(t, d, helper_divuw); break;
        case OP_REMW: emit_helper2(t, d, helper_remw); break;
        case OP_REMUW: emit_helper2(t, d, helper_remuw); break;
        default:
                return false;
        }
#undef LOAD_A
#undef SHIFT_B
        return true;
}

static bool is_alu(Op op) {
        return op == OP_LUI || op == OP_AUIPC || (op >= OP_ADDI && op <= OP_REMUW);
}

static void emit_branch(Translation *t, const DecodedInsn *d, uint64_t pc) {
        static const uint8_t cc[] = {
                [OP_BEQ] = CC_E, [OP_BNE] = CC_NE, [OP_BLT] = CC_L, [OP_BGE] = CC_GE, [OP_BLTU] = CC_B, [OP_BGEU] = CC_AE,
        };
        Emit *e = &t->e;
        uint8_t *taken;

        emit_get(t, RAX, d->rs1);
        emit_alu_x(t, ALU_CMP, true, d->rs2);
        taken = emit_jcc(e, cc[d->op]);
        emit_exit_to(t, pc + d->len);
        patch_rel32(taken, e->p);
        emit_exit_to(t, pc + (uint64_t) d->imm);
}

static Block *translate(Jit *j, Hart *h, uint64_t pc, uint64_t pa, const uint8_t *page) {
        Translation *t;
        Block *b;
        uint64_t page_index, start = pc;
        unsigned n = 0;
        uint8_t *budget_rel, *budget_imm;

        if (j->size - j->used < JIT_MAX_BLOCK_BYTES || j->n_blocks >= j->max_blocks)
                flush_all(j);
        if (!pa_to_page(j, pa, &page_index))
                return NULL;

        t = malloc(sizeof(*t));
        if (!t)
                return NULL;
        t->j = j;
        t->e.p = j->rw + j->used;
        t->n_stubs = 0;
        t->page = pc & PAGE_MASK;
        t->committed = 0;
        t->rax_reg = t->rcx_reg = -1;

        const uint8_t *entry = t->e.p;
        Emit *e = &t->e;

        /* Budget: enter only if the whole block fits in the slice (hart_run() never overshoots). */
        emit_load64(e, RAX, RBX, OFF(instret));
        e8(e, 0x48); e8(e, 0x05); /* add rax, imm32 (patched with the block's length) */
        budget_imm = e->p;
        e32(e, 0);
        emit_alu_mem(e, ALU_CMP, true, RAX, RBX, OFF(slice_end));
        budget_rel = emit_jcc(e, CC_A);
        /* The prologue's length depends only on the Hart's layout: every block's body is as far in. */
        if (!j->body_offset)
                j->body_offset = (size_t) (e->p - entry);
        assert(j->body_offset == (size_t) (e->p - entry));

        for (;;) {
                unsigned off = (unsigned) (pc & (PAGE_SIZE - 1));
                uint16_t lo;
                uint32_t raw;
                DecodedInsn d;

                if (n == j->max_insns || (pc & PAGE_MASK) != t->page) {
                        emit_add_mem_imm(e, RBX, OFF(instret), (int32_t) (n - t->committed));
                        emit_exit_to(t, pc);
                        break;
                }
                memcpy(&lo, page + off, 2);
                raw = lo;
                if ((lo & 3) == 3) {
                        uint16_t hi;
                        if (off + 4 > PAGE_SIZE) {
                                emit_exit(t, n - t->committed, pc, EXIT_STEP);
                                break;
                        }
                        memcpy(&hi, page + off + 2, 2);
                        raw |= (uint32_t) hi << 16;
                }
                decode_insn(decode_key(raw), &d);

                Op op = (Op) d.op;
                int rax_reg = -1, rcx_reg = -1;        /* what rax and rcx hold after this instruction */
                if (is_alu(op)) {
                        if (d.rd != 0) {
                                emit_alu(t, &d, pc);
                                emit_store64(e, RBX, XOFF(d.rd), RAX);
                                rax_reg = d.rd;
                        } else {
                                rax_reg = t->rax_reg;
                                rcx_reg = t->rcx_reg;
                        }
                } else if (op >= OP_LB && op <= OP_LWU) {
                        emit_load(t, &d, pc, n);
                        rcx_reg = d.rd ? d.rd : -1;
                } else if (op >= OP_SB && op <= OP_SD)
                        emit_store(t, &d, pc, n);
                else if (op == OP_FLW || op == OP_FLD)
                        emit_fp_load(t, &d, pc, n);
                else if (op == OP_FSW || op == OP_FSD)
                        emit_fp_store(t, &d, pc, n);
                else if (op == OP_FP)
                        emit_fp_op(t, &d, pc, n);
                else if (op == OP_FENCE && d.len == 4 && ((raw >> 12) & 7) == 0) {
                        /* The host keeps every other order (decode.h); store before load needs MFENCE. */
                        if (fence_orders_store_load(raw))
                                emit_mfence(e);
                }
                else if (op == OP_JAL) {
                        if (d.rd) {
                                emit_mov_imm(e, RAX, pc + d.len);
                                emit_store64(e, RBX, XOFF(d.rd), RAX);
                        }
                        emit_add_mem_imm(e, RBX, OFF(instret), (int32_t) (n + 1 - t->committed));
                        emit_exit_to(t, pc + (uint64_t) d.imm);
                        n++;
                        break;
                } else if (op == OP_JALR) {
                        emit_get(t, RCX, d.rs1);
                        if (d.imm)
                                emit_alu_imm(e, ALU_ADD, true, RCX, (int32_t) d.imm);
                        emit_alu_imm(e, ALU_AND, true, RCX, -2);
                        if (d.rd) {
                                emit_mov_imm(e, RAX, pc + d.len);
                                emit_store64(e, RBX, XOFF(d.rd), RAX);
                        }
                        emit_store64(e, RBX, OFF(pc), RCX);
                        emit_add_mem_imm(e, RBX, OFF(instret), (int32_t) (n + 1 - t->committed));
                        emit_jump_cache(t);
                        n++;
                        break;
                } else if (op >= OP_BEQ && op <= OP_BGEU) {
                        emit_add_mem_imm(e, RBX, OFF(instret), (int32_t) (n + 1 - t->committed));
                        emit_branch(t, &d, pc);
                        n++;
                        break;
                } else if (steps_inline(&d)) {
                        emit_interp_step(t, pc, n, d.len);
                } else {
                        /* What may change the mappings, the privilege or the code (xRET, ECALL, SFENCE.VMA, satp, FENCE.I, WFI, illegal) ends the block. */
                        emit_exit(t, n - t->committed, pc, EXIT_STEP);
                        break;
                }
                t->rax_reg = rax_reg;
                t->rcx_reg = rcx_reg;
                n++;
                pc += d.len;
        }

        /* Out-of-line exits: the budget check and the TLB misses. */
        patch_rel32(budget_rel, e->p);
        emit_set_pc(t, start);
        emit_mov_imm(e, RAX, EXIT_SLICE);
        emit_jmp_epilogue(t);
        for (unsigned i = 0; i < t->n_stubs; i++) {
                Stub *s = &t->stubs[i];
                if (s->refill_rel)
                        emit_refill(t, s);      /* falls through to the exit when the refill fails */
                for (unsigned k = 0; k < ELEMENTSOF(s->rel); k++)
                        if (s->rel[k])
                                patch_rel32(s->rel[k], e->p);
                if (s->pc_set) {
                        emit_mov_imm(e, RAX, s->code);
                        emit_jmp_epilogue(t);
                } else
                        emit_exit(t, s->done, s->pc, s->code);
        }
        uint32_t len = n;
        memcpy(budget_imm, &len, 4);

        size_t bytes = ALIGN_TO((size_t) (e->p - entry), 16);
        free(t);

        if (!j->pages[page_index].head) {
                unmap_page_for_stores(j, pa & PAGE_MASK);
                j->pages[page_index].hash = hash_page(page);
                j->pages[page_index].fence = j->fence_gen;
        }

        uint32_t bi = j->n_blocks++;
        b = &j->blocks[bi];
        *b = (Block) {
                .pc = start,
                .pa = pa,
                .priv = (uint8_t) h->priv,
                .ninsn = (uint16_t) n,
                .code = (uint32_t) (entry - j->rw),
        };
        unsigned hi = hash_block(pa, start);
        b->hash_next = j->hash[hi];
        j->hash[hi] = bi;
        b->page_next = j->pages[page_index].head;
        j->pages[page_index].head = bi;

        if (n > 0) {
                j->used += bytes;
                j->stats.code_bytes += bytes;
                j->stats.code_bytes_peak = MAX(j->stats.code_bytes_peak, j->stats.code_bytes);
        }
        j->stats.blocks_translated++;
        j->stats.insns_translated += n;
        return b;
}

/* ---- the dispatcher ---- */

static Block *lookup(Jit *j, Hart *h) {
        uint64_t pc = h->pc;
        const TlbEntry *te = &h->tlb_fetch[(pc >> PAGE_SHIFT) & (TLB_SIZE - 1)];
        const PhysMem *mem = h->mem;
        uint64_t off, pa;

        /* Not in the fetch TLB: the interpreter fetches it (and fills the TLB, or traps). */
        if (te->tag != (pc & PAGE_MASK))
                return NULL;
        off = (uint64_t) ((uintptr_t) (pc + te->addend) - (uintptr_t) mem->ram);
        if (off >= mem->ram_size)
                return NULL;
        pa = mem->ram_base + off;

        uint64_t page_index = off >> PAGE_SHIFT;
        if (j->pages[page_index].head && j->pages[page_index].fence != j->fence_gen)
                verify_page(j, page_index, mem->ram + (off & PAGE_MASK));

        for (uint32_t bi = j->hash[hash_block(pa, pc)]; bi; bi = j->blocks[bi].hash_next) {
                Block *b = &j->blocks[bi];
                if (b->pa == pa && b->pc == pc && b->priv == h->priv)
                        return b;
        }
        return translate(j, h, pc, pa, mem->ram + (off & PAGE_MASK));
}

/* The instruction's opcode, funct3 and (for CSRs and system instructions) immediate field: one pattern per kind. */
static uint32_t insn_pattern(uint32_t raw) {
        if ((raw & 3) != 3)
                return raw & 0xe003;
        if ((raw & 0x7f) == 0x73)
                return raw & 0xfff0707f;
        return raw & 0xf800707f;
}

static void profile_step(Jit *j, Hart *h) {
        const TlbEntry *te = &h->tlb_fetch[(h->pc >> PAGE_SHIFT) & (TLB_SIZE - 1)];
        uint32_t raw = 0, pattern;

        if (te->tag == (h->pc & PAGE_MASK) && (h->pc & (PAGE_SIZE - 1)) <= PAGE_SIZE - 4)
                memcpy(&raw, (const void *) (uintptr_t) (h->pc + te->addend), 4);
        pattern = insn_pattern(raw);
        for (unsigned k = 0; k < INTERP_PROFILE_SIZE; k++) {
                unsigned i = (pattern + k) % INTERP_PROFILE_SIZE;
                if (j->interp_profile[i].count == 0)
                        j->interp_profile[i].pattern = pattern;
                if (j->interp_profile[i].pattern == pattern) {
                        j->interp_profile[i].count++;
                        return;
                }
        }
}

/* Logs the most frequent patterns (and forgets the counts). */
static void log_interp_profile(Jit *j) {
        for (unsigned n = 0; n < 16; n++) {
                unsigned best = INTERP_PROFILE_SIZE;
                for (unsigned i = 0; i < INTERP_PROFILE_SIZE; i++)
                        if (j->interp_profile[i].count && (best == INTERP_PROFILE_SIZE ||
                                                           j->interp_profile[i].count > j->interp_profile[best].count))
                                best = i;
                if (best == INTERP_PROFILE_SIZE)
                        return;
                log_info("jit: interpreter steps for pattern 0x%08x: %llu", j->interp_profile[best].pattern,
                         (unsigned long long) j->interp_profile[best].count);
                j->interp_profile[best].count = 0;
        }
}

static void step(Jit *j, Hart *h) {
        if (j->interp_profile)
                profile_step(j, h);
        hart_step(h);
        h->instret++;
        j->stats.interp_steps++;
        j->stats.retired++;
}

uint64_t jit_run_slice(Hart *h, uint64_t max) {
        Jit *j = h->jit;
        uint64_t start = j->stats.retired;
        uint64_t end = h->instret + max;
        uintptr_t pending = 0;          /* a direct-jump site to chain to the next block */
        uint64_t pending_gen = 0;

        while (h->instret < h->slice_end) {
                if (_unlikely_(atomic_load_explicit(&j->flush_requested, memory_order_relaxed)) &&
                    atomic_exchange_explicit(&j->flush_requested, false, memory_order_acquire)) {
                        flush_all(j);
                        pending = 0;
                }
                Block *b = lookup(j, h);
                uintptr_t r;

                /*
                 * A block that starts in the slice may end past it (by less than a block), not past
                 * the caller's budget: stepping the slice's last instructions one by one cost a
                 * dispatcher round each, and a translation for every block tail.
                 */
                if (!b || b->ninsn == 0 || b->ninsn > end - h->instret) {
                        pending = 0;
                        step(j, h);
                        if (j->single_block)
                                break;
                        continue;
                }
                /* Lockstep (single_block) compares after every block: no shortcuts between blocks. */
                if (pending && pending_gen == j->gen && !j->no_chain && !j->single_block) {
                        uint8_t *site = rx_to_rw(j, (const uint8_t *) pending);
                        patch_rel32(site + 1, j->rw + b->code);
                        j->stats.chains_patched++;
                }
                pending = 0;

                if (!j->no_chain && !j->single_block) {
                        JcEntry *c = &j->jc[jc_index(h->pc)];
                        unsigned pi = jc_page_index(h->pc);
                        *c = (JcEntry) { .pc = h->pc, .tag = j->jc_tag | h->priv, .code = j->rx + b->code };
                        j->jc_pages[pi / 64] |= 1ULL << (pi % 64);
                }

                pending_gen = j->gen;
                j->stats.block_runs++;
                uint64_t before = h->instret;
                r = j->enter(h, j->rx + b->code + j->body_offset);
                /* Translated code writes instret only by adding what it retired. */
                j->stats.retired += h->instret - before;
                switch (r) {
                case EXIT_TLB:
                        j->stats.tlb_exits++;
                        __attribute__((fallthrough));
                case EXIT_STEP:
                        if (h->instret < end)
                                step(j, h);
                        break;
                case EXIT_JC_MISS:
                        j->stats.jc_misses++;
                        break;
                case EXIT_SLICE:
                        j->stats.slice_exits++;
                        break;
                case EXIT_DIVERTED:
                        j->stats.diverted_exits++;
                        break;
                case EXIT_NEXT:
                        break;
                default:
                        j->stats.chain_exits++;
                        pending = r;
                }
                if (j->single_block)
                        break;
        }
        /* Lockstep tests compare after each block: make hart_run() return now. */
        if (j->single_block)
                atomic_store(&h->kick, true);
        return j->stats.retired - start;
}
