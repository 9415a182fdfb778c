/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * One RV64IMAFDC hart (Zicsr, Zifencei, M/S/U, PMP, Sv39/Sv48, Sstc), as
 * the rest of the machine sees it: an opaque handle and the calls below.
 * Nothing outside emulator/cpu sees its fields; the engines that run it
 * (the interpreter, faster ones) work on the internals in hart-internal.h.
 *
 * Threading: the hart belongs to the thread that calls hart_run() (the CPU
 * thread). Other threads only drive interrupt lines (hart_set_irq) and
 * hart_kick(), both lock-free, both waking a hart asleep in WFI. Register
 * access, reset and save/load run on the CPU thread or while it is stopped.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/state.h"

typedef struct Hart Hart;
typedef struct PhysMem PhysMem;

/* Interrupt lines devices drive (bits of mip). */
#define MIP_SSIP (1ULL << 1)
#define MIP_MSIP (1ULL << 3)
#define MIP_STIP (1ULL << 5)
#define MIP_MTIP (1ULL << 7)
#define MIP_SEIP (1ULL << 9)
#define MIP_MEIP (1ULL << 11)

enum {
        PRIV_U = 0,
        PRIV_S = 1,
        PRIV_M = 3,
};

/* Register numbers for hart_get_reg()/hart_set_reg() (x, pc and f as GDB numbers them). */
enum {
        HART_REG_X0 = 0,                /* x0 .. x31: 0 .. 31 (x0 reads 0, ignores writes) */
        HART_REG_PC = 32,
        HART_REG_F0 = 33,               /* f0 .. f31: 33 .. 64 (raw 64-bit, NaN-boxed singles) */
        HART_REG_FCSR = 65,
        HART_REG_PRIV = 66,             /* PRIV_U, PRIV_S, PRIV_M */
        HART_REG_CSR0 = 0x1000,         /* CSR n is HART_REG_CSR0 + n, n < 4096, with M-mode rights */
        _HART_REG_END = HART_REG_CSR0 + 4096,
};

typedef enum HartExit {
        HART_EXIT_BUDGET,       /* ran the requested number of instructions */
        HART_EXIT_KICK,         /* another thread asked (hart_kick), or hart_request_stop() */
        HART_EXIT_WFI,          /* waiting for an interrupt; nothing pending */
        HART_EXIT_DEBUG,        /* a breakpoint, watchpoint or single step stopped it (hart_debug_stop_info) */
} HartExit;

typedef enum HartEngine {
        HART_ENGINE_INTERP,     /* the interpreter: the reference, available everywhere */
        HART_ENGINE_JIT,        /* translation to host code (x86-64 hosts) */
} HartEngine;

/* mtime in timebase ticks, for the time CSR, Sstc and WFI. */
typedef uint64_t (*HartClock)(void *opaque);

/* A hart in its reset state (pc 0), running the interpreter; NULL when out of memory. */
Hart *hart_new(PhysMem *mem, uint64_t hartid, HartClock clock, void *clock_opaque);
/* Returns NULL. */
Hart *hart_free(Hart *h);
static inline void hart_freep(Hart **h) {
        if (*h)
                hart_free(*h);
}

/* Power-on state with the given pc, M mode; interrupt lines lowered, caches dropped. */
void hart_reset(Hart *h, uint64_t pc);

/*
 * Selects the engine that runs the hart's instructions; -EOPNOTSUPP if this
 * host has no translator. CPU thread, between hart_run() calls.
 */
int hart_set_engine(Hart *h, HartEngine engine);

/* Runs up to 'max_instructions' with the hart's engine; returns why it stopped. CPU thread only. */
HartExit hart_run(Hart *h, uint64_t max_instructions);

/* Raises (level true) or lowers an interrupt line (MIP_MSIP, MIP_MTIP, MIP_MEIP, MIP_SEIP). Any thread. */
void hart_set_irq(Hart *h, uint64_t mip_bit, bool level);

/* Makes hart_run() return soon and wakes WFI. Any thread. */
void hart_kick(Hart *h);
/* Ends hart_run() after the current instruction (from an MMIO handler, e.g. a power-off). CPU thread only. */
void hart_request_stop(Hart *h);
/*
 * Sleeps (WFI) until hart_kick(), a raised line, or 'deadline_ns' on
 * CLOCK_REALTIME, whichever comes first. CPU thread.
 */
void hart_sleep_until(Hart *h, uint64_t deadline_ns);

/* The supervisor timer's deadline in mtime ticks (Sstc stimecmp when enabled), or UINT64_MAX. */
uint64_t hart_timer_deadline(Hart *h);

/* Instructions retired; any thread (approximate while it runs). */
uint64_t hart_instret(Hart *h);

/*
 * Registers by number (HART_REG_*). Returns 0, or -EINVAL for a number
 * that does not exist (an unimplemented CSR) or a value out of range
 * (priv). CSRs are read and written with M-mode rights and the usual
 * WARL rules.
 */
int hart_get_reg(Hart *h, unsigned reg, uint64_t *ret);
int hart_set_reg(Hart *h, unsigned reg, uint64_t value);

/*
 * Drops every cached translation and decoded instruction (guest RAM was
 * rewritten from outside). With the hart stopped; the translating engine
 * drops its code before it next runs any.
 */
void hart_flush_caches(Hart *h);

/*
 * Drops every write TLB entry, so that the next store to each page takes
 * the slow path, which marks RAM pages in the PhysMem's dirty bitmap
 * before it enters the page again (migration's dirty tracking). Both
 * engines store only through entries present, so none writes unmarked
 * afterwards. CPU thread (at a slice boundary) or while it is stopped.
 */
void hart_drop_write_tlb(Hart *h);

/* Architectural state as explicit fields (state.h). Load validates everything first; interrupt lines are not saved. */
int hart_save(Hart *h, StateWriter *w);
int hart_load(Hart *h, StateReader *r);

/*
 * Debugging (cpu/debug.c). Breakpoints and watchpoints live in the hart,
 * never in guest memory, so the guest can neither see nor overwrite them.
 * While any is set, or a step is asked for, hart_run() runs the
 * interpreter whatever the selected engine, checking each instruction
 * before it executes: every engine stops at the same place, and a hart
 * with none set pays one branch per slice. All of these are for the CPU
 * thread or while it is stopped.
 */
#define HART_MAX_DEBUG_POINTS 64
#define HART_MAX_WATCH_LEN 4096

typedef enum HartDebugKind {
        HART_DEBUG_EXEC,        /* breakpoint: stop before executing the instruction at addr */
        HART_DEBUG_WRITE,       /* watchpoints: stop before an access overlapping [addr, addr+len) */
        HART_DEBUG_READ,
        HART_DEBUG_ACCESS,      /* read or write */
} HartDebugKind;

typedef enum HartStopReason {
        HART_STOP_NONE,
        HART_STOP_BREAKPOINT,
        HART_STOP_WATCHPOINT,
        HART_STOP_STEP,
} HartStopReason;

typedef struct HartDebugStop {
        HartStopReason reason;
        HartDebugKind kind;     /* watchpoints: which kind fired */
        uint64_t addr;          /* watchpoints: the watched address hit */
} HartDebugStop;

/* Virtual addresses; len 1..HART_MAX_WATCH_LEN for watchpoints. -EINVAL, -EEXIST, -ENOSPC. */
int hart_debug_add(Hart *h, HartDebugKind kind, uint64_t addr, uint64_t len);
/* -ENOENT when no such point is set. */
int hart_debug_remove(Hart *h, HartDebugKind kind, uint64_t addr, uint64_t len);
void hart_debug_clear(Hart *h);
/* The next hart_run() executes one instruction (interrupts held off) and stops with HART_STOP_STEP. */
void hart_debug_step(Hart *h, bool step);
/* Resuming from a stop: the instruction at the current pc runs first, even with a point on it. */
void hart_debug_resume(Hart *h);
/* Why the last HART_EXIT_DEBUG happened; resets it to HART_STOP_NONE. */
HartDebugStop hart_debug_take_stop(Hart *h);

/*
 * A debugger's view of guest memory, without side effects: 'virtual'
 * addresses go through the current satp (Sv39/Sv48) as the hart's
 * privilege sees them, setting no A/D bit and filling no TLB entry;
 * physical ones are used as they are. Only RAM and the framebuffer can
 * be accessed: -EFAULT for an unmapped page or MMIO (no device is ever
 * touched). Writes drop the hart's cached translations.
 */
int hart_debug_read_memory(Hart *h, uint64_t addr, void *buf, size_t len, bool virtual);
int hart_debug_write_memory(Hart *h, uint64_t addr, const void *buf, size_t len, bool virtual);
