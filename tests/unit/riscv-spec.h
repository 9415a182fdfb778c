/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Architectural constants for the CPU tests, written as the literal numbers
 * of the RISC-V privileged specification's tables (not taken from the
 * emulator's headers, so that a wrong constant there fails a test instead of
 * moving the expectation along with it). emulator/cpu/spec-pins.c pins the
 * emulator's own names to the same numbers at compile time.
 */

/* Privilege levels (privileged spec, "Privilege Levels" table). */
#define RV_PRIV_U 0u
#define RV_PRIV_S 1u
#define RV_PRIV_M 3u

/* Exception codes, mcause with Interrupt = 0 ("Machine cause register values" table). */
#define RV_CAUSE_MISALIGNED_FETCH 0ULL
#define RV_CAUSE_FETCH_ACCESS 1ULL
#define RV_CAUSE_ILLEGAL_INSTRUCTION 2ULL
#define RV_CAUSE_BREAKPOINT 3ULL
#define RV_CAUSE_MISALIGNED_LOAD 4ULL
#define RV_CAUSE_LOAD_ACCESS 5ULL
#define RV_CAUSE_MISALIGNED_STORE 6ULL
#define RV_CAUSE_STORE_ACCESS 7ULL
#define RV_CAUSE_USER_ECALL 8ULL
#define RV_CAUSE_SUPERVISOR_ECALL 9ULL
#define RV_CAUSE_MACHINE_ECALL 11ULL
#define RV_CAUSE_FETCH_PAGE_FAULT 12ULL
#define RV_CAUSE_LOAD_PAGE_FAULT 13ULL
#define RV_CAUSE_STORE_PAGE_FAULT 15ULL
/* mcause bit MXLEN-1 (Interrupt). */
#define RV_CAUSE_INTERRUPT 0x8000000000000000ULL

/* mip/mie bits (= interrupt exception codes). */
#define RV_MIP_SSIP 0x002ULL            /* bit 1 */
#define RV_MIP_MSIP 0x008ULL            /* bit 3 */
#define RV_MIP_STIP 0x020ULL            /* bit 5 */
#define RV_MIP_MTIP 0x080ULL            /* bit 7 */
#define RV_MIP_SEIP 0x200ULL            /* bit 9 */
#define RV_MIP_MEIP 0x800ULL            /* bit 11 */

/* mstatus fields (RV64 "Machine-mode status register" figure). */
#define RV_MSTATUS_SIE 0x2ULL                   /* bit 1 */
#define RV_MSTATUS_MIE 0x8ULL                   /* bit 3 */
#define RV_MSTATUS_SPIE 0x20ULL                 /* bit 5 */
#define RV_MSTATUS_MPIE 0x80ULL                 /* bit 7 */
#define RV_MSTATUS_SPP 0x100ULL                 /* bit 8 */
#define RV_MSTATUS_MPP_SHIFT 11
#define RV_MSTATUS_MPP 0x1800ULL                /* bits 12:11 */
#define RV_MSTATUS_FS_SHIFT 13
#define RV_MSTATUS_FS 0x6000ULL                 /* bits 14:13 */
#define RV_MSTATUS_MPRV 0x20000ULL              /* bit 17 */
#define RV_MSTATUS_SUM 0x40000ULL               /* bit 18 */
#define RV_MSTATUS_MXR 0x80000ULL               /* bit 19 */
#define RV_MSTATUS_TVM 0x100000ULL              /* bit 20 */
#define RV_MSTATUS_TW 0x200000ULL               /* bit 21 */
#define RV_MSTATUS_TSR 0x400000ULL              /* bit 22 */
#define RV_MSTATUS_UXL 0x300000000ULL           /* bits 33:32 */
#define RV_MSTATUS_SXL 0xc00000000ULL           /* bits 35:34 */
#define RV_MSTATUS_SD 0x8000000000000000ULL     /* bit 63 */

/* satp.MODE (bits 63:60) for RV64. */
#define RV_SATP_BARE 0ULL
#define RV_SATP_SV39 0x8000000000000000ULL      /* MODE = 8 */
#define RV_SATP_SV48 0x9000000000000000ULL      /* MODE = 9 */

/* Sv39/Sv48 page-table entry bits. */
#define RV_PTE_V 0x01ULL
#define RV_PTE_R 0x02ULL
#define RV_PTE_W 0x04ULL
#define RV_PTE_X 0x08ULL
#define RV_PTE_U 0x10ULL
#define RV_PTE_G 0x20ULL
#define RV_PTE_A 0x40ULL
#define RV_PTE_D 0x80ULL

/* pmpcfg bits. */
#define PMPCFG_R 0x01
#define PMPCFG_W 0x02
#define PMPCFG_X 0x04
#define PMPCFG_TOR 0x08
#define PMPCFG_NA4 0x10
#define PMPCFG_NAPOT 0x18
#define PMPCFG_L 0x80

/* CSR numbers ("Allocation of RISC-V CSR address ranges" and the CSR listing tables). */
enum {
        CSR_FFLAGS = 0x001,
        CSR_FRM = 0x002,
        CSR_FCSR = 0x003,
        CSR_SSTATUS = 0x100,
        CSR_SIE = 0x104,
        CSR_STVEC = 0x105,
        CSR_SCOUNTEREN = 0x106,
        CSR_SSCRATCH = 0x140,
        CSR_SEPC = 0x141,
        CSR_SCAUSE = 0x142,
        CSR_STVAL = 0x143,
        CSR_SIP = 0x144,
        CSR_STIMECMP = 0x14d,
        CSR_SATP = 0x180,
        CSR_MSTATUS = 0x300,
        CSR_MISA = 0x301,
        CSR_MEDELEG = 0x302,
        CSR_MIDELEG = 0x303,
        CSR_MIE = 0x304,
        CSR_MTVEC = 0x305,
        CSR_MCOUNTEREN = 0x306,
        CSR_MENVCFG = 0x30a,
        CSR_MSCRATCH = 0x340,
        CSR_MEPC = 0x341,
        CSR_MCAUSE = 0x342,
        CSR_MTVAL = 0x343,
        CSR_MIP = 0x344,
        CSR_PMPCFG0 = 0x3a0,
        CSR_PMPADDR0 = 0x3b0,
        CSR_CYCLE = 0xc00,
        CSR_TIME = 0xc01,
        CSR_INSTRET = 0xc02,
        CSR_MVENDORID = 0xf11,
        CSR_MHARTID = 0xf14,
};
