/* SPDX-License-Identifier: MIT */

/*
 * The debugger's hooks (hart.h, "Debugging"): breakpoints, watchpoints and
 * single step, checked by a slice loop of its own that hart_run() uses
 * only while one of them is set, and memory access without side effects.
 *
 * Watchpoints fire before the access, with pc on the accessing
 * instruction, as RISC-V debug triggers do: GDB then steps over it with
 * the watchpoint lifted to see the new value.
 */

#include <errno.h>
#include <string.h>

#include "decode.h"
#include "hart-internal.h"
#include "machine/physmem.h"
#include "macro.h"

#define SATP_MODE_SHIFT 60
#define SATP_MODE_SV39 8
#define SATP_MODE_SV48 9
#define SATP_PPN_MASK ((1ULL << 44) - 1)
#define PTE_V (1ULL << 0)
#define PTE_R (1ULL << 1)
#define PTE_W (1ULL << 2)
#define PTE_X (1ULL << 3)
#define PTE_PPN_SHIFT 10
#define PTE_PPN_MASK ((1ULL << 44) - 1)

static void update_active(Hart *h) {
        h->debug_active = h->debug.n_points > 0 || h->debug.step;
}

static bool point_valid(HartDebugKind kind, uint64_t len) {
        if (kind == HART_DEBUG_EXEC)
                return true;
        return kind <= HART_DEBUG_ACCESS && len >= 1 && len <= HART_MAX_WATCH_LEN;
}

static int point_find(Hart *h, HartDebugKind kind, uint64_t addr, uint64_t len) {
        for (unsigned i = 0; i < h->debug.n_points; i++)
                if (h->debug.points[i].kind == kind && h->debug.points[i].addr == addr &&
                    (kind == HART_DEBUG_EXEC || h->debug.points[i].len == len))
                        return (int) i;
        return -ENOENT;
}

int hart_debug_add(Hart *h, HartDebugKind kind, uint64_t addr, uint64_t len) {
        if (!point_valid(kind, len))
                return -EINVAL;
        if (point_find(h, kind, addr, len) >= 0)
                return -EEXIST;
        if (h->debug.n_points >= HART_MAX_DEBUG_POINTS)
                return -ENOSPC;
        h->debug.points[h->debug.n_points].kind = (uint8_t) kind;
        h->debug.points[h->debug.n_points].addr = addr;
        h->debug.points[h->debug.n_points].len = kind == HART_DEBUG_EXEC ? 1 : len;
        h->debug.n_points++;
        update_active(h);
        return 0;
}

int hart_debug_remove(Hart *h, HartDebugKind kind, uint64_t addr, uint64_t len) {
        int i = point_find(h, kind, addr, len);

        if (i < 0)
                return i;
        h->debug.points[i] = h->debug.points[--h->debug.n_points];
        update_active(h);
        return 0;
}

void hart_debug_clear(Hart *h) {
        h->debug.n_points = 0;
        h->debug.step = false;
        update_active(h);
}

void hart_debug_step(Hart *h, bool step) {
        h->debug.step = step;
        update_active(h);
}

void hart_debug_resume(Hart *h) {
        h->debug.skip_pc = true;
        h->debug.skip_addr = h->pc;
}

HartDebugStop hart_debug_take_stop(Hart *h) {
        HartDebugStop s = h->debug.stop;

        h->debug.stop = (HartDebugStop) { .reason = HART_STOP_NONE };
        return s;
}

/* ---- memory ---- */

/*
 * Page walk for the debugger: no permission check beyond a valid leaf (a
 * debugger may read what the kernel can map), no A/D update, no TLB.
 */
static int debug_translate(Hart *h, uint64_t vaddr, uint64_t *ret_paddr) {
        unsigned mode = h->satp >> SATP_MODE_SHIFT;
        unsigned levels;

        if (h->priv == PRIV_M || (mode != SATP_MODE_SV39 && mode != SATP_MODE_SV48)) {
                *ret_paddr = vaddr;
                return 0;
        }
        levels = mode == SATP_MODE_SV48 ? 4 : 3;
        unsigned va_bits = 12 + 9 * levels;
        int64_t sext = (int64_t) (vaddr << (64 - va_bits)) >> (64 - va_bits);
        if ((uint64_t) sext != vaddr)
                return -EFAULT;

        uint64_t table = (h->satp & SATP_PPN_MASK) << PAGE_SHIFT;
        for (int level = (int) levels - 1; level >= 0; level--) {
                uint64_t pte_addr = table + ((vaddr >> (PAGE_SHIFT + 9 * level)) & 0x1ff) * 8;
                int64_t fb_page;
                uint8_t *p = physmem_host_ptr(h->mem, pte_addr, 8, &fb_page);
                uint64_t pte, ppn;

                if (!p || fb_page >= 0)
                        return -EFAULT;
                memcpy(&pte, p, 8);
                if (!(pte & PTE_V) || (!(pte & PTE_R) && (pte & PTE_W)))
                        return -EFAULT;
                ppn = (pte >> PTE_PPN_SHIFT) & PTE_PPN_MASK;
                if (!(pte & (PTE_R | PTE_X))) {
                        table = ppn << PAGE_SHIFT;
                        continue;
                }
                uint64_t low_mask = (1ULL << (9 * level)) - 1;
                if (ppn & low_mask)
                        return -EFAULT;
                *ret_paddr = ((ppn | ((vaddr >> PAGE_SHIFT) & low_mask)) << PAGE_SHIFT) | (vaddr & (PAGE_SIZE - 1));
                return 0;
        }
        return -EFAULT;
}

/* Host pointer for up to the end of the page containing 'addr'; *ret_len gets how much of 'len' fits. */
static uint8_t *debug_ptr(Hart *h, uint64_t addr, size_t len, bool virtual, size_t *ret_len, int64_t *ret_fb_page,
                          uint64_t *ret_paddr) {
        uint64_t pa;
        size_t chunk = MIN(len, (size_t) (PAGE_SIZE - (addr & (PAGE_SIZE - 1))));

        if (virtual) {
                if (debug_translate(h, addr, &pa) < 0)
                        return NULL;
        } else
                pa = addr;
        *ret_len = chunk;
        *ret_paddr = pa;
        return physmem_host_ptr(h->mem, pa, chunk, ret_fb_page);
}

int hart_debug_read_memory(Hart *h, uint64_t addr, void *buf, size_t len, bool virtual) {
        uint8_t *out = buf;

        while (len > 0) {
                size_t chunk;
                int64_t fb_page;
                uint64_t pa;
                uint8_t *p = debug_ptr(h, addr, len, virtual, &chunk, &fb_page, &pa);

                if (!p)
                        return -EFAULT;
                memcpy(out, p, chunk);
                out += chunk;
                addr += chunk;
                len -= chunk;
        }
        return 0;
}

int hart_debug_write_memory(Hart *h, uint64_t addr, const void *buf, size_t len, bool virtual) {
        const uint8_t *in = buf;
        uint64_t a = addr;
        size_t left = len;

        /* Check every page first, so that a refused write changes nothing. */
        while (left > 0) {
                size_t chunk;
                int64_t fb_page;
                uint64_t pa;

                if (!debug_ptr(h, a, left, virtual, &chunk, &fb_page, &pa))
                        return -EFAULT;
                a += chunk;
                left -= chunk;
        }
        while (len > 0) {
                size_t chunk;
                int64_t fb_page;
                uint64_t pa;
                uint8_t *p = debug_ptr(h, addr, len, virtual, &chunk, &fb_page, &pa);

                memcpy(p, in, chunk);
                if (fb_page >= 0)
                        physmem_fb_mark_range(h->mem, pa - h->mem->fb_base, chunk);
                else
                        physmem_ram_mark_range(h->mem, pa, chunk);
                in += chunk;
                addr += chunk;
                len -= chunk;
        }
        /* Code may have changed under a translation; decoded instructions are tagged by their bits. */
        hart_flush_caches(h);
        return 0;
}

/* ---- the checks ---- */

/* The data access the instruction at pc is about to make: false if it makes none. */
static bool next_access(Hart *h, uint64_t *ret_addr, unsigned *ret_size, bool *ret_read, bool *ret_write) {
        uint16_t lo, hi = 0;
        DecodedInsn d;

        if (hart_debug_read_memory(h, h->pc, &lo, 2, true) < 0)
                return false;
        if ((lo & 3) == 3 && hart_debug_read_memory(h, h->pc + 2, &hi, 2, true) < 0)
                return false;
        decode_insn(decode_key((uint32_t) hi << 16 | lo), &d);

        uint64_t base = h->x[d.rs1];
        *ret_read = *ret_write = false;
        switch (d.op) {
        case OP_LB: case OP_LBU:
                *ret_size = 1;
                *ret_read = true;
                break;
        case OP_LH: case OP_LHU:
                *ret_size = 2;
                *ret_read = true;
                break;
        case OP_LW: case OP_LWU: case OP_FLW:
                *ret_size = 4;
                *ret_read = true;
                break;
        case OP_LD: case OP_FLD:
                *ret_size = 8;
                *ret_read = true;
                break;
        case OP_SB:
                *ret_size = 1;
                *ret_write = true;
                break;
        case OP_SH:
                *ret_size = 2;
                *ret_write = true;
                break;
        case OP_SW: case OP_FSW:
                *ret_size = 4;
                *ret_write = true;
                break;
        case OP_SD: case OP_FSD:
                *ret_size = 8;
                *ret_write = true;
                break;
        case OP_AMO: {
                uint32_t insn = (uint32_t) d.imm, funct5 = insn >> 27;
                *ret_size = ((insn >> 12) & 7) == 3 ? 8 : 4;
                *ret_read = funct5 != 3;        /* SC only writes */
                *ret_write = funct5 != 2;       /* LR only reads */
                *ret_addr = base;
                return true;
        }
        default:
                return false;
        }
        *ret_addr = base + (uint64_t) d.imm;
        return true;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
        return a - b < blen || b - a < alen;
}

/* Whether a point fires before the instruction at pc; records why. */
static bool debug_hit(Hart *h) {
        bool have_watch = false, known = false, read = false, write = false;
        uint64_t addr = 0;
        unsigned size = 0;

        for (unsigned i = 0; i < h->debug.n_points; i++) {
                if (h->debug.points[i].kind == HART_DEBUG_EXEC) {
                        if (h->debug.points[i].addr == h->pc) {
                                h->debug.stop = (HartDebugStop) { .reason = HART_STOP_BREAKPOINT, .addr = h->pc };
                                return true;
                        }
                } else
                        have_watch = true;
        }
        if (!have_watch)
                return false;

        for (unsigned i = 0; i < h->debug.n_points; i++) {
                HartDebugKind kind = h->debug.points[i].kind;

                if (kind == HART_DEBUG_EXEC)
                        continue;
                if (!known) {
                        if (!next_access(h, &addr, &size, &read, &write))
                                return false;
                        known = true;
                }
                if (!overlaps(addr, size, h->debug.points[i].addr, h->debug.points[i].len))
                        continue;
                if ((kind == HART_DEBUG_WRITE && write) || (kind == HART_DEBUG_READ && read) ||
                    (kind == HART_DEBUG_ACCESS && (read || write))) {
                        h->debug.stop = (HartDebugStop) {
                                .reason = HART_STOP_WATCHPOINT,
                                .kind = kind,
                                .addr = MAX(addr, h->debug.points[i].addr),
                        };
                        return true;
                }
        }
        return false;
}

uint64_t hart_debug_run_slice(Hart *h) {
        uint64_t executed = 0;

        while (h->instret < h->slice_end) {
                bool resuming = h->debug.skip_pc && h->pc == h->debug.skip_addr;
                if (!resuming && debug_hit(h)) {
                        h->slice_end = 0;
                        break;
                }
                h->debug.skip_pc = false;
                hart_step(h);
                h->instret++;
                executed++;
                if (h->debug.step) {
                        h->debug.step = false;
                        update_active(h);
                        h->debug.stop = (HartDebugStop) { .reason = HART_STOP_STEP, .addr = h->pc };
                        break;
                }
        }
        return executed;
}
