/* SPDX-License-Identifier: MIT */
/*
 * The emulator's architectural constants pinned to the literal numbers of the
 * RISC-V privileged specification's tables. The CPU tests define the same
 * numbers independently (tests/unit/riscv-spec.h); a constant that drifts
 * here fails the build, one that drifts in the tests fails the tests.
 *
 * Nothing includes this file; it is compiled into the core only for its
 * assertions.
 */

#include "hart-internal.h"

#define PIN(name, value) _Static_assert((uint64_t) (name) == (uint64_t) (value), #name " is " #value " in the spec")

/* Privilege levels. */
PIN(PRIV_U, 0);
PIN(PRIV_S, 1);
PIN(PRIV_M, 3);

/* Exception codes (mcause, Interrupt = 0). */
PIN(CAUSE_MISALIGNED_FETCH, 0);
PIN(CAUSE_FETCH_ACCESS, 1);
PIN(CAUSE_ILLEGAL_INSTRUCTION, 2);
PIN(CAUSE_BREAKPOINT, 3);
PIN(CAUSE_MISALIGNED_LOAD, 4);
PIN(CAUSE_LOAD_ACCESS, 5);
PIN(CAUSE_MISALIGNED_STORE, 6);
PIN(CAUSE_STORE_ACCESS, 7);
PIN(CAUSE_USER_ECALL, 8);
PIN(CAUSE_SUPERVISOR_ECALL, 9);
PIN(CAUSE_MACHINE_ECALL, 11);
PIN(CAUSE_FETCH_PAGE_FAULT, 12);
PIN(CAUSE_LOAD_PAGE_FAULT, 13);
PIN(CAUSE_STORE_PAGE_FAULT, 15);
PIN(CAUSE_INTERRUPT, 0x8000000000000000);

/* mip/mie. */
PIN(MIP_SSIP, 0x002);
PIN(MIP_MSIP, 0x008);
PIN(MIP_STIP, 0x020);
PIN(MIP_MTIP, 0x080);
PIN(MIP_SEIP, 0x200);
PIN(MIP_MEIP, 0x800);

/* mstatus (RV64). */
PIN(MSTATUS_SIE, 0x2);
PIN(MSTATUS_MIE, 0x8);
PIN(MSTATUS_SPIE, 0x20);
PIN(MSTATUS_MPIE, 0x80);
PIN(MSTATUS_SPP, 0x100);
PIN(MSTATUS_MPP_SHIFT, 11);
PIN(MSTATUS_MPP, 0x1800);
PIN(MSTATUS_FS_SHIFT, 13);
PIN(MSTATUS_FS, 0x6000);
PIN(MSTATUS_MPRV, 0x20000);
PIN(MSTATUS_SUM, 0x40000);
PIN(MSTATUS_MXR, 0x80000);
PIN(MSTATUS_TVM, 0x100000);
PIN(MSTATUS_TW, 0x200000);
PIN(MSTATUS_TSR, 0x400000);
PIN(MSTATUS_UXL, 0x300000000);
PIN(MSTATUS_SXL, 0xc00000000);
PIN(MSTATUS_SD, 0x8000000000000000);

/* Base page size of Sv39/Sv48. */
PIN(PAGE_SHIFT, 12);
PIN(PAGE_SIZE, 4096);
